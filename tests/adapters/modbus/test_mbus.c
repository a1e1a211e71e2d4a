/*
 * test_mbus.c - golden vectors for the Modbus value codec, the read planner,
 * the health state machine, RTU framing and the framing of a poller request
 * for a TCP line (adapters/modbus/mbus_*.c).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/modbus/mbus_int.h"
#include "adapters/modbus/mbus_poll.h"

/* The Modbus parts of the points mkpt() makes (what the loader hangs on ->ext). */
static struct mbus_point mpool[1024];
static unsigned int mnext;

#define M(pt) ((struct mbus_point *)(pt)->ext)

static struct ad_point mkpt(enum ad_area area, uint16_t addr, enum ad_point_type type,
			    enum ad_byte_order bo)
{
	struct mbus_point *m = &mpool[mnext++ % GW_ARRAY_SIZE(mpool)];
	struct ad_point p;

	memset(&p, 0, sizeof(p));
	memset(m, 0, sizeof(*m));
	p.name = "p";
	p.ext = m;
	m->area = area;
	m->address = addr;
	p.type = type;
	m->byte_order = bo;
	p.scale = 1.0;
	p.writable = true;
	return p;
}

static struct ad_value dec(struct ad_point *p, const uint16_t *regs, size_t n)
{
	static uint8_t sbuf[256];
	struct ad_value v;

	memset(&v, 0, sizeof(v));
	assert_int_equal(mbus_decode(p, regs, n, sbuf, sizeof(sbuf), &v), 0);
	return v;
}

/* Decodes @regs, then encodes the result back and expects the same registers. */
static void roundtrip(struct ad_point *p, const uint16_t *regs, size_t n)
{
	struct ad_value v = dec(p, regs, n);
	uint16_t out[8] = { 0 };
	const char *why = NULL;
	size_t nout = 0;

	assert_int_equal(mbus_encode(p, &v, out, GW_ARRAY_SIZE(out), &nout, &why), 0);
	assert_int_equal(nout, n);
	assert_memory_equal(out, regs, n * sizeof(uint16_t));
}

static const enum ad_byte_order orders[4] = { AD_BO_ABCD, AD_BO_BADC, AD_BO_CDAB, AD_BO_DCBA };

static void test_decode_16bit(void **state)
{
	struct ad_point p = mkpt(AD_AREA_HOLDING, 0, AD_PT_INT16, AD_BO_ABCD);
	uint16_t r = 0xFF85; /* -123 */
	struct ad_value v = dec(&p, &r, 1);

	(void)state;
	assert_int_equal(v.type, AD_VAL_INT);
	assert_int_equal(v.i, -123);
	roundtrip(&p, &r, 1);
	p.type = AD_PT_UINT16;
	v = dec(&p, &r, 1);
	assert_int_equal(v.type, AD_VAL_UINT);
	assert_int_equal(v.u, 65413);
	roundtrip(&p, &r, 1);
	/* Scaled: raw * 0.1 + 1 -> double. */
	p.scale = 0.1;
	p.offset = 1;
	r = 215;
	v = dec(&p, &r, 1);
	assert_int_equal(v.type, AD_VAL_DOUBLE);
	assert_true(fabs(v.d - 22.5) < 1e-9);
	roundtrip(&p, &r, 1);
}

static void test_decode_bits(void **state)
{
	struct ad_point p = mkpt(AD_AREA_COIL, 0, AD_PT_BOOL, AD_BO_ABCD);
	uint16_t r = 1;
	struct ad_value v = dec(&p, &r, 1);

	(void)state;
	assert_int_equal(v.type, AD_VAL_BOOL);
	assert_true(v.b);
	roundtrip(&p, &r, 1);
	p = mkpt(AD_AREA_HOLDING, 0, AD_PT_BIT, AD_BO_ABCD);
	r = 0x8004;
	M(&p)->bit = 2;
	assert_true(dec(&p, &r, 1).b);
	M(&p)->bit = 15;
	assert_true(dec(&p, &r, 1).b);
	M(&p)->bit = 3;
	assert_false(dec(&p, &r, 1).b);
	/* A bool on a register area, or a number on a coil, is a map error. */
	{
		struct ad_value x;
		uint8_t sb[4];

		p = mkpt(AD_AREA_HOLDING, 0, AD_PT_BOOL, AD_BO_ABCD);
		assert_int_equal(mbus_decode(&p, &r, 1, sb, sizeof(sb), &x), -EINVAL);
		p = mkpt(AD_AREA_COIL, 0, AD_PT_INT16, AD_BO_ABCD);
		assert_int_equal(mbus_decode(&p, &r, 1, sb, sizeof(sb), &x), -EINVAL);
	}
}

