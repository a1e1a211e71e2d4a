/*
 * uplink_uv.c - the uplink's glue: libuv TCP with asynchronous DNS
 * (uv_getaddrinfo), TLS through tls.h over memory buffers, the store's queue
 * and the local broker behind the core's ops (uplink.c and the files that
 * uplink_int.h lists).
 *
 * Writes are coalesced: the core's packets accumulate in one buffer, and
 * after every event handed to the core, after() writes them in one go - a
 * direct uv_try_write, and a uv_write for whatever the socket did not take,
 * during which the next packets accumulate again - and re-arms the one timer
 * at the core's deadline.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "gateway/tls/tls.h"
#include "gateway/uplink.h"

#define MOD "uplink"
#define UPL_LOCAL_ID "$fieldmq-uplink"
/* Bytes waiting to be written before the link counts as broken. */
#define OUT_MAX (64u << 20)
#define READ_BUF 65536

struct upl_conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct gw_uplink *up;
	struct gw_tls *tls;
	bool handshaking;
	bool dead; /* closing: nothing more is reported to the core */
	bool writing;
	uint8_t *obuf, *wbuf; /* accumulating / being written */
	size_t olen, ocap, wlen, wcap;
	char rbuf[READ_BUF];
};

struct gw_uplink {
	uv_loop_t *loop;
	const struct gw_uplink_config *cfg;
	const struct gw_logger *log;
	struct brk *b;
	struct st_store *st;
	struct brk_client *bc;
	struct gw_upl *sm;
	struct gw_tls_conf *tlsc;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	bool resolving;
	bool gai_stale; /* the core gave up on the lookup in flight */
	struct upl_conn *conn;
	bool started, stopping;
	uint64_t rnd;
	char port[8];
	uint8_t plain[READ_BUF];
};

static int64_t now_ms(void)
{
	return gw_mono_ms();
}

/* ------------------------------------------------------------- writing */

static void after(struct gw_uplink *up);
static void conn_close(struct upl_conn *c);

static int raw_append(struct upl_conn *c, const void *p, size_t len)
{
	if (c->olen + c->wlen + len > OUT_MAX)
		return -ENOBUFS;
	if (c->olen + len > c->ocap) {
		size_t cap = GW_MAX(c->ocap * 2, GW_MAX(c->olen + len, (size_t)16384));
		uint8_t *n = gw_realloc(c->obuf, cap);

		if (!n)
			return -ENOMEM;
		c->obuf = n;
		c->ocap = cap;
	}
	memcpy(c->obuf + c->olen, p, len);
	c->olen += len;
	return 0;
}

static int tls_out(void *arg, const void *p, size_t len)
{
	return raw_append(arg, p, len);
}

static void report_down(struct gw_uplink *up, struct upl_conn *c, int err)
{
	if (c->dead)
		return;
	conn_close(c);
	gw_upl_on_transport_down(up->sm, err, now_ms());
}

static void on_write(uv_write_t *req, int status)
{
	struct upl_conn *c = container_of(req, struct upl_conn, wreq);

	c->writing = false;
	c->wlen = 0;
	if (c->dead)
		return;
	if (status < 0) {
		report_down(c->up, c, status);
		after(c->up);
		return;
	}
	after(c->up);
}

