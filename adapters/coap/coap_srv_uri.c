/*
 * coap_srv_uri.c - the EMQX CoAP gateway interface's requests, from the
 * options libcoap parsed to an operation (coap_srv_int.h). Pure: no
 * allocation, no clock, no logging, no I/O; every byte of the request is
 * untrusted and read through its slice's length only. Also the split of
 * [coap] listen into its entries (a config string, not wire data).
 */
#include <errno.h>
#include <string.h>

#include "coap_srv_int.h"

static int refuse(struct coapsrv_req *out, int err, uint8_t code, const char *reason)
{
	out->code = code;
	out->reason = reason;
	return err;
}

static bool slice_is(struct gw_slice s, const char *lit)
{
	return gw_slice_eq_cstr(s, lit);
}

/* Decimal digits only, at most @max: 0 or -EINVAL. */
static int parse_u32(struct gw_slice s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (s.len == 0 || s.len > 10)
		return -EINVAL;
	for (i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A value of a query item may not hold a NUL: it becomes a C string later. */
static bool has_nul(struct gw_slice s)
{
	return s.len && memchr(s.p, 0, s.len) != NULL;
}

int coapsrv_parse_query(struct gw_slice item, struct coapsrv_req *out)
{
	const uint8_t *eq = item.len ? memchr(item.p, '=', item.len) : NULL;
	struct gw_slice key, val;
	uint32_t v;

	if (!eq) {
		key = item;
		val = (struct gw_slice){ item.p, 0 };
	} else {
		key = (struct gw_slice){ item.p, (size_t)(eq - item.p) };
		val = (struct gw_slice){ eq + 1, item.len - key.len - 1 };
	}
	if (has_nul(val))
		return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "NUL in a query value");
	if (slice_is(key, "clientid") || slice_is(key, "c")) {
		if (val.len == 0 || val.len > COAPSRV_ID_MAX)
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "bad clientid");
		out->clientid = val;
		out->has_clientid = true;
	} else if (slice_is(key, "username") || slice_is(key, "u")) {
		if (val.len > COAPSRV_CRED_MAX)
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "username too long");
		out->username = val;
		out->has_username = true;
	} else if (slice_is(key, "password") || slice_is(key, "p")) {
		if (val.len > COAPSRV_CRED_MAX)
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "password too long");
		out->password = val;
		out->has_password = true;
	} else if (slice_is(key, "token")) {
		if (val.len == 0 || val.len > 10)
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "bad token");
		out->token = val;
		out->has_token = true;
	} else if (slice_is(key, "qos")) {
		if (parse_u32(val, 2, &v))
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "qos must be 0, 1 or 2");
		out->qos = (uint8_t)v;
	} else if (slice_is(key, "retain")) {
		if (slice_is(val, "true") || slice_is(val, "1"))
			out->retain = true;
		else if (slice_is(val, "false") || slice_is(val, "0"))
			out->retain = false;
		else
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST,
				      "retain must be true or false");
	} else if (slice_is(key, "expiry")) {
		if (parse_u32(val, UINT32_MAX, &v))
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST,
				      "expiry must be a number of seconds");
		out->expiry = v;
		out->has_expiry = true;
	}
	/* Other keys are ignored, as EMQX ignores them. */
	return 0;
}

/*
 * The ps/ topic: the segments after "ps" joined with '/' into @buf. An
 * empty segment is an empty topic level (ps//a is "/a"), as in MQTT.
 */
static int join_topic(const struct coapsrv_raw *raw, char *buf, size_t cap, struct coapsrv_req *out)
{
	size_t n = 0;
	unsigned int i;

	for (i = 1; i < raw->n_path; i++) {
		const struct gw_slice *s = &raw->path[i];

		if (i > 1) {
			if (n + 1 > cap)
				return refuse(out, -EMSGSIZE, COAPSRV_BAD_REQUEST,
					      "topic too long");
			buf[n++] = '/';
		}
		if (s->len > cap - n)
			return refuse(out, -EMSGSIZE, COAPSRV_BAD_REQUEST, "topic too long");
		if (s->len && memchr(s->p, 0, s->len))
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "NUL in the topic");
		if (s->len)
			memcpy(buf + n, s->p, s->len);
		n += s->len;
	}
	out->topic = (struct gw_slice){ (const uint8_t *)buf, n };
	if (n == 0)
		return refuse(out, -ENOENT, COAPSRV_NOT_FOUND, "no topic");
	return 0;
}

/* [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.1-3]: wildcards take a whole level, # the last. */
static bool filter_ok(struct gw_slice f)
{
	size_t i;

	for (i = 0; i < f.len; i++) {
		bool level_start = i == 0 || f.p[i - 1] == '/';
		bool level_end = i + 1 == f.len || f.p[i + 1] == '/';

		if (f.p[i] == '+' && (!level_start || !level_end))
			return false;
		if (f.p[i] == '#' && (!level_start || i + 1 != f.len))
			return false;
	}
	return true;
}