static void test_decode_32bit_orders(void **state)
{
	/* float32 21.5 = 0x41AC0000, int32 -123456 = 0xFFFE1DC0 */
	static const uint16_t f32[4][2] = {
		{ 0x41AC, 0x0000 }, /* ABCD */
		{ 0xAC41, 0x0000 }, /* BADC */
		{ 0x0000, 0x41AC }, /* CDAB */
		{ 0x0000, 0xAC41 }, /* DCBA */
	};
	static const uint16_t i32[4][2] = {
		{ 0xFFFE, 0x1DC0 },
		{ 0xFEFF, 0xC01D },
		{ 0x1DC0, 0xFFFE },
		{ 0xC01D, 0xFEFF },
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		struct ad_point p = mkpt(AD_AREA_HOLDING, 0, AD_PT_FLOAT32, orders[i]);
		struct ad_value v = dec(&p, f32[i], 2);

		assert_int_equal(v.type, AD_VAL_DOUBLE);
		assert_true(v.d == 21.5);
		roundtrip(&p, f32[i], 2);
		p.type = AD_PT_INT32;
		v = dec(&p, i32[i], 2);
		assert_int_equal(v.type, AD_VAL_INT);
		assert_int_equal(v.i, -123456);
		roundtrip(&p, i32[i], 2);
		p.type = AD_PT_UINT32;
		v = dec(&p, i32[i], 2);
		assert_int_equal(v.type, AD_VAL_UINT);
		assert_int_equal(v.u, 0xFFFE1DC0u);
		roundtrip(&p, i32[i], 2);
	}
}

static void test_decode_64bit_orders(void **state)
{
	/* 0x0102030405060708 in ABCDEFGH, BADCFEHG, GHEFCDAB, HGFEDCBA. */
	static const uint16_t u64[4][4] = {
		{ 0x0102, 0x0304, 0x0506, 0x0708 },
		{ 0x0201, 0x0403, 0x0605, 0x0807 },
		{ 0x0708, 0x0506, 0x0304, 0x0102 },
		{ 0x0807, 0x0605, 0x0403, 0x0201 },
	};
	/* float64 -1.5 = 0xBFF8000000000000 */
	static const uint16_t f64[4][4] = {
		{ 0xBFF8, 0, 0, 0 },
		{ 0xF8BF, 0, 0, 0 },
		{ 0, 0, 0, 0xBFF8 },
		{ 0, 0, 0, 0xF8BF },
	};
	static const uint16_t max[4] = { 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF };
	unsigned int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		struct ad_point p = mkpt(AD_AREA_INPUT, 0, AD_PT_UINT64, orders[i]);
		struct ad_value v = dec(&p, u64[i], 4);

		M(&p)->area = AD_AREA_HOLDING;
		assert_int_equal(v.type, AD_VAL_UINT);
		assert_true(v.u == 0x0102030405060708ull);
		roundtrip(&p, u64[i], 4);
		p.type = AD_PT_INT64;
		v = dec(&p, u64[i], 4);
		assert_true(v.i == 0x0102030405060708ll);
		roundtrip(&p, u64[i], 4);
		p.type = AD_PT_FLOAT64;
		v = dec(&p, f64[i], 4);
		assert_true(v.d == -1.5);
		roundtrip(&p, f64[i], 4);
	}
	{
		struct ad_point p = mkpt(AD_AREA_HOLDING, 0, AD_PT_UINT64, AD_BO_ABCD);
		struct ad_value v = dec(&p, max, 4);

		assert_true(v.u == UINT64_MAX); /* above INT64_MAX stays exact */
		roundtrip(&p, max, 4);
		p.type = AD_PT_INT64;
		assert_true(dec(&p, max, 4).i == -1);
		roundtrip(&p, max, 4);
	}
}

