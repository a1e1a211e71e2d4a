/*
 * config_broker.c - [broker] and [listener:NAME]: their key tables, the
 * listen URLs, ws_path, the acl_file / password_file loaded at parse time,
 * and the checks once the main file is read (what each listener needs, and
 * the authentication a listener beyond loopback must have).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/auth_files.h"
#include "gateway/config_int.h"
#include "gateway/tls/mbed_lib.h"

/* One listener URL, checked by the broker's own parser. 0 or -EINVAL (said). */
static int listen_url_ok(struct parse *p, const char *what, const char *url)
{
	enum brk_transport kind;
	struct sockaddr_storage ss;

	if (brk_listen_parse(url, &kind, &ss)) {
		gw__cfg_error(
			p, p->line,
			"%s: '%s': expected HOST:PORT, [IPV6]:PORT or an mqtt:// mqtts:// ws:// wss:// URL of one (no path: see ws_path)",
			what, url);
		return -EINVAL;
	}
	return 0;
}

/* [broker] listen: replaces the listeners it made before; [listener:NAME] ones stay. */
static int k_listen(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct brk_config *bc = base;
	char buf[1024], *save = NULL, *tok;
	unsigned int i, n = 0, added = 0;

	(void)k;
	snprintf(buf, sizeof(buf), "%s", val);
	for (i = 0; i < bc->n_listen; i++) {
		if (!bc->listen[i].name)
			continue;
		p->listener_line[n] = p->listener_line[i];
		bc->listen[n++] = bc->listen[i];
	}
	bc->n_listen = n;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = gw__trim(tok);

		if (listen_url_ok(p, "[broker] listen", t))
			return -EINVAL;
		if (bc->n_listen == BRK_MAX_LISTENERS) {
			gw__cfg_error(p, p->line, "[broker] listen: at most %d listeners in all",
				      BRK_MAX_LISTENERS);
			return -EINVAL;
		}
		memset(&bc->listen[bc->n_listen], 0, sizeof(bc->listen[0]));
		bc->listen[bc->n_listen++].url = gw__arena_strdup(p->arena, t);
		added++;
	}
	if (!added) {
		gw__cfg_error(p, p->line, "[broker] listen: expected at least one HOST:PORT");
		return -EINVAL;
	}
	return 0;
}

/* [listener:NAME] url */
static int k_lurl(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct brk_listener_cfg *l = base;

	(void)k;
	if (listen_url_ok(p, "url", val))
		return -EINVAL;
	l->url = gw__arena_strdup(p->arena, val);
	return 0;
}

/* ws_path: an absolute path without a query. */
static int k_ws_path(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	char **dst = (char **)((char *)base + k->off);
	const char *c;

	for (c = val; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f || *c == '?' || *c == '#')
			break;
	if (val[0] != '/' || *c) {
		gw__cfg_error(p, p->line, "ws_path: '%s': expected an absolute path such as /mqtt",
			      val);
		return -EINVAL;
	}
	*dst = gw__arena_strdup(p->arena, val);
	return 0;
}

/*
 * acl_file = PATH, password_file = PATH: read the file (relative to the file
 * that names it) and parse it (gateway/auth_files.c); a bad line is
 * reported with that file's own name and line. Empty: none. The resolved
 * path is kept for SIGHUP.
 */
static int k_auth_file(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct brk_config *bc = base;
	bool acl = !strcmp(k->name, "acl_file");
	char **keep = acl ? &p->cfg->acl_file : &p->cfg->password_file;
	const char *main_file = p->file;
	unsigned int line = 0;
	char *path, msg[256];
	int rc;

	if (acl) {
		brk_acl_free(bc->acl);
		bc->acl = NULL;
	} else {
		brk_passwd_free(bc->passwd);
		bc->passwd = NULL;
	}
	*keep = NULL;
	if (!*val)
		return 0;
	path = gw__cfg_path(p, val);
	if (!path)
		return -ENOMEM;
	rc = acl ? gw_acl_load(path, &bc->acl, &line, msg, sizeof(msg))
		 : gw_passwd_load(path, &bc->passwd, &line, msg, sizeof(msg));
	if (rc && !acl)
		p->passwd_failed = true;
	if (rc == -ENOMEM) {
		p->sys_err = -ENOMEM;
	} else if (rc && line) {
		/* The file's own name and line, as for the device maps. */
		p->file = path;
		gw__cfg_error(p, line, "[broker] %s: %s", k->name, msg);
		p->file = main_file;
	} else if (rc) {
		gw__cfg_error(p, p->line, "[broker] %s: %s", k->name, msg);
	} else {
		*keep = path;
	}
	return rc;
}

