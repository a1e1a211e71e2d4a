/*
 * store.c - the loop-thread side of the store: the pending batch, group
 * commits on the thread pool, the queue's limits and counters, peeks and the
 * close sequence. SQLite lives in store_db.c.
 *
 * Writes are operations appended to one ordered list (the pending batch).
 * A commit moves the whole list to the job and runs it as one transaction
 * on the thread pool; meanwhile new writes collect in a fresh batch. When
 * to commit is sched.c's decision: as soon as the writer is idle if anybody
 * waits on an operation of the batch (the commit then starts right before
 * the loop next polls, so everything read in this loop iteration joins it),
 * else at the end of the sync interval. If the
 * transaction fails (disk full, read-only file system, I/O error), its
 * operations go back in front of the pending batch and are retried every
 * sync interval, the failure is logged once and counted, and the queue's
 * limits keep the batch bounded. Callbacks fire only after the commit that
 * made their operation durable.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "store_int.h"

#define LOGM "store"

/* A batch this large is committed at once instead of at the next interval. */
#define BATCH_MAX_OPS 8192
#define BATCH_MAX_BYTES (4u << 20)
/*
 * With synchronous = normal a commit writes into the page cache and waits on
 * no disk (checkpoints, which fsync, run on the pool: st__db_checkpoint), so
 * a batch this small is committed on the loop thread: a stop-and-wait
 * publisher's PUBACK then costs no hand-over to a pool thread and back (two
 * thread wake-ups, the larger part of its latency on a busy machine). Larger
 * batches, and every commit with synchronous = full (an fsync each), go to
 * the pool. So does the first commit into an empty WAL: after open, and
 * after a checkpoint that copied the whole WAL into the database, SQLite
 * starts the WAL over and fsyncs its new header even with synchronous =
 * normal (wal_may_restart). So do commits beside a running checkpoint, which
 * may copy the whole WAL before they begin, until one begun after the
 * checkpoint's pin (st__db_checkpoint) has added frames: from then on none
 * can start the WAL over before the next checkpoint (ckpt_clear).
 *
 * Checkpoints are rare: one starts when CKPT_FRAMES pages have been added to
 * the WAL since the last one copied it. (It used to start whenever the WAL
 * was that long; under steady load a checkpoint rarely copies the whole WAL,
 * since commits land beside it, so the WAL stayed long, checkpoints ran back
 * to back with two fsyncs each and nearly every commit went to the pool:
 * BENCHMARKS.md, acks.) A checkpoint that leaves frames behind cannot let
 * the next commit start the WAL over, so commits stay on the loop thread;
 * the WAL then starts over through a catch-up: the next commit job first
 * checkpoints the few frames left (on the pool, with no commit beside it),
 * then commits, starting the WAL over there (ckpt_done).
 */
#define INLINE_MAX_OPS 64
#define INLINE_MAX_BYTES (64u << 10)
/*
 * A commit with more deleted ids than this runs on the pool: a range delete
 * costs about a microsecond a row, and deferred acks (below) come in runs of
 * a whole sync interval.
 */
#define INLINE_MAX_ACKS 256
/* WAL pages added since the last checkpoint after which one is started (SQLite's default). */
#define CKPT_FRAMES 1000
/* A tail a checkpoint left at most this long is copied by a catch-up (see above), */
#define CKPT_TAIL_MAX (CKPT_FRAMES / 4)
/* and any tail once the WAL is this long (16 MiB of 4 KiB pages). */
#define CKPT_WAL_MAX (4 * CKPT_FRAMES)

/* A queue insert in a batch, by id, so acks and drops find it quickly. */
struct ins_ref {
	uint64_t id;
	struct st__op *op; /* NULL once dropped */
};

struct batch {
	struct gw_list ops;
	struct ins_ref *ins; /* in id order (ids grow with every append) */
	size_t n_ins, cap_ins, head;
	size_t n_ops;
	uint64_t bytes;	    /* everything held, to decide "large" */
	uint64_t ins_count; /* live queue inserts (not acked, not dropped) */
	uint64_t ins_bytes;
	uint64_t ack_count;
};

struct peek_req {
	struct gw_list node;
	uint64_t after;
	size_t max_n;
	st_peek_fn cb;
	void *arg;
	int rc;
	struct st_qrecord *recs;
	size_t n;
};

struct st_store {
	uv_loop_t *loop;
	struct st_config cfg;
	const struct gw_logger *lg;
	struct st__db *db;
	uv_timer_t timer;  /* armed for the sched's next time while it is later than now */
	uv_prepare_t soon; /* active: commit right before the loop polls */
	int64_t timer_at;  /* loop time the timer is armed for, 0 = stopped */
	struct st__sched sched;
	unsigned int n_handles; /* handles open; the store is freed when the last one closed */

	struct batch pending;
	struct batch infl; /* counters of the batch in flight; its ops are in commit.ops */
	struct st__commit commit;
	uv_work_t commit_work;
	bool committing;

	struct gw_list peeks;
	struct peek_req *peek_cur;
	uv_work_t peek_work;

	struct gw_list notices; /* ops dropped from memory whose callbacks are owed */

