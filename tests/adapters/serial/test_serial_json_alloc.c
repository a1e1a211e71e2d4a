/*
 * test_serial_json_alloc.c - the json parser costs no allocator call per
 * line once its arena is warm: calls into the real allocator (malloc,
 * calloc, realloc, free, wrapped at link time: tests/alloc_count.h) counted
 * around rounds of an rtl_433 line, a line whose tree is bigger than the
 * warm arena and one whose tree is past the arena's cap (a bad line).
 */
#include <cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/serial/serial_int.h"
#include "tests/alloc_count.h"

#define ROUNDS 100

static char small[] = "{\"time\":\"2026-12-07 12:00:00\",\"model\":\"Acurite-Tower\",\"id\":1234,"
		      "\"channel\":\"A\",\"battery_ok\":1,\"temperature_C\":21.5,\"humidity\":40}";
static char big[16 * 1024], huge[32 * 1024];

/* An Acurite line with @n samples: about 64 bytes of tree per sample. */
static void line_with(char *buf, size_t cap, unsigned int n)
{
	size_t len = (size_t)snprintf(buf, cap,
				      "{\"model\":\"Acurite-Tower\",\"temperature_C\":22.5,"
				      "\"humidity\":41,\"samples\":[0");
	unsigned int i;

	for (i = 1; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, ",%u", i % 10);
	snprintf(buf + len, cap - len, "]}");
	assert_true(strlen(buf) < cap - 1);
}

static int parse(struct ser_dev *d, struct gw_arena *a, const char *s, struct ser_result *res)
{
	struct ser_line l;
	int rc;

	ser_line_init(&l, (const uint8_t *)s, strlen(s), a);
	rc = ser_parse(d, &l, res);
	ser_line_fini(&l);
	return rc;
}

static void test_no_alloc_when_warm(void **state)
{
	struct ser_point pts[2] = {
		{ .type = AD_PT_FLOAT64, .scale = 1, .json_pointer = "/temperature_C" },
		{ .type = AD_PT_UINT16, .scale = 1, .json_pointer = "/humidity" },
	};
	struct ser_dev d = { .parser = SER_PARSE_JSON, .points = pts, .n_points = 2 };
	char match[] = "/model=Acurite-Tower";
	struct ser_result res[2];
	const char *why;
	struct gw_arena a;
	unsigned long before;
	unsigned int i;

	(void)state;
	assert_int_equal(ser_jmatch_parse(match, &d, &why), 0);
	line_with(big, sizeof(big), 300);    /* ~19 KiB of tree: past the 4 KiB warm chunk */
	line_with(huge, sizeof(huge), 6000); /* ~380 KiB of tree: past the 256 KiB cap */
	gw_arena_init(&a, SER_JSON_ARENA_WARM, SER_JSON_ARENA_CAP);

	/* The counter sees cJSON's heap allocations: without an arena a line costs some. */
	before = alloc_calls;
	assert_int_equal(parse(&d, NULL, small, res), 1);
	assert_true(alloc_calls - before > 5);

	/* Warm-up: the first round grows the arena (to the cap, for the huge line). */
	assert_int_equal(parse(&d, &a, small, res), 1);
	assert_int_equal(parse(&d, &a, big, res), 1);
	assert_int_equal(parse(&d, &a, huge, res), -EBADMSG);
	assert_true(a.refused > 0);

	before = alloc_calls;
	for (i = 0; i < ROUNDS; i++) {
		assert_int_equal(parse(&d, &a, small, res), 1);
		assert_int_equal(res[0].found, SER_OK);
		assert_true(res[0].value.d == 21.5);
		assert_int_equal(res[1].value.u, 40);
		assert_int_equal(parse(&d, &a, big, res), 1);
		assert_true(res[0].value.d == 22.5);
		assert_int_equal(parse(&d, &a, huge, res), -EBADMSG); /* past the cap: a bad line */
	}
	assert_int_equal(alloc_calls - before, 0);
	assert_true(a.total <= SER_JSON_ARENA_CAP);
	gw_arena_fini(&a);
}

/* Without the huge line the arena stays at what the big one needs, and still allocates nothing. */
static void test_grown_below_cap(void **state)
{
	struct ser_point pt = { .type = AD_PT_FLOAT64,
				.scale = 1,
				.json_pointer = "/temperature_C" };
	struct ser_dev d = { .parser = SER_PARSE_JSON, .points = &pt, .n_points = 1 };
	struct ser_result res[1];
	struct gw_arena a;
	unsigned long before;
	unsigned int i;

	(void)state;
	line_with(big, sizeof(big), 300);
	gw_arena_init(&a, SER_JSON_ARENA_WARM, SER_JSON_ARENA_CAP);
	assert_int_equal(parse(&d, &a, small, res), 1);
	assert_int_equal(parse(&d, &a, big, res), 1);
	before = alloc_calls;
	for (i = 0; i < ROUNDS; i++) {
		assert_int_equal(parse(&d, &a, big, res), 1);
		assert_int_equal(parse(&d, &a, small, res), 1);
		assert_int_equal(parse(&d, &a, "{\"temperature_C\":", res), -EBADMSG);
	}
	assert_int_equal(alloc_calls - before, 0);
	assert_true(a.total > SER_JSON_ARENA_WARM && a.total < SER_JSON_ARENA_CAP);
	gw_arena_fini(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_alloc_when_warm),
		cmocka_unit_test(test_grown_below_cap),
	};

	/* As gateway/main.c does at start. */
	cJSON_InitHooks(
		&(cJSON_Hooks){ .malloc_fn = gw_arena_hook_malloc, .free_fn = gw_arena_hook_free });
	return cmocka_run_group_tests(tests, NULL, NULL);
}
