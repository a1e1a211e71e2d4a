/*
 * mbus_keys.c - the Modbus adapter's device-map keys: one row per key of its
 * [bus:], [device:] and [point:] sections (type, range, default, help), and
 * the checks that need a whole section (required keys, inheritance from the
 * device, what an area can hold). The loader (gateway/config_devmap.c) reads the
 * files and the common keys; these tables are all it knows of Modbus.
 *
 * Pure: no allocation beyond the loader's callbacks, no I/O.
 */
#include <errno.h>
#include <stddef.h>

#include "mbus_int.h"

/* ------------------------------------------------------------------- bus */

enum {
	MB_BUS_TYPE,
	MB_BUS_DEVICE,
	MB_BUS_BAUD,
	MB_BUS_PARITY,
	MB_BUS_DATA_BITS,
	MB_BUS_STOP_BITS,
	MB_BUS_RS485,
	MB_BUS_HOST,
	MB_BUS_PORT,
	MB_BUS_TIMEOUT,
	MB_BUS_TURNAROUND,
	__MB_BUS_MAX,
};

static const char *const bus_types[] = { "rtu", "tcp", "rtu_over_tcp", NULL };
static const char *const parities[] = { "N", "E", "O", NULL };
static const int parity_vals[] = { 'N', 'E', 'O' };
static const char *const byte_orders[] = { "ABCD", "BADC", "CDAB", "DCBA", NULL };
static const char *const areas[] = { "coil", "discrete", "input", "holding", NULL };
static const char *const write_multiples[] = { "auto", "always", NULL };

#define BK(f) offsetof(struct mbus_bus, f)
static const struct ad_key bus_rows[__MB_BUS_MAX] = {
	[MB_BUS_TYPE] = { .name = "type",
			  .type = AD_K_ENUM,
			  .off = BK(type),
			  .size = sizeof(enum ad_bus_type),
			  .enums = bus_types,
			  .def = "rtu",
			  .help = "transport; inline in a [device:], tcp unless only device is given" },
	[MB_BUS_DEVICE] = { .name = "device",
			    .type = AD_K_STR,
			    .off = BK(device),
			    .help = "serial device of an RTU line, e.g. /dev/ttyUSB0" },
	[MB_BUS_BAUD] = { .name = "baud",
			  .type = AD_K_INT,
			  .off = BK(baud),
			  .size = 4,
			  .min = 50,
			  .max = 4000000,
			  .def = "9600" },
	[MB_BUS_PARITY] = { .name = "parity",
			    .type = AD_K_ENUM,
			    .off = BK(parity),
			    .size = 1,
			    .enums = parities,
			    .enum_vals = parity_vals,
			    .def = "N" },
	[MB_BUS_DATA_BITS] = { .name = "data_bits",
			       .type = AD_K_INT,
			       .off = BK(data_bits),
			       .size = 1,
			       .min = 5,
			       .max = 8,
			       .def = "8" },
	[MB_BUS_STOP_BITS] = { .name = "stop_bits",
			       .type = AD_K_INT,
			       .off = BK(stop_bits),
			       .size = 1,
			       .min = 1,
			       .max = 2,
			       .def = "1" },
	[MB_BUS_RS485] = { .name = "rs485",
			   .type = AD_K_BOOL,
			   .off = BK(rs485),
			   .def = "no",
			   .help = "switch the line to RS-485 mode" },
	[MB_BUS_HOST] = { .name = "host",
			  .type = AD_K_STR,
			  .off = BK(host),
			  .help = "tcp and rtu_over_tcp: address of the device or gateway" },
	[MB_BUS_PORT] = { .name = "port",
			  .type = AD_K_INT,
			  .off = BK(port),
			  .size = 2,
			  .min = 1,
			  .max = 65535,
			  .def = "502" },
	[MB_BUS_TIMEOUT] = { .name = "timeout",
			     .type = AD_K_DUR,
			     .off = BK(timeout_ms),
			     .size = 4,
			     .min = 1,
			     .max = 600000,
			     .def = "500ms",
			     .help = "response timeout of one request" },
	[MB_BUS_TURNAROUND] = { .name = "turnaround",
				.type = AD_K_DUR,
				.off = BK(turnaround_ms),
				.size = 4,
				.min = 0,
				.max = 60000,
				.def = "20ms",
				.help = "silence between frames on an RTU line" },
};

