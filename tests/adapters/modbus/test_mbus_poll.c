/*
 * test_mbus_poll.c - the sans-I/O Modbus poller (adapters/modbus/mbus_poll.c)
 * driven by a fake clock and a fake device behind a fake transport: the
 * requests it sends are answered by a small Modbus server in this file,
 * framed as Modbus TCP and decoded with the real MBAP codec. Covers the
 * schedule, coalescing, split on exception, late answers, a device that dies
 * and comes back, degradation, overruns, turnaround and writes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/modbus/mbus_poll.h"

/* ------------------------------------------------------------ fake device */

#define MAX_PTS 16
#define MAX_EVS 4096

struct ev {
	const struct ad_point *pt;
	enum ad_quality q;
	struct ad_value v;
	int64_t ts;
};

struct fake {
	/* the device */
	uint16_t regs[256];
	uint8_t coils[256];
	int exc_lo, exc_hi; /* holding addresses answering exception 2 */
	uint8_t write_exc;  /* exception every write gets, 0 none */
	bool dead;
	int dead_unit; /* a unit id that never answers (0: none) */
	int delay_ms;
	/* the transport */
	bool pending;
	struct mbus_xfer x;
	int64_t answer_at;
	uint16_t tid;
	unsigned int sent, resets;
	int64_t sent_at[256];
	uint8_t sent_unit[256];
	/* what came out */
	struct ev evs[MAX_EVS];
	unsigned int n_evs;
	int status[32];
	unsigned int n_status;
	struct ad_cmd_result results[80];
	void *tokens[80];
	unsigned int n_results;
	unsigned int notes[5];
	/* the line */
	struct mbus_clock now;
	struct mbus_line line;
	struct mbus_pdev pd;
	struct mbus_pdev *devs[2];
	/* a second device on the line (fake_add_dev2): unit 2, one point */
	struct ad_device dev2;
	struct mbus_device mdev2;
	struct mbus_pdev pd2;
	struct ad_point pt2;
	struct mbus_point mpt2;
	struct ad_point *ptrs2[1];
	void *mem2;
	uint16_t *data2;
	bool has_dev2;
	void *mem;
	uint16_t *data;
	struct ad_modbus_stats stats;
	struct ad_bus bus;
	struct mbus_bus mbus;
	struct ad_device dev;
	struct mbus_device mdev;
	struct ad_point pts[MAX_PTS];
	struct mbus_point mpts[MAX_PTS];
	struct ad_point *ptrs[MAX_PTS];
};

static int f_send(void *arg, const struct mbus_xfer *x)
{
	struct fake *f = arg;

	assert_false(f->pending);
	if (f->sent < GW_ARRAY_SIZE(f->sent_at)) {
		f->sent_at[f->sent] = f->now.mono_ms;
		f->sent_unit[f->sent] = x->unit;
	}
	f->sent++;
	f->x = *x;
	f->pending = !f->dead && x->unit != f->dead_unit;
	f->answer_at = f->now.mono_ms + f->delay_ms;
	f->tid++;
	return 0;
}

static void f_reset(void *arg)
{
	struct fake *f = arg;

	f->resets++;
	f->pending = false;
}

static void f_reading(void *arg, const struct ad_reading *r)
{
	struct fake *f = arg;

	assert_true(f->n_evs < MAX_EVS);
	f->evs[f->n_evs++] = (struct ev){ r->point, r->quality, r->value, r->ts_ms };
}

static void f_status(void *arg, const struct ad_device *dev, bool online)
{
	struct fake *f = arg;

	(void)dev;
	f->status[f->n_status++] = online;
}

static void f_write_done(void *arg, struct mbus_write *w, const struct ad_cmd_result *res)
{
	struct fake *f = arg;

	assert_true(f->n_results < GW_ARRAY_SIZE(f->results));
	f->tokens[f->n_results] = w->token;
	f->results[f->n_results++] = *res;
	free(w);
}

static void f_note(void *arg, const struct mbus_note *n)
{
	struct fake *f = arg;

	f->notes[n->kind]++;
}

static const struct mbus_poll_ops f_ops = {
	.send = f_send,
	.reset = f_reset,
	.on_reading = f_reading,
	.on_status = f_status,
	.on_write_done = f_write_done,
	.on_note = f_note,
};

