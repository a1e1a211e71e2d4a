/*
 * gateway.c - the daemon object and the reading path.
 *
 * Adapters hand readings to gw_on_reading(); the publish policy decides, the
 * renderer builds topic and payload, and the broker's in-process API
 * publishes them (retained, QoS 1, so the uplink forwards them through the
 * store). Commands arrive on <prefix>/<device>/<point>/set through an
 * in-process broker client and go to the adapter that serves the device;
 * results go to .../set/result and to an MQTT 5 response topic.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/modbus/modbus_adapter.h"
#include "adapters/mqttsn/mqttsn.h"
#include "broker/broker.h"
#include "gateway/gateway.h"
#include "gateway/persist.h"
#include "gateway/reading.h"
#include "gateway/uplink.h"
#include "store/store.h"

#include <sys/stat.h>

#define MOD "gateway"
#define TOPIC_MAX 1024
#define PAYLOAD_MAX 2048
#define CMD_STR_MAX 512

/* A command waiting for its adapter: where its result goes. */
struct gw_cmd {
	struct gw_list node;
	struct gw *g;
	char *result_topic;
	char *response_topic; /* MQTT 5, or NULL */
	uint8_t *corr;
	size_t corr_len;
};

struct gw_devstate {
	bool known;
	bool online;
};

struct gw {
	uv_loop_t *loop;
	struct gw_config cfg;
	struct gw_logger *log;
	struct brk *broker;
	struct brk_client *cmd_client;
	struct st_store *store;
	struct gw_persist *persist;
	struct gw_uplink *uplink;
	struct mqttsn_server *mqttsn;
	struct mqttsn_predef predefined[GW_MAX_PREDEFINED];
	int64_t last_sys_ms;
	struct ad_adapter *modbus;
	struct ad_adapter *old_modbus; /* closing after a reload */
	struct gw_devmap *old_map;
	struct gw_point_state *points; /* one per map point */
	struct gw_devstate *devices;   /* one per map device */
	struct gw_list cmds;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t tick;
	bool stopping;
	int exit_code;
	char status_topic[TOPIC_MAX];
};

/* ---------------------------------------------------------------- helpers */

