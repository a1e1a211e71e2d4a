/*
 * test_config_coap_dtls.c - a coaps:// device on a build whose libcoap has no
 * DTLS: --check-config (gw_config_load) refuses it and says why. The DTLS
 * probe (ad_coap_has_dtls, adapters/coap/coap_uv.c) is replaced at link time
 * (-Wl,--wrap, test_config_coap_dtls.ldflags), so both answers are tested
 * on one machine; FIELDMQ_LIBCOAP=libcoap-3-notls.so.3 shows the real one
 * (tests/integration/test_coap_lazy.py).
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

static void expect_error(const char *map, const char *want)
{
	char err[4096];

	write_file("a.ini", map);
	err[0] = '\0';
	assert_int_equal(load(err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("want <%s>, got <%s>", want, err);
}

/* ca_file / cert_file / key_file / cert_name: coaps:// with certificates. */
static void test_coaps_certificate_keys(void **state)
{
	static const char dev[] = "[device:m]\nprotocol = coap\nurl = coaps://192.0.2.1\n";
	static const char pt[] = "[point:m/p]\npath = /p\n";
	char err[4096], map[1024], sub[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fieldmq-coapdtls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file("main.ini", "[gateway]\nid = t\ndata_dir = .\ndevices = a.ini\n");
	write_file("ca.pem", "not parsed by --check-config\n");
	write_file("c.pem", "x\n");
	write_file("c.key", "x\n");
	/* relative to the map's folder */
	snprintf(map, sizeof(map),
		 "%sca_file = ca.pem\ncert_file = c.pem\nkey_file = c.key\ncert_name = dev1\n%s",
		 dev, pt);
	write_file("a.ini", map);
	dtls = true;
	err[0] = '\0';
	if (load(err, sizeof(err)))
		fail_msg("accepted with DTLS: <%s>", err);
	snprintf(map, sizeof(map), "%sca_file = ca.pem\n%s", dev, pt);
	write_file("a.ini", map);
	if (load(err, sizeof(err)))
		fail_msg("ca_file alone: <%s>", err);
	/* a build without DTLS */
	dtls = false;
	expect_error(map, "a.ini:1: [device:m] url: coaps:// needs DTLS, and this build's libcoap "
			  "has none");
	dtls = true;
	snprintf(map, sizeof(map), "%sca_file = nosuch.pem\n%s", dev, pt);
	snprintf(sub, sizeof(sub), "[device:m] ca_file: '%s/nosuch.pem': No such file", dir);
	expect_error(map, sub);
	snprintf(map, sizeof(map), "%sca_file = ca.pem\ncert_file = c.pem\nkey_file = no.key\n%s",
		 dev, pt);
	expect_error(map, "[device:m] key_file: '");
	snprintf(map, sizeof(map), "%sca_file = ca.pem\ncert_file = c.pem\n%s", dev, pt);
	expect_error(map, "[device:m] cert_file and key_file: both or neither");
	snprintf(map, sizeof(map), "%scert_name = dev1\n%s", dev, pt);
	expect_error(map, "[device:m] coaps:// with a certificate needs ca_file");
	snprintf(map, sizeof(map), "%spsk_identity = i\npsk_key = k\nca_file = ca.pem\n%s", dev,
		 pt);
	expect_error(map, "[device:m] coaps://: psk_identity / psk_key or ca_file / cert_file / "
			  "key_file / cert_name, not both");
	snprintf(map, sizeof(map),
		 "[device:m]\nprotocol = coap\nurl = coap://192.0.2.1\n"
		 "ca_file = ca.pem\n%s",
		 pt);
	expect_error(map, "[device:m] ca_file / cert_file / key_file / cert_name: only with "
			  "coaps://");
	snprintf(map, sizeof(map), "%s%s", dev, pt);
	expect_error(map, "[device:m] coaps:// needs psk_identity and psk_key, or ca_file");
	unlink(strcat(strcpy(err, dir), "/a.ini"));
	unlink(strcat(strcpy(err, dir), "/main.ini"));
	unlink(strcat(strcpy(err, dir), "/ca.pem"));
	unlink(strcat(strcpy(err, dir), "/c.pem"));
	unlink(strcat(strcpy(err, dir), "/c.key"));
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coaps_needs_dtls),
		cmocka_unit_test(test_coaps_certificate_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
