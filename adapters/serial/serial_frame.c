/*
 * serial_frame.c - bytes from a serial line to frames: line (delimiter),
 * fixed length, idle gap and start/end byte framing, bounded by max_frame,
 * optionally handed on as hex text; and the config string unescaper.
 *
 * Pure: the caller owns the buffer and passes the time in.
 */
#include <errno.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ser_unescape(const char *in, uint8_t *out, size_t cap)
{
	size_t n = strlen(in), i = 0, o = 0;

	if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
		i = 1;
		n--;
	}
	while (i < n) {
		uint8_t c = (uint8_t)in[i++];

		if (c == '\\') {
			if (i >= n)
				return -EINVAL;
			switch (in[i++]) {
			case 'r':
				c = '\r';
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case '0':
				c = 0;
				break;
			case '\\':
				c = '\\';
				break;
			case '"':
				c = '"';
				break;
			case 'x': {
				int h, l;

				if (i + 2 > n)
					return -EINVAL;
				h = hexval((uint8_t)in[i]);
				l = hexval((uint8_t)in[i + 1]);
				if (h < 0 || l < 0)
					return -EINVAL;
				c = (uint8_t)(h << 4 | l);
				i += 2;
				break;
			}
			default:
				return -EINVAL;
			}
		}
		if (o >= cap)
			return -EMSGSIZE;
		out[o++] = c;
	}
	return (int)o;
}

size_t ser_framer_buf_size(const struct ser_framer_conf *c)
{
	/* The raw frame and its NUL; hex text needs two characters a byte and a NUL. */
	return (size_t)c->max_frame + 1 + (c->hex ? 2 * (size_t)c->max_frame + 1 : 0);
}

void ser_framer_init(struct ser_framer *f, const struct ser_framer_conf *c, uint8_t *buf)
{
	memset(f, 0, sizeof(*f));
	f->conf = *c;
	f->buf = buf;
}

void ser_framer_reset(struct ser_framer *f)
{
	f->len = 0;
	f->dmatch = 0;
	f->skipping = false;
	f->in_frame = false;
}

/* Hand buf[0..len) on: text lines lose their \r, hex frames become text. */
static void emit(struct ser_framer *f, size_t len, ser_frame_fn fn, void *arg)
{
	static const char digits[] = "0123456789ABCDEF";
	uint8_t *p = f->buf;
	size_t i;

	f->len = 0;
	if (f->conf.hex) {
		uint8_t *h = f->buf + f->conf.max_frame + 1;

		if (!len)
			return;
		for (i = 0; i < len; i++) {
			h[2 * i] = (uint8_t)digits[p[i] >> 4];
			h[2 * i + 1] = (uint8_t)digits[p[i] & 15];
		}
		h[2 * len] = '\0';
		f->st.frames++;
		fn(arg, h, 2 * len);
		return;
	}
	if (f->conf.mode == SER_FR_LINE) {
		/* \r\n or \n\r line ends leave a \r at either end: not part of the line. */
		while (len && p[len - 1] == '\r')
			len--;
		while (len && p[0] == '\r') {
			p++;
			len--;
		}
	}
	if (!len)
		return;
	p[len] = '\0';
	f->st.frames++;
	fn(arg, p, len);
}

/* The frame grew past max_frame: drop it and everything up to the next boundary. */
static void overlong(struct ser_framer *f)
{
	f->st.overlong++;
	f->st.dropped += f->len;
	f->len = 0;
	f->skipping = true;
}

