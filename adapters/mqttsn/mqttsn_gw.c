/*
 * mqttsn_gw.c - the MQTT-SN gateway state machine (see mqttsn_int.h): the
 * incoming side (one handler per message type, the will handshake), the
 * timers and the machine's lifecycle.
 *
 * Sans I/O: every event carries the time, every action goes through gw->ops.
 * The clients and their tables are in mqttsn_client.c, what goes out to them
 * in mqttsn_out.c (cross-file internals: mqttsn_gw_int.h).
 * Section numbers refer to the MQTT-SN Protocol Specification v1.2.
 */
#include <errno.h>
#include <string.h>

#include "mqttsn_gw_int.h"

static const char *const cstate_names[__MQTTSN_CS_MAX] = {
	[MQTTSN_CS_WILLTOPIC] = "willtopic", [MQTTSN_CS_WILLMSG] = "willmsg",
	[MQTTSN_CS_ACTIVE] = "active",	     [MQTTSN_CS_ASLEEP] = "asleep",
	[MQTTSN_CS_AWAKE] = "awake",
};

const char *mqttsn_cstate_name(enum mqttsn_cstate s)
{
	return s < __MQTTSN_CS_MAX ? cstate_names[s] : "?";
}

void mqttsn_gw_config_defaults(struct mqttsn_gw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->gateway_id = 1;
	cfg->advertise_interval_ms = 15 * 60 * 1000;
	cfg->max_clients = 1000;
	cfg->retry_interval_ms = 10 * 1000;
	cfg->max_retries = 5; /* Nretry: "3-5" (6.13) */
	cfg->max_queued = 100;
	cfg->max_topics = 256;
}

/* ------------------------------------------------------------- helpers */

static bool has_wildcard(struct gw_slice s)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (s.p[i] == '+' || s.p[i] == '#')
			return true;
	return false;
}

static int64_t after_s(int64_t now_ms, uint16_t s)
{
	/* Supervision allows 1.5 times the announced duration (6.14, like MQTT's keepalive). */
	return now_ms + (int64_t)s * 1500;
}

/* ------------------------------------------------------------ incoming */

static void refresh(struct mqttsn_client *c, int64_t now_ms)
{
	switch (c->state) {
	case MQTTSN_CS_ACTIVE:
		c->deadline_ms = c->keepalive_s ? after_s(now_ms, c->keepalive_s) : 0;
		break;
	case MQTTSN_CS_ASLEEP:
	case MQTTSN_CS_AWAKE:
		c->deadline_ms = after_s(now_ms, c->sleep_s);
		break;
	default:
		/* The handshake keeps the deadline CONNECT set. */
		break;
	}
}

static void finish_connect(struct mqttsn_gw *gw, struct mqttsn_client *c, int64_t now_ms)
{
	struct mqttsn_connect_info info = {
		.client_id = { (const uint8_t *)c->client_id, c->id_len },
		.clean_session = c->clean_session,
		.keepalive_s = c->keepalive_s,
	};
	void *session = NULL;
	int rc;

	if (c->session)
		goto active; /* a CONNECT with clean session off from a client still attached */
	/* The broker may deliver a resumed session's messages inside connect: hold them. */
	c->hold = true;
	rc = gw->ops->connect(gw->arg, c, &info, &session);
	c->hold = false;
	if (rc < 0 || !session) {
		gw->stats.clients_refused++;
		mqttsn__send_resp(gw, &c->addr, MQTTSN_CONNACK, MQTTSN_RC_CONGESTION);
		mqttsn__client_free(gw, c);
		return;
	}
	c->session = session;
	gw->stats.clients++;
	gw->stats.clients_total++;
active:
	c->state = MQTTSN_CS_ACTIVE;
	refresh(c, now_ms);
	mqttsn__send_resp(gw, &c->addr, MQTTSN_CONNACK, MQTTSN_RC_ACCEPTED);
	mqttsn__pump(gw, c, now_ms);
}

