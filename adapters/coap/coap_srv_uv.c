/*
 * coap_srv_uv.c - the CoAP server on libcoap (driven by the loop through
 * coap_uv.c) and the broker's in-process API: libcoap parses the PDUs,
 * deduplicates, retransmits CON messages and reassembles block-wise
 * bodies; each request's options go to the core (coap_srv.c), whose
 * decisions become responses, broker sessions and notifications here.
 *
 * Publishes: a CON publish is answered 2.04 only once the broker has
 * accepted the message, i.e. every hold on it released (the uplink holds a
 * forwarded QoS >= 1 message until its store has committed it, DESIGN.md
 * section 1). When the hold outlives the handler the request is parked with
 * coap_register_async() (libcoap answers the CON with an empty ACK at once:
 * a separate response, RFC 7252 5.2.2) and the 2.04 follows from the
 * broker's acked callback.
 *
 * Notifications: sent by us (not libcoap's resource observers, which keep
 * only the latest state, not one notification per message), each a 2.05
 * with the observer's token and an Observe sequence number. libcoap 4.3.1
 * tells the application when a CON fails (NACK: the observation ends, RFC
 * 7641 4.5) but not when one is acknowledged, so the per-client bound on
 * CON notifications (max_queued) is a count that restarts every second and
 * whenever libcoap holds no unacknowledged message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "adapters/coap/coap_lib.h"
#include <uv.h>

#include "broker/broker.h"
#include "coap_srv_int.h"
#include "coap_uv.h"

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

/*
 * libcoap 4.3.1 reports a PDU it could not parse only in its log (and its
 * log handler takes no argument), so the count is the process's: one
 * server per process, and the client side of libcoap rarely sees any.
 */
static uint64_t malformed_seen;
/*
 * libcoap's level must be LOG_WARNING for that line to reach the handler;
 * what is printed stays at coap_uv.c's choice (errors only: its warnings
 * come once per packet), or everything when our logger is at debug.
 */
static int libcoap_print_level = LOG_ERR;

static void on_libcoap_log(coap_log_t level, const char *message)
{
	if (strstr(message, "discard malformed PDU"))
		__atomic_add_fetch(&malformed_seen, 1, __ATOMIC_RELAXED);
	if ((int)level <= libcoap_print_level)
		fprintf(stderr, "libcoap[%d]: %s", (int)level, message);
}

bool coapsrv_dtls_supported(void)
{
	return ad_coap_has_dtls();
}

/* ------------------------------------------------------------ addresses */

static void to_peer(const coap_address_t *a, struct coapsrv_peer *p, char *name, size_t namelen)
{
	char host[64] = "?";

	memset(p, 0, sizeof(*p));
	if (a->addr.sa.sa_family == AF_INET6) {
		struct sockaddr_in6 n = { 0 };

		n.sin6_family = AF_INET6;
		n.sin6_port = a->addr.sin6.sin6_port;
		n.sin6_addr = a->addr.sin6.sin6_addr;
		memcpy(p->addr, &n, sizeof(n));
		p->len = sizeof(n);
		uv_ip6_name(&n, host, sizeof(host));
		snprintf(name, namelen, "[%s]:%u", host, ntohs(n.sin6_port));
	} else {
		struct sockaddr_in n = { 0 };

		n.sin_family = AF_INET;
		n.sin_port = a->addr.sin.sin_port;
		n.sin_addr = a->addr.sin.sin_addr;
		memcpy(p->addr, &n, sizeof(n));
		p->len = sizeof(n);
		uv_ip4_name(&n, host, sizeof(host));
		snprintf(name, namelen, "%s:%u", host, ntohs(n.sin_port));
	}
	p->name = name;
}

/* ------------------------------------------------------------ core ops */

static void on_brk_deliver(void *arg, const struct brk_delivery *d)
{
	struct coapsrv_client *c = arg;

	c->core->now_ms = gw_mono_ms(); /* deliveries carry no time of their own */
	coapsrv_on_deliver(c->core, c, d->topic, d->payload, d->qos, d->sub_ids, d->n_sub_ids);
}

