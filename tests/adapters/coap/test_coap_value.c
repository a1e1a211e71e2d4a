/*
 * test_coap_value.c - the CoAP adapter's payload parsers and url split
 * (adapters/coap/coap_value.c, coap_json.c): text numbers and booleans,
 * RFC 6901 pointers, SenML JSON records, conversion to point types.
 */
#include <errno.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "adapters/coap/coap_int.h"

#define TXT(s) (const uint8_t *)(s), strlen(s)

static struct ad_point point(enum ad_point_type t, double scale, double offset)
{
	struct ad_point pt = { .name = (char *)"p", .type = t, .scale = scale, .offset = offset };

	return pt;
}

static void test_text_numbers(void **state)
{
	struct ad_coap_raw r;

	(void)state;
	assert_int_equal(ad_coap_text_parse(TXT(" 21.5\n"), &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_NUM);
	assert_true(r.num == 21.5);
	assert_false(r.is_int);
	assert_int_equal(ad_coap_text_parse(TXT("-42"), &r), 0);
	assert_true(r.is_int);
	assert_int_equal(r.i, -42);
	assert_int_equal(ad_coap_text_parse(TXT("1e3"), &r), 0);
	assert_true(r.num == 1000.0);
	assert_int_equal(ad_coap_text_parse(TXT("+7"), &r), 0);
	assert_int_equal(r.i, 7);
	/* not numbers: strings */
	assert_int_equal(ad_coap_text_parse(TXT("1.2.3"), &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_STR);
	assert_int_equal(ad_coap_text_parse(TXT("nan"), &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_STR);
	assert_int_equal(ad_coap_text_parse(TXT("0x10"), &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_STR);
	assert_int_equal(ad_coap_text_parse(TXT("1e"), &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_STR);
	/* empty, NUL, too long */
	assert_int_equal(ad_coap_text_parse(TXT("  \r\n"), &r), -EBADMSG);
	assert_int_equal(ad_coap_text_parse((const uint8_t *)"1\0002", 3, &r), -EBADMSG);
	{
		uint8_t big[AD_COAP_MAX_TEXT + 1];

		memset(big, '1', sizeof(big));
		assert_int_equal(ad_coap_text_parse(big, sizeof(big), &r), -EBADMSG);
		assert_int_equal(ad_coap_text_parse(big, sizeof(big) - 1, &r), 0);
	}
}

static void test_text_bools(void **state)
{
	static const char *const t[] = { "true", "ON", "Yes" }, *const f[] = { "false", "off",
									       "NO" };
	struct ad_coap_raw r;
	unsigned int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(ad_coap_text_parse(TXT(t[i]), &r), 0);
		assert_int_equal(r.kind, AD_COAP_RAW_BOOL);
		assert_true(r.b);
		assert_int_equal(ad_coap_text_parse(TXT(f[i]), &r), 0);
		assert_int_equal(r.kind, AD_COAP_RAW_BOOL);
		assert_false(r.b);
	}
	assert_int_equal(ad_coap_text_parse(TXT("truex"), &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_STR);
}

static void test_to_value(void **state)
{
	struct ad_coap_raw r;
	struct ad_value v;
	struct ad_point pt;

	(void)state;
	ad_coap_text_parse(TXT("215"), &r);
	pt = point(AD_PT_INT16, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), 0);
	assert_int_equal(v.type, AD_VAL_INT);
	assert_int_equal(v.i, 215);
	pt = point(AD_PT_INT16, 0.1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), 0);
	assert_int_equal(v.type, AD_VAL_DOUBLE);
	assert_true(v.d > 21.49 && v.d < 21.51);
	pt = point(AD_PT_FLOAT64, 2, 1);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), 0);
	assert_true(v.d == 431.0);
	pt = point(AD_PT_BOOL, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), 0);
	assert_true(v.b);
	/* ranges */
	ad_coap_text_parse(TXT("70000"), &r);
	pt = point(AD_PT_INT16, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), -ERANGE);
	ad_coap_text_parse(TXT("-1"), &r);
	pt = point(AD_PT_UINT64, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), -ERANGE);
	ad_coap_text_parse(TXT("21.5"), &r);
	pt = point(AD_PT_INT32, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), -ERANGE);
	/* strings */
	ad_coap_text_parse(TXT("hello"), &r);
	pt = point(AD_PT_FLOAT64, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), -EINVAL);
	pt = point(AD_PT_STRING, 1, 0);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), 0);
	assert_int_equal(v.type, AD_VAL_STRING);
	assert_true(gw_slice_eq_cstr(v.s, "hello"));
	ad_coap_text_parse(TXT("12"), &r);
	assert_int_equal(ad_coap_raw_to_value(&pt, &r, &v), 0);
	assert_true(gw_slice_eq_cstr(v.s, "12"));
}

