/*
 * test_coap_dev.c - the CoAP adapter's sans-I/O core (adapters/coap/
 * coap_dev.c) with a fake clock and a fake transport: observe and poll
 * schedules, re-registration (Max-Age, ended observation, a device that
 * does not observe), shared resources, errors once per change, timeouts,
 * offline after retries, degrade and recovery, unparsable payloads, the
 * per-device figures of /metrics.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "adapters/coap/coap_int.h"

#define MAXR 64

struct rec {
	const struct ad_point *pt;
	enum ad_quality q;
	struct ad_value v;
	char s[64];
};

struct fake {
	struct ad_map map;
	struct ad_device dev;
	struct ad_coap_device dk;
	struct ad_point pts[4];
	struct ad_point *ptp[4];
	struct ad_coap_point pk[4];
	struct ad_device *devp;
	struct ad_coap_core core;
	/* what the core did */
	struct ad_coap_res *sent[MAXR];
	bool sent_obs[MAXR];
	unsigned int n_sent, n_forgot;
	struct rec rd[MAXR];
	unsigned int n_rd;
	int status[MAXR];
	unsigned int n_status;
	enum ad_coap_note_kind notes[MAXR];
	unsigned int n_notes;
	int send_rc;
};

static int f_send(void *arg, struct ad_coap_res *r, bool observe)
{
	struct fake *f = arg;

	assert_true(f->n_sent < MAXR);
	f->sent[f->n_sent] = r;
	f->sent_obs[f->n_sent++] = observe;
	return f->send_rc;
}

static void f_forget(void *arg, struct ad_coap_res *r)
{
	(void)r;
	((struct fake *)arg)->n_forgot++;
}

static void f_reading(void *arg, const struct ad_reading *rd)
{
	struct fake *f = arg;
	struct rec *r = &f->rd[f->n_rd++];

	assert_true(f->n_rd < MAXR);
	r->pt = rd->point;
	r->q = rd->quality;
	r->v = rd->value;
	if (rd->value.type == AD_VAL_STRING) {
		size_t n = GW_MIN(rd->value.s.len, sizeof(r->s) - 1);

		memcpy(r->s, rd->value.s.p, n);
		r->s[n] = 0;
	}
}

static void f_status(void *arg, const struct ad_device *d, bool online)
{
	struct fake *f = arg;

	(void)d;
	f->status[f->n_status++] = online;
}

static void f_note(void *arg, const struct ad_coap_note *n)
{
	struct fake *f = arg;

	if (f->n_notes < MAXR)
		f->notes[f->n_notes++] = n->kind;
}

static const struct ad_coap_core_ops ops = { f_send, f_forget, f_reading, f_status, f_note };

/* A device polled every second, timeout 2 s, retries 2, degraded after 3 for 30 s. */
static struct fake *fake_new(unsigned int n_pts)
{
	struct fake *f = calloc(1, sizeof(*f));
	unsigned int i;

	assert_non_null(f);
	f->dk = (struct ad_coap_device){
		.timeout_ms = 2000, .retries = 2, .degrade_after = 3, .degrade_for_ms = 30000
	};
	f->dev = (struct ad_device){ .name = (char *)"d",
				     .protocol = AD_PROTO_COAP,
				     .poll_ms = 1000,
				     .ext = &f->dk,
				     .points = f->ptp,
				     .n_points = n_pts };
	for (i = 0; i < n_pts; i++) {
		f->pk[i] =
			(struct ad_coap_point){ .path = (char *)"/r", .format = AD_COAP_FMT_AUTO };
		f->pts[i] = (struct ad_point){ .name = (char *)"p",
					       .device = &f->dev,
					       .type = AD_PT_FLOAT64,
					       .scale = 1,
					       .ext = &f->pk[i] };
		f->ptp[i] = &f->pts[i];
	}
	f->devp = &f->dev;
	f->map.devices = &f->devp;
	f->map.n_devices = 1;
	return f;
}

static void fake_init(struct fake *f)
{
	assert_int_equal(ad_coap_core_init(&f->core, &f->map, &ops, f), 0);
}

static void fake_free(struct fake *f)
{
	ad_coap_core_fini(&f->core);
	free(f);
}

