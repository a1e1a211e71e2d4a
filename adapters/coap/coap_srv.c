/*
 * coap_srv.c - the CoAP server's core (coap_srv_int.h): clients and their
 * broker sessions, observations, heartbeat expiry and the rate limit. Sans
 * I/O: time comes with each event, the broker and libcoap are behind ops.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "coap_srv_int.h"

void coapsrv_config_defaults(struct coapsrv_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = "127.0.0.1:5683";
	cfg->notify_type = COAPSRV_NOTIFY_QOS;
	cfg->max_clients = 1000;
	cfg->max_observations = 10000;
	cfg->max_queued = 100;
	cfg->max_payload = 65536;
	cfg->heartbeat_ms = 30 * 1000;
	cfg->rate_limit = 1000;
}

/* A pending notification: a message delivered while its client was subscribing. */
struct pend {
	struct gw_list node; /* core->pending */
	struct coapsrv_obs *o;
	uint8_t qos;
	size_t len;
	uint8_t data[];
};

static uint64_t next_rand(struct coapsrv_core *core)
{
	/* xorshift64*: the tokens only need to be unguessable from outside
	 * without a look at the seed, which the glue draws from the OS. */
	uint64_t x = core->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	core->rng = x;
	return x * 2685821657736338717ULL;
}

int coapsrv_core_init(struct coapsrv_core *core, const struct coapsrv_config *cfg,
		      const struct coapsrv_ops *ops, void *arg, uint64_t seed)
{
	memset(core, 0, sizeof(*core));
	if (!cfg->max_clients)
		return -EINVAL;
	core->cfg = *cfg;
	core->ops = ops;
	core->arg = arg;
	core->mountpoint = gw_slice_cstr(cfg->mountpoint);
	gw_list_init(&core->clients);
	gw_list_init(&core->pending);
	core->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	return 0;
}

static void drop_pending(struct coapsrv_core *core, struct coapsrv_obs *o)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &core->pending) {
		struct pend *p = gw_list_entry(pos, struct pend, node);

		if (!o || p->o == o) {
			gw_list_del(&p->node);
			gw_free(p);
		}
	}
}

/* Ends observation @o; @unsub: take its subscription out of the broker too. */
static void obs_free(struct coapsrv_core *core, struct coapsrv_obs *o, bool unsub)
{
	struct coapsrv_client *c = o->c;

	if (unsub && c->session)
		core->ops->unsubscribe(
			core->arg, c->session,
			(struct gw_slice){ (const uint8_t *)o->filter, o->filter_len });
	drop_pending(core, o);
	core->ops->forget(core->arg, o);
	gw_list_del(&o->node);
	c->n_obs--;
	core->n_obs--;
	gw_free(o);
}

static void client_free(struct coapsrv_core *core, struct coapsrv_client *c)
{
	while (!gw_list_empty(&c->obs))
		obs_free(core, gw_list_first(&c->obs, struct coapsrv_obs, node), false);
	if (c->session)
		core->ops->detach(core->arg, c, c->session);
	gw_list_del(&c->all);
	core->n_clients--;
	gw_free(c);
}

void coapsrv_core_fini(struct coapsrv_core *core)
{
	drop_pending(core, NULL);
	while (!gw_list_empty(&core->clients))
		client_free(core, gw_list_first(&core->clients, struct coapsrv_client, all));
}

struct coapsrv_client *coapsrv_find_client(struct coapsrv_core *core, struct gw_slice client_id)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &core->clients) {
		struct coapsrv_client *c = gw_list_entry(pos, struct coapsrv_client, all);

		if (gw_slice_eq_cstr(client_id, c->client_id))
			return c;
	}
	return NULL;
}

static struct coapsrv_client *find_by_addr(struct coapsrv_core *core, const uint8_t *addr,
					   uint8_t len)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &core->clients) {
		struct coapsrv_client *c = gw_list_entry(pos, struct coapsrv_client, all);

		if (!c->connection && c->addr_len == len && !memcmp(c->addr, addr, len))
			return c;
	}
	return NULL;
}

