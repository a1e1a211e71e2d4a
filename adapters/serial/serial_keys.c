/*
 * serial_keys.c - the serial adapter's device-map keys: one row per key of
 * its [bus:], [device:] and [point:] sections, and the checks that need a
 * whole section: the transport's required keys, the framer's bytes, regexes
 * compiled once to be refused at load time with file:line, write_command
 * templates checked, one location key per point matching its parser.
 *
 * Pure apart from regcomp/regfree (libc's allocation, freed before return).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

/* ------------------------------------------------------------------- bus */

enum {
	SB_TYPE,
	SB_DEVICE,
	SB_BAUD,
	SB_PARITY,
	SB_DATA_BITS,
	SB_STOP_BITS,
	SB_FLOW,
	SB_HOST,
	SB_PORT,
	SB_FRAMING,
	SB_DELIMITER,
	SB_LENGTH,
	SB_IDLE_GAP,
	SB_START,
	SB_END,
	SB_MAX_FRAME,
	SB_ENCODING,
	SB_TIMEOUT,
	SB_REOPEN_MIN,
	SB_REOPEN_MAX,
	__SB_MAX,
};

static const char *const bus_types[] = { "serial", "tcp", NULL };
static const char *const parities[] = { "N", "E", "O", NULL };
static const int parity_vals[] = { 'N', 'E', 'O' };
static const char *const flows[] = { "none", "rtscts", "xonxoff", NULL };
static const char *const framings[] = { "line", "length", "idle", "stx_etx", NULL };
static const char *const encodings[] = { "text", "hex", NULL };
static const char *const parsers[] = { "regex", "csv", "kv", "json", "nmea", NULL };
static const char *const nmea_fields[] = { "lat",  "lon",  "alt",	"speed", "course",
					   "fix",  "sats", "hdop",	"utc",	 "pdop",
					   "vdop", "mode", "sats_view", NULL };

