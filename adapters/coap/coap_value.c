/*
 * coap_value.c - the CoAP adapter's pure parts: device urls, text/plain
 * payloads and the conversion of a found value to a point's type and scale.
 * Pure: no allocation, no clock, no logging, no I/O.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_int.h"

/* ------------------------------------------------------------------- urls */

int ad_coap_url_split(const char *url, struct ad_coap_device *d, size_t *path_off, const char **why)
{
	const char *p = url, *h, *he, *q;
	size_t hn;
	unsigned long port;

	if (!strncmp(p, "coap://", 7)) {
		d->secure = false;
		p += 7;
	} else if (!strncmp(p, "coaps://", 8)) {
		d->secure = true;
		p += 8;
	} else {
		*why = "expected coap://HOST[:PORT] or coaps://HOST[:PORT]";
		return -EINVAL;
	}
	if (*p == '[') {
		h = p + 1;
		he = strchr(h, ']');
		if (!he) {
			*why = "an IPv6 address needs its closing ]";
			return -EINVAL;
		}
		q = he + 1;
	} else {
		h = p;
		he = h + strcspn(h, ":/?#");
		q = he;
	}
	hn = (size_t)(he - h);
	if (hn == 0 || hn >= sizeof(d->host)) {
		*why = hn ? "host name too long" : "no host";
		return -EINVAL;
	}
	memcpy(d->host, h, hn);
	d->host[hn] = '\0';
	d->port = d->secure ? 5684 : 5683;
	if (*q == ':') {
		char *end;

		port = strtoul(q + 1, &end, 10);
		if (end == q + 1 || port == 0 || port > 65535 || (*end && *end != '/')) {
			*why = "port: expected 1 to 65535";
			return -EINVAL;
		}
		d->port = (uint16_t)port;
		q = end;
	}
	if (*q && *q != '/') {
		*why = "no query or fragment in a device url";
		return -EINVAL;
	}
	if (strpbrk(q, "?#")) {
		*why = "no query or fragment in a device url";
		return -EINVAL;
	}
	*path_off = (size_t)(q - url);
	return 0;
}

/* ------------------------------------------------------------------- text */

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Case-insensitive: do the @n bytes at @p spell the lower-case word @w? */
static bool word_eq(const uint8_t *p, size_t n, const char *w)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (!w[i] || c != (uint8_t)w[i])
			return false;
	}
	return w[n] == '\0';
}

/* A decimal number (JSON's grammar plus a leading '+'), all of @p[0..n). */
static bool number_syntax(const uint8_t *p, size_t n)
{
	size_t i = 0, digits = 0;

	if (i < n && (p[i] == '-' || p[i] == '+'))
		i++;
	while (i < n && p[i] >= '0' && p[i] <= '9')
		i++, digits++;
	if (i < n && p[i] == '.') {
		i++;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return false;
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		size_t e = 0;

		i++;
		if (i < n && (p[i] == '-' || p[i] == '+'))
			i++;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++, e++;
		if (!e)
			return false;
	}
	return i == n;
}

