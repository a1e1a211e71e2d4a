/*
 * config_print.c - the effective configuration as INI text, for
 * fieldmq --check-config -v: every key of every table, printed from the rows
 * (one source for every default) with the device maps' values resolved.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config_int.h"

static uint64_t get_int(const void *src, unsigned char size)
{
	switch (size) {
	case 1:
		return *(const uint8_t *)src;
	case 2:
		return *(const uint16_t *)src;
	case 4:
		return *(const uint32_t *)src;
	default:
		return *(const uint64_t *)src;
	}
}

/* A duration in ms as it would be written: the largest unit that divides it. */
static void fmt_duration(uint64_t ms, char *buf, size_t n)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(units); i++) {
		if (ms && ms % units[i].ms == 0) {
			snprintf(buf, n, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64 "ms", ms);
}

static void fmt_size(uint64_t v, char *buf, size_t n)
{
	static const char units[] = "GMK";
	unsigned int i;

	for (i = 0; i < 3; i++) {
		uint64_t u = 1ULL << (10 * (3 - i));

		if (v && v % u == 0) {
			snprintf(buf, n, "%" PRIu64 "%c", v / u, units[i]);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64, v);
}

/* The shortest text that reads back as @d. */
static void fmt_double(double d, char *buf, size_t n)
{
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/*
 * Writes one key of @obj as "key = value" to @f; a key without a value
 * (an absent string, a secret, a custom key without a printer) is written
 * as a comment, so the output still reads as an INI file.
 */
static void print_key(FILE *f, const struct ad_driver *drivers, const void *obj,
		      const struct ad_key *k)
{
	const void *src = (const char *)obj + k->off;
	char buf[2048];
	unsigned int i;
	uint64_t v;

	buf[0] = '\0';
	if (k->flag & AD_KF_SECRET) {
		if (k->type == K_STR && *(char *const *)src)
			fprintf(f, "; %s = (set, not shown)\n", k->name);
		return;
	}
	switch (k->type) {
	case K_STR:
	case K_PATH:
		if (!*(char *const *)src) {
			fprintf(f, "; %s = (none)\n", k->name);
			return;
		}
		snprintf(buf, sizeof(buf), "%s", *(char *const *)src);
		break;
	case K_BOOL:
		snprintf(buf, sizeof(buf), "%s", *(const bool *)src ? "yes" : "no");
		break;
	case K_DUR:
		fmt_duration(get_int(src, k->size), buf, sizeof(buf));
		break;
	case K_SIZE:
		fmt_size(get_int(src, k->size), buf, sizeof(buf));
		break;
	case K_INT:
		v = get_int(src, k->size);
		if (!v && (k->flag & AD_KF_ZERO_UNSET)) {
			fprintf(f, "; %s = (none)\n", k->name);
			return;
		}
		if (k->min < 0 && k->size == 4)
			snprintf(buf, sizeof(buf), "%d", (int)(int32_t)v); /* -1: no limit */
		else
			snprintf(buf, sizeof(buf), "%" PRIu64, v);
		break;
	case K_DOUBLE:
		fmt_double(*(const double *)src, buf, sizeof(buf));
		break;
	case K_ENUM:
		v = get_int(src, k->size);
		snprintf(buf, sizeof(buf), "?");
		for (i = 0; k->enums[i]; i++) {
			if ((uint64_t)(k->enum_vals ? k->enum_vals[i] : (int)i + k->enum_base) ==
			    v) {
				snprintf(buf, sizeof(buf), "%s", k->enums[i]);
				break;
			}
		}
		break;
	case K_CUSTOM:
		if (k->fn == gw__k_protocol) {
			v = *(const enum ad_protocol *)src;
			snprintf(buf, sizeof(buf), "%s",
				 v < __AD_PROTO_MAX && drivers[v].name ? drivers[v].name : "?");
		} else if (k->show) {
			k->show(obj, k, buf, sizeof(buf));
			if (!buf[0] && (k->flag & F_KEEP))
				return; /* e.g. no bus = NAME */
		} else {
			fprintf(f, "; %s = (not shown)\n", k->name);
			return;
		}
		break;
	}
	fprintf(f, "%s = %s\n", k->name, buf);
}

static void print_keys(FILE *f, const struct ad_driver *drivers, const struct ad_keys *t,
		       const void *obj)
{
	unsigned int i;

	for (i = 0; obj && i < t->n; i++)
		if (t->rows[i].name)
			print_key(f, drivers, obj, &t->rows[i]);
}

void gw_config_print(const struct gw_config *cfg, FILE *f)
{
	const struct ad_driver *drivers = cfg->drivers ? cfg->drivers : gw_drivers;
	const struct ad_map *map = &cfg->devmap->map;
	unsigned int i;

	fprintf(f, "; %s: the effective configuration (defaults filled in)\n", cfg->path);
	for (i = 0; i < gw__n_main_sects; i++) {
		fprintf(f, "\n[%s]\n", gw__main_sects[i].name);
		print_keys(f, drivers, gw__main_sects[i].keys,
			   (const char *)cfg + gw__main_sects[i].off);
	}
	for (i = 0; i < cfg->broker.n_listen; i++) {
		const struct brk_listener_cfg *l = &cfg->broker.listen[i];
		if (!l->name)
			continue;
		fprintf(f, "\n[listener:%s]\n", l->name);
		print_keys(f, drivers, &gw__listener_keys, l);
	}
	for (i = 0; i < cfg->mqttsn.n_predefined; i++)
		fprintf(f, "%s%u = %s\n", i ? "" : "\n[mqttsn.predefined]\n",
			cfg->mqttsn.predefined[i].id, cfg->mqttsn.predefined[i].topic);
	fprintf(f,
		"\n; device maps (%s): %u devices, %u points; effective values (inherited,\n"
		"; protocol addresses after address_base)\n",
		cfg->gateway.devices ? cfg->gateway.devices : "", map->n_devices, map->n_points);
	for (i = 0; i < map->n_buses; i++) {
		const struct ad_bus *b = map->buses[i];
		const struct ad_schema *sc = drivers[b->protocol].schema;

		if (b->implicit || !sc)
			continue;
		fprintf(f, "\n[bus:%s]\n", b->name);
		print_keys(f, drivers, &gw__common_bus, b);
		print_keys(f, drivers, &sc->bus, b->ext);
	}
	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *d = map->devices[i];
		const struct ad_schema *sc = drivers[d->protocol].schema;
		unsigned int j;

		if (!sc)
			continue;
		fprintf(f, "\n[device:%s]\n", d->name);
		print_keys(f, drivers, &gw__common_device, d);
		print_keys(f, drivers, &sc->device, d->ext);
		if (d->bus && d->bus->implicit)
			print_keys(f, drivers, &sc->bus, d->bus->ext);
		for (j = 0; j < d->n_points; j++) {
			const struct ad_point *pt = d->points[j];

			fprintf(f, "\n[point:%s/%s]\n", d->name, pt->name);
			print_keys(f, drivers, &gw__common_point, pt);
			print_keys(f, drivers, &sc->point, pt->ext);
		}
	}
}
