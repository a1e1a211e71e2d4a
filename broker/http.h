/*
 * http.h - a pure HTTP/1.1 request-head parser (RFC 9112): the WebSocket
 * upgrade of the broker's ws:// and wss:// listeners, and the metrics
 * endpoint's requests later. Bytes in, slices out: no allocation, no I/O.
 */
#ifndef FIELDMQ_BROKER_HTTP_H
#define FIELDMQ_BROKER_HTTP_H

#include "gateway/base/base.h"

/* Header lines kept per request; a request with more is refused (-EMSGSIZE). */
#define BRK_HTTP_MAX_HEADERS 32

struct brk_http_header {
	struct gw_slice name, value; /* value without surrounding blanks */
};

struct brk_http_req {
	struct gw_slice method;
	struct gw_slice target; /* the request-target as sent: "/mqtt?x=1" */
	uint8_t minor;		/* HTTP/1.<minor> */
	unsigned int n;
	struct brk_http_header h[BRK_HTTP_MAX_HEADERS];
};

/*
 * brk_http_parse_request - parse the request line and header fields at the
 * start of @buf (@len bytes), up to the empty line that ends them. Accepts
 * CRLF and bare LF line ends; obsolete line folding, a blank before a
 * header's colon, control characters and a version other than HTTP/1.x are
 * malformed. Slices in *@out point into @buf.
 * Returns the length of the head (> 0; a body, if any, follows), 0 when the
 * empty line has not arrived yet, -EBADMSG for a malformed head, -EMSGSIZE
 * for more than BRK_HTTP_MAX_HEADERS header lines.
 */
int brk_http_parse_request(const uint8_t *buf, size_t len, struct brk_http_req *out);

/* The value of the first header named @name (case-insensitive), or NULL. */
const struct gw_slice *brk_http_header(const struct brk_http_req *r, const char *name);

/*
 * Does the comma-separated list @v (e.g. "keep-alive, Upgrade") hold the
 * token @tok, compared case-insensitively? Blanks around items are ignored.
 */
bool brk_http_has_token(struct gw_slice v, const char *tok);

/*
 * brk_http_basic_auth - the user and password of an Authorization value
 * "Basic <base64(user:password)>" (RFC 7617: the user ends at the first
 * colon), each NUL-terminated into @user / @pass (@ucap / @pcap bytes).
 * Returns 0, -EBADMSG (another scheme, bad base64, no colon, a NUL or
 * control character), -EMSGSIZE (does not fit).
 */
int brk_http_basic_auth(struct gw_slice v, char *user, size_t ucap, char *pass, size_t pcap);

/* The path of a request-target: up to '?' or '#'. */
struct gw_slice brk_http_path(struct gw_slice target);

#endif
