/*
 * test_uplink.c - the uplink's sans-I/O core with a fake clock, a fake
 * transport (bytes out are decoded with the broker's codec, bytes in are
 * encoded with it), a fake store and a fake local broker.
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
#include "gateway/uplink.h"

#define OUT_CAP (1 << 20)
#define MAX_RECS 8192

struct frec {
	uint64_t id;
	char topic[128];
	char payload[64];
	uint8_t qos;
	bool retain;
	bool waited; /* appended with a publisher's ack waiting on it */
	bool acked;
	bool committed; /* strict store: visible to a peek */
	bool deleted;	/* strict store: its ack has committed */
};

struct fake {
	int connects;
	int closes;
	uint8_t out[OUT_CAP];
	size_t out_len, rd;
	struct frec recs[MAX_RECS];
	unsigned int n_recs;
	uint64_t next_id;
	int peeks;
	uint64_t peek_after;
	size_t peek_max;
	bool peek_pending;
	bool strict; /* like st_*: appends and acks take effect at store_commit() */
	char local[16][128];
	uint8_t local_qos[16];
	unsigned int n_local;
	int holds;
	uint32_t rnd;
	uint8_t version;
};

static int f_connect(void *arg)
{
	((struct fake *)arg)->connects++;
	return 0;
}

static int f_send(void *arg, const void *p, size_t len)
{
	struct fake *f = arg;

	assert_true(f->out_len + len <= OUT_CAP);
	memcpy(f->out + f->out_len, p, len);
	f->out_len += len;
	return 0;
}

static void f_close(void *arg)
{
	((struct fake *)arg)->closes++;
}

static int f_append(void *arg, const struct st_record *rec, bool waited, uint64_t *id)
{
	struct fake *f = arg;
	struct frec *r = &f->recs[f->n_recs++];

	assert_true(f->n_recs <= MAX_RECS);
	memset(r, 0, sizeof(*r));
	r->id = ++f->next_id;
	memcpy(r->topic, rec->topic.p, rec->topic.len);
	memcpy(r->payload, rec->payload.p, rec->payload.len);
	r->qos = rec->qos;
	r->retain = rec->retain;
	r->waited = waited;
	*id = r->id;
	return 0;
}

static int f_peek(void *arg, uint64_t after, size_t max_n)
{
	struct fake *f = arg;

	f->peeks++;
	f->peek_pending = true;
	f->peek_after = after;
	f->peek_max = max_n;
	return 0;
}

static int f_ack(void *arg, uint64_t id)
{
	struct fake *f = arg;
	unsigned int i;

	for (i = 0; i < f->n_recs; i++)
		if (f->recs[i].id == id)
			f->recs[i].acked = true;
	return 0;
}

static int f_local(void *arg, const struct brk_pub *pub)
{
	struct fake *f = arg;

	assert_true(f->n_local < 16);
	snprintf(f->local[f->n_local], sizeof(f->local[0]), "%.*s", (int)pub->topic.len,
		 (const char *)pub->topic.p);
	f->local_qos[f->n_local++] = pub->qos;
	return 0;
}

static void f_release(void *arg, void *hold)
{
	(void)hold;
	((struct fake *)arg)->holds++;
}

static uint32_t f_random(void *arg)
{
	return ((struct fake *)arg)->rnd;
}

/* The wall clock the core is given (message expiries). */
static int64_t wall;

static int64_t f_wall(void *arg)
{
	(void)arg;
	return wall;
}

static const struct gw_upl_ops store_ops = {
	.connect = f_connect,
	.send = f_send,
	.close = f_close,
	.q_append = f_append,
	.q_peek = f_peek,
	.q_ack = f_ack,
	.local_publish = f_local,
	.hold_release = f_release,
	.random = f_random,
	.wall_ms = f_wall,
};

static const struct gw_upl_ops mem_ops = {
	.connect = f_connect,
	.send = f_send,
	.close = f_close,
	.local_publish = f_local,
	.hold_release = f_release,
	.random = f_random,
	.wall_ms = f_wall,
};

static struct fake F;
static int64_t now;
static int dummy_hold;

static void cfg_init(struct gw_uplink_config *c)
{
	static char url[] = "mqtt://cloud:1883", host[] = "cloud", id[] = "gw1";
	static char f1[] = "fieldmq/#", f2[] = "loc/#", s1[] = "site/cmd/#", s2[] = "other/#";

	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->url = url;
	c->host = host;
	c->port = 1883;
	c->client_id = id;
	c->protocol = 5;
	c->keepalive_ms = 10000;
	c->session_expiry_ms = 86400000;
	c->forward[0].filter = f1;
	c->forward[0].qos = 1;
	c->forward[1].filter = f2;
	c->forward[1].qos = 1;
	c->n_forward = 2;
	c->subscribe[0].filter = s1;
	c->subscribe[0].qos = 1;
	c->subscribe[1].filter = s2;
	c->subscribe[1].qos = 2;
	c->n_subscribe = 2;
	c->remote_prefix = (char *)"site/";
	c->local_prefix = (char *)"loc/";
	c->queue = GW_UPQ_ALWAYS;
	c->queue_qos0 = true;
	c->max_inflight = 32;
	c->reconnect_min_ms = 100;
	c->reconnect_max_ms = 2000;
}

