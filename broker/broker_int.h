/*
 * broker_int.h - private bodies of the broker: reference counted messages,
 * the subscription tree with its retained messages, sessions, connections
 * (the sans-I/O protocol machine) and the core. Included only by the broker sources
 * and tests/broker/.
 *
 * Ownership in brief: a struct brk_msg is shared by every queue and every
 * pending write that refers to it (brk__msg_ref / brk__msg_unref); a session
 * is owned by the broker's session table; a connection is owned by its glue
 * (conn_uv.c, or a test's fake transport) and points at its session.
 */
#ifndef FIELDMQ_BROKER_INT_H
#define FIELDMQ_BROKER_INT_H

#include <sys/uio.h>

#include "broker/broker.h"

struct brk_session;
struct brk_conn;
struct brk_tnode;
struct brk_auth_job;
struct mqtt_pkt;
struct mqtt_props;
struct mqtt_connect;

/* ------------------------------------------------------------- messages */

/*
 * One published message, shared by every subscriber: topic, payload and
 * properties live in one allocation after the header. Immutable once built.
 * The header is 13 bytes: a message without properties (every reading of an
 * adapter) carries no room for them - a retained store of 10 000 readings
 * is mostly such messages. One with properties has a struct brk_msg_ext
 * after its payload (8-byte aligned), then the properties' bytes.
 */
struct brk_msg {
	uint32_t refs;
	uint32_t payload_len;
	uint16_t topic_len;
	uint8_t qos;
	bool retain;
	bool has_props; /* a struct brk_msg_ext follows the payload */
	char topic[];	/* NUL-terminated, then payload, then the ext and property bytes */
};

struct brk_msg_ext {
	int64_t expire_at;	    /* monotonic ms; 0 = never */
	struct brk_msg_props props; /* slices into the bytes that follow */
};

static inline const uint8_t *brk__msg_payload(const struct brk_msg *m)
{
	return (const uint8_t *)m->topic + m->topic_len + 1;
}

/* @m's properties and expiry, or NULL when it has none. */
static inline const struct brk_msg_ext *brk__msg_ext(const struct brk_msg *m)
{
	uintptr_t end = (uintptr_t)(brk__msg_payload(m) + m->payload_len);

	return m->has_props ? (const struct brk_msg_ext *)((end + 7) & ~(uintptr_t)7) : NULL;
}

static inline const struct brk_msg_props *brk__msg_props(const struct brk_msg *m)
{
	return m->has_props ? &brk__msg_ext(m)->props : NULL;
}

/* When @m expires (monotonic ms), 0 for never. */
static inline int64_t brk__msg_expire_at(const struct brk_msg *m)
{
	return m->has_props ? brk__msg_ext(m)->expire_at : 0;
}

/*
 * brk__msg_new - copy @pub into a new message with refs = 1. @now is the
 * monotonic clock in ms (for the expiry). NULL on out-of-memory.
 */
struct brk_msg *brk__msg_new(const struct brk_pub *pub, int64_t now);
static inline struct brk_msg *brk__msg_ref(struct brk_msg *m)
{
	m->refs++;
	return m;
}
void brk__msg_unref(struct brk_msg *m);
/* Seconds left before @m expires (at least 1), or 0 if it has no expiry. */
uint32_t brk__msg_expiry_left(const struct brk_msg *m, int64_t now);
static inline bool brk__msg_expired(const struct brk_msg *m, int64_t now)
{
	int64_t at = brk__msg_expire_at(m);

	return at && now >= at;
}
static inline struct gw_slice brk__msg_topic(const struct brk_msg *m)
{
	return (struct gw_slice){ (const uint8_t *)m->topic, m->topic_len };
}

/* The message as a brk_pub (slices into @m). */
static inline struct brk_pub brk__msg_pub(const struct brk_msg *m)
{
	struct brk_pub pub = {
		.topic = brk__msg_topic(m),
		.payload = { brk__msg_payload(m), m->payload_len },
		.qos = m->qos,
		.retain = m->retain,
		.props = brk__msg_props(m),
	};

	return pub;
}

/* --------------------------------------------------------- topic tree */

/* A subscription of one session to one filter (possibly shared). */
struct brk_sub {
	struct gw_list node_link; /* in the node's subs or its share group's members */
	struct gw_list sess_link; /* in the session's subs */
	struct brk_session *s;
	struct brk_tnode *node;
	struct brk_share *share; /* NULL: not shared */
	uint8_t qos;
	uint8_t opts; /* BRK_SUB_* flags */
	uint32_t sub_id;
	uint16_t filter_len;
	char filter[]; /* as subscribed, with any $share/group/ prefix */
};

/* A share group on one filter: the members take turns. */
struct brk_share {
	struct gw_list link; /* in the node's shares */
	struct gw_list members;
	struct brk_sub *last; /* the last member that received, for round robin */
	char name[];
};

