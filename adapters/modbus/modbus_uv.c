/*
 * modbus_uv.c - the Modbus adapter's glue: the sans-I/O poller (mbus_poll.c)
 * of every bus driven by the loop, with the transport behind it.
 *
 * Each bus carrying a modbus device is a line (struct mbus_line): a poll
 * timer and one transport.
 *  - Modbus TCP and RTU-over-TCP live on the loop: a uv_tcp_t, requests
 *    framed by mbus_mbap_encode / mbus_rtu_encode, answers decoded by
 *    mbus_mbap_decode / mbus_rtu_decode_rsp. No thread.
 *  - A serial RTU line keeps libmodbus (its RS-485 and timing handling) on a
 *    worker thread of its own: the loop hands it one request at a time and
 *    the result comes back through the adapter's uv_async.
 *
 * Threads: the loop thread owns the poller, the handles and every sink call.
 * A worker owns its modbus_t; it touches the request (and the registers it
 * reads into) only between taking it and posting its result, under the
 * line's mutex. Nothing else is shared.
 *
 * Memory: a network line is one per Modbus TCP device, so it holds only
 * what it needs while idle - a timer, a socket and the poller (about 650
 * bytes). A request is framed on the stack and written with uv_try_write;
 * only what the socket did not take is copied out (struct mb_unsent). An
 * answer is read into one buffer of the adapter and decoded there; only the
 * first bytes of an answer that came in pieces are kept by the line (part,
 * allocated the first time that happens). The connect and host look-up
 * requests are allocated while they run.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h>
#include <uv.h>

#include "mbus_poll.h"
#include "modbus_adapter.h"

#define MOD "modbus"

enum net_state {
	NET_IDLE,	/* no handle */
	NET_RESOLVING,	/* a host name being looked up (no handle yet) */
	NET_CONNECTING, /* handle open, connect under way */
	NET_CONNECTED,
	NET_CLOSING, /* uv_close called, waiting for its callback */
};

struct mb_adapter;

struct mb_unsent;

struct mb_line {
	struct mb_adapter *ad;
	const struct ad_bus *cfg;
	const struct mbus_bus *mc;
	struct mbus_line sm;
	uv_timer_t timer;
	bool serial;
	/* Network lines (loop thread only). */
	bool have_addr;
	bool send_pending; /* sm.x waits for the connection */
	enum net_state net;
	uv_tcp_t tcp;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	uint16_t tid;
	uint16_t rlen;		  /* bytes in part */
	uint8_t *part;		  /* MBUS_TCP_MAX_ADU: an answer that came in pieces */
	struct mb_unsent *unsent; /* the tail of a request that uv_write sends */
	struct mb_worker *w;	  /* serial lines only */
};

/* The bytes of a request the socket did not take at once, while uv_write has them. */
struct mb_unsent {
	uv_write_t req;
	struct mb_line *l;
	uint8_t data[];
};

/*
 * A serial line's worker and what it shares with the loop. Allocated for
 * serial lines only: a network line (one per Modbus TCP device) would
 * otherwise carry its 2 KB of coil buffer and locks for nothing.
 */
struct mb_worker {
	uv_thread_t thread;
	bool thread_started, joined;
	uv_mutex_t lock; /* job, done, quit, exited, x, job_err, job_exc */
	uv_cond_t cond;
	bool job, done, quit, exited;
	struct mbus_xfer x;
	int job_err;
	uint8_t job_exc;
	modbus_t *ctx; /* worker only */
	bool connected;
	uint8_t bits[MBUS_MAX_READ_BITS];
};

struct mb_adapter {
	struct ad_adapter base;
	struct mb_line *lines;
	unsigned int n_lines;
	struct mbus_pdev *devs; /* in map order */
	unsigned int n_devs;
	struct mbus_pdev **by_line; /* devs grouped by line; each line's devs point in */
	uv_async_t async;
	bool async_inited, async_closed;
	bool started, stopping, stopped_cb;
	unsigned int n_timers;	   /* timers initialised */
	unsigned int closing;	   /* handles whose close callback is pending */
	unsigned int resolving;	   /* getaddrinfo requests under way */
	unsigned int workers_left; /* worker threads not yet joined */
	void (*stop_done)(void *arg);
	void *stop_arg;
	struct ad_modbus_stats stats;
	/* Every network line reads into this and decodes at once (loop thread only). */
	uint8_t rbuf[MBUS_TCP_MAX_ADU];
};

