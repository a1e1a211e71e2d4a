/*
 * fuzz_serial_json.c - the json parser (adapters/serial/serial_parse.c):
 * cJSON on arbitrary lines, a match on two pointers, RFC 6901 pointers with
 * escapes and array indexes, every point type. The tree is built in a small
 * arena (gateway/base/arena.h) that grows and hits its cap on big inputs, as
 * the daemon's does with cJSON's hooks installed; under ASan the arena's
 * free space and redzones are poisoned.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One arena for the whole run, as a port keeps one: a fuzz target's state, not the daemon's. */
static struct gw_arena arena;
static bool ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ptrs[] = { "",	      "/temperature_C", "/a~1b/0",
					    "/x/1/y", "/m~0n",		"/id",
					    "/",      "/arr/01" };
	static const enum ad_point_type types[] = { AD_PT_FLOAT64, AD_PT_INT16, AD_PT_UINT64,
						    AD_PT_BOOL, AD_PT_STRING };
	struct ser_point pts[GW_ARRAY_SIZE(ptrs)];
	struct ser_result res[GW_ARRAY_SIZE(ptrs)];
	char match[] = "/model=X,/id=1";
	struct ser_dev d = { .parser = SER_PARSE_JSON,
			     .points = pts,
			     .n_points = GW_ARRAY_SIZE(pts) };
	const char *why;
	struct ser_line l;
	uint8_t *line;
	unsigned int i;

	if (size < 1)
		return 0;
	if (!ready) {
		cJSON_InitHooks(&(cJSON_Hooks){ .malloc_fn = gw_arena_hook_malloc,
						.free_fn = gw_arena_hook_free });
		gw_arena_init(&arena, 256, 16 * 1024);
		ready = true;
	}
	line = malloc(size);
	if (!line)
		return 0;
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	memset(pts, 0, sizeof(pts));
	for (i = 0; i < GW_ARRAY_SIZE(ptrs); i++) {
		pts[i].json_pointer = ptrs[i];
		pts[i].type = types[(data[0] + i) % GW_ARRAY_SIZE(types)];
		pts[i].scale = data[0] & 0x80 ? 0.5 : 1;
	}
	if (data[0] & 0x40)
		(void)ser_jmatch_parse(match, &d, &why);
	ser_line_init(&l, line, size - 1, &arena);
	(void)ser_parse(&d, &l, res);
	ser_line_fini(&l);
	free(line);
	return 0;
}
