/*
 * test_mqttsn_codec.c - golden bytes for every MQTT-SN v1.2 message (spec
 * section 5.4 formats), both Length forms, the Forwarder Encapsulation (5.5)
 * and the malformed inputs the decoder must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/mqttsn/mqttsn_codec.h"

#define S(str) GW_SLICE_STR(str)
#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

struct golden {
	const char *name;
	const uint8_t *wire;
	size_t len;
	struct mqttsn_msg msg;
};

#define G(n, m, ...)                     \
	{                                \
		n, BYTES(__VA_ARGS__), m \
	}

/* Decodes wire, compares with want, re-encodes and compares the bytes. */
static void check_golden(const struct golden *g)
{
	struct mqttsn_msg got;
	uint8_t buf[512];
	struct gw_writer w;

	print_message("golden %s\n", g->name);
	assert_int_equal(mqttsn_decode(g->wire, g->len, &got), (int)g->len);
	assert_true(mqttsn_msg_equal(&got, &g->msg));
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqttsn_encode(&w, &g->msg), (int)g->len);
	assert_memory_equal(buf, g->wire, g->len);
}

static void test_golden_all_types(void **state)
{
	const struct golden table[] = {
		/* 5.4.2 ADVERTISE: GwId 1, Duration 900 s. */
		G("ADVERTISE",
		  ((struct mqttsn_msg){ .type = MQTTSN_ADVERTISE, .advertise = { 1, 900 } }), 0x05,
		  0x00, 0x01, 0x03, 0x84),
		/* 5.4.3 SEARCHGW: Radius 1. */
		G("SEARCHGW", ((struct mqttsn_msg){ .type = MQTTSN_SEARCHGW, .searchgw = { 1 } }),
		  0x03, 0x01, 0x01),
		/* 5.4.4 GWINFO from a gateway (no GwAdd) and relayed by a client. */
		G("GWINFO", ((struct mqttsn_msg){ .type = MQTTSN_GWINFO, .gwinfo = { 7, { 0 } } }),
		  0x03, 0x02, 0x07),
		G("GWINFO+addr",
		  ((struct mqttsn_msg){ .type = MQTTSN_GWINFO,
					.gwinfo = { 7, S("\xc0\xa8\x01\x01") } }),
		  0x07, 0x02, 0x07, 0xc0, 0xa8, 0x01, 0x01),
		/* 5.4.5 CONNECT: CleanSession, ProtocolId 1, Duration 60, "client1". */
		G("CONNECT",
		  ((struct mqttsn_msg){ .type = MQTTSN_CONNECT,
					.flags = { .clean_session = true },
					.connect = { 1, 60, S("client1") } }),
		  0x0d, 0x04, 0x04, 0x01, 0x00, 0x3c, 'c', 'l', 'i', 'e', 'n', 't', '1'),
		G("CONNECT+will",
		  ((struct mqttsn_msg){ .type = MQTTSN_CONNECT,
					.flags = { .will = true, .clean_session = true },
					.connect = { 1, 0xffff, S("c") } }),
		  0x07, 0x04, 0x0c, 0x01, 0xff, 0xff, 'c'),
		/* 5.4.6 CONNACK. */
		G("CONNACK",
		  ((struct mqttsn_msg){ .type = MQTTSN_CONNACK, .resp = { MQTTSN_RC_CONGESTION } }),
		  0x03, 0x05, 0x01),
		/* 5.4.7 WILLTOPICREQ. */
		G("WILLTOPICREQ", ((struct mqttsn_msg){ .type = MQTTSN_WILLTOPICREQ }), 0x02, 0x06),
		/* 5.4.8 WILLTOPIC: QoS 1, Retain, "will/t"; and the empty form. */
		G("WILLTOPIC",
		  ((struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC,
					.flags = { .qos = 1, .retain = true },
					.willtopic = { S("will/t") } }),
		  0x09, 0x07, 0x30, 'w', 'i', 'l', 'l', '/', 't'),
		G("WILLTOPIC-empty", ((struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC }), 0x02, 0x07),
		/* 5.4.9 WILLMSGREQ. */
		G("WILLMSGREQ", ((struct mqttsn_msg){ .type = MQTTSN_WILLMSGREQ }), 0x02, 0x08),
		/* 5.4.10 WILLMSG; an empty will message is allowed. */
		G("WILLMSG",
		  ((struct mqttsn_msg){ .type = MQTTSN_WILLMSG, .willmsg = { S("bye") } }), 0x05,
		  0x09, 'b', 'y', 'e'),
		G("WILLMSG-empty", ((struct mqttsn_msg){ .type = MQTTSN_WILLMSG }), 0x02, 0x09),
		/* 5.4.11 REGISTER from a client (TopicId 0) and from the gateway. */
		G("REGISTER",
		  ((struct mqttsn_msg){ .type = MQTTSN_REGISTER, .reg = { 0, 1, S("a/b") } }), 0x09,
		  0x0a, 0x00, 0x00, 0x00, 0x01, 'a', '/', 'b'),
		G("REGISTER-gw",
		  ((struct mqttsn_msg){ .type = MQTTSN_REGISTER,
					.reg = { 0x1234, 0xbeef, S("x") } }),
		  0x07, 0x0a, 0x12, 0x34, 0xbe, 0xef, 'x'),
		/* 5.4.12 REGACK. */
		G("REGACK",
		  ((struct mqttsn_msg){ .type = MQTTSN_REGACK,
					.ack = { 5, 1, MQTTSN_RC_ACCEPTED } }),
		  0x07, 0x0b, 0x00, 0x05, 0x00, 0x01, 0x00),
		/* 5.4.13 PUBLISH: QoS 1 on a normal id; DUP QoS 2 retained on a predefined id. */
		G("PUBLISH",
		  ((struct mqttsn_msg){ .type = MQTTSN_PUBLISH,
					.flags = { .qos = 1 },
					.publish = { 5, 0x0102, S("hi") } }),
		  0x09, 0x0c, 0x20, 0x00, 0x05, 0x01, 0x02, 'h', 'i'),
		G("PUBLISH-predef",
		  ((struct mqttsn_msg){
			  .type = MQTTSN_PUBLISH,
			  .flags = { .dup = true, .qos = 2, .retain = true, .topic_type = 1 },
			  .publish = { 1, 7, { 0 } } }),
		  0x07, 0x0c, 0xd1, 0x00, 0x01, 0x00, 0x07),
		/* QoS -1 (0b11) with the short topic name "ab" (6.8, 5.3.11). */
		G("PUBLISH-qos-1-short",
		  ((struct mqttsn_msg){ .type = MQTTSN_PUBLISH,
					.flags = { .qos = -1, .topic_type = MQTTSN_TOPIC_SHORT },
					.publish = { 0x6162, 0, S("x") } }),
		  0x08, 0x0c, 0x62, 'a', 'b', 0x00, 0x00, 'x'),
		/* 5.4.14 PUBACK with "invalid topic id". */
		G("PUBACK",
		  ((struct mqttsn_msg){ .type = MQTTSN_PUBACK,
					.ack = { 5, 0x0102, MQTTSN_RC_INVALID_TOPIC_ID } }),
		  0x07, 0x0d, 0x00, 0x05, 0x01, 0x02, 0x02),
		/* 5.4.15 PUBREC, PUBREL, PUBCOMP. */
		G("PUBCOMP", ((struct mqttsn_msg){ .type = MQTTSN_PUBCOMP, .msgid = { 0x0102 } }),
		  0x04, 0x0e, 0x01, 0x02),
		G("PUBREC", ((struct mqttsn_msg){ .type = MQTTSN_PUBREC, .msgid = { 0x0102 } }),
		  0x04, 0x0f, 0x01, 0x02),
		G("PUBREL", ((struct mqttsn_msg){ .type = MQTTSN_PUBREL, .msgid = { 0x0102 } }),
		  0x04, 0x10, 0x01, 0x02),
		/* 5.4.16 SUBSCRIBE by name, by predefined id, by short name. */
		G("SUBSCRIBE",
		  ((struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
					.flags = { .qos = 1 },
					.sub = { 3, 0, S("a/#") } }),
		  0x08, 0x12, 0x20, 0x00, 0x03, 'a', '/', '#'),
		G("SUBSCRIBE-predef",
		  ((struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
					.flags = { .dup = true, .topic_type = 1 },
					.sub = { 4, 1, { 0 } } }),
		  0x07, 0x12, 0x81, 0x00, 0x04, 0x00, 0x01),
		G("SUBSCRIBE-short",
		  ((struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
					.flags = { .qos = 2, .topic_type = 2 },
					.sub = { 5, 0x6162, { 0 } } }),
		  0x07, 0x12, 0x42, 0x00, 0x05, 'a', 'b'),
		/* 5.4.17 SUBACK: granted QoS 1, TopicId 0 for a wildcard. */
		G("SUBACK",
		  ((struct mqttsn_msg){ .type = MQTTSN_SUBACK,
					.flags = { .qos = 1 },
					.ack = { 0, 3, MQTTSN_RC_ACCEPTED } }),
		  0x08, 0x13, 0x20, 0x00, 0x00, 0x00, 0x03, 0x00),
		/* 5.4.18 UNSUBSCRIBE by name and by predefined id. */
		G("UNSUBSCRIBE",
		  ((struct mqttsn_msg){ .type = MQTTSN_UNSUBSCRIBE, .sub = { 6, 0, S("a/#") } }),
		  0x08, 0x14, 0x00, 0x00, 0x06, 'a', '/', '#'),
		G("UNSUBSCRIBE-predef",
		  ((struct mqttsn_msg){ .type = MQTTSN_UNSUBSCRIBE,
					.flags = { .topic_type = 1 },
					.sub = { 6, 9, { 0 } } }),
		  0x07, 0x14, 0x01, 0x00, 0x06, 0x00, 0x09),
		/* 5.4.19 UNSUBACK. */
		G("UNSUBACK", ((struct mqttsn_msg){ .type = MQTTSN_UNSUBACK, .msgid = { 6 } }),
		  0x04, 0x15, 0x00, 0x06),
		/* 5.4.20 PINGREQ, plain and from a waking client. */
		G("PINGREQ", ((struct mqttsn_msg){ .type = MQTTSN_PINGREQ }), 0x02, 0x16),
		G("PINGREQ+id",
		  ((struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { S("client1") } }),
		  0x09, 0x16, 'c', 'l', 'i', 'e', 'n', 't', '1'),
		/* 5.4.21 PINGRESP. */
		G("PINGRESP", ((struct mqttsn_msg){ .type = MQTTSN_PINGRESP }), 0x02, 0x17),
		/* 5.4.22 DISCONNECT, plain and going to sleep for 60 s. */
		G("DISCONNECT", ((struct mqttsn_msg){ .type = MQTTSN_DISCONNECT }), 0x02, 0x18),
		G("DISCONNECT+sleep",
		  ((struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 60 } }),
		  0x04, 0x18, 0x00, 0x3c),
		/* 5.4.23 WILLTOPICUPD, and its empty form. */
		G("WILLTOPICUPD",
		  ((struct mqttsn_msg){ .type = MQTTSN_WILLTOPICUPD,
					.flags = { .qos = 2 },
					.willtopic = { S("w") } }),
		  0x04, 0x1a, 0x40, 'w'),
		G("WILLTOPICUPD-empty", ((struct mqttsn_msg){ .type = MQTTSN_WILLTOPICUPD }), 0x02,
		  0x1a),
		/* 5.4.25 WILLTOPICRESP, 5.4.24 WILLMSGUPD, 5.4.26 WILLMSGRESP. */
		G("WILLTOPICRESP",
		  ((struct mqttsn_msg){ .type = MQTTSN_WILLTOPICRESP,
					.resp = { MQTTSN_RC_NOT_SUPPORTED } }),
		  0x03, 0x1b, 0x03),
		G("WILLMSGUPD",
		  ((struct mqttsn_msg){ .type = MQTTSN_WILLMSGUPD, .willmsg = { S("off") } }), 0x05,
		  0x1c, 'o', 'f', 'f'),
		G("WILLMSGRESP",
		  ((struct mqttsn_msg){ .type = MQTTSN_WILLMSGRESP,
					.resp = { MQTTSN_RC_ACCEPTED } }),
		  0x03, 0x1d, 0x00),
		/* 5.5 Forwarder Encapsulation: radius 1, node id aa bb, then a PINGREQ. */
		G("ENCAP-PINGREQ",
		  ((struct mqttsn_msg){ .type = MQTTSN_PINGREQ,
					.encapsulated = true,
					.encap = { 0x01, S("\xaa\xbb") } }),
		  0x05, 0xfe, 0x01, 0xaa, 0xbb, 0x02, 0x16),
		/* ... and a CONNECT from a node with an 8-octet (e.g. ZigBee) address. */
		G("ENCAP-CONNECT",
		  ((struct mqttsn_msg){ .type = MQTTSN_CONNECT,
					.flags = { .clean_session = true },
					.encapsulated = true,
					.encap = { 0x00, S("\x00\x13\xa2\x00\x40\x0a\x0b\x0c") },
					.connect = { 1, 10, S("n") } }),
		  0x0b, 0xfe, 0x00, 0x00, 0x13, 0xa2, 0x00, 0x40, 0x0a, 0x0b, 0x0c, 0x07, 0x04,
		  0x04, 0x01, 0x00, 0x0a, 'n'),
	};
	size_t i;
	bool seen[256] = { false };

	(void)state;
	for (i = 0; i < GW_ARRAY_SIZE(table); i++) {
		check_golden(&table[i]);
		seen[table[i].msg.type] = true;
	}
	/* Every type the spec defines has at least one golden vector. */
	for (i = 0; i < __MQTTSN_TYPE_MAX; i++)
		if (strcmp(mqttsn_type_name((uint8_t)i), "RESERVED"))
			assert_true(seen[i]);
}

