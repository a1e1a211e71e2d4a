/*
 * mqtt_codec.c - the pure MQTT 3.1 / 3.1.1 / 5.0 codec: what its decoder
 * (mqtt_decode_codec.c) and encoder (mqtt_encode_codec.c) share: which
 * property may appear in which packet, the reason codes each packet may
 * carry, packet names, the validators of UTF-8 text, topic names and filters
 * (the broker's one topic validator), and walking and writing user
 * properties. What crosses these files is in mqtt_codec_int.h.
 */
#include <errno.h>
#include <string.h>

#include "broker/mqtt_codec.h"
#include "broker/mqtt_codec_int.h"

/* --------------------------------------------------------------- tables */

const struct mqtt__prop_def mqtt__prop_info[__MQTT_PROP_MAX] = {
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
bool mqtt__rc_valid(uint8_t type, uint8_t rc)
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

/* "$share/{group}/{filter}" syntax; the caller checked mqtt__is_share(). */
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
	if (mqtt__is_share(filter)) {
		if (!share_split(filter, &group, &rest))
			return false;
		return levels_valid(rest.p, rest.len);
	}
	return levels_valid(filter.p, filter.len);
}

bool mqtt_filter_shared(struct gw_slice filter, struct gw_slice *group, struct gw_slice *rest)
{
	struct gw_slice g, r;

	if (!mqtt__is_share(filter) || !mqtt_filter_valid(filter) || !share_split(filter, &g, &r))
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
		mqtt__rd_varint(r, &v);
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
		if (mqtt__rd_varint(&r, &id) || id >= __MQTT_PROP_MAX)
			return -EBADMSG;
		if (id == MQTT_PROP_USER) {
			if (gw_rd_bin16(&r, key) || gw_rd_bin16(&r, val))
				return -EBADMSG;
			cursor->p += r.off;
			cursor->len -= r.off;
			return 1;
		}
		skip_prop(&r, mqtt__prop_info[id].kind);
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