/* The fake server: a response PDU for the request in f->x. */
static size_t serve(struct fake *f, uint8_t *pdu)
{
	const struct mbus_xfer *x = &f->x;
	size_t n = 0, i;

	if (x->fc >= 5) {
		if (f->write_exc) {
			pdu[0] = (uint8_t)(x->fc | 0x80);
			pdu[1] = f->write_exc;
			return 2;
		}
		for (i = 0; i < x->count; i++) {
			if (x->fc == MBUS_FC_WRITE_COIL || x->fc == MBUS_FC_WRITE_COILS)
				f->coils[x->addr + i] = x->vals[i] ? 1 : 0;
			else
				f->regs[x->addr + i] = x->vals[i];
		}
		pdu[0] = x->fc;
		pdu[1] = (uint8_t)(x->addr >> 8);
		pdu[2] = (uint8_t)x->addr;
		if (x->fc == MBUS_FC_WRITE_REGISTER) {
			pdu[3] = (uint8_t)(x->vals[0] >> 8);
			pdu[4] = (uint8_t)x->vals[0];
		} else if (x->fc == MBUS_FC_WRITE_COIL) {
			pdu[3] = x->vals[0] ? 0xFF : 0;
			pdu[4] = 0;
		} else {
			pdu[3] = (uint8_t)(x->count >> 8);
			pdu[4] = (uint8_t)x->count;
		}
		return 5;
	}
	if (x->fc == MBUS_FC_READ_HOLDING && (int)x->addr <= f->exc_hi &&
	    (int)(x->addr + x->count - 1) >= f->exc_lo) {
		pdu[0] = 0x83;
		pdu[1] = 2;
		return 2;
	}
	pdu[n++] = x->fc;
	if (x->fc <= MBUS_FC_READ_DISCRETE) {
		pdu[n++] = (uint8_t)((x->count + 7) / 8);
		memset(pdu + n, 0, (x->count + 7) / 8);
		for (i = 0; i < x->count; i++)
			pdu[n + i / 8] |= (uint8_t)(f->coils[x->addr + i] << (i % 8));
		return n + (x->count + 7) / 8;
	}
	pdu[n++] = (uint8_t)(2 * x->count);
	for (i = 0; i < x->count; i++) {
		pdu[n++] = (uint8_t)(f->regs[x->addr + i] >> 8);
		pdu[n++] = (uint8_t)f->regs[x->addr + i];
	}
	return n;
}

/* Frames the answer as Modbus TCP and hands what the MBAP decoder makes of it to the line. */
static int answer(struct fake *f)
{
	uint8_t pdu[MBUS_MAX_PDU], adu[MBUS_TCP_MAX_ADU];
	struct gw_writer w;
	struct mbus_frame fr;
	uint16_t tid = 0;
	size_t n = serve(f, pdu);

	gw_writer_init(&w, adu, sizeof(adu));
	assert_int_equal(mbus_mbap_encode(&w, f->tid, f->x.unit, pdu, n), 0);
	assert_int_equal(mbus_mbap_decode(adu, w.len, &tid, &fr), (int)w.len);
	assert_int_equal(tid, f->tid);
	f->pending = false;
	return mbus_line_response(&f->line, f->now, &fr);
}

/* Runs the clock for @ms, one millisecond at a time, answering when due. */
static void run(struct fake *f, int64_t ms)
{
	int64_t end = f->now.mono_ms + ms;
	int64_t next = 0;

	while (f->now.mono_ms < end) {
		f->now.mono_ms++;
		f->now.wall_ms++;
		if (f->pending && !f->dead && f->now.mono_ms >= f->answer_at) {
			assert_int_equal(answer(f), 0);
			next = 0;
		}
		if (f->now.mono_ms >= next)
			next = mbus_line_due(&f->line, f->now);
		assert_true(next > f->now.mono_ms);
	}
}

static struct ad_point *add_pt(struct fake *f, const char *name, enum ad_area area, uint16_t addr,
			       enum ad_point_type type)
{
	struct ad_point *p = &f->pts[f->dev.n_points];
	struct mbus_point *m = &f->mpts[f->dev.n_points];

	memset(p, 0, sizeof(*p));
	memset(m, 0, sizeof(*m));
	p->name = (char *)name;
	p->device = &f->dev;
	p->ext = m;
	m->area = area;
	m->address = addr;
	p->type = type;
	m->byte_order = AD_BO_ABCD;
	p->scale = 1.0;
	p->writable = true;
	f->ptrs[f->dev.n_points++] = p;
	return p;
}

