/*
 * coap_client_dtls.c - coaps:// client sessions of the CoAP device adapter:
 * PSK or certificates (PEM files) from the device's keys. See
 * coap_client_dtls.h.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "adapters/coap/coap_client_dtls.h"
#include "adapters/coap/coap_int.h"

bool ad_coap_dtls_is_pki(const struct ad_coap_device *k)
{
	return k->secure && k->ca_file && *k->ca_file;
}

/*
 * The device's certificate (depth 0), already verified against ca_file by
 * libcoap: the name libcoap gives (its first DNS subjectAltName, else its
 * CN) must be cert_name, or the url's host. Refused: logged once (each
 * retry is refused again).
 */
static int check_cn(const char *cn, const uint8_t *cert, size_t cert_len, coap_session_t *s,
		    unsigned int depth, int validated, void *arg)
{
	struct ad_coap_dtls_peer *p = arg;
	const struct ad_coap_device *k = p->keys;
	const char *want = k->cert_name && *k->cert_name ? k->cert_name : k->host;

	(void)cert;
	(void)cert_len;
	(void)s;
	if (depth > 0 || !validated)
		return validated; /* libcoap logs why a chain is refused */
	if (cn && !strcasecmp(cn, want))
		return 1;
	if (!p->name_refused)
		gw_log(p->log, LOG_WARNING, "coap",
		       "%s: the device's certificate names '%s', not '%s' (cert_name): refused",
		       p->name, cn ? cn : "", want);
	p->name_refused = true;
	return 0;
}

coap_session_t *ad_coap_dtls_session(coap_context_t *ctx, const coap_address_t *dst,
				     struct ad_coap_dtls_peer *peer)
{
	const struct ad_coap_device *k = peer->keys;

	if (ad_coap_dtls_is_pki(k)) {
		coap_dtls_pki_t pki;

		memset(&pki, 0, sizeof(pki));
		pki.version = COAP_DTLS_PKI_SETUP_VERSION;
		pki.verify_peer_cert = 1;
		pki.check_common_ca = 1;
		pki.cert_chain_validation = 1;
		pki.cert_chain_verify_depth = 3;
		pki.validate_cn_call_back = check_cn;
		pki.cn_call_back_arg = peer;
		pki.client_sni = (char *)k->host;
		pki.pki_key.key_type = COAP_PKI_KEY_PEM;
		pki.pki_key.key.pem.ca_file = k->ca_file;
		pki.pki_key.key.pem.public_cert =
			k->cert_file && *k->cert_file ? k->cert_file : NULL;
		pki.pki_key.key.pem.private_key = k->key_file && *k->key_file ? k->key_file : NULL;
		return coap_new_client_session_pki(ctx, NULL, dst, COAP_PROTO_DTLS, &pki);
	} else {
		coap_dtls_cpsk_t psk;

		memset(&psk, 0, sizeof(psk));
		psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
		psk.client_sni = (char *)k->host;
		psk.psk_info.identity.s = (const uint8_t *)k->psk_identity;
		psk.psk_info.identity.length = strlen(k->psk_identity);
		psk.psk_info.key.s = (const uint8_t *)k->psk_key;
		psk.psk_info.key.length = strlen(k->psk_key);
		return coap_new_client_session_psk2(ctx, NULL, dst, COAP_PROTO_DTLS, &psk);
	}
}
