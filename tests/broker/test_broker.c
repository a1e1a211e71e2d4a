/*
 * test_broker.c - the in-process API (broker.h) and the persistence hooks,
 * on a broker without sockets.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"

#define S(x) gw_slice_cstr(x)

struct rec {
	char topic[64];
	char payload[64];
	uint8_t qos;
	bool retain;
	unsigned int n_ids;
	uint32_t ids[4];
	char corr[16];
	unsigned int n;
};

static void on_deliver(void *arg, const struct brk_delivery *d)
{
	struct rec *r = arg;
	unsigned int i;

	snprintf(r->topic, sizeof(r->topic), "%.*s", (int)d->topic.len, (const char *)d->topic.p);
	snprintf(r->payload, sizeof(r->payload), "%.*s", (int)d->payload.len,
		 (const char *)d->payload.p);
	r->qos = d->qos;
	r->retain = d->retain;
	r->n_ids = d->n_sub_ids;
	for (i = 0; i < d->n_sub_ids && i < 4; i++)
		r->ids[i] = d->sub_ids[i];
	r->corr[0] = 0;
	if (d->props && d->props->correlation_data.p)
		snprintf(r->corr, sizeof(r->corr), "%.*s", (int)d->props->correlation_data.len,
			 (const char *)d->props->correlation_data.p);
	r->n++;
}

struct env {
	struct brk b;
	int64_t now;
};

/* The broker's clock: a fake one, moved by the test. */
static int64_t fake_ms(void *arg)
{
	return *(const int64_t *)arg;
}

