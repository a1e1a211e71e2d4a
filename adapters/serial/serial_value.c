/*
 * serial_value.c - text and numbers from a line to typed point values, and
 * values back to text through a write_command template. Pure.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/serial/serial_int.h"

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Limits of each integer type (bool, bit and float types are not looked at). */
static const struct {
	int64_t min;
	uint64_t max;
} int_range[__AD_PT_MAX] = {
	[AD_PT_INT16] = { INT16_MIN, INT16_MAX }, [AD_PT_UINT16] = { 0, UINT16_MAX },
	[AD_PT_INT32] = { INT32_MIN, INT32_MAX }, [AD_PT_UINT32] = { 0, UINT32_MAX },
	[AD_PT_INT64] = { INT64_MIN, INT64_MAX }, [AD_PT_UINT64] = { 0, UINT64_MAX },
};

static bool is_int_type(enum ad_point_type t)
{
	return t >= AD_PT_INT16 && t <= AD_PT_UINT64;
}

static bool scaled(double scale, double offset)
{
	return scale != 1 || offset != 0;
}

int ser_convert_num(enum ad_point_type type, double scale, double offset, double d,
		    struct ad_value *out)
{
	if (isnan(d))
		return -EINVAL;
	switch (type) {
	case AD_PT_BOOL:
	case AD_PT_BIT:
		out->type = AD_VAL_BOOL;
		out->b = d != 0;
		return 0;
	case AD_PT_STRING:
		return -EINVAL; /* numbers become text through the text path */
	case AD_PT_FLOAT32:
	case AD_PT_FLOAT64:
		if (!isfinite(d))
			return -ERANGE;
		out->type = AD_VAL_DOUBLE;
		out->d = d * scale + offset;
		return 0;
	default:
		break;
	}
	if (!is_int_type(type) || d != floor(d))
		return -EINVAL;
	if (d < (double)int_range[type].min || d > (double)int_range[type].max ||
	    d >= 18446744073709551616.0)
		return -ERANGE;
	if (scaled(scale, offset)) {
		out->type = AD_VAL_DOUBLE;
		out->d = d * scale + offset;
	} else if (d < 0 || type == AD_PT_INT16 || type == AD_PT_INT32 || type == AD_PT_INT64) {
		if (d >= 9223372036854775808.0)
			return -ERANGE;
		out->type = AD_VAL_INT;
		out->i = (int64_t)d;
	} else {
		out->type = AD_VAL_UINT;
		out->u = (uint64_t)d;
	}
	return 0;
}

static int parse_bool(const char *s, bool *b)
{
	static const char *const t[] = { "1", "true", "on", "yes" };
	static const char *const f[] = { "0", "false", "off", "no" };
	unsigned int i;
	char *end;
	double d;

	for (i = 0; i < GW_ARRAY_SIZE(t); i++) {
		if (!strcasecmp(s, t[i])) {
			*b = true;
			return 0;
		}
		if (!strcasecmp(s, f[i])) {
			*b = false;
			return 0;
		}
	}
	d = strtod(s, &end);
	if (end == s || *end || isnan(d))
		return -EINVAL;
	*b = d != 0;
	return 0;
}

/* An integer in decimal or 0x hex; a decimal with a zero fraction ("21.0") too. */
static int parse_int(const char *s, enum ad_point_type type, struct ad_value *v)
{
	bool neg = s[0] == '-';
	const char *digits = s + (s[0] == '-' || s[0] == '+');
	int base = 10;
	char *end;

	if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
		base = 16;
		digits += 2;
	}
	if (!((digits[0] >= '0' && digits[0] <= '9') ||
	      (base == 16 && ((digits[0] | 0x20) >= 'a' && (digits[0] | 0x20) <= 'f'))))
		return -EINVAL;
	errno = 0;
	if (neg) {
		long long i = strtoll(base == 16 ? digits : s, &end, base);

		if (base == 16)
			i = -i;
		if (*end)
			goto fraction;
		if (errno == ERANGE || i < int_range[type].min)
			return -ERANGE;
		v->type = AD_VAL_INT;
		v->i = i;
		return 0;
	} else {
		unsigned long long u = strtoull(digits, &end, base);

		if (*end)
			goto fraction;
		if (errno == ERANGE || u > int_range[type].max)
			return -ERANGE;
		if (type == AD_PT_INT16 || type == AD_PT_INT32 || type == AD_PT_INT64) {
			v->type = AD_VAL_INT;
			v->i = (int64_t)u;
		} else {
			v->type = AD_VAL_UINT;
			v->u = u;
		}
		return 0;
	}
