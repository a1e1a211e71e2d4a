/*
 * mqtt_codec.h - the pure MQTT codec: 3.1 ("MQIsdp", level 3), 3.1.1 (level 4)
 * and 5.0 (level 5).
 *
 * Bytes in, structs out: no allocation, no logging, no clock, no I/O, no
 * globals. Every string, payload and property value a decoder returns is a
 * struct gw_slice pointing into the caller's input buffer, so the decoded
 * packet is valid only as long as that buffer is. Encoders write into a
 * caller-supplied struct gw_writer and never allocate either.
 *
 * Return convention of the decoders: bytes consumed (> 0), 0 when more input
 * is needed, or a negative errno:
 *   -EBADMSG  malformed packet                    (out->reason = 0x81)
 *   -EPROTO   protocol error or a rejected value  (out->reason = 0x82 or a more
 *             specific code: 0x84, 0x85, 0x90, 0x94 ...)
 *   -EMSGSIZE packet larger than lim->max_packet_size (out->reason = 0x95)
 * The MQTT 5 reason code is data in the output struct so the broker can send
 * DISCONNECT (5.0) or CONNACK with the right code; mqtt_connack_rc_v3() maps
 * it for 3.1 / 3.1.1 clients.
 */
#ifndef FIELDMQ_MQTT_CODEC_H
#define FIELDMQ_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/base/base.h"

/* Protocol levels as they appear in CONNECT. */
enum mqtt_version {
	MQTT_V31 = 3,  /* "MQIsdp" */
	MQTT_V311 = 4, /* "MQTT" */
	MQTT_V5 = 5,   /* "MQTT" */
};

/* Control packet types: the high nibble of the first byte. */
enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15, /* 5.0 only */
	__MQTT_TYPE_MAX,
};

/* PUBLISH fixed-header flags. */
#define MQTT_PUB_RETAIN 0x01
#define MQTT_PUB_QOS_SHIFT 1
#define MQTT_PUB_QOS_MASK 0x06
#define MQTT_PUB_DUP 0x08

/* Largest Remaining Length a varint can carry, and the largest packet. */
#define MQTT_MAX_REMAINING 268435455u
#define MQTT_MAX_PACKET (MQTT_MAX_REMAINING + 5u)
/* Room for the largest fixed header (type byte + 4-byte varint). */
#define MQTT_FIXED_HEADER_MAX 5

/* MQTT 5.0 reason codes (2.4); 3.1.1 return codes are the small values. */
enum mqtt_reason {
	MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTH = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPL_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_INVALID = 0x85,
	MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8a,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8b,
	MQTT_RC_BAD_AUTH_METHOD = 0x8c,
	MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8d,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8e,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8f,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMIN_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9a,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9b,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9c,
	MQTT_RC_SERVER_MOVED = 0x9d,
	MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9e,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9f,
	MQTT_RC_MAX_CONNECT_TIME = 0xa0,
	MQTT_RC_SUB_ID_NOT_SUPPORTED = 0xa1,
	MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xa2,
};

/* 3.1 / 3.1.1 CONNACK return codes (3.2.2.3). */
enum mqtt_connack_v3 {
	MQTT_CONNACK_ACCEPTED = 0,
	MQTT_CONNACK_BAD_VERSION = 1,
	MQTT_CONNACK_ID_REJECTED = 2,
	MQTT_CONNACK_SERVER_UNAVAILABLE = 3,
	MQTT_CONNACK_BAD_USER_OR_PASSWORD = 4,
	MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

/* SUBACK return code for a refused subscription in 3.1.1. */
#define MQTT_SUBACK_FAILURE 0x80

/* MQTT 5.0 property identifiers (2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUB_ID = 0x0b,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1a,
	MQTT_PROP_SERVER_REFERENCE = 0x1c,
	MQTT_PROP_REASON_STRING = 0x1f,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAX_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER = 0x26,
	MQTT_PROP_MAX_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2a,
	__MQTT_PROP_MAX,
};

/* Subscription identifiers kept by the decoder for one PUBLISH. */
#define MQTT_MAX_SUB_IDS 8
/* Largest Subscription Identifier (a varint). */
#define MQTT_MAX_SUB_ID MQTT_MAX_REMAINING

/*
 * MQTT 5.0 properties of one packet (or of a will). A value is meaningful
 * only when its has_ flag is set; an empty string with has_ set is a present,
 * empty property. Slices point into the decoded buffer (or, for encoding, into
 * whatever the caller keeps alive until the encode call returns).
 *
 * Decoding fills only the properties the packet type allows: any other one is
 * a protocol error, as is a repeated property other than User Property and
 * (in PUBLISH) Subscription Identifier. Encoding returns -EINVAL for a
 * property the packet type does not allow.
 */
struct mqtt_props {
	bool has_payload_format;
	bool has_message_expiry;
	bool has_content_type;
	bool has_response_topic;
	bool has_correlation_data;
	bool has_session_expiry;
	bool has_assigned_client_id;
	bool has_server_keep_alive;
	bool has_auth_method;
	bool has_auth_data;
	bool has_request_problem_info;
	bool has_will_delay;
	bool has_request_response_info;
	bool has_response_info;
	bool has_server_reference;
	bool has_reason_string;
	bool has_receive_maximum;
	bool has_topic_alias_max;
	bool has_topic_alias;
	bool has_max_qos;
	bool has_retain_available;
	bool has_user_props;
	bool has_max_packet_size;
	bool has_wildcard_sub_available;
	bool has_sub_id_available;
	bool has_shared_sub_available;

