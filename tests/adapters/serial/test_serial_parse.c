/*
 * test_serial_parse.c - the five parsers on the lines real devices print:
 * regex groups and match, csv by number and by header name, kv with custom
 * separators, rtl_433 JSON with pointer selection, NMEA sentences (every
 * decoded type, checksum, no fix); and RFC 6901 pointers.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/serial/serial_int.h"

static struct ser_point fpoint(void)
{
	struct ser_point p = { .type = AD_PT_FLOAT64, .scale = 1 };

	return p;
}

/* Parse @s for @d into @res; returns ser_parse()'s answer. */
static int parse(struct ser_dev *d, const char *s, struct ser_result *res)
{
	struct ser_line l;
	static uint8_t buf[512]; /* results point into it after the call */
	size_t n = strlen(s);
	int rc;

	memcpy(buf, s, n + 1);
	ser_line_init(&l, buf, n, NULL);
	rc = ser_parse(d, &l, res);
	ser_line_fini(&l);
	return rc;
}

static void assert_num(const struct ser_result *r, double want)
{
	assert_int_equal(r->found, SER_OK);
	assert_int_equal(r->value.type, AD_VAL_DOUBLE);
	if (fabs(r->value.d - want) > 1e-9) {
		print_error("got %.12g want %.12g\n", r->value.d, want);
		fail();
	}
}

static void test_regex(void **state)
{
	regex_t re;
	struct ser_point pts[3] = { fpoint(), fpoint(), fpoint() };
	struct ser_dev d = {
		.parser = SER_PARSE_REGEX, .match = &re, .n_groups = 3, .points = pts, .n_points = 3
	};
	struct ser_result res[3];

	(void)state;
	assert_int_equal(regcomp(&re, "^T=([-0-9.]+) H=([0-9.]+)( P=([0-9]+))?$", REG_EXTENDED), 0);
	d.n_groups = 4;
	pts[0].group = 1;
	pts[1].group = 2;
	pts[2].group = 4;
	pts[2].type = AD_PT_UINT32;
	assert_int_equal(parse(&d, "T=-3.5 H=40 P=1013", res), 1);
	assert_num(&res[0], -3.5);
	assert_num(&res[1], 40);
	assert_int_equal(res[2].found, SER_OK);
	assert_int_equal(res[2].value.type, AD_VAL_UINT);
	assert_int_equal(res[2].value.u, 1013);
	assert_int_equal(parse(&d, "T=1 H=2", res), 1);
	assert_int_equal(res[2].found, SER_ABSENT); /* optional group absent */
	assert_int_equal(parse(&d, "T=1.2.3 H=2", res), 1);
	assert_int_equal(res[0].found, SER_BAD); /* matched, does not parse */
	assert_int_equal(parse(&d, "hello", res), 0);
	/* a hex-encoded frame: integers are hex digits */
	pts[2].hex = true;
	assert_int_equal(parse(&d, "T=1 H=2 P=1234", res), 1);
	assert_int_equal(res[2].value.u, 0x1234);
	regfree(&re);
}

static void test_csv(void **state)
{
	struct ser_point pts[3] = { fpoint(), fpoint(), fpoint() };
	struct ser_dev d = {
		.parser = SER_PARSE_CSV, .separator = ',', .points = pts, .n_points = 3
	};
	struct ser_result res[3];

	(void)state;
	pts[0].column = 1;
	pts[1].column = 3;
	pts[2].column = 5;
	pts[2].type = AD_PT_STRING;
	assert_int_equal(parse(&d, "21.5, x ,  40 ,y,\"a,b\"", res), 1);
	assert_num(&res[0], 21.5);
	assert_num(&res[1], 40);
	assert_int_equal(res[2].found, SER_OK);
	assert_int_equal(res[2].value.s.len, 3);
	assert_memory_equal(res[2].value.s.p, "a,b", 3);
	assert_int_equal(parse(&d, "1,2", res), 1);
	assert_int_equal(res[1].found, SER_BAD); /* a short line */
	/* semicolons, and a trailing separator gives an empty last column */
	d.separator = ';';
	assert_int_equal(parse(&d, "1;2;3;4;", res), 1);
	assert_num(&res[1], 3);
	assert_int_equal(res[2].found, SER_OK);
	assert_int_equal(res[2].value.s.len, 0);
}

