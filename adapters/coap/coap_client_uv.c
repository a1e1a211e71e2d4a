/*
 * coap_client_uv.c - the CoAP device adapter's glue: one libcoap context on
 * the loop (coap_uv.c), a client session per device (its host resolved with
 * uv_getaddrinfo; coaps:// ones made by coap_client_dtls.c, those with
 * certificates in a context of their own), GETs and observations on behalf of the core (coap_dev.c),
 * answers and NACKs fed back to it, one uv_timer for the core's deadlines.
 *
 * Tokens are 8 bytes: device index (16 bits), resource index (16 bits) and
 * the resource's exchange generation (32 bits). An answer whose generation is
 * not the resource's current one belongs to an exchange the core gave up:
 * it is refused, so libcoap answers a notification of it with RST and the
 * device forgets that observer [RFC 7641 3.6].
 */
#include "adapters/coap/coap_lib.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "adapters/coap/coap_client_dtls.h"
#include "adapters/coap/coap_int.h"
#include "adapters/coap/coap_uv.h"

#define TOKEN_LEN 8
/* The resource index of a write's token (resources are numbered below it). */
#define WRITE_RES 0xFFFF
/* Writes in flight per adapter before new ones are refused. */
#define MAX_WRITES 64

struct res_glue {
	uint32_t gen;	/* of the exchange in flight or the observation */
	bool observing; /* libcoap holds an observation with this token */
};

struct dev_glue {
	struct ad_coap_adapter *a;
	struct ad_coap_cdev *cd;
	unsigned int index;
	coap_session_t *sess;
	uv_getaddrinfo_t gai;
	bool resolving;
	bool resolved;
	coap_address_t dst;
	struct res_glue *res;
	struct ad_coap_dtls_peer peer; /* coaps:// */
	/*
	 * A coaps:// device with certificates has a libcoap context of its own:
	 * libcoap 4.3.1 (OpenSSL) loads a session's ca_file into its context's
	 * one CA store, so devices sharing a context would trust each other's
	 * CAs. NULL: the adapter's (a->cu), or none could be made (pki).
	 */
	struct ad_coap_uv *cu;
	bool pki;
};

/* A write in flight: PUT / POST of a point's value, answered through on_cmd_done. */
struct write {
	bool used;
	uint32_t gen;	       /* token: (device, WRITE_RES, gen) */
	void *token;	       /* the gateway's */
	struct ad_value value; /* what was written (no strings: those are not kept) */
	int64_t deadline;      /* mono ms */
};

struct ad_coap_adapter {
	struct ad_adapter base;
	struct write writes[MAX_WRITES];
	uint32_t write_gen;
	struct ad_coap_core core;
	struct ad_coap_uv *cu;
	uv_timer_t timer;
	int64_t timer_due; /* INT64_MAX: not armed */
	struct dev_glue *devs;
	unsigned int resolving; /* uv_getaddrinfo in flight */
	unsigned int closing;	/* things not yet closed after stop() */
	bool started, stopping, timer_open;
	void (*done)(void *arg);
	void *done_arg;
};

/* The libcoap context of @g's session. */
static struct ad_coap_uv *dev_cu(const struct dev_glue *g)
{
	return g->pki ? g->cu : g->a->cu;
}

static struct ad_coap_clock clock_now(struct ad_coap_adapter *a)
{
	return (struct ad_coap_clock){ .mono_ms = (int64_t)uv_now(a->base.loop),
				       .wall_ms = gw_now_ms() };
}

static void on_timer(uv_timer_t *t);
static int64_t writes_tick(struct ad_coap_adapter *a, int64_t now);

