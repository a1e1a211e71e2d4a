/*
 * fuzz_mbap.c - the Modbus TCP framing (mbus_mbap_decode in
 * adapters/modbus/mbus_rtu.c) on a byte stream as a TCP connection delivers
 * it, each decoded ADU checked against a request the first byte picks
 * (mbus_rsp_parse) and framed again (mbus_mbap_encode) to compare.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/modbus/mbus_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t fcs[8] = { 1, 2, 3, 4, 5, 6, 15, 16 };
	uint16_t regs[MBUS_MAX_READ_BITS];
	uint8_t pdu[MBUS_MAX_PDU], adu[MBUS_TCP_MAX_ADU];
	struct gw_writer w;
	struct mbus_frame f;
	uint16_t tid;
	uint8_t sel;
	int n;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	while (size > 0) {
		n = mbus_mbap_decode(data, size, &tid, &f);
		if (n <= 0)
			break;
		if (!f.exception) {
			uint8_t fc = fcs[sel & 7];
			uint16_t count = (uint16_t)(1 + (sel >> 3) * 8);

			mbus_rsp_parse(&f, fc, 0, count, regs);
			mbus_rsp_parse(&f, f.fc, 0, (uint16_t)(f.body.len ? f.body.p[0] / 2 : 1),
				       regs);
		}
		/* Framing the PDU again gives back the same bytes. */
		pdu[0] = (uint8_t)(data[7]);
		memcpy(pdu + 1, f.body.p, f.body.len);
		gw_writer_init(&w, adu, sizeof(adu));
		if (mbus_mbap_encode(&w, tid, f.unit, pdu, f.body.len + 1) || w.len != (size_t)n ||
		    memcmp(adu, data, w.len))
			abort();
		data += n;
		size -= (size_t)n;
	}
	return 0;
}