static void set_resp(struct coapsrv_resp *r, uint8_t code, const char *text)
{
	r->code = code;
	r->payload = gw_slice_cstr(text);
}

/* Counts a refusal by its code. */
static void count_code(struct coapsrv_core *core, uint8_t code)
{
	switch (code) {
	case COAPSRV_BAD_REQUEST:
		core->stats.bad_request++;
		break;
	case COAPSRV_UNAUTHORIZED:
	case COAPSRV_FORBIDDEN:
		core->stats.unauthorized++;
		break;
	case COAPSRV_NOT_FOUND:
		core->stats.not_found++;
		break;
	case COAPSRV_BAD_METHOD:
		core->stats.bad_method++;
		break;
	case COAPSRV_TOO_LARGE:
		core->stats.too_large++;
		break;
	default:
		break;
	}
}

/*
 * The rate limit: a token bucket of rate_limit requests per second (a burst
 * of one second's worth) per address, in a fixed table indexed by a hash of
 * the address. Two addresses on one slot share it, which errs on the strict
 * side; the table never grows, whatever the number of addresses.
 */
static bool rate_ok(struct coapsrv_core *core, const struct coapsrv_peer *peer, int64_t now)
{
	uint64_t cap = (uint64_t)core->cfg.rate_limit * 1000;
	struct coapsrv_bucket *b;
	uint32_t h = 2166136261u;
	uint64_t t;
	unsigned int i;

	if (!core->cfg.rate_limit)
		return true;
	for (i = 0; i < peer->len; i++)
		h = (h ^ peer->addr[i]) * 16777619u;
	b = &core->buckets[h & (COAPSRV_BUCKETS - 1)];
	if (b->hash != h || b->last_ms == 0) {
		b->hash = h;
		b->tokens_milli = (uint32_t)GW_MIN(cap, UINT32_MAX);
		b->last_ms = now;
	}
	t = b->tokens_milli;
	if (now > b->last_ms)
		t += (uint64_t)(now - b->last_ms) * core->cfg.rate_limit;
	b->last_ms = now;
	t = GW_MIN(t, cap);
	if (t < 1000) {
		b->tokens_milli = (uint32_t)t;
		return false;
	}
	b->tokens_milli = (uint32_t)GW_MIN(t - 1000, UINT32_MAX);
	return true;
}

/* A new client with id @id (connection: by POST mqtt/connection). */
static int client_new(struct coapsrv_core *core, const struct coapsrv_peer *peer,
		      struct gw_slice id, const struct coapsrv_req *req, bool connection,
		      int64_t now, struct coapsrv_client **out, struct coapsrv_resp *resp)
{
	struct coapsrv_attach info = { 0 };
	struct coapsrv_client *c;
	int rc;

	if (core->n_clients >= core->cfg.max_clients) {
		core->stats.clients_refused++;
		set_resp(resp, COAPSRV_UNAVAILABLE, "too many clients");
		return -ENOBUFS;
	}
	if (id.len > COAPSRV_ID_MAX) {
		core->stats.clients_refused++;
		set_resp(resp, COAPSRV_BAD_REQUEST, "bad clientid");
		return -EINVAL;
	}
	c = gw_calloc(1, sizeof(*c));
	if (!c) {
		set_resp(resp, COAPSRV_INTERNAL, "out of memory");
		return -ENOMEM;
	}
	c->core = core;
	c->connection = connection;
	memcpy(c->client_id, id.p, id.len);
	c->addr_len = peer->len;
	memcpy(c->addr, peer->addr, GW_MIN((size_t)peer->len, sizeof(c->addr)));
	c->last_ms = now;
	gw_list_init(&c->obs);
	info.client_id = id;
	info.username = req->username;
	info.password = req->password;
	info.has_username = req->has_username;
	rc = core->ops->attach(core->arg, c, &info, &c->session);
	if (rc) {
		core->stats.clients_refused++;
		if (rc == -EACCES)
			set_resp(resp, COAPSRV_UNAUTHORIZED, "not authorized");
		else
			set_resp(resp, COAPSRV_UNAVAILABLE, "the broker refused the session");
		gw_free(c);
		return rc;
	}
	if (connection) {
		do
			c->token = (uint32_t)(next_rand(core) >> 32);
		while (!c->token);
	}
	gw_list_add_tail(&core->clients, &c->all);
	core->n_clients++;
	core->stats.clients_total++;
	*out = c;
	return 0;
}

