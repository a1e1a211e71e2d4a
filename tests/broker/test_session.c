/*
 * test_session.c - the sans-I/O protocol machine with a fake transport and a
 * fake clock: CONNECT/CONNACK, QoS flows, holds deferring PUBACK, keepalive,
 * will delay, takeover, flow control and in-process clients.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

#define S(x) gw_slice_cstr(x)

/* A fake transport: output is drained by the test, closes are recorded. */
struct fconn {
	struct brk_conn c;
	bool closed;
	bool paused;	     /* ops->pause said so: the glue would not read */
	unsigned int pauses; /* calls of ops->pause(c, true) */
	uint8_t out[8192];
	size_t out_len, out_off;
};

static void f_want_flush(struct brk_conn *c)
{
	c->dirty = false;
}

static void f_close(struct brk_conn *c)
{
	container_of(c, struct fconn, c)->closed = true;
}

static void f_pause(struct brk_conn *c, bool on)
{
	struct fconn *f = container_of(c, struct fconn, c);

	assert_true(on != f->paused);
	f->paused = on;
	if (on)
		f->pauses++;
}

static const struct brk_conn_ops fops = { .want_flush = f_want_flush,
					  .close = f_close,
					  .pause = f_pause };

struct env {
	struct brk b;
	int64_t now;
	struct fconn *conns[16];
	unsigned int n;
};

/* The broker's clock: the test's e->now, which the test moves. */
static int64_t fake_ms(void *arg)
{
	return *(const int64_t *)arg;
}

static int setup(void **state)
{
	struct env *e = gw_calloc(1, sizeof(*e));
	struct brk_config cfg;

	brk_config_defaults(&cfg);
	cfg.max_inflight = 4;
	cfg.sys_interval_ms = 0;
	e->now = gw_mono_ms();
	assert_int_equal(
		brk__init(&e->b, NULL, &cfg, NULL, &(const struct brk_clock){ fake_ms, &e->now }),
		0);
	*state = e;
	return 0;
}

static void fc_close(struct env *e, struct fconn *f)
{
	unsigned int i;

	brk__conn_closed(&f->c);
	for (i = 0; i < e->n; i++)
		if (e->conns[i] == f)
			e->conns[i] = NULL;
	gw_free(f);
}

static int teardown(void **state)
{
	struct env *e = *state;
	unsigned int i;

	for (i = 0; i < e->n; i++)
		if (e->conns[i])
			fc_close(e, e->conns[i]);
	brk__fini(&e->b);
	gw_free(e);
	assert_int_equal(gw_mem_used(), 0);
	return 0;
}

/* Move what the machine queued into f->out. */
static void drain(struct fconn *f)
{
	struct brk_obuf *o;
	unsigned int i;

	assert_int_equal(brk__conn_unstage(&f->c, 0), 0);
	o = f->c.out;
	if (!o)
		return;
	for (i = 0; i < o->n; i++) {
		const uint8_t *p = o->segs[i].m ? brk__msg_payload(o->segs[i].m) : o->buf;

		assert_true(f->out_len + o->segs[i].len <= sizeof(f->out));
		memcpy(f->out + f->out_len, p + o->segs[i].off, o->segs[i].len);
		f->out_len += o->segs[i].len;
	}
	brk__obuf_reset(o);
}

/* The next packet sent to the client, or false if none. */
static bool next_pkt(struct fconn *f, struct mqtt_pkt *p)
{
	int rc;

	drain(f);
	if (f->out_off == f->out_len)
		return false;
	rc = mqtt_decode(f->out + f->out_off, f->out_len - f->out_off, f->c.proto, NULL, p);
	assert_true(rc > 0);
	f->out_off += (size_t)rc;
	return true;
}

static void send_pkt(struct env *e, struct fconn *f, uint8_t version, const struct mqtt_pkt *p)
{
	uint8_t buf[2048];
	struct gw_writer w;

	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqtt_encode(&w, version, p), 0);
	brk__conn_input(&f->c, buf, w.len, e->now);
}

static struct fconn *fc_new(struct env *e)
{
	struct fconn *f = gw_calloc(1, sizeof(*f));

	unsigned int i;

	brk__conn_init(&f->c, &e->b, &fops);
	f->c.last_rx = e->now;
	for (i = 0; i < e->n && e->conns[i]; i++)
		;
	assert_true(i < GW_ARRAY_SIZE(e->conns));
	e->conns[i] = f;
	if (i == e->n)
		e->n++;
	return f;
}

static struct fconn *connect_v(struct env *e, const char *id, uint8_t version, bool clean,
			       uint16_t ka, const struct mqtt_props *props, struct mqtt_pkt *ack)
{
	struct fconn *f = fc_new(e);
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.connect.clean_start = clean;
	p.connect.keep_alive = ka;
	p.connect.client_id = S(id);
	if (props)
		p.props = *props;
	send_pkt(e, f, version, &p);
	assert_true(next_pkt(f, ack));
	assert_int_equal(ack->type, MQTT_CONNACK);
	return f;
}

static void subscribe(struct env *e, struct fconn *f, const char *filter, uint8_t qos)
{
	struct mqtt_sub_entry ent = { .filter = S(filter), .qos = qos };
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_SUBSCRIBE;
	p.packet_id = 1;
	p.subscribe.list = &ent;
	p.subscribe.count = 1;
	send_pkt(e, f, f->c.proto, &p);
	assert_true(next_pkt(f, &p));
	assert_int_equal(p.type, MQTT_SUBACK);
	assert_int_equal(p.suback.codes.p[0], qos);
}

static void publish(struct env *e, struct fconn *f, const char *topic, const char *payload,
		    uint8_t qos, uint16_t pid)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.packet_id = pid;
	p.publish.qos = qos;
	p.publish.topic = S(topic);
	p.publish.payload = S(payload);
	send_pkt(e, f, f->c.proto, &p);
}

static void ack(struct env *e, struct fconn *f, uint8_t type, uint16_t pid)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.packet_id = pid;
	send_pkt(e, f, f->c.proto, &p);
}