static void test_decode_string(void **state)
{
	static const uint16_t hi[4] = { 0x4142, 0x4344, 0x4500, 0x0000 }; /* "ABCDE" */
	static const uint16_t lo[4] = { 0x4241, 0x4443, 0x0045, 0x0000 };
	struct ad_point p = mkpt(AD_AREA_HOLDING, 0, AD_PT_STRING, AD_BO_ABCD);
	struct ad_value v;
	uint8_t small[4];

	(void)state;
	M(&p)->length = 4;
	v = dec(&p, hi, 4);
	assert_int_equal(v.type, AD_VAL_STRING);
	assert_int_equal(v.s.len, 5);
	assert_memory_equal(v.s.p, "ABCDE", 5);
	roundtrip(&p, hi, 4);
	M(&p)->string_swap = true;
	v = dec(&p, lo, 4);
	assert_int_equal(v.s.len, 5);
	assert_memory_equal(v.s.p, "ABCDE", 5);
	roundtrip(&p, lo, 4);
	assert_int_equal(mbus_decode(&p, lo, 4, small, sizeof(small), &v), -EMSGSIZE);
	assert_int_equal(mbus_decode(&p, lo, 3, small, sizeof(small), &v), -EBADMSG);
}

static int enc(struct ad_point *p, struct ad_value v, uint16_t *out, const char **why)
{
	size_t n;

	return mbus_encode(p, &v, out, 8, &n, why);
}

static void test_encode_refusals(void **state)
{
	struct ad_point p = mkpt(AD_AREA_HOLDING, 0, AD_PT_UINT16, AD_BO_ABCD);
	struct ad_value vi = { .type = AD_VAL_INT, .i = 70000 };
	struct ad_value vs = { .type = AD_VAL_STRING, .s = GW_SLICE_STR("hot") };
	struct ad_value vd = { .type = AD_VAL_DOUBLE, .d = 21.55 };
	struct ad_value vb = { .type = AD_VAL_BOOL, .b = true };
	const char *why = NULL;
	uint16_t out[8];

	(void)state;
	assert_int_equal(enc(&p, vi, out, &why), -ERANGE);
	assert_non_null(why);
	vi.i = -1;
	assert_int_equal(enc(&p, vi, out, &why), -ERANGE);
	vi.i = 65535;
	assert_int_equal(enc(&p, vi, out, &why), 0);
	assert_int_equal(out[0], 65535);
	assert_int_equal(enc(&p, vs, out, &why), -EINVAL);
	assert_int_equal(enc(&p, vb, out, &why), -EINVAL);
	/* A non-integer to an integer type, after scaling. */
	assert_int_equal(enc(&p, vd, out, &why), -EINVAL);
	p.scale = 0.1;
	vd.d = 21.5;
	assert_int_equal(enc(&p, vd, out, &why), 0);
	assert_int_equal(out[0], 215);
	vd.d = 21.55;
	assert_int_equal(enc(&p, vd, out, &why), -EINVAL);
	vd.d = NAN;
	assert_int_equal(enc(&p, vd, out, &why), -EINVAL);
	vd.d = 6553.6; /* 65536 after scaling */
	assert_int_equal(enc(&p, vd, out, &why), -ERANGE);
	/* int16 bounds. */
	p = mkpt(AD_AREA_HOLDING, 0, AD_PT_INT16, AD_BO_ABCD);
	vi.i = -32769;
	assert_int_equal(enc(&p, vi, out, &why), -ERANGE);
	vi.i = -32768;
	assert_int_equal(enc(&p, vi, out, &why), 0);
	assert_int_equal(out[0], 0x8000);
	/* A string to a float. */
	p.type = AD_PT_FLOAT32;
	assert_int_equal(enc(&p, vs, out, &why), -EINVAL);
	vd.d = 1e39;
	assert_int_equal(enc(&p, vd, out, &why), -ERANGE);
	/* A number to a string. */
	p.type = AD_PT_STRING;
	M(&p)->length = 1;
	assert_int_equal(enc(&p, vi, out, &why), -EINVAL);
	assert_int_equal(enc(&p, vs, out, &why), -ERANGE); /* 3 bytes into 2 */
	/* Read-only points and areas. */
	p = mkpt(AD_AREA_HOLDING, 0, AD_PT_UINT16, AD_BO_ABCD);
	p.writable = false;
	vi.i = 1;
	assert_int_equal(enc(&p, vi, out, &why), -EACCES);
	p = mkpt(AD_AREA_INPUT, 0, AD_PT_UINT16, AD_BO_ABCD);
	assert_int_equal(enc(&p, vi, out, &why), -EACCES);
	/* Coils: bools, 0 and 1 only. */
	p = mkpt(AD_AREA_COIL, 0, AD_PT_BOOL, AD_BO_ABCD);
	vi.i = 2;
	assert_int_equal(enc(&p, vi, out, &why), -EINVAL);
	vi.i = 1;
	assert_int_equal(enc(&p, vi, out, &why), 0);
	assert_int_equal(out[0], 1);
	/* uint64 above INT64_MAX, unscaled, stays exact. */
	p = mkpt(AD_AREA_HOLDING, 0, AD_PT_UINT64, AD_BO_ABCD);
	{
		struct ad_value vu = { .type = AD_VAL_UINT, .u = UINT64_MAX - 1 };

		assert_int_equal(enc(&p, vu, out, &why), 0);
		assert_int_equal(out[3], 0xFFFE);
		p.type = AD_PT_INT64;
		assert_int_equal(enc(&p, vu, out, &why), -ERANGE);
	}
}

