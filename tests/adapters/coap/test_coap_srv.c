/*
 * test_coap_srv.c - the CoAP server's router (coap_srv_uri.c) and core
 * (coap_srv.c) with fake ops that record what the glue would do and a fake
 * clock: every route and refusal code, query values, topic matching,
 * connection mode (token, heartbeat, expiry, close, takeover),
 * connectionless clients by address, observations (retained messages held
 * behind the response, sub ids, RST, re-registration), the CON bound,
 * max_clients, max_observations, the mountpoint and the rate limit; and the
 * split of [coap] listen into entries.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/coap/coap_srv_int.h"

/* ------------------------------------------------------------ helpers */

#define MAXSEG 16

struct rq {
	struct gw_slice path[MAXSEG], query[MAXSEG];
	char pbuf[MAXSEG][128], qbuf[MAXSEG][256];
	struct coapsrv_raw raw;
};

/* "ps/a/b?qos=1&retain=true" into a raw request. */
static const struct coapsrv_raw *mkreq(struct rq *r, uint8_t method, int32_t observe,
				       const char *uri)
{
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	unsigned int n = 0;
	size_t i, start = 0;

	memset(r, 0, sizeof(*r));
	for (i = 0; i <= plen; i++) {
		if (i == plen || uri[i] == '/') {
			memcpy(r->pbuf[n], uri + start, i - start);
			r->path[n] = (struct gw_slice){ (const uint8_t *)r->pbuf[n], i - start };
			n++;
			start = i + 1;
		}
	}
	r->raw.n_path = plen ? n : 0;
	n = 0;
	if (q) {
		const char *s = q + 1;

		while (*s) {
			const char *e = strchr(s, '&');
			size_t l = e ? (size_t)(e - s) : strlen(s);

			memcpy(r->qbuf[n], s, l);
			r->query[n] = (struct gw_slice){ (const uint8_t *)r->qbuf[n], l };
			n++;
			s += l + (e ? 1 : 0);
		}
	}
	r->raw.n_query = n;
	r->raw.method = method;
	r->raw.observe = observe;
	r->raw.path = r->path;
	r->raw.query = r->query;
	return &r->raw;
}

static int route(uint8_t method, int32_t observe, const char *uri, struct coapsrv_req *out)
{
	static char buf[COAPSRV_TOPIC_MAX];
	struct rq r;

	return coapsrv_route(mkreq(&r, method, observe, uri), buf, sizeof(buf), out);
}

static bool slice_is(struct gw_slice s, const char *c)
{
	return gw_slice_eq_cstr(s, c);
}

/* ---------------------------------------------------------------- router */

