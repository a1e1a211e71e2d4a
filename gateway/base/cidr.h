/*
 * cidr.h - address ranges for allow lists ([mqttsn] allow_from, the CoAP
 * server's next) and the loopback test that decides which listeners need
 * authentication. libc only.
 */
#ifndef FIELDMQ_CIDR_H
#define FIELDMQ_CIDR_H

#include <stdbool.h>
#include <stdint.h>

struct sockaddr;

/* An IPv4 or IPv6 network: address and prefix length. */
struct gw_cidr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t bits;	/* prefix length: 0-32 or 0-128 */
	uint8_t addr[16];
};

/*
 * gw_cidr_parse - "10.0.0.0/8", "192.168.1.7" (a /32), "fd00::/8", "::1" (a
 * /128). Host bits set below the prefix are refused ("10.0.0.1/8" is
 * ambiguous: a typo for /32?). 0 or -EINVAL.
 */
int gw_cidr_parse(const char *s, struct gw_cidr *out);

/*
 * Is @sa inside @c? An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports) is matched as the IPv4 address.
 */
bool gw_cidr_match(const struct gw_cidr *c, const struct sockaddr *sa);

/* Is @sa a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104)? */
bool gw_sockaddr_loopback(const struct sockaddr *sa);

#endif
