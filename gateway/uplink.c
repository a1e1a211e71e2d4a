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

#include "gateway/persist.h"
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

static void set_state(struct gw_upl *u, enum upl_state s, int64_t now)
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

/* ------------------------------------------------------------- encoding */

static int ensure_tx(struct gw_upl *u, size_t n)
{
	uint8_t *p;

	if (n <= u->tx_cap)
		return 0;
	p = gw_realloc(u->tx, n);
	if (!p)
		return -ENOMEM;
	u->tx = p;
	u->tx_cap = n;
	return 0;
}

/* Encodes and sends @p. 0, -ENOMEM, -EMSGSIZE/-EINVAL (not encodable), or the send error. */
static int send_pkt(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now)
{
	struct gw_writer w;
	size_t n = mqtt_encoded_size(u->version, p);
	int rc;

	if (!n)
		return -EINVAL;
	rc = ensure_tx(u, n);
	if (rc)
		return rc;
	gw_writer_init(&w, u->tx, u->tx_cap);
	rc = mqtt_encode(&w, u->version, p);
	if (rc)
		return rc;
	rc = u->ops->send(u->arg, u->tx, w.len);
	if (rc)
		return rc;
	u->last_tx = now;
	return 0;
}

static int send_ack(struct gw_upl *u, uint8_t type, uint16_t pid, int64_t now)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.packet_id = pid;
	return send_pkt(u, &p, now);
}

static uint16_t alloc_pid(struct gw_upl *u)
{
	unsigned int tries;

	for (tries = 0; tries < 65536; tries++) {
		if (++u->next_pid == 0)
			u->next_pid = 1;
		if (u->next_pid == u->sub_pid)
			continue;
		/* In flight, or put back after a disconnect (they keep theirs). */
		if (!(u->pid_used[u->next_pid >> 3] & (1u << (u->next_pid & 7))))
			return u->next_pid;
	}
	return 0;
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
	set_state(u, UPL_WAIT, now);
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

	set_state(u, UPL_CONNECTING, now);
	rc = u->ops->connect(u->arg);
	if (rc) {
		gw_log(u->log, LOG_WARNING, MOD, "%s: cannot start a connection: %s", u->url,
		       strerror(-rc));
		link_down(u, now);
	}
}

static int send_connect(struct gw_upl *u, int64_t now)
{
	struct mqtt_pkt p;
	struct mqtt_connect *c = &p.connect;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	/* Keep the session: the cloud keeps our subscriptions and QoS 1/2 messages. */
	c->clean_start = false;
	c->keep_alive = u->keepalive_s;
	c->client_id = gw_slice_cstr(u->client_id);
	if (*u->username) {
		c->has_username = true;
		c->username = gw_slice_cstr(u->username);
	}
	if (*u->password) {
		c->has_password = true;
		c->password = gw_slice_cstr(u->password);
	}
	c->has_will = true;
	c->will.qos = 1;
	c->will.retain = true;
	c->will.topic = gw_slice_cstr(u->will_topic);
	c->will.payload = GW_SLICE_STR("offline");
	if (u->version == MQTT_V5) {
		p.props.has_session_expiry = true;
		p.props.session_expiry = u->session_expiry_s;
		p.props.has_receive_maximum = true;
		p.props.receive_maximum = UPL_RECV_MAX;
		p.props.has_max_packet_size = true;
		p.props.max_packet_size = UPL_RX_MAX;
	}
	return send_pkt(u, &p, now);
}

static int send_subscribe(struct gw_upl *u, int64_t now)
{
	struct mqtt_sub_entry list[GW_MAX_FILTERS];
	struct mqtt_pkt p;
	unsigned int i;

	if (!u->n_sub)
		return 0;
	memset(&p, 0, sizeof(p));
	memset(list, 0, sizeof(list));
	for (i = 0; i < u->n_sub; i++) {
		list[i].filter = gw_slice_cstr(u->sub[i].filter);
		list[i].qos = u->sub[i].qos;
		/* 5.0: never our own messages back; retained only for a new subscription. */
		list[i].no_local = true;
		list[i].retain_as_published = true;
		list[i].retain_handling = 1;
	}
	p.type = MQTT_SUBSCRIBE;
	u->sub_pid = 0;
	p.packet_id = alloc_pid(u);
	u->sub_pid = p.packet_id;
	p.subscribe.list = list;
	p.subscribe.count = u->n_sub;
	return send_pkt(u, &p, now);
}