static int setup(void **state)
{
	struct env *e = gw_calloc(1, sizeof(*e));
	struct brk_config cfg;

	brk_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	e->now = 1000000;
	assert_int_equal(
		brk__init(&e->b, NULL, &cfg, NULL, &(const struct brk_clock){ fake_ms, &e->now }),
		0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	brk__fini(&e->b);
	gw_free(e);
	assert_int_equal(gw_mem_used(), 0);
	return 0;
}

static struct brk_client *client(struct env *e, const char *id, struct rec *r, uint32_t expiry,
				 bool clean, bool *present)
{
	struct brk_client_opts o = {
		.client_id = id,
		.clean_start = clean,
		.session_expiry = expiry,
		.deliver = on_deliver,
		.arg = r,
	};
	struct brk_client *c;

	assert_int_equal(brk_client_new(&e->b, &o, &c, present), 0);
	return c;
}

static void pub(struct brk_client *c, const char *topic, const char *payload, uint8_t qos,
		bool retain)
{
	struct brk_pub p = {
		.topic = S(topic), .payload = S(payload), .qos = qos, .retain = retain
	};

	assert_int_equal(brk_client_publish(c, &p), 0);
}

static void test_pub_sub_and_ids(void **state)
{
	struct env *e = *state;
	struct rec ra = { .n = 0 }, rb = { .n = 0 };
	struct brk_client *a = client(e, "a", &ra, 0, true, NULL);
	struct brk_client *b = client(e, "", &rb, 0, true, NULL);
	struct brk_msg_props mp = { .correlation_data = S("c42") };
	struct brk_pub p = { .topic = S("x/y"), .payload = S("hi"), .qos = 2, .props = &mp };

	assert_non_null(brk_client_id(b));
	assert_int_equal(brk_client_subscribe(a, S("x/+"), 1, 0, 11), 0);
	assert_int_equal(brk_client_subscribe(a, S("x/#"), 0, 0, 12), 0);
	assert_int_equal(brk_client_subscribe(a, S("bad/#/x"), 0, 0, 0), -EINVAL);
	assert_int_equal(brk_client_publish(b, &p), 0);
	assert_int_equal(ra.n, 1);
	assert_string_equal(ra.topic, "x/y");
	assert_string_equal(ra.payload, "hi");
	assert_int_equal(ra.qos, 1);
	assert_int_equal(ra.n_ids, 2);
	assert_string_equal(ra.corr, "c42");
	/* No-local. */
	assert_int_equal(brk_client_subscribe(b, S("x/y"), 0, BRK_SUB_NO_LOCAL, 0), 0);
	pub(b, "x/y", "again", 0, false);
	assert_int_equal(rb.n, 0);
	assert_int_equal(ra.n, 2);
	assert_int_equal(brk_client_unsubscribe(a, S("x/+")), 0);
	assert_int_equal(brk_client_unsubscribe(a, S("x/+")), -ENOENT);
	brk_client_free(a, false);
	brk_client_free(b, false);
}

static void test_retained_and_rh(void **state)
{
	struct env *e = *state;
	struct rec r = { .n = 0 };
	struct brk_client *c = client(e, "c", &r, 0, true, NULL);
	struct brk_pub p = { .topic = S("st/online"), .payload = S("yes"), .retain = true };

	assert_int_equal(brk_publish(&e->b, &p), 0);
	assert_int_equal(brk_client_subscribe(c, S("st/#"), 1, 2 << BRK_SUB_RH_SHIFT, 0), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(brk_client_subscribe(c, S("st/+"), 1, 1 << BRK_SUB_RH_SHIFT, 0), 0);
	assert_int_equal(r.n, 1);
	assert_true(r.retain);
	assert_int_equal(brk_client_subscribe(c, S("st/+"), 1, 1 << BRK_SUB_RH_SHIFT, 0), 0);
	assert_int_equal(r.n, 1);
	/* Live: retain only with retain-as-published. */
	assert_int_equal(brk_client_unsubscribe(c, S("st/#")), 0);
	assert_int_equal(brk_publish(&e->b, &p), 0);
	assert_false(r.retain);
	r.n = 0;
	assert_int_equal(brk_client_subscribe(c, S("st/+"), 1, BRK_SUB_RAP, 0), 0);
	assert_int_equal(brk_publish(&e->b, &p), 0);
	assert_int_equal(r.n, 2); /* the retained copy on re-subscribe, then the live one */
	assert_true(r.retain);
	brk_client_free(c, false);
}

static void test_offline_queue_and_will(void **state)
{
	struct env *e = *state;
	struct rec r = { .n = 0 }, w = { .n = 0 };
	struct brk_client *watch = client(e, "watch", &w, 0, true, NULL);
	struct brk_pub will = { .topic = S("will/x"), .payload = S("bye"), .qos = 1 };
	struct brk_client_opts o = {
		.client_id = "x",
		.session_expiry = 60,
		.deliver = on_deliver,
		.arg = &r,
		.will = &will,
	};
	struct brk_client *c, *p;
	bool present = true;

	assert_int_equal(brk_client_subscribe(watch, S("will/#"), 1, 0, 0), 0);
	assert_int_equal(brk_client_new(&e->b, &o, &c, &present), 0);
	assert_false(present);
	assert_int_equal(brk_client_subscribe(c, S("q"), 1, 0, 0), 0);
	brk_client_free(c, true); /* abnormal: the will goes out */
	assert_int_equal(w.n, 1);
	assert_string_equal(w.payload, "bye");
	p = client(e, "p", &w, 0, true, NULL);
	pub(p, "q", "queued1", 1, false);
	pub(p, "q", "queued0", 0, false); /* QoS 0 is not queued */
	pub(p, "q", "queued2", 2, false);
	c = client(e, "x", &r, 60, false, &present);
	assert_true(present);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.payload, "queued2");
	brk_client_free(c, false);
	brk_client_free(p, false);
	brk_client_free(watch, false);
}

/* Persistence hooks recorded. */
struct prec {
	unsigned int retained_set, session_save, session_delete, msg_add, msg_del;
	uint8_t blob[256];
	size_t blob_len;
	uint64_t last_seq;
};

static void p_retained(void *arg, const struct brk_pub *pub)
{
	(void)pub;
	((struct prec *)arg)->retained_set++;
}

static void p_save(void *arg, const char *id, const void *blob, size_t len)
{
	struct prec *p = arg;

	(void)id;
	p->session_save++;
	if (len <= sizeof(p->blob)) {
		memcpy(p->blob, blob, len);
		p->blob_len = len;
	}
}

static void p_delete(void *arg, const char *id)
{
	(void)id;
	((struct prec *)arg)->session_delete++;
}

static void p_add(void *arg, const char *id, uint64_t seq, const struct brk_pub *pub, uint16_t pid,
		  uint8_t state)
{
	(void)id;
	(void)pub;
	(void)pid;
	(void)state;
	((struct prec *)arg)->msg_add++;
	((struct prec *)arg)->last_seq = seq;
}

static void p_del(void *arg, const char *id, uint64_t seq)
{
	(void)id;
	(void)seq;
	((struct prec *)arg)->msg_del++;
}

static const struct brk_persist_ops pops = { p_retained, p_save, p_delete, p_add, p_del };

static void test_persistence_hooks_and_restore(void **state)
{
	struct env *e = *state;
	struct prec pr;
	struct rec r = { .n = 0 };
	struct brk_client *c, *p;
	struct brk_pub rp = { .topic = S("keep"), .payload = S("v"), .retain = true };
	struct brk_pub qp = { .topic = S("q/1"), .payload = S("m"), .qos = 1 };
	struct brk env2;
	struct brk_config cfg;
	bool present;

	memset(&pr, 0, sizeof(pr));
	brk_set_persist(&e->b, &pops, &pr);
	assert_int_equal(brk_publish(&e->b, &rp), 0);
	assert_int_equal(pr.retained_set, 1);
	c = client(e, "dur", &r, 3600, true, NULL);
	assert_int_equal(brk_client_subscribe(c, S("q/#"), 1, 0, 5), 0);
	assert_true(pr.session_save >= 1);
	brk_client_free(c, false);
	p = client(e, "p", &r, 0, true, NULL);
	assert_int_equal(brk_client_publish(p, &qp), 0);
	assert_int_equal(pr.msg_add, 1);
	brk_client_free(p, false);

	/* A second broker restored from what the hooks saw. */
	brk_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	assert_int_equal(
		brk__init(&env2, NULL, &cfg, NULL, &(const struct brk_clock){ fake_ms, &e->now }),
		0);
	assert_int_equal(brk_restore_retained(&env2, &rp), 0);
	assert_int_equal(brk_restore_session(&env2, "dur", pr.blob, pr.blob_len), 0);
	assert_int_equal(brk_restore_session_msg(&env2, "dur", pr.last_seq, &qp, 0, BRK_MSG_QUEUED),
			 0);
	brk_set_persist(&env2, &pops, &pr);
	memset(&r, 0, sizeof(r));
	{
		struct brk_client_opts o = {
			.client_id = "dur",
			.session_expiry = 3600,
			.deliver = on_deliver,
			.arg = &r,
		};

		assert_int_equal(brk_client_new(&env2, &o, &c, &present), 0);
	}
	assert_true(present);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.topic, "q/1");
	assert_int_equal(pr.msg_del, 1);
	r.n = 0;
	pub(c, "q/2", "live", 1, false);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ids[0], 5);
	assert_int_equal(brk_client_subscribe(c, S("keep"), 0, 0, 0), 0);
	assert_string_equal(r.payload, "v");
	brk_client_free(c, false);
	brk__fini(&env2);
	/* Corrupt blobs are refused. */
	assert_int_equal(brk_restore_session(&e->b, "bad", "\x09", 1), -EINVAL);
}

