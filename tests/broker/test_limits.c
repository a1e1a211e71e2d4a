/*
 * test_limits.c - the token bucket and the per-source table (broker/limits.c),
 * on a fake clock.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "broker/limits.h"

static void test_rate(void **state)
{
	struct brk_rate r;
	int64_t now = 1000000;
	unsigned int i;

	(void)state;
	memset(&r, 0, sizeof(r));
	/* 2/s, bursts of 5: a fresh bucket gives 5 at once, then none. */
	for (i = 0; i < 5; i++)
		assert_true(brk_rate_take(&r, 2, 5, now));
	assert_false(brk_rate_take(&r, 2, 5, now));
	assert_false(brk_rate_full(&r, 2, 5, now));
	/* One token per 500 ms. */
	assert_false(brk_rate_take(&r, 2, 5, now + 499));
	assert_true(brk_rate_take(&r, 2, 5, now + 500));
	assert_false(brk_rate_take(&r, 2, 5, now + 600));
	/* Refusals spend nothing: the next token is still due at +1000. */
	assert_true(brk_rate_take(&r, 2, 5, now + 1000));
	/* A long pause refills to the burst, not beyond. */
	now += 1000000;
	assert_true(brk_rate_full(&r, 2, 5, now));
	for (i = 0; i < 5; i++)
		assert_true(brk_rate_take(&r, 2, 5, now));
	assert_false(brk_rate_take(&r, 2, 5, now));
	/* A clock that steps back refills nothing. */
	assert_false(brk_rate_take(&r, 2, 5, now - 5000));
	assert_false(brk_rate_take(&r, 2, 5, now));
	/* Rate 0: no limit. */
	for (i = 0; i < 100; i++)
		assert_true(brk_rate_take(&r, 0, 0, now));
	/* Large gaps and rates do not overflow. */
	memset(&r, 0, sizeof(r));
	assert_true(brk_rate_take(&r, 1000000, 1, 1));
	assert_true(brk_rate_take(&r, 1000000, 1, INT64_MAX / 2));
	assert_false(brk_rate_take(&r, 1000000, 1, INT64_MAX / 2));
}

static struct brk_src_key v4(uint8_t last)
{
	struct brk_src_key k = { .family = AF_INET, .a = { 10, 0, 0, last } };

	return k;
}

static void test_per_source(void **state)
{
	struct brk_src_limits lim = { .max_conns = 2, .max_sources = 100 };
	struct brk_srctab *t;
	struct brk_src *a, *b, *c;
	struct brk_src_key k6 = { .family = AF_INET6, .a = { 10, 0, 0, 1 } };
	struct brk_src_key ka = v4(1), kb = v4(2);

	(void)state;
	assert_int_equal(brk_srctab_new(&lim, 42, &t), 0);
	assert_int_equal(brk_src_admit(t, &ka, 1, &a), BRK_SRC_OK);
	assert_int_equal(brk_src_admit(t, &ka, 1, &b), BRK_SRC_OK);
	assert_ptr_equal(a, b);
	assert_int_equal(brk_src_conns(a), 2);
	assert_int_equal(brk_src_admit(t, &ka, 1, &c), BRK_SRC_TOO_MANY);
	assert_null(c);
	/* Another source, and an IPv6 address with the same first bytes, are apart. */
	assert_int_equal(brk_src_admit(t, &kb, 1, &c), BRK_SRC_OK);
	assert_ptr_not_equal(c, a);
	brk_src_release(t, c);
	assert_int_equal(brk_src_admit(t, &k6, 1, &c), BRK_SRC_OK);
	assert_ptr_not_equal(c, a);
	brk_src_release(t, c);
	/* A close makes room. */
	brk_src_release(t, a);
	assert_int_equal(brk_src_admit(t, &ka, 2, &c), BRK_SRC_OK);
	/* Sources without connections (and no rate history) are forgotten. */
	assert_int_equal(brk_srctab_sweep(t, 3), 1);
	brk_src_release(t, a);
	brk_src_release(t, a);
	assert_int_equal(brk_srctab_sweep(t, 3), 0);
	brk_src_release(t, NULL);
	brk_srctab_free(t);
}

static void test_rate_per_source(void **state)
{
	struct brk_src_limits lim = { .rate = 1, .burst = 3, .max_sources = 100 };
	struct brk_srctab *t;
	struct brk_src *s[4];
	struct brk_src_key ka = v4(1), kb = v4(2);
	unsigned int i;

	(void)state;
	assert_int_equal(brk_srctab_new(&lim, 0, &t), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(brk_src_admit(t, &ka, 1000, &s[i]), BRK_SRC_OK);
		brk_src_release(t, s[i]); /* connect, close, connect... */
	}
	assert_int_equal(brk_src_admit(t, &ka, 1000, &s[3]), BRK_SRC_RATE);
	/* The others are not held back by it. */
	assert_int_equal(brk_src_admit(t, &kb, 1000, &s[3]), BRK_SRC_OK);
	brk_src_release(t, s[3]);
	/* Its history is kept by the sweep until it would change nothing. */
	assert_int_equal(brk_srctab_sweep(t, 1500), 2);
	assert_int_equal(brk_src_admit(t, &ka, 1999, &s[3]), BRK_SRC_RATE);
	assert_int_equal(brk_src_admit(t, &ka, 2000, &s[3]), BRK_SRC_OK);
	brk_src_release(t, s[3]);
	assert_int_equal(brk_srctab_sweep(t, 2500), 1);
	assert_int_equal(brk_srctab_sweep(t, 5000), 0);
	brk_srctab_free(t);
}

static void test_table_full(void **state)
{
	struct brk_src_limits lim = { .rate = 1, .burst = 1, .max_sources = 2 };
	struct brk_srctab *t;
	struct brk_src *a, *b, *c;
	struct brk_src_key k1 = v4(1), k2 = v4(2), k3 = v4(3);

	(void)state;
	assert_int_equal(brk_srctab_new(&lim, 7, &t), 0);
	assert_int_equal(brk_src_admit(t, &k1, 10, &a), BRK_SRC_OK);
	assert_int_equal(brk_src_admit(t, &k2, 10, &b), BRK_SRC_OK);
	assert_int_equal(brk_src_admit(t, &k3, 10, &c), BRK_SRC_FULL);
	assert_null(c);
	/* Once one of them is closed and its bucket full again, its place is taken. */
	brk_src_release(t, b);
	assert_int_equal(brk_src_admit(t, &k3, 500, &c), BRK_SRC_FULL);
	assert_int_equal(brk_src_admit(t, &k3, 1010, &c), BRK_SRC_OK);
	brk_srctab_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_per_source),
		cmocka_unit_test(test_rate_per_source),
		cmocka_unit_test(test_table_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
