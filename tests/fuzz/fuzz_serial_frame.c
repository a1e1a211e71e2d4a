/*
 * fuzz_serial_frame.c - the serial framer (adapters/serial/serial_frame.c)
 * on arbitrary bytes in every mode. The first byte picks the mode, the hex
 * encoding, a small max_frame and the chunk size; the time advances by a
 * chunk each so idle framing cuts too. Every frame must fit max_frame (twice
 * over in hex) and end in a NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct check {
	size_t max;
};

static void on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct check *c = arg;

	if (len == 0 || len > c->max || frame[len] != '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[3 * 64 + 2];
	struct ser_framer_conf conf = { 0 };
	struct ser_framer f;
	struct check c;
	size_t chunk, off = 0;
	int64_t now = 0;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	conf.mode = (enum ser_framing)(sel & 3);
	conf.hex = sel & 4;
	conf.max_frame = sel & 8 ? 7 : 64;
	conf.length = 1 + (sel >> 4) % conf.max_frame;
	conf.idle_gap_ms = 3;
	conf.start = 0x02;
	conf.end = 0x03;
	if (sel & 0x10) {
		memcpy(conf.delim, "\r\n", 2);
		conf.delim_len = 2;
	} else {
		conf.delim[0] = '\n';
		conf.delim_len = 1;
	}
	c.max = conf.hex ? 2 * conf.max_frame : conf.max_frame;
	ser_framer_init(&f, &conf, buf);
	chunk = 1 + (sel >> 5);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;

		ser_framer_feed(&f, data + off, n, now, on_frame, &c);
		if (ser_framer_deadline(&f) >= 0 && f.len > conf.max_frame)
			abort();
		off += n;
		now += (int64_t)(data[off - 1] & 3);
		ser_framer_tick(&f, now, on_frame, &c);
	}
	ser_framer_tick(&f, now + 10, on_frame, &c);
	return 0;
}
