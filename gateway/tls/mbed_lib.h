/*
 * mbed_lib.h - mbedTLS, loaded when a configuration first needs it.
 *
 * Why: linking mbedTLS maps and relocates libmbedtls, libmbedx509 and
 * libmbedcrypto at every start (344 KB of resident pages with Debian's
 * 2.28, measured with the demo configuration, which uses none of them:
 * libmbedcrypto 168, libmbedtls 108, libmbedx509 60). So the daemon does not
 * link mbedTLS: the files that use it include this header instead of
 * <mbedtls/...>; it includes mbedTLS's headers (for the types and constants)
 * and then turns each mbedTLS call into a call through a table that
 * gw_mbed_load() fills with dlopen()/dlsym(). A configuration without
 * TLS, password_file or WebSocket listener never loads mbedTLS.
 *
 * Two parts: GW_MBED_CRYPTO (libmbedcrypto alone: the password_file's
 * hashes and base64, the WebSocket handshake's SHA-1) and GW_MBED_TLS
 * (libmbedtls, which brings libmbedx509 and libmbedcrypto with it:
 * mqtts://, wss://, https:// and the uplink's mqtts://).
 *
 * Which files: the sonames of the libraries the linker would take with
 * MBEDTLS_LIBS and LDFLAGS, read from a probe program's DT_NEEDED at build
 * time ($(BUILD)/gen/mbed_sonames.h, see the Makefile), so they match the
 * headers compiled against (2.28: libmbedcrypto.so.7 and libmbedtls.so.14;
 * 3.6: .16 and .21). The load also refuses a library whose
 * mbedtls_version_get_number() is not the headers' major.minor: the
 * structures are laid out by the headers. FIELDMQ_LIBMBEDCRYPTO=NAME and
 * FIELDMQ_LIBMBEDTLS=NAME in the environment load those files instead
 * (a soname or a path).
 *
 * Threads: load on the loop thread (or before the loop runs: the
 * configuration checks do); the table is written once and read-only
 * afterwards, also by the thread pool's password checks.
 */
#ifndef FIELDMQ_MBED_LIB_H
#define FIELDMQ_MBED_LIB_H

#include <stdbool.h>

#include <mbedtls/version.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha512.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif
/* gateway/tls/tls.c's gw_tls_sleep uses 2.x's exported internals (see there). */
#if MBEDTLS_VERSION_MAJOR == 2
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_internal.h>
#endif

/* clang-format off */
/* libmbedcrypto: the broker's hashes and base64, and what TLS takes from it. */
#if MBEDTLS_VERSION_MAJOR >= 3
#define GW_MBED_HASH_FUNCTIONS(X) \
	X(mbedtls_sha1) X(mbedtls_sha512_starts) X(mbedtls_sha512_update) \
	X(mbedtls_sha512_finish)
#else
#define GW_MBED_HASH_FUNCTIONS(X) \
	X(mbedtls_sha1_ret) X(mbedtls_sha512_starts_ret) X(mbedtls_sha512_update_ret) \
	X(mbedtls_sha512_finish_ret)
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
#define GW_MBED_PBKDF2_FUNCTIONS(X) X(mbedtls_pkcs5_pbkdf2_hmac_ext)
#else
#define GW_MBED_PBKDF2_FUNCTIONS(X) \
	X(mbedtls_md_init) X(mbedtls_md_setup) X(mbedtls_md_info_from_type) \
	X(mbedtls_pkcs5_pbkdf2_hmac) X(mbedtls_md_free)