static void test_write_fc(void **state)
{
	struct ad_point c = mkpt(AD_AREA_COIL, 0, AD_PT_BOOL, AD_BO_ABCD);
	struct ad_point h = mkpt(AD_AREA_HOLDING, 0, AD_PT_UINT16, AD_BO_ABCD);

	(void)state;
	assert_int_equal(mbus_write_fc(&c, 1, false), 5);
	assert_int_equal(mbus_write_fc(&c, 1, true), 15);
	assert_int_equal(mbus_write_fc(&h, 1, false), 6);
	assert_int_equal(mbus_write_fc(&h, 1, true), 16);
	assert_int_equal(mbus_write_fc(&h, 2, false), 16);
	assert_string_equal(mbus_exception_str(2), "illegal data address");
	assert_string_equal(mbus_exception_str(99), "unknown exception");
}

/* ---------------------------------------------------------------- planner */

struct fixture {
	struct ad_device dev;
	struct mbus_device mdev;
	struct ad_point pts[300];
	struct ad_point *pp[300];
	const struct ad_point *order[300];
	struct mbus_req reqs[300];
};

static struct fixture fx;

static void dev_reset(void)
{
	memset(&fx, 0, sizeof(fx));
	fx.dev.name = "d";
	fx.dev.ext = &fx.mdev;
	fx.mdev.max_regs_per_read = 125;
	fx.mdev.max_gap = 10;
	fx.dev.points = fx.pp;
}

static void add(enum ad_area area, uint16_t addr, enum ad_point_type type, uint16_t len)
{
	struct ad_point *p = &fx.pts[fx.dev.n_points];

	*p = mkpt(area, addr, type, AD_BO_ABCD);
	M(p)->length = len;
	fx.pp[fx.dev.n_points++] = p;
}

static int plan(void)
{
	const struct ad_point *bad = NULL;

	return mbus_plan(&fx.dev, fx.order, fx.reqs, &bad);
}

