/*
 * test_ha.c - gateway/ha.c: Home Assistant discovery configs of points and
 * of the gateway (topics, components, the JSON fields HA reads), and that
 * running out of memory at any allocation gives NULL without a leak.
 * tests/integration/test_homeassistant.py checks the same configs through
 * the daemon, with jinja2 rendering their templates.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "gateway/ha.h"

static const char *const protocols[] = { "modbus", "coap", "serial" };

static const struct gw_ha_ctx ctx = {
	.discovery_prefix = "homeassistant",
	.gateway_id = "gw1",
	.topic_prefix = "fieldmq/gw1",
	.payload = GW_PAYLOAD_JSON,
	.version = "0.1.0",
	.protocols = protocols,
};

static struct ad_device boiler = { .name = "boiler", .protocol = AD_PROTO_MODBUS };

static struct ad_point point(const char *name, enum ad_point_type t, bool rw)
{
	struct ad_point p = {
		.name = (char *)name,
		.device = &boiler,
		.type = t,
		.scale = 1,
		.unit = "",
		.device_class = "",
		.state_class = "",
		.writable = rw,
	};
	return p;
}

static cJSON *config(const struct gw_ha_ctx *c, const struct ad_point *p)
{
	char *s = gw_ha_point_config(c, p);
	cJSON *j;

	assert_non_null(s);
	j = cJSON_Parse(s);
	if (!j)
		fail_msg("not JSON: %s", s);
	gw_ha_json_free(s);
	return j;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v))
		fail_msg("%s is not a number", key);
	return v->valuedouble;
}

static void test_components(void **state)
{
	static const struct {
		enum ad_point_type t;
		bool rw;
		enum gw_ha_component c;
	} rows[] = {
		{ AD_PT_FLOAT32, false, GW_HA_SENSOR },
		{ AD_PT_STRING, false, GW_HA_SENSOR },
		{ AD_PT_BOOL, false, GW_HA_BINARY_SENSOR },
		{ AD_PT_BIT, false, GW_HA_BINARY_SENSOR },
		{ AD_PT_UINT16, true, GW_HA_NUMBER },
		{ AD_PT_FLOAT64, true, GW_HA_NUMBER },
		{ AD_PT_BOOL, true, GW_HA_SWITCH },
		{ AD_PT_BIT, true, GW_HA_SWITCH },
		{ AD_PT_STRING, true, GW_HA_TEXT },
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ad_point p = point("p", rows[i].t, rows[i].rw);

		assert_int_equal(gw_ha_component(&p), rows[i].c);
	}
	assert_string_equal(gw_ha_component_name(GW_HA_BINARY_SENSOR), "binary_sensor");
	assert_string_equal(gw_ha_component_name(GW_HA_TEXT), "text");
}

static void test_topics(void **state)
{
	struct ad_device dotted = { .name = "hall.2", .protocol = AD_PROTO_SERIAL };
	struct ad_point p = point("temperature", AD_PT_FLOAT32, false);
	char buf[256], small[20];

	(void)state;
	assert_int_equal(gw_ha_point_topic(&ctx, &p, buf, sizeof(buf)),
			 (int)strlen("homeassistant/sensor/gw1/boiler_temperature/config"));
	assert_string_equal(buf, "homeassistant/sensor/gw1/boiler_temperature/config");
	p.writable = true;
	gw_ha_point_topic(&ctx, &p, buf, sizeof(buf));
	assert_string_equal(buf, "homeassistant/number/gw1/boiler_temperature/config");
	/* HA's object ids are [A-Za-z0-9_-]: '.' becomes '_'. */
	p.device = &dotted;
	p.name = "t.x";
	gw_ha_point_topic(&ctx, &p, buf, sizeof(buf));
	assert_string_equal(buf, "homeassistant/number/gw1/hall_2_t_x/config");
	assert_int_equal(gw_ha_point_topic(&ctx, &p, small, sizeof(small)), -ENAMETOOLONG);
	assert_string_equal(small, "");
	gw_ha_gateway_topic(&ctx, buf, sizeof(buf));
	assert_string_equal(buf, "homeassistant/binary_sensor/gw1/_gateway/config");
}

