/*
 * broker.c - the core: shared messages and their node pool, publish routing,
 * the broker's set-up and teardown, $SYS, the publishes of in-process clients
 * and of the broker, the ACL switch and the persistence hooks (restoring
 * retained messages and sessions). The session table and a session's life
 * are in session_life.c, the rest of the in-process clients in client.c.
 *
 * No libuv here beyond the loop pointer kept for the glue: time comes in as
 * an argument (monotonic ms) so tests drive it with a fake clock.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

#ifndef FIELDMQ_VERSION
#define FIELDMQ_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------- messages */

static size_t prop_len(const struct brk_msg_props *p)
{
	return p->content_type.len + p->response_topic.len + p->correlation_data.len +
	       p->user_props.len;
}

/* Properties that say nothing (an MQTT 5 publish without any) are not kept. */
static bool props_empty(const struct brk_msg_props *p)
{
	return !p || (!p->has_payload_format && !p->has_expiry && !p->content_type.p &&
		      !p->response_topic.p && !p->correlation_data.p && !p->user_props.len);
}

/* Copy @src to *dst and return the slice at its new home (NULL p stays NULL). */
static struct gw_slice copy_slice(uint8_t **dst, struct gw_slice src)
{
	struct gw_slice out = { NULL, 0 };

	if (!src.p)
		return out;
	out.p = *dst;
	out.len = src.len;
	if (src.len)
		memcpy(*dst, src.p, src.len);
	*dst += src.len;
	return out;
}

struct brk_msg *brk__msg_new(const struct brk_pub *pub, int64_t now)
{
	const struct brk_msg_props *pp = props_empty(pub->props) ? NULL : pub->props;
	size_t len, ext_at = 0;
	struct brk_msg_ext *x;
	struct brk_msg *m;
	uint8_t *d;

	if (pub->topic.len > 65535 || pub->payload.len > UINT32_MAX)
		return NULL;
	len = offsetof(struct brk_msg, topic) + pub->topic.len + 1 + pub->payload.len;
	if (pp) {
		/* Room to align the ext; the message itself is allocated aligned. */
		ext_at = (len + 7) & ~(size_t)7;
		len = ext_at + sizeof(*x) + prop_len(pp);
	}
	m = gw_malloc(len);
	if (!m)
		return NULL;
	memset(m, 0, offsetof(struct brk_msg, topic));
	m->refs = 1;
	m->qos = pub->qos > 2 ? 2 : pub->qos;
	m->retain = pub->retain;
	m->topic_len = (uint16_t)pub->topic.len;
	memcpy(m->topic, pub->topic.p, pub->topic.len);
	m->topic[pub->topic.len] = 0;
	d = (uint8_t *)m->topic + pub->topic.len + 1;
	m->payload_len = (uint32_t)pub->payload.len;
	if (pub->payload.len)
		memcpy(d, pub->payload.p, pub->payload.len);
	if (pp) {
		m->has_props = true;
		x = (struct brk_msg_ext *)((uint8_t *)m + ext_at);
		memset(x, 0, sizeof(*x));
		d = (uint8_t *)(x + 1);
		x->props.has_payload_format = pp->has_payload_format;
		x->props.payload_format = pp->payload_format;
		x->props.has_expiry = pp->has_expiry;
		x->props.expiry = pp->expiry;
		x->props.content_type = copy_slice(&d, pp->content_type);
		x->props.response_topic = copy_slice(&d, pp->response_topic);
		x->props.correlation_data = copy_slice(&d, pp->correlation_data);
		x->props.user_props = copy_slice(&d, pp->user_props);
		if (pp->has_expiry && now)
			x->expire_at = now + (int64_t)pp->expiry * 1000;
	}
	return m;
}

void brk__msg_unref(struct brk_msg *m)
{
	if (m && --m->refs == 0)
		gw_free(m);
}

uint32_t brk__msg_expiry_left(const struct brk_msg *m, int64_t now)
{
	int64_t at = brk__msg_expire_at(m), left;

	if (!at)
		return 0;
	left = (at - now + 999) / 1000;
	return left < 1 ? 1 : (uint32_t)left;
}

