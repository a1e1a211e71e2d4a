/*
 * serial_uv_int.h - cross-file internals of the serial adapter's glue:
 * serial_uv.c (the adapter, its ports, the machine's results) and
 * serial_conn_uv.c (the line: open, read, write, close). Include <uv.h>
 * before this header; included by those two files only.
 */
#ifndef FIELDMQ_SERIAL_UV_INT_H
#define FIELDMQ_SERIAL_UV_INT_H

#include <sys/socket.h>

#include "adapters/serial/serial_setup.h"

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

struct sr_adapter;

struct sr_port {
	struct sr_adapter *ad;
	const struct ad_bus *bus;
	const struct ser_bus *sb;
	struct ser_port sm;
	uint8_t *fbuf;
	struct ser_result *res;
	struct ser_dev *devs;
	struct ser_dev_rt *drt;
	unsigned int n_devs;
	struct ser_point *pts;
	struct ser_point_rt *prt;
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
	struct ser_point_rt *rt;
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

/* ---------------------------------------------------------- serial_uv.c */

/* The loop's time, the clock of @p's machine. */
int64_t ad__serial_now_ms(const struct sr_port *p);
/* The device or host of @p, for logs. */
const char *ad__serial_where(const struct sr_port *p);
/* Calls the stop's done callback once stopping and nothing is pending. */
void ad__serial_maybe_done(struct sr_adapter *ad);
/* Arms @p's timer for the machine's next deadline. */
void ad__serial_rearm(struct sr_port *p);

/* ----------------------------------------------------- serial_conn_uv.c */

/* Detaches @p's connection and closes it; the machine already knows. */
void ad__serial_conn_close(struct sr_port *p);
/* An open failed: logged (once per state change), told to the machine, timer rearmed. */
void ad__serial_open_fail(struct sr_port *p, int err);
/* The machine's open, close and write actions (struct ser_port_ops); @arg is the sr_port. */
void ad__serial_line_open(void *arg);
void ad__serial_line_close(void *arg);
int ad__serial_line_write(void *arg, const uint8_t *data, size_t n);

#endif