static void test_sensor(void **state)
{
	struct ad_point p = point("temperature", AD_PT_FLOAT32, false);
	const cJSON *dev, *av, *ids;
	cJSON *j;

	(void)state;
	p.unit = "°C";
	p.device_class = "temperature";
	p.state_class = "measurement";
	j = config(&ctx, &p);
	assert_string_equal(str(j, "unique_id"), "fieldmq_gw1_boiler_temperature");
	assert_string_equal(str(j, "name"), "temperature");
	assert_string_equal(str(j, "state_topic"), "fieldmq/gw1/boiler/temperature");
	assert_string_equal(str(j, "value_template"), "{{ value_json.value }}");
	assert_string_equal(str(j, "unit_of_measurement"), "°C");
	assert_string_equal(str(j, "device_class"), "temperature");
	assert_string_equal(str(j, "state_class"), "measurement");
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "command_topic"));
	av = cJSON_GetObjectItemCaseSensitive(j, "availability");
	assert_int_equal(cJSON_GetArraySize(av), 2);
	assert_string_equal(str(cJSON_GetArrayItem(av, 0), "topic"), "fieldmq/gw1/status");
	assert_string_equal(str(cJSON_GetArrayItem(av, 1), "topic"), "fieldmq/gw1/boiler/status");
	assert_string_equal(str(j, "availability_mode"), "all");
	dev = cJSON_GetObjectItemCaseSensitive(j, "device");
	ids = cJSON_GetObjectItemCaseSensitive(dev, "identifiers");
	assert_int_equal(cJSON_GetArraySize(ids), 1);
	assert_string_equal(cJSON_GetArrayItem(ids, 0)->valuestring, "fieldmq_gw1_boiler");
	assert_string_equal(str(dev, "name"), "boiler");
	assert_string_equal(str(dev, "via_device"), "fieldmq_gw1");
	assert_string_equal(str(dev, "model"), "modbus device");
	cJSON_Delete(j);

	/* No unit, class or state class: the keys are left out, not empty. */
	p = point("count", AD_PT_UINT32, false);
	j = config(&ctx, &p);
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "unit_of_measurement"));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "device_class"));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "state_class"));
	cJSON_Delete(j);
}

static void test_binary_and_switch(void **state)
{
	struct ad_point p = point("alarm", AD_PT_BIT, false);
	cJSON *j;

	(void)state;
	p.unit = "x";		       /* no unit on an on/off entity */
	p.state_class = "measurement"; /* sensors only */
	j = config(&ctx, &p);
	assert_string_equal(str(j, "value_template"), "{{ 'ON' if value_json.value else 'OFF' }}");
	assert_string_equal(str(j, "payload_on"), "ON");
	assert_string_equal(str(j, "payload_off"), "OFF");
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "unit_of_measurement"));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "state_class"));
	cJSON_Delete(j);

	p = point("pump", AD_PT_BOOL, true);
	j = config(&ctx, &p);
	assert_string_equal(str(j, "command_topic"), "fieldmq/gw1/boiler/pump/set");
	assert_string_equal(str(j, "state_on"), "ON");
	assert_string_equal(str(j, "state_off"), "OFF");
	/* What fieldmq's command parser reads as a bool. */
	assert_string_equal(str(j, "payload_on"), "true");
	assert_string_equal(str(j, "payload_off"), "false");
	cJSON_Delete(j);
}

