/*
 * test_proxy_codec.c - the PROXY protocol header parser (broker/proxy_codec.c),
 * with the examples of HAProxy's proxy-protocol.txt.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "broker/proxy_codec.h"

static int parse_str(const char *s, struct brk_proxy_hdr *h)
{
	return brk_proxy_parse((const uint8_t *)s, strlen(s), h);
}

static void test_v1_tcp4(void **state)
{
	const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /";
	struct brk_proxy_hdr h;
	size_t hl = strlen(s) - 5, i;

	(void)state;
	assert_int_equal(parse_str(s, &h), (int)hl);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.family, BRK_PROXY_INET);
	assert_memory_equal(h.src, ((uint8_t[]){ 192, 168, 0, 1 }), 4);
	assert_memory_equal(h.dst, ((uint8_t[]){ 192, 168, 0, 11 }), 4);
	assert_int_equal(h.src_port, 56324);
	assert_int_equal(h.dst_port, 443);
	/* Every shorter prefix asks for more. */
	for (i = 0; i < hl; i++)
		assert_int_equal(brk_proxy_parse((const uint8_t *)s, i, &h), 0);
}

static void test_v1_tcp6_unknown(void **state)
{
	struct brk_proxy_hdr h;
	uint8_t want[16];

	(void)state;
	assert_true(parse_str("PROXY TCP6 2001:db8::1 ::1 65535 1883\r\n", &h) > 0);
	assert_int_equal(h.family, BRK_PROXY_INET6);
	inet_pton(AF_INET6, "2001:db8::1", want);
	assert_memory_equal(h.src, want, 16);
	assert_int_equal(h.src_port, 65535);
	assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &h), 15);
	assert_int_equal(h.family, BRK_PROXY_UNSPEC);
	/* [2.1] after UNKNOWN the rest of the line is ignored. */
	assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ::1 1 2\r\n", &h), 31);
	assert_int_equal(h.family, BRK_PROXY_UNSPEC);
}

static void test_v1_bad(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",	   /* LF without CR */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",  /* port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",	   /* port */
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",	   /* two spaces */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",	   /* trailing space */
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",	   /* address */
		"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",	   /* v6 in TCP4 */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",	   /* a field missing */
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",	   /* protocol */
		"PROXY \r\n",				   /* empty */
		"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", /* port length */
		"MQTT",					   /* not a PROXY header */
		"\x10\x0c\x00\x04MQTT",			   /* a plain MQTT CONNECT */
	};
	struct brk_proxy_hdr h;
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_str(bad[i], &h), -EBADMSG);
	/* No LF within 107 bytes. */
	{
		char longer[200];

		memset(longer, 'x', sizeof(longer));
		memcpy(longer, "PROXY ", 6);
		assert_int_equal(brk_proxy_parse((const uint8_t *)longer, sizeof(longer), &h),
				 -EBADMSG);
		assert_int_equal(brk_proxy_parse((const uint8_t *)longer, 106, &h), 0);
	}
}

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A v2 header of @cmd / @fam with @n address (and TLV) bytes of @addr. */
static size_t v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *addr, size_t n)
{
	memcpy(out, sig, 12);
	out[12] = 0x20 | cmd;
	out[13] = fam;
	out[14] = (uint8_t)(n >> 8);
	out[15] = (uint8_t)n;
	memcpy(out + 16, addr, n);
	return 16 + n;
}

static void test_v2(void **state)
{
	static const uint8_t a4[12 + 7] = { 10, 0, 0, 7, 127, 0, 0, 1, 0xC3, 0x50, 0x07, 0x5B,
					    /* a TLV (NOOP, 4 bytes), ignored */
					    0x04, 0x00, 0x04, 1, 2, 3, 4 };
	uint8_t a6[36] = { 0x20, 0x01, 0x0d, 0xb8 };
	uint8_t buf[700];
	struct brk_proxy_hdr h;
	size_t n, i;

	(void)state;
	n = v2(buf, 1, 0x11, a4, sizeof(a4));
	buf[n] = 0x10; /* the client's first byte follows */
	assert_int_equal(brk_proxy_parse(buf, n + 1, &h), (int)n);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.family, BRK_PROXY_INET);
	assert_memory_equal(h.src, ((uint8_t[]){ 10, 0, 0, 7 }), 4);
	assert_int_equal(h.src_port, 50000);
	assert_int_equal(h.dst_port, 1883);
	for (i = 0; i < n; i++)
		assert_int_equal(brk_proxy_parse(buf, i, &h), 0);

	a6[15] = 9;
	a6[32] = 0x12;
	a6[33] = 0x34;
	n = v2(buf, 1, 0x21, a6, sizeof(a6));
	assert_int_equal(brk_proxy_parse(buf, n, &h), (int)n);
	assert_int_equal(h.family, BRK_PROXY_INET6);
	assert_memory_equal(h.src, a6, 16);
	assert_int_equal(h.src_port, 0x1234);

	/* LOCAL (a health check of the proxy): its addresses are not used. */
	n = v2(buf, 0, 0x11, a4, 12);
	assert_int_equal(brk_proxy_parse(buf, n, &h), (int)n);
	assert_int_equal(h.family, BRK_PROXY_UNSPEC);
	n = v2(buf, 0, 0x00, a4, 0);
	assert_int_equal(brk_proxy_parse(buf, n, &h), 16);
	/* UDP and unix sockets: the connection's own address stands. */
	n = v2(buf, 1, 0x12, a4, 12);
	assert_int_equal(brk_proxy_parse(buf, n, &h), (int)n);
	assert_int_equal(h.family, BRK_PROXY_UNSPEC);
}

static void test_v2_bad(void **state)
{
	uint8_t a[600] = { 0 };
	uint8_t buf[700];
	struct brk_proxy_hdr h;
	size_t n;

	(void)state;
	n = v2(buf, 1, 0x11, a, 11); /* too short for TCP4 */
	assert_int_equal(brk_proxy_parse(buf, n, &h), -EBADMSG);
	n = v2(buf, 1, 0x21, a, 35); /* too short for TCP6 */
	assert_int_equal(brk_proxy_parse(buf, n, &h), -EBADMSG);
	n = v2(buf, 2, 0x11, a, 12); /* command */
	assert_int_equal(brk_proxy_parse(buf, n, &h), -EBADMSG);
	n = v2(buf, 1, 0x11, a, 12);
	buf[12] = 0x11; /* version 1 in binary */
	assert_int_equal(brk_proxy_parse(buf, n, &h), -EBADMSG);
	n = v2(buf, 1, 0x41, a, 12); /* family */
	assert_int_equal(brk_proxy_parse(buf, n, &h), -EBADMSG);
	n = v2(buf, 1, 0x11, a, 513); /* longer than we take */
	assert_int_equal(brk_proxy_parse(buf, 16, &h), -EBADMSG);
	/* A wrong signature byte is seen as soon as it is read. */
	memcpy(buf, sig, 12);
	buf[5] = 0;
	assert_int_equal(brk_proxy_parse(buf, 6, &h), -EBADMSG);
	assert_int_equal(brk_proxy_parse(buf, 5, &h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4), cmocka_unit_test(test_v1_tcp6_unknown),
		cmocka_unit_test(test_v1_bad),	cmocka_unit_test(test_v2),
		cmocka_unit_test(test_v2_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
