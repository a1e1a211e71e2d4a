/*
 * store.h - durable storage for fieldmq: the uplink queue, retained messages
 * and persistent broker sessions, kept in one SQLite database.
 *
 * The store knows nothing of MQTT. It keeps opaque records (topic, payload,
 * properties blob, qos, retain) in order, and opaque session blobs keyed by
 * client id.
 *
 * Threads: every function here is called on the loop thread. Writes never
 * touch the disk on the caller's stack: they join an in-memory pending batch
 * that a group commit writes in one transaction on the libuv thread pool.
 * When: as soon as no commit is running if the batch holds a write somebody
 * waits on (ST_WAITED appends, st_flush), right before the loop next polls so
 * that everything of the current loop iteration joins; writes that arrive
 * while a commit runs form the next batch. Writes nobody waits on wait at
 * most sync_interval_ms (sooner when the batch is large). Completion
 * callbacks run on the loop thread once their transaction has committed.
 * With sync_full off, a small batch (64 operations, 64 KiB) is committed on
 * the loop thread itself: in WAL mode with synchronous=NORMAL a commit
 * writes into the page cache and waits on no disk, and skipping the hand-over
 * to a pool thread and back halves a stop-and-wait publisher's latency.
 * Checkpoints, which fsync, never run inside a commit: the store starts one
 * on the thread pool, on a connection of its own, when the WAL passes 1000
 * pages.
 * Queue reads (st_queue_peek) run on the thread pool too, on a second
 * connection. Only st_open(), the st_*_load() functions and the last step of
 * st_close() touch the disk synchronously; they are meant for start-up and
 * shutdown, before and after the loop serves traffic.
 *
 * Durability: the database runs in WAL mode with synchronous=NORMAL. A
 * transaction whose callback has fired survives a crash of the process
 * (kill -9): the WAL is in the OS page cache. Power loss may roll back the
 * last transactions before the next checkpoint; set sync_full to fsync every
 * commit (synchronous=FULL) where that matters more than throughput: then a
 * callback fires only once its transaction is on the disk.
 */
#ifndef FIELDMQ_STORE_H
#define FIELDMQ_STORE_H

/* libuv's loop by its struct name (store.c includes <uv.h>; users need not). */
struct uv_loop_s;

#include "gateway/base/base.h"
#include "gateway/base/hist.h"

struct st_store;

/* ------------------------------------------------------------ configuration */

enum st_overflow {
	ST_DROP_OLDEST, /* a full queue makes room by dropping its oldest records */
	ST_DROP_NEWEST, /* a full queue refuses new records */
	__ST_OVERFLOW_MAX
};

struct st_config {
	char *path; /* database file; its directory must exist */
	uint64_t queue_max_messages;
	uint64_t queue_max_bytes; /* sum of topic + payload + props lengths */
	enum st_overflow overflow;
	uint64_t
		sync_interval_ms; /* longest wait of a write nobody waits on; 0 = every loop turn */
	bool sync_full;		  /* fsync each commit (power-loss safe, slower) */
};

/*
 * st_config_defaults - DESIGN.md defaults: path "fieldmq.db" (a static string,
 * not freed: the config loader replaces it with {data_dir}/fieldmq.db), 1000000
 * messages, 256 MiB, drop_oldest, 100 ms, sync_full off.
 */
void st_config_defaults(struct st_config *cfg);

/* "drop_oldest" | "drop_newest" -> ST_DROP_*, or -EINVAL. */
int st_overflow_parse(const char *s);

/* ------------------------------------------------------------------ records */

/*
 * A record as handed to and from the store. The slices point into memory
 * owned by whoever passes the record: the store copies what it is given, and
 * a record it hands out is valid only during the callback that receives it.
 */
struct st_record {
	struct gw_slice topic;
	struct gw_slice payload;
	struct gw_slice props; /* opaque properties blob, possibly empty */
	uint8_t qos;
	bool retain;
};

/* A queued record and its id (ids grow with every append, across restarts). */
struct st_qrecord {
	uint64_t id;
	struct st_record rec;
};

/* ---------------------------------------------------------------- lifecycle */

/*
 * st_open - open (or create) the database at cfg->path and attach the store
 * to @loop. Synchronous: call at start-up. The store copies @cfg; @lg may be
 * NULL and must outlive the store.
 *
 * A database that is not a database at all, or fails the checks made at open
 * (quick_check of the schema and the small tables, a probe of both ends of
 * the queue), is renamed to "<path>.corrupt-<UTC timestamp>" (its -wal too),
 * an error is logged, and a fresh database is created in its place: the
 * gateway keeps running without the lost data. The quick_check of the whole
 * file reads every page (seconds for a million records on slow flash), so it
 * runs on the thread pool after open; if it fails, an error is logged,
 * st_stats.check_result says so, and the next st_open moves the file aside.
 * An older schema is migrated.
 *
 * Returns 0 and *out, or -EINVAL (bad config), -ENOMEM, -EPROTONOSUPPORT (the
 * schema is newer than this build: the file is left alone), -ENOTSUP (SQLite
 * built with SQLITE_THREADSAFE=0), -EBUSY (locked by another process), -EIO (the file
 * cannot be opened or created, e.g. a read-only or missing directory; the
 * log says why).
 */