static void test_plan_coalesce(void **state)
{
	unsigned int i;

	(void)state;
	/* 100 contiguous uint16 holding registers: one request. */
	dev_reset();
	for (i = 0; i < 100; i++)
		add(AD_AREA_HOLDING, (uint16_t)(i), AD_PT_UINT16, 0);
	assert_int_equal(plan(), 1);
	assert_int_equal(fx.reqs[0].count, 100);
	assert_int_equal(fx.reqs[0].n_pts, 100);
	fx.mdev.one_request_per_point = true;
	assert_int_equal(plan(), 100);

	/* 100 float32 = 200 registers: split at 125 -> 62 points + 38 points. */
	dev_reset();
	for (i = 0; i < 100; i++)
		add(AD_AREA_HOLDING, (uint16_t)(1000 + 2 * i), AD_PT_FLOAT32, 0);
	assert_int_equal(plan(), 2);
	assert_int_equal(fx.reqs[0].count, 124);
	assert_int_equal(fx.reqs[1].address, 1124);
	assert_int_equal(fx.reqs[1].count, 76);
	fx.mdev.max_regs_per_read = 0; /* default */
	assert_int_equal(plan(), 2);
	fx.mdev.max_regs_per_read = 500; /* capped by the protocol */
	assert_int_equal(plan(), 2);

	/* Gaps: <= max_gap merges, more splits; areas never merge. Unsorted input. */
	dev_reset();
	add(AD_AREA_HOLDING, 20, AD_PT_UINT16, 0); /* gap 19 after 0 -> own request */
	add(AD_AREA_HOLDING, 0, AD_PT_UINT16, 0);
	add(AD_AREA_HOLDING, 31, AD_PT_UINT32, 0); /* gap 10 after 20 -> merged */
	add(AD_AREA_INPUT, 0, AD_PT_UINT16, 0);
	add(AD_AREA_COIL, 0, AD_PT_BOOL, 0);
	add(AD_AREA_HOLDING, 20, AD_PT_BIT, 0); /* overlaps */
	assert_int_equal(plan(), 4);
	assert_int_equal(fx.reqs[0].area, AD_AREA_COIL);
	assert_int_equal(fx.reqs[1].area, AD_AREA_INPUT);
	assert_int_equal(fx.reqs[2].address, 0);
	assert_int_equal(fx.reqs[2].count, 1);
	assert_int_equal(fx.reqs[3].address, 20);
	assert_int_equal(fx.reqs[3].count, 13);
	assert_int_equal(fx.reqs[3].n_pts, 3);
	assert_int_equal(fx.reqs[3].area, AD_AREA_HOLDING);
	fx.mdev.max_gap = 0;
	assert_int_equal(plan(), 5);
	fx.mdev.max_gap = 100;
	assert_int_equal(plan(), 3);

	/* Bits: up to 2000 coils in one request. */
	dev_reset();
	fx.mdev.max_gap = 2000;
	add(AD_AREA_DISCRETE, 1999, AD_PT_BOOL, 0);
	add(AD_AREA_DISCRETE, 0, AD_PT_BOOL, 0);
	add(AD_AREA_DISCRETE, 2000, AD_PT_BOOL, 0);
	assert_int_equal(plan(), 2);
	assert_int_equal(fx.reqs[0].count, 2000);
	assert_int_equal(fx.reqs[0].n_pts, 2);
	assert_int_equal(fx.reqs[1].address, 2000);
	fx.mdev.max_bits_per_read = 100; /* 0 alone; 1999 and 2000 together */
	assert_int_equal(plan(), 2);
	assert_int_equal(fx.reqs[1].count, 2);
}

static void test_plan_limits(void **state)
{
	const struct ad_point *bad = NULL;

	(void)state;
	dev_reset();
	add(AD_AREA_HOLDING, 0, AD_PT_STRING, 126);
	assert_int_equal(mbus_plan(&fx.dev, fx.order, fx.reqs, &bad), -EMSGSIZE);
	assert_ptr_equal(bad, &fx.pts[0]);
	dev_reset();
	add(AD_AREA_HOLDING, 65535, AD_PT_UINT32, 0); /* runs past the address space */
	assert_int_equal(mbus_plan(&fx.dev, fx.order, fx.reqs, &bad), -EMSGSIZE);
	dev_reset();
	assert_int_equal(plan(), 0);
}

/* ----------------------------------------------------------------- health */