/* The glue's wall clock (ms since the epoch), 0 when it gives none. */
int64_t gw_upl__wall_ms(const struct gw_upl *u)
{
	return u->ops->wall_ms ? u->ops->wall_ms(u->arg) : 0;
}

/* The message is done with (acknowledged, refused or expired): forget it everywhere. */
static void msg_done(struct gw_upl *u, struct upl_msg *m)
{
	if (m->id)
		u->ops->q_ack(u->arg, m->id);
	gw_upl__msg_free(u, m);
}

/*
 * Sends @m (queued). Returns 0 (sent: in flight, or freed for QoS 0), 1
 * when it was dropped instead (expired, too large), < 0 when the link failed.
 */
int gw_upl__send_msg(struct gw_upl *u, struct upl_msg *m, bool resume, int64_t now)
{
	struct brk_msg_props bp;
	int64_t at = 0;
	struct mqtt_pkt p;
	uint8_t qos = GW_MIN(m->qos, u->max_qos);
	int rc;

	memset(&p, 0, sizeof(p));
	if (m->state == M_RELEASED && resume) {
		/* [MQTT-4.4.0-1] the session resumed: finish the QoS 2 exchange. */
		p.type = MQTT_PUBREL;
		p.packet_id = m->pid;
		rc = send_pkt(u, &p, now);
		if (rc)
			return rc;
		goto in_flight;
	}
	p.type = MQTT_PUBLISH;
	p.publish.topic = (struct gw_slice){ msg_topic(m), m->topic_len };
	p.publish.payload = (struct gw_slice){ msg_payload(m), m->payload_len };
	p.publish.qos = qos;
	p.publish.retain = m->retain && u->retain_ok;
	if (u->version == MQTT_V5 && m->props_len &&
	    !gw_props_decode((struct gw_slice){ msg_props(m), m->props_len }, &bp, &at)) {
		p.props.has_payload_format = bp.has_payload_format;
		p.props.payload_format = bp.payload_format;
		if (bp.has_expiry) {
			int64_t wall = at ? gw_upl__wall_ms(u) : 0;
			uint64_t age = at && wall > at ? (uint64_t)(wall - at) / 1000 : 0;

			/* [MQTT-3.3.2-5] an expired message is not sent; the rest is what is left. */
			if (age >= bp.expiry) {
				msg_done(u, m);
				return 1;
			}
			p.props.has_message_expiry = true;
			p.props.message_expiry = bp.expiry - (uint32_t)age;
		}
		p.props.has_content_type = bp.content_type.len > 0;
		p.props.content_type = bp.content_type;
		p.props.has_response_topic = bp.response_topic.len > 0;
		p.props.response_topic = bp.response_topic;
		p.props.has_correlation_data = bp.correlation_data.len > 0;
		p.props.correlation_data = bp.correlation_data;
		p.props.has_user_props = bp.user_props.len > 0;
		p.props.user_props = bp.user_props;
	}
	if (qos) {
		if (!m->pid || !resume) {
			if (!m->pid) {
				m->pid = alloc_pid(u);
				if (m->pid && gw_upl__pid_holds(m->where))
					gw_upl__pid_mark(u, m->pid, true);
			}
			m->state = M_PUBLISHED;
		}
		p.packet_id = m->pid;
		p.publish.dup = resume && m->state == M_PUBLISHED;
	}
	if (u->max_pkt && mqtt_encoded_size(u->version, &p) > u->max_pkt) {
		gw_log(u->log, LOG_WARNING, MOD,
		       "%.*s: message larger than the cloud's maximum packet size (%" PRIu32
		       "), dropped",
		       (int)m->topic_len, (const char *)msg_topic(m), u->max_pkt);
		u->st.dropped++;
		msg_done(u, m);
		return 1;
	}
	rc = send_pkt(u, &p, now);
	if (rc == -EINVAL || rc == -EMSGSIZE) {
		gw_log(u->log, LOG_WARNING, MOD, "%.*s: cannot encode the message (%s), dropped",
		       (int)m->topic_len, (const char *)msg_topic(m), strerror(-rc));
		u->st.dropped++;
		msg_done(u, m);
		return 1;
	}
	if (rc)
		return rc;
	if (m->where == Q_BACKLOG && m->id > u->last_bl_sent)
		u->last_bl_sent = m->id;
	if (!qos) {
		u->st.sent++;
		msg_done(u, m);
		return 0;
	}
in_flight:
	/* Sent: no longer holds back later messages of its topic. */
	gw_upl__hot_del(u, m);
	gw_upl__q_unlink(u, m);
	gw_upl__q_add(u, m, Q_INFLIGHT, false);
	return 0;
}