static struct fake *fake_new(uint32_t poll_ms)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->bus.name = "b";
	f->bus.ext = &f->mbus;
	f->mbus.type = AD_BUS_TCP;
	f->dev.ext = &f->mdev;
	f->dev.name = "d";
	f->dev.bus = &f->bus;
	f->mdev.unit_id = 1;
	f->dev.poll_ms = poll_ms;
	f->mdev.max_gap = 10;
	f->mdev.retries = 1;
	f->dev.points = f->ptrs;
	f->exc_lo = f->exc_hi = -1;
	f->now.mono_ms = 1000;
	f->now.wall_ms = 1700000000000;
	return f;
}

/* Plans the device and starts the line (timeout and turnaround in ms). */
static void fake_start(struct fake *f, uint32_t timeout, uint32_t turnaround)
{
	const struct ad_point *bad = NULL;
	long need = mbus_pdev_need(&f->dev);
	int units;

	void *fit;
	size_t size;

	f->mem = malloc((size_t)need);
	units = mbus_pdev_init(&f->pd, &f->dev, f->mem, (size_t)need, 0, &bad);
	assert_true(units > 0);
	/* As the glue does: the plan moves into room for the requests planned. */
	size = mbus_pdev_size(&f->pd, units);
	if (f->pd.n_reqs < (int)f->dev.n_points)
		assert_true(size < (size_t)need + (size_t)units * sizeof(uint16_t));
	fit = malloc(size);
	assert_int_equal(mbus_pdev_move(&f->pd, fit, size - 1, units), -ENOBUFS);
	assert_ptr_equal(f->pd.order, f->mem);
	memset(fit, 0x5a, size);
	assert_int_equal(mbus_pdev_move(&f->pd, fit, size, units), 0);
	assert_ptr_equal(f->pd.order, fit);
	assert_int_equal(f->pd.data[units - 1], 0);
	memset(f->mem, 0xa5, (size_t)need); /* nothing may read the old memory */
	free(f->mem);
	f->mem = fit;
	f->data = NULL;
	f->devs[0] = &f->pd;
	if (f->has_dev2) {
		need = mbus_pdev_need(&f->dev2);
		f->mem2 = malloc((size_t)need);
		units = mbus_pdev_init(&f->pd2, &f->dev2, f->mem2, (size_t)need, 0, &bad);
		assert_true(units > 0);
		f->data2 = calloc((size_t)units, sizeof(uint16_t));
		f->pd2.data = f->data2;
		f->devs[1] = &f->pd2;
	}
	mbus_line_init(&f->line, &f_ops, f, &f->stats, f->devs, f->has_dev2 ? 2 : 1, timeout,
		       turnaround);
	mbus_line_start(&f->line, f->now);
}

/* A second device on the line, unit 2 with the first device's settings and one point. */
static struct ad_point *fake_add_dev2(struct fake *f)
{
	f->dev2 = f->dev;
	f->mdev2 = f->mdev;
	f->dev2.name = "d2";
	f->dev2.ext = &f->mdev2;
	f->mdev2.unit_id = 2;
	f->pt2 = (struct ad_point){
		.name = "p", .device = &f->dev2, .ext = &f->mpt2, .type = AD_PT_UINT16, .scale = 1.0
	};
	f->mpt2 = (struct mbus_point){ .area = AD_AREA_HOLDING,
				       .address = 7,
				       .byte_order = AD_BO_ABCD };
	f->ptrs2[0] = &f->pt2;
	f->dev2.points = f->ptrs2;
	f->dev2.n_points = 1;
	f->has_dev2 = true;
	return &f->pt2;
}

static void fake_free(struct fake *f)
{
	free(f->mem);
	free(f->data);
	free(f->mem2);
	free(f->data2);
	free(f);
}

static unsigned int count_evs(const struct fake *f, const struct ad_point *pt, enum ad_quality q)
{
	unsigned int i, n = 0;

	for (i = 0; i < f->n_evs; i++)
		n += f->evs[i].pt == pt && f->evs[i].q == q;
	return n;
}

static const struct ev *last_ev(const struct fake *f, const struct ad_point *pt)
{
	unsigned int i;

	for (i = f->n_evs; i-- > 0;)
		if (f->evs[i].pt == pt)
			return &f->evs[i];
	return NULL;
}

/* ------------------------------------------------------------------ tests */