static struct gw_upl *mk(const struct gw_uplink_config *c, const struct gw_upl_ops *ops)
{
	struct gw_upl *u;

	memset(&F, 0, sizeof(F));
	F.version = c->protocol == 4 ? MQTT_V311 : MQTT_V5;
	now = 1000000;
	assert_int_equal(gw_upl_new(c, "fieldmq/gw1/status", ops, &F, NULL, &u), 0);
	return u;
}

/* The next packet the core sent, decoded as a server would; false when none is left. */
static bool next_pkt(struct mqtt_pkt *p)
{
	const struct mqtt_limits lim = { .from_client = true, .max_topic_alias = 0 };
	int rc;

	if (F.rd >= F.out_len)
		return false;
	rc = mqtt_decode(F.out + F.rd, F.out_len - F.rd, F.version, &lim, p);
	assert_true(rc > 0);
	F.rd += (size_t)rc;
	return true;
}

static void expect_type(struct mqtt_pkt *p, uint8_t type)
{
	assert_true(next_pkt(p));
	assert_int_equal(p->type, type);
}

static void feed(struct gw_upl *u, const struct mqtt_pkt *p)
{
	uint8_t buf[4096];
	struct gw_writer w;

	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqtt_encode(&w, F.version, p), 0);
	gw_upl_on_data(u, buf, w.len, now);
}

static void feed_ack(struct gw_upl *u, uint8_t type, uint16_t pid)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.packet_id = pid;
	feed(u, &p);
}

static void feed_connack(struct gw_upl *u, bool sp, uint16_t recv_max)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.connack.session_present = sp;
	if (recv_max && F.version == MQTT_V5) {
		p.props.has_receive_maximum = true;
		p.props.receive_maximum = recv_max;
	}
	feed(u, &p);
}

static void feed_suback(struct gw_upl *u, uint16_t pid)
{
	static const uint8_t codes[] = { 1, 2 };
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_SUBACK;
	p.packet_id = pid;
	p.suback.codes = (struct gw_slice){ codes, sizeof(codes) };
	feed(u, &p);
}

/*
 * Connects: CONNECT, CONNACK, then SUBSCRIBE and the birth PUBLISH, which is
 * acknowledged. With a store, the first read of the queue is answered empty.
 */
static void connect_up(struct gw_upl *u, bool sp, uint16_t recv_max)
{
	struct mqtt_pkt p;

	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, sp, recv_max);
	expect_type(&p, MQTT_SUBSCRIBE);
	feed_suback(u, p.packet_id);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/fieldmq/gw1/status"));
	assert_true(gw_slice_eq_cstr(p.publish.payload, "online"));
	assert_true(p.publish.retain);
	feed_ack(u, MQTT_PUBACK, p.packet_id);
}

static void local_msg(struct gw_upl *u, const char *topic, const char *payload, uint8_t qos,
		      void *hold)
{
	struct brk_delivery d;

	memset(&d, 0, sizeof(d));
	d.topic = gw_slice_cstr(topic);
	d.payload = gw_slice_cstr(payload);
	d.qos = qos;
	gw_upl_on_local(u, &d, hold, now);
}

/*
 * Answers the outstanding peek with the fake store's records after its id:
 * the unacknowledged ones, or with F.strict the committed, not deleted ones.
 */
static void answer_peek(struct gw_upl *u)
{
	static struct st_qrecord q[MAX_RECS];
	size_t n = 0;
	unsigned int i;

	F.peek_pending = false;
	for (i = 0; i < F.n_recs && n < F.peek_max; i++) {
		struct frec *r = &F.recs[i];

		if (r->id <= F.peek_after || (F.strict ? !r->committed || r->deleted : r->acked))
			continue;
		q[n].id = r->id;
		q[n].rec.topic = gw_slice_cstr(r->topic);
		q[n].rec.payload = gw_slice_cstr(r->payload);
		q[n].rec.props = (struct gw_slice){ NULL, 0 };
		q[n].rec.qos = r->qos;
		q[n].rec.retain = r->retain;
		n++;
	}
	gw_upl_on_peeked(u, 0, q, n, now);
}

/* Strict store: the pending transaction commits (appends become visible, acks delete). */
static void store_commit(struct gw_upl *u)
{
	unsigned int i;

	for (i = 0; i < F.n_recs; i++) {
		struct frec *r = &F.recs[i];

		if (r->acked)
			r->deleted = true;
		if (!r->committed) {
			r->committed = true;
			gw_upl_on_appended(u, r->id, 0, now);
		}
	}
}

