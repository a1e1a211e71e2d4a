/*
 * mqttsn_codec.h - the MQTT-SN v1.2 wire format: a pure decoder and encoder.
 *
 * Every message of the MQTT-SN Protocol Specification v1.2 (section 5.4) and
 * the Forwarder Encapsulation (5.5). Pure: no allocation, no logging, no
 * clock, no I/O. Decoded variable-length fields are slices into the datagram
 * the caller passed in (zero copy): they are valid only as long as that
 * buffer is. Encoders write into a caller-supplied bounded writer.
 *
 * The codec checks structure (lengths, field sizes, reserved values); policy
 * (client id length, which topic id type may go with QoS -1, message id 0)
 * belongs to the gateway state machine.
 */
#ifndef FIELDMQ_MQTTSN_CODEC_H
#define FIELDMQ_MQTTSN_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/base/base.h"

/* Message types, with the values of spec table 3 (section 5.2.2). */
enum mqttsn_type {
	MQTTSN_ADVERTISE = 0x00,
	MQTTSN_SEARCHGW = 0x01,
	MQTTSN_GWINFO = 0x02,
	/* 0x03 reserved */
	MQTTSN_CONNECT = 0x04,
	MQTTSN_CONNACK = 0x05,
	MQTTSN_WILLTOPICREQ = 0x06,
	MQTTSN_WILLTOPIC = 0x07,
	MQTTSN_WILLMSGREQ = 0x08,
	MQTTSN_WILLMSG = 0x09,
	MQTTSN_REGISTER = 0x0a,
	MQTTSN_REGACK = 0x0b,
	MQTTSN_PUBLISH = 0x0c,
	MQTTSN_PUBACK = 0x0d,
	MQTTSN_PUBCOMP = 0x0e,
	MQTTSN_PUBREC = 0x0f,
	MQTTSN_PUBREL = 0x10,
	/* 0x11 reserved */
	MQTTSN_SUBSCRIBE = 0x12,
	MQTTSN_SUBACK = 0x13,
	MQTTSN_UNSUBSCRIBE = 0x14,
	MQTTSN_UNSUBACK = 0x15,
	MQTTSN_PINGREQ = 0x16,
	MQTTSN_PINGRESP = 0x17,
	MQTTSN_DISCONNECT = 0x18,
	/* 0x19 reserved */
	MQTTSN_WILLTOPICUPD = 0x1a,
	MQTTSN_WILLTOPICRESP = 0x1b,
	MQTTSN_WILLMSGUPD = 0x1c,
	MQTTSN_WILLMSGRESP = 0x1d,
	__MQTTSN_TYPE_MAX, /* 0x1e..0xfd reserved */
	/* The Forwarder Encapsulation (5.5); never the type of a decoded message. */
	MQTTSN_ENCAPSULATED = 0xfe,
};

/* Return codes (5.3.10); 0x04..0xff are reserved and rejected. */
enum mqttsn_rc {
	MQTTSN_RC_ACCEPTED = 0x00,
	MQTTSN_RC_CONGESTION = 0x01,
	MQTTSN_RC_INVALID_TOPIC_ID = 0x02,
	MQTTSN_RC_NOT_SUPPORTED = 0x03,
	__MQTTSN_RC_MAX,
};

/* The TopicIdType of the flags byte (5.3.4, bits 1-0). */
enum mqttsn_topic_type {
	MQTTSN_TOPIC_NORMAL = 0,     /* a registered topic id */
	MQTTSN_TOPIC_PREDEFINED = 1, /* an id agreed beforehand (config) */
	MQTTSN_TOPIC_SHORT = 2,	     /* a two-character topic name in the id field */
	MQTTSN_TOPIC_RESERVED = 3,   /* invalid */
};

/* CONNECT's ProtocolId (5.3.8): the only value v1.2 defines. */
#define MQTTSN_PROTOCOL_ID 0x01

/* Longest message the 3-octet length form can carry (5.2.1). */
#define MQTTSN_MAX_LEN 0xffff

/*
 * The flags byte (5.3.4), unpacked. Which members mean something depends on
 * the message; the decoder fills them all from the byte and the encoder packs
 * them all back, so a decode/encode round trip keeps the byte as it was.
 */
struct mqttsn_flags {
	bool dup;	    /* bit 7 */
	int8_t qos;	    /* bits 6-5: 0, 1, 2, or -1 for 0b11 */
	bool retain;	    /* bit 4 */
	bool will;	    /* bit 3 */
	bool clean_session; /* bit 2 */
	uint8_t topic_type; /* bits 1-0: enum mqttsn_topic_type */
};

/*
 * The Forwarder Encapsulation header (5.5). Ctrl carries the broadcast radius
 * in bits 1-0; bits 7-2 are reserved and kept as they came.
 */
struct mqttsn_encap {
	uint8_t ctrl;
	struct gw_slice node_id; /* the Wireless Node Id, opaque */
};

/*
 * One decoded message. type selects the member of the union that is valid;
 * flags is valid for the types that carry a flags byte (CONNECT, WILLTOPIC,
 * PUBLISH, SUBSCRIBE, SUBACK, UNSUBSCRIBE, WILLTOPICUPD) and zero otherwise.
 * When the datagram came through a forwarder, encapsulated is true, encap
 * holds the forwarder header and the rest describes the inner message.
 */