static void test_schedule_and_coalescing(void **state)
{
	struct fake *f = fake_new(200);
	struct ad_point *a, *b, *c, *k;

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	b = add_pt(f, "b", AD_AREA_HOLDING, 1, AD_PT_INT32);
	c = add_pt(f, "c", AD_AREA_HOLDING, 12, AD_PT_UINT16); /* gap 9 <= max_gap: merged */
	k = add_pt(f, "k", AD_AREA_COIL, 3, AD_PT_BOOL);
	f->regs[0] = 7;
	f->regs[1] = 0xFFFF;
	f->regs[2] = 0xFFFE;
	f->regs[12] = 12;
	f->coils[3] = 1;
	fake_start(f, 500, 0);
	assert_int_equal(f->pd.n_reqs, 2);
	run(f, 990);
	/* Polls at 0, 200, ..., 800 ms: 5 cycles of 2 requests. */
	assert_int_equal(f->stats.polls, 5);
	assert_int_equal(f->stats.requests, 10);
	assert_int_equal(f->sent, 10);
	assert_int_equal(f->sent_at[4] - f->sent_at[2], 200);
	assert_int_equal(f->n_status, 1);
	assert_true(f->status[0]);
	assert_int_equal(count_evs(f, a, AD_Q_GOOD), 5);
	assert_int_equal(last_ev(f, a)->v.i, 7);
	assert_int_equal(last_ev(f, b)->v.i, -2);
	assert_int_equal(last_ev(f, c)->v.i, 12);
	assert_true(last_ev(f, k)->v.b);
	assert_int_equal(f->stats.overruns, 0);
	fake_free(f);
}

static void test_one_request_per_point(void **state)
{
	struct fake *f = fake_new(100);

	(void)state;
	add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	add_pt(f, "b", AD_AREA_HOLDING, 1, AD_PT_UINT16);
	add_pt(f, "c", AD_AREA_HOLDING, 2, AD_PT_UINT16);
	f->mdev.one_request_per_point = true;
	fake_start(f, 500, 0);
	run(f, 250);
	assert_int_equal(f->stats.polls, 3);
	assert_int_equal(f->stats.requests, 9);
	fake_free(f);
}

static void test_split_on_exception(void **state)
{
	struct fake *f = fake_new(100);
	struct ad_point *a, *b, *c;

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	b = add_pt(f, "b", AD_AREA_HOLDING, 5, AD_PT_UINT16);
	c = add_pt(f, "c", AD_AREA_HOLDING, 9, AD_PT_UINT16);
	f->exc_lo = f->exc_hi = 5;
	f->regs[0] = 1;
	f->regs[9] = 9;
	fake_start(f, 500, 0);
	run(f, 250);
	/* Each cycle: the merged read (exception) then the 3 points alone. */
	assert_int_equal(f->stats.polls, 3);
	assert_int_equal(f->stats.requests, 3 * 4);
	assert_int_equal(f->stats.failures, 3 * 2);
	assert_int_equal(count_evs(f, a, AD_Q_GOOD), 3);
	assert_int_equal(count_evs(f, c, AD_Q_GOOD), 3);
	assert_int_equal(last_ev(f, c)->v.i, 9);
	/* The hole is bad once, noted once; the device stays online. */
	assert_int_equal(count_evs(f, b, AD_Q_BAD), 1);
	assert_int_equal(count_evs(f, b, AD_Q_GOOD), 0);
	assert_int_equal(f->notes[MBUS_NOTE_EXCEPTION], 1);
	assert_int_equal(f->n_status, 1);
	assert_true(f->status[0]);
	/* The hole is filled: b comes good. */
	f->exc_lo = f->exc_hi = -1;
	f->regs[5] = 55;
	run(f, 100);
	assert_int_equal(last_ev(f, b)->q, AD_Q_GOOD);
	assert_int_equal(last_ev(f, b)->v.i, 55);
	fake_free(f);
}

static void test_single_point_exception(void **state)
{
	struct fake *f = fake_new(100);
	struct ad_point *a;

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 5, AD_PT_UINT16);
	f->exc_lo = f->exc_hi = 5;
	fake_start(f, 500, 0);
	run(f, 250);
	/* No split for a request of one point; an exception is no transport failure. */
	assert_int_equal(f->stats.requests, 3);
	assert_int_equal(count_evs(f, a, AD_Q_BAD), 1);
	/* The device's figures for /metrics: three requests, three exceptions. */
	assert_int_equal(f->pd.st.requests, 3);
	assert_int_equal(f->pd.st.errors[AD_ERR_EXCEPTION], 3);
	assert_int_equal(f->pd.st.errors[AD_ERR_TIMEOUT], 0);
	assert_int_equal(f->pd.st.latency.count, 3);
	assert_int_equal(f->n_status, 1);
	assert_true(f->status[0]);
	fake_free(f);
}