static void test_connect_v311(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f = connect_v(e, "c1", MQTT_V311, true, 60, NULL, &a);

	assert_int_equal(a.connack.reason_code, 0);
	assert_false(a.connack.session_present);
	assert_int_equal(f->c.state, BRK_CS_CONNECTED);
	assert_int_equal(e->b.st.clients_connected, 1);
	/* A second CONNECT is a protocol violation. */
	memset(&a, 0, sizeof(a));
	a.type = MQTT_CONNECT;
	a.connect.client_id = S("c1");
	send_pkt(e, f, MQTT_V311, &a);
	assert_true(f->closed);
	assert_int_equal(e->b.st.protocol_errors, 1);
}

static void test_connect_v5_assigned_id_and_limits(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f;

	e->b.cfg.max_keepalive = 30;
	e->b.cfg.receive_maximum = 100;
	f = connect_v(e, "", MQTT_V5, true, 120, NULL, &a);
	assert_int_equal(a.connack.reason_code, 0);
	assert_true(a.props.has_assigned_client_id);
	assert_true(a.props.assigned_client_id.len > 0);
	assert_true(a.props.has_server_keep_alive);
	assert_int_equal(a.props.server_keep_alive, 30);
	/* Our Receive Maximum, not max_inflight (the outgoing window, 4 here). */
	assert_true(a.props.has_receive_maximum);
	assert_int_equal(a.props.receive_maximum, 100);
	assert_int_equal(f->c.keepalive, 30);
	/* The default, 65535, is announced by leaving the property out. */
	e->b.cfg.receive_maximum = 65535;
	connect_v(e, "d", MQTT_V5, true, 60, NULL, &a);
	assert_false(a.props.has_receive_maximum);
}

static void test_empty_id_v311_persistent_rejected(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f = connect_v(e, "", MQTT_V311, false, 60, NULL, &a);

	assert_int_equal(a.connack.reason_code, MQTT_CONNACK_ID_REJECTED);
	assert_true(f->closed);
}

static void test_anonymous_refused(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f;

	e->b.cfg.allow_anonymous = false;
	f = connect_v(e, "x", MQTT_V5, true, 60, NULL, &a);
	assert_int_equal(a.connack.reason_code, MQTT_RC_NOT_AUTHORIZED);
	assert_true(f->closed);
}

static void test_qos1_flow_and_window(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *s = connect_v(e, "sub", MQTT_V311, true, 0, NULL, &a);
	struct fconn *p = connect_v(e, "pub", MQTT_V311, true, 0, NULL, &a);
	unsigned int i, n = 0;
	uint16_t first = 0;

	subscribe(e, s, "t", 1);
	for (i = 0; i < 6; i++) {
		publish(e, p, "t", "x", 1, (uint16_t)(i + 1));
		assert_true(next_pkt(p, &a));
		assert_int_equal(a.type, MQTT_PUBACK);
		assert_int_equal(a.packet_id, i + 1);
	}
	/* max_inflight 4: only four go out before acknowledgements. */
	while (next_pkt(s, &a)) {
		assert_int_equal(a.type, MQTT_PUBLISH);
		if (!n)
			first = a.packet_id;
		n++;
	}
	assert_int_equal(n, 4);
	assert_int_equal(s->c.s->n_queued, 2);
	ack(e, s, MQTT_PUBACK, first);
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBLISH);
	assert_false(next_pkt(s, &a));
}

static void test_qos2_inbound_once(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *s = connect_v(e, "sub", MQTT_V5, true, 0, NULL, &a);
	struct fconn *p = connect_v(e, "pub", MQTT_V5, true, 0, NULL, &a);

	subscribe(e, s, "q", 0);
	publish(e, p, "q", "once", 2, 9);
	assert_true(next_pkt(p, &a));
	assert_int_equal(a.type, MQTT_PUBREC);
	publish(e, p, "q", "once", 2, 9); /* resent */
	assert_true(next_pkt(p, &a));
	assert_int_equal(a.type, MQTT_PUBREC);
	ack(e, p, MQTT_PUBREL, 9);
	assert_true(next_pkt(p, &a));
	assert_int_equal(a.type, MQTT_PUBCOMP);
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBLISH);
	assert_false(next_pkt(s, &a));
}

/* An in-process subscriber that holds QoS >= 1 deliveries. */
struct holder {
	struct brk_hold *h[4];
	unsigned int n, got;
};

static void hold_deliver(void *arg, const struct brk_delivery *d)
{
	struct holder *hd = arg;

	hd->got++;
	if (d->hold && hd->n < 4)
		hd->h[hd->n++] = brk_hold_take(d);
}

static void test_hold_defers_puback(void **state)
{
	struct env *e = *state;
	struct holder hd = { .n = 0 };
	struct brk_client_opts o = { .client_id = "uplink", .deliver = hold_deliver, .arg = &hd };
	struct brk_client *ic;
	struct mqtt_pkt a;
	struct fconn *p;

	assert_int_equal(brk_client_new(&e->b, &o, &ic, NULL), 0);
	assert_int_equal(brk_client_subscribe(ic, S("fwd/#"), 1, 0, 0), 0);
	p = connect_v(e, "pub", MQTT_V311, true, 0, NULL, &a);
	publish(e, p, "fwd/a", "1", 1, 1);
	publish(e, p, "fwd/b", "2", 1, 2);
	publish(e, p, "other", "3", 1, 3);
	assert_int_equal(hd.n, 2);
	/* PUBACKs go out in order: 3 waits for 1 and 2. */
	assert_false(next_pkt(p, &a));
	brk_hold_release(hd.h[1]);
	assert_false(next_pkt(p, &a));
	brk_hold_release(hd.h[0]);
	assert_true(next_pkt(p, &a));
	assert_int_equal(a.packet_id, 1);
	assert_true(next_pkt(p, &a));
	assert_int_equal(a.packet_id, 2);
	assert_true(next_pkt(p, &a));
	assert_int_equal(a.packet_id, 3);
	/* QoS 0 has no hold; a hold released after the publisher left is just freed. */
	publish(e, p, "fwd/c", "4", 1, 4);
	assert_int_equal(hd.n, 3);
	fc_close(e, p);
	brk_hold_release(hd.h[2]);
	brk_client_free(ic, false);
}

