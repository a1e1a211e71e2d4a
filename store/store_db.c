/*
 * store_db.c - the SQLite side of the store: open with an integrity check and
 * a move-aside of corrupt files, schema migrations, group-commit transactions
 * and queue reads. The one file of fieldmq that includes sqlite3.h.
 *
 * Two connections: the writer runs the commits, the reader serves peeks, so a
 * long commit does not hold up draining (WAL lets a reader run beside a
 * writer). Each connection is used by one thread at a time - store.c keeps at
 * most one commit and one peek in flight and runs the synchronous calls only
 * while none is - so they are opened with SQLITE_OPEN_NOMUTEX.
 *
 * Memory: SQLite's defaults (a 2 MB page cache and 120 KB of lookaside per
 * connection) are sized for a desktop. Here each connection gets a cache
 * sized for what it does (conn_tune): only the writer reuses pages between
 * transactions - in WAL mode a connection drops its whole cache whenever
 * another one has written, so the reader's and the checkpointer's caches
 * serve one statement at a time. The integrity check's connection lives
 * only as long as the check.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_int.h"

enum {
	S_Q_INSERT,
	S_Q_ACK_SIZE,
	S_Q_ACK,
	S_Q_OLDEST,
	S_Q_DROP,
	S_RET_PUT,
	S_RET_DEL,
	S_SESS_PUT,
	S_SESS_DEL,
	S_SESS_DEL_MSGS,
	S_SMSG_ADD,
	S_SMSG_DEL,
	S_META_SET,
	S_BEGIN,
	S_COMMIT,
	__S_MAX
};

/* Prepared once per open and reused by every transaction. */
static const char *const stmt_sql[__S_MAX] = {
	[S_Q_INSERT] = "INSERT INTO queue(id, topic, payload, props, qos, retain, size) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	/*
	 * An ack covers a run of ids. Not DELETE ... RETURNING: that fills an
	 * ephemeral table on every run, which cost ~1 ms per ack under ASan
	 * and held the ack commits back for hundreds of ms while draining.
	 */
	[S_Q_ACK_SIZE] = "SELECT count(*), coalesce(sum(size), 0) FROM queue "
			 "WHERE id BETWEEN ?1 AND ?2",
	[S_Q_ACK] = "DELETE FROM queue WHERE id BETWEEN ?1 AND ?2",
	[S_Q_OLDEST] = "SELECT id, size FROM queue ORDER BY id LIMIT 1024",
	[S_Q_DROP] = "DELETE FROM queue WHERE id <= ?1",
	[S_RET_PUT] = "INSERT OR REPLACE INTO retained(topic, payload, props, qos, retain) "
		      "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_RET_DEL] = "DELETE FROM retained WHERE topic = ?1",
	[S_SESS_PUT] = "INSERT OR REPLACE INTO sessions(client_id, blob) VALUES (?1, ?2)",
	[S_SESS_DEL] = "DELETE FROM sessions WHERE client_id = ?1",
	[S_SESS_DEL_MSGS] = "DELETE FROM session_msgs WHERE client_id = ?1",
	[S_SMSG_ADD] = "INSERT OR REPLACE INTO session_msgs"
		       "(client_id, seq, topic, payload, props, qos, retain) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_SMSG_DEL] = "DELETE FROM session_msgs WHERE client_id = ?1 AND seq = ?2",
	[S_META_SET] = "UPDATE meta SET value = ?2 WHERE key = ?1",
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
};

#define PEEK_SQL                                                                  \
	"SELECT id, topic, payload, props, qos, retain FROM queue WHERE id > ?1 " \
	"ORDER BY id LIMIT ?2"

/*
 * Schema migrations: migrations[i] takes a database from user_version i to
 * i + 1, in one transaction with the version bump. Append, never edit: a
 * released step is history that old databases replay.
 */
static const char *const migrations[ST__SCHEMA_VERSION] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE queue(id INTEGER PRIMARY KEY, topic BLOB NOT NULL,"
	" payload BLOB NOT NULL, props BLOB NOT NULL, qos INTEGER NOT NULL,"
	" retain INTEGER NOT NULL);"
	"CREATE TABLE retained(topic BLOB PRIMARY KEY, payload BLOB NOT NULL,"
	" props BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE sessions(client_id TEXT PRIMARY KEY, blob BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE session_msgs(client_id TEXT NOT NULL, seq INTEGER NOT NULL,"
	" topic BLOB NOT NULL, payload BLOB NOT NULL, props BLOB NOT NULL,"
	" qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
	" PRIMARY KEY(client_id, seq)) WITHOUT ROWID;",
	/*
	 * 1 -> 2: queue counters in a meta table so that opening a large queue
	 * does not scan it (version 1 counted with COUNT and SUM at open), and
	 * the size of each record in its row for the byte limit.
	 */
	"ALTER TABLE queue ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"
	"UPDATE queue SET size = length(topic) + length(payload) + length(props);"
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO meta(key, value) VALUES"
	" ('count', (SELECT count(*) FROM queue)),"
	" ('bytes', (SELECT coalesce(sum(size), 0) FROM queue)),"
	" ('dropped', 0),"
	" ('last_id', (SELECT coalesce(max(id), 0) FROM queue));",
};