fraction:
	if (base == 16)
		return -EINVAL;
	{
		double d = strtod(s, &end);

		if (*end)
			return -EINVAL;
		return ser_convert_num(type, 1, 0, d, v);
	}
}

int ser_convert_text(enum ad_point_type type, double scale, double offset, const uint8_t *p,
		     size_t len, struct ad_value *out)
{
	char buf[SER_TEXT_MAX + 1];
	char *end;
	int rc;

	while (len && is_blank(p[0])) {
		p++;
		len--;
	}
	while (len && is_blank(p[len - 1]))
		len--;
	if (type == AD_PT_STRING) {
		out->type = AD_VAL_STRING;
		out->s.p = p;
		out->s.len = len;
		return 0;
	}
	if (!len)
		return -EINVAL;
	if (len > SER_TEXT_MAX)
		return -ERANGE;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		return -EINVAL;
	switch (type) {
	case AD_PT_BOOL:
	case AD_PT_BIT:
		out->type = AD_VAL_BOOL;
		return parse_bool(buf, &out->b);
	case AD_PT_FLOAT32:
	case AD_PT_FLOAT64: {
		double d;

		if (!((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-' || buf[0] == '+' ||
		      buf[0] == '.'))
			return -EINVAL; /* no "nan", "inf", hex floats from a device */
		d = strtod(buf, &end);
		if (end == buf || *end)
			return -EINVAL;
		return ser_convert_num(type, scale, offset, d, out);
	}
	default:
		break;
	}
	if (!is_int_type(type))
		return -EINVAL;
	rc = parse_int(buf, type, out);
	if (rc || !scaled(scale, offset))
		return rc;
	out->d = (out->type == AD_VAL_INT ? (double)out->i : (double)out->u) * scale + offset;
	out->type = AD_VAL_DOUBLE;
	return 0;
}

/* -------------------------------------------------------------- commands */

int ser_fmt_compile(const uint8_t *tmpl, size_t len, struct ser_fmt *f, const char **why)
{
	size_t i;
	bool found = false;

	if (len > sizeof(f->text)) {
		*why = "write_command: longer than 256 bytes";
		return -EINVAL;
	}
	memset(f, 0, sizeof(*f));
	memcpy(f->text, tmpl, len);
	f->len = len;
	for (i = 0; i < len; i++) {
		size_t j = i + 1;

		if (tmpl[i] != '%')
			continue;
		if (j < len && tmpl[j] == '%') {
			i = j;
			continue;
		}
		while (j < len && strchr("-+ #0", tmpl[j]))
			j++;
		while (j < len && tmpl[j] >= '0' && tmpl[j] <= '9')
			j++;
		if (j < len && tmpl[j] == '.') {
			j++;
			while (j < len && tmpl[j] >= '0' && tmpl[j] <= '9')
				j++;
		}
		if (j >= len || !strchr("vdiuxXofFeEgGs", tmpl[j]) || tmpl[j] == '\0') {
			*why = "write_command: a conversion must be %v or one of d i u x X o f F e E g G s (with flags, width, precision)";
			return -EINVAL;
		}
		if (j - i > 16) {
			*why = "write_command: conversion too long";
			return -EINVAL;
		}
		if (found) {
			*why = "write_command: more than one conversion (write %% for a percent sign)";
			return -EINVAL;
		}
		found = true;
		f->conv_at = i;
		f->conv_len = j - i + 1;
		f->conv = (char)tmpl[j];
		if (f->conv == 'v' && j != i + 1) {
			*why = "write_command: %v takes no flags, width or precision";
			return -EINVAL;
		}
		i = j;
	}
	if (!found) {
		*why = "write_command: no conversion for the value (%v, %d, %.1f, ...)";
		return -EINVAL;
	}
	return 0;
}

/* The literal text between conversions, with %% as %. */
static void put_literal(struct gw_writer *w, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		gw_wr_u8(w, p[i]);
		if (p[i] == '%' && i + 1 < n && p[i + 1] == '%')
			i++;
	}
}

