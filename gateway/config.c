/*
 * config.c - loads fieldmq.ini and the device maps with inih.
 *
 * inih does the INI syntax; this file reads the files (line by line, section
 * headers, each key handed to its section's table), fills the {id} and
 * {data_dir} templates and runs the checks that need the whole main file.
 * The rest of the loader is split by object (config_int.h has the map): the
 * key-table machinery (config_keys.c), the main file's sections
 * (config_broker.c, config_uplink.c, config_sections.c), the device maps
 * (config_devmap.c) and --check-config -v (config_print.c).
 *
 * Line numbers: inih reports none to the handler in Debian's build, so the
 * reader function handed to ini_parse_stream counts the lines it returns.
 * The same reader notices section headers, so an empty or unknown section is
 * reported even when no key follows it.
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config_int.h"
#include "gateway/tls/mbed_lib.h"

/* -------------------------------------------------------------- sections */

/*
 * The main file's sections with key tables, in file order: where each
 * section's struct is in struct gw_config. Their defaults are the rows'
 * (applied before the file is read); on_key() finds their keys here and
 * --check-config -v prints them. A new main section is an enum sect value,
 * a row in fixed_sections[], a key table (config_sections.c) and a row here.
 */
const struct gw__main_sect gw__main_sects[] = {
	{ "gateway", S_GATEWAY, &gw__gateway_keys, offsetof(struct gw_config, gateway) },
	{ "broker", S_BROKER, &gw__broker_keys, offsetof(struct gw_config, broker) },
	{ "store", S_STORE, &gw__store_keys, offsetof(struct gw_config, store) },
	{ "uplink", S_UPLINK, &gw__uplink_keys, offsetof(struct gw_config, uplink) },
	{ "mqttsn", S_MQTTSN, &gw__mqttsn_keys, offsetof(struct gw_config, mqttsn) },
	{ "coap", S_COAP, &gw__coap_keys, offsetof(struct gw_config, coap) },
	{ "http", S_HTTP, &gw__http_keys, offsetof(struct gw_config, http) },
	{ "homeassistant", S_HOMEASSISTANT, &gw__ha_keys,
	  offsetof(struct gw_config, homeassistant) },
};
const unsigned int gw__n_main_sects = GW_ARRAY_SIZE(gw__main_sects);

/* Every main section's defaults, from its rows (paths relative to the main file's folder). */
static void main_defaults(struct parse *p)
{
	unsigned int i;

	brk_config_defaults(&p->cfg->broker); /* what has no key */
	for (i = 0; i < gw__n_main_sects; i++) {
		snprintf(p->section, sizeof(p->section), "%s", gw__main_sects[i].name);
		gw__apply_defaults(p, gw__main_sects[i].keys,
				   (char *)p->cfg + gw__main_sects[i].off);
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
			gw__cfg_error(
				p, p->line,
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
		gw__listener_section(p, name, colon);
		return;
	}
	if (colon && p->main_file) {
		gw__cfg_error(
			p, p->line,
			"[%s]: buses, devices and points belong in the device-map files named by [gateway] devices",
			name);
		return;
	}
	if (!colon) {
		gw__cfg_error(
			p, p->line,
			"[%s]: unknown section; expected gateway, broker, store, uplink, mqttsn, mqttsn.predefined, coap, http, homeassistant, bus:NAME, device:NAME or point:DEVICE/NAME",
			name);
		return;
	}
	gw__devmap_section(p, name, colon);
}

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
		gw__cfg_error(p, p->line, "%s: key outside of any section", name);
		return 1;
	case S_BAD:
		return 1;
	case S_PREDEFINED:
		return gw__mqttsn_predefined(p, name, value);
	case S_BUS:
	case S_DEVICE:
	case S_POINT:
		return gw__record_key(p, name, value);
	case S_LISTENER:
		keys = gw__listener_keys;
		base = p->obj;
		break;
	default:
		/* A main section with a key table (gw__main_sects): [gateway], [broker], ... */
		for (i = 0; i < gw__n_main_sects && gw__main_sects[i].kind != p->kind; i++)
			;
		if (i == gw__n_main_sects)
			return 1;
		keys = *gw__main_sects[i].keys;
		base = (char *)p->cfg + gw__main_sects[i].off;
		break;
	}
	seen = &p->seen_global[p->kind];
	k = gw__find_key(&keys, name, &idx);
	if (!k) {
		size_t pos = 0;

		if (gw__renamed_key(p, name))
			return 1;
		list[0] = '\0';
		gw__key_list(&keys, list, sizeof(list), &pos);
		gw__cfg_error(p, p->line, "[%s] %s: unknown key; expected one of: %s", p->section,
			      name, list);
		return 1;
	}
	gw__set_checked(p, base, k, idx, seen, value);
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
		gw__cfg_error(p, p->line, "line too long (at most %d characters)", num - 2);
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
			begin_section(p, gw__trim(name));
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

