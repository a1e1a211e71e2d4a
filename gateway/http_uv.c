/*
 * http_uv.c - the gateway's HTTP/1.1 server on libuv (see httpd.h).
 *
 * A connection reads its request head into a fixed buffer of
 * GW_HTTPD_MAX_HEAD bytes (through TLS first on https://), which the pure
 * parser of broker/http.c reads; a timer started at accept closes it when
 * the head (TLS handshake included) has not arrived within the header
 * timeout, however slowly its bytes trickle in. Then the owner answers once:
 * a whole response, after which the connection closes, or an event stream
 * that stays open and is fed by gw_httpd_sse_send(). Writes are uv_write()s
 * of one heap block each (a response, or one event per stream), freed in
 * their callback; memory is freed only in close callbacks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "gateway/httpd.h"
#include "gateway/tls/tls.h"

#define MOD "http"

enum conn_state {
	CS_TLS,	 /* TLS handshake */
	CS_HEAD, /* reading the request head */
	CS_AUTH, /* the head is here; its password is checked on the thread pool */
	CS_SSE,	 /* an event stream: writing events, input ignored */
	CS_DONE, /* answered: closing once the writes are done */
};

struct gw_http_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct gw_list node; /* in h->conns */
	struct gw_httpd *h;
	struct gw_tls *tls;
	enum conn_state state;
	bool head_only;	      /* HEAD */
	bool closing;	      /* uv_close called */
	unsigned int handles; /* open handles left to close (and an auth check in flight) */
	unsigned int writes;  /* uv_write()s in flight */
	size_t queued;	      /* bytes of those */
	size_t len;
	uint8_t head[GW_HTTPD_MAX_HEAD];
	/* Basic credentials, while the pool thread checks them; wiped after. */
	uv_work_t work;
	int auth_rc;
	char user[256], pass[256];
};

struct gw_httpd {
	uv_loop_t *loop;
	uv_tcp_t srv;
	const struct gw_logger *log;
	struct gw_tls_conf *tls;
	uint32_t header_timeout_ms;
	unsigned int max_clients;
	gw_httpd_handle_fn handle;
	gw_httpd_auth_fn auth;
	void *arg;
	struct gw_list conns;
	struct gw_httpd_stats st;
	unsigned int sse;
	unsigned int auth_jobs; /* checks on the thread pool now */
	bool closing;
	int port;
	uint8_t rbuf[16384];
};

struct wreq {
	uv_write_t req;
	struct gw_http_conn *c;
	size_t len;
	uint8_t data[];
};

static void maybe_free(struct gw_httpd *h)
{
	if (h->closing && gw_list_empty(&h->conns) && !h->srv.data) {
		gw_tls_conf_free(h->tls);
		gw_free(h);
	}
}

/* One of @c's handles closed, or its auth check returned: the last frees it. */
static void conn_release(struct gw_http_conn *c)
{
	struct gw_httpd *h = c->h;

	if (--c->handles)
		return;
	gw_list_del(&c->node);
	h->st.connections--;
	gw_tls_free(c->tls);
	gw_free(c);
	maybe_free(h);
}

static void on_conn_closed(uv_handle_t *hd)
{
	conn_release(hd->data);
}

/* Close now, whatever is queued. */
static void conn_close(struct gw_http_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->state == CS_SSE)
		c->h->sse--;
	c->state = CS_DONE;
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = container_of(req, struct wreq, req);
	struct gw_http_conn *c = w->c;

	c->writes--;
	c->queued -= w->len;
	gw_free(w);
	if (status < 0 || (c->state == CS_DONE && !c->writes))
		conn_close(c);
}

/* Bytes to the socket (ciphertext on https://). 0 or -errno (then close). */
static int raw_write(struct gw_http_conn *c, const void *p, size_t len)
{
	struct wreq *w;
	uv_buf_t b;
	int rc;

	if (c->closing)
		return -ECANCELED;
	w = gw_malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	memcpy(w->data, p, len);
	w->c = c;
	w->len = len;
	b = uv_buf_init((char *)w->data, (unsigned int)len);
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rc) {
		gw_free(w);
		return rc;
	}
	c->writes++;
	c->queued += len;
	return 0;
}

static int tls_send(void *arg, const void *p, size_t len)
{
	return raw_write(arg, p, len);
}

static int conn_write(struct gw_http_conn *c, const void *p, size_t len)
{
	return c->tls ? gw_tls_write(c->tls, p, len) : raw_write(c, p, len);
}

