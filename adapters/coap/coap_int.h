/*
 * coap_int.h - the CoAP device adapter's private parts: its parsed device-map
 * structs, the payload parsers and the sans-I/O core. Included by
 * adapters/coap/ and its tests only. No libuv, no libcoap, no cJSON here.
 */
#ifndef FIELDMQ_COAP_INT_H
#define FIELDMQ_COAP_INT_H

#include "adapters/coap/coap_adapter.h"
#include "gateway/base/arena.h"

/* Content-Formats we read (IANA CoAP registry). */
#define AD_COAP_CF_TEXT 0
#define AD_COAP_CF_LINK 40
#define AD_COAP_CF_JSON 50
#define AD_COAP_CF_SENML_JSON 110
#define AD_COAP_CF_NONE (-1)

/* Max-Age when a response has none [RFC 7252 5.10.5]. */
#define AD_COAP_DEFAULT_MAX_AGE_MS 60000
/* A value longer than this in a text payload or a JSON string is refused. */
#define AD_COAP_MAX_TEXT 256
/*
 * The arena of the adapter's JSON / SenML trees (one payload at a time):
 * 4 KiB hold a few packs' trees; a payload whose tree needs more than 256 KiB
 * is a bad value of every JSON point of the resource.
 */
#define AD_COAP_JSON_ARENA_WARM 4096
#define AD_COAP_JSON_ARENA_CAP (256 * 1024)

enum ad_coap_format {
	AD_COAP_FMT_AUTO,
	AD_COAP_FMT_TEXT,
	AD_COAP_FMT_JSON,
	AD_COAP_FMT_SENML,
	__AD_COAP_FMT_MAX,
};

enum ad_coap_method {
	AD_COAP_PUT,
	AD_COAP_POST,
	__AD_COAP_METHOD_MAX,
};

/* [device:] of protocol = coap (ext of struct ad_device). */
struct ad_coap_device {
	char *url;
	char *psk_identity;
	char *psk_key;
	char *ca_file;	 /* coaps:// with a certificate: verifies the device's (PEM) */
	char *cert_file; /* and optionally ours (PEM, with key_file) */
	char *key_file;
	char *cert_name; /* the name the device's certificate must carry ("": the url's host) */
	uint32_t timeout_ms;
	uint8_t retries;
	uint16_t degrade_after;
	uint32_t degrade_for_ms;
	/* from url, by the device check */
	bool secure;	 /* coaps:// */
	char host[256];	 /* without [ ] for IPv6 */
	uint16_t port;	 /* 5683 / 5684 by default */
	char *base_path; /* path of the url ("" when none), prefixed to points' paths */
};

/* [point:] of a coap device (ext of struct ad_point). */
struct ad_coap_point {
	char *path; /* "/sensors/temp" (the device's base path prepended by the check) */
	bool observe;
	enum ad_coap_format format;
	char *json_pointer;
	char *senml_name;
	enum ad_coap_method method;
	char *write_path;
};

static inline struct ad_coap_device *ad_coap_dev_keys(const struct ad_device *d)
{
	return d->ext;
}

static inline struct ad_coap_point *ad_coap_pt_keys(const struct ad_point *pt)
{
	return pt->ext;
}

/*
 * Split a device url: coap://HOST[:PORT][/PATH] or coaps://...; HOST a name,
 * an IPv4 address or [IPv6]. Fills d->secure, host, port and *@path_off (where
 * the path starts in @url, at its '/' or the end). Pure.
 * 0, or -EINVAL with *@why set to a static reason.
 */
int ad_coap_url_split(const char *url, struct ad_coap_device *d, size_t *path_off,
		      const char **why);

/* ------------------------------------------------------------- payloads */

/* One value found in a payload, before the point's type and scale. */
enum ad_coap_raw_kind {
	AD_COAP_RAW_NUM,
	AD_COAP_RAW_BOOL,
	AD_COAP_RAW_STR,
};

struct ad_coap_raw {
	enum ad_coap_raw_kind kind;
	double num;
	bool is_int; /* num came from an integer literal that fits in i */
	int64_t i;
	bool b;
	struct gw_slice s; /* RAW_STR: into the payload or the parsed document */
};

/*
 * A text/plain payload: a number (decimal, with optional sign, fraction and
 * exponent; surrounding white space ignored), a boolean (true/false, on/off,
 * yes/no, any case) or else a string (RAW_STR, trimmed). Pure.
 * 0, or -EBADMSG for an empty payload, one longer than AD_COAP_MAX_TEXT or
 * one holding a NUL byte.
 */
int ad_coap_text_parse(const uint8_t *p, size_t n, struct ad_coap_raw *out);

/*
 * The point's value from @raw: bool from a boolean or a number (!= 0); integer
 * types exactly when unscaled (range checked), else raw * scale + offset as a
 * double; float types scaled; string from a string (or the text of a number).
 * Pure. 0, -ERANGE (out of the type's range), -EINVAL (a string for a number).
 */