static void flush(struct upl_conn *c)
{
	uv_buf_t b;
	uint8_t *t;
	size_t cap;
	int rc;

	if (c->dead || c->writing || !c->olen)
		return;
	/*
	 * Most turns the socket takes everything at once: write it directly.
	 * A uv_write would cost a POLLOUT epoll_ctl and a deferred callback
	 * (one more loop iteration) for every batch of PUBLISH while draining.
	 */
	rc = uv_try_write((uv_stream_t *)&c->tcp,
			  &(uv_buf_t){ .base = (char *)c->obuf, .len = c->olen }, 1);
	if (rc >= 0 && (size_t)rc == c->olen) {
		c->olen = 0;
		return;
	}
	if (rc < 0 && rc != UV_EAGAIN) {
		report_down(c->up, c, rc);
		return;
	}
	if (rc > 0) {
		memmove(c->obuf, c->obuf + rc, c->olen - (size_t)rc);
		c->olen -= (size_t)rc;
	}
	/* Swap: what accumulated goes out, the drained buffer accumulates. */
	t = c->wbuf;
	cap = c->wcap;
	c->wbuf = c->obuf;
	c->wcap = c->ocap;
	c->wlen = c->olen;
	c->obuf = t;
	c->ocap = cap;
	c->olen = 0;
	b = uv_buf_init((char *)c->wbuf, (unsigned int)c->wlen);
	rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc) {
		c->wlen = 0;
		report_down(c->up, c, rc);
		return;
	}
	c->writing = true;
}

/* ------------------------------------------------------------ the timer */

static void on_timer(uv_timer_t *t)
{
	struct gw_uplink *up = container_of(t, struct gw_uplink, timer);

	if (up->stopping)
		return;
	gw_upl_on_timer(up->sm, now_ms());
	after(up);
}

/* Flush what the core wrote and re-arm the timer at its deadline. */
static void after(struct gw_uplink *up)
{
	int64_t d, now;

	if (up->stopping)
		return;
	if (up->conn)
		flush(up->conn);
	d = gw_upl_deadline(up->sm);
	if (d == INT64_MAX) {
		uv_timer_stop(&up->timer);
		return;
	}
	now = now_ms();
	uv_timer_start(&up->timer, on_timer, d > now ? (uint64_t)(d - now) : 0, 0);
}

/* ------------------------------------------------------------ connection */

static void on_conn_closed(uv_handle_t *h)
{
	struct upl_conn *c = container_of((uv_tcp_t *)h, struct upl_conn, tcp);

	gw_tls_free(c->tls);
	gw_free(c->obuf);
	gw_free(c->wbuf);
	gw_free(c);
}

