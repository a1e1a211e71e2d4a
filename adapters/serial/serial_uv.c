/*
 * serial_uv.c - the serial adapter's glue: one port state machine
 * (serial_port.c) per bus, fed by libuv. A tty is opened on the thread pool
 * (open() and tcsetattr() may block on some USB adapters), then read and
 * written non-blocking through a uv_poll on the loop; a raw TCP serial
 * server is resolved on the thread pool and connected with a uv_tcp. The
 * machine decides everything else (framing, parsing, polls, commands,
 * reopen backoff); this file performs the I/O it asks for and turns its
 * results into readings, statuses and command results for the gateway.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include <sys/socket.h>

#include "adapters/serial/serial_int.h"

#define MOD "serial"
#define READ_CHUNK 4096
#define READS_PER_WAKEUP 16  /* then let the loop serve others */
#define WRITE_QUEUE_MAX 4096 /* bytes waiting for a slow tty */
#define TCP_QUEUE_MAX (64 * 1024)
#define MAX_RESULTS (2 * SER_MAX_QUEUE + 2)

struct sr_port;
struct sr_adapter;

/* One open tty or TCP connection; freed in its handle's close callback. */
struct sr_conn {
	struct sr_adapter *ad;
	struct sr_port *port; /* NULL once detached (closing) */
	bool tcp;
	union {
		uv_handle_t h;
		uv_poll_t poll;
		uv_tcp_t tcp;
	} u;
	uv_connect_t creq;
	int fd;
	int events;
	size_t wq_len;
	uint8_t wq[WRITE_QUEUE_MAX];
};

/* A command result waiting to be delivered outside ->command(). */
struct sr_result {
	void *token;
	bool ok;
	const char *error;
	struct ad_value value;
};

/* What the machine's devices and points need beyond struct ser_dev / ser_point. */
struct sr_dev_rt {
	regex_t match;
	bool has_match;
	char *jbuf; /* json match terms, cut in place */
	char pair[17], kv[17];
	uint8_t poll_cmd[SER_MAX_CMD];
};

struct sr_point_rt {
	struct ser_fmt fmt;
	regex_t resp;
	bool has_fmt, has_resp;
	unsigned int column; /* csv by number */
};

struct sr_adapter;

struct sr_port {
	struct sr_adapter *ad;
	const struct ad_bus *bus;
	const struct ser_bus *sb;
	struct ser_port sm;
	uint8_t *fbuf;
	struct ser_result *res;
	struct ser_dev *devs;
	struct sr_dev_rt *drt;
	unsigned int n_devs;
	struct ser_point *pts;
	struct sr_point_rt *prt;
	unsigned int n_pts;
	uv_timer_t timer;
	uv_timer_t defer; /* delivers command results */
	struct sr_result results[MAX_RESULTS];
	unsigned int n_results;
	struct sr_conn *conn;
	/* opening on the thread pool */
	uv_work_t work;
	bool working;
	int work_fd, work_err;
	struct sockaddr_storage addr;
	bool logged_down;
	uint64_t last_framer_bytes;
	uint8_t rbuf[READ_CHUNK];
};

/* Where a map point lives in the adapter. */
struct sr_ref {
	struct sr_port *port;
	struct ser_dev *d;
	struct ser_point *p;
	struct sr_point_rt *rt;
};

struct sr_adapter {
	struct ad_adapter base;
	struct sr_port *ports;
	unsigned int n_ports;
	struct sr_ref *refs; /* by ad_point->index */
	unsigned int n_refs;
	bool started, stopping;
	unsigned int pending; /* handles closing and opens on the pool */
	void (*done)(void *arg);
	void *done_arg;
};

static int64_t now_ms(const struct sr_port *p)
{
	return (int64_t)uv_now(p->ad->base.loop);
}

static const char *where(const struct sr_port *p)
{
	return p->sb->type == SER_BUS_TCP ? p->sb->host : p->sb->device;
}

