/*
 * test_serial_frame.c - the framer in every mode (line with one- and
 * two-byte delimiters and \r stripping, fixed length, idle gap with a fake
 * clock, STX/ETX), the max_frame cut with its resynchronisation and counts,
 * hex encoding, and the config string unescaper.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/serial/serial_int.h"

struct frames {
	char got[16][128];
	unsigned int n;
	bool nul_ok;
};

static void collect(void *arg, const uint8_t *frame, size_t len)
{
	struct frames *fr = arg;

	assert_true(len > 0);
	assert_int_equal(frame[len], 0); /* the NUL the regex parser relies on */
	if (fr->n < 16) {
		snprintf(fr->got[fr->n], sizeof(fr->got[0]), "%.*s", (int)len, (const char *)frame);
	}
	fr->n++;
}

static uint8_t buf[4 * SER_MAX_FRAME];

static void feed_str(struct ser_framer *f, const char *s, int64_t now, struct frames *fr)
{
	ser_framer_feed(f, (const uint8_t *)s, strlen(s), now, collect, fr);
}

static struct ser_framer_conf line_conf(void)
{
	struct ser_framer_conf c = {
		.mode = SER_FR_LINE, .delim = "\n", .delim_len = 1, .max_frame = 16
	};

	return c;
}

static void test_line(void **state)
{
	struct ser_framer_conf c = line_conf();
	struct ser_framer f;
	struct frames fr = { 0 };

	(void)state;
	ser_framer_init(&f, &c, buf);
	feed_str(&f, "T=21.5\r\nH=4", 0, &fr);
	assert_int_equal(fr.n, 1);
	assert_string_equal(fr.got[0], "T=21.5");
	feed_str(&f, "0\n\n\r\n\n\rX\n", 0, &fr); /* empty lines vanish, a leading \r too */
	assert_int_equal(fr.n, 3);
	assert_string_equal(fr.got[1], "H=40");
	assert_string_equal(fr.got[2], "X");
	assert_int_equal(f.st.frames, 3);
	assert_int_equal(f.st.bytes, 20);
	/* byte by byte gives the same */
	fr.n = 0;
	for (const char *p = "ab\r\ncd\n"; *p; p++)
		ser_framer_feed(&f, (const uint8_t *)p, 1, 0, collect, &fr);
	assert_int_equal(fr.n, 2);
	assert_string_equal(fr.got[0], "ab");
	assert_string_equal(fr.got[1], "cd");
}

static void test_line_crlf_delimiter(void **state)
{
	struct ser_framer_conf c = line_conf();
	struct ser_framer f;
	struct frames fr = { 0 };

	(void)state;
	memcpy(c.delim, "\r\n", 2);
	c.delim_len = 2;
	ser_framer_init(&f, &c, buf);
	feed_str(&f, "a\nb\r", 0, &fr);
	assert_int_equal(fr.n, 0); /* a lone \n is data with a two-byte delimiter */
	feed_str(&f, "\nc\r\r\nd", 0, &fr);
	assert_int_equal(fr.n, 2);
	assert_string_equal(fr.got[0], "a\nb");
	assert_string_equal(fr.got[1], "c");
}

static void test_line_overlong(void **state)
{
	struct ser_framer_conf c = line_conf();
	struct ser_framer f;
	struct frames fr = { 0 };

	(void)state;
	c.max_frame = 8;
	ser_framer_init(&f, &c, buf);
	feed_str(&f, "12345678", 0, &fr); /* exactly max_frame: fine */
	feed_str(&f, "\n", 0, &fr);
	assert_int_equal(fr.n, 1);
	feed_str(&f, "0123456789abcdef", 0, &fr);
	feed_str(&f, "ghij\nok\n", 0, &fr);
	assert_int_equal(fr.n, 2);
	assert_string_equal(fr.got[1], "ok"); /* resynchronised at the next delimiter */
	assert_int_equal(f.st.overlong, 1);
	assert_true(f.st.dropped >= 12);
	/* a flood with no delimiter stays bounded and counts once */
	for (int i = 0; i < 1000; i++)
		feed_str(&f, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0, &fr);
	assert_int_equal(f.st.overlong, 2);
	assert_true(f.len <= 8);
	feed_str(&f, "\nback\n", 0, &fr);
	assert_string_equal(fr.got[fr.n - 1], "back");

	/* the same with a two-byte delimiter */
	memcpy(c.delim, "\r\n", 2);
	c.delim_len = 2;
	ser_framer_init(&f, &c, buf);
	fr.n = 0;
	feed_str(&f, "0123456789\r\nok\r\n", 0, &fr);
	assert_int_equal(fr.n, 1);
	assert_string_equal(fr.got[0], "ok");
	assert_int_equal(f.st.overlong, 1);
}

static void test_length(void **state)
{
	struct ser_framer_conf c = { .mode = SER_FR_LENGTH, .length = 4, .max_frame = 4 };
	struct ser_framer f;
	struct frames fr = { 0 };

	(void)state;
	ser_framer_init(&f, &c, buf);
	feed_str(&f, "abcdefg", 0, &fr);
	assert_int_equal(fr.n, 1);
	assert_string_equal(fr.got[0], "abcd");
	feed_str(&f, "h\r\nijk", 0, &fr);
	assert_int_equal(fr.n, 3);
	assert_string_equal(fr.got[1], "efgh");
	assert_string_equal(fr.got[2], "\r\nij"); /* no stripping outside line mode */
	ser_framer_reset(&f);			  /* "k" is forgotten */
	feed_str(&f, "wxyz", 0, &fr);
	assert_string_equal(fr.got[3], "wxyz");
}