#endif
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
#define GW_MBED_PSA_FUNCTIONS(X) X(psa_crypto_init)
#else
#define GW_MBED_PSA_FUNCTIONS(X)
#endif
#if MBEDTLS_VERSION_MAJOR == 2
#define GW_MBED_ZEROIZE_FUNCTIONS(X) X(mbedtls_platform_zeroize)
#else
#define GW_MBED_ZEROIZE_FUNCTIONS(X)
#endif
#define GW_MBED_CRYPTO_FUNCTIONS(X) \
	X(mbedtls_base64_decode)    \
	X(mbedtls_base64_encode)    \
	X(mbedtls_sha512_init)      \
	X(mbedtls_sha512_free)      \
	GW_MBED_HASH_FUNCTIONS(X)   \
	GW_MBED_PBKDF2_FUNCTIONS(X) \
	X(mbedtls_ctr_drbg_free)    \
	X(mbedtls_ctr_drbg_init)    \
	X(mbedtls_ctr_drbg_random)  \
	X(mbedtls_ctr_drbg_seed)    \
	X(mbedtls_entropy_free)     \
	X(mbedtls_entropy_func)     \
	X(mbedtls_entropy_init)     \
	X(mbedtls_pk_free)          \
	X(mbedtls_pk_init)          \
	X(mbedtls_pk_parse_keyfile) \
	X(mbedtls_strerror)         \
	GW_MBED_PSA_FUNCTIONS(X)    \
	GW_MBED_ZEROIZE_FUNCTIONS(X)

/* libmbedtls and libmbedx509 (looked up through libmbedtls, which needs the other two). */
#if MBEDTLS_VERSION_MAJOR == 2
#define GW_MBED_SSL2_FUNCTIONS(X)    \
	X(mbedtls_ssl_check_pending) \
	X(mbedtls_ssl_reset_in_out_pointers) X(mbedtls_ssl_update_out_pointers)
#else
#define GW_MBED_SSL2_FUNCTIONS(X)
#endif
#if MBEDTLS_VERSION_MAJOR == 2 && defined(MBEDTLS_ECP_C)
#define GW_MBED_CURVES_FUNCTIONS(X) X(mbedtls_ssl_conf_curves)
#else
#define GW_MBED_CURVES_FUNCTIONS(X)
#endif
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_SRV_C) && \
	MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define GW_MBED_TICKETS_FUNCTIONS(X) X(mbedtls_ssl_conf_new_session_tickets)
#else
#define GW_MBED_TICKETS_FUNCTIONS(X)
#endif
#define GW_MBED_TLS_FUNCTIONS(X)         \
	X(mbedtls_x509_crt_free)         \
	X(mbedtls_x509_crt_init)         \
	X(mbedtls_x509_crt_parse_file)   \
	X(mbedtls_x509_crt_parse_path)   \
	X(mbedtls_x509_crt_verify_info)  \
	X(mbedtls_ssl_close_notify)      \
	X(mbedtls_ssl_conf_authmode)     \
	X(mbedtls_ssl_conf_ca_chain)     \
	X(mbedtls_ssl_conf_own_cert)     \
	X(mbedtls_ssl_conf_rng)          \
	X(mbedtls_ssl_config_defaults)   \
	X(mbedtls_ssl_config_free)       \
	X(mbedtls_ssl_config_init)       \
	X(mbedtls_ssl_free)              \
	X(mbedtls_ssl_get_peer_cert)     \
	X(mbedtls_ssl_get_verify_result) \
	X(mbedtls_ssl_get_version)       \
	X(mbedtls_ssl_handshake)         \
	X(mbedtls_ssl_init)              \
	X(mbedtls_ssl_read)              \
	X(mbedtls_ssl_set_bio)           \
	X(mbedtls_ssl_set_hostname)      \
	X(mbedtls_ssl_setup)             \
	X(mbedtls_ssl_write)             \
	GW_MBED_SSL2_FUNCTIONS(X)        \
	GW_MBED_CURVES_FUNCTIONS(X)      \
	GW_MBED_TICKETS_FUNCTIONS(X)
/* clang-format on */

/* The table: one pointer per function, typed from mbedTLS's own prototype. */
struct gw_mbed_lib {
#define GW_MBED_POINTER(f) __typeof__(f) *f;
	GW_MBED_CRYPTO_FUNCTIONS(GW_MBED_POINTER)
	GW_MBED_TLS_FUNCTIONS(GW_MBED_POINTER)
#undef GW_MBED_POINTER
};

