/*
 * uplink_int.h - the uplink core's internals, shared by its files and by
 * nothing else (the public interface is gateway/uplink.h; the unit tests use
 * only that):
 *
 *   uplink.c          the connection's life: states, backoff, the timer
 *                     (connect timeout, keepalive), new / free / start / stop
 *   uplink_session.c  the MQTT session with the cloud: CONNECT, SUBSCRIBE,
 *                     PUBLISH and its acknowledgements, the window, packets in
 *   uplink_queue.c    the messages in memory: lists, packet ids in use,
 *                     per-topic order counts, live and backlog modes, eviction
 *   uplink_drain.c    the queue drain: reading the store back (regions,
 *                     peeks), the drain rate, append completions
 *   uplink_forward.c  the forward path: local messages mapped and queued
 *                     (store append or memory), holds given back
 *   uplink_down.c     the command path: PUBLISH from the cloud into the
 *                     local broker, inbound QoS 2
 *
 * All of it is the sans-I/O core (struct gw_upl): no libuv, no clock (the
 * time comes in as an argument), no store or broker but through the ops;
 * uplink_uv.c is the glue. Everything runs on the loop thread.
 *
 * The functions below are the files' cross-file internals (gw_upl__NAME);
 * their comments are at their definitions.
 */
#ifndef FIELDMQ_UPLINK_INT_H
#define FIELDMQ_UPLINK_INT_H

#include "broker/mqtt_codec.h"
#include "gateway/uplink.h"

#define MOD "uplink"

/* Largest packet we accept from the cloud (announced in 5.0 CONNECT). */
#define UPL_RX_MAX (4u << 20)
/* Receive Maximum we announce: QoS 1/2 PUBLISH the cloud may have open with us. */
#define UPL_RECV_MAX 64
/* Records read from the store at a time, and the level under which we read more. */
#define UPL_PEEK_BATCH 512
/* Memory bound of the queue while connected; above it records are left in the store. */
#define UPL_MEM_MAX_MSGS 4096
#define UPL_MEM_MAX_BYTES (8u << 20)
/* QoS 0 is dropped rather than queued behind this many unwritten bytes. */
#define UPL_QOS0_MAX_BACKLOG (1u << 20)
/* How long a connection attempt (DNS, TCP, TLS, CONNACK) may take. */
#define UPL_CONNECT_TIMEOUT_MS 30000
/* Topic hash buckets of the per-topic order check (a power of two). */
#define UPL_TOPIC_BUCKETS 1024
/* Ended live periods whose records may still be read back (struct upl_region). */
#define UPL_MAX_REGIONS 8

enum upl_state {
	UPL_IDLE,	/* not started */
	UPL_WAIT,	/* waiting to reconnect */
	UPL_CONNECTING, /* transport being opened */
	UPL_CONNACK,	/* CONNECT sent */
	UPL_UP,		/* CONNACK accepted */
	UPL_STOPPED,
	__UPL_STATE_MAX
};

enum {
	M_QUEUED,    /* not sent (or to be sent again) */
	M_PUBLISHED, /* PUBLISH sent, waiting for PUBACK / PUBREC */
	M_RELEASED,  /* QoS 2: PUBREL sent, waiting for PUBCOMP */
};

/* Where a message is (see the head comment of uplink_queue.c). */
enum {
	Q_NONE,
	Q_RESUME,
	Q_BACKLOG,
	Q_LIVE,
	Q_HELD,
	Q_INFLIGHT
};

struct upl_pend;

/* A message to send up. Topic, payload and props blob follow the struct. */
struct upl_msg {
	struct gw_list link;
	struct upl_pend *pend; /* its append has not committed yet */
	uint64_t id;	       /* store id, 0 = memory only */
	uint32_t topic_len, payload_len, props_len;
	uint16_t pid;	 /* kept across a reconnect to resume a QoS 2 exchange */
	uint16_t bucket; /* of its topic in hot[] and n_held[] */
	uint8_t qos;
	uint8_t state;
	uint8_t where; /* Q_* */
	bool retain;
	bool from_store; /* read back with q_peek: the drain rate applies */
	bool birth;
	bool counted; /* counted in hot[] */
	bool ready;   /* one of the backlog's first bl_ready messages (uplink_drain.c) */
	uint8_t data[];
};