/*
 * What a node holds for subscriptions: its + and # children, the
 * subscriptions ending here and their share groups. Allocated with the
 * first of them and freed when the last goes, so the nodes of topics only
 * published to (10 000 retained readings of a device map: most nodes) carry
 * 8 bytes for it instead of 48.
 */
struct brk_tfilters {
	struct brk_tnode *plus, *hash;
	struct gw_list subs;
	struct gw_list shares;
};

/*
 * A level of the topic space. Literal children are kept in a small hash table
 * so matching costs one lookup per level, whatever the fan-out; the + and #
 * children hang off f. A node also holds the retained message of the topic
 * that ends here.
 */
struct brk_tnode {
	struct brk_tnode *parent;
	struct brk_tnode *hnext; /* chain in the parent's hash bucket */
	struct brk_tnode **buckets;
	uint32_t n_buckets, n_children;
	struct brk_tfilters *f; /* NULL: no wildcard child, subscription or share here */
	struct brk_msg *retained;
	uint32_t n_retained_below; /* retained messages in this subtree (prunes searches) */
	uint16_t len;
	char word[];
};

struct brk_tree {
	struct brk_tnode *root;
	uint64_t n_subs;
	uint64_t n_retained;
};

/* One session that a publish matched, after merging overlapping subscriptions. */
struct brk_match {
	struct brk_session *s;
	uint8_t qos;
	bool rap;
	bool shared;
	uint8_t n_ids;
	uint32_t ids[8];
};

/* Scratch for brk__tree_match, reused between publishes (no per-message malloc). */
struct brk_matches {
	struct brk_match *v;
	unsigned int n, cap;
	uint64_t gen;
	int err; /* -ENOMEM if a match could not be recorded */
};

int brk__tree_init(struct brk_tree *t);
void brk__tree_fini(struct brk_tree *t);
/*
 * brk__tree_sub - add @sub (filter, s, qos, opts, sub_id filled) to the tree.
 * The caller has validated the filter. 0 or -ENOMEM (sub untouched).
 */
int brk__tree_sub(struct brk_tree *t, struct brk_sub *sub);
/* Remove @sub from the tree (not freed); prunes empty nodes. */
void brk__tree_unsub(struct brk_tree *t, struct brk_sub *sub);
/*
 * brk__tree_match - collect in @out the sessions subscribed to @topic, one
 * entry per session (highest QoS, every subscription id), plus one chosen
 * member per matching share group. @publisher is skipped by no-local subs.
 * The caller sets out->gen to a value never used before.
 */
void brk__tree_match(struct brk_tree *t, struct gw_slice topic, const struct brk_session *publisher,
		     struct brk_matches *out);
/*
 * brk__tree_retain - set (non-empty payload) or clear the retained message of
 * m's topic; takes a reference on @m when set. 0 or -ENOMEM.
 */
int brk__tree_retain(struct brk_tree *t, struct brk_msg *m);
/* Call @fn for each retained message whose topic matches @filter (no $share prefix). */
void brk__tree_retained_foreach(struct brk_tree *t, struct gw_slice filter,
				void (*fn)(void *arg, struct brk_msg *m), void *arg);

/* Validation [MQTT-4.7]: names have no wildcards; filters use them correctly. */
bool brk__topic_name_valid(struct gw_slice t);
bool brk__topic_filter_valid(struct gw_slice f);
/*
 * Splits "$share/group/filter": returns true and the parts for a valid shared
 * filter, false for a plain filter. *bad is set for a malformed $share filter.
 */
bool brk__share_split(struct gw_slice f, struct gw_slice *group, struct gw_slice *filter,
		      bool *bad);

/* ------------------------------------------------------- access control */

enum {
	BRK_ACL_READ = 1,
	BRK_ACL_WRITE = 2,
	BRK_ACL_DENY = 4,
};

/* A line of the acl file. Strings point into acl->text. */
struct brk_acl_rule {
	const char *user;   /* topic rules after "user NAME"; NULL: every client */
	const char *filter; /* NUL-terminated, len bytes */
	uint32_t len;
	uint8_t access; /* BRK_ACL_* */
	bool pattern;
	bool pat_c, pat_u; /* a pattern with %c, %u */
};

struct brk_acl {
	char *text;
	struct brk_acl_rule *rules;
	unsigned int n, cap;
	bool pat_c, pat_u; /* some pattern uses %c, %u */
};

/* A rule as it applies to one client: patterns are already expanded. */
struct brk_acl_ent {
	const char *filter;
	size_t len;
	uint8_t access;
};

/*
 * The rules of one client subject to the ACL (a network client, or an
 * in-process one made with opts.acl), built at CONNECT; one allocation.
 */
struct brk_acl_view {
	unsigned int n;
	bool has_deny;
	const char *user;	/* the user name the rules were chosen by (NULL: none) */
	struct brk_acl_ent e[]; /* then the user name and the expanded pattern strings */
};

