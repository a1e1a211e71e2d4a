/*
 * ha.c - Home Assistant MQTT discovery configs (see ha.h). Pure: cJSON
 * allocates the JSON, nothing else is touched.
 *
 * What HA requires of each component (its MQTT integration pages,
 * home-assistant.io/integrations/<component>.mqtt/): sensor and
 * binary_sensor a state_topic; number, switch and text a command_topic;
 * the device registry needs unique_id and a device block with identifiers.
 * Everything else here is optional in HA and set because its default does
 * not fit a field point: number's min/max/step default to 1/100/1, and
 * switch/binary_sensor compare the state with "ON"/"OFF".
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "gateway/ha.h"
#include "gateway/reading.h"

#define TOPIC_MAX 1024
#define ID_MAX 512

static const char *const component_names[__GW_HA_MAX] = {
	[GW_HA_SENSOR] = "sensor", [GW_HA_BINARY_SENSOR] = "binary_sensor",
	[GW_HA_NUMBER] = "number", [GW_HA_SWITCH] = "switch",
	[GW_HA_TEXT] = "text",
};

enum gw_ha_component gw_ha_component(const struct ad_point *pt)
{
	bool is_bool = pt->type == AD_PT_BOOL || pt->type == AD_PT_BIT;

	if (!pt->writable)
		return is_bool ? GW_HA_BINARY_SENSOR : GW_HA_SENSOR;
	if (is_bool)
		return GW_HA_SWITCH;
	return pt->type == AD_PT_STRING ? GW_HA_TEXT : GW_HA_NUMBER;
}

const char *gw_ha_component_name(enum gw_ha_component c)
{
	return (unsigned int)c < __GW_HA_MAX ? component_names[c] : "?";
}

/*
 * Appends @s to @buf at *pos with every character outside HA's object-id
 * alphabet ([A-Za-z0-9_-]) replaced by '_'. Sets *pos past @n on overflow.
 */
static void put_id(char *buf, size_t n, size_t *pos, const char *s)
{
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			c = '_';
		if (*pos + 1 >= n) {
			*pos = n;
			return;
		}
		buf[(*pos)++] = c;
		buf[*pos] = '\0';
	}
}

/* "<a>_<b>" (each made an object id) into @buf; false when it does not fit. */
static bool join_id(char *buf, size_t n, const char *a, const char *b)
{
	size_t pos = 0;

	buf[0] = '\0';
	put_id(buf, n, &pos, a);
	if (b) {
		put_id(buf, n, &pos, "_");
		put_id(buf, n, &pos, b);
	}
	return pos < n;
}

