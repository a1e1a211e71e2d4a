/*
 * mqttsn_int.h - the MQTT-SN gateway state machine, sans I/O. Private to
 * adapters/mqttsn/ and its tests.
 *
 * The machine takes events - a datagram from an address, a timer tick, a
 * message the broker delivers for a client - each with the current time from
 * the caller's monotonic clock, and emits actions through the callbacks of
 * struct mqttsn_gw_ops, which the glue (mqttsn_uv.c) implements on libuv and
 * the broker's in-process API, and the tests implement with a recorder.
 *
 * It owns the clients (keyed by address, found by client id on CONNECT),
 * their topic id tables, wills, outgoing queues and retransmissions. It does
 * not know the broker's internals: a client's broker session is an opaque
 * pointer that ops->connect returns.
 *
 * Section numbers refer to the MQTT-SN Protocol Specification v1.2.
 */
#ifndef FIELDMQ_MQTTSN_INT_H
#define FIELDMQ_MQTTSN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/base/base.h"
#include "mqttsn.h"
#include "mqttsn_codec.h"

/* A UDP address as the glue stores it (a struct sockaddr, zero-padded). */
#define MQTTSN_ADDR_MAX 28
/* Longest Wireless Node Id of a forwarded client we keep (5.5). */
#define MQTTSN_NODE_ID_MAX 32
/* Longest client id accepted; the spec says 23 (5.3.1), real clients use more. */
#define MQTTSN_CLIENT_ID_MAX 64
/* QoS 2 message ids received and not yet released, per client. */
#define MQTTSN_QOS2_MAX 16

/*
 * Where a client is: the UDP source address, and when it talks through a
 * forwarder, the forwarder's Wireless Node Id (replies are encapsulated the
 * same way). Compared bytewise: the glue must zero what it does not fill.
 */
struct mqttsn_addr {
	uint8_t len;
	uint8_t data[MQTTSN_ADDR_MAX];
	bool encap;
	uint8_t ctrl;
	uint8_t node_len;
	uint8_t node[MQTTSN_NODE_ID_MAX];
};

struct mqttsn_gw_config {
	uint8_t gateway_id;
	uint32_t advertise_interval_ms; /* 0: never advertise */
	uint32_t max_clients;
	uint32_t retry_interval_ms; /* Tretry (6.13) */
	unsigned int max_retries;   /* Nretry: then the message is dropped */
	uint32_t max_queued;	    /* per client: buffered while asleep or in flight */
	uint16_t max_topics;	    /* per client: registered topic ids */
	const char *mountpoint;	    /* prefixed to every topic in the broker; NULL or "" */
	const struct mqttsn_predef *predefined;
	unsigned int n_predefined;
};

/* DESIGN.md [mqttsn] defaults: id 1, advertise 15 min, 1000 clients, retry 10 s. */
void mqttsn_gw_config_defaults(struct mqttsn_gw_config *cfg);

struct mqttsn_client;

/* What a client asks of the broker when its connection is complete. */
struct mqttsn_connect_info {
	struct gw_slice client_id;
	bool clean_session;
	uint16_t keepalive_s;
};

/*
 * What the glue implements. Every callback runs synchronously inside one of
 * the mqttsn_gw_on_* calls; slices are valid only during the callback.
 *
 * send: transmit the datagram to @to (copy it if the send is asynchronous).
 * broadcast: send an ADVERTISE / GWINFO to the multicast group; may be NULL.
 * connect: attach a broker session for @c, returned in *session; 0 or -errno
 *   (the client gets CONNACK "congestion"). Deliveries for the session must
 *   be passed to mqttsn_gw_on_deliver(gw, c, ...).
 * disconnect: detach the session; the machine publishes wills itself, so the
 *   glue detaches as on a clean DISCONNECT. After it returns, no delivery for
 *   @c may arrive.
 * subscribe / unsubscribe: a filter (mountpoint included) for the session;
 *   0 or -errno (SUBACK "not supported").
 * publish: @session NULL for a QoS -1 publish without a connection (6.8);
 *   0 or -errno (PUBACK "congestion"; -EACCES, refused by the ACL: PUBACK
 *   "not supported").
 */