/* 6.3: CONNECT, with the will handshake when the Will flag is set. */
static void on_connect(struct mqttsn_gw *gw, const struct mqttsn_addr *a,
		       const struct mqttsn_msg *m, int64_t now_ms)
{
	struct mqttsn_client *c, *other;
	bool wake = false, clean;

	if (m->connect.protocol_id != MQTTSN_PROTOCOL_ID ||
	    m->connect.client_id.len > MQTTSN_CLIENT_ID_MAX) {
		gw->stats.clients_refused++;
		mqttsn__send_resp(gw, a, MQTTSN_CONNACK, MQTTSN_RC_NOT_SUPPORTED);
		return;
	}
	c = mqttsn_gw_find_client(gw, m->connect.client_id);
	other = mqttsn__find_by_addr(gw, a);
	if (other && other != c)
		mqttsn__client_lost(gw, other); /* the address now belongs to another client */
	if (c) {
		/*
		 * 6.14: from the asleep or awake state a CONNECT returns the
		 * client to the active state. It is the same session going on,
		 * whatever its CleanSession flag says (Paho's and EMQX's gateways
		 * read it so, and Paho's GatewayTester, which sleeps with clean
		 * session on, relies on it): subscriptions, buffered messages and
		 * the will stay; a Will flag runs the handshake for a new will.
		 */
		wake = c->state == MQTTSN_CS_ASLEEP || c->state == MQTTSN_CS_AWAKE;
		clean = m->flags.clean_session && !wake;
		/* The same client again, maybe from a new address (NAT rebinding). */
		if (!mqttsn__addr_eq(&c->addr, a))
			mqttsn__set_addr(gw, c, a);
		/*
		 * Clean session off: the client goes on with the session it has
		 * (one that lost its address, or a sleeping one as above).
		 * Detaching and attaching again would lose it when it was opened
		 * with clean session on (the broker ends such a session when its
		 * client goes), so it stays attached. Clean session on: a new
		 * broker session.
		 */
		if (clean)
			mqttsn__detach(gw, c);
		c->inflight = MQTTSN_IF_NONE; /* the head goes again, from the start */
		c->n_qos2 = 0;
		if (clean) {
			mqttsn__free_queue(c);
			mqttsn__free_topics(c);
		} else {
			/* It may have restarted and forgotten our ids: register them again. */
			mqttsn__unconfirm_topics(c);
		}
	} else {
		if (gw->n_clients >= gw->cfg.max_clients) {
			gw->stats.clients_refused++;
			mqttsn__send_resp(gw, a, MQTTSN_CONNACK, MQTTSN_RC_CONGESTION);
			return;
		}
		c = mqttsn__client_new(gw, a);
		if (!c) {
			gw->stats.clients_refused++;
			mqttsn__send_resp(gw, a, MQTTSN_CONNACK, MQTTSN_RC_CONGESTION);
			return;
		}
		memcpy(c->client_id, m->connect.client_id.p, m->connect.client_id.len);
		c->id_len = (uint8_t)m->connect.client_id.len;
	}
	if (!wake || m->flags.will)
		mqttsn__free_will(c);
	if (!wake)
		c->clean_session = m->flags.clean_session;
	c->keepalive_s = m->connect.duration;
	c->sleep_s = 0;
	if (m->flags.will) {
		c->state = MQTTSN_CS_WILLTOPIC;
		/* The client retries CONNECT if the handshake stalls; give up after its retries. */
		c->deadline_ms =
			now_ms + (int64_t)gw->cfg.retry_interval_ms * (gw->cfg.max_retries + 1);
		mqttsn__send_simple(gw, &c->addr, MQTTSN_WILLTOPICREQ);
		return;
	}
	finish_connect(gw, c, now_ms);
}

/* 6.8: QoS -1, from anyone, to a predefined id or a short topic name only. */
static void on_publish_qosm1(struct mqttsn_gw *gw, const struct mqttsn_msg *m)
{
	uint8_t sn[2];
	struct gw_slice name, topic;

	if (m->flags.topic_type == MQTTSN_TOPIC_NORMAL ||
	    !mqttsn__resolve_topic(gw, NULL, m->flags.topic_type, m->publish.topic_id, sn, &name) ||
	    mqttsn__mount(gw, name, &topic)) {
		gw->stats.dropped_in++;
		return;
	}
	if (gw->ops->publish(gw->arg, NULL, topic, m->publish.data, 0, m->flags.retain) < 0) {
		gw->stats.dropped_in++;
		return;
	}
	gw->stats.publish_in++;
}