/* A PUBLISH of 2 + 5 + n octets, n payload bytes of 'p'. */
static size_t make_publish(uint8_t *buf, size_t n, bool long_form)
{
	size_t off = 0, total = (long_form ? 4 : 2) + 5 + n;

	if (long_form) {
		buf[off++] = 0x01;
		buf[off++] = (uint8_t)(total >> 8);
		buf[off++] = (uint8_t)total;
	} else {
		buf[off++] = (uint8_t)total;
	}
	buf[off++] = MQTTSN_PUBLISH;
	buf[off++] = 0x20; /* QoS 1, normal topic id */
	buf[off++] = 0x00;
	buf[off++] = 0x05;
	buf[off++] = 0xab;
	buf[off++] = 0xcd;
	memset(buf + off, 'p', n);
	return off + n;
}

static void roundtrip_publish(size_t n, bool long_form)
{
	static uint8_t wire[70000], out[70000];
	struct mqttsn_msg m;
	struct gw_writer w;
	size_t len = make_publish(wire, n, long_form);

	assert_int_equal(mqttsn_decode(wire, len, &m), (int)len);
	assert_int_equal(m.type, MQTTSN_PUBLISH);
	assert_int_equal(m.flags.qos, 1);
	assert_int_equal(m.publish.topic_id, 5);
	assert_int_equal(m.publish.msg_id, 0xabcd);
	assert_int_equal(m.publish.data.len, n);
	assert_ptr_equal(m.publish.data.p, wire + len - n); /* zero copy */
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqttsn_encode(&w, &m), (int)len);
	assert_memory_equal(out, wire, len);
}