static bool token_ok(const struct coapsrv_client *c, struct gw_slice tok)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u", c->token);

	return c->connection && n > 0 && tok.len == (size_t)n && !memcmp(buf, tok.p, tok.len);
}

/* The client a ps/ request acts as, made if connectionless; NULL: *resp says why. */
static struct coapsrv_client *client_of(struct coapsrv_core *core, const struct coapsrv_peer *peer,
					const struct coapsrv_req *req, int64_t now,
					struct coapsrv_resp *resp)
{
	struct coapsrv_client *c;
	char name[COAPSRV_ID_MAX + 1];
	struct coapsrv_req anon;
	struct gw_slice id;

	if (req->has_token) {
		c = req->has_clientid ? coapsrv_find_client(core, req->clientid) : NULL;
		if (!c || !token_ok(c, req->token)) {
			set_resp(resp, COAPSRV_UNAUTHORIZED, "bad clientid or token");
			return NULL;
		}
		return c;
	}
	if (core->cfg.connection_required) {
		set_resp(resp, COAPSRV_UNAUTHORIZED, "connection required");
		return NULL;
	}
	c = find_by_addr(core, peer->addr, peer->len);
	if (c && (!req->has_clientid || gw_slice_eq_cstr(req->clientid, c->client_id)))
		return c;
	if (c)
		client_free(core, c); /* the address now speaks as another client */
	if (req->has_clientid) {
		id = req->clientid;
		/* A connected client's id is not for connectionless use. */
		c = coapsrv_find_client(core, id);
		if (c && c->connection) {
			set_resp(resp, COAPSRV_UNAUTHORIZED, "clientid in use: give its token");
			return NULL;
		}
	} else {
		snprintf(name, sizeof(name), "coap-%s", peer->name ? peer->name : "anon");
		id = gw_slice_cstr(name);
	}
	/*
	 * A user name is taken only from POST mqtt/connection, where the glue
	 * checks its password: a connectionless request's username= would let
	 * anyone claim another user's acl_file rights.
	 */
	anon = *req;
	anon.has_username = false;
	anon.username = (struct gw_slice){ 0 };
	anon.password = (struct gw_slice){ 0 };
	if (client_new(core, peer, id, &anon, false, now, &c, resp))
		return NULL;
	return c;
}

/* The filter or topic with the mountpoint in front, in core->fullbuf. */
static int mount(struct coapsrv_core *core, struct gw_slice t, struct gw_slice *out)
{
	size_t m = core->mountpoint.len;

	if (m + t.len > sizeof(core->fullbuf))
		return -EMSGSIZE;
	if (m)
		memcpy(core->fullbuf, core->mountpoint.p, m);
	memcpy(core->fullbuf + m, t.p, t.len);
	*out = (struct gw_slice){ (const uint8_t *)core->fullbuf, m + t.len };
	return 0;
}

static struct coapsrv_obs *find_obs(struct coapsrv_client *c, struct gw_slice filter)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &c->obs) {
		struct coapsrv_obs *o = gw_list_entry(pos, struct coapsrv_obs, node);

		if (o->filter_len == filter.len && !memcmp(o->filter, filter.p, filter.len))
			return o;
	}
	return NULL;
}

static void obs_set_peer(struct coapsrv_obs *o, const struct coapsrv_peer *peer,
			 struct gw_slice tok)
{
	o->link = peer->link;
	o->tok_len = (uint8_t)GW_MIN(tok.len, sizeof(o->tok));
	memcpy(o->tok, tok.p, o->tok_len);
	o->addr_len = peer->len;
	memcpy(o->addr, peer->addr, GW_MIN((size_t)peer->len, sizeof(o->addr)));
}

