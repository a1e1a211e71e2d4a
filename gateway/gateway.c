/*
 * gateway.c - the composition root: builds the daemon from its modules and
 * wires them together. The broker is the hub; the store, the persistence
 * hooks and the uplink attach to it; the adapters of the registry
 * (gw_drivers, gateway/adapters.c) get the reading path's sink
 * (reading_path.c); commands (commands.c) reach them by the point's
 * protocol; optional services (MQTT-SN) start from one table.
 *
 * The lifecycle of adapters is written once for every protocol: start the
 * adapters the map needs, stop them, and on SIGHUP load the new map, start
 * its adapters (or let an adapter take the new map in place through
 * ops->reload) and close the old ones, freeing the old map once the last has
 * closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/mqttsn.h"
#include "broker/broker.h"
#include "gateway/auth_files.h"
#include "gateway/gateway_int.h"
#include "gateway/ha_glue.h"
#include "gateway/notify.h"
#include "gateway/persist.h"
#include "gateway/uplink.h"
#include "store/store.h"

#include <sys/stat.h>

#define MOD "gateway"

int gw__publish(struct gw *g, const char *topic, const void *payload, size_t len, uint8_t qos,
		bool retain, const struct brk_msg_props *props)
{
	struct brk_pub pub = {
		.topic = gw_slice_cstr(topic),
		.payload = { payload, len },
		.qos = qos,
		.retain = retain,
		.props = props,
	};

	return brk_publish(g->broker, &pub);
}

/* --------------------------------------------------------------- services */

static void publish_figure(struct gw *g, const char *topic, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	gw__publish(g, topic, buf, strlen(buf), 0, true, NULL);
}

/* mkdir -p @path (0755). */
static int mkdirs(const char *path)
{
	char buf[1024];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

/*
 * The store keeps the uplink queue, retained messages and persistent
 * sessions. Without it (an unwritable data_dir) the broker still serves,
 * and the log says what is not kept.
 */
static void open_store(struct gw *g)
{
	const struct gw_store_config *sc = &g->cfg.store;
	struct st_config stc;
	int rc;

	if (!g->cfg.broker.persist && !g->cfg.uplink.enabled)
		return;
	rc = mkdirs(g->cfg.gateway.data_dir);
	if (rc)
		gw_log(g->log, LOG_ERR, MOD, "data_dir %s: %s", g->cfg.gateway.data_dir,
		       strerror(-rc));
	st_config_defaults(&stc);
	stc.path = sc->path;
	stc.queue_max_messages = sc->queue_max_messages;
	stc.queue_max_bytes = sc->queue_max_bytes;
	stc.overflow = sc->overflow == GW_OVERFLOW_DROP_NEWEST ? ST_DROP_NEWEST : ST_DROP_OLDEST;
	stc.sync_interval_ms = sc->sync_interval_ms;
	stc.sync_full = sc->synchronous == 1;
	rc = st_open(g->loop, &stc, g->log, &g->store);
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD,
		       "store %s: cannot open (%s): retained messages, sessions and the uplink queue are kept in memory only",
		       sc->path, strerror(-rc));
		g->store = NULL;
		return;
	}
	if (g->cfg.broker.persist) {
		gw_persist_restore(g->broker, g->store, g->log);
		g->persist = gw_persist_attach(g->broker, g->store, g->log);
	}
}

