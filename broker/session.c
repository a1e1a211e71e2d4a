/*
 * session.c - the MQTT protocol machine of one network connection, sans I/O:
 * bytes and a clock in (brk__conn_input, brk__conn_tick), bytes out (c->out,
 * sent by the glue when ops->want_flush says so), and the session state it
 * drives (subscriptions, inflight windows, queues, acknowledgements).
 *
 * Packets are decoded by the pure codec in place, in the buffer the glue read
 * into; only the partial tail of a read is copied.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

/* Payloads up to this size are copied next to their header: one iovec less. */
#define COPY_PAYLOAD_MAX 256

/* ---------------------------------------------------------- output buffer */

void brk__obuf_reset(struct brk_obuf *o)
{
	unsigned int i;

	for (i = 0; i < o->n; i++)
		if (o->segs[i].m)
			brk__msg_unref(o->segs[i].m);
	o->n = 0;
	o->len = 0;
	o->total = 0;
}

void brk__obuf_fini(struct brk_obuf *o)
{
	brk__obuf_reset(o);
	gw_free(o->buf);
	gw_free(o->segs);
	memset(o, 0, sizeof(*o));
}

static struct brk_oseg *obuf_seg(struct brk_obuf *o)
{
	if (o->n == o->cap_segs) {
		unsigned int nc = o->cap_segs ? o->cap_segs * 2 : 8;
		struct brk_oseg *v = gw_realloc(o->segs, nc * sizeof(*v));

		if (!v)
			return NULL;
		o->segs = v;
		o->cap_segs = nc;
	}
	return &o->segs[o->n++];
}

/* Room for @n more bytes in buf; NULL on out-of-memory. */
static uint8_t *obuf_reserve(struct brk_obuf *o, size_t n)
{
	if (o->cap - o->len < n) {
		size_t nc = o->cap ? o->cap : 256;
		uint8_t *p;

		while (nc - o->len < n)
			nc *= 2;
		p = gw_realloc(o->buf, nc);
		if (!p)
			return NULL;
		o->buf = p;
		o->cap = nc;
	}
	return o->buf + o->len;
}

/* The bytes just written at buf + len (n of them) become part of the output. */
static int obuf_commit(struct brk_obuf *o, size_t n)
{
	struct brk_oseg *sg = o->n ? &o->segs[o->n - 1] : NULL;

	if (!sg || sg->m || sg->off + sg->len != o->len) {
		sg = obuf_seg(o);
		if (!sg)
			return -ENOMEM;
		sg->m = NULL;
		sg->off = (uint32_t)o->len;
		sg->len = 0;
	}
	sg->len += (uint32_t)n;
	o->len += n;
	o->total += n;
	return 0;
}

static int obuf_msg(struct brk_obuf *o, struct brk_msg *m)
{
	struct brk_oseg *sg = obuf_seg(o);

	if (!sg)
		return -ENOMEM;
	sg->m = brk__msg_ref(m);
	sg->off = 0;
	sg->len = m->payload_len;
	o->total += m->payload_len;
	return 0;
}

/* ------------------------------------------------------------------ stage */

/* May @c's next bytes go to the broker's stage (see struct brk)? */
static bool stage_ok(const struct brk_conn *c)
{
	return (!c->out || !c->out->total) && !c->writing &&
	       (!c->stage_len || c->b->stage_tail == c);
}

/*
 * Room for @n bytes of output for @c: in the stage while @c has nothing else
 * queued (@stage false: a segment that refers to a message follows, so
 * c->out), else in c->out, after what @c had staged. NULL on out-of-memory.
 * The bytes are queued by out_commit(c, n, stage) with the same @stage.
 */
static uint8_t *out_reserve(struct brk_conn *c, size_t n, bool stage)
{
	if (stage && stage_ok(c))
		return obuf_reserve(&c->b->stage, n);
	if (c->stage_len && brk__conn_unstage(c, 0))
		return NULL;
	if (!c->out && !(c->out = gw_calloc(1, sizeof(*c->out))))
		return NULL;
	return obuf_reserve(c->out, n);
}

/* Queue the @n bytes written at out_reserve(c, n, stage). 0 or -ENOMEM. */
static int out_commit(struct brk_conn *c, size_t n, bool stage)
{
	struct brk *b = c->b;

	if (!stage || !stage_ok(c))
		return obuf_commit(c->out, n);
	if (!c->stage_len) {
		c->stage_off = (uint32_t)b->stage.len;
		b->n_staged++;
	}
	b->stage_tail = c;
	b->stage.len += n;
	c->stage_len += (uint32_t)n;
	return 0;
}

int brk__conn_unstage(struct brk_conn *c, size_t done)
{
	struct brk *b = c->b;
	size_t left;
	uint8_t *dst;
	int rc = 0;

	if (!c->stage_len)
		return 0;
	left = c->stage_len - GW_MIN(done, (size_t)c->stage_len);
	if (left) {
		if (!c->out)
			c->out = gw_calloc(1, sizeof(*c->out));
		dst = c->out ? obuf_reserve(c->out, left) : NULL;
		if (!dst || obuf_commit(c->out, left))
			rc = -ENOMEM;
		else
			memcpy(dst, b->stage.buf + c->stage_off + (c->stage_len - left), left);
	}
	c->stage_len = 0;
	if (b->stage_tail == c)
		b->stage_tail = NULL;
	if (--b->n_staged == 0)
		b->stage.len = 0;
	return rc;
}