struct mqttsn_gw_ops {
	void (*send)(void *arg, const struct mqttsn_addr *to, const uint8_t *buf, size_t len);
	void (*broadcast)(void *arg, const uint8_t *buf, size_t len);
	int (*connect)(void *arg, struct mqttsn_client *c, const struct mqttsn_connect_info *info,
		       void **session);
	void (*disconnect)(void *arg, struct mqttsn_client *c, void *session);
	int (*subscribe)(void *arg, void *session, struct gw_slice filter, uint8_t qos);
	int (*unsubscribe)(void *arg, void *session, struct gw_slice filter);
	int (*publish)(void *arg, void *session, struct gw_slice topic, struct gw_slice payload,
		       uint8_t qos, bool retain);
};

enum mqttsn_cstate {
	MQTTSN_CS_WILLTOPIC, /* CONNECT with Will: WILLTOPICREQ sent */
	MQTTSN_CS_WILLMSG,   /* WILLMSGREQ sent */
	MQTTSN_CS_ACTIVE,
	MQTTSN_CS_ASLEEP, /* DISCONNECT with duration: messages are buffered */
	MQTTSN_CS_AWAKE,  /* PINGREQ with client id: buffered messages going out */
	__MQTTSN_CS_MAX,
};

struct mqttsn_topic {
	uint16_t id;
	bool confirmed; /* the client knows the id (REGISTER / SUBACK / REGACK done) */
	uint16_t len;
	char *name; /* without the mountpoint, not NUL-terminated */
};

/* A message waiting to go to a client: copies of the broker's delivery. */
struct mqttsn_out {
	struct gw_list node;
	uint8_t qos;
	bool retain;
	uint16_t topic_len;
	size_t payload_len;
	uint8_t *payload; /* follows the struct, after the topic */
	char topic[];	  /* without the mountpoint */
};

enum mqttsn_inflight {
	MQTTSN_IF_NONE,
	MQTTSN_IF_REGISTER, /* REGISTER sent for the head of the queue, waiting for REGACK */
	MQTTSN_IF_PUBACK,   /* QoS 1 PUBLISH sent */
	MQTTSN_IF_PUBREC,   /* QoS 2 PUBLISH sent */
	MQTTSN_IF_PUBCOMP,  /* PUBREL sent */
};

struct mqttsn_client {
	struct gw_list all;   /* gw->clients */
	struct gw_list hnode; /* gw->buckets[hash(addr)] */
	struct mqttsn_gw *gw;
	struct mqttsn_addr addr;
	char client_id[MQTTSN_CLIENT_ID_MAX + 1];
	uint8_t id_len;
	enum mqttsn_cstate state;
	bool clean_session;
	uint16_t keepalive_s;
	uint16_t sleep_s;
	int64_t deadline_ms; /* supervision: lost when now passes it; 0 = none */
	void *session;	     /* from ops->connect; NULL until CONNACK */
	bool hold;	     /* inside a broker call: queue deliveries, send them after our reply */

	/* The will, kept here so WILLTOPICUPD / WILLMSGUPD can change it (6.3, 6.4). */
	char *will_topic; /* NULL: no will */
	uint16_t will_topic_len;
	uint8_t will_qos;
	bool will_retain;
	uint8_t *will_msg;
	size_t will_msg_len;

	struct mqttsn_topic *topics;
	uint16_t n_topics;
	uint16_t next_topic_id;
	uint16_t next_msg_id;

	/* Outgoing: one message in flight at a time, in order. */
	struct gw_list queue;
	uint32_t n_queued;
	enum mqttsn_inflight inflight;
	uint16_t if_msg_id;
	uint16_t if_topic_id;
	uint8_t if_topic_type;
	int64_t if_sent_ms;
	unsigned int if_retries;

