/*
 * mbus_poll.c - the Modbus poller (see mbus_poll.h): schedules, the job
 * queue of a line, the poll cycle of a device (plan, split on exception),
 * readings, health, writes. Pure: no I/O, no clock, no allocation, no
 * logging; time comes with every event and everything leaves through ops.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "mbus_poll.h"

static const uint8_t read_fc[__AD_AREA_MAX] = {
	[AD_AREA_COIL] = MBUS_FC_READ_COILS,
	[AD_AREA_DISCRETE] = MBUS_FC_READ_DISCRETE,
	[AD_AREA_INPUT] = MBUS_FC_READ_INPUT,
	[AD_AREA_HOLDING] = MBUS_FC_READ_HOLDING,
};

const char *mbus_err_str(int err, uint8_t exc)
{
	switch (-err) {
	case 0:
		return NULL;
	case MBUS_EEXC:
		return mbus_exception_str(exc);
	case ETIMEDOUT:
		return "timeout";
	case ECONNREFUSED:
		return "connection refused";
	case ECONNRESET:
		return "connection reset";
	case EBADMSG:
		return "crc error or malformed response";
	case EPROTO:
		return "protocol error";
	case ECANCELED:
		return "adapter stopped";
	default:
		return strerror(-err);
	}
}

/* ------------------------------------------------------------------ memory */

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

long mbus_pdev_need(const struct ad_device *dev)
{
	size_t np = dev->n_points ? dev->n_points : 1;

	return (long)(ALIGN8(np * sizeof(const struct ad_point *)) +
		      ALIGN8(np * sizeof(struct mbus_req)) + ALIGN8(np * sizeof(struct mbus_res)) +
		      ALIGN8(np * sizeof(int)) * 2 + ALIGN8(np));
}

static void *carve(uint8_t **p, size_t *left, size_t n)
{
	void *r = *p;

	n = ALIGN8(n);
	if (n > *left)
		return NULL;
	*p += n;
	*left -= n;
	return r;
}

int mbus_pdev_init(struct mbus_pdev *d, const struct ad_device *dev, void *mem, size_t len,
		   uint32_t first_delay_ms, const struct ad_point **bad)
{
	size_t np = dev->n_points ? dev->n_points : 1;
	uint8_t *p = mem;
	uint32_t total = 0;
	int i;

	memset(d, 0, sizeof(*d));
	d->cfg = dev;
	d->job.kind = MBUS_JOB_POLL;
	gw_list_init(&d->job.node);
	d->order = carve(&p, &len, np * sizeof(*d->order));
	d->reqs = carve(&p, &len, np * sizeof(*d->reqs));
	d->res = carve(&p, &len, np * sizeof(*d->res));
	d->pt_err = carve(&p, &len, np * sizeof(*d->pt_err));
	d->req_err = carve(&p, &len, np * sizeof(*d->req_err));
	d->pt_q = carve(&p, &len, np);
	if (!d->order || !d->reqs || !d->res || !d->pt_err || !d->req_err || !d->pt_q)
		return -ENOBUFS;
	memset(d->pt_q, 0, np);
	memset(d->req_err, 0, np * sizeof(*d->req_err));
	memset(d->res, 0, np * sizeof(*d->res));
	d->n_reqs = mbus_plan(dev, d->order, d->reqs, bad);
	if (d->n_reqs < 0)
		return d->n_reqs;
	for (i = 0; i < d->n_reqs; i++) {
		d->res[i].off = total;
		total += d->reqs[i].count;
	}
	d->period_ms = dev->poll_ms ? dev->poll_ms : 1000;
	d->first_delay_ms = first_delay_ms;
	d->split = -1;
	return (int)(total ? total : 1);
}

