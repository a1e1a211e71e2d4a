/*
 * modbus_uv.c - the Modbus adapter's glue: poll timers on the loop, one
 * worker thread per bus running the blocking requests (libmodbus for TCP and
 * RTU, our own framing for RTU-over-TCP), results back through a uv_async.
 *
 * Threads: the loop thread owns devices, timers, health and every sink call.
 * A worker owns its transport (modbus_t or socket) and touches a job only
 * between taking it from its bus queue and putting it on the adapter's done
 * list. Jobs cross threads under a mutex; nothing else is shared.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <modbus.h>
#include <uv.h>

#include "mbus_int.h"
#include "modbus_adapter.h"

#define MOD "modbus"
/* Commands waiting per bus before new ones are refused. */
#define MAX_QUEUED_WRITES 64
/* Our "exception" error: the code is in the result's exc field. */
#define EEXC EREMOTEIO

enum job_kind {
	JOB_POLL,
	JOB_WRITE,
};

/* One request's outcome in a poll job. */
struct mb_res {
	int err; /* 0, -EEXC (exc set) or a transport -errno */
	uint8_t exc;
	bool sent;  /* false when skipped after an earlier transport failure */
	bool split; /* an exception on a merged read: its points were read one by one */
	uint16_t extra, extra_failed; /* requests of the split */
	int64_t ts;
	uint32_t off; /* into the job's data */
};

struct mb_dev;

struct mb_job {
	struct gw_list node;
	enum job_kind kind;
	struct mb_dev *dev;
	/* poll: results per request of dev->reqs, data per unit read */
	struct mb_res *res;
	uint16_t *data;
	int *pt_err; /* per point of dev->order, for split requests */
	/* write */
	const struct ad_point *pt;
	uint8_t fc;
	uint16_t regs[MBUS_MAX_WRITE_REGS];
	size_t n;
	void *token;
	struct ad_value value; /* strings point into str */
	uint8_t str[256];
	int err;
	uint8_t exc;
	int64_t ts;
};

struct mb_bus {
	struct mb_adapter *ad;
	const struct ad_bus *cfg;
	uv_thread_t thread;
	bool thread_started;
	bool joined;
	uv_mutex_t lock; /* queue, quit, n_writes */
	uv_cond_t cond;
	struct gw_list queue;
	unsigned int n_writes;
	bool quit;
	bool abort;  /* with quit: exit without notifying the loop (failed start) */
	bool exited; /* under the adapter's done_lock */
	/* Worker only. */
	modbus_t *ctx;
	bool connected;
	int fd;
	int64_t last_io; /* monotonic ms of the last frame, for the turnaround */
	int last_err;	 /* last connect error logged, to log once */
	uint8_t bits[MBUS_MAX_READ_BITS];
};

struct mb_dev {
	struct mb_adapter *ad;
	const struct ad_device *cfg;
	struct mb_bus *bus;
	uv_timer_t timer;
	unsigned int delay_ms; /* staggered start */
	struct mbus_req *reqs;
	int n_reqs;
	const struct ad_point **order;
	uint8_t *pt_q; /* per point of order: 0 never, 1 good, 2 bad */
	int *req_err;  /* per request: the last error logged */
	struct mbus_health health;
	struct mb_job poll;
	bool busy;
};

struct mb_adapter {
	struct ad_adapter base;
	uv_async_t async;
	uv_mutex_t done_lock;
	struct gw_list done;
	struct mb_bus *buses;
	unsigned int n_buses;
	struct mb_dev *devs;
	unsigned int n_devs;
	unsigned int n_inited; /* timers initialised */
	bool async_inited;
	bool stopping;
	unsigned int closing; /* handles whose close callback is pending */
	void (*stop_done)(void *arg);
	void *stop_arg;
	struct ad_modbus_stats stats;
};

static int64_t mono_ms(void)
{
	return gw_mono_ms();
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static const char *err_text(int err, uint8_t exc)
{
	switch (-err) {
	case 0:
		return NULL;
	case EEXC:
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

/* ============================================================== worker side */

static bool is_rtu_line(const struct mb_bus *b)
{
	return mbus_bus(b->cfg)->type == AD_BUS_RTU ||
	       mbus_bus(b->cfg)->type == AD_BUS_RTU_OVER_TCP;
}

static void transport_close(struct mb_bus *b)
{
	if (b->ctx) {
		if (b->connected)
			modbus_close(b->ctx);
		modbus_free(b->ctx);
		b->ctx = NULL;
	}
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	b->connected = false;
}

/* RTU-over-TCP: a plain TCP connection, connected with the bus timeout. */
static int rot_connect(struct mb_bus *b)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	char port[8];
	int fd = -1, rc;

	snprintf(port, sizeof(port), "%u", mbus_bus(b->cfg)->port);
	rc = getaddrinfo(mbus_bus(b->cfg)->host, port, &hints, &res);
	if (rc)
		return -EHOSTUNREACH;
	rc = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
			rc = -errno;
			goto next;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)mbus_bus(b->cfg)->timeout_ms) <= 0) {
			rc = -ETIMEDOUT;
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
			rc = -(soerr ? soerr : errno);
			goto next;
		}
		b->fd = fd;
		b->connected = true;
		rc = 0;
		break;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return rc;
}