static void test_json_pointer(void **state)
{
	const char *doc = "{\"temperature\":21.5,\"a/b\":[1,{\"m~n\":true}],\"s\":\"x\",\"o\":{},"
			  "\"n\":null}";
	void *j = ad_coap_json_parse(NULL, TXT(doc));
	struct ad_coap_raw r;

	(void)state;
	assert_non_null(j);
	assert_int_equal(ad_coap_json_get(j, "/temperature", &r), 0);
	assert_true(r.num == 21.5);
	assert_int_equal(ad_coap_json_get(j, "/a~1b/0", &r), 0);
	assert_true(r.is_int && r.i == 1);
	assert_int_equal(ad_coap_json_get(j, "/a~1b/1/m~0n", &r), 0);
	assert_int_equal(r.kind, AD_COAP_RAW_BOOL);
	assert_int_equal(ad_coap_json_get(j, "/s", &r), 0);
	assert_true(gw_slice_eq_cstr(r.s, "x"));
	assert_int_equal(ad_coap_json_get(j, "/a~1b/01", &r), -ENOENT); /* no leading zeros */
	assert_int_equal(ad_coap_json_get(j, "/a~1b/2", &r), -ENOENT);
	assert_int_equal(ad_coap_json_get(j, "/missing", &r), -ENOENT);
	assert_int_equal(ad_coap_json_get(j, "/n", &r), -ENOENT);
	assert_int_equal(ad_coap_json_get(j, "/o", &r), -EBADMSG);
	assert_int_equal(ad_coap_json_get(j, "", &r), -EBADMSG);
	assert_int_equal(ad_coap_json_get(j, "/a~2", &r), -ENOENT);
	ad_coap_json_free(NULL, j);
	j = ad_coap_json_parse(NULL, TXT("42"));
	assert_int_equal(ad_coap_json_get(j, "", &r), 0);
	assert_true(r.i == 42);
	ad_coap_json_free(NULL, j);
	assert_null(ad_coap_json_parse(NULL, TXT("{\"a\":")));
}