/* The per-point arrays hold n_points entries, the per-request ones n_reqs. */
size_t mbus_pdev_size(const struct mbus_pdev *d, int units)
{
	size_t np = d->cfg->n_points ? d->cfg->n_points : 1;
	size_t nr = d->n_reqs > 0 ? (size_t)d->n_reqs : 1;

	return ALIGN8(np * sizeof(*d->order)) + ALIGN8(nr * sizeof(*d->reqs)) +
	       ALIGN8(nr * sizeof(*d->res)) + ALIGN8(np * sizeof(*d->pt_err)) +
	       ALIGN8(nr * sizeof(*d->req_err)) + ALIGN8(np) +
	       ALIGN8((size_t)(units > 0 ? units : 1) * sizeof(*d->data));
}

int mbus_pdev_move(struct mbus_pdev *d, void *mem, size_t len, int units)
{
	size_t np = d->cfg->n_points ? d->cfg->n_points : 1;
	size_t nr = d->n_reqs > 0 ? (size_t)d->n_reqs : 1;
	size_t nu = (size_t)(units > 0 ? units : 1);
	uint8_t *p = mem;

	if (len < mbus_pdev_size(d, units))
		return -ENOBUFS;
	d->order =
		memcpy(carve(&p, &len, np * sizeof(*d->order)), d->order, np * sizeof(*d->order));
	d->reqs = memcpy(carve(&p, &len, nr * sizeof(*d->reqs)), d->reqs, nr * sizeof(*d->reqs));
	d->res = memcpy(carve(&p, &len, nr * sizeof(*d->res)), d->res, nr * sizeof(*d->res));
	d->pt_err = memcpy(carve(&p, &len, np * sizeof(*d->pt_err)), d->pt_err,
			   np * sizeof(*d->pt_err));
	d->req_err = memcpy(carve(&p, &len, nr * sizeof(*d->req_err)), d->req_err,
			    nr * sizeof(*d->req_err));
	d->pt_q = memcpy(carve(&p, &len, np), d->pt_q, np);
	d->data = memset(carve(&p, &len, nu * sizeof(*d->data)), 0, nu * sizeof(*d->data));
	return 0;
}

/* -------------------------------------------------------------- readings */

static void emit(struct mbus_line *l, struct mbus_pdev *d, const struct ad_point *pt,
		 const struct ad_value *v, enum ad_quality q, int64_t ts)
{
	struct ad_reading r = { .device = d->cfg, .point = pt, .quality = q, .ts_ms = ts };

	if (v)
		r.value = *v;
	else
		r.value.type = AD_VAL_NONE;
	l->stats->readings++;
	if (l->ops->on_reading)
		l->ops->on_reading(l->arg, &r);
}

static void note(struct mbus_line *l, const struct mbus_note *n)
{
	if (l->ops->on_note)
		l->ops->on_note(l->arg, n);
}

/* Quality bad once per point at the transition, never on every failed poll. */
static void mark_bad(struct mbus_line *l, struct mbus_pdev *d, unsigned int i, int64_t ts)
{
	if (d->pt_q[i] == 2)
		return;
	d->pt_q[i] = 2;
	emit(l, d, d->order[i], NULL, AD_Q_BAD, ts);
}

/*
 * The cycle of @d is over: count it, turn its results into readings (each
 * request's points with that request's time), update the device's health
 * and announce what changed.
 */
