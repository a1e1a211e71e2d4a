/*
 * test_uplink_drain.c - the uplink core's ready count (uplink_drain.c): the
 * first bl_ready messages of the backlog are marked, may go (id up to
 * peek_after, or memory only) and bl_last is the last of them; counting on
 * from bl_last gives what walking the backlog from its head gives. Checked
 * after every event of seeded random runs (publishes, commits, reads, acks,
 * outages, the drain rate's timer, memory spills) against the strict fake
 * store (uplink_fake.h; fake clock, no sockets). Uses the core's internals.
 */
#include "tests/gateway/uplink_fake.h"

#include "gateway/uplink_int.h"

struct run {
	uint16_t ackq[1 << 16];
	unsigned int ack_head, ack_tail;
	uint32_t rnd;
	uint32_t max_ready; /* the largest count seen */
	unsigned int checks;
};

static uint32_t run_rand(struct run *x)
{
	x->rnd = x->rnd * 1103515245u + 12345u;
	return (x->rnd >> 8) & 0xffff;
}

static void no_marks(struct gw_list *l)
{
	struct gw_list *pos;

	gw_list_for_each (pos, l)
		assert_false(gw_list_entry(pos, struct upl_msg, link)->ready);
}

/* The invariant of the ready count, and the count against a walk from the head. */
static void check_ready(struct run *x, struct gw_upl *u)
{
	struct gw_list *pos, *last = &u->blq;
	uint32_t marked = 0, walked = 0, counted;
	bool past = false, stop = false;

	gw_list_for_each (pos, &u->blq) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		if (m->ready) {
			assert_false(past); /* the marked ones are the first ones */
			assert_true(m->id <= u->peek_after);
			marked++;
			last = pos;
		} else {
			past = true;
		}
		/* What maybe_peek used to count on every pump. */
		if (!stop && m->id <= u->peek_after)
			walked++;
		else
			stop = true;
	}
	assert_int_equal(marked, u->bl_ready);
	assert_ptr_equal(last, u->bl_last);
	/* Counting on from bl_last, as maybe_peek does, uncapped. */
	counted = u->bl_ready;
	for (pos = u->bl_last->next; pos != &u->blq; pos = pos->next) {
		if (gw_list_entry(pos, struct upl_msg, link)->id > u->peek_after)
			break;
		counted++;
	}
	assert_int_equal(counted, walked);
	no_marks(&u->resume);
	no_marks(&u->live);
	no_marks(&u->held);
	no_marks(&u->inflight);
	if (u->bl_ready > x->max_ready)
		x->max_ready = u->bl_ready;
	x->checks++;
}

static void run_read(struct run *x)
{
	struct mqtt_pkt p;

	while (next_pkt(&p))
		if (p.type == MQTT_PUBLISH && p.publish.qos)
			x->ackq[x->ack_tail++ % (1 << 16)] = p.packet_id;
	F.rd = F.out_len = 0;
}

static void run_reconnect(struct run *x, struct gw_upl *u)
{
	struct mqtt_pkt p;

	if (u->state == UPL_WAIT) {
		now = gw_upl_deadline(u);
		gw_upl_on_timer(u, now);
		check_ready(x, u);
	}
	assert_int_equal(u->state, UPL_CONNECTING);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	feed_connack(u, run_rand(x) % 4 != 0, 0);
	check_ready(x, u);
	run_read(x);
}

static void run_one(uint32_t seed, unsigned int steps, unsigned int burst, uint16_t inflight,
		    enum gw_uplink_queue mode, uint32_t rate, struct run *x)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	unsigned int step, round;

	memset(x, 0, sizeof(*x));
	x->rnd = seed;
	cfg_init(&c);
	c.max_inflight = inflight;
	c.queue = mode;
	c.drain_rate = rate;
	u = mk(&c, &store_ops);
	F.strict = true;
	gw_upl_start(u, now);
	connect_up(u, true, 0);
	answer_peek(u);
	check_ready(x, u);
	for (step = 0; step < steps; step++) {
		unsigned int r = run_rand(x) % 100;

		if (r < 30) {
			unsigned int k, nb = 1 + run_rand(x) % burst;

			for (k = 0; k < nb && F.n_recs < MAX_RECS - 1; k++) {
				char topic[16], v[16];

				snprintf(topic, sizeof(topic), "fieldmq/t%u", run_rand(x) % 7);
				snprintf(v, sizeof(v), "%u", step);
				local_msg(u, topic, v, run_rand(x) % 8 ? 1 : 0,
					  run_rand(x) % 2 ? &dummy_hold : NULL);
				check_ready(x, u);
			}
		} else if (r < 42) {
			store_commit(u);
		} else if (r < 57) {
			if (F.peek_pending)
				answer_peek(u);
		} else if (r < 87) {
			unsigned int k, n = 1 + run_rand(x) % 8;

			for (k = 0; k < n && x->ack_head != x->ack_tail; k++) {
				feed_ack(u, MQTT_PUBACK, x->ackq[x->ack_head++ % (1 << 16)]);
				check_ready(x, u);
			}
		} else if (r < 93) {
			now += run_rand(x) % 500;
			gw_upl_on_timer(u, now);
		} else if (u->state == UPL_UP) {
			gw_upl_on_transport_down(u, -ECONNRESET, now);
			x->ack_head = x->ack_tail;
			check_ready(x, u);
			if (F.peek_pending)
				answer_peek(u); /* stale now: ignored */
		} else {
			run_reconnect(x, u);
		}
		check_ready(x, u);
		run_read(x);
	}
	/* Drain what is left, still checking. */
	if (u->state != UPL_UP)
		run_reconnect(x, u);
	for (round = 0; round < 200000; round++) {
		store_commit(u);
		if (F.peek_pending)
			answer_peek(u);
		check_ready(x, u);
		run_read(x);
		if (x->ack_head == x->ack_tail && !F.peek_pending && !u->rate_blocked)
			break;
		if (x->ack_head != x->ack_tail)
			feed_ack(u, MQTT_PUBACK, x->ackq[x->ack_head++ % (1 << 16)]);
		now += 50;
		gw_upl_on_timer(u, now);
		check_ready(x, u);
	}
	assert_true(round < 200000);
	assert_true(gw_list_empty(&u->blq));
	assert_int_equal(u->bl_ready, 0);
	assert_ptr_equal(u->bl_last, &u->blq);
	gw_upl_free(u);
}

