/*
 * store_bench.c - figures for the store: queue append rate with group commit
 * (100-byte payloads), time to open a store holding N queued messages, bytes
 * on disk per queued message, and the drain rate (peek + ack).
 *
 * Usage: store_bench [-n MESSAGES] [-d DIR]   (defaults: 1000000, /tmp)
 *        store_bench -o FILE                  time st_open of an existing database
 * Prints one "store_bench: name value unit" line per figure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "store/store.h"

struct bench {
	uv_loop_t loop;
	struct st_store *st;
	uint64_t done, failed;
	uint64_t drained, after;
	bool peek_done, closed;
	int peek_status;
	uint64_t peek_n;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_done(void *arg, uint64_t id, int status)
{
	struct bench *b = arg;

	(void)id;
	b->done++;
	if (status)
		b->failed++;
}

static void on_closed(void *arg)
{
	((struct bench *)arg)->closed = true;
}

static void close_store(struct bench *b)
{
	b->closed = false;
	st_close(b->st, on_closed, b);
	while (!b->closed)
		uv_run(&b->loop, UV_RUN_ONCE);
}

static void on_peek(void *arg, int status, const struct st_qrecord *recs, size_t n)
{
	struct bench *b = arg;
	size_t i;

	b->peek_done = true;
	b->peek_status = status;
	b->peek_n = n;
	for (i = 0; i < n; i++)
		st_queue_ack(b->st, recs[i].id);
	if (n)
		b->after = recs[n - 1].id;
}

static off_t file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) ? 0 : sb.st_size;
}

/* Empty the page cache (root only); false if not allowed. */
static bool drop_caches(void)
{
	FILE *fp = fopen("/proc/sys/vm/drop_caches", "w");
	bool ok;

	if (!fp)
		return false;
	ok = fputs("3\n", fp) >= 0;
	return fclose(fp) == 0 && ok;
}