/* One RTU-over-TCP transaction: frame @pdu, send, read one response frame. */
static int rot_xfer(struct mb_bus *b, uint8_t unit, const uint8_t *pdu, size_t pdu_len,
		    uint8_t *buf, size_t cap, struct mbus_frame *f)
{
	uint8_t adu[MBUS_RTU_MAX_ADU];
	struct gw_writer w;
	size_t have = 0, sent = 0;
	int64_t deadline;
	ssize_t k;
	int rc;

	if (!b->connected && (rc = rot_connect(b)))
		return rc;
	/* Stale bytes of a late answer would be taken for this one's. */
	while ((k = recv(b->fd, buf, cap, MSG_DONTWAIT)) > 0)
		;
	if (k == 0)
		return -ECONNRESET;
	gw_writer_init(&w, adu, sizeof(adu));
	rc = mbus_rtu_encode(&w, unit, pdu, pdu_len);
	if (rc)
		return rc;
	deadline = mono_ms() + mbus_bus(b->cfg)->timeout_ms;
	while (sent < w.len) {
		k = send(b->fd, adu + sent, w.len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (k > 0)
			sent += (size_t)k;
		else {
			struct pollfd pfd = { .fd = b->fd, .events = POLLOUT };
			int64_t left = deadline - mono_ms();

			if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
				return -ETIMEDOUT;
		}
	}
	for (;;) {
		struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
		int64_t left = deadline - mono_ms();

		rc = mbus_rtu_decode_rsp(buf, have, f);
		if (rc > 0)
			return f->unit == unit ? 0 : -EPROTO;
		if (rc < 0)
			return rc;
		if (have == cap)
			return -EBADMSG;
		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc <= 0)
			continue;
		k = recv(b->fd, buf + have, cap - have, 0);
		if (k == 0)
			return -ECONNRESET;
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (k > 0)
			have += (size_t)k;
	}
}

static int lm_open(struct mb_bus *b)
{
	const struct ad_bus *c = b->cfg;
	const struct mbus_bus *mc = mbus_bus(c);
	char port[8];

	if (b->connected)
		return 0;
	if (!b->ctx) {
		if (mc->type == AD_BUS_TCP) {
			snprintf(port, sizeof(port), "%u", mc->port);
			b->ctx = modbus_new_tcp_pi(mc->host, port);
		} else {
			b->ctx = modbus_new_rtu(mc->device, (int)mc->baud,
						mc->parity ? mc->parity : 'N',
						mc->data_bits ? mc->data_bits : 8,
						mc->stop_bits ? mc->stop_bits : 1);
		}
		if (!b->ctx)
			return -errno ? -errno : -ENOMEM;
		modbus_set_response_timeout(b->ctx, mc->timeout_ms / 1000,
					    (mc->timeout_ms % 1000) * 1000);
	}
	if (modbus_connect(b->ctx) == -1)
		return -errno;
	if (mc->type == AD_BUS_RTU && mc->rs485 &&
	    modbus_rtu_set_serial_mode(b->ctx, MODBUS_RTU_RS485) == -1)
		gw_log(b->ad->base.log, LOG_WARNING, MOD,
		       "bus %s: cannot switch %s to RS485 mode (%s), using RS232", c->name,
		       mc->device, strerror(errno));
	b->connected = true;
	return 0;
}

/* Maps a failed libmodbus call's errno; drops the connection unless the
 * device answered (an exception), so the next request starts clean. */
static int lm_fail(struct mb_bus *b, uint8_t *exc)
{
	int e = errno;

	if (e > MODBUS_ENOBASE && e <= EMBXGTAR) {
		*exc = (uint8_t)(e - MODBUS_ENOBASE);
		return -EEXC;
	}
	if (mbus_bus(b->cfg)->type == AD_BUS_TCP || (e != ETIMEDOUT && e != EMBBADCRC)) {
		modbus_close(b->ctx);
		b->connected = false;
	} else {
		modbus_flush(b->ctx);
	}
	if (e == EMBBADCRC)
		return -EBADMSG;
	if (e > EMBXGTAR)
		return -EPROTO;
	return e ? -e : -EIO;
}

