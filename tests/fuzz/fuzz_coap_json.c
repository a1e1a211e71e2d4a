/*
 * fuzz_coap_json.c - JSON payloads of CoAP devices (adapters/coap/
 * coap_json.c): cJSON on arbitrary bytes, RFC 6901 pointers with escapes and
 * array indexes, SenML packs with base names, every point type. The tree is
 * built in a small arena (gateway/base/arena.h) that grows and hits its cap
 * on big inputs, as the daemon's does with cJSON's hooks installed; under
 * ASan the arena's free space and redzones are poisoned.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One arena for the whole run, as the adapter keeps one: a fuzz target's state, not the daemon's. */
static struct gw_arena arena;
static bool ready;

static void convert(const struct ad_coap_raw *raw)
{
	unsigned int t;

	for (t = 0; t < __AD_PT_MAX; t++) {
		struct ad_point pt = { .type = (enum ad_point_type)t, .scale = 1 };
		struct ad_value v;

		ad_coap_raw_to_value(&pt, raw, &v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ptrs[] = { "",	 "/temperature", "/a~1b/0", "/x/1/y", "/m~0n",
					    "/", "/arr/01",	 "/0" };
	static const char *const names[] = { "", "dev/temp", "urn:dev:ow:1/current", "x" };
	struct ad_coap_raw raw;
	unsigned int i;
	void *doc;

	if (!ready) {
		cJSON_InitHooks(&(cJSON_Hooks){ .malloc_fn = gw_arena_hook_malloc,
						.free_fn = gw_arena_hook_free });
		gw_arena_init(&arena, 256, 16 * 1024);
		ready = true;
	}
	doc = ad_coap_json_parse(&arena, data, size);
	if (!doc) {
		ad_coap_json_free(&arena, doc);
		return 0;
	}
	for (i = 0; i < GW_ARRAY_SIZE(ptrs); i++)
		if (ad_coap_json_get(doc, ptrs[i], &raw) == 0)
			convert(&raw);
	for (i = 0; i < GW_ARRAY_SIZE(names); i++)
		if (ad_coap_senml_get(doc, names[i], &raw) == 0)
			convert(&raw);
	ad_coap_json_free(&arena, doc);
	return 0;
}
