/*
 * test_mqttsn_gw.c - the MQTT-SN gateway state machine with a fake clock and
 * fake ops that record every action: connect and the will handshake,
 * keepalive, sleep and wake, register both ways, QoS 0/1/2 both ways with
 * retries, QoS -1, max_clients, NAT rebinding, the mountpoint, ADVERTISE and
 * SEARCHGW.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/mqttsn/mqttsn_int.h"

/* ------------------------------------------------------------ fake ops */

#define MAX_REC 64

struct sent {
	struct mqttsn_addr to; /* len 0: broadcast */
	uint8_t buf[1024];
	size_t len;
};

enum bk_kind {
	BK_CONNECT,
	BK_DISCONNECT,
	BK_SUB,
	BK_UNSUB,
	BK_PUB
};

struct bk {
	enum bk_kind kind;
	int session; /* 0: none (QoS -1) */
	char topic[128];
	char payload[128];
	uint8_t qos;
	bool retain;
	bool clean;
	uint16_t keepalive;
};

struct fake {
	struct sent sent[MAX_REC];
	unsigned int n_sent, rd_sent;
	struct bk bk[MAX_REC];
	unsigned int n_bk, rd_bk;
	int next_session;
	bool fail_connect;
	bool fail_subscribe;
	/* Deliver this retained message from inside subscribe, as the broker does. */
	const char *retained_topic;
	struct mqttsn_client *clients[32]; /* by session number */
	struct mqttsn_gw *gw;
	int64_t now;
};

static struct fake F;

static void f_send(void *arg, const struct mqttsn_addr *to, const uint8_t *buf, size_t len)
{
	struct sent *s;

	(void)arg;
	assert_true(F.n_sent < MAX_REC);
	assert_true(len <= sizeof(s->buf));
	s = &F.sent[F.n_sent++];
	s->to = *to;
	memcpy(s->buf, buf, len);
	s->len = len;
}

static void f_broadcast(void *arg, const uint8_t *buf, size_t len)
{
	struct sent *s;

	(void)arg;
	assert_true(F.n_sent < MAX_REC);
	s = &F.sent[F.n_sent++];
	memset(&s->to, 0, sizeof(s->to));
	memcpy(s->buf, buf, len);
	s->len = len;
}

static struct bk *rec(enum bk_kind k, void *session)
{
	struct bk *b;

	assert_true(F.n_bk < MAX_REC);
	b = &F.bk[F.n_bk++];
	memset(b, 0, sizeof(*b));
	b->kind = k;
	b->session = (int)(intptr_t)session;
	return b;
}

static void cpy(char *dst, size_t cap, struct gw_slice s)
{
	assert_true(s.len < cap);
	memcpy(dst, s.p, s.len);
	dst[s.len] = 0;
}

static int f_connect(void *arg, struct mqttsn_client *c, const struct mqttsn_connect_info *info,
		     void **session)
{
	struct bk *b;

	(void)arg;
	if (F.fail_connect)
		return -ENOMEM;
	F.next_session++;
	*session = (void *)(intptr_t)F.next_session;
	F.clients[F.next_session] = c;
	b = rec(BK_CONNECT, *session);
	cpy(b->topic, sizeof(b->topic), info->client_id);
	b->clean = info->clean_session;
	b->keepalive = info->keepalive_s;
	return 0;
}

static void f_disconnect(void *arg, struct mqttsn_client *c, void *session)
{
	(void)arg;
	assert_ptr_equal(F.clients[(intptr_t)session], c);
	F.clients[(intptr_t)session] = NULL;
	rec(BK_DISCONNECT, session);
}

static int f_subscribe(void *arg, void *session, struct gw_slice filter, uint8_t qos)
{
	struct bk *b;

	(void)arg;
	if (F.fail_subscribe)
		return -EINVAL;
	b = rec(BK_SUB, session);
	cpy(b->topic, sizeof(b->topic), filter);
	b->qos = qos;
	if (F.retained_topic)
		mqttsn_gw_on_deliver(F.gw, F.clients[(intptr_t)session],
				     gw_slice_cstr(F.retained_topic), GW_SLICE_STR("ret"), 0, true,
				     F.now);
	return 0;
}

static int f_unsubscribe(void *arg, void *session, struct gw_slice filter)
{
	struct bk *b;

	(void)arg;
	b = rec(BK_UNSUB, session);
	cpy(b->topic, sizeof(b->topic), filter);
	return 0;
}

static int f_publish(void *arg, void *session, struct gw_slice topic, struct gw_slice payload,
		     uint8_t qos, bool retain)
{
	struct bk *b;

	(void)arg;
	b = rec(BK_PUB, session);
	cpy(b->topic, sizeof(b->topic), topic);
	cpy(b->payload, sizeof(b->payload), payload);
	b->qos = qos;
	b->retain = retain;
	return 0;
}

static const struct mqttsn_gw_ops fake_ops = {
	.send = f_send,
	.broadcast = f_broadcast,
	.connect = f_connect,
	.disconnect = f_disconnect,
	.subscribe = f_subscribe,
	.unsubscribe = f_unsubscribe,
	.publish = f_publish,
};

static const struct mqttsn_predef predefs[] = {
	{ 1, "sensors/temperature" },
	{ 7, "cmd/all" },
};

/* ------------------------------------------------------------- fixture */

static void cfg_default(struct mqttsn_gw_config *cfg)
{
	mqttsn_gw_config_defaults(cfg);
	cfg->advertise_interval_ms = 0;
	cfg->retry_interval_ms = 10000;
	cfg->max_retries = 3;
	cfg->max_queued = 4;
	cfg->max_clients = 3;
	cfg->predefined = predefs;
	cfg->n_predefined = GW_ARRAY_SIZE(predefs);
}

static int setup_cfg(const struct mqttsn_gw_config *cfg)
{
	memset(&F, 0, sizeof(F));
	F.gw = test_calloc(1, sizeof(*F.gw));
	F.now = 1000000;
	return mqttsn_gw_init(F.gw, cfg, &fake_ops, NULL, F.now);
}

static int setup(void **state)
{
	struct mqttsn_gw_config cfg;

	(void)state;
	cfg_default(&cfg);
	return setup_cfg(&cfg);
}

static int teardown(void **state)
{
	(void)state;
	mqttsn_gw_fini(F.gw);
	test_free(F.gw);
	assert_int_equal(gw_mem_used(), 0);
	return 0;
}

static struct mqttsn_addr addr(int n)
{
	struct mqttsn_addr a = { .len = 6 };