/* Waits out the silence an RTU line needs between frames. */
static void turnaround(struct mb_bus *b)
{
	if (is_rtu_line(b) && mbus_bus(b->cfg)->turnaround_ms)
		sleep_ms(b->last_io + mbus_bus(b->cfg)->turnaround_ms - mono_ms());
}

static const uint8_t read_fc[__AD_AREA_MAX] = {
	[AD_AREA_COIL] = MBUS_FC_READ_COILS,
	[AD_AREA_DISCRETE] = MBUS_FC_READ_DISCRETE,
	[AD_AREA_INPUT] = MBUS_FC_READ_INPUT,
	[AD_AREA_HOLDING] = MBUS_FC_READ_HOLDING,
};

static int bus_read(struct mb_bus *b, uint8_t unit, const struct mbus_req *rq, uint16_t *out,
		    uint8_t *exc)
{
	int rc, i;

	turnaround(b);
	if (mbus_bus(b->cfg)->type == AD_BUS_RTU_OVER_TCP) {
		uint8_t pdu[8], buf[MBUS_RTU_MAX_ADU];
		struct gw_writer w;
		struct mbus_frame f;

		gw_writer_init(&w, pdu, sizeof(pdu));
		mbus_pdu_read(&w, read_fc[rq->area], rq->address, rq->count);
		rc = rot_xfer(b, unit, pdu, w.len, buf, sizeof(buf), &f);
		b->last_io = mono_ms();
		if (rc == 0 && f.exception) {
			*exc = f.exception;
			return -EEXC;
		}
		if (rc == 0)
			rc = mbus_rsp_parse(&f, read_fc[rq->area], rq->address, rq->count, out);
		if (rc)
			transport_close(b);
		return rc;
	}
	rc = lm_open(b);
	if (rc)
		return rc;
	modbus_set_slave(b->ctx, unit);
	switch (rq->area) {
	case AD_AREA_COIL:
		rc = modbus_read_bits(b->ctx, rq->address, rq->count, b->bits);
		break;
	case AD_AREA_DISCRETE:
		rc = modbus_read_input_bits(b->ctx, rq->address, rq->count, b->bits);
		break;
	case AD_AREA_INPUT:
		rc = modbus_read_input_registers(b->ctx, rq->address, rq->count, out);
		break;
	default:
		rc = modbus_read_registers(b->ctx, rq->address, rq->count, out);
		break;
	}
	b->last_io = mono_ms();
	if (rc == -1)
		return lm_fail(b, exc);
	if (rc != rq->count)
		return -EBADMSG;
	if (rq->area == AD_AREA_COIL || rq->area == AD_AREA_DISCRETE)
		for (i = 0; i < rq->count; i++)
			out[i] = b->bits[i];
	return 0;
}

static int bus_write(struct mb_bus *b, uint8_t unit, struct mb_job *j)
{
	uint16_t addr = mbus_pt(j->pt)->address;
	int rc, i;

	turnaround(b);
	if (mbus_bus(b->cfg)->type == AD_BUS_RTU_OVER_TCP) {
		uint8_t pdu[MBUS_RTU_MAX_ADU], buf[MBUS_RTU_MAX_ADU];
		struct gw_writer w;
		struct mbus_frame f;

		gw_writer_init(&w, pdu, sizeof(pdu));
		rc = mbus_pdu_write(&w, j->fc, addr, j->regs, j->n);
		if (rc)
			return rc;
		rc = rot_xfer(b, unit, pdu, w.len, buf, sizeof(buf), &f);
		b->last_io = mono_ms();
		if (rc == 0 && f.exception) {
			j->exc = f.exception;
			return -EEXC;
		}
		if (rc == 0)
			rc = mbus_rsp_parse(&f, j->fc, addr, (uint16_t)j->n, NULL);
		if (rc)
			transport_close(b);
		return rc;
	}
	rc = lm_open(b);
	if (rc)
		return rc;
	modbus_set_slave(b->ctx, unit);
	switch (j->fc) {
	case MBUS_FC_WRITE_COIL:
		rc = modbus_write_bit(b->ctx, addr, j->regs[0] ? 1 : 0);
		break;
	case MBUS_FC_WRITE_COILS:
		for (i = 0; i < (int)j->n; i++)
			b->bits[i] = j->regs[i] ? 1 : 0;
		rc = modbus_write_bits(b->ctx, addr, (int)j->n, b->bits);
		break;
	case MBUS_FC_WRITE_REGISTER:
		rc = modbus_write_register(b->ctx, addr, j->regs[0]);
		break;
	default:
		rc = modbus_write_registers(b->ctx, addr, (int)j->n, j->regs);
		break;
	}
	b->last_io = mono_ms();
	if (rc == -1)
		return lm_fail(b, &j->exc);
	return 0;
}

