/*
 * fuzz_serial_nmea.c - the NMEA 0183 decoder and the nmea parser
 * (adapters/serial/serial_nmea.c, serial_parse.c) on arbitrary lines, with
 * every field asked for as a number and utc as text too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ser_point pts[__SER_NMEA_MAX + 1];
	struct ser_result res[__SER_NMEA_MAX + 1];
	struct ser_dev d = { .parser = SER_PARSE_NMEA,
			     .points = pts,
			     .n_points = GW_ARRAY_SIZE(pts) };
	struct ser_nmea n;
	struct ser_line l;
	uint8_t *line;
	unsigned int i;

	line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	memset(pts, 0, sizeof(pts));
	for (i = 0; i < __SER_NMEA_MAX; i++) {
		pts[i].type = i % 3 ? AD_PT_FLOAT64 : AD_PT_INT32;
		pts[i].scale = 1;
		pts[i].field = (enum ser_nmea_field)i;
	}
	pts[__SER_NMEA_MAX] = pts[SER_NMEA_UTC];
	pts[__SER_NMEA_MAX].type = AD_PT_STRING;
	(void)ser_nmea_decode(line, size, &n);
	ser_line_init(&l, line, size, NULL);
	if (ser_parse(&d, &l, res) == 1) {
		for (i = 0; i < d.n_points; i++)
			if (res[i].found == SER_OK && res[i].value.type == AD_VAL_STRING &&
			    res[i].value.s.len >= sizeof(res[i].text))
				abort();
	}
	ser_line_fini(&l);
	free(line);
	return 0;
}