static void do_subscribe(struct coapsrv_core *core, struct coapsrv_client *c,
			 const struct coapsrv_peer *peer, const struct coapsrv_req *req,
			 struct gw_slice tok, struct coapsrv_resp *resp)
{
	struct gw_slice filter;
	struct coapsrv_obs *o;
	int rc;

	if (mount(core, req->topic, &filter)) {
		set_resp(resp, COAPSRV_BAD_REQUEST, "topic too long");
		return;
	}
	o = find_obs(c, filter);
	if (o) {
		/* The same filter again (a re-registration, maybe with a new
		 * token): one subscription, the latest token gets the
		 * notifications, as EMQX keeps one per topic. */
		core->ops->forget(core->arg, o);
		obs_set_peer(o, peer, tok);
	} else {
		if (core->n_obs >= core->cfg.max_observations) {
			core->stats.observations_refused++;
			set_resp(resp, COAPSRV_UNAVAILABLE, "too many observations");
			return;
		}
		o = gw_calloc(1, sizeof(*o) + filter.len);
		if (!o) {
			set_resp(resp, COAPSRV_INTERNAL, "out of memory");
			return;
		}
		o->c = c;
		o->filter_len = (uint16_t)filter.len;
		memcpy(o->filter, filter.p, filter.len);
		obs_set_peer(o, peer, tok);
		o->last_con_ms = core->now_ms;
		/* MQTT 5 subscription identifiers run 1 .. 268435455 [MQTT-3.8.2.1.2]. */
		if (++c->next_sub_id > 268435455)
			c->next_sub_id = 1;
		o->sub_id = c->next_sub_id;
		gw_list_add_tail(&c->obs, &o->node);
		c->n_obs++;
		core->n_obs++;
	}
	o->qos = req->qos;
	/* Retained messages come during the call: held until the response went out. */
	c->holding = true;
	rc = core->ops->subscribe(core->arg, c->session, filter, req->qos, o->sub_id);
	c->holding = false;
	if (rc) {
		obs_free(core, o, false);
		if (rc == -ENOTCONN) {
			/* another client took the session over: this one is over */
			client_free(core, c);
			set_resp(resp, COAPSRV_UNAVAILABLE, "session taken over: try again");
			return;
		}
		if (rc == -EACCES) {
			set_resp(resp, COAPSRV_FORBIDDEN, "not authorized");
			return;
		}
		set_resp(resp, COAPSRV_INTERNAL, "subscribe failed");
		return;
	}
	set_resp(resp, COAPSRV_CONTENT, "");
	resp->observe = true;
	resp->seq = o->seq;
	resp->obs = o;
}

static void do_unsubscribe(struct coapsrv_core *core, struct coapsrv_client *c,
			   const struct coapsrv_req *req, struct coapsrv_resp *resp)
{
	struct gw_slice filter;
	struct coapsrv_obs *o;

	if (mount(core, req->topic, &filter)) {
		set_resp(resp, COAPSRV_BAD_REQUEST, "topic too long");
		return;
	}
	o = find_obs(c, filter);
	if (o)
		obs_free(core, o, true);
	/* RFC 7641 3.6: a GET with Observe 1 is answered as a plain GET. */
	set_resp(resp, COAPSRV_CONTENT, "");
}

static void do_connect(struct coapsrv_core *core, const struct coapsrv_peer *peer,
		       const struct coapsrv_req *req, int64_t now, struct coapsrv_resp *resp)
{
	struct coapsrv_client *c = coapsrv_find_client(core, req->clientid);

	/* A new connection with the id of an existing one takes it over. */
	if (c)
		client_free(core, c);
	if (client_new(core, peer, req->clientid, req, true, now, &c, resp))
		return;
	snprintf(core->textbuf, sizeof(core->textbuf), "%u", c->token);
	set_resp(resp, COAPSRV_CREATED, core->textbuf);
}

