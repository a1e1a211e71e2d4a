/*
 * mbus_codec.c - point values to and from Modbus registers: every type, the
 * four byte orders (and their 64-bit equivalents), strings in both byte
 * packings, scale and offset. Pure: no allocation, no logging, no I/O.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "mbus_int.h"

static bool is_bit_area(enum ad_area a)
{
	return a == AD_AREA_COIL || a == AD_AREA_DISCRETE;
}

static uint16_t bswap16(uint16_t v)
{
	return (uint16_t)(v << 8 | v >> 8);
}

/*
 * Registers to a raw big-endian integer of n words. Word order is reversed
 * for CDAB / DCBA (GHEFCDAB / HGFEDCBA), bytes are swapped in each word for
 * BADC / DCBA (BADCFEHG / HGFEDCBA).
 */
static uint64_t gather(const uint16_t *regs, unsigned int n, enum ad_byte_order bo)
{
	bool wswap = bo == AD_BO_CDAB || bo == AD_BO_DCBA;
	bool bswap = bo == AD_BO_BADC || bo == AD_BO_DCBA;
	uint64_t raw = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t w = regs[wswap ? n - 1 - i : i];

		raw = raw << 16 | (bswap ? bswap16(w) : w);
	}
	return raw;
}

static void scatter(uint64_t raw, unsigned int n, enum ad_byte_order bo, uint16_t *regs)
{
	bool wswap = bo == AD_BO_CDAB || bo == AD_BO_DCBA;
	bool bswap = bo == AD_BO_BADC || bo == AD_BO_DCBA;
	unsigned int i;

	for (i = 0; i < n; i++) {
		/* Word i of the big-endian value, most significant first. */
		uint16_t w = (uint16_t)(raw >> (16 * (n - 1 - i)));

		regs[wswap ? n - 1 - i : i] = bswap ? bswap16(w) : w;
	}
}

static bool unscaled(const struct ad_point *pt)
{
	return pt->scale == 1.0 && pt->offset == 0.0;
}

static void set_int(const struct ad_point *pt, int64_t raw, struct ad_value *out)
{
	if (unscaled(pt)) {
		out->type = AD_VAL_INT;
		out->i = raw;
	} else {
		out->type = AD_VAL_DOUBLE;
		out->d = (double)raw * pt->scale + pt->offset;
	}
}

static void set_uint(const struct ad_point *pt, uint64_t raw, struct ad_value *out)
{
	if (unscaled(pt)) {
		out->type = AD_VAL_UINT;
		out->u = raw;
	} else {
		out->type = AD_VAL_DOUBLE;
		out->d = (double)raw * pt->scale + pt->offset;
	}
}

static void set_double(const struct ad_point *pt, double raw, struct ad_value *out)
{
	out->type = AD_VAL_DOUBLE;
	out->d = unscaled(pt) ? raw : raw * pt->scale + pt->offset;
}

int mbus_decode(const struct ad_point *pt, const uint16_t *regs, size_t n, uint8_t *strbuf,
		size_t strcap, struct ad_value *out)
{
	unsigned int width = ad_point_regs(pt);
	enum ad_byte_order bo =
		mbus_pt(pt)->byte_order == AD_BO_INHERIT ? AD_BO_ABCD : mbus_pt(pt)->byte_order;
	uint64_t raw;
	size_t i, len;

	if (n < width || width == 0)
		return -EBADMSG;
	if (is_bit_area(mbus_pt(pt)->area) != (pt->type == AD_PT_BOOL))
		return -EINVAL;
	switch (pt->type) {
	case AD_PT_BOOL:
		out->type = AD_VAL_BOOL;
		out->b = regs[0] != 0;
		return 0;
	case AD_PT_BIT:
		if (mbus_pt(pt)->bit > 15)
			return -EINVAL;
		out->type = AD_VAL_BOOL;
		out->b = (regs[0] >> mbus_pt(pt)->bit) & 1;
		return 0;
	case AD_PT_INT16:
		set_int(pt, (int16_t)regs[0], out);
		return 0;
	case AD_PT_UINT16:
		set_uint(pt, regs[0], out);
		return 0;
	case AD_PT_INT32:
		set_int(pt, (int32_t)(uint32_t)gather(regs, 2, bo), out);
		return 0;
	case AD_PT_UINT32:
		set_uint(pt, (uint32_t)gather(regs, 2, bo), out);
		return 0;
	case AD_PT_INT64:
		set_int(pt, (int64_t)gather(regs, 4, bo), out);
		return 0;
	case AD_PT_UINT64:
		set_uint(pt, gather(regs, 4, bo), out);
		return 0;
	case AD_PT_FLOAT32: {
		uint32_t r32 = (uint32_t)gather(regs, 2, bo);
		float f;

		memcpy(&f, &r32, sizeof(f));
		set_double(pt, f, out);
		return 0;
	}
	case AD_PT_FLOAT64: {
		double d;

		raw = gather(regs, 4, bo);
		memcpy(&d, &raw, sizeof(d));
		set_double(pt, d, out);
		return 0;
	}
	case AD_PT_STRING:
		if (strcap < 2 * (size_t)width)
			return -EMSGSIZE;
		for (i = 0; i < width; i++) {
			uint16_t w = mbus_pt(pt)->string_swap ? bswap16(regs[i]) : regs[i];

			strbuf[2 * i] = (uint8_t)(w >> 8);
			strbuf[2 * i + 1] = (uint8_t)w;
		}
		/* A device pads with NULs; stop at the first. */
		for (len = 0; len < 2 * (size_t)width && strbuf[len]; len++)
			;
		out->type = AD_VAL_STRING;
		out->s.p = strbuf;
		out->s.len = len;
		return 0;
	default:
		return -EINVAL;
	}
}

