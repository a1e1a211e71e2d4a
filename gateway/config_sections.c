/*
 * config_sections.c - the main file's other sections: [gateway], [store],
 * [mqttsn] (and [mqttsn.predefined]), [coap], [http] and [homeassistant]:
 * their key tables and the custom parsers of their keys.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "adapters/coap/coap_uv.h"
#include "gateway/config_int.h"

static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };
static const int log_level_vals[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
static const char *const log_targets[] = { "stderr", "syslog", NULL };
static const char *const payloads[] = { "json", "value", NULL };
const char *const gw__publishes[] = { "inherit", "on_change", "every_poll", "on_change_or_period",
				      NULL };
static const char *const notify_types[] = { "non", "con", "qos", NULL };
static const char *const overflows[] = { "drop_oldest", "drop_newest", NULL };
static const char *const synchronous_modes[] = { "normal", "full", NULL };

static int k_id(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_gateway_config *g = base;

	(void)k;
	if (!gw__id_ok(val, false)) {
		gw__cfg_error(p, p->line,
			      "[gateway] id: '%s': expected letters, digits, '_' or '-'", val);
		return -EINVAL;
	}
	g->id = gw__arena_strdup(p->arena, val);
	return 0;
}

static int k_multicast(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_mqttsn_config *m = base;

	(void)k;
	if (*val && !gw__hostport_ok(val, true)) {
		gw__cfg_error(p, p->line,
			      "[mqttsn] multicast: '%s': expected GROUP:PORT, e.g. 225.1.1.1:1883",
			      val);
		return -EINVAL;
	}
	m->multicast = *val ? gw__arena_strdup(p->arena, val) : NULL;
	return 0;
}

static int k_hostport(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	if (!gw__hostport_ok(val, true)) {
		gw__cfg_error(p, p->line, "[%s] %s: '%s': expected HOST:PORT or [IPV6]:PORT",
			      p->section, k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = gw__arena_strdup(p->arena, val);
	return 0;
}

/* [coap] listen: comma-separated HOST:PORT, coap://HOST:PORT or coaps://HOST:PORT. */
static int k_coap_listen(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	char buf[512], *save = NULL, *e;
	unsigned int n = 0;

	snprintf(buf, sizeof(buf), "%s", val);
	for (e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		char *t = gw__trim(e);

		if (!strncmp(t, "coaps://", 8)) {
			t += 8;
			if (!ad_coap_has_dtls()) {
				gw__cfg_error(
					p, p->line,
					"[%s] %s: '%s': this build's libcoap has no DTLS (coaps://)",
					p->section, k->name, val);
				return -ENOTSUP;
			}
		} else if (!strncmp(t, "coap://", 7))
			t += 7;
		if (!*t || !gw__hostport_ok(t, true) || ++n > 4 || strlen(val) >= sizeof(buf)) {
			gw__cfg_error(
				p, p->line,
				"[%s] %s: '%s': expected up to 4 of HOST:PORT, coap://HOST:PORT or coaps://HOST:PORT, comma-separated",
				p->section, k->name, val);
			return -EINVAL;
		}
	}
	*(char **)((char *)base + k->off) = gw__arena_strdup(p->arena, val);
	return 0;
}