struct st__db {
	sqlite3 *wr;
	sqlite3 *rd;
	sqlite3_stmt *stmt[__S_MAX];
	sqlite3_stmt *peek;
	sqlite3_stmt *meta_get;
	atomic_int check_stop; /* st__db_check_interrupt() was called */
	sqlite3 *ckpt;	       /* checkpoints, on the pool, beside the writer */
	sqlite3 *pin;	       /* a read transaction held through each checkpoint */
	int wal_frames;	       /* in the WAL after the last commit (the writer's wal hook) */
	struct st__meta meta;  /* as committed; touched by the commit thread only */
	const struct gw_logger *lg;
	char *path;	   /* the database file, for the check's connection */
	char marker[4096]; /* <path>.check-failed */
	int lock_fd;	   /* <path>.lock, flock()ed while open */
};

#define LOGM "store"

/* SQLite's result code to our -errno. */
static int rc_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* Bind a slice as a BLOB; an empty one binds '' rather than NULL. */
static int bind_slice(sqlite3_stmt *s, int i, struct gw_slice sl)
{
	return sqlite3_bind_blob64(s, i, sl.len ? (const void *)sl.p : "", sl.len, SQLITE_STATIC);
}

static struct gw_slice col_slice(sqlite3_stmt *s, int i)
{
	struct gw_slice sl;

	sl.p = sqlite3_column_blob(s, i);
	sl.len = (size_t)sqlite3_column_bytes(s, i);
	return sl;
}

