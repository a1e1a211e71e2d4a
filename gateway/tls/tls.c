/*
 * tls.c - mbedTLS client sessions over memory buffers (see tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* mbedTLS's headers, and its calls through the table of the lazily loaded library. */
#include "gateway/tls/mbed_lib.h"
/*
 * gw_tls_sleep needs the record buffer sizes and the pointer helpers of
 * ssl_internal.h, which mbedTLS 2.x installs (and exports; mbed_lib.h
 * includes it); 3.x keeps them in the library (ssl_misc.h): there an idle
 * session keeps its buffers.
 */
#if MBEDTLS_VERSION_MAJOR == 2 && defined(MBEDTLS_SSL_IN_BUFFER_LEN) && \
	!defined(MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH)
#define TLS_CAN_SLEEP 1
#endif
#include "gateway/tls/tls.h"

#define MOD "tls"
#define SYSTEM_CA_PATH "/etc/ssl/certs"

struct gw_tls_conf {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_x509_crt cert;
	mbedtls_pk_context key;
	mbedtls_ssl_config conf;
};

struct gw_tls {
	mbedtls_ssl_context ssl;
	gw_tls_send_fn send;
	void *arg;
	int send_err;
	/* Ciphertext received and not yet consumed by mbedTLS. */
	uint8_t *in;
	size_t in_off, in_len, in_cap;
	/*
	 * gw_tls_sleep: mbedTLS's record buffers freed while the session is
	 * idle; what they held that outlives a record (the 8-byte sequence
	 * numbers of TLS 1.2, kept at their start) is kept here meanwhile.
	 */
	bool asleep;
	uint8_t in_ctr[8], out_ctr[8];
};

static void describe(int rc, char *buf, size_t len)
{
	mbedtls_strerror(rc, buf, len);
}

static bool set(const char *s)
{
	return s && *s;
}

/* mbedTLS loaded (mbed_lib.h): 0, or -ENOENT logged with the reason. */
static int need_mbedtls(const struct gw_logger *lg)
{
	if (!gw_mbed_load(GW_MBED_TLS))
		return 0;
	gw_log(lg, LOG_ERR, MOD, "mbed TLS cannot be loaded: %s", gw_mbed_error());
	return -ENOENT;
}

/* Entropy, the random generator and empty containers. 0 or -EINVAL (logged). */
static int conf_init(struct gw_tls_conf *c, const char *pers, const struct gw_logger *lg)
{
	char why[160];
	int rc;

#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
	/* TLS 1.3 in mbedTLS 3.x runs on PSA crypto, which must be initialised once. */
	psa_crypto_init();
#endif
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_x509_crt_init(&c->ca);
	mbedtls_x509_crt_init(&c->cert);
	mbedtls_pk_init(&c->key);
	mbedtls_ssl_config_init(&c->conf);
	rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
				   (const unsigned char *)pers, strlen(pers));
	if (rc) {
		describe(rc, why, sizeof(why));
		gw_log(lg, LOG_ERR, MOD, "cannot seed the random generator: %s", why);
		return -EINVAL;
	}
	return 0;
}

/* Our own certificate chain and key. 0 or -EINVAL (logged with the file name). */
static int load_own(struct gw_tls_conf *c, const char *cert_file, const char *key_file,
		    const struct gw_logger *lg)
{
	char why[160];
	int rc;

	rc = mbedtls_x509_crt_parse_file(&c->cert, cert_file);
	if (rc) {
		describe(rc, why, sizeof(why));
		gw_log(lg, LOG_ERR, MOD, "cert_file %s: %s", cert_file, why);
		return -EINVAL;
	}
#if MBEDTLS_VERSION_MAJOR >= 3
	rc = mbedtls_pk_parse_keyfile(&c->key, key_file, NULL, mbedtls_ctr_drbg_random, &c->drbg);
#else
	rc = mbedtls_pk_parse_keyfile(&c->key, key_file, NULL);
#endif
	if (rc) {
		describe(rc, why, sizeof(why));
		gw_log(lg, LOG_ERR, MOD, "key_file %s: %s", key_file, why);
		return -EINVAL;
	}
	return 0;
}

