/*
 * auth.c - password checks of CONNECT, off the loop thread.
 *
 * A CONNECT with a user name, when a password_file is set, becomes a job:
 * the connection waits in BRK_CS_AUTH (not read; what it sent after CONNECT
 * is kept), the job waits for one of BRK_AUTH_MAX_RUNNING slots, the glue
 * runs brk__auth_work on the libuv thread pool, and brk__auth_done, back on
 * the loop, lets conn.c finish the CONNECT. The slots are few so that a
 * flood of CONNECTs with bad passwords occupies at most that many pool
 * threads (SQLite commits use the same pool) and never the loop; past
 * BRK_AUTH_MAX_WAITING jobs, or BRK_AUTH_MAX_BYTES held, a CONNECT is refused
 * at once with "server busy" (counted: auth_busy).
 *
 * A sans-I/O core: no clock (callers pass now), no libuv (b->auth_start is
 * the glue's, or a test's; without one the check runs inline).
 */
#include <errno.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

/* Longest input a waiting connection may send after its CONNECT. */
#define AUTH_MAX_REST (256u * 1024)

void brk_set_passwd(struct brk *b, struct brk_passwd *pw)
{
	/* Jobs hold copies of their entries: nothing else refers to the file. */
	b->cfg.passwd = pw;
}

static void job_free(struct brk_auth_job *j)
{
	if (j->b)
		j->b->auth_bytes -= j->pkt_len + j->rest_len;
	gw_free(j->rest);
	gw_free(j);
}

/* Start waiting jobs while slots are free. */
static void pump(struct brk *b, int64_t now)
{
	while (b->n_auth_run < BRK_AUTH_MAX_RUNNING && !gw_list_empty(&b->auth_wait)) {
		struct brk_auth_job *j = gw_list_first(&b->auth_wait, struct brk_auth_job, link);

		gw_list_del(&j->link);
		b->n_auth_wait--;
		gw_list_add_tail(&b->auth_run, &j->link);
		b->n_auth_run++;
		j->running = true;
		if (b->auth_start && b->auth_start(b, j) == 0)
			continue;
		/* No thread pool (tests), or it refused: check here, now. */
		brk__auth_work(j);
		brk__auth_done(j, now);
	}
}

int brk__auth_begin(struct brk_conn *c, const struct mqtt_pkt *p, const uint8_t *pkt, size_t len,
		    int64_t now)
{
	const struct mqtt_connect *cn = &p->connect;
	struct brk *b = c->b;
	const struct brk_pw_entry *e;
	struct brk_auth_job *j;

	if (b->n_auth_wait >= BRK_AUTH_MAX_WAITING || b->auth_bytes + len > BRK_AUTH_MAX_BYTES) {
		b->st.auth_busy++;
		return -EBUSY;
	}
	j = gw_malloc(sizeof(*j) + len);
	if (!j)
		return -ENOMEM;
	memset(j, 0, sizeof(*j));
	memcpy(j->pkt, pkt, len);
	j->pkt_len = len;
	j->b = b;
	j->c = c;
	e = brk__passwd_find(b->cfg.passwd, cn->username);
	j->known = e && cn->has_password;
	/*
	 * A user that is not in the file (or no password) costs a check like
	 * the file's own, so that the answer's delay does not tell which user
	 * names exist; the verdict is false whatever it computes.
	 */
	if (j->known)
		j->ent = *e;
	else
		brk__passwd_dummy(b->cfg.passwd, &j->ent);
	if (cn->has_password && cn->password.p >= pkt &&
	    cn->password.p + cn->password.len <= pkt + len) {
		j->pw = j->pkt + (cn->password.p - pkt);
		j->pw_len = cn->password.len;
	}
	b->auth_bytes += len;
	c->auth = j;
	c->state = BRK_CS_AUTH;
	/* Not read until the verdict: a client cannot pile up input meanwhile. */
	if (c->ops && c->ops->pause)
		c->ops->pause(c, true);
	gw_list_add_tail(&b->auth_wait, &j->link);
	b->n_auth_wait++;
	pump(b, now);
	return 0;
}

int brk__auth_hold_input(struct brk_conn *c, const uint8_t *data, size_t len)
{
	struct brk_auth_job *j = c->auth;
	uint8_t *r;

	if (!j)
		return -EINVAL;
	if (j->rest_len + len > AUTH_MAX_REST || c->b->auth_bytes + len > BRK_AUTH_MAX_BYTES)
		return -EMSGSIZE;
	r = gw_realloc(j->rest, j->rest_len + len);
	if (!r)
		return -ENOMEM;
	memcpy(r + j->rest_len, data, len);
	j->rest = r;
	j->rest_len += len;
	c->b->auth_bytes += len;
	return 0;
}

