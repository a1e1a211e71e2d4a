/*
 * reading.h - the reading path: a normalised reading becomes a topic and a
 * payload (DESIGN.md section 5), under a publish policy, and commands on
 * .../set become typed values.
 *
 * Pure functions and small state: no I/O, no libuv, no broker.
 */
#ifndef FIELDMQ_READING_H
#define FIELDMQ_READING_H

#include "adapters/adapter.h"
#include "gateway/base/base.h"
#include "gateway/config.h"

/*
 * gw_reading_topic - "<prefix>/<device>/<point>" into @buf (NUL-terminated).
 * Returns the length, or -EMSGSIZE if it does not fit.
 */
int gw_reading_topic(const char *prefix, const char *device, const char *point, char *buf,
		     size_t cap);

/*
 * gw_render_reading - the payload of @r into @w: with GW_PAYLOAD_JSON
 * {"value":21.5,"unit":"°C","quality":"good","ts":1732240000123}; with
 * GW_PAYLOAD_VALUE the bare value (a JSON scalar: 21.5, true, "text").
 * A NaN or infinite double is never written as a number: the JSON form omits
 * the value and says quality "bad"; the bare form writes an empty payload.
 * A reading without a value (AD_VAL_NONE) omits "value". Returns 0 or
 * -EMSGSIZE (w->err).
 */
int gw_render_reading(enum gw_payload mode, const struct ad_reading *r, struct gw_writer *w);

/* JSON string (with quotes) of @s: escapes ", \, control characters; keeps valid UTF-8. */
void gw_json_string(struct gw_writer *w, struct gw_slice s);
/* A finite double in the shortest form that reads back exactly; NaN/Inf as null. */
void gw_json_double(struct gw_writer *w, double d);
void gw_json_value(struct gw_writer *w, const struct ad_value *v);

/* --------------------------------------------------------- publish policy */

/*
 * What was last published for a point. last_str holds a copy of a string
 * value (owned, gw_malloc'd); free with gw_point_state_fini().
 */
struct gw_point_state {
	bool published;
	struct ad_value last;
	enum ad_quality last_quality;
	int64_t last_pub_mono_ms;
	int64_t last_read_mono_ms;
	char *last_str;
	unsigned int device_index; /* the point's device in map->devices (set by the gateway) */
};

void gw_point_state_fini(struct gw_point_state *st);

/*
 * gw_policy_check - whether @r must be published under @policy now
 * (@now_mono_ms from a monotonic clock). on_change: the first reading, a
 * change of quality, a bool/string change, or a numeric change greater than
 * the point's deadband (strictly); every_poll: always; on_change_or_period:
 * on_change, or when @heartbeat_ms has passed since the last publication.
 * Does not change @st: call gw_policy_commit() after publishing.
 */
bool gw_policy_check(const struct gw_point_state *st, enum ad_publish policy, double deadband,
		     const struct ad_reading *r, int64_t now_mono_ms, uint64_t heartbeat_ms);

/* Records @r as published. Returns 0 or -ENOMEM (string copy). */
int gw_policy_commit(struct gw_point_state *st, const struct ad_reading *r, int64_t now_mono_ms);

/* --------------------------------------------------------------- commands */

/*
 * gw_parse_command - a command payload: a bare JSON value ("42.0", "true",
 * "\"text\"") or an object {"value": ...}. A bare word that is not JSON
 * (e.g. on) is taken as a string. String values are copied into @strbuf
 * (@strcap bytes) and out->s points there.
 * Returns 0, or -EINVAL with *why set to a static message.
 */
int gw_parse_command(struct gw_slice payload, struct ad_value *out, char *strbuf, size_t strcap,
		     const char **why);

/* {"ok":true,"value":42.0,"ts":...} or {"ok":false,"error":"...","ts":...} */
int gw_render_result(bool ok, const char *error, const struct ad_value *v, int64_t ts_ms,
		     struct gw_writer *w);

#endif
