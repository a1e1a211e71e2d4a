/*
 * config_devmap.c - the device maps: the keys every adapter's [bus:],
 * [device:] and [point:] sections share, the records of those sections as
 * read, and their resolution once every file of the devices glob is read
 * (the device's protocol says which adapter's key tables take the rest),
 * with the cross references between buses, devices and points.
 */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway/config_int.h"

static const char *const point_types[] = { AD_POINT_TYPE_NAMES, NULL };
static const char *const accesses[] = { "r", "rw", NULL };

/* ------------------------------------------------- device map: common keys */

/*
 * The keys every adapter's sections share. Anything else in a [bus:],
 * [device:] or [point:] section belongs to the adapter of its protocol
 * (struct ad_schema, from the registry).
 */
int gw__k_protocol(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	enum ad_protocol *out = (enum ad_protocol *)((char *)base + k->off);
	char names[256];
	size_t pos = 0;
	unsigned int i;

	names[0] = '\0';
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		if (!p->drivers[i].name)
			continue;
		if (!strcasecmp(val, p->drivers[i].name)) {
			*out = (enum ad_protocol)i;
			return 0;
		}
		pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", pos ? " | " : "",
					p->drivers[i].name);
		pos = GW_MIN(pos, sizeof(names) - 1);
	}
	gw__cfg_error(p, p->line, "[%s] %s: '%s': expected %s", p->section, k->name, val, names);
	return -EINVAL;
}

static int k_busref(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct dev_tmp *dt = p->cur_dev;

	(void)k;
	(void)base;
	if (!gw__id_ok(val, true)) {
		gw__cfg_error(p, p->line,
			      "[%s] bus: '%s': expected the name of a [bus:NAME] section",
			      p->section, val);
		return -EINVAL;
	}
	dt->bus_name = gw__arena_strdup(p->arena, val);
	dt->bus_line = p->line;
	return 0;
}

static void show_busref(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const struct ad_device *d = obj;

	(void)k;
	snprintf(buf, n, "%s", d->bus && !d->bus->implicit ? d->bus->name : "");
}

static const struct ad_key common_bus_keys[__AD_CB_MAX] = {
	[AD_CB_PROTOCOL] = { .name = "protocol",
			     .type = K_CUSTOM,
			     .off = offsetof(struct ad_bus, protocol),
			     .fn = gw__k_protocol,
			     .flag = F_KEEP,
			     .help = "default: the protocol of the devices on the bus" },
};

static const struct ad_key common_device_keys[__AD_CD_MAX] = {
	[AD_CD_PROTOCOL] = { .name = "protocol",
			     .type = K_CUSTOM,
			     .off = offsetof(struct ad_device, protocol),
			     .fn = gw__k_protocol,
			     .flag = F_KEEP,
			     .def = "modbus" },
	[AD_CD_BUS] = { .name = "bus",
			.type = K_CUSTOM,
			.fn = k_busref,
			.show = show_busref,
			.flag = F_KEEP,
			.help = "a [bus:NAME], or the transport keys inline" },
	[AD_CD_POLL] = { .name = "poll",
			 .type = K_DUR,
			 .off = offsetof(struct ad_device, poll_ms),
			 .size = 4,
			 .min = 10,
			 .max = 86400000,
			 .def = "1s" },
	[AD_CD_PUBLISH] = { .name = "publish",
			    .type = K_ENUM,
			    .off = offsetof(struct ad_device, publish),
			    .size = sizeof(enum ad_publish),
			    .enums = gw__publishes + 1,
			    .enum_base = 1,
			    .help = "default: [gateway] publish" },
};

/*
 * [point:] device_class: a Home Assistant device class (lower-case letters,
 * digits and '_'; which names HA knows depends on the component and its
 * version, so they are not listed here). state_class: one of HA's.
 */
