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
	if (fd->mode == 1 && !ad_given_common(ap, AD_CD_POLL))
		d->stale_ms = 1000000; /* pushed values and no poll to go stale against */
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
	assert_int_equal(d->stale_ms, 30000); /* push, but poll given: 3 * poll */
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
	assert_int_equal(d->stale_ms, 1000000); /* push and no poll: the check hook's */
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
	expect_error(
		"[device:w]\nprotocol = fake\nurl = u\n[point:w/t]\npth = /x\n",
		"a.ini:5: [point:w/t] pth: unknown key; expected one of: type, scale, offset, "
		"deadband, unit, access, publish, device_class, state_class, path, observe, format\n");
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
	char err[4096], path[512], map[256], needle[256];
	unsigned int i;

	(void)state;
	/* The real registry: a protocol named but not built is refused by name. */
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		assert_non_null(gw_drivers[i].name); /* every slot of the enum is named */
		if (gw_drivers[i].schema)
			continue;
		snprintf(map, sizeof(map), "[device:m]\nprotocol = %s\nhost = h\n",
			 gw_drivers[i].name);
		snprintf(needle, sizeof(needle),
			 "a.ini:1: [device:m] protocol: '%s' is not available in this version",
			 gw_drivers[i].name);
		write_file("main.ini", "[gateway]\nid = t\n");
		write_file("devices.d/a.ini", map);
		snprintf(path, sizeof(path), "%s/main.ini", dir);
		assert_int_equal(gw_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
		if (!strstr(err, needle))
			fail_msg("expected <%s>, got <%s>", needle, err);
		gw_config_free(&cfg);
	}
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