int ad_coap_raw_to_value(const struct ad_point *pt, const struct ad_coap_raw *raw,
			 struct ad_value *out);

/*
 * JSON payloads through cJSON (coap_json.c): parse once, read every point of
 * the resource, free. The tree is built in @arena (no allocator call once it
 * is warm; gateway/base/arena.h), or on the heap when @arena is NULL or
 * cJSON's hooks are not the arena's. One document at a time per arena.
 * ad_coap_json_parse: the document, or NULL when @p is not JSON or its tree
 *   needs more than the arena's cap.
 * ad_coap_json_free: drops @doc (NULL too: what a failed parse left in
 *   @arena) and resets @arena; call it after every parse.
 * ad_coap_json_get: the value at RFC 6901 @pointer ("" = the whole
 *   document): 0, -ENOENT (nothing there), -EBADMSG (an object or array).
 * ad_coap_senml_get: in a SenML JSON pack [RFC 8428], the value of the
 *   record whose resolved name (bn + n) is @name ("" = the first record
 *   with a value): v, vb or vs; 0, -ENOENT, -EBADMSG (not a pack).
 * Slices in @out point into @doc: use them before ad_coap_json_free().
 */
void *ad_coap_json_parse(struct gw_arena *arena, const uint8_t *p, size_t n);
int ad_coap_json_get(const void *doc, const char *pointer, struct ad_coap_raw *out);
int ad_coap_senml_get(const void *doc, const char *name, struct ad_coap_raw *out);
void ad_coap_json_free(struct gw_arena *arena, void *doc);

/*
 * The payload of a write of @v to @pt (access = rw), in the point's format:
 * text/plain ("42.5", "true", the string), JSON ({"a":{"b":42.5}} for
 * json_pointer /a/b; the bare value without a pointer) or SenML JSON
 * ([{"n":"<senml_name>","v":42.5}], vb / vs); format = auto picks JSON with a
 * json_pointer, SenML with a senml_name, else text. The value is turned back
 * into device units ((v - offset) / scale) and checked against the type.
 * Writes at most @cap bytes into @buf. Pure.
 * 0 with *@len and *@cf (the Content-Format) set; -EINVAL (wrong kind of
 * value, *@why set), -ERANGE (out of the type's range), -EMSGSIZE.
 */
int ad_coap_write_payload(const struct ad_point *pt, const struct ad_value *v, char *buf,
			  size_t cap, size_t *len, int *cf, const char **why);

/* One link of a CoRE link-format document [RFC 6690 2]. */
struct ad_coap_link {
	struct gw_slice target;	       /* between < and >, e.g. "/sensors/temp" */
	bool obs;		       /* the obs attribute [RFC 7641 6] */
	struct gw_slice rt, ct, title; /* attribute values, quotes removed; empty when absent */
};

/*
 * The next link of @p[0..n) from *@off (start at 0): 1 and *@out filled
 * (*@off moved past it and its comma), 0 at the end, -EBADMSG when the text
 * is not link-format (a link without <...>, an unterminated quote). Slices
 * point into @p. Pure.
 */
int ad_coap_link_next(const uint8_t *p, size_t n, size_t *off, struct ad_coap_link *out);

/* ------------------------------------------------------------- the core */

/* The time of an event: monotonic for schedules, wall for reading timestamps. */
struct ad_coap_clock {
	int64_t mono_ms;
	int64_t wall_ms;
};

enum ad_coap_res_state {
	AD_COAP_IDLE,	   /* next request at next_ms */
	AD_COAP_WAIT,	   /* a request in flight since sent_ms */
	AD_COAP_OBSERVING, /* registered; re-register at next_ms without a notification */
};

/* One resource of a device: a path read by one GET or one observation. */
struct ad_coap_res {
	const char *path;
	bool observe; /* a point of it says observe = yes */
	const struct ad_point **pts;
	unsigned int n_pts;
	struct ad_coap_cdev *dev;
	unsigned int index; /* in dev->res */
	enum ad_coap_res_state state;
	bool registering; /* the request in flight carries Observe: 0 */
	bool obs_refused; /* a registration was answered without Observe (said once) */
	int64_t sent_ms;
	int64_t next_ms; /* IDLE: next request; OBSERVING: re-registration */
	int err;       /* 0 good, -errno of the last failure, or the CoAP code (e.g. 132 = 4.04) */
	uint8_t *pt_q; /* per point: 0 none yet, 1 good, 2 bad */
	void *glue;    /* the glue's exchange state */
};