static unsigned int count_publishes(void)
{
	struct mqtt_pkt p;
	unsigned int n = 0;

	while (next_pkt(&p))
		n += p.type == MQTT_PUBLISH;
	return n;
}

/* ------------------------------------------------------------------ tests */

static void test_backoff_bounds(void **state)
{
	const uint32_t rnds[] = { 0, 1, 0x80000000u, 0xffffffffu };
	unsigned int a, i;

	(void)state;
	for (a = 0; a < 40; a++) {
		for (i = 0; i < GW_ARRAY_SIZE(rnds); i++) {
			uint64_t base = 1000, d;
			unsigned int k;

			for (k = 0; k < a && base < 120000; k++)
				base *= 2;
			if (base > 120000)
				base = 120000;
			d = gw_upl_backoff(1000, 120000, a, rnds[i]);
			assert_true(d <= base);
			assert_true(d >= base * 3 / 4);
			assert_true(d <= 120000);
		}
	}
	/* Jitter really varies the wait. */
	assert_true(gw_upl_backoff(1000, 120000, 3, 0) != gw_upl_backoff(1000, 120000, 3, ~0u));
	/* min == max: always within a quarter of it. */
	assert_true(gw_upl_backoff(500, 500, 7, ~0u) >= 375);
}

static void test_connect_subscribe_and_resubscribe(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;
	struct mqtt_sub_iter it;
	struct mqtt_sub_entry e;
	int64_t d;
	int n = 0;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	assert_int_equal(F.connects, 1);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	/* Clean start false with a session expiry: the cloud keeps our subscriptions. */
	assert_false(p.connect.clean_start);
	assert_true(p.props.has_session_expiry);
	assert_int_equal(p.props.session_expiry, 86400);
	assert_int_equal(p.connect.keep_alive, 10);
	assert_true(gw_slice_eq_cstr(p.connect.client_id, "gw1"));
	assert_true(p.connect.has_will);
	assert_true(gw_slice_eq_cstr(p.connect.will.topic, "site/fieldmq/gw1/status"));
	assert_true(gw_slice_eq_cstr(p.connect.will.payload, "offline"));
	assert_true(p.connect.will.retain);
	feed_connack(u, false, 0);
	expect_type(&p, MQTT_SUBSCRIBE);
	mqtt_sub_iter_init(&it, &p);
	while (mqtt_sub_next(&it, &e) == 1) {
		/* 5.0: our own forwarded messages never come back down. */
		assert_true(e.no_local);
		assert_true(e.retain_as_published);
		n++;
	}
	assert_int_equal(n, 2);
	expect_type(&p, MQTT_PUBLISH); /* birth */

	/* Lost: the retry waits within the jittered backoff, then subscribes again. */
	F.rnd = 0xffffffffu;
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	d = gw_upl_deadline(u) - now;
	assert_true(d >= 75 && d <= 100);
	now += d - 1;
	gw_upl_on_timer(u, now);
	assert_int_equal(F.connects, 1);
	now += 1;
	gw_upl_on_timer(u, now);
	assert_int_equal(F.connects, 2);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, true, 0);
	expect_type(&p, MQTT_SUBSCRIBE);
	/* The birth message went in flight before the loss: it goes again (fresh). */
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.payload, "online"));

	/* A refused connection backs off further each time. */
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_down(u, -ECONNREFUSED, now);
	d = gw_upl_deadline(u) - now;
	assert_true(d >= 150 && d <= 200);
	gw_upl_free(u);
}

static void test_inflight_window(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;
	uint16_t first;
	char t[32];
	int i;

	(void)state;
	cfg_init(&c);
	c.max_inflight = 4;
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	for (i = 0; i < 10; i++) {
		snprintf(t, sizeof(t), "fieldmq/gw1/t%d", i);
		local_msg(u, t, "v", 1, &dummy_hold);
	}
	/* Not stored (no store): the holds go back at once. */
	assert_int_equal(F.holds, 10);
	expect_type(&p, MQTT_PUBLISH);
	first = p.packet_id;
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/fieldmq/gw1/t0"));
	assert_int_equal(count_publishes(), 3);
	feed_ack(u, MQTT_PUBACK, first);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/fieldmq/gw1/t4"));
	assert_false(next_pkt(&p));
	gw_upl_free(u);

	/* The cloud's Receive Maximum narrows the window. */
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 2);
	for (i = 0; i < 10; i++)
		local_msg(u, "fieldmq/x", "v", 1, NULL);
	assert_int_equal(count_publishes(), 2);
	gw_upl_free(u);
}

