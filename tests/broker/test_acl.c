/*
 * test_acl.c - the acl_file parser (every line kind, every error with its
 * line number), filter matching and coverage, and the rules one client gets
 * (user sections, %c / %u patterns, deny winning over grants).
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

static struct brk_acl *parse_ok(const char *text)
{
	struct brk_acl *acl = NULL;
	unsigned int line = 99;
	char err[256];
	int rc = brk_acl_parse(text, strlen(text), &acl, &line, err, sizeof(err));

	if (rc)
		print_error("unexpected error line %u: %s\n", line, err);
	assert_int_equal(rc, 0);
	assert_int_equal(line, 0);
	assert_non_null(acl);
	return acl;
}

/* The text fails at @want_line with a message containing @want. */
static void parse_bad(const char *text, size_t len, unsigned int want_line, const char *want)
{
	struct brk_acl *acl = (struct brk_acl *)1;
	unsigned int line = 0;
	char err[256];

	assert_int_equal(brk_acl_parse(text, len, &acl, &line, err, sizeof(err)), -EINVAL);
	assert_null(acl);
	assert_int_equal(line, want_line);
	if (!strstr(err, want))
		print_error("'%s' does not contain '%s'\n", err, want);
	assert_non_null(strstr(err, want));
	assert_int_equal(gw_mem_used(), 0);
}

#define BAD(text, line, want) parse_bad(text, sizeof(text) - 1, line, want)

static void test_parse_lines(void **state)
{
	struct brk_acl *acl;

	(void)state;
	acl = parse_ok("# a comment\n"
		       "\n"
		       "   \t\n"
		       "topic a/#\n"
		       "topic read r/+\r\n"
		       "  topic   write  w/x  \n"
		       "topic readwrite rw\n"
		       "topic deny a/secret\n"
		       "  # indented comment\n"
		       "user alice\n"
		       "topic read alice/#\n"
		       "topic read with space/x\n"
		       "user bob smith\n"
		       "topic write bob\n"
		       "pattern read p/%c/%u/#\n"
		       "pattern deny %c\n"
		       "pattern q/%u"); /* no final newline */
	assert_int_equal(acl->n, 11);
	assert_string_equal(acl->rules[0].filter, "a/#");
	assert_int_equal(acl->rules[0].access, BRK_ACL_READ | BRK_ACL_WRITE);
	assert_null(acl->rules[0].user);
	assert_string_equal(acl->rules[1].filter, "r/+");
	assert_int_equal(acl->rules[1].access, BRK_ACL_READ);
	assert_string_equal(acl->rules[2].filter, "w/x");
	assert_int_equal(acl->rules[2].len, 3);
	assert_int_equal(acl->rules[2].access, BRK_ACL_WRITE);
	assert_int_equal(acl->rules[3].access, BRK_ACL_READ | BRK_ACL_WRITE);
	assert_int_equal(acl->rules[4].access, BRK_ACL_DENY);
	assert_null(acl->rules[4].user);
	assert_string_equal(acl->rules[5].user, "alice");
	assert_string_equal(acl->rules[6].filter, "with space/x");
	assert_string_equal(acl->rules[7].user, "bob smith");
	assert_false(acl->rules[7].pattern);
	assert_true(acl->rules[8].pattern);
	assert_null(acl->rules[8].user); /* patterns apply to everyone, even after user */
	assert_true(acl->rules[8].pat_c && acl->rules[8].pat_u);
	assert_int_equal(acl->rules[9].access, BRK_ACL_DENY);
	assert_true(acl->rules[9].pat_c && !acl->rules[9].pat_u);
	assert_int_equal(acl->rules[10].access, BRK_ACL_READ | BRK_ACL_WRITE);
	assert_true(acl->pat_c && acl->pat_u);
	brk_acl_free(acl);

	acl = parse_ok("");
	assert_int_equal(acl->n, 0);
	brk_acl_free(acl);
	brk_acl_free(NULL);
	assert_int_equal(gw_mem_used(), 0);
}

