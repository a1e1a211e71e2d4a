/*
 * test_mqtt_codec.c - the MQTT codec against golden bytes (most of them
 * captured from Mosquitto 2.0.11 clients and broker, in 3.1, 3.1.1 and 5.0),
 * every malformed / protocol-error case the codec checks (one cmocka test
 * each, named after the case), the encoders and the helpers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/mqtt_codec.h"

#define SEQ(slice, str) assert_true(gw_slice_eq_cstr((slice), (str)))
#define S(str) GW_SLICE_STR(str)

/*
 * Decodes b as one packet of version ver, checks it is consumed whole, that
 * every strict prefix asks for more, and (when exact) that encoding the
 * result gives b back byte for byte.
 */
static void decode_ok(const uint8_t *b, size_t n, uint8_t ver, struct mqtt_pkt *p, bool exact)
{
	struct mqtt_pkt q;
	struct gw_writer w;
	uint8_t out[512];
	size_t i;

	assert_int_equal(mqtt_decode(b, n, ver, NULL, p), (int)n);
	assert_int_equal(p->reason, 0);
	assert_int_equal(p->size, n);
	for (i = 0; i < n; i++)
		assert_int_equal(mqtt_decode(b, i, ver, NULL, &q), 0);
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, p->version, p), 0);
	assert_int_equal(mqtt_encoded_size(p->version, p), w.len);
	if (exact) {
		assert_int_equal(w.len, n);
		assert_memory_equal(out, b, n);
	} else {
		/* Same content, maybe another property order: same length. */
		assert_int_equal(w.len, n);
		assert_int_equal(mqtt_decode(out, w.len, ver, NULL, &q), (int)n);
	}
}

/* Encodes p and compares with the golden bytes. */
static void encode_eq(uint8_t ver, const struct mqtt_pkt *p, const uint8_t *b, size_t n)
{
	struct gw_writer w;
	uint8_t out[512];

	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, ver, p), 0);
	assert_int_equal(w.len, n);
	assert_memory_equal(out, b, n);
	assert_int_equal(mqtt_encoded_size(ver, p), n);
}

/* ------------------------------------------------------- fixed header */

static void test_fixed_header(void **state)
{
	static const uint8_t pub[] = { 0x32, 0x0c, 0x00, 0x03, 'x', '/', 'y',
				       0x00, 0x01, 'v',	 '4',  'm', 's', 'g' };
	static const uint8_t big[] = { 0x30, 0x80, 0x80, 0x01 }; /* remaining 16384 */
	static const uint8_t five[] = { 0x30, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t nonmin[] = { 0x30, 0x80, 0x00 };
	static const uint8_t max[] = { 0x30, 0xff, 0xff, 0xff, 0x7f };
	uint32_t rem = 0;
	uint8_t tf = 0;
	size_t hl = 99;

	(void)state;
	assert_int_equal(mqtt_fixed_header(pub, 0, &tf, &rem, &hl), 0);
	assert_int_equal(hl, 0);
	assert_int_equal(mqtt_fixed_header(pub, 1, &tf, &rem, &hl), 0);
	assert_int_equal(hl, 0);
	/* Header complete, body missing: 0, but the length is known. */
	assert_int_equal(mqtt_fixed_header(pub, 2, &tf, &rem, &hl), 0);
	assert_int_equal(hl, 2);
	assert_int_equal(rem, 12);
	assert_int_equal(tf, 0x32);
	assert_int_equal(mqtt_fixed_header(pub, sizeof(pub), &tf, &rem, &hl), (int)sizeof(pub));
	assert_int_equal(mqtt_fixed_header(big, 3, &tf, &rem, &hl), 0);
	assert_int_equal(hl, 0);
	assert_int_equal(mqtt_fixed_header(big, 4, &tf, &rem, &hl), 0);
	assert_int_equal(hl, 4);
	assert_int_equal(rem, 16384);
	assert_int_equal(mqtt_fixed_header(max, sizeof(max), NULL, &rem, NULL), 0);
	assert_int_equal(rem, MQTT_MAX_REMAINING);
	assert_int_equal(mqtt_fixed_header(five, sizeof(five), &tf, &rem, &hl), -EBADMSG);
	assert_int_equal(mqtt_fixed_header(five, 5, &tf, &rem, &hl), -EBADMSG);
	assert_int_equal(mqtt_fixed_header(nonmin, sizeof(nonmin), &tf, &rem, &hl), -EBADMSG);
}

static void test_decode_stream(void **state)
{
	/* Two packets back to back: the first is decoded, its size returned. */
	static const uint8_t two[] = { 0xc0, 0x00, 0x40, 0x02, 0x00, 0x07 };
	static const uint8_t big[] = { 0x30, 0x80, 0x01 }; /* 128 bytes to come */
	struct mqtt_limits lim = { .max_packet_size = 100 };
	struct mqtt_pkt p;

	(void)state;
	assert_int_equal(mqtt_decode(two, sizeof(two), MQTT_V311, NULL, &p), 2);
	assert_int_equal(p.type, MQTT_PINGREQ);
	assert_int_equal(mqtt_decode(two + 2, sizeof(two) - 2, MQTT_V311, NULL, &p), 4);
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 7);
	/* Too large is known from the header alone, before the body arrives. */
	assert_int_equal(mqtt_decode(big, sizeof(big), MQTT_V5, &lim, &p), -EMSGSIZE);
	assert_int_equal(p.reason, MQTT_RC_PACKET_TOO_LARGE);
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_int_equal(mqtt_decode(big, sizeof(big), MQTT_V5, NULL, &p), 0);
	/* A bad session version is the caller's bug. */
	assert_int_equal(mqtt_decode(two, sizeof(two), 7, NULL, &p), -EINVAL);
}

/* ----------------------------------------------------- golden: 3.1.1 */

static void test_v311_connect_min(void **state)
{
	static const uint8_t b[] = { 0x10, 0x0e, 0x00, 0x04, 'M',  'Q',	 'T', 'T',
				     0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 'p', '6' };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(b, sizeof(b), MQTT_V5 /* ignored for CONNECT */, &p, true);
	assert_int_equal(p.type, MQTT_CONNECT);
	assert_int_equal(p.version, MQTT_V311);
	SEQ(p.connect.protocol_name, "MQTT");
	assert_true(p.connect.clean_start);
	assert_false(p.connect.has_will);
	assert_false(p.connect.has_username);
	assert_false(p.connect.has_password);
	assert_int_equal(p.connect.keep_alive, 60);
	SEQ(p.connect.client_id, "p6");
}

static void test_v311_connect_full(void **state)
{
	/* mosquitto_sub -V mqttv311 -u user -P pass --will-* (flags 0xf6). */
	static const uint8_t b[] = { 0x10, 0x22, 0x00, 0x04, 'M',  'Q', 'T',  'T',  0x04,
				     0xf6, 0x00, 0x3c, 0x00, 0x04, 's', 'u',  'b',  '4',
				     0x00, 0x01, 'w',  0x00, 0x01, 'p', 0x00, 0x04, 'u',
				     's',  'e',	 'r',  0x00, 0x04, 'p', 'a',  's',  's' };
	struct mqtt_pkt p, e;

	(void)state;
	decode_ok(b, sizeof(b), 0, &p, true);
	assert_int_equal(p.version, MQTT_V311);
	assert_true(p.connect.has_will);
	assert_int_equal(p.connect.will.qos, 2);
	assert_true(p.connect.will.retain);
	SEQ(p.connect.will.topic, "w");
	SEQ(p.connect.will.payload, "p");
	assert_true(p.connect.has_username);
	SEQ(p.connect.username, "user");
	assert_true(p.connect.has_password);
	SEQ(p.connect.password, "pass");
	SEQ(p.connect.client_id, "sub4");

	/* The same packet built from scratch. */
	memset(&e, 0, sizeof(e));
	e.type = MQTT_CONNECT;
	e.connect.clean_start = true;
	e.connect.keep_alive = 60;
	e.connect.client_id = S("sub4");
	e.connect.has_will = true;
	e.connect.will.qos = 2;
	e.connect.will.retain = true;
	e.connect.will.topic = S("w");
	e.connect.will.payload = S("p");
	e.connect.has_username = true;
	e.connect.username = S("user");
	e.connect.has_password = true;
	e.connect.password = S("pass");
	encode_eq(MQTT_V311, &e, b, sizeof(b));
}

static void test_v31_connect(void **state)
{
	static const uint8_t b[] = { 0x10, 0x12, 0x00, 0x06, 'M',  'Q',	 'I', 's', 'd', 'p',
				     0x03, 0x02, 0x00, 0x3c, 0x00, 0x04, 's', 'u', 'b', '3' };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(b, sizeof(b), 0, &p, true);
	assert_int_equal(p.version, MQTT_V31);
	SEQ(p.connect.protocol_name, "MQIsdp");
	SEQ(p.connect.client_id, "sub3");
}

