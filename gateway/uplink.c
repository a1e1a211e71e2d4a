/*
 * uplink.c - the sans-I/O core of the uplink: an MQTT 3.1.1 / 5.0 client of
 * the cloud broker and the store-and-forward queue in front of it.
 *
 * This file: the connection's life (idle, waiting with a jittered backoff,
 * connecting, waiting for CONNACK, connected, stopped), the timer (connect
 * timeout, keepalive, drain rate), and new / free / start / stop. The other
 * parts are listed in uplink_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gateway/uplink_int.h"

static const char *const state_names[__UPL_STATE_MAX] = {
	[UPL_IDLE] = "idle",	   [UPL_WAIT] = "waiting", [UPL_CONNECTING] = "connecting",
	[UPL_CONNACK] = "connack", [UPL_UP] = "connected", [UPL_STOPPED] = "stopped",
};

/* ---------------------------------------------------------------- helpers */

static char *dup_or_empty(const char *s)
{
	return gw_strdup(s ? s : "");
}

void gw_upl__set_state(struct gw_upl *u, enum upl_state s, int64_t now)
{
	u->state = s;
	u->since = now;
}

uint64_t gw_upl_backoff(uint64_t min_ms, uint64_t max_ms, unsigned int attempt, uint32_t rnd)
{
	uint64_t base = min_ms ? min_ms : 1;

	while (attempt-- && base < max_ms)
		base *= 2;
	if (base > max_ms)
		base = max_ms;
	if (!base)
		return 0;
	/* Shorten by up to a quarter, so a fleet does not reconnect in step. */
	return base - (uint64_t)((base / 4) * (rnd / 4294967295.0));
}

/* The link is gone (the transport is closed or was never open): wait and retry. */
static void link_down(struct gw_upl *u, int64_t now)
{
	struct gw_list *lists[] = { &u->resume, &u->blq, &u->live };
	struct gw_list *pos, *tmp;
	unsigned int i;
	uint64_t delay;
	bool was_up = u->state == UPL_UP;

	/* In-flight messages are put back first, in order, with their ids. */
	while (!gw_list_empty(&u->inflight)) {
		struct upl_msg *m = gw_list_entry(u->inflight.prev, struct upl_msg, link);

		gw_upl__q_unlink(u, m);
		gw_upl__q_add(u, m, Q_RESUME, true);
	}
	/* The birth message is made again after the next CONNACK. */
	for (i = 0; i < GW_ARRAY_SIZE(lists); i++) {
		gw_list_for_each_safe (pos, tmp, lists[i]) {
			struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

			if (m->birth)
				gw_upl__msg_free(u, m);
		}
	}
	gw_upl__live_off(u);
	gw_upl__evict(u);
	if (u->has_store)
		gw_upl__enter_backlog(u);
	u->rx_len = 0;
	u->ping_sent = 0;
	u->rate_blocked = false;
	if (u->state == UPL_STOPPED)
		return;
	delay = gw_upl_backoff(u->rmin, u->rmax, u->attempts++,
			       u->ops->random ? u->ops->random(u->arg) : 0);
	gw_upl__set_state(u, UPL_WAIT, now);
	u->retry_at = now + (int64_t)delay;
	gw_log(u->log, was_up ? LOG_WARNING : LOG_INFO, MOD, "reconnecting to %s in %" PRIu64 " ms",
	       u->url, delay);
}

/* Close the transport and go down, with a log line saying why. */
void gw_upl__drop_link(struct gw_upl *u, int64_t now, const char *why)
{
	gw_log(u->log, LOG_WARNING, MOD, "%s: %s; closing the connection", u->url, why);
	u->ops->close(u->arg);
	link_down(u, now);
}

static void try_connect(struct gw_upl *u, int64_t now)
{
	int rc;

	gw_upl__set_state(u, UPL_CONNECTING, now);
	rc = u->ops->connect(u->arg);
	if (rc) {
		gw_log(u->log, LOG_WARNING, MOD, "%s: cannot start a connection: %s", u->url,
		       strerror(-rc));
		link_down(u, now);
	}
}

/* ------------------------------------------------------------ transport */

void gw_upl_on_transport_up(struct gw_upl *u, int64_t now)
{
	if (u->state != UPL_CONNECTING)
		return;
	gw_upl__set_state(u, UPL_CONNACK, now);
	u->rx_len = 0;
	if (gw_upl__send_connect(u, now))
		gw_upl__drop_link(u, now, "cannot send CONNECT");
}

