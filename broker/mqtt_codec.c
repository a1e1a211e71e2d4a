/*
 * mqtt_codec.c - the pure MQTT 3.1 / 3.1.1 / 5.0 codec.
 *
 * Decoding reads through the sticky bounded reader of gateway/base: structural
 * reads are done first and checked once (a short read anywhere is a malformed
 * packet), then the semantic checks run, each beside its spec reference.
 * Encoding writes each packet twice when needed: once into a counting writer
 * (no buffer, it only sums lengths) to learn the Remaining Length and the
 * property length, then for real. That keeps one code path per packet and
 * makes the sizes exact by construction.
 */
#include <errno.h>
#include <string.h>

#include "broker/mqtt_codec.h"

/* --------------------------------------------------------------- tables */

enum prop_kind {
	PK_NONE,
	PK_BYTE,
	PK_U16,
	PK_U32,
	PK_VARINT,
	PK_UTF8,
	PK_BIN,
	PK_PAIR,
};

/* Where a property may appear: one bit per packet type, bit 0 for a will. */
#define IN(t) (1u << MQTT_##t)
#define IN_WILL 1u

static const struct {
	uint8_t kind;
	uint16_t where;
} prop_info[__MQTT_PROP_MAX] = {
	[MQTT_PROP_PAYLOAD_FORMAT] = { PK_BYTE, IN(PUBLISH) | IN_WILL },
	[MQTT_PROP_MESSAGE_EXPIRY] = { PK_U32, IN(PUBLISH) | IN_WILL },
	[MQTT_PROP_CONTENT_TYPE] = { PK_UTF8, IN(PUBLISH) | IN_WILL },
	[MQTT_PROP_RESPONSE_TOPIC] = { PK_UTF8, IN(PUBLISH) | IN_WILL },
	[MQTT_PROP_CORRELATION_DATA] = { PK_BIN, IN(PUBLISH) | IN_WILL },
	[MQTT_PROP_SUB_ID] = { PK_VARINT, IN(PUBLISH) | IN(SUBSCRIBE) },
	[MQTT_PROP_SESSION_EXPIRY] = { PK_U32, IN(CONNECT) | IN(CONNACK) | IN(DISCONNECT) },
	[MQTT_PROP_ASSIGNED_CLIENT_ID] = { PK_UTF8, IN(CONNACK) },
	[MQTT_PROP_SERVER_KEEP_ALIVE] = { PK_U16, IN(CONNACK) },
	[MQTT_PROP_AUTH_METHOD] = { PK_UTF8, IN(CONNECT) | IN(CONNACK) | IN(AUTH) },
	[MQTT_PROP_AUTH_DATA] = { PK_BIN, IN(CONNECT) | IN(CONNACK) | IN(AUTH) },
	[MQTT_PROP_REQUEST_PROBLEM_INFO] = { PK_BYTE, IN(CONNECT) },
	[MQTT_PROP_WILL_DELAY] = { PK_U32, IN_WILL },
	[MQTT_PROP_REQUEST_RESPONSE_INFO] = { PK_BYTE, IN(CONNECT) },
	[MQTT_PROP_RESPONSE_INFO] = { PK_UTF8, IN(CONNACK) },
	[MQTT_PROP_SERVER_REFERENCE] = { PK_UTF8, IN(CONNACK) | IN(DISCONNECT) },
	[MQTT_PROP_REASON_STRING] = { PK_UTF8, IN(CONNACK) | IN(PUBACK) | IN(PUBREC) | IN(PUBREL) |
						       IN(PUBCOMP) | IN(SUBACK) | IN(UNSUBACK) |
						       IN(DISCONNECT) | IN(AUTH) },
	[MQTT_PROP_RECEIVE_MAXIMUM] = { PK_U16, IN(CONNECT) | IN(CONNACK) },
	[MQTT_PROP_TOPIC_ALIAS_MAX] = { PK_U16, IN(CONNECT) | IN(CONNACK) },
	[MQTT_PROP_TOPIC_ALIAS] = { PK_U16, IN(PUBLISH) },
	[MQTT_PROP_MAX_QOS] = { PK_BYTE, IN(CONNACK) },
	[MQTT_PROP_RETAIN_AVAILABLE] = { PK_BYTE, IN(CONNACK) },
	[MQTT_PROP_USER] = { PK_PAIR, 0xfffe | IN_WILL },
	[MQTT_PROP_MAX_PACKET_SIZE] = { PK_U32, IN(CONNECT) | IN(CONNACK) },
	[MQTT_PROP_WILDCARD_SUB_AVAILABLE] = { PK_BYTE, IN(CONNACK) },
	[MQTT_PROP_SUB_ID_AVAILABLE] = { PK_BYTE, IN(CONNACK) },
	[MQTT_PROP_SHARED_SUB_AVAILABLE] = { PK_BYTE, IN(CONNACK) },
};

