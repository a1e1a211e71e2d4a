/*
 * fuzz_serial_regex.c - the regex parser (adapters/serial/serial_parse.c) on
 * arbitrary lines: groups that take part or not, groups past the pattern's,
 * every point type; and write_command templates (ser_fmt_compile/render) on
 * the same bytes, since both turn untrusted text into values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static regex_t re;
	static bool compiled;
	struct ser_point pts[5];
	struct ser_result res[5];
	struct ser_dev d = {
		.parser = SER_PARSE_REGEX, .match = &re, .n_groups = 3, .points = pts, .n_points = 5
	};
	struct ser_fmt fmt;
	struct ad_value v;
	uint8_t out[SER_MAX_CMD];
	const char *why;
	struct ser_line l;
	uint8_t *line;
	unsigned int i;

	if (!compiled) {
		if (regcomp(&re, "^([A-Z]+)[=:] *([-+0-9.eE]+)( ([a-z%]+))?", REG_EXTENDED))
			abort();
		compiled = true;
	}
	if (size < 1)
		return 0;
	line = malloc(size);
	if (!line)
		return 0;
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	memset(pts, 0, sizeof(pts));
	for (i = 0; i < 5; i++) {
		pts[i].group = i;
		pts[i].type = (enum ad_point_type)((data[0] + i) % __AD_PT_MAX);
		pts[i].scale = data[0] & 0x80 ? 0.1 : 1;
		pts[i].offset = data[0] & 0x40 ? -40 : 0;
	}
	ser_line_init(&l, line, size - 1, NULL);
	(void)ser_parse(&d, &l, res);
	ser_line_fini(&l);
	if (!ser_fmt_compile(line, size - 1, &fmt, &why)) {
		v.type = AD_VAL_DOUBLE;
		v.d = (double)(int8_t)data[0] / 3;
		(void)ser_fmt_render(&fmt, &v, 1, 0, out, sizeof(out), &why);
		v.type = AD_VAL_STRING;
		v.s.p = line;
		v.s.len = size - 1;
		(void)ser_fmt_render(&fmt, &v, 1, 0, out, sizeof(out), &why);
	}
	free(line);
	return 0;
}