static int open_only(const char *path)
{
	struct st_config cfg;
	struct st_store *st;
	struct st_stats s;
	struct bench b;
	double t0, t1;
	int err;

	memset(&b, 0, sizeof(b));
	uv_loop_init(&b.loop);
	st_config_defaults(&cfg);
	cfg.path = (char *)path;
	t0 = now_s();
	err = st_open(&b.loop, &cfg, NULL, &st);
	t1 = now_s();
	if (err) {
		fprintf(stderr, "st_open %s: %s\n", path, strerror(-err));
		return 1;
	}
	st_get_stats(st, &s);
	printf("store_bench: open_time %.1f ms (%llu queued messages)\n", (t1 - t0) * 1000.0,
	       (unsigned long long)s.queue_messages);
	b.st = st;
	close_store(&b);
	uv_loop_close(&b.loop);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = "/tmp";
	uint64_t n = 1000000, i;
	char path[512], wal[520], topic[64], payload[100];
	struct st_config cfg;
	struct st_stats s;
	struct st_record r;
	struct bench b;
	double t0, t1;
	bool cold, keep = false;
	off_t size;
	int opt, err, k;

	while ((opt = getopt(argc, argv, "n:d:o:k")) != -1) {
		if (opt == 'o')
			return open_only(optarg);
		if (opt == 'k')
			keep = true;
		else if (opt == 'n')
			n = strtoull(optarg, NULL, 10);
		else if (opt == 'd')
			dir = optarg;
		else {
			fprintf(stderr, "usage: %s [-n MESSAGES] [-d DIR] | -o EXISTING.db\n",
				argv[0]);
			return 2;
		}
	}
	snprintf(path, sizeof(path), "%s/store_bench.%d.db", dir, (int)getpid());
	snprintf(wal, sizeof(wal), "%s-wal", path);
	memset(&b, 0, sizeof(b));
	uv_loop_init(&b.loop);
	st_config_defaults(&cfg);
	cfg.path = path;
	cfg.queue_max_messages = n + 1;
	cfg.queue_max_bytes = 1ull << 40;

	err = st_open(&b.loop, &cfg, NULL, &b.st);
	if (err) {
		fprintf(stderr, "st_open %s: %s\n", path, strerror(-err));
		return 1;
	}
	memset(payload, 'v', sizeof(payload));
	memset(&r, 0, sizeof(r));
	r.payload = (struct gw_slice){ (const uint8_t *)payload, sizeof(payload) };
	r.qos = 1;

	/* Append: the loop turns between chunks, as it would between reads. */
	t0 = now_s();
	for (i = 0; i < n; i++) {
		int len = snprintf(topic, sizeof(topic), "fieldmq/site1/dev%03d/temperature",
				   (int)(i % 500));

		r.topic = (struct gw_slice){ (const uint8_t *)topic, (size_t)len };
		err = st_queue_append(b.st, &r, 0, on_done, &b, NULL);
		if (err) {
			fprintf(stderr, "append: %s\n", strerror(-err));
			return 1;
		}
		if (i % 1000 == 999) {
			uv_run(&b.loop, UV_RUN_NOWAIT);
			/* Keep memory bounded when the disk is slower than the producer. */
			st_get_stats(b.st, &s);
			while (s.pending_ops > 200000) {
				uv_run(&b.loop, UV_RUN_ONCE);
				st_get_stats(b.st, &s);
			}
		}
	}
	while (b.done < n)
		uv_run(&b.loop, UV_RUN_ONCE);
	t1 = now_s();
	st_get_stats(b.st, &s);
	printf("store_bench: append_rate %.0f msgs/s (%llu messages, 100-byte payloads, "
	       "%llu commits, %.0f messages per commit, %llu failed)\n",
	       (double)n / (t1 - t0), (unsigned long long)n, (unsigned long long)s.commits,
	       s.commits ? (double)n / (double)s.commits : 0.0, (unsigned long long)b.failed);
	printf("store_bench: commit_every %.1f ms (average while appending flat out)\n",
	       s.commits ? (t1 - t0) * 1000.0 / (double)s.commits : 0.0);
	close_store(&b);

	size = file_size(path) + file_size(wal);
	printf("store_bench: disk_bytes_per_message %.1f bytes (%lld bytes for %llu messages, "
	       "%zu bytes of topic+payload each on average)\n",
	       n ? (double)size / (double)n : 0.0, (long long)size, (unsigned long long)n,
	       (size_t)(strlen("fieldmq/site1/dev000/temperature") + sizeof(payload)));

	/*
	 * Open with a full queue: the counters come from the meta table, the
	 * integrity check reads every page. Cold (page cache dropped, when we
	 * may) and warm.
	 */
	sync();
	cold = drop_caches();
	for (k = 0; k < 2; k++) {
		t0 = now_s();
		err = st_open(&b.loop, &cfg, NULL, &b.st);
		t1 = now_s();
		if (err) {
			fprintf(stderr, "reopen: %s\n", strerror(-err));
			return 1;
		}
		st_get_stats(b.st, &s);
		printf("store_bench: open_time %.1f ms (%llu queued messages, page cache %s)\n",
		       (t1 - t0) * 1000.0, (unsigned long long)s.queue_messages,
		       k == 0 && cold ? "cold" : "warm");
		if (k == 0)
			close_store(&b);
	}

	if (keep) {
		close_store(&b);
		printf("store_bench: kept %s\n", path);
		return 0;
	}

	/* Drain: peek 1000, ack them, peek the next. */
	t0 = now_s();
	for (;;) {
		b.peek_done = false;
		st_queue_peek(b.st, b.after, 1000, on_peek, &b);
		while (!b.peek_done)
			uv_run(&b.loop, UV_RUN_ONCE);
		if (b.peek_status || !b.peek_n)
			break;
		b.drained += b.peek_n;
	}
	close_store(&b);
	t1 = now_s();
	printf("store_bench: drain_rate %.0f msgs/s (peek 1000 + ack, %llu messages)\n",
	       (double)b.drained / (t1 - t0), (unsigned long long)b.drained);

	unlink(path);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	unlink(wal);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
	return 0;
}