/* With an empty main file every default comes from the rows, and they are DESIGN.md's. */
static void test_main_defaults(void **state)
{
	struct gw_config cfg;
	char err[4096], path[512], devs[512];

	(void)state;
	write_file("main.ini", "[gateway]\nid = g\n");
	write_file("devices.d/a.ini", "");
	snprintf(path, sizeof(path), "%s/main.ini", dir);
	if (gw_config_load(path, &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	snprintf(devs, sizeof(devs), "%s/devices.d/*.ini", dir);
	assert_string_equal(cfg.gateway.topic_prefix, "fieldmq/g");
	assert_string_equal(cfg.gateway.data_dir, "/var/lib/fieldmq");
	assert_string_equal(cfg.gateway.devices, devs);
	assert_int_equal(cfg.gateway.log_level, LOG_INFO);
	assert_int_equal(cfg.gateway.log_target, GW_LOG_STDERR);
	assert_int_equal(cfg.gateway.payload, GW_PAYLOAD_JSON);
	assert_int_equal(cfg.gateway.publish, AD_PUB_ON_CHANGE);
	assert_int_equal(cfg.gateway.heartbeat_ms, 5 * 60 * 1000);
	assert_int_equal(cfg.broker.n_listen, 1);
	assert_string_equal(cfg.broker.listen[0].url, "127.0.0.1:1883");
	assert_true(cfg.broker.allow_anonymous);
	assert_int_equal(cfg.broker.max_connections, 1024);
	assert_int_equal(cfg.broker.max_packet_size, 1 << 20);
	assert_int_equal(cfg.broker.max_inflight, 32);
	assert_int_equal(cfg.broker.receive_maximum, 65535);
	assert_int_equal(cfg.broker.max_held_acks, 1000);
	assert_int_equal(cfg.broker.max_queued_messages, 1000);
	assert_int_equal(cfg.broker.max_queued_bytes, 16 << 20);
	assert_int_equal(cfg.broker.max_keepalive, 65535);
	assert_int_equal(cfg.broker.max_topic_alias, 64);
	assert_true(cfg.broker.retain_available);
	assert_int_equal(cfg.broker.sys_interval_ms, 10000);
	assert_true(cfg.broker.persist);
	assert_null(cfg.broker.acl);
	assert_string_equal(cfg.store.path, "/var/lib/fieldmq/fieldmq.db");
	assert_int_equal(cfg.store.queue_max_messages, 1000000);
	assert_int_equal(cfg.store.queue_max_bytes, 256ULL << 20);
	assert_int_equal(cfg.store.overflow, GW_OVERFLOW_DROP_OLDEST);
	assert_int_equal(cfg.store.sync_interval_ms, 100);
	assert_int_equal(cfg.store.synchronous, 0);
	assert_false(cfg.uplink.enabled);
	assert_null(cfg.uplink.url);
	assert_string_equal(cfg.uplink.client_id, "g");
	assert_int_equal(cfg.uplink.protocol, 5);
	assert_int_equal(cfg.uplink.keepalive_ms, 60000);
	assert_int_equal(cfg.uplink.session_expiry_ms, 86400000);
	assert_int_equal(cfg.uplink.n_forward, 1);
	assert_string_equal(cfg.uplink.forward[0].filter, "fieldmq/#");
	assert_int_equal(cfg.uplink.forward[0].qos, 1);
	assert_int_equal(cfg.uplink.n_subscribe, 0);
	assert_int_equal(cfg.uplink.queue, GW_UPQ_ALWAYS);
	assert_true(cfg.uplink.queue_qos0);
	assert_int_equal(cfg.uplink.max_inflight, 32);
	assert_int_equal(cfg.uplink.drain_rate, 0);
	assert_int_equal(cfg.uplink.reconnect_min_ms, 1000);
	assert_int_equal(cfg.uplink.reconnect_max_ms, 120000);
	assert_false(cfg.mqttsn.enabled);
	assert_string_equal(cfg.mqttsn.listen, "0.0.0.0:1884");
	assert_int_equal(cfg.mqttsn.gateway_id, 1);
	assert_int_equal(cfg.mqttsn.advertise_interval_ms, 15 * 60 * 1000);
	assert_null(cfg.mqttsn.multicast);
	assert_int_equal(cfg.mqttsn.max_clients, 1000);
	assert_int_equal(cfg.mqttsn.retry_interval_ms, 10000);
	assert_int_equal(cfg.mqttsn.max_queued, 100);
	assert_int_equal(cfg.mqttsn.max_retries, 5);
	gw_config_free(&cfg);
}

/* Prints @cfg into a string (free() it). */
static char *print_config(const struct gw_config *cfg)
{
	FILE *f = tmpfile();
	char *buf;
	long len;

	assert_non_null(f);
	gw_config_print(cfg, f);
	len = ftell(f);
	assert_true(len > 0);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	rewind(f);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return buf;
}

/*
 * --check-config -v: every key with its effective value, the adapters'
 * keys included, secrets hidden; the printed text loads back to the same
 * effective configuration.
 */
static void test_print_effective(void **state)
{
	struct gw_config cfg;
	char err[4096], path[512];
	char *out, *again, *maps;

	(void)state;
	write_file("main.ini", "[gateway]\nid = g\npublish = every_poll\ndata_dir = /tmp/x\n"
			       "[uplink]\nurl = mqtt://h\npassword = hunter2\n"
			       "[mqttsn.predefined]\n7 = a/b\n");
	write_file("devices.d/a.ini", "[bus:l1]\nline = /dev/x\n"
				      "[device:w]\nprotocol = fake\nurl = u\nbus = l1\ntag = x-t\n"
				      "[point:w/t]\npath = /p\nscale = 0.1\n"
				      "[device:m]\nhost = h\nport = 1502\naddress_base = 1\n"
				      "[point:m/r]\naddress = 10\ntype = float32\n");
	snprintf(path, sizeof(path), "%s/main.ini", dir);
	if (gw_config_load_drivers(path, drivers, &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	out = print_config(&cfg);
	gw_config_free(&cfg);
	assert_non_null(strstr(out, "\n[gateway]\nid = g\ntopic_prefix = fieldmq/g\n"));
	assert_non_null(strstr(out, "\nheartbeat = 5m\n"));
	assert_non_null(strstr(out, "\nmax_queued_bytes = 16M\n"));
	assert_non_null(strstr(out, "\nsync_interval = 100ms\n"));
	assert_non_null(strstr(out, "\nforward = fieldmq/# 1\n"));
	assert_non_null(strstr(out, "\n; password = (set, not shown)\n"));
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "\n; ca_file = (none)\n"));
	assert_non_null(strstr(out, "\n[mqttsn.predefined]\n7 = a/b\n"));
	assert_non_null(strstr(out, "\n[bus:l1]\nprotocol = fake\nline = /dev/x\nspeed = 10\n"));
	assert_non_null(strstr(out,
			       "\n[device:w]\nprotocol = fake\nbus = l1\npoll = 1s\n"
			       "publish = every_poll\nurl = u\nmode = push\nkeepalive = 30s\n"));
	assert_non_null(strstr(out, "\n[point:w/t]\ntype = float64\nscale = 0.1\n"));
	assert_non_null(strstr(out, "\npath = /p\nobserve = yes\nformat = auto\n"));
	/* Modbus: the implicit bus's keys under the device, addresses after address_base. */
	assert_non_null(strstr(out, "\ntype = tcp\n; device = (none)\nbaud = 9600\n"));
	assert_non_null(strstr(out, "\nhost = h\nport = 1502\n"));
	assert_non_null(strstr(out, "\narea = holding\naddress = 9\nbyte_order = ABCD\n"
				    "; bit = (none)\n; length = (none)\n"));

	/* The device part loads back (address_base 0 now that addresses are protocol ones). */
	maps = strstr(out, "\n[bus:l1]");
	assert_non_null(maps);
	write_file("devices.d/a.ini", maps);
	{
		char *ab = strstr(maps, "address_base = 1");

		assert_non_null(ab);
		ab[15] = '0';
		write_file("devices.d/a.ini", maps);
	}
	if (gw_config_load_drivers(path, drivers, &cfg, err, sizeof(err)))
		fail_msg("printed map does not load: %s", err);
	again = print_config(&cfg);
	gw_config_free(&cfg);
	assert_string_equal(strstr(again, "\n[bus:l1]"), maps);
	free(out);
	free(again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fake_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_no_bus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registered_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_main_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_effective, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