static void test_route_publish(void **state)
{
	struct coapsrv_req q;

	(void)state;
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a/b/c?qos=1&retain=true&expiry=60", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_PUBLISH);
	assert_true(slice_is(q.topic, "a/b/c"));
	assert_int_equal(q.qos, 1);
	assert_true(q.retain);
	assert_true(q.has_expiry);
	assert_int_equal(q.expiry, 60);
	assert_int_equal(route(COAPSRV_PUT, -1, "ps/x?retain=0&qos=2&c=me&u=bob&p=pw", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_PUBLISH);
	assert_false(q.retain);
	assert_int_equal(q.qos, 2);
	assert_true(slice_is(q.clientid, "me"));
	assert_true(slice_is(q.username, "bob"));
	assert_true(slice_is(q.password, "pw"));
	/* an empty level is a level: ps//a is "/a" */
	assert_int_equal(route(COAPSRV_POST, -1, "ps//a", &q), 0);
	assert_true(slice_is(q.topic, "/a"));
	/* unknown keys are ignored */
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?foo=bar&novalue", &q), 0);
}

static void test_route_refusals(void **state)
{
	struct coapsrv_req q;

	(void)state;
	assert_int_equal(route(COAPSRV_POST, -1, "nope/a", &q), -ENOENT);
	assert_int_equal(q.code, COAPSRV_NOT_FOUND);
	assert_int_equal(route(COAPSRV_POST, -1, "", &q), -ENOENT);
	assert_int_equal(route(COAPSRV_POST, -1, "ps", &q), -ENOENT);
	assert_int_equal(route(COAPSRV_POST, -1, "mqtt/connection/x?clientid=a", &q), -ENOENT);
	assert_int_equal(route(COAPSRV_DELETE, -1, "ps/a", &q), -EPERM);
	assert_int_equal(q.code, COAPSRV_BAD_METHOD);
	assert_int_equal(route(COAPSRV_GET, -1, "ps/a", &q), -EPERM);
	assert_int_equal(route(COAPSRV_GET, 7, "ps/a", &q), -EPERM);
	assert_int_equal(route(COAPSRV_GET, -1, "mqtt/connection?clientid=a", &q), -EPERM);
	assert_int_equal(route(5 /* FETCH */, -1, "ps/a", &q), -EPERM);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?qos=3", &q), -EINVAL);
	assert_int_equal(q.code, COAPSRV_BAD_REQUEST);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?qos=", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?qos=01x", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?retain=yes", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?expiry=-1", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?expiry=99999999999", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a/+", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/#", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_GET, 0, "ps/a+/b", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_GET, 0, "ps/a/#/b", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "ps/a?clientid=", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_POST, -1, "mqtt/connection", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_PUT, -1, "mqtt/connection?clientid=a", &q), -EINVAL);
	assert_int_equal(route(COAPSRV_PUT, -1, "mqtt/connection?clientid=a&token=12345678901", &q),
			 -EINVAL);
}

static void test_route_observe_connection(void **state)
{
	struct coapsrv_req q;

	(void)state;
	assert_int_equal(route(COAPSRV_GET, 0, "ps/a/+/#?qos=1", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_SUBSCRIBE);
	assert_true(slice_is(q.topic, "a/+/#"));
	assert_int_equal(route(COAPSRV_GET, 1, "ps/a/+/#", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_UNSUBSCRIBE);
	assert_int_equal(route(COAPSRV_POST, -1, "mqtt/connection?clientid=c1&username=u", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_CONNECT);
	assert_int_equal(route(COAPSRV_PUT, -1, "mqtt/connection?clientid=c1&token=42", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_HEARTBEAT);
	assert_true(slice_is(q.token, "42"));
	assert_int_equal(route(COAPSRV_DELETE, -1, "mqtt/connection?clientid=c1&token=42", &q), 0);
	assert_int_equal(q.op, COAPSRV_OP_CLOSE);
}

static void test_route_long_topic(void **state)
{
	struct coapsrv_req q;
	struct gw_slice segs[3];
	char big[200], buf[64];
	struct coapsrv_raw raw = {
		.method = COAPSRV_POST, .observe = -1, .path = segs, .n_path = 3
	};

	(void)state;
	memset(big, 'x', sizeof(big));
	segs[0] = GW_SLICE_STR("ps");
	segs[1] = (struct gw_slice){ (const uint8_t *)big, 61 };
	segs[2] = (struct gw_slice){ (const uint8_t *)big, 3 };
	assert_int_equal(coapsrv_route(&raw, buf, sizeof(buf), &q), -EMSGSIZE);
	assert_int_equal(q.code, COAPSRV_BAD_REQUEST);
	segs[1].len = 60 - 4;
	assert_int_equal(coapsrv_route(&raw, buf, sizeof(buf), &q), 0);
	assert_int_equal(q.topic.len, 60);
	segs[2] = (struct gw_slice){ (const uint8_t *)"a\0b", 3 };
	segs[1].len = 2;
	assert_int_equal(coapsrv_route(&raw, buf, sizeof(buf), &q), -EINVAL);
}

static void test_topic_match(void **state)
{
	static const struct {
		const char *f, *t;
		bool m;
	} cases[] = {
		{ "a/b", "a/b", true },	   { "a/b", "a/c", false },    { "a/+", "a/b", true },
		{ "a/+", "a/b/c", false }, { "a/#", "a/b/c", true },   { "a/#", "a", true },
		{ "#", "a/b", true },	   { "+/+", "a/b", true },     { "+", "a/b", false },
		{ "a/+/#", "a/b", true },  { "a/+/c", "a/b/c", true }, { "a/+/c", "a/b/d", false },
		{ "a/b", "a/b/c", false }, { "a/b/c", "a/b", false },  { "+/b", "/b", true },
		{ "a", "ab", false },
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < GW_ARRAY_SIZE(cases); i++) {
		bool m = coapsrv_topic_match(gw_slice_cstr(cases[i].f), gw_slice_cstr(cases[i].t));

		if (m != cases[i].m)
			fail_msg("%s vs %s: %d", cases[i].f, cases[i].t, m);
	}
}

/* -------------------------------------------------------------- the core */

struct note {
	struct coapsrv_obs *o;
	uint32_t seq;
	bool con;
	char payload[64];
};

struct fake {
	struct coapsrv_core core;
	int attached, detached, subscribed, unsubscribed, forgotten;
	char last_id[COAPSRV_ID_MAX + 1];
	char last_user[64];
	char last_filter[256];
	uint32_t last_sub_id;
	int attach_rc, subscribe_rc, notify_rc;
	/* From inside subscribe, deliver this as a retained message. */
	const char *retained;
	struct coapsrv_client *client_of_session[64];
	struct note notes[64];
	unsigned int n_notes;
	int64_t now;
};

static int f_attach(void *arg, struct coapsrv_client *c, const struct coapsrv_attach *info,
		    void **session)
{
	struct fake *f = arg;

	if (f->attach_rc)
		return f->attach_rc;
	snprintf(f->last_id, sizeof(f->last_id), "%.*s", (int)info->client_id.len,
		 (const char *)info->client_id.p);
	snprintf(f->last_user, sizeof(f->last_user), "%.*s", (int)info->username.len,
		 (const char *)info->username.p);
	f->attached++;
	f->client_of_session[f->attached] = c;
	*session = (void *)(intptr_t)f->attached;
	return 0;
}

static void f_detach(void *arg, struct coapsrv_client *c, void *session)
{
	struct fake *f = arg;

	(void)c;
	f->client_of_session[(intptr_t)session] = NULL;
	f->detached++;
}

static int f_subscribe(void *arg, void *session, struct gw_slice filter, uint8_t qos,
		       uint32_t sub_id)
{
	struct fake *f = arg;

	(void)qos;
	if (f->subscribe_rc)
		return f->subscribe_rc;
	f->subscribed++;
	f->last_sub_id = sub_id;
	snprintf(f->last_filter, sizeof(f->last_filter), "%.*s", (int)filter.len,
		 (const char *)filter.p);
	if (f->retained)
		coapsrv_on_deliver(&f->core, f->client_of_session[(intptr_t)session],
				   gw_slice_cstr("t"), gw_slice_cstr(f->retained), 1, &sub_id, 1);
	return 0;
}

static int f_unsubscribe(void *arg, void *session, struct gw_slice filter)
{
	struct fake *f = arg;

	(void)session;
	snprintf(f->last_filter, sizeof(f->last_filter), "%.*s", (int)filter.len,
		 (const char *)filter.p);
	f->unsubscribed++;
	return 0;
}

static int f_notify(void *arg, struct coapsrv_obs *o, uint32_t seq, bool con,
		    struct gw_slice payload)
{
	struct fake *f = arg;
	struct note *n;

	if (f->notify_rc)
		return f->notify_rc;
	assert_true(f->n_notes < GW_ARRAY_SIZE(f->notes));
	n = &f->notes[f->n_notes++];
	n->o = o;
	n->seq = seq;
	n->con = con;
	snprintf(n->payload, sizeof(n->payload), "%.*s", (int)payload.len, (const char *)payload.p);
	return 0;
}

static void f_forget(void *arg, struct coapsrv_obs *o)
{
	struct fake *f = arg;

	(void)o;
	f->forgotten++;
}

static const struct coapsrv_ops fops = {
	.attach = f_attach,
	.detach = f_detach,
	.subscribe = f_subscribe,
	.unsubscribe = f_unsubscribe,
	.notify = f_notify,
	.forget = f_forget,
};

static struct fake *fake_new(void (*tune)(struct coapsrv_config *))
{
	struct coapsrv_config cfg;
	struct fake *f = test_calloc(1, sizeof(*f));

	coapsrv_config_defaults(&cfg);
	cfg.rate_limit = 0;
	if (tune)
		tune(&cfg);
	assert_int_equal(coapsrv_core_init(&f->core, &cfg, &fops, f, 1234), 0);
	f->now = 1000;
	return f;
}

static void fake_free(struct fake *f)
{
	coapsrv_core_fini(&f->core);
	assert_int_equal(f->attached, f->detached);
	test_free(f);
}

static struct coapsrv_peer peer_n(int n)
{
	struct coapsrv_peer p = { 0 };
	static char names[8][16];

	p.len = 4;
	p.addr[0] = 127;
	p.addr[3] = (uint8_t)n;
	p.link = (void *)(intptr_t)(100 + n);
	snprintf(names[n & 7], sizeof(names[0]), "peer%d", n);
	p.name = names[n & 7];
	return p;
}

static bool req_tok(struct fake *f, int peer, uint8_t method, int32_t observe, const char *uri,
		    const char *tok, const char *payload, struct coapsrv_resp *resp)
{
	struct coapsrv_peer p = peer_n(peer);
	struct rq r;

	return coapsrv_on_request(&f->core, &p, mkreq(&r, method, observe, uri), gw_slice_cstr(tok),
				  gw_slice_cstr(payload), f->now, resp);
}

static uint8_t req(struct fake *f, int peer, uint8_t method, int32_t observe, const char *uri,
		   struct coapsrv_resp *resp)
{
	assert_true(req_tok(f, peer, method, observe, uri, "tk", "", resp));
	return resp->code;
}

static void test_connectionless_publish(void **state)
{
	struct fake *f = fake_new(NULL);
	struct coapsrv_resp r;
	struct coapsrv_stats st;

	(void)state;
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "ps/a/b?qos=1&retain=true", &r), 0);
	assert_non_null(r.pub_client);
	assert_true(slice_is(r.pub_topic, "a/b"));
	assert_int_equal(r.pub_qos, 1);
	assert_true(r.pub_retain);
	assert_string_equal(f->last_id, "coap-peer1");
	/* the same address is the same client */
	assert_int_equal(req(f, 1, COAPSRV_PUT, -1, "ps/a/c", &r), 0);
	assert_int_equal(f->attached, 1);
	/* another address is another client */
	assert_int_equal(req(f, 2, COAPSRV_PUT, -1, "ps/a/c", &r), 0);
	assert_int_equal(f->attached, 2);
	/* a clientid names the session; a new one replaces the address's client */
	assert_int_equal(req(f, 2, COAPSRV_PUT, -1, "ps/a/c?clientid=dev7", &r), 0);
	assert_string_equal(f->last_id, "dev7");
	assert_int_equal(f->detached, 1);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.clients, 2);
	assert_int_equal(st.requests, 4);
	/* idle past heartbeat: closed */
	f->now += 30001;
	coapsrv_on_tick(&f->core, f->now);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.clients, 0);
	assert_int_equal(st.clients_expired, 2);
	fake_free(f);
}

static void big_payload(struct coapsrv_config *c)
{
	c->max_payload = 4;
	c->mountpoint = "coap/";
}

static void test_refusal_codes(void **state)
{
	struct fake *f = fake_new(big_payload);
	struct coapsrv_resp r;
	struct coapsrv_stats st;

	(void)state;
	assert_true(req_tok(f, 1, COAPSRV_POST, -1, "ps/a", "t", "12345", &r));
	assert_int_equal(r.code, COAPSRV_TOO_LARGE);
	assert_int_equal(f->attached, 0); /* refused before a session was made */
	assert_true(req_tok(f, 1, COAPSRV_POST, -1, "ps/a", "t", "1234", &r));
	assert_int_equal(r.code, 0);
	assert_true(slice_is(r.pub_topic, "coap/a"));
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "xx", &r), COAPSRV_NOT_FOUND);
	assert_int_equal(req(f, 1, COAPSRV_DELETE, -1, "ps/a", &r), COAPSRV_BAD_METHOD);
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "ps/a?qos=9", &r), COAPSRV_BAD_REQUEST);
	assert_true(r.payload.len > 0);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.too_large, 1);
	assert_int_equal(st.not_found, 1);
	assert_int_equal(st.bad_method, 1);
	assert_int_equal(st.bad_request, 1);
	/* the broker refuses the session */
	f->attach_rc = -EACCES;
	assert_int_equal(req(f, 9, COAPSRV_POST, -1, "ps/a", &r), COAPSRV_UNAUTHORIZED);
	f->attach_rc = -ENOMEM;
	assert_int_equal(req(f, 9, COAPSRV_POST, -1, "ps/a", &r), COAPSRV_UNAVAILABLE);
	f->attach_rc = 0;
	fake_free(f);
}