static void test_length_forms(void **state)
{
	static uint8_t wire[70000];
	struct mqttsn_msg m;
	size_t len;

	(void)state;
	/* 255 octets is the largest 1-octet Length; 256 needs 0x01 + 16 bits (5.2.1). */
	roundtrip_publish(248, false); /* 255 */
	roundtrip_publish(249, true);  /* 258: 256 does not fit one octet */
	roundtrip_publish(300, true);
	roundtrip_publish(MQTTSN_MAX_LEN - 9, true); /* 65535, the largest */
	/* The long form for a short message decodes too (the encoder would shorten it). */
	len = make_publish(wire, 3, true);
	assert_int_equal(mqttsn_decode(wire, len, &m), (int)len);
	assert_int_equal(m.publish.data.len, 3);
	/* A long-form Length off by one either way, or below its own 4 octets. */
	wire[2]++;
	assert_int_equal(mqttsn_decode(wire, len, &m), -EBADMSG);
	wire[2] -= 2;
	assert_int_equal(mqttsn_decode(wire, len, &m), -EBADMSG);
	assert_int_equal(mqttsn_decode(BYTES(0x01, 0x00, 0x03, 0x16), &m), -EBADMSG);
	assert_int_equal(mqttsn_decode(BYTES(0x01, 0x00, 0x04, 0x16), &m), 4);
	assert_int_equal(m.type, MQTTSN_PINGREQ);
	assert_int_equal(mqttsn_decode(BYTES(0x01, 0x00), &m), -EBADMSG);
	assert_int_equal(mqttsn_decode(BYTES(0x01, 0x00, 0x04), &m), -EBADMSG);
}