/* Make sure the timer fires by @due (mono ms, the loop's clock). */
static void arm(struct ad_coap_adapter *a, int64_t due)
{
	int64_t now = (int64_t)uv_now(a->base.loop);

	if (a->stopping || due >= a->timer_due || due == INT64_MAX)
		return;
	a->timer_due = due;
	uv_timer_start(&a->timer, on_timer, due > now ? (uint64_t)(due - now) : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct ad_coap_adapter *a = container_of(t, struct ad_coap_adapter, timer);

	a->timer_due = INT64_MAX;
	arm(a, writes_tick(a, (int64_t)uv_now(a->base.loop)));
	if (a->resolving)
		return; /* ticks start once every host is resolved */
	arm(a, ad_coap_core_tick(&a->core, clock_now(a)));
}

/* ---------------------------------------------------------------- tokens */

static void token_make(uint8_t *t, unsigned int dev, unsigned int res, uint32_t gen)
{
	t[0] = (uint8_t)(dev >> 8);
	t[1] = (uint8_t)dev;
	t[2] = (uint8_t)(res >> 8);
	t[3] = (uint8_t)res;
	t[4] = (uint8_t)(gen >> 24);
	t[5] = (uint8_t)(gen >> 16);
	t[6] = (uint8_t)(gen >> 8);
	t[7] = (uint8_t)gen;
}

/* The resource a token names, if its exchange is the current one. */
static struct ad_coap_res *token_res(struct ad_coap_adapter *a, coap_bin_const_t tok)
{
	unsigned int dev, res;
	uint32_t gen;

	if (tok.length != TOKEN_LEN)
		return NULL;
	dev = (unsigned int)tok.s[0] << 8 | tok.s[1];
	res = (unsigned int)tok.s[2] << 8 | tok.s[3];
	gen = (uint32_t)tok.s[4] << 24 | (uint32_t)tok.s[5] << 16 | (uint32_t)tok.s[6] << 8 |
	      tok.s[7];
	if (dev >= a->core.n_devs || res >= a->core.devs[dev].n_res)
		return NULL;
	if (a->devs[dev].res[res].gen != gen)
		return NULL;
	return &a->core.devs[dev].res[res];
}

/* ------------------------------------------------------------- writes */

/* Answer write @w (ok, or @error a static string) and free its slot. */
static void write_done(struct ad_coap_adapter *a, struct write *w, const char *error)
{
	struct ad_cmd_result res = { .ok = !error, .error = error, .ts_ms = gw_now_ms() };

	if (!error)
		res.value = w->value;
	w->used = false;
	if (a->base.sink.on_cmd_done)
		a->base.sink.on_cmd_done(a->base.sink.arg, w->token, &res);
}

/* The write a token names, or NULL. */
static struct write *token_write(struct ad_coap_adapter *a, coap_bin_const_t tok)
{
	uint32_t gen;
	unsigned int i;

	if (tok.length != TOKEN_LEN || tok.s[2] != 0xFF || tok.s[3] != 0xFF)
		return NULL;
	gen = (uint32_t)tok.s[4] << 24 | (uint32_t)tok.s[5] << 16 | (uint32_t)tok.s[6] << 8 |
	      tok.s[7];
	for (i = 0; i < MAX_WRITES; i++)
		if (a->writes[i].used && a->writes[i].gen == gen)
			return &a->writes[i];
	return NULL;
}

/* Writes past the device's timeout fail; the earliest deadline left, or INT64_MAX. */
static int64_t writes_tick(struct ad_coap_adapter *a, int64_t now)
{
	int64_t next = INT64_MAX;
	unsigned int i;

	for (i = 0; i < MAX_WRITES; i++) {
		struct write *w = &a->writes[i];

		if (!w->used)
			continue;
		if (w->deadline <= now)
			write_done(a, w, "timeout");
		else if (w->deadline < next)
			next = w->deadline;
	}
	return next;
}

/* ------------------------------------------------------------- core ops */

static int add_path(coap_pdu_t *pdu, const char *path)
{
	while (*path) {
		size_t n;

		while (*path == '/')
			path++;
		n = strcspn(path, "/");
		if (n && !coap_add_option(pdu, COAP_OPTION_URI_PATH, n, (const uint8_t *)path))
			return -ENOMEM;
		path += n;
	}
	return 0;
}

static int session_open(struct dev_glue *g);

static int op_send(void *arg, struct ad_coap_res *r, bool observe)
{
	struct ad_coap_adapter *a = arg;
	struct dev_glue *g = &a->devs[r->dev - a->core.devs];
	struct res_glue *rg = &g->res[r->index];
	uint8_t tok[TOKEN_LEN], ob[4];
	coap_pdu_t *pdu;

	if (!g->sess && session_open(g))
		return -EHOSTUNREACH;
	pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, g->sess);
	if (!pdu)
		return -ENOMEM;
	rg->gen++;
	rg->observing = false;
	token_make(tok, g->index, r->index, rg->gen);
	coap_add_token(pdu, sizeof(tok), tok);
	if (observe)
		coap_add_option(pdu, COAP_OPTION_OBSERVE,
				coap_encode_var_safe(ob, sizeof(ob), COAP_OBSERVE_ESTABLISH), ob);
	if (add_path(pdu, r->path)) {
		coap_delete_pdu(pdu);
		return -ENOMEM;
	}
	/* coap_send() takes the pdu, also when it fails */
	if (coap_send(g->sess, pdu) == COAP_INVALID_MID)
		return -EIO;
	rg->observing = observe;
	ad_coap_uv_kick(dev_cu(g));
	return 0;
}