/* An in-process subscriber that holds every QoS >= 1 delivery, as the uplink does. */
struct big_holder {
	struct brk_hold *h[256];
	unsigned int n;
};

static void big_deliver(void *arg, const struct brk_delivery *d)
{
	struct big_holder *hd = arg;

	if (d->hold) {
		assert_true(hd->n < GW_ARRAY_SIZE(hd->h));
		hd->h[hd->n++] = brk_hold_take(d);
	}
}

static void release_all(struct big_holder *hd)
{
	unsigned int i;

	for (i = 0; i < hd->n; i++)
		brk_hold_release(hd->h[i]);
	hd->n = 0;
}

/*
 * Issue 10: held acks slow a publisher down (its connection is not read),
 * they never disconnect it. max_held_acks 8: the 8th held ack pauses reading;
 * releasing them sends every PUBACK in order and resumes. While paused, the
 * keepalive is not enforced (the silence is ours).
 */
static void test_flow_held_acks_pause(void **state)
{
	struct env *e = *state;
	struct big_holder hd = { .n = 0 };
	struct brk_client_opts o = { .client_id = "uplink", .deliver = big_deliver, .arg = &hd };
	struct brk_client *ic;
	struct mqtt_pkt a;
	struct fconn *p, *q;
	unsigned int i;

	e->b.cfg.max_held_acks = 8;
	assert_int_equal(brk_client_new(&e->b, &o, &ic, NULL), 0);
	assert_int_equal(brk_client_subscribe(ic, S("fwd/#"), 1, 0, 0), 0);
	p = connect_v(e, "pub", MQTT_V311, true, 10, NULL, &a);
	q = connect_v(e, "other", MQTT_V311, true, 10, NULL, &a);
	for (i = 1; i <= 7; i++)
		publish(e, p, "fwd/a", "x", 1, (uint16_t)i);
	assert_false(p->paused);
	publish(e, p, "fwd/a", "x", 2, 8);
	assert_true(p->paused);
	assert_int_equal(e->b.st.read_pauses, 1);
	/* What was read already is still handled: more holds, no disconnection. */
	for (i = 9; i <= 40; i++)
		publish(e, p, "fwd/a", "x", 1, (uint16_t)i);
	assert_false(p->closed);
	assert_int_equal(hd.n, 40);
	assert_int_equal(p->c.s->n_acks, 40);
	assert_false(next_pkt(p, &a));
	/* Other connections are not affected. */
	publish(e, q, "fwd/b", "y", 1, 1);
	assert_false(q->paused);
	/* 30 s without a packet: a paused connection is not dropped for it. */
	e->now += 30000;
	brk__tick(&e->b, e->now);
	assert_false(p->closed);
	release_all(&hd);
	assert_false(p->paused);
	for (i = 1; i <= 40; i++) {
		assert_true(next_pkt(p, &a));
		assert_int_equal(a.type, i == 8 ? MQTT_PUBREC : MQTT_PUBACK);
		assert_int_equal(a.packet_id, i);
	}
	assert_false(next_pkt(p, &a));
	assert_int_equal(p->c.s->n_acks, 0);
	/* The keepalive counts again from the resume. */
	e->now += 14000;
	brk__tick(&e->b, e->now);
	assert_false(p->closed);
	brk_client_free(ic, false);
}

/*
 * 3.1.1 has no Receive Maximum: many QoS 1 and 2 exchanges open at once are
 * fine. A 5.0 client that exceeds the one we announced gets 0x93
 * [MQTT-3.3.4-9].
 */