void brk__conn_out_free(struct brk_conn *c)
{
	if (!c->out)
		return;
	brk__obuf_fini(c->out);
	gw_free(c->out);
	c->out = NULL;
}

static void want_flush(struct brk_conn *c)
{
	if (!c->dirty && c->ops && c->ops->want_flush) {
		c->dirty = true;
		c->ops->want_flush(c);
	}
}

/* Encode @p for this connection's version into its output. */
static int out_pkt(struct brk_conn *c, const struct mqtt_pkt *p)
{
	size_t n = mqtt_encoded_size(c->proto ? c->proto : MQTT_V311, p);
	struct gw_writer w;
	uint8_t *dst;

	if (!n)
		return -EINVAL;
	dst = out_reserve(c, n, true);
	if (!dst)
		return -ENOMEM;
	gw_writer_init(&w, dst, n);
	if (mqtt_encode(&w, c->proto ? c->proto : MQTT_V311, p) || w.len != n)
		return -EINVAL;
	if (out_commit(c, n, true))
		return -ENOMEM;
	c->b->st.bytes_sent += n;
	want_flush(c);
	return 0;
}

/* --------------------------------------------------------- small packets */

static const char *reason_string(uint8_t reason);

void brk__conn_send_ack(struct brk_conn *c, uint8_t type, uint16_t pid, uint8_t reason)
{
	const char *rs = reason >= 0x80 ? reason_string(reason) : NULL;
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.packet_id = pid;
	p.ack.reason_code = reason;
	/* [MQTT-3.1.2-29] no Reason String when the client set Request Problem Information 0. */
	if (rs && c->proto == MQTT_V5 && c->req_problem) {
		p.props.has_reason_string = true;
		p.props.reason_string = gw_slice_cstr(rs);
	}
	out_pkt(c, &p);
}

void brk__conn_send_pubrel(struct brk_conn *c, uint16_t pid)
{
	brk__conn_send_ack(c, MQTT_PUBREL, pid, 0);
}

/*
 * Reason strings for the DISCONNECTs we send (always allowed there
 * [MQTT-3.1.2-29]) and for failed acknowledgements (only if the client asked
 * for problem information).
 */
static const char *reason_string(uint8_t reason)
{
	switch (reason) {
	case MQTT_RC_PACKET_ID_NOT_FOUND:
		return "packet identifier not found";
	case MQTT_RC_MALFORMED:
		return "malformed packet";
	case MQTT_RC_PROTOCOL_ERROR:
		return "protocol error";
	case MQTT_RC_SERVER_SHUTTING_DOWN:
		return "server shutting down";
	case MQTT_RC_KEEP_ALIVE_TIMEOUT:
		return "keep alive timeout";
	case MQTT_RC_SESSION_TAKEN_OVER:
		return "session taken over";
	case MQTT_RC_TOPIC_NAME_INVALID:
		return "topic name invalid";
	case MQTT_RC_RECEIVE_MAX_EXCEEDED:
		return "receive maximum exceeded";
	case MQTT_RC_TOPIC_ALIAS_INVALID:
		return "topic alias invalid";
	case MQTT_RC_PACKET_TOO_LARGE:
		return "packet too large";
	case MQTT_RC_RETAIN_NOT_SUPPORTED:
		return "retain not supported";
	default:
		return NULL;
	}
}

static void send_disconnect(struct brk_conn *c, uint8_t reason)
{
	const char *rs = reason_string(reason);
	struct mqtt_pkt p;

	if (c->proto != MQTT_V5)
		return;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_DISCONNECT;
	p.disconnect.reason_code = reason;
	if (rs) {
		p.props.has_reason_string = true;
		p.props.reason_string = gw_slice_cstr(rs);
	}
	out_pkt(c, &p);
}

static void send_connack(struct brk_conn *c, uint8_t reason, bool present, struct mqtt_props *props)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	if (props && c->proto == MQTT_V5)
		p.props = *props;
	p.connack.session_present = present && reason == 0;
	p.connack.reason_code = c->proto == MQTT_V5 ? reason : mqtt_connack_rc_v3(reason);
	if (reason == 0)
		p.connack.reason_code = 0;
	out_pkt(c, &p);
}

/* ---------------------------------------------------------- closing */

void brk__conn_kick(struct brk_conn *c, uint8_t reason)
{
	if (c->state == BRK_CS_CLOSING)
		return;
	if (c->state == BRK_CS_CONNECTED && reason)
		send_disconnect(c, reason);
	c->state = BRK_CS_CLOSING;
	if (c->ops && c->ops->close)
		c->ops->close(c);
}