static int k_point_class(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	static const char *const state_classes[] = { "measurement", "measurement_angle", "total",
						     "total_increasing" };
	struct parse *p = P(ap);
	const char *c;
	unsigned int i;

	if (k->off == offsetof(struct ad_point, state_class)) {
		for (i = 0; *val && i < GW_ARRAY_SIZE(state_classes); i++)
			if (!strcmp(val, state_classes[i]))
				break;
		if (*val && i == GW_ARRAY_SIZE(state_classes)) {
			gw__cfg_error(
				p, p->line,
				"[%s] %s: '%s': expected measurement | measurement_angle | total | total_increasing",
				p->section, k->name, val);
			return -EINVAL;
		}
	} else {
		for (c = val; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
				break;
		if (*c) {
			gw__cfg_error(
				p, p->line,
				"[%s] %s: '%s': expected a Home Assistant device class (a-z, 0-9, '_')",
				p->section, k->name, val);
			return -EINVAL;
		}
	}
	*(char **)((char *)base + k->off) = gw__arena_strdup(p->arena, val);
	return 0;
}

static const struct ad_key common_point_keys[__AD_CP_MAX] = {
	[AD_CP_TYPE] = { .name = "type",
			 .type = K_ENUM,
			 .off = offsetof(struct ad_point, type),
			 .size = sizeof(enum ad_point_type),
			 .enums = point_types,
			 .help = "default: the adapter's" },
	[AD_CP_SCALE] = { .name = "scale",
			  .type = K_DOUBLE,
			  .off = offsetof(struct ad_point, scale),
			  .def = "1",
			  .help = "value = raw * scale + offset" },
	[AD_CP_OFFSET] = { .name = "offset",
			   .type = K_DOUBLE,
			   .off = offsetof(struct ad_point, offset),
			   .def = "0" },
	[AD_CP_DEADBAND] = { .name = "deadband",
			     .type = K_DOUBLE,
			     .off = offsetof(struct ad_point, deadband),
			     .flag = F_NONNEG,
			     .def = "0",
			     .help = "on_change gw__publishes only when |new - last| > deadband" },
	[AD_CP_UNIT] = { .name = "unit",
			 .type = K_STR,
			 .off = offsetof(struct ad_point, unit),
			 .def = "" },
	[AD_CP_ACCESS] = { .name = "access",
			   .type = K_ENUM,
			   .off = offsetof(struct ad_point, writable),
			   .size = 1,
			   .enums = accesses,
			   .def = "r",
			   .help = "rw listens on .../set" },
	[AD_CP_PUBLISH] = { .name = "publish",
			    .type = K_ENUM,
			    .off = offsetof(struct ad_point, publish),
			    .size = sizeof(enum ad_publish),
			    .enums = gw__publishes + 1,
			    .enum_base = 1,
			    .help = "default: the device's" },
	[AD_CP_DEVICE_CLASS] = { .name = "device_class",
				 .type = K_CUSTOM,
				 .off = offsetof(struct ad_point, device_class),
				 .fn = k_point_class,
				 .show = gw__show_str,
				 .def = "",
				 .help = "Home Assistant discovery, e.g. temperature" },
	[AD_CP_STATE_CLASS] = { .name = "state_class",
				.type = K_CUSTOM,
				.off = offsetof(struct ad_point, state_class),
				.fn = k_point_class,
				.show = gw__show_str,
				.def = "",
				.help = "Home Assistant discovery: measurement | total | ..." },
};

const struct ad_keys gw__common_bus = { common_bus_keys, __AD_CB_MAX, 0 };
const struct ad_keys gw__common_device = { common_device_keys, __AD_CD_MAX, 0 };
const struct ad_keys gw__common_point = { common_point_keys, __AD_CP_MAX, 0 };

/*
 * Starts the record of a [bus:] / [device:] / [point:] section @name: its
 * keys are kept (in the load's scratch arena) until every file is read.
 * Returns the section's common object (zeroed, in the map's arena), or NULL
 * when out of memory.
 */
static void *map_object(struct parse *p, struct sect_tmp *st, size_t size, const char *name)
{
	st->section = gw__arena_strdup(&p->tmp, name);
	st->file = p->file;
	st->dir = p->dir;
	st->line = p->line;
	st->tail = &st->first;
	return st->section ? gw__arena_alloc(p->arena, size) : NULL;
}

/* A key of a device-map section: kept for resolve(). */
int gw__record_key(struct parse *p, const char *name, const char *value)
{
	struct sect_tmp *st = p->obj; /* first member of bus_tmp / dev_tmp / pt_tmp */
	struct entry *e = gw__arena_alloc(&p->tmp, sizeof(*e));

	if (!e || !(e->key = gw__arena_strdup(&p->tmp, name)) ||
	    !(e->val = gw__arena_strdup(&p->tmp, value))) {
		p->sys_err = -ENOMEM;
		return 0;
	}
	e->line = p->line;
	*st->tail = e;
	st->tail = &e->next;
	return 1;
}

/*
 * gw__devmap_section - a [bus:], [device:] or [point:] header (@colon: its
 * ':') of a device map: its record, whose keys wait for resolve(). Errors
 * are said; out of memory sets p->sys_err.
 */
void gw__devmap_section(struct parse *p, const char *name, const char *colon)
{
	if (!strncmp(name, "bus:", 4)) {
		struct bus_tmp *bt;

		if (!gw__id_ok(colon + 1, true)) {
			gw__cfg_error(p, p->line,
				      "[%s]: bus name: expected letters, digits, '_', '-' or '.'",
				      name);
			return;
		}
		bt = gw__arena_alloc(&p->tmp, sizeof(*bt));
		if (!bt || gw__arena_push(&p->tmp, (void ***)&p->buses, &p->n_buses, bt) ||
		    !(bt->b = map_object(p, &bt->s, sizeof(*bt->b), name)))
			goto nomem;
		bt->b->name = gw__arena_strdup(p->arena, colon + 1);
		bt->b->origin.file = p->file;
		bt->b->origin.line = p->line;
		p->obj = bt;
		p->kind = S_BUS;
		return;
	}
	if (!strncmp(name, "device:", 7)) {
		struct dev_tmp *dt;

		if (!gw__id_ok(colon + 1, true)) {
			gw__cfg_error(
				p, p->line,
				"[%s]: device name: expected letters, digits, '_', '-' or '.'",
				name);
			return;
		}
		dt = gw__arena_alloc(&p->tmp, sizeof(*dt));
		if (!dt || gw__arena_push(&p->tmp, (void ***)&p->devs, &p->n_devs, dt) ||
		    !(dt->d = map_object(p, &dt->s, sizeof(*dt->d), name)))
			goto nomem;
		dt->d->name = gw__arena_strdup(p->arena, colon + 1);
		dt->d->origin.file = p->file;
		dt->d->origin.line = p->line;
		p->obj = dt;
		p->kind = S_DEVICE;
		return;
	}
	if (!strncmp(name, "point:", 6)) {
		const char *slash = strchr(colon + 1, '/');
		struct pt_tmp *pt;
		char dev[256];

		if (!slash || (size_t)(slash - colon - 1) >= sizeof(dev)) {
			gw__cfg_error(p, p->line, "[%s]: expected [point:DEVICE/NAME]", name);
			return;
		}
		snprintf(dev, sizeof(dev), "%.*s", (int)(slash - colon - 1), colon + 1);
		if (!gw__id_ok(dev, true) || !gw__id_ok(slash + 1, true)) {
			gw__cfg_error(
				p, p->line,
				"[%s]: device and point names: expected letters, digits, '_', '-' or '.'",
				name);
			return;
		}
		pt = gw__arena_alloc(&p->tmp, sizeof(*pt));
		if (!pt || gw__arena_push(&p->tmp, (void ***)&p->pts, &p->n_pts, pt) ||
		    !(pt->p = map_object(p, &pt->s, sizeof(*pt->p), name)))
			goto nomem;
		pt->p->name = gw__arena_strdup(p->arena, slash + 1);
		pt->dev_name = gw__arena_strdup(&p->tmp, dev);
		pt->p->origin.file = p->file;
		pt->p->origin.line = p->line;
		p->obj = pt;
		p->kind = S_POINT;
		return;
	}
	gw__cfg_error(p, p->line,
		      "[%s]: unknown section; expected bus:NAME, device:NAME or point:DEVICE/NAME",
		      name);
	return;
nomem:
	p->sys_err = -ENOMEM;
}

/* -------------------------------------------------------------- resolving */

/* Points the error context at section @st (its file, folder and header line). */
static void enter(struct parse *p, const struct sect_tmp *st)
{
	p->file = st->file;
	p->dir = (char *)st->dir;
	p->line = st->line;
	snprintf(p->section, sizeof(p->section), "%s", st->section);
	p->ap.file = st->file;
	p->ap.line = st->line;
	p->ap.section = st->section;
	p->ap.seen = 0;
	p->ap.common_seen = 0;
}

/* The adapter's parsed struct for a section kind: zeroed, with the rows' defaults. */
static void *new_ext(struct parse *p, const struct ad_keys *t)
{
	void *ext = gw__arena_alloc(p->arena, t->size ? t->size : 1);

	if (!ext) {
		p->sys_err = -ENOMEM;
		return NULL;
	}
	gw__apply_defaults(p, t, ext);
	return ext;
}

/*
 * Applies the entries of @st that @t knows and no table took yet to @obj
 * (seen bits in *seen). Returns how many it took.
 */
static unsigned int apply_table(struct parse *p, const struct sect_tmp *st, const struct ad_keys *t,
				void *obj, uint64_t *seen)
{
	struct entry *e;
	unsigned int idx, n = 0;

	for (e = st->first; e; e = e->next) {
		const struct ad_key *k;

		if (e->used || !(k = gw__find_key(t, e->key, &idx)))
			continue;
		e->used = true;
		n++;
		p->line = e->line;
		gw__set_checked(p, obj, k, idx, seen, e->val);
	}
	p->line = st->line;
	return n;
}

/* Reports every entry of @st no table took. */
static void unknown_keys(struct parse *p, const struct sect_tmp *st, const struct ad_keys *a,
			 const struct ad_keys *b, const struct ad_keys *c)
{
	const struct entry *e;

	for (e = st->first; e; e = e->next) {
		if (e->used)
			continue;
		p->line = e->line;
		gw__unknown_key(p, e->key, a, b, c);
	}
	p->line = st->line;
}

/* The adapter of @proto, or NULL (with an error naming the ones this build has). */
static const struct ad_schema *schema_of(struct parse *p, enum ad_protocol proto, const char *what,
					 unsigned int line)
{
	char names[256];
	size_t pos = 0;
	unsigned int i;

	if ((unsigned int)proto < __AD_PROTO_MAX && p->drivers[proto].schema)
		return p->drivers[proto].schema;
	names[0] = '\0';
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		if (!p->drivers[i].schema)
			continue;
		pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", pos ? " | " : "",
					p->drivers[i].name);
		pos = GW_MIN(pos, sizeof(names) - 1);
	}
	gw__cfg_error(p, line, "[%s] protocol: '%s' is not available in this version; expected %s",
		      what,
		      (unsigned int)proto < __AD_PROTO_MAX && p->drivers[proto].name
			      ? p->drivers[proto].name
			      : "?",
		      names);
	return NULL;
}