static void test_parse_errors(void **state)
{
	char big[BRK_ACL_MAX_LINE + 40];

	(void)state;
	BAD("topic a\nfoo bar\n", 2, "'foo': unknown keyword");
	BAD("Topic a\n", 1, "unknown keyword");
	BAD("topic\n", 1, "expected topic [read|write|readwrite|deny] TOPIC");
	BAD("# c\npattern   \n", 2, "expected pattern");
	BAD("\n\ntopic reed a/b\n", 3, "'reed': unknown access");
	BAD("pattern rw a\n", 1, "'rw': unknown access");
	BAD("topic read a/#/b\n", 1, "'a/#/b': invalid topic filter");
	BAD("topic a+\n", 1, "invalid topic filter");
	BAD("topic read\n", 1, "'read': expected a topic after the access word");
	BAD("topic a\npattern deny \n", 2, "'deny': expected a topic");
	BAD("user\n", 1, "expected user USERNAME");
	BAD("topic a\nuser   \t\n", 2, "expected user USERNAME");
	BAD("topic a\0b\n", 1, "NUL byte");
	memset(big, 'a', sizeof(big));
	memcpy(big, "topic a\ntopic ", 14);
	big[sizeof(big) - 1] = '\n';
	parse_bad(big, sizeof(big), 2, "line too long");
	/* The longest line allowed is fine. */
	big[8 + BRK_ACL_MAX_LINE] = '\n';
	{
		struct brk_acl *acl = NULL;
		unsigned int line;
		char err[128];

		assert_int_equal(
			brk_acl_parse(big, 8 + BRK_ACL_MAX_LINE + 1, &acl, &line, err, sizeof(err)),
			0);
		assert_int_equal(acl->n, 2);
		assert_int_equal(acl->rules[1].len, BRK_ACL_MAX_LINE - 6);
		brk_acl_free(acl);
	}
}

static void test_parse_nomem(void **state)
{
	struct brk_acl *acl;
	unsigned int line, i;
	char err[64];
	static const char text[] = "topic a\ntopic b\ntopic c\n";

	(void)state;
	for (i = 1; i <= 3; i++) {
		gw_mem_fail_after(i);
		assert_int_equal(
			brk_acl_parse(text, sizeof(text) - 1, &acl, &line, err, sizeof(err)),
			-ENOMEM);
		assert_null(acl);
		assert_int_equal(gw_mem_used(), 0);
	}
	gw_mem_fail_after(0);
}

static void test_match(void **state)
{
	(void)state;
	assert_true(brk__acl_match(S("a/b"), S("a/b")));
	assert_false(brk__acl_match(S("a/b"), S("a/c")));
	assert_false(brk__acl_match(S("a/b"), S("a/bc")));
	assert_false(brk__acl_match(S("a/b"), S("a")));
	assert_false(brk__acl_match(S("a"), S("a/b")));
	assert_true(brk__acl_match(S("a/+"), S("a/b")));
	assert_true(brk__acl_match(S("a/+"), S("a/")));
	assert_false(brk__acl_match(S("a/+"), S("a")));
	assert_false(brk__acl_match(S("a/+"), S("a/b/c")));
	assert_true(brk__acl_match(S("a/#"), S("a")));
	assert_true(brk__acl_match(S("a/#"), S("a/b/c")));
	assert_false(brk__acl_match(S("a/#"), S("ab")));
	assert_true(brk__acl_match(S("#"), S("a/b")));
	assert_true(brk__acl_match(S("+/+"), S("/a")));
	assert_true(brk__acl_match(S("+/b/+"), S("x/b/y")));
	/* [MQTT-4.7.2-1] */
	assert_false(brk__acl_match(S("#"), S("$SYS/x")));
	assert_false(brk__acl_match(S("+/x"), S("$SYS/x")));
	assert_true(brk__acl_match(S("$SYS/#"), S("$SYS/x")));
	assert_true(brk__acl_match(S("a/#"), S("a/$x")));
}