static void test_v311_connack(void **state)
{
	static const uint8_t ok[] = { 0x20, 0x02, 0x00, 0x00 };
	static const uint8_t sp[] = { 0x20, 0x02, 0x01, 0x00 };
	static const uint8_t refused[] = { 0x20, 0x02, 0x00, 0x05 };
	static const uint8_t id_rejected[] = { 0x20, 0x02, 0x00, 0x02 };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(ok, sizeof(ok), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_false(p.connack.session_present);
	assert_int_equal(p.connack.reason_code, 0);
	decode_ok(sp, sizeof(sp), MQTT_V311, &p, true);
	assert_true(p.connack.session_present);
	decode_ok(refused, sizeof(refused), MQTT_V31, &p, true);
	assert_int_equal(p.connack.reason_code, MQTT_CONNACK_NOT_AUTHORIZED);
	/* A 5.0 reason code is mapped to the 3.1.1 return code when encoding. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.connack.reason_code = MQTT_RC_CLIENT_ID_INVALID;
	encode_eq(MQTT_V311, &p, id_rejected, sizeof(id_rejected));
	/* 3.1 has no Session Present flag. */
	p.connack.reason_code = 0;
	p.connack.session_present = true;
	encode_eq(MQTT_V311, &p, sp, sizeof(sp));
	encode_eq(MQTT_V31, &p, ok, sizeof(ok));
}

static void test_v311_publish(void **state)
{
	static const uint8_t q1[] = { 0x32, 0x0c, 0x00, 0x03, 'x', '/', 'y',
				      0x00, 0x01, 'v',	'4',  'm', 's', 'g' };
	static const uint8_t q2[] = { 0x34, 0x0b, 0x00, 0x03, 'x', '/', 'y',
				      0x00, 0x01, 'v',	'4',  'q', '2' };
	static const uint8_t q0_retain_empty[] = { 0x31, 0x05, 0x00, 0x03, 'a', '/', 'y' };
	static const uint8_t q2_dup[] = { 0x3c, 0x06, 0x00, 0x01, 'z', 0xff, 0xfe, 'v' };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(q1, sizeof(q1), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_int_equal(p.publish.qos, 1);
	assert_false(p.publish.retain);
	assert_false(p.publish.dup);
	assert_int_equal(p.packet_id, 1);
	SEQ(p.publish.topic, "x/y");
	SEQ(p.publish.payload, "v4msg");
	decode_ok(q2, sizeof(q2), MQTT_V311, &p, true);
	assert_int_equal(p.publish.qos, 2);
	decode_ok(q0_retain_empty, sizeof(q0_retain_empty), MQTT_V311, &p, true);
	assert_int_equal(p.publish.qos, 0);
	assert_true(p.publish.retain);
	assert_int_equal(p.publish.payload.len, 0);
	assert_int_equal(p.packet_id, 0);
	decode_ok(q2_dup, sizeof(q2_dup), MQTT_V31, &p, true);
	assert_true(p.publish.dup);
	assert_int_equal(p.packet_id, 0xfffe);
	/* Properties are a 5.0 thing: none are decoded before it. */
	assert_false(p.props.has_topic_alias);
}

static void test_v311_acks(void **state)
{
	static const uint8_t puback[] = { 0x40, 0x02, 0x00, 0x01 };
	static const uint8_t pubrec[] = { 0x50, 0x02, 0x00, 0x01 };
	static const uint8_t pubrel[] = { 0x62, 0x02, 0x00, 0x01 };
	static const uint8_t pubcomp[] = { 0x70, 0x02, 0x12, 0x34 };
	static const uint8_t pubrel_v31_dup[] = { 0x6a, 0x02, 0x00, 0x01 };
	struct mqtt_pkt p;
	uint8_t out[8];
	struct gw_writer w;

	(void)state;
	decode_ok(puback, sizeof(puback), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PUBACK);
	decode_ok(pubrec, sizeof(pubrec), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PUBREC);
	decode_ok(pubrel, sizeof(pubrel), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PUBREL);
	decode_ok(pubcomp, sizeof(pubcomp), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(p.packet_id, 0x1234);
	/* 3.1 clients set DUP on a retried PUBREL; it is accepted (and dropped). */
	assert_int_equal(mqtt_decode(pubrel_v31_dup, 4, MQTT_V31, NULL, &p), 4);
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, MQTT_V31, &p), 0);
	assert_memory_equal(out, pubrel, 4);
	/* A 5.0 reason code is not written for 3.1.1. */
	p.type = MQTT_PUBACK;
	p.packet_id = 1;
	p.ack.reason_code = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	encode_eq(MQTT_V311, &p, puback, sizeof(puback));
}

static void test_v311_subscribe(void **state)
{
	static const uint8_t b[] = { 0x82, 0x0e, 0x00, 0x0a, 0x00, 0x03, 'x', '/',
				     '#',  0x01, 0x00, 0x03, 'a',  '/',	 '+', 0x02 };
	static const uint8_t suback[] = { 0x90, 0x05, 0x00, 0x0a, 0x01, 0x02, 0x80 };
	static const uint8_t suback_in[] = { 0x01, 0x02, MQTT_RC_NOT_AUTHORIZED };
	struct mqtt_sub_entry list[2] = { { .filter = S("x/#"), .qos = 1, .no_local = true },
					  { .filter = S("a/+"), .qos = 2, .retain_handling = 2 } };
	struct mqtt_sub_entry e;
	struct mqtt_sub_iter it;
	struct mqtt_pkt p;

	(void)state;
	decode_ok(b, sizeof(b), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.packet_id, 10);
	assert_int_equal(p.subscribe.count, 2);
	mqtt_sub_iter_init(&it, &p);
	assert_int_equal(mqtt_sub_next(&it, &e), 1);
	SEQ(e.filter, "x/#");
	assert_int_equal(e.qos, 1);
	assert_int_equal(mqtt_sub_next(&it, &e), 1);
	SEQ(e.filter, "a/+");
	assert_int_equal(e.qos, 2);
	assert_int_equal(mqtt_sub_next(&it, &e), 0);
	assert_int_equal(mqtt_sub_next(&it, &e), 0);

	/* From a list: the 5.0-only options are not written for 3.1.1. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_SUBSCRIBE;
	p.packet_id = 10;
	p.subscribe.list = list;
	p.subscribe.count = 2;
	encode_eq(MQTT_V311, &p, b, sizeof(b));

	decode_ok(suback, sizeof(suback), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_SUBACK);
	assert_int_equal(p.suback.codes.len, 3);
	assert_int_equal(p.suback.codes.p[2], MQTT_SUBACK_FAILURE);
	/* 5.0 failure codes become 0x80 for 3.1.1. */
	p.suback.codes.p = suback_in;
	encode_eq(MQTT_V311, &p, suback, sizeof(suback));
}

static void test_v311_unsubscribe(void **state)
{
	static const uint8_t b[] = { 0xa2, 0x0c, 0x00, 0x02, 0x00, 0x03, 'f',
				     'o',  'o',	 0x00, 0x03, 'a',  '/',	 '#' };
	static const uint8_t unsuback[] = { 0xb0, 0x02, 0x00, 0x02 };
	struct mqtt_sub_entry e;
	struct mqtt_sub_iter it;
	struct mqtt_pkt p;

	(void)state;
	decode_ok(b, sizeof(b), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(p.subscribe.count, 2);
	mqtt_sub_iter_init(&it, &p);
	assert_int_equal(mqtt_sub_next(&it, &e), 1);
	SEQ(e.filter, "foo");
	assert_int_equal(mqtt_sub_next(&it, &e), 1);
	SEQ(e.filter, "a/#");
	assert_int_equal(mqtt_sub_next(&it, &e), 0);
	decode_ok(unsuback, sizeof(unsuback), MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_UNSUBACK);
	assert_int_equal(p.packet_id, 2);
	assert_int_equal(p.suback.codes.len, 0);
}

static void test_v311_ping_disconnect(void **state)
{
	static const uint8_t pingreq[] = { 0xc0, 0x00 };
	static const uint8_t pingresp[] = { 0xd0, 0x00 };
	static const uint8_t disconnect[] = { 0xe0, 0x00 };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(pingreq, 2, MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PINGREQ);
	decode_ok(pingresp, 2, MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_PINGRESP);
	decode_ok(disconnect, 2, MQTT_V311, &p, true);
	assert_int_equal(p.type, MQTT_DISCONNECT);
	/* A 5.0 reason code is not written for 3.1.1. */
	p.disconnect.reason_code = MQTT_RC_SERVER_SHUTTING_DOWN;
	encode_eq(MQTT_V311, &p, disconnect, 2);
}

/* -------------------------------------------------------- golden: 5.0 */

/* mosquitto_sub -V mqttv5 with connect and will properties (Mosquitto's order). */
static const uint8_t v5_connect_mosq[] = {
	0x10, 0x4a, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x0e, 0x00, 0x05, 0x19,
	0x26, 0x00, 0x02, 0x63, 0x6b, 0x00, 0x02, 0x63, 0x76, 0x21, 0x00, 0x14, 0x22,
	0x00, 0x05, 0x27, 0x00, 0x00, 0x27, 0x10, 0x11, 0x00, 0x00, 0x00, 0x3c, 0x00,
	0x04, 0x73, 0x75, 0x62, 0x35, 0x15, 0x03, 0x00, 0x04, 0x74, 0x65, 0x78, 0x74,
	0x18, 0x00, 0x00, 0x00, 0x05, 0x26, 0x00, 0x02, 0x77, 0x6b, 0x00, 0x02, 0x77,
	0x76, 0x00, 0x03, 0x77, 0x2f, 0x74, 0x00, 0x03, 0x62, 0x79, 0x65
};

/* The same packet in our encoder's property order (by identifier, user last). */
static const uint8_t v5_connect_ours[] = {
	0x10, 0x4a, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x0e, 0x00, 0x05, 0x19,
	0x11, 0x00, 0x00, 0x00, 0x3c, 0x21, 0x00, 0x14, 0x22, 0x00, 0x05, 0x27, 0x00,
	0x00, 0x27, 0x10, 0x26, 0x00, 0x02, 0x63, 0x6b, 0x00, 0x02, 0x63, 0x76, 0x00,
	0x04, 0x73, 0x75, 0x62, 0x35, 0x15, 0x03, 0x00, 0x04, 0x74, 0x65, 0x78, 0x74,
	0x18, 0x00, 0x00, 0x00, 0x05, 0x26, 0x00, 0x02, 0x77, 0x6b, 0x00, 0x02, 0x77,
	0x76, 0x00, 0x03, 0x77, 0x2f, 0x74, 0x00, 0x03, 0x62, 0x79, 0x65
};

static void check_v5_connect(const struct mqtt_pkt *p)
{
	const struct mqtt_connect *c = &p->connect;
	struct gw_slice cur, k, v;

	assert_int_equal(p->version, MQTT_V5);
	assert_true(c->clean_start);
	assert_int_equal(c->keep_alive, 5);
	SEQ(c->client_id, "sub5");
	assert_true(p->props.has_session_expiry);
	assert_int_equal(p->props.session_expiry, 60);
	assert_true(p->props.has_receive_maximum);
	assert_int_equal(p->props.receive_maximum, 20);
	assert_true(p->props.has_topic_alias_max);
	assert_int_equal(p->props.topic_alias_max, 5);
	assert_true(p->props.has_max_packet_size);
	assert_int_equal(p->props.max_packet_size, 10000);
	assert_false(p->props.has_auth_method);
	assert_true(p->props.has_user_props);
	cur = p->props.user_props;
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 1);
	SEQ(k, "ck");
	SEQ(v, "cv");
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 0);
	assert_true(c->has_will);
	assert_int_equal(c->will.qos, 1);
	assert_false(c->will.retain);
	SEQ(c->will.topic, "w/t");
	SEQ(c->will.payload, "bye");
	assert_true(c->will.props.has_content_type);
	SEQ(c->will.props.content_type, "text");
	assert_true(c->will.props.has_will_delay);
	assert_int_equal(c->will.props.will_delay, 5);
	cur = c->will.props.user_props;
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 1);
	SEQ(k, "wk");
	SEQ(v, "wv");
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 0);
}

