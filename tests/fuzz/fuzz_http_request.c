/*
 * fuzz_http_request.c - the HTTP/1.1 request-head parser (broker/http.c) and
 * the WebSocket upgrade check (broker/ws.c) under libFuzzer or the corpus
 * replay of `make test`. A head that parses has its slices inside the input,
 * does not parse one byte shorter, and gets a bounded upgrade response; its
 * Authorization header, if any, goes through the Basic credentials decoder
 * (the HTTP listener's), whose strings are NUL-terminated within their
 * buffers. The whole input is also tried as a credentials value.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(struct gw_slice s, const uint8_t *data, size_t n)
{
	if (s.len && (s.p < data || s.p + s.len > data + n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct brk_http_req req, req2;
	char resp[512];
	size_t resp_len = 0;
	unsigned int i;
	int rc, rc2;

	const struct gw_slice *auth;
	char user[64], pass[64];

	if (!brk_http_basic_auth((struct gw_slice){ data, size }, user, sizeof(user), pass,
				 sizeof(pass)) &&
	    (strlen(user) >= sizeof(user) || strlen(pass) >= sizeof(pass)))
		abort();
	rc = brk_http_parse_request(data, size, &req);
	if (rc <= 0)
		return 0;
	auth = brk_http_header(&req, "Authorization");
	if (auth && !brk_http_basic_auth(*auth, user, sizeof(user), pass, sizeof(pass)) &&
	    (strlen(user) >= sizeof(user) || strlen(pass) >= sizeof(pass)))
		abort();
	if ((size_t)rc > size || req.n > BRK_HTTP_MAX_HEADERS)
		abort();
	inside(req.method, data, (size_t)rc);
	inside(req.target, data, (size_t)rc);
	for (i = 0; i < req.n; i++) {
		inside(req.h[i].name, data, (size_t)rc);
		inside(req.h[i].value, data, (size_t)rc);
	}
	/* The head ends with its last line feed: one byte less is not a head yet. */
	rc2 = brk_http_parse_request(data, (size_t)rc - 1, &req2);
	if (rc2 > 0)
		abort();
	rc2 = brk_ws_handshake(&req, "/mqtt", resp, sizeof(resp), &resp_len);
	if (rc2 == -EMSGSIZE || resp_len == 0 || resp_len >= sizeof(resp) ||
	    memcmp(resp, "HTTP/1.1 ", 9))
		abort();
	return 0;
}
