/*
 * limits.c - token buckets and the per-source table (see limits.h). A
 * sans-I/O core: it allocates, but reads no clock and calls no libuv.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/limits.h"

#define NBUCKETS 256 /* chains of the hash table: a power of two */

struct brk_src {
	struct gw_list link; /* in its hash chain */
	struct brk_src_key key;
	uint32_t conns;
	struct brk_rate rate;
};

struct brk_srctab {
	struct brk_src_limits lim;
	uint32_t seed;
	unsigned int n;
	struct gw_list chain[NBUCKETS];
};

/* Top @r up to @now. */
static uint64_t rate_level(const struct brk_rate *r, uint32_t rate, uint32_t burst, int64_t now)
{
	uint64_t cap = (uint64_t)(burst ? burst : 1) * 1000, add;

	if (!r->last)
		return cap; /* never used: full */
	if (now <= r->last)
		return r->milli;
	/* A gap of cap milliseconds refills any rate >= 1/s: no overflow past it. */
	if ((uint64_t)(now - r->last) >= cap)
		return cap;
	add = (uint64_t)(now - r->last) * rate;
	return r->milli + add >= cap ? cap : r->milli + add;
}

bool brk_rate_take(struct brk_rate *r, uint32_t rate, uint32_t burst, int64_t now)
{
	uint64_t level;

	if (!rate)
		return true;
	level = rate_level(r, rate, burst, now);
	/* A clock behind the last top-up keeps the old stamp: no refill twice. */
	if (!r->last || now > r->last)
		r->last = now ? now : 1;
	if (level < 1000) {
		r->milli = level;
		return false;
	}
	r->milli = level - 1000;
	return true;
}

bool brk_rate_full(const struct brk_rate *r, uint32_t rate, uint32_t burst, int64_t now)
{
	return !rate || rate_level(r, rate, burst, now) >= (uint64_t)(burst ? burst : 1) * 1000;
}

/* FNV-1a over the address, started from the seed. */
static unsigned int key_hash(const struct brk_srctab *t, const struct brk_src_key *k)
{
	uint32_t h = 2166136261u ^ t->seed;
	unsigned int i, n = k->family == AF_INET6 ? 16 : 4;

	h = (h ^ k->family) * 16777619u;
	for (i = 0; i < n; i++)
		h = (h ^ k->a[i]) * 16777619u;
	return h & (NBUCKETS - 1);
}

static bool key_eq(const struct brk_src_key *a, const struct brk_src_key *b)
{
	return a->family == b->family && !memcmp(a->a, b->a, a->family == AF_INET6 ? 16 : 4);
}

int brk_srctab_new(const struct brk_src_limits *lim, uint32_t seed, struct brk_srctab **out)
{
	struct brk_srctab *t = gw_calloc(1, sizeof(*t));
	unsigned int i;

	if (!t)
		return -ENOMEM;
	t->lim = *lim;
	t->seed = seed;
	for (i = 0; i < NBUCKETS; i++)
		gw_list_init(&t->chain[i]);
	*out = t;
	return 0;
}

void brk_srctab_free(struct brk_srctab *t)
{
	struct gw_list *pos, *tmp;
	unsigned int i;

	if (!t)
		return;
	for (i = 0; i < NBUCKETS; i++)
		gw_list_for_each_safe (pos, tmp, &t->chain[i])
			gw_free(gw_list_entry(pos, struct brk_src, link));
	gw_free(t);
}

static void src_drop(struct brk_srctab *t, struct brk_src *s)
{
	gw_list_del(&s->link);
	gw_free(s);
	t->n--;
}

int brk_src_admit(struct brk_srctab *t, const struct brk_src_key *k, int64_t now,
		  struct brk_src **out)
{
	struct gw_list *head = &t->chain[key_hash(t, k)], *pos;
	struct brk_src *s = NULL;

	*out = NULL;
	gw_list_for_each (pos, head) {
		struct brk_src *e = gw_list_entry(pos, struct brk_src, link);

		if (key_eq(&e->key, k)) {
			s = e;
			break;
		}
	}
	if (!s) {
		/* Full: what can be forgotten is, before a newcomer is refused. */
		if (t->lim.max_sources && t->n >= t->lim.max_sources &&
		    brk_srctab_sweep(t, now) >= t->lim.max_sources)
			return BRK_SRC_FULL;
		s = gw_calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->key = *k;
		gw_list_add_tail(head, &s->link);
		t->n++;
	}
	if (t->lim.max_conns && s->conns >= t->lim.max_conns)
		return BRK_SRC_TOO_MANY;
	if (!brk_rate_take(&s->rate, t->lim.rate, t->lim.burst, now)) {
		return BRK_SRC_RATE;
	}
	s->conns++;
	*out = s;
	return BRK_SRC_OK;
}

void brk_src_release(struct brk_srctab *t, struct brk_src *s)
{
	(void)t;
	if (s && s->conns)
		s->conns--;
}

uint32_t brk_src_conns(const struct brk_src *s)
{
	return s->conns;
}

unsigned int brk_srctab_sweep(struct brk_srctab *t, int64_t now)
{
	struct gw_list *pos, *tmp;
	unsigned int i;

	for (i = 0; i < NBUCKETS; i++)
		gw_list_for_each_safe (pos, tmp, &t->chain[i]) {
			struct brk_src *s = gw_list_entry(pos, struct brk_src, link);

			if (!s->conns && brk_rate_full(&s->rate, t->lim.rate, t->lim.burst, now))
				src_drop(t, s);
		}
	return t->n;
}