	a.data[0] = 10;
	a.data[3] = (uint8_t)n;
	a.data[5] = 0x5b;
	return a;
}

static void in_raw(int from, const uint8_t *buf, size_t len)
{
	struct mqttsn_addr a = addr(from);

	mqttsn_gw_on_datagram(F.gw, &a, buf, len, F.now);
}

/* m, encoded, as heard on the multicast group from address @from. */
static void in_group(int from, struct mqttsn_msg m)
{
	struct mqttsn_addr a = addr(from);
	uint8_t buf[1024];
	struct gw_writer w;
	int n;

	gw_writer_init(&w, buf, sizeof(buf));
	n = mqttsn_encode(&w, &m);
	assert_true(n > 0);
	mqttsn_gw_on_group_datagram(F.gw, &a, buf, (size_t)n, F.now);
}

static void in(int from, struct mqttsn_msg m)
{
	uint8_t buf[1024];
	struct gw_writer w;
	int n;

	gw_writer_init(&w, buf, sizeof(buf));
	n = mqttsn_encode(&w, &m);
	assert_true(n > 0);
	in_raw(from, buf, (size_t)n);
}

static void tick(int64_t advance_ms)
{
	F.now += advance_ms;
	mqttsn_gw_on_tick(F.gw, F.now);
}

/* The next datagram the gateway sent, decoded; fails if none or of another type. */
static struct mqttsn_msg out(uint8_t type)
{
	struct mqttsn_msg m;
	struct sent *s;

	if (F.rd_sent >= F.n_sent)
		fail_msg("expected %s, nothing sent", mqttsn_type_name(type));
	s = &F.sent[F.rd_sent++];
	assert_int_equal(mqttsn_decode(s->buf, s->len, &m), (int)s->len);
	if (m.type != type)
		fail_msg("expected %s, got %s", mqttsn_type_name(type), mqttsn_type_name(m.type));
	return m;
}

static const struct mqttsn_addr *out_to(void)
{
	assert_true(F.rd_sent > 0);
	return &F.sent[F.rd_sent - 1].to;
}

static void no_out(void)
{
	if (F.rd_sent < F.n_sent) {
		struct mqttsn_msg m;
		struct sent *s = &F.sent[F.rd_sent];

		mqttsn_decode(s->buf, s->len, &m);
		fail_msg("unexpected %s sent", mqttsn_type_name(m.type));
	}
}

static struct bk *broker(enum bk_kind k)
{
	struct bk *b;

	if (F.rd_bk >= F.n_bk)
		fail_msg("expected broker action %d, none", k);
	b = &F.bk[F.rd_bk++];
	assert_int_equal(b->kind, k);
	return b;
}

static void no_broker(void)
{
	if (F.rd_bk < F.n_bk)
		fail_msg("unexpected broker action %d", F.bk[F.rd_bk].kind);
}

static struct mqttsn_msg connect_msg(const char *id, uint16_t keepalive, bool will)
{
	return (struct mqttsn_msg){ .type = MQTTSN_CONNECT,
				    .flags = { .clean_session = true, .will = will },
				    .connect = { 1, keepalive, gw_slice_cstr(id) } };
}

/* CONNECT without a will; returns the session number. */
static int connect(int from, const char *id, uint16_t keepalive)
{
	struct mqttsn_msg m;
	struct bk *b;

	in(from, connect_msg(id, keepalive, false));
	b = broker(BK_CONNECT);
	assert_string_equal(b->topic, id);
	m = out(MQTTSN_CONNACK);
	assert_int_equal(m.resp.rc, MQTTSN_RC_ACCEPTED);
	return b->session;
}

static struct mqttsn_client *client(const char *id)
{
	return mqttsn_gw_find_client(F.gw, gw_slice_cstr(id));
}

static void deliver(int session, const char *topic, const char *payload, uint8_t qos)
{
	assert_int_equal(mqttsn_gw_on_deliver(F.gw, F.clients[session], gw_slice_cstr(topic),
					      gw_slice_cstr(payload), qos, false, F.now),
			 0);
}

static struct mqttsn_msg pub(uint8_t type, int8_t qos, uint16_t tid, uint16_t mid, const char *data)
{
	return (struct mqttsn_msg){ .type = MQTTSN_PUBLISH,
				    .flags = { .qos = qos, .topic_type = type },
				    .publish = { tid, mid, gw_slice_cstr(data) } };
}

/* ---------------------------------------------------------------- tests */

static void test_connect_and_disconnect(void **state)
{
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	assert_non_null(client("c1"));
	assert_int_equal(client("c1")->state, MQTTSN_CS_ACTIVE);
	assert_int_equal(F.gw->stats.clients, 1);
	assert_memory_equal(out_to()->data, addr(1).data, 6);
	/* Plain DISCONNECT: answered, session detached, no will. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT });
	out(MQTTSN_DISCONNECT);
	assert_int_equal(broker(BK_DISCONNECT)->session, s);
	no_broker();
	assert_null(client("c1"));
	assert_int_equal(F.gw->stats.clients, 0);
	/* Anything but CONNECT from an unknown address: dropped, told to reconnect. */
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 0, 1, 0, "x"));
	out(MQTTSN_DISCONNECT);
	no_broker();
	assert_int_equal(F.gw->stats.dropped_in, 1);
}

static void test_connect_refused(void **state)
{
	struct mqttsn_msg m = connect_msg("c1", 60, false);

	(void)state;
	m.connect.protocol_id = 2;
	in(1, m);
	assert_int_equal(out(MQTTSN_CONNACK).resp.rc, MQTTSN_RC_NOT_SUPPORTED);
	F.fail_connect = true;
	in(1, connect_msg("c1", 60, false));
	assert_int_equal(out(MQTTSN_CONNACK).resp.rc, MQTTSN_RC_CONGESTION);
	assert_null(client("c1"));
	assert_int_equal(F.gw->stats.clients_refused, 2);
	no_broker();
}