#if MBEDTLS_VERSION_MAJOR == 2 && defined(MBEDTLS_ECP_C)
/*
 * mbedTLS 2.x lists its curves strongest first, and a server takes the first
 * of its list that the client offers: every ECDHE on P-521, several times
 * the work of X25519 or P-256 (which a 128-bit cipher suite does not gain
 * from), on both ends: 3 to 5 times fewer handshakes a second. The order of
 * 3.x and of OpenSSL. (These are also the curves accepted in the peer's
 * certificate chain.)
 */
static const mbedtls_ecp_group_id fast_curves[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
	MBEDTLS_ECP_DP_CURVE25519,
#endif
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
	MBEDTLS_ECP_DP_SECP256R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP384R1_ENABLED)
	MBEDTLS_ECP_DP_SECP384R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP521R1_ENABLED)
	MBEDTLS_ECP_DP_SECP521R1,
#endif
#if defined(MBEDTLS_ECP_DP_BP256R1_ENABLED)
	MBEDTLS_ECP_DP_BP256R1,
#endif
#if defined(MBEDTLS_ECP_DP_BP384R1_ENABLED)
	MBEDTLS_ECP_DP_BP384R1,
#endif
#if defined(MBEDTLS_ECP_DP_BP512R1_ENABLED)
	MBEDTLS_ECP_DP_BP512R1,
#endif
	MBEDTLS_ECP_DP_NONE,
};
#endif

/* Defaults for @endpoint, our random generator, and our certificate if loaded. */
static int conf_setup(struct gw_tls_conf *c, int endpoint, const char *cert_file,
		      const char *key_file, const struct gw_logger *lg)
{
	char why[160];
	int rc;

	rc = mbedtls_ssl_config_defaults(&c->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
					 MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc) {
		describe(rc, why, sizeof(why));
		gw_log(lg, LOG_ERR, MOD, "cannot configure TLS: %s", why);
		return -EINVAL;
	}
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
#if MBEDTLS_VERSION_MAJOR == 2 && defined(MBEDTLS_ECP_C)
	mbedtls_ssl_conf_curves(&c->conf, fast_curves);
#endif
	if (set(cert_file)) {
		rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key);
		if (rc) {
			describe(rc, why, sizeof(why));
			gw_log(lg, LOG_ERR, MOD, "cert_file %s and key_file %s: %s", cert_file,
			       key_file, why);
			return -EINVAL;
		}
	}
	return 0;
}