/*
 * A device's keys: the common ones (which say the protocol), then the
 * adapter's device keys, then its bus keys (inline transport, for the
 * implicit bus). Returns false when the device cannot be used.
 */
static bool device_keys(struct parse *p, struct dev_tmp *dt)
{
	struct ad_device *d = dt->d;
	const struct ad_schema *sc;

	enter(p, &dt->s);
	p->cur_dev = dt;
	gw__apply_defaults(p, &gw__common_device, d);
	apply_table(p, &dt->s, &gw__common_device, d, &dt->seen);
	p->cur_dev = NULL;
	sc = schema_of(p, d->protocol, dt->s.section, d->origin.line);
	if (!sc)
		return false;
	d->ext = new_ext(p, &sc->device);
	if (!d->ext)
		return false;
	apply_table(p, &dt->s, &sc->device, d->ext, &dt->ext_seen);
	if (sc->bus.size) {
		dt->inline_bus = new_ext(p, &sc->bus);
		if (!dt->inline_bus)
			return false;
		if (!apply_table(p, &dt->s, &sc->bus, dt->inline_bus, &dt->bus_seen))
			dt->inline_bus = NULL; /* no inline transport keys */
	}
	unknown_keys(p, &dt->s, &gw__common_device, &sc->device, sc->bus.size ? &sc->bus : NULL);
	return true;
}

