/*
 * ha.h - Home Assistant MQTT discovery: the retained config message of every
 * point of a device map, and of the gateway itself ([homeassistant] in
 * fieldmq.ini; DESIGN.md section 5). Pure: strings in, topic and JSON out,
 * no I/O, no clock, no logging; the JSON is built with cJSON, which
 * allocates (free it with gw_ha_json_free()). ha_glue.c publishes what this
 * builds through the broker's in-process API.
 *
 * Per point:
 *   topic  <discovery_prefix>/<component>/<gateway id>/<device>_<point>/config
 *   component  read points: sensor, or binary_sensor for bool;
 *              rw points: number, switch for bool, text for string
 *   payload    unique_id, name (the point), a device block (one HA device per
 *              field device, via_device the gateway's), availability (the
 *              gateway's and the device's status topics, both must be
 *              online), state_topic (the reading's topic) + value_template
 *              for the payload mode, unit_of_measurement, device_class and
 *              state_class from the point's keys; command_topic .../set for
 *              rw points.
 * Names are used as HA object ids, whose alphabet is [A-Za-z0-9_-]: any
 * other character of a device or point name ('.') becomes '_' there.
 */
#ifndef FIELDMQ_HA_H
#define FIELDMQ_HA_H

#include <stddef.h>

#include "adapters/adapter.h"
#include "gateway/config.h"

enum gw_ha_component {
	GW_HA_SENSOR,
	GW_HA_BINARY_SENSOR,
	GW_HA_NUMBER,
	GW_HA_SWITCH,
	GW_HA_TEXT,
	__GW_HA_MAX,
};

/* What every config needs to know of the gateway. Strings are borrowed. */
struct gw_ha_ctx {
	const char *discovery_prefix; /* "homeassistant" */
	const char *gateway_id;	      /* [gateway] id, e.g. "gw1" */
	const char *topic_prefix;     /* [gateway] topic_prefix, e.g. "fieldmq/gw1" */
	enum gw_payload payload;      /* how readings are written (json | value) */
	const char *version;	      /* the gateway device's sw_version */
	const char *const *protocols; /* names of enum ad_protocol ("modbus", ...): device model */
};

/* The component of @pt (see above). */
enum gw_ha_component gw_ha_component(const struct ad_point *pt);
/* "sensor", "binary_sensor", "number", "switch", "text". */
const char *gw_ha_component_name(enum gw_ha_component c);

/*
 * gw_ha_point_topic - the config topic of @pt into @buf (@n bytes, NUL
 * terminated). Returns its length, or -ENAMETOOLONG (buf holds "").
 */
int gw_ha_point_topic(const struct gw_ha_ctx *ctx, const struct ad_point *pt, char *buf, size_t n);

/*
 * gw_ha_point_config - the config payload of @pt: compact JSON, NUL
 * terminated, owned by the caller (gw_ha_json_free). NULL when out of memory.
 */
char *gw_ha_point_config(const struct gw_ha_ctx *ctx, const struct ad_point *pt);

/*
 * The gateway's own entity: a connectivity binary_sensor on
 * <topic_prefix>/status, whose device is the one every field device names
 * as via_device. Topic <discovery_prefix>/binary_sensor/<id>/_gateway/config
 * ("_gateway" cannot be "<device>_<point>": device names are not empty).
 * Same contracts as the point functions.
 */
int gw_ha_gateway_topic(const struct gw_ha_ctx *ctx, char *buf, size_t n);
char *gw_ha_gateway_config(const struct gw_ha_ctx *ctx);

void gw_ha_json_free(char *json);

#endif
