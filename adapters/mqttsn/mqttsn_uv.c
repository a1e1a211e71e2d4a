/*
 * mqttsn_uv.c - the MQTT-SN gateway on libuv and the broker's in-process API:
 * UDP sockets and a timer feed the sans-I/O machine (mqttsn_gw.c), whose
 * actions become datagrams and brk_client_* calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker/broker.h"
#include "mqttsn_int.h"

#define LOGM "mqttsn"

struct mqttsn_server {
	uv_loop_t *loop;
	struct brk *brk;
	const struct gw_logger *lg;
	struct mqttsn_config cfg;
	struct mqttsn_gw_config gcfg;
	struct mqttsn_gw *gw; /* large (encode scratch): on the heap */
	bool gw_ready;
	struct sockaddr_storage listen_addr;
	struct sockaddr_storage mcast_addr;
	bool has_mcast;
	uv_udp_t udp;  /* unicast: every reply goes out here */
	uv_udp_t mudp; /* the multicast group's port, for SEARCHGW */
	uv_timer_t timer;
	unsigned int open_handles;
	void (*done)(void *arg);
	void *done_arg;
	/* Acknowledgements waiting for the broker's acked callback (struct ack_wait). */
	struct gw_list acks_waiting;
	struct ack_wait *capture; /* takes the next PUBACK / PUBREC the machine sends */
	uint8_t rxbuf[MQTTSN_MAX_LEN + 1];
};

/*
 * DESIGN.md section 1: a QoS >= 1 message is acknowledged to its publisher
 * only when every hold on it is released (the uplink holds it until its store
 * has committed it). The machine sends PUBACK / PUBREC as soon as
 * ops->publish returns, so the glue publishes with brk_client_publish_acked()
 * and, when a hold is still taken, keeps that very datagram aside (captured
 * in op_send) and sends it from the acked callback. A copy of the same
 * acknowledgement sent meanwhile (a retransmitted QoS 2 PUBLISH) is dropped:
 * the held one answers it.
 */
struct ack_wait {
	struct gw_list link;	 /* in s->acks_waiting while pending */
	struct mqttsn_server *s; /* NULL once the server stopped: the callback only frees */
	bool pending;		 /* publish returned before the callback ran */
	bool fired;		 /* the callback ran inside the publish */
	bool captured;		 /* data holds the datagram to send */
	uint8_t type;		 /* MQTTSN_PUBACK or MQTTSN_PUBREC */
	uint16_t msg_id;
	struct mqttsn_addr to;
	size_t len;
	uint8_t data[64]; /* PUBACK / PUBREC, forwarder header included */
};

/* A datagram the socket could not take at once: sent asynchronously from a copy. */
struct send_req {
	uv_udp_send_t req;
	uint8_t data[];
};

void mqttsn_config_defaults(struct mqttsn_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = "0.0.0.0:1884";
	cfg->gateway_id = 1;
	cfg->advertise_interval_ms = 15 * 60 * 1000;
	cfg->max_clients = 1000;
	cfg->retry_interval_ms = 10 * 1000;
	cfg->max_retries = 5;
	cfg->max_queued = 100;
}

/* "a.b.c.d:port" or "[v6]:port" into *ss. */
static int parse_hostport(const char *s, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;
	long long port;

	memset(ss, 0, sizeof(*ss));
	if (!s)
		return -EINVAL;
	colon = strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 2 || s[hl - 1] != ']')
			return -EINVAL;
		h = s + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host) || gw_parse_int(colon + 1, 1, 65535, &port))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	if (s[0] == '[')
		return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
	return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

/* The machine compares addresses bytewise: keep only family, port and address. */
static void to_addr(const struct sockaddr *sa, struct mqttsn_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
		struct sockaddr_in6 n = { 0 };

		n.sin6_family = AF_INET6;
		n.sin6_port = in->sin6_port;
		n.sin6_addr = in->sin6_addr;
		n.sin6_scope_id = in->sin6_scope_id;
		memcpy(a->data, &n, sizeof(n));
		a->len = sizeof(n);
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		struct sockaddr_in n = { 0 };

		n.sin_family = AF_INET;
		n.sin_port = in->sin_port;
		n.sin_addr = in->sin_addr;
		memcpy(a->data, &n, sizeof(n));
		a->len = sizeof(n);
	}
}

static void on_send_done(uv_udp_send_t *req, int status)
{
	(void)status;
	gw_free(container_of(req, struct send_req, req));
}