/* ----------------------------------------------------------------- encode */

struct int_range {
	bool is_signed;
	int64_t smin, smax;
	uint64_t umax;
};

static const struct int_range int_ranges[__AD_PT_MAX] = {
	[AD_PT_INT16] = { true, INT16_MIN, INT16_MAX, 0 },
	[AD_PT_UINT16] = { false, 0, 0, UINT16_MAX },
	[AD_PT_INT32] = { true, INT32_MIN, INT32_MAX, 0 },
	[AD_PT_UINT32] = { false, 0, 0, UINT32_MAX },
	[AD_PT_INT64] = { true, INT64_MIN, INT64_MAX, 0 },
	[AD_PT_UINT64] = { false, 0, 0, UINT64_MAX },
};

/*
 * The raw integer for an integer point. Unscaled integers are taken exactly
 * (so 64-bit values survive); anything else goes through a double, must come
 * out whole (within rounding noise such as 21.5 / 0.1 = 215.00000000000003)
 * and within the type's range. On success the value is in *s (signed types)
 * or *u (unsigned types).
 */
static int to_raw_int(const struct ad_point *pt, const struct ad_value *v, int64_t *s, uint64_t *u,
		      const char **why)
{
	const struct int_range *r = &int_ranges[pt->type];
	double d, rd;

	if (unscaled(pt) && v->type == AD_VAL_INT) {
		if (r->is_signed ? v->i < r->smin || v->i > r->smax
				 : v->i < 0 || (uint64_t)v->i > r->umax)
			goto range;
		*s = v->i;
		*u = (uint64_t)v->i;
		return 0;
	}
	if (unscaled(pt) && v->type == AD_VAL_UINT) {
		if (r->is_signed ? v->u > (uint64_t)r->smax : v->u > r->umax)
			goto range;
		*s = (int64_t)v->u;
		*u = v->u;
		return 0;
	}
	if (v->type == AD_VAL_INT)
		d = (double)v->i;
	else if (v->type == AD_VAL_UINT)
		d = (double)v->u;
	else
		d = v->d;
	if (!isfinite(d)) {
		*why = "value is not a finite number";
		return -EINVAL;
	}
	d = (d - pt->offset) / pt->scale;
	rd = nearbyint(d);
	if (fabs(d - rd) > 1e-6 * GW_MAX(1.0, fabs(d))) {
		*why = "value is not a whole number of the point's scale";
		return -EINVAL;
	}
	/* 2^63 and 2^64 are exact doubles: compare against them, not against
	 * INT64_MAX / UINT64_MAX, which round up to them. */
	if (r->is_signed) {
		if (rd < (double)r->smin || rd > (double)r->smax || rd >= 9223372036854775808.0)
			goto range;
		*s = (int64_t)rd;
		*u = (uint64_t)*s;
	} else {
		if (rd < 0 || rd > (double)r->umax || rd >= 18446744073709551616.0)
			goto range;
		*u = (uint64_t)rd;
		*s = (int64_t)*u;
	}
	return 0;
range:
	*why = "value out of range for the point's type";
	return -ERANGE;
}

