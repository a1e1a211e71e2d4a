/*
 * proxy_codec.c - the PROXY protocol header, versions 1 (text) and 2
 * (binary), as HAProxy's doc/proxy-protocol.txt specifies them. See
 * proxy_codec.h. Pure: no allocation, no clock, no logging.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "broker/proxy_codec.h"

static const uint8_t v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char v1_sig[6] = "PROXY ";

/* Do the first @len bytes of @buf agree with @sig (of @n bytes) so far? */
static int prefix_of(const uint8_t *buf, size_t len, const void *sig, size_t n)
{
	return !memcmp(buf, sig, len < n ? len : n);
}

/*
 * One space-terminated field of a v1 line, [*pos, end): its start and length
 * in *f / *flen; *pos moves past the separator. @last: the field ends at
 * @end (the CR) instead of a space. 0, or -EBADMSG (empty, too long).
 */
static int v1_field(const char *line, size_t *pos, size_t end, bool last, const char **f,
		    size_t *flen, size_t max)
{
	size_t i = *pos;

	while (i < end && line[i] != ' ')
		i++;
	if (i == *pos || i - *pos > max || (last ? i != end : i == end))
		return -EBADMSG;
	*f = line + *pos;
	*flen = i - *pos;
	*pos = i + 1;
	return 0;
}

/* An address field of @fam into @out (inet_pton wants a C string: copy it). */
static int v1_addr(const char *f, size_t n, int fam, uint8_t *out)
{
	char tmp[48];
	size_t i;

	if (n >= sizeof(tmp))
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		char ch = f[i];

		if (!((ch >= '0' && ch <= '9') || ch == '.' ||
		      (fam == AF_INET6 &&
		       (ch == ':' || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))))
			return -EBADMSG;
	}
	memcpy(tmp, f, n);
	tmp[n] = 0;
	return inet_pton(fam, tmp, out) == 1 ? 0 : -EBADMSG;
}

static int v1_port(const char *f, size_t n, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	if (n > 5)
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		if (f[i] < '0' || f[i] > '9')
			return -EBADMSG;
		v = v * 10 + (unsigned long)(f[i] - '0');
	}
	if (v > 65535)
		return -EBADMSG;
	*out = (uint16_t)v;
	return 0;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN ...\r\n" (2.1). */
static int parse_v1(const uint8_t *buf, size_t len, struct brk_proxy_hdr *out)
{
	const char *line = (const char *)buf, *f;
	size_t i, end, pos = sizeof(v1_sig), flen;
	struct brk_proxy_hdr h;
	int fam;

	for (i = 0; i < len && i < BRK_PROXY_V1_MAX; i++)
		if (buf[i] == '\n')
			break;
	if (i == len && len < BRK_PROXY_V1_MAX)
		return 0;
	/* No LF within the longest header, or a LF without its CR. */
	if (i >= BRK_PROXY_V1_MAX || i < 1 || buf[i - 1] != '\r')
		return -EBADMSG;
	end = i - 1; /* the CR */
	memset(&h, 0, sizeof(h));
	h.version = 1;
	if (v1_field(line, &pos, end, false, &f, &flen, 7)) {
		/* "PROXY UNKNOWN\r\n": the protocol field may end the line. */
		if (end - pos == 7 && !memcmp(line + pos, "UNKNOWN", 7))
			goto done;
		return -EBADMSG;
	}
	if (flen == 7 && !memcmp(f, "UNKNOWN", 7))
		goto done; /* [2.1] the rest of the line is ignored */
	if (flen == 4 && !memcmp(f, "TCP4", 4)) {
		fam = AF_INET;
		h.family = BRK_PROXY_INET;
	} else if (flen == 4 && !memcmp(f, "TCP6", 4)) {
		fam = AF_INET6;
		h.family = BRK_PROXY_INET6;
	} else {
		return -EBADMSG;
	}
	if (v1_field(line, &pos, end, false, &f, &flen, 45) || v1_addr(f, flen, fam, h.src) ||
	    v1_field(line, &pos, end, false, &f, &flen, 45) || v1_addr(f, flen, fam, h.dst) ||
	    v1_field(line, &pos, end, false, &f, &flen, 5) || v1_port(f, flen, &h.src_port) ||
	    v1_field(line, &pos, end, true, &f, &flen, 5) || v1_port(f, flen, &h.dst_port))
		return -EBADMSG;
done:
	*out = h;
	return (int)(i + 1);
}

/* 16 bytes: signature, version and command, family and transport, length (2.2). */
static int parse_v2(const uint8_t *buf, size_t len, struct brk_proxy_hdr *out)
{
	struct brk_proxy_hdr h;
	size_t n;
	uint8_t cmd, fam, tr;

	if (len < 16)
		return 0;
	if ((buf[12] >> 4) != 2)
		return -EBADMSG; /* [2.2] version 2 only */
	cmd = buf[12] & 0x0F;
	if (cmd > 1)
		return -EBADMSG; /* LOCAL or PROXY; others must be dropped */
	fam = buf[13] >> 4;
	tr = buf[13] & 0x0F;
	n = 16 + ((size_t)buf[14] << 8 | buf[15]);
	if (n > BRK_PROXY_V2_MAX)
		return -EBADMSG;
	if (len < n)
		return 0;
	memset(&h, 0, sizeof(h));
	h.version = 2;
	/* LOCAL: the proxy's own connection (a health check); the addresses are ignored. */
	if (cmd == 1 && tr == 1 && fam == 1) {
		if (n < 16 + 12)
			return -EBADMSG;
		h.family = BRK_PROXY_INET;
		memcpy(h.src, buf + 16, 4);
		memcpy(h.dst, buf + 20, 4);
		h.src_port = (uint16_t)(buf[24] << 8 | buf[25]);
		h.dst_port = (uint16_t)(buf[26] << 8 | buf[27]);
	} else if (cmd == 1 && tr == 1 && fam == 2) {
		if (n < 16 + 36)
			return -EBADMSG;
		h.family = BRK_PROXY_INET6;
		memcpy(h.src, buf + 16, 16);
		memcpy(h.dst, buf + 32, 16);
		h.src_port = (uint16_t)(buf[48] << 8 | buf[49]);
		h.dst_port = (uint16_t)(buf[50] << 8 | buf[51]);
	} else if (fam > 3 || tr > 2) {
		return -EBADMSG;
	}
	/* UNSPEC, DGRAM and unix sockets: the connection's own address stands. */
	*out = h;
	return (int)n;
}

int brk_proxy_parse(const uint8_t *buf, size_t len, struct brk_proxy_hdr *out)
{
	if (!len)
		return 0;
	if (prefix_of(buf, len, v1_sig, sizeof(v1_sig)))
		return len < sizeof(v1_sig) ? 0 : parse_v1(buf, len, out);
	if (prefix_of(buf, len, v2_sig, sizeof(v2_sig)))
		return len < sizeof(v2_sig) ? 0 : parse_v2(buf, len, out);
	return -EBADMSG;
}
