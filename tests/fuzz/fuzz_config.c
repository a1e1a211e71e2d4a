/*
 * fuzz_config.c - the configuration loader (gateway/config.c: inih, every key
 * table, templates, cross references, device maps) on arbitrary text.
 *
 * The loader reads files, so the input is put in a private directory under
 * /dev/shm (memory, not disk): the part before a line "%%" becomes
 * fieldmq.ini, the part after it devices.d/m.ini (the default devices glob
 * finds it); without "%%" the whole input is the device map and fieldmq.ini
 * is empty. Inputs whose values are absolute paths or climb with ".." are
 * skipped, so a glob or acl_file never reaches /dev or /proc.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static char dir[64], main_ini[128], map_ini[160];

/* Removes the directory when the process ends (a replay or a fuzz run). */
static void cleanup(void)
{
	char sub[128];

	remove(main_ini);
	remove(map_ini);
	snprintf(sub, sizeof(sub), "%s/devices.d", dir);
	remove(sub);
	remove(dir);
}

static int put(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (!f)
		return -1;
	if (n && fwrite(p, 1, n, f) != n)
		rc = -1;
	if (fclose(f))
		rc = -1;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *main_p = data, *map_p = data;
	size_t main_n = 0, map_n = size, i;
	struct gw_config cfg;
	char err[2048];

	if (size > 16384 || memchr(data, 0, size) || escapes(data, size))
		return 0;
	if (!dir[0]) {
		char sub[128];

		snprintf(dir, sizeof(dir), "/dev/shm/fuzz_config.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		snprintf(sub, sizeof(sub), "%s/devices.d", dir);
		snprintf(main_ini, sizeof(main_ini), "%s/fieldmq.ini", dir);
		snprintf(map_ini, sizeof(map_ini), "%s/m.ini", sub);
		if (mkdir(sub, 0700))
			abort();
		atexit(cleanup);
	}
	for (i = 0; i + 3 <= size; i++) {
		if ((i == 0 || data[i - 1] == '\n') && data[i] == '%' && data[i + 1] == '%' &&
		    (i + 2 == size || data[i + 2] == '\n')) {
			main_n = i;
			map_p = data + i + 2;
			map_n = size - i - 2;
			break;
		}
	}
	if (put(main_ini, main_p, main_n) || put(map_ini, map_p, map_n))
		abort();
	memset(&cfg, 0, sizeof(cfg));
	(void)gw_config_load(main_ini, &cfg, err, sizeof(err));
	gw_config_free(&cfg);
	return 0;
}