struct relay {
	struct brk_client *self;
	unsigned int n;
};

/* Republishes what arrives on in/# to out/x: a publish inside a delivery. */
static void relay_deliver(void *arg, const struct brk_delivery *d)
{
	struct relay *rl = arg;
	struct brk_pub p = { .topic = S("out/x"), .payload = d->payload, .qos = 1 };

	rl->n++;
	if (d->topic.len > 3 && !memcmp(d->topic.p, "in/", 3))
		assert_int_equal(brk_client_publish(rl->self, &p), 0);
}

static void test_nested_publish_from_callback(void **state)
{
	struct env *e = *state;
	struct relay r1 = { 0 }, r2 = { 0 };
	struct rec out = { .n = 0 };
	struct brk_client_opts o = { .client_id = "r1", .deliver = relay_deliver, .arg = &r1 };
	struct brk_client *obs = client(e, "obs", &out, 0, true, NULL);

	assert_int_equal(brk_client_new(&e->b, &o, &r1.self, NULL), 0);
	o.client_id = "r2";
	o.arg = &r2;
	assert_int_equal(brk_client_new(&e->b, &o, &r2.self, NULL), 0);
	assert_int_equal(brk_client_subscribe(r1.self, S("in/#"), 1, 0, 0), 0);
	assert_int_equal(brk_client_subscribe(r2.self, S("in/#"), 1, 0, 0), 0);
	assert_int_equal(brk_client_subscribe(obs, S("out/#"), 1, 0, 0), 0);
	pub(obs, "in/a", "z", 1, false);
	assert_int_equal(r1.n, 1);
	assert_int_equal(r2.n, 1);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.payload, "z");
	brk_client_free(r1.self, false);
	brk_client_free(r2.self, false);
	brk_client_free(obs, false);
}

