/*
 * fuzz_proxy.c - the PROXY protocol header parser (broker/proxy_codec.c)
 * under libFuzzer or the corpus replay of `make test`. A header found must
 * lie within the input and parse the same alone; every shorter prefix of it
 * must ask for more (a connection reads it in pieces); nothing longer than
 * BRK_PROXY_V2_MAX may ever ask for more.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/proxy_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct brk_proxy_hdr h, h2;
	size_t i;
	int rc, rc2;

	memset(&h, 0, sizeof(h));
	memset(&h2, 0, sizeof(h2));
	rc = brk_proxy_parse(data, size, &h);
	if (rc != -EBADMSG && rc < 0)
		abort();
	if (rc == 0 && size >= BRK_PROXY_V2_MAX)
		abort();
	if (rc <= 0)
		return 0;
	if ((size_t)rc > size || h.version < 1 || h.version > 2 || h.family > BRK_PROXY_INET6)
		abort();
	rc2 = brk_proxy_parse(data, (size_t)rc, &h2);
	if (rc2 != rc || memcmp(&h, &h2, sizeof(h)))
		abort();
	for (i = 0; i < (size_t)rc; i++)
		if (brk_proxy_parse(data, i, &h2) != 0)
			abort();
	return 0;
}
