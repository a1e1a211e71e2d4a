/*
 * uplink_session.c - the uplink core's MQTT 3.1.1 / 5.0 session with the
 * cloud broker: packets encoded and sent (CONNECT, SUBSCRIBE, PUBLISH,
 * PUBREL, acks), the window of QoS >= 1 messages in flight and what fills it
 * (pump), and the packets that come in (CONNACK, SUBACK, PUBACK / PUBREC /
 * PUBCOMP, DISCONNECT), decoded with the broker's codec. Map of the core:
 * uplink_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gateway/persist.h"
#include "gateway/uplink_int.h"

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
int gw_upl__send_pkt(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now)
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

int gw_upl__send_ack(struct gw_upl *u, uint8_t type, uint16_t pid, int64_t now)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.packet_id = pid;
	return gw_upl__send_pkt(u, &p, now);
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

int gw_upl__send_connect(struct gw_upl *u, int64_t now)
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
	return gw_upl__send_pkt(u, &p, now);
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
	return gw_upl__send_pkt(u, &p, now);
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
		rc = gw_upl__send_pkt(u, &p, now);
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
	rc = gw_upl__send_pkt(u, &p, now);
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
	gw_upl__set_state(u, UPL_UP, now);
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
		if (gw_upl__on_publish(u, p, now)) {
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
		if (gw_upl__send_ack(u, MQTT_PUBREL, p->packet_id, now)) {
			gw_upl__drop_link(u, now, "cannot send");
			return false;
		}
		break;
	case MQTT_PUBREL:
		gw_upl__inq_del(u, p->packet_id);
		if (gw_upl__send_ack(u, MQTT_PUBCOMP, p->packet_id, now)) {
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
