/*
 * coap_srv_int.h - the CoAP server's own logic, sans I/O. Private to
 * adapters/coap/ and its tests.
 *
 *  - coap_srv_uri.c (pure): a request's method, Uri-Path segments, Uri-Query
 *    items and Observe option in, the EMQX interface's operation out, with
 *    the CoAP response code of a refusal. No allocation, clock or I/O.
 *  - coap_srv.c (the core): clients (connection mode by client id and token,
 *    connectionless by address), their broker sessions, observations,
 *    heartbeat expiry and the per-address rate limit, driven by events that
 *    carry the caller's monotonic time. The broker and libcoap are behind
 *    struct coapsrv_ops, which coap_srv_uv.c implements and the tests fake.
 *
 * CoAP codes are written as in RFC 7252 12.1.2: class << 5 | detail.
 */
#ifndef FIELDMQ_COAP_SRV_INT_H
#define FIELDMQ_COAP_SRV_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/base/base.h"
#include "coap_srv.h"

#define COAPSRV_CODE(c, d) ((uint8_t)((c) << 5 | (d)))
#define COAPSRV_GET 1
#define COAPSRV_POST 2
#define COAPSRV_PUT 3
#define COAPSRV_DELETE 4
#define COAPSRV_CREATED COAPSRV_CODE(2, 1)
#define COAPSRV_DELETED COAPSRV_CODE(2, 2)
#define COAPSRV_CHANGED COAPSRV_CODE(2, 4)
#define COAPSRV_CONTENT COAPSRV_CODE(2, 5)
#define COAPSRV_BAD_REQUEST COAPSRV_CODE(4, 0)
#define COAPSRV_UNAUTHORIZED COAPSRV_CODE(4, 1)
#define COAPSRV_FORBIDDEN COAPSRV_CODE(4, 3)
#define COAPSRV_NOT_FOUND COAPSRV_CODE(4, 4)
#define COAPSRV_BAD_METHOD COAPSRV_CODE(4, 5)
#define COAPSRV_TOO_LARGE COAPSRV_CODE(4, 13)
#define COAPSRV_INTERNAL COAPSRV_CODE(5, 0)
#define COAPSRV_UNAVAILABLE COAPSRV_CODE(5, 3)

/* Longest client id, user name, password and token we take from a query. */
#define COAPSRV_ID_MAX 128
#define COAPSRV_CRED_MAX 256
/* Longest topic or filter, mountpoint included. */
#define COAPSRV_TOPIC_MAX 1024
/* A CoAP token is 0 to 8 bytes (RFC 7252 3). */
#define COAPSRV_TOKEN_MAX 8
/* An address as the glue stores it (a struct sockaddr, zero-padded). */
#define COAPSRV_ADDR_MAX 28

/* ------------------------------------------------------- request routing */

/* A request as libcoap parsed it; slices into its PDU. */
struct coapsrv_raw {
	uint8_t method;		     /* COAPSRV_GET .. COAPSRV_DELETE; others are 4.05 */
	int32_t observe;	     /* the Observe option's value, -1 when absent */
	const struct gw_slice *path; /* Uri-Path options, in order */
	unsigned int n_path;
	const struct gw_slice *query; /* Uri-Query options, in order */
	unsigned int n_query;
};

enum coapsrv_op {
	COAPSRV_OP_PUBLISH,
	COAPSRV_OP_SUBSCRIBE,
	COAPSRV_OP_UNSUBSCRIBE,
	COAPSRV_OP_CONNECT,
	COAPSRV_OP_HEARTBEAT,
	COAPSRV_OP_CLOSE,
	__COAPSRV_OP_MAX,
};

/* What a request asks. Slices point into the request or into the topic buffer. */
struct coapsrv_req {
	enum coapsrv_op op;
	struct gw_slice topic; /* ps/...: the segments joined with '/', no mountpoint */
	struct gw_slice clientid, username, password, token;
	bool has_clientid, has_token, has_username, has_password;
	uint8_t qos;
	bool retain;
	bool has_expiry;
	uint32_t expiry; /* seconds: the MQTT 5 message expiry of a publish */
	/* A refusal: the response code and a short reason for its payload. */
	uint8_t code;
	const char *reason;
};

/*
 * coapsrv_route - what @raw asks under the EMQX interface. The topic of a
 * ps/ request is written into @buf (@cap bytes; the segments joined, not
 * NUL-terminated) and out->topic points there. Pure.
 *
 * Returns 0 with out->op, or a negative errno with out->code and out->reason
 * set: -ENOENT (4.04: not ps/... or mqtt/connection, or an empty topic),
 * -EPERM (4.05: the method does not apply to the path; GET without Observe
 * 0 or 1), -EINVAL (4.00: a bad qos, retain or expiry value, a publish topic
 * with a wildcard, a bad filter, an over-long value), -EMSGSIZE (4.00: the
 * topic does not fit @buf).
 */
