/*
 * serial_port.c - one serial line (or raw TCP serial server) as a state
 * machine: open with backoff and reopen when it goes away (hotplug), frames
 * to the devices sharing the line, polls with one request in flight,
 * commands and timeouts. Staleness is the gateway's (device->stale_ms, set
 * by the serial device check from stale_after or poll). Sans-I/O: the glue performs the I/O the
 * ops ask for and reports back with the time; tests drive it with a fake
 * clock.
 */
#include <errno.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

void ser_port_init(struct ser_port *p, const struct ser_port_ops *ops, void *arg,
		   const struct ser_framer_conf *fc, uint8_t *framer_buf, struct ser_dev *devs,
		   unsigned int n_devs, struct ser_result *res, uint32_t timeout_ms,
		   uint32_t reopen_min_ms, uint32_t reopen_max_ms)
{
	memset(p, 0, sizeof(*p));
	p->ops = ops;
	p->arg = arg;
	ser_framer_init(&p->framer, fc, framer_buf);
	p->devs = devs;
	p->n_devs = n_devs;
	p->res = res;
	p->timeout_ms = timeout_ms;
	p->reopen_min_ms = reopen_min_ms ? reopen_min_ms : 1;
	p->reopen_max_ms = GW_MAX(reopen_max_ms, p->reopen_min_ms);
	p->backoff_ms = p->reopen_min_ms;
	p->state = SER_PORT_CLOSED;
	gw_arena_init(&p->json_arena, SER_JSON_ARENA_WARM, SER_JSON_ARENA_CAP);
}

void ser_port_fini(struct ser_port *p)
{
	gw_arena_fini(&p->json_arena);
}

static void set_status(struct ser_port *p, struct ser_dev *d, bool online)
{
	if (d->status_known && d->online == online)
		return;
	d->status_known = true;
	d->online = online;
	p->ops->status(p->arg, d, online);
}

static void report(struct ser_port *p, struct ser_dev *d, struct ser_point *pt,
		   const struct ad_value *v, enum ad_quality q)
{
	p->st.readings++;
	p->ops->reading(p->arg, d, pt, v, q);
}

/* The port failed (open, write, gone): a transport error of every device on it. */
static void count_port_trouble(struct ser_port *p)
{
	unsigned int i;

	for (i = 0; i < p->n_devs; i++)
		p->devs[i].st.errors[AD_ERR_TRANSPORT]++;
}

/* Frames cut at max_frame while feeding: the asked device's, or those of devices that talk. */
static void count_overruns(struct ser_port *p, struct ser_dev *asked, uint64_t n)
{
	unsigned int i;

	if (asked) {
		asked->st.errors[AD_ERR_OVERRUN] += n;
		return;
	}
	for (i = 0; i < p->n_devs; i++)
		if (!p->devs[i].poll_cmd)
			p->devs[i].st.errors[AD_ERR_OVERRUN] += n;
}

/* A frame @d took (@rc from ser_parse() > 0): any field that did not parse is a parse error. */
static void count_frame(const struct ser_port *p, struct ser_dev *d, int rc)
{
	unsigned int i;

	if (rc != 1)
		return;
	for (i = 0; i < d->n_points; i++) {
		if (p->res[i].found == SER_BAD) {
			d->st.errors[AD_ERR_PARSE]++;
			return;
		}
	}
}

void ser_dev_stats(const struct ser_dev *d, struct ad_device_stats *out)
{
	*out = d->st;
	out->kinds = AD_ERR_BIT(AD_ERR_TIMEOUT) | AD_ERR_BIT(AD_ERR_TRANSPORT) |
		     AD_ERR_BIT(AD_ERR_PARSE) | AD_ERR_BIT(AD_ERR_OVERRUN);
}

/* A point's value did not parse (or its device did not answer): say so once. */
static void point_bad(struct ser_port *p, struct ser_dev *d, struct ser_point *pt)
{
	static const struct ad_value none = { .type = AD_VAL_NONE };

	if (pt->bad)
		return;
	pt->bad = true;
	report(p, d, pt, &none, AD_Q_BAD);
}

static struct ser_req *head(struct ser_port *p)
{
	return p->q_len ? &p->q[p->q_head] : NULL;
}