int gw_tls_conf_new(const char *ca_file, const char *cert_file, const char *key_file, bool insecure,
		    const struct gw_logger *lg, struct gw_tls_conf **out)
{
	struct gw_tls_conf *c;
	char why[160];
	int rc;

	if (need_mbedtls(lg))
		return -ENOENT;
	c = gw_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (conf_init(c, "fieldmq-uplink", lg))
		goto fail;
	if (set(ca_file)) {
		rc = mbedtls_x509_crt_parse_file(&c->ca, ca_file);
		if (rc) {
			describe(rc, why, sizeof(why));
			gw_log(lg, LOG_ERR, MOD, "ca_file %s: %s", ca_file, why);
			goto fail;
		}
	} else if (!insecure) {
		/* A positive return counts certificates that did not parse: keep the rest. */
		rc = mbedtls_x509_crt_parse_path(&c->ca, SYSTEM_CA_PATH);
		if (rc < 0) {
			describe(rc, why, sizeof(why));
			gw_log(lg, LOG_ERR, MOD, "no ca_file, and the system CAs in %s: %s",
			       SYSTEM_CA_PATH, why);
			goto fail;
		}
	}
	if (set(cert_file) != set(key_file)) {
		gw_log(lg, LOG_ERR, MOD, "cert_file and key_file go together: set both or neither");
		goto fail;
	}
	if (set(cert_file) && load_own(c, cert_file, key_file, lg))
		goto fail;
	if (conf_setup(c, MBEDTLS_SSL_IS_CLIENT, cert_file, key_file, lg))
		goto fail;
	/* DESIGN.md 6: the chain and the name are checked unless tls_insecure = yes. */
	mbedtls_ssl_conf_authmode(&c->conf,
				  insecure ? MBEDTLS_SSL_VERIFY_NONE : MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
	*out = c;
	return 0;
fail:
	gw_tls_conf_free(c);
	return -EINVAL;
}

int gw_tls_server_conf_new(const char *cert_file, const char *key_file, const char *ca_file,
			   bool require_cert, const struct gw_logger *lg, struct gw_tls_conf **out)
{
	struct gw_tls_conf *c;
	char why[160];
	int rc;

	if (!set(cert_file) || !set(key_file)) {
		gw_log(lg, LOG_ERR, MOD, "a TLS listener needs cert_file and key_file");
		return -EINVAL;
	}
	if (require_cert && !set(ca_file)) {
		gw_log(lg, LOG_ERR, MOD, "require_certificate needs ca_file");
		return -EINVAL;
	}
	if (need_mbedtls(lg))
		return -ENOENT;
	c = gw_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (conf_init(c, "fieldmq-broker", lg) || load_own(c, cert_file, key_file, lg))
		goto fail;
	if (set(ca_file)) {
		rc = mbedtls_x509_crt_parse_file(&c->ca, ca_file);
		if (rc) {
			describe(rc, why, sizeof(why));
			gw_log(lg, LOG_ERR, MOD, "ca_file %s: %s", ca_file, why);
			goto fail;
		}
	}
	if (conf_setup(c, MBEDTLS_SSL_IS_SERVER, cert_file, key_file, lg))
		goto fail;
	/*
	 * Client certificates: asked for and verified only when required
	 * (Mosquitto's require_certificate); otherwise none is requested.
	 */
	mbedtls_ssl_conf_authmode(&c->conf, require_cert ? MBEDTLS_SSL_VERIFY_REQUIRED
							 : MBEDTLS_SSL_VERIFY_NONE);
	if (set(ca_file))
		mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_SRV_C) && \
	MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
	/* No ticket keys are set up: TLS 1.3 must not promise tickets it cannot issue. */
	mbedtls_ssl_conf_new_session_tickets(&c->conf, 0);
#endif
	*out = c;
	return 0;
fail:
	gw_tls_conf_free(c);
	return -EINVAL;
}

void gw_tls_conf_free(struct gw_tls_conf *c)
{
	if (!c)
		return;
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_pk_free(&c->key);
	mbedtls_x509_crt_free(&c->cert);
	mbedtls_x509_crt_free(&c->ca);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
	gw_free(c);
}

/* mbedTLS's BIO: ciphertext out goes to the glue, in comes from what was fed. */
static int bio_send(void *ctx, const unsigned char *p, size_t len)
{
	struct gw_tls *t = ctx;
	int rc;

	if (t->send_err)
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
	rc = t->send(t->arg, p, len);
	if (rc) {
		t->send_err = rc;
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
	}
	return (int)GW_MIN(len, (size_t)INT32_MAX);
}

static int bio_recv(void *ctx, unsigned char *p, size_t len)
{
	struct gw_tls *t = ctx;
	size_t n = GW_MIN(len, t->in_len - t->in_off);

	if (!n)
		return MBEDTLS_ERR_SSL_WANT_READ;
	memcpy(p, t->in + t->in_off, n);
	t->in_off += n;
	if (t->in_off == t->in_len)
		t->in_off = t->in_len = 0;
	return (int)n;
}

