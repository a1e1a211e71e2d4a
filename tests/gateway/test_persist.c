/*
 * test_persist.c - the properties blob kept with persisted messages.
 */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/persist.h"

static void test_roundtrip(void **state)
{
	static const uint8_t user[] = { 0x26, 0, 1, 'k', 0, 1, 'v' };
	struct brk_msg_props in = {
		.has_payload_format = true,
		.payload_format = 1,
		.has_expiry = true,
		.expiry = 0x01020304,
		.content_type = GW_SLICE_STR("text/plain"),
		.response_topic = GW_SLICE_STR("r/t"),
		.correlation_data = GW_SLICE_STR("\x00\x01"),
		.user_props = { user, sizeof(user) },
	};
	struct brk_msg_props out;
	int64_t saved_at;
	uint8_t buf[256];
	struct gw_writer w;

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(gw_props_encode(&in, 1234567890123LL, &w), 0);
	assert_int_equal(gw_props_decode((struct gw_slice){ buf, w.len }, &out, &saved_at), 0);
	assert_int_equal(saved_at, 1234567890123LL);
	assert_true(out.has_payload_format);
	assert_int_equal(out.payload_format, 1);
	assert_true(out.has_expiry);
	assert_int_equal(out.expiry, 0x01020304);
	assert_true(gw_slice_eq(out.content_type, in.content_type));
	assert_true(gw_slice_eq(out.response_topic, in.response_topic));
	assert_true(gw_slice_eq(out.correlation_data, in.correlation_data));
	assert_true(gw_slice_eq(out.user_props, in.user_props));
}

static void test_empty_and_bad(void **state)
{
	static const uint8_t bad[] = { 2, 0, 3, 1, 2, 3 }; /* expiry of 3 bytes */
	static const uint8_t short_[] = { 3, 0, 9, 'a' };  /* declared 9, has 1 */
	static const uint8_t unknown[] = { 99, 0, 1, 'x', 1, 0, 1, 1 };
	struct brk_msg_props out;
	int64_t saved_at;
	uint8_t buf[8];
	struct gw_writer w;

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(gw_props_encode(NULL, 5, &w), 0);
	assert_int_equal(w.len, 0);
	assert_int_equal(gw_props_decode((struct gw_slice){ buf, 0 }, &out, &saved_at), 0);
	assert_false(out.has_expiry);
	assert_int_equal(saved_at, 0);
	assert_int_equal(gw_props_decode((struct gw_slice){ bad, sizeof(bad) }, &out, &saved_at),
			 -EBADMSG);
	assert_int_equal(
		gw_props_decode((struct gw_slice){ short_, sizeof(short_) }, &out, &saved_at),
		-EBADMSG);
	/* an id from a newer build is skipped */
	assert_int_equal(
		gw_props_decode((struct gw_slice){ unknown, sizeof(unknown) }, &out, &saved_at), 0);
	assert_true(out.has_payload_format);
}

static void test_overflow(void **state)
{
	struct brk_msg_props in = { .content_type = GW_SLICE_STR("too long for the buffer") };
	uint8_t buf[8];
	struct gw_writer w;

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(gw_props_encode(&in, 1234567890123LL, &w), -EMSGSIZE);
}

/*
 * A session message's pid and state ride in its props blob as an optional
 * entry: queued messages (and every record of older builds) have none, the
 * props decoder (and older builds) skip it.
 */
static void test_flight(void **state)
{
	static const uint8_t old_blob[] = { 1, 0, 1, 1 }; /* payload format only */
	static const uint8_t zero_pid[] = { 8, 0, 3, BRK_MSG_PUBLISHED, 0, 0 };
	static const uint8_t bad_state[] = { 8, 0, 3, 7, 0, 1 };
	static const uint8_t short_[] = { 8, 0, 2, BRK_MSG_RELEASED, 1 };
	struct brk_msg_props in = { .has_payload_format = true, .payload_format = 1 }, out;
	int64_t saved_at;
	uint8_t buf[64], st;
	struct gw_writer w;
	uint16_t pid;

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(gw_flight_encode(0, BRK_MSG_QUEUED, &w), 0);
	assert_int_equal(w.len, 0);
	assert_int_equal(gw_props_encode(&in, 5, &w), 0);
	assert_int_equal(gw_flight_encode(0xabcd, BRK_MSG_PUBLISHED, &w), 0);
	assert_int_equal(w.len, 4 + 6);
	assert_int_equal(gw_flight_decode((struct gw_slice){ buf, w.len }, &pid, &st), 0);
	assert_int_equal(pid, 0xabcd);
	assert_int_equal(st, BRK_MSG_PUBLISHED);
	assert_int_equal(gw_props_decode((struct gw_slice){ buf, w.len }, &out, &saved_at), 0);
	assert_true(out.has_payload_format);
	assert_int_equal(out.payload_format, 1);

	/* A released marker: the entry alone. */
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(gw_flight_encode(7, BRK_MSG_RELEASED, &w), 0);
	assert_int_equal(gw_flight_decode((struct gw_slice){ buf, w.len }, &pid, &st), 0);
	assert_int_equal(pid, 7);
	assert_int_equal(st, BRK_MSG_RELEASED);

	/* Records of older builds: queued. */
	assert_int_equal(
		gw_flight_decode((struct gw_slice){ old_blob, sizeof(old_blob) }, &pid, &st), 0);
	assert_int_equal(pid, 0);
	assert_int_equal(st, BRK_MSG_QUEUED);
	assert_int_equal(gw_flight_decode((struct gw_slice){ NULL, 0 }, &pid, &st), 0);
	assert_int_equal(st, BRK_MSG_QUEUED);

	assert_int_equal(
		gw_flight_decode((struct gw_slice){ zero_pid, sizeof(zero_pid) }, &pid, &st),
		-EBADMSG);
	assert_int_equal(
		gw_flight_decode((struct gw_slice){ bad_state, sizeof(bad_state) }, &pid, &st),
		-EBADMSG);
	assert_int_equal(gw_flight_decode((struct gw_slice){ short_, sizeof(short_) }, &pid, &st),
			 -EBADMSG);
	gw_writer_init(&w, buf, 5);
	assert_int_equal(gw_flight_encode(1, BRK_MSG_RELEASED, &w), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_and_bad),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_flight),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
