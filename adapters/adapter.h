/*
 * adapter.h - what every field adapter shares with the gateway: the
 * protocol-neutral device map (buses, devices, points, as loaded from the
 * devices.d INI files), the key tables through which an adapter owns its
 * device-map keys, the normalised reading, and the adapter interface
 * (start / stop / reload / command).
 *
 * Adapters never talk to the cloud side and never to each other: they hand
 * readings to the sink the gateway gives them and receive commands from it.
 *
 * How an adapter plugs in (adapters/<name>/, e.g. adapters/coap/):
 *
 *  1. A slot in enum ad_protocol (AD_PROTO_COAP, AD_PROTO_SERIAL are there).
 *  2. Its parsed structs, private to the adapter, one per section kind it
 *     uses, e.g. struct coap_device { char *url; ... } and struct coap_point
 *     { char *path; bool observe; ... }. The loader allocates them zeroed
 *     (size from the key table), applies every row's default, then the keys
 *     of the section, and hangs them on the common object as ->ext.
 *  3. Key tables (struct ad_keys) for its [bus:], [device:] and [point:]
 *     sections, rows indexed by an enum of the adapter
 *     ([COAP_PT_PATH] = { .name = "path", .type = AD_K_STR, .off = ... }),
 *     and optional check hooks that validate a whole object once every key
 *     is read (cross-key rules, "required" keys, inheritance from the
 *     device). Rows and hooks are collected in a struct ad_schema; the
 *     common keys (below) are the loader's and never appear in it.
 *  4. A constructor with the signature of ad_create_fn, returning an
 *     adapter that serves the devices of its protocol in a map, and a
 *     struct ad_ops (start, stop, free, command, optional reload).
 *  5. One line in the registry, gateway/adapters.c:
 *         [AD_PROTO_COAP] = { "coap", &coap_schema, ad_coap_new },
 *     Nothing in gateway/config*.c or in gateway.c's lifecycle changes. The
 *     Makefile already builds adapters/coap and adapters/serial as modules
 *     (ad_coap, ad_serial) and links their tests (tests/adapters/<name>/).
 *
 * What the loader does for an adapter's sections (gateway/config_devmap.c):
 *  - [device:]: the common keys first (protocol picks the schema), then
 *    the adapter's device keys, then its bus keys: a device that names no
 *    bus and whose adapter has bus keys gets an implicit bus of its own
 *    (named after the device) filled from those inline keys (check_bus sees
 *    which through ap->seen). "bus = NAME" plus inline keys is an error.
 *  - [bus:]: its protocol is its optional "protocol" key, else that of the
 *    devices naming it, else modbus; a device naming a bus of another
 *    protocol is an error. An adapter without bus keys has no buses
 *    (device->bus is NULL).
 *  - Unknown keys are reported with the common and the adapter's names;
 *    values are checked by the rows (file:line, "expected ..."); hooks add
 *    their own errors with ad_parse_error() and ap->line (the section's).
 *  - device->stale_ms defaults to 3 * poll_ms; check_device may set it
 *    (e.g. from a stale_after key, or for pushed values).
 *  tests/gateway/test_config_adapters.c (keys) and tests/gateway/
 *  test_gateway.c (lifecycle, commands) run a fake adapter end to end.
 *
 * Readings go out through struct ad_sink (on_reading / on_status /
 * on_cmd_done), on the loop thread, naming the map's own device and point
 * objects (the gateway drops readings of a map it has replaced). Commands
 * come in through ops->command for points of the adapter's protocol only
 * (the gateway routes by point->device->protocol).
 */
#ifndef FIELDMQ_ADAPTER_H
#define FIELDMQ_ADAPTER_H

#include "gateway/base/base.h"
#include "gateway/base/hist.h"

/* libuv's loop, forward-declared: this header is included by pure code. */
struct uv_loop_s;

/* ------------------------------------------------------------------ values */