static void udp_send(struct mqttsn_server *s, const struct sockaddr *to, const uint8_t *buf,
		     size_t len)
{
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned int)len);
	struct send_req *r;
	int rc;

	rc = uv_udp_try_send(&s->udp, &b, 1, to);
	if (rc >= 0 || (rc != UV_EAGAIN && rc != UV_ENOSYS))
		return; /* sent, or lost as UDP may lose it */
	r = gw_malloc(sizeof(*r) + len);
	if (!r)
		return;
	memcpy(r->data, buf, len);
	b = uv_buf_init((char *)r->data, (unsigned int)len);
	if (uv_udp_send(&r->req, &s->udp, &b, 1, to, on_send_done))
		gw_free(r);
}

/* ---------------------------------------------------------------- ops */

static void send_to(struct mqttsn_server *s, const struct mqttsn_addr *to, const uint8_t *buf,
		    size_t len)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, to->data, GW_MIN((size_t)to->len, sizeof(ss)));
	udp_send(s, (const struct sockaddr *)&ss, buf, len);
}

/* true if the datagram is an acknowledgement that waits for the broker (kept or dropped). */
static bool ack_held(struct mqttsn_server *s, const struct mqttsn_addr *to, const uint8_t *buf,
		     size_t len)
{
	struct ack_wait *w = s->capture;
	struct mqttsn_msg m;
	struct gw_list *pos;
	uint16_t mid;

	s->capture = NULL;
	if (mqttsn_decode(buf, len, &m) <= 0 ||
	    (m.type != MQTTSN_PUBACK && m.type != MQTTSN_PUBREC))
		return false;
	mid = m.type == MQTTSN_PUBACK ? m.ack.msg_id : m.msgid.msg_id;
	if (w) {
		/* A refusal (PUBACK with an error) is not held: nothing was published. */
		if ((m.type == MQTTSN_PUBACK && m.ack.rc != MQTTSN_RC_ACCEPTED) ||
		    len > sizeof(w->data))
			return false;
		memcpy(w->data, buf, len);
		w->len = len;
		w->to = *to;
		w->type = m.type;
		w->msg_id = mid;
		w->captured = true;
		return true;
	}
	gw_list_for_each (pos, &s->acks_waiting) {
		w = gw_list_entry(pos, struct ack_wait, link);
		if (w->captured && w->type == m.type && w->msg_id == mid &&
		    !memcmp(&w->to, to, sizeof(*to)))
			return true;
	}
	return false;
}

static void op_send(void *arg, const struct mqttsn_addr *to, const uint8_t *buf, size_t len)
{
	struct mqttsn_server *s = arg;

	if ((s->capture || !gw_list_empty(&s->acks_waiting)) && ack_held(s, to, buf, len))
		return;
	send_to(s, to, buf, len);
}

static void on_acked(void *arg, int status)
{
	struct ack_wait *w = arg;
	struct mqttsn_server *s = w->s;

	(void)status;
	if (!w->pending) {
		w->fired = true; /* inside the publish: the machine's ack goes out as it is */
		return;
	}
	if (s) {
		gw_list_del(&w->link);
		if (s->capture == w)
			s->capture = NULL;
		if (w->captured)
			send_to(s, &w->to, w->data, w->len);
	}
	gw_free(w);
}

/* The server stops: acknowledgements still held are never sent (their callbacks only free). */
static void acks_detach(struct mqttsn_server *s)
{
	s->capture = NULL;
	while (!gw_list_empty(&s->acks_waiting)) {
		struct ack_wait *w = gw_list_first(&s->acks_waiting, struct ack_wait, link);

		gw_list_del(&w->link);
		w->s = NULL;
	}
}

static void op_broadcast(void *arg, const uint8_t *buf, size_t len)
{
	struct mqttsn_server *s = arg;

	if (s->has_mcast)
		udp_send(s, (const struct sockaddr *)&s->mcast_addr, buf, len);
}

static void on_brk_deliver(void *arg, const struct brk_delivery *d)
{
	struct mqttsn_client *c = arg;

	mqttsn_gw_on_deliver(c->gw, c, d->topic, d->payload, d->qos, d->retain, gw_mono_ms());
}

static int op_connect(void *arg, struct mqttsn_client *c, const struct mqttsn_connect_info *info,
		      void **session)
{
	struct mqttsn_server *s = arg;
	char id[MQTTSN_CLIENT_ID_MAX + 1];
	struct brk_client_opts o = { 0 };
	struct brk_client *bc = NULL;
	int rc;

	if (info->client_id.len > MQTTSN_CLIENT_ID_MAX)
		return -EINVAL;
	memcpy(id, info->client_id.p, info->client_id.len);
	id[info->client_id.len] = 0;
	o.client_id = id;
	o.clean_start = info->clean_session;
	/* MQTT-SN's clean session off: the broker keeps the session as MQTT 3.1.1 would. */
	o.session_expiry = info->clean_session ? 0 : 0xffffffffu;
	o.will = NULL; /* the machine publishes wills itself (they can change: 6.4) */
	o.deliver = on_brk_deliver;
	o.arg = c;
	/* A remote device: under acl_file like any network client (no user name in MQTT-SN). */
	o.acl = true;
	rc = brk_client_new(s->brk, &o, &bc, NULL);
	if (rc < 0) {
		gw_log(s->lg, LOG_WARNING, LOGM, "client %s refused by the broker: %d", id, rc);
		return rc;
	}
	gw_log(s->lg, LOG_INFO, LOGM, "client %s connected (keepalive %us)", id,
	       (unsigned int)info->keepalive_s);
	*session = bc;
	return 0;
}

