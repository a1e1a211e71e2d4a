/*
 * coap_sim.c - a CoAP device for tests and the demo, on libcoap's own server
 * loop (a separate process, so libcoap's blocking coap_io_process is fine).
 *
 *   coap_sim [--listen 127.0.0.1:5683] [--period 1000] [--max-age S]
 *            [--slow 3000] [--bench N] [--non]
 *
 * Resources (values change every --period ms; observers are notified):
 *   /num     text/plain number, observable
 *   /json    application/json {"temperature":..,"humidity":..,"ok":true}, observable
 *   /senml   application/senml+json pack (bn "sim/", n temp, hum, door), not observable
 *   /plain   text/plain counter, not observable
 *   /fail    always 5.00
 *   /slow    answers after --slow ms (a separate response)
 *   /cf      Content-Format alternates: text/plain "N", then JSON {"v":N}
 *   /big     ~3 KB of JSON ({"value":N,"pad":"..."}): block-wise (Block2)
 *   /garbage observable; every third state is not JSON
 *   /setpoint, /jsetpoint  observable, writable: PUT / POST store the payload (and its
 *            Content-Format), GET returns it (2.04 on a write; logged on stderr)
 *   /r/0 .. /r/N-1  (--bench N) observable text counters, each changed once per period,
 *            spread evenly over it (N notifications per period, not one burst);
 *            --non: their notifications are always NON (libcoap's default makes
 *            every fifth one CON and holds an observer's next CON while one to
 *            the same client is unacknowledged, which paces one client)
 * --max-age S adds Max-Age: S to every answer of an observable resource.
 * A restart (kill, start again) forgets every observer: that is the test.
 * Prints "ready PORT" on stdout once bound. SIGTERM / SIGINT: clean exit.
 */
#include <coap3/coap.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t quit;
static unsigned long tick_n; /* changes so far */
static int max_age = -1;     /* seconds, -1: none */
static unsigned int slow_ms = 3000;
static unsigned long cf_n;
static int bench_flags;		  /* --non: COAP_RESOURCE_FLAGS_NOTIFY_NON_ALWAYS for /r/N */
static unsigned long *bench_vals; /* /r/N's counters */

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void set_cf(coap_pdu_t *resp, unsigned int cf)
{
	uint8_t b[4];

	coap_add_option(resp, COAP_OPTION_CONTENT_FORMAT, coap_encode_var_safe(b, sizeof(b), cf),
			b);
}

static void set_max_age(coap_resource_t *r, coap_pdu_t *resp)
{
	uint8_t b[4];

	(void)r;
	if (max_age >= 0)
		coap_add_option(resp, COAP_OPTION_MAXAGE,
				coap_encode_var_safe(b, sizeof(b), (unsigned int)max_age), b);
}

static void reply(coap_resource_t *r, coap_pdu_t *resp, unsigned int cf, const char *body,
		  bool observable)
{
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	set_cf(resp, cf);
	if (observable)
		set_max_age(r, resp);
	coap_add_data(resp, strlen(body), (const uint8_t *)body);
}

static double temp(void)
{
	return 20.0 + (double)(tick_n % 20) * 0.5;
}

static void h_num(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		  const coap_string_t *q, coap_pdu_t *resp)
{
	char b[32];

	(void)s, (void)req, (void)q;
	snprintf(b, sizeof(b), "%.1f", temp());
	reply(r, resp, COAP_MEDIATYPE_TEXT_PLAIN, b, true);
}

static void h_json(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		   const coap_string_t *q, coap_pdu_t *resp)
{
	char b[128];

	(void)s, (void)req, (void)q;
	snprintf(b, sizeof(b), "{\"temperature\":%.1f,\"humidity\":%lu,\"ok\":true}", temp(),
		 40 + tick_n % 10);
	reply(r, resp, COAP_MEDIATYPE_APPLICATION_JSON, b, true);
}

static void h_senml(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		    const coap_string_t *q, coap_pdu_t *resp)
{
	char b[256];

	(void)s, (void)req, (void)q;
	snprintf(b, sizeof(b),
		 "[{\"bn\":\"sim/\",\"bt\":%ld,\"n\":\"temp\",\"u\":\"Cel\",\"v\":%.1f},"
		 "{\"n\":\"hum\",\"u\":\"%%RH\",\"v\":%lu},{\"n\":\"door\",\"vb\":%s}]",
		 (long)time(NULL), temp(), 40 + tick_n % 10, tick_n % 2 ? "true" : "false");
	reply(r, resp, COAP_MEDIATYPE_APPLICATION_SENML_JSON, b, false);
}

static void h_plain(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		    const coap_string_t *q, coap_pdu_t *resp)
{
	char b[32];

	(void)s, (void)req, (void)q;
	snprintf(b, sizeof(b), "%lu", tick_n);
	reply(r, resp, COAP_MEDIATYPE_TEXT_PLAIN, b, false);
}

static void h_fail(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		   const coap_string_t *q, coap_pdu_t *resp)
{
	(void)r, (void)s, (void)req, (void)q;
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR);
}

