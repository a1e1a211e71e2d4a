/*
 * uplink_forward.c - the uplink core's forward path: a local message that
 * matched a forward filter gets its remote topic and its props blob, then
 * goes to the store (appended before it is sent) or stays in memory, by
 * [uplink] queue and QoS; QoS 0 goes at once while connected (map of the
 * core: uplink_int.h).
 *
 * The end-to-end promise: a local publisher's hold is given back only when
 * the store has committed its message (gw_upl_on_appended), or at once when
 * the message is not stored.
 */
#include <errno.h>
#include <string.h>

#include "gateway/persist.h"
#include "gateway/uplink_int.h"

static bool starts_with(struct gw_slice s, const char *prefix, size_t plen)
{
	return plen && s.len >= plen && !memcmp(s.p, prefix, plen);
}

/*
 * @in with @strip removed from its front (when it starts with it) and @add
 * put in front, into @buf. Returns the length, or -EMSGSIZE over 65535 bytes.
 */
int gw_upl__map_topic(struct gw_slice in, const char *strip, const char *add, uint8_t *buf,
		      size_t cap)
{
	size_t sl = strlen(strip), al = strlen(add);

	if (starts_with(in, strip, sl)) {
		in.p += sl;
		in.len -= sl;
	}
	if (al + in.len > cap || al + in.len > 0xffff)
		return -EMSGSIZE;
	memcpy(buf, add, al);
	memcpy(buf + al, in.p, in.len);
	return (int)(al + in.len);
}

/* ------------------------------------------------------- props blobs */

/*
 * The store's props blob (persist.c's format) of @p; an expiring message
 * carries the wall-clock time @wall it was queued, so time spent in the queue
 * (fieldmq stopped included) counts against its expiry. Into @buf (@cap), or
 * a gw_malloc'ed *heap when larger. Returns the length or -ENOMEM / -EMSGSIZE.
 */
static int build_blob(const struct gw_upl *u, const struct brk_msg_props *p, uint8_t *buf,
		      size_t cap, uint8_t **heap, int64_t wall)
{
	struct gw_writer w;
	int pass;

	*heap = NULL;
	(void)u;
	for (pass = 0; pass < 2; pass++) {
		gw_writer_init(&w, buf, cap);
		gw_props_encode(p, wall, &w);
		if (!w.err)
			return (int)w.len;
		if (pass || w.err != -EMSGSIZE || w.len > 0x7fffffff)
			return w.err;
		*heap = gw_malloc(w.len);
		if (!*heap)
			return -ENOMEM;
		buf = *heap;
		cap = w.len;
	}
	return -EMSGSIZE;
}

/* ------------------------------------------------------- local messages */

void gw_upl__release(struct gw_upl *u, void *hold)
{
	if (hold && u->ops->hold_release)
		u->ops->hold_release(u->arg, hold);
}

static void note_drop(struct gw_upl *u, const char *why)
{
	u->st.dropped++;
	if (!u->logged_drop) {
		gw_log(u->log, LOG_WARNING, MOD, "dropping messages to the cloud: %s", why);
		u->logged_drop = true;
	}
}

/* Append to the store; when @keep, the message stays in memory to be sent from there. */
static void store_append(struct gw_upl *u, const struct st_record *rec, void *hold, bool keep)
{
	struct upl_pend *pd = gw_calloc(1, sizeof(*pd));
	struct upl_msg *m = NULL;
	uint64_t id = 0;
	int rc;

	if (!pd) {
		note_drop(u, "out of memory");
		gw_upl__release(u, hold);
		return;
	}
	rc = u->ops->q_append(u->arg, rec, hold != NULL, &id);
	if (rc) {
		/* -ENOBUFS: refused by drop_newest, counted by the store. */
		if (rc != -ENOBUFS)
			note_drop(u, strerror(-rc));
		gw_free(pd);
		gw_upl__release(u, hold);
		return;
	}
	pd->id = id;
	pd->hold = hold;
	gw_list_add_tail(&u->pend, &pd->link);
	if (id > u->last_append_id)
		u->last_append_id = id;
	if (keep) {
		m = gw_upl__msg_new(rec->topic, rec->payload, rec->props, rec->qos, rec->retain,
				    id);
		if (m) {
			m->pend = pd;
			pd->m = m;
			gw_upl__queue_new(u, m);
			return;
		}
	}
	/*
	 * Not kept: the store has it and the backlog reads it back (the read is
	 * not through before it has committed). A live period ends with it.
	 */
	pd->store_only = true;
	u->n_pend_store++;
	u->hot[gw_upl__topic_bucket(rec->topic.p, rec->topic.len)]++;
	gw_upl__live_off(u);
	gw_upl__region_mark(u, id);
	gw_upl__enter_backlog(u);
	if (u->peek_after >= id)
		gw_upl__set_peek_after(u, id - 1);
}

