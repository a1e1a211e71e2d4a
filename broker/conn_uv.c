/*
 * conn_uv.c - the socket side of a broker connection: reads into one shared
 * buffer, writes batched per loop iteration, closes, and accepting a
 * connection (listener and per-source limits, the PROXY header).
 *
 * Reads: every connection reads into the broker's one read buffer; the
 * protocol machine handles whole packets in place and copies only a partial
 * tail, so an idle connection owns no buffer at all.
 * Writes: the protocol machine puts a connection's output in the broker's
 * stage while it has nothing else queued, else in c->out, and asks for a
 * flush; a uv_check handle (it runs after the I/O callbacks of an iteration)
 * writes each dirty connection's staged bytes with uv_try_write, copies what
 * the socket did not take into c->out, and turns c->out into one uv_write of
 * many iovecs. While a write is in flight, new output accumulates in c->out
 * and goes out in the next one. So a connection that is sent a CONNACK or a
 * PINGRESP allocates nothing; one that cannot keep up gets its own buffers
 * and write state, given back on the tick after it caught up.
 * Closes: a connection the protocol closes (after its DISCONNECT or failed
 * CONNACK) lingers, see struct brk_uvlinger; one the peer closed or that
 * failed is closed at once.
 * The transport of a TLS or WebSocket connection is in transport_uv.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker/broker_int.h"
#include "broker/broker_uv_int.h"
#include "broker/limits.h"
#include "broker/proxy_codec.h"

/* ------------------------------------------------------------ connections */

void brk__uv_writer_free(struct brk_uvconn *uc)
{
	if (!uc->w)
		return;
	gw_list_del(&uc->w->link);
	brk__obuf_fini(&uc->w->wbuf);
	gw_free(uc->w);
	uc->w = NULL;
}

/* The protocol's side of a close: off the dirty list, conn state and write buffers freed. */
static void conn_detach(struct brk_uvconn *uc)
{
	struct brk_uv *u = conn_uv(uc);
	unsigned int i;

	if (uc->c.dirty)
		for (i = 0; i < u->n_dirty; i++)
			if (u->dirty[i] == uc)
				u->dirty[i] = NULL;
	uc->c.dirty = false;
	brk__conn_closed(&uc->c);
	brk__uv_writer_free(uc);
	if (uc->l)
		uc->l->n_conns--;
	uc->l = NULL;
	brk_src_release(u->srcs, uc->src);
	uc->src = NULL;
	gw_free(uc->proxy);
	uc->proxy = NULL;
}

static void on_conn_close(uv_handle_t *h)
{
	struct brk_uvconn *uc = h->data;
	struct brk_uv *u = conn_uv(uc);

	conn_detach(uc);
	brk__xport_free(uc);
	gw_free(uc);
	u->open_handles--;
}

void brk__uv_close_now(struct brk_uvconn *uc)
{
	if (uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	uc->c.state = BRK_CS_CLOSING;
	uv_read_stop((uv_stream_t *)&uc->tcp);
	uv_close((uv_handle_t *)&uc->tcp, on_conn_close);
}

static void on_linger_close(uv_handle_t *h)
{
	struct brk_uvlinger *l = h->data;
	struct brk_uv *u = conn_uv(l->uc);

	gw_list_del(&l->link);
	brk__xport_free(l->uc);
	gw_free(l->uc);
	gw_free(l);
	u->open_handles--;
}

void brk__uv_linger_close(struct brk_uvlinger *l)
{
	if (!uv_is_closing((uv_handle_t *)&l->uc->tcp))
		uv_close((uv_handle_t *)&l->uc->tcp, on_linger_close);
}

static void on_linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct brk_uvlinger *l = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)conn_uv(l->uc)->rbuf, READ_BUF_SIZE);
}

/* What the peer sends now is dropped; its EOF (or an error) ends the lingering. */
static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	if (nread < 0)
		brk__uv_linger_close(st->data);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
	/* UV_ECANCELED: the handle is closing already. */
	if (status < 0 && status != UV_ECANCELED)
		brk__uv_linger_close(req->data);
}

