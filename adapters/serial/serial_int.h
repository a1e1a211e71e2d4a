/*
 * serial_int.h - the serial adapter's private interface: the framer (bytes to
 * frames), the five parsers (regex, csv, kv, json, nmea), value conversion,
 * the command formatter and the per-port state machine (hotplug, polls,
 * commands), all sans-I/O with the time passed in.
 *
 * Nothing declared here logs, reads a clock or touches libuv. The json
 * parser hands the frame to cJSON, which builds its tree in the port's arena
 * (gateway/base/arena.h: no allocator call per line once warm) and drops it
 * before ser_line_fini() returns. Included only by adapters/serial/, its
 * tests, fuzz targets and benchmark.
 */
#ifndef FIELDMQ_SERIAL_INT_H
#define FIELDMQ_SERIAL_INT_H

#include <regex.h>

#include "adapters/serial/serial_adapter.h"
#include "gateway/base/arena.h"

#define SER_MAX_DELIM 8	    /* bytes of a line delimiter */
#define SER_MAX_FIELDS 64   /* csv columns and kv pairs looked at per line */
#define SER_MAX_GROUPS 10   /* regex groups a point can name: 1..9 */
#define SER_MAX_CMD 256	    /* bytes of one poll or write command */
#define SER_MAX_QUEUE 16    /* requests waiting per port */
#define SER_MAX_MATCH 8	    /* pointer=value terms of a json match */
#define SER_MAX_FRAME 65536 /* highest max_frame */
#define SER_OFFLINE_AFTER 3 /* poll timeouts in a row that make a device offline */
#define SER_TEXT_MAX 64	    /* longest number text converted */
/*
 * The arena of a port's JSON trees: 4 KiB hold a few rtl_433 lines' trees;
 * a line whose tree needs more than 256 KiB (about 8 KiB of dense JSON) is a
 * bad line (-EBADMSG), and the port keeps what it grew to, up to the cap.
 */
#define SER_JSON_ARENA_WARM 4096
#define SER_JSON_ARENA_CAP (256 * 1024)

/* ------------------------------------------------------------------- text */

/*
 * Decode a config string: surrounding double quotes are dropped, and the C
 * escapes \r \n \t \\ \" \0 and \xHH become bytes. Writes at most @cap bytes
 * into @out. Returns the length, -EINVAL for a bad escape, -EMSGSIZE when it
 * does not fit.
 */
int ser_unescape(const char *in, uint8_t *out, size_t cap);

/* ----------------------------------------------------------------- framer */

enum ser_framing {
	SER_FR_LINE,	/* a delimiter ends a frame; text: \r stripped */
	SER_FR_LENGTH,	/* every frame is `length` bytes */
	SER_FR_IDLE,	/* a frame ends after idle_gap of silence */
	SER_FR_STX_ETX, /* frames between a start and an end byte */
	__SER_FR_MAX,
};

struct ser_framer_conf {
	enum ser_framing mode;
	uint8_t delim[SER_MAX_DELIM];
	uint8_t delim_len; /* >= 1 for line */
	uint32_t length;   /* length: 1..max_frame */
	uint32_t idle_gap_ms;
	uint8_t start, end;
	uint32_t max_frame; /* 1..SER_MAX_FRAME */
	bool hex;	    /* hand frames on as upper-case hex text */
};

struct ser_framer_stats {
	uint64_t frames;   /* frames handed on */
	uint64_t bytes;	   /* bytes fed */
	uint64_t overlong; /* frames cut at max_frame and dropped */
	uint64_t dropped;  /* bytes dropped: overlong rest, noise outside start/end */
};

/* Called with each frame; @frame[len] is a NUL the callee may rely on. */
typedef void (*ser_frame_fn)(void *arg, const uint8_t *frame, size_t len);