/*
 * A merged read got an exception: usually one address in the range does not
 * exist (a hole in the device's map). Read its points one by one so the good
 * ones still come through. Returns a transport error that ends the cycle, or 0.
 */
static int read_split(struct mb_bus *b, struct mb_job *j, int i)
{
	struct mb_dev *d = j->dev;
	const struct mbus_req *rq = &d->reqs[i];
	struct mb_res *r = &j->res[i];
	unsigned int k;
	uint8_t exc;
	int fatal = 0;

	r->split = true;
	r->extra = 0;
	r->extra_failed = 0;
	for (k = rq->first; k < rq->first + rq->n_pts; k++) {
		const struct ad_point *pt = d->order[k];
		struct mbus_req one = { .area = rq->area,
					.address = mbus_pt(pt)->address,
					.count = (uint16_t)ad_point_regs(pt) };

		if (fatal) {
			j->pt_err[k] = fatal;
			continue;
		}
		j->pt_err[k] =
			bus_read(b, mbus_dev(d->cfg)->unit_id, &one,
				 j->data + r->off + (mbus_pt(pt)->address - rq->address), &exc);
		r->extra++;
		if (j->pt_err[k]) {
			r->extra_failed++;
			if (j->pt_err[k] != -EEXC)
				fatal = j->pt_err[k];
		}
	}
	return fatal;
}

static void run_poll(struct mb_bus *b, struct mb_job *j)
{
	struct mb_dev *d = j->dev;
	int i, fatal = 0;

	for (i = 0; i < d->n_reqs; i++) {
		struct mb_res *r = &j->res[i];

		r->exc = 0;
		r->sent = !fatal;
		if (fatal) {
			/* The device did not answer: the rest would time out too. */
			r->err = fatal;
			r->ts = gw_now_ms();
			continue;
		}
		r->err = bus_read(b, mbus_dev(d->cfg)->unit_id, &d->reqs[i], j->data + r->off,
				  &r->exc);
		r->split = false;
		if (r->err == -EEXC && d->reqs[i].n_pts > 1)
			fatal = read_split(b, j, i);
		r->ts = gw_now_ms();
		if (r->err && r->err != -EEXC)
			fatal = r->err;
	}
}

static void worker_main(void *arg)
{
	struct mb_bus *b = arg;
	struct mb_adapter *ad = b->ad;
	struct mb_job *j;
	bool notify;

	uv_mutex_lock(&b->lock);
	for (;;) {
		while (!b->quit && gw_list_empty(&b->queue))
			uv_cond_wait(&b->cond, &b->lock);
		if (b->quit)
			break;
		j = gw_list_first(&b->queue, struct mb_job, node);
		gw_list_del(&j->node);
		uv_mutex_unlock(&b->lock);

		if (j->kind == JOB_POLL) {
			run_poll(b, j);
		} else {
			j->exc = 0;
			j->err = bus_write(b, mbus_dev(j->dev->cfg)->unit_id, j);
			j->ts = gw_now_ms();
		}
		uv_mutex_lock(&ad->done_lock);
		gw_list_add_tail(&ad->done, &j->node);
		uv_mutex_unlock(&ad->done_lock);
		uv_async_send(&ad->async);
		uv_mutex_lock(&b->lock);
	}
	notify = !b->abort;
	uv_mutex_unlock(&b->lock);
	transport_close(b);
	if (!notify)
		return;
	uv_mutex_lock(&ad->done_lock);
	b->exited = true;
	uv_mutex_unlock(&ad->done_lock);
	uv_async_send(&ad->async);
}

/* ================================================================ loop side */

static void submit(struct mb_bus *b, struct mb_job *j)
{
	uv_mutex_lock(&b->lock);
	gw_list_add_tail(&b->queue, &j->node);
	if (j->kind == JOB_WRITE)
		b->n_writes++;
	uv_cond_signal(&b->cond);
	uv_mutex_unlock(&b->lock);
}

static void emit(struct mb_dev *d, const struct ad_point *pt, const struct ad_value *v,
		 enum ad_quality q, int64_t ts)
{
	struct ad_reading r = { .device = d->cfg, .point = pt, .quality = q, .ts_ms = ts };

	if (v)
		r.value = *v;
	else
		r.value.type = AD_VAL_NONE;
	d->ad->stats.readings++;
	if (d->ad->base.sink.on_reading)
		d->ad->base.sink.on_reading(d->ad->base.sink.arg, &r);
}