static void test_will_handshake_and_keepalive(void **state)
{
	struct mqttsn_msg wt = { .type = MQTTSN_WILLTOPIC,
				 .flags = { .qos = 1, .retain = true },
				 .willtopic = { GW_SLICE_STR("dev/c1/status") } };
	struct mqttsn_msg wm = { .type = MQTTSN_WILLMSG, .willmsg = { GW_SLICE_STR("offline") } };
	struct bk *b;
	int s;

	(void)state;
	in(1, connect_msg("c1", 10, true));
	out(MQTTSN_WILLTOPICREQ);
	no_broker(); /* no session before the handshake is over */
	assert_int_equal(client("c1")->state, MQTTSN_CS_WILLTOPIC);
	in(1, wt);
	out(MQTTSN_WILLMSGREQ);
	in(1, wm);
	s = broker(BK_CONNECT)->session;
	assert_int_equal(out(MQTTSN_CONNACK).resp.rc, MQTTSN_RC_ACCEPTED);
	/* Keepalive 10 s is supervised at 1.5x: still alive at 14.9 s... */
	tick(14999);
	no_broker();
	/* ...refreshed by any message... */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ });
	out(MQTTSN_PINGRESP);
	tick(14999);
	no_broker();
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), 1);
	/* ...and lost at 15 s: the will is published, then the session detached. */
	tick(1);
	b = broker(BK_PUB);
	assert_int_equal(b->session, s);
	assert_string_equal(b->topic, "dev/c1/status");
	assert_string_equal(b->payload, "offline");
	assert_int_equal(b->qos, 1);
	assert_true(b->retain);
	broker(BK_DISCONNECT);
	assert_null(client("c1"));
	assert_int_equal(F.gw->stats.clients_lost, 1);
}

static void test_will_update_and_delete(void **state)
{
	int s;

	(void)state;
	in(1, connect_msg("c1", 10, true));
	out(MQTTSN_WILLTOPICREQ);
	/* An empty WILLTOPIC: connected without a will. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC });
	s = broker(BK_CONNECT)->session;
	out(MQTTSN_CONNACK);
	/* 6.4: set one later with WILLTOPICUPD / WILLMSGUPD. */
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_WILLTOPICUPD, .willtopic = { GW_SLICE_STR("w") } });
	assert_int_equal(out(MQTTSN_WILLTOPICRESP).resp.rc, MQTTSN_RC_ACCEPTED);
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_WILLMSGUPD, .willmsg = { GW_SLICE_STR("gone") } });
	assert_int_equal(out(MQTTSN_WILLMSGRESP).resp.rc, MQTTSN_RC_ACCEPTED);
	tick(15000);
	assert_string_equal(broker(BK_PUB)->payload, "gone");
	assert_int_equal(broker(BK_DISCONNECT)->session, s);

	/* Deleted with an empty WILLTOPICUPD: nothing published when lost. */
	in(2, connect_msg("c2", 10, true));
	out(MQTTSN_WILLTOPICREQ);
	in(2, (struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC, .willtopic = { GW_SLICE_STR("w") } });
	out(MQTTSN_WILLMSGREQ);
	in(2, (struct mqttsn_msg){ .type = MQTTSN_WILLMSG, .willmsg = { GW_SLICE_STR("x") } });
	broker(BK_CONNECT);
	out(MQTTSN_CONNACK);
	in(2, (struct mqttsn_msg){ .type = MQTTSN_WILLTOPICUPD });
	out(MQTTSN_WILLTOPICRESP);
	tick(15000);
	broker(BK_DISCONNECT);
	no_broker();
}

static void test_handshake_timeout(void **state)
{
	(void)state;
	in(1, connect_msg("c1", 10, true));
	out(MQTTSN_WILLTOPICREQ);
	/* Out-of-place messages during the handshake are dropped. */
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 1, 1, 1, "x"));
	no_out();
	tick(10000 * 4); /* retry_interval x (max_retries + 1) */
	assert_null(client("c1"));
	no_broker();
	assert_int_equal(F.gw->stats.clients_lost, 0);
}

static void test_register_and_publish_in(void **state)
{
	struct mqttsn_msg m;
	uint16_t tid;
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	/* 6.9: REGISTER from the client gets a fresh id. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGISTER,
				   .reg = { 0, 5, GW_SLICE_STR("plant/temp") } });
	m = out(MQTTSN_REGACK);
	assert_int_equal(m.ack.msg_id, 5);
	assert_int_equal(m.ack.rc, MQTTSN_RC_ACCEPTED);
	tid = m.ack.topic_id;
	assert_true(tid != 0 && tid != 0xffff);
	/* The same name again: the same id. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGISTER,
				   .reg = { 0, 6, GW_SLICE_STR("plant/temp") } });
	assert_int_equal(out(MQTTSN_REGACK).ack.topic_id, tid);
	/* Wildcards cannot be registered. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGISTER, .reg = { 0, 7, GW_SLICE_STR("a/+") } });
	assert_int_equal(out(MQTTSN_REGACK).ack.rc, MQTTSN_RC_NOT_SUPPORTED);

	/* QoS 0 by registered id: to the broker, no answer. */
	in(1, pub(MQTTSN_TOPIC_NORMAL, 0, tid, 0, "20.5"));
	assert_string_equal(broker(BK_PUB)->topic, "plant/temp");
	no_out();
	/* QoS 1: PUBACK after the broker took it. */
	in(1, pub(MQTTSN_TOPIC_NORMAL, 1, tid, 9, "21"));
	assert_int_equal(broker(BK_PUB)->qos, 1);
	m = out(MQTTSN_PUBACK);
	assert_int_equal(m.ack.msg_id, 9);
	assert_int_equal(m.ack.topic_id, tid);
	assert_int_equal(m.ack.rc, MQTTSN_RC_ACCEPTED);
	/* Unknown id: PUBACK "invalid topic id", even at QoS 0. */
	in(1, pub(MQTTSN_TOPIC_NORMAL, 0, 999, 0, "x"));
	assert_int_equal(out(MQTTSN_PUBACK).ack.rc, MQTTSN_RC_INVALID_TOPIC_ID);
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 1, 99, 10, "x"));
	assert_int_equal(out(MQTTSN_PUBACK).ack.rc, MQTTSN_RC_INVALID_TOPIC_ID);
	/* Predefined and short names. */
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 1, 1, 11, "22"));
	assert_string_equal(broker(BK_PUB)->topic, "sensors/temperature");
	out(MQTTSN_PUBACK);
	in(1, pub(MQTTSN_TOPIC_SHORT, 0, mqttsn_short_id('t', 'x'), 0, "y"));
	assert_string_equal(broker(BK_PUB)->topic, "tx");
	no_broker();
	no_out();
	(void)s;
}