static void show_listen(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const struct brk_config *bc = obj;
	size_t pos = 0;
	unsigned int i;

	(void)k;
	buf[0] = '\0';
	for (i = 0; i < bc->n_listen && pos + 1 < n; i++)
		if (!bc->listen[i].name) /* [listener:NAME] ones are printed as sections */
			pos += (size_t)snprintf(buf + pos, n - pos, "%s%s", pos ? ", " : "",
						bc->listen[i].url);
}

#define BK(f) offsetof(struct brk_config, f)
enum {
	KB_LISTEN,
	KB_ALLOW_ANONYMOUS,
	KB_MAX_CONNECTIONS,
	KB_MAX_CONNECTIONS_PER_SOURCE,
	KB_CONNECT_RATE,
	KB_MAX_BUFFERED_BYTES,
	KB_SLOW_CONSUMER_TIMEOUT,
	KB_PROXY_PROTOCOL,
	KB_MAX_PACKET_SIZE,
	KB_MAX_INFLIGHT,
	KB_RECEIVE_MAXIMUM,
	KB_MAX_HELD_ACKS,
	KB_MAX_QUEUED_MESSAGES,
	KB_MAX_QUEUED_BYTES,
	KB_MAX_KEEPALIVE,
	KB_MAX_TOPIC_ALIAS,
	KB_RETAIN_AVAILABLE,
	KB_SYS_INTERVAL,
	KB_PERSIST,
	KB_ACL_FILE,
	KB_PASSWORD_FILE,
	KB_CERT_FILE,
	KB_KEY_FILE,
	KB_CA_FILE,
	KB_REQUIRE_CERTIFICATE,
	KB_USE_IDENTITY_AS_USERNAME,
	KB_WS_PATH,
	__KB_MAX,
};