/* An append waiting for its commit, and the hold it keeps. */
struct upl_pend {
	struct gw_list link;
	uint64_t id;
	void *hold;
	struct upl_msg *m; /* NULL when the message is gone from memory */
	bool store_only;   /* appended without being kept: the store alone has it */
};

/*
 * An ended live period: live records have ids in (lo, hi]. Those sent may
 * still be in the store (acks commit later), so a read takes only the ids in
 * @ids, the records evicted from memory unsent (sorted). @all: an id could
 * not be recorded (no memory), every record is taken (duplicates possible,
 * nothing lost).
 */
struct upl_region {
	uint64_t lo, hi;
	uint64_t *ids;
	uint32_t n, cap;
	bool all;
};

struct gw_upl {
	const struct gw_upl_ops *ops;
	void *arg;
	const struct gw_logger *log;

	/* Configuration. */
	char *url;
	char *client_id, *username, *password;
	char *remote_prefix, *local_prefix;
	char *status_topic; /* local */
	char *will_topic;   /* remote */
	struct gw_filter fwd[GW_MAX_FILTERS], sub[GW_MAX_FILTERS];
	unsigned int n_fwd, n_sub;
	uint8_t version;
	uint16_t keepalive_s;
	uint32_t session_expiry_s;
	enum gw_uplink_queue qmode;
	bool queue_qos0;
	uint16_t max_inflight;
	uint32_t drain_rate;
	uint64_t rmin, rmax;
	bool has_store;

	/* Connection. */
	enum upl_state state;
	int64_t since;
	int64_t retry_at;
	unsigned int attempts;
	int64_t last_tx;
	int64_t ping_sent; /* 0: no PINGREQ outstanding */
	uint16_t ka_s;	   /* keepalive in use (the server may change it) */
	uint16_t quota;	   /* QoS >= 1 PUBLISH we may have in flight */
	uint8_t max_qos;
	bool retain_ok;
	uint32_t max_pkt; /* the server's Maximum Packet Size, 0 = none */
	uint16_t sub_pid;
	uint16_t next_pid;
	/*
	 * Packet ids held by messages in flight or to resume: alloc_pid checks
	 * a bit instead of walking both lists (a drain with a large window
	 * spent a tenth of its time there).
	 */
	uint8_t pid_used[65536 / 8];
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *tx;
	size_t tx_cap;
	/* Inbound QoS 2 packet ids between PUBREC and PUBREL. */
	uint16_t inq[UPL_RECV_MAX];
	unsigned int n_inq;

	/* Queue. */
	struct gw_list resume, blq, live, held, inflight, pend;
	uint32_t n_queue, n_inflight, n_mem;
	uint64_t mem_bytes;
	bool backlog;		 /* the store may hold records not read yet */
	bool blind;		 /* ... of an earlier run, whose topics are not counted */
	bool live_on;		 /* new messages are live (else backlog) */
	bool turn_live;		 /* the live list's turn next */
	bool release_due;	 /* a hot bucket cooled down: look at the held list */
	bool peek_short;	 /* read through, but store-only appends wait for their commit */
	uint64_t live_from;	 /* live records have ids above it */
	uint64_t last_append_id; /* the highest id the store gave us */
	uint64_t peek_after;	 /* set with gw_upl__set_peek_after() only */
	/*
	 * The first bl_ready messages of blq have ids up to peek_after (or 0)
	 * and are marked ready; bl_last is the last of them, &blq when none.
	 * maybe_peek counts on from there instead of walking the backlog on
	 * every pump (see uplink_drain.c).
	 */
	uint32_t bl_ready;
	struct gw_list *bl_last;
	uint64_t last_bl_sent; /* the highest id sent from the backlog */
	uint32_t n_pend_store; /* store-only appends not committed yet */
	bool peeking;
	uint64_t evict_gen, peek_gen;
	struct upl_region regions[UPL_MAX_REGIONS];
	unsigned int n_regions;
	uint32_t hot[UPL_TOPIC_BUCKETS];
	uint32_t n_held[UPL_TOPIC_BUCKETS];
	/* Drain rate: a token bucket in thousandths of a message. */
	int64_t tok_at;
	int64_t tokens;
	bool rate_blocked;

	struct gw_uplink_stats st;
	bool logged_drop;
};

static inline uint8_t *msg_topic(struct upl_msg *m)
{
	return m->data;
}

static inline uint8_t *msg_payload(struct upl_msg *m)
{
	return m->data + m->topic_len;
}

