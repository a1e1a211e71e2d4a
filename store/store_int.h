/*
 * store_int.h - private to store/ and its tests: the operation record that
 * the loop side (store.c) batches and the SQLite side (store_db.c) writes.
 *
 * store.c owns the loop-thread state and never includes sqlite3.h;
 * store_db.c is the one file that does, and its st__db_* functions run
 * either synchronously at open/load/close or on the thread pool, never
 * concurrently on the same connection.
 */
#ifndef FIELDMQ_STORE_INT_H
#define FIELDMQ_STORE_INT_H

#include <stdatomic.h>

#include "store.h"

/* Current schema version (PRAGMA user_version). */
#define ST__SCHEMA_VERSION 2

enum st__op_kind {
	ST__OP_Q_INSERT,
	ST__OP_Q_ACK,
	ST__OP_RET_PUT,
	ST__OP_RET_DEL,
	ST__OP_SESS_PUT,
	ST__OP_SESS_DEL,
	ST__OP_SMSG_ADD,
	ST__OP_SMSG_DEL,
	ST__OP_FLUSH, /* writes nothing: its callback marks a point in the batch */
	__ST__OP_MAX
};

/*
 * One pending write, one allocation. The variable part holds the key of a
 * session operation (client id and its NUL; key_len counts the NUL, 0 for
 * other kinds), then the record's topic, payload and props. A retained
 * message is keyed by its topic; a session blob travels as the payload.
 */
struct st__op {
	struct gw_list node;
	st_done_fn cb;
	void *arg;
	uint64_t id; /* queue id, or session message seq */
	uint32_t key_len, topic_len, payload_len, props_len;
	uint8_t kind, qos;
	bool retain;
	bool skip;   /* a queue insert acknowledged before it was written */
	bool waited; /* somebody waits on its callback: commit as soon as idle */
	/*
	 * ST__OP_Q_ACK: the op deletes ids id .. id + n_ids - 1. Acks come in
	 * id order while the uplink drains, so consecutive ones are merged
	 * into one op (no allocation per ack, one range delete per run).
	 */
	uint32_t n_ids;
	uint8_t data[];
};

static inline const char *st__op_key(const struct st__op *op)
{
	return (const char *)op->data;
}

static inline struct st_record st__op_rec(const struct st__op *op)
{
	const uint8_t *p = op->data + op->key_len;
	struct st_record r;

	r.topic = (struct gw_slice){ p, op->topic_len };
	p += op->topic_len;
	r.payload = (struct gw_slice){ p, op->payload_len };
	p += op->payload_len;
	r.props = (struct gw_slice){ p, op->props_len };
	r.qos = op->qos;
	r.retain = op->retain;
	return r;
}

static inline uint64_t st__op_size(const struct st__op *op)
{
	return (uint64_t)op->topic_len + op->payload_len + op->props_len;
}

/* Persistent counters of the queue, kept in the meta table. */
struct st__meta {
	uint64_t count, bytes, dropped, last_id;
};

/* A group commit: filled on the loop thread, run on the pool. */
struct st__commit {
	struct gw_list ops;    /* in order; the job owns them until it returns */
	uint64_t max_messages; /* limits for drop_oldest inside the transaction */
	uint64_t max_bytes;    /* (both 0 = do not drop) */
	uint64_t dropped_add;  /* drops counted on the loop thread since the last commit */
	uint64_t last_id;      /* highest queue id handed out */
	/* results */
	int rc;		      /* 0 or -errno */
	char err[160];	      /* SQLite's message when rc != 0 */
	struct st__meta meta; /* counters after the transaction */
	uint64_t dropped_tx;  /* records drop_oldest removed inside the transaction */
	uint64_t drop_upto;   /* every queue id <= this is gone (0 = none) */
	uint64_t written;     /* operations written */
};

/*
 * The commit policy (sched.c): pure, over an injected clock in ms. The
 * store reports every operation that joins the pending batch (add), leaves
 * it unwritten (forget: dropped by drop_oldest), goes to the pool (start)
 * and comes back (done); st__sched_next says when to commit.
 */