static void pop(struct ser_port *p)
{
	struct ser_req *r = head(p);

	if (!r)
		return;
	if (r->kind == SER_REQ_POLL)
		r->d->poll_queued = false;
	p->q_head = (p->q_head + 1) % SER_MAX_QUEUE;
	p->q_len--;
	p->busy = false;
}

static struct ser_req *push(struct ser_port *p)
{
	struct ser_req *r;

	if (p->q_len >= SER_MAX_QUEUE)
		return NULL;
	r = &p->q[(p->q_head + p->q_len) % SER_MAX_QUEUE];
	p->q_len++;
	memset(r, 0, sizeof(*r) - sizeof(r->data));
	return r;
}

static void cmd_done(struct ser_port *p, struct ser_req *r, bool ok, const char *error)
{
	p->ops->cmd_done(p->arg, r->token, ok, error, &r->value);
}

/* Everything waiting fails with @why (the port closed or the adapter stops). */
static void fail_queue(struct ser_port *p, const char *why)
{
	struct ser_req *r;

	while ((r = head(p))) {
		if (r->kind == SER_REQ_WRITE)
			cmd_done(p, r, false, why);
		pop(p);
	}
}

static void close_port(struct ser_port *p, int64_t now, int err)
{
	struct ser_req *r = p->busy ? head(p) : NULL;
	unsigned int i;

	count_port_trouble(p);
	if (r && r->kind == SER_REQ_POLL)
		r->d->st.requests++; /* a poll out: it ends unanswered */
	p->last_error = err;
	p->state = SER_PORT_CLOSED;
	p->retry_at = now + p->backoff_ms;
	p->ops->close(p->arg);
	ser_framer_reset(&p->framer);
	fail_queue(p, "port closed");
	for (i = 0; i < p->n_devs; i++)
		set_status(p, &p->devs[i], false);
}

/* Send what heads the queue, if the line is free. */
static void kick(struct ser_port *p)
{
	struct ser_req *r;
	int rc;

	while (!p->busy && p->state == SER_PORT_OPEN && (r = head(p))) {
		rc = p->ops->write(p->arg, r->data, r->len);
		if (rc) {
			p->st.write_errors++;
			if (r->kind == SER_REQ_WRITE)
				cmd_done(p, r, false, "write to the port failed");
			else
				r->d->st.requests++; /* its transport error: close_port() */
			pop(p);
			p->st.closes++;
			close_port(p, p->now, rc);
			return;
		}
		if (r->kind == SER_REQ_POLL) {
			p->st.polls++;
		} else {
			p->st.writes++;
			if (!r->pt->write_response) {
				cmd_done(p, r, true, NULL);
				pop(p);
				continue;
			}
		}
		p->busy = true;
		p->req_deadline = p->now + p->timeout_ms;
		p->sent_at = p->now;
	}
}

static void deliver(struct ser_port *p, struct ser_dev *d, const struct ser_result *res)
{
	unsigned int i;

	d->last_seen = p->now;
	for (i = 0; i < d->n_points; i++) {
		struct ser_point *pt = &d->points[i];

		switch (res[i].found) {
		case SER_OK:
			pt->bad = false;
			pt->has_good = true;
			report(p, d, pt, &res[i].value, AD_Q_GOOD);
			break;
		case SER_BAD:
			p->st.bad_values++;
			point_bad(p, d, pt);
			break;
		default:
			break;
		}
	}
}

/* The line was this device's: count it as an answer if it was asked. */
static void answered(struct ser_port *p, struct ser_dev *d)
{
	d->timeouts = 0;
	set_status(p, d, true);
}