static void h_slow(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		   const coap_string_t *q, coap_pdu_t *resp)
{
	coap_async_t *a = coap_find_async(s, coap_pdu_get_token(req));
	char b[32];

	(void)q;
	if (!a) {
		if (!coap_register_async(s, req,
					 (coap_tick_t)slow_ms * COAP_TICKS_PER_SECOND / 1000))
			coap_pdu_set_code(resp, COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE);
		return; /* no code: an empty ACK now, the answer later */
	}
	snprintf(b, sizeof(b), "%lu", tick_n);
	reply(r, resp, COAP_MEDIATYPE_TEXT_PLAIN, b, false);
}

static void h_cf(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		 const coap_string_t *q, coap_pdu_t *resp)
{
	char b[64];

	(void)s, (void)req, (void)q;
	if (cf_n++ % 2 == 0) {
		snprintf(b, sizeof(b), "%lu", tick_n);
		reply(r, resp, COAP_MEDIATYPE_TEXT_PLAIN, b, false);
	} else {
		snprintf(b, sizeof(b), "{\"v\":%lu}", tick_n);
		reply(r, resp, COAP_MEDIATYPE_APPLICATION_JSON, b, false);
	}
}

static void h_big(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		  const coap_string_t *q, coap_pdu_t *resp)
{
	static char b[4096];
	int n;

	(void)q;
	n = snprintf(b, sizeof(b), "{\"value\":%lu,\"pad\":\"", tick_n);
	memset(b + n, 'x', 3000);
	n += 3000;
	n += snprintf(b + n, sizeof(b) - (size_t)n, "\"}");
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	coap_add_data_large_response(r, s, req, resp, q, COAP_MEDIATYPE_APPLICATION_JSON, -1, 0,
				     (size_t)n, (const uint8_t *)b, NULL, NULL);
}

static void h_garbage(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		      const coap_string_t *q, coap_pdu_t *resp)
{
	char b[64];

	(void)s, (void)req, (void)q;
	if (tick_n % 3 == 2)
		snprintf(b, sizeof(b), "{\"v\":%lu", tick_n); /* truncated */
	else
		snprintf(b, sizeof(b), "{\"v\":%lu}", tick_n);
	reply(r, resp, COAP_MEDIATYPE_APPLICATION_JSON, b, true);
}

static void h_bench(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		    const coap_string_t *q, coap_pdu_t *resp)
{
	coap_str_const_t *path = coap_resource_get_uri_path(r);
	char b[32], p[32];
	size_t n = path && path->length < sizeof(p) ? path->length : 0;

	(void)s, (void)req, (void)q;
	memcpy(p, path ? path->s : (const uint8_t *)"", n);
	p[n] = '\0';
	snprintf(b, sizeof(b), "%lu", bench_vals[strtoul(p + 2, NULL, 10)]);
	reply(r, resp, COAP_MEDIATYPE_TEXT_PLAIN, b, true);
}

/* Writable resources: what the last PUT / POST stored, read back by GET (observable). */
struct store {
	char body[256];
	size_t n;
	unsigned int cf;
};
static struct store setpoint = { "20", 2, COAP_MEDIATYPE_TEXT_PLAIN };
static struct store jsetpoint = { "{\"target\":{\"value\":0}}", 22,
				  COAP_MEDIATYPE_APPLICATION_JSON };

static struct store *store_of(coap_resource_t *r)
{
	coap_str_const_t *p = coap_resource_get_uri_path(r);

	return p && p->length == 9 && !memcmp(p->s, "jsetpoint", 9) ? &jsetpoint : &setpoint;
}

static void h_store_get(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
			const coap_string_t *q, coap_pdu_t *resp)
{
	struct store *st = store_of(r);

	(void)s, (void)req, (void)q;
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	set_cf(resp, st->cf);
	coap_add_data(resp, st->n, (const uint8_t *)st->body);
}

static void h_store_put(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
			const coap_string_t *q, coap_pdu_t *resp)
{
	struct store *st = store_of(r);
	coap_opt_iterator_t it;
	coap_opt_t *o = coap_check_option(req, COAP_OPTION_CONTENT_FORMAT, &it);
	const uint8_t *data;
	size_t n;

	(void)s, (void)q;
	if (!coap_get_data(req, &n, &data) || n == 0 || n >= sizeof(st->body)) {
		coap_pdu_set_code(resp, COAP_RESPONSE_CODE_BAD_REQUEST);
		return;
	}
	memcpy(st->body, data, n);
	st->body[n] = '\0';
	st->n = n;
	st->cf = o ? coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o))
		   : COAP_MEDIATYPE_TEXT_PLAIN;
	fprintf(stderr, "coap_sim: %.*s <- %s\n", (int)coap_resource_get_uri_path(r)->length,
		(const char *)coap_resource_get_uri_path(r)->s, st->body);
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
	coap_resource_notify_observers(r, NULL);
}