/* The protocol of a bus: its own key, else that of the first device naming it, else modbus. */
static enum ad_protocol bus_protocol(struct parse *p, const struct bus_tmp *bt)
{
	unsigned int i;

	if (bt->seen & (1ULL << AD_CB_PROTOCOL))
		return bt->b->protocol;
	for (i = 0; i < p->n_devs; i++)
		if (p->devs[i]->bus_name && !strcmp(p->devs[i]->bus_name, bt->b->name) &&
		    (p->devs[i]->seen & (1ULL << AD_CD_PROTOCOL)))
			return p->devs[i]->d->protocol;
	return AD_PROTO_MODBUS;
}

/* A [bus:] section: keys, duplicate names, the adapter's check. */
static void resolve_bus(struct parse *p, struct bus_tmp *bt, unsigned int i)
{
	struct ad_bus *b = bt->b;
	const struct ad_schema *sc;
	uint64_t ext_seen = 0;
	unsigned int j;

	enter(p, &bt->s);
	apply_table(p, &bt->s, &gw__common_bus, b, &bt->seen);
	for (j = 0; j < i; j++) {
		if (!strcmp(p->buses[j]->b->name, b->name))
			gw__cfg_error(p, b->origin.line,
				      "[bus:%s]: duplicate bus name (first defined at %s:%u)",
				      b->name, p->buses[j]->b->origin.file,
				      p->buses[j]->b->origin.line);
	}
	b->protocol = bus_protocol(p, bt);
	sc = schema_of(p, b->protocol, bt->s.section, b->origin.line);
	if (!sc)
		return;
	if (!sc->bus.size) {
		gw__cfg_error(p, b->origin.line, "[%s]: protocol %s has no buses", bt->s.section,
			      p->drivers[b->protocol].name);
		return;
	}
	b->ext = new_ext(p, &sc->bus);
	if (!b->ext)
		return;
	apply_table(p, &bt->s, &sc->bus, b->ext, &ext_seen);
	unknown_keys(p, &bt->s, &gw__common_bus, &sc->bus, NULL);
	p->ap.seen = ext_seen;
	p->ap.common_seen = bt->seen;
	if (sc->check_bus && sc->check_bus(&p->ap, b))
		return;
	bt->ok = true;
	if (gw__arena_push(&p->dm->arena, (void ***)&p->dm->map.buses, &p->dm->map.n_buses, b))
		p->sys_err = -ENOMEM;
}