static int op_attach(void *arg, struct coapsrv_client *c, const struct coapsrv_attach *info,
		     void **session)
{
	struct coapsrv_server *s = arg;
	char id[COAPSRV_ID_MAX + 1], user[COAPSRV_CRED_MAX + 1];
	struct brk_client_opts o = { 0 };
	struct brk_client *bc = NULL;
	int rc;

	snprintf(id, sizeof(id), "%.*s", (int)info->client_id.len, (const char *)info->client_id.p);
	snprintf(user, sizeof(user), "%.*s", (int)info->username.len,
		 (const char *)info->username.p);
	o.client_id = id;
	o.clean_start = true;
	o.deliver = on_brk_deliver;
	o.arg = c;
	/* A remote device: under acl_file as a network client, by client id and user name. */
	o.acl = true;
	o.username = info->has_username ? user : NULL;
	rc = brk_client_new(s->brk, &o, &bc, NULL);
	if (rc < 0) {
		gw_log(s->lg, LOG_WARNING, LOGM, "client %s refused by the broker: %d", id, rc);
		return rc;
	}
	gw_log(s->lg, LOG_INFO, LOGM, "client %s attached (%s)", id,
	       c->connection ? "connection" : "connectionless");
	*session = bc;
	return 0;
}

static void op_detach(void *arg, struct coapsrv_client *c, void *session)
{
	struct coapsrv_server *s = arg;

	gw_log(s->lg, LOG_INFO, LOGM, "client %s detached", c->client_id);
	brk_client_free(session, false);
}

static int op_subscribe(void *arg, void *session, struct gw_slice filter, uint8_t qos,
			uint32_t sub_id)
{
	(void)arg;
	return brk_client_subscribe(session, filter, qos, 0, sub_id);
}

static int op_unsubscribe(void *arg, void *session, struct gw_slice filter)
{
	(void)arg;
	return brk_client_unsubscribe(session, filter);
}

static int op_notify(void *arg, struct coapsrv_obs *o, uint32_t seq, bool con,
		     struct gw_slice payload)
{
	struct coapsrv_server *s = arg;
	coap_session_t *sess = o->link;
	uint8_t buf[4];
	coap_pdu_t *pdu;

	if (!sess || !o->linked)
		return -ENOTCONN;
	pdu = coap_pdu_init(con ? COAP_MESSAGE_CON : COAP_MESSAGE_NON, COAP_RESPONSE_CODE(205),
			    coap_new_message_id(sess), coap_session_max_pdu_size(sess));
	if (!pdu)
		return -ENOMEM;
	if (!coap_add_token(pdu, o->tok_len, o->tok) ||
	    !coap_add_option(pdu, COAP_OPTION_OBSERVE, coap_encode_var_safe(buf, sizeof(buf), seq),
			     buf) ||
	    (payload.len && !coap_add_data(pdu, payload.len, payload.p))) {
		coap_delete_pdu(pdu);
		return -EMSGSIZE;
	}
	if (coap_send(sess, pdu) == COAP_INVALID_MID)
		return -EIO;
	ad_coap_uv_kick(s->cu);
	return 0;
}

static void op_forget(void *arg, struct coapsrv_obs *o)
{
	(void)arg;
	if (o->linked)
		coap_session_release(o->link);
	o->linked = false;
	o->link = NULL;
}

static const struct coapsrv_ops ops = {
	.attach = op_attach,
	.detach = op_detach,
	.subscribe = op_subscribe,
	.unsubscribe = op_unsubscribe,
	.notify = op_notify,
	.forget = op_forget,
};

/* -------------------------------------------------------------- requests */

static void respond(coap_pdu_t *response, uint8_t code, struct gw_slice payload)
{
	coap_pdu_set_code(response, (coap_pdu_code_t)code);
	if (payload.len)
		coap_add_data(response, payload.len, payload.p);
}

