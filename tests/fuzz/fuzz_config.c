/*
 * fuzz_config.c - the configuration loader (gateway/config.c: inih, every key
 * table, templates, cross references, device maps) on arbitrary text, from
 * memory (gw_config_load_mem: inih reads the buffers through fmemopen).
 *
 * The part of the input before a line "%%" is fieldmq.ini, the part after it
 * devices.d/m.ini (the default devices glob matches it); without "%%" the
 * whole input is the device map and fieldmq.ini is empty. Both live under a
 * folder that does not exist, so a relative acl_file or certificate names
 * nothing on the disk; inputs whose values are absolute paths or climb with
 * ".." are skipped, so such a key never reaches /dev or /proc.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A value (after '=' and blanks) that starts with '/', or any "..". */
static bool escapes(const uint8_t *p, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		if (p[i] == '.' && i + 1 < n && p[i + 1] == '.')
			return true;
		if (p[i] != '=' && p[i] != ':')
			continue;
		for (k = i + 1; k < n && (p[k] == ' ' || p[k] == '\t'); k++)
			;
		if (k < n && p[k] == '/')
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_config_file files[2] = {
		{ "/nonexistent.fuzz_config/fieldmq.ini", (const char *)data, 0 },
		{ "/nonexistent.fuzz_config/devices.d/m.ini", (const char *)data, size },
	};
	struct gw_config cfg;
	char err[2048];
	size_t i;

	if (size > 16384 || memchr(data, 0, size) || escapes(data, size))
		return 0;
	for (i = 0; i + 2 <= size; i++) {
		if ((i == 0 || data[i - 1] == '\n') && data[i] == '%' && data[i + 1] == '%' &&
		    (i + 2 == size || data[i + 2] == '\n')) {
			files[0].len = i;
			files[1].text = (const char *)data + i + 2;
			files[1].len = size - i - 2;
			break;
		}
	}
	(void)gw_config_load_mem(files, 2, &cfg, err, sizeof(err));
	gw_config_free(&cfg);
	return 0;
}
