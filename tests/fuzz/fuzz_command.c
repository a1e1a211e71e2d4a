/*
 * fuzz_command.c - gw_parse_command (gateway/reading.c) on arbitrary bytes:
 * the payload of a .../set command, which any MQTT client may publish. A
 * parsed value is rendered back as a result, which walks its string.
 */
#include <stdint.h>
#include <stddef.h>

#include "gateway/reading.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_slice payload = { .p = data, .len = size };
	uint8_t out[1024];
	struct gw_writer w;
	struct ad_value v;
	const char *why = NULL;
	char str[256];

	if (gw_parse_command(payload, &v, str, sizeof(str), &why) == 0) {
		gw_writer_init(&w, out, sizeof(out));
		gw_render_result(true, NULL, &v, 0, &w);
	}
	return 0;
}