static void cycle_done(struct mbus_line *l, struct mbus_pdev *d, struct mbus_clock now)
{
	const struct ad_device *c = d->cfg;
	struct ad_modbus_stats *st = l->stats;
	int transport_err = 0;
	enum mbus_online prev;
	unsigned int act, k;
	int i;

	d->busy = false;
	if (l->stopped)
		return;
	st->polls++;
	for (i = 0; i < d->n_reqs; i++) {
		const struct mbus_req *rq = &d->reqs[i];
		const struct mbus_res *r = &d->res[i];

		st->requests += r->sent + (r->split ? r->extra : 0);
		st->failures += (r->sent && r->err) + (r->split ? r->extra_failed : 0);
		if (r->err && r->err != -MBUS_EEXC) {
			transport_err = r->err;
			continue;
		}
		if (r->err && d->req_err[i] != r->err - r->exc) {
			struct mbus_note n = { .kind = MBUS_NOTE_EXCEPTION,
					       .dev = c,
					       .err = r->err,
					       .exc = r->exc,
					       .req = rq,
					       .split = r->split };

			note(l, &n);
		}
		d->req_err[i] = r->err - r->exc;
		for (k = rq->first; k < rq->first + rq->n_pts; k++) {
			const struct ad_point *pt = d->order[k];
			unsigned int off = mbus_pt(pt)->address - rq->address;
			int e = r->split ? d->pt_err[k] : r->err;
			uint8_t sbuf[2 * MBUS_MAX_READ_REGS];
			struct ad_value v;

			if (e && e != -MBUS_EEXC) {
				transport_err = e;
				continue;
			}
			if (e || mbus_decode(pt, d->data + r->off + off,
					     r->split ? ad_point_regs(pt) : rq->count - off, sbuf,
					     sizeof(sbuf), &v)) {
				mark_bad(l, d, k, r->ts);
				continue;
			}
			d->pt_q[k] = 1;
			emit(l, d, pt, &v, AD_Q_GOOD, r->ts);
		}
	}
	prev = d->health.state;
	act = mbus_health_update(&d->health, c, transport_err == 0, now.mono_ms);
	if (transport_err)
		for (k = 0; k < c->n_points; k++)
			mark_bad(l, d, k, now.wall_ms);
	if (act & MBUS_ACT_BAD) {
		struct mbus_note n = { .kind = MBUS_NOTE_FAILED, .dev = c, .err = transport_err };

		note(l, &n);
	}
	if (act & MBUS_ACT_ONLINE) {
		struct mbus_note n = { .kind = MBUS_NOTE_ONLINE, .dev = c };

		note(l, &n);
		st->devices_online++;
		if (l->ops->on_status)
			l->ops->on_status(l->arg, c, true);
	}
	if (act & MBUS_ACT_OFFLINE) {
		struct mbus_note n = { .kind = MBUS_NOTE_OFFLINE, .dev = c };

		note(l, &n);
		if (prev == MBUS_ONLINE)
			st->devices_online--;
		if (l->ops->on_status)
			l->ops->on_status(l->arg, c, false);
	}
	if ((act & MBUS_ACT_DEGRADE) && d->health.fails == mbus_dev(c)->degrade_after) {
		struct mbus_note n = { .kind = MBUS_NOTE_DEGRADED,
				       .dev = c,
				       .fails = d->health.fails };

		note(l, &n);
	}
}

/* --------------------------------------------------------------- the cycle */

/* The request of @d's cycle to send next into l->x; false when the cycle is over. */
static bool cycle_next(struct mbus_line *l, struct mbus_pdev *d, struct mbus_clock now)
{
	for (;;) {
		const struct mbus_req *rq;
		struct mbus_res *r;

		if (d->cur >= d->n_reqs)
			return false;
		rq = &d->reqs[d->cur];
		r = &d->res[d->cur];
		if (d->split >= 0) {
			const struct ad_point *pt;

			if ((unsigned int)d->split >= rq->first + rq->n_pts) {
				d->split = -1;
				d->cur++;
				continue;
			}
			pt = d->order[d->split];
			if (d->fatal) {
				d->pt_err[d->split++] = d->fatal;
				continue;
			}
			l->x = (struct mbus_xfer){ .unit = mbus_dev(d->cfg)->unit_id,
						   .fc = read_fc[rq->area],
						   .addr = mbus_pt(pt)->address,
						   .count = (uint16_t)ad_point_regs(pt),
						   .dst = d->data + r->off +
							  (mbus_pt(pt)->address - rq->address) };
			return true;
		}
		r->exc = 0;
		r->split = false;
		r->extra = r->extra_failed = 0;
		r->sent = !d->fatal;
		if (d->fatal) {
			/* The device did not answer: the rest would time out too. */
			r->err = d->fatal;
			r->ts = now.wall_ms;
			d->cur++;
			continue;
		}
		l->x = (struct mbus_xfer){ .unit = mbus_dev(d->cfg)->unit_id,
					   .fc = read_fc[rq->area],
					   .addr = rq->address,
					   .count = rq->count,
					   .dst = d->data + r->off };
		return true;
	}
}

