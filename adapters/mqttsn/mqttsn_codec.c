/*
 * mqttsn_codec.c - MQTT-SN v1.2 decoder and encoder (see mqttsn_codec.h).
 *
 * Section numbers refer to the MQTT For Sensor Networks (MQTT-SN) Protocol
 * Specification Version 1.2.
 */
#include <errno.h>
#include <string.h>

#include "mqttsn_codec.h"

static const char *const type_names[__MQTTSN_TYPE_MAX] = {
	[MQTTSN_ADVERTISE] = "ADVERTISE",
	[MQTTSN_SEARCHGW] = "SEARCHGW",
	[MQTTSN_GWINFO] = "GWINFO",
	[MQTTSN_CONNECT] = "CONNECT",
	[MQTTSN_CONNACK] = "CONNACK",
	[MQTTSN_WILLTOPICREQ] = "WILLTOPICREQ",
	[MQTTSN_WILLTOPIC] = "WILLTOPIC",
	[MQTTSN_WILLMSGREQ] = "WILLMSGREQ",
	[MQTTSN_WILLMSG] = "WILLMSG",
	[MQTTSN_REGISTER] = "REGISTER",
	[MQTTSN_REGACK] = "REGACK",
	[MQTTSN_PUBLISH] = "PUBLISH",
	[MQTTSN_PUBACK] = "PUBACK",
	[MQTTSN_PUBCOMP] = "PUBCOMP",
	[MQTTSN_PUBREC] = "PUBREC",
	[MQTTSN_PUBREL] = "PUBREL",
	[MQTTSN_SUBSCRIBE] = "SUBSCRIBE",
	[MQTTSN_SUBACK] = "SUBACK",
	[MQTTSN_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[MQTTSN_UNSUBACK] = "UNSUBACK",
	[MQTTSN_PINGREQ] = "PINGREQ",
	[MQTTSN_PINGRESP] = "PINGRESP",
	[MQTTSN_DISCONNECT] = "DISCONNECT",
	[MQTTSN_WILLTOPICUPD] = "WILLTOPICUPD",
	[MQTTSN_WILLTOPICRESP] = "WILLTOPICRESP",
	[MQTTSN_WILLMSGUPD] = "WILLMSGUPD",
	[MQTTSN_WILLMSGRESP] = "WILLMSGRESP",
};

const char *mqttsn_type_name(uint8_t type)
{
	if (type == MQTTSN_ENCAPSULATED)
		return "ENCAPSULATED";
	if (type < __MQTTSN_TYPE_MAX && type_names[type])
		return type_names[type];
	return "RESERVED";
}

uint8_t mqttsn_flags_pack(struct mqttsn_flags f)
{
	uint8_t b = 0;

	if (f.dup)
		b |= 0x80;
	b |= (uint8_t)((f.qos < 0 ? 3 : f.qos & 3) << 5);
	if (f.retain)
		b |= 0x10;
	if (f.will)
		b |= 0x08;
	if (f.clean_session)
		b |= 0x04;
	b |= f.topic_type & 3;
	return b;
}

struct mqttsn_flags mqttsn_flags_unpack(uint8_t b)
{
	struct mqttsn_flags f = {
		.dup = b & 0x80,
		.qos = (int8_t)((b >> 5) & 3),
		.retain = b & 0x10,
		.will = b & 0x08,
		.clean_session = b & 0x04,
		.topic_type = b & 3,
	};

	/* QoS 0b11 is QoS -1, publish without a connection (5.3.4, 6.8). */
	if (f.qos == 3)
		f.qos = -1;
	return f;
}

/* ------------------------------------------------------------- decoding */

/* The flags byte, with the checks every message that carries one shares. */
static int rd_flags(struct gw_reader *r, struct mqttsn_flags *f)
{
	uint8_t b = 0;

	if (gw_rd_u8(r, &b))
		return r->err;
	*f = mqttsn_flags_unpack(b);
	return 0;
}

static int rd_rc(struct gw_reader *r, uint8_t *rc)
{
	if (gw_rd_u8(r, rc))
		return r->err;
	/* 0x04..0xff are reserved (5.3.10). */
	if (*rc >= __MQTTSN_RC_MAX)
		return -EPROTO;
	return 0;
}

/* What is left of the message, as a slice (possibly empty). */
static void rd_rest(struct gw_reader *r, struct gw_slice *s)
{
	gw_rd_bytes(r, gw_rd_left(r), s);
}

/*
 * The TopicName-or-TopicId field of SUBSCRIBE and UNSUBSCRIBE (5.4.16,
 * 5.4.18): a name of at least one octet for a normal topic, else exactly
 * two octets.
 */
static int rd_sub_topic(struct gw_reader *r, struct mqttsn_msg *m)
{
	if (m->flags.topic_type == MQTTSN_TOPIC_RESERVED)
		return -EPROTO;
	if (m->flags.topic_type == MQTTSN_TOPIC_NORMAL) {
		rd_rest(r, &m->sub.topic);
		return m->sub.topic.len ? 0 : -EBADMSG;
	}
	if (gw_rd_left(r) != 2)
		return -EBADMSG;
	return gw_rd_u16be(r, &m->sub.topic_id);
}

/* The body of a message, after Length and MsgType; r covers exactly the body. */
static int decode_body(struct gw_reader *r, struct mqttsn_msg *m)
{
	int rc = 0;

	switch (m->type) {
	case MQTTSN_ADVERTISE: /* 5.4.2: GwId, Duration */
		gw_rd_u8(r, &m->advertise.gw_id);
		gw_rd_u16be(r, &m->advertise.duration);
		break;
	case MQTTSN_SEARCHGW: /* 5.4.3: Radius */
		gw_rd_u8(r, &m->searchgw.radius);
		break;
	case MQTTSN_GWINFO: /* 5.4.4: GwId, GwAdd (only when sent by a client) */
		gw_rd_u8(r, &m->gwinfo.gw_id);
		rd_rest(r, &m->gwinfo.gw_addr);
		break;
	case MQTTSN_CONNECT: /* 5.4.5: Flags, ProtocolId, Duration, ClientId */
		rd_flags(r, &m->flags);
		gw_rd_u8(r, &m->connect.protocol_id);
		gw_rd_u16be(r, &m->connect.duration);
		rd_rest(r, &m->connect.client_id);
		/* ClientId is 1..23 characters (5.3.1); the upper bound is policy. */
		if (!r->err && !m->connect.client_id.len)
			return -EBADMSG;
		break;
	case MQTTSN_CONNACK:	   /* 5.4.6 */
	case MQTTSN_WILLTOPICRESP: /* 5.4.25 */
	case MQTTSN_WILLMSGRESP:   /* 5.4.26 */
		rc = rd_rc(r, &m->resp.rc);
		break;
	case MQTTSN_WILLTOPICREQ: /* 5.4.7 */
	case MQTTSN_WILLMSGREQ:	  /* 5.4.9 */
	case MQTTSN_PINGRESP:	  /* 5.4.21 */
		break;
	case MQTTSN_WILLTOPIC:	  /* 5.4.8: Flags, WillTopic */
	case MQTTSN_WILLTOPICUPD: /* 5.4.23 */
		/* Exactly 2 octets, without Flags and WillTopic, deletes the will (5.4.8). */
		if (!gw_rd_left(r))
			break;
		rd_flags(r, &m->flags);
		rd_rest(r, &m->willtopic.topic);
		if (!r->err && !m->willtopic.topic.len)
			return -EBADMSG;
		/* A will is published by the gateway on a connection: QoS 0..2 only. */
		if (m->flags.qos < 0)
			return -EPROTO;
		break;
	case MQTTSN_WILLMSG:	/* 5.4.10: WillMsg */
	case MQTTSN_WILLMSGUPD: /* 5.4.24 */
		rd_rest(r, &m->willmsg.msg);
		break;
	case MQTTSN_REGISTER: /* 5.4.11: TopicId, MsgId, TopicName */
		gw_rd_u16be(r, &m->reg.topic_id);
		gw_rd_u16be(r, &m->reg.msg_id);
		rd_rest(r, &m->reg.topic);
		if (!r->err && !m->reg.topic.len)
			return -EBADMSG;
		break;
	case MQTTSN_REGACK: /* 5.4.12: TopicId, MsgId, ReturnCode */
	case MQTTSN_PUBACK: /* 5.4.14 */
		gw_rd_u16be(r, &m->ack.topic_id);
		gw_rd_u16be(r, &m->ack.msg_id);
		rc = rd_rc(r, &m->ack.rc);
		break;
	case MQTTSN_PUBLISH: /* 5.4.13: Flags, TopicId, MsgId, Data */
		rd_flags(r, &m->flags);
		gw_rd_u16be(r, &m->publish.topic_id);
		gw_rd_u16be(r, &m->publish.msg_id);
		rd_rest(r, &m->publish.data);
		if (m->flags.topic_type == MQTTSN_TOPIC_RESERVED) /* 5.3.4 */
			rc = -EPROTO;
		break;
	case MQTTSN_PUBCOMP:  /* 5.4.15: MsgId */
	case MQTTSN_PUBREC:   /* 5.4.15 */
	case MQTTSN_PUBREL:   /* 5.4.15 */
	case MQTTSN_UNSUBACK: /* 5.4.19 */
		gw_rd_u16be(r, &m->msgid.msg_id);
		break;
	case MQTTSN_SUBSCRIBE: /* 5.4.16: Flags, MsgId, TopicName or TopicId */
		rd_flags(r, &m->flags);
		gw_rd_u16be(r, &m->sub.msg_id);
		if (r->err)
			break;
		/* The requested QoS is 0, 1 or 2; -1 exists for PUBLISH only (6.8). */
		if (m->flags.qos < 0)
			return -EPROTO;
		rc = rd_sub_topic(r, m);
		break;
	case MQTTSN_SUBACK: /* 5.4.17: Flags, TopicId, MsgId, ReturnCode */
		rd_flags(r, &m->flags);
		gw_rd_u16be(r, &m->ack.topic_id);
		gw_rd_u16be(r, &m->ack.msg_id);
		rc = rd_rc(r, &m->ack.rc);
		break;
	case MQTTSN_UNSUBSCRIBE: /* 5.4.18: Flags, MsgId, TopicName or TopicId */
		rd_flags(r, &m->flags);
		gw_rd_u16be(r, &m->sub.msg_id);
		if (r->err)
			break;
		rc = rd_sub_topic(r, m);
		break;
	case MQTTSN_PINGREQ: /* 5.4.20: ClientId, optional */
		rd_rest(r, &m->pingreq.client_id);
		break;
	case MQTTSN_DISCONNECT: /* 5.4.22: Duration, optional */
		if (!gw_rd_left(r))
			break;
		m->disconnect.has_duration = true;
		gw_rd_u16be(r, &m->disconnect.duration);
		break;
	default:
		/* Reserved types, and 0xfe inside an encapsulation (5.2.2). */
		return -EPROTO;
	}
	if (rc)
		return rc;
	if (r->err)
		return r->err;
	/* Fixed-size messages: octets left over mean a wrong Length. */
	return gw_rd_left(r) ? -EBADMSG : 0;
}

/*
 * Length and MsgType (5.2.1, 5.2.2). Sets *total to the value of the Length
 * field and leaves r after MsgType.
 */
static int decode_header(struct gw_reader *r, size_t *total, uint8_t *type)
{
	uint8_t b0 = 0;
	uint16_t l16 = 0;

	if (gw_rd_u8(r, &b0))
		return r->err;
	if (b0 == 0x01) {
		/* 0x01: a 3-octet Length follows, counting itself too (5.2.1). */
		if (gw_rd_u16be(r, &l16))
			return r->err;
		*total = l16;
		if (*total < 4)
			return -EBADMSG;
	} else {
		*total = b0;
		if (*total < 2)
			return -EBADMSG;
	}
	if (gw_rd_u8(r, type))
		return r->err;
	return 0;
}

int mqttsn_decode(const uint8_t *buf, size_t len, struct mqttsn_msg *out)
{
	size_t dgram_len = len;
	struct gw_reader r;
	size_t total = 0;
	uint8_t type = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!buf || len < 2)
		return -EBADMSG;
	gw_reader_init(&r, buf, len);
	rc = decode_header(&r, &total, &type);
	if (rc)
		return rc;
	if (type == MQTTSN_ENCAPSULATED) {
		/* 5.5: Length counts Length, MsgType, Ctrl and Wireless Node Id only. */
		if (total > len || total < r.off + 1)
			return -EBADMSG;
		gw_rd_u8(&r, &out->encap.ctrl);
		gw_rd_bytes(&r, total - r.off, &out->encap.node_id);
		out->encapsulated = true;
		buf += total;
		len -= total;
		gw_reader_init(&r, buf, len);
		if (len < 2)
			return -EBADMSG;
		rc = decode_header(&r, &total, &type);
		if (rc)
			return rc;
		/* 5.5 defines one level: a forwarder does not encapsulate twice. */
		if (type == MQTTSN_ENCAPSULATED)
			return -EPROTO;
	}
	/* The Length must cover the datagram exactly (5.2.1). */
	if (total != len)
		return -EBADMSG;
	out->type = type;
	rc = decode_body(&r, out);
	if (rc)
		return rc;
	/* Fits in an int: both Length fields are at most 16 bits. */
	return (int)dgram_len;
}

