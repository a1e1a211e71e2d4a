/*
 * ha_glue.h - Home Assistant discovery on the broker: publishes the configs
 * ha.c builds, retained, through an in-process client of the broker, and
 * keeps them right:
 *  - at start and after every device-map reload, every point's config and
 *    the gateway's are published (retained, QoS 1);
 *  - then the client (re)subscribes to <prefix>/+/<gateway id>/+/config:
 *    the retained configs the broker holds come back, and each one no point
 *    of the current map produces (a point removed by a reload or while
 *    fieldmq was stopped, or one whose component changed) is cleared with an
 *    empty retained message, which makes HA delete the entity;
 *  - when HA publishes "online" on <prefix>/status (its birth message, e.g.
 *    after HA restarts), every config is sent again.
 * Threads: the loop thread only.
 */
#ifndef FIELDMQ_HA_GLUE_H
#define FIELDMQ_HA_GLUE_H

#include "broker/broker.h"
#include "gateway/base/base.h"
#include "gateway/ha.h"

struct gw_ha;

/*
 * gw_ha_new - attach to @b as client "$fieldmq-homeassistant" and publish the
 * configs of @map. @ctx's strings and @map must stay valid until the next
 * gw_ha_map_changed() / gw_ha_free(). Returns 0, -ENOMEM, or the broker's error.
 */
int gw_ha_new(struct brk *b, const struct gw_ha_ctx *ctx, const struct ad_map *map,
	      const struct gw_logger *lg, struct gw_ha **out);

/* The device map was replaced by @map (SIGHUP): publish its configs, clear the removed ones. */
int gw_ha_map_changed(struct gw_ha *ha, const struct ad_map *map);

/* Detach (the retained configs stay: HA keeps the entities, unavailable with the gateway). */
void gw_ha_free(struct gw_ha *ha);

/* Counts for tests and $SYS. */
struct gw_ha_stats {
	uint64_t configs_sent;	  /* config messages published (every resend counted) */
	uint64_t configs_removed; /* empty retained configs published */
	uint64_t births;	  /* "online" seen on <prefix>/status */
};
void gw_ha_get_stats(const struct gw_ha *ha, struct gw_ha_stats *out);

#endif