static void op_forget(void *arg, struct ad_coap_res *r)
{
	struct ad_coap_adapter *a = arg;
	struct dev_glue *g = &a->devs[r->dev - a->core.devs];
	struct res_glue *rg = &g->res[r->index];
	uint8_t tok[TOKEN_LEN];

	if (rg->observing && g->sess) {
		coap_binary_t t = { .length = sizeof(tok), .s = tok };

		/* Tell the device, and let libcoap drop its state of the observation. */
		token_make(tok, g->index, r->index, rg->gen);
		coap_cancel_observe(g->sess, &t, COAP_MESSAGE_NON);
		ad_coap_uv_kick(dev_cu(g));
	}
	rg->observing = false;
	rg->gen++; /* answers to the old exchange are refused from now on */
}

static void op_reading(void *arg, const struct ad_reading *rd)
{
	struct ad_coap_adapter *a = arg;

	a->base.sink.on_reading(a->base.sink.arg, rd);
}

static void op_status(void *arg, const struct ad_device *dev, bool online)
{
	struct ad_coap_adapter *a = arg;

	if (a->base.sink.on_status)
		a->base.sink.on_status(a->base.sink.arg, dev, online);
}

static void op_note(void *arg, const struct ad_coap_note *n)
{
	struct ad_coap_adapter *a = arg;
	const char *dev = n->dev->cfg->name, *path = n->res ? n->res->path : "";
	char b[32];

	switch (n->kind) {
	case AD_COAP_NOTE_FAILED:
		gw_log(a->base.log, LOG_WARNING, "coap", "%s %s: %s", dev, path,
		       ad_coap_err_name(n->err, b, sizeof(b)));
		break;
	case AD_COAP_NOTE_RECOVERED:
		gw_log(a->base.log, LOG_INFO, "coap", "%s %s: answers again", dev, path);
		break;
	case AD_COAP_NOTE_PARSE:
		gw_log(a->base.log, LOG_WARNING, "coap", "%s/%s: payload of %s: %s", dev,
		       n->pt->name, path, ad_coap_err_name(n->err, b, sizeof(b)));
		break;
	case AD_COAP_NOTE_NO_OBSERVE:
		gw_log(a->base.log, LOG_INFO, "coap", "%s %s: not observable, polled every %u ms",
		       dev, path, n->dev->cfg->poll_ms);
		break;
	case AD_COAP_NOTE_REREGISTER:
		gw_log(a->base.log, LOG_INFO, "coap",
		       "%s %s: no notification within Max-Age: registering again", dev, path);
		break;
	case AD_COAP_NOTE_OBS_ENDED:
		gw_log(a->base.log, LOG_INFO, "coap", "%s %s: the device ended the observation",
		       dev, path);
		break;
	case AD_COAP_NOTE_ONLINE:
		gw_log(a->base.log, LOG_INFO, "coap", "%s: online", dev);
		break;
	case AD_COAP_NOTE_OFFLINE:
		gw_log(a->base.log, LOG_WARNING, "coap", "%s: offline", dev);
		break;
	case AD_COAP_NOTE_DEGRADED:
		gw_log(a->base.log, LOG_WARNING, "coap",
		       "%s: %d failures in a row: skipped for %u ms", dev, n->err,
		       ad_coap_dev_keys(n->dev->cfg)->degrade_for_ms);
		break;
	}
}