enum gw_mbed_part {
	GW_MBED_CRYPTO, /* libmbedcrypto */
	GW_MBED_TLS,	/* libmbedtls (with libmbedx509 and libmbedcrypto) */
	__GW_MBED_MAX
};

/*
 * Load @part (and, for GW_MBED_TLS, the crypto part first) unless it is
 * loaded. Returns 0, or -ENOENT when a library cannot be loaded, lacks a
 * function or is another version than the headers (why in gw_mbed_error()).
 * A failure is remembered: later calls for that part return it at once.
 */
int gw_mbed_load(enum gw_mbed_part part);

/* The file loaded for @part ("libmbedtls.so.14"), or NULL when it is not loaded. */
const char *gw_mbed_name(enum gw_mbed_part part);

/* Why the last failed load failed, or "". */
const char *gw_mbed_error(void);

/*
 * The table, for the macros below, with @part loaded: loads it if needed
 * and aborts when it cannot. Every entry point checks first
 * (gw_tls_conf_new, gw_tls_server_conf_new, gw_passwd_load and the
 * configuration checks of listeners and the uplink), so reaching the abort
 * means a code path was missed; the codecs' unit tests and fuzz replays
 * reach the loading here.
 */
const struct gw_mbed_lib *gw__mbed_lib(enum gw_mbed_part part);

/* From here on, mbedtls_x(...) calls through the table (not in mbed_lib.c). */
#ifndef GW_MBED_LIB_NO_MACROS
#define GW_MBED_C(f) (*gw__mbed_lib(GW_MBED_CRYPTO)->f)
#define GW_MBED_T(f) (*gw__mbed_lib(GW_MBED_TLS)->f)
#define mbedtls_base64_decode GW_MBED_C(mbedtls_base64_decode)
#define mbedtls_base64_encode GW_MBED_C(mbedtls_base64_encode)
#define mbedtls_sha512_init GW_MBED_C(mbedtls_sha512_init)
#define mbedtls_sha512_free GW_MBED_C(mbedtls_sha512_free)
#if MBEDTLS_VERSION_MAJOR >= 3
#define mbedtls_sha1 GW_MBED_C(mbedtls_sha1)
#define mbedtls_sha512_starts GW_MBED_C(mbedtls_sha512_starts)
#define mbedtls_sha512_update GW_MBED_C(mbedtls_sha512_update)
#define mbedtls_sha512_finish GW_MBED_C(mbedtls_sha512_finish)
#else
#define mbedtls_sha1_ret GW_MBED_C(mbedtls_sha1_ret)
#define mbedtls_sha512_starts_ret GW_MBED_C(mbedtls_sha512_starts_ret)
#define mbedtls_sha512_update_ret GW_MBED_C(mbedtls_sha512_update_ret)
#define mbedtls_sha512_finish_ret GW_MBED_C(mbedtls_sha512_finish_ret)
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
#define mbedtls_pkcs5_pbkdf2_hmac_ext GW_MBED_C(mbedtls_pkcs5_pbkdf2_hmac_ext)
#else
#define mbedtls_md_init GW_MBED_C(mbedtls_md_init)
#define mbedtls_md_setup GW_MBED_C(mbedtls_md_setup)
#define mbedtls_md_info_from_type GW_MBED_C(mbedtls_md_info_from_type)
#define mbedtls_pkcs5_pbkdf2_hmac GW_MBED_C(mbedtls_pkcs5_pbkdf2_hmac)
#define mbedtls_md_free GW_MBED_C(mbedtls_md_free)
#endif
#define mbedtls_ctr_drbg_free GW_MBED_C(mbedtls_ctr_drbg_free)
#define mbedtls_ctr_drbg_init GW_MBED_C(mbedtls_ctr_drbg_init)
#define mbedtls_ctr_drbg_random GW_MBED_C(mbedtls_ctr_drbg_random)
#define mbedtls_ctr_drbg_seed GW_MBED_C(mbedtls_ctr_drbg_seed)
#define mbedtls_entropy_free GW_MBED_C(mbedtls_entropy_free)
#define mbedtls_entropy_func GW_MBED_C(mbedtls_entropy_func)
#define mbedtls_entropy_init GW_MBED_C(mbedtls_entropy_init)
#define mbedtls_pk_free GW_MBED_C(mbedtls_pk_free)
#define mbedtls_pk_init GW_MBED_C(mbedtls_pk_init)
#define mbedtls_pk_parse_keyfile GW_MBED_C(mbedtls_pk_parse_keyfile)
#define mbedtls_strerror GW_MBED_C(mbedtls_strerror)
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
#define psa_crypto_init GW_MBED_C(psa_crypto_init)
#endif
#if MBEDTLS_VERSION_MAJOR == 2
#define mbedtls_platform_zeroize GW_MBED_C(mbedtls_platform_zeroize)
#define mbedtls_ssl_check_pending GW_MBED_T(mbedtls_ssl_check_pending)
#define mbedtls_ssl_reset_in_out_pointers GW_MBED_T(mbedtls_ssl_reset_in_out_pointers)
#define mbedtls_ssl_update_out_pointers GW_MBED_T(mbedtls_ssl_update_out_pointers)
#endif
#if MBEDTLS_VERSION_MAJOR == 2 && defined(MBEDTLS_ECP_C)
#define mbedtls_ssl_conf_curves GW_MBED_T(mbedtls_ssl_conf_curves)
#endif
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_SRV_C) && \
	MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define mbedtls_ssl_conf_new_session_tickets GW_MBED_T(mbedtls_ssl_conf_new_session_tickets)