static void test_covers(void **state)
{
	(void)state;
	assert_true(brk__acl_covers(S("a/#"), S("a/+/c")));
	assert_true(brk__acl_covers(S("a/#"), S("a")));
	assert_true(brk__acl_covers(S("a/#"), S("a/#")));
	assert_true(brk__acl_covers(S("a/#"), S("a/b/#")));
	assert_false(brk__acl_covers(S("a/+"), S("a/#")));
	assert_false(brk__acl_covers(S("a/b/#"), S("a/#"))); /* "a/#" matches "a/c" */
	assert_true(brk__acl_covers(S("a/+"), S("a/+")));
	assert_true(brk__acl_covers(S("a/+"), S("a/b")));
	assert_false(brk__acl_covers(S("a/+"), S("a")));
	assert_false(brk__acl_covers(S("a/+"), S("a/b/c")));
	assert_false(brk__acl_covers(S("a/b"), S("a/+")));
	assert_true(brk__acl_covers(S("a/b"), S("a/b")));
	assert_false(brk__acl_covers(S("a/b"), S("a/bc")));
	assert_false(brk__acl_covers(S("a"), S("a/b")));
	assert_true(brk__acl_covers(S("+/+/c"), S("a/+/c")));
	assert_false(brk__acl_covers(S("+/+/c"), S("a/+/#")));
	assert_true(brk__acl_covers(S("#"), S("#")));
	assert_true(brk__acl_covers(S("#"), S("+/x")));
	/* $ topics: "#" and "+" do not reach them; an explicit $ rule does. */
	assert_false(brk__acl_covers(S("#"), S("$SYS/#")));
	assert_false(brk__acl_covers(S("+/#"), S("$SYS/x")));
	assert_true(brk__acl_covers(S("$SYS/#"), S("$SYS/broker/+")));
	assert_false(brk__acl_covers(S("$SYS/#"), S("#")));
}

static struct brk_acl_view *view(const struct brk_acl *acl, const char *id, const char *user)
{
	struct gw_slice u = S(user);
	struct brk_acl_view *v = NULL;

	assert_int_equal(brk__acl_view_new(acl, S(id), user ? &u : NULL, &v), 0);
	assert_non_null(v);
	return v;
}

#define R BRK_ACL_READ
#define W BRK_ACL_WRITE

static void test_view_users(void **state)
{
	struct brk_acl *acl = parse_ok("topic read pub/#\n"
				       "topic readwrite $SYS/#\n"
				       "topic deny pub/secret\n"
				       "user alice\n"
				       "topic alice/#\n"
				       "user bob\n"
				       "topic write bob/in\n");
	struct brk_acl_view *anon = view(acl, "c1", NULL), *alice = view(acl, "c2", "alice"),
			    *bob = view(acl, "c3", "bob"), *eve = view(acl, "c4", "eve");

	(void)state;
	/* Every client gets the rules before any user line. */
	assert_true(brk__acl_allowed(anon, S("pub/x"), R));
	assert_false(brk__acl_allowed(anon, S("pub/x"), W));
	assert_true(brk__acl_allowed(eve, S("pub/a/b"), R));
	assert_true(brk__acl_allowed(alice, S("pub/x"), R));
	/* Deny wins over the grant of pub/#. */
	assert_false(brk__acl_allowed(alice, S("pub/secret"), R));
	assert_true(anon->has_deny);
	/* User sections. */
	assert_true(brk__acl_allowed(alice, S("alice/x"), R));
	assert_true(brk__acl_allowed(alice, S("alice/x"), W));
	assert_false(brk__acl_allowed(bob, S("alice/x"), R));
	assert_false(brk__acl_allowed(anon, S("alice/x"), R));
	assert_true(brk__acl_allowed(bob, S("bob/in"), W));
	assert_false(brk__acl_allowed(bob, S("bob/in"), R));
	assert_false(brk__acl_allowed(alice, S("bob/in"), W));
	/* Nothing granted: refused. */
	assert_false(brk__acl_allowed(eve, S("other"), R));
	assert_false(brk__acl_allowed(eve, S("other"), W));
	/* Subscriptions: covered by a read rule and by no deny rule. */
	assert_true(brk__acl_sub_allowed(anon, S("pub/#")));
	assert_true(brk__acl_sub_allowed(anon, S("pub/+/x")));
	assert_false(brk__acl_sub_allowed(anon, S("pub/secret")));
	assert_false(brk__acl_sub_allowed(anon, S("#")));
	assert_false(brk__acl_sub_allowed(anon, S("alice/#")));
	assert_true(brk__acl_sub_allowed(alice, S("alice/#")));
	assert_true(brk__acl_sub_allowed(alice, S("$share/g/alice/+")));
	assert_false(brk__acl_sub_allowed(bob, S("$share/g/alice/+")));
	assert_false(brk__acl_sub_allowed(bob, S("bob/in"))); /* write only */
	assert_true(brk__acl_sub_allowed(bob, S("$SYS/#")));
	gw_free(anon);
	gw_free(alice);
	gw_free(bob);
	gw_free(eve);
	brk_acl_free(acl);
	assert_int_equal(gw_mem_used(), 0);
}