static void on_pub_acked(void *arg, int status)
{
	struct pub_wait *w = arg;
	coap_async_t *async;

	(void)status;
	w->fired = true;
	if (w->inside)
		return; /* answered by the handler itself, piggybacked */
	if (!w->s) {
		gw_free(w); /* the server stopped: its session reference went then */
		return;
	}
	if (w->parked && !w->s->stopping) {
		async = coap_find_async(w->session, (coap_bin_const_t){ w->tok_len, w->tok });
		if (async) {
			coap_async_trigger(async); /* the handler runs again and answers */
			ad_coap_uv_kick(w->s->cu);
			return; /* freed there */
		}
	}
	gw_list_del(&w->link);
	coap_session_release(w->session);
	gw_free(w);
}

/* The request came back from coap_async_trigger(): the broker accepted it. */
static bool answer_parked(struct coapsrv_server *s, coap_session_t *session, coap_bin_const_t tok,
			  coap_pdu_t *response, int *verdict)
{
	coap_async_t *async = coap_find_async(session, tok);
	struct pub_wait *w;

	if (!async)
		return false;
	w = coap_async_get_app_data(async);
	if (!w || !w->fired) {
		/* A copy of a request still waiting (a retransmission): the
		 * empty ACK went out; the answer follows when the wait ends. */
		coap_pdu_set_code(response, COAP_EMPTY_CODE);
		return true;
	}
	gw_list_del(&w->link);
	coap_session_release(w->session);
	coap_async_set_app_data(async, NULL);
	if (w->auth) {
		/* The password check ended: the request goes on with its verdict. */
		*verdict = w->verdict;
		gw_free(w);
		return false;
	}
	gw_free(w);
	s->core->stats.publishes++;
	coap_pdu_set_code(response, COAP_RESPONSE_CODE(204));
	return true;
}

static void on_auth_done(void *arg, int verdict)
{
	struct pub_wait *w = arg;

	w->job = NULL;
	w->verdict = verdict;
	on_pub_acked(w, 0); /* the same path: answer now, or trigger the parked request */
}

/*
 * POST mqtt/connection with a user name: its password is checked against
 * password_file (off the loop thread) before the core makes the session.
 * Returns true when the request is answered or parked here; false with
 * *verdict set when it may go on.
 */
static bool check_password(struct coapsrv_server *s, coap_session_t *session,
			   const coap_pdu_t *request, coap_bin_const_t tok,
			   const struct coapsrv_raw *raw, coap_pdu_t *response, int *verdict)
{
	char topic[COAPSRV_TOPIC_MAX], user[COAPSRV_CRED_MAX + 1];
	struct coapsrv_req req;
	struct pub_wait *w;
	coap_async_t *async;
	int rc;

	if (*verdict != VERDICT_NONE || coapsrv_route(raw, topic, sizeof(topic), &req) ||
	    req.op != COAPSRV_OP_CONNECT || !req.has_username)
		return false;
	w = gw_calloc(1, sizeof(*w));
	if (!w) {
		respond(response, COAPSRV_INTERNAL, GW_SLICE_STR("out of memory"));
		return true;
	}
	w->auth = true;
	w->s = s;
	w->session = coap_session_reference(session);
	w->tok_len = (uint8_t)GW_MIN(tok.length, sizeof(w->tok));
	memcpy(w->tok, tok.s, w->tok_len);
	snprintf(user, sizeof(user), "%.*s", (int)req.username.len, (const char *)req.username.p);
	w->inside = true;
	/* no password= is an empty one (and never a NULL pointer to memcpy) */
	rc = brk_check_password(s->brk, user, req.password.p ? (const void *)req.password.p : "",
				req.password.len, on_auth_done, w, &w->job);
	w->inside = false;
	if (rc < 0 || w->fired) {
		*verdict = rc < 0 ? rc : w->verdict;
		coap_session_release(w->session);
		gw_free(w);
		return false;
	}
	gw_list_add_tail(&s->waits, &w->link);
	async = coap_register_async(session, request, 0);
	if (async) {
		coap_async_set_app_data(async, w);
		w->parked = true;
	}
	coap_pdu_set_code(response, COAP_EMPTY_CODE);
	return true;
}

