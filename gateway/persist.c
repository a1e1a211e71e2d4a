/*
 * persist.c - broker persistence hooks on top of the store.
 *
 * The hooks run on the loop thread and only join the store's pending batch:
 * nothing here waits on the disk.
 */
#include <errno.h>
#include <string.h>

#include "gateway/persist.h"

#define MOD "persist"

enum {
	P_PAYLOAD_FORMAT = 1,
	P_EXPIRY = 2,
	P_CONTENT_TYPE = 3,
	P_RESPONSE_TOPIC = 4,
	P_CORRELATION = 5,
	P_USER = 6,
	P_SAVED_AT = 7, /* wall-clock ms when an expiring message was saved */
	P_FLIGHT = 8,	/* a session message's [u8 state][u16be pid], when not queued */
};

static void put_entry(struct gw_writer *w, uint8_t id, const void *p, size_t len)
{
	if (len > 0xffff) {
		w->err = -EMSGSIZE;
		return;
	}
	gw_wr_u8(w, id);
	gw_wr_bin16(w, p, len);
}

int gw_props_encode(const struct brk_msg_props *p, int64_t now_ms, struct gw_writer *w)
{
	uint8_t be[8];
	int i;

	if (!p)
		return 0;
	if (p->has_payload_format)
		put_entry(w, P_PAYLOAD_FORMAT, &p->payload_format, 1);
	if (p->has_expiry) {
		be[0] = (uint8_t)(p->expiry >> 24);
		be[1] = (uint8_t)(p->expiry >> 16);
		be[2] = (uint8_t)(p->expiry >> 8);
		be[3] = (uint8_t)p->expiry;
		put_entry(w, P_EXPIRY, be, 4);
		for (i = 0; i < 8; i++)
			be[i] = (uint8_t)((uint64_t)now_ms >> (56 - 8 * i));
		put_entry(w, P_SAVED_AT, be, 8);
	}
	if (p->content_type.len)
		put_entry(w, P_CONTENT_TYPE, p->content_type.p, p->content_type.len);
	if (p->response_topic.len)
		put_entry(w, P_RESPONSE_TOPIC, p->response_topic.p, p->response_topic.len);
	if (p->correlation_data.len)
		put_entry(w, P_CORRELATION, p->correlation_data.p, p->correlation_data.len);
	if (p->user_props.len)
		put_entry(w, P_USER, p->user_props.p, p->user_props.len);
	return w->err;
}

int gw_props_decode(struct gw_slice blob, struct brk_msg_props *p, int64_t *saved_at_ms)
{
	struct gw_reader r;
	int i;

	memset(p, 0, sizeof(*p));
	*saved_at_ms = 0;
	gw_reader_init(&r, blob.p, blob.len);
	while (gw_rd_left(&r)) {
		struct gw_slice v;
		uint8_t id;

		if (gw_rd_u8(&r, &id) || gw_rd_bin16(&r, &v))
			return -EBADMSG;
		switch (id) {
		case P_PAYLOAD_FORMAT:
			if (v.len != 1)
				return -EBADMSG;
			p->has_payload_format = true;
			p->payload_format = v.p[0];
			break;
		case P_EXPIRY:
			if (v.len != 4)
				return -EBADMSG;
			p->has_expiry = true;
			p->expiry = (uint32_t)v.p[0] << 24 | (uint32_t)v.p[1] << 16 |
				    (uint32_t)v.p[2] << 8 | v.p[3];
			break;
		case P_CONTENT_TYPE:
			p->content_type = v;
			break;
		case P_RESPONSE_TOPIC:
			p->response_topic = v;
			break;
		case P_CORRELATION:
			p->correlation_data = v;
			break;
		case P_USER:
			p->user_props = v;
			break;
		case P_SAVED_AT:
			if (v.len != 8)
				return -EBADMSG;
			for (i = 0; i < 8; i++)
				*saved_at_ms = (int64_t)((uint64_t)*saved_at_ms << 8 | v.p[i]);
			break;
		default:
			break;
		}
	}
	return 0;
}

