/*
 * broker.h - the embedded MQTT 3.1.1 / 5.0 broker: its configuration, its
 * lifecycle on a libuv loop, and the in-process API the gateway, the adapters,
 * the MQTT-SN gateway and the uplink use to publish and subscribe with the same
 * semantics as a network client, without serialising to bytes.
 *
 * Everything here runs on the loop thread only.
 */
#ifndef FIELDMQ_BROKER_H
#define FIELDMQ_BROKER_H

#include <sys/socket.h>

#include "gateway/base/base.h"

/* libuv's loop, by its struct name: the core holds a pointer for the glue
 * and never includes <uv.h> (DESIGN.md section 2). */
struct uv_loop_s;

struct brk;
struct brk_client;
struct brk_hold;
struct brk_acl;
struct brk_passwd;

/* ------------------------------------------------------------ configuration */

#define BRK_MAX_LISTENERS 8

/* What a listener speaks: MQTT over TCP, TLS, WebSocket, WebSocket over TLS. */
enum brk_transport {
	BRK_TR_MQTT,
	BRK_TR_MQTTS,
	BRK_TR_WS,
	BRK_TR_WSS,
	__BRK_TR_MAX,
};

/* TLS settings of a listener (DESIGN.md 4): paths, read when the broker is created. */
struct brk_tls_cfg {
	char *cert_file, *key_file; /* both needed by mqtts:// and wss:// */
	char *ca_file;		    /* client certificates are verified against it */
	bool require_certificate;
	bool use_identity_as_username; /* the client certificate's CN is the user name */
};

/*
 * One listener: a "listen" entry of [broker] (with [broker]'s TLS keys) or
 * a [listener:NAME] section (with its own).
 */
struct brk_listener_cfg {
	char *url;  /* HOST:PORT (mqtt://) or an mqtt:// mqtts:// ws:// wss:// URL */
	char *name; /* the NAME of [listener:NAME]; NULL for a [broker] listen entry */
	struct brk_tls_cfg tls;
	char *ws_path; /* ws:// and wss://: the HTTP path of the upgrade; NULL: /mqtt */
	/*
	 * Mosquitto's max_connections: connections open on this listener at a
	 * time (CONNECTed or not); one more is closed at accept. 0 or
	 * 0xFFFFFFFF (-1 in the file): no limit.
	 */
	uint32_t max_connections;
	/*
	 * Every connection starts with a PROXY protocol header (v1 or v2, from
	 * HAProxy, nginx...): the source address it names is the client's for
	 * the per-source limits and the logs. A connection without one is closed.
	 */
	bool proxy_protocol;
};

/*
 * brk_listen_parse - split a listener URL: "HOST:PORT", "[V6]:PORT", or
 * "mqtt://", "mqtts://", "ws://", "wss://" (and "tcp://", as mqtt://)
 * followed by one of those; an empty HOST is 0.0.0.0. A URL path after the
 * port (ws://host:port/path) is refused: the path is ws_path's. Pure. 0, or
 * -EINVAL (unknown scheme, bad host or port).
 */
int brk_listen_parse(const char *url, enum brk_transport *kind, struct sockaddr_storage *addr);

struct brk_config {
	struct brk_listener_cfg listen[BRK_MAX_LISTENERS];
	unsigned int n_listen;
	/*
	 * [broker]'s TLS and WebSocket keys: the config loader copies them into
	 * each listener made by [broker] listen (the broker reads only listen[]).
	 */
	struct brk_tls_cfg tls;
	char *ws_path;
	bool proxy_protocol;
	bool allow_anonymous;
	uint32_t max_connections; /* copied into each [broker] listen entry too */
	/* Per source address (the PROXY header's where a listener has one); 0: no limit. */
	uint32_t max_connections_per_source;
	uint32_t connect_rate; /* new connections a second, in bursts of as many */
	/*
	 * A slow consumer: output buffered for one connection (not yet taken by
	 * the socket) past max_buffered_bytes makes QoS 0 messages to it
	 * dropped (counted); still past it slow_consumer_timeout_ms later, the
	 * connection is closed. 0: no limit.
	 */
	uint64_t max_buffered_bytes;
	uint64_t slow_consumer_timeout_ms;
	uint32_t max_packet_size;
	uint16_t max_inflight;	  /* outgoing: QoS 1/2 messages in flight to each client */
	uint16_t receive_maximum; /* incoming, 5.0: announced; exceeding it is DISCONNECT 0x93 */
	uint32_t max_held_acks;	  /* a connection owed this many PUBACK/PUBREC is not read */
	uint32_t max_queued_messages;
	uint64_t max_queued_bytes;
	uint16_t max_keepalive;
	uint16_t max_topic_alias;
	bool retain_available;
	uint64_t sys_interval_ms;
	bool persist;
	/*
	 * Topic access control for network clients (brk_acl_parse), or NULL:
	 * every client may publish and subscribe to anything. Not owned by the
	 * broker (not copied either): it must outlive the broker.
	 */
	struct brk_acl *acl;
	/*
	 * password_file (brk_passwd_parse), or NULL: a user name is taken as
	 * given. With one, a client that gives a user name must give the
	 * password of that user in the file (checked off the loop thread);
	 * one that gives none is let in only with allow_anonymous. A client
	 * certificate's identity (use_identity_as_username) needs no
	 * password. Not owned, as acl; replace it with brk_set_passwd().
	 */
	struct brk_passwd *passwd;
};