static int check_bus(struct ad_parse *ap, struct ad_bus *b)
{
	struct mbus_bus *mb = b->ext;

	if (b->implicit) {
		if (!ad_given(ap, MB_BUS_TYPE))
			mb->type = mb->device && !mb->host ? AD_BUS_RTU : AD_BUS_TCP;
		if (!mb->host && !mb->device) {
			ad_parse_error(
				ap, ap->line,
				"[device:%s]: no transport; expected bus = NAME, or host = ADDRESS (Modbus TCP), or device = /dev/... (RTU)",
				b->name);
			return -EINVAL;
		}
	}
	if ((mb->type == AD_BUS_TCP || mb->type == AD_BUS_RTU_OVER_TCP) &&
	    (!mb->host || !*mb->host))
		ad_parse_error(ap, ap->line, "[%s] host: required for type = %s", ap->section,
			       bus_types[mb->type]);
	if (mb->type == AD_BUS_RTU && (!mb->device || !*mb->device))
		ad_parse_error(ap, ap->line,
			       "[%s] device: required for type = rtu (e.g. /dev/ttyUSB0)",
			       ap->section);
	return 0;
}

/* ---------------------------------------------------------------- device */

enum {
	MB_DEV_UNIT_ID,
	MB_DEV_BYTE_ORDER,
	MB_DEV_ADDRESS_BASE,
	MB_DEV_MAX_REGS_PER_READ,
	MB_DEV_MAX_GAP,
	MB_DEV_ONE_REQUEST_PER_POINT,
	MB_DEV_WRITE_MULTIPLE,
	MB_DEV_RETRIES,
	MB_DEV_DEGRADE_AFTER,
	MB_DEV_DEGRADE_FOR,
	__MB_DEV_MAX,
};

#define DK(f) offsetof(struct mbus_device, f)
static const struct ad_key device_rows[__MB_DEV_MAX] = {
	[MB_DEV_UNIT_ID] = { .name = "unit_id",
			     .type = AD_K_INT,
			     .off = DK(unit_id),
			     .size = 1,
			     .min = 0,
			     .max = 255,
			     .def = "1",
			     .help = "slave / unit id (0 to 247 on an RTU line)" },
	[MB_DEV_BYTE_ORDER] = { .name = "byte_order",
				.type = AD_K_ENUM,
				.off = DK(byte_order),
				.size = sizeof(enum ad_byte_order),
				.enums = byte_orders,
				.enum_base = AD_BO_ABCD,
				.def = "ABCD",
				.help = "default for 32/64-bit points" },
	[MB_DEV_ADDRESS_BASE] = { .name = "address_base",
				  .type = AD_K_INT,
				  .off = DK(address_base),
				  .size = 1,
				  .min = 0,
				  .max = 1,
				  .def = "0",
				  .help = "0: protocol addresses; 1: 1-based register numbers" },
	[MB_DEV_MAX_REGS_PER_READ] = { .name = "max_regs_per_read",
				       .type = AD_K_INT,
				       .off = DK(max_regs_per_read),
				       .size = 2,
				       .min = 1,
				       .max = 125,
				       .def = "125" },
	[MB_DEV_MAX_GAP] = { .name = "max_gap",
			     .type = AD_K_INT,
			     .off = DK(max_gap),
			     .size = 2,
			     .min = 0,
			     .max = 125,
			     .def = "10",
			     .help = "registers of gap filled to merge two reads" },
	[MB_DEV_ONE_REQUEST_PER_POINT] = { .name = "one_request_per_point",
					   .type = AD_K_BOOL,
					   .off = DK(one_request_per_point),
					   .def = "no" },
	[MB_DEV_WRITE_MULTIPLE] = { .name = "write_multiple",
				    .type = AD_K_ENUM,
				    .off = DK(write_multiple_always),
				    .size = 1,
				    .enums = write_multiples,
				    .def = "auto",
				    .help = "always: FC 16 even for one register" },
	[MB_DEV_RETRIES] = { .name = "retries",
			     .type = AD_K_INT,
			     .off = DK(retries),
			     .size = 1,
			     .min = 0,
			     .max = 10,
			     .def = "1" },
	[MB_DEV_DEGRADE_AFTER] = AD_KEY_DEGRADE_AFTER(struct mbus_device,
						      "failed cycles before the device is skipped"),
	[MB_DEV_DEGRADE_FOR] = AD_KEY_DEGRADE_FOR(struct mbus_device),
};

static int check_device(struct ad_parse *ap, struct ad_device *d)
{
	struct mbus_device *md = d->ext;

	md->max_bits_per_read = MBUS_MAX_READ_BITS;
	if (mbus_bus(d->bus)->type == AD_BUS_RTU && md->unit_id > 247)
		ad_parse_error(ap, ap->line,
			       "[device:%s] unit_id: %u: expected 0 to 247 on an RTU line", d->name,
			       md->unit_id);
	return 0;
}

/* ----------------------------------------------------------------- point */

