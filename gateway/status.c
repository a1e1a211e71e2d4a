/*
 * status.c - what the HTTP listener ([http], gateway/httpd.h) serves:
 *   /metrics      Prometheus text exposition of the broker, store, uplink,
 *                 devices, adapters, MQTT-SN, this server and the process
 *                 (written by status_metrics.c with gateway/metrics.c);
 *   /healthz      200 while the loop answers;
 *   /readyz       200 when the listeners are up, the store is open and the
 *                 uplink (when configured) is connected; 503 with the
 *                 reasons otherwise;
 *   /             the status page (gateway/status_page.html, embedded);
 *   /status.json  the page's data: gateway, uplink, every device and point;
 *   /events       the same as Server-Sent Events, once a second.
 * Bodies are built on the loop thread into a heap buffer sized by a first
 * attempt (the writer counts what did not fit); nothing here waits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gateway/auth_files.h"
#include "gateway/gateway_int.h"
#include "gateway/httpd.h"
#include "gateway/metrics.h"
#include "gateway/status.h"
#include "gateway/uplink.h"
#include "store/store.h"

#define MOD "http"

/* -------------------------------------------------------------- bodies */

typedef void (*body_fn)(struct gw *g, struct gw_writer *w);

/*
 * Builds a body with @fn into a gw_malloc'd buffer: a first attempt into
 * @hint bytes, a second of the size the writer counted. NULL when out of
 * memory; free with gw_free().
 */
static uint8_t *build(struct gw *g, body_fn fn, size_t hint, size_t *len)
{
	size_t cap = hint;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		uint8_t *buf = gw_malloc(cap);
		struct gw_writer w;

		if (!buf)
			return NULL;
		gw_writer_init(&w, buf, cap);
		fn(g, &w);
		if (!w.err) {
			*len = w.len;
			return buf;
		}
		gw_free(buf);
		cap = w.len + 1024;
	}
	return NULL;
}

static void put(struct gw_writer *w, const char *s)
{
	gw_wr_bytes(w, s, strlen(s));
}

static void putf(struct gw_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct gw_writer *w, const char *fmt, ...)
{
	char buf[256];
	va_list va;
	int n;

	va_start(va, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, va);
	va_end(va);
	if (n > 0)
		gw_wr_bytes(w, buf, GW_MIN((size_t)n, sizeof(buf) - 1));
}

/* --------------------------------------------------------- status data */

#define PROTO_NAME(g, p) ((g)->cfg.drivers[p].name)

static const char *const quality_names[__AD_Q_MAX] = { "good", "bad", "stale" };

static void status_body(struct gw *g, struct gw_writer *w)
{
	const struct ad_map *map = &g->cfg.devmap->map;
	int64_t now = gw_mono_ms();
	unsigned int i, j;

	put(w, "{\"id\":");
	gw_json_string(w, gw_slice_cstr(g->cfg.gateway.id));
	put(w, ",\"version\":");
	gw_json_string(w, gw_slice_cstr(FIELDMQ_VERSION));
	putf(w, ",\"uptime\":%" PRId64 ",\"now\":%" PRId64, (now - g->started_mono_ms) / 1000,
	     gw_now_ms());
	if (g->uplink) {
		struct gw_uplink_stats us;

		gw_uplink_get_stats(g->uplink, &us);
		putf(w,
		     ",\"uplink\":{\"connected\":%s,\"queued\":%" PRIu64 ",\"sent\":%" PRIu64 "}",
		     us.connected ? "true" : "false", us.queued, us.sent);
	} else {
		put(w, ",\"uplink\":null");
	}
	put(w, ",\"devices\":[");
	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *d = map->devices[i];
		const struct gw_devstate *ds = &g->devices[i];

		put(w, i ? ",{\"name\":" : "{\"name\":");
		gw_json_string(w, gw_slice_cstr(d->name));
		putf(w, ",\"protocol\":\"%s\",\"state\":\"%s\",\"points\":[",
		     PROTO_NAME(g, d->protocol),
		     !ds->known	  ? "unknown"
		     : ds->online ? "online"
				  : "offline");
		for (j = 0; j < d->n_points; j++) {
			const struct ad_point *pt = d->points[j];
			const struct gw_point_state *st = &g->points[pt->index];

			put(w, j ? ",{\"name\":" : "{\"name\":");
			gw_json_string(w, gw_slice_cstr(pt->name));
			put(w, ",\"unit\":");
			gw_json_string(w, gw_slice_cstr(pt->unit ? pt->unit : ""));
			if (!st->published) {
				put(w, ",\"value\":null,\"quality\":null,\"age\":null}");
				continue;
			}
			put(w, ",\"value\":");
			if (st->last.type == AD_VAL_NONE)
				put(w, "null");
			else
				gw_json_value(w, &st->last);
			putf(w, ",\"quality\":\"%s\",\"age\":%.1f}",
			     quality_names[st->last_quality < __AD_Q_MAX ? st->last_quality : 1],
			     (double)(now - st->last_read_mono_ms) / 1000.0);
		}
		put(w, "]}");
	}
	put(w, "]}");
}