static void test_health(void **state)
{
	struct mbus_device md = { .retries = 2, .degrade_after = 3, .degrade_for_ms = 60000 };
	struct ad_device d = { .ext = &md };
	struct mbus_health h = { 0 };

	(void)state;
	assert_int_equal(mbus_health_update(&h, &d, true, 0), MBUS_ACT_ONLINE);
	assert_int_equal(mbus_health_update(&h, &d, true, 1000), 0);
	assert_int_equal(mbus_health_update(&h, &d, false, 2000), MBUS_ACT_BAD);
	assert_int_equal(mbus_health_update(&h, &d, false, 3000), MBUS_ACT_OFFLINE);
	assert_false(mbus_health_skip(&h, 3500));
	assert_int_equal(mbus_health_update(&h, &d, false, 4000), MBUS_ACT_DEGRADE);
	assert_true(mbus_health_skip(&h, 5000));
	assert_true(mbus_health_skip(&h, 63999));
	assert_false(mbus_health_skip(&h, 64000));
	assert_int_equal(mbus_health_update(&h, &d, false, 64000), MBUS_ACT_DEGRADE);
	assert_int_equal(mbus_health_update(&h, &d, true, 124000), MBUS_ACT_ONLINE);
	assert_false(mbus_health_skip(&h, 124001));

	/* A device that never answers goes offline without ever being online. */
	memset(&h, 0, sizeof(h));
	md.retries = 1;
	md.degrade_after = 0;
	assert_int_equal(mbus_health_update(&h, &d, false, 0), MBUS_ACT_BAD | MBUS_ACT_OFFLINE);
	assert_int_equal(mbus_health_update(&h, &d, false, 0), 0);
}

/* -------------------------------------------------------------------- RTU */

static void test_crc(void **state)
{
	/* Serial Line V1.02 example and the common "01 03 00 00 00 0A C5 CD". */
	static const uint8_t a[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A };
	static const uint8_t b[] = { 0x02, 0x07 };

	(void)state;
	assert_int_equal(mbus_crc16(a, sizeof(a)), 0xCDC5);
	assert_int_equal(mbus_crc16(b, sizeof(b)), 0x1241);
}

static void test_rtu_request(void **state)
{
	static const uint8_t golden[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD };
	static const uint8_t golden16[] = { 0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04,
					    0x00, 0x0A, 0x01, 0x02, 0xC6, 0xF0 };
	static const uint16_t vals[] = { 0x000A, 0x0102 };
	uint8_t pdu[300], adu[300];
	struct gw_writer wp, wa;
	struct mbus_frame f;

	(void)state;
	gw_writer_init(&wp, pdu, sizeof(pdu));
	assert_int_equal(mbus_pdu_read(&wp, 3, 0, 10), 0);
	gw_writer_init(&wa, adu, sizeof(adu));
	assert_int_equal(mbus_rtu_encode(&wa, 1, pdu, wp.len), 0);
	assert_int_equal(wa.len, sizeof(golden));
	assert_memory_equal(adu, golden, sizeof(golden));
	assert_int_equal(mbus_rtu_decode_req(adu, wa.len, &f), 8);
	assert_int_equal(f.unit, 1);
	assert_int_equal(f.fc, 3);

	/* Spec example FC16 (Application Protocol 6.12) framed for unit 0x11. */
	gw_writer_init(&wp, pdu, sizeof(pdu));
	assert_int_equal(mbus_pdu_write(&wp, 16, 1, vals, 2), 0);
	gw_writer_init(&wa, adu, sizeof(adu));
	assert_int_equal(mbus_rtu_encode(&wa, 0x11, pdu, wp.len), 0);
	assert_int_equal(wa.len, sizeof(golden16));
	assert_memory_equal(adu, golden16, sizeof(golden16) - 2);
	assert_int_equal(mbus_crc16(adu, wa.len - 2),
			 golden16[11] | golden16[12] << 8); /* self-consistent CRC */
	assert_int_equal(mbus_rtu_decode_req(adu, wa.len, &f), (int)wa.len);
	assert_int_equal(mbus_rtu_decode_req(adu, 6, &f), 0);
	assert_int_equal(mbus_pdu_read(&wp, 3, 0, 126), -EINVAL);
	assert_int_equal(mbus_pdu_read(&wp, 1, 0, 2001), -EINVAL);
	assert_int_equal(mbus_pdu_read(&wp, 5, 0, 1), -EINVAL);

	/* Coils: 10 values packed LSB first into 2 bytes. */
	{
		static const uint16_t bits[10] = { 1, 0, 1, 1, 0, 0, 1, 1, 1, 0 };

		gw_writer_init(&wp, pdu, sizeof(pdu));
		assert_int_equal(mbus_pdu_write(&wp, 15, 19, bits, 10), 0);
		assert_int_equal(wp.len, 8);
		assert_int_equal(pdu[5], 2);
		assert_int_equal(pdu[6], 0xCD);
		assert_int_equal(pdu[7], 0x01);
		gw_writer_init(&wp, pdu, sizeof(pdu));
		assert_int_equal(mbus_pdu_write(&wp, 5, 7, bits, 1), 0);
		assert_int_equal(pdu[3], 0xFF);
		assert_int_equal(pdu[4], 0x00);
	}
}