int coapsrv_route(const struct coapsrv_raw *raw, char *buf, size_t cap, struct coapsrv_req *out);

/*
 * coapsrv_parse_query - one Uri-Query item "key=value" into *out (the
 * recognised keys: clientid|c, username|u, password|p, token, qos, retain,
 * expiry; others are ignored, as EMQX does). Pure. 0, or -EINVAL with
 * out->reason set.
 */
int coapsrv_parse_query(struct gw_slice item, struct coapsrv_req *out);

/* MQTT filter @filter matches topic @topic (no $-rule: the broker applied it). Pure. */
bool coapsrv_topic_match(struct gw_slice filter, struct gw_slice topic);

/* ------------------------------------------------------------ the core */

struct coapsrv_client;
struct coapsrv_obs;

/* Where a request came from: the address, and the glue's link (a libcoap session). */
struct coapsrv_peer {
	uint8_t len;
	uint8_t addr[COAPSRV_ADDR_MAX]; /* compared bytewise: zero what is unused */
	void *link;			/* passed back in notify; the glue keeps it alive */
	const char *name;		/* "127.0.0.1:40000", for client ids and logs */
};

/* What a client asks of the broker when it is made. */
struct coapsrv_attach {
	struct gw_slice client_id;
	struct gw_slice username, password; /* empty if not given */
	bool has_username;
};

/*
 * What the glue implements. Each runs synchronously inside a coapsrv_on_*
 * call; slices are valid only during the call.
 *
 * attach: make a broker session for @c in *session: 0, -EACCES (refused:
 *   4.01), or another -errno (5.03). Deliveries for it must be passed to
 *   coapsrv_on_deliver(core, c, ...).
 * detach: end the session as on a clean DISCONNECT (no will).
 * subscribe / unsubscribe: a filter, mountpoint included; subscribe's @sub_id
 *   comes back in the deliveries. 0, -EACCES (4.03), or -errno (5.00).
 * notify: send a notification of @o (its link and token) with Observe @seq;
 *   @con: as a CON. 0, or -errno (counted as dropped).
 * forget: @o is gone (unobserved, its client closed): drop its link.
 */
struct coapsrv_ops {
	int (*attach)(void *arg, struct coapsrv_client *c, const struct coapsrv_attach *info,
		      void **session);
	void (*detach)(void *arg, struct coapsrv_client *c, void *session);
	int (*subscribe)(void *arg, void *session, struct gw_slice filter, uint8_t qos,
			 uint32_t sub_id);
	int (*unsubscribe)(void *arg, void *session, struct gw_slice filter);
	int (*notify)(void *arg, struct coapsrv_obs *o, uint32_t seq, bool con,
		      struct gw_slice payload);
	void (*forget)(void *arg, struct coapsrv_obs *o);
};

struct coapsrv_obs {
	struct gw_list node; /* client->obs */
	struct coapsrv_client *c;
	void *link;  /* the peer's link when it observed */
	bool linked; /* the glue holds a reference on link (its business) */
	uint8_t tok_len;
	uint8_t tok[COAPSRV_TOKEN_MAX];
	uint8_t addr_len;
	uint8_t addr[COAPSRV_ADDR_MAX];
	uint32_t seq;	     /* the last Observe value sent (24 bits) */
	int64_t last_con_ms; /* registered, or its last CON notification */
	uint32_t sub_id;
	uint8_t qos;
	uint16_t filter_len;
	char filter[]; /* mountpoint included */
};

struct coapsrv_client {
	struct gw_list all; /* core->clients */
	struct coapsrv_core *core;
	bool connection;  /* made by POST mqtt/connection; else keyed by address */
	uint32_t token;	  /* connection mode */
	uint8_t addr_len; /* connectionless: the address it is keyed by */
	uint8_t addr[COAPSRV_ADDR_MAX];
	char client_id[COAPSRV_ID_MAX + 1];
	int64_t last_ms; /* last request */
	void *session;	 /* from ops->attach */
	struct gw_list obs;
	uint32_t n_obs;
	uint32_t n_inflight; /* CON notifications handed to libcoap, not known done */
	uint32_t next_sub_id;
	bool holding; /* inside a subscribe: deliveries wait in core->pending */
};

/* One slot of the rate limiter: a token bucket per address hash. */
struct coapsrv_bucket {
	uint32_t hash;
	uint32_t tokens_milli;
	int64_t last_ms;
};

#define COAPSRV_BUCKETS 1024

struct coapsrv_core {
	struct coapsrv_config cfg;
	const struct coapsrv_ops *ops;
	void *arg;
	struct gw_slice mountpoint;
	struct gw_list clients;
	struct gw_list pending; /* retained messages delivered during a subscribe */
	uint32_t n_clients;
	uint32_t n_obs;
	uint32_t next_token;
	int64_t now_ms; /* the time of the latest event (deliveries carry none) */
	uint64_t rng;
	struct coapsrv_stats stats;
	struct coapsrv_bucket buckets[COAPSRV_BUCKETS];
	char topicbuf[COAPSRV_TOPIC_MAX];
	char fullbuf[COAPSRV_TOPIC_MAX];
	char textbuf[64];
};