static void test_flow_receive_maximum(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *v3, *v5;
	unsigned int i;

	e->b.cfg.receive_maximum = 3;
	v3 = connect_v(e, "v3", MQTT_V311, true, 0, NULL, &a);
	for (i = 1; i <= 100; i++) {
		publish(e, v3, "t", "x", 2, (uint16_t)i); /* no PUBREL: each stays open */
		assert_true(next_pkt(v3, &a));
		assert_int_equal(a.type, MQTT_PUBREC);
	}
	assert_false(v3->closed);
	v5 = connect_v(e, "v5", MQTT_V5, true, 0, NULL, &a);
	assert_true(a.props.has_receive_maximum);
	assert_int_equal(a.props.receive_maximum, 3);
	for (i = 1; i <= 3; i++) {
		publish(e, v5, "t", "x", 2, (uint16_t)i);
		assert_true(next_pkt(v5, &a));
		assert_int_equal(a.type, MQTT_PUBREC);
	}
	/* A completed exchange frees its slot. */
	ack(e, v5, MQTT_PUBREL, 1);
	assert_true(next_pkt(v5, &a));
	assert_int_equal(a.type, MQTT_PUBCOMP);
	publish(e, v5, "t", "x", 1, 4);
	assert_true(next_pkt(v5, &a));
	assert_int_equal(a.type, MQTT_PUBACK);
	publish(e, v5, "t", "x", 2, 5);
	assert_true(next_pkt(v5, &a));
	assert_false(v5->closed);
	/* The 4th open exchange. */
	publish(e, v5, "t", "x", 2, 6);
	assert_true(v5->closed);
	assert_true(next_pkt(v5, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
	assert_int_equal(a.disconnect.reason_code, MQTT_RC_RECEIVE_MAX_EXCEEDED);
}

static void test_keepalive_fake_clock(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f = connect_v(e, "ka", MQTT_V5, true, 10, NULL, &a);

	e->now += 14000;
	brk__tick(&e->b, e->now);
	assert_false(f->closed);
	e->now += 2000; /* 16 s > 1.5 x 10 s */
	brk__tick(&e->b, e->now);
	assert_true(f->closed);
	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
	assert_int_equal(a.disconnect.reason_code, MQTT_RC_KEEP_ALIVE_TIMEOUT);
}

static struct fconn *connect_will(struct env *e, const char *id, uint32_t delay, uint32_t expiry)
{
	struct fconn *f = fc_new(e);
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.connect.clean_start = true;
	p.connect.client_id = S(id);
	p.connect.has_will = true;
	p.connect.will.topic = S("will");
	p.connect.will.payload = S(id);
	p.connect.will.props.has_will_delay = delay != 0;
	p.connect.will.props.will_delay = delay;
	p.props.has_session_expiry = true;
	p.props.session_expiry = expiry;
	send_pkt(e, f, MQTT_V5, &p);
	assert_true(next_pkt(f, &p));
	return f;
}

static void test_will_delay_fake_clock(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *w = connect_v(e, "watch", MQTT_V5, true, 0, NULL, &a);
	struct fconn *f;

	subscribe(e, w, "will", 0);
	f = connect_will(e, "d5", 5, 100);
	fc_close(e, f); /* abnormal */
	assert_false(next_pkt(w, &a));
	e->now += 4000;
	brk__tick(&e->b, e->now);
	assert_false(next_pkt(w, &a));
	e->now += 1500;
	brk__tick(&e->b, e->now);
	assert_true(next_pkt(w, &a));
	assert_true(gw_slice_eq_cstr(a.publish.payload, "d5"));
	/* Session expiry before the delay: the will goes with the session. */
	f = connect_will(e, "d50", 50, 2);
	fc_close(e, f);
	e->now += 2500;
	brk__tick(&e->b, e->now);
	assert_true(next_pkt(w, &a));
	assert_true(gw_slice_eq_cstr(a.publish.payload, "d50"));
	assert_null(brk__session_find(&e->b, S("d50")));
}

static void test_takeover_v5(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f1 = connect_v(e, "same", MQTT_V5, true, 0, NULL, &a);
	struct fconn *f2 = connect_v(e, "same", MQTT_V5, true, 0, NULL, &a);

	assert_true(f1->closed);
	assert_true(next_pkt(f1, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
	assert_int_equal(a.disconnect.reason_code, MQTT_RC_SESSION_TAKEN_OVER);
	assert_false(f2->closed);
	assert_int_equal(e->b.st.clients_connected, 1);
}

static void test_offline_queue_and_resume(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *s = connect_v(e, "per", MQTT_V311, false, 0, NULL, &a);
	struct fconn *p = connect_v(e, "pub", MQTT_V311, true, 0, NULL, &a);
	unsigned int n = 0;

	subscribe(e, s, "o", 1);
	publish(e, p, "o", "1", 1, 1);
	assert_true(next_pkt(s, &a)); /* in flight, never acknowledged */
	fc_close(e, s);
	publish(e, p, "o", "2", 1, 2);
	publish(e, p, "o", "3", 0, 0); /* QoS 0 is not queued */
	s = connect_v(e, "per", MQTT_V311, false, 0, NULL, &a);
	assert_true(a.connack.session_present);
	while (next_pkt(s, &a)) {
		assert_int_equal(a.type, MQTT_PUBLISH);
		if (n == 0) {
			assert_true(a.publish.dup);
			assert_true(gw_slice_eq_cstr(a.publish.payload, "1"));
		} else {
			assert_false(a.publish.dup);
			assert_true(gw_slice_eq_cstr(a.publish.payload, "2"));
		}
		n++;
	}
	assert_int_equal(n, 2);
}

static void test_partial_reads(void **state)
{
	struct env *e = *state;
	struct fconn *f = fc_new(e);
	struct mqtt_pkt p;
	uint8_t buf[256];
	struct gw_writer w;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.connect.clean_start = true;
	p.connect.client_id = S("bytewise");
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqtt_encode(&w, MQTT_V311, &p), 0);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PINGREQ;
	assert_int_equal(mqtt_encode(&w, MQTT_V311, &p), 0);
	for (i = 0; i < w.len; i++)
		brk__conn_input(&f->c, buf + i, 1, e->now);
	assert_null(f->c.rbuf); /* nothing kept once whole */
	assert_true(next_pkt(f, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_true(next_pkt(f, &p));
	assert_int_equal(p.type, MQTT_PINGRESP);
}

static void test_malformed_counted(void **state)
{
	struct env *e = *state;
	struct mqtt_pkt a;
	struct fconn *f = connect_v(e, "m", MQTT_V5, true, 0, NULL, &a);
	static const uint8_t bad[] = { 0x82, 0x04, 0x00, 0x01, 0x00, 0x00 }; /* empty SUBSCRIBE */

	brk__conn_input(&f->c, bad, sizeof(bad), e->now);
	assert_true(f->closed);
	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
	assert_true(a.disconnect.reason_code >= 0x80);
	assert_int_equal(e->b.st.malformed + e->b.st.protocol_errors, 1);
}

/* Random packets after a valid CONNECT: nothing may crash or leak (ASan). */
static void test_random_packets(void **state)
{
	struct env *e = *state;
	uint32_t seed = 12345;
	unsigned int i, j;
	struct mqtt_pkt a;

	for (i = 0; i < 3000; i++) {
		uint8_t buf[64];
		struct fconn *f = connect_v(e, i % 3 ? "fz" : "fz2", i % 2 ? MQTT_V5 : MQTT_V311,
					    i % 5 == 0, 0, NULL, &a);
		struct fconn *sub = NULL;

		if (i % 7 == 0) {
			sub = connect_v(e, "watcher", MQTT_V5, true, 0, NULL, &a);
			subscribe(e, sub, "#", 2);
		}
		for (j = 0; j < 4 && !f->closed; j++) {
			size_t n, k;

			seed = seed * 1103515245u + 12345u;
			n = 2 + (seed >> 16) % 30;
			buf[0] = (uint8_t)(seed >> 8);
			buf[1] = (uint8_t)(n - 2);
			for (k = 2; k < n; k++) {
				seed = seed * 1103515245u + 12345u;
				buf[k] = (uint8_t)(seed >> 19);
				/* Bias toward short strings so decodes get far. */
				if (k == 2 || k == 3)
					buf[k] &= 0x03;
			}
			brk__conn_input(&f->c, buf, n, e->now);
		}
		drain(f);
		fc_close(e, f);
		if (sub) {
			drain(sub);
			fc_close(e, sub);
		}
		e->now += 100;
		brk__tick(&e->b, e->now);
	}
	/* Persistent sessions of the loop are still there; teardown frees them. */
}

/* True if the raw packet @p (as decoded) carries a Reason String or a User Property. */
static bool has_problem_props(const struct mqtt_pkt *p)
{
	return p->props.has_reason_string || p->props.has_user_props;
}

static void test_response_information(void **state)
{
	struct env *e = *state;
	struct mqtt_props pr;
	struct mqtt_pkt a;

	memset(&pr, 0, sizeof(pr));
	pr.has_request_response_info = true;
	pr.request_response_info = 1;
	connect_v(e, "rr1", MQTT_V5, true, 0, &pr, &a);
	assert_int_equal(a.connack.reason_code, 0);
	assert_true(a.props.has_response_info);
	assert_true(gw_slice_eq_cstr(a.props.response_info, "fieldmq/response/rr1/"));
	/* An assigned id gets its prefix too. */
	connect_v(e, "", MQTT_V5, true, 0, &pr, &a);
	assert_true(a.props.has_assigned_client_id);
	assert_true(a.props.has_response_info);
	assert_int_equal(a.props.response_info.len,
			 strlen("fieldmq/response/") + a.props.assigned_client_id.len + 1);
	/* [MQTT-3.1.2-28] 0, or absent: never. */
	pr.request_response_info = 0;
	connect_v(e, "rr0", MQTT_V5, true, 0, &pr, &a);
	assert_false(a.props.has_response_info);
	connect_v(e, "rrx", MQTT_V5, true, 0, NULL, &a);
	assert_false(a.props.has_response_info);
}

/* [MQTT-3.1.2-29] Request Problem Information 0: no Reason String on acks; 1: allowed. */
static void test_request_problem_information(void **state)
{
	struct env *e = *state;
	struct mqtt_props pr;
	struct mqtt_pkt a;
	struct fconn *f0, *f1;

	memset(&pr, 0, sizeof(pr));
	pr.has_request_problem_info = true;
	pr.request_problem_info = 0;
	f0 = connect_v(e, "rp0", MQTT_V5, true, 0, &pr, &a);
	assert_false(has_problem_props(&a));
	f1 = connect_v(e, "rp1", MQTT_V5, true, 0, NULL, &a);
	/* A PUBREL for an unknown id: PUBCOMP 0x92, a PUBREC for one: PUBREL 0x92. */
	ack(e, f0, MQTT_PUBREL, 77);
	assert_true(next_pkt(f0, &a));
	assert_int_equal(a.type, MQTT_PUBCOMP);
	assert_int_equal(a.ack.reason_code, MQTT_RC_PACKET_ID_NOT_FOUND);
	assert_false(has_problem_props(&a));
	ack(e, f0, MQTT_PUBREC, 78);
	assert_true(next_pkt(f0, &a));
	assert_int_equal(a.type, MQTT_PUBREL);
	assert_int_equal(a.ack.reason_code, MQTT_RC_PACKET_ID_NOT_FOUND);
	assert_false(has_problem_props(&a));
	/* The same for a client that did not say 0 carries one. */
	ack(e, f1, MQTT_PUBREL, 77);
	assert_true(next_pkt(f1, &a));
	assert_int_equal(a.ack.reason_code, MQTT_RC_PACKET_ID_NOT_FOUND);
	assert_true(a.props.has_reason_string);
	/* UNSUBACK with "no subscription existed": none either. */
	{
		struct mqtt_sub_entry ent = { .filter = S("never/subscribed") };
		struct mqtt_pkt p;

		memset(&p, 0, sizeof(p));
		p.type = MQTT_UNSUBSCRIBE;
		p.packet_id = 3;
		p.subscribe.list = &ent;
		p.subscribe.count = 1;
		send_pkt(e, f0, MQTT_V5, &p);
		assert_true(next_pkt(f0, &a));
		assert_int_equal(a.type, MQTT_UNSUBACK);
		assert_false(has_problem_props(&a));
	}
	/* DISCONNECT may still carry one (allowed there). */
	ack(e, f0, MQTT_PINGRESP, 0);
	assert_true(f0->closed);
	assert_true(next_pkt(f0, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
}

/* Enhanced authentication is not offered: 0x8C at CONNECT, AUTH later is a protocol error. */
static void test_auth_refused(void **state)
{
	struct env *e = *state;
	static const uint8_t auth_reauth[] = { 0xf0, 0x07, 0x19, 0x05, 0x15, 0x00, 0x02, 'x', 'y' };
	static const uint8_t auth_empty[] = { 0xf0, 0x00 };
	struct mqtt_props pr;
	struct mqtt_pkt a;
	struct fconn *f;

	memset(&pr, 0, sizeof(pr));
	pr.has_auth_method = true;
	pr.auth_method = S("SCRAM-SHA-1");
	f = connect_v(e, "au", MQTT_V5, true, 0, &pr, &a);
	assert_int_equal(a.connack.reason_code, MQTT_RC_BAD_AUTH_METHOD);
	assert_true(f->closed);
	assert_null(brk__session_find(&e->b, S("au")));

	f = connect_v(e, "au2", MQTT_V5, true, 0, NULL, &a);
	brk__conn_input(&f->c, auth_reauth, sizeof(auth_reauth), e->now);
	assert_true(f->closed);
	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
	assert_int_equal(a.disconnect.reason_code, MQTT_RC_PROTOCOL_ERROR);

	f = connect_v(e, "au3", MQTT_V5, true, 0, NULL, &a);
	brk__conn_input(&f->c, auth_empty, sizeof(auth_empty), e->now);
	assert_true(f->closed);
	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_DISCONNECT);
	assert_int_equal(a.disconnect.reason_code, MQTT_RC_PROTOCOL_ERROR);

	/* 3.1.1 has no AUTH: the connection is closed without a DISCONNECT. */
	f = connect_v(e, "au4", MQTT_V311, true, 0, NULL, &a);
	brk__conn_input(&f->c, auth_empty, sizeof(auth_empty), e->now);
	assert_true(f->closed);
	assert_false(next_pkt(f, &a));
}

/* Persistence hooks recorded: what is in the store now, by seq. */
struct pstore {
	uint64_t seqs[16];
	uint32_t expiry[16];
	bool has_expiry[16];
	uint16_t pid[16];
	uint8_t state[16], qos[16];
	char topic[16][16];
	unsigned int n, adds, dels;
	uint8_t blob[256]; /* the last session_save */
	size_t blob_len;
};

static void ps_add(void *arg, const char *id, uint64_t seq, const struct brk_pub *pub, uint16_t pid,
		   uint8_t state)
{
	struct pstore *ps = arg;
	unsigned int i;

	(void)id;
	ps->adds++;
	for (i = 0; i < ps->n && ps->seqs[i] != seq; i++)
		;
	assert_true(i < 16);
	if (i == ps->n)
		ps->n++;
	ps->seqs[i] = seq;
	ps->has_expiry[i] = pub->props && pub->props->has_expiry;
	ps->expiry[i] = pub->props ? pub->props->expiry : 0;
	ps->pid[i] = pid;
	ps->state[i] = state;
	ps->qos[i] = pub->qos;
	assert_true(pub->topic.len < sizeof(ps->topic[i]));
	if (pub->topic.len) /* a released marker's topic is { NULL, 0 } */
		memcpy(ps->topic[i], pub->topic.p, pub->topic.len);
	ps->topic[i][pub->topic.len] = '\0';
	/* Only messages in flight carry a pid; a released one has no topic. */
	assert_int_equal(pid != 0, state != BRK_MSG_QUEUED);
	assert_int_equal(pub->topic.len == 0, state == BRK_MSG_RELEASED);
}

static void ps_save(void *arg, const char *id, const void *blob, size_t len)
{
	struct pstore *ps = arg;

	(void)id;
	assert_true(len <= sizeof(ps->blob));
	memcpy(ps->blob, blob, len);
	ps->blob_len = len;
}

/* The stored record of @seq (index), or -1. */
static int ps_find(const struct pstore *ps, uint64_t seq)
{
	unsigned int i;

	for (i = 0; i < ps->n; i++)
		if (ps->seqs[i] == seq)
			return (int)i;
	return -1;
}

static void ps_del(void *arg, const char *id, uint64_t seq)
{
	struct pstore *ps = arg;
	unsigned int i;

	(void)id;
	ps->dels++;
	for (i = 0; i < ps->n; i++)
		if (ps->seqs[i] == seq) {
			ps->seqs[i] = ps->seqs[--ps->n];
			ps->expiry[i] = ps->expiry[ps->n];
			ps->has_expiry[i] = ps->has_expiry[ps->n];
			ps->pid[i] = ps->pid[ps->n];
			ps->state[i] = ps->state[ps->n];
			ps->qos[i] = ps->qos[ps->n];
			memcpy(ps->topic[i], ps->topic[ps->n], sizeof(ps->topic[i]));
			return;
		}
	fail_msg("deleting seq %llu never added", (unsigned long long)seq);
}

static const struct brk_persist_ops ps_ops = { .session_save = ps_save,
					       .session_msg_add = ps_add,
					       .session_msg_del = ps_del };

/*
 * A persistent session's QoS >= 1 messages reach the store while it is
 * online and unacknowledged (a kill -9 then loses nothing), and leave it on
 * the acknowledgement; a clean session's never touch it.
 */
static void test_persist_while_online(void **state)
{
	struct env *e = *state;
	struct pstore ps = { .n = 0 };
	struct mqtt_pkt a, m1, m2;
	struct fconn *s, *c, *p;

	brk_set_persist(&e->b, &ps_ops, &ps);
	s = connect_v(e, "dur", MQTT_V311, false, 0, NULL, &a);
	c = connect_v(e, "clean", MQTT_V311, true, 0, NULL, &a);
	p = connect_v(e, "pub", MQTT_V5, true, 0, NULL, &a);
	subscribe(e, s, "d/#", 2);
	subscribe(e, c, "d/#", 2);
	publish(e, p, "d/1", "one", 1, 1);
	publish(e, p, "d/2", "two", 2, 2);
	publish(e, p, "d/3", "zero", 0, 0);
	assert_int_equal(ps.n, 2); /* for "dur" only, QoS 0 never */
	assert_true(next_pkt(s, &m1));
	assert_true(next_pkt(s, &m2));
	assert_int_equal(m2.publish.qos, 2);
	ack(e, s, MQTT_PUBACK, m1.packet_id);
	assert_int_equal(ps.n, 1);
	/*
	 * QoS 2 at PUBREC: the message is replaced in the store (same seq, one
	 * write, no delete) by a marker of its PUBREL state with the pid, so
	 * that even a kill -9 now leaves the PUBREL owed; PUBCOMP deletes it.
	 */
	ack(e, s, MQTT_PUBREC, m2.packet_id);
	assert_true(next_pkt(s, &a)); /* d/3 */
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBREL);
	assert_int_equal(ps.n, 1);
	assert_int_equal(ps.adds, 3);
	assert_int_equal(ps.dels, 1);
	assert_int_equal(ps.state[0], BRK_MSG_RELEASED);
	assert_int_equal(ps.pid[0], m2.packet_id);
	assert_int_equal(ps.qos[0], 2);
	ack(e, s, MQTT_PUBCOMP, m2.packet_id);
	assert_int_equal(ps.n, 0);
	assert_int_equal(ps.dels, 2);
	/*
	 * A message in flight when the session goes offline is stored again
	 * (the same record: seq) with its pid and state, for a resend with DUP.
	 */
	publish(e, p, "d/4", "four", 1, 3);
	assert_int_equal(ps.n, 1);
	assert_int_equal(ps.adds, 4);
	assert_int_equal(ps.state[0], BRK_MSG_QUEUED);
	assert_true(next_pkt(s, &m1));
	assert_int_equal(m1.type, MQTT_PUBLISH);
	fc_close(e, s);
	assert_int_equal(ps.n, 1);
	assert_int_equal(ps.adds, 5);
	assert_int_equal(ps.state[0], BRK_MSG_PUBLISHED);
	assert_int_equal(ps.pid[0], m1.packet_id);
	brk_set_persist(&e->b, NULL, NULL);
}

/* The expiry saved is what is left of it, not the publisher's full interval. */
static void test_persist_expiry_remaining(void **state)
{
	struct env *e = *state;
	struct pstore ps = { .n = 0 };
	struct mqtt_pkt a, p;
	struct fconn *s, *pb;

	brk_set_persist(&e->b, &ps_ops, &ps);
	pb = connect_v(e, "pub", MQTT_V5, true, 0, NULL, &a);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.packet_id = 1;
	p.publish.qos = 1;
	p.publish.retain = true;
	p.publish.topic = S("exp/r");
	p.publish.payload = S("r");
	p.props.has_message_expiry = true;
	p.props.message_expiry = 10;
	send_pkt(e, pb, MQTT_V5, &p);
	e->now += 4000;
	s = connect_v(e, "dur", MQTT_V311, false, 0, NULL, &a);
	subscribe(e, s, "exp/#", 1); /* the retained copy, 4 s old */
	assert_int_equal(ps.n, 1);
	assert_true(ps.has_expiry[0]);
	assert_int_equal(ps.expiry[0], 6);
	brk_set_persist(&e->b, NULL, NULL);
}

/*
 * Exactly once across a restart [MQTT-4.4.0-1]: what the store holds of a
 * session that went offline with messages in flight brings them back in
 * flight with their pids: a PUBREL for the released QoS 2 message, the
 * unacknowledged PUBLISHes again with DUP=1 and the same pid, then the
 * queued ones with pids not in use.
 */
static void test_persist_inflight_restore(void **state)
{
	struct env *e = *state;
	struct pstore ps = { .n = 0 };
	struct mqtt_pkt a, m[4];
	struct fconn *s, *p;
	struct brk_session *ss;
	uint64_t order[16];
	unsigned int i, j, n;

	brk_set_persist(&e->b, &ps_ops, &ps);
	s = connect_v(e, "dur", MQTT_V311, false, 0, NULL, &a);
	p = connect_v(e, "pub", MQTT_V311, true, 0, NULL, &a);
	subscribe(e, s, "r/#", 2);
	publish(e, p, "r/1", "one", 2, 1);
	publish(e, p, "r/2", "two", 2, 2);
	publish(e, p, "r/3", "three", 1, 3);
	publish(e, p, "r/4", "four", 1, 4);
	publish(e, p, "r/5", "five", 1, 5); /* beyond the window of 4: queued */
	for (i = 0; i < 4; i++) {
		assert_true(next_pkt(s, &m[i]));
		assert_int_equal(m[i].type, MQTT_PUBLISH);
	}
	assert_false(next_pkt(s, &a));
	ack(e, s, MQTT_PUBREC, m[0].packet_id);
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBREL);
	fc_close(e, s);
	assert_int_equal(ps.n, 5);
	for (i = 0; i < 5; i++) {
		int k = ps_find(&ps, i + 1);

		assert_true(k >= 0);
		assert_int_equal(ps.state[k], i == 0  ? BRK_MSG_RELEASED
					      : i < 4 ? BRK_MSG_PUBLISHED
						      : BRK_MSG_QUEUED);
		assert_int_equal(ps.pid[k], i < 4 ? m[i].packet_id : 0);
	}

	/* The broker forgets the session; a restore brings it back from ps. */
	brk_set_persist(&e->b, NULL, NULL);
	s = connect_v(e, "dur", MQTT_V311, true, 0, NULL, &a);
	fc_close(e, s);
	assert_null(brk__session_find(&e->b, S("dur")));
	assert_int_equal(brk_restore_session(&e->b, "dur", ps.blob, ps.blob_len), 0);
	for (n = 0; n < ps.n; n++)
		order[n] = ps.seqs[n];
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (order[j] < order[i]) {
				uint64_t t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
	for (i = 0; i < n; i++) {
		int k = ps_find(&ps, order[i]);
		struct brk_pub rp = { .topic = S(ps.topic[k]),
				      .payload = S("x"),
				      .qos = ps.qos[k] };

		assert_int_equal(brk_restore_session_msg(&e->b, "dur", order[i], &rp, ps.pid[k],
							 ps.state[k]),
				 0);
	}
	/* A pid in flight cannot come back twice; a released marker is QoS 2 only. */
	{
		struct brk_pub rp = { .topic = S("r/9"), .payload = S("x"), .qos = 1 };

		assert_int_equal(brk_restore_session_msg(&e->b, "dur", 99, &rp, m[1].packet_id,
							 BRK_MSG_PUBLISHED),
				 -EINVAL);
		assert_int_equal(
			brk_restore_session_msg(&e->b, "dur", 99, &rp, 999, BRK_MSG_RELEASED),
			-EINVAL);
		assert_int_equal(
			brk_restore_session_msg(&e->b, "dur", 99, &rp, 0, BRK_MSG_PUBLISHED),
			-EINVAL);
	}
	ss = brk__session_find(&e->b, S("dur"));
	assert_non_null(ss);
	assert_int_equal(ss->n_inflight, 4);
	assert_int_equal(ss->n_queued, 1);

	brk_set_persist(&e->b, &ps_ops, &ps);
	s = connect_v(e, "dur", MQTT_V311, false, 0, NULL, &a);
	assert_true(a.connack.session_present);
	/* [MQTT-4.4.0-1] PUBREL first (it was first), then the PUBLISHes again. */
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBREL);
	assert_int_equal(a.packet_id, m[0].packet_id);
	for (i = 1; i < 4; i++) {
		assert_true(next_pkt(s, &a));
		assert_int_equal(a.type, MQTT_PUBLISH);
		assert_int_equal(a.packet_id, m[i].packet_id);
		assert_true(a.publish.dup);
		assert_int_equal(a.publish.qos, m[i].publish.qos);
		assert_true(gw_slice_eq_cstr(a.publish.topic, i == 1   ? "r/2"
							      : i == 2 ? "r/3"
								       : "r/4"));
	}
	assert_false(next_pkt(s, &a)); /* the window (4) is full */
	ack(e, s, MQTT_PUBCOMP, m[0].packet_id);
	assert_int_equal(ps.n, 4);
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBLISH);
	assert_false(a.publish.dup);
	assert_true(gw_slice_eq(a.publish.topic, S("r/5")));
	for (i = 1; i < 4; i++)
		assert_int_not_equal(a.packet_id, m[i].packet_id);
	ack(e, s, MQTT_PUBACK, a.packet_id);
	ack(e, s, MQTT_PUBREC, m[1].packet_id);
	assert_true(next_pkt(s, &a));
	assert_int_equal(a.type, MQTT_PUBREL);
	ack(e, s, MQTT_PUBCOMP, m[1].packet_id);
	ack(e, s, MQTT_PUBACK, m[2].packet_id);
	ack(e, s, MQTT_PUBACK, m[3].packet_id);
	assert_int_equal(ps.n, 0);
	assert_int_equal(ss->n_inflight, 0);
	brk_set_persist(&e->b, NULL, NULL);
}

/* Holds and queued messages come from the pool: no malloc per message once warm. */
static void test_pool_steady_state(void **state)
{
	struct env *e = *state;
	struct holder hd = { .n = 0 };
	struct brk_client_opts o = { .client_id = "uplink", .deliver = hold_deliver, .arg = &hd };
	struct brk_client *ic;
	struct mqtt_pkt a;
	struct fconn *s, *p;
	uint64_t before;
	unsigned int i;

	assert_int_equal(brk_client_new(&e->b, &o, &ic, NULL), 0);
	assert_int_equal(brk_client_subscribe(ic, S("t"), 1, 0, 0), 0);
	s = connect_v(e, "sub", MQTT_V5, true, 0, NULL, &a);
	p = connect_v(e, "pub", MQTT_V5, true, 0, NULL, &a);
	subscribe(e, s, "t", 1);
	for (i = 0; i < 200; i++) {
		hd.n = 0;
		publish(e, p, "t", "x", (uint8_t)(1 + i % 2), (uint16_t)(i + 1));
		assert_int_equal(hd.n, 1);
		brk_hold_release(hd.h[0]);
		assert_true(next_pkt(p, &a)); /* PUBACK / PUBREC */
		if (a.type == MQTT_PUBREC) {
			ack(e, p, MQTT_PUBREL, a.packet_id);
			assert_true(next_pkt(p, &a));
		}
		assert_true(next_pkt(s, &a));
		assert_int_equal(a.type, MQTT_PUBLISH);
		ack(e, s, MQTT_PUBACK, a.packet_id);
		if (i == 9)
			before = e->b.pool.n_mallocs;
	}
	/* Ten rounds to warm up, then 190 messages without a single node malloc. */
	assert_int_equal(e->b.pool.n_mallocs, before);
	assert_true(e->b.pool.n_free > 0);
	/* Idle for two ticks: the free list is given back. */
	brk__tick(&e->b, e->now);
	brk__tick(&e->b, e->now);
	assert_int_equal(e->b.pool.n_free, 0);
	brk_client_free(ic, false);
}

/*
 * The stage: a connection with nothing queued has its output encoded into the
 * broker's stage, not into buffers of its own; interleaved output moves the
 * earlier connection's bytes into its own out, and what the transport did not
 * write stays queued, in order.
 */
static void test_stage(void **state)
{
	struct env *e = *state;
	struct fconn *a = fc_new(e), *b = fc_new(e);
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.connect.clean_start = true;
	p.connect.client_id = S("a");
	send_pkt(e, a, MQTT_V311, &p);
	/* CONNACK of 3.1.1: 4 bytes, staged; nothing allocated for a. */
	assert_int_equal(a->c.stage_len, 4);
	assert_null(a->c.out);
	assert_int_equal(brk__conn_pending(&a->c), 4);
	/* A second packet while a ends the stage: appended to it. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PINGREQ;
	send_pkt(e, a, MQTT_V311, &p);
	assert_int_equal(a->c.stage_len, 6);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.connect.clean_start = true;
	p.connect.client_id = S("b");
	send_pkt(e, b, MQTT_V311, &p);
	assert_int_equal(b->c.stage_len, 4);
	assert_int_equal(b->c.stage_off, 6);
	assert_int_equal(e->b.n_staged, 2);
	/* b staged after a: a's next packet moves a's bytes to its own out. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PINGREQ;
	send_pkt(e, a, MQTT_V311, &p);
	assert_int_equal(a->c.stage_len, 0);
	assert_int_equal(a->c.out->total, 8);
	assert_int_equal(e->b.n_staged, 1);
	/* The transport wrote 3 bytes of b's: the last one moves to b's out. */
	assert_int_equal(brk__conn_unstage(&b->c, 3), 0);
	assert_int_equal(e->b.n_staged, 0);
	assert_int_equal(e->b.stage.len, 0);
	assert_int_equal(b->c.out->total, 1);
	assert_int_equal(b->c.out->buf[0], 0); /* CONNACK return code */
	/* a's output is whole and in order. */
	assert_true(next_pkt(a, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_true(next_pkt(a, &p));
	assert_int_equal(p.type, MQTT_PINGRESP);
	assert_true(next_pkt(a, &p));
	assert_int_equal(p.type, MQTT_PINGRESP);
	assert_false(next_pkt(a, &p));
	/* Closing a staged connection leaves the stage empty. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PINGREQ;
	brk__obuf_reset(b->c.out);
	send_pkt(e, b, MQTT_V311, &p);
	assert_int_equal(b->c.stage_len, 2);
	fc_close(e, b);
	assert_int_equal(e->b.n_staged, 0);
	assert_int_equal(e->b.stage.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect_v311, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_v5_assigned_id_and_limits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_empty_id_v311_persistent_rejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_anonymous_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos1_flow_and_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_inbound_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_defers_puback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_fake_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_will_delay_fake_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_v5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_queue_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_information, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_problem_information, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_while_online, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_expiry_remaining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_inflight_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_steady_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_held_acks_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_receive_maximum, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