/*
 * brk__acl_view_new - the rules of @acl that apply to a client with
 * @client_id and @user (NULL: none), patterns expanded. A client id or user
 * name with '+' or '#' gets no rule at all when a pattern would use it. A
 * @client_id with a NULL .p is a publisher without an id (MQTT-SN QoS -1):
 * no pattern applies to it. 0
 * and *out (gw_free it; it points into @acl, which must outlive it), or
 * -ENOMEM.
 */
int brk__acl_view_new(const struct brk_acl *acl, struct gw_slice client_id,
		      const struct gw_slice *user, struct brk_acl_view **out);
/* @want (BRK_ACL_READ or _WRITE) granted on @topic by some rule and no deny rule matches. */
bool brk__acl_allowed(const struct brk_acl_view *v, struct gw_slice topic, unsigned int want);
/*
 * A subscription to @filter (a $share/group/ prefix is ignored) is allowed:
 * some read rule covers it and no deny rule does. A deny rule that covers
 * only part of it is left to delivery (brk__acl_allowed per message).
 */
bool brk__acl_sub_allowed(const struct brk_acl_view *v, struct gw_slice filter);
/*
 * brk__session_acl_attach - give @s the ACL rules @v (ownership taken).
 * @present: the session existed before (resumed, or its rules replaced by a
 * reload): its deliveries are checked one by one from now on and what it
 * has queued and may no longer read is dropped.
 */
void brk__session_acl_attach(struct brk_session *s, struct brk_acl_view *v, bool present);
/* Topic filter @f matches topic name @t ($ topics excluded from leading wildcards). */
bool brk__acl_match(struct gw_slice f, struct gw_slice t);
/* Every topic that filter @f can match is matched by rule filter @r. */
bool brk__acl_covers(struct gw_slice r, struct gw_slice f);

/* ---------------------------------------------------------- passwords */

#define BRK_PW_HASH_LEN 64
#define BRK_PASSWD_MAX_LINE 4096
#define BRK_PASSWD_MAX_ITER 10000000u

enum brk_pw_kind {
	BRK_PW_NONE,
	BRK_PW_SHA512,	      /* $6$ */
	BRK_PW_PBKDF2_SHA512, /* $7$ */
};

/* One user's hash, as mosquitto_passwd wrote it. */
struct brk_pw_entry {
	uint8_t kind; /* enum brk_pw_kind */
	uint8_t salt_len;
	uint32_t iterations; /* $7$ */
	uint8_t salt[64];
	uint8_t hash[BRK_PW_HASH_LEN];
};

/*
 * brk_passwd_line - parse one line of a password_file (passwd_codec.c, pure).
 * @line is @len bytes without its newline. Returns 1 and *user (a slice
 * into @line) and *e; 0 for a blank or comment line; -EINVAL with a reason
 * in *why (a static string).
 */
int brk_passwd_line(const char *line, size_t len, struct gw_slice *user, struct brk_pw_entry *e,
		    const char **why);
/* An entry that costs what @pw's entries cost to check and matches nothing (unknown users). */
void brk__passwd_dummy(const struct brk_passwd *pw, struct brk_pw_entry *out);
/* The entry of @user in @pw, or NULL. */
const struct brk_pw_entry *brk__passwd_find(const struct brk_passwd *pw, struct gw_slice user);
/*
 * brk__passwd_verify - does @pw (@len bytes) hash to @e? Slow on purpose
 * ($7$): call it on the thread pool, never on the loop thread. Thread-safe
 * (touches nothing but its arguments). The comparison takes constant time.
 */
bool brk__passwd_verify(const struct brk_pw_entry *e, const uint8_t *pw, size_t len);

/*
 * A CONNECT waiting for its password check. One allocation: the struct, then
 * a copy of the CONNECT packet (the password is a slice of it), so that the
 * worker needs nothing the loop thread may change: the entry is a copy too,
 * and a reload of the file does not disturb it.
 */
struct brk_auth_job {
	struct gw_list link; /* b->auth_wait, then b->auth_run */
	struct brk *b;	     /* NULL once the broker is gone */
	struct brk_conn *c;  /* NULL once the connection closed */
	/* brk_check_password: the caller's callback instead of a connection. */
	void (*done)(void *arg, int verdict);
	void *done_arg;
	struct brk_pw_entry ent;
	bool known; /* the user is in the file: else a dummy entry costs the same time */
	bool ok;    /* the worker's verdict */
	bool running;
	const uint8_t *pw; /* into pkt */
	size_t pw_len;
	uint8_t *rest; /* input that came after the CONNECT, fed once it is accepted */
	size_t rest_len;
	size_t pkt_len;
	uint8_t pkt[];
};

/* Jobs running on the thread pool at once, so that other work (SQLite commits) keeps threads. */
#define BRK_AUTH_MAX_RUNNING 2
/* CONNECTs waiting for a slot; more are refused at once (CONNACK server busy). */
#define BRK_AUTH_MAX_WAITING 256
/* Bytes all jobs may hold (CONNECT copies and later input); more: refused. */
#define BRK_AUTH_MAX_BYTES (4u << 20)

