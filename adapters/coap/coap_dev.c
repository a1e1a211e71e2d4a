/*
 * coap_dev.c - the CoAP device adapter's sans-I/O core: which resource to
 * GET or observe when, what an answer means for the points reading it, and
 * device health (bad once per change, offline after `retries` failures in a
 * row, degraded for `degrade_for` after `degrade_after`, back on the first
 * answer). No I/O, no clock (events carry the time), no libuv; it allocates
 * at init and through cJSON for JSON payloads.
 *
 * A resource is one path of a device. Observed (a point says observe = yes):
 * GET with Observe: 0 once; each notification is a reading; a notification
 * without Observe or with an error code ends the observation and the core
 * registers again after `poll`; when Max-Age (60 s unless the device says)
 * passes without a notification, the core registers again: that is how a
 * device that restarted and forgot its observers is found. A registration
 * answered without Observe means the device does not observe that resource:
 * it is polled. Not observed: a GET every `poll`.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "adapters/coap/coap_int.h"

/* A registration answered by nothing newer than Max-Age + this is re-made. */
#define MAX_AGE_SLACK_MS 2000

static void note(struct ad_coap_core *c, enum ad_coap_note_kind kind, const struct ad_coap_cdev *d,
		 const struct ad_coap_res *r, const struct ad_point *pt, int err)
{
	struct ad_coap_note n = { .kind = kind, .dev = d, .res = r, .pt = pt, .err = err };

	if (c->ops->note)
		c->ops->note(c->arg, &n);
}

static void emit(struct ad_coap_core *c, const struct ad_point *pt, const struct ad_value *v,
		 enum ad_quality q, int64_t ts)
{
	struct ad_reading rd = { .device = pt->device, .point = pt, .quality = q, .ts_ms = ts };

	if (v)
		rd.value = *v;
	c->stats.readings++;
	c->ops->on_reading(c->arg, &rd);
}

static void mark_bad(struct ad_coap_core *c, struct ad_coap_res *r, unsigned int i, int64_t ts)
{
	if (r->pt_q[i] == 2)
		return;
	r->pt_q[i] = 2;
	emit(c, r->pts[i], NULL, AD_Q_BAD, ts);
}

/* --------------------------------------------------------------- building */

static struct ad_coap_res *find_res(struct ad_coap_cdev *d, const char *path)
{
	unsigned int i;

	for (i = 0; i < d->n_res; i++)
		if (!strcmp(d->res[i].path, path))
			return &d->res[i];
	return NULL;
}

static int dev_init(struct ad_coap_core *c, struct ad_coap_cdev *d, const struct ad_device *cfg)
{
	unsigned int i, n = cfg->n_points;

	d->cfg = cfg;
	d->core = c;
	d->online = -1;
	/* at most one resource per point; points are grouped by path */
	d->res = gw_calloc(n ? n : 1, sizeof(*d->res));
	if (!d->res)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct ad_point *pt = cfg->points[i];
		struct ad_coap_res *r = find_res(d, ad_coap_pt_keys(pt)->path);

		if (!r) {
			r = &d->res[d->n_res];
			r->index = d->n_res++;
			r->path = ad_coap_pt_keys(pt)->path;
			r->dev = d;
			r->pts = gw_calloc(n, sizeof(*r->pts));
			r->pt_q = gw_calloc(n, 1);
			if (!r->pts || !r->pt_q)
				return -ENOMEM;
		}
		r->pts[r->n_pts++] = pt;
		r->observe |= ad_coap_pt_keys(pt)->observe;
	}
	return 0;
}

int ad_coap_core_init(struct ad_coap_core *c, const struct ad_map *map,
		      const struct ad_coap_core_ops *ops, void *arg)
{
	unsigned int i, n = 0;

	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->arg = arg;
	gw_arena_init(&c->json_arena, AD_COAP_JSON_ARENA_WARM, AD_COAP_JSON_ARENA_CAP);
	for (i = 0; i < map->n_devices; i++)
		n += map->devices[i]->protocol == AD_PROTO_COAP;
	c->devs = gw_calloc(n ? n : 1, sizeof(*c->devs));
	if (!c->devs)
		return -ENOMEM;
	for (i = 0; i < map->n_devices; i++) {
		if (map->devices[i]->protocol != AD_PROTO_COAP)
			continue;
		if (dev_init(c, &c->devs[c->n_devs++], map->devices[i])) {
			ad_coap_core_fini(c);
			return -ENOMEM;
		}
	}
	c->stats.devices = c->n_devs;
	return 0;
}