static void test_v5_connect(void **state)
{
	uint8_t ubuf[32], wbuf[32];
	struct gw_writer uw, ww;
	struct mqtt_pkt p, e;

	(void)state;
	decode_ok(v5_connect_mosq, sizeof(v5_connect_mosq), 0, &p, false);
	check_v5_connect(&p);
	encode_eq(MQTT_V5, &p, v5_connect_ours, sizeof(v5_connect_ours));
	decode_ok(v5_connect_ours, sizeof(v5_connect_ours), 0, &p, true);
	check_v5_connect(&p);

	/* From scratch, user properties built with mqtt_user_prop_write(). */
	gw_writer_init(&uw, ubuf, sizeof(ubuf));
	mqtt_user_prop_write(&uw, S("ck"), S("cv"));
	gw_writer_init(&ww, wbuf, sizeof(wbuf));
	mqtt_user_prop_write(&ww, S("wk"), S("wv"));
	assert_int_equal(uw.err, 0);
	memset(&e, 0, sizeof(e));
	e.type = MQTT_CONNECT;
	e.connect.clean_start = true;
	e.connect.keep_alive = 5;
	e.connect.client_id = S("sub5");
	e.props.has_session_expiry = true;
	e.props.session_expiry = 60;
	e.props.has_receive_maximum = true;
	e.props.receive_maximum = 20;
	e.props.has_topic_alias_max = true;
	e.props.topic_alias_max = 5;
	e.props.has_max_packet_size = true;
	e.props.max_packet_size = 10000;
	e.props.has_user_props = true;
	e.props.user_props = (struct gw_slice){ ubuf, uw.len };
	e.connect.has_will = true;
	e.connect.will.qos = 1;
	e.connect.will.topic = S("w/t");
	e.connect.will.payload = S("bye");
	e.connect.will.props.has_content_type = true;
	e.connect.will.props.content_type = S("text");
	e.connect.will.props.has_will_delay = true;
	e.connect.will.props.will_delay = 5;
	e.connect.will.props.has_user_props = true;
	e.connect.will.props.user_props = (struct gw_slice){ wbuf, ww.len };
	encode_eq(MQTT_V5, &e, v5_connect_ours, sizeof(v5_connect_ours));
}

static void test_v5_connect_auth(void **state)
{
	/* Enhanced auth, password without user name (allowed in 5.0). */
	static const uint8_t b[] = { 0x10, 0x23, 0x00, 0x04, 'M',  'Q',	 'T',  'T',  0x05, 0x40,
				     0x00, 0x00, 0x11, 0x15, 0x00, 0x05, 'S',  'C',  'R',  'A',
				     'M',  0x16, 0x00, 0x02, 0x01, 0x02, 0x17, 0x00, 0x19, 0x01,
				     0x00, 0x00, 0x00, 0x03, 'p',  'w',	 0x00 };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(b, sizeof(b), 0, &p, true);
	assert_true(p.props.has_auth_method);
	SEQ(p.props.auth_method, "SCRAM");
	assert_true(p.props.has_auth_data);
	assert_int_equal(p.props.auth_data.len, 2);
	assert_true(p.props.has_request_problem_info);
	assert_int_equal(p.props.request_problem_info, 0);
	assert_true(p.props.has_request_response_info);
	assert_int_equal(p.props.request_response_info, 1);
	assert_int_equal(p.connect.client_id.len, 0);
	assert_false(p.connect.clean_start);
	assert_false(p.connect.has_username);
	assert_true(p.connect.has_password);
	assert_int_equal(p.connect.password.len, 3);
}

static void test_v5_connack(void **state)
{
	static const uint8_t mosq[] = { 0x20, 0x09, 0x00, 0x00, 0x06, 0x22,
					0x00, 0x0a, 0x21, 0x00, 0x14 };
	static const uint8_t ours[] = { 0x20, 0x09, 0x00, 0x00, 0x06, 0x21,
					0x00, 0x14, 0x22, 0x00, 0x0a };
	/* Every CONNACK property, session present, then a refusal. */
	static const uint8_t full[] = {
		0x20, 0x3a, 0x01, 0x00, 0x37, 0x11, 0x00, 0x00, 0x00, 0x78, 0x12, 0x00,
		0x02, 'i',  'd',  0x13, 0x00, 0x1e, 0x1a, 0x00, 0x02, 'r',  'i',  0x1c,
		0x00, 0x02, 's',  'r',	0x1f, 0x00, 0x02, 'o',	'k',  0x21, 0x00, 0x0a,
		0x22, 0x00, 0x05, 0x24, 0x01, 0x25, 0x00, 0x27, 0x00, 0x01, 0x00, 0x00,
		0x28, 0x00, 0x29, 0x01, 0x2a, 0x00, 0x26, 0x00, 0x01, 'a',  0x00, 0x00,
	};
	static const uint8_t refused[] = { 0x20, 0x03, 0x00, 0x87, 0x00 };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(mosq, sizeof(mosq), MQTT_V5, &p, false);
	assert_int_equal(p.props.topic_alias_max, 10);
	assert_int_equal(p.props.receive_maximum, 20);
	encode_eq(MQTT_V5, &p, ours, sizeof(ours));

	decode_ok(full, sizeof(full), MQTT_V5, &p, true);
	assert_true(p.connack.session_present);
	assert_int_equal(p.props.session_expiry, 120);
	SEQ(p.props.assigned_client_id, "id");
	assert_int_equal(p.props.server_keep_alive, 30);
	SEQ(p.props.response_info, "ri");
	SEQ(p.props.server_reference, "sr");
	SEQ(p.props.reason_string, "ok");
	assert_true(p.props.has_max_qos);
	assert_int_equal(p.props.max_qos, 1);
	assert_true(p.props.has_retain_available);
	assert_int_equal(p.props.retain_available, 0);
	assert_int_equal(p.props.max_packet_size, 65536);
	assert_true(p.props.has_wildcard_sub_available);
	assert_int_equal(p.props.wildcard_sub_available, 0);
	assert_int_equal(p.props.sub_id_available, 1);
	assert_true(p.props.has_shared_sub_available);
	assert_int_equal(p.props.shared_sub_available, 0);
	assert_true(p.props.has_user_props);

	decode_ok(refused, sizeof(refused), MQTT_V5, &p, true);
	assert_int_equal(p.connack.reason_code, MQTT_RC_NOT_AUTHORIZED);
}

static void test_v5_publish(void **state)
{
	/* Mosquitto's broker to the subscriber: all message properties + sub id 7. */
	static const uint8_t mosq[] = { 0x32, 0x37, 0x00, 0x03, 0x61, 0x2f, 0x78, 0x00, 0x01, 0x2a,
					0x0b, 0x07, 0x03, 0x00, 0x0a, 0x74, 0x65, 0x78, 0x74, 0x2f,
					0x70, 0x6c, 0x61, 0x69, 0x6e, 0x26, 0x00, 0x01, 0x61, 0x00,
					0x01, 0x62, 0x08, 0x00, 0x03, 0x72, 0x2f, 0x74, 0x09, 0x00,
					0x04, 0x31, 0x32, 0x33, 0x34, 0x01, 0x01, 0x02, 0x00, 0x00,
					0x00, 0x3c, 0x68, 0x65, 0x6c, 0x6c, 0x6f };
	static const uint8_t ours[] = { 0x32, 0x37, 0x00, 0x03, 0x61, 0x2f, 0x78, 0x00, 0x01, 0x2a,
					0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x3c, 0x03, 0x00, 0x0a,
					0x74, 0x65, 0x78, 0x74, 0x2f, 0x70, 0x6c, 0x61, 0x69, 0x6e,
					0x08, 0x00, 0x03, 0x72, 0x2f, 0x74, 0x09, 0x00, 0x04, 0x31,
					0x32, 0x33, 0x34, 0x0b, 0x07, 0x26, 0x00, 0x01, 0x61, 0x00,
					0x01, 0x62, 0x68, 0x65, 0x6c, 0x6c, 0x6f };
	/* mosquitto_pub -D publish topic-alias 1, and a user property at QoS 1. */
	static const uint8_t alias[] = { 0x30, 0x10, 0x00, 0x05, 'b', '/', 'c', '/', 'd',
					 0x03, 0x23, 0x00, 0x01, 't', 'h', 'r', 'e', 'e' };
	static const uint8_t user[] = { 0x32, 0x13, 0x00, 0x03, 'a',  '/',  'z',
					0x00, 0x01, 0x07, 0x26, 0x00, 0x01, 'x',
					0x00, 0x01, 'y',  'f',	'o',  'u',  'r' };
	/* Empty topic and an alias: the receiver looks the alias up. */
	static const uint8_t alias_only[] = { 0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02, 'v' };
	struct mqtt_limits lim = { .max_topic_alias = 2 };
	struct gw_slice cur, k, v;
	struct mqtt_pkt p;

	(void)state;
	decode_ok(mosq, sizeof(mosq), MQTT_V5, &p, false);
	assert_int_equal(p.publish.qos, 1);
	assert_int_equal(p.packet_id, 1);
	SEQ(p.publish.topic, "a/x");
	SEQ(p.publish.payload, "hello");
	assert_int_equal(p.props.payload_format, 1);
	assert_true(p.props.has_message_expiry);
	assert_int_equal(p.props.message_expiry, 60);
	SEQ(p.props.content_type, "text/plain");
	SEQ(p.props.response_topic, "r/t");
	SEQ(p.props.correlation_data, "1234");
	assert_int_equal(p.props.sub_id_count, 1);
	assert_int_equal(p.props.sub_id[0], 7);
	cur = p.props.user_props;
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 1);
	SEQ(k, "a");
	SEQ(v, "b");
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 0);
	encode_eq(MQTT_V5, &p, ours, sizeof(ours));
	decode_ok(ours, sizeof(ours), MQTT_V5, &p, true);

	decode_ok(alias, sizeof(alias), MQTT_V5, &p, true);
	assert_true(p.props.has_topic_alias);
	assert_int_equal(p.props.topic_alias, 1);
	SEQ(p.publish.topic, "b/c/d");
	decode_ok(user, sizeof(user), MQTT_V5, &p, true);
	SEQ(p.publish.payload, "four");
	decode_ok(alias_only, sizeof(alias_only), MQTT_V5, &p, true);
	assert_int_equal(p.publish.topic.len, 0);
	assert_int_equal(p.props.topic_alias, 2);
	assert_int_equal(mqtt_decode(alias_only, sizeof(alias_only), MQTT_V5, &lim, &p),
			 (int)sizeof(alias_only));
}

static void test_v5_publish_sub_ids(void **state)
{
	static const uint32_t many[10] = { 1,	  2,	 3,	  127,	   128,
					   16383, 16384, 2097151, 2097152, MQTT_MAX_SUB_ID };
	struct mqtt_limits lim = { .from_client = true, .max_topic_alias = 10 };
	struct mqtt_pkt p, q;
	struct gw_writer w;
	uint8_t out[128];
	int n;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = S("t");
	p.publish.payload = S("pl");
	p.props.sub_id_ext = many;
	p.props.sub_id_ext_count = GW_ARRAY_SIZE(many);
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), 0);
	/* 2 fixed, 3 topic, 1 prop len, 10 ids + 1+1+1+1+2+2+3+3+4+4 bytes, 2 payload. */
	assert_int_equal(w.len, 2 + 3 + 1 + 10 + 22 + 2);
	n = mqtt_decode(out, w.len, MQTT_V5, NULL, &q);
	assert_int_equal(n, (int)w.len);
	assert_int_equal(q.props.sub_id_count, MQTT_MAX_SUB_IDS);
	assert_true(q.props.sub_id_overflow);
	assert_memory_equal(q.props.sub_id, many, sizeof(q.props.sub_id));
	SEQ(q.publish.payload, "pl");
	/* [MQTT-3.3.4-6]: a client must not send one. */
	assert_int_equal(mqtt_decode(out, w.len, MQTT_V5, &lim, &q), -EPROTO);
	assert_int_equal(q.reason, MQTT_RC_PROTOCOL_ERROR);
	/* Subscription Identifier 0 cannot be encoded. */
	p.props.sub_id_ext = NULL;
	p.props.sub_id_count = 1;
	p.props.sub_id[0] = 0;
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
}