static void test_ready_count_random(void **state)
{
	static struct run x;
	uint32_t seed, max = 0;

	(void)state;
	for (seed = 1; seed <= 24; seed++) {
		run_one(seed, 700, 1 + seed % 3 * 60, (uint16_t)(1 + seed % 6),
			seed % 2 ? GW_UPQ_ALWAYS : GW_UPQ_OFFLINE, seed % 3 ? 0 : 400, &x);
		max = GW_MAX(max, x.max_ready);
		assert_true(x.checks > 700);
	}
	/* Bursts past the memory queue's bound: spills to the store while connected. */
	run_one(1001, 300, 2500, 4, GW_UPQ_OFFLINE, 0, &x);
	max = GW_MAX(max, x.max_ready);
	/* The count reached maybe_peek's bound (UPL_PEEK_BATCH / 2) somewhere. */
	assert_true(max >= UPL_PEEK_BATCH / 2);
}

static struct upl_msg *bl_msg(struct gw_upl *u, uint64_t id, struct gw_list *after)
{
	struct upl_msg *m = gw_upl__msg_new(GW_SLICE_STR("site/t"), GW_SLICE_STR("v"),
					    (struct gw_slice){ NULL, 0 }, 1, false, id);

	assert_non_null(m);
	gw_list__add(&m->link, after, after->next);
	gw_upl__q_account(u, m, Q_BACKLOG);
	return m;
}

/*
 * The paths the random runs do not reach (the backlog keeps its ids in
 * order): a message put among the marked ones, and the read position moved
 * back under them.
 */
static void test_ready_count_edges(void **state)
{
	static struct run x;
	struct gw_uplink_config c;
	struct upl_msg *a, *m;
	struct gw_upl *u;

	(void)state;
	memset(&x, 0, sizeof(x));
	cfg_init(&c);
	u = mk(&c, &store_ops);
	gw_upl__set_peek_after(u, 5);
	a = bl_msg(u, 1, u->blq.prev);
	bl_msg(u, 2, u->blq.prev);
	bl_msg(u, 0, u->blq.prev);
	check_ready(&x, u);
	assert_int_equal(gw_upl__bl_count(u), 3);
	check_ready(&x, u);
	/* Among the marked ones, may go: marked too. */
	m = bl_msg(u, 3, &a->link);
	check_ready(&x, u);
	assert_int_equal(u->bl_ready, 4);
	assert_true(m->ready);
	/* Among them, may not go yet: the run ends there (1, 9, 3, 2, 0). */
	bl_msg(u, 9, &a->link);
	check_ready(&x, u);
	assert_int_equal(gw_upl__bl_count(u), 1);
	check_ready(&x, u);
	gw_upl__set_peek_after(u, 10);
	assert_int_equal(gw_upl__bl_count(u), 5);
	check_ready(&x, u);
	/* The read position moves back: 1 alone may go. */
	gw_upl__set_peek_after(u, 2);
	check_ready(&x, u);
	assert_int_equal(gw_upl__bl_count(u), 1);
	check_ready(&x, u);
	/* The last marked one leaves, then the first. */
	gw_upl__set_peek_after(u, 10);
	assert_int_equal(gw_upl__bl_count(u), 5);
	gw_upl__msg_free(u, gw_list_entry(u->blq.prev, struct upl_msg, link));
	check_ready(&x, u);
	assert_int_equal(u->bl_ready, 4);
	gw_upl__msg_free(u, a);
	check_ready(&x, u);
	assert_int_equal(u->bl_ready, 3);
	gw_upl_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_count_random),
		cmocka_unit_test(test_ready_count_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