static void test_hold_until_commit(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &store_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	assert_int_equal(F.peeks, 1);
	answer_peek(u);
	local_msg(u, "fieldmq/gw1/a", "1", 1, &dummy_hold);
	assert_int_equal(F.n_recs, 1);
	assert_string_equal(F.recs[0].topic, "site/fieldmq/gw1/a");
	/* The store is told that an ack waits: it commits as soon as it is idle. */
	assert_true(F.recs[0].waited);
	/* Sent at once from memory, but the publisher waits for the commit. */
	expect_type(&p, MQTT_PUBLISH);
	assert_int_equal(F.holds, 0);
	gw_upl_on_appended(u, F.recs[0].id, 0, now);
	assert_int_equal(F.holds, 1);
	/* Deleted from the store only when the cloud acknowledges it. */
	assert_false(F.recs[0].acked);
	feed_ack(u, MQTT_PUBACK, p.packet_id);
	assert_true(F.recs[0].acked);
	/* A reading nobody waits on (no hold) may wait for the sync interval. */
	local_msg(u, "fieldmq/gw1/b", "2", 1, NULL);
	assert_int_equal(F.n_recs, 2);
	assert_false(F.recs[1].waited);
	gw_upl_free(u);
}

static void test_backlog_before_live(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;
	struct st_record rec = { .topic = GW_SLICE_STR("site/old"), .qos = 1 };
	uint64_t id;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &store_ops);
	/* Two records left by an earlier run. */
	rec.payload = GW_SLICE_STR("1");
	f_append(&F, &rec, false, &id);
	rec.payload = GW_SLICE_STR("2");
	f_append(&F, &rec, false, &id);
	gw_upl_start(u, now);
	connect_up(u, true, 0);
	assert_int_equal(F.peeks, 1);
	assert_int_equal(F.peek_after, 0);
	/* Live traffic during the read waits behind what the store holds. */
	local_msg(u, "fieldmq/new", "3", 1, NULL);
	assert_false(next_pkt(&p));
	answer_peek(u); /* the live record is not committed yet: not in the answer */
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.payload, "1"));
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.payload, "2"));
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/fieldmq/new"));
	assert_true(gw_slice_eq_cstr(p.publish.payload, "3"));
	gw_upl_free(u);
}

static void test_offline_goes_to_store(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	c.queue_qos0 = false;
	u = mk(&c, &store_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	answer_peek(u);
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	local_msg(u, "fieldmq/a", "1", 1, &dummy_hold);
	local_msg(u, "fieldmq/b", "q0", 0, NULL);
	/* QoS 1 is stored, QoS 0 dropped (queue_qos0 = no); nothing is sent. */
	assert_int_equal(F.n_recs, 1);
	gw_upl_on_appended(u, F.recs[0].id, 0, now);
	assert_int_equal(F.holds, 1);
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, true, 0);
	expect_type(&p, MQTT_SUBSCRIBE);
	expect_type(&p, MQTT_PUBLISH); /* birth */
	feed_ack(u, MQTT_PUBACK, p.packet_id);
	/* The drain reads the store. */
	assert_int_equal(F.peeks, 2);
	answer_peek(u);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.payload, "1"));
	gw_upl_free(u);

	/* queue_qos0 = yes keeps QoS 0 too while offline. */
	c.queue_qos0 = true;
	u = mk(&c, &store_ops);
	gw_upl_start(u, now);
	gw_upl_on_transport_down(u, -ECONNREFUSED, now);
	local_msg(u, "fieldmq/b", "q0", 0, NULL);
	assert_int_equal(F.n_recs, 1);
	assert_int_equal(F.recs[0].qos, 0);
	gw_upl_free(u);
}

/*
 * A message expiry counts the time the message waited (by the wall clock the
 * glue gives the core, not one the core reads): what is left is sent, an
 * expired message is not [MQTT-3.3.2-5], [MQTT-3.3.2-6].
 */
static void test_expiry_by_injected_wall_clock(void **state)
{
	struct brk_msg_props props = { .has_expiry = true, .expiry = 100 };
	struct gw_uplink_config c;
	struct brk_delivery d;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	gw_upl_on_transport_down(u, -ECONNREFUSED, now);
	memset(&d, 0, sizeof(d));
	d.qos = 1;
	d.props = &props;
	wall = 1700000000000;
	d.topic = gw_slice_cstr("fieldmq/a");
	d.payload = gw_slice_cstr("kept");
	gw_upl_on_local(u, &d, NULL, now);
	props.expiry = 10;
	d.topic = gw_slice_cstr("fieldmq/b");
	d.payload = gw_slice_cstr("expired");
	gw_upl_on_local(u, &d, NULL, now);
	/* 30 s pass on the wall clock while the cloud is away. */
	wall += 30000;
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	connect_up(u, false, 0);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.payload, "kept"));
	assert_true(p.props.has_message_expiry);
	assert_int_equal(p.props.message_expiry, 70);
	assert_false(next_pkt(&p));
	gw_upl_free(u);
}