static const struct ad_coap_core_ops core_ops = {
	.send = op_send,
	.forget = op_forget,
	.on_reading = op_reading,
	.on_status = op_status,
	.note = op_note,
};

/* ---------------------------------------------------- libcoap handlers */

static int opt_uint(const coap_pdu_t *pdu, coap_option_num_t num, int64_t *out)
{
	coap_opt_iterator_t it;
	coap_opt_t *o = coap_check_option(pdu, num, &it);

	if (!o)
		return -1;
	*out = coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
	return 0;
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
				   const coap_pdu_t *rcvd, const coap_mid_t mid)
{
	struct ad_coap_adapter *a = coap_get_app_data(coap_session_get_context(s));
	struct ad_coap_res *r = token_res(a, coap_pdu_get_token(rcvd));
	const uint8_t *data = NULL;
	size_t len = 0, off = 0, total = 0;
	int64_t cf = AD_COAP_CF_NONE, max_age = -1, obs;
	bool observe;

	(void)sent, (void)mid;
	if (!r && !a->stopping) {
		struct write *w = token_write(a, coap_pdu_get_token(rcvd));
		unsigned int code = coap_pdu_get_code(rcvd);

		if (!w)
			return COAP_RESPONSE_FAIL;
		write_done(a, w, code >> 5 == 2 ? NULL : ad_coap_code_name(code));
		return COAP_RESPONSE_OK;
	}
	if (!r || a->stopping)
		return COAP_RESPONSE_FAIL; /* not ours (any more): RST */
	observe = !opt_uint(rcvd, COAP_OPTION_OBSERVE, &obs);
	opt_uint(rcvd, COAP_OPTION_CONTENT_FORMAT, &cf);
	if (opt_uint(rcvd, COAP_OPTION_MAXAGE, &max_age) == 0)
		max_age *= 1000;
	if (!coap_get_data_large(rcvd, &len, &data, &off, &total))
		data = NULL, len = 0;
	if (!observe)
		a->devs[r->dev - a->core.devs].res[r->index].observing = false;
	arm(a, ad_coap_core_response(&a->core, r, clock_now(a), coap_pdu_get_code(rcvd), (int)cf,
				     observe, max_age, data, len));
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason,
		    const coap_mid_t mid)
{
	struct ad_coap_adapter *a = coap_get_app_data(coap_session_get_context(s));
	struct ad_coap_res *r;
	int err;

	(void)mid;
	if (!sent || a->stopping)
		return;
	r = token_res(a, coap_pdu_get_token(sent));
	if (!r) {
		struct write *w = token_write(a, coap_pdu_get_token(sent));

		if (w)
			write_done(a, w,
				   reason == COAP_NACK_TOO_MANY_RETRIES ? "timeout"
				   : reason == COAP_NACK_RST		? "reset (RST)"
									: "device unreachable");
		return;
	}
	switch (reason) {
	case COAP_NACK_TOO_MANY_RETRIES:
		err = -ETIMEDOUT;
		break;
	case COAP_NACK_RST:
		err = -ECONNRESET;
		break;
	case COAP_NACK_ICMP_ISSUE:
		err = -ECONNREFUSED;
		break;
	case COAP_NACK_NOT_DELIVERABLE:
		err = -EHOSTUNREACH;
		break;
	case COAP_NACK_TLS_FAILED:
		err = -EACCES; /* "DTLS handshake failed" */
		break;
	default:
		err = -EPROTO;
		break;
	}
	a->devs[r->dev - a->core.devs].res[r->index].observing = false;
	a->devs[r->dev - a->core.devs].res[r->index].gen++;
	arm(a, ad_coap_core_failure(&a->core, r, clock_now(a), err));
}

/* ------------------------------------------------------------- sessions */

