/*
 * conn.c - the MQTT protocol machine of one network connection, sans I/O:
 * bytes and a clock in (brk__conn_input, brk__conn_tick), packets framed
 * and dispatched, CONNECT with its password wait (auth.c) and keep alive,
 * DISCONNECT and closing. What the packets do to a session is in session.c,
 * the bytes out in conn_out.c.
 *
 * Packets are decoded by the pure codec in place, in the buffer the glue read
 * into; only the partial tail of a read is copied.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

/* ---------------------------------------------------------- closing */

void brk__conn_kick(struct brk_conn *c, uint8_t reason)
{
	if (c->state == BRK_CS_CLOSING)
		return;
	if (c->state == BRK_CS_CONNECTED && reason)
		brk__conn_send_disconnect(c, reason);
	c->state = BRK_CS_CLOSING;
	if (c->ops && c->ops->close)
		c->ops->close(c);
}

/* A bad packet: count it and close this connection only. */

void brk__conn_fail(struct brk_conn *c, int err, uint8_t reason)
{
	if (err == -EBADMSG || reason == MQTT_RC_MALFORMED)
		c->b->st.malformed++;
	else
		c->b->st.protocol_errors++;
	if (c->b->lg && c->b->lg->level >= LOG_DEBUG) {
		char peer[64];

		brk__log(c->b, LOG_DEBUG, "%s: closing on error %d (reason 0x%02x)",
			 brk__conn_peer(c, peer, sizeof(peer)), err, reason);
	}
	if (c->state == BRK_CS_NEW && c->proto) {
		/* A CONNECT that fails gets a CONNACK with the reason [MQTT-3.2.2-6]. */
		if (reason == MQTT_RC_UNSUPPORTED_VERSION || reason == MQTT_RC_CLIENT_ID_INVALID ||
		    c->proto == MQTT_V5)
			brk__conn_send_connack(c, reason ? reason : MQTT_RC_PROTOCOL_ERROR, false,
					       NULL);
	}
	brk__conn_kick(c, reason ? reason : MQTT_RC_PROTOCOL_ERROR);
}

/* The Response Information we give: "fieldmq/response/<client id>/". */
#define RESPONSE_PREFIX "fieldmq/response/"

/*
 * on_connect - CONNECT @p (the packet's bytes @pkt, @len) of @c. With a
 * password_file, a user name's password is checked off the loop thread
 * first (brk__auth_begin); the verdict comes back through
 * brk__conn_connect_verdict, which runs this again with @authed.
 */
