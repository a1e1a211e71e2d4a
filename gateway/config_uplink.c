/*
 * config_uplink.c - [uplink]: the cloud broker's url, the forward and
 * subscribe filter lists ("FILTER [QOS], ...") and the key table.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/config_int.h"

static const char *const upqueues[] = { "always", "offline", "off", NULL };
static const char *const protocols_up[] = { "3.1.1", "5", NULL };
static const int protocols_up_vals[] = { 4, 5 };

/* A topic filter: '#' only as a whole last level, '+' only as a whole level. */
static bool filter_ok(const char *s)
{
	const char *lvl = s;

	if (!*s)
		return false;
	for (;;) {
		const char *end = strchr(lvl, '/');
		size_t n = end ? (size_t)(end - lvl) : strlen(lvl);

		if (memchr(lvl, '#', n) && (n != 1 || end))
			return false;
		if (memchr(lvl, '+', n) && n != 1)
			return false;
		if (!end)
			return true;
		lvl = end + 1;
	}
}

static int parse_filters(struct parse *p, const char *key, const char *val, struct gw_filter *out,
			 unsigned int *n, uint8_t def_qos)
{
	char buf[2048], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", val);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = gw__trim(tok), *sp = strpbrk(t, " \t");
		long long qos = def_qos;

		if (!*t)
			continue;
		if (sp) {
			*sp = '\0';
			if (gw_parse_int(gw__trim(sp + 1), 0, 2, &qos)) {
				gw__cfg_error(
					p, p->line,
					"[%s] %s: '%s': expected FILTER [QOS] with QOS 0, 1 or 2",
					p->section, key, gw__trim(sp + 1));
				return -EINVAL;
			}
		}
		if (!filter_ok(t)) {
			gw__cfg_error(p, p->line, "[%s] %s: '%s' is not a valid MQTT topic filter",
				      p->section, key, t);
			return -EINVAL;
		}
		if (*n == GW_MAX_FILTERS) {
			gw__cfg_error(p, p->line, "[%s] %s: at most %d filters", p->section, key,
				      GW_MAX_FILTERS);
			return -EINVAL;
		}
		out[*n].filter = gw__arena_strdup(p->arena, t);
		out[*n].qos = (uint8_t)qos;
		(*n)++;
	}
	return 0;
}

static int k_forward(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_uplink_config *u = base;

	return parse_filters(p, k->name, val, u->forward, &u->n_forward, 1);
}

static int k_subscribe(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_uplink_config *u = base;

	return parse_filters(p, k->name, val, u->subscribe, &u->n_subscribe, 1);
}

static int k_url(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_uplink_config *u = base;
	const char *rest, *colon;
	long long port;

	(void)k;
	if (!strncmp(val, "mqtt://", 7)) {
		u->tls = false;
		rest = val + 7;
		port = 1883;
	} else if (!strncmp(val, "mqtts://", 8)) {
		u->tls = true;
		rest = val + 8;
		port = 8883;
	} else {
		gw__cfg_error(
			p, p->line,
			"[uplink] url: '%s': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
			val);
		return -EINVAL;
	}
	if (!*rest || strchr(rest, '/') || !gw__hostport_ok(rest, false)) {
		gw__cfg_error(
			p, p->line,
			"[uplink] url: '%s': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
			val);
		return -EINVAL;
	}
	if (*rest == '[') {
		const char *rb = strchr(rest, ']');

		u->host = gw__arena_strndup(p->arena, rest + 1, (size_t)(rb - rest - 1));
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strrchr(rest, ':');
		u->host = gw__arena_strndup(p->arena, rest,
					    colon ? (size_t)(colon - rest) : strlen(rest));
	}
	if (colon)
		gw_parse_int(colon + 1, 1, 65535, &port);
	u->port = (uint16_t)port;
	u->url = gw__arena_strdup(p->arena, val);
	return 0;
}

static void show_filters(const struct gw_filter *f, unsigned int nf, char *buf, size_t n)
{
	size_t pos = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < nf && pos + 1 < n; i++)
		pos += (size_t)snprintf(buf + pos, n - pos, "%s%s %u", i ? ", " : "", f[i].filter,
					f[i].qos);
}

static void show_forward(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const struct gw_uplink_config *u = obj;

	(void)k;
	show_filters(u->forward, u->n_forward, buf, n);
}

static void show_subscribe(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const struct gw_uplink_config *u = obj;

	(void)k;
	show_filters(u->subscribe, u->n_subscribe, buf, n);
}

#define UK(f) offsetof(struct gw_uplink_config, f)
enum {
	KU_ENABLED,
	KU_URL,
	KU_CLIENT_ID,
	KU_USERNAME,
	KU_PASSWORD,
	KU_CA_FILE,
	KU_CERT_FILE,
	KU_KEY_FILE,
	KU_TLS_INSECURE,
	KU_PROTOCOL,
	KU_KEEPALIVE,
	KU_SESSION_EXPIRY,
	KU_FORWARD,
	KU_REMOTE_PREFIX,
	KU_SUBSCRIBE,
	KU_LOCAL_PREFIX,
	KU_QUEUE,
	KU_QUEUE_QOS0,
	KU_MAX_INFLIGHT,
	KU_DRAIN_RATE,
	KU_RECONNECT_MIN,
	KU_RECONNECT_MAX,
	__KU_MAX,
};

