/*
 * serial_uv.c - the serial adapter's glue: one port state machine
 * (serial_port.c) per bus, fed by libuv. This file builds the ports from the
 * device map, runs each machine's timer, turns its results into readings,
 * statuses and command results for the gateway, and is the adapter (start,
 * stop, commands, figures). The machine decides everything else (framing,
 * parsing, polls, commands, reopen backoff).
 *
 * The line itself - opening a tty or a raw TCP serial server, reading and
 * writing it - is in serial_conn_uv.c; the blocking opens it runs on the
 * thread pool in serial_open.c; the devices' and points' set-up from their
 * keys in serial_build.c. Cross-file internals: serial_uv_int.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "adapters/serial/serial_uv_int.h"

int64_t ad__serial_now_ms(const struct sr_port *p)
{
	return (int64_t)uv_now(p->ad->base.loop);
}

const char *ad__serial_where(const struct sr_port *p)
{
	return p->sb->type == SER_BUS_TCP ? p->sb->host : p->sb->device;
}

void ad__serial_maybe_done(struct sr_adapter *ad)
{
	if (ad->stopping && !ad->pending && ad->done) {
		void (*done)(void *) = ad->done;

		ad->done = NULL;
		done(ad->done_arg);
	}
}

static void on_timer(uv_timer_t *t);

/* Arm the port's timer for the machine's next deadline. */
void ad__serial_rearm(struct sr_port *p)
{
	int64_t d, now;

	if (p->ad->stopping)
		return;
	d = ser_port_deadline(&p->sm);
	if (d < 0) {
		uv_timer_stop(&p->timer);
		return;
	}
	now = ad__serial_now_ms(p);
	uv_timer_start(&p->timer, on_timer, d > now ? (uint64_t)(d - now) : 0, 0);
}

static void m_reading(void *arg, const struct ser_dev *d, const struct ser_point *pt,
		      const struct ad_value *v, enum ad_quality q)
{
	struct sr_port *p = arg;
	struct ad_reading r = {
		.device = d->dev,
		.point = pt->pt,
		.value = *v,
		.quality = q,
		.ts_ms = gw_now_ms(),
	};

	p->ad->base.sink.on_reading(p->ad->base.sink.arg, &r);
}

static void m_status(void *arg, const struct ser_dev *d, bool online)
{
	struct sr_port *p = arg;

	p->ad->base.sink.on_status(p->ad->base.sink.arg, d->dev, online);
}

static void flush_results(struct sr_port *p)
{
	const struct ad_sink *s = &p->ad->base.sink;
	unsigned int i, n = p->n_results;

	p->n_results = 0;
	for (i = 0; i < n; i++) {
		struct sr_result *r = &p->results[i];
		struct ad_cmd_result res = {
			.ok = r->ok,
			.error = r->error,
			.value = r->value,
			.ts_ms = gw_now_ms(),
		};

		s->on_cmd_done(s->arg, r->token, &res);
	}
}

static void on_defer(uv_timer_t *t)
{
	flush_results(t->data);
}

/*
 * Results are delivered from a zero timer, never from inside ->command():
 * the gateway's command path then always sees "accepted, result later".
 */
static void m_cmd_done(void *arg, void *token, bool ok, const char *error, const struct ad_value *v)
{
	struct sr_port *p = arg;
	struct sr_result *r;

	if (p->n_results >= MAX_RESULTS)
		flush_results(p); /* cannot happen: the queue is smaller */
	r = &p->results[p->n_results++];
	r->token = token;
	r->ok = ok;
	r->error = error;
	r->value = *v;
	if (!p->ad->stopping)
		uv_timer_start(&p->defer, on_defer, 0, 0);
}

static const struct ser_port_ops sr_ops = {
	.open = ad__serial_line_open,
	.close = ad__serial_line_close,
	.write = ad__serial_line_write,
	.reading = m_reading,
	.status = m_status,
	.cmd_done = m_cmd_done,
};

static void on_timer(uv_timer_t *t)
{
	struct sr_port *p = t->data;

	if (p->work_err == -EAGAIN && p->sm.state == SER_PORT_OPENING && !p->working) {
		/* uv_queue_work refused: report it as a failed open (retried with backoff). */
		p->work_err = 0;
		ad__serial_open_fail(p, -EAGAIN);
		return;
	}
	ser_port_tick(&p->sm, ad__serial_now_ms(p));
	ad__serial_rearm(p);
}