static void test_csv_header(void **state)
{
	struct ser_point pts[2] = { fpoint(), fpoint() };
	struct ser_dev d = { .parser = SER_PARSE_CSV,
			     .separator = ',',
			     .header = true,
			     .points = pts,
			     .n_points = 2 };
	struct ser_result res[2];
	regex_t re;

	(void)state;
	pts[0].column_name = "temp";
	pts[1].column = 1;
	assert_int_equal(parse(&d, "12:00,21.5,40", res), 1);
	assert_int_equal(res[0].found, SER_ABSENT); /* no header seen yet */
	assert_int_equal(res[1].found, SER_BAD);    /* "12:00" is not a number */
	assert_int_equal(parse(&d, "time,temp,hum", res), 2);
	assert_int_equal(pts[0].col_found, 2);
	assert_int_equal(parse(&d, "12:00,21.5,40", res), 1);
	assert_num(&res[0], 21.5);
	assert_int_equal(parse(&d, "hum,time,temp", res), 2); /* the device printed it again */
	assert_int_equal(parse(&d, "40,12:01,22", res), 1);
	assert_num(&res[0], 22);
	/* match picks the lines of this device */
	assert_int_equal(regcomp(&re, "^S1,", REG_EXTENDED | REG_NOSUB), 0);
	d.match = &re;
	d.header = false;
	pts[0].column = 2;
	assert_int_equal(parse(&d, "S2,5", res), 0);
	assert_int_equal(parse(&d, "S1,5", res), 1);
	assert_num(&res[0], 5);
	regfree(&re);
}

static void test_kv(void **state)
{
	struct ser_point pts[3] = { fpoint(), fpoint(), fpoint() };
	struct ser_dev d = { .parser = SER_PARSE_KV,
			     .pair_seps = "; ,\t",
			     .kv_seps = "=",
			     .points = pts,
			     .n_points = 3 };
	struct ser_result res[3];

	(void)state;
	pts[0].key = "temp";
	pts[1].key = "hum";
	pts[2].key = "on";
	pts[2].type = AD_PT_BOOL;
	assert_int_equal(parse(&d, "temp=21.5;hum=40 on=yes", res), 1);
	assert_num(&res[0], 21.5);
	assert_num(&res[1], 40);
	assert_int_equal(res[2].value.type, AD_VAL_BOOL);
	assert_true(res[2].value.b);
	assert_int_equal(parse(&d, "hum=41", res), 1);
	assert_int_equal(res[0].found, SER_ABSENT);
	assert_num(&res[1], 41);
	assert_int_equal(parse(&d, "temperature=3;humidity=4", res), 0); /* no key of ours */
	assert_int_equal(parse(&d, "temp=;hum=x", res), 1);
	assert_int_equal(res[0].found, SER_BAD);
	assert_int_equal(res[1].found, SER_BAD);
	/* "key: value | key: value" */
	d.pair_seps = "|";
	d.kv_seps = ":";
	assert_int_equal(parse(&d, "temp: 19.25 | hum : 33", res), 1);
	assert_num(&res[0], 19.25);
	assert_num(&res[1], 33);
}

