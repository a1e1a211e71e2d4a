/*
 * uplink_queue.c - the uplink core's messages in memory: their lists, the
 * packet ids they hold, the per-topic order counts, live and backlog modes
 * and eviction to the store (map of the core: uplink_int.h).
 *
 * The queue. A message to send up is either a store record (id > 0:
 * appended to the store before it is sent, deleted with q_ack when the cloud
 * acknowledges it) or memory only (id 0: queue = off, queue = offline while
 * connected, QoS 0, the birth message). Those sent and not yet acknowledged
 * are in u->inflight; the rest wait in one of four lists:
 *  - resume: put back from the window when the link went down (they keep
 *    their packet ids); they go first after a reconnect, in the order they
 *    were first sent.
 *  - blq, the backlog: records that went through the store without being
 *    kept in memory (appended while the link was down, left by an earlier
 *    run, evicted from memory) read back with q_peek, and messages that were
 *    waiting when the link went down or memory had to be spilled. In id
 *    order; paced by drain_rate (records read back only).
 *  - live: messages that arrived while connected, in arrival order, not paced.
 *  - held: live messages whose topic still has older messages in the backlog.
 * pump() fills the window from resume first, then alternately one backlog
 * and one live message while both have one ready, so live traffic is not
 * starved by a long drain and a drain is not starved by live traffic.
 *
 * Order per topic (a bounded scheme). hot[] counts the unsent backlog
 * records (in the store or read ahead) per topic hash bucket: a record is
 * counted when it becomes backlog (stored without being kept, evicted, moved
 * to blq) and uncounted when it is sent or dropped. A live message whose
 * bucket is hot, or that has held messages before it, is held; held
 * messages go live, in order, when their bucket cools down. Collisions and
 * records the store dropped only make the counts too high (a message waits
 * longer); they are recomputed exactly from memory each time the store has
 * been read through. A message in flight counts as sent: a later one on the
 * same connection cannot overtake it, and after a reconnect the window is
 * resent first in its order. Records left by an earlier run are not known
 * until they have been read ("blind"): until then every message is backlog,
 * as it is while disconnected. Messages on different topics may interleave.
 *
 * While the link is down, committed records are evicted from memory: the
 * store alone decides what stays (its overflow policy may drop some), and the
 * drain reads back exactly what it kept.
 */
#include <string.h>

#include "gateway/uplink_int.h"

uint16_t gw_upl__topic_bucket(const uint8_t *p, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return (uint16_t)(h & (UPL_TOPIC_BUCKETS - 1));
}

struct upl_msg *gw_upl__msg_new(struct gw_slice topic, struct gw_slice payload,
				struct gw_slice props, uint8_t qos, bool retain, uint64_t id)
{
	struct upl_msg *m;

	if (topic.len > 0xffff || payload.len > UINT32_MAX - topic.len - props.len)
		return NULL;
	m = gw_malloc(sizeof(*m) + topic.len + payload.len + props.len);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	gw_list_init(&m->link);
	m->id = id;
	m->topic_len = (uint32_t)topic.len;
	m->bucket = gw_upl__topic_bucket(topic.p, topic.len);
	m->payload_len = (uint32_t)payload.len;
	m->props_len = (uint32_t)props.len;
	m->qos = qos;
	m->retain = retain;
	if (topic.len)
		memcpy(msg_topic(m), topic.p, topic.len);
	if (payload.len)
		memcpy(msg_payload(m), payload.p, payload.len);
	if (props.len)
		memcpy(msg_props(m), props.p, props.len);
	return m;
}

static struct gw_list *list_of(struct gw_upl *u, uint8_t where)
{
	switch (where) {
	case Q_RESUME:
		return &u->resume;
	case Q_BACKLOG:
		return &u->blq;
	case Q_LIVE:
		return &u->live;
	case Q_HELD:
		return &u->held;
	default:
		return &u->inflight;
	}
}

/* Counts @m, just linked into @where. */
void gw_upl__q_account(struct gw_upl *u, struct upl_msg *m, uint8_t where)
{
	m->where = where;
	if (m->pid && gw_upl__pid_holds(where))
		gw_upl__pid_mark(u, m->pid, true);
	if (where == Q_INFLIGHT) {
		u->n_inflight++;
		return;
	}
	u->n_queue++;
	if (!m->id && !m->birth)
		u->n_mem++;
	u->mem_bytes += msg_size(m);
	if (where == Q_HELD)
		u->n_held[m->bucket]++;
	else if (where == Q_BACKLOG)
		gw_upl__bl_added(u, m);
}

void gw_upl__q_add(struct gw_upl *u, struct upl_msg *m, uint8_t where, bool head)
{
	if (head)
		gw_list_add_head(list_of(u, where), &m->link);
	else
		gw_list_add_tail(list_of(u, where), &m->link);
	gw_upl__q_account(u, m, where);
}