/* Whether @m needs a free slot of the window, and there is none. */
bool gw_upl__window_full(const struct gw_upl *u, const struct upl_msg *m)
{
	return m->qos && GW_MIN(m->qos, u->max_qos) && u->n_inflight >= u->quota;
}

static struct upl_msg *live_ready(struct gw_upl *u)
{
	struct upl_msg *m;

	if (u->release_due)
		gw_upl__release_held(u);
	if (gw_list_empty(&u->live))
		return NULL;
	m = gw_list_first(&u->live, struct upl_msg, link);
	return gw_upl__window_full(u, m) ? NULL : m;
}

/*
 * Sends what the window, the drain rate and the backlog allow: the resumed
 * window first, then one backlog and one live message in turn while both
 * have one ready (either alone takes every free slot).
 */
void gw_upl__pump(struct gw_upl *u, int64_t now)
{
	u->rate_blocked = false;
	if (u->state != UPL_UP)
		return;
	gw_upl__maybe_live_on(u);
	while (!gw_list_empty(&u->resume)) {
		struct upl_msg *m = gw_list_first(&u->resume, struct upl_msg, link);

		if (gw_upl__window_full(u, m))
			goto out; /* nothing overtakes what was in flight */
		if (gw_upl__send_msg(u, m, m->pid != 0, now) < 0) {
			gw_upl__drop_link(u, now, "cannot send");
			return;
		}
	}
	for (;;) {
		struct upl_msg *b = gw_upl__backlog_ready(u, now), *l = live_ready(u), *m;

		if (!b && !l)
			break;
		m = b && l ? (u->turn_live ? l : b) : b ? b : l;
		if (m == b && m->from_store && u->drain_rate)
			u->tokens -= 1000;
		u->turn_live = m == b;
		if (gw_upl__send_msg(u, m, false, now) < 0) {
			gw_upl__drop_link(u, now, "cannot send");
			return;
		}
	}
out:
	gw_upl__maybe_peek(u);
	gw_upl__regions_trim(u);
}

/* ------------------------------------------------------- packets in */

static struct upl_msg *find_inflight(struct gw_upl *u, uint16_t pid)
{
	struct gw_list *pos;

	gw_list_for_each (pos, &u->inflight) {
		struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

		if (m->pid == pid)
			return m;
	}
	return NULL;
}

static const char *reason_name(uint8_t rc)
{
	switch (rc) {
	case MQTT_RC_UNSUPPORTED_VERSION:
		return "unsupported protocol version";
	case MQTT_RC_CLIENT_ID_INVALID:
		return "client identifier not valid";
	case MQTT_RC_BAD_USER_OR_PASSWORD:
		return "bad user name or password";
	case MQTT_RC_NOT_AUTHORIZED:
		return "not authorized";
	case MQTT_RC_SERVER_UNAVAILABLE:
		return "server unavailable";
	case MQTT_RC_SERVER_BUSY:
		return "server busy";
	case MQTT_RC_BANNED:
		return "banned";
	case MQTT_RC_SESSION_TAKEN_OVER:
		return "session taken over";
	case MQTT_RC_SERVER_SHUTTING_DOWN:
		return "server shutting down";
	case MQTT_RC_KEEP_ALIVE_TIMEOUT:
		return "keep alive timeout";
	case MQTT_RC_QUOTA_EXCEEDED:
		return "quota exceeded";
	case MQTT_RC_PACKET_TOO_LARGE:
		return "packet too large";
	default:
		return rc >= 0x80 ? "refused" : "ok";
	}
}

