/*
 * uplink_drain.c - the uplink core's queue drain: records read back from
 * the store (q_peek) merged into the backlog in id order, paced by the
 * drain rate, and the store's append completions (map of the core:
 * uplink_int.h).
 *
 * Reading the store back. The core is in "backlog" while the store may hold
 * records it has not read; then it sends no backlog record with an id above
 * peek_after, the id up to which it has read, so the backlog goes out in id
 * order and none is skipped. Live records have ids above live_from (the last
 * id appended when live mode began) and are never taken from a read: a read
 * that reaches them has read the whole backlog. What a read returns is taken
 * unless it is in memory already or was sent: backlog records are sent in id
 * order (so an id at or below last_bl_sent was sent), and the live records
 * of a period that ended (link down, spill, see live_off()) are recorded as
 * a region whose evicted ids are kept: a record of a region is taken only if
 * it was evicted, since the others were sent and their deletion may not have
 * committed yet (the store's acks take effect at its next commit).
 *
 * The ready count. maybe_peek reads more when fewer than UPL_PEEK_BATCH / 2
 * messages at the head of the backlog may go: those before the first with an
 * id above peek_after (memory-only ones count). Walking them on every pump
 * was about half of a drain's instructions, so the count is kept: the first
 * bl_ready messages of blq are marked ready, bl_last is the last of them. It
 * is a lower bound that maybe_peek counts on from bl_last; it is kept where
 * messages enter or leave the backlog (gw_upl__bl_added / _removed, from
 * uplink_queue.c) and reset when peek_after moves back.
 */
#include <errno.h>
#include <string.h>

#include "gateway/uplink_int.h"

/* ------------------------------------------------ backlog and regions */

static struct upl_region *region_find(struct gw_upl *u, uint64_t id)
{
	unsigned int i;

	for (i = 0; i < u->n_regions; i++)
		if (id > u->regions[i].lo && id <= u->regions[i].hi)
			return &u->regions[i];
	return NULL;
}

/* Index of the first id >= @id in @rg's ids. */
static uint32_t region_pos(const struct upl_region *rg, uint64_t id)
{
	uint32_t lo = 0, hi = rg->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (rg->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Record @id (evicted unsent) in its region, if it has one. */
void gw_upl__region_mark(struct gw_upl *u, uint64_t id)
{
	struct upl_region *rg = region_find(u, id);
	uint32_t i;

	if (!rg || rg->all)
		return;
	i = region_pos(rg, id);
	if (i < rg->n && rg->ids[i] == id)
		return;
	if (rg->n == rg->cap) {
		uint32_t cap = rg->cap ? rg->cap * 2 : 64;
		uint64_t *p = gw_realloc(rg->ids, cap * sizeof(*p));

		if (!p) {
			/* Take every record of the region; the counts are rebuilt after the drain. */
			rg->all = true;
			u->blind = true;
			return;
		}
		rg->ids = p;
		rg->cap = cap;
	}
	memmove(rg->ids + i + 1, rg->ids + i, (rg->n - i) * sizeof(*rg->ids));
	rg->ids[i] = id;
	rg->n++;
}

/*
 * Whether a record read back is to be taken by region rules: 1 take, 0 skip
 * (sent), -1 not in a region. @take removes it from the region's list.
 */
static int region_take(struct gw_upl *u, uint64_t id, bool take)
{
	struct upl_region *rg = region_find(u, id);
	uint32_t i;

	if (!rg)
		return -1;
	if (rg->all)
		return 1;
	i = region_pos(rg, id);
	if (i >= rg->n || rg->ids[i] != id)
		return 0;
	if (take) {
		memmove(rg->ids + i, rg->ids + i + 1, (rg->n - i - 1) * sizeof(*rg->ids));
		rg->n--;
	}
	return 1;
}

/*
 * Forget the regions no read can reach any more: the store has been read
 * through and the backlog in memory holds nothing of theirs (only backlog
 * records can be evicted again, and they move the read back to them).
 */
void gw_upl__regions_trim(struct gw_upl *u)
{
	struct gw_list *pos;
	uint64_t min = UINT64_MAX;
	unsigned int k = 0, i;

	if (u->backlog || !u->n_regions)
		return;
	gw_list_for_each (pos, &u->blq) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		if (m->id) {
			min = m->id;
			break;
		}
	}
	while (k < u->n_regions && u->regions[k].hi < min)
		gw_free(u->regions[k++].ids);
	if (!k)
		return;
	for (i = k; i < u->n_regions; i++)
		u->regions[i - k] = u->regions[i];
	u->n_regions -= k;
}

/* The ready count starts again from the head of the backlog (maybe_peek counts it). */
static void bl_reset(struct gw_upl *u)
{
	struct gw_list *pos = u->blq.next;

	while (u->bl_ready && pos != &u->blq) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		/* The marked messages are the first ones, but for one just put among them. */
		if (m->ready) {
			m->ready = false;
			u->bl_ready--;
		}
		pos = pos->next;
	}
	u->bl_ready = 0;
	u->bl_last = &u->blq;
}

