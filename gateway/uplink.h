/*
 * uplink.h - the bridge to one cloud MQTT broker.
 *
 * The uplink is an MQTT 3.1.1 / 5.0 client of the cloud and an in-process
 * client of the local broker: it subscribes locally to the forward filters
 * and publishes them up (with remote_prefix), subscribes in the cloud to the
 * subscribe filters and publishes what comes down into the local broker
 * (with local_prefix). With queue = always every QoS >= 1 message forwarded
 * goes through the store: appended before it is sent, deleted when the cloud
 * acknowledges it, and the local publisher's PUBACK waits for the commit.
 *
 * Two layers, as DESIGN.md asks:
 *  - the sans-I/O core (struct gw_upl): MQTT client and queue state machine.
 *    It is fed events (bytes, transport up/down, local messages, store
 *    completions) and a monotonic clock, and acts through struct gw_upl_ops.
 *    It never touches libuv, sockets, the store or the broker itself, so the
 *    unit tests drive it with a fake clock and fake collaborators. Its
 *    files (uplink.c, uplink_session.c, uplink_queue.c, uplink_drain.c,
 *    uplink_forward.c, uplink_down.c) share gateway/uplink_int.h, which
 *    maps them.
 *  - the daemon glue (struct gw_uplink, uplink_uv.c): libuv TCP, async DNS,
 *    TLS (tls.h) and the real store and broker behind the ops.
 *
 * Everything runs on the loop thread.
 */
#ifndef FIELDMQ_UPLINK_H
#define FIELDMQ_UPLINK_H

/* libuv's loop by its struct name: the core (uplink*.c) never includes <uv.h>. */
struct uv_loop_s;

#include "broker/broker.h"
#include "gateway/base/base.h"
#include "gateway/config.h"
#include "store/store.h"

/* ---------------------------------------------------------------- figures */

struct gw_uplink_stats {
	bool connected;
	uint64_t connects; /* successful CONNACKs since start */
	uint64_t sent;	   /* PUBLISH acknowledged by the cloud (QoS 0: written) */
	uint64_t received; /* PUBLISH from the cloud published locally */
	uint64_t dropped;  /* dropped by the uplink itself (queue = off offline, memory bound) */
	uint64_t queued;   /* store: messages in the uplink queue (glue fills it) */
	uint64_t store_dropped; /* store: dropped by its overflow policy, ever (glue fills it) */
	uint64_t inflight;	/* sent, waiting for the cloud's acknowledgement */
};

/* -------------------------------------------------------- sans-I/O core */

struct gw_upl;

/*
 * What the core needs from the world. Every function receives ops_arg. A
 * completion the core waits for comes back through the matching gw_upl_on_*
 * call, never from inside the op itself.
 */
struct gw_upl_ops {
	/*
	 * Start a connection (DNS, TCP, TLS). The glue later calls
	 * gw_upl_on_transport_up() or gw_upl_on_transport_down(). Returns 0 or
	 * -errno (then the core waits and retries as for a failed attempt).
	 */
	int (*connect)(void *arg);
	/* Queue @len bytes for the open connection (copied). 0 or -errno. */
	int (*send)(void *arg, const void *p, size_t len);
	/* Bytes queued and not yet written (QoS 0 is dropped above a bound). May be NULL. */
	size_t (*backlog)(void *arg);
	/*
	 * Drop the connection. The glue must not report anything more about
	 * it (no on_transport_down for a close the core asked for).
	 */
	void (*close)(void *arg);

	/*
	 * The store's uplink queue (all three NULL: no store, messages are
	 * kept in memory only). q_append: as st_queue_append, @waited when a
	 * local publisher's ack waits on it (ST_WAITED: commit as soon as the
	 * store is idle); its completion is gw_upl_on_appended(). q_peek: as
	 * st_queue_peek; its completion is gw_upl_on_peeked(). q_ack: as
	 * st_queue_ack.
	 */
	int (*q_append)(void *arg, const struct st_record *rec, bool waited, uint64_t *id);
	int (*q_peek)(void *arg, uint64_t after_id, size_t max_n);
	int (*q_ack)(void *arg, uint64_t id);

	/* Publish a message that came down into the local broker. 0 or -errno. */
	int (*local_publish)(void *arg, const struct brk_pub *pub);
	/* Give back a hold handed to gw_upl_on_local() (brk_hold_release). */
	void (*hold_release)(void *arg, void *hold);
	/* A random 32-bit number for the backoff jitter. */
	uint32_t (*random)(void *arg);
	/*
	 * The wall clock, ms since the Unix epoch: a message expiry is stored
	 * with the time it was queued and what is left of it is sent (the core
	 * reads no clock itself). NULL: no wall clock, expiries go unchanged.
	 */
	int64_t (*wall_ms)(void *arg);
};