#define BK(f) offsetof(struct ser_bus, f)
static const struct ad_key bus_rows[__SB_MAX] = {
	[SB_TYPE] = { .name = "type",
		      .type = AD_K_ENUM,
		      .off = BK(type),
		      .size = sizeof(enum ser_bus_type),
		      .enums = bus_types,
		      .def = "serial",
		      .help = "serial: a tty (device); tcp: a raw TCP serial server (host, port)" },
	[SB_DEVICE] = { .name = "device",
			.type = AD_K_STR,
			.off = BK(device),
			.help = "e.g. /dev/ttyUSB0 or /dev/serial/by-id/...; may be missing at start" },
	[SB_BAUD] = { .name = "baud",
		      .type = AD_K_INT,
		      .off = BK(baud),
		      .size = 4,
		      .min = 50,
		      .max = 4000000,
		      .def = "9600" },
	[SB_PARITY] = { .name = "parity",
			.type = AD_K_ENUM,
			.off = BK(parity),
			.size = 1,
			.enums = parities,
			.enum_vals = parity_vals,
			.def = "N" },
	[SB_DATA_BITS] = { .name = "data_bits",
			   .type = AD_K_INT,
			   .off = BK(data_bits),
			   .size = 1,
			   .min = 5,
			   .max = 8,
			   .def = "8" },
	[SB_STOP_BITS] = { .name = "stop_bits",
			   .type = AD_K_INT,
			   .off = BK(stop_bits),
			   .size = 1,
			   .min = 1,
			   .max = 2,
			   .def = "1" },
	[SB_FLOW] = { .name = "flow",
		      .type = AD_K_ENUM,
		      .off = BK(flow),
		      .size = sizeof(enum ser_flow),
		      .enums = flows,
		      .def = "none",
		      .help = "none | rtscts | xonxoff" },
	[SB_HOST] = { .name = "host",
		      .type = AD_K_STR,
		      .off = BK(host),
		      .help = "type = tcp: address of the serial server" },
	[SB_PORT] = { .name = "port",
		      .type = AD_K_INT,
		      .off = BK(port),
		      .size = 2,
		      .min = 1,
		      .max = 65535,
		      .help = "type = tcp: its TCP port" },
	[SB_FRAMING] = { .name = "framing",
			 .type = AD_K_ENUM,
			 .off = BK(framing),
			 .size = sizeof(enum ser_framing),
			 .enums = framings,
			 .def = "line",
			 .help = "line | length | idle | stx_etx" },
	[SB_DELIMITER] = { .name = "delimiter",
			   .type = AD_K_STR,
			   .off = BK(delimiter),
			   .def = "\\n",
			   .help = "line: 1-8 bytes, C escapes (\\r\\n, \\x03); \\r around lines is stripped" },
	[SB_LENGTH] = { .name = "length",
			.type = AD_K_INT,
			.off = BK(length),
			.size = 4,
			.min = 1,
			.max = SER_MAX_FRAME,
			.help = "length: bytes of every frame" },
	[SB_IDLE_GAP] = { .name = "idle_gap",
			  .type = AD_K_DUR,
			  .off = BK(idle_gap_ms),
			  .size = 4,
			  .min = 1,
			  .max = 60000,
			  .def = "50ms",
			  .help = "idle: silence that ends a frame" },
	[SB_START] = { .name = "start",
		       .type = AD_K_STR,
		       .off = BK(start),
		       .def = "\\x02",
		       .help = "stx_etx: the byte that starts a frame" },
	[SB_END] = { .name = "end",
		     .type = AD_K_STR,
		     .off = BK(end),
		     .def = "\\x03",
		     .help = "stx_etx: the byte that ends a frame" },
	[SB_MAX_FRAME] = { .name = "max_frame",
			   .type = AD_K_SIZE,
			   .off = BK(max_frame),
			   .size = 8,
			   .min = 1,
			   .max = SER_MAX_FRAME,
			   .def = "2K",
			   .help = "longer frames are dropped up to the next boundary and counted" },
	[SB_ENCODING] = { .name = "encoding",
			  .type = AD_K_ENUM,
			  .off = BK(encoding),
			  .size = sizeof(int),
			  .enums = encodings,
			  .def = "text",
			  .help = "hex: binary frames reach the parser as upper-case hex text" },
	[SB_TIMEOUT] = { .name = "timeout",
			 .type = AD_K_DUR,
			 .off = BK(timeout_ms),
			 .size = 4,
			 .min = 1,
			 .max = 600000,
			 .def = "1s",
			 .help = "answer to a poll_command or write_command" },
	[SB_REOPEN_MIN] = { .name = "reopen_min",
			    .type = AD_K_DUR,
			    .off = BK(reopen_min_ms),
			    .size = 4,
			    .min = 1,
			    .max = 3600000,
			    .def = "1s",
			    .help = "first wait before reopening a missing port (doubles)" },
	[SB_REOPEN_MAX] = { .name = "reopen_max",
			    .type = AD_K_DUR,
			    .off = BK(reopen_max_ms),
			    .size = 4,
			    .min = 1,
			    .max = 3600000,
			    .def = "30s" },
};

/* An escaped key value as one byte; reports and returns -1 otherwise. */
static int one_byte(struct ad_parse *ap, const char *key, const char *val)
{
	uint8_t b[2];

	if (ser_unescape(val, b, sizeof(b)) != 1) {
		ad_parse_error(ap, ap->line, "[%s] %s: '%s': expected one byte (e.g. \\x02)",
			       ap->section, key, val);
		return -1;
	}
	return b[0];
}

