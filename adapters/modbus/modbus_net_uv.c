/*
 * modbus_net_uv.c - a Modbus TCP or RTU-over-TCP line on the loop: the host
 * looked up once, a uv_tcp connection opened for a request and kept, each
 * request framed on the stack (mbus_xfer_encode) and written with
 * uv_try_write, answers cut from the byte stream (mbus_mbap_decode,
 * mbus_rtu_decode_rsp) and handed to the poller. No thread.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h>
#include <uv.h>

#include "modbus_uv_int.h"
/* =========================================================== network lines */

static void on_tcp_closed(uv_handle_t *h);

/* Drops the connection (a timeout, a broken stream, stop). */
void ad__modbus_net_close(struct mb_line *l)
{
	if (l->net != NET_CONNECTING && l->net != NET_CONNECTED)
		return;
	l->net = NET_CLOSING;
	l->rlen = 0; /* part is freed in the close callback: on_read may be using it */
	l->ad->closing++;
	uv_close((uv_handle_t *)&l->tcp, on_tcp_closed);
}

/* The connection failed under the request in flight: end it with @err. */
static void net_fail(struct mb_line *l, int err)
{
	ad__modbus_net_close(l);
	l->send_pending = false;
	if (l->sm.outstanding)
		mbus_line_error(&l->sm, ad__modbus_clock_now(), err);
	ad__modbus_pump(l);
}

static void on_tcp_closed(uv_handle_t *h)
{
	struct mb_line *l = container_of((uv_tcp_t *)h, struct mb_line, tcp);
	struct mb_adapter *ad = l->ad;

	l->net = NET_IDLE;
	gw_free(l->part);
	l->part = NULL;
	ad->closing--;
	if (ad->stopping) {
		ad__modbus_maybe_done(ad);
		return;
	}
	/* A request came while the old connection was closing. */
	if (l->send_pending)
		ad__modbus_net_connect(l);
}

/* libuv calls it before the close callback, also when the close cancelled the write. */
static void on_written(uv_write_t *req, int status)
{
	struct mb_unsent *u = container_of(req, struct mb_unsent, req);
	struct mb_line *l = u->l;

	l->unsent = NULL;
	gw_free(u);
	if (status < 0 && status != UV_ECANCELED && l->net == NET_CONNECTED)
		net_fail(l, status);
}

/*
 * Sends the @len bytes at @p on the connected socket: mostly at once; what
 * the socket does not take is copied and handed to uv_write. 0 or -errno
 * (-EBUSY: the last request's tail is still being written).
 */
static int net_write(struct mb_line *l, const uint8_t *p, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned int)len);
	struct mb_unsent *u;
	int n, rc;

	if (l->unsent)
		return -EBUSY;
	n = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
	if (n == (int)len)
		return 0;
	if (n < 0 && n != UV_EAGAIN)
		return n;
	if (n > 0) {
		p += n;
		len -= (size_t)n;
	}
	u = gw_malloc(sizeof(*u) + len);
	if (!u)
		return -ENOMEM;
	u->l = l;
	memcpy(u->data, p, len);
	b = uv_buf_init((char *)u->data, (unsigned int)len);
	rc = uv_write(&u->req, (uv_stream_t *)&l->tcp, &b, 1, on_written);
	if (rc) {
		gw_free(u);
		return rc;
	}
	l->unsent = u;
	return 0;
}

/* Into the adapter's buffer, or after the first bytes of an answer in pieces. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct mb_line *l = container_of((uv_tcp_t *)h, struct mb_line, tcp);

	(void)hint;
	if (l->rlen) {
		buf->base = (char *)l->part + l->rlen;
		buf->len = MBUS_TCP_MAX_ADU - l->rlen;
	} else {
		buf->base = (char *)l->ad->rbuf;
		buf->len = sizeof(l->ad->rbuf);
	}
}

/*
 * Bytes from the device: cut them into frames. An answer with the
 * transaction id of the request in flight goes to the poller; anything else
 * (a late answer to a request that timed out) is dropped. A malformed
 * stream ends the connection. Bytes of an unfinished answer move from the
 * adapter's buffer to the line's part, where the rest of it is read.
 */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct mb_line *l = container_of((uv_tcp_t *)s, struct mb_line, tcp);
	bool tcp = l->mc->type == AD_BUS_TCP;
	const uint8_t *p;
	size_t len;

	if (nread < 0) {
		net_fail(l, nread == UV_EOF ? -ECONNRESET : (int)nread);
		return;
	}
	if (buf->base == (char *)l->ad->rbuf) {
		p = l->ad->rbuf;
		len = (size_t)nread;
	} else {
		l->rlen = (uint16_t)(l->rlen + nread);
		p = l->part;
		len = l->rlen;
	}
	while (len > 0 && l->net == NET_CONNECTED) {
		struct mbus_frame f;
		uint16_t tid = 0;
		int n;

		n = tcp ? mbus_mbap_decode(p, len, &tid, &f) : mbus_rtu_decode_rsp(p, len, &f);
		if (n == 0 && len >= MBUS_TCP_MAX_ADU)
			n = -EBADMSG;
		if (n == 0)
			break;
		if (n < 0) {
			net_fail(l, n);
			return;
		}
		if (l->sm.outstanding && (!tcp || tid == l->tid))
			mbus_line_response(&l->sm, ad__modbus_clock_now(), &f);
		/* The poller may have reset (closed) the connection. */
		if (l->net != NET_CONNECTED)
			break;
		p += n;
		len -= (size_t)n;
	}
	if (l->net == NET_CONNECTED) {
		if (len && !l->part && !(l->part = gw_malloc(MBUS_TCP_MAX_ADU))) {
			net_fail(l, -ENOMEM);
			return;
		}
		if (len)
			memmove(l->part, p, len);
		l->rlen = (uint16_t)len;
	}
	ad__modbus_pump(l);
}

