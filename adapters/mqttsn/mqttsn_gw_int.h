/*
 * mqttsn_gw_int.h - cross-file internals of the MQTT-SN gateway state
 * machine: what mqttsn_gw.c (incoming, timers, lifecycle), mqttsn_client.c
 * (clients and their tables) and mqttsn_out.c (sending, the outgoing queue)
 * call of each other. Included by those three files only; the glue and the
 * tests use mqttsn_int.h.
 *
 * All of it runs on the loop thread inside one of the mqttsn_gw_on_* calls,
 * sans I/O like the rest of the machine.
 */
#ifndef FIELDMQ_MQTTSN_GW_INT_H
#define FIELDMQ_MQTTSN_GW_INT_H

#include "mqttsn_int.h"

/* ------------------------------------------------ mqttsn_client.c: names */

/* The predefined topic of @id / named @name ([mqttsn.predefined]), or NULL. */
const struct mqttsn_predef *mqttsn__predef_by_id(const struct mqttsn_gw *gw, uint16_t id);
const struct mqttsn_predef *mqttsn__predef_by_name(const struct mqttsn_gw *gw,
						   struct gw_slice name);
/*
 * @name with the mountpoint in front, in gw->topicbuf (valid until the next
 * call); 0 or -EMSGSIZE if too long.
 */
int mqttsn__mount(struct mqttsn_gw *gw, struct gw_slice name, struct gw_slice *out);

/* ---------------------------------------------- mqttsn_client.c: clients */

/* Bytewise, as struct mqttsn_addr asks. */
bool mqttsn__addr_eq(const struct mqttsn_addr *a, const struct mqttsn_addr *b);
/* The client at address @a, or NULL. */
struct mqttsn_client *mqttsn__find_by_addr(struct mqttsn_gw *gw, const struct mqttsn_addr *a);
/* Moves @c to address @a (rehashed). */
void mqttsn__set_addr(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_addr *a);
/* A new client at @a, in the tables (CONNECT sets the rest); NULL out of memory. */
struct mqttsn_client *mqttsn__client_new(struct mqttsn_gw *gw, const struct mqttsn_addr *a);
/* Detaches @c's broker session (ops->disconnect) if it has one. */
void mqttsn__detach(struct mqttsn_gw *gw, struct mqttsn_client *c);
/* Detaches and frees @c with everything it holds; no will. */
void mqttsn__client_free(struct mqttsn_gw *gw, struct mqttsn_client *c);
/* Keepalive or sleep expired, or the address went to someone else: the will goes out, @c is freed. */
void mqttsn__client_lost(struct mqttsn_gw *gw, struct mqttsn_client *c);
void mqttsn__free_will(struct mqttsn_client *c);
/* Empties @c's outgoing queue; nothing in flight after it. */
void mqttsn__free_queue(struct mqttsn_client *c);
/* The next message id of @c, never 0. */
uint16_t mqttsn__next_msg_id(struct mqttsn_client *c);
/* WILLTOPIC(UPD) / WILLMSG(UPD) into @c's will; 0 or -ENOMEM (the old one kept). */
int mqttsn__set_will_topic(struct mqttsn_client *c, const struct mqttsn_msg *m);
int mqttsn__set_will_msg(struct mqttsn_client *c, const struct mqttsn_msg *m);
/* Incoming QoS 2 message ids between PUBLISH and PUBREL (dedup). */
bool mqttsn__qos2_seen(struct mqttsn_client *c, uint16_t id);
void mqttsn__qos2_add(struct mqttsn_client *c, uint16_t id);
void mqttsn__qos2_del(struct mqttsn_client *c, uint16_t id);

/* ------------------------------------------ mqttsn_client.c: topic table */

struct mqttsn_topic *mqttsn__topic_by_id(struct mqttsn_client *c, uint16_t id);
/* The entry for @name, added (unconfirmed) if new; NULL when full or out of memory. */
struct mqttsn_topic *mqttsn__topic_get(struct mqttsn_gw *gw, struct mqttsn_client *c,
				       struct gw_slice name);
/* After a restart of the client: every id must be registered again. */
void mqttsn__unconfirm_topics(struct mqttsn_client *c);
void mqttsn__free_topics(struct mqttsn_client *c);
/*
 * The broker topic a PUBLISH names, without the mountpoint, in *name; false if
 * unknown. @c may be NULL (QoS -1: no normal ids). A short name is written to
 * @short_name, which *name then points to.
 */
bool mqttsn__resolve_topic(struct mqttsn_gw *gw, struct mqttsn_client *c, uint8_t type, uint16_t id,
			   uint8_t short_name[2], struct gw_slice *name);

/* -------------------------------------------------------- mqttsn_out.c */

/* Encodes @m into gw->txbuf and sends it to @to (NULL: ops->broadcast); counts a failure. */
void mqttsn__send_msg(struct mqttsn_gw *gw, const struct mqttsn_addr *to, struct mqttsn_msg *m);
void mqttsn__send_simple(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type);
void mqttsn__send_resp(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type,
		       uint8_t rc);
void mqttsn__send_ack(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type,
		      uint16_t topic_id, uint16_t msg_id, uint8_t rc);
void mqttsn__send_msgid(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type,
			uint16_t msg_id);
/* Drops the head of @c's queue; nothing in flight after it. */
void mqttsn__drop_head(struct mqttsn_client *c);
/* May messages go to @c now (attached, not held, active or awake)? */
bool mqttsn__can_send(const struct mqttsn_client *c);
/* Sends what can go from @c's queue (see mqttsn_out.c). */
void mqttsn__pump(struct mqttsn_gw *gw, struct mqttsn_client *c, int64_t now_ms);
/* Retransmits what is in flight for @c, or gives it up after max_retries (6.13). */
void mqttsn__retry(struct mqttsn_gw *gw, struct mqttsn_client *c, int64_t now_ms);

#endif