static void maybe_done(struct sr_adapter *ad)
{
	if (ad->stopping && !ad->pending && ad->done) {
		void (*done)(void *) = ad->done;

		ad->done = NULL;
		done(ad->done_arg);
	}
}

static void on_timer(uv_timer_t *t);

/* Arm the port's timer for the machine's next deadline. */
static void rearm(struct sr_port *p)
{
	int64_t d, now;

	if (p->ad->stopping)
		return;
	d = ser_port_deadline(&p->sm);
	if (d < 0) {
		uv_timer_stop(&p->timer);
		return;
	}
	now = now_ms(p);
	uv_timer_start(&p->timer, on_timer, d > now ? (uint64_t)(d - now) : 0, 0);
}

/* ------------------------------------------------------------ connections */

static void on_conn_closed(uv_handle_t *h)
{
	struct sr_conn *c = h->data;
	struct sr_adapter *ad = c->ad;

	if (!c->tcp && c->fd >= 0)
		close(c->fd);
	gw_free(c);
	ad->pending--;
	maybe_done(ad);
}

/* Detach @p's connection and close it; the machine already knows. */
static void conn_close(struct sr_port *p)
{
	struct sr_conn *c = p->conn;

	if (!c)
		return;
	p->conn = NULL;
	c->port = NULL;
	p->ad->pending++;
	if (!c->tcp)
		uv_poll_stop(&c->u.poll);
	uv_close(&c->u.h, on_conn_closed);
}

static void log_down(struct sr_port *p, int err, bool was_open)
{
	const struct gw_logger *log = p->ad->base.log;

	if (was_open) {
		gw_log(log, LOG_WARNING, MOD, "bus %s: %s went away (%s); reopening", p->bus->name,
		       where(p), strerror(-err));
		p->logged_down = true;
		return;
	}
	if (p->logged_down)
		return; /* one line per state change, not one per retry */
	p->logged_down = true;
	gw_log(log, LOG_WARNING, MOD,
	       "bus %s: cannot open %s (%s); its devices are offline, retrying", p->bus->name,
	       where(p), strerror(-err));
}

static void port_failed(struct sr_port *p, int err)
{
	if (p->sm.state != SER_PORT_OPEN)
		return;
	log_down(p, err, true);
	ser_port_failed(&p->sm, now_ms(p), err);
	rearm(p);
}

static void port_data(struct sr_port *p, const uint8_t *data, size_t n)
{
	ser_port_data(&p->sm, data, n, now_ms(p));
	rearm(p);
}

static int set_poll(struct sr_conn *c)
{
	int ev = UV_READABLE | UV_DISCONNECT | (c->wq_len ? UV_WRITABLE : 0);

	if (ev == c->events)
		return 0;
	c->events = ev;
	return uv_poll_start(&c->u.poll, ev, c->u.poll.poll_cb);
}

static void tty_flush(struct sr_conn *c)
{
	ssize_t n;

	while (c->wq_len) {
		n = write(c->fd, c->wq, c->wq_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			port_failed(c->port, -errno);
			return;
		}
		memmove(c->wq, c->wq + n, c->wq_len - (size_t)n);
		c->wq_len -= (size_t)n;
	}
	set_poll(c);
}

static void on_tty(uv_poll_t *h, int status, int events)
{
	struct sr_conn *c = h->data;
	struct sr_port *p = c->port;
	int i;

	if (!p)
		return;
	if (status < 0) {
		port_failed(p, status);
		return;
	}
	if (events & UV_READABLE || events & UV_DISCONNECT) {
		for (i = 0; i < READS_PER_WAKEUP; i++) {
			ssize_t n = read(c->fd, p->rbuf, sizeof(p->rbuf));

			if (n > 0) {
				port_data(p, p->rbuf, (size_t)n);
				if (c->port != p)
					return; /* the machine closed the port meanwhile */
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				if (events & UV_DISCONNECT) {
					port_failed(p, -ENODEV);
					return;
				}
				break;
			}
			/* 0: hang-up (the USB adapter is gone, the pty's other side closed). */
			port_failed(p, n == 0 ? -ENODEV : -errno);
			return;
		}
	}
	if (events & UV_WRITABLE && c->port == p)
		tty_flush(c);
}