static void conn_required(struct coapsrv_config *c)
{
	c->connection_required = true;
}

static void test_connection_mode(void **state)
{
	struct fake *f = fake_new(conn_required);
	struct coapsrv_resp r;
	char uri[128], tok[16];

	(void)state;
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "ps/a", &r), COAPSRV_UNAUTHORIZED);
	assert_int_equal(f->attached, 0);
	assert_int_equal(req(f, 1, COAPSRV_POST, -1,
			     "mqtt/connection?clientid=c1&username=bob&password=pw", &r),
			 COAPSRV_CREATED);
	assert_string_equal(f->last_id, "c1");
	assert_string_equal(f->last_user, "bob");
	assert_true(r.payload.len > 0 && r.payload.len < sizeof(tok));
	snprintf(tok, sizeof(tok), "%.*s", (int)r.payload.len, (const char *)r.payload.p);
	/* a wrong token, or none */
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "ps/a?clientid=c1&token=1", &r),
			 COAPSRV_UNAUTHORIZED);
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "ps/a?clientid=c1", &r), COAPSRV_UNAUTHORIZED);
	/* the right one, from another address too (the token is the key) */
	snprintf(uri, sizeof(uri), "ps/a?clientid=c1&token=%s", tok);
	assert_int_equal(req(f, 5, COAPSRV_POST, -1, uri, &r), 0);
	assert_ptr_equal(r.pub_client, coapsrv_find_client(&f->core, gw_slice_cstr("c1")));
	/* heartbeats keep it; without them it expires */
	snprintf(uri, sizeof(uri), "mqtt/connection?clientid=c1&token=%s", tok);
	f->now += 20000;
	assert_int_equal(req(f, 1, COAPSRV_PUT, -1, uri, &r), COAPSRV_CHANGED);
	f->now += 20000;
	coapsrv_on_tick(&f->core, f->now);
	assert_non_null(coapsrv_find_client(&f->core, gw_slice_cstr("c1")));
	f->now += 20000;
	coapsrv_on_tick(&f->core, f->now);
	assert_null(coapsrv_find_client(&f->core, gw_slice_cstr("c1")));
	assert_int_equal(req(f, 1, COAPSRV_PUT, -1, uri, &r), COAPSRV_UNAUTHORIZED);
	/* connect again, take over by a second connect, close */
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "mqtt/connection?clientid=c1", &r),
			 COAPSRV_CREATED);
	assert_int_equal(req(f, 2, COAPSRV_POST, -1, "mqtt/connection?clientid=c1", &r),
			 COAPSRV_CREATED);
	assert_int_equal(f->attached, 3);
	assert_int_equal(f->detached, 2);
	snprintf(tok, sizeof(tok), "%.*s", (int)r.payload.len, (const char *)r.payload.p);
	snprintf(uri, sizeof(uri), "mqtt/connection?clientid=c1&token=%s", tok);
	assert_int_equal(req(f, 1, COAPSRV_DELETE, -1, uri, &r), COAPSRV_DELETED);
	assert_null(coapsrv_find_client(&f->core, gw_slice_cstr("c1")));
	assert_int_equal(req(f, 1, COAPSRV_DELETE, -1, uri, &r), COAPSRV_UNAUTHORIZED);
	fake_free(f);
}

