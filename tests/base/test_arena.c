/*
 * test_arena.c - the bump arena behind cJSON's hooks (gateway/base/arena.h):
 * bumping and alignment, growth folded at reset, the cap, nesting, and the
 * hooks serving the arena only on the thread that entered it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/base/arena.h"
#include "gateway/base/base.h"

static void test_bump(void **state)
{
	struct gw_arena a;
	char *p, *q, *z;

	(void)state;
	gw_arena_init(&a, 256, 4096);
	p = gw_arena_alloc(&a, 10);
	q = gw_arena_alloc(&a, 1);
	z = gw_arena_alloc(&a, 0);
	assert_non_null(p);
	assert_non_null(q);
	assert_non_null(z);
	assert_true(p != q && q != z);
	/* Aligned for any type: what malloc() gives (16 bytes on x86-64, 8 on armhf). */
	assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
	assert_int_equal((uintptr_t)q % _Alignof(max_align_t), 0);
	memset(p, 0xaa, 10);
	assert_true(gw_arena_owns(&a, p) && gw_arena_owns(&a, q));
	assert_false(gw_arena_owns(&a, &a));
	assert_int_equal(a.grows, 1);
	gw_arena_reset(&a);
	assert_ptr_equal(gw_arena_alloc(&a, 10), p); /* the same chunk, from its start */
	assert_int_equal(a.grows, 1);
	gw_arena_fini(&a);
	assert_false(gw_arena_owns(&a, p));
}

/* A message bigger than the chunk grows the chain once; the reset folds it; then no growth. */
static void test_grow_fold(void **state)
{
	struct gw_arena a;
	unsigned int round, i;

	(void)state;
	gw_arena_init(&a, 256, 64 * 1024);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 40; i++) /* 40 x 100 bytes: past the 256-byte warm chunk */
			assert_non_null(gw_arena_alloc(&a, 100));
		if (round == 0)
			assert_true(a.grows > 1);
		gw_arena_reset(&a);
	}
	/* Round 0 grew and its reset folded the chain into one chunk: no growth since. */
	for (i = 0; i < 40; i++)
		assert_non_null(gw_arena_alloc(&a, 100));
	{
		unsigned long g = a.grows;

		gw_arena_reset(&a);
		for (i = 0; i < 40; i++)
			assert_non_null(gw_arena_alloc(&a, 100));
		assert_int_equal(a.grows, g);
	}
	assert_true(a.total <= a.cap);
	gw_arena_fini(&a);
}

static void test_cap(void **state)
{
	struct gw_arena a;
	unsigned long g = 0;
	unsigned int round, i, got;

	(void)state;
	gw_arena_init(&a, 256, 4096);
	assert_null(gw_arena_alloc(&a, 5000)); /* one block past the cap */
	assert_null(gw_arena_alloc(&a, SIZE_MAX));
	for (round = 0; round < 4; round++) {
		for (i = got = 0; i < 100; i++) /* 100 x 64 bytes: past the 4096-byte cap */
			got += gw_arena_alloc(&a, 64) != NULL;
		assert_true(got > 0 && got < 100);
		assert_true(a.total <= a.cap);
		if (round == 2)
			g = a.grows;
		gw_arena_reset(&a);
	}
	assert_int_equal(a.grows, g); /* at the cap: one chunk of the cap, nothing more taken */
	assert_true(a.refused > 0);
	gw_arena_fini(&a);
	gw_mem_fail_after(1); /* gw_malloc refuses: NULL, no crash */
	gw_arena_init(&a, 256, 4096);
	assert_null(gw_arena_alloc(&a, 8));
	gw_mem_fail_after(0);
	assert_non_null(gw_arena_alloc(&a, 8));
	gw_arena_fini(&a);
}

static void *other_thread(void *arg)
{
	struct gw_arena *a = arg;
	void *p = gw_arena_hook_malloc(32);

	/* The main thread's arena is entered, but not here: the heap. */
	if (p && gw_arena_owns(a, p)) {
		gw_arena_hook_free(p); /* no-op on an arena pointer */
		return (void *)1;
	}
	gw_arena_hook_free(p);
	return NULL;
}

static void test_hooks(void **state)
{
	struct gw_arena a, b;
	pthread_t t;
	void *p, *q, *r, *res = (void *)1;

	(void)state;
	gw_arena_init(&a, 256, 4096);
	gw_arena_init(&b, 256, 4096);
	p = gw_arena_hook_malloc(16); /* nothing entered: the heap */
	assert_non_null(p);
	gw_arena_hook_free(p);
	gw_arena_enter(&a);
	p = gw_arena_hook_malloc(16);
	assert_true(gw_arena_owns(&a, p));
	assert_int_equal(pthread_create(&t, NULL, other_thread, &a), 0);
	assert_int_equal(pthread_join(t, &res), 0);
	assert_null(res);
	gw_arena_enter(&b); /* nested */
	q = gw_arena_hook_malloc(16);
	assert_true(gw_arena_owns(&b, q));
	gw_arena_hook_free(p); /* the outer arena's: a no-op, not free() */
	gw_arena_hook_free(q);
	gw_arena_leave(&b);
	r = gw_arena_hook_malloc(16);
	assert_true(gw_arena_owns(&a, r));
	gw_arena_leave(&a);
	r = gw_arena_hook_malloc(16);
	assert_false(gw_arena_owns(&a, r) || gw_arena_owns(&b, r));
	gw_arena_hook_free(r);
	gw_arena_hook_free(NULL);
	gw_arena_fini(&a);
	gw_arena_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bump),
		cmocka_unit_test(test_grow_fold),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_hooks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