static void test_json(void **state)
{
	struct ser_point pts[4] = { fpoint(), fpoint(), fpoint(), fpoint() };
	struct ser_dev d = { .parser = SER_PARSE_JSON, .points = pts, .n_points = 4 };
	struct ser_result res[4];
	char match[] = "/model=Acurite-Tower,/id=1234";
	const char *why = NULL;
	const char *line = "{\"time\":\"2024-05-01 10:00:00\",\"model\":\"Acurite-Tower\","
			   "\"id\":1234,\"channel\":\"A\",\"battery_ok\":1,"
			   "\"temperature_C\":21.4,\"humidity\":40,\"mic\":\"CHECKSUM\"}";

	(void)state;
	assert_int_equal(ser_jmatch_parse(match, &d, &why), 0);
	assert_int_equal(d.n_jmatch, 2);
	pts[0].json_pointer = "/temperature_C";
	pts[1].json_pointer = "/humidity";
	pts[1].type = AD_PT_UINT16;
	pts[2].json_pointer = "/battery_ok";
	pts[2].type = AD_PT_BOOL;
	pts[3].json_pointer = "/channel";
	pts[3].type = AD_PT_STRING;
	assert_int_equal(parse(&d, line, res), 1);
	assert_num(&res[0], 21.4);
	assert_int_equal(res[1].value.type, AD_VAL_UINT);
	assert_int_equal(res[1].value.u, 40);
	assert_true(res[2].value.b);
	assert_int_equal(res[3].value.s.len, 1);
	/* another sensor on the same receiver */
	assert_int_equal(
		parse(&d, "{\"model\":\"Acurite-Tower\",\"id\":99,\"temperature_C\":3}", res), 0);
	assert_int_equal(
		parse(&d, "{\"model\":\"Acurite-Tower\",\"id\":\"1234\",\"temperature_C\":3}", res),
		1);					 /* a string matches by its text */
	assert_int_equal(parse(&d, "not json", res), 0); /* another device's line */
	assert_int_equal(parse(&d, "{not json", res), -EBADMSG);
	assert_int_equal(parse(&d, "{\"model\":", res), -EBADMSG);
	/* a value of the wrong kind is bad */
	assert_int_equal(parse(&d,
			       "{\"model\":\"Acurite-Tower\",\"id\":1234,\"temperature_C\":null,"
			       "\"humidity\":-1}",
			       res),
			 1);
	assert_int_equal(res[0].found, SER_BAD);
	assert_int_equal(res[1].found, SER_BAD); /* -1 is no uint16 */
	assert_int_equal(res[2].found, SER_ABSENT);
	/* a number to a string point, a string to a number point */
	pts[3].json_pointer = "/id";
	pts[0].json_pointer = "/t";
	assert_int_equal(parse(&d, "{\"model\":\"Acurite-Tower\",\"id\":1234,\"t\":\"7.5\"}", res),
			 1);
	assert_num(&res[0], 7.5);
	assert_int_equal(res[3].value.s.len, 4);
	assert_memory_equal(res[3].value.s.p, "1234", 4);

	/* match syntax errors */
	char bad1[] = "model=x";
	char bad2[] = "/model";
	assert_int_equal(ser_jmatch_parse(bad1, &d, &why), -EINVAL);
	assert_int_equal(ser_jmatch_parse(bad2, &d, &why), -EINVAL);
	/* a value with a comma */
	char commas[] = "/name=a,b,/id=1";
	assert_int_equal(ser_jmatch_parse(commas, &d, &why), 0);
	assert_int_equal(d.n_jmatch, 2);
	assert_string_equal(d.jmatch[0].value, "a,b");
	assert_string_equal(d.jmatch[1].pointer, "/id");
}

