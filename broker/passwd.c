/*
 * passwd.c - the password_file: a table of users and their hashes built from
 * the file's text (brk_passwd_line does each line), the lookup CONNECT makes,
 * and the verification itself, which the glue runs on the libuv thread pool:
 * PBKDF2 is slow by design and must never run on the loop thread.
 *
 * No file I/O, no logging, no clock: the caller reads the file
 * (gateway/config_broker.c) and reports errors with its name.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway/tls/mbed_lib.h" /* mbedTLS, loaded when first needed */

#include "broker/broker_int.h"

struct brk_pw_user {
	const char *name; /* into brk_passwd.text, NUL-terminated */
	size_t len;
	struct brk_pw_entry e;
};

struct brk_passwd {
	char *text;
	struct brk_pw_user *v;
	unsigned int n, cap;
};

void brk_passwd_free(struct brk_passwd *pw)
{
	if (!pw)
		return;
	gw_free(pw->v);
	gw_free(pw->text);
	gw_free(pw);
}

unsigned int brk_passwd_count(const struct brk_passwd *pw)
{
	return pw ? pw->n : 0;
}

void brk__passwd_dummy(const struct brk_passwd *pw, struct brk_pw_entry *out)
{
	/*
	 * The cost of the file's first entry (mosquitto_passwd's defaults if
	 * the file is empty), with a salt and hash that no password matches
	 * on purpose: the verdict for an unknown user is false anyway.
	 */
	memset(out, 0, sizeof(*out));
	out->kind = BRK_PW_PBKDF2_SHA512;
	out->salt_len = 12;
	out->iterations = 101;
	if (pw && pw->n) {
		out->kind = pw->v[0].e.kind;
		out->iterations = pw->v[0].e.iterations;
		out->salt_len = pw->v[0].e.salt_len;
	}
}

const struct brk_pw_entry *brk__passwd_find(const struct brk_passwd *pw, struct gw_slice user)
{
	unsigned int i;

	for (i = 0; i < pw->n; i++)
		if (pw->v[i].len == user.len && !memcmp(pw->v[i].name, user.p, user.len))
			return &pw->v[i].e;
	return NULL;
}

int brk_passwd_check(const struct brk_passwd *pw, const char *user, const char *pass)
{
	const struct brk_pw_entry *e = pw ? brk__passwd_find(pw, gw_slice_cstr(user)) : NULL;
	struct brk_pw_entry dummy;
	bool ok;

	if (!e) {
		brk__passwd_dummy(pw, &dummy);
		e = &dummy;
	}
	ok = brk__passwd_verify(e, (const uint8_t *)pass, strlen(pass));
	return ok && e != &dummy ? 0 : -EACCES;
}

int brk_passwd_parse(const char *text, size_t len, struct brk_passwd **out, unsigned int *line,
		     char *err, size_t errlen)
{
	struct brk_passwd *pw;
	const char *p, *end;
	int rc = 0;

	*out = NULL;
	*line = 0;
	if (errlen)
		err[0] = '\0';
	pw = gw_calloc(1, sizeof(*pw));
	if (!pw)
		return -ENOMEM;
	pw->text = gw_malloc(len + 1);
	if (!pw->text) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(pw->text, text, len);
	pw->text[len] = '\0';
	for (p = pw->text, end = p + len; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *why;
		struct brk_pw_entry e;
		struct gw_slice user;
		int r;

		if (!eol)
			eol = end;
		++*line;
		r = brk_passwd_line(p, (size_t)(eol - p), &user, &e, &why);
		p = eol < end ? eol + 1 : end;
		if (r < 0) {
			snprintf(err, errlen, "%s", why);
			rc = -EINVAL;
			goto out;
		}
		if (r == 0)
			continue;
		if (brk__passwd_find(pw, user)) {
			snprintf(err, errlen, "user '%.*s' appears twice",
				 (int)GW_MIN(user.len, 64), (const char *)user.p);
			rc = -EINVAL;
			goto out;
		}
		if (pw->n == pw->cap) {
			unsigned int cap = pw->cap ? pw->cap * 2 : 16;
			struct brk_pw_user *v = gw_realloc(pw->v, cap * sizeof(*v));

			if (!v) {
				rc = -ENOMEM;
				goto out;
			}
			pw->v = v;
			pw->cap = cap;
		}
		/* The name ends the line's text at its ':' (or blanks): terminate it in place. */
		((char *)user.p)[user.len] = '\0';
		pw->v[pw->n].name = (const char *)user.p;
		pw->v[pw->n].len = user.len;
		pw->v[pw->n].e = e;
		pw->n++;
	}
out:
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		brk_passwd_free(pw);
		return rc;
	}
	*out = pw;
	return 0;
}

/*
 * Compare in time that depends on the length only, so that how much of a
 * guess was right does not show in the response time.
 */
static bool same(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static int pbkdf2(const struct brk_pw_entry *e, const uint8_t *pw, size_t len, uint8_t *out)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
	return mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA512, pw, len, e->salt, e->salt_len,
					     e->iterations, BRK_PW_HASH_LEN, out);
#else
	mbedtls_md_context_t md;
	int rc;

	mbedtls_md_init(&md);
	rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA512), 1);
	if (!rc)
		rc = mbedtls_pkcs5_pbkdf2_hmac(&md, pw, len, e->salt, e->salt_len, e->iterations,
					       BRK_PW_HASH_LEN, out);
	mbedtls_md_free(&md);
	return rc;
#endif
}

static int sha512_salted(const struct brk_pw_entry *e, const uint8_t *pw, size_t len, uint8_t *out)
{
	mbedtls_sha512_context ctx;
	int rc;

	/* Mosquitto's $6$: SHA-512 of the password followed by the salt. */
	mbedtls_sha512_init(&ctx);
#if MBEDTLS_VERSION_MAJOR >= 3
	rc = mbedtls_sha512_starts(&ctx, 0);
	if (!rc)
		rc = mbedtls_sha512_update(&ctx, pw, len);
	if (!rc)
		rc = mbedtls_sha512_update(&ctx, e->salt, e->salt_len);
	if (!rc)
		rc = mbedtls_sha512_finish(&ctx, out);
#else
	rc = mbedtls_sha512_starts_ret(&ctx, 0);
	if (!rc)
		rc = mbedtls_sha512_update_ret(&ctx, pw, len);
	if (!rc)
		rc = mbedtls_sha512_update_ret(&ctx, e->salt, e->salt_len);
	if (!rc)
		rc = mbedtls_sha512_finish_ret(&ctx, out);
#endif
	mbedtls_sha512_free(&ctx);
	return rc;
}

bool brk__passwd_verify(const struct brk_pw_entry *e, const uint8_t *pw, size_t len)
{
	uint8_t h[BRK_PW_HASH_LEN];
	bool ok;
	int rc;

	if (e->kind == BRK_PW_PBKDF2_SHA512)
		rc = pbkdf2(e, pw, len, h);
	else if (e->kind == BRK_PW_SHA512)
		rc = sha512_salted(e, pw, len, h);
	else
		return false;
	ok = !rc && same(h, e->hash, sizeof(h));
	memset(h, 0, sizeof(h));
	return ok;
}
