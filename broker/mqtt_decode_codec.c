/*
 * mqtt_decode_codec.c - the pure MQTT 3.1 / 3.1.1 / 5.0 decoder: the fixed
 * header, every packet and its properties (mqtt_decode), SUBSCRIBE entries.
 *
 * Decoding reads through the sticky bounded reader of gateway/base: structural
 * reads are done first and checked once (a short read anywhere is a malformed
 * packet), then the semantic checks run, each beside its spec reference.
 */
#include <errno.h>
#include <string.h>

#include "broker/mqtt_codec.h"
#include "broker/mqtt_codec_int.h"

/* ------------------------------------------------------------ decoding */

/* A UTF-8 string: ill-formed text is a malformed packet [MQTT-1.5.4-1]. */
static int rd_utf8(struct gw_reader *r, struct gw_slice *s)
{
	if (gw_rd_bin16(r, s))
		return r->err;
	if (!mqtt_utf8_valid(*s)) {
		r->err = -EBADMSG;
		return r->err;
	}
	return 0;
}

int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *type_flags, uint32_t *remaining,
		      size_t *hdr_len)
{
	uint32_t val = 0;
	size_t i, hl;
	uint8_t b = 0;

	if (hdr_len)
		*hdr_len = 0;
	for (i = 0; i < 4; i++) {
		if (1 + i >= len)
			return 0;
		b = buf[1 + i];
		val |= (uint32_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80))
			break;
	}
	/* A fifth length byte, or a final 0x00 after a continuation [MQTT-1.5.5-1]. */
	if (i == 4 || (i > 0 && b == 0))
		return -EBADMSG;
	hl = i + 2;
	if (type_flags)
		*type_flags = buf[0];
	if (remaining)
		*remaining = val;
	if (hdr_len)
		*hdr_len = hl;
	if (len - hl < val)
		return 0;
	return (int)(hl + val);
}

struct dec {
	struct gw_reader r;
	struct mqtt_pkt *out;
	const struct mqtt_limits *lim;
	uint8_t version;
};

static int fail(struct dec *d, int err, uint8_t reason)
{
	d->out->reason = reason;
	return err;
}

static int malformed(struct dec *d)
{
	return fail(d, -EBADMSG, MQTT_RC_MALFORMED);
}

static int proto(struct dec *d, uint8_t reason)
{
	return fail(d, -EPROTO, reason);
}

