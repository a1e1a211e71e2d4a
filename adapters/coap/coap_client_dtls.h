/*
 * coap_client_dtls.h - the CoAP client adapter's coaps:// sessions: DTLS
 * with a pre-shared key (psk_identity / psk_key) or with certificates
 * (ca_file, cert_file / key_file, cert_name), from a device's map keys.
 *
 * libcoap 4.3.1 with OpenSSL loads a session's ca_file into its context's
 * one CA store and keeps one name callback per context: give each device
 * with certificates a context of its own (coap_client_uv.c does).
 */
#ifndef FIELDMQ_COAP_CLIENT_DTLS_H
#define FIELDMQ_COAP_CLIENT_DTLS_H

#include "adapters/coap/coap_lib.h"
#include <stdbool.h>

struct gw_logger;
struct ad_coap_device;

/* Who the session is for: kept by the caller as long as the session. */
struct ad_coap_dtls_peer {
	const struct ad_coap_device *keys;
	const struct gw_logger *log;
	const char *name;  /* the device's, in log lines */
	bool name_refused; /* logged a certificate name that is not the wanted one */
};

/* Whether @k asks for certificates (coaps:// with ca_file). */
bool ad_coap_dtls_is_pki(const struct ad_coap_device *k);

/*
 * A DTLS client session to @dst in @ctx with @peer->keys' PSK, or their
 * certificates: the device's verified against ca_file (chain depth up to 3)
 * and its name (the first DNS subjectAltName, else the CN, as libcoap gives
 * it) checked against cert_name or the url's host. NULL on failure.
 */
coap_session_t *ad_coap_dtls_session(coap_context_t *ctx, const coap_address_t *dst,
				     struct ad_coap_dtls_peer *peer);

#endif