/* Clears every retained message it is handed: a publish inside the retained walk of its own subscribe. */
static void clearer_deliver(void *arg, const struct brk_delivery *d)
{
	struct relay *rl = arg;
	struct brk_pub p = { .topic = d->topic, .payload = S(""), .qos = 0, .retain = true };

	rl->n++;
	if (d->payload.len)
		assert_int_equal(brk_client_publish(rl->self, &p), 0);
}

static void test_clear_retained_inside_retained_delivery(void **state)
{
	struct env *e = *state;
	struct relay rl = { 0 };
	struct brk_client_opts o = { .client_id = "clr", .deliver = clearer_deliver, .arg = &rl };
	struct brk_stats st;
	char topic[32];
	unsigned int i;

	for (i = 0; i < 100; i++) {
		struct brk_pub p = { .payload = S("cfg"), .retain = true };

		snprintf(topic, sizeof(topic), "ha/%c/n%u/config", 'a' + i % 3, i);
		p.topic = (struct gw_slice){ (const uint8_t *)topic, strlen(topic) };
		assert_int_equal(brk_publish(&e->b, &p), 0);
	}
	brk_get_stats(&e->b, &st);
	assert_true(st.retained >= 100);
	assert_int_equal(brk_client_new(&e->b, &o, &rl.self, NULL), 0);
	assert_int_equal(brk_client_subscribe(rl.self, S("ha/#"), 0, 0, 0), 0);
	/* Each of the 100 once (past the 64 collected without allocation), then its own empty publishes (live, retain as published off). */
	assert_true(rl.n >= 100 && rl.n <= 200);
	brk_get_stats(&e->b, &st);
	rl.n = 0;
	assert_int_equal(brk_client_subscribe(rl.self, S("ha/+/+/config"), 0, 0, 0), 0);
	assert_int_equal(rl.n, 0);
	brk_client_free(rl.self, false);
}

static void test_stats_and_sys(void **state)
{
	struct env *e = *state;
	struct rec r = { .n = 0 };
	struct brk_client *c = client(e, "s", &r, 0, true, NULL);
	struct brk_stats st;

	assert_int_equal(brk_client_subscribe(c, S("$SYS/broker/uptime"), 0, 0, 0), 0);
	brk__sys_publish(&e->b, e->now + 5000);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(r.payload, " seconds"));
	brk_get_stats(&e->b, &st);
	assert_int_equal(st.subscriptions, 1);
	assert_true(st.retained >= 11);
	brk_client_free(c, false);
}

/* An in-process subscriber that takes the hold of every QoS >= 1 delivery. */
struct holder {
	struct brk_hold *h[8];
	unsigned int n;
};

static void hold_deliver(void *arg, const struct brk_delivery *d)
{
	struct holder *hd = arg;

	if (d->hold && hd->n < 8)
		hd->h[hd->n++] = brk_hold_take(d);
}

struct acked {
	unsigned int n;
	int status;
	struct brk_client *again; /* publish once more from the callback */
};

static void on_acked(void *arg, int status)
{
	struct acked *ak = arg;
	struct brk_pub p = { .topic = S("fwd/again"), .payload = S("2"), .qos = 1 };

	ak->n++;
	ak->status = status;
	if (ak->again) {
		struct brk_client *c = ak->again;

		ak->again = NULL;
		assert_int_equal(brk_client_publish(c, &p), 0);
	}
}

