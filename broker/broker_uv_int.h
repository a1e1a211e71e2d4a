/*
 * broker_uv_int.h - what the broker's libuv glue shares between its files:
 * broker_uv.c (listeners, loop handles, lifecycle), conn_uv.c (a
 * connection's socket side) and transport_uv.c (TLS and WebSocket). Included
 * only by them, after <uv.h> (only glue may include it: make layering).
 */
#ifndef FIELDMQ_BROKER_UV_INT_H
#define FIELDMQ_BROKER_UV_INT_H

#include "broker/broker_int.h"
#include "broker/limits.h"
#include "broker/ws.h"

#define READ_BUF_SIZE (64 * 1024)
/* Plaintext out of TLS, and output gathered for framing / encryption, at a time. */
#define XBUF_SIZE (16 * 1024)

/* A listener: its socket, what it speaks, its TLS configuration (mqtts, wss). */
struct brk_listener {
	uv_tcp_t tcp;
	struct brk_uv *u;
	const struct brk_listener_cfg *cfg; /* in u->b.cfg */
	enum brk_transport kind;
	struct sockaddr_storage addr;
	struct gw_tls_conf *tls;
	uint32_t n_conns; /* open connections accepted here (max_connections) */
	bool open;
};

/* Where a connection with a transport stands. */
enum brk_xphase {
	XP_TLS,	 /* TLS handshake */
	XP_HTTP, /* waiting for the WebSocket upgrade request */
	XP_OPEN, /* MQTT bytes flow */
	XP_DONE, /* closing: nothing more is read */
};

/*
 * The transport of a TLS or WebSocket connection, allocated at accept.
 * obuf collects bytes for the socket (ciphertext, or frames of plain ws);
 * when a write starts it swaps with wbuf, the batch in flight, as c->out
 * does with brk_uvwr for plain connections. Both are given back once idle.
 */
struct brk_xport {
	struct brk_listener *l;
	struct gw_tls *tls; /* NULL: ws:// */
	uint8_t phase;	    /* enum brk_xphase */
	bool ws;
	bool close_sent; /* a WebSocket Close frame was queued */
	bool flushing;	 /* inside brk__xport_flush: sends need no brk__uv_mark_dirty */
	uint16_t close_code;
	char *identity; /* the client certificate's CN (use_identity_as_username) */
	char peer[48];	/* for the log lines of a failed handshake, when the peer may be gone */
	uint8_t *http;	/* the upgrade request while incomplete */
	uint32_t http_len;
	struct brk_ws_rx rx;
	uint8_t *obuf, *wbuf;
	size_t olen, ocap, wlen, wcap;
	uv_write_t wreq;
};

struct brk_uv {
	struct brk b; /* first: brk_free() frees this allocation */
	uv_timer_t tick;
	uv_check_t check;
	uv_prepare_t prep; /* before each poll: arms due, kicks if output waits */
	uv_idle_t kick;	   /* active: on_check has work the loop must not sleep on */
	uv_timer_t due;	   /* at b->next_due (a will delay or a session expiry ends) */
	int64_t due_armed; /* the next_due it is armed for, 0 = stopped */
	struct brk_listener lst[BRK_MAX_LISTENERS];
	unsigned int n_lst;
	/* Connections to flush (c->dirty set); a closed one's entry is NULL. */
	struct brk_uvconn **dirty;
	unsigned int n_dirty, cap_dirty;
	struct gw_list busy;   /* brk_uvwr: connections holding output memory */
	struct gw_list linger; /* brk_uvlinger: closed, waiting for the peer's FIN */
	uv_buf_t *iov;	       /* scratch for uv_write, which copies the array */
	unsigned int cap_iov;
	uint8_t *rbuf;
	uint8_t *xbuf;		 /* XBUF_SIZE: TLS plaintext in, output to frame and encrypt */
	struct brk_srctab *srcs; /* NULL: no per-source limit */
	int64_t refused_logged;	 /* when refused_log last spoke */
	unsigned int open_handles;
	bool started;
};

/*
 * What a write in flight needs; allocated when a connection's output does not
 * go out at once, given back on the tick after it caught up. While it exists
 * the connection is on u->busy, which the tick walks instead of every
 * connection.
 */