static void test_v5_acks(void **state)
{
	static const uint8_t short2[] = { 0x40, 0x02, 0x00, 0x03 };
	static const uint8_t short3[] = { 0x40, 0x03, 0x00, 0x01, 0x10 };
	static const uint8_t zero_props[] = { 0x50, 0x04, 0x00, 0x01, 0x00, 0x00 };
	static const uint8_t pubrec_full[] = { 0x50, 0x0b, 0x00, 0x01, 0x87, 0x07, 0x1f,
					       0x00, 0x04, 'n',	 'o',  'p',  'e' };
	static const uint8_t pubrel_nf[] = { 0x62, 0x03, 0x00, 0x05, 0x92 };
	static const uint8_t pubcomp[] = { 0x70, 0x02, 0x00, 0x02 };
	struct mqtt_pkt p;
	uint8_t out[16];
	struct gw_writer w;

	(void)state;
	decode_ok(short2, sizeof(short2), MQTT_V5, &p, true);
	assert_int_equal(p.ack.reason_code, 0);
	decode_ok(short3, sizeof(short3), MQTT_V5, &p, true);
	assert_int_equal(p.ack.reason_code, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	/* Reason 0 and an empty property block: encoded again in the short form. */
	assert_int_equal(mqtt_decode(zero_props, sizeof(zero_props), MQTT_V5, NULL, &p), 6);
	assert_int_equal(p.type, MQTT_PUBREC);
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), 0);
	assert_int_equal(w.len, 4);
	assert_memory_equal(out, "\x50\x02\x00\x01", 4);
	decode_ok(pubrec_full, sizeof(pubrec_full), MQTT_V5, &p, true);
	assert_int_equal(p.ack.reason_code, MQTT_RC_NOT_AUTHORIZED);
	SEQ(p.props.reason_string, "nope");
	decode_ok(pubrel_nf, sizeof(pubrel_nf), MQTT_V5, &p, true);
	assert_int_equal(p.type, MQTT_PUBREL);
	assert_int_equal(p.ack.reason_code, MQTT_RC_PACKET_ID_NOT_FOUND);
	decode_ok(pubcomp, sizeof(pubcomp), MQTT_V5, &p, true);
	/* A reason code PUBCOMP cannot carry is refused by the encoder. */
	p.ack.reason_code = MQTT_RC_NOT_AUTHORIZED;
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
}

static void test_v5_subscribe(void **state)
{
	/* mosquitto_sub -t a/+ -t b/# -q 2 -D subscribe subscription-identifier 7. */
	static const uint8_t mosq[] = { 0x82, 0x11, 0x00, 0x01, 0x02, 0x0b, 0x07, 0x00, 0x03, 'a',
					'/',  '+',  0x02, 0x00, 0x03, 'b',  '/',  '#',	0x02 };
	/* Options: QoS 1 | No Local | Retain As Published | Retain Handling 2. */
	static const uint8_t opts[] = { 0x82, 0x18, 0x00, 0x09, 0x00, 0x00, 0x03, 'a', '/',
					'b',  0x2d, 0x00, 0x0c, '$',  's',  'h',  'a', 'r',
					'e',  '/',  'g',  '/',	'f',  'o',  'o',  0x12 };
	struct mqtt_sub_entry list[2] = {
		{ .filter = S("a/b"),
		  .qos = 1,
		  .no_local = true,
		  .retain_as_published = true,
		  .retain_handling = 2 },
		{ .filter = S("$share/g/foo"), .qos = 2, .retain_handling = 1 },
	};
	struct mqtt_sub_entry e;
	struct mqtt_sub_iter it;
	struct mqtt_pkt p;

	(void)state;
	decode_ok(mosq, sizeof(mosq), MQTT_V5, &p, true);
	assert_int_equal(p.props.sub_id_count, 1);
	assert_int_equal(p.props.sub_id[0], 7);
	assert_int_equal(p.subscribe.count, 2);
	decode_ok(opts, sizeof(opts), MQTT_V5, &p, true);
	mqtt_sub_iter_init(&it, &p);
	assert_int_equal(mqtt_sub_next(&it, &e), 1);
	SEQ(e.filter, "a/b");
	assert_int_equal(e.qos, 1);
	assert_true(e.no_local);
	assert_true(e.retain_as_published);
	assert_int_equal(e.retain_handling, 2);
	assert_int_equal(mqtt_sub_next(&it, &e), 1);
	SEQ(e.filter, "$share/g/foo");
	assert_int_equal(e.qos, 2);
	assert_false(e.no_local);
	assert_false(e.retain_as_published);
	assert_int_equal(e.retain_handling, 1);
	assert_int_equal(mqtt_sub_next(&it, &e), 0);

	memset(&p, 0, sizeof(p));
	p.type = MQTT_SUBSCRIBE;
	p.packet_id = 9;
	p.subscribe.list = list;
	p.subscribe.count = 2;
	encode_eq(MQTT_V5, &p, opts, sizeof(opts));
	/* A SUBSCRIBE carries one Subscription Identifier at most. */
	p.props.sub_id_count = 2;
	p.props.sub_id[0] = 1;
	p.props.sub_id[1] = 2;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
}

static void test_v5_suback_unsub(void **state)
{
	static const uint8_t suback[] = { 0x90, 0x05, 0x00, 0x01, 0x00, 0x02, 0x02 };
	static const uint8_t suback_rs[] = { 0x90, 0x0a, 0x00, 0x01, 0x04, 0x1f,
					     0x00, 0x01, 'x',  0x00, 0x8f, 0xa2 };
	/* mosquitto_sub -U foo -D unsubscribe user-property u v. */
	static const uint8_t unsub[] = { 0xa2, 0x0f, 0x00, 0x02, 0x07, 0x26, 0x00, 0x01, 'u',
					 0x00, 0x01, 'v',  0x00, 0x03, 'f',  'o',  'o' };
	static const uint8_t unsuback[] = { 0xb0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11 };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(suback, sizeof(suback), MQTT_V5, &p, true);
	assert_int_equal(p.suback.codes.len, 2);
	decode_ok(suback_rs, sizeof(suback_rs), MQTT_V5, &p, true);
	SEQ(p.props.reason_string, "x");
	assert_int_equal(p.suback.codes.p[1], MQTT_RC_TOPIC_FILTER_INVALID);
	assert_int_equal(p.suback.codes.p[2], MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED);
	decode_ok(unsub, sizeof(unsub), MQTT_V5, &p, true);
	assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
	assert_true(p.props.has_user_props);
	assert_int_equal(p.subscribe.count, 1);
	decode_ok(unsuback, sizeof(unsuback), MQTT_V5, &p, true);
	assert_int_equal(p.suback.codes.len, 2);
	assert_int_equal(p.suback.codes.p[1], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
}

static void test_v5_disconnect_auth(void **state)
{
	static const uint8_t d0[] = { 0xe0, 0x00 };
	static const uint8_t d1[] = { 0xe0, 0x01, 0x04 };
	static const uint8_t dfull[] = { 0xe0, 0x11, 0x8e, 0x0f, 0x11, 0x00, 0x00, 0x00, 0x00, 0x1c,
					 0x00, 0x02, 's',  'r',	 0x1f, 0x00, 0x02, 'b',	 'y' };
	static const uint8_t a0[] = { 0xf0, 0x00 };
	static const uint8_t afull[] = { 0xf0, 0x0d, 0x18, 0x0b, 0x15, 0x00, 0x04, 'S',
					 'C',  'R',  'M',  0x16, 0x00, 0x01, 0x2a };
	struct mqtt_pkt p;

	(void)state;
	decode_ok(d0, sizeof(d0), MQTT_V5, &p, true);
	assert_int_equal(p.disconnect.reason_code, 0);
	decode_ok(d1, sizeof(d1), MQTT_V5, &p, true);
	assert_int_equal(p.disconnect.reason_code, MQTT_RC_DISCONNECT_WITH_WILL);
	decode_ok(dfull, sizeof(dfull), MQTT_V5, &p, true);
	assert_int_equal(p.disconnect.reason_code, MQTT_RC_SESSION_TAKEN_OVER);
	assert_true(p.props.has_session_expiry);
	assert_int_equal(p.props.session_expiry, 0);
	SEQ(p.props.reason_string, "by");
	SEQ(p.props.server_reference, "sr");
	decode_ok(a0, sizeof(a0), MQTT_V5, &p, true);
	assert_int_equal(p.type, MQTT_AUTH);
	decode_ok(afull, sizeof(afull), MQTT_V5, &p, true);
	assert_int_equal(p.auth.reason_code, MQTT_RC_CONTINUE_AUTH);
	SEQ(p.props.auth_method, "SCRM");
	assert_int_equal(p.props.auth_data.len, 1);
	/* AUTH does not exist before 5.0. */
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 0);
}

/* ------------------------------------------------------------ encoding */

static void test_encode_sizes(void **state)
{
	static uint8_t payload[300];
	struct mqtt_pkt p, q;
	struct gw_writer w;
	uint8_t out[400], tiny[4];
	size_t sz, i;

	(void)state;
	memset(payload, 'x', sizeof(payload));
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = S("t/1");
	p.publish.qos = 1;
	p.packet_id = 77;
	/* Remaining Length 127 / 128 / 300: one, two, two varint bytes. */
	for (i = 0; i < 3; i++) {
		static const size_t rems[] = { 127, 128, 300 };
		size_t rem = rems[i];

		p.publish.payload = (struct gw_slice){ payload, rem - 8 };
		sz = mqtt_encoded_size(MQTT_V5, &p);
		assert_int_equal(sz, 1 + gw_varint_size((uint32_t)rem) + rem);
		gw_writer_init(&w, out, sizeof(out));
		assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), 0);
		assert_int_equal(w.len, sz);
		assert_int_equal(mqtt_decode(out, w.len, MQTT_V5, NULL, &q), (int)sz);
		assert_int_equal(q.publish.payload.len, rem - 8);
	}
	/* Too small a buffer: -EMSGSIZE, and len says how much was needed. */
	gw_writer_init(&w, tiny, sizeof(tiny));
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EMSGSIZE);
	assert_int_equal(w.len, sz);
	/* An exact fit works, one byte less does not. */
	gw_writer_init(&w, out, sz);
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), 0);
	gw_writer_init(&w, out, sz - 1);
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EMSGSIZE);
	/* Strings are 16-bit counted. */
	p.publish.topic = (struct gw_slice){ payload, 70000 };
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EMSGSIZE);
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
}

