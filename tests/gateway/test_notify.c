/*
 * test_notify.c - the pure parts of gateway/notify.c: NOTIFY_SOCKET names
 * (path, abstract, refused), WATCHDOG_USEC/WATCHDOG_PID, the STATUS= text.
 * The datagrams themselves are checked against a real socket by
 * tests/integration/test_notify.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/notify.h"

static void test_addr(void **state)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	char longname[200];

	(void)state;
	assert_int_equal(gw_notify_addr("/run/systemd/notify", &sa, &len), 0);
	assert_int_equal(sa.sun_family, AF_UNIX);
	assert_string_equal(sa.sun_path, "/run/systemd/notify");
	/* A path is passed with its terminating NUL. */
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 20);

	/* "@name": abstract, a leading NUL and no terminator. */
	assert_int_equal(gw_notify_addr("@sd-notify", &sa, &len), 0);
	assert_int_equal(sa.sun_path[0], '\0');
	assert_memory_equal(sa.sun_path + 1, "sd-notify", 9);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 10);

	assert_int_equal(gw_notify_addr(NULL, &sa, &len), -EINVAL);
	assert_int_equal(gw_notify_addr("", &sa, &len), -EINVAL);
	assert_int_equal(gw_notify_addr("@", &sa, &len), -EINVAL);
	assert_int_equal(gw_notify_addr("/", &sa, &len), -EINVAL);
	assert_int_equal(gw_notify_addr("run/notify", &sa, &len), -EINVAL);

	/* sun_path is 108 bytes: a path of 107 fits with its NUL, 108 does not; "@" + 107 fits. */
	memset(longname, 'a', sizeof(longname));
	longname[0] = '/';
	longname[107] = '\0';
	assert_int_equal(gw_notify_addr(longname, &sa, &len), 0);
	longname[107] = 'a';
	longname[108] = '\0';
	assert_int_equal(gw_notify_addr(longname, &sa, &len), -ENAMETOOLONG);
	longname[0] = '@';
	assert_int_equal(gw_notify_addr(longname, &sa, &len), 0);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 108);
	longname[108] = 'a';
	longname[109] = '\0';
	assert_int_equal(gw_notify_addr(longname, &sa, &len), -ENAMETOOLONG);
}

static void test_watchdog(void **state)
{
	(void)state;
	assert_int_equal(gw_notify_watchdog_usec("30000000", NULL, 42), 30000000);
	assert_int_equal(gw_notify_watchdog_usec("30000000", "", 42), 30000000);
	assert_int_equal(gw_notify_watchdog_usec("30000000", "42", 42), 30000000);
	/* Meant for another process (a child inherits the environment). */
	assert_int_equal(gw_notify_watchdog_usec("30000000", "41", 42), 0);
	assert_int_equal(gw_notify_watchdog_usec("30000000", "x", 42), 0);
	assert_int_equal(gw_notify_watchdog_usec(NULL, "42", 42), 0);
	assert_int_equal(gw_notify_watchdog_usec("", NULL, 42), 0);
	assert_int_equal(gw_notify_watchdog_usec("-5", NULL, 42), 0);
	assert_int_equal(gw_notify_watchdog_usec("12s", NULL, 42), 0);
	assert_int_equal(gw_notify_watchdog_usec("99999999999999999999999", NULL, 42), 0);
	/* 64-bit on every CPU (armhf's long is 32 bits). */
	assert_true(gw_notify_watchdog_usec("5000000000", NULL, 42) == 5000000000ULL);
}

static void test_state_text(void **state)
{
	char buf[128];

	(void)state;
	gw_notify_format_state(buf, sizeof(buf), 0, 0, -1, 0);
	assert_string_equal(buf, "0/0 devices online, uplink off");
	gw_notify_format_state(buf, sizeof(buf), 3, 4, 1, 12);
	assert_string_equal(buf, "3/4 devices online, uplink connected, 12 queued");
	gw_notify_format_state(buf, sizeof(buf), 4, 4, 0, 5000000000ULL);
	assert_string_equal(buf, "4/4 devices online, uplink disconnected, 5000000000 queued");
	/* Truncated, never overrun. */
	gw_notify_format_state(buf, 8, 4, 4, 0, 1);
	assert_string_equal(buf, "4/4 dev");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_watchdog),
		cmocka_unit_test(test_state_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