int gw_tls_new(struct gw_tls_conf *c, const char *host, gw_tls_send_fn send, void *arg,
	       struct gw_tls **out)
{
	struct gw_tls *t = gw_calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	mbedtls_ssl_init(&t->ssl);
	t->send = send;
	t->arg = arg;
	if (mbedtls_ssl_setup(&t->ssl, &c->conf) ||
	    /* SNI, and the name the certificate must carry. */
	    mbedtls_ssl_set_hostname(&t->ssl, host)) {
		gw_tls_free(t);
		return -EINVAL;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	*out = t;
	return 0;
}

int gw_tls_server_new(struct gw_tls_conf *c, gw_tls_send_fn send, void *arg, struct gw_tls **out)
{
	struct gw_tls *t = gw_calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	mbedtls_ssl_init(&t->ssl);
	t->send = send;
	t->arg = arg;
	if (mbedtls_ssl_setup(&t->ssl, &c->conf)) {
		gw_tls_free(t);
		return -ENOMEM;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	*out = t;
	return 0;
}

/*
 * A session put to sleep gets record buffers again before mbedTLS touches
 * it: fresh ones, with the pointers into them set as mbedTLS sets them at
 * the start of a session (then for the outgoing transform in use), and the
 * sequence numbers put back. 0 or -ENOMEM (still asleep: a later call may
 * succeed).
 */
static int tls_wake(struct gw_tls *t)
{
#if defined(TLS_CAN_SLEEP)
	mbedtls_ssl_context *s = &t->ssl;
	unsigned char *in, *out;

	if (!t->asleep)
		return 0;
	in = mbedtls_calloc(1, MBEDTLS_SSL_IN_BUFFER_LEN);
	out = mbedtls_calloc(1, MBEDTLS_SSL_OUT_BUFFER_LEN);
	if (!in || !out) {
		mbedtls_free(in);
		mbedtls_free(out);
		return -ENOMEM;
	}
	s->in_buf = in;
	s->out_buf = out;
	mbedtls_ssl_reset_in_out_pointers(s);
	mbedtls_ssl_update_out_pointers(s, s->transform_out);
	memcpy(s->in_ctr, t->in_ctr, 8);
	memcpy(s->out_ctr, t->out_ctr, 8);
	t->asleep = false;
#else
	(void)t;
#endif
	return 0;
}

int gw_tls_sleep(struct gw_tls *t)
{
#if defined(TLS_CAN_SLEEP)
	mbedtls_ssl_context *s = &t->ssl;

	if (t->asleep)
		return 0;
	/*
	 * Only between records of an established TLS session: nothing half
	 * read or half written, nothing decrypted and unread, and the buffers
	 * laid out as tls_wake will lay them out again.
	 */
	if (s->state != MBEDTLS_SSL_HANDSHAKE_OVER || s->handshake || !s->transform_in ||
	    !s->transform_out || s->conf->transport != MBEDTLS_SSL_TRANSPORT_STREAM || s->in_left ||
	    s->in_msglen || s->out_left || mbedtls_ssl_check_pending(s) || t->in_len != t->in_off ||
	    !s->in_buf || !s->out_buf || s->in_hdr != s->in_buf + 8 ||
	    s->out_hdr != s->out_buf + 8 || s->in_ctr != s->in_buf || s->out_ctr != s->out_buf)
		return -EBUSY;
	memcpy(t->in_ctr, s->in_ctr, 8);
	memcpy(t->out_ctr, s->out_ctr, 8);
	mbedtls_platform_zeroize(s->in_buf, MBEDTLS_SSL_IN_BUFFER_LEN);
	mbedtls_platform_zeroize(s->out_buf, MBEDTLS_SSL_OUT_BUFFER_LEN);
	mbedtls_free(s->in_buf);
	mbedtls_free(s->out_buf);
	s->in_buf = s->out_buf = NULL;
	s->in_ctr = s->in_hdr = s->in_len = s->in_iv = s->in_msg = NULL;
	s->out_ctr = s->out_hdr = s->out_len = s->out_iv = s->out_msg = NULL;
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
	s->in_cid = s->out_cid = NULL;
#endif
	t->asleep = true;
	gw_tls_trim(t);
	return 0;
#else
	(void)t;
	return -EOPNOTSUPP;
#endif
}

bool gw_tls_asleep(const struct gw_tls *t)
{
	return t->asleep;
}

int gw_tls_peer_cn(struct gw_tls *t, char *buf, size_t n)
{
	const mbedtls_x509_crt *crt;
	const mbedtls_x509_name *nm;

	if (tls_wake(t))
		return -ENOENT;
	crt = mbedtls_ssl_get_peer_cert(&t->ssl);
	if (!crt || !n)
		return -ENOENT;
	for (nm = &crt->subject; nm; nm = nm->next) {
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid))
			continue;
		if (nm->val.len >= n || memchr(nm->val.p, 0, nm->val.len))
			return -EINVAL;
		memcpy(buf, nm->val.p, nm->val.len);
		buf[nm->val.len] = 0;
		return 0;
	}
	return -ENOENT;
}

const char *gw_tls_version(struct gw_tls *t)
{
	return mbedtls_ssl_get_version(&t->ssl); /* from the session: no buffers needed */
}

