/*
 * fuzz_acl.c - brk_acl_parse (broker/acl.c) on arbitrary text: the acl_file
 * is read at start and on SIGHUP. A parsed ACL is then expanded for a client
 * (patterns with %c and %u) and asked about a topic and a filter.
 */
#include <stdint.h>
#include <stddef.h>

#include "broker/broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_slice user = gw_slice_cstr("u1");
	struct brk_acl_view *v = NULL;
	struct brk_acl *acl = NULL;
	unsigned int line = 0;
	char err[128];

	if (brk_acl_parse((const char *)data, size, &acl, &line, err, sizeof(err)))
		return 0;
	if (brk__acl_view_new(acl, gw_slice_cstr("c1"), &user, &v) == 0) {
		(void)brk__acl_allowed(v, gw_slice_cstr("a/c1/u1/b"), BRK_ACL_READ);
		(void)brk__acl_allowed(v, gw_slice_cstr("$SYS/x"), BRK_ACL_WRITE);
		(void)brk__acl_sub_allowed(v, gw_slice_cstr("$share/g/a/+/#"));
		gw_free(v);
	}
	brk_acl_free(acl);
	return 0;
}
