/*
 * conn_out.c - the output side of one network connection, sans I/O: the
 * output buffer (copied control bytes and shared payloads), the broker's
 * stage that batches small writes of many connections, and the packets the
 * broker sends (acknowledgements, CONNACK, DISCONNECT, SUBACK through
 * brk__conn_out_pkt, and PUBLISH with its topic aliases). The glue sends
 * the bytes when ops->want_flush says so (conn_uv.c).
 *
 * brk__conn_send_publish is the hot path of every delivery: the buffer and
 * stage helpers it calls stay static in this file so that they inline.
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
int brk__conn_out_pkt(struct brk_conn *c, const struct mqtt_pkt *p)
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
	brk__conn_out_pkt(c, &p);
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

void brk__conn_send_disconnect(struct brk_conn *c, uint8_t reason)
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
	brk__conn_out_pkt(c, &p);
}

void brk__conn_send_connack(struct brk_conn *c, uint8_t reason, bool present,
			    struct mqtt_props *props)
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
	brk__conn_out_pkt(c, &p);
}

/* ------------------------------------------------------------ PUBLISH out */

/* The alias tables of @c, allocated on first use (both sides at once); NULL on out-of-memory. */
struct brk_aliases *brk__conn_aliases(struct brk_conn *c)
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
	struct brk_aliases *a = brk__conn_aliases(c);
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