/*
 * Close @uc, whose output is all written, gracefully (see struct
 * brk_uvlinger). At once while the broker stops (no tick is left to end the
 * lingering) or when the lingering state cannot be allocated.
 */
void brk__uv_close_linger(struct brk_uvconn *uc)
{
	struct brk_uv *u = conn_uv(uc);
	struct brk_uvlinger *l;

	if (uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	l = u->b.stopping ? NULL : gw_calloc(1, sizeof(*l));
	if (!l) {
		brk__uv_close_now(uc);
		return;
	}
	uc->c.state = BRK_CS_CLOSING;
	conn_detach(uc);
	l->uc = uc;
	l->since = gw_mono_ms();
	l->req.data = l;
	uc->tcp.data = l;
	gw_list_add_tail(&u->linger, &l->link);
	uv_read_stop((uv_stream_t *)&uc->tcp);
	if (uv_shutdown(&l->req, (uv_stream_t *)&uc->tcp, on_linger_shutdown) ||
	    uv_read_start((uv_stream_t *)&uc->tcp, on_linger_alloc, on_linger_read))
		brk__uv_linger_close(l);
}

static void on_write(uv_write_t *req, int status)
{
	struct brk_uvconn *uc = req->data;

	uc->c.writing = 0;
	brk__obuf_reset(&uc->w->wbuf);
	if (status < 0) {
		brk__uv_close_now(uc);
		return;
	}
	if (brk__conn_pending(&uc->c))
		brk__uv_flush(uc);
	else if (uc->c.state == BRK_CS_CLOSING)
		brk__uv_close_linger(uc);
}

/*
 * Write what @uc has queued: its staged bytes with uv_try_write (what the
 * socket does not take moves to c->out), then c->out with uv_write, unless a
 * write is in flight already (on_write calls again). Closes the connection on
 * a write error or out-of-memory.
 */
void brk__uv_flush(struct brk_uvconn *uc)
{
	struct brk_conn *c = &uc->c;
	struct brk_uv *u = conn_uv(uc);
	struct brk_obuf tmp;
	struct brk_uvwr *w;
	unsigned int i;
	int rc;

	if (uc->x) {
		brk__xport_flush(uc);
		return;
	}
	if (c->writing || uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	if (c->stage_len) {
		uv_buf_t sb = uv_buf_init((char *)u->b.stage.buf + c->stage_off, c->stage_len);

		rc = uv_try_write((uv_stream_t *)&uc->tcp, &sb, 1);
		if (rc == UV_EAGAIN)
			rc = 0;
		if (rc < 0 || brk__conn_unstage(c, rc < 0 ? c->stage_len : (size_t)rc)) {
			brk__uv_close_now(uc);
			return;
		}
	}
	if (!c->out || !c->out->total)
		return;
	if (!uc->w) {
		uc->w = gw_calloc(1, sizeof(*uc->w));
		if (!uc->w) {
			brk__uv_close_now(uc);
			return;
		}
		uc->w->uc = uc;
		gw_list_add_tail(&u->busy, &uc->w->link);
	}
	w = uc->w;
	if (u->cap_iov < c->out->n) {
		uv_buf_t *v = gw_realloc(u->iov, c->out->n * sizeof(*v));

		if (!v) {
			brk__uv_close_now(uc);
			return;
		}
		u->iov = v;
		u->cap_iov = c->out->n;
	}
	/* Swap: what accumulated becomes the batch in flight. */
	tmp = w->wbuf;
	w->wbuf = *c->out;
	*c->out = tmp;
	for (i = 0; i < w->wbuf.n; i++) {
		struct brk_oseg *sg = &w->wbuf.segs[i];
		uint8_t *base = sg->m ? (uint8_t *)brk__msg_payload(sg->m) : w->wbuf.buf;

		u->iov[i] = uv_buf_init((char *)base + sg->off, sg->len);
	}
	w->req.data = uc;
	rc = uv_write(&w->req, (uv_stream_t *)&uc->tcp, u->iov, w->wbuf.n, on_write);
	if (rc) {
		brk__obuf_reset(&w->wbuf);
		brk__uv_close_now(uc);
		return;
	}
	c->writing = w->wbuf.total;
}

/* Put @uc on the list on_check flushes (once: c->dirty says it is there). */
void brk__uv_mark_dirty(struct brk_uvconn *uc)
{
	struct brk_uv *u = conn_uv(uc);

	if (u->n_dirty == u->cap_dirty) {
		unsigned int nc = u->cap_dirty ? u->cap_dirty * 2 : 64;
		struct brk_uvconn **v = gw_realloc(u->dirty, nc * sizeof(*v));

		if (!v) {
			uc->c.dirty = false;
			brk__uv_close_now(uc);
			return;
		}
		u->dirty = v;
		u->cap_dirty = nc;
	}
	uc->c.dirty = true;
	u->dirty[u->n_dirty++] = uc;
}

/* The protocol set c->dirty before calling: it is not on the list yet. */
static void ops_want_flush(struct brk_conn *c)
{
	brk__uv_mark_dirty(container_of(c, struct brk_uvconn, c));
}

static void ops_close(struct brk_conn *c)
{
	struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

	c->last_rx = gw_mono_ms(); /* when the close began */
	uv_read_stop((uv_stream_t *)&uc->tcp);
	/*
	 * Let the last packets (CONNACK, DISCONNECT) go out first. on_check
	 * closes, once they are written: never here, inside the protocol code
	 * that asked, which still uses the conn and its session.
	 */
	if (!c->dirty)
		brk__uv_mark_dirty(uc);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct brk_uvconn *uc = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)conn_uv(uc)->rbuf, READ_BUF_SIZE);
}

