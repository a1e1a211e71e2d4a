/*
 * ha_glue.c - Home Assistant discovery on the broker (see ha_glue.h): the
 * configs of ha.c published through an in-process client, removed ones
 * cleared, everything resent on HA's birth message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/ha_glue.h"

#define MOD "homeassistant"
#define TOPIC_MAX 1024

struct gw_ha {
	struct brk *broker;
	struct brk_client *client;
	struct gw_ha_ctx ctx;
	const struct ad_map *map;
	const struct gw_logger *log;
	char **topics; /* the config topics of the current map, sorted, for bsearch */
	unsigned int n_topics;
	char **stale; /* retained configs to clear once the broker's retained walk is over */
	unsigned int n_stale, cap_stale;
	char config_filter[TOPIC_MAX]; /* <prefix>/+/<id>/+/config */
	char birth_topic[TOPIC_MAX];   /* <prefix>/status */
	struct gw_ha_stats stats;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_topics(struct gw_ha *ha)
{
	unsigned int i;

	for (i = 0; i < ha->n_topics; i++)
		gw_free(ha->topics[i]);
	gw_free(ha->topics);
	ha->topics = NULL;
	ha->n_topics = 0;
}

/* The sorted set of config topics the current map produces (its points and the gateway). */
static int build_topics(struct gw_ha *ha)
{
	char topic[TOPIC_MAX];
	unsigned int i, n = 0;
	char **t;

	free_topics(ha);
	t = gw_calloc(ha->map->n_points + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (i = 0; i <= ha->map->n_points; i++) {
		int rc = i < ha->map->n_points
				 ? gw_ha_point_topic(&ha->ctx, ha->map->points[i], topic,
						     sizeof(topic))
				 : gw_ha_gateway_topic(&ha->ctx, topic, sizeof(topic));

		if (rc < 0)
			continue; /* too long: never published either */
		t[n] = gw_strdup(topic);
		if (!t[n]) {
			ha->topics = t;
			ha->n_topics = n;
			free_topics(ha);
			return -ENOMEM;
		}
		n++;
	}
	qsort(t, n, sizeof(*t), cmp_str);
	ha->topics = t;
	ha->n_topics = n;
	return 0;
}

static bool is_current(const struct gw_ha *ha, const char *topic)
{
	return ha->n_topics &&
	       bsearch(&topic, ha->topics, ha->n_topics, sizeof(*ha->topics), cmp_str) != NULL;
}

static int publish(struct gw_ha *ha, const char *topic, const char *payload)
{
	struct brk_pub pub = {
		.topic = gw_slice_cstr(topic),
		.payload = { (const uint8_t *)payload, strlen(payload) },
		.qos = 1,
		.retain = true,
	};

	return brk_client_publish(ha->client, &pub);
}

/* Every config of the current map, retained. Returns the first error (the others are still sent). */
static int publish_all(struct gw_ha *ha)
{
	char topic[TOPIC_MAX];
	unsigned int i;
	int rc, first = 0;

	for (i = 0; i <= ha->map->n_points; i++) {
		const struct ad_point *pt = i < ha->map->n_points ? ha->map->points[i] : NULL;
		char *json;

		rc = pt ? gw_ha_point_topic(&ha->ctx, pt, topic, sizeof(topic))
			: gw_ha_gateway_topic(&ha->ctx, topic, sizeof(topic));
		if (rc < 0) {
			gw_log(ha->log, LOG_WARNING, MOD,
			       "%s/%s: discovery topic too long, skipped",
			       pt ? pt->device->name : "", pt ? pt->name : "gateway");
			continue;
		}
		json = pt ? gw_ha_point_config(&ha->ctx, pt) : gw_ha_gateway_config(&ha->ctx);
		rc = json ? publish(ha, topic, json) : -ENOMEM;
		gw_ha_json_free(json);
		if (rc && !first)
			first = rc;
		if (!rc)
			ha->stats.configs_sent++;
	}
	return first;
}

/*
 * Deliveries: HA's birth message, and the retained configs of this gateway
 * that the broker hands back on (re)subscribing. A retained config no point
 * produces any more is cleared; live (non-retained) ones are not ours to
 * judge and empty ones are already cleared.
 */
static void on_deliver(void *arg, const struct brk_delivery *d)
{
	struct gw_ha *ha = arg;
	char topic[TOPIC_MAX];

	if (d->topic.len >= sizeof(topic))
		return;
	memcpy(topic, d->topic.p, d->topic.len);
	topic[d->topic.len] = '\0';
	if (!strcmp(topic, ha->birth_topic)) {
		if (d->payload.len == 6 && !memcmp(d->payload.p, "online", 6)) {
			ha->stats.births++;
			gw_log(ha->log, LOG_INFO, MOD,
			       "Home Assistant is online: sending %u configs", ha->n_topics);
			publish_all(ha);
		}
		return;
	}
	if (!d->retain || !d->payload.len || is_current(ha, topic))
		return;
	/*
	 * Not cleared here: this runs inside the broker's walk of its retained
	 * messages (brk_client_subscribe), which clearing one would change.
	 */
	if (ha->n_stale == ha->cap_stale) {
		unsigned int cap = ha->cap_stale ? 2 * ha->cap_stale : 16;
		char **n = gw_calloc(cap, sizeof(*n));

		if (!n)
			return;
		if (ha->n_stale)
			memcpy(n, ha->stale, ha->n_stale * sizeof(*n));
		gw_free(ha->stale);
		ha->stale = n;
		ha->cap_stale = cap;
	}
	ha->stale[ha->n_stale] = gw_strdup(topic);
	if (ha->stale[ha->n_stale])
		ha->n_stale++;
}

/* Empties the retained configs on_deliver() found stale. */
static void clear_stale(struct gw_ha *ha)
{
	unsigned int i;

	for (i = 0; i < ha->n_stale; i++) {
		if (!publish(ha, ha->stale[i], "")) {
			ha->stats.configs_removed++;
			gw_log(ha->log, LOG_INFO, MOD, "%s: no such point any more, config removed",
			       ha->stale[i]);
		}
		gw_free(ha->stale[i]);
	}
	ha->n_stale = 0;
}

/*
 * Publish everything, then have the broker hand back the retained configs
 * (synchronously, inside brk_client_subscribe) and clear the stale ones.
 */
static int sync_map(struct gw_ha *ha)
{
	int rc;

	rc = build_topics(ha);
	if (rc)
		return rc;
	rc = publish_all(ha);
	brk_client_unsubscribe(ha->client, gw_slice_cstr(ha->config_filter));
	/* Retain handling 0: the retained configs come with the SUBACK, every time. */
	if (!rc)
		rc = brk_client_subscribe(ha->client, gw_slice_cstr(ha->config_filter), 1, 0, 0);
	clear_stale(ha);
	return rc;
}

int gw_ha_new(struct brk *b, const struct gw_ha_ctx *ctx, const struct ad_map *map,
	      const struct gw_logger *lg, struct gw_ha **out)
{
	struct brk_client_opts opts = {
		.client_id = "$fieldmq-homeassistant",
		.clean_start = true,
		.deliver = on_deliver,
	};
	struct gw_ha *ha = gw_calloc(1, sizeof(*ha));
	int rc;

	*out = NULL;
	if (!ha)
		return -ENOMEM;
	ha->broker = b;
	ha->ctx = *ctx;
	ha->map = map;
	ha->log = lg;
	snprintf(ha->config_filter, sizeof(ha->config_filter), "%s/+/%s/+/config",
		 ctx->discovery_prefix, ctx->gateway_id);
	snprintf(ha->birth_topic, sizeof(ha->birth_topic), "%s/status", ctx->discovery_prefix);
	opts.arg = ha;
	rc = brk_client_new(b, &opts, &ha->client, NULL);
	if (rc)
		goto out;
	rc = brk_client_subscribe(ha->client, gw_slice_cstr(ha->birth_topic), 1, 0, 0);
	if (!rc)
		rc = sync_map(ha);
out:
	if (rc) {
		gw_ha_free(ha);
		return rc;
	}
	gw_log(lg, LOG_INFO, MOD, "discovery: %u configs under %s/", ha->n_topics,
	       ctx->discovery_prefix);
	*out = ha;
	return 0;
}

int gw_ha_map_changed(struct gw_ha *ha, const struct ad_map *map)
{
	if (!ha)
		return 0;
	ha->map = map;
	return sync_map(ha);
}

void gw_ha_free(struct gw_ha *ha)
{
	if (!ha)
		return;
	if (ha->client)
		brk_client_free(ha->client, false);
	free_topics(ha);
	while (ha->n_stale)
		gw_free(ha->stale[--ha->n_stale]);
	gw_free(ha->stale);
	gw_free(ha);
}

void gw_ha_get_stats(const struct gw_ha *ha, struct gw_ha_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (ha)
		*out = ha->stats;
}