	uint8_t payload_format; /* 0 bytes, 1 UTF-8 */
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
	uint16_t server_keep_alive;
	uint16_t receive_maximum;
	uint16_t topic_alias_max;
	uint16_t topic_alias;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t max_packet_size;

	struct gw_slice content_type;
	struct gw_slice response_topic;
	struct gw_slice correlation_data;
	struct gw_slice assigned_client_id;
	struct gw_slice auth_method;
	struct gw_slice auth_data;
	struct gw_slice response_info;
	struct gw_slice server_reference;
	struct gw_slice reason_string;

	/*
	 * User properties: a raw property block (the encoded bytes between the
	 * property length and the end of the properties) walked with
	 * mqtt_user_prop_next(), which skips every other property. After a
	 * decode it is the packet's whole property block; to encode, build one
	 * with mqtt_user_prop_write() or pass a decoded block on (only its user
	 * properties are written, in order).
	 */
	struct gw_slice user_props;

	/*
	 * Subscription Identifiers (1..268435455). A decode stores the first
	 * MQTT_MAX_SUB_IDS in sub_id[] and sets sub_id_overflow if a PUBLISH
	 * carried more. To encode a PUBLISH matching many subscriptions, point
	 * sub_id_ext at an array of sub_id_ext_count ids: when non-NULL it is
	 * written instead of sub_id[].
	 */
	uint8_t sub_id_count;
	bool sub_id_overflow;
	uint32_t sub_id[MQTT_MAX_SUB_IDS];
	const uint32_t *sub_id_ext;
	size_t sub_id_ext_count;
};

struct mqtt_will {
	uint8_t qos;
	bool retain;
	struct gw_slice topic;
	struct gw_slice payload;
	struct mqtt_props props; /* 5.0 will properties */
};

struct mqtt_connect {
	/* Decode only: "MQTT" or "MQIsdp"; the encoder derives it from version. */
	struct gw_slice protocol_name;
	bool clean_start; /* Clean Session in 3.1.1 */
	bool has_will;
	bool has_username;
	bool has_password;
	uint16_t keep_alive;
	struct gw_slice client_id;
	struct gw_slice username;
	struct gw_slice password;
	struct mqtt_will will;
};

struct mqtt_connack {
	bool session_present;
	/* 5.0 reason code, or for 3.1 / 3.1.1 the return code (enum mqtt_connack_v3). */
	uint8_t reason_code;
};

struct mqtt_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	/* Zero length in 5.0 only when props.has_topic_alias: look the alias up. */
	struct gw_slice topic;
	struct gw_slice payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP: the packet id is mqtt_pkt.packet_id. */
struct mqtt_ack {
	uint8_t reason_code; /* 5.0; 0 when omitted and always 0 before 5.0 */
};

/* One SUBSCRIBE or UNSUBSCRIBE entry (options are zero for UNSUBSCRIBE). */
struct mqtt_sub_entry {
	struct gw_slice filter;
	uint8_t qos;		  /* requested maximum QoS */
	bool no_local;		  /* 5.0 */
	bool retain_as_published; /* 5.0 */
	uint8_t retain_handling;  /* 5.0: 0 send, 1 send if new, 2 do not send */
};

/* SUBSCRIBE and UNSUBSCRIBE. */
struct mqtt_subscribe {
	/*
	 * Decode: the raw payload (all entries, already fully validated) and
	 * how many entries it holds; walk it with mqtt_sub_iter_init() and
	 * mqtt_sub_next().
	 * Encode: when list is non-NULL, its count entries are written;
	 * otherwise the raw entries slice is copied as it is (it must be in
	 * the target version's layout).
	 */
	struct gw_slice entries;
	size_t count;
	const struct mqtt_sub_entry *list;
};

/* SUBACK and UNSUBACK: one reason (return) code byte per filter. */
struct mqtt_suback {
	/*
	 * For a 3.1.1 UNSUBACK this is empty. Encoding a 3.1 / 3.1.1 SUBACK
	 * writes any code >= 0x80 as 0x80 (Failure), so the broker may pass 5.0
	 * codes to every client.
	 */
	struct gw_slice codes;
};

struct mqtt_disconnect {
	uint8_t reason_code; /* 5.0; 0 when omitted */
};

struct mqtt_auth {
	uint8_t reason_code; /* 0x00, 0x18 or 0x19; 0 when omitted */
};

/*
 * One decoded (or to-be-encoded) control packet. Which union member is valid
 * depends on type: connect, connack, publish, ack (PUBACK..PUBCOMP),
 * subscribe (SUBSCRIBE, UNSUBSCRIBE), suback (SUBACK, UNSUBACK), disconnect,
 * auth; PINGREQ and PINGRESP have none.
 */
struct mqtt_pkt {
	uint8_t type;  /* enum mqtt_type */
	uint8_t flags; /* the low nibble of the first byte */
	/*
	 * 3, 4 or 5. On decode: the session's version, except for CONNECT,
	 * where it is the packet's own protocol level, set as soon as the
	 * name and level are recognised (so also on later errors); 0 when they
	 * are not (reason 0x84: answer with a 3.1.1 CONNACK 0x01). Not used by
	 * the encoders (they take it as a parameter).
	 */
	uint8_t version;
	/* On a decode error: the MQTT 5 reason code to report; else 0. */
	uint8_t reason;
	/* PUBLISH with QoS > 0, PUBACK..PUBCOMP, SUBSCRIBE..UNSUBACK. */
	uint16_t packet_id;
	/* Total size on the wire (fixed header included); set by mqtt_decode. */
	uint32_t size;
	struct mqtt_props props; /* 5.0 only; all has_ flags false before 5.0 */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack;
		struct mqtt_subscribe subscribe;
		struct mqtt_suback suback;
		struct mqtt_disconnect disconnect;
		struct mqtt_auth auth;
	};
};