/* 6.7, 6.8: PUBLISH from a connected client. */
static void on_publish(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
		       int64_t now_ms)
{
	uint8_t qos = (uint8_t)m->flags.qos, sn[2];
	uint16_t mid = m->publish.msg_id, tid = m->publish.topic_id;
	struct gw_slice name, topic;
	int rc;

	if (!mqttsn__resolve_topic(gw, c, m->flags.topic_type, tid, sn, &name) ||
	    mqttsn__mount(gw, name, &topic)) {
		/* Unknown id: PUBACK "invalid topic id", whatever the QoS (6.7). */
		gw->stats.dropped_in++;
		mqttsn__send_ack(gw, &c->addr, MQTTSN_PUBACK, tid, mid, MQTTSN_RC_INVALID_TOPIC_ID);
		return;
	}
	if (qos == 2 && mqttsn__qos2_seen(c, mid)) {
		/* A retransmission before PUBREL: acknowledge again, publish once. */
		mqttsn__send_msgid(gw, &c->addr, MQTTSN_PUBREC, mid);
		return;
	}
	/* A subscriber of its own topic gets deliveries inside publish: after the ack. */
	c->hold = true;
	rc = gw->ops->publish(gw->arg, c->session, topic, m->publish.data, qos, m->flags.retain);
	c->hold = false;
	if (rc < 0) {
		/* Refused by the ACL: "not supported", which a client does not retry. */
		gw->stats.dropped_in++;
		if (qos)
			mqttsn__send_ack(gw, &c->addr, MQTTSN_PUBACK, tid, mid,
					 rc == -EACCES ? MQTTSN_RC_NOT_SUPPORTED
						       : MQTTSN_RC_CONGESTION);
	} else {
		gw->stats.publish_in++;
		if (qos == 1) {
			mqttsn__send_ack(gw, &c->addr, MQTTSN_PUBACK, tid, mid, MQTTSN_RC_ACCEPTED);
		} else if (qos == 2) {
			mqttsn__qos2_add(c, mid);
			mqttsn__send_msgid(gw, &c->addr, MQTTSN_PUBREC, mid);
		}
	}
	mqttsn__pump(gw, c, now_ms);
}

/* 6.9: REGISTER from a client (a topic it will publish to). */
static void on_register(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m)
{
	struct mqttsn_topic *t;

	if (has_wildcard(m->reg.topic)) {
		mqttsn__send_ack(gw, &c->addr, MQTTSN_REGACK, 0, m->reg.msg_id,
				 MQTTSN_RC_NOT_SUPPORTED);
		return;
	}
	t = mqttsn__topic_get(gw, c, m->reg.topic);
	if (!t) {
		mqttsn__send_ack(gw, &c->addr, MQTTSN_REGACK, 0, m->reg.msg_id,
				 MQTTSN_RC_CONGESTION);
		return;
	}
	t->confirmed = true;
	mqttsn__send_ack(gw, &c->addr, MQTTSN_REGACK, t->id, m->reg.msg_id, MQTTSN_RC_ACCEPTED);
}

/* 6.10: REGACK for a REGISTER the gateway sent before a PUBLISH. */
static void on_regack(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
		      int64_t now_ms)
{
	struct mqttsn_topic *t;

	if (c->inflight != MQTTSN_IF_REGISTER || m->ack.msg_id != c->if_msg_id)
		return;
	t = mqttsn__topic_by_id(c, c->if_topic_id);
	c->inflight = MQTTSN_IF_NONE;
	if (m->ack.rc == MQTTSN_RC_ACCEPTED && t) {
		t->confirmed = true;
	} else {
		/* The client will not take this topic: its message cannot go. */
		gw->stats.dropped_out++;
		mqttsn__drop_head(c);
	}
	mqttsn__pump(gw, c, now_ms);
}

