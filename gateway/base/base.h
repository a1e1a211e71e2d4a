/*
 * base.h - the small pieces every fieldmq module builds on: slices, bounded
 * reader and writer, an intrusive list, the capped allocator, logging, clocks
 * and the parsers for durations, sizes and booleans used by the config.
 *
 * Depends on libc only. Nothing here touches libuv.
 */
#ifndef FIELDMQ_BASE_H
#define FIELDMQ_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#define GW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

#define GW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GW_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---------------------------------------------------------------- slices */

/* A view into memory owned by someone else: never freed through the slice. */
struct gw_slice {
	const uint8_t *p;
	size_t len;
};

#define GW_SLICE_STR(s) ((struct gw_slice){ (const uint8_t *)(s), sizeof(s) - 1 })

static inline struct gw_slice gw_slice_cstr(const char *s)
{
	struct gw_slice sl = { (const uint8_t *)s, 0 };

	while (s && s[sl.len])
		sl.len++;
	return sl;
}

bool gw_slice_eq(struct gw_slice a, struct gw_slice b);
bool gw_slice_eq_cstr(struct gw_slice a, const char *s);

/* ------------------------------------------------------- bounded reader */

/*
 * A reader over a buffer it does not own. Every read checks what is left
 * first; on a short buffer it returns -EBADMSG, leaves the output untouched
 * and stays failed (err is sticky), so a decoder can check once at the end.
 */
struct gw_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;
};

static inline void gw_reader_init(struct gw_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->err = 0;
}

static inline size_t gw_rd_left(const struct gw_reader *r)
{
	return r->err ? 0 : r->len - r->off;
}

int gw_rd_u8(struct gw_reader *r, uint8_t *v);
int gw_rd_u16be(struct gw_reader *r, uint16_t *v);
int gw_rd_u32be(struct gw_reader *r, uint32_t *v);
/* MQTT variable byte integer: at most 4 bytes; a 5th continuation is -EBADMSG. */
int gw_rd_varint(struct gw_reader *r, uint32_t *v);
/* n bytes as a slice into the buffer (zero copy). */
int gw_rd_bytes(struct gw_reader *r, size_t n, struct gw_slice *out);
/* A 16-bit big-endian length followed by that many bytes. */
int gw_rd_bin16(struct gw_reader *r, struct gw_slice *out);

/* ------------------------------------------------------- bounded writer */

/*
 * A writer into a caller-supplied buffer of cap bytes. A write that does not
 * fit sets err = -EMSGSIZE and writes nothing more; len keeps counting what
 * would have been written so a caller can size a second attempt.
 */
struct gw_writer {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err;
};

static inline void gw_writer_init(struct gw_writer *w, void *p, size_t cap)
{
	w->p = p;
	w->cap = cap;
	w->len = 0;
	w->err = 0;
}

void gw_wr_u8(struct gw_writer *w, uint8_t v);
void gw_wr_u16be(struct gw_writer *w, uint16_t v);
void gw_wr_u32be(struct gw_writer *w, uint32_t v);
void gw_wr_varint(struct gw_writer *w, uint32_t v);
void gw_wr_bytes(struct gw_writer *w, const void *p, size_t n);
void gw_wr_bin16(struct gw_writer *w, const void *p, size_t n);
/* Bytes a varint of v takes (1..4), or 0 if v exceeds 268435455. */
size_t gw_varint_size(uint32_t v);

/* --------------------------------------------------------- intrusive list */

struct gw_list {
	struct gw_list *next, *prev;
};

#define GW_LIST_INIT(name)       \
	{                        \
		&(name), &(name) \
	}

static inline void gw_list_init(struct gw_list *l)
{
	l->next = l->prev = l;
}

static inline bool gw_list_empty(const struct gw_list *l)
{
	return l->next == l;
}

static inline void gw_list__add(struct gw_list *n, struct gw_list *prev, struct gw_list *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

static inline void gw_list_add_tail(struct gw_list *head, struct gw_list *n)
{
	gw_list__add(n, head->prev, head);
}

static inline void gw_list_add_head(struct gw_list *head, struct gw_list *n)
{
	gw_list__add(n, head, head->next);
}

static inline void gw_list_del(struct gw_list *n)
{
	n->next->prev = n->prev;
	n->prev->next = n->next;
	n->next = n->prev = n;
}

#define gw_list_entry(ptr, type, member) container_of(ptr, type, member)
#define gw_list_first(head, type, member) container_of((head)->next, type, member)

#define gw_list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)
#define gw_list_for_each_safe(pos, tmp, head) \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

/* ------------------------------------------------------ capped allocator */

/*
 * Every module allocates through these. They count the bytes in use against
 * a cap (0 = none) and return NULL, never abort, when the cap or the system
 * says no. The counters are process-wide: the one deliberate global state in
 * fieldmq, as SQLite keeps its memory statistics.
 */
void *gw_malloc(size_t n);
void *gw_calloc(size_t nmemb, size_t n);
void *gw_realloc(void *p, size_t n);
void gw_free(void *p);
char *gw_strdup(const char *s);
char *gw_strndup(const char *s, size_t n);

void gw_mem_set_limit(size_t bytes);
size_t gw_mem_used(void);
size_t gw_mem_peak(void);
/* Test hook: the n-th allocation from now fails (0 = never). */
void gw_mem_fail_after(unsigned long n);

/* --------------------------------------------------------------- logging */

enum gw_log_target {
	GW_LOG_STDERR,
	GW_LOG_SYSLOG,
};

/*
 * Levels are syslog's (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). A logger is
 * owned by the daemon and handed to every module by pointer; a NULL logger
 * discards everything, which is what unit tests usually want.
 */
struct gw_logger {
	int level;
	enum gw_log_target target;
	void *sink_arg;
	/* Optional: replaces the output (tests capture log lines with it). */
	void (*sink)(void *arg, int level, const char *module, const char *msg);
};

void gw_logger_init(struct gw_logger *lg, int level, enum gw_log_target target);
void gw_log(const struct gw_logger *lg, int level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void gw_vlog(const struct gw_logger *lg, int level, const char *module, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* "error" | "warning" | "info" | "debug" -> LOG_*; -EINVAL otherwise. */
int gw_log_level_parse(const char *s);

/* ---------------------------------------------------------------- clocks */

/* Milliseconds since the Unix epoch (wall clock, for timestamps). */
int64_t gw_now_ms(void);
/* Milliseconds from a monotonic clock (for timers and intervals). */
int64_t gw_mono_ms(void);

/* ------------------------------------------------------ value parsers */

/*
 * Config value parsers, the one place where units are understood.
 * Durations: a number with ms, s, m, h or d ("500ms", "5s", "2m"); a bare
 * number is seconds. Sizes: a number with K, M or G (powers of 1024), bare is
 * bytes. Booleans: yes/no/true/false/on/off/1/0, case-insensitive.
 * Each returns 0 or -EINVAL (bad syntax) / -ERANGE (overflow).
 */
int gw_parse_duration_ms(const char *s, uint64_t *out_ms);
int gw_parse_size(const char *s, uint64_t *out);
int gw_parse_bool(const char *s, bool *out);
/* Decimal integer within [min, max]. */
int gw_parse_int(const char *s, long long min, long long max, long long *out);
/* Finite decimal number. */
int gw_parse_double(const char *s, double *out);

#endif
