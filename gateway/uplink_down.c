/*
 * uplink_down.c - the uplink core's command path: a PUBLISH from the cloud
 * (a subscribe filter matched: commands, .../set) is mapped from
 * remote_prefix to local_prefix, published into the local broker through
 * ops->local_publish and acknowledged; inbound QoS 2 packet ids are kept
 * between PUBREC and PUBREL. Map of the core: uplink_int.h.
 */
#include <string.h>

#include "gateway/uplink_int.h"

static bool inq_has(const struct gw_upl *u, uint16_t pid)
{
	unsigned int i;

	for (i = 0; i < u->n_inq; i++)
		if (u->inq[i] == pid)
			return true;
	return false;
}

void gw_upl__inq_del(struct gw_upl *u, uint16_t pid)
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
int gw_upl__on_publish(struct gw_upl *u, const struct mqtt_pkt *p, int64_t now)
{
	const struct mqtt_publish *pb = &p->publish;
	uint8_t topic[0x10000], ubuf[4096];
	struct brk_msg_props bp;
	struct brk_pub pub;
	int tl;

	if (pb->qos == 2 && inq_has(u, p->packet_id))
		return gw_upl__send_ack(u, MQTT_PUBREC, p->packet_id, now); /* a resend */
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
		return gw_upl__send_ack(u, MQTT_PUBACK, p->packet_id, now);
	if (pb->qos == 2) {
		if (u->n_inq < UPL_RECV_MAX)
			u->inq[u->n_inq++] = p->packet_id;
		return gw_upl__send_ack(u, MQTT_PUBREC, p->packet_id, now);
	}
	return 0;
}
