/*
 * reading.c - readings to topics and payloads, publish policies, commands.
 */
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/reading.h"

static const char *const quality_names[__AD_Q_MAX] = {
	[AD_Q_GOOD] = "good",
	[AD_Q_BAD] = "bad",
	[AD_Q_STALE] = "stale",
};

int gw_reading_topic(const char *prefix, const char *device, const char *point, char *buf,
		     size_t cap)
{
	int n = snprintf(buf, cap, "%s/%s/%s", prefix, device, point);

	if (n < 0 || (size_t)n >= cap)
		return -EMSGSIZE;
	return n;
}

static void wr_str(struct gw_writer *w, const char *s)
{
	gw_wr_bytes(w, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
	size_t n, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void gw_json_string(struct gw_writer *w, struct gw_slice s)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	gw_wr_u8(w, '"');
	while (i < s.len) {
		uint8_t c = s.p[i];
		size_t n;

		switch (c) {
		case '"':
			wr_str(w, "\\\"");
			i++;
			continue;
		case '\\':
			wr_str(w, "\\\\");
			i++;
			continue;
		case '\n':
			wr_str(w, "\\n");
			i++;
			continue;
		case '\r':
			wr_str(w, "\\r");
			i++;
			continue;
		case '\t':
			wr_str(w, "\\t");
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			uint8_t esc[6] = {
				'\\', 'u', '0', '0', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]
			};

			gw_wr_bytes(w, esc, sizeof(esc));
			i++;
			continue;
		}
		n = utf8_seq(s.p + i, s.len - i);
		if (!n) {
			/* Invalid UTF-8 from a device: U+FFFD keeps the JSON valid. */
			wr_str(w, "\xef\xbf\xbd");
			i++;
			continue;
		}
		gw_wr_bytes(w, s.p + i, n);
		i += n;
	}
	gw_wr_u8(w, '"');
}

/*
 * A float32 register value widened to double prints as 21.00041961669922;
 * the shortest form that reads back to the same float (21.00042) is what
 * the device meant.
 */
static void json_float(struct gw_writer *w, double d)
{
	char buf[40];
	int prec;

	for (prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtof(buf, NULL) == (float)d)
			break;
	}
	wr_str(w, buf);
}

void gw_json_double(struct gw_writer *w, double d)
{
	char buf[40];
	int prec;

	if (!isfinite(d)) {
		wr_str(w, "null");
		return;
	}
	if (d == 0) {
		wr_str(w, "0");
		return;
	}
	/* The shortest %g that reads back to the same double. */
	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	wr_str(w, buf);
}

void gw_json_value(struct gw_writer *w, const struct ad_value *v)
{
	char buf[32];

	switch (v->type) {
	case AD_VAL_BOOL:
		wr_str(w, v->b ? "true" : "false");
		break;
	case AD_VAL_INT:
		snprintf(buf, sizeof(buf), "%" PRId64, v->i);
		wr_str(w, buf);
		break;
	case AD_VAL_UINT:
		snprintf(buf, sizeof(buf), "%" PRIu64, v->u);
		wr_str(w, buf);
		break;
	case AD_VAL_DOUBLE:
		gw_json_double(w, v->d);
		break;
	case AD_VAL_STRING:
		gw_json_string(w, v->s);
		break;
	default:
		wr_str(w, "null");
		break;
	}
}

static bool value_finite(const struct ad_value *v)
{
	return v->type != AD_VAL_DOUBLE || isfinite(v->d);
}

static void value_json(struct gw_writer *w, const struct ad_reading *r)
{
	const struct ad_point *pt = r->point;

	if (r->value.type == AD_VAL_DOUBLE && pt && pt->type == AD_PT_FLOAT32 && pt->scale == 1.0 &&
	    pt->offset == 0.0 && r->value.d != 0 && (double)(float)r->value.d == r->value.d)
		json_float(w, r->value.d);
	else
		gw_json_value(w, &r->value);
}