static void test_connected_id_not_for_connectionless(void **state)
{
	struct fake *f = fake_new(NULL);
	struct coapsrv_resp r;

	(void)state;
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "mqtt/connection?clientid=c1", &r),
			 COAPSRV_CREATED);
	assert_int_equal(req(f, 2, COAPSRV_POST, -1, "ps/a?clientid=c1", &r), COAPSRV_UNAUTHORIZED);
	assert_int_equal(req(f, 2, COAPSRV_POST, -1, "ps/a", &r), 0);
	fake_free(f);
}

static void test_observe(void **state)
{
	struct fake *f = fake_new(NULL);
	struct coapsrv_resp r;
	struct coapsrv_client *c;
	struct coapsrv_stats st;
	uint32_t sid;

	(void)state;
	f->retained = "r1";
	assert_true(req_tok(f, 1, COAPSRV_GET, 0, "ps/s/+?qos=1", "ab", "", &r));
	assert_int_equal(r.code, COAPSRV_CONTENT);
	assert_true(r.observe);
	assert_non_null(r.obs);
	assert_string_equal(f->last_filter, "s/+");
	/* the retained message waits for the response to go out */
	assert_int_equal(f->n_notes, 0);
	assert_true(coapsrv_has_pending(&f->core));
	coapsrv_flush(&f->core);
	assert_int_equal(f->n_notes, 1);
	assert_string_equal(f->notes[0].payload, "r1");
	assert_true(f->notes[0].con); /* notify_type qos: QoS 1 is a CON */
	assert_int_equal(f->notes[0].seq, r.seq + 1);
	f->retained = NULL;
	c = r.obs->c;
	sid = f->last_sub_id;
	/* a delivery by sub id, and one matched by filter (no sub ids) */
	coapsrv_on_deliver(&f->core, c, gw_slice_cstr("s/x"), gw_slice_cstr("m0"), 0, &sid, 1);
	assert_int_equal(f->n_notes, 2);
	assert_false(f->notes[1].con);
	assert_int_equal(f->notes[1].seq, f->notes[0].seq + 1);
	coapsrv_on_deliver(&f->core, c, gw_slice_cstr("s/y"), gw_slice_cstr("m1"), 0, NULL, 0);
	coapsrv_on_deliver(&f->core, c, gw_slice_cstr("t/y"), gw_slice_cstr("m2"), 0, NULL, 0);
	assert_int_equal(f->n_notes, 3);
	/* an observing connectionless client is not expired */
	f->now += 100000;
	coapsrv_on_tick(&f->core, f->now);
	/* a heartbeat without a CON: the next notification checks the observer (RFC 7641 4.5) */
	coapsrv_on_deliver(&f->core, c, gw_slice_cstr("s/z"), gw_slice_cstr("m3"), 0, NULL, 0);
	assert_int_equal(f->n_notes, 4);
	assert_true(f->notes[3].con);
	coapsrv_on_deliver(&f->core, c, gw_slice_cstr("s/z"), gw_slice_cstr("m4"), 0, NULL, 0);
	assert_false(f->notes[4].con);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.clients, 1);
	assert_int_equal(st.observations, 1);
	/* re-registration of the same filter with a new token: one observation */
	assert_true(req_tok(f, 1, COAPSRV_GET, 0, "ps/s/+", "cd", "", &r));
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.observations, 1);
	assert_int_equal(r.obs->tok_len, 2);
	assert_memory_equal(r.obs->tok, "cd", 2);
	/* an RST for the old token does nothing; for the new one it ends it */
	coapsrv_on_reset(&f->core, peer_n(1).addr, 4, gw_slice_cstr("ab"), false);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.observations, 1);
	coapsrv_on_reset(&f->core, peer_n(1).addr, 4, gw_slice_cstr("cd"), false);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.observations, 0);
	assert_int_equal(f->unsubscribed, 1);
	/* subscribe, then Observe 1 */
	assert_true(req_tok(f, 1, COAPSRV_GET, 0, "ps/q", "ef", "", &r));
	assert_int_equal(r.code, COAPSRV_CONTENT);
	assert_true(req_tok(f, 1, COAPSRV_GET, 1, "ps/q", "ef", "", &r));
	assert_int_equal(r.code, COAPSRV_CONTENT);
	assert_false(r.observe);
	assert_int_equal(f->unsubscribed, 2);
	assert_string_equal(f->last_filter, "q");
	/* the client, idle and without observations now, expires */
	f->now += 30001;
	coapsrv_on_tick(&f->core, f->now);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.clients, 0);
	fake_free(f);
}