static void on_connect(struct brk_conn *c, struct mqtt_pkt *p, const uint8_t *pkt, size_t len,
		       bool authed, int64_t now)
{
	struct brk *b = c->b;
	struct mqtt_connect *cn = &p->connect;
	struct mqtt_props ack;
	struct brk_session *s;
	struct brk_acl_view *av = NULL;
	struct gw_slice id = cn->client_id;
	char idbuf[40], rbuf[128], *rinfo = NULL;
	bool present = false;
	uint32_t expiry;
	uint16_t ka = cn->keep_alive;

	memset(&ack, 0, sizeof(ack));
	c->proto = p->version;
	/* use_identity_as_username: the transport's user name, not CONNECT's. */
	if (c->ops->identity && c->ops->identity(c)) {
		cn->has_username = true;
		cn->username = gw_slice_cstr(c->ops->identity(c));
		authed = true; /* the certificate vouches for it */
	}
	if (id.len == 0) {
		/* [MQTT-3.1.3-7/8] 3.1.1: an empty id needs a clean session; 3.1 has none. */
		if (c->proto == MQTT_V31 || (c->proto == MQTT_V311 && !cn->clean_start)) {
			brk__conn_send_connack(c, MQTT_RC_CLIENT_ID_INVALID, false, NULL);
			brk__conn_kick(c, 0);
			return;
		}
		snprintf(idbuf, sizeof(idbuf), "fieldmq-%llx-%llx", (unsigned long long)now,
			 (unsigned long long)++b->id_counter);
		id = gw_slice_cstr(idbuf);
		if (c->proto == MQTT_V5) {
			ack.has_assigned_client_id = true;
			ack.assigned_client_id = id;
		}
	}
	if (!b->cfg.allow_anonymous && !cn->has_username) {
		brk__conn_send_connack(c, MQTT_RC_NOT_AUTHORIZED, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	if (p->props.has_auth_method) {
		brk__conn_send_connack(c, MQTT_RC_BAD_AUTH_METHOD, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	if (!authed && b->cfg.passwd && cn->has_username) {
		if (brk__auth_begin(c, p, pkt, len, now)) {
			/* Too many checks waiting: 5.0 "server busy", 3.1.1 "server unavailable". */
			brk__conn_send_connack(c,
					       c->proto == MQTT_V5
						       ? MQTT_RC_SERVER_BUSY
						       : MQTT_CONNACK_SERVER_UNAVAILABLE,
					       false, NULL);
			brk__conn_kick(c, 0);
		}
		return;
	}
	/* The client's ACL rules, before anything of a session it may take over changes. */
	if (b->cfg.acl &&
	    brk__acl_view_new(b->cfg.acl, id, cn->has_username ? &cn->username : NULL, &av)) {
		brk__conn_send_connack(c, MQTT_RC_SERVER_UNAVAILABLE, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	/* Session expiry: 3.1.1 clean session = 0, persistent = never. */
	if (c->proto == MQTT_V5)
		expiry = p->props.has_session_expiry ? p->props.session_expiry : 0;
	else
		expiry = cn->clean_start ? 0 : 0xFFFFFFFFu;
	if (c->proto == MQTT_V5) {
		if (p->props.has_receive_maximum)
			c->recv_max_out = p->props.receive_maximum;
		if (p->props.has_max_packet_size)
			c->max_out_packet = p->props.max_packet_size;
		if (p->props.has_topic_alias_max)
			c->alias_max_out = GW_MIN(p->props.topic_alias_max, b->cfg.max_topic_alias);
		c->req_problem =
			!p->props.has_request_problem_info || p->props.request_problem_info;
	}
	/* Keep alive capped by max_keepalive; 5.0 is told with Server Keep Alive. */
	if (b->cfg.max_keepalive && (ka > b->cfg.max_keepalive || (ka == 0 && c->proto == MQTT_V5 &&
								   b->cfg.max_keepalive < 65535))) {
		ka = b->cfg.max_keepalive;
		if (c->proto == MQTT_V5) {
			ack.has_server_keep_alive = true;
			ack.server_keep_alive = ka;
		}
	}
	c->keepalive = ka;

	s = brk__session_take(b, id, cn, av, expiry, &present, now);
	if (!s) {
		brk__conn_send_connack(c, MQTT_RC_SERVER_UNAVAILABLE, false, NULL);
		brk__conn_kick(c, 0);
		return;
	}
	s->conn = c;
	c->s = s;
	c->state = BRK_CS_CONNECTED;
	c->will_ok = true;
	c->counted = true;
	b->st.clients_connected++;
	b->st.clients_total = b->n_sessions;

	if (c->proto == MQTT_V5) {
		/* Absent means 65535 [MQTT-3.2.2.3.3]. */
		if (brk__recv_max(b) < 65535) {
			ack.has_receive_maximum = true;
			ack.receive_maximum = brk__recv_max(b);
		}
		if (b->cfg.max_topic_alias) {
			ack.has_topic_alias_max = true;
			ack.topic_alias_max = b->cfg.max_topic_alias;
		}
		if (b->cfg.max_packet_size) {
			ack.has_max_packet_size = true;
			ack.max_packet_size = b->cfg.max_packet_size;
		}
		if (!b->cfg.retain_available) {
			ack.has_retain_available = true;
			ack.retain_available = 0;
		}
	}
	/*
	 * [MQTT-3.1.2-28] Request Response Information 1: a topic prefix the
	 * client may use for responses; never when 0. Not for an id that
	 * would make it an invalid topic.
	 */
	if (c->proto == MQTT_V5 && p->props.has_request_response_info &&
	    p->props.request_response_info && !strpbrk(s->client_id, "+#")) {
		size_t n = sizeof(RESPONSE_PREFIX) - 1 + strlen(s->client_id) + 1;

		rinfo = n < sizeof(rbuf) ? rbuf : gw_malloc(n + 1);
		if (rinfo) {
			snprintf(rinfo, n + 1, RESPONSE_PREFIX "%s/", s->client_id);
			ack.has_response_info = true;
			ack.response_info = (struct gw_slice){ (const uint8_t *)rinfo, n };
		}
	}
	brk__conn_send_connack(c, 0, present, &ack);
	if (rinfo != rbuf)
		gw_free(rinfo);
	if (s->persist)
		brk__session_save(s);
	if (b->lg && b->lg->level >= LOG_DEBUG) {
		char peer[64];

		brk__log(b, LOG_DEBUG, "%s: connected as %s (v%u, present %d)",
			 brk__conn_peer(c, peer, sizeof(peer)), s->client_id, c->proto, present);
	}
	brk__session_pump(s, now, true);
}

/* ----------------------------------------------------------- dispatch */

static void on_disconnect(struct brk_conn *c, struct mqtt_pkt *p)
{
	struct brk_session *s = c->s;

	/*
	 * [MQTT-3.14.4-3] only a normal DISCONNECT (0x00) deletes the will:
	 * 0x04 and the error codes a client may send keep it.
	 */
	c->will_ok = c->proto == MQTT_V5 && p->disconnect.reason_code != MQTT_RC_SUCCESS;
	if (c->proto == MQTT_V5 && p->props.has_session_expiry) {
		/* [MQTT-3.14.2-2] zero at CONNECT cannot become non-zero. */
		if (s->expiry == 0 && p->props.session_expiry != 0) {
			c->will_ok = true;
			brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
		s->expiry = p->props.session_expiry;
	}
	brk__conn_kick(c, 0);
}

static int decode(struct brk_conn *c, const uint8_t *buf, size_t len, struct mqtt_pkt *p)
{
	struct mqtt_limits lim = {
		.max_packet_size = c->b->cfg.max_packet_size,
		.max_topic_alias = c->b->cfg.max_topic_alias,
		.from_client = true,
	};

	return mqtt_decode(buf, len, c->proto ? c->proto : MQTT_V311, &lim, p);
}

void brk__conn_connect_verdict(struct brk_conn *c, const uint8_t *pkt, size_t len, bool ok,
			       int64_t now)
{
	struct mqtt_pkt p;

	if (c->state != BRK_CS_AUTH)
		return; /* kicked while waiting */
	c->state = BRK_CS_NEW;
	if (ok && decode(c, pkt, len, &p) > 0) {
		if (c->ops->pause)
			c->ops->pause(c, false);
		on_connect(c, &p, pkt, len, true, now);
		return;
	}
	if (c->b->lg && c->b->lg->level >= LOG_INFO) {
		char peer[64];

		/* The user name, not the password; a flood is counted in auth_failed too. */
		brk__log(c->b, LOG_INFO, "%s: wrong user name or password",
			 brk__conn_peer(c, peer, sizeof(peer)));
	}
	/* As Mosquitto: 5.0 0x86 Bad User Name or Password, 3.1.1 5 Not authorized. */
	brk__conn_send_connack(
		c, c->proto == MQTT_V5 ? MQTT_RC_BAD_USER_OR_PASSWORD : MQTT_CONNACK_NOT_AUTHORIZED,
		false, NULL);
	brk__conn_kick(c, 0);
}

static void handle(struct brk_conn *c, const uint8_t *buf, size_t len, int64_t now)
{
	struct mqtt_pkt p;
	int rc;

	rc = decode(c, buf, len, &p);
	if (rc <= 0) {
		if (c->state == BRK_CS_NEW && p.type == MQTT_CONNECT &&
		    p.reason == MQTT_RC_UNSUPPORTED_VERSION)
			c->proto = MQTT_V311; /* [MQTT-3.1.2-2] CONNACK 0x01, then close */
		else if (c->state == BRK_CS_NEW && p.type == MQTT_CONNECT && p.version)
			c->proto = p.version == MQTT_V5 || p.version == MQTT_V31 ? p.version
										 : MQTT_V311;
		brk__conn_fail(c, rc ? rc : -EBADMSG, p.reason ? p.reason : MQTT_RC_MALFORMED);
		return;
	}
	c->last_rx = now;
	if (c->state == BRK_CS_NEW) {
		/* [MQTT-3.1.0-1] the first packet is CONNECT. */
		if (p.type != MQTT_CONNECT) {
			brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
			return;
		}
		on_connect(c, &p, buf, len, false, now);
		return;
	}
	switch (p.type) {
	case MQTT_PUBLISH:
		brk__on_publish(c, &p, now);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		brk__on_ack(c, &p, now);
		break;
	case MQTT_PUBREL:
		brk__on_pubrel(c, &p);
		break;
	case MQTT_SUBSCRIBE:
		brk__on_subscribe(c, &p, now);
		break;
	case MQTT_UNSUBSCRIBE:
		brk__on_unsubscribe(c, &p);
		break;
	case MQTT_PINGREQ: {
		struct mqtt_pkt r;

		memset(&r, 0, sizeof(r));
		r.type = MQTT_PINGRESP;
		brk__conn_out_pkt(c, &r);
		break;
	}
	case MQTT_DISCONNECT:
		on_disconnect(c, &p);
		break;
	case MQTT_CONNECT:
		/* [MQTT-3.1.0-2] a second CONNECT is a protocol violation. */
		brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
		break;
	case MQTT_AUTH:
		/*
		 * No enhanced authentication here: a CONNECT with an
		 * Authentication Method got CONNACK 0x8C, so an AUTH can only
		 * come from a client that sent none, which must not send AUTH
		 * (5.0 section 4.12): DISCONNECT 0x82. (3.1.1 has no AUTH: the
		 * codec calls it malformed.)
		 */
		brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
		break;
	default:
		brk__conn_fail(c, -EPROTO, MQTT_RC_PROTOCOL_ERROR);
		break;
	}
}

/* --------------------------------------------------------------- framing */

const char *brk__conn_peer(struct brk_conn *c, char *buf, size_t n)
{
	snprintf(buf, n, "?");
	if (c->ops && c->ops->peer)
		c->ops->peer(c, buf, n);
	return buf;
}

/*
 * A slow consumer: output over max_buffered_bytes since slow_consumer_timeout
 * (its QoS 0 is being dropped meanwhile, see brk__conn_send_publish) is
 * closed at once, without waiting for the output it cannot take.
 */
static void slow_check(struct brk_conn *c, int64_t now)
{
	struct brk *b = c->b;
	char peer[64];

	if (!b->cfg.max_buffered_bytes || c->state == BRK_CS_CLOSING ||
	    brk__conn_buffered(c) <= b->cfg.max_buffered_bytes) {
		c->slow_since = 0;
		return;
	}
	if (!c->slow_since) {
		c->slow_since = now;
		return;
	}
	if (now - c->slow_since < (int64_t)b->cfg.slow_consumer_timeout_ms)
		return;
	b->st.slow_disconnected++;
	brk__log(b, LOG_WARNING, "%s (%s): slow consumer: %zu bytes buffered for %lld ms, closed",
		 brk__conn_peer(c, peer, sizeof(peer)), c->s ? c->s->client_id : "-",
		 brk__conn_buffered(c), (long long)(now - c->slow_since));
	/* will_ok is left as it is: the will goes out as on any abnormal close. */
	if (c->ops->abort)
		c->ops->abort(c);
	else
		brk__conn_kick(c, MQTT_RC_SERVER_BUSY);
}

void brk__conn_init(struct brk_conn *c, struct brk *b, const struct brk_conn_ops *ops)
{
	memset(c, 0, sizeof(*c));
	c->b = b;
	c->ops = ops;
	c->state = BRK_CS_NEW;
	c->last_rx = brk__now(b);
	gw_list_add_tail(&b->conns, &c->link);
}

/* Size of the packet at @p (n bytes so far): > 0 known, 0 need more, < 0 bad. */
static long packet_size(struct brk_conn *c, const uint8_t *p, size_t n)
{
	uint32_t rem = 0;
	size_t hl = 0;
	int rc = mqtt_fixed_header(p, n, NULL, &rem, &hl);
	uint64_t total;

	if (rc < 0)
		return rc;
	if (!hl)
		return 0;
	total = (uint64_t)hl + rem;
	/* Refuse an oversize packet before buffering it [MQTT-3.2.2-?? 0x95]. */
	if (c->b->cfg.max_packet_size && total > c->b->cfg.max_packet_size)
		return -EMSGSIZE;
	return (long)total;
}

static void input_fail(struct brk_conn *c, long rc)
{
	brk__conn_fail(c, (int)rc, rc == -EMSGSIZE ? MQTT_RC_PACKET_TOO_LARGE : MQTT_RC_MALFORMED);
}

/* Packets are handled in these states; in BRK_CS_AUTH input is held. */
static bool reading(const struct brk_conn *c)
{
	return c->state == BRK_CS_NEW || c->state == BRK_CS_CONNECTED;
}

static void hold_input(struct brk_conn *c, const uint8_t *data, size_t len)
{
	if (brk__auth_hold_input(c, data, len))
		brk__conn_kick(c, 0);
}

static void conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now);

void brk__conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now)
{
	c->b->st.bytes_received += len;
	conn_input(c, data, len, now);
}

void brk__conn_input_held(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now)
{
	conn_input(c, data, len, now);
}

static void conn_input(struct brk_conn *c, const uint8_t *data, size_t len, int64_t now)
{
	if (c->state == BRK_CS_AUTH) {
		hold_input(c, data, len);
		return;
	}
	/* First complete the partial packet kept from the last read. */
	while (c->rbuf && len && reading(c)) {
		struct brk_rbuf *r = c->rbuf;
		long need = packet_size(c, r->data, r->len);
		size_t take;

		if (need < 0) {
			input_fail(c, need);
			return;
		}
		if (need == 0) {
			/* The fixed header is still incomplete: add one byte at a time. */
			take = 1;
			need = (long)(r->len + 1);
		} else {
			take = GW_MIN(len, (size_t)need - r->len);
		}
		if (r->cap < (size_t)need) {
			size_t nc = GW_MAX((size_t)need, 16);

			r = gw_realloc(r, sizeof(*r) + nc);
			if (!r) {
				brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
				return;
			}
			r->cap = (uint32_t)nc;
			c->rbuf = r;
		}
		memcpy(r->data + r->len, data, take);
		r->len += (uint32_t)take;
		data += take;
		len -= take;
		need = packet_size(c, r->data, r->len);
		if (need > 0 && r->len == (size_t)need) {
			handle(c, r->data, (size_t)need, now);
			/* Nothing is kept for an idle connection. */
			gw_free(c->rbuf);
			c->rbuf = NULL;
		} else if (need < 0) {
			input_fail(c, need);
			return;
		}
	}
	/* Then whole packets straight from the read buffer. */
	while (len && reading(c)) {
		long need = packet_size(c, data, len);

		if (need < 0) {
			input_fail(c, need);
			return;
		}
		if (need == 0 || (size_t)need > len) {
			size_t cap = need > 0 ? (size_t)need : 16;
			struct brk_rbuf *r = gw_malloc(sizeof(*r) + cap);

			if (!r) {
				brk__conn_kick(c, MQTT_RC_UNSPECIFIED);
				return;
			}
			r->cap = (uint32_t)cap;
			r->len = (uint32_t)len;
			memcpy(r->data, data, len);
			c->rbuf = r;
			return;
		}
		handle(c, data, (size_t)need, now);
		data += need;
		len -= (size_t)need;
	}
	/* A CONNECT went to its password check: what followed it waits too. */
	if (len && c->state == BRK_CS_AUTH)
		hold_input(c, data, len);
}

void brk__conn_tick(struct brk_conn *c, int64_t now)
{
	/*
	 * [MQTT-3.1.2-22] one and a half keep alive periods without a packet;
	 * not while we do not read it (conn_flow): the wait is ours, and the
	 * period starts again when reading resumes.
	 */
	if (c->paused)
		c->last_rx = now;
	if (c->state == BRK_CS_CONNECTED && c->keepalive &&
	    now - c->last_rx > (int64_t)c->keepalive * 1500) {
		char peer[64];

		brk__log(c->b, LOG_DEBUG, "%s: keepalive timeout",
			 brk__conn_peer(c, peer, sizeof(peer)));
		brk__conn_kick(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
	}
	slow_check(c, now);
	/* A client that never sends CONNECT is dropped. */
	if (c->state == BRK_CS_NEW && now - c->last_rx > 10000)
		brk__conn_kick(c, 0);
	/*
	 * One whose password check has not even started after 10 s (a flood
	 * fills the waiting room) is told the server is busy, as one that
	 * found the waiting room full.
	 */
	if (c->state == BRK_CS_AUTH && now - c->last_rx > 10000) {
		c->b->st.auth_busy++;
		c->state = BRK_CS_NEW;
		brk__conn_send_connack(c,
				       c->proto == MQTT_V5 ? MQTT_RC_SERVER_BUSY
							   : MQTT_CONNACK_SERVER_UNAVAILABLE,
				       false, NULL);
		brk__conn_kick(c, 0);
	}
}

void brk__conn_closed(struct brk_conn *c)
{
	struct brk *b = c->b;
	unsigned int i;

	if (c->s && c->s->conn == c) {
		c->s->conn = NULL;
		brk__session_offline(c->s, c->will_ok, brk__now(b));
	}
	c->s = NULL;
	if (c->counted && b->st.clients_connected)
		b->st.clients_connected--;
	c->counted = false;
	brk__auth_conn_closed(c);
	gw_list_del(&c->link);
	gw_free(c->rbuf);
	c->rbuf = NULL;
	if (c->stage_len)
		brk__conn_unstage(c, c->stage_len);
	brk__conn_out_free(c);
	if (c->alias) {
		for (i = 0; i < c->alias->max_out + c->alias->max_in; i++)
			gw_free(c->alias->v[i]);
		gw_free(c->alias);
		c->alias = NULL;
	}
}