/* A poller request framed for a TCP line: MBAP with the next transaction id, or RTU. */
static void test_xfer_encode(void **state)
{
	static const uint8_t rtu[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD };
	static const uint8_t mbap[] = { 0x12, 0x34, 0x00, 0x00, 0x00, 0x06,
					0x01, 0x03, 0x00, 0x00, 0x00, 0x0A };
	/* Application Protocol 6.12's FC16 example for unit 0x11, transaction id wrapped to 0. */
	static const uint8_t mbap16[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0B, 0x11, 0x10, 0x00,
					  0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02 };
	static const uint16_t vals[] = { 0x000A, 0x0102 };
	struct mbus_xfer rd = { .unit = 1, .fc = 3, .addr = 0, .count = 10 };
	struct mbus_xfer wr = { .unit = 0x11, .fc = 16, .addr = 1, .count = 2, .vals = vals };
	struct mbus_xfer bad = { .unit = 1, .fc = 5, .addr = 0, .count = 1 };
	uint8_t adu[MBUS_TCP_MAX_ADU];
	struct gw_writer aw;
	uint16_t tid = 0x1233;

	(void)state;
	gw_writer_init(&aw, adu, sizeof(adu));
	assert_int_equal(mbus_xfer_encode(&aw, false, &tid, &rd), 0);
	assert_int_equal(aw.len, sizeof(rtu));
	assert_memory_equal(adu, rtu, sizeof(rtu));
	assert_int_equal(tid, 0x1233); /* RTU over TCP has no transaction id */

	gw_writer_init(&aw, adu, sizeof(adu));
	assert_int_equal(mbus_xfer_encode(&aw, true, &tid, &rd), 0);
	assert_int_equal(tid, 0x1234);
	assert_int_equal(aw.len, sizeof(mbap));
	assert_memory_equal(adu, mbap, sizeof(mbap));

	tid = 0xFFFF;
	gw_writer_init(&aw, adu, sizeof(adu));
	assert_int_equal(mbus_xfer_encode(&aw, true, &tid, &wr), 0);
	assert_int_equal(tid, 0);
	assert_int_equal(aw.len, sizeof(mbap16));
	assert_memory_equal(adu, mbap16, sizeof(mbap16));

	/* A read with a write's function code: refused before a transaction id is taken. */
	gw_writer_init(&aw, adu, sizeof(adu));
	assert_int_equal(mbus_xfer_encode(&aw, true, &tid, &bad), -EINVAL);
	assert_int_equal(tid, 0);
	/* No room for the ADU. */
	gw_writer_init(&aw, adu, 8);
	assert_int_equal(mbus_xfer_encode(&aw, true, &tid, &rd), -EMSGSIZE);
	gw_writer_init(&aw, adu, 7);
	assert_int_equal(mbus_xfer_encode(&aw, false, &tid, &rd), -EMSGSIZE);
}

static void frame(uint8_t *buf, size_t *len, const uint8_t *body, size_t n)
{
	struct gw_writer w;

	gw_writer_init(&w, buf, 300);
	assert_int_equal(mbus_rtu_encode(&w, body[0], body + 1, n - 1), 0);
	*len = w.len;
}

