/*
 * test_mbed_lib.c - gateway/tls/mbed_lib: mbedTLS loaded with dlopen() by
 * the sonames the Makefile derived from the linker (build/gen/mbed_sonames.h).
 * A soname that is wrong (another version than the headers, or no such
 * file) fails here: the load refuses a library whose version is not the
 * headers' major.minor. The known answers check that the table's pointers
 * are the functions they are named after.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/tls/mbed_lib.h"

static void crypto_loads_by_the_derived_soname(void **state)
{
	(void)state;
	assert_null(gw_mbed_name(GW_MBED_CRYPTO));
	assert_int_equal(gw_mbed_load(GW_MBED_CRYPTO), 0);
	assert_non_null(gw_mbed_name(GW_MBED_CRYPTO));
	assert_int_equal(strncmp(gw_mbed_name(GW_MBED_CRYPTO), "libmbedcrypto.so.", 17), 0);
	assert_string_equal(gw_mbed_error(), "");
	/* Loading the crypto part does not load libmbedtls. */
	assert_null(gw_mbed_name(GW_MBED_TLS));
}

static void crypto_known_answers(void **state)
{
	/* FIPS 180 "abc". */
	static const uint8_t sha1_abc[20] = { 0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81,
					      0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
					      0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d };
	uint8_t sha[20];
	unsigned char b64[32];
	size_t olen = 0;

	(void)state;
#if MBEDTLS_VERSION_MAJOR >= 3
	assert_int_equal(mbedtls_sha1((const unsigned char *)"abc", 3, sha), 0);
#else
	assert_int_equal(mbedtls_sha1_ret((const unsigned char *)"abc", 3, sha), 0);
#endif
	assert_memory_equal(sha, sha1_abc, sizeof(sha));
	assert_int_equal(
		mbedtls_base64_encode(b64, sizeof(b64), &olen, (const unsigned char *)"hi!", 3), 0);
	assert_int_equal(olen, 4);
	assert_memory_equal(b64, "aGkh", 4);
}

static void tls_loads_with_x509(void **state)
{
	mbedtls_ssl_config conf;

	(void)state;
	assert_int_equal(gw_mbed_load(GW_MBED_TLS), 0);
	assert_int_equal(strncmp(gw_mbed_name(GW_MBED_TLS), "libmbedtls.so.", 14), 0);
	/* A call into libmbedtls through the table (x509 comes with it). */
	mbedtls_ssl_config_init(&conf);
	assert_int_equal(mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
						     MBEDTLS_SSL_TRANSPORT_STREAM,
						     MBEDTLS_SSL_PRESET_DEFAULT),
			 0);
	mbedtls_ssl_config_free(&conf);
	assert_int_equal(gw_mbed_load(GW_MBED_TLS), 0); /* idempotent */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crypto_loads_by_the_derived_soname),
		cmocka_unit_test(crypto_known_answers),
		cmocka_unit_test(tls_loads_with_x509),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