bool coapsrv_on_request(struct coapsrv_core *core, const struct coapsrv_peer *peer,
			const struct coapsrv_raw *raw, struct gw_slice tok, struct gw_slice payload,
			int64_t now, struct coapsrv_resp *resp)
{
	struct coapsrv_client *c;
	struct coapsrv_req req;

	memset(resp, 0, sizeof(*resp));
	core->now_ms = now;
	core->stats.requests++;
	if (!rate_ok(core, peer, now)) {
		core->stats.rate_limited++;
		return false;
	}
	if (coapsrv_route(raw, core->topicbuf, sizeof(core->topicbuf), &req)) {
		set_resp(resp, req.code, req.reason);
		goto out;
	}
	switch (req.op) {
	case COAPSRV_OP_CONNECT:
		do_connect(core, peer, &req, now, resp);
		goto out;
	case COAPSRV_OP_HEARTBEAT:
	case COAPSRV_OP_CLOSE:
		c = coapsrv_find_client(core, req.clientid);
		if (!c || !token_ok(c, req.token)) {
			set_resp(resp, COAPSRV_UNAUTHORIZED, "bad clientid or token");
			goto out;
		}
		if (req.op == COAPSRV_OP_CLOSE) {
			client_free(core, c);
			set_resp(resp, COAPSRV_DELETED, "");
		} else {
			c->last_ms = now;
			set_resp(resp, COAPSRV_CHANGED, "");
		}
		goto out;
	case COAPSRV_OP_PUBLISH:
		/* Checked before a client is made for it. */
		if (payload.len > core->cfg.max_payload) {
			set_resp(resp, COAPSRV_TOO_LARGE, "payload too large");
			goto out;
		}
		break;
	default:
		break;
	}
	c = client_of(core, peer, &req, now, resp);
	if (!c)
		goto out;
	c->last_ms = now;
	switch (req.op) {
	case COAPSRV_OP_PUBLISH:
		if (mount(core, req.topic, &resp->pub_topic)) {
			set_resp(resp, COAPSRV_BAD_REQUEST, "topic too long");
			break;
		}
		resp->code = 0;
		resp->pub_client = c;
		resp->pub_qos = req.qos;
		resp->pub_retain = req.retain;
		resp->has_expiry = req.has_expiry;
		resp->expiry = req.expiry;
		break;
	case COAPSRV_OP_SUBSCRIBE:
		do_subscribe(core, c, peer, &req, tok, resp);
		break;
	default:
		do_unsubscribe(core, c, &req, resp);
		break;
	}
out:
	count_code(core, resp->code);
	return true;
}

/* One notification of @o, unless its client has max_queued CONs outstanding. */
static void notify_one(struct coapsrv_core *core, struct coapsrv_obs *o, struct gw_slice payload,
		       uint8_t qos)
{
	struct coapsrv_client *c = o->c;
	bool con = core->cfg.notify_type == COAPSRV_NOTIFY_CON ||
		   (core->cfg.notify_type == COAPSRV_NOTIFY_QOS && qos >= 1);

	/*
	 * RFC 7641 4.5: an observer that only gets NONs may be long gone and
	 * would never say so (libcoap 4.3.1 does not report an RST to a NON):
	 * one notification per heartbeat goes as a CON, whose RST or timeout
	 * ends the observation.
	 */
	if (!con && core->cfg.heartbeat_ms &&
	    core->now_ms - o->last_con_ms >= (int64_t)core->cfg.heartbeat_ms)
		con = true;

	if (con && c->n_inflight >= core->cfg.max_queued) {
		core->stats.notify_dropped++;
		return;
	}
	/* RFC 7641 3.4: 24-bit sequence numbers, increasing. */
	o->seq = (o->seq + 1) & 0xFFFFFF;
	if (core->ops->notify(core->arg, o, o->seq, con, payload)) {
		core->stats.notify_dropped++;
		return;
	}
	core->stats.notifications++;
	if (con) {
		c->n_inflight++;
		o->last_con_ms = core->now_ms;
	}
}