static void test_publish_acked(void **state)
{
	struct env *e = *state;
	struct holder h1 = { .n = 0 }, h2 = { .n = 0 };
	struct brk_client_opts o = { .client_id = "up1", .deliver = hold_deliver, .arg = &h1 };
	struct brk_client *u1, *u2, *pc;
	struct rec r = { .n = 0 };
	struct acked ak = { .n = 0 };
	struct brk_pub p = { .topic = S("fwd/a"), .payload = S("1"), .qos = 1 };
	struct brk_config cfg;

	pc = client(e, "sn-client", &r, 0, true, NULL);
	/* Nobody holds it: the callback runs before the call returns. */
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), 0);
	assert_int_equal(ak.n, 1);
	assert_int_equal(ak.status, 0);

	assert_int_equal(brk_client_new(&e->b, &o, &u1, NULL), 0);
	o.client_id = "up2";
	o.arg = &h2;
	assert_int_equal(brk_client_new(&e->b, &o, &u2, NULL), 0);
	assert_int_equal(brk_client_subscribe(u1, S("fwd/#"), 1, 0, 0), 0);
	assert_int_equal(brk_client_subscribe(u2, S("fwd/a"), 2, 0, 0), 0);

	/* Two holders: the callback waits for both, then runs once. */
	ak.n = 0;
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), 0);
	assert_int_equal(h1.n, 1);
	assert_int_equal(h2.n, 1);
	assert_int_equal(ak.n, 0);
	brk_hold_release(h2.h[0]);
	assert_int_equal(ak.n, 0);
	brk_hold_release(h1.h[0]);
	assert_int_equal(ak.n, 1);
	brk_hold_release(h1.h[0]); /* released already: ignored */
	assert_int_equal(ak.n, 1);

	/* QoS 0: no hold can be taken, so at once. */
	ak.n = 0;
	p.qos = 0;
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), 0);
	assert_int_equal(ak.n, 1);
	assert_int_equal(h1.n, 1);
	p.qos = 1;

	/* The callback may publish (and that publish is held in turn). */
	ak.n = 0;
	ak.again = pc;
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), 0);
	assert_int_equal(h1.n, 2);
	brk_hold_release(h2.h[1]);
	brk_hold_release(h1.h[1]);
	assert_int_equal(ak.n, 1);
	assert_int_equal(h1.n, 2); /* fwd/again reached u1, without a hold */

	/* The publisher may go before the holds do: the callback still runs once. */
	ak.n = 0;
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), 0);
	brk_client_free(pc, false);
	brk_hold_release(h1.h[2]);
	brk_hold_release(h2.h[2]);
	assert_int_equal(ak.n, 1);

	/* Errors: the callback is never called. */
	pc = client(e, "sn-client", &r, 0, true, NULL);
	ak.n = 0;
	p.topic = S("bad/+");
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), -EINVAL);
	p.topic = S("fwd/a");
	assert_int_equal(brk_client_publish_acked(pc, &p, NULL, NULL), -EINVAL);
	assert_int_equal(ak.n, 0);

	/* A hold outliving the broker: released later, the callback runs and nothing leaks. */
	assert_int_equal(brk_client_publish_acked(pc, &p, on_acked, &ak), 0);
	assert_int_equal(h1.n, 4);
	brk_client_free(pc, false);
	brk_client_free(u1, false);
	brk_client_free(u2, false);
	brk__fini(&e->b);
	assert_int_equal(ak.n, 0);
	brk_hold_release(h1.h[3]);
	brk_hold_release(h2.h[3]);
	assert_int_equal(ak.n, 1);
	assert_int_equal(gw_mem_used(), sizeof(*e)); /* all but the test's own env */
	/* teardown finalises again: an empty broker. */
	brk_config_defaults(&cfg);
	assert_int_equal(
		brk__init(&e->b, NULL, &cfg, NULL, &(const struct brk_clock){ fake_ms, &e->now }),
		0);
}

static struct brk_acl *acl_of(const char *text)
{
	struct brk_acl *acl = NULL;
	unsigned int line = 0;
	char err[128];

	assert_int_equal(brk_acl_parse(text, strlen(text), &acl, &line, err, sizeof(err)), 0);
	return acl;
}

static struct brk_client *subject(struct env *e, const char *id, const char *user, struct rec *r)
{
	struct brk_client_opts o = {
		.client_id = id,
		.clean_start = true,
		.deliver = on_deliver,
		.arg = r,
		.acl = true,
		.username = user,
	};
	struct brk_client *c;

