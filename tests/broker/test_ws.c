/*
 * test_ws.c - WebSocket framing and the opening handshake (broker/ws.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "broker/ws.h"

/* A masked client frame of @op around @p into @out; returns its length. */
static size_t client_frame(uint8_t *out, uint8_t op, bool fin, const void *p, size_t n)
{
	static const uint8_t mask[4] = { 0xa1, 0xb2, 0xc3, 0xd4 };
	size_t h = brk_ws_frame_header(out, op, n), i;

	if (!fin)
		out[0] &= 0x7f;
	out[1] |= 0x80;
	memcpy(out + h, mask, 4);
	for (i = 0; i < n; i++)
		out[h + 4 + i] = ((const uint8_t *)p)[i] ^ mask[i & 3];
	return h + 4 + n;
}

/* Decode all of @buf byte by byte, the DATA bytes into @data; returns the last rc. */
static int drip(struct brk_ws_rx *rx, uint8_t *buf, size_t n, uint8_t *data, size_t *dlen,
		struct brk_ws_event *last)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		rc = brk_ws_decode(rx, buf + i, 1, last);
		if (rc < 0)
			return rc;
		assert_int_equal(rc, 1);
		if (last->type == BRK_WS_EV_DATA) {
			memcpy(data + *dlen, last->data.p, last->data.len);
			*dlen += last->data.len;
		}
	}
	return rc;
}