/*
 * Limits the decoder enforces. A NULL limits pointer means: no packet size
 * limit beyond the protocol's, any Topic Alias 1..65535, no direction checks.
 */
struct mqtt_limits {
	/* Largest whole packet accepted (fixed header included); 0 = protocol max. */
	uint32_t max_packet_size;
	/*
	 * Highest Topic Alias accepted in a PUBLISH (what we sent as Topic
	 * Alias Maximum); 0 = topic aliases are refused (0x94).
	 */
	uint16_t max_topic_alias;
	/*
	 * The packets come from a client (we are the server): a PUBLISH with
	 * a Subscription Identifier is then a protocol error [MQTT-3.3.4-6],
	 * and so are the packets only a server sends (CONNACK, SUBACK,
	 * UNSUBACK, PINGRESP).
	 */
	bool from_client;
};

/* ------------------------------------------------------------ decoding */

/*
 * Frames one packet from a stream. buf/len: bytes received so far.
 * Returns the whole packet's size (> 0) when buf holds all of it, 0 when more
 * is needed, -EBADMSG when the Remaining Length is malformed (more than 4
 * bytes, or not minimally encoded [MQTT-1.5.5-1]).
 * As soon as the fixed header is complete (even when 0 is returned because the
 * body is missing), *type_flags, *remaining and *hdr_len are set, so the
 * caller can refuse a packet over its maximum before buffering the body;
 * otherwise *hdr_len is 0. Any output pointer may be NULL.
 */
int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *type_flags, uint32_t *remaining,
		      size_t *hdr_len);

/*
 * Decodes the one packet at the start of buf (len may hold more after it).
 * Every check the specification puts on the receiver is made here, including
 * each SUBSCRIBE / UNSUBSCRIBE entry: a filter that breaks the wildcard or
 * shared-subscription syntax rejects the whole packet (-EPROTO, reason 0x8f),
 * as Mosquitto does, so an accepted packet holds only valid filters.
 * version: the session's protocol level (3, 4 or 5); ignored for CONNECT,
 * which carries its own. lim: may be NULL (see struct mqtt_limits).
 * Returns the bytes consumed (> 0), 0 when buf does not yet hold the whole
 * packet, or -EBADMSG / -EPROTO / -EMSGSIZE (see the top of this file) with
 * out->reason set; -EINVAL for a bad version argument. On error out->type,
 * out->version and the fields decoded so far are set, the rest are zero.
 * out is always overwritten; its slices point into buf.
 */