/* [http] listen: HOST:PORT, http://HOST:PORT or https://HOST:PORT. */
static int k_http_listen(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	const char *hp = !strncmp(val, "https://", 8)  ? val + 8
			 : !strncmp(val, "http://", 7) ? val + 7
						       : val;

	if (strstr(hp, "://") || strchr(hp, '/') || !gw__hostport_ok(hp, true)) {
		gw__cfg_error(
			p, p->line,
			"[%s] %s: '%s': expected HOST:PORT, http://HOST:PORT or https://HOST:PORT",
			p->section, k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = gw__arena_strdup(p->arena, val);
	return 0;
}

/* [homeassistant] discovery_prefix: a non-empty topic without wildcards or empty levels at its ends. */
static int k_ha_prefix(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	size_t n = strlen(val);

	if (!n || !gw__topic_ok(val) || val[0] == '/' || val[n - 1] == '/') {
		gw__cfg_error(
			p, p->line,
			"[%s] %s: '%s': expected a topic without '+' or '#' and without '/' at its ends",
			p->section, k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = gw__arena_strdup(p->arena, val);
	return 0;
}

#define GK(f) offsetof(struct gw_gateway_config, f)
enum {
	KG_ID,
	KG_TOPIC_PREFIX,
	KG_DATA_DIR,
	KG_DEVICES,
	KG_LOG_LEVEL,
	KG_LOG_TARGET,
	KG_PAYLOAD,
	KG_PUBLISH,
	KG_HEARTBEAT,
	__KG_MAX,
};

static const struct ad_key gateway_keys[__KG_MAX] = {
	[KG_ID] = { .name = "id",
		    .type = K_CUSTOM,
		    .off = GK(id),
		    .fn = k_id,
		    .show = gw__show_str,
		    .flag = F_KEEP,
		    .help = "default: the host name" },
	[KG_TOPIC_PREFIX] = { .name = "topic_prefix",
			      .type = K_CUSTOM,
			      .off = GK(topic_prefix),
			      .fn = gw__k_topic,
			      .show = gw__show_str,
			      .def = "fieldmq/{id}" },
	[KG_DATA_DIR] = { .name = "data_dir",
			  .type = K_PATH,
			  .off = GK(data_dir),
			  .def = "/var/lib/fieldmq" },
	[KG_DEVICES] = { .name = "devices",
			 .type = K_PATH,
			 .off = GK(devices),
			 .def = "devices.d/*.ini",
			 .help = "glob of device-map files, relative to this file" },
	[KG_LOG_LEVEL] = { .name = "log_level",
			   .type = K_ENUM,
			   .off = GK(log_level),
			   .size = 4,
			   .enums = log_levels,
			   .enum_vals = log_level_vals,
			   .def = "info" },
	[KG_LOG_TARGET] = { .name = "log_target",
			    .type = K_ENUM,
			    .off = GK(log_target),
			    .size = 4,
			    .enums = log_targets,
			    .def = "stderr" },
	[KG_PAYLOAD] = { .name = "payload",
			 .type = K_ENUM,
			 .off = GK(payload),
			 .size = 4,
			 .enums = payloads,
			 .def = "json" },
	[KG_PUBLISH] = { .name = "publish",
			 .type = K_ENUM,
			 .off = GK(publish),
			 .size = 4,
			 .enums = gw__publishes + 1,
			 .enum_base = 1,
			 .def = "on_change" },
	[KG_HEARTBEAT] = { .name = "heartbeat",
			   .type = K_DUR,
			   .off = GK(heartbeat_ms),
			   .size = 8,
			   .min = 1,
			   .max = 0,
			   .def = "5m",
			   .help = "period of on_change_or_period" },
};

#define SK(f) offsetof(struct gw_store_config, f)
enum {
	KS_PATH,
	KS_QUEUE_MAX_MESSAGES,
	KS_QUEUE_MAX_BYTES,
	KS_OVERFLOW,
	KS_SYNC_INTERVAL,
	KS_SYNCHRONOUS,
	__KS_MAX,
};

static const struct ad_key store_keys[__KS_MAX] = {
	[KS_PATH] = { .name = "path",
		      .type = K_STR,
		      .off = SK(path),
		      .def = "{data_dir}/fieldmq.db" },
	[KS_QUEUE_MAX_MESSAGES] = { .name = "queue_max_messages",
				    .type = K_INT,
				    .off = SK(queue_max_messages),
				    .size = 8,
				    .min = 1,
				    .max = 1000000000LL,
				    .def = "1000000" },
	[KS_QUEUE_MAX_BYTES] = { .name = "queue_max_bytes",
				 .type = K_SIZE,
				 .off = SK(queue_max_bytes),
				 .size = 8,
				 .min = 1024,
				 .max = 0,
				 .def = "256M" },
	[KS_OVERFLOW] = { .name = "overflow",
			  .type = K_ENUM,
			  .off = SK(overflow),
			  .size = 4,
			  .enums = overflows,
			  .def = "drop_oldest" },
	[KS_SYNC_INTERVAL] = { .name = "sync_interval",
			       .type = K_DUR,
			       .off = SK(sync_interval_ms),
			       .size = 8,
			       .min = 1,
			       .max = 60000,
			       .def = "100ms" },
	[KS_SYNCHRONOUS] = { .name = "synchronous",
			     .type = K_ENUM,
			     .off = SK(synchronous),
			     .size = 4,
			     .enums = synchronous_modes,
			     .def = "normal" },
};

/* allow_from = CIDR, ...: who may send datagrams to the MQTT-SN gateway. */
static int k_allow_from(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_mqttsn_config *mc = base;
	char buf[2048], *save = NULL, *tok;

	(void)k;
	mc->n_allow_from = 0;
	snprintf(buf, sizeof(buf), "%s", val);
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (mc->n_allow_from == GW_MAX_ALLOW_FROM) {
			gw__cfg_error(p, p->line, "[mqttsn] allow_from: more than %d ranges",
				      GW_MAX_ALLOW_FROM);
			return -EINVAL;
		}
		if (gw_cidr_parse(tok, &mc->allow_from[mc->n_allow_from])) {
			gw__cfg_error(
				p, p->line,
				"[mqttsn] allow_from: '%s': expected an address or ADDRESS/BITS "
				"(10.0.0.0/8, fd00::/8) without host bits",
				tok);
			return -EINVAL;
		}
		mc->n_allow_from++;
	}
	return 0;
}

static void show_allow_from(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const struct gw_mqttsn_config *mc = obj;
	size_t pos = 0;
	unsigned int i;

	(void)k;
	buf[0] = '\0';
	for (i = 0; i < mc->n_allow_from && pos + 1 < n; i++) {
		const struct gw_cidr *c = &mc->allow_from[i];
		char a[INET6_ADDRSTRLEN];

		inet_ntop(c->family, c->addr, a, sizeof(a));
		pos += (size_t)snprintf(buf + pos, n - pos, "%s%s/%u", i ? ", " : "", a, c->bits);
	}
}

#define MK(f) offsetof(struct gw_mqttsn_config, f)
enum {
	KM_ENABLED,
	KM_LISTEN,
	KM_GATEWAY_ID,
	KM_ADVERTISE_INTERVAL,
	KM_MULTICAST,
	KM_MAX_CLIENTS,
	KM_RETRY_INTERVAL,
	KM_MOUNTPOINT,
	KM_MAX_QUEUED,
	KM_MAX_RETRIES,
	KM_ALLOW_FROM,
	__KM_MAX,
};

static const struct ad_key mqttsn_keys[__KM_MAX] = {
	[KM_ENABLED] = { .name = "enabled", .type = K_BOOL, .off = MK(enabled), .def = "no" },
	[KM_LISTEN] = { .name = "listen",
			.type = K_CUSTOM,
			.off = MK(listen),
			.fn = k_hostport,
			.show = gw__show_str,
			.flag = F_KEEP,
			.def = "0.0.0.0:1884" },
	[KM_GATEWAY_ID] = { .name = "gateway_id",
			    .type = K_INT,
			    .off = MK(gateway_id),
			    .size = 1,
			    .min = 0,
			    .max = 255,
			    .def = "1" },
	[KM_ADVERTISE_INTERVAL] = { .name = "advertise_interval",
				    .type = K_DUR,
				    .off = MK(advertise_interval_ms),
				    .size = 8,
				    .min = 0,
				    .max = 0,
				    .def = "15m" },
	[KM_MULTICAST] = { .name = "multicast",
			   .type = K_CUSTOM,
			   .off = MK(multicast),
			   .fn = k_multicast,
			   .show = gw__show_str,
			   .help = "e.g. 225.1.1.1:1883; empty = off" },
	[KM_MAX_CLIENTS] = { .name = "max_clients",
			     .type = K_INT,
			     .off = MK(max_clients),
			     .size = 4,
			     .min = 1,
			     .max = 1000000,
			     .def = "1000" },
	[KM_RETRY_INTERVAL] = { .name = "retry_interval",
				.type = K_DUR,
				.off = MK(retry_interval_ms),
				.size = 8,
				.min = 100,
				.max = 0,
				.def = "10s" },
	[KM_MOUNTPOINT] = { .name = "mountpoint",
			    .type = K_CUSTOM,
			    .off = MK(mountpoint),
			    .fn = gw__k_topic,
			    .show = gw__show_str },
	[KM_MAX_QUEUED] = { .name = "max_queued",
			    .type = K_INT,
			    .off = MK(max_queued),
			    .size = 4,
			    .min = 1,
			    .max = 100000,
			    .def = "100" },
	[KM_MAX_RETRIES] = { .name = "max_retries",
			     .type = K_INT,
			     .off = MK(max_retries),
			     .size = 4,
			     .min = 1,
			     .max = 100,
			     .def = "5" },
	[KM_ALLOW_FROM] = { .name = "allow_from",
			    .type = K_CUSTOM,
			    .off = 0,
			    .fn = k_allow_from,
			    .show = show_allow_from,
			    .help = "CIDRs allowed to send; required when listen is not loopback" },
};

#define CK(f) offsetof(struct gw_coap_config, f)
enum {
	KC_ENABLED,
	KC_LISTEN,
	KC_PSK_IDENTITY,
	KC_PSK_KEY,
	KC_CONNECTION_REQUIRED,
	KC_NOTIFY_TYPE,
	KC_MOUNTPOINT,
	KC_MAX_CLIENTS,
	KC_MAX_OBSERVATIONS,
	KC_MAX_QUEUED,
	KC_MAX_PAYLOAD,
	KC_HEARTBEAT,
	KC_RATE_LIMIT,
	__KC_MAX,
};

static const struct ad_key coap_keys[__KC_MAX] = {
	[KC_ENABLED] = { .name = "enabled", .type = K_BOOL, .off = CK(enabled), .def = "no" },
	[KC_LISTEN] = { .name = "listen",
			.type = K_CUSTOM,
			.off = CK(listen),
			.fn = k_coap_listen,
			.show = gw__show_str,
			.flag = F_KEEP,
			.def = "127.0.0.1:5683" },
	[KC_PSK_IDENTITY] = { .name = "psk_identity", .type = K_STR, .off = CK(psk_identity) },
	[KC_PSK_KEY] = { .name = "psk_key",
			 .type = K_STR,
			 .off = CK(psk_key),
			 .flag = AD_KF_SECRET },
	[KC_CONNECTION_REQUIRED] = { .name = "connection_required",
				     .type = K_BOOL,
				     .off = CK(connection_required),
				     .def = "no" },
	[KC_NOTIFY_TYPE] = { .name = "notify_type",
			     .type = K_ENUM,
			     .off = CK(notify_type),
			     .size = 4,
			     .enums = notify_types,
			     .def = "qos" },
	[KC_MOUNTPOINT] = { .name = "mountpoint",
			    .type = K_CUSTOM,
			    .off = CK(mountpoint),
			    .fn = gw__k_topic,
			    .show = gw__show_str },
	[KC_MAX_CLIENTS] = { .name = "max_clients",
			     .type = K_INT,
			     .off = CK(max_clients),
			     .size = 4,
			     .min = 1,
			     .max = 1000000,
			     .def = "1000" },
	[KC_MAX_OBSERVATIONS] = { .name = "max_observations",
				  .type = K_INT,
				  .off = CK(max_observations),
				  .size = 4,
				  .min = 0,
				  .max = 10000000,
				  .def = "10000",
				  .help = "all clients together" },
	[KC_MAX_QUEUED] = { .name = "max_queued",
			    .type = K_INT,
			    .off = CK(max_queued),
			    .size = 4,
			    .min = 1,
			    .max = 100000,
			    .def = "100",
			    .help = "CON notifications per client per second" },
	[KC_MAX_PAYLOAD] = { .name = "max_payload",
			     .type = K_SIZE,
			     .off = CK(max_payload),
			     .size = 8,
			     .min = 0,
			     .max = 268435455,
			     .def = "64K" },
	[KC_HEARTBEAT] = { .name = "heartbeat",
			   .type = K_DUR,
			   .off = CK(heartbeat_ms),
			   .size = 8,
			   .min = 0,
			   .max = 0,
			   .def = "30s" },
	[KC_RATE_LIMIT] = { .name = "rate_limit",
			    .type = K_INT,
			    .off = CK(rate_limit),
			    .size = 4,
			    .min = 0,
			    .max = 1000000,
			    .def = "1000",
			    .help = "requests/s from one address, 0 = unlimited" },
};

#define AK(f) offsetof(struct gw_ha_config, f)
enum {
	KA_ENABLED,
	KA_DISCOVERY_PREFIX,
	__KA_MAX,
};

static const struct ad_key ha_keys[__KA_MAX] = {
	[KA_ENABLED] = { .name = "enabled", .type = K_BOOL, .off = AK(enabled), .def = "no" },
	[KA_DISCOVERY_PREFIX] = { .name = "discovery_prefix",
				  .type = K_CUSTOM,
				  .off = AK(discovery_prefix),
				  .fn = k_ha_prefix,
				  .show = gw__show_str,
				  .def = "homeassistant",
				  .help = "Home Assistant's discovery_prefix" },
};

#define HK(f) offsetof(struct gw_http_config, f)
enum {
	KH_ENABLED,
	KH_LISTEN,
	KH_PASSWORD_FILE,
	__KH_MAX,
};

static const struct ad_key http_keys[__KH_MAX] = {
	[KH_ENABLED] = { .name = "enabled", .type = K_BOOL, .off = HK(enabled), .def = "no" },
	[KH_LISTEN] = { .name = "listen",
			.type = K_CUSTOM,
			.off = HK(listen),
			.fn = k_http_listen,
			.show = gw__show_str,
			.flag = F_KEEP,
			.def = "127.0.0.1:8080",
			.help = "https:// uses [broker] cert_file and key_file" },
	[KH_PASSWORD_FILE] = { .name = "password_file",
			       .type = K_PATH,
			       .off = HK(password_file),
			       .help = "Basic authentication, Mosquitto's format" },
};

const struct ad_keys gw__gateway_keys = { gateway_keys, __KG_MAX, 0 };
const struct ad_keys gw__store_keys = { store_keys, __KS_MAX, 0 };
const struct ad_keys gw__mqttsn_keys = { mqttsn_keys, __KM_MAX, 0 };
const struct ad_keys gw__coap_keys = { coap_keys, __KC_MAX, 0 };
const struct ad_keys gw__http_keys = { http_keys, __KH_MAX, 0 };
const struct ad_keys gw__ha_keys = { ha_keys, __KA_MAX, 0 };

/* [mqttsn.predefined]: "ID = topic" lines. Always 1 (inih's "go on"); errors are said. */
int gw__mqttsn_predefined(struct parse *p, const char *name, const char *val)
{
	struct gw_mqttsn_config *m = &p->cfg->mqttsn;
	long long id;
	unsigned int i;

	if (gw_parse_int(name, 1, 65534, &id)) {
		gw__cfg_error(
			p, p->line,
			"[mqttsn.predefined] %s: expected a topic id from 1 to 65534 as the key",
			name);
		return 1;
	}
	if (!gw__topic_ok(val)) {
		gw__cfg_error(
			p, p->line,
			"[mqttsn.predefined] %s: '%s': expected a topic name without '+' or '#'",
			name, val);
		return 1;
	}
	for (i = 0; i < m->n_predefined; i++) {
		if (m->predefined[i].id == id) {
			gw__cfg_error(p, p->line, "[mqttsn.predefined] %s: duplicate topic id",
				      name);
			return 1;
		}
	}
	if (m->n_predefined == GW_MAX_PREDEFINED) {
		gw__cfg_error(p, p->line, "[mqttsn.predefined]: at most %d predefined topics",
			      GW_MAX_PREDEFINED);
		return 1;
	}
	m->predefined[m->n_predefined].id = (uint16_t)id;
	m->predefined[m->n_predefined].topic = gw__arena_strdup(p->arena, val);
	m->n_predefined++;
	return 1;
}
