/*
 * test_persist.c - the properties blob kept with persisted messages.
 */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_and_bad),
		cmocka_unit_test(test_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
