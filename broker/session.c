/*
 * session.c - the session state of an MQTT client and its delivery, sans
 * I/O: queues and inflight windows, QoS 1/2 acknowledgements both ways (the
 * holds on a publisher's acks), the packets that act on them (PUBLISH in,
 * PUBACK / PUBREC / PUBREL / PUBCOMP, SUBSCRIBE, UNSUBSCRIBE), a session's
 * ACL rules and will, and the session a CONNECT takes over. The connection's
 * protocol machine (conn.c) dispatches to the brk__on_* handlers here; the
 * bytes go out through conn_out.c. The sessions' table, expiry and going
 * offline are in session_life.c, restoring persisted sessions in broker.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

/* ---------------------------------------------------------- session queues */

static void qmsg_free(struct brk_session *s, struct brk_qmsg *q)
{
	struct brk *b = s->b;

	if (q->seq && b->pops && b->pops->session_msg_del)
		b->pops->session_msg_del(b->parg, s->client_id, q->seq);
	if (q->m)
		brk__msg_unref(q->m);
	brk__qmsg_put(b, q);
}

void brk__qmsg_persist(struct brk_session *s, struct brk_qmsg *q, int64_t now)
{
	struct brk *b = s->b;
	struct brk_msg *m = q->m;
	struct brk_msg_props props;
	struct brk_pub pub = { .qos = q->qos, .retain = q->retain };

	if (m) {
		pub.topic = brk__msg_topic(m);
		pub.payload = (struct gw_slice){ brk__msg_payload(m), m->payload_len };
		pub.props = brk__msg_props(m);
	}
	if (m && brk__msg_expire_at(m)) {
		/*
		 * The expiry saved is what is left of it now, so a restore does
		 * not restart the clock from the publisher's full interval.
		 */
		props = *brk__msg_props(m);
		props.has_expiry = true;
		props.expiry = brk__msg_expiry_left(m, now);
		pub.props = &props;
	}
	if (!q->seq)
		q->seq = ++s->next_seq;
	b->pops->session_msg_add(b->parg, s->client_id, q->seq, &pub,
				 q->state == BRK_Q_QUEUED ? 0 : q->pid, q->state);
}

static uint16_t next_pid(struct brk_session *s)
{
	for (;;) {
		struct gw_list *pos;
		bool used = false;

		if (++s->next_pid == 0)
			s->next_pid = 1;
		gw_list_for_each (pos, &s->inflight) {
			if (gw_list_entry(pos, struct brk_qmsg, link)->pid == s->next_pid) {
				used = true;
				break;
			}
		}
		if (!used)
			return s->next_pid;
	}
}

static void deliver_ic(struct brk_session *s, struct brk_msg *m, uint8_t qos, bool retain,
		       const uint32_t *ids, unsigned int n_ids, struct brk_hold *hold)
{
	struct brk_client *ic = s->ic;
	struct brk_delivery d;

	d.topic = brk__msg_topic(m);
	d.payload = (struct gw_slice){ brk__msg_payload(m), m->payload_len };
	d.qos = qos;
	d.retain = retain;
	d.props = brk__msg_props(m);
	d.sub_ids = ids;
	d.n_sub_ids = n_ids;
	d.hold = qos ? hold : NULL;
	s->b->st.msgs_sent++;
	if (ic->deliver)
		ic->deliver(ic->arg, &d);
}

static unsigned int window(const struct brk_session *s)
{
	unsigned int w = s->b->cfg.max_inflight ? s->b->cfg.max_inflight : 65535;

	if (s->conn && s->conn->recv_max_out && s->conn->recv_max_out < w)
		w = s->conn->recv_max_out;
	return w;
}