/* The request in flight for @d's cycle ended with @err / @exc. */
static void cycle_step(struct mbus_pdev *d, struct mbus_clock now, int err, uint8_t exc)
{
	const struct mbus_req *rq = &d->reqs[d->cur];
	struct mbus_res *r = &d->res[d->cur];

	if (d->split >= 0) {
		d->pt_err[d->split] = err;
		r->extra++;
		if (err) {
			r->extra_failed++;
			if (err != -MBUS_EEXC)
				d->fatal = err;
		}
		d->split++;
		if ((unsigned int)d->split >= rq->first + rq->n_pts) {
			r->ts = now.wall_ms;
			d->split = -1;
			d->cur++;
		}
		return;
	}
	r->err = err;
	r->exc = exc;
	r->ts = now.wall_ms;
	if (err == -MBUS_EEXC && rq->n_pts > 1) {
		/* A merged read got an exception: usually one address in the
		 * range does not exist (a hole in the device's map). Read its
		 * points one by one so the good ones still come through. */
		r->split = true;
		d->split = (int)rq->first;
		return;
	}
	if (err && err != -MBUS_EEXC)
		d->fatal = err;
	d->cur++;
}

/* ------------------------------------------------------------------ jobs */

static void queue_poll(struct mbus_line *l, struct mbus_pdev *d)
{
	d->busy = true;
	gw_list_add_tail(&l->queue, &d->job.node);
}

static void write_finish(struct mbus_line *l, struct mbus_write *w, struct mbus_clock now)
{
	struct ad_cmd_result res = {
		.ok = w->err == 0,
		.error = mbus_err_str(w->err, w->exc),
		.value = w->value,
		.ts_ms = now.wall_ms,
	};

	l->n_writes--;
	if (w->err != -ECANCELED)
		l->stats->writes++;
	/* Read back soon, so the new value is published. */
	if (w->err == 0 && !l->stopped && !w->dev->busy)
		queue_poll(l, w->dev);
	if (l->ops->on_write_done)
		l->ops->on_write_done(l->arg, w, &res);
}

/*
 * Start the next request if the line is idle: the running job's next one,
 * else the next job's first; jobs with nothing to send end at once. Loops
 * instead of recursing when send fails on the spot.
 */
static void finish(struct mbus_line *l, struct mbus_clock now, int err, uint8_t exc);

static void kick(struct mbus_line *l, struct mbus_clock now)
{
	if (l->kicking)
		return;
	l->kicking = true;
	while (!l->outstanding && now.mono_ms >= l->quiet_until) {
		int rc;

		if (l->cur && l->stopped && l->cur->kind == MBUS_JOB_POLL) {
			/* Stopped between two requests of a cycle: drop the rest. */
			container_of(l->cur, struct mbus_pdev, job)->busy = false;
			l->cur = NULL;
		}
		if (!l->cur) {
			if (l->stopped || gw_list_empty(&l->queue))
				break;
			l->cur = gw_list_entry(l->queue.next, struct mbus_job, node);
			gw_list_del(&l->cur->node);
			gw_list_init(&l->cur->node);
			if (l->cur->kind == MBUS_JOB_POLL) {
				struct mbus_pdev *d = container_of(l->cur, struct mbus_pdev, job);

				d->cur = 0;
				d->split = -1;
				d->fatal = 0;
			}
		}
		if (l->cur->kind == MBUS_JOB_POLL) {
			struct mbus_pdev *d = container_of(l->cur, struct mbus_pdev, job);

			if (!cycle_next(l, d, now)) {
				l->cur = NULL;
				cycle_done(l, d, now);
				continue;
			}
		} else {
			struct mbus_write *w = container_of(l->cur, struct mbus_write, job);

			l->x = (struct mbus_xfer){ .unit = mbus_dev(w->dev->cfg)->unit_id,
						   .fc = w->fc,
						   .addr = mbus_pt(w->pt)->address,
						   .count = (uint16_t)w->n,
						   .vals = w->regs };
		}
		l->outstanding = true;
		l->deadline = l->timeout_ms ? now.mono_ms + l->timeout_ms : INT64_MAX;
		l->sent_at = now.mono_ms;
		rc = l->ops->send(l->arg, &l->x);
		if (rc)
			finish(l, now, rc, 0);
	}
	l->kicking = false;
}