static void proxy_input(struct brk_uvconn *uc, uint8_t *p, size_t n);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct brk_uvconn *uc = st->data;

	(void)buf;
	if (nread > 0) {
		if (uc->proxy_wait)
			proxy_input(uc, conn_uv(uc)->rbuf, (size_t)nread);
		else if (uc->x)
			brk__xport_input(uc, conn_uv(uc)->rbuf, (size_t)nread);
		else
			brk__conn_input(&uc->c, conn_uv(uc)->rbuf, (size_t)nread, gw_mono_ms());
		return;
	}
	if (nread < 0) {
		/* The peer went away without DISCONNECT: an abnormal close (will_ok). */
		brk__uv_close_now(uc);
	}
}

void brk__uv_peer_name(uv_tcp_t *t, char *out, size_t n)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	snprintf(out, n, "%s:%d", ip, port);
}

/* The PROXY header's source address and port, as brk__uv_peer_name writes them. */
static void proxied_name(const struct brk_uvconn *uc, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	uv_inet_ntop(uc->skey.family, uc->skey.a, ip, sizeof(ip));
	snprintf(out, n, "%s:%u", ip, uc->sport);
}

static void ops_peer(struct brk_conn *c, char *buf, size_t n)
{
	struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

	if (uc->proxied)
		proxied_name(uc, buf, n);
	else
		brk__uv_peer_name(&uc->tcp, buf, n);
}

static void ops_abort(struct brk_conn *c)
{
	brk__uv_close_now(container_of(c, struct brk_uvconn, c));
}

/*
 * Flow control (see conn_flow in session.c): while paused the socket is not
 * read, so its receive buffer fills and TCP stops the client. Resuming only
 * restarts reading: the next bytes come through on_read, never from here.
 */