static bool prop_allowed(unsigned int where, unsigned int id)
{
	return id < __MQTT_PROP_MAX && prop_info[id].kind != PK_NONE &&
	       (prop_info[id].where & where);
}

/* The 5.0 reason codes each packet may carry (3.x.2.1 of each packet). */
static const uint8_t rc_connack[] = { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
				      0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97,
				      0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f };
static const uint8_t rc_puback[] = { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99 };
static const uint8_t rc_pubrel[] = { 0x00, 0x92 };
static const uint8_t rc_suback[] = { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
				     0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2 };
static const uint8_t rc_unsuback[] = { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91 };
static const uint8_t rc_disconnect[] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d,
					 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
					 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2 };
static const uint8_t rc_auth[] = { 0x00, 0x18, 0x19 };

static bool rc_in(const uint8_t *list, size_t n, uint8_t rc)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i] == rc)
			return true;
	return false;
}

#define RC_IN(list, rc) rc_in(list, sizeof(list), rc)

/* Is rc a valid 5.0 reason code for packet type? */
static bool rc_valid(uint8_t type, uint8_t rc)
{
	switch (type) {
	case MQTT_CONNACK:
		return RC_IN(rc_connack, rc);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
		return RC_IN(rc_puback, rc);
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return RC_IN(rc_pubrel, rc);
	case MQTT_SUBACK:
		return RC_IN(rc_suback, rc);
	case MQTT_UNSUBACK:
		return RC_IN(rc_unsuback, rc);
	case MQTT_DISCONNECT:
		return RC_IN(rc_disconnect, rc);
	case MQTT_AUTH:
		return RC_IN(rc_auth, rc);
	default:
		return false;
	}
}