/* libuv calls it before the close callback, also when the close cancelled the connect. */
static void on_connect(uv_connect_t *req, int status)
{
	struct mb_line *l = req->data;
	int rc;

	gw_free(req);
	if (status == UV_ECANCELED || l->net != NET_CONNECTING)
		return;
	if (status < 0) {
		net_fail(l, status);
		return;
	}
	l->net = NET_CONNECTED;
	l->rlen = 0;
	rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
	if (!rc && l->send_pending) {
		l->send_pending = false;
		rc = ad__modbus_net_send(l, &l->sm.x);
		/* The answer gets its own timeout after the connect's. */
		if (!rc)
			mbus_line_sent(&l->sm, ad__modbus_clock_now());
	}
	if (rc)
		net_fail(l, rc);
}

static void open_socket(struct mb_line *l)
{
	uv_connect_t *req = gw_malloc(sizeof(*req));
	int rc;

	if (!req) {
		net_fail(l, -ENOMEM);
		return;
	}
	rc = uv_tcp_init(l->ad->base.loop, &l->tcp);
	if (rc) {
		gw_free(req);
		net_fail(l, rc);
		return;
	}
	l->net = NET_CONNECTING;
	uv_tcp_nodelay(&l->tcp, 1);
	req->data = l;
	rc = uv_tcp_connect(req, &l->tcp, &l->addr.sa, on_connect);
	if (rc) {
		gw_free(req);
		net_fail(l, rc);
	}
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct mb_line *l = req->data;
	struct mb_adapter *ad = l->ad;

	gw_free(req);
	ad->resolving--;
	l->net = NET_IDLE;
	if (status == 0 && res && res->ai_addrlen <= sizeof(l->addr)) {
		memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
		l->have_addr = true;
	}
	uv_freeaddrinfo(res);
	if (ad->stopping) {
		ad__modbus_maybe_done(ad);
		return;
	}
	if (!l->have_addr) {
		net_fail(l, -EHOSTUNREACH);
		return;
	}
	if (l->send_pending)
		open_socket(l);
}

/* Opens a connection for the pending request; the host is looked up once. */
void ad__modbus_net_connect(struct mb_line *l)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	const char *host = l->mc->host;
	uv_getaddrinfo_t *req;
	char port[8];
	int rc;

	if (l->net != NET_IDLE)
		return;
	if (!l->have_addr) {
		if (uv_ip4_addr(host, l->mc->port, &l->addr.in) == 0 ||
		    uv_ip6_addr(host, l->mc->port, &l->addr.in6) == 0) {
			l->have_addr = true;
		} else {
			snprintf(port, sizeof(port), "%u", l->mc->port);
			req = gw_malloc(sizeof(*req));
			if (req) {
				req->data = l;
				rc = uv_getaddrinfo(l->ad->base.loop, req, on_resolved, host, port,
						    &hints);
				if (rc)
					gw_free(req);
			}
			if (!req || rc) {
				net_fail(l, -EHOSTUNREACH);
				return;
			}
			l->ad->resolving++;
			l->net = NET_RESOLVING;
			return;
		}
	}
	open_socket(l);
}

/* Frames @x for the line's protocol into @aw (a new transaction id for MBAP). */
int ad__modbus_net_frame(struct mb_line *l, const struct mbus_xfer *x, struct gw_writer *aw)
{
	return mbus_xfer_encode(aw, l->mc->type == AD_BUS_TCP, &l->tid, x);
}

/* Frames @x on the stack and writes it on the connected socket; 0 or -errno. */
int ad__modbus_net_send(struct mb_line *l, const struct mbus_xfer *x)
{
	uint8_t adu[MBUS_TCP_MAX_ADU];
	struct gw_writer aw;
	int rc;

	gw_writer_init(&aw, adu, sizeof(adu));
	rc = ad__modbus_net_frame(l, x, &aw);
	return rc ? rc : net_write(l, adu, aw.len);
}