/* PUBACK, PUBREC, PUBCOMP for the PUBLISH in flight (6.7). */
static void on_pub_ack(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
		       int64_t now_ms)
{
	uint16_t mid = m->type == MQTTSN_PUBACK ? m->ack.msg_id : m->msgid.msg_id;
	struct mqttsn_topic *t;

	if (mid != c->if_msg_id)
		return;
	switch (m->type) {
	case MQTTSN_PUBACK:
		if (c->inflight != MQTTSN_IF_PUBACK && c->inflight != MQTTSN_IF_PUBREC)
			return;
		if (m->ack.rc != MQTTSN_RC_ACCEPTED) {
			gw->stats.dropped_out++;
			/* It forgot the id: register it again before the next message. */
			t = m->ack.rc == MQTTSN_RC_INVALID_TOPIC_ID &&
					    c->if_topic_type == MQTTSN_TOPIC_NORMAL
				    ? mqttsn__topic_by_id(c, c->if_topic_id)
				    : NULL;
			if (t)
				t->confirmed = false;
		}
		break;
	case MQTTSN_PUBREC:
		if (c->inflight != MQTTSN_IF_PUBREC && c->inflight != MQTTSN_IF_PUBCOMP)
			return;
		c->inflight = MQTTSN_IF_PUBCOMP;
		c->if_sent_ms = now_ms;
		c->if_retries = 0;
		mqttsn__send_msgid(gw, &c->addr, MQTTSN_PUBREL, mid);
		return;
	case MQTTSN_PUBCOMP:
		if (c->inflight != MQTTSN_IF_PUBCOMP)
			return;
		break;
	default:
		return;
	}
	mqttsn__drop_head(c);
	mqttsn__pump(gw, c, now_ms);
}

/* 6.9 SUBSCRIBE and UNSUBSCRIBE. */
static void on_subscribe(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
			 int64_t now_ms)
{
	bool sub = m->type == MQTTSN_SUBSCRIBE;
	uint8_t type = m->flags.topic_type, sn[2];
	struct mqttsn_msg r = { .type = MQTTSN_SUBACK, .flags = { .qos = m->flags.qos } };
	const struct mqttsn_predef *pd;
	struct mqttsn_topic *t = NULL;
	struct gw_slice name = m->sub.topic, filter;
	uint16_t tid = 0;
	int rc;

	r.ack.msg_id = m->sub.msg_id;
	if (type == MQTTSN_TOPIC_PREDEFINED) {
		pd = mqttsn__predef_by_id(gw, m->sub.topic_id);
		if (!pd) {
			r.ack.rc = MQTTSN_RC_INVALID_TOPIC_ID;
			goto reply;
		}
		name = gw_slice_cstr(pd->topic);
		tid = pd->id;
	} else if (type == MQTTSN_TOPIC_SHORT) {
		mqttsn__resolve_topic(gw, c, type, m->sub.topic_id, sn, &name);
	} else if (sub && !has_wildcard(name)) {
		/* A plain name gets its id in SUBACK; a filter gets 0 (5.4.17). */
		t = mqttsn__topic_get(gw, c, name);
		if (!t) {
			r.ack.rc = MQTTSN_RC_CONGESTION;
			goto reply;
		}
		tid = t->id;
	}
	if (mqttsn__mount(gw, name, &filter)) {
		r.ack.rc = MQTTSN_RC_NOT_SUPPORTED;
		goto reply;
	}
	/* Retained messages arrive inside subscribe: they must follow SUBACK. */
	c->hold = true;
	if (sub)
		rc = gw->ops->subscribe(gw->arg, c->session, filter, (uint8_t)m->flags.qos);
	else
		rc = gw->ops->unsubscribe(gw->arg, c->session, filter);
	c->hold = false;
	if (rc < 0)
		r.ack.rc = MQTTSN_RC_NOT_SUPPORTED;
	else if (t)
		t->confirmed = true;
	r.ack.topic_id = rc < 0 ? 0 : tid;
reply:
	if (sub) {
		mqttsn__send_msg(gw, &c->addr, &r);
	} else {
		/* UNSUBACK carries no return code (5.4.19). */
		mqttsn__send_msgid(gw, &c->addr, MQTTSN_UNSUBACK, m->sub.msg_id);
	}
	mqttsn__pump(gw, c, now_ms);
}