static coap_resource_t *add(coap_context_t *ctx, const char *path, coap_method_handler_t h,
			    bool observable, int flags)
{
	coap_resource_t *r = coap_resource_init(coap_make_str_const(path), flags);

	if (!r)
		exit(1);
	coap_register_handler(r, COAP_REQUEST_GET, h);
	if (observable)
		coap_resource_set_get_observable(r, 1);
	coap_add_resource(ctx, r);
	return r;
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:5683";
	unsigned int period = 1000, bench = 0, i, n_obs = 0;
	coap_resource_t **obs;
	coap_context_t *ctx;
	coap_address_t addr;
	char host[64], *colon;
	struct timespec last, now, start;
	unsigned long long done_n = 0;

	for (i = 1; i < (unsigned int)argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < (unsigned int)argc)
			listen = argv[++i];
		else if (!strcmp(argv[i], "--period") && i + 1 < (unsigned int)argc)
			period = (unsigned int)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--max-age") && i + 1 < (unsigned int)argc)
			max_age = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--slow") && i + 1 < (unsigned int)argc)
			slow_ms = (unsigned int)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--bench") && i + 1 < (unsigned int)argc)
			bench = (unsigned int)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--non"))
			bench_flags = COAP_RESOURCE_FLAGS_NOTIFY_NON_ALWAYS;
		else {
			fprintf(stderr,
				"usage: coap_sim [--listen H:P] [--period MS] [--max-age S] "
				"[--slow MS] [--bench N] [--non]\n");
			return 2;
		}
	}
	snprintf(host, sizeof(host), "%s", listen);
	colon = strrchr(host, ':');
	if (!colon)
		return 2;
	*colon = '\0';
	coap_startup();
	coap_set_log_level(LOG_WARNING);
	coap_address_init(&addr);
	addr.addr.sin.sin_family = AF_INET;
	addr.addr.sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.addr.sin.sin_addr) != 1)
		return 2;
	addr.size = sizeof(addr.addr.sin);
	ctx = coap_new_context(NULL);
	if (!ctx || !coap_new_endpoint(ctx, &addr, COAP_PROTO_UDP)) {
		fprintf(stderr, "coap_sim: cannot listen on %s\n", listen);
		return 1;
	}
	coap_context_set_block_mode(ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	obs = calloc(bench + 8, sizeof(*obs));
	bench_vals = calloc(bench + 1, sizeof(*bench_vals));
	if (!obs || !bench_vals)
		return 1;
	obs[n_obs++] = add(ctx, "num", h_num, true, 0);
	obs[n_obs++] = add(ctx, "json", h_json, true, 0);
	coap_add_attr(obs[n_obs - 1], coap_make_str_const("ct"), coap_make_str_const("50"), 0);
	obs[n_obs++] = add(ctx, "garbage", h_garbage, true, 0);
	coap_add_attr(add(ctx, "senml", h_senml, false, 0), coap_make_str_const("ct"),
		      coap_make_str_const("110"), 0);
	add(ctx, "plain", h_plain, false, 0);
	add(ctx, "fail", h_fail, false, 0);
	add(ctx, "slow", h_slow, false, 0);
	add(ctx, "cf", h_cf, false, 0);
	add(ctx, "big", h_big, false, 0);
	{
		coap_resource_t *w = add(ctx, "setpoint", h_store_get, true, 0);

		coap_register_handler(w, COAP_REQUEST_PUT, h_store_put);
		coap_register_handler(w, COAP_REQUEST_POST, h_store_put);
		w = add(ctx, "jsetpoint", h_store_get, true, 0);
		coap_register_handler(w, COAP_REQUEST_PUT, h_store_put);
		coap_register_handler(w, COAP_REQUEST_POST, h_store_put);
	}
	for (i = 0; i < bench; i++) {
		char p[32];

		snprintf(p, sizeof(p), "r/%u", i);
		obs[n_obs++] = add(ctx, p, h_bench, true, bench_flags);
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready %s\n", colon + 1);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &last);
	start = last;
	while (!quit) {
		long ms;

		coap_io_process(ctx, bench ? 2 : 50);
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000;
		if (period && ms >= (long)period) {
			last = now;
			tick_n++;
			for (i = 0; i < n_obs - bench; i++)
				coap_resource_notify_observers(obs[i], NULL);
		}
		if (bench && period) {
			/* /r/N change spread evenly over the period, as N devices' values would */
			unsigned long long el =
				(unsigned long long)(now.tv_sec - start.tv_sec) * 1000 +
				(unsigned long long)((now.tv_nsec - start.tv_nsec) / 1000000);
			unsigned long long due = el * bench / period;

			for (; done_n < due; done_n++) {
				unsigned int k = (unsigned int)(done_n % bench);

				bench_vals[k]++;
				coap_resource_notify_observers(obs[n_obs - bench + k], NULL);
			}
		}
	}
	coap_free_context(ctx);
	free(obs);
	free(bench_vals);
	coap_cleanup();
	return 0;
}