static void test_late_answer(void **state)
{
	struct fake *f = fake_new(1000);
	struct ad_point *a;
	struct mbus_frame fr = { .unit = 1, .fc = 3 };

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	f->delay_ms = 300;
	fake_start(f, 200, 0);
	run(f, 250);
	/* Timed out at 200 ms: transport reset, point bad, device offline. */
	assert_int_equal(f->resets, 1);
	assert_int_equal(count_evs(f, a, AD_Q_BAD), 1);
	assert_int_equal(f->n_status, 1);
	assert_false(f->status[0]);
	assert_int_equal(f->notes[MBUS_NOTE_FAILED], 1);
	assert_int_equal(f->stats.failures, 1);
	/* Counted as a timeout that took the whole 200 ms (bucket le=0.25). */
	assert_int_equal(f->pd.st.errors[AD_ERR_TIMEOUT], 1);
	assert_int_equal(f->pd.st.latency.sum_us, 200000);
	assert_int_equal(f->pd.st.latency.bucket[8], 1);
	/* Its answer arrives after all: nothing is waiting for it. */
	f->pending = false;
	assert_int_equal(mbus_line_response(&f->line, f->now, &fr), -ESTALE);
	assert_int_equal(count_evs(f, a, AD_Q_GOOD), 0);
	/* A quicker answer next time brings it back. */
	f->delay_ms = 10;
	run(f, 1000);
	assert_int_equal(f->n_status, 2);
	assert_true(f->status[1]);
	assert_int_equal(count_evs(f, a, AD_Q_GOOD), 1);
	fake_free(f);
}

static void test_sent_after_connect(void **state)
{
	struct fake *f = fake_new(1000);

	(void)state;
	add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	f->delay_ms = 150;
	fake_start(f, 100, 0);
	run(f, 1);
	/* The transport connected for 80 ms before the request went out: the
	 * answer 150 ms after the send is late for the send, not for the wire. */
	f->now.mono_ms += 79;
	f->now.wall_ms += 79;
	f->answer_at = f->now.mono_ms + 90;
	mbus_line_sent(&f->line, f->now);
	run(f, 200);
	assert_int_equal(f->resets, 0);
	assert_int_equal(f->stats.failures, 0);
	assert_int_equal(f->n_status, 1);
	assert_true(f->status[0]);
	fake_free(f);
}

static void test_dies_and_returns(void **state)
{
	struct fake *f = fake_new(200);
	struct ad_point *a, *b;

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	b = add_pt(f, "b", AD_AREA_INPUT, 30, AD_PT_FLOAT32);
	f->mdev.retries = 2;
	f->delay_ms = 5;
	fake_start(f, 100, 0);
	run(f, 1000);
	assert_int_equal(f->n_status, 1);
	f->dead = true;
	run(f, 1500);
	/* Offline after 2 failed cycles, once; each point bad once; one note. */
	assert_int_equal(f->n_status, 2);
	assert_false(f->status[1]);
	assert_int_equal(count_evs(f, a, AD_Q_BAD), 1);
	assert_int_equal(count_evs(f, b, AD_Q_BAD), 1);
	assert_int_equal(f->notes[MBUS_NOTE_FAILED], 1);
	assert_int_equal(f->notes[MBUS_NOTE_OFFLINE], 1);
	/* A cycle stops at the first transport failure: one request per poll. */
	assert_int_equal(f->stats.devices_online, 0);
	f->dead = false;
	run(f, 600);
	assert_int_equal(f->n_status, 3);
	assert_true(f->status[2]);
	assert_int_equal(last_ev(f, a)->q, AD_Q_GOOD);
	assert_int_equal(last_ev(f, b)->q, AD_Q_GOOD);
	assert_int_equal(f->stats.devices_online, 1);
	fake_free(f);
}

static void test_transport_error_stops_cycle(void **state)
{
	struct fake *f = fake_new(1000);

	(void)state;
	add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	add_pt(f, "b", AD_AREA_COIL, 0, AD_PT_BOOL);
	add_pt(f, "c", AD_AREA_INPUT, 0, AD_PT_UINT16);
	fake_start(f, 500, 0);
	f->dead = true;
	run(f, 1);
	assert_int_equal(f->sent, 1);
	/* The connection drops: the other two requests are not sent. */
	assert_int_equal(mbus_line_error(&f->line, f->now, -ECONNRESET), 0);
	run(f, 10);
	assert_int_equal(f->sent, 1);
	assert_int_equal(f->stats.polls, 1);
	assert_int_equal(f->stats.requests, 1);
	assert_int_equal(f->stats.failures, 1);
	assert_int_equal(f->pd.st.errors[AD_ERR_TRANSPORT], 1);
	fake_free(f);
}

