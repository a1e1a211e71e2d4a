/*
 * auth_uv.c - the password checks of auth.c on the libuv thread pool: one
 * uv_work_t per running job (at most BRK_AUTH_MAX_RUNNING at once).
 */
#include <errno.h>

#include <uv.h>

#include "broker/broker_int.h"

struct auth_work {
	uv_work_t req;
	struct brk_auth_job *j;
};

static void on_work(uv_work_t *req)
{
	struct auth_work *w = container_of(req, struct auth_work, req);

	/* A pool thread: the job is ours alone until it is back on the loop. */
	brk__auth_work(w->j);
}

static void on_after_work(uv_work_t *req, int status)
{
	struct auth_work *w = container_of(req, struct auth_work, req);
	struct brk_auth_job *j = w->j;

	(void)status; /* UV_ECANCELED cannot happen: nothing cancels it; the verdict is then false */
	gw_free(w);
	brk__auth_done(j, gw_mono_ms());
}

int brk__auth_uv_start(struct brk *b, struct brk_auth_job *j)
{
	struct auth_work *w;
	int rc;

	if (!b->loop)
		return -EINVAL;
	w = gw_malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->j = j;
	rc = uv_queue_work(b->loop, &w->req, on_work, on_after_work);
	if (rc)
		gw_free(w);
	return rc;
}