static void test_qos2_in(void **state)
{
	(void)state;
	connect(1, "c1", 60);
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 2, 1, 40, "a"));
	assert_int_equal(broker(BK_PUB)->qos, 2);
	assert_int_equal(out(MQTTSN_PUBREC).msgid.msg_id, 40);
	/* A retransmitted PUBLISH before PUBREL: PUBREC again, published once. */
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 2, 1, 40, "a"));
	out(MQTTSN_PUBREC);
	no_broker();
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBREL, .msgid = { 40 } });
	assert_int_equal(out(MQTTSN_PUBCOMP).msgid.msg_id, 40);
	/* After PUBREL the id is free again: a new message. */
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 2, 1, 40, "b"));
	assert_string_equal(broker(BK_PUB)->payload, "b");
	out(MQTTSN_PUBREC);
}

static void test_subscribe_wildcard_register_out(void **state)
{
	struct mqttsn_msg m;
	uint16_t tid;
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
				   .flags = { .qos = 1 },
				   .sub = { 3, 0, GW_SLICE_STR("plant/#") } });
	assert_string_equal(broker(BK_SUB)->topic, "plant/#");
	m = out(MQTTSN_SUBACK);
	/* A filter with wildcards: topic id 0 in SUBACK (5.4.17). */
	assert_int_equal(m.ack.topic_id, 0);
	assert_int_equal(m.ack.msg_id, 3);
	assert_int_equal(m.flags.qos, 1);
	assert_int_equal(m.ack.rc, MQTTSN_RC_ACCEPTED);

	/* A message on a new topic: REGISTER first (6.10), PUBLISH after REGACK. */
	deliver(s, "plant/pump", "on", 1);
	m = out(MQTTSN_REGISTER);
	assert_true(gw_slice_eq_cstr(m.reg.topic, "plant/pump"));
	tid = m.reg.topic_id;
	assert_true(tid != 0);
	no_out();
	/* A second message waits behind the first. */
	deliver(s, "plant/pump", "off", 0);
	no_out();
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGACK,
				   .ack = { tid, m.reg.msg_id, MQTTSN_RC_ACCEPTED } });
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(m.publish.topic_id, tid);
	assert_int_equal(m.flags.topic_type, MQTTSN_TOPIC_NORMAL);
	assert_int_equal(m.flags.qos, 1);
	assert_false(m.flags.dup);
	assert_true(gw_slice_eq_cstr(m.publish.data, "on"));
	no_out();
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBACK,
				   .ack = { tid, m.publish.msg_id, MQTTSN_RC_ACCEPTED } });
	/* The QoS 0 one goes at once, without REGISTER: the id is known. */
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(m.publish.topic_id, tid);
	assert_int_equal(m.publish.msg_id, 0);
	assert_true(gw_slice_eq_cstr(m.publish.data, "off"));
	no_out();
	assert_int_equal(F.gw->stats.publish_out, 2);
	assert_int_equal(client("c1")->n_queued, 0);

	/* A refused REGISTER drops the message. */
	deliver(s, "plant/valve", "x", 0);
	m = out(MQTTSN_REGISTER);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGACK,
				   .ack = { 0, m.reg.msg_id, MQTTSN_RC_NOT_SUPPORTED } });
	no_out();
	assert_int_equal(client("c1")->n_queued, 0);
	assert_int_equal(F.gw->stats.dropped_out, 1);
}

static void test_subscribe_name_predef_short(void **state)
{
	struct mqttsn_msg m;
	uint16_t tid;
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	/* A plain name: its id comes in SUBACK, so no REGISTER is needed later. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
				   .flags = { .qos = 0 },
				   .sub = { 3, 0, GW_SLICE_STR("a/b") } });
	broker(BK_SUB);
	m = out(MQTTSN_SUBACK);
	tid = m.ack.topic_id;
	assert_true(tid != 0);
	deliver(s, "a/b", "1", 0);
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(m.publish.topic_id, tid);
	/* Predefined: by id, delivered with the predefined id. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
				   .flags = { .qos = 2, .topic_type = MQTTSN_TOPIC_PREDEFINED },
				   .sub = { 4, 7, { 0 } } });
	assert_string_equal(broker(BK_SUB)->topic, "cmd/all");
	m = out(MQTTSN_SUBACK);
	assert_int_equal(m.ack.topic_id, 7);
	assert_int_equal(m.flags.qos, 2);
	deliver(s, "cmd/all", "go", 0);
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(m.flags.topic_type, MQTTSN_TOPIC_PREDEFINED);
	assert_int_equal(m.publish.topic_id, 7);
	/* An unknown predefined id. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
				   .flags = { .topic_type = MQTTSN_TOPIC_PREDEFINED },
				   .sub = { 5, 8, { 0 } } });
	assert_int_equal(out(MQTTSN_SUBACK).ack.rc, MQTTSN_RC_INVALID_TOPIC_ID);
	no_broker();
	/* Short: the two characters; delivered as a short name. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
				   .flags = { .topic_type = MQTTSN_TOPIC_SHORT },
				   .sub = { 6, mqttsn_short_id('x', 'y'), { 0 } } });
	assert_string_equal(broker(BK_SUB)->topic, "xy");
	assert_int_equal(out(MQTTSN_SUBACK).ack.rc, MQTTSN_RC_ACCEPTED);
	deliver(s, "xy", "z", 0);
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(m.flags.topic_type, MQTTSN_TOPIC_SHORT);
	assert_int_equal(m.publish.topic_id, mqttsn_short_id('x', 'y'));
	/* The broker refusing a filter: "not supported". */
	F.fail_subscribe = true;
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE, .sub = { 7, 0, GW_SLICE_STR("#/a") } });
	assert_int_equal(out(MQTTSN_SUBACK).ack.rc, MQTTSN_RC_NOT_SUPPORTED);
	/* UNSUBSCRIBE. */
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_UNSUBSCRIBE, .sub = { 8, 0, GW_SLICE_STR("a/b") } });
	assert_string_equal(broker(BK_UNSUB)->topic, "a/b");
	assert_int_equal(out(MQTTSN_UNSUBACK).msgid.msg_id, 8);
	no_out();
}

static void test_retained_after_suback(void **state)
{
	struct mqttsn_msg m;

	(void)state;
	connect(1, "c1", 60);
	/* The broker delivers a retained message inside subscribe: it must follow SUBACK. */
	F.retained_topic = "r/t";
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE, .sub = { 3, 0, GW_SLICE_STR("r/t") } });
	m = out(MQTTSN_SUBACK);
	m = out(MQTTSN_PUBLISH);
	assert_true(m.flags.retain);
	assert_true(gw_slice_eq_cstr(m.publish.data, "ret"));
}