struct mqttsn_msg {
	uint8_t type; /* enum mqttsn_type */
	bool encapsulated;
	struct mqttsn_encap encap;
	struct mqttsn_flags flags;
	union {
		struct {
			uint8_t gw_id;
			uint16_t duration; /* seconds to the next ADVERTISE */
		} advertise;
		struct {
			uint8_t radius;
		} searchgw;
		struct {
			uint8_t gw_id;
			struct gw_slice gw_addr; /* empty when sent by a gateway */
		} gwinfo;
		struct {
			uint8_t protocol_id; /* MQTTSN_PROTOCOL_ID; checked by the gateway */
			uint16_t duration;   /* keepalive, seconds */
			struct gw_slice client_id;
		} connect;
		/* CONNACK, WILLTOPICRESP, WILLMSGRESP. */
		struct {
			uint8_t rc; /* enum mqttsn_rc */
		} resp;
		/* WILLTOPIC, WILLTOPICUPD: an empty topic is the 2-octet form that deletes the will. */
		struct {
			struct gw_slice topic;
		} willtopic;
		/* WILLMSG, WILLMSGUPD. */
		struct {
			struct gw_slice msg;
		} willmsg;
		struct {
			uint16_t topic_id; /* 0 from a client */
			uint16_t msg_id;
			struct gw_slice topic;
		} reg;
		/* REGACK, PUBACK, SUBACK. */
		struct {
			uint16_t topic_id;
			uint16_t msg_id;
			uint8_t rc; /* enum mqttsn_rc */
		} ack;
		struct {
			uint16_t
				topic_id; /* for MQTTSN_TOPIC_SHORT: the two characters, first in the high byte */
			uint16_t msg_id;
			struct gw_slice data;
		} publish;
		/* PUBREC, PUBREL, PUBCOMP, UNSUBACK. */
		struct {
			uint16_t msg_id;
		} msgid;
		/*
		 * SUBSCRIBE, UNSUBSCRIBE: a topic name (filter) for
		 * MQTTSN_TOPIC_NORMAL, else topic_id (predefined, or the two
		 * characters of a short name as in publish).
		 */
		struct {
			uint16_t msg_id;
			uint16_t topic_id;
			struct gw_slice topic;
		} sub;
		struct {
			struct gw_slice client_id; /* empty: an ordinary PINGREQ */
		} pingreq;
		struct {
			bool has_duration; /* a sleeping client's DISCONNECT */
			uint16_t duration; /* seconds */
		} disconnect;
	};
};

/*
 * Decodes one datagram of len bytes at buf into *out (zeroed first).
 * The Length field must cover the datagram exactly (5.2.1); for a Forwarder
 * Encapsulation it covers the forwarder header and the rest of the datagram
 * is the inner message, decoded into the same *out (encapsulated = true).
 * Slices in *out point into buf.
 *
 * Returns the bytes consumed (always len) on success, or
 *   -EBADMSG  malformed: shorter than its fixed fields, Length not matching
 *             len, a field of the wrong size, an empty topic or client id;
 *   -EPROTO   a reserved message type, return code or topic id type, QoS -1
 *             where it cannot be (SUBSCRIBE, WILLTOPIC, WILLTOPICUPD), or an
 *             encapsulation inside an encapsulation.
 * buf may be NULL only when len is 0 (-EBADMSG).
 */
int mqttsn_decode(const uint8_t *buf, size_t len, struct mqttsn_msg *out);

/*
 * Appends the encoding of *m to w, with the 1-octet Length form when the
 * message fits in 255 octets and the 3-octet form otherwise (5.2.1); with the
 * forwarder header first when m->encapsulated.
 *
 * Returns the bytes appended (> 0), or
 *   -EINVAL   m cannot be encoded: an unknown type, a reserved topic id type
 *             or QoS value, a return code out of range;
 *   -EMSGSIZE the message exceeds MQTTSN_MAX_LEN, or w has no room (w->err
 *             is then set and w->len counts what would have been needed).
 * On -EINVAL nothing is written.
 */
int mqttsn_encode(struct gw_writer *w, const struct mqttsn_msg *m);

/*
 * Appends only the Length, MsgType, Flags, TopicId and MsgId of a PUBLISH
 * whose Data is payload_len bytes long, so the caller can send header and
 * payload as two buffers without copying the payload (not encapsulated).
 * Returns the header bytes appended (7 or 9), -EINVAL for bad flags, or
 * -EMSGSIZE as mqttsn_encode().
 */
int mqttsn_encode_publish_hdr(struct gw_writer *w, struct mqttsn_flags flags, uint16_t topic_id,
			      uint16_t msg_id, size_t payload_len);

/* The flags byte of f (bits outside the fields stay 0); QoS -1 packs as 0b11. */
uint8_t mqttsn_flags_pack(struct mqttsn_flags f);

/* The flags byte unpacked; never fails, validation is per message. */
struct mqttsn_flags mqttsn_flags_unpack(uint8_t b);

/*
 * True when a and b describe the same message: the same type, the fields of
 * that type equal and slices equal by content. For tests and fuzzing.
 */
bool mqttsn_msg_equal(const struct mqttsn_msg *a, const struct mqttsn_msg *b);

/* The spec's name of a message type ("PUBLISH"), or "RESERVED". Never NULL. */
const char *mqttsn_type_name(uint8_t type);

/* The topic id that carries the short topic name of two characters c0 c1 (5.3.11). */
static inline uint16_t mqttsn_short_id(uint8_t c0, uint8_t c1)
{
	return (uint16_t)(c0 << 8 | c1);
}

/* The two characters of a short topic name held in id, written to out[0..1]. */
static inline void mqttsn_short_name(uint16_t id, char out[2])
{
	out[0] = (char)(id >> 8);
	out[1] = (char)(id & 0xff);
}

#endif
