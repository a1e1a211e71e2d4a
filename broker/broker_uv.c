/*
 * broker_uv.c - the libuv glue: listeners, connections, reads into one
 * shared buffer, and writes batched per loop iteration.
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
 * Listeners: every kind (mqtt://, mqtts://, ws://, wss://) accepts into the
 * same connection object and the same protocol machine. A plain MQTT
 * connection has no transport state at all; the others carry a struct
 * brk_xport (TLS session, WebSocket state) that sits between the socket and
 * the protocol: bytes read go through it up to brk__conn_input, output is
 * gathered from the stage and c->out, framed and encrypted into its own
 * buffer and written from there.
 */
#include <errno.h>
#include <inttypes.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker/broker_int.h"
#include "broker/limits.h"
#include "broker/mqtt_codec.h"
#include "broker/proxy_codec.h"
#include "broker/ws.h"
#include "gateway/tls/tls.h"

#define READ_BUF_SIZE (64 * 1024)
/* Plaintext out of TLS, and output gathered for framing / encryption, at a time. */
#define XBUF_SIZE (16 * 1024)
/* The longest WebSocket upgrade request head. */
#define HTTP_MAX (8 * 1024)
/* How long a lingering connection waits for the peer to close its side. */
#define LINGER_MS 2000
/* Source addresses the per-source limits remember at most (about 60 bytes each). */
#define MAX_SOURCES 16384

static const char *const tr_names[__BRK_TR_MAX] = {
	[BRK_TR_MQTT] = "mqtt",
	[BRK_TR_MQTTS] = "mqtts",
	[BRK_TR_WS] = "ws",
	[BRK_TR_WSS] = "wss",
};

/* A listener: its socket, what it speaks, its TLS configuration (mqtts, wss). */
struct brk_listener {
	uv_tcp_t tcp;
	struct brk_uv *u;
	const struct brk_listener_cfg *cfg; /* in u->b.cfg */
	enum brk_transport kind;
	struct sockaddr_storage addr;
	struct gw_tls_conf *tls;
	uint32_t n_conns; /* open connections accepted here (max_connections) */
	bool open;
};

/* Where a connection with a transport stands. */
enum brk_xphase {
	XP_TLS,	 /* TLS handshake */
	XP_HTTP, /* waiting for the WebSocket upgrade request */
	XP_OPEN, /* MQTT bytes flow */
	XP_DONE, /* closing: nothing more is read */
};

/*
 * The transport of a TLS or WebSocket connection, allocated at accept.
 * obuf collects bytes for the socket (ciphertext, or frames of plain ws);
 * when a write starts it swaps with wbuf, the batch in flight, as c->out
 * does with brk_uvwr for plain connections. Both are given back once idle.
 */
struct brk_xport {
	struct brk_listener *l;
	struct gw_tls *tls; /* NULL: ws:// */
	uint8_t phase;	    /* enum brk_xphase */
	bool ws;
	bool close_sent; /* a WebSocket Close frame was queued */
	bool flushing;	 /* inside xconn_flush: sends need no mark_dirty */
	uint16_t close_code;
	char *identity; /* the client certificate's CN (use_identity_as_username) */
	char peer[48];	/* for the log lines of a failed handshake, when the peer may be gone */
	uint8_t *http;	/* the upgrade request while incomplete */
	uint32_t http_len;
	struct brk_ws_rx rx;
	uint8_t *obuf, *wbuf;
	size_t olen, ocap, wlen, wcap;
	uv_write_t wreq;
};

struct brk_uv {
	struct brk b; /* first: brk_free() frees this allocation */
	uv_timer_t tick;
	uv_check_t check;
	uv_prepare_t prep; /* before each poll: arms due, kicks if output waits */
	uv_idle_t kick;	   /* active: on_check has work the loop must not sleep on */
	uv_timer_t due;	   /* at b->next_due (a will delay or a session expiry ends) */
	int64_t due_armed; /* the next_due it is armed for, 0 = stopped */
	struct brk_listener lst[BRK_MAX_LISTENERS];
	unsigned int n_lst;
	/* Connections to flush (c->dirty set); a closed one's entry is NULL. */
	struct brk_uvconn **dirty;
	unsigned int n_dirty, cap_dirty;
	struct gw_list busy;   /* brk_uvwr: connections holding output memory */
	struct gw_list linger; /* brk_uvlinger: closed, waiting for the peer's FIN */
	uv_buf_t *iov;	       /* scratch for uv_write, which copies the array */
	unsigned int cap_iov;
	uint8_t *rbuf;
	uint8_t *xbuf;		 /* XBUF_SIZE: TLS plaintext in, output to frame and encrypt */
	struct brk_srctab *srcs; /* NULL: no per-source limit */
	int64_t refused_logged;	 /* when refused_log last spoke */
	unsigned int open_handles;
	bool started;
};