enum ad_value_type {
	AD_VAL_NONE, /* no value (e.g. a bad reading that never had a good one) */
	AD_VAL_BOOL,
	AD_VAL_INT,    /* int64 */
	AD_VAL_UINT,   /* uint64 (values above INT64_MAX stay exact) */
	AD_VAL_DOUBLE, /* may be NaN / Inf: rendered as quality bad, never as a JSON number */
	AD_VAL_STRING, /* bytes, not NUL-terminated; rendered JSON-escaped */
	__AD_VAL_MAX,
};

struct ad_value {
	enum ad_value_type type;
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double d;
		struct gw_slice s;
	};
};

enum ad_quality {
	AD_Q_GOOD,
	AD_Q_BAD,   /* the last read failed; value is the last good one or absent */
	AD_Q_STALE, /* older than 3 poll intervals */
	__AD_Q_MAX,
};

/* ---------------------------------------------------------------- device map */

/* The adapters the device map knows; the registry (gateway/adapters.c) maps each to its code. */
enum ad_protocol {
	AD_PROTO_MODBUS, /* adapters/modbus */
	AD_PROTO_COAP,	 /* adapters/coap */
	AD_PROTO_SERIAL, /* adapters/serial */
	__AD_PROTO_MAX,
};

enum ad_publish {
	AD_PUB_INHERIT, /* take the device's, then the gateway's */
	AD_PUB_ON_CHANGE,
	AD_PUB_EVERY_POLL,
	AD_PUB_ON_CHANGE_OR_PERIOD,
	__AD_PUB_MAX,
};

/*
 * A point's value type (the common key "type"). Adapters refuse in their
 * point check the types they cannot produce (bit and string are register
 * layouts of Modbus; a CoAP or serial point typically is bool, an integer,
 * float64 or string).
 */
enum ad_point_type {
	AD_PT_BOOL,
	AD_PT_BIT, /* one bit of a register (Modbus: bit = 0..15) */
	AD_PT_INT16,
	AD_PT_UINT16,
	AD_PT_INT32,
	AD_PT_UINT32,
	AD_PT_INT64,
	AD_PT_UINT64,
	AD_PT_FLOAT32,
	AD_PT_FLOAT64,
	AD_PT_STRING,
	__AD_PT_MAX,
};

/* The names of enum ad_point_type in the device map, in enum order. */
#define AD_POINT_TYPE_NAMES                                                                \
	"bool", "bit", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", \
		"float64", "string"

static inline const char *ad_point_type_name(enum ad_point_type t)
{
	static const char *const names[] = { AD_POINT_TYPE_NAMES };

	return (unsigned int)t < GW_ARRAY_SIZE(names) ? names[t] : "?";
}

/* Serial line parity, shared by the adapters that open serial lines. */
enum ad_parity {
	AD_PARITY_NONE = 'N',
	AD_PARITY_EVEN = 'E',
	AD_PARITY_ODD = 'O',
};

/* Where a map entry came from, for error messages at run time. */
struct ad_origin {
	const char *file; /* owned by the map */
	unsigned int line;
};

/*
 * [bus:NAME], or the implicit bus of a device with inline transport keys
 * (a device of an adapter that has bus keys and names no bus gets one).
 * Everything else about the bus is the adapter's: ext.
 */
struct ad_bus {
	char *name; /* "rs485"; for an implicit bus, the device's name */
	bool implicit;
	enum ad_protocol protocol;
	void *ext; /* the adapter's parsed struct (e.g. struct mbus_bus) */
	struct ad_origin origin;
};

/* [device:NAME]: the common keys protocol, bus, poll, publish; the rest is ext. */
struct ad_device {
	char *name;
	enum ad_protocol protocol;
	struct ad_bus *bus; /* named or implicit; NULL for adapters without buses */
	uint32_t poll_ms;
	uint32_t stale_ms;	  /* a good value older than this is stale; 3 * poll_ms unless
				     the adapter's device check sets it */
	enum ad_publish publish;  /* never INHERIT after load */
	void *ext;		  /* the adapter's parsed struct (e.g. struct mbus_device) */
	struct ad_point **points; /* this device's points, in file order */
	unsigned int n_points;
	struct ad_origin origin;
};