/* 0 (answered or parked), or -ENOTCONN: the client's session was taken over (nothing sent). */
static int publish(struct coapsrv_server *s, coap_session_t *session, const coap_pdu_t *request,
		   coap_bin_const_t tok, struct gw_slice payload, const struct coapsrv_resp *r,
		   coap_pdu_t *response)
{
	struct brk_msg_props props = { 0 };
	struct brk_pub p = { .topic = r->pub_topic,
			     .payload = payload,
			     .qos = r->pub_qos,
			     .retain = r->pub_retain };
	struct pub_wait *w;
	int rc;

	if (r->has_expiry) {
		props.has_expiry = true;
		props.expiry = r->expiry;
		p.props = &props;
	}
	w = gw_calloc(1, sizeof(*w));
	if (!w) {
		respond(response, COAPSRV_INTERNAL, GW_SLICE_STR("out of memory"));
		return 0;
	}
	w->s = s;
	w->session = coap_session_reference(session);
	w->tok_len = (uint8_t)GW_MIN(tok.length, sizeof(w->tok));
	memcpy(w->tok, tok.s, w->tok_len);
	w->inside = true;
	rc = brk_client_publish_acked(r->pub_client->session, &p, on_pub_acked, w);
	w->inside = false;
	if (rc < 0) {
		coap_session_release(w->session);
		gw_free(w);
		if (rc == -ENOTCONN)
			return rc;
		if (rc == -EACCES) {
			s->core->stats.unauthorized++;
			respond(response, COAPSRV_FORBIDDEN, GW_SLICE_STR("not authorized"));
		} else if (rc == -EINVAL) {
			s->core->stats.bad_request++;
			respond(response, COAPSRV_BAD_REQUEST, GW_SLICE_STR("bad topic"));
		} else {
			respond(response, COAPSRV_UNAVAILABLE, GW_SLICE_STR("publish failed"));
		}
		return 0;
	}
	if (w->fired) {
		/* Nothing held it (QoS 0, or no subscriber that holds): 2.04 now. */
		coap_session_release(w->session);
		gw_free(w);
		s->core->stats.publishes++;
		respond(response, COAPSRV_CHANGED, (struct gw_slice){ 0 });
		return 0;
	}
	/* Held (the uplink's store commits it): answer when it is released. */
	gw_list_add_tail(&s->waits, &w->link);
	{
		coap_async_t *async = coap_register_async(session, request, 0);

		if (async) {
			coap_async_set_app_data(async, w);
			w->parked = true;
		}
		/* Without an async slot (a duplicate token) the client is
		 * answered by nothing; its retransmission finds the wait. */
	}
	coap_pdu_set_code(response, COAP_EMPTY_CODE);
	return 0;
}

static void on_flush(uv_timer_t *t)
{
	struct coapsrv_server *s = container_of(t, struct coapsrv_server, flush);

	if (!s->stopping)
		coapsrv_flush(s->core);
}