static struct ad_coap_clock at(int64_t ms)
{
	return (struct ad_coap_clock){ .mono_ms = ms, .wall_ms = 1700000000000 + ms };
}

static int64_t answer(struct fake *f, struct ad_coap_res *r, int64_t t, unsigned int code, int cf,
		      bool obs, int64_t max_age, const char *payload)
{
	return ad_coap_core_response(&f->core, r, at(t), code, cf, obs, max_age,
				     (const uint8_t *)payload, strlen(payload));
}

#define CONTENT 69    /* 2.05 */
#define NOT_FOUND 132 /* 4.04 */

static void test_observe_cycle(void **state)
{
	struct fake *f = fake_new(1);
	struct ad_coap_res *r;
	int64_t due;

	(void)state;
	f->pk[0].observe = true;
	fake_init(f);
	due = ad_coap_core_tick(&f->core, at(0));
	assert_int_equal(f->n_sent, 1);
	assert_true(f->sent_obs[0]);
	assert_int_equal(due, 2000); /* the request's timeout */
	r = f->sent[0];
	due = answer(f, r, 10, CONTENT, AD_COAP_CF_TEXT, true, 5000, "21.5");
	assert_int_equal(f->n_rd, 1);
	assert_true(f->rd[0].q == AD_Q_GOOD && f->rd[0].v.d == 21.5);
	assert_int_equal(f->n_status, 1);
	assert_int_equal(f->status[0], 1);
	assert_int_equal(due, 10 + 5000 + 2000); /* Max-Age + slack */
	/* notifications: readings, no new request */
	answer(f, r, 500, CONTENT, AD_COAP_CF_TEXT, true, 5000, "22");
	answer(f, r, 900, CONTENT, AD_COAP_CF_TEXT, true, 5000, "23");
	assert_int_equal(f->n_rd, 3);
	assert_int_equal(f->core.stats.notifications, 2);
	ad_coap_core_tick(&f->core, at(5000));
	assert_int_equal(f->n_sent, 1);
	/* Max-Age passes without a notification (a device that restarted): register again */
	due = ad_coap_core_tick(&f->core, at(900 + 5000 + 2000));
	assert_int_equal(f->n_sent, 2);
	assert_true(f->sent_obs[1]);
	assert_int_equal(f->n_forgot, 1);
	assert_int_equal(f->notes[f->n_notes - 1], AD_COAP_NOTE_REREGISTER);
	answer(f, r, 8000, CONTENT, AD_COAP_CF_TEXT, true, -1, "24");
	assert_int_equal(f->n_rd, 4);
	assert_int_equal(f->core.stats.registrations, 2);
	fake_free(f);
}

static void test_observation_ended(void **state)
{
	struct fake *f = fake_new(1);
	struct ad_coap_res *r;
	int64_t due;

	(void)state;
	f->pk[0].observe = true;
	fake_init(f);
	ad_coap_core_tick(&f->core, at(0));
	r = f->sent[0];
	answer(f, r, 10, CONTENT, AD_COAP_CF_TEXT, true, -1, "1");
	/* a notification without Observe ends it: value taken, register again after poll */
	due = answer(f, r, 100, CONTENT, AD_COAP_CF_TEXT, false, -1, "2");
	assert_int_equal(f->n_rd, 2);
	assert_int_equal(due, 1100);
	assert_int_equal(f->notes[f->n_notes - 1], AD_COAP_NOTE_OBS_ENDED);
	ad_coap_core_tick(&f->core, at(1100));
	assert_int_equal(f->n_sent, 2);
	assert_true(f->sent_obs[1]);
	/* an error notification (the resource went away) ends it too: bad */
	answer(f, r, 1110, CONTENT, AD_COAP_CF_TEXT, true, -1, "3");
	due = answer(f, r, 1200, NOT_FOUND, AD_COAP_CF_NONE, false, -1, "");
	assert_int_equal(f->rd[f->n_rd - 1].q, AD_Q_BAD);
	assert_int_equal(due, 2200);
	fake_free(f);
}

