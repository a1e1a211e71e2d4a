/*
 * coap_srv_req_uv.c - the CoAP server's requests on libcoap: every request
 * goes to one handler, which hands its options to the core's router
 * (coap_srv.c) and turns the decision into a response; NACKs and the
 * server's timers (heartbeat expiry, held notifications) go to the core too.
 *
 * Publishes: a CON publish is answered 2.04 only once the broker has
 * accepted the message, i.e. every hold on it released (the uplink holds a
 * forwarded QoS >= 1 message until its store has committed it, DESIGN.md
 * section 1). When the hold outlives the handler the request is parked with
 * coap_register_async() (libcoap answers the CON with an empty ACK at once:
 * a separate response, RFC 7252 5.2.2) and the 2.04 follows from the
 * broker's acked callback. POST mqtt/connection's password check, which may
 * run on the thread pool, is parked the same way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_lib.h"
#include <uv.h>

#include "broker/broker.h"
#include "coap_srv_uv_int.h"
#include "coap_uv.h"
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

void coapsrv__on_request(coap_resource_t *resource, coap_session_t *session,
			 const coap_pdu_t *request, const coap_string_t *query,
			 coap_pdu_t *response)
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

void coapsrv__on_nack(coap_session_t *session, const coap_pdu_t *sent, coap_nack_reason_t reason,
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

void coapsrv__on_tick(uv_timer_t *t)
{
	struct coapsrv_server *s = container_of(t, struct coapsrv_server, tick);

	coapsrv_on_tick(s->core, gw_mono_ms());
	coapsrv_on_idle(s->core); /* the CON bound restarts every second */
}