static struct mbus_clock clock_now(void)
{
	return (struct mbus_clock){ .mono_ms = gw_mono_ms(), .wall_ms = gw_now_ms() };
}

static void maybe_done(struct mb_adapter *ad);
static void pump(struct mb_line *l);
static void on_timer(uv_timer_t *t);

/* ============================================================ serial worker */

static void lm_close(struct mb_line *l)
{
	if (l->w->ctx) {
		if (l->w->connected)
			modbus_close(l->w->ctx);
		modbus_free(l->w->ctx);
		l->w->ctx = NULL;
	}
	l->w->connected = false;
}

static int lm_open(struct mb_line *l)
{
	const struct mbus_bus *mc = l->mc;

	if (l->w->connected)
		return 0;
	if (!l->w->ctx) {
		l->w->ctx = modbus_new_rtu(mc->device, (int)mc->baud, mc->parity ? mc->parity : 'N',
					   mc->data_bits ? mc->data_bits : 8,
					   mc->stop_bits ? mc->stop_bits : 1);
		if (!l->w->ctx)
			return -errno ? -errno : -ENOMEM;
		modbus_set_response_timeout(l->w->ctx, mc->timeout_ms / 1000,
					    (mc->timeout_ms % 1000) * 1000);
	}
	if (modbus_connect(l->w->ctx) == -1)
		return -errno;
	if (mc->rs485 && modbus_rtu_set_serial_mode(l->w->ctx, MODBUS_RTU_RS485) == -1)
		gw_log(l->ad->base.log, LOG_WARNING, MOD,
		       "bus %s: cannot switch %s to RS485 mode (%s), using RS232", l->cfg->name,
		       mc->device, strerror(errno));
	l->w->connected = true;
	return 0;
}

/* Maps a failed libmodbus call's errno; drops the port unless the device
 * answered (an exception) or the line was merely quiet or noisy. */
static int lm_fail(struct mb_line *l, uint8_t *exc)
{
	int e = errno;

	if (e > MODBUS_ENOBASE && e <= EMBXGTAR) {
		*exc = (uint8_t)(e - MODBUS_ENOBASE);
		return -MBUS_EEXC;
	}
	if (e != ETIMEDOUT && e != EMBBADCRC) {
		modbus_close(l->w->ctx);
		l->w->connected = false;
	} else {
		modbus_flush(l->w->ctx);
	}
	if (e == EMBBADCRC)
		return -EBADMSG;
	if (e > EMBXGTAR)
		return -EPROTO;
	return e ? -e : -EIO;
}

/* One request with libmodbus (blocks for at most the bus timeout). */
static int lm_xfer(struct mb_line *l, const struct mbus_xfer *x, uint8_t *exc)
{
	int rc, i;

	rc = lm_open(l);
	if (rc)
		return rc;
	modbus_set_slave(l->w->ctx, x->unit);
	switch (x->fc) {
	case MBUS_FC_READ_COILS:
		rc = modbus_read_bits(l->w->ctx, x->addr, x->count, l->w->bits);
		break;
	case MBUS_FC_READ_DISCRETE:
		rc = modbus_read_input_bits(l->w->ctx, x->addr, x->count, l->w->bits);
		break;
	case MBUS_FC_READ_INPUT:
		rc = modbus_read_input_registers(l->w->ctx, x->addr, x->count, x->dst);
		break;
	case MBUS_FC_READ_HOLDING:
		rc = modbus_read_registers(l->w->ctx, x->addr, x->count, x->dst);
		break;
	case MBUS_FC_WRITE_COIL:
		rc = modbus_write_bit(l->w->ctx, x->addr, x->vals[0] ? 1 : 0);
		break;
	case MBUS_FC_WRITE_COILS:
		for (i = 0; i < x->count; i++)
			l->w->bits[i] = x->vals[i] ? 1 : 0;
		rc = modbus_write_bits(l->w->ctx, x->addr, x->count, l->w->bits);
		break;
	case MBUS_FC_WRITE_REGISTER:
		rc = modbus_write_register(l->w->ctx, x->addr, x->vals[0]);
		break;
	default:
		rc = modbus_write_registers(l->w->ctx, x->addr, x->count, x->vals);
		break;
	}
	if (rc == -1)
		return lm_fail(l, exc);
	if (x->fc <= MBUS_FC_READ_INPUT && rc != x->count)
		return -EBADMSG;
	if (x->fc == MBUS_FC_READ_COILS || x->fc == MBUS_FC_READ_DISCRETE)
		for (i = 0; i < x->count; i++)
			x->dst[i] = l->w->bits[i];
	return 0;
}