static void test_drain_rate(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct st_record rec = { .topic = GW_SLICE_STR("site/q"), .qos = 1 };
	int64_t t0, end;
	unsigned int sent, i;
	uint64_t id;

	(void)state;
	cfg_init(&c);
	c.drain_rate = 10;
	c.max_inflight = 100;
	u = mk(&c, &store_ops);
	for (i = 0; i < 50; i++) {
		rec.payload = GW_SLICE_STR("x");
		f_append(&F, &rec, false, &id);
	}
	gw_upl_start(u, now);
	connect_up(u, true, 0);
	answer_peek(u);
	t0 = now;
	sent = count_publishes();
	assert_int_equal(sent, 1);
	/* Follow the core's timer for two seconds: 10 msgs/s. */
	end = t0 + 2000;
	while (gw_upl_deadline(u) <= end) {
		now = gw_upl_deadline(u);
		gw_upl_on_timer(u, now);
		sent += count_publishes();
	}
	assert_true(sent >= 20 && sent <= 22);
	gw_upl_free(u);

	/* 0 = unlimited: the window is the only bound. */
	c.drain_rate = 0;
	u = mk(&c, &store_ops);
	for (i = 0; i < 50; i++) {
		rec.payload = GW_SLICE_STR("x");
		f_append(&F, &rec, false, &id);
	}
	gw_upl_start(u, now);
	connect_up(u, true, 0);
	answer_peek(u);
	assert_int_equal(count_publishes(), 50);
	gw_upl_free(u);
}

static void test_prefixes_and_loop(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	/* Up: local_prefix stripped when present, remote_prefix prepended. */
	local_msg(u, "loc/a/b", "1", 1, NULL);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/a/b"));
	local_msg(u, "x/y", "2", 1, NULL);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/x/y"));
	/* The local status topic is never forwarded: the uplink owns its cloud twin. */
	local_msg(u, "fieldmq/gw1/status", "offline", 1, &dummy_hold);
	assert_false(next_pkt(&p));
	assert_int_equal(F.holds, 1);

	/* Down: remote_prefix stripped when present, local_prefix prepended. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = GW_SLICE_STR("site/cmd/1");
	p.publish.payload = GW_SLICE_STR("on");
	p.publish.qos = 1;
	p.packet_id = 7;
	feed(u, &p);
	p.publish.topic = GW_SLICE_STR("other/t");
	p.publish.qos = 2;
	p.packet_id = 8;
	feed(u, &p);
	/* A resent QoS 2 PUBLISH is not published twice. */
	p.publish.dup = true;
	feed(u, &p);
	assert_int_equal(F.n_local, 2);
	assert_string_equal(F.local[0], "loc/cmd/1");
	assert_string_equal(F.local[1], "loc/other/t");
	assert_int_equal(F.local_qos[1], 2);
	expect_type(&p, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 7);
	expect_type(&p, MQTT_PUBREC);
	expect_type(&p, MQTT_PUBREC);
	feed_ack(u, MQTT_PUBREL, 8);
	expect_type(&p, MQTT_PUBCOMP);
	/* What came down is published by the uplink itself; nothing goes back up here. */
	assert_false(next_pkt(&p));
	gw_upl_free(u);
}

static void test_keepalive(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	assert_int_equal(gw_upl_deadline(u), now + 10000);
	now += 10000;
	gw_upl_on_timer(u, now);
	expect_type(&p, MQTT_PINGREQ);
	/* A PINGRESP clears it; the next ping comes a keepalive later. */
	feed_ack(u, MQTT_PINGRESP, 0);
	assert_int_equal(gw_upl_deadline(u), now + 10000);
	now += 10000;
	gw_upl_on_timer(u, now);
	expect_type(&p, MQTT_PINGREQ);
	/* No answer within a keepalive: the link is dropped and retried. */
	now += 10000;
	gw_upl_on_timer(u, now);
	assert_int_equal(F.closes, 1);
	assert_true(gw_upl_deadline(u) <= now + 100);
	gw_upl_free(u);
}

static void test_resume_inflight(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;
	uint16_t pid;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	local_msg(u, "fieldmq/a", "1", 1, NULL);
	expect_type(&p, MQTT_PUBLISH);
	pid = p.packet_id;
	assert_false(p.publish.dup);
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, true, 0);
	expect_type(&p, MQTT_SUBSCRIBE);
	/* [MQTT-4.4.0-1] the session resumed: the same packet id, with DUP. */
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.payload, "1"));
	assert_int_equal(p.packet_id, pid);
	assert_true(p.publish.dup);
	gw_upl_free(u);
}