static void test_rtu_response(void **state)
{
	static const uint8_t rd[] = { 0x01, 0x03, 0x04, 0x41, 0xAC, 0x00, 0x00 };
	static const uint8_t bits[] = { 0x02, 0x01, 0x02, 0xCD, 0x01 };
	static const uint8_t exc[] = { 0x01, 0x83, 0x02 };
	static const uint8_t wr[] = { 0x01, 0x10, 0x00, 0x64, 0x00, 0x02 };
	static const uint8_t bad_fc[] = { 0x01, 0x2B, 0x00 };
	uint8_t buf[300];
	uint16_t regs[16];
	struct mbus_frame f;
	size_t n, i;

	(void)state;
	frame(buf, &n, rd, sizeof(rd));
	assert_int_equal(n, 9);
	/* Every prefix needs more. */
	for (i = 0; i < n; i++)
		assert_int_equal(mbus_rtu_decode_rsp(buf, i, &f), 0);
	assert_int_equal(mbus_rtu_decode_rsp(buf, n + 3, &f), 9); /* trailing bytes left */
	assert_int_equal(f.unit, 1);
	assert_int_equal(f.exception, 0);
	assert_int_equal(mbus_rsp_parse(&f, 3, 0, 2, regs), 0);
	assert_int_equal(regs[0], 0x41AC);
	assert_int_equal(mbus_rsp_parse(&f, 3, 0, 3, regs), -EBADMSG); /* count mismatch */
	assert_int_equal(mbus_rsp_parse(&f, 4, 0, 2, regs), -EPROTO);
	/* CRC error. */
	buf[4] ^= 1;
	assert_int_equal(mbus_rtu_decode_rsp(buf, n, &f), -EBADMSG);

	frame(buf, &n, bits, sizeof(bits));
	assert_int_equal(mbus_rtu_decode_rsp(buf, n, &f), (int)n);
	assert_int_equal(mbus_rsp_parse(&f, 1, 0, 10, regs), 0);
	assert_int_equal(regs[0], 1);
	assert_int_equal(regs[1], 0);
	assert_int_equal(regs[2], 1);
	assert_int_equal(regs[8], 1);
	assert_int_equal(regs[9], 0);
	assert_int_equal(mbus_rsp_parse(&f, 1, 0, 17, regs), -EBADMSG);

	frame(buf, &n, exc, sizeof(exc));
	assert_int_equal(n, 5);
	assert_int_equal(mbus_rtu_decode_rsp(buf, n, &f), 5);
	assert_int_equal(f.fc, 3);
	assert_int_equal(f.exception, 2);

	frame(buf, &n, wr, sizeof(wr));
	assert_int_equal(mbus_rtu_decode_rsp(buf, n, &f), 8);
	assert_int_equal(mbus_rsp_parse(&f, 16, 100, 2, regs), 0);
	assert_int_equal(mbus_rsp_parse(&f, 16, 101, 2, regs), -EBADMSG);
	assert_int_equal(mbus_rsp_parse(&f, 16, 100, 3, regs), -EBADMSG);

	frame(buf, &n, bad_fc, sizeof(bad_fc));
	assert_int_equal(mbus_rtu_decode_rsp(buf, n, &f), -EPROTO);
	/* A zero byte count is malformed. */
	buf[0] = 1;
	buf[1] = 3;
	buf[2] = 0;
	assert_int_equal(mbus_rtu_decode_rsp(buf, 5, &f), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_16bit),
		cmocka_unit_test(test_decode_bits),
		cmocka_unit_test(test_decode_32bit_orders),
		cmocka_unit_test(test_decode_64bit_orders),
		cmocka_unit_test(test_decode_string),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_write_fc),
		cmocka_unit_test(test_plan_coalesce),
		cmocka_unit_test(test_plan_limits),
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_crc),
		cmocka_unit_test(test_rtu_request),
		cmocka_unit_test(test_xfer_encode),
		cmocka_unit_test(test_rtu_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