static int session_open(struct dev_glue *g)
{
	struct ad_coap_adapter *a = g->a;
	const struct ad_coap_device *k = ad_coap_dev_keys(g->cd->cfg);
	coap_context_t *ctx;

	if (!g->resolved)
		return -EHOSTUNREACH;
	if (!dev_cu(g))
		return -ENOMEM;
	ctx = ad_coap_uv_context(dev_cu(g));
	if (k->secure) {
		g->peer = (struct ad_coap_dtls_peer){ .keys = k,
						      .log = a->base.log,
						      .name = g->cd->cfg->name,
						      .name_refused = g->peer.name_refused };
		g->sess = ad_coap_dtls_session(ctx, &g->dst, &g->peer);
	} else {
		g->sess = coap_new_client_session(ctx, NULL, &g->dst, COAP_PROTO_UDP);
	}
	if (!g->sess) {
		gw_log(a->base.log, LOG_WARNING, "coap", "%s: cannot open a session to %s",
		       g->cd->cfg->name, k->url);
		return -EHOSTUNREACH;
	}
	/* Many resources of one device: let their requests overlap. */
	coap_session_set_nstart(g->sess, 16);
	coap_session_set_app_data(g->sess, g);
	return 0;
}

static void maybe_done(struct ad_coap_adapter *a);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct dev_glue *g = container_of(req, struct dev_glue, gai);
	struct ad_coap_adapter *a = g->a;

	g->resolving = false;
	a->resolving--;
	if (status == 0 && res && res->ai_addrlen <= sizeof(g->dst.addr)) {
		coap_address_init(&g->dst);
		memcpy(&g->dst.addr, res->ai_addr, res->ai_addrlen);
		g->dst.size = res->ai_addrlen;
		g->resolved = true;
	} else if (status != UV_ECANCELED) {
		gw_log(a->base.log, LOG_WARNING, "coap", "%s: cannot resolve %s: %s",
		       g->cd->cfg->name, ad_coap_dev_keys(g->cd->cfg)->host, uv_strerror(status));
	}
	if (res)
		uv_freeaddrinfo(res);
	if (a->stopping) {
		maybe_done(a);
		return;
	}
	if (!a->resolving)
		arm(a, (int64_t)uv_now(a->base.loop));
}

/* --------------------------------------------------------------- adapter */