int st_open(struct uv_loop_s *loop, const struct st_config *cfg, const struct gw_logger *lg,
	    struct st_store **out);

typedef void (*st_close_fn)(void *arg);

/*
 * st_close - commit what is pending, wait for work in flight, close the
 * database and free the store, then call @cb (may be NULL) on the loop
 * thread. Outstanding append callbacks fire first (with an error status if
 * the last commit failed: those operations are lost and the log says how
 * many); pending peeks complete with -ECANCELED. After st_close() no other
 * st_ function may be called with @st. Run the loop until @cb has fired.
 */
void st_close(struct st_store *st, st_close_fn cb, void *arg);

/* ----------------------------------------------------------- uplink queue */

/*
 * Completion of a write. @status: 0 committed; -ENOBUFS the record was
 * committed but dropped at once by the drop_oldest policy (the queue was
 * full); -ECANCELED / -EIO the store closed before it could commit (lost).
 * @id is the queue id (0 for non-queue writes).
 */
typedef void (*st_done_fn)(void *arg, uint64_t id, int status);

/* st_queue_append flags */
#define ST_WAITED 1u /* somebody waits on @cb (a publisher's ack): commit as soon as idle */

/*
 * st_queue_append - queue a copy of @rec at the tail. *id_out (may be NULL)
 * receives its id at once. @cb (may be NULL) fires on the loop thread after
 * the transaction holding the record has committed - never before this call
 * has returned, and exactly once if this call returns 0. @flags: ST_WAITED
 * when an acknowledgement waits on @cb (then the commit starts as soon as
 * the writer is idle); 0 for a record that may wait up to sync_interval_ms.
 *
 * When the queue is full (queue_max_messages or queue_max_bytes): with
 * drop_newest the record is refused; with drop_oldest the oldest records are
 * dropped to make room. Either way the dropped counter grows.
 *
 * Returns 0, -ENOBUFS (refused by drop_newest; counted as dropped; @cb will
 * not fire), -EMSGSIZE (the record alone exceeds queue_max_bytes), -ENOMEM,
 * -ESHUTDOWN (closing).
 */
int st_queue_append(struct st_store *st, const struct st_record *rec, unsigned int flags,
		    st_done_fn cb, void *arg, uint64_t *id_out);

/*
 * Result of a peek: @n records (0 when the queue holds nothing after the
 * given id), oldest first, valid only during the call. @status is 0, or
 * -EIO (a read error, logged), -ENOMEM, -ECANCELED (the store is closing).
 */
typedef void (*st_peek_fn)(void *arg, int status, const struct st_qrecord *recs, size_t n);

/*
 * st_queue_peek - read up to @max_n committed records with an id greater
 * than @after_id, oldest first, on the thread pool; @cb gets them on the
 * loop thread. A record is visible once its append callback has fired
 * (records still in the pending batch are not seen). Acknowledgements take
 * effect at the next commit, so pass the id of the last record sent as
 * @after_id rather than relying on acknowledged ids vanishing at once.
 * Peeks are served one at a time, in the order asked.
 *
 * Returns 0 (and @cb will fire exactly once), -EINVAL (@max_n is 0 or
 * @cb NULL), -ENOMEM, -ESHUTDOWN.
 */
int st_queue_peek(struct st_store *st, uint64_t after_id, size_t max_n, st_peek_fn cb, void *arg);

/*
 * st_queue_ack - delete record @id (the cloud acknowledged it). Deletes are
 * batched like the writes nobody waits on: they join the first commit that
 * nobody waits on, or any commit once the oldest has waited
 * sync_interval_ms, and every st_flush() and st_close(); a commit somebody
 * waits on (ST_WAITED) does not wait for them or carry them. A crash before
 * then loses nothing: the record is read again after the restart (a
 * duplicate, which QoS 1 allows). Consecutive ids share one operation. An
 * unknown or already deleted id is ignored. A record still in the pending
 * batch is simply not written (its append callback still fires with 0).
 * Returns 0, -ENOMEM, -ESHUTDOWN.
 */
int st_queue_ack(struct st_store *st, uint64_t id);

/* ------------------------------------------------ retained messages */

/*
 * st_retained_put - store @rec as the retained message of rec->topic,
 * replacing any. st_retained_del - forget the retained message of @topic.
 * Both join the pending batch. Returns 0, -EINVAL (empty topic), -ENOMEM,
 * -ESHUTDOWN.
 */
