/*
 * mqttsn_client.c - the clients of the MQTT-SN gateway state machine: the
 * address table, a client's lifecycle (new, lost with its will, freed), its
 * topic id table, its will and its QoS 2 dedup list, and the gateway's topic
 * names (predefined ids, the mountpoint).
 *
 * Part of the sans-I/O machine (mqttsn_gw.c; internals in mqttsn_gw_int.h).
 * Section numbers refer to the MQTT-SN Protocol Specification v1.2.
 */
#include <errno.h>
#include <string.h>

#include "mqttsn_gw_int.h"
/* ---------------------------------------------------- topic names */

const struct mqttsn_predef *mqttsn__predef_by_id(const struct mqttsn_gw *gw, uint16_t id)
{
	unsigned int i;

	for (i = 0; i < gw->cfg.n_predefined; i++)
		if (gw->cfg.predefined[i].id == id)
			return &gw->cfg.predefined[i];
	return NULL;
}

const struct mqttsn_predef *mqttsn__predef_by_name(const struct mqttsn_gw *gw, struct gw_slice name)
{
	unsigned int i;

	for (i = 0; i < gw->cfg.n_predefined; i++)
		if (gw_slice_eq_cstr(name, gw->cfg.predefined[i].topic))
			return &gw->cfg.predefined[i];
	return NULL;
}

/* @name with the mountpoint in front, in gw->topicbuf; -EMSGSIZE if too long. */
int mqttsn__mount(struct mqttsn_gw *gw, struct gw_slice name, struct gw_slice *out)
{
	size_t n = gw->mountpoint.len + name.len;

	if (n > MQTTSN_MAX_LEN)
		return -EMSGSIZE;
	if (gw->mountpoint.len)
		memcpy(gw->topicbuf, gw->mountpoint.p, gw->mountpoint.len);
	if (name.len)
		memcpy(gw->topicbuf + gw->mountpoint.len, name.p, name.len);
	out->p = (const uint8_t *)gw->topicbuf;
	out->len = n;
	return 0;
}

/* ------------------------------------------------------------- clients */

static uint32_t addr_hash(const struct mqttsn_addr *a)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i;

	for (i = 0; i < a->len && i < MQTTSN_ADDR_MAX; i++)
		h = (h ^ a->data[i]) * 16777619u;
	for (i = 0; i < a->node_len && i < MQTTSN_NODE_ID_MAX; i++)
		h = (h ^ a->node[i]) * 16777619u;
	return h;
}

bool mqttsn__addr_eq(const struct mqttsn_addr *a, const struct mqttsn_addr *b)
{
	return a->len == b->len && a->encap == b->encap && a->node_len == b->node_len &&
	       !memcmp(a->data, b->data, a->len) && !memcmp(a->node, b->node, a->node_len);
}

static struct gw_list *bucket(struct mqttsn_gw *gw, const struct mqttsn_addr *a)
{
	return &gw->buckets[addr_hash(a) & (gw->n_buckets - 1)];
}

struct mqttsn_client *mqttsn__find_by_addr(struct mqttsn_gw *gw, const struct mqttsn_addr *a)
{
	struct gw_list *head = bucket(gw, a), *pos;

	gw_list_for_each (pos, head) {
		struct mqttsn_client *c = gw_list_entry(pos, struct mqttsn_client, hnode);

		if (mqttsn__addr_eq(&c->addr, a))
			return c;
	}
	return NULL;
}

struct mqttsn_client *mqttsn_gw_find_client(struct mqttsn_gw *gw, struct gw_slice client_id)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &gw->clients) {
		struct mqttsn_client *c = gw_list_entry(pos, struct mqttsn_client, all);

		if (gw_slice_eq(client_id,
				(struct gw_slice){ (const uint8_t *)c->client_id, c->id_len }))
			return c;
	}
	return NULL;
}

void mqttsn__set_addr(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_addr *a)
{
	gw_list_del(&c->hnode);
	c->addr = *a;
	gw_list_add_tail(bucket(gw, a), &c->hnode);
}

void mqttsn__free_will(struct mqttsn_client *c)
{
	gw_free(c->will_topic);
	gw_free(c->will_msg);
	c->will_topic = NULL;
	c->will_msg = NULL;
	c->will_topic_len = 0;
	c->will_msg_len = 0;
}