static void test_senml(void **state)
{
	/* RFC 8428 section 5.1.2-like pack: a base name, then records */
	const char *doc = "[{\"bn\":\"urn:dev:ow:10e2073a01080063/\",\"bt\":1.276020076001e+09,"
			  "\"n\":\"voltage\",\"u\":\"V\",\"v\":120.1},"
			  "{\"n\":\"current\",\"t\":-5,\"v\":1.2},"
			  "{\"n\":\"door\",\"vb\":true},{\"n\":\"label\",\"vs\":\"hall\"}]";
	void *j = ad_coap_json_parse(NULL, TXT(doc));
	struct ad_coap_raw r;

	(void)state;
	assert_non_null(j);
	assert_int_equal(ad_coap_senml_get(j, "urn:dev:ow:10e2073a01080063/current", &r), 0);
	assert_true(r.num == 1.2);
	assert_int_equal(ad_coap_senml_get(j, "", &r), 0); /* the first record with a value */
	assert_true(r.num == 120.1);
	assert_int_equal(ad_coap_senml_get(j, "urn:dev:ow:10e2073a01080063/door", &r), 0);
	assert_true(r.kind == AD_COAP_RAW_BOOL && r.b);
	assert_int_equal(ad_coap_senml_get(j, "urn:dev:ow:10e2073a01080063/label", &r), 0);
	assert_true(gw_slice_eq_cstr(r.s, "hall"));
	assert_int_equal(ad_coap_senml_get(j, "current", &r), -ENOENT); /* bn is part of the name */
	ad_coap_json_free(NULL, j);
	j = ad_coap_json_parse(NULL, TXT("{\"v\":1}"));
	assert_int_equal(ad_coap_senml_get(j, "", &r), -EBADMSG);
	ad_coap_json_free(NULL, j);
	j = ad_coap_json_parse(NULL, TXT("[1,2]"));
	assert_int_equal(ad_coap_senml_get(j, "", &r), -EBADMSG);
	ad_coap_json_free(NULL, j);
}

static void test_url(void **state)
{
	struct ad_coap_device d;
	const char *why;
	size_t off;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(ad_coap_url_split("coap://10.0.0.7", &d, &off, &why), 0);
	assert_string_equal(d.host, "10.0.0.7");
	assert_int_equal(d.port, 5683);
	assert_false(d.secure);
	assert_int_equal(off, strlen("coap://10.0.0.7"));
	assert_int_equal(ad_coap_url_split("coaps://[fe80::1]:6000/base", &d, &off, &why), 0);
	assert_string_equal(d.host, "fe80::1");
	assert_int_equal(d.port, 6000);
	assert_true(d.secure);
	assert_string_equal("coaps://[fe80::1]:6000/base" + off, "/base");
	assert_int_equal(ad_coap_url_split("coap://h.example:5683/", &d, &off, &why), 0);
	assert_string_equal(d.host, "h.example");
	assert_int_equal(ad_coap_url_split("http://h", &d, &off, &why), -EINVAL);
	assert_int_equal(ad_coap_url_split("coap://", &d, &off, &why), -EINVAL);
	assert_int_equal(ad_coap_url_split("coap://h:0", &d, &off, &why), -EINVAL);
	assert_int_equal(ad_coap_url_split("coap://h:70000", &d, &off, &why), -EINVAL);
	assert_int_equal(ad_coap_url_split("coap://h:12x", &d, &off, &why), -EINVAL);
	assert_int_equal(ad_coap_url_split("coap://[::1", &d, &off, &why), -EINVAL);
	assert_int_equal(ad_coap_url_split("coap://h/a?b=1", &d, &off, &why), -EINVAL);
}