/* Run a statement to completion and reset it; the first step's code. */
static int step_done(sqlite3_stmt *s)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The single text value of a pragma such as journal_mode or quick_check. */
static int pragma_text(sqlite3 *h, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *s = NULL;
	int rc;

	buf[0] = '\0';
	rc = sqlite3_prepare_v2(h, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		snprintf(buf, len, "%s", t ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
out:
	sqlite3_finalize(s);
	return rc;
}

static int user_version(sqlite3 *h, int *v)
{
	char buf[32];
	int rc = pragma_text(h, "PRAGMA user_version", buf, sizeof(buf));

	*v = atoi(buf);
	return rc;
}

/* After each commit of the writer: how long the WAL is (see st__db_checkpoint). */
static int wal_hook(void *arg, sqlite3 *h, const char *name, int frames)
{
	(void)h;
	(void)name;
	((struct st__db *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

/*
 * Page cache of each connection, in KiB (PRAGMA cache_size=-N). The writer's
 * holds a batch's dirty pages plus the interior pages of the tables it
 * writes: a batch of 1000 retained readings (1000 devices x 10 points at 1
 * s, 100 ms sync_interval) dirties ~30 pages. A batch larger than the cache
 * spills pages to the WAL before its commit, which SQLite does without
 * harm. The others read a few pages per statement (see the header).
 */
#define CACHE_KIB_WRITER 256
#define CACHE_KIB_READER 64
#define CACHE_KIB_OTHER 32
#define CACHE_KIB_PIN 8 /* reads one page of meta per checkpoint */

/*
 * conn_tune - give connection @h a page cache of @cache_kib KiB and, unless
 * @lookaside, no lookaside memory (SQLite's per-connection pool of small
 * allocations: 120 KB that speeds up the writer's statements, and buys
 * nothing for connections that run one statement now and then). Call right
 * after the open, before the first statement. Returns an SQLite code.
 */
static int conn_tune(sqlite3 *h, int cache_kib, bool lookaside)
{
	char sql[48];
	int rc = SQLITE_OK;

	if (!lookaside)
		rc = sqlite3_db_config(h, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%d", cache_kib);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	return rc;
}

/*
 * SQLite's process-wide settings, set once before its first use (fieldmq is
 * the only user of SQLite in its process): no bulk page-cache allocation per
 * connection. SQLite's default (SQLITE_DEFAULT_PCACHE_INITSZ, 20 pages) is
 * an 87 KB block that each connection allocates and writes at its first
 * read, before PRAGMA cache_size can say less; without it the pages come one
 * at a time as a cache fills, up to the same cache_size. Idle RSS -0.2 MB
 * (BENCHMARKS.md footprint). sqlite3_config() must run before
 * sqlite3_initialize() and while no other thread is in SQLite: the
 * pthread_once gives both, whichever thread opens first; when SQLite was
 * initialised already (a test that used it first) the setting is refused
 * and nothing else changes.
 */
static pthread_once_t sqlite_setup_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	sqlite3_initialize();
}

static int db_connect(const char *path, sqlite3 **out)
{
	int rc;

	*out = NULL;
	pthread_once(&sqlite_setup_once, sqlite_setup);
	rc = sqlite3_open_v2(
		path, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(*out, 1);
		/* The other connection checkpointing; another process is an error. */
		sqlite3_busy_timeout(*out, 5000);
	}
	return rc;
}

/*
 * The checks at open stay cheap with a million queued records on slow flash:
 * the schema and the small tables get a quick_check each, the queue only a
 * walk down both edges of its b-tree (first and last rows, O(log n) pages).
 * The quick_check of the whole file runs afterwards on the thread pool
 * (st__db_check_full), and a failure there moves the file aside at the next
 * start.
 */
static int check_cheap(sqlite3 *h, char *why, size_t why_len)
{
	static const char *const small[] = { "sqlite_schema", "meta", "retained", "sessions",
					     "session_msgs" };
	sqlite3_stmt *s = NULL;
	char sql[96], buf[128];
	bool has_queue = false;
	size_t i;
	int rc;

	for (i = 0; i < GW_ARRAY_SIZE(small); i++) {
		snprintf(sql, sizeof(sql), "SELECT 1 FROM sqlite_schema WHERE name = '%s'",
			 small[i]);
		rc = i ? pragma_text(h, sql, buf, sizeof(buf)) : SQLITE_OK;
		if (rc != SQLITE_OK)
			goto fail;
		if (i && strcmp(buf, "1"))
			continue;
		snprintf(sql, sizeof(sql), "PRAGMA quick_check(%s)", small[i]);
		rc = pragma_text(h, sql, buf, sizeof(buf));
		if (rc != SQLITE_OK)
			goto fail;
		if (strcmp(buf, "ok")) {
			snprintf(why, why_len, "quick_check(%s): %s", small[i], buf);
			return SQLITE_CORRUPT;
		}
	}
	rc = pragma_text(h, "SELECT 1 FROM sqlite_schema WHERE name = 'queue'", buf, sizeof(buf));
	if (rc != SQLITE_OK)
		goto fail;
	has_queue = !strcmp(buf, "1");
	if (!has_queue)
		return SQLITE_OK;
	rc = sqlite3_prepare_v2(h,
				"SELECT (SELECT length(payload) FROM queue ORDER BY id LIMIT 1),"
				" (SELECT length(payload) FROM queue ORDER BY id DESC LIMIT 1)",
				-1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return SQLITE_OK;
fail:
	snprintf(why, why_len, "%s", sqlite3_errmsg(h));
	return rc == SQLITE_OK || rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
}

/*
 * Open the writer connection and check the file: WAL mode (the first read
 * of the header), the integrity check and the schema version. *why says what
 * failed when the result is not SQLITE_OK.
 */
static int db_open_checked(const char *path, bool sync_full, sqlite3 **out, char *why,
			   size_t why_len)
{
	sqlite3 *h = NULL;
	char buf[128];
	int rc;

	why[0] = '\0';
	rc = db_connect(path, &h);
	if (rc != SQLITE_OK) {
		snprintf(why, why_len, "open: %s", h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
		goto out;
	}
	rc = conn_tune(h, CACHE_KIB_WRITER, true);
	if (rc == SQLITE_OK)
		rc = pragma_text(h, "PRAGMA journal_mode=WAL", buf, sizeof(buf));
	if (rc == SQLITE_OK && strcmp(buf, "wal")) {
		rc = SQLITE_CANTOPEN;
		snprintf(why, why_len, "journal_mode=WAL refused (%s)", buf);
		goto out;
	}
	if (rc != SQLITE_OK) {
		snprintf(why, why_len, "%s", sqlite3_errmsg(h));
		goto out;
	}
	/*
	 * NORMAL in WAL mode: a commit is in the WAL (page cache) before it
	 * returns, which survives a crash of the process; only a power loss
	 * can take back the transactions since the last checkpoint's fsync.
	 * FULL fsyncs the WAL at every commit for those who need that too.
	 */
	rc = sqlite3_exec(h, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		/* Keep a checkpointed WAL from holding disk space forever. */
		rc = sqlite3_exec(h, "PRAGMA journal_size_limit=4194304", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, why_len, "%s", sqlite3_errmsg(h));
		goto out;
	}
	rc = check_cheap(h, why, why_len);
out:
	if (rc != SQLITE_OK) {
		sqlite3_close_v2(h);
		h = NULL;
	}
	*out = h;
	return rc;
}

/* A result that says the file itself is bad (corrupt, not a database, unreadable). */
static bool unusable(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB ||
	       rc == SQLITE_IOERR_READ || rc == SQLITE_IOERR_SHORT_READ;
}

/* Rename @path (and its WAL) to <path>.corrupt-<UTC time>; 0 or -errno. */
static int move_aside(const char *path, const struct gw_logger *lg, const char *why)
{
	char stamp[32], dst[4096], src[4096];
	time_t now = time(NULL);
	struct tm tm;
	int i, n;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	n = snprintf(dst, sizeof(dst), "%s.corrupt-%s", path, stamp);
	for (i = 1; n > 0 && (size_t)n < sizeof(dst) && access(dst, F_OK) == 0 && i < 100; i++)
		n = snprintf(dst, sizeof(dst), "%s.corrupt-%s.%d", path, stamp, i);
	if (n < 0 || (size_t)n >= sizeof(dst) - 8)
		return -ENAMETOOLONG;
	if (rename(path, dst)) {
		int err = -errno;

		gw_log(lg, LOG_ERR, LOGM,
		       "database %s is unusable (%s) and cannot be moved aside: %s", path, why,
		       strerror(-err));
		return err;
	}
	snprintf(src, sizeof(src), "%s-wal", path);
	strcat(dst, "-wal");
	if (rename(src, dst) && errno != ENOENT)
		unlink(src);
	snprintf(src, sizeof(src), "%s-shm", path);
	unlink(src);
	dst[strlen(dst) - 4] = '\0';
	gw_log(lg, LOG_ERR, LOGM,
	       "database %s is unusable (%s): moved aside to %s, starting with an empty one", path,
	       why, dst);
	return 0;
}

/* Bring the schema to ST__SCHEMA_VERSION, one transaction per step. */
static int migrate(sqlite3 *h, const struct gw_logger *lg, const char *path)
{
	char sql[64];
	int v, rc;

	rc = user_version(h, &v);
	if (rc != SQLITE_OK)
		return rc_errno(rc);
	if (v > ST__SCHEMA_VERSION) {
		gw_log(lg, LOG_ERR, LOGM,
		       "database %s has schema version %d, newer than this build (%d): not touched",
		       path, v, ST__SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	for (; v < ST__SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
		rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(h, migrations[v], NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			gw_log(lg, LOG_ERR, LOGM, "migrating %s from schema %d to %d: %s", path, v,
			       v + 1, sqlite3_errmsg(h));
			if (!sqlite3_get_autocommit(h))
				sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
			return rc_errno(rc) ? rc_errno(rc) : -EIO;
		}
		if (v > 0)
			gw_log(lg, LOG_NOTICE, LOGM, "migrated %s from schema %d to %d", path, v,
			       v + 1);
	}
	return 0;
}

static int read_meta(struct st__db *db)
{
	sqlite3_stmt *s = NULL;
	int rc;

	memset(&db->meta, 0, sizeof(db->meta));
	rc = sqlite3_prepare_v2(db->wr, "SELECT key, value FROM meta", -1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);
		uint64_t v = (uint64_t)sqlite3_column_int64(s, 1);

		if (!k)
			;
		else if (!strcmp(k, "count"))
			db->meta.count = v;
		else if (!strcmp(k, "bytes"))
			db->meta.bytes = v;
		else if (!strcmp(k, "dropped"))
			db->meta.dropped = v;
		else if (!strcmp(k, "last_id"))
			db->meta.last_id = v;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void st__db_close(struct st__db *db)
{
	int i;

	if (!db)
		return;
	for (i = 0; i < __S_MAX; i++)
		sqlite3_finalize(db->stmt[i]);
	sqlite3_finalize(db->peek);
	sqlite3_close_v2(db->pin);
	sqlite3_close_v2(db->ckpt);
	sqlite3_close_v2(db->rd);
	/* The last connection to close checkpoints and removes the WAL. */
	sqlite3_close_v2(db->wr);
	if (db->lock_fd >= 0)
		close(db->lock_fd);
	gw_free(db->path);
	gw_free(db);
}

int st__db_open(const char *path, bool sync_full, const struct gw_logger *lg, struct st__db **out,
		struct st__meta *meta)
{
	struct st__db *db = NULL;
	char why[256];
	int rc, err, i;

	*out = NULL;
	/* Connections move between the loop thread and pool threads. */
	if (!sqlite3_threadsafe()) {
		gw_log(lg, LOG_ERR, LOGM,
		       "SQLite was built without thread support (SQLITE_THREADSAFE=0)");
		return -ENOTSUP;
	}
	db = gw_calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->lg = lg;
	db->lock_fd = -1;
	db->path = gw_strdup(path);
	if (!db->path) {
		err = -ENOMEM;
		goto fail;
	}
	/*
	 * One process per database: two daemons on one file would hand out the
	 * same queue ids. SQLite's own locks allow many, so a lock file says no.
	 */
	snprintf(db->marker, sizeof(db->marker), "%s.lock", path);
	db->lock_fd = open(db->marker, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (db->lock_fd < 0) {
		gw_log(lg, LOG_ERR, LOGM, "cannot open database %s: %s: %s", path, db->marker,
		       strerror(errno));
		err = -EIO;
		goto fail;
	}
	if (flock(db->lock_fd, LOCK_EX | LOCK_NB)) {
		gw_log(lg, LOG_ERR, LOGM, "database %s is in use by another process", path);
		err = -EBUSY;
		goto fail;
	}
	snprintf(db->marker, sizeof(db->marker), "%s.check-failed", path);
	if (access(db->marker, F_OK) == 0) {
		/* The last run's full integrity check failed. */
		err = access(path, F_OK)
			      ? 0
			      : move_aside(path, lg,
					   "it failed the integrity check of a previous run");
		if (err) {
			err = -EIO;
			goto fail;
		}
		unlink(db->marker);
	}
	rc = db_open_checked(path, sync_full, &db->wr, why, sizeof(why));
	if (rc != SQLITE_OK) {
		err = rc_errno(rc);
		/*
		 * Only a file that is damaged or unreadable is moved aside; a busy
		 * file (another process), a read-only directory or a full disk is
		 * not the file's fault and is left alone.
		 */
		if (!unusable(rc) || access(path, F_OK)) {
			gw_log(lg, LOG_ERR, LOGM, "cannot open database %s: %s", path, why);
			err = err == -EBUSY || err == -ENOMEM ? err : -EIO;
			goto fail;
		}
		err = move_aside(path, lg, why);
		if (err) {
			err = -EIO;
			goto fail;
		}
		rc = db_open_checked(path, sync_full, &db->wr, why, sizeof(why));
		if (rc != SQLITE_OK) {
			gw_log(lg, LOG_ERR, LOGM, "cannot create database %s: %s", path, why);
			err = rc_errno(rc) == -ENOMEM ? -ENOMEM : -EIO;
			goto fail;
		}
	}
	err = migrate(db->wr, lg, path);
	if (err)
		goto fail;
	rc = read_meta(db);
	for (i = 0; rc == SQLITE_OK && i < __S_MAX; i++)
		rc = sqlite3_prepare_v3(db->wr, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&db->stmt[i], NULL);
	if (rc == SQLITE_OK)
		rc = db_connect(path, &db->rd);
	if (rc == SQLITE_OK)
		rc = conn_tune(db->rd, CACHE_KIB_READER, false);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db->rd, "PRAGMA query_only=1", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(db->rd, PEEK_SQL, -1, SQLITE_PREPARE_PERSISTENT, &db->peek,
					NULL);
	/*
	 * Checkpoints leave the commits: a commit that also checkpointed (SQLite
	 * does so past 1000 WAL pages) would copy the WAL into the database and
	 * fsync both while acknowledgements wait on it. The store runs them on
	 * the pool with their own connection instead (st__db_checkpoint), which
	 * in WAL mode does not stop the writer.
	 */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db->wr, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_wal_hook(db->wr, wal_hook, db);
		rc = db_connect(path, &db->ckpt);
	}
	if (rc == SQLITE_OK)
		rc = conn_tune(db->ckpt, CACHE_KIB_OTHER, false);
	/* A connection learns the file is in WAL mode when it first reads it. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db->ckpt, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = db_connect(path, &db->pin);
	if (rc == SQLITE_OK)
		rc = conn_tune(db->pin, CACHE_KIB_PIN, false);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db->pin, "PRAGMA query_only=1", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		gw_log(lg, LOG_ERR, LOGM, "database %s: %s", path,
		       db->rd ? sqlite3_errmsg(db->rd) : sqlite3_errmsg(db->wr));
		err = rc_errno(rc) ? rc_errno(rc) : -EIO;
		goto fail;
	}
	*meta = db->meta;
	*out = db;
	return 0;
fail:
	st__db_close(db);
	return err;
}

static int meta_write(struct st__db *db, const char *key, uint64_t v)
{
	sqlite3_stmt *s = db->stmt[S_META_SET];

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)v);
	return step_done(s);
}

/* drop_oldest inside the transaction: delete from the head until within the limits. */
static int drop_oldest(struct st__db *db, struct st__commit *c, struct st__meta *m)
{
	sqlite3_stmt *q = db->stmt[S_Q_OLDEST], *d = db->stmt[S_Q_DROP];
	uint64_t n, b, last;
	int rc = SQLITE_OK;

	while (m->count > c->max_messages || m->bytes > c->max_bytes) {
		n = b = last = 0;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			last = (uint64_t)sqlite3_column_int64(q, 0);
			b += (uint64_t)sqlite3_column_int64(q, 1);
			n++;
			if (m->count - n <= c->max_messages &&
			    m->bytes - GW_MIN(b, m->bytes) <= c->max_bytes)
				break;
		}
		sqlite3_reset(q);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return rc;
		if (!n) {
			/* The counters disagree with an empty table: believe the table. */
			m->count = m->bytes = 0;
			return SQLITE_OK;
		}
		sqlite3_bind_int64(d, 1, (sqlite3_int64)last);
		rc = step_done(d);
		if (rc != SQLITE_OK)
			return rc;
		m->count -= GW_MIN(n, m->count);
		m->bytes -= GW_MIN(b, m->bytes);
		c->dropped_tx += n;
		c->drop_upto = last;
	}
	return SQLITE_OK;
}

static int write_op(struct st__db *db, struct st__commit *c, struct st__op *op, struct st__meta *m)
{
	struct st_record r = st__op_rec(op);
	sqlite3_stmt *s;
	int rc;

	switch (op->kind) {
	case ST__OP_Q_INSERT:
		if (op->skip)
			return SQLITE_OK;
		s = db->stmt[S_Q_INSERT];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
		bind_slice(s, 2, r.topic);
		bind_slice(s, 3, r.payload);
		bind_slice(s, 4, r.props);
		sqlite3_bind_int(s, 5, r.qos);
		sqlite3_bind_int(s, 6, r.retain);
		sqlite3_bind_int64(s, 7, (sqlite3_int64)st__op_size(op));
		rc = step_done(s);
		if (rc == SQLITE_OK) {
			m->count++;
			m->bytes += st__op_size(op);
		}
		break;
	case ST__OP_Q_ACK: {
		uint64_t last = op->id + GW_MAX(op->n_ids, 1u) - 1, n = 0, sz = 0;

		s = db->stmt[S_Q_ACK_SIZE];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)last);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			n = (uint64_t)sqlite3_column_int64(s, 0);
			sz = (uint64_t)sqlite3_column_int64(s, 1);
			rc = step_done(s);
		} else {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
		}
		if (rc != SQLITE_OK || !n)
			break; /* an error, or none left: an unknown id is ignored */
		s = db->stmt[S_Q_ACK];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)last);
		rc = step_done(s);
		if (rc == SQLITE_OK) {
			m->count -= GW_MIN(n, m->count);
			m->bytes -= GW_MIN(sz, m->bytes);
		}
		break;
	}
	case ST__OP_RET_PUT:
		s = db->stmt[S_RET_PUT];
		bind_slice(s, 1, r.topic);
		bind_slice(s, 2, r.payload);
		bind_slice(s, 3, r.props);
		sqlite3_bind_int(s, 4, r.qos);
		sqlite3_bind_int(s, 5, r.retain);
		rc = step_done(s);
		break;
	case ST__OP_RET_DEL:
		s = db->stmt[S_RET_DEL];
		bind_slice(s, 1, r.topic);
		rc = step_done(s);
		break;
	case ST__OP_SESS_PUT:
		s = db->stmt[S_SESS_PUT];
		sqlite3_bind_text(s, 1, st__op_key(op), -1, SQLITE_STATIC);
		bind_slice(s, 2, r.payload);
		rc = step_done(s);
		break;
	case ST__OP_SESS_DEL:
		s = db->stmt[S_SESS_DEL];
		sqlite3_bind_text(s, 1, st__op_key(op), -1, SQLITE_STATIC);
		rc = step_done(s);
		if (rc == SQLITE_OK) {
			s = db->stmt[S_SESS_DEL_MSGS];
			sqlite3_bind_text(s, 1, st__op_key(op), -1, SQLITE_STATIC);
			rc = step_done(s);
		}
		break;
	case ST__OP_SMSG_ADD:
		s = db->stmt[S_SMSG_ADD];
		sqlite3_bind_text(s, 1, st__op_key(op), -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)op->id);
		bind_slice(s, 3, r.topic);
		bind_slice(s, 4, r.payload);
		bind_slice(s, 5, r.props);
		sqlite3_bind_int(s, 6, r.qos);
		sqlite3_bind_int(s, 7, r.retain);
		rc = step_done(s);
		break;
	case ST__OP_SMSG_DEL:
		s = db->stmt[S_SMSG_DEL];
		sqlite3_bind_text(s, 1, st__op_key(op), -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)op->id);
		rc = step_done(s);
		break;
	default:
		return SQLITE_OK;
	}
	if (rc == SQLITE_OK)
		c->written += op->kind == ST__OP_Q_ACK ? GW_MAX(op->n_ids, 1u) : 1;
	return rc;
}

void st__db_memory(uint64_t *heap, uint64_t *page_cache)
{
	sqlite3_int64 cur = 0, hi = 0;

	/* Thread-safe: SQLite's status counters are kept under its own mutex. */
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 0);
	*heap = cur > 0 ? (uint64_t)cur : 0;
	cur = 0;
	sqlite3_status64(SQLITE_STATUS_PAGECACHE_OVERFLOW, &cur, &hi, 0);
	*page_cache = cur > 0 ? (uint64_t)cur : 0;
}

int st__db_wal_frames(const struct st__db *db)
{
	return db->wal_frames;
}

int st__db_checkpoint(struct st__db *db, int *backfilled, atomic_int *pinned)
{
	int log = 0, done = 0, rc;
	bool pin = false;

	/*
	 * The pin: a read transaction begun before the checkpoint and held
	 * through it. Its snapshot (the WAL's frames as it began) bounds what
	 * the checkpoint copies, and while it holds a reader slot SQLite cannot
	 * start the WAL over (walRestartLog needs every reader slot). So once
	 * a commit begun after the pin has added frames, no commit can start
	 * the WAL over until the next checkpoint (store.c, ckpt_clear). A pin
	 * that fails just leaves *pinned at 0: the commits stay on the pool.
	 */
	if (pinned && sqlite3_exec(db->pin, "BEGIN; SELECT count(*) FROM meta", NULL, NULL, NULL) ==
			      SQLITE_OK) {
		pin = true;
		atomic_store(pinned, 1);
	}
	rc = sqlite3_wal_checkpoint_v2(db->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	if (pin || !sqlite3_get_autocommit(db->pin))
		sqlite3_exec(db->pin, "COMMIT", NULL, NULL, NULL);
	*backfilled = rc == SQLITE_OK && done > 0 ? done : 0;
	return rc == SQLITE_OK ? 0 : rc_errno(rc) ? rc_errno(rc) : -EIO;
}

void st__db_commit(struct st__db *db, struct st__commit *c)
{
	struct st__meta m = db->meta;
	struct gw_list *pos;
	int rc;

	c->rc = 0;
	c->err[0] = '\0';
	c->dropped_tx = c->drop_upto = c->written = 0;
	rc = step_done(db->stmt[S_BEGIN]);
	gw_list_for_each (pos, &c->ops) {
		if (rc != SQLITE_OK)
			break;
		rc = write_op(db, c, gw_list_entry(pos, struct st__op, node), &m);
	}
	if (rc == SQLITE_OK && (c->max_messages || c->max_bytes))
		rc = drop_oldest(db, c, &m);
	m.dropped += c->dropped_add + c->dropped_tx;
	m.last_id = GW_MAX(m.last_id, c->last_id);
	if (rc == SQLITE_OK)
		rc = meta_write(db, "count", m.count);
	if (rc == SQLITE_OK)
		rc = meta_write(db, "bytes", m.bytes);
	if (rc == SQLITE_OK)
		rc = meta_write(db, "dropped", m.dropped);
	if (rc == SQLITE_OK)
		rc = meta_write(db, "last_id", m.last_id);
	if (rc == SQLITE_OK)
		rc = step_done(db->stmt[S_COMMIT]);
	if (rc != SQLITE_OK) {
		snprintf(c->err, sizeof(c->err), "%s", sqlite3_errmsg(db->wr));
		c->rc = rc_errno(rc) ? rc_errno(rc) : -EIO;
		/* SQLite may have rolled back already (SQLITE_FULL, I/O errors). */
		if (!sqlite3_get_autocommit(db->wr))
			sqlite3_exec(db->wr, "ROLLBACK", NULL, NULL, NULL);
		c->dropped_tx = c->drop_upto = c->written = 0;
		c->meta = db->meta;
		return;
	}
	db->meta = m;
	c->meta = m;
}

int st__db_peek(struct st__db *db, uint64_t after, size_t max_n, struct st_qrecord **out, size_t *n)
{
	sqlite3_stmt *s = db->peek;
	struct st_qrecord *recs = NULL;
	uint8_t *buf = NULL, *nb, *p;
	size_t len = 0, cap = 0, i = 0, need, k;
	struct gw_slice sl[3];
	int rc, err = 0;

	*out = NULL;
	*n = 0;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)GW_MIN(max_n, (size_t)INT64_MAX));
	/*
	 * Rows are packed into one growing buffer as (struct st_qrecord with
	 * offsets in place of pointers, then the bytes); pointers are fixed up
	 * once it stops moving.
	 */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct st_qrecord q;

		sl[0] = col_slice(s, 1);
		sl[1] = col_slice(s, 2);
		sl[2] = col_slice(s, 3);
		need = sizeof(q) + sl[0].len + sl[1].len + sl[2].len;
		need = (need + 15) & ~(size_t)15;
		if (len + need > cap) {
			cap = GW_MAX(cap * 2, len + need + 4096);
			nb = gw_realloc(buf, cap);
			if (!nb) {
				err = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		memset(&q, 0, sizeof(q));
		q.id = (uint64_t)sqlite3_column_int64(s, 0);
		q.rec.qos = (uint8_t)sqlite3_column_int(s, 4);
		q.rec.retain = sqlite3_column_int(s, 5) != 0;
		p = buf + len + sizeof(q);
		for (k = 0; k < 3; k++) {
			if (sl[k].len)
				memcpy(p, sl[k].p, sl[k].len);
			p += sl[k].len;
		}
		q.rec.topic.len = sl[0].len;
		q.rec.payload.len = sl[1].len;
		q.rec.props.len = sl[2].len;
		memcpy(buf + len, &q, sizeof(q));
		len += need;
		i++;
	}
	if (rc != SQLITE_DONE) {
		err = rc_errno(rc) ? rc_errno(rc) : -EIO;
		gw_log(db->lg, LOG_ERR, LOGM, "reading the queue: %s", sqlite3_errmsg(db->rd));
		goto out;
	}
	if (!i)
		goto out;
	/* The array goes at the front of one block, the packed rows after it. */
	nb = gw_malloc(i * sizeof(*recs) + len);
	if (!nb) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(nb + i * sizeof(*recs), buf, len);
	recs = (struct st_qrecord *)nb;
	for (k = 0, p = nb + i * sizeof(*recs); k < i; k++) {
		struct st_qrecord *q = &recs[k];
		uint8_t *d = p + sizeof(*q);

		memcpy(q, p, sizeof(*q));
		q->rec.topic.p = d;
		q->rec.payload.p = d + q->rec.topic.len;
		q->rec.props.p = d + q->rec.topic.len + q->rec.payload.len;
		need = sizeof(*q) + q->rec.topic.len + q->rec.payload.len + q->rec.props.len;
		p += (need + 15) & ~(size_t)15;
	}
	*out = recs;
	*n = i;
	recs = NULL;
out:
	sqlite3_reset(s);
	gw_free(recs);
	gw_free(buf);
	return err;
}

int st__db_load_retained(struct st__db *db, st_retained_fn cb, void *arg)
{
	sqlite3_stmt *s = NULL;
	struct st_record r;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(
		db->wr, "SELECT topic, payload, props, qos, retain FROM retained ORDER BY topic",
		-1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		r.topic = col_slice(s, 0);
		r.payload = col_slice(s, 1);
		r.props = col_slice(s, 2);
		r.qos = (uint8_t)sqlite3_column_int(s, 3);
		r.retain = sqlite3_column_int(s, 4) != 0;
		ret = cb(arg, &r);
		if (ret)
			goto out;
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		gw_log(db->lg, LOG_ERR, LOGM, "loading retained messages: %s",
		       sqlite3_errmsg(db->wr));
		ret = -EIO;
	}
out:
	sqlite3_finalize(s);
	return ret;
}

int st__db_load_sessions(struct st__db *db, st_session_fn sess_cb, st_session_msg_fn msg_cb,
			 void *arg)
{
	sqlite3_stmt *s = NULL;
	struct st_record r;
	struct gw_slice b;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(db->wr, "SELECT client_id, blob FROM sessions ORDER BY client_id",
				-1, &s, NULL);
	while (sess_cb && rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		b = col_slice(s, 1);
		ret = sess_cb(arg, (const char *)sqlite3_column_text(s, 0), b.p, b.len);
		if (ret)
			goto out;
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE && (sess_cb || rc != SQLITE_OK))
		goto fail;
	sqlite3_finalize(s);
	s = NULL;
	rc = sqlite3_prepare_v2(db->wr,
				"SELECT m.client_id, m.seq, m.topic, m.payload, m.props, m.qos,"
				" m.retain FROM session_msgs m JOIN sessions s USING (client_id)"
				" ORDER BY m.client_id, m.seq",
				-1, &s, NULL);
	while (msg_cb && rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		r.topic = col_slice(s, 2);
		r.payload = col_slice(s, 3);
		r.props = col_slice(s, 4);
		r.qos = (uint8_t)sqlite3_column_int(s, 5);
		r.retain = sqlite3_column_int(s, 6) != 0;
		ret = msg_cb(arg, (const char *)sqlite3_column_text(s, 0),
			     (uint64_t)sqlite3_column_int64(s, 1), &r);
		if (ret)
			goto out;
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE || (!msg_cb && rc == SQLITE_OK))
		goto out;
fail:
	gw_log(db->lg, LOG_ERR, LOGM, "loading sessions: %s", sqlite3_errmsg(db->wr));
	ret = -EIO;
out:
	sqlite3_finalize(s);
	return ret;
}

int st__db_set_max_pages(struct st__db *db, uint64_t pages)
{
	char sql[64];

	/* max_page_count cannot go below the current size; 0 would mean "report". */
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%" PRIu64,
		 pages ? pages : (uint64_t)0xfffffffe);
	return sqlite3_exec(db->wr, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int st__db_set_readonly(struct st__db *db, bool ro)
{
	return sqlite3_exec(db->wr, ro ? "PRAGMA query_only=1" : "PRAGMA query_only=0", NULL, NULL,
			    NULL) == SQLITE_OK
		       ? 0
		       : -EIO;
}

/* The check's progress handler: non-zero stops the statement (SQLITE_INTERRUPT). */
static int check_progress(void *arg)
{
	return atomic_load(&((struct st__db *)arg)->check_stop);
}

/*
 * The connection is opened here, on the pool thread, and closed before
 * returning: the check walks every page of the file once, and a connection
 * kept open for it would hold its cache and lookaside for the whole run.
 * Interruption goes through a flag that the progress handler reads, so the
 * loop thread never touches a connection that may be opening or closing.
 */
int st__db_check_full(struct st__db *db, char *why, size_t why_len)
{
	sqlite3 *h = NULL;
	int rc;

	why[0] = '\0';
	if (atomic_load(&db->check_stop))
		return -ECANCELED;
	rc = db_connect(db->path, &h);
	if (rc == SQLITE_OK)
		rc = conn_tune(h, CACHE_KIB_OTHER, false);
	if (rc == SQLITE_OK) {
		sqlite3_progress_handler(h, 1000, check_progress, db);
		rc = sqlite3_exec(h, "PRAGMA query_only=1", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = pragma_text(h, "PRAGMA quick_check", why, why_len);
	if (rc != SQLITE_OK && rc != SQLITE_INTERRUPT)
		snprintf(why, why_len, "%s", h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
	sqlite3_close_v2(h);
	if (rc == SQLITE_INTERRUPT)
		return -ECANCELED;
	if (rc != SQLITE_OK)
		return unusable(rc) ? -EBADMSG : rc_errno(rc) ? rc_errno(rc) : -EIO;
	return strcmp(why, "ok") ? -EBADMSG : 0;
}

void st__db_check_interrupt(struct st__db *db)
{
	atomic_store(&db->check_stop, 1);
}

int st__db_mark_bad(struct st__db *db)
{
	FILE *fp = fopen(db->marker, "w");

	if (!fp)
		return -errno;
	fputs("the integrity check failed: moved aside at the next start\n", fp);
	return fclose(fp) ? -errno : 0;
}
