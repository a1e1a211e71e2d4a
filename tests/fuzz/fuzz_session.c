/*
 * fuzz_session.c - the persistent session blob (brk_restore_session in
 * broker/broker.c: version, expiry, then subscriptions) and a stored session
 * message (brk_restore_session_msg with the pid and state gw_flight_decode
 * finds in its props blob), as the store hands them back after a restart.
 * The first two bytes of the input give the length of the session blob; the
 * rest is a props blob. A broker is made per input (no listener is bound).
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include <uv.h>

#include "gateway/persist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uv_loop_t loop;
	static bool inited;
	struct brk_config cfg;
	struct brk_pub pub = { 0 };
	struct brk_msg_props props;
	struct brk *b = NULL;
	int64_t saved;
	uint16_t pid;
	uint8_t state;
	size_t n;

	if (size < 2)
		return 0;
	n = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	if (n > size)
		n = size;
	if (!inited) {
		if (uv_loop_init(&loop))
			abort();
		inited = true;
	}
	brk_config_defaults(&cfg);
	cfg.n_listen = 0;
	cfg.max_queued_messages = 8;
	if (brk_new(&loop, &cfg, NULL, &b))
		abort();
	if (brk_restore_session(b, "fz", data, n) == 0) {
		struct gw_slice blob = { .p = data + n, .len = size - n };

		if (!gw_props_decode(blob, &props, &saved) &&
		    !gw_flight_decode(blob, &pid, &state)) {
			pub.topic = gw_slice_cstr("a/b");
			pub.payload = blob;
			pub.qos = (uint8_t)(pid % 3);
			pub.props = &props;
			(void)brk_restore_session_msg(b, "fz", 1, &pub, pid, state);
			(void)brk_restore_session_msg(b, "fz", 2, &pub, pid, state);
		}
	}
	brk_free(b);
	return 0;
}