void brk__session_pump(struct brk_session *s, int64_t now, bool resume)
{
	struct brk_conn *c = s->conn;
	struct gw_list *pos, *tmp;

	if (s->ic) {
		/*
		 * In-process clients acknowledge at once: hand over the whole
		 * queue, after what a restore put back in flight (a released
		 * QoS 2 message was delivered already).
		 */
		while (!gw_list_empty(&s->inflight) && s->ic) {
			struct brk_qmsg *q = gw_list_first(&s->inflight, struct brk_qmsg, link);

			gw_list_del(&q->link);
			s->n_inflight--;
			if (q->m && !brk__msg_expired(q->m, now))
				deliver_ic(s, q->m, q->qos, q->retain, q->ids, q->n_ids, NULL);
			qmsg_free(s, q);
		}
		while (!gw_list_empty(&s->queue) && s->ic) {
			struct brk_qmsg *q = gw_list_first(&s->queue, struct brk_qmsg, link);

			gw_list_del(&q->link);
			s->n_queued--;
			s->queued_bytes -= q->m ? q->m->payload_len : 0;
			if (q->m && !brk__msg_expired(q->m, now))
				deliver_ic(s, q->m, q->qos, q->retain, q->ids, q->n_ids, NULL);
			qmsg_free(s, q);
		}
		return;
	}
	if (!c || c->state != BRK_CS_CONNECTED)
		return;
	if (resume) {
		/* [MQTT-4.4.0-1] resend unacknowledged PUBLISH (DUP) and PUBREL. */
		gw_list_for_each_safe (pos, tmp, &s->inflight) {
			struct brk_qmsg *q = gw_list_entry(pos, struct brk_qmsg, link);

			if (q->state == BRK_Q_RELEASED) {
				brk__conn_send_pubrel(c, q->pid);
			} else if (!brk__conn_send_publish(c, q, true, now)) {
				gw_list_del(&q->link);
				s->n_inflight--;
				qmsg_free(s, q);
			}
		}
	}
	while (!gw_list_empty(&s->queue) && s->n_inflight < window(s)) {
		struct brk_qmsg *q = gw_list_first(&s->queue, struct brk_qmsg, link);

		gw_list_del(&q->link);
		s->n_queued--;
		s->queued_bytes -= q->m->payload_len;
		/* [MQTT-3.3.2-5] an expired message is not delivered. */
		if (brk__msg_expired(q->m, now)) {
			qmsg_free(s, q);
			continue;
		}
		q->pid = next_pid(s);
		q->state = BRK_Q_PUBLISHED;
		if (!brk__conn_send_publish(c, q, false, now)) {
			qmsg_free(s, q);
			continue;
		}
		gw_list_add_tail(&s->inflight, &q->link);
		s->n_inflight++;
	}
}

void brk__session_deliver(struct brk_session *s, struct brk_msg *m, const struct brk_match *mt,
			  struct brk_hold *hold, int64_t now)
{
	struct brk *b = s->b;
	uint8_t qos = GW_MIN(m->qos, mt->qos);
	bool retain = mt->rap ? m->retain : false;
	struct brk_qmsg *q;

	if (s->ic) {
		deliver_ic(s, m, qos, retain, mt->ids, mt->n_ids, hold);
		return;
	}
	if (qos == 0) {
		union {
			struct brk_qmsg q;
			uint8_t room[sizeof(struct brk_qmsg) + sizeof(mt->ids)];
		} tmp;

		/*
		 * QoS 0 goes out now or never: no allocation for it. An offline
		 * persistent session does not queue it either: Mosquitto does only
		 * with queue_qos0_messages (off by default), and the spec lists
		 * QoS 0 messages as optional session state (3.1.1 section 3.1.2.4,
		 * 5.0 section 4.1).
		 */
		if (!s->conn || s->conn->state != BRK_CS_CONNECTED)
			return;
		memset(&tmp.q, 0, sizeof(tmp.q));
		tmp.q.m = m;
		tmp.q.retain = retain;
		tmp.q.n_ids = mt->n_ids;
		memcpy(tmp.q.ids, mt->ids, mt->n_ids * sizeof(uint32_t));
		brk__conn_send_publish(s->conn, &tmp.q, false, now);
		return;
	}
	/* Bounded per session; the drop is counted [DESIGN 6]. */
	if ((b->cfg.max_queued_messages && s->n_queued >= b->cfg.max_queued_messages) ||
	    (b->cfg.max_queued_bytes &&
	     s->queued_bytes + m->payload_len > b->cfg.max_queued_bytes)) {
		b->st.dropped++;
		return;
	}
	q = brk__qmsg_get(b, mt->n_ids);
	if (!q) {
		b->st.dropped++;
		return;
	}
	memset(q, 0, sizeof(*q));
	q->m = brk__msg_ref(m);
	q->qos = qos;
	q->retain = retain;
	q->state = BRK_Q_QUEUED;
	q->n_ids = mt->n_ids;
	memcpy(q->ids, mt->ids, mt->n_ids * sizeof(uint32_t));
	gw_list_add_tail(&s->queue, &q->link);
	s->n_queued++;
	s->queued_bytes += m->payload_len;
	/*
	 * A persistent session's message reaches the store as it is queued,
	 * online or not, so that a crash before the client acknowledges it
	 * loses nothing (qmsg_free deletes it on the acknowledgement). The hook
	 * only joins the store's open batch; clean sessions never get here.
	 */
	if (s->persist && b->pops && b->pops->session_msg_add)
		brk__qmsg_persist(s, q, now);
	brk__session_pump(s, now, false);
}