static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct sr_conn *c = h->data;

	(void)suggested;
	if (!c->port) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = (char *)c->port->rbuf;
	buf->len = sizeof(c->port->rbuf);
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct sr_conn *c = s->data;

	(void)buf;
	if (!c->port || n == 0)
		return;
	if (n < 0) {
		port_failed(c->port, n == UV_EOF ? -ECONNRESET : (int)n);
		return;
	}
	port_data(c->port, c->port->rbuf, (size_t)n);
}

static void on_tcp_written(uv_write_t *req, int status)
{
	(void)status; /* a failed write also fails the read side, which reopens */
	gw_free(req);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct sr_conn *c = container_of(req, struct sr_conn, creq);
	struct sr_port *p = c->port;

	if (!p)
		return; /* closed meanwhile (stop) */
	if (status < 0) {
		conn_close(p);
		log_down(p, status, false);
		ser_port_opened(&p->sm, now_ms(p), status);
		rearm(p);
		return;
	}
	uv_tcp_nodelay(&c->u.tcp, 1);
	uv_tcp_keepalive(&c->u.tcp, 1, 30);
	uv_read_start((uv_stream_t *)&c->u.tcp, tcp_alloc, on_tcp_read);
	p->logged_down = false;
	gw_log(p->ad->base.log, LOG_INFO, MOD, "bus %s: connected to %s:%u", p->bus->name,
	       p->sb->host, p->sb->port);
	ser_port_opened(&p->sm, now_ms(p), 0);
	rearm(p);
}

/* ------------------------------------------------------------ opening */

static speed_t speed_of(uint32_t baud)
{
	static const struct {
		uint32_t baud;
		speed_t speed;
	} speeds[] = {
		{ 50, B50 },	       { 75, B75 },	      { 110, B110 },
		{ 134, B134 },	       { 150, B150 },	      { 200, B200 },
		{ 300, B300 },	       { 600, B600 },	      { 1200, B1200 },
		{ 1800, B1800 },       { 2400, B2400 },	      { 4800, B4800 },
		{ 9600, B9600 },       { 19200, B19200 },     { 38400, B38400 },
		{ 57600, B57600 },     { 115200, B115200 },   { 230400, B230400 },
		{ 460800, B460800 },   { 500000, B500000 },   { 576000, B576000 },
		{ 921600, B921600 },   { 1000000, B1000000 }, { 1152000, B1152000 },
		{ 1500000, B1500000 }, { 2000000, B2000000 }, { 2500000, B2500000 },
		{ 3000000, B3000000 }, { 3500000, B3500000 }, { 4000000, B4000000 },
	};
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(speeds); i++)
		if (speeds[i].baud == baud)
			return speeds[i].speed;
	return B0;
}

/* On the thread pool: open and configure the tty. */
static int tty_open(const struct ser_bus *sb, int *out)
{
	struct termios t;
	speed_t sp = speed_of(sb->baud);
	int fd;

	if (sp == B0)
		return -EINVAL;
	fd = open(sb->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
		t.c_cflag |= CLOCAL | CREAD;
		t.c_cflag |= sb->data_bits == 5	  ? CS5
			     : sb->data_bits == 6 ? CS6
			     : sb->data_bits == 7 ? CS7
						  : CS8;
		if (sb->parity != 'N')
			t.c_cflag |= PARENB | (sb->parity == 'O' ? PARODD : 0);
		if (sb->stop_bits == 2)
			t.c_cflag |= CSTOPB;
		t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
		if (sb->flow == SER_FLOW_RTSCTS)
			t.c_cflag |= CRTSCTS;
		else if (sb->flow == SER_FLOW_XONXOFF)
			t.c_iflag |= IXON | IXOFF;
		/*
		 * VMIN 1: a non-blocking read with nothing to read fails with EAGAIN;
		 * with VMIN 0 it returns 0, which is also what a hang-up returns.
		 */
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		cfsetispeed(&t, sp);
		cfsetospeed(&t, sp);
		if (tcsetattr(fd, TCSANOW, &t)) {
			int err = -errno;

			close(fd);
			return err;
		}
		tcflush(fd, TCIFLUSH); /* what queued before we came is stale */
	} else if (errno != ENOTTY && errno != EINVAL) {
		int err = -errno;

		close(fd);
		return err;
	}
	/* A FIFO or a character device without termios is read as it is. */
	*out = fd;
	return 0;
}

