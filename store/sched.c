/*
 * sched.c - when the store commits: the group-commit policy as a pure state
 * machine over an injected clock (no libuv, no SQLite), so that it is tested
 * with fake time.
 *
 * The policy (DESIGN.md section 1): an operation somebody waits on (a
 * publisher's held PUBACK / PUBREC, an MQTT-SN ack, an in-process waiter, a
 * flush) is committed as soon as the writer is idle. While a commit runs, what
 * arrives collects in the next batch, which starts when that commit is done:
 * batches grow with the load because the writer is busy, not because a timer
 * waits. Operations nobody waits on (readings, session and retained updates)
 * wait up to the sync interval, so a quiet gateway writes its flash rarely. A
 * large batch goes at once. While commits fail, retries come one interval
 * apart, whatever waits.
 */
#include <string.h>

#include "store_int.h"

void st__sched_init(struct st__sched *s, uint64_t interval_ms)
{
	memset(s, 0, sizeof(*s));
	s->interval_ms = interval_ms;
}

void st__sched_add(struct st__sched *s, int64_t now, bool waited)
{
	if (!s->n_ops)
		s->oldest = now;
	s->n_ops++;
	if (waited)
		s->n_waited++;
}

void st__sched_start(struct st__sched *s)
{
	s->infl_ops = s->n_ops;
	s->infl_waited = s->n_waited;
	s->n_ops = 0;
	s->n_waited = 0;
	s->committing = true;
}

void st__sched_done(struct st__sched *s, int64_t now, bool ok)
{
	s->committing = false;
	if (ok) {
		s->failing = false;
	} else {
		/* The ops of the failed commit come back in front of the batch. */
		if (s->infl_ops && !s->n_ops)
			s->oldest = now;
		s->n_ops += s->infl_ops;
		s->n_waited += s->infl_waited;
		s->failing = true;
		s->failed_at = now;
	}
	s->infl_ops = 0;
	s->infl_waited = 0;
}

void st__sched_forget(struct st__sched *s, bool waited)
{
	if (s->n_ops)
		s->n_ops--;
	if (waited && s->n_waited)
		s->n_waited--;
}

int64_t st__sched_next(const struct st__sched *s, int64_t now, bool large)
{
	int64_t at;

	if (s->committing || !s->n_ops)
		return -1;
	if (s->failing)
		at = s->failed_at + (int64_t)GW_MAX(s->interval_ms, 1);
	else if (s->n_waited || large)
		at = now;
	else
		at = s->oldest + (int64_t)s->interval_ms;
	return at < now ? now : at;
}