static void op_disconnect(void *arg, struct mqttsn_client *c, void *session)
{
	struct mqttsn_server *s = arg;

	gw_log(s->lg, LOG_INFO, LOGM, "client %s detached (%s)", c->client_id,
	       mqttsn_cstate_name(c->state));
	brk_client_free(session, false);
}

static int op_subscribe(void *arg, void *session, struct gw_slice filter, uint8_t qos)
{
	(void)arg;
	return brk_client_subscribe(session, filter, qos, 0, 0);
}

static int op_unsubscribe(void *arg, void *session, struct gw_slice filter)
{
	(void)arg;
	return brk_client_unsubscribe(session, filter);
}

static int op_publish(void *arg, void *session, struct gw_slice topic, struct gw_slice payload,
		      uint8_t qos, bool retain)
{
	struct mqttsn_server *s = arg;
	struct brk_pub p = { .topic = topic, .payload = payload, .qos = qos, .retain = retain };
	struct ack_wait *w;
	int rc;

	if (!session)
		return brk_publish_anon(s->brk, &p);
	if (!qos)
		return brk_client_publish(session, &p);
	w = gw_calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->s = s;
	s->capture = NULL;
	rc = brk_client_publish_acked(session, &p, on_acked, w);
	if (rc < 0 || w->fired) {
		gw_free(w);
		return rc;
	}
	w->pending = true;
	gw_list_add_tail(&s->acks_waiting, &w->link);
	s->capture = w;
	return 0;
}

static const struct mqttsn_gw_ops uv_ops = {
	.send = op_send,
	.broadcast = op_broadcast,
	.connect = op_connect,
	.disconnect = op_disconnect,
	.subscribe = op_subscribe,
	.unsubscribe = op_unsubscribe,
	.publish = op_publish,
};

/* ------------------------------------------------------------- handles */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mqttsn_server *s = h->data;

	(void)suggested;
	/* One loop thread: each datagram is consumed before the next alloc. */
	*buf = uv_buf_init((char *)s->rxbuf, sizeof(s->rxbuf));
}

/* [mqttsn] allow_from: is @from inside one of the ranges? */
static bool allowed(const struct mqttsn_server *s, const struct sockaddr *from)
{
	unsigned int i;

	for (i = 0; i < s->cfg.n_allow_from; i++)
		if (gw_cidr_match(&s->cfg.allow_from[i], from))
			return true;
	return false;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
		    unsigned int flags)
{
	struct mqttsn_server *s = h->data;
	struct mqttsn_addr a;

	/* nread 0 with no address: nothing more to read; with one, an empty datagram (malformed). */
	if (nread < 0 || !from || !s->gw_ready)
		return;
	if (flags & UV_UDP_PARTIAL) {
		/* Longer than any MQTT-SN message. */
		s->gw->stats.malformed++;
		return;
	}
	if (s->cfg.n_allow_from && !allowed(s, from)) {
		/* Not even decoded: a sender outside allow_from gets no answer at all. */
		s->gw->stats.denied++;
		return;
	}
	to_addr(from, &a);
	if (h == &s->mudp)
		mqttsn_gw_on_group_datagram(s->gw, &a, (const uint8_t *)buf->base, (size_t)nread,
					    gw_mono_ms());
	else
		mqttsn_gw_on_datagram(s->gw, &a, (const uint8_t *)buf->base, (size_t)nread,
				      gw_mono_ms());
}

static void on_timer(uv_timer_t *t)
{
	struct mqttsn_server *s = t->data;

	mqttsn_gw_on_tick(s->gw, gw_mono_ms());
}