int gw_flight_encode(uint16_t pid, uint8_t state, struct gw_writer *w)
{
	uint8_t v[3] = { state, (uint8_t)(pid >> 8), (uint8_t)pid };

	if (state != BRK_MSG_QUEUED)
		put_entry(w, P_FLIGHT, v, sizeof(v));
	return w->err;
}

int gw_flight_decode(struct gw_slice blob, uint16_t *pid, uint8_t *state)
{
	struct gw_reader r;

	*pid = 0;
	*state = BRK_MSG_QUEUED;
	gw_reader_init(&r, blob.p, blob.len);
	while (gw_rd_left(&r)) {
		struct gw_slice v;
		uint8_t id;

		if (gw_rd_u8(&r, &id) || gw_rd_bin16(&r, &v))
			return -EBADMSG;
		if (id != P_FLIGHT)
			continue;
		if (v.len != 3 || v.p[0] == BRK_MSG_QUEUED || v.p[0] > BRK_MSG_RELEASED ||
		    !(v.p[1] | v.p[2]))
			return -EBADMSG;
		*state = v.p[0];
		*pid = (uint16_t)(v.p[1] << 8 | v.p[2]);
	}
	return 0;
}

struct gw_persist {
	struct st_store *st;
	const struct gw_logger *log;
	bool failed_logged;
};

static void note(struct gw_persist *ps, int rc, const char *what)
{
	if (rc && !ps->failed_logged) {
		gw_log(ps->log, LOG_ERR, MOD, "%s: cannot queue a write to the store: %s", what,
		       strerror(-rc));
		ps->failed_logged = true;
	}
}

/* A brk_pub as a store record; @buf holds the props blob. */
static int to_record(const struct brk_pub *pub, uint8_t *buf, size_t cap, struct st_record *rec)
{
	struct gw_writer w;

	gw_writer_init(&w, buf, cap);
	if (gw_props_encode(pub->props, gw_now_ms(), &w))
		return -EMSGSIZE;
	rec->topic = pub->topic;
	rec->payload = pub->payload;
	rec->props.p = buf;
	rec->props.len = w.len;
	rec->qos = pub->qos;
	rec->retain = pub->retain;
	return 0;
}

static void on_retained_set(void *arg, const struct brk_pub *pub)
{
	struct gw_persist *ps = arg;
	uint8_t buf[4096];
	struct st_record rec;

	if (!pub->payload.len) {
		note(ps, st_retained_del(ps->st, pub->topic), "retained");
		return;
	}
	if (to_record(pub, buf, sizeof(buf), &rec)) {
		note(ps, -EMSGSIZE, "retained");
		return;
	}
	note(ps, st_retained_put(ps->st, &rec), "retained");
}

static void on_session_save(void *arg, const char *client_id, const void *blob, size_t len)
{
	struct gw_persist *ps = arg;

	note(ps, st_session_put(ps->st, client_id, blob, len), "session");
}

static void on_session_delete(void *arg, const char *client_id)
{
	struct gw_persist *ps = arg;

	note(ps, st_session_del(ps->st, client_id), "session");
}

static void on_session_msg_add(void *arg, const char *client_id, uint64_t seq,
			       const struct brk_pub *pub, uint16_t pid, uint8_t state)
{
	struct gw_persist *ps = arg;
	uint8_t buf[4096];
	struct st_record rec;
	struct gw_writer w;

	/* The pid and state ride in the props blob: older builds skip the entry. */
	if (to_record(pub, buf, sizeof(buf) - 6, &rec)) {
		note(ps, -EMSGSIZE, "session message");
		return;
	}
	gw_writer_init(&w, buf + rec.props.len, sizeof(buf) - rec.props.len);
	if (gw_flight_encode(pid, state, &w)) {
		note(ps, -EMSGSIZE, "session message");
		return;
	}
	rec.props.len += w.len;
	note(ps, st_session_msg_add(ps->st, client_id, seq, &rec), "session message");
}

static void on_session_msg_del(void *arg, const char *client_id, uint64_t seq)
{
	struct gw_persist *ps = arg;

	note(ps, st_session_msg_del(ps->st, client_id, seq), "session message");
}