static void worker_main(void *arg)
{
	struct mb_line *l = arg;
	struct mbus_xfer x;
	uint8_t exc;
	int err;

	uv_mutex_lock(&l->w->lock);
	for (;;) {
		while (!l->w->quit && !l->w->job)
			uv_cond_wait(&l->w->cond, &l->w->lock);
		if (!l->w->job)
			break;
		x = l->w->x;
		l->w->job = false;
		exc = 0;
		if (l->w->quit) {
			/* Stopping: answer without touching the device. */
			err = -ECANCELED;
		} else {
			uv_mutex_unlock(&l->w->lock);
			err = lm_xfer(l, &x, &exc);
			uv_mutex_lock(&l->w->lock);
		}
		l->w->job_err = err;
		l->w->job_exc = exc;
		l->w->done = true;
		uv_async_send(&l->ad->async);
	}
	uv_mutex_unlock(&l->w->lock);
	lm_close(l);
	uv_mutex_lock(&l->w->lock);
	l->w->exited = true;
	uv_mutex_unlock(&l->w->lock);
	uv_async_send(&l->ad->async);
}

/* Results and exits of the workers, on the loop. */
static void on_async(uv_async_t *h)
{
	struct mb_adapter *ad = container_of(h, struct mb_adapter, async);
	unsigned int i;

	for (i = 0; i < ad->n_lines; i++) {
		struct mb_line *l = &ad->lines[i];
		bool done, exited;
		int err;
		uint8_t exc;

		if (!l->serial || !l->w->thread_started)
			continue;
		uv_mutex_lock(&l->w->lock);
		done = l->w->done;
		exited = l->w->exited;
		err = l->w->job_err;
		exc = l->w->job_exc;
		l->w->done = false;
		uv_mutex_unlock(&l->w->lock);
		if (done) {
			mbus_line_result(&l->sm, clock_now(), err, exc);
			pump(l);
		}
		if (exited && !l->w->joined) {
			uv_thread_join(&l->w->thread);
			l->w->joined = true;
			ad->workers_left--;
		}
	}
	maybe_done(ad);
}

/* =========================================================== network lines */

static void on_tcp_closed(uv_handle_t *h);
static void net_connect(struct mb_line *l);

/* Drops the connection (a timeout, a broken stream, stop). */
static void net_close(struct mb_line *l)
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
	net_close(l);
	l->send_pending = false;
	if (l->sm.outstanding)
		mbus_line_error(&l->sm, clock_now(), err);
	pump(l);
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
		maybe_done(ad);
		return;
	}
	/* A request came while the old connection was closing. */
	if (l->send_pending)
		net_connect(l);
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
			mbus_line_response(&l->sm, clock_now(), &f);
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
	pump(l);
}

static int net_send(struct mb_line *l, const struct mbus_xfer *x);

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
		rc = net_send(l, &l->sm.x);
		/* The answer gets its own timeout after the connect's. */
		if (!rc)
			mbus_line_sent(&l->sm, clock_now());
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
		maybe_done(ad);
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
static void net_connect(struct mb_line *l)
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
static int net_frame(struct mb_line *l, const struct mbus_xfer *x, struct gw_writer *aw)
{
	uint8_t pdu[MBUS_MAX_PDU];
	struct gw_writer w;
	int rc;

	gw_writer_init(&w, pdu, sizeof(pdu));
	if (x->vals)
		rc = mbus_pdu_write(&w, x->fc, x->addr, x->vals, x->count);
	else
		rc = mbus_pdu_read(&w, x->fc, x->addr, x->count);
	if (rc)
		return rc;
	if (l->mc->type == AD_BUS_TCP)
		return mbus_mbap_encode(aw, ++l->tid, x->unit, pdu, w.len);
	return mbus_rtu_encode(aw, x->unit, pdu, w.len);
}

/* Frames @x on the stack and writes it on the connected socket; 0 or -errno. */
static int net_send(struct mb_line *l, const struct mbus_xfer *x)
{
	uint8_t adu[MBUS_TCP_MAX_ADU];
	struct gw_writer aw;
	int rc;

	gw_writer_init(&aw, adu, sizeof(adu));
	rc = net_frame(l, x, &aw);
	return rc ? rc : net_write(l, adu, aw.len);
}

