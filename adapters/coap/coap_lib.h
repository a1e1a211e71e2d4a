/*
 * coap_lib.h - libcoap, loaded when a configuration first needs it.
 *
 * Why: libcoap comes in flavours that differ only in their DTLS library
 * (Debian: libcoap-3-notls, -openssl, -gnutls; OpenWrt: libcoap-3 without
 * DTLS). Linking one ties the daemon to it: with -openssl every start maps
 * and relocates OpenSSL (about 1.7 MB of resident pages, 4.5 MB once libcoap
 * initialises it) even when no CoAP device is configured. So the daemon does
 * not link libcoap: the glue files include this header after <coap3/coap.h>,
 * which turns each libcoap call into a call through a table that
 * ad_coap_lib_load() fills with dlopen()/dlsym(). A configuration without
 * CoAP never loads it; coap:// alone loads the flavour without DTLS; coaps://
 * (a device or a [coap] listener) loads one with DTLS.
 *
 * One flavour per process: the first load decides (two flavours in one
 * process would hand objects of one to the other). Configuration checks run
 * before anything starts, and they are what asks for DTLS
 * (ad_coap_has_dtls()), so a configuration with coaps:// loads a DTLS
 * flavour first. FIELDMQ_LIBCOAP=NAME in the environment loads only that
 * file (a soname such as libcoap-3-notls.so.3, or a path).
 *
 * Threads: load on the loop thread (or before the loop runs); the table is
 * written once and read-only afterwards.
 */
#ifndef FIELDMQ_COAP_LIB_H
#define FIELDMQ_COAP_LIB_H

#include <coap3/coap.h>
#include <stdbool.h>

/* Every libcoap function the daemon and tests/adapters/coap/test_coap_uv.c call. */
#define AD_COAP_FUNCTIONS(X)                  \
	X(coap_add_data)                      \
	X(coap_add_option)                    \
	X(coap_add_resource)                  \
	X(coap_add_token)                     \
	X(coap_address_init)                  \
	X(coap_async_get_app_data)            \
	X(coap_async_set_app_data)            \
	X(coap_async_trigger)                 \
	X(coap_cancel_observe)                \
	X(coap_check_option)                  \
	X(coap_context_get_coap_fd)           \
	X(coap_context_set_block_mode)        \
	X(coap_context_set_max_idle_sessions) \
	X(coap_context_set_psk2)              \
	X(coap_decode_var_bytes)              \
	X(coap_delete_pdu)                    \
	X(coap_dtls_is_supported)             \
	X(coap_encode_var_safe)               \
	X(coap_find_async)                    \
	X(coap_free_context)                  \
	X(coap_get_app_data)                  \
	X(coap_get_data)                      \
	X(coap_get_data_large)                \
	X(coap_get_tls_library_version)       \
	X(coap_io_prepare_epoll)              \
	X(coap_io_process)                    \
	X(coap_make_str_const)                \
	X(coap_new_client_session)            \
	X(coap_new_client_session_pki)        \
	X(coap_new_client_session_psk2)       \
	X(coap_new_context)                   \
	X(coap_new_endpoint)                  \
	X(coap_new_message_id)                \
	X(coap_new_pdu)                       \
	X(coap_opt_length)                    \
	X(coap_opt_value)                     \
	X(coap_option_iterator_init)          \
	X(coap_option_next)                   \
	X(coap_pdu_get_code)                  \
	X(coap_pdu_get_token)                 \
	X(coap_pdu_init)                      \
	X(coap_pdu_set_code)                  \
	X(coap_pdu_set_type)                  \
	X(coap_register_async)                \
	X(coap_register_handler)              \
	X(coap_register_nack_handler)         \
	X(coap_register_request_handler)      \
	X(coap_register_response_handler)     \
	X(coap_resource_init)                 \
	X(coap_resource_notify_observers)     \
	X(coap_resource_set_get_observable)   \
	X(coap_resource_unknown_init2)        \
	X(coap_send)                          \
	X(coap_session_get_addr_remote)       \
	X(coap_session_get_context)           \
	X(coap_session_max_pdu_size)          \
	X(coap_session_new_token)             \
	X(coap_session_reference)             \
	X(coap_session_release)               \
	X(coap_session_set_ack_random_factor) \
	X(coap_session_set_ack_timeout)       \
	X(coap_session_set_app_data)          \
	X(coap_session_set_max_retransmit)    \
	X(coap_session_set_nstart)            \
	X(coap_set_app_data)                  \
	X(coap_set_log_handler)               \
	X(coap_set_log_level)                 \
	X(coap_startup)                       \
	X(coap_ticks)

