/*
 * httpd.h - the gateway's small HTTP/1.1 server ([http] in DESIGN.md 4):
 * metrics, health and the status page. GET and HEAD only, one request per
 * connection (Connection: close), the request head bounded in size and in
 * time (a client that has not sent its whole head within the header timeout
 * is closed: slowloris), http:// or https:// (TLS through gateway/tls, as the
 * broker's listeners), optional Basic authentication, and Server-Sent Events
 * streams that the owner feeds. Requests are parsed by the pure
 * broker/http.c. Nothing blocks the loop.
 *
 * Threads: everything runs on the loop thread.
 */
#ifndef FIELDMQ_HTTPD_H
#define FIELDMQ_HTTPD_H

#include <uv.h>

#include "broker/http.h"
#include "gateway/base/base.h"

struct gw_httpd;
struct gw_http_conn;

/* Limits: a head larger than this is refused with 431. */
#define GW_HTTPD_MAX_HEAD 8192
/* Bytes queued to a slow reader of an event stream before it is dropped. */
#define GW_HTTPD_SSE_MAX_QUEUED (256u << 10)

/*
 * The owner's answer to a request: call gw_http_reply() or gw_http_sse()
 * exactly once before returning. @path is the request's path (no query);
 * @rq the whole parsed head.
 */
typedef void (*gw_httpd_handle_fn)(void *arg, struct gw_http_conn *c, struct gw_slice path,
				   const struct brk_http_req *rq);
/*
 * Checks a Basic user and password (NUL-terminated copies). Runs on a
 * thread of libuv's pool (a password hash is slow on purpose), at most two
 * at once (more requests meanwhile get 503): it must only read what does
 * not change while the server runs. 0: let in; anything else: 401.
 */
typedef int (*gw_httpd_auth_fn)(void *arg, const char *user, const char *pass);

struct gw_httpd_config {
	const char *listen;	    /* HOST:PORT, http://HOST:PORT or https://HOST:PORT */
	const char *cert_file;	    /* https:// */
	const char *key_file;	    /* https:// */
	uint32_t header_timeout_ms; /* the whole head (and TLS handshake) within this; 10 s */
	unsigned int max_clients;   /* connections at once (event streams included); 32 */
	gw_httpd_handle_fn handle;
	gw_httpd_auth_fn auth; /* NULL: no authentication */
	void *arg;
};

/*
 * gw_httpd_new - bind and listen as @cfg says (the strings are used during
 * the call only, the callbacks for the server's life). Errors are logged.
 * Returns 0 and *out, -EINVAL (bad listen address, TLS files), a libuv
 * error (-EADDRINUSE...), -ENOMEM.
 */
int gw_httpd_new(uv_loop_t *loop, const struct gw_httpd_config *cfg, const struct gw_logger *lg,
		 struct gw_httpd **out);

/* Close the listener and every connection; the server frees itself once all are closed. */
void gw_httpd_close(struct gw_httpd *h);

/* The port bound (useful with port 0). */
int gw_httpd_port(const struct gw_httpd *h);

/*
 * gw_http_reply - a complete response: @status with its reason phrase,
 * @ctype, @body of @len bytes (copied; left out for HEAD), @extra header
 * lines (each ending in \r\n, may be NULL). The connection closes once it is
 * written. 0 or -ENOMEM (the connection is then closed).
 */
int gw_http_reply(struct gw_http_conn *c, int status, const char *ctype, const void *body,
		  size_t len, const char *extra);

/*
 * gw_http_sse - answer with an event stream (text/event-stream): the
 * connection stays open and gets every gw_httpd_sse_send(); @first (may be
 * NULL) is sent as its first event. A HEAD request gets the head only.
 */
int gw_http_sse(struct gw_http_conn *c, const void *first, size_t len);

/* Streams open now. */
unsigned int gw_httpd_sse_clients(const struct gw_httpd *h);

/*
 * gw_httpd_sse_send - "data: @p\n\n" to every event stream (@p must be one
 * line). A stream with more than GW_HTTPD_SSE_MAX_QUEUED bytes unsent is
 * closed instead.
 */
void gw_httpd_sse_send(struct gw_httpd *h, const void *p, size_t len);

/* Figures for /metrics. */
struct gw_httpd_stats {
	uint64_t requests;	  /* heads parsed */
	uint64_t bad_requests;	  /* 400, 405, 431 */
	uint64_t timeouts;	  /* closed by the header timeout */
	uint64_t unauthorized;	  /* 401 */
	uint64_t refused;	  /* over max_clients */
	unsigned int connections; /* open now */
	unsigned int auth_checks; /* password checks queued or running on the pool now */
};
void gw_httpd_get_stats(const struct gw_httpd *h, struct gw_httpd_stats *out);

#endif