/* Moves the read position; a move back may leave marked messages past it. */
void gw_upl__set_peek_after(struct gw_upl *u, uint64_t id)
{
	if (id < u->peek_after)
		bl_reset(u);
	u->peek_after = id;
}

/*
 * @m was just linked into the backlog. Past the marked messages it waits for
 * maybe_peek to count it; among them it is marked too, or, when it may not
 * go yet, it ends the ready run there and the count starts again.
 */
void gw_upl__bl_added(struct gw_upl *u, struct upl_msg *m)
{
	struct gw_list *prev = m->link.prev;

	if (prev == u->bl_last ||
	    (prev != &u->blq && !gw_list_entry(prev, struct upl_msg, link)->ready))
		return;
	if (m->id > u->peek_after) {
		bl_reset(u);
		return;
	}
	m->ready = true;
	u->bl_ready++;
}

/* @m is about to leave the backlog (still linked). */
void gw_upl__bl_removed(struct gw_upl *u, struct upl_msg *m)
{
	if (!m->ready)
		return;
	m->ready = false;
	u->bl_ready--;
	if (u->bl_last == &m->link)
		u->bl_last = m->link.prev;
}

/*
 * The messages at the head of the backlog that may go (up to the first with
 * an id above peek_after), counted on from bl_last up to UPL_PEEK_BATCH / 2:
 * min(that number, UPL_PEEK_BATCH / 2) or more.
 */
uint32_t gw_upl__bl_count(struct gw_upl *u)
{
	while (u->bl_ready < UPL_PEEK_BATCH / 2 && u->bl_last->next != &u->blq) {
		struct upl_msg *m = gw_list_entry(u->bl_last->next, struct upl_msg, link);

		if (m->id > u->peek_after)
			break;
		m->ready = true;
		u->bl_ready++;
		u->bl_last = &m->link;
	}
	return u->bl_ready;
}

void gw_upl__enter_backlog(struct gw_upl *u)
{
	if (u->backlog)
		return;
	/* Everything up to the last append is in memory or sent: read from there. */
	u->backlog = true;
	gw_upl__set_peek_after(u, u->last_append_id);
}

/* The store has been read through: the counts are what the backlog in memory holds. */
static void backlog_read(struct gw_upl *u)
{
	struct gw_list *pos;

	if (u->n_pend_store) {
		/* Records stored without being kept are not visible before their commit. */
		u->peek_short = true;
		return;
	}
	u->backlog = false;
	u->blind = false;
	memset(u->hot, 0, sizeof(u->hot));
	gw_list_for_each (pos, &u->blq) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		m->counted = true;
		u->hot[m->bucket]++;
	}
	u->release_due = true;
}

/* ---------------------------------------------------------- sending up */

/* Whether the drain rate has a token; false (and rate_blocked) when it has none. */
static bool token_ready(struct gw_upl *u, int64_t now)
{
	int64_t burst = GW_MAX((int64_t)1000, (int64_t)u->drain_rate * 100); /* 0.1 s */

	if (!u->drain_rate)
		return true;
	if (now > u->tok_at) {
		u->tokens += (now - u->tok_at) * (int64_t)u->drain_rate;
		u->tok_at = now;
	}
	if (u->tokens > burst)
		u->tokens = burst;
	if (u->tokens < 1000) {
		u->rate_blocked = true;
		return false;
	}
	return true;
}

/*
 * Reads more of the store when the backlog has fewer than UPL_PEEK_BATCH / 2
 * messages that may go (see "The ready count" above): the count goes on from
 * bl_last, so each message is looked at about once, not on every pump.
 */
void gw_upl__maybe_peek(struct gw_upl *u)
{
	int rc;

	if (!u->backlog || u->peeking || u->state != UPL_UP || !u->has_store)
		return;
	if (u->peek_short && u->n_pend_store)
		return; /* read through: wait for the commit of what was stored */
	if (gw_upl__bl_count(u) >= UPL_PEEK_BATCH / 2)
		return;
	rc = u->ops->q_peek(u->arg, u->peek_after, UPL_PEEK_BATCH);
	if (rc) {
		gw_log(u->log, LOG_ERR, MOD, "cannot read the queue: %s", strerror(-rc));
		return;
	}
	u->peeking = true;
	u->peek_short = false;
	u->peek_gen = u->evict_gen;
}

