/*
 * test_gateway.c - the daemon's adapter lifecycle and command routing
 * (gateway/gateway.c, commands.c) with an adapter gateway.c has never heard
 * of: a fake one plugged into a copy of the registry is created for the
 * devices of its protocol, started, given commands for its points, replaced
 * or reloaded in place on a device-map reload, and stopped and freed - all
 * by code written once for every protocol.
 *
 * The real broker runs on 127.0.0.1 (a free port); commands and results go
 * through an in-process client. Every loop is bounded.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gateway_int.h"

/* ------------------------------------------------------- the fake adapter */

struct fake_point {
	char *path;
};

enum {
	FD_URL,
	__FD_MAX
};
enum {
	FP_PATH,
	__FP_MAX
};

static const struct ad_key fake_device_rows[__FD_MAX] = {
	[FD_URL] = { .name = "url", .type = AD_K_STR, .off = 0 },
};

static const struct ad_key fake_point_rows[__FP_MAX] = {
	[FP_PATH] = { .name = "path", .type = AD_K_STR, .off = offsetof(struct fake_point, path) },
};

static const struct ad_schema fake_schema = {
	.device = { fake_device_rows, __FD_MAX, sizeof(char *) },
	.point = { fake_point_rows, __FP_MAX, sizeof(struct fake_point) },
	.point_type = AD_PT_FLOAT64,
};

/* What the fakes saw (all on the loop thread). */
static struct {
	unsigned int created, started, stopped, freed, reloads, commands;
	bool reload_in_place; /* what ops->reload answers */
	unsigned int devices; /* of the fake protocol, in the map of the last create/reload */
	char last_cmd[64];
} seen;

struct fake_adapter {
	struct ad_adapter base;
	uv_timer_t timer; /* completes commands on a later loop turn */
	void *token;
	struct ad_value value;
	void (*done)(void *arg);
	void *done_arg;
};

static unsigned int count_devices(const struct ad_map *map)
{
	unsigned int i, n = 0;

	for (i = 0; i < map->n_devices; i++)
		n += map->devices[i]->protocol == AD_PROTO_SERIAL;
	return n;
}

static int fake_start(struct ad_adapter *a)
{
	struct fake_adapter *fa = (struct fake_adapter *)a;

	seen.started++;
	return uv_timer_init(a->loop, &fa->timer);
}

static void fake_closed(uv_handle_t *h)
{
	struct fake_adapter *fa = h->data;

	fa->done(fa->done_arg);
}

static void fake_stop(struct ad_adapter *a, void (*done)(void *arg), void *arg)
{
	struct fake_adapter *fa = (struct fake_adapter *)a;

	seen.stopped++;
	if (fa->token) {
		struct ad_cmd_result res = { .ok = false, .error = "adapter stopped" };

		a->sink.on_cmd_done(a->sink.arg, fa->token, &res);
		fa->token = NULL;
	}
	fa->done = done;
	fa->done_arg = arg;
	fa->timer.data = fa;
	uv_close((uv_handle_t *)&fa->timer, fake_closed);
}

static void fake_free(struct ad_adapter *a)
{
	seen.freed++;
	free(a);
}

static int fake_reload(struct ad_adapter *a, const struct ad_map *map)
{
	if (!seen.reload_in_place)
		return -ENOTSUP;
	seen.reloads++;
	seen.devices = count_devices(map);
	a->map = map;
	return 0;
}

static void on_fake_timer(uv_timer_t *t)
{
	struct fake_adapter *fa = container_of(t, struct fake_adapter, timer);
	struct ad_cmd_result res = { .ok = true, .value = fa->value, .ts_ms = 1 };
	void *token = fa->token;

	fa->token = NULL;
	fa->base.sink.on_cmd_done(fa->base.sink.arg, token, &res);
}

static int fake_command(struct ad_adapter *a, const struct ad_point *pt,
			const struct ad_value *value, void *token, const char **why)
{
	struct fake_adapter *fa = (struct fake_adapter *)a;

	assert_int_equal(pt->device->protocol, AD_PROTO_SERIAL);
	if (fa->token) {
		*why = "busy";
		return -ENOBUFS;
	}
	seen.commands++;
	snprintf(seen.last_cmd, sizeof(seen.last_cmd), "%s/%s=%g (%s)", pt->device->name, pt->name,
		 value->d, ((const struct fake_point *)pt->ext)->path);
	fa->token = token;
	fa->value = *value;
	return uv_timer_start(&fa->timer, on_fake_timer, 0, 0);
}

/* Two figures: the gateway publishes them under $SYS/fieldmq/fake/. */
static void fake_figures(const struct ad_adapter *a, ad_figure_fn emit, void *arg)
{
	(void)a;
	emit(arg, "commands", seen.commands);
	emit(arg, "bus/b1/opens", 7);
}

static const struct ad_ops fake_ops = {
	.name = "fake",
	.start = fake_start,
	.stop = fake_stop,
	.free = fake_free,
	.reload = fake_reload,
	.command = fake_command,
	.figures = fake_figures,
};