static int start_mqttsn(struct gw *g)
{
	const struct gw_mqttsn_config *mc = &g->cfg.mqttsn;
	struct mqttsn_config c;
	unsigned int i;
	int rc;

	if (!mc->enabled)
		return 0;
	mqttsn_config_defaults(&c);
	c.listen = mc->listen;
	c.gateway_id = mc->gateway_id;
	c.advertise_interval_ms = mc->advertise_interval_ms;
	c.multicast = mc->multicast;
	c.max_clients = mc->max_clients;
	c.max_queued = mc->max_queued;
	c.max_retries = mc->max_retries;
	c.retry_interval_ms = mc->retry_interval_ms;
	c.mountpoint = mc->mountpoint;
	for (i = 0; i < mc->n_predefined; i++) {
		g->predefined[i].id = mc->predefined[i].id;
		g->predefined[i].topic = mc->predefined[i].topic;
	}
	c.predefined = g->predefined;
	c.n_predefined = mc->n_predefined;
	c.allow_from = mc->allow_from;
	c.n_allow_from = mc->n_allow_from;
	rc = mqttsn_server_new(g->loop, g->broker, &c, g->log, &g->mqttsn);
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD, "mqttsn: cannot create the gateway: %s",
		       strerror(-rc));
		return rc;
	}
	rc = mqttsn_server_start(g->mqttsn);
	if (rc)
		gw_log(g->log, LOG_ERR, MOD, "mqttsn: cannot listen on %s: %s", mc->listen,
		       rc < 0 ? uv_strerror(rc) : "error");
	return rc;
}

static bool mqttsn_enabled(const struct gw *g)
{
	return g->cfg.mqttsn.enabled;
}

static void stop_mqttsn(struct gw *g)
{
	if (g->mqttsn)
		mqttsn_server_stop(g->mqttsn, NULL, NULL);
}

static void free_mqttsn(struct gw *g)
{
	if (g->mqttsn)
		mqttsn_server_free(g->mqttsn);
	g->mqttsn = NULL;
}

static void sys_mqttsn(struct gw *g)
{
	struct mqttsn_stats ms;

	if (!g->mqttsn)
		return;
	mqttsn_server_get_stats(g->mqttsn, &ms);
	publish_figure(g, "$SYS/fieldmq/mqttsn/clients", ms.clients);
	publish_figure(g, "$SYS/fieldmq/mqttsn/clients/total", ms.clients_total);
	publish_figure(g, "$SYS/fieldmq/mqttsn/clients/refused", ms.clients_refused);
	publish_figure(g, "$SYS/fieldmq/mqttsn/datagrams/received", ms.datagrams_in);
	publish_figure(g, "$SYS/fieldmq/mqttsn/datagrams/sent", ms.datagrams_out);
	publish_figure(g, "$SYS/fieldmq/mqttsn/malformed", ms.malformed);
	publish_figure(g, "$SYS/fieldmq/mqttsn/dropped/received", ms.dropped_in);
	publish_figure(g, "$SYS/fieldmq/mqttsn/dropped/sent", ms.dropped_out);
	publish_figure(g, "$SYS/fieldmq/mqttsn/dropped/denied", ms.denied);
}

static bool ha_enabled(const struct gw *g)
{
	return g->cfg.homeassistant.enabled;
}

/* Home Assistant discovery (gateway/ha_glue.c): the configs of the current map. */
static int start_ha(struct gw *g)
{
	struct gw_ha_ctx ctx = {
		.discovery_prefix = g->cfg.homeassistant.discovery_prefix,
		.gateway_id = g->cfg.gateway.id,
		.topic_prefix = g->cfg.gateway.topic_prefix,
		.payload = g->cfg.gateway.payload,
		.version = FIELDMQ_VERSION,
		.protocols = g->proto_names,
	};
	unsigned int i;
	int rc;

	for (i = 0; i < __AD_PROTO_MAX; i++)
		g->proto_names[i] = g->cfg.drivers[i].name;
	rc = gw_ha_new(g->broker, &ctx, &g->cfg.devmap->map, g->log, &g->ha);
	if (rc)
		gw_log(g->log, LOG_ERR, MOD, "homeassistant: cannot start: %s", strerror(-rc));
	return rc;
}

static void stop_ha(struct gw *g)
{
	gw_ha_free(g->ha);
	g->ha = NULL;
}

static void sys_ha(struct gw *g)
{
	struct gw_ha_stats hs;

	if (!g->ha)
		return;
	gw_ha_get_stats(g->ha, &hs);
	publish_figure(g, "$SYS/fieldmq/homeassistant/configs/sent", hs.configs_sent);
	publish_figure(g, "$SYS/fieldmq/homeassistant/configs/removed", hs.configs_removed);
	publish_figure(g, "$SYS/fieldmq/homeassistant/births", hs.births);
}