static struct bus_tmp *find_bus(struct parse *p, const char *name)
{
	unsigned int i;

	for (i = 0; i < p->n_buses; i++)
		if (!strcmp(p->buses[i]->b->name, name))
			return p->buses[i];
	return NULL;
}

static struct dev_tmp *find_dev(struct parse *p, const char *name)
{
	unsigned int i;

	for (i = 0; i < p->n_devs; i++)
		if (!strcmp(p->devs[i]->d->name, name))
			return p->devs[i];
	return NULL;
}

/* A device after its keys: duplicate names, its bus (named or implicit), the adapter's check. */
static void resolve_device(struct parse *p, struct dev_tmp *dt, unsigned int i,
			   enum ad_publish gw_publish)
{
	struct ad_device *d = dt->d;
	const struct ad_schema *sc = p->drivers[d->protocol].schema;
	unsigned int j;

	enter(p, &dt->s);
	for (j = 0; j < i; j++) {
		if (!strcmp(p->devs[j]->d->name, d->name))
			gw__cfg_error(p, d->origin.line,
				      "[device:%s]: duplicate device name (first defined at %s:%u)",
				      d->name, p->devs[j]->d->origin.file,
				      p->devs[j]->d->origin.line);
	}
	if (dt->bus_name) {
		struct bus_tmp *bt = find_bus(p, dt->bus_name);

		if (dt->inline_bus)
			gw__cfg_error(
				p, d->origin.line,
				"[device:%s]: give either bus = NAME or inline transport keys (type, host, port, device, ...), not both",
				d->name);
		if (!bt) {
			gw__cfg_error(p, dt->bus_line,
				      "[device:%s] bus: '%s': no [bus:%s] section defines it",
				      d->name, dt->bus_name, dt->bus_name);
			return;
		}
		if (bt->b->protocol != d->protocol) {
			gw__cfg_error(p, dt->bus_line,
				      "[device:%s] bus: '%s' is a bus of protocol %s, not %s",
				      d->name, dt->bus_name, p->drivers[bt->b->protocol].name,
				      p->drivers[d->protocol].name);
			return;
		}
		if (!bt->ok)
			return; /* its error is said */
		d->bus = bt->b;
	} else if (sc->bus.size) {
		struct ad_bus *b = gw__arena_alloc(p->arena, sizeof(*b));

		if (!b) {
			p->sys_err = -ENOMEM;
			return;
		}
		b->ext = dt->inline_bus ? dt->inline_bus : new_ext(p, &sc->bus);
		if (!b->ext)
			return;
		b->name = d->name;
		b->implicit = true;
		b->protocol = d->protocol;
		b->origin = d->origin;
		p->ap.seen = dt->bus_seen;
		p->ap.common_seen = dt->seen;
		if (sc->check_bus && sc->check_bus(&p->ap, b))
			return;
		d->bus = b;
		if (gw__arena_push(&p->dm->arena, (void ***)&p->dm->map.buses, &p->dm->map.n_buses,
				   b))
			p->sys_err = -ENOMEM;
	}
	if (!(dt->seen & (1ULL << AD_CD_PUBLISH)))
		d->publish = gw_publish;
	p->ap.seen = dt->ext_seen;
	p->ap.common_seen = dt->seen;
	if (sc->check_device && sc->check_device(&p->ap, d))
		return;
	if (!d->stale_ms)
		d->stale_ms = 3 * d->poll_ms;
	dt->ok = true;
	if (gw__arena_push(&p->dm->arena, (void ***)&p->dm->map.devices, &p->dm->map.n_devices, d))
		p->sys_err = -ENOMEM;
}