int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, const struct mqtt_limits *lim,
		struct mqtt_pkt *out);

/* Iterator over the entries of a decoded SUBSCRIBE or UNSUBSCRIBE. */
struct mqtt_sub_iter {
	struct gw_reader r;
	uint8_t version;
	bool unsubscribe;
};

/* Starts iterating p->subscribe.entries (p decoded as SUBSCRIBE / UNSUBSCRIBE). */
void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_pkt *p);

/*
 * Next entry into *out: returns 1 with *out set, 0 at the end, -EBADMSG if the
 * entries are malformed (never after a successful mqtt_decode, which checks
 * them all). out->filter points into the decoded buffer.
 */
int mqtt_sub_next(struct mqtt_sub_iter *it, struct mqtt_sub_entry *out);

/*
 * Next User Property of a property block. cursor: initialised to
 * props.user_props and advanced by each call. Returns 1 with *key and *val
 * set (slices into the block), 0 at the end, -EBADMSG if the block is
 * malformed (never for a block from a successful decode).
 */
int mqtt_user_prop_next(struct gw_slice *cursor, struct gw_slice *key, struct gw_slice *val);

/*
 * Appends one User Property (0x26, key, value) to a property block being
 * built in w, for use as props.user_props. Errors are w's (sticky -EMSGSIZE,
 * also for a string over 65535 bytes).
 */
void mqtt_user_prop_write(struct gw_writer *w, struct gw_slice key, struct gw_slice val);

/* ------------------------------------------------------------ encoding */

/*
 * Encodes p (type p->type) for protocol level version (3, 4 or 5) at w's
 * current position. 5.0-only content (properties, reason codes, AUTH) is
 * dropped or refused for older versions: properties are ignored, AUTH is
 * -EINVAL. p->flags is ignored: the fixed-header flags come from the fields.
 * Returns 0, -EMSGSIZE when w is too small (w->len then tells the size
 * needed from the writer's start; nothing useful was written) or when a
 * string/packet exceeds a protocol limit, -EINVAL when p is not encodable
 * (bad type or QoS, packet id 0 where one is needed, a property not allowed
 * in this packet type).
 */
int mqtt_encode(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p);

/*
 * PUBLISH fan-out fast path: writes only the fixed header and the variable
 * header (topic, packet id, properties) of the PUBLISH p, with a Remaining
 * Length that counts p->publish.payload.len payload bytes the caller sends
 * next (e.g. with writev from a shared buffer). Same returns as mqtt_encode.
 */
int mqtt_encode_publish_header(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p);

/* Size mqtt_encode() would write for p, or 0 if p is not encodable. */
size_t mqtt_encoded_size(uint8_t version, const struct mqtt_pkt *p);

/* ------------------------------------------------------------- helpers */

/*
 * Well-formed UTF-8 without U+0000 and without surrogates [MQTT-1.5.4-1],
 * [MQTT-1.5.4-2]; control characters and non-characters are accepted.
 */
bool mqtt_utf8_valid(struct gw_slice s);

/* A PUBLISH topic name: 1..65535 bytes of valid UTF-8, no '+' or '#' [MQTT-3.3.2-2]. */
bool mqtt_topic_valid(struct gw_slice topic);

/*
 * A SUBSCRIBE / UNSUBSCRIBE topic filter: 1..65535 bytes of valid UTF-8, '#'
 * only as the whole last level, '+' only as a whole level [MQTT-4.7.1-1],
 * [MQTT-4.7.1-2]; "$share/{group}/{filter}" needs a non-empty group without
 * '/', '+' or '#' and a valid filter after it [MQTT-4.8.2-1], [MQTT-4.8.2-2].
 */
bool mqtt_filter_valid(struct gw_slice filter);

/*
 * Splits a valid shared subscription "$share/{group}/{filter}". Returns true
 * and sets *group and *rest (either may be NULL) when filter is one, false
 * otherwise (outputs untouched).
 */
bool mqtt_filter_shared(struct gw_slice filter, struct gw_slice *group, struct gw_slice *rest);

/*
 * The 3.1 / 3.1.1 CONNACK return code for a 5.0 reason code (e.g. 0x84 ->
 * 1, 0x85 -> 2, 0x86 -> 4, 0x87 -> 5, other failures -> 3 server unavailable).
 */
uint8_t mqtt_connack_rc_v3(uint8_t reason);

/* "CONNECT", "PUBLISH", ... or "?" for logs. */
const char *mqtt_type_name(uint8_t type);

#endif