/* Reads one property value of id into pr; 0, or a negative errno via d. */
static int dec_prop(struct dec *d, struct gw_reader *r, uint32_t id, struct mqtt_props *pr)
{
	struct gw_slice s = { 0 }, k = { 0 };
	uint32_t u32 = 0;
	uint16_t u16 = 0;
	uint8_t u8 = 0;

	switch (mqtt__prop_info[id].kind) {
	case PK_BYTE:
		gw_rd_u8(r, &u8);
		break;
	case PK_U16:
		gw_rd_u16be(r, &u16);
		break;
	case PK_U32:
		gw_rd_u32be(r, &u32);
		break;
	case PK_VARINT:
		mqtt__rd_varint(r, &u32);
		break;
	case PK_UTF8:
		rd_utf8(r, &s);
		break;
	case PK_BIN:
		gw_rd_bin16(r, &s);
		break;
	case PK_PAIR:
		rd_utf8(r, &k);
		rd_utf8(r, &s);
		break;
	}
	if (r->err)
		return malformed(d);

	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
		pr->has_payload_format = true;
		pr->payload_format = u8;
		break;
	case MQTT_PROP_MESSAGE_EXPIRY:
		pr->has_message_expiry = true;
		pr->message_expiry = u32;
		break;
	case MQTT_PROP_CONTENT_TYPE:
		pr->has_content_type = true;
		pr->content_type = s;
		break;
	case MQTT_PROP_RESPONSE_TOPIC:
		/* A Topic Name: no wildcards, not empty [MQTT-3.3.2-14]. */
		if (!mqtt_topic_valid(s))
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
		pr->has_response_topic = true;
		pr->response_topic = s;
		break;
	case MQTT_PROP_CORRELATION_DATA:
		pr->has_correlation_data = true;
		pr->correlation_data = s;
		break;
	case MQTT_PROP_SUB_ID:
		/* [MQTT-3.8.2.1.2]: 0 is a protocol error. */
		if (u32 == 0)
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
		if (pr->sub_id_count < MQTT_MAX_SUB_IDS)
			pr->sub_id[pr->sub_id_count++] = u32;
		else
			pr->sub_id_overflow = true;
		break;
	case MQTT_PROP_SESSION_EXPIRY:
		pr->has_session_expiry = true;
		pr->session_expiry = u32;
		break;
	case MQTT_PROP_ASSIGNED_CLIENT_ID:
		pr->has_assigned_client_id = true;
		pr->assigned_client_id = s;
		break;
	case MQTT_PROP_SERVER_KEEP_ALIVE:
		pr->has_server_keep_alive = true;
		pr->server_keep_alive = u16;
		break;
	case MQTT_PROP_AUTH_METHOD:
		pr->has_auth_method = true;
		pr->auth_method = s;
		break;
	case MQTT_PROP_AUTH_DATA:
		pr->has_auth_data = true;
		pr->auth_data = s;
		break;
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
		pr->has_request_problem_info = true;
		pr->request_problem_info = u8;
		break;
	case MQTT_PROP_WILL_DELAY:
		pr->has_will_delay = true;
		pr->will_delay = u32;
		break;
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
		pr->has_request_response_info = true;
		pr->request_response_info = u8;
		break;
	case MQTT_PROP_RESPONSE_INFO:
		pr->has_response_info = true;
		pr->response_info = s;
		break;
	case MQTT_PROP_SERVER_REFERENCE:
		pr->has_server_reference = true;
		pr->server_reference = s;
		break;
	case MQTT_PROP_REASON_STRING:
		pr->has_reason_string = true;
		pr->reason_string = s;
		break;
	case MQTT_PROP_RECEIVE_MAXIMUM:
		/* 3.1.2.11.3 / 3.2.2.3.3: 0 is a protocol error. */
		if (u16 == 0)
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
		pr->has_receive_maximum = true;
		pr->receive_maximum = u16;
		break;
	case MQTT_PROP_TOPIC_ALIAS_MAX:
		pr->has_topic_alias_max = true;
		pr->topic_alias_max = u16;
		break;
	case MQTT_PROP_TOPIC_ALIAS:
		pr->has_topic_alias = true;
		pr->topic_alias = u16;
		break;
	case MQTT_PROP_MAX_QOS:
		pr->has_max_qos = true;
		pr->max_qos = u8;
		break;
	case MQTT_PROP_RETAIN_AVAILABLE:
		pr->has_retain_available = true;
		pr->retain_available = u8;
		break;
	case MQTT_PROP_USER:
		pr->has_user_props = true;
		break;
	case MQTT_PROP_MAX_PACKET_SIZE:
		/* 3.1.2.11.4 / 3.2.2.3.6: 0 is a protocol error. */
		if (u32 == 0)
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
		pr->has_max_packet_size = true;
		pr->max_packet_size = u32;
		break;
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
		pr->has_wildcard_sub_available = true;
		pr->wildcard_sub_available = u8;
		break;
	case MQTT_PROP_SUB_ID_AVAILABLE:
		pr->has_sub_id_available = true;
		pr->sub_id_available = u8;
		break;
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		pr->has_shared_sub_available = true;
		pr->shared_sub_available = u8;
		break;
	}
	/* Every byte-valued property is a 0/1 flag except Maximum QoS (0/1 too). */
	if (mqtt__prop_info[id].kind == PK_BYTE && u8 > 1)
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

/*
 * Reads a property length and the properties after it, allowed where (an
 * IN() mask). 2.2.2.2: an identifier not valid for the packet is malformed; a
 * repeated one (other than User Property and PUBLISH Subscription
 * Identifiers) is a protocol error.
 */