static void test_encode_publish_header(void **state)
{
	static const uint8_t payload[200] = { 1, 2, 3 };
	struct mqtt_pkt p, q;
	struct gw_writer w, h;
	uint8_t full[300], hdr[64];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = S("fieldmq/gw1/boiler/temperature");
	p.publish.qos = 2;
	p.publish.retain = true;
	p.packet_id = 0x4242;
	p.publish.payload = (struct gw_slice){ payload, sizeof(payload) };
	p.props.has_topic_alias = true;
	p.props.topic_alias = 3;
	p.props.has_message_expiry = true;
	p.props.message_expiry = 10;
	gw_writer_init(&w, full, sizeof(full));
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), 0);
	gw_writer_init(&h, hdr, sizeof(hdr));
	assert_int_equal(mqtt_encode_publish_header(&h, MQTT_V5, &p), 0);
	/* Header + payload is exactly the full encoding. */
	assert_int_equal(h.len + sizeof(payload), w.len);
	assert_memory_equal(full, hdr, h.len);
	assert_memory_equal(full + h.len, payload, sizeof(payload));
	assert_int_equal(mqtt_decode(full, w.len, MQTT_V5, NULL, &q), (int)w.len);
	assert_int_equal(q.publish.qos, 2);
	assert_true(q.publish.retain);
	assert_int_equal(q.packet_id, 0x4242);
	/* The same for 3.1.1: no properties. */
	gw_writer_init(&h, hdr, sizeof(hdr));
	assert_int_equal(mqtt_encode_publish_header(&h, MQTT_V311, &p), 0);
	assert_int_equal(h.len, 1 + 2 + 2 + p.publish.topic.len + 2);
	/* Not a PUBLISH. */
	p.type = MQTT_PUBACK;
	assert_int_equal(mqtt_encode_publish_header(&h, MQTT_V5, &p), -EINVAL);
}

static void test_encode_invalid(void **state)
{
	uint8_t out[64], ubuf[8];
	struct gw_writer w;
	struct mqtt_pkt p;

	(void)state;
	gw_writer_init(&w, out, sizeof(out));
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = S("t");
	p.publish.qos = 3;
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
	p.publish.qos = 0;
	p.publish.dup = true;
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
	p.publish.dup = false;
	p.publish.qos = 1; /* packet id 0 */
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
	p.publish.qos = 0;
	p.props.has_session_expiry = true; /* not a PUBLISH property */
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
	/* ... but properties are ignored for 3.1.1. */
	assert_int_equal(mqtt_encode(&w, MQTT_V311, &p), 0);
	p.props.has_session_expiry = false;
	/* An empty topic needs a 5.0 Topic Alias. */
	p.publish.topic = S("");
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.props.has_topic_alias = true;
	p.props.topic_alias = 1;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 8);
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 0);
	p.props.has_topic_alias = false;
	p.props.topic_alias = 0;
	p.publish.topic = S("t");
	p.props.has_payload_format = true;
	p.props.payload_format = 2;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.props.has_payload_format = false;
	p.props.has_topic_alias = true; /* alias 0 */
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.props.has_topic_alias = false;
	/* A malformed user property block. */
	ubuf[0] = MQTT_PROP_USER;
	ubuf[1] = 0;
	ubuf[2] = 9;
	p.props.has_user_props = true;
	p.props.user_props = (struct gw_slice){ ubuf, 3 };
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);

	memset(&p, 0, sizeof(p));
	p.type = 0;
	assert_int_equal(mqtt_encode(&w, MQTT_V5, &p), -EINVAL);
	p.type = MQTT_PINGREQ;
	assert_int_equal(mqtt_encode(&w, 6, &p), -EINVAL);
	p.type = MQTT_CONNECT;
	p.connect.has_password = true; /* [MQTT-3.1.2-22] */
	assert_int_equal(mqtt_encode(&w, MQTT_V311, &p), -EINVAL);
	assert_true(mqtt_encoded_size(MQTT_V5, &p) > 0);
	p.connect.has_will = true;
	p.connect.will.qos = 3;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.connack.reason_code = 9; /* neither a 3.1.1 nor a 5.0 code */
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 0);
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.type = MQTT_SUBSCRIBE; /* no entries */
	p.packet_id = 1;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.type = MQTT_SUBACK; /* no codes */
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.type = MQTT_DISCONNECT;
	p.disconnect.reason_code = 0x01;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 2);
}

static void test_encode_lists(void **state)
{
	static const uint8_t unsub5[] = { 0xa2, 0x0b, 0x00, 0x03, 0x00, 0x00, 0x01,
					  'a',	0x00, 0x03, 'b',  '/',	'#' };
	static const uint8_t unsub4[] = { 0xa2, 0x0a, 0x00, 0x03, 0x00, 0x01,
					  'a',	0x00, 0x03, 'b',  '/',	'#' };
	static const uint8_t bad5[] = { 0x00, 0x05 };
	static const uint8_t bad4[] = { 0x00, 0x03 };
	struct mqtt_sub_entry list[2] = { { .filter = S("a"), .qos = 1 }, { .filter = S("b/#") } };
	struct mqtt_pkt p;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_UNSUBSCRIBE;
	p.packet_id = 3;
	p.subscribe.list = list;
	p.subscribe.count = 2;
	/* Options are not written for UNSUBSCRIBE. */
	encode_eq(MQTT_V5, &p, unsub5, sizeof(unsub5));
	encode_eq(MQTT_V311, &p, unsub4, sizeof(unsub4));
	p.subscribe.count = 0;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.subscribe.count = 2;
	p.packet_id = 0;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.type = MQTT_SUBSCRIBE;
	p.packet_id = 3;
	list[0].qos = 3;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	list[0].qos = 0;
	list[1].retain_handling = 3;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	list[1].retain_handling = 0;
	assert_true(mqtt_encoded_size(MQTT_V5, &p) > 0);

	memset(&p, 0, sizeof(p));
	p.type = MQTT_SUBACK;
	p.suback.codes = (struct gw_slice){ bad5, sizeof(bad5) };
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0); /* packet id 0 */
	p.packet_id = 1;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0); /* 0x05 is no SUBACK code */
	p.suback.codes = (struct gw_slice){ bad4, sizeof(bad4) };
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 0); /* 3 is reserved */
	p.type = MQTT_UNSUBACK;
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 4); /* no codes in 3.1.1 */
	p.type = MQTT_PUBREC;
	p.packet_id = 0;
	assert_int_equal(mqtt_encoded_size(MQTT_V311, &p), 0);

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.props.has_receive_maximum = true; /* 0 is a protocol error */
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.props.receive_maximum = 1;
	p.props.has_max_packet_size = true; /* 0 is a protocol error */
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 0);
	p.props.max_packet_size = 100;
	assert_int_equal(mqtt_encoded_size(MQTT_V5, &p), 13);
}

/* ------------------------------------------------------------ helpers */

static bool u8ok(const char *s)
{
	return mqtt_utf8_valid(gw_slice_cstr(s));
}

static void test_utf8(void **state)
{
	static const uint8_t nul[] = { 'a', 0x00, 'b' };

	(void)state;
	assert_true(u8ok(""));
	assert_true(u8ok("plain/ascii"));
	assert_true(u8ok("\xc3\xa9"));	       /* é */
	assert_true(u8ok("\xe2\x82\xac"));     /* € */
	assert_true(u8ok("\xf0\x9d\x84\x9e")); /* U+1D11E */
	assert_true(u8ok("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
	assert_true(u8ok("\xef\xbf\xbf"));     /* U+FFFF: a non-character is allowed */
	assert_true(u8ok("\x01\x1f\x7f"));     /* controls are allowed */
	assert_true(u8ok("\xc2\x80\xc2\x9f")); /* C1 controls too */
	assert_true(u8ok("\xed\x9f\xbf"));     /* U+D7FF, just below the surrogates */
	assert_false(mqtt_utf8_valid((struct gw_slice){ nul, sizeof(nul) }));
	assert_false(u8ok("\xc0\x80"));		/* overlong NUL */
	assert_false(u8ok("\xc1\xbf"));		/* overlong */
	assert_false(u8ok("\xe0\x80\xaf"));	/* overlong '/' */
	assert_false(u8ok("\xf0\x80\x80\xaf")); /* overlong '/' */
	assert_false(u8ok("\xed\xa0\x80"));	/* U+D800 */
	assert_false(u8ok("\xed\xbf\xbf"));	/* U+DFFF */
	assert_false(u8ok("\xf4\x90\x80\x80")); /* U+110000 */
	assert_false(u8ok("\xf5\x80\x80\x80"));
	assert_false(u8ok("\xff"));
	assert_false(u8ok("\x80"));	/* lone continuation */
	assert_false(u8ok("\xc3"));	/* truncated */
	assert_false(u8ok("\xe2\x82")); /* truncated */
	assert_false(u8ok("\xe2\x28\xa1"));
	assert_false(u8ok("\xf0\x9d\x84"));
}

static bool topic_ok(const char *s)
{
	return mqtt_topic_valid(gw_slice_cstr(s));
}

static bool filter_ok(const char *s)
{
	return mqtt_filter_valid(gw_slice_cstr(s));
}

static void test_topic_filter(void **state)
{
	struct gw_slice g, r;

	(void)state;
	assert_true(topic_ok("a/b"));
	assert_true(topic_ok("/"));
	assert_true(topic_ok("a//b"));
	assert_true(topic_ok("$SYS/broker/uptime"));
	assert_true(topic_ok(" "));
	assert_false(topic_ok(""));
	assert_false(topic_ok("a/+"));
	assert_false(topic_ok("#"));
	assert_false(topic_ok("a/b#"));
	assert_false(topic_ok("\xed\xa0\x80"));

	assert_true(filter_ok("#"));
	assert_true(filter_ok("+"));
	assert_true(filter_ok("/"));
	assert_true(filter_ok("a/+/b"));
	assert_true(filter_ok("a/#"));
	assert_true(filter_ok("+/+"));
	assert_true(filter_ok("/+"));
	assert_true(filter_ok("+/"));
	assert_true(filter_ok("a//#"));
	assert_true(filter_ok("$SYS/#"));
	assert_true(filter_ok("$share/g/a/#"));
	assert_true(filter_ok("$share/g/#"));
	assert_true(filter_ok("$share/group-1/+"));
	assert_true(filter_ok("$sharex/a")); /* not a shared subscription */
	assert_true(filter_ok("a/$share/b"));
	assert_false(filter_ok(""));
	assert_false(filter_ok("a/#/b"));
	assert_false(filter_ok("#/"));
	assert_false(filter_ok("a#"));
	assert_false(filter_ok("a/b#"));
	assert_false(filter_ok("a+"));
	assert_false(filter_ok("+a"));
	assert_false(filter_ok("a/+b/c"));
	assert_false(filter_ok("$share"));
	assert_false(filter_ok("$share/"));
	assert_false(filter_ok("$share/g"));
	assert_false(filter_ok("$share/g/"));
	assert_false(filter_ok("$share//a"));
	assert_false(filter_ok("$share/g+/a"));
	assert_false(filter_ok("$share/#/a"));
	assert_false(filter_ok("$share/g/a#"));

	assert_true(mqtt_filter_shared(S("$share/grp/a/+"), &g, &r));
	SEQ(g, "grp");
	SEQ(r, "a/+");
	assert_true(mqtt_filter_shared(S("$share/grp/#"), NULL, &r));
	SEQ(r, "#");
	assert_false(mqtt_filter_shared(S("a/b"), &g, &r));
	assert_false(mqtt_filter_shared(S("$share/g"), &g, &r));
}

static void test_user_props(void **state)
{
	/* A property block with other properties between the user properties. */
	static const uint8_t block[] = { 0x26, 0x00, 0x01, 'a',	 0x00, 0x01, '1',  0x02, 0x00,
					 0x00, 0x00, 0x3c, 0x0b, 0x81, 0x01, 0x03, 0x00, 0x01,
					 'x',  0x26, 0x00, 0x00, 0x00, 0x02, 'v',  '2' };
	static const uint8_t bad[] = { 0x26, 0x00, 0x05, 'a' };
	static const uint8_t unknown[] = { 0x7f, 0x00 };
	struct gw_slice cur = { block, sizeof(block) }, k, v;
	struct gw_writer w;
	uint8_t buf[4];

	(void)state;
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 1);
	SEQ(k, "a");
	SEQ(v, "1");
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 1);
	SEQ(k, "");
	SEQ(v, "v2");
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 0);
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 0);
	cur = (struct gw_slice){ bad, sizeof(bad) };
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), -EBADMSG);
	cur = (struct gw_slice){ unknown, sizeof(unknown) };
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), -EBADMSG);
	cur = (struct gw_slice){ NULL, 0 };
	assert_int_equal(mqtt_user_prop_next(&cur, &k, &v), 0);
	/* The writer's errors are sticky. */
	gw_writer_init(&w, buf, sizeof(buf));
	mqtt_user_prop_write(&w, S("key"), S("v"));
	assert_int_equal(w.err, -EMSGSIZE);
}

