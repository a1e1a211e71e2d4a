/*
 * fuzz_mqttsn_codec.c - the MQTT-SN codec under libFuzzer (or the corpus
 * replay driver of `make test`). Any input is decoded; one that decodes is
 * encoded again, the encoding must decode to the same message, and encoding
 * that must give the same bytes (the encoder's output is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/mqttsn_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two maximal messages: a forwarder header and a 64 KiB inner message. */
#define OUT_CAP (2 * (MQTTSN_MAX_LEN + 4))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out1[OUT_CAP], out2[OUT_CAP];
	struct mqttsn_msg m1, m2;
	struct gw_writer w;
	int n1, n2;

	n1 = mqttsn_decode(data, size, &m1);
	if (n1 < 0)
		return 0;
	if ((size_t)n1 != size)
		abort();
	gw_writer_init(&w, out1, sizeof(out1));
	n1 = mqttsn_encode(&w, &m1);
	if (n1 <= 0 || (size_t)n1 > size)
		abort(); /* what decoded must encode, never longer than it came */
	if (mqttsn_decode(out1, (size_t)n1, &m2) != n1 || !mqttsn_msg_equal(&m1, &m2))
		abort();
	gw_writer_init(&w, out2, sizeof(out2));
	n2 = mqttsn_encode(&w, &m2);
	if (n2 != n1 || memcmp(out1, out2, (size_t)n1))
		abort();
	return 0;
}