/*
 * brk__auth_begin - check CONNECT @pkt (@len bytes, decoded into @p) of @c
 * against the password_file off the loop thread: c enters BRK_CS_AUTH, its
 * reading is paused, and on_connect runs again with the verdict. 0, or
 * -EBUSY (too many checks waiting: refuse the client), -ENOMEM.
 */
int brk__auth_begin(struct brk_conn *c, const struct mqtt_pkt *p, const uint8_t *pkt, size_t len,
		    int64_t now);
/* Input for a connection in BRK_CS_AUTH: kept for after the verdict. 0, or -EMSGSIZE, -ENOMEM. */
int brk__auth_hold_input(struct brk_conn *c, const uint8_t *data, size_t len);
/* The worker: computes j->ok. Runs on a pool thread. */
void brk__auth_work(struct brk_auth_job *j);
/*
 * The job is back on the loop thread: the connection (if still there) gets
 * its CONNACK, the next waiting job starts. Frees @j.
 */
void brk__auth_done(struct brk_auth_job *j, int64_t now);
/* The connection closed while its job waits or runs. */
void brk__auth_conn_closed(struct brk_conn *c);
/* auth_uv.c: run @j on the libuv thread pool (b->auth_start of a broker made by brk_new). */
int brk__auth_uv_start(struct brk *b, struct brk_auth_job *j);
/* brk__fini: forget waiting jobs, detach running ones. */
void brk__auth_fini(struct brk *b);
/* conn.c: the rest of on_connect, once the password is known to be right (or not). */
void brk__conn_connect_verdict(struct brk_conn *c, const uint8_t *pkt, size_t len, bool ok,
			       int64_t now);
/* conn.c: feed input held during the check. */
void brk__conn_input_held(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now);

/* ----------------------------------------------------------- sessions */

/* The same values as the public enum brk_msg_state (saved as such). */
enum brk_qstate {
	BRK_Q_QUEUED = BRK_MSG_QUEUED,	     /* waiting for a connection or an inflight slot */
	BRK_Q_PUBLISHED = BRK_MSG_PUBLISHED, /* PUBLISH sent, waiting for PUBACK / PUBREC */
	BRK_Q_RELEASED = BRK_MSG_RELEASED,   /* PUBREL sent, waiting for PUBCOMP */
};

/* A message queued for, or in flight to, one session. */
struct brk_qmsg {
	struct gw_list link;
	struct brk_msg *m; /* NULL once a QoS 2 message is released (only the pid remains) */
	uint64_t seq;	   /* persistence key */
	uint16_t pid;
	uint8_t qos;
	uint8_t state;
	bool retain;
	uint8_t n_ids;
	uint32_t ids[];
};

/*
 * A qmsg with up to this many subscription ids fits a pool node; more (rare)
 * take an allocation of their own.
 */
#define BRK_QMSG_POOL_IDS 6

/*
 * An acknowledgement a publisher waits for, held by in-process subscribers.
 * A network publisher's holds are on its session's acks list, in PUBLISH
 * order (PUBACK / PUBREC go out in that order). An in-process publisher's
 * (brk_client_publish_acked) and those whose session ended while taken are
 * on b->loose_holds; their acked callback, if any, fires when refs drops to 0.
 */
struct brk_hold {
	struct gw_list link;
	struct brk *b;	       /* NULL once the broker is gone: the last release frees */
	struct brk_session *s; /* network publisher's session; NULL otherwise */
	void (*acked)(void *arg, int status);
	void *arg;
	uint32_t refs;
	uint16_t pid;
	uint8_t kind;	/* MQTT packet type of the ack: PUBACK or PUBREC; 0 in-process */
	uint8_t reason; /* of the ack: 0, or 0x87 for a 5.0 PUBLISH the ACL refused */
};

/*
 * Fixed-size nodes for what every QoS >= 1 message costs per subscriber (a
 * brk_qmsg) and per publish (a brk_hold, a brk_inq): a free list, so the
 * steady state does no malloc per message. Nodes are allocated one by one
 * with gw_malloc (so each can be freed alone), returned to the list on free,
 * at most BRK_POOL_MAX_FREE kept; brk__tick gives back those that stayed
 * unused for a whole tick, so an idle broker keeps none.
 */
#define BRK_NODE_SIZE 64
#define BRK_POOL_MAX_FREE 4096

struct brk_pool {
	void *free; /* singly linked through each node's first word */
	uint32_t n_free;
	uint32_t low;	    /* fewest free nodes since the last trim */
	uint64_t n_mallocs; /* nodes that had to be allocated (for tests and figures) */
};

/* A node of BRK_NODE_SIZE bytes (uninitialised), or NULL on out-of-memory. */
void *brk__node_get(struct brk *b);
/* Give back a node from brk__node_get(); @b NULL: free it (the broker is gone). */
void brk__node_put(struct brk *b, void *p);
/* Free the nodes that stayed unused since the last call (every tick). */
void brk__pool_trim(struct brk *b);