int gw_render_reading(enum gw_payload mode, const struct ad_reading *r, struct gw_writer *w)
{
	bool has = r->value.type != AD_VAL_NONE && value_finite(&r->value);
	enum ad_quality q = value_finite(&r->value) ? r->quality : AD_Q_BAD;
	const char *unit = r->point && r->point->unit ? r->point->unit : "";
	char buf[32];

	if (mode == GW_PAYLOAD_VALUE) {
		if (has)
			value_json(w, r);
		return w->err;
	}
	gw_wr_u8(w, '{');
	if (has) {
		wr_str(w, "\"value\":");
		value_json(w, r);
		gw_wr_u8(w, ',');
	}
	if (*unit) {
		wr_str(w, "\"unit\":");
		gw_json_string(w, gw_slice_cstr(unit));
		gw_wr_u8(w, ',');
	}
	wr_str(w, "\"quality\":\"");
	wr_str(w, quality_names[q < __AD_Q_MAX ? q : AD_Q_BAD]);
	snprintf(buf, sizeof(buf), "\",\"ts\":%" PRId64 "}", r->ts_ms);
	wr_str(w, buf);
	return w->err;
}

/* --------------------------------------------------------- publish policy */

void gw_point_state_fini(struct gw_point_state *st)
{
	gw_free(st->last_str);
	memset(st, 0, sizeof(*st));
}

static double as_double(const struct ad_value *v)
{
	switch (v->type) {
	case AD_VAL_BOOL:
		return v->b;
	case AD_VAL_INT:
		return (double)v->i;
	case AD_VAL_UINT:
		return (double)v->u;
	case AD_VAL_DOUBLE:
		return v->d;
	default:
		return 0;
	}
}

static bool is_number(const struct ad_value *v)
{
	return v->type == AD_VAL_INT || v->type == AD_VAL_UINT || v->type == AD_VAL_DOUBLE;
}

static bool changed(const struct gw_point_state *st, double deadband, const struct ad_value *v)
{
	const struct ad_value *l = &st->last;

	if (l->type != v->type && !(is_number(l) && is_number(v)))
		return true;
	switch (v->type) {
	case AD_VAL_NONE:
		return false;
	case AD_VAL_BOOL:
		return l->b != v->b;
	case AD_VAL_STRING:
		return l->s.len != v->s.len || (v->s.len && memcmp(st->last_str, v->s.p, v->s.len));
	case AD_VAL_INT:
		if (l->type == AD_VAL_INT && deadband == 0)
			return l->i != v->i;
		break;
	case AD_VAL_UINT:
		if (l->type == AD_VAL_UINT && deadband == 0)
			return l->u != v->u;
		break;
	default:
		break;
	}
	{
		double a = as_double(l), b = as_double(v);

		if (isnan(a) || isnan(b))
			return isnan(a) != isnan(b);
		if (deadband == 0)
			return a != b;
		return fabs(b - a) > deadband;
	}
}

bool gw_policy_check(const struct gw_point_state *st, enum ad_publish policy, double deadband,
		     const struct ad_reading *r, int64_t now_mono_ms, uint64_t heartbeat_ms)
{
	if (!st->published || policy == AD_PUB_EVERY_POLL)
		return true;
	if (st->last_quality != r->quality)
		return true;
	/* A bad or stale reading repeats the last value: only its quality matters. */
	if (r->quality == AD_Q_GOOD && changed(st, deadband, &r->value))
		return true;
	if (policy == AD_PUB_ON_CHANGE_OR_PERIOD &&
	    now_mono_ms - st->last_pub_mono_ms >= (int64_t)heartbeat_ms)
		return true;
	return false;
}

