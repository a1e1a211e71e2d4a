/*
 * transport_uv.c - the transport of a TLS or WebSocket broker connection
 * (struct brk_xport, allocated at accept on mqtts://, ws:// and wss://
 * listeners): TLS handshake and records, the WebSocket upgrade and frames.
 *
 * It sits between the socket and the protocol: bytes read go through it up
 * to brk__conn_input, output is gathered from the stage and c->out, framed
 * and encrypted into its own buffer and written from there. A plain MQTT
 * connection has none of it (conn_uv.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "broker/broker_int.h"
#include "broker/broker_uv_int.h"
#include "broker/ws.h"
#include "gateway/tls/tls.h"

/* The longest WebSocket upgrade request head. */
#define HTTP_MAX (8 * 1024)

void brk__xport_free(struct brk_uvconn *uc)
{
	struct brk_xport *x = uc->x;

	if (!x)
		return;
	gw_tls_free(x->tls);
	gw_free(x->identity);
	gw_free(x->http);
	gw_free(x->obuf);
	gw_free(x->wbuf);
	gw_free(x);
	uc->x = NULL;
}

/* Bytes for the socket, after what is queued. 0 or -ENOMEM. */
static int xout(struct brk_uvconn *uc, const void *p, size_t n)
{
	struct brk_xport *x = uc->x;

	if (x->ocap - x->olen < n) {
		size_t nc = x->ocap ? x->ocap : 4096;
		uint8_t *b;

		while (nc - x->olen < n)
			nc *= 2;
		b = gw_realloc(x->obuf, nc);
		if (!b)
			return -ENOMEM;
		x->obuf = b;
		x->ocap = nc;
	}
	memcpy(x->obuf + x->olen, p, n);
	x->olen += n;
	uc->c.xqueued = x->olen;
	if (!x->flushing && !uc->c.dirty)
		brk__uv_mark_dirty(uc);
	return 0;
}

/* mbedTLS's ciphertext goes to the socket's queue. */
static int tls_send(void *arg, const void *p, size_t len)
{
	return xout(arg, p, len);
}

/* Bytes of the connection's byte stream: encrypted when TLS carries it. */
static int xsend(struct brk_uvconn *uc, const void *p, size_t n)
{
	return uc->x->tls ? gw_tls_write(uc->x->tls, p, n) : xout(uc, p, n);
}

/* One WebSocket frame of @op around @n bytes at @p. */
static int ws_send(struct brk_uvconn *uc, uint8_t op, const void *p, size_t n)
{
	uint8_t h[10 + 125];
	size_t hl = brk_ws_frame_header(h, op, n);

	/* Small frames (control frames, short packets) in one piece: one TLS record. */
	if (n <= 125) {
		memcpy(h + hl, p, n);
		return xsend(uc, h, hl + n);
	}
	return xsend(uc, h, hl) ?: xsend(uc, p, n);
}

/* MQTT bytes out: framed on WebSocket, encrypted on TLS. */
static int xsend_mqtt(struct brk_uvconn *uc, const void *p, size_t n)
{
	return uc->x->ws ? ws_send(uc, BRK_WS_BINARY, p, n) : xsend(uc, p, n);
}

