/*
 * proxy_codec.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer puts in front of a connection to
 * say whom it carries. Pure: bytes in, a struct out; no allocation, no I/O.
 *
 * The broker reads it first on a listener with proxy_protocol = yes, and
 * uses the source address it names for its per-source limits and its logs.
 */
#ifndef FIELDMQ_BROKER_PROXY_CODEC_H
#define FIELDMQ_BROKER_PROXY_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* The longest v1 header, CRLF included (proxy-protocol.txt 2.1). */
#define BRK_PROXY_V1_MAX 107
/* The longest v2 header we accept: 16 bytes, then addresses and TLVs. */
#define BRK_PROXY_V2_MAX (16 + 512)

enum brk_proxy_family {
	BRK_PROXY_UNSPEC, /* v1 UNKNOWN, v2 LOCAL or a family we do not use */
	BRK_PROXY_INET,
	BRK_PROXY_INET6,
};

/*
 * A parsed header. With family BRK_PROXY_UNSPEC the connection's own
 * addresses stand (a health check of the proxy itself, or UDP / unix
 * sockets); else src / dst hold 4 (INET) or 16 (INET6) bytes in network
 * order and the ports are in host order.
 */
struct brk_proxy_hdr {
	uint8_t version; /* 1 or 2 */
	uint8_t family;	 /* enum brk_proxy_family */
	uint8_t src[16], dst[16];
	uint16_t src_port, dst_port;
};

/*
 * brk_proxy_parse - parse the PROXY header at the start of @buf (@len bytes
 * read so far). Returns the header's length (> 0; the bytes after it are
 * the client's), 0 when more bytes are needed (never once @len reaches
 * BRK_PROXY_V2_MAX), or -EBADMSG: not a PROXY header (the bytes seen so far
 * already differ from both signatures), a malformed one, or one longer than
 * we accept. *out is written only on success.
 */
int brk_proxy_parse(const uint8_t *buf, size_t len, struct brk_proxy_hdr *out);

#endif
