/*
 * mqtt_encode_codec.c - the pure MQTT 3.1 / 3.1.1 / 5.0 encoder (mqtt_encode,
 * mqtt_encode_publish_header, mqtt_encoded_size).
 *
 * Encoding writes each packet twice when needed: once into a counting writer
 * (no buffer, it only sums lengths) to learn the Remaining Length and the
 * property length, then for real. That keeps one code path per packet and
 * makes the sizes exact by construction.
 */
#include <errno.h>
#include <string.h>

#include "broker/mqtt_codec.h"
#include "broker/mqtt_codec_int.h"

/* ------------------------------------------------------------ encoding */

/*
 * An encoding in progress: w receives the bytes (or only counts them), err
 * keeps the first problem with the packet itself (-EINVAL, -EMSGSIZE for a
 * protocol limit), kept apart from w->err, which only means "w is full".
 */
struct enc {
	struct gw_writer *w;
	int err;
};

static void e_fail(struct enc *e, int err)
{
	if (!e->err)
		e->err = err;
}

static void e_str(struct enc *e, struct gw_slice s)
{
	if (s.len > 0xffff) {
		e_fail(e, -EMSGSIZE);
		return;
	}
	gw_wr_u16be(e->w, (uint16_t)s.len);
	gw_wr_bytes(e->w, s.p, s.len);
}

/* Writes the identifier of a property if where allows it. */
static bool e_pid(struct enc *e, unsigned int where, uint8_t id)
{
	if (!mqtt__prop_allowed(where, id)) {
		e_fail(e, -EINVAL);
		return false;
	}
	gw_wr_u8(e->w, id);
	return true;
}

static void e_prop_u8(struct enc *e, unsigned int where, uint8_t id, bool has, uint8_t v)
{
	if (!has)
		return;
	if (v > 1) /* every byte property is 0 or 1 */
		e_fail(e, -EINVAL);
	if (e_pid(e, where, id))
		gw_wr_u8(e->w, v);
}

static void e_prop_u16(struct enc *e, unsigned int where, uint8_t id, bool has, uint16_t v)
{
	if (has && e_pid(e, where, id))
		gw_wr_u16be(e->w, v);
}

static void e_prop_u32(struct enc *e, unsigned int where, uint8_t id, bool has, uint32_t v)
{
	if (has && e_pid(e, where, id))
		gw_wr_u32be(e->w, v);
}

static void e_prop_str(struct enc *e, unsigned int where, uint8_t id, bool has, struct gw_slice v)
{
	if (has && e_pid(e, where, id))
		e_str(e, v);
}