struct bad {
	const char *name;
	const uint8_t *wire;
	size_t len;
	int err;
};

#define B(n, e, ...)                     \
	{                                \
		n, BYTES(__VA_ARGS__), e \
	}

static void test_malformed(void **state)
{
	const struct bad table[] = {
		/* Too short for a header, or a Length that cannot be (5.2.1). */
		B("one octet", -EBADMSG, 0x02),
		B("length 0", -EBADMSG, 0x00, 0x16),
		B("length 1 is the long-form marker", -EBADMSG, 0x01, 0x16),
		/* Length not matching the datagram. */
		B("length > datagram", -EBADMSG, 0x04, 0x05, 0x00),
		B("length < datagram", -EBADMSG, 0x03, 0x05, 0x00, 0x00),
		B("length 2 on 3", -EBADMSG, 0x02, 0x16, 0x00),
		/* Fixed-size messages with a field missing or an octet too many. */
		B("ADVERTISE short", -EBADMSG, 0x04, 0x00, 0x01, 0x03),
		B("SEARCHGW empty", -EBADMSG, 0x02, 0x01),
		B("SEARCHGW long", -EBADMSG, 0x04, 0x01, 0x01, 0x01),
		B("GWINFO empty", -EBADMSG, 0x02, 0x02),
		B("CONNECT no client id", -EBADMSG, 0x06, 0x04, 0x04, 0x01, 0x00, 0x3c),
		B("CONNECT short", -EBADMSG, 0x05, 0x04, 0x04, 0x01, 0x00),
		B("CONNACK empty", -EBADMSG, 0x02, 0x05),
		B("CONNACK long", -EBADMSG, 0x04, 0x05, 0x00, 0x00),
		B("WILLTOPICREQ long", -EBADMSG, 0x03, 0x06, 0x00),
		B("WILLTOPIC flags no topic", -EBADMSG, 0x03, 0x07, 0x20),
		B("WILLMSGREQ long", -EBADMSG, 0x03, 0x08, 0x00),
		B("REGISTER no name", -EBADMSG, 0x06, 0x0a, 0x00, 0x00, 0x00, 0x01),
		B("REGISTER short", -EBADMSG, 0x05, 0x0a, 0x00, 0x00, 0x00),
		B("REGACK short", -EBADMSG, 0x06, 0x0b, 0x00, 0x05, 0x00, 0x01),
		B("REGACK long", -EBADMSG, 0x08, 0x0b, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00),
		B("PUBLISH short", -EBADMSG, 0x06, 0x0c, 0x20, 0x00, 0x05, 0x00),
		B("PUBACK short", -EBADMSG, 0x06, 0x0d, 0x00, 0x05, 0x00, 0x01),
		B("PUBCOMP short", -EBADMSG, 0x03, 0x0e, 0x00),
		B("PUBREC long", -EBADMSG, 0x05, 0x0f, 0x00, 0x01, 0x00),
		B("PUBREL empty", -EBADMSG, 0x02, 0x10),
		B("SUBSCRIBE no topic", -EBADMSG, 0x05, 0x12, 0x20, 0x00, 0x03),
		B("SUBSCRIBE predef 3 octets", -EBADMSG, 0x08, 0x12, 0x01, 0x00, 0x03, 0x00, 0x01,
		  0x02),
		B("SUBSCRIBE short 1 octet", -EBADMSG, 0x06, 0x12, 0x02, 0x00, 0x03, 'a'),
		B("SUBSCRIBE short 3 octets", -EBADMSG, 0x08, 0x12, 0x02, 0x00, 0x03, 'a', 'b',
		  'c'),
		B("SUBACK short", -EBADMSG, 0x07, 0x13, 0x20, 0x00, 0x00, 0x00, 0x03),
		B("UNSUBSCRIBE no topic", -EBADMSG, 0x05, 0x14, 0x00, 0x00, 0x06),
		B("UNSUBSCRIBE predef 1 octet", -EBADMSG, 0x06, 0x14, 0x01, 0x00, 0x06, 0x00),
		B("UNSUBACK short", -EBADMSG, 0x03, 0x15, 0x00),
		B("PINGRESP long", -EBADMSG, 0x03, 0x17, 0x00),
		B("DISCONNECT 1-octet duration", -EBADMSG, 0x03, 0x18, 0x00),
		B("DISCONNECT 3-octet duration", -EBADMSG, 0x05, 0x18, 0x00, 0x00, 0x3c),
		B("WILLTOPICUPD flags no topic", -EBADMSG, 0x03, 0x1a, 0x00),
		B("WILLTOPICRESP empty", -EBADMSG, 0x02, 0x1b),
		B("WILLMSGRESP long", -EBADMSG, 0x04, 0x1d, 0x00, 0x00),
		/* Reserved message types (5.2.2). */
		B("type 0x03", -EPROTO, 0x02, 0x03),
		B("type 0x11", -EPROTO, 0x02, 0x11),
		B("type 0x19", -EPROTO, 0x02, 0x19),
		B("type 0x1e", -EPROTO, 0x02, 0x1e),
		B("type 0xfd", -EPROTO, 0x02, 0xfd),
		B("type 0xff", -EPROTO, 0x02, 0xff),
		/* Reserved return codes (5.3.10). */
		B("CONNACK rc 4", -EPROTO, 0x03, 0x05, 0x04),
		B("REGACK rc 0xff", -EPROTO, 0x07, 0x0b, 0x00, 0x05, 0x00, 0x01, 0xff),
		B("PUBACK rc 4", -EPROTO, 0x07, 0x0d, 0x00, 0x05, 0x00, 0x01, 0x04),
		B("SUBACK rc 4", -EPROTO, 0x08, 0x13, 0x20, 0x00, 0x00, 0x00, 0x03, 0x04),
		B("WILLTOPICRESP rc 9", -EPROTO, 0x03, 0x1b, 0x09),
		B("WILLMSGRESP rc 4", -EPROTO, 0x03, 0x1d, 0x04),
		/* The reserved topic id type 0b11 (5.3.4). */
		B("PUBLISH topic type 3", -EPROTO, 0x08, 0x0c, 0x03, 0x00, 0x05, 0x00, 0x01, 'x'),
		B("SUBSCRIBE topic type 3", -EPROTO, 0x07, 0x12, 0x23, 0x00, 0x03, 0x00, 0x01),
		B("UNSUBSCRIBE topic type 3", -EPROTO, 0x07, 0x14, 0x03, 0x00, 0x03, 0x00, 0x01),
		/* QoS -1 where only PUBLISH may carry it (6.8). */
		B("SUBSCRIBE QoS -1", -EPROTO, 0x08, 0x12, 0x60, 0x00, 0x03, 'a', '/', '#'),
		B("WILLTOPIC QoS -1", -EPROTO, 0x04, 0x07, 0x60, 'w'),
		B("WILLTOPICUPD QoS -1", -EPROTO, 0x04, 0x1a, 0x70, 'w'),
		/* Forwarder Encapsulation (5.5). */
		B("ENCAP no ctrl", -EBADMSG, 0x02, 0xfe, 0x02, 0x16),
		B("ENCAP header past datagram", -EBADMSG, 0x09, 0xfe, 0x00, 0xaa),
		B("ENCAP no inner", -EBADMSG, 0x04, 0xfe, 0x00, 0xaa),
		B("ENCAP inner 1 octet", -EBADMSG, 0x04, 0xfe, 0x00, 0xaa, 0x02),
		B("ENCAP inner length mismatch", -EBADMSG, 0x04, 0xfe, 0x00, 0xaa, 0x03, 0x16),
		B("ENCAP inner malformed", -EBADMSG, 0x04, 0xfe, 0x00, 0xaa, 0x03, 0x05),
		B("ENCAP nested", -EPROTO, 0x03, 0xfe, 0x00, 0x03, 0xfe, 0x00, 0x02, 0x16),
		B("ENCAP inner reserved", -EPROTO, 0x03, 0xfe, 0x00, 0x02, 0x03),
	};
	struct mqttsn_msg m;
	size_t i;

	(void)state;
	assert_int_equal(mqttsn_decode(NULL, 0, &m), -EBADMSG);
	assert_int_equal(mqttsn_decode((const uint8_t *)"", 0, &m), -EBADMSG);
	for (i = 0; i < GW_ARRAY_SIZE(table); i++) {
		print_message("malformed %s\n", table[i].name);
		assert_int_equal(mqttsn_decode(table[i].wire, table[i].len, &m), table[i].err);
	}
}