/* Shortest text that reads back as @d. */
static int shortest(double d, char *buf, size_t cap)
{
	int prec, n = 0;

	for (prec = 1; prec <= 17; prec++) {
		n = snprintf(buf, cap, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return n;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
int ser_fmt_render(const struct ser_fmt *f, const struct ad_value *v, double scale, double offset,
		   uint8_t *out, size_t cap, const char **why)
{
	char spec[24], conv[128];
	struct gw_writer w;
	double d = 0;
	bool is_num = true;
	int n = 0;

	switch (v->type) {
	case AD_VAL_BOOL:
		d = v->b;
		break;
	case AD_VAL_INT:
		d = (double)v->i;
		break;
	case AD_VAL_UINT:
		d = (double)v->u;
		break;
	case AD_VAL_DOUBLE:
		d = v->d;
		break;
	case AD_VAL_STRING:
		is_num = false;
		break;
	default:
		*why = "no value";
		return -EINVAL;
	}
	if (is_num) {
		if (!isfinite(d)) {
			*why = "value is not a finite number";
			return -EINVAL;
		}
		if (scaled(scale, offset))
			d = (d - offset) / scale;
	}
	memcpy(spec, f->text + f->conv_at, f->conv_len);
	spec[f->conv_len] = '\0';
	switch (f->conv) {
	case 'v':
	case 's':
		if (!is_num) {
			if (f->conv == 's') {
				/* Width and precision apply; the text goes through %.*s. */
				char str[SER_MAX_CMD];
				size_t sl = GW_MIN(v->s.len, sizeof(str) - 1);

				memcpy(str, v->s.p, sl);
				str[sl] = '\0';
				if (memchr(str, '\0', sl)) {
					*why = "value contains a NUL byte";
					return -EINVAL;
				}
				n = snprintf(conv, sizeof(conv), spec, str);
			} else {
				if (v->s.len >= sizeof(conv)) {
					*why = "value too long for the command";
					return -EMSGSIZE;
				}
				memcpy(conv, v->s.p, v->s.len);
				n = (int)v->s.len;
			}
		} else if (v->type == AD_VAL_INT && !scaled(scale, offset)) {
			n = snprintf(conv, sizeof(conv), "%" PRId64, v->i);
		} else if (v->type == AD_VAL_UINT && !scaled(scale, offset)) {
			n = snprintf(conv, sizeof(conv), "%" PRIu64, v->u);
		} else if (v->type == AD_VAL_BOOL) {
			n = snprintf(conv, sizeof(conv), "%d", v->b ? 1 : 0);
		} else {
			char num[40];

			shortest(d, num, sizeof(num));
			n = f->conv == 's' ? snprintf(conv, sizeof(conv), spec, num)
					   : snprintf(conv, sizeof(conv), "%s", num);
		}
		break;
	case 'd':
	case 'i':
	case 'u':
	case 'x':
	case 'X':
	case 'o': {
		char ispec[32];

		if (!is_num) {
			*why = "the command takes a number";
			return -EINVAL;
		}
		if (d != floor(d)) {
			*why = "the command takes an integer";
			return -EINVAL;
		}
		if (f->conv == 'd' || f->conv == 'i') {
			if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
				*why = "value out of range";
				return -ERANGE;
			}
			snprintf(ispec, sizeof(ispec), "%.*sll%c", (int)f->conv_len - 1, spec,
				 f->conv);
			n = snprintf(conv, sizeof(conv), ispec, (long long)d);
		} else {
			if (d < 0 || d >= 18446744073709551616.0) {
				*why = d < 0 ? "the command takes a non-negative integer"
					     : "value out of range";
				return -ERANGE;
			}
			snprintf(ispec, sizeof(ispec), "%.*sll%c", (int)f->conv_len - 1, spec,
				 f->conv);
			n = snprintf(conv, sizeof(conv), ispec, (unsigned long long)d);
		}
		break;
	}
	default: /* f F e E g G */
		if (!is_num) {
			*why = "the command takes a number";
			return -EINVAL;
		}
		n = snprintf(conv, sizeof(conv), spec, d);
		break;
	}
	if (n < 0 || (size_t)n >= sizeof(conv)) {
		*why = "value too long for the command";
		return -EMSGSIZE;
	}
	gw_writer_init(&w, out, cap);
	put_literal(&w, f->text, f->conv_at);
	gw_wr_bytes(&w, conv, (size_t)n);
	put_literal(&w, f->text + f->conv_at + f->conv_len, f->len - f->conv_at - f->conv_len);
	if (w.err) {
		*why = "command longer than 256 bytes";
		return -EMSGSIZE;
	}
	return (int)w.len;
}
#pragma GCC diagnostic pop