static void e_props_body(struct enc *e, unsigned int where, const struct mqtt_props *pr)
{
	const uint32_t *ids = pr->sub_id_ext ? pr->sub_id_ext : pr->sub_id;
	size_t nids = pr->sub_id_ext ? pr->sub_id_ext_count : pr->sub_id_count;
	struct gw_slice cur, k, v;
	size_t i;
	int rc;

	e_prop_u8(e, where, MQTT_PROP_PAYLOAD_FORMAT, pr->has_payload_format, pr->payload_format);
	e_prop_u32(e, where, MQTT_PROP_MESSAGE_EXPIRY, pr->has_message_expiry, pr->message_expiry);
	e_prop_str(e, where, MQTT_PROP_CONTENT_TYPE, pr->has_content_type, pr->content_type);
	e_prop_str(e, where, MQTT_PROP_RESPONSE_TOPIC, pr->has_response_topic, pr->response_topic);
	e_prop_str(e, where, MQTT_PROP_CORRELATION_DATA, pr->has_correlation_data,
		   pr->correlation_data);
	if (nids > 1 && where != IN(PUBLISH))
		e_fail(e, -EINVAL);
	for (i = 0; i < nids; i++) {
		if (ids[i] == 0 || ids[i] > MQTT_MAX_SUB_ID)
			e_fail(e, -EINVAL);
		else if (e_pid(e, where, MQTT_PROP_SUB_ID))
			gw_wr_varint(e->w, ids[i]);
	}
	e_prop_u32(e, where, MQTT_PROP_SESSION_EXPIRY, pr->has_session_expiry, pr->session_expiry);
	e_prop_str(e, where, MQTT_PROP_ASSIGNED_CLIENT_ID, pr->has_assigned_client_id,
		   pr->assigned_client_id);
	e_prop_u16(e, where, MQTT_PROP_SERVER_KEEP_ALIVE, pr->has_server_keep_alive,
		   pr->server_keep_alive);
	e_prop_str(e, where, MQTT_PROP_AUTH_METHOD, pr->has_auth_method, pr->auth_method);
	e_prop_str(e, where, MQTT_PROP_AUTH_DATA, pr->has_auth_data, pr->auth_data);
	e_prop_u8(e, where, MQTT_PROP_REQUEST_PROBLEM_INFO, pr->has_request_problem_info,
		  pr->request_problem_info);
	e_prop_u32(e, where, MQTT_PROP_WILL_DELAY, pr->has_will_delay, pr->will_delay);
	e_prop_u8(e, where, MQTT_PROP_REQUEST_RESPONSE_INFO, pr->has_request_response_info,
		  pr->request_response_info);
	e_prop_str(e, where, MQTT_PROP_RESPONSE_INFO, pr->has_response_info, pr->response_info);
	e_prop_str(e, where, MQTT_PROP_SERVER_REFERENCE, pr->has_server_reference,
		   pr->server_reference);
	e_prop_str(e, where, MQTT_PROP_REASON_STRING, pr->has_reason_string, pr->reason_string);
	if (pr->has_receive_maximum && pr->receive_maximum == 0)
		e_fail(e, -EINVAL);
	e_prop_u16(e, where, MQTT_PROP_RECEIVE_MAXIMUM, pr->has_receive_maximum,
		   pr->receive_maximum);
	e_prop_u16(e, where, MQTT_PROP_TOPIC_ALIAS_MAX, pr->has_topic_alias_max,
		   pr->topic_alias_max);
	if (pr->has_topic_alias && pr->topic_alias == 0)
		e_fail(e, -EINVAL);
	e_prop_u16(e, where, MQTT_PROP_TOPIC_ALIAS, pr->has_topic_alias, pr->topic_alias);
	e_prop_u8(e, where, MQTT_PROP_MAX_QOS, pr->has_max_qos, pr->max_qos);
	e_prop_u8(e, where, MQTT_PROP_RETAIN_AVAILABLE, pr->has_retain_available,
		  pr->retain_available);
	if (pr->has_max_packet_size && pr->max_packet_size == 0)
		e_fail(e, -EINVAL);
	e_prop_u32(e, where, MQTT_PROP_MAX_PACKET_SIZE, pr->has_max_packet_size,
		   pr->max_packet_size);
	e_prop_u8(e, where, MQTT_PROP_WILDCARD_SUB_AVAILABLE, pr->has_wildcard_sub_available,
		  pr->wildcard_sub_available);
	e_prop_u8(e, where, MQTT_PROP_SUB_ID_AVAILABLE, pr->has_sub_id_available,
		  pr->sub_id_available);
	e_prop_u8(e, where, MQTT_PROP_SHARED_SUB_AVAILABLE, pr->has_shared_sub_available,
		  pr->shared_sub_available);
	if (pr->has_user_props) {
		cur = pr->user_props;
		while ((rc = mqtt_user_prop_next(&cur, &k, &v)) > 0) {
			if (e_pid(e, where, MQTT_PROP_USER)) {
				e_str(e, k);
				e_str(e, v);
			}
		}
		if (rc < 0)
			e_fail(e, -EINVAL);
	}
}

/* Length of the property block of pr for where (0 on a packet error, see e->err). */
static size_t props_len(struct enc *e, unsigned int where, const struct mqtt_props *pr)
{
	struct gw_writer cnt;
	struct enc ce = { .w = &cnt };

	gw_writer_init(&cnt, NULL, 0);
	e_props_body(&ce, where, pr);
	if (ce.err)
		e_fail(e, ce.err);
	return cnt.len;
}

/* A property length and the properties. */
static void e_props(struct enc *e, unsigned int where, const struct mqtt_props *pr)
{
	size_t n = props_len(e, where, pr);

	if (n > MQTT_MAX_REMAINING) {
		e_fail(e, -EMSGSIZE);
		return;
	}
	gw_wr_varint(e->w, (uint32_t)n);
	e_props_body(e, where, pr);
}

