/*
 * main.c - fieldmq's entry point: command line, configuration, logging, and
 * the one libuv loop that runs everything.
 *
 * Exit status: 0 clean stop, 1 runtime failure (e.g. a port in use),
 * 2 configuration error (DESIGN.md section 6).
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "adapters/coap/coap_adapter.h"
#include "gateway/base/arena.h"
#include "gateway/base/base.h"
#include "gateway/config.h"
#include "gateway/tls/tls.h"
#include "gateway/gateway.h"

#define DEFAULT_CONFIG "/etc/fieldmq/fieldmq.ini"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fieldmq [-c FILE] [-v] [--check-config] [--discover URL] [--version] [-h]\n"
		"  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
		"  -v, --verbose       log at debug level, whatever log_level says\n"
		"      --check-config  validate the configuration and device maps, then exit\n"
		"                      (0 valid, 2 invalid); with -v, print the effective\n"
		"                      configuration (every key, defaults filled in)\n"
		"      --discover URL  print a device-map skeleton of the CoAP device at URL\n"
		"                      (coap://HOST[:PORT], its /.well-known/core), then exit\n"
		"      --version       print the version and exit\n"
		"  -h, --help          this text\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "discover", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_CONFIG;
	bool verbose = false, check = false;
	struct gw_config cfg;
	struct gw_logger log;
	struct gw *g = NULL;
	uv_loop_t loop;
	char *err = NULL;
	int c, rc, status = 0;

#ifdef __GLIBC__
	/*
	 * Process-wide: one malloc arena. glibc gives each thread that
	 * allocates an arena of its own (up to 8 per core); here that is the
	 * libuv pool threads running SQLite commits, checkpoints and password
	 * checks, whose arenas kept 0.3-0.5 MB resident beside the main one
	 * for what the loop thread could hold. Small allocations go through
	 * each thread's tcache without the arena lock, and the pool threads
	 * allocate little, so they rarely wait for it. MALLOC_ARENA_MAX in the
	 * environment still decides when set (musl has no arenas).
	 */
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 1);
#endif
	/*
	 * Process-wide, before any thread exists: cJSON allocates from the
	 * arena entered on the calling thread (the serial and CoAP adapters'
	 * JSON parsers, so a line or notification costs no allocator call),
	 * and from the heap everywhere else (gateway/base/arena.h).
	 */
	cJSON_InitHooks(
		&(cJSON_Hooks){ .malloc_fn = gw_arena_hook_malloc, .free_fn = gw_arena_hook_free });
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'C':
			check = true;
			break;
		case 'V':
			printf("fieldmq %s (%s)\n", FIELDMQ_VERSION, gw_tls_library());
			return 0;
		case 'D':
			return ad_coap_discover(optarg, 5000, stdout, stderr);
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fieldmq: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	err = malloc(16384);
	if (!err)
		return 1;
	rc = gw_config_load(path, &cfg, err, 16384);
	if (rc) {
		fprintf(stderr, "%s", err);
		if (rc == -EINVAL)
			fprintf(stderr, "fieldmq: %s: configuration is invalid\n", path);
		else if (!*err)
			fprintf(stderr, "fieldmq: %s: %s\n", path, strerror(-rc));
		gw_config_free(&cfg);
		free(err);
		return 2;
	}
	free(err);
	if (check) {
		if (verbose)
			gw_config_print(&cfg, stdout);
		printf("%s%s: configuration OK (%u devices, %u points)\n", verbose ? "\n; " : "",
		       path, cfg.devmap->map.n_devices, cfg.devmap->map.n_points);
		gw_config_free(&cfg);
		return 0;
	}

	gw_logger_init(&log, verbose ? LOG_DEBUG : cfg.gateway.log_level, cfg.gateway.log_target);
	if (log.target == GW_LOG_SYSLOG)
		openlog("fieldmq", LOG_PID, LOG_DAEMON);

	/*
	 * A client that resets its connection while we still write to it must
	 * cost that connection only: libuv's stream writes use write(2), which
	 * raises SIGPIPE; with it ignored they return EPIPE and the connection is
	 * closed like any failed one.
	 */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&loop)) {
		gw_config_free(&cfg);
		return 1;
	}
	rc = gw_gateway_new(&loop, &cfg, &log, &g);
	if (rc) {
		gw_log(&log, LOG_ERR, "main", "cannot create the gateway: %s", strerror(-rc));
		gw_config_free(&cfg);
		uv_loop_close(&loop);
		return 1;
	}
	rc = gw_gateway_start(g);
	if (rc)
		gw_gateway_stop(g);
#ifdef __GLIBC__
	/*
	 * Loading a large device map leaves its parse temporaries freed between
	 * long-lived objects; glibc keeps such pages resident until asked (musl,
	 * OpenWrt's libc, returns them by itself). 1000 devices: about 1 MB.
	 */
	malloc_trim(0);
#endif
	uv_run(&loop, UV_RUN_DEFAULT);
	status = rc ? 1 : gw_gateway_exit_code(g);
	gw_gateway_free(g);
	if (uv_loop_close(&loop))
		gw_log(&log, LOG_WARNING, "main", "loop closed with handles still open");
	if (log.target == GW_LOG_SYSLOG)
		closelog();
	return status;
}