/* 6.12, 6.14: DISCONNECT, plain or going to sleep. */
static void on_disconnect(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
			  int64_t now_ms)
{
	if (m->disconnect.has_duration && m->disconnect.duration) {
		c->state = MQTTSN_CS_ASLEEP;
		c->sleep_s = m->disconnect.duration;
		refresh(c, now_ms);
		mqttsn__send_simple(gw, &c->addr, MQTTSN_DISCONNECT);
		return;
	}
	mqttsn__send_simple(gw, &c->addr, MQTTSN_DISCONNECT);
	/* A clean DISCONNECT: no will (6.12). */
	mqttsn__client_free(gw, c);
}

/* 6.14: PINGREQ; with a client id from a sleeping client, it is awake for its messages. */
static void on_pingreq(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
		       int64_t now_ms)
{
	if (m->pingreq.client_id.len &&
	    (c->state == MQTTSN_CS_ASLEEP || c->state == MQTTSN_CS_AWAKE)) {
		c->state = MQTTSN_CS_AWAKE;
		refresh(c, now_ms);
		mqttsn__pump(gw, c, now_ms); /* ends with PINGRESP once everything went out */
		return;
	}
	mqttsn__send_simple(gw, &c->addr, MQTTSN_PINGRESP);
}

/* Messages of a client in the will handshake (6.3). */
static void on_handshake(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
			 int64_t now_ms)
{
	if (c->state == MQTTSN_CS_WILLTOPIC && m->type == MQTTSN_WILLTOPIC) {
		if (mqttsn__set_will_topic(c, m)) {
			mqttsn__send_resp(gw, &c->addr, MQTTSN_CONNACK, MQTTSN_RC_CONGESTION);
			mqttsn__client_free(gw, c);
		} else if (!c->will_topic) {
			finish_connect(gw, c, now_ms); /* an empty WILLTOPIC: no will */
		} else {
			c->state = MQTTSN_CS_WILLMSG;
			mqttsn__send_simple(gw, &c->addr, MQTTSN_WILLMSGREQ);
		}
	} else if (c->state == MQTTSN_CS_WILLMSG && m->type == MQTTSN_WILLMSG) {
		if (mqttsn__set_will_msg(c, m)) {
			mqttsn__send_resp(gw, &c->addr, MQTTSN_CONNACK, MQTTSN_RC_CONGESTION);
			mqttsn__client_free(gw, c);
		} else {
			finish_connect(gw, c, now_ms);
		}
	} else {
		gw->stats.dropped_in++;
	}
}

/* Messages of a connected client. */
static void on_client_msg(struct mqttsn_gw *gw, struct mqttsn_client *c, const struct mqttsn_msg *m,
			  int64_t now_ms)
{
	refresh(c, now_ms);
	switch (m->type) {
	case MQTTSN_PUBLISH:
		on_publish(gw, c, m, now_ms);
		break;
	case MQTTSN_PUBACK:
	case MQTTSN_PUBREC:
	case MQTTSN_PUBCOMP:
		on_pub_ack(gw, c, m, now_ms);
		break;
	case MQTTSN_PUBREL:
		mqttsn__qos2_del(c, m->msgid.msg_id);
		mqttsn__send_msgid(gw, &c->addr, MQTTSN_PUBCOMP, m->msgid.msg_id);
		break;
	case MQTTSN_REGISTER:
		on_register(gw, c, m);
		break;
	case MQTTSN_REGACK:
		on_regack(gw, c, m, now_ms);
		break;
	case MQTTSN_SUBSCRIBE:
	case MQTTSN_UNSUBSCRIBE:
		on_subscribe(gw, c, m, now_ms);
		break;
	case MQTTSN_PINGREQ:
		on_pingreq(gw, c, m, now_ms);
		break;
	case MQTTSN_DISCONNECT:
		on_disconnect(gw, c, m, now_ms);
		break;
	case MQTTSN_WILLTOPICUPD: /* 6.4 */
		mqttsn__send_resp(gw, &c->addr, MQTTSN_WILLTOPICRESP,
				  mqttsn__set_will_topic(c, m) ? MQTTSN_RC_CONGESTION
							       : MQTTSN_RC_ACCEPTED);
		break;
	case MQTTSN_WILLMSGUPD:
		mqttsn__send_resp(gw, &c->addr, MQTTSN_WILLMSGRESP,
				  mqttsn__set_will_msg(c, m) ? MQTTSN_RC_CONGESTION
							     : MQTTSN_RC_ACCEPTED);
		break;
	default:
		/* Gateway-to-client messages, or handshake messages out of place. */
		gw->stats.dropped_in++;
		break;
	}
}