/* The device's request figures: one request ended with @err after @ms. */
static void count_request(struct ad_device_stats *st, int err, int64_t ms)
{
	st->requests++;
	gw_hist_observe_us(&st->latency, ms * 1000);
	if (err == -ETIMEDOUT)
		st->errors[AD_ERR_TIMEOUT]++;
	else if (err == -MBUS_EEXC)
		st->errors[AD_ERR_EXCEPTION]++;
	else if (err)
		st->errors[AD_ERR_TRANSPORT]++;
}

/* The request in flight ended with @err / @exc: step its job. */
static void finish(struct mbus_line *l, struct mbus_clock now, int err, uint8_t exc)
{
	struct mbus_job *j = l->cur;

	l->outstanding = false;
	count_request(j->kind == MBUS_JOB_POLL ? &container_of(j, struct mbus_pdev, job)->st
					       : &container_of(j, struct mbus_write, job)->dev->st,
		      err, now.mono_ms - l->sent_at);
	if (l->turnaround_ms)
		l->quiet_until = now.mono_ms + l->turnaround_ms;
	if (j->kind == MBUS_JOB_POLL) {
		cycle_step(container_of(j, struct mbus_pdev, job), now, err, exc);
	} else {
		struct mbus_write *w = container_of(j, struct mbus_write, job);

		w->err = err;
		w->exc = err == -MBUS_EEXC ? exc : 0;
		l->cur = NULL;
		write_finish(l, w, now);
	}
}

int mbus_line_result(struct mbus_line *l, struct mbus_clock now, int err, uint8_t exc)
{
	if (!l->outstanding || !l->cur)
		return -ESTALE;
	finish(l, now, err, exc);
	kick(l, now);
	return 0;
}

int mbus_line_error(struct mbus_line *l, struct mbus_clock now, int err)
{
	return mbus_line_result(l, now, err, 0);
}

int mbus_line_response(struct mbus_line *l, struct mbus_clock now, const struct mbus_frame *f)
{
	int rc;

	if (!l->outstanding)
		return -ESTALE;
	if (f->unit != l->x.unit)
		rc = -EPROTO;
	else if (f->exception)
		return mbus_line_result(l, now, -MBUS_EEXC, f->exception);
	else
		rc = mbus_rsp_parse(f, l->x.fc, l->x.addr, l->x.count, l->x.vals ? NULL : l->x.dst);
	/* An answer that does not fit the question: the stream is out of
	 * step (or the device confused); start the next request afresh. */
	if (rc && l->ops->reset)
		l->ops->reset(l->arg);
	return mbus_line_result(l, now, rc, 0);
}

/* -------------------------------------------------------------- schedule */

void mbus_line_init(struct mbus_line *l, const struct mbus_poll_ops *ops, void *arg,
		    struct ad_modbus_stats *stats, struct mbus_pdev **devs, unsigned int n,
		    uint32_t timeout_ms, uint32_t turnaround_ms)
{
	unsigned int i;

	memset(l, 0, sizeof(*l));
	l->ops = ops;
	l->arg = arg;
	l->stats = stats;
	l->devs = devs;
	l->n_devs = n;
	l->timeout_ms = timeout_ms;
	l->turnaround_ms = turnaround_ms;
	gw_list_init(&l->queue);
	for (i = 0; i < n; i++)
		devs[i]->line = l;
}