static void on_request(coap_resource_t *resource, coap_session_t *session,
		       const coap_pdu_t *request, const coap_string_t *query, coap_pdu_t *response)
{
	struct coapsrv_server *s = coap_get_app_data(coap_session_get_context(session));
	struct gw_slice path[MAX_OPTS], qs[MAX_OPTS], payload = { 0 };
	struct coapsrv_raw raw = { .observe = -1, .path = path, .query = qs };
	coap_bin_const_t tok = coap_pdu_get_token(request);
	struct coapsrv_peer peer;
	struct coapsrv_resp r;
	coap_opt_iterator_t oi;
	char name[80];
	coap_opt_t *opt;
	size_t len = 0, offset = 0, total = 0;
	const uint8_t *data = NULL;
	bool overflow = false;
	int verdict = VERDICT_NONE;

	(void)resource;
	(void)query;
	if (!s || s->stopping)
		return;
	if (answer_parked(s, session, tok, response, &verdict))
		return;
	raw.method = (uint8_t)coap_pdu_get_code(request);
	coap_option_iterator_init(request, &oi, COAP_OPT_ALL);
	while ((opt = coap_option_next(&oi))) {
		struct gw_slice v = { coap_opt_value(opt), coap_opt_length(opt) };

		switch (oi.number) {
		case COAP_OPTION_URI_PATH:
			if (raw.n_path < MAX_OPTS)
				path[raw.n_path++] = v;
			else
				overflow = true;
			break;
		case COAP_OPTION_URI_QUERY:
			if (raw.n_query < MAX_OPTS)
				qs[raw.n_query++] = v;
			else
				overflow = true;
			break;
		case COAP_OPTION_OBSERVE:
			raw.observe = (int32_t)coap_decode_var_bytes(v.p, (unsigned int)v.len);
			break;
		default:
			break;
		}
	}
	if (overflow) {
		s->core->stats.requests++;
		s->core->stats.bad_request++;
		respond(response, COAPSRV_BAD_REQUEST, GW_SLICE_STR("too many options"));
		return;
	}
	if (coap_get_data_large(request, &len, &data, &offset, &total))
		payload = (struct gw_slice){ data, len };
	if (check_password(s, session, request, tok, &raw, response, &verdict))
		return;
	if (verdict != VERDICT_NONE && verdict != 1) {
		s->core->stats.requests++;
		if (verdict == 0) {
			s->core->stats.unauthorized++;
			respond(response, COAPSRV_UNAUTHORIZED,
				GW_SLICE_STR("bad user name or password"));
		} else {
			respond(response, COAPSRV_UNAVAILABLE, GW_SLICE_STR("try again later"));
		}
		return;
	}
	to_peer(coap_session_get_addr_remote(session), &peer, name, sizeof(name));
	peer.link = session;
	if (!coapsrv_on_request(s->core, &peer, &raw, (struct gw_slice){ tok.s, tok.length },
				payload, gw_mono_ms(), &r)) {
		/* Over the rate limit: no answer at all (a CON is not even ACKed). */
		coap_pdu_set_code(response, COAP_EMPTY_CODE);
		coap_pdu_set_type(response, COAP_MESSAGE_RST);
		return;
	}
	if (r.code == 0) {
		if (publish(s, session, request, tok, payload, &r, response) != -ENOTCONN)
			return;
		/*
		 * Another client took its broker session over (an MQTT client
		 * with the same id): that client is gone; the request is tried
		 * once more, as a new session where that is possible (a
		 * connection's token is gone with it: 4.01).
		 */
		coapsrv_drop_client(s->core, r.pub_client);
		if (!coapsrv_on_request(s->core, &peer, &raw,
					(struct gw_slice){ tok.s, tok.length }, payload,
					gw_mono_ms(), &r)) {
			coap_pdu_set_code(response, COAP_EMPTY_CODE);
			coap_pdu_set_type(response, COAP_MESSAGE_RST);
			return;
		}
		if (r.code == 0) {
			if (publish(s, session, request, tok, payload, &r, response) == -ENOTCONN) {
				coapsrv_drop_client(s->core, r.pub_client);
				respond(response, COAPSRV_UNAVAILABLE,
					GW_SLICE_STR("session taken over"));
			}
			return;
		}
	}
	if (r.obs && !r.obs->linked) {
		r.obs->link = coap_session_reference(session);
		r.obs->linked = true;
	}
	respond(response, r.code, r.payload);
	if (r.observe) {
		uint8_t buf[4];

		coap_add_option(response, COAP_OPTION_OBSERVE,
				coap_encode_var_safe(buf, sizeof(buf), r.seq), buf);
	}
	if (coapsrv_has_pending(s->core))
		uv_timer_start(&s->flush, on_flush, 0, 0);
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent, coap_nack_reason_t reason,
		    const coap_mid_t mid)
{
	struct coapsrv_server *s = coap_get_app_data(coap_session_get_context(session));
	coap_bin_const_t tok;
	struct coapsrv_peer peer;
	char name[80];

	(void)mid;
	if (!s || s->stopping || !sent || coap_pdu_get_code(sent) != COAP_RESPONSE_CODE(205))
		return;
	tok = coap_pdu_get_token(sent);
	to_peer(coap_session_get_addr_remote(session), &peer, name, sizeof(name));
	gw_log(s->lg, LOG_INFO, LOGM, "observer %s gone (%s): observation ended", name,
	       reason == COAP_NACK_RST ? "RST" : "no ACK");
	coapsrv_on_reset(s->core, peer.addr, peer.len, (struct gw_slice){ tok.s, tok.length },
			 true);
}

