/*
 * coap_service.c - the CoAP server ([coap], adapters/coap/coap_srv.h) as
 * one of the optional services of gateway.c: made from the parsed config
 * after the broker listens, stopped before it, its figures published under
 * $SYS/fieldmq/coap/server/ (the client side has coap/client/).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "adapters/coap/coap_srv.h"
#include "gateway/gateway_int.h"

#define MOD "coap"

bool gw__coap_enabled(const struct gw *g)
{
	return g->cfg.coap.enabled;
}

int gw__coap_start(struct gw *g)
{
	const struct gw_coap_config *cc = &g->cfg.coap;
	struct coapsrv_config c;
	int rc;

	coapsrv_config_defaults(&c);
	c.listen = cc->listen;
	c.psk_identity = cc->psk_identity;
	c.psk_key = cc->psk_key;
	c.connection_required = cc->connection_required;
	c.notify_type = (enum coapsrv_notify)cc->notify_type;
	c.mountpoint = cc->mountpoint;
	c.max_clients = cc->max_clients;
	c.max_observations = cc->max_observations;
	c.max_queued = cc->max_queued;
	c.max_payload = (uint32_t)cc->max_payload;
	c.heartbeat_ms = cc->heartbeat_ms;
	c.rate_limit = cc->rate_limit;
	rc = coapsrv_server_new(g->loop, g->broker, &c, g->log, &g->coap);
	if (rc) {
		gw_log(g->log, LOG_ERR, MOD, "cannot create the CoAP server on %s: %s", cc->listen,
		       rc == -ENOTSUP  ? "coaps:// needs a libcoap with DTLS"
		       : rc == -ENOENT ? "libcoap cannot be loaded (is libcoap3 installed?)"
		       : rc == -EINVAL
			       ? "a bad listen entry, or coaps:// without psk_identity and psk_key"
			       : strerror(-rc));
		return rc;
	}
	rc = coapsrv_server_start(g->coap);
	if (rc)
		gw_log(g->log, LOG_ERR, MOD, "cannot listen on %s", cc->listen);
	return rc;
}

void gw__coap_stop(struct gw *g)
{
	if (g->coap)
		coapsrv_server_stop(g->coap, NULL, NULL);
}

void gw__coap_free(struct gw *g)
{
	coapsrv_server_free(g->coap);
	g->coap = NULL;
}

static void figure(struct gw *g, const char *name, uint64_t v)
{
	char topic[96], buf[32];

	snprintf(topic, sizeof(topic), "$SYS/fieldmq/coap/server/%s", name);
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	gw__publish(g, topic, buf, strlen(buf), 0, true, NULL);
}

void gw__coap_sys(struct gw *g)
{
	struct coapsrv_stats s;

	if (!g->coap)
		return;
	coapsrv_server_get_stats(g->coap, &s);
	figure(g, "clients", s.clients);
	figure(g, "clients/total", s.clients_total);
	figure(g, "clients/refused", s.clients_refused);
	figure(g, "clients/expired", s.clients_expired);
	figure(g, "observations", s.observations);
	figure(g, "observations/refused", s.observations_refused);
	figure(g, "requests", s.requests);
	figure(g, "publishes", s.publishes);
	figure(g, "notifications", s.notifications);
	figure(g, "notifications/dropped", s.notify_dropped);
	figure(g, "errors/bad_request", s.bad_request);
	figure(g, "errors/unauthorized", s.unauthorized);
	figure(g, "errors/not_found", s.not_found);
	figure(g, "errors/bad_method", s.bad_method);
	figure(g, "errors/too_large", s.too_large);
	figure(g, "rate_limited", s.rate_limited);
	figure(g, "malformed", s.malformed);
}