static const char *connack_v3_name(uint8_t rc)
{
	static const char *const n[] = {
		"accepted",	      "unacceptable protocol version", "identifier rejected",
		"server unavailable", "bad user name or password",     "not authorized"
	};

	return rc < GW_ARRAY_SIZE(n) ? n[rc] : "refused";
}

static void on_connack(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now)
{
	struct gw_list *pos;
	struct upl_msg *birth;
	bool sp = p->connack.session_present;
	uint8_t rc = p->connack.reason_code;

	if (rc) {
		char why[128];

		snprintf(why, sizeof(why), "connection refused: %s (%u)",
			 u->version == MQTT_V5 ? reason_name(rc) : connack_v3_name(rc), rc);
		gw_upl__drop_link(u, now, why);
		return;
	}
	set_state(u, UPL_UP, now);
	u->attempts = 0;
	u->st.connects++;
	u->quota = u->max_inflight ? u->max_inflight : 1;
	if (p->props.has_receive_maximum && p->props.receive_maximum < u->quota)
		u->quota = p->props.receive_maximum;
	u->max_qos = p->props.has_max_qos ? p->props.max_qos : 2;
	u->retain_ok = !p->props.has_retain_available || p->props.retain_available;
	u->max_pkt = p->props.has_max_packet_size ? p->props.max_packet_size : 0;
	u->ka_s = p->props.has_server_keep_alive ? p->props.server_keep_alive : u->keepalive_s;
	u->tok_at = now;
	u->tokens = 1000;
	gw_log(u->log, LOG_INFO, MOD, "connected to %s as %s (MQTT %s, session %s)", u->url,
	       u->client_id, u->version == MQTT_V5 ? "5.0" : "3.1.1", sp ? "resumed" : "new");
	if (!sp) {
		/* The cloud forgot the session: what was in flight goes again from scratch. */
		gw_list_for_each (pos, &u->resume) {
			struct upl_msg *m = gw_list_entry(pos, struct upl_msg, link);

			if (m->pid)
				gw_upl__pid_mark(u, m->pid, false);
			m->pid = 0;
			m->state = M_QUEUED;
		}
		u->n_inq = 0;
	}
	if (send_subscribe(u, now)) {
		gw_upl__drop_link(u, now, "cannot send SUBSCRIBE");
		return;
	}
	/* The birth message: retained "online", after the resumed messages. */
	birth = gw_upl__msg_new(gw_slice_cstr(u->will_topic), GW_SLICE_STR("online"),
				(struct gw_slice){ NULL, 0 }, 1, true, 0);
	if (birth) {
		birth->birth = true;
		u->turn_live = true;
		gw_upl__q_add(u, birth, Q_LIVE, true);
	}
	gw_upl__pump(u, now);
}

static void on_suback(struct gw_upl *u, const struct mqtt_pkt *p)
{
	size_t i;

	if (p->packet_id != u->sub_pid)
		return;
	u->sub_pid = 0;
	for (i = 0; i < p->suback.codes.len && i < u->n_sub; i++) {
		uint8_t c = p->suback.codes.p[i];

		if (c >= 0x80)
			gw_log(u->log, LOG_WARNING, MOD, "%s: subscription to %s refused (0x%02x)",
			       u->url, u->sub[i].filter, c);
	}
}

static void ack_done(struct gw_upl *u, struct upl_msg *m, uint8_t reason, int64_t now)
{
	if (reason >= 0x80) {
		gw_log(u->log, LOG_WARNING, MOD, "%.*s: refused by the cloud: %s (0x%02x)",
		       (int)m->topic_len, (const char *)msg_topic(m), reason_name(reason), reason);
		u->st.dropped++;
	} else if (!m->birth) {
		u->st.sent++;
	}
	msg_done(u, m);
	gw_upl__pump(u, now);
}