static void on_tick(uv_timer_t *t)
{
	struct coapsrv_server *s = container_of(t, struct coapsrv_server, tick);

	coapsrv_on_tick(s->core, gw_mono_ms());
	coapsrv_on_idle(s->core); /* the CON bound restarts every second */
}

/* ------------------------------------------------------------- lifecycle */

/* A DTLS client's PSK identity must be psk_identity: its key, or NULL (refused). */
static const coap_bin_const_t *psk_validate(coap_bin_const_t *identity, coap_session_t *session,
					    void *arg)
{
	struct coapsrv_server *s = arg;

	(void)session;
	if (identity->length != strlen(s->psk_identity) ||
	    memcmp(identity->s, s->psk_identity, identity->length)) {
		gw_log(s->lg, LOG_INFO, LOGM, "DTLS: unknown PSK identity refused");
		return NULL;
	}
	return &s->psk_bin;
}

/* "HOST:PORT", "coap://HOST:PORT" or "coaps://HOST:PORT" (IPv6 in brackets). */
static int parse_listen(const char *ent, size_t n, bool *dtls, coap_address_t *a)
{
	char buf[128], *host, *colon;
	long long port;
	int rc;

	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, ent, n);
	buf[n] = 0;
	host = buf;
	*dtls = false;
	if (!strncmp(host, "coaps://", 8)) {
		*dtls = true;
		host += 8;
	} else if (!strncmp(host, "coap://", 7)) {
		host += 7;
	}
	colon = strrchr(host, ':');
	if (!colon)
		return -EINVAL;
	*colon = 0;
	if (gw_parse_int(colon + 1, 1, 65535, &port))
		return -EINVAL;
	coap_address_init(a);
	if (host[0] == '[') {
		size_t hl = strlen(host);

		if (hl < 2 || host[hl - 1] != ']')
			return -EINVAL;
		host[hl - 1] = 0;
		rc = uv_ip6_addr(host + 1, (int)port, &a->addr.sin6);
		a->size = sizeof(a->addr.sin6);
	} else {
		rc = uv_ip4_addr(host[0] ? host : "0.0.0.0", (int)port, &a->addr.sin);
		a->size = sizeof(a->addr.sin);
	}
	return rc ? -EINVAL : 0;
}

/* Calls @fn on each comma-separated entry of @list (spaces trimmed); stops at an error. */
static int each_listen(const char *list, int (*fn)(void *arg, const char *e, size_t n), void *arg)
{
	const char *p = list;
	int rc = 0, count = 0;

	while (p && *p && !rc) {
		const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);

		while (p < end && *p == ' ')
			p++;
		while (end > p && end[-1] == ' ')
			end--;
		if (end > p) {
			if (++count > COAPSRV_MAX_LISTEN)
				return -EINVAL;
			rc = fn(arg, p, (size_t)(end - p));
		}
		p = e ? e + 1 : NULL;
	}
	return rc;
}