struct ser_framer {
	struct ser_framer_conf conf;
	uint8_t *buf; /* caller's, ser_framer_buf_size() bytes */
	size_t len;
	uint8_t dmatch;	 /* line: delimiter bytes matched so far */
	bool skipping;	 /* dropping the rest of an overlong frame */
	bool in_frame;	 /* stx_etx: a start byte was seen */
	int64_t last_ms; /* idle: when the last byte came */
	struct ser_framer_stats st;
};

/* Bytes of buffer a framer with @c needs. */
size_t ser_framer_buf_size(const struct ser_framer_conf *c);

/* Set up @f over @buf (ser_framer_buf_size(@c) bytes, caller-owned). */
void ser_framer_init(struct ser_framer *f, const struct ser_framer_conf *c, uint8_t *buf);

/* Forget a partial frame (the port was reopened). Counters stay. */
void ser_framer_reset(struct ser_framer *f);

/*
 * Feed @n bytes received at @now; @fn runs for every frame completed. In
 * idle mode a gap of idle_gap since the last byte first ends the pending
 * frame, so a missed tick loses nothing.
 */
void ser_framer_feed(struct ser_framer *f, const uint8_t *p, size_t n, int64_t now, ser_frame_fn fn,
		     void *arg);

/* When ser_framer_tick() has work (idle mode, bytes pending), or -1. */
int64_t ser_framer_deadline(const struct ser_framer *f);

/* Idle mode: end the pending frame if idle_gap has passed at @now. */
void ser_framer_tick(struct ser_framer *f, int64_t now, ser_frame_fn fn, void *arg);

/* ------------------------------------------------------------------- nmea */

enum ser_nmea_field {
	SER_NMEA_LAT,	 /* decimal degrees, south negative (GGA, RMC, GLL) */
	SER_NMEA_LON,	 /* decimal degrees, west negative (GGA, RMC, GLL) */
	SER_NMEA_ALT,	 /* metres above mean sea level (GGA) */
	SER_NMEA_SPEED,	 /* km/h over ground (VTG, RMC) */
	SER_NMEA_COURSE, /* degrees true (VTG, RMC) */
	SER_NMEA_FIX,	 /* GGA fix quality: 0 none, 1 GPS, 2 DGPS, 4 RTK, ... */
	SER_NMEA_SATS,	 /* satellites used (GGA) */
	SER_NMEA_HDOP,	 /* GGA, GSA */
	SER_NMEA_UTC,	 /* date and time: Unix seconds, or ISO 8601 text for strings (RMC, ZDA) */
	SER_NMEA_PDOP,	 /* GSA */
	SER_NMEA_VDOP,	 /* GSA */
	SER_NMEA_MODE,	 /* GSA: 1 no fix, 2 2D, 3 3D */
	SER_NMEA_SATS_VIEW, /* satellites in view (GSV) */
	__SER_NMEA_MAX,
};

extern const char *const ser_nmea_field_names[__SER_NMEA_MAX];

enum ser_nmea_type {
	SER_NMEA_GGA,
	SER_NMEA_RMC,
	SER_NMEA_VTG,
	SER_NMEA_GSA,
	SER_NMEA_GSV,
	SER_NMEA_ZDA,
	SER_NMEA_GLL,
	__SER_NMEA_TYPE_MAX,
};

/* What one sentence carries: a bit per field in `has`, and in `bad` for
 * those present but empty or malformed (e.g. no fix yet). */
struct ser_nmea {
	enum ser_nmea_type type;
	char talker[3]; /* "GP", "GN", ... */
	uint32_t has, bad;
	double v[__SER_NMEA_MAX];
};

/*
 * Decode one NMEA 0183 sentence ("$GPGGA,...*hh", no line end). Returns 1
 * with @out filled, 0 for a sentence of a type not decoded (or a
 * proprietary one), -EBADMSG for a missing or wrong checksum or a sentence
 * that is not NMEA. [NMEA 0183 4.10, 5.3: checksum = XOR of the bytes
 * between '$' and '*'.]
 */
int ser_nmea_decode(const uint8_t *p, size_t len, struct ser_nmea *out);

/* ----------------------------------------------------------------- values */