/* DESIGN.md defaults; listen = 127.0.0.1:1883 (a static string: not freed). */
void brk_config_defaults(struct brk_config *cfg);

/* --------------------------------------------------------- access control */

/* Longest line of an acl file, in bytes (without its newline). */
#define BRK_ACL_MAX_LINE 1024

/*
 * brk_acl_parse - parse the text of an acl_file, a subset of Mosquitto's
 * syntax (mosquitto.conf(5)), one rule per line:
 *
 *   # comment                         (and blank lines)
 *   topic [read|write|readwrite|deny] FILTER
 *   user USERNAME
 *   pattern [read|write|readwrite|deny] FILTER
 *
 * No access word means readwrite. topic lines before any user line apply to
 * every client (anonymous ones too); after "user NAME", to clients connected
 * with that user name only. pattern lines apply to every client, with %c
 * replaced by its client id and %u by its user name (a pattern with %u does
 * not apply to a client without one). What no rule grants is refused; a deny
 * rule wins over any grant.
 *
 * Pure: @text (@len bytes, not necessarily NUL-terminated) is copied; no
 * file I/O. Returns 0 and *out (free with brk_acl_free), or -EINVAL with the
 * 1-based number of the bad line in *line and a message in @err (truncated
 * to @errlen, without the file name), or -ENOMEM.
 */
int brk_acl_parse(const char *text, size_t len, struct brk_acl **out, unsigned int *line, char *err,
		  size_t errlen);
/* NULL is a no-op. */
void brk_acl_free(struct brk_acl *acl);

/* -------------------------------------------------------------- passwords */

/*
 * brk_passwd_parse - parse the text of a Mosquitto password_file: one
 * USER:HASH per line as mosquitto_passwd writes them ($7$ PBKDF2-SHA512,
 * the default; $6$ salted SHA-512, -H sha512); '#' comments and blank lines
 * are skipped. Plain-text passwords are refused (mosquitto_passwd -U
 * converts them). Pure: @text (@len bytes) is copied; no file I/O. Returns
 * 0 and *out (free with brk_passwd_free), or -EINVAL with the 1-based
 * number of the bad line in *line and a message in @err, or -ENOMEM.
 */
int brk_passwd_parse(const char *text, size_t len, struct brk_passwd **out, unsigned int *line,
		     char *err, size_t errlen);
/* NULL is a no-op. */
void brk_passwd_free(struct brk_passwd *pw);
/* Users in @pw (0 for NULL). */
unsigned int brk_passwd_count(const struct brk_passwd *pw);

/*
 * brk_passwd_check - does @user / @pass (NUL-terminated) match an entry of
 * @pw? An unknown user costs what a known one costs (a dummy check). Slow on
 * purpose ($7$ PBKDF2): call it on the thread pool, never on the loop
 * thread; thread-safe while @pw lives. For listeners outside the broker (the
 * gateway's HTTP Basic authentication). 0 when it matches, else -EACCES.
 */
int brk_passwd_check(const struct brk_passwd *pw, const char *user, const char *pass);

/* --------------------------------------------------------------- messages */

/*
 * MQTT 5 message properties passed through the broker. Slices point into
 * memory owned by the caller and are valid for the duration of the call
 * (the broker copies what it keeps). user_props is the raw MQTT 5 encoding
 * of the user property pairs (each 0x26, key, value), possibly empty.
 */
struct brk_msg_props {
	bool has_payload_format;
	uint8_t payload_format;
	bool has_expiry;
	uint32_t expiry; /* seconds */
	struct gw_slice content_type;
	struct gw_slice response_topic;
	struct gw_slice correlation_data;
	struct gw_slice user_props;
};