void ad_coap_core_fini(struct ad_coap_core *c)
{
	unsigned int i, k;

	for (i = 0; c->devs && i < c->n_devs; i++) {
		for (k = 0; k < c->devs[i].n_res; k++) {
			gw_free(c->devs[i].res[k].pts);
			gw_free(c->devs[i].res[k].pt_q);
		}
		gw_free(c->devs[i].res);
	}
	gw_free(c->devs);
	c->devs = NULL;
	c->n_devs = 0;
	gw_arena_fini(&c->json_arena);
}

/* ----------------------------------------------------------------- health */

static void dev_ok(struct ad_coap_core *c, struct ad_coap_cdev *d)
{
	d->fails = 0;
	d->skip_until = 0;
	if (d->online == 1)
		return;
	d->online = 1;
	c->stats.devices_online++;
	note(c, AD_COAP_NOTE_ONLINE, d, NULL, NULL, 0);
	if (c->ops->on_status)
		c->ops->on_status(c->arg, d->cfg, true);
}

/*
 * A transport failure (no answer, RST, ICMP): count it against the device.
 * The resources of a device fail together when it is down; what counts, as
 * for a Modbus device's cycles, is failed polls: failures less than a poll
 * interval after the last counted one are the same outage.
 */
static void dev_failed(struct ad_coap_core *c, struct ad_coap_cdev *d, int64_t now)
{
	const struct ad_coap_device *k = ad_coap_dev_keys(d->cfg);
	unsigned int limit = k->retries ? k->retries : 1;

	if (d->fails && now - d->fail_ms < (int64_t)d->cfg->poll_ms)
		return;
	d->fails++;
	d->fail_ms = now;
	if (d->fails >= limit && d->online != 0) {
		if (d->online == 1)
			c->stats.devices_online--;
		d->online = 0;
		note(c, AD_COAP_NOTE_OFFLINE, d, NULL, NULL, 0);
		if (c->ops->on_status)
			c->ops->on_status(c->arg, d->cfg, false);
	}
	if (k->degrade_after && d->fails >= k->degrade_after && k->degrade_for_ms) {
		if (d->fails == k->degrade_after)
			note(c, AD_COAP_NOTE_DEGRADED, d, NULL, NULL, (int)d->fails);
		d->skip_until = now + k->degrade_for_ms;
	}
}

/* ---------------------------------------------------------------- figures */

/* An exchange of @d ended without an answer (@err, as ad_coap_core_failure() takes). */
static void count_failure(struct ad_coap_cdev *d, int err)
{
	enum ad_err_kind k = err == -ETIMEDOUT ? AD_ERR_TIMEOUT
			     : err == -EACCES  ? AD_ERR_TLS /* the glue's COAP_NACK_TLS_FAILED */
					       : AD_ERR_TRANSPORT;

	d->st.requests++;
	d->st.errors[k]++;
}

/*
 * An answer of @r with @code at @now: a notification when @r was observing
 * (no request to time), else the answer to the request sent at r->sent_ms.
 */
static void count_answer(struct ad_coap_res *r, int64_t now, unsigned int code, bool notification)
{
	struct ad_device_stats *st = &r->dev->st;

	st->requests++;
	if (!notification)
		gw_hist_observe_us(&st->latency, (now - r->sent_ms) * 1000);
	if (code >> 5 != 2)
		st->errors[AD_ERR_EXCEPTION]++;
}

/* --------------------------------------------------------------- requests */

static int64_t res_due(const struct ad_coap_res *r)
{
	if (r->state == AD_COAP_WAIT)
		return r->sent_ms + ad_coap_dev_keys(r->dev->cfg)->timeout_ms;
	return r->next_ms;
}

static int64_t failure(struct ad_coap_core *c, struct ad_coap_res *r, struct ad_coap_clock now,
		       int err, bool transport);

static void send_req(struct ad_coap_core *c, struct ad_coap_res *r, struct ad_coap_clock now)
{
	bool obs = r->observe;
	int rc;

	r->state = AD_COAP_WAIT;
	r->registering = obs;
	r->sent_ms = now.mono_ms;
	c->stats.requests++;
	c->stats.registrations += obs;
	rc = c->ops->send(c->arg, r, obs);
	if (rc)
		failure(c, r, now, rc, true);
}