/* ------------------------------------------------------------- encoding */

static bool qos_ok(int8_t qos)
{
	return qos >= -1 && qos <= 2;
}

static bool flags_ok(struct mqttsn_flags f)
{
	return qos_ok(f.qos) && f.topic_type <= MQTTSN_TOPIC_RESERVED;
}

/*
 * The size of the body of m (after Length and MsgType), or -EINVAL when m
 * holds something the decoder would reject: the encoder never produces what
 * its own decoder refuses.
 */
static long body_size(const struct mqttsn_msg *m)
{
	if (!flags_ok(m->flags))
		return -EINVAL;
	switch (m->type) {
	case MQTTSN_ADVERTISE:
		return 3;
	case MQTTSN_SEARCHGW:
		return 1;
	case MQTTSN_GWINFO:
		return 1 + (long)m->gwinfo.gw_addr.len;
	case MQTTSN_CONNECT:
		if (!m->connect.client_id.len)
			return -EINVAL;
		return 4 + (long)m->connect.client_id.len;
	case MQTTSN_CONNACK:
	case MQTTSN_WILLTOPICRESP:
	case MQTTSN_WILLMSGRESP:
		return m->resp.rc < __MQTTSN_RC_MAX ? 1 : -EINVAL;
	case MQTTSN_WILLTOPICREQ:
	case MQTTSN_WILLMSGREQ:
	case MQTTSN_PINGRESP:
		return 0;
	case MQTTSN_WILLTOPIC:
	case MQTTSN_WILLTOPICUPD:
		if (!m->willtopic.topic.len)
			return 0;
		if (m->flags.qos < 0)
			return -EINVAL;
		return 1 + (long)m->willtopic.topic.len;
	case MQTTSN_WILLMSG:
	case MQTTSN_WILLMSGUPD:
		return (long)m->willmsg.msg.len;
	case MQTTSN_REGISTER:
		if (!m->reg.topic.len)
			return -EINVAL;
		return 4 + (long)m->reg.topic.len;
	case MQTTSN_REGACK:
	case MQTTSN_PUBACK:
		return m->ack.rc < __MQTTSN_RC_MAX ? 5 : -EINVAL;
	case MQTTSN_PUBLISH:
		if (m->flags.topic_type == MQTTSN_TOPIC_RESERVED)
			return -EINVAL;
		return 5 + (long)m->publish.data.len;
	case MQTTSN_PUBCOMP:
	case MQTTSN_PUBREC:
	case MQTTSN_PUBREL:
	case MQTTSN_UNSUBACK:
		return 2;
	case MQTTSN_SUBSCRIBE:
	case MQTTSN_UNSUBSCRIBE:
		if (m->flags.topic_type == MQTTSN_TOPIC_RESERVED)
			return -EINVAL;
		if (m->type == MQTTSN_SUBSCRIBE && m->flags.qos < 0)
			return -EINVAL;
		if (m->flags.topic_type != MQTTSN_TOPIC_NORMAL)
			return 5;
		if (!m->sub.topic.len)
			return -EINVAL;
		return 3 + (long)m->sub.topic.len;
	case MQTTSN_SUBACK:
		return m->ack.rc < __MQTTSN_RC_MAX ? 6 : -EINVAL;
	case MQTTSN_PINGREQ:
		return (long)m->pingreq.client_id.len;
	case MQTTSN_DISCONNECT:
		return m->disconnect.has_duration ? 2 : 0;
	default:
		return -EINVAL;
	}
}