/*
 * Convert @len bytes of text (not NUL-terminated) to a value of point type
 * @type, then apply @scale and @offset (a scaled number becomes a double).
 * Surrounding blanks are ignored. Integers take an optional 0x prefix;
 * bool takes 1/0/true/false/on/off/yes/no or a number (non-zero is true).
 * String values are slices of the text. Returns 0, -EINVAL when the text
 * does not parse, -ERANGE when it does not fit the type.
 */
int ser_convert_text(enum ad_point_type type, double scale, double offset, const uint8_t *p,
		     size_t len, struct ad_value *out);

/* Convert a number (from JSON or NMEA) the same way. -ERANGE, -EINVAL (NaN). */
int ser_convert_num(enum ad_point_type type, double scale, double offset, double d,
		    struct ad_value *out);

/* --------------------------------------------------------------- commands */

/*
 * A write_command template: text with exactly one conversion, %v (the value
 * as it prints in a payload) or a printf conversion with flags, width and
 * precision: d i (integers), u x X o (non-negative integers), f F e E g G
 * (numbers), s (the value as text). %% is a literal %.
 */
struct ser_fmt {
	uint8_t text[SER_MAX_CMD];
	size_t len;
	size_t conv_at;	 /* offset of the conversion in text */
	size_t conv_len; /* its length */
	char conv;	 /* 'v', 'd', 'u', 'f', 's', ... */
};

/* Compile @tmpl (already unescaped, @len bytes). 0, or -EINVAL with *why set. */
int ser_fmt_compile(const uint8_t *tmpl, size_t len, struct ser_fmt *f, const char **why);

/*
 * Render @v into @out (capacity @cap) through @f. Numbers are first turned
 * back into the device's raw value: raw = (v - offset) / scale. Returns the
 * length, or -EINVAL (wrong type: a string to %d, a fraction to an integer
 * conversion, a negative number to %u), -ERANGE, -EMSGSIZE, with *why set.
 */
int ser_fmt_render(const struct ser_fmt *f, const struct ad_value *v, double scale, double offset,
		   uint8_t *out, size_t cap, const char **why);

/* ---------------------------------------------------------------- parsers */

enum ser_parser {
	SER_PARSE_REGEX,
	SER_PARSE_CSV,
	SER_PARSE_KV,
	SER_PARSE_JSON,
	SER_PARSE_NMEA,
	__SER_PARSE_MAX,
};

extern const char *const ser_parser_names[__SER_PARSE_MAX];

/* A point as the parsers see it: where its value is and how to convert it. */
struct ser_point {
	const struct ad_point *pt; /* passed through to readings; may be NULL in tests */
	enum ad_point_type type;
	double scale, offset;
	unsigned int group;  /* regex: 1..9 */
	unsigned int column; /* csv: 1-based; 0 = by name (column_name) */
	const char *column_name;
	unsigned int col_found; /* csv: column of column_name in the last header, 0 none */
	const char *key;	/* kv */
	const char *json_pointer;
	enum ser_nmea_field field;
	bool hex; /* the bus has encoding = hex: integers in the text are hex digits */
	/* commands (access = rw) */
	bool writable;
	const struct ser_fmt *write_fmt; /* NULL: not writable through the line */
	const regex_t *write_response;	 /* NULL: a written command is done */
	/* state */
	bool bad;      /* the last value did not parse (reported once) */
	bool has_good; /* a good value was reported since the port opened */
};

/* One json match term: the value at @pointer must print as @value. */
struct ser_jmatch {
	const char *pointer;
	const char *value;
};

