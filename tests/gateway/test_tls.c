/*
 * test_tls.c - gateway/tls sessions over memory: a client and a server
 * session of our own hand each other their ciphertext. gw_tls_sleep (idle
 * sessions give back mbedTLS's record buffers, mbedTLS 2.x) must be
 * invisible to the peer: records still decrypt in both directions after
 * every sleep and wake-up (the sequence numbers come back), and a session
 * with a record half read does not sleep.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/tls/tls.h"

/* Made with openssl for this test: EC P-256, valid for 100 years. */
static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
			     "MIIBfDCCASGgAwIBAgIURJY09uwJ6CkBDn5uR34wwA8qhdUwCgYIKoZIzj0EAwIw\n"
			     "EjEQMA4GA1UEAwwHdGVzdC1jYTAgFw0yNjEyMDcxMzUxMDZaGA8yMTI2MTExMzEz\n"
			     "NTEwNlowEjEQMA4GA1UEAwwHdGVzdC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
			     "A0IABEwO6S54GMqLSoFf/BBsuvP/OECm1dRlx0go3UK/p4aL1YmySz6u2U0wMXyP\n"
			     "uy4XFCRZwP9jDR8BXvoMXGX+WmejUzBRMB0GA1UdDgQWBBQqruf2uQGi1TL93x2X\n"
			     "T20Y9c8IxzAfBgNVHSMEGDAWgBQqruf2uQGi1TL93x2XT20Y9c8IxzAPBgNVHRMB\n"
			     "Af8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCll+Qwc7oojVysnn3ANthgt4lz\n"
			     "ieXkBHR+XyEssu6wfwIhAJf6CsoEMsbSec9QkqIsyDp+HQ/mWuqVvTY7j60jypaJ\n"
			     "-----END CERTIFICATE-----\n";

static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
			       "MIIBgTCCASigAwIBAgIUJ+TfmNlckQT7DBsiRREqgJ3SpLowCgYIKoZIzj0EAwIw\n"
			       "EjEQMA4GA1UEAwwHdGVzdC1jYTAgFw0yNjEyMDcxMzUxMDZaGA8yMTI2MTExMzEz\n"
			       "NTEwNlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
			       "AQcDQgAExW92xO2ly4HnYUvKSlQLOIyER+unUkK4hIvCt+eXHJhI/Pv5rKvh1RGY\n"
			       "FqRAz4yEKacz9Y5hz6of34tf5UeYp6NYMFYwFAYDVR0RBA0wC4IJbG9jYWxob3N0\n"
			       "MB0GA1UdDgQWBBT0q1miUhoZPas1lGC510GCUwP1ezAfBgNVHSMEGDAWgBQqruf2\n"
			       "uQGi1TL93x2XT20Y9c8IxzAKBggqhkjOPQQDAgNHADBEAiA6nsK3kjwdD7d7Y332\n"
			       "PAYmM9b8rF2rh7BrWov/7RqXlQIgCEnv7ECMI1fYreokXVAKeAy4Di1KoV3/1EbE\n"
			       "gENvNNU=\n"
			       "-----END CERTIFICATE-----\n";

static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
			      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7EyGFNMnlPTRTcjg\n"
			      "GvBKszpmwnkUy+rffRAwy/JvizKhRANCAATFb3bE7aXLgedhS8pKVAs4jIRH66dS\n"
			      "QriEi8K355ccmEj8+/msq+HVEZgWpEDPjIQppzP1jmHPqh/fi1/lR5in\n"
			      "-----END PRIVATE KEY-----\n";

/* Ciphertext one session sent, for the other one. */
struct wire {
	uint8_t buf[65536];
	size_t len;
};

static int to_wire(void *arg, const void *p, size_t len)
{
	struct wire *w = arg;

	if (w->len + len > sizeof(w->buf))
		return -ENOBUFS;
	memcpy(w->buf + w->len, p, len);
	w->len += len;
	return 0;
}

/* Hand @w's bytes to @t. */
static void deliver(struct wire *w, struct gw_tls *t)
{
	if (w->len)
		assert_int_equal(gw_tls_feed(t, w->buf, w->len), 0);
	w->len = 0;
}

struct pair {
	char dir[64];
	struct gw_tls_conf *cc, *sc;
	struct gw_tls *c, *s;
	struct wire c2s, s2c;
};