/*
 * What a write in flight needs; allocated when a connection's output does not
 * go out at once, given back on the tick after it caught up. While it exists
 * the connection is on u->busy, which the tick walks instead of every
 * connection.
 */
struct brk_uvwr {
	uv_write_t req;
	struct brk_obuf wbuf; /* the batch being written */
	struct gw_list link;  /* in u->busy */
	struct brk_uvconn *uc;
};

/*
 * A connection: nothing else is allocated for it while it is idle. c.writing
 * is non-zero while a uv_write is in flight; c.state is BRK_CS_CLOSING once
 * a close began, and c.last_rx then says when (a peer that does not read is
 * not waited for long).
 */
struct brk_uvconn {
	struct brk_conn c;
	uv_tcp_t tcp;
	struct brk_uvwr *w;
	struct brk_xport *x;	 /* NULL: plain MQTT over TCP */
	struct brk_listener *l;	 /* counted in its n_conns while set */
	struct brk_src *src;	 /* counted in the per-source table while set */
	uint8_t *proxy;		 /* proxy_protocol: the header while incomplete */
	uint16_t proxy_len;	 /* bytes of it read; */
	bool proxy_wait;	 /* the header is still to come */
	bool proxied;		 /* the source below is the header's */
	uint16_t sport;		 /* the header's source port */
	struct brk_src_key skey; /* the header's source address */
};

/*
 * A connection the protocol is done with, closed gracefully: its protocol
 * state is gone (brk__conn_closed ran when the lingering began, so sessions,
 * wills and figures see the close at once), the socket is shut down for
 * writing, so the peer reads our last packets and then EOF, and what the
 * peer still sends is read and dropped until it closes its side too or
 * LINGER_MS pass. Closing the socket at once instead makes the kernel answer
 * the peer's next bytes (a client that was still publishing, or answering
 * our PUBRECs) with a RST: the peer's next write fails and many stacks drop
 * what it had not read yet, so the DISCONNECT and its reason code, which
 * MQTT 5.0 has us send before closing (section 4.13, Handling errors; 4.9,
 * 0x93 Receive Maximum exceeded), are lost to it. A graceful close still
 * closes the Network Connection as section 3.14.4 requires, only in order.
 * Allocated only while lingering; the tcp handle's data points here then.
 */
struct brk_uvlinger {
	uv_shutdown_t req;
	struct gw_list link; /* in u->linger */
	struct brk_uvconn *uc;
	int64_t since;
};

static inline struct brk_uv *conn_uv(const struct brk_uvconn *uc)
{
	return uc->c.b->uv;
}

static void conn_flush(struct brk_uvconn *uc);
static void xconn_flush(struct brk_uvconn *uc);
static void xconn_input(struct brk_uvconn *uc, uint8_t *p, size_t n);

/* ------------------------------------------------------------ addresses */