struct st__sched {
	uint64_t interval_ms; /* sync_interval: the longest wait of an op nobody waits on */
	int64_t oldest;	      /* when the first op of the pending batch came */
	int64_t failed_at;    /* when the last commit failed */
	uint64_t n_ops;	      /* ops in the pending batch */
	uint64_t n_waited;    /* of which somebody waits on */
	uint64_t infl_ops, infl_waited; /* the same for the commit in flight */
	bool committing;
	bool failing;
};

void st__sched_init(struct st__sched *s, uint64_t interval_ms);
/* An op joined the pending batch at @now; @waited: its completion is waited on. */
void st__sched_add(struct st__sched *s, int64_t now, bool waited);
/* An op left the pending batch without being written. */
void st__sched_forget(struct st__sched *s, bool waited);
/* The whole pending batch went to the pool as one commit. */
void st__sched_start(struct st__sched *s);
/* The commit in flight ended at @now; when !@ok its ops are pending again. */
void st__sched_done(struct st__sched *s, int64_t now, bool ok);
/*
 * st__sched_next - when the pending batch should be committed, seen at
 * @now: -1 never (nothing pending, or a commit is in flight: ask again when
 * it is done), @now for at once, else the later time. @large: the batch is
 * big enough to go at once (ignored while commits fail).
 */
int64_t st__sched_next(const struct st__sched *s, int64_t now, bool large);

struct st__db;

/*
 * st__db_open - open or create @path, check it, move it aside if it is
 * corrupt, migrate it, prepare statements, read the meta counters.
 * 0, -ENOMEM, -EIO, -EBUSY, -EPROTONOSUPPORT.
 */
int st__db_open(const char *path, bool sync_full, const struct gw_logger *lg, struct st__db **out,
		struct st__meta *meta);
void st__db_close(struct st__db *db);

/*
 * Runs one transaction with every op of @c; on failure nothing is written.
 * Never checkpoints (see st__db_checkpoint).
 */
void st__db_commit(struct st__db *db, struct st__commit *c);
/* SQLite's process-wide heap and page-cache bytes now (any thread). */
void st__db_memory(uint64_t *heap, uint64_t *page_cache);
/* Pages in the WAL after the last commit. */
int st__db_wal_frames(const struct st__db *db);
/*
 * A passive checkpoint on a connection of its own (thread pool; it may run
 * beside a commit, never beside another checkpoint). *backfilled: the WAL
 * frames copied into the database as it returns (SQLite's nBackfill: every
 * frame up to there, counted from the start of the WAL; 0 on error).
 * @pinned (may be NULL: no pin) is set to 1 once a read transaction holds
 * the checkpoint to the frames committed before that moment (store.c uses it
 * to tell when commits beside the checkpoint can no longer restart the WAL).
 * 0, -EIO, -ENOMEM.
 */
int st__db_checkpoint(struct st__db *db, int *backfilled, atomic_int *pinned);

/*
 * Read up to @max_n queue records after @after on the read connection.
 * *out is one gw_malloc'd block holding the array and the bytes it points
 * to (NULL when *n is 0). 0, -ENOMEM, -EIO.
 */
int st__db_peek(struct st__db *db, uint64_t after, size_t max_n, struct st_qrecord **out,
		size_t *n);

int st__db_load_retained(struct st__db *db, st_retained_fn cb, void *arg);
int st__db_load_sessions(struct st__db *db, st_session_fn sess_cb, st_session_msg_fn msg_cb,
			 void *arg);

/*
 * The full integrity check (PRAGMA quick_check of the whole file, which reads
 * every page) on a connection of its own, opened for the check and closed
 * after it, run on the pool after open: 0 (ok),
 * -EBADMSG (damaged: *why says how), -ECANCELED (interrupted), -EIO.
 * st__db_check_interrupt() may be called from the loop thread meanwhile.
 * st__db_mark_bad() leaves a marker so the next open moves the file aside.
 */
int st__db_check_full(struct st__db *db, char *why, size_t why_len);
void st__db_check_interrupt(struct st__db *db);
int st__db_mark_bad(struct st__db *db);

/* Test hook: cap the database at @pages pages (PRAGMA max_page_count); 0 = no cap. */
int st__db_set_max_pages(struct st__db *db, uint64_t pages);
/* Test hook: make the writer refuse writes (PRAGMA query_only), as a read-only mount does. */
int st__db_set_readonly(struct st__db *db, bool ro);
struct st__db *st__store_db(struct st_store *st);

#endif