static void test_not_observable_is_polled(void **state)
{
	struct fake *f = fake_new(1);
	unsigned int i, notes = 0;

	(void)state;
	f->pk[0].observe = true;
	fake_init(f);
	for (i = 0; i < 3; i++) {
		ad_coap_core_tick(&f->core, at(i * 1000));
		assert_int_equal(f->n_sent, i + 1);
		answer(f, f->sent[i], i * 1000, CONTENT, AD_COAP_CF_TEXT, false, -1, "7");
	}
	for (i = 0; i < f->n_notes; i++)
		notes += f->notes[i] == AD_COAP_NOTE_NO_OBSERVE;
	assert_int_equal(notes, 1); /* said once */
	assert_int_equal(f->n_rd, 3);
	fake_free(f);
}

static void test_poll_schedule(void **state)
{
	struct fake *f = fake_new(1);
	int64_t due;

	(void)state;
	fake_init(f);
	ad_coap_core_tick(&f->core, at(0));
	assert_false(f->sent_obs[0]);
	due = answer(f, f->sent[0], 20, CONTENT, AD_COAP_CF_NONE, false, -1, "5");
	assert_int_equal(due, 1020);
	ad_coap_core_tick(&f->core, at(1019));
	assert_int_equal(f->n_sent, 1);
	ad_coap_core_tick(&f->core, at(1020));
	assert_int_equal(f->n_sent, 2);
	fake_free(f);
}

/* Three points on one JSON resource: one GET, three readings; a SenML and a text point. */
static void test_shared_resource(void **state)
{
	struct fake *f = fake_new(3);

	(void)state;
	f->pk[0].json_pointer = (char *)"/t";
	f->pk[1].json_pointer = (char *)"/h";
	f->pk[2].json_pointer = (char *)"/missing";
	fake_init(f);
	assert_int_equal(f->core.devs[0].n_res, 1);
	ad_coap_core_tick(&f->core, at(0));
	assert_int_equal(f->n_sent, 1);
	answer(f, f->sent[0], 5, CONTENT, AD_COAP_CF_JSON, false, -1, "{\"t\":21.5,\"h\":40}");
	assert_int_equal(f->n_rd, 3);
	assert_true(f->rd[0].v.d == 21.5 && f->rd[0].q == AD_Q_GOOD);
	assert_true(f->rd[1].v.d == 40 && f->rd[1].q == AD_Q_GOOD);
	assert_int_equal(f->rd[2].q, AD_Q_BAD);
	assert_int_equal(f->core.stats.parse_errors, 1);
	fake_free(f);
}

static void test_senml_auto(void **state)
{
	struct fake *f = fake_new(2);

	(void)state;
	f->pk[0].senml_name = (char *)"dev/temp";
	f->pk[1].senml_name = (char *)"dev/hum";
	fake_init(f);
	ad_coap_core_tick(&f->core, at(0));
	answer(f, f->sent[0], 5, CONTENT, AD_COAP_CF_SENML_JSON, false, -1,
	       "[{\"bn\":\"dev/\",\"n\":\"temp\",\"v\":20.5},{\"n\":\"hum\",\"v\":33}]");
	assert_int_equal(f->n_rd, 2);
	assert_true(f->rd[0].v.d == 20.5);
	assert_true(f->rd[1].v.d == 33);
	fake_free(f);
}

/* A resource whose Content-Format changes: each payload read by what it says it is. */
static void test_content_format_changes(void **state)
{
	struct fake *f = fake_new(1);

	(void)state;
	f->pk[0].json_pointer = (char *)"/v";
	fake_init(f);
	ad_coap_core_tick(&f->core, at(0));
	answer(f, f->sent[0], 5, CONTENT, AD_COAP_CF_JSON, false, -1, "{\"v\":1}");
	ad_coap_core_tick(&f->core, at(1005));
	answer(f, f->sent[1], 1010, CONTENT, AD_COAP_CF_TEXT, false, -1, "2");
	ad_coap_core_tick(&f->core, at(2010));
	answer(f, f->sent[2], 2015, CONTENT, 60 /* CBOR */, false, -1, "\xa1");
	assert_int_equal(f->n_rd, 3);
	assert_true(f->rd[0].v.d == 1 && f->rd[1].v.d == 2);
	assert_int_equal(f->rd[2].q, AD_Q_BAD);
	fake_free(f);
}

