/*
 * fuzz_mbus_rtu.c - the RTU response and request decoders and the response
 * body parser (adapters/modbus/mbus_rtu.c) on arbitrary bytes. The first byte
 * picks the request the response is checked against.
 */
#include <stdint.h>
#include <stddef.h>

#include "adapters/modbus/mbus_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t fcs[8] = { 1, 2, 3, 4, 5, 6, 15, 16 };
	uint16_t regs[MBUS_MAX_READ_BITS];
	struct mbus_frame f;
	uint8_t sel;
	int n;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	while (size > 0) {
		n = mbus_rtu_decode_rsp(data, size, &f);
		if (n <= 0)
			break;
		if (!f.exception) {
			uint8_t fc = fcs[sel & 7];
			uint16_t count = (uint16_t)(1 + (sel >> 3) * 8);

			mbus_rsp_parse(&f, fc, 0, count, regs);
			mbus_rsp_parse(&f, f.fc, 0, (uint16_t)(f.body.len ? f.body.p[0] * 4 : 1),
				       regs);
		}
		data += n;
		size -= (size_t)n;
	}
	if (size > 0 && mbus_rtu_decode_req(data, size, &f) > 0 && f.body.len > 0)
		(void)mbus_crc16(f.body.p, f.body.len);
	return 0;
}
