/*
 * broker_uv.c - the libuv glue of the broker: listeners, the loop's handles
 * (tick, due, prepare, check) and the broker's lifecycle (brk_new, brk_start,
 * brk_stop, brk_free).
 *
 * A connection's socket side (reads, batched writes, closes, accept and its
 * limits) is in conn_uv.c; the TLS and WebSocket transport between the socket
 * and the protocol in transport_uv.c; what they share in broker_uv_int.h.
 * Writes: the protocol machine puts a connection's output in the broker's
 * stage and asks for a flush; on_check (a uv_check handle, which runs after
 * the I/O callbacks of an iteration) flushes each dirty connection.
 * Listeners: every kind (mqtt://, mqtts://, ws://, wss://) accepts into the
 * same connection object and the same protocol machine.
 */
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker/broker_int.h"
#include "broker/broker_uv_int.h"
#include "broker/limits.h"
#include "broker/mqtt_codec.h"
#include "gateway/tls/tls.h"

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

/* ---------------------------------------------------------------- timers */

static void on_kick(uv_idle_t *h)
{
	(void)h; /* its being active is what counts: the poll does not block */
}

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
		brk__uv_flush(uc);
		if (uc->c.state == BRK_CS_CLOSING && !uc->c.writing && !brk__conn_pending(&uc->c))
			brk__uv_close_linger(uc);
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
			brk__uv_linger_close(l);
	}
	/* Only connections that hold output memory: the others have nothing to give back. */
	gw_list_for_each_safe (pos, tmp, &u->busy) {
		struct brk_uvconn *uc = gw_list_entry(pos, struct brk_uvwr, link)->uc;
		struct brk_conn *c = &uc->c;

		if (c->state == BRK_CS_CLOSING && now - c->last_rx > 5000) {
			brk__uv_close_now(uc);
			continue;
		}
		/*
		 * An idle connection keeps no output buffers: what a batch needed
		 * is given back once a second at most.
		 */
		if (!c->writing && !brk__conn_pending(c)) {
			brk__conn_out_free(c);
			brk__uv_writer_free(uc);
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
			rc = uv_listen((uv_stream_t *)&l->tcp, 128, brk__uv_on_connection);
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
		brk__uv_flush(uc);
		if (!c->writing)
			brk__uv_close_now(uc);
	}
	gw_list_for_each_safe (pos, tmp, &u->linger)
		brk__uv_linger_close(gw_list_entry(pos, struct brk_uvlinger, link));
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
