/*
 * test_uplink_link.c - the uplink core's connection life (gateway/uplink.c)
 * with a fake clock and a fake transport (uplink_fake.h): the connection
 * attempt's timeout, the backoff between attempts and its reset after a
 * CONNACK, a connection that cannot even start, the server's keepalive,
 * packets that end the link (one before CONNACK, a malformed one, the
 * cloud's DISCONNECT) and stop.
 */
#include "tests/gateway/uplink_fake.h"

/* How long the core waits before its next attempt (it is waiting). */
static int64_t wait_ms(const struct gw_upl *u)
{
	return gw_upl_deadline(u) - now;
}

static bool connected(const struct gw_upl *u)
{
	struct gw_uplink_stats st;

	gw_upl_get_stats(u, &st);
	return st.connected;
}

static int connect_fail(void *arg)
{
	((struct fake *)arg)->connects++;
	return -EHOSTUNREACH;
}

static void test_connect_timeout(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;
	int64_t t0;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	assert_int_equal(F.connects, 1);
	/* DNS, TCP and TLS get 30 s together. */
	t0 = now;
	assert_int_equal(gw_upl_deadline(u), t0 + 30000);
	now = t0 + 29999;
	gw_upl_on_timer(u, now);
	assert_int_equal(F.closes, 0);
	now = t0 + 30000;
	gw_upl_on_timer(u, now);
	assert_int_equal(F.closes, 1);
	/* Then the first wait: reconnect_min (no jitter with a random 0). */
	assert_int_equal(wait_ms(u), 100);
	/* The second attempt opens the transport, but no CONNACK comes: 30 s again. */
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	assert_int_equal(F.connects, 2);
	now += 5000;
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	assert_int_equal(gw_upl_deadline(u), now + 30000);
	now += 30000;
	gw_upl_on_timer(u, now);
	assert_int_equal(F.closes, 2);
	assert_int_equal(wait_ms(u), 200);
	assert_false(connected(u));
	gw_upl_free(u);
}

static void test_backoff_grows_then_resets(void **state)
{
	static const int64_t waits[] = { 100, 200, 400, 800, 1600, 2000, 2000 };
	struct gw_uplink_config c;
	struct gw_upl *u;
	unsigned int k;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	/* Each failed attempt doubles the wait, up to reconnect_max. */
	for (k = 0; k < GW_ARRAY_SIZE(waits); k++) {
		gw_upl_on_transport_down(u, -ECONNREFUSED, now);
		assert_int_equal(wait_ms(u), waits[k]);
		/* Nothing happens before the deadline. */
		now = gw_upl_deadline(u) - 1;
		gw_upl_on_timer(u, now);
		assert_int_equal(F.connects, (int)k + 1);
		now++;
		gw_upl_on_timer(u, now);
		assert_int_equal(F.connects, (int)k + 2);
	}
	/* A CONNACK resets it: the next loss waits reconnect_min again. */
	connect_up(u, false, 0);
	assert_true(connected(u));
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	assert_false(connected(u));
	assert_int_equal(wait_ms(u), 100);
	/* The jitter shortens a wait by up to a quarter. */
	F.rnd = 0xffffffffu;
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_down(u, -ECONNREFUSED, now);
	assert_int_equal(wait_ms(u), 150);
	gw_upl_free(u);
}

static void test_connect_cannot_start(void **state)
{
	struct gw_upl_ops ops = mem_ops;
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	ops.connect = connect_fail;
	cfg_init(&c);
	u = mk(&c, &ops);
	gw_upl_start(u, now);
	/* Refused at once: nothing to close, wait and retry as for a failed attempt. */
	assert_int_equal(F.connects, 1);
	assert_int_equal(F.closes, 0);
	assert_int_equal(wait_ms(u), 100);
	/* A transport event while waiting is not ours: ignored. */
	gw_upl_on_transport_up(u, now);
	assert_false(next_pkt(&p));
	gw_upl_on_transport_down(u, -ECONNRESET, now);
	assert_int_equal(wait_ms(u), 100);
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	assert_int_equal(F.connects, 2);
	assert_int_equal(wait_ms(u), 200);
	gw_upl_free(u);
}

