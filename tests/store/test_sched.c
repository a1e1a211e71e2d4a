/*
 * test_sched.c - the store's commit policy (store/sched.c) with a fake
 * clock: a waiter commits at once, readings alone wait for sync_interval,
 * what arrives during a commit goes into the next one, a large batch goes at
 * once, and failed commits are retried one interval apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store_int.h"

#define INTERVAL 100

static void test_idle_nothing(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, INTERVAL);
	assert_int_equal(st__sched_next(&s, 1000, false), -1);
}

static void test_waiter_commits_at_once(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 1000, false); /* a reading */
	assert_int_equal(st__sched_next(&s, 1000, false), 1000 + INTERVAL);
	st__sched_add(&s, 1003, true); /* a held PUBACK */
	assert_int_equal(st__sched_next(&s, 1003, false), 1003);
	/* The reading goes in the same commit. */
	st__sched_start(&s);
	assert_int_equal(s.infl_ops, 2);
	assert_int_equal(st__sched_next(&s, 1003, false), -1);
	st__sched_done(&s, 1004, true);
	assert_int_equal(st__sched_next(&s, 1004, false), -1);
}

static void test_readings_wait_interval(void **state)
{
	struct st__sched s;
	int64_t t;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 5000, false);
	for (t = 5000; t < 5000 + INTERVAL; t += 7) {
		st__sched_add(&s, t, false);
		assert_int_equal(st__sched_next(&s, t, false), 5000 + INTERVAL);
	}
	/* Due: the time of the first reading plus the interval, not later. */
	assert_int_equal(st__sched_next(&s, 5000 + INTERVAL, false), 5000 + INTERVAL);
	assert_int_equal(st__sched_next(&s, 5000 + INTERVAL + 30, false), 5000 + INTERVAL + 30);
	st__sched_start(&s);
	st__sched_done(&s, 5200, true);
	/* The next reading starts its own window. */
	st__sched_add(&s, 5300, false);
	assert_int_equal(st__sched_next(&s, 5300, false), 5300 + INTERVAL);
}

static void test_burst_during_commit_goes_next(void **state)
{
	struct st__sched s;
	int i;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 0 + 10, true);
	st__sched_start(&s);
	assert_int_equal(s.infl_ops, 1);
	/* 500 waited appends while the writer is busy: no second commit. */
	for (i = 0; i < 500; i++) {
		st__sched_add(&s, 11, true);
		assert_int_equal(st__sched_next(&s, 11, false), -1);
	}
	st__sched_done(&s, 12, true);
	/* Writer idle again: the whole burst goes at once, in one commit. */
	assert_int_equal(st__sched_next(&s, 12, false), 12);
	st__sched_start(&s);
	assert_int_equal(s.infl_ops, 500);
	assert_int_equal(s.infl_waited, 500);
	assert_int_equal(s.n_ops, 0);
	st__sched_done(&s, 13, true);
	assert_int_equal(st__sched_next(&s, 13, false), -1);
}

static void test_readings_during_commit_keep_their_window(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 0 + 10, true);
	st__sched_start(&s);
	st__sched_add(&s, 11, false);
	st__sched_done(&s, 12, true);
	/* Only a reading is left: it waits for its interval. */
	assert_int_equal(st__sched_next(&s, 12, false), 11 + INTERVAL);
}

static void test_large_batch_at_once(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 50, false);
	assert_int_equal(st__sched_next(&s, 60, true), 60);
}

static void test_failures_retry_on_interval(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 0 + 10, true);
	st__sched_start(&s);
	st__sched_done(&s, 20, false);
	/* The failed op is pending again, and a waiter does not hurry the retry. */
	assert_int_equal(s.n_ops, 1);
	assert_int_equal(s.n_waited, 1);
	st__sched_add(&s, 25, true);
	assert_int_equal(st__sched_next(&s, 25, true), 20 + INTERVAL);
	st__sched_start(&s);
	assert_int_equal(s.infl_ops, 2);
	st__sched_done(&s, 130, true);
	assert_int_equal(st__sched_next(&s, 130, false), -1);
	/* Healthy again: a waiter commits at once. */
	st__sched_add(&s, 140, true);
	assert_int_equal(st__sched_next(&s, 140, false), 140);
}

static void test_forget(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, INTERVAL);
	st__sched_add(&s, 10, true);
	st__sched_forget(&s, true); /* dropped by drop_oldest before it was written */
	assert_int_equal(st__sched_next(&s, 10, false), -1);
}

static void test_zero_interval(void **state)
{
	struct st__sched s;

	(void)state;
	st__sched_init(&s, 0);
	st__sched_add(&s, 10, false);
	assert_int_equal(st__sched_next(&s, 10, false), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_nothing),
		cmocka_unit_test(test_waiter_commits_at_once),
		cmocka_unit_test(test_readings_wait_interval),
		cmocka_unit_test(test_burst_during_commit_goes_next),
		cmocka_unit_test(test_readings_during_commit_keep_their_window),
		cmocka_unit_test(test_large_batch_at_once),
		cmocka_unit_test(test_failures_retry_on_interval),
		cmocka_unit_test(test_forget),
		cmocka_unit_test(test_zero_interval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