void mbus_line_start(struct mbus_line *l, struct mbus_clock now)
{
	unsigned int i;

	l->started = true;
	for (i = 0; i < l->n_devs; i++)
		l->devs[i]->next_due = now.mono_ms + l->devs[i]->first_delay_ms;
}

int64_t mbus_line_due(struct mbus_line *l, struct mbus_clock now)
{
	int64_t next = INT64_MAX;
	unsigned int i;

	if (!l->started)
		return next;
	if (l->outstanding && now.mono_ms >= l->deadline) {
		if (l->ops->reset)
			l->ops->reset(l->arg);
		finish(l, now, -ETIMEDOUT, 0);
	}
	for (i = 0; i < l->n_devs && !l->stopped; i++) {
		struct mbus_pdev *d = l->devs[i];

		if (now.mono_ms >= d->next_due) {
			d->next_due += d->period_ms;
			/* Late by a whole period (a stalled loop): skip, do not burst. */
			if (d->next_due <= now.mono_ms)
				d->next_due = now.mono_ms + d->period_ms;
			if (d->n_reqs == 0)
				;
			else if (d->busy)
				l->stats->overruns++;
			else if (mbus_health_skip(&d->health, now.mono_ms))
				l->stats->skipped++;
			else
				queue_poll(l, d);
		}
		next = GW_MIN(next, d->next_due);
	}
	kick(l, now);
	if (l->outstanding)
		next = GW_MIN(next, l->deadline);
	else if (l->cur || !gw_list_empty(&l->queue))
		next = GW_MIN(next, l->quiet_until);
	return next;
}

void mbus_line_sent(struct mbus_line *l, struct mbus_clock now)
{
	if (l->outstanding && l->timeout_ms)
		l->deadline = now.mono_ms + l->timeout_ms;
}

/* ---------------------------------------------------------------- writes */

int mbus_line_write(struct mbus_line *l, struct mbus_pdev *d, struct mbus_write *w,
		    const struct ad_point *pt, const struct ad_value *v, void *token,
		    const char **why)
{
	int rc;

	if (l->stopped || !l->started) {
		*why = "adapter not running";
		return -ECANCELED;
	}
	memset(w, 0, sizeof(*w));
	rc = mbus_encode(pt, v, w->regs, GW_ARRAY_SIZE(w->regs), &w->n, why);
	if (rc)
		return rc;
	if (l->n_writes >= MBUS_MAX_QUEUED_WRITES) {
		*why = "too many commands queued";
		return -ENOBUFS;
	}
	w->job.kind = MBUS_JOB_WRITE;
	w->dev = d;
	w->pt = pt;
	w->token = token;
	w->fc = (uint8_t)mbus_write_fc(pt, w->n, mbus_dev(d->cfg)->write_multiple_always);
	w->value = *v;
	if (v->type == AD_VAL_STRING) {
		/* mbus_encode bounded the length by the point's width. */
		size_t n = GW_MIN(v->s.len, sizeof(w->str));

		memcpy(w->str, v->s.p, n);
		w->value.s.p = w->str;
		w->value.s.len = n;
	}
	l->n_writes++;
	gw_list_add_tail(&l->queue, &w->job.node);
	return 0;
}

bool mbus_line_stop(struct mbus_line *l, struct mbus_clock now)
{
	struct gw_list *pos, *tmp;

	l->stopped = true;
	gw_list_for_each_safe (pos, tmp, &l->queue) {
		struct mbus_job *j = gw_list_entry(pos, struct mbus_job, node);

		gw_list_del(pos);
		gw_list_init(pos);
		if (j->kind == MBUS_JOB_WRITE) {
			struct mbus_write *w = container_of(j, struct mbus_write, job);

			w->err = -ECANCELED;
			write_finish(l, w, now);
		} else {
			container_of(j, struct mbus_pdev, job)->busy = false;
		}
	}
	return l->outstanding;
}