static struct brk_qmsg *inflight_find(struct brk_session *s, uint16_t pid)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &s->inflight) {
		struct brk_qmsg *q = gw_list_entry(pos, struct brk_qmsg, link);

		if (q->pid == pid)
			return q;
	}
	return NULL;
}

/* PUBACK, PUBREC, PUBCOMP from the client for a message we sent. */
void brk__on_ack(struct brk_conn *c, const struct mqtt_pkt *p, int64_t now)
{
	struct brk_session *s = c->s;
	struct brk_qmsg *q = inflight_find(s, p->packet_id);

	if (!q) {
		/* An unknown id: late or duplicate; a PUBREC still needs its PUBREL. */
		if (p->type == MQTT_PUBREC && p->ack.reason_code < 0x80)
			brk__conn_send_ack(c, MQTT_PUBREL, p->packet_id,
					   c->proto == MQTT_V5 ? MQTT_RC_PACKET_ID_NOT_FOUND : 0);
		return;
	}
	if (p->type == MQTT_PUBREC && q->qos == 2 && q->state == BRK_Q_PUBLISHED &&
	    p->ack.reason_code < 0x80) {
		q->state = BRK_Q_RELEASED;
		brk__msg_unref(q->m);
		q->m = NULL;
		/*
		 * The stored message becomes a marker with only the pid (one
		 * write, as the delete was): after a restart, even a kill -9,
		 * the PUBREL is sent again and the message is not [MQTT-4.4.0-1].
		 * PUBCOMP deletes it (qmsg_free).
		 */
		if (q->seq && s->b->pops && s->b->pops->session_msg_add)
			brk__qmsg_persist(s, q, now);
		else if (q->seq && s->b->pops && s->b->pops->session_msg_del)
			s->b->pops->session_msg_del(s->b->parg, s->client_id, q->seq);
		if (!s->b->pops || !s->b->pops->session_msg_add)
			q->seq = 0;
		brk__conn_send_pubrel(c, q->pid);
		return;
	}
	if ((p->type == MQTT_PUBACK && q->qos == 1) || (p->type == MQTT_PUBCOMP && q->qos == 2) ||
	    (p->type == MQTT_PUBREC && p->ack.reason_code >= 0x80)) {
		gw_list_del(&q->link);
		s->n_inflight--;
		qmsg_free(s, q);
		brk__session_pump(s, now, false);
	}
}

/* ------------------------------------------------------------ holds */

struct brk_hold *brk_hold_take(const struct brk_delivery *d)
{
	if (!d || !d->hold)
		return NULL;
	d->hold->refs++;
	return d->hold;
}

struct brk_hold *brk__hold_new(struct brk_session *s, uint16_t pid, uint8_t kind)
{
	struct brk_hold *h = brk__node_get(s->b);

	if (!h)
		return NULL;
	memset(h, 0, sizeof(*h));
	h->b = s->b;
	h->s = s;
	h->refs = 1;
	h->pid = pid;
	h->kind = kind;
	gw_list_add_tail(&s->acks, &h->link);
	s->n_acks++;
	return h;
}

void brk__holds_detach(struct brk *b, struct gw_list *acks)
{
	while (!gw_list_empty(acks)) {
		struct brk_hold *h = gw_list_first(acks, struct brk_hold, link);

		gw_list_del(&h->link);
		if (h->s && h->s->n_acks)
			h->s->n_acks--;
		h->s = NULL;
		/* A hold still taken is freed by its last brk_hold_release(). */
		if (h->refs)
			gw_list_add_tail(&b->loose_holds, &h->link);
		else
			brk__node_put(b, h);
	}
}

/*
 * Flow control of a publisher whose acks are held (the uplink holds each
 * forwarded QoS >= 1 PUBACK / PUBREC until the store has committed it): its
 * connection is not read while its session is owed max_held_acks acks, so
 * TCP slows the client down instead of the broker dropping it; reading
 * resumes when they go out. Other connections are not affected.
 */