	/*
	 * Queue deletes (st_queue_ack) wait apart from the pending batch: a
	 * commit somebody waits on does not carry them; they join the first
	 * commit that nobody waits on, or any once the oldest has waited
	 * sync_interval (or on st_flush / st_close). A crash before then only
	 * sends them again (QoS 1 allows duplicates). They come in id order
	 * while inserts come between them, so each op covers a run of ids.
	 */
	struct gw_list acks;
	struct st__op *ack_run; /* the op the next id in order widens */
	uint64_t acks_count;	/* ids in acks */
	size_t acks_ops;
	int64_t acks_oldest; /* loop time of the first */
	bool acks_now;	     /* a flush wants them in the next commit */

	uv_work_t ckpt_work;
	bool ckpt_running;
	int ckpt_rc;
	int ckpt_backfilled; /* the checkpoint job's result (st__db_checkpoint) */
	int wal_frames;	     /* in the WAL after the last commit, as seen on the loop */
	int ckpt_base;	     /* of those, the frames a checkpoint has copied */
	int ckpt_mark;	     /* wal_frames when the last checkpoint ended */
	bool wal_catch_up;   /* the next commit job checkpoints the WAL's tail first */
	bool commit_ckpt;    /* the commit in flight does that catch-up */
	int commit_ckpt_rc, commit_ckpt_backfilled;
	atomic_int ckpt_pinned; /* the running checkpoint holds its pin (st__db_checkpoint) */
	bool commit_after_pin;	/* the commit in flight began once the pin was held */
	/*
	 * A commit begun after the pin has added frames: no commit can start
	 * the WAL over before the next checkpoint, so commits beside this one
	 * may run on the loop thread again.
	 */
	bool ckpt_clear;
	/*
	 * The next commit may be the first into an empty WAL (which SQLite
	 * fsyncs): set at open and when a checkpoint ends, cleared when a
	 * commit that began after that has committed (on the pool).
	 */
	bool wal_may_restart;
	bool commit_restarts; /* the commit in flight began with wal_may_restart */

	uv_work_t check_work;
	bool checking;
	int check_rc;
	char check_why[256];

	struct st__meta meta; /* as of the last commit */
	uint64_t next_id;
	uint64_t dropped_unsaved; /* drops on the loop thread not yet committed */
	struct st_stats stats;
	uint64_t commit_started_ns; /* uv_hrtime() at start_commit, for stats.commit_latency */
	bool failing;
	bool closing;
	bool close_tried; /* a commit during close failed: give up on the rest */
	bool handles_closed;
	st_close_fn close_cb;
	void *close_arg;
};

static void schedule(struct st_store *st);
static void schedule_at(struct st_store *st, bool now_ok);
static void timer_stop(struct st_store *st);
static void maybe_finish_close(struct st_store *st);
static void maybe_checkpoint(struct st_store *st);
static void ckpt_done(uv_work_t *req, int status);

/* ----------------------------------------------------------- configuration */

void st_config_defaults(struct st_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->path = "fieldmq.db";
	cfg->queue_max_messages = 1000000;
	cfg->queue_max_bytes = 256ull << 20;
	cfg->overflow = ST_DROP_OLDEST;
	cfg->sync_interval_ms = 100;
	cfg->sync_full = false;
}

int st_overflow_parse(const char *s)
{
	if (!strcmp(s, "drop_oldest"))
		return ST_DROP_OLDEST;
	if (!strcmp(s, "drop_newest"))
		return ST_DROP_NEWEST;
	return -EINVAL;
}

/* ------------------------------------------------------------------ batches */

static void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	gw_list_init(&b->ops);
}

/* Forget the counters and the index (the ops themselves have moved on). */
static void batch_reset(struct batch *b)
{
	gw_free(b->ins);
	batch_init(b);
}

static void batch_add(struct batch *b, struct st__op *op)
{
	gw_list_add_tail(&b->ops, &op->node);
	b->n_ops++;
	b->bytes += sizeof(*op) + op->key_len + st__op_size(op);
	if (op->kind == ST__OP_Q_ACK)
		b->ack_count++;
}

/* A new op joins the pending batch (and the commit policy hears of it). */
static void pending_add(struct st_store *st, struct st__op *op)
{
	batch_add(&st->pending, op);
	st__sched_add(&st->sched, (int64_t)uv_now(st->loop), op->waited);
}