static void test_error_once_per_change(void **state)
{
	struct fake *f = fake_new(1);
	unsigned int i, bad = 0, failed = 0;

	(void)state;
	fake_init(f);
	for (i = 0; i < 3; i++) {
		ad_coap_core_tick(&f->core, at(i * 1000));
		answer(f, f->sent[i], i * 1000, NOT_FOUND, AD_COAP_CF_NONE, false, -1, "");
	}
	for (i = 0; i < f->n_rd; i++)
		bad += f->rd[i].q == AD_Q_BAD;
	for (i = 0; i < f->n_notes; i++)
		failed += f->notes[i] == AD_COAP_NOTE_FAILED;
	assert_int_equal(bad, 1);
	assert_int_equal(failed, 1);
	/* 4.04 is an answer: the device is online */
	assert_int_equal(f->n_status, 1);
	assert_int_equal(f->status[0], 1);
	/* a 5.00 is a new failure: said again, the point is still bad (no new reading) */
	ad_coap_core_tick(&f->core, at(3000));
	answer(f, f->sent[3], 3000, 160, AD_COAP_CF_NONE, false, -1, "");
	assert_int_equal(f->notes[f->n_notes - 1], AD_COAP_NOTE_FAILED);
	assert_int_equal(f->n_rd, 1);
	/* good again */
	ad_coap_core_tick(&f->core, at(4000));
	answer(f, f->sent[4], 4010, CONTENT, AD_COAP_CF_TEXT, false, -1, "1");
	assert_int_equal(f->rd[f->n_rd - 1].q, AD_Q_GOOD);
	fake_free(f);
}

static void test_timeouts_offline_degrade(void **state)
{
	struct fake *f = fake_new(1);
	int64_t t = 0, due;

	(void)state;
	fake_init(f);
	/* first request: no answer within the timeout */
	due = ad_coap_core_tick(&f->core, at(t));
	assert_int_equal(due, 2000);
	due = ad_coap_core_tick(&f->core, at(2000));
	assert_int_equal(f->n_forgot, 1);
	assert_int_equal(f->rd[0].q, AD_Q_BAD);
	assert_int_equal(f->n_status, 0); /* retries = 2: not offline yet */
	assert_int_equal(due, 3000);
	/* second: a NACK (RST): offline */
	ad_coap_core_tick(&f->core, at(3000));
	due = ad_coap_core_failure(&f->core, f->sent[1], at(3001), -ECONNRESET);
	assert_int_equal(f->n_status, 1);
	assert_int_equal(f->status[0], 0);
	assert_int_equal(f->n_rd, 1); /* bad once */
	/* third failure: degraded for 30 s */
	ad_coap_core_tick(&f->core, at(due));
	due = ad_coap_core_failure(&f->core, f->sent[2], at(4002), -ETIMEDOUT);
	assert_int_equal(f->notes[f->n_notes - 1], AD_COAP_NOTE_DEGRADED);
	assert_int_equal(due, 4002 + 30000);
	ad_coap_core_tick(&f->core, at(10000));
	assert_int_equal(f->n_sent, 3);
	/* after degrade_for: tried again, answers: online */
	ad_coap_core_tick(&f->core, at(34002));
	assert_int_equal(f->n_sent, 4);
	answer(f, f->sent[3], 34010, CONTENT, AD_COAP_CF_TEXT, false, -1, "9");
	assert_int_equal(f->status[f->n_status - 1], 1);
	assert_int_equal(f->rd[f->n_rd - 1].q, AD_Q_GOOD);
	/* a late answer to nothing in flight is ignored */
	answer(f, f->sent[3], 34020, CONTENT, AD_COAP_CF_TEXT, false, -1, "10");
	assert_int_equal(f->rd[f->n_rd - 1].v.d, 9);
	fake_free(f);
}