/* =============================================================== poller ops */

static int op_send(void *arg, const struct mbus_xfer *x)
{
	struct mb_line *l = arg;
	int rc;

	if (l->serial) {
		uv_mutex_lock(&l->w->lock);
		l->w->x = *x;
		l->w->job = true;
		uv_cond_signal(&l->w->cond);
		uv_mutex_unlock(&l->w->lock);
		return 0;
	}
	if (l->net == NET_CONNECTED) {
		rc = net_send(l, x);
		if (rc)
			net_close(l);
		return rc;
	}
	/*
	 * Framed once now for its errors, and again from the poller's copy
	 * (l->sm.x, which stays put while the request is outstanding) once
	 * the connection is up: no buffer is held while connecting.
	 */
	{
		uint8_t adu[MBUS_TCP_MAX_ADU];
		struct gw_writer aw;

		gw_writer_init(&aw, adu, sizeof(adu));
		rc = net_frame(l, x, &aw);
		if (rc)
			return rc;
	}
	l->send_pending = true;
	if (l->net == NET_IDLE)
		net_connect(l);
	return 0;
}

static void op_reset(void *arg)
{
	struct mb_line *l = arg;

	l->send_pending = false;
	if (!l->serial)
		net_close(l);
}

static void op_reading(void *arg, const struct ad_reading *r)
{
	struct mb_line *l = arg;
	const struct ad_sink *s = &l->ad->base.sink;

	if (s->on_reading)
		s->on_reading(s->arg, r);
}

static void op_status(void *arg, const struct ad_device *dev, bool online)
{
	struct mb_line *l = arg;
	const struct ad_sink *s = &l->ad->base.sink;

	if (s->on_status)
		s->on_status(s->arg, dev, online);
}

static void op_write_done(void *arg, struct mbus_write *w, const struct ad_cmd_result *res)
{
	struct mb_line *l = arg;
	const struct ad_sink *s = &l->ad->base.sink;

	if (s->on_cmd_done)
		s->on_cmd_done(s->arg, w->token, res);
	gw_free(w);
}

static const char *const area_names[__AD_AREA_MAX] = {
	[AD_AREA_COIL] = "coils",
	[AD_AREA_DISCRETE] = "discrete inputs",
	[AD_AREA_INPUT] = "input registers",
	[AD_AREA_HOLDING] = "holding registers",
};

static void op_note(void *arg, const struct mbus_note *n)
{
	struct mb_line *l = arg;
	const struct gw_logger *log = l->ad->base.log;
	const struct ad_device *c = n->dev;

	switch (n->kind) {
	case MBUS_NOTE_FAILED:
		gw_log(log, LOG_WARNING, MOD, "device %s (unit %u on %s): %s", c->name,
		       mbus_dev(c)->unit_id, c->bus->name, mbus_err_str(n->err, 0));
		break;
	case MBUS_NOTE_EXCEPTION:
		gw_log(log, LOG_WARNING, MOD, "device %s: reading %u %s from %u: %s%s", c->name,
		       n->req->count, area_names[n->req->area], n->req->address,
		       mbus_exception_str(n->exc),
		       n->split ? "; reading its points one by one" : "");
		break;
	case MBUS_NOTE_ONLINE:
		gw_log(log, LOG_INFO, MOD, "device %s online", c->name);
		break;
	case MBUS_NOTE_OFFLINE:
		gw_log(log, LOG_WARNING, MOD, "device %s offline", c->name);
		break;
	case MBUS_NOTE_DEGRADED:
		gw_log(log, LOG_INFO, MOD, "device %s: %u failed polls, retrying every %u ms",
		       c->name, n->fails, mbus_dev(c)->degrade_for_ms);
		break;
	}
}

static const struct mbus_poll_ops line_ops = {
	.send = op_send,
	.reset = op_reset,
	.on_reading = op_reading,
	.on_status = op_status,
	.on_write_done = op_write_done,
	.on_note = op_note,
};

/* ================================================================ schedule */

/* Lets time pass for the line's poller and arms its timer for what comes next. */
static void pump(struct mb_line *l)
{
	struct mbus_clock now;
	int64_t next;

	if (l->ad->stopping)
		return;
	now = clock_now();
	next = mbus_line_due(&l->sm, now);
	if (next == INT64_MAX) {
		uv_timer_stop(&l->timer);
		return;
	}
	uv_timer_start(&l->timer, on_timer, next > now.mono_ms ? (uint64_t)(next - now.mono_ms) : 0,
		       0);
}