static inline uint8_t *msg_props(struct upl_msg *m)
{
	return m->data + m->topic_len + m->payload_len;
}

static inline size_t msg_size(const struct upl_msg *m)
{
	return m->topic_len + m->payload_len + m->props_len;
}

/*
 * Small helpers of the send path, inline here: as calls between the files
 * they added about 1% to the instructions of a drain (cachegrind).
 */

static inline void gw_upl__pid_mark(struct gw_upl *u, uint16_t pid, bool on)
{
	if (on)
		u->pid_used[pid >> 3] |= (uint8_t)(1u << (pid & 7));
	else
		u->pid_used[pid >> 3] &= (uint8_t) ~(1u << (pid & 7));
}

static inline bool gw_upl__pid_holds(uint8_t where)
{
	return where == Q_INFLIGHT || where == Q_RESUME;
}

/* @m was sent or dropped: it no longer counts in hot[] (uplink_queue.c). */
static inline void gw_upl__hot_del(struct gw_upl *u, struct upl_msg *m)
{
	if (!m->counted)
		return;
	m->counted = false;
	if (u->hot[m->bucket] && !--u->hot[m->bucket])
		u->release_due = true;
}

/* Whether @m needs a free slot of the window, and there is none. */
static inline bool gw_upl__window_full(const struct gw_upl *u, const struct upl_msg *m)
{
	return m->qos && GW_MIN(m->qos, u->max_qos) && u->n_inflight >= u->quota;
}

/* ---------------------------------------------------------- uplink.c */

void gw_upl__set_state(struct gw_upl *u, enum upl_state s, int64_t now);
void gw_upl__drop_link(struct gw_upl *u, int64_t now, const char *why);

/* -------------------------------------------------- uplink_session.c */

int gw_upl__send_pkt(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now);
int gw_upl__send_ack(struct gw_upl *u, uint8_t type, uint16_t pid, int64_t now);
int gw_upl__send_connect(struct gw_upl *u, int64_t now);
int64_t gw_upl__wall_ms(const struct gw_upl *u);
int gw_upl__send_msg(struct gw_upl *u, struct upl_msg *m, bool resume, int64_t now);
void gw_upl__pump(struct gw_upl *u, int64_t now);

/* ---------------------------------------------------- uplink_queue.c */

uint16_t gw_upl__topic_bucket(const uint8_t *p, size_t len);
struct upl_msg *gw_upl__msg_new(struct gw_slice topic, struct gw_slice payload,
				struct gw_slice props, uint8_t qos, bool retain, uint64_t id);
void gw_upl__q_account(struct gw_upl *u, struct upl_msg *m, uint8_t where);
void gw_upl__q_add(struct gw_upl *u, struct upl_msg *m, uint8_t where, bool head);
void gw_upl__q_unlink(struct gw_upl *u, struct upl_msg *m);
void gw_upl__msg_free(struct gw_upl *u, struct upl_msg *m);
void gw_upl__live_off(struct gw_upl *u);
void gw_upl__maybe_live_on(struct gw_upl *u);
void gw_upl__release_held(struct gw_upl *u);
void gw_upl__evict(struct gw_upl *u);
void gw_upl__queue_new(struct gw_upl *u, struct upl_msg *m);

/* ---------------------------------------------------- uplink_drain.c */

void gw_upl__region_mark(struct gw_upl *u, uint64_t id);
void gw_upl__regions_trim(struct gw_upl *u);
void gw_upl__set_peek_after(struct gw_upl *u, uint64_t id);
void gw_upl__bl_added(struct gw_upl *u, struct upl_msg *m);
void gw_upl__bl_removed(struct gw_upl *u, struct upl_msg *m);
uint32_t gw_upl__bl_count(struct gw_upl *u);
void gw_upl__enter_backlog(struct gw_upl *u);
void gw_upl__maybe_peek(struct gw_upl *u);
struct upl_msg *gw_upl__backlog_ready(struct gw_upl *u, int64_t now);

/* -------------------------------------------------- uplink_forward.c */

int gw_upl__map_topic(struct gw_slice in, const char *strip, const char *add, uint8_t *buf,
		      size_t cap);
void gw_upl__release(struct gw_upl *u, void *hold);

/* ----------------------------------------------------- uplink_down.c */

void gw_upl__inq_del(struct gw_upl *u, uint16_t pid);
int gw_upl__on_publish(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now);

#endif