static void on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct ser_port *p = arg;
	struct ser_req *r = p->busy ? head(p) : NULL;
	struct ser_dev *asked = r && r->kind == SER_REQ_POLL ? r->d : NULL;
	struct ser_line l;
	bool claimed = false, bad = false;
	unsigned int i;
	int rc;

	p->st.lines++;
	ser_line_init(&l, frame, len, &p->json_arena);
	if (r && r->kind == SER_REQ_WRITE && r->pt->write_response) {
		regmatch_t m[1];

		if (!regexec(r->pt->write_response, (const char *)frame, 0, m, 0)) {
			claimed = true;
			cmd_done(p, r, true, NULL);
			pop(p);
		}
	}
	if (asked) {
		rc = ser_parse(asked, &l, p->res);
		if (rc > 0) {
			claimed = true;
			asked->st.requests++;
			gw_hist_observe_us(&asked->st.latency, (p->now - p->sent_at) * 1000);
			count_frame(p, asked, rc);
			answered(p, asked);
			if (rc == 1)
				deliver(p, asked, p->res);
			pop(p);
		}
		bad |= rc == -EBADMSG;
	}
	for (i = 0; i < p->n_devs; i++) {
		struct ser_dev *d = &p->devs[i];

		/* A device that is asked takes lines only while its question is out. */
		if (d == asked || d->poll_cmd)
			continue;
		rc = ser_parse(d, &l, p->res);
		if (rc > 0 || rc == -EBADMSG)
			d->st.requests++;
		if (rc == -EBADMSG)
			d->st.errors[AD_ERR_PARSE]++; /* its format, but unreadable */
		count_frame(p, d, rc);
		if (rc == 1)
			deliver(p, d, p->res);
		claimed |= rc > 0;
		bad |= rc == -EBADMSG;
	}
	if (!claimed && asked)
		asked->st.errors[AD_ERR_PARSE]++; /* no match while its question was out */
	if (!claimed) {
		if (bad)
			p->st.bad_lines++;
		else
			p->st.unmatched++;
	}
	ser_line_fini(&l);
	kick(p);
}

void ser_port_start(struct ser_port *p, int64_t now)
{
	p->now = now;
	if (p->state == SER_PORT_STOPPED || p->state == SER_PORT_OPENING)
		return;
	p->state = SER_PORT_OPENING;
	p->ops->open(p->arg);
}

void ser_port_opened(struct ser_port *p, int64_t now, int err)
{
	unsigned int i;

	p->now = now;
	if (p->state != SER_PORT_OPENING)
		return;
	if (err) {
		p->st.open_failures++;
		count_port_trouble(p);
		p->last_error = err;
		p->state = SER_PORT_CLOSED;
		p->retry_at = now + p->backoff_ms;
		p->backoff_ms = (uint32_t)GW_MIN((uint64_t)p->backoff_ms * 2, p->reopen_max_ms);
		for (i = 0; i < p->n_devs; i++)
			set_status(p, &p->devs[i], false);
		return;
	}
	p->st.opens++;
	p->last_error = 0;
	p->state = SER_PORT_OPEN;
	p->backoff_ms = p->reopen_min_ms;
	ser_framer_reset(&p->framer);
	for (i = 0; i < p->n_devs; i++) {
		struct ser_dev *d = &p->devs[i];

		d->timeouts = 0;
		if (d->poll_cmd)
			d->next_poll = now; /* ask at once; online when it answers */
		else
			set_status(p, d, true);
	}
}

/* The device whose poll is out, or NULL. */
static struct ser_dev *asked_dev(struct ser_port *p)
{
	struct ser_req *r = p->busy ? head(p) : NULL;

	return r && r->kind == SER_REQ_POLL ? r->d : NULL;
}

void ser_port_data(struct ser_port *p, const uint8_t *data, size_t n, int64_t now)
{
	uint64_t overlong = p->framer.st.overlong;
	struct ser_dev *asked;

	p->now = now;
	if (p->state != SER_PORT_OPEN)
		return;
	asked = asked_dev(p); /* bytes of an overlong frame came while it was asked */
	ser_framer_feed(&p->framer, data, n, now, on_frame, p);
	if (p->framer.st.overlong != overlong)
		count_overruns(p, asked, p->framer.st.overlong - overlong);
}

void ser_port_failed(struct ser_port *p, int64_t now, int err)
{
	p->now = now;
	if (p->state != SER_PORT_OPEN)
		return;
	p->st.closes++;
	close_port(p, now, err);
}

static void timeout(struct ser_port *p)
{
	struct ser_req *r = head(p);
	unsigned int i;

	p->st.timeouts++;
	if (r->kind == SER_REQ_WRITE) {
		cmd_done(p, r, false, "timeout: no write_response from the device");
	} else {
		struct ser_dev *d = r->d;

		d->st.requests++;
		d->st.errors[AD_ERR_TIMEOUT]++;
		if (++d->timeouts >= SER_OFFLINE_AFTER)
			set_status(p, d, false);
		for (i = 0; i < d->n_points; i++)
			point_bad(p, d, &d->points[i]);
	}
	pop(p);
}