static const struct ad_key broker_keys[__KB_MAX] = {
	[KB_LISTEN] = { .name = "listen",
			.type = K_CUSTOM,
			.off = 0,
			.fn = k_listen,
			.show = show_listen,
			.flag = F_KEEP,
			.def = "127.0.0.1:1883" },
	[KB_ALLOW_ANONYMOUS] = { .name = "allow_anonymous",
				 .type = K_BOOL,
				 .off = BK(allow_anonymous),
				 .def = "yes",
				 .help = "default yes only while every listener is loopback" },
	[KB_MAX_CONNECTIONS] = { .name = "max_connections",
				 .type = K_INT,
				 .off = BK(max_connections),
				 .size = 4,
				 .min = -1,
				 .max = 1000000,
				 .def = "1024",
				 .help = "per listener, as Mosquitto's; -1: no limit" },
	[KB_MAX_CONNECTIONS_PER_SOURCE] = { .name = "max_connections_per_source",
					    .type = K_INT,
					    .off = BK(max_connections_per_source),
					    .size = 4,
					    .min = 0,
					    .max = 1000000,
					    .def = "0",
					    .help = "0: no limit" },
	[KB_CONNECT_RATE] = { .name = "connect_rate",
			      .type = K_INT,
			      .off = BK(connect_rate),
			      .size = 4,
			      .min = 0,
			      .max = 1000000,
			      .def = "0",
			      .help = "new connections a second per source address; 0: no limit" },
	[KB_MAX_BUFFERED_BYTES] = { .name = "max_buffered_bytes",
				    .type = K_SIZE,
				    .off = BK(max_buffered_bytes),
				    .size = 8,
				    .min = 0,
				    .max = 0,
				    .def = "1M",
				    .help = "output per connection; past it QoS 0 is dropped" },
	[KB_SLOW_CONSUMER_TIMEOUT] = { .name = "slow_consumer_timeout",
				       .type = K_DUR,
				       .off = BK(slow_consumer_timeout_ms),
				       .size = 8,
				       .min = 0,
				       .max = 0,
				       .def = "10s",
				       .help = "past max_buffered_bytes that long: disconnected" },
	[KB_PROXY_PROTOCOL] = { .name = "proxy_protocol",
				.type = K_BOOL,
				.off = BK(proxy_protocol),
				.def = "no",
				.help = "for the listeners of listen" },
	[KB_MAX_PACKET_SIZE] = { .name = "max_packet_size",
				 .type = K_SIZE,
				 .off = BK(max_packet_size),
				 .size = 4,
				 .min = 16,
				 .max = 268435460,
				 .def = "1M" },
	[KB_MAX_INFLIGHT] = { .name = "max_inflight",
			      .type = K_INT,
			      .off = BK(max_inflight),
			      .size = 2,
			      .min = 1,
			      .max = 65535,
			      .def = "32" },
	[KB_RECEIVE_MAXIMUM] = { .name = "receive_maximum",
				 .type = K_INT,
				 .off = BK(receive_maximum),
				 .size = 2,
				 .min = 1,
				 .max = 65535,
				 .def = "65535" },
	[KB_MAX_HELD_ACKS] = { .name = "max_held_acks",
			       .type = K_INT,
			       .off = BK(max_held_acks),
			       .size = 4,
			       .min = 1,
			       .max = 1000000,
			       .def = "1000" },
	[KB_MAX_QUEUED_MESSAGES] = { .name = "max_queued_messages",
				     .type = K_INT,
				     .off = BK(max_queued_messages),
				     .size = 4,
				     .min = 0,
				     .max = 100000000,
				     .def = "1000",
				     .help = "per offline session" },
	[KB_MAX_QUEUED_BYTES] = { .name = "max_queued_bytes",
				  .type = K_SIZE,
				  .off = BK(max_queued_bytes),
				  .size = 8,
				  .min = 0,
				  .max = 0,
				  .def = "16M" },
	[KB_MAX_KEEPALIVE] = { .name = "max_keepalive",
			       .type = K_INT,
			       .off = BK(max_keepalive),
			       .size = 2,
			       .min = 0,
			       .max = 65535,
			       .def = "65535" },
	[KB_MAX_TOPIC_ALIAS] = { .name = "max_topic_alias",
				 .type = K_INT,
				 .off = BK(max_topic_alias),
				 .size = 2,
				 .min = 0,
				 .max = 65535,
				 .def = "64" },
	[KB_RETAIN_AVAILABLE] = { .name = "retain_available",
				  .type = K_BOOL,
				  .off = BK(retain_available),
				  .def = "yes" },
	[KB_SYS_INTERVAL] = { .name = "sys_interval",
			      .type = K_DUR,
			      .off = BK(sys_interval_ms),
			      .size = 8,
			      .min = 0,
			      .max = 0,
			      .def = "10s" },
	[KB_PERSIST] = { .name = "persist", .type = K_BOOL, .off = BK(persist), .def = "yes" },
	[KB_ACL_FILE] = { .name = "acl_file",
			  .type = K_CUSTOM,
			  .off = 0,
			  .fn = k_auth_file,
			  .help = "Mosquitto's acl_file syntax; MQTT and MQTT-SN clients; SIGHUP" },
	[KB_PASSWORD_FILE] = { .name = "password_file",
			       .type = K_CUSTOM,
			       .off = 0,
			       .fn = k_auth_file,
			       .help = "made by mosquitto_passwd ($7$, $6$); SIGHUP" },
	[KB_CERT_FILE] = { .name = "cert_file",
			   .type = K_PATH,
			   .off = BK(tls.cert_file),
			   .help = "for mqtts:// and wss:// listeners" },
	[KB_KEY_FILE] = { .name = "key_file", .type = K_PATH, .off = BK(tls.key_file) },
	[KB_CA_FILE] = { .name = "ca_file",
			 .type = K_PATH,
			 .off = BK(tls.ca_file),
			 .help = "client certificates are verified against it" },
	[KB_REQUIRE_CERTIFICATE] = { .name = "require_certificate",
				     .type = K_BOOL,
				     .off = BK(tls.require_certificate),
				     .def = "no" },
	[KB_USE_IDENTITY_AS_USERNAME] = { .name = "use_identity_as_username",
					  .type = K_BOOL,
					  .off = BK(tls.use_identity_as_username),
					  .def = "no" },
	[KB_WS_PATH] = { .name = "ws_path",
			 .type = K_CUSTOM,
			 .off = BK(ws_path),
			 .fn = k_ws_path,
			 .show = gw__show_str,
			 .flag = F_KEEP,
			 .def = "/mqtt" },
};