static int dec_props(struct dec *d, unsigned int where, struct mqtt_props *pr)
{
	struct gw_reader r;
	struct gw_slice block;
	uint64_t seen = 0;
	uint32_t plen = 0, id = 0;
	int rc;

	if (mqtt__rd_varint(&d->r, &plen) || gw_rd_bytes(&d->r, plen, &block))
		return malformed(d);
	gw_reader_init(&r, block.p, block.len);
	while (gw_rd_left(&r)) {
		if (mqtt__rd_varint(&r, &id) || !mqtt__prop_allowed(where, id))
			return malformed(d);
		if ((seen >> id) & 1) {
			bool multi = id == MQTT_PROP_USER ||
				     (id == MQTT_PROP_SUB_ID && where == IN(PUBLISH));

			if (!multi)
				return proto(d, MQTT_RC_PROTOCOL_ERROR);
		}
		seen |= 1ull << id;
		rc = dec_prop(d, &r, id, pr);
		if (rc)
			return rc;
	}
	if (pr->has_user_props)
		pr->user_props = block;
	/* Authentication Data without a method (3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3). */
	if (pr->has_auth_data && !pr->has_auth_method)
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

static int need_end(struct dec *d)
{
	if (d->r.err || gw_rd_left(&d->r))
		return malformed(d);
	return 0;
}

static int dec_connect(struct dec *d)
{
	struct mqtt_pkt *out = d->out;
	struct mqtt_connect *c = &out->connect;
	struct gw_reader *r = &d->r;
	uint8_t level = 0, flags = 0;
	int rc;

	out->version = 0; /* unknown until the name and level are checked */
	rd_utf8(r, &c->protocol_name);
	gw_rd_u8(r, &level);
	if (r->err)
		return malformed(d);
	/* [MQTT-3.1.2-1], [MQTT-3.1.2-2]: a name and level we speak, or 0x84. */
	if (gw_slice_eq_cstr(c->protocol_name, "MQTT") && (level == MQTT_V311 || level == MQTT_V5))
		out->version = level;
	else if (gw_slice_eq_cstr(c->protocol_name, "MQIsdp") && level == MQTT_V31)
		out->version = level;
	else
		return proto(d, MQTT_RC_UNSUPPORTED_VERSION);
	d->version = out->version;

	gw_rd_u8(r, &flags);
	gw_rd_u16be(r, &c->keep_alive);
	if (r->err)
		return malformed(d);
	if (flags & 0x01) /* reserved [MQTT-3.1.2-3] */
		return malformed(d);
	c->clean_start = flags & 0x02;
	c->has_will = flags & 0x04;
	c->will.qos = (flags >> 3) & 3;
	c->will.retain = flags & 0x20;
	c->has_password = flags & 0x40;
	c->has_username = flags & 0x80;
	if (c->will.qos == 3) /* [MQTT-3.1.2-14] */
		return malformed(d);
	if (!c->has_will && c->will.qos) /* [MQTT-3.1.2-13] */
		return malformed(d);
	if (!c->has_will && c->will.retain) /* [MQTT-3.1.2-15] */
		return malformed(d);
	/* [MQTT-3.1.2-22]: 3.1.1 (and 3.1) need a user name for a password. */
	if (d->version < MQTT_V5 && c->has_password && !c->has_username)
		return proto(d, MQTT_RC_PROTOCOL_ERROR);

	if (d->version == MQTT_V5) {
		rc = dec_props(d, IN(CONNECT), &out->props);
		if (rc)
			return rc;
	}
	rd_utf8(r, &c->client_id); /* [MQTT-3.1.3-4] */
	if (c->has_will) {
		if (d->version == MQTT_V5) {
			rc = dec_props(d, IN_WILL, &c->will.props);
			if (rc)
				return rc;
		}
		rd_utf8(r, &c->will.topic);
		gw_rd_bin16(r, &c->will.payload);
	}
	if (c->has_username)
		rd_utf8(r, &c->username); /* [MQTT-3.1.3-11] */
	if (c->has_password)
		gw_rd_bin16(r, &c->password);
	rc = need_end(d);
	if (rc)
		return rc;

	/* 3.1 wants 1..23 characters; we accept longer ones as Mosquitto does. */
	if (d->version == MQTT_V31 && c->client_id.len == 0)
		return proto(d, MQTT_RC_CLIENT_ID_INVALID);
	/* [MQTT-3.1.3-8]: an empty id needs a clean session in 3.1.1. */
	if (d->version == MQTT_V311 && c->client_id.len == 0 && !c->clean_start)
		return proto(d, MQTT_RC_CLIENT_ID_INVALID);
	/* The will topic is a Topic Name: no wildcards [MQTT-4.7.0-1], not empty [MQTT-4.7.3-1]. */
	if (c->has_will && !mqtt_topic_valid(c->will.topic))
		return proto(d, MQTT_RC_TOPIC_NAME_INVALID);
	return 0;
}

static int dec_connack(struct dec *d)
{
	struct mqtt_pkt *out = d->out;
	struct gw_reader *r = &d->r;
	uint8_t flags = 0;
	int rc;

	gw_rd_u8(r, &flags);
	gw_rd_u8(r, &out->connack.reason_code);
	if (r->err)
		return malformed(d);
	/* [MQTT-3.2.2-1]: bits 7-1 reserved (3.1 had no flags byte, only zeros). */
	if (flags & 0xfe)
		return malformed(d);
	out->connack.session_present = flags & 1;
	if (d->version == MQTT_V5) {
		rc = dec_props(d, IN(CONNACK), &out->props);
		if (rc)
			return rc;
	}
	rc = need_end(d);
	if (rc)
		return rc;
	if (d->version == MQTT_V5 && !mqtt__rc_valid(MQTT_CONNACK, out->connack.reason_code))
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	/* 3.2.2.3: return codes 6-255 are reserved. */
	if (d->version < MQTT_V5 && out->connack.reason_code > MQTT_CONNACK_NOT_AUTHORIZED)
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

static int dec_publish(struct dec *d)
{
	struct mqtt_pkt *out = d->out;
	struct mqtt_publish *pub = &out->publish;
	struct gw_reader *r = &d->r;
	uint16_t max_alias;
	int rc;

	pub->retain = out->flags & MQTT_PUB_RETAIN;
	pub->qos = (out->flags & MQTT_PUB_QOS_MASK) >> MQTT_PUB_QOS_SHIFT;
	pub->dup = out->flags & MQTT_PUB_DUP;
	if (pub->qos == 3) /* [MQTT-3.3.1-4] */
		return malformed(d);
	if (pub->dup && pub->qos == 0) /* [MQTT-3.3.1-2] */
		return malformed(d);

	rd_utf8(r, &pub->topic);
	if (pub->qos)
		gw_rd_u16be(r, &out->packet_id);
	if (r->err)
		return malformed(d);
	if (d->version == MQTT_V5) {
		rc = dec_props(d, IN(PUBLISH), &out->props);
		if (rc)
			return rc;
	}
	gw_rd_bytes(r, gw_rd_left(r), &pub->payload);

	if (pub->qos && out->packet_id == 0) /* [MQTT-2.2.1-3] */
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	if (out->props.has_topic_alias) {
		/* [MQTT-3.3.2-8], [MQTT-3.3.2-9]: 0 or above our maximum. */
		max_alias = d->lim ? d->lim->max_topic_alias : 0xffff;
		if (out->props.topic_alias == 0 || out->props.topic_alias > max_alias)
			return proto(d, MQTT_RC_TOPIC_ALIAS_INVALID);
	}
	if (pub->topic.len == 0) {
		/* 3.3.2.3.4: an empty topic needs a Topic Alias; [MQTT-4.7.3-1]. */
		if (!out->props.has_topic_alias)
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
	} else if (!mqtt_topic_valid(pub->topic)) { /* [MQTT-3.3.2-2] */
		return proto(d, MQTT_RC_TOPIC_NAME_INVALID);
	}
	if (d->lim && d->lim->from_client && out->props.sub_id_count) /* [MQTT-3.3.4-6] */
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static int dec_ack(struct dec *d)
{
	struct mqtt_pkt *out = d->out;
	struct gw_reader *r = &d->r;
	int rc;

	gw_rd_u16be(r, &out->packet_id);
	if (r->err)
		return malformed(d);
	if (d->version == MQTT_V5) {
		/* 3.4.2.1: reason and properties may be left out (rc 0, none). */
		if (gw_rd_left(r) >= 1)
			gw_rd_u8(r, &out->ack.reason_code);
		if (gw_rd_left(r) >= 1) {
			rc = dec_props(d, 1u << out->type, &out->props);
			if (rc)
				return rc;
		}
	}
	rc = need_end(d);
	if (rc)
		return rc;
	if (out->packet_id == 0) /* [MQTT-2.2.1-3] */
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	if (d->version == MQTT_V5 && !mqtt__rc_valid(out->type, out->ack.reason_code))
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

/*
 * One SUBSCRIBE / UNSUBSCRIBE entry. Returns 0, or a negative errno with
 * *reason set; structural problems are -EBADMSG.
 */
static int sub_entry(struct gw_reader *r, uint8_t version, bool unsub, struct mqtt_sub_entry *e,
		     uint8_t *reason)
{
	uint8_t opt = 0;

	memset(e, 0, sizeof(*e));
	*reason = MQTT_RC_MALFORMED;
	if (rd_utf8(r, &e->filter))
		return -EBADMSG;
	if (unsub)
		return 0;
	if (gw_rd_u8(r, &opt))
		return -EBADMSG;
	e->qos = opt & 3;
	if (version < MQTT_V5) {
		/* [MQTT-3-8.3-4]: reserved bits, and QoS 3, are malformed. */
		if ((opt & 0xfc) || e->qos == 3)
			return -EBADMSG;
		return 0;
	}
	e->no_local = opt & 0x04;
	e->retain_as_published = opt & 0x08;
	e->retain_handling = (opt >> 4) & 3;
	if (opt & 0xc0) /* [MQTT-3.8.3-5] */
		return -EBADMSG;
	/* 3.8.3.1: QoS 3 and Retain Handling 3 are protocol errors. */
	if (e->qos == 3 || e->retain_handling == 3) {
		*reason = MQTT_RC_PROTOCOL_ERROR;
		return -EPROTO;
	}
	return 0;
}

void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_pkt *p)
{
	gw_reader_init(&it->r, p->subscribe.entries.p, p->subscribe.entries.len);
	it->version = p->version;
	it->unsubscribe = p->type == MQTT_UNSUBSCRIBE;
}

int mqtt_sub_next(struct mqtt_sub_iter *it, struct mqtt_sub_entry *out)
{
	uint8_t reason;
	int rc;

	if (it->r.err)
		return -EBADMSG;
	if (!gw_rd_left(&it->r))
		return 0;
	rc = sub_entry(&it->r, it->version, it->unsubscribe, out, &reason);
	if (rc) {
		it->r.err = -EBADMSG;
		return -EBADMSG;
	}
	return 1;
}

/* SUBSCRIBE and UNSUBSCRIBE: every entry is checked here, up front. */
static int dec_subscribe(struct dec *d)
{
	struct mqtt_pkt *out = d->out;
	struct gw_reader *r = &d->r;
	bool unsub = out->type == MQTT_UNSUBSCRIBE;
	struct mqtt_sub_entry e;
	struct gw_reader er;
	uint8_t reason;
	int rc;

	gw_rd_u16be(r, &out->packet_id);
	if (r->err)
		return malformed(d);
	if (d->version == MQTT_V5) {
		rc = dec_props(d, 1u << out->type, &out->props);
		if (rc)
			return rc;
	}
	gw_rd_bytes(r, gw_rd_left(r), &out->subscribe.entries);

	gw_reader_init(&er, out->subscribe.entries.p, out->subscribe.entries.len);
	while (gw_rd_left(&er)) {
		rc = sub_entry(&er, d->version, unsub, &e, &reason);
		if (rc)
			return fail(d, rc, reason);
		/* [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1], [MQTT-4.8.2-1/2]. */
		if (!mqtt_filter_valid(e.filter))
			return proto(d, MQTT_RC_TOPIC_FILTER_INVALID);
		/* [MQTT-3.8.3-4]: No Local on a shared subscription. */
		if (e.no_local && mqtt__is_share(e.filter))
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
		out->subscribe.count++;
	}
	if (out->packet_id == 0) /* [MQTT-2.2.1-3] */
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	/* [MQTT-3.8.3-3], [MQTT-3.10.3-2]: at least one topic filter. */
	if (out->subscribe.count == 0)
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

/* SUBACK and UNSUBACK. */
static int dec_suback(struct dec *d)
{
	struct mqtt_pkt *out = d->out;
	struct gw_reader *r = &d->r;
	struct gw_slice codes;
	size_t i;
	int rc;

	gw_rd_u16be(r, &out->packet_id);
	if (r->err)
		return malformed(d);
	if (d->version == MQTT_V5) {
		rc = dec_props(d, 1u << out->type, &out->props);
		if (rc)
			return rc;
	}
	gw_rd_bytes(r, gw_rd_left(r), &codes);
	out->suback.codes = codes;
	if (out->type == MQTT_UNSUBACK && d->version < MQTT_V5) {
		/* 3.11: a 3.1.1 UNSUBACK is the packet id alone. */
		if (codes.len)
			return malformed(d);
	} else if (codes.len == 0) {
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	}
	for (i = 0; i < codes.len; i++) {
		uint8_t c = codes.p[i];

		if (d->version == MQTT_V5) {
			if (!mqtt__rc_valid(out->type, c))
				return proto(d, MQTT_RC_PROTOCOL_ERROR);
		} else if (c > 2 && c != MQTT_SUBACK_FAILURE) { /* [MQTT-3.9.3-2] */
			return proto(d, MQTT_RC_PROTOCOL_ERROR);
		}
	}
	if (out->packet_id == 0) /* [MQTT-2.2.1-3] */
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

/* DISCONNECT and AUTH (5.0): reason code and properties may be left out. */
static int dec_reason_props(struct dec *d, uint8_t *reason_code)
{
	struct mqtt_pkt *out = d->out;
	struct gw_reader *r = &d->r;
	int rc;

	if (d->version == MQTT_V5) {
		if (gw_rd_left(r) >= 1)
			gw_rd_u8(r, reason_code);
		if (gw_rd_left(r) >= 1) {
			rc = dec_props(d, 1u << out->type, &out->props);
			if (rc)
				return rc;
		}
	}
	rc = need_end(d);
	if (rc)
		return rc;
	if (d->version == MQTT_V5 && !mqtt__rc_valid(out->type, *reason_code))
		return proto(d, MQTT_RC_PROTOCOL_ERROR);
	return 0;
}

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, const struct mqtt_limits *lim,
		struct mqtt_pkt *out)
{
	struct dec d = { .out = out, .lim = lim, .version = version };
	uint32_t remaining = 0;
	uint8_t tf = 0, type, flags, want;
	size_t hl = 0;
	int n, rc;

	memset(out, 0, sizeof(*out));
	out->version = version;
	n = mqtt_fixed_header(buf, len, &tf, &remaining, &hl);
	if (len)
		out->type = buf[0] >> 4;
	if (n < 0)
		return malformed(&d);
	if (hl == 0)
		return 0;
	type = tf >> 4;
	flags = tf & 0x0f;
	out->flags = flags;
	if (type != MQTT_CONNECT && (version < MQTT_V31 || version > MQTT_V5))
		return -EINVAL;
	/* Refuse an oversized packet before its body has even arrived. */
	if (lim && lim->max_packet_size && hl + remaining > lim->max_packet_size)
		return fail(&d, -EMSGSIZE, MQTT_RC_PACKET_TOO_LARGE);
	if (n == 0)
		return 0;
	out->size = (uint32_t)n;

	/* 2.1.2: type 0 is reserved, and AUTH (15) was before 5.0. */
	if (type == 0 || (type == MQTT_AUTH && version != MQTT_V5))
		return malformed(&d);
	/* [MQTT-2.1.3-1]: fixed flags. 3.1 set DUP on retried PUBREL/(UN)SUBSCRIBE. */
	if (type != MQTT_PUBLISH) {
		want = (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE)
			       ? 0x02
			       : 0x00;
		if (type != MQTT_CONNECT && version == MQTT_V31 && want)
			flags &= ~MQTT_PUB_DUP;
		if (flags != want)
			return malformed(&d);
	}
	if (lim && lim->from_client &&
	    (type == MQTT_CONNACK || type == MQTT_SUBACK || type == MQTT_UNSUBACK ||
	     type == MQTT_PINGRESP))
		return proto(&d, MQTT_RC_PROTOCOL_ERROR);

	gw_reader_init(&d.r, buf + hl, remaining);
	switch (type) {
	case MQTT_CONNECT:
		rc = dec_connect(&d);
		break;
	case MQTT_CONNACK:
		rc = dec_connack(&d);
		break;
	case MQTT_PUBLISH:
		rc = dec_publish(&d);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		rc = dec_ack(&d);
		break;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		rc = dec_subscribe(&d);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		rc = dec_suback(&d);
		break;
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		rc = need_end(&d); /* 3.12, 3.13: no variable header, no payload */
		break;
	case MQTT_DISCONNECT:
		rc = dec_reason_props(&d, &out->disconnect.reason_code);
		break;
	case MQTT_AUTH:
		rc = dec_reason_props(&d, &out->auth.reason_code);
		break;
	default:
		rc = malformed(&d);
		break;
	}
	return rc ? rc : n;
}
