/*
 * fuzz_serial_csv.c - the csv parser (adapters/serial/serial_parse.c) on
 * arbitrary lines: quoted fields, columns past the end, header lines naming
 * columns, every point type. The first byte picks the separator and header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seps[] = { ',', ';', '\t', ' ' };
	struct ser_point pts[6];
	struct ser_result res[6];
	struct ser_dev d = { .parser = SER_PARSE_CSV, .points = pts, .n_points = 6 };
	struct ser_line l;
	uint8_t *line;
	unsigned int i, pass;

	if (size < 1)
		return 0;
	line = malloc(size);
	if (!line)
		return 0;
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	memset(pts, 0, sizeof(pts));
	for (i = 0; i < 6; i++) {
		pts[i].type = (enum ad_point_type)((data[0] + i) % __AD_PT_MAX);
		pts[i].scale = 1;
		pts[i].column = i < 4 ? i * 21 + 1 : 0;
	}
	pts[4].column_name = "temp";
	pts[5].column_name = "\"q\"";
	d.separator = seps[data[0] & 3];
	d.header = data[0] & 4;
	/* twice: a header taken on the first pass sets the columns for the second */
	for (pass = 0; pass < 2; pass++) {
		ser_line_init(&l, line, size - 1, NULL);
		(void)ser_parse(&d, &l, res);
		ser_line_fini(&l);
	}
	free(line);
	return 0;
}
