/*
 * test_config.c - loading fieldmq.ini and device maps: defaults, templates,
 * inheritance, and errors that name file:line.
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

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fieldmq-test-config-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "%s", "");
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

/* Loads dir/main.ini; returns rc, with the error text in err. */
static int load(struct gw_config *cfg, char *err, size_t n)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/main.ini", dir);
	return gw_config_load(path, cfg, err, n);
}

static void expect_error(const char *main_ini, const char *dev_ini, const char *needle)
{
	struct gw_config cfg;
	char err[4096];
	int rc;

	write_file("main.ini", main_ini);
	write_file("devices.d/a.ini", dev_ini ? dev_ini : "");
	rc = load(&cfg, err, sizeof(err));
	if (rc != -EINVAL || !strstr(err, needle))
		fail_msg("expected an error containing <%s>, got rc %d: <%s>", needle, rc, err);
	gw_config_free(&cfg);
}

static void test_shipped_example(void **state)
{
	struct gw_config cfg;
	char err[4096];
	const struct ad_device *d;
	const struct ad_point *pt;
	int rc;

	(void)state;
	rc = gw_config_load("etc/fieldmq.ini", &cfg, err, sizeof(err));
	if (rc)
		fail_msg("etc/fieldmq.ini: %s", err);
	assert_string_equal(cfg.gateway.id, "gw1");
	assert_string_equal(cfg.gateway.topic_prefix, "fieldmq/gw1");
	assert_string_equal(cfg.gateway.data_dir, "etc/../var");
	assert_string_equal(cfg.store.path, "etc/../var/fieldmq.db");
	assert_int_equal(cfg.broker.n_listen, 1);
	assert_string_equal(cfg.broker.listen[0].url, "127.0.0.1:1883");
	assert_int_equal(cfg.broker.max_packet_size, 1 << 20);
	assert_int_equal(cfg.broker.max_queued_bytes, 16 << 20);
	assert_int_equal(cfg.broker.sys_interval_ms, 10000);
	assert_int_equal(cfg.store.sync_interval_ms, 100);
	assert_int_equal(cfg.store.synchronous, 0);
	assert_int_equal(cfg.broker.max_inflight, 32);
	assert_int_equal(cfg.broker.receive_maximum, 65535);
	assert_int_equal(cfg.broker.max_held_acks, 1000);
	assert_int_equal(cfg.uplink.protocol, 5);
	assert_int_equal(cfg.uplink.n_forward, 1);
	assert_string_equal(cfg.uplink.forward[0].filter, "fieldmq/#");
	assert_int_equal(cfg.uplink.forward[0].qos, 1);
	assert_string_equal(cfg.uplink.client_id, "gw1");
	assert_int_equal(cfg.mqttsn.n_predefined, 1);
	assert_int_equal(cfg.mqttsn.predefined[0].id, 1);
	assert_null(cfg.mqttsn.multicast);
	assert_int_equal(cfg.mqttsn.max_queued, 100);
	assert_int_equal(cfg.mqttsn.max_retries, 5);
	assert_int_equal(cfg.mqttsn.advertise_interval_ms, 15 * 60 * 1000);
	assert_true(cfg.devmap->map.n_devices >= 1);
	d = cfg.devmap->map.devices[0];
	assert_string_equal(d->name, "boiler");
	assert_int_equal(mbus_bus(d->bus)->type, AD_BUS_TCP);
	assert_true(d->bus->implicit);
	assert_int_equal(mbus_bus(d->bus)->port, 15020);
	pt = gw_devmap_point(d, gw_slice_cstr("temperature"));
	assert_non_null(pt);
	assert_int_equal(pt->type, AD_PT_FLOAT32);
	assert_int_equal(mbus_pt(pt)->address, 0);
	assert_int_equal(mbus_pt(pt)->area, AD_AREA_INPUT);
	assert_string_equal(pt->unit, "°C");
	assert_true(pt->deadband == 0.2);
	pt = gw_devmap_point(d, gw_slice_cstr("uptime"));
	assert_non_null(pt);
	assert_int_equal(pt->publish, AD_PUB_EVERY_POLL);
	assert_int_equal(mbus_pt(pt)->area, AD_AREA_INPUT);
	gw_config_free(&cfg);
}