static void test_json_pointer(void **state)
{
	/* RFC 6901, section 5's document */
	cJSON *doc = cJSON_Parse("{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,"
				 "\"g|h\":4,\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}");
	const cJSON *j;

	(void)state;
	assert_non_null(doc);
	assert_ptr_equal(ser_json_get(doc, ""), doc);
	j = ser_json_get(doc, "/foo");
	assert_true(cJSON_IsArray(j));
	assert_string_equal(((const cJSON *)ser_json_get(doc, "/foo/0"))->valuestring, "bar");
	assert_string_equal(((const cJSON *)ser_json_get(doc, "/foo/1"))->valuestring, "baz");
	assert_null(ser_json_get(doc, "/foo/2"));
	assert_null(ser_json_get(doc, "/foo/01"));
	assert_null(ser_json_get(doc, "/foo/-"));
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/"))->valueint, 0);
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/a~1b"))->valueint, 1);
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/c%d"))->valueint, 2);
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/i\\j"))->valueint, 5);
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/k\"l"))->valueint, 6);
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/ "))->valueint, 7);
	assert_int_equal(((const cJSON *)ser_json_get(doc, "/m~0n"))->valueint, 8);
	assert_null(ser_json_get(doc, "/m~2n"));
	assert_null(ser_json_get(doc, "foo"));
	assert_null(ser_json_get(doc, "/foo/0/x"));
	cJSON_Delete(doc);
}

/* "$" body "*" checksum */
static const char *nmea(const char *body, char *buf, size_t cap)
{
	uint8_t sum = 0;

	for (const char *p = body; *p; p++)
		sum ^= (uint8_t)*p;
	snprintf(buf, cap, "$%s*%02X", body, sum);
	return buf;
}

