/*
 * passwd_codec.c - one line of a Mosquitto password_file, as mosquitto_passwd
 * writes it:
 *
 *   USER:$7$ITERATIONS$BASE64(SALT)$BASE64(PBKDF2-HMAC-SHA512(PASSWORD, SALT))
 *   USER:$6$BASE64(SALT)$BASE64(SHA512(PASSWORD || SALT))
 *
 * ($7$ is mosquitto_passwd's default since 2.0, 101 iterations and a 12-byte
 * salt; $6$ is -H sha512, Mosquitto 1.6 and before.) Blank lines and lines
 * starting with '#' are skipped; blanks around the user name and the hash
 * and a trailing CR are ignored, as Mosquitto does.
 *
 * Pure: bytes in, an entry out; no allocation, no logging (base64 decoding is
 * mbedTLS's, which allocates nothing).
 */
#include <errno.h>
#include <string.h>

#include "gateway/tls/mbed_lib.h" /* mbedTLS, loaded when first needed */

#include "broker/broker_int.h"

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Decode base64 [p, p + n) into out (cap bytes); the decoded length, or -1. */
static int unb64(const char *p, size_t n, uint8_t *out, size_t cap)
{
	size_t olen = 0;

	if (!n || mbedtls_base64_decode(out, cap, &olen, (const unsigned char *)p, n))
		return -1;
	return (int)olen;
}

/* The next '$'-terminated field of [*p, end) (the last one runs to end). */
static struct gw_slice field(const char **p, const char *end)
{
	const char *s = *p, *d = memchr(s, '$', (size_t)(end - s));
	struct gw_slice f = { (const uint8_t *)s, (size_t)((d ? d : end) - s) };

	*p = d ? d + 1 : end;
	return f;
}

int brk_passwd_line(const char *line, size_t len, struct gw_slice *user, struct brk_pw_entry *e,
		    const char **why)
{
	const char *s = line, *end = line + len, *colon, *h;
	struct gw_slice it, salt, hash;
	uint64_t iter = 0;
	int n;
	size_t i;

	*why = NULL;
	memset(e, 0, sizeof(*e));
	if (len > BRK_PASSWD_MAX_LINE) {
		*why = "line too long";
		return -EINVAL;
	}
	if (memchr(line, '\0', len)) {
		*why = "NUL byte in the line";
		return -EINVAL;
	}
	while (end > s && (blank(end[-1]) || end[-1] == '\r'))
		end--;
	while (s < end && blank(*s))
		s++;
	if (s == end || *s == '#')
		return 0;
	colon = memchr(s, ':', (size_t)(end - s));
	if (!colon) {
		*why = "expected USER:HASH (a line made by mosquitto_passwd)";
		return -EINVAL;
	}
	user->p = (const uint8_t *)s;
	user->len = (size_t)(colon - s);
	while (user->len && blank((char)user->p[user->len - 1]))
		user->len--;
	if (!user->len) {
		*why = "empty user name";
		return -EINVAL;
	}
	if (user->len > 65535) {
		*why = "user name longer than 65535 bytes";
		return -EINVAL;
	}
	h = colon + 1;
	while (h < end && blank(*h))
		h++;
	if (end - h < 3 || h[0] != '$' || (h[1] != '6' && h[1] != '7') || h[2] != '$') {
		*why = "not a hashed password: expected $7$ (PBKDF2-SHA512) or $6$ (SHA-512) as "
		       "mosquitto_passwd writes them";
		return -EINVAL;
	}
	e->kind = h[1] == '7' ? BRK_PW_PBKDF2_SHA512 : BRK_PW_SHA512;
	h += 3;
	if (e->kind == BRK_PW_PBKDF2_SHA512) {
		it = field(&h, end);
		for (i = 0; i < it.len && iter <= BRK_PASSWD_MAX_ITER; i++) {
			if (it.p[i] < '0' || it.p[i] > '9')
				break;
			iter = iter * 10 + (it.p[i] - '0');
		}
		if (!it.len || i < it.len || iter < 1 || iter > BRK_PASSWD_MAX_ITER) {
			*why = "$7$: bad iteration count (expected 1 to 10000000)";
			return -EINVAL;
		}
		e->iterations = (uint32_t)iter;
	}
	salt = field(&h, end);
	hash = field(&h, end);
	if (h != end || memchr(hash.p, '$', hash.len)) {
		*why = "too many '$' fields";
		return -EINVAL;
	}
	n = unb64((const char *)salt.p, salt.len, e->salt, sizeof(e->salt));
	if (n <= 0) {
		*why = "bad salt (expected base64, at most 64 bytes)";
		return -EINVAL;
	}
	e->salt_len = (uint8_t)n;
	n = unb64((const char *)hash.p, hash.len, e->hash, sizeof(e->hash));
	if (n != (int)sizeof(e->hash)) {
		*why = "bad hash (expected the base64 of 64 bytes)";
		return -EINVAL;
	}
	return 1;
}