int brk_listen_parse(const char *url, enum brk_transport *kind, struct sockaddr_storage *ss)
{
	static const struct {
		const char *scheme;
		enum brk_transport kind;
	} schemes[] = {
		{ "mqtt://", BRK_TR_MQTT }, { "tcp://", BRK_TR_MQTT }, { "mqtts://", BRK_TR_MQTTS },
		{ "ws://", BRK_TR_WS },	    { "wss://", BRK_TR_WSS },
	};
	char host[64];
	const char *p = url, *colon;
	long port;
	char *end;
	size_t hl, i;

	*kind = BRK_TR_MQTT;
	if (strstr(p, "://")) {
		for (i = 0; i < GW_ARRAY_SIZE(schemes); i++)
			if (!strncmp(p, schemes[i].scheme, strlen(schemes[i].scheme)))
				break;
		if (i == GW_ARRAY_SIZE(schemes))
			return -EINVAL;
		*kind = schemes[i].kind;
		p += strlen(schemes[i].scheme);
	}
	if (*p == '[') {
		const char *rb = strchr(p, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hl = (size_t)(rb - p - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, p + 1, hl);
		host[hl] = 0;
		colon = rb + 1;
	} else {
		colon = strrchr(p, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - p);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, p, hl);
		host[hl] = 0;
		if (!hl)
			strcpy(host, "0.0.0.0");
	}
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (strchr(host, ':')) {
		if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss))
			return -EINVAL;
	} else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss)) {
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------ connections */

static void writer_free(struct brk_uvconn *uc)
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
	writer_free(uc);
	if (uc->l)
		uc->l->n_conns--;
	uc->l = NULL;
	brk_src_release(u->srcs, uc->src);
	uc->src = NULL;
	gw_free(uc->proxy);
	uc->proxy = NULL;
}

static void on_kick(uv_idle_t *h)
{
	(void)h; /* its being active is what counts: the poll does not block */
}

static void xport_free(struct brk_uvconn *uc)
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

static void on_conn_close(uv_handle_t *h)
{
	struct brk_uvconn *uc = h->data;
	struct brk_uv *u = conn_uv(uc);

	conn_detach(uc);
	xport_free(uc);
	gw_free(uc);
	u->open_handles--;
}

static void conn_close_now(struct brk_uvconn *uc)
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
	xport_free(l->uc);
	gw_free(l->uc);
	gw_free(l);
	u->open_handles--;
}

static void linger_close(struct brk_uvlinger *l)
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
		linger_close(st->data);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
	/* UV_ECANCELED: the handle is closing already. */
	if (status < 0 && status != UV_ECANCELED)
		linger_close(req->data);
}

/*
 * Close @uc, whose output is all written, gracefully (see struct
 * brk_uvlinger). At once while the broker stops (no tick is left to end the
 * lingering) or when the lingering state cannot be allocated.
 */