int mqttsn_server_new(struct uv_loop_s *loop, struct brk *broker, const struct mqttsn_config *cfg,
		      const struct gw_logger *lg, struct mqttsn_server **out)
{
	struct mqttsn_server *s = NULL;
	int rc = -ENOMEM;

	s = gw_calloc(1, sizeof(*s));
	if (!s)
		goto err;
	s->gw = gw_calloc(1, sizeof(*s->gw));
	if (!s->gw)
		goto err;
	gw_list_init(&s->acks_waiting);
	s->loop = loop;
	s->brk = broker;
	s->lg = lg;
	s->cfg = *cfg;
	rc = parse_hostport(cfg->listen, &s->listen_addr);
	if (rc)
		goto err;
	if (cfg->multicast && cfg->multicast[0]) {
		rc = parse_hostport(cfg->multicast, &s->mcast_addr);
		if (rc)
			goto err;
		s->has_mcast = true;
	}
	mqttsn_gw_config_defaults(&s->gcfg);
	s->gcfg.gateway_id = cfg->gateway_id;
	s->gcfg.advertise_interval_ms = (uint32_t)GW_MIN(cfg->advertise_interval_ms, UINT32_MAX);
	s->gcfg.max_clients = cfg->max_clients;
	s->gcfg.retry_interval_ms = (uint32_t)GW_MIN(cfg->retry_interval_ms, UINT32_MAX);
	s->gcfg.max_retries = cfg->max_retries;
	if (cfg->max_queued)
		s->gcfg.max_queued = cfg->max_queued;
	s->gcfg.mountpoint = cfg->mountpoint;
	s->gcfg.predefined = cfg->predefined;
	s->gcfg.n_predefined = cfg->n_predefined;
	rc = mqttsn_gw_init(s->gw, &s->gcfg, &uv_ops, s, gw_mono_ms());
	if (rc)
		goto err;
	s->gw_ready = true;
	*out = s;
	return 0;
err:
	if (s)
		gw_free(s->gw);
	gw_free(s);
	return rc;
}

int mqttsn_server_start(struct mqttsn_server *s)
{
	uint64_t tick_ms = GW_MIN(s->cfg.retry_interval_ms, 1000);
	int rc;

	rc = uv_udp_init(s->loop, &s->udp);
	if (rc)
		return rc;
	s->udp.data = s;
	s->open_handles++;
	rc = uv_timer_init(s->loop, &s->timer);
	if (rc)
		return rc;
	s->timer.data = s;
	s->open_handles++;
	rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&s->listen_addr, 0);
	if (rc)
		goto fail;
	rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
	if (rc)
		goto fail;
	if (s->has_mcast) {
		struct sockaddr_storage any = s->mcast_addr;
		char group[64] = "";

		/* Clients search on the group's port (Paho: 1883); replies go from udp. */
		if (any.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&any)->sin6_addr = in6addr_any;
		else
			((struct sockaddr_in *)&any)->sin_addr.s_addr = htonl(INADDR_ANY);
		uv_ip_name((const struct sockaddr *)&s->mcast_addr, group, sizeof(group));
		rc = uv_udp_init(s->loop, &s->mudp);
		if (rc)
			goto fail;
		s->mudp.data = s;
		s->open_handles++;
		rc = uv_udp_bind(&s->mudp, (const struct sockaddr *)&any, UV_UDP_REUSEADDR);
		if (!rc)
			rc = uv_udp_set_membership(&s->mudp, group, NULL, UV_JOIN_GROUP);
		if (!rc)
			rc = uv_udp_recv_start(&s->mudp, on_alloc, on_recv);
		if (rc)
			goto fail;
	}
	rc = uv_timer_start(&s->timer, on_timer, tick_ms ? tick_ms : 1000,
			    tick_ms ? tick_ms : 1000);
	if (rc)
		goto fail;
	gw_log(s->lg, LOG_INFO, LOGM, "listening on %s%s%s", s->cfg.listen,
	       s->has_mcast ? ", multicast " : "", s->has_mcast ? s->cfg.multicast : "");
	return 0;
fail:
	gw_log(s->lg, LOG_ERR, LOGM, "cannot listen on %s: %s", s->cfg.listen, uv_strerror(rc));
	return rc;
}

static void on_closed(uv_handle_t *h)
{
	struct mqttsn_server *s = h->data;

	if (--s->open_handles == 0 && s->done)
		s->done(s->done_arg);
}

void mqttsn_server_stop(struct mqttsn_server *s, void (*done)(void *arg), void *arg)
{
	unsigned int n = s->open_handles;

	s->done = done;
	s->done_arg = arg;
	if (s->gw_ready) {
		mqttsn_gw_fini(s->gw);
		s->gw_ready = false;
	}
	acks_detach(s);
	if (!n) {
		if (done)
			done(arg);
		return;
	}
	/* Handles were initialised in this order; open_handles counts down in on_closed. */
	uv_close((uv_handle_t *)&s->udp, on_closed);
	if (n >= 2)
		uv_close((uv_handle_t *)&s->timer, on_closed);
	if (n >= 3)
		uv_close((uv_handle_t *)&s->mudp, on_closed);
}

void mqttsn_server_free(struct mqttsn_server *s)
{
	if (!s)
		return;
	if (s->gw_ready)
		mqttsn_gw_fini(s->gw);
	acks_detach(s);
	gw_free(s->gw);
	gw_free(s);
}

void mqttsn_server_get_stats(const struct mqttsn_server *s, struct mqttsn_stats *out)
{
	*out = s->gw->stats;
}