static void test_retries(void **state)
{
	struct mqttsn_msg m, again;
	int s;

	(void)state;
	s = connect(1, "c1", 600);
	deliver(s, "sensors/temperature", "1", 1);
	m = out(MQTTSN_PUBLISH);
	assert_false(m.flags.dup);
	tick(9999);
	no_out();
	/* Every retry_interval: the same PUBLISH with DUP set (6.13). */
	tick(1);
	again = out(MQTTSN_PUBLISH);
	assert_true(again.flags.dup);
	assert_int_equal(again.publish.msg_id, m.publish.msg_id);
	tick(10000);
	out(MQTTSN_PUBLISH);
	tick(10000);
	out(MQTTSN_PUBLISH);
	assert_int_equal(F.gw->stats.retransmits, 3);
	/* After max_retries (3) the message is dropped. */
	tick(10000);
	no_out();
	assert_int_equal(F.gw->stats.dropped_out, 1);
	assert_int_equal(client("c1")->n_queued, 0);
	/* A REGISTER is retried too. */
	deliver(s, "new/topic", "1", 0);
	m = out(MQTTSN_REGISTER);
	tick(10000);
	again = out(MQTTSN_REGISTER);
	assert_int_equal(again.reg.msg_id, m.reg.msg_id);
}

static void test_qos2_out(void **state)
{
	struct mqttsn_msg m;
	uint16_t mid;
	int s;

	(void)state;
	s = connect(1, "c1", 600);
	deliver(s, "sensors/temperature", "1", 2);
	m = out(MQTTSN_PUBLISH);
	mid = m.publish.msg_id;
	assert_int_equal(m.flags.qos, 2);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBREC, .msgid = { mid } });
	assert_int_equal(out(MQTTSN_PUBREL).msgid.msg_id, mid);
	/* PUBREL is retransmitted until PUBCOMP. */
	tick(10000);
	assert_int_equal(out(MQTTSN_PUBREL).msgid.msg_id, mid);
	/* A PUBCOMP for another id changes nothing. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBCOMP, .msgid = { (uint16_t)(mid + 1) } });
	assert_int_equal(client("c1")->n_queued, 1);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBCOMP, .msgid = { mid } });
	assert_int_equal(client("c1")->n_queued, 0);
	assert_int_equal(client("c1")->inflight, MQTTSN_IF_NONE);
	no_out();
}

/* QoS 2 PUBLISH until PUBREC, PUBREL until PUBCOMP, each given up after max_retries. */
static void test_retries_qos2(void **state)
{
	struct mqttsn_msg m, again;
	int s;

	(void)state;
	s = connect(1, "c1", 600);
	deliver(s, "sensors/temperature", "a", 2);
	deliver(s, "sensors/temperature", "b", 1);
	m = out(MQTTSN_PUBLISH);
	tick(10000);
	again = out(MQTTSN_PUBLISH);
	assert_true(again.flags.dup);
	assert_int_equal(again.flags.qos, 2);
	assert_int_equal(again.publish.msg_id, m.publish.msg_id);
	/* PUBREC for the retransmission: PUBREL, with its own retries (counted afresh). */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBREC, .msgid = { m.publish.msg_id } });
	out(MQTTSN_PUBREL);
	tick(9999);
	no_out();
	tick(1);
	out(MQTTSN_PUBREL);
	tick(10000);
	out(MQTTSN_PUBREL);
	tick(10000);
	assert_int_equal(out(MQTTSN_PUBREL).msgid.msg_id, m.publish.msg_id);
	assert_int_equal(F.gw->stats.retransmits, 4);
	/* Retries exhausted: given up, counted, and the next message goes at once. */
	tick(10000);
	m = out(MQTTSN_PUBLISH);
	assert_false(m.flags.dup);
	assert_true(gw_slice_eq_cstr(m.publish.data, "b"));
	assert_int_equal(F.gw->stats.dropped_out, 1);
	assert_int_equal(client("c1")->n_queued, 1);
	/* A late PUBACK of another id changes nothing; the right one completes. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBACK,
				   .ack = { 1, (uint16_t)(m.publish.msg_id - 1), 0 } });
	assert_int_equal(client("c1")->n_queued, 1);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBACK, .ack = { 1, m.publish.msg_id, 0 } });
	assert_int_equal(client("c1")->n_queued, 0);
	tick(10000);
	no_out();
}

/* A REGISTER given up drops its message; the next message on the topic registers again. */
static void test_retries_register_exhausted(void **state)
{
	struct mqttsn_msg r, r2, m;
	int s;

	(void)state;
	s = connect(1, "c1", 600);
	deliver(s, "a/b", "1", 1);
	deliver(s, "a/b", "2", 1);
	r = out(MQTTSN_REGISTER);
	tick(10000);
	out(MQTTSN_REGISTER);
	tick(10000);
	out(MQTTSN_REGISTER);
	tick(10000);
	out(MQTTSN_REGISTER);
	tick(10000);
	r2 = out(MQTTSN_REGISTER); /* for the second message: same topic id, new msg id */
	assert_int_equal(r2.reg.topic_id, r.reg.topic_id);
	assert_int_not_equal(r2.reg.msg_id, r.reg.msg_id);
	assert_int_equal(F.gw->stats.dropped_out, 1);
	/* A REGACK of the abandoned REGISTER is ignored. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGACK,
				   .ack = { r.reg.topic_id, r.reg.msg_id, 0 } });
	no_out();
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGACK,
				   .ack = { r.reg.topic_id, r2.reg.msg_id, 0 } });
	m = out(MQTTSN_PUBLISH);
	assert_true(gw_slice_eq_cstr(m.publish.data, "2"));
	/* PUBACK "invalid topic id": the id is registered again before the next message. */
	in(1, (struct mqttsn_msg){
		      .type = MQTTSN_PUBACK,
		      .ack = { r.reg.topic_id, m.publish.msg_id, MQTTSN_RC_INVALID_TOPIC_ID } });
	assert_int_equal(F.gw->stats.dropped_out, 2);
	deliver(s, "a/b", "3", 0);
	assert_int_equal(out(MQTTSN_REGISTER).reg.topic_id, r.reg.topic_id);
}

/*
 * Retransmissions pause while the client sleeps and resume when it wakes;
 * PINGRESP waits until the message in flight is acknowledged. A CONNECT
 * sends the message in flight again from the start.
 */
