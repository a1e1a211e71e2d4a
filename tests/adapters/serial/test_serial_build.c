/*
 * test_serial_build.c - a serial device's set-up from its device-map keys
 * (serial_build.c, ser_dev_build()), without the glue: match regexes and
 * their groups, csv columns by number or name, separators and poll commands
 * unescaped, json match terms, write_command / write_response from the point
 * or the device's default, hex encoding, and the errors of bad keys.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/serial/serial_setup.h"

#define NPTS 3

/* One device of NPTS points, zeroed, as the glue hands it to ser_dev_build(). */
struct fix {
	struct ser_bus sb;
	struct ser_device sd;
	struct ser_point_keys pk[NPTS];
	struct ad_point pt[NPTS];
	struct ad_point *ptrs[NPTS];
	struct ad_device d;
	struct ser_dev x;
	struct ser_dev_rt rt;
	struct ser_point pts[NPTS];
	struct ser_point_rt prt[NPTS];
};

static void fix_init(struct fix *f, enum ser_parser parser, unsigned int n)
{
	unsigned int i;

	memset(f, 0, sizeof(*f));
	f->sd.parser = parser;
	for (i = 0; i < n; i++) {
		f->pt[i].ext = &f->pk[i];
		f->pt[i].type = AD_PT_FLOAT64;
		f->pt[i].scale = 1;
		f->pt[i].device = &f->d;
		f->ptrs[i] = &f->pt[i];
	}
	f->d.name = "dev";
	f->d.protocol = AD_PROTO_SERIAL;
	f->d.ext = &f->sd;
	f->d.points = f->ptrs;
	f->d.n_points = n;
	f->d.poll_ms = 2000;
}

static int build(struct fix *f)
{
	return ser_dev_build(&f->sb, &f->x, &f->rt, &f->d, f->pts, f->prt);
}

/* What the glue's port_fini() releases, for a complete or a failed set-up. */
static void fix_fini(struct fix *f)
{
	unsigned int i;

	if (f->rt.has_match)
		regfree(&f->rt.match);
	gw_free(f->rt.jbuf);
	for (i = 0; i < NPTS; i++)
		if (f->prt[i].has_resp)
			regfree(&f->prt[i].resp);
}

static void test_regex_device(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f, SER_PARSE_REGEX, 2);
	f.sd.match = "^T=([0-9.]+) H=([0-9.]+)$";
	f.sd.poll_command = "\"READ\\r\\n\"";
	f.pk[0].group = 1;
	f.pk[1].group = 2;
	assert_int_equal(build(&f), 0);
	assert_ptr_equal(f.x.dev, &f.d);
	assert_int_equal(f.x.parser, SER_PARSE_REGEX);
	assert_true(f.rt.has_match);
	assert_ptr_equal(f.x.match, &f.rt.match);
	assert_int_equal(f.x.n_groups, 2);
	assert_int_equal(f.x.poll_cmd_len, 6);
	assert_memory_equal(f.x.poll_cmd, "READ\r\n", 6);
	assert_int_equal(f.x.poll_ms, 2000);
	assert_ptr_equal(f.x.points, f.pts);
	assert_int_equal(f.x.n_points, 2);
	assert_ptr_equal(f.pts[0].pt, &f.pt[0]);
	assert_int_equal(f.pts[0].group, 1);
	assert_int_equal(f.pts[1].group, 2);
	assert_null(f.pts[0].write_fmt);
	fix_fini(&f);
}

static void test_csv_columns(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f, SER_PARSE_CSV, 3);
	f.sd.separator = "\\t";
	f.sd.header = true;
	f.pk[0].column = "3";
	f.pk[1].column = "temp";
	f.pk[2].column = "0"; /* not a column number: taken as a header name */
	f.sb.fc.hex = true;
	assert_int_equal(build(&f), 0);
	assert_int_equal(f.x.separator, '\t');
	assert_true(f.x.header);
	assert_false(f.rt.has_match); /* csv without match: every line */
	assert_null(f.x.match);
	assert_null(f.x.poll_cmd); /* no poll_command: the device talks by itself */
	assert_int_equal(f.x.poll_ms, 0);
	assert_int_equal(f.pts[0].column, 3);
	assert_null(f.pts[0].column_name);
	assert_int_equal(f.pts[1].column, 0);
	assert_string_equal(f.pts[1].column_name, "temp");
	assert_string_equal(f.pts[2].column_name, "0");
	assert_true(f.pts[0].hex);
	fix_fini(&f);

	/* The default separator, and one that is not one byte falls back to it. */
	fix_init(&f, SER_PARSE_CSV, 1);
	assert_int_equal(build(&f), 0);
	assert_int_equal(f.x.separator, ',');
	fix_fini(&f);
	fix_init(&f, SER_PARSE_CSV, 1);
	f.sd.separator = ";;";
	assert_int_equal(build(&f), 0);
	assert_int_equal(f.x.separator, ',');
	fix_fini(&f);
}