static int check_bus(struct ad_parse *ap, struct ad_bus *b)
{
	struct ser_bus *sb = b->ext;
	struct ser_framer_conf *fc = &sb->fc;
	int n, s, e;

	if (b->implicit && !ad_given(ap, SB_TYPE))
		sb->type = sb->host && !sb->device ? SER_BUS_TCP : SER_BUS_SERIAL;
	if (sb->type == SER_BUS_SERIAL && (!sb->device || !*sb->device))
		ad_parse_error(ap, ap->line,
			       "[%s] device: required for type = serial (e.g. /dev/ttyUSB0)",
			       ap->section);
	if (sb->type == SER_BUS_TCP && (!sb->host || !*sb->host || !sb->port))
		ad_parse_error(ap, ap->line, "[%s] host, port: required for type = tcp",
			       ap->section);
	memset(fc, 0, sizeof(*fc));
	fc->mode = sb->framing;
	fc->max_frame = (uint32_t)sb->max_frame;
	fc->hex = sb->encoding == 1;
	fc->idle_gap_ms = sb->idle_gap_ms;
	n = ser_unescape(sb->delimiter ? sb->delimiter : "", fc->delim, sizeof(fc->delim));
	if (n < 1) {
		ad_parse_error(ap, ap->line, "[%s] delimiter: '%s': expected 1 to %d bytes",
			       ap->section, sb->delimiter ? sb->delimiter : "", SER_MAX_DELIM);
		return -EINVAL;
	}
	fc->delim_len = (uint8_t)n;
	s = one_byte(ap, "start", sb->start ? sb->start : "");
	e = one_byte(ap, "end", sb->end ? sb->end : "");
	if (s < 0 || e < 0)
		return -EINVAL;
	fc->start = (uint8_t)s;
	fc->end = (uint8_t)e;
	if (sb->framing == SER_FR_STX_ETX && s == e)
		ad_parse_error(ap, ap->line, "[%s] start, end: must differ", ap->section);
	if (sb->framing == SER_FR_LENGTH) {
		if (!ad_given(ap, SB_LENGTH))
			ad_parse_error(ap, ap->line, "[%s] length: required for framing = length",
				       ap->section);
		else if (!ad_given(ap, SB_MAX_FRAME) || sb->length > sb->max_frame)
			fc->max_frame = GW_MAX(fc->max_frame, sb->length);
		fc->length = sb->length;
	}
	if (sb->reopen_max_ms < sb->reopen_min_ms)
		ad_parse_error(ap, ap->line, "[%s] reopen_max: below reopen_min", ap->section);
	return 0;
}

/* ---------------------------------------------------------------- device */

enum {
	SD_PARSER,
	SD_MATCH,
	SD_SEPARATOR,
	SD_HEADER,
	SD_PAIR_SEPARATOR,
	SD_KV_SEPARATOR,
	SD_POLL_COMMAND,
	SD_INTERVAL,
	SD_STALE_AFTER,
	SD_WRITE_COMMAND,
	SD_WRITE_RESPONSE,
	__SD_MAX,
};