static void test_idle(void **state)
{
	struct ser_framer_conf c = { .mode = SER_FR_IDLE, .idle_gap_ms = 50, .max_frame = 8 };
	struct ser_framer f;
	struct frames fr = { 0 };

	(void)state;
	ser_framer_init(&f, &c, buf);
	assert_int_equal(ser_framer_deadline(&f), -1);
	feed_str(&f, "ab", 1000, &fr);
	feed_str(&f, "cd", 1030, &fr);
	assert_int_equal(ser_framer_deadline(&f), 1080);
	ser_framer_tick(&f, 1079, collect, &fr);
	assert_int_equal(fr.n, 0);
	ser_framer_tick(&f, 1080, collect, &fr);
	assert_int_equal(fr.n, 1);
	assert_string_equal(fr.got[0], "abcd");
	assert_int_equal(ser_framer_deadline(&f), -1);
	/* a gap noticed by the next bytes (no tick in between) ends the frame too */
	feed_str(&f, "ef", 2000, &fr);
	feed_str(&f, "gh", 2100, &fr);
	assert_int_equal(fr.n, 2);
	assert_string_equal(fr.got[1], "ef");
	/* overlong: cut, the rest dropped until the gap */
	feed_str(&f, "0123456789", 2110, &fr);
	assert_int_equal(f.st.overlong, 1);
	ser_framer_tick(&f, 2200, collect, &fr);
	assert_int_equal(fr.n, 2);
	feed_str(&f, "ok", 3000, &fr);
	ser_framer_tick(&f, 3050, collect, &fr);
	assert_int_equal(fr.n, 3);
	assert_string_equal(fr.got[2], "ok");
}

static void test_stx_etx(void **state)
{
	struct ser_framer_conf c = {
		.mode = SER_FR_STX_ETX, .start = 0x02, .end = 0x03, .max_frame = 8
	};
	struct ser_framer f;
	struct frames fr = { 0 };

	(void)state;
	ser_framer_init(&f, &c, buf);
	feed_str(&f,
		 "noise\x02"
		 "A1\x03"
		 "junk\x02"
		 "B2",
		 0, &fr);
	assert_int_equal(fr.n, 1);
	assert_string_equal(fr.got[0], "A1");
	assert_int_equal(f.st.dropped, 4 + 5); /* "noise" and "junk" */
	feed_str(&f,
		 "\x02"
		 "C3\x03",
		 0, &fr); /* a new start resynchronises */
	assert_int_equal(fr.n, 2);
	assert_string_equal(fr.got[1], "C3");
	feed_str(&f,
		 "\x02"
		 "0123456789\x03\x02ok\x03",
		 0, &fr);
	assert_int_equal(fr.n, 3);
	assert_string_equal(fr.got[2], "ok");
	assert_int_equal(f.st.overlong, 1);
}

static void test_hex(void **state)
{
	struct ser_framer_conf c = {
		.mode = SER_FR_LENGTH, .length = 3, .max_frame = 3, .hex = true
	};
	struct ser_framer f;
	struct frames fr = { 0 };
	static const uint8_t bin[] = { 0x00, 0xab, 0x7f, 0x0d, 0x0a, 0xff };

	(void)state;
	assert_int_equal(ser_framer_buf_size(&c), 3 + 1 + 6 + 1);
	ser_framer_init(&f, &c, buf);
	ser_framer_feed(&f, bin, sizeof(bin), 0, collect, &fr);
	assert_int_equal(fr.n, 2);
	assert_string_equal(fr.got[0], "00AB7F");
	assert_string_equal(fr.got[1], "0D0AFF");
}

static void test_unescape(void **state)
{
	uint8_t out[16];

	(void)state;
	assert_int_equal(ser_unescape("\"MEAS:TEMP?\\r\\n\"", out, sizeof(out)), 12);
	assert_memory_equal(out, "MEAS:TEMP?\r\n", 12);
	assert_int_equal(ser_unescape("\\x02a\\x03\\t\\\\\\0", out, sizeof(out)), 6);
	assert_memory_equal(out,
			    "\x02"
			    "a\x03\t\\\0",
			    6);
	assert_int_equal(ser_unescape("\"", out, sizeof(out)), 1); /* a lone quote is text */
	assert_int_equal(ser_unescape("\\q", out, sizeof(out)), -EINVAL);
	assert_int_equal(ser_unescape("\\x4", out, sizeof(out)), -EINVAL);
	assert_int_equal(ser_unescape("\\", out, sizeof(out)), -EINVAL);
	assert_int_equal(ser_unescape("0123456789abcdefg", out, sizeof(out)), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line),	      cmocka_unit_test(test_line_crlf_delimiter),
		cmocka_unit_test(test_line_overlong), cmocka_unit_test(test_length),
		cmocka_unit_test(test_idle),	      cmocka_unit_test(test_stx_etx),
		cmocka_unit_test(test_hex),	      cmocka_unit_test(test_unescape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