/* A bad packet: count it and close this connection only. */
/* The Receive Maximum we announce to 5.0 clients (0 in a config: none, 65535). */
static unsigned int recv_max(const struct brk *b)
{
	return b->cfg.receive_maximum ? b->cfg.receive_maximum : 65535;
}

static void conn_flow(struct brk_conn *c);

static void conn_fail(struct brk_conn *c, int err, uint8_t reason)
{
	if (err == -EBADMSG || reason == MQTT_RC_MALFORMED)
		c->b->st.malformed++;
	else
		c->b->st.protocol_errors++;
	if (c->b->lg && c->b->lg->level >= LOG_DEBUG) {
		char peer[64];

		brk__log(c->b, LOG_DEBUG, "%s: closing on error %d (reason 0x%02x)",
			 brk__conn_peer(c, peer, sizeof(peer)), err, reason);
	}
	if (c->state == BRK_CS_NEW && c->proto) {
		/* A CONNECT that fails gets a CONNACK with the reason [MQTT-3.2.2-6]. */
		if (reason == MQTT_RC_UNSUPPORTED_VERSION || reason == MQTT_RC_CLIENT_ID_INVALID ||
		    c->proto == MQTT_V5)
			send_connack(c, reason ? reason : MQTT_RC_PROTOCOL_ERROR, false, NULL);
	}
	brk__conn_kick(c, reason ? reason : MQTT_RC_PROTOCOL_ERROR);
}

/* ------------------------------------------------------------ PUBLISH out */

/* The alias tables of @c, allocated on first use (both sides at once); NULL on out-of-memory. */
static struct brk_aliases *aliases(struct brk_conn *c)
{
	uint16_t max_in = c->b->cfg.max_topic_alias;
	struct brk_aliases *a = c->alias;

	if (a)
		return a;
	a = gw_calloc(1, sizeof(*a) + ((size_t)c->alias_max_out + max_in) * sizeof(char *));
	if (!a)
		return NULL;
	a->max_out = c->alias_max_out;
	a->max_in = max_in;
	c->alias = a;
	return a;
}

static int alias_out_find(struct brk_conn *c, const struct brk_msg *m, bool *fresh)
{
	struct brk_aliases *a = aliases(c);
	unsigned int i;

	*fresh = false;
	if (!a)
		return 0;
	for (i = 0; i < a->n_out; i++)
		if (strlen(a->v[i]) == m->topic_len && memcmp(a->v[i], m->topic, m->topic_len) == 0)
			return (int)i + 1;
	if (a->n_out >= a->max_out)
		return 0;
	a->v[a->n_out] = gw_strndup(m->topic, m->topic_len);
	if (!a->v[a->n_out])
		return 0;
	*fresh = true;
	return ++a->n_out;
}