	assert_int_equal(brk_client_new(&e->b, &o, &c, NULL), 0);
	return c;
}

/*
 * In-process clients made with opts.acl (MQTT-SN, CoAP) are under the ACL
 * as network clients are: %c patterns, user rules, publish, subscribe,
 * deliveries, wills, anonymous publishers; others stay trusted; a reload
 * (brk_set_acl) applies to connected clients at once.
 */
static void test_acl_subjects(void **state)
{
	struct env *e = *state;
	struct brk_acl *acl = acl_of("topic read public/#\n"
				     "pattern readwrite dev/%c/#\n"
				     "topic write anon/#\n"
				     "user op\n"
				     "topic readwrite plc/#\n");
	struct brk_acl *acl2;
	struct rec rs = { .n = 0 }, rt = { .n = 0 }, ro = { .n = 0 };
	struct brk_client *sn, *trusted, *op;
	struct brk_pub p = { .topic = S("plc/boiler/setpoint/set"), .payload = S("42") };
	struct brk_pub will = { .topic = S("plc/x"), .payload = S("gone") };
	struct brk_client_opts wo = {
		.client_id = "w", .deliver = on_deliver, .arg = &rs, .acl = true, .will = &will
	};
	struct brk_client *w;
	struct brk_stats st;

	/* Without an ACL, opts.acl changes nothing. */
	sn = subject(e, "sn1", NULL, &rs);
	assert_int_equal(brk_client_publish(sn, &p), 0);
	brk_client_free(sn, false);

	assert_int_equal(brk_set_acl(&e->b, acl), 0);
	sn = subject(e, "sn1", NULL, &rs);
	trusted = client(e, "adapter", &rt, 0, true, NULL);
	op = subject(e, "hmi", "op", &ro);

	/* The MQTT-SN client may not write a PLC register; the trusted adapter may. */
	assert_int_equal(brk_client_publish(sn, &p), -EACCES);
	assert_int_equal(brk_client_publish(op, &p), 0);
	assert_int_equal(brk_client_publish(trusted, &p), 0);
	/* Subscriptions: only what a read rule covers. */
	assert_int_equal(brk_client_subscribe(sn, S("plc/#"), 0, 0, 0), -EACCES);
	assert_int_equal(brk_client_subscribe(sn, S("#"), 0, 0, 0), -EACCES);
	assert_int_equal(brk_client_subscribe(sn, S("public/#"), 0, 0, 0), 0);
	assert_int_equal(brk_client_subscribe(sn, S("dev/sn1/#"), 0, 0, 0), 0);
	assert_int_equal(brk_client_subscribe(sn, S("dev/other/#"), 0, 0, 0), -EACCES);
	assert_int_equal(brk_client_subscribe(trusted, S("#"), 0, 0, 0), 0);
	/* %c: its own branch, read and write. */
	pub(sn, "dev/sn1/t", "21", 0, false);
	assert_int_equal(rs.n, 1);
	assert_int_equal(rt.n, 1);
	/* Anonymous QoS -1 publishers: only rules for every client, no pattern. */
	p.topic = S("anon/x");
	assert_int_equal(brk_publish_anon(&e->b, &p), 0);
	p.topic = S("dev/sn1/t");
	assert_int_equal(brk_publish_anon(&e->b, &p), -EACCES);
	/* A will it may not publish is dropped, the client accepted. */
	assert_int_equal(brk_client_new(&e->b, &wo, &w, NULL), 0);
	brk_client_free(w, true);
	assert_string_equal(rt.topic, "anon/x");

	/* A reload that revokes public/# reaches the connected client at once. */
	acl2 = acl_of("pattern readwrite dev/%c/#\nuser op\ntopic readwrite plc/#\n");
	assert_int_equal(brk_set_acl(&e->b, acl2), 0);
	brk_acl_free(acl);
	rs.n = 0;
	pub(trusted, "public/news", "x", 0, false);
	assert_int_equal(rs.n, 0);
	pub(trusted, "dev/sn1/cmd", "x", 0, false);
	assert_int_equal(rs.n, 1);
	/* The user name is kept across the rebuild. */
	p.topic = S("plc/boiler/setpoint/set");
	assert_int_equal(brk_client_publish(op, &p), 0);
	assert_int_equal(brk_client_publish(sn, &p), -EACCES);

	brk_get_stats(&e->b, &st);
	/* 2 PUBLISHes, 3 subscriptions, 1 anonymous PUBLISH, 1 will. */
	assert_int_equal(st.acl_denied, 7);
	brk_client_free(sn, false);
	brk_client_free(trusted, false);
	brk_client_free(op, false);
	assert_int_equal(brk_set_acl(&e->b, NULL), 0);
	brk_acl_free(acl2);
}