/*
 * gw_upl_new - a core for @cfg (copied: the strings too). @status_topic is the
 * gateway's local status topic (topic_prefix + "/status"): the core owns its
 * remote twin (birth "online" and will "offline", retained) and never
 * forwards the local one. @lg may be NULL. Returns 0 and *out, -ENOMEM,
 * -EINVAL (a filter or prefix that cannot be used).
 */
int gw_upl_new(const struct gw_uplink_config *cfg, const char *status_topic,
	       const struct gw_upl_ops *ops, void *ops_arg, const struct gw_logger *lg,
	       struct gw_upl **out);

/*
 * gw_upl_free - free the core. Holds it still has are released through
 * ops->hold_release first.
 */
void gw_upl_free(struct gw_upl *u);

/* Start: the first connection attempt is made at once. */
void gw_upl_start(struct gw_upl *u, int64_t now);

/*
 * gw_upl_stop - publish "offline" (retained) and DISCONNECT when connected,
 * then close. Afterwards only gw_upl_on_appended() / gw_upl_on_peeked() are
 * served (they release holds and free what they bring).
 */
void gw_upl_stop(struct gw_upl *u, int64_t now);

/* Monotonic ms at which gw_upl_on_timer() wants to run; INT64_MAX for never. */
int64_t gw_upl_deadline(const struct gw_upl *u);
void gw_upl_on_timer(struct gw_upl *u, int64_t now);

/* The connection asked for by ops->connect is open (TLS handshake done). */
void gw_upl_on_transport_up(struct gw_upl *u, int64_t now);
/* The connection failed or was lost; @err a -errno for the log. */
void gw_upl_on_transport_down(struct gw_upl *u, int err, int64_t now);
/* Bytes received on the open connection. */
void gw_upl_on_data(struct gw_upl *u, const void *p, size_t len, int64_t now);

/*
 * gw_upl_on_local - a local message matched a forward filter. @d is the
 * broker's delivery; @hold (may be NULL) the publisher's acknowledgement,
 * taken with brk_hold_take(): the core owns it from here and gives it back
 * with ops->hold_release once the message is safe (committed, or not going
 * to be stored).
 */
void gw_upl_on_local(struct gw_upl *u, const struct brk_delivery *d, void *hold, int64_t now);

/* Completions of ops->q_append and ops->q_peek (see st_done_fn, st_peek_fn). */
void gw_upl_on_appended(struct gw_upl *u, uint64_t id, int status, int64_t now);
void gw_upl_on_peeked(struct gw_upl *u, int status, const struct st_qrecord *recs, size_t n,
		      int64_t now);

void gw_upl_get_stats(const struct gw_upl *u, struct gw_uplink_stats *out);

/*
 * The backoff before reconnect attempt number @attempt (0 = the first retry):
 * base = min(max_ms, min_ms * 2^attempt), shortened by a random amount of up
 * to a quarter (@rnd), so the result lies in [base * 3 / 4, base]. Exposed for
 * the tests.
 */
uint64_t gw_upl_backoff(uint64_t min_ms, uint64_t max_ms, unsigned int attempt, uint32_t rnd);

/* -------------------------------------------------------------- daemon glue */

struct gw_uplink;

/*
 * gw_uplink_new - the uplink of the daemon: a core driven by libuv on @loop,
 * attached to broker @b (an in-process client "$fieldmq-uplink") and store
 * @st (may be NULL: memory only). @cfg must outlive the uplink. Loads the TLS
 * material (ca_file, cert_file, key_file) at once, so a bad file is an error
 * here. Returns 0 and *out, -ENOMEM, -EINVAL (TLS material, logged).
 */
int gw_uplink_new(struct uv_loop_s *loop, const struct gw_uplink_config *cfg,
		  const char *status_topic, struct brk *b, struct st_store *st,
		  const struct gw_logger *lg, struct gw_uplink **out);

/* Subscribe locally and start connecting. 0 or -errno. */
int gw_uplink_start(struct gw_uplink *up);

/*
 * gw_uplink_stop - say goodbye to the cloud, detach from the broker and close
 * the handles (asynchronously). Call before st_close(): the store's last
 * append callbacks still reach the uplink, so free it only after the loop
 * has run dry (gw_uplink_free()).
 */
void gw_uplink_stop(struct gw_uplink *up);
void gw_uplink_free(struct gw_uplink *up);

void gw_uplink_get_stats(const struct gw_uplink *up, struct gw_uplink_stats *out);

#endif