	/* Incoming QoS 2 ids between PUBLISH and PUBREL (dedup). */
	uint16_t qos2_ids[MQTTSN_QOS2_MAX];
	unsigned int n_qos2;
};

struct mqttsn_gw {
	struct mqttsn_gw_config cfg;
	const struct mqttsn_gw_ops *ops;
	void *arg;
	struct gw_slice mountpoint;
	struct gw_list clients;
	struct gw_list *buckets;
	unsigned int n_buckets; /* a power of two */
	uint32_t n_clients;
	int64_t next_advertise_ms;
	struct mqttsn_stats stats;
	/* Encoding scratch, owned by the gateway (one loop thread). */
	uint8_t txbuf[2 * (MQTTSN_MAX_LEN + 4)];
	/* The topic of the message being published, mountpoint included. */
	char topicbuf[MQTTSN_MAX_LEN + 1];
};

/*
 * Initialise *gw with a copy of *cfg (pointers in cfg must outlive gw).
 * Returns 0, -EINVAL (max_clients 0, retry_interval 0), or -ENOMEM.
 * @now_ms starts the ADVERTISE timer (the first goes out at the first tick).
 */
int mqttsn_gw_init(struct mqttsn_gw *gw, const struct mqttsn_gw_config *cfg,
		   const struct mqttsn_gw_ops *ops, void *arg, int64_t now_ms);

/*
 * Detach every client (ops->disconnect, no wills: a gateway shutdown is not a
 * client's failure) and free everything gw holds.
 */
void mqttsn_gw_fini(struct mqttsn_gw *gw);

/*
 * A datagram of @len bytes arrived from @from (encap unset: the machine fills
 * it from a forwarder header). Malformed input is counted, never answered.
 */
void mqttsn_gw_on_datagram(struct mqttsn_gw *gw, const struct mqttsn_addr *from, const uint8_t *buf,
			   size_t len, int64_t now_ms);

/*
 * As mqttsn_gw_on_datagram(), for a datagram heard on the multicast group
 * ([mqttsn] multicast) instead of the gateway's own port: a SEARCHGW there
 * is answered with GWINFO through ops->broadcast (5.4.4) as well as to the
 * searcher. Everything else is handled alike.
 */
void mqttsn_gw_on_group_datagram(struct mqttsn_gw *gw, const struct mqttsn_addr *from,
				 const uint8_t *buf, size_t len, int64_t now_ms);

/*
 * Timers: keepalive and sleep supervision (1.5 x the duration), retransmission
 * every retry_interval, ADVERTISE every advertise_interval. Call at least
 * every mqttsn_gw_next_timeout() ms (a periodic 1 s tick is also fine).
 */
void mqttsn_gw_on_tick(struct mqttsn_gw *gw, int64_t now_ms);

/* Milliseconds from @now_ms to the earliest deadline, -1 if none. */
int64_t mqttsn_gw_next_timeout(const struct mqttsn_gw *gw, int64_t now_ms);

/*
 * The broker delivers a message for client @c (the arg the glue gave its
 * session). @topic includes the mountpoint. The message is copied: queued
 * while the client sleeps or has one in flight, dropped (and counted) past
 * max_queued. Returns 0, -ENOMEM, -ENOBUFS (queue full), -EMSGSIZE (cannot
 * fit one datagram), or -ENOENT (topic outside the mountpoint).
 */
int mqttsn_gw_on_deliver(struct mqttsn_gw *gw, struct mqttsn_client *c, struct gw_slice topic,
			 struct gw_slice payload, uint8_t qos, bool retain, int64_t now_ms);

/* The client connected with @client_id, or NULL. For tests and $SYS figures. */
struct mqttsn_client *mqttsn_gw_find_client(struct mqttsn_gw *gw, struct gw_slice client_id);

/* A client's state name ("active"), for logs. */
const char *mqttsn_cstate_name(enum mqttsn_cstate s);

#endif
