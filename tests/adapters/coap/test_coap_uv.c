/*
 * test_coap_uv.c - adapters/coap/coap_uv.c: libcoap contexts driven by a real
 * libuv loop on 127.0.0.1, a server context and a client context side by
 * side (as the daemon runs the CoAP server and the CoAP device adapter).
 * Every loop run is bounded by a watchdog timer.
 */
#include "adapters/coap/coap_lib.h"
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "adapters/coap/coap_uv.h"
#include "gateway/base/base.h"

struct fix {
	uv_loop_t loop;
	uv_timer_t watchdog;
	struct gw_logger log;
	struct ad_coap_uv *srv, *cli;
	coap_session_t *sess;
	int port;
	/* what the client saw */
	char payload[64];
	int responses;
	int notifications;
	int nacks;
	coap_nack_reason_t nack_reason;
	int closed;
	bool timed_out;
	int want_notifications;
	coap_resource_t *counter;
	int count;
	uv_timer_t changer;
};

/* A UDP port free right now on 127.0.0.1 (bound, read back, closed). */
static int free_udp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void loopback(coap_address_t *a, int port)
{
	coap_address_init(a);
	a->addr.sin.sin_family = AF_INET;
	a->addr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->addr.sin.sin_port = htons(port);
	a->size = sizeof(a->addr.sin);
}

static void on_watchdog(uv_timer_t *t)
{
	struct fix *f = t->data;

	f->timed_out = true;
	uv_stop(&f->loop);
}

/* Run the loop until uv_stop() or @ms pass. */
static void run_for(struct fix *f, uint64_t ms)
{
	f->timed_out = false;
	uv_timer_start(&f->watchdog, on_watchdog, ms, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&f->watchdog);
}

static void on_hello(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		     const coap_string_t *q, coap_pdu_t *resp)
{
	(void)r, (void)s, (void)req, (void)q;
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	coap_add_data(resp, 5, (const uint8_t *)"world");
}

static void on_counter(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
		       const coap_string_t *q, coap_pdu_t *resp)
{
	struct fix *f = coap_get_app_data(coap_session_get_context(s));
	uint8_t buf[4];
	char txt[16];
	int n = snprintf(txt, sizeof(txt), "%d", f->count);

	(void)r, (void)req, (void)q;
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	coap_add_option(resp, COAP_OPTION_CONTENT_FORMAT,
			coap_encode_var_safe(buf, sizeof(buf), COAP_MEDIATYPE_TEXT_PLAIN), buf);
	coap_add_data(resp, (size_t)n, (const uint8_t *)txt);
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
				   const coap_pdu_t *rcvd, const coap_mid_t mid)
{
	struct fix *f = coap_get_app_data(coap_session_get_context(s));
	const uint8_t *data;
	size_t len;
	coap_opt_iterator_t it;

	(void)sent, (void)mid;
	if (coap_get_data(rcvd, &len, &data)) {
		len = GW_MIN(len, sizeof(f->payload) - 1);
		memcpy(f->payload, data, len);
		f->payload[len] = 0;
	}
	if (coap_check_option(rcvd, COAP_OPTION_OBSERVE, &it))
		f->notifications++;
	else
		f->responses++;
	if (!f->want_notifications || f->notifications >= f->want_notifications)
		uv_stop(&f->loop);
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason,
		    const coap_mid_t mid)
{
	struct fix *f = coap_get_app_data(coap_session_get_context(s));

	(void)sent, (void)mid;
	f->nacks++;
	f->nack_reason = reason;
	uv_stop(&f->loop);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	coap_address_t a;
	coap_resource_t *r;

	assert_non_null(f);
	gw_logger_init(&f->log, LOG_WARNING, GW_LOG_STDERR);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->watchdog);
	f->watchdog.data = f;
	assert_int_equal(ad_coap_uv_new(&f->loop, &f->log, "srv", &f->srv), 0);
	assert_int_equal(ad_coap_uv_new(&f->loop, &f->log, "cli", &f->cli), 0);
	coap_set_app_data(ad_coap_uv_context(f->srv), f);
	coap_set_app_data(ad_coap_uv_context(f->cli), f);

	f->port = free_udp_port();
	loopback(&a, f->port);
	assert_non_null(coap_new_endpoint(ad_coap_uv_context(f->srv), &a, COAP_PROTO_UDP));
	r = coap_resource_init(coap_make_str_const("hello"), 0);
	coap_register_handler(r, COAP_REQUEST_GET, on_hello);
	coap_add_resource(ad_coap_uv_context(f->srv), r);
	r = coap_resource_init(coap_make_str_const("counter"), 0);
	coap_register_handler(r, COAP_REQUEST_GET, on_counter);
	coap_resource_set_get_observable(r, 1);
	coap_add_resource(ad_coap_uv_context(f->srv), r);
	f->counter = r;
	ad_coap_uv_kick(f->srv);

	coap_register_response_handler(ad_coap_uv_context(f->cli), on_response);
	coap_register_nack_handler(ad_coap_uv_context(f->cli), on_nack);
	*state = f;
	return 0;
}