/* ------------------------------------------------------------ node pool */

_Static_assert(sizeof(struct brk_hold) <= BRK_NODE_SIZE, "brk_hold fits a pool node");
_Static_assert(sizeof(struct brk_inq) <= BRK_NODE_SIZE, "brk_inq fits a pool node");
_Static_assert(sizeof(struct brk_qmsg) + BRK_QMSG_POOL_IDS * sizeof(uint32_t) <= BRK_NODE_SIZE,
	       "brk_qmsg with its inline ids fits a pool node");

void *brk__node_get(struct brk *b)
{
	struct brk_pool *pl = &b->pool;
	void *p = pl->free;

	if (!p) {
		pl->n_mallocs++;
		return gw_malloc(BRK_NODE_SIZE);
	}
	memcpy(&pl->free, p, sizeof(void *));
	if (--pl->n_free < pl->low)
		pl->low = pl->n_free;
	return p;
}

void brk__node_put(struct brk *b, void *p)
{
	struct brk_pool *pl;

	if (!p)
		return;
	if (!b || b->pool.n_free >= BRK_POOL_MAX_FREE) {
		gw_free(p);
		return;
	}
	pl = &b->pool;
	memcpy(p, &pl->free, sizeof(void *));
	pl->free = p;
	pl->n_free++;
}

void brk__pool_trim(struct brk *b)
{
	struct brk_pool *pl = &b->pool;
	uint32_t n = pl->low;

	/* Nodes no burst reached during the whole last period are not needed. */
	while (n-- && pl->free) {
		void *p = pl->free;

		memcpy(&pl->free, p, sizeof(void *));
		pl->n_free--;
		gw_free(p);
	}
	pl->low = pl->n_free;
}

static void pool_fini(struct brk *b)
{
	b->pool.low = b->pool.n_free;
	brk__pool_trim(b);
}

struct brk_qmsg *brk__qmsg_get(struct brk *b, unsigned int n_ids)
{
	if (n_ids <= BRK_QMSG_POOL_IDS)
		return brk__node_get(b);
	return gw_malloc(sizeof(struct brk_qmsg) + n_ids * sizeof(uint32_t));
}

void brk__qmsg_put(struct brk *b, struct brk_qmsg *q)
{
	if (q && q->n_ids <= BRK_QMSG_POOL_IDS)
		brk__node_put(b, q);
	else
		gw_free(q);
}

/* --------------------------------------------------------------- routing */

void brk__route(struct brk *b, struct brk_msg *m, struct brk_session *from, struct brk_hold *hold,
		int64_t now)
{
	struct brk_matches local = { 0 }, *mm = &b->matches;
	unsigned int i;

	if (m->retain && b->cfg.retain_available) {
		if (!brk__tree_retain(&b->tree, m) && b->pops && b->pops->retained_set) {
			struct brk_pub pub = brk__msg_pub(m);

			b->pops->retained_set(b->parg, &pub);
		}
	}
	/*
	 * An in-process subscriber may publish from its delivery callback: the
	 * nested route then needs its own match list.
	 */
	if (b->route_depth)
		mm = &local;
	b->route_depth++;
	mm->gen = ++b->match_gen;
	brk__tree_match(&b->tree, brk__msg_topic(m), from, mm);
	if (!b->cfg.acl) {
		for (i = 0; i < mm->n; i++)
			brk__session_deliver(mm->v[i].s, m, &mm->v[i], hold, now);
	} else {
		/* Only sessions whose subscriptions do not guarantee read access are checked. */
		for (i = 0; i < mm->n; i++) {
			struct brk_session *s = mm->v[i].s;

			if (s->acl_deliver &&
			    !brk__acl_allowed(s->acl, brk__msg_topic(m), BRK_ACL_READ))
				continue;
			brk__session_deliver(s, m, &mm->v[i], hold, now);
		}
	}
	b->route_depth--;
	if (mm == &local)
		gw_free(local.v);
}