/* The response is queued: close when written (at once when nothing is). */
static void conn_finish(struct gw_http_conn *c)
{
	c->state = CS_DONE;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (c->tls)
		gw_tls_close_notify(c->tls);
	if (!c->writes)
		conn_close(c);
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}

int gw_http_reply(struct gw_http_conn *c, int status, const char *ctype, const void *body,
		  size_t len, const char *extra)
{
	char head[512];
	uint8_t *buf;
	size_t hl, n;
	int rc;

	if (c->state == CS_DONE || c->state == CS_SSE)
		return -EINVAL;
	rc = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		      "Connection: close\r\n%s\r\n",
		      status, reason(status), ctype, len, extra ? extra : "");
	hl = rc > 0 && (size_t)rc < sizeof(head) ? (size_t)rc : 0;
	if (!hl) {
		conn_close(c);
		return -EMSGSIZE;
	}
	n = hl + (c->head_only ? 0 : len);
	/* One block, one write (one TLS record run). */
	buf = gw_malloc(n);
	if (!buf) {
		conn_close(c);
		return -ENOMEM;
	}
	memcpy(buf, head, hl);
	if (!c->head_only && len)
		memcpy(buf + hl, body, len);
	rc = conn_write(c, buf, n);
	gw_free(buf);
	if (rc) {
		conn_close(c);
		return rc;
	}
	conn_finish(c);
	return 0;
}

/* "data: @p\n\n" in one write; the stream is closed on failure. */
static int sse_event(struct gw_http_conn *c, const void *p, size_t len)
{
	uint8_t *buf = gw_malloc(len + 8);
	int rc = -ENOMEM;

	if (buf) {
		memcpy(buf, "data: ", 6);
		memcpy(buf + 6, p, len);
		memcpy(buf + 6 + len, "\n\n", 2);
		rc = conn_write(c, buf, len + 8);
		gw_free(buf);
	}
	if (rc)
		conn_close(c);
	return rc;
}

int gw_http_sse(struct gw_http_conn *c, const void *first, size_t len)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				   "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
				   "Connection: close\r\n\r\n";
	int rc;

	if (c->state != CS_HEAD)
		return -EINVAL;
	rc = conn_write(c, head, sizeof(head) - 1);
	if (rc) {
		conn_close(c);
		return rc;
	}
	if (c->head_only) {
		conn_finish(c);
		return 0;
	}
	/* The head has arrived: no more timeout; input is read only to see the close. */
	uv_timer_stop(&c->timer);
	c->state = CS_SSE;
	c->h->sse++;
	if (first && len)
		return sse_event(c, first, len);
	return 0;
}

unsigned int gw_httpd_sse_clients(const struct gw_httpd *h)
{
	return h->sse;
}

void gw_httpd_sse_send(struct gw_httpd *h, const void *p, size_t len)
{
	struct gw_list *it, *next;

	for (it = h->conns.next; it != &h->conns; it = next) {
		struct gw_http_conn *c = gw_list_entry(it, struct gw_http_conn, node);

		next = it->next;
		if (c->state != CS_SSE)
			continue;
		if (c->queued > GW_HTTPD_SSE_MAX_QUEUED) {
			gw_log(h->log, LOG_INFO, MOD,
			       "event stream: client reads too slowly: closed");
			conn_close(c);
			continue;
		}
		sse_event(c, p, len);
	}
}

/* ---------------------------------------------------------------- requests */

static bool method_is(struct gw_slice m, const char *s)
{
	return gw_slice_eq_cstr(m, s);
}

static void refuse(struct gw_http_conn *c, int status, const char *extra)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));

	if (status != 401)
		c->h->st.bad_requests++;
	gw_http_reply(c, status, "text/plain; charset=utf-8", body, (size_t)n, extra);
}

static void dispatch(struct gw_http_conn *c, const struct brk_http_req *rq)
{
	struct gw_httpd *h = c->h;

	h->handle(h->arg, c, brk_http_path(rq->target), rq);
	if (c->state == CS_HEAD)
		refuse(c, 404, NULL); /* the owner did not answer */
}

static void unauthorized(struct gw_http_conn *c)
{
	c->h->st.unauthorized++;
	refuse(c, 401, "WWW-Authenticate: Basic realm=\"fieldmq\", charset=\"UTF-8\"\r\n");
}

/* On a pool thread: the owner's check (slow on purpose: PBKDF2). */
static void auth_work(uv_work_t *req)
{
	struct gw_http_conn *c = container_of(req, struct gw_http_conn, work);

	c->auth_rc = c->h->auth(c->h->arg, c->user, c->pass);
}