/* A datagram from @from; @group: heard on the multicast group rather than on our own port. */
static void on_datagram(struct mqttsn_gw *gw, const struct mqttsn_addr *from, const uint8_t *buf,
			size_t len, bool group, int64_t now_ms)
{
	struct mqttsn_addr a = { 0 };
	struct mqttsn_client *c;
	struct mqttsn_msg m;

	gw->stats.datagrams_in++;
	if (mqttsn_decode(buf, len, &m) < 0) {
		gw->stats.malformed++;
		return;
	}
	/* Compared bytewise: copy only what is defined, the rest stays 0. */
	a.len = from->len > MQTTSN_ADDR_MAX ? MQTTSN_ADDR_MAX : from->len;
	memcpy(a.data, from->data, a.len);
	if (m.encapsulated) {
		if (m.encap.node_id.len > MQTTSN_NODE_ID_MAX) {
			gw->stats.dropped_in++;
			return;
		}
		a.encap = true;
		a.ctrl = m.encap.ctrl;
		a.node_len = (uint8_t)m.encap.node_id.len;
		memcpy(a.node, m.encap.node_id.p, m.encap.node_id.len);
	}
	switch (m.type) {
	case MQTTSN_SEARCHGW: /* 6.1: answer with GWINFO */
		m = (struct mqttsn_msg){ .type = MQTTSN_GWINFO,
					 .gwinfo = { .gw_id = gw->cfg.gateway_id } };
		/*
		 * 5.4.4: GWINFO answers a SEARCHGW through the broadcast
		 * service, so a search heard on the group is answered on the
		 * group, where every client listening learns the gateway.
		 * A client listening on the group port may not get a unicast
		 * reply at all: on one host several sockets can be bound to
		 * that port (ours among them) and the kernel gives a unicast
		 * datagram to one of them. The copy to the searcher serves
		 * those that search without joining the group.
		 */
		if (group && !a.encap && gw->ops->broadcast)
			mqttsn__send_msg(gw, NULL, &m);
		mqttsn__send_msg(gw, &a, &m);
		return;
	case MQTTSN_ADVERTISE:
	case MQTTSN_GWINFO:
		return; /* other gateways: nothing to do */
	case MQTTSN_CONNECT:
		on_connect(gw, &a, &m, now_ms);
		return;
	case MQTTSN_PUBLISH:
		if (m.flags.qos < 0) {
			on_publish_qosm1(gw, &m);
			return;
		}
		break;
	default:
		break;
	}
	c = mqttsn__find_by_addr(gw, &a);
	if (!c && m.type == MQTTSN_PINGREQ && m.pingreq.client_id.len) {
		/* A sleeping client waking from a new address (NAT rebinding). */
		c = mqttsn_gw_find_client(gw, m.pingreq.client_id);
		if (c && c->session)
			mqttsn__set_addr(gw, c, &a);
		else
			c = NULL;
	}
	if (!c) {
		gw->stats.dropped_in++;
		/* Tell a client that lost its connection (e.g. after a restart) to reconnect. */
		if (m.type == MQTTSN_PUBLISH || m.type == MQTTSN_SUBSCRIBE ||
		    m.type == MQTTSN_REGISTER || m.type == MQTTSN_PINGREQ ||
		    m.type == MQTTSN_UNSUBSCRIBE)
			mqttsn__send_simple(gw, &a, MQTTSN_DISCONNECT);
		return;
	}
	if (c->state == MQTTSN_CS_WILLTOPIC || c->state == MQTTSN_CS_WILLMSG)
		on_handshake(gw, c, &m, now_ms);
	else
		on_client_msg(gw, c, &m, now_ms);
}

