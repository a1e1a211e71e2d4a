/*
 * config_int.h - the configuration loader's internals, shared by its files
 * and by nothing else (the public interface is gateway/config.h):
 *
 *   config.c           the INI reading (inih), section headers, keys to
 *                      tables, gw_config_load / gw_devmap_load
 *   config_keys.c      the arena, errors with file:line, value checks, the
 *                      key tables' setter, defaults, unknown and renamed keys
 *   config_broker.c    [broker] and [listener:NAME]
 *   config_uplink.c    [uplink]
 *   config_sections.c  [gateway], [store], [mqttsn], [coap], [http],
 *                      [homeassistant]
 *   config_devmap.c    the device maps: common keys, [bus:] [device:]
 *                      [point:] records and their resolution
 *   config_print.c     gw_config_print (--check-config -v)
 *
 * Everything here runs on the thread that calls gw_config_load (the loop
 * thread at start and on SIGHUP).
 */
#ifndef FIELDMQ_CONFIG_INT_H
#define FIELDMQ_CONFIG_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "gateway/config.h"

/* ------------------------------------------------------------------ arena */

/*
 * The loader's objects live in arenas (a list of chunks, freed at once by
 * gw__arena_free). gw__arena_alloc returns @n zeroed bytes, or NULL when out
 * of memory; the strdup pair copies into the arena (NULL when out of memory).
 */
void *gw__arena_alloc(struct gw_arena_chunk **a, size_t n);
char *gw__arena_strndup(struct gw_arena_chunk **a, const char *s, size_t n);
char *gw__arena_strdup(struct gw_arena_chunk **a, const char *s);
void gw__arena_free(struct gw_arena_chunk *c);
/* Appends @p to a growable pointer array kept in the arena. 0 or -ENOMEM. */
int gw__arena_push(struct gw_arena_chunk **a, void ***arr, unsigned int *n, void *p);

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

/*
 * The rows are struct ad_key (adapters/adapter.h): the same mechanism serves
 * the main file's sections and the adapters' device-map sections. Short
 * names for the loader's tables.
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

/* ------------------------------------------------ config_keys.c: machinery */

/*
 * gw__cfg_error - counts one configuration error and appends
 * "FILE:LINE: message\n" to the caller's buffer (p->file, @line), truncated
 * when the buffer is full.
 */
void gw__cfg_error(struct parse *p, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A path as written in the current file, made relative to its folder (arena; NULL: no memory). */
char *gw__cfg_path(struct parse *p, const char *val);
/* What adapters' hooks and custom parsers reach of the loader. */
extern const struct ad_parse_ops gw__cfg_ap_ops;

/* Value shapes: a name of letters, digits, '_', '-' (and '.' when @allow_dot). */
bool gw__id_ok(const char *s, bool allow_dot);
/* A topic name: non-empty, no wildcards. */
bool gw__topic_ok(const char *s);
/* HOST:PORT or [V6]:PORT (the port optional unless @need_port). */
bool gw__hostport_ok(const char *s, bool need_port);
/* Cuts blanks off both ends of @s, in place; returns the first non-blank. */
char *gw__trim(char *s);

/* Custom key parser of topics without wildcards ("{id}" allowed), and a printer of string keys. */
int gw__k_topic(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val);
void gw__show_str(const void *obj, const struct ad_key *k, char *buf, size_t n);

/*
 * The rows' setter: parses @val by @k's type and range into @base + k->off.
 * 0, -ENOMEM, or -EINVAL after saying why ("[section] key: 'val': expected ...").
 */
int gw__set_key(struct parse *p, void *base, const struct ad_key *k, const char *val);
/*
 * One key of a section: refuses a duplicate (per *@seen, a bit per row index
 * @idx), keeps the default on an empty value (except strings and custom keys
 * that take "" as a value), else gw__set_key().
 */
void gw__set_checked(struct parse *p, void *base, const struct ad_key *k, unsigned int idx,
		     uint64_t *seen, const char *value);
/* Applies every row's default of @t to @obj. */
void gw__apply_defaults(struct parse *p, const struct ad_keys *t, void *obj);
/* Row @name of @t (holes skipped), with its index in *idx; NULL when absent. */
const struct ad_key *gw__find_key(const struct ad_keys *t, const char *name, unsigned int *idx);
/* Appends the names of @t to @buf ("a, b, c"), after what *pos already holds. */
void gw__key_list(const struct ad_keys *t, char *buf, size_t n, size_t *pos);
/* Reports @name as a key known under another name when it is one; returns whether it did. */
bool gw__renamed_key(struct parse *p, const char *name);
/* "unknown key; expected one of: ..." over up to three tables (@b, @c may be NULL). */
void gw__unknown_key(struct parse *p, const char *name, const struct ad_keys *a,
		     const struct ad_keys *b, const struct ad_keys *c);

/* ---------------------------------------------------------- main sections */

/* inherit | on_change | every_poll | on_change_or_period (enum ad_publish), NULL-terminated. */
extern const char *const gw__publishes[];

extern const struct ad_keys gw__gateway_keys, gw__broker_keys, gw__listener_keys, gw__store_keys,
	gw__uplink_keys, gw__mqttsn_keys, gw__coap_keys, gw__http_keys, gw__ha_keys;

/* The main file's sections with key tables, in file order (config.c). */
struct gw__main_sect {
	const char *name;
	enum sect kind;
	const struct ad_keys *keys;
	size_t off; /* of the section's struct in struct gw_config */
};
extern const struct gw__main_sect gw__main_sects[];
extern const unsigned int gw__n_main_sects;

/* A [listener:NAME] header (@colon: its ':'): a new listener of [broker]. */
void gw__listener_section(struct parse *p, const char *name, const char *colon);
/* After the main file: [broker]'s keys into its listen entries, what each listener needs. */
/* Loads mbedTLS's @part (enum gw_mbed_part) or reports at @line that @what needs it. */
void gw__need_mbed(struct parse *p, unsigned int line, const char *what, int part);
void gw__listeners_finish(struct parse *p, struct brk_config *bc);
/* After the main file: the authentication listeners beyond loopback need; allow_anonymous. */
void gw__auth_finish(struct parse *p, struct gw_config *cfg);
/* A "ID = topic" line of [mqttsn.predefined]; returns 1 (inih: go on). */
int gw__mqttsn_predefined(struct parse *p, const char *name, const char *val);

/* ------------------------------------------------------------ device maps */

/* The keys every adapter's [bus:], [device:] and [point:] sections share. */
extern const struct ad_keys gw__common_bus, gw__common_device, gw__common_point;
/* The custom parser of protocol = (its rows are printed by protocol name). */
int gw__k_protocol(struct ad_parse *ap, void *base, const struct ad_key *k, const char *val);
/* A [bus:] / [device:] / [point:] header of a device map (@colon: its ':'). */
void gw__devmap_section(struct parse *p, const char *name, const char *colon);
/* A key of such a section, kept until every file is read. Returns 1 (inih: go on). */
int gw__record_key(struct parse *p, const char *name, const char *value);
/*
 * Reads every file of the glob @pattern into p->dm and resolves them. 0, or
 * p->sys_err / -EIO (glob failed); configuration errors are counted in p.
 */
int gw__load_devices(struct parse *p, const char *pattern, enum ad_publish gw_publish);

/* ------------------------------------------------------------- config.c */

/* Reads one INI file (@main_file: the main one) into @p. 0 or -errno (said). */
int gw__parse_file(struct parse *p, const char *path, bool main_file);

#endif
