/*
 * test_auth.c - CONNECT with a password_file, on the sans-I/O machine with a
 * fake transport and a fake thread pool: the connection waits in
 * BRK_CS_AUTH (not read, later input kept), the verdict gives CONNACK 0 or
 * 0x86 (5.0) / 5 (3.1.1), few checks run at once, too many waiting are
 * refused as busy, a connection closed while waiting leaves nothing behind,
 * and a certificate identity needs no password.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

#define S(x) gw_slice_cstr(x)

/* alice / secret, made by mosquitto_passwd -b f alice secret. */
static const char pwfile[] =
	"alice:$7$101$HRsTWWcik70Ldknk$sO1jgwmoG5QrwhBlP5chn4WqR+KwvHx7qy5bp660bnTybVzoV4CvokZE6b+"
	"yKCOO5mRQVdGdS2yMFIZXyzrj/A==\n";

struct fconn {
	struct brk_conn c;
	bool closed, paused;
	const char *identity;
	uint8_t out[4096];
	size_t out_len, out_off;
};

static void f_want_flush(struct brk_conn *c)
{
	c->dirty = false;
}

static void f_close(struct brk_conn *c)
{
	container_of(c, struct fconn, c)->closed = true;
}

static void f_pause(struct brk_conn *c, bool on)
{
	container_of(c, struct fconn, c)->paused = on;
}

static const char *f_identity(struct brk_conn *c)
{
	return container_of(c, struct fconn, c)->identity;
}

static const struct brk_conn_ops fops = {
	.want_flush = f_want_flush, .close = f_close, .pause = f_pause, .identity = f_identity
};

#define MAX_JOBS 512

struct env {
	struct brk b;
	struct brk_passwd *pw;
	int64_t now;
	/* The fake pool: jobs started and not yet finished, in order. */
	struct brk_auth_job *jobs[MAX_JOBS];
	unsigned int n_jobs, started;
};

static struct env *the_env;

static int64_t fake_ms(void *arg)
{
	return *(int64_t *)arg;
}

static int fake_start(struct brk *b, struct brk_auth_job *j)
{
	(void)b;
	assert_true(the_env->n_jobs < MAX_JOBS);
	the_env->jobs[the_env->n_jobs++] = j;
	the_env->started++;
	return 0;
}

/* The pool finishes its oldest job. */
static void finish_one(struct env *e)
{
	struct brk_auth_job *j;

	assert_true(e->n_jobs > 0);
	j = e->jobs[0];
	memmove(e->jobs, e->jobs + 1, --e->n_jobs * sizeof(e->jobs[0]));
	brk__auth_work(j);
	brk__auth_done(j, e->now);
}

static int setup(void **state)
{
	struct env *e = gw_calloc(1, sizeof(*e));
	struct brk_config cfg;
	unsigned int line;
	char err[64];

	assert_int_equal(
		brk_passwd_parse(pwfile, sizeof(pwfile) - 1, &e->pw, &line, err, sizeof(err)), 0);
	brk_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.allow_anonymous = false;
	cfg.passwd = e->pw;
	e->now = 1000;
	assert_int_equal(
		brk__init(&e->b, NULL, &cfg, NULL, &(const struct brk_clock){ fake_ms, &e->now }),
		0);
	e->b.auth_start = fake_start;
	the_env = e;
	*state = e;
	return 0;
}

static struct fconn *fc_new(struct env *e)
{
	struct fconn *f = gw_calloc(1, sizeof(*f));

	brk__conn_init(&f->c, &e->b, &fops);
	f->c.last_rx = e->now;
	return f;
}

static void fc_free(struct fconn *f)
{
	brk__conn_closed(&f->c);
	gw_free(f);
}

static int teardown(void **state)
{
	struct env *e = *state;

	while (e->n_jobs)
		finish_one(e);
	brk__fini(&e->b);
	brk_passwd_free(e->pw);
	gw_free(e);
	assert_int_equal(gw_mem_used(), 0);
	return 0;
}