void mqttsn_gw_on_datagram(struct mqttsn_gw *gw, const struct mqttsn_addr *from, const uint8_t *buf,
			   size_t len, int64_t now_ms)
{
	on_datagram(gw, from, buf, len, false, now_ms);
}

void mqttsn_gw_on_group_datagram(struct mqttsn_gw *gw, const struct mqttsn_addr *from,
				 const uint8_t *buf, size_t len, int64_t now_ms)
{
	on_datagram(gw, from, buf, len, true, now_ms);
}

/* --------------------------------------------------------------- timers */

void mqttsn_gw_on_tick(struct mqttsn_gw *gw, int64_t now_ms)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &gw->clients) {
		struct mqttsn_client *c = gw_list_entry(pos, struct mqttsn_client, all);

		if (c->deadline_ms && now_ms >= c->deadline_ms) {
			mqttsn__client_lost(gw, c);
			continue;
		}
		if (c->inflight != MQTTSN_IF_NONE && mqttsn__can_send(c) &&
		    now_ms - c->if_sent_ms >= (int64_t)gw->cfg.retry_interval_ms)
			mqttsn__retry(gw, c, now_ms);
	}
	if (gw->cfg.advertise_interval_ms && now_ms >= gw->next_advertise_ms) {
		struct mqttsn_msg m = { .type = MQTTSN_ADVERTISE };
		uint32_t s = gw->cfg.advertise_interval_ms / 1000;

		m.advertise.gw_id = gw->cfg.gateway_id;
		m.advertise.duration = (uint16_t)(s > 0xffff ? 0xffff : s);
		mqttsn__send_msg(gw, NULL, &m); /* 6.1 */
		gw->next_advertise_ms = now_ms + gw->cfg.advertise_interval_ms;
	}
}

int64_t mqttsn_gw_next_timeout(const struct mqttsn_gw *gw, int64_t now_ms)
{
	int64_t best = -1;
	const struct gw_list *pos;

#define CONSIDER(t)                        \
	do {                               \
		int64_t d_ = (t)-now_ms;   \
		if (d_ < 0)                \
			d_ = 0;            \
		if (best < 0 || d_ < best) \
			best = d_;         \
	} while (0)

	for (pos = gw->clients.next; pos != &gw->clients; pos = pos->next) {
		const struct mqttsn_client *c = gw_list_entry(pos, struct mqttsn_client, all);

		if (c->deadline_ms)
			CONSIDER(c->deadline_ms);
		if (c->inflight != MQTTSN_IF_NONE && mqttsn__can_send(c))
			CONSIDER(c->if_sent_ms + (int64_t)gw->cfg.retry_interval_ms);
	}
	if (gw->cfg.advertise_interval_ms)
		CONSIDER(gw->next_advertise_ms);
#undef CONSIDER
	return best;
}

/* ------------------------------------------------------------ lifecycle */

int mqttsn_gw_init(struct mqttsn_gw *gw, const struct mqttsn_gw_config *cfg,
		   const struct mqttsn_gw_ops *ops, void *arg, int64_t now_ms)
{
	unsigned int i, n = 16;

	if (!cfg->max_clients || !cfg->retry_interval_ms || !ops || !ops->send || !ops->connect ||
	    !ops->disconnect || !ops->publish || !ops->subscribe || !ops->unsubscribe)
		return -EINVAL;
	memset(&gw->stats, 0, sizeof(gw->stats));
	gw->cfg = *cfg;
	gw->ops = ops;
	gw->arg = arg;
	gw->mountpoint = gw_slice_cstr(cfg->mountpoint);
	gw_list_init(&gw->clients);
	while (n < cfg->max_clients / 2 && n < 65536)
		n <<= 1;
	gw->buckets = gw_calloc(n, sizeof(*gw->buckets));
	if (!gw->buckets)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		gw_list_init(&gw->buckets[i]);
	gw->n_buckets = n;
	gw->n_clients = 0;
	gw->next_advertise_ms = now_ms;
	return 0;
}

void mqttsn_gw_fini(struct mqttsn_gw *gw)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &gw->clients)
		mqttsn__client_free(gw, gw_list_entry(pos, struct mqttsn_client, all));
	gw_free(gw->buckets);
	gw->buckets = NULL;
	gw->n_buckets = 0;
}
