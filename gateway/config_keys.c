/*
 * config_keys.c - the loader's generic machinery: the arena its objects live
 * in, errors with file:line, paths relative to the naming file, the checks of
 * common value shapes (names, topics, HOST:PORT), and the key tables' setter:
 * typed values (strings, paths, booleans, durations, sizes, integers,
 * numbers, enums) with their ranges, duplicates, defaults from the rows, and
 * "unknown key; expected one of" (with the keys known under another name).
 *
 * The rows are struct ad_key (adapters/adapter.h): the same mechanism serves
 * the main file's sections (config_broker.c, config_uplink.c,
 * config_sections.c) and the adapters' device-map sections (config_devmap.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway/config_int.h"

/* ------------------------------------------------------------------ arena */

struct gw_arena_chunk {
	struct gw_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

void *gw__arena_alloc(struct gw_arena_chunk **a, size_t n)
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

char *gw__arena_strndup(struct gw_arena_chunk **a, const char *s, size_t n)
{
	char *d = gw__arena_alloc(a, n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

char *gw__arena_strdup(struct gw_arena_chunk **a, const char *s)
{
	return gw__arena_strndup(a, s, strlen(s));
}

void gw__arena_free(struct gw_arena_chunk *c)
{
	while (c) {
		struct gw_arena_chunk *n = c->next;

		gw_free(c);
		c = n;
	}
}

/* Appends @p to a growable pointer array kept in the arena. */
int gw__arena_push(struct gw_arena_chunk **a, void ***arr, unsigned int *n, void *p)
{
	if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power of two */
		unsigned int cap = *n ? *n * 2 : 1;
		void **na = gw__arena_alloc(a, cap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		if (*n)
			memcpy(na, *arr, *n * sizeof(*na));
		*arr = na;
	}
	(*arr)[(*n)++] = p;
	return 0;
}

/* ----------------------------------------------------------------- errors */

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

void gw__cfg_error(struct parse *p, unsigned int line, const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	verrorf(p, line, fmt, va);
	va_end(va);
}

/* A path as written in the file that names it, made relative to that file's folder. */
char *gw__cfg_path(struct parse *p, const char *val)
{
	char *out;
	size_t n;

	if (!*val || val[0] == '/' || !p->dir || !*p->dir)
		return gw__arena_strdup(p->arena, val);
	n = strlen(p->dir) + 1 + strlen(val) + 1;
	out = gw__arena_alloc(p->arena, n);
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
	char *d = gw__arena_strdup(p->arena, s);

	if (!d)
		p->sys_err = -ENOMEM;
	return d;
}

static char *ap_path(struct ad_parse *ap, const char *s)
{
	struct parse *p = P(ap);
	char *d = gw__cfg_path(p, s);

	if (!d)
		p->sys_err = -ENOMEM;
	return d;
}

const struct ad_parse_ops gw__cfg_ap_ops = {
	.verror = ap_verror,
	.strdup = ap_strdup,
	.path = ap_path,
};

/* ------------------------------------------------------------ value shapes */

bool gw__id_ok(const char *s, bool allow_dot)
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
bool gw__topic_ok(const char *s)
{
	return *s && !strpbrk(s, "+#");
}

/* host:port or [v6]:port */
bool gw__hostport_ok(const char *s, bool need_port)
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

char *gw__trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

int gw__k_topic(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val)
{
	struct parse *p = P(ap);
	if (*val && !gw__topic_ok(val) && !strstr(val, "{id}")) {
		gw__cfg_error(p, p->line, "[%s] %s: '%s': expected a topic without '+' or '#'",
			      p->section, k->name, val);
		return -EINVAL;
	}
	*(char **)((char *)base + k->off) = gw__arena_strdup(p->arena, val);
	return 0;
}

/* Prints a string key of a custom parser (gw__k_topic and the like), for --check-config -v. */
void gw__show_str(const void *obj, const struct ad_key *k, char *buf, size_t n)
{
	const char *v = *(char *const *)((const char *)obj + k->off);

	snprintf(buf, n, "%s", v ? v : "");
}

/* ---------------------------------------------------------- the key setter */

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

int gw__set_key(struct parse *p, void *base, const struct ad_key *k, const char *val)
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
		*(char **)dst = gw__arena_strdup(p->arena, val);
		return *(char **)dst ? 0 : -ENOMEM;
	case K_PATH:
		*(char **)dst = gw__cfg_path(p, val);
		return *(char **)dst ? 0 : -ENOMEM;
	case K_BOOL:
		if (gw_parse_bool(val, &b)) {
			gw__cfg_error(
				p, p->line,
				"[%s] %s: '%s': expected yes | no | true | false | on | off | 1 | 0",
				p->section, k->name, val);
			return -EINVAL;
		}
		*(bool *)dst = b;
		return 0;
	case K_DUR:
		if (gw_parse_duration_ms(val, &u) || u < (uint64_t)k->min ||
		    (k->max && u > (uint64_t)k->max)) {
			gw__cfg_error(
				p, p->line,
				"[%s] %s: '%s': expected a duration such as 500ms, 5s, 2m, 1h, 1d%s",
				p->section, k->name, val,
				k->min > 0 || k->max ? " (within the allowed range)" : "");
			return -EINVAL;
		}
		return set_int(dst, k->size, (long long)u);
	case K_SIZE:
		if (gw_parse_size(val, &u) || u < (uint64_t)k->min ||
		    (k->max && u > (uint64_t)k->max)) {
			gw__cfg_error(p, p->line,
				      "[%s] %s: '%s': expected a size such as 512, 64K, 16M, 1G%s",
				      p->section, k->name, val,
				      k->min > 0 || k->max ? " (within the allowed range)" : "");
			return -EINVAL;
		}
		return set_int(dst, k->size, (long long)u);
	case K_INT:
		if (gw_parse_int(val, k->min, k->max, &ll)) {
			gw__cfg_error(p, p->line,
				      "[%s] %s: '%s': expected an integer from %lld to %lld",
				      p->section, k->name, val, k->min, k->max);
			return -EINVAL;
		}
		return set_int(dst, k->size, ll);
	case K_DOUBLE:
		if (gw_parse_double(val, &d) || ((k->flag & F_NONNEG) && d < 0)) {
			gw__cfg_error(p, p->line, "[%s] %s: '%s': expected a number%s", p->section,
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
		gw__cfg_error(p, p->line, "[%s] %s: '%s': expected %s", p->section, k->name, val,
			      exp);
		return -EINVAL;
	case K_CUSTOM:
		p->ap.file = p->file;
		p->ap.line = p->line;
		p->ap.section = p->section;
		return k->fn(&p->ap, base, k, val);
	}
	return -EINVAL;
}

/* Row @name of @t (holes skipped), with its index in *idx; NULL when absent. */
const struct ad_key *gw__find_key(const struct ad_keys *t, const char *name, unsigned int *idx)
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
void gw__key_list(const struct ad_keys *t, char *buf, size_t n, size_t *pos)
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

/*
 * gw__set_checked - one key of a section: refuses a duplicate (per @seen, bit
 * per row), keeps the default on an empty value (except strings and custom
 * keys that take "" as a value), else parses it with gw__set_key().
 */
void gw__set_checked(struct parse *p, void *base, const struct ad_key *k, unsigned int idx,
		     uint64_t *seen, const char *value)
{
	if (idx < 64 && (*seen & (1ULL << idx))) {
		gw__cfg_error(p, p->line, "[%s] %s: duplicate key", p->section, k->name);
		return;
	}
	if (idx < 64)
		*seen |= 1ULL << idx;
	/* An empty value keeps the default ("bit =" in the examples). */
	if (!*value && k->type != K_STR && k->type != K_CUSTOM)
		return;
	if (!*value && k->type == K_CUSTOM && (k->flag & F_KEEP))
		return;
	gw__set_key(p, base, k, value);
}

/* Applies every row's default of @t to @obj (the defaults are the tables' own text). */
void gw__apply_defaults(struct parse *p, const struct ad_keys *t, void *obj)
{
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		const struct ad_key *k = &t->rows[i];

		if (k->name && k->def && gw__set_key(p, obj, k, k->def))
			gw__cfg_error(p, p->line,
				      "[%s] %s: the built-in default '%s' is refused (a bug)",
				      p->section, k->name, k->def);
	}
}

/* ------------------------------------------------------------ unknown keys */

/*
 * Keys known under another name: a key of an older release that was renamed
 * (the row says since which version), or the name Mosquitto's mosquitto.conf
 * gives a key of ours, which users who move from it type. An unknown key
 * found here is reported with the name to use, not with the list of every
 * key. @sect is the section's kind ("broker", "device", ...: the part before
 * ':'); @to may name another section. Rows are never removed, so that a
 * config of any release reads as far as it can.
 */
static const struct renamed_row {
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
static const struct renamed_row *find_renamed(const char *section, const char *name)
{
	size_t n = strcspn(section, ":");
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(renamed_keys); i++) {
		const struct renamed_row *r = &renamed_keys[i];

		if (strlen(r->sect) == n && !strncmp(r->sect, section, n) && !strcmp(r->from, name))
			return r;
	}
	return NULL;
}

/* Reports @name as a renamed key when it is one; returns whether it did. */
bool gw__renamed_key(struct parse *p, const char *name)
{
	const struct renamed_row *r = find_renamed(p->section, name);

	if (!r)
		return false;
	gw__cfg_error(p, p->line, "[%s] %s: unknown key; it is now called %s (%s)", p->section,
		      name, r->to, r->why);
	return true;
}

/* "unknown key; expected one of: ..." over up to three tables. */
void gw__unknown_key(struct parse *p, const char *name, const struct ad_keys *a,
		     const struct ad_keys *b, const struct ad_keys *c)
{
	char list[1024];
	size_t pos = 0;

	if (gw__renamed_key(p, name))
		return;
	list[0] = '\0';
	gw__key_list(a, list, sizeof(list), &pos);
	if (b)
		gw__key_list(b, list, sizeof(list), &pos);
	if (c)
		gw__key_list(c, list, sizeof(list), &pos);
	gw__cfg_error(p, p->line, "[%s] %s: unknown key; expected one of: %s", p->section, name,
		      list);
}
