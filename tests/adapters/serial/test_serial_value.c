/*
 * test_serial_value.c - text to typed values (every point type, ranges,
 * scale and offset, junk) and write_command templates (checked at config
 * time, rendered with the inverse scale, refused for values that do not fit).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/serial/serial_int.h"

static int conv(enum ad_point_type t, const char *s, struct ad_value *v)
{
	return ser_convert_text(t, 1, 0, (const uint8_t *)s, strlen(s), v);
}

static void test_convert(void **state)
{
	struct ad_value v;

	(void)state;
	assert_int_equal(conv(AD_PT_FLOAT64, " 21.5 ", &v), 0);
	assert_int_equal(v.type, AD_VAL_DOUBLE);
	assert_true(v.d == 21.5);
	assert_int_equal(conv(AD_PT_FLOAT64, "-1.5e3", &v), 0);
	assert_true(v.d == -1500);
	assert_int_equal(conv(AD_PT_FLOAT64, "nan", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_FLOAT64, "inf", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_FLOAT64, "1e999", &v), -ERANGE);
	assert_int_equal(conv(AD_PT_FLOAT64, "21,5", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_FLOAT64, "", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_INT16, "-32768", &v), 0);
	assert_int_equal(v.type, AD_VAL_INT);
	assert_int_equal(v.i, -32768);
	assert_int_equal(conv(AD_PT_INT16, "32768", &v), -ERANGE);
	assert_int_equal(conv(AD_PT_UINT16, "-1", &v), -ERANGE);
	assert_int_equal(conv(AD_PT_UINT16, "0x1A2b", &v), 0);
	assert_int_equal(v.type, AD_VAL_UINT);
	assert_int_equal(v.u, 0x1a2b);
	assert_int_equal(conv(AD_PT_INT32, "-0x10", &v), 0);
	assert_int_equal(v.i, -16);
	assert_int_equal(conv(AD_PT_INT32, "21.0", &v), 0);
	assert_int_equal(v.i, 21);
	assert_int_equal(conv(AD_PT_INT32, "21.5", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_UINT64, "18446744073709551615", &v), 0);
	assert_true(v.u == UINT64_MAX);
	assert_int_equal(conv(AD_PT_UINT64, "18446744073709551616", &v), -ERANGE);
	assert_int_equal(conv(AD_PT_INT64, "12abc", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_BOOL, "ON", &v), 0);
	assert_true(v.b);
	assert_int_equal(conv(AD_PT_BOOL, "0", &v), 0);
	assert_false(v.b);
	assert_int_equal(conv(AD_PT_BOOL, "2.5", &v), 0);
	assert_true(v.b);
	assert_int_equal(conv(AD_PT_BOOL, "maybe", &v), -EINVAL);
	assert_int_equal(conv(AD_PT_STRING, "  hello world ", &v), 0);
	assert_int_equal(v.s.len, 11);
	/* a 65-character number is refused before any copy */
	assert_int_equal(conv(AD_PT_FLOAT64,
			      "1111111111111111111111111111111111111111111111111111111111111111.5",
			      &v),
			 -ERANGE);
	/* scale and offset make a double */
	assert_int_equal(ser_convert_text(AD_PT_INT16, 0.1, -40, (const uint8_t *)"615", 3, &v), 0);
	assert_int_equal(v.type, AD_VAL_DOUBLE);
	assert_true(v.d > 21.49 && v.d < 21.51);
	assert_int_equal(ser_convert_num(AD_PT_UINT16, 1, 0, 65536, &v), -ERANGE);
	assert_int_equal(ser_convert_num(AD_PT_UINT16, 1, 0, 1.5, &v), -EINVAL);
	assert_int_equal(ser_convert_num(AD_PT_STRING, 1, 0, 1, &v), -EINVAL);
}

static int render(const char *tmpl, const struct ad_value *v, double scale, double offset,
		  char *out, size_t cap, const char **why)
{
	struct ser_fmt f;
	int n;

	n = ser_fmt_compile((const uint8_t *)tmpl, strlen(tmpl), &f, why);
	if (n)
		return n;
	n = ser_fmt_render(&f, v, scale, offset, (uint8_t *)out, cap - 1, why);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static void test_fmt(void **state)
{
	struct ad_value d = { .type = AD_VAL_DOUBLE, .d = 21.5 };
	struct ad_value i = { .type = AD_VAL_INT, .i = -7 };
	struct ad_value s = { .type = AD_VAL_STRING, .s = GW_SLICE_STR("ON") };
	struct ad_value b = { .type = AD_VAL_BOOL, .b = true };
	const char *why = NULL;
	char out[300];

	(void)state;
	assert_int_equal(render("SET %v\r\n", &d, 1, 0, out, sizeof(out), &why), 10);
	assert_string_equal(out, "SET 21.5\r\n");
	assert_int_equal(render("SOUR:VOLT %.3f", &d, 1, 0, out, sizeof(out), &why), 16);
	assert_string_equal(out, "SOUR:VOLT 21.500");
	assert_true(render("T%05.1f%%", &d, 1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "T021.5%");
	assert_true(render("%d", &i, 1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "-7");
	assert_true(render("R%+04d!", &i, 1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "R-007!");
	assert_true(render("%v", &s, 1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "ON");
	assert_true(render("[%-4s]", &s, 1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "[ON  ]");
	assert_true(render("%v", &b, 1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "1");
	assert_true(render("%X", &(struct ad_value){ .type = AD_VAL_UINT, .u = 255 }, 1, 0, out,
			   sizeof(out), &why) > 0);
	assert_string_equal(out, "FF");
	/* scale: the device wants tenths; 21.5 with scale 0.1 is 215 */
	assert_true(render("S%d", &d, 0.1, 0, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "S215");
	assert_true(render("%v", &d, 0.5, 1, out, sizeof(out), &why) > 0);
	assert_string_equal(out, "41");
	/* refused values */
	assert_int_equal(render("%d", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_string_equal(why, "the command takes an integer");
	assert_int_equal(render("%u", &i, 1, 0, out, sizeof(out), &why), -ERANGE);
	assert_int_equal(render("%f", &s, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%d", &(struct ad_value){ .type = AD_VAL_DOUBLE, .d = 1e300 }, 1, 0,
				out, sizeof(out), &why),
			 -ERANGE);
	assert_int_equal(render("%v", &(struct ad_value){ .type = AD_VAL_DOUBLE, .d = 1.0 / 0.0 },
				1, 0, out, sizeof(out), &why),
			 -EINVAL);
	assert_int_equal(render("%250f", &d, 1, 0, out, sizeof(out), &why), -EMSGSIZE);
	/* templates refused at config time */
	assert_int_equal(render("SET", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%d %d", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%n", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%s%", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%*d", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%ld", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("%5v", &d, 1, 0, out, sizeof(out), &why), -EINVAL);
	assert_int_equal(render("100%% %v", &d, 1, 0, out, sizeof(out), &why), 9);
	assert_string_equal(out, "100% 21.5");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convert),
		cmocka_unit_test(test_fmt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