void mqttsn__free_queue(struct mqttsn_client *c)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &c->queue) {
		gw_list_del(pos);
		gw_free(gw_list_entry(pos, struct mqttsn_out, node));
	}
	c->n_queued = 0;
	c->inflight = MQTTSN_IF_NONE;
}

void mqttsn__unconfirm_topics(struct mqttsn_client *c)
{
	uint16_t i;

	for (i = 0; i < c->n_topics; i++)
		c->topics[i].confirmed = false;
}

void mqttsn__free_topics(struct mqttsn_client *c)
{
	uint16_t i;

	for (i = 0; i < c->n_topics; i++)
		gw_free(c->topics[i].name);
	gw_free(c->topics);
	c->topics = NULL;
	c->n_topics = 0;
}

void mqttsn__detach(struct mqttsn_gw *gw, struct mqttsn_client *c)
{
	void *s = c->session;

	if (!s)
		return;
	c->session = NULL;
	gw->stats.clients--;
	gw->ops->disconnect(gw->arg, c, s);
}

void mqttsn__client_free(struct mqttsn_gw *gw, struct mqttsn_client *c)
{
	mqttsn__detach(gw, c);
	gw_list_del(&c->all);
	gw_list_del(&c->hnode);
	mqttsn__free_queue(c);
	mqttsn__free_topics(c);
	mqttsn__free_will(c);
	gw->n_clients--;
	gw_free(c);
}

/* Keepalive or sleep expired, or the address went to someone else: the will goes out. */
void mqttsn__client_lost(struct mqttsn_gw *gw, struct mqttsn_client *c)
{
	/* It is going: a delivery of its own will must not be sent to it. */
	c->hold = true;
	if (c->session && c->will_topic) {
		struct gw_slice topic;

		if (!mqttsn__mount(gw,
				   (struct gw_slice){ (uint8_t *)c->will_topic, c->will_topic_len },
				   &topic))
			gw->ops->publish(gw->arg, c->session, topic,
					 (struct gw_slice){ c->will_msg, c->will_msg_len },
					 c->will_qos, c->will_retain);
	}
	if (c->session)
		gw->stats.clients_lost++;
	mqttsn__client_free(gw, c);
}

struct mqttsn_client *mqttsn__client_new(struct mqttsn_gw *gw, const struct mqttsn_addr *a)
{
	struct mqttsn_client *c = gw_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->gw = gw;
	c->addr = *a;
	c->next_topic_id = 1;
	c->next_msg_id = 1;
	gw_list_init(&c->queue);
	gw_list_add_tail(&gw->clients, &c->all);
	gw_list_add_tail(bucket(gw, a), &c->hnode);
	gw->n_clients++;
	return c;
}

uint16_t mqttsn__next_msg_id(struct mqttsn_client *c)
{
	uint16_t id = c->next_msg_id++;

	if (!c->next_msg_id)
		c->next_msg_id = 1;
	return id;
}

/* ---------------------------------------------------------- topic table */

struct mqttsn_topic *mqttsn__topic_by_id(struct mqttsn_client *c, uint16_t id)
{
	uint16_t i;

	for (i = 0; i < c->n_topics; i++)
		if (c->topics[i].id == id)
			return &c->topics[i];
	return NULL;
}

static struct mqttsn_topic *topic_by_name(struct mqttsn_client *c, struct gw_slice name)
{
	uint16_t i;

	for (i = 0; i < c->n_topics; i++)
		if (gw_slice_eq(name, (struct gw_slice){ (uint8_t *)c->topics[i].name,
							 c->topics[i].len }))
			return &c->topics[i];
	return NULL;
}

/* The entry for @name, added (unconfirmed) if new; NULL when full or out of memory. */
struct mqttsn_topic *mqttsn__topic_get(struct mqttsn_gw *gw, struct mqttsn_client *c,
				       struct gw_slice name)
{
	struct mqttsn_topic *t = topic_by_name(c, name), *tab;
	char *copy;