static void test_truncated_golden(void **state)
{
	/* Any datagram cut short, or with an octet more, no longer matches its Length. */
	static const uint8_t wire[] = { 0x09, 0x0c, 0x20, 0x00, 0x05, 0x01, 0x02, 'h', 'i', 'z' };
	struct mqttsn_msg m;
	size_t n;

	(void)state;
	for (n = 0; n < sizeof(wire); n++)
		if (n != 9)
			assert_int_equal(mqttsn_decode(wire, n, &m), -EBADMSG);
	assert_int_equal(mqttsn_decode(wire, 9, &m), 9);
}

static void test_flags(void **state)
{
	struct mqttsn_flags f;
	unsigned int b;

	(void)state;
	for (b = 0; b < 256; b++)
		assert_int_equal(mqttsn_flags_pack(mqttsn_flags_unpack((uint8_t)b)), b);
	f = mqttsn_flags_unpack(0xff);
	assert_true(f.dup && f.retain && f.will && f.clean_session);
	assert_int_equal(f.qos, -1);
	assert_int_equal(f.topic_type, MQTTSN_TOPIC_RESERVED);
	f = mqttsn_flags_unpack(0x40);
	assert_int_equal(f.qos, 2);
	assert_false(f.dup || f.retain || f.will || f.clean_session);
	assert_int_equal(mqttsn_flags_pack((struct mqttsn_flags){ .qos = -1 }), 0x60);
	assert_int_equal(mqttsn_flags_pack((struct mqttsn_flags){ .will = true }), 0x08);
}