/* ------------------------------------------------------------ the core */

void brk_config_defaults(struct brk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen[0].url = (char *)"127.0.0.1:1883";
	cfg->listen[0].max_connections = 1024;
	cfg->n_listen = 1;
	cfg->allow_anonymous = true;
	cfg->max_connections = 1024;
	cfg->max_buffered_bytes = 1024 * 1024;
	cfg->slow_consumer_timeout_ms = 10000;
	cfg->max_packet_size = 1024 * 1024;
	cfg->max_inflight = 32;
	cfg->receive_maximum = 65535;
	cfg->max_held_acks = 1000;
	cfg->max_queued_messages = 1000;
	cfg->max_queued_bytes = 16ull * 1024 * 1024;
	cfg->max_keepalive = 65535;
	cfg->max_topic_alias = 64;
	cfg->retain_available = true;
	cfg->sys_interval_ms = 10000;
	cfg->persist = true;
}

/* Each string of a listener's configuration, NULL ones included. */
#define LISTENER_STRINGS(l)                                                                        \
	{                                                                                          \
		&(l)->url, &(l)->name, &(l)->tls.cert_file, &(l)->tls.key_file, &(l)->tls.ca_file, \
			&(l)->ws_path                                                              \
	}

static void listener_free(struct brk_listener_cfg *l)
{
	char **v[] = LISTENER_STRINGS(l);
	size_t i;

	for (i = 0; i < GW_ARRAY_SIZE(v); i++) {
		gw_free(*v[i]);
		*v[i] = NULL;
	}
}

