/*
 * fuzz_ws_frame.c - WebSocket frame decoding (broker/ws.c) under libFuzzer
 * or the corpus replay of `make test`. The first byte picks a chunk size;
 * the rest is decoded once whole and once in chunks of that size, and both
 * must agree: the same events, the same unmasked data bytes, the same error.
 * Every event's slice must lie in the buffer given or in the decoder state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IN 65536

struct run {
	uint8_t out[MAX_IN]; /* data bytes, then a marker per control event */
	size_t n;
	int err;
	uint16_t code;
};

static void put(struct run *r, const void *p, size_t n)
{
	if (r->n + n > sizeof(r->out))
		abort();
	memcpy(r->out + r->n, p, n);
	r->n += n;
}

static void decode(const uint8_t *in, size_t len, size_t chunk, struct run *r)
{
	static uint8_t buf[MAX_IN];
	struct brk_ws_rx rx;
	size_t off = 0;

	memset(&rx, 0, sizeof(rx));
	memset(r, 0, sizeof(*r));
	memcpy(buf, in, len);
	while (off < len) {
		size_t end = GW_MIN(len, off + chunk), p = off;

		while (p < end) {
			struct brk_ws_event ev;
			int rc = brk_ws_decode(&rx, buf + p, end - p, &ev);

			if (rc < 0) {
				r->err = rc;
				r->code = ev.code;
				return;
			}
			if (rc == 0 || (size_t)rc > end - p)
				abort();
			if (ev.type == BRK_WS_EV_DATA) {
				if (ev.data.p < buf + p || ev.data.p + ev.data.len > buf + p + rc)
					abort();
				put(r, ev.data.p, ev.data.len);
			} else if (ev.type != BRK_WS_EV_NONE) {
				uint8_t mark[3] = { 0xff, (uint8_t)ev.type, (uint8_t)ev.data.len };

				if (ev.data.len > 125 || (ev.data.len && ev.data.p != rx.ctl))
					abort();
				put(r, mark, sizeof(mark));
				put(r, ev.data.p, ev.data.len);
			}
			p += (size_t)rc;
		}
		off = end;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run whole, chunked;
	size_t chunk;

	if (size < 1 || size - 1 > MAX_IN / 2)
		return 0;
	chunk = (size_t)data[0] % 17 + 1;
	decode(data + 1, size - 1, size, &whole);
	decode(data + 1, size - 1, chunk, &chunked);
	/* Data events may be split differently; what they carry and the outcome may not. */
	if (whole.err != chunked.err || whole.code != chunked.code || whole.n != chunked.n ||
	    memcmp(whole.out, chunked.out, whole.n))
		abort();
	return 0;
}