static void context_setup(struct ad_coap_adapter *a, struct ad_coap_uv *cu)
{
	coap_context_t *ctx = ad_coap_uv_context(cu);

	coap_set_app_data(ctx, a);
	coap_context_set_block_mode(ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	coap_register_response_handler(ctx, on_response);
	coap_register_nack_handler(ctx, on_nack);
}

static int start(struct ad_adapter *base)
{
	struct ad_coap_adapter *a = (struct ad_coap_adapter *)base;
	unsigned int i;
	int rc;

	rc = ad_coap_uv_new(base->loop, base->log, "coap", &a->cu);
	if (rc)
		return rc;
	context_setup(a, a->cu);
	for (i = 0; i < a->core.n_devs; i++) {
		struct dev_glue *g = &a->devs[i];
		const struct ad_coap_device *k = ad_coap_dev_keys(g->cd->cfg);

		g->pki = ad_coap_dtls_is_pki(k);
		if (!g->pki)
			continue;
		if (ad_coap_uv_new(base->loop, base->log, "coap", &g->cu)) {
			gw_log(base->log, LOG_ERR, "coap", "%s: cannot make a libcoap context",
			       g->cd->cfg->name);
			g->cu = NULL; /* session_open fails: the device goes offline */
			continue;
		}
		context_setup(a, g->cu);
	}
	uv_timer_init(base->loop, &a->timer);
	a->timer_open = true;
	a->timer_due = INT64_MAX;
	a->started = true;
	for (i = 0; i < a->core.n_devs; i++) {
		struct dev_glue *g = &a->devs[i];
		const struct ad_coap_device *k = ad_coap_dev_keys(g->cd->cfg);
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
		char port[8];

		snprintf(port, sizeof(port), "%u", k->port);
		if (uv_getaddrinfo(base->loop, &g->gai, on_resolved, k->host, port, &hints) == 0) {
			g->resolving = true;
			a->resolving++;
		}
	}
	if (!a->resolving)
		arm(a, (int64_t)uv_now(base->loop));
	return 0;
}

static void maybe_done(struct ad_coap_adapter *a)
{
	void (*done)(void *) = a->done;

	if (a->closing || a->resolving)
		return;
	a->done = NULL;
	if (done)
		done(a->done_arg);
}

static void on_cu_closed(void *arg)
{
	struct ad_coap_adapter *a = arg;

	a->closing--;
	maybe_done(a);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct ad_coap_adapter *a = container_of((uv_timer_t *)h, struct ad_coap_adapter, timer);

	a->closing--;
	maybe_done(a);
}

static void stop(struct ad_adapter *base, void (*done)(void *arg), void *arg)
{
	struct ad_coap_adapter *a = (struct ad_coap_adapter *)base;
	unsigned int i;

	a->done = done;
	a->done_arg = arg;
	if (!a->started || a->stopping) {
		if (!a->stopping && done)
			done(arg);
		return;
	}
	for (i = 0; i < MAX_WRITES; i++)
		if (a->writes[i].used)
			write_done(a, &a->writes[i], "adapter stopped");
	a->stopping = true;
	a->core.stopped = true;
	for (i = 0; i < a->core.n_devs; i++) {
		if (a->devs[i].resolving)
			uv_cancel((uv_req_t *)&a->devs[i].gai);
		a->devs[i].sess = NULL; /* freed with the context */
	}
	a->closing = 2;
	for (i = 0; i < a->core.n_devs; i++) {
		if (!a->devs[i].cu)
			continue;
		a->closing++;
		ad_coap_uv_close(a->devs[i].cu, on_cu_closed, a);
		a->devs[i].cu = NULL;
	}
	uv_close((uv_handle_t *)&a->timer, on_timer_closed);
	ad_coap_uv_close(a->cu, on_cu_closed, a);
	a->cu = NULL;
}

static void adapter_free(struct ad_adapter *base)
{
	struct ad_coap_adapter *a = (struct ad_coap_adapter *)base;
	unsigned int i;

	for (i = 0; a->devs && i < a->core.n_devs; i++)
		gw_free(a->devs[i].res);
	gw_free(a->devs);
	ad_coap_core_fini(&a->core);
	gw_free(a);
}

/* A write: PUT or POST of the value to the point's write_path, answered by the device's code. */
static int command(struct ad_adapter *base, const struct ad_point *pt, const struct ad_value *value,
		   void *token, const char **why)
{
	struct ad_coap_adapter *a = (struct ad_coap_adapter *)base;
	const struct ad_coap_point *cp;
	struct dev_glue *g = NULL;
	struct write *w = NULL;
	uint8_t tok[TOKEN_LEN], b[4];
	char payload[1024];
	coap_pdu_t *pdu;
	size_t len;
	unsigned int i;
	int cf, rc;

	for (i = 0; pt && i < a->core.n_devs; i++)
		if (a->core.devs[i].cfg == pt->device)
			g = &a->devs[i];
	if (!g || !value) {
		*why = "not a coap point";
		return -EINVAL;
	}
	if (!a->started || a->stopping) {
		*why = "adapter not running";
		return -ECANCELED;
	}
	cp = ad_coap_pt_keys(pt);
	rc = ad_coap_write_payload(pt, value, payload, sizeof(payload), &len, &cf, why);
	if (rc)
		return rc;
	for (i = 0; i < MAX_WRITES && !w; i++)
		if (!a->writes[i].used)
			w = &a->writes[i];
	if (!w) {
		*why = "too many writes in flight";
		return -ENOBUFS;
	}
	if (!g->sess && session_open(g)) {
		*why = "device unreachable";
		return -EHOSTUNREACH;
	}
	pdu = coap_new_pdu(COAP_MESSAGE_CON,
			   cp->method == AD_COAP_POST ? COAP_REQUEST_CODE_POST
						      : COAP_REQUEST_CODE_PUT,
			   g->sess);
	if (!pdu) {
		*why = "out of memory";
		return -ENOMEM;
	}
	token_make(tok, g->index, WRITE_RES, ++a->write_gen);
	coap_add_token(pdu, sizeof(tok), tok);
	if (add_path(pdu, cp->write_path) ||
	    !coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
			     coap_encode_var_safe(b, sizeof(b), (unsigned int)cf), b) ||
	    !coap_add_data(pdu, len, (const uint8_t *)payload)) {
		coap_delete_pdu(pdu);
		*why = "request too large";
		return -EMSGSIZE;
	}
	if (coap_send(g->sess, pdu) == COAP_INVALID_MID) {
		*why = "cannot send";
		return -EIO;
	}
	*w = (struct write){ .used = true,
			     .gen = a->write_gen,
			     .token = token,
			     .value = *value,
			     .deadline = (int64_t)uv_now(base->loop) +
					 ad_coap_dev_keys(pt->device)->timeout_ms };
	if (w->value.type == AD_VAL_STRING)
		w->value.type = AD_VAL_NONE; /* the caller's buffer does not outlive this call */
	ad_coap_uv_kick(dev_cu(g));
	arm(a, w->deadline);
	a->core.stats.writes++;
	return 0;
}