static void test_server_keep_alive(void **state)
{
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	assert_int_equal(p.connect.keep_alive, 10);
	/* [MQTT-3.2.2-21] the server's Server Keep Alive replaces ours. */
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.props.has_server_keep_alive = true;
	p.props.server_keep_alive = 4;
	feed(u, &p);
	expect_type(&p, MQTT_SUBSCRIBE);
	feed_suback(u, p.packet_id);
	expect_type(&p, MQTT_PUBLISH);
	feed_ack(u, MQTT_PUBACK, p.packet_id);
	assert_int_equal(gw_upl_deadline(u), now + 4000);
	now += 4000;
	gw_upl_on_timer(u, now);
	expect_type(&p, MQTT_PINGREQ);
	/* Any packet answers it (the PINGRESP may be behind a PUBLISH). */
	feed_ack(u, MQTT_PUBACK, 999);
	assert_int_equal(gw_upl_deadline(u), now + 4000);
	gw_upl_free(u);
}

static void test_packets_that_end_the_link(void **state)
{
	static const uint8_t reserved[] = { 0x00, 0x00 };
	struct gw_uplink_config c;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	/* Anything but CONNACK first is a protocol error; it is not published locally. */
	gw_upl_on_transport_up(u, now);
	expect_type(&p, MQTT_CONNECT);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = GW_SLICE_STR("site/cmd/1");
	p.publish.payload = GW_SLICE_STR("on");
	feed(u, &p);
	assert_int_equal(F.closes, 1);
	assert_int_equal(F.n_local, 0);
	assert_int_equal(wait_ms(u), 100);
	/* A malformed packet while connected (packet type 0 is reserved). */
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	connect_up(u, false, 0);
	gw_upl_on_data(u, reserved, sizeof(reserved), now);
	assert_int_equal(F.closes, 2);
	assert_false(connected(u));
	assert_int_equal(wait_ms(u), 100);
	/* The cloud's DISCONNECT (the message in flight waits for the next session: test_resume_inflight). */
	now = gw_upl_deadline(u);
	gw_upl_on_timer(u, now);
	connect_up(u, true, 0);
	local_msg(u, "fieldmq/a", "1", 1, NULL);
	expect_type(&p, MQTT_PUBLISH);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_DISCONNECT;
	p.disconnect.reason_code = MQTT_RC_SERVER_SHUTTING_DOWN;
	feed(u, &p);
	assert_int_equal(F.closes, 3);
	assert_false(connected(u));
	assert_int_equal(wait_ms(u), 100);
	assert_false(next_pkt(&p));
	gw_upl_free(u);
}

static void test_stop(void **state)
{
	struct gw_uplink_config c;
	struct gw_uplink_stats st;
	struct gw_upl *u;
	struct mqtt_pkt p;

	(void)state;
	cfg_init(&c);
	u = mk(&c, &mem_ops);
	gw_upl_start(u, now);
	connect_up(u, false, 0);
	local_msg(u, "fieldmq/a", "1", 1, NULL);
	expect_type(&p, MQTT_PUBLISH);
	/* Our goodbye: "offline", retained, on the will's topic, then DISCONNECT. */
	gw_upl_stop(u, now);
	expect_type(&p, MQTT_PUBLISH);
	assert_true(gw_slice_eq_cstr(p.publish.topic, "site/fieldmq/gw1/status"));
	assert_true(gw_slice_eq_cstr(p.publish.payload, "offline"));
	assert_true(p.publish.retain);
	expect_type(&p, MQTT_DISCONNECT);
	assert_int_equal(F.closes, 1);
	gw_upl_get_stats(u, &st);
	assert_false(st.connected);
	assert_int_equal(st.inflight, 0);
	/* Stopped: no timer, no attempt, a hold is given back at once, nothing sent. */
	assert_true(gw_upl_deadline(u) == INT64_MAX);
	now += 600000;
	gw_upl_on_timer(u, now);
	gw_upl_on_transport_up(u, now);
	local_msg(u, "fieldmq/b", "2", 1, &dummy_hold);
	assert_int_equal(F.holds, 1);
	assert_int_equal(F.connects, 1);
	assert_false(next_pkt(&p));
	gw_upl_stop(u, now);
	assert_int_equal(F.closes, 1);
	gw_upl_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_backoff_grows_then_resets),
		cmocka_unit_test(test_connect_cannot_start),
		cmocka_unit_test(test_server_keep_alive),
		cmocka_unit_test(test_packets_that_end_the_link),
		cmocka_unit_test(test_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
