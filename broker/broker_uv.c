/*
 * broker_uv.c - the libuv glue: listeners, connections, reads into one
 * shared buffer, and writes batched per loop iteration.
 *
 * Reads: every connection reads into the broker's one read buffer; the
 * protocol machine handles whole packets in place and copies only a partial
 * tail, so an idle connection owns no buffer at all.
 * Writes: the protocol machine appends to c->out and asks for a flush; a
 * uv_check handle (it runs after the I/O callbacks of an iteration) turns
 * each dirty connection's output into one uv_write of many iovecs. While a
 * write is in flight, new output accumulates and goes out in the next one.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

#define READ_BUF_SIZE (64 * 1024)

enum brk_lkind {
	BRK_L_TCP,
	/* Later: BRK_L_TLS, BRK_L_WS, BRK_L_WSS share the connection code. */
};

struct brk_listener {
	uv_tcp_t tcp;
	struct brk_uv *u;
	enum brk_lkind kind;
	struct sockaddr_storage addr;
	bool open;
};

struct brk_uv {
	struct brk b; /* first: brk_free() frees this allocation */
	uv_timer_t tick;
	uv_check_t check;
	struct brk_listener lst[BRK_MAX_LISTENERS];
	unsigned int n_lst;
	struct gw_list dirty;
	uint8_t *rbuf;
	unsigned int open_handles;
	bool started;
};

/* What a write in flight needs; allocated while the connection is busy, not when idle. */
struct brk_uvwr {
	uv_write_t req;
	struct brk_obuf wbuf; /* the batch being written */
	uv_buf_t *bufs;
	unsigned int cap_bufs;
};

struct brk_uvconn {
	struct brk_conn c;
	uv_tcp_t tcp;
	struct brk_uvwr *w;
	struct brk_uv *u;
	struct gw_list dirty_link;
	bool writing;
	bool closing;
	int64_t closing_since; /* a peer that does not read is not waited for long */
};

static void conn_flush(struct brk_uvconn *uc);

/* ------------------------------------------------------------ addresses */

/*
 * Parses "host:port", "[v6]:port", with an optional "tcp://" or "mqtt://"
 * prefix. tls://, ws:// and wss:// are recognised and refused until their
 * transports exist. 0 or -EINVAL.
 */
static int parse_listen(const char *spec, enum brk_lkind *kind, struct sockaddr_storage *ss)
{
	char host[64];
	const char *p = spec, *colon;
	long port;
	char *end;
	size_t hl;

	*kind = BRK_L_TCP;
	if (!strncmp(p, "tcp://", 6))
		p += 6;
	else if (!strncmp(p, "mqtt://", 7))
		p += 7;
	else if (strstr(p, "://"))
		return -EINVAL;
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
	brk__obuf_fini(&uc->w->wbuf);
	gw_free(uc->w->bufs);
	gw_free(uc->w);
	uc->w = NULL;
}

static void on_conn_close(uv_handle_t *h)
{
	struct brk_uvconn *uc = h->data;
	struct brk_uv *u = uc->u;

	if (!gw_list_empty(&uc->dirty_link))
		gw_list_del(&uc->dirty_link);
	brk__conn_closed(&uc->c);
	writer_free(uc);
	gw_free(uc);
	u->open_handles--;
}

