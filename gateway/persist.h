/*
 * persist.h - connects the broker's persistence hooks to the store, so that
 * retained messages and persistent sessions survive a restart, and encodes
 * message properties into the store's opaque blobs.
 */
#ifndef FIELDMQ_PERSIST_H
#define FIELDMQ_PERSIST_H

#include "broker/broker.h"
#include "gateway/base/base.h"
#include "store/store.h"

/*
 * gw_props_encode - @p as a blob: entries of [u8 id][u16 length][bytes]. A
 * message expiry is saved with @now_ms (wall clock), so the time fieldmq is
 * stopped counts against it. Returns 0 or -EMSGSIZE (w->err). An all-empty
 * @p (or NULL) writes nothing.
 */
int gw_props_encode(const struct brk_msg_props *p, int64_t now_ms, struct gw_writer *w);

/*
 * gw_props_decode - the reverse; slices point into @blob, *saved_at_ms is the
 * @now_ms given to the encoder with an expiry (0 if none). Unknown ids are
 * skipped (a newer build may add some). Returns 0 or -EBADMSG.
 */
int gw_props_decode(struct gw_slice blob, struct brk_msg_props *p, int64_t *saved_at_ms);

/*
 * gw_flight_encode - append to a session message's props blob (after
 * gw_props_encode) where it stands with its client: an entry [u8 state][u16
 * pid] for BRK_MSG_PUBLISHED and BRK_MSG_RELEASED, nothing for
 * BRK_MSG_QUEUED, so records of older builds read as queued and older
 * builds skip the entry. Returns 0 or -EMSGSIZE (w->err).
 */
int gw_flight_encode(uint16_t pid, uint8_t state, struct gw_writer *w);

/*
 * gw_flight_decode - the pid and state gw_flight_encode() left in @blob, or
 * 0 and BRK_MSG_QUEUED when there are none. Returns 0 or -EBADMSG (a broken
 * blob, an unknown state, pid 0).
 */
int gw_flight_decode(struct gw_slice blob, uint16_t *pid, uint8_t *state);

struct gw_persist;

/*
 * gw_persist_attach - install hooks on @b that write through to @st. Returns
 * the hooks' context (NULL when out of memory, logged); gw_persist_detach()
 * removes the hooks and frees it, before the store closes.
 */
struct gw_persist *gw_persist_attach(struct brk *b, struct st_store *st,
				     const struct gw_logger *log);
void gw_persist_detach(struct brk *b, struct gw_persist *ps);

/*
 * gw_persist_restore - loads retained messages and sessions from @st into
 * @b. Call before brk_start(). Returns 0 or -errno (a load error, logged;
 * what loaded stays loaded).
 */
int gw_persist_restore(struct brk *b, struct st_store *st, const struct gw_logger *log);

#endif