static int check_entry(void *arg, const char *e, size_t n)
{
	const struct coapsrv_config *cfg = arg;
	coap_address_t a;
	bool dtls;

	if (parse_listen(e, n, &dtls, &a))
		return -EINVAL;
	if (dtls && !ad_coap_has_dtls())
		return -ENOTSUP;
	if (dtls &&
	    (!cfg->psk_key || !cfg->psk_key[0] || !cfg->psk_identity || !cfg->psk_identity[0]))
		return -EINVAL;
	return 0;
}

int coapsrv_server_new(uv_loop_t *loop, struct brk *broker, const struct coapsrv_config *cfg,
		       const struct gw_logger *lg, struct coapsrv_server **out)
{
	struct coapsrv_server *s;
	uint64_t seed = 0;
	int rc;

	*out = NULL;
	/* Before check_entry: it uses libcoap's address type (coap_lib.h loads it). */
	rc = ad_coap_lib_load(false);
	if (rc)
		return rc;
	rc = each_listen(cfg->listen, check_entry, (void *)cfg);
	if (rc)
		return rc;
	s = gw_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->brk = broker;
	s->lg = lg;
	s->cfg = *cfg;
	gw_list_init(&s->waits);
	s->core = gw_calloc(1, sizeof(*s->core));
	if (!s->core) {
		gw_free(s);
		return -ENOMEM;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)gw_mono_ms() * 0x9E3779B97F4A7C15ULL;
	rc = coapsrv_core_init(s->core, &s->cfg, &ops, s, seed);
	if (rc) {
		gw_free(s->core);
		gw_free(s);
		return rc;
	}
	s->core_ready = true;
	*out = s;
	return 0;
}

static int add_endpoint(void *arg, const char *e, size_t n)
{
	struct coapsrv_server *s = arg;
	coap_address_t a;
	bool dtls;

	if (parse_listen(e, n, &dtls, &a))
		return -EINVAL;
	if (!coap_new_endpoint(s->ctx, &a, dtls ? COAP_PROTO_DTLS : COAP_PROTO_UDP)) {
		gw_log(s->lg, LOG_ERR, LOGM, "cannot listen on %.*s", (int)n, e);
		return -EADDRINUSE;
	}
	gw_log(s->lg, LOG_INFO, LOGM, "listening on %.*s", (int)n, e);
	return 0;
}

static int setup_psk(struct coapsrv_server *s)
{
	coap_dtls_spsk_t spsk;
	size_t il = s->cfg.psk_identity ? strlen(s->cfg.psk_identity) : 0;
	size_t kl = s->cfg.psk_key ? strlen(s->cfg.psk_key) : 0;

	if (!kl)
		return 0;
	if (il >= sizeof(s->psk_identity) || kl > sizeof(s->psk_key))
		return -EINVAL;
	memcpy(s->psk_identity, s->cfg.psk_identity, il);
	memcpy(s->psk_key, s->cfg.psk_key, kl);
	s->psk_key_len = kl;
	s->psk_bin.s = s->psk_key;
	s->psk_bin.length = kl;
	memset(&spsk, 0, sizeof(spsk));
	spsk.version = COAP_DTLS_SPSK_SETUP_VERSION;
	spsk.validate_id_call_back = psk_validate;
	spsk.id_call_back_arg = s;
	spsk.psk_info.hint.s = (const uint8_t *)s->psk_identity;
	spsk.psk_info.hint.length = il;
	spsk.psk_info.key.s = s->psk_key;
	spsk.psk_info.key.length = kl;
	return coap_context_set_psk2(s->ctx, &spsk) ? 0 : -EINVAL;
}

