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

/* ----------------------------------------------------------------- writes */

/* A bounded appender: remembers overflow, written once at the end. */
struct out {
	char *p;
	size_t cap, n;
	bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->n + n >= o->cap) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* @s as a JSON string, quotes included; control bytes as \u00XX. */
static void put_json_str(struct out *o, const uint8_t *s, size_t n)
{
	size_t i;

	put(o, "\"", 1);
	for (i = 0; i < n; i++) {
		char e[8];

		if (s[i] == '"' || s[i] == '\\') {
			e[0] = '\\';
			e[1] = (char)s[i];
			put(o, e, 2);
		} else if (s[i] < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", s[i]);
			put(o, e, 6);
		} else {
			put(o, (const char *)&s[i], 1);
		}
	}
	put(o, "\"", 1);
}

/* A pointer token unescaped [RFC 6901 4] as a JSON key. */
static void put_json_key(struct out *o, const char *tok, size_t n)
{
	uint8_t k[256];
	size_t i, m = 0;

	for (i = 0; i < n && m < sizeof(k); i++) {
		if (tok[i] == '~' && i + 1 < n && (tok[i + 1] == '0' || tok[i + 1] == '1')) {
			k[m++] = tok[i + 1] == '0' ? '~' : '/';
			i++;
		} else {
			k[m++] = (uint8_t)tok[i];
		}
	}
	put_json_str(o, k, m);
}

/* The value in device units, as JSON / text; what the point's type allows. */
static int put_value(struct out *o, const struct ad_point *pt, const struct ad_value *v, bool json,
		     const char **why)
{
	bool unscaled = pt->scale == 1.0 && pt->offset == 0.0;
	char num[40];
	double x;

	if (pt->type == AD_PT_STRING) {
		if (v->type != AD_VAL_STRING) {
			*why = "expected a string";
			return -EINVAL;
		}
		if (json)
			put_json_str(o, v->s.p, v->s.len);
		else
			put(o, (const char *)v->s.p, v->s.len);
		return 0;
	}
	if (v->type == AD_VAL_STRING || v->type == AD_VAL_NONE) {
		*why = "expected a number or a boolean";
		return -EINVAL;
	}
	if (pt->type == AD_PT_BOOL || pt->type == AD_PT_BIT) {
		bool b = v->type == AD_VAL_BOOL	  ? v->b
			 : v->type == AD_VAL_INT  ? v->i != 0
			 : v->type == AD_VAL_UINT ? v->u != 0
						  : v->d != 0.0;

		puts_(o, b ? "true" : "false");
		return 0;
	}
	x = v->type == AD_VAL_BOOL   ? (double)v->b
	    : v->type == AD_VAL_INT  ? (double)v->i
	    : v->type == AD_VAL_UINT ? (double)v->u
				     : v->d;
	if (!unscaled) {
		if (pt->scale == 0.0) {
			*why = "scale is 0";
			return -EINVAL;
		}
		x = (x - pt->offset) / pt->scale;
	}
	if (!isfinite(x)) {
		*why = "not a finite number";
		return -ERANGE;
	}
	if (pt->type == AD_PT_FLOAT32 || pt->type == AD_PT_FLOAT64) {
		if (pt->type == AD_PT_FLOAT32)
			x = (float)x;
		snprintf(num, sizeof(num), "%.17g", x);
		/* whole numbers without an exponent, else the shortest text that reads back the same */
		for (int prec = x == floor(x) && fabs(x) < 1e15 ? 18 : 1; prec <= 17; prec++) {
			char t[40];

			snprintf(t, sizeof(t), "%.*g", prec, x);
			if (strtod(t, NULL) == x) {
				memcpy(num, t, sizeof(t));
				break;
			}
		}
		if (x == floor(x) && fabs(x) < 1e15)
			snprintf(num, sizeof(num), "%.0f", x);
		puts_(o, num);
		return 0;
	}
	x = nearbyint(x);
	if (x < int_range[pt->type].min || x > int_range[pt->type].max) {
		*why = "out of the point's range";
		return -ERANGE;
	}
	if (x >= 9223372036854775808.0)
		snprintf(num, sizeof(num), "%llu", (unsigned long long)x);
	else
		snprintf(num, sizeof(num), "%lld", (long long)x);
	puts_(o, num);
	return 0;
}