/*
 * Optional parts of the daemon that serve broker sessions rather than
 * readings (MQTT-SN, the CoAP server), started after the broker
 * listens, in table order, and stopped before it. start() logs its own
 * failure and returns -errno (a runtime failure: exit status 1).
 */
struct gw_service {
	const char *name;
	bool (*enabled)(const struct gw *g);
	int (*start)(struct gw *g);
	void (*stop)(struct gw *g); /* begins the close; the loop finishes it */
	void (*free)(struct gw *g);
	void (*sys)(struct gw *g); /* $SYS/fieldmq/<name>/... figures */
};

static bool http_enabled(const struct gw *g)
{
	return g->cfg.http.enabled;
}

static const struct gw_service services[__GW_SVC_MAX] = {
	[GW_SVC_MQTTSN] = { "mqttsn", mqttsn_enabled, start_mqttsn, stop_mqttsn, free_mqttsn,
			    sys_mqttsn },
	[GW_SVC_COAP] = { "coap", gw__coap_enabled, gw__coap_start, gw__coap_stop, gw__coap_free,
			  gw__coap_sys },
	[GW_SVC_HTTP] = { "http", http_enabled, gw__http_start, gw__http_stop, gw__http_free,
			  NULL },
	[GW_SVC_HOMEASSISTANT] = { "homeassistant", ha_enabled, start_ha, stop_ha, stop_ha,
				   sys_ha },
};

/* An adapter's figure (ad_ops.figures) under $SYS/fieldmq/<protocol>/. */
struct figure_ctx {
	struct gw *g;
	const char *proto;
};

static void emit_figure(void *arg, const char *name, uint64_t value)
{
	const struct figure_ctx *fc = arg;
	char topic[GW_TOPIC_MAX];
	int n;

	n = snprintf(topic, sizeof(topic), "$SYS/fieldmq/%s/%s", fc->proto, name);
	if (n > 0 && (size_t)n < sizeof(topic))
		publish_figure(fc->g, topic, value);
}

/* $SYS/fieldmq/...: the gateway's own figures, at the broker's sys_interval. */
static void publish_sys(struct gw *g)
{
	unsigned int i, online = 0;

	for (i = 0; i < g->cfg.devmap->map.n_devices; i++)
		online += g->devices[i].known && g->devices[i].online;
	publish_figure(g, "$SYS/fieldmq/devices/count", g->cfg.devmap->map.n_devices);
	publish_figure(g, "$SYS/fieldmq/devices/online", online);
	for (i = 0; i < __GW_SVC_MAX; i++)
		if (services[i].sys)
			services[i].sys(g);
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		const struct ad_adapter *a = g->adapters[i].a;
		struct figure_ctx fc = { g, g->cfg.drivers[i].name };

		if (a && a->ops->figures)
			a->ops->figures(a, emit_figure, &fc);
	}
	if (g->store) {
		struct st_stats ss;

		st_get_stats(g->store, &ss);
		publish_figure(g, "$SYS/fieldmq/store/commits", ss.commits);
		publish_figure(g, "$SYS/fieldmq/store/commit_errors", ss.commit_errors);
	}
	if (g->uplink) {
		struct gw_uplink_stats us;

		gw_uplink_get_stats(g->uplink, &us);
		publish_figure(g, "$SYS/fieldmq/uplink/connected", us.connected);
		publish_figure(g, "$SYS/fieldmq/uplink/queued", us.queued);
		publish_figure(g, "$SYS/fieldmq/uplink/dropped", us.store_dropped + us.dropped);
		publish_figure(g, "$SYS/fieldmq/uplink/sent", us.sent);
		publish_figure(g, "$SYS/fieldmq/uplink/received", us.received);
	}
}