static void con_bound(struct coapsrv_config *c)
{
	c->notify_type = COAPSRV_NOTIFY_CON;
	c->max_queued = 2;
	c->max_observations = 2;
}

static void test_con_bound_and_limits(void **state)
{
	struct fake *f = fake_new(con_bound);
	struct coapsrv_resp r;
	struct coapsrv_stats st;
	struct coapsrv_client *c;
	int i;

	(void)state;
	assert_int_equal(req(f, 1, COAPSRV_GET, 0, "ps/a", &r), COAPSRV_CONTENT);
	c = r.obs->c;
	for (i = 0; i < 5; i++)
		coapsrv_on_deliver(&f->core, c, gw_slice_cstr("a"), gw_slice_cstr("m"), 0, NULL, 0);
	assert_int_equal(f->n_notes, 2);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.notify_dropped, 3);
	assert_int_equal(st.notifications, 2);
	/* libcoap went idle: both were acknowledged */
	coapsrv_on_idle(&f->core);
	coapsrv_on_deliver(&f->core, c, gw_slice_cstr("a"), gw_slice_cstr("m"), 0, NULL, 0);
	assert_int_equal(f->n_notes, 3);
	/* a failed CON frees its slot and ends the observation */
	coapsrv_on_reset(&f->core, peer_n(1).addr, 4, gw_slice_cstr("tk"), true);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.observations, 0);
	/* max_observations, all clients together */
	assert_int_equal(req(f, 1, COAPSRV_GET, 0, "ps/a", &r), COAPSRV_CONTENT);
	assert_int_equal(req(f, 2, COAPSRV_GET, 0, "ps/b", &r), COAPSRV_CONTENT);
	assert_int_equal(req(f, 3, COAPSRV_GET, 0, "ps/c", &r), COAPSRV_UNAVAILABLE);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.observations_refused, 1);
	/* a subscription the ACL refuses */
	f->core.cfg.max_observations = 3;
	f->subscribe_rc = -EACCES;
	assert_int_equal(req(f, 1, COAPSRV_GET, 0, "ps/z", &r), COAPSRV_FORBIDDEN);
	f->subscribe_rc = 0;
	/* the broker session was taken over by another client of that id: the client goes */
	f->subscribe_rc = -ENOTCONN;
	coapsrv_core_stats(&f->core, &st);
	i = (int)st.clients;
	assert_int_equal(req(f, 1, COAPSRV_GET, 0, "ps/y", &r), COAPSRV_UNAVAILABLE);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.clients, i - 1);
	f->subscribe_rc = 0;
	/* notify fails: counted */
	f->notify_rc = -ENOMEM;
	coapsrv_on_idle(&f->core);
	coapsrv_on_deliver(&f->core, coapsrv_find_client(&f->core, gw_slice_cstr("coap-peer2")),
			   gw_slice_cstr("b"), gw_slice_cstr("m"), 0, NULL, 0);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.notify_dropped, 4);
	fake_free(f);
}