static void conn_close_linger(struct brk_uvconn *uc)
{
	struct brk_uv *u = conn_uv(uc);
	struct brk_uvlinger *l;

	if (uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	l = u->b.stopping ? NULL : gw_calloc(1, sizeof(*l));
	if (!l) {
		conn_close_now(uc);
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
		linger_close(l);
}

static void on_write(uv_write_t *req, int status)
{
	struct brk_uvconn *uc = req->data;

	uc->c.writing = 0;
	brk__obuf_reset(&uc->w->wbuf);
	if (status < 0) {
		conn_close_now(uc);
		return;
	}
	if (brk__conn_pending(&uc->c))
		conn_flush(uc);
	else if (uc->c.state == BRK_CS_CLOSING)
		conn_close_linger(uc);
}

/*
 * Write what @uc has queued: its staged bytes with uv_try_write (what the
 * socket does not take moves to c->out), then c->out with uv_write, unless a
 * write is in flight already (on_write calls again). Closes the connection on
 * a write error or out-of-memory.
 */
static void conn_flush(struct brk_uvconn *uc)
{
	struct brk_conn *c = &uc->c;
	struct brk_uv *u = conn_uv(uc);
	struct brk_obuf tmp;
	struct brk_uvwr *w;
	unsigned int i;
	int rc;

	if (uc->x) {
		xconn_flush(uc);
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
			conn_close_now(uc);
			return;
		}
	}
	if (!c->out || !c->out->total)
		return;
	if (!uc->w) {
		uc->w = gw_calloc(1, sizeof(*uc->w));
		if (!uc->w) {
			conn_close_now(uc);
			return;
		}
		uc->w->uc = uc;
		gw_list_add_tail(&u->busy, &uc->w->link);
	}
	w = uc->w;
	if (u->cap_iov < c->out->n) {
		uv_buf_t *v = gw_realloc(u->iov, c->out->n * sizeof(*v));

		if (!v) {
			conn_close_now(uc);
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
		conn_close_now(uc);
		return;
	}
	c->writing = w->wbuf.total;
}

/* Put @uc on the list on_check flushes (once: c->dirty says it is there). */
static void mark_dirty(struct brk_uvconn *uc)
{
	struct brk_uv *u = conn_uv(uc);

	if (u->n_dirty == u->cap_dirty) {
		unsigned int nc = u->cap_dirty ? u->cap_dirty * 2 : 64;
		struct brk_uvconn **v = gw_realloc(u->dirty, nc * sizeof(*v));

		if (!v) {
			uc->c.dirty = false;
			conn_close_now(uc);
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
	mark_dirty(container_of(c, struct brk_uvconn, c));
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
		mark_dirty(uc);
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
			xconn_input(uc, conn_uv(uc)->rbuf, (size_t)nread);
		else
			brk__conn_input(&uc->c, conn_uv(uc)->rbuf, (size_t)nread, gw_mono_ms());
		return;
	}
	if (nread < 0) {
		/* The peer went away without DISCONNECT: an abnormal close (will_ok). */
		conn_close_now(uc);
	}
}

static void peer_name(uv_tcp_t *t, char *out, size_t n)
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

/* The PROXY header's source address and port, as peer_name writes them. */
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
		peer_name(&uc->tcp, buf, n);
}

static void conn_close_now(struct brk_uvconn *uc);

static void ops_abort(struct brk_conn *c)
{
	conn_close_now(container_of(c, struct brk_uvconn, c));
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
		conn_close_now(uc);
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

/* ------------------------------------------------------------ transports */

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
		mark_dirty(uc);
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
		mark_dirty(uc);
}

static void on_xwrite(uv_write_t *req, int status)
{
	struct brk_uvconn *uc = req->data;
	struct brk_xport *x = uc->x;

	uc->c.writing = 0;
	x->wlen = 0;
	if (status < 0) {
		conn_close_now(uc);
		return;
	}
	if (brk__conn_pending(&uc->c) || x->olen) {
		conn_flush(uc);
		return;
	}
	/* Caught up: an idle connection keeps no output buffers. */
	gw_free(x->wbuf);
	x->wbuf = NULL;
	x->wcap = 0;
	if (uc->c.state == BRK_CS_CLOSING)
		conn_close_linger(uc);
}

/*
 * Gather @uc's output (its staged bytes, then c->out) in XBUF_SIZE pieces,
 * frame and encrypt them into x->obuf, and write x->obuf unless a write is
 * in flight (on_xwrite calls again). Closes the connection on an error.
 */
static void xconn_flush(struct brk_uvconn *uc)
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
		conn_close_now(uc);
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
		conn_close_now(uc);
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
				conn_close_now(uc);
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
			conn_close_now(uc);
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
		conn_close_now(uc);
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
static void xconn_input(struct brk_uvconn *uc, uint8_t *p, size_t n)
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
		conn_close_now(uc);
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
			conn_close_now(uc);
			return;
		}
		if (rc < 0) {
			xlog(uc, "TLS error", why);
			conn_close_now(uc);
			return;
		}
		plain_input(uc, u->xbuf, (size_t)rc);
	}
	gw_tls_trim(x->tls);
}

/* The transport of a connection accepted on @l (not mqtt://). 0 or -ENOMEM. */
static int xport_new(struct brk_uvconn *uc, struct brk_listener *l)
{
	struct brk_xport *x = gw_calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	uc->x = x;
	x->l = l;
	x->ws = l->kind == BRK_TR_WS || l->kind == BRK_TR_WSS;
	x->phase = l->tls ? XP_TLS : x->ws ? XP_HTTP : XP_OPEN;
	peer_name(&uc->tcp, x->peer, sizeof(x->peer));
	if (l->tls && gw_tls_server_new(l->tls, tls_send, uc, &x->tls))
		return -ENOMEM;
	return 0;
}

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
		xconn_input(uc, p, n);
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
			conn_close_now(uc);
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
		peer_name(&uc->tcp, peer, sizeof(peer));
		brk__log(&u->b, LOG_WARNING, "%s on %s: no valid PROXY header, closed", peer,
			 uc->l ? uc->l->cfg->url : "?");
		conn_close_now(uc);
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
		conn_close_now(uc);
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

static void on_connection(uv_stream_t *server, int status)
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
		conn_close_now(uc);
		return;
	}
	uc->l = l;
	l->n_conns++;
	if (l->cfg->proxy_protocol) {
		/* The source is known once the header is read: the limits wait for it. */
		uc->proxy_wait = true;
	} else if (conn_admit(uc)) {
		conn_close_now(uc);
		return;
	}
	if (l->kind != BRK_TR_MQTT && xport_new(uc, l)) {
		conn_close_now(uc);
		return;
	}
	if (uv_read_start((uv_stream_t *)&uc->tcp, on_alloc, on_read))
		conn_close_now(uc);
}