/* systemd's STATUS=: devices online and the uplink's state (sent when it changes). */
static void notify_state(struct gw *g)
{
	struct gw_uplink_stats us = { 0 };
	unsigned int i, online = 0;

	for (i = 0; i < g->cfg.devmap->map.n_devices; i++)
		online += g->devices[i].known && g->devices[i].online;
	if (g->uplink)
		gw_uplink_get_stats(g->uplink, &us);
	gw_notify_state(g->notify, online, g->cfg.devmap->map.n_devices,
			g->uplink ? us.connected : -1, us.queued);
}

static void on_tick(uv_timer_t *t)
{
	struct gw *g = container_of(t, struct gw, tick);
	int64_t now = gw_mono_ms();

	gw__check_stale(g, now);
	gw__http_tick(g);
	notify_state(g);
	if (g->cfg.broker.sys_interval_ms &&
	    now - g->last_sys_ms >= (int64_t)g->cfg.broker.sys_interval_ms) {
		g->last_sys_ms = now;
		publish_sys(g);
	}
}

/* ---------------------------------------------------------------- adapters */

/* Whether @map has devices of @proto. */
static bool map_uses(const struct ad_map *map, enum ad_protocol proto)
{
	unsigned int i;

	for (i = 0; i < map->n_devices; i++)
		if (map->devices[i]->protocol == proto)
			return true;
	return false;
}

/*
 * Creates and starts the adapter of @proto for the current map in
 * g->adapters[proto]. Returns 0 (also when the map has no such device),
 * -ENOMEM, or the adapter's start error (it is then freed and the slot left
 * empty; the reason is logged).
 */
static int start_adapter(struct gw *g, enum ad_protocol proto)
{
	const struct ad_driver *drv = &g->cfg.drivers[proto];
	struct gw_slot *s = &g->adapters[proto];
	struct ad_sink sink;
	int rc;

	if (!drv->create || !map_uses(&g->cfg.devmap->map, proto))
		return 0;
	gw__sink(g, &sink);
	s->g = g;
	s->old = false;
	s->a = drv->create(g->loop, &g->cfg.devmap->map, g->log, &sink);
	if (!s->a)
		return -ENOMEM;
	rc = s->a->ops->start(s->a);
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD, "%s adapter: cannot start: %s", drv->name,
		       strerror(-rc));
		s->a->ops->free(s->a);
		s->a = NULL;
	}
	return rc;
}

/* Every adapter the current map needs; the first error is returned, the others still start. */
static int start_adapters(struct gw *g)
{
	unsigned int i;
	int rc, first = 0;

	for (i = 0; i < __AD_PROTO_MAX; i++) {
		rc = start_adapter(g, (enum ad_protocol)i);
		if (rc && !first)
			first = rc;
	}
	return first;
}

/* ops->stop() finished: free the adapter; the last old one frees the old map. */
static void on_adapter_closed(void *arg)
{
	struct gw_slot *s = arg;
	struct gw *g = s->g;

	s->a->ops->free(s->a);
	s->a = NULL;
	if (s->old && --g->old_closing == 0) {
		gw_devmap_free(g->old_map);
		g->old_map = NULL;
	}
}

/* Begins the close of the adapter in @s (if any). */
static void stop_slot(struct gw_slot *s)
{
	if (s->a)
		s->a->ops->stop(s->a, on_adapter_closed, s);
}

