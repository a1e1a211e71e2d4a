/*
 * adapter.h - what every field adapter shares with the gateway: the device
 * map (buses, devices, points, as loaded from the devices.d INI files), the
 * normalised reading, and the adapter interface (start / stop / command).
 *
 * Adapters never talk to the cloud side and never to each other: they hand
 * readings to the sink the gateway gives them and receive commands from it.
 */
#ifndef FIELDMQ_ADAPTER_H
#define FIELDMQ_ADAPTER_H

#include <uv.h>

#include "gateway/base/base.h"

/* ------------------------------------------------------------------ values */

enum ad_value_type {
	AD_VAL_NONE, /* no value (e.g. a bad reading that never had a good one) */
	AD_VAL_BOOL,
	AD_VAL_INT,    /* int64 */
	AD_VAL_UINT,   /* uint64 (values above INT64_MAX stay exact) */
	AD_VAL_DOUBLE, /* may be NaN / Inf: rendered as quality bad, never as a JSON number */
	AD_VAL_STRING, /* bytes, not NUL-terminated; rendered JSON-escaped */
	__AD_VAL_MAX,
};

struct ad_value {
	enum ad_value_type type;
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double d;
		struct gw_slice s;
	};
};

enum ad_quality {
	AD_Q_GOOD,
	AD_Q_BAD,   /* the last read failed; value is the last good one or absent */
	AD_Q_STALE, /* older than 3 poll intervals */
	__AD_Q_MAX,
};

/* ---------------------------------------------------------------- device map */

enum ad_protocol {
	AD_PROTO_MODBUS,
	AD_PROTO_COAP,
	AD_PROTO_SERIAL,
	__AD_PROTO_MAX,
};

enum ad_bus_type {
	AD_BUS_RTU,
	AD_BUS_TCP,
	AD_BUS_RTU_OVER_TCP,
	__AD_BUS_MAX,
};

enum ad_publish {
	AD_PUB_INHERIT, /* take the device's, then the gateway's */
	AD_PUB_ON_CHANGE,
	AD_PUB_EVERY_POLL,
	AD_PUB_ON_CHANGE_OR_PERIOD,
	__AD_PUB_MAX,
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

enum ad_point_type {
	AD_PT_BOOL,
	AD_PT_BIT, /* one bit of a register (bit = 0..15) */
	AD_PT_INT16,
	AD_PT_UINT16,
	AD_PT_INT32,
	AD_PT_UINT32,
	AD_PT_INT64,
	AD_PT_UINT64,
	AD_PT_FLOAT32,
	AD_PT_FLOAT64,
	AD_PT_STRING, /* length registers, two bytes each, high byte first */
	__AD_PT_MAX,
};

enum ad_parity {
	AD_PARITY_NONE = 'N',
	AD_PARITY_EVEN = 'E',
	AD_PARITY_ODD = 'O',
};

/* Where a map entry came from, for error messages at run time. */
struct ad_origin {
	const char *file; /* owned by the map */
	unsigned int line;
};

/* [bus:NAME] or the implicit bus of a device with inline transport keys. */
struct ad_bus {
	char *name; /* "rs485"; for an implicit bus, the device's name */
	bool implicit;
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
	struct ad_origin origin;
};

/* [device:NAME] */
struct ad_device {
	char *name;
	enum ad_protocol protocol;
	struct ad_bus *bus; /* points into map->buses */
	uint8_t unit_id;
	uint32_t poll_ms;
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
	enum ad_publish publish;  /* never INHERIT after load */
	struct ad_point **points; /* this device's points, in file order */
	unsigned int n_points;
	struct ad_origin origin;
};

/* [point:DEVICE/NAME] */
struct ad_point {
	char *name; /* "temperature" */
	struct ad_device *device;
	enum ad_area area;
	uint16_t address; /* protocol address (address_base already applied) */
	enum ad_point_type type;
	enum ad_byte_order byte_order; /* never INHERIT after load */
	uint8_t bit;
	uint16_t length;  /* registers, for strings */
	bool string_swap; /* strings: low byte first in each register */
	double scale;
	double offset;
	double deadband;
	char *unit;
	bool writable;		 /* access = rw */
	unsigned int index;	 /* position in map->points */
	enum ad_publish publish; /* never INHERIT after load */
	struct ad_origin origin;
};

struct ad_map {
	struct ad_bus **buses;
	unsigned int n_buses;
	struct ad_device **devices;
	unsigned int n_devices;
	struct ad_point **points;
	unsigned int n_points;
	char **files; /* the file names origins point to */
	unsigned int n_files;
};

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
		return pt->length;
	default:
		return 1;
	}
}

/* --------------------------------------------------------------- readings */

/* One normalised reading, as every adapter produces it. */
struct ad_reading {
	const struct ad_device *device;
	const struct ad_point *point;
	struct ad_value value;
	enum ad_quality quality;
	int64_t ts_ms; /* when the value was read, ms since the Unix epoch */
};

/* --------------------------------------------------------------- interface */

struct ad_adapter;

/* Result of a command (a write), reported back to the gateway. */
struct ad_cmd_result {
	bool ok;
	const char *error; /* NULL when ok: "illegal data address", "timeout", ... */
	struct ad_value value;
	int64_t ts_ms;
};

/*
 * What the gateway gives an adapter. All callbacks run on the loop thread.
 * on_reading: a new reading (the gateway applies the publish policy).
 * on_status: a device went online / offline.
 * on_cmd_done: a command finished; @token is what was passed to ->command.
 */
struct ad_sink {
	void *arg;
	void (*on_reading)(void *arg, const struct ad_reading *r);
	void (*on_status)(void *arg, const struct ad_device *dev, bool online);
	void (*on_cmd_done)(void *arg, void *token, const struct ad_cmd_result *res);
};

/*
 * The adapter interface. An adapter serves the devices of one protocol in a
 * map. start() returns 0 or -errno; stop() begins an asynchronous close and
 * calls @done once every handle is closed; after that, free().
 * command(): write @value to @pt; 0 if accepted (the result comes through
 * on_cmd_done), or -EINVAL / -EACCES / -ERANGE when refused before reaching
 * the device (with *why set to a static message for the result topic).
 */
struct ad_ops {
	const char *name;
	int (*start)(struct ad_adapter *a);
	void (*stop)(struct ad_adapter *a, void (*done)(void *arg), void *arg);
	void (*free)(struct ad_adapter *a);
	int (*command)(struct ad_adapter *a, const struct ad_point *pt,
		       const struct ad_value *value, void *token, const char **why);
};

/* Embedded first in every adapter's own struct. */
struct ad_adapter {
	const struct ad_ops *ops;
	uv_loop_t *loop;
	const struct gw_logger *log;
	const struct ad_map *map;
	struct ad_sink sink;
};

#endif