/* A QoS 2 packet id received from the client whose PUBREL has not come yet. */
struct brk_inq {
	struct gw_list link;
	uint16_t pid;
};

/* One per client, idle ones included: fields ordered so that no padding is left. */
struct brk_session {
	struct brk *b;
	struct brk_session *hnext; /* chain in the broker's session table */
	struct gw_list timed_link; /* in b->timed while a will or an expiry is pending */
	uint32_t hash;
	uint32_t expiry;       /* session expiry interval, seconds */
	struct brk_conn *conn; /* network connection, or NULL */
	struct brk_client *ic; /* in-process client, or NULL */
	int64_t expire_at;     /* while offline: monotonic ms, 0 = never */
	struct gw_list subs;
	struct gw_list inflight; /* brk_qmsg sent, in order */
	struct gw_list queue;	 /* brk_qmsg not yet sent */
	struct gw_list acks;	 /* brk_hold we owe the publisher */
	struct gw_list inq;	 /* brk_inq */
	uint32_t n_inflight, n_queued;
	uint32_t n_acks; /* on acks: PUBACK / PUBREC held, e.g. until the store commits */
	uint64_t queued_bytes;
	uint64_t next_seq;
	uint16_t next_pid;
	uint16_t n_inq;
	/* The will, kept until the session ends or the delay passes. */
	uint32_t will_delay;
	struct brk_msg *will;
	int64_t will_at; /* monotonic ms when a delayed will goes out; 0 = none pending */
	/* Scratch of brk__tree_match. */
	uint64_t match_gen;
	/*
	 * The ACL rules of the network client that last connected with this
	 * session (NULL: no ACL, or an in-process client: trusted).
	 * acl_deliver: every delivery is checked, because a deny rule may
	 * refuse part of what a subscription covers, or the subscriptions were
	 * made under other rules (a resumed session).
	 */
	struct brk_acl_view *acl;
	unsigned int match_idx;
	bool persist; /* saved through the persistence hooks */
	bool acl_deliver;
	char client_id[]; /* NUL-terminated */
};

/* ------------------------------------------------------------ connections */

/* Outgoing bytes of one connection: copied control bytes and shared payloads. */
struct brk_oseg {
	struct brk_msg *m; /* NULL: bytes at off in buf; else m->payload + off */
	uint32_t off, len;
};

struct brk_obuf {
	uint8_t *buf;
	size_t len, cap;
	struct brk_oseg *segs;
	unsigned int n, cap_segs;
	size_t total;
};

void brk__obuf_fini(struct brk_obuf *o);
/* Drop the contents, keep the memory for the next batch. */
void brk__obuf_reset(struct brk_obuf *o);

/* The stage's size at start and the most it keeps once a burst is over. */
#define BRK_STAGE_MIN 4096
#define BRK_STAGE_KEEP (64 * 1024)

struct brk_conn_ops {
	/* The connection has bytes to send: flush them before the loop sleeps. */
	void (*want_flush)(struct brk_conn *c);
	/* Send what is queued, then close the transport (free the conn in its close callback). */
	void (*close)(struct brk_conn *c);
	/* Optional: the peer's address for logs, into buf (kept out of the idle conn). */
	void (*peer)(struct brk_conn *c, char *buf, size_t n);
	/*
	 * Optional: stop (@on) or resume reading the transport. The protocol
	 * stops reading a connection whose session is owed max_held_acks acks
	 * and resumes once they went out; input already read is still handled.
	 * Called outside brk__conn_input too (from a hold's release): the glue
	 * must not feed input from inside this call.
	 */
	void (*pause)(struct brk_conn *c, bool on);
	/*
	 * Optional: a user name the transport established (a TLS client
	 * certificate's CN with use_identity_as_username), which replaces
	 * CONNECT's; NULL: none.
	 */
	const char *(*identity)(struct brk_conn *c);
	/*
	 * Optional: close at once, dropping what is queued (a slow consumer
	 * whose output cannot go out). NULL: close as ops->close does.
	 */
	void (*abort)(struct brk_conn *c);
};

enum brk_conn_state {
	BRK_CS_NEW,	  /* waiting for CONNECT */
	BRK_CS_AUTH,	  /* CONNECT read, its password being checked (c->auth) */
	BRK_CS_CONNECTED, /* CONNACK sent */
	BRK_CS_CLOSING,	  /* no more input is processed */
};

/* The partial packet a connection read last: allocated only while there is one. */
struct brk_rbuf {
	uint32_t len, cap;
	uint8_t data[];
};

/*
 * Topic aliases of a 5.0 connection, allocated on first use: v[0..max_out)
 * are the topics we assigned (alias - 1), v[max_out..max_out + max_in) the
 * ones the client assigned.
 */