static void test_degrade(void **state)
{
	struct fake *f = fake_new(100);
	struct ad_point *a;

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	f->mdev.degrade_after = 2;
	f->mdev.degrade_for_ms = 5000;
	f->dead = true;
	fake_start(f, 100, 0);
	run(f, 1500);
	assert_int_equal(f->n_status, 1);
	assert_false(f->status[0]);
	assert_int_equal(count_evs(f, a, AD_Q_BAD), 1);
	assert_int_equal(f->stats.requests, 2);
	assert_true(f->stats.skipped >= 10);
	assert_int_equal(f->notes[MBUS_NOTE_DEGRADED], 1);
	/* After degrade_for it is tried again, and recovers. */
	f->dead = false;
	run(f, 5000);
	assert_int_equal(f->n_status, 2);
	assert_true(f->status[1]);
	assert_int_equal(last_ev(f, a)->q, AD_Q_GOOD);
	fake_free(f);
}

/*
 * Two devices on one line; unit 2 dies. It goes offline and degraded after
 * degrade_after failed cycles, and from then on unit 1 is polled exactly on
 * its period, as if unit 2 were not there (issue 5: a failing device backs
 * off without slowing the others on its bus). Unit 2 comes back after
 * degrade_for.
 */
static void test_dead_unit_does_not_slow_others(void **state)
{
	struct fake *f = fake_new(1000);
	struct ad_point *a, *p2;
	unsigned int i, n1 = 0, n2 = 0, last1 = 0;

	(void)state;
	a = add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	f->mdev.degrade_after = 2;
	f->mdev.degrade_for_ms = 20000;
	p2 = fake_add_dev2(f);
	f->regs[7] = 70;
	f->delay_ms = 5;
	fake_start(f, 300, 0);
	run(f, 2500);
	assert_int_equal(count_evs(f, p2, AD_Q_GOOD), 3);
	f->dead_unit = 2;
	run(f, 12000);
	/* Unit 2: bad once, offline once, 2 failed cycles of 1 request, then skipped. */
	assert_int_equal(count_evs(f, p2, AD_Q_BAD), 1);
	assert_int_equal(f->notes[MBUS_NOTE_DEGRADED], 1);
	assert_true(f->stats.skipped >= 9);
	for (i = 0; i < f->sent && i < GW_ARRAY_SIZE(f->sent_at); i++) {
		if (f->sent_unit[i] == 2) {
			n2++;
			continue;
		}
		/* Unit 1 is late by at most one timeout, and only while unit 2 still fails. */
		if (n1++ && f->sent_at[i] > 1000 + 2500 + 3000)
			assert_int_equal(f->sent_at[i] - f->sent_at[last1], 1000);
		else if (n1 > 1)
			assert_true(f->sent_at[i] - f->sent_at[last1] <= 1000 + 300);
		last1 = i;
	}
	assert_int_equal(n2, 3 + 2);
	assert_int_equal(n1, 15);
	assert_int_equal(count_evs(f, a, AD_Q_GOOD), 15);
	assert_int_equal(count_evs(f, a, AD_Q_BAD), 0);
	/* Device 1 stayed online throughout; unit 2 went offline once. */
	assert_int_equal(f->stats.devices_online, 1);
	/* Unit 2 answers again: tried after degrade_for, back online, good. */
	f->dead_unit = 0;
	run(f, 5000);
	assert_int_equal(last_ev(f, p2)->q, AD_Q_BAD); /* still degraded */
	run(f, 10000);
	assert_int_equal(last_ev(f, p2)->q, AD_Q_GOOD);
	assert_int_equal(last_ev(f, p2)->v.i, 70);
	assert_int_equal(f->stats.devices_online, 2);
	fake_free(f);
}

static void test_overrun(void **state)
{
	struct fake *f = fake_new(100);

	(void)state;
	add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	f->delay_ms = 250;
	fake_start(f, 2000, 0);
	run(f, 1000);
	/* A poll takes 250 ms: 4 cycles, the polls due meanwhile skipped. */
	assert_int_equal(f->stats.polls, 3);
	assert_true(f->stats.overruns >= 6);
	assert_int_equal(f->stats.failures, 0);
	fake_free(f);
}