static void test_defaults_and_inheritance(void **state)
{
	struct gw_config cfg;
	char err[4096];
	const struct ad_device *d;
	const struct ad_point *pt;

	(void)state;
	write_file("main.ini", "[gateway]\nid = edge-7\npublish = every_poll\ndata_dir = data\n");
	write_file(
		"devices.d/a.ini",
		"[bus:line1]\ntype = rtu\ndevice = /dev/ttyUSB0\nbaud = 19200\nparity = E\n"
		"[device:m1]\nbus = line1\nunit_id = 7\nbyte_order = CDAB\naddress_base = 1\n"
		"[point:m1/p]\naddress = 1\ntype = float32\n"
		"[point:m1/q]\naddress = 3\ntype = uint32\nbyte_order = DCBA\npublish = on_change\n"
		"[point:m1/s]\naddress = 10\ntype = string\nlength = 4\nbyte_order = BADC\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.gateway.topic_prefix, "fieldmq/edge-7");
	/* data_dir is relative to the file that names it */
	assert_non_null(strstr(cfg.gateway.data_dir, "/data"));
	assert_int_equal(strncmp(cfg.gateway.data_dir, dir, strlen(dir)), 0);
	assert_int_equal(cfg.broker.max_inflight, 32);
	assert_int_equal(cfg.broker.receive_maximum, 65535);
	assert_int_equal(cfg.broker.max_held_acks, 1000);
	assert_int_equal(cfg.store.synchronous, 0);
	assert_true(cfg.broker.allow_anonymous);
	assert_int_equal(cfg.store.queue_max_messages, 1000000);
	d = cfg.devmap->map.devices[0];
	assert_string_equal(d->bus->name, "line1");
	assert_int_equal(mbus_bus(d->bus)->baud, 19200);
	assert_int_equal(mbus_bus(d->bus)->parity, 'E');
	assert_int_equal(mbus_bus(d->bus)->type, AD_BUS_RTU);
	assert_int_equal(mbus_dev(d)->unit_id, 7);
	assert_int_equal(d->poll_ms, 1000);
	pt = gw_devmap_point(d, gw_slice_cstr("p"));
	assert_int_equal(mbus_pt(pt)->address, 0); /* register 1 with address_base = 1 */
	assert_int_equal(mbus_pt(pt)->byte_order, AD_BO_CDAB);
	assert_int_equal(pt->publish, AD_PUB_EVERY_POLL);
	assert_int_equal(pt->index, 0);
	pt = gw_devmap_point(d, gw_slice_cstr("q"));
	assert_int_equal(mbus_pt(pt)->byte_order, AD_BO_DCBA);
	assert_int_equal(pt->publish, AD_PUB_ON_CHANGE);
	pt = gw_devmap_point(d, gw_slice_cstr("s"));
	assert_true(mbus_pt(pt)->string_swap);
	assert_int_equal(mbus_pt(pt)->length, 4);
	assert_null(gw_devmap_point(d, gw_slice_cstr("nope")));
	gw_config_free(&cfg);
}

/*
 * A key known under another name (renamed in a release, or Mosquitto's name
 * for it) is reported with the name to use instead of the list of every key,
 * and the file loads once it carries the new name.
 */
static void test_renamed_keys(void **state)
{
	static const struct {
		const char *sect, *old_ini, *new_ini, *msg;
	} cases[] = {
		{ "broker", "max_inflight_messages = 20", "max_inflight = 20",
		  "main.ini:2: [broker] max_inflight_messages: unknown key; it is now called "
		  "max_inflight (Mosquitto's max_inflight_messages)" },
		{ "broker", "persistence = no", "persist = no",
		  "main.ini:2: [broker] persistence: unknown key; it is now called persist" },
		{ "gateway", "log_dest = syslog", "log_target = syslog",
		  "main.ini:2: [gateway] log_dest: unknown key; it is now called log_target" },
		{ "uplink", "bridge_insecure = yes", "tls_insecure = yes",
		  "main.ini:2: [uplink] bridge_insecure: unknown key; it is now called tls_insecure" },
		{ "listener:x", "url = mqtt://127.0.0.1:1\ncafile = a.pem",
		  "url = mqtt://127.0.0.1:1\nca_file = a.pem",
		  "main.ini:3: [listener:x] cafile: unknown key; it is now called ca_file" },
	};
	struct gw_config cfg;
	char ini[256], err[4096];
	unsigned int i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(ini, sizeof(ini), "[%s]\n%s\n", cases[i].sect, cases[i].old_ini);
		expect_error(ini, NULL, cases[i].msg);
		snprintf(ini, sizeof(ini), "[%s]\n%s\n", cases[i].sect, cases[i].new_ini);
		write_file("main.ini", ini);
		write_file("devices.d/a.ini", "");
		rc = load(&cfg, err, sizeof(err));
		if (rc)
			fail_msg("<%s>: rc %d: %s", ini, rc, err);
		gw_config_free(&cfg);
	}
	/* The name alone is not enough: it is renamed in its section only. */
	expect_error("[mqttsn]\npersistence = no\n", NULL,
		     "main.ini:2: [mqttsn] persistence: unknown key; expected one of: enabled");
}

