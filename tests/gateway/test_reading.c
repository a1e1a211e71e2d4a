/*
 * test_reading.c - payload rendering (JSON escaping, NaN/Inf, unicode units,
 * long strings), every publish policy, command parsing and results.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/reading.h"

static struct ad_device dev = { .name = (char *)"boiler", .poll_ms = 1000 };

static struct ad_point mkpoint(const char *unit, double deadband)
{
	struct ad_point pt = { .name = (char *)"temperature",
			       .device = &dev,
			       .unit = (char *)unit,
			       .deadband = deadband };

	return pt;
}

static const char *render(enum gw_payload mode, const struct ad_reading *r, char *buf, size_t cap)
{
	struct gw_writer w;

	gw_writer_init(&w, buf, cap - 1);
	if (gw_render_reading(mode, r, &w))
		return NULL;
	buf[w.len] = '\0';
	return buf;
}

static void test_topic(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(gw_reading_topic("fieldmq/gw1", "boiler", "temperature", buf, sizeof(buf)),
			 30);
	assert_string_equal(buf, "fieldmq/gw1/boiler/temperature");
	assert_int_equal(gw_reading_topic("fieldmq/gw1", "boiler", "temperature", buf, 10),
			 -EMSGSIZE);
}

static void test_json_double(void **state)
{
	struct ad_point pt = mkpoint("°C", 0);
	struct ad_reading r = {
		.device = &dev, .point = &pt, .quality = AD_Q_GOOD, .ts_ms = 1732240000123LL
	};
	char buf[256];

	(void)state;
	r.value.type = AD_VAL_DOUBLE;
	r.value.d = 21.5;
	assert_string_equal(
		render(GW_PAYLOAD_JSON, &r, buf, sizeof(buf)),
		"{\"value\":21.5,\"unit\":\"°C\",\"quality\":\"good\",\"ts\":1732240000123}");
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "21.5");
	r.value.d = 0.1 + 0.2; /* needs 17 digits to read back */
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "0.30000000000000004");
	r.value.d = -1e-300;
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "-1e-300");
	/* a float32 register value prints as the float it was, not its double widening */
	pt.type = AD_PT_FLOAT32;
	pt.scale = 1;
	r.value.d = (double)21.0004196f;
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "21.00042");
	r.value.d = (double)0.1f;
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "0.1");
}

static void test_nan_inf(void **state)
{
	struct ad_point pt = mkpoint("", 0);
	struct ad_reading r = { .device = &dev, .point = &pt, .quality = AD_Q_GOOD, .ts_ms = 5 };
	char buf[256];

	(void)state;
	r.value.type = AD_VAL_DOUBLE;
	r.value.d = NAN;
	assert_string_equal(render(GW_PAYLOAD_JSON, &r, buf, sizeof(buf)),
			    "{\"quality\":\"bad\",\"ts\":5}");
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "");
	r.value.d = -INFINITY;
	assert_string_equal(render(GW_PAYLOAD_JSON, &r, buf, sizeof(buf)),
			    "{\"quality\":\"bad\",\"ts\":5}");
	r.value.type = AD_VAL_NONE;
	r.quality = AD_Q_BAD;
	assert_string_equal(render(GW_PAYLOAD_JSON, &r, buf, sizeof(buf)),
			    "{\"quality\":\"bad\",\"ts\":5}");
}

static void test_types_and_escaping(void **state)
{
	struct ad_point pt = mkpoint("m\xc2\xb3/h \"x\"", 0);
	struct ad_reading r = { .device = &dev, .point = &pt, .quality = AD_Q_STALE, .ts_ms = 1 };
	static const char raw[] = "a\"b\\c\n\x01\xff\xe2\x82\xac";
	char buf[256];

	(void)state;
	r.value.type = AD_VAL_BOOL;
	r.value.b = true;
	assert_string_equal(
		render(GW_PAYLOAD_JSON, &r, buf, sizeof(buf)),
		"{\"value\":true,\"unit\":\"m³/h \\\"x\\\"\",\"quality\":\"stale\",\"ts\":1}");
	r.value.type = AD_VAL_INT;
	r.value.i = -9223372036854775807LL - 1;
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "-9223372036854775808");
	r.value.type = AD_VAL_UINT;
	r.value.u = 18446744073709551615ULL;
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)), "18446744073709551615");
	r.value.type = AD_VAL_STRING;
	r.value.s.p = (const uint8_t *)raw;
	r.value.s.len = sizeof(raw) - 1;
	/* control characters escaped, invalid byte replaced, valid UTF-8 (€) kept */
	assert_string_equal(render(GW_PAYLOAD_VALUE, &r, buf, sizeof(buf)),
			    "\"a\\\"b\\\\c\\n\\u0001\xef\xbf\xbd\xe2\x82\xac\"");
}