/* [listener:NAME]: one more listener with TLS and WebSocket keys of its own. */
enum {
	KL_URL,
	KL_CERT_FILE,
	KL_KEY_FILE,
	KL_CA_FILE,
	KL_REQUIRE_CERTIFICATE,
	KL_USE_IDENTITY_AS_USERNAME,
	KL_WS_PATH,
	KL_MAX_CONNECTIONS,
	KL_PROXY_PROTOCOL,
	__KL_MAX,
};

#define LK(f) offsetof(struct brk_listener_cfg, f)
static const struct ad_key listener_keys[__KL_MAX] = {
	[KL_URL] = { .name = "url",
		     .type = K_CUSTOM,
		     .off = LK(url),
		     .fn = k_lurl,
		     .show = gw__show_str,
		     .flag = F_KEEP },
	[KL_CERT_FILE] = { .name = "cert_file",
			   .type = K_PATH,
			   .off = LK(tls.cert_file),
			   .help = "for mqtts:// and wss:// listeners" },
	[KL_KEY_FILE] = { .name = "key_file", .type = K_PATH, .off = LK(tls.key_file) },
	[KL_CA_FILE] = { .name = "ca_file",
			 .type = K_PATH,
			 .off = LK(tls.ca_file),
			 .help = "client certificates are verified against it" },
	[KL_REQUIRE_CERTIFICATE] = { .name = "require_certificate",
				     .type = K_BOOL,
				     .off = LK(tls.require_certificate),
				     .def = "no" },
	[KL_USE_IDENTITY_AS_USERNAME] = { .name = "use_identity_as_username",
					  .type = K_BOOL,
					  .off = LK(tls.use_identity_as_username),
					  .def = "no" },
	[KL_WS_PATH] = { .name = "ws_path",
			 .type = K_CUSTOM,
			 .off = LK(ws_path),
			 .fn = k_ws_path,
			 .show = gw__show_str,
			 .flag = F_KEEP,
			 .help = "default: /mqtt" },
	[KL_MAX_CONNECTIONS] = { .name = "max_connections",
				 .type = K_INT,
				 .off = LK(max_connections),
				 .size = 4,
				 .min = -1,
				 .max = 1000000,
				 .def = "1024",
				 .help = "-1: no limit" },
	[KL_PROXY_PROTOCOL] = { .name = "proxy_protocol",
				.type = K_BOOL,
				.off = LK(proxy_protocol),
				.def = "no" },
};

const struct ad_keys gw__broker_keys = { broker_keys, __KB_MAX, 0 };
const struct ad_keys gw__listener_keys = { listener_keys, __KL_MAX, 0 };

/*
 * gw__listener_section - a [listener:NAME] header (@colon: its ':'): a new
 * listener in [broker]'s list, whose keys on_key() then sets. Errors are said.
 */
void gw__listener_section(struct parse *p, const char *name, const char *colon)
{
	struct brk_config *bc = &p->cfg->broker;
	struct brk_listener_cfg *l;

	if (!gw__id_ok(colon + 1, true)) {
		gw__cfg_error(p, p->line,
			      "[%s]: listener name: expected letters, digits, '_', '-' or '.'",
			      name);
		return;
	}
	if (bc->n_listen == BRK_MAX_LISTENERS) {
		gw__cfg_error(p, p->line, "[%s]: at most %d listeners in all", name,
			      BRK_MAX_LISTENERS);
		return;
	}
	p->listener_line[bc->n_listen] = p->line;
	l = &bc->listen[bc->n_listen++];
	memset(l, 0, sizeof(*l));
	l->name = gw__arena_strdup(p->arena, colon + 1);
	p->obj = l;
	p->kind = S_LISTENER;
	p->seen_global[S_LISTENER] = 0;
	p->sect_line[S_LISTENER] = p->line;
}

/*
 * mbedTLS is loaded when the configuration needs it (gateway/tls/mbed_lib.h):
 * loading it here, while the configuration is checked, makes a library that
 * is missing or of another version an error of --check-config and of the
 * start (with the line of what needs it), not a failure later on.
 */