static void conn_flow(struct brk_conn *c)
{
	const struct brk *b = c->b;
	bool over = c->s && b->cfg.max_held_acks && c->s->n_acks >= b->cfg.max_held_acks;

	if (over == c->paused || c->state != BRK_CS_CONNECTED || !c->ops->pause)
		return;
	c->paused = over;
	if (over)
		c->b->st.read_pauses++;
	c->ops->pause(c, over);
}

void brk__hold_release_acks(struct brk_session *s)
{
	while (!gw_list_empty(&s->acks)) {
		struct brk_hold *h = gw_list_first(&s->acks, struct brk_hold, link);

		if (h->refs)
			break;
		gw_list_del(&h->link);
		if (s->n_acks)
			s->n_acks--;
		if (s->conn && s->conn->state == BRK_CS_CONNECTED) {
			brk__conn_send_ack(s->conn, h->kind, h->pid, h->reason);
			/* A failed PUBREC ends the QoS 2 exchange too [MQTT-4.3.3]. */
			if ((h->kind == MQTT_PUBACK || h->reason >= 0x80) && s->conn->inflight_in)
				s->conn->inflight_in--;
		}
		brk__node_put(s->b, h);
	}
	if (s->conn && s->conn->paused)
		conn_flow(s->conn);
}

void brk_hold_release(struct brk_hold *h)
{
	void (*acked)(void *arg, int status);
	void *arg;

	if (!h || !h->refs)
		return;
	if (--h->refs)
		return;
	if (h->s) {
		brk__hold_release_acks(h->s);
		return;
	}
	/* Freed before the callback runs, so that it may publish again. */
	acked = h->acked;
	arg = h->arg;
	gw_list_del(&h->link);
	brk__node_put(h->b, h);
	if (acked)
		acked(arg, 0);
}

/* ------------------------------------------------------------ PUBLISH in */

static struct brk_inq *inq_find(struct brk_session *s, uint16_t pid)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &s->inq) {
		struct brk_inq *e = gw_list_entry(pos, struct brk_inq, link);

		if (e->pid == pid)
			return e;
	}
	return NULL;
}

static bool ack_pending(struct brk_session *s, uint16_t pid)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &s->acks) {
		if (gw_list_entry(pos, struct brk_hold, link)->pid == pid)
			return true;
	}
	return false;
}