/* ---------------------------------------------------------------- timers */

static void on_due(uv_timer_t *t)
{
	struct brk_uv *u = t->data;

	u->due_armed = 0;
	brk__timed(&u->b, gw_mono_ms());
}

/* The due timer follows b->next_due. */
static void due_arm(struct brk_uv *u)
{
	int64_t wait;

	if (u->b.next_due == u->due_armed || u->b.stopping)
		return;
	u->due_armed = u->b.next_due;
	if (!u->due_armed) {
		uv_timer_stop(&u->due);
		return;
	}
	wait = u->due_armed - gw_mono_ms();
	uv_timer_start(&u->due, on_due, wait > 0 ? (uint64_t)wait : 0, 0);
}

/*
 * Right before the loop polls (and decides how long it may sleep): output
 * queued outside the I/O callbacks (by timers - wills, $SYS, the gateway's
 * own publishes - or by close callbacks, which run after on_check) would
 * otherwise wait until something wakes the loop, up to a tick. The kick makes
 * this poll not block, so on_check writes it in this iteration. Same for a
 * new earliest deadline: the due timer is armed before the loop sleeps.
 */
static void on_prepare(uv_prepare_t *h)
{
	struct brk_uv *u = h->data;

	due_arm(u);
	if (u->n_dirty)
		uv_idle_start(&u->kick, on_kick);
}

static void on_check(uv_check_t *h)
{
	struct brk_uv *u = h->data;
	unsigned int i;

	uv_idle_stop(&u->kick);
	/*
	 * A connection closed here detaches its session, whose will may go out
	 * to others: they are appended and walked in this same pass.
	 */
	for (i = 0; i < u->n_dirty; i++) {
		struct brk_uvconn *uc = u->dirty[i];

		if (!uc)
			continue;
		uc->c.dirty = false;
		conn_flush(uc);
		if (uc->c.state == BRK_CS_CLOSING && !uc->c.writing && !brk__conn_pending(&uc->c))
			conn_close_linger(uc);
	}
	u->n_dirty = 0;
}

/*
 * TLS connections idle for a second (nothing read, nothing queued or being
 * written) give back mbedTLS's record buffers, about 33 KB each: most of
 * what an idle TLS connection would cost (gw_tls_sleep; the next byte read or
 * written wakes the session up). TLS 1.3 sessions cannot be saved and stay
 * awake.
 */
static void tls_sleep_idle(struct brk_uv *u, int64_t now)
{
	unsigned int slept = 0;
	struct gw_list *pos;

	gw_list_for_each (pos, &u->b.conns) {
		struct brk_conn *c = gw_list_entry(pos, struct brk_conn, link);
		struct brk_xport *x = container_of(c, struct brk_uvconn, c)->x;

		if (!x || !x->tls || x->phase != XP_OPEN || c->state == BRK_CS_CLOSING ||
		    c->writing || x->olen || brk__conn_pending(c) || now - c->last_rx < 1000 ||
		    gw_tls_asleep(x->tls))
			continue;
		if (gw_tls_sleep(x->tls))
			continue;
		gw_free(x->obuf);
		x->obuf = NULL;
		x->ocap = 0;
		slept++;
	}
#if defined(__GLIBC__)
	/*
	 * The buffers freed sit between live allocations, where glibc's
	 * free() keeps them resident: past a megabyte of them, hand the free
	 * pages inside the heap back to the system (musl does it by itself).
	 */
	if (slept >= 32)
		malloc_trim(0);
#endif
}