#define DK(f) offsetof(struct ser_device, f)
static const struct ad_key device_rows[__SD_MAX] = {
	[SD_PARSER] = { .name = "parser",
			.type = AD_K_ENUM,
			.off = DK(parser),
			.size = sizeof(enum ser_parser),
			.enums = parsers,
			.help = "required: regex | csv | kv | json | nmea" },
	[SD_MATCH] = { .name = "match",
		       .type = AD_K_STR,
		       .off = DK(match),
		       .help = "the lines of this device: a POSIX extended regex (regex: its groups "
			       "are the values); json: /pointer=value,... terms" },
	[SD_SEPARATOR] = { .name = "separator",
			   .type = AD_K_STR,
			   .off = DK(separator),
			   .def = ",",
			   .help = "csv: one byte (\\t for tabs)" },
	[SD_HEADER] = { .name = "header",
			.type = AD_K_BOOL,
			.off = DK(header),
			.def = "no",
			.help = "csv: a header line names the columns points give by name" },
	[SD_PAIR_SEPARATOR] = { .name = "pair_separator",
				.type = AD_K_STR,
				.off = DK(pair_separator),
				.def = "; ,\\t",
				.help = "kv: any of these bytes separates pairs" },
	[SD_KV_SEPARATOR] = { .name = "kv_separator",
			      .type = AD_K_STR,
			      .off = DK(kv_separator),
			      .def = "=",
			      .help = "kv: any of these bytes separates a key from its value" },
	[SD_POLL_COMMAND] = { .name = "poll_command",
			      .type = AD_K_STR,
			      .off = DK(poll_command),
			      .help = "sent every poll (C escapes: \"MEAS:TEMP?\\r\\n\"); the answer is "
				      "parsed by this device's parser" },
	[SD_INTERVAL] = { .name = "interval",
			  .type = AD_K_DUR,
			  .off = DK(interval_ms),
			  .size = 4,
			  .min = 1,
			  .max = 86400000,
			  .help = "how often a device that talks by itself does: stale after 3" },
	[SD_STALE_AFTER] = { .name = "stale_after",
			     .type = AD_K_DUR,
			     .off = DK(stale_after_ms),
			     .size = 4,
			     .min = 1,
			     .max = 86400000,
			     .help = "values older than this are stale (default: 3 poll or 3 interval; "
				     "never for a device with neither)" },
	[SD_WRITE_COMMAND] = { .name = "write_command",
			       .type = AD_K_STR,
			       .off = DK(write_command),
			       .help = "default of the rw points: \"SET %v\\r\\n\"; %v or one printf "
				       "conversion (%d %.2f %x %s ...)" },
	[SD_WRITE_RESPONSE] = { .name = "write_response",
				.type = AD_K_STR,
				.off = DK(write_response),
				.help = "regex an answer to a write must match; without, a write is "
					"done once sent" },
};

/* Compile @re to check it; its group count in *groups. */
static bool regex_ok(struct ad_parse *ap, const char *key, const char *re, unsigned int *groups)
{
	regex_t r;
	char msg[128];
	int rc = regcomp(&r, re, REG_EXTENDED);

	if (rc) {
		regerror(rc, &r, msg, sizeof(msg));
		ad_parse_error(ap, ap->line, "[%s] %s: '%s': %s", ap->section, key, re, msg);
		return false;
	}
	if (groups)
		*groups = (unsigned int)r.re_nsub;
	regfree(&r);
	return true;
}

static bool escaped_ok(struct ad_parse *ap, const char *key, const char *val, size_t min,
		       size_t max, bool nul_ok)
{
	uint8_t buf[SER_MAX_CMD];
	int n = ser_unescape(val, buf, GW_MIN(max, sizeof(buf)));

	if (n < (int)min || (!nul_ok && memchr(buf, 0, (size_t)n))) {
		ad_parse_error(
			ap, ap->line,
			"[%s] %s: '%s': expected %zu to %zu bytes (C escapes \\r \\n \\t \\xHH)%s",
			ap->section, key, val, min, max, nul_ok ? "" : ", no NUL");
		return false;
	}
	return true;
}

static bool template_ok(struct ad_parse *ap, const char *key, const char *val)
{
	uint8_t buf[SER_MAX_CMD];
	struct ser_fmt f;
	const char *why = NULL;
	int n = ser_unescape(val, buf, sizeof(buf));

	if (n < 0 || ser_fmt_compile(buf, (size_t)n, &f, &why)) {
		ad_parse_error(ap, ap->line, "[%s] %s: '%s': %s", ap->section, key, val,
			       n < 0 ? "bad escape or over 256 bytes" : why);
		return false;
	}
	return true;
}