/* A message to publish. The broker copies what it keeps. */
struct brk_pub {
	struct gw_slice topic;
	struct gw_slice payload;
	uint8_t qos;
	bool retain;
	const struct brk_msg_props *props; /* NULL: none */
};

/*
 * A message handed to an in-process client. Valid only during the callback.
 * retain follows the subscription's retain-as-published option; qos is
 * already downgraded to the subscription's maximum.
 */
struct brk_delivery {
	struct gw_slice topic;
	struct gw_slice payload;
	uint8_t qos;
	bool retain;
	const struct brk_msg_props *props;
	const uint32_t *sub_ids;
	unsigned int n_sub_ids;
	/* Set by the broker when the publisher waits for our acknowledgement. */
	struct brk_hold *hold;
};

/*
 * Delivery callback of an in-process client. To defer the publisher's
 * PUBACK / PUBREC (the uplink does, until the store has committed), call
 * brk_hold_take(d) inside the callback and brk_hold_release() later.
 */
typedef void (*brk_deliver_fn)(void *arg, const struct brk_delivery *d);
/*
 * Inside the callback a client may publish (the broker routes re-entrantly),
 * subscribe and take holds; it must not brk_client_free() another client
 * that may be on the same delivery list (defer that to the next tick).
 */

/* --------------------------------------------------------------- lifecycle */

/*
 * brk_new - create a broker on @loop with a copy of @cfg. @lg may be NULL.
 * Returns 0 and *out, or -ENOMEM / -EINVAL (a bad listen address).
 */
int brk_new(struct uv_loop_s *loop, const struct brk_config *cfg, const struct gw_logger *lg,
	    struct brk **out);

/* brk_start - bind every listener. -EADDRINUSE etc. from libuv on failure. */
int brk_start(struct brk *b);

/*
 * brk_stop - close listeners and every connection (wills of network clients
 * are published as on an abnormal close only if the spec says so: a server
 * shutdown is not a client's DISCONNECT). Handles close asynchronously: run
 * the loop until it has no more active handles, then brk_free().
 */
void brk_stop(struct brk *b);
void brk_free(struct brk *b);

/* ------------------------------------------------------ in-process clients */

#define BRK_SUB_NO_LOCAL 0x04
#define BRK_SUB_RAP 0x08   /* retain as published */
#define BRK_SUB_RH_SHIFT 4 /* retain handling 0/1/2 in bits 4-5 */

struct brk_client_opts {
	const char *client_id; /* NULL or "": the broker assigns one */
	bool clean_start;
	uint32_t session_expiry;    /* seconds; 0xFFFFFFFF = never */
	const struct brk_pub *will; /* NULL: none */
	uint32_t will_delay;
	brk_deliver_fn deliver;
	void *arg;
	/*
	 * acl: the client is a remote device's session (an MQTT-SN or CoAP
	 * client) and is subject to the ACL as a network client is: its client
	 * id and @username (NULL: none) choose its rules, %c / %u patterns
	 * included; a PUBLISH or subscription it may not make returns -EACCES
	 * (counted in acl_denied), a will it may not publish is dropped, and
	 * it is not sent what it may not read. false: trusted (the gateway's
	 * own adapters, the uplink). Without an ACL (no acl_file) it changes
	 * nothing.
	 */
	bool acl;
	const char *username;
};

/*
 * brk_client_new - attach an in-process client, taking over a session of the
 * same id as a network CONNECT would (an existing connection is closed).
 * *session_present tells whether a stored session was resumed (may be NULL).
 * Returns 0, -ENOMEM, -EINVAL (bad id).
 */
int brk_client_new(struct brk *b, const struct brk_client_opts *opts, struct brk_client **out,
		   bool *session_present);

/*
 * The client id of @c's session (the assigned one if opts.client_id was
 * empty), owned by the broker. NULL once another client took the session over
 * (every call on @c then returns -ENOTCONN; brk_client_free() is still needed).
 */
const char *brk_client_id(const struct brk_client *c);

/*
 * 0, or -EINVAL for an invalid filter, -EACCES (a client made with opts.acl
 * whose rules do not let it read what @filter covers). Retained messages are
 * delivered per rh.
 */
int brk_client_subscribe(struct brk_client *c, struct gw_slice filter, uint8_t qos,
			 unsigned int flags, uint32_t sub_id);
int brk_client_unsubscribe(struct brk_client *c, struct gw_slice filter);

/*
 * Publish as this client (no-local subscriptions of this client are
 * skipped). 0, or -ENOTCONN, -EINVAL (bad topic or QoS), -ENOMEM, -EACCES (a
 * client made with opts.acl whose rules do not let it write @pub->topic).
 */