static bool inq_has(const struct gw_upl *u, uint16_t pid)
{
	unsigned int i;

	for (i = 0; i < u->n_inq; i++)
		if (u->inq[i] == pid)
			return true;
	return false;
}

static void inq_del(struct gw_upl *u, uint16_t pid)
{
	unsigned int i;

	for (i = 0; i < u->n_inq; i++) {
		if (u->inq[i] == pid) {
			u->inq[i] = u->inq[--u->n_inq];
			return;
		}
	}
}

/* A PUBLISH from the cloud: into the local broker, then acknowledged. */
static int on_publish(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now)
{
	const struct mqtt_publish *pb = &p->publish;
	uint8_t topic[0x10000], ubuf[4096];
	struct brk_msg_props bp;
	struct brk_pub pub;
	int tl;

	if (pb->qos == 2 && inq_has(u, p->packet_id))
		return send_ack(u, MQTT_PUBREC, p->packet_id, now); /* a resend */
	tl = gw_upl__map_topic(pb->topic, u->remote_prefix, u->local_prefix, topic, sizeof(topic));
	memset(&pub, 0, sizeof(pub));
	memset(&bp, 0, sizeof(bp));
	if (tl <= 0 || !mqtt_topic_valid((struct gw_slice){ topic, (size_t)tl })) {
		gw_log(u->log, LOG_DEBUG, MOD, "%.*s: cannot be mapped to a local topic, ignored",
		       (int)pb->topic.len, (const char *)pb->topic.p);
	} else {
		pub.topic = (struct gw_slice){ topic, (size_t)tl };
		pub.payload = pb->payload;
		pub.qos = pb->qos;
		pub.retain = pb->retain;
		if (u->version == MQTT_V5) {
			bp.has_payload_format = p->props.has_payload_format;
			bp.payload_format = p->props.payload_format;
			bp.has_expiry = p->props.has_message_expiry;
			bp.expiry = p->props.message_expiry;
			bp.content_type = p->props.content_type;
			bp.response_topic = p->props.response_topic;
			bp.correlation_data = p->props.correlation_data;
			if (p->props.has_user_props) {
				/* Only the user properties of the block, as the broker wants them. */
				struct gw_slice cur = p->props.user_props, k, v;
				struct gw_writer w;

				gw_writer_init(&w, ubuf, sizeof(ubuf));
				while (mqtt_user_prop_next(&cur, &k, &v) == 1)
					mqtt_user_prop_write(&w, k, v);
				if (!w.err)
					bp.user_props = (struct gw_slice){ ubuf, w.len };
			}
			pub.props = &bp;
		}
		if (u->ops->local_publish(u->arg, &pub))
			gw_log(u->log, LOG_DEBUG, MOD, "%.*s: local publish failed", tl,
			       (const char *)topic);
		else
			u->st.received++;
	}
	if (pb->qos == 1)
		return send_ack(u, MQTT_PUBACK, p->packet_id, now);
	if (pb->qos == 2) {
		if (u->n_inq < UPL_RECV_MAX)
			u->inq[u->n_inq++] = p->packet_id;
		return send_ack(u, MQTT_PUBREC, p->packet_id, now);
	}
	return 0;
}

