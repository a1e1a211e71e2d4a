/*
 * commands.c - commands on <prefix>/<device>/<point>/set: an in-process
 * broker client takes them, the payload becomes a typed value (reading.c),
 * and the adapter of the point's protocol (g->adapters[protocol]) writes it.
 * The result goes to .../set/result and, for an MQTT 5 command with a
 * response topic, there too with its correlation data.
 *
 * A command is refused before it reaches an adapter when the point does not
 * exist, is read-only, the payload does not parse, or no adapter serves the
 * point's protocol; the refusal is published as a result as well.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_int.h"

#define MOD "gateway"
#define CMD_STR_MAX 512

/* A command waiting for its adapter: where its result goes. */
struct gw_cmd {
	struct gw_list node;
	struct gw *g;
	char *result_topic;
	char *response_topic; /* MQTT 5, or NULL */
	uint8_t *corr;
	size_t corr_len;
};

static void cmd_free(struct gw_cmd *c)
{
	gw_list_del(&c->node);
	gw_free(c->result_topic);
	gw_free(c->response_topic);
	gw_free(c->corr);
	gw_free(c);
}

static void send_result(struct gw *g, const char *result_topic, const char *response_topic,
			const uint8_t *corr, size_t corr_len, bool ok, const char *error,
			const struct ad_value *v)
{
	uint8_t payload[GW_PAYLOAD_MAX];
	struct brk_msg_props props = { 0 };
	struct gw_writer w;

	gw_writer_init(&w, payload, sizeof(payload));
	if (gw_render_result(ok, error, v, gw_now_ms(), &w))
		return;
	gw__publish(g, result_topic, payload, w.len, 1, false, NULL);
	if (response_topic) {
		props.correlation_data.p = corr;
		props.correlation_data.len = corr_len;
		gw__publish(g, response_topic, payload, w.len, 1, false, &props);
	}
}

void gw__on_cmd_done(void *arg, void *token, const struct ad_cmd_result *res)
{
	struct gw *g = arg;
	struct gw_cmd *c = token;

	if (!c)
		return;
	if (!g->stopping)
		send_result(g, c->result_topic, c->response_topic, c->corr, c->corr_len, res->ok,
			    res->error, &res->value);
	cmd_free(c);
}

static char *dup_slice(struct gw_slice s)
{
	return gw_strndup((const char *)s.p, s.len);
}

/* <prefix>/<device>/<point>/set -> device and point slices. */
static bool split_set_topic(const struct gw *g, struct gw_slice t, struct gw_slice *dev,
			    struct gw_slice *pt)
{
	size_t plen = strlen(g->cfg.gateway.topic_prefix), i, slash = 0;

	if (t.len < plen + 6 || memcmp(t.p, g->cfg.gateway.topic_prefix, plen) || t.p[plen] != '/')
		return false;
	if (memcmp(t.p + t.len - 4, "/set", 4))
		return false;
	dev->p = t.p + plen + 1;
	dev->len = t.len - plen - 1 - 4;
	for (i = 0; i < dev->len; i++) {
		if (dev->p[i] == '/') {
			if (slash)
				return false;
			slash = i;
		}
	}
	if (!slash)
		return false;
	pt->p = dev->p + slash + 1;
	pt->len = dev->len - slash - 1;
	dev->len = slash;
	return dev->len && pt->len;
}

/* The adapter that serves @pt's protocol, if it is running and takes commands. */
static struct ad_adapter *adapter_of(const struct gw *g, const struct ad_point *pt)
{
	unsigned int proto = pt->device->protocol;
	struct ad_adapter *a = proto < __AD_PROTO_MAX ? g->adapters[proto].a : NULL;

	return a && a->ops->command ? a : NULL;
}