/*
 * [point:DEVICE/NAME]: the common keys type, scale, offset, deadband, unit,
 * access, publish, device_class, state_class (the last two only for Home
 * Assistant discovery); the rest (where the value is on the device) is ext.
 */
struct ad_point {
	char *name; /* "temperature" */
	struct ad_device *device;
	enum ad_point_type type;
	double scale; /* value = raw * scale + offset */
	double offset;
	double deadband;
	char *unit;		 /* "" when none */
	char *device_class;	 /* Home Assistant's device_class, "" when none */
	char *state_class;	 /* Home Assistant's state_class, "" when none */
	bool writable;		 /* access = rw */
	enum ad_publish publish; /* never INHERIT after load */
	unsigned int index;	 /* position in map->points */
	void *ext;		 /* the adapter's parsed struct (e.g. struct mbus_point) */
	struct ad_origin origin;
};

struct ad_map {
	struct ad_bus **buses;
	unsigned int n_buses;
	struct ad_device **devices;
	unsigned int n_devices;
	struct ad_point **points;
	unsigned int n_points;
	char **files; /* the file names origins point to */
	unsigned int n_files;
};

/* ------------------------------------------------------------ key tables */

/*
 * One row per key of a section. The loader's one setter validates every
 * value with file:line ("[device:x] baud: 'fast': expected an integer from
 * 50 to 4000000"), writes it at @off in the section's struct, and lists the
 * table's names when a key is unknown ("expected one of: ..."). The same
 * rows print the effective configuration (fieldmq --check-config -v).
 */
enum ad_key_type {
	AD_K_STR,    /* char *, copied; "" allowed */
	AD_K_PATH,   /* char *, relative to the folder of the file that names it */
	AD_K_BOOL,   /* bool: yes/no/true/false/on/off/1/0 */
	AD_K_DUR,    /* duration (500ms, 5s, 2m, 1h, 1d) in ms, integer of @size bytes */
	AD_K_SIZE,   /* size (512, 64K, 16M, 1G) in bytes, integer of @size bytes */
	AD_K_INT,    /* integer in [min, max], of @size bytes */
	AD_K_DOUBLE, /* double; AD_KF_NONNEG refuses < 0 */
	AD_K_ENUM,   /* one of @enums (case-insensitive), stored as an int of @size bytes */
	AD_K_CUSTOM, /* @fn does it all (and reports its own errors) */
};

#define AD_KF_NONNEG 1	      /* AD_K_DOUBLE: >= 0 */
#define AD_KF_KEEP_IF_EMPTY 2 /* AD_K_CUSTOM: "key =" keeps the default instead of calling @fn */
#define AD_KF_SECRET 4	      /* never printed by --check-config -v */
#define AD_KF_ZERO_UNSET 8 /* a number without a default: 0 means "not given" (printed as such) */

struct ad_parse;
struct ad_key;

/*
 * Parser of an AD_K_CUSTOM key: @obj is the section's struct, @val the
 * value (never NULL). Report errors with ad_parse_error() and return
 * -EINVAL; -ENOMEM when out of memory; 0 on success.
 */
typedef int (*ad_key_parse_fn)(struct ad_parse *ap, void *obj, const struct ad_key *k,
			       const char *val);
/* Printer of an AD_K_CUSTOM key for --check-config -v: the value as it would be written. */
typedef void (*ad_key_show_fn)(const void *obj, const struct ad_key *k, char *buf, size_t n);

struct ad_key {
	const char *name;
	enum ad_key_type type;
	size_t off;		  /* where the value goes in the section's struct */
	unsigned char size;	  /* AD_K_INT / DUR / SIZE / ENUM target width: 1, 2, 4, 8 */
	long long min, max;	  /* AD_K_INT range; DUR / SIZE: max 0 = unbounded */
	const char *const *enums; /* AD_K_ENUM: NULL-terminated names */
	const int *enum_vals;	  /* optional: the values of the names, else index + enum_base */
	unsigned char enum_base;
	unsigned int flag;  /* AD_KF_* */
	const char *def;    /* the default, as it would be written in the file (NULL: none,
			       or computed by a check hook); parsed by the same setter */
	const char *help;   /* one line for --check-config -v and the docs */
	ad_key_parse_fn fn; /* AD_K_CUSTOM */
	ad_key_show_fn show;
};