int64_t ad_coap_core_tick(struct ad_coap_core *c, struct ad_coap_clock now)
{
	int64_t next = INT64_MAX;
	unsigned int i, k;

	if (c->stopped)
		return next;
	for (i = 0; i < c->n_devs; i++) {
		struct ad_coap_cdev *d = &c->devs[i];

		for (k = 0; k < d->n_res; k++) {
			struct ad_coap_res *r = &d->res[k];

			if (res_due(r) <= now.mono_ms) {
				if (r->state == AD_COAP_WAIT) {
					c->ops->forget(c->arg, r);
					failure(c, r, now, -ETIMEDOUT, true);
				} else if (d->skip_until && now.mono_ms < d->skip_until) {
					/* degraded: try again when it ends */
					c->stats.skipped++;
					r->next_ms = d->skip_until;
				} else {
					if (r->state == AD_COAP_OBSERVING) {
						note(c, AD_COAP_NOTE_REREGISTER, d, r, NULL, 0);
						c->ops->forget(c->arg, r);
					}
					send_req(c, r, now);
				}
			}
			if (res_due(r) < next)
				next = res_due(r);
		}
	}
	return next;
}

/* ---------------------------------------------------------------- answers */

static int64_t failure(struct ad_coap_core *c, struct ad_coap_res *r, struct ad_coap_clock now,
		       int err, bool transport)
{
	struct ad_coap_cdev *d = r->dev;
	unsigned int i;

	c->stats.failures++;
	if (transport)
		count_failure(d, err);
	if (r->err != err)
		note(c, AD_COAP_NOTE_FAILED, d, r, NULL, err);
	r->err = err;
	for (i = 0; i < r->n_pts; i++)
		mark_bad(c, r, i, now.wall_ms);
	r->state = AD_COAP_IDLE;
	r->registering = false;
	r->next_ms = now.mono_ms + d->cfg->poll_ms;
	if (transport)
		dev_failed(c, d, now.mono_ms);
	else
		dev_ok(c, d); /* it answered, with an error */
	if (d->skip_until && r->next_ms < d->skip_until)
		r->next_ms = d->skip_until;
	return res_due(r);
}

int64_t ad_coap_core_failure(struct ad_coap_core *c, struct ad_coap_res *r,
			     struct ad_coap_clock now, int err)
{
	if (c->stopped)
		return INT64_MAX;
	if (r->state == AD_COAP_IDLE)
		return res_due(r); /* nothing in flight: a late report */
	return failure(c, r, now, err ? err : -EIO, true);
}

/* The format a point reads this payload with. */
static enum ad_coap_format pick_format(const struct ad_coap_point *cp, int cf)
{
	if (cp->format != AD_COAP_FMT_AUTO)
		return cp->format;
	switch (cf) {
	case AD_COAP_CF_TEXT:
		return AD_COAP_FMT_TEXT;
	case AD_COAP_CF_JSON:
		return AD_COAP_FMT_JSON;
	case AD_COAP_CF_SENML_JSON:
		return AD_COAP_FMT_SENML;
	case AD_COAP_CF_NONE:
		/* no Content-Format: what the point's keys ask for */
		if (cp->json_pointer && *cp->json_pointer)
			return AD_COAP_FMT_JSON;
		if (cp->senml_name && *cp->senml_name)
			return AD_COAP_FMT_SENML;
		return AD_COAP_FMT_TEXT;
	default:
		return __AD_COAP_FMT_MAX; /* CBOR, link-format, ...: not a value we read */
	}
}