/* *@dst = @src with strings of its own (@dst's are NULL). 0 or -ENOMEM. */
static int listener_copy(struct brk_listener_cfg *dst, const struct brk_listener_cfg *src)
{
	struct brk_listener_cfg tmp = *src;
	char **from[] = LISTENER_STRINGS(&tmp);
	char **to[] = LISTENER_STRINGS(dst);
	size_t i;

	*dst = tmp;
	for (i = 0; i < GW_ARRAY_SIZE(to); i++) {
		*to[i] = *from[i] ? gw_strdup(*from[i]) : NULL;
		if (*from[i] && !*to[i]) {
			while (++i < GW_ARRAY_SIZE(to))
				*to[i] = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

int brk__init(struct brk *b, struct uv_loop_s *loop, const struct brk_config *cfg,
	      const struct gw_logger *lg, const struct brk_clock *clk)
{
	unsigned int i;

	memset(b, 0, sizeof(*b));
	b->loop = loop;
	b->cfg = *cfg;
	b->lg = lg;
	b->clock = *clk;
	gw_list_init(&b->conns);
	gw_list_init(&b->timed);
	gw_list_init(&b->loose_holds);
	gw_list_init(&b->auth_run);
	gw_list_init(&b->auth_wait);
	if (b->cfg.n_listen > BRK_MAX_LISTENERS)
		return -EINVAL;
	/* The listeners' strings are the broker's own copies, freed by brk__fini. */
	memset(b->cfg.listen, 0, sizeof(b->cfg.listen));
	for (i = 0; i < b->cfg.n_listen; i++)
		if (listener_copy(&b->cfg.listen[i], &cfg->listen[i]))
			goto nomem;
	if (brk__tree_init(&b->tree) || brk__sessions_grow(b))
		goto nomem;
	/* Allocated before any connection, so that it sits below them all. */
	b->stage.buf = gw_malloc(BRK_STAGE_MIN);
	if (!b->stage.buf)
		goto nomem;
	b->stage.cap = BRK_STAGE_MIN;
	b->started = brk__now(b);
	b->last_sys = b->started;
	return 0;
nomem:
	brk__fini(b);
	return -ENOMEM;
}

void brk__fini(struct brk *b)
{
	unsigned int i;

	brk__auth_fini(b);
	for (i = 0; i < b->n_sbuckets; i++)
		while (b->sessions[i])
			brk__session_free(b->sessions[i]);
	/* Holds still taken outlive us: their last release frees them without the pool. */
	while (b->loose_holds.next && !gw_list_empty(&b->loose_holds)) {
		struct brk_hold *h = gw_list_first(&b->loose_holds, struct brk_hold, link);

		gw_list_del(&h->link);
		h->b = NULL;
	}
	pool_fini(b);
	gw_free(b->sessions);
	b->sessions = NULL;
	b->n_sbuckets = 0;
	brk__tree_fini(&b->tree);
	gw_free(b->matches.v);
	b->matches.v = NULL;
	gw_free(b->stage.buf);
	memset(&b->stage, 0, sizeof(b->stage));
	for (i = 0; i < BRK_MAX_LISTENERS; i++)
		listener_free(&b->cfg.listen[i]);
}

static void sys_pub(struct brk *b, const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void sys_pub(struct brk *b, const char *topic, const char *fmt, ...)
{
	char val[64];
	struct brk_pub pub;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	memset(&pub, 0, sizeof(pub));
	pub.topic = gw_slice_cstr(topic);
	pub.payload = (struct gw_slice){ (const uint8_t *)val, (size_t)GW_MIN(n, 63) };
	pub.retain = true;
	brk_publish(b, &pub);
}

/* Has some listener of @b this transport? */
static bool has_transport(const struct brk *b, enum brk_transport kind)
{
	struct sockaddr_storage ss;
	enum brk_transport k;
	unsigned int i;

	for (i = 0; i < b->cfg.n_listen; i++)
		if (!brk_listen_parse(b->cfg.listen[i].url, &k, &ss) && k == kind)
			return true;
	return false;
}

/* The figures of the limits: those of a limit not configured are not published. */
static void sys_limits(struct brk *b, const struct brk_stats *st)
{
	bool proxy = false;
	unsigned int i;

	for (i = 0; i < b->cfg.n_listen; i++)
		proxy |= b->cfg.listen[i].proxy_protocol;
	sys_pub(b, "$SYS/fieldmq/broker/refused/max_connections", "%" PRIu64,
		st->refused_max_connections);
	if (b->cfg.max_connections_per_source)
		sys_pub(b, "$SYS/fieldmq/broker/refused/per_source", "%" PRIu64,
			st->refused_per_source);
	if (b->cfg.connect_rate)
		sys_pub(b, "$SYS/fieldmq/broker/refused/connect_rate", "%" PRIu64,
			st->refused_rate);
	if (b->cfg.max_buffered_bytes) {
		sys_pub(b, "$SYS/fieldmq/broker/slow/dropped", "%" PRIu64, st->slow_dropped);
		sys_pub(b, "$SYS/fieldmq/broker/slow/disconnected", "%" PRIu64,
			st->slow_disconnected);
	}
	if (proxy)
		sys_pub(b, "$SYS/fieldmq/broker/proxy/refused", "%" PRIu64, st->proxy_bad);
}

void brk__sys_publish(struct brk *b, int64_t now)
{
	struct brk_stats st;

	brk_get_stats(b, &st);
	b->last_sys = now;
	sys_pub(b, "$SYS/broker/version", "fieldmq %s", FIELDMQ_VERSION);
	sys_pub(b, "$SYS/broker/uptime", "%lld seconds", (long long)((now - b->started) / 1000));
	sys_pub(b, "$SYS/broker/clients/connected", "%" PRIu64, st.clients_connected);
	sys_pub(b, "$SYS/broker/clients/total", "%" PRIu64, st.clients_total);
	sys_pub(b, "$SYS/broker/messages/received", "%" PRIu64, st.msgs_received);
	sys_pub(b, "$SYS/broker/messages/sent", "%" PRIu64, st.msgs_sent);
	sys_pub(b, "$SYS/broker/bytes/received", "%" PRIu64, st.bytes_received);
	sys_pub(b, "$SYS/broker/bytes/sent", "%" PRIu64, st.bytes_sent);
	sys_pub(b, "$SYS/broker/subscriptions/count", "%" PRIu64, st.subscriptions);
	sys_pub(b, "$SYS/broker/retained messages/count", "%" PRIu64, st.retained);
	sys_pub(b, "$SYS/broker/heap/current", "%zu", gw_mem_used());
	sys_pub(b, "$SYS/broker/clients/malformed", "%" PRIu64, st.malformed);
	sys_pub(b, "$SYS/broker/clients/protocol errors", "%" PRIu64, st.protocol_errors);
	sys_pub(b, "$SYS/broker/messages/dropped", "%" PRIu64, st.dropped);
	if (b->cfg.acl)
		sys_pub(b, "$SYS/fieldmq/broker/acl_denied", "%" PRIu64, st.acl_denied);
	if (b->cfg.passwd) {
		sys_pub(b, "$SYS/fieldmq/broker/auth_failed", "%" PRIu64, st.auth_failed);
		sys_pub(b, "$SYS/fieldmq/broker/auth_busy", "%" PRIu64, st.auth_busy);
	}
	sys_pub(b, "$SYS/fieldmq/broker/read_pauses", "%" PRIu64, st.read_pauses);
	if (has_transport(b, BRK_TR_MQTTS) || has_transport(b, BRK_TR_WSS))
		sys_pub(b, "$SYS/fieldmq/broker/tls_failed", "%" PRIu64, st.tls_failed);
	if (has_transport(b, BRK_TR_WS) || has_transport(b, BRK_TR_WSS))
		sys_pub(b, "$SYS/fieldmq/broker/ws_refused", "%" PRIu64, st.ws_refused);
	sys_limits(b, &st);
}

void brk__tick(struct brk *b, int64_t now)
{
	struct gw_list *pos, *tmp;

	gw_list_for_each_safe (pos, tmp, &b->conns) {
		brk__conn_tick(gw_list_entry(pos, struct brk_conn, link), now);
	}
	brk__timed(b, now);
	if (b->cfg.sys_interval_ms && now - b->last_sys >= (int64_t)b->cfg.sys_interval_ms)
		brk__sys_publish(b, now);
	brk__pool_trim(b);
	/* A burst may have grown the stage: give back what is over its usual size. */
	if (!b->n_staged && b->stage.cap > BRK_STAGE_KEEP) {
		uint8_t *p = gw_realloc(b->stage.buf, BRK_STAGE_MIN);

		if (p) {
			b->stage.buf = p;
			b->stage.cap = BRK_STAGE_MIN;
		}
	}
}

void brk_get_stats(const struct brk *b, struct brk_stats *out)
{
	*out = b->st;
	out->clients_total = b->n_sessions;
	out->subscriptions = b->tree.n_subs;
	out->retained = b->tree.n_retained;
}

/* ------------------------------------------------------------ publishing */

/*
 * The publishes of in-process clients (client.c) and of the broker itself,
 * kept beside brk__msg_new, brk__node_get and brk__msg_unref, which they inline.
 */

static int publish_from(struct brk *b, struct brk_session *from, const struct brk_pub *pub,
			void (*acked)(void *arg, int status), void *arg)
{
	int64_t now = brk__now(b);
	struct brk_hold *h = NULL;
	struct brk_msg *m;

	if (!brk__topic_name_valid(pub->topic) || pub->qos > 2)
		return -EINVAL;
	if (from && from->acl && !brk__acl_allowed(from->acl, pub->topic, BRK_ACL_WRITE)) {
		b->st.acl_denied++;
		return -EACCES;
	}
	m = brk__msg_new(pub, now);
	if (!m)
		return -ENOMEM;
	if (acked) {
		h = brk__node_get(b);
		if (!h) {
			brk__msg_unref(m);
			return -ENOMEM;
		}
		memset(h, 0, sizeof(*h));
		h->b = b;
		h->refs = 1; /* ours, until routing is done */
		h->acked = acked;
		h->arg = arg;
		gw_list_add_tail(&b->loose_holds, &h->link);
	}
	b->st.msgs_received++;
	brk__route(b, m, from, h, now);
	brk__msg_unref(m);
	if (h)
		brk_hold_release(h);
	return 0;
}

int brk_client_publish(struct brk_client *c, const struct brk_pub *pub)
{
	if (!c->s)
		return -ENOTCONN;
	return publish_from(c->s->b, c->s, pub, NULL, NULL);
}

int brk_client_publish_acked(struct brk_client *c, const struct brk_pub *pub,
			     void (*acked)(void *arg, int status), void *arg)
{
	if (!c->s)
		return -ENOTCONN;
	if (!acked)
		return -EINVAL;
	return publish_from(c->s->b, c->s, pub, acked, arg);
}

int brk_publish(struct brk *b, const struct brk_pub *pub)
{
	return publish_from(b, NULL, pub, NULL, NULL);
}

int brk_publish_anon(struct brk *b, const struct brk_pub *pub)
{
	struct brk_acl_view *v = NULL;
	bool ok;

	if (!b->cfg.acl)
		return publish_from(b, NULL, pub, NULL, NULL);
	if (!brk__topic_name_valid(pub->topic) || pub->qos > 2)
		return -EINVAL;
	/* No client id (a NULL slice): only the rules for every client apply. */
	if (brk__acl_view_new(b->cfg.acl, (struct gw_slice){ NULL, 0 }, NULL, &v))
		return -ENOMEM;
	ok = brk__acl_allowed(v, pub->topic, BRK_ACL_WRITE);
	gw_free(v);
	if (!ok) {
		b->st.acl_denied++;
		return -EACCES;
	}
	return publish_from(b, NULL, pub, NULL, NULL);
}

int brk_set_acl(struct brk *b, struct brk_acl *acl)
{
	struct brk_acl_view **views = NULL;
	struct brk_session *s;
	uint32_t i, n = 0, k = 0;
	int rc = 0;

	/*
	 * All or nothing: every new set of rules is built first, so that on
	 * out-of-memory the sessions keep the rules of the previous ACL
	 * (which the caller then keeps too).
	 */
	for (i = 0; i < b->n_sbuckets; i++)
		for (s = b->sessions[i]; s; s = s->hnext)
			n += s->acl != NULL;
	if (n && acl) {
		views = gw_calloc(n, sizeof(*views));
		if (!views)
			return -ENOMEM;
		for (i = 0; i < b->n_sbuckets && !rc; i++)
			for (s = b->sessions[i]; s && !rc; s = s->hnext) {
				struct gw_slice u = gw_slice_cstr(s->acl ? s->acl->user : NULL);

				if (s->acl)
					rc = brk__acl_view_new(acl, gw_slice_cstr(s->client_id),
							       s->acl->user ? &u : NULL,
							       &views[k++]);
			}
		if (rc) {
			for (i = 0; i < k; i++)
				gw_free(views[i]);
			gw_free(views);
			return -ENOMEM;
		}
	}
	k = 0;
	for (i = 0; i < b->n_sbuckets; i++)
		for (s = b->sessions[i]; s; s = s->hnext) {
			if (!s->acl)
				continue;
			if (acl) {
				brk__session_acl_attach(s, views[k++], true);
			} else {
				gw_free(s->acl);
				s->acl = NULL;
				s->acl_deliver = false;
			}
		}
	gw_free(views);
	b->cfg.acl = acl;
	return 0;
}

/* ------------------------------------------------------------ persistence */

void brk_set_persist(struct brk *b, const struct brk_persist_ops *ops, void *arg)
{
	b->pops = ops;
	b->parg = arg;
}

int brk_restore_retained(struct brk *b, const struct brk_pub *pub)
{
	struct brk_msg *m;
	int rc;

	if (!brk__topic_name_valid(pub->topic))
		return -EINVAL;
	m = brk__msg_new(pub, brk__now(b));
	if (!m)
		return -ENOMEM;
	m->retain = true;
	rc = brk__tree_retain(&b->tree, m);
	brk__msg_unref(m);
	return rc;
}

int brk_restore_session(struct brk *b, const char *client_id, const void *blob, size_t len)
{
	struct gw_slice id = gw_slice_cstr(client_id);
	const struct brk_persist_ops *pops = b->pops;
	struct brk_session *s;
	struct gw_reader r;
	uint32_t expiry, resv;
	uint8_t ver;
	int rc = 0;

	gw_reader_init(&r, blob, len);
	gw_rd_u8(&r, &ver);
	gw_rd_u32be(&r, &expiry);
	gw_rd_u32be(&r, &resv);
	if (r.err || ver != 1 || !id.len)
		return -EINVAL;
	if (brk__session_find(b, id))
		return -EEXIST;
	s = brk__session_new(b, id);
	if (!s)
		return -ENOMEM;
	s->expiry = expiry;
	s->persist = true;
	/* Do not write back what we are reading. */
	b->pops = NULL;
	while (gw_rd_left(&r)) {
		struct gw_slice f;
		uint8_t qos, opts;
		uint32_t sub_id;
		bool existed;

		gw_rd_u8(&r, &qos);
		gw_rd_u8(&r, &opts);
		gw_rd_u32be(&r, &sub_id);
		gw_rd_bin16(&r, &f);
		if (r.err || !brk__filter_ok(f)) {
			rc = -EINVAL;
			break;
		}
		rc = brk__session_subscribe(s, f, qos > 2 ? 2 : qos, opts, sub_id, &existed);
		if (rc)
			break;
	}
	b->pops = pops;
	if (rc) {
		brk__session_free(s);
		return rc;
	}
	brk__session_offline(s, false, brk__now(b));
	return 0;
}

static bool pid_in_flight(const struct brk_session *s, uint16_t pid)
{
	const struct gw_list *pos;

	gw_list_for_each (pos, &s->inflight)
		if (gw_list_entry(pos, struct brk_qmsg, link)->pid == pid)
			return true;
	return false;
}

int brk_restore_session_msg(struct brk *b, const char *client_id, uint64_t seq,
			    const struct brk_pub *pub, uint16_t pid, uint8_t state)
{
	struct brk_session *s = brk__session_find(b, gw_slice_cstr(client_id));
	struct brk_qmsg *q;
	struct brk_msg *m = NULL;

	if (!s)
		return -ENOENT;
	if (!pub->qos || pub->qos > 2 || state > BRK_MSG_RELEASED)
		return -EINVAL;
	if (state != BRK_MSG_QUEUED && (!pid || pid_in_flight(s, pid)))
		return -EINVAL;
	if (state == BRK_MSG_RELEASED && pub->qos != 2)
		return -EINVAL;
	if (state != BRK_MSG_RELEASED) {
		if (!brk__topic_name_valid(pub->topic))
			return -EINVAL;
		m = brk__msg_new(pub, brk__now(b));
		if (!m)
			return -ENOMEM;
	}
	q = brk__qmsg_get(b, 0);
	if (!q) {
		if (m)
			brk__msg_unref(m);
		return -ENOMEM;
	}
	memset(q, 0, sizeof(*q));
	q->m = m;
	q->qos = pub->qos;
	q->retain = pub->retain;
	q->seq = seq;
	q->state = state;
	if (state == BRK_MSG_QUEUED) {
		gw_list_add_tail(&s->queue, &q->link);
		s->n_queued++;
		s->queued_bytes += m->payload_len;
	} else {
		/*
		 * Back in flight with its pid, in seq order, ahead of the queue:
		 * the resume resends it (DUP) or its PUBREL [MQTT-4.4.0-1], and
		 * next_pid skips the pids in flight.
		 */
		q->pid = pid;
		gw_list_add_tail(&s->inflight, &q->link);
		s->n_inflight++;
		s->next_pid = pid;
	}
	if (seq > s->next_seq)
		s->next_seq = seq;
	return 0;
}
