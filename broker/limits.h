/*
 * limits.h - what protects a small box from its clients: a token-bucket
 * rate limiter (pure: the caller passes the time) and the table of source
 * addresses behind max_connections_per_source and connect_rate.
 *
 * The table allocates one entry per source address with a connection or an
 * unspent rate history, never per connection or per packet; it reads no
 * clock (every call takes @now, in milliseconds of a monotonic clock) and
 * does no I/O. Loop thread only.
 */
#ifndef FIELDMQ_BROKER_LIMITS_H
#define FIELDMQ_BROKER_LIMITS_H

#include "gateway/base/base.h"

/*
 * A token bucket: @rate tokens a second, at most @burst kept. Embed it
 * zeroed: a fresh bucket is full. Tokens are counted in thousandths, so a
 * rate of 1/s refills one thousandth a millisecond.
 */
struct brk_rate {
	int64_t last;	/* when the bucket was last topped up; 0: never used */
	uint64_t milli; /* tokens x 1000 */
};

/*
 * brk_rate_take - take one token at @now if there is one. true: taken;
 * false: over the rate (nothing changes but the refill). @rate 0 means no
 * limit (always true). A clock that steps back refills nothing.
 */
bool brk_rate_take(struct brk_rate *r, uint32_t rate, uint32_t burst, int64_t now);
/* Is the bucket full at @now (so forgetting it changes nothing)? */
bool brk_rate_full(const struct brk_rate *r, uint32_t rate, uint32_t burst, int64_t now);

/* A source address: AF_INET (4 bytes used) or AF_INET6 (16). */
struct brk_src_key {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t a[16];
};

struct brk_src_limits {
	uint32_t max_conns;   /* connections at a time per source; 0: no limit */
	uint32_t rate, burst; /* new connections a second per source; rate 0: no limit */
	uint32_t max_sources; /* entries kept at most */
};

struct brk_src;
struct brk_srctab;

enum brk_src_verdict {
	BRK_SRC_OK,
	BRK_SRC_TOO_MANY, /* max_conns connections from this source already */
	BRK_SRC_RATE,	  /* over the rate */
	BRK_SRC_FULL,	  /* the table holds max_sources entries, every one in use */
};

/*
 * brk_srctab_new - an empty table under @lim (copied). @seed varies the
 * hash (so that a remote peer cannot predict collisions). 0 and *out, or
 * -ENOMEM.
 */
int brk_srctab_new(const struct brk_src_limits *lim, uint32_t seed, struct brk_srctab **out);
void brk_srctab_free(struct brk_srctab *t);

/*
 * brk_src_admit - a new connection from @k at @now. BRK_SRC_OK: counted,
 * *out is its entry (give it back with brk_src_release when the connection
 * closes). Else nothing is counted and *out is NULL. A refusal for the rate
 * does not spend a token. -ENOMEM when an entry cannot be allocated.
 */
int brk_src_admit(struct brk_srctab *t, const struct brk_src_key *k, int64_t now,
		  struct brk_src **out);
/* The connection of @s closed. NULL is a no-op. */
void brk_src_release(struct brk_srctab *t, struct brk_src *s);
/* Connections counted for @s now. */
uint32_t brk_src_conns(const struct brk_src *s);
/*
 * brk_srctab_sweep - forget sources without connections whose bucket has
 * refilled (nothing is lost by forgetting them). Call it now and then (the
 * broker does once a second). Returns how many entries are left.
 */
unsigned int brk_srctab_sweep(struct brk_srctab *t, int64_t now);

#endif