static const char *const type_names[__MQTT_TYPE_MAX] = {
	[MQTT_CONNECT] = "CONNECT",   [MQTT_CONNACK] = "CONNACK",
	[MQTT_PUBLISH] = "PUBLISH",   [MQTT_PUBACK] = "PUBACK",
	[MQTT_PUBREC] = "PUBREC",     [MQTT_PUBREL] = "PUBREL",
	[MQTT_PUBCOMP] = "PUBCOMP",   [MQTT_SUBSCRIBE] = "SUBSCRIBE",
	[MQTT_SUBACK] = "SUBACK",     [MQTT_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[MQTT_UNSUBACK] = "UNSUBACK", [MQTT_PINGREQ] = "PINGREQ",
	[MQTT_PINGRESP] = "PINGRESP", [MQTT_DISCONNECT] = "DISCONNECT",
	[MQTT_AUTH] = "AUTH",
};

const char *mqtt_type_name(uint8_t type)
{
	return type < __MQTT_TYPE_MAX && type_names[type] ? type_names[type] : "?";
}

/* ------------------------------------------------------------- helpers */

bool mqtt_utf8_valid(struct gw_slice s)
{
	const uint8_t *p = s.p;
	size_t i = 0, n = s.len;

	while (i < n) {
		uint8_t c = p[i];
		size_t need;

		if (c < 0x80) {
			if (c == 0) /* [MQTT-1.5.4-2] */
				return false;
			i++;
			continue;
		}
		if (c < 0xc2) /* a stray continuation, or an overlong 2-byte form */
			return false;
		else if (c < 0xe0)
			need = 1;
		else if (c < 0xf0)
			need = 2;
		else if (c < 0xf5)
			need = 3;
		else
			return false;
		if (n - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		if (c == 0xe0 && p[i + 1] < 0xa0) /* overlong 3-byte */
			return false;
		if (c == 0xed && p[i + 1] >= 0xa0) /* U+D800..U+DFFF [MQTT-1.5.4-1] */
			return false;
		if (c == 0xf0 && p[i + 1] < 0x90) /* overlong 4-byte */
			return false;
		if (c == 0xf4 && p[i + 1] >= 0x90) /* above U+10FFFF */
			return false;
		i += need + 1;
	}
	return true;
}

bool mqtt_topic_valid(struct gw_slice topic)
{
	size_t i;

	/* [MQTT-4.7.3-1] at least one character; 65535 is the string limit. */
	if (topic.len == 0 || topic.len > 0xffff)
		return false;
	for (i = 0; i < topic.len; i++)
		if (topic.p[i] == '+' || topic.p[i] == '#') /* [MQTT-3.3.2-2] */
			return false;
	return mqtt_utf8_valid(topic);
}

/* '+' alone in its level, '#' alone in the last level [MQTT-4.7.1-1], [MQTT-4.7.1-2]. */
static bool levels_valid(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		bool starts = i == 0 || p[i - 1] == '/';

		if (p[i] == '+') {
			if (!starts || (i + 1 < n && p[i + 1] != '/'))
				return false;
		} else if (p[i] == '#') {
			if (!starts || i + 1 != n)
				return false;
		}
	}
	return true;
}

/* Whether the first level of f is exactly "$share". */
static bool is_share(struct gw_slice f)
{
	return f.len >= 6 && memcmp(f.p, "$share", 6) == 0 && (f.len == 6 || f.p[6] == '/');
}

/* "$share/{group}/{filter}" syntax; the caller checked is_share(). */
static bool share_split(struct gw_slice f, struct gw_slice *group, struct gw_slice *rest)
{
	size_t i;

	if (f.len < 7)
		return false;
	for (i = 7; i < f.len && f.p[i] != '/'; i++)
		if (f.p[i] == '+' || f.p[i] == '#') /* [MQTT-4.8.2-2] */
			return false;
	/* A non-empty group [MQTT-4.8.2-1], then '/' and a non-empty filter. */
	if (i == 7 || i + 1 >= f.len)
		return false;
	group->p = f.p + 7;
	group->len = i - 7;
	rest->p = f.p + i + 1;
	rest->len = f.len - i - 1;
	return true;
}

bool mqtt_filter_valid(struct gw_slice filter)
{
	struct gw_slice group, rest;

	/* [MQTT-4.7.3-1] at least one character. */
	if (filter.len == 0 || filter.len > 0xffff || !mqtt_utf8_valid(filter))
		return false;
	if (is_share(filter)) {
		if (!share_split(filter, &group, &rest))
			return false;
		return levels_valid(rest.p, rest.len);
	}
	return levels_valid(filter.p, filter.len);
}

bool mqtt_filter_shared(struct gw_slice filter, struct gw_slice *group, struct gw_slice *rest)
{
	struct gw_slice g, r;

	if (!is_share(filter) || !mqtt_filter_valid(filter) || !share_split(filter, &g, &r))
		return false;
	if (group)
		*group = g;
	if (rest)
		*rest = r;
	return true;
}

uint8_t mqtt_connack_rc_v3(uint8_t reason)
{
	switch (reason) {
	case MQTT_RC_SUCCESS:
		return MQTT_CONNACK_ACCEPTED;
	case MQTT_CONNACK_BAD_VERSION:
	case MQTT_CONNACK_ID_REJECTED:
	case MQTT_CONNACK_SERVER_UNAVAILABLE:
	case MQTT_CONNACK_BAD_USER_OR_PASSWORD:
	case MQTT_CONNACK_NOT_AUTHORIZED:
		return reason; /* already a 3.1.1 return code */
	case MQTT_RC_UNSUPPORTED_VERSION:
		return MQTT_CONNACK_BAD_VERSION;
	case MQTT_RC_CLIENT_ID_INVALID:
		return MQTT_CONNACK_ID_REJECTED;
	case MQTT_RC_BAD_USER_OR_PASSWORD:
	case MQTT_RC_BAD_AUTH_METHOD:
		return MQTT_CONNACK_BAD_USER_OR_PASSWORD;
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_BANNED:
		return MQTT_CONNACK_NOT_AUTHORIZED;
	default:
		return MQTT_CONNACK_SERVER_UNAVAILABLE;
	}
}

/* ------------------------------------------------------------ decoding */

/* A varint that must also be minimally encoded [MQTT-1.5.5-1]. */
static int rd_varint(struct gw_reader *r, uint32_t *v)
{
	size_t start = r->off;
	uint32_t val;

	if (gw_rd_varint(r, &val))
		return r->err;
	if (r->off - start != gw_varint_size(val)) {
		r->err = -EBADMSG;
		return r->err;
	}
	*v = val;
	return 0;
}

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

	switch (prop_info[id].kind) {
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
		rd_varint(r, &u32);
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
	if (prop_info[id].kind == PK_BYTE && u8 > 1)
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

	if (rd_varint(&d->r, &plen) || gw_rd_bytes(&d->r, plen, &block))
		return malformed(d);
	gw_reader_init(&r, block.p, block.len);
	while (gw_rd_left(&r)) {
		if (rd_varint(&r, &id) || !prop_allowed(where, id))
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
	if (d->version == MQTT_V5 && !rc_valid(MQTT_CONNACK, out->connack.reason_code))
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
	if (d->version == MQTT_V5 && !rc_valid(out->type, out->ack.reason_code))
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
		if (e.no_local && is_share(e.filter))
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
			if (!rc_valid(out->type, c))
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
	if (d->version == MQTT_V5 && !rc_valid(out->type, *reason_code))
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

/* ---------------------------------------------------- user properties */

/* Skips or reads one property value of kind from r (sticky errors). */
static void skip_prop(struct gw_reader *r, uint8_t kind)
{
	struct gw_slice s;
	uint32_t v;
	uint16_t u16;
	uint8_t u8;

	switch (kind) {
	case PK_BYTE:
		gw_rd_u8(r, &u8);
		break;
	case PK_U16:
		gw_rd_u16be(r, &u16);
		break;
	case PK_U32:
		gw_rd_u32be(r, &v);
		break;
	case PK_VARINT:
		rd_varint(r, &v);
		break;
	case PK_UTF8:
	case PK_BIN:
		gw_rd_bin16(r, &s);
		break;
	case PK_PAIR:
		gw_rd_bin16(r, &s);
		gw_rd_bin16(r, &s);
		break;
	default:
		r->err = -EBADMSG;
		break;
	}
}

int mqtt_user_prop_next(struct gw_slice *cursor, struct gw_slice *key, struct gw_slice *val)
{
	struct gw_reader r;
	uint32_t id = 0;

	gw_reader_init(&r, cursor->p, cursor->len);
	while (gw_rd_left(&r)) {
		if (rd_varint(&r, &id) || id >= __MQTT_PROP_MAX)
			return -EBADMSG;
		if (id == MQTT_PROP_USER) {
			if (gw_rd_bin16(&r, key) || gw_rd_bin16(&r, val))
				return -EBADMSG;
			cursor->p += r.off;
			cursor->len -= r.off;
			return 1;
		}
		skip_prop(&r, prop_info[id].kind);
		if (r.err)
			return -EBADMSG;
	}
	/* At the end: an empty block may have a NULL pointer, so no arithmetic. */
	cursor->len = 0;
	return 0;
}

void mqtt_user_prop_write(struct gw_writer *w, struct gw_slice key, struct gw_slice val)
{
	gw_wr_u8(w, MQTT_PROP_USER);
	gw_wr_bin16(w, key.p, key.len);
	gw_wr_bin16(w, val.p, val.len);
}

/* ------------------------------------------------------------ encoding */

/*
 * An encoding in progress: w receives the bytes (or only counts them), err
 * keeps the first problem with the packet itself (-EINVAL, -EMSGSIZE for a
 * protocol limit), kept apart from w->err, which only means "w is full".
 */
struct enc {
	struct gw_writer *w;
	int err;
};

static void e_fail(struct enc *e, int err)
{
	if (!e->err)
		e->err = err;
}

static void e_str(struct enc *e, struct gw_slice s)
{
	if (s.len > 0xffff) {
		e_fail(e, -EMSGSIZE);
		return;
	}
	gw_wr_u16be(e->w, (uint16_t)s.len);
	gw_wr_bytes(e->w, s.p, s.len);
}

/* Writes the identifier of a property if where allows it. */
static bool e_pid(struct enc *e, unsigned int where, uint8_t id)
{
	if (!prop_allowed(where, id)) {
		e_fail(e, -EINVAL);
		return false;
	}
	gw_wr_u8(e->w, id);
	return true;
}

static void e_prop_u8(struct enc *e, unsigned int where, uint8_t id, bool has, uint8_t v)
{
	if (!has)
		return;
	if (v > 1) /* every byte property is 0 or 1 */
		e_fail(e, -EINVAL);
	if (e_pid(e, where, id))
		gw_wr_u8(e->w, v);
}

static void e_prop_u16(struct enc *e, unsigned int where, uint8_t id, bool has, uint16_t v)
{
	if (has && e_pid(e, where, id))
		gw_wr_u16be(e->w, v);
}

static void e_prop_u32(struct enc *e, unsigned int where, uint8_t id, bool has, uint32_t v)
{
	if (has && e_pid(e, where, id))
		gw_wr_u32be(e->w, v);
}

static void e_prop_str(struct enc *e, unsigned int where, uint8_t id, bool has, struct gw_slice v)
{
	if (has && e_pid(e, where, id))
		e_str(e, v);
}

static void e_props_body(struct enc *e, unsigned int where, const struct mqtt_props *pr)
{
	const uint32_t *ids = pr->sub_id_ext ? pr->sub_id_ext : pr->sub_id;
	size_t nids = pr->sub_id_ext ? pr->sub_id_ext_count : pr->sub_id_count;
	struct gw_slice cur, k, v;
	size_t i;
	int rc;

	e_prop_u8(e, where, MQTT_PROP_PAYLOAD_FORMAT, pr->has_payload_format, pr->payload_format);
	e_prop_u32(e, where, MQTT_PROP_MESSAGE_EXPIRY, pr->has_message_expiry, pr->message_expiry);
	e_prop_str(e, where, MQTT_PROP_CONTENT_TYPE, pr->has_content_type, pr->content_type);
	e_prop_str(e, where, MQTT_PROP_RESPONSE_TOPIC, pr->has_response_topic, pr->response_topic);
	e_prop_str(e, where, MQTT_PROP_CORRELATION_DATA, pr->has_correlation_data,
		   pr->correlation_data);
	if (nids > 1 && where != IN(PUBLISH))
		e_fail(e, -EINVAL);
	for (i = 0; i < nids; i++) {
		if (ids[i] == 0 || ids[i] > MQTT_MAX_SUB_ID)
			e_fail(e, -EINVAL);
		else if (e_pid(e, where, MQTT_PROP_SUB_ID))
			gw_wr_varint(e->w, ids[i]);
	}
	e_prop_u32(e, where, MQTT_PROP_SESSION_EXPIRY, pr->has_session_expiry, pr->session_expiry);
	e_prop_str(e, where, MQTT_PROP_ASSIGNED_CLIENT_ID, pr->has_assigned_client_id,
		   pr->assigned_client_id);
	e_prop_u16(e, where, MQTT_PROP_SERVER_KEEP_ALIVE, pr->has_server_keep_alive,
		   pr->server_keep_alive);
	e_prop_str(e, where, MQTT_PROP_AUTH_METHOD, pr->has_auth_method, pr->auth_method);
	e_prop_str(e, where, MQTT_PROP_AUTH_DATA, pr->has_auth_data, pr->auth_data);
	e_prop_u8(e, where, MQTT_PROP_REQUEST_PROBLEM_INFO, pr->has_request_problem_info,
		  pr->request_problem_info);
	e_prop_u32(e, where, MQTT_PROP_WILL_DELAY, pr->has_will_delay, pr->will_delay);
	e_prop_u8(e, where, MQTT_PROP_REQUEST_RESPONSE_INFO, pr->has_request_response_info,
		  pr->request_response_info);
	e_prop_str(e, where, MQTT_PROP_RESPONSE_INFO, pr->has_response_info, pr->response_info);
	e_prop_str(e, where, MQTT_PROP_SERVER_REFERENCE, pr->has_server_reference,
		   pr->server_reference);
	e_prop_str(e, where, MQTT_PROP_REASON_STRING, pr->has_reason_string, pr->reason_string);
	if (pr->has_receive_maximum && pr->receive_maximum == 0)
		e_fail(e, -EINVAL);
	e_prop_u16(e, where, MQTT_PROP_RECEIVE_MAXIMUM, pr->has_receive_maximum,
		   pr->receive_maximum);
	e_prop_u16(e, where, MQTT_PROP_TOPIC_ALIAS_MAX, pr->has_topic_alias_max,
		   pr->topic_alias_max);
	if (pr->has_topic_alias && pr->topic_alias == 0)
		e_fail(e, -EINVAL);
	e_prop_u16(e, where, MQTT_PROP_TOPIC_ALIAS, pr->has_topic_alias, pr->topic_alias);
	e_prop_u8(e, where, MQTT_PROP_MAX_QOS, pr->has_max_qos, pr->max_qos);
	e_prop_u8(e, where, MQTT_PROP_RETAIN_AVAILABLE, pr->has_retain_available,
		  pr->retain_available);
	if (pr->has_max_packet_size && pr->max_packet_size == 0)
		e_fail(e, -EINVAL);
	e_prop_u32(e, where, MQTT_PROP_MAX_PACKET_SIZE, pr->has_max_packet_size,
		   pr->max_packet_size);
	e_prop_u8(e, where, MQTT_PROP_WILDCARD_SUB_AVAILABLE, pr->has_wildcard_sub_available,
		  pr->wildcard_sub_available);
	e_prop_u8(e, where, MQTT_PROP_SUB_ID_AVAILABLE, pr->has_sub_id_available,
		  pr->sub_id_available);
	e_prop_u8(e, where, MQTT_PROP_SHARED_SUB_AVAILABLE, pr->has_shared_sub_available,
		  pr->shared_sub_available);
	if (pr->has_user_props) {
		cur = pr->user_props;
		while ((rc = mqtt_user_prop_next(&cur, &k, &v)) > 0) {
			if (e_pid(e, where, MQTT_PROP_USER)) {
				e_str(e, k);
				e_str(e, v);
			}
		}
		if (rc < 0)
			e_fail(e, -EINVAL);
	}
}

/* Length of the property block of pr for where (0 on a packet error, see e->err). */
static size_t props_len(struct enc *e, unsigned int where, const struct mqtt_props *pr)
{
	struct gw_writer cnt;
	struct enc ce = { .w = &cnt };

	gw_writer_init(&cnt, NULL, 0);
	e_props_body(&ce, where, pr);
	if (ce.err)
		e_fail(e, ce.err);
	return cnt.len;
}

/* A property length and the properties. */
static void e_props(struct enc *e, unsigned int where, const struct mqtt_props *pr)
{
	size_t n = props_len(e, where, pr);

	if (n > MQTT_MAX_REMAINING) {
		e_fail(e, -EMSGSIZE);
		return;
	}
	gw_wr_varint(e->w, (uint32_t)n);
	e_props_body(e, where, pr);
}

static void e_connect(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	const struct mqtt_connect *c = &p->connect;
	uint8_t flags = 0;

	if (version == MQTT_V31)
		e_str(e, GW_SLICE_STR("MQIsdp"));
	else
		e_str(e, GW_SLICE_STR("MQTT"));
	gw_wr_u8(e->w, version);
	if (c->clean_start)
		flags |= 0x02;
	if (c->has_will) {
		if (c->will.qos > 2)
			e_fail(e, -EINVAL);
		flags |= 0x04 | (uint8_t)((c->will.qos & 3) << 3);
		if (c->will.retain)
			flags |= 0x20;
	}
	if (c->has_password)
		flags |= 0x40;
	if (c->has_username)
		flags |= 0x80;
	if (version < MQTT_V5 && c->has_password && !c->has_username) /* [MQTT-3.1.2-22] */
		e_fail(e, -EINVAL);
	gw_wr_u8(e->w, flags);
	gw_wr_u16be(e->w, c->keep_alive);
	if (version == MQTT_V5)
		e_props(e, IN(CONNECT), &p->props);
	e_str(e, c->client_id);
	if (c->has_will) {
		if (version == MQTT_V5)
			e_props(e, IN_WILL, &c->will.props);
		e_str(e, c->will.topic);
		e_str(e, c->will.payload);
	}
	if (c->has_username)
		e_str(e, c->username);
	if (c->has_password)
		e_str(e, c->password);
}

static void e_connack(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	uint8_t rc = p->connack.reason_code;

	/* 3.1 has no Session Present flag: the byte is reserved there. */
	gw_wr_u8(e->w, p->connack.session_present && version != MQTT_V31 ? 1 : 0);
	if (version < MQTT_V5) {
		gw_wr_u8(e->w, rc >= 0x80 ? mqtt_connack_rc_v3(rc) : rc);
		if (rc > MQTT_CONNACK_NOT_AUTHORIZED && rc < 0x80)
			e_fail(e, -EINVAL);
		return;
	}
	if (!rc_valid(MQTT_CONNACK, rc))
		e_fail(e, -EINVAL);
	gw_wr_u8(e->w, rc);
	e_props(e, IN(CONNACK), &p->props);
}

static void e_publish(struct enc *e, uint8_t version, const struct mqtt_pkt *p, bool payload)
{
	const struct mqtt_publish *pub = &p->publish;

	e_str(e, pub->topic);
	if (pub->qos) {
		if (p->packet_id == 0)
			e_fail(e, -EINVAL);
		gw_wr_u16be(e->w, p->packet_id);
	}
	if (version == MQTT_V5)
		e_props(e, IN(PUBLISH), &p->props);
	/* An empty topic stands for a Topic Alias, which only 5.0 has. */
	if (pub->topic.len == 0 && (version != MQTT_V5 || !p->props.has_topic_alias))
		e_fail(e, -EINVAL);
	if (payload)
		gw_wr_bytes(e->w, pub->payload.p, pub->payload.len);
}

/*
 * The tail of PUBACK..PUBCOMP, DISCONNECT and AUTH in 5.0: the reason code
 * and properties, each left out when it can be (code 0, no properties).
 */
static void e_reason_props(struct enc *e, const struct mqtt_pkt *p, uint8_t rc)
{
	unsigned int where = 1u << p->type;
	size_t n = props_len(e, where, &p->props);

	if (!rc_valid(p->type, rc))
		e_fail(e, -EINVAL);
	if (rc == 0 && n == 0)
		return;
	gw_wr_u8(e->w, rc);
	if (n)
		e_props(e, where, &p->props);
}

static void e_subscribe(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	const struct mqtt_subscribe *s = &p->subscribe;
	bool unsub = p->type == MQTT_UNSUBSCRIBE;
	size_t i;

	if (p->packet_id == 0)
		e_fail(e, -EINVAL);
	gw_wr_u16be(e->w, p->packet_id);
	if (version == MQTT_V5)
		e_props(e, 1u << p->type, &p->props);
	if (!s->list) {
		if (s->entries.len == 0) /* [MQTT-3.8.3-3] */
			e_fail(e, -EINVAL);
		gw_wr_bytes(e->w, s->entries.p, s->entries.len);
		return;
	}
	if (s->count == 0)
		e_fail(e, -EINVAL);
	for (i = 0; i < s->count; i++) {
		const struct mqtt_sub_entry *se = &s->list[i];
		uint8_t opt = se->qos;

		e_str(e, se->filter);
		if (unsub)
			continue;
		if (se->qos > 2 || se->retain_handling > 2)
			e_fail(e, -EINVAL);
		if (version == MQTT_V5)
			opt |= (se->no_local ? 0x04 : 0) | (se->retain_as_published ? 0x08 : 0) |
			       (uint8_t)((se->retain_handling & 3) << 4);
		gw_wr_u8(e->w, opt & 0x3f);
	}
}

static void e_suback(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	struct gw_slice codes = p->suback.codes;
	size_t i;

	if (p->packet_id == 0)
		e_fail(e, -EINVAL);
	gw_wr_u16be(e->w, p->packet_id);
	if (p->type == MQTT_UNSUBACK && version < MQTT_V5)
		return;
	if (version == MQTT_V5)
		e_props(e, 1u << p->type, &p->props);
	if (codes.len == 0)
		e_fail(e, -EINVAL);
	for (i = 0; i < codes.len; i++) {
		uint8_t c = codes.p[i];

		if (version == MQTT_V5) {
			if (!rc_valid(p->type, c))
				e_fail(e, -EINVAL);
		} else if (c >= 0x80) {
			c = MQTT_SUBACK_FAILURE;
		} else if (c > 2) {
			e_fail(e, -EINVAL);
		}
		gw_wr_u8(e->w, c);
	}
}

/* The variable header and payload of p (payload left out for the fan-out header). */
static void e_body(struct enc *e, uint8_t version, const struct mqtt_pkt *p, bool payload)
{
	switch (p->type) {
	case MQTT_CONNECT:
		e_connect(e, version, p);
		break;
	case MQTT_CONNACK:
		e_connack(e, version, p);
		break;
	case MQTT_PUBLISH:
		e_publish(e, version, p, payload);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		if (p->packet_id == 0)
			e_fail(e, -EINVAL);
		gw_wr_u16be(e->w, p->packet_id);
		if (version == MQTT_V5)
			e_reason_props(e, p, p->ack.reason_code);
		break;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		e_subscribe(e, version, p);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		e_suback(e, version, p);
		break;
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		break;
	case MQTT_DISCONNECT:
		if (version == MQTT_V5)
			e_reason_props(e, p, p->disconnect.reason_code);
		break;
	case MQTT_AUTH:
		if (version != MQTT_V5)
			e_fail(e, -EINVAL);
		else
			e_reason_props(e, p, p->auth.reason_code);
		break;
	default:
		e_fail(e, -EINVAL);
		break;
	}
}

static uint8_t first_byte(const struct mqtt_pkt *p)
{
	const struct mqtt_publish *pub = &p->publish;
	uint8_t b = (uint8_t)(p->type << 4);

	switch (p->type) {
	case MQTT_PUBLISH:
		b |= (uint8_t)((pub->qos & 3) << MQTT_PUB_QOS_SHIFT);
		if (pub->dup)
			b |= MQTT_PUB_DUP;
		if (pub->retain)
			b |= MQTT_PUB_RETAIN;
		break;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		b |= 0x02; /* [MQTT-2.1.3-1] */
		break;
	}
	return b;
}

/*
 * Encodes p into w; returns the packet problem (-EINVAL / -EMSGSIZE) if any,
 * else 0 with w's own state telling whether it fitted. When header_only, the
 * PUBLISH payload is counted in the Remaining Length but not written.
 */
static int encode(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p, bool header_only)
{
	struct gw_writer cnt;
	struct enc ce = { .w = &cnt }, e = { .w = w };
	uint64_t body;

	if (version < MQTT_V31 || version > MQTT_V5)
		return -EINVAL;
	if (p->type == MQTT_PUBLISH) {
		if (p->publish.qos > 2 || (p->publish.dup && p->publish.qos == 0))
			return -EINVAL; /* [MQTT-3.3.1-4], [MQTT-3.3.1-2] */
	}
	gw_writer_init(&cnt, NULL, 0);
	e_body(&ce, version, p, !header_only);
	if (ce.err)
		return ce.err;
	body = cnt.len;
	if (header_only)
		body += p->publish.payload.len;
	if (body > MQTT_MAX_REMAINING)
		return -EMSGSIZE;
	gw_wr_u8(w, first_byte(p));
	gw_wr_varint(w, (uint32_t)body);
	e_body(&e, version, p, !header_only);
	return e.err;
}

int mqtt_encode(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p)
{
	int rc = encode(w, version, p, false);

	return rc ? rc : w->err;
}

int mqtt_encode_publish_header(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p)
{
	int rc;

	if (p->type != MQTT_PUBLISH)
		return -EINVAL;
	rc = encode(w, version, p, true);
	return rc ? rc : w->err;
}

size_t mqtt_encoded_size(uint8_t version, const struct mqtt_pkt *p)
{
	struct gw_writer cnt;

	gw_writer_init(&cnt, NULL, 0);
	if (encode(&cnt, version, p, false))
		return 0;
	return cnt.len;
}
