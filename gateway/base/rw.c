/*
 * rw.c - bounded reader and writer, slices.
 */
#include <errno.h>
#include <string.h>

#include "base.h"

bool gw_slice_eq(struct gw_slice a, struct gw_slice b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool gw_slice_eq_cstr(struct gw_slice a, const char *s)
{
	return gw_slice_eq(a, gw_slice_cstr(s));
}

static int need(struct gw_reader *r, size_t n)
{
	if (r->err)
		return r->err;
	if (r->len - r->off < n) {
		r->err = -EBADMSG;
		return r->err;
	}
	return 0;
}

int gw_rd_u8(struct gw_reader *r, uint8_t *v)
{
	if (need(r, 1))
		return r->err;
	*v = r->p[r->off++];
	return 0;
}

int gw_rd_u16be(struct gw_reader *r, uint16_t *v)
{
	if (need(r, 2))
		return r->err;
	*v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
	r->off += 2;
	return 0;
}

int gw_rd_u32be(struct gw_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (need(r, 4))
		return r->err;
	p = r->p + r->off;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	r->off += 4;
	return 0;
}

int gw_rd_varint(struct gw_reader *r, uint32_t *v)
{
	uint32_t val = 0;
	unsigned int i;
	uint8_t b;

	for (i = 0; i < 4; i++) {
		if (gw_rd_u8(r, &b))
			return r->err;
		val |= (uint32_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = val;
			return 0;
		}
	}
	/* A fifth byte would be needed: malformed [MQTT-1.5.5]. */
	r->err = -EBADMSG;
	return r->err;
}

int gw_rd_bytes(struct gw_reader *r, size_t n, struct gw_slice *out)
{
	if (need(r, n))
		return r->err;
	out->p = r->p + r->off;
	out->len = n;
	r->off += n;
	return 0;
}

int gw_rd_bin16(struct gw_reader *r, struct gw_slice *out)
{
	uint16_t n;

	if (gw_rd_u16be(r, &n))
		return r->err;
	return gw_rd_bytes(r, n, out);
}

static bool room(struct gw_writer *w, size_t n)
{
	if (w->err || w->cap - w->len < n || w->len > w->cap) {
		w->err = -EMSGSIZE;
		w->len += n;
		return false;
	}
	return true;
}

void gw_wr_u8(struct gw_writer *w, uint8_t v)
{
	if (room(w, 1))
		w->p[w->len++] = v;
}

void gw_wr_u16be(struct gw_writer *w, uint16_t v)
{
	if (!room(w, 2))
		return;
	w->p[w->len++] = (uint8_t)(v >> 8);
	w->p[w->len++] = (uint8_t)v;
}

void gw_wr_u32be(struct gw_writer *w, uint32_t v)
{
	if (!room(w, 4))
		return;
	w->p[w->len++] = (uint8_t)(v >> 24);
	w->p[w->len++] = (uint8_t)(v >> 16);
	w->p[w->len++] = (uint8_t)(v >> 8);
	w->p[w->len++] = (uint8_t)v;
}

size_t gw_varint_size(uint32_t v)
{
	if (v < 128)
		return 1;
	if (v < 16384)
		return 2;
	if (v < 2097152)
		return 3;
	if (v < 268435456)
		return 4;
	return 0;
}

void gw_wr_varint(struct gw_writer *w, uint32_t v)
{
	size_t n = gw_varint_size(v);

	if (n == 0) {
		w->err = -EMSGSIZE;
		return;
	}
	if (!room(w, n))
		return;
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		if (v)
			b |= 0x80;
		w->p[w->len++] = b;
	} while (v);
}

void gw_wr_bytes(struct gw_writer *w, const void *p, size_t n)
{
	if (n && room(w, n)) {
		memcpy(w->p + w->len, p, n);
		w->len += n;
	}
}

void gw_wr_bin16(struct gw_writer *w, const void *p, size_t n)
{
	if (n > 0xffff) {
		w->err = -EMSGSIZE;
		return;
	}
	gw_wr_u16be(w, (uint16_t)n);
	gw_wr_bytes(w, p, n);
}