/* ------------------------------------------------------------ readiness */

static void ready_body(struct gw *g, struct gw_writer *w)
{
	bool store_needed = g->cfg.broker.persist || g->cfg.uplink.enabled;

	if (!g->started)
		put(w, "not ready: starting\n");
	if (g->stopping)
		put(w, "not ready: stopping\n");
	if (store_needed && !g->store)
		put(w, "not ready: the store is not open\n");
	if (g->store) {
		struct st_stats ss;

		st_get_stats(g->store, &ss);
		if (ss.failing)
			put(w, "not ready: the store's last commit failed\n");
	}
	if (g->uplink) {
		struct gw_uplink_stats us;

		gw_uplink_get_stats(g->uplink, &us);
		if (!us.connected)
			putf(w, "not ready: the uplink is not connected to %s\n",
			     g->cfg.uplink.url ? g->cfg.uplink.url : "the cloud");
	}
}

/* -------------------------------------------------------------- routes */

static void reply_built(struct gw *g, struct gw_http_conn *c, body_fn fn, size_t hint,
			const char *ctype)
{
	size_t len = 0;
	uint8_t *body = build(g, fn, hint, &len);

	if (!body) {
		gw_http_reply(c, 503, "text/plain; charset=utf-8", "503 out of memory\n", 18, NULL);
		return;
	}
	gw_http_reply(c, 200, ctype, body, len, NULL);
	gw_free(body);
}