/* A new pending command with copies of where its result goes; NULL when out of memory. */
static struct gw_cmd *cmd_new(struct gw *g, const char *result_topic,
			      const struct brk_msg_props *props)
{
	struct gw_cmd *c = gw_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	gw_list_add_tail(&g->cmds, &c->node);
	c->g = g;
	c->result_topic = gw_strdup(result_topic);
	if (props && props->response_topic.len) {
		c->response_topic = dup_slice(props->response_topic);
		if (props->correlation_data.len) {
			c->corr = gw_malloc(props->correlation_data.len);
			if (c->corr) {
				memcpy(c->corr, props->correlation_data.p,
				       props->correlation_data.len);
				c->corr_len = props->correlation_data.len;
			}
		}
	}
	if (!c->result_topic || (props && props->response_topic.len && !c->response_topic)) {
		cmd_free(c);
		return NULL;
	}
	return c;
}

static void on_command(void *arg, const struct brk_delivery *d)
{
	struct gw *g = arg;
	struct gw_slice dev_name, pt_name;
	const struct brk_msg_props *props = d->props;
	const struct ad_device *dev;
	const struct ad_point *pt;
	struct ad_adapter *a;
	struct ad_value v;
	char strbuf[CMD_STR_MAX];
	char result_topic[GW_TOPIC_MAX];
	const char *why = NULL;
	struct gw_cmd *c;
	int rc;

	if (g->stopping || !split_set_topic(g, d->topic, &dev_name, &pt_name))
		return;
	if (d->topic.len + 8 > sizeof(result_topic))
		return;
	snprintf(result_topic, sizeof(result_topic), "%.*s/result", (int)d->topic.len,
		 (const char *)d->topic.p);
	dev = gw_devmap_device(g->cfg.devmap, dev_name);
	pt = dev ? gw_devmap_point(dev, pt_name) : NULL;
	if (!pt) {
		why = "no such device or point";
		goto refuse;
	}
	if (!pt->writable) {
		why = "point is read-only (access = r)";
		goto refuse;
	}
	if (gw_parse_command(d->payload, &v, strbuf, sizeof(strbuf), &why))
		goto refuse;
	a = adapter_of(g, pt);
	if (!a) {
		why = "no adapter serves this device";
		goto refuse;
	}
	c = cmd_new(g, result_topic, props);
	if (!c) {
		why = "out of memory";
		goto refuse;
	}
	rc = a->ops->command(a, pt, &v, c, &why);
	if (rc) {
		cmd_free(c);
		if (!why)
			why = strerror(-rc);
		goto refuse;
	}
	gw_log(g->log, LOG_DEBUG, MOD, "command for %s/%s queued", dev->name, pt->name);
	return;
refuse:
	gw_log(g->log, LOG_INFO, MOD, "command on %.*s refused: %s", (int)d->topic.len,
	       (const char *)d->topic.p, why);
	{
		char *rt = props && props->response_topic.len ? dup_slice(props->response_topic)
							      : NULL;

		send_result(g, result_topic, rt, props ? props->correlation_data.p : NULL,
			    props ? props->correlation_data.len : 0, false, why, NULL);
		gw_free(rt);
	}
}

int gw__commands_start(struct gw *g)
{
	struct brk_client_opts opts = {
		.client_id = "$fieldmq-gateway",
		.clean_start = true,
		.deliver = on_command,
		.arg = g,
	};
	char filter[GW_TOPIC_MAX];
	int rc;

	rc = brk_client_new(g->broker, &opts, &g->cmd_client, NULL);
	if (rc)
		return rc;
	snprintf(filter, sizeof(filter), "%s/+/+/set", g->cfg.gateway.topic_prefix);
	return brk_client_subscribe(g->cmd_client, gw_slice_cstr(filter), 1, 0, 0);
}

void gw__commands_stop(struct gw *g)
{
	if (g->cmd_client) {
		brk_client_free(g->cmd_client, false);
		g->cmd_client = NULL;
	}
}

void gw__commands_free(struct gw *g)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &g->cmds) {
		cmd_free(gw_list_entry(pos, struct gw_cmd, node));
	}
}