/*
 * A message without properties carries none (13 bytes of header, then topic
 * and payload); one with properties has them after its payload, 8-byte
 * aligned, whatever the lengths before; empty MQTT 5 properties count as none.
 */
static void test_msg_layout(void **state)
{
	static const uint8_t ud[] = { 0, 1, 'k', 0, 1, 'v' };
	struct brk_msg_props none = { 0 }, pp = {
		.has_payload_format = true,
		.payload_format = 1,
		.has_expiry = true,
		.expiry = 30,
		.content_type = gw_slice_cstr("text/plain"),
		.correlation_data = gw_slice_cstr("abc"),
		.user_props = { ud, sizeof(ud) },
	};
	struct brk_pub pub = { .topic = gw_slice_cstr("a/b"), .payload = gw_slice_cstr("21.5") };
	const struct brk_msg_props *mp;
	struct brk_msg *m;
	size_t tl, pl;

	(void)state;
	m = brk__msg_new(&pub, 1000);
	assert_non_null(m);
	assert_false(m->has_props);
	assert_null(brk__msg_props(m));
	assert_int_equal(brk__msg_expire_at(m), 0);
	assert_int_equal(brk__msg_expiry_left(m, 5000), 0);
	assert_string_equal(m->topic, "a/b");
	assert_memory_equal(brk__msg_payload(m), "21.5", 4);
	assert_int_equal(gw_mem_used() >= offsetof(struct brk_msg, topic) + 4 + 4, 1);
	brk__msg_unref(m);

	pub.props = &none;
	m = brk__msg_new(&pub, 1000);
	assert_false(m->has_props);
	brk__msg_unref(m);

	pub.props = &pp;
	for (tl = 1; tl <= 9; tl++) {
		for (pl = 0; pl <= 9; pl++) {
			pub.topic = (struct gw_slice){ (const uint8_t *)"tttttttttt", tl };
			pub.payload = (struct gw_slice){ (const uint8_t *)"pppppppppp", pl };
			m = brk__msg_new(&pub, 1000);
			assert_non_null(m);
			assert_true(m->has_props);
			mp = brk__msg_props(m);
			assert_int_equal((uintptr_t)brk__msg_ext(m) % 8, 0);
			assert_true((const uint8_t *)brk__msg_ext(m) >= brk__msg_payload(m) + pl);
			assert_int_equal(m->topic_len, tl);
			assert_int_equal(m->payload_len, pl);
			assert_memory_equal(brk__msg_payload(m), "pppppppppp", pl);
			assert_true(mp->has_payload_format && mp->payload_format == 1);
			assert_true(mp->has_expiry && mp->expiry == 30);
			assert_int_equal(brk__msg_expire_at(m), 31000);
			assert_int_equal(brk__msg_expiry_left(m, 11000), 20);
			assert_int_equal(mp->content_type.len, 10);
			assert_memory_equal(mp->content_type.p, "text/plain", 10);
			assert_null(mp->response_topic.p);
			assert_memory_equal(mp->correlation_data.p, "abc", 3);
			assert_memory_equal(mp->user_props.p, ud, sizeof(ud));
			/* The slices live inside the message, not in the caller's memory. */
			assert_ptr_not_equal(mp->content_type.p, pp.content_type.p);
			assert_ptr_equal(mp->user_props.p + sizeof(ud),
					 (const uint8_t *)(brk__msg_ext(m) + 1) + 19);
			brk__msg_unref(m);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_layout),
		cmocka_unit_test_setup_teardown(test_pub_sub_and_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained_and_rh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_queue_and_will, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence_hooks_and_restore, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nested_publish_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_and_sys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_retained_inside_retained_delivery, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_publish_acked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_subjects, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
