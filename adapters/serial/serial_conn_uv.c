/*
 * serial_conn_uv.c - a serial port's line on libuv: a tty is opened on the
 * thread pool (open() and tcsetattr() may block on some USB adapters, see
 * serial_open.c), then read and written non-blocking through a uv_poll on
 * the loop; a raw TCP serial server is resolved on the thread pool and
 * connected with a uv_tcp. The machine's open, close and write actions
 * (struct ser_port_ops) are here; what the line reads goes to the machine.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "adapters/serial/serial_uv_int.h"

/* ------------------------------------------------------------ connections */

static void on_conn_closed(uv_handle_t *h)
{
	struct sr_conn *c = h->data;
	struct sr_adapter *ad = c->ad;

	if (!c->tcp && c->fd >= 0)
		close(c->fd);
	gw_free(c);
	ad->pending--;
	ad__serial_maybe_done(ad);
}

/* Detach @p's connection and close it; the machine already knows. */
void ad__serial_conn_close(struct sr_port *p)
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
		       ad__serial_where(p), strerror(-err));
		p->logged_down = true;
		return;
	}
	if (p->logged_down)
		return; /* one line per state change, not one per retry */
	p->logged_down = true;
	gw_log(log, LOG_WARNING, MOD,
	       "bus %s: cannot open %s (%s); its devices are offline, retrying", p->bus->name,
	       ad__serial_where(p), strerror(-err));
}

static void port_failed(struct sr_port *p, int err)
{
	if (p->sm.state != SER_PORT_OPEN)
		return;
	log_down(p, err, true);
	ser_port_failed(&p->sm, ad__serial_now_ms(p), err);
	ad__serial_rearm(p);
}

static void port_data(struct sr_port *p, const uint8_t *data, size_t n)
{
	ser_port_data(&p->sm, data, n, ad__serial_now_ms(p));
	ad__serial_rearm(p);
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
		ad__serial_conn_close(p);
		log_down(p, status, false);
		ser_port_opened(&p->sm, ad__serial_now_ms(p), status);
		ad__serial_rearm(p);
		return;
	}
	uv_tcp_nodelay(&c->u.tcp, 1);
	uv_tcp_keepalive(&c->u.tcp, 1, 30);
	uv_read_start((uv_stream_t *)&c->u.tcp, tcp_alloc, on_tcp_read);
	p->logged_down = false;
	gw_log(p->ad->base.log, LOG_INFO, MOD, "bus %s: connected to %s:%u", p->bus->name,
	       p->sb->host, p->sb->port);
	ser_port_opened(&p->sm, ad__serial_now_ms(p), 0);
	ad__serial_rearm(p);
}

/* ------------------------------------------------------------ opening */

static void open_work(uv_work_t *w)
{
	struct sr_port *p = container_of(w, struct sr_port, work);

	p->work_fd = -1;
	if (p->sb->type == SER_BUS_TCP)
		p->work_err = ser_tcp_resolve(p->sb, &p->addr);
	else
		p->work_err = ser_tty_open(p->sb, &p->work_fd);
}

void ad__serial_open_fail(struct sr_port *p, int err)
{
	log_down(p, err, false);
	ser_port_opened(&p->sm, ad__serial_now_ms(p), err);
	ad__serial_rearm(p);
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
		ad__serial_maybe_done(ad);
		return;
	}
	if (status < 0 || p->work_err) {
		ad__serial_open_fail(p, status < 0 ? status : p->work_err);
		return;
	}
	c = gw_calloc(1, sizeof(*c));
	if (!c) {
		if (p->work_fd >= 0)
			close(p->work_fd);
		ad__serial_open_fail(p, -ENOMEM);
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
			ad__serial_conn_close(p);
			ad__serial_open_fail(p, rc);
		}
		return; /* on_connect reports */
	}
	rc = uv_poll_init(ad->base.loop, &c->u.poll, c->fd);
	if (rc) {
		close(c->fd);
		gw_free(c);
		ad__serial_open_fail(p, rc);
		return;
	}
	c->u.poll.data = c;
	c->u.poll.poll_cb = on_tty;
	p->conn = c;
	rc = set_poll(c);
	if (rc) {
		ad__serial_conn_close(p);
		ad__serial_open_fail(p, rc);
		return;
	}
	p->logged_down = false;
	gw_log(ad->base.log, LOG_INFO, MOD, "bus %s: %s open", p->bus->name, p->sb->device);
	ser_port_opened(&p->sm, ad__serial_now_ms(p), 0);
	ad__serial_rearm(p);
}

/* ------------------------------------------------------- machine's I/O */

void ad__serial_line_open(void *arg)
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
void ad__serial_line_close(void *arg)
{
	struct sr_port *p = arg;

	if (p->sm.state == SER_PORT_CLOSED && !p->logged_down) {
		gw_log(p->ad->base.log, LOG_WARNING, MOD,
		       "bus %s: writing to %s failed (%s); reopening", p->bus->name,
		       ad__serial_where(p), strerror(-p->sm.last_error));
		p->logged_down = true;
	}
	ad__serial_conn_close(p);
}

int ad__serial_line_write(void *arg, const uint8_t *data, size_t n)
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