/* Into the backlog in id order; memory-only messages keep their places. */
static void blq_add(struct gw_upl *u, struct upl_msg *m)
{
	struct gw_list *pos = u->blq.prev;

	while (m->id && pos != &u->blq && gw_list_entry(pos, struct upl_msg, link)->id > m->id)
		pos = pos->prev;
	gw_list__add(&m->link, pos, pos->next);
	gw_upl__q_account(u, m, Q_BACKLOG);
}

void gw_upl__q_unlink(struct gw_upl *u, struct upl_msg *m)
{
	if (m->where == Q_BACKLOG)
		gw_upl__bl_removed(u, m);
	gw_list_del(&m->link);
	if (m->pid && gw_upl__pid_holds(m->where))
		gw_upl__pid_mark(u, m->pid, false);
	if (m->where == Q_INFLIGHT) {
		u->n_inflight--;
	} else if (m->where != Q_NONE) {
		u->n_queue--;
		if (!m->id && !m->birth)
			u->n_mem--;
		u->mem_bytes -= msg_size(m);
		if (m->where == Q_HELD)
			u->n_held[m->bucket]--;
	}
	m->where = Q_NONE;
}

/* @m is backlog: counted in hot[] until it is sent or dropped. */
static void hot_add(struct gw_upl *u, struct upl_msg *m)
{
	if (m->counted)
		return;
	m->counted = true;
	u->hot[m->bucket]++;
}

/* Unlinks @m from wherever it is and frees it. */
void gw_upl__msg_free(struct gw_upl *u, struct upl_msg *m)
{
	gw_upl__q_unlink(u, m);
	gw_upl__hot_del(u, m);
	if (m->pend)
		m->pend->m = NULL;
	gw_free(m);
}

/*
 * Live mode ends (the link went down, memory is spilled to the store): what
 * waits in memory joins the backlog, and the period's ids become a region,
 * so that reading them back takes only what was evicted unsent.
 */
void gw_upl__live_off(struct gw_upl *u)
{
	struct gw_list *lists[] = { &u->held, &u->live };
	unsigned int i;

	if (!u->live_on)
		return;
	u->live_on = false;
	if (u->last_append_id > u->live_from) {
		/* live_on was only set with a free slot. */
		struct upl_region *rg = &u->regions[u->n_regions++];

		memset(rg, 0, sizeof(*rg));
		rg->lo = u->live_from;
		rg->hi = u->last_append_id;
	}
	for (i = 0; i < GW_ARRAY_SIZE(lists); i++) {
		while (!gw_list_empty(lists[i])) {
			struct upl_msg *m = gw_list_first(lists[i], struct upl_msg, link);

			gw_upl__q_unlink(u, m);
			hot_add(u, m);
			blq_add(u, m);
		}
	}
}

/*
 * Live mode begins when it is safe: connected, every record of the store
 * counted in hot[] (not blind), and a region slot free for its end.
 */
void gw_upl__maybe_live_on(struct gw_upl *u)
{
	if (u->live_on || u->state != UPL_UP || u->blind || u->n_regions >= UPL_MAX_REGIONS)
		return;
	u->live_on = true;
	u->live_from = u->last_append_id;
}

/* The held messages whose bucket has no backlog left go live, in order. */
void gw_upl__release_held(struct gw_upl *u)
{
	struct gw_list *pos, *tmp;

	u->release_due = false;
	gw_list_for_each_safe (pos, tmp, &u->held) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		if (u->hot[m->bucket])
			continue;
		gw_upl__q_unlink(u, m);
		gw_upl__q_add(u, m, Q_LIVE, false);
	}
}

/*
 * Frees every committed, unsent store record in memory (the store alone has
 * it from now on; it is backlog and stays counted in hot[]), after ending
 * live mode. While the link is down the store alone holds them, and its
 * overflow policy decides what stays. Messages put back after a disconnect
 * with a packet id stay, to be resent with it.
 */
void gw_upl__evict(struct gw_upl *u)
{
	struct gw_list *pos, *tmp;
	uint64_t first = 0;

	gw_upl__live_off(u);
	gw_list_for_each_safe (pos, tmp, &u->blq) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		if (!m->id || m->pend || m->pid)
			continue;
		if (!first || m->id < first)
			first = m->id;
		if (!m->counted)
			u->hot[m->bucket]++;
		m->counted = false; /* still counted, as a record of the store */
		gw_upl__region_mark(u, m->id);
		gw_upl__msg_free(u, m);
	}
	if (!first)
		return;
	u->evict_gen++;
	gw_upl__enter_backlog(u);
	if (u->peek_after >= first)
		gw_upl__set_peek_after(u, first - 1);
}

/*
 * A new message kept in memory: backlog when live mode is off (disconnected,
 * records of an earlier run not read yet), else live, or held when its topic
 * has older messages in the backlog or held.
 */
void gw_upl__queue_new(struct gw_upl *u, struct upl_msg *m)
{
	if (!u->live_on) {
		hot_add(u, m);
		blq_add(u, m);
	} else if (u->hot[m->bucket] || u->n_held[m->bucket]) {
		gw_upl__q_add(u, m, Q_HELD, false);
	} else {
		gw_upl__q_add(u, m, Q_LIVE, false);
	}
}
