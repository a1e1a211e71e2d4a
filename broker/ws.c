/*
 * ws.c - WebSocket framing and the opening handshake (see ws.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/tls/mbed_lib.h" /* mbedTLS, loaded when first needed */

#include "broker/ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ------------------------------------------------------------- frames */

/* Header bytes the frame being read needs, as far as the kept ones tell. */
static size_t hdr_need(const struct brk_ws_rx *rx)
{
	uint8_t l7;

	if (rx->hlen < 2)
		return 2;
	l7 = rx->hdr[1] & 0x7f;
	return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
}

static int fail(struct brk_ws_event *ev, uint16_t code)
{
	ev->type = BRK_WS_EV_NONE;
	ev->code = code;
	return -EPROTO;
}

/* The first two bytes are in: what they say must be acceptable. 0 or a close code. */
static uint16_t check_start(const struct brk_ws_rx *rx)
{
	uint8_t b0 = rx->hdr[0], b1 = rx->hdr[1], op = b0 & 0x0f;

	if (b0 & 0x70)
		return BRK_WS_CLOSE_PROTOCOL; /* [RFC 6455 5.2] RSV without an extension */
	if (!(b1 & 0x80))
		return BRK_WS_CLOSE_PROTOCOL; /* [5.1] a client masks every frame */
	if (op & 0x08) {
		if (op != BRK_WS_CLOSE && op != BRK_WS_PING && op != BRK_WS_PONG)
			return BRK_WS_CLOSE_PROTOCOL;
		/* [5.5] control frames: not fragmented, 125 bytes at most. */
		if (!(b0 & 0x80) || (b1 & 0x7f) > 125)
			return BRK_WS_CLOSE_PROTOCOL;
		return 0;
	}
	if (op == BRK_WS_TEXT)
		return BRK_WS_CLOSE_UNSUPPORTED; /* [MQTT-6.0.0-1] binary only */
	if (op == BRK_WS_BINARY)
		return rx->in_msg ? BRK_WS_CLOSE_PROTOCOL : 0; /* [5.4] continuation expected */
	if (op == BRK_WS_CONT)
		return rx->in_msg ? 0 : BRK_WS_CLOSE_PROTOCOL;
	return BRK_WS_CLOSE_PROTOCOL; /* reserved opcodes */
}