int ad_coap_write_payload(const struct ad_point *pt, const struct ad_value *v, char *buf,
			  size_t cap, size_t *len, int *cf, const char **why)
{
	const struct ad_coap_point *cp = pt->ext;
	enum ad_coap_format f = cp->format;
	struct out o = { .p = buf, .cap = cap };
	int rc;

	if (cap)
		buf[0] = '\0';
	if (f == AD_COAP_FMT_AUTO)
		f = cp->json_pointer && *cp->json_pointer ? AD_COAP_FMT_JSON
		    : cp->senml_name && *cp->senml_name	  ? AD_COAP_FMT_SENML
							  : AD_COAP_FMT_TEXT;
	switch (f) {
	case AD_COAP_FMT_JSON: {
		const char *ptr = cp->json_pointer ? cp->json_pointer : "";
		unsigned int depth = 0;

		*cf = AD_COAP_CF_JSON;
		while (*ptr == '/') {
			size_t n = strcspn(ptr + 1, "/");

			put(&o, "{", 1);
			put_json_key(&o, ptr + 1, n);
			put(&o, ":", 1);
			depth++;
			ptr += 1 + n;
		}
		rc = put_value(&o, pt, v, true, why);
		while (depth--)
			put(&o, "}", 1);
		break;
	}
	case AD_COAP_FMT_SENML:
		*cf = AD_COAP_CF_SENML_JSON;
		puts_(&o, "[{\"n\":");
		put_json_str(&o, (const uint8_t *)(cp->senml_name ? cp->senml_name : ""),
			     cp->senml_name ? strlen(cp->senml_name) : 0);
		puts_(&o, pt->type == AD_PT_STRING			    ? ",\"vs\":"
			  : pt->type == AD_PT_BOOL || pt->type == AD_PT_BIT ? ",\"vb\":"
									    : ",\"v\":");
		rc = put_value(&o, pt, v, true, why);
		puts_(&o, "}]");
		break;
	default:
		*cf = AD_COAP_CF_TEXT;
		rc = put_value(&o, pt, v, false, why);
		break;
	}
	if (rc)
		return rc;
	if (o.over) {
		*why = "payload too long";
		return -EMSGSIZE;
	}
	*len = o.n;
	return 0;
}

/* ---------------------------------------------------------- link-format */

static bool lf_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ad_coap_link_next(const uint8_t *p, size_t n, size_t *off, struct ad_coap_link *out)
{
	size_t i = *off, s;

	memset(out, 0, sizeof(*out));
	while (i < n && lf_space(p[i]))
		i++;
	if (i >= n) {
		*off = i;
		return 0;
	}
	/* link-value = "<" URI-Reference ">" *( ";" link-param ) [RFC 6690 2] */
	if (p[i] != '<')
		return -EBADMSG;
	s = ++i;
	while (i < n && p[i] != '>')
		i++;
	if (i >= n)
		return -EBADMSG;
	out->target = (struct gw_slice){ p + s, i - s };
	i++;
	for (;;) {
		size_t ks, kn, vs = 0, vn = 0;

		while (i < n && lf_space(p[i]))
			i++;
		if (i >= n || p[i] == ',') {
			i += i < n;
			break;
		}
		if (p[i] != ';')
			return -EBADMSG;
		i++;
		while (i < n && lf_space(p[i]))
			i++;
		ks = i;
		while (i < n && p[i] != '=' && p[i] != ';' && p[i] != ',' && !lf_space(p[i]))
			i++;
		kn = i - ks;
		if (kn == 0)
			return -EBADMSG;
		if (i < n && p[i] == '=') {
			i++;
			if (i < n && p[i] == '"') {
				vs = ++i;
				while (i < n && p[i] != '"') {
					if (p[i] == '\\' && i + 1 < n)
						i++;
					i++;
				}
				if (i >= n)
					return -EBADMSG;
				vn = i - vs;
				i++;
			} else {
				vs = i;
				while (i < n && p[i] != ';' && p[i] != ',' && !lf_space(p[i]))
					i++;
				vn = i - vs;
			}
		}
		if (kn == 3 && !memcmp(p + ks, "obs", 3))
			out->obs = true;
		else if (kn == 2 && !memcmp(p + ks, "rt", 2))
			out->rt = (struct gw_slice){ p + vs, vn };
		else if (kn == 2 && !memcmp(p + ks, "ct", 2))
			out->ct = (struct gw_slice){ p + vs, vn };
		else if (kn == 5 && !memcmp(p + ks, "title", 5))
			out->title = (struct gw_slice){ p + vs, vn };
	}
	*off = i;
	return 1;
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
	case -EACCES:
		return "DTLS handshake failed";
	default:
		snprintf(buf, n, "error %d", -err);
		return buf;
	}
}

const char *ad_coap_code_name(unsigned int code)
{
	switch (code) {
	case 128:
		return "4.00 Bad Request";
	case 129:
		return "4.01 Unauthorized";
	case 130:
		return "4.02 Bad Option";
	case 131:
		return "4.03 Forbidden";
	case 132:
		return "4.04 Not Found";
	case 133:
		return "4.05 Method Not Allowed";
	case 134:
		return "4.06 Not Acceptable";
	case 140:
		return "4.12 Precondition Failed";
	case 141:
		return "4.13 Request Entity Too Large";
	case 143:
		return "4.15 Unsupported Content-Format";
	case 160:
		return "5.00 Internal Server Error";
	case 161:
		return "5.01 Not Implemented";
	case 162:
		return "5.02 Bad Gateway";
	case 163:
		return "5.03 Service Unavailable";
	case 164:
		return "5.04 Gateway Timeout";
	default:
		return "error response";
	}
}