struct brk_aliases {
	uint16_t n_out, max_out, max_in;
	char *v[];
};

/*
 * A network connection as the protocol sees it: bytes in, bytes out, a
 * clock. The glue embeds it, feeds brk__conn_input(), sends the staged bytes
 * and c->out when asked and calls brk__conn_closed() when the transport is
 * gone. Kept small: there is one per client and most are idle; whatever only
 * a busy or a 5.0 connection needs hangs off a pointer allocated on demand.
 */
struct brk_conn {
	struct brk *b;
	const struct brk_conn_ops *ops;
	struct brk_session *s;
	struct gw_list link; /* in b->conns */
	uint8_t state;
	uint8_t proto;	  /* 3 (3.1), 4 (3.1.1), 5 */
	bool dirty : 1;	  /* want_flush was called and not yet served */
	bool will_ok : 1; /* a close now is abnormal: the will goes out */
	bool req_problem : 1;
	bool counted : 1; /* counted in clients_connected */
	bool paused : 1;  /* reading stopped: too many acks held (keepalive not enforced) */
	uint16_t keepalive;
	/*
	 * 5.0: QoS > 0 PUBLISHes not yet acknowledged by us (QoS 2 until
	 * PUBCOMP), against our Receive Maximum. 3.1.1 has none: not counted.
	 */
	uint16_t inflight_in;
	int64_t last_rx;
	struct brk_rbuf *rbuf; /* read side: a partial packet only */
	/* Write side: bytes in the broker's stage (see struct brk), then *out. */
	uint32_t stage_off, stage_len;
	struct brk_obuf *out; /* NULL until needed; the glue frees it once idle */
	size_t writing;	      /* bytes handed to the transport, not yet written */
	size_t xqueued;	      /* bytes the transport holds besides (framed, encrypted) */
	int64_t slow_since;   /* when its output passed max_buffered_bytes; 0: under it */
	/* What the client told us in CONNECT (5.0). */
	uint32_t max_out_packet; /* 0 = no limit beyond the protocol's */
	uint16_t recv_max_out;
	uint16_t alias_max_out;
	struct brk_aliases *alias;
	struct brk_auth_job *auth; /* BRK_CS_AUTH only */
};

/* Bytes queued for @c and not yet handed to the transport. */
static inline size_t brk__conn_pending(const struct brk_conn *c)
{
	return (c->out ? c->out->total : 0) + c->stage_len;
}

/* Bytes of output @c holds in memory: queued, in the transport, being written. */
static inline size_t brk__conn_buffered(const struct brk_conn *c)
{
	return brk__conn_pending(c) + c->writing + c->xqueued;
}

/* Free c->out (nothing may be queued in it). */
void brk__conn_out_free(struct brk_conn *c);

void brk__conn_init(struct brk_conn *c, struct brk *b, const struct brk_conn_ops *ops);
/* The peer's address for a log line (into buf, returned). */
const char *brk__conn_peer(struct brk_conn *c, char *buf, size_t n);
/*
 * brk__conn_input - process @len bytes read from the transport at @now.
 * Whole packets are handled in place; only a partial tail is copied. On a
 * protocol error the connection is closed through ops->close.
 */
void brk__conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now);
/* The transport is gone (peer closed, error, or after ops->close). Frees conn state. */
void brk__conn_closed(struct brk_conn *c);
/* Close because of @reason (MQTT 5 DISCONNECT reason when the version has it). */
void brk__conn_kick(struct brk_conn *c, uint8_t reason);
/* Per-second check: keepalive. */
void brk__conn_tick(struct brk_conn *c, int64_t now);
/*
 * brk__conn_unstage - the glue wrote the first @done of c's stage_len staged
 * bytes (b->stage.buf + c->stage_off); the rest, if any, is copied into
 * c->out. Either way the connection leaves the stage. 0, or -ENOMEM (the rest
 * is lost: the caller closes the connection).
 */
int brk__conn_unstage(struct brk_conn *c, size_t done);

/* ----------------------------------------------------------- the broker */

struct brk_client {
	struct brk_session *s;
	brk_deliver_fn deliver;
	void *arg;
};

/*
 * The broker core's clock, handed in by whoever builds the broker (the glue:
 * gw_mono_ms; a test: a fake): the core reads no clock itself. mono_ms
 * returns monotonic milliseconds; it is called for the in-process API
 * (brk_client_*, brk_publish, brk_restore_*) and on connection setup and
 * close, where no caller passes the time in.
 */
struct brk_clock {
	int64_t (*mono_ms)(void *arg);
	void *arg;
};