static struct ad_adapter *fake_create(struct uv_loop_s *loop, const struct ad_map *map,
				      const struct gw_logger *log, const struct ad_sink *sink)
{
	struct fake_adapter *fa = calloc(1, sizeof(*fa));

	assert_non_null(fa);
	assert_true(count_devices(map) > 0); /* created only for maps with its devices */
	fa->base.ops = &fake_ops;
	fa->base.loop = loop;
	fa->base.log = log;
	fa->base.map = map;
	fa->base.sink = *sink;
	seen.created++;
	seen.devices = count_devices(map);
	return &fa->base;
}

static struct ad_driver drivers[__AD_PROTO_MAX];

/* ---------------------------------------------------------------- harness */

static char dir[256];
static uv_loop_t loop;
static struct gw_logger logger;
static struct gw *g;
static struct brk_client *client;
static char results[8][256];
static unsigned int n_results;
static const char *sys_interval = "0"; /* of the next setup */
static char figures[8][128];	       /* "topic payload" under $SYS/fieldmq/fake/ */
static unsigned int n_figures;

static void write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void on_result(void *arg, const struct brk_delivery *d)
{
	(void)arg;
	if (d->topic.len > 4 && !memcmp(d->topic.p, "$SYS", 4)) {
		if (n_figures < GW_ARRAY_SIZE(figures))
			snprintf(figures[n_figures++], sizeof(figures[0]), "%.*s %.*s",
				 (int)d->topic.len, (const char *)d->topic.p, (int)d->payload.len,
				 (const char *)d->payload.p);
		return;
	}
	if (n_results < GW_ARRAY_SIZE(results))
		snprintf(results[n_results++], sizeof(results[0]), "%.*s", (int)d->payload.len,
			 (const char *)d->payload.p);
}

/* Runs the loop until @cond holds (at most 2 s of turns). */
#define RUN_UNTIL(cond)                                  \
	do {                                             \
		int64_t until_ = gw_mono_ms() + 2000;    \
		while (!(cond) && gw_mono_ms() < until_) \
			uv_run(&loop, UV_RUN_NOWAIT);    \
		assert_true(cond);                       \
	} while (0)

static void send_cmd(const char *topic, const char *payload)
{
	struct brk_pub pub = { .topic = gw_slice_cstr(topic),
			       .payload = { (const uint8_t *)payload, strlen(payload) },
			       .qos = 1 };

	assert_int_equal(brk_client_publish(client, &pub), 0);
}