/* ------------------------------------------------------------- adapter */

static int sr_start(struct ad_adapter *a)
{
	struct sr_adapter *ad = (struct sr_adapter *)a;
	unsigned int i;

	ad->started = true;
	for (i = 0; i < ad->n_ports; i++) {
		struct sr_port *p = &ad->ports[i];

		ser_port_start(&p->sm, ad__serial_now_ms(p));
		if (p->work_err == -EAGAIN)
			uv_timer_start(&p->timer, on_timer, 0, 0);
		else
			ad__serial_rearm(p);
	}
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct sr_adapter *ad = h->data;

	ad->pending--;
	ad__serial_maybe_done(ad);
}

static void sr_stop(struct ad_adapter *a, void (*done)(void *arg), void *arg)
{
	struct sr_adapter *ad = (struct sr_adapter *)a;
	unsigned int i;

	ad->done = done;
	ad->done_arg = arg;
	if (ad->stopping)
		return;
	ad->stopping = true;
	for (i = 0; i < ad->n_ports; i++) {
		struct sr_port *p = &ad->ports[i];

		ser_port_stop(&p->sm, ad__serial_now_ms(p));
		ad__serial_conn_close(p);
		flush_results(p);
		if (ad->started) {
			p->timer.data = ad;
			p->defer.data = ad;
			ad->pending += 2;
			uv_close((uv_handle_t *)&p->timer, on_handle_closed);
			uv_close((uv_handle_t *)&p->defer, on_handle_closed);
		}
	}
	ad__serial_maybe_done(ad);
}

static void port_fini(struct sr_port *p)
{
	unsigned int i;

	for (i = 0; p->drt && i < p->n_devs; i++) {
		if (p->drt[i].has_match)
			regfree(&p->drt[i].match);
		gw_free(p->drt[i].jbuf);
	}
	for (i = 0; p->prt && i < p->n_pts; i++)
		if (p->prt[i].has_resp)
			regfree(&p->prt[i].resp);
	ser_port_fini(&p->sm); /* zeroed (calloc) when the port never got that far */
	gw_free(p->fbuf);
	gw_free(p->res);
	gw_free(p->devs);
	gw_free(p->drt);
	gw_free(p->pts);
	gw_free(p->prt);
}

static void sr_free(struct ad_adapter *a)
{
	struct sr_adapter *ad = (struct sr_adapter *)a;
	unsigned int i;

	if (!ad)
		return;
	for (i = 0; i < ad->n_ports; i++)
		port_fini(&ad->ports[i]);
	gw_free(ad->ports);
	gw_free(ad->refs);
	gw_free(ad);
}

static int sr_command(struct ad_adapter *a, const struct ad_point *pt, const struct ad_value *v,
		      void *token, const char **why)
{
	struct sr_adapter *ad = (struct sr_adapter *)a;
	struct sr_ref *r;
	int rc;

	if (ad->stopping) {
		*why = "stopping";
		return -ECANCELED;
	}
	if (pt->index >= ad->n_refs || !(r = &ad->refs[pt->index])->port || r->p->pt != pt) {
		*why = "not a serial point";
		return -EINVAL;
	}
	rc = ser_port_command(&r->port->sm, r->d, r->p, v, token, why, ad__serial_now_ms(r->port));
	/*
	 * The command may have started a request (its write_response timeout) or,
	 * when the write failed, closed the port (its reopen): both are deadlines
	 * of the machine that the timer must follow.
	 */
	ad__serial_rearm(r->port);
	return rc;
}