/* A device as the parsers see it. */
struct ser_dev {
	const struct ad_device *dev; /* passed through; may be NULL in tests */
	enum ser_parser parser;
	const regex_t *match; /* regex (required), csv, kv, nmea: lines of this device */
	unsigned int n_groups;
	struct ser_jmatch jmatch[SER_MAX_MATCH];
	unsigned int n_jmatch;
	uint8_t separator;	  /* csv */
	bool header;		  /* csv: the points name columns of a header line */
	const char *pair_seps;	  /* kv: any of these separates pairs */
	const char *kv_seps;	  /* kv: any of these separates a key from its value */
	struct ser_point *points; /* caller-owned */
	unsigned int n_points;
	/* polling (state machine) */
	uint32_t poll_ms;	 /* 0: the device talks by itself */
	const uint8_t *poll_cmd; /* NULL: no query */
	size_t poll_cmd_len;
	int64_t next_poll;
	bool poll_queued;
	int64_t last_seen; /* when a line of this device last came */
	bool online;
	bool status_known;
	unsigned int timeouts; /* in a row */
	/*
	 * For /metrics (ser_dev_stats()): requests are polls that ended
	 * (answered, timed out, or cut by the port failing) and, for a device
	 * that talks by itself, the frames it took (or that looked like its
	 * own and could not be read); latency from writing the poll_command to
	 * the answer; errors by kind: timeout, parse (a field or line that did
	 * not parse, a line nobody took while its question was out), overrun
	 * (a frame over max_frame while it was asked, or, for a device that
	 * talks by itself, at any time) and transport (the port could not be
	 * opened, went away or refused a write: every device of the port).
	 * Commands (write_command) are not counted.
	 */
	struct ad_device_stats st;
};

/* What a parser found for one point. */
enum ser_found {
	SER_ABSENT, /* this line does not carry the point */
	SER_OK,
	SER_BAD, /* carried, but does not parse */
};

struct ser_result {
	enum ser_found found;
	struct ad_value value; /* SER_OK; strings point into the line or `text` */
	char text[32];	       /* nmea utc as text */
};

/*
 * One frame being parsed, shared by every device of the port: the csv split,
 * the JSON tree and the NMEA decode are done once per line, on first use.
 */
struct ser_line {
	const uint8_t *p; /* NUL at p[len] */
	size_t len;
	uint8_t csv_sep;
	bool csv_done, json_done, nmea_done;
	unsigned int n_fields;
	struct gw_slice fields[SER_MAX_FIELDS];
	void *json;		/* cJSON *, dropped by ser_line_fini() */
	struct gw_arena *arena; /* where the tree is built, or NULL: the heap */
	int nmea_rc;
	struct ser_nmea nmea;
};

/*
 * @p[len] must be NUL. @arena (or NULL for the heap) takes the JSON tree and
 * is reset by ser_line_fini(): one line at a time per arena.
 */
void ser_line_init(struct ser_line *l, const uint8_t *p, size_t len, struct gw_arena *arena);
void ser_line_fini(struct ser_line *l);

/*
 * Parse @l for @d: 1 when the line is @d's (@res[i] filled for each of its
 * points), 0 when it is not, 2 for a csv header line taken (no values),
 * -EBADMSG for a line that looks like the parser's but cannot be read (a
 * '{' line that is not JSON, a '$' sentence with a bad checksum). @d's csv header map is updated; nothing else is written.
 */
int ser_parse(struct ser_dev *d, struct ser_line *l, struct ser_result *res);

/* ser_parse() for parser = json (serial_json.c). */
int ser__parse_json(struct ser_dev *d, struct ser_line *l, struct ser_result *res);

/*
 * The value at RFC 6901 pointer @ptr in @root (a cJSON *), or NULL. "" is
 * the whole document; ~1 is '/', ~0 is '~'; array indexes are decimal
 * without leading zeros ("-" is never an element).
 */
const void *ser_json_get(const void *root, const char *ptr);

/*
 * Split a json match ("/model=Acurite-Tower,/id=1234") into terms. The text
 * is cut in place (NULs written into @s, which must outlive @d). A term
 * ends at a ',' followed by '/'. Returns 0 or -EINVAL with *why set.
 */
int ser_jmatch_parse(char *s, struct ser_dev *d, const char **why);

/* ------------------------------------------------------- device-map keys */

enum ser_bus_type {
	SER_BUS_SERIAL, /* a tty: /dev/ttyUSB0, /dev/serial/by-id/... */
	SER_BUS_TCP,	/* a raw TCP serial server (ser2net, a Moxa NPort in TCP server mode) */
	__SER_BUS_MAX,
};