static void test_encode_errors(void **state)
{
	uint8_t buf[16];
	struct gw_writer w;
	struct mqttsn_msg m;
	static uint8_t big[MQTTSN_MAX_LEN];

	(void)state;
	/* No room: -EMSGSIZE, and len says what it would have needed. */
	m = (struct mqttsn_msg){ .type = MQTTSN_PUBLISH, .publish = { 1, 2, S("0123456789") } };
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqttsn_encode(&w, &m), -EMSGSIZE);
	assert_int_equal(w.len, 17);
	/* Beyond what a 16-bit Length can say. */
	m.publish.data = (struct gw_slice){ big, MQTTSN_MAX_LEN - 8 };
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqttsn_encode(&w, &m), -EMSGSIZE);
	/* Values the decoder would refuse are refused, and nothing is written. */
	m = (struct mqttsn_msg){ .type = MQTTSN_PUBLISH, .flags = { .topic_type = 3 } };
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	assert_int_equal(w.len, 0);
	m = (struct mqttsn_msg){ .type = MQTTSN_PUBLISH, .flags = { .qos = 3 } };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
				 .flags = { .qos = -1 },
				 .sub = { 1, 0, S("a") } };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE, .sub = { 1, 0, { 0 } } };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_CONNACK, .resp = { 4 } };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_CONNECT };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_REGISTER };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = 0x03 };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_ENCAPSULATED };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	m = (struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC,
				 .flags = { .qos = -1 },
				 .willtopic = { S("w") } };
	assert_int_equal(mqttsn_encode(&w, &m), -EINVAL);
	assert_int_equal(w.len, 0);
	assert_int_equal(w.err, 0);
}