static void on_closed(void *arg)
{
	((struct fix *)arg)->closed++;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->srv)
		ad_coap_uv_close(f->srv, on_closed, f);
	if (f->cli)
		ad_coap_uv_close(f->cli, on_closed, f);
	uv_close((uv_handle_t *)&f->watchdog, NULL);
	if (f->changer.loop)
		uv_close((uv_handle_t *)&f->changer, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT); /* only closes are left: returns */
	assert_int_equal(f->closed, (f->srv != NULL) + (f->cli != NULL));
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* A client session to @port on the client context. */
static coap_session_t *session_to(struct fix *f, int port)
{
	coap_address_t dst;
	coap_session_t *s;

	loopback(&dst, port);
	s = coap_new_client_session(ad_coap_uv_context(f->cli), NULL, &dst, COAP_PROTO_UDP);
	assert_non_null(s);
	return s;
}

static void send_get(struct fix *f, coap_session_t *s, const char *path, bool observe)
{
	coap_pdu_t *pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, s);
	uint8_t tok[8];
	size_t tlen = sizeof(tok);
	uint8_t buf[4];

	assert_non_null(pdu);
	coap_session_new_token(s, &tlen, tok);
	coap_add_token(pdu, tlen, tok);
	if (observe)
		coap_add_option(pdu, COAP_OPTION_OBSERVE,
				coap_encode_var_safe(buf, sizeof(buf), COAP_OBSERVE_ESTABLISH),
				buf);
	coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(path), (const uint8_t *)path);
	assert_int_not_equal(coap_send(s, pdu), COAP_INVALID_MID);
	ad_coap_uv_kick(f->cli);
}

/* A GET from the client context to the server context, both on one loop. */
static void test_get(void **state)
{
	struct fix *f = *state;
	unsigned long before = ad_coap_uv_rounds(f->cli);

	f->sess = session_to(f, f->port);
	send_get(f, f->sess, "hello", false);
	run_for(f, 3000);
	assert_false(f->timed_out);
	assert_int_equal(f->responses, 1);
	assert_string_equal(f->payload, "world");
	assert_true(ad_coap_uv_rounds(f->cli) > before);
	assert_true(ad_coap_uv_rounds(f->srv) > 0);
}

/*
 * Observe: the server changes the resource from a uv_timer (outside any
 * libcoap handler) and kicks; notifications reach the client.
 */
static void on_change(uv_timer_t *t)
{
	struct fix *f = t->data;

	f->count++;
	coap_resource_notify_observers(f->counter, NULL);
	ad_coap_uv_kick(f->srv);
}

static void test_observe(void **state)
{
	struct fix *f = *state;

	uv_timer_init(&f->loop, &f->changer);
	f->changer.data = f;
	f->sess = session_to(f, f->port);
	f->want_notifications = 4; /* the first answer carries Observe too */
	send_get(f, f->sess, "counter", true);
	uv_timer_start(&f->changer, on_change, 20, 20);
	run_for(f, 5000);
	uv_timer_stop(&f->changer);
	assert_false(f->timed_out);
	assert_int_equal(f->notifications, 4);
	assert_true(atoi(f->payload) >= 3);
}

/*
 * A CON to a port where something is bound but never answers: only
 * libcoap's deadlines (retransmits) drive the client, so this fails if the
 * glue does not wake libcoap on time. libcoap 4.3.1 accepts ACK timeouts of
 * 1 s and more: 1 s, random factor 1, one retransmit: NACK after 1 + 2 s.
 */
static void test_retransmit_timeout(void **state)
{
	struct fix *f = *state;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	uint64_t t0;
	char buf[64];
	int got = 0;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
	f->sess = session_to(f, ntohs(a.sin_port));
	coap_session_set_ack_timeout(f->sess, (coap_fixed_point_t){ 1, 0 });
	coap_session_set_ack_random_factor(f->sess, (coap_fixed_point_t){ 1, 0 });
	coap_session_set_max_retransmit(f->sess, 1);
	t0 = uv_now(&f->loop);
	send_get(f, f->sess, "hello", false);
	run_for(f, 6000);
	assert_false(f->timed_out);
	assert_int_equal(f->nacks, 1);
	assert_int_equal(f->nack_reason, COAP_NACK_TOO_MANY_RETRIES);
	assert_true(uv_now(&f->loop) - t0 >= 2900);
	assert_true(uv_now(&f->loop) - t0 < 4500);
	/* the first send and the retransmit reached the socket */
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		got++;
	assert_int_equal(got, 2);
	close(fd);
}

/* Closing with a session and a request in flight frees everything (ASan checks). */
static void test_close_in_flight(void **state)
{
	struct fix *f = *state;

	f->sess = session_to(f, f->port);
	send_get(f, f->sess, "hello", false);
	send_get(f, f->sess, "counter", true);
	/* teardown closes both contexts before the loop ran */
}

static void test_dtls_name(void **state)
{
	(void)state;
	if (ad_coap_has_dtls())
		assert_string_not_equal(ad_coap_tls_name(), "none");
	else
		assert_string_equal(ad_coap_tls_name(), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_observe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retransmit_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
		cmocka_unit_test(test_dtls_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