static size_t encode(uint8_t *buf, size_t n, uint8_t version, const struct mqtt_pkt *p)
{
	struct gw_writer w;

	gw_writer_init(&w, buf, n);
	assert_int_equal(mqtt_encode(&w, version, p), 0);
	return w.len;
}

static size_t connect_bytes(uint8_t *buf, size_t n, uint8_t version, const char *id,
			    const char *user, const char *pass)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.connect.clean_start = true;
	p.connect.keep_alive = 60;
	p.connect.client_id = S(id);
	if (user) {
		p.connect.has_username = true;
		p.connect.username = S(user);
	}
	if (pass) {
		p.connect.has_password = true;
		p.connect.password = S(pass);
	}
	return encode(buf, n, version, &p);
}

static size_t pingreq_bytes(uint8_t *buf, size_t n, uint8_t version)
{
	struct mqtt_pkt p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_PINGREQ;
	return encode(buf, n, version, &p);
}

static void drain(struct fconn *f)
{
	struct brk_obuf *o;
	unsigned int i;

	assert_int_equal(brk__conn_unstage(&f->c, 0), 0);
	o = f->c.out;
	if (!o)
		return;
	for (i = 0; i < o->n; i++) {
		const uint8_t *p = o->segs[i].m ? brk__msg_payload(o->segs[i].m) : o->buf;

		memcpy(f->out + f->out_len, p + o->segs[i].off, o->segs[i].len);
		f->out_len += o->segs[i].len;
	}
	brk__obuf_reset(o);
}

static bool next_pkt(struct fconn *f, struct mqtt_pkt *p)
{
	int rc;

	drain(f);
	if (f->out_off == f->out_len)
		return false;
	rc = mqtt_decode(f->out + f->out_off, f->out_len - f->out_off, f->c.proto, NULL, p);
	assert_true(rc > 0);
	f->out_off += (size_t)rc;
	return true;
}

static struct fconn *try_connect(struct env *e, uint8_t version, const char *id, const char *user,
				 const char *pass)
{
	struct fconn *f = fc_new(e);
	uint8_t buf[256];
	size_t n = connect_bytes(buf, sizeof(buf), version, id, user, pass);

	brk__conn_input(&f->c, buf, n, e->now);
	return f;
}

static void expect_connack(struct fconn *f, uint8_t rc)
{
	struct mqtt_pkt a;

	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_CONNACK);
	assert_int_equal(a.connack.reason_code, rc);
}

/* The right password: no CONNACK until the pool is done; what came after CONNECT is then handled. */
static void test_right_password_waits_for_the_pool(void **state)
{
	struct env *e = *state;
	struct fconn *f = fc_new(e);
	uint8_t buf[512];
	size_t n = connect_bytes(buf, sizeof(buf), MQTT_V311, "c1", "alice", "secret");
	struct mqtt_pkt a;

	/* CONNECT and a PINGREQ in one read. */
	n += pingreq_bytes(buf + n, sizeof(buf) - n, MQTT_V311);
	brk__conn_input(&f->c, buf, n, e->now);
	assert_int_equal(f->c.state, BRK_CS_AUTH);
	assert_true(f->paused);
	assert_false(next_pkt(f, &a));
	/* A TLS record decoded later may still bring input: held too. */
	n = pingreq_bytes(buf, sizeof(buf), MQTT_V311);
	brk__conn_input(&f->c, buf, n, e->now);
	assert_false(next_pkt(f, &a));
	assert_int_equal(e->n_jobs, 1);
	finish_one(e);
	assert_false(f->paused);
	expect_connack(f, 0);
	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_PINGRESP);
	assert_true(next_pkt(f, &a));
	assert_int_equal(a.type, MQTT_PINGRESP);
	assert_int_equal(f->c.state, BRK_CS_CONNECTED);
	assert_int_equal(e->b.auth_bytes, 0);
	fc_free(f);
}

