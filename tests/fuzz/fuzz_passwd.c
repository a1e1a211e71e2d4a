/*
 * fuzz_passwd.c - brk_passwd_parse (broker/passwd.c, passwd_codec.c) on
 * arbitrary text: the password_file is read at start and on SIGHUP. A parsed
 * file is asked for a user; a $6$ entry found is verified (cheap), a $7$ one
 * only when its iteration count is small, to keep runs fast.
 */
#include <stdint.h>
#include <stddef.h>

#include "broker/broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct brk_pw_entry *e;
	struct brk_passwd *pw = NULL;
	unsigned int line = 0;
	char err[128];

	if (brk_passwd_parse((const char *)data, size, &pw, &line, err, sizeof(err)))
		return 0;
	e = brk__passwd_find(pw, gw_slice_cstr("a"));
	if (e && (e->kind == BRK_PW_SHA512 || e->iterations <= 1000))
		(void)brk__passwd_verify(e, (const uint8_t *)"secret", 6);
	brk_passwd_free(pw);
	return 0;
}