static void test_retries_sleep_and_reconnect(void **state)
{
	struct mqttsn_msg m, again, c = connect_msg("c1", 600, false);
	int s;

	(void)state;
	s = connect(1, "c1", 600);
	deliver(s, "sensors/temperature", "x", 1);
	m = out(MQTTSN_PUBLISH);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 1000 } });
	out(MQTTSN_DISCONNECT);
	tick(10000);
	tick(10000);
	no_out();
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), 1500 * 1000 - 20000);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	no_out(); /* still in flight: no PINGRESP yet */
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), 0);
	tick(0);
	again = out(MQTTSN_PUBLISH);
	assert_true(again.flags.dup);
	assert_int_equal(again.publish.msg_id, m.publish.msg_id);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBACK, .ack = { 1, m.publish.msg_id, 0 } });
	out(MQTTSN_PINGRESP);
	/* In flight when the client connects again: sent again at once, as a first transmission. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	out(MQTTSN_PINGRESP);
	deliver(s, "sensors/temperature", "y", 1);
	no_out();
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	m = out(MQTTSN_PUBLISH);
	c.flags.clean_session = false;
	in(1, c);
	out(MQTTSN_CONNACK);
	again = out(MQTTSN_PUBLISH);
	assert_false(again.flags.dup);
	assert_true(gw_slice_eq_cstr(again.publish.data, "y"));
	assert_int_equal(F.gw->stats.retransmits, 1);
}

static void test_qos_minus1(void **state)
{
	(void)state;
	/* 6.8: no connection needed, predefined id or short name only. */
	in(5, pub(MQTTSN_TOPIC_PREDEFINED, -1, 1, 0, "19"));
	struct bk *b = broker(BK_PUB);
	assert_int_equal(b->session, 0);
	assert_string_equal(b->topic, "sensors/temperature");
	assert_int_equal(b->qos, 0);
	in(5, pub(MQTTSN_TOPIC_SHORT, -1, mqttsn_short_id('a', 'b'), 0, "1"));
	assert_string_equal(broker(BK_PUB)->topic, "ab");
	/* A normal id, or an unknown predefined id: dropped silently. */
	in(5, pub(MQTTSN_TOPIC_NORMAL, -1, 1, 0, "1"));
	in(5, pub(MQTTSN_TOPIC_PREDEFINED, -1, 99, 0, "1"));
	no_broker();
	no_out();
	assert_int_equal(F.gw->stats.dropped_in, 2);
	assert_int_equal(F.gw->stats.publish_in, 2);
	assert_null(client("x"));
}

static void test_sleep_and_wake(void **state)
{
	struct mqttsn_msg m;
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE, .sub = { 3, 0, GW_SLICE_STR("a/#") } });
	broker(BK_SUB);
	out(MQTTSN_SUBACK);
	/* 6.14: DISCONNECT with a duration: asleep, the session stays. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	no_broker();
	assert_int_equal(client("c1")->state, MQTTSN_CS_ASLEEP);
	/* Messages are buffered, up to max_queued (4). */
	deliver(s, "sensors/temperature", "1", 0);
	deliver(s, "sensors/temperature", "2", 1);
	deliver(s, "sensors/temperature", "3", 0);
	deliver(s, "sensors/temperature", "4", 0);
	assert_int_equal(mqttsn_gw_on_deliver(F.gw, F.clients[s],
					      GW_SLICE_STR("sensors/temperature"),
					      GW_SLICE_STR("5"), 0, false, F.now),
			 -ENOBUFS);
	assert_int_equal(F.gw->stats.dropped_out, 1);
	no_out();
	/* Sleep is supervised like a keepalive: alive at 149 s. */
	tick(149000);
	no_broker();
	/* PINGREQ with the client id: buffered messages, then PINGRESP. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	m = out(MQTTSN_PUBLISH);
	assert_true(gw_slice_eq_cstr(m.publish.data, "1"));
	m = out(MQTTSN_PUBLISH);
	assert_true(gw_slice_eq_cstr(m.publish.data, "2"));
	no_out(); /* QoS 1 in flight */
	assert_int_equal(client("c1")->state, MQTTSN_CS_AWAKE);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBACK,
				   .ack = { 1, m.publish.msg_id, MQTTSN_RC_ACCEPTED } });
	out(MQTTSN_PUBLISH);
	out(MQTTSN_PUBLISH);
	out(MQTTSN_PINGRESP);
	no_out();
	assert_int_equal(client("c1")->state, MQTTSN_CS_ASLEEP);
	/* A wake with nothing buffered: PINGRESP at once. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	out(MQTTSN_PINGRESP);
	/* Sleep expires at 1.5 x 100 s without a word: lost. */
	tick(149999);
	no_broker();
	tick(1);
	broker(BK_DISCONNECT);
	assert_null(client("c1"));
	assert_int_equal(F.gw->stats.clients_lost, 1);
}

static void test_sleep_then_connect(void **state)
{
	struct mqttsn_msg c, m;
	struct bk *b;
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	deliver(s, "sensors/temperature", "1", 0);
	no_out();
	/*
	 * Back to active with CONNECT: clean session off keeps the buffer and
	 * the broker session as it is (detaching would end a session opened
	 * with clean session on, and its subscriptions with it).
	 */
	c = connect_msg("c1", 60, false);
	c.flags.clean_session = false;
	in(1, c);
	no_broker();
	out(MQTTSN_CONNACK);
	out(MQTTSN_PUBLISH);
	assert_int_equal(client("c1")->state, MQTTSN_CS_ACTIVE);
	assert_int_equal(F.gw->stats.clients, 1);
	assert_int_equal(F.gw->stats.clients_total, 1);
	/*
	 * 6.14: from the asleep state a CONNECT returns the client to the
	 * active state, clean session on or not: Paho's GatewayTester sleeps
	 * and wakes so with clean session on and expects its subscriptions and
	 * the messages buffered while it slept. The session stays attached.
	 */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	deliver(s, "sensors/temperature", "2", 0);
	in(1, connect_msg("c1", 30, false));
	no_broker();
	out(MQTTSN_CONNACK);
	m = out(MQTTSN_PUBLISH);
	assert_true(gw_slice_eq_cstr(m.publish.data, "2"));
	assert_int_equal(client("c1")->state, MQTTSN_CS_ACTIVE);
	assert_int_equal(client("c1")->keepalive_s, 30);
	assert_true(client("c1")->clean_session); /* the session is the one c1 opened */
	/* Still subscribed through the same session: deliveries go on. */
	deliver(s, "sensors/temperature", "3", 0);
	out(MQTTSN_PUBLISH);
	assert_int_equal(F.gw->stats.clients_total, 1);
	/* Awake (PINGREQ with the client id) and then CONNECT: the same. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	deliver(s, "sensors/temperature", "4", 1);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(client("c1")->state, MQTTSN_CS_AWAKE);
	in(1, connect_msg("c1", 60, false));
	no_broker();
	out(MQTTSN_CONNACK);
	m = out(MQTTSN_PUBLISH); /* the one in flight, again from the start */
	assert_true(gw_slice_eq_cstr(m.publish.data, "4"));
	assert_false(m.flags.dup);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PUBACK, .ack = { 1, m.publish.msg_id, 0 } });
	no_out();
	/* Active: CONNECT with clean session on is a new broker session, the buffer goes. */
	in(1, connect_msg("c1", 60, false));
	broker(BK_DISCONNECT);
	b = broker(BK_CONNECT);
	assert_true(b->clean);
	out(MQTTSN_CONNACK);
	no_out();
	assert_int_equal(F.gw->stats.clients, 1);
	assert_int_equal(F.gw->stats.clients_total, 2);
}