	if (t)
		return t;
	if (c->n_topics >= gw->cfg.max_topics || name.len > 0xffff)
		return NULL;
	copy = gw_malloc(name.len ? name.len : 1);
	tab = gw_realloc(c->topics, (c->n_topics + 1u) * sizeof(*tab));
	if (!copy || !tab) {
		gw_free(copy);
		return NULL;
	}
	c->topics = tab;
	memcpy(copy, name.p, name.len);
	/* 0x0000 and 0xffff are reserved topic ids (5.3.11). */
	while (c->next_topic_id == 0 || c->next_topic_id == 0xffff ||
	       mqttsn__topic_by_id(c, c->next_topic_id))
		c->next_topic_id++;
	t = &c->topics[c->n_topics++];
	t->id = c->next_topic_id++;
	t->confirmed = false;
	t->len = (uint16_t)name.len;
	t->name = copy;
	return t;
}

int mqttsn__set_will_topic(struct mqttsn_client *c, const struct mqttsn_msg *m)
{
	char *t;

	if (!m->willtopic.topic.len) {
		/* The empty form deletes the will (5.4.8). */
		mqttsn__free_will(c);
		return 0;
	}
	t = gw_malloc(m->willtopic.topic.len);
	if (!t)
		return -ENOMEM;
	memcpy(t, m->willtopic.topic.p, m->willtopic.topic.len);
	gw_free(c->will_topic);
	c->will_topic = t;
	c->will_topic_len = (uint16_t)m->willtopic.topic.len;
	c->will_qos = (uint8_t)m->flags.qos;
	c->will_retain = m->flags.retain;
	return 0;
}

int mqttsn__set_will_msg(struct mqttsn_client *c, const struct mqttsn_msg *m)
{
	uint8_t *p = gw_malloc(m->willmsg.msg.len ? m->willmsg.msg.len : 1);

	if (!p)
		return -ENOMEM;
	if (m->willmsg.msg.len)
		memcpy(p, m->willmsg.msg.p, m->willmsg.msg.len);
	gw_free(c->will_msg);
	c->will_msg = p;
	c->will_msg_len = m->willmsg.msg.len;
	return 0;
}

/* The broker topic a PUBLISH names, without the mountpoint; false if unknown. */
bool mqttsn__resolve_topic(struct mqttsn_gw *gw, struct mqttsn_client *c, uint8_t type, uint16_t id,
			   uint8_t short_name[2], struct gw_slice *name)
{
	const struct mqttsn_predef *pd;
	struct mqttsn_topic *t;

	switch (type) {
	case MQTTSN_TOPIC_NORMAL:
		t = c ? mqttsn__topic_by_id(c, id) : NULL;
		if (!t)
			return false;
		*name = (struct gw_slice){ (uint8_t *)t->name, t->len };
		return true;
	case MQTTSN_TOPIC_PREDEFINED:
		pd = mqttsn__predef_by_id(gw, id);
		if (!pd)
			return false;
		*name = gw_slice_cstr(pd->topic);
		return true;
	case MQTTSN_TOPIC_SHORT:
		short_name[0] = (uint8_t)(id >> 8);
		short_name[1] = (uint8_t)id;
		*name = (struct gw_slice){ short_name, 2 };
		return true;
	default:
		return false;
	}
}

bool mqttsn__qos2_seen(struct mqttsn_client *c, uint16_t id)
{
	unsigned int i;

	for (i = 0; i < c->n_qos2; i++)
		if (c->qos2_ids[i] == id)
			return true;
	return false;
}

void mqttsn__qos2_add(struct mqttsn_client *c, uint16_t id)
{
	if (c->n_qos2 == MQTTSN_QOS2_MAX) {
		/* Forget the oldest: a client this far behind has given up on it. */
		memmove(c->qos2_ids, c->qos2_ids + 1, (MQTTSN_QOS2_MAX - 1) * sizeof(uint16_t));
		c->n_qos2--;
	}
	c->qos2_ids[c->n_qos2++] = id;
}

void mqttsn__qos2_del(struct mqttsn_client *c, uint16_t id)
{
	unsigned int i;

	for (i = 0; i < c->n_qos2; i++)
		if (c->qos2_ids[i] == id) {
			memmove(c->qos2_ids + i, c->qos2_ids + i + 1,
				(c->n_qos2 - i - 1) * sizeof(uint16_t));
			c->n_qos2--;
			return;
		}
}