static const struct ad_key uplink_keys[__KU_MAX] = {
	[KU_ENABLED] = { .name = "enabled", .type = K_BOOL, .off = UK(enabled), .def = "no" },
	[KU_URL] = { .name = "url",
		     .type = K_CUSTOM,
		     .off = UK(url),
		     .fn = k_url,
		     .show = gw__show_str,
		     .flag = F_KEEP },
	[KU_CLIENT_ID] = { .name = "client_id",
			   .type = K_STR,
			   .off = UK(client_id),
			   .def = "{id}" },
	[KU_USERNAME] = { .name = "username", .type = K_STR, .off = UK(username) },
	[KU_PASSWORD] = { .name = "password",
			  .type = K_STR,
			  .off = UK(password),
			  .flag = AD_KF_SECRET },
	[KU_CA_FILE] = { .name = "ca_file", .type = K_PATH, .off = UK(ca_file) },
	[KU_CERT_FILE] = { .name = "cert_file", .type = K_PATH, .off = UK(cert_file) },
	[KU_KEY_FILE] = { .name = "key_file", .type = K_PATH, .off = UK(key_file) },
	[KU_TLS_INSECURE] = { .name = "tls_insecure",
			      .type = K_BOOL,
			      .off = UK(tls_insecure),
			      .def = "no" },
	[KU_PROTOCOL] = { .name = "protocol",
			  .type = K_ENUM,
			  .off = UK(protocol),
			  .size = 1,
			  .enums = protocols_up,
			  .enum_vals = protocols_up_vals,
			  .def = "5" },
	[KU_KEEPALIVE] = { .name = "keepalive",
			   .type = K_DUR,
			   .off = UK(keepalive_ms),
			   .size = 8,
			   .min = 0,
			   .max = 65535000,
			   .def = "60s" },
	[KU_SESSION_EXPIRY] = { .name = "session_expiry",
				.type = K_DUR,
				.off = UK(session_expiry_ms),
				.size = 8,
				.min = 0,
				.max = 4294967295000LL,
				.def = "1d" },
	[KU_FORWARD] = { .name = "forward",
			 .type = K_CUSTOM,
			 .off = 0,
			 .fn = k_forward,
			 .show = show_forward,
			 .def = "fieldmq/# 1",
			 .help = "local FILTER [QOS], comma-separated" },
	[KU_REMOTE_PREFIX] = { .name = "remote_prefix",
			       .type = K_CUSTOM,
			       .off = UK(remote_prefix),
			       .fn = gw__k_topic,
			       .show = gw__show_str },
	[KU_SUBSCRIBE] = { .name = "subscribe",
			   .type = K_CUSTOM,
			   .off = 0,
			   .fn = k_subscribe,
			   .show = show_subscribe,
			   .help = "cloud FILTER [QOS], comma-separated" },
	[KU_LOCAL_PREFIX] = { .name = "local_prefix",
			      .type = K_CUSTOM,
			      .off = UK(local_prefix),
			      .fn = gw__k_topic,
			      .show = gw__show_str },
	[KU_QUEUE] = { .name = "queue",
		       .type = K_ENUM,
		       .off = UK(queue),
		       .size = 4,
		       .enums = upqueues,
		       .def = "always" },
	[KU_QUEUE_QOS0] = { .name = "queue_qos0",
			    .type = K_BOOL,
			    .off = UK(queue_qos0),
			    .def = "yes" },
	[KU_MAX_INFLIGHT] = { .name = "max_inflight",
			      .type = K_INT,
			      .off = UK(max_inflight),
			      .size = 2,
			      .min = 1,
			      .max = 65535,
			      .def = "32" },
	[KU_DRAIN_RATE] = { .name = "drain_rate",
			    .type = K_INT,
			    .off = UK(drain_rate),
			    .size = 4,
			    .min = 0,
			    .max = 10000000,
			    .def = "0",
			    .help = "msgs/s while draining, 0 = unlimited" },
	[KU_RECONNECT_MIN] = { .name = "reconnect_min",
			       .type = K_DUR,
			       .off = UK(reconnect_min_ms),
			       .size = 8,
			       .min = 10,
			       .max = 0,
			       .def = "1s" },
	[KU_RECONNECT_MAX] = { .name = "reconnect_max",
			       .type = K_DUR,
			       .off = UK(reconnect_max_ms),
			       .size = 8,
			       .min = 10,
			       .max = 0,
			       .def = "2m" },
};

const struct ad_keys gw__uplink_keys = { uplink_keys, __KU_MAX, 0 };