/* Quality bad once per point at the transition, never on every failed poll. */
static void mark_bad(struct mb_dev *d, unsigned int i, int64_t ts)
{
	if (d->pt_q[i] == 2)
		return;
	d->pt_q[i] = 2;
	emit(d, d->order[i], NULL, AD_Q_BAD, ts);
}

static const char *const area_names[__AD_AREA_MAX] = {
	[AD_AREA_COIL] = "coils",
	[AD_AREA_DISCRETE] = "discrete inputs",
	[AD_AREA_INPUT] = "input registers",
	[AD_AREA_HOLDING] = "holding registers",
};

static void poll_done(struct mb_dev *d)
{
	struct mb_adapter *ad = d->ad;
	const struct ad_device *c = d->cfg;
	struct mb_job *j = &d->poll;
	int transport_err = 0;
	int64_t ts = gw_now_ms();
	enum mbus_online prev;
	unsigned int act, k;
	int i;

	d->busy = false;
	ad->stats.polls++;
	for (i = 0; i < d->n_reqs; i++) {
		const struct mbus_req *rq = &d->reqs[i];
		const struct mb_res *r = &j->res[i];

		ad->stats.requests += r->sent + (r->split ? r->extra : 0);
		ad->stats.failures += (r->sent && r->err) + (r->split ? r->extra_failed : 0);
		if (r->err && r->err != -EEXC) {
			transport_err = r->err;
			continue;
		}
		if (r->err && d->req_err[i] != r->err - r->exc)
			gw_log(ad->base.log, LOG_WARNING, MOD,
			       "device %s: reading %u %s from %u: %s%s", c->name, rq->count,
			       area_names[rq->area], rq->address, mbus_exception_str(r->exc),
			       r->split ? "; reading its points one by one" : "");
		d->req_err[i] = r->err - r->exc;
		for (k = rq->first; k < rq->first + rq->n_pts; k++) {
			const struct ad_point *pt = d->order[k];
			unsigned int off = mbus_pt(pt)->address - rq->address;
			int e = r->split ? j->pt_err[k] : r->err;
			uint8_t sbuf[2 * MBUS_MAX_READ_REGS];
			struct ad_value v;

			if (e && e != -EEXC) {
				transport_err = e;
				continue;
			}
			if (e || mbus_decode(pt, j->data + r->off + off,
					     r->split ? ad_point_regs(pt) : rq->count - off, sbuf,
					     sizeof(sbuf), &v)) {
				mark_bad(d, k, r->ts);
				continue;
			}
			d->pt_q[k] = 1;
			emit(d, pt, &v, AD_Q_GOOD, r->ts);
		}
	}
	prev = d->health.state;
	act = mbus_health_update(&d->health, c, transport_err == 0, mono_ms());
	if (transport_err)
		for (k = 0; k < c->n_points; k++)
			mark_bad(d, k, ts);
	if (act & MBUS_ACT_BAD)
		gw_log(ad->base.log, LOG_WARNING, MOD, "device %s (unit %u on %s): %s", c->name,
		       mbus_dev(c)->unit_id, c->bus->name, err_text(transport_err, 0));
	if (act & MBUS_ACT_ONLINE) {
		gw_log(ad->base.log, LOG_INFO, MOD, "device %s online", c->name);
		ad->stats.devices_online++;
		if (ad->base.sink.on_status)
			ad->base.sink.on_status(ad->base.sink.arg, c, true);
	}
	if (act & MBUS_ACT_OFFLINE) {
		gw_log(ad->base.log, LOG_WARNING, MOD, "device %s offline", c->name);
		if (prev == MBUS_ONLINE)
			ad->stats.devices_online--;
		if (ad->base.sink.on_status)
			ad->base.sink.on_status(ad->base.sink.arg, c, false);
	}
	if ((act & MBUS_ACT_DEGRADE) && d->health.fails == mbus_dev(c)->degrade_after)
		gw_log(ad->base.log, LOG_INFO, MOD,
		       "device %s: %u failed polls, retrying every %u ms", c->name, d->health.fails,
		       mbus_dev(c)->degrade_for_ms);
}

static void write_done(struct mb_adapter *ad, struct mb_job *j)
{
	struct ad_cmd_result res = {
		.ok = j->err == 0,
		.error = err_text(j->err, j->exc),
		.value = j->value,
		.ts_ms = j->ts ? j->ts : gw_now_ms(),
	};

	if (ad->base.sink.on_cmd_done)
		ad->base.sink.on_cmd_done(ad->base.sink.arg, j->token, &res);
	gw_free(j);
}