/*
 * 6.14 with a will: waking with CONNECT keeps the will the client gave (it
 * goes out if the client is lost afterwards); a Will flag on that CONNECT
 * runs the handshake for a new one, still without a new broker session.
 */
static void test_sleep_then_connect_will(void **state)
{
	struct mqttsn_msg c = connect_msg("w1", 10, true);
	struct bk *b;

	(void)state;
	in(1, c);
	out(MQTTSN_WILLTOPICREQ);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC,
				   .flags = { .qos = 1 },
				   .willtopic = { GW_SLICE_STR("w/old") } });
	out(MQTTSN_WILLMSGREQ);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_WILLMSG, .willmsg = { GW_SLICE_STR("gone") } });
	broker(BK_CONNECT);
	out(MQTTSN_CONNACK);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	/* Waking without the Will flag: the will stays. */
	in(1, connect_msg("w1", 10, false));
	no_broker();
	out(MQTTSN_CONNACK);
	assert_non_null(client("w1")->will_topic);
	/* Asleep again, waking with the Will flag: a new will, the same session. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	in(1, c);
	out(MQTTSN_WILLTOPICREQ);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_WILLTOPIC,
				   .flags = { .qos = 0 },
				   .willtopic = { GW_SLICE_STR("w/new") } });
	out(MQTTSN_WILLMSGREQ);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_WILLMSG, .willmsg = { GW_SLICE_STR("bye") } });
	no_broker();
	out(MQTTSN_CONNACK);
	assert_int_equal(client("w1")->state, MQTTSN_CS_ACTIVE);
	/* Keepalive lost (1.5 x 10 s): the new will goes out. */
	tick(15000);
	b = broker(BK_PUB);
	assert_string_equal(b->topic, "w/new");
	assert_string_equal(b->payload, "bye");
	broker(BK_DISCONNECT);
	assert_null(client("w1"));
}

static void test_max_clients(void **state)
{
	(void)state;
	connect(1, "c1", 60);
	connect(2, "c2", 60);
	connect(3, "c3", 60);
	in(4, connect_msg("c4", 60, false));
	assert_int_equal(out(MQTTSN_CONNACK).resp.rc, MQTTSN_RC_CONGESTION);
	no_broker();
	assert_null(client("c4"));
	/* A known client reconnecting is not a new one. */
	in(3, connect_msg("c3", 60, false));
	broker(BK_DISCONNECT);
	broker(BK_CONNECT);
	assert_int_equal(out(MQTTSN_CONNACK).resp.rc, MQTTSN_RC_ACCEPTED);
	/* A client leaving makes room. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT });
	out(MQTTSN_DISCONNECT);
	broker(BK_DISCONNECT);
	connect(4, "c4", 60);
	assert_int_equal(F.gw->stats.clients, 3);
}

static void test_nat_rebinding(void **state)
{
	struct mqttsn_msg m;
	struct mqttsn_msg c = connect_msg("c1", 60, false);
	uint16_t tid;

	(void)state;
	c.flags.clean_session = false;
	in(1, c);
	broker(BK_CONNECT);
	out(MQTTSN_CONNACK);
	in(1, (struct mqttsn_msg){ .type = MQTTSN_REGISTER, .reg = { 0, 1, GW_SLICE_STR("a/b") } });
	tid = out(MQTTSN_REGACK).ack.topic_id;
	/* The same client id from a new address: the client moves, its session and ids stay. */
	in(2, c);
	no_broker();
	out(MQTTSN_CONNACK);
	assert_memory_equal(out_to()->data, addr(2).data, 6);
	in(2, pub(MQTTSN_TOPIC_NORMAL, 0, tid, 0, "x"));
	assert_string_equal(broker(BK_PUB)->topic, "a/b");
	/* The old address is nobody now. */
	in(1, pub(MQTTSN_TOPIC_NORMAL, 0, tid, 0, "x"));
	out(MQTTSN_DISCONNECT);
	no_broker();
	assert_int_equal(F.gw->n_clients, 1);
	/* A sleeping client waking from yet another address, by client id. */
	in(2, (struct mqttsn_msg){ .type = MQTTSN_DISCONNECT, .disconnect = { true, 100 } });
	out(MQTTSN_DISCONNECT);
	in(3, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ, .pingreq = { GW_SLICE_STR("c1") } });
	out(MQTTSN_PINGRESP);
	assert_memory_equal(out_to()->data, addr(3).data, 6);
	/* Another client id taking an address: the old owner is lost (will, if any). */
	in(3, connect_msg("c9", 60, false));
	broker(BK_DISCONNECT);
	broker(BK_CONNECT);
	m = out(MQTTSN_CONNACK);
	assert_int_equal(m.resp.rc, MQTTSN_RC_ACCEPTED);
	assert_null(client("c1"));
}