/* On the thread pool: the serial server's address. */
static int tcp_resolve(const struct ser_bus *sb, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", sb->port);
	rc = getaddrinfo(sb->host, port, &hints, &res);
	if (rc || !res)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	memcpy(out, res->ai_addr, GW_MIN((size_t)res->ai_addrlen, sizeof(*out)));
	freeaddrinfo(res);
	return 0;
}

static void open_work(uv_work_t *w)
{
	struct sr_port *p = container_of(w, struct sr_port, work);

	p->work_fd = -1;
	if (p->sb->type == SER_BUS_TCP)
		p->work_err = tcp_resolve(p->sb, &p->addr);
	else
		p->work_err = tty_open(p->sb, &p->work_fd);
}

static void open_fail(struct sr_port *p, int err)
{
	log_down(p, err, false);
	ser_port_opened(&p->sm, now_ms(p), err);
	rearm(p);
}

static void open_after(uv_work_t *w, int status)
{
	struct sr_port *p = container_of(w, struct sr_port, work);
	struct sr_adapter *ad = p->ad;
	struct sr_conn *c;
	int rc;

	p->working = false;
	ad->pending--;
	if (ad->stopping || p->sm.state != SER_PORT_OPENING) {
		if (p->work_fd >= 0)
			close(p->work_fd);
		maybe_done(ad);
		return;
	}
	if (status < 0 || p->work_err) {
		open_fail(p, status < 0 ? status : p->work_err);
		return;
	}
	c = gw_calloc(1, sizeof(*c));
	if (!c) {
		if (p->work_fd >= 0)
			close(p->work_fd);
		open_fail(p, -ENOMEM);
		return;
	}
	c->ad = ad;
	c->port = p;
	c->fd = p->work_fd;
	c->tcp = p->sb->type == SER_BUS_TCP;
	if (c->tcp) {
		uv_tcp_init(ad->base.loop, &c->u.tcp);
		c->u.tcp.data = c;
		p->conn = c;
		rc = uv_tcp_connect(&c->creq, &c->u.tcp, (const struct sockaddr *)&p->addr,
				    on_connect);
		if (rc) {
			conn_close(p);
			open_fail(p, rc);
		}
		return; /* on_connect reports */
	}
	rc = uv_poll_init(ad->base.loop, &c->u.poll, c->fd);
	if (rc) {
		close(c->fd);
		gw_free(c);
		open_fail(p, rc);
		return;
	}
	c->u.poll.data = c;
	c->u.poll.poll_cb = on_tty;
	p->conn = c;
	rc = set_poll(c);
	if (rc) {
		conn_close(p);
		open_fail(p, rc);
		return;
	}
	p->logged_down = false;
	gw_log(ad->base.log, LOG_INFO, MOD, "bus %s: %s open", p->bus->name, p->sb->device);
	ser_port_opened(&p->sm, now_ms(p), 0);
	rearm(p);
}

/* ------------------------------------------------------- machine's I/O */

static void m_open(void *arg)
{
	struct sr_port *p = arg;

	if (p->working)
		return;
	p->working = true;
	p->ad->pending++;
	if (uv_queue_work(p->ad->base.loop, &p->work, open_work, open_after)) {
		p->working = false;
		p->ad->pending--;
		/* Reported later, from the timer: the machine is inside its open call. */
		p->work_err = -EAGAIN;
	}
}