static void test_v311(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	c.protocol = 4;
	c.username = (char *)"user";
	c.password = (char *)"secret";
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	assert_false(p.connect.clean_start);
	assert_true(gw_slice_eq_cstr(p.connect.username, "user"));
	assert_true(gw_slice_eq_cstr(p.connect.password, "secret"));
	/* A refused CONNACK closes and backs off. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.connack.reason_code = MQTT_CONNACK_BAD_USER_OR_PASSWORD;
	feed(u, &p);
	assert_int_equal(F.closes, 1);
	assert_true(gw_upl_deadline(u) > now);
	gw_upl_free(u);
}

/* ----------------------------------------------------- fair drain tests */

struct sent {
	char topic[64];
	char payload[32];
	uint16_t pid;
	bool dup;
};

/* The PUBLISH packets sent since the last call, into @out (at most @max). */
static unsigned int collect(struct sent *out, unsigned int max)
{
	struct mqtt_pkt p;
	unsigned int n = 0;

	while (next_pkt(&p)) {
		if (p.type != MQTT_PUBLISH)
			continue;
		assert_true(n < max);
		snprintf(out[n].topic, sizeof(out[n].topic), "%.*s", (int)p.publish.topic.len,
			 (const char *)p.publish.topic.p);
		snprintf(out[n].payload, sizeof(out[n].payload), "%.*s", (int)p.publish.payload.len,
			 (const char *)p.publish.payload.p);
		out[n].pid = p.packet_id;
		out[n].dup = p.publish.dup;
		n++;
	}
	return n;
}

/* Reconnects after a drop: CONNECT, CONNACK (session present), SUBSCRIBE, birth acknowledged. */
static void reconnect(struct gw_upl *u)
{
	struct mqtt_pkt p;

	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, true, 0);
	expect_type(&p, MQTT_SUBSCRIBE);
	feed_suback(u, p.packet_id);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/fieldmq/gw1/status"));
	feed_ack(u, MQTT_PUBACK, p.packet_id);
}

/* Connected with the store read through, then @n messages on @topic stored during an outage. */
static struct gw_upl *with_backlog(struct gw_uplink_config *c, const char *topic, int n)
{
	struct gw_upl *u = mk(c, &store_ops);
	char v[16];
	int i;

	gw_upl_start(u, now);
	connect_up(u, true, 0);
	answer_peek(u);
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	for (i = 0; i < n; i++) {
		snprintf(v, sizeof(v), "%d", i);
		local_msg(u, topic, v, 1, NULL);
		gw_upl_on_appended(u, F.recs[F.n_recs - 1].id, 0, now);
	}
	assert_int_equal(count_publishes(), 0);
	reconnect(u);
	return u;
}

static void ack_all(struct gw_upl *u, const struct sent *s, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		feed_ack(u, MQTT_PUBACK, s[i].pid);
}

static int find_sent(const struct sent *s, unsigned int n, const char *topic, const char *payload)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s[i].topic, topic) && !strcmp(s[i].payload, payload))
			return (int)i;
	return -1;
}

static void test_fair_interleave(void **state)
{
	static struct sent s[256];
	struct gw_uplink_config c;
	struct gw_upl *u;
	unsigned int n, done = 0, i;
	char v[16];

	(void)state;
	cfg_init(&c);
	c.max_inflight = 2;
	u = with_backlog(&c, "fieldmq/a", 20);
	answer_peek(u);
	n = collect(s, 256);
	assert_int_equal(n, 2); /* the window: a0, a1 */
	for (i = 0; i < 10; i++) {
		snprintf(v, sizeof(v), "%u", i);
		local_msg(u, "fieldmq/b", v, 1, NULL);
	}
	/* The cloud acknowledges one at a time. */
	while (done < n) {
		feed_ack(u, MQTT_PUBACK, s[done++].pid);
		n += collect(s + n, 256 - n);
	}
	assert_int_equal(n, 30);
	/* One backlog, one live: b arrives alongside a, not after all of it. */
	for (i = 0; i < 10; i++) {
		char a[16];

		snprintf(v, sizeof(v), "%u", i);
		snprintf(a, sizeof(a), "%u", i + 2);
		assert_int_equal(find_sent(s, n, "site/fieldmq/b", v), (int)(2 + 2 * i));
		assert_int_equal(find_sent(s, n, "site/fieldmq/a", a), (int)(3 + 2 * i));
	}
	/* Every record deleted once acknowledged; nothing sent twice. */
	for (i = 0; i < F.n_recs; i++)
		assert_true(F.recs[i].acked);
	gw_upl_free(u);
}