/* The keys of one section kind and the struct they fill. */
struct ad_keys {
	const struct ad_key
		*rows;	/* indexed by the adapter's enum; rows without a name are holes */
	unsigned int n; /* the enum's __X_MAX; at most 64 */
	size_t size;	/* of the parsed struct the loader allocates (0: no such section) */
};

/*
 * The rows of degrade_after / degrade_for, shared by the adapters whose
 * devices are skipped for a while after failing (Modbus, CoAP): one place for
 * their range and default. Each adapter keeps them in its own device table
 * (and struct @st, as uint16_t degrade_after and uint32_t degrade_for_ms),
 * so they print where its other device keys print:
 *     [CD_DEGRADE_AFTER] = AD_KEY_DEGRADE_AFTER(struct ad_coap_device, "..."),
 *     [CD_DEGRADE_FOR] = AD_KEY_DEGRADE_FOR(struct ad_coap_device),
 */
#define AD_KEY_DEGRADE_AFTER(st, help_)                                                        \
	{                                                                                      \
		.name = "degrade_after", .type = AD_K_INT, .off = offsetof(st, degrade_after), \
		.size = sizeof(((st *)0)->degrade_after), .min = 0, .max = 10000, .def = "3",  \
		.help = (help_)                                                                \
	}
#define AD_KEY_DEGRADE_FOR(st)                                                                     \
	{                                                                                          \
		.name = "degrade_for", .type = AD_K_DUR, .off = offsetof(st, degrade_for_ms),      \
		.size = sizeof(((st *)0)->degrade_for_ms), .min = 0, .max = 86400000, .def = "60s" \
	}

/*
 * What the loader hands to hooks and custom parsers: error reporting with
 * file:line, copies into the map's memory, and which keys a section gave.
 * Implemented by gateway/config_keys.c through function pointers, so adapters
 * need nothing from the gateway library at link time.
 */
struct ad_parse_ops {
	void (*verror)(struct ad_parse *ap, unsigned int line, const char *fmt, va_list va);
	char *(*strdup)(struct ad_parse *ap, const char *s); /* NULL when out of memory */
	char *(*path)(struct ad_parse *ap, const char *s);   /* relative to the naming file */
};

/*
 * The common keys of the device map (the loader's rows), for hooks that
 * ask whether the section gave one: ad_given_common(ap, AD_CD_POLL).
 */
enum ad_common_bus_key {
	AD_CB_PROTOCOL, /* optional: the protocol of the devices naming the bus */
	__AD_CB_MAX,
};

enum ad_common_device_key {
	AD_CD_PROTOCOL,
	AD_CD_BUS,
	AD_CD_POLL,
	AD_CD_PUBLISH,
	__AD_CD_MAX,
};

enum ad_common_point_key {
	AD_CP_TYPE,
	AD_CP_SCALE,
	AD_CP_OFFSET,
	AD_CP_DEADBAND,
	AD_CP_UNIT,
	AD_CP_ACCESS,
	AD_CP_PUBLISH,
	AD_CP_DEVICE_CLASS,
	AD_CP_STATE_CLASS,
	__AD_CP_MAX,
};

struct ad_parse {
	const struct ad_parse_ops *ops;
	const char *file;     /* the file of the current section */
	unsigned int line;    /* of the current key, or of the section header in hooks */
	const char *section;  /* "device:boiler", without brackets */
	uint64_t seen;	      /* in hooks: bit i set when the section gave the adapter's key i
				(for an implicit bus: the device's inline bus keys) */
	uint64_t common_seen; /* in hooks: the same for the common keys (enum ad_common_*) */
};