/* An unparsable notification: counted, bad once, the observation goes on. */
static void test_unparsable_notification(void **state)
{
	struct fake *f = fake_new(1);
	struct ad_coap_res *r;

	(void)state;
	f->pk[0].observe = true;
	f->pk[0].format = AD_COAP_FMT_JSON;
	f->pk[0].json_pointer = (char *)"/v";
	fake_init(f);
	ad_coap_core_tick(&f->core, at(0));
	r = f->sent[0];
	answer(f, r, 5, CONTENT, AD_COAP_CF_JSON, true, -1, "{\"v\":1}");
	answer(f, r, 50, CONTENT, AD_COAP_CF_JSON, true, -1, "{\"v\":");
	answer(f, r, 60, CONTENT, AD_COAP_CF_JSON, true, -1, "garbage");
	assert_int_equal(f->core.stats.parse_errors, 2);
	assert_int_equal(f->n_rd, 2);
	assert_int_equal(f->rd[1].q, AD_Q_BAD);
	assert_int_equal(f->rd[1].v.type, AD_VAL_NONE); /* the gateway carries the last good one */
	assert_int_equal(r->state, AD_COAP_OBSERVING);
	answer(f, r, 70, CONTENT, AD_COAP_CF_JSON, true, -1, "{\"v\":3}");
	assert_int_equal(f->rd[2].q, AD_Q_GOOD);
	fake_free(f);
}

/* Resources of one device failing together (the device is down) are one failed poll. */
static void test_failures_within_a_poll_count_once(void **state)
{
	struct fake *f = fake_new(3);

	(void)state;
	f->pk[1].path = (char *)"/r2";
	f->pk[2].path = (char *)"/r3";
	f->dk.retries = 2;
	fake_init(f);
	assert_int_equal(f->core.devs[0].n_res, 3);
	ad_coap_core_tick(&f->core, at(0));
	assert_int_equal(f->n_sent, 3);
	ad_coap_core_failure(&f->core, f->sent[0], at(10), -ECONNREFUSED);
	ad_coap_core_failure(&f->core, f->sent[1], at(11), -ECONNREFUSED);
	ad_coap_core_failure(&f->core, f->sent[2], at(12), -ECONNREFUSED);
	assert_int_equal(f->core.devs[0].fails, 1);
	assert_int_equal(f->n_status, 0); /* retries = 2: one failed poll is not offline */
	/* the next poll fails too: offline */
	ad_coap_core_tick(&f->core, at(1012));
	ad_coap_core_failure(&f->core, f->sent[3], at(1013), -ECONNREFUSED);
	assert_int_equal(f->n_status, 1);
	assert_int_equal(f->status[0], 0);
	fake_free(f);
}

/* A send that fails at once is a transport failure. */
static void test_send_fails(void **state)
{
	struct fake *f = fake_new(1);

	(void)state;
	fake_init(f);
	f->send_rc = -EHOSTUNREACH;
	assert_int_equal(ad_coap_core_tick(&f->core, at(0)), 1000);
	assert_int_equal(f->rd[0].q, AD_Q_BAD);
	assert_int_equal(f->core.stats.failures, 1);
	fake_free(f);
}

