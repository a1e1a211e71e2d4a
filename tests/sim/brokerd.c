/*
 * brokerd.c - the broker alone on a port, for integration tests before (and
 * besides) the daemon: build/sim/brokerd -p PORT [-6] [-a] [-s SYS_MS]
 * [-q MAX_QUEUED] [-k MAX_KEEPALIVE] [-m MAX_PACKET] [-i MAX_INFLIGHT]
 * [-t MAX_TOPIC_ALIAS] [-A ACLFILE] [-R] [-v].
 *   -6: listen on [::1] too; -a: allow_anonymous = no; -R: retain_available = no;
 *   -A: topic access control from ACLFILE ([broker] acl_file syntax; a bad
 *   line prints "ACLFILE:LINE: ..." and exits 2); -v: debug log.
 *   Stops cleanly on SIGTERM / SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "broker/broker.h"

struct brokerd {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint;
	struct brk *b;
};

/* Read and parse @path into cfg->acl. 0, or prints why and returns 2. */
static int acl_load(const char *path, struct brk_config *cfg)
{
	char *text = NULL, err[256];
	size_t len = 0, cap = 0;
	unsigned int line;
	FILE *f;
	int rc = 2;

	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
		return 2;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			char *t = realloc(text, cap = cap ? cap * 2 : 4096);

			if (!t)
				goto out;
			text = t;
		}
		n = fread(text + len, 1, cap - len, f);
		if (!n)
			break;
		len += n;
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: read error\n", path);
		goto out;
	}
	brk_acl_free(cfg->acl); /* a second -A replaces the first */
	cfg->acl = NULL;
	if (brk_acl_parse(text, len, &cfg->acl, &line, err, sizeof(err))) {
		fprintf(stderr, "%s:%u: %s\n", path, line, err);
		goto out;
	}
	rc = 0;
out:
	free(text);
	fclose(f);
	return rc;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct brokerd *d = h->data;

	(void)signum;
	brk_stop(d->b);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
}

int main(int argc, char **argv)
{
	struct brokerd d;
	struct brk_config cfg;
	struct gw_logger lg;
	char l4[64], l6[64];
	int opt, rc, port = 1883;
	bool v6 = false;

	brk_config_defaults(&cfg);
	gw_logger_init(&lg, LOG_WARNING, GW_LOG_STDERR);
	while ((opt = getopt(argc, argv, "p:6as:q:k:m:i:r:H:t:A:Rv")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case '6':
			v6 = true;
			break;
		case 'a':
			cfg.allow_anonymous = false;
			break;
		case 's':
			cfg.sys_interval_ms = strtoull(optarg, NULL, 10);
			break;
		case 'q':
			cfg.max_queued_messages = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			cfg.max_keepalive = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			cfg.max_packet_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			cfg.max_inflight = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			cfg.receive_maximum = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		case 'H':
			cfg.max_held_acks = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 't':
			cfg.max_topic_alias = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		case 'A':
			if (acl_load(optarg, &cfg))
				return 2;
			break;
		case 'R':
			cfg.retain_available = false;
			break;
		case 'v':
			lg.level = LOG_DEBUG;
			break;
		default:
			fprintf(stderr,
				"usage: %s -p PORT [-6] [-a] [-A ACLFILE] [-s SYS_MS] ...\n",
				argv[0]);
			return 2;
		}
	}
	snprintf(l4, sizeof(l4), "127.0.0.1:%d", port);
	snprintf(l6, sizeof(l6), "[::1]:%d", port);
	cfg.listen[0].url = l4;
	cfg.n_listen = 1;
	if (v6) {
		cfg.listen[1].url = l6;
		cfg.n_listen = 2;
	}
	signal(SIGPIPE, SIG_IGN); /* as gateway/main.c: EPIPE closes that connection only */
	uv_loop_init(&d.loop);
	rc = brk_new(&d.loop, &cfg, &lg, &d.b);
	if (rc) {
		fprintf(stderr, "brk_new: %s\n", strerror(-rc));
		brk_acl_free(cfg.acl);
		return 2;
	}
	rc = brk_start(d.b);
	if (rc) {
		fprintf(stderr, "brk_start: %s\n", uv_strerror(rc));
		brk_stop(d.b);
		uv_run(&d.loop, UV_RUN_DEFAULT);
		brk_free(d.b);
		brk_acl_free(cfg.acl);
		return 1;
	}
	uv_signal_init(&d.loop, &d.sigterm);
	uv_signal_init(&d.loop, &d.sigint);
	d.sigterm.data = d.sigint.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	printf("brokerd: listening on %s%s%s\n", l4, v6 ? " " : "", v6 ? l6 : "");
	fflush(stdout);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	brk_free(d.b);
	brk_acl_free(cfg.acl);
	uv_loop_close(&d.loop);
	return 0;
}