static void two_clients(struct coapsrv_config *c)
{
	c->max_clients = 2;
}

static void test_max_clients(void **state)
{
	struct fake *f = fake_new(two_clients);
	struct coapsrv_resp r;
	struct coapsrv_stats st;

	(void)state;
	assert_int_equal(req(f, 1, COAPSRV_POST, -1, "ps/a", &r), 0);
	assert_int_equal(req(f, 2, COAPSRV_POST, -1, "ps/a", &r), 0);
	assert_int_equal(req(f, 3, COAPSRV_POST, -1, "ps/a", &r), COAPSRV_UNAVAILABLE);
	assert_int_equal(req(f, 3, COAPSRV_POST, -1, "mqtt/connection?clientid=x", &r),
			 COAPSRV_UNAVAILABLE);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.clients_refused, 2);
	fake_free(f);
}

static void rate10(struct coapsrv_config *c)
{
	c->rate_limit = 10;
}

static void test_rate_limit(void **state)
{
	struct fake *f = fake_new(rate10);
	struct coapsrv_resp r;
	struct coapsrv_stats st;
	int i, ok = 0;

	(void)state;
	for (i = 0; i < 50; i++)
		ok += req_tok(f, 1, COAPSRV_POST, -1, "ps/a", "t", "", &r);
	assert_int_equal(ok, 10);
	/* another address has its own bucket */
	assert_true(req_tok(f, 2, COAPSRV_POST, -1, "ps/a", "t", "", &r));
	/* 100 ms later: one more */
	f->now += 100;
	ok = 0;
	for (i = 0; i < 5; i++)
		ok += req_tok(f, 1, COAPSRV_POST, -1, "ps/a", "t", "", &r);
	assert_int_equal(ok, 1);
	coapsrv_core_stats(&f->core, &st);
	assert_int_equal(st.rate_limited, 44);
	assert_int_equal(st.requests, 56);
	fake_free(f);
}

