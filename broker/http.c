/*
 * http.c - the pure HTTP/1.1 request-head parser (see http.h).
 */
#include <errno.h>
#include <string.h>

#include "broker/http.h"

/* RFC 9110 5.6.2: tchar, the characters of a token (method, header name). */
static bool is_tchar(uint8_t ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static uint8_t lower(uint8_t ch)
{
	return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + 32) : ch;
}

static bool eq_nocase(struct gw_slice a, const char *b)
{
	size_t i;

	for (i = 0; i < a.len; i++)
		if (!b[i] || lower(a.p[i]) != lower((uint8_t)b[i]))
			return false;
	return b[i] == 0;
}

/* The line at @off of @buf: its length without the line end, and where the next begins. */
static bool next_line(const uint8_t *buf, size_t len, size_t off, size_t *llen, size_t *next)
{
	const uint8_t *nl = memchr(buf + off, '\n', len - off);
	size_t e;

	if (!nl)
		return false;
	e = (size_t)(nl - buf);
	*next = e + 1;
	if (e > off && buf[e - 1] == '\r')
		e--;
	*llen = e - off;
	return true;
}

static int parse_request_line(const uint8_t *p, size_t n, struct brk_http_req *out)
{
	size_t i = 0, s;

	while (i < n && is_tchar(p[i]))
		i++;
	if (!i || i >= n || p[i] != ' ')
		return -EBADMSG;
	out->method = (struct gw_slice){ p, i };
	s = ++i;
	/* request-target: visible ASCII (RFC 9112 3.2), no blank, no control. */
	while (i < n && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == s || i >= n || p[i] != ' ')
		return -EBADMSG;
	out->target = (struct gw_slice){ p + s, i - s };
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) || p[i + 7] < '0' || p[i + 7] > '9')
		return -EBADMSG;
	out->minor = (uint8_t)(p[i + 7] - '0');
	return 0;
}

static int parse_header(const uint8_t *p, size_t n, struct brk_http_header *h)
{
	size_t i = 0, vs, ve;

	/* [RFC 9112 5.1] no blank between the name and the colon; [5.2] no folding. */
	while (i < n && is_tchar(p[i]))
		i++;
	if (!i || i >= n || p[i] != ':')
		return -EBADMSG;
	h->name = (struct gw_slice){ p, i };
	vs = i + 1;
	while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	for (i = vs; i < ve; i++)
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return -EBADMSG;
	h->value = (struct gw_slice){ p + vs, ve - vs };
	return 0;
}

int brk_http_parse_request(const uint8_t *buf, size_t len, struct brk_http_req *out)
{
	size_t off = 0, ll, next;
	int rc;

	memset(out, 0, sizeof(*out));
	/* [RFC 9112 2.2] empty lines before the request line are ignored. */
	while (off < len && (buf[off] == '\r' || buf[off] == '\n'))
		off++;
	if (!next_line(buf, len, off, &ll, &next))
		return 0;
	rc = parse_request_line(buf + off, ll, out);
	if (rc)
		return rc;
	for (off = next;; off = next) {
		if (!next_line(buf, len, off, &ll, &next))
			return 0;
		if (!ll)
			return (int)GW_MIN(next, (size_t)INT32_MAX);
		if (buf[off] == ' ' || buf[off] == '\t')
			return -EBADMSG; /* obs-fold */
		if (out->n == BRK_HTTP_MAX_HEADERS)
			return -EMSGSIZE;
		rc = parse_header(buf + off, ll, &out->h[out->n]);
		if (rc)
			return rc;
		out->n++;
	}
}

const struct gw_slice *brk_http_header(const struct brk_http_req *r, const char *name)
{
	unsigned int i;

	for (i = 0; i < r->n; i++)
		if (eq_nocase(r->h[i].name, name))
			return &r->h[i].value;
	return NULL;
}

bool brk_http_has_token(struct gw_slice v, const char *tok)
{
	size_t i = 0;

	while (i < v.len) {
		size_t s, e;

		while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
			i++;
		s = i;
		while (i < v.len && v.p[i] != ',')
			i++;
		e = i;
		while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
			e--;
		if (e > s && eq_nocase((struct gw_slice){ v.p + s, e - s }, tok))
			return true;
	}
	return false;
}

struct gw_slice brk_http_path(struct gw_slice target)
{
	size_t i;

	for (i = 0; i < target.len; i++)
		if (target.p[i] == '?' || target.p[i] == '#')
			break;
	return (struct gw_slice){ target.p, i };
}

/* RFC 4648 section 4: the value of a base64 character, or -1. */
static int b64val(uint8_t ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int brk_http_basic_auth(struct gw_slice v, char *user, size_t ucap, char *pass, size_t pcap)
{
	char out[512];
	size_t i = 0, n = 0, pad = 0, colon;
	uint32_t acc = 0;
	unsigned int bits = 0;

	if (!ucap || !pcap)
		return -EMSGSIZE;
	/* [RFC 9110 11.1] the scheme is case-insensitive; one or more blanks follow. */
	if (v.len < 6 || !eq_nocase((struct gw_slice){ v.p, 5 }, "basic") ||
	    (v.p[5] != ' ' && v.p[5] != '\t'))
		return -EBADMSG;
	for (i = 5; i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'); i++)
		;
	if ((v.len - i) % 4)
		return -EBADMSG;
	for (; i < v.len; i++) {
		int d = b64val(v.p[i]);

		if (v.p[i] == '=') {
			pad++;
			continue;
		}
		if (d < 0 || pad)
			return -EBADMSG; /* nothing after padding */
		acc = acc << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == sizeof(out))
				return -EMSGSIZE;
			out[n++] = (char)(acc >> bits & 0xff);
		}
	}
	if (pad > 2)
		return -EBADMSG;
	for (i = 0, colon = n; i < n; i++) {
		if ((uint8_t)out[i] < 0x20 || out[i] == 0x7f)
			return -EBADMSG;
		if (out[i] == ':' && colon == n)
			colon = i;
	}
	if (colon == n)
		return -EBADMSG;
	if (colon >= ucap || n - colon - 1 >= pcap)
		return -EMSGSIZE;
	memcpy(user, out, colon);
	user[colon] = '\0';
	memcpy(pass, out + colon + 1, n - colon - 1);
	pass[n - colon - 1] = '\0';
	return 0;
}