static void on_timer(uv_timer_t *t)
{
	struct mb_dev *d = container_of(t, struct mb_dev, timer);
	struct mb_adapter *ad = d->ad;

	if (ad->stopping || d->n_reqs == 0)
		return;
	if (d->busy) {
		ad->stats.overruns++;
		return;
	}
	if (mbus_health_skip(&d->health, mono_ms())) {
		ad->stats.skipped++;
		return;
	}
	d->busy = true;
	submit(d->bus, &d->poll);
}

static void finish_stop(struct mb_adapter *ad);

static void on_async(uv_async_t *h)
{
	struct mb_adapter *ad = container_of(h, struct mb_adapter, async);
	struct gw_list list, *pos, *tmp;
	unsigned int i;
	bool all_exited = true;

	gw_list_init(&list);
	uv_mutex_lock(&ad->done_lock);
	if (!gw_list_empty(&ad->done)) {
		/* Splice the done list onto ours. */
		list.next = ad->done.next;
		list.prev = ad->done.prev;
		list.next->prev = &list;
		list.prev->next = &list;
		gw_list_init(&ad->done);
	}
	for (i = 0; i < ad->n_buses; i++)
		if (ad->buses[i].thread_started && !ad->buses[i].exited)
			all_exited = false;
	uv_mutex_unlock(&ad->done_lock);

	gw_list_for_each_safe (pos, tmp, &list) {
		struct mb_job *j = gw_list_entry(pos, struct mb_job, node);

		gw_list_del(pos);
		if (j->kind == JOB_POLL) {
			poll_done(j->dev);
		} else {
			struct mb_bus *b = j->dev->bus;

			uv_mutex_lock(&b->lock);
			b->n_writes--;
			uv_mutex_unlock(&b->lock);
			ad->stats.writes++;
			/* Read back soon, so the new value is published. */
			if (j->err == 0 && !ad->stopping && !j->dev->busy) {
				j->dev->busy = true;
				submit(b, &j->dev->poll);
			}
			write_done(ad, j);
		}
	}
	if (ad->stopping && all_exited)
		finish_stop(ad);
}

static void on_closed(uv_handle_t *h)
{
	struct mb_adapter *ad = h->data;

	if (--ad->closing == 0 && ad->stop_done)
		ad->stop_done(ad->stop_arg);
}

/* Every worker has exited: join them, fail queued commands, close handles. */
static void finish_stop(struct mb_adapter *ad)
{
	unsigned int i;

	if (ad->closing || !ad->async_inited)
		return;
	for (i = 0; i < ad->n_buses; i++) {
		struct mb_bus *b = &ad->buses[i];
		struct gw_list *pos, *tmp;

		if (b->thread_started && !b->joined) {
			uv_thread_join(&b->thread);
			b->joined = true;
		}
		gw_list_for_each_safe (pos, tmp, &b->queue) {
			struct mb_job *j = gw_list_entry(pos, struct mb_job, node);

			gw_list_del(pos);
			if (j->kind == JOB_WRITE) {
				j->err = -ECANCELED;
				write_done(ad, j);
			}
		}
	}
	for (i = 0; i < ad->n_inited; i++) {
		ad->devs[i].timer.data = ad;
		ad->closing++;
		uv_close((uv_handle_t *)&ad->devs[i].timer, on_closed);
	}
	ad->async.data = ad;
	ad->closing++;
	uv_close((uv_handle_t *)&ad->async, on_closed);
	ad->async_inited = false;
}

/* ================================================================ the ops */

/* Stops and joins the workers of a start that failed; they are idle. */
static void abort_workers(struct mb_adapter *ad)
{
	unsigned int i;

	for (i = 0; i < ad->n_buses; i++) {
		struct mb_bus *b = &ad->buses[i];

		if (!b->thread_started)
			continue;
		uv_mutex_lock(&b->lock);
		b->quit = true;
		b->abort = true;
		uv_cond_signal(&b->cond);
		uv_mutex_unlock(&b->lock);
		uv_thread_join(&b->thread);
		b->thread_started = false;
		b->quit = false;
		b->abort = false;
	}
}

/*
 * Everything that can fail happens before the first libuv handle exists, so
 * a failed start leaves nothing to close: free() may follow directly.
 */