/* Index a queue insert; 0 or -ENOMEM (nothing changed then). */
static int batch_index(struct batch *b, struct st__op *op)
{
	if (b->n_ins == b->cap_ins) {
		size_t cap = b->cap_ins ? b->cap_ins * 2 : 256;
		struct ins_ref *n = gw_realloc(b->ins, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->ins = n;
		b->cap_ins = cap;
	}
	b->ins[b->n_ins++] = (struct ins_ref){ op->id, op };
	b->ins_count++;
	b->ins_bytes += st__op_size(op);
	return 0;
}

static struct ins_ref *batch_find(struct batch *b, uint64_t id)
{
	size_t lo = b->head, hi = b->n_ins;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->ins[mid].id == id)
			return &b->ins[mid];
		if (b->ins[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Put the ops of a failed commit (@front, older) back before those of @b.
 * On -ENOMEM (the index cannot grow) the ops are kept but the older ones lose
 * their index entries: acks of them then go to the database as deletes.
 */
static void batch_prepend(struct batch *b, struct gw_list *ops, struct batch *front)
{
	size_t live = front->n_ins - front->head, n = live + (b->n_ins - b->head);
	struct ins_ref *ins = n ? gw_malloc(n * sizeof(*ins)) : NULL;

	if (ins || !n) {
		if (live)
			memcpy(ins, front->ins + front->head, live * sizeof(*ins));
		if (n - live)
			memcpy(ins + live, b->ins + b->head, (n - live) * sizeof(*ins));
		gw_free(b->ins);
		b->ins = ins;
		b->n_ins = b->cap_ins = n;
		b->head = 0;
	}
	if (!gw_list_empty(ops)) {
		/* Splice @ops at the head of b->ops. */
		struct gw_list *first = ops->next, *last = ops->prev;

		last->next = b->ops.next;
		b->ops.next->prev = last;
		first->prev = &b->ops;
		b->ops.next = first;
		gw_list_init(ops);
	}
	b->n_ops += front->n_ops;
	b->bytes += front->bytes;
	b->ins_count += front->ins_count;
	b->ins_bytes += front->ins_bytes;
	b->ack_count += front->ack_count;
	batch_reset(front);
}

static struct st__op *op_new(uint8_t kind, const char *key, const struct st_record *rec)
{
	size_t key_len = key ? strlen(key) + 1 : 0;
	size_t tl = rec ? rec->topic.len : 0, pl = rec ? rec->payload.len : 0;
	size_t xl = rec ? rec->props.len : 0;
	struct st__op *op;
	uint8_t *p;

	if (key_len > UINT32_MAX || tl > UINT32_MAX || pl > UINT32_MAX || xl > UINT32_MAX)
		return NULL;
	op = gw_malloc(sizeof(*op) + key_len + tl + pl + xl);
	if (!op)
		return NULL;
	memset(op, 0, sizeof(*op));
	gw_list_init(&op->node);
	op->kind = kind;
	op->key_len = (uint32_t)key_len;
	op->topic_len = (uint32_t)tl;
	op->payload_len = (uint32_t)pl;
	op->props_len = (uint32_t)xl;
	p = op->data;
	if (key_len)
		memcpy(p, key, key_len);
	p += key_len;
	if (tl)
		memcpy(p, rec->topic.p, tl);
	p += tl;
	if (pl)
		memcpy(p, rec->payload.p, pl);
	p += pl;
	if (xl)
		memcpy(p, rec->props.p, xl);
	if (rec) {
		op->qos = rec->qos;
		op->retain = rec->retain;
	}
	return op;
}

/* Call and free every op of @ops with @status (or -ENOBUFS for dropped inserts). */
static void notify_ops(struct gw_list *ops, int status, uint64_t drop_upto)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, ops) {
		struct st__op *op = gw_list_entry(pos, struct st__op, node);
		int s = status;

		gw_list_del(&op->node);
		if (!s && op->kind == ST__OP_Q_INSERT && !op->skip && op->id <= drop_upto)
			s = -ENOBUFS;
		if (op->cb)
			op->cb(op->arg, op->kind == ST__OP_Q_INSERT ? op->id : 0, s);
		gw_free(op);
	}
}

static void flush_notices(struct st_store *st)
{
	struct gw_list l;

	if (gw_list_empty(&st->notices))
		return;
	/* Callbacks may drop more: take the list first. */
	gw_list_init(&l);
	gw_list__add(&l, st->notices.prev, st->notices.next);
	l.next->prev = &l;
	l.prev->next = &l;
	gw_list_init(&st->notices);
	notify_ops(&l, -ENOBUFS, 0);
}

/*
 * drop_oldest on the loop thread: keep the pending inserts themselves within
 * the limits (they can only exceed them alone while commits fail or the
 * limits are tiny); the transaction enforces the limits on the whole queue.
 */
static void enforce_pending(struct st_store *st)
{
	struct batch *b = &st->pending;

	while (b->ins_count > st->cfg.queue_max_messages ||
	       b->ins_bytes > st->cfg.queue_max_bytes) {
		struct st__op *op;

		while (b->head < b->n_ins && (!b->ins[b->head].op || b->ins[b->head].op->skip))
			b->head++;
		if (b->head == b->n_ins)
			break;
		op = b->ins[b->head].op;
		b->ins[b->head++].op = NULL;
		gw_list_del(&op->node);
		b->n_ops--;
		b->bytes -= sizeof(*op) + st__op_size(op);
		b->ins_count--;
		b->ins_bytes -= st__op_size(op);
		st__sched_forget(&st->sched, op->waited);
		st->dropped_unsaved++;
		if (op->cb)
			gw_list_add_tail(&st->notices, &op->node);
		else
			gw_free(op);
	}
}

/* Logical queue figures: committed, plus pending, minus pending acks. */
static uint64_t queue_count(const struct st_store *st)
{
	uint64_t add = st->meta.count + st->pending.ins_count + st->infl.ins_count;
	uint64_t sub = st->pending.ack_count + st->infl.ack_count + st->acks_count;

	return add > sub ? add - sub : 0;
}

static uint64_t queue_bytes(const struct st_store *st)
{
	return st->meta.bytes + st->pending.ins_bytes + st->infl.ins_bytes;
}

/* ------------------------------------------------------------------ commits */

static void commit_work(uv_work_t *req)
{
	struct st_store *st = container_of(req, struct st_store, commit_work);

	/* A catch-up: no commit runs beside this checkpoint (see INLINE_MAX_OPS). */
	if (st->commit_ckpt)
		st->commit_ckpt_rc = st__db_checkpoint(st->db, &st->commit_ckpt_backfilled, NULL);
	st__db_commit(st->db, &st->commit);
}

/* After a commit on the loop thread: the WAL's length, and whether SQLite started it over. */
static void wal_seen(struct st_store *st)
{
	int frames = st__db_wal_frames(st->db);

	if (frames < st->wal_frames)
		st->ckpt_base = st->ckpt_mark = 0;
	st->wal_frames = frames;
}

static void commit_done(uv_work_t *req, int status)
{
	struct st_store *st = container_of(req, struct st_store, commit_work);
	struct st__commit *c = &st->commit;

	st->committing = false;
	if (status && !c->rc) {
		c->rc = status; /* cancelled: cannot happen for queued work we own */
		snprintf(c->err, sizeof(c->err), "%s", uv_strerror(status));
	}
	st__sched_done(&st->sched, (int64_t)uv_now(st->loop), !c->rc);
	if (st->commit_ckpt) {
		st->commit_ckpt = false;
		st->stats.checkpoints++;
		if (!st->commit_ckpt_rc)
			st->ckpt_base = GW_MAX(st->ckpt_base, st->commit_ckpt_backfilled);
		/* It may have copied the whole WAL, and no commit followed it. */
		if (c->rc)
			st->wal_may_restart = true;
	}
	if (!c->rc && st->commit_restarts && !st->ckpt_running)
		st->wal_may_restart = false;
	if (!c->rc) {
		int before = st->wal_frames;

		wal_seen(st);
		if (st->commit_after_pin && st->ckpt_running && st->wal_frames != before)
			st->ckpt_clear = true;
		st->stats.commits++;
		gw_hist_observe_us(&st->stats.commit_latency,
				   (int64_t)((uv_hrtime() - st->commit_started_ns) / 1000));
		st->stats.ops_committed += c->written;
		st->meta = c->meta;
		if (st->failing)
			gw_log(st->lg, LOG_NOTICE, LOGM,
			       "commits resumed after %llu failed attempts",
			       (unsigned long long)st->stats.commit_errors);
		st->failing = false;
		batch_reset(&st->infl);
		maybe_checkpoint(st);
		notify_ops(&c->ops, 0, c->drop_upto);
	} else {
		st->stats.commit_errors++;
		st->dropped_unsaved += c->dropped_add;
		if (!st->failing)
			gw_log(st->lg, LOG_ERR, LOGM,
			       "commit failed (%s): keeping %zu operations in memory, retrying "
			       "every %llu ms",
			       c->err, st->infl.n_ops + st->pending.n_ops,
			       (unsigned long long)GW_MAX(st->cfg.sync_interval_ms, 1));
		st->failing = true;
		batch_prepend(&st->pending, &c->ops, &st->infl);
		if (st->closing) {
			st->close_tried = true;
			gw_log(st->lg, LOG_ERR, LOGM, "closing: %zu operations lost (%s)",
			       st->pending.n_ops, c->err);
			notify_ops(&st->pending.ops, c->rc, 0);
			batch_reset(&st->pending);
		} else if (st->cfg.overflow == ST_DROP_OLDEST) {
			enforce_pending(st);
		}
	}
	flush_notices(st);
	if (st->closing)
		maybe_finish_close(st);
	else
		schedule(st);
}

static void ckpt_work(uv_work_t *req)
{
	struct st_store *st = container_of(req, struct st_store, ckpt_work);

	st->ckpt_rc = st__db_checkpoint(st->db, &st->ckpt_backfilled, &st->ckpt_pinned);
}

static void ckpt_start(struct st_store *st)
{
	if (st->ckpt_running || st->closing || (st->committing && st->commit_ckpt))
		return;
	atomic_store(&st->ckpt_pinned, 0);
	st->ckpt_clear = false;
	if (!uv_queue_work(st->loop, &st->ckpt_work, ckpt_work, ckpt_done))
		st->ckpt_running = true;
}

/*
 * A checkpoint ended. Only a checkpoint that copied every frame committed
 * so far lets the next commit start the WAL over (wal_may_restart): frames
 * committed beside it (wal_frames, or a commit still in flight, which only
 * adds frames) stay in the WAL until the next checkpoint, and so does the
 * WAL. A short tail is copied by a catch-up, which starts the WAL over; a
 * longer one by the next checkpoint, or by a catch-up too once the WAL is
 * long (the catch-up then holds one commit back for a checkpoint's time,
 * once in a few thousand frames; without it the WAL would grow for as long
 * as the load lasts).
 */
static void ckpt_done(uv_work_t *req, int status)
{
	struct st_store *st = container_of(req, struct st_store, ckpt_work);

	st->ckpt_running = false;
	st->ckpt_clear = false;
	st->stats.checkpoints++;
	if (st->ckpt_rc || status) {
		gw_log(st->lg, LOG_DEBUG, LOGM, "checkpoint: %s",
		       strerror(st->ckpt_rc ? -st->ckpt_rc : ECANCELED));
		st->wal_may_restart = true;
	} else if (st->ckpt_backfilled >= st->wal_frames) {
		st->ckpt_base = st->wal_frames;
		st->wal_may_restart = true;
	} else {
		st->ckpt_base = GW_MAX(st->ckpt_base, st->ckpt_backfilled);
		if (st->wal_frames - st->ckpt_base <= CKPT_TAIL_MAX ||
		    st->wal_frames >= CKPT_WAL_MAX)
			st->wal_catch_up = true;
	}
	st->ckpt_mark = st->wal_frames;
	if (st->closing)
		maybe_finish_close(st);
}

/*
 * After a commit: CKPT_FRAMES frames added since the last checkpoint ended
 * start one on the pool (counted from its end, not from what it copied: a
 * reader that holds checkpoints back must not make them run back to back).
 */
static void maybe_checkpoint(struct st_store *st)
{
	if (st->wal_frames - st->ckpt_mark >= CKPT_FRAMES)
		ckpt_start(st);
}

/*
 * Whether the acks join the commit about to start: always when nobody waits
 * on it (an interval or large batch, or the close), else once the oldest
 * has waited sync_interval or a flush asked, and when the rows the file
 * holds reach the queue's limits: drop_oldest in the transaction would
 * otherwise drop (and count as dropped) records the cloud already has.
 */
static bool acks_due(const struct st_store *st)
{
	int64_t now = (int64_t)uv_now(st->loop);
	uint64_t rows = st->meta.count + st->pending.ins_count + st->infl.ins_count;

	return st->closing || st->acks_now || !st->sched.n_waited ||
	       st->acks_ops >= BATCH_MAX_OPS ||
	       now >= st->acks_oldest + (int64_t)st->cfg.sync_interval_ms ||
	       rows >= st->cfg.queue_max_messages || queue_bytes(st) >= st->cfg.queue_max_bytes;
}

/* Move the acks to the end of the pending batch. */
static void acks_take(struct st_store *st)
{
	struct gw_list *first = st->acks.next, *last = st->acks.prev;
	struct batch *b = &st->pending;

	last->next = &b->ops;
	first->prev = b->ops.prev;
	b->ops.prev->next = first;
	b->ops.prev = last;
	gw_list_init(&st->acks);
	b->n_ops += st->acks_ops;
	b->bytes += st->acks_ops * sizeof(struct st__op);
	b->ack_count += st->acks_count;
	st->acks_ops = 0;
	st->acks_count = 0;
	st->ack_run = NULL;
	st->acks_now = false;
}

static void start_commit(struct st_store *st)
{
	struct st__commit *c = &st->commit;
	bool inline_ok;
	int err;

	timer_stop(st);
	uv_prepare_stop(&st->soon);
	if (!gw_list_empty(&st->acks) && acks_due(st))
		acks_take(st);
	if (gw_list_empty(&st->pending.ops))
		return;
	st__sched_start(&st->sched);
	/* Acks left behind wait on their own time. */
	if (!gw_list_empty(&st->acks))
		st__sched_add(&st->sched, st->acks_oldest, false);
	gw_list_init(&c->ops);
	gw_list__add(&c->ops, st->pending.ops.prev, st->pending.ops.next);
	c->ops.next->prev = &c->ops;
	c->ops.prev->next = &c->ops;
	st->infl = st->pending;
	gw_list_init(&st->infl.ops);
	batch_init(&st->pending);
	c->dropped_add = st->dropped_unsaved;
	st->dropped_unsaved = 0;
	c->last_id = st->next_id - 1;
	if (st->cfg.overflow == ST_DROP_OLDEST) {
		c->max_messages = st->cfg.queue_max_messages;
		c->max_bytes = st->cfg.queue_max_bytes;
	} else {
		c->max_messages = c->max_bytes = 0;
	}
	st->committing = true;
	st->commit_started_ns = uv_hrtime();
	st->commit_ckpt = st->wal_catch_up && !st->ckpt_running;
	if (st->commit_ckpt)
		st->wal_catch_up = false;
	inline_ok = !st->cfg.sync_full && st->infl.n_ops <= INLINE_MAX_OPS &&
		    st->infl.bytes <= INLINE_MAX_BYTES && st->infl.ack_count <= INLINE_MAX_ACKS &&
		    !st->wal_may_restart && (!st->ckpt_running || st->ckpt_clear) &&
		    !st->commit_ckpt;
	st->commit_after_pin = st->ckpt_running && !st->ckpt_clear && atomic_load(&st->ckpt_pinned);
	/* A catch-up's commit is the one that may start the WAL over. */
	st->commit_restarts = (st->wal_may_restart && !st->ckpt_running) || st->commit_ckpt;
	if (!inline_ok)
		st->stats.pool_commits++;
	if (inline_ok) {
		st__db_commit(st->db, c);
		commit_done(&st->commit_work, 0);
		return;
	}
	err = uv_queue_work(st->loop, &st->commit_work, commit_work, commit_done);
	if (err) {
		/* Only with a bad loop; treat as a failed commit. */
		c->rc = -EIO;
		snprintf(c->err, sizeof(c->err), "uv_queue_work: %s", uv_strerror(err));
		commit_done(&st->commit_work, 0);
	}
}

/* Commit now if the policy says so (the loop is about to poll). */
static void on_soon(uv_prepare_t *h)
{
	struct st_store *st = container_of(h, struct st_store, soon);

	uv_prepare_stop(&st->soon);
	flush_notices(st);
	schedule_at(st, true);
}

static void on_timer(uv_timer_t *t)
{
	struct st_store *st = container_of(t, struct st_store, timer);

	st->timer_at = 0;
	flush_notices(st);
	schedule_at(st, true);
}

static void timer_stop(struct st_store *st)
{
	if (st->timer_at) {
		uv_timer_stop(&st->timer);
		st->timer_at = 0;
	}
}

/*
 * Follow sched.c: commit now (@now_ok: we are right before the poll or in
 * a timer, with everything of this loop iteration in the batch), soon (the
 * prepare handle: before the loop next polls), at a later time (the timer),
 * or not at all. Owed callbacks of dropped ops go out soon too.
 */
static void schedule_at(struct st_store *st, bool now_ok)
{
	bool large = st->pending.n_ops >= BATCH_MAX_OPS || st->pending.bytes >= BATCH_MAX_BYTES;
	int64_t now, at;

	if (st->closing)
		return;
	now = (int64_t)uv_now(st->loop);
	at = st__sched_next(&st->sched, now, large);
	if (at < 0) {
		timer_stop(st);
		if (!gw_list_empty(&st->notices))
			uv_prepare_start(&st->soon, on_soon);
		return;
	}
	if (at <= now) {
		timer_stop(st);
		if (now_ok)
			start_commit(st);
		else
			uv_prepare_start(&st->soon, on_soon);
		return;
	}
	if (!gw_list_empty(&st->notices))
		uv_prepare_start(&st->soon, on_soon);
	/* Timer times are loop times + 1, so 0 means stopped. */
	if (st->timer_at != at + 1) {
		uv_timer_start(&st->timer, on_timer, (uint64_t)(at - now), 0);
		st->timer_at = at + 1;
	}
}

static void schedule(struct st_store *st)
{
	schedule_at(st, false);
}

/* ---------------------------------------------------------- integrity check */

static void check_work(uv_work_t *req)
{
	struct st_store *st = container_of(req, struct st_store, check_work);

	st->check_rc = st__db_check_full(st->db, st->check_why, sizeof(st->check_why));
}

static void check_done(uv_work_t *req, int status)
{
	struct st_store *st = container_of(req, struct st_store, check_work);

	st->checking = false;
	if (status)
		st->check_rc = -ECANCELED;
	st->stats.check_result = st->check_rc;
	if (st->check_rc == -EBADMSG) {
		/*
		 * Damage deep in the queue, found after open. Swapping the file
		 * under running work is not worth its risk: the store keeps going
		 * (operations that touch the damage fail and are counted) and the
		 * next start moves the file aside.
		 */
		int err = st__db_mark_bad(st->db);

		gw_log(st->lg, LOG_ERR, LOGM,
		       "integrity check of %s failed (%s): it will be moved aside at the next "
		       "start%s",
		       st->cfg.path, st->check_why, err ? " (cannot leave the marker file!)" : "");
	} else if (st->check_rc && st->check_rc != -ECANCELED) {
		gw_log(st->lg, LOG_WARNING, LOGM, "integrity check of %s could not run: %s",
		       st->cfg.path, st->check_why);
	} else if (!st->check_rc) {
		gw_log(st->lg, LOG_DEBUG, LOGM, "integrity check of %s: ok", st->cfg.path);
	}
	if (st->closing)
		maybe_finish_close(st);
}

/* -------------------------------------------------------------------- peeks */

static void peek_next(struct st_store *st);

static void peek_work(uv_work_t *req)
{
	struct st_store *st = container_of(req, struct st_store, peek_work);
	struct peek_req *r = st->peek_cur;

	r->rc = st__db_peek(st->db, r->after, r->max_n, &r->recs, &r->n);
}

static void peek_done(uv_work_t *req, int status)
{
	struct st_store *st = container_of(req, struct st_store, peek_work);
	struct peek_req *r = st->peek_cur;

	st->peek_cur = NULL;
	if (status && !r->rc)
		r->rc = -ECANCELED;
	r->cb(r->arg, r->rc, r->rc ? NULL : r->recs, r->rc ? 0 : r->n);
	gw_free(r->recs);
	gw_free(r);
	if (st->closing)
		maybe_finish_close(st);
	else
		peek_next(st);
}

static void peek_next(struct st_store *st)
{
	struct peek_req *r;
	int err;

	if (st->peek_cur || gw_list_empty(&st->peeks))
		return;
	r = gw_list_first(&st->peeks, struct peek_req, node);
	gw_list_del(&r->node);
	st->peek_cur = r;
	err = uv_queue_work(st->loop, &st->peek_work, peek_work, peek_done);
	if (err) {
		r->rc = -EIO;
		peek_done(&st->peek_work, 0);
	}
}

int st_queue_peek(struct st_store *st, uint64_t after_id, size_t max_n, st_peek_fn cb, void *arg)
{
	struct peek_req *r;

	if (!max_n || !cb)
		return -EINVAL;
	if (st->closing)
		return -ESHUTDOWN;
	r = gw_calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->after = after_id;
	r->max_n = max_n;
	r->cb = cb;
	r->arg = arg;
	gw_list_add_tail(&st->peeks, &r->node);
	peek_next(st);
	return 0;
}

/* ------------------------------------------------------------------- writes */

int st_queue_append(struct st_store *st, const struct st_record *rec, unsigned int flags,
		    st_done_fn cb, void *arg, uint64_t *id_out)
{
	uint64_t size = (uint64_t)rec->topic.len + rec->payload.len + rec->props.len;
	struct st__op *op;

	if (st->closing)
		return -ESHUTDOWN;
	if (size > st->cfg.queue_max_bytes)
		return -EMSGSIZE;
	if (st->cfg.overflow == ST_DROP_NEWEST &&
	    (queue_count(st) + 1 > st->cfg.queue_max_messages ||
	     queue_bytes(st) + size > st->cfg.queue_max_bytes)) {
		st->dropped_unsaved++;
		return -ENOBUFS;
	}
	op = op_new(ST__OP_Q_INSERT, NULL, rec);
	if (!op)
		return -ENOMEM;
	op->id = st->next_id;
	op->cb = cb;
	op->arg = arg;
	op->waited = cb && (flags & ST_WAITED);
	if (batch_index(&st->pending, op)) {
		gw_free(op);
		return -ENOMEM;
	}
	st->next_id++;
	pending_add(st, op);
	if (id_out)
		*id_out = op->id;
	if (st->cfg.overflow == ST_DROP_OLDEST)
		enforce_pending(st);
	schedule(st);
	return 0;
}

int st_queue_ack(struct st_store *st, uint64_t id)
{
	struct ins_ref *ref;
	struct st__op *op;

	if (st->closing)
		return -ESHUTDOWN;
	ref = batch_find(&st->pending, id);
	if (ref) {
		/* Not written yet: skip the insert instead of writing a delete. */
		if (ref->op && !ref->op->skip) {
			ref->op->skip = true;
			st->pending.ins_count--;
			st->pending.ins_bytes -= st__op_size(ref->op);
		}
		return 0;
	}
	/* The next id of the run the last ack started: widen that op instead. */
	op = st->ack_run;
	if (op && op->n_ids < UINT32_MAX && id == op->id + op->n_ids) {
		op->n_ids++;
		st->acks_count++;
		return 0;
	}
	op = op_new(ST__OP_Q_ACK, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->id = id;
	op->n_ids = 1;
	if (gw_list_empty(&st->acks)) {
		st->acks_oldest = (int64_t)uv_now(st->loop);
		st__sched_add(&st->sched, st->acks_oldest, false);
	}
	gw_list_add_tail(&st->acks, &op->node);
	st->ack_run = op;
	st->acks_ops++;
	st->acks_count++;
	schedule(st);
	return 0;
}

/* Queue a non-queue write. */
static int add_op(struct st_store *st, uint8_t kind, const char *key, uint64_t id,
		  const struct st_record *rec)
{
	struct st__op *op;

	if (st->closing)
		return -ESHUTDOWN;
	op = op_new(kind, key, rec);
	if (!op)
		return -ENOMEM;
	op->id = id;
	pending_add(st, op);
	schedule(st);
	return 0;
}

int st_retained_put(struct st_store *st, const struct st_record *rec)
{
	if (!rec->topic.len)
		return -EINVAL;
	return add_op(st, ST__OP_RET_PUT, NULL, 0, rec);
}

int st_retained_del(struct st_store *st, struct gw_slice topic)
{
	struct st_record rec = { .topic = topic };

	if (!topic.len)
		return -EINVAL;
	return add_op(st, ST__OP_RET_DEL, NULL, 0, &rec);
}

int st_session_put(struct st_store *st, const char *client_id, const void *blob, size_t len)
{
	struct st_record rec = { .payload = { blob, len } };

	if (!client_id || !*client_id)
		return -EINVAL;
	return add_op(st, ST__OP_SESS_PUT, client_id, 0, &rec);
}

int st_session_del(struct st_store *st, const char *client_id)
{
	if (!client_id || !*client_id)
		return -EINVAL;
	return add_op(st, ST__OP_SESS_DEL, client_id, 0, NULL);
}

int st_session_msg_add(struct st_store *st, const char *client_id, uint64_t seq,
		       const struct st_record *rec)
{
	if (!client_id || !*client_id)
		return -EINVAL;
	return add_op(st, ST__OP_SMSG_ADD, client_id, seq, rec);
}

int st_session_msg_del(struct st_store *st, const char *client_id, uint64_t seq)
{
	if (!client_id || !*client_id)
		return -EINVAL;
	return add_op(st, ST__OP_SMSG_DEL, client_id, seq, NULL);
}

int st_flush(struct st_store *st, st_done_fn cb, void *arg)
{
	struct st__op *op;

	if (st->closing)
		return -ESHUTDOWN;
	op = op_new(ST__OP_FLUSH, NULL, NULL);
	if (!op)
		return -ENOMEM;
	op->cb = cb;
	op->arg = arg;
	op->waited = true;
	st->acks_now = !gw_list_empty(&st->acks);
	pending_add(st, op);
	schedule(st);
	return 0;
}

/* -------------------------------------------------------------------- loads */

int st_retained_load(struct st_store *st, st_retained_fn cb, void *arg)
{
	if (st->committing || st->peek_cur)
		return -EBUSY;
	return st__db_load_retained(st->db, cb, arg);
}

int st_sessions_load(struct st_store *st, st_session_fn sess_cb, st_session_msg_fn msg_cb,
		     void *arg)
{
	if (st->committing || st->peek_cur)
		return -EBUSY;
	return st__db_load_sessions(st->db, sess_cb, msg_cb, arg);
}

/* ---------------------------------------------------------------- lifecycle */

int st_open(uv_loop_t *loop, const struct st_config *cfg, const struct gw_logger *lg,
	    struct st_store **out)
{
	struct st_store *st = NULL;
	int err;

	*out = NULL;
	if (!cfg->path || !*cfg->path || cfg->overflow >= __ST_OVERFLOW_MAX ||
	    !cfg->queue_max_messages || !cfg->queue_max_bytes)
		return -EINVAL;
	st = gw_calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->loop = loop;
	st->lg = lg;
	st->cfg = *cfg;
	st->cfg.path = gw_strdup(cfg->path);
	if (!st->cfg.path) {
		err = -ENOMEM;
		goto fail;
	}
	batch_init(&st->pending);
	batch_init(&st->infl);
	gw_list_init(&st->commit.ops);
	gw_list_init(&st->peeks);
	gw_list_init(&st->notices);
	gw_list_init(&st->acks);
	err = st__db_open(st->cfg.path, cfg->sync_full, lg, &st->db, &st->meta);
	if (err)
		goto fail;
	st->next_id = st->meta.last_id + 1;
	st__sched_init(&st->sched, cfg->sync_interval_ms);
	st->wal_may_restart = true;
	err = uv_timer_init(loop, &st->timer);
	if (err)
		goto fail;
	st->n_handles++;
	uv_prepare_init(loop, &st->soon);
	st->n_handles++;
	st->stats.check_result = 1;
	if (!uv_queue_work(loop, &st->check_work, check_work, check_done))
		st->checking = true;
	gw_log(lg, LOG_INFO, LOGM, "opened %s: %llu queued messages, %llu bytes", st->cfg.path,
	       (unsigned long long)st->meta.count, (unsigned long long)st->meta.bytes);
	*out = st;
	return 0;
fail:
	st__db_close(st->db);
	gw_free(st->cfg.path);
	gw_free(st);
	return err;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct st_store *st = h->data;
	st_close_fn cb = st->close_cb;
	void *arg = st->close_arg;

	if (--st->n_handles)
		return;
	st__db_close(st->db);
	batch_reset(&st->pending);
	batch_reset(&st->infl);
	gw_free(st->cfg.path);
	gw_free(st);
	if (cb)
		cb(arg);
}

static void maybe_finish_close(struct st_store *st)
{
	struct gw_list *pos, *tmp;

	if (st->committing || st->peek_cur || st->checking || st->ckpt_running ||
	    st->handles_closed)
		return;
	if ((!gw_list_empty(&st->pending.ops) || !gw_list_empty(&st->acks)) && !st->close_tried) {
		start_commit(st);
		return;
	}
	notify_ops(&st->acks, -ECANCELED,
		   0); /* after a failed commit: sent again at the next start */
	gw_list_for_each_safe (pos, tmp, &st->peeks) {
		struct peek_req *r = gw_list_entry(pos, struct peek_req, node);

		gw_list_del(&r->node);
		r->cb(r->arg, -ECANCELED, NULL, 0);
		gw_free(r);
	}
	flush_notices(st);
	st->handles_closed = true;
	st->timer.data = st;
	st->soon.data = st;
	uv_close((uv_handle_t *)&st->timer, on_handle_closed);
	uv_close((uv_handle_t *)&st->soon, on_handle_closed);
}

void st_close(struct st_store *st, st_close_fn cb, void *arg)
{
	if (st->closing)
		return;
	st->closing = true;
	st->close_cb = cb;
	st->close_arg = arg;
	timer_stop(st);
	uv_prepare_stop(&st->soon);
	if (st->checking)
		st__db_check_interrupt(st->db);
	maybe_finish_close(st);
}

/* ------------------------------------------------------------------ figures */

void st_get_stats(const struct st_store *st, struct st_stats *out)
{
	*out = st->stats;
	out->queue_messages = queue_count(st);
	out->queue_bytes = queue_bytes(st);
	out->dropped = st->meta.dropped + st->dropped_unsaved +
		       (st->committing ? st->commit.dropped_add : 0);
	out->pending_ops = st->pending.n_ops + st->acks_ops + (st->committing ? st->infl.n_ops : 0);
	out->failing = st->failing;
	st__db_memory(&out->sqlite_heap, &out->sqlite_page_cache);
}

struct st__db *st__store_db(struct st_store *st)
{
	return st->db;
}