enum ser_flow {
	SER_FLOW_NONE,
	SER_FLOW_RTSCTS,
	SER_FLOW_XONXOFF,
	__SER_FLOW_MAX,
};

/* [bus:] of a serial device, as the loader fills it (ad_bus->ext). */
struct ser_bus {
	enum ser_bus_type type;
	char *device;
	uint32_t baud;
	uint8_t parity; /* 'N' 'E' 'O' */
	uint8_t data_bits;
	uint8_t stop_bits;
	enum ser_flow flow;
	char *host;
	uint16_t port;
	enum ser_framing framing;
	char *delimiter; /* escaped, as written */
	uint32_t length;
	uint32_t idle_gap_ms;
	char *start, *end; /* escaped, one byte each */
	uint64_t max_frame;
	int encoding; /* 0 text, 1 hex */
	uint32_t timeout_ms;
	uint32_t reopen_min_ms, reopen_max_ms;
	struct ser_framer_conf fc; /* set by the bus check */
};

/* [device:] of protocol serial (ad_device->ext). */
struct ser_device {
	enum ser_parser parser;
	char *match;
	char *separator; /* csv, escaped */
	bool header;
	char *pair_separator, *kv_separator; /* kv, escaped */
	char *poll_command;		     /* escaped */
	uint32_t interval_ms;		     /* how often a device that talks by itself does */
	uint32_t stale_after_ms;
	char *write_command, *write_response; /* defaults of the device's rw points */
	unsigned int n_groups;		      /* regex: groups in match (set by the check) */
};

/* [point:] of a serial device (ad_point->ext). */
struct ser_point_keys {
	uint8_t group;
	char *column; /* a number, or a header name */
	char *key;
	char *json_pointer;
	enum ser_nmea_field field;
	char *write_command, *write_response; /* default: the device's */
};

static inline struct ser_bus *ser_bus_of(const struct ad_bus *b)
{
	return b->ext;
}

static inline struct ser_device *ser_device_of(const struct ad_device *d)
{
	return d->ext;
}

static inline struct ser_point_keys *ser_point_of(const struct ad_point *pt)
{
	return pt->ext;
}

/* ----------------------------------------------------------- port machine */

enum ser_port_state {
	SER_PORT_CLOSED,  /* waiting to (re)open at retry_at */
	SER_PORT_OPENING, /* ops->open called, waiting for ser_port_opened() */
	SER_PORT_OPEN,
	SER_PORT_STOPPED,
};

struct ser_port_stats {
	uint64_t lines;	       /* frames parsed */
	uint64_t unmatched;    /* frames no device took */
	uint64_t readings;     /* values reported (good or bad) */
	uint64_t bad_values;   /* fields that did not parse */
	uint64_t bad_lines;    /* not JSON, bad NMEA checksum */
	uint64_t polls;	       /* poll commands sent */
	uint64_t timeouts;     /* requests unanswered within timeout */
	uint64_t overruns;     /* polls skipped: the previous one still waiting */
	uint64_t writes;       /* write commands sent */
	uint64_t write_errors; /* writes the port refused */
	uint64_t opens;	       /* successful opens */
	uint64_t open_failures;
	uint64_t closes;      /* the port went away while open */
	uint64_t cmd_refused; /* commands refused: queue full, port closed */
};

enum ser_req_kind {
	SER_REQ_POLL,
	SER_REQ_WRITE,
};

struct ser_req {
	enum ser_req_kind kind;
	struct ser_dev *d;
	struct ser_point *pt; /* write */
	void *token;	      /* write: the gateway's */
	struct ad_value value;
	size_t len;
	uint8_t data[SER_MAX_CMD]; /* last: push() clears only what comes before */
};

struct ser_port;

