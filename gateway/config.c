/*
 * config.c - loads fieldmq.ini and the device maps with inih.
 *
 * inih does the INI syntax; this file does everything else: one table of keys
 * per section (type, range, where the value goes), defaults, {id} and
 * {data_dir} templates, paths relative to the naming file, cross references
 * between buses, devices and points, and errors that say file:line.
 *
 * Line numbers: inih reports none to the handler in Debian's build, so the
 * reader function handed to ini_parse_stream counts the lines it returns.
 * The same reader notices section headers, so an empty or unknown section is
 * reported even when no key follows it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <inttypes.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "adapters/coap/coap_uv.h"
#include "gateway/auth_files.h"
#include "gateway/config.h"

/* ------------------------------------------------------------------ arena */

struct gw_arena_chunk {
	struct gw_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

static void *arena_alloc(struct gw_arena_chunk **a, size_t n)
{
	struct gw_arena_chunk *c = *a;
	size_t al = sizeof(max_align_t);
	void *p;

	n = (n + al - 1) / al * al;
	if (!c || c->cap - c->used < n) {
		size_t cap = GW_MAX(n, (size_t)4096);

		c = gw_malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = *a;
		c->used = 0;
		c->cap = cap;
		*a = c;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static char *arena_strndup(struct gw_arena_chunk **a, const char *s, size_t n)
{
	char *d = arena_alloc(a, n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static char *arena_strdup(struct gw_arena_chunk **a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

static void arena_free(struct gw_arena_chunk *c)
{
	while (c) {
		struct gw_arena_chunk *n = c->next;

		gw_free(c);
		c = n;
	}
}

/* Appends @p to a growable pointer array kept in the arena. */
static int arena_push(struct gw_arena_chunk **a, void ***arr, unsigned int *n, void *p)
{
	if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power of two */
		unsigned int cap = *n ? *n * 2 : 1;
		void **na = arena_alloc(a, cap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		if (*n)
			memcpy(na, *arr, *n * sizeof(*na));
		*arr = na;
	}
	(*arr)[(*n)++] = p;
	return 0;
}

/* ------------------------------------------------------------ parse state */

enum sect {
	S_NONE,
	S_GATEWAY,
	S_BROKER,
	S_STORE,
	S_UPLINK,
	S_MQTTSN,
	S_PREDEFINED,
	S_COAP,
	S_HTTP,
	S_HOMEASSISTANT,
	S_BUS,
	S_DEVICE,
	S_POINT,
	S_LISTENER,
	S_BAD, /* unknown or malformed: its keys are skipped (one error said it) */
	__S_MAX,
};

/*
 * A [bus:], [device:] or [point:] section as read: its keys wait until every
 * file is read, because which adapter owns them follows from the device's
 * protocol (a point's device may come later, or from another file).
 */
struct entry {
	struct entry *next;
	const char *key, *val;
	unsigned int line;
	bool used; /* a table took it */
};

struct sect_tmp {
	char *section; /* "device:boiler" */
	const char *file, *dir;
	unsigned int line;
	struct entry *first, **tail;
};

struct bus_tmp {
	struct sect_tmp s;
	struct ad_bus *b;
	uint64_t seen; /* common keys */
	bool ok;       /* keys applied and checked: in the map */
};

/* A device: the bus is resolved by name once every file is read. */
struct dev_tmp {
	struct sect_tmp s;
	struct ad_device *d;
	char *bus_name;
	unsigned int bus_line;
	void *inline_bus; /* the adapter's bus struct, when inline bus keys were given */
	uint64_t seen, ext_seen, bus_seen;
	bool ok;
};

struct pt_tmp {
	struct sect_tmp s;
	struct ad_point *p;
	char *dev_name;
};

struct parse {
	struct ad_parse ap;		 /* what adapters' hooks and custom parsers see */
	const struct ad_driver *drivers; /* indexed by enum ad_protocol */
	struct gw_config *cfg;		 /* NULL when loading only a device map */
	struct gw_devmap *dm;
	struct gw_arena_chunk **arena; /* where the current file's objects go */
	struct gw_arena_chunk *tmp;    /* sections as read; freed after the load */
	bool main_file;
	const char *file;
	char *dir;
	unsigned int line;
	enum sect kind;
	char section[256];
	void *obj;		 /* struct dev_tmp / pt_tmp / bus_tmp, or the config section */
	struct dev_tmp *cur_dev; /* the device whose common keys are being applied */
	uint64_t seen_global[__S_MAX];
	unsigned int sect_line[__S_MAX];
	unsigned int listener_line[BRK_MAX_LISTENERS]; /* of [listener:NAME], by index */
	FILE *f;
	const struct gw_config_file *mem; /* gw_config_load_mem: the files; NULL: the disk */
	size_t n_mem;
	/* every dev_tmp / pt_tmp / bus_tmp across files, in file order */
	struct dev_tmp **devs;
	unsigned int n_devs;
	struct pt_tmp **pts;
	unsigned int n_pts;
	struct bus_tmp **buses;
	unsigned int n_buses;
	char *err;
	size_t errlen, errpos;
	unsigned int n_errors;
	int sys_err;
	bool passwd_failed; /* password_file named and not loaded (already reported) */
};

/* The parse state behind the struct ad_parse a hook or custom parser gets. */
#define P(ap) container_of(ap, struct parse, ap)

static void __attribute__((format(printf, 3, 0)))
verrorf(struct parse *p, unsigned int line, const char *fmt, va_list va)
{
	int n;

	p->n_errors++;
	if (!p->err || p->errpos + 1 >= p->errlen)
		return;
	n = snprintf(p->err + p->errpos, p->errlen - p->errpos, "%s:%u: ", p->file, line);
	if (n > 0)
		p->errpos = GW_MIN(p->errpos + (size_t)n, p->errlen - 1);
	n = vsnprintf(p->err + p->errpos, p->errlen - p->errpos, fmt, va);
	if (n > 0)
		p->errpos = GW_MIN(p->errpos + (size_t)n, p->errlen - 1);
	if (p->errpos + 1 < p->errlen) {
		p->err[p->errpos++] = '\n';
		p->err[p->errpos] = '\0';
	}
}

static void errorf(struct parse *p, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void errorf(struct parse *p, unsigned int line, const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	verrorf(p, line, fmt, va);
	va_end(va);
}

/* A path as written in the file that names it, made relative to that file's folder. */
static char *resolve_path(struct parse *p, const char *val)
{
	char *out;
	size_t n;

	if (!*val || val[0] == '/' || !p->dir || !*p->dir)
		return arena_strdup(p->arena, val);
	n = strlen(p->dir) + 1 + strlen(val) + 1;
	out = arena_alloc(p->arena, n);
	if (out)
		snprintf(out, n, "%s/%s", p->dir, val);
	return out;
}

/* What adapters' hooks and custom parsers reach of the loader (struct ad_parse_ops). */
static void __attribute__((format(printf, 3, 0)))
ap_verror(struct ad_parse *ap, unsigned int line, const char *fmt, va_list va)
{
	verrorf(P(ap), line, fmt, va);
}

static char *ap_strdup(struct ad_parse *ap, const char *s)
{
	struct parse *p = P(ap);
	char *d = arena_strdup(p->arena, s);

	if (!d)
		p->sys_err = -ENOMEM;
	return d;
}

static char *ap_path(struct ad_parse *ap, const char *s)
{
	struct parse *p = P(ap);
	char *d = resolve_path(p, s);

	if (!d)
		p->sys_err = -ENOMEM;
	return d;
}

static const struct ad_parse_ops ap_ops = {
	.verror = ap_verror,
	.strdup = ap_strdup,
	.path = ap_path,
};

/* ------------------------------------------------------------- key tables */

/*
 * The rows are struct ad_key (adapters/adapter.h): the same mechanism serves
 * the main file's sections and the adapters' device-map sections. Short
 * names for this file's tables.
 */
#define K_STR AD_K_STR
#define K_PATH AD_K_PATH
#define K_BOOL AD_K_BOOL
#define K_DUR AD_K_DUR
#define K_SIZE AD_K_SIZE
#define K_INT AD_K_INT
#define K_DOUBLE AD_K_DOUBLE
#define K_ENUM AD_K_ENUM
#define K_CUSTOM AD_K_CUSTOM
#define F_NONNEG AD_KF_NONNEG
#define F_KEEP AD_KF_KEEP_IF_EMPTY

static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };
static const int log_level_vals[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
static const char *const log_targets[] = { "stderr", "syslog", NULL };
static const char *const payloads[] = { "json", "value", NULL };
static const char *const publishes[] = { "inherit", "on_change", "every_poll",
					 "on_change_or_period", NULL };
static const char *const notify_types[] = { "non", "con", "qos", NULL };
static const char *const overflows[] = { "drop_oldest", "drop_newest", NULL };
static const char *const synchronous_modes[] = { "normal", "full", NULL };
static const char *const upqueues[] = { "always", "offline", "off", NULL };
static const char *const protocols_up[] = { "3.1.1", "5", NULL };
static const int protocols_up_vals[] = { 4, 5 };
static const char *const point_types[] = { AD_POINT_TYPE_NAMES, NULL };
static const char *const accesses[] = { "r", "rw", NULL };

static int set_int(void *dst, unsigned char size, long long v)
{
	switch (size) {
	case 1:
		*(uint8_t *)dst = (uint8_t)v;
		return 0;
	case 2:
		*(uint16_t *)dst = (uint16_t)v;
		return 0;
	case 4:
		*(uint32_t *)dst = (uint32_t)v;
		return 0;
	case 8:
		*(uint64_t *)dst = (uint64_t)v;
		return 0;
	}
	return -EINVAL;
}

static bool id_chars_ok(const char *s, bool allow_dot)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || (allow_dot && c == '.')))
			return false;
	}
	return true;
}

/* A topic name: non-empty, no wildcards, no NUL (config text has none). */
static bool topic_ok(const char *s)
{
	return *s && !strpbrk(s, "+#");
}

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

/* host:port or [v6]:port */
static bool hostport_ok(const char *s, bool need_port)
{
	const char *colon;
	long long port;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb == s + 1)
			return false;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (!colon && rb[1])
			return false;
	} else {
		colon = strrchr(s, ':');
		if (colon == s)
			return false;
	}
	if (!colon)
		return !need_port;
	return gw_parse_int(colon + 1, 1, 65535, &port) == 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* One listener URL, checked by the broker's own parser. 0 or -EINVAL (said). */
static int listen_url_ok(struct parse *p, const char *what, const char *url)
{
	enum brk_transport kind;
	struct sockaddr_storage ss;

	if (brk_listen_parse(url, &kind, &ss)) {
		errorf(p, p->line,
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
		char *t = trim(tok);

		if (listen_url_ok(p, "[broker] listen", t))
			return -EINVAL;
		if (bc->n_listen == BRK_MAX_LISTENERS) {
			errorf(p, p->line, "[broker] listen: at most %d listeners in all",
			       BRK_MAX_LISTENERS);
			return -EINVAL;
		}
		memset(&bc->listen[bc->n_listen], 0, sizeof(bc->listen[0]));
		bc->listen[bc->n_listen++].url = arena_strdup(p->arena, t);
		added++;
	}
	if (!added) {
		errorf(p, p->line, "[broker] listen: expected at least one HOST:PORT");
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
	l->url = arena_strdup(p->arena, val);
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
		errorf(p, p->line, "ws_path: '%s': expected an absolute path such as /mqtt", val);
		return -EINVAL;
	}
	*dst = arena_strdup(p->arena, val);
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
	path = resolve_path(p, val);
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
		errorf(p, line, "[broker] %s: %s", k->name, msg);
		p->file = main_file;
	} else if (rc) {
		errorf(p, p->line, "[broker] %s: %s", k->name, msg);
	} else {
		*keep = path;
	}
	return rc;
}

static int parse_filters(struct parse *p, const char *key, const char *val, struct gw_filter *out,
			 unsigned int *n, uint8_t def_qos)
{
	char buf[2048], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", val);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = trim(tok), *sp = strpbrk(t, " \t");
		long long qos = def_qos;

		if (!*t)
			continue;
		if (sp) {
			*sp = '\0';
			if (gw_parse_int(trim(sp + 1), 0, 2, &qos)) {
				errorf(p, p->line,
				       "[%s] %s: '%s': expected FILTER [QOS] with QOS 0, 1 or 2",
				       p->section, key, trim(sp + 1));
				return -EINVAL;
			}
		}
		if (!filter_ok(t)) {
			errorf(p, p->line, "[%s] %s: '%s' is not a valid MQTT topic filter",
			       p->section, key, t);
			return -EINVAL;
		}
		if (*n == GW_MAX_FILTERS) {
			errorf(p, p->line, "[%s] %s: at most %d filters", p->section, key,
			       GW_MAX_FILTERS);
			return -EINVAL;
		}
		out[*n].filter = arena_strdup(p->arena, t);
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
		errorf(p, p->line,
		       "[uplink] url: '%s': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
		       val);
		return -EINVAL;
	}
	if (!*rest || strchr(rest, '/') || !hostport_ok(rest, false)) {
		errorf(p, p->line,
		       "[uplink] url: '%s': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
		       val);
		return -EINVAL;
	}
	if (*rest == '[') {
		const char *rb = strchr(rest, ']');

		u->host = arena_strndup(p->arena, rest + 1, (size_t)(rb - rest - 1));
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strrchr(rest, ':');
		u->host = arena_strndup(p->arena, rest,
					colon ? (size_t)(colon - rest) : strlen(rest));
	}
	if (colon)
		gw_parse_int(colon + 1, 1, 65535, &port);
	u->port = (uint16_t)port;
	u->url = arena_strdup(p->arena, val);
	return 0;
}

static int k_id(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_gateway_config *g = base;

	(void)k;
	if (!id_chars_ok(val, false)) {
		errorf(p, p->line, "[gateway] id: '%s': expected letters, digits, '_' or '-'", val);
		return -EINVAL;
	}
	g->id = arena_strdup(p->arena, val);
	return 0;
}

static int k_multicast(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct gw_mqttsn_config *m = base;

	(void)k;
	if (*val && !hostport_ok(val, true)) {
		errorf(p, p->line,
		       "[mqttsn] multicast: '%s': expected GROUP:PORT, e.g. 225.1.1.1:1883", val);
		return -EINVAL;
	}
	m->multicast = *val ? arena_strdup(p->arena, val) : NULL;
	return 0;
}

static int k_hostport(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	if (!hostport_ok(val, true)) {
		errorf(p, p->line, "[%s] %s: '%s': expected HOST:PORT or [IPV6]:PORT", p->section,
		       k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
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
		char *t = trim(e);

		if (!strncmp(t, "coaps://", 8)) {
			t += 8;
			if (!ad_coap_has_dtls()) {
				errorf(p, p->line,
				       "[%s] %s: '%s': this build's libcoap has no DTLS (coaps://)",
				       p->section, k->name, val);
				return -ENOTSUP;
			}
		} else if (!strncmp(t, "coap://", 7))
			t += 7;
		if (!*t || !hostport_ok(t, true) || ++n > 4 || strlen(val) >= sizeof(buf)) {
			errorf(p, p->line,
			       "[%s] %s: '%s': expected up to 4 of HOST:PORT, coap://HOST:PORT or coaps://HOST:PORT, comma-separated",
			       p->section, k->name, val);
			return -EINVAL;
		}
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

/* [http] listen: HOST:PORT, http://HOST:PORT or https://HOST:PORT. */
static int k_http_listen(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	const char *hp = !strncmp(val, "https://", 8)  ? val + 8
			 : !strncmp(val, "http://", 7) ? val + 7
						       : val;

	if (strstr(hp, "://") || strchr(hp, '/') || !hostport_ok(hp, true)) {
		errorf(p, p->line,
		       "[%s] %s: '%s': expected HOST:PORT, http://HOST:PORT or https://HOST:PORT",
		       p->section, k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

static int k_topic(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	if (*val && !topic_ok(val) && !strstr(val, "{id}")) {
		errorf(p, p->line, "[%s] %s: '%s': expected a topic without '+' or '#'", p->section,
		       k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

/* [homeassistant] discovery_prefix: a non-empty topic without wildcards or empty levels at its ends. */
static int k_ha_prefix(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	size_t n = strlen(val);

	if (!n || !topic_ok(val) || val[0] == '/' || val[n - 1] == '/') {
		errorf(p, p->line,
		       "[%s] %s: '%s': expected a topic without '+' or '#' and without '/' at its ends",
		       p->section, k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

/* Printers of the custom keys above, for --check-config -v. */
static void show_str(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const char *v = *(char *const *)((const char *)obj + k->off);

	snprintf(buf, n, "%s", v ? v : "");
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
		    .show = show_str,
		    .flag = F_KEEP,
		    .help = "default: the host name" },
	[KG_TOPIC_PREFIX] = { .name = "topic_prefix",
			      .type = K_CUSTOM,
			      .off = GK(topic_prefix),
			      .fn = k_topic,
			      .show = show_str,
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
			 .enums = publishes + 1,
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
			 .show = show_str,
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
		     .show = show_str,
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
			 .show = show_str,
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
		     .show = show_str,
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
			       .fn = k_topic,
			       .show = show_str },
	[KU_SUBSCRIBE] = { .name = "subscribe",
			   .type = K_CUSTOM,
			   .off = 0,
			   .fn = k_subscribe,
			   .show = show_subscribe,
			   .help = "cloud FILTER [QOS], comma-separated" },
	[KU_LOCAL_PREFIX] = { .name = "local_prefix",
			      .type = K_CUSTOM,
			      .off = UK(local_prefix),
			      .fn = k_topic,
			      .show = show_str },
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
			errorf(p, p->line, "[mqttsn] allow_from: more than %d ranges",
			       GW_MAX_ALLOW_FROM);
			return -EINVAL;
		}
		if (gw_cidr_parse(tok, &mc->allow_from[mc->n_allow_from])) {
			errorf(p, p->line,
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
			.show = show_str,
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
			   .show = show_str,
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
			    .fn = k_topic,
			    .show = show_str },
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
			.show = show_str,
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
			    .fn = k_topic,
			    .show = show_str },
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
				  .show = show_str,
				  .def = "homeassistant",
				  .help = "Home Assistant's discovery_prefix" },
};

/* ------------------------------------------------- device map: common keys */

/*
 * The keys every adapter's sections share. Anything else in a [bus:],
 * [device:] or [point:] section belongs to the adapter of its protocol
 * (struct ad_schema, from the registry).
 */
static int k_protocol(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	enum ad_protocol *out = (enum ad_protocol *)((char *)base + k->off);
	char names[256];
	size_t pos = 0;
	unsigned int i;

	names[0] = '\0';
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		if (!p->drivers[i].name)
			continue;
		if (!strcasecmp(val, p->drivers[i].name)) {
			*out = (enum ad_protocol)i;
			return 0;
		}
		pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", pos ? " | " : "",
					p->drivers[i].name);
		pos = GW_MIN(pos, sizeof(names) - 1);
	}
	errorf(p, p->line, "[%s] %s: '%s': expected %s", p->section, k->name, val, names);
	return -EINVAL;
}

static int k_busref(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	struct dev_tmp *dt = p->cur_dev;

	(void)k;
	(void)base;
	if (!id_chars_ok(val, true)) {
		errorf(p, p->line, "[%s] bus: '%s': expected the name of a [bus:NAME] section",
		       p->section, val);
		return -EINVAL;
	}
	dt->bus_name = arena_strdup(p->arena, val);
	dt->bus_line = p->line;
	return 0;
}

static void show_busref(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const struct ad_device *d = obj;

	(void)k;
	snprintf(buf, n, "%s", d->bus && !d->bus->implicit ? d->bus->name : "");
}

static const struct ad_key common_bus_keys[__AD_CB_MAX] = {
	[AD_CB_PROTOCOL] = { .name = "protocol",
			     .type = K_CUSTOM,
			     .off = offsetof(struct ad_bus, protocol),
			     .fn = k_protocol,
			     .flag = F_KEEP,
			     .help = "default: the protocol of the devices on the bus" },
};

static const struct ad_key common_device_keys[__AD_CD_MAX] = {
	[AD_CD_PROTOCOL] = { .name = "protocol",
			     .type = K_CUSTOM,
			     .off = offsetof(struct ad_device, protocol),
			     .fn = k_protocol,
			     .flag = F_KEEP,
			     .def = "modbus" },
	[AD_CD_BUS] = { .name = "bus",
			.type = K_CUSTOM,
			.fn = k_busref,
			.show = show_busref,
			.flag = F_KEEP,
			.help = "a [bus:NAME], or the transport keys inline" },
	[AD_CD_POLL] = { .name = "poll",
			 .type = K_DUR,
			 .off = offsetof(struct ad_device, poll_ms),
			 .size = 4,
			 .min = 10,
			 .max = 86400000,
			 .def = "1s" },
	[AD_CD_PUBLISH] = { .name = "publish",
			    .type = K_ENUM,
			    .off = offsetof(struct ad_device, publish),
			    .size = sizeof(enum ad_publish),
			    .enums = publishes + 1,
			    .enum_base = 1,
			    .help = "default: [gateway] publish" },
};

/*
 * [point:] device_class: a Home Assistant device class (lower-case letters,
 * digits and '_'; which names HA knows depends on the component and its
 * version, so they are not listed here). state_class: one of HA's.
 */
static int k_point_class(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	static const char *const state_classes[] = { "measurement", "measurement_angle", "total",
						     "total_increasing" };
	struct parse *p = P(ap);
	const char *c;
	unsigned int i;

	if (k->off == offsetof(struct ad_point, state_class)) {
		for (i = 0; *val && i < GW_ARRAY_SIZE(state_classes); i++)
			if (!strcmp(val, state_classes[i]))
				break;
		if (*val && i == GW_ARRAY_SIZE(state_classes)) {
			errorf(p, p->line,
			       "[%s] %s: '%s': expected measurement | measurement_angle | total | total_increasing",
			       p->section, k->name, val);
			return -EINVAL;
		}
	} else {
		for (c = val; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
				break;
		if (*c) {
			errorf(p, p->line,
			       "[%s] %s: '%s': expected a Home Assistant device class (a-z, 0-9, '_')",
			       p->section, k->name, val);
			return -EINVAL;
		}
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

static const struct ad_key common_point_keys[__AD_CP_MAX] = {
	[AD_CP_TYPE] = { .name = "type",
			 .type = K_ENUM,
			 .off = offsetof(struct ad_point, type),
			 .size = sizeof(enum ad_point_type),
			 .enums = point_types,
			 .help = "default: the adapter's" },
	[AD_CP_SCALE] = { .name = "scale",
			  .type = K_DOUBLE,
			  .off = offsetof(struct ad_point, scale),
			  .def = "1",
			  .help = "value = raw * scale + offset" },
	[AD_CP_OFFSET] = { .name = "offset",
			   .type = K_DOUBLE,
			   .off = offsetof(struct ad_point, offset),
			   .def = "0" },
	[AD_CP_DEADBAND] = { .name = "deadband",
			     .type = K_DOUBLE,
			     .off = offsetof(struct ad_point, deadband),
			     .flag = F_NONNEG,
			     .def = "0",
			     .help = "on_change publishes only when |new - last| > deadband" },
	[AD_CP_UNIT] = { .name = "unit",
			 .type = K_STR,
			 .off = offsetof(struct ad_point, unit),
			 .def = "" },
	[AD_CP_ACCESS] = { .name = "access",
			   .type = K_ENUM,
			   .off = offsetof(struct ad_point, writable),
			   .size = 1,
			   .enums = accesses,
			   .def = "r",
			   .help = "rw listens on .../set" },
	[AD_CP_PUBLISH] = { .name = "publish",
			    .type = K_ENUM,
			    .off = offsetof(struct ad_point, publish),
			    .size = sizeof(enum ad_publish),
			    .enums = publishes + 1,
			    .enum_base = 1,
			    .help = "default: the device's" },
	[AD_CP_DEVICE_CLASS] = { .name = "device_class",
				 .type = K_CUSTOM,
				 .off = offsetof(struct ad_point, device_class),
				 .fn = k_point_class,
				 .show = show_str,
				 .def = "",
				 .help = "Home Assistant discovery, e.g. temperature" },
	[AD_CP_STATE_CLASS] = { .name = "state_class",
				.type = K_CUSTOM,
				.off = offsetof(struct ad_point, state_class),
				.fn = k_point_class,
				.show = show_str,
				.def = "",
				.help = "Home Assistant discovery: measurement | total | ..." },
};

/* Expected-value text for an enum key: "a | b | c". */
static void enum_expect(const struct ad_key *k, char *buf, size_t n)
{
	size_t pos = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; k->enums[i] && pos + 4 < n; i++) {
		int w = snprintf(buf + pos, n - pos, "%s%s", i ? " | " : "", k->enums[i]);

		if (w > 0)
			pos += (size_t)w;
	}
}

static int set_key(struct parse *p, void *base, const struct ad_key *k, const char *val)
{
	void *dst = (char *)base + k->off;
	char exp[256];
	uint64_t u;
	long long ll;
	double d;
	bool b;
	unsigned int i;

	switch (k->type) {
	case K_STR:
		*(char **)dst = arena_strdup(p->arena, val);
		return *(char **)dst ? 0 : -ENOMEM;
	case K_PATH:
		*(char **)dst = resolve_path(p, val);
		return *(char **)dst ? 0 : -ENOMEM;
	case K_BOOL:
		if (gw_parse_bool(val, &b)) {
			errorf(p, p->line,
			       "[%s] %s: '%s': expected yes | no | true | false | on | off | 1 | 0",
			       p->section, k->name, val);
			return -EINVAL;
		}
		*(bool *)dst = b;
		return 0;
	case K_DUR:
		if (gw_parse_duration_ms(val, &u) || u < (uint64_t)k->min ||
		    (k->max && u > (uint64_t)k->max)) {
			errorf(p, p->line,
			       "[%s] %s: '%s': expected a duration such as 500ms, 5s, 2m, 1h, 1d%s",
			       p->section, k->name, val,
			       k->min > 0 || k->max ? " (within the allowed range)" : "");
			return -EINVAL;
		}
		return set_int(dst, k->size, (long long)u);
	case K_SIZE:
		if (gw_parse_size(val, &u) || u < (uint64_t)k->min ||
		    (k->max && u > (uint64_t)k->max)) {
			errorf(p, p->line,
			       "[%s] %s: '%s': expected a size such as 512, 64K, 16M, 1G%s",
			       p->section, k->name, val,
			       k->min > 0 || k->max ? " (within the allowed range)" : "");
			return -EINVAL;
		}
		return set_int(dst, k->size, (long long)u);
	case K_INT:
		if (gw_parse_int(val, k->min, k->max, &ll)) {
			errorf(p, p->line, "[%s] %s: '%s': expected an integer from %lld to %lld",
			       p->section, k->name, val, k->min, k->max);
			return -EINVAL;
		}
		return set_int(dst, k->size, ll);
	case K_DOUBLE:
		if (gw_parse_double(val, &d) || ((k->flag & F_NONNEG) && d < 0)) {
			errorf(p, p->line, "[%s] %s: '%s': expected a number%s", p->section,
			       k->name, val, (k->flag & F_NONNEG) ? " >= 0" : "");
			return -EINVAL;
		}
		*(double *)dst = d;
		return 0;
	case K_ENUM:
		for (i = 0; k->enums[i]; i++) {
			if (!strcasecmp(val, k->enums[i])) {
				int v = k->enum_vals ? k->enum_vals[i] : (int)i + k->enum_base;

				return set_int(dst, k->size, v);
			}
		}
		enum_expect(k, exp, sizeof(exp));
		errorf(p, p->line, "[%s] %s: '%s': expected %s", p->section, k->name, val, exp);
		return -EINVAL;
	case K_CUSTOM:
		p->ap.file = p->file;
		p->ap.line = p->line;
		p->ap.section = p->section;
		return k->fn(&p->ap, base, k, val);
	}
	return -EINVAL;
}

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
			.show = show_str,
			.flag = F_KEEP,
			.def = "127.0.0.1:8080",
			.help = "https:// uses [broker] cert_file and key_file" },
	[KH_PASSWORD_FILE] = { .name = "password_file",
			       .type = K_PATH,
			       .off = HK(password_file),
			       .help = "Basic authentication, Mosquitto's format" },
};

/* -------------------------------------------------------------- sections */

/*
 * The main file's sections with key tables, in file order: where each
 * section's struct is in struct gw_config. Their defaults are the rows'
 * (applied before the file is read); on_key() finds their keys here and
 * --check-config -v prints them. A new main section is an enum sect value,
 * a row in fixed_sections[] and a row here.
 */
static const struct main_sect {
	const char *name;
	enum sect kind;
	struct ad_keys keys;
	size_t off;
} main_sects[] = {
	{ "gateway",
	  S_GATEWAY,
	  { gateway_keys, __KG_MAX, 0 },
	  offsetof(struct gw_config, gateway) },
	{ "broker", S_BROKER, { broker_keys, __KB_MAX, 0 }, offsetof(struct gw_config, broker) },
	{ "store", S_STORE, { store_keys, __KS_MAX, 0 }, offsetof(struct gw_config, store) },
	{ "uplink", S_UPLINK, { uplink_keys, __KU_MAX, 0 }, offsetof(struct gw_config, uplink) },
	{ "mqttsn", S_MQTTSN, { mqttsn_keys, __KM_MAX, 0 }, offsetof(struct gw_config, mqttsn) },
	{ "coap", S_COAP, { coap_keys, __KC_MAX, 0 }, offsetof(struct gw_config, coap) },
	{ "http", S_HTTP, { http_keys, __KH_MAX, 0 }, offsetof(struct gw_config, http) },
	{ "homeassistant",
	  S_HOMEASSISTANT,
	  { ha_keys, __KA_MAX, 0 },
	  offsetof(struct gw_config, homeassistant) },
};

static void apply_defaults(struct parse *p, const struct ad_keys *t, void *obj);

/* Every main section's defaults, from its rows (paths relative to the main file's folder). */
static void main_defaults(struct parse *p)
{
	unsigned int i;

	brk_config_defaults(&p->cfg->broker); /* what has no key */
	for (i = 0; i < GW_ARRAY_SIZE(main_sects); i++) {
		snprintf(p->section, sizeof(p->section), "%s", main_sects[i].name);
		apply_defaults(p, &main_sects[i].keys, (char *)p->cfg + main_sects[i].off);
	}
	p->section[0] = '\0';
}

static const struct {
	const char *name;
	enum sect kind;
	bool main_only;
} fixed_sections[] = {
	{ "gateway", S_GATEWAY, true },
	{ "broker", S_BROKER, true },
	{ "store", S_STORE, true },
	{ "uplink", S_UPLINK, true },
	{ "mqttsn", S_MQTTSN, true },
	{ "mqttsn.predefined", S_PREDEFINED, true },
	{ "coap", S_COAP, true },
	{ "http", S_HTTP, true },
	{ "homeassistant", S_HOMEASSISTANT, true },
};

/*
 * Starts the record of a [bus:] / [device:] / [point:] section @name: its
 * keys are kept (in the load's scratch arena) until every file is read.
 * Returns the section's common object (zeroed, in the map's arena), or NULL
 * when out of memory.
 */
static void *map_object(struct parse *p, struct sect_tmp *st, size_t size, const char *name)
{
	st->section = arena_strdup(&p->tmp, name);
	st->file = p->file;
	st->dir = p->dir;
	st->line = p->line;
	st->tail = &st->first;
	return st->section ? arena_alloc(p->arena, size) : NULL;
}

/* A key of a device-map section: kept for resolve(). */
static int record_key(struct parse *p, const char *name, const char *value)
{
	struct sect_tmp *st = p->obj; /* first member of bus_tmp / dev_tmp / pt_tmp */
	struct entry *e = arena_alloc(&p->tmp, sizeof(*e));

	if (!e || !(e->key = arena_strdup(&p->tmp, name)) ||
	    !(e->val = arena_strdup(&p->tmp, value))) {
		p->sys_err = -ENOMEM;
		return 0;
	}
	e->line = p->line;
	*st->tail = e;
	st->tail = &e->next;
	return 1;
}

static void begin_section(struct parse *p, const char *name)
{
	unsigned int i;
	const char *colon;

	snprintf(p->section, sizeof(p->section), "%s", name);
	p->obj = NULL;
	p->kind = S_BAD;
	for (i = 0; i < GW_ARRAY_SIZE(fixed_sections); i++) {
		if (strcmp(name, fixed_sections[i].name))
			continue;
		if (!p->main_file || !p->cfg) {
			errorf(p, p->line,
			       "[%s]: this section belongs in the main configuration file, not in a device map",
			       name);
			return;
		}
		p->kind = fixed_sections[i].kind;
		if (!p->sect_line[p->kind])
			p->sect_line[p->kind] = p->line;
		return;
	}
	colon = strchr(name, ':');
	if (colon && p->main_file && p->cfg && !strncmp(name, "listener:", 9)) {
		struct brk_config *bc = &p->cfg->broker;
		struct brk_listener_cfg *l;

		if (!id_chars_ok(colon + 1, true)) {
			errorf(p, p->line,
			       "[%s]: listener name: expected letters, digits, '_', '-' or '.'",
			       name);
			return;
		}
		if (bc->n_listen == BRK_MAX_LISTENERS) {
			errorf(p, p->line, "[%s]: at most %d listeners in all", name,
			       BRK_MAX_LISTENERS);
			return;
		}
		p->listener_line[bc->n_listen] = p->line;
		l = &bc->listen[bc->n_listen++];
		memset(l, 0, sizeof(*l));
		l->name = arena_strdup(p->arena, colon + 1);
		p->obj = l;
		p->kind = S_LISTENER;
		p->seen_global[S_LISTENER] = 0;
		p->sect_line[S_LISTENER] = p->line;
		return;
	}
	if (colon && p->main_file) {
		errorf(p, p->line,
		       "[%s]: buses, devices and points belong in the device-map files named by [gateway] devices",
		       name);
		return;
	}
	if (!colon) {
		errorf(p, p->line,
		       "[%s]: unknown section; expected gateway, broker, store, uplink, mqttsn, mqttsn.predefined, coap, http, homeassistant, bus:NAME, device:NAME or point:DEVICE/NAME",
		       name);
		return;
	}
	if (!strncmp(name, "bus:", 4)) {
		struct bus_tmp *bt;

		if (!id_chars_ok(colon + 1, true)) {
			errorf(p, p->line,
			       "[%s]: bus name: expected letters, digits, '_', '-' or '.'", name);
			return;
		}
		bt = arena_alloc(&p->tmp, sizeof(*bt));
		if (!bt || arena_push(&p->tmp, (void ***)&p->buses, &p->n_buses, bt) ||
		    !(bt->b = map_object(p, &bt->s, sizeof(*bt->b), name)))
			goto nomem;
		bt->b->name = arena_strdup(p->arena, colon + 1);
		bt->b->origin.file = p->file;
		bt->b->origin.line = p->line;
		p->obj = bt;
		p->kind = S_BUS;
		return;
	}
	if (!strncmp(name, "device:", 7)) {
		struct dev_tmp *dt;

		if (!id_chars_ok(colon + 1, true)) {
			errorf(p, p->line,
			       "[%s]: device name: expected letters, digits, '_', '-' or '.'",
			       name);
			return;
		}
		dt = arena_alloc(&p->tmp, sizeof(*dt));
		if (!dt || arena_push(&p->tmp, (void ***)&p->devs, &p->n_devs, dt) ||
		    !(dt->d = map_object(p, &dt->s, sizeof(*dt->d), name)))
			goto nomem;
		dt->d->name = arena_strdup(p->arena, colon + 1);
		dt->d->origin.file = p->file;
		dt->d->origin.line = p->line;
		p->obj = dt;
		p->kind = S_DEVICE;
		return;
	}
	if (!strncmp(name, "point:", 6)) {
		const char *slash = strchr(colon + 1, '/');
		struct pt_tmp *pt;
		char dev[256];

		if (!slash || (size_t)(slash - colon - 1) >= sizeof(dev)) {
			errorf(p, p->line, "[%s]: expected [point:DEVICE/NAME]", name);
			return;
		}
		snprintf(dev, sizeof(dev), "%.*s", (int)(slash - colon - 1), colon + 1);
		if (!id_chars_ok(dev, true) || !id_chars_ok(slash + 1, true)) {
			errorf(p, p->line,
			       "[%s]: device and point names: expected letters, digits, '_', '-' or '.'",
			       name);
			return;
		}
		pt = arena_alloc(&p->tmp, sizeof(*pt));
		if (!pt || arena_push(&p->tmp, (void ***)&p->pts, &p->n_pts, pt) ||
		    !(pt->p = map_object(p, &pt->s, sizeof(*pt->p), name)))
			goto nomem;
		pt->p->name = arena_strdup(p->arena, slash + 1);
		pt->dev_name = arena_strdup(&p->tmp, dev);
		pt->p->origin.file = p->file;
		pt->p->origin.line = p->line;
		p->obj = pt;
		p->kind = S_POINT;
		return;
	}
	errorf(p, p->line,
	       "[%s]: unknown section; expected bus:NAME, device:NAME or point:DEVICE/NAME", name);
	return;
nomem:
	p->sys_err = -ENOMEM;
}

/* Row @name of @t (holes skipped), with its index in *idx; NULL when absent. */
static const struct ad_key *find_key(const struct ad_keys *t, const char *name, unsigned int *idx)
{
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		if (t->rows[i].name && !strcmp(t->rows[i].name, name)) {
			*idx = i;
			return &t->rows[i];
		}
	}
	return NULL;
}

/* Appends the names of @t to @buf ("a, b, c"), after what *pos already holds. */
static void key_list(const struct ad_keys *t, char *buf, size_t n, size_t *pos)
{
	unsigned int i;

	for (i = 0; i < t->n && *pos + 4 < n; i++) {
		int w;

		if (!t->rows[i].name)
			continue;
		w = snprintf(buf + *pos, n - *pos, "%s%s", *pos ? ", " : "", t->rows[i].name);
		if (w > 0)
			*pos = GW_MIN(*pos + (size_t)w, n - 1);
	}
}

/* A NULL-terminated table of this file as a struct ad_keys. */
#define KEYS(tab) ((struct ad_keys){ (tab), GW_ARRAY_SIZE(tab), 0 })

/*
 * set_checked - one key of a section: refuses a duplicate (per @seen, bit
 * per row), keeps the default on an empty value (except strings and custom
 * keys that take "" as a value), else parses it with set_key().
 */
static void set_checked(struct parse *p, void *base, const struct ad_key *k, unsigned int idx,
			uint64_t *seen, const char *value)
{
	if (idx < 64 && (*seen & (1ULL << idx))) {
		errorf(p, p->line, "[%s] %s: duplicate key", p->section, k->name);
		return;
	}
	if (idx < 64)
		*seen |= 1ULL << idx;
	/* An empty value keeps the default ("bit =" in the examples). */
	if (!*value && k->type != K_STR && k->type != K_CUSTOM)
		return;
	if (!*value && k->type == K_CUSTOM && (k->flag & F_KEEP))
		return;
	set_key(p, base, k, value);
}

/* Applies every row's default of @t to @obj (the defaults are the tables' own text). */
static void apply_defaults(struct parse *p, const struct ad_keys *t, void *obj)
{
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		const struct ad_key *k = &t->rows[i];

		if (k->name && k->def && set_key(p, obj, k, k->def))
			errorf(p, p->line, "[%s] %s: the built-in default '%s' is refused (a bug)",
			       p->section, k->name, k->def);
	}
}

static int handle_predefined(struct parse *p, const char *name, const char *val)
{
	struct gw_mqttsn_config *m = &p->cfg->mqttsn;
	long long id;
	unsigned int i;

	if (gw_parse_int(name, 1, 65534, &id)) {
		errorf(p, p->line,
		       "[mqttsn.predefined] %s: expected a topic id from 1 to 65534 as the key",
		       name);
		return 1;
	}
	if (!topic_ok(val)) {
		errorf(p, p->line,
		       "[mqttsn.predefined] %s: '%s': expected a topic name without '+' or '#'",
		       name, val);
		return 1;
	}
	for (i = 0; i < m->n_predefined; i++) {
		if (m->predefined[i].id == id) {
			errorf(p, p->line, "[mqttsn.predefined] %s: duplicate topic id", name);
			return 1;
		}
	}
	if (m->n_predefined == GW_MAX_PREDEFINED) {
		errorf(p, p->line, "[mqttsn.predefined]: at most %d predefined topics",
		       GW_MAX_PREDEFINED);
		return 1;
	}
	m->predefined[m->n_predefined].id = (uint16_t)id;
	m->predefined[m->n_predefined].topic = arena_strdup(p->arena, val);
	m->n_predefined++;
	return 1;
}

static bool renamed_key(struct parse *p, const char *name);

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	const struct ad_key *k;
	struct ad_keys keys;
	uint64_t *seen;
	void *base = NULL;
	unsigned int idx, i;
	char list[1024];

	(void)section;
	switch (p->kind) {
	case S_NONE:
		errorf(p, p->line, "%s: key outside of any section", name);
		return 1;
	case S_BAD:
		return 1;
	case S_PREDEFINED:
		return handle_predefined(p, name, value);
	case S_BUS:
	case S_DEVICE:
	case S_POINT:
		return record_key(p, name, value);
	case S_LISTENER:
		keys = KEYS(listener_keys);
		base = p->obj;
		break;
	default:
		/* A main section with a key table (main_sects): [gateway], [broker], ... */
		for (i = 0; i < GW_ARRAY_SIZE(main_sects) && main_sects[i].kind != p->kind; i++)
			;
		if (i == GW_ARRAY_SIZE(main_sects))
			return 1;
		keys = main_sects[i].keys;
		base = (char *)p->cfg + main_sects[i].off;
		break;
	}
	seen = &p->seen_global[p->kind];
	k = find_key(&keys, name, &idx);
	if (!k) {
		size_t pos = 0;

		if (renamed_key(p, name))
			return 1;
		list[0] = '\0';
		key_list(&keys, list, sizeof(list), &pos);
		errorf(p, p->line, "[%s] %s: unknown key; expected one of: %s", p->section, name,
		       list);
		return 1;
	}
	set_checked(p, base, k, idx, seen, value);
	return 1;
}

/* ini_reader: counts lines, spots section headers, refuses over-long lines. */
static char *read_line(char *line, int num, void *stream)
{
	struct parse *p = stream;
	char *s;
	size_t n;

	if (!fgets(line, num, p->f))
		return NULL;
	p->line++;
	n = strlen(line);
	if (n == (size_t)num - 1 && line[n - 1] != '\n' && !feof(p->f)) {
		int c;

		while ((c = fgetc(p->f)) != EOF && c != '\n')
			;
		errorf(p, p->line, "line too long (at most %d characters)", num - 2);
		line[0] = '\0';
		return line;
	}
	for (s = line; *s == ' ' || *s == '\t'; s++)
		;
	if (*s == '[') {
		char *rb = strchr(s, ']');

		if (rb) {
			char name[256];

			snprintf(name, sizeof(name), "%.*s", (int)(rb - s - 1), s + 1);
			begin_section(p, trim(name));
		}
	}
	return line;
}

/*
 * Opens @path for reading: from the disk, or with gw_config_load_mem the
 * entry of that name as a memory stream (fmemopen), so read_line and inih
 * see the same FILE either way. NULL with errno set on failure.
 */
static FILE *open_file(struct parse *p, const char *path)
{
	size_t i;

	if (!p->mem)
		return fopen(path, "r");
	for (i = 0; i < p->n_mem; i++)
		if (!strcmp(p->mem[i].path, path))
			return fmemopen((void *)p->mem[i].text, p->mem[i].len, "r");
	errno = ENOENT;
	return NULL;
}

static int parse_file(struct parse *p, const char *path, bool main_file)
{
	char *slash;
	int rc;

	p->file = arena_strdup(p->arena, path);
	p->dir = arena_strdup(p->arena, path);
	if (!p->file || !p->dir)
		return -ENOMEM;
	slash = strrchr(p->dir, '/');
	if (slash)
		*slash = '\0';
	else
		p->dir[0] = '\0';
	p->main_file = main_file;
	p->line = 0;
	p->kind = S_NONE;
	p->obj = NULL;
	p->section[0] = '\0';
	if (main_file && p->cfg)
		main_defaults(p);
	p->f = open_file(p, path);
	if (!p->f) {
		rc = -errno;
		p->n_errors++;
		if (p->err)
			p->errpos += (size_t)snprintf(p->err + p->errpos, p->errlen - p->errpos,
						      "%s: cannot open: %s\n", path, strerror(-rc));
		p->errpos = GW_MIN(p->errpos, p->errlen ? p->errlen - 1 : 0);
		return rc;
	}
	rc = ini_parse_stream(read_line, p, on_key, p);
	fclose(p->f);
	p->f = NULL;
	if (rc > 0)
		errorf(p, (unsigned int)rc,
		       "syntax error: expected [section], key = value or a ; comment");
	return p->sys_err;
}

/* -------------------------------------------------------------- resolving */

/* Points the error context at section @st (its file, folder and header line). */
static void enter(struct parse *p, const struct sect_tmp *st)
{
	p->file = st->file;
	p->dir = (char *)st->dir;
	p->line = st->line;
	snprintf(p->section, sizeof(p->section), "%s", st->section);
	p->ap.file = st->file;
	p->ap.line = st->line;
	p->ap.section = st->section;
	p->ap.seen = 0;
	p->ap.common_seen = 0;
}

/* The adapter's parsed struct for a section kind: zeroed, with the rows' defaults. */
static void *new_ext(struct parse *p, const struct ad_keys *t)
{
	void *ext = arena_alloc(p->arena, t->size ? t->size : 1);

	if (!ext) {
		p->sys_err = -ENOMEM;
		return NULL;
	}
	apply_defaults(p, t, ext);
	return ext;
}

/*
 * Keys known under another name: a key of an older release that was renamed
 * (the row says since which version), or the name Mosquitto's mosquitto.conf
 * gives a key of ours, which users who move from it type. An unknown key
 * found here is reported with the name to use, not with the list of every
 * key. @sect is the section's kind ("broker", "device", ...: the part before
 * ':'); @to may name another section. Rows are never removed, so that a
 * config of any release reads as far as it can.
 */
static const struct renamed_key {
	const char *sect, *from, *to, *why;
} renamed_keys[] = {
	{ "gateway", "log_dest", "log_target", "Mosquitto's log_dest" },
	{ "broker", "max_inflight_messages", "max_inflight", "Mosquitto's max_inflight_messages" },
	{ "broker", "persistence", "persist", "Mosquitto's persistence" },
	{ "broker", "persistence_location", "[gateway] data_dir",
	  "Mosquitto's persistence_location" },
	{ "broker", "cafile", "ca_file", "Mosquitto's cafile" },
	{ "broker", "certfile", "cert_file", "Mosquitto's certfile" },
	{ "broker", "keyfile", "key_file", "Mosquitto's keyfile" },
	{ "listener", "cafile", "ca_file", "Mosquitto's cafile" },
	{ "listener", "certfile", "cert_file", "Mosquitto's certfile" },
	{ "listener", "keyfile", "key_file", "Mosquitto's keyfile" },
	{ "uplink", "cafile", "ca_file", "Mosquitto's cafile" },
	{ "uplink", "bridge_cafile", "ca_file", "Mosquitto's bridge_cafile" },
	{ "uplink", "bridge_certfile", "cert_file", "Mosquitto's bridge_certfile" },
	{ "uplink", "bridge_keyfile", "key_file", "Mosquitto's bridge_keyfile" },
	{ "uplink", "bridge_insecure", "tls_insecure", "Mosquitto's bridge_insecure" },
	{ "uplink", "bridge_protocol_version", "protocol", "Mosquitto's bridge_protocol_version" },
	{ "uplink", "remote_clientid", "client_id", "Mosquitto's remote_clientid" },
	{ "uplink", "remote_username", "username", "Mosquitto's remote_username" },
	{ "uplink", "remote_password", "password", "Mosquitto's remote_password" },
	{ "uplink", "keepalive_interval", "keepalive", "Mosquitto's keepalive_interval" },
};

/* The row of renamed_keys[] for @name in section @section ("broker", "listener:tls"), or NULL. */
static const struct renamed_key *find_renamed(const char *section, const char *name)
{
	size_t n = strcspn(section, ":");
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(renamed_keys); i++) {
		const struct renamed_key *r = &renamed_keys[i];

		if (strlen(r->sect) == n && !strncmp(r->sect, section, n) && !strcmp(r->from, name))
			return r;
	}
	return NULL;
}

/* Reports @name as a renamed key when it is one; returns whether it did. */
static bool renamed_key(struct parse *p, const char *name)
{
	const struct renamed_key *r = find_renamed(p->section, name);

	if (!r)
		return false;
	errorf(p, p->line, "[%s] %s: unknown key; it is now called %s (%s)", p->section, name,
	       r->to, r->why);
	return true;
}

/* "unknown key; expected one of: ..." over up to three tables. */
static void unknown_key(struct parse *p, const char *name, const struct ad_keys *a,
			const struct ad_keys *b, const struct ad_keys *c)
{
	char list[1024];
	size_t pos = 0;

	if (renamed_key(p, name))
		return;
	list[0] = '\0';
	key_list(a, list, sizeof(list), &pos);
	if (b)
		key_list(b, list, sizeof(list), &pos);
	if (c)
		key_list(c, list, sizeof(list), &pos);
	errorf(p, p->line, "[%s] %s: unknown key; expected one of: %s", p->section, name, list);
}

/*
 * Applies the entries of @st that @t knows and no table took yet to @obj
 * (seen bits in *seen). Returns how many it took.
 */
static unsigned int apply_table(struct parse *p, const struct sect_tmp *st, const struct ad_keys *t,
				void *obj, uint64_t *seen)
{
	struct entry *e;
	unsigned int idx, n = 0;

	for (e = st->first; e; e = e->next) {
		const struct ad_key *k;

		if (e->used || !(k = find_key(t, e->key, &idx)))
			continue;
		e->used = true;
		n++;
		p->line = e->line;
		set_checked(p, obj, k, idx, seen, e->val);
	}
	p->line = st->line;
	return n;
}

/* Reports every entry of @st no table took. */
static void unknown_keys(struct parse *p, const struct sect_tmp *st, const struct ad_keys *a,
			 const struct ad_keys *b, const struct ad_keys *c)
{
	const struct entry *e;

	for (e = st->first; e; e = e->next) {
		if (e->used)
			continue;
		p->line = e->line;
		unknown_key(p, e->key, a, b, c);
	}
	p->line = st->line;
}

/* The adapter of @proto, or NULL (with an error naming the ones this build has). */
static const struct ad_schema *schema_of(struct parse *p, enum ad_protocol proto, const char *what,
					 unsigned int line)
{
	char names[256];
	size_t pos = 0;
	unsigned int i;

	if ((unsigned int)proto < __AD_PROTO_MAX && p->drivers[proto].schema)
		return p->drivers[proto].schema;
	names[0] = '\0';
	for (i = 0; i < __AD_PROTO_MAX; i++) {
		if (!p->drivers[i].schema)
			continue;
		pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", pos ? " | " : "",
					p->drivers[i].name);
		pos = GW_MIN(pos, sizeof(names) - 1);
	}
	errorf(p, line, "[%s] protocol: '%s' is not available in this version; expected %s", what,
	       (unsigned int)proto < __AD_PROTO_MAX && p->drivers[proto].name
		       ? p->drivers[proto].name
		       : "?",
	       names);
	return NULL;
}

static const struct ad_keys common_bus = { common_bus_keys, __AD_CB_MAX, 0 };
static const struct ad_keys common_device = { common_device_keys, __AD_CD_MAX, 0 };
static const struct ad_keys common_point = { common_point_keys, __AD_CP_MAX, 0 };

/*
 * A device's keys: the common ones (which say the protocol), then the
 * adapter's device keys, then its bus keys (inline transport, for the
 * implicit bus). Returns false when the device cannot be used.
 */
static bool device_keys(struct parse *p, struct dev_tmp *dt)
{
	struct ad_device *d = dt->d;
	const struct ad_schema *sc;

	enter(p, &dt->s);
	p->cur_dev = dt;
	apply_defaults(p, &common_device, d);
	apply_table(p, &dt->s, &common_device, d, &dt->seen);
	p->cur_dev = NULL;
	sc = schema_of(p, d->protocol, dt->s.section, d->origin.line);
	if (!sc)
		return false;
	d->ext = new_ext(p, &sc->device);
	if (!d->ext)
		return false;
	apply_table(p, &dt->s, &sc->device, d->ext, &dt->ext_seen);
	if (sc->bus.size) {
		dt->inline_bus = new_ext(p, &sc->bus);
		if (!dt->inline_bus)
			return false;
		if (!apply_table(p, &dt->s, &sc->bus, dt->inline_bus, &dt->bus_seen))
			dt->inline_bus = NULL; /* no inline transport keys */
	}
	unknown_keys(p, &dt->s, &common_device, &sc->device, sc->bus.size ? &sc->bus : NULL);
	return true;
}

/* The protocol of a bus: its own key, else that of the first device naming it, else modbus. */
static enum ad_protocol bus_protocol(struct parse *p, const struct bus_tmp *bt)
{
	unsigned int i;

	if (bt->seen & (1ULL << AD_CB_PROTOCOL))
		return bt->b->protocol;
	for (i = 0; i < p->n_devs; i++)
		if (p->devs[i]->bus_name && !strcmp(p->devs[i]->bus_name, bt->b->name) &&
		    (p->devs[i]->seen & (1ULL << AD_CD_PROTOCOL)))
			return p->devs[i]->d->protocol;
	return AD_PROTO_MODBUS;
}

/* A [bus:] section: keys, duplicate names, the adapter's check. */
static void resolve_bus(struct parse *p, struct bus_tmp *bt, unsigned int i)
{
	struct ad_bus *b = bt->b;
	const struct ad_schema *sc;
	uint64_t ext_seen = 0;
	unsigned int j;

	enter(p, &bt->s);
	apply_table(p, &bt->s, &common_bus, b, &bt->seen);
	for (j = 0; j < i; j++) {
		if (!strcmp(p->buses[j]->b->name, b->name))
			errorf(p, b->origin.line,
			       "[bus:%s]: duplicate bus name (first defined at %s:%u)", b->name,
			       p->buses[j]->b->origin.file, p->buses[j]->b->origin.line);
	}
	b->protocol = bus_protocol(p, bt);
	sc = schema_of(p, b->protocol, bt->s.section, b->origin.line);
	if (!sc)
		return;
	if (!sc->bus.size) {
		errorf(p, b->origin.line, "[%s]: protocol %s has no buses", bt->s.section,
		       p->drivers[b->protocol].name);
		return;
	}
	b->ext = new_ext(p, &sc->bus);
	if (!b->ext)
		return;
	apply_table(p, &bt->s, &sc->bus, b->ext, &ext_seen);
	unknown_keys(p, &bt->s, &common_bus, &sc->bus, NULL);
	p->ap.seen = ext_seen;
	p->ap.common_seen = bt->seen;
	if (sc->check_bus && sc->check_bus(&p->ap, b))
		return;
	bt->ok = true;
	if (arena_push(&p->dm->arena, (void ***)&p->dm->map.buses, &p->dm->map.n_buses, b))
		p->sys_err = -ENOMEM;
}

static struct bus_tmp *find_bus(struct parse *p, const char *name)
{
	unsigned int i;

	for (i = 0; i < p->n_buses; i++)
		if (!strcmp(p->buses[i]->b->name, name))
			return p->buses[i];
	return NULL;
}

static struct dev_tmp *find_dev(struct parse *p, const char *name)
{
	unsigned int i;

	for (i = 0; i < p->n_devs; i++)
		if (!strcmp(p->devs[i]->d->name, name))
			return p->devs[i];
	return NULL;
}

/* A device after its keys: duplicate names, its bus (named or implicit), the adapter's check. */
static void resolve_device(struct parse *p, struct dev_tmp *dt, unsigned int i,
			   enum ad_publish gw_publish)
{
	struct ad_device *d = dt->d;
	const struct ad_schema *sc = p->drivers[d->protocol].schema;
	unsigned int j;

	enter(p, &dt->s);
	for (j = 0; j < i; j++) {
		if (!strcmp(p->devs[j]->d->name, d->name))
			errorf(p, d->origin.line,
			       "[device:%s]: duplicate device name (first defined at %s:%u)",
			       d->name, p->devs[j]->d->origin.file, p->devs[j]->d->origin.line);
	}
	if (dt->bus_name) {
		struct bus_tmp *bt = find_bus(p, dt->bus_name);

		if (dt->inline_bus)
			errorf(p, d->origin.line,
			       "[device:%s]: give either bus = NAME or inline transport keys (type, host, port, device, ...), not both",
			       d->name);
		if (!bt) {
			errorf(p, dt->bus_line,
			       "[device:%s] bus: '%s': no [bus:%s] section defines it", d->name,
			       dt->bus_name, dt->bus_name);
			return;
		}
		if (bt->b->protocol != d->protocol) {
			errorf(p, dt->bus_line,
			       "[device:%s] bus: '%s' is a bus of protocol %s, not %s", d->name,
			       dt->bus_name, p->drivers[bt->b->protocol].name,
			       p->drivers[d->protocol].name);
			return;
		}
		if (!bt->ok)
			return; /* its error is said */
		d->bus = bt->b;
	} else if (sc->bus.size) {
		struct ad_bus *b = arena_alloc(p->arena, sizeof(*b));

		if (!b) {
			p->sys_err = -ENOMEM;
			return;
		}
		b->ext = dt->inline_bus ? dt->inline_bus : new_ext(p, &sc->bus);
		if (!b->ext)
			return;
		b->name = d->name;
		b->implicit = true;
		b->protocol = d->protocol;
		b->origin = d->origin;
		p->ap.seen = dt->bus_seen;
		p->ap.common_seen = dt->seen;
		if (sc->check_bus && sc->check_bus(&p->ap, b))
			return;
		d->bus = b;
		if (arena_push(&p->dm->arena, (void ***)&p->dm->map.buses, &p->dm->map.n_buses, b))
			p->sys_err = -ENOMEM;
	}
	if (!(dt->seen & (1ULL << AD_CD_PUBLISH)))
		d->publish = gw_publish;
	p->ap.seen = dt->ext_seen;
	p->ap.common_seen = dt->seen;
	if (sc->check_device && sc->check_device(&p->ap, d))
		return;
	if (!d->stale_ms)
		d->stale_ms = 3 * d->poll_ms;
	dt->ok = true;
	if (arena_push(&p->dm->arena, (void ***)&p->dm->map.devices, &p->dm->map.n_devices, d))
		p->sys_err = -ENOMEM;
}

/* A point: its device, its keys (common and the adapter's), duplicates, the adapter's check. */
static void resolve_point(struct parse *p, struct pt_tmp *pt, enum ad_publish gw_publish)
{
	struct ad_point *x = pt->p;
	struct dev_tmp *dt = find_dev(p, pt->dev_name);
	const struct ad_schema *sc;
	uint64_t seen = 0, ext_seen = 0;
	unsigned int j;

	enter(p, &pt->s);
	if (!dt) {
		errorf(p, x->origin.line,
		       "[%s]: device '%s' is not defined by any [device:%s] section", pt->s.section,
		       pt->dev_name, pt->dev_name);
		return;
	}
	if (!dt->ok)
		return; /* the device's error is said */
	sc = p->drivers[dt->d->protocol].schema;
	x->device = dt->d;
	x->type = sc->point_type;
	apply_defaults(p, &common_point, x);
	apply_table(p, &pt->s, &common_point, x, &seen);
	x->ext = new_ext(p, &sc->point);
	if (!x->ext)
		return;
	apply_table(p, &pt->s, &sc->point, x->ext, &ext_seen);
	unknown_keys(p, &pt->s, &common_point, &sc->point, NULL);
	for (j = 0; j < dt->d->n_points; j++) {
		if (!strcmp(dt->d->points[j]->name, x->name))
			errorf(p, x->origin.line,
			       "[%s]: duplicate point name (first defined at %s:%u)", pt->s.section,
			       dt->d->points[j]->origin.file, dt->d->points[j]->origin.line);
	}
	if (x->scale == 0.0)
		errorf(p, x->origin.line, "[%s] scale: 0 would lose every value", pt->s.section);
	p->ap.seen = ext_seen;
	p->ap.common_seen = seen;
	if (sc->check_point && sc->check_point(&p->ap, x))
		return;
	if (!(seen & (1ULL << AD_CP_PUBLISH)))
		x->publish = dt->d->publish == AD_PUB_INHERIT ? gw_publish : dt->d->publish;
	x->index = p->dm->map.n_points;
	if (arena_push(&p->dm->arena, (void ***)&dt->d->points, &dt->d->n_points, x) ||
	    arena_push(&p->dm->arena, (void ***)&p->dm->map.points, &p->dm->map.n_points, x))
		p->sys_err = -ENOMEM;
}

/*
 * Every device-map section read, in this order: device keys (they say which
 * adapter owns the rest), buses, devices (bus references, implicit buses),
 * points. Errors keep the file:line of the key or section they are about.
 */
static void resolve(struct parse *p, enum ad_publish gw_publish)
{
	unsigned int i;

	p->arena = &p->dm->arena;
	for (i = 0; i < p->n_devs && !p->sys_err; i++)
		p->devs[i]->ok = device_keys(p, p->devs[i]);
	for (i = 0; i < p->n_buses && !p->sys_err; i++)
		resolve_bus(p, p->buses[i], i);
	for (i = 0; i < p->n_devs && !p->sys_err; i++) {
		if (p->devs[i]->ok) {
			p->devs[i]->ok = false;
			resolve_device(p, p->devs[i], i, gw_publish);
		}
	}
	for (i = 0; i < p->n_pts && !p->sys_err; i++)
		resolve_point(p, p->pts[i], gw_publish);
}

static int load_devices(struct parse *p, const char *pattern, enum ad_publish gw_publish)
{
	glob_t g;
	size_t i;
	int rc;

	if (!pattern || !*pattern)
		return 0;
	if (p->mem) {
		/* In memory: every file but the main one that the pattern matches, in order. */
		for (i = 1; i < p->n_mem && !p->sys_err; i++) {
			if (fnmatch(pattern, p->mem[i].path, FNM_PATHNAME | FNM_PERIOD))
				continue;
			p->arena = &p->dm->arena;
			parse_file(p, p->mem[i].path, false);
		}
		resolve(p, gw_publish);
		return p->sys_err;
	}
	rc = glob(pattern, 0, NULL, &g);
	if (rc == GLOB_NOMATCH)
		return 0;
	if (rc) {
		p->n_errors++;
		return -EIO;
	}
	for (i = 0; i < g.gl_pathc && !p->sys_err; i++) {
		p->arena = &p->dm->arena;
		parse_file(p, g.gl_pathv[i], false);
	}
	globfree(&g);
	resolve(p, gw_publish);
	return p->sys_err;
}

/* Replaces every "{name}" in @tmpl with @val. */
static char *subst(struct gw_arena_chunk **a, const char *tmpl, const char *name, const char *val)
{
	size_t nl = strlen(name), vl = strlen(val), n = 0, cap;
	const char *s;
	char *out, *o;

	if (!tmpl)
		return NULL;
	for (s = tmpl; (s = strstr(s, name)); s += nl)
		n++;
	cap = strlen(tmpl) + n * vl + 1;
	out = arena_alloc(a, cap);
	if (!out)
		return NULL;
	for (o = out, s = tmpl; *s;) {
		if (!strncmp(s, name, nl)) {
			memcpy(o, val, vl);
			o += vl;
			s += nl;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

static void default_id(char *buf, size_t n)
{
	char host[256] = "fieldmq";
	size_t i, o = 0;

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i] && o + 1 < n; i++) {
		char c = host[i];

		if (c == '.')
			break;
		buf[o++] = id_chars_ok((char[]){ c, 0 }, false) ? c : '_';
	}
	buf[o] = '\0';
	if (!o)
		snprintf(buf, n, "fieldmq");
}

/* ------------------------------------------------------------ public API */

static void parse_init(struct parse *p, const struct ad_driver *drivers, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->ap.ops = &ap_ops;
	p->drivers = drivers;
	p->err = err;
	p->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
}

/*
 * The [broker] listen entries take [broker]'s TLS and WebSocket keys; then
 * every listener must have what its kind needs. Errors point at [broker] or
 * at the [listener:NAME] line.
 */
static void listeners_finish(struct parse *p, struct brk_config *bc)
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
			errorf(p, line, "%s url: required", what);
			continue;
		}
		if (brk_listen_parse(l->url, &kind, &ss))
			continue; /* said where it was set */
		if ((kind == BRK_TR_MQTTS || kind == BRK_TR_WSS) &&
		    (!t->cert_file || !*t->cert_file || !t->key_file || !*t->key_file))
			errorf(p, line, "%s: a TLS listener needs cert_file and key_file", what);
		if (t->require_certificate && (!t->ca_file || !*t->ca_file))
			errorf(p, line, "%s: require_certificate = yes needs ca_file", what);
		if (t->use_identity_as_username && !t->require_certificate)
			errorf(p, line,
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
static void auth_finish(struct parse *p, struct gw_config *cfg)
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
		errorf(p, l->name ? p->listener_line[i] : p->sect_line[S_BROKER],
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
		errorf(p, p->sect_line[S_MQTTSN],
		       "[mqttsn] listen = %s is not loopback: allow_from = CIDR, ... is required "
		       "(the networks whose devices may send)",
		       cfg->mqttsn.listen);
}

int gw_config_load(const char *path, struct gw_config *cfg, char *err, size_t errlen)
{
	return gw_config_load_drivers(path, gw_drivers, cfg, err, errlen);
}

/* gw_config_load_drivers, with the files from @mem (@n_mem of them) when @mem is set. */
static int config_load(const char *path, const struct ad_driver *drivers,
		       const struct gw_config_file *mem, size_t n_mem, struct gw_config *cfg,
		       char *err, size_t errlen)
{
	struct parse p;
	char id[64];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	parse_init(&p, drivers, err, errlen);
	p.mem = mem;
	p.n_mem = n_mem;
	cfg->drivers = drivers;
	cfg->devmap = gw_calloc(1, sizeof(*cfg->devmap));
	if (!cfg->devmap)
		return -ENOMEM;
	p.cfg = cfg;
	p.dm = cfg->devmap;
	p.arena = &cfg->arena;
	cfg->path = arena_strdup(&cfg->arena, path);

	rc = parse_file(&p, path, true);
	if (rc == -ENOENT || rc == -EACCES || rc == -ENOMEM)
		return rc;
	if (!cfg->gateway.id) {
		default_id(id, sizeof(id));
		cfg->gateway.id = arena_strdup(&cfg->arena, id);
	}
	cfg->gateway.topic_prefix =
		subst(&cfg->arena, cfg->gateway.topic_prefix, "{id}", cfg->gateway.id);
	cfg->uplink.client_id = subst(&cfg->arena, cfg->uplink.client_id, "{id}", cfg->gateway.id);
	/* {data_dir} is already resolved; any other relative path is the main file's. */
	if (strncmp(cfg->store.path, "{data_dir}", 10))
		cfg->store.path = resolve_path(&p, cfg->store.path);
	cfg->store.path = subst(&cfg->arena, cfg->store.path, "{data_dir}", cfg->gateway.data_dir);
	if (cfg->uplink.enabled && !cfg->uplink.url)
		errorf(&p, p.sect_line[S_UPLINK], "[uplink] url: required when enabled = yes");
	if (cfg->uplink.reconnect_max_ms < cfg->uplink.reconnect_min_ms)
		errorf(&p, p.sect_line[S_UPLINK],
		       "[uplink] reconnect_max: must not be less than reconnect_min");
	if (!topic_ok(cfg->gateway.topic_prefix))
		errorf(&p, p.sect_line[S_GATEWAY],
		       "[gateway] topic_prefix: '%s': expected a topic without '+' or '#'",
		       cfg->gateway.topic_prefix);
	listeners_finish(&p, &cfg->broker);
	auth_finish(&p, cfg);
	rc = load_devices(&p, cfg->gateway.devices, cfg->gateway.publish);
	arena_free(p.tmp);
	if (rc)
		return rc;
	return p.n_errors ? -EINVAL : 0;
}

int gw_config_load_drivers(const char *path, const struct ad_driver *drivers, struct gw_config *cfg,
			   char *err, size_t errlen)
{
	return config_load(path, drivers, NULL, 0, cfg, err, errlen);
}

int gw_config_load_mem(const struct gw_config_file *files, size_t n, struct gw_config *cfg,
		       char *err, size_t errlen)
{
	if (!n) {
		memset(cfg, 0, sizeof(*cfg));
		return -EINVAL;
	}
	return config_load(files[0].path, gw_drivers, files, n, cfg, err, errlen);
}

int gw_devmap_load(const struct gw_config *cfg, struct gw_devmap **out, char *err, size_t errlen)
{
	struct gw_devmap *dm;
	struct parse p;
	int rc;

	*out = NULL;
	parse_init(&p, cfg->drivers ? cfg->drivers : gw_drivers, err, errlen);
	dm = gw_calloc(1, sizeof(*dm));
	if (!dm)
		return -ENOMEM;
	p.dm = dm;
	p.arena = &dm->arena;
	rc = load_devices(&p, cfg->gateway.devices, cfg->gateway.publish);
	arena_free(p.tmp);
	if (!rc && p.n_errors)
		rc = -EINVAL;
	if (rc) {
		gw_devmap_free(dm);
		return rc;
	}
	*out = dm;
	return 0;
}

void gw_devmap_free(struct gw_devmap *dm)
{
	if (!dm)
		return;
	arena_free(dm->arena);
	gw_free(dm);
}

void gw_config_free(struct gw_config *cfg)
{
	brk_acl_free(cfg->broker.acl);
	brk_passwd_free(cfg->broker.passwd);
	gw_devmap_free(cfg->devmap);
	arena_free(cfg->arena);
	memset(cfg, 0, sizeof(*cfg));
}

struct ad_device *gw_devmap_device(const struct gw_devmap *dm, struct gw_slice name)
{
	unsigned int i;

	for (i = 0; i < dm->map.n_devices; i++)
		if (gw_slice_eq_cstr(name, dm->map.devices[i]->name))
			return dm->map.devices[i];
	return NULL;
}

struct ad_point *gw_devmap_point(const struct ad_device *dev, struct gw_slice name)
{
	unsigned int i;

	for (i = 0; i < dev->n_points; i++)
		if (gw_slice_eq_cstr(name, dev->points[i]->name))
			return dev->points[i];
	return NULL;
}

/* ------------------------------------------------ the effective configuration */

static uint64_t get_int(const void *src, unsigned char size)
{
	switch (size) {
	case 1:
		return *(const uint8_t *)src;
	case 2:
		return *(const uint16_t *)src;
	case 4:
		return *(const uint32_t *)src;
	default:
		return *(const uint64_t *)src;
	}
}

/* A duration in ms as it would be written: the largest unit that divides it. */
static void fmt_duration(uint64_t ms, char *buf, size_t n)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(units); i++) {
		if (ms && ms % units[i].ms == 0) {
			snprintf(buf, n, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64 "ms", ms);
}

static void fmt_size(uint64_t v, char *buf, size_t n)
{
	static const char units[] = "GMK";
	unsigned int i;

	for (i = 0; i < 3; i++) {
		uint64_t u = 1ULL << (10 * (3 - i));

		if (v && v % u == 0) {
			snprintf(buf, n, "%" PRIu64 "%c", v / u, units[i]);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64, v);
}

/* The shortest text that reads back as @d. */
static void fmt_double(double d, char *buf, size_t n)
{
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/*
 * Writes one key of @obj as "key = value" to @f; a key without a value
 * (an absent string, a secret, a custom key without a printer) is written
 * as a comment, so the output still reads as an INI file.
 */
static void print_key(FILE *f, const struct ad_driver *drivers, const void *obj,
		      const struct ad_key *k)
{
	const void *src = (const char *)obj + k->off;
	char buf[2048];
	unsigned int i;
	uint64_t v;

	buf[0] = '\0';
	if (k->flag & AD_KF_SECRET) {
		if (k->type == K_STR && *(char *const *)src)
			fprintf(f, "; %s = (set, not shown)\n", k->name);
		return;
	}
	switch (k->type) {
	case K_STR:
	case K_PATH:
		if (!*(char *const *)src) {
			fprintf(f, "; %s = (none)\n", k->name);
			return;
		}
		snprintf(buf, sizeof(buf), "%s", *(char *const *)src);
		break;
	case K_BOOL:
		snprintf(buf, sizeof(buf), "%s", *(const bool *)src ? "yes" : "no");
		break;
	case K_DUR:
		fmt_duration(get_int(src, k->size), buf, sizeof(buf));
		break;
	case K_SIZE:
		fmt_size(get_int(src, k->size), buf, sizeof(buf));
		break;
	case K_INT:
		v = get_int(src, k->size);
		if (!v && (k->flag & AD_KF_ZERO_UNSET)) {
			fprintf(f, "; %s = (none)\n", k->name);
			return;
		}
		if (k->min < 0 && k->size == 4)
			snprintf(buf, sizeof(buf), "%d", (int)(int32_t)v); /* -1: no limit */
		else
			snprintf(buf, sizeof(buf), "%" PRIu64, v);
		break;
	case K_DOUBLE:
		fmt_double(*(const double *)src, buf, sizeof(buf));
		break;
	case K_ENUM:
		v = get_int(src, k->size);
		snprintf(buf, sizeof(buf), "?");
		for (i = 0; k->enums[i]; i++) {
			if ((uint64_t)(k->enum_vals ? k->enum_vals[i] : (int)i + k->enum_base) ==
			    v) {
				snprintf(buf, sizeof(buf), "%s", k->enums[i]);
				break;
			}
		}
		break;
	case K_CUSTOM:
		if (k->fn == k_protocol) {
			v = *(const enum ad_protocol *)src;
			snprintf(buf, sizeof(buf), "%s",
				 v < __AD_PROTO_MAX && drivers[v].name ? drivers[v].name : "?");
		} else if (k->show) {
			k->show(obj, k, buf, sizeof(buf));
			if (!buf[0] && (k->flag & F_KEEP))
				return; /* e.g. no bus = NAME */
		} else {
			fprintf(f, "; %s = (not shown)\n", k->name);
			return;
		}
		break;
	}
	fprintf(f, "%s = %s\n", k->name, buf);
}

static void print_keys(FILE *f, const struct ad_driver *drivers, const struct ad_keys *t,
		       const void *obj)
{
	unsigned int i;

	for (i = 0; obj && i < t->n; i++)
		if (t->rows[i].name)
			print_key(f, drivers, obj, &t->rows[i]);
}

void gw_config_print(const struct gw_config *cfg, FILE *f)
{
	const struct ad_driver *drivers = cfg->drivers ? cfg->drivers : gw_drivers;
	const struct ad_map *map = &cfg->devmap->map;
	unsigned int i;

	fprintf(f, "; %s: the effective configuration (defaults filled in)\n", cfg->path);
	for (i = 0; i < GW_ARRAY_SIZE(main_sects); i++) {
		fprintf(f, "\n[%s]\n", main_sects[i].name);
		print_keys(f, drivers, &main_sects[i].keys, (const char *)cfg + main_sects[i].off);
	}
	for (i = 0; i < cfg->broker.n_listen; i++) {
		const struct brk_listener_cfg *l = &cfg->broker.listen[i];
		const struct ad_keys lk = { listener_keys, __KL_MAX, 0 };

		if (!l->name)
			continue;
		fprintf(f, "\n[listener:%s]\n", l->name);
		print_keys(f, drivers, &lk, l);
	}
	for (i = 0; i < cfg->mqttsn.n_predefined; i++)
		fprintf(f, "%s%u = %s\n", i ? "" : "\n[mqttsn.predefined]\n",
			cfg->mqttsn.predefined[i].id, cfg->mqttsn.predefined[i].topic);
	fprintf(f,
		"\n; device maps (%s): %u devices, %u points; effective values (inherited,\n"
		"; protocol addresses after address_base)\n",
		cfg->gateway.devices ? cfg->gateway.devices : "", map->n_devices, map->n_points);
	for (i = 0; i < map->n_buses; i++) {
		const struct ad_bus *b = map->buses[i];
		const struct ad_schema *sc = drivers[b->protocol].schema;

		if (b->implicit || !sc)
			continue;
		fprintf(f, "\n[bus:%s]\n", b->name);
		print_keys(f, drivers, &common_bus, b);
		print_keys(f, drivers, &sc->bus, b->ext);
	}
	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *d = map->devices[i];
		const struct ad_schema *sc = drivers[d->protocol].schema;
		unsigned int j;

		if (!sc)
			continue;
		fprintf(f, "\n[device:%s]\n", d->name);
		print_keys(f, drivers, &common_device, d);
		print_keys(f, drivers, &sc->device, d->ext);
		if (d->bus && d->bus->implicit)
			print_keys(f, drivers, &sc->bus, d->bus->ext);
		for (j = 0; j < d->n_points; j++) {
			const struct ad_point *pt = d->points[j];

			fprintf(f, "\n[point:%s/%s]\n", d->name, pt->name);
			print_keys(f, drivers, &common_point, pt);
			print_keys(f, drivers, &sc->point, pt->ext);
		}
	}
}