static void on_timer(uv_timer_t *t)
{
	pump(container_of(t, struct mb_line, timer));
}

/* ================================================================ the ops */

static void on_closed(uv_handle_t *h)
{
	struct mb_adapter *ad = h->data;

	ad->closing--;
	if (h == (uv_handle_t *)&ad->async)
		ad->async_closed = true;
	maybe_done(ad);
}

/* Once the workers are joined, close the async; once every handle is closed, done. */
static void maybe_done(struct mb_adapter *ad)
{
	if (!ad->stopping || ad->workers_left || ad->resolving)
		return;
	if (ad->async_inited && !ad->async_closed && !uv_is_closing((uv_handle_t *)&ad->async)) {
		ad->async.data = ad;
		ad->closing++;
		uv_close((uv_handle_t *)&ad->async, on_closed);
		return;
	}
	if (ad->closing || ad->stopped_cb)
		return;
	ad->stopped_cb = true;
	if (ad->stop_done)
		ad->stop_done(ad->stop_arg);
}

/* Stops and joins the workers of a start that failed; they are idle. */
static void abort_workers(struct mb_adapter *ad)
{
	unsigned int i;

	for (i = 0; i < ad->n_lines; i++) {
		struct mb_line *l = &ad->lines[i];

		if (!l->w || !l->w->thread_started)
			continue;
		uv_mutex_lock(&l->w->lock);
		l->w->quit = true;
		uv_cond_signal(&l->w->cond);
		uv_mutex_unlock(&l->w->lock);
		uv_thread_join(&l->w->thread);
		l->w->thread_started = false;
		l->w->quit = false;
		l->w->exited = false;
	}
	ad->workers_left = 0;
}

/*
 * Everything that can fail happens before the first libuv handle exists, so
 * a failed start leaves nothing to close: free() may follow directly.
 */
static int mb_start(struct ad_adapter *a)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	struct mbus_clock now;
	unsigned int i, n_serial = 0;
	int rc;

	for (i = 0; i < ad->n_lines; i++) {
		struct mb_line *l = &ad->lines[i];

		if (!l->serial)
			continue;
		rc = uv_thread_create(&l->w->thread, worker_main, l);
		if (rc) {
			gw_log(a->log, LOG_ERR, MOD, "bus %s: cannot start a worker: %s",
			       l->cfg->name, uv_strerror(rc));
			abort_workers(ad);
			return rc;
		}
		l->w->thread_started = true;
		ad->workers_left++;
		n_serial++;
	}
	rc = uv_async_init(a->loop, &ad->async, on_async);
	if (rc) {
		abort_workers(ad);
		return rc;
	}
	ad->async_inited = true;
	ad->started = true;
	now = clock_now();
	for (i = 0; i < ad->n_lines; i++) {
		struct mb_line *l = &ad->lines[i];

		uv_timer_init(a->loop, &l->timer);
		ad->n_timers++;
		mbus_line_start(&l->sm, now);
		uv_timer_start(&l->timer, on_timer, 0, 0);
	}
	gw_log(a->log, LOG_INFO, MOD,
	       "polling %u devices on %u buses (%u on the loop, %u serial with a worker each)",
	       ad->n_devs, ad->n_lines, ad->n_lines - n_serial, n_serial);
	return 0;
}

static void mb_stop(struct ad_adapter *a, void (*done)(void *arg), void *arg)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	struct mbus_clock now = clock_now();
	unsigned int i;

	ad->stop_done = done;
	ad->stop_arg = arg;
	if (!ad->started) {
		ad->stopping = true;
		ad->stopped_cb = true;
		if (done)
			done(arg);
		return;
	}
	ad->stopping = true;
	for (i = 0; i < ad->n_lines; i++) {
		struct mb_line *l = &ad->lines[i];

		/* Queued commands are answered "adapter stopped" now. */
		mbus_line_stop(&l->sm, now);
		if (l->serial) {
			/* The worker ends the request it runs (at most one timeout),
			 * posts it, and exits; on_async joins it. */
			uv_mutex_lock(&l->w->lock);
			l->w->quit = true;
			uv_cond_signal(&l->w->cond);
			uv_mutex_unlock(&l->w->lock);
		} else {
			net_close(l);
			l->send_pending = false;
			if (l->sm.outstanding)
				mbus_line_error(&l->sm, now, -ECANCELED);
		}
	}
	for (i = 0; i < ad->n_timers; i++) {
		ad->lines[i].timer.data = ad;
		ad->closing++;
		uv_close((uv_handle_t *)&ad->lines[i].timer, on_closed);
	}
	maybe_done(ad);
}

