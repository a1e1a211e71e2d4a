/*
 * test_config_adapters.c - the device-map loader (gateway/config.c) with an
 * adapter it has never heard of: a fake protocol plugged into a copy of the
 * registry brings its own [bus:], [device:] and [point:] keys and checks,
 * and gets its parsed structs back, with errors at file:line. Nothing in
 * config.c knows the fake: this is what a new adapter gets.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/modbus/mbus_map.h"
#include "gateway/config.h"

/* ------------------------------------------------------- the fake adapter */

struct fake_bus {
	char *line;
	uint32_t speed;
};

struct fake_device {
	char *url;
	int mode;
	uint32_t keepalive_ms;
	char *tag; /* from a custom key */
};

struct fake_point {
	char *path;
	bool observe;
	int format;
	uint16_t slot;
};

enum {
	FB_LINE,
	FB_SPEED,
	__FB_MAX
};
enum {
	FD_URL,
	FD_MODE,
	FD_KEEPALIVE,
	FD_TAG,
	__FD_MAX
};
enum {
	FP_PATH,
	FP_OBSERVE,
	FP_FORMAT,
	FP_SLOT,
	__FP_MAX
};

static const char *const modes[] = { "poll", "push", NULL };
static const char *const formats[] = { "auto", "text", "json", NULL };

/* tag = x-NAME: a custom parser with its own error. */
static int k_tag(struct ad_parse *ap, void *obj, const struct ad_key *k, const char *val)
{
	struct fake_device *fd = obj;

	if (strncmp(val, "x-", 2)) {
		ad_parse_error(ap, ap->line, "[%s] %s: '%s': expected x-NAME", ap->section, k->name,
			       val);
		return -EINVAL;
	}
	fd->tag = ap->ops->strdup(ap, val + 2);
	return fd->tag ? 0 : -ENOMEM;
}

static const struct ad_key fake_bus_rows[__FB_MAX] = {
	[FB_LINE] = { .name = "line", .type = AD_K_STR, .off = offsetof(struct fake_bus, line) },
	[FB_SPEED] = { .name = "speed",
		       .type = AD_K_INT,
		       .off = offsetof(struct fake_bus, speed),
		       .size = 4,
		       .min = 1,
		       .max = 1000,
		       .def = "10" },
};

static const struct ad_key fake_device_rows[__FD_MAX] = {
	[FD_URL] = { .name = "url", .type = AD_K_STR, .off = offsetof(struct fake_device, url) },
	[FD_MODE] = { .name = "mode",
		      .type = AD_K_ENUM,
		      .off = offsetof(struct fake_device, mode),
		      .size = sizeof(int),
		      .enums = modes,
		      .def = "push" },
	[FD_KEEPALIVE] = { .name = "keepalive",
			   .type = AD_K_DUR,
			   .off = offsetof(struct fake_device, keepalive_ms),
			   .size = 4,
			   .def = "30s" },
	[FD_TAG] = { .name = "tag", .type = AD_K_CUSTOM, .fn = k_tag },
};

static const struct ad_key fake_point_rows[__FP_MAX] = {
	[FP_PATH] = { .name = "path", .type = AD_K_STR, .off = offsetof(struct fake_point, path) },
	[FP_OBSERVE] = { .name = "observe",
			 .type = AD_K_BOOL,
			 .off = offsetof(struct fake_point, observe),
			 .def = "yes" },
	[FP_FORMAT] = { .name = "format",
			.type = AD_K_ENUM,
			.off = offsetof(struct fake_point, format),
			.size = sizeof(int),
			.enums = formats,
			.def = "auto" },
	/* FP_SLOT left without a name: a hole in the enum-indexed table is skipped. */
};

static int fake_check_device(struct ad_parse *ap, struct ad_device *d)
{
	struct fake_device *fd = d->ext;

	if (!ad_given(ap, FD_URL)) {
		ad_parse_error(ap, ap->line, "[%s] url: required", ap->section);
		return -EINVAL;
	}
	if (fd->mode == 1)
		d->stale_ms = 1000000; /* pushed values: no poll to go stale against */
	return 0;
}

static int fake_check_point(struct ad_parse *ap, struct ad_point *pt)
{
	struct fake_point *fp = pt->ext;

	if (!fp->path)
		ad_parse_error(ap, ap->line, "[%s] path: required", ap->section);
	if (pt->type == AD_PT_BIT)
		ad_parse_error(ap, ap->line, "[%s] type: bit: not for fake points", ap->section);
	return 0;
}

