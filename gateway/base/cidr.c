/*
 * cidr.c - address ranges and the loopback test (see cidr.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/base/cidr.h"

int gw_cidr_parse(const char *s, struct gw_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned int max, i;
	long bits;
	char *end;

	memset(out, 0, sizeof(*out));
	if (!n || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	bits = max;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno || *end || bits < 0 || bits > (long)max)
			return -EINVAL;
	}
	out->bits = (uint8_t)bits;
	/* No host bits below the prefix. */
	for (i = (unsigned int)bits; i < max; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL;
	return 0;
}

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The address bytes of @sa as IPv4 (4 bytes) when it is one, mapped or not. */
static const uint8_t *addr_of(const struct sockaddr *sa, int *family)
{
	if (sa->sa_family == AF_INET) {
		*family = AF_INET;
		return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (!memcmp(a, v4mapped, sizeof(v4mapped))) {
			*family = AF_INET;
			return a + 12;
		}
		*family = AF_INET6;
		return a;
	}
	*family = 0;
	return NULL;
}

bool gw_cidr_match(const struct gw_cidr *c, const struct sockaddr *sa)
{
	int family;
	const uint8_t *a = addr_of(sa, &family);
	unsigned int full = c->bits / 8, rest = c->bits % 8;

	if (!a || family != c->family)
		return false;
	if (memcmp(a, c->addr, full))
		return false;
	return !rest || !((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest)));
}

bool gw_sockaddr_loopback(const struct sockaddr *sa)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	int family;
	const uint8_t *a = addr_of(sa, &family);

	if (!a)
		return false;
	if (family == AF_INET)
		return a[0] == 127;
	return !memcmp(a, v6lo, sizeof(v6lo));
}