static void test_view_patterns(void **state)
{
	struct brk_acl *acl = parse_ok("topic read public/#\n"
				       "pattern readwrite dev/%c/#\n"
				       "pattern read users/%u/+\n"
				       "pattern deny dev/%c/locked\n"
				       "pattern write %%/%u%c\n");
	struct brk_acl_view *a = view(acl, "d1", NULL), *b = view(acl, "d2", "ann");
	struct brk_acl_view *wild;

	(void)state;
	/* 2 topic-independent rules + %c patterns; the %u ones need a user name. */
	assert_int_equal(a->n, 3);
	assert_int_equal(b->n, 5);
	assert_true(brk__acl_allowed(a, S("dev/d1/x"), W));
	assert_false(brk__acl_allowed(a, S("dev/d2/x"), W));
	assert_false(brk__acl_allowed(a, S("dev/d1/locked"), W));
	assert_false(brk__acl_allowed(a, S("users//x"), R)); /* %u without a user name */
	assert_true(brk__acl_allowed(b, S("users/ann/x"), R));
	assert_false(brk__acl_allowed(b, S("users/bob/x"), R));
	assert_true(brk__acl_allowed(b, S("%%/annd2"), W)); /* only %c and %u are replaced */
	assert_true(brk__acl_sub_allowed(b, S("dev/d2/+/y")));
	assert_false(brk__acl_sub_allowed(b, S("dev/d2/locked")));
	assert_true(brk__acl_sub_allowed(b, S("dev/d2/#"))); /* the deny is left to delivery */
	assert_false(brk__acl_sub_allowed(b, S("dev/+/x")));
	gw_free(a);
	gw_free(b);
	/* A wildcard in the client id would widen the patterns: nothing at all. */
	wild = view(acl, "#", NULL);
	assert_int_equal(wild->n, 0);
	assert_false(brk__acl_allowed(wild, S("public/x"), R));
	gw_free(wild);
	wild = view(acl, "ok", "a+b");
	assert_int_equal(wild->n, 0);
	gw_free(wild);
	brk_acl_free(acl);

	/* Without patterns, a wildcard in the id changes nothing. */
	acl = parse_ok("topic read public/#\n");
	wild = view(acl, "a+", "b#");
	assert_int_equal(wild->n, 1);
	assert_false(wild->has_deny);
	gw_free(wild);
	brk_acl_free(acl);
	assert_int_equal(gw_mem_used(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_lines),   cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_nomem),   cmocka_unit_test(test_match),
		cmocka_unit_test(test_covers),	      cmocka_unit_test(test_view_users),
		cmocka_unit_test(test_view_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