static const struct brk_persist_ops persist_ops = {
	.retained_set = on_retained_set,
	.session_save = on_session_save,
	.session_delete = on_session_delete,
	.session_msg_add = on_session_msg_add,
	.session_msg_del = on_session_msg_del,
};

static struct gw_persist *persist_new(struct st_store *st, const struct gw_logger *log)
{
	struct gw_persist *ps = gw_calloc(1, sizeof(*ps));

	if (ps) {
		ps->st = st;
		ps->log = log;
	}
	return ps;
}

struct gw_persist *gw_persist_attach(struct brk *b, struct st_store *st,
				     const struct gw_logger *log)
{
	struct gw_persist *ps = persist_new(st, log);

	if (!ps) {
		gw_log(log, LOG_ERR, MOD,
		       "out of memory: retained messages and sessions are not persisted");
		return NULL;
	}
	brk_set_persist(b, &persist_ops, ps);
	return ps;
}

void gw_persist_detach(struct brk *b, struct gw_persist *ps)
{
	if (b)
		brk_set_persist(b, NULL, NULL);
	gw_free(ps);
}

struct restore_ctx {
	struct brk *b;
	int64_t now_ms;
	unsigned int retained, sessions, msgs, expired, errors;
};

/*
 * A stored message as a brk_pub. The time fieldmq was down counts against a
 * message expiry: -ETIME when it ran out meanwhile (the message is dropped).
 */
static int from_record(const struct restore_ctx *c, const struct st_record *rec,
		       struct brk_msg_props *props, struct brk_pub *pub)
{
	int64_t saved_at;

	if (gw_props_decode(rec->props, props, &saved_at))
		return -EBADMSG;
	if (props->has_expiry && saved_at && c->now_ms > saved_at) {
		int64_t gone = (c->now_ms - saved_at) / 1000;

		if (gone >= (int64_t)props->expiry)
			return -ETIME;
		props->expiry -= (uint32_t)gone;
	}
	pub->topic = rec->topic;
	pub->payload = rec->payload;
	pub->qos = rec->qos;
	pub->retain = rec->retain;
	pub->props = props;
	return 0;
}

static int on_load_retained(void *arg, const struct st_record *rec)
{
	struct restore_ctx *c = arg;
	struct brk_msg_props props;
	struct brk_pub pub;

	int rc = from_record(c, rec, &props, &pub);

	if (rc == -ETIME)
		c->expired++;
	else if (rc || brk_restore_retained(c->b, &pub))
		c->errors++;
	else
		c->retained++;
	return 0;
}

static int on_load_session(void *arg, const char *client_id, const void *blob, size_t len)
{
	struct restore_ctx *c = arg;

	if (brk_restore_session(c->b, client_id, blob, len))
		c->errors++;
	else
		c->sessions++;
	return 0;
}

static int on_load_session_msg(void *arg, const char *client_id, uint64_t seq,
			       const struct st_record *rec)
{
	struct restore_ctx *c = arg;
	struct brk_msg_props props;
	struct brk_pub pub;
	uint16_t pid;
	uint8_t state;

	int rc = from_record(c, rec, &props, &pub);

	if (!rc)
		rc = gw_flight_decode(rec->props, &pid, &state);
	if (rc == -ETIME)
		c->expired++;
	else if (rc || brk_restore_session_msg(c->b, client_id, seq, &pub, pid, state))
		c->errors++;
	else
		c->msgs++;
	return 0;
}

int gw_persist_restore(struct brk *b, struct st_store *st, const struct gw_logger *log)
{
	struct restore_ctx c = { .b = b, .now_ms = gw_now_ms() };
	int rc;

	rc = st_retained_load(st, on_load_retained, &c);
	if (!rc)
		rc = st_sessions_load(st, on_load_session, on_load_session_msg, &c);
	if (rc)
		gw_log(log, LOG_ERR, MOD, "cannot load persisted state: %s", strerror(-rc));
	gw_log(log, c.errors ? LOG_WARNING : LOG_INFO, MOD,
	       "restored %u retained messages, %u sessions, %u queued session messages%s",
	       c.retained, c.sessions, c.msgs,
	       c.errors ? " (some records were unreadable and skipped)" : "");
	return rc;
}