/* [RFC 6455 7.4] a close code a peer may send. */
static bool close_code_ok(uint16_t c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* The frame's payload is all in: report a control frame. 0 or -EPROTO. */
static int frame_end(struct brk_ws_rx *rx, struct brk_ws_event *ev)
{
	rx->in_frame = false;
	switch (rx->op) {
	case BRK_WS_CLOSE:
		ev->type = BRK_WS_EV_CLOSE;
		ev->code = 1005; /* [7.1.5] no status code */
		if (rx->ctl_len == 1)
			return fail(ev, BRK_WS_CLOSE_PROTOCOL);
		if (rx->ctl_len >= 2) {
			ev->code = (uint16_t)(rx->ctl[0] << 8 | rx->ctl[1]);
			if (!close_code_ok(ev->code))
				return fail(ev, BRK_WS_CLOSE_PROTOCOL);
		}
		break;
	case BRK_WS_PING:
		ev->type = BRK_WS_EV_PING;
		break;
	case BRK_WS_PONG:
		ev->type = BRK_WS_EV_PONG;
		break;
	default:
		rx->in_msg = !rx->fin;
		return 0;
	}
	ev->data = (struct gw_slice){ rx->ctl, rx->ctl_len };
	return 0;
}

/* The header is complete: start its frame. 0 or a close code. */
static uint16_t frame_start(struct brk_ws_rx *rx)
{
	uint8_t l7 = rx->hdr[1] & 0x7f;
	size_t m = 2;
	uint64_t n = l7;
	int i;

	if (l7 == 126) {
		n = (uint64_t)rx->hdr[2] << 8 | rx->hdr[3];
		m = 4;
	} else if (l7 == 127) {
		if (rx->hdr[2] & 0x80)
			return BRK_WS_CLOSE_PROTOCOL; /* [5.2] the most significant bit is 0 */
		for (n = 0, i = 2; i < 10; i++)
			n = n << 8 | rx->hdr[i];
		m = 10;
	}
	memcpy(rx->mask, rx->hdr + m, 4);
	rx->op = rx->hdr[0] & 0x0f;
	rx->fin = rx->hdr[0] & 0x80;
	rx->left = n;
	rx->moff = 0;
	rx->ctl_len = 0;
	rx->hlen = 0;
	rx->in_frame = true;
	return 0;
}

int brk_ws_decode(struct brk_ws_rx *rx, uint8_t *buf, size_t len, struct brk_ws_event *ev)
{
	size_t used = 0, n, i;
	uint16_t code;

	memset(ev, 0, sizeof(*ev));
	if (!len)
		return 0;
	len = GW_MIN(len, (size_t)INT32_MAX);
	if (!rx->in_frame) {
		while (used < len && rx->hlen < hdr_need(rx)) {
			rx->hdr[rx->hlen++] = buf[used++];
			if (rx->hlen == 2 && (code = check_start(rx)))
				return fail(ev, code);
		}
		if (rx->hlen < hdr_need(rx))
			return (int)used;
		code = frame_start(rx);
		if (code)
			return fail(ev, code);
		if (!rx->left && frame_end(rx, ev))
			return -EPROTO;
		return (int)used;
	}
	n = (size_t)GW_MIN((uint64_t)len, rx->left);
	for (i = 0; i < n; i++)
		buf[i] ^= rx->mask[(rx->moff + i) & 3];
	rx->moff = (uint8_t)((rx->moff + n) & 3);
	rx->left -= n;
	if (rx->op & 0x08) {
		memcpy(rx->ctl + rx->ctl_len, buf,
		       n); /* at most 125 in all: checked at the start */
		rx->ctl_len = (uint8_t)(rx->ctl_len + n);
	} else {
		ev->type = BRK_WS_EV_DATA;
		ev->data = (struct gw_slice){ buf, n };
	}
	if (!rx->left && frame_end(rx, ev))
		return -EPROTO;
	return (int)n;
}

size_t brk_ws_frame_header(uint8_t out[10], uint8_t op, uint64_t len)
{
	size_t i;

	out[0] = (uint8_t)(0x80 | (op & 0x0f));
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

/* ---------------------------------------------------------- handshake */

int brk_ws_accept_key(struct gw_slice key, char out[29])
{
	uint8_t cat[64 + sizeof(WS_GUID)], sha[20];
	size_t olen = 0;
	int rc;

	if (key.len > 64)
		return -EINVAL;
	memcpy(cat, key.p, key.len);
	memcpy(cat + key.len, WS_GUID, sizeof(WS_GUID) - 1);
#if MBEDTLS_VERSION_MAJOR >= 3
	rc = mbedtls_sha1(cat, key.len + sizeof(WS_GUID) - 1, sha);
#else
	rc = mbedtls_sha1_ret(cat, key.len + sizeof(WS_GUID) - 1, sha);
#endif
	if (rc || mbedtls_base64_encode((unsigned char *)out, 29, &olen, sha, sizeof(sha)) ||
	    olen != 28)
		return -EINVAL;
	out[28] = 0;
	return 0;
}

static bool eq(struct gw_slice a, const char *b)
{
	return gw_slice_eq_cstr(a, b);
}

static int respond(char *resp, size_t cap, size_t *resp_len, int rc, const char *status,
		   const char *extra)
{
	int n = snprintf(resp, cap,
			 "HTTP/1.1 %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", status,
			 extra);

	if (n < 0 || (size_t)n >= cap)
		return -EMSGSIZE;
	*resp_len = (size_t)n;
	return rc;
}

int brk_ws_handshake(const struct brk_http_req *req, const char *path, char *resp, size_t cap,
		     size_t *resp_len)
{
	const struct gw_slice *up, *conn, *ver, *key, *proto;
	const char *sel = NULL;
	uint8_t raw[32];
	size_t olen = 0;
	char acc[29];
	int n;

	*resp_len = 0;
	/* [RFC 6455 4.2.1] a GET of HTTP/1.1 or later. */
	if (!eq(req->method, "GET") || req->minor < 1)
		return respond(resp, cap, resp_len, -EBADMSG, "400 Bad Request", "");
	if (!gw_slice_eq_cstr(brk_http_path(req->target), path))
		return respond(resp, cap, resp_len, -ENOENT, "404 Not Found", "");
	up = brk_http_header(req, "Upgrade");
	conn = brk_http_header(req, "Connection");
	if (!up || !brk_http_has_token(*up, "websocket") || !conn ||
	    !brk_http_has_token(*conn, "Upgrade"))
		return respond(resp, cap, resp_len, -EBADMSG, "400 Bad Request", "");
	ver = brk_http_header(req, "Sec-WebSocket-Version");
	if (!ver || !eq(*ver, "13"))
		return respond(resp, cap, resp_len, -EPROTONOSUPPORT, "426 Upgrade Required",
			       "Sec-WebSocket-Version: 13\r\n");
	/* [4.2.1] the key is 16 random bytes, base64-encoded. */
	key = brk_http_header(req, "Sec-WebSocket-Key");
	if (!key || mbedtls_base64_decode(raw, sizeof(raw), &olen, key->p, key->len) ||
	    olen != 16 || brk_ws_accept_key(*key, acc))
		return respond(resp, cap, resp_len, -EBADMSG, "400 Bad Request", "");
	/* [MQTT-6.0.0-3/4] the server selects "mqtt" from the client's list. */
	proto = brk_http_header(req, "Sec-WebSocket-Protocol");
	if (proto) {
		if (brk_http_has_token(*proto, "mqtt"))
			sel = "mqtt";
		else if (brk_http_has_token(*proto, "mqttv3.1"))
			sel = "mqttv3.1";
		else
			return respond(resp, cap, resp_len, -EBADMSG, "400 Bad Request", "");
	}
	n = snprintf(resp, cap,
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
		     acc, sel ? "Sec-WebSocket-Protocol: " : "", sel ? sel : "", sel ? "\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return -EMSGSIZE;
	*resp_len = (size_t)n;
	return 0;
}