static void ops_pause(struct brk_conn *c, bool on)
{
	struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

	if (uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	if (on)
		uv_read_stop((uv_stream_t *)&uc->tcp);
	else if (uv_read_start((uv_stream_t *)&uc->tcp, on_alloc, on_read))
		brk__uv_close_now(uc);
}

static const char *ops_identity(struct brk_conn *c)
{
	struct brk_xport *x = container_of(c, struct brk_uvconn, c)->x;

	return x ? x->identity : NULL;
}

static const struct brk_conn_ops uv_conn_ops = {
	.want_flush = ops_want_flush,
	.close = ops_close,
	.peer = ops_peer,
	.pause = ops_pause,
	.identity = ops_identity,
	.abort = ops_abort,
};

/* ---------------------------------------------------------------- limits */

/* The source address of @uc: the PROXY header's, else the socket's peer. */
static int conn_source(struct brk_uvconn *uc, struct brk_src_key *k)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (uc->proxied) {
		*k = uc->skey;
		return 0;
	}
	memset(k, 0, sizeof(*k));
	if (uv_tcp_getpeername(&uc->tcp, (struct sockaddr *)&ss, &len))
		return -ENOTCONN;
	if (ss.ss_family == AF_INET6) {
		const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;

		/* An IPv4 client of a dual-stack socket counts as the IPv4 address. */
		if (IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
			k->family = AF_INET;
			memcpy(k->a, a + 12, 4);
		} else {
			k->family = AF_INET6;
			memcpy(k->a, a, 16);
		}
	} else {
		k->family = AF_INET;
		memcpy(k->a, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	}
	return 0;
}

/*
 * Refused connections are said once in a while, with the counts so far: one
 * line per refusal would let a flood fill the log too (each is at debug level).
 */
static void refused_log(struct brk_uv *u)
{
	int64_t now = gw_mono_ms();
	const struct brk_stats *st = &u->b.st;

	if (u->refused_logged && now - u->refused_logged < 10000)
		return;
	u->refused_logged = now;
	brk__log(&u->b, LOG_WARNING,
		 "connections refused so far: %" PRIu64
		 " over a listener's max_connections, %" PRIu64
		 " over max_connections_per_source, %" PRIu64 " over connect_rate",
		 st->refused_max_connections, st->refused_per_source, st->refused_rate);
}

/*
 * The per-source limits, once the source is known (at accept, or after the
 * PROXY header). 0: admitted (counted until conn_detach); else the
 * connection is to be closed (counted, and said at debug level: a flood
 * must not flood the log too).
 */
static int conn_admit(struct brk_uvconn *uc)
{
	struct brk_uv *u = conn_uv(uc);
	struct brk_src_key k;
	char peer[64];
	const char *why;
	int rc;

	if (!u->srcs)
		return 0;
	if (conn_source(uc, &k))
		return -ENOTCONN;
	rc = brk_src_admit(u->srcs, &k, gw_mono_ms(), &uc->src);
	switch (rc) {
	case BRK_SRC_OK:
		return 0;
	case BRK_SRC_RATE:
		u->b.st.refused_rate++;
		why = "connect_rate";
		break;
	case BRK_SRC_TOO_MANY:
		u->b.st.refused_per_source++;
		why = "max_connections_per_source";
		break;
	default:
		/* A table full of live sources, or no memory for one more. */
		u->b.st.refused_per_source++;
		why = "too many sources";
		break;
	}
	ops_peer(&uc->c, peer, sizeof(peer));
	brk__log(&u->b, LOG_DEBUG, "%s: connection refused: %s", peer, why);
	refused_log(u);
	return -EAGAIN;
}

/* What follows the header: the transport's or the protocol's first bytes. */
static void conn_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
{
	if (uc->x)
		brk__xport_input(uc, p, n);
	else
		brk__conn_input(&uc->c, p, n, gw_mono_ms());
}

/*
 * proxy_protocol: the first bytes of a connection are a PROXY header (kept
 * in uc->proxy while incomplete, bounded); its source becomes the
 * connection's, the limits are applied to it, and the bytes after it go on.
 */
static void proxy_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
{
	struct brk_uv *u = conn_uv(uc);
	struct brk_proxy_hdr h;
	size_t kept = uc->proxy_len, take = 0, rest;
	char peer[64];
	int rc;

	rc = uc->proxy ? 0 : brk_proxy_parse(p, n, &h);
	if (rc == 0) {
		take = GW_MIN(n, (size_t)BRK_PROXY_V2_MAX - kept);
		if (!uc->proxy && !(uc->proxy = gw_malloc(BRK_PROXY_V2_MAX))) {
			brk__uv_close_now(uc);
			return;
		}
		memcpy(uc->proxy + kept, p, take);
		uc->proxy_len = (uint16_t)(kept + take);
		/* The parser never asks for more once it has BRK_PROXY_V2_MAX bytes. */
		rc = brk_proxy_parse(uc->proxy, uc->proxy_len, &h);
		if (rc == 0)
			return;
	}
	if (rc < 0) {
		u->b.st.proxy_bad++;
		brk__uv_peer_name(&uc->tcp, peer, sizeof(peer));
		brk__log(&u->b, LOG_WARNING, "%s on %s: no valid PROXY header, closed", peer,
			 uc->l ? uc->l->cfg->url : "?");
		brk__uv_close_now(uc);
		return;
	}
	uc->proxy_wait = false;
	if (h.family != BRK_PROXY_UNSPEC) {
		uc->proxied = true;
		uc->skey.family = h.family == BRK_PROXY_INET ? AF_INET : AF_INET6;
		memcpy(uc->skey.a, h.src, sizeof(uc->skey.a));
		uc->sport = h.src_port;
		if (uc->x)
			proxied_name(uc, uc->x->peer, sizeof(uc->x->peer));
	}
	if (conn_admit(uc)) {
		brk__uv_close_now(uc);
		return;
	}
	if (!uc->proxy) {
		if ((size_t)rc < n)
			conn_input(uc, p + rc, n - (size_t)rc);
		return;
	}
	/*
	 * The header ended in this read (rc > kept: it was not complete in
	 * the bytes kept before). The client's bytes after it: those kept past
	 * the header, then those of this read that were not kept, put together
	 * in the read buffer (@p is it): fewer than @n bytes in all.
	 */
	rest = uc->proxy_len - (size_t)rc;
	memmove(p + rest, p + take, n - take);
	memcpy(p, uc->proxy + rc, rest);
	gw_free(uc->proxy);
	uc->proxy = NULL;
	uc->proxy_len = 0;
	if (rest + n - take)
		conn_input(uc, p, rest + n - take);
}

/* Is @max a limit (0 and 0xFFFFFFFF, -1 in the file, are none)? */
static bool limited(uint32_t max)
{
	return max && max != UINT32_MAX;
}

void brk__uv_on_connection(uv_stream_t *server, int status)
{
	struct brk_listener *l = server->data;
	struct brk_uv *u = l->u;
	struct brk_uvconn *uc;

	if (status < 0)
		return;
	uc = gw_calloc(1, sizeof(*uc));
	if (!uc || uv_tcp_init(u->b.loop, &uc->tcp)) {
		gw_free(uc);
		return;
	}
	uc->tcp.data = uc;
	uc->c.b = &u->b;
	u->open_handles++;
	if (uv_accept(server, (uv_stream_t *)&uc->tcp)) {
		uc->c.state = BRK_CS_CLOSING;
		gw_list_init(&uc->c.link);
		uv_close((uv_handle_t *)&uc->tcp, on_conn_close);
		return;
	}
	brk__conn_init(&uc->c, &u->b, &uv_conn_ops);
	uv_tcp_nodelay(&uc->tcp, 1);
	/* Mosquitto's max_connections: connections open on the listener, CONNECTed or not. */
	if (limited(l->cfg->max_connections) && l->n_conns >= l->cfg->max_connections) {
		u->b.st.refused_max_connections++;
		refused_log(u);
		brk__uv_close_now(uc);
		return;
	}
	uc->l = l;
	l->n_conns++;
	if (l->cfg->proxy_protocol) {
		/* The source is known once the header is read: the limits wait for it. */
		uc->proxy_wait = true;
	} else if (conn_admit(uc)) {
		brk__uv_close_now(uc);
		return;
	}
	if (l->kind != BRK_TR_MQTT && brk__xport_new(uc, l)) {
		brk__uv_close_now(uc);
		return;
	}
	if (uv_read_start((uv_stream_t *)&uc->tcp, on_alloc, on_read))
		brk__uv_close_now(uc);
}