void brk__auth_work(struct brk_auth_job *j)
{
	static const uint8_t none[1];
	bool ok;

	if (j->ent.kind == BRK_PW_NONE) {
		j->ok = j->known; /* brk_check_password without a password_file */
		return;
	}
	ok = brk__passwd_verify(&j->ent, j->pw ? j->pw : none, j->pw_len);
	j->ok = ok && j->known;
}

void brk__auth_done(struct brk_auth_job *j, int64_t now)
{
	struct brk *b = j->b;
	struct brk_conn *c = j->c;

	if (!b) {
		/* The broker is gone (brk__auth_fini detached us). */
		job_free(j);
		return;
	}
	gw_list_del(&j->link);
	b->n_auth_run--;
	if (j->done) {
		if (!j->ok)
			b->st.auth_failed++;
		j->done(j->done_arg, j->ok);
	} else if (c) {
		c->auth = NULL;
		if (!j->ok)
			b->st.auth_failed++;
		brk__conn_connect_verdict(c, j->pkt, j->pkt_len, j->ok, now);
		if (j->rest_len && c->state == BRK_CS_CONNECTED)
			brk__conn_input_held(c, j->rest, j->rest_len, now);
	}
	job_free(j);
	pump(b, now);
}

void brk__auth_conn_closed(struct brk_conn *c)
{
	struct brk_auth_job *j = c->auth;

	if (!j)
		return;
	c->auth = NULL;
	j->c = NULL;
	if (j->running)
		return; /* freed by brk__auth_done when the worker is back */
	gw_list_del(&j->link);
	c->b->n_auth_wait--;
	job_free(j);
}

void brk__auth_fini(struct brk *b)
{
	while (b->auth_wait.next && !gw_list_empty(&b->auth_wait)) {
		struct brk_auth_job *j = gw_list_first(&b->auth_wait, struct brk_auth_job, link);

		gw_list_del(&j->link);
		if (j->c)
			j->c->auth = NULL;
		job_free(j);
	}
	b->n_auth_wait = 0;
	while (b->auth_run.next && !gw_list_empty(&b->auth_run)) {
		struct brk_auth_job *j = gw_list_first(&b->auth_run, struct brk_auth_job, link);

		gw_list_del(&j->link);
		if (j->c)
			j->c->auth = NULL;
		j->c = NULL;
		j->b = NULL;
	}
	b->n_auth_run = 0;
}

/* A check for an in-process front end: no connection, a callback (see broker.h). */
static void no_file_tick(struct brk_auth_job *j, int64_t now)
{
	/* Without a password_file the name is taken as given; answered from the pool path too. */
	j->ok = true;
	brk__auth_done(j, now);
}

int brk_check_password(struct brk *b, const char *user, const void *password, size_t pw_len,
		       void (*done)(void *arg, int verdict), void *arg, struct brk_auth_job **job)
{
	const struct brk_pw_entry *e = NULL;
	struct brk_auth_job *j;

	*job = NULL;
	if (b->n_auth_wait >= BRK_AUTH_MAX_WAITING || b->auth_bytes + pw_len > BRK_AUTH_MAX_BYTES) {
		b->st.auth_busy++;
		return -EBUSY;
	}
	j = gw_malloc(sizeof(*j) + pw_len);
	if (!j)
		return -ENOMEM;
	memset(j, 0, sizeof(*j));
	if (pw_len) /* memcpy from NULL is undefined even for 0 bytes */
		memcpy(j->pkt, password, pw_len);
	j->pkt_len = pw_len;
	j->pw = j->pkt;
	j->pw_len = pw_len;
	j->b = b;
	j->done = done;
	j->done_arg = arg;
	if (b->cfg.passwd)
		e = brk__passwd_find(b->cfg.passwd, gw_slice_cstr(user));
	j->known = e != NULL;
	if (e)
		j->ent = *e;
	else
		brk__passwd_dummy(b->cfg.passwd, &j->ent);
	b->auth_bytes += pw_len;
	gw_list_add_tail(&b->auth_wait, &j->link);
	b->n_auth_wait++;
	*job = j;
	if (!b->cfg.passwd) {
		/* Nothing to hash: still answered later, through the same path. */
		gw_list_del(&j->link);
		b->n_auth_wait--;
		gw_list_add_tail(&b->auth_run, &j->link);
		b->n_auth_run++;
		j->running = true;
		j->ent.kind = BRK_PW_NONE;
		j->known = true;
		j->pw = NULL;
		if (!b->auth_start || b->auth_start(b, j))
			no_file_tick(j, brk__now(b));
		return 0;
	}
	/* Started from the next pump, so that @done never runs inside this call. */
	if (b->auth_start)
		pump(b, brk__now(b));
	return 0;
}

void brk_check_cancel(struct brk_auth_job *j)
{
	struct brk *b = j->b;

	j->done = NULL;
	if (j->running || !b)
		return; /* freed by brk__auth_done when the worker is back */
	gw_list_del(&j->link);
	b->n_auth_wait--;
	job_free(j);
}
