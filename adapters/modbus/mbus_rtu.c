/*
 * mbus_rtu.c - Modbus PDUs and RTU framing (unit id, PDU, CRC16), for
 * RTU-over-TCP, which libmodbus has no backend for, and for the simulator's
 * RTU modes. Pure: bytes in, structs out.
 *
 * References: Modbus Application Protocol V1.1b3 (PDUs, section 6) and
 * Modbus over Serial Line V1.02 (RTU framing and CRC, 2.5.1 and 6.2.2).
 */
#include <errno.h>

#include "mbus_int.h"
#include "mbus_poll.h"

uint16_t mbus_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (b = 0; b < 8; b++)
			crc = crc & 1 ? (uint16_t)(crc >> 1 ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

int mbus_pdu_read(struct gw_writer *w, uint8_t fc, uint16_t addr, uint16_t count)
{
	unsigned int max;

	if (fc < MBUS_FC_READ_COILS || fc > MBUS_FC_READ_INPUT)
		return -EINVAL;
	max = fc <= MBUS_FC_READ_DISCRETE ? MBUS_MAX_READ_BITS : MBUS_MAX_READ_REGS;
	if (count == 0 || count > max || (uint32_t)addr + count > 0x10000)
		return -EINVAL;
	gw_wr_u8(w, fc);
	gw_wr_u16be(w, addr);
	gw_wr_u16be(w, count);
	return w->err;
}

int mbus_pdu_write(struct gw_writer *w, uint8_t fc, uint16_t addr, const uint16_t *vals, size_t n)
{
	size_t i;

	switch (fc) {
	case MBUS_FC_WRITE_COIL:
	case MBUS_FC_WRITE_REGISTER:
		if (n != 1)
			return -EINVAL;
		gw_wr_u8(w, fc);
		gw_wr_u16be(w, addr);
		/* [MBAP 6.5] ON is 0xFF00, OFF 0x0000. */
		gw_wr_u16be(w, fc == MBUS_FC_WRITE_COIL ? (vals[0] ? 0xFF00 : 0) : vals[0]);
		break;
	case MBUS_FC_WRITE_COILS:
		if (n == 0 || n > MBUS_MAX_WRITE_BITS || addr + n > 0x10000)
			return -EINVAL;
		gw_wr_u8(w, fc);
		gw_wr_u16be(w, addr);
		gw_wr_u16be(w, (uint16_t)n);
		gw_wr_u8(w, (uint8_t)((n + 7) / 8));
		for (i = 0; i < n; i += 8) {
			uint8_t byte = 0;
			size_t b;

			for (b = 0; b < 8 && i + b < n; b++)
				byte |= (uint8_t)((vals[i + b] ? 1 : 0) << b);
			gw_wr_u8(w, byte);
		}
		break;
	case MBUS_FC_WRITE_REGISTERS:
		if (n == 0 || n > MBUS_MAX_WRITE_REGS || addr + n > 0x10000)
			return -EINVAL;
		gw_wr_u8(w, fc);
		gw_wr_u16be(w, addr);
		gw_wr_u16be(w, (uint16_t)n);
		gw_wr_u8(w, (uint8_t)(2 * n));
		for (i = 0; i < n; i++)
			gw_wr_u16be(w, vals[i]);
		break;
	default:
		return -EINVAL;
	}
	return w->err;
}

int mbus_rtu_encode(struct gw_writer *w, uint8_t unit, const uint8_t *pdu, size_t pdu_len)
{
	size_t start = w->len;
	uint16_t crc;

	if (pdu_len == 0 || pdu_len + 3 > MBUS_RTU_MAX_ADU)
		return -EMSGSIZE;
	gw_wr_u8(w, unit);
	gw_wr_bytes(w, pdu, pdu_len);
	if (w->err)
		return w->err;
	crc = mbus_crc16(w->p + start, w->len - start);
	/* The CRC goes low byte first (Serial Line V1.02, 2.5.1.2). */
	gw_wr_u8(w, (uint8_t)crc);
	gw_wr_u8(w, (uint8_t)(crc >> 8));
	return w->err;
}

/* Checks the CRC of a complete frame of @n bytes and fills @out. */
static int finish(const uint8_t *buf, size_t n, struct mbus_frame *out)
{
	uint16_t crc = mbus_crc16(buf, n - 2);

	if (buf[n - 2] != (uint8_t)crc || buf[n - 1] != (uint8_t)(crc >> 8))
		return -EBADMSG;
	out->unit = buf[0];
	out->fc = buf[1] & 0x7F;
	out->exception = buf[1] & 0x80 ? buf[2] : 0;
	out->body.p = buf + 2;
	out->body.len = n - 4;
	return (int)n;
}

int mbus_rtu_decode_rsp(const uint8_t *buf, size_t len, struct mbus_frame *out)
{
	size_t need;

	if (len < 2)
		return 0;
	if (buf[1] & 0x80) {
		need = 5;
	} else {
		switch (buf[1]) {
		case MBUS_FC_READ_COILS:
		case MBUS_FC_READ_DISCRETE:
		case MBUS_FC_READ_HOLDING:
		case MBUS_FC_READ_INPUT:
			if (len < 3)
				return 0;
			if (buf[2] == 0 || buf[2] > MBUS_RTU_MAX_ADU - 5)
				return -EBADMSG;
			need = 5 + (size_t)buf[2];
			break;
		case MBUS_FC_WRITE_COIL:
		case MBUS_FC_WRITE_REGISTER:
		case MBUS_FC_WRITE_COILS:
		case MBUS_FC_WRITE_REGISTERS:
			need = 8;
			break;
		default:
			return -EPROTO;
		}
	}
	if (len < need)
		return 0;
	return finish(buf, need, out);
}

int mbus_rtu_decode_req(const uint8_t *buf, size_t len, struct mbus_frame *out)
{
	size_t need;

	if (len < 2)
		return 0;
	switch (buf[1]) {
	case MBUS_FC_READ_COILS:
	case MBUS_FC_READ_DISCRETE:
	case MBUS_FC_READ_HOLDING:
	case MBUS_FC_READ_INPUT:
	case MBUS_FC_WRITE_COIL:
	case MBUS_FC_WRITE_REGISTER:
		need = 8;
		break;
	case MBUS_FC_WRITE_COILS:
	case MBUS_FC_WRITE_REGISTERS:
		if (len < 7)
			return 0;
		need = 9 + (size_t)buf[6];
		if (need > MBUS_RTU_MAX_ADU)
			return -EBADMSG;
		break;
	default:
		return -EPROTO;
	}
	if (len < need)
		return 0;
	return finish(buf, need, out);
}

int mbus_rsp_parse(const struct mbus_frame *f, uint8_t fc, uint16_t addr, uint16_t count,
		   uint16_t *regs)
{
	struct gw_reader r;
	uint8_t bc;
	uint16_t a, v;
	size_t i;

	if (f->fc != fc)
		return -EPROTO;
	gw_reader_init(&r, f->body.p, f->body.len);
	switch (fc) {
	case MBUS_FC_READ_COILS:
	case MBUS_FC_READ_DISCRETE:
		if (gw_rd_u8(&r, &bc) || bc != (count + 7) / 8 || gw_rd_left(&r) != bc)
			return -EBADMSG;
		for (i = 0; i < count; i++)
			regs[i] = (r.p[r.off + i / 8] >> (i % 8)) & 1;
		return 0;
	case MBUS_FC_READ_HOLDING:
	case MBUS_FC_READ_INPUT:
		if (gw_rd_u8(&r, &bc) || bc != 2 * count || gw_rd_left(&r) != bc)
			return -EBADMSG;
		for (i = 0; i < count; i++)
			gw_rd_u16be(&r, &regs[i]);
		return r.err;
	case MBUS_FC_WRITE_COIL:
	case MBUS_FC_WRITE_REGISTER:
	case MBUS_FC_WRITE_COILS:
	case MBUS_FC_WRITE_REGISTERS:
		/* Writes echo the address and the value (5, 6) or the count (15, 16). */
		if (gw_rd_u16be(&r, &a) || gw_rd_u16be(&r, &v) || gw_rd_left(&r) || a != addr)
			return -EBADMSG;
		if ((fc == MBUS_FC_WRITE_COILS || fc == MBUS_FC_WRITE_REGISTERS) && v != count)
			return -EBADMSG;
		return 0;
	default:
		return -EPROTO;
	}
}

/* ------------------------------------------------------------------ MBAP */

int mbus_mbap_encode(struct gw_writer *w, uint16_t tid, uint8_t unit, const uint8_t *pdu,
		     size_t pdu_len)
{
	if (pdu_len == 0 || pdu_len > MBUS_MAX_PDU)
		return -EMSGSIZE;
	/* [TCP 3.1.3] transaction id, protocol id 0, length of unit + PDU. */
	gw_wr_u16be(w, tid);
	gw_wr_u16be(w, 0);
	gw_wr_u16be(w, (uint16_t)(pdu_len + 1));
	gw_wr_u8(w, unit);
	gw_wr_bytes(w, pdu, pdu_len);
	return w->err;
}

int mbus_mbap_decode(const uint8_t *buf, size_t len, uint16_t *tid, struct mbus_frame *out)
{
	struct gw_reader r;
	uint16_t proto, n;
	uint8_t unit, fc;
	size_t need;

	if (len < 7)
		return 0;
	gw_reader_init(&r, buf, len);
	gw_rd_u16be(&r, tid);
	gw_rd_u16be(&r, &proto);
	gw_rd_u16be(&r, &n);
	gw_rd_u8(&r, &unit);
	/* The length counts the unit id and a PDU of at least a function code. */
	if (proto != 0 || n < 2 || n > MBUS_MAX_PDU + 1)
		return -EBADMSG;
	need = 6 + (size_t)n;
	if (len < need)
		return 0;
	gw_rd_u8(&r, &fc);
	out->unit = unit;
	out->fc = fc & 0x7F;
	out->exception = 0;
	if (fc & 0x80) {
		/* An exception response is the function code and one code byte. */
		if (n != 3)
			return -EBADMSG;
		out->exception = buf[8];
	}
	out->body.p = buf + 8;
	out->body.len = need - 8;
	return (int)need;
}

int mbus_xfer_encode(struct gw_writer *aw, bool mbap, uint16_t *tid, const struct mbus_xfer *x)
{
	uint8_t pdu[MBUS_MAX_PDU];
	struct gw_writer w;
	int rc;

	gw_writer_init(&w, pdu, sizeof(pdu));
	if (x->vals)
		rc = mbus_pdu_write(&w, x->fc, x->addr, x->vals, x->count);
	else
		rc = mbus_pdu_read(&w, x->fc, x->addr, x->count);
	if (rc)
		return rc;
	if (mbap)
		return mbus_mbap_encode(aw, ++*tid, x->unit, pdu, w.len);
	return mbus_rtu_encode(aw, x->unit, pdu, w.len);
}