/* Back on the loop: answer the request the head in c->head still holds. */
static void auth_done(uv_work_t *req, int status)
{
	struct gw_http_conn *c = container_of(req, struct gw_http_conn, work);
	struct brk_http_req rq;

	c->h->auth_jobs--;
	explicit_bzero(c->pass, sizeof(c->pass));
	if (!c->closing && c->state == CS_AUTH) {
		c->state = CS_HEAD;
		if (status || c->auth_rc || brk_http_parse_request(c->head, c->len, &rq) <= 0)
			unauthorized(c);
		else
			dispatch(c, &rq);
	}
	conn_release(c);
}

/*
 * Authorization: Basic, checked by the owner's function on the thread pool.
 * Returns 1 when the check is under way (the request waits in CS_AUTH), 0
 * when there is nothing to check, -EACCES when refused at once.
 */
static int check_auth(struct gw_http_conn *c, const struct brk_http_req *rq)
{
	struct gw_httpd *h = c->h;
	const struct gw_slice *v = brk_http_header(rq, "Authorization");

	if (!h->auth)
		return 0;
	if (!v || brk_http_basic_auth(*v, c->user, sizeof(c->user), c->pass, sizeof(c->pass)))
		return -EACCES;
	/* A few checks at once: each costs a pool thread for a while. */
	if (h->auth_jobs >= 2 || uv_queue_work(h->loop, &c->work, auth_work, auth_done)) {
		explicit_bzero(c->pass, sizeof(c->pass));
		return -EBUSY;
	}
	h->auth_jobs++;
	c->handles++;
	c->state = CS_AUTH;
	return 1;
}

/* The head buffer has grown: a whole head yet? */
static void head_input(struct gw_http_conn *c)
{
	struct gw_httpd *h = c->h;
	struct brk_http_req rq;
	int rc = brk_http_parse_request(c->head, c->len, &rq);

	if (rc == 0 && c->len < sizeof(c->head))
		return;
	if (rc == 0 || rc == -EMSGSIZE) {
		refuse(c, 431, NULL);
		return;
	}
	if (rc < 0) {
		refuse(c, 400, NULL);
		return;
	}
	h->st.requests++;
	c->head_only = method_is(rq.method, "HEAD");
	if (!c->head_only && !method_is(rq.method, "GET")) {
		refuse(c, 405, "Allow: GET, HEAD\r\n");
		return;
	}
	rc = check_auth(c, &rq);
	if (rc == -EBUSY)
		refuse(c, 503, "Retry-After: 1\r\n");
	else if (rc < 0)
		unauthorized(c);
	else if (rc == 0)
		dispatch(c, &rq);
}

static void plain_input(struct gw_http_conn *c, const uint8_t *p, size_t n)
{
	size_t take;

	if (c->state != CS_HEAD)
		return; /* an event stream's reader says nothing we need */
	take = GW_MIN(n, sizeof(c->head) - c->len);
	memcpy(c->head + c->len, p, take);
	c->len += take;
	head_input(c);
}

static void tls_input(struct gw_http_conn *c, const uint8_t *p, size_t n)
{
	uint8_t plain[4096];
	char why[256];
	int rc;

	if (gw_tls_feed(c->tls, p, n)) {
		conn_close(c);
		return;
	}
	if (c->state == CS_TLS) {
		rc = gw_tls_handshake(c->tls, why, sizeof(why));
		if (rc == 0)
			return;
		if (rc < 0) {
			gw_log(c->h->log, LOG_INFO, MOD, "TLS handshake failed: %s", why);
			conn_close(c);
			return;
		}
		c->state = CS_HEAD;
	}
	while (!c->closing && c->state != CS_DONE) {
		rc = gw_tls_read(c->tls, plain, sizeof(plain), why, sizeof(why));
		if (rc == 0)
			break;
		if (rc < 0) {
			conn_close(c);
			return;
		}
		plain_input(c, plain, (size_t)rc);
	}
	if (!c->closing)
		gw_tls_trim(c->tls);
}

/* Every connection reads into the server's one buffer: a read is handled before the next. */
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	struct gw_http_conn *c = hd->data;

	(void)suggested;
	buf->base = (char *)c->h->rbuf;
	buf->len = sizeof(c->h->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct gw_http_conn *c = s->data;

	if (nread < 0) {
		conn_close(c);
	} else if (nread > 0 && !c->closing) {
		if (c->tls)
			tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
		else
			plain_input(c, (const uint8_t *)buf->base, (size_t)nread);
	}
}