static const struct ad_schema fake_schema = {
	.bus = { fake_bus_rows, __FB_MAX, sizeof(struct fake_bus) },
	.device = { fake_device_rows, __FD_MAX, sizeof(struct fake_device) },
	.point = { fake_point_rows, __FP_MAX, sizeof(struct fake_point) },
	.point_type = AD_PT_FLOAT64,
	.check_device = fake_check_device,
	.check_point = fake_check_point,
};

/* The same, without buses (as CoAP is). */
static const struct ad_schema fake_nobus_schema = {
	.device = { fake_device_rows, __FD_MAX, sizeof(struct fake_device) },
	.point = { fake_point_rows, __FP_MAX, sizeof(struct fake_point) },
	.point_type = AD_PT_FLOAT64,
	.check_device = fake_check_device,
	.check_point = fake_check_point,
};

/* The real registry with the fake in the serial slot and its bus-less twin in coap's. */
static struct ad_driver drivers[__AD_PROTO_MAX];

static void make_drivers(void)
{
	memcpy(drivers, gw_drivers, sizeof(drivers));
	drivers[AD_PROTO_SERIAL] = (struct ad_driver){ "fake", &fake_schema, NULL };
	drivers[AD_PROTO_COAP] = (struct ad_driver){ "nobus", &fake_nobus_schema, NULL };
}