int mbus_encode(const struct ad_point *pt, const struct ad_value *v, uint16_t *regs, size_t cap,
		size_t *n_out, const char **why)
{
	unsigned int width = ad_point_regs(pt);
	enum ad_byte_order bo =
		mbus_pt(pt)->byte_order == AD_BO_INHERIT ? AD_BO_ABCD : mbus_pt(pt)->byte_order;
	int64_t s = 0;
	uint64_t u = 0;
	double d;
	int rc;

	*why = NULL;
	if (!pt->writable) {
		*why = "point is read-only";
		return -EACCES;
	}
	if (mbus_pt(pt)->area == AD_AREA_DISCRETE || mbus_pt(pt)->area == AD_AREA_INPUT) {
		*why = "discrete inputs and input registers are read-only";
		return -EACCES;
	}
	if (pt->type == AD_PT_BIT) {
		*why = "writing one bit of a register is not supported";
		return -EACCES;
	}
	if (cap < width) {
		*why = "point too wide for one write request";
		return -EINVAL;
	}
	if (v->type == AD_VAL_NONE || v->type >= __AD_VAL_MAX) {
		*why = "no value";
		return -EINVAL;
	}
	if ((pt->type == AD_PT_STRING) != (v->type == AD_VAL_STRING)) {
		*why = v->type == AD_VAL_STRING ? "a string cannot be written to a numeric point"
						: "a string point takes a string";
		return -EINVAL;
	}
	if (pt->type == AD_PT_BOOL) {
		/* true/false, or 0 / 1 as a number. */
		if (v->type == AD_VAL_BOOL)
			regs[0] = v->b;
		else if ((v->type == AD_VAL_INT && (v->i == 0 || v->i == 1)) ||
			 (v->type == AD_VAL_UINT && v->u <= 1) ||
			 (v->type == AD_VAL_DOUBLE && (v->d == 0.0 || v->d == 1.0)))
			regs[0] = v->type == AD_VAL_INT	   ? (uint16_t)v->i
				  : v->type == AD_VAL_UINT ? (uint16_t)v->u
							   : (uint16_t)v->d;
		else {
			*why = "a bool point takes true, false, 0 or 1";
			return -EINVAL;
		}
		*n_out = 1;
		return 0;
	}
	if (v->type == AD_VAL_BOOL) {
		*why = "a bool cannot be written to a numeric point";
		return -EINVAL;
	}
	switch (pt->type) {
	case AD_PT_INT16:
	case AD_PT_UINT16:
	case AD_PT_INT32:
	case AD_PT_UINT32:
	case AD_PT_INT64:
	case AD_PT_UINT64:
		rc = to_raw_int(pt, v, &s, &u, why);
		if (rc)
			return rc;
		scatter(u, width, bo, regs);
		break;
	case AD_PT_FLOAT32:
	case AD_PT_FLOAT64: {
		d = v->type == AD_VAL_INT    ? (double)v->i
		    : v->type == AD_VAL_UINT ? (double)v->u
					     : v->d;
		if (!isfinite(d)) {
			*why = "value is not a finite number";
			return -EINVAL;
		}
		d = unscaled(pt) ? d : (d - pt->offset) / pt->scale;
		if (pt->type == AD_PT_FLOAT32) {
			float f;
			uint32_t r32;

			if (fabs(d) > FLT_MAX) {
				*why = "value out of range for float32";
				return -ERANGE;
			}
			f = (float)d;
			memcpy(&r32, &f, sizeof(r32));
			scatter(r32, 2, bo, regs);
		} else {
			memcpy(&u, &d, sizeof(u));
			scatter(u, 4, bo, regs);
		}
		break;
	}
	case AD_PT_STRING: {
		size_t i;

		if (v->s.len > 2 * (size_t)width) {
			*why = "string longer than the point";
			return -ERANGE;
		}
		for (i = 0; i < width; i++) {
			uint8_t hi = 2 * i < v->s.len ? v->s.p[2 * i] : 0;
			uint8_t lo = 2 * i + 1 < v->s.len ? v->s.p[2 * i + 1] : 0;
			uint16_t w = (uint16_t)(hi << 8 | lo);

			regs[i] = mbus_pt(pt)->string_swap ? bswap16(w) : w;
		}
		break;
	}
	default:
		*why = "unknown point type";
		return -EINVAL;
	}
	*n_out = width;
	return 0;
}

int mbus_write_fc(const struct ad_point *pt, size_t n, bool multiple_always)
{
	if (mbus_pt(pt)->area == AD_AREA_COIL)
		return n == 1 && !multiple_always ? MBUS_FC_WRITE_COIL : MBUS_FC_WRITE_COILS;
	return n == 1 && !multiple_always ? MBUS_FC_WRITE_REGISTER : MBUS_FC_WRITE_REGISTERS;
}

static const char *const exceptions[] = {
	[1] = "illegal function",
	[2] = "illegal data address",
	[3] = "illegal data value",
	[4] = "server device failure",
	[5] = "acknowledge",
	[6] = "server device busy",
	[7] = "negative acknowledge",
	[8] = "memory parity error",
	[10] = "gateway path unavailable",
	[11] = "gateway target device failed to respond",
};

const char *mbus_exception_str(uint8_t code)
{
	if (code < GW_ARRAY_SIZE(exceptions) && exceptions[code])
		return exceptions[code];
	return "unknown exception";
}