/* Wrong password, unknown user, no password: 5 in 3.1.1 and 0x86 in 5.0, as Mosquitto. */
static void test_wrong_password(void **state)
{
	struct env *e = *state;
	struct fconn *f[4];
	struct brk_stats st;
	unsigned int i;

	f[0] = try_connect(e, MQTT_V311, "c1", "alice", "Secret");
	f[1] = try_connect(e, MQTT_V5, "c2", "alice", "secret!");
	f[2] = try_connect(e, MQTT_V5, "c3", "mallory", "secret");
	f[3] = try_connect(e, MQTT_V311, "c4", "alice", NULL);
	while (e->n_jobs)
		finish_one(e);
	expect_connack(f[0], MQTT_CONNACK_NOT_AUTHORIZED);
	expect_connack(f[1], MQTT_RC_BAD_USER_OR_PASSWORD);
	expect_connack(f[2], MQTT_RC_BAD_USER_OR_PASSWORD);
	expect_connack(f[3], MQTT_CONNACK_NOT_AUTHORIZED);
	brk_get_stats(&e->b, &st);
	assert_int_equal(st.auth_failed, 4);
	assert_int_equal(st.clients_connected, 0);
	for (i = 0; i < 4; i++) {
		assert_true(f[i]->closed);
		fc_free(f[i]);
	}
}

/*
 * A flood: at most BRK_AUTH_MAX_RUNNING checks at once, BRK_AUTH_MAX_WAITING
 * wait, the next is refused at once as busy; a client closed while waiting
 * leaves nothing; the waiting ones are served in turn.
 */
static void test_flood_is_bounded(void **state)
{
	struct env *e = *state;
	unsigned int total = BRK_AUTH_MAX_RUNNING + BRK_AUTH_MAX_WAITING, i;
	struct fconn **f = gw_calloc(total + 1, sizeof(*f));
	struct fconn *good;
	struct brk_stats st;

	for (i = 0; i < total; i++)
		f[i] = try_connect(e, MQTT_V5, "", "alice", "guess");
	assert_int_equal(e->n_jobs, BRK_AUTH_MAX_RUNNING);
	assert_int_equal(e->b.n_auth_wait, BRK_AUTH_MAX_WAITING);
	f[total] = try_connect(e, MQTT_V5, "", "alice", "guess");
	expect_connack(f[total], MQTT_RC_SERVER_BUSY);
	assert_true(f[total]->closed);
	f[0] = (fc_free(f[0]), NULL); /* closed while its check runs */
	f[5] = (fc_free(f[5]), NULL); /* closed while it waits */
	assert_int_equal(e->b.n_auth_wait, BRK_AUTH_MAX_WAITING - 1);
	/* Each finished check starts one waiting. */
	finish_one(e);
	assert_int_equal(e->n_jobs, BRK_AUTH_MAX_RUNNING);
	while (e->n_jobs)
		finish_one(e);
	assert_int_equal(e->started, total - 1);
	brk_get_stats(&e->b, &st);
	assert_int_equal(st.auth_busy, 1);
	assert_int_equal(st.auth_failed, total - 2);
	/* The right password still gets in afterwards. */
	good = try_connect(e, MQTT_V5, "good", "alice", "secret");
	finish_one(e);
	expect_connack(good, 0);
	fc_free(good);
	for (i = 0; i <= total; i++)
		if (f[i])
			fc_free(f[i]);
	gw_free(f);
	assert_int_equal(e->b.auth_bytes, 0);
}

/* Anonymous: allow_anonymous decides; a certificate identity needs no password. */
static void test_anonymous_and_identity(void **state)
{
	struct env *e = *state;
	struct fconn *f;

	f = try_connect(e, MQTT_V5, "anon", NULL, NULL);
	expect_connack(f, MQTT_RC_NOT_AUTHORIZED);
	fc_free(f);
	e->b.cfg.allow_anonymous = true;
	f = try_connect(e, MQTT_V5, "anon", NULL, NULL);
	expect_connack(f, 0);
	fc_free(f);
	f = fc_new(e);
	f->identity = "plc-7";
	{
		uint8_t buf[128];
		size_t n = connect_bytes(buf, sizeof(buf), MQTT_V311, "cert", NULL, NULL);

		brk__conn_input(&f->c, buf, n, e->now);
	}
	assert_int_equal(e->n_jobs, 0);
	expect_connack(f, 0);
	fc_free(f);
}