/* Bytes of @v as an MQTT Variable Byte Integer (1.5.5). */
static size_t varint_len(uint64_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/*
 * Size of the PUBLISH @p as mqtt_encode writes it for @proto, worked out
 * without encoding it: sizing every outgoing PUBLISH by encoding it took a
 * quarter of the broker's CPU. Knows the properties brk__conn_send_publish
 * sets, no others. 0 if it cannot be encoded (over the protocol's limits,
 * malformed User Properties), like mqtt_encoded_size; the encoder still
 * checks the rest, and the caller checks the size it wrote against this.
 */
static size_t publish_size(uint8_t proto, const struct mqtt_pkt *p)
{
	const struct mqtt_props *pp = &p->props;
	uint64_t rem = 2 + (uint64_t)p->publish.topic.len + (p->publish.qos ? 2 : 0) +
		       p->publish.payload.len;

	if (proto == MQTT_V5) {
		uint64_t n = 0;
		unsigned int i;

		n += pp->has_payload_format ? 2 : 0;
		n += pp->has_message_expiry ? 5 : 0;
		n += pp->has_content_type ? 3 + pp->content_type.len : 0;
		n += pp->has_response_topic ? 3 + pp->response_topic.len : 0;
		n += pp->has_correlation_data ? 3 + pp->correlation_data.len : 0;
		n += pp->has_topic_alias ? 3 : 0;
		for (i = 0; i < pp->sub_id_count; i++)
			n += 1 + varint_len(pp->sub_id[i]);
		if (pp->has_user_props) {
			struct gw_slice cur = pp->user_props, k, v;
			int rc;

			while ((rc = mqtt_user_prop_next(&cur, &k, &v)) > 0)
				n += 5 + k.len + v.len;
			if (rc < 0)
				return 0;
		}
		if (n > MQTT_MAX_REMAINING)
			return 0;
		rem += varint_len(n) + n;
	}
	if (rem > MQTT_MAX_REMAINING)
		return 0;
	return 1 + varint_len(rem) + (size_t)rem;
}

bool brk__conn_send_publish(struct brk_conn *c, struct brk_qmsg *q, bool dup, int64_t now)
{
	struct brk_msg *m = q->m;
	struct mqtt_pkt p;
	struct gw_writer w;
	size_t hdr, total;
	uint8_t *dst;
	int alias = 0;
	bool fresh = false, copy;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.packet_id = q->qos ? q->pid : 0;
	p.publish.qos = q->qos;
	p.publish.dup = dup && q->qos;
	p.publish.retain = q->retain;
	p.publish.topic = brk__msg_topic(m);
	p.publish.payload = (struct gw_slice){ brk__msg_payload(m), m->payload_len };
	if (c->proto == MQTT_V5) {
		const struct brk_msg_props *mp = brk__msg_props(m);
		struct mqtt_props *pp = &p.props;

		if (mp && mp->has_payload_format) {
			pp->has_payload_format = true;
			pp->payload_format = mp->payload_format;
		}
		if (brk__msg_expire_at(m)) {
			/* [MQTT-3.3.2-6] the expiry forwarded is what is left of it. */
			pp->has_message_expiry = true;
			pp->message_expiry = brk__msg_expiry_left(m, now);
		}
		if (mp && mp->content_type.p) {
			pp->has_content_type = true;
			pp->content_type = mp->content_type;
		}
		if (mp && mp->response_topic.p) {
			pp->has_response_topic = true;
			pp->response_topic = mp->response_topic;
		}
		if (mp && mp->correlation_data.p) {
			pp->has_correlation_data = true;
			pp->correlation_data = mp->correlation_data;
		}
		if (mp && mp->user_props.len) {
			pp->has_user_props = true;
			pp->user_props = mp->user_props;
		}
		if (q->n_ids) {
			unsigned int i;

			for (i = 0; i < q->n_ids && i < MQTT_MAX_SUB_IDS; i++)
				pp->sub_id[i] = q->ids[i];
			pp->sub_id_count = (uint8_t)i;
		}
	}
	/*
	 * A client that does not read (a slow consumer): QoS 0 is dropped once
	 * its unsent output passes max_buffered_bytes (QoS > 0 is bounded by the
	 * inflight window); brk__conn_tick closes it if that lasts.
	 */
	if (!q->qos && c->b->cfg.max_buffered_bytes &&
	    brk__conn_buffered(c) > c->b->cfg.max_buffered_bytes) {
		c->b->st.dropped++;
		c->b->st.slow_dropped++;
		return false;
	}
	hdr = publish_size(c->proto, &p);
	if (!hdr)
		return false;
	/* [MQTT-3.1.2-25] never more than the client's Maximum Packet Size. */
	if (c->max_out_packet && hdr > c->max_out_packet) {
		c->b->st.dropped++;
		return false;
	}
	if (c->proto == MQTT_V5 && c->alias_max_out) {
		alias = alias_out_find(c, m, &fresh);
		if (alias) {
			p.props.has_topic_alias = true;
			p.props.topic_alias = (uint16_t)alias;
			if (!fresh)
				p.publish.topic = (struct gw_slice){ (const uint8_t *)"", 0 };
		}
	}
	total = publish_size(c->proto, &p);
	if (!total)
		return false;
	hdr = total - m->payload_len;
	copy = m->payload_len <= COPY_PAYLOAD_MAX;
	dst = out_reserve(c, copy ? total : hdr, copy);
	if (!dst)
		return false;
	gw_writer_init(&w, dst, hdr);
	if (mqtt_encode_publish_header(&w, c->proto, &p) || w.len != hdr)
		return false;
	if (copy) {
		memcpy(dst + hdr, brk__msg_payload(m), m->payload_len);
		if (out_commit(c, total, true))
			return false;
	} else if (out_commit(c, hdr, false) || obuf_msg(c->out, m)) {
		return false;
	}
	c->b->st.msgs_sent++;
	c->b->st.bytes_sent += total;
	want_flush(c);
	return true;
}

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
static void on_ack(struct brk_conn *c, const struct mqtt_pkt *p, int64_t now)
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

static void on_publish(struct brk_conn *c, struct mqtt_pkt *p, int64_t now)
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
			conn_fail(c, -EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID);
			return;
		}
		/* The table exists only for clients that use aliases. */
		al = aliases(c);
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
			conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
	}
	if (!brk__topic_name_valid(topic)) {
		conn_fail(c, -EPROTO, MQTT_RC_TOPIC_NAME_INVALID);
		return;
	}
	if (pb->retain && !b->cfg.retain_available) {
		conn_fail(c, -EPROTO, MQTT_RC_RETAIN_NOT_SUPPORTED);
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
		if (c->proto == MQTT_V5 && c->inflight_in >= recv_max(b)) {
			conn_fail(c, -EPROTO, MQTT_RC_RECEIVE_MAX_EXCEEDED);
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

/* -------------------------------------------------------- SUBSCRIBE */

static void on_subscribe(struct brk_conn *c, struct mqtt_pkt *p, int64_t now)
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
			conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
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
	out_pkt(c, &ack);
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

static void on_unsubscribe(struct brk_conn *c, struct mqtt_pkt *p)
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
	out_pkt(c, &ack);
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

/* The Response Information we give: "fieldmq/response/<client id>/". */
#define RESPONSE_PREFIX "fieldmq/response/"

/*
 * on_connect - CONNECT @p (the packet's bytes @pkt, @len) of @c. With a
 * password_file, a user name's password is checked off the loop thread
 * first (brk__auth_begin); the verdict comes back through
 * brk__conn_connect_verdict, which runs this again with @authed.
 */
static void on_connect(struct brk_conn *c, struct mqtt_pkt *p, const uint8_t *pkt, size_t len,
		       bool authed, int64_t now)
{
	struct brk *b = c->b;
	struct mqtt_connect *cn = &p->connect;
	struct mqtt_props ack;
	struct brk_session *s;
	struct brk_acl_view *av = NULL;
	struct gw_slice id = cn->client_id;
	char idbuf[40], rbuf[128], *rinfo = NULL;
	bool present = false;
	uint32_t expiry;
	uint16_t ka = cn->keep_alive;

	memset(&ack, 0, sizeof(ack));
	c->proto = p->version;
	/* use_identity_as_username: the transport's user name, not CONNECT's. */
	if (c->ops->identity && c->ops->identity(c)) {
		cn->has_username = true;
		cn->username = gw_slice_cstr(c->ops->identity(c));
		authed = true; /* the certificate vouches for it */
	}
	if (id.len == 0) {
		/* [MQTT-3.1.3-7/8] 3.1.1: an empty id needs a clean session; 3.1 has none. */
		if (c->proto == MQTT_V31 || (c->proto == MQTT_V311 && !cn->clean_start)) {
			send_connack(c, MQTT_RC_CLIENT_ID_INVALID, false, NULL);
			brk__conn_kick(c, 0);
			return;
		}
		snprintf(idbuf, sizeof(idbuf), "fieldmq-%llx-%llx", (unsigned long long)now,
			 (unsigned long long)++b->id_counter);
		id = gw_slice_cstr(idbuf);
		if (c->proto == MQTT_V5) {
			ack.has_assigned_client_id = true;
			ack.assigned_client_id = id;
		}
	}
	if (!b->cfg.allow_anonymous && !cn->has_username) {
		send_connack(c, MQTT_RC_NOT_AUTHORIZED, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	if (p->props.has_auth_method) {
		send_connack(c, MQTT_RC_BAD_AUTH_METHOD, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	if (!authed && b->cfg.passwd && cn->has_username) {
		if (brk__auth_begin(c, p, pkt, len, now)) {
			/* Too many checks waiting: 5.0 "server busy", 3.1.1 "server unavailable". */
			send_connack(c,
				     c->proto == MQTT_V5 ? MQTT_RC_SERVER_BUSY
							 : MQTT_CONNACK_SERVER_UNAVAILABLE,
				     false, NULL);
			brk__conn_kick(c, 0);
		}
		return;
	}
	/* The client's ACL rules, before anything of a session it may take over changes. */
	if (b->cfg.acl &&
	    brk__acl_view_new(b->cfg.acl, id, cn->has_username ? &cn->username : NULL, &av)) {
		send_connack(c, MQTT_RC_SERVER_UNAVAILABLE, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	/* Session expiry: 3.1.1 clean session = 0, persistent = never. */
	if (c->proto == MQTT_V5)
		expiry = p->props.has_session_expiry ? p->props.session_expiry : 0;
	else
		expiry = cn->clean_start ? 0 : 0xFFFFFFFFu;
	if (c->proto == MQTT_V5) {
		if (p->props.has_receive_maximum)
			c->recv_max_out = p->props.receive_maximum;
		if (p->props.has_max_packet_size)
			c->max_out_packet = p->props.max_packet_size;
		if (p->props.has_topic_alias_max)
			c->alias_max_out = GW_MIN(p->props.topic_alias_max, b->cfg.max_topic_alias);
		c->req_problem =
			!p->props.has_request_problem_info || p->props.request_problem_info;
	}
	/* Keep alive capped by max_keepalive; 5.0 is told with Server Keep Alive. */
	if (b->cfg.max_keepalive && (ka > b->cfg.max_keepalive || (ka == 0 && c->proto == MQTT_V5 &&
								   b->cfg.max_keepalive < 65535))) {
		ka = b->cfg.max_keepalive;
		if (c->proto == MQTT_V5) {
			ack.has_server_keep_alive = true;
			ack.server_keep_alive = ka;
		}
	}
	c->keepalive = ka;

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
		present = true;
		brk__session_resume(s);
	} else {
		s = brk__session_new(b, id);
		if (!s) {
			gw_free(av);
			send_connack(c, MQTT_RC_SERVER_UNAVAILABLE, false, NULL);
			brk__conn_kick(c, 0);
			return;
		}
	}
	if (b->cfg.acl)
		brk__session_acl_attach(s, av, present);
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
	s->conn = c;
	c->s = s;
	c->state = BRK_CS_CONNECTED;
	c->will_ok = true;
	c->counted = true;
	b->st.clients_connected++;
	b->st.clients_total = b->n_sessions;

	if (c->proto == MQTT_V5) {
		/* Absent means 65535 [MQTT-3.2.2.3.3]. */
		if (recv_max(b) < 65535) {
			ack.has_receive_maximum = true;
			ack.receive_maximum = recv_max(b);
		}
		if (b->cfg.max_topic_alias) {
			ack.has_topic_alias_max = true;
			ack.topic_alias_max = b->cfg.max_topic_alias;
		}
		if (b->cfg.max_packet_size) {
			ack.has_max_packet_size = true;
			ack.max_packet_size = b->cfg.max_packet_size;
		}
		if (!b->cfg.retain_available) {
			ack.has_retain_available = true;
			ack.retain_available = 0;
		}
	}
	/*
	 * [MQTT-3.1.2-28] Request Response Information 1: a topic prefix the
	 * client may use for responses; never when 0. Not for an id that
	 * would make it an invalid topic.
	 */
	if (c->proto == MQTT_V5 && p->props.has_request_response_info &&
	    p->props.request_response_info && !strpbrk(s->client_id, "+#")) {
		size_t n = sizeof(RESPONSE_PREFIX) - 1 + strlen(s->client_id) + 1;

		rinfo = n < sizeof(rbuf) ? rbuf : gw_malloc(n + 1);
		if (rinfo) {
			snprintf(rinfo, n + 1, RESPONSE_PREFIX "%s/", s->client_id);
			ack.has_response_info = true;
			ack.response_info = (struct gw_slice){ (const uint8_t *)rinfo, n };
		}
	}
	send_connack(c, 0, present, &ack);
	if (rinfo != rbuf)
		gw_free(rinfo);
	if (s->persist)
		brk__session_save(s);
	if (b->lg && b->lg->level >= LOG_DEBUG) {
		char peer[64];

		brk__log(b, LOG_DEBUG, "%s: connected as %s (v%u, present %d)",
			 brk__conn_peer(c, peer, sizeof(peer)), s->client_id, c->proto, present);
	}
	brk__session_pump(s, now, true);
}

/* ----------------------------------------------------------- dispatch */

static void on_disconnect(struct brk_conn *c, struct mqtt_pkt *p)
{
	struct brk_session *s = c->s;

	/*
	 * [MQTT-3.14.4-3] only a normal DISCONNECT (0x00) deletes the will:
	 * 0x04 and the error codes a client may send keep it.
	 */
	c->will_ok = c->proto == MQTT_V5 && p->disconnect.reason_code != MQTT_RC_SUCCESS;
	if (c->proto == MQTT_V5 && p->props.has_session_expiry) {
		/* [MQTT-3.14.2-2] zero at CONNECT cannot become non-zero. */
		if (s->expiry == 0 && p->props.session_expiry != 0) {
			c->will_ok = true;
			conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
		s->expiry = p->props.session_expiry;
	}
	brk__conn_kick(c, 0);
}

static int decode(struct brk_conn *c, const uint8_t *buf, size_t len, struct mqtt_pkt *p)
{
	struct mqtt_limits lim = {
		.max_packet_size = c->b->cfg.max_packet_size,
		.max_topic_alias = c->b->cfg.max_topic_alias,
		.from_client = true,
	};

	return mqtt_decode(buf, len, c->proto ? c->proto : MQTT_V311, &lim, p);
}

void brk__conn_connect_verdict(struct brk_conn *c, const uint8_t *pkt, size_t len, bool ok,
			       int64_t now)
{
	struct mqtt_pkt p;

	if (c->state != BRK_CS_AUTH)
		return; /* kicked while waiting */
	c->state = BRK_CS_NEW;
	if (ok && decode(c, pkt, len, &p) > 0) {
		if (c->ops->pause)
			c->ops->pause(c, false);
		on_connect(c, &p, pkt, len, true, now);
		return;
	}
	if (c->b->lg && c->b->lg->level >= LOG_INFO) {
		char peer[64];

		/* The user name, not the password; a flood is counted in auth_failed too. */
		brk__log(c->b, LOG_INFO, "%s: wrong user name or password",
			 brk__conn_peer(c, peer, sizeof(peer)));
	}
	/* As Mosquitto: 5.0 0x86 Bad User Name or Password, 3.1.1 5 Not authorized. */
	send_connack(
		c, c->proto == MQTT_V5 ? MQTT_RC_BAD_USER_OR_PASSWORD : MQTT_CONNACK_NOT_AUTHORIZED,
		false, NULL);
	brk__conn_kick(c, 0);
}

static void handle(struct brk_conn *c, const uint8_t *buf, size_t len, int64_t now)
{
	struct brk *b = c->b;
	struct mqtt_pkt p;
	int rc;

	rc = decode(c, buf, len, &p);
	if (rc <= 0) {
		if (c->state == BRK_CS_NEW && p.type == MQTT_CONNECT &&
		    p.reason == MQTT_RC_UNSUPPORTED_VERSION)
			c->proto = MQTT_V311; /* [MQTT-3.1.2-2] CONNACK 0x01, then close */
		else if (c->state == BRK_CS_NEW && p.type == MQTT_CONNECT && p.version)
			c->proto = p.version == MQTT_V5 || p.version == MQTT_V31 ? p.version
										 : MQTT_V311;
		conn_fail(c, rc ? rc : -EBADMSG, p.reason ? p.reason : MQTT_RC_MALFORMED);
		return;
	}
	c->last_rx = now;
	if (c->state == BRK_CS_NEW) {
		/* [MQTT-3.1.0-1] the first packet is CONNECT. */
		if (p.type != MQTT_CONNECT) {
			conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
		on_connect(c, &p, buf, len, false, now);
		return;
	}
	switch (p.type) {
	case MQTT_PUBLISH:
		on_publish(c, &p, now);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		on_ack(c, &p, now);
		break;
	case MQTT_PUBREL: {
		struct brk_inq *e = inq_find(c->s, p.packet_id);

		if (e) {
			gw_list_del(&e->link);
			brk__node_put(b, e);
			c->s->n_inq--;
			if (c->inflight_in)
				c->inflight_in--;
		}
		brk__conn_send_ack(c, MQTT_PUBCOMP, p.packet_id,
				   e || c->proto != MQTT_V5 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
		break;
	}
	case MQTT_SUBSCRIBE:
		on_subscribe(c, &p, now);
		break;
	case MQTT_UNSUBSCRIBE:
		on_unsubscribe(c, &p);
		break;
	case MQTT_PINGREQ: {
		struct mqtt_pkt r;

		memset(&r, 0, sizeof(r));
		r.type = MQTT_PINGRESP;
		out_pkt(c, &r);
		break;
	}
	case MQTT_DISCONNECT:
		on_disconnect(c, &p);
		break;
	case MQTT_CONNECT:
		/* [MQTT-3.1.0-2] a second CONNECT is a protocol violation. */
		conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
		break;
	case MQTT_AUTH:
		/*
		 * No enhanced authentication here: a CONNECT with an
		 * Authentication Method got CONNACK 0x8C, so an AUTH can only
		 * come from a client that sent none, which must not send AUTH
		 * (5.0 section 4.12): DISCONNECT 0x82. (3.1.1 has no AUTH: the
		 * codec calls it malformed.)
		 */
		conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
		break;
	default:
		conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
		break;
	}
}

/* --------------------------------------------------------------- framing */

const char *brk__conn_peer(struct brk_conn *c, char *buf, size_t n)
{
	snprintf(buf, n, "?");
	if (c->ops && c->ops->peer)
		c->ops->peer(c, buf, n);
	return buf;
}

/*
 * A slow consumer: output over max_buffered_bytes since slow_consumer_timeout
 * (its QoS 0 is being dropped meanwhile, see brk__conn_send_publish) is
 * closed at once, without waiting for the output it cannot take.
 */
static void slow_check(struct brk_conn *c, int64_t now)
{
	struct brk *b = c->b;
	char peer[64];

	if (!b->cfg.max_buffered_bytes || c->state == BRK_CS_CLOSING ||
	    brk__conn_buffered(c) <= b->cfg.max_buffered_bytes) {
		c->slow_since = 0;
		return;
	}
	if (!c->slow_since) {
		c->slow_since = now;
		return;
	}
	if (now - c->slow_since < (int64_t)b->cfg.slow_consumer_timeout_ms)
		return;
	b->st.slow_disconnected++;
	brk__log(b, LOG_WARNING, "%s (%s): slow consumer: %zu bytes buffered for %lld ms, closed",
		 brk__conn_peer(c, peer, sizeof(peer)), c->s ? c->s->client_id : "-",
		 brk__conn_buffered(c), (long long)(now - c->slow_since));
	/* will_ok is left as it is: the will goes out as on any abnormal close. */
	if (c->ops->abort)
		c->ops->abort(c);
	else
		brk__conn_kick(c, MQTT_RC_SERVER_BUSY);
}

void brk__conn_init(struct brk_conn *c, struct brk *b, const struct brk_conn_ops *ops)
{
	memset(c, 0, sizeof(*c));
	c->b = b;
	c->ops = ops;
	c->state = BRK_CS_NEW;
	c->last_rx = brk__now(b);
	gw_list_add_tail(&b->conns, &c->link);
}

/* Size of the packet at @p (n bytes so far): > 0 known, 0 need more, < 0 bad. */
static long packet_size(struct brk_conn *c, const uint8_t *p, size_t n)
{
	uint32_t rem = 0;
	size_t hl = 0;
	int rc = mqtt_fixed_header(p, n, NULL, &rem, &hl);
	uint64_t total;

	if (rc < 0)
		return rc;
	if (!hl)
		return 0;
	total = (uint64_t)hl + rem;
	/* Refuse an oversize packet before buffering it [MQTT-3.2.2-?? 0x95]. */
	if (c->b->cfg.max_packet_size && total > c->b->cfg.max_packet_size)
		return -EMSGSIZE;
	return (long)total;
}

static void input_fail(struct brk_conn *c, long rc)
{
	conn_fail(c, (int)rc, rc == -EMSGSIZE ? MQTT_RC_PACKET_TOO_LARGE : MQTT_RC_MALFORMED);
}

/* Packets are handled in these states; in BRK_CS_AUTH input is held. */
static bool reading(const struct brk_conn *c)
{
	return c->state == BRK_CS_NEW || c->state == BRK_CS_CONNECTED;
}

static void hold_input(struct brk_conn *c, const uint8_t *data, size_t len)
{
	if (brk__auth_hold_input(c, data, len))
		brk__conn_kick(c, 0);
}

static void conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now);

void brk__conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now)
{
	c->b->st.bytes_received += len;
	conn_input(c, data, len, now);
}

void brk__conn_input_held(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now)
{
	conn_input(c, data, len, now);
}

static void conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now)
{
	if (c->state == BRK_CS_AUTH) {
		hold_input(c, data, len);
		return;
	}
	/* First complete the partial packet kept from the last read. */
	while (c->rbuf && len && reading(c)) {
		struct brk_rbuf *r = c->rbuf;
		long need = packet_size(c, r->data, r->len);
		size_t take;

		if (need < 0) {
			input_fail(c, need);
			return;
		}
		if (need == 0) {
			/* The fixed header is still incomplete: add one byte at a time. */
			take = 1;
			need = (long)(r->len + 1);
		} else {
			take = GW_MIN(len, (size_t)need - r->len);
		}
		if (r->cap < (size_t)need) {
			size_t nc = GW_MAX((size_t)need, 16);

			r = gw_realloc(r, sizeof(*r) + nc);
			if (!r) {
				brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
				return;
			}
			r->cap = (uint32_t)nc;
			c->rbuf = r;
		}
		memcpy(r->data + r->len, data, take);
		r->len += (uint32_t)take;
		data += take;
		len -= take;
		need = packet_size(c, r->data, r->len);
		if (need > 0 && r->len == (size_t)need) {
			handle(c, r->data, (size_t)need, now);
			/* Nothing is kept for an idle connection. */
			gw_free(c->rbuf);
			c->rbuf = NULL;
		} else if (need < 0) {
			input_fail(c, need);
			return;
		}
	}
	/* Then whole packets straight from the read buffer. */
	while (len && reading(c)) {
		long need = packet_size(c, data, len);

		if (need < 0) {
			input_fail(c, need);
			return;
		}
		if (need == 0 || (size_t)need > len) {
			size_t cap = need > 0 ? (size_t)need : 16;
			struct brk_rbuf *r = gw_malloc(sizeof(*r) + cap);

			if (!r) {
				brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
				return;
			}
			r->cap = (uint32_t)cap;
			r->len = (uint32_t)len;
			memcpy(r->data, data, len);
			c->rbuf = r;
			return;
		}
		handle(c, data, (size_t)need, now);
		data += need;
		len -= (size_t)need;
	}
	/* A CONNECT went to its password check: what followed it waits too. */
	if (len && c->state == BRK_CS_AUTH)
		hold_input(c, data, len);
}

void brk__conn_tick(struct brk_conn *c, int64_t now)
{
	/*
	 * [MQTT-3.1.2-22] one and a half keep alive periods without a packet;
	 * not while we do not read it (conn_flow): the wait is ours, and the
	 * period starts again when reading resumes.
	 */
	if (c->paused)
		c->last_rx = now;
	if (c->state == BRK_CS_CONNECTED && c->keepalive &&
	    now - c->last_rx > (int64_t)c->keepalive * 1500) {
		char peer[64];

		brk__log(c->b, LOG_DEBUG, "%s: keepalive timeout",
			 brk__conn_peer(c, peer, sizeof(peer)));
		brk__conn_kick(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
	}
	slow_check(c, now);
	/* A client that never sends CONNECT is dropped. */
	if (c->state == BRK_CS_NEW && now - c->last_rx > 10000)
		brk__conn_kick(c, 0);
	/*
	 * One whose password check has not even started after 10 s (a flood
	 * fills the waiting room) is told the server is busy, as one that
	 * found the waiting room full.
	 */
	if (c->state == BRK_CS_AUTH && now - c->last_rx > 10000) {
		c->b->st.auth_busy++;
		c->state = BRK_CS_NEW;
		send_connack(c,
			     c->proto == MQTT_V5 ? MQTT_RC_SERVER_BUSY
						 : MQTT_CONNACK_SERVER_UNAVAILABLE,
			     false, NULL);
		brk__conn_kick(c, 0);
	}
}

void brk__conn_closed(struct brk_conn *c)
{
	struct brk *b = c->b;
	unsigned int i;

	if (c->s && c->s->conn == c) {
		c->s->conn = NULL;
		brk__session_offline(c->s, c->will_ok, brk__now(b));
	}
	c->s = NULL;
	if (c->counted && b->st.clients_connected)
		b->st.clients_connected--;
	c->counted = false;
	brk__auth_conn_closed(c);
	gw_list_del(&c->link);
	gw_free(c->rbuf);
	c->rbuf = NULL;
	if (c->stage_len)
		brk__conn_unstage(c, c->stage_len);
	brk__conn_out_free(c);
	if (c->alias) {
		for (i = 0; i < c->alias->max_out + c->alias->max_in; i++)
			gw_free(c->alias->v[i]);
		gw_free(c->alias);
		c->alias = NULL;
	}
}