void gw_upl_on_local(struct gw_upl *u, const struct brk_delivery *d, void *hold, int64_t now)
{
	uint8_t topic[0x10000], pbuf[1024], *heap = NULL;
	struct st_record rec;
	int tl, pl;
	bool up = u->state == UPL_UP, store;

	if (u->state == UPL_STOPPED || u->state == UPL_IDLE ||
	    gw_slice_eq_cstr(d->topic, u->status_topic)) {
		gw_upl__release(u, hold);
		return;
	}
	tl = gw_upl__map_topic(d->topic, u->local_prefix, u->remote_prefix, topic, sizeof(topic));
	pl = tl < 0 ? tl
		    : build_blob(u, d->props, pbuf, sizeof(pbuf), &heap,
				 d->props && d->props->has_expiry ? gw_upl__wall_ms(u) : 0);
	if (tl < 0 || pl < 0) {
		note_drop(u, "topic or properties too long");
		gw_upl__release(u, hold);
		gw_free(heap);
		return;
	}
	rec.topic = (struct gw_slice){ topic, (size_t)tl };
	rec.payload = d->payload;
	rec.props = (struct gw_slice){ heap ? heap : pbuf, (size_t)pl };
	rec.qos = d->qos;
	rec.retain = d->retain;

	if (d->qos == 0) {
		if (up) {
			struct upl_msg *m;
			size_t bl = u->ops->backlog ? u->ops->backlog(u->arg) : 0;

			if (bl > UPL_QOS0_MAX_BACKLOG) {
				note_drop(u, "the link is congested (QoS 0)");
			} else {
				m = gw_upl__msg_new(rec.topic, rec.payload, rec.props, 0,
						    rec.retain, 0);
				if (!m) {
					note_drop(u, "out of memory");
				} else if (u->live_on &&
					   (u->hot[m->bucket] || u->n_held[m->bucket])) {
					/* Its topic has older messages in the backlog: after them. */
					if (u->n_mem >= UPL_MEM_MAX_MSGS ||
					    u->mem_bytes > UPL_MEM_MAX_BYTES) {
						note_drop(u, "memory queue full");
						gw_free(m);
					} else {
						gw_upl__q_add(u, m, Q_HELD, false);
					}
				} else {
					/* QoS 0 goes now: at the head, it takes no window. */
					gw_upl__q_add(u, m, Q_LIVE, true);
					if (gw_upl__send_msg(u, m, false, now) < 0)
						gw_upl__drop_link(u, now, "cannot send");
				}
			}
		} else if (!up && u->has_store && u->queue_qos0 && u->qmode != GW_UPQ_OFF) {
			store_append(u, &rec, NULL, false);
		} else if (!up) {
			u->st.dropped++;
		}
		gw_upl__release(u, hold);
		gw_free(heap);
		return;
	}

	switch (u->qmode) {
	case GW_UPQ_ALWAYS:
		store = u->has_store;
		break;
	case GW_UPQ_OFFLINE:
		store = u->has_store && (!up || u->backlog || u->n_queue > u->n_mem);
		break;
	default:
		store = false;
		break;
	}
	if (store) {
		store_append(u, &rec, hold, up);
	} else if (!up && u->qmode == GW_UPQ_OFF) {
		note_drop(u, "disconnected and queue = off");
		gw_upl__release(u, hold);
	} else if (u->n_mem >= UPL_MEM_MAX_MSGS || u->mem_bytes > UPL_MEM_MAX_BYTES) {
		note_drop(u, "memory queue full");
		gw_upl__release(u, hold);
	} else {
		struct upl_msg *m =
			gw_upl__msg_new(rec.topic, rec.payload, rec.props, rec.qos, rec.retain, 0);

		if (m)
			gw_upl__queue_new(u, m);
		else
			note_drop(u, "out of memory");
		gw_upl__release(u, hold);
	}
	gw_free(heap);
	if (up) {
		/* Spill: what waits goes to the store and becomes backlog. */
		if (u->n_queue > UPL_MEM_MAX_MSGS || u->mem_bytes > UPL_MEM_MAX_BYTES)
			gw_upl__evict(u);
		gw_upl__pump(u, now);
	}
}