enum {
	MB_PT_AREA,
	MB_PT_ADDRESS,
	MB_PT_BYTE_ORDER,
	MB_PT_BIT,
	MB_PT_LENGTH,
	__MB_PT_MAX,
};

#define PK(f) offsetof(struct mbus_point, f)
static const struct ad_key point_rows[__MB_PT_MAX] = {
	[MB_PT_AREA] = { .name = "area",
			 .type = AD_K_ENUM,
			 .off = PK(area),
			 .size = sizeof(enum ad_area),
			 .enums = areas,
			 .def = "holding" },
	[MB_PT_ADDRESS] = { .name = "address",
			    .type = AD_K_INT,
			    .off = PK(address),
			    .size = 2,
			    .min = 0,
			    .max = 65535,
			    .help = "required; see the device's address_base" },
	[MB_PT_BYTE_ORDER] = { .name = "byte_order",
			       .type = AD_K_ENUM,
			       .off = PK(byte_order),
			       .size = sizeof(enum ad_byte_order),
			       .enums = byte_orders,
			       .enum_base = AD_BO_ABCD,
			       .help = "default: the device's" },
	[MB_PT_BIT] = { .name = "bit",
			.type = AD_K_INT,
			.off = PK(bit),
			.size = 1,
			.min = 0,
			.max = 15,
			.flag = AD_KF_ZERO_UNSET,
			.help = "0-15, for type = bit" },
	[MB_PT_LENGTH] = { .name = "length",
			   .type = AD_K_INT,
			   .off = PK(length),
			   .size = 2,
			   .min = 1,
			   .max = 123,
			   .flag = AD_KF_ZERO_UNSET,
			   .help = "registers, for type = string" },
};

static int check_point(struct ad_parse *ap, struct ad_point *pt)
{
	const struct mbus_device *md = mbus_dev(pt->device);
	struct mbus_point *mp = pt->ext;
	const char *what = ap->section;
	unsigned int line = ap->line, regs;

	if (!ad_given(ap, MB_PT_ADDRESS))
		ad_parse_error(ap, line, "[%s] address: required", what);
	if (md->address_base == 1) {
		if (mp->address == 0 && ad_given(ap, MB_PT_ADDRESS))
			ad_parse_error(
				ap, line,
				"[%s] address: 0 with address_base = 1; register numbers start at 1",
				what);
		else if (mp->address)
			mp->address--;
	}
	if (pt->type == AD_PT_STRING) {
		if (!ad_given(ap, MB_PT_LENGTH))
			ad_parse_error(ap, line,
				       "[%s] length: required for type = string (registers)", what);
		mp->string_swap = ad_given(ap, MB_PT_BYTE_ORDER) &&
				  (mp->byte_order == AD_BO_BADC || mp->byte_order == AD_BO_DCBA);
		mp->byte_order = AD_BO_ABCD;
	} else if (!ad_given(ap, MB_PT_BYTE_ORDER)) {
		mp->byte_order = md->byte_order;
	}
	if (pt->type == AD_PT_BIT && !ad_given(ap, MB_PT_BIT))
		ad_parse_error(ap, line, "[%s] bit: required for type = bit (0-15)", what);
	if (ad_given(ap, MB_PT_BIT) && pt->type != AD_PT_BIT)
		ad_parse_error(ap, line, "[%s] bit: only for type = bit", what);
	if ((mp->area == AD_AREA_COIL || mp->area == AD_AREA_DISCRETE) && pt->type != AD_PT_BOOL)
		ad_parse_error(
			ap, line,
			"[%s] type: %s: coil and discrete areas hold single bits; expected type = bool",
			what, ad_point_type_name(pt->type));
	if (pt->writable && (mp->area == AD_AREA_INPUT || mp->area == AD_AREA_DISCRETE))
		ad_parse_error(ap, line, "[%s] access: rw: the %s area is read-only in Modbus",
			       what, areas[mp->area]);
	regs = ad_point_regs(pt);
	if ((uint32_t)mp->address + regs > 65536)
		ad_parse_error(ap, line, "[%s] address: %u + %u registers runs past 65535", what,
			       mp->address, regs);
	return 0;
}

/* ---------------------------------------------------------------- schema */

const struct ad_schema mbus_schema = {
	.bus = { bus_rows, __MB_BUS_MAX, sizeof(struct mbus_bus) },
	.device = { device_rows, __MB_DEV_MAX, sizeof(struct mbus_device) },
	.point = { point_rows, __MB_PT_MAX, sizeof(struct mbus_point) },
	.point_type = AD_PT_UINT16,
	.check_bus = check_bus,
	.check_device = check_device,
	.check_point = check_point,
};