/*
 * The machine closes the port: after a failure the glue reported (and
 * logged), at a stop, or after a write that failed (the tty took no more,
 * or the write returned an error), which is logged here, once per state
 * change like the others.
 */
static void m_close(void *arg)
{
	struct sr_port *p = arg;

	if (p->sm.state == SER_PORT_CLOSED && !p->logged_down) {
		gw_log(p->ad->base.log, LOG_WARNING, MOD,
		       "bus %s: writing to %s failed (%s); reopening", p->bus->name, where(p),
		       strerror(-p->sm.last_error));
		p->logged_down = true;
	}
	conn_close(p);
}

static int m_write(void *arg, const uint8_t *data, size_t n)
{
	struct sr_port *p = arg;
	struct sr_conn *c = p->conn;

	if (!c)
		return -ENOTCONN;
	if (c->tcp) {
		uv_buf_t b = uv_buf_init((char *)data, (unsigned int)n);
		int w = uv_try_write((uv_stream_t *)&c->u.tcp, &b, 1);
		uv_write_t *req;

		if (w == (int)n)
			return 0;
		if (w < 0 && w != UV_EAGAIN)
			return w;
		if (w < 0)
			w = 0;
		if (c->u.tcp.write_queue_size + n > TCP_QUEUE_MAX)
			return -ENOBUFS;
		req = gw_malloc(sizeof(*req) + n - (size_t)w);
		if (!req)
			return -ENOMEM;
		memcpy(req + 1, data + w, n - (size_t)w);
		b = uv_buf_init((char *)(req + 1), (unsigned int)(n - (size_t)w));
		w = uv_write(req, (uv_stream_t *)&c->u.tcp, &b, 1, on_tcp_written);
		if (w) {
			gw_free(req);
			return w;
		}
		return 0;
	}
	if (!c->wq_len) {
		ssize_t w;

		do
			w = write(c->fd, data, n);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN)
			return -errno;
		if (w < 0)
			w = 0;
		data += w;
		n -= (size_t)w;
		if (!n)
			return 0;
	}
	if (c->wq_len + n > sizeof(c->wq))
		return -ENOBUFS; /* the tty does not drain: treat as a failed port */
	memcpy(c->wq + c->wq_len, data, n);
	c->wq_len += n;
	set_poll(c);
	return 0;
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
	.open = m_open,
	.close = m_close,
	.write = m_write,
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
		open_fail(p, -EAGAIN);
		return;
	}
	ser_port_tick(&p->sm, now_ms(p));
	rearm(p);
}

/* ------------------------------------------------------------- adapter */

static int sr_start(struct ad_adapter *a)
{
	struct sr_adapter *ad = (struct sr_adapter *)a;
	unsigned int i;

	ad->started = true;
	for (i = 0; i < ad->n_ports; i++) {
		struct sr_port *p = &ad->ports[i];

		ser_port_start(&p->sm, now_ms(p));
		if (p->work_err == -EAGAIN)
			uv_timer_start(&p->timer, on_timer, 0, 0);
		else
			rearm(p);
	}
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct sr_adapter *ad = h->data;

	ad->pending--;
	maybe_done(ad);
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

		ser_port_stop(&p->sm, now_ms(p));
		conn_close(p);
		flush_results(p);
		if (ad->started) {
			p->timer.data = ad;
			p->defer.data = ad;
			ad->pending += 2;
			uv_close((uv_handle_t *)&p->timer, on_handle_closed);
			uv_close((uv_handle_t *)&p->defer, on_handle_closed);
		}
	}
	maybe_done(ad);
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
	rc = ser_port_command(&r->port->sm, r->d, r->p, v, token, why, now_ms(r->port));
	/*
	 * The command may have started a request (its write_response timeout) or,
	 * when the write failed, closed the port (its reopen): both are deadlines
	 * of the machine that the timer must follow.
	 */
	rearm(r->port);
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