static void test_kv_separators(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f, SER_PARSE_KV, 1);
	f.sd.pair_separator = "\";\\t\"";
	f.sd.kv_separator = ":";
	f.pk[0].key = "temp";
	assert_int_equal(build(&f), 0);
	assert_string_equal(f.x.pair_seps, ";\t");
	assert_string_equal(f.x.kv_seps, ":");
	assert_string_equal(f.pts[0].key, "temp");
	fix_fini(&f);

	/* Absent keys give empty sets (the parser's defaults apply). */
	fix_init(&f, SER_PARSE_KV, 1);
	assert_int_equal(build(&f), 0);
	assert_string_equal(f.x.pair_seps, "");
	assert_string_equal(f.x.kv_seps, "");
	fix_fini(&f);
}

static void test_json_match(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f, SER_PARSE_JSON, 1);
	f.sd.match = "/model=Acurite-Tower,/id=1234";
	f.pk[0].json_pointer = "/temperature_C";
	assert_int_equal(build(&f), 0);
	assert_non_null(f.rt.jbuf);
	assert_false(f.rt.has_match); /* json: terms, no regex */
	assert_int_equal(f.x.n_jmatch, 2);
	assert_string_equal(f.pts[0].json_pointer, "/temperature_C");
	fix_fini(&f);
}

static void test_write_commands(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f, SER_PARSE_REGEX, 3);
	f.sd.match = "^V=([0-9.]+)$";
	f.sd.write_command = "SET %v\\r\\n";
	f.sd.write_response = "^OK";
	f.pt[0].writable = true; /* the device's defaults */
	f.pt[1].writable = true;
	f.pk[1].write_command = "OUT %.1f\\n"; /* its own, no response */
	f.pk[1].write_response = "";
	f.pt[2].writable = false; /* read-only: no command even with the defaults */
	assert_int_equal(build(&f), 0);
	assert_true(f.prt[0].has_fmt);
	assert_ptr_equal(f.pts[0].write_fmt, &f.prt[0].fmt);
	assert_true(f.prt[0].has_resp);
	assert_ptr_equal(f.pts[0].write_response, &f.prt[0].resp);
	assert_true(f.pts[0].writable);
	/* An empty write_response of the point takes the device's. */
	assert_true(f.prt[1].has_fmt);
	assert_true(f.prt[1].has_resp);
	assert_false(f.prt[2].has_fmt);
	assert_null(f.pts[2].write_fmt);
	assert_false(f.pts[2].writable);
	fix_fini(&f);
}

static void test_bad_keys(void **state)
{
	struct fix f;

	(void)state;
	fix_init(&f, SER_PARSE_REGEX, 1);
	f.sd.match = "^(unclosed";
	assert_int_equal(build(&f), -EINVAL);
	fix_fini(&f);

	fix_init(&f, SER_PARSE_JSON, 1);
	f.sd.match = "no-pointer";
	assert_int_equal(build(&f), -EINVAL);
	fix_fini(&f);

	fix_init(&f, SER_PARSE_REGEX, 1);
	f.sd.match = "^x$";
	f.pt[0].writable = true;
	f.pk[0].write_command = "SET %q";
	assert_int_equal(build(&f), -EINVAL);
	fix_fini(&f);

	fix_init(&f, SER_PARSE_REGEX, 1);
	f.sd.match = "^x$";
	f.pt[0].writable = true;
	f.pk[0].write_command = "SET %v";
	f.pk[0].write_response = "[";
	assert_int_equal(build(&f), -EINVAL);
	assert_true(f.prt[0].has_fmt); /* set up before the failure: the caller releases */
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regex_device),   cmocka_unit_test(test_csv_columns),
		cmocka_unit_test(test_kv_separators),  cmocka_unit_test(test_json_match),
		cmocka_unit_test(test_write_commands), cmocka_unit_test(test_bad_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