/* The device's figures for /metrics: each kind of end of a polled GET, with a fake clock. */
static void test_device_stats_poll(void **state)
{
	struct fake *f = fake_new(1);
	struct ad_device other = { .name = (char *)"other" };
	struct ad_device_stats st;
	unsigned int k;

	(void)state;
	f->dk.degrade_after = 0;
	f->dk.retries = 10;
	fake_init(f);
	assert_int_equal(ad_coap_core_device_stats(&f->core, &f->dev, &st), 0);
	assert_int_equal(st.requests, 0);
	assert_int_equal(st.latency.count, 0);
	assert_int_equal(ad_coap_core_device_stats(&f->core, &other, &st), -ENOENT);
	/* 2.05 after 30 ms: one request, latency 30 ms (bucket le=0.05), no error */
	ad_coap_core_tick(&f->core, at(0));
	answer(f, f->sent[0], 30, CONTENT, AD_COAP_CF_TEXT, false, -1, "21.5");
	/* 4.04 after 10 ms: an exception, still an answer (timed) */
	ad_coap_core_tick(&f->core, at(1030));
	answer(f, f->sent[1], 1040, NOT_FOUND, AD_COAP_CF_NONE, false, -1, "");
	/* 2.05 whose payload the point cannot read: a parse error, timed */
	ad_coap_core_tick(&f->core, at(2040));
	answer(f, f->sent[2], 2045, CONTENT, AD_COAP_CF_TEXT, false, -1, "warm");
	/* no answer: the core times it out after 2 s, not timed */
	ad_coap_core_tick(&f->core, at(3045));
	ad_coap_core_tick(&f->core, at(5045));
	/* RST, then a refused DTLS handshake, then a send that fails at once */
	ad_coap_core_tick(&f->core, at(6045));
	ad_coap_core_failure(&f->core, f->sent[4], at(6046), -ECONNRESET);
	ad_coap_core_tick(&f->core, at(7046));
	ad_coap_core_failure(&f->core, f->sent[5], at(7047), -EACCES);
	f->send_rc = -EHOSTUNREACH;
	ad_coap_core_tick(&f->core, at(8047));
	assert_int_equal(f->n_sent, 7);
	/* a late report of an exchange given up counts nothing */
	ad_coap_core_failure(&f->core, f->sent[3], at(8050), -ETIMEDOUT);
	assert_int_equal(ad_coap_core_device_stats(&f->core, &f->dev, &st), 0);
	assert_int_equal(st.requests, 7);
	assert_int_equal(st.errors[AD_ERR_EXCEPTION], 1);
	assert_int_equal(st.errors[AD_ERR_PARSE], 1);
	assert_int_equal(st.errors[AD_ERR_TIMEOUT], 1);
	assert_int_equal(st.errors[AD_ERR_TRANSPORT], 2);
	assert_int_equal(st.errors[AD_ERR_TLS], 1);
	assert_int_equal(st.errors[AD_ERR_OVERRUN], 0);
	/* the latency of the three answers only: 30 + 10 + 5 ms */
	assert_int_equal(st.latency.count, 3);
	assert_int_equal(st.latency.sum_us, 45000);
	assert_int_equal(st.latency.bucket[3], 1); /* 5 ms: le=0.005 */
	assert_int_equal(st.latency.bucket[4], 1); /* 10 ms: le=0.01 */
	assert_int_equal(st.latency.bucket[6], 1); /* 30 ms: le=0.05 */
	/* the kinds a CoAP device has (overrun is serial's) */
	for (k = 0; k < __AD_ERR_MAX; k++)
		assert_int_equal(!!(st.kinds & AD_ERR_BIT(k)), k != AD_ERR_OVERRUN);
	fake_free(f);
}

/* Observed: the registration's answer is timed, notifications are requests without a latency. */
static void test_device_stats_observe(void **state)
{
	struct fake *f = fake_new(1);
	struct ad_device_stats st;

	(void)state;
	f->pk[0].observe = true;
	fake_init(f);
	ad_coap_core_tick(&f->core, at(0));
	answer(f, f->sent[0], 120, CONTENT, AD_COAP_CF_TEXT, true, 60000, "1");
	answer(f, f->sent[0], 5000, CONTENT, AD_COAP_CF_TEXT, true, 60000, "2");
	answer(f, f->sent[0], 9000, CONTENT, AD_COAP_CF_TEXT, true, 60000, "x");
	/* the device ends the observation with 5.03: an exception, then polled after `poll` */
	answer(f, f->sent[0], 9500, 163, AD_COAP_CF_NONE, false, -1, "");
	assert_int_equal(ad_coap_core_device_stats(&f->core, &f->dev, &st), 0);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.latency.count, 1);
	assert_int_equal(st.latency.sum_us, 120000);
	assert_int_equal(st.errors[AD_ERR_PARSE], 1);
	assert_int_equal(st.errors[AD_ERR_EXCEPTION], 1);
	assert_int_equal(st.errors[AD_ERR_TIMEOUT] + st.errors[AD_ERR_TRANSPORT], 0);
	fake_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_observe_cycle),
		cmocka_unit_test(test_observation_ended),
		cmocka_unit_test(test_not_observable_is_polled),
		cmocka_unit_test(test_poll_schedule),
		cmocka_unit_test(test_shared_resource),
		cmocka_unit_test(test_senml_auto),
		cmocka_unit_test(test_content_format_changes),
		cmocka_unit_test(test_error_once_per_change),
		cmocka_unit_test(test_timeouts_offline_degrade),
		cmocka_unit_test(test_unparsable_notification),
		cmocka_unit_test(test_send_fails),
		cmocka_unit_test(test_failures_within_a_poll_count_once),
		cmocka_unit_test(test_device_stats_poll),
		cmocka_unit_test(test_device_stats_observe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