static void write_file(const char *dir, const char *name, const char *text, char *path, size_t n)
{
	FILE *f;

	snprintf(path, n, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	fclose(f);
}

static void pair_open(struct pair *p)
{
	char ca[128], crt[128], key[128];
	char err[256];
	int i, cdone = 0, sdone = 0;

	memset(p, 0, sizeof(*p));
	strcpy(p->dir, "/tmp/fieldmq-test-tls.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	write_file(p->dir, "ca.crt", ca_pem, ca, sizeof(ca));
	write_file(p->dir, "server.crt", cert_pem, crt, sizeof(crt));
	write_file(p->dir, "server.key", key_pem, key, sizeof(key));
	assert_int_equal(gw_tls_server_conf_new(crt, key, NULL, false, NULL, &p->sc), 0);
	assert_int_equal(gw_tls_conf_new(ca, NULL, NULL, false, NULL, &p->cc), 0);
	assert_int_equal(gw_tls_server_new(p->sc, to_wire, &p->s2c, &p->s), 0);
	assert_int_equal(gw_tls_new(p->cc, "localhost", to_wire, &p->c2s, &p->c), 0);
	for (i = 0; i < 20 && !(cdone && sdone); i++) {
		if (!cdone)
			cdone = gw_tls_handshake(p->c, err, sizeof(err));
		assert_true(cdone >= 0);
		deliver(&p->c2s, p->s);
		if (!sdone)
			sdone = gw_tls_handshake(p->s, err, sizeof(err));
		assert_true(sdone >= 0);
		deliver(&p->s2c, p->c);
	}
	assert_int_equal(cdone, 1);
	assert_int_equal(sdone, 1);
}

static void pair_close(struct pair *p)
{
	char path[128];

	gw_tls_free(p->c);
	gw_tls_free(p->s);
	gw_tls_conf_free(p->cc);
	gw_tls_conf_free(p->sc);
	snprintf(path, sizeof(path), "%s/ca.crt", p->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/server.crt", p->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/server.key", p->dir);
	unlink(path);
	rmdir(p->dir);
}

/* @from writes @msg; @to reads exactly it. */
static void say(struct gw_tls *from, struct wire *w, struct gw_tls *to, const char *msg)
{
	char got[256], err[256];
	int n;

	assert_int_equal(gw_tls_write(from, msg, strlen(msg)), 0);
	deliver(w, to);
	n = gw_tls_read(to, got, sizeof(got), err, sizeof(err));
	if (n < 0)
		fail_msg("read: %s", err);
	assert_int_equal(n, (int)strlen(msg));
	assert_memory_equal(got, msg, strlen(msg));
}

static void test_sleep_wake(void **state)
{
	struct pair p;
	char buf[64], err[256];
	int i, rc;

	(void)state;
	pair_open(&p);
	say(p.c, &p.c2s, p.s, "CONNECT");
	say(p.s, &p.s2c, p.c, "CONNACK");
	rc = gw_tls_sleep(p.s);
	if (rc == -EOPNOTSUPP) {
		/* mbedTLS 3.x: sessions keep their buffers; nothing else changes. */
		assert_false(gw_tls_asleep(p.s));
		say(p.c, &p.c2s, p.s, "still there");
		pair_close(&p);
		skip();
	}
	assert_int_equal(rc, 0);
	assert_true(gw_tls_asleep(p.s));
	assert_int_equal(gw_tls_sleep(p.s), 0); /* twice: no-op */
	/* Nothing came: a read does not wake it. */
	assert_int_equal(gw_tls_read(p.s, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_true(gw_tls_asleep(p.s));
	for (i = 0; i < 5; i++) {
		/* Woken by a write, then by input, alternately: both directions decrypt. */
		if (i % 2) {
			say(p.s, &p.s2c, p.c, "PUBLISH from the broker");
			assert_false(gw_tls_asleep(p.s));
			say(p.c, &p.c2s, p.s, "PUBACK");
		} else {
			say(p.c, &p.c2s, p.s, "PUBLISH from the client");
			assert_false(gw_tls_asleep(p.s));
			say(p.s, &p.s2c, p.c, "PUBACK");
		}
		assert_int_equal(gw_tls_sleep(p.s), 0);
		assert_int_equal(gw_tls_sleep(p.c), 0); /* a client session sleeps as well */
	}
	say(p.c, &p.c2s, p.s, "DISCONNECT");

	/* A record received and not read yet: no sleep. */
	assert_int_equal(gw_tls_write(p.c, "x", 1), 0);
	deliver(&p.c2s, p.s);
	assert_int_equal(gw_tls_sleep(p.s), -EBUSY);
	assert_int_equal(gw_tls_read(p.s, buf, sizeof(buf), err, sizeof(err)), 1);
	/* Half a record decrypted and unread: no sleep either. */
	assert_int_equal(gw_tls_write(p.c, "0123456789", 10), 0);
	deliver(&p.c2s, p.s);
	assert_int_equal(gw_tls_read(p.s, buf, 4, err, sizeof(err)), 4);
	assert_int_equal(gw_tls_sleep(p.s), -EBUSY);
	assert_int_equal(gw_tls_read(p.s, buf, sizeof(buf), err, sizeof(err)), 6);
	assert_memory_equal(buf, "456789", 6);
	assert_int_equal(gw_tls_sleep(p.s), 0);
	/* Freed asleep: nothing leaks (ASan). */
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sleep_wake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