int ad_coap_text_parse(const uint8_t *p, size_t n, struct ad_coap_raw *out)
{
	char buf[AD_COAP_MAX_TEXT + 1];
	size_t i;

	while (n && is_space(p[0]))
		p++, n--;
	while (n && is_space(p[n - 1]))
		n--;
	if (n == 0 || n > AD_COAP_MAX_TEXT)
		return -EBADMSG;
	for (i = 0; i < n; i++)
		if (p[i] == 0)
			return -EBADMSG;
	memset(out, 0, sizeof(*out));
	if (word_eq(p, n, "true") || word_eq(p, n, "on") || word_eq(p, n, "yes") ||
	    word_eq(p, n, "false") || word_eq(p, n, "off") || word_eq(p, n, "no")) {
		out->kind = AD_COAP_RAW_BOOL;
		out->b = word_eq(p, n, "true") || word_eq(p, n, "on") || word_eq(p, n, "yes");
		return 0;
	}
	out->s = (struct gw_slice){ p, n };
	if (!number_syntax(p, n)) {
		out->kind = AD_COAP_RAW_STR;
		return 0;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	out->kind = AD_COAP_RAW_NUM;
	out->num = strtod(buf, NULL);
	if (!memchr(buf, '.', n) && !memchr(buf, 'e', n) && !memchr(buf, 'E', n)) {
		char *end;

		errno = 0;
		out->i = strtoll(buf, &end, 10);
		out->is_int = errno == 0 && *end == '\0';
	}
	return 0;
}

/* ------------------------------------------------------------ conversion */

static const struct {
	double min, max;
} int_range[__AD_PT_MAX] = {
	[AD_PT_INT16] = { -32768.0, 32767.0 },
	[AD_PT_UINT16] = { 0.0, 65535.0 },
	[AD_PT_INT32] = { -2147483648.0, 2147483647.0 },
	[AD_PT_UINT32] = { 0.0, 4294967295.0 },
	[AD_PT_INT64] = { -9223372036854775808.0, 9223372036854775807.0 },
	[AD_PT_UINT64] = { 0.0, 18446744073709551615.0 },
};

int ad_coap_raw_to_value(const struct ad_point *pt, const struct ad_coap_raw *raw,
			 struct ad_value *out)
{
	bool unscaled = pt->scale == 1.0 && pt->offset == 0.0;
	double x;

	memset(out, 0, sizeof(*out));
	switch (pt->type) {
	case AD_PT_BOOL:
	case AD_PT_BIT:
		out->type = AD_VAL_BOOL;
		if (raw->kind == AD_COAP_RAW_BOOL)
			out->b = raw->b;
		else if (raw->kind == AD_COAP_RAW_NUM)
			out->b = raw->num != 0.0;
		else
			return -EINVAL;
		return 0;
	case AD_PT_STRING:
		if (raw->kind == AD_COAP_RAW_BOOL) {
			out->type = AD_VAL_STRING;
			out->s = raw->b ? GW_SLICE_STR("true") : GW_SLICE_STR("false");
			return 0;
		}
		if (!raw->s.p && raw->kind == AD_COAP_RAW_NUM) {
			/* A JSON number: published as a number, the text is gone. */
			out->type = AD_VAL_DOUBLE;
			out->d = raw->num;
			return 0;
		}
		out->type = AD_VAL_STRING;
		out->s = raw->s;
		return 0;
	case AD_PT_FLOAT32:
	case AD_PT_FLOAT64:
		if (raw->kind == AD_COAP_RAW_BOOL)
			x = raw->b;
		else if (raw->kind == AD_COAP_RAW_NUM)
			x = raw->num;
		else
			return -EINVAL;
		out->type = AD_VAL_DOUBLE;
		out->d = unscaled ? x : x * pt->scale + pt->offset;
		if (pt->type == AD_PT_FLOAT32 && unscaled)
			out->d = (float)out->d;
		return 0;
	default:
		break;
	}
	/* the integer types */
	if (raw->kind == AD_COAP_RAW_BOOL)
		x = raw->b;
	else if (raw->kind == AD_COAP_RAW_NUM)
		x = raw->num;
	else
		return -EINVAL;
	if (!unscaled) {
		out->type = AD_VAL_DOUBLE;
		out->d = x * pt->scale + pt->offset;
		return 0;
	}
	if (isnan(x) || x < int_range[pt->type].min || x > int_range[pt->type].max)
		return -ERANGE;
	if (raw->kind == AD_COAP_RAW_NUM && raw->is_int) {
		if (pt->type == AD_PT_UINT64 && raw->i < 0)
			return -ERANGE;
		out->type = AD_VAL_INT;
		out->i = raw->i;
		return 0;
	}
	if (x != floor(x))
		return -ERANGE; /* 21.5 is not an int16 */
	if (pt->type == AD_PT_UINT64 && x >= 9223372036854775808.0) {
		out->type = AD_VAL_UINT;
		out->u = (uint64_t)x;
		return 0;
	}
	if (x >= 9223372036854775808.0)
		return -ERANGE;
	out->type = AD_VAL_INT;
	out->i = (int64_t)x;
	return 0;
}

/* ------------------------------------------------------------------ names */

const char *ad_coap_err_name(int err, char *buf, size_t n)
{
	if (err > 0) {
		snprintf(buf, n, "%u.%02u", (unsigned int)err >> 5, (unsigned int)err & 31);
		return buf;
	}
	switch (err) {
	case 0:
		return "ok";
	case -ETIMEDOUT:
		return "timeout";
	case -ECONNRESET:
		return "reset (RST)";
	case -EHOSTUNREACH:
		return "host unreachable";
	case -ECONNREFUSED:
		return "port unreachable";
	case -EBADMSG:
		return "unreadable payload";
	case -ERANGE:
		return "value out of range";
	case -ENOENT:
		return "no such value in the payload";
	default:
		snprintf(buf, n, "error %d", -err);
		return buf;
	}
}