/* Length (1 or 3 octets, 5.2.1) and MsgType for a body of body bytes. */
static int wr_header(struct gw_writer *w, uint8_t type, size_t body)
{
	if (body + 2 <= 0xff) {
		gw_wr_u8(w, (uint8_t)(body + 2));
	} else {
		if (body + 4 > MQTTSN_MAX_LEN)
			return -EMSGSIZE;
		gw_wr_u8(w, 0x01);
		gw_wr_u16be(w, (uint16_t)(body + 4));
	}
	gw_wr_u8(w, type);
	return 0;
}

static void wr_slice(struct gw_writer *w, struct gw_slice s)
{
	gw_wr_bytes(w, s.p, s.len);
}

static void encode_body(struct gw_writer *w, const struct mqttsn_msg *m)
{
	uint8_t flags = mqttsn_flags_pack(m->flags);

	switch (m->type) {
	case MQTTSN_ADVERTISE:
		gw_wr_u8(w, m->advertise.gw_id);
		gw_wr_u16be(w, m->advertise.duration);
		break;
	case MQTTSN_SEARCHGW:
		gw_wr_u8(w, m->searchgw.radius);
		break;
	case MQTTSN_GWINFO:
		gw_wr_u8(w, m->gwinfo.gw_id);
		wr_slice(w, m->gwinfo.gw_addr);
		break;
	case MQTTSN_CONNECT:
		gw_wr_u8(w, flags);
		gw_wr_u8(w, m->connect.protocol_id);
		gw_wr_u16be(w, m->connect.duration);
		wr_slice(w, m->connect.client_id);
		break;
	case MQTTSN_CONNACK:
	case MQTTSN_WILLTOPICRESP:
	case MQTTSN_WILLMSGRESP:
		gw_wr_u8(w, m->resp.rc);
		break;
	case MQTTSN_WILLTOPIC:
	case MQTTSN_WILLTOPICUPD:
		if (m->willtopic.topic.len) {
			gw_wr_u8(w, flags);
			wr_slice(w, m->willtopic.topic);
		}
		break;
	case MQTTSN_WILLMSG:
	case MQTTSN_WILLMSGUPD:
		wr_slice(w, m->willmsg.msg);
		break;
	case MQTTSN_REGISTER:
		gw_wr_u16be(w, m->reg.topic_id);
		gw_wr_u16be(w, m->reg.msg_id);
		wr_slice(w, m->reg.topic);
		break;
	case MQTTSN_REGACK:
	case MQTTSN_PUBACK:
		gw_wr_u16be(w, m->ack.topic_id);
		gw_wr_u16be(w, m->ack.msg_id);
		gw_wr_u8(w, m->ack.rc);
		break;
	case MQTTSN_PUBLISH:
		gw_wr_u8(w, flags);
		gw_wr_u16be(w, m->publish.topic_id);
		gw_wr_u16be(w, m->publish.msg_id);
		wr_slice(w, m->publish.data);
		break;
	case MQTTSN_PUBCOMP:
	case MQTTSN_PUBREC:
	case MQTTSN_PUBREL:
	case MQTTSN_UNSUBACK:
		gw_wr_u16be(w, m->msgid.msg_id);
		break;
	case MQTTSN_SUBSCRIBE:
	case MQTTSN_UNSUBSCRIBE:
		gw_wr_u8(w, flags);
		gw_wr_u16be(w, m->sub.msg_id);
		if (m->flags.topic_type == MQTTSN_TOPIC_NORMAL)
			wr_slice(w, m->sub.topic);
		else
			gw_wr_u16be(w, m->sub.topic_id);
		break;
	case MQTTSN_SUBACK:
		gw_wr_u8(w, flags);
		gw_wr_u16be(w, m->ack.topic_id);
		gw_wr_u16be(w, m->ack.msg_id);
		gw_wr_u8(w, m->ack.rc);
		break;
	case MQTTSN_PINGREQ:
		wr_slice(w, m->pingreq.client_id);
		break;
	case MQTTSN_DISCONNECT:
		if (m->disconnect.has_duration)
			gw_wr_u16be(w, m->disconnect.duration);
		break;
	default:
		/* WILLTOPICREQ, WILLMSGREQ, PINGRESP: header only. */
		break;
	}
}

