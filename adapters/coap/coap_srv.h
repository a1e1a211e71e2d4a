/*
 * coap_srv.h - the CoAP server of fieldmq ([coap] in fieldmq.ini): the EMQX
 * CoAP gateway interface, so CoAP clients written for EMQX publish into and
 * observe the embedded broker unchanged.
 *
 *   POST|PUT ps/{topic}?qos=&retain=&expiry=   publish (2.04 once accepted)
 *   GET ps/{filter} Observe: 0                 subscribe: one notification per message
 *   GET ps/{filter} Observe: 1 (or an RST)     unsubscribe
 *   POST mqtt/connection?clientid=&username=&password=   connect: 2.01, the token
 *   PUT mqtt/connection?clientid=&token=       heartbeat (2.04)
 *   DELETE mqtt/connection?clientid=&token=    close (2.02)
 *
 * Every client is a session of the broker (its in-process API), so retained
 * messages, QoS and the topic ACL apply to it as to an MQTT client.
 *
 * gateway/gateway.c fills a struct coapsrv_config from [coap], creates the
 * server with the loop and the broker, starts it, and stops it before the
 * broker. Everything runs on the loop thread.
 */
#ifndef FIELDMQ_COAP_SRV_H
#define FIELDMQ_COAP_SRV_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/base/base.h"

struct uv_loop_s;
struct brk;
struct coapsrv_server;

/* How notifications go out: NON always, CON always, or CON for QoS >= 1. */
enum coapsrv_notify {
	COAPSRV_NOTIFY_NON,
	COAPSRV_NOTIFY_CON,
	COAPSRV_NOTIFY_QOS,
	__COAPSRV_NOTIFY_MAX,
};

/* Listeners of [coap] listen (comma-separated), at most this many. */
#define COAPSRV_MAX_LISTEN 4

/*
 * [coap]. Strings are borrowed: they must outlive the server (the gateway
 * keeps its parsed config until exit).
 */
struct coapsrv_config {
	const char *listen; /* "127.0.0.1:5683, coaps://0.0.0.0:5684" */
	const char *psk_identity;
	const char *psk_key; /* needed by a coaps:// listener */
	bool connection_required;
	enum coapsrv_notify notify_type;
	const char *mountpoint; /* NULL / "": none */
	uint32_t max_clients;
	uint32_t max_observations; /* all clients together */
	uint32_t max_queued;	   /* per client: CON notifications not yet acknowledged */
	uint32_t max_payload;	   /* bytes of a publish: larger is 4.13 */
	uint64_t heartbeat_ms;	   /* idle time after which a client is closed */
	uint32_t rate_limit;	   /* requests per second from one address; 0 = none */
};

/* Figures for $SYS/fieldmq/coap/server/... */
struct coapsrv_stats {
	uint64_t clients;	  /* now */
	uint64_t clients_total;	  /* sessions made */
	uint64_t clients_refused; /* max_clients reached, bad client id, broker refused */
	uint64_t clients_expired; /* idle past heartbeat */
	uint64_t observations;	  /* now */
	uint64_t observations_refused;
	uint64_t requests;	 /* every request seen */
	uint64_t publishes;	 /* accepted into the broker */
	uint64_t notifications;	 /* sent */
	uint64_t notify_dropped; /* max_queued reached, or too large */
	uint64_t bad_request;	 /* 4.00 */
	uint64_t unauthorized;	 /* 4.01 and 4.03 */
	uint64_t not_found;	 /* 4.04 */
	uint64_t bad_method;	 /* 4.05 */
	uint64_t too_large;	 /* 4.13 */
	uint64_t rate_limited;	 /* dropped unanswered: over rate_limit */
	uint64_t malformed;	 /* PDUs libcoap could not parse */
};

/* DESIGN.md defaults: listen 127.0.0.1:5683, notify_type qos, 1000 clients, ... */
void coapsrv_config_defaults(struct coapsrv_config *cfg);

/*
 * coapsrv_server_new - a server on @loop publishing into @broker. @lg may be
 * NULL. Nothing is bound yet. Returns 0 and *out, -EINVAL (a bad listen
 * entry, coaps:// without a PSK), -ENOTSUP (coaps:// and this libcoap has
 * no DTLS), or -ENOMEM.
 */
int coapsrv_server_new(struct uv_loop_s *loop, struct brk *broker, const struct coapsrv_config *cfg,
		       const struct gw_logger *lg, struct coapsrv_server **out);

/* Bind and start. 0 or a negative errno (logged); on failure too, stop + free. */
int coapsrv_server_start(struct coapsrv_server *s);

/*
 * Detach every client from the broker (no wills), close the sockets; @done
 * (may be NULL) runs when every handle is closed. Call before brk_stop().
 * Then coapsrv_server_free().
 */
void coapsrv_server_stop(struct coapsrv_server *s, void (*done)(void *arg), void *arg);
void coapsrv_server_free(struct coapsrv_server *s);

void coapsrv_server_get_stats(const struct coapsrv_server *s, struct coapsrv_stats *out);

/* Whether this build's libcoap speaks DTLS (for coaps:// and --check-config). */
bool coapsrv_dtls_supported(void);

#endif
