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
#include <errno.h>
#include <glob.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
	S_BUS,
	S_DEVICE,
	S_POINT,
	S_BAD, /* unknown or malformed: its keys are skipped (one error said it) */
	__S_MAX,
};

/* A device while the files are read: the bus is resolved by name at the end. */
struct dev_tmp {
	struct ad_device d;
	char *bus_name;
	unsigned int bus_line;
	struct ad_bus inline_bus;
	bool has_inline;
	bool bo_set, pub_set;
	uint64_t seen;
};

struct pt_tmp {
	struct ad_point p;
	char *dev_name;
	bool bo_set, pub_set;
	bool has_bit, has_length;
	uint64_t seen;
};

struct bus_tmp {
	struct ad_bus b;
	uint64_t seen;
};

struct parse {
	struct gw_config *cfg; /* NULL when loading only a device map */
	struct gw_devmap *dm;
	struct gw_arena_chunk **arena; /* where the current file's objects go */
	bool main_file;
	const char *file;
	char *dir;
	unsigned int line;
	enum sect kind;
	char section[256];
	void *obj; /* struct dev_tmp / pt_tmp / bus_tmp, or the config section */
	uint64_t seen_global[__S_MAX];
	unsigned int sect_line[__S_MAX];
	FILE *f;
	/* every dev_tmp / pt_tmp across files */
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
};

