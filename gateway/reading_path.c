/*
 * reading_path.c - the reading path around the pure parts of reading.c:
 * readings and device statuses from every adapter (the struct ad_sink they
 * are given) become retained topics under the publish policy, and points
 * whose values are no longer refreshed are republished as stale.
 *
 * Readings from a map being replaced (SIGHUP) are dropped: the point's
 * index no longer names it in the current map.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_int.h"

#define MOD "gateway"

int gw__map_state_new(const struct gw_devmap *dm, struct gw_point_state **pts,
		      struct gw_devstate **devs)
{
	unsigned int i, j;

	*pts = gw_calloc(dm->map.n_points ? dm->map.n_points : 1, sizeof(**pts));
	*devs = gw_calloc(dm->map.n_devices ? dm->map.n_devices : 1, sizeof(**devs));
	if (!*pts || !*devs) {
		gw_free(*pts);
		gw_free(*devs);
		*pts = NULL;
		*devs = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < dm->map.n_devices; i++)
		for (j = 0; j < dm->map.devices[i]->n_points; j++)
			(*pts)[dm->map.devices[i]->points[j]->index].device_index = i;
	return 0;
}

void gw__map_state_free(struct gw_point_state *pts, unsigned int n, struct gw_devstate *devs)
{
	unsigned int i;

	for (i = 0; pts && i < n; i++)
		gw_point_state_fini(&pts[i]);
	gw_free(pts);
	gw_free(devs);
}

static int device_index(const struct gw *g, const struct ad_device *d)
{
	const struct ad_map *map = &g->cfg.devmap->map;
	unsigned int i;

	for (i = 0; i < map->n_devices; i++)
		if (map->devices[i] == d)
			return (int)i;
	return -1;
}

static void publish_device_status(struct gw *g, const struct ad_device *d, bool online)
{
	char topic[GW_TOPIC_MAX];
	const char *s = online ? "online" : "offline";

	snprintf(topic, sizeof(topic), "%s/%s/status", g->cfg.gateway.topic_prefix, d->name);
	gw__publish(g, topic, s, strlen(s), 1, true, NULL);
}

static void emit_reading(struct gw *g, struct gw_point_state *st, const struct ad_reading *r,
			 int64_t now)
{
	char topic[GW_TOPIC_MAX];
	uint8_t payload[GW_PAYLOAD_MAX];
	struct gw_writer w;

	if (gw_reading_topic(g->cfg.gateway.topic_prefix, r->device->name, r->point->name, topic,
			     sizeof(topic)) < 0)
		return;
	gw_writer_init(&w, payload, sizeof(payload));
	if (gw_render_reading(g->cfg.gateway.payload, r, &w)) {
		gw_log(g->log, LOG_WARNING, MOD, "%s: payload over %d bytes, not published", topic,
		       GW_PAYLOAD_MAX);
		return;
	}
	if (gw__publish(g, topic, payload, w.len, 1, true, NULL))
		return;
	gw_policy_commit(st, r, now);
}

/* The figures of the device of @st's point, for /metrics. */
static void count_reading(struct gw *g, const struct gw_point_state *st, const struct ad_reading *r)
{
	struct gw_devstate *ds = &g->devices[st->device_index];

	ds->readings++;
	if (r->quality == AD_Q_BAD)
		ds->bad_readings++;
	else if (r->quality == AD_Q_GOOD)
		ds->last_good_ms = r->ts_ms ? r->ts_ms : gw_now_ms();
}

static void on_reading(void *arg, const struct ad_reading *r)
{
	struct gw *g = arg;
	struct gw_point_state *st;
	int64_t now = gw_mono_ms();

	if (g->stopping || r->point->index >= g->cfg.devmap->map.n_points ||
	    g->cfg.devmap->map.points[r->point->index] != r->point)
		return; /* a reading from a map that is being replaced */
	st = &g->points[r->point->index];
	st->last_read_mono_ms = now;
	count_reading(g, st, r);
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

static void on_status(void *arg, const struct ad_device *dev, bool online)
{
	struct gw *g = arg;
	int i = device_index(g, dev);

	if (i < 0 || g->stopping)
		return;
	if (g->devices[i].known && g->devices[i].online == online)
		return;
	g->devices[i].known = true;
	g->devices[i].online = online;
	g->devices[i].offline_count += !online;
	gw_log(g->log, online ? LOG_INFO : LOG_WARNING, MOD, "device %s is %s", dev->name,
	       online ? "online" : "offline");
	publish_device_status(g, dev, online);
}

void gw__sink(struct gw *g, struct ad_sink *out)
{
	out->arg = g;
	out->on_reading = on_reading;
	out->on_status = on_status;
	out->on_cmd_done = gw__on_cmd_done;
}

/*
 * A point whose last good value is older than its device's stale_ms (three
 * poll intervals unless the adapter says otherwise) is republished as stale.
 */
void gw__check_stale(struct gw *g, int64_t now)
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