static void on_tick(uv_timer_t *t)
{
	struct brk_uv *u = t->data;
	int64_t now = gw_mono_ms();
	struct gw_list *pos, *tmp;

	brk__tick(&u->b, now);
	if (u->srcs)
		brk_srctab_sweep(u->srcs, now);
	tls_sleep_idle(u, now);
	gw_list_for_each_safe (pos, tmp, &u->linger) {
		struct brk_uvlinger *l = gw_list_entry(pos, struct brk_uvlinger, link);

		if (now - l->since > LINGER_MS)
			linger_close(l);
	}
	/* Only connections that hold output memory: the others have nothing to give back. */
	gw_list_for_each_safe (pos, tmp, &u->busy) {
		struct brk_uvconn *uc = gw_list_entry(pos, struct brk_uvwr, link)->uc;
		struct brk_conn *c = &uc->c;

		if (c->state == BRK_CS_CLOSING && now - c->last_rx > 5000) {
			conn_close_now(uc);
			continue;
		}
		/*
		 * An idle connection keeps no output buffers: what a batch needed
		 * is given back once a second at most.
		 */
		if (!c->writing && !brk__conn_pending(c)) {
			brk__conn_out_free(c);
			writer_free(uc);
		}
	}
}

static void on_handle_close(uv_handle_t *h)
{
	struct brk_uv *u = h->data;

	u->open_handles--;
}

/* ------------------------------------------------------------- lifecycle */

/* The core's clock (struct brk_clock): the core reads none itself. */
static int64_t core_mono_ms(void *arg)
{
	(void)arg;
	return gw_mono_ms();
}

int brk_new(uv_loop_t *loop, const struct brk_config *cfg, const struct gw_logger *lg,
	    struct brk **out)
{
	struct brk_uv *u;
	unsigned int i;
	int rc;

	if (cfg->n_listen > BRK_MAX_LISTENERS)
		return -EINVAL;
	u = gw_calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	rc = brk__init(&u->b, loop, cfg, lg, &(const struct brk_clock){ core_mono_ms, NULL });
	if (rc) {
		gw_free(u);
		return rc;
	}
	u->b.uv = u;
	u->b.auth_start = brk__auth_uv_start;
	gw_list_init(&u->busy);
	gw_list_init(&u->linger);
	for (i = 0; i < cfg->n_listen; i++) {
		struct brk_listener *l = &u->lst[i];
		const struct brk_listener_cfg *lc = &u->b.cfg.listen[i];

		l->u = u;
		l->cfg = lc;
		u->n_lst = i + 1;
		rc = brk_listen_parse(lc->url, &l->kind, &l->addr);
		if (rc) {
			brk__log(&u->b, LOG_ERR, "bad listen address '%s'", lc->url);
			goto fail;
		}
		if (l->kind == BRK_TR_MQTTS || l->kind == BRK_TR_WSS) {
			rc = gw_tls_server_conf_new(lc->tls.cert_file, lc->tls.key_file,
						    lc->tls.ca_file, lc->tls.require_certificate,
						    lg, &l->tls);
			if (rc) {
				brk__log(&u->b, LOG_ERR, "listener %s: no TLS", lc->url);
				goto fail;
			}
		}
	}
	if (cfg->max_connections_per_source || cfg->connect_rate) {
		struct brk_src_limits lim = {
			.max_conns = cfg->max_connections_per_source,
			.rate = cfg->connect_rate,
			.burst = cfg->connect_rate,
			.max_sources = MAX_SOURCES,
		};

		/* The hash's seed: not predictable from outside, no secret either. */
		rc = brk_srctab_new(&lim, (uint32_t)(uintptr_t)u ^ (uint32_t)uv_hrtime(), &u->srcs);
		if (rc)
			goto fail;
	}
	/* Scratch allocated up front, so that it sits below the connections. */
	u->rbuf = gw_malloc(READ_BUF_SIZE);
	u->xbuf = gw_malloc(XBUF_SIZE);
	u->cap_dirty = 256;
	u->dirty = gw_malloc(u->cap_dirty * sizeof(*u->dirty));
	u->cap_iov = 64;
	u->iov = gw_malloc(u->cap_iov * sizeof(*u->iov));
	if (!u->rbuf || !u->xbuf || !u->dirty || !u->iov) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = &u->b;
	return 0;
fail:
	for (i = 0; i < u->n_lst; i++)
		gw_tls_conf_free(u->lst[i].tls);
	brk_srctab_free(u->srcs);
	brk__fini(&u->b);
	gw_free(u->rbuf);
	gw_free(u->xbuf);
	gw_free(u->dirty);
	gw_free(u->iov);
	gw_free(u);
	return rc;
}

