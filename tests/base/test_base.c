/*
 * test_base.c - reader/writer bounds, varints, the value parsers, the
 * capped allocator and the list.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/base/base.h"

static void test_reader_bounds(void **state)
{
	static const uint8_t buf[] = { 0x01, 0x02, 0x03, 0x00, 0x02, 'h', 'i', 0x00, 0x05, 'x' };
	struct gw_reader r;
	struct gw_slice s;
	uint16_t u16;
	uint8_t u8;

	(void)state;
	gw_reader_init(&r, buf, sizeof(buf));
	assert_int_equal(gw_rd_u8(&r, &u8), 0);
	assert_int_equal(u8, 1);
	assert_int_equal(gw_rd_u16be(&r, &u16), 0);
	assert_int_equal(u16, 0x0203);
	assert_int_equal(gw_rd_bin16(&r, &s), 0);
	assert_true(gw_slice_eq_cstr(s, "hi"));
	/* Declared length 5 with 1 byte left: malformed, and sticky. */
	assert_int_equal(gw_rd_bin16(&r, &s), -EBADMSG);
	assert_int_equal(gw_rd_u8(&r, &u8), -EBADMSG);
	assert_int_equal(gw_rd_left(&r), 0);
}

static void test_varint(void **state)
{
	static const uint32_t vals[] = { 0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455 };
	static const uint8_t five[] = { 0xff, 0xff, 0xff, 0xff, 0x01 };
	uint8_t buf[8];
	struct gw_writer w;
	struct gw_reader r;
	uint32_t v;
	size_t i;

	(void)state;
	for (i = 0; i < GW_ARRAY_SIZE(vals); i++) {
		gw_writer_init(&w, buf, sizeof(buf));
		gw_wr_varint(&w, vals[i]);
		assert_int_equal(w.err, 0);
		assert_int_equal(w.len, gw_varint_size(vals[i]));
		gw_reader_init(&r, buf, w.len);
		assert_int_equal(gw_rd_varint(&r, &v), 0);
		assert_int_equal(v, vals[i]);
	}
	gw_writer_init(&w, buf, sizeof(buf));
	gw_wr_varint(&w, 268435456);
	assert_int_equal(w.err, -EMSGSIZE);
	gw_reader_init(&r, five, sizeof(five));
	assert_int_equal(gw_rd_varint(&r, &v), -EBADMSG);
}

static void test_writer_overflow(void **state)
{
	uint8_t buf[3];
	struct gw_writer w;

	(void)state;
	gw_writer_init(&w, buf, sizeof(buf));
	gw_wr_u16be(&w, 0xabcd);
	assert_int_equal(w.err, 0);
	gw_wr_u16be(&w, 0x1234);
	assert_int_equal(w.err, -EMSGSIZE);
	assert_int_equal(w.len, 4); /* what would have been needed */
	assert_int_equal(buf[0], 0xab);
	assert_int_equal(buf[1], 0xcd);
}

static void test_durations(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(gw_parse_duration_ms("500ms", &v), 0);
	assert_int_equal(v, 500);
	assert_int_equal(gw_parse_duration_ms("5s", &v), 0);
	assert_int_equal(v, 5000);
	assert_int_equal(gw_parse_duration_ms("2m", &v), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(gw_parse_duration_ms("1h", &v), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(gw_parse_duration_ms("1d", &v), 0);
	assert_int_equal(v, 86400000);
	assert_int_equal(gw_parse_duration_ms("10", &v), 0);
	assert_int_equal(v, 10000);
	assert_int_equal(gw_parse_duration_ms("", &v), -EINVAL);
	assert_int_equal(gw_parse_duration_ms("5 s", &v), -EINVAL);
	assert_int_equal(gw_parse_duration_ms("-5s", &v), -EINVAL);
	assert_int_equal(gw_parse_duration_ms("5x", &v), -EINVAL);
	assert_int_equal(gw_parse_duration_ms("99999999999999999999d", &v), -ERANGE);
}

static void test_sizes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(gw_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(gw_parse_size("256M", &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(gw_parse_size("1G", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(gw_parse_size("100", &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(gw_parse_size("16MB", &v), 0);
	assert_int_equal(v, 16ULL << 20);
	assert_int_equal(gw_parse_size("1T", &v), -EINVAL);
	assert_int_equal(gw_parse_size("K", &v), -EINVAL);
	assert_int_equal(gw_parse_size("99999999999999999999G", &v), -ERANGE);
}

static void test_bools_and_numbers(void **state)
{
	long long i;
	double d;
	bool b;

	(void)state;
	assert_int_equal(gw_parse_bool("Yes", &b), 0);
	assert_true(b);
	assert_int_equal(gw_parse_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(gw_parse_bool("0", &b), 0);
	assert_false(b);
	assert_int_equal(gw_parse_bool("yep", &b), -EINVAL);
	assert_int_equal(gw_parse_int("42", 0, 100, &i), 0);
	assert_int_equal(i, 42);
	assert_int_equal(gw_parse_int("101", 0, 100, &i), -ERANGE);
	assert_int_equal(gw_parse_int("4x", 0, 100, &i), -EINVAL);
	assert_int_equal(gw_parse_double("-0.5", &d), 0);
	assert_true(d == -0.5);
	assert_int_equal(gw_parse_double("nan", &d), -EINVAL);
	assert_int_equal(gw_parse_double("1e999", &d), -EINVAL);
}

static void test_alloc_cap(void **state)
{
	size_t base = gw_mem_used();
	void *a, *b;

	(void)state;
	gw_mem_set_limit(base + 1000);
	a = gw_malloc(600);
	assert_non_null(a);
	assert_int_equal(gw_mem_used(), base + 600);
	assert_null(gw_malloc(600));
	a = gw_realloc(a, 900);
	assert_non_null(a);
	assert_null(gw_realloc(a, 1100));
	gw_free(a);
	assert_int_equal(gw_mem_used(), base);
	gw_mem_set_limit(0);
	gw_mem_fail_after(2);
	a = gw_malloc(10);
	assert_non_null(a);
	b = gw_malloc(10);
	assert_null(b);
	b = gw_malloc(10);
	assert_non_null(b);
	gw_free(a);
	gw_free(b);
	assert_int_equal(gw_mem_used(), base);
}

struct item {
	int v;
	struct gw_list node;
};

static void test_list(void **state)
{
	struct gw_list head = GW_LIST_INIT(head), *pos, *tmp;
	struct item it[3] = { { .v = 1 }, { .v = 2 }, { .v = 3 } };
	int sum = 0, i;

	(void)state;
	assert_true(gw_list_empty(&head));
	for (i = 0; i < 3; i++)
		gw_list_add_tail(&head, &it[i].node);
	assert_int_equal(gw_list_first(&head, struct item, node)->v, 1);
	gw_list_for_each_safe (pos, tmp, &head) {
		struct item *x = gw_list_entry(pos, struct item, node);

		sum += x->v;
		if (x->v == 2)
			gw_list_del(pos);
	}
	assert_int_equal(sum, 6);
	assert_ptr_equal(head.next->next, &it[2].node);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_bounds),	cmocka_unit_test(test_varint),
		cmocka_unit_test(test_writer_overflow), cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),		cmocka_unit_test(test_bools_and_numbers),
		cmocka_unit_test(test_alloc_cap),	cmocka_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