static void mb_free(struct ad_adapter *a)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	unsigned int i;

	if (!ad)
		return;
	for (i = 0; i < ad->n_devs; i++)
		gw_free((void *)ad->devs[i].order); /* the base of its memory, data included */
	for (i = 0; i < ad->n_lines; i++) {
		struct mb_worker *w = ad->lines[i].w;

		gw_free(ad->lines[i].part);
		if (w) {
			uv_cond_destroy(&w->cond);
			uv_mutex_destroy(&w->lock);
			gw_free(w);
		}
	}
	gw_free(ad->by_line);
	gw_free(ad->devs);
	gw_free(ad->lines);
	gw_free(ad);
}

static struct mbus_pdev *find_dev(struct mb_adapter *ad, const struct ad_device *dev)
{
	unsigned int i;

	for (i = 0; i < ad->n_devs; i++)
		if (ad->devs[i].cfg == dev)
			return &ad->devs[i];
	return NULL;
}

static int mb_command(struct ad_adapter *a, const struct ad_point *pt, const struct ad_value *value,
		      void *token, const char **why)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	struct mbus_pdev *d = pt ? find_dev(ad, pt->device) : NULL;
	struct mbus_write *w;
	struct mb_line *l;
	int rc;

	if (!d || !value) {
		*why = "not a modbus point";
		return -EINVAL;
	}
	if (ad->stopping || !ad->started) {
		*why = "adapter not running";
		return -ECANCELED;
	}
	w = gw_malloc(sizeof(*w));
	if (!w) {
		*why = "out of memory";
		return -ENOMEM;
	}
	l = container_of(d->line, struct mb_line, sm);
	rc = mbus_line_write(&l->sm, d, w, pt, value, token, why);
	if (rc) {
		gw_free(w);
		return rc;
	}
	/* Sent from the timer, not from inside the caller's callback. */
	uv_timer_start(&l->timer, on_timer, 0, 0);
	return 0;
}

/* $SYS/fieldmq/modbus/...: the counters of struct ad_modbus_stats. */
static void mb_figures(const struct ad_adapter *a, ad_figure_fn emit, void *arg)
{
	struct ad_modbus_stats st;

	ad_modbus_get_stats(a, &st);
	emit(arg, "devices", st.devices);
	emit(arg, "devices/online", st.devices_online);
	emit(arg, "polls", st.polls);
	emit(arg, "requests", st.requests);
	emit(arg, "failures", st.failures);
	emit(arg, "readings", st.readings);
	emit(arg, "overruns", st.overruns);
	emit(arg, "skipped", st.skipped);
	emit(arg, "writes", st.writes);
}

/* /metrics: @dev's requests, errors by kind and latency, as the poller counted them. */
static int mb_device_stats(const struct ad_adapter *a, const struct ad_device *dev,
			   struct ad_device_stats *out)
{
	struct mbus_pdev *d = find_dev((struct mb_adapter *)a, dev);

	if (!d)
		return -ENOENT;
	*out = d->st;
	out->kinds = AD_ERR_BIT(AD_ERR_TIMEOUT) | AD_ERR_BIT(AD_ERR_EXCEPTION) |
		     AD_ERR_BIT(AD_ERR_TRANSPORT);
	return 0;
}

static const struct ad_ops mb_ops = {
	.name = "modbus",
	.start = mb_start,
	.stop = mb_stop,
	.free = mb_free,
	.command = mb_command,
	.figures = mb_figures,
	.device_stats = mb_device_stats,
};

void ad_modbus_get_stats(const struct ad_adapter *a, struct ad_modbus_stats *out)
{
	const struct mb_adapter *ad = (const struct mb_adapter *)a;

	*out = ad->stats;
	out->devices = ad->n_devs;
}