static bool has_wildcard(struct gw_slice t)
{
	return memchr(t.p, '+', t.len) || memchr(t.p, '#', t.len);
}

static int route_ps(const struct coapsrv_raw *raw, char *buf, size_t cap, struct coapsrv_req *out)
{
	int rc = join_topic(raw, buf, cap, out);

	if (rc)
		return rc;
	switch (raw->method) {
	case COAPSRV_POST:
	case COAPSRV_PUT:
		if (has_wildcard(out->topic))
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST,
				      "a publish topic has no wildcards");
		out->op = COAPSRV_OP_PUBLISH;
		return 0;
	case COAPSRV_GET:
		/* RFC 7641 2: 0 registers, 1 deregisters. A plain GET is not
		 * a read of the topic: EMQX answers it as a wrong method too. */
		if (raw->observe != 0 && raw->observe != 1)
			return refuse(out, -EPERM, COAPSRV_BAD_METHOD,
				      "GET needs Observe 0 (subscribe) or 1 (unsubscribe)");
		if (!filter_ok(out->topic))
			return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "bad topic filter");
		out->op = raw->observe == 0 ? COAPSRV_OP_SUBSCRIBE : COAPSRV_OP_UNSUBSCRIBE;
		return 0;
	default:
		return refuse(out, -EPERM, COAPSRV_BAD_METHOD, "ps/ takes POST, PUT or GET");
	}
}

static int route_connection(const struct coapsrv_raw *raw, struct coapsrv_req *out)
{
	switch (raw->method) {
	case COAPSRV_POST:
		out->op = COAPSRV_OP_CONNECT;
		break;
	case COAPSRV_PUT:
		out->op = COAPSRV_OP_HEARTBEAT;
		break;
	case COAPSRV_DELETE:
		out->op = COAPSRV_OP_CLOSE;
		break;
	default:
		return refuse(out, -EPERM, COAPSRV_BAD_METHOD,
			      "mqtt/connection takes POST, PUT or DELETE");
	}
	if (!out->has_clientid)
		return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "clientid is required");
	if (out->op != COAPSRV_OP_CONNECT && !out->has_token)
		return refuse(out, -EINVAL, COAPSRV_BAD_REQUEST, "token is required");
	return 0;
}

int coapsrv_route(const struct coapsrv_raw *raw, char *buf, size_t cap, struct coapsrv_req *out)
{
	unsigned int i;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < raw->n_query; i++) {
		rc = coapsrv_parse_query(raw->query[i], out);
		if (rc)
			return rc;
	}
	if (raw->n_path >= 1 && slice_is(raw->path[0], "ps"))
		return route_ps(raw, buf, cap, out);
	if (raw->n_path == 2 && slice_is(raw->path[0], "mqtt") &&
	    slice_is(raw->path[1], "connection"))
		return route_connection(raw, out);
	return refuse(out, -ENOENT, COAPSRV_NOT_FOUND, "no such resource");
}

bool coapsrv_topic_match(struct gw_slice filter, struct gw_slice topic)
{
	size_t f = 0, t = 0;

	while (f < filter.len) {
		if (filter.p[f] == '#')
			return true; /* filter_ok put it last: matches the parent too */
		if (filter.p[f] == '+') {
			while (t < topic.len && topic.p[t] != '/')
				t++;
			f++;
		} else {
			if (t >= topic.len)
				/* "a/#" matches "a" [MQTT-4.7.1-2] */
				return filter.len - f == 2 && filter.p[f] == '/' &&
				       filter.p[f + 1] == '#';
			if (filter.p[f] != topic.p[t])
				return false;
			f++;
			t++;
			continue;
		}
		/* after a + level: both at a '/' or both at the end */
		if (f == filter.len)
			return t == topic.len;
		if (t == topic.len) {
			/* "a/+/#" matches "a/b": the remaining "/#" */
			return filter.len - f == 2 && filter.p[f] == '/' && filter.p[f + 1] == '#';
		}
	}
	return t == topic.len;
}

/* ---------------------------------------------------- [coap] listen */

int coapsrv_each_listen(const char *list, int (*fn)(void *arg, const char *e, size_t n), void *arg)
{
	const char *p = list;
	int rc = 0, count = 0;

	while (p && *p && !rc) {
		const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);

		while (p < end && *p == ' ')
			p++;
		while (end > p && end[-1] == ' ')
			end--;
		if (end > p) {
			if (++count > COAPSRV_MAX_LISTEN)
				return -EINVAL;
			rc = fn(arg, p, (size_t)(end - p));
		}
		p = e ? e + 1 : NULL;
	}
	return rc;
}