void brk__on_publish(struct brk_conn *c, struct mqtt_pkt *p, int64_t now)
{
	struct brk *b = c->b;
	struct brk_session *s = c->s;
	struct mqtt_publish *pb = &p->publish;
	struct gw_slice topic = pb->topic;
	struct brk_msg_props mp;
	struct brk_pub pub;
	struct brk_msg *m;
	struct brk_hold *h = NULL;
	bool denied;

	b->st.msgs_received++;
	/* Topic aliases from the client [MQTT-3.3.2-7..12]. */
	if (p->props.has_topic_alias) {
		uint16_t a = p->props.topic_alias;
		struct brk_aliases *al;
		char **slot;

		if (!a || a > b->cfg.max_topic_alias) {
			brk__conn_fail(c, -EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID);
			return;
		}
		/* The table exists only for clients that use aliases. */
		al = brk__conn_aliases(c);
		if (!al || a > al->max_in) {
			brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
			return;
		}
		slot = &al->v[al->max_out + a - 1];
		if (topic.len) {
			char *t = gw_strndup((const char *)topic.p, topic.len);

			if (!t) {
				brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
				return;
			}
			gw_free(*slot);
			*slot = t;
		} else if (*slot) {
			topic = gw_slice_cstr(*slot);
		} else {
			brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
	}
	if (!brk__topic_name_valid(topic)) {
		brk__conn_fail(c, -EPROTO, MQTT_RC_TOPIC_NAME_INVALID);
		return;
	}
	if (pb->retain && !b->cfg.retain_available) {
		brk__conn_fail(c, -EPROTO, MQTT_RC_RETAIN_NOT_SUPPORTED);
		return;
	}
	/*
	 * A PUBLISH the ACL refuses goes through the acknowledgement machinery
	 * as any other (acks stay in order [MQTT-4.6.0-2]) and is not routed:
	 * 3.1.1 has no way to say no, so it is acknowledged normally and
	 * dropped, as Mosquitto does; 5.0 gets PUBACK / PUBREC 0x87, which
	 * ends a QoS 2 exchange, so no PUBREL is awaited.
	 */
	denied = s->acl && !brk__acl_allowed(s->acl, topic, BRK_ACL_WRITE);
	if (denied) {
		b->st.acl_denied++;
		if (b->lg && b->lg->level >= LOG_DEBUG)
			brk__log(b, LOG_DEBUG, "%s: PUBLISH to '%.*s' refused by the ACL",
				 s->client_id, (int)topic.len, (const char *)topic.p);
	}
	if (pb->qos == 2) {
		/* [MQTT-4.3.3-9] a resent QoS 2 PUBLISH is not delivered twice. */
		if (inq_find(s, p->packet_id)) {
			if (!ack_pending(s, p->packet_id))
				brk__conn_send_ack(c, MQTT_PUBREC, p->packet_id, 0);
			return;
		}
	}
	if (pb->qos) {
		/*
		 * [MQTT-3.3.4-9] more unacknowledged QoS > 0 than the Receive
		 * Maximum we announced. 3.1.1 has no such limit: a 3.1.1 client
		 * is slowed down (conn_flow), never dropped for it.
		 */
		if (c->proto == MQTT_V5 && c->inflight_in >= brk__recv_max(b)) {
			brk__conn_fail(c, -EPROTO, MQTT_RC_RECEIVE_MAX_EXCEEDED);
			return;
		}
		if (pb->qos == 2 && !ack_pending(s, p->packet_id) &&
		    !(denied && c->proto == MQTT_V5)) {
			struct brk_inq *e = brk__node_get(b);

			if (!e) {
				brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
				return;
			}
			e->pid = p->packet_id;
			gw_list_add_tail(&s->inq, &e->link);
			s->n_inq++;
		}
		if (pb->qos == 1 && ack_pending(s, p->packet_id))
			return; /* A DUP of a message whose ack is still held. */
		/* refs 1: ours, until routing is done. */
		h = brk__hold_new(s, p->packet_id, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC);
		if (!h) {
			brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
			return;
		}
		if (denied && c->proto == MQTT_V5)
			h->reason = MQTT_RC_NOT_AUTHORIZED;
		if (c->proto == MQTT_V5)
			c->inflight_in++;
	}
	if (denied)
		goto out;
	memset(&mp, 0, sizeof(mp));
	if (c->proto == MQTT_V5) {
		mp.has_payload_format = p->props.has_payload_format;
		mp.payload_format = p->props.payload_format;
		mp.has_expiry = p->props.has_message_expiry;
		mp.expiry = p->props.message_expiry;
		if (p->props.has_content_type)
			mp.content_type = p->props.content_type;
		if (p->props.has_response_topic)
			mp.response_topic = p->props.response_topic;
		if (p->props.has_correlation_data)
			mp.correlation_data = p->props.correlation_data;
		if (p->props.has_user_props)
			mp.user_props = p->props.user_props;
	}
	pub.topic = topic;
	pub.payload = pb->payload;
	pub.qos = pb->qos;
	pub.retain = pb->retain;
	pub.props = c->proto == MQTT_V5 ? &mp : NULL;
	m = brk__msg_new(&pub, now);
	if (m) {
		brk__route(b, m, s, h, now);
		brk__msg_unref(m);
	} else {
		b->st.dropped++;
	}
out:
	if (h) {
		brk_hold_release(h);
		conn_flow(c);
	}
}

/* PUBREL from the client: the QoS 2 message it sent is released [MQTT-4.3.3]. */
void brk__on_pubrel(struct brk_conn *c, const struct mqtt_pkt *p)
{
	struct brk_inq *e = inq_find(c->s, p->packet_id);

	if (e) {
		gw_list_del(&e->link);
		brk__node_put(c->b, e);
		c->s->n_inq--;
		if (c->inflight_in)
			c->inflight_in--;
	}
	brk__conn_send_ack(c, MQTT_PUBCOMP, p->packet_id,
			   e || c->proto != MQTT_V5 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
}

/* -------------------------------------------------------- SUBSCRIBE */

void brk__on_subscribe(struct brk_conn *c, struct mqtt_pkt *p, int64_t now)
{
	struct brk_session *s = c->s;
	struct mqtt_sub_iter it;
	struct mqtt_sub_entry e;
	uint8_t codes[256], *cv = codes;
	size_t n = 0, i;
	uint32_t sub_id = p->props.sub_id_count ? p->props.sub_id[0] : 0;
	struct mqtt_pkt ack;
	bool *existed = NULL;
	bool ex_small[256];

	if (p->subscribe.count > sizeof(codes)) {
		cv = gw_malloc(p->subscribe.count * (1 + sizeof(bool)));
		if (!cv) {
			brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
			return;
		}
		existed = (bool *)(cv + p->subscribe.count);
	} else {
		existed = ex_small;
	}
	mqtt_sub_iter_init(&it, p);
	while (mqtt_sub_next(&it, &e) == 1 && n < p->subscribe.count) {
		struct gw_slice g, f;
		bool bad, shared = brk__share_split(e.filter, &g, &f, &bad);
		unsigned int opts = (e.no_local ? BRK_SUB_NO_LOCAL : 0) |
				    (e.retain_as_published ? BRK_SUB_RAP : 0) |
				    ((unsigned int)e.retain_handling << BRK_SUB_RH_SHIFT);
		int rc;

		existed[n] = true;
		if (bad || !brk__topic_filter_valid(e.filter)) {
			cv[n++] = MQTT_RC_TOPIC_FILTER_INVALID;
			continue;
		}
		if (shared && e.no_local) {
			/* [MQTT-3.8.3-4] */
			if (cv != codes)
				gw_free(cv);
			brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
		/* Refused by the ACL: 0x80 in 3.1.1, 0x87 Not authorized in 5.0. */
		if (s->acl && !brk__acl_sub_allowed(s->acl, e.filter)) {
			s->b->st.acl_denied++;
			cv[n++] = c->proto == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
			continue;
		}
		rc = brk__session_subscribe(s, e.filter, GW_MIN(e.qos, 2), opts, sub_id,
					    &existed[n]);
		cv[n++] = rc ? MQTT_RC_UNSPECIFIED : GW_MIN(e.qos, 2);
	}
	memset(&ack, 0, sizeof(ack));
	ack.type = MQTT_SUBACK;
	ack.packet_id = p->packet_id;
	ack.suback.codes = (struct gw_slice){ cv, n };
	brk__conn_out_pkt(c, &ack);
	/* Retained messages after the SUBACK [MQTT-3.3.1-9]. */
	mqtt_sub_iter_init(&it, p);
	for (i = 0; i < n && mqtt_sub_next(&it, &e) == 1; i++) {
		unsigned int opts = (e.retain_as_published ? BRK_SUB_RAP : 0) |
				    ((unsigned int)e.retain_handling << BRK_SUB_RH_SHIFT);

		if (cv[i] >= 0x80)
			continue;
		if (e.retain_handling == 1 && existed[i])
			continue;
		brk__session_send_retained(s, e.filter, cv[i], opts, sub_id, now);
	}
	if (cv != codes)
		gw_free(cv);
}

void brk__on_unsubscribe(struct brk_conn *c, struct mqtt_pkt *p)
{
	struct mqtt_sub_iter it;
	struct mqtt_sub_entry e;
	uint8_t codes[256], *cv = codes;
	size_t n = 0;
	struct mqtt_pkt ack;

	if (p->subscribe.count > sizeof(codes)) {
		cv = gw_malloc(p->subscribe.count);
		if (!cv) {
			brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
			return;
		}
	}
	mqtt_sub_iter_init(&it, p);
	while (mqtt_sub_next(&it, &e) == 1 && n < p->subscribe.count)
		cv[n++] = brk__session_unsubscribe(c->s, e.filter) ? MQTT_RC_NO_SUBSCRIPTION_EXISTED
								   : 0;
	memset(&ack, 0, sizeof(ack));
	ack.type = MQTT_UNSUBACK;
	ack.packet_id = p->packet_id;
	ack.suback.codes = (struct gw_slice){ cv, c->proto == MQTT_V5 ? n : 0 };
	brk__conn_out_pkt(c, &ack);
	if (cv != codes)
		gw_free(cv);
}

/* ------------------------------------------------------------- CONNECT */

static struct brk_msg *will_new(const struct mqtt_connect *cn, int64_t now)
{
	const struct mqtt_props *wp = &cn->will.props;
	struct brk_msg_props mp;
	struct brk_pub pub;

	memset(&mp, 0, sizeof(mp));
	mp.has_payload_format = wp->has_payload_format;
	mp.payload_format = wp->payload_format;
	mp.has_expiry = wp->has_message_expiry;
	mp.expiry = wp->message_expiry;
	if (wp->has_content_type)
		mp.content_type = wp->content_type;
	if (wp->has_response_topic)
		mp.response_topic = wp->response_topic;
	if (wp->has_correlation_data)
		mp.correlation_data = wp->correlation_data;
	if (wp->has_user_props)
		mp.user_props = wp->user_props;
	pub.topic = cn->will.topic;
	pub.payload = cn->will.payload;
	pub.qos = cn->will.qos;
	pub.retain = cn->will.retain;
	pub.props = &mp;
	/* The will's expiry counts from when it is published, so it is stamped then. */
	(void)now;
	return brk__msg_new(&pub, 0);
}

/*
 * Give @s the ACL rules @v (ownership taken) of the client connecting. A
 * resumed session's subscriptions were checked under the rules of whoever
 * made them (maybe another user, or a session restored from the store), so
 * its deliveries are checked one by one from now on, and what it has queued
 * and may no longer read is dropped now.
 */
void brk__session_acl_attach(struct brk_session *s, struct brk_acl_view *v, bool present)
{
	struct gw_list *pos, *tmp;

	gw_free(s->acl);
	s->acl = v;
	s->acl_deliver = v->has_deny || present;
	if (!present)
		return;
	gw_list_for_each_safe (pos, tmp, &s->queue) {
		struct brk_qmsg *q = gw_list_entry(pos, struct brk_qmsg, link);

		if (!q->m || brk__acl_allowed(v, brk__msg_topic(q->m), BRK_ACL_READ))
			continue;
		gw_list_del(&q->link);
		s->n_queued--;
		s->queued_bytes -= q->m->payload_len;
		qmsg_free(s, q);
	}
}

/*
 * brk__session_take - the session of the client @id whose CONNECT @cn was
 * accepted: a session of that id is taken from its connection or in-process
 * client [MQTT-3.1.4-3], ended if @cn asks for a clean start, else resumed
 * (*@present set); a new one is made when there is none. It gets @expiry,
 * the ACL rules @av (ownership taken, on failure too) and @cn's will; the
 * caller attaches it to its connection. NULL on out-of-memory.
 */
struct brk_session *brk__session_take(struct brk *b, struct gw_slice id,
				      const struct mqtt_connect *cn, struct brk_acl_view *av,
				      uint32_t expiry, bool *present, int64_t now)
{
	struct brk_session *s;

	*present = false;
	/* Take over a session of the same id [MQTT-3.1.4-3]. */
	s = brk__session_find(b, id);
	if (s) {
		if (s->conn) {
			struct brk_conn *old = s->conn;

			brk__conn_kick(old, MQTT_RC_SESSION_TAKEN_OVER);
			old->s = NULL;
			if (old->counted && b->st.clients_connected)
				b->st.clients_connected--;
			old->counted = false;
			brk__session_offline(s, old->will_ok, now);
			s = brk__session_find(b, id); /* it may have ended */
		} else if (s->ic) {
			s->ic->s = NULL;
			s->ic = NULL;
			brk__session_offline(s, false, now);
			s = brk__session_find(b, id);
		}
	}
	if (s && cn->clean_start) {
		brk__session_end(s, now);
		s = NULL;
	}
	if (s) {
		*present = true;
		brk__session_resume(s);
	} else {
		s = brk__session_new(b, id);
		if (!s) {
			gw_free(av);
			return NULL;
		}
	}
	if (b->cfg.acl)
		brk__session_acl_attach(s, av, *present);
	s->expiry = expiry;
	s->persist = expiry != 0;
	/*
	 * A will the client could not publish itself is never published: it is
	 * not kept, and the connection is accepted (refusing it would lock out
	 * a client whose will alone is misconfigured). Counted as refused.
	 */
	if (cn->has_will && s->acl && !brk__acl_allowed(s->acl, cn->will.topic, BRK_ACL_WRITE)) {
		b->st.acl_denied++;
		brk__log(b, LOG_INFO, "%s: will to '%.*s' refused by the ACL: dropped",
			 s->client_id, (int)cn->will.topic.len, (const char *)cn->will.topic.p);
	} else if (cn->has_will) {
		s->will = will_new(cn, now);
		s->will_delay = cn->will.props.has_will_delay ? cn->will.props.will_delay : 0;
	}
	return s;
}