static void feed_line(struct ser_framer *f, const uint8_t *p, size_t n, ser_frame_fn fn, void *arg)
{
	const struct ser_framer_conf *c = &f->conf;

	while (n) {
		size_t take;

		if (c->delim_len == 1 && !f->skipping) {
			/* The common case: copy up to the delimiter in one go. */
			const uint8_t *d = memchr(p, c->delim[0], n);
			size_t upto = d ? (size_t)(d - p) : n;

			take = GW_MIN(upto, c->max_frame - f->len);
			memcpy(f->buf + f->len, p, take);
			f->len += take;
			p += take;
			n -= take;
			if (take < upto) {
				overlong(f);
				continue;
			}
			if (d) {
				p++;
				n--;
				emit(f, f->len, fn, arg);
			}
			continue;
		}
		/* Byte by byte: a multi-byte delimiter, or skipping to the next one. */
		{
			uint8_t b = *p++;

			n--;
			if (b == c->delim[f->dmatch])
				f->dmatch++;
			else
				f->dmatch = b == c->delim[0] ? 1 : 0;
			if (f->skipping) {
				f->st.dropped++;
				if (f->dmatch == c->delim_len) {
					f->dmatch = 0;
					f->skipping = false;
				}
				continue;
			}
			if (f->dmatch == c->delim_len) {
				/* The delimiter's earlier bytes are in the buffer. */
				size_t len = f->len + 1 - c->delim_len;

				f->dmatch = 0;
				emit(f, len, fn, arg);
				continue;
			}
			if (f->len >= c->max_frame) {
				overlong(f);
				/* The bytes of a delimiter begun here still count for it. */
				continue;
			}
			f->buf[f->len++] = b;
		}
	}
}

static void feed_length(struct ser_framer *f, const uint8_t *p, size_t n, ser_frame_fn fn,
			void *arg)
{
	while (n) {
		size_t take = GW_MIN(n, f->conf.length - f->len);

		memcpy(f->buf + f->len, p, take);
		f->len += take;
		p += take;
		n -= take;
		if (f->len == f->conf.length)
			emit(f, f->len, fn, arg);
	}
}

static void feed_idle(struct ser_framer *f, const uint8_t *p, size_t n, ser_frame_fn fn, void *arg)
{
	size_t take;

	if (f->skipping) {
		f->st.dropped += n;
		return;
	}
	take = GW_MIN(n, f->conf.max_frame - f->len);
	memcpy(f->buf + f->len, p, take);
	f->len += take;
	if (take < n) {
		overlong(f);
		f->st.dropped += n - take;
	}
	(void)fn;
	(void)arg;
}

static void feed_stx(struct ser_framer *f, const uint8_t *p, size_t n, ser_frame_fn fn, void *arg)
{
	const struct ser_framer_conf *c = &f->conf;
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t b = p[i];

		if (b == c->start) {
			/* A start byte always begins a new frame: resynchronises after noise. */
			if (f->in_frame)
				f->st.dropped += f->len + 1;
			f->in_frame = true;
			f->skipping = false;
			f->len = 0;
			continue;
		}
		if (!f->in_frame || f->skipping) {
			f->st.dropped++;
			if (b == c->end)
				f->in_frame = f->skipping = false;
			continue;
		}
		if (b == c->end) {
			f->in_frame = false;
			emit(f, f->len, fn, arg);
			continue;
		}
		if (f->len >= c->max_frame) {
			overlong(f);
			f->st.dropped++;
			continue;
		}
		f->buf[f->len++] = b;
	}
}

void ser_framer_tick(struct ser_framer *f, int64_t now, ser_frame_fn fn, void *arg)
{
	if (f->conf.mode != SER_FR_IDLE || (!f->len && !f->skipping))
		return;
	if (now - f->last_ms < (int64_t)f->conf.idle_gap_ms)
		return;
	if (f->skipping) {
		f->skipping = false;
		f->len = 0;
		return;
	}
	emit(f, f->len, fn, arg);
}

int64_t ser_framer_deadline(const struct ser_framer *f)
{
	if (f->conf.mode != SER_FR_IDLE || (!f->len && !f->skipping))
		return -1;
	return f->last_ms + f->conf.idle_gap_ms;
}

void ser_framer_feed(struct ser_framer *f, const uint8_t *p, size_t n, int64_t now, ser_frame_fn fn,
		     void *arg)
{
	if (!n)
		return;
	f->st.bytes += n;
	switch (f->conf.mode) {
	case SER_FR_LINE:
		feed_line(f, p, n, fn, arg);
		break;
	case SER_FR_LENGTH:
		feed_length(f, p, n, fn, arg);
		break;
	case SER_FR_IDLE:
		ser_framer_tick(f, now, fn, arg);
		feed_idle(f, p, n, fn, arg);
		f->last_ms = now;
		break;
	case SER_FR_STX_ETX:
		feed_stx(f, p, n, fn, arg);
		break;
	default:
		break;
	}
}