static int check_device(struct ad_parse *ap, struct ad_device *d)
{
	struct ser_device *sd = d->ext;
	const char *w = ap->section;

	if (!ad_given(ap, SD_PARSER)) {
		ad_parse_error(ap, ap->line,
			       "[%s] parser: required (regex | csv | kv | json | nmea)", w);
		return -EINVAL;
	}
	if (!d->bus) {
		ad_parse_error(ap, ap->line, "[%s] bus: required (or device = /dev/... inline)", w);
		return -EINVAL;
	}
	if (sd->match && *sd->match) {
		if (sd->parser == SER_PARSE_JSON) {
			struct ser_dev tmp;
			const char *why = "longer than 1023 bytes";
			char copy[1024];
			size_t n = strlen(sd->match);

			if (n >= sizeof(copy) ||
			    (memcpy(copy, sd->match, n + 1), ser_jmatch_parse(copy, &tmp, &why)))
				ad_parse_error(ap, ap->line, "[%s] match: '%s': %s", w, sd->match,
					       why);
		} else {
			regex_ok(ap, "match", sd->match, &sd->n_groups);
		}
	} else if (sd->parser == SER_PARSE_REGEX) {
		ad_parse_error(
			ap, ap->line,
			"[%s] match: required for parser = regex (its groups are the values)", w);
	}
	if (sd->parser == SER_PARSE_CSV)
		escaped_ok(ap, "separator", sd->separator ? sd->separator : "", 1, 1, false);
	if (sd->parser == SER_PARSE_KV) {
		escaped_ok(ap, "pair_separator", sd->pair_separator ? sd->pair_separator : "", 1,
			   16, false);
		escaped_ok(ap, "kv_separator", sd->kv_separator ? sd->kv_separator : "", 1, 16,
			   false);
	}
	if (sd->poll_command && *sd->poll_command)
		escaped_ok(ap, "poll_command", sd->poll_command, 1, SER_MAX_CMD, true);
	if (sd->write_command && *sd->write_command)
		template_ok(ap, "write_command", sd->write_command);
	if (sd->write_response && *sd->write_response)
		regex_ok(ap, "write_response", sd->write_response, NULL);
	/* Staleness is the gateway's, from d->stale_ms. */
	if (sd->stale_after_ms)
		d->stale_ms = sd->stale_after_ms;
	else if (sd->interval_ms)
		d->stale_ms = 3 * sd->interval_ms;
	else if (!(sd->poll_command && *sd->poll_command))
		d->stale_ms = UINT32_MAX; /* how often it talks is not known: never stale */
	/* else: 3 poll intervals, the loader's default */
	return 0;
}

/* ----------------------------------------------------------------- point */

enum {
	SP_GROUP,
	SP_COLUMN,
	SP_KEY,
	SP_JSON_POINTER,
	SP_FIELD,
	SP_WRITE_COMMAND,
	SP_WRITE_RESPONSE,
	__SP_MAX,
};

#define PK(f) offsetof(struct ser_point_keys, f)
static const struct ad_key point_rows[__SP_MAX] = {
	[SP_GROUP] = { .name = "group",
		       .type = AD_K_INT,
		       .off = PK(group),
		       .size = 1,
		       .min = 1,
		       .max = SER_MAX_GROUPS - 1,
		       .help = "regex: the group of the device's match (1 = first)" },
	[SP_COLUMN] = { .name = "column",
			.type = AD_K_STR,
			.off = PK(column),
			.help = "csv: a number (1 = first) or a name from the header line" },
	[SP_KEY] = { .name = "key", .type = AD_K_STR, .off = PK(key), .help = "kv: the key" },
	[SP_JSON_POINTER] = { .name = "json_pointer",
			      .type = AD_K_STR,
			      .off = PK(json_pointer),
			      .help = "json: RFC 6901 pointer, e.g. /temperature_C" },
	[SP_FIELD] = { .name = "field",
		       .type = AD_K_ENUM,
		       .off = PK(field),
		       .size = sizeof(enum ser_nmea_field),
		       .enums = nmea_fields,
		       .help = "nmea: lat lon alt speed course fix sats hdop utc pdop vdop mode "
			       "sats_view" },
	[SP_WRITE_COMMAND] = { .name = "write_command",
			       .type = AD_K_STR,
			       .off = PK(write_command),
			       .help = "access = rw: default the device's" },
	[SP_WRITE_RESPONSE] = { .name = "write_response",
				.type = AD_K_STR,
				.off = PK(write_response),
				.help = "default the device's" },
};