int st_retained_put(struct st_store *st, const struct st_record *rec);
int st_retained_del(struct st_store *st, struct gw_slice topic);

/* Called once per record by a load; a non-zero return stops the load and is returned. */
typedef int (*st_retained_fn)(void *arg, const struct st_record *rec);

/*
 * st_retained_load - call @cb for every retained message, in topic order.
 * Synchronous: call at start-up, before traffic (while a commit or peek is
 * in flight it returns -EBUSY). Returns 0, @cb's non-zero value, -EIO, -EBUSY.
 */
int st_retained_load(struct st_store *st, st_retained_fn cb, void *arg);

/* ------------------------------------------------------- broker sessions */

/*
 * st_session_put - store @blob (@len bytes, copied) as the state of session
 * @client_id, replacing any. st_session_del - forget the session and every
 * message queued for it. Return 0, -EINVAL (NULL or empty id), -ENOMEM,
 * -ESHUTDOWN.
 */
int st_session_put(struct st_store *st, const char *client_id, const void *blob, size_t len);
int st_session_del(struct st_store *st, const char *client_id);

/*
 * st_session_msg_add - store @rec as message @seq queued for session
 * @client_id (replacing one of the same seq). st_session_msg_del - forget it.
 * Return 0, -EINVAL, -ENOMEM, -ESHUTDOWN.
 */
int st_session_msg_add(struct st_store *st, const char *client_id, uint64_t seq,
		       const struct st_record *rec);
int st_session_msg_del(struct st_store *st, const char *client_id, uint64_t seq);

typedef int (*st_session_fn)(void *arg, const char *client_id, const void *blob, size_t len);
typedef int (*st_session_msg_fn)(void *arg, const char *client_id, uint64_t seq,
				 const struct st_record *rec);

/*
 * st_sessions_load - call @sess_cb for every stored session (client id
 * order), then @msg_cb for every queued session message, ordered by client
 * id then seq. Messages whose session is not stored are skipped. Either
 * callback may be NULL. Synchronous, as st_retained_load(). Returns 0, a
 * callback's non-zero value, -EIO, -EBUSY.
 */
int st_sessions_load(struct st_store *st, st_session_fn sess_cb, st_session_msg_fn msg_cb,
		     void *arg);

/* ------------------------------------------------------------------ figures */

struct st_stats {
	uint64_t queue_messages; /* committed + pending - acknowledged */
	uint64_t queue_bytes;	 /* committed + pending; acks count after their commit */
	uint64_t dropped;	 /* records dropped by the overflow policy, ever (persisted) */
	uint64_t commits;	 /* transactions committed since open */
	uint64_t pool_commits;	 /* of the commit attempts, those run on the thread pool */
	uint64_t checkpoints;	 /* WAL checkpoints run since open */
	uint64_t commit_errors;	 /* failed commit attempts since open */
	uint64_t ops_committed;	 /* operations written since open */
	uint64_t pending_ops;	 /* operations waiting for a commit (incl. one in flight) */
	bool failing;		 /* the last commit failed (disk full, read-only...) */
	/*
	 * The full integrity check that runs on the thread pool after open:
	 * 1 still running, 0 ok, -EBADMSG the file is damaged (logged; the next
	 * st_open moves it aside), -ECANCELED cut short by st_close, -EIO.
	 */
	int check_result;
	/* Successful commits, from the start of the transaction to its completion on the loop. */
	struct gw_hist commit_latency;
	/*
	 * Heap SQLite holds now, and the part of it that is page cache
	 * (sqlite3_status: SQLITE_STATUS_MEMORY_USED and PAGECACHE_OVERFLOW).
	 * Process-wide figures: the store's connections (writer, reader,
	 * checkpointer, the integrity check while it runs) are all the SQLite
	 * of fieldmq. Each connection's page cache grows with what it reads up
	 * to its cache_size (store_db.c: 256 KiB for the writer, 64 KiB for the
	 * reader, 32 KiB for the others) and stays there. 0 when SQLite is
	 * built with SQLITE_DEFAULT_MEMSTATUS=0.
	 */
	uint64_t sqlite_heap;
	uint64_t sqlite_page_cache;
};

void st_get_stats(const struct st_store *st, struct st_stats *out);

/*
 * st_flush - commit as soon as the writer is idle (as an ST_WAITED append
 * does) instead of waiting for the interval; @cb
 * (may be NULL) fires once everything written before this call has
 * committed (with id 0, status 0). While commits fail it keeps waiting, as
 * the writes do. Returns 0, -ENOMEM, -ESHUTDOWN.
 */
int st_flush(struct st_store *st, st_done_fn cb, void *arg);

#endif