static void on_request(void *arg, struct gw_http_conn *c, struct gw_slice path,
		       const struct brk_http_req *rq)
{
	struct gw *g = arg;

	(void)rq;
	if (gw_slice_eq_cstr(path, "/metrics")) {
		reply_built(g, c, gw__metrics_body, 32768, GW_EXPO_CONTENT_TYPE);
	} else if (gw_slice_eq_cstr(path, "/healthz")) {
		gw_http_reply(c, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
	} else if (gw_slice_eq_cstr(path, "/readyz")) {
		size_t len = 0;
		uint8_t *body = build(g, ready_body, 1024, &len);

		if (body && len)
			gw_http_reply(c, 503, "text/plain; charset=utf-8", body, len, NULL);
		else
			gw_http_reply(c, body ? 200 : 503, "text/plain; charset=utf-8",
				      body ? "ready\n" : "out of memory\n", body ? 6 : 14, NULL);
		gw_free(body);
	} else if (gw_slice_eq_cstr(path, "/") || gw_slice_eq_cstr(path, "/index.html")) {
		gw_http_reply(c, 200, "text/html; charset=utf-8", gw_status_page,
			      gw_status_page_len, NULL);
	} else if (gw_slice_eq_cstr(path, "/status.json")) {
		reply_built(g, c, status_body, 16384, "application/json");
	} else if (gw_slice_eq_cstr(path, "/events")) {
		size_t len = 0;
		uint8_t *body = build(g, status_body, 16384, &len);

		gw_http_sse(c, body, body ? len : 0);
		gw_free(body);
	}
	/* Anything else: the server answers 404. */
}

/* ----------------------------------------------------------- lifecycle */

/* On a pool thread: Basic credentials against [http] password_file. */
static int http_auth(void *arg, const char *user, const char *pass)
{
	struct gw *g = arg;

	/* gw__http_reload() swaps it on the loop thread while checks may run. */
	return brk_passwd_check(__atomic_load_n(&g->http_passwd, __ATOMIC_ACQUIRE), user, pass);
}

/* Log a password file that could not be loaded, with file:line when there is a line. */
static void log_bad_passwd(struct gw *g, const char *path, unsigned int line, const char *msg,
			   const char *tail)
{
	if (line)
		gw_log(g->log, LOG_ERR, MOD, "%s:%u: [http] password_file: %s%s", path, line, msg,
		       tail);
	else
		gw_log(g->log, LOG_ERR, MOD, "[http] password_file: %s%s", msg, tail);
}

/*
 * Free the replaced password files once no check can still read one: a
 * check reads the pointer after it was queued, and every check queued
 * before the swap has ended when none is queued or running.
 */
static void http_pw_collect(struct gw *g)
{
	struct gw_httpd_stats hs;
	unsigned int i;

	/* Without the server (stopping) checks may still run: gw__http_free() frees. */
	if (!g->httpd)
		return;
	gw_httpd_get_stats(g->httpd, &hs);
	if (hs.auth_checks)
		return;
	for (i = 0; i < GW_HTTP_PW_RETIRED; i++) {
		brk_passwd_free(g->http_pw_retired[i]);
		g->http_pw_retired[i] = NULL;
	}
}

int gw__http_reload(struct gw *g)
{
	const char *path = g->cfg.http.password_file;
	struct brk_passwd *pw, *old;
	unsigned int i, line = 0;
	char msg[256];
	int rc;

	if (!g->httpd || !g->http_passwd || !path || !*path)
		return 0; /* no listener, or no authentication configured */
	http_pw_collect(g);
	for (i = 0; i < GW_HTTP_PW_RETIRED && g->http_pw_retired[i]; i++)
		;
	if (i == GW_HTTP_PW_RETIRED) {
		gw_log(g->log, LOG_WARNING, MOD,
		       "reload: [http] password_file: checks of earlier files still run; "
		       "keeping the one in use, send SIGHUP again");
		return -EBUSY;
	}
	rc = gw_passwd_load(path, &pw, &line, msg, sizeof(msg));
	if (rc) {
		log_bad_passwd(g, path, line, msg, "; keeping the previous one");
		return rc;
	}
	old = g->http_passwd;
	__atomic_store_n(&g->http_passwd, pw, __ATOMIC_RELEASE);
	g->http_pw_retired[i] = old;
	http_pw_collect(g);
	gw_log(g->log, LOG_INFO, MOD, "reload: [http] password_file %s read again (%u users)", path,
	       brk_passwd_count(pw));
	return 0;
}

int gw__http_start(struct gw *g)
{
	const struct gw_http_config *hc = &g->cfg.http;
	struct gw_httpd_config c = {
		.listen = hc->listen,
		.cert_file = g->cfg.broker.tls.cert_file,
		.key_file = g->cfg.broker.tls.key_file,
		.header_timeout_ms = 10000,
		.max_clients = 32,
		.handle = on_request,
		.arg = g,
	};

	if (hc->password_file && *hc->password_file) {
		unsigned int line = 0;
		char msg[256];
		int rc =
			gw_passwd_load(hc->password_file, &g->http_passwd, &line, msg, sizeof(msg));

		if (rc) {
			log_bad_passwd(g, hc->password_file, line, msg, "");
			return rc;
		}
		c.auth = http_auth;
	}
	return gw_httpd_new(g->loop, &c, g->log, &g->httpd);
}

void gw__http_stop(struct gw *g)
{
	gw_httpd_close(g->httpd);
	g->httpd = NULL;
}

/* After the loop ended: no password check runs any more. */
void gw__http_free(struct gw *g)
{
	unsigned int i;

	brk_passwd_free(g->http_passwd);
	g->http_passwd = NULL;
	for (i = 0; i < GW_HTTP_PW_RETIRED; i++) {
		brk_passwd_free(g->http_pw_retired[i]);
		g->http_pw_retired[i] = NULL;
	}
}

void gw__http_tick(struct gw *g)
{
	struct gw_uplink_stats us;
	uint8_t *body;
	size_t len = 0;

	if (g->http_pw_retired[0]) /* filled from the first slot */
		http_pw_collect(g);

	if (g->uplink) {
		gw_uplink_get_stats(g->uplink, &us);
		if (us.connects != g->upl_connects_seen) {
			g->upl_connects_seen = us.connects;
			g->upl_last_connect_ms = gw_now_ms();
		}
	}
	if (!g->httpd || !gw_httpd_sse_clients(g->httpd))
		return;
	body = build(g, status_body, 16384, &len);
	if (body)
		gw_httpd_sse_send(g->httpd, body, len);
	gw_free(body);
}