static void hold(struct coapsrv_core *core, struct coapsrv_obs *o, struct gw_slice payload,
		 uint8_t qos)
{
	struct pend *p;
	struct gw_list *pos;
	uint32_t n = 0;

	gw_list_for_each (pos, &core->pending)
		n++;
	if (n >= core->cfg.max_queued) {
		core->stats.notify_dropped++;
		return;
	}
	p = gw_malloc(sizeof(*p) + payload.len);
	if (!p) {
		core->stats.notify_dropped++;
		return;
	}
	p->o = o;
	p->qos = qos;
	p->len = payload.len;
	if (payload.len)
		memcpy(p->data, payload.p, payload.len);
	gw_list_add_tail(&core->pending, &p->node);
}

void coapsrv_on_deliver(struct coapsrv_core *core, struct coapsrv_client *c, struct gw_slice topic,
			struct gw_slice payload, uint8_t qos, const uint32_t *sub_ids,
			unsigned int n_sub_ids)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &c->obs) {
		struct coapsrv_obs *o = gw_list_entry(pos, struct coapsrv_obs, node);
		bool hit = false;
		unsigned int i;

		if (n_sub_ids) {
			for (i = 0; i < n_sub_ids && !hit; i++)
				hit = sub_ids[i] == o->sub_id;
		} else {
			hit = coapsrv_topic_match(
				(struct gw_slice){ (const uint8_t *)o->filter, o->filter_len },
				topic);
		}
		if (!hit)
			continue;
		if (c->holding)
			hold(core, o, payload, qos);
		else
			notify_one(core, o, payload, qos);
	}
}

bool coapsrv_has_pending(const struct coapsrv_core *core)
{
	return !gw_list_empty(&core->pending);
}

void coapsrv_flush(struct coapsrv_core *core)
{
	while (!gw_list_empty(&core->pending)) {
		struct pend *p = gw_list_first(&core->pending, struct pend, node);

		gw_list_del(&p->node);
		notify_one(core, p->o, (struct gw_slice){ p->data, p->len }, p->qos);
		gw_free(p);
	}
}

void coapsrv_on_reset(struct coapsrv_core *core, const uint8_t *addr, uint8_t addr_len,
		      struct gw_slice tok, bool con_failed)
{
	struct gw_list *cp, *op;

	gw_list_for_each (cp, &core->clients) {
		struct coapsrv_client *c = gw_list_entry(cp, struct coapsrv_client, all);

		gw_list_for_each (op, &c->obs) {
			struct coapsrv_obs *o = gw_list_entry(op, struct coapsrv_obs, node);

			if (o->addr_len != addr_len || memcmp(o->addr, addr, addr_len) ||
			    o->tok_len != tok.len || memcmp(o->tok, tok.p, tok.len))
				continue;
			if (con_failed && c->n_inflight)
				c->n_inflight--;
			obs_free(core, o, true);
			return;
		}
	}
}

void coapsrv_drop_client(struct coapsrv_core *core, struct coapsrv_client *c)
{
	client_free(core, c);
}

void coapsrv_on_idle(struct coapsrv_core *core)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &core->clients)
		gw_list_entry(pos, struct coapsrv_client, all)->n_inflight = 0;
}

void coapsrv_on_tick(struct coapsrv_core *core, int64_t now)
{
	struct gw_list *pos, *tmp;

	core->now_ms = now;
	if (!core->cfg.heartbeat_ms)
		return;
	gw_list_for_each_safe (pos, tmp, &core->clients) {
		struct coapsrv_client *c = gw_list_entry(pos, struct coapsrv_client, all);

		/*
		 * A connection must send heartbeats. A connectionless client
		 * that observes lives as long as its observations do (an RST
		 * or a failed CON notification ends them): it has no way to
		 * send a heartbeat.
		 */
		if (!c->connection && c->n_obs)
			continue;
		if (now - c->last_ms > (int64_t)core->cfg.heartbeat_ms) {
			core->stats.clients_expired++;
			client_free(core, c);
		}
	}
}

void coapsrv_core_stats(const struct coapsrv_core *core, struct coapsrv_stats *out)
{
	*out = core->stats;
	out->clients = core->n_clients;
	out->observations = core->n_obs;
}