static void test_connack_rc_v3_names(void **state)
{
	(void)state;
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_SUCCESS), MQTT_CONNACK_ACCEPTED);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_UNSUPPORTED_VERSION), MQTT_CONNACK_BAD_VERSION);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_CLIENT_ID_INVALID), MQTT_CONNACK_ID_REJECTED);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_BAD_USER_OR_PASSWORD),
			 MQTT_CONNACK_BAD_USER_OR_PASSWORD);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_NOT_AUTHORIZED), MQTT_CONNACK_NOT_AUTHORIZED);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_BANNED), MQTT_CONNACK_NOT_AUTHORIZED);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_SERVER_BUSY), MQTT_CONNACK_SERVER_UNAVAILABLE);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_RC_MALFORMED), MQTT_CONNACK_SERVER_UNAVAILABLE);
	assert_int_equal(mqtt_connack_rc_v3(MQTT_CONNACK_ID_REJECTED), MQTT_CONNACK_ID_REJECTED);
	assert_string_equal(mqtt_type_name(MQTT_CONNECT), "CONNECT");
	assert_string_equal(mqtt_type_name(MQTT_AUTH), "AUTH");
	assert_string_equal(mqtt_type_name(0), "?");
	assert_string_equal(mqtt_type_name(16), "?");
}

/* -------------------------------------------------- malformed packets */

/*
 * One table row per rejected packet: first byte, body (the Remaining Length
 * is computed by the test, so the bodies stay readable), the version, the
 * expected error and reason code. raw rows are the whole packet as written.
 */
struct bad_case {
	const char *name;
	uint8_t version;
	uint8_t first;
	const uint8_t *body;
	size_t len;
	int err;
	uint8_t reason;
	const struct mqtt_limits *lim;
	bool raw;
};

#define BODY(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define MQTT_ 0x00, 0x04, 'M', 'Q', 'T', 'T'
#define ID_C 0x00, 0x01, 'c'
#define MAL -EBADMSG, MQTT_RC_MALFORMED
#define PROTO -EPROTO, MQTT_RC_PROTOCOL_ERROR