static void test_write_payload(void **state)
{
	struct ad_coap_point cp = { .format = AD_COAP_FMT_AUTO };
	struct ad_point pt = point(AD_PT_FLOAT64, 1, 0);
	struct ad_value v = { .type = AD_VAL_DOUBLE, .d = 42.5 };
	const char *why = NULL;
	char buf[128];
	size_t n;
	int cf;

	(void)state;
	pt.ext = &cp;
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), 0);
	assert_string_equal(buf, "42.5");
	assert_int_equal(cf, AD_COAP_CF_TEXT);
	assert_int_equal(n, 4);
	/* JSON at a pointer, escapes undone; scale undone (7 / 0.1 = 70) */
	cp.json_pointer = (char *)"/a~1b/value";
	pt.scale = 0.1;
	v.d = 7;
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), 0);
	assert_string_equal(buf, "{\"a/b\":{\"value\":70}}");
	assert_int_equal(cf, AD_COAP_CF_JSON);
	/* SenML */
	cp.json_pointer = NULL;
	cp.senml_name = (char *)"dev/\"x\"";
	pt.scale = 1;
	pt.type = AD_PT_BOOL;
	v = (struct ad_value){ .type = AD_VAL_BOOL, .b = true };
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), 0);
	assert_string_equal(buf, "[{\"n\":\"dev/\\\"x\\\"\",\"vb\":true}]");
	assert_int_equal(cf, AD_COAP_CF_SENML_JSON);
	/* integers: range checked after unscaling */
	cp.senml_name = NULL;
	pt.type = AD_PT_INT16;
	v = (struct ad_value){ .type = AD_VAL_INT, .i = 40000 };
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), -ERANGE);
	v.i = -5;
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), 0);
	assert_string_equal(buf, "-5");
	/* a string for a number, a number for a string point */
	v = (struct ad_value){ .type = AD_VAL_STRING, .s = GW_SLICE_STR("on") };
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), -EINVAL);
	pt.type = AD_PT_STRING;
	cp.format = AD_COAP_FMT_JSON;
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), 0);
	assert_string_equal(buf, "\"on\"");
	v = (struct ad_value){ .type = AD_VAL_DOUBLE, .d = 1 };
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, sizeof(buf), &n, &cf, &why), -EINVAL);
	/* too long for the buffer */
	pt.type = AD_PT_FLOAT64;
	cp.format = AD_COAP_FMT_TEXT;
	v.d = 123456.75;
	assert_int_equal(ad_coap_write_payload(&pt, &v, buf, 4, &n, &cf, &why), -EMSGSIZE);
}

static void test_link_format(void **state)
{
	const char *doc = "</>;title=\"General Info\";ct=0,\n</time>;if=\"clock\";rt=\"ticks\";"
			  "title=\"A, b\";ct=0;obs, </s/json>;ct=50";
	struct ad_coap_link l;
	size_t off = 0;

	(void)state;
	assert_int_equal(ad_coap_link_next(TXT(doc), &off, &l), 1);
	assert_true(gw_slice_eq_cstr(l.target, "/"));
	assert_true(gw_slice_eq_cstr(l.title, "General Info"));
	assert_false(l.obs);
	assert_int_equal(ad_coap_link_next(TXT(doc), &off, &l), 1);
	assert_true(gw_slice_eq_cstr(l.target, "/time"));
	assert_true(gw_slice_eq_cstr(l.rt, "ticks"));
	assert_true(gw_slice_eq_cstr(l.title, "A, b")); /* a comma inside quotes */
	assert_true(gw_slice_eq_cstr(l.ct, "0"));
	assert_true(l.obs);
	assert_int_equal(ad_coap_link_next(TXT(doc), &off, &l), 1);
	assert_true(gw_slice_eq_cstr(l.target, "/s/json"));
	assert_true(gw_slice_eq_cstr(l.ct, "50"));
	assert_int_equal(ad_coap_link_next(TXT(doc), &off, &l), 0);
	off = 0;
	assert_int_equal(ad_coap_link_next(TXT("/x"), &off, &l), -EBADMSG);
	off = 0;
	assert_int_equal(ad_coap_link_next(TXT("</x"), &off, &l), -EBADMSG);
	off = 0;
	assert_int_equal(ad_coap_link_next(TXT("</x>;t=\"open"), &off, &l), -EBADMSG);
	off = 0;
	assert_int_equal(ad_coap_link_next(TXT("</x> junk"), &off, &l), -EBADMSG);
}

static void test_err_names(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(ad_coap_err_name(132, b, sizeof(b)), "4.04");
	assert_string_equal(ad_coap_err_name(160, b, sizeof(b)), "5.00");
	assert_string_equal(ad_coap_err_name(-ETIMEDOUT, b, sizeof(b)), "timeout");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_numbers), cmocka_unit_test(test_text_bools),
		cmocka_unit_test(test_to_value),     cmocka_unit_test(test_json_pointer),
		cmocka_unit_test(test_senml),	     cmocka_unit_test(test_url),
		cmocka_unit_test(test_err_names),    cmocka_unit_test(test_write_payload),
		cmocka_unit_test(test_link_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
