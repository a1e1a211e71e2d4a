/*
 * fuzz_serial_kv.c - the kv parser (adapters/serial/serial_parse.c) on
 * arbitrary lines with the default and custom separators.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "temp", "hum", "", "a b", "=" };
	struct ser_point pts[GW_ARRAY_SIZE(keys)];
	struct ser_result res[GW_ARRAY_SIZE(keys)];
	struct ser_dev d = { .parser = SER_PARSE_KV,
			     .points = pts,
			     .n_points = GW_ARRAY_SIZE(pts) };
	struct ser_line l;
	uint8_t *line;
	unsigned int i;

	if (size < 1)
		return 0;
	line = malloc(size);
	if (!line)
		return 0;
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	memset(pts, 0, sizeof(pts));
	for (i = 0; i < GW_ARRAY_SIZE(keys); i++) {
		pts[i].key = keys[i];
		pts[i].type = (enum ad_point_type)((data[0] + i) % __AD_PT_MAX);
		pts[i].scale = 1;
	}
	d.pair_seps = data[0] & 1 ? "; ,\t" : "|";
	d.kv_seps = data[0] & 2 ? "=" : ":=";
	ser_line_init(&l, line, size - 1, NULL);
	(void)ser_parse(&d, &l, res);
	ser_line_fini(&l);
	free(line);
	return 0;
}
