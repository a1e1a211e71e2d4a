/*
 * fuzz_persist.c - the property blobs of stored messages (gateway/persist.c):
 * gw_props_decode and gw_flight_decode on arbitrary bytes, as a damaged or
 * foreign database would hand them back. What decodes is encoded again and
 * must decode to the same properties.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/persist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(struct gw_slice a, struct gw_slice b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_slice blob = { .p = data, .len = size };
	struct brk_msg_props p, q;
	int64_t saved = 0, saved2 = 0;
	uint8_t buf[4096];
	struct gw_writer w;
	uint16_t pid;
	uint8_t state;

	(void)gw_flight_decode(blob, &pid, &state);
	if (gw_props_decode(blob, &p, &saved))
		return 0;
	gw_writer_init(&w, buf, sizeof(buf));
	if (gw_props_encode(&p, saved, &w))
		return 0;
	blob.p = buf;
	blob.len = w.len;
	if (gw_props_decode(blob, &q, &saved2))
		abort();
	if (p.has_expiry != q.has_expiry || (p.has_expiry && p.expiry != q.expiry) ||
	    p.has_payload_format != q.has_payload_format ||
	    (p.has_payload_format && p.payload_format != q.payload_format) ||
	    !same(p.content_type, q.content_type) || !same(p.response_topic, q.response_topic) ||
	    !same(p.correlation_data, q.correlation_data) || !same(p.user_props, q.user_props))
		abort();
	return 0;
}