static inline void ad_parse_error(struct ad_parse *ap, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline void ad_parse_error(struct ad_parse *ap, unsigned int line, const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	ap->ops->verror(ap, line, fmt, va);
	va_end(va);
}

/* Whether the section gave the adapter's key @idx (valid in hooks). */
static inline bool ad_given(const struct ad_parse *ap, unsigned int idx)
{
	return idx < 64 && (ap->seen & (1ULL << idx));
}

/* Whether the section gave the common key @idx (enum ad_common_*_key; valid in hooks). */
static inline bool ad_given_common(const struct ad_parse *ap, unsigned int idx)
{
	return idx < 64 && (ap->common_seen & (1ULL << idx));
}

/*
 * An adapter's device-map schema. Hooks run after every file is read, in
 * this order: buses (named ones; an implicit bus right before its device),
 * devices, points; each with ap->file, ap->section and ap->seen set, and
 * ap->line at the section's header. A hook reports with ad_parse_error() and
 * returns 0, or -EINVAL to drop the object (its dependants are then not
 * checked: an error was already said), or -ENOMEM.
 *  check_bus: @b->ext is filled; for an implicit bus, b->name is the
 *             device's and ap->seen says which inline keys the device gave.
 *  check_device: d->bus is resolved (named or implicit), d->ext filled.
 *  check_point: pt->device is set (its ext checked); common keys filled
 *             (pt->publish may still be INHERIT).
 * @point_type is the default of the common "type" key for this protocol.
 */
struct ad_schema {
	struct ad_keys bus;
	struct ad_keys device;
	struct ad_keys point;
	enum ad_point_type point_type;
	int (*check_bus)(struct ad_parse *ap, struct ad_bus *b);
	int (*check_device)(struct ad_parse *ap, struct ad_device *d);
	int (*check_point)(struct ad_parse *ap, struct ad_point *pt);
};

/* --------------------------------------------------------------- readings */

/* One normalised reading, as every adapter produces it. */
struct ad_reading {
	const struct ad_device *device;
	const struct ad_point *point;
	struct ad_value value;
	enum ad_quality quality;
	int64_t ts_ms; /* when the value was read, ms since the Unix epoch */
};

/* --------------------------------------------------------------- interface */

struct ad_adapter;

/* Result of a command (a write), reported back to the gateway. */
struct ad_cmd_result {
	bool ok;
	const char *error; /* NULL when ok: "illegal data address", "timeout", ... */
	struct ad_value value;
	int64_t ts_ms;
};

/*
 * What the gateway gives an adapter. All callbacks run on the loop thread.
 * on_reading: a new reading (the gateway applies the publish policy).
 * on_status: a device went online / offline.
 * on_cmd_done: a command finished; @token is what was passed to ->command.
 */
struct ad_sink {
	void *arg;
	void (*on_reading)(void *arg, const struct ad_reading *r);
	void (*on_status)(void *arg, const struct ad_device *dev, bool online);
	void (*on_cmd_done)(void *arg, void *token, const struct ad_cmd_result *res);
};

/*
 * The adapter interface. An adapter serves the devices of one protocol in a
 * map (map->devices[i]->protocol); it must ignore the others.
 * start(): open what it needs; 0 or -errno (a device that cannot be reached
 *   now is not an error: the adapter retries it). On failure nothing is left
 *   open and free() may follow directly.
 * stop(): begin an asynchronous close; @done(@arg) once every handle is
 *   closed (pending commands are answered through on_cmd_done first); then
 *   free(). free() alone is allowed on an adapter never started.
 * reload(): optional. Serve @map from now on instead of the map it was
 *   created with (readings and statuses refer to @map's objects at once);
 *   0, or -ENOTSUP (also when NULL): the gateway then creates a new adapter
 *   for @map, starts it and stops this one (the SIGHUP dance, written once
 *   in gateway.c).
 * command(): write @value to @pt (a point of this adapter's protocol, whose
 *   access is rw); 0 if accepted (the result comes through on_cmd_done with
 *   @token), or -EINVAL / -EACCES / -ERANGE / -ENOBUFS when refused before
 *   reaching the device, with *why set to a static message for the result
 *   topic. NULL: the adapter has no writable points.
 * figures(): optional. The adapter's counters for $SYS: @emit(@arg, name,
 *   value) once per figure, @name relative to $SYS/fieldmq/<protocol>/ (e.g.
 *   "lines", "bus/gps/lines"; at most 200 bytes, no wildcards). Called at the
 *   broker's sys_interval; the gateway publishes them retained. NULL: none.
 * device_stats(): optional. @d's request figures into @out: 0, or -ENOENT
 *   when @a does not serve @d. Read for /metrics. NULL: none.
 * Every op runs on the loop thread.
 */
typedef void (*ad_figure_fn)(void *arg, const char *name, uint64_t value);

/* Kinds of device errors, for /metrics (errors by kind). */
enum ad_err_kind {
	AD_ERR_TIMEOUT,	  /* no answer in time */
	AD_ERR_EXCEPTION, /* the device refused: a Modbus exception, a CoAP 4.xx / 5.xx */
	AD_ERR_TRANSPORT, /* connection refused or lost, RST / ICMP, a port that cannot be
			     opened or written, a malformed Modbus answer, ... */
	AD_ERR_PARSE,	  /* an answer that could not be read: a payload no point can read, a
			     line that does not match while a question is out, a bad checksum */
	AD_ERR_TLS,	  /* the DTLS handshake failed */
	AD_ERR_OVERRUN,	  /* a frame longer than the bus allows (serial max_frame), dropped */
	__AD_ERR_MAX,
};

/* The bit of @kind in ad_device_stats.kinds. */
#define AD_ERR_BIT(kind) (1u << (kind))

/*
 * One device's request figures (device_stats()); a plain struct, no
 * allocation. What a request is depends on the protocol: a Modbus request
 * (reads and writes), a CoAP GET or notification, a serial poll or a frame
 * of a device that talks by itself. Errors are events: a serial poll can
 * get a garbled line, then time out.
 */
struct ad_device_stats {
	uint64_t requests;	       /* requests that ended (answered or failed) */
	uint64_t errors[__AD_ERR_MAX]; /* errors, by kind */
	struct gw_hist latency; /* from sending a request to its answer (Modbus: or failure) */
	uint32_t kinds;		/* AD_ERR_BIT()s of the kinds the adapter counts */
};

struct ad_ops {
	const char *name;
	int (*start)(struct ad_adapter *a);
	void (*stop)(struct ad_adapter *a, void (*done)(void *arg), void *arg);
	void (*free)(struct ad_adapter *a);
	int (*reload)(struct ad_adapter *a, const struct ad_map *map);
	int (*command)(struct ad_adapter *a, const struct ad_point *pt,
		       const struct ad_value *value, void *token, const char **why);
	void (*figures)(const struct ad_adapter *a, ad_figure_fn emit, void *arg);
	int (*device_stats)(const struct ad_adapter *a, const struct ad_device *d,
			    struct ad_device_stats *out);
};

/* Embedded first in every adapter's own struct. */
struct ad_adapter {
	const struct ad_ops *ops;
	struct uv_loop_s *loop;
	const struct gw_logger *log;
	const struct ad_map *map;
	struct ad_sink sink;
};

/*
 * An adapter's constructor: an adapter for the devices of its protocol in
 * @map (which, with @log and @loop, outlives it; @sink is copied). Nothing
 * is opened until start(). NULL when out of memory or when the map cannot be
 * served (the reason logged with file:line).
 */
typedef struct ad_adapter *(*ad_create_fn)(struct uv_loop_s *loop, const struct ad_map *map,
					   const struct gw_logger *log, const struct ad_sink *sink);

/*
 * One row of the adapter registry (gateway/adapters.c), indexed by enum
 * ad_protocol. @name is the value of "protocol =" in a [device:] section. A
 * row with a name and no schema is a protocol this build does not have:
 * devices naming it are refused with "not available in this version".
 */
struct ad_driver {
	const char *name;
	const struct ad_schema *schema;
	ad_create_fn create;
};

#endif