static void on_header_timeout(uv_timer_t *t)
{
	struct gw_http_conn *c = t->data;

	c->h->st.timeouts++;
	if (c->state == CS_HEAD) {
		c->h->st.bad_requests++;
		gw_http_reply(c, 408, "text/plain; charset=utf-8", "408 Request Timeout\n", 20,
			      NULL);
		return;
	}
	conn_close(c);
}

static void on_connection(uv_stream_t *srv, int status)
{
	struct gw_httpd *h = srv->data;
	struct gw_http_conn *c;

	if (status < 0 || h->closing)
		return;
	c = gw_calloc(1, sizeof(*c));
	if (!c)
		return;
	c->h = h;
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	gw_list_add_tail(&h->conns, &c->node);
	h->st.connections++;
	c->state = h->tls ? CS_TLS : CS_HEAD;
	if (uv_accept(srv, (uv_stream_t *)&c->tcp)) {
		conn_close(c);
		return;
	}
	if (h->st.connections > h->max_clients) {
		h->st.refused++;
		conn_close(c);
		return;
	}
	if (h->tls && gw_tls_server_new(h->tls, tls_send, c, &c->tls)) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_timer_start(&c->timer, on_header_timeout, h->header_timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
		conn_close(c);
}

/* ---------------------------------------------------------------- server */

static void on_srv_closed(uv_handle_t *hd)
{
	struct gw_httpd *h = container_of((uv_tcp_t *)hd, struct gw_httpd, srv);

	h->srv.data = NULL;
	maybe_free(h);
}

/* "http://" / "https://" off @url; the rest is HOST:PORT for the broker's parser. */
static int parse_listen(const char *url, bool *tls, struct sockaddr_storage *ss)
{
	enum brk_transport kind;

	*tls = false;
	if (!strncmp(url, "https://", 8)) {
		*tls = true;
		url += 8;
	} else if (!strncmp(url, "http://", 7)) {
		url += 7;
	}
	if (strstr(url, "://") || brk_listen_parse(url, &kind, ss))
		return -EINVAL;
	return 0;
}

int gw_httpd_new(uv_loop_t *loop, const struct gw_httpd_config *cfg, const struct gw_logger *lg,
		 struct gw_httpd **out)
{
	struct sockaddr_storage ss;
	struct gw_httpd *h;
	int namelen = sizeof(ss);
	bool tls;
	int rc;

	if (parse_listen(cfg->listen, &tls, &ss)) {
		gw_log(lg, LOG_ERR, MOD, "listen %s: expected HOST:PORT, http:// or https://",
		       cfg->listen);
		return -EINVAL;
	}
	h = gw_calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->log = lg;
	h->header_timeout_ms = cfg->header_timeout_ms ? cfg->header_timeout_ms : 10000;
	h->max_clients = cfg->max_clients ? cfg->max_clients : 32;
	h->handle = cfg->handle;
	h->auth = cfg->auth;
	h->arg = cfg->arg;
	gw_list_init(&h->conns);
	if (tls) {
		rc = gw_tls_server_conf_new(cfg->cert_file, cfg->key_file, NULL, false, lg,
					    &h->tls);
		if (rc) {
			gw_log(lg, LOG_ERR, MOD, "%s: needs [broker] cert_file and key_file",
			       cfg->listen);
			gw_free(h);
			return rc;
		}
	}
	uv_tcp_init(loop, &h->srv);
	h->srv.data = h;
	rc = uv_tcp_bind(&h->srv, (const struct sockaddr *)&ss, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&h->srv, 64, on_connection);
	if (rc) {
		gw_log(lg, LOG_ERR, MOD, "cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
		h->closing = true;
		uv_close((uv_handle_t *)&h->srv, on_srv_closed);
		return rc;
	}
	if (!uv_tcp_getsockname(&h->srv, (struct sockaddr *)&ss, &namelen))
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	gw_log(lg, LOG_INFO, MOD, "listening on %s%s", cfg->listen,
	       h->auth ? " (Basic authentication)" : "");
	*out = h;
	return 0;
}

int gw_httpd_port(const struct gw_httpd *h)
{
	return h->port;
}

void gw_httpd_close(struct gw_httpd *h)
{
	struct gw_list *it, *next;

	if (!h || h->closing)
		return;
	h->closing = true;
	for (it = h->conns.next; it != &h->conns; it = next) {
		next = it->next;
		conn_close(gw_list_entry(it, struct gw_http_conn, node));
	}
	uv_close((uv_handle_t *)&h->srv, on_srv_closed);
}

void gw_httpd_get_stats(const struct gw_httpd *h, struct gw_httpd_stats *out)
{
	*out = h->st;
	out->auth_checks = h->auth_jobs;
}