static void e_connect(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	const struct mqtt_connect *c = &p->connect;
	uint8_t flags = 0;

	if (version == MQTT_V31)
		e_str(e, GW_SLICE_STR("MQIsdp"));
	else
		e_str(e, GW_SLICE_STR("MQTT"));
	gw_wr_u8(e->w, version);
	if (c->clean_start)
		flags |= 0x02;
	if (c->has_will) {
		if (c->will.qos > 2)
			e_fail(e, -EINVAL);
		flags |= 0x04 | (uint8_t)((c->will.qos & 3) << 3);
		if (c->will.retain)
			flags |= 0x20;
	}
	if (c->has_password)
		flags |= 0x40;
	if (c->has_username)
		flags |= 0x80;
	if (version < MQTT_V5 && c->has_password && !c->has_username) /* [MQTT-3.1.2-22] */
		e_fail(e, -EINVAL);
	gw_wr_u8(e->w, flags);
	gw_wr_u16be(e->w, c->keep_alive);
	if (version == MQTT_V5)
		e_props(e, IN(CONNECT), &p->props);
	e_str(e, c->client_id);
	if (c->has_will) {
		if (version == MQTT_V5)
			e_props(e, IN_WILL, &c->will.props);
		e_str(e, c->will.topic);
		e_str(e, c->will.payload);
	}
	if (c->has_username)
		e_str(e, c->username);
	if (c->has_password)
		e_str(e, c->password);
}

static void e_connack(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	uint8_t rc = p->connack.reason_code;

	/* 3.1 has no Session Present flag: the byte is reserved there. */
	gw_wr_u8(e->w, p->connack.session_present && version != MQTT_V31 ? 1 : 0);
	if (version < MQTT_V5) {
		gw_wr_u8(e->w, rc >= 0x80 ? mqtt_connack_rc_v3(rc) : rc);
		if (rc > MQTT_CONNACK_NOT_AUTHORIZED && rc < 0x80)
			e_fail(e, -EINVAL);
		return;
	}
	if (!mqtt__rc_valid(MQTT_CONNACK, rc))
		e_fail(e, -EINVAL);
	gw_wr_u8(e->w, rc);
	e_props(e, IN(CONNACK), &p->props);
}

static void e_publish(struct enc *e, uint8_t version, const struct mqtt_pkt *p, bool payload)
{
	const struct mqtt_publish *pub = &p->publish;

	e_str(e, pub->topic);
	if (pub->qos) {
		if (p->packet_id == 0)
			e_fail(e, -EINVAL);
		gw_wr_u16be(e->w, p->packet_id);
	}
	if (version == MQTT_V5)
		e_props(e, IN(PUBLISH), &p->props);
	/* An empty topic stands for a Topic Alias, which only 5.0 has. */
	if (pub->topic.len == 0 && (version != MQTT_V5 || !p->props.has_topic_alias))
		e_fail(e, -EINVAL);
	if (payload)
		gw_wr_bytes(e->w, pub->payload.p, pub->payload.len);
}

/*
 * The tail of PUBACK..PUBCOMP, DISCONNECT and AUTH in 5.0: the reason code
 * and properties, each left out when it can be (code 0, no properties).
 */
static void e_reason_props(struct enc *e, const struct mqtt_pkt *p, uint8_t rc)
{
	unsigned int where = 1u << p->type;
	size_t n = props_len(e, where, &p->props);

	if (!mqtt__rc_valid(p->type, rc))
		e_fail(e, -EINVAL);
	if (rc == 0 && n == 0)
		return;
	gw_wr_u8(e->w, rc);
	if (n)
		e_props(e, where, &p->props);
}

static void e_subscribe(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	const struct mqtt_subscribe *s = &p->subscribe;
	bool unsub = p->type == MQTT_UNSUBSCRIBE;
	size_t i;

	if (p->packet_id == 0)
		e_fail(e, -EINVAL);
	gw_wr_u16be(e->w, p->packet_id);
	if (version == MQTT_V5)
		e_props(e, 1u << p->type, &p->props);
	if (!s->list) {
		if (s->entries.len == 0) /* [MQTT-3.8.3-3] */
			e_fail(e, -EINVAL);
		gw_wr_bytes(e->w, s->entries.p, s->entries.len);
		return;
	}
	if (s->count == 0)
		e_fail(e, -EINVAL);
	for (i = 0; i < s->count; i++) {
		const struct mqtt_sub_entry *se = &s->list[i];
		uint8_t opt = se->qos;

		e_str(e, se->filter);
		if (unsub)
			continue;
		if (se->qos > 2 || se->retain_handling > 2)
			e_fail(e, -EINVAL);
		if (version == MQTT_V5)
			opt |= (se->no_local ? 0x04 : 0) | (se->retain_as_published ? 0x08 : 0) |
			       (uint8_t)((se->retain_handling & 3) << 4);
		gw_wr_u8(e->w, opt & 0x3f);
	}
}