struct brk {
	struct uv_loop_s *loop;
	struct brk_config cfg;
	const struct gw_logger *lg;
	struct brk_tree tree;
	struct brk_matches matches;
	struct brk_session **sessions; /* hash table by client id */
	uint32_t n_sbuckets, n_sessions;
	struct gw_list conns;
	struct gw_list timed; /* sessions with a pending will or expiry */
	/*
	 * The earliest will_at / expire_at of b->timed, 0 = none: the glue arms
	 * a timer for it, so a will delay or a session expiry ends on time, not
	 * at the next tick. It may be early (a session came back): brk__timed
	 * then finds nothing due and computes it again.
	 */
	int64_t next_due;
	uint64_t id_counter;
	int64_t started; /* monotonic ms */
	int64_t last_sys;
	struct brk_stats st;
	const struct brk_persist_ops *pops;
	void *parg;
	struct brk_pool pool;
	/*
	 * The stage: output for connections that had none queued is encoded
	 * here, not into per-connection buffers, and the glue writes it
	 * straight from here before the loop sleeps. An idle connection thus
	 * never allocates for a CONNACK or a PINGRESP, and no short-lived
	 * buffers are left between long-lived connection objects. A
	 * connection's staged bytes are contiguous: once another connection
	 * has staged after it, its next output moves them into its own out.
	 * The stage empties when its last connection leaves it.
	 */
	struct brk_obuf stage;	     /* buf, len, cap only */
	struct brk_conn *stage_tail; /* the connection whose bytes end the stage */
	unsigned int n_staged;	     /* connections with stage_len > 0 */
	struct gw_list loose_holds;  /* brk_hold of in-process publishers and ended sessions */
	bool stopping;
	unsigned int route_depth;
	uint64_t match_gen;
	struct brk_uv *uv; /* the glue (NULL in sans-I/O tests) */
	struct brk_clock clock;
	/*
	 * Password checks: how a job leaves the loop thread (the glue's
	 * uv_queue_work; a test's fake), the jobs running and those waiting
	 * for a free slot (see auth.c).
	 */
	int (*auth_start)(struct brk *b, struct brk_auth_job *j);
	struct gw_list auth_run, auth_wait;
	unsigned int n_auth_run, n_auth_wait;
	size_t auth_bytes; /* CONNECT copies and input held by jobs */
};

/*
 * Core entry points shared by conn.c, conn_out.c, session.c, session_life.c, client.c,
 * broker.c and the glue.
 */
/* brk__init - @clk (copied; mono_ms must be set) is the only clock the core reads. */
int brk__init(struct brk *b, struct uv_loop_s *loop, const struct brk_config *cfg,
	      const struct gw_logger *lg, const struct brk_clock *clk);
void brk__fini(struct brk *b);
/* The broker's monotonic time in ms, from the clock its builder gave. */
static inline int64_t brk__now(const struct brk *b)
{
	return b->clock.mono_ms(b->clock.arg);
}
/* Route @m published by @from (NULL: the broker itself). @hold collects in-process holds. */
void brk__route(struct brk *b, struct brk_msg *m, struct brk_session *from, struct brk_hold *hold,
		int64_t now);
/* session_life.c: grow the session table (64 buckets at first, then twice as many). 0 or -ENOMEM. */
int brk__sessions_grow(struct brk *b);
struct brk_session *brk__session_find(struct brk *b, struct gw_slice id);
/* A new empty session for @id (copied). NULL on out-of-memory. */
struct brk_session *brk__session_new(struct brk *b, struct gw_slice id);
void brk__session_resume(struct brk_session *s);
/* Free @s and all it holds, off the table: no will, nothing deleted from the store. */
void brk__session_free(struct brk_session *s);
/* End a session: publish a pending will, drop subscriptions and queues, free. */
void brk__session_end(struct brk_session *s, int64_t now);
/* Forget subscriptions and queues, keep the session (clean start on takeover). */
void brk__session_clear(struct brk_session *s);
/* Publish the wills and end the sessions that are due; next_due is recomputed. */
void brk__timed(struct brk *b, int64_t now);
/* The session lost its client: start the expiry clock and the will delay. */
void brk__session_offline(struct brk_session *s, bool publish_will, int64_t now);
/* Send what the queue allows now (inflight window); also resends on resume. */
void brk__session_pump(struct brk_session *s, int64_t now, bool resume);
/* Deliver one matched message to a session (queue or send). */
void brk__session_deliver(struct brk_session *s, struct brk_msg *m, const struct brk_match *mt,
			  struct brk_hold *hold, int64_t now);
int brk__session_subscribe(struct brk_session *s, struct gw_slice filter, uint8_t qos,
			   unsigned int opts, uint32_t sub_id, bool *existed);
int brk__session_unsubscribe(struct brk_session *s, struct gw_slice filter);
/* Deliver the retained messages matching @filter per retain handling. */
void brk__session_send_retained(struct brk_session *s, struct gw_slice filter, uint8_t qos,
				unsigned int opts, uint32_t sub_id, int64_t now);
void brk__session_save(struct brk_session *s);
/* client.c: may @f be subscribed to (a valid filter, or a valid $share one)? */
bool brk__filter_ok(struct gw_slice f);
/*
 * Hand @q (a QoS >= 1 message of the persistent session @s) to
 * pops->session_msg_add with its state and pid, giving it a seq if it has
 * none (the same seq again replaces the stored copy). Its expiry is saved as
 * what is left at @now. A released QoS 2 message (m NULL) is saved as a
 * marker with only its pid.
 */