/*
 * $SYS/fieldmq/coap/client/...: the device side's counters (the CoAP server
 * publishes its own beside them, under $SYS/fieldmq/coap/).
 */
static void figures(const struct ad_adapter *base, ad_figure_fn emit, void *arg)
{
	const struct ad_coap_stats *st = &((const struct ad_coap_adapter *)base)->core.stats;

	emit(arg, "client/requests", st->requests);
	emit(arg, "client/registrations", st->registrations);
	emit(arg, "client/responses", st->responses);
	emit(arg, "client/notifications", st->notifications);
	emit(arg, "client/failures", st->failures);
	emit(arg, "client/parse_errors", st->parse_errors);
	emit(arg, "client/readings", st->readings);
	emit(arg, "client/skipped", st->skipped);
	emit(arg, "client/writes", st->writes);
	emit(arg, "client/devices", st->devices);
	emit(arg, "client/devices/online", st->devices_online);
}

/* /metrics: @d's exchanges, errors by kind and latency, as the core counted them. */
static int device_stats(const struct ad_adapter *base, const struct ad_device *d,
			struct ad_device_stats *out)
{
	return ad_coap_core_device_stats(&((const struct ad_coap_adapter *)base)->core, d, out);
}

static const struct ad_ops coap_ops = {
	.name = "coap",
	.start = start,
	.stop = stop,
	.free = adapter_free,
	.command = command,
	.figures = figures,
	.device_stats = device_stats,
};

struct ad_adapter *ad_coap_new(uv_loop_t *loop, const struct ad_map *map,
			       const struct gw_logger *log, const struct ad_sink *sink)
{
	struct ad_coap_adapter *a = gw_calloc(1, sizeof(*a));
	unsigned int i;

	if (!a)
		return NULL;
	a->base.ops = &coap_ops;
	a->base.loop = loop;
	a->base.log = log;
	a->base.map = map;
	a->base.sink = *sink;
	if (ad_coap_core_init(&a->core, map, &core_ops, a))
		goto fail;
	if (a->core.n_devs > 65535)
		goto fail;
	a->devs = gw_calloc(a->core.n_devs ? a->core.n_devs : 1, sizeof(*a->devs));
	if (!a->devs)
		goto fail;
	for (i = 0; i < a->core.n_devs; i++) {
		struct dev_glue *g = &a->devs[i];

		g->a = a;
		g->cd = &a->core.devs[i];
		g->cd->glue = g;
		g->index = i;
		g->res = gw_calloc(g->cd->n_res ? g->cd->n_res : 1, sizeof(*g->res));
		if (!g->res)
			goto fail;
	}
	return &a->base;
fail:
	adapter_free(&a->base);
	return NULL;
}

void ad_coap_get_stats(const struct ad_adapter *base, struct ad_coap_stats *out)
{
	const struct ad_coap_adapter *a = (const struct ad_coap_adapter *)base;

	*out = a->core.stats;
}
