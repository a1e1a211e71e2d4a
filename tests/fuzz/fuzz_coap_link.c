/*
 * fuzz_coap_link.c - CoRE link-format (RFC 6690) as fieldmq --discover reads
 * a device's /.well-known/core (adapters/coap/coap_value.c): every link of
 * arbitrary bytes, slices checked to stay inside the input.
 */
#include <stdint.h>
#include <stdlib.h>

#include "adapters/coap/coap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(struct gw_slice s, const uint8_t *data, size_t size)
{
	if (s.len && (s.p < data || s.p + s.len > data + size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ad_coap_link l;
	size_t off = 0, last = 0;
	unsigned int guard = 0;

	while (ad_coap_link_next(data, size, &off, &l) == 1) {
		inside(l.target, data, size);
		inside(l.rt, data, size);
		inside(l.ct, data, size);
		inside(l.title, data, size);
		if (off <= last || off > size || ++guard > size + 1)
			abort(); /* every link moves forward */
		last = off;
	}
	return 0;
}