static int setup(void **state)
{
	struct brk_client_opts opts = { .client_id = "tester",
					.clean_start = true,
					.deliver = on_result };
	struct gw_config cfg;
	char ini[512], path[512], err[4096];

	(void)state;
	memset(&seen, 0, sizeof(seen));
	n_results = 0;
	n_figures = 0;
	memcpy(drivers, gw_drivers, sizeof(drivers));
	drivers[AD_PROTO_SERIAL] = (struct ad_driver){ "fake", &fake_schema, fake_create };
	snprintf(dir, sizeof(dir), "/tmp/fieldmq-test-gw-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/devices.d", dir);
	mkdir(path, 0755);
	snprintf(ini, sizeof(ini),
		 "[gateway]\nid = t\ndata_dir = %s/data\n[broker]\nlisten = 127.0.0.1:%d\n"
		 "persist = no\nsys_interval = %s\n",
		 dir, free_port(), sys_interval);
	write_file("main.ini", ini);
	write_file("devices.d/a.ini", "[device:f1]\nprotocol = fake\nurl = fake://1\n"
				      "[point:f1/sp]\npath = /sp\naccess = rw\n"
				      "[point:f1/ro]\npath = /ro\n");
	snprintf(path, sizeof(path), "%s/main.ini", dir);
	if (gw_config_load_drivers(path, drivers, &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	gw_logger_init(&logger, LOG_ERR, GW_LOG_STDERR);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(gw_gateway_new(&loop, &cfg, &logger, &g), 0);
	assert_int_equal(gw_gateway_start(g), 0);
	assert_int_equal(brk_client_new(g->broker, &opts, &client, NULL), 0);
	assert_int_equal(
		brk_client_subscribe(client, gw_slice_cstr("fieldmq/t/+/+/set/result"), 1, 0, 0),
		0);
	assert_int_equal(
		brk_client_subscribe(client, gw_slice_cstr("$SYS/fieldmq/fake/#"), 0, 0, 0), 0);
	return 0;
}

/* setup() with $SYS figures every second. */
static int setup_sys(void **state)
{
	int rc;

	sys_interval = "1s";
	rc = setup(state);
	sys_interval = "0";
	return rc;
}

static int teardown(void **state)
{
	char cmd[300];
	int64_t until;

	(void)state;
	brk_client_free(client, false);
	gw_gateway_stop(g);
	until = gw_mono_ms() + 5000;
	while (uv_run(&loop, UV_RUN_NOWAIT) && gw_mono_ms() < until)
		;
	gw_gateway_free(g);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(seen.freed, seen.created); /* every adapter the gateway made, freed */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* ------------------------------------------------------------------ tests */

static void test_started_for_its_devices(void **state)
{
	(void)state;
	assert_int_equal(seen.created, 1);
	assert_int_equal(seen.started, 1);
	assert_int_equal(seen.devices, 1);
	assert_non_null(g->adapters[AD_PROTO_SERIAL].a);
	assert_null(g->adapters[AD_PROTO_MODBUS].a); /* no modbus device: no modbus adapter */
}

static void test_command_routed_by_protocol(void **state)
{
	(void)state;
	send_cmd("fieldmq/t/f1/sp/set", "{\"value\":42.5}");
	RUN_UNTIL(n_results == 1);
	assert_int_equal(seen.commands, 1);
	assert_string_equal(seen.last_cmd, "f1/sp=42.5 (/sp)");
	assert_non_null(strstr(results[0], "\"ok\":true"));
	assert_non_null(strstr(results[0], "42.5"));
	/* Refused before the adapter: read-only, unknown. */
	send_cmd("fieldmq/t/f1/ro/set", "1");
	RUN_UNTIL(n_results == 2);
	assert_non_null(strstr(results[1], "read-only"));
	send_cmd("fieldmq/t/f1/nope/set", "1");
	RUN_UNTIL(n_results == 3);
	assert_non_null(strstr(results[2], "no such device or point"));
	assert_int_equal(seen.commands, 1);
}

static void test_reload_replaces(void **state)
{
	(void)state;
	write_file("devices.d/a.ini", "[device:f1]\nprotocol = fake\nurl = fake://1\n"
				      "[device:f2]\nprotocol = fake\nurl = fake://2\n"
				      "[point:f2/sp]\npath = /two\naccess = rw\n");
	assert_int_equal(gw_gateway_reload(g), 0);
	/* No in-place reload: a new adapter for the new map, the old one closes. */
	assert_int_equal(seen.created, 2);
	assert_int_equal(seen.devices, 2);
	RUN_UNTIL(seen.freed == 1 && g->old_map == NULL);
	assert_int_equal(seen.stopped, 1);
	send_cmd("fieldmq/t/f2/sp/set", "7");
	RUN_UNTIL(n_results == 1);
	assert_string_equal(seen.last_cmd, "f2/sp=7 (/two)");
	/* A map without its devices: the adapter closes and none starts. */
	write_file("devices.d/a.ini", "[device:m]\nhost = 127.0.0.1\nport = 1\n");
	assert_int_equal(gw_gateway_reload(g), 0);
	RUN_UNTIL(seen.freed == 2);
	assert_int_equal(seen.created, 2);
	assert_null(g->adapters[AD_PROTO_SERIAL].a);
	assert_non_null(g->adapters[AD_PROTO_MODBUS].a); /* the real one, from the same code */
	send_cmd("fieldmq/t/f2/sp/set", "7");
	RUN_UNTIL(n_results == 2);
	assert_non_null(strstr(results[1], "no such device or point"));
}

static void test_reload_in_place(void **state)
{
	struct ad_adapter *a = g->adapters[AD_PROTO_SERIAL].a;

	(void)state;
	seen.reload_in_place = true;
	write_file("devices.d/a.ini", "[device:f1]\nprotocol = fake\nurl = fake://1\n"
				      "[point:f1/sp]\npath = /new\naccess = rw\n"
				      "[device:f3]\nprotocol = fake\nurl = fake://3\n");
	assert_int_equal(gw_gateway_reload(g), 0);
	assert_int_equal(seen.reloads, 1);
	assert_int_equal(seen.devices, 2);
	assert_int_equal(seen.created, 1);
	assert_int_equal(seen.stopped, 0);
	assert_ptr_equal(g->adapters[AD_PROTO_SERIAL].a, a);
	assert_null(g->old_map); /* nobody was left closing on it */
	send_cmd("fieldmq/t/f1/sp/set", "3");
	RUN_UNTIL(n_results == 1);
	assert_string_equal(seen.last_cmd, "f1/sp=3 (/new)");
}

static void test_pending_command_answered_on_stop(void **state)
{
	(void)state;
	/* The adapter stops before its timer answers: it answers as it stops. */
	send_cmd("fieldmq/t/f1/sp/set", "1");
	assert_int_equal(seen.commands, 1);
	write_file("devices.d/a.ini", "");
	assert_int_equal(gw_gateway_reload(g), 0);
	RUN_UNTIL(seen.freed == 1);
	RUN_UNTIL(n_results == 1);
	assert_non_null(strstr(results[0], "adapter stopped"));
}

static bool has_figure(const char *line)
{
	unsigned int i;

	for (i = 0; i < n_figures; i++)
		if (!strcmp(figures[i], line))
			return true;
	return false;
}

static void test_figures(void **state)
{
	int64_t until = gw_mono_ms() + 5000;

	(void)state;
	/* The registry's name, not the adapter's: $SYS/fieldmq/<protocol>/NAME. */
	while (n_figures < 2 && gw_mono_ms() < until)
		uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(has_figure("$SYS/fieldmq/fake/commands 0"));
	assert_true(has_figure("$SYS/fieldmq/fake/bus/b1/opens 7"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_started_for_its_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_routed_by_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_command_answered_on_stop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_figures, setup_sys, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