void brk__qmsg_persist(struct brk_session *s, struct brk_qmsg *q, int64_t now);
/*
 * At shutdown: every persistent session's messages not yet stored are, and
 * those with an expiry are stored again with what is left of it.
 */
void brk__persist_all(struct brk *b, int64_t now);
void brk__hold_release_acks(struct brk_session *s);
/* A new hold (refs 1) on @s's acks, or NULL on out-of-memory. */
struct brk_hold *brk__hold_new(struct brk_session *s, uint16_t pid, uint8_t kind);
/* The session of @h's holds is gone: detach them (freed by their last release). */
void brk__holds_detach(struct brk *b, struct gw_list *acks);
/* A queued-message node for @n_ids ids (pool or malloc), or NULL. Freed by brk__qmsg_put. */
struct brk_qmsg *brk__qmsg_get(struct brk *b, unsigned int n_ids);
void brk__qmsg_put(struct brk *b, struct brk_qmsg *q);
/* Ack @pid of a network publisher (PUBACK / PUBREC) now or when its holds go. */
void brk__conn_send_ack(struct brk_conn *c, uint8_t type, uint16_t pid, uint8_t reason);
/* Encode @q of @s as a PUBLISH onto its connection. false: too big for the client (dropped). */
bool brk__conn_send_publish(struct brk_conn *c, struct brk_qmsg *q, bool dup, int64_t now);
void brk__conn_send_pubrel(struct brk_conn *c, uint16_t pid);
/* conn_out.c: encode @p for @c's version into its output. 0, -EINVAL or -ENOMEM. */
int brk__conn_out_pkt(struct brk_conn *c, const struct mqtt_pkt *p);
/* conn_out.c: CONNACK with @reason (a 5.0 code, mapped for 3.1.1) and 5.0 @props (may be NULL). */
void brk__conn_send_connack(struct brk_conn *c, uint8_t reason, bool present,
			    struct mqtt_props *props);
/* conn_out.c: DISCONNECT with @reason (5.0 only: nothing for 3.1.1). */
void brk__conn_send_disconnect(struct brk_conn *c, uint8_t reason);
/* conn_out.c: the alias tables of @c, allocated on first use; NULL on out-of-memory. */
struct brk_aliases *brk__conn_aliases(struct brk_conn *c);
/*
 * conn.c: a bad packet (@err, 5.0 @reason): count it, answer a failed
 * CONNECT with its CONNACK, and close this connection only.
 */
void brk__conn_fail(struct brk_conn *c, int err, uint8_t reason);
/*
 * session.c: the packets of a connected client that act on its session,
 * dispatched by conn.c (c->s is set).
 */
void brk__on_publish(struct brk_conn *c, struct mqtt_pkt *p, int64_t now);
void brk__on_ack(struct brk_conn *c, const struct mqtt_pkt *p, int64_t now);
void brk__on_pubrel(struct brk_conn *c, const struct mqtt_pkt *p);
void brk__on_subscribe(struct brk_conn *c, struct mqtt_pkt *p, int64_t now);
void brk__on_unsubscribe(struct brk_conn *c, struct mqtt_pkt *p);
/*
 * session.c: the session for the accepted CONNECT @cn of client @id, taken
 * over, resumed (*@present) or new, with @expiry, the ACL rules @av
 * (ownership taken, on failure too) and the will; NULL on out-of-memory.
 */
struct brk_session *brk__session_take(struct brk *b, struct gw_slice id,
				      const struct mqtt_connect *cn, struct brk_acl_view *av,
				      uint32_t expiry, bool *present, int64_t now);
/* The Receive Maximum we announce to 5.0 clients (0 in a config: none, 65535). */
static inline unsigned int brk__recv_max(const struct brk *b)
{
	return b->cfg.receive_maximum ? b->cfg.receive_maximum : 65535;
}
void brk__tick(struct brk *b, int64_t now);
void brk__sys_publish(struct brk *b, int64_t now);
struct brk_msg *brk__will_msg(struct brk_session *s);

#define brk__log(b, lvl, ...) gw_log((b)->lg, (lvl), "broker", __VA_ARGS__)

/* MQTT packet types (fixed header high nibble). */
enum {
	BRK_CONNECT = 1,
	BRK_CONNACK,
	BRK_PUBLISH,
	BRK_PUBACK,
	BRK_PUBREC,
	BRK_PUBREL,
	BRK_PUBCOMP,
	BRK_SUBSCRIBE,
	BRK_SUBACK,
	BRK_UNSUBSCRIBE,
	BRK_UNSUBACK,
	BRK_PINGREQ,
	BRK_PINGRESP,
	BRK_DISCONNECT,
	BRK_AUTH,
};

#endif