static void e_suback(struct enc *e, uint8_t version, const struct mqtt_pkt *p)
{
	struct gw_slice codes = p->suback.codes;
	size_t i;

	if (p->packet_id == 0)
		e_fail(e, -EINVAL);
	gw_wr_u16be(e->w, p->packet_id);
	if (p->type == MQTT_UNSUBACK && version < MQTT_V5)
		return;
	if (version == MQTT_V5)
		e_props(e, 1u << p->type, &p->props);
	if (codes.len == 0)
		e_fail(e, -EINVAL);
	for (i = 0; i < codes.len; i++) {
		uint8_t c = codes.p[i];

		if (version == MQTT_V5) {
			if (!mqtt__rc_valid(p->type, c))
				e_fail(e, -EINVAL);
		} else if (c >= 0x80) {
			c = MQTT_SUBACK_FAILURE;
		} else if (c > 2) {
			e_fail(e, -EINVAL);
		}
		gw_wr_u8(e->w, c);
	}
}

/* The variable header and payload of p (payload left out for the fan-out header). */
static void e_body(struct enc *e, uint8_t version, const struct mqtt_pkt *p, bool payload)
{
	switch (p->type) {
	case MQTT_CONNECT:
		e_connect(e, version, p);
		break;
	case MQTT_CONNACK:
		e_connack(e, version, p);
		break;
	case MQTT_PUBLISH:
		e_publish(e, version, p, payload);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		if (p->packet_id == 0)
			e_fail(e, -EINVAL);
		gw_wr_u16be(e->w, p->packet_id);
		if (version == MQTT_V5)
			e_reason_props(e, p, p->ack.reason_code);
		break;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		e_subscribe(e, version, p);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		e_suback(e, version, p);
		break;
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		break;
	case MQTT_DISCONNECT:
		if (version == MQTT_V5)
			e_reason_props(e, p, p->disconnect.reason_code);
		break;
	case MQTT_AUTH:
		if (version != MQTT_V5)
			e_fail(e, -EINVAL);
		else
			e_reason_props(e, p, p->auth.reason_code);
		break;
	default:
		e_fail(e, -EINVAL);
		break;
	}
}

static uint8_t first_byte(const struct mqtt_pkt *p)
{
	const struct mqtt_publish *pub = &p->publish;
	uint8_t b = (uint8_t)(p->type << 4);

	switch (p->type) {
	case MQTT_PUBLISH:
		b |= (uint8_t)((pub->qos & 3) << MQTT_PUB_QOS_SHIFT);
		if (pub->dup)
			b |= MQTT_PUB_DUP;
		if (pub->retain)
			b |= MQTT_PUB_RETAIN;
		break;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		b |= 0x02; /* [MQTT-2.1.3-1] */
		break;
	}
	return b;
}

/*
 * Encodes p into w; returns the packet problem (-EINVAL / -EMSGSIZE) if any,
 * else 0 with w's own state telling whether it fitted. When header_only, the
 * PUBLISH payload is counted in the Remaining Length but not written.
 */
static int encode(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p, bool header_only)
{
	struct gw_writer cnt;
	struct enc ce = { .w = &cnt }, e = { .w = w };
	uint64_t body;

	if (version < MQTT_V31 || version > MQTT_V5)
		return -EINVAL;
	if (p->type == MQTT_PUBLISH) {
		if (p->publish.qos > 2 || (p->publish.dup && p->publish.qos == 0))
			return -EINVAL; /* [MQTT-3.3.1-4], [MQTT-3.3.1-2] */
	}
	gw_writer_init(&cnt, NULL, 0);
	e_body(&ce, version, p, !header_only);
	if (ce.err)
		return ce.err;
	body = cnt.len;
	if (header_only)
		body += p->publish.payload.len;
	if (body > MQTT_MAX_REMAINING)
		return -EMSGSIZE;
	gw_wr_u8(w, first_byte(p));
	gw_wr_varint(w, (uint32_t)body);
	e_body(&e, version, p, !header_only);
	return e.err;
}

int mqtt_encode(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p)
{
	int rc = encode(w, version, p, false);

	return rc ? rc : w->err;
}

int mqtt_encode_publish_header(struct gw_writer *w, uint8_t version, const struct mqtt_pkt *p)
{
	int rc;

	if (p->type != MQTT_PUBLISH)
		return -EINVAL;
	rc = encode(w, version, p, true);
	return rc ? rc : w->err;
}

size_t mqtt_encoded_size(uint8_t version, const struct mqtt_pkt *p)
{
	struct gw_writer cnt;

	gw_writer_init(&cnt, NULL, 0);
	if (encode(&cnt, version, p, false))
		return 0;
	return cnt.len;
}
