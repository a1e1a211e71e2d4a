/*
 * test_passwd.c - the password_file parser and the hash checks, with lines
 * the real mosquitto_passwd (Debian's mosquitto 2.0.11) wrote:
 *   mosquitto_passwd -b f alice secret                      ($7$, 101 iterations)
 *   mosquitto_passwd -H sha512 -b f bob hunter2              ($6$)
 *   mosquitto_passwd -H sha512-pbkdf2 -I 1000 -b f carol 'pässwörd:with$'
 *   mosquitto_passwd -b f dave ''
 * Runs against mbedTLS 2.28 and 3.6 (make test-mbedtls3).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"

#define S(x) gw_slice_cstr(x)

static const char file[] =
	"# made by mosquitto_passwd\n"
	"alice:$7$101$HRsTWWcik70Ldknk$sO1jgwmoG5QrwhBlP5chn4WqR+KwvHx7qy5bp660bnTybVzoV4CvokZE6b+"
	"yKCOO5mRQVdGdS2yMFIZXyzrj/A==\n"
	"\n"
	"bob:$6$tfXvbutU6M/+ovuM$Qe4rQn52XFkbQRzJWlDT8wxFH5ka9vl2/fMed+"
	"2RxwLazVRt8tXzp20u5OtKbILTZdR+/ldtlImKbjvH6HE+KQ==\r\n"
	"carol:$7$1000$eZc3Z8qWCIm5Lk2r$XD4fkj18BgZtSD4YyP9baUQrWeUDcwDR8ycqPtTNv9sYYuHp1w1HnCU26X0L2"
	"vsl3vfc7b/Zo3d5NtCMOaHJuA==\n"
	"  dave :$7$101$nEwfbHCdA4//G8pU$PmoySV8NrVC4Xl+XZ4FltJRTNuMBVf7IYv/"
	"rLkszelFbdkk3s3/NxK4I85HGiM4+q3Pfs3HpJNdhMd7SXMfKlA==   \n";

static struct brk_passwd *load(void)
{
	struct brk_passwd *pw = NULL;
	unsigned int line = 0;
	char err[128];

	assert_int_equal(brk_passwd_parse(file, sizeof(file) - 1, &pw, &line, err, sizeof(err)), 0);
	return pw;
}

static bool check(const struct brk_passwd *pw, const char *user, const char *pass)
{
	const struct brk_pw_entry *e = brk__passwd_find(pw, S(user));

	assert_non_null(e);
	return brk__passwd_verify(e, (const uint8_t *)pass, strlen(pass));
}

static void test_mosquitto_passwd_lines(void **state)
{
	struct brk_passwd *pw = load();

	(void)state;
	assert_int_equal(brk_passwd_count(pw), 4);
	assert_true(check(pw, "alice", "secret"));
	assert_false(check(pw, "alice", "Secret"));
	assert_false(check(pw, "alice", "secret "));
	assert_false(check(pw, "alice", ""));
	assert_true(check(pw, "bob", "hunter2"));
	assert_false(check(pw, "bob", "hunter3"));
	assert_true(check(pw, "carol", "pässwörd:with$"));
	assert_false(check(pw, "carol", "pässwörd"));
	assert_true(check(pw, "dave", ""));
	assert_false(check(pw, "dave", "x"));
	assert_null(brk__passwd_find(pw, S("mallory")));
	assert_null(brk__passwd_find(pw, S("alic")));
	brk_passwd_free(pw);
	brk_passwd_free(NULL);
	assert_int_equal(gw_mem_used(), 0);
}

/* brk_passwd_check: the public check the HTTP listener's Basic authentication uses. */
static void test_public_check(void **state)
{
	struct brk_passwd *pw = load();

	(void)state;
	assert_int_equal(brk_passwd_check(pw, "alice", "secret"), 0);
	assert_int_equal(brk_passwd_check(pw, "carol", "pässwörd:with$"), 0);
	assert_int_equal(brk_passwd_check(pw, "dave", ""), 0);
	assert_int_equal(brk_passwd_check(pw, "alice", "secret "), -EACCES);
	/* Unknown users, even with a password that would match the dummy's cost. */
	assert_int_equal(brk_passwd_check(pw, "mallory", "secret"), -EACCES);
	assert_int_equal(brk_passwd_check(pw, "", ""), -EACCES);
	assert_int_equal(brk_passwd_check(NULL, "alice", "secret"), -EACCES);
	brk_passwd_free(pw);
	assert_int_equal(gw_mem_used(), 0);
}

static void expect_bad(const char *text, unsigned int want_line, const char *want)
{
	struct brk_passwd *pw = (struct brk_passwd *)1;
	unsigned int line = 0;
	char err[160];

	assert_int_equal(brk_passwd_parse(text, strlen(text), &pw, &line, err, sizeof(err)),
			 -EINVAL);
	assert_null(pw);
	assert_int_equal(line, want_line);
	if (!strstr(err, want))
		fail_msg("error '%s' lacks '%s'", err, want);
	assert_int_equal(gw_mem_used(), 0);
}

#define H7 \
	"$7$101$HRsTWWcik70Ldknk$sO1jgwmoG5QrwhBlP5chn4WqR+KwvHx7qy5bp660bnTybVzoV4CvokZE6b+yKCOO5mRQVdGdS2yMFIZXyzrj/A=="

static void test_errors_with_line_numbers(void **state)
{
	(void)state;
	expect_bad("# c\nalice:secret\n", 2, "not a hashed password");
	expect_bad("alice\n", 1, "expected USER:HASH");
	expect_bad(":" H7 "\n", 1, "empty user name");
	expect_bad("a:" H7 "\n\nb:$7$101$!!!$abc\n", 3, "bad salt");
	expect_bad("a:$7$101$HRsTWWcik70Ldknk$c2hvcnQ=\n", 1, "bad hash");
	expect_bad("a:$7$0$HRsTWWcik70Ldknk$c2hvcnQ=\n", 1, "iteration");
	expect_bad("a:$7$99999999999999999999$HRsTWWcik70Ldknk$c2hvcnQ=\n", 1, "iteration");
	expect_bad("a:$7$1x$HRsTWWcik70Ldknk$c2hvcnQ=\n", 1, "iteration");
	expect_bad("a:$6$HRsTWWcik70Ldknk\n", 1, "bad hash");
	expect_bad("a:$5$x$y\n", 1, "not a hashed password");
	expect_bad("a:" H7 "$x\n", 1, "too many");
	expect_bad("a:" H7 "\na:" H7 "\n", 2, "appears twice");
	expect_bad("a\0b:" H7 "\n", 1, "expected USER:HASH");
}

static void test_empty_file(void **state)
{
	struct brk_passwd *pw = NULL;
	unsigned int line = 9;
	char err[64];

	(void)state;
	assert_int_equal(brk_passwd_parse("", 0, &pw, &line, err, sizeof(err)), 0);
	assert_int_equal(brk_passwd_count(pw), 0);
	assert_null(brk__passwd_find(pw, S("a")));
	brk_passwd_free(pw);
	assert_int_equal(gw_mem_used(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mosquitto_passwd_lines),
		cmocka_unit_test(test_public_check),
		cmocka_unit_test(test_errors_with_line_numbers),
		cmocka_unit_test(test_empty_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
