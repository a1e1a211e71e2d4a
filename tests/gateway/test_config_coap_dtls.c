/*
 * test_config_coap_dtls.c - a coaps:// device on a build whose libcoap has no
 * DTLS: --check-config (gw_config_load) refuses it and says why. The DTLS
 * probe (ad_coap_has_dtls, adapters/coap/coap_uv.c) is replaced at link time
 * (-Wl,--wrap, test_config_coap_dtls.ldflags), so both answers are tested
 * on one machine; build/notls (COAP_PC=libcoap-3-notls) shows the real one.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gateway/config.h"

bool __wrap_ad_coap_has_dtls(void);

static bool dtls;

bool __wrap_ad_coap_has_dtls(void)
{
	return dtls;
}

static char dir[64];

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int load(char *err, size_t n)
{
	struct gw_config cfg;
	char path[256];
	int rc;

	snprintf(path, sizeof(path), "%s/main.ini", dir);
	rc = gw_config_load(path, &cfg, err, n);
	gw_config_free(&cfg);
	return rc;
}

static void test_coaps_needs_dtls(void **state)
{
	char err[4096];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fieldmq-coapdtls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file("main.ini", "[gateway]\nid = t\ndata_dir = .\ndevices = a.ini\n");
	write_file("a.ini", "[device:m]\nprotocol = coap\nurl = coaps://192.0.2.1\n"
			    "psk_identity = id\npsk_key = secret\n[point:m/p]\npath = /p\n");
	dtls = false;
	assert_int_equal(load(err, sizeof(err)), -EINVAL);
	if (!strstr(err, "a.ini:1: [device:m] url: coaps:// needs DTLS, and this build's libcoap "
			 "has none"))
		fail_msg("got <%s>", err);
	dtls = true;
	err[0] = '\0';
	if (load(err, sizeof(err)))
		fail_msg("with DTLS: <%s>", err);
	/* coap:// does not care */
	dtls = false;
	write_file("a.ini", "[device:m]\nprotocol = coap\nurl = coap://192.0.2.1\n[point:m/p]\n"
			    "path = /p\n");
	assert_int_equal(load(err, sizeof(err)), 0);
	unlink(strcat(strcpy(err, dir), "/a.ini"));
	unlink(strcat(strcpy(err, dir), "/main.ini"));
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coaps_needs_dtls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