static void test_number_and_text(void **state)
{
	struct ad_point p = point("setpoint", AD_PT_INT16, true);
	cJSON *j;

	(void)state;
	p.scale = 0.1;
	p.unit = "°C";
	j = config(&ctx, &p);
	assert_string_equal(str(j, "command_topic"), "fieldmq/gw1/boiler/setpoint/set");
	assert_float_equal(num(j, "min"), -3276.8, 1e-9);
	assert_float_equal(num(j, "max"), 3276.7, 1e-9);
	assert_float_equal(num(j, "step"), 0.1, 1e-12);
	assert_string_equal(str(j, "mode"), "box");
	assert_string_equal(str(j, "unit_of_measurement"), "°C");
	cJSON_Delete(j);

	/* A negative scale swaps the ends; HA's step is at least 0.001. */
	p = point("neg", AD_PT_UINT16, true);
	p.scale = -0.0001;
	p.offset = 10;
	j = config(&ctx, &p);
	assert_float_equal(num(j, "min"), 10 - 6.5535, 1e-9);
	assert_float_equal(num(j, "max"), 10, 1e-9);
	assert_float_equal(num(j, "step"), 0.001, 1e-12);
	cJSON_Delete(j);

	p = point("gain", AD_PT_FLOAT32, true);
	j = config(&ctx, &p);
	assert_true(num(j, "min") < -1e38 && num(j, "max") > 1e38);
	assert_float_equal(num(j, "step"), 0.001, 1e-12);
	cJSON_Delete(j);

	p = point("label", AD_PT_STRING, true);
	j = config(&ctx, &p);
	assert_string_equal(str(j, "command_topic"), "fieldmq/gw1/boiler/label/set");
	assert_string_equal(str(j, "command_template"), "{{ value | tojson }}");
	cJSON_Delete(j);
}

/* [gateway] payload = value: the payload is the bare JSON value. */
static void test_value_payload(void **state)
{
	struct gw_ha_ctx c = ctx;
	struct ad_point p = point("t", AD_PT_FLOAT64, false);
	cJSON *j;

	(void)state;
	c.payload = GW_PAYLOAD_VALUE;
	j = config(&c, &p);
	assert_string_equal(str(j, "value_template"), "{{ value_json }}");
	cJSON_Delete(j);
	p.type = AD_PT_BOOL;
	j = config(&c, &p);
	assert_string_equal(str(j, "value_template"), "{{ 'ON' if value_json else 'OFF' }}");
	cJSON_Delete(j);
}

static void test_gateway(void **state)
{
	const cJSON *dev;
	char *s;
	cJSON *j;

	(void)state;
	s = gw_ha_gateway_config(&ctx);
	assert_non_null(s);
	j = cJSON_Parse(s);
	gw_ha_json_free(s);
	assert_non_null(j);
	assert_string_equal(str(j, "unique_id"), "fieldmq_gw1_status");
	assert_string_equal(str(j, "state_topic"), "fieldmq/gw1/status");
	assert_string_equal(str(j, "payload_on"), "online");
	assert_string_equal(str(j, "payload_off"), "offline");
	assert_string_equal(str(j, "device_class"), "connectivity");
	dev = cJSON_GetObjectItemCaseSensitive(j, "device");
	assert_string_equal(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(dev, "identifiers"), 0)
			->valuestring,
		"fieldmq_gw1");
	assert_string_equal(str(dev, "sw_version"), "0.1.0");
	cJSON_Delete(j);
}

/* cJSON's allocator, failing from the fail_at-th call on. */
static int calls, fail_at;

static void *failing_malloc(size_t n)
{
	if (++calls >= fail_at)
		return NULL;
	return malloc(n);
}

static void test_out_of_memory(void **state)
{
	cJSON_Hooks hooks = { failing_malloc, free };
	struct ad_point p = point("setpoint", AD_PT_INT16, true);
	int ok = 0, failed = 0;

	(void)state;
	cJSON_InitHooks(&hooks);
	for (fail_at = 1; fail_at < 200; fail_at++) {
		char *a, *b;

		calls = 0;
		a = gw_ha_point_config(&ctx, &p);
		calls = 0;
		b = gw_ha_gateway_config(&ctx);
		if (a && b)
			ok++;
		else
			failed++;
		gw_ha_json_free(a);
		gw_ha_json_free(b);
		if (a && b)
			break;
	}
	cJSON_InitHooks(NULL);
	assert_int_equal(ok, 1);  /* eventually enough memory */
	assert_true(failed > 10); /* and every earlier failure returned NULL (ASan: no leak) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_components),	cmocka_unit_test(test_topics),
		cmocka_unit_test(test_sensor),		cmocka_unit_test(test_binary_and_switch),
		cmocka_unit_test(test_number_and_text), cmocka_unit_test(test_value_payload),
		cmocka_unit_test(test_gateway),		cmocka_unit_test(test_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