/* Handles one packet; returns false when the link was dropped. */
static bool on_packet(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now)
{
	struct upl_msg *m;
	char why[96];

	u->ping_sent = 0;
	if (u->state == UPL_CONNACK) {
		if (p->type != MQTT_CONNACK) {
			gw_upl__drop_link(u, now, "protocol error: expected CONNACK");
			return false;
		}
		on_connack(u, p, now);
		return u->state == UPL_UP;
	}
	switch (p->type) {
	case MQTT_PUBLISH:
		if (on_publish(u, p, now)) {
			gw_upl__drop_link(u, now, "cannot send");
			return false;
		}
		break;
	case MQTT_PUBACK:
		m = find_inflight(u, p->packet_id);
		if (m && m->qos == 1)
			ack_done(u, m, p->ack.reason_code, now);
		break;
	case MQTT_PUBREC:
		m = find_inflight(u, p->packet_id);
		if (!m)
			break;
		if (p->ack.reason_code >= 0x80) {
			ack_done(u, m, p->ack.reason_code, now);
			break;
		}
		m->state = M_RELEASED;
		if (send_ack(u, MQTT_PUBREL, p->packet_id, now)) {
			gw_upl__drop_link(u, now, "cannot send");
			return false;
		}
		break;
	case MQTT_PUBREL:
		inq_del(u, p->packet_id);
		if (send_ack(u, MQTT_PUBCOMP, p->packet_id, now)) {
			gw_upl__drop_link(u, now, "cannot send");
			return false;
		}
		break;
	case MQTT_PUBCOMP:
		m = find_inflight(u, p->packet_id);
		if (m && m->state == M_RELEASED)
			ack_done(u, m, 0, now);
		break;
	case MQTT_SUBACK:
		on_suback(u, p);
		break;
	case MQTT_UNSUBACK:
	case MQTT_PINGRESP:
		break;
	case MQTT_DISCONNECT:
		snprintf(why, sizeof(why), "the cloud disconnected: %s (0x%02x)",
			 reason_name(p->disconnect.reason_code), p->disconnect.reason_code);
		gw_upl__drop_link(u, now, why);
		return false;
	default:
		snprintf(why, sizeof(why), "protocol error: unexpected %s",
			 mqtt_type_name(p->type));
		gw_upl__drop_link(u, now, why);
		return false;
	}
	return u->state == UPL_UP;
}

void gw_upl_on_data(struct gw_upl *u, const void *data, size_t len, int64_t now)
{
	const struct mqtt_limits lim = { .max_packet_size = UPL_RX_MAX, .max_topic_alias = 0 };
	size_t off = 0;

	if (u->state != UPL_CONNACK && u->state != UPL_UP)
		return;
	if (u->rx_len + len > u->rx_cap) {
		size_t cap = GW_MAX(u->rx_cap * 2, u->rx_len + len);
		uint8_t *p;

		if (cap > UPL_RX_MAX + 16384) {
			gw_upl__drop_link(u, now, "packet too large");
			return;
		}
		p = gw_realloc(u->rx, cap);
		if (!p) {
			gw_upl__drop_link(u, now, "out of memory");
			return;
		}
		u->rx = p;
		u->rx_cap = cap;
	}
	memcpy(u->rx + u->rx_len, data, len);
	u->rx_len += len;
	while (off < u->rx_len) {
		struct mqtt_pkt p;
		int rc = mqtt_decode(u->rx + off, u->rx_len - off, u->version, &lim, &p);

		if (rc == 0)
			break;
		if (rc < 0) {
			char why[64];

			snprintf(why, sizeof(why), "malformed packet from the cloud (%s)",
				 mqtt_type_name(p.type));
			gw_upl__drop_link(u, now, why);
			return;
		}
		off += (size_t)rc;
		if (!on_packet(u, &p, now))
			return; /* rx is reset by link_down */
	}
	if (off) {
		memmove(u->rx, u->rx + off, u->rx_len - off);
		u->rx_len -= off;
	}
}

/* ------------------------------------------------------------ transport */

void gw_upl_on_transport_up(struct gw_upl *u, int64_t now)
{
	if (u->state != UPL_CONNECTING)
		return;
	set_state(u, UPL_CONNACK, now);
	u->rx_len = 0;
	if (send_connect(u, now))
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
				if (send_pkt(u, &p, now)) {
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
	set_state(u, UPL_STOPPED, now);
	if (s == UPL_UP) {
		struct mqtt_pkt p;

		/* Our own goodbye: the will is not published after a DISCONNECT. */
		memset(&p, 0, sizeof(p));
		p.type = MQTT_PUBLISH;
		p.publish.topic = gw_slice_cstr(u->will_topic);
		p.publish.payload = GW_SLICE_STR("offline");
		p.publish.retain = u->retain_ok;
		send_pkt(u, &p, now);
		memset(&p, 0, sizeof(p));
		p.type = MQTT_DISCONNECT;
		send_pkt(u, &p, now);
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