/* The backlog's head if it may go now (window, read position, drain rate), else NULL. */
struct upl_msg *gw_upl__backlog_ready(struct gw_upl *u, int64_t now)
{
	struct upl_msg *m;

	if (gw_list_empty(&u->blq))
		return NULL;
	m = gw_list_first(&u->blq, struct upl_msg, link);
	if (m->id && u->backlog && m->id > u->peek_after)
		return NULL; /* the store may hold older records: read them first */
	if (gw_upl__window_full(u, m))
		return NULL;
	if (m->from_store && !token_ready(u, now))
		return NULL;
	return m;
}

/* -------------------------------------------------------- store events */

void gw_upl_on_appended(struct gw_upl *u, uint64_t id, int status, int64_t now)
{
	struct gw_list *pos;
	struct upl_pend *pd = NULL;
	struct upl_msg *m;
	bool store_only;

	gw_list_for_each (pos, &u->pend) {
		struct upl_pend *e = gw_list_entry(pos, struct upl_pend, link);

		if (e->id == id) {
			pd = e;
			break;
		}
	}
	if (!pd)
		return;
	gw_list_del(&pd->link);
	gw_upl__release(u, pd->hold);
	m = pd->m;
	store_only = pd->store_only;
	gw_free(pd);
	if (store_only) {
		/* Visible to a read from now on; one that was through reads again. */
		u->n_pend_store--;
		if (!u->n_pend_store && u->peek_short)
			gw_upl__pump(u, now);
		return;
	}
	if (!m)
		return;
	m->pend = NULL;
	if (m->state != M_QUEUED || m->pid)
		return; /* in flight: its acknowledgement finishes it */
	if (status) {
		/* Dropped at once by drop_oldest, or lost: not ours to send. */
		gw_upl__msg_free(u, m);
		return;
	}
	if (u->state != UPL_UP)
		gw_upl__evict(u);
}

void gw_upl_on_peeked(struct gw_upl *u, int status, const struct st_qrecord *recs, size_t n,
		      int64_t now)
{
	struct gw_list *pos;
	bool through = n < UPL_PEEK_BATCH; /* everything committed has been read */
	size_t i;

	u->peeking = false;
	if (u->state != UPL_UP || status || u->peek_gen != u->evict_gen) {
		/* Stale: memory changed under the read. Read again when it makes sense. */
		if (status && status != -ECANCELED)
			gw_log(u->log, LOG_ERR, MOD, "cannot read the queue: %s",
			       strerror(-status));
		if (u->state == UPL_UP && !status)
			gw_upl__pump(u, now);
		return;
	}
	/* Merge into the backlog: both are in id order; memory-only messages keep their places. */
	pos = u->blq.next;
	for (i = 0; i < n; i++) {
		const struct st_qrecord *r = &recs[i];
		struct upl_msg *m;
		int take;

		if (u->live_on && r->id > u->live_from) {
			through = true; /* live records: in memory or sent */
			break;
		}
		while (pos != &u->blq) {
			struct upl_msg *e = gw_list_entry(pos, struct upl_msg, link);

			if (e->id && e->id >= r->id)
				break;
			pos = pos->next;
		}
		if (pos != &u->blq && gw_list_entry(pos, struct upl_msg, link)->id == r->id)
			continue;
		/* Sent already (its deletion has not committed yet)? */
		take = region_take(u, r->id, false);
		if (!take || (take < 0 && r->id <= u->last_bl_sent))
			continue;
		m = gw_upl__msg_new(r->rec.topic, r->rec.payload, r->rec.props, r->rec.qos,
				    r->rec.retain, r->id);
		if (!m) {
			/* Read it again later. */
			gw_upl__set_peek_after(u, r->id - 1);
			gw_upl__pump(u, now);
			return;
		}
		if (take > 0)
			region_take(u, r->id, true);
		m->from_store = true;
		m->counted = true; /* it is, as a record of the store */
		gw_list__add(&m->link, pos->prev, pos);
		gw_upl__q_account(u, m, Q_BACKLOG);
	}
	if (i)
		gw_upl__set_peek_after(u, recs[i - 1].id);
	if (through)
		backlog_read(u);
	gw_upl__pump(u, now);
}
