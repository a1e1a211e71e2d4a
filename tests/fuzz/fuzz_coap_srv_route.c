/*
 * fuzz_coap_srv_route.c - the CoAP server's request router (coap_srv_uri.c)
 * under libFuzzer (or the corpus replay of `make test`). The input is
 * "M O" (method and Observe as two bytes) then options separated by '\n':
 * Uri-Path segments, and Uri-Query items written with a leading '?'. The
 * router must never read past an option, and what it accepts must hold:
 * a publish topic has no wildcard and matches itself as a filter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_srv_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXOPT 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_slice path[MAXOPT], query[MAXOPT];
	char buf[COAPSRV_TOPIC_MAX];
	struct coapsrv_raw raw = { 0 };
	struct coapsrv_req req;
	size_t i, start;
	int rc;

	if (size < 2)
		return 0;
	raw.method = data[0] & 7;
	raw.observe = data[1] == 0xff ? -1 : data[1] & 3;
	raw.path = path;
	raw.query = query;
	for (i = start = 2; i <= size; i++) {
		struct gw_slice s;

		if (i < size && data[i] != '\n')
			continue;
		s = (struct gw_slice){ data + start, i - start };
		if (s.len && s.p[0] == '?') {
			if (raw.n_query < MAXOPT)
				query[raw.n_query++] = (struct gw_slice){ s.p + 1, s.len - 1 };
		} else if (raw.n_path < MAXOPT) {
			path[raw.n_path++] = s;
		}
		start = i + 1;
	}
	rc = coapsrv_route(&raw, buf, sizeof(buf), &req);
	if (rc) {
		if (rc > 0 || !req.code || !req.reason)
			abort();
		return 0;
	}
	if (req.op >= __COAPSRV_OP_MAX || req.qos > 2)
		abort();
	if (req.op == COAPSRV_OP_PUBLISH) {
		if (!req.topic.len || memchr(req.topic.p, '+', req.topic.len) ||
		    memchr(req.topic.p, '#', req.topic.len))
			abort();
		if (!coapsrv_topic_match(req.topic, req.topic))
			abort();
	}
	if (req.op == COAPSRV_OP_SUBSCRIBE || req.op == COAPSRV_OP_UNSUBSCRIBE)
		(void)coapsrv_topic_match(req.topic, GW_SLICE_STR("a/b/c"));
	return 0;
}