static void test_encode_appends(void **state)
{
	uint8_t buf[32];
	struct gw_writer w;
	struct mqttsn_msg a = { .type = MQTTSN_PINGRESP };
	struct mqttsn_msg b = { .type = MQTTSN_CONNACK };

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqttsn_encode(&w, &a), 2);
	assert_int_equal(mqttsn_encode(&w, &b), 3);
	assert_int_equal(w.len, 5);
	assert_memory_equal(buf, ((const uint8_t[]){ 0x02, 0x17, 0x03, 0x05, 0x00 }), 5);
}

static void test_publish_hdr(void **state)
{
	static uint8_t full[400], hdr[16];
	struct mqttsn_msg m = { .type = MQTTSN_PUBLISH,
				.flags = { .qos = 2, .retain = true, .topic_type = 1 },
				.publish = { 7, 0x4242, { 0 } } };
	struct gw_writer w;
	static const uint8_t payload[300];
	size_t n;
	int full_len, hdr_len;

	(void)state;
	for (n = 0; n <= 300; n += 150) {
		m.publish.data = (struct gw_slice){ payload, n };
		gw_writer_init(&w, full, sizeof(full));
		full_len = mqttsn_encode(&w, &m);
		assert_true(full_len > 0);
		gw_writer_init(&w, hdr, sizeof(hdr));
		hdr_len = mqttsn_encode_publish_hdr(&w, m.flags, 7, 0x4242, n);
		assert_int_equal(hdr_len, n + 7 > 255 ? 9 : 7);
		assert_int_equal((size_t)full_len, (size_t)hdr_len + n);
		assert_memory_equal(full, hdr, (size_t)hdr_len);
	}
	gw_writer_init(&w, hdr, sizeof(hdr));
	assert_int_equal(
		mqttsn_encode_publish_hdr(&w, (struct mqttsn_flags){ .topic_type = 3 }, 1, 1, 0),
		-EINVAL);
	assert_int_equal(mqttsn_encode_publish_hdr(&w, m.flags, 1, 1, MQTTSN_MAX_LEN), -EMSGSIZE);
	gw_writer_init(&w, hdr, 4);
	assert_int_equal(mqttsn_encode_publish_hdr(&w, m.flags, 1, 1, 0), -EMSGSIZE);
}