static void test_mountpoint(void **state)
{
	struct mqttsn_gw_config cfg;
	struct mqttsn_msg m;
	int s;

	(void)state;
	mqttsn_gw_fini(F.gw);
	test_free(F.gw);
	cfg_default(&cfg);
	cfg.mountpoint = "sn/";
	assert_int_equal(setup_cfg(&cfg), 0);
	s = connect(1, "c1", 60);
	in(1,
	   (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE, .sub = { 3, 0, GW_SLICE_STR("a/+") } });
	assert_string_equal(broker(BK_SUB)->topic, "sn/a/+");
	out(MQTTSN_SUBACK);
	in(1, pub(MQTTSN_TOPIC_PREDEFINED, 0, 1, 0, "x"));
	assert_string_equal(broker(BK_PUB)->topic, "sn/sensors/temperature");
	in(7, pub(MQTTSN_TOPIC_SHORT, -1, mqttsn_short_id('a', 'b'), 0, "x"));
	assert_string_equal(broker(BK_PUB)->topic, "sn/ab");
	/* Deliveries lose the mountpoint; topics outside it never reach the client. */
	deliver(s, "sn/sensors/temperature", "1", 0);
	m = out(MQTTSN_PUBLISH);
	assert_int_equal(m.flags.topic_type, MQTTSN_TOPIC_PREDEFINED);
	assert_int_equal(mqttsn_gw_on_deliver(F.gw, F.clients[s], GW_SLICE_STR("other/x"),
					      GW_SLICE_STR("1"), 0, false, F.now),
			 -ENOENT);
	no_out();
}

static void test_advertise_searchgw(void **state)
{
	struct mqttsn_gw_config cfg;
	struct mqttsn_msg m;

	(void)state;
	mqttsn_gw_fini(F.gw);
	test_free(F.gw);
	cfg_default(&cfg);
	cfg.advertise_interval_ms = 900000;
	cfg.gateway_id = 42;
	assert_int_equal(setup_cfg(&cfg), 0);
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), 0);
	tick(0);
	m = out(MQTTSN_ADVERTISE);
	assert_int_equal(out_to()->len, 0); /* broadcast */
	assert_int_equal(m.advertise.gw_id, 42);
	assert_int_equal(m.advertise.duration, 900);
	tick(899999);
	no_out();
	tick(1);
	out(MQTTSN_ADVERTISE);
	/* 6.1: SEARCHGW is answered with GWINFO; sent to our own port, to the searcher only. */
	in(9, (struct mqttsn_msg){ .type = MQTTSN_SEARCHGW, .searchgw = { 1 } });
	m = out(MQTTSN_GWINFO);
	assert_int_equal(m.gwinfo.gw_id, 42);
	assert_int_equal(m.gwinfo.gw_addr.len, 0);
	assert_memory_equal(out_to()->data, addr(9).data, 6);
	no_out();
	/*
	 * 5.4.4: heard on the multicast group, it is answered through the
	 * broadcast service (Paho's GatewayTester listens for it on the group
	 * port, which a unicast reply may never reach), and to the searcher.
	 */
	in_group(9, (struct mqttsn_msg){ .type = MQTTSN_SEARCHGW, .searchgw = { 1 } });
	m = out(MQTTSN_GWINFO);
	assert_int_equal(out_to()->len, 0); /* broadcast */
	assert_int_equal(m.gwinfo.gw_id, 42);
	out(MQTTSN_GWINFO);
	assert_memory_equal(out_to()->data, addr(9).data, 6);
	no_out();
	assert_int_equal(F.gw->stats.datagrams_out, 5);
}

static void test_malformed_and_encap(void **state)
{
	static const uint8_t junk[] = { 0x05, 0x0c, 0x00 };
	/* A CONNECT through a forwarder with node id aa bb. */
	static const uint8_t fwd[] = { 0x05, 0xfe, 0x01, 0xaa, 0xbb, 0x08, 0x04,
				       0x04, 0x01, 0x00, 0x3c, 'f',  '1' };
	struct mqttsn_msg m;

	(void)state;
	in_raw(1, junk, sizeof(junk));
	in_raw(1, junk, 0);
	assert_int_equal(F.gw->stats.malformed, 2);
	no_out();
	in_raw(1, fwd, sizeof(fwd));
	broker(BK_CONNECT);
	m = out(MQTTSN_CONNACK);
	/* The answer goes back through the forwarder, to the same node. */
	assert_true(m.encapsulated);
	assert_int_equal(m.encap.ctrl, 0x01);
	assert_true(gw_slice_eq(m.encap.node_id, GW_SLICE_STR("\xaa\xbb")));
	assert_true(out_to()->encap);
	/* The same UDP address without the forwarder is another client. */
	in(1, (struct mqttsn_msg){ .type = MQTTSN_PINGREQ });
	out(MQTTSN_DISCONNECT);
	assert_int_equal(F.gw->stats.datagrams_in, 4);
}

static void test_next_timeout_and_init(void **state)
{
	struct mqttsn_gw_config cfg;
	struct mqttsn_gw *g = test_calloc(1, sizeof(*g));
	int s;

	(void)state;
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), -1);
	s = connect(1, "c1", 20);
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), 30000);
	deliver(s, "sensors/temperature", "1", 1);
	out(MQTTSN_PUBLISH);
	assert_int_equal(mqttsn_gw_next_timeout(F.gw, F.now), 10000);
	cfg_default(&cfg);
	cfg.max_clients = 0;
	assert_int_equal(mqttsn_gw_init(g, &cfg, &fake_ops, NULL, 0), -EINVAL);
	test_free(g);
}

static void test_alloc_failure(void **state)
{
	int s;

	(void)state;
	s = connect(1, "c1", 60);
	gw_mem_fail_after(1);
	assert_int_equal(mqttsn_gw_on_deliver(F.gw, F.clients[s],
					      GW_SLICE_STR("sensors/temperature"),
					      GW_SLICE_STR("1"), 0, false, F.now),
			 -ENOMEM);
	gw_mem_fail_after(1);
	in(2, connect_msg("c2", 60, false));
	assert_int_equal(out(MQTTSN_CONNACK).resp.rc, MQTTSN_RC_CONGESTION);
	gw_mem_fail_after(0);
	no_out();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_connect_and_disconnect),
		T(test_connect_refused),
		T(test_will_handshake_and_keepalive),
		T(test_will_update_and_delete),
		T(test_handshake_timeout),
		T(test_register_and_publish_in),
		T(test_qos2_in),
		T(test_subscribe_wildcard_register_out),
		T(test_subscribe_name_predef_short),
		T(test_retained_after_suback),
		T(test_retries),
		T(test_qos2_out),
		T(test_retries_qos2),
		T(test_retries_register_exhausted),
		T(test_retries_sleep_and_reconnect),
		T(test_qos_minus1),
		T(test_sleep_and_wake),
		T(test_sleep_then_connect),
		T(test_sleep_then_connect_will),
		T(test_max_clients),
		T(test_nat_rebinding),
		T(test_mountpoint),
		T(test_advertise_searchgw),
		T(test_malformed_and_encap),
		T(test_next_timeout_and_init),
		T(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
