/*
 * modbus_uv.c - the Modbus adapter's glue: the sans-I/O poller (mbus_poll.c)
 * of every bus driven by the loop, with the transport behind it.
 *
 * Each bus carrying a modbus device is a line (struct mb_line, in
 * modbus_uv_int.h): a poll timer and one transport.
 *  - Modbus TCP and RTU-over-TCP live on the loop: a uv_tcp_t, requests
 *    framed by mbus_xfer_encode (MBAP or RTU), answers decoded by
 *    mbus_mbap_decode / mbus_rtu_decode_rsp. No thread. (modbus_net_uv.c)
 *  - A serial RTU line keeps libmodbus (its RS-485 and timing handling) on a
 *    worker thread of its own: the loop hands it one request at a time and
 *    the result comes back through the adapter's uv_async.
 *    (modbus_worker_uv.c)
 * This file is the adapter (start, stop, commands, figures), the poller's
 * ops and its timer.
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

#include "modbus_uv_int.h"

struct mbus_clock ad__modbus_clock_now(void)
{
	return (struct mbus_clock){ .mono_ms = gw_mono_ms(), .wall_ms = gw_now_ms() };
}

static void on_timer(uv_timer_t *t);

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
		rc = ad__modbus_net_send(l, x);
		if (rc)
			ad__modbus_net_close(l);
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
		rc = ad__modbus_net_frame(l, x, &aw);
		if (rc)
			return rc;
	}
	l->send_pending = true;
	if (l->net == NET_IDLE)
		ad__modbus_net_connect(l);
	return 0;
}

static void op_reset(void *arg)
{
	struct mb_line *l = arg;

	l->send_pending = false;
	if (!l->serial)
		ad__modbus_net_close(l);
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
void ad__modbus_pump(struct mb_line *l)
{
	struct mbus_clock now;
	int64_t next;

	if (l->ad->stopping)
		return;
	now = ad__modbus_clock_now();
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
	ad__modbus_pump(container_of(t, struct mb_line, timer));
}

/* ================================================================ the ops */

static void on_closed(uv_handle_t *h)
{
	struct mb_adapter *ad = h->data;

	ad->closing--;
	if (h == (uv_handle_t *)&ad->async)
		ad->async_closed = true;
	ad__modbus_maybe_done(ad);
}

/* Once the workers are joined, close the async; once every handle is closed, done. */
void ad__modbus_maybe_done(struct mb_adapter *ad)
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
		rc = uv_thread_create(&l->w->thread, ad__modbus_worker_main, l);
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
	rc = uv_async_init(a->loop, &ad->async, ad__modbus_on_async);
	if (rc) {
		abort_workers(ad);
		return rc;
	}
	ad->async_inited = true;
	ad->started = true;
	now = ad__modbus_clock_now();
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
	struct mbus_clock now = ad__modbus_clock_now();
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
			ad__modbus_net_close(l);
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
	ad__modbus_maybe_done(ad);
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