static int mb_start(struct ad_adapter *a)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	unsigned int i;
	int rc;

	for (i = 0; i < ad->n_buses; i++) {
		rc = uv_thread_create(&ad->buses[i].thread, worker_main, &ad->buses[i]);
		if (rc) {
			gw_log(a->log, LOG_ERR, MOD, "bus %s: cannot start a worker: %s",
			       ad->buses[i].cfg->name, uv_strerror(rc));
			abort_workers(ad);
			return rc;
		}
		ad->buses[i].thread_started = true;
	}
	rc = uv_async_init(a->loop, &ad->async, on_async);
	if (rc) {
		abort_workers(ad);
		return rc;
	}
	ad->async_inited = true;
	for (i = 0; i < ad->n_devs; i++) {
		struct mb_dev *d = &ad->devs[i];

		uv_timer_init(a->loop, &d->timer);
		ad->n_inited++;
		/* Cannot fail: the callback is set and the loop is alive. */
		uv_timer_start(&d->timer, on_timer, d->delay_ms,
			       d->cfg->poll_ms ? d->cfg->poll_ms : 1000);
	}
	gw_log(a->log, LOG_INFO, MOD, "polling %u devices on %u buses", ad->n_devs, ad->n_buses);
	return 0;
}

static void mb_stop(struct ad_adapter *a, void (*done)(void *arg), void *arg)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	unsigned int i;
	bool any = false;

	ad->stopping = true;
	ad->stop_done = done;
	ad->stop_arg = arg;
	for (i = 0; i < ad->n_inited; i++)
		uv_timer_stop(&ad->devs[i].timer);
	for (i = 0; i < ad->n_buses; i++) {
		struct mb_bus *b = &ad->buses[i];

		if (!b->thread_started)
			continue;
		any = true;
		uv_mutex_lock(&b->lock);
		b->quit = true;
		uv_cond_signal(&b->cond);
		uv_mutex_unlock(&b->lock);
	}
	if (!ad->async_inited) {
		if (done)
			done(arg);
		return;
	}
	/* Workers finish their current request (at most one timeout), then
	 * report through the async; without workers we close right away. */
	if (!any)
		finish_stop(ad);
}

static void mb_free(struct ad_adapter *a)
{
	struct mb_adapter *ad = (struct mb_adapter *)a;
	unsigned int i;

	if (!ad)
		return;
	for (i = 0; i < ad->n_devs; i++) {
		struct mb_dev *d = &ad->devs[i];

		gw_free(d->reqs);
		gw_free(d->order);
		gw_free(d->pt_q);
		gw_free(d->req_err);
		gw_free(d->poll.res);
		gw_free(d->poll.pt_err);
		gw_free(d->poll.data);
	}
	for (i = 0; i < ad->n_buses; i++) {
		uv_cond_destroy(&ad->buses[i].cond);
		uv_mutex_destroy(&ad->buses[i].lock);
	}
	uv_mutex_destroy(&ad->done_lock);
	gw_free(ad->devs);
	gw_free(ad->buses);
	gw_free(ad);
}

static struct mb_dev *find_dev(struct mb_adapter *ad, const struct ad_device *dev)
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
	struct mb_dev *d = pt ? find_dev(ad, pt->device) : NULL;
	struct mb_job *j = NULL;
	unsigned int queued;
	int rc;

	if (!d || !value) {
		*why = "not a modbus point";
		return -EINVAL;
	}
	if (ad->stopping || !ad->async_inited) {
		*why = "adapter not running";
		return -ECANCELED;
	}
	j = gw_calloc(1, sizeof(*j));
	if (!j) {
		*why = "out of memory";
		return -ENOMEM;
	}
	rc = mbus_encode(pt, value, j->regs, GW_ARRAY_SIZE(j->regs), &j->n, why);
	if (rc)
		goto fail;
	uv_mutex_lock(&d->bus->lock);
	queued = d->bus->n_writes;
	uv_mutex_unlock(&d->bus->lock);
	if (queued >= MAX_QUEUED_WRITES) {
		*why = "too many commands queued";
		rc = -ENOBUFS;
		goto fail;
	}
	j->kind = JOB_WRITE;
	j->dev = d;
	j->pt = pt;
	j->token = token;
	j->fc = (uint8_t)mbus_write_fc(pt, j->n, mbus_dev(d->cfg)->write_multiple_always);
	j->value = *value;
	if (value->type == AD_VAL_STRING) {
		/* mbus_encode bounded the length by the point's width. */
		memcpy(j->str, value->s.p, value->s.len);
		j->value.s.p = j->str;
	}
	submit(d->bus, j);
	return 0;
fail:
	gw_free(j);
	return rc;
}

static const struct ad_ops mb_ops = {
	.name = "modbus",
	.start = mb_start,
	.stop = mb_stop,
	.free = mb_free,
	.command = mb_command,
};