static void test_long_string(void **state)
{
	struct ad_point pt = mkpoint("", 0);
	struct ad_reading r = { .device = &dev, .point = &pt, .quality = AD_Q_GOOD, .ts_ms = 1 };
	char big[3000], buf[1024];
	struct gw_writer w;

	(void)state;
	memset(big, 'x', sizeof(big));
	r.value.type = AD_VAL_STRING;
	r.value.s.p = (const uint8_t *)big;
	r.value.s.len = sizeof(big);
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(gw_render_reading(GW_PAYLOAD_JSON, &r, &w), -EMSGSIZE);
	assert_true(w.len > sizeof(big)); /* tells the size needed */
}

static struct ad_reading dbl(const struct ad_point *pt, double d, enum ad_quality q)
{
	struct ad_reading r = { .device = &dev, .point = pt, .quality = q, .ts_ms = 1 };

	r.value.type = AD_VAL_DOUBLE;
	r.value.d = d;
	return r;
}

static void test_policy_on_change(void **state)
{
	struct ad_point pt = mkpoint("", 0.5);
	struct gw_point_state st = { 0 };
	struct ad_reading r = dbl(&pt, 10, AD_Q_GOOD);

	(void)state;
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 0, 1000));
	gw_policy_commit(&st, &r, 0);
	r = dbl(&pt, 10.5, AD_Q_GOOD); /* exactly the deadband: not more than it */
	assert_false(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 10, 1000));
	r = dbl(&pt, 10.51, AD_Q_GOOD);
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 10, 1000));
	r = dbl(&pt, 9.4, AD_Q_GOOD);
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 10, 1000));
	/* quality change publishes even with the same value */
	r = dbl(&pt, 10, AD_Q_BAD);
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 10, 1000));
	gw_policy_commit(&st, &r, 10);
	r = dbl(&pt, 10, AD_Q_BAD);
	assert_false(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 20, 1000));
	/* no heartbeat with plain on_change */
	r = dbl(&pt, 10, AD_Q_BAD);
	assert_false(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0.5, &r, 1000000, 1000));
	gw_point_state_fini(&st);
}

static void test_policy_every_poll_and_period(void **state)
{
	struct ad_point pt = mkpoint("", 0);
	struct gw_point_state st = { 0 };
	struct ad_reading r = dbl(&pt, 1, AD_Q_GOOD);

	(void)state;
	gw_policy_commit(&st, &r, 0);
	assert_true(gw_policy_check(&st, AD_PUB_EVERY_POLL, 0, &r, 1, 1000));
	assert_false(gw_policy_check(&st, AD_PUB_ON_CHANGE_OR_PERIOD, 0, &r, 999, 1000));
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE_OR_PERIOD, 0, &r, 1000, 1000));
	r = dbl(&pt, 2, AD_Q_GOOD);
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE_OR_PERIOD, 0, &r, 1, 1000));
	gw_point_state_fini(&st);
}