/* The table: one pointer per function, typed from libcoap's own prototype. */
struct ad_coap_lib {
#define AD_COAP_POINTER(f) __typeof__(f) *f;
	AD_COAP_FUNCTIONS(AD_COAP_POINTER)
#undef AD_COAP_POINTER
};

/*
 * Load libcoap if no flavour is loaded yet: with @dtls, the first of
 * libcoap-3-openssl, -gnutls, -mbedtls, -tinydtls and libcoap-3 whose
 * coap_dtls_is_supported() is true, else (or when none has DTLS) the first
 * that loads of libcoap-3-notls, libcoap-3 and the DTLS ones. Then
 * coap_startup(). Returns 0, or -ENOENT when no libcoap could be loaded
 * (why in ad_coap_lib_error()). Idempotent: later calls return the first
 * result, whatever @dtls.
 */
int ad_coap_lib_load(bool dtls);

/* The file loaded ("libcoap-3-notls.so.3"), or NULL. */
const char *ad_coap_lib_name(void);

/* Why the last load failed (dlerror() of the last name tried), or "". */
const char *ad_coap_lib_error(void);

/*
 * The table, for the macros below. Loads the flavour without DTLS if none
 * is loaded; aborts when no libcoap can be loaded: every entry point
 * (ad_coap_uv_new, ad_coap_discover, coapsrv_server_new, ad_coap_has_dtls)
 * calls ad_coap_lib_load() first and fails cleanly, so reaching the abort
 * is a bug.
 */
const struct ad_coap_lib *ad__coap_lib(void);