void ad_modbus_get_stats(const struct ad_adapter *a, struct ad_modbus_stats *out)
{
	const struct mb_adapter *ad = (const struct mb_adapter *)a;

	*out = ad->stats;
	out->devices = ad->n_devs;
}

/* Builds the device's plan and its preallocated poll job. */
static int dev_init(struct mb_adapter *ad, struct mb_dev *d, const struct ad_device *c)
{
	const struct ad_point *bad = NULL;
	unsigned int n = c->n_points ? c->n_points : 1;
	uint32_t total = 0;
	int i;

	d->ad = ad;
	d->cfg = c;
	d->reqs = gw_calloc(n, sizeof(*d->reqs));
	d->order = gw_calloc(n, sizeof(*d->order));
	d->pt_q = gw_calloc(n, 1);
	d->req_err = gw_calloc(n, sizeof(*d->req_err));
	d->poll.res = gw_calloc(n, sizeof(*d->poll.res));
	d->poll.pt_err = gw_calloc(n, sizeof(*d->poll.pt_err));
	if (!d->reqs || !d->order || !d->pt_q || !d->req_err || !d->poll.res || !d->poll.pt_err)
		return -ENOMEM;
	d->n_reqs = mbus_plan(c, d->order, d->reqs, &bad);
	if (d->n_reqs < 0) {
		gw_log(ad->base.log, LOG_ERR, MOD, "%s:%u: point %s/%s: %s",
		       bad->origin.file ? bad->origin.file : "?", bad->origin.line, c->name,
		       bad->name,
		       d->n_reqs == -EMSGSIZE ? "wider than one read request allows"
					      : "unknown area");
		return d->n_reqs;
	}
	for (i = 0; i < d->n_reqs; i++) {
		d->poll.res[i].off = total;
		total += d->reqs[i].count;
	}
	d->poll.data = gw_calloc(total ? total : 1, sizeof(uint16_t));
	if (!d->poll.data)
		return -ENOMEM;
	d->poll.kind = JOB_POLL;
	d->poll.dev = d;
	gw_list_init(&d->poll.node);
	return 0;
}

struct ad_adapter *ad_modbus_new(struct uv_loop_s *loop, const struct ad_map *map,
				 const struct gw_logger *log, const struct ad_sink *sink)
{
	struct mb_adapter *ad = NULL;
	unsigned int i, k, nb = 0, nd = 0;

	ad = gw_calloc(1, sizeof(*ad));
	if (!ad)
		return NULL;
	ad->base.ops = &mb_ops;
	ad->base.loop = loop;
	ad->base.log = log;
	ad->base.map = map;
	ad->base.sink = *sink;
	gw_list_init(&ad->done);
	uv_mutex_init(&ad->done_lock);
	for (i = 0; i < map->n_devices; i++)
		nd += map->devices[i]->protocol == AD_PROTO_MODBUS;
	ad->devs = gw_calloc(nd ? nd : 1, sizeof(*ad->devs));
	ad->buses = gw_calloc(map->n_buses ? map->n_buses : 1, sizeof(*ad->buses));
	if (!ad->devs || !ad->buses)
		goto fail;
	/* One worker per bus that carries at least one modbus device. */
	for (i = 0; i < map->n_buses; i++) {
		struct mb_bus *b = &ad->buses[nb];

		for (k = 0; k < map->n_devices; k++)
			if (map->devices[k]->protocol == AD_PROTO_MODBUS &&
			    map->devices[k]->bus == map->buses[i])
				break;
		if (k == map->n_devices)
			continue;
		b->ad = ad;
		b->cfg = map->buses[i];
		b->fd = -1;
		gw_list_init(&b->queue);
		uv_mutex_init(&b->lock);
		uv_cond_init(&b->cond);
		ad->n_buses = ++nb;
	}
	for (i = 0; i < map->n_devices; i++) {
		const struct ad_device *c = map->devices[i];
		struct mb_dev *d = &ad->devs[ad->n_devs];

		if (c->protocol != AD_PROTO_MODBUS)
			continue;
		ad->n_devs++;
		for (k = 0; k < nb; k++)
			if (ad->buses[k].cfg == c->bus)
				d->bus = &ad->buses[k];
		if (!d->bus || dev_init(ad, d, c))
			goto fail;
	}
	/* Spread first polls over one period so devices do not poll in step. */
	for (i = 0; i < ad->n_devs; i++) {
		uint32_t p = ad->devs[i].cfg->poll_ms ? ad->devs[i].cfg->poll_ms : 1000;

		ad->devs[i].delay_ms = (unsigned int)((uint64_t)p * i / ad->n_devs);
	}
	return &ad->base;
fail:
	mb_free(&ad->base);
	return NULL;
}