int mqttsn_encode(struct gw_writer *w, const struct mqttsn_msg *m)
{
	size_t start = w->len;
	size_t ehdr = 0;
	long body;

	body = body_size(m);
	if (body < 0)
		return (int)body;
	if ((size_t)body + 4 > MQTTSN_MAX_LEN)
		return -EMSGSIZE;
	if (m->encapsulated) {
		/* 5.5: the forwarder's Length counts its own header only. */
		ehdr = 1 + m->encap.node_id.len;
		if (ehdr + 4 > MQTTSN_MAX_LEN)
			return -EMSGSIZE;
		wr_header(w, MQTTSN_ENCAPSULATED, ehdr);
		gw_wr_u8(w, m->encap.ctrl);
		wr_slice(w, m->encap.node_id);
	}
	wr_header(w, m->type, (size_t)body);
	encode_body(w, m);
	if (w->err)
		return w->err;
	return (int)(w->len - start);
}

int mqttsn_encode_publish_hdr(struct gw_writer *w, struct mqttsn_flags flags, uint16_t topic_id,
			      uint16_t msg_id, size_t payload_len)
{
	size_t start = w->len;

	if (!flags_ok(flags) || flags.topic_type == MQTTSN_TOPIC_RESERVED)
		return -EINVAL;
	if (payload_len > MQTTSN_MAX_LEN - 9)
		return -EMSGSIZE;
	wr_header(w, MQTTSN_PUBLISH, 5 + payload_len);
	gw_wr_u8(w, mqttsn_flags_pack(flags));
	gw_wr_u16be(w, topic_id);
	gw_wr_u16be(w, msg_id);
	if (w->err)
		return w->err;
	return (int)(w->len - start);
}

