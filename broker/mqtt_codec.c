/*
 * mqtt_codec.c - the pure MQTT 3.1 / 3.1.1 / 5.0 codec (stub: the API is
 * fixed in mqtt_codec.h, the implementation follows).
 */
#include <errno.h>
#include <string.h>

#include "broker/mqtt_codec.h"

int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *type_flags, uint32_t *remaining,
		      size_t *hdr_len)
{
	(void)buf;
	(void)len;
	(void)type_flags;
	(void)remaining;
	(void)hdr_len;
	return -ENOSYS;
}

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, const struct mqtt_limits *lim,
		struct mqtt_pkt *out)
{
	(void)buf;
	(void)len;
	(void)version;
	(void)lim;
	memset(out, 0, sizeof(*out));
	return -ENOSYS;
}
