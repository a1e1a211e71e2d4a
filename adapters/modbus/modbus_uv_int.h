/*
 * modbus_uv_int.h - cross-file internals of the Modbus adapter's glue:
 * modbus_uv.c (the adapter, the poller's ops and timer), modbus_net_uv.c
 * (TCP and RTU-over-TCP lines on the loop) and modbus_worker_uv.c (serial
 * RTU lines on a libmodbus worker thread). Include <uv.h> and <modbus.h>
 * before this header; included by those three files only.
 */
#ifndef FIELDMQ_MODBUS_UV_INT_H
#define FIELDMQ_MODBUS_UV_INT_H

#include <netinet/in.h>

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

/* ---------------------------------------------------------- modbus_uv.c */

/* The poller's clock: the monotonic and the wall time now. */
struct mbus_clock ad__modbus_clock_now(void);
/* Lets time pass for the line's poller and arms its timer for what comes next. */
void ad__modbus_pump(struct mb_line *l);
/* Once the workers are joined, closes the async; once every handle is closed, done. */
void ad__modbus_maybe_done(struct mb_adapter *ad);

/* --------------------------------------------------- modbus_worker_uv.c */

/* A serial line's worker thread; @arg is its struct mb_line. */
void ad__modbus_worker_main(void *arg);
/* The adapter's uv_async: results and exits of the workers, on the loop. */
void ad__modbus_on_async(uv_async_t *h);

/* ------------------------------------------------------ modbus_net_uv.c */

/* Drops the connection (a timeout, a broken stream, stop). */
void ad__modbus_net_close(struct mb_line *l);
/* Opens a connection for the pending request; the host is looked up once. */
void ad__modbus_net_connect(struct mb_line *l);
/* Frames @x for the line's protocol into @aw (a new transaction id for MBAP). */
int ad__modbus_net_frame(struct mb_line *l, const struct mbus_xfer *x, struct gw_writer *aw);
/* Frames @x on the stack and writes it on the connected socket; 0 or -errno. */
int ad__modbus_net_send(struct mb_line *l, const struct mbus_xfer *x);

#endif