static void conn_close(struct upl_conn *c)
{
	struct gw_uplink *up = c->up;

	if (c->dead)
		return;
	c->dead = true;
	if (up->conn == c)
		up->conn = NULL;
	/* Best effort for what is pending (a DISCONNECT): libuv cancels the rest. */
	if (c->tls && !c->handshaking)
		gw_tls_close_notify(c->tls);
	if (!c->writing && c->olen)
		uv_try_write((uv_stream_t *)&c->tcp,
			     &(uv_buf_t){ .base = (char *)c->obuf, .len = c->olen }, 1);
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct upl_conn *c = container_of((uv_tcp_t *)h, struct upl_conn, tcp);

	(void)hint;
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void tls_input(struct gw_uplink *up, struct upl_conn *c, const char *p, size_t n)
{
	char err[320];
	int rc;

	if (gw_tls_feed(c->tls, p, n)) {
		report_down(up, c, -ENOMEM);
		return;
	}
	if (c->handshaking) {
		rc = gw_tls_handshake(c->tls, err, sizeof(err));
		if (rc < 0) {
			gw_log(up->log, LOG_ERR, MOD, "TLS handshake with %s:%u failed: %s",
			       up->cfg->host, up->cfg->port, err);
			report_down(up, c, -EPROTO);
			return;
		}
		if (rc == 0)
			return; /* after() sends what the handshake wrote */
		c->handshaking = false;
		gw_log(up->log, LOG_DEBUG, MOD, "TLS handshake with %s done", up->cfg->host);
		gw_upl_on_transport_up(up->sm, now_ms());
		if (c->dead)
			return;
	}
	for (;;) {
		rc = gw_tls_read(c->tls, up->plain, sizeof(up->plain), err, sizeof(err));
		if (rc == 0)
			return;
		if (rc < 0) {
			if (rc == -EPROTO)
				gw_log(up->log, LOG_WARNING, MOD, "TLS with %s: %s", up->cfg->host,
				       err);
			report_down(up, c, rc);
			return;
		}
		gw_upl_on_data(up->sm, up->plain, (size_t)rc, now_ms());
		if (c->dead)
			return;
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct upl_conn *c = container_of((uv_tcp_t *)s, struct upl_conn, tcp);
	struct gw_uplink *up = c->up;

	if (c->dead || nread == 0)
		return;
	if (nread < 0) {
		report_down(up, c, nread == UV_EOF ? 0 : (int)nread);
	} else if (c->tls) {
		tls_input(up, c, buf->base, (size_t)nread);
	} else {
		gw_upl_on_data(up->sm, buf->base, (size_t)nread, now_ms());
	}
	after(up);
}

static void on_connected(uv_connect_t *req, int status)
{
	struct upl_conn *c = container_of(req, struct upl_conn, creq);
	struct gw_uplink *up = c->up;
	char err[320];
	int rc;

	if (c->dead)
		return;
	if (status < 0) {
		report_down(up, c, status);
		after(up);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc) {
		report_down(up, c, rc);
		after(up);
		return;
	}
	if (up->tlsc) {
		rc = gw_tls_new(up->tlsc, up->cfg->host, tls_out, c, &c->tls);
		if (rc) {
			report_down(up, c, rc);
			after(up);
			return;
		}
		c->handshaking = true;
		rc = gw_tls_handshake(c->tls, err, sizeof(err)); /* the ClientHello */
		if (rc < 0) {
			gw_log(up->log, LOG_ERR, MOD, "TLS with %s: %s", up->cfg->host, err);
			report_down(up, c, -EPROTO);
			after(up);
			return;
		}
		after(up);
		return;
	}
	gw_upl_on_transport_up(up->sm, now_ms());
	after(up);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gw_uplink *up = container_of(req, struct gw_uplink, gai);
	struct upl_conn *c = NULL;
	int rc;

	up->resolving = false;
	if (up->stopping || up->gai_stale) {
		up->gai_stale = false;
		goto out;
	}
	if (status < 0) {
		gw_log(up->log, LOG_WARNING, MOD, "cannot resolve %s: %s", up->cfg->host,
		       uv_strerror(status));
		gw_upl_on_transport_down(up->sm, -EHOSTUNREACH, now_ms());
		goto out;
	}
	c = gw_calloc(1, sizeof(*c));
	if (!c) {
		gw_upl_on_transport_down(up->sm, -ENOMEM, now_ms());
		goto out;
	}
	c->up = up;
	rc = uv_tcp_init(up->loop, &c->tcp);
	if (rc) {
		gw_free(c);
		gw_upl_on_transport_down(up->sm, rc, now_ms());
		goto out;
	}
	up->conn = c;
	rc = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, on_connected);
	if (rc)
		report_down(up, c, rc);
out:
	if (res)
		uv_freeaddrinfo(res);
	after(up);
}

/* ------------------------------------------------------------------ ops */

static int op_connect(void *arg)
{
	struct gw_uplink *up = arg;
	struct addrinfo hints;
	int rc;

	if (up->resolving || up->conn)
		return -EBUSY;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* On the thread pool: a slow resolver never blocks the loop. */
	rc = uv_getaddrinfo(up->loop, &up->gai, on_resolved, up->cfg->host, up->port, &hints);
	if (rc)
		return rc;
	up->resolving = true;
	up->gai_stale = false;
	return 0;
}

static int op_send(void *arg, const void *p, size_t len)
{
	struct gw_uplink *up = arg;
	struct upl_conn *c = up->conn;

	if (!c || c->dead)
		return -ENOTCONN;
	if (c->tls)
		return gw_tls_write(c->tls, p, len);
	return raw_append(c, p, len);
}

static size_t op_backlog(void *arg)
{
	struct gw_uplink *up = arg;

	return up->conn ? up->conn->olen + up->conn->wlen : 0;
}

static void op_close(void *arg)
{
	struct gw_uplink *up = arg;

	if (up->resolving) {
		up->gai_stale = true;
		uv_cancel((uv_req_t *)&up->gai);
	}
	if (up->conn)
		conn_close(up->conn);
}

static void on_st_appended(void *arg, uint64_t id, int status)
{
	struct gw_uplink *up = arg;

	gw_upl_on_appended(up->sm, id, status, now_ms());
	after(up);
}

static void on_st_peeked(void *arg, int status, const struct st_qrecord *recs, size_t n)
{
	struct gw_uplink *up = arg;

	gw_upl_on_peeked(up->sm, status, recs, n, now_ms());
	after(up);
}

static int op_q_append(void *arg, const struct st_record *rec, bool waited, uint64_t *id)
{
	struct gw_uplink *up = arg;

	return st_queue_append(up->st, rec, waited ? ST_WAITED : 0, on_st_appended, up, id);
}

static int op_q_peek(void *arg, uint64_t after_id, size_t max_n)
{
	struct gw_uplink *up = arg;

	return st_queue_peek(up->st, after_id, max_n, on_st_peeked, up);
}

static int op_q_ack(void *arg, uint64_t id)
{
	struct gw_uplink *up = arg;

	return st_queue_ack(up->st, id);
}

static int op_local_publish(void *arg, const struct brk_pub *pub)
{
	struct gw_uplink *up = arg;

	if (!up->bc)
		return -ENOTCONN;
	/* As our own client: the no-local forward subscriptions never send it back up. */
	return brk_client_publish(up->bc, pub);
}

static void op_hold_release(void *arg, void *hold)
{
	(void)arg;
	brk_hold_release(hold);
}

static uint32_t op_random(void *arg)
{
	struct gw_uplink *up = arg;

	/* xorshift64*: jitter only, no secrets. */
	up->rnd ^= up->rnd >> 12;
	up->rnd ^= up->rnd << 25;
	up->rnd ^= up->rnd >> 27;
	return (uint32_t)((up->rnd * 2685821657736338717ull) >> 32);
}

/* The core's wall clock (message expiries). */
static int64_t op_wall_ms(void *arg)
{
	(void)arg;
	return gw_now_ms();
}

static const struct gw_upl_ops store_ops = {
	.connect = op_connect,
	.send = op_send,
	.backlog = op_backlog,
	.close = op_close,
	.q_append = op_q_append,
	.q_peek = op_q_peek,
	.q_ack = op_q_ack,
	.local_publish = op_local_publish,
	.hold_release = op_hold_release,
	.random = op_random,
	.wall_ms = op_wall_ms,
};

static const struct gw_upl_ops memory_ops = {
	.connect = op_connect,
	.send = op_send,
	.backlog = op_backlog,
	.close = op_close,
	.local_publish = op_local_publish,
	.hold_release = op_hold_release,
	.random = op_random,
	.wall_ms = op_wall_ms,
};

/* ----------------------------------------------------------- local side */

static void on_deliver(void *arg, const struct brk_delivery *d)
{
	struct gw_uplink *up = arg;

	if (up->stopping)
		return;
	gw_upl_on_local(up->sm, d, brk_hold_take(d), now_ms());
	after(up);
}

/* ------------------------------------------------------------ lifecycle */

int gw_uplink_new(uv_loop_t *loop, const struct gw_uplink_config *cfg, const char *status_topic,
		  struct brk *b, struct st_store *st, const struct gw_logger *lg,
		  struct gw_uplink **out)
{
	struct gw_uplink *up = gw_calloc(1, sizeof(*up));
	int rc;

	if (!up)
		return -ENOMEM;
	up->loop = loop;
	up->cfg = cfg;
	up->log = lg;
	up->b = b;
	up->st = st;
	up->rnd = ((uint64_t)gw_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32) | 1;
	snprintf(up->port, sizeof(up->port), "%u", cfg->port);
	if (!cfg->host || !*cfg->host) {
		gw_log(lg, LOG_ERR, MOD, "no host in url");
		gw_free(up);
		return -EINVAL;
	}
	if (cfg->tls) {
		rc = gw_tls_conf_new(cfg->ca_file, cfg->cert_file, cfg->key_file, cfg->tls_insecure,
				     lg, &up->tlsc);
		if (rc) {
			gw_free(up);
			return rc;
		}
		if (cfg->tls_insecure)
			gw_log(lg, LOG_WARNING, MOD,
			       "tls_insecure = yes: the cloud's certificate is not checked");
	}
	rc = gw_upl_new(cfg, status_topic, st ? &store_ops : &memory_ops, up, lg, &up->sm);
	if (rc) {
		gw_log(lg, LOG_ERR, MOD, "cannot create the uplink: %s", strerror(-rc));
		gw_tls_conf_free(up->tlsc);
		gw_free(up);
		return rc;
	}
	uv_timer_init(loop, &up->timer);
	*out = up;
	return 0;
}

int gw_uplink_start(struct gw_uplink *up)
{
	const struct brk_client_opts opts = {
		.client_id = UPL_LOCAL_ID,
		/* The store is our persistence: the local session need not outlive us. */
		.clean_start = true,
		.deliver = on_deliver,
		.arg = up,
	};
	/*
	 * No-local: what we publish (it came down) never goes back up.
	 * Retain as published: retain flags reach the cloud as they were set.
	 * Retain handling 2: retained messages already went up when they were
	 * published (or sit in the queue); a restart does not send them again.
	 */
	const unsigned int flags = BRK_SUB_NO_LOCAL | BRK_SUB_RAP | 2u << BRK_SUB_RH_SHIFT;
	unsigned int i;
	int rc;

	rc = brk_client_new(up->b, &opts, &up->bc, NULL);
	if (rc) {
		gw_log(up->log, LOG_ERR, MOD, "cannot attach to the broker: %s", strerror(-rc));
		return rc;
	}
	up->started = true;
	/* Started before subscribing: a retained delivery finds the core ready. */
	gw_upl_start(up->sm, now_ms());
	for (i = 0; i < up->cfg->n_forward; i++) {
		rc = brk_client_subscribe(up->bc, gw_slice_cstr(up->cfg->forward[i].filter),
					  up->cfg->forward[i].qos, flags, 0);
		if (rc) {
			gw_log(up->log, LOG_ERR, MOD, "forward %s: cannot subscribe: %s",
			       up->cfg->forward[i].filter, strerror(-rc));
			return rc;
		}
	}
	after(up);
	return 0;
}

void gw_uplink_stop(struct gw_uplink *up)
{
	if (!up || up->stopping)
		return;
	if (up->started)
		gw_upl_stop(up->sm, now_ms());
	if (up->conn)
		conn_close(up->conn);
	up->stopping = true;
	if (up->bc) {
		brk_client_free(up->bc, false);
		up->bc = NULL;
	}
	if (up->resolving)
		uv_cancel((uv_req_t *)&up->gai);
	uv_timer_stop(&up->timer);
	uv_close((uv_handle_t *)&up->timer, NULL);
}

void gw_uplink_free(struct gw_uplink *up)
{
	if (!up)
		return;
	gw_upl_free(up->sm);
	gw_tls_conf_free(up->tlsc);
	gw_free(up);
}

void gw_uplink_get_stats(const struct gw_uplink *up, struct gw_uplink_stats *out)
{
	struct st_stats ss;

	gw_upl_get_stats(up->sm, out);
	if (up->st) {
		st_get_stats(up->st, &ss);
		out->queued = ss.queue_messages;
		out->store_dropped = ss.dropped;
	}
}