/* Figures of @s under @prefix ("" or "bus/NAME/"). */
static void emit_stats(const char *prefix, const struct ad_serial_stats *s, ad_figure_fn emit,
		       void *arg)
{
	static const struct {
		const char *name;
		size_t off;
	} rows[] = {
#define ROW(f) { #f, offsetof(struct ad_serial_stats, f) }
		ROW(bytes),	   ROW(lines),	    ROW(readings),	ROW(unmatched),
		ROW(bad_lines),	   ROW(bad_values), ROW(overlong),	ROW(dropped),
		ROW(polls),	   ROW(timeouts),   ROW(overruns),	ROW(writes),
		ROW(write_errors), ROW(opens),	    ROW(open_failures), ROW(closes),
#undef ROW
	};
	char name[200];
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(rows); i++) {
		snprintf(name, sizeof(name), "%s%s", prefix, rows[i].name);
		emit(arg, name, *(const uint64_t *)((const char *)s + rows[i].off));
	}
}

/* $SYS/fieldmq/serial/...: every port's counts summed, and each bus's under bus/NAME/. */
static void sr_figures(const struct ad_adapter *a, ad_figure_fn emit, void *arg)
{
	struct ad_serial_stats s;
	char prefix[160];
	const char *bus;
	unsigned int i;

	ad_serial_get_stats(a, &s);
	emit_stats("", &s, emit, arg);
	emit(arg, "ports", s.ports);
	emit(arg, "ports/open", s.ports_open);
	for (i = 0; !ad_serial_port_stats(a, i, &bus, &s); i++) {
		snprintf(prefix, sizeof(prefix), "bus/%s/", bus);
		emit_stats(prefix, &s, emit, arg);
		snprintf(prefix, sizeof(prefix), "bus/%s/open", bus);
		emit(arg, prefix, s.ports_open);
	}
}

/* /metrics: @dev's polls or frames, errors by kind and latency, as its port's machine counted them. */
static int sr_device_stats(const struct ad_adapter *a, const struct ad_device *dev,
			   struct ad_device_stats *out)
{
	const struct sr_adapter *ad = (const struct sr_adapter *)a;
	unsigned int i, k;

	for (i = 0; i < ad->n_ports; i++) {
		for (k = 0; k < ad->ports[i].n_devs; k++) {
			if (ad->ports[i].devs[k].dev == dev) {
				ser_dev_stats(&ad->ports[i].devs[k], out);
				return 0;
			}
		}
	}
	return -ENOENT;
}

static const struct ad_ops sr_ad_ops = {
	.name = "serial",
	.start = sr_start,
	.stop = sr_stop,
	.free = sr_free,
	.command = sr_command,
	.figures = sr_figures,
	.device_stats = sr_device_stats,
};

/* ------------------------------------------------------------- building */

static int port_build(struct sr_adapter *ad, struct sr_port *p, const struct ad_map *map)
{
	unsigned int i, di = 0, pi = 0, max_pts = 1;
	int rc;

	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *d = map->devices[i];

		if (d->protocol != AD_PROTO_SERIAL || d->bus != p->bus)
			continue;
		p->n_devs++;
		p->n_pts += d->n_points;
		max_pts = GW_MAX(max_pts, d->n_points);
	}
	p->fbuf = gw_malloc(ser_framer_buf_size(&p->sb->fc));
	p->res = gw_calloc(max_pts, sizeof(*p->res));
	p->devs = gw_calloc(p->n_devs, sizeof(*p->devs));
	p->drt = gw_calloc(p->n_devs, sizeof(*p->drt));
	p->pts = gw_calloc(p->n_pts ? p->n_pts : 1, sizeof(*p->pts));
	p->prt = gw_calloc(p->n_pts ? p->n_pts : 1, sizeof(*p->prt));
	if (!p->fbuf || !p->res || !p->devs || !p->drt || !p->pts || !p->prt)
		return -ENOMEM;
	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *d = map->devices[i];
		unsigned int j;

		if (d->protocol != AD_PROTO_SERIAL || d->bus != p->bus)
			continue;
		rc = ser_dev_build(p->sb, &p->devs[di], &p->drt[di], d, p->pts + pi, p->prt + pi);
		if (rc) {
			gw_log(ad->base.log, LOG_ERR, MOD, "device %s: cannot set up (%s)", d->name,
			       strerror(-rc));
			return rc;
		}
		for (j = 0; j < d->n_points; j++) {
			unsigned int idx = d->points[j]->index;

			if (idx < ad->n_refs) {
				ad->refs[idx].port = p;
				ad->refs[idx].d = &p->devs[di];
				ad->refs[idx].p = &p->pts[pi + j];
				ad->refs[idx].rt = &p->prt[pi + j];
			}
		}
		di++;
		pi += d->n_points;
	}
	ser_port_init(&p->sm, &sr_ops, p, &p->sb->fc, p->fbuf, p->devs, p->n_devs, p->res,
		      p->sb->timeout_ms, p->sb->reopen_min_ms, p->sb->reopen_max_ms);
	uv_timer_init(ad->base.loop, &p->timer);
	uv_timer_init(ad->base.loop, &p->defer);
	p->timer.data = p;
	p->defer.data = p;
	return 0;
}