#endif
#define mbedtls_x509_crt_free GW_MBED_T(mbedtls_x509_crt_free)
#define mbedtls_x509_crt_init GW_MBED_T(mbedtls_x509_crt_init)
#define mbedtls_x509_crt_parse_file GW_MBED_T(mbedtls_x509_crt_parse_file)
#define mbedtls_x509_crt_parse_path GW_MBED_T(mbedtls_x509_crt_parse_path)
#define mbedtls_x509_crt_verify_info GW_MBED_T(mbedtls_x509_crt_verify_info)
#define mbedtls_ssl_close_notify GW_MBED_T(mbedtls_ssl_close_notify)
#define mbedtls_ssl_conf_authmode GW_MBED_T(mbedtls_ssl_conf_authmode)
#define mbedtls_ssl_conf_ca_chain GW_MBED_T(mbedtls_ssl_conf_ca_chain)
#define mbedtls_ssl_conf_own_cert GW_MBED_T(mbedtls_ssl_conf_own_cert)
#define mbedtls_ssl_conf_rng GW_MBED_T(mbedtls_ssl_conf_rng)
#define mbedtls_ssl_config_defaults GW_MBED_T(mbedtls_ssl_config_defaults)
#define mbedtls_ssl_config_free GW_MBED_T(mbedtls_ssl_config_free)
#define mbedtls_ssl_config_init GW_MBED_T(mbedtls_ssl_config_init)
#define mbedtls_ssl_free GW_MBED_T(mbedtls_ssl_free)
#define mbedtls_ssl_get_peer_cert GW_MBED_T(mbedtls_ssl_get_peer_cert)
#define mbedtls_ssl_get_verify_result GW_MBED_T(mbedtls_ssl_get_verify_result)
#define mbedtls_ssl_get_version GW_MBED_T(mbedtls_ssl_get_version)
#define mbedtls_ssl_handshake GW_MBED_T(mbedtls_ssl_handshake)
#define mbedtls_ssl_init GW_MBED_T(mbedtls_ssl_init)
#define mbedtls_ssl_read GW_MBED_T(mbedtls_ssl_read)
#define mbedtls_ssl_set_bio GW_MBED_T(mbedtls_ssl_set_bio)
#define mbedtls_ssl_set_hostname GW_MBED_T(mbedtls_ssl_set_hostname)
#define mbedtls_ssl_setup GW_MBED_T(mbedtls_ssl_setup)
#define mbedtls_ssl_write GW_MBED_T(mbedtls_ssl_write)
#endif /* GW_MBED_LIB_NO_MACROS */

#endif
