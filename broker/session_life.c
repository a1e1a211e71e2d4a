/*
 * session_life.c - the life of a session, sans I/O: the session table (find,
 * new), resume, going offline (what is pending saved, the will, the expiry
 * clock), the wills and expiries that fall due (brk__timed), the end, and its
 * subscriptions (subscribe, unsubscribe, the retained messages a subscribe
 * sends, the saved blob). What the packets of a connected client do to its
 * session is in session.c.
 */
#include <errno.h>
#include <string.h>

#include "broker/broker_int.h"

/* -------------------------------------------------------------- sessions */

static uint32_t hash_id(struct gw_slice id)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < id.len; i++) {
		h ^= id.p[i];
		h *= 16777619u;
	}
	return h;
}

struct brk_session *brk__session_find(struct brk *b, struct gw_slice id)
{
	uint32_t h = hash_id(id);
	struct brk_session *s;

	if (!b->n_sbuckets)
		return NULL;
	for (s = b->sessions[h & (b->n_sbuckets - 1)]; s; s = s->hnext)
		if (s->hash == h && strlen(s->client_id) == id.len &&
		    memcmp(s->client_id, id.p, id.len) == 0)
			return s;
	return NULL;
}

int brk__sessions_grow(struct brk *b)
{
	uint32_t nb = b->n_sbuckets ? b->n_sbuckets * 2 : 64, i;
	struct brk_session **v = gw_calloc(nb, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (i = 0; i < b->n_sbuckets; i++) {
		struct brk_session *s = b->sessions[i], *next;

		for (; s; s = next) {
			next = s->hnext;
			s->hnext = v[s->hash & (nb - 1)];
			v[s->hash & (nb - 1)] = s;
		}
	}
	gw_free(b->sessions);
	b->sessions = v;
	b->n_sbuckets = nb;
	return 0;
}

/*
 * brk__session_resume - a stored session taken up by a new connection (network
 * or in-process): a delayed will not yet published is cancelled [MQTT-3.1.3-9],
 * and so is the session's expiry.
 */
void brk__session_resume(struct brk_session *s)
{
	if (s->will) {
		brk__msg_unref(s->will);
		s->will = NULL;
	}
	s->will_at = 0;
	s->expire_at = 0;
	gw_list_del(&s->timed_link);
}

struct brk_session *brk__session_new(struct brk *b, struct gw_slice id)
{
	struct brk_session *s;

	if (b->n_sessions >= b->n_sbuckets && brk__sessions_grow(b))
		return NULL;
	s = gw_calloc(1, sizeof(*s) + id.len + 1);
	if (!s)
		return NULL;
	memcpy(s->client_id, id.p, id.len);
	s->b = b;
	s->hash = hash_id(id);
	gw_list_init(&s->timed_link);
	gw_list_init(&s->subs);
	gw_list_init(&s->inflight);
	gw_list_init(&s->queue);
	gw_list_init(&s->acks);
	gw_list_init(&s->inq);
	s->hnext = b->sessions[s->hash & (b->n_sbuckets - 1)];
	b->sessions[s->hash & (b->n_sbuckets - 1)] = s;
	b->n_sessions++;
	return s;
}

static void qlist_free(struct brk_session *s, struct gw_list *l)
{
	while (!gw_list_empty(l)) {
		struct brk_qmsg *q = gw_list_first(l, struct brk_qmsg, link);

		gw_list_del(&q->link);
		if (q->m)
			brk__msg_unref(q->m);
		brk__qmsg_put(s->b, q);
	}
}

void brk__session_free(struct brk_session *s)
{
	struct brk *b = s->b;
	struct brk_session **pp;

	for (pp = &b->sessions[s->hash & (b->n_sbuckets - 1)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	b->n_sessions--;
	while (!gw_list_empty(&s->subs)) {
		struct brk_sub *sub = gw_list_first(&s->subs, struct brk_sub, sess_link);

		brk__tree_unsub(&b->tree, sub);
		gw_list_del(&sub->sess_link);
		gw_free(sub);
	}
	qlist_free(s, &s->queue);
	qlist_free(s, &s->inflight);
	while (!gw_list_empty(&s->inq)) {
		struct brk_inq *e = gw_list_first(&s->inq, struct brk_inq, link);

		gw_list_del(&e->link);
		brk__node_put(b, e);
	}
	brk__holds_detach(b, &s->acks);
	if (s->conn)
		s->conn->s = NULL;
	if (s->ic)
		s->ic->s = NULL;
	if (s->will)
		brk__msg_unref(s->will);
	gw_free(s->acl);
	gw_list_del(&s->timed_link);
	gw_free(s);
}

/* Publish the will of @s now and forget it. */
/* Keep b->next_due the earliest deadline (@t 0: none). */
static void due_at(struct brk *b, int64_t t)
{
	if (t && (!b->next_due || t < b->next_due))
		b->next_due = t;
}

static void will_publish(struct brk_session *s, int64_t now)
{
	struct brk_msg *w = s->will, *m = w;
	struct brk *b = s->b;

	s->will = NULL;
	s->will_at = 0;
	if (!w)
		return;
	/* The will's expiry runs from its publication. */
	if (brk__msg_props(w) && brk__msg_props(w)->has_expiry) {
		struct brk_pub pub = brk__msg_pub(w);

		m = brk__msg_new(&pub, now);
		brk__msg_unref(w);
		if (!m)
			return;
	}
	brk__route(b, m, NULL, NULL, now);
	brk__msg_unref(m);
}

void brk__session_end(struct brk_session *s, int64_t now)
{
	struct brk *b = s->b;

	/* A delayed will goes out when the session ends first [MQTT-3.1.3-9]. */
	if (s->will && s->will_at)
		will_publish(s, now);
	if (s->persist && b->pops && b->pops->session_delete)
		b->pops->session_delete(b->parg, s->client_id);
	brk__session_free(s);
}

void brk__session_clear(struct brk_session *s)
{
	brk__session_end(s, brk__now(s->b));
}

/*
 * A persistent session goes offline, or the broker stops: messages not yet in
 * the store get there (those queued before the hooks were installed), and
 * those with an expiry are saved again with what is left of it, so a restore
 * counts from now. Messages in flight are saved again with their pid and
 * state (PUBLISHED), so that after a restart they are sent again with the
 * same pid and DUP=1, not as new messages [MQTT-4.4.0-1]. That is done here
 * only, not at each send (a store write per message on the hot path): a
 * kill -9 while the client is online brings such a message back as queued,
 * sent again with a new pid. Released QoS 2 messages are stored as markers
 * at PUBREC already; @inflight saves those not stored yet.
 */
static void persist_pending(struct brk_session *s, struct gw_list *l, bool inflight, int64_t now)
{
	struct gw_list *pos;

	gw_list_for_each (pos, l) {
		struct brk_qmsg *q = gw_list_entry(pos, struct brk_qmsg, link);

		if (inflight ? (q->m || !q->seq) : (!q->seq || brk__msg_expire_at(q->m)))
			brk__qmsg_persist(s, q, now);
	}
}

void brk__persist_all(struct brk *b, int64_t now)
{
	uint32_t i;

	if (!b->pops || !b->pops->session_msg_add)
		return;
	for (i = 0; i < b->n_sbuckets; i++) {
		struct brk_session *s;

		for (s = b->sessions[i]; s; s = s->hnext) {
			if (!s->persist || !s->expiry)
				continue;
			persist_pending(s, &s->inflight, true, now);
			persist_pending(s, &s->queue, false, now);
		}
	}
}

void brk__session_offline(struct brk_session *s, bool publish_will, int64_t now)
{
	struct brk *b = s->b;

	s->conn = NULL;
	s->ic = NULL;
	if (s->expiry && s->persist && b->pops && b->pops->session_msg_add) {
		persist_pending(s, &s->inflight, true, now);
		persist_pending(s, &s->queue, false, now);
	}
	if (!publish_will && s->will) {
		brk__msg_unref(s->will);
		s->will = NULL;
	}
	if (s->will) {
		if (!s->will_delay || !s->expiry || b->stopping)
			will_publish(s, now);
		else
			s->will_at = now + (int64_t)s->will_delay * 1000;
	}
	if (!s->expiry) {
		brk__session_end(s, now);
		return;
	}
	s->expire_at = s->expiry == 0xFFFFFFFFu ? 0 : now + (int64_t)s->expiry * 1000;
	if ((s->will_at || s->expire_at) && gw_list_empty(&s->timed_link))
		gw_list_add_tail(&b->timed, &s->timed_link);
	due_at(b, s->will_at);
	due_at(b, s->expire_at);
}

int brk__session_subscribe(struct brk_session *s, struct gw_slice filter, uint8_t qos,
			   unsigned int opts, uint32_t sub_id, bool *existed)
{
	struct brk *b = s->b;
	struct brk_sub *sub;
	struct gw_list *pos;
	int rc;

	*existed = false;
	gw_list_for_each (pos, &s->subs) {
		sub = gw_list_entry(pos, struct brk_sub, sess_link);
		if (sub->filter_len == filter.len &&
		    memcmp(sub->filter, filter.p, filter.len) == 0) {
			/* [MQTT-3.8.4-3] a repeated filter replaces the subscription. */
			*existed = true;
			sub->qos = qos;
			sub->opts = (uint8_t)opts;
			sub->sub_id = sub_id;
			brk__session_save(s);
			return 0;
		}
	}
	if (filter.len > 65535)
		return -EINVAL;
	sub = gw_calloc(1, sizeof(*sub) + filter.len + 1);
	if (!sub)
		return -ENOMEM;
	sub->s = s;
	sub->qos = qos;
	sub->opts = (uint8_t)opts;
	sub->sub_id = sub_id;
	sub->filter_len = (uint16_t)filter.len;
	memcpy(sub->filter, filter.p, filter.len);
	rc = brk__tree_sub(&b->tree, sub);
	if (rc) {
		gw_free(sub);
		return rc;
	}
	gw_list_add_tail(&s->subs, &sub->sess_link);
	brk__session_save(s);
	return 0;
}

int brk__session_unsubscribe(struct brk_session *s, struct gw_slice filter)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &s->subs) {
		struct brk_sub *sub = gw_list_entry(pos, struct brk_sub, sess_link);

		if (sub->filter_len == filter.len &&
		    memcmp(sub->filter, filter.p, filter.len) == 0) {
			brk__tree_unsub(&s->b->tree, sub);
			gw_list_del(&sub->sess_link);
			gw_free(sub);
			brk__session_save(s);
			return 0;
		}
	}
	return -ENOENT;
}

struct retained_ctx {
	struct brk_session *s;
	struct brk_match mt;
	int64_t now;
};

static void retained_one(void *arg, struct brk_msg *m)
{
	struct retained_ctx *rc = arg;

	if (brk__msg_expired(m, rc->now))
		return;
	if (rc->s->acl_deliver && !brk__acl_allowed(rc->s->acl, brk__msg_topic(m), BRK_ACL_READ))
		return;
	/* [MQTT-3.3.1-8] sent with RETAIN set, whatever retain-as-published says. */
	brk__session_deliver(rc->s, m, &rc->mt, NULL, rc->now);
}

void brk__session_send_retained(struct brk_session *s, struct gw_slice filter, uint8_t qos,
				unsigned int opts, uint32_t sub_id, int64_t now)
{
	struct retained_ctx rc;
	struct gw_slice g, f;
	bool bad;

	/* [MQTT-3.3.1-10] retain handling 2: none. */
	if (((opts >> BRK_SUB_RH_SHIFT) & 3) == 2)
		return;
	/* Retained messages are not sent for shared subscriptions [MQTT-4.8.2]. */
	if (brk__share_split(filter, &g, &f, &bad) || bad)
		return;
	memset(&rc, 0, sizeof(rc));
	rc.s = s;
	rc.now = now;
	rc.mt.s = s;
	rc.mt.qos = qos;
	rc.mt.rap = true;
	if (sub_id) {
		rc.mt.ids[0] = sub_id;
		rc.mt.n_ids = 1;
	}
	brk__tree_retained_foreach(&s->b->tree, filter, retained_one, &rc);
}

void brk__session_save(struct brk_session *s)
{
	struct brk *b = s->b;
	struct gw_writer w;
	struct gw_list *pos;
	size_t n = 1 + 4 + 4;
	uint8_t *buf;

	if (!s->persist || !b->pops || !b->pops->session_save)
		return;
	gw_list_for_each (pos, &s->subs) {
		n += 1 + 1 + 4 + 2 + gw_list_entry(pos, struct brk_sub, sess_link)->filter_len;
	}
	buf = gw_malloc(n);
	if (!buf)
		return;
	gw_writer_init(&w, buf, n);
	gw_wr_u8(&w, 1); /* blob version */
	gw_wr_u32be(&w, s->expiry);
	gw_wr_u32be(&w, 0); /* reserved */
	gw_list_for_each (pos, &s->subs) {
		struct brk_sub *sub = gw_list_entry(pos, struct brk_sub, sess_link);

		gw_wr_u8(&w, sub->qos);
		gw_wr_u8(&w, sub->opts);
		gw_wr_u32be(&w, sub->sub_id);
		gw_wr_bin16(&w, sub->filter, sub->filter_len);
	}
	if (!w.err)
		b->pops->session_save(b->parg, s->client_id, buf, w.len);
	gw_free(buf);
}

void brk__timed(struct brk *b, int64_t now)
{
	struct gw_list *pos, *tmp;

	b->next_due = 0;
	gw_list_for_each_safe (pos, tmp, &b->timed) {
		struct brk_session *s = gw_list_entry(pos, struct brk_session, timed_link);

		if (s->conn || s->ic) {
			gw_list_del(&s->timed_link);
			continue;
		}
		if (s->will_at && now >= s->will_at)
			will_publish(s, now);
		if (s->expire_at && now >= s->expire_at) {
			/* tmp may be a session the will's delivery ended: restart. */
			brk__session_end(s, now);
			tmp = b->timed.next;
			continue;
		}
		if (!s->will_at && !s->expire_at)
			gw_list_del(&s->timed_link);
		due_at(b, s->will_at);
		due_at(b, s->expire_at);
	}
}
