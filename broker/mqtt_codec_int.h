/*
 * mqtt_codec_int.h - what the parts of the pure MQTT codec share:
 * mqtt_codec.c (tables, validators, user properties), mqtt_decode_codec.c
 * and mqtt_encode_codec.c. Included only by them (the codec's API is
 * mqtt_codec.h). Pure like them: no allocation, no I/O.
 */
#ifndef FIELDMQ_MQTT_CODEC_INT_H
#define FIELDMQ_MQTT_CODEC_INT_H

#include <errno.h>
#include <string.h>

#include "broker/mqtt_codec.h"

enum prop_kind {
	PK_NONE,
	PK_BYTE,
	PK_U16,
	PK_U32,
	PK_VARINT,
	PK_UTF8,
	PK_BIN,
	PK_PAIR,
};

/* Where a property may appear: one bit per packet type, bit 0 for a will. */
#define IN(t) (1u << MQTT_##t)
#define IN_WILL 1u

/* What a property holds (enum prop_kind) and where it may appear (IN bits). */
struct mqtt__prop_def {
	uint8_t kind;
	uint16_t where;
};

/* Indexed by property identifier (mqtt_codec.c); kind PK_NONE: no such property. */
extern const struct mqtt__prop_def mqtt__prop_info[__MQTT_PROP_MAX];

static inline bool mqtt__prop_allowed(unsigned int where, unsigned int id)
{
	return id < __MQTT_PROP_MAX && mqtt__prop_info[id].kind != PK_NONE &&
	       (mqtt__prop_info[id].where & where);
}

/* Is rc a valid 5.0 reason code for packet type? (mqtt_codec.c) */
bool mqtt__rc_valid(uint8_t type, uint8_t rc);

/* Whether the first level of f is exactly "$share". */
static inline bool mqtt__is_share(struct gw_slice f)
{
	return f.len >= 6 && memcmp(f.p, "$share", 6) == 0 && (f.len == 6 || f.p[6] == '/');
}

/* A varint that must also be minimally encoded [MQTT-1.5.5-1]. */
static inline int mqtt__rd_varint(struct gw_reader *r, uint32_t *v)
{
	size_t start = r->off;
	uint32_t val;

	if (gw_rd_varint(r, &val))
		return r->err;
	if (r->off - start != gw_varint_size(val)) {
		r->err = -EBADMSG;
		return r->err;
	}
	*v = val;
	return 0;
}

#endif