void gw_tls_trim(struct gw_tls *t)
{
	if (t->in_len)
		return;
	gw_free(t->in);
	t->in = NULL;
	t->in_cap = t->in_off = 0;
}

void gw_tls_free(struct gw_tls *t)
{
	if (!t)
		return;
	mbedtls_ssl_free(&t->ssl);
	gw_free(t->in);
	gw_free(t);
}

int gw_tls_feed(struct gw_tls *t, const void *p, size_t len)
{
	if (t->in_off && t->in_len + len > t->in_cap) {
		memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
		t->in_len -= t->in_off;
		t->in_off = 0;
	}
	if (t->in_len + len > t->in_cap) {
		size_t cap = GW_MAX(t->in_cap * 2, t->in_len + len);
		uint8_t *n = gw_realloc(t->in, cap);

		if (!n)
			return -ENOMEM;
		t->in = n;
		t->in_cap = cap;
	}
	memcpy(t->in + t->in_len, p, len);
	t->in_len += len;
	return 0;
}

/* A sentence for a failed handshake: the verification result says most. */
static void explain(struct gw_tls *t, int rc, char *err, size_t errlen)
{
	char buf[256];
	uint32_t flags;

	if (!errlen)
		return;
	flags = mbedtls_ssl_get_verify_result(&t->ssl);
	if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags && flags != (uint32_t)-1) {
		int n = mbedtls_x509_crt_verify_info(buf, sizeof(buf), "", flags);
		size_t i;

		/* One line: the verify info is a list of lines. */
		for (i = 0; n > 0 && i < (size_t)n && buf[i]; i++)
			if (buf[i] == '\n')
				buf[i] = (i + 1 < (size_t)n && buf[i + 1]) ? ';' : '\0';
		snprintf(err, errlen, "certificate verify failed: %s", buf);
		return;
	}
	describe(rc, buf, sizeof(buf));
	snprintf(err, errlen, "%s (-0x%04x)", buf, (unsigned int)-rc);
}

int gw_tls_handshake(struct gw_tls *t, char *err, size_t errlen)
{
	int rc = t->asleep ? 0 : mbedtls_ssl_handshake(&t->ssl);

	if (!rc)
		return 1;
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return 0;
	if (t->send_err)
		snprintf(err, errlen, "cannot send: %s", strerror(-t->send_err));
	else
		explain(t, rc, err, errlen);
	return -EPROTO;
}

int gw_tls_read(struct gw_tls *t, void *buf, size_t cap, char *err, size_t errlen)
{
	if (t->asleep && t->in_len == t->in_off)
		return 0; /* asleep and nothing came: no need to wake */
	if (tls_wake(t)) {
		snprintf(err, errlen, "out of memory for the record buffers");
		return -EPROTO;
	}
	for (;;) {
		int rc = mbedtls_ssl_read(&t->ssl, buf, cap);

		if (rc > 0)
			return rc;
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			return 0;
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
		if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue; /* TLS 1.3 post-handshake message: nothing for us */
#endif
		if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
			return -ECONNRESET;
		explain(t, rc, err, errlen);
		return -EPROTO;
	}
}

int gw_tls_write(struct gw_tls *t, const void *p, size_t len)
{
	const uint8_t *b = p;
	unsigned int wants = 0;
	int wrc = tls_wake(t);

	if (wrc)
		return wrc;
	while (len) {
		int rc = mbedtls_ssl_write(&t->ssl, b, len);

		if (rc < 0) {
			/* Our BIO takes everything: a want is transient, or never ends. */
			if ((rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) &&
			    ++wants < 16)
				continue;
			return t->send_err ? t->send_err : -EPROTO;
		}
		b += rc;
		len -= (size_t)rc;
	}
	return 0;
}

const char *gw_tls_library(void)
{
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
	return MBEDTLS_VERSION_STRING_FULL ", TLS 1.2 and 1.3";
#else
	return MBEDTLS_VERSION_STRING_FULL ", TLS 1.2";
#endif
}

void gw_tls_close_notify(struct gw_tls *t)
{
	if (tls_wake(t))
		return;
	mbedtls_ssl_close_notify(&t->ssl);
}