/* Issue 10's keys read back: the commit mode and the two bounds of held acks. */
static void test_ack_keys(void **state)
{
	struct gw_config cfg;
	char err[4096];

	(void)state;
	write_file("main.ini", "[broker]\nreceive_maximum = 20\nmax_held_acks = 16\n"
			       "[store]\nsynchronous = full\nsync_interval = 2s\n");
	write_file("devices.d/a.ini", "");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(cfg.broker.receive_maximum, 20);
	assert_int_equal(cfg.broker.max_held_acks, 16);
	assert_int_equal(cfg.store.synchronous, 1);
	assert_int_equal(cfg.store.sync_interval_ms, 2000);
	gw_config_free(&cfg);
}

static void test_errors_main(void **state)
{
	(void)state;
	expect_error("[gateway]\nid = a\nlo_level = info\n", NULL,
		     "main.ini:3: [gateway] lo_level: unknown key");
	expect_error("; c\n[gateway]\nheartbeat = 5 minutes\n", NULL,
		     "main.ini:3: [gateway] heartbeat: '5 minutes': expected a duration");
	expect_error("[broker]\nmax_packet_size = 1T\n", NULL,
		     "main.ini:2: [broker] max_packet_size: '1T': expected a size");
	expect_error("[broker]\nallow_anonymous = perhaps\n", NULL,
		     "main.ini:2: [broker] allow_anonymous: 'perhaps': expected yes | no");
	expect_error(
		"[gateway]\nlog_level = loud\n", NULL,
		"main.ini:2: [gateway] log_level: 'loud': expected error | warning | info | debug");
	expect_error("[brokr]\nlisten = 1.2.3.4:1\n", NULL, "main.ini:1: [brokr]: unknown section");
	expect_error("[broker]\nlisten = 127.0.0.1\n", NULL,
		     "main.ini:2: [broker] listen: '127.0.0.1': expected HOST:PORT");
	expect_error("[broker]\nmax_inflight = 0\n", NULL,
		     "main.ini:2: [broker] max_inflight: '0': expected an integer from 1 to 65535");
	expect_error(
		"[broker]\nreceive_maximum = 0\n", NULL,
		"main.ini:2: [broker] receive_maximum: '0': expected an integer from 1 to 65535");
	expect_error(
		"[broker]\nmax_held_acks = 0\n", NULL,
		"main.ini:2: [broker] max_held_acks: '0': expected an integer from 1 to 1000000");
	expect_error("[store]\nsynchronous = off\n", NULL,
		     "main.ini:2: [store] synchronous: 'off': expected normal | full");
	expect_error("[broker]\npersist = yes\npersist = no\n", NULL,
		     "main.ini:3: [broker] persist: duplicate key");
	expect_error("id = x\n", NULL, "main.ini:1: id: key outside of any section");
	expect_error("[gateway]\nthis is not ini\n", NULL, "main.ini:2: syntax error");
	expect_error("[uplink]\nurl = http://x\n", NULL,
		     "main.ini:2: [uplink] url: 'http://x': expected mqtt://HOST[:PORT]");
	expect_error("[uplink]\nforward = a/#/b 1\n", NULL,
		     "main.ini:2: [uplink] forward: 'a/#/b' is not a valid MQTT topic filter");
	expect_error("[uplink]\nenabled = yes\n", NULL,
		     "main.ini:1: [uplink] url: required when enabled = yes");
	expect_error("[mqttsn.predefined]\n0 = a/b\n", NULL,
		     "main.ini:2: [mqttsn.predefined] 0: expected a topic id from 1 to 65534");
	expect_error("[gateway]\nid = a b\n", NULL, "main.ini:2: [gateway] id: 'a b'");
	expect_error("[mqttsn]\nmax_retries = 0\n", NULL,
		     "main.ini:2: [mqttsn] max_retries: '0': expected an integer from 1 to 100");
	expect_error(
		"[device:x]\nhost = h\n", NULL,
		"main.ini:1: [device:x]: buses, devices and points belong in the device-map files");
}