static void test_fair_drain_rate(void **state)
{
	static struct sent s[256];
	struct gw_uplink_config c;
	struct gw_upl *u;
	unsigned int n, i, a = 0;
	int64_t stop;
	char v[16];

	(void)state;
	cfg_init(&c);
	c.drain_rate = 10;
	u = with_backlog(&c, "fieldmq/a", 50);
	answer_peek(u);
	assert_int_equal(collect(s, 256), 1); /* one token to start with */
	for (i = 0; i < 20; i++) {
		/* Live traffic at 10 msgs/s goes out at once, whatever the drain rate. */
		snprintf(v, sizeof(v), "%u", i);
		local_msg(u, "fieldmq/b", v, 1, NULL);
		n = collect(s, 256);
		assert_true(n >= 1);
		assert_string_equal(s[n - 1].topic, "site/fieldmq/b");
		assert_string_equal(s[n - 1].payload, v);
		a += n - 1;
		ack_all(u, s, n);
		/* 100 ms later, following the core's timer. */
		stop = now + 100;
		while (gw_upl_deadline(u) <= stop) {
			now = GW_MAX(now, gw_upl_deadline(u));
			gw_upl_on_timer(u, now);
			n = collect(s, 256);
			a += n;
			ack_all(u, s, n);
		}
		now = stop;
	}
	/* The backlog still goes at 10 msgs/s: about 20 in 2 s. */
	assert_true(a >= 18 && a <= 22);
	gw_upl_free(u);
}

static void test_live_waits_for_its_topic(void **state)
{
	static struct sent s[256];
	struct gw_uplink_config c;
	struct gw_upl *u;
	unsigned int n;
	int last_a;

	(void)state;
	cfg_init(&c);
	c.drain_rate = 10;
	u = with_backlog(&c, "fieldmq/a", 5);
	answer_peek(u);
	n = collect(s, 256);
	assert_int_equal(n, 1);
	/* A live message on a waits for a's backlog; QoS 0 too; b goes at once. */
	local_msg(u, "fieldmq/a", "live", 1, NULL);
	local_msg(u, "fieldmq/a", "live0", 0, NULL);
	local_msg(u, "fieldmq/b", "live", 1, NULL);
	n += collect(s + n, 256 - n);
	assert_int_equal(n, 2);
	assert_string_equal(s[1].topic, "site/fieldmq/b");
	while (gw_upl_deadline(u) <= now + 2000 && n < 8) {
		now = gw_upl_deadline(u);
		gw_upl_on_timer(u, now);
		n += collect(s + n, 256 - n);
	}
	assert_int_equal(n, 8);
	last_a = find_sent(s, n, "site/fieldmq/a", "4");
	assert_true(last_a > 0);
	assert_true(find_sent(s, n, "site/fieldmq/a", "live") > last_a);
	assert_true(find_sent(s, n, "site/fieldmq/a", "live0") >
		    find_sent(s, n, "site/fieldmq/a", "live"));
	gw_upl_free(u);
}

/*
 * A seeded random mix against the strict fake store: messages on five topics,
 * commits, reads, acknowledgements one at a time, outages, memory spills.
 * Per topic, every message's first transmission comes after all older ones'
 * (order per topic), every message arrives (nothing lost), and none is sent
 * again once acknowledged (what was sent is never read back from the store).
 */
#define MIX_TOPICS 5
#define MIX_MAX 8000

struct mix {
	int first[MIX_TOPICS]; /* highest sequence number seen per topic */
	unsigned int pub[MIX_TOPICS];
	uint8_t seen[MIX_TOPICS][MIX_MAX]; /* 1 sent, 2 acknowledged */
	uint16_t ackq[70000];
	int ackt[70000], acks[70000];
	unsigned int ack_head, ack_tail;
	unsigned int total, resent_after_ack, out_of_order;
	uint32_t rnd;
};

static uint32_t mix_rand(struct mix *x)
{
	x->rnd = x->rnd * 1103515245u + 12345u;
	return (x->rnd >> 8) & 0xffff;
}

static void mix_read(struct mix *x)
{
	struct mqtt_pkt p;

	while (next_pkt(&p)) {
		int t = -1, q = -1;

		if (p.type != MQTT_PUBLISH)
			continue;
		if (p.publish.topic.len == 15 && !memcmp(p.publish.topic.p, "site/fieldmq/t", 14)) {
			char buf[16];

			t = p.publish.topic.p[14] - '0';
			snprintf(buf, sizeof(buf), "%.*s", (int)p.publish.payload.len,
				 (const char *)p.publish.payload.p);
			q = atoi(buf);
			if (x->seen[t][q] == 2)
				x->resent_after_ack++;
			if (!x->seen[t][q]) {
				if (q <= x->first[t])
					x->out_of_order++;
				x->first[t] = q;
				x->seen[t][q] = 1;
			}
		}
		if (p.publish.qos) {
			x->ackq[x->ack_tail % 70000] = p.packet_id;
			x->ackt[x->ack_tail % 70000] = t;
			x->acks[x->ack_tail % 70000] = q;
			x->ack_tail++;
		}
	}
	F.rd = F.out_len = 0;
}

static void mix_ack(struct gw_upl *u, struct mix *x)
{
	unsigned int i = x->ack_head++ % 70000;

	if (x->ackt[i] >= 0)
		x->seen[x->ackt[i]][x->acks[i]] = 2;
	feed_ack(u, MQTT_PUBACK, x->ackq[i]);
	mix_read(x);
}