/* Plans device @c into @d, with the memory the poller needs. */
static int dev_init(struct mb_adapter *ad, struct mbus_pdev *d, const struct ad_device *c,
		    uint32_t delay_ms)
{
	const struct ad_point *bad = NULL;
	long need = mbus_pdev_need(c);
	void *mem = gw_malloc((size_t)need), *fit;
	int units;

	if (!mem)
		return -ENOMEM;
	units = mbus_pdev_init(d, c, mem, (size_t)need, delay_ms, &bad);
	if (units < 0) {
		gw_free(mem);
		memset(d, 0, sizeof(*d));
		if (bad)
			gw_log(ad->base.log, LOG_ERR, MOD, "%s:%u: point %s/%s: %s",
			       bad->origin.file ? bad->origin.file : "?", bad->origin.line, c->name,
			       bad->name,
			       units == -EMSGSIZE ? "wider than one read request allows"
						  : "unknown area");
		return units;
	}
	/*
	 * Planned in room for a request per point; kept in room for the
	 * requests planned, with the registers they read after them: one
	 * allocation of ~150 bytes for ten adjacent registers, not ~650.
	 */
	fit = gw_malloc(mbus_pdev_size(d, units));
	if (!fit || mbus_pdev_move(d, fit, mbus_pdev_size(d, units), units)) {
		gw_free(fit);
		gw_free(mem);
		memset(d, 0, sizeof(*d));
		return -ENOMEM;
	}
	gw_free(mem);
	return 0;
}

struct ad_adapter *ad_modbus_new(struct uv_loop_s *loop, const struct ad_map *map,
				 const struct gw_logger *log, const struct ad_sink *sink)
{
	struct mb_adapter *ad = NULL;
	unsigned int i, k, nd = 0, nl = 0, pos = 0;

	ad = gw_calloc(1, sizeof(*ad));
	if (!ad)
		return NULL;
	ad->base.ops = &mb_ops;
	ad->base.loop = loop;
	ad->base.log = log;
	ad->base.map = map;
	ad->base.sink = *sink;
	for (i = 0; i < map->n_devices; i++)
		nd += map->devices[i]->protocol == AD_PROTO_MODBUS;
	ad->devs = gw_calloc(nd ? nd : 1, sizeof(*ad->devs));
	ad->by_line = gw_calloc(nd ? nd : 1, sizeof(*ad->by_line));
	ad->lines = gw_calloc(map->n_buses ? map->n_buses : 1, sizeof(*ad->lines));
	if (!ad->devs || !ad->by_line || !ad->lines)
		goto fail;
	/* Spread first polls over one period so devices do not poll in step. */
	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *c = map->devices[i];
		uint32_t p;

		if (c->protocol != AD_PROTO_MODBUS)
			continue;
		p = c->poll_ms ? c->poll_ms : 1000;
		if (dev_init(ad, &ad->devs[ad->n_devs], c,
			     (uint32_t)((uint64_t)p * ad->n_devs / nd)))
			goto fail;
		ad->n_devs++;
	}
	/* One line per bus that carries at least one modbus device. */
	for (i = 0; i < map->n_buses; i++) {
		struct mb_line *l = &ad->lines[nl];
		unsigned int first = pos;
		uint32_t timeout;

		for (k = 0; k < ad->n_devs; k++)
			if (ad->devs[k].cfg->bus == map->buses[i])
				ad->by_line[pos++] = &ad->devs[k];
		if (pos == first)
			continue;
		l->ad = ad;
		l->cfg = map->buses[i];
		l->mc = mbus_bus(l->cfg);
		l->serial = l->mc->type == AD_BUS_RTU;
		ad->n_lines = ++nl; /* from here on, mb_free frees it */
		if (l->serial) {
			l->w = gw_calloc(1, sizeof(*l->w));
			if (!l->w)
				goto fail;
			if (uv_mutex_init(&l->w->lock)) {
				gw_free(l->w);
				l->w = NULL;
				goto fail;
			}
			if (uv_cond_init(&l->w->cond)) {
				uv_mutex_destroy(&l->w->lock);
				gw_free(l->w);
				l->w = NULL;
				goto fail;
			}
		}
		/* libmodbus times serial requests out itself; the loop's own
		 * requests are timed out by the poller (connect included). */
		timeout = l->serial ? 0 : (l->mc->timeout_ms ? l->mc->timeout_ms : 1000);
		mbus_line_init(&l->sm, &line_ops, l, &ad->stats, &ad->by_line[first], pos - first,
			       timeout, l->mc->type == AD_BUS_TCP ? 0 : l->mc->turnaround_ms);
	}
	if (pos != ad->n_devs)
		goto fail; /* a device whose bus is not in the map */
	return &ad->base;
fail:
	mb_free(&ad->base);
	return NULL;
}
