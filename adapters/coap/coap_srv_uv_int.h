/*
 * coap_srv_uv_int.h - cross-file internals of the CoAP server's glue:
 * coap_srv_uv.c (lifecycle, the core's ops) and coap_srv_req_uv.c (the
 * requests). Include "adapters/coap/coap_lib.h" and <uv.h> before this
 * header (libcoap's calls must go through coap_lib.h's table); included by
 * those two files only.
 */
#ifndef FIELDMQ_COAP_SRV_UV_INT_H
#define FIELDMQ_COAP_SRV_UV_INT_H

#include "coap_srv_int.h"

#define LOGM "coap-srv"
#define MAX_OPTS 64

struct coapsrv_server {
	uv_loop_t *loop;
	struct brk *brk;
	const struct gw_logger *lg;
	struct coapsrv_config cfg;
	struct coapsrv_core *core; /* large (buffers, rate table): on the heap */
	bool core_ready;
	struct ad_coap_uv *cu;
	coap_context_t *ctx;
	uv_timer_t tick;  /* heartbeat expiry, the CON bound's restart */
	uv_timer_t flush; /* notifications held behind an observe response */
	bool timers_open;
	unsigned int open_handles;
	bool stopping;
	void (*done)(void *arg);
	void *done_arg;
	struct gw_list waits; /* publishes waiting for the broker's acked callback */
	char psk_identity[128];
	uint8_t psk_key[128];
	size_t psk_key_len;
	coap_bin_const_t psk_bin; /* psk_key, as the identity callback returns it */
};

/* A CON publish whose 2.04 waits for the broker (see the top of the file). */
struct pub_wait {
	struct gw_list link;	  /* in s->waits while the server lives */
	struct coapsrv_server *s; /* NULL once the server stopped: the callback only frees */
	coap_session_t *session;  /* referenced while we wait */
	uint8_t tok_len;
	uint8_t tok[COAPSRV_TOKEN_MAX];
	bool inside; /* the publish call has not returned yet */
	bool fired;  /* the callback ran */
	bool parked; /* coap_register_async() done: the callback triggers it */
	/* A password check of POST mqtt/connection instead of a publish. */
	bool auth;
	int verdict;		  /* brk_check_password's: 1 right, 0 wrong, -EBUSY */
	struct brk_auth_job *job; /* while the check runs */
};

#define VERDICT_NONE (-1000) /* no password check done for this request */

/* ------------------------------------------------------ coap_srv_req_uv.c */

/* libcoap's handler of every request to the server (one unknown-resource handler). */
void coapsrv__on_request(coap_resource_t *resource, coap_session_t *session,
			 const coap_pdu_t *request, const coap_string_t *query,
			 coap_pdu_t *response);
/* libcoap's NACK handler: a CON notification that failed ends its observation. */
void coapsrv__on_nack(coap_session_t *session, const coap_pdu_t *sent, coap_nack_reason_t reason,
		      const coap_mid_t mid);
/* The server's 1 s tick: heartbeat expiry, then the CON bound restarts. */
void coapsrv__on_tick(uv_timer_t *t);

#endif
