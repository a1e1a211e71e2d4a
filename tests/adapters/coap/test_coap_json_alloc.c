/*
 * test_coap_json_alloc.c - the CoAP adapter's JSON and SenML parsing costs
 * no allocator call per payload once its arena is warm: calls into the real
 * allocator (malloc, calloc, realloc, free, wrapped at link time:
 * tests/alloc_count.h) counted around rounds of a JSON document, a SenML
 * pack, a pack whose tree is bigger than the warm arena and one whose tree
 * is past the arena's cap (not parsed: a bad value).
 */
#include <cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/coap/coap_int.h"
#include "tests/alloc_count.h"

#define ROUNDS 100

static const char doc[] = "{\"temperature\":21.5,\"a/b\":[1,{\"m~n\":true}],\"s\":\"hall\"}";
static const char pack[] = "[{\"bn\":\"urn:dev:ow:1/\",\"n\":\"voltage\",\"u\":\"V\",\"v\":120.1},"
			   "{\"n\":\"current\",\"v\":1.2},{\"n\":\"door\",\"vb\":true}]";
static char big[32 * 1024], huge[128 * 1024];

/* A pack of @n records (about 220 bytes of tree each), "r<n-1>" last with v = n - 1. */
static void pack_of(char *buf, size_t cap, unsigned int n)
{
	size_t len = (size_t)snprintf(buf, cap, "[{\"bn\":\"dev/\",\"n\":\"r0\",\"v\":0}");
	unsigned int i;

	for (i = 1; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, ",{\"n\":\"r%u\",\"v\":%u}", i, i);
	snprintf(buf + len, cap - len, "]");
	assert_true(strlen(buf) < cap - 1);
}

/*
 * Parse @s in @a, read @ptr (JSON) or @name (SenML), free: what the adapter
 * does per notification. A string is compared with @want_s before the free
 * (its slice points into the tree: after the reset ASan reports a read).
 */
static int read_one(struct gw_arena *a, const char *s, const char *ptr, const char *name,
		    const char *want_s, struct ad_coap_raw *raw)
{
	void *j = ad_coap_json_parse(a, (const uint8_t *)s, strlen(s));
	int rc = -EBADMSG;

	if (j)
		rc = ptr ? ad_coap_json_get(j, ptr, raw) : ad_coap_senml_get(j, name, raw);
	if (!rc && want_s)
		assert_true(raw->kind == AD_COAP_RAW_STR && gw_slice_eq_cstr(raw->s, want_s));
	ad_coap_json_free(a, j);
	return rc;
}

static void round_of(struct gw_arena *a)
{
	struct ad_coap_raw r;

	assert_int_equal(read_one(a, doc, "/temperature", NULL, NULL, &r), 0);
	assert_true(r.num == 21.5);
	assert_int_equal(read_one(a, doc, "/s", NULL, "hall", &r), 0);
	assert_int_equal(read_one(a, pack, NULL, "urn:dev:ow:1/current", NULL, &r), 0);
	assert_true(r.num == 1.2);
	assert_int_equal(read_one(a, big, NULL, "dev/r149", NULL, &r), 0);
	assert_true(r.is_int && r.i == 149);
	assert_int_equal(read_one(a, huge, NULL, "dev/r0", NULL, &r), -EBADMSG); /* past the cap */
	assert_int_equal(read_one(a, "{\"a\":", "/a", NULL, NULL, &r), -EBADMSG);
}

static void test_no_alloc_when_warm(void **state)
{
	struct ad_coap_raw r;
	struct gw_arena a;
	unsigned long before;
	unsigned int i;

	(void)state;
	pack_of(big, sizeof(big), 150);	   /* ~30 KiB of tree: past the 4 KiB warm chunk */
	pack_of(huge, sizeof(huge), 2000); /* ~400 KiB of tree: past the 256 KiB cap */
	gw_arena_init(&a, AD_COAP_JSON_ARENA_WARM, AD_COAP_JSON_ARENA_CAP);

	/* The counter sees cJSON's heap allocations: without an arena a payload costs some. */
	before = alloc_calls;
	assert_int_equal(read_one(NULL, pack, NULL, "urn:dev:ow:1/current", NULL, &r), 0);
	assert_true(alloc_calls - before > 5);

	round_of(&a); /* warm-up: grows the arena, to the cap for the huge pack */
	assert_true(a.refused > 0);
	before = alloc_calls;
	for (i = 0; i < ROUNDS; i++)
		round_of(&a);
	assert_int_equal(alloc_calls - before, 0);
	assert_true(a.total <= AD_COAP_JSON_ARENA_CAP);
	gw_arena_fini(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_alloc_when_warm),
	};

	/* As gateway/main.c does at start. */
	cJSON_InitHooks(
		&(cJSON_Hooks){ .malloc_fn = gw_arena_hook_malloc, .free_fn = gw_arena_hook_free });
	return cmocka_run_group_tests(tests, NULL, NULL);
}