/* The location key each parser takes. */
static const unsigned int parser_key[__SER_PARSE_MAX] = {
	[SER_PARSE_REGEX] = SP_GROUP,	    [SER_PARSE_CSV] = SP_COLUMN, [SER_PARSE_KV] = SP_KEY,
	[SER_PARSE_JSON] = SP_JSON_POINTER, [SER_PARSE_NMEA] = SP_FIELD,
};

static int check_point(struct ad_parse *ap, struct ad_point *pt)
{
	const struct ser_device *sd = ser_device_of(pt->device);
	struct ser_point_keys *sp = pt->ext;
	const char *w = ap->section;
	unsigned int k, want = parser_key[sd->parser];

	for (k = SP_GROUP; k <= SP_FIELD; k++) {
		if (k == want && !ad_given(ap, k))
			ad_parse_error(ap, ap->line, "[%s] %s: required for parser = %s", w,
				       point_rows[k].name, parsers[sd->parser]);
		if (k != want && ad_given(ap, k))
			ad_parse_error(
				ap, ap->line, "[%s] %s: not a key of parser = %s (it takes %s)", w,
				point_rows[k].name, parsers[sd->parser], point_rows[want].name);
	}
	if (sd->parser == SER_PARSE_REGEX && ad_given(ap, SP_GROUP) && sp->group > sd->n_groups)
		ad_parse_error(ap, ap->line, "[%s] group: %u: the device's match has %u group%s", w,
			       sp->group, sd->n_groups, sd->n_groups == 1 ? "" : "s");
	if (sd->parser == SER_PARSE_CSV && sp->column) {
		char *end;
		long c = strtol(sp->column, &end, 10);

		if (!*sp->column || (*end == '\0' && (c < 1 || c > SER_MAX_FIELDS)))
			ad_parse_error(ap, ap->line,
				       "[%s] column: '%s': expected 1 to %d or a name", w,
				       sp->column, SER_MAX_FIELDS);
		else if (*end != '\0' && !sd->header)
			ad_parse_error(ap, ap->line,
				       "[%s] column: '%s': a name needs header = yes on the device",
				       w, sp->column);
	}
	if (sd->parser == SER_PARSE_JSON && sp->json_pointer && *sp->json_pointer &&
	    sp->json_pointer[0] != '/')
		ad_parse_error(ap, ap->line, "[%s] json_pointer: '%s': must start with /", w,
			       sp->json_pointer);
	if (pt->type == AD_PT_BIT)
		ad_parse_error(ap, ap->line, "[%s] type: bit is a Modbus register layout; use bool",
			       w);
	if (sp->write_command && *sp->write_command)
		template_ok(ap, "write_command", sp->write_command);
	if (sp->write_response && *sp->write_response)
		regex_ok(ap, "write_response", sp->write_response, NULL);
	if (pt->writable && !(sp->write_command && *sp->write_command) &&
	    !(sd->write_command && *sd->write_command))
		ad_parse_error(ap, ap->line,
			       "[%s] access: rw needs a write_command (on the point or its device)",
			       w);
	return 0;
}

/* ---------------------------------------------------------------- schema */

const struct ad_schema ser_schema = {
	.bus = { bus_rows, __SB_MAX, sizeof(struct ser_bus) },
	.device = { device_rows, __SD_MAX, sizeof(struct ser_device) },
	.point = { point_rows, __SP_MAX, sizeof(struct ser_point_keys) },
	.point_type = AD_PT_FLOAT64,
	.check_bus = check_bus,
	.check_device = check_device,
	.check_point = check_point,
};