/* A device as the core runs it. */
struct ad_coap_cdev {
	const struct ad_device *cfg;
	struct ad_coap_res *res;
	unsigned int n_res;
	unsigned int fails; /* failed polls in a row (failures within one poll count once) */
	int64_t fail_ms;    /* when fails last grew (mono) */
	int64_t skip_until; /* degraded until (mono), 0 none */
	signed char online; /* -1 unknown, 0 offline, 1 online */
	/*
	 * For /metrics: requests are exchanges that ended (a GET or a
	 * registration answered or failed) and notifications; latency from a
	 * request to its answer (notifications have no request); errors by
	 * kind: timeout, exception (4.xx / 5.xx), transport (RST, ICMP, no
	 * session), parse (a 2.xx payload some point cannot read), tls.
	 */
	struct ad_device_stats st;
	struct ad_coap_core *core;
	void *glue;
};

/* Something worth one log line (the glue words it). */
enum ad_coap_note_kind {
	AD_COAP_NOTE_FAILED,	 /* res: err (first of its kind) */
	AD_COAP_NOTE_RECOVERED,	 /* res answers again */
	AD_COAP_NOTE_PARSE,	 /* a point could not read the payload: pt, err */
	AD_COAP_NOTE_NO_OBSERVE, /* res answered a registration without Observe: polled */
	AD_COAP_NOTE_REREGISTER, /* res: Max-Age passed without a notification */
	AD_COAP_NOTE_OBS_ENDED,	 /* the device ended the observation of res */
	AD_COAP_NOTE_ONLINE,
	AD_COAP_NOTE_OFFLINE,
	AD_COAP_NOTE_DEGRADED, /* dev: fails */
};

struct ad_coap_note {
	enum ad_coap_note_kind kind;
	const struct ad_coap_cdev *dev;
	const struct ad_coap_res *res;
	const struct ad_point *pt;
	int err;
};

/*
 * What the core asks of the glue, on the loop thread.
 * send: start a GET of @r (with Observe: 0 when @observe); 0 when under way
 *   (its end comes back as ad_coap_core_response / _failure, or the core times
 *   it out), or -errno (taken as that failure at once). A new send for @r
 *   replaces the previous exchange: answers to the old one are not passed on.
 * forget: the core gave up the exchange or observation of @r (a timeout, a
 *   re-registration): stop passing its answers (and cancel the observation).
 */
struct ad_coap_core_ops {
	int (*send)(void *arg, struct ad_coap_res *r, bool observe);
	void (*forget)(void *arg, struct ad_coap_res *r);
	void (*on_reading)(void *arg, const struct ad_reading *rd);
	void (*on_status)(void *arg, const struct ad_device *dev, bool online);
	void (*note)(void *arg, const struct ad_coap_note *n);
};

struct ad_coap_core {
	struct ad_coap_cdev *devs;
	unsigned int n_devs;
	const struct ad_coap_core_ops *ops;
	void *arg;
	struct ad_coap_stats stats;
	bool stopped;
	struct gw_arena json_arena; /* the JSON tree of the payload being read */
};

/*
 * Build the core for the coap devices of @map: one resource per distinct
 * path of a device (points sharing a path share its GET or observation).
 * 0 or -ENOMEM (nothing left allocated). ad_coap_core_fini() frees.
 */
int ad_coap_core_init(struct ad_coap_core *c, const struct ad_map *map,
		      const struct ad_coap_core_ops *ops, void *arg);
void ad_coap_core_fini(struct ad_coap_core *c);

/*
 * Time passes: send what is due, time out requests, re-register observations
 * whose Max-Age passed. Returns the next moment (mono ms) the core wants a
 * tick, INT64_MAX for none.
 */
int64_t ad_coap_core_tick(struct ad_coap_core *c, struct ad_coap_clock now);

/*
 * An answer of the exchange of @r: @code the CoAP code (class * 32 + detail,
 * e.g. 69 = 2.05), @cf the Content-Format or AD_COAP_CF_NONE, @observe
 * whether it carries an Observe option, @max_age_ms (-1: none), the payload.
 * Returns when @r next needs a tick (mono ms, INT64_MAX none).
 */
int64_t ad_coap_core_response(struct ad_coap_core *c, struct ad_coap_res *r,
			      struct ad_coap_clock now, unsigned int code, int cf, bool observe,
			      int64_t max_age_ms, const uint8_t *payload, size_t len);

/*
 * The exchange of @r failed: -ETIMEDOUT (no answer), -ECONNRESET (RST),
 * -EHOSTUNREACH / -ECONNREFUSED (ICMP), -EIO (other). The same return.
 */
int64_t ad_coap_core_failure(struct ad_coap_core *c, struct ad_coap_res *r,
			     struct ad_coap_clock now, int err);

/*
 * @d's figures for /metrics (ad_ops.device_stats), with the kinds the core
 * counts. 0, or -ENOENT when @d is not one of @c's devices.
 */
int ad_coap_core_device_stats(const struct ad_coap_core *c, const struct ad_device *d,
			      struct ad_device_stats *out);

/* "4.04 Not Found"-style text of a code or error, for notes and write results. */
const char *ad_coap_err_name(int err, char *buf, size_t n);

/* A 4.xx / 5.xx response code (class << 5 | detail) as "4.05 Method Not Allowed". */
const char *ad_coap_code_name(unsigned int code);

#endif