/*
 * The I/O the machine asks for. All run synchronously inside the machine's
 * calls; none may call back into the machine except ser_port_opened() from
 * open (a synchronous open) - everything else is reported by later calls.
 * open: start opening the port; the glue answers with ser_port_opened().
 * close: close it (the machine has already marked it closed).
 * write: queue @n bytes; 0, or -errno when the port cannot take them (the
 *        machine then closes the port and reopens it).
 * reading/status/cmd_done: results for the gateway.
 */
struct ser_port_ops {
	void (*open)(void *arg);
	void (*close)(void *arg);
	int (*write)(void *arg, const uint8_t *p, size_t n);
	void (*reading)(void *arg, const struct ser_dev *d, const struct ser_point *pt,
			const struct ad_value *v, enum ad_quality q);
	void (*status)(void *arg, const struct ser_dev *d, bool online);
	void (*cmd_done)(void *arg, void *token, bool ok, const char *error,
			 const struct ad_value *v);
};

struct ser_port {
	const struct ser_port_ops *ops;
	void *arg;
	enum ser_port_state state;
	struct ser_framer framer;
	struct ser_dev *devs; /* caller-owned */
	unsigned int n_devs;
	uint32_t timeout_ms;
	uint32_t reopen_min_ms, reopen_max_ms;
	uint32_t backoff_ms;
	int64_t retry_at;
	int64_t now; /* time of the event being handled */
	/* requests: a ring; the head is in flight when busy */
	struct ser_req q[SER_MAX_QUEUE];
	unsigned int q_head, q_len;
	bool busy;
	int64_t req_deadline;
	int64_t sent_at;	/* when the request in flight was written */
	struct ser_result *res; /* caller's, max points of a device */
	int last_error;		/* -errno of the last failed open / close */
	struct ser_port_stats st;
	struct gw_arena json_arena; /* the JSON tree of the line being parsed */
};

/*
 * Set up @p. @framer_buf: ser_framer_buf_size(@fc) bytes; @res: as many
 * results as the device with most points has. Everything passed stays
 * owned by the caller and must outlive @p.
 */
void ser_port_init(struct ser_port *p, const struct ser_port_ops *ops, void *arg,
		   const struct ser_framer_conf *fc, uint8_t *framer_buf, struct ser_dev *devs,
		   unsigned int n_devs, struct ser_result *res, uint32_t timeout_ms,
		   uint32_t reopen_min_ms, uint32_t reopen_max_ms);

/* Free what @p grew (the JSON arena); after ser_port_stop() or before the port ever opened. */
void ser_port_fini(struct ser_port *p);

/* Open the port now (ops->open). */
void ser_port_start(struct ser_port *p, int64_t now);

/* The open begun by ops->open finished: 0 or -errno (then retried with backoff). */
void ser_port_opened(struct ser_port *p, int64_t now, int err);

/* Bytes read from the port. */
void ser_port_data(struct ser_port *p, const uint8_t *data, size_t n, int64_t now);

/* The port failed (EOF, read or write error, hang-up): close, reopen later. */
void ser_port_failed(struct ser_port *p, int64_t now, int err);

/* Timers: reopen, polls, request timeout, idle framing. */
void ser_port_tick(struct ser_port *p, int64_t now);

/* When ser_port_tick() is next needed (absolute ms), or -1. */
int64_t ser_port_deadline(const struct ser_port *p);

/*
 * Queue a write of @v to @pt (a point of @d). 0 when queued (the result
 * comes through ops->cmd_done with @token), or refused with *why set:
 * -EACCES not writable, -EINVAL / -ERANGE the value does not fit the
 * command, -ENOTCONN the port is not open, -EBUSY the queue is full.
 */
int ser_port_command(struct ser_port *p, struct ser_dev *d, struct ser_point *pt,
		     const struct ad_value *v, void *token, const char **why, int64_t now);

/* Stop: pending commands end with "stopped", the port is closed if open. */
void ser_port_stop(struct ser_port *p, int64_t now);

/* @d's figures for /metrics (ad_ops.device_stats), with the kinds the machine counts. */
void ser_dev_stats(const struct ser_dev *d, struct ad_device_stats *out);

#endif
