/*
 * fuzz_coap_text.c - text/plain payloads of CoAP devices (adapters/coap/
 * coap_value.c): the parser, then the conversion to every point type,
 * scaled and not; and the device url split on the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ad_coap_device d;
	struct ad_coap_raw raw;
	const char *why;
	char *url;
	size_t off;
	unsigned int t;

	if (ad_coap_text_parse(data, size, &raw) == 0) {
		for (t = 0; t < __AD_PT_MAX; t++) {
			struct ad_point pt = { .type = (enum ad_point_type)t, .scale = 1 };
			struct ad_value v;

			ad_coap_raw_to_value(&pt, &raw, &v);
			pt.scale = 0.1;
			pt.offset = -40;
			ad_coap_raw_to_value(&pt, &raw, &v);
		}
	}
	url = malloc(size + 1);
	if (!url)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	memset(&d, 0, sizeof(d));
	if (ad_coap_url_split(url, &d, &off, &why) == 0 && off > size)
		abort();
	free(url);
	return 0;
}