/* ------------------------------------------------------------ comparing */

static bool flags_eq(struct mqttsn_flags a, struct mqttsn_flags b)
{
	return mqttsn_flags_pack(a) == mqttsn_flags_pack(b);
}

bool mqttsn_msg_equal(const struct mqttsn_msg *a, const struct mqttsn_msg *b)
{
	if (a->type != b->type || a->encapsulated != b->encapsulated ||
	    !flags_eq(a->flags, b->flags))
		return false;
	if (a->encapsulated &&
	    (a->encap.ctrl != b->encap.ctrl || !gw_slice_eq(a->encap.node_id, b->encap.node_id)))
		return false;
	switch (a->type) {
	case MQTTSN_ADVERTISE:
		return a->advertise.gw_id == b->advertise.gw_id &&
		       a->advertise.duration == b->advertise.duration;
	case MQTTSN_SEARCHGW:
		return a->searchgw.radius == b->searchgw.radius;
	case MQTTSN_GWINFO:
		return a->gwinfo.gw_id == b->gwinfo.gw_id &&
		       gw_slice_eq(a->gwinfo.gw_addr, b->gwinfo.gw_addr);
	case MQTTSN_CONNECT:
		return a->connect.protocol_id == b->connect.protocol_id &&
		       a->connect.duration == b->connect.duration &&
		       gw_slice_eq(a->connect.client_id, b->connect.client_id);
	case MQTTSN_CONNACK:
	case MQTTSN_WILLTOPICRESP:
	case MQTTSN_WILLMSGRESP:
		return a->resp.rc == b->resp.rc;
	case MQTTSN_WILLTOPIC:
	case MQTTSN_WILLTOPICUPD:
		return gw_slice_eq(a->willtopic.topic, b->willtopic.topic);
	case MQTTSN_WILLMSG:
	case MQTTSN_WILLMSGUPD:
		return gw_slice_eq(a->willmsg.msg, b->willmsg.msg);
	case MQTTSN_REGISTER:
		return a->reg.topic_id == b->reg.topic_id && a->reg.msg_id == b->reg.msg_id &&
		       gw_slice_eq(a->reg.topic, b->reg.topic);
	case MQTTSN_REGACK:
	case MQTTSN_PUBACK:
	case MQTTSN_SUBACK:
		return a->ack.topic_id == b->ack.topic_id && a->ack.msg_id == b->ack.msg_id &&
		       a->ack.rc == b->ack.rc;
	case MQTTSN_PUBLISH:
		return a->publish.topic_id == b->publish.topic_id &&
		       a->publish.msg_id == b->publish.msg_id &&
		       gw_slice_eq(a->publish.data, b->publish.data);
	case MQTTSN_PUBCOMP:
	case MQTTSN_PUBREC:
	case MQTTSN_PUBREL:
	case MQTTSN_UNSUBACK:
		return a->msgid.msg_id == b->msgid.msg_id;
	case MQTTSN_SUBSCRIBE:
	case MQTTSN_UNSUBSCRIBE:
		return a->sub.msg_id == b->sub.msg_id && a->sub.topic_id == b->sub.topic_id &&
		       gw_slice_eq(a->sub.topic, b->sub.topic);
	case MQTTSN_PINGREQ:
		return gw_slice_eq(a->pingreq.client_id, b->pingreq.client_id);
	case MQTTSN_DISCONNECT:
		return a->disconnect.has_duration == b->disconnect.has_duration &&
		       a->disconnect.duration == b->disconnect.duration;
	default:
		return true;
	}
}