int gw_policy_commit(struct gw_point_state *st, const struct ad_reading *r, int64_t now_mono_ms)
{
	if (r->value.type == AD_VAL_STRING && r->value.s.p == (const uint8_t *)st->last_str) {
		/* republishing the value we hold (a bad or stale reading): nothing to copy */
	} else if (r->value.type == AD_VAL_STRING) {
		char *copy = gw_realloc(st->last_str, r->value.s.len ? r->value.s.len : 1);

		if (!copy)
			return -ENOMEM;
		if (r->value.s.len)
			memcpy(copy, r->value.s.p, r->value.s.len);
		st->last_str = copy;
		st->last = r->value;
		st->last.s.p = (const uint8_t *)copy;
	} else if (r->value.type != AD_VAL_NONE || !st->published) {
		st->last = r->value;
	}
	st->last_quality = r->quality;
	st->last_pub_mono_ms = now_mono_ms;
	st->published = true;
	return 0;
}

/* --------------------------------------------------------------- commands */

static int from_json(const cJSON *j, struct ad_value *out, char *strbuf, size_t strcap,
		     const char **why)
{
	if (cJSON_IsBool(j)) {
		out->type = AD_VAL_BOOL;
		out->b = cJSON_IsTrue(j);
		return 0;
	}
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;

		if (!isfinite(d)) {
			*why = "value is not a finite number";
			return -EINVAL;
		}
		out->type = AD_VAL_DOUBLE;
		out->d = d;
		return 0;
	}
	if (cJSON_IsString(j)) {
		size_t n = strlen(j->valuestring);

		if (n >= strcap) {
			*why = "string value too long";
			return -EINVAL;
		}
		memcpy(strbuf, j->valuestring, n + 1);
		out->type = AD_VAL_STRING;
		out->s.p = (const uint8_t *)strbuf;
		out->s.len = n;
		return 0;
	}
	*why = "expected a number, true/false, a string, or {\"value\": ...}";
	return -EINVAL;
}

int gw_parse_command(struct gw_slice payload, struct ad_value *out, char *strbuf, size_t strcap,
		     const char **why)
{
	cJSON *root, *v;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!payload.len) {
		*why = "empty command";
		return -EINVAL;
	}
	root = cJSON_ParseWithLength((const char *)payload.p, payload.len);
	if (!root) {
		/* A bare word (on, off, hello): a string, if it is printable text. */
		size_t i;

		for (i = 0; i < payload.len; i++) {
			if (payload.p[i] < 0x20 || payload.p[i] == '{' || payload.p[i] == '[') {
				*why = "payload is not valid JSON";
				return -EINVAL;
			}
		}
		if (payload.len >= strcap) {
			*why = "string value too long";
			return -EINVAL;
		}
		memcpy(strbuf, payload.p, payload.len);
		strbuf[payload.len] = '\0';
		out->type = AD_VAL_STRING;
		out->s.p = (const uint8_t *)strbuf;
		out->s.len = payload.len;
		return 0;
	}
	v = root;
	if (cJSON_IsObject(root)) {
		v = cJSON_GetObjectItemCaseSensitive(root, "value");
		if (!v) {
			cJSON_Delete(root);
			*why = "object without a \"value\" member";
			return -EINVAL;
		}
	}
	rc = from_json(v, out, strbuf, strcap, why);
	cJSON_Delete(root);
	return rc;
}

int gw_render_result(bool ok, const char *error, const struct ad_value *v, int64_t ts_ms,
		     struct gw_writer *w)
{
	char buf[40];

	wr_str(w, ok ? "{\"ok\":true" : "{\"ok\":false");
	if (ok && v && v->type != AD_VAL_NONE) {
		wr_str(w, ",\"value\":");
		gw_json_value(w, v);
	}
	if (!ok) {
		wr_str(w, ",\"error\":");
		gw_json_string(w, gw_slice_cstr(error ? error : "failed"));
	}
	snprintf(buf, sizeof(buf), ",\"ts\":%" PRId64 "}", ts_ms);
	wr_str(w, buf);
	return w->err;
}