static int publish(struct gw *g, const char *topic, const void *payload, size_t len, uint8_t qos,
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

static const struct ad_device *device_of_index(const struct gw *g, unsigned int i)
{
	return g->cfg.devmap->map.devices[i];
}

static int device_index(const struct gw *g, const struct ad_device *d)
{
	unsigned int i;

	for (i = 0; i < g->cfg.devmap->map.n_devices; i++)
		if (device_of_index(g, i) == d)
			return (int)i;
	return -1;
}

static void publish_device_status(struct gw *g, const struct ad_device *d, bool online)
{
	char topic[TOPIC_MAX];
	const char *s = online ? "online" : "offline";

	snprintf(topic, sizeof(topic), "%s/%s/status", g->cfg.gateway.topic_prefix, d->name);
	publish(g, topic, s, strlen(s), 1, true, NULL);
}

/* ------------------------------------------------------------ reading path */

static void emit_reading(struct gw *g, struct gw_point_state *st, const struct ad_reading *r,
			 int64_t now)
{
	char topic[TOPIC_MAX];
	uint8_t payload[PAYLOAD_MAX];
	struct gw_writer w;

	if (gw_reading_topic(g->cfg.gateway.topic_prefix, r->device->name, r->point->name, topic,
			     sizeof(topic)) < 0)
		return;
	gw_writer_init(&w, payload, sizeof(payload));
	if (gw_render_reading(g->cfg.gateway.payload, r, &w)) {
		gw_log(g->log, LOG_WARNING, MOD, "%s: payload over %d bytes, not published", topic,
		       PAYLOAD_MAX);
		return;
	}
	if (publish(g, topic, payload, w.len, 1, true, NULL))
		return;
	gw_policy_commit(st, r, now);
}

static void gw_on_reading(void *arg, const struct ad_reading *r)
{
	struct gw *g = arg;
	struct gw_point_state *st;
	int64_t now = gw_mono_ms();

	if (g->stopping || r->point->index >= g->cfg.devmap->map.n_points ||
	    g->cfg.devmap->map.points[r->point->index] != r->point)
		return; /* a reading from a map that is being replaced */
	st = &g->points[r->point->index];
	st->last_read_mono_ms = now;
	if (r->quality != AD_Q_GOOD && r->value.type == AD_VAL_NONE && st->published) {
		/* A failed read carries the last good value (DESIGN.md section 5). */
		struct ad_reading with_last = *r;

		with_last.value = st->last;
		if (gw_policy_check(st, r->point->publish, r->point->deadband, &with_last, now,
				    g->cfg.gateway.heartbeat_ms))
			emit_reading(g, st, &with_last, now);
		return;
	}
	if (gw_policy_check(st, r->point->publish, r->point->deadband, r, now,
			    g->cfg.gateway.heartbeat_ms))
		emit_reading(g, st, r, now);
}

static void gw_on_status(void *arg, const struct ad_device *dev, bool online)
{
	struct gw *g = arg;
	int i = device_index(g, dev);

	if (i < 0 || g->stopping)
		return;
	if (g->devices[i].known && g->devices[i].online == online)
		return;
	g->devices[i].known = true;
	g->devices[i].online = online;
	gw_log(g->log, online ? LOG_INFO : LOG_WARNING, MOD, "device %s is %s", dev->name,
	       online ? "online" : "offline");
	publish_device_status(g, dev, online);
}

/* A point whose last good value is older than its device's stale_ms (3 poll intervals unless the adapter says otherwise) is stale. */
static void check_stale(struct gw *g, int64_t now)
{
	const struct ad_map *map = &g->cfg.devmap->map;
	unsigned int i;

	for (i = 0; i < map->n_points; i++) {
		struct gw_point_state *st = &g->points[i];
		const struct ad_point *pt = map->points[i];
		struct ad_reading r;

		if (!st->published || st->last_quality != AD_Q_GOOD ||
		    now - st->last_read_mono_ms <= (int64_t)pt->device->stale_ms)
			continue;
		r.device = pt->device;
		r.point = pt;
		r.value = st->last;
		r.quality = AD_Q_STALE;
		r.ts_ms = gw_now_ms() - (now - st->last_read_mono_ms);
		emit_reading(g, st, &r, now);
	}
}

static void publish_figure(struct gw *g, const char *topic, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	publish(g, topic, buf, strlen(buf), 0, true, NULL);
}

/* $SYS/fieldmq/...: the gateway's own figures, at the broker's sys_interval. */
static void publish_sys(struct gw *g)
{
	unsigned int i, online = 0;

	for (i = 0; i < g->cfg.devmap->map.n_devices; i++)
		online += g->devices[i].known && g->devices[i].online;
	publish_figure(g, "$SYS/fieldmq/devices/count", g->cfg.devmap->map.n_devices);
	publish_figure(g, "$SYS/fieldmq/devices/online", online);
	if (g->mqttsn) {
		struct mqttsn_stats ms;

		mqttsn_server_get_stats(g->mqttsn, &ms);
		publish_figure(g, "$SYS/fieldmq/mqttsn/clients", ms.clients);
		publish_figure(g, "$SYS/fieldmq/mqttsn/clients/total", ms.clients_total);
		publish_figure(g, "$SYS/fieldmq/mqttsn/clients/refused", ms.clients_refused);
		publish_figure(g, "$SYS/fieldmq/mqttsn/datagrams/received", ms.datagrams_in);
		publish_figure(g, "$SYS/fieldmq/mqttsn/datagrams/sent", ms.datagrams_out);
		publish_figure(g, "$SYS/fieldmq/mqttsn/malformed", ms.malformed);
		publish_figure(g, "$SYS/fieldmq/mqttsn/dropped/received", ms.dropped_in);
		publish_figure(g, "$SYS/fieldmq/mqttsn/dropped/sent", ms.dropped_out);
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

static void on_tick(uv_timer_t *t)
{
	struct gw *g = container_of(t, struct gw, tick);
	int64_t now = gw_mono_ms();

	check_stale(g, now);
	if (g->cfg.broker.sys_interval_ms &&
	    now - g->last_sys_ms >= (int64_t)g->cfg.broker.sys_interval_ms) {
		g->last_sys_ms = now;
		publish_sys(g);
	}
}

/* --------------------------------------------------------------- commands */

static void cmd_free(struct gw_cmd *c)
{
	gw_list_del(&c->node);
	gw_free(c->result_topic);
	gw_free(c->response_topic);
	gw_free(c->corr);
	gw_free(c);
}

static void send_result(struct gw *g, const char *result_topic, const char *response_topic,
			const uint8_t *corr, size_t corr_len, bool ok, const char *error,
			const struct ad_value *v)
{
	uint8_t payload[PAYLOAD_MAX];
	struct brk_msg_props props = { 0 };
	struct gw_writer w;

	gw_writer_init(&w, payload, sizeof(payload));
	if (gw_render_result(ok, error, v, gw_now_ms(), &w))
		return;
	publish(g, result_topic, payload, w.len, 1, false, NULL);
	if (response_topic) {
		props.correlation_data.p = corr;
		props.correlation_data.len = corr_len;
		publish(g, response_topic, payload, w.len, 1, false, &props);
	}
}

static void gw_on_cmd_done(void *arg, void *token, const struct ad_cmd_result *res)
{
	struct gw *g = arg;
	struct gw_cmd *c = token;

	if (!c)
		return;
	if (!g->stopping)
		send_result(g, c->result_topic, c->response_topic, c->corr, c->corr_len, res->ok,
			    res->error, &res->value);
	cmd_free(c);
}

static char *dup_slice(struct gw_slice s)
{
	return gw_strndup((const char *)s.p, s.len);
}

/* <prefix>/<device>/<point>/set -> device and point slices. */
static bool split_set_topic(const struct gw *g, struct gw_slice t, struct gw_slice *dev,
			    struct gw_slice *pt)
{
	size_t plen = strlen(g->cfg.gateway.topic_prefix), i, slash = 0;

	if (t.len < plen + 6 || memcmp(t.p, g->cfg.gateway.topic_prefix, plen) || t.p[plen] != '/')
		return false;
	if (memcmp(t.p + t.len - 4, "/set", 4))
		return false;
	dev->p = t.p + plen + 1;
	dev->len = t.len - plen - 1 - 4;
	for (i = 0; i < dev->len; i++) {
		if (dev->p[i] == '/') {
			if (slash)
				return false;
			slash = i;
		}
	}
	if (!slash)
		return false;
	pt->p = dev->p + slash + 1;
	pt->len = dev->len - slash - 1;
	dev->len = slash;
	return dev->len && pt->len;
}

static void gw_on_command(void *arg, const struct brk_delivery *d)
{
	struct gw *g = arg;
	struct gw_slice dev_name, pt_name;
	const struct brk_msg_props *props = d->props;
	const struct ad_device *dev;
	const struct ad_point *pt;
	struct ad_value v;
	char strbuf[CMD_STR_MAX];
	char result_topic[TOPIC_MAX];
	const char *why = NULL;
	struct gw_cmd *c = NULL;
	int rc;

	if (g->stopping || !split_set_topic(g, d->topic, &dev_name, &pt_name))
		return;
	if (d->topic.len + 8 > sizeof(result_topic))
		return;
	snprintf(result_topic, sizeof(result_topic), "%.*s/result", (int)d->topic.len,
		 (const char *)d->topic.p);
	dev = gw_devmap_device(g->cfg.devmap, dev_name);
	pt = dev ? gw_devmap_point(dev, pt_name) : NULL;
	if (!pt) {
		why = "no such device or point";
		goto refuse;
	}
	if (!pt->writable) {
		why = "point is read-only (access = r)";
		goto refuse;
	}
	if (gw_parse_command(d->payload, &v, strbuf, sizeof(strbuf), &why))
		goto refuse;
	if (!g->modbus) {
		why = "no adapter serves this device";
		goto refuse;
	}
	c = gw_calloc(1, sizeof(*c));
	if (!c) {
		why = "out of memory";
		goto refuse;
	}
	gw_list_add_tail(&g->cmds, &c->node);
	c->g = g;
	c->result_topic = gw_strdup(result_topic);
	if (props && props->response_topic.len) {
		c->response_topic = dup_slice(props->response_topic);
		if (props->correlation_data.len) {
			c->corr = gw_malloc(props->correlation_data.len);
			if (c->corr) {
				memcpy(c->corr, props->correlation_data.p,
				       props->correlation_data.len);
				c->corr_len = props->correlation_data.len;
			}
		}
	}
	if (!c->result_topic || (props && props->response_topic.len && !c->response_topic)) {
		cmd_free(c);
		why = "out of memory";
		goto refuse;
	}
	rc = g->modbus->ops->command(g->modbus, pt, &v, c, &why);
	if (rc) {
		cmd_free(c);
		if (!why)
			why = strerror(-rc);
		goto refuse;
	}
	gw_log(g->log, LOG_DEBUG, MOD, "command for %s/%s queued", dev->name, pt->name);
	return;
refuse:
	gw_log(g->log, LOG_INFO, MOD, "command on %.*s refused: %s", (int)d->topic.len,
	       (const char *)d->topic.p, why);
	{
		char *rt = props && props->response_topic.len ? dup_slice(props->response_topic)
							      : NULL;

		send_result(g, result_topic, rt, props ? props->correlation_data.p : NULL,
			    props ? props->correlation_data.len : 0, false, why, NULL);
		gw_free(rt);
	}
}

/* ---------------------------------------------------------------- adapters */

static int alloc_map_state(struct gw *g, const struct gw_devmap *dm, struct gw_point_state **pts,
			   struct gw_devstate **devs)
{
	*pts = gw_calloc(dm->map.n_points ? dm->map.n_points : 1, sizeof(**pts));
	*devs = gw_calloc(dm->map.n_devices ? dm->map.n_devices : 1, sizeof(**devs));
	if (!*pts || !*devs) {
		gw_free(*pts);
		gw_free(*devs);
		return -ENOMEM;
	}
	(void)g;
	return 0;
}

static void free_map_state(struct gw_point_state *pts, unsigned int n, struct gw_devstate *devs)
{
	unsigned int i;

	for (i = 0; pts && i < n; i++)
		gw_point_state_fini(&pts[i]);
	gw_free(pts);
	gw_free(devs);
}

static int start_adapters(struct gw *g)
{
	const struct ad_sink sink = {
		.arg = g,
		.on_reading = gw_on_reading,
		.on_status = gw_on_status,
		.on_cmd_done = gw_on_cmd_done,
	};
	int rc;

	if (!g->cfg.devmap->map.n_devices)
		return 0;
	g->modbus = ad_modbus_new(g->loop, &g->cfg.devmap->map, g->log, &sink);
	if (!g->modbus)
		return -ENOMEM;
	rc = g->modbus->ops->start(g->modbus);
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD, "modbus adapter: cannot start: %s", strerror(-rc));
		g->modbus->ops->free(g->modbus);
		g->modbus = NULL;
	}
	return rc;
}

static void on_old_adapter_closed(void *arg)
{
	struct gw *g = arg;

	g->old_modbus->ops->free(g->old_modbus);
	g->old_modbus = NULL;
	gw_devmap_free(g->old_map);
	g->old_map = NULL;
}

int gw_gateway_reload(struct gw *g)
{
	struct gw_point_state *pts, *old_pts = g->points;
	struct gw_devstate *devs, *old_devs = g->devices;
	unsigned int old_n = g->cfg.devmap->map.n_points;
	struct gw_devmap *dm;
	char err[4096];
	int rc;

	if (g->stopping)
		return -ECANCELED;
	if (g->old_modbus) {
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
	rc = alloc_map_state(g, dm, &pts, &devs);
	if (rc) {
		gw_devmap_free(dm);
		return rc;
	}
	/* Pending commands refer to the old map's points: their adapter answers them. */
	g->old_modbus = g->modbus;
	g->old_map = g->cfg.devmap;
	g->modbus = NULL;
	g->cfg.devmap = dm;
	g->points = pts;
	g->devices = devs;
	free_map_state(old_pts, old_n, old_devs);
	if (g->old_modbus)
		g->old_modbus->ops->stop(g->old_modbus, on_old_adapter_closed, g);
	else {
		gw_devmap_free(g->old_map);
		g->old_map = NULL;
	}
	rc = start_adapters(g);
	gw_log(g->log, LOG_INFO, MOD, "reload: device maps reloaded (%u devices, %u points)",
	       dm->map.n_devices, dm->map.n_points);
	return rc;
}

/* -------------------------------------------------------------- lifecycle */

static void on_signal(uv_signal_t *s, int signum)
{
	struct gw *g = s->data;

	if (signum == SIGHUP) {
		gw_log(g->log, LOG_INFO, MOD, "SIGHUP: reloading device maps");
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
	g->cfg = *cfg;
	gw_list_init(&g->cmds);
	snprintf(g->status_topic, sizeof(g->status_topic), "%s/status", cfg->gateway.topic_prefix);
	rc = alloc_map_state(g, cfg->devmap, &g->points, &g->devices);
	if (rc) {
		gw_free(g);
		return rc;
	}
	rc = brk_new(loop, &cfg->broker, log, &g->broker);
	if (rc) {
		free_map_state(g->points, cfg->devmap->map.n_points, g->devices);
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

int gw_gateway_start(struct gw *g)
{
	struct brk_client_opts opts = {
		.client_id = "$fieldmq-gateway",
		.clean_start = true,
		.deliver = gw_on_command,
		.arg = g,
	};
	char filter[TOPIC_MAX];
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
	rc = brk_client_new(g->broker, &opts, &g->cmd_client, NULL);
	if (rc)
		return rc;
	snprintf(filter, sizeof(filter), "%s/+/+/set", g->cfg.gateway.topic_prefix);
	rc = brk_client_subscribe(g->cmd_client, gw_slice_cstr(filter), 1, 0, 0);
	if (rc)
		return rc;
	publish(g, g->status_topic, "online", 6, 1, true, NULL);
	rc = start_mqttsn(g);
	if (rc) {
		g->exit_code = 1;
		return rc;
	}
	rc = start_adapters(g);
	if (rc && rc != -ENOMEM)
		rc = 0; /* a bus that cannot open now is retried by its adapter */
	if (rc)
		return rc;
	uv_timer_start(&g->tick, on_tick, 1000, 1000);
	gw_log(g->log, LOG_INFO, MOD, "fieldmq %s started as %s (%u devices, %u points)",
	       FIELDMQ_VERSION, g->cfg.gateway.id, g->cfg.devmap->map.n_devices,
	       g->cfg.devmap->map.n_points);
	return 0;
}

static void on_adapter_closed(void *arg)
{
	struct gw *g = arg;

	g->modbus->ops->free(g->modbus);
	g->modbus = NULL;
}

void gw_gateway_stop(struct gw *g)
{
	if (g->stopping)
		return;
	g->stopping = true;
	/* Goodbye to the cloud first; the store's last callbacks still reach the uplink. */
	gw_uplink_stop(g->uplink);
	if (g->cmd_client && g->broker) {
		publish(g, g->status_topic, "offline", 7, 1, true, NULL);
		brk_client_free(g->cmd_client, false);
		g->cmd_client = NULL;
	}
	if (g->modbus)
		g->modbus->ops->stop(g->modbus, on_adapter_closed, g);
	if (g->mqttsn)
		mqttsn_server_stop(g->mqttsn, NULL, NULL);
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
	struct gw_list *pos, *tmp;

	if (!g)
		return;
	gw_list_for_each_safe (pos, tmp, &g->cmds) {
		cmd_free(gw_list_entry(pos, struct gw_cmd, node));
	}
	if (g->modbus)
		g->modbus->ops->free(g->modbus);
	if (g->old_modbus)
		g->old_modbus->ops->free(g->old_modbus);
	gw_devmap_free(g->old_map);
	if (g->mqttsn)
		mqttsn_server_free(g->mqttsn);
	gw_uplink_free(g->uplink);
	if (g->broker)
		brk_free(g->broker);
	free_map_state(g->points, g->cfg.devmap ? g->cfg.devmap->map.n_points : 0, g->devices);
	gw_config_free(&g->cfg);
	gw_free(g);
}