static void test_acl_file(void **state)
{
	struct gw_config cfg;
	char err[4096];

	(void)state;
	/* Relative to the main file's folder, parsed at load time. */
	write_file("acl/rules.acl", "# rules\ntopic read a/#\nuser bob\npattern deny %c/x\n");
	write_file("main.ini", "[broker]\nacl_file = acl/rules.acl\n");
	write_file("devices.d/a.ini", "");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_non_null(cfg.broker.acl);
	gw_config_free(&cfg);
	/* Empty or absent: no ACL. */
	write_file("main.ini", "[broker]\nacl_file =\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), 0);
	assert_null(cfg.broker.acl);
	gw_config_free(&cfg);
	write_file("main.ini", "[broker]\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), 0);
	assert_null(cfg.broker.acl);
	gw_config_free(&cfg);

	/* A bad line is reported with the acl file's own name and line. */
	write_file("bad.acl", "topic a\n\ntopic read b/#\nbogus c\n");
	expect_error("[broker]\nacl_file = bad.acl\n", NULL,
		     "bad.acl:4: [broker] acl_file: 'bogus': unknown keyword");
	write_file("bad.acl", "topic a\ntopic reed b\n");
	expect_error("[broker]\nacl_file = bad.acl\n", NULL,
		     "bad.acl:2: [broker] acl_file: 'reed': unknown access");
	write_file("bad.acl", "# x\ntopic read a/#/b\n");
	expect_error("[broker]\nacl_file = bad.acl\n", NULL,
		     "bad.acl:2: [broker] acl_file: 'a/#/b': invalid topic filter");
	expect_error("[gateway]\nid = a\n[broker]\nacl_file = nope.acl\n", NULL,
		     "main.ini:4: [broker] acl_file: '");
	expect_error("[broker]\nacl_file = nope.acl\n", NULL, "nope.acl': cannot read");
	/* A bad acl file does not hide the main file's other errors. */
	write_file("main.ini", "[broker]\nacl_file = bad.acl\nmax_inflight = 0\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad.acl:2: [broker] acl_file"));
	assert_non_null(strstr(err, "main.ini:3: [broker] max_inflight"));
	assert_null(cfg.broker.acl);
	gw_config_free(&cfg);
}

/*
 * password_file (lines made by mosquitto_passwd), allow_anonymous's default
 * from the listeners (yes only while all are loopback), a non-loopback
 * listener without authentication refused, [mqttsn] allow_from.
 */
static void test_auth_keys(void **state)
{
	struct gw_config cfg;
	char err[4096];

	(void)state;
	write_file("pw", "alice:$7$101$HRsTWWcik70Ldknk$sO1jgwmoG5QrwhBlP5chn4WqR+KwvHx7qy5bp660bn"
			 "TybVzoV4CvokZE6b+yKCOO5mRQVdGdS2yMFIZXyzrj/A==\n");
	write_file("devices.d/a.ini", "");
	write_file("main.ini", "[broker]\nlisten = 0.0.0.0:1883\npassword_file = pw\n");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(brk_passwd_count(cfg.broker.passwd), 1);
	assert_non_null(strstr(cfg.password_file, "/pw"));
	assert_false(cfg.broker.allow_anonymous); /* not all loopback: no by default */
	gw_config_free(&cfg);
	write_file("main.ini",
		   "[broker]\nlisten = 127.0.0.1:1883, [::1]:1884\npassword_file = pw\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), 0);
	assert_true(cfg.broker.allow_anonymous); /* all loopback: yes by default */
	gw_config_free(&cfg);
	expect_error("[broker]\nlisten = 127.0.0.1:1883, 0.0.0.0:8883\n", NULL,
		     "main.ini:1: [broker] 0.0.0.0:8883: listens beyond loopback without "
		     "authentication");
	expect_error("[listener:lan]\nurl = 10.1.2.3:1883\n", NULL,
		     "main.ini:1: [broker] 10.1.2.3:1883: listens beyond loopback");
	write_file("main.ini", "[broker]\nlisten = 0.0.0.0:1883\nallow_anonymous = no\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), 0);
	gw_config_free(&cfg);
	write_file("bad.pw", "# x\nalice:secret\n");
	expect_error("[broker]\npassword_file = bad.pw\n", NULL,
		     "bad.pw:2: [broker] password_file: not a hashed password");
	expect_error("[broker]\npassword_file = nope.pw\n", NULL, "nope.pw': cannot read");
	expect_error("[mqttsn]\nenabled = yes\n", NULL,
		     "[mqttsn] listen = 0.0.0.0:1884 is not loopback: allow_from");
	expect_error("[mqttsn]\nallow_from = 10.0.0.0/33\n", NULL, "'10.0.0.0/33'");
	write_file("main.ini", "[mqttsn]\nenabled = yes\nallow_from = 10.0.0.0/8, fd00::/8 ::1\n");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(cfg.mqttsn.n_allow_from, 3);
	assert_int_equal(cfg.mqttsn.allow_from[1].bits, 8);
	assert_int_equal(cfg.mqttsn.allow_from[2].bits, 128);
	gw_config_free(&cfg);
}

static void test_listeners(void **state)
{
	struct gw_config cfg;
	char err[4096];
	const struct brk_listener_cfg *l;

	(void)state;
	/* [broker] listen entries take [broker]'s TLS keys; a [listener:NAME] has its own. */
	write_file("main.ini",
		   "[listener:mtls]\nurl = mqtts://0.0.0.0:8884\ncert_file = s.crt\n"
		   "key_file = s.key\nca_file = /etc/ca.crt\nrequire_certificate = yes\n"
		   "use_identity_as_username = yes\n"
		   "[broker]\nlisten = 127.0.0.1:1883, mqtts://[::1]:8883, ws://:8080\n"
		   "cert_file = tls/b.crt\nkey_file = tls/b.key\nws_path = /ws\n"
		   "allow_anonymous = yes\n");
	write_file("devices.d/a.ini", "");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(cfg.broker.n_listen, 4);
	l = &cfg.broker.listen[0];
	assert_string_equal(l->name, "mtls");
	assert_string_equal(l->url, "mqtts://0.0.0.0:8884");
	assert_non_null(strstr(l->tls.cert_file, "/s.crt"));
	assert_string_equal(l->tls.ca_file, "/etc/ca.crt");
	assert_true(l->tls.require_certificate);
	assert_true(l->tls.use_identity_as_username);
	assert_null(l->ws_path);
	l = &cfg.broker.listen[2];
	assert_null(l->name);
	assert_string_equal(l->url, "mqtts://[::1]:8883");
	assert_non_null(strstr(l->tls.cert_file, "/tls/b.crt"));
	assert_false(l->tls.require_certificate);
	assert_string_equal(cfg.broker.listen[3].ws_path, "/ws");
	gw_config_free(&cfg);

	/* Limits: max_connections and proxy_protocol per listener ([broker]'s for listen). */
	write_file("main.ini", "[listener:p]\nurl = 127.0.0.1:1884\nproxy_protocol = yes\n"
			       "max_connections = -1\n"
			       "[broker]\nlisten = 127.0.0.1:1883\nmax_connections = 7\n"
			       "max_connections_per_source = 3\nconnect_rate = 5\n"
			       "max_buffered_bytes = 64K\nslow_consumer_timeout = 2s\n");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(cfg.broker.n_listen, 2);
	assert_true(cfg.broker.listen[0].proxy_protocol);
	assert_int_equal(cfg.broker.listen[0].max_connections, UINT32_MAX);
	assert_false(cfg.broker.listen[1].proxy_protocol);
	assert_int_equal(cfg.broker.listen[1].max_connections, 7);
	assert_int_equal(cfg.broker.max_connections_per_source, 3);
	assert_int_equal(cfg.broker.connect_rate, 5);
	assert_int_equal(cfg.broker.max_buffered_bytes, 64 * 1024);
	assert_int_equal(cfg.broker.slow_consumer_timeout_ms, 2000);
	gw_config_free(&cfg);
	write_file("main.ini", "[broker]\nlisten = 127.0.0.1:1883\nproxy_protocol = yes\n");
	if (load(&cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_true(cfg.broker.listen[0].proxy_protocol);
	assert_int_equal(cfg.broker.listen[0].max_connections, 1024);
	gw_config_free(&cfg);
	expect_error("[broker]\nmax_connections = -2\n", NULL,
		     "main.ini:2: [broker] max_connections: '-2': expected an integer from -1");

	expect_error("[broker]\nlisten = tls://1.2.3.4:1\n", NULL,
		     "main.ini:2: [broker] listen: 'tls://1.2.3.4:1': expected HOST:PORT");
	expect_error("[broker]\nlisten = ws://1.2.3.4:1/mqtt\n", NULL,
		     "main.ini:2: [broker] listen: 'ws://1.2.3.4:1/mqtt'");
	expect_error(
		"[broker]\nlisten = mqtts://127.0.0.1:8883\n", NULL,
		"main.ini:1: [broker] listen mqtts://127.0.0.1:8883: a TLS listener needs cert_file and key_file");
	expect_error("[gateway]\nid = a\n[listener:x]\ncert_file = a\n", NULL,
		     "main.ini:3: [listener:x] url: required");
	expect_error("[listener:x]\nurl = wss://127.0.0.1:1\ncert_file = a\nkey_file = b\n"
		     "require_certificate = yes\n",
		     NULL, "main.ini:1: [listener:x]: require_certificate = yes needs ca_file");
	expect_error(
		"[listener:x]\nurl = mqtt://127.0.0.1:1\nuse_identity_as_username = yes\n", NULL,
		"main.ini:1: [listener:x]: use_identity_as_username = yes needs require_certificate");
	expect_error("[listener:x]\nurl = ws://127.0.0.1:1\nws_path = mqtt\n", NULL,
		     "main.ini:3: ws_path: 'mqtt': expected an absolute path");
	expect_error("[listener:x]\nurl = ws://127.0.0.1:1\nbogus = 1\n", NULL,
		     "main.ini:3: [listener:x] bogus: unknown key");
	expect_error("[listener:x]\nurl = ws://127.0.0.1:1\nurl = ws://127.0.0.1:2\n", NULL,
		     "main.ini:3: [listener:x] url: duplicate key");
}

static void test_errors_devices(void **state)
{
	(void)state;
	expect_error("", "[device:m]\nbus = nope\nunit_id = 1\n",
		     "a.ini:2: [device:m] bus: 'nope': no [bus:nope] section defines it");
	expect_error("", "[device:m]\nhost = h\n[point:x/p]\naddress = 1\n",
		     "a.ini:3: [point:x/p]: device 'x' is not defined");
	expect_error("", "[device:m]\nhost = h\n[device:m]\nhost = h\n",
		     "a.ini:3: [device:m]: duplicate device name (first defined at");
	expect_error("",
		     "[device:m]\nhost = h\n[point:m/p]\naddress = 1\n[point:m/p]\naddress = 2\n",
		     "a.ini:5: [point:m/p]: duplicate point name");
	expect_error("", "[device:m]\nhost = h\n[point:m/p]\naddress = 1\ntype = float33\n",
		     "a.ini:5: [point:m/p] type: 'float33': expected bool | bit | int16");
	expect_error("", "[device:m]\nhost = h\n[point:m/p]\ntype = string\naddress = 3\n",
		     "a.ini:3: [point:m/p] length: required for type = string");
	expect_error("",
		     "[device:m]\nhost = h\n[point:m/p]\narea = coil\ntype = int16\naddress = 1\n",
		     "a.ini:3: [point:m/p] type: int16: coil and discrete areas hold single bits");
	expect_error("",
		     "[device:m]\nhost = h\n[point:m/p]\narea = input\naccess = rw\naddress = 1\n",
		     "a.ini:3: [point:m/p] access: rw: the input area is read-only");
	expect_error("", "[device:m]\nunit_id = 1\n", "a.ini:1: [device:m]: no transport");
	expect_error("", "[device:m]\nhost = h\n[point:m/p]\ntype = int16\n",
		     "a.ini:3: [point:m/p] address: required");
	expect_error("", "[device:m]\nhost = h\nbaud = fast\n",
		     "a.ini:3: [device:m] baud: 'fast': expected an integer");
	expect_error("", "[device:m]\nhost = h\n[point:m/p]\naddress = 65535\ntype = float32\n",
		     "runs past 65535");
	expect_error("", "[device:m]\nhost = h\naddress_base = 1\n[point:m/p]\naddress = 0\n",
		     "a.ini:4: [point:m/p] address: 0 with address_base = 1");
	expect_error("", "[gateway]\nid = x\n",
		     "a.ini:1: [gateway]: this section belongs in the main configuration file");
	expect_error("", "[bus:b]\ntype = tcp\n[device:m]\nbus = b\n",
		     "a.ini:1: [bus:b] host: required for type = tcp");
	/* coap devices have their own keys (adapters/coap/coap_keys.c) */
	expect_error("", "[device:m]\nprotocol = coap\nhost = h\n",
		     "a.ini:3: [device:m] host: unknown key");
	expect_error("", "[device:m]\nprotocol = coap\n", "a.ini:1: [device:m] url: required");
	expect_error("", "[device:m]\nprotocol = coap\nurl = http://h\n",
		     "[device:m] url: 'http://h': expected coap://");
	expect_error("", "[device:m]\nprotocol = coap\nurl = coap://h\npsk_key = k\n",
		     "psk_identity / psk_key: only with coaps://");
	expect_error("", "[device:m]\nprotocol = coap\nurl = coaps://h\n",
		     "coaps:// needs psk_identity and psk_key");
	expect_error("", "[device:m]\nprotocol = coap\nurl = coap://h\n[point:m/p]\n",
		     "[point:m/p] path: required");
	expect_error("",
		     "[device:m]\nprotocol = coap\nurl = coap://h\n[point:m/p]\npath = /a\n"
		     "format = text\njson_pointer = /x\n",
		     "json_pointer: only with format = json or auto");
	expect_error("",
		     "[device:m]\nprotocol = coap\nurl = coap://h\n[point:m/p]\npath = /a\n"
		     "write_path = /b\n",
		     "method / write_path: only with access = rw");
}

static void test_many_errors_reported(void **state)
{
	struct gw_config cfg;
	char err[4096];
	unsigned int lines = 0;
	const char *s;

	(void)state;
	write_file("main.ini", "[gateway]\nfoo = 1\nbar = 2\n[broker]\nbaz = 3\n");
	write_file("devices.d/a.ini", "");
	assert_int_equal(load(&cfg, err, sizeof(err)), -EINVAL);
	for (s = err; *s; s++)
		lines += *s == '\n';
	assert_int_equal(lines, 3);
	gw_config_free(&cfg);
}

static void test_missing_file(void **state)
{
	struct gw_config cfg;
	char err[512];

	(void)state;
	assert_int_equal(gw_config_load("/nonexistent/fieldmq.ini", &cfg, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/fieldmq.ini: cannot open"));
	gw_config_free(&cfg);
}

/*
 * gw_config_load_mem: the main file and the maps the devices glob matches
 * come from memory (texts without a closing NUL); a map the glob does not
 * match is not read; errors name the in-memory path and line; no files is
 * -EINVAL. The folder does not exist, so nothing came from the disk.
 */
static void test_load_mem(void **state)
{
	static const char main_ini[] = "[gateway]\nid = mem1\n";
	static const char map_a[] = "[device:boiler]\nprotocol = modbus\ntype = tcp\n"
				    "host = 127.0.0.1\nport = 15020\n\n"
				    "[point:boiler/t]\narea = input\naddress = 0\ntype = int16\n";
	static const char map_b[] = "[device:other]\nprotocol = modbus\nbogus = 1\n";
	static const char bad[] = "[gateway]\nid = mem1\n\n[point:x/y]\nnope = 1\n";
	struct gw_config_file files[] = {
		{ "/nonexistent.mem/fieldmq.ini", main_ini, sizeof(main_ini) - 1 },
		{ "/nonexistent.mem/devices.d/a.ini", map_a, sizeof(map_a) - 1 },
		{ "/nonexistent.mem/devices.d/b.conf", map_b, sizeof(map_b) - 1 },
	};
	struct gw_config cfg;
	char err[2048];

	(void)state;
	assert_int_equal(gw_config_load_mem(files, 3, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.gateway.id, "mem1");
	assert_int_equal(cfg.devmap->map.n_devices, 1);
	assert_string_equal(cfg.devmap->map.devices[0]->name, "boiler");
	assert_int_equal(cfg.devmap->map.devices[0]->n_points, 1);
	gw_config_free(&cfg);

	files[2].path = "/nonexistent.mem/devices.d/b.ini";
	assert_int_equal(gw_config_load_mem(files, 3, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/nonexistent.mem/devices.d/b.ini:3:"));
	gw_config_free(&cfg);

	files[0].text = bad;
	files[0].len = sizeof(bad) - 1;
	assert_int_equal(gw_config_load_mem(files, 1, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/nonexistent.mem/fieldmq.ini:4:"));
	gw_config_free(&cfg);

	assert_int_equal(gw_config_load_mem(files, 0, &cfg, err, sizeof(err)), -EINVAL);
	gw_config_free(&cfg);
}

static void test_devmap_reload(void **state)
{
	struct gw_config cfg;
	struct gw_devmap *dm = NULL;
	char err[4096];

	(void)state;
	write_file("main.ini", "[gateway]\nid = g\n");
	write_file("devices.d/a.ini", "[device:m]\nhost = h\n");
	assert_int_equal(load(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.devmap->map.n_devices, 1);
	write_file("devices.d/b.ini", "[device:n]\nhost = h\n[point:n/p]\naddress = 4\n");
	assert_int_equal(gw_devmap_load(&cfg, &dm, err, sizeof(err)), 0);
	assert_int_equal(dm->map.n_devices, 2);
	assert_int_equal(dm->map.n_points, 1);
	gw_devmap_free(dm);
	write_file("devices.d/b.ini", "[device:n]\nhots = h\n");
	assert_int_equal(gw_devmap_load(&cfg, &dm, err, sizeof(err)), -EINVAL);
	assert_null(dm);
	assert_non_null(strstr(err, "b.ini:2: [device:n] hots: unknown key"));
	gw_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_example),
		cmocka_unit_test_setup_teardown(test_defaults_and_inheritance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_main, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listeners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_errors_reported, setup, teardown),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_load_mem),
		cmocka_unit_test_setup_teardown(test_renamed_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devmap_reload, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