/* What coapsrv_each_listen() hands its callback, joined by '|'. */
struct listen_seen {
	char all[200];
	unsigned int n;
	int fail_at; /* the callback fails (-EADDRINUSE) at this entry; 0: never */
};

static int listen_entry(void *arg, const char *e, size_t n)
{
	struct listen_seen *ls = arg;
	size_t l = strlen(ls->all);

	snprintf(ls->all + l, sizeof(ls->all) - l, "%s%.*s", ls->n ? "|" : "", (int)n, e);
	return ++ls->n == (unsigned int)ls->fail_at ? -EADDRINUSE : 0;
}

static void test_each_listen(void **state)
{
	struct listen_seen ls;

	(void)state;
	memset(&ls, 0, sizeof(ls));
	assert_int_equal(
		coapsrv_each_listen(" 127.0.0.1:5683 ,, coaps://[::1]:5684,", listen_entry, &ls),
		0);
	assert_string_equal(ls.all, "127.0.0.1:5683|coaps://[::1]:5684");
	assert_int_equal(ls.n, 2);

	memset(&ls, 0, sizeof(ls));
	assert_int_equal(coapsrv_each_listen(NULL, listen_entry, &ls), 0);
	assert_int_equal(coapsrv_each_listen("", listen_entry, &ls), 0);
	assert_int_equal(coapsrv_each_listen(" , ,", listen_entry, &ls), 0);
	assert_int_equal(ls.n, 0);

	/* COAPSRV_MAX_LISTEN entries at most: the one past the bound is refused, not passed. */
	memset(&ls, 0, sizeof(ls));
	assert_int_equal(coapsrv_each_listen("a:1,b:2,c:3,d:4", listen_entry, &ls), 0);
	assert_int_equal(ls.n, COAPSRV_MAX_LISTEN);
	memset(&ls, 0, sizeof(ls));
	assert_int_equal(coapsrv_each_listen("a:1,b:2,c:3,d:4,e:5", listen_entry, &ls), -EINVAL);
	assert_string_equal(ls.all, "a:1|b:2|c:3|d:4");

	/* The callback's error stops the walk and is returned. */
	memset(&ls, 0, sizeof(ls));
	ls.fail_at = 2;
	assert_int_equal(coapsrv_each_listen("a:1, b:2, c:3", listen_entry, &ls), -EADDRINUSE);
	assert_string_equal(ls.all, "a:1|b:2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_publish),
		cmocka_unit_test(test_route_refusals),
		cmocka_unit_test(test_route_observe_connection),
		cmocka_unit_test(test_route_long_topic),
		cmocka_unit_test(test_topic_match),
		cmocka_unit_test(test_connectionless_publish),
		cmocka_unit_test(test_refusal_codes),
		cmocka_unit_test(test_connection_mode),
		cmocka_unit_test(test_connected_id_not_for_connectionless),
		cmocka_unit_test(test_observe),
		cmocka_unit_test(test_con_bound_and_limits),
		cmocka_unit_test(test_max_clients),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_each_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