struct ad_adapter *ad_serial_new(struct uv_loop_s *loop, const struct ad_map *map,
				 const struct gw_logger *log, const struct ad_sink *sink)
{
	struct sr_adapter *ad = gw_calloc(1, sizeof(*ad));
	unsigned int i, j, n = 0;

	if (!ad)
		return NULL;
	ad->base.ops = &sr_ad_ops;
	ad->base.loop = loop;
	ad->base.log = log;
	ad->base.map = map;
	ad->base.sink = *sink;
	ad->n_refs = map->n_points;
	ad->refs = gw_calloc(map->n_points ? map->n_points : 1, sizeof(*ad->refs));
	ad->ports = gw_calloc(map->n_buses ? map->n_buses : 1, sizeof(*ad->ports));
	if (!ad->refs || !ad->ports)
		goto fail;
	for (i = 0; i < map->n_buses; i++) {
		const struct ad_bus *b = map->buses[i];
		bool used = false;

		if (b->protocol != AD_PROTO_SERIAL)
			continue;
		for (j = 0; j < map->n_devices && !used; j++)
			used = map->devices[j]->protocol == AD_PROTO_SERIAL &&
			       map->devices[j]->bus == b;
		if (!used)
			continue;
		ad->ports[n].ad = ad;
		ad->ports[n].bus = b;
		ad->ports[n].sb = ser_bus_of(b);
		ad->ports[n].work_fd = -1;
		ad->n_ports = ++n;
		if (port_build(ad, &ad->ports[n - 1], map))
			goto fail;
	}
	return &ad->base;
fail:
	/* Timers of built ports were initialised but never started: close them first. */
	for (i = 0; i < ad->n_ports; i++) {
		struct sr_port *p = &ad->ports[i];

		if (p->sm.ops) {
			uv_close((uv_handle_t *)&p->timer, NULL);
			uv_close((uv_handle_t *)&p->defer, NULL);
		}
	}
	sr_free(&ad->base);
	return NULL;
}

/* -------------------------------------------------------------- counters */

static void add_stats(const struct sr_port *p, struct ad_serial_stats *o)
{
	const struct ser_port_stats *s = &p->sm.st;
	const struct ser_framer_stats *f = &p->sm.framer.st;

	o->bytes += f->bytes;
	o->lines += s->lines;
	o->readings += s->readings;
	o->unmatched += s->unmatched;
	o->bad_lines += s->bad_lines;
	o->bad_values += s->bad_values;
	o->overlong += f->overlong;
	o->dropped += f->dropped;
	o->polls += s->polls;
	o->timeouts += s->timeouts;
	o->overruns += s->overruns;
	o->writes += s->writes;
	o->write_errors += s->write_errors;
	o->opens += s->opens;
	o->open_failures += s->open_failures;
	o->closes += s->closes;
	o->ports++;
	o->ports_open += p->sm.state == SER_PORT_OPEN;
}

void ad_serial_get_stats(const struct ad_adapter *a, struct ad_serial_stats *out)
{
	const struct sr_adapter *ad = (const struct sr_adapter *)a;
	unsigned int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; ad && i < ad->n_ports; i++)
		add_stats(&ad->ports[i], out);
}

int ad_serial_port_stats(const struct ad_adapter *a, unsigned int i, const char **bus,
			 struct ad_serial_stats *out)
{
	const struct sr_adapter *ad = (const struct sr_adapter *)a;

	if (!ad || i >= ad->n_ports)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	add_stats(&ad->ports[i], out);
	*bus = ad->ports[i].bus->name;
	return 0;
}
