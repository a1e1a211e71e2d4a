/*
 * uplink_fake.h - the world of the uplink core's unit tests (test_uplink*.c):
 * a fake clock (now, wall), a fake transport (bytes out are decoded with the
 * broker's codec as a server would, bytes in are encoded with it), a fake
 * store (F.strict: appends and acks take effect at store_commit(), as st_*
 * do) and a fake local broker. Each test program includes it once; its
 * state is the program's (static), reset by mk().
 */
#ifndef FIELDMQ_TESTS_UPLINK_FAKE_H
#define FIELDMQ_TESTS_UPLINK_FAKE_H

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

static inline int f_connect(void *arg)
{
	((struct fake *)arg)->connects++;
	return 0;
}

static inline int f_send(void *arg, const void *p, size_t len)
{
	struct fake *f = arg;

	assert_true(f->out_len + len <= OUT_CAP);
	memcpy(f->out + f->out_len, p, len);
	f->out_len += len;
	return 0;
}

static inline void f_close(void *arg)
{
	((struct fake *)arg)->closes++;
}

static inline int f_append(void *arg, const struct st_record *rec, bool waited, uint64_t *id)
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

static inline int f_peek(void *arg, uint64_t after, size_t max_n)
{
	struct fake *f = arg;

	f->peeks++;
	f->peek_pending = true;
	f->peek_after = after;
	f->peek_max = max_n;
	return 0;
}

static inline int f_ack(void *arg, uint64_t id)
{
	struct fake *f = arg;
	unsigned int i;

	for (i = 0; i < f->n_recs; i++)
		if (f->recs[i].id == id)
			f->recs[i].acked = true;
	return 0;
}

static inline int f_local(void *arg, const struct brk_pub *pub)
{
	struct fake *f = arg;

	assert_true(f->n_local < 16);
	snprintf(f->local[f->n_local], sizeof(f->local[0]), "%.*s", (int)pub->topic.len,
		 (const char *)pub->topic.p);
	f->local_qos[f->n_local++] = pub->qos;
	return 0;
}

static inline void f_release(void *arg, void *hold)
{
	(void)hold;
	((struct fake *)arg)->holds++;
}

static inline uint32_t f_random(void *arg)
{
	return ((struct fake *)arg)->rnd;
}

/* The wall clock the core is given (message expiries). */
static int64_t wall __attribute__((unused));

static inline int64_t f_wall(void *arg)
{
	(void)arg;
	return wall;
}

static const struct gw_upl_ops store_ops __attribute__((unused)) = {
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

static const struct gw_upl_ops mem_ops __attribute__((unused)) = {
	.connect = f_connect,
	.send = f_send,
	.close = f_close,
	.local_publish = f_local,
	.hold_release = f_release,
	.random = f_random,
	.wall_ms = f_wall,
};

static struct fake F __attribute__((unused));
static int64_t now __attribute__((unused));
static int dummy_hold __attribute__((unused));

static inline void cfg_init(struct gw_uplink_config *c)
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

static inline struct gw_upl *mk(const struct gw_uplink_config *c, const struct gw_upl_ops *ops)
{
	struct gw_upl *u;

	memset(&F, 0, sizeof(F));
	F.version = c->protocol == 4 ? MQTT_V311 : MQTT_V5;
	now = 1000000;
	assert_int_equal(gw_upl_new(c, "fieldmq/gw1/status", ops, &F, NULL, &u), 0);
	return u;
}

/* The next packet the core sent, decoded as a server would; false when none is left. */
static inline bool next_pkt(struct mqtt_pkt *p)
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

static inline void expect_type(struct mqtt_pkt *p, uint8_t type)
{
	assert_true(next_pkt(p));
	assert_int_equal(p->type, type);
}

static inline void feed(struct gw_upl *u, const struct mqtt_pkt *p)
{
	uint8_t buf[4096];
	struct gw_writer w;

	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mqtt_encode(&w, F.version, p), 0);
	gw_upl_on_data(u, buf, w.len, now);
}

static inline void feed_ack(struct gw_upl *u, uint8_t type, uint16_t pid)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.packet_id = pid;
	feed(u, &p);
}

static inline void feed_connack(struct gw_upl *u, bool sp, uint16_t recv_max)
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

static inline void feed_suback(struct gw_upl *u, uint16_t pid)
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
static inline void connect_up(struct gw_upl *u, bool sp, uint16_t recv_max)
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

static inline void local_msg(struct gw_upl *u, const char *topic, const char *payload, uint8_t qos,
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
static inline void answer_peek(struct gw_upl *u)
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
static inline void store_commit(struct gw_upl *u)
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

static inline unsigned int count_publishes(void)
{
	struct mqtt_pkt p;
	unsigned int n = 0;

	while (next_pkt(&p))
		n += p.type == MQTT_PUBLISH;
	return n;
}

#endif
