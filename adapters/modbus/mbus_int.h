/*
 * mbus_int.h - the Modbus adapter's private interface: the pure value codec
 * (registers <-> struct ad_value), the request planner, RTU framing with
 * CRC16, PDU helpers and the per-device health state machine.
 *
 * Everything declared here except the glue is pure: no allocation, no
 * logging, no clock, no I/O. Included only by adapters/modbus/ and its tests
 * (and the Modbus simulator, which shares the framing code).
 */
#ifndef FIELDMQ_MBUS_INT_H
#define FIELDMQ_MBUS_INT_H

#include "adapters/adapter.h"
#include "adapters/modbus/mbus_map.h"

/* Protocol limits (Modbus Application Protocol V1.1b3, 6.1 - 6.4). */
#define MBUS_MAX_READ_REGS 125
#define MBUS_MAX_READ_BITS 2000
#define MBUS_MAX_WRITE_REGS 123
#define MBUS_MAX_WRITE_BITS 1968
#define MBUS_RTU_MAX_ADU 256
#define MBUS_MAX_PDU 253     /* [MBAP 4.1] function code + data */
#define MBUS_TCP_MAX_ADU 260 /* [TCP 3.1.3] 7-byte MBAP header + PDU */

/* Function codes used by the adapter. */
enum mbus_fc {
	MBUS_FC_READ_COILS = 1,
	MBUS_FC_READ_DISCRETE = 2,
	MBUS_FC_READ_HOLDING = 3,
	MBUS_FC_READ_INPUT = 4,
	MBUS_FC_WRITE_COIL = 5,
	MBUS_FC_WRITE_REGISTER = 6,
	MBUS_FC_WRITE_COILS = 15,
	MBUS_FC_WRITE_REGISTERS = 16,
};

/* ------------------------------------------------------------ value codec */

/*
 * Decode @pt's value from @n registers (host order, as read from the wire,
 * register @pt->address first). Bool points on coil/discrete areas and bit
 * points read regs[0] (a bit read is stored as 0/1 in one register slot).
 * Strings are copied into @strbuf (capacity @strcap, at least 2*length) with
 * trailing NULs trimmed, and out->s points into it.
 * Integers with scale 1 and offset 0 stay AD_VAL_INT / AD_VAL_UINT; anything
 * scaled becomes AD_VAL_DOUBLE (raw * scale + offset).
 * Returns 0, -EBADMSG when @n is short of the point's width, -EINVAL for a
 * type that does not fit its area, -EMSGSIZE when @strbuf is too small.
 */
int mbus_decode(const struct ad_point *pt, const uint16_t *regs, size_t n, uint8_t *strbuf,
		size_t strcap, struct ad_value *out);

/*
 * Encode @v for writing to @pt into @regs (capacity @cap; coils get 0/1 in
 * regs[0]); *n_out is the number of registers (or coils) to write.
 * Returns 0, or refuses with *why set to a static message:
 * -EACCES the point is not writable (access = r, discrete/input area, bit),
 * -EINVAL the value's type does not fit the point (a string to a float, a
 *         non-integer to an integer type after scaling, a non-finite number),
 * -ERANGE the value does not fit the point's type after scaling.
 */
int mbus_encode(const struct ad_point *pt, const struct ad_value *v, uint16_t *regs, size_t cap,
		size_t *n_out, const char **why);

/* The function code a write of @n units to @pt uses (5, 6, 15 or 16). */
int mbus_write_fc(const struct ad_point *pt, size_t n, bool multiple_always);

/* Lower-case text for a Modbus exception code ("illegal data address"). */
const char *mbus_exception_str(uint8_t code);

/* ---------------------------------------------------------------- planner */

/* One read request: @count units of @area from @address, serving the points
 * order[first .. first + n_pts - 1] of the plan. */
struct mbus_req {
	enum ad_area area;
	uint16_t address;
	uint16_t count;
	unsigned int first;
	unsigned int n_pts;
};

/*
 * Plan @dev's reads: sort its points by area and address into @order (room
 * for dev->n_points) and coalesce them into the fewest requests in @reqs
 * (room for dev->n_points): neighbours merge when the gap between them is at
 * most max_gap units and the request stays within max_regs_per_read (default
 * and cap 125) or max_bits_per_read (default and cap 2000); with
 * one_request_per_point every point is a request of its own.
 * Returns the number of requests (>= 0), or -EMSGSIZE when one point alone
 * exceeds the limit (*bad names it), -EINVAL for an unknown area.
 */
int mbus_plan(const struct ad_device *dev, const struct ad_point **order, struct mbus_req *reqs,
	      const struct ad_point **bad);

/* ------------------------------------------------------------ PDU / RTU */

/* CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first. */
uint16_t mbus_crc16(const uint8_t *p, size_t n);

/* Append a read request PDU (fc 1-4) / a write request PDU (fc 5, 6, 15, 16)
 * to @w; errors land in w->err (-EMSGSIZE), bad arguments return -EINVAL. */
int mbus_pdu_read(struct gw_writer *w, uint8_t fc, uint16_t addr, uint16_t count);
int mbus_pdu_write(struct gw_writer *w, uint8_t fc, uint16_t addr, const uint16_t *vals, size_t n);

/* Frame @pdu as an RTU ADU (unit, pdu, CRC low byte first) into @w.
 * Returns 0 or -EMSGSIZE. */
int mbus_rtu_encode(struct gw_writer *w, uint8_t unit, const uint8_t *pdu, size_t pdu_len);

/* A decoded RTU frame: unit, function code (without the 0x80 exception bit),
 * exception code (0 when none) and the PDU body after the function code
 * (a slice into the input buffer, CRC excluded). */
struct mbus_frame {
	uint8_t unit;
	uint8_t fc;
	uint8_t exception;
	struct gw_slice body;
};

/*
 * Decode one RTU response ADU at the start of @buf. The length follows from
 * the function code: 5 + byte count for fc 1-4, 8 for fc 5/6/15/16, 5 for an
 * exception. Returns bytes consumed (> 0), 0 when more bytes are needed,
 * -EBADMSG on a CRC mismatch or a bad byte count, -EPROTO for a function
 * code it does not know.
 */
int mbus_rtu_decode_rsp(const uint8_t *buf, size_t len, struct mbus_frame *out);

/* The same for a request ADU (server side: fc 1-6 are 8 bytes, 15/16 are
 * 9 + byte count). Same return values. */
int mbus_rtu_decode_req(const uint8_t *buf, size_t len, struct mbus_frame *out);

/*
 * Check a response body against the request (fc, addr, count) it answers and
 * extract the data: registers into @regs, bits (one per slot, 0/1) into
 * @regs as well, for reads; writes must echo address and value/count.
 * Returns 0, -EBADMSG (byte count or echo mismatch), -EPROTO (wrong fc).
 */
int mbus_rsp_parse(const struct mbus_frame *f, uint8_t fc, uint16_t addr, uint16_t count,
		   uint16_t *regs);

/* ------------------------------------------------------------------ MBAP */

/*
 * Frame @pdu as a Modbus TCP ADU (Messaging on TCP/IP V1.0b, 3.1.3): the MBAP
 * header (transaction id @tid, protocol 0, length, @unit) then the PDU.
 * Returns 0, or -EMSGSIZE (an empty or too long PDU, or no room in @w).
 */
int mbus_mbap_encode(struct gw_writer *w, uint16_t tid, uint8_t unit, const uint8_t *pdu,
		     size_t pdu_len);

/*
 * Decode one Modbus TCP ADU at the start of @buf (requests and responses
 * alike: the MBAP length field delimits it). *tid gets the transaction id;
 * @out the unit, function code, exception code (0 when none) and the PDU body
 * after the function code, as a slice into @buf. Returns bytes consumed
 * (> 0), 0 when more bytes are needed, -EBADMSG for a protocol id other than
 * 0, a length below 2 or above 254, or a malformed exception response.
 */
int mbus_mbap_decode(const uint8_t *buf, size_t len, uint16_t *tid, struct mbus_frame *out);

/* ---------------------------------------------------------------- health */

/*
 * Per-device fault state: consecutive failed cycles, what was last announced
 * (online / offline / not yet), and when a degraded device may be tried again.
 * Sans-I/O: the caller passes the monotonic time and acts on the flags.
 */
enum mbus_online {
	MBUS_UNKNOWN,
	MBUS_ONLINE,
	MBUS_OFFLINE,
};

struct mbus_health {
	unsigned int fails;
	enum mbus_online state;
	int64_t skip_until; /* monotonic ms; 0 = not degraded */
};

enum {
	MBUS_ACT_ONLINE = 1,  /* announce online */
	MBUS_ACT_OFFLINE = 2, /* announce offline */
	MBUS_ACT_BAD = 4,     /* first failure after success: mark points bad, log once */
	MBUS_ACT_DEGRADE = 8, /* skip the device until skip_until */
};

/* Record a cycle's outcome; returns MBUS_ACT_* flags. */
unsigned int mbus_health_update(struct mbus_health *h, const struct ad_device *dev, bool ok,
				int64_t now_ms);
/* Whether a poll due at @now_ms is skipped because the device is degraded. */
bool mbus_health_skip(const struct mbus_health *h, int64_t now_ms);

#endif
