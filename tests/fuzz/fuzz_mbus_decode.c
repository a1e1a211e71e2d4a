/*
 * fuzz_mbus_decode.c - the Modbus value codec (adapters/modbus/mbus_codec.c):
 * mbus_decode on registers a device sent, for a point whose area, type, byte
 * order, bit, string length and scale the first five input bytes pick; the
 * rest are the registers. A decoded value is encoded back for the point (it
 * may be refused, never overrun).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "adapters/modbus/mbus_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const double scales[4] = { 1.0, 0.1, -2.5, 1e-300 };
	uint16_t regs[MBUS_MAX_READ_REGS], out[MBUS_MAX_WRITE_REGS];
	uint8_t sbuf[2 * MBUS_MAX_READ_REGS];
	struct ad_point pt;
	struct mbus_point mp;
	struct ad_value v;
	const char *why;
	size_t n, i, nout;

	if (size < 5)
		return 0;
	memset(&pt, 0, sizeof(pt));
	memset(&mp, 0, sizeof(mp));
	pt.name = "p";
	pt.ext = &mp;
	mp.area = (enum ad_area)(data[0] % __AD_AREA_MAX);
	pt.type = (enum ad_point_type)(data[1] % __AD_PT_MAX);
	mp.byte_order = (enum ad_byte_order)(1 + data[2] % (__AD_BO_MAX - 1));
	mp.bit = data[3] & 0x1F; /* 16-31 are invalid on purpose */
	mp.length = (uint16_t)(data[4] & 0x7F);
	mp.string_swap = data[2] & 0x80;
	pt.scale = scales[(data[3] >> 5) & 3];
	pt.offset = data[3] & 0x80 ? 0.5 : 0;
	pt.writable = data[0] & 0x80;
	data += 5;
	size -= 5;
	n = GW_MIN(size / 2, GW_ARRAY_SIZE(regs));
	for (i = 0; i < n; i++)
		regs[i] = (uint16_t)(data[2 * i] << 8 | data[2 * i + 1]);
	if (mbus_decode(&pt, regs, n, sbuf, sizeof(sbuf), &v))
		return 0;
	(void)mbus_encode(&pt, &v, out, GW_ARRAY_SIZE(out), &nout, &why);
	return 0;
}