/* Every point of @r from one payload: readings, or bad + counted. Returns the points that were bad. */
static unsigned int read_points(struct ad_coap_core *c, struct ad_coap_res *r, int64_t ts, int cf,
				const uint8_t *p, size_t n)
{
	void *doc = NULL;
	bool parsed = false;
	unsigned int i, bad = 0;

	for (i = 0; i < r->n_pts; i++) {
		const struct ad_point *pt = r->pts[i];
		const struct ad_coap_point *cp = ad_coap_pt_keys(pt);
		enum ad_coap_format f = pick_format(cp, cf);
		struct ad_coap_raw raw;
		struct ad_value v;
		int rc;

		switch (f) {
		case AD_COAP_FMT_TEXT:
			rc = ad_coap_text_parse(p, n, &raw);
			break;
		case AD_COAP_FMT_JSON:
		case AD_COAP_FMT_SENML:
			if (!parsed) {
				doc = ad_coap_json_parse(&c->json_arena, p, n);
				parsed = true;
			}
			if (!doc)
				rc = -EBADMSG;
			else if (f == AD_COAP_FMT_JSON)
				rc = ad_coap_json_get(doc, cp->json_pointer, &raw);
			else
				rc = ad_coap_senml_get(doc, cp->senml_name, &raw);
			break;
		default:
			rc = -EBADMSG;
			break;
		}
		if (!rc)
			rc = ad_coap_raw_to_value(pt, &raw, &v);
		if (rc) {
			bad++;
			c->stats.parse_errors++;
			if (r->pt_q[i] != 2)
				note(c, AD_COAP_NOTE_PARSE, r->dev, r, pt, rc);
			mark_bad(c, r, i, ts);
			continue;
		}
		r->pt_q[i] = 1;
		emit(c, pt, &v, AD_Q_GOOD, ts);
	}
	if (parsed)
		ad_coap_json_free(&c->json_arena, doc);
	return bad;
}

int64_t ad_coap_core_response(struct ad_coap_core *c, struct ad_coap_res *r,
			      struct ad_coap_clock now, unsigned int code, int cf, bool observe,
			      int64_t max_age_ms, const uint8_t *payload, size_t len)
{
	struct ad_coap_cdev *d = r->dev;
	bool was_observing = r->state == AD_COAP_OBSERVING;

	if (c->stopped)
		return INT64_MAX;
	if (r->state == AD_COAP_IDLE)
		return res_due(r); /* an exchange the core gave up */
	c->stats.responses++;
	c->stats.notifications += was_observing;
	count_answer(r, now.mono_ms, code, was_observing);
	if (code >> 5 != 2) {
		/* 4.xx / 5.xx: the device is there, the resource is not well */
		if (was_observing)
			note(c, AD_COAP_NOTE_OBS_ENDED, d, r, NULL, (int)code);
		c->ops->forget(c->arg, r);
		return failure(c, r, now, (int)code, false);
	}
	if (r->err) {
		note(c, AD_COAP_NOTE_RECOVERED, d, r, NULL, r->err);
		r->err = 0;
	}
	dev_ok(c, d);
	if (read_points(c, r, now.wall_ms, cf, payload, len))
		d->st.errors[AD_ERR_PARSE]++; /* once per answer, however many points */
	if ((r->registering || was_observing) && observe) {
		if (max_age_ms < 0)
			max_age_ms = AD_COAP_DEFAULT_MAX_AGE_MS;
		r->state = AD_COAP_OBSERVING;
		r->registering = false;
		r->obs_refused = false;
		r->next_ms = now.mono_ms + max_age_ms + MAX_AGE_SLACK_MS;
		return res_due(r);
	}
	if (r->registering && !r->obs_refused)
		note(c, AD_COAP_NOTE_NO_OBSERVE, d, r, NULL, 0);
	else if (was_observing)
		note(c, AD_COAP_NOTE_OBS_ENDED, d, r, NULL, 0);
	if (was_observing || r->registering)
		c->ops->forget(c->arg, r);
	r->obs_refused |= r->registering;
	r->state = AD_COAP_IDLE;
	r->registering = false;
	r->next_ms = now.mono_ms + d->cfg->poll_ms;
	return res_due(r);
}

int ad_coap_core_device_stats(const struct ad_coap_core *c, const struct ad_device *d,
			      struct ad_device_stats *out)
{
	unsigned int i;

	for (i = 0; i < c->n_devs; i++) {
		if (c->devs[i].cfg != d)
			continue;
		*out = c->devs[i].st;
		out->kinds = AD_ERR_BIT(AD_ERR_TIMEOUT) | AD_ERR_BIT(AD_ERR_EXCEPTION) |
			     AD_ERR_BIT(AD_ERR_TRANSPORT) | AD_ERR_BIT(AD_ERR_PARSE) |
			     AD_ERR_BIT(AD_ERR_TLS);
		return 0;
	}
	return -ENOENT;
}