/* A point: its device, its keys (common and the adapter's), duplicates, the adapter's check. */
static void resolve_point(struct parse *p, struct pt_tmp *pt, enum ad_publish gw_publish)
{
	struct ad_point *x = pt->p;
	struct dev_tmp *dt = find_dev(p, pt->dev_name);
	const struct ad_schema *sc;
	uint64_t seen = 0, ext_seen = 0;
	unsigned int j;

	enter(p, &pt->s);
	if (!dt) {
		gw__cfg_error(p, x->origin.line,
			      "[%s]: device '%s' is not defined by any [device:%s] section",
			      pt->s.section, pt->dev_name, pt->dev_name);
		return;
	}
	if (!dt->ok)
		return; /* the device's error is said */
	sc = p->drivers[dt->d->protocol].schema;
	x->device = dt->d;
	x->type = sc->point_type;
	gw__apply_defaults(p, &gw__common_point, x);
	apply_table(p, &pt->s, &gw__common_point, x, &seen);
	x->ext = new_ext(p, &sc->point);
	if (!x->ext)
		return;
	apply_table(p, &pt->s, &sc->point, x->ext, &ext_seen);
	unknown_keys(p, &pt->s, &gw__common_point, &sc->point, NULL);
	for (j = 0; j < dt->d->n_points; j++) {
		if (!strcmp(dt->d->points[j]->name, x->name))
			gw__cfg_error(p, x->origin.line,
				      "[%s]: duplicate point name (first defined at %s:%u)",
				      pt->s.section, dt->d->points[j]->origin.file,
				      dt->d->points[j]->origin.line);
	}
	if (x->scale == 0.0)
		gw__cfg_error(p, x->origin.line, "[%s] scale: 0 would lose every value",
			      pt->s.section);
	p->ap.seen = ext_seen;
	p->ap.common_seen = seen;
	if (sc->check_point && sc->check_point(&p->ap, x))
		return;
	if (!(seen & (1ULL << AD_CP_PUBLISH)))
		x->publish = dt->d->publish == AD_PUB_INHERIT ? gw_publish : dt->d->publish;
	x->index = p->dm->map.n_points;
	if (gw__arena_push(&p->dm->arena, (void ***)&dt->d->points, &dt->d->n_points, x) ||
	    gw__arena_push(&p->dm->arena, (void ***)&p->dm->map.points, &p->dm->map.n_points, x))
		p->sys_err = -ENOMEM;
}