/* Reconnects; resumed messages and the birth are left to mix_read(). */
static void mix_reconnect(struct gw_upl *u, struct mix *x)
{
	struct mqtt_pkt p;

	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, true, 0);
	expect_type(&p, MQTT_SUBSCRIBE);
	feed_suback(u, p.packet_id);
	mix_read(x);
}

static void run_mix(uint32_t seed, unsigned int steps, unsigned int pub_weight, unsigned int burst,
		    uint16_t inflight)
{
	static struct mix x;
	struct gw_uplink_config c;
	struct gw_upl *u;
	unsigned int step, t, q, round;

	memset(&x, 0, sizeof(x));
	x.rnd = seed;
	for (t = 0; t < MIX_TOPICS; t++)
		x.first[t] = -1;
	cfg_init(&c);
	c.max_inflight = inflight;
	u = mk(&c, &store_ops);
	F.strict = true;
	gw_upl_start(u, now);
	connect_up(u, true, 0);
	answer_peek(u);
	for (step = 0; step < steps; step++) {
		unsigned int r = mix_rand(&x) % (pub_weight + 40);

		if (r < pub_weight) {
			unsigned int k, nb = 1 + (burst ? mix_rand(&x) % burst : 0);

			for (k = 0;
			     k < nb && x.total < MIX_MAX * MIX_TOPICS && F.n_recs < MAX_RECS - 1;
			     k++) {
				char v[16];

				t = mix_rand(&x) % MIX_TOPICS;
				if (x.pub[t] >= MIX_MAX)
					continue;
				snprintf(v, sizeof(v), "%u", x.pub[t]++);
				x.total++;
				{
					char topic[16];

					snprintf(topic, sizeof(topic), "fieldmq/t%u", t);
					local_msg(u, topic, v, 1, NULL);
				}
			}
		} else if (r < pub_weight + 10) {
			store_commit(u);
		} else if (r < pub_weight + 20) {
			if (F.peek_pending)
				answer_peek(u);
		} else if (r < pub_weight + 37) {
			if (x.ack_head != x.ack_tail)
				mix_ack(u, &x);
		} else if (F.closes + 1 == F.connects) {
			/* An outage (the transport is open: connects counts one more than closes). */
			gw_upl_on_transport_down(u, -ECONNRESET, now);
			F.closes++;
			if (F.peek_pending)
				answer_peek(u); /* stale now: ignored */
			x.ack_head = x.ack_tail;
			mix_read(&x);
		} else {
			mix_reconnect(u, &x);
		}
		mix_read(&x);
		if (F.closes == F.connects && mix_rand(&x) % 4 == 0) {
			mix_reconnect(u, &x);
		}
	}
	/* Quiesce: connected, everything committed, read and acknowledged. */
	if (F.closes == F.connects) {
		mix_reconnect(u, &x);
	}
	for (round = 0; round < 100000; round++) {
		store_commit(u);
		if (F.peek_pending)
			answer_peek(u);
		mix_read(&x);
		if (x.ack_head == x.ack_tail && !F.peek_pending)
			break;
		while (x.ack_head != x.ack_tail)
			mix_ack(u, &x);
	}
	assert_int_equal(x.out_of_order, 0);
	assert_int_equal(x.resent_after_ack, 0);
	for (t = 0; t < MIX_TOPICS; t++)
		for (q = 0; q < x.pub[t]; q++)
			if (x.seen[t][q] != 2)
				fail_msg("seed %u: t%u/%u never acknowledged (%u)", seed, t, q,
					 x.seen[t][q]);
	gw_upl_free(u);
}

static void test_order_random(void **state)
{
	uint32_t seed;

	(void)state;
	for (seed = 1; seed <= 40; seed++)
		run_mix(seed, 600, 30, 0, (uint16_t)(1 + seed % 5));
	/* Bursts deep enough to spill the memory queue to the store while connected. */
	run_mix(1001, 400, 30, 200, 2);
	run_mix(1002, 400, 30, 300, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_connect_subscribe_and_resubscribe),
		cmocka_unit_test(test_inflight_window),
		cmocka_unit_test(test_hold_until_commit),
		cmocka_unit_test(test_backlog_before_live),
		cmocka_unit_test(test_offline_goes_to_store),
		cmocka_unit_test(test_expiry_by_injected_wall_clock),
		cmocka_unit_test(test_drain_rate),
		cmocka_unit_test(test_prefixes_and_loop),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_resume_inflight),
		cmocka_unit_test(test_v311),
		cmocka_unit_test(test_fair_interleave),
		cmocka_unit_test(test_fair_drain_rate),
		cmocka_unit_test(test_live_waits_for_its_topic),
		cmocka_unit_test(test_order_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