void gw_upl_on_transport_down(struct gw_upl *u, int err, int64_t now)
{
	if (u->state != UPL_CONNECTING && u->state != UPL_CONNACK && u->state != UPL_UP)
		return;
	if (u->state == UPL_UP)
		gw_log(u->log, LOG_WARNING, MOD, "%s: connection lost: %s", u->url,
		       err ? strerror(-err) : "closed by the peer");
	else
		gw_log(u->log, LOG_WARNING, MOD, "%s: cannot connect: %s", u->url,
		       err ? strerror(-err) : "closed by the peer");
	link_down(u, now);
}

/* ---------------------------------------------------------------- timer */

int64_t gw_upl_deadline(const struct gw_upl *u)
{
	int64_t d = INT64_MAX;

	switch (u->state) {
	case UPL_WAIT:
		return u->retry_at;
	case UPL_CONNECTING:
	case UPL_CONNACK:
		return u->since + UPL_CONNECT_TIMEOUT_MS;
	case UPL_UP:
		if (u->ka_s) {
			int64_t ka = (int64_t)u->ka_s * 1000;

			d = u->ping_sent ? u->ping_sent + ka : u->last_tx + ka;
		}
		if (u->rate_blocked && u->drain_rate) {
			int64_t need = 1000 - u->tokens;
			int64_t at = u->tok_at + (need + u->drain_rate - 1) / u->drain_rate;

			d = GW_MIN(d, at);
		}
		return d;
	default:
		return INT64_MAX;
	}
}

void gw_upl_on_timer(struct gw_upl *u, int64_t now)
{
	switch (u->state) {
	case UPL_WAIT:
		if (now >= u->retry_at)
			try_connect(u, now);
		break;
	case UPL_CONNECTING:
	case UPL_CONNACK:
		if (now - u->since >= UPL_CONNECT_TIMEOUT_MS)
			gw_upl__drop_link(u, now, "connection attempt timed out");
		break;
	case UPL_UP:
		if (u->ka_s) {
			int64_t ka = (int64_t)u->ka_s * 1000;

			if (u->ping_sent && now - u->ping_sent >= ka) {
				gw_upl__drop_link(u, now, "no PINGRESP within the keepalive");
				return;
			}
			if (!u->ping_sent && now - u->last_tx >= ka) {
				struct mqtt_pkt p;

				memset(&p, 0, sizeof(p));
				p.type = MQTT_PINGREQ;
				if (gw_upl__send_pkt(u, &p, now)) {
					gw_upl__drop_link(u, now, "cannot send PINGREQ");
					return;
				}
				u->ping_sent = now;
			}
		}
		if (u->rate_blocked)
			gw_upl__pump(u, now);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------ lifecycle */

static int copy_filters(struct gw_filter *dst, const struct gw_filter *src, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (!src[i].filter || !mqtt_filter_valid(gw_slice_cstr(src[i].filter)))
			return -EINVAL;
		dst[i].filter = gw_strdup(src[i].filter);
		dst[i].qos = src[i].qos;
		if (!dst[i].filter)
			return -ENOMEM;
	}
	return 0;
}

int gw_upl_new(const struct gw_uplink_config *cfg, const char *status_topic,
	       const struct gw_upl_ops *ops, void *ops_arg, const struct gw_logger *lg,
	       struct gw_upl **out)
{
	struct gw_upl *u = gw_calloc(1, sizeof(*u));
	size_t wl;
	int rc = -ENOMEM;

	if (!u)
		return -ENOMEM;
	u->ops = ops;
	u->arg = ops_arg;
	u->log = lg;
	gw_list_init(&u->resume);
	gw_list_init(&u->blq);
	gw_list_init(&u->live);
	gw_list_init(&u->held);
	gw_list_init(&u->inflight);
	gw_list_init(&u->pend);
	u->bl_last = &u->blq;
	u->url = dup_or_empty(cfg->url);
	u->client_id = dup_or_empty(cfg->client_id);
	u->username = dup_or_empty(cfg->username);
	u->password = dup_or_empty(cfg->password);
	u->remote_prefix = dup_or_empty(cfg->remote_prefix);
	u->local_prefix = dup_or_empty(cfg->local_prefix);
	u->status_topic = dup_or_empty(status_topic);
	wl = strlen(u->remote_prefix ? u->remote_prefix : "") +
	     strlen(u->status_topic ? u->status_topic : "") + 1;
	u->will_topic = gw_malloc(wl);
	if (!u->url || !u->client_id || !u->username || !u->password || !u->remote_prefix ||
	    !u->local_prefix || !u->status_topic || !u->will_topic)
		goto fail;
	snprintf(u->will_topic, wl, "%s%s", u->remote_prefix, u->status_topic);
	rc = copy_filters(u->fwd, cfg->forward, cfg->n_forward);
	u->n_fwd = cfg->n_forward;
	if (rc)
		goto fail;
	rc = copy_filters(u->sub, cfg->subscribe, cfg->n_subscribe);
	u->n_sub = cfg->n_subscribe;
	if (rc)
		goto fail;
	rc = -EINVAL;
	if (!mqtt_topic_valid(gw_slice_cstr(u->will_topic)))
		goto fail;
	u->version = cfg->protocol == 4 ? MQTT_V311 : MQTT_V5;
	u->keepalive_s = (uint16_t)GW_MIN(cfg->keepalive_ms / 1000, 65535);
	u->session_expiry_s = (uint32_t)GW_MIN(cfg->session_expiry_ms / 1000, 0xffffffffu);
	u->qmode = cfg->queue;
	u->queue_qos0 = cfg->queue_qos0;
	u->max_inflight = cfg->max_inflight ? cfg->max_inflight : 32;
	u->drain_rate = cfg->drain_rate;
	u->rmin = cfg->reconnect_min_ms;
	u->rmax = GW_MAX(cfg->reconnect_max_ms, cfg->reconnect_min_ms);
	u->has_store = ops->q_append && ops->q_peek && ops->q_ack;
	/* Records left by an earlier run are read before anything is sent. */
	u->backlog = u->has_store;
	u->blind = u->has_store;
	u->max_qos = 2;
	u->retain_ok = true;
	u->state = UPL_IDLE;
	*out = u;
	return 0;
fail:
	gw_upl_free(u);
	return rc;
}

static void free_lists(struct gw_upl *u)
{
	struct gw_list *lists[] = { &u->inflight, &u->resume, &u->blq, &u->live, &u->held };
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(lists); i++)
		while (!gw_list_empty(lists[i]))
			gw_upl__msg_free(u, gw_list_first(lists[i], struct upl_msg, link));
}

