/*
 * mqttsn_out.c - what the MQTT-SN gateway state machine sends: encoding a
 * message to a client (through its forwarder) or the group, and a client's
 * outgoing queue (messages the broker delivers, one QoS >= 1 PUBLISH or
 * REGISTER in flight, retransmission).
 *
 * Part of the sans-I/O machine (mqttsn_gw.c; internals in mqttsn_gw_int.h).
 * Section numbers refer to the MQTT-SN Protocol Specification v1.2.
 */
#include <errno.h>
#include <string.h>

#include "mqttsn_gw_int.h"

/* ------------------------------------------------------------- sending */

void mqttsn__send_msg(struct mqttsn_gw *gw, const struct mqttsn_addr *to, struct mqttsn_msg *m)
{
	struct gw_writer w;
	int n;

	if (to && to->encap) {
		/* Answer through the forwarder the client came through (5.5). */
		m->encapsulated = true;
		m->encap.ctrl = to->ctrl;
		m->encap.node_id = (struct gw_slice){ to->node, to->node_len };
	}
	gw_writer_init(&w, gw->txbuf, sizeof(gw->txbuf));
	n = mqttsn_encode(&w, m);
	if (n <= 0) {
		gw->stats.dropped_out++;
		return;
	}
	gw->stats.datagrams_out++;
	if (to)
		gw->ops->send(gw->arg, to, gw->txbuf, (size_t)n);
	else if (gw->ops->broadcast)
		gw->ops->broadcast(gw->arg, gw->txbuf, (size_t)n);
}

void mqttsn__send_simple(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type)
{
	struct mqttsn_msg m = { .type = type };

	mqttsn__send_msg(gw, to, &m);
}

void mqttsn__send_resp(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type, uint8_t rc)
{
	struct mqttsn_msg m = { .type = type, .resp = { rc } };

	mqttsn__send_msg(gw, to, &m);
}

void mqttsn__send_ack(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type,
		      uint16_t topic_id, uint16_t msg_id, uint8_t rc)
{
	struct mqttsn_msg m = { .type = type, .ack = { topic_id, msg_id, rc } };

	mqttsn__send_msg(gw, to, &m);
}

void mqttsn__send_msgid(struct mqttsn_gw *gw, const struct mqttsn_addr *to, uint8_t type,
			uint16_t msg_id)
{
	struct mqttsn_msg m = { .type = type, .msgid = { msg_id } };

	mqttsn__send_msg(gw, to, &m);
}

/* ------------------------------------------------------ outgoing queue */

static struct mqttsn_out *queue_head(struct mqttsn_client *c)
{
	return gw_list_empty(&c->queue) ? NULL : gw_list_first(&c->queue, struct mqttsn_out, node);
}

void mqttsn__drop_head(struct mqttsn_client *c)
{
	struct mqttsn_out *o = queue_head(c);

	c->inflight = MQTTSN_IF_NONE;
	if (!o)
		return;
	gw_list_del(&o->node);
	c->n_queued--;
	gw_free(o);
}

bool mqttsn__can_send(const struct mqttsn_client *c)
{
	return c->session && !c->hold &&
	       (c->state == MQTTSN_CS_ACTIVE || c->state == MQTTSN_CS_AWAKE);
}

static void send_publish(struct mqttsn_gw *gw, struct mqttsn_client *c, struct mqttsn_out *o,
			 bool dup)
{
	struct mqttsn_msg m = {
		.type = MQTTSN_PUBLISH,
		.flags = { .dup = dup,
			   .qos = (int8_t)o->qos,
			   .retain = o->retain,
			   .topic_type = c->if_topic_type },
		.publish = { c->if_topic_id, c->if_msg_id, { o->payload, o->payload_len } },
	};

	mqttsn__send_msg(gw, &c->addr, &m);
}

static void send_register(struct mqttsn_gw *gw, struct mqttsn_client *c)
{
	struct mqttsn_topic *t = mqttsn__topic_by_id(c, c->if_topic_id);
	struct mqttsn_msg m = { .type = MQTTSN_REGISTER };

	if (!t)
		return;
	m.reg.topic_id = t->id;
	m.reg.msg_id = c->if_msg_id;
	m.reg.topic = (struct gw_slice){ (uint8_t *)t->name, t->len };
	mqttsn__send_msg(gw, &c->addr, &m);
}

/*
 * Sends what can go: messages in order, one QoS >= 1 PUBLISH or REGISTER in
 * flight at a time. A topic the client does not know yet is registered first
 * (6.10). An awake client gets PINGRESP once nothing is left, and sleeps again
 * (6.14).
 */
