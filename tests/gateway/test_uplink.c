/*
 * test_uplink.c - the uplink's sans-I/O core with a fake clock, a fake
 * transport, a fake store and a fake local broker (uplink_fake.h): the
 * session, the window, holds, the store queue, expiry, prefixes, keepalive,
 * resume, MQTT 3.1.1. The fair drain and the order per topic are in
 * test_uplink_order.c, the connection's life in test_uplink_link.c.
 */
#include "tests/gateway/uplink_fake.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