/* A check that hangs: after 10 s the client gets "busy" and is closed; the late verdict finds nothing. */
static void test_waiting_times_out(void **state)
{
	struct env *e = *state;
	struct fconn *f = try_connect(e, MQTT_V311, "c1", "alice", "secret");

	brk__conn_tick(&f->c, e->now + 5000);
	assert_false(f->closed);
	brk__conn_tick(&f->c, e->now + 10001);
	assert_true(f->closed);
	expect_connack(f, MQTT_CONNACK_SERVER_UNAVAILABLE);
	fc_free(f);
	finish_one(e);
	assert_int_equal(e->b.auth_bytes, 0);
}

/* Without a thread pool (auth_start NULL) the check runs inline; a reload swaps the file. */
static void test_inline_and_reload(void **state)
{
	struct env *e = *state;
	struct brk_passwd *empty = NULL;
	unsigned int line;
	char err[64];
	struct fconn *f;

	e->b.auth_start = NULL;
	f = try_connect(e, MQTT_V5, "c1", "alice", "secret");
	expect_connack(f, 0);
	fc_free(f);
	assert_int_equal(brk_passwd_parse("", 0, &empty, &line, err, sizeof(err)), 0);
	brk_set_passwd(&e->b, empty);
	f = try_connect(e, MQTT_V5, "c1", "alice", "secret");
	expect_connack(f, MQTT_RC_BAD_USER_OR_PASSWORD);
	fc_free(f);
	brk_set_passwd(&e->b, e->pw);
	brk_passwd_free(empty);
}

struct verdicts {
	int v[4];
	unsigned int n;
};

static void on_verdict(void *arg, int verdict)
{
	struct verdicts *r = arg;

	r->v[r->n++] = verdict;
}

/* brk_check_password: the CoAP server's logins go through the same bounded queue. */
static void test_check_password_api(void **state)
{
	struct env *e = *state;
	struct verdicts r = { .n = 0 };
	struct brk_auth_job *j[4];
	struct brk_stats st;

	assert_int_equal(brk_check_password(&e->b, "alice", "secret", 6, on_verdict, &r, &j[0]), 0);
	assert_int_equal(brk_check_password(&e->b, "alice", "nope", 4, on_verdict, &r, &j[1]), 0);
	assert_int_equal(brk_check_password(&e->b, "eve", "secret", 6, on_verdict, &r, &j[2]), 0);
	assert_int_equal(brk_check_password(&e->b, "alice", "secret", 6, on_verdict, &r, &j[3]), 0);
	assert_int_equal(r.n, 0); /* never inside the call */
	brk_check_cancel(j[3]);	  /* still waiting: gone at once */
	brk_check_cancel(j[1]);	  /* running: its verdict is dropped */
	while (e->n_jobs)
		finish_one(e);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.v[0], 1);
	assert_int_equal(r.v[1], 0);
	brk_get_stats(&e->b, &st);
	assert_int_equal(st.auth_failed, 1); /* eve; the cancelled one is not counted */
	/* No password at all (NULL, 0): a wrong one, not undefined behaviour (UBSan). */
	r.n = 0;
	assert_int_equal(brk_check_password(&e->b, "alice", NULL, 0, on_verdict, &r, &j[0]), 0);
	while (e->n_jobs)
		finish_one(e);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0], 0);
	/* Without a password_file a name is taken as given, answered later all the same. */
	brk_set_passwd(&e->b, NULL);
	r.n = 0;
	assert_int_equal(brk_check_password(&e->b, "anyone", "x", 1, on_verdict, &r, &j[0]), 0);
	assert_int_equal(r.n, 0);
	finish_one(e);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0], 1);
	brk_set_passwd(&e->b, e->pw);
	assert_int_equal(e->b.auth_bytes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_right_password_waits_for_the_pool, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anonymous_and_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_password_api, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