void mqttsn__pump(struct mqttsn_gw *gw, struct mqttsn_client *c, int64_t now_ms)
{
	struct mqttsn_out *o;

	if (!mqttsn__can_send(c))
		return;
	while (c->inflight == MQTTSN_IF_NONE && (o = queue_head(c))) {
		struct gw_slice name = { (uint8_t *)o->topic, o->topic_len };
		const struct mqttsn_predef *pd = mqttsn__predef_by_name(gw, name);
		struct mqttsn_topic *t;

		if (pd) {
			c->if_topic_type = MQTTSN_TOPIC_PREDEFINED;
			c->if_topic_id = pd->id;
		} else if (name.len == 2) {
			c->if_topic_type = MQTTSN_TOPIC_SHORT;
			c->if_topic_id = mqttsn_short_id(name.p[0], name.p[1]);
		} else {
			t = mqttsn__topic_get(gw, c, name);
			if (!t) {
				gw->stats.dropped_out++;
				mqttsn__drop_head(c);
				continue;
			}
			c->if_topic_type = MQTTSN_TOPIC_NORMAL;
			c->if_topic_id = t->id;
			if (!t->confirmed) {
				c->inflight = MQTTSN_IF_REGISTER;
				c->if_msg_id = mqttsn__next_msg_id(c);
				c->if_sent_ms = now_ms;
				c->if_retries = 0;
				send_register(gw, c);
				return;
			}
		}
		c->if_msg_id = o->qos ? mqttsn__next_msg_id(c) : 0;
		send_publish(gw, c, o, false);
		gw->stats.publish_out++;
		if (!o->qos) {
			mqttsn__drop_head(c);
			continue;
		}
		c->inflight = o->qos == 1 ? MQTTSN_IF_PUBACK : MQTTSN_IF_PUBREC;
		c->if_sent_ms = now_ms;
		c->if_retries = 0;
		return;
	}
	if (c->state == MQTTSN_CS_AWAKE && c->inflight == MQTTSN_IF_NONE && !queue_head(c)) {
		mqttsn__send_simple(gw, &c->addr, MQTTSN_PINGRESP);
		c->state = MQTTSN_CS_ASLEEP;
	}
}

/* Retransmission of what is in flight, or giving up on it after max_retries (6.13). */
void mqttsn__retry(struct mqttsn_gw *gw, struct mqttsn_client *c, int64_t now_ms)
{
	struct mqttsn_out *o = queue_head(c);

	if (c->if_retries >= gw->cfg.max_retries) {
		gw->stats.dropped_out++;
		mqttsn__drop_head(c);
		mqttsn__pump(gw, c, now_ms);
		return;
	}
	c->if_retries++;
	c->if_sent_ms = now_ms;
	gw->stats.retransmits++;
	switch (c->inflight) {
	case MQTTSN_IF_REGISTER:
		send_register(gw, c);
		break;
	case MQTTSN_IF_PUBACK:
	case MQTTSN_IF_PUBREC:
		if (o)
			send_publish(gw, c, o, true);
		break;
	case MQTTSN_IF_PUBCOMP:
		mqttsn__send_msgid(gw, &c->addr, MQTTSN_PUBREL, c->if_msg_id);
		break;
	default:
		break;
	}
}

int mqttsn_gw_on_deliver(struct mqttsn_gw *gw, struct mqttsn_client *c, struct gw_slice topic,
			 struct gw_slice payload, uint8_t qos, bool retain, int64_t now_ms)
{
	struct mqttsn_out *o;
	struct gw_slice name;

	/* Only topics under the mountpoint reach a client, without it. */
	if (topic.len < gw->mountpoint.len ||
	    (gw->mountpoint.len && memcmp(topic.p, gw->mountpoint.p, gw->mountpoint.len))) {
		gw->stats.dropped_out++;
		return -ENOENT;
	}
	name = (struct gw_slice){ topic.p + gw->mountpoint.len, topic.len - gw->mountpoint.len };
	/* One PUBLISH (9-octet header) through a forwarder must fit 64 KiB. */
	if (!name.len || name.len > 0xffff || payload.len > MQTTSN_MAX_LEN - 9) {
		gw->stats.dropped_out++;
		return -EMSGSIZE;
	}
	if (c->n_queued >= gw->cfg.max_queued) {
		gw->stats.dropped_out++;
		return -ENOBUFS;
	}
	o = gw_malloc(sizeof(*o) + name.len + payload.len);
	if (!o) {
		gw->stats.dropped_out++;
		return -ENOMEM;
	}
	o->qos = qos > 2 ? 2 : qos;
	o->retain = retain;
	o->topic_len = (uint16_t)name.len;
	memcpy(o->topic, name.p, name.len);
	o->payload = (uint8_t *)o->topic + name.len;
	o->payload_len = payload.len;
	if (payload.len)
		memcpy(o->payload, payload.p, payload.len);
	gw_list_add_tail(&c->queue, &o->node);
	c->n_queued++;
	mqttsn__pump(gw, c, now_ms);
	return 0;
}