/* From here on, coap_x(...) in a glue file calls through the table (not in coap_lib.c). */
#ifndef AD_COAP_LIB_NO_MACROS
#define coap_add_data (*ad__coap_lib()->coap_add_data)
#define coap_add_option (*ad__coap_lib()->coap_add_option)
#define coap_add_resource (*ad__coap_lib()->coap_add_resource)
#define coap_add_token (*ad__coap_lib()->coap_add_token)
#define coap_address_init (*ad__coap_lib()->coap_address_init)
#define coap_async_get_app_data (*ad__coap_lib()->coap_async_get_app_data)
#define coap_async_set_app_data (*ad__coap_lib()->coap_async_set_app_data)
#define coap_async_trigger (*ad__coap_lib()->coap_async_trigger)
#define coap_cancel_observe (*ad__coap_lib()->coap_cancel_observe)
#define coap_check_option (*ad__coap_lib()->coap_check_option)
#define coap_context_get_coap_fd (*ad__coap_lib()->coap_context_get_coap_fd)
#define coap_context_set_block_mode (*ad__coap_lib()->coap_context_set_block_mode)
#define coap_context_set_max_idle_sessions (*ad__coap_lib()->coap_context_set_max_idle_sessions)
#define coap_context_set_psk2 (*ad__coap_lib()->coap_context_set_psk2)
#define coap_decode_var_bytes (*ad__coap_lib()->coap_decode_var_bytes)
#define coap_delete_pdu (*ad__coap_lib()->coap_delete_pdu)
#define coap_dtls_is_supported (*ad__coap_lib()->coap_dtls_is_supported)
#define coap_encode_var_safe (*ad__coap_lib()->coap_encode_var_safe)
#define coap_find_async (*ad__coap_lib()->coap_find_async)
#define coap_free_context (*ad__coap_lib()->coap_free_context)
#define coap_get_app_data (*ad__coap_lib()->coap_get_app_data)
#define coap_get_data (*ad__coap_lib()->coap_get_data)
#define coap_get_data_large (*ad__coap_lib()->coap_get_data_large)
#define coap_get_tls_library_version (*ad__coap_lib()->coap_get_tls_library_version)
#define coap_io_prepare_epoll (*ad__coap_lib()->coap_io_prepare_epoll)
#define coap_io_process (*ad__coap_lib()->coap_io_process)
#define coap_make_str_const (*ad__coap_lib()->coap_make_str_const)
#define coap_new_client_session (*ad__coap_lib()->coap_new_client_session)
#define coap_new_client_session_pki (*ad__coap_lib()->coap_new_client_session_pki)
#define coap_new_client_session_psk2 (*ad__coap_lib()->coap_new_client_session_psk2)
#define coap_new_context (*ad__coap_lib()->coap_new_context)
#define coap_new_endpoint (*ad__coap_lib()->coap_new_endpoint)
#define coap_new_message_id (*ad__coap_lib()->coap_new_message_id)
#define coap_new_pdu (*ad__coap_lib()->coap_new_pdu)
#define coap_opt_length (*ad__coap_lib()->coap_opt_length)
#define coap_opt_value (*ad__coap_lib()->coap_opt_value)
#define coap_option_iterator_init (*ad__coap_lib()->coap_option_iterator_init)
#define coap_option_next (*ad__coap_lib()->coap_option_next)
#define coap_pdu_get_code (*ad__coap_lib()->coap_pdu_get_code)
#define coap_pdu_get_token (*ad__coap_lib()->coap_pdu_get_token)
#define coap_pdu_init (*ad__coap_lib()->coap_pdu_init)
#define coap_pdu_set_code (*ad__coap_lib()->coap_pdu_set_code)
#define coap_pdu_set_type (*ad__coap_lib()->coap_pdu_set_type)
#define coap_register_async (*ad__coap_lib()->coap_register_async)
#define coap_register_handler (*ad__coap_lib()->coap_register_handler)
#define coap_register_nack_handler (*ad__coap_lib()->coap_register_nack_handler)
#define coap_register_request_handler (*ad__coap_lib()->coap_register_request_handler)
#define coap_register_response_handler (*ad__coap_lib()->coap_register_response_handler)
#define coap_resource_init (*ad__coap_lib()->coap_resource_init)
#define coap_resource_notify_observers (*ad__coap_lib()->coap_resource_notify_observers)
#define coap_resource_set_get_observable (*ad__coap_lib()->coap_resource_set_get_observable)
#define coap_resource_unknown_init2 (*ad__coap_lib()->coap_resource_unknown_init2)
#define coap_send (*ad__coap_lib()->coap_send)
#define coap_session_get_addr_remote (*ad__coap_lib()->coap_session_get_addr_remote)
#define coap_session_get_context (*ad__coap_lib()->coap_session_get_context)
#define coap_session_max_pdu_size (*ad__coap_lib()->coap_session_max_pdu_size)
#define coap_session_new_token (*ad__coap_lib()->coap_session_new_token)
#define coap_session_reference (*ad__coap_lib()->coap_session_reference)
#define coap_session_release (*ad__coap_lib()->coap_session_release)
#define coap_session_set_ack_random_factor (*ad__coap_lib()->coap_session_set_ack_random_factor)
#define coap_session_set_ack_timeout (*ad__coap_lib()->coap_session_set_ack_timeout)
#define coap_session_set_app_data (*ad__coap_lib()->coap_session_set_app_data)
#define coap_session_set_max_retransmit (*ad__coap_lib()->coap_session_set_max_retransmit)
#define coap_session_set_nstart (*ad__coap_lib()->coap_session_set_nstart)
#define coap_set_app_data (*ad__coap_lib()->coap_set_app_data)
#define coap_set_log_handler (*ad__coap_lib()->coap_set_log_handler)
#define coap_set_log_level (*ad__coap_lib()->coap_set_log_level)
#define coap_startup (*ad__coap_lib()->coap_startup)
#define coap_ticks (*ad__coap_lib()->coap_ticks)

#endif /* AD_COAP_LIB_NO_MACROS */

#endif
