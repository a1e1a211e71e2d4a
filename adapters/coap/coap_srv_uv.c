/*
 * coap_srv_uv.c - the CoAP server on libcoap (driven by the loop through
 * coap_uv.c) and the broker's in-process API: libcoap parses the PDUs,
 * deduplicates, retransmits CON messages and reassembles block-wise
 * bodies; each request's options go to the core (coap_srv.c), whose
 * decisions become responses, broker sessions and notifications.
 *
 * This file is the server's lifecycle (listeners, DTLS PSK, libcoap's log,
 * start and stop) and the core's ops: broker sessions for its clients and
 * the notifications it sends. The requests - routing, publishes answered
 * once the broker accepted them, password checks - are in
 * coap_srv_req_uv.c (cross-file internals: coap_srv_uv_int.h).
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
#include "coap_srv_uv_int.h"
#include "coap_uv.h"

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
	rc = coapsrv_each_listen(cfg->listen, check_entry, (void *)cfg);
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
	coap_register_nack_handler(s->ctx, coapsrv__on_nack);
	rc = setup_psk(s);
	if (rc) {
		gw_log(s->lg, LOG_ERR, LOGM, "cannot set the DTLS PSK");
		return rc;
	}
	/* Every path goes to one handler: the router knows the interface. */
	r = coap_resource_unknown_init2(coapsrv__on_request, 0);
	if (!r)
		return -ENOMEM;
	coap_register_request_handler(r, COAP_REQUEST_GET, coapsrv__on_request);
	coap_register_request_handler(r, COAP_REQUEST_POST, coapsrv__on_request);
	coap_register_request_handler(r, COAP_REQUEST_DELETE, coapsrv__on_request);
	coap_register_request_handler(r, COAP_REQUEST_FETCH, coapsrv__on_request);
	coap_register_request_handler(r, COAP_REQUEST_PATCH, coapsrv__on_request);
	coap_register_request_handler(r, COAP_REQUEST_IPATCH, coapsrv__on_request);
	coap_add_resource(s->ctx, r);
	uv_timer_init(s->loop, &s->tick);
	uv_timer_init(s->loop, &s->flush);
	s->timers_open = true;
	uv_timer_start(&s->tick, coapsrv__on_tick, 1000, 1000);
	rc = coapsrv_each_listen(s->cfg.listen, add_endpoint, s);
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