static int topic_of(const struct gw_ha_ctx *ctx, const char *component, const char *object_id,
		    char *buf, size_t n)
{
	int len = snprintf(buf, n, "%s/%s/%s/%s/config", ctx->discovery_prefix, component,
			   ctx->gateway_id, object_id);

	if (len < 0 || (size_t)len >= n) {
		if (n)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return len;
}

int gw_ha_point_topic(const struct gw_ha_ctx *ctx, const struct ad_point *pt, char *buf, size_t n)
{
	char oid[ID_MAX];

	if (!join_id(oid, sizeof(oid), pt->device->name, pt->name)) {
		if (n)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return topic_of(ctx, gw_ha_component_name(gw_ha_component(pt)), oid, buf, n);
}

int gw_ha_gateway_topic(const struct gw_ha_ctx *ctx, char *buf, size_t n)
{
	return topic_of(ctx, "binary_sensor", "_gateway", buf, n);
}

/*
 * A builder that remembers its first failure, so that a config is put
 * together key after key and checked once (cJSON returns NULL when out of
 * memory).
 */
struct jb {
	cJSON *root;
	bool failed;
};

static cJSON *jb_check(struct jb *b, cJSON *item)
{
	if (!item)
		b->failed = true;
	return item;
}

static void jb_str(struct jb *b, cJSON *obj, const char *key, const char *val)
{
	if (obj)
		jb_check(b, cJSON_AddStringToObject(obj, key, val));
}

static void jb_num(struct jb *b, cJSON *obj, const char *key, double val)
{
	if (obj)
		jb_check(b, cJSON_AddNumberToObject(obj, key, val));
}

static cJSON *jb_obj(struct jb *b, cJSON *parent, const char *key)
{
	return parent ? jb_check(b, cJSON_AddObjectToObject(parent, key)) : NULL;
}

static cJSON *jb_arr(struct jb *b, cJSON *parent, const char *key)
{
	return parent ? jb_check(b, cJSON_AddArrayToObject(parent, key)) : NULL;
}

static void jb_arr_str(struct jb *b, cJSON *arr, const char *val)
{
	cJSON *s;

	if (!arr)
		return;
	s = jb_check(b, cJSON_CreateString(val));
	if (s && !cJSON_AddItemToArray(arr, s)) {
		cJSON_Delete(s);
		b->failed = true;
	}
}

/* {"topic": @topic} appended to @arr. */
static void jb_availability(struct jb *b, cJSON *arr, const char *topic)
{
	cJSON *o;

	if (!arr)
		return;
	o = jb_check(b, cJSON_CreateObject());
	if (!o)
		return;
	if (!cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		b->failed = true;
		return;
	}
	jb_str(b, o, "topic", topic);
}

static char *jb_finish(struct jb *b)
{
	char *out = NULL;

	if (b->root && !b->failed)
		out = cJSON_PrintUnformatted(b->root);
	cJSON_Delete(b->root);
	return out;
}

/*
 * The raw range of a numeric point type; floats get float32's, a bound HA's
 * number entity takes as a float (a float64 point's wider range is no use in
 * a UI).
 */
static void type_range(enum ad_point_type t, double *lo, double *hi, bool *integer)
{
	*integer = true;
	switch (t) {
	case AD_PT_INT16:
		*lo = -32768.0, *hi = 32767.0;
		break;
	case AD_PT_UINT16:
		*lo = 0.0, *hi = 65535.0;
		break;
	case AD_PT_INT32:
		*lo = -2147483648.0, *hi = 2147483647.0;
		break;
	case AD_PT_UINT32:
		*lo = 0.0, *hi = 4294967295.0;
		break;
	case AD_PT_INT64:
		*lo = -9223372036854775808.0, *hi = 9223372036854775807.0;
		break;
	case AD_PT_UINT64:
		*lo = 0.0, *hi = 18446744073709551615.0;
		break;
	default:
		*integer = false;
		*lo = -FLT_MAX, *hi = FLT_MAX;
		break;
	}
}

/* number: min, max and step of the value users see (raw * scale + offset). */
static void number_keys(struct jb *b, const struct ad_point *pt)
{
	double lo, hi, step, a, z;
	bool integer;

	type_range(pt->type, &lo, &hi, &integer);
	if (integer) {
		a = lo * pt->scale + pt->offset;
		z = hi * pt->scale + pt->offset;
		step = fabs(pt->scale);
	} else {
		a = lo, z = hi;
		step = 0.001;
	}
	if (a > z) {
		double t = a;

		a = z, z = t;
	}
	if (!(step >= 0.001))
		step = 0.001; /* HA's smallest step */
	jb_num(b, b->root, "min", a);
	jb_num(b, b->root, "max", z);
	jb_num(b, b->root, "step", step);
	jb_str(b, b->root, "mode", "box"); /* a slider over a register's range is of no use */
}

char *gw_ha_point_config(const struct gw_ha_ctx *ctx, const struct ad_point *pt)
{
	enum gw_ha_component c = gw_ha_component(pt);
	bool is_bool = c == GW_HA_BINARY_SENSOR || c == GW_HA_SWITCH;
	const char *value = ctx->payload == GW_PAYLOAD_JSON ? "value_json.value" : "value_json";
	char state[TOPIC_MAX], topic[TOPIC_MAX], id[ID_MAX], tmpl[128];
	const char *proto = ctx->protocols ? ctx->protocols[pt->device->protocol] : NULL;
	struct jb b = { 0 };
	cJSON *dev, *avail;

	if (gw_reading_topic(ctx->topic_prefix, pt->device->name, pt->name, state, sizeof(state)) <
	    0)
		return NULL;
	b.root = jb_check(&b, cJSON_CreateObject());
	/* unique_id: fieldmq_<gateway>_<device>_<point>. */
	if (!join_id(id, sizeof(id), "fieldmq", ctx->gateway_id) ||
	    !join_id(id + strlen(id), sizeof(id) - strlen(id), "", pt->device->name) ||
	    !join_id(id + strlen(id), sizeof(id) - strlen(id), "", pt->name))
		b.failed = true;
	jb_str(&b, b.root, "unique_id", id);
	jb_str(&b, b.root, "name", pt->name);
	jb_str(&b, b.root, "state_topic", state);
	if (is_bool)
		snprintf(tmpl, sizeof(tmpl), "{{ 'ON' if %s else 'OFF' }}", value);
	else
		snprintf(tmpl, sizeof(tmpl), "{{ %s }}", value);
	jb_str(&b, b.root, "value_template", tmpl);
	if (pt->unit && *pt->unit && !is_bool)
		jb_str(&b, b.root, "unit_of_measurement", pt->unit);
	if (pt->device_class && *pt->device_class)
		jb_str(&b, b.root, "device_class", pt->device_class);
	if (pt->state_class && *pt->state_class && c == GW_HA_SENSOR)
		jb_str(&b, b.root, "state_class", pt->state_class);
	switch (c) {
	case GW_HA_BINARY_SENSOR:
		jb_str(&b, b.root, "payload_on", "ON");
		jb_str(&b, b.root, "payload_off", "OFF");
		break;
	case GW_HA_SWITCH:
		jb_str(&b, b.root, "state_on", "ON");
		jb_str(&b, b.root, "state_off", "OFF");
		jb_str(&b, b.root, "payload_on", "true");
		jb_str(&b, b.root, "payload_off", "false");
		break;
	case GW_HA_NUMBER:
		number_keys(&b, pt);
		break;
	case GW_HA_TEXT:
		/* A JSON string, so that "42" stays text (gw_parse_command reads bare JSON). */
		jb_str(&b, b.root, "command_template", "{{ value | tojson }}");
		break;
	default:
		break;
	}
	if (pt->writable) {
		if (snprintf(topic, sizeof(topic), "%s/set", state) >= (int)sizeof(topic))
			b.failed = true;
		jb_str(&b, b.root, "command_topic", topic);
	}
	/* Both must be online: the gateway's status and the device's (DESIGN.md section 5). */
	avail = jb_arr(&b, b.root, "availability");
	snprintf(topic, sizeof(topic), "%s/status", ctx->topic_prefix);
	jb_availability(&b, avail, topic);
	if (snprintf(topic, sizeof(topic), "%s/%s/status", ctx->topic_prefix, pt->device->name) >=
	    (int)sizeof(topic))
		b.failed = true;
	jb_availability(&b, avail, topic);
	jb_str(&b, b.root, "availability_mode", "all");
	dev = jb_obj(&b, b.root, "device");
	id[0] = '\0';
	if (!join_id(id, sizeof(id), "fieldmq", ctx->gateway_id))
		b.failed = true;
	{
		char did[ID_MAX];

		if (!join_id(did, sizeof(did), id, pt->device->name))
			b.failed = true;
		jb_arr_str(&b, jb_arr(&b, dev, "identifiers"), did);
	}
	jb_str(&b, dev, "name", pt->device->name);
	jb_str(&b, dev, "via_device", id);
	jb_str(&b, dev, "manufacturer", "fieldmq");
	if (proto) {
		snprintf(tmpl, sizeof(tmpl), "%s device", proto);
		jb_str(&b, dev, "model", tmpl);
	}
	return jb_finish(&b);
}

char *gw_ha_gateway_config(const struct gw_ha_ctx *ctx)
{
	char topic[TOPIC_MAX], id[ID_MAX];
	struct jb b = { 0 };
	cJSON *dev;

	b.root = jb_check(&b, cJSON_CreateObject());
	if (!join_id(id, sizeof(id), "fieldmq", ctx->gateway_id))
		b.failed = true;
	if (snprintf(topic, sizeof(topic), "%s/status", ctx->topic_prefix) >= (int)sizeof(topic))
		b.failed = true;
	{
		char uid[ID_MAX];

		if (!join_id(uid, sizeof(uid), id, "status"))
			b.failed = true;
		jb_str(&b, b.root, "unique_id", uid);
	}
	jb_str(&b, b.root, "name", "status");
	jb_str(&b, b.root, "state_topic", topic);
	jb_str(&b, b.root, "payload_on", "online");
	jb_str(&b, b.root, "payload_off", "offline");
	jb_str(&b, b.root, "device_class", "connectivity");
	dev = jb_obj(&b, b.root, "device");
	jb_arr_str(&b, jb_arr(&b, dev, "identifiers"), id);
	jb_str(&b, dev, "name", ctx->gateway_id);
	jb_str(&b, dev, "manufacturer", "fieldmq");
	jb_str(&b, dev, "model", "fieldmq gateway");
	if (ctx->version)
		jb_str(&b, dev, "sw_version", ctx->version);
	return jb_finish(&b);
}

void gw_ha_json_free(char *json)
{
	cJSON_free(json);
}