static void conn_close_now(struct brk_uvconn *uc)
{
	if (uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	uc->closing = true;
	uc->c.state = BRK_CS_CLOSING;
	uv_read_stop((uv_stream_t *)&uc->tcp);
	uv_close((uv_handle_t *)&uc->tcp, on_conn_close);
}

static void on_write(uv_write_t *req, int status)
{
	struct brk_uvconn *uc = req->data;

	uc->writing = false;
	uc->c.writing = 0;
	brk__obuf_reset(&uc->w->wbuf);
	if (status < 0) {
		conn_close_now(uc);
		return;
	}
	if (uc->c.out.total)
		conn_flush(uc);
	else if (uc->closing)
		conn_close_now(uc);
}

static void conn_flush(struct brk_uvconn *uc)
{
	struct brk_obuf tmp;
	struct brk_uvwr *w;
	unsigned int i;
	int rc;

	if (uc->writing || !uc->c.out.total || uv_is_closing((uv_handle_t *)&uc->tcp))
		return;
	if (!uc->w) {
		uc->w = gw_calloc(1, sizeof(*uc->w));
		if (!uc->w) {
			conn_close_now(uc);
			return;
		}
	}
	w = uc->w;
	/* Swap: what accumulated becomes the batch in flight. */
	tmp = w->wbuf;
	w->wbuf = uc->c.out;
	uc->c.out = tmp;
	if (w->cap_bufs < w->wbuf.n) {
		uv_buf_t *v = gw_realloc(w->bufs, w->wbuf.n * sizeof(*v));

		if (!v) {
			brk__obuf_reset(&w->wbuf);
			conn_close_now(uc);
			return;
		}
		w->bufs = v;
		w->cap_bufs = w->wbuf.n;
	}
	for (i = 0; i < w->wbuf.n; i++) {
		struct brk_oseg *sg = &w->wbuf.segs[i];
		uint8_t *base = sg->m ? (uint8_t *)sg->m->payload : w->wbuf.buf;

		w->bufs[i] = uv_buf_init((char *)base + sg->off, sg->len);
	}
	w->req.data = uc;
	rc = uv_write(&w->req, (uv_stream_t *)&uc->tcp, w->bufs, w->wbuf.n, on_write);
	if (rc) {
		brk__obuf_reset(&w->wbuf);
		conn_close_now(uc);
		return;
	}
	uc->writing = true;
	uc->c.writing = w->wbuf.total;
}

static void ops_want_flush(struct brk_conn *c)
{
	struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

	if (gw_list_empty(&uc->dirty_link))
		gw_list_add_tail(&uc->u->dirty, &uc->dirty_link);
}

static void ops_close(struct brk_conn *c)
{
	struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

	if (uc->closing)
		return;
	uc->closing = true;
	uc->closing_since = gw_mono_ms();
	uv_read_stop((uv_stream_t *)&uc->tcp);
	/* Let the last packets (CONNACK, DISCONNECT) go out first. */
	if (!uc->writing && !uc->c.out.total)
		conn_close_now(uc);
	else
		ops_want_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct brk_uvconn *uc = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)uc->u->rbuf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct brk_uvconn *uc = st->data;

	(void)buf;
	if (nread > 0) {
		brk__conn_input(&uc->c, uc->u->rbuf, (size_t)nread, gw_mono_ms());
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

static void ops_peer(struct brk_conn *c, char *buf, size_t n)
{
	peer_name(&container_of(c, struct brk_uvconn, c)->tcp, buf, n);
}

static const struct brk_conn_ops uv_conn_ops = {
	.want_flush = ops_want_flush,
	.close = ops_close,
	.peer = ops_peer,
};

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
	uc->u = u;
	uc->tcp.data = uc;
	gw_list_init(&uc->dirty_link);
	u->open_handles++;
	if (uv_accept(server, (uv_stream_t *)&uc->tcp)) {
		uv_close((uv_handle_t *)&uc->tcp, on_conn_close);
		uc->closing = true;
		uc->c.b = &u->b;
		gw_list_init(&uc->c.link);
		return;
	}
	brk__conn_init(&uc->c, &u->b, &uv_conn_ops);
	uv_tcp_nodelay(&uc->tcp, 1);
	/* Connections that never send CONNECT are bounded too. */
	if (u->b.cfg.max_connections &&
	    u->b.st.clients_connected >= (uint64_t)u->b.cfg.max_connections * 2) {
		conn_close_now(uc);
		return;
	}
	if (uv_read_start((uv_stream_t *)&uc->tcp, on_alloc, on_read))
		conn_close_now(uc);
}

/* ---------------------------------------------------------------- timers */

static void on_check(uv_check_t *h)
{
	struct brk_uv *u = h->data;

	while (!gw_list_empty(&u->dirty)) {
		struct brk_uvconn *uc = gw_list_first(&u->dirty, struct brk_uvconn, dirty_link);

		gw_list_del(&uc->dirty_link);
		uc->c.dirty = false;
		conn_flush(uc);
		if (uc->closing && !uc->writing && !uc->c.out.total)
			conn_close_now(uc);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct brk_uv *u = t->data;
	int64_t now = gw_mono_ms();
	struct gw_list *pos, *tmp;

	brk__tick(&u->b, now);
	gw_list_for_each_safe (pos, tmp, &u->b.conns) {
		struct brk_conn *c = gw_list_entry(pos, struct brk_conn, link);
		struct brk_uvconn *uc = container_of(c, struct brk_uvconn, c);

		if (uc->closing && uc->closing_since && now - uc->closing_since > 5000) {
			conn_close_now(uc);
			continue;
		}
		/*
		 * An idle connection keeps no output buffers: what a batch needed
		 * is given back once a second at most.
		 */
		if (!uc->writing && !c->out.total) {
			brk__obuf_fini(&c->out);
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
	rc = brk__init(&u->b, loop, cfg, lg);
	if (rc) {
		gw_free(u);
		return rc;
	}
	u->b.uv = u;
	gw_list_init(&u->dirty);
	for (i = 0; i < cfg->n_listen; i++) {
		struct brk_listener *l = &u->lst[i];

		rc = parse_listen(u->b.cfg.listen[i], &l->kind, &l->addr);
		if (rc) {
			brk__log(&u->b, LOG_ERR, "bad listen address '%s'", u->b.cfg.listen[i]);
			goto fail;
		}
		l->u = u;
	}
	u->n_lst = cfg->n_listen;
	u->rbuf = gw_malloc(READ_BUF_SIZE);
	if (!u->rbuf) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = &u->b;
	return 0;
fail:
	brk__fini(&u->b);
	gw_free(u->rbuf);
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
	u->open_handles += 2;
	u->started = true;
	uv_timer_start(&u->tick, on_tick, 1000, 1000);
	uv_check_start(&u->check, on_check);
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
			brk__log(b, LOG_ERR, "listen %s: %s", b->cfg.listen[i], uv_strerror(rc));
			return rc;
		}
		snprintf(name, sizeof(name), "%s", b->cfg.listen[i]);
		brk__log(b, LOG_INFO, "listening on %s", name);
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
		 * hooks while main.c still has them installed.
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
		if (!uc->writing)
			conn_close_now(uc);
	}
	/* Sessions offline for a while: their expiring messages are saved with what is left. */
	brk__persist_all(b, gw_mono_ms());
}

void brk_free(struct brk *b)
{
	struct brk_uv *u;

	if (!b)
		return;
	u = b->uv;
	brk__fini(b);
	gw_free(u->rbuf);
	gw_free(u);
}