static void test_accept_key(void **state)
{
	char out[29];

	(void)state;
	/* RFC 6455 1.3 */
	assert_int_equal(brk_ws_accept_key(GW_SLICE_STR("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_frames(void **state)
{
	uint8_t buf[70000 + 64], data[70000], big[70000];
	struct brk_ws_rx rx;
	struct brk_ws_event ev;
	size_t n = 0, dlen = 0;

	(void)state;
	memset(&rx, 0, sizeof(rx));
	memset(big, 'q', sizeof(big));
	/* A fragmented message with a ping between its fragments, byte by byte. */
	n += client_frame(buf + n, BRK_WS_BINARY, false, "hel", 3);
	n += client_frame(buf + n, BRK_WS_PING, true, "p", 1);
	assert_int_equal(drip(&rx, buf, n, data, &dlen, &ev), 1);
	assert_int_equal(ev.type, BRK_WS_EV_PING);
	assert_int_equal(ev.data.len, 1);
	assert_int_equal(ev.data.p[0], 'p');
	n = client_frame(buf, BRK_WS_CONT, true, "lo", 2);
	drip(&rx, buf, n, data, &dlen, &ev);
	assert_int_equal(dlen, 5);
	assert_memory_equal(data, "hello", 5);
	/* 16- and 64-bit lengths, whole. */
	n = client_frame(buf, BRK_WS_BINARY, true, big, 300);
	assert_int_equal(buf[1] & 0x7f, 126);
	assert_int_equal(brk_ws_decode(&rx, buf, n, &ev), 8);
	assert_int_equal(brk_ws_decode(&rx, buf + 8, n - 8, &ev), 300);
	assert_int_equal(ev.type, BRK_WS_EV_DATA);
	assert_memory_equal(ev.data.p, big, 300);
	n = client_frame(buf, BRK_WS_BINARY, true, big, sizeof(big));
	assert_int_equal(buf[1] & 0x7f, 127);
	assert_int_equal(brk_ws_decode(&rx, buf, n, &ev), 14);
	assert_int_equal(brk_ws_decode(&rx, buf + 14, n - 14, &ev), (int)sizeof(big));
	assert_memory_equal(ev.data.p, big, sizeof(big));
	/* Close with a code, and without one. */
	n = client_frame(buf, BRK_WS_CLOSE, true, "\x03\xe8ok", 4);
	assert_int_equal(brk_ws_decode(&rx, buf, 6, &ev), 6);
	assert_int_equal(brk_ws_decode(&rx, buf + 6, n - 6, &ev), 4);
	assert_int_equal(ev.type, BRK_WS_EV_CLOSE);
	assert_int_equal(ev.code, 1000);
	n = client_frame(buf, BRK_WS_CLOSE, true, "", 0);
	assert_int_equal(brk_ws_decode(&rx, buf, n, &ev), 6);
	assert_int_equal(ev.type, BRK_WS_EV_CLOSE);
	assert_int_equal(ev.code, 1005);
}

static void expect_error(const uint8_t *frame, size_t n, bool in_msg, uint16_t code)
{
	uint8_t buf[256];
	struct brk_ws_rx rx;
	struct brk_ws_event ev;
	size_t off = 0;
	int rc = 0;

	memset(&rx, 0, sizeof(rx));
	rx.in_msg = in_msg;
	memcpy(buf, frame, n);
	while (off < n && (rc = brk_ws_decode(&rx, buf + off, n - off, &ev)) > 0)
		off += (size_t)rc;
	assert_int_equal(rc, -EPROTO);
	assert_int_equal(ev.code, code);
}

static void test_errors(void **state)
{
	uint8_t f[256];
	size_t n;

	(void)state;
	expect_error((const uint8_t *)"\x82\x01x", 3, false, 1002);    /* unmasked */
	expect_error((const uint8_t *)"\xc2\x80....", 6, false, 1002); /* RSV1 */
	expect_error((const uint8_t *)"\x83\x80....", 6, false, 1002); /* reserved opcode */
	expect_error((const uint8_t *)"\x81\x80....", 6, false, 1003); /* text */
	expect_error((const uint8_t *)"\x80\x80....", 6, false, 1002); /* stray continuation */
	expect_error((const uint8_t *)"\x82\x80....", 6, true, 1002);  /* binary inside a message */
	expect_error((const uint8_t *)"\x09\x80....", 6, false, 1002); /* fragmented ping */
	expect_error((const uint8_t *)"\x89\xfe\x00\x7e....", 8, false, 1002); /* long ping */
	expect_error((const uint8_t *)"\x82\xff\x80\0\0\0\0\0\0\0....", 14, false, 1002);
	n = client_frame(f, BRK_WS_CLOSE, true, "\x03", 1);
	expect_error(f, n, false, 1002);
	n = client_frame(f, BRK_WS_CLOSE, true, "\x03\xed", 2); /* 1005 may not be sent */
	expect_error(f, n, false, 1002);
}

static int handshake(const char *req, char *resp, size_t *len)
{
	struct brk_http_req r;

	assert_true(brk_http_parse_request((const uint8_t *)req, strlen(req), &r) > 0);
	return brk_ws_handshake(&r, "/mqtt", resp, 512, len);
}

static void test_handshake(void **state)
{
	char resp[512];
	size_t len;

	(void)state;
	assert_int_equal(handshake("GET /mqtt HTTP/1.1\r\nUpgrade: WebSocket\r\n"
				   "Connection: keep-alive, upgrade\r\n"
				   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				   "Sec-WebSocket-Version: 13\r\n"
				   "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n\r\n",
				   resp, &len),
			 0);
	assert_int_equal(len, strlen(resp));
	assert_string_equal(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\n"
				  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
				  "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
	assert_int_equal(handshake("GET /x HTTP/1.1\r\n\r\n", resp, &len), -ENOENT);
	assert_non_null(strstr(resp, "404"));
	assert_int_equal(handshake("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n",
				   resp, &len),
			 -EPROTONOSUPPORT);
	assert_non_null(strstr(resp, "426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
	assert_int_equal(handshake("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
				   "Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
				   resp, &len),
			 -EBADMSG);
	assert_int_equal(handshake("POST /mqtt HTTP/1.1\r\n\r\n", resp, &len), -EBADMSG);
	assert_non_null(strstr(resp, "400 Bad Request"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key),
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_handshake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