/*
 * Every device-map section read, in this order: device keys (they say which
 * adapter owns the rest), buses, devices (bus references, implicit buses),
 * points. Errors keep the file:line of the key or section they are about.
 */
static void resolve(struct parse *p, enum ad_publish gw_publish)
{
	unsigned int i;

	p->arena = &p->dm->arena;
	for (i = 0; i < p->n_devs && !p->sys_err; i++)
		p->devs[i]->ok = device_keys(p, p->devs[i]);
	for (i = 0; i < p->n_buses && !p->sys_err; i++)
		resolve_bus(p, p->buses[i], i);
	for (i = 0; i < p->n_devs && !p->sys_err; i++) {
		if (p->devs[i]->ok) {
			p->devs[i]->ok = false;
			resolve_device(p, p->devs[i], i, gw_publish);
		}
	}
	for (i = 0; i < p->n_pts && !p->sys_err; i++)
		resolve_point(p, p->pts[i], gw_publish);
}

int gw__load_devices(struct parse *p, const char *pattern, enum ad_publish gw_publish)
{
	glob_t g;
	size_t i;
	int rc;

	if (!pattern || !*pattern)
		return 0;
	if (p->mem) {
		/* In memory: every file but the main one that the pattern matches, in order. */
		for (i = 1; i < p->n_mem && !p->sys_err; i++) {
			if (fnmatch(pattern, p->mem[i].path, FNM_PATHNAME | FNM_PERIOD))
				continue;
			p->arena = &p->dm->arena;
			gw__parse_file(p, p->mem[i].path, false);
		}
		resolve(p, gw_publish);
		return p->sys_err;
	}
	rc = glob(pattern, 0, NULL, &g);
	if (rc == GLOB_NOMATCH)
		return 0;
	if (rc) {
		p->n_errors++;
		return -EIO;
	}
	for (i = 0; i < g.gl_pathc && !p->sys_err; i++) {
		p->arena = &p->dm->arena;
		gw__parse_file(p, g.gl_pathv[i], false);
	}
	globfree(&g);
	resolve(p, gw_publish);
	return p->sys_err;
}

void gw_devmap_free(struct gw_devmap *dm)
{
	if (!dm)
		return;
	gw__arena_free(dm->arena);
	gw_free(dm);
}

struct ad_device *gw_devmap_device(const struct gw_devmap *dm, struct gw_slice name)
{
	unsigned int i;

	for (i = 0; i < dm->map.n_devices; i++)
		if (gw_slice_eq_cstr(name, dm->map.devices[i]->name))
			return dm->map.devices[i];
	return NULL;
}

struct ad_point *gw_devmap_point(const struct ad_device *dev, struct gw_slice name)
{
	unsigned int i;

	for (i = 0; i < dev->n_points; i++)
		if (gw_slice_eq_cstr(name, dev->points[i]->name))
			return dev->points[i];
	return NULL;
}