struct brk_uvwr {
	uv_write_t req;
	struct brk_obuf wbuf; /* the batch being written */
	struct gw_list link;  /* in u->busy */
	struct brk_uvconn *uc;
};

/*
 * A connection: nothing else is allocated for it while it is idle. c.writing
 * is non-zero while a uv_write is in flight; c.state is BRK_CS_CLOSING once
 * a close began, and c.last_rx then says when (a peer that does not read is
 * not waited for long).
 */
struct brk_uvconn {
	struct brk_conn c;
	uv_tcp_t tcp;
	struct brk_uvwr *w;
	struct brk_xport *x;	 /* NULL: plain MQTT over TCP */
	struct brk_listener *l;	 /* counted in its n_conns while set */
	struct brk_src *src;	 /* counted in the per-source table while set */
	uint8_t *proxy;		 /* proxy_protocol: the header while incomplete */
	uint16_t proxy_len;	 /* bytes of it read; */
	bool proxy_wait;	 /* the header is still to come */
	bool proxied;		 /* the source below is the header's */
	uint16_t sport;		 /* the header's source port */
	struct brk_src_key skey; /* the header's source address */
};

/*
 * A connection the protocol is done with, closed gracefully: its protocol
 * state is gone (brk__conn_closed ran when the lingering began, so sessions,
 * wills and figures see the close at once), the socket is shut down for
 * writing, so the peer reads our last packets and then EOF, and what the
 * peer still sends is read and dropped until it closes its side too or
 * LINGER_MS pass. Closing the socket at once instead makes the kernel answer
 * the peer's next bytes (a client that was still publishing, or answering
 * our PUBRECs) with a RST: the peer's next write fails and many stacks drop
 * what it had not read yet, so the DISCONNECT and its reason code, which
 * MQTT 5.0 has us send before closing (section 4.13, Handling errors; 4.9,
 * 0x93 Receive Maximum exceeded), are lost to it. A graceful close still
 * closes the Network Connection as section 3.14.4 requires, only in order.
 * Allocated only while lingering; the tcp handle's data points here then.
 */
struct brk_uvlinger {
	uv_shutdown_t req;
	struct gw_list link; /* in u->linger */
	struct brk_uvconn *uc;
	int64_t since;
};

static inline struct brk_uv *conn_uv(const struct brk_uvconn *uc)
{
	return uc->c.b->uv;
}

/* conn_uv.c: a connection's socket side. */

/* Write what @uc has queued (through its transport if it has one); closes it on an error. */
void brk__uv_flush(struct brk_uvconn *uc);
/* Close @uc at once (an error, the peer gone, the broker stopping). */
void brk__uv_close_now(struct brk_uvconn *uc);
/* Close @uc, whose output is all written, gracefully (struct brk_uvlinger). */
void brk__uv_close_linger(struct brk_uvconn *uc);
/* End @l's lingering: close its socket. */
void brk__uv_linger_close(struct brk_uvlinger *l);
/* Put @uc on the list on_check flushes (c->dirty not set yet). */
void brk__uv_mark_dirty(struct brk_uvconn *uc);
/* Give back @uc's write state (struct brk_uvwr), if any. */
void brk__uv_writer_free(struct brk_uvconn *uc);
/* "address:port" of @t's peer into @out. */
void brk__uv_peer_name(uv_tcp_t *t, char *out, size_t n);
/* uv_listen's callback: accept a connection on the listener in server->data. */
void brk__uv_on_connection(uv_stream_t *server, int status);

/* transport_uv.c: the transport of a TLS or WebSocket connection. */

/* The transport of a connection accepted on @l (not mqtt://), in uc->x. 0 or -ENOMEM. */
int brk__xport_new(struct brk_uvconn *uc, struct brk_listener *l);
/* Free uc->x, if any, and set it to NULL. */
void brk__xport_free(struct brk_uvconn *uc);
/* Bytes read from a connection with a transport. */
void brk__xport_input(struct brk_uvconn *uc, uint8_t *p, size_t n);
/* Frame and encrypt @uc's output and write it (brk__uv_flush for a connection with uc->x). */
void brk__xport_flush(struct brk_uvconn *uc);

#endif