static int compile(regex_t *re, const char *s, int flags)
{
	return regcomp(re, s, REG_EXTENDED | flags) ? -EINVAL : 0;
}

static void unescape_set(const char *s, char *out, size_t cap)
{
	int n = ser_unescape(s ? s : "", (uint8_t *)out, cap - 1);

	out[n > 0 ? n : 0] = '\0';
}

static int dev_build(struct sr_port *p, unsigned int di, const struct ad_device *d,
		     struct ser_point *pts, struct sr_point_rt *prt)
{
	const struct ser_device *sd = ser_device_of(d);
	struct ser_dev *x = &p->devs[di];
	struct sr_dev_rt *rt = &p->drt[di];
	const char *why;
	unsigned int i;
	int n;

	x->dev = d;
	x->parser = sd->parser;
	x->points = pts;
	x->n_points = d->n_points;
	if (sd->match && *sd->match) {
		if (sd->parser == SER_PARSE_JSON) {
			rt->jbuf = gw_strdup(sd->match);
			if (!rt->jbuf)
				return -ENOMEM;
			if (ser_jmatch_parse(rt->jbuf, x, &why))
				return -EINVAL;
		} else {
			if (compile(&rt->match, sd->match,
				    sd->parser == SER_PARSE_REGEX ? 0 : REG_NOSUB))
				return -EINVAL;
			rt->has_match = true;
			x->match = &rt->match;
			x->n_groups = (unsigned int)rt->match.re_nsub;
		}
	}
	{
		uint8_t sep[2];

		x->separator = ser_unescape(sd->separator ? sd->separator : ",", sep, 2) == 1
				       ? sep[0]
				       : ',';
	}
	x->header = sd->header;
	unescape_set(sd->pair_separator, rt->pair, sizeof(rt->pair));
	unescape_set(sd->kv_separator, rt->kv, sizeof(rt->kv));
	x->pair_seps = rt->pair;
	x->kv_seps = rt->kv;
	if (sd->poll_command && *sd->poll_command) {
		n = ser_unescape(sd->poll_command, rt->poll_cmd, sizeof(rt->poll_cmd));
		if (n > 0) {
			x->poll_cmd = rt->poll_cmd;
			x->poll_cmd_len = (size_t)n;
			x->poll_ms = d->poll_ms;
		}
	}
	for (i = 0; i < d->n_points; i++) {
		const struct ad_point *pt = d->points[i];
		const struct ser_point_keys *sp = ser_point_of(pt);
		struct ser_point *y = &pts[i];
		struct sr_point_rt *yr = &prt[i];
		const char *wc = sp->write_command && *sp->write_command ? sp->write_command
									 : sd->write_command;
		const char *wr = sp->write_response && *sp->write_response ? sp->write_response
									   : sd->write_response;

		y->pt = pt;
		y->type = pt->type;
		y->scale = pt->scale;
		y->offset = pt->offset;
		y->group = sp->group;
		if (sp->column) {
			char *end;
			long c = strtol(sp->column, &end, 10);

			if (*sp->column && !*end && c > 0)
				y->column = (unsigned int)c;
			else
				y->column_name = sp->column;
		}
		y->key = sp->key;
		y->json_pointer = sp->json_pointer;
		y->field = sp->field;
		y->hex = p->sb->fc.hex;
		y->writable = pt->writable;
		if (pt->writable && wc && *wc) {
			uint8_t buf[SER_MAX_CMD];

			n = ser_unescape(wc, buf, sizeof(buf));
			if (n < 0 || ser_fmt_compile(buf, (size_t)n, &yr->fmt, &why))
				return -EINVAL;
			yr->has_fmt = true;
			y->write_fmt = &yr->fmt;
			if (wr && *wr) {
				if (compile(&yr->resp, wr, REG_NOSUB))
					return -EINVAL;
				yr->has_resp = true;
				y->write_response = &yr->resp;
			}
		}
	}
	return 0;
}

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
		rc = dev_build(p, di, d, p->pts + pi, p->prt + pi);
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
