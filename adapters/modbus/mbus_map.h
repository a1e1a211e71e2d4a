/*
 * mbus_map.h - the Modbus adapter's part of the device map: what its
 * [bus:], [device:] and [point:] keys fill (mbus_keys.c holds the key
 * tables and the checks), hung on the common objects of adapters/adapter.h
 * as ->ext.
 *
 * Pure data: included by the adapter, its tests, the simulator and the
 * tests of the loader that check Modbus values.
 */
#ifndef FIELDMQ_MBUS_MAP_H
#define FIELDMQ_MBUS_MAP_H

#include "adapters/adapter.h"

enum ad_bus_type {
	AD_BUS_RTU,
	AD_BUS_TCP,
	AD_BUS_RTU_OVER_TCP,
	__AD_BUS_MAX,
};

/* Byte orders for 32/64-bit values: A is the most significant byte. */
enum ad_byte_order {
	AD_BO_INHERIT,
	AD_BO_ABCD, /* big-endian words, big-endian bytes (Modbus default) */
	AD_BO_BADC, /* bytes swapped within each word */
	AD_BO_CDAB, /* words swapped ("word swap") */
	AD_BO_DCBA, /* little-endian */
	__AD_BO_MAX,
};

enum ad_area {
	AD_AREA_COIL,
	AD_AREA_DISCRETE,
	AD_AREA_INPUT,
	AD_AREA_HOLDING,
	__AD_AREA_MAX,
};

/* A bus: [bus:NAME] of a modbus device, or the transport keys inline in [device:]. */
struct mbus_bus {
	enum ad_bus_type type;
	char *device; /* rtu: /dev/ttyUSB0 */
	uint32_t baud;
	char parity; /* 'N' 'E' 'O' */
	uint8_t data_bits;
	uint8_t stop_bits;
	bool rs485;
	char *host; /* tcp, rtu_over_tcp */
	uint16_t port;
	uint32_t timeout_ms;
	uint32_t turnaround_ms;
};

/* The Modbus keys of a [device:]. */
struct mbus_device {
	uint8_t unit_id;
	enum ad_byte_order byte_order; /* default for 32/64-bit points; never INHERIT after load */
	uint8_t address_base;	       /* 0 or 1 */
	uint16_t max_regs_per_read;
	uint16_t max_bits_per_read;
	uint16_t max_gap;
	bool one_request_per_point;
	bool write_multiple_always;
	uint8_t retries;
	uint16_t degrade_after;
	uint32_t degrade_for_ms;
};

/* The Modbus keys of a [point:]: where the value is. */
struct mbus_point {
	enum ad_area area;
	uint16_t address;	       /* protocol address (address_base already applied) */
	enum ad_byte_order byte_order; /* never INHERIT after load */
	uint8_t bit;
	uint16_t length;  /* registers, for strings */
	bool string_swap; /* strings: low byte first in each register */
};

/* The Modbus parts of map objects of protocol modbus (set by the loader). */
static inline const struct mbus_bus *mbus_bus(const struct ad_bus *b)
{
	return (const struct mbus_bus *)b->ext;
}

static inline const struct mbus_device *mbus_dev(const struct ad_device *d)
{
	return (const struct mbus_device *)d->ext;
}

static inline const struct mbus_point *mbus_pt(const struct ad_point *pt)
{
	return (const struct mbus_point *)pt->ext;
}

/* Registers (or bits) a point spans: 1 for bool/bit/16-bit, 2 for 32-bit, 4 for 64-bit, length for strings. */
static inline unsigned int ad_point_regs(const struct ad_point *pt)
{
	switch (pt->type) {
	case AD_PT_INT32:
	case AD_PT_UINT32:
	case AD_PT_FLOAT32:
		return 2;
	case AD_PT_INT64:
	case AD_PT_UINT64:
	case AD_PT_FLOAT64:
		return 4;
	case AD_PT_STRING:
		return mbus_pt(pt)->length;
	default:
		return 1;
	}
}

/* The Modbus adapter's key tables and checks (mbus_keys.c), for the adapter registry. */
extern const struct ad_schema mbus_schema;

#endif