int gw_gateway_reload(struct gw *g)
{
	struct gw_point_state *pts, *old_pts = g->points;
	struct gw_devstate *devs, *old_devs = g->devices;
	unsigned int old_n = g->cfg.devmap->map.n_points, i;
	struct gw_devmap *dm;
	char err[4096];
	int rc, first = 0;

	if (g->stopping)
		return -ECANCELED;
	if (g->old_closing) {
		gw_log(g->log, LOG_WARNING, MOD,
		       "reload: the previous reload is still closing; try again");
		return -EBUSY;
	}
	rc = gw_devmap_load(&g->cfg, &dm, err, sizeof(err));
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD,
		       "reload: new device maps rejected, keeping the running ones:\n%s", err);
		return rc;
	}
	rc = gw__map_state_new(dm, &pts, &devs);
	if (rc) {
		gw_devmap_free(dm);
		return rc;
	}
	g->old_map = g->cfg.devmap;
	g->cfg.devmap = dm;
	g->points = pts;
	g->devices = devs;
	gw__map_state_free(old_pts, old_n, old_devs);
	/*
	 * Each adapter takes the new map in place if it can and the map still
	 * has its devices; otherwise it closes (pending commands refer to the
	 * old map's points: it answers them) and a new one starts.
	 */
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		struct gw_slot *s = &g->adapters[i];
		struct ad_adapter *a = s->a;

		if (a && a->ops->reload && map_uses(&dm->map, (enum ad_protocol)i) &&
		    a->ops->reload(a, &dm->map) == 0)
			continue;
		if (a) {
			g->old_adapters[i] = (struct gw_slot){ .g = g, .a = a, .old = true };
			s->a = NULL;
			g->old_closing++;
		}
		rc = start_adapter(g, (enum ad_protocol)i);
		if (rc && !first)
			first = rc;
	}
	if (!g->old_closing) {
		gw_devmap_free(g->old_map);
		g->old_map = NULL;
	}
	for (i = 0; i < __AD_PROTO_MAX; i++)
		stop_slot(&g->old_adapters[i]);
	gw_ha_map_changed(g->ha, &dm->map);
	gw_log(g->log, LOG_INFO, MOD, "reload: device maps reloaded (%u devices, %u points)",
	       dm->map.n_devices, dm->map.n_points);
	return first;
}

/* -------------------------------------------------------------- lifecycle */

static void on_signal(uv_signal_t *s, int signum)
{
	struct gw *g = s->data;

	if (signum == SIGHUP) {
		gw_log(g->log, LOG_INFO, MOD,
		       "SIGHUP: reloading acl_file, password_file, device maps");
		gw_auth_reload(&g->cfg, g->broker, g->log);
		gw__http_reload(g);
		gw_gateway_reload(g);
		return;
	}
	gw_log(g->log, LOG_INFO, MOD, "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	gw_gateway_stop(g);
}

int gw_gateway_new(uv_loop_t *loop, struct gw_config *cfg, struct gw_logger *log, struct gw **out)
{
	struct gw *g = gw_calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return -ENOMEM;
	g->loop = loop;
	g->log = log;
	g->started_ms = gw_now_ms();
	g->started_mono_ms = gw_mono_ms();
	g->cfg = *cfg;
	if (!g->cfg.drivers)
		g->cfg.drivers = gw_drivers;
	gw_list_init(&g->cmds);
	snprintf(g->status_topic, sizeof(g->status_topic), "%s/status", cfg->gateway.topic_prefix);
	rc = gw__map_state_new(cfg->devmap, &g->points, &g->devices);
	if (rc) {
		gw_free(g);
		return rc;
	}
	rc = brk_new(loop, &cfg->broker, log, &g->broker);
	if (rc) {
		gw__map_state_free(g->points, cfg->devmap->map.n_points, g->devices);
		gw_free(g);
		return rc;
	}
	/* The config now belongs to the gateway. */
	memset(cfg, 0, sizeof(*cfg));
	uv_signal_init(loop, &g->sig_term);
	uv_signal_init(loop, &g->sig_int);
	uv_signal_init(loop, &g->sig_hup);
	g->sig_term.data = g->sig_int.data = g->sig_hup.data = g;
	uv_timer_init(loop, &g->tick);
	*out = g;
	return 0;
}

int gw_gateway_start(struct gw *g)
{
	unsigned int i;
	int rc;

	uv_signal_start(&g->sig_term, on_signal, SIGTERM);
	uv_signal_start(&g->sig_int, on_signal, SIGINT);
	uv_signal_start(&g->sig_hup, on_signal, SIGHUP);
	open_store(g);
	/* The uplink subscribes before the broker listens: no forwarded message is missed. */
	if (g->cfg.uplink.enabled) {
		rc = gw_uplink_new(g->loop, &g->cfg.uplink, g->status_topic, g->broker, g->store,
				   g->log, &g->uplink);
		if (!rc)
			rc = gw_uplink_start(g->uplink);
		if (rc) {
			gw_log(g->log, LOG_ERR, MOD, "uplink: cannot start: %s", strerror(-rc));
			g->exit_code = 1;
			return rc;
		}
	}
	rc = brk_start(g->broker);
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD, "broker: cannot listen: %s", uv_strerror(rc));
		g->exit_code = 1;
		return rc;
	}
	rc = gw__commands_start(g);
	if (rc)
		return rc;
	gw__publish(g, g->status_topic, "online", 6, 1, true, NULL);
	for (i = 0; i < __GW_SVC_MAX; i++) {
		if (!services[i].enabled(g))
			continue;
		rc = services[i].start(g);
		if (rc) {
			g->exit_code = 1;
			return rc;
		}
	}
	rc = start_adapters(g);
	if (rc && rc != -ENOMEM)
		rc = 0; /* a bus that cannot open now is retried by its adapter */
	if (rc)
		return rc;
	uv_timer_start(&g->tick, on_tick, 1000, 1000);
	/* The listeners are up: systemd may start what comes after us. */
	gw_notify_new(g->loop, g->log, &g->notify);
	gw_notify_ready(g->notify);
	notify_state(g);
	g->started = true;
	gw_log(g->log, LOG_INFO, MOD, "fieldmq %s started as %s (%u devices, %u points)",
	       FIELDMQ_VERSION, g->cfg.gateway.id, g->cfg.devmap->map.n_devices,
	       g->cfg.devmap->map.n_points);
	return 0;
}

