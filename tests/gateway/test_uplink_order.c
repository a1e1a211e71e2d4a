/*
 * test_uplink_order.c - the uplink core's fair drain (backlog and live
 * traffic interleaved, the drain rate) and its order per topic, down to a
 * seeded random mix of topics, outages and spills against the strict fake
 * store (uplink_fake.h; fake clock, no sockets).
 */
#include "tests/gateway/uplink_fake.h"

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
		cmocka_unit_test(test_fair_interleave),
		cmocka_unit_test(test_fair_drain_rate),
		cmocka_unit_test(test_live_waits_for_its_topic),
		cmocka_unit_test(test_order_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