int brk_client_publish(struct brk_client *c, const struct brk_pub *pub);

/*
 * brk_client_publish_acked - publish as brk_client_publish() does, and learn
 * when every hold on the message is released: the moment a network
 * publisher would get its PUBACK / PUBREC (e.g. once the uplink's store has
 * committed it). @acked(@arg, 0) is called exactly once: synchronously,
 * before this returns, when nothing took a hold (QoS 0, no in-process
 * subscriber holding it), else from the last brk_hold_release(), possibly
 * after @c is freed or the broker is gone (the status is 0 in every case
 * today; a negative errno is reserved for a message the holders lost). The
 * callback may publish and take holds; it must not free another client.
 * Returns 0, or -ENOTCONN, -EINVAL (bad topic or QoS, NULL @acked), -ENOMEM,
 * -EACCES (as brk_client_publish): then @acked is never called.
 */
int brk_client_publish_acked(struct brk_client *c, const struct brk_pub *pub,
			     void (*acked)(void *arg, int status), void *arg);

/*
 * brk_client_free - detach. @publish_will: true as on an abnormal loss (the will
 * goes out, after its delay), false as on a DISCONNECT. A session with an
 * expiry stays in the broker and queues messages until it expires.
 */
void brk_client_free(struct brk_client *c, bool publish_will);

/* Publish without a client (retained status topics, $SYS). Trusted. */
int brk_publish(struct brk *b, const struct brk_pub *pub);

/*
 * brk_publish_anon - publish for a remote sender that has no session (an
 * MQTT-SN QoS -1 PUBLISH): subject to the ACL as a client without a client
 * id or user name, so only the topic rules before any "user" line apply (no
 * pattern does). 0, -EINVAL, -ENOMEM, or -EACCES (counted in acl_denied).
 */
int brk_publish_anon(struct brk *b, const struct brk_pub *pub);

/*
 * brk_set_acl - use @acl (NULL: none) from now on, e.g. after acl_file was
 * read again on SIGHUP. Every client subject to the ACL gets its rules
 * rebuilt from @acl at once, so a revoked right ends now, not at the next
 * connection; what sessions have queued and may no longer read is dropped.
 * The broker does not own @acl; on success the previous one is no longer
 * referenced when this returns (free it then). 0, or -ENOMEM: nothing
 * changed (the previous ACL is still in use). A client that connected while
 * there was no ACL stays unchecked until it connects again.
 */
int brk_set_acl(struct brk *b, struct brk_acl *acl);

/*
 * brk_set_passwd - check passwords against @pw (NULL: none) from now on,
 * e.g. after password_file was read again on SIGHUP. Connected clients stay;
 * checks already started finish against the entry they copied. The previous
 * file is no longer referenced when this returns (free it then).
 */
void brk_set_passwd(struct brk *b, struct brk_passwd *pw);

struct brk_auth_job;

/*
 * brk_check_password - check @user / @password (@pw_len bytes) against the
 * password_file as a CONNECT is checked, for a front end whose clients log
 * in another way (the CoAP server's mqtt/connection): off the loop thread,
 * in the same bounded queue as MQTT CONNECTs. @done(@arg, verdict) runs
 * later on the loop thread (inside this call only if the thread pool
 * refused the work, or the broker has none: sans-I/O tests): 1 the password is
 * right, 0 it is wrong (or the user unknown), -EBUSY too many checks were
 * waiting. Without a password_file every user name is taken as given:
 * @done gets 1. Returns 0 and *job (for brk_check_cancel; it is gone once
 * @done ran), or -ENOMEM, -EBUSY (then @done is never called).
 */
int brk_check_password(struct brk *b, const char *user, const void *password, size_t pw_len,
		       void (*done)(void *arg, int verdict), void *arg, struct brk_auth_job **job);
/*
 * The client went away: @done of @job will not be called. Checks still
 * pending when the broker is freed are dropped without calling @done.
 */
void brk_check_cancel(struct brk_auth_job *job);

/* See brk_deliver_fn. The hold is released exactly once. */
struct brk_hold *brk_hold_take(const struct brk_delivery *d);
void brk_hold_release(struct brk_hold *h);

/* ------------------------------------------------------------- persistence */

/* Where a stored message stands in its exchange with the client [MQTT-4.4]. */
enum brk_msg_state {
	BRK_MSG_QUEUED,	   /* not sent, or its sending not saved: sent as new */
	BRK_MSG_PUBLISHED, /* sent with a pid, no PUBACK / PUBREC yet */
	BRK_MSG_RELEASED,  /* QoS 2 with its PUBREC: only the pid is left, PUBREL owed */
};

