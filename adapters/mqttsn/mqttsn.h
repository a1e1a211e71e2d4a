/*
 * mqttsn.h - the MQTT-SN gateway of fieldmq ([mqttsn] in fieldmq.ini): UDP
 * clients become in-process sessions of the embedded broker.
 *
 * gateway/gateway.c (the composition root) fills a struct mqttsn_config from
 * the parsed [mqttsn] section, creates the server
 * with the loop and the broker, starts it, and stops it before the broker.
 * Everything runs on the loop thread.
 */
#ifndef FIELDMQ_MQTTSN_H
#define FIELDMQ_MQTTSN_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/base/base.h"
#include "gateway/base/cidr.h"

struct uv_loop_s;
struct brk;
struct mqttsn_server;

/* One entry of [mqttsn.predefined]: ID = topic, shared by all clients. */
struct mqttsn_predef {
	uint16_t id;
	const char *topic;
};

/*
 * [mqttsn]. Strings and the predefined table are borrowed: they must outlive
 * the server (the gateway keeps its parsed config until exit).
 */
struct mqttsn_config {
	const char *listen;		/* "0.0.0.0:1884", "[::]:1884" */
	uint8_t gateway_id;		/* 1 */
	uint64_t advertise_interval_ms; /* 15 min; 0 = never */
	const char *multicast;		/* "225.1.1.1:1883" or NULL / "": off */
	uint32_t max_clients;		/* 1000 */
	uint64_t retry_interval_ms;	/* 10 s */
	unsigned int max_retries;	/* 5 */
	uint32_t max_queued;		/* 100 messages per client (asleep / in flight) */
	const char *mountpoint;		/* NULL / "": none */
	const struct mqttsn_predef *predefined;
	unsigned int n_predefined;
	/* Who may send (unicast and group datagrams); none: anyone. Borrowed. */
	const struct gw_cidr *allow_from;
	unsigned int n_allow_from;
};

/* Figures for $SYS/fieldmq/mqttsn/... */
struct mqttsn_stats {
	uint64_t clients;	/* connected now (active, asleep or awake) */
	uint64_t clients_total; /* connections accepted */
	uint64_t clients_lost;	/* keepalive or sleep expired: will published */
	uint64_t clients_refused;
	uint64_t datagrams_in, datagrams_out;
	uint64_t malformed;   /* did not decode */
	uint64_t dropped_in;  /* decoded but unusable: unknown client, unknown topic, wrong state */
	uint64_t dropped_out; /* queue full, retries exhausted, REGISTER refused, too large */
	uint64_t publish_in;  /* to the broker */
	uint64_t publish_out; /* PUBLISH sent to clients (first transmissions) */
	uint64_t retransmits;
	uint64_t denied; /* datagrams from outside allow_from, dropped unread */
};

/* DESIGN.md defaults (listen 0.0.0.0:1884, id 1, advertise 15 min, ...). */
void mqttsn_config_defaults(struct mqttsn_config *cfg);

/*
 * mqttsn_server_new - a gateway on @loop publishing into @broker. @lg may be
 * NULL. Nothing is bound yet. Returns 0 and *out, -EINVAL (bad listen or
 * multicast address, max_clients 0), or -ENOMEM.
 */
int mqttsn_server_new(struct uv_loop_s *loop, struct brk *broker, const struct mqttsn_config *cfg,
		      const struct gw_logger *lg, struct mqttsn_server **out);

/*
 * Bind, join the multicast group, start the timer. 0 or a libuv -errno (the
 * error is logged); on failure too, finish with mqttsn_server_stop() + free().
 */
int mqttsn_server_start(struct mqttsn_server *s);

/*
 * Detach every client from the broker (no wills: a shutdown is not a client's
 * failure), then close the sockets and timers; @done runs (may be NULL) once
 * every handle is closed. Call before brk_stop(). Then mqttsn_server_free().
 */
void mqttsn_server_stop(struct mqttsn_server *s, void (*done)(void *arg), void *arg);
void mqttsn_server_free(struct mqttsn_server *s);

void mqttsn_server_get_stats(const struct mqttsn_server *s, struct mqttsn_stats *out);

#endif
