/*
 * test_http.c - the pure HTTP/1.1 request-head parser (broker/http.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/http.h"

static int parse(const char *s, struct brk_http_req *r)
{
	return brk_http_parse_request((const uint8_t *)s, strlen(s), r);
}

static void test_request(void **state)
{
	static const char req[] = "GET /mqtt?a=1 HTTP/1.1\r\nHost: gw\r\n"
				  "Connection:  keep-alive, Upgrade \r\nX-Empty:\r\n\r\nbody";
	struct brk_http_req r;
	const struct gw_slice *v;

	(void)state;
	assert_int_equal(parse(req, &r), (int)strlen(req) - 4);
	assert_true(gw_slice_eq_cstr(r.method, "GET"));
	assert_true(gw_slice_eq_cstr(r.target, "/mqtt?a=1"));
	assert_true(gw_slice_eq_cstr(brk_http_path(r.target), "/mqtt"));
	assert_int_equal(r.minor, 1);
	assert_int_equal(r.n, 3);
	v = brk_http_header(&r, "connection");
	assert_non_null(v);
	assert_true(gw_slice_eq_cstr(*v, "keep-alive, Upgrade"));
	assert_true(brk_http_has_token(*v, "upgrade"));
	assert_true(brk_http_has_token(*v, "KEEP-ALIVE"));
	assert_false(brk_http_has_token(*v, "keep"));
	assert_true(gw_slice_eq_cstr(*brk_http_header(&r, "X-EMPTY"), ""));
	assert_null(brk_http_header(&r, "Upgrade"));
	/* Bare LF line ends, and empty lines before the request line. */
	assert_int_equal(parse("\r\n\nGET / HTTP/1.0\nA: b\n\n", &r), 24);
	assert_int_equal(r.minor, 0);
}

static void test_incomplete(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: gw\r\n\r\n";
	struct brk_http_req r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(req) - 1; i++)
		assert_int_equal(brk_http_parse_request((const uint8_t *)req, i, &r), 0);
	assert_int_equal(parse(req, &r), (int)sizeof(req) - 1);
}

static void test_malformed(void **state)
{
	struct brk_http_req r;
	char many[2048];
	size_t n;
	int i;

	(void)state;
	assert_int_equal(parse("GET  / HTTP/1.1\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("GET / HTTP/1.1 x\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("G(T / HTTP/1.1\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("GET /\x01 HTTP/1.1\r\n\r\n", &r), -EBADMSG);
	/* [RFC 9112 5.1] no blank before the colon; [5.2] no obsolete folding. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nA : b\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", &r), -EBADMSG);
	assert_int_equal(parse("GET / HTTP/1.1\r\nnocolon\r\n\r\n", &r), -EBADMSG);
	n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
	for (i = 0; i <= BRK_HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "H%d: v\r\n", i);
	snprintf(many + n, sizeof(many) - n, "\r\n");
	assert_int_equal(parse(many, &r), -EMSGSIZE);
}

static int basic(const char *v, char *u, size_t uc, char *p, size_t pc)
{
	return brk_http_basic_auth(gw_slice_cstr(v), u, uc, p, pc);
}

/* RFC 7617 section 2: Basic credentials. */
static void test_basic_auth(void **state)
{
	char u[16], p[16];

	(void)state;
	/* "Aladdin:open sesame", the RFC's example. */
	assert_int_equal(basic("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", u, sizeof(u), p, sizeof(p)),
			 0);
	assert_string_equal(u, "Aladdin");
	assert_string_equal(p, "open sesame");
	/* The scheme is case-insensitive; the password may hold colons ("a:b:c"). */
	assert_int_equal(basic("basic  YTpiOmM=", u, sizeof(u), p, sizeof(p)), 0);
	assert_string_equal(u, "a");
	assert_string_equal(p, "b:c");
	/* Empty user and password (":"). */
	assert_int_equal(basic("Basic Og==", u, sizeof(u), p, sizeof(p)), 0);
	assert_string_equal(u, "");
	assert_string_equal(p, "");
	assert_int_equal(basic("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==", u, 16, p, 16), -EBADMSG);
	assert_int_equal(basic("Basic", u, 16, p, 16), -EBADMSG);
	assert_int_equal(basic("Basic YWJj", u, 16, p, 16), -EBADMSG);	   /* "abc": no colon */
	assert_int_equal(basic("Basic YTpi=", u, 16, p, 16), -EBADMSG);	   /* length not 4k */
	assert_int_equal(basic("Basic YT=i", u, 16, p, 16), -EBADMSG);	   /* data after '=' */
	assert_int_equal(basic("Basic YTpi!!==", u, 16, p, 16), -EBADMSG); /* not base64 */
	assert_int_equal(basic("Basic YQA6Yg==", u, 16, p, 16), -EBADMSG); /* "a\0:b" */
	/* "Aladdin" does not fit in 4 bytes, "open sesame" not in 8. */
	assert_int_equal(basic("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", u, 4, p, 16), -EMSGSIZE);
	assert_int_equal(basic("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", u, 16, p, 8), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_basic_auth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