static void test_turnaround(void **state)
{
	struct fake *f = fake_new(1000);

	(void)state;
	add_pt(f, "a", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	add_pt(f, "b", AD_AREA_INPUT, 0, AD_PT_UINT16);
	add_pt(f, "c", AD_AREA_COIL, 0, AD_PT_BOOL);
	f->delay_ms = 3;
	fake_start(f, 500, 20);
	run(f, 200);
	assert_int_equal(f->sent, 3);
	/* Each request waits 20 ms of silence after the previous answer. */
	assert_int_equal(f->sent_at[1] - f->sent_at[0], 3 + 20);
	assert_int_equal(f->sent_at[2] - f->sent_at[1], 3 + 20);
	fake_free(f);
}

static int write_cmd(struct fake *f, struct ad_point *pt, struct ad_value v, void *token,
		     const char **why)
{
	struct mbus_write *w = malloc(sizeof(*w));
	int rc;

	rc = mbus_line_write(&f->line, &f->pd, w, pt, &v, token, why);
	if (rc)
		free(w);
	return rc;
}

static void test_writes(void **state)
{
	struct fake *f = fake_new(1000);
	struct ad_point *sp, *fl, *coil, *s, *ro;
	const char *why = NULL;
	struct ad_value v = { .type = AD_VAL_INT, .i = 777 };
	unsigned int before;
	int i;

	(void)state;
	sp = add_pt(f, "sp", AD_AREA_HOLDING, 200, AD_PT_UINT16);
	fl = add_pt(f, "fl", AD_AREA_HOLDING, 202, AD_PT_FLOAT32);
	coil = add_pt(f, "coil", AD_AREA_COIL, 1, AD_PT_BOOL);
	s = add_pt(f, "s", AD_AREA_HOLDING, 210, AD_PT_STRING);
	((struct mbus_point *)s->ext)->length = 2;
	ro = add_pt(f, "ro", AD_AREA_HOLDING, 220, AD_PT_UINT16);
	ro->writable = false;
	f->delay_ms = 2;
	fake_start(f, 500, 0);
	run(f, 50);
	before = f->stats.polls;

	assert_int_equal(write_cmd(f, sp, v, (void *)1, &why), 0);
	v = (struct ad_value){ .type = AD_VAL_DOUBLE, .d = 23.25 };
	assert_int_equal(write_cmd(f, fl, v, (void *)2, &why), 0);
	v = (struct ad_value){ .type = AD_VAL_BOOL, .b = true };
	assert_int_equal(write_cmd(f, coil, v, (void *)3, &why), 0);
	v = (struct ad_value){ .type = AD_VAL_STRING, .s = gw_slice_cstr("hey") };
	assert_int_equal(write_cmd(f, s, v, (void *)4, &why), 0);
	/* Refused before reaching the device. */
	v = (struct ad_value){ .type = AD_VAL_INT, .i = 70000 };
	assert_int_equal(write_cmd(f, sp, v, NULL, &why), -ERANGE);
	v = (struct ad_value){ .type = AD_VAL_INT, .i = 1 };
	assert_int_equal(write_cmd(f, ro, v, NULL, &why), -EACCES);
	run(f, 100);
	assert_int_equal(f->n_results, 4);
	for (i = 0; i < 4; i++) {
		assert_true(f->results[i].ok);
		assert_ptr_equal(f->tokens[i], (void *)(intptr_t)(i + 1));
	}
	assert_int_equal(f->regs[200], 777);
	assert_int_equal(f->regs[202], 0x41BA);
	assert_int_equal(f->coils[1], 1);
	assert_int_equal(f->regs[210], ('h' << 8) | 'e');
	/* FC 6, 16, 5, 16 in order. */
	assert_int_equal(f->stats.writes, 4);
	/* Read back at once (one poll queued behind the writes), not at the next period. */
	assert_int_equal(f->stats.polls, before + 1);
	assert_int_equal(last_ev(f, sp)->v.i, 777);
	assert_true(last_ev(f, fl)->v.d == 23.25);
	assert_true(last_ev(f, coil)->v.b);
	assert_int_equal(last_ev(f, s)->v.s.len, 3);

	/* An exception comes back as the result's error. */
	f->write_exc = 2;
	v = (struct ad_value){ .type = AD_VAL_INT, .i = 5 };
	assert_int_equal(write_cmd(f, sp, v, (void *)5, &why), 0);
	run(f, 20);
	assert_int_equal(f->n_results, 5);
	assert_false(f->results[4].ok);
	assert_string_equal(f->results[4].error, "illegal data address");
	assert_int_equal(f->results[4].value.i, 5);
	fake_free(f);
}

static void test_write_queue_and_stop(void **state)
{
	struct fake *f = fake_new(1000);
	struct ad_point *sp;
	struct ad_value v = { .type = AD_VAL_INT, .i = 1 };
	const char *why = NULL;
	int i;

	(void)state;
	sp = add_pt(f, "sp", AD_AREA_HOLDING, 0, AD_PT_UINT16);
	f->dead = true;
	fake_start(f, 100, 0);
	for (i = 0; i < MBUS_MAX_QUEUED_WRITES; i++)
		assert_int_equal(write_cmd(f, sp, v, NULL, &why), 0);
	assert_int_equal(write_cmd(f, sp, v, NULL, &why), -ENOBUFS);
	assert_string_equal(why, "too many commands queued");
	run(f, 50);
	/* The first write is in flight, the rest and the first poll queued. */
	assert_int_equal(f->n_results, 0);
	assert_true(mbus_line_stop(&f->line, f->now));
	assert_int_equal(f->n_results, MBUS_MAX_QUEUED_WRITES - 1);
	assert_string_equal(f->results[0].error, "adapter stopped");
	/* The glue closes the transport and ends the request in flight. */
	assert_int_equal(mbus_line_error(&f->line, f->now, -ECANCELED), 0);
	assert_int_equal(f->n_results, MBUS_MAX_QUEUED_WRITES);
	assert_int_equal(write_cmd(f, sp, v, NULL, &why), -ECANCELED);
	/* Nothing more is sent. */
	i = (int)f->sent;
	run(f, 3000);
	assert_int_equal(f->sent, i);
	fake_free(f);
}

static void test_mbap_codec(void **state)
{
	static const uint8_t golden[] = { 0x00, 0x07, 0x00, 0x00, 0x00, 0x06,
					  0x11, 0x03, 0x00, 0x6B, 0x00, 0x03 };
	static const uint8_t exc[] = { 0x00, 0x07, 0x00, 0x00, 0x00, 0x03, 0x11, 0x83, 0x02 };
	uint8_t buf[32], pdu[8];
	struct gw_writer w, pw;
	struct mbus_frame fr;
	uint16_t tid;

	(void)state;
	gw_writer_init(&pw, pdu, sizeof(pdu));
	assert_int_equal(mbus_pdu_read(&pw, 3, 0x6B, 3), 0);
	gw_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(mbus_mbap_encode(&w, 7, 0x11, pdu, pw.len), 0);
	assert_int_equal(w.len, sizeof(golden));
	assert_memory_equal(buf, golden, sizeof(golden));
	/* Byte by byte: need more until the last. */
	for (size_t i = 0; i < sizeof(golden); i++)
		assert_int_equal(mbus_mbap_decode(golden, i, &tid, &fr), 0);
	assert_int_equal(mbus_mbap_decode(golden, sizeof(golden), &tid, &fr), 12);
	assert_int_equal(tid, 7);
	assert_int_equal(fr.unit, 0x11);
	assert_int_equal(fr.fc, 3);
	assert_int_equal(fr.body.len, 4);
	assert_int_equal(mbus_mbap_decode(exc, sizeof(exc), &tid, &fr), 9);
	assert_int_equal(fr.exception, 2);
	memcpy(buf, golden, sizeof(golden));
	buf[3] = 1; /* protocol id */
	assert_int_equal(mbus_mbap_decode(buf, sizeof(golden), &tid, &fr), -EBADMSG);
	memcpy(buf, golden, sizeof(golden));
	buf[5] = 1; /* length without a function code */
	assert_int_equal(mbus_mbap_decode(buf, sizeof(golden), &tid, &fr), -EBADMSG);
	buf[4] = 1; /* 257 */
	buf[5] = 1;
	assert_int_equal(mbus_mbap_decode(buf, sizeof(golden), &tid, &fr), -EBADMSG);
	gw_writer_init(&w, buf, 8);
	assert_int_equal(mbus_mbap_encode(&w, 1, 1, pdu, pw.len), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedule_and_coalescing),
		cmocka_unit_test(test_one_request_per_point),
		cmocka_unit_test(test_split_on_exception),
		cmocka_unit_test(test_single_point_exception),
		cmocka_unit_test(test_late_answer),
		cmocka_unit_test(test_sent_after_connect),
		cmocka_unit_test(test_dies_and_returns),
		cmocka_unit_test(test_transport_error_stops_cycle),
		cmocka_unit_test(test_degrade),
		cmocka_unit_test(test_dead_unit_does_not_slow_others),
		cmocka_unit_test(test_overrun),
		cmocka_unit_test(test_turnaround),
		cmocka_unit_test(test_writes),
		cmocka_unit_test(test_write_queue_and_stop),
		cmocka_unit_test(test_mbap_codec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