int brk_start(struct brk *b)
{
	struct brk_uv *u = b->uv;
	unsigned int i;
	int rc;

	uv_timer_init(b->loop, &u->tick);
	u->tick.data = u;
	uv_check_init(b->loop, &u->check);
	u->check.data = u;
	uv_idle_init(b->loop, &u->kick);
	u->kick.data = u;
	uv_timer_init(b->loop, &u->due);
	u->due.data = u;
	uv_prepare_init(b->loop, &u->prep);
	u->prep.data = u;
	u->open_handles += 5;
	u->started = true;
	uv_timer_start(&u->tick, on_tick, 1000, 1000);
	uv_check_start(&u->check, on_check);
	uv_prepare_start(&u->prep, on_prepare);
	for (i = 0; i < u->n_lst; i++) {
		struct brk_listener *l = &u->lst[i];
		char name[64];

		uv_tcp_init(b->loop, &l->tcp);
		l->tcp.data = l;
		l->open = true;
		u->open_handles++;
		rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&l->addr,
				 l->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
		if (!rc)
			rc = uv_listen((uv_stream_t *)&l->tcp, 128, on_connection);
		if (rc) {
			brk__log(b, LOG_ERR, "listen %s: %s", l->cfg->url, uv_strerror(rc));
			return rc;
		}
		snprintf(name, sizeof(name), "%s", l->cfg->url);
		brk__log(b, LOG_INFO, "listening on %s (%s%s%s)", name, tr_names[l->kind],
			 l->cfg->name ? ", listener " : "", l->cfg->name ? l->cfg->name : "");
	}
	if (b->cfg.sys_interval_ms)
		brk__sys_publish(b, gw_mono_ms());
	return 0;
}

void brk_stop(struct brk *b)
{
	struct brk_uv *u = b->uv;
	struct gw_list *pos, *tmp;
	unsigned int i;

	if (!u || b->stopping)
		return;
	b->stopping = true;
	for (i = 0; i < u->n_lst; i++) {
		struct brk_listener *l = &u->lst[i];

		if (l->open && !uv_is_closing((uv_handle_t *)&l->tcp)) {
			l->tcp.data = u;
			uv_close((uv_handle_t *)&l->tcp, on_handle_close);
		}
	}
	if (u->started) {
		uv_close((uv_handle_t *)&u->tick, on_handle_close);
		uv_check_stop(&u->check);
		uv_close((uv_handle_t *)&u->check, on_handle_close);
		uv_close((uv_handle_t *)&u->kick, on_handle_close);
		uv_close((uv_handle_t *)&u->due, on_handle_close);
		uv_prepare_stop(&u->prep);
		uv_close((uv_handle_t *)&u->prep, on_handle_close);
	}
	gw_list_for_each_safe (pos, tmp, &b->conns) {
		struct brk_conn *c = gw_list_entry(pos, struct brk_conn, link);
		struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

		/* A server shutdown is not the client's doing, but its will stays with the session. */
		c->will_ok = false;
		brk__conn_kick(c, MQTT_RC_SERVER_SHUTTING_DOWN);
		/*
		 * Detach the session now, not in the close callback, so a
		 * persistent session's pending messages reach the persistence
		 * hooks while the gateway still has them installed.
		 */
		if (c->s && c->s->conn == c) {
			struct brk_session *s = c->s;

			c->s = NULL;
			if (c->counted && b->st.clients_connected)
				b->st.clients_connected--;
			c->counted = false;
			brk__session_offline(s, false, gw_mono_ms());
		}
		/* The check handle is gone: write what is queued now, then close. */
		conn_flush(uc);
		if (!c->writing)
			conn_close_now(uc);
	}
	gw_list_for_each_safe (pos, tmp, &u->linger)
		linger_close(gw_list_entry(pos, struct brk_uvlinger, link));
	/* Sessions offline for a while: their expiring messages are saved with what is left. */
	brk__persist_all(b, gw_mono_ms());
}

void brk_free(struct brk *b)
{
	struct brk_uv *u;
	unsigned int i;

	if (!b)
		return;
	u = b->uv;
	for (i = 0; i < u->n_lst; i++)
		gw_tls_conf_free(u->lst[i].tls);
	brk__fini(b);
	brk_srctab_free(u->srcs);
	gw_free(u->rbuf);
	gw_free(u->xbuf);
	gw_free(u->dirty);
	gw_free(u->iov);
	gw_free(u);
}