/* Devices due are queued in map order; each has at most one poll queued, so none starves. */
static void due_polls(struct ser_port *p)
{
	unsigned int i;

	for (i = 0; i < p->n_devs; i++) {
		struct ser_dev *d = &p->devs[i];
		struct ser_req *r;

		if (!d->poll_cmd || !d->poll_ms || p->now < d->next_poll)
			continue;
		d->next_poll += d->poll_ms;
		if (d->next_poll <= p->now)
			d->next_poll = p->now + d->poll_ms; /* do not make up for missed polls */
		if (d->poll_queued || !(r = push(p))) {
			p->st.overruns++;
			continue;
		}
		r->kind = SER_REQ_POLL;
		r->d = d;
		memcpy(r->data, d->poll_cmd, d->poll_cmd_len);
		r->len = d->poll_cmd_len;
		d->poll_queued = true;
	}
}

void ser_port_tick(struct ser_port *p, int64_t now)
{
	p->now = now;
	if (p->state == SER_PORT_STOPPED)
		return;
	if (p->state == SER_PORT_CLOSED && now >= p->retry_at) {
		ser_port_start(p, now);
		p->now = now;
	}
	if (p->state == SER_PORT_OPEN) {
		ser_framer_tick(&p->framer, now, on_frame, p);
		if (p->busy && now >= p->req_deadline)
			timeout(p);
		due_polls(p);
	}
	kick(p);
}

int64_t ser_port_deadline(const struct ser_port *p)
{
	int64_t t = -1, x;
	unsigned int i;

#define EARLIEST(v)                 \
	do {                        \
		x = (v);            \
		if (t < 0 || x < t) \
			t = x;      \
	} while (0)
	if (p->state == SER_PORT_STOPPED)
		return -1;
	if (p->state == SER_PORT_CLOSED)
		EARLIEST(p->retry_at);
	if (p->state == SER_PORT_OPEN) {
		if (ser_framer_deadline(&p->framer) >= 0)
			EARLIEST(ser_framer_deadline(&p->framer));
		if (p->busy)
			EARLIEST(p->req_deadline);
	}
	for (i = 0; i < p->n_devs; i++) {
		const struct ser_dev *d = &p->devs[i];

		if (p->state == SER_PORT_OPEN && d->poll_cmd && d->poll_ms)
			EARLIEST(d->next_poll);
	}
#undef EARLIEST
	return t;
}

int ser_port_command(struct ser_port *p, struct ser_dev *d, struct ser_point *pt,
		     const struct ad_value *v, void *token, const char **why, int64_t now)
{
	struct ser_req *r;
	uint8_t buf[SER_MAX_CMD];
	int n;

	p->now = now;
	if (!pt->writable || !pt->write_fmt) {
		*why = "point has no write_command";
		return -EACCES;
	}
	if (p->state != SER_PORT_OPEN) {
		p->st.cmd_refused++;
		*why = "port is not open";
		return -ENOTCONN;
	}
	n = ser_fmt_render(pt->write_fmt, v, pt->scale, pt->offset, buf, sizeof(buf), why);
	if (n < 0)
		return n;
	r = push(p);
	if (!r) {
		p->st.cmd_refused++;
		*why = "command queue of the port is full";
		return -EBUSY;
	}
	r->kind = SER_REQ_WRITE;
	r->d = d;
	r->pt = pt;
	r->token = token;
	r->value = *v;
	if (v->type == AD_VAL_STRING)
		r->value.s.len = 0; /* the gateway's buffer does not outlive this call */
	memcpy(r->data, buf, (size_t)n);
	r->len = (size_t)n;
	kick(p);
	return 0;
}

void ser_port_stop(struct ser_port *p, int64_t now)
{
	bool was_open = p->state == SER_PORT_OPEN || p->state == SER_PORT_OPENING;

	p->now = now;
	if (p->state == SER_PORT_STOPPED)
		return;
	p->state = SER_PORT_STOPPED;
	fail_queue(p, "stopped");
	if (was_open)
		p->ops->close(p->arg);
}