void gw_gateway_stop(struct gw *g)
{
	unsigned int i;

	if (g->stopping)
		return;
	g->stopping = true;
	gw_notify_stopping(g->notify);
	/* Goodbye to the cloud first; the store's last callbacks still reach the uplink. */
	gw_uplink_stop(g->uplink);
	if (g->cmd_client && g->broker)
		gw__publish(g, g->status_topic, "offline", 7, 1, true, NULL);
	gw__commands_stop(g);
	for (i = 0; i < __AD_PROTO_MAX; i++)
		stop_slot(&g->adapters[i]);
	for (i = 0; i < __GW_SVC_MAX; i++)
		services[i].stop(g);
	uv_close((uv_handle_t *)&g->sig_term, NULL);
	uv_close((uv_handle_t *)&g->sig_int, NULL);
	uv_close((uv_handle_t *)&g->sig_hup, NULL);
	uv_close((uv_handle_t *)&g->tick, NULL);
	brk_stop(g->broker);
	/* The broker saved what its sessions hold while stopping; now the store commits and closes. */
	if (g->persist) {
		gw_persist_detach(g->broker, g->persist);
		g->persist = NULL;
	}
	if (g->store) {
		st_close(g->store, NULL, NULL);
		g->store = NULL;
	}
}

int gw_gateway_exit_code(const struct gw *g)
{
	return g->exit_code;
}

void gw_gateway_free(struct gw *g)
{
	unsigned int i;

	if (!g)
		return;
	gw__commands_free(g);
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		if (g->adapters[i].a)
			g->adapters[i].a->ops->free(g->adapters[i].a);
		if (g->old_adapters[i].a)
			g->old_adapters[i].a->ops->free(g->old_adapters[i].a);
	}
	gw_devmap_free(g->old_map);
	for (i = 0; i < __GW_SVC_MAX; i++)
		services[i].free(g);
	gw_uplink_free(g->uplink);
	gw_notify_free(g->notify);
	if (g->broker)
		brk_free(g->broker);
	gw__map_state_free(g->points, g->cfg.devmap ? g->cfg.devmap->map.n_points : 0, g->devices);
	gw_config_free(&g->cfg);
	gw_free(g);
}