static void test_nmea_decode(void **state)
{
	struct ser_nmea n;
	char b[128];

	(void)state;
	/* the classic examples, checksums as published */
	assert_int_equal(
		ser_nmea_decode(
			(const uint8_t
				 *)"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
			strlen("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"),
			&n),
		1);
	assert_int_equal(n.type, SER_NMEA_GGA);
	assert_true(fabs(n.v[SER_NMEA_LAT] - (48 + 7.038 / 60)) < 1e-9);
	assert_true(fabs(n.v[SER_NMEA_LON] - (11 + 31.0 / 60)) < 1e-9);
	assert_true(n.v[SER_NMEA_ALT] == 545.4);
	assert_true(n.v[SER_NMEA_SATS] == 8);
	assert_true(n.v[SER_NMEA_HDOP] == 0.9);
	assert_true(n.v[SER_NMEA_FIX] == 1);
	assert_int_equal(n.bad, 0);
	assert_int_equal(
		ser_nmea_decode(
			(const uint8_t
				 *)"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
			strlen("$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"),
			&n),
		1);
	assert_int_equal(n.type, SER_NMEA_RMC);
	assert_true(fabs(n.v[SER_NMEA_SPEED] - 22.4 * 1.852) < 1e-9);
	assert_true(n.v[SER_NMEA_COURSE] == 84.4);
	assert_true(n.v[SER_NMEA_UTC] == 764426119.0); /* 1994-03-23 12:35:19 UTC */
	/* wrong checksum, none, lower-case hex accepted */
	assert_int_equal(
		ser_nmea_decode(
			(const uint8_t
				 *)"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48",
			strlen("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48"),
			&n),
		-EBADMSG);
	assert_int_equal(ser_nmea_decode((const uint8_t *)"$GPGGA,123519,4807.038,N",
					 strlen("$GPGGA,123519,4807.038,N"), &n),
			 -EBADMSG);
	nmea("GNVTG,054.7,T,034.4,M,005.5,N,010.2,K,A", b, sizeof(b));
	b[strlen(b) - 1] = (char)(b[strlen(b) - 1] | 0x20);
	if (b[strlen(b) - 1] >= '0' && b[strlen(b) - 1] <= '9')
		b[strlen(b) - 1] &= (char)~0x20;
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_int_equal(n.type, SER_NMEA_VTG);
	assert_string_equal(n.talker, "GN");
	assert_true(n.v[SER_NMEA_SPEED] == 10.2);
	assert_true(n.v[SER_NMEA_COURSE] == 54.7);
	/* GSA, GSV, ZDA, GLL */
	nmea("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(n.v[SER_NMEA_MODE] == 3 && n.v[SER_NMEA_PDOP] == 2.5 &&
		    n.v[SER_NMEA_HDOP] == 1.3 && n.v[SER_NMEA_VDOP] == 2.1);
	nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(n.v[SER_NMEA_SATS_VIEW] == 11);
	nmea("GPZDA,201530.00,04,07,2002,00,00", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(n.v[SER_NMEA_UTC] == 1025813730.0);
	nmea("GPGLL,4916.45,N,12311.12,W,225444,A", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(fabs(n.v[SER_NMEA_LON] + (123 + 11.12 / 60)) < 1e-9);
	/* no fix: position present but bad */
	nmea("GPGGA,002153.000,,,,,0,00,99.99,,,,,,", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(n.has & 1u << SER_NMEA_LAT);
	assert_true(n.bad & 1u << SER_NMEA_LAT);
	assert_false(n.bad & 1u << SER_NMEA_SATS);
	/* types we do not decode, proprietary sentences */
	nmea("GPTXT,01,01,02,ANTSTATUS=OK", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 0);
	nmea("PUBX,00,081350.00", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 0);
	/* south and west, out of range minutes */
	nmea("GPGGA,1,3345.000,S,07030.000,W,1,5,1,10,M,,,,", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(n.v[SER_NMEA_LAT] == -33.75 && n.v[SER_NMEA_LON] == -70.5);
	nmea("GPGGA,1,3375.000,S,07030.000,X,1,5,1,10,M,,,,", b, sizeof(b));
	assert_int_equal(ser_nmea_decode((const uint8_t *)b, strlen(b), &n), 1);
	assert_true(n.bad & 1u << SER_NMEA_LAT);
	assert_true(n.bad & 1u << SER_NMEA_LON);
}

static void test_nmea_parser(void **state)
{
	struct ser_point pts[4] = { fpoint(), fpoint(), fpoint(), fpoint() };
	struct ser_dev d = { .parser = SER_PARSE_NMEA, .points = pts, .n_points = 4 };
	struct ser_result res[4];
	char b[128];

	(void)state;
	pts[0].field = SER_NMEA_LAT;
	pts[1].field = SER_NMEA_SPEED;
	pts[2].field = SER_NMEA_UTC;
	pts[2].type = AD_PT_STRING;
	pts[3].field = SER_NMEA_SATS;
	pts[3].type = AD_PT_UINT16;
	assert_int_equal(
		parse(&d, "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
		      res),
		1);
	assert_num(&res[0], 48 + 7.038 / 60);
	assert_num(&res[1], 22.4 * 1.852);
	assert_int_equal(res[2].found, SER_OK);
	assert_string_equal(res[2].text, "1994-03-23T12:35:19.000Z");
	assert_int_equal(res[3].found, SER_ABSENT); /* RMC has no satellite count */
	assert_int_equal(parse(&d, nmea("GPGGA,1,,,,,0,03,,,,,,,", b, sizeof(b)), res), 1);
	assert_int_equal(res[0].found, SER_BAD);
	assert_int_equal(res[3].found, SER_OK);
	assert_int_equal(res[3].value.u, 3);
	assert_int_equal(parse(&d, "$GPGGA,1,,,,,0,03,,,,,,,*00", res), -EBADMSG);
	assert_int_equal(parse(&d, "T=5", res), 0); /* not NMEA: not ours, not bad */
	assert_int_equal(parse(&d, nmea("GPGSV,1,1,00", b, sizeof(b)), res), 0);
	/* utc as a number */
	pts[2].type = AD_PT_FLOAT64;
	assert_int_equal(parse(&d, nmea("GPZDA,201530.50,04,07,2002,00,00", b, sizeof(b)), res), 1);
	assert_num(&res[2], 1025813730.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regex),	    cmocka_unit_test(test_csv),
		cmocka_unit_test(test_csv_header),  cmocka_unit_test(test_kv),
		cmocka_unit_test(test_json),	    cmocka_unit_test(test_json_pointer),
		cmocka_unit_test(test_nmea_decode), cmocka_unit_test(test_nmea_parser),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
