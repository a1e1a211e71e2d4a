/*
 * coap_adapter.h - the CoAP device adapter: GETs and observes the resources
 * of the protocol = coap devices of a device map (coap:// and, where this
 * libcoap has DTLS, coaps:// with a pre-shared key) and turns their payloads
 * (text, JSON with RFC 6901 pointers, SenML JSON) into readings.
 *
 * Usage from the daemon (as every adapter, see adapters/adapter.h):
 *   struct ad_adapter *a = ad_coap_new(loop, map, log, &sink);
 *   a->ops->start(a); ... a->ops->stop(a, done, arg); a->ops->free(a);
 *
 * One libcoap context (adapters/coap/coap_uv.h) on the loop serves every
 * device, one client session each; no thread. The logic (observe or poll,
 * re-registration, errors, health) is the sans-I/O core of coap_dev.c.
 */
#ifndef FIELDMQ_COAP_ADAPTER_H
#define FIELDMQ_COAP_ADAPTER_H

#include <stdio.h>

#include "adapters/adapter.h"

/* The device-map keys of protocol = coap (coap_keys.c). */
extern const struct ad_schema ad_coap_schema;

/*
 * Create the adapter for the coap devices of @map. The map, logger and loop
 * must outlive it; @sink is copied. Nothing is opened until start().
 * NULL when out of memory.
 */
struct ad_adapter *ad_coap_new(struct uv_loop_s *loop, const struct ad_map *map,
			       const struct gw_logger *log, const struct ad_sink *sink);

/* Counters, for $SYS figures and the benchmark. Read on the loop thread. */
struct ad_coap_stats {
	uint64_t requests;	     /* GETs sent (registrations included) */
	uint64_t registrations;	     /* GETs with Observe: 0 */
	uint64_t responses;	     /* responses and notifications taken */
	uint64_t notifications;	     /* of which notifications of an observation */
	uint64_t failures;	     /* timeouts, RSTs, 4.xx / 5.xx */
	uint64_t parse_errors;	     /* payloads a point could not read */
	uint64_t readings;	     /* on_reading calls */
	uint64_t skipped;	     /* requests not sent because the device was degraded */
	uint64_t writes;	     /* PUT / POST sent for commands */
	unsigned int devices;	     /* coap devices served */
	unsigned int devices_online; /* of which online */
};

/* Copy @a's counters into @out. @a must come from ad_coap_new(). */
void ad_coap_get_stats(const struct ad_adapter *a, struct ad_coap_stats *out);

/*
 * fieldmq --discover URL: GET the /.well-known/core of the device at @url
 * (coap://HOST[:PORT]; blocking, at most @timeout_ms: a one-shot command,
 * never on the daemon's loop) and print a device-map skeleton to @out: one
 * [device:] and one [point:] per resource (RFC 6690 link-format), observe =
 * yes where the device advertises obs. Errors go to @err.
 * Returns 0, 1 (no answer, an error code, not link-format), 2 (a bad url).
 */
int ad_coap_discover(const char *url, unsigned int timeout_ms, FILE *out, FILE *err);

#endif