/*
 * A response for the glue to send. code 0: a publish the glue must do
 * (pub_* are set); when the broker has accepted it the response is 2.04.
 */
struct coapsrv_resp {
	uint8_t code;
	struct gw_slice payload; /* the token, or a reason; in the core's buffers */
	bool observe;		 /* add an Observe option with value seq */
	uint32_t seq;
	struct coapsrv_obs *obs; /* the observation registered (its link to keep) */
	/* code 0: publish as client @pub_client. */
	struct coapsrv_client *pub_client;
	struct gw_slice pub_topic; /* mountpoint included */
	uint8_t pub_qos;
	bool pub_retain;
	bool has_expiry;
	uint32_t expiry;
};

/*
 * Initialise @core with a copy of @cfg (its strings must outlive it).
 * @seed makes the connection tokens unpredictable (the glue gives random
 * bytes). 0, or -EINVAL (max_clients 0).
 */
int coapsrv_core_init(struct coapsrv_core *core, const struct coapsrv_config *cfg,
		      const struct coapsrv_ops *ops, void *arg, uint64_t seed);
/* Detach every client (no wills) and free what the core holds. */
void coapsrv_core_fini(struct coapsrv_core *core);

/*
 * coapsrv_on_request - a request from @peer, @raw as parsed, @payload its
 * body (block-wise bodies reassembled), @tok its CoAP token. Fills *resp.
 * Returns false when the request is dropped unanswered (over the rate
 * limit): the glue sends nothing, not even a response code.
 */
bool coapsrv_on_request(struct coapsrv_core *core, const struct coapsrv_peer *peer,
			const struct coapsrv_raw *raw, struct gw_slice tok, struct gw_slice payload,
			int64_t now_ms, struct coapsrv_resp *resp);

/*
 * coapsrv_on_deliver - the broker delivers a message for client @c
 * (sub_ids as the broker gives them; none: matched by filter). Each
 * observation it concerns gets a notification through ops->notify, as a
 * CON per notify_type, unless @c has max_queued CONs outstanding (dropped,
 * counted). A NON notification goes as a CON when the observation had none
 * for heartbeat (RFC 7641 4.5: is the observer still there?).
 */
void coapsrv_on_deliver(struct coapsrv_core *core, struct coapsrv_client *c, struct gw_slice topic,
			struct gw_slice payload, uint8_t qos, const uint32_t *sub_ids,
			unsigned int n_sub_ids);

/*
 * A notification was refused by the peer (RST) or never acknowledged: the
 * observation with token @tok of the client at @addr ends (RFC 7641 3.6,
 * 4.5). @con_failed: it was a CON (its in-flight count drops).
 */
void coapsrv_on_reset(struct coapsrv_core *core, const uint8_t *addr, uint8_t addr_len,
		      struct gw_slice tok, bool con_failed);

/* libcoap holds no unacknowledged message any more: every in-flight count is 0. */
void coapsrv_on_idle(struct coapsrv_core *core);

/* Expire clients idle past heartbeat. Call every second or so. */
void coapsrv_on_tick(struct coapsrv_core *core, int64_t now_ms);

/*
 * Notifications wait (retained messages delivered while a GET Observe:0 was
 * handled, so they follow its response): the glue calls coapsrv_flush()
 * once the response went out.
 */
bool coapsrv_has_pending(const struct coapsrv_core *core);
void coapsrv_flush(struct coapsrv_core *core);

/* The figures, clients and observations counted now. */
void coapsrv_core_stats(const struct coapsrv_core *core, struct coapsrv_stats *out);

/*
 * coapsrv_drop_client - end @c (its broker session was taken over by
 * another client with its id: every broker call returns -ENOTCONN). Its
 * observations end; its next request makes a new session (connectionless)
 * or needs a new connection.
 */
void coapsrv_drop_client(struct coapsrv_core *core, struct coapsrv_client *c);

/* For tests: the client with @client_id, or NULL. */
struct coapsrv_client *coapsrv_find_client(struct coapsrv_core *core, struct gw_slice client_id);

/*
 * Calls @fn(@arg, entry, length) on each comma-separated entry of [coap]
 * listen @list (NULL: none), spaces around it trimmed, empty entries
 * skipped; stops at the first error @fn returns and returns it. More than
 * COAPSRV_MAX_LISTEN entries: -EINVAL (the entries past the bound are not
 * passed). Pure (coap_srv_uri.c): the glue parses each entry.
 */
int coapsrv_each_listen(const char *list, int (*fn)(void *arg, const char *e, size_t n), void *arg);

#endif