void gw_upl_free(struct gw_upl *u)
{
	unsigned int i;

	if (!u)
		return;
	free_lists(u);
	for (i = 0; i < u->n_regions; i++)
		gw_free(u->regions[i].ids);
	while (!gw_list_empty(&u->pend)) {
		struct upl_pend *pd = gw_list_first(&u->pend, struct upl_pend, link);

		gw_list_del(&pd->link);
		gw_upl__release(u, pd->hold);
		gw_free(pd);
	}
	for (i = 0; i < u->n_fwd; i++)
		gw_free(u->fwd[i].filter);
	for (i = 0; i < u->n_sub; i++)
		gw_free(u->sub[i].filter);
	gw_free(u->url);
	gw_free(u->client_id);
	gw_free(u->username);
	gw_free(u->password);
	gw_free(u->remote_prefix);
	gw_free(u->local_prefix);
	gw_free(u->status_topic);
	gw_free(u->will_topic);
	gw_free(u->rx);
	gw_free(u->tx);
	gw_free(u);
}

void gw_upl_start(struct gw_upl *u, int64_t now)
{
	if (u->state != UPL_IDLE)
		return;
	gw_log(u->log, LOG_INFO, MOD, "connecting to %s (queue %s)", u->url,
	       u->qmode == GW_UPQ_ALWAYS    ? "always"
	       : u->qmode == GW_UPQ_OFFLINE ? "offline"
					    : "off");
	try_connect(u, now);
}

void gw_upl_stop(struct gw_upl *u, int64_t now)
{
	enum upl_state s = u->state;

	if (s == UPL_STOPPED)
		return;
	gw_upl__set_state(u, UPL_STOPPED, now);
	if (s == UPL_UP) {
		struct mqtt_pkt p;

		/* Our own goodbye: the will is not published after a DISCONNECT. */
		memset(&p, 0, sizeof(p));
		p.type = MQTT_PUBLISH;
		p.publish.topic = gw_slice_cstr(u->will_topic);
		p.publish.payload = GW_SLICE_STR("offline");
		p.publish.retain = u->retain_ok;
		gw_upl__send_pkt(u, &p, now);
		memset(&p, 0, sizeof(p));
		p.type = MQTT_DISCONNECT;
		gw_upl__send_pkt(u, &p, now);
	}
	if (s == UPL_UP || s == UPL_CONNACK || s == UPL_CONNECTING)
		u->ops->close(u->arg);
	gw_log(u->log, LOG_INFO, MOD, "stopped (%s)", state_names[s]);
	free_lists(u);
}

void gw_upl_get_stats(const struct gw_upl *u, struct gw_uplink_stats *out)
{
	*out = u->st;
	out->connected = u->state == UPL_UP;
	out->inflight = u->n_inflight;
}