/* ---------------------------------------------------------------- harness */

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fieldmq-test-cfgad-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	make_drivers();
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (strchr(name, '/')) {
		char sub[512];

		snprintf(sub, sizeof(sub), "%s/%.*s", dir, (int)(strrchr(name, '/') - name), name);
		mkdir(sub, 0755);
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int load_map(const char *map, struct gw_config *cfg, char *err, size_t n)
{
	char path[512];

	write_file("main.ini", "[gateway]\nid = t\npublish = every_poll\n");
	write_file("devices.d/a.ini", map);
	snprintf(path, sizeof(path), "%s/main.ini", dir);
	return gw_config_load_drivers(path, drivers, cfg, err, n);
}

static void expect_error(const char *map, const char *needle)
{
	struct gw_config cfg;
	char err[4096];
	int rc = load_map(map, &cfg, err, sizeof(err));

	if (rc != -EINVAL || !strstr(err, needle))
		fail_msg("expected an error containing <%s>, got rc %d: <%s>", needle, rc, err);
	gw_config_free(&cfg);
}

/* ------------------------------------------------------------------ tests */

static void test_fake_parsed(void **state)
{
	struct gw_config cfg;
	char err[4096];
	const struct ad_device *d, *m;
	const struct ad_point *pt;
	const struct fake_device *fd;
	const struct fake_point *fp;
	const struct fake_bus *fb;

	(void)state;
	if (load_map("[bus:l1]\nline = /dev/x\nspeed = 99\n"
		     "[device:w]\nprotocol = fake\nurl = fake://10.0.0.7\npoll = 10s\nbus = l1\n"
		     "tag = x-blue\n"
		     "[point:w/t]\npath = /sensors/temp\nformat = json\nunit = C\nscale = 0.5\n"
		     "access = rw\n"
		     "[device:inl]\nprotocol = fake\nurl = u\nspeed = 7\nmode = poll\n"
		     "[point:inl/q]\npath = /q\nobserve = no\ntype = int64\npublish = on_change\n"
		     "[device:mb]\nhost = 127.0.0.1\n[point:mb/r]\naddress = 3\n",
		     &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(cfg.devmap->map.n_devices, 3);
	assert_int_equal(cfg.devmap->map.n_points, 3);
	assert_int_equal(cfg.devmap->map.n_buses, 3); /* l1, inl's implicit bus, mb's */

	d = gw_devmap_device(cfg.devmap, gw_slice_cstr("w"));
	assert_non_null(d);
	assert_int_equal(d->protocol, AD_PROTO_SERIAL);
	assert_int_equal(d->poll_ms, 10000);
	assert_int_equal(d->stale_ms, 1000000); /* mode push: set by the check hook */
	assert_int_equal(d->publish, AD_PUB_EVERY_POLL);
	fd = d->ext;
	assert_string_equal(fd->url, "fake://10.0.0.7");
	assert_string_equal(fd->tag, "blue");
	assert_int_equal(fd->mode, 1); /* default push */
	assert_int_equal(fd->keepalive_ms, 30000);
	assert_non_null(d->bus);
	assert_string_equal(d->bus->name, "l1");
	assert_false(d->bus->implicit);
	assert_int_equal(d->bus->protocol, AD_PROTO_SERIAL);
	fb = d->bus->ext;
	assert_string_equal(fb->line, "/dev/x");
	assert_int_equal(fb->speed, 99);

	pt = gw_devmap_point(d, gw_slice_cstr("t"));
	assert_non_null(pt);
	assert_int_equal(pt->type, AD_PT_FLOAT64); /* the adapter's default type */
	assert_true(pt->scale == 0.5);
	assert_string_equal(pt->unit, "C");
	assert_true(pt->writable);
	assert_int_equal(pt->publish, AD_PUB_EVERY_POLL);
	assert_string_equal(pt->origin.file + strlen(pt->origin.file) - 5, "a.ini");
	assert_int_equal(pt->origin.line, 10);
	fp = pt->ext;
	assert_string_equal(fp->path, "/sensors/temp");
	assert_true(fp->observe);
	assert_int_equal(fp->format, 2);

	/* Inline bus keys give the device an implicit bus of its own. */
	d = gw_devmap_device(cfg.devmap, gw_slice_cstr("inl"));
	assert_non_null(d);
	assert_true(d->bus->implicit);
	assert_string_equal(d->bus->name, "inl");
	assert_int_equal(((const struct fake_bus *)d->bus->ext)->speed, 7);
	assert_int_equal(d->stale_ms, 3000); /* mode poll: 3 * poll, the loader's default */
	pt = gw_devmap_point(d, gw_slice_cstr("q"));
	assert_int_equal(pt->type, AD_PT_INT64);
	assert_int_equal(pt->publish, AD_PUB_ON_CHANGE);
	assert_false(((const struct fake_point *)pt->ext)->observe);

	/* Modbus beside it, unchanged. */
	m = gw_devmap_device(cfg.devmap, gw_slice_cstr("mb"));
	assert_non_null(m);
	assert_int_equal(m->protocol, AD_PROTO_MODBUS);
	assert_int_equal(mbus_bus(m->bus)->type, AD_BUS_TCP);
	pt = gw_devmap_point(m, gw_slice_cstr("r"));
	assert_int_equal(pt->type, AD_PT_UINT16);
	assert_int_equal(mbus_pt(pt)->address, 3);
	assert_int_equal(pt->index, 2);
	gw_config_free(&cfg);
}

static void test_fake_no_bus(void **state)
{
	struct gw_config cfg;
	char err[4096];
	const struct ad_device *d;

	(void)state;
	if (load_map("[device:c]\nprotocol = nobus\nurl = coap://x\n[point:c/p]\npath = /p\n", &cfg,
		     err, sizeof(err)))
		fail_msg("%s", err);
	d = cfg.devmap->map.devices[0];
	assert_null(d->bus);
	assert_int_equal(cfg.devmap->map.n_buses, 0);
	gw_config_free(&cfg);
	expect_error(
		"[device:c]\nprotocol = nobus\nurl = u\nspeed = 1\n",
		"a.ini:4: [device:c] speed: unknown key; expected one of: protocol, bus, poll, "
		"publish, url, mode, keepalive, tag\n");
	expect_error("[bus:b]\nprotocol = nobus\n",
		     "a.ini:1: [bus:b]: protocol nobus has no buses");
}

static void test_fake_errors(void **state)
{
	(void)state;
	/* Unknown keys list the common keys and the adapter's, holes skipped. */
	expect_error("[device:w]\nprotocol = fake\nurl = u\n[point:w/t]\npth = /x\n",
		     "a.ini:5: [point:w/t] pth: unknown key; expected one of: type, scale, offset, "
		     "deadband, unit, access, publish, path, observe, format\n");
	expect_error("[device:w]\nprotocol = fake\nurl = u\nhots = h\n",
		     "a.ini:4: [device:w] hots: unknown key; expected one of: protocol, bus, poll, "
		     "publish, url, mode, keepalive, tag, line, speed\n");
	/* The adapter's rows validate with the loader's messages. */
	expect_error("[device:w]\nprotocol = fake\nurl = u\n[point:w/t]\npath = /x\nformat = xml\n",
		     "a.ini:6: [point:w/t] format: 'xml': expected auto | text | json");
	expect_error("[device:w]\nprotocol = fake\nurl = u\nkeepalive = soon\n",
		     "a.ini:4: [device:w] keepalive: 'soon': expected a duration");
	expect_error("[device:w]\nprotocol = fake\nurl = u\nspeed = 0\n",
		     "a.ini:4: [device:w] speed: '0': expected an integer from 1 to 1000");
	expect_error("[device:w]\nprotocol = fake\nurl = u\nurl = v\n",
		     "a.ini:4: [device:w] url: duplicate key");
	/* Its custom parser and its hooks report with file:line. */
	expect_error("[device:w]\nprotocol = fake\nurl = u\ntag = red\n",
		     "a.ini:4: [device:w] tag: 'red': expected x-NAME");
	expect_error("; a comment\n[device:w]\nprotocol = fake\n",
		     "a.ini:2: [device:w] url: required");
	expect_error("[device:w]\nprotocol = fake\nurl = u\n[point:w/t]\nformat = text\n",
		     "a.ini:4: [point:w/t] path: required");
	expect_error("[device:w]\nprotocol = fake\nurl = u\n[point:w/t]\npath = /x\ntype = bit\n",
		     "a.ini:4: [point:w/t] type: bit: not for fake points");
	/* Common checks apply to every adapter. */
	expect_error("[device:w]\nprotocol = fake\nurl = u\n[point:w/t]\npath = /x\nscale = 0\n",
		     "a.ini:4: [point:w/t] scale: 0 would lose every value");
	/* Protocol names come from the registry. */
	expect_error("[device:w]\nprotocol = fax\n",
		     "a.ini:2: [device:w] protocol: 'fax': expected modbus | nobus | fake");
	/* A bus serves one protocol. */
	expect_error("[bus:b]\nline = x\n[device:w]\nprotocol = fake\nurl = u\nbus = b\n"
		     "[device:m]\nbus = b\n",
		     "a.ini:8: [device:m] bus: 'b' is a bus of protocol fake, not modbus");
	expect_error(
		"[bus:b]\nline = x\n[device:w]\nprotocol = fake\nurl = u\nbus = b\nspeed = 3\n",
		"a.ini:3: [device:w]: give either bus = NAME or inline transport keys");
}

static void test_registry_gaps(void **state)
{
	struct gw_config cfg;
	char err[4096];
	char path[512];

	(void)state;
	/* The real registry: a protocol without an adapter in this build is refused by name. */
	write_file("main.ini", "[gateway]\nid = t\n");
	write_file("devices.d/a.ini", "[device:m]\nprotocol = serial\nhost = h\n");
	snprintf(path, sizeof(path), "%s/main.ini", dir);
	if (gw_drivers[AD_PROTO_SERIAL].schema)
		skip(); /* the serial adapter has landed: nothing left to refuse */
	assert_int_equal(gw_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(
		err, "a.ini:1: [device:m] protocol: 'serial' is not available in this version"));
	gw_config_free(&cfg);
}

/* Every default of every registered adapter parses with its own row (a bad one is a bug). */
static void test_registered_defaults(void **state)
{
	char map[4096];
	size_t n = 0;
	unsigned int i;
	struct gw_config cfg;
	char err[4096];
	char path[512];

	(void)state;
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		if (!gw_drivers[i].schema)
			continue;
		assert_non_null(gw_drivers[i].name);
		assert_true(gw_drivers[i].schema->device.n <= 64);
		assert_true(gw_drivers[i].schema->point.n <= 64);
		assert_true(gw_drivers[i].schema->bus.n <= 64);
		/* A device and a point with no adapter keys: defaults only. The
		 * adapter's checks may ask for keys; only "built-in default" errors count. */
		n += (size_t)snprintf(map + n, sizeof(map) - n,
				      "[device:d%u]\nprotocol = %s\n[point:d%u/p]\n", i,
				      gw_drivers[i].name, i);
	}
	write_file("main.ini", "[gateway]\nid = t\n");
	write_file("devices.d/a.ini", map);
	snprintf(path, sizeof(path), "%s/main.ini", dir);
	gw_config_load(path, &cfg, err, sizeof(err));
	if (strstr(err, "built-in default"))
		fail_msg("%s", err);
	gw_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fake_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_no_bus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registered_defaults, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