void gw__need_mbed(struct parse *p, unsigned int line, const char *what, int part)
{
	if (gw_mbed_load(part))
		gw__cfg_error(p, line, "%s needs mbed TLS, which cannot be loaded: %s", what,
			      gw_mbed_error());
}

/*
 * The [broker] listen entries take [broker]'s TLS and WebSocket keys; then
 * every listener must have what its kind needs. Errors point at [broker] or
 * at the [listener:NAME] line.
 */
void gw__listeners_finish(struct parse *p, struct brk_config *bc)
{
	unsigned int i;

	for (i = 0; i < bc->n_listen; i++) {
		struct brk_listener_cfg *l = &bc->listen[i];
		const struct brk_tls_cfg *t = &l->tls;
		struct sockaddr_storage ss;
		enum brk_transport kind;
		unsigned int line = p->sect_line[S_BROKER];
		char what[96];

		if (!l->name) {
			l->tls = bc->tls;
			l->ws_path = bc->ws_path;
			l->max_connections = bc->max_connections;
			l->proxy_protocol = bc->proxy_protocol;
			snprintf(what, sizeof(what), "[broker] listen %s", l->url);
		} else {
			line = p->listener_line[i];
			snprintf(what, sizeof(what), "[listener:%s]", l->name);
		}
		if (!l->url) {
			gw__cfg_error(p, line, "%s url: required", what);
			continue;
		}
		if (brk_listen_parse(l->url, &kind, &ss))
			continue; /* said where it was set */
		if ((kind == BRK_TR_MQTTS || kind == BRK_TR_WSS) &&
		    (!t->cert_file || !*t->cert_file || !t->key_file || !*t->key_file))
			gw__cfg_error(p, line, "%s: a TLS listener needs cert_file and key_file",
				      what);
		if (kind != BRK_TR_MQTT)
			gw__need_mbed(p, line, what,
				      kind == BRK_TR_WS ? GW_MBED_CRYPTO : GW_MBED_TLS);
		if (t->require_certificate && (!t->ca_file || !*t->ca_file))
			gw__cfg_error(p, line, "%s: require_certificate = yes needs ca_file", what);
		if (t->use_identity_as_username && !t->require_certificate)
			gw__cfg_error(
				p, line,
				"%s: use_identity_as_username = yes needs require_certificate = yes",
				what);
	}
}

/*
 * Authentication the listeners need (issue 14, as Mosquitto 2): with
 * allow_anonymous unset, anonymous clients are let in only while every
 * listener is loopback, and a listener reachable from elsewhere must have
 * password_file or client certificates, or allow_anonymous must say yes.
 * An MQTT-SN gateway listening beyond loopback must say who may send.
 */
void gw__auth_finish(struct parse *p, struct gw_config *cfg)
{
	struct brk_config *bc = &cfg->broker;
	bool given = p->seen_global[S_BROKER] & (1ULL << KB_ALLOW_ANONYMOUS);
	bool all_loopback = true;
	struct sockaddr_storage ss;
	enum brk_transport kind;
	unsigned int i;

	for (i = 0; i < bc->n_listen; i++) {
		const struct brk_listener_cfg *l = &bc->listen[i];

		if (!l->url || brk_listen_parse(l->url, &kind, &ss) ||
		    gw_sockaddr_loopback((const struct sockaddr *)&ss))
			continue;
		all_loopback = false;
		/* A password_file that failed to load was reported already. */
		if (given || bc->passwd || p->passwd_failed || l->tls.require_certificate)
			continue;
		gw__cfg_error(p, l->name ? p->listener_line[i] : p->sect_line[S_BROKER],
			      "[broker] %s: listens beyond loopback without authentication: set "
			      "password_file (or require_certificate = yes on this listener), or "
			      "allow_anonymous = yes to let anyone in",
			      l->url);
	}
	if (!given)
		bc->allow_anonymous = all_loopback;
	if (cfg->mqttsn.enabled && cfg->mqttsn.listen && !cfg->mqttsn.n_allow_from &&
	    !brk_listen_parse(cfg->mqttsn.listen, &kind, &ss) &&
	    !gw_sockaddr_loopback((const struct sockaddr *)&ss))
		gw__cfg_error(
			p, p->sect_line[S_MQTTSN],
			"[mqttsn] listen = %s is not loopback: allow_from = CIDR, ... is required "
			"(the networks whose devices may send)",
			cfg->mqttsn.listen);
}
