/*
 * fuzz_mqtt_codec.c - fuzz target for the MQTT codec (broker/mqtt_codec.c,
 * mqtt_decode_codec.c, mqtt_encode_codec.c).
 *
 * The input is decoded as one packet with each protocol level and two sets of
 * limits. Whatever decodes is re-encoded and decoded again, which must
 * succeed, and encoding that second decode must give the same bytes (the
 * encoder is a fixed point after one round). The iterators and helpers run on
 * every slice the decoder returns.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/mqtt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct mqtt_pkt *p)
{
	struct mqtt_sub_entry e;
	struct mqtt_sub_iter it;
	struct gw_slice cur, k, v, g, r;
	size_t n = 0;
	int rc;

	cur = p->props.user_props;
	while ((rc = mqtt_user_prop_next(&cur, &k, &v)) > 0)
		if (!mqtt_utf8_valid(k) || !mqtt_utf8_valid(v))
			abort();
	if (rc < 0)
		abort();
	if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) {
		mqtt_sub_iter_init(&it, p);
		while ((rc = mqtt_sub_next(&it, &e)) > 0) {
			if (!mqtt_filter_valid(e.filter))
				abort();
			if (mqtt_filter_shared(e.filter, &g, &r) && (g.len == 0 || r.len == 0))
				abort();
			n++;
		}
		if (rc < 0 || n != p->subscribe.count)
			abort();
	}
	if (p->type == MQTT_PUBLISH && p->publish.topic.len && !mqtt_topic_valid(p->publish.topic))
		abort();
}

static void roundtrip(const struct mqtt_pkt *p, const struct mqtt_limits *lim)
{
	uint8_t *buf1 = NULL, *buf2 = NULL;
	struct gw_writer w1, w2, small;
	struct mqtt_pkt q;
	uint8_t tiny[3];
	uint8_t ver = p->version;
	size_t sz;
	int rc;

	/* Whatever decodes must be encodable; exact-size buffers let ASan see overruns. */
	sz = mqtt_encoded_size(ver, p);
	if (sz == 0)
		abort();
	buf1 = malloc(sz);
	buf2 = malloc(sz);
	if (!buf1 || !buf2)
		goto out;
	gw_writer_init(&w1, buf1, sz);
	if (mqtt_encode(&w1, ver, p) || w1.len != sz)
		abort();
	/* A writer too small reports the size it would have needed. */
	gw_writer_init(&small, tiny, sizeof(tiny));
	rc = mqtt_encode(&small, ver, p);
	if (sz > sizeof(tiny) && (rc != -EMSGSIZE || small.len != sz))
		abort();

	rc = mqtt_decode(buf1, w1.len, ver, lim, &q);
	if (rc != (int)w1.len || q.type != p->type)
		abort();
	walk(&q);
	gw_writer_init(&w2, buf2, sz);
	if (mqtt_encode(&w2, ver, &q) || w2.len != w1.len || memcmp(buf1, buf2, w1.len))
		abort();

	if (p->type == MQTT_PUBLISH) {
		gw_writer_init(&w2, buf2, sz - p->publish.payload.len);
		if (mqtt_encode_publish_header(&w2, ver, p) ||
		    w2.len + p->publish.payload.len != w1.len || memcmp(buf1, buf2, w2.len))
			abort();
	}
out:
	free(buf1);
	free(buf2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mqtt_limits lims[] = {
		{ .max_packet_size = 0, .max_topic_alias = 10, .from_client = true },
		{ .max_packet_size = 64, .max_topic_alias = 0, .from_client = false },
	};
	struct mqtt_pkt p;
	uint32_t remaining;
	uint8_t tf;
	size_t hl;
	uint8_t ver;
	size_t i;
	int n, rc;

	n = mqtt_fixed_header(data, size, &tf, &remaining, &hl);
	if (n > 0 && (hl == 0 || (size_t)n != hl + remaining || (size_t)n > size))
		abort();
	for (ver = MQTT_V31; ver <= MQTT_V5; ver++) {
		rc = mqtt_decode(data, size, ver, NULL, &p);
		if (rc > 0) {
			if (rc != n || p.reason != 0)
				abort();
			walk(&p);
			roundtrip(&p, NULL);
		} else if (rc < 0 && p.reason == 0 && rc != -EINVAL) {
			abort();
		}
		for (i = 0; i < GW_ARRAY_SIZE(lims); i++) {
			rc = mqtt_decode(data, size, ver, &lims[i], &p);
			if (rc > 0) {
				walk(&p);
				roundtrip(&p, &lims[i]);
			}
		}
	}
	mqtt_topic_valid((struct gw_slice){ data, size });
	mqtt_filter_valid((struct gw_slice){ data, size });
	return 0;
}