static void errorf(struct parse *p, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void errorf(struct parse *p, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->n_errors++;
	if (!p->err || p->errpos + 1 >= p->errlen)
		return;
	n = snprintf(p->err + p->errpos, p->errlen - p->errpos, "%s:%u: ", p->file, line);
	if (n > 0)
		p->errpos = GW_MIN(p->errpos + (size_t)n, p->errlen - 1);
	va_start(ap, fmt);
	n = vsnprintf(p->err + p->errpos, p->errlen - p->errpos, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->errpos = GW_MIN(p->errpos + (size_t)n, p->errlen - 1);
	if (p->errpos + 1 < p->errlen) {
		p->err[p->errpos++] = '\n';
		p->err[p->errpos] = '\0';
	}
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

/* ------------------------------------------------------------- key tables */

enum kt {
	K_STR,
	K_PATH,
	K_BOOL,
	K_DUR,
	K_SIZE,
	K_INT,
	K_DOUBLE,
	K_ENUM,
	K_CUSTOM,
};

struct key;
typedef int (*key_fn)(struct parse *p, void *base, const struct key *k, const char *val);

struct key {
	const char *name;
	enum kt type;
	size_t off;
	unsigned char size; /* K_INT / K_DUR / K_SIZE target width: 1, 2, 4, 8 */
	long long min, max;
	const char *const *enums; /* NULL-terminated; index is the value */
	const int *enum_vals;	  /* optional: values for the names, else the index */
	key_fn fn;
	const char *expect;
	unsigned int flag;	 /* F_* side effects, see below */
	unsigned char enum_base; /* value of enums[0] when enum_vals is NULL */
};

#define F_INLINE_BUS 1 /* a device key that belongs to its inline bus */
#define F_BO 2	       /* sets bo_set */
#define F_PUB 4	       /* sets pub_set */
#define F_BIT 8
#define F_LENGTH 16
#define F_NONNEG 32

static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };
static const int log_level_vals[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
static const char *const log_targets[] = { "stderr", "syslog", NULL };
static const char *const payloads[] = { "json", "value", NULL };
static const char *const publishes[] = { "inherit", "on_change", "every_poll",
					 "on_change_or_period", NULL };
static const char *const overflows[] = { "drop_oldest", "drop_newest", NULL };
static const char *const upqueues[] = { "always", "offline", "off", NULL };
static const char *const protocols_up[] = { "3.1.1", "5", NULL };
static const int protocols_up_vals[] = { 4, 5 };
static const char *const ad_protocols[] = { "modbus", "coap", "serial", NULL };
static const char *const bus_types[] = { "rtu", "tcp", "rtu_over_tcp", NULL };
static const char *const parities[] = { "N", "E", "O", NULL };
static const int parity_vals[] = { 'N', 'E', 'O' };
static const char *const byte_orders[] = { "inherit", "ABCD", "BADC", "CDAB", "DCBA", NULL };
static const char *const areas[] = { "coil", "discrete", "input", "holding", NULL };
static const char *const point_types[] = { "bool",    "bit",	 "int16",  "uint16",
					   "int32",   "uint32",	 "int64",  "uint64",
					   "float32", "float64", "string", NULL };
static const char *const accesses[] = { "r", "rw", NULL };
static const char *const write_multiples[] = { "auto", "always", NULL };

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

static int k_listen(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct brk_config *bc = base;
	char buf[1024], *save = NULL, *tok;

	(void)k;
	snprintf(buf, sizeof(buf), "%s", val);
	bc->n_listen = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *t = trim(tok);

		if (strstr(t, "://")) {
			errorf(p, p->line,
			       "[broker] listen: '%s': only plain TCP listeners (HOST:PORT) are supported in this version",
			       t);
			return -EINVAL;
		}
		if (!hostport_ok(t, true)) {
			errorf(p, p->line,
			       "[broker] listen: '%s': expected HOST:PORT or [IPV6]:PORT", t);
			return -EINVAL;
		}
		if (bc->n_listen == BRK_MAX_LISTENERS) {
			errorf(p, p->line, "[broker] listen: at most %d listeners",
			       BRK_MAX_LISTENERS);
			return -EINVAL;
		}
		bc->listen[bc->n_listen++] = arena_strdup(p->arena, t);
	}
	if (!bc->n_listen) {
		errorf(p, p->line, "[broker] listen: expected at least one HOST:PORT");
		return -EINVAL;
	}
	return 0;
}

/* The most an acl_file may hold: it is read whole into memory. */
#define ACL_FILE_MAX (4u << 20)

/*
 * acl_file = PATH: read the file (relative to the file that names it) and
 * parse it with brk_acl_parse(); a bad line is reported with the acl file's
 * own name and line. Empty: no ACL.
 */
static int k_acl_file(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct brk_config *bc = base;
	char *path, *text = NULL, msg[256];
	const char *main_file = p->file;
	unsigned int line;
	size_t len = 0;
	FILE *f = NULL;
	long size;
	int rc = -EINVAL;

	(void)k;
	brk_acl_free(bc->acl);
	bc->acl = NULL;
	if (!*val)
		return 0;
	path = resolve_path(p, val);
	if (!path)
		return -ENOMEM;
	f = fopen(path, "r");
	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		errorf(p, p->line, "[broker] acl_file: '%s': cannot read: %s", path,
		       strerror(errno));
		goto out;
	}
	if ((unsigned long)size > ACL_FILE_MAX) {
		errorf(p, p->line, "[broker] acl_file: '%s': larger than %u bytes", path,
		       ACL_FILE_MAX);
		goto out;
	}
	text = gw_malloc((size_t)size + 1);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	len = fread(text, 1, (size_t)size, f);
	if (ferror(f)) {
		errorf(p, p->line, "[broker] acl_file: '%s': read error", path);
		goto out;
	}
	rc = brk_acl_parse(text, len, &bc->acl, &line, msg, sizeof(msg));
	if (rc == -EINVAL) {
		/* The acl file's own name and line, as for the device maps. */
		p->file = path;
		errorf(p, line, "[broker] acl_file: %s", msg);
		p->file = main_file;
	}
out:
	if (rc == -ENOMEM)
		p->sys_err = -ENOMEM;
	gw_free(text);
	if (f)
		fclose(f);
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

static int k_forward(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct gw_uplink_config *u = base;

	return parse_filters(p, k->name, val, u->forward, &u->n_forward, 1);
}

static int k_subscribe(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct gw_uplink_config *u = base;

	return parse_filters(p, k->name, val, u->subscribe, &u->n_subscribe, 1);
}

static int k_url(struct parse *p, void *base, const struct key *k, const char *val)
{
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

static int k_id(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct gw_gateway_config *g = base;

	(void)k;
	if (!id_chars_ok(val, false)) {
		errorf(p, p->line, "[gateway] id: '%s': expected letters, digits, '_' or '-'", val);
		return -EINVAL;
	}
	g->id = arena_strdup(p->arena, val);
	return 0;
}

static int k_multicast(struct parse *p, void *base, const struct key *k, const char *val)
{
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

static int k_hostport(struct parse *p, void *base, const struct key *k, const char *val)
{
	if (!hostport_ok(val, true)) {
		errorf(p, p->line, "[%s] %s: '%s': expected HOST:PORT or [IPV6]:PORT", p->section,
		       k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

static int k_topic(struct parse *p, void *base, const struct key *k, const char *val)
{
	if (*val && !topic_ok(val) && !strstr(val, "{id}")) {
		errorf(p, p->line, "[%s] %s: '%s': expected a topic without '+' or '#'", p->section,
		       k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = arena_strdup(p->arena, val);
	return 0;
}

#define GK(f) offsetof(struct gw_gateway_config, f)
static const struct key gateway_keys[] = {
	{ .name = "id", .type = K_CUSTOM, .off = GK(id), .fn = k_id },
	{ .name = "topic_prefix", .type = K_CUSTOM, .off = GK(topic_prefix), .fn = k_topic },
	{ .name = "data_dir", .type = K_PATH, .off = GK(data_dir) },
	{ .name = "devices", .type = K_PATH, .off = GK(devices) },
	{ .name = "log_level",
	  .type = K_ENUM,
	  .off = GK(log_level),
	  .size = 4,
	  .enums = log_levels,
	  .enum_vals = log_level_vals },
	{ .name = "log_target",
	  .type = K_ENUM,
	  .off = GK(log_target),
	  .size = 4,
	  .enums = log_targets },
	{ .name = "payload", .type = K_ENUM, .off = GK(payload), .size = 4, .enums = payloads },
	{ .name = "publish",
	  .type = K_ENUM,
	  .off = GK(publish),
	  .size = 4,
	  .enums = publishes + 1,
	  .enum_base = 1 },
	{ .name = "heartbeat",
	  .type = K_DUR,
	  .off = GK(heartbeat_ms),
	  .size = 8,
	  .min = 1,
	  .max = 0 },
	{ .name = NULL },
};

#define BK(f) offsetof(struct brk_config, f)
static const struct key broker_keys[] = {
	{ .name = "listen", .type = K_CUSTOM, .off = 0, .fn = k_listen },
	{ .name = "allow_anonymous", .type = K_BOOL, .off = BK(allow_anonymous) },
	{ .name = "max_connections",
	  .type = K_INT,
	  .off = BK(max_connections),
	  .size = 4,
	  .min = 1,
	  .max = 1000000 },
	{ .name = "max_packet_size",
	  .type = K_SIZE,
	  .off = BK(max_packet_size),
	  .size = 4,
	  .min = 16,
	  .max = 268435460 },
	{ .name = "max_inflight",
	  .type = K_INT,
	  .off = BK(max_inflight),
	  .size = 2,
	  .min = 1,
	  .max = 65535 },
	{ .name = "max_queued_messages",
	  .type = K_INT,
	  .off = BK(max_queued_messages),
	  .size = 4,
	  .min = 0,
	  .max = 100000000 },
	{ .name = "max_queued_bytes",
	  .type = K_SIZE,
	  .off = BK(max_queued_bytes),
	  .size = 8,
	  .min = 0,
	  .max = 0 },
	{ .name = "max_keepalive",
	  .type = K_INT,
	  .off = BK(max_keepalive),
	  .size = 2,
	  .min = 0,
	  .max = 65535 },
	{ .name = "max_topic_alias",
	  .type = K_INT,
	  .off = BK(max_topic_alias),
	  .size = 2,
	  .min = 0,
	  .max = 65535 },
	{ .name = "retain_available", .type = K_BOOL, .off = BK(retain_available) },
	{ .name = "sys_interval",
	  .type = K_DUR,
	  .off = BK(sys_interval_ms),
	  .size = 8,
	  .min = 0,
	  .max = 0 },
	{ .name = "persist", .type = K_BOOL, .off = BK(persist) },
	{ .name = "acl_file", .type = K_CUSTOM, .off = 0, .fn = k_acl_file },
	{ .name = NULL },
};

#define SK(f) offsetof(struct gw_store_config, f)
static const struct key store_keys[] = {
	{ .name = "path", .type = K_STR, .off = SK(path) },
	{ .name = "queue_max_messages",
	  .type = K_INT,
	  .off = SK(queue_max_messages),
	  .size = 8,
	  .min = 1,
	  .max = 1000000000LL },
	{ .name = "queue_max_bytes",
	  .type = K_SIZE,
	  .off = SK(queue_max_bytes),
	  .size = 8,
	  .min = 1024,
	  .max = 0 },
	{ .name = "overflow", .type = K_ENUM, .off = SK(overflow), .size = 4, .enums = overflows },
	{ .name = "sync_interval",
	  .type = K_DUR,
	  .off = SK(sync_interval_ms),
	  .size = 8,
	  .min = 1,
	  .max = 60000 },
	{ .name = NULL },
};

#define UK(f) offsetof(struct gw_uplink_config, f)
static const struct key uplink_keys[] = {
	{ .name = "enabled", .type = K_BOOL, .off = UK(enabled) },
	{ .name = "url", .type = K_CUSTOM, .off = 0, .fn = k_url },
	{ .name = "client_id", .type = K_STR, .off = UK(client_id) },
	{ .name = "username", .type = K_STR, .off = UK(username) },
	{ .name = "password", .type = K_STR, .off = UK(password) },
	{ .name = "ca_file", .type = K_PATH, .off = UK(ca_file) },
	{ .name = "cert_file", .type = K_PATH, .off = UK(cert_file) },
	{ .name = "key_file", .type = K_PATH, .off = UK(key_file) },
	{ .name = "tls_insecure", .type = K_BOOL, .off = UK(tls_insecure) },
	{ .name = "protocol",
	  .type = K_ENUM,
	  .off = UK(protocol),
	  .size = 1,
	  .enums = protocols_up,
	  .enum_vals = protocols_up_vals },
	{ .name = "keepalive",
	  .type = K_DUR,
	  .off = UK(keepalive_ms),
	  .size = 8,
	  .min = 0,
	  .max = 65535000 },
	{ .name = "session_expiry",
	  .type = K_DUR,
	  .off = UK(session_expiry_ms),
	  .size = 8,
	  .min = 0,
	  .max = 4294967295000LL },
	{ .name = "forward", .type = K_CUSTOM, .off = 0, .fn = k_forward },
	{ .name = "remote_prefix", .type = K_CUSTOM, .off = UK(remote_prefix), .fn = k_topic },
	{ .name = "subscribe", .type = K_CUSTOM, .off = 0, .fn = k_subscribe },
	{ .name = "local_prefix", .type = K_CUSTOM, .off = UK(local_prefix), .fn = k_topic },
	{ .name = "queue", .type = K_ENUM, .off = UK(queue), .size = 4, .enums = upqueues },
	{ .name = "queue_qos0", .type = K_BOOL, .off = UK(queue_qos0) },
	{ .name = "max_inflight",
	  .type = K_INT,
	  .off = UK(max_inflight),
	  .size = 2,
	  .min = 1,
	  .max = 65535 },
	{ .name = "drain_rate",
	  .type = K_INT,
	  .off = UK(drain_rate),
	  .size = 4,
	  .min = 0,
	  .max = 10000000 },
	{ .name = "reconnect_min",
	  .type = K_DUR,
	  .off = UK(reconnect_min_ms),
	  .size = 8,
	  .min = 10,
	  .max = 0 },
	{ .name = "reconnect_max",
	  .type = K_DUR,
	  .off = UK(reconnect_max_ms),
	  .size = 8,
	  .min = 10,
	  .max = 0 },
	{ .name = NULL },
};

#define MK(f) offsetof(struct gw_mqttsn_config, f)
static const struct key mqttsn_keys[] = {
	{ .name = "enabled", .type = K_BOOL, .off = MK(enabled) },
	{ .name = "listen", .type = K_CUSTOM, .off = MK(listen), .fn = k_hostport },
	{ .name = "gateway_id",
	  .type = K_INT,
	  .off = MK(gateway_id),
	  .size = 1,
	  .min = 0,
	  .max = 255 },
	{ .name = "advertise_interval",
	  .type = K_DUR,
	  .off = MK(advertise_interval_ms),
	  .size = 8,
	  .min = 0,
	  .max = 0 },
	{ .name = "multicast", .type = K_CUSTOM, .off = 0, .fn = k_multicast },
	{ .name = "max_clients",
	  .type = K_INT,
	  .off = MK(max_clients),
	  .size = 4,
	  .min = 1,
	  .max = 1000000 },
	{ .name = "retry_interval",
	  .type = K_DUR,
	  .off = MK(retry_interval_ms),
	  .size = 8,
	  .min = 100,
	  .max = 0 },
	{ .name = "mountpoint", .type = K_CUSTOM, .off = MK(mountpoint), .fn = k_topic },
	{ .name = "max_queued",
	  .type = K_INT,
	  .off = MK(max_queued),
	  .size = 4,
	  .min = 1,
	  .max = 100000 },
	{ .name = "max_retries",
	  .type = K_INT,
	  .off = MK(max_retries),
	  .size = 4,
	  .min = 1,
	  .max = 100 },
	{ .name = NULL },
};

/* The transport keys of a bus, at @base (struct ad_bus inside @type). */
#define BUS_KEYS(T, B, fl)                                                                     \
	{ .name = "type",                                                                      \
	  .type = K_ENUM,                                                                      \
	  .off = offsetof(T, B type),                                                          \
	  .size = 4,                                                                           \
	  .enums = bus_types,                                                                  \
	  .flag = fl },                                                                        \
		{ .name = "device", .type = K_STR, .off = offsetof(T, B device), .flag = fl }, \
		{ .name = "baud",                                                              \
		  .type = K_INT,                                                               \
		  .off = offsetof(T, B baud),                                                  \
		  .size = 4,                                                                   \
		  .min = 50,                                                                   \
		  .max = 4000000,                                                              \
		  .flag = fl },                                                                \
		{ .name = "parity",                                                            \
		  .type = K_ENUM,                                                              \
		  .off = offsetof(T, B parity),                                                \
		  .size = 1,                                                                   \
		  .enums = parities,                                                           \
		  .enum_vals = parity_vals,                                                    \
		  .flag = fl },                                                                \
		{ .name = "data_bits",                                                         \
		  .type = K_INT,                                                               \
		  .off = offsetof(T, B data_bits),                                             \
		  .size = 1,                                                                   \
		  .min = 5,                                                                    \
		  .max = 8,                                                                    \
		  .flag = fl },                                                                \
		{ .name = "stop_bits",                                                         \
		  .type = K_INT,                                                               \
		  .off = offsetof(T, B stop_bits),                                             \
		  .size = 1,                                                                   \
		  .min = 1,                                                                    \
		  .max = 2,                                                                    \
		  .flag = fl },                                                                \
		{ .name = "rs485", .type = K_BOOL, .off = offsetof(T, B rs485), .flag = fl },  \
		{ .name = "host", .type = K_STR, .off = offsetof(T, B host), .flag = fl },     \
		{ .name = "port",                                                              \
		  .type = K_INT,                                                               \
		  .off = offsetof(T, B port),                                                  \
		  .size = 2,                                                                   \
		  .min = 1,                                                                    \
		  .max = 65535,                                                                \
		  .flag = fl },                                                                \
		{ .name = "timeout",                                                           \
		  .type = K_DUR,                                                               \
		  .off = offsetof(T, B timeout_ms),                                            \
		  .size = 4,                                                                   \
		  .min = 1,                                                                    \
		  .max = 600000,                                                               \
		  .flag = fl },                                                                \
	{                                                                                      \
		.name = "turnaround", .type = K_DUR, .off = offsetof(T, B turnaround_ms),      \
		.size = 4, .min = 0, .max = 60000, .flag = fl                                  \
	}

static const struct key bus_keys[] = {
	BUS_KEYS(struct bus_tmp, b., 0),
	{ .name = NULL },
};

#define DK(f) offsetof(struct dev_tmp, d.f)
static int k_busref(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct dev_tmp *dt = base;

	(void)k;
	if (!id_chars_ok(val, true)) {
		errorf(p, p->line, "[%s] bus: '%s': expected the name of a [bus:NAME] section",
		       p->section, val);
		return -EINVAL;
	}
	dt->bus_name = arena_strdup(p->arena, val);
	dt->bus_line = p->line;
	return 0;
}

static const struct key device_keys[] = {
	{ .name = "protocol",
	  .type = K_ENUM,
	  .off = DK(protocol),
	  .size = 4,
	  .enums = ad_protocols },
	{ .name = "bus", .type = K_CUSTOM, .off = 0, .fn = k_busref },
	{ .name = "unit_id", .type = K_INT, .off = DK(unit_id), .size = 1, .min = 0, .max = 255 },
	{ .name = "poll",
	  .type = K_DUR,
	  .off = DK(poll_ms),
	  .size = 4,
	  .min = 10,
	  .max = 86400000 },
	{ .name = "byte_order",
	  .type = K_ENUM,
	  .off = DK(byte_order),
	  .size = 4,
	  .enums = byte_orders + 1,
	  .flag = F_BO,
	  .enum_base = 1 },
	{ .name = "address_base",
	  .type = K_INT,
	  .off = DK(address_base),
	  .size = 1,
	  .min = 0,
	  .max = 1 },
	{ .name = "max_regs_per_read",
	  .type = K_INT,
	  .off = DK(max_regs_per_read),
	  .size = 2,
	  .min = 1,
	  .max = 125 },
	{ .name = "max_gap", .type = K_INT, .off = DK(max_gap), .size = 2, .min = 0, .max = 125 },
	{ .name = "one_request_per_point", .type = K_BOOL, .off = DK(one_request_per_point) },
	{ .name = "write_multiple",
	  .type = K_ENUM,
	  .off = DK(write_multiple_always),
	  .size = 1,
	  .enums = write_multiples },
	{ .name = "retries", .type = K_INT, .off = DK(retries), .size = 1, .min = 0, .max = 10 },
	{ .name = "degrade_after",
	  .type = K_INT,
	  .off = DK(degrade_after),
	  .size = 2,
	  .min = 0,
	  .max = 10000 },
	{ .name = "degrade_for",
	  .type = K_DUR,
	  .off = DK(degrade_for_ms),
	  .size = 4,
	  .min = 0,
	  .max = 86400000 },
	{ .name = "publish",
	  .type = K_ENUM,
	  .off = DK(publish),
	  .size = 4,
	  .enums = publishes + 1,
	  .flag = F_PUB,
	  .enum_base = 1 },
	BUS_KEYS(struct dev_tmp, inline_bus., F_INLINE_BUS),
	{ .name = NULL },
};

#define PK(f) offsetof(struct pt_tmp, p.f)
static int k_unit(struct parse *p, void *base, const struct key *k, const char *val)
{
	struct pt_tmp *pt = base;

	(void)k;
	(void)p;
	pt->p.unit = arena_strdup(p->arena, val);
	return 0;
}

static const struct key point_keys[] = {
	{ .name = "area", .type = K_ENUM, .off = PK(area), .size = 4, .enums = areas },
	{ .name = "address", .type = K_INT, .off = PK(address), .size = 2, .min = 0, .max = 65536 },
	{ .name = "type", .type = K_ENUM, .off = PK(type), .size = 4, .enums = point_types },
	{ .name = "byte_order",
	  .type = K_ENUM,
	  .off = PK(byte_order),
	  .size = 4,
	  .enums = byte_orders + 1,
	  .flag = F_BO,
	  .enum_base = 1 },
	{ .name = "bit",
	  .type = K_INT,
	  .off = PK(bit),
	  .size = 1,
	  .min = 0,
	  .max = 15,
	  .flag = F_BIT },
	{ .name = "length",
	  .type = K_INT,
	  .off = PK(length),
	  .size = 2,
	  .min = 1,
	  .max = 123,
	  .flag = F_LENGTH },
	{ .name = "scale", .type = K_DOUBLE, .off = PK(scale) },
	{ .name = "offset", .type = K_DOUBLE, .off = PK(offset) },
	{ .name = "deadband", .type = K_DOUBLE, .off = PK(deadband), .flag = F_NONNEG },
	{ .name = "unit", .type = K_CUSTOM, .off = 0, .fn = k_unit },
	{ .name = "access", .type = K_ENUM, .off = PK(writable), .size = 1, .enums = accesses },
	{ .name = "publish",
	  .type = K_ENUM,
	  .off = PK(publish),
	  .size = 4,
	  .enums = publishes + 1,
	  .flag = F_PUB,
	  .enum_base = 1 },
	{ .name = NULL },
};

/* Expected-value text for an enum key: "a | b | c". */
static void enum_expect(const struct key *k, char *buf, size_t n)
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

static int set_key(struct parse *p, void *base, const struct key *k, const char *val)
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
		return k->fn(p, base, k, val);
	}
	return -EINVAL;
}

/* -------------------------------------------------------------- sections */

static void gateway_defaults(struct gw_gateway_config *g)
{
	g->log_level = LOG_INFO;
	g->log_target = GW_LOG_STDERR;
	g->payload = GW_PAYLOAD_JSON;
	g->publish = AD_PUB_ON_CHANGE;
	g->heartbeat_ms = 5 * 60 * 1000;
}

static void store_defaults(struct gw_store_config *s)
{
	s->queue_max_messages = 1000000;
	s->queue_max_bytes = 256ULL << 20;
	s->overflow = GW_OVERFLOW_DROP_OLDEST;
	s->sync_interval_ms = 100;
}

static void uplink_defaults(struct gw_uplink_config *u)
{
	u->enabled = false;
	u->protocol = 5;
	u->keepalive_ms = 60000;
	u->session_expiry_ms = 86400000;
	u->forward[0].filter = (char *)"fieldmq/#";
	u->forward[0].qos = 1;
	u->n_forward = 1;
	u->queue = GW_UPQ_ALWAYS;
	u->queue_qos0 = true;
	u->max_inflight = 32;
	u->drain_rate = 0;
	u->reconnect_min_ms = 1000;
	u->reconnect_max_ms = 120000;
}

static void mqttsn_defaults(struct gw_mqttsn_config *m)
{
	m->enabled = false;
	m->listen = (char *)"0.0.0.0:1884";
	m->gateway_id = 1;
	m->advertise_interval_ms = 15 * 60 * 1000;
	m->max_clients = 1000;
	m->max_queued = 100;
	m->max_retries = 5;
	m->retry_interval_ms = 10000;
}

static void bus_defaults(struct ad_bus *b)
{
	b->type = AD_BUS_TCP;
	b->baud = 9600;
	b->parity = 'N';
	b->data_bits = 8;
	b->stop_bits = 1;
	b->port = 502;
	b->timeout_ms = 500;
	b->turnaround_ms = 20;
}

static void device_defaults(struct ad_device *d)
{
	d->protocol = AD_PROTO_MODBUS;
	d->unit_id = 1;
	d->poll_ms = 1000;
	d->byte_order = AD_BO_ABCD;
	d->max_regs_per_read = 125;
	d->max_bits_per_read = 2000;
	d->max_gap = 10;
	d->retries = 1;
	d->degrade_after = 3;
	d->degrade_for_ms = 60000;
	d->publish = AD_PUB_INHERIT;
}

static void point_defaults(struct ad_point *pt)
{
	pt->area = AD_AREA_HOLDING;
	pt->type = AD_PT_UINT16;
	pt->byte_order = AD_BO_INHERIT;
	pt->scale = 1.0;
	pt->offset = 0.0;
	pt->publish = AD_PUB_INHERIT;
}

static const struct {
	const char *name;
	enum sect kind;
	bool main_only;
} fixed_sections[] = {
	{ "gateway", S_GATEWAY, true }, { "broker", S_BROKER, true },
	{ "store", S_STORE, true },	{ "uplink", S_UPLINK, true },
	{ "mqttsn", S_MQTTSN, true },	{ "mqttsn.predefined", S_PREDEFINED, true },
};

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
	if (colon && p->main_file) {
		errorf(p, p->line,
		       "[%s]: buses, devices and points belong in the device-map files named by [gateway] devices",
		       name);
		return;
	}
	if (!colon) {
		errorf(p, p->line,
		       "[%s]: unknown section; expected gateway, broker, store, uplink, mqttsn, mqttsn.predefined, bus:NAME, device:NAME or point:DEVICE/NAME",
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
		bt = arena_alloc(p->arena, sizeof(*bt));
		if (!bt || arena_push(p->arena, (void ***)&p->buses, &p->n_buses, bt))
			goto nomem;
		bus_defaults(&bt->b);
		bt->b.type = AD_BUS_RTU;
		bt->b.name = arena_strdup(p->arena, colon + 1);
		bt->b.origin.file = p->file;
		bt->b.origin.line = p->line;
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
		dt = arena_alloc(p->arena, sizeof(*dt));
		if (!dt || arena_push(p->arena, (void ***)&p->devs, &p->n_devs, dt))
			goto nomem;
		device_defaults(&dt->d);
		bus_defaults(&dt->inline_bus);
		dt->d.name = arena_strdup(p->arena, colon + 1);
		dt->d.origin.file = p->file;
		dt->d.origin.line = p->line;
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
		pt = arena_alloc(p->arena, sizeof(*pt));
		if (!pt || arena_push(p->arena, (void ***)&p->pts, &p->n_pts, pt))
			goto nomem;
		point_defaults(&pt->p);
		pt->p.name = arena_strdup(p->arena, slash + 1);
		pt->dev_name = arena_strdup(p->arena, dev);
		pt->p.origin.file = p->file;
		pt->p.origin.line = p->line;
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

static const struct key *find_key(const struct key *tab, const char *name, unsigned int *idx)
{
	unsigned int i;

	for (i = 0; tab[i].name; i++) {
		if (!strcmp(tab[i].name, name)) {
			*idx = i;
			return &tab[i];
		}
	}
	return NULL;
}

static void key_list(const struct key *tab, char *buf, size_t n)
{
	size_t pos = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; tab[i].name && pos + 4 < n; i++) {
		int w = snprintf(buf + pos, n - pos, "%s%s", i ? ", " : "", tab[i].name);

		if (w > 0)
			pos += (size_t)w;
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

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	const struct key *tab = NULL, *k;
	uint64_t *seen = NULL;
	void *base = NULL;
	unsigned int idx;
	char keys[1024];

	(void)section;
	switch (p->kind) {
	case S_NONE:
		errorf(p, p->line, "%s: key outside of any section", name);
		return 1;
	case S_BAD:
		return 1;
	case S_PREDEFINED:
		return handle_predefined(p, name, value);
	case S_GATEWAY:
		tab = gateway_keys;
		base = &p->cfg->gateway;
		break;
	case S_BROKER:
		tab = broker_keys;
		base = &p->cfg->broker;
		break;
	case S_STORE:
		tab = store_keys;
		base = &p->cfg->store;
		break;
	case S_UPLINK:
		tab = uplink_keys;
		base = &p->cfg->uplink;
		break;
	case S_MQTTSN:
		tab = mqttsn_keys;
		base = &p->cfg->mqttsn;
		break;
	case S_BUS:
		tab = bus_keys;
		base = p->obj;
		seen = &((struct bus_tmp *)p->obj)->seen;
		break;
	case S_DEVICE:
		tab = device_keys;
		base = p->obj;
		seen = &((struct dev_tmp *)p->obj)->seen;
		break;
	case S_POINT:
		tab = point_keys;
		base = p->obj;
		seen = &((struct pt_tmp *)p->obj)->seen;
		break;
	default:
		return 1;
	}
	if (!seen)
		seen = &p->seen_global[p->kind];
	k = find_key(tab, name, &idx);
	if (!k) {
		key_list(tab, keys, sizeof(keys));
		errorf(p, p->line, "[%s] %s: unknown key; expected one of: %s", p->section, name,
		       keys);
		return 1;
	}
	if (*seen & (1ULL << idx)) {
		errorf(p, p->line, "[%s] %s: duplicate key", p->section, name);
		return 1;
	}
	*seen |= 1ULL << idx;
	/* An empty value keeps the default ("bit =" in the examples). */
	if (!*value && k->type != K_STR && k->type != K_CUSTOM)
		return 1;
	if (!*value && k->type == K_CUSTOM &&
	    (k->fn == k_listen || k->fn == k_url || k->fn == k_id || k->fn == k_hostport ||
	     k->fn == k_busref))
		return 1;
	if (set_key(p, base, k, value))
		return 1;
	if (p->kind == S_DEVICE) {
		struct dev_tmp *dt = p->obj;

		if (k->flag & F_INLINE_BUS)
			dt->has_inline = true;
		if (k->flag & F_BO)
			dt->bo_set = true;
		if (k->flag & F_PUB)
			dt->pub_set = true;
	} else if (p->kind == S_POINT) {
		struct pt_tmp *pt = p->obj;

		pt->bo_set |= !!(k->flag & F_BO);
		pt->pub_set |= !!(k->flag & F_PUB);
		pt->has_bit |= !!(k->flag & F_BIT);
		pt->has_length |= !!(k->flag & F_LENGTH);
	}
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
	p->f = fopen(path, "r");
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

static struct bus_tmp *find_bus(struct parse *p, const char *name)
{
	unsigned int i;

	for (i = 0; i < p->n_buses; i++)
		if (!strcmp(p->buses[i]->b.name, name))
			return p->buses[i];
	return NULL;
}

static struct dev_tmp *find_dev(struct parse *p, const char *name)
{
	unsigned int i;

	for (i = 0; i < p->n_devs; i++)
		if (!strcmp(p->devs[i]->d.name, name))
			return p->devs[i];
	return NULL;
}

static void check_bus(struct parse *p, struct ad_bus *b, const char *what, const char *file,
		      unsigned int line)
{
	const char *save = p->file;

	p->file = file;
	if ((b->type == AD_BUS_TCP || b->type == AD_BUS_RTU_OVER_TCP) && (!b->host || !*b->host))
		errorf(p, line, "[%s] host: required for type = %s", what, bus_types[b->type]);
	if (b->type == AD_BUS_RTU && (!b->device || !*b->device))
		errorf(p, line, "[%s] device: required for type = rtu (e.g. /dev/ttyUSB0)", what);
	p->file = save;
}

static void resolve(struct parse *p, struct gw_devmap *dm, enum ad_publish gw_publish)
{
	char what[300];
	unsigned int i, j;

	for (i = 0; i < p->n_buses; i++) {
		struct bus_tmp *bt = p->buses[i];

		for (j = 0; j < i; j++) {
			if (!strcmp(p->buses[j]->b.name, bt->b.name)) {
				p->file = bt->b.origin.file;
				errorf(p, bt->b.origin.line,
				       "[bus:%s]: duplicate bus name (first defined at %s:%u)",
				       bt->b.name, p->buses[j]->b.origin.file,
				       p->buses[j]->b.origin.line);
			}
		}
		snprintf(what, sizeof(what), "bus:%s", bt->b.name);
		check_bus(p, &bt->b, what, bt->b.origin.file, bt->b.origin.line);
		arena_push(&dm->arena, (void ***)&dm->map.buses, &dm->map.n_buses, &bt->b);
	}
	for (i = 0; i < p->n_devs; i++) {
		struct dev_tmp *dt = p->devs[i];
		struct ad_device *d = &dt->d;

		p->file = d->origin.file;
		for (j = 0; j < i; j++) {
			if (!strcmp(p->devs[j]->d.name, d->name))
				errorf(p, d->origin.line,
				       "[device:%s]: duplicate device name (first defined at %s:%u)",
				       d->name, p->devs[j]->d.origin.file,
				       p->devs[j]->d.origin.line);
		}
		if (d->protocol != AD_PROTO_MODBUS) {
			errorf(p, d->origin.line,
			       "[device:%s] protocol: '%s' is not available in this version; expected modbus",
			       d->name, ad_protocols[d->protocol]);
			continue;
		}
		if (dt->bus_name) {
			struct bus_tmp *bt = find_bus(p, dt->bus_name);

			if (dt->has_inline)
				errorf(p, d->origin.line,
				       "[device:%s]: give either bus = NAME or inline transport keys (type, host, port, device, ...), not both",
				       d->name);
			if (!bt) {
				errorf(p, dt->bus_line,
				       "[device:%s] bus: '%s': no [bus:%s] section defines it",
				       d->name, dt->bus_name, dt->bus_name);
				continue;
			}
			d->bus = &bt->b;
		} else {
			struct ad_bus *b = &dt->inline_bus;

			if (!(dt->seen & (1ULL << 14)) /* "type" not given */)
				b->type = b->device && !b->host ? AD_BUS_RTU : AD_BUS_TCP;
			if (!b->host && !b->device) {
				errorf(p, d->origin.line,
				       "[device:%s]: no transport; expected bus = NAME, or host = ADDRESS (Modbus TCP), or device = /dev/... (RTU)",
				       d->name);
				continue;
			}
			b->name = d->name;
			b->implicit = true;
			b->origin = d->origin;
			snprintf(what, sizeof(what), "device:%s", d->name);
			check_bus(p, b, what, d->origin.file, d->origin.line);
			d->bus = b;
			arena_push(&dm->arena, (void ***)&dm->map.buses, &dm->map.n_buses, b);
		}
		if (d->bus->type == AD_BUS_RTU && d->unit_id > 247)
			errorf(p, d->origin.line,
			       "[device:%s] unit_id: %u: expected 0 to 247 on an RTU line", d->name,
			       d->unit_id);
		if (!dt->pub_set)
			d->publish = gw_publish;
		arena_push(&dm->arena, (void ***)&dm->map.devices, &dm->map.n_devices, d);
	}
	for (i = 0; i < p->n_pts; i++) {
		struct pt_tmp *pt = p->pts[i];
		struct ad_point *x = &pt->p;
		struct dev_tmp *dt = find_dev(p, pt->dev_name);
		unsigned int regs, span_max;

		p->file = x->origin.file;
		snprintf(what, sizeof(what), "point:%s/%s", pt->dev_name, x->name);
		if (!dt) {
			errorf(p, x->origin.line,
			       "[%s]: device '%s' is not defined by any [device:%s] section", what,
			       pt->dev_name, pt->dev_name);
			continue;
		}
		for (j = 0; j < dt->d.n_points; j++) {
			if (!strcmp(dt->d.points[j]->name, x->name))
				errorf(p, x->origin.line,
				       "[%s]: duplicate point name (first defined at %s:%u)", what,
				       dt->d.points[j]->origin.file, dt->d.points[j]->origin.line);
		}
		x->device = &dt->d;
		if (!(pt->seen & (1ULL << 1)))
			errorf(p, x->origin.line, "[%s] address: required", what);
		if (dt->d.address_base == 1) {
			if (x->address == 0 && (pt->seen & (1ULL << 1)))
				errorf(p, x->origin.line,
				       "[%s] address: 0 with address_base = 1; register numbers start at 1",
				       what);
			else if (x->address)
				x->address--;
		}
		if (x->type == AD_PT_STRING) {
			if (!pt->has_length)
				errorf(p, x->origin.line,
				       "[%s] length: required for type = string (registers)", what);
			x->string_swap = pt->bo_set && (x->byte_order == AD_BO_BADC ||
							x->byte_order == AD_BO_DCBA);
			x->byte_order = AD_BO_ABCD;
		} else if (!pt->bo_set) {
			x->byte_order = dt->d.byte_order;
		}
		if (x->type == AD_PT_BIT && !pt->has_bit)
			errorf(p, x->origin.line, "[%s] bit: required for type = bit (0-15)", what);
		if (pt->has_bit && x->type != AD_PT_BIT)
			errorf(p, x->origin.line, "[%s] bit: only for type = bit", what);
		if ((x->area == AD_AREA_COIL || x->area == AD_AREA_DISCRETE) &&
		    x->type != AD_PT_BOOL)
			errorf(p, x->origin.line,
			       "[%s] type: %s: coil and discrete areas hold single bits; expected type = bool",
			       what, point_types[x->type]);
		if (x->writable && (x->area == AD_AREA_INPUT || x->area == AD_AREA_DISCRETE))
			errorf(p, x->origin.line,
			       "[%s] access: rw: the %s area is read-only in Modbus", what,
			       areas[x->area]);
		if (x->scale == 0.0)
			errorf(p, x->origin.line, "[%s] scale: 0 would lose every value", what);
		regs = ad_point_regs(x);
		span_max = 65536;
		if (x->address + regs > span_max)
			errorf(p, x->origin.line, "[%s] address: %u + %u registers runs past 65535",
			       what, x->address, regs);
		if (!pt->pub_set)
			x->publish = dt->d.publish == AD_PUB_INHERIT ? gw_publish : dt->d.publish;
		if (!x->unit)
			x->unit = (char *)"";
		x->index = dm->map.n_points;
		if (arena_push(&dm->arena, (void ***)&dt->d.points, &dt->d.n_points, x) ||
		    arena_push(&dm->arena, (void ***)&dm->map.points, &dm->map.n_points, x))
			p->sys_err = -ENOMEM;
	}
}

static int load_devices(struct parse *p, const char *pattern, enum ad_publish gw_publish)
{
	glob_t g;
	size_t i;
	int rc;

	if (!pattern || !*pattern)
		return 0;
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
	p->arena = &p->dm->arena;
	resolve(p, p->dm, gw_publish);
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

static void parse_init(struct parse *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->err = err;
	p->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
}

int gw_config_load(const char *path, struct gw_config *cfg, char *err, size_t errlen)
{
	struct parse p;
	char id[64];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	parse_init(&p, err, errlen);
	cfg->devmap = gw_calloc(1, sizeof(*cfg->devmap));
	if (!cfg->devmap)
		return -ENOMEM;
	p.cfg = cfg;
	p.dm = cfg->devmap;
	p.arena = &cfg->arena;
	cfg->path = arena_strdup(&cfg->arena, path);
	gateway_defaults(&cfg->gateway);
	brk_config_defaults(&cfg->broker);
	store_defaults(&cfg->store);
	uplink_defaults(&cfg->uplink);
	mqttsn_defaults(&cfg->mqttsn);
	cfg->gateway.topic_prefix = (char *)"fieldmq/{id}";
	cfg->gateway.data_dir = (char *)"/var/lib/fieldmq";
	cfg->gateway.devices = NULL;
	cfg->store.path = (char *)"{data_dir}/fieldmq.db";
	cfg->uplink.client_id = (char *)"{id}";

	rc = parse_file(&p, path, true);
	if (rc == -ENOENT || rc == -EACCES || rc == -ENOMEM)
		return rc;
	if (!cfg->gateway.devices && p.dir) {
		/* default: the devices.d folder beside the main file */
		cfg->gateway.devices = resolve_path(&p, "devices.d/*.ini");
	}
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
	rc = load_devices(&p, cfg->gateway.devices, cfg->gateway.publish);
	if (rc)
		return rc;
	return p.n_errors ? -EINVAL : 0;
}

int gw_devmap_load(const struct gw_config *cfg, struct gw_devmap **out, char *err, size_t errlen)
{
	struct gw_devmap *dm;
	struct parse p;
	int rc;

	*out = NULL;
	parse_init(&p, err, errlen);
	dm = gw_calloc(1, sizeof(*dm));
	if (!dm)
		return -ENOMEM;
	p.dm = dm;
	p.arena = &dm->arena;
	rc = load_devices(&p, cfg->gateway.devices, cfg->gateway.publish);
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