static void test_policy_strings_and_bools(void **state)
{
	struct ad_point pt = mkpoint("", 0);
	struct gw_point_state st = { 0 };
	struct ad_reading r = { .device = &dev, .point = &pt, .quality = AD_Q_GOOD };
	char s1[] = "abc", s2[] = "abd";

	(void)state;
	r.value.type = AD_VAL_STRING;
	r.value.s = gw_slice_cstr(s1);
	gw_policy_commit(&st, &r, 0);
	s1[0] = 'z'; /* the state keeps its own copy */
	r.value.s = gw_slice_cstr("abc");
	assert_false(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0, &r, 1, 1000));
	r.value.s = gw_slice_cstr(s2);
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0, &r, 1, 1000));
	/* a bad reading that carries the held string commits without copying onto itself */
	r.value = st.last;
	r.quality = AD_Q_BAD;
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0, &r, 1, 1000));
	assert_int_equal(gw_policy_commit(&st, &r, 1), 0);
	assert_memory_equal(st.last_str, "abc", 3);
	r.quality = AD_Q_GOOD;
	r.value.type = AD_VAL_BOOL;
	r.value.b = false;
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0, &r, 1, 1000));
	gw_policy_commit(&st, &r, 1);
	assert_false(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0, &r, 2, 1000));
	r.value.b = true;
	assert_true(gw_policy_check(&st, AD_PUB_ON_CHANGE, 0, &r, 2, 1000));
	gw_point_state_fini(&st);
}

static void test_commands(void **state)
{
	struct ad_value v;
	const char *why = NULL;
	char buf[16];

	(void)state;
	assert_int_equal(gw_parse_command(gw_slice_cstr("42.0"), &v, buf, sizeof(buf), &why), 0);
	assert_int_equal(v.type, AD_VAL_DOUBLE);
	assert_true(v.d == 42.0);
	assert_int_equal(
		gw_parse_command(gw_slice_cstr("{\"value\":true}"), &v, buf, sizeof(buf), &why), 0);
	assert_int_equal(v.type, AD_VAL_BOOL);
	assert_true(v.b);
	assert_int_equal(gw_parse_command(gw_slice_cstr("\"hi\""), &v, buf, sizeof(buf), &why), 0);
	assert_int_equal(v.type, AD_VAL_STRING);
	assert_true(gw_slice_eq_cstr(v.s, "hi"));
	assert_int_equal(gw_parse_command(gw_slice_cstr("on"), &v, buf, sizeof(buf), &why), 0);
	assert_int_equal(v.type, AD_VAL_STRING);
	assert_int_equal(gw_parse_command(gw_slice_cstr("{\"v\":1}"), &v, buf, sizeof(buf), &why),
			 -EINVAL);
	assert_non_null(why);
	assert_int_equal(gw_parse_command(gw_slice_cstr("{\"value\":"), &v, buf, sizeof(buf), &why),
			 -EINVAL);
	assert_int_equal(gw_parse_command(gw_slice_cstr("[1]"), &v, buf, sizeof(buf), &why),
			 -EINVAL);
	assert_int_equal(gw_parse_command(gw_slice_cstr(""), &v, buf, sizeof(buf), &why), -EINVAL);
	assert_int_equal(gw_parse_command(gw_slice_cstr("\"a very long string value\""), &v, buf,
					  sizeof(buf), &why),
			 -EINVAL);
}

static void test_results(void **state)
{
	struct ad_value v = { .type = AD_VAL_DOUBLE, .d = 42 };
	char buf[128];
	struct gw_writer w;

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf) - 1);
	assert_int_equal(gw_render_result(true, NULL, &v, 7, &w), 0);
	buf[w.len] = 0;
	assert_string_equal(buf, "{\"ok\":true,\"value\":42,\"ts\":7}");
	gw_writer_init(&w, buf, sizeof(buf) - 1);
	assert_int_equal(gw_render_result(false, "illegal data address", NULL, 8, &w), 0);
	buf[w.len] = 0;
	assert_string_equal(buf, "{\"ok\":false,\"error\":\"illegal data address\",\"ts\":8}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topic),
		cmocka_unit_test(test_json_double),
		cmocka_unit_test(test_nan_inf),
		cmocka_unit_test(test_types_and_escaping),
		cmocka_unit_test(test_long_string),
		cmocka_unit_test(test_policy_on_change),
		cmocka_unit_test(test_policy_every_poll_and_period),
		cmocka_unit_test(test_policy_strings_and_bools),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_results),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