int coapsrv_server_start(struct coapsrv_server *s)
{
	coap_resource_t *r;
	int rc;

	coap_set_log_handler(on_libcoap_log);
	rc = ad_coap_uv_new(s->loop, s->lg, LOGM, &s->cu);
	if (rc) {
		gw_log(s->lg, LOG_ERR, LOGM, "cannot start libcoap: %d", rc);
		return rc;
	}
	s->ctx = ad_coap_uv_context(s->cu);
	coap_set_app_data(s->ctx, s);
	libcoap_print_level = s->lg && s->lg->level >= LOG_DEBUG ? LOG_DEBUG : LOG_ERR;
	coap_set_log_level(libcoap_print_level > LOG_WARNING ? (coap_log_t)libcoap_print_level
							     : LOG_WARNING);
	coap_context_set_block_mode(s->ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	/* Idle server sessions (one per address) are bounded as clients are. */
	coap_context_set_max_idle_sessions(s->ctx, s->cfg.max_clients + 16);
	coap_register_nack_handler(s->ctx, on_nack);
	rc = setup_psk(s);
	if (rc) {
		gw_log(s->lg, LOG_ERR, LOGM, "cannot set the DTLS PSK");
		return rc;
	}
	/* Every path goes to one handler: the router knows the interface. */
	r = coap_resource_unknown_init2(on_request, 0);
	if (!r)
		return -ENOMEM;
	coap_register_request_handler(r, COAP_REQUEST_GET, on_request);
	coap_register_request_handler(r, COAP_REQUEST_POST, on_request);
	coap_register_request_handler(r, COAP_REQUEST_DELETE, on_request);
	coap_register_request_handler(r, COAP_REQUEST_FETCH, on_request);
	coap_register_request_handler(r, COAP_REQUEST_PATCH, on_request);
	coap_register_request_handler(r, COAP_REQUEST_IPATCH, on_request);
	coap_add_resource(s->ctx, r);
	uv_timer_init(s->loop, &s->tick);
	uv_timer_init(s->loop, &s->flush);
	s->timers_open = true;
	uv_timer_start(&s->tick, on_tick, 1000, 1000);
	rc = each_listen(s->cfg.listen, add_endpoint, s);
	if (rc)
		return rc;
	ad_coap_uv_kick(s->cu);
	return 0;
}

static void closed_one(struct coapsrv_server *s)
{
	if (--s->open_handles == 0 && s->done)
		s->done(s->done_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	closed_one(h->data);
}

static void on_cu_closed(void *arg)
{
	closed_one(arg);
}

void coapsrv_server_stop(struct coapsrv_server *s, void (*done)(void *arg), void *arg)
{
	s->done = done;
	s->done_arg = arg;
	s->stopping = true;
	/* Publishes still held: their callbacks only free from now on. */
	while (!gw_list_empty(&s->waits)) {
		struct pub_wait *w = gw_list_first(&s->waits, struct pub_wait, link);

		gw_list_del(&w->link);
		coap_session_release(w->session);
		w->session = NULL;
		if (w->job) {
			/* a password check: its callback will not run */
			brk_check_cancel(w->job);
			gw_free(w);
			continue;
		}
		w->s = NULL;
	}
	if (s->core_ready) {
		coapsrv_core_fini(s->core);
		s->core_ready = false;
	}
	s->open_handles = 1; /* until every close below has been asked for */
	if (s->timers_open) {
		s->tick.data = s;
		s->flush.data = s;
		s->open_handles += 2;
		uv_close((uv_handle_t *)&s->tick, on_timer_closed);
		uv_close((uv_handle_t *)&s->flush, on_timer_closed);
		s->timers_open = false;
	}
	if (s->cu) {
		s->open_handles++;
		ad_coap_uv_close(s->cu, on_cu_closed, s);
		s->cu = NULL;
	}
	closed_one(s);
}

void coapsrv_server_free(struct coapsrv_server *s)
{
	if (!s)
		return;
	if (s->core_ready)
		coapsrv_core_fini(s->core);
	gw_free(s->core);
	gw_free(s);
}

void coapsrv_server_get_stats(const struct coapsrv_server *s, struct coapsrv_stats *out)
{
	if (s->core_ready)
		coapsrv_core_stats(s->core, out);
	else
		memset(out, 0, sizeof(*out));
	out->malformed = __atomic_load_n(&malformed_seen, __ATOMIC_RELAXED);
}
