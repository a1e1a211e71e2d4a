/*
 * test_metrics.c - the Prometheus text exposition writer (gateway/metrics.c)
 * and the latency histogram (gateway/base/hist.c): golden text.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/metrics.h"

static char buf[8192];

static struct gw_writer wr(size_t cap)
{
	struct gw_writer w;

	gw_writer_init(&w, buf, cap);
	memset(buf, 0, sizeof(buf));
	return w;
}

static void test_samples(void **state)
{
	struct gw_writer w = wr(sizeof(buf) - 1);
	struct gw_expo_label l[2] = { { "device", "boi\"ler\\\n" }, { "protocol", "modbus" } };

	(void)state;
	gw_expo_family(&w, "fieldmq_x_total", "counter", "Help with \\ and\nnewline.");
	gw_expo_u64(&w, "fieldmq_x_total", l, 2, 18446744073709551615ULL);
	gw_expo_u64(&w, "fieldmq_x_total", NULL, 0, 0);
	gw_expo_double(&w, "fieldmq_y", l + 1, 1, 1.5);
	gw_expo_double(&w, "fieldmq_y", NULL, 0, NAN);
	gw_expo_double(&w, "fieldmq_y", NULL, 0, -INFINITY);
	assert_int_equal(w.err, 0);
	assert_string_equal(buf,
			    "# HELP fieldmq_x_total Help with \\\\ and\\nnewline.\n"
			    "# TYPE fieldmq_x_total counter\n"
			    "fieldmq_x_total{device=\"boi\\\"ler\\\\\\n\",protocol=\"modbus\"} "
			    "18446744073709551615\n"
			    "fieldmq_x_total 0\n"
			    "fieldmq_y{protocol=\"modbus\"} 1.5\n"
			    "fieldmq_y NaN\n"
			    "fieldmq_y -Inf\n");
}

static void test_hist(void **state)
{
	struct gw_writer w = wr(sizeof(buf) - 1);
	struct gw_expo_label l = { "device", "d" };
	struct gw_hist h = { 0 }, h2 = { 0 };

	(void)state;
	gw_hist_observe_us(&h, 400);	  /* <= 0.0005 */
	gw_hist_observe_us(&h, 500);	  /* <= 0.0005 (bounds are inclusive) */
	gw_hist_observe_us(&h, 1000000);  /* <= 1 */
	gw_hist_observe_us(&h, 60000000); /* +Inf only */
	gw_hist_observe_us(&h, -5);	  /* counts as 0 */
	assert_int_equal(h.count, 5);
	assert_int_equal(h.sum_us, 400 + 500 + 1000000 + 60000000);
	gw_hist_add(&h2, &h);
	assert_memory_equal(&h, &h2, sizeof(h));
	gw_expo_hist(&w, "lat_seconds", &l, 1, &h);
	assert_int_equal(w.err, 0);
	assert_non_null(strstr(buf, "lat_seconds_bucket{device=\"d\",le=\"0.0005\"} 3\n"
				    "lat_seconds_bucket{device=\"d\",le=\"0.001\"} 3\n"
				    "lat_seconds_bucket{device=\"d\",le=\"0.0025\"} 3\n"));
	assert_non_null(strstr(buf, "lat_seconds_bucket{device=\"d\",le=\"1\"} 4\n"));
	assert_non_null(strstr(buf, "lat_seconds_bucket{device=\"d\",le=\"2.5\"} 4\n"));
	assert_non_null(strstr(buf, "lat_seconds_bucket{device=\"d\",le=\"10\"} 4\n"
				    "lat_seconds_bucket{device=\"d\",le=\"+Inf\"} 5\n"
				    "lat_seconds_sum{device=\"d\"} 61.000900000000001\n"
				    "lat_seconds_count{device=\"d\"} 5\n"));
	assert_int_equal(gw_hist_bound_us(GW_HIST_N), UINT64_MAX);
}

/* A writer too small keeps counting, so the caller can size a second attempt. */
static void test_overflow(void **state)
{
	struct gw_writer w = wr(10);

	(void)state;
	gw_expo_family(&w, "fieldmq_long_metric_name", "gauge", "Help.");
	assert_int_equal(w.err, -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_hist),
		cmocka_unit_test(test_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