/* Rows leave the trailing lim / raw fields out when they are NULL / false. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const struct mqtt_limits lim_client = { .from_client = true, .max_topic_alias = 5 };
static const struct mqtt_limits lim_noalias = { .max_topic_alias = 0 };
static const struct mqtt_limits lim_small = { .max_packet_size = 10 };

static const struct bad_case bad_cases[] = {
	/* Fixed header. */
	{ "varint_5_bytes", 4, 0x30, BODY(0x30, 0xff, 0xff, 0xff, 0xff, 0x01), MAL, NULL, true },
	{ "varint_not_minimal", 4, 0x30, BODY(0x30, 0x80, 0x00), MAL, NULL, true },
	{ "packet_too_large", 5, 0x30, BODY(0x30, 0x09), -EMSGSIZE, MQTT_RC_PACKET_TOO_LARGE,
	  &lim_small, true },
	{ "reserved_type_0", 4, 0x00, NULL, 0, MAL },
	{ "auth_in_v311", 4, 0xf0, NULL, 0, MAL },
	{ "pingreq_flags", 4, 0xc1, NULL, 0, MAL },
	{ "pingreq_body", 4, 0xc0, BODY(0x00), MAL },
	{ "pingresp_from_client", 4, 0xd0, NULL, 0, PROTO, &lim_client },
	{ "disconnect_body_v311", 4, 0xe0, BODY(0x00), MAL },
	{ "disconnect_flags_v5", 5, 0xe1, NULL, 0, MAL },

	/* CONNECT. */
	{ "connect_flags_fixed_header", 4, 0x11, BODY(MQTT_, 0x04, 0x02, 0x00, 0x3c, ID_C), MAL },
	{ "connect_reserved_flag", 4, 0x10, BODY(MQTT_, 0x04, 0x03, 0x00, 0x3c, ID_C), MAL },
	{ "connect_will_qos3", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x1e, 0x00, 0x3c, ID_C, 0x00, 0x01, 't', 0x00, 0x00), MAL },
	{ "connect_will_qos_without_will", 4, 0x10, BODY(MQTT_, 0x04, 0x0a, 0x00, 0x3c, ID_C),
	  MAL },
	{ "connect_will_retain_without_will", 4, 0x10, BODY(MQTT_, 0x04, 0x22, 0x00, 0x3c, ID_C),
	  MAL },
	{ "connect_password_without_username_v311", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x42, 0x00, 0x3c, ID_C, 0x00, 0x01, 'p'), PROTO },
	{ "connect_password_without_username_v31", 3, 0x10,
	  BODY(0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x42, 0x00, 0x3c, ID_C, 0x00, 0x01,
	       'p'),
	  PROTO },
	{ "connect_bad_protocol_name", 4, 0x10,
	  BODY(0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x3c, ID_C), -EPROTO,
	  MQTT_RC_UNSUPPORTED_VERSION },
	{ "connect_bad_level_3", 4, 0x10, BODY(MQTT_, 0x03, 0x02, 0x00, 0x3c, ID_C), -EPROTO,
	  MQTT_RC_UNSUPPORTED_VERSION },
	{ "connect_bad_level_6", 4, 0x10, BODY(MQTT_, 0x06, 0x02, 0x00, 0x3c, ID_C), -EPROTO,
	  MQTT_RC_UNSUPPORTED_VERSION },
	{ "connect_mqisdp_level_4", 4, 0x10,
	  BODY(0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02, 0x00, 0x3c, ID_C), -EPROTO,
	  MQTT_RC_UNSUPPORTED_VERSION },
	{ "connect_empty_id_persistent_v311", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00), -EPROTO, MQTT_RC_CLIENT_ID_INVALID },
	{ "connect_empty_id_v31", 3, 0x10,
	  BODY(0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00),
	  -EPROTO, MQTT_RC_CLIENT_ID_INVALID },
	{ "connect_will_topic_wildcard", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x06, 0x00, 0x3c, ID_C, 0x00, 0x03, 'a', '/', '#', 0x00, 0x00), -EPROTO,
	  MQTT_RC_TOPIC_NAME_INVALID },
	{ "connect_will_topic_empty", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x06, 0x00, 0x3c, ID_C, 0x00, 0x00, 0x00, 0x00), -EPROTO,
	  MQTT_RC_TOPIC_NAME_INVALID },
	{ "connect_client_id_bad_utf8", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 0xc3, 0x28), MAL },
	{ "connect_username_bad_utf8", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x82, 0x00, 0x3c, ID_C, 0x00, 0x01, 0xff), MAL },
	{ "connect_protocol_name_truncated", 4, 0x10, BODY(0x00, 0x04, 'M', 'Q'), MAL },
	{ "connect_trailing_byte", 4, 0x10, BODY(MQTT_, 0x04, 0x02, 0x00, 0x3c, ID_C, 0x00), MAL },
	{ "connect_truncated", 4, 0x10, BODY(MQTT_, 0x04, 0x02, 0x00), MAL },
	{ "connect_missing_password", 4, 0x10,
	  BODY(MQTT_, 0x04, 0xc2, 0x00, 0x3c, ID_C, 0x00, 0x01, 'u'), MAL },
	{ "connect_missing_will", 4, 0x10, BODY(MQTT_, 0x04, 0x06, 0x00, 0x3c, ID_C), MAL },
	{ "connect_v5_duplicate_session_expiry", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00,
	       0x00, 0x02, ID_C),
	  PROTO },
	{ "connect_v5_topic_alias_not_allowed", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x03, 0x23, 0x00, 0x01, ID_C), MAL },
	{ "connect_v5_unknown_property", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x02, 0x7f, 0x00, ID_C), MAL },
	{ "connect_v5_receive_maximum_0", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x03, 0x21, 0x00, 0x00, ID_C), PROTO },
	{ "connect_v5_max_packet_size_0", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00, ID_C), PROTO },
	{ "connect_v5_request_problem_info_2", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x02, 0x17, 0x02, ID_C), PROTO },
	{ "connect_v5_request_response_info_2", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x02, 0x19, 0x02, ID_C), PROTO },
	{ "connect_v5_auth_data_without_method", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x04, 0x16, 0x00, 0x01, 'x', ID_C), PROTO },
	{ "connect_v5_property_length_past_end", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x05, 0x11, 0x00), MAL },
	{ "connect_v5_property_length_not_minimal", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x80, 0x00, ID_C), MAL },
	{ "connect_v5_property_truncated_value", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x03, 0x11, 0x00, 0x00, ID_C), MAL },
	{ "connect_v5_user_property_bad_utf8", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x07, 0x26, 0x00, 0x01, 0xff, 0x00, 0x01, 'v', ID_C),
	  MAL },
	{ "connect_v5_will_property_not_allowed", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x06, 0x00, 0x3c, 0x00, ID_C, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01, 0x00,
	       0x01, 't', 0x00, 0x00),
	  MAL },
	{ "connect_v5_will_payload_format_2", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x06, 0x00, 0x3c, 0x00, ID_C, 0x02, 0x01, 0x02, 0x00, 0x01, 't', 0x00,
	       0x00),
	  PROTO },
	{ "connect_v5_will_delay_twice", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x06, 0x00, 0x3c, 0x00, ID_C, 0x0a, 0x18, 0x00, 0x00, 0x00, 0x01, 0x18,
	       0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't', 0x00, 0x00),
	  PROTO },
	{ "connect_v5_will_response_topic_wildcard", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x06, 0x00, 0x3c, 0x00, ID_C, 0x04, 0x08, 0x00, 0x01, '+', 0x00, 0x01,
	       't', 0x00, 0x00),
	  PROTO },

	/* CONNACK. */
	{ "connack_reserved_flags", 4, 0x20, BODY(0x02, 0x00), MAL },
	{ "connack_return_code_6", 4, 0x20, BODY(0x00, 0x06), PROTO },
	{ "connack_too_long_v311", 4, 0x20, BODY(0x00, 0x00, 0x00), MAL },
	{ "connack_too_short", 4, 0x20, BODY(0x00), MAL },
	{ "connack_v5_bad_reason", 5, 0x20, BODY(0x00, 0x10, 0x00), PROTO },
	{ "connack_v5_missing_properties", 5, 0x20, BODY(0x00, 0x00), MAL },
	{ "connack_v5_wildcard_available_2", 5, 0x20, BODY(0x00, 0x00, 0x02, 0x28, 0x02), PROTO },
	{ "connack_v5_max_qos_2", 5, 0x20, BODY(0x00, 0x00, 0x02, 0x24, 0x02), PROTO },
	{ "connack_v5_will_delay_not_allowed", 5, 0x20,
	  BODY(0x00, 0x00, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01), MAL },
	{ "connack_from_client", 4, 0x20, BODY(0x00, 0x00), PROTO, &lim_client },

	/* PUBLISH. */
	{ "publish_qos3", 4, 0x36, BODY(0x00, 0x01, 'a', 0x00, 0x01), MAL },
	{ "publish_dup_qos0", 4, 0x38, BODY(0x00, 0x01, 'a'), MAL },
	{ "publish_packet_id_0", 4, 0x32, BODY(0x00, 0x01, 'a', 0x00, 0x00), PROTO },
	{ "publish_packet_id_missing", 4, 0x32, BODY(0x00, 0x01, 'a', 0x00), MAL },
	{ "publish_topic_plus", 4, 0x30, BODY(0x00, 0x03, 'a', '/', '+'), -EPROTO,
	  MQTT_RC_TOPIC_NAME_INVALID },
	{ "publish_topic_hash", 5, 0x30, BODY(0x00, 0x01, '#', 0x00), -EPROTO,
	  MQTT_RC_TOPIC_NAME_INVALID },
	{ "publish_topic_empty_v311", 4, 0x30, BODY(0x00, 0x00, 'x'), PROTO },
	{ "publish_topic_empty_no_alias_v5", 5, 0x30, BODY(0x00, 0x00, 0x00, 'x'), PROTO },
	{ "publish_topic_bad_utf8", 4, 0x30, BODY(0x00, 0x02, 0xc0, 0x80), MAL },
	{ "publish_topic_surrogate", 4, 0x30, BODY(0x00, 0x03, 0xed, 0xa0, 0x80), MAL },
	{ "publish_topic_nul", 4, 0x30, BODY(0x00, 0x03, 'a', 0x00, 'b'), MAL },
	{ "publish_topic_past_end", 4, 0x30, BODY(0x00, 0x05, 'a'), MAL },
	{ "publish_topic_alias_0", 5, 0x30, BODY(0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x00), -EPROTO,
	  MQTT_RC_TOPIC_ALIAS_INVALID },
	{ "publish_topic_alias_above_max", 5, 0x30, BODY(0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x06),
	  -EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID, &lim_client },
	{ "publish_topic_alias_refused", 5, 0x30, BODY(0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x01),
	  -EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID, &lim_noalias },
	{ "publish_topic_alias_twice", 5, 0x30,
	  BODY(0x00, 0x01, 'a', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02), PROTO },
	{ "publish_sub_id_from_client", 5, 0x30, BODY(0x00, 0x01, 'a', 0x02, 0x0b, 0x01), PROTO,
	  &lim_client },
	{ "publish_sub_id_0", 5, 0x30, BODY(0x00, 0x01, 'a', 0x02, 0x0b, 0x00), PROTO },
	{ "publish_payload_format_2", 5, 0x30, BODY(0x00, 0x01, 'a', 0x02, 0x01, 0x02), PROTO },
	{ "publish_response_topic_wildcard", 5, 0x30,
	  BODY(0x00, 0x01, 'a', 0x06, 0x08, 0x00, 0x03, 'r', '/', '#'), PROTO },
	{ "publish_content_type_twice", 5, 0x30,
	  BODY(0x00, 0x01, 'a', 0x08, 0x03, 0x00, 0x01, 'x', 0x03, 0x00, 0x01, 'y'), PROTO },
	{ "publish_content_type_bad_utf8", 5, 0x30,
	  BODY(0x00, 0x01, 'a', 0x04, 0x03, 0x00, 0x01, 0xfe), MAL },
	{ "publish_session_expiry_not_allowed", 5, 0x30,
	  BODY(0x00, 0x01, 'a', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01), MAL },
	{ "publish_properties_missing_v5", 5, 0x30, BODY(0x00, 0x01, 'a'), MAL },

	/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
	{ "puback_too_long_v311", 4, 0x40, BODY(0x00, 0x01, 0x00), MAL },
	{ "puback_too_short", 4, 0x40, BODY(0x00), MAL },
	{ "puback_packet_id_0", 4, 0x40, BODY(0x00, 0x00), PROTO },
	{ "puback_flags", 4, 0x42, BODY(0x00, 0x01), MAL },
	{ "pubrec_flags", 5, 0x51, BODY(0x00, 0x01), MAL },
	{ "pubrel_flags_0000", 4, 0x60, BODY(0x00, 0x01), MAL },
	{ "pubrel_flags_dup_v311", 4, 0x6a, BODY(0x00, 0x01), MAL },
	{ "pubcomp_flags", 5, 0x72, BODY(0x00, 0x01), MAL },
	{ "puback_v5_bad_reason", 5, 0x40, BODY(0x00, 0x01, 0x05), PROTO },
	{ "pubrel_v5_bad_reason", 5, 0x62, BODY(0x00, 0x01, 0x10), PROTO },
	{ "pubcomp_v5_bad_reason", 5, 0x70, BODY(0x00, 0x01, 0x80), PROTO },
	{ "puback_v5_topic_alias_not_allowed", 5, 0x40,
	  BODY(0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01), MAL },
	{ "puback_v5_reason_string_twice", 5, 0x40,
	  BODY(0x00, 0x01, 0x00, 0x08, 0x1f, 0x00, 0x01, 'a', 0x1f, 0x00, 0x01, 'b'), PROTO },
	{ "puback_v5_trailing_after_properties", 5, 0x40, BODY(0x00, 0x01, 0x00, 0x00, 0x00), MAL },

	/* SUBSCRIBE. */
	{ "subscribe_packet_id_truncated", 4, 0x82, BODY(0x00), MAL },
	{ "subscribe_flags", 4, 0x80, BODY(0x00, 0x01, 0x00, 0x01, 'a', 0x00), MAL },
	{ "subscribe_no_filter_v311", 4, 0x82, BODY(0x00, 0x01), PROTO },
	{ "subscribe_no_filter_v5", 5, 0x82, BODY(0x00, 0x01, 0x00), PROTO },
	{ "subscribe_packet_id_0", 4, 0x82, BODY(0x00, 0x00, 0x00, 0x01, 'a', 0x00), PROTO },
	{ "subscribe_reserved_bits_v311", 4, 0x82, BODY(0x00, 0x01, 0x00, 0x01, 'a', 0x04), MAL },
	{ "subscribe_qos3_v311", 4, 0x82, BODY(0x00, 0x01, 0x00, 0x01, 'a', 0x03), MAL },
	{ "subscribe_missing_options", 4, 0x82, BODY(0x00, 0x01, 0x00, 0x01, 'a'), MAL },
	{ "subscribe_reserved_bits_v5", 5, 0x82, BODY(0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40),
	  MAL },
	{ "subscribe_qos3_v5", 5, 0x82, BODY(0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03), PROTO },
	{ "subscribe_retain_handling_3", 5, 0x82, BODY(0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30),
	  PROTO },
	{ "subscribe_filter_hash_not_last", 4, 0x82,
	  BODY(0x00, 0x01, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x00), -EPROTO,
	  MQTT_RC_TOPIC_FILTER_INVALID },
	{ "subscribe_filter_plus_in_level", 4, 0x82, BODY(0x00, 0x01, 0x00, 0x02, 'a', '+', 0x00),
	  -EPROTO, MQTT_RC_TOPIC_FILTER_INVALID },
	{ "subscribe_filter_empty", 4, 0x82, BODY(0x00, 0x01, 0x00, 0x00, 0x00), -EPROTO,
	  MQTT_RC_TOPIC_FILTER_INVALID },
	{ "subscribe_filter_share_no_filter", 5, 0x82,
	  BODY(0x00, 0x01, 0x00, 0x00, 0x08, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', 0x00), -EPROTO,
	  MQTT_RC_TOPIC_FILTER_INVALID },
	{ "subscribe_filter_bad_utf8", 4, 0x82, BODY(0x00, 0x01, 0x00, 0x01, 0x80, 0x00), MAL },
	{ "subscribe_second_entry_bad", 4, 0x82,
	  BODY(0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b', 0x03), MAL },
	{ "subscribe_no_local_shared", 5, 0x82,
	  BODY(0x00, 0x01, 0x00, 0x00, 0x0a, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a',
	       0x04),
	  PROTO },
	{ "subscribe_sub_id_0", 5, 0x82, BODY(0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 'a', 0x00),
	  PROTO },
	{ "subscribe_sub_id_twice", 5, 0x82,
	  BODY(0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, 'a', 0x00), PROTO },
	{ "subscribe_reason_string_not_allowed", 5, 0x82,
	  BODY(0x00, 0x01, 0x04, 0x1f, 0x00, 0x01, 'x', 0x00, 0x01, 'a', 0x00), MAL },

	/* UNSUBSCRIBE. */
	{ "unsubscribe_flags", 4, 0xa0, BODY(0x00, 0x01, 0x00, 0x01, 'a'), MAL },
	{ "unsubscribe_no_filter", 4, 0xa2, BODY(0x00, 0x01), PROTO },
	{ "unsubscribe_no_filter_v5", 5, 0xa2, BODY(0x00, 0x01, 0x00), PROTO },
	{ "unsubscribe_packet_id_0", 4, 0xa2, BODY(0x00, 0x00, 0x00, 0x01, 'a'), PROTO },
	{ "unsubscribe_bad_filter", 4, 0xa2, BODY(0x00, 0x01, 0x00, 0x02, 'a', '#'), -EPROTO,
	  MQTT_RC_TOPIC_FILTER_INVALID },
	{ "unsubscribe_filter_truncated", 4, 0xa2, BODY(0x00, 0x01, 0x00, 0x04, 'a'), MAL },
	{ "unsubscribe_sub_id_not_allowed", 5, 0xa2,
	  BODY(0x00, 0x01, 0x02, 0x0b, 0x01, 0x00, 0x01, 'a'), MAL },

	/* SUBACK, UNSUBACK. */
	{ "suback_packet_id_truncated", 4, 0x90, BODY(0x00), MAL },
	{ "suback_v5_unknown_property", 5, 0x90, BODY(0x00, 0x01, 0x02, 0x7f, 0x00, 0x00), MAL },
	{ "suback_code_3_v311", 4, 0x90, BODY(0x00, 0x01, 0x03), PROTO },
	{ "suback_no_codes_v311", 4, 0x90, BODY(0x00, 0x01), PROTO },
	{ "suback_packet_id_0", 4, 0x90, BODY(0x00, 0x00, 0x00), PROTO },
	{ "suback_flags", 4, 0x92, BODY(0x00, 0x01, 0x00), MAL },
	{ "suback_v5_bad_code", 5, 0x90, BODY(0x00, 0x01, 0x00, 0x05), PROTO },
	{ "suback_v5_no_codes", 5, 0x90, BODY(0x00, 0x01, 0x00), PROTO },
	{ "suback_from_client", 4, 0x90, BODY(0x00, 0x01, 0x00), PROTO, &lim_client },
	{ "unsuback_extra_v311", 4, 0xb0, BODY(0x00, 0x01, 0x00), MAL },
	{ "unsuback_v5_bad_code", 5, 0xb0, BODY(0x00, 0x01, 0x00, 0x01), PROTO },
	{ "unsuback_v5_no_codes", 5, 0xb0, BODY(0x00, 0x01, 0x00), PROTO },
	{ "unsuback_from_client", 5, 0xb0, BODY(0x00, 0x01, 0x00, 0x00), PROTO, &lim_client },

	/* DISCONNECT, AUTH. */
	{ "disconnect_v5_bad_reason", 5, 0xe0, BODY(0x01), PROTO },
	{ "disconnect_v5_topic_alias_not_allowed", 5, 0xe0, BODY(0x00, 0x03, 0x23, 0x00, 0x01),
	  MAL },
	{ "disconnect_v5_properties_truncated", 5, 0xe0, BODY(0x00, 0x03, 0x11, 0x00), MAL },
	{ "auth_v5_bad_reason", 5, 0xf0, BODY(0x01), PROTO },
	{ "auth_v5_flags", 5, 0xf1, NULL, 0, MAL },
	{ "auth_v5_data_without_method", 5, 0xf0, BODY(0x18, 0x04, 0x16, 0x00, 0x01, 'x'), PROTO },
	{ "auth_v5_session_expiry_not_allowed", 5, 0xf0,
	  BODY(0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01), MAL },
};

#pragma GCC diagnostic pop

/* Builds the packet of row c into buf; returns its length. */
static size_t build(const struct bad_case *c, uint8_t *buf, size_t cap)
{
	struct gw_writer w;

	if (c->raw) {
		assert_true(c->len <= cap);
		memcpy(buf, c->body, c->len);
		return c->len;
	}
	gw_writer_init(&w, buf, cap);
	gw_wr_u8(&w, c->first);
	gw_wr_varint(&w, (uint32_t)c->len);
	gw_wr_bytes(&w, c->body, c->len);
	assert_int_equal(w.err, 0);
	return w.len;
}

static void test_bad_case(void **state)
{
	const struct bad_case *c = *state;
	struct mqtt_pkt p;
	uint8_t buf[128];
	size_t n = build(c, buf, sizeof(buf));

	assert_int_equal(mqtt_decode(buf, n, c->version, c->lim, &p), c->err);
	assert_int_equal(p.reason, c->reason);
	if (!c->raw)
		assert_int_equal(p.type, c->first >> 4);
}

/*
 * Near misses of the rows above that must decode: they show each bad case
 * fails for the reason named, not for a typo in its bytes.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct bad_case good_cases[] = {
	{ "ok_connect_v311", 4, 0x10, BODY(MQTT_, 0x04, 0x02, 0x00, 0x3c, ID_C) },
	{ "ok_connect_empty_id_clean_v311", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00) },
	{ "ok_connect_empty_id_persistent_v5", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00) },
	{ "ok_connect_will_v311", 4, 0x10,
	  BODY(MQTT_, 0x04, 0x2e, 0x00, 0x3c, ID_C, 0x00, 0x01, 't', 0x00, 0x00) },
	{ "ok_connect_v5_password_without_username", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x42, 0x00, 0x3c, 0x00, ID_C, 0x00, 0x01, 'p') },
	{ "ok_connect_v5_two_user_props", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x0e, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', 0x26,
	       0x00, 0x01, 'a', 0x00, 0x01, 'c', ID_C) },
	{ "ok_connect_v5_will_props", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x06, 0x00, 0x3c, 0x00, ID_C, 0x07, 0x01, 0x01, 0x18, 0x00, 0x00, 0x00,
	       0x01, 0x00, 0x01, 't', 0x00, 0x00) },
	{ "ok_connect_v5_control_char_id", 5, 0x10,
	  BODY(MQTT_, 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x02, 0x01, 0x7f) },
	{ "ok_connack_v5_min", 5, 0x20, BODY(0x00, 0x00, 0x00) },
	{ "ok_publish_topic_sys", 4, 0x30, BODY(0x00, 0x05, '$', 'S', 'Y', 'S', '/') },
	{ "ok_publish_v5_alias_within_max", 5, 0x30, BODY(0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x05),
	  0, 0, &lim_client },
	{ "ok_publish_v5_two_sub_ids_to_client", 5, 0x30,
	  BODY(0x00, 0x01, 'a', 0x04, 0x0b, 0x01, 0x0b, 0x02) },
	{ "ok_publish_v5_payload_format_1", 5, 0x30, BODY(0x00, 0x01, 'a', 0x02, 0x01, 0x01) },
	{ "ok_pubrel_v31_dup", 3, 0x6a, BODY(0x00, 0x01) },
	{ "ok_subscribe_v31_dup", 3, 0x8a, BODY(0x00, 0x01, 0x00, 0x01, 'a', 0x00) },
	{ "ok_subscribe_v5_shared", 5, 0x82,
	  BODY(0x00, 0x01, 0x00, 0x00, 0x0a, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a',
	       0x2a) },
	{ "ok_subscribe_v5_retain_handling_2", 5, 0x82,
	  BODY(0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x20) },
	{ "ok_suback_v5_codes", 5, 0x90,
	  BODY(0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1,
	       0xa2) },
	{ "ok_disconnect_v5_session_expiry", 5, 0xe0,
	  BODY(0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01) },
	{ "ok_disconnect_v5_empty_props", 5, 0xe0, BODY(0x00, 0x00) },
	{ "ok_auth_v5_reauth", 5, 0xf0, BODY(0x19, 0x00) },
	{ "ok_auth_v5_rc_only", 5, 0xf0, BODY(0x18) },
};

#pragma GCC diagnostic pop

static void test_good_case(void **state)
{
	const struct bad_case *c = *state;
	struct mqtt_pkt p, q;
	struct gw_writer w;
	uint8_t buf[128], out[128];
	size_t n = build(c, buf, sizeof(buf));

	assert_int_equal(mqtt_decode(buf, n, c->version, c->lim, &p), (int)n);
	assert_int_equal(p.reason, 0);
	/* Re-encoding gives a packet that decodes again. */
	gw_writer_init(&w, out, sizeof(out));
	assert_int_equal(mqtt_encode(&w, p.version, &p), 0);
	assert_int_equal(mqtt_decode(out, w.len, c->version, c->lim, &q), (int)w.len);
	assert_int_equal(q.type, p.type);
}

/* ----------------------------------------------------------------- main */

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_fixed_header),
		cmocka_unit_test(test_decode_stream),
		cmocka_unit_test(test_v311_connect_min),
		cmocka_unit_test(test_v311_connect_full),
		cmocka_unit_test(test_v31_connect),
		cmocka_unit_test(test_v311_connack),
		cmocka_unit_test(test_v311_publish),
		cmocka_unit_test(test_v311_acks),
		cmocka_unit_test(test_v311_subscribe),
		cmocka_unit_test(test_v311_unsubscribe),
		cmocka_unit_test(test_v311_ping_disconnect),
		cmocka_unit_test(test_v5_connect),
		cmocka_unit_test(test_v5_connect_auth),
		cmocka_unit_test(test_v5_connack),
		cmocka_unit_test(test_v5_publish),
		cmocka_unit_test(test_v5_publish_sub_ids),
		cmocka_unit_test(test_v5_acks),
		cmocka_unit_test(test_v5_subscribe),
		cmocka_unit_test(test_v5_suback_unsub),
		cmocka_unit_test(test_v5_disconnect_auth),
		cmocka_unit_test(test_encode_sizes),
		cmocka_unit_test(test_encode_publish_header),
		cmocka_unit_test(test_encode_invalid),
		cmocka_unit_test(test_encode_lists),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_topic_filter),
		cmocka_unit_test(test_user_props),
		cmocka_unit_test(test_connack_rc_v3_names),
	};
	size_t nfixed = GW_ARRAY_SIZE(fixed), nbad = GW_ARRAY_SIZE(bad_cases);
	size_t ngood = GW_ARRAY_SIZE(good_cases), n = 0, i;
	struct CMUnitTest *tests;
	int rc;

	/* One named test per table row, so a failure names its case. */
	tests = calloc(nfixed + nbad + ngood, sizeof(*tests));
	if (!tests)
		return 1;
	for (i = 0; i < nfixed; i++)
		tests[n++] = fixed[i];
	for (i = 0; i < nbad; i++)
		tests[n++] = (struct CMUnitTest){ .name = bad_cases[i].name,
						  .test_func = test_bad_case,
						  .initial_state = (void *)&bad_cases[i] };
	for (i = 0; i < ngood; i++)
		tests[n++] = (struct CMUnitTest){ .name = good_cases[i].name,
						  .test_func = test_good_case,
						  .initial_state = (void *)&good_cases[i] };
	rc = _cmocka_run_group_tests("mqtt_codec", tests, n, NULL, NULL);
	free(tests);
	return rc;
}