/*
 * Hooks the gateway installs (gateway/persist.c, wired in gateway.c) so retained messages and persistent sessions survive
 * a restart (the broker does not include store/). Each is called on the loop
 * thread and must not block; blobs are broker-defined and opaque to the store.
 */
struct brk_persist_ops {
	/* A retained message was set (payload non-empty) or cleared (empty). */
	void (*retained_set)(void *arg, const struct brk_pub *pub);
	/* A persistent session's state changed: subscriptions, expiry. */
	void (*session_save)(void *arg, const char *client_id, const void *blob, size_t len);
	void (*session_delete)(void *arg, const char *client_id);
	/*
	 * A QoS >= 1 message was queued for a persistent session, online or
	 * offline (so a crash before the client acknowledges it loses nothing),
	 * and session_msg_del when the client acknowledged it (PUBACK, or
	 * PUBCOMP for QoS 2), it expired or was dropped. An add with a seq
	 * already stored replaces it (an expiring message is saved again at
	 * shutdown). pub->props->expiry is what is left of the expiry when
	 * saved, so a restore does not restart it (the time the daemon was down
	 * is not counted). QoS 0 is never queued for an offline session.
	 *
	 * @state and @pid say where the message stands in its exchange with
	 * the client [MQTT-4.4.0-1]: BRK_MSG_QUEUED (pid 0) as it is queued;
	 * BRK_MSG_RELEASED when a QoS 2 message got its PUBREC: the record
	 * is replaced (same seq) by a marker that keeps only the pid (@pub
	 * has an empty topic and payload), deleted at PUBCOMP;
	 * BRK_MSG_PUBLISHED for a message sent and not acknowledged, saved
	 * again when the session goes offline and at shutdown only (not at
	 * each send: that would cost a write per message), so after a kill -9
	 * with the client online such a message comes back as QUEUED and is
	 * sent again with a new packet id.
	 */
	void (*session_msg_add)(void *arg, const char *client_id, uint64_t seq,
				const struct brk_pub *pub, uint16_t pid, uint8_t state);
	void (*session_msg_del)(void *arg, const char *client_id, uint64_t seq);
};

void brk_set_persist(struct brk *b, const struct brk_persist_ops *ops, void *arg);
/* Called at start-up, before brk_start(), with what the store kept. */
int brk_restore_retained(struct brk *b, const struct brk_pub *pub);
int brk_restore_session(struct brk *b, const char *client_id, const void *blob, size_t len);
/*
 * brk_restore_session_msg - put back message @seq of session @client_id
 * (restored first) as session_msg_add saw it. BRK_MSG_PUBLISHED and
 * BRK_MSG_RELEASED go back in flight with @pid (call in seq order): on
 * resume the PUBLISH is sent again with DUP=1 and that pid, or the PUBREL
 * for it; a RELEASED marker needs no topic (@pub's topic and payload are
 * ignored). 0, or -ENOENT (no such session), -EINVAL (bad topic, QoS, state
 * or pid, or a pid already in flight), -ENOMEM.
 */
int brk_restore_session_msg(struct brk *b, const char *client_id, uint64_t seq,
			    const struct brk_pub *pub, uint16_t pid, uint8_t state);

/* ------------------------------------------------------------------ figures */

struct brk_stats {
	uint64_t clients_connected;
	uint64_t clients_total;
	uint64_t msgs_received, msgs_sent, bytes_received, bytes_sent;
	uint64_t subscriptions, retained;
	uint64_t malformed, protocol_errors, dropped;
	/* Refused by the ACL: PUBLISHes, subscriptions and wills. */
	uint64_t acl_denied;
	/* Times a connection was not read because it was owed max_held_acks acks. */
	uint64_t read_pauses;
	/* Transports: TLS handshakes that failed, WebSocket upgrades refused. */
	uint64_t tls_failed, ws_refused;
	/* Connections refused at accept: a listener's max_connections, per source, rate. */
	uint64_t refused_max_connections, refused_per_source, refused_rate;
	/* Slow consumers: QoS 0 messages dropped, connections closed. */
	uint64_t slow_dropped, slow_disconnected;
	/* Connections closed for a missing or malformed PROXY header. */
	uint64_t proxy_bad;
	/* password_file: CONNECTs refused for a wrong password, or for too many checks waiting. */
	uint64_t auth_failed, auth_busy;
};

void brk_get_stats(const struct brk *b, struct brk_stats *out);

#endif