int gw__parse_file(struct parse *p, const char *path, bool main_file)
{
	char *slash;
	int rc;

	p->file = gw__arena_strdup(p->arena, path);
	p->dir = gw__arena_strdup(p->arena, path);
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
		gw__cfg_error(p, (unsigned int)rc,
			      "syntax error: expected [section], key = value or a ; comment");
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
	out = gw__arena_alloc(a, cap);
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
		buf[o++] = gw__id_ok((char[]){ c, 0 }, false) ? c : '_';
	}
	buf[o] = '\0';
	if (!o)
		snprintf(buf, n, "fieldmq");
}

/* ------------------------------------------------------------ public API */

static void parse_init(struct parse *p, const struct ad_driver *drivers, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->ap.ops = &gw__cfg_ap_ops;
	p->drivers = drivers;
	p->err = err;
	p->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
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
	cfg->path = gw__arena_strdup(&cfg->arena, path);

	rc = gw__parse_file(&p, path, true);
	if (rc == -ENOENT || rc == -EACCES || rc == -ENOMEM)
		return rc;
	if (!cfg->gateway.id) {
		default_id(id, sizeof(id));
		cfg->gateway.id = gw__arena_strdup(&cfg->arena, id);
	}
	cfg->gateway.topic_prefix =
		subst(&cfg->arena, cfg->gateway.topic_prefix, "{id}", cfg->gateway.id);
	cfg->uplink.client_id = subst(&cfg->arena, cfg->uplink.client_id, "{id}", cfg->gateway.id);
	/* {data_dir} is already resolved; any other relative path is the main file's. */
	if (strncmp(cfg->store.path, "{data_dir}", 10))
		cfg->store.path = gw__cfg_path(&p, cfg->store.path);
	cfg->store.path = subst(&cfg->arena, cfg->store.path, "{data_dir}", cfg->gateway.data_dir);
	if (cfg->uplink.enabled && !cfg->uplink.url)
		gw__cfg_error(&p, p.sect_line[S_UPLINK],
			      "[uplink] url: required when enabled = yes");
	if (cfg->uplink.reconnect_max_ms < cfg->uplink.reconnect_min_ms)
		gw__cfg_error(&p, p.sect_line[S_UPLINK],
			      "[uplink] reconnect_max: must not be less than reconnect_min");
	if (!gw__topic_ok(cfg->gateway.topic_prefix))
		gw__cfg_error(&p, p.sect_line[S_GATEWAY],
			      "[gateway] topic_prefix: '%s': expected a topic without '+' or '#'",
			      cfg->gateway.topic_prefix);
	gw__listeners_finish(&p, &cfg->broker);
	gw__auth_finish(&p, cfg);
	if (cfg->uplink.enabled && cfg->uplink.url && cfg->uplink.tls)
		gw__need_mbed(&p, p.sect_line[S_UPLINK], "[uplink] url = mqtts://", GW_MBED_TLS);
	if (cfg->http.enabled && cfg->http.listen && !strncmp(cfg->http.listen, "https://", 8))
		gw__need_mbed(&p, p.sect_line[S_HTTP], "[http] listen = https://", GW_MBED_TLS);
	rc = gw__load_devices(&p, cfg->gateway.devices, cfg->gateway.publish);
	gw__arena_free(p.tmp);
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
	rc = gw__load_devices(&p, cfg->gateway.devices, cfg->gateway.publish);
	gw__arena_free(p.tmp);
	if (!rc && p.n_errors)
		rc = -EINVAL;
	if (rc) {
		gw_devmap_free(dm);
		return rc;
	}
	*out = dm;
	return 0;
}

void gw_config_free(struct gw_config *cfg)
{
	brk_acl_free(cfg->broker.acl);
	brk_passwd_free(cfg->broker.passwd);
	gw_devmap_free(cfg->devmap);
	gw__arena_free(cfg->arena);
	memset(cfg, 0, sizeof(*cfg));
}