/* Queue a WebSocket Close frame with @code (once). */
static void ws_close(struct brk_uvconn *uc, uint16_t code)
{
	uint8_t b[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	if (uc->x->close_sent)
		return;
	uc->x->close_sent = true;
	ws_send(uc, BRK_WS_CLOSE, b, code == 1005 ? 0 : 2);
}

/* Stop reading and close once what is queued is written (from on_check). */
static void xconn_end(struct brk_uvconn *uc)
{
	uc->x->phase = XP_DONE;
	uc->c.state = BRK_CS_CLOSING;
	uc->c.last_rx = gw_mono_ms();
	uv_read_stop((uv_stream_t *)&uc->tcp);
	if (!uc->c.dirty)
		brk__uv_mark_dirty(uc);
}

static void on_xwrite(uv_write_t *req, int status)
{
	struct brk_uvconn *uc = req->data;
	struct brk_xport *x = uc->x;

	uc->c.writing = 0;
	x->wlen = 0;
	if (status < 0) {
		brk__uv_close_now(uc);
		return;
	}
	if (brk__conn_pending(&uc->c) || x->olen) {
		brk__uv_flush(uc);
		return;
	}
	/* Caught up: an idle connection keeps no output buffers. */
	gw_free(x->wbuf);
	x->wbuf = NULL;
	x->wcap = 0;
	if (uc->c.state == BRK_CS_CLOSING)
		brk__uv_close_linger(uc);
}

/*
 * Gather @uc's output (its staged bytes, then c->out) in XBUF_SIZE pieces,
 * frame and encrypt them into x->obuf, and write x->obuf unless a write is
 * in flight (on_xwrite calls again). Closes the connection on an error.
 */
void brk__xport_flush(struct brk_uvconn *uc)
{
	struct brk_conn *c = &uc->c;
	struct brk_xport *x = uc->x;
	struct brk_uv *u = conn_uv(uc);
	size_t fill = 0;
	unsigned int i;
	uint8_t *tmp;
	int rc = 0;

	if (uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	x->flushing = true;
	if (x->phase == XP_OPEN || x->phase == XP_DONE) {
		if (c->stage_len) {
			const uint8_t *p = u->b.stage.buf + c->stage_off;
			size_t n = c->stage_len;

			while (!rc && n) {
				size_t k = GW_MIN(n, (size_t)XBUF_SIZE);

				rc = xsend_mqtt(uc, p, k);
				p += k;
				n -= k;
			}
			rc = brk__conn_unstage(c, c->stage_len) ?: rc;
		}
		if (c->out && c->out->total) {
			for (i = 0; !rc && i < c->out->n; i++) {
				struct brk_oseg *sg = &c->out->segs[i];
				const uint8_t *p =
					(sg->m ? brk__msg_payload(sg->m) : c->out->buf) + sg->off;
				size_t n = sg->len;

				while (!rc && n) {
					size_t k = GW_MIN(n, (size_t)XBUF_SIZE - fill);

					memcpy(u->xbuf + fill, p, k);
					fill += k;
					p += k;
					n -= k;
					if (fill == XBUF_SIZE) {
						rc = xsend_mqtt(uc, u->xbuf, fill);
						fill = 0;
					}
				}
			}
			if (!rc && fill)
				rc = xsend_mqtt(uc, u->xbuf, fill);
			brk__obuf_reset(c->out);
		}
		if (c->out)
			brk__conn_out_free(c);
		if (!rc && x->ws && c->state == BRK_CS_CLOSING && x->phase == XP_OPEN)
			ws_close(uc, x->close_code ? x->close_code : BRK_WS_CLOSE_NORMAL);
	}
	x->flushing = false;
	if (rc) {
		brk__uv_close_now(uc);
		return;
	}
	if (c->writing || !x->olen)
		return;
	/* Swap: what accumulated becomes the batch in flight. */
	tmp = x->wbuf;
	x->wbuf = x->obuf;
	x->obuf = tmp;
	x->wlen = x->olen;
	x->olen = 0;
	c->xqueued = 0;
	{
		size_t cap = x->wcap;

		x->wcap = x->ocap;
		x->ocap = cap;
	}
	{
		uv_buf_t b = uv_buf_init((char *)x->wbuf, (unsigned int)x->wlen);

		x->wreq.data = uc;
		rc = uv_write(&x->wreq, (uv_stream_t *)&uc->tcp, &b, 1, on_xwrite);
	}
	if (rc) {
		x->wlen = 0;
		brk__uv_close_now(uc);
		return;
	}
	c->writing = x->wlen;
}

/* A refused or failed transport: one line with the reason (counted by the caller). */
static void xlog(struct brk_uvconn *uc, const char *what, const char *why)
{
	brk__log(&conn_uv(uc)->b, LOG_WARNING, "%s on %s: %s: %s", uc->x->peer, uc->x->l->cfg->url,
		 what, why);
}

/* WebSocket frames in: MQTT bytes to the protocol, control frames answered. */
static void ws_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
{
	struct brk_xport *x = uc->x;

	while (n && x->phase == XP_OPEN && uc->c.state != BRK_CS_CLOSING) {
		struct brk_ws_event ev;
		int rc = brk_ws_decode(&x->rx, p, n, &ev);

		if (rc < 0) {
			char why[48];

			snprintf(why, sizeof(why), "closing with %u", ev.code);
			xlog(uc, "bad WebSocket frame", why);
			x->close_code = ev.code;
			ws_close(uc, ev.code);
			xconn_end(uc);
			return;
		}
		switch (ev.type) {
		case BRK_WS_EV_DATA:
			brk__conn_input(&uc->c, (uint8_t *)ev.data.p, ev.data.len, gw_mono_ms());
			break;
		case BRK_WS_EV_PING:
			/* [RFC 6455 5.5.2] a Pong with the Ping's payload. */
			if (ws_send(uc, BRK_WS_PONG, ev.data.p, ev.data.len))
				brk__uv_close_now(uc);
			uc->c.last_rx = gw_mono_ms();
			break;
		case BRK_WS_EV_CLOSE:
			/* [5.5.1] echo the code, then close: the peer closed without DISCONNECT. */
			ws_close(uc, ev.code);
			xconn_end(uc);
			return;
		default:
			break;
		}
		p += rc;
		n -= (size_t)rc;
	}
}

/* The upgrade request, possibly in pieces: answered once complete. */
static void http_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
{
	struct brk_uv *u = conn_uv(uc);
	struct brk_xport *x = uc->x;
	const char *path = x->l->cfg->ws_path ? x->l->cfg->ws_path : "/mqtt";
	struct brk_http_req req;
	const uint8_t *data = p;
	size_t len = n, resp_len = 0;
	char resp[512];
	int rc;

	if (x->http || !brk_http_parse_request(p, n, &req)) {
		/* Incomplete: keep it (bounded), parse what has come so far. */
		if (x->http_len + n > HTTP_MAX) {
			u->b.st.ws_refused++;
			xlog(uc, "WebSocket upgrade refused", "request head too long");
			xconn_end(uc);
			return;
		}
		if (!x->http && !(x->http = gw_malloc(HTTP_MAX))) {
			brk__uv_close_now(uc);
			return;
		}
		memcpy(x->http + x->http_len, p, n);
		x->http_len += (uint32_t)n;
		data = x->http;
		len = x->http_len;
	}
	rc = brk_http_parse_request(data, len, &req);
	if (rc == 0)
		return;
	if (rc > 0)
		rc = brk_ws_handshake(&req, path, resp, sizeof(resp), &resp_len) ?: rc;
	if (resp_len && xsend(uc, resp, resp_len)) {
		brk__uv_close_now(uc);
		return;
	}
	if (rc < 0) {
		u->b.st.ws_refused++;
		xlog(uc, "WebSocket upgrade refused",
		     rc == -ENOENT	      ? "wrong path"
		     : rc == -EPROTONOSUPPORT ? "WebSocket version not 13"
		     : rc == -EMSGSIZE	      ? "too many header lines"
					      : "not a valid mqtt upgrade");
		xconn_end(uc);
		return;
	}
	x->phase = XP_OPEN;
	/* Frames the client sent right behind its request. */
	if ((size_t)rc < len) {
		size_t rest = len - (size_t)rc;

		if (data == p) {
			ws_input(uc, p + rc, rest);
		} else {
			memmove(x->http, x->http + rc, rest);
			ws_input(uc, x->http, rest);
		}
	}
	gw_free(x->http);
	x->http = NULL;
	x->http_len = 0;
}

/* Bytes of the connection's stream (after TLS): the upgrade, frames, or MQTT. */
static void plain_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
{
	struct brk_xport *x = uc->x;

	if (!x->ws)
		brk__conn_input(&uc->c, p, n, gw_mono_ms());
	else if (x->phase == XP_HTTP)
		http_input(uc, p, n);
	else if (x->phase == XP_OPEN)
		ws_input(uc, p, n);
}

/* The TLS handshake is done: the client certificate's name, if it is the user name. */
static int tls_ready(struct brk_uvconn *uc)
{
	struct brk_xport *x = uc->x;
	char cn[256];

	x->phase = x->ws ? XP_HTTP : XP_OPEN;
	if (!x->l->cfg->tls.use_identity_as_username)
		return 0;
	if (gw_tls_peer_cn(x->tls, cn, sizeof(cn))) {
		xlog(uc, "TLS refused",
		     "use_identity_as_username: no usable CN in the certificate");
		return -EACCES;
	}
	x->identity = gw_strdup(cn);
	return x->identity ? 0 : -ENOMEM;
}

/* Bytes read from a connection with a transport. */
void brk__xport_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
{
	struct brk_uv *u = conn_uv(uc);
	struct brk_xport *x = uc->x;
	char why[256];
	int rc;

	if (x->phase == XP_DONE)
		return;
	if (!x->tls) {
		plain_input(uc, p, n);
		return;
	}
	if (gw_tls_feed(x->tls, p, n)) {
		brk__uv_close_now(uc);
		return;
	}
	if (x->phase == XP_TLS) {
		rc = gw_tls_handshake(x->tls, why, sizeof(why));
		if (rc == 0)
			return;
		if (rc < 0) {
			u->b.st.tls_failed++;
			xlog(uc, "TLS handshake failed", why);
			xconn_end(uc);
			return;
		}
		if (tls_ready(uc)) {
			u->b.st.tls_failed++;
			xconn_end(uc);
			return;
		}
	}
	while (x->phase != XP_DONE && uc->c.state != BRK_CS_CLOSING) {
		rc = gw_tls_read(x->tls, u->xbuf, XBUF_SIZE, why, sizeof(why));
		if (rc == 0)
			break;
		if (rc == -ECONNRESET) {
			/* close_notify: the peer is done, as on EOF. */
			brk__uv_close_now(uc);
			return;
		}
		if (rc < 0) {
			xlog(uc, "TLS error", why);
			brk__uv_close_now(uc);
			return;
		}
		plain_input(uc, u->xbuf, (size_t)rc);
	}
	gw_tls_trim(x->tls);
}

/* The transport of a connection accepted on @l (not mqtt://). 0 or -ENOMEM. */
int brk__xport_new(struct brk_uvconn *uc, struct brk_listener *l)
{
	struct brk_xport *x = gw_calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	uc->x = x;
	x->l = l;
	x->ws = l->kind == BRK_TR_WS || l->kind == BRK_TR_WSS;
	x->phase = l->tls ? XP_TLS : x->ws ? XP_HTTP : XP_OPEN;
	brk__uv_peer_name(&uc->tcp, x->peer, sizeof(x->peer));
	if (l->tls && gw_tls_server_new(l->tls, tls_send, uc, &x->tls))
		return -ENOMEM;
	return 0;
}
