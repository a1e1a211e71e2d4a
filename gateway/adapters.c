/*
 * adapters.c - the adapter registry: one row per protocol of the device map,
 * indexed by enum ad_protocol. A row names the protocol (the value of
 * "protocol =" in a [device:] section), gives the adapter's device-map keys
 * (its struct ad_schema) and its constructor. Adding an adapter is adding
 * its row here; the loader (config.c) and the daemon's lifecycle
 * (gateway.c) read this table and nothing else about adapters.
 *
 * A row with only a name is a protocol this build does not have yet:
 * devices naming it are refused with "not available in this version".
 */
#include "adapters/coap/coap_adapter.h"
#include "adapters/modbus/modbus_adapter.h"
#include "adapters/serial/serial_adapter.h"
#include "gateway/config.h"

const struct ad_driver gw_drivers[__AD_PROTO_MAX] = {
	[AD_PROTO_MODBUS] = { "modbus", &mbus_schema, ad_modbus_new },
	[AD_PROTO_COAP] = { "coap", &ad_coap_schema, ad_coap_new },
	[AD_PROTO_SERIAL] = { "serial", &ser_schema, ad_serial_new },
};