static void test_encap_long_node_id(void **state)
{
	/* A forwarder header longer than 255 octets takes the 3-octet Length too. */
	static uint8_t node[300], buf[400];
	struct mqttsn_msg m = { .type = MQTTSN_PINGRESP,
				.encapsulated = true,
				.encap = { 0x02, { node, sizeof(node) } } };
	struct mqttsn_msg back;
	struct gw_writer w;
	int n;

	(void)state;
	memset(node, 0x5a, sizeof(node));
	gw_writer_init(&w, buf, sizeof(buf));
	n = mqttsn_encode(&w, &m);
	assert_int_equal(n, 4 + 1 + 300 + 2);
	assert_memory_equal(buf, ((const uint8_t[]){ 0x01, 0x01, 0x31, 0xfe, 0x02, 0x5a }), 6);
	assert_int_equal(mqttsn_decode(buf, (size_t)n, &back), n);
	assert_true(mqttsn_msg_equal(&m, &back));
}

static void test_helpers(void **state)
{
	char two[2];

	(void)state;
	assert_string_equal(mqttsn_type_name(MQTTSN_PUBLISH), "PUBLISH");
	assert_string_equal(mqttsn_type_name(MQTTSN_WILLMSGRESP), "WILLMSGRESP");
	assert_string_equal(mqttsn_type_name(MQTTSN_ENCAPSULATED), "ENCAPSULATED");
	assert_string_equal(mqttsn_type_name(0x03), "RESERVED");
	assert_string_equal(mqttsn_type_name(0x80), "RESERVED");
	assert_int_equal(mqttsn_short_id('a', 'b'), 0x6162);
	mqttsn_short_name(0x6162, two);
	assert_memory_equal(two, "ab", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_all_types),
		cmocka_unit_test(test_length_forms),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_truncated_golden),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_encode_appends),
		cmocka_unit_test(test_publish_hdr),
		cmocka_unit_test(test_encap_long_node_id),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
