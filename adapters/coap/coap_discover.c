/*
 * coap_discover.c - fieldmq --discover coap://HOST[:PORT]: read a device's
 * /.well-known/core (RFC 6690) and print a device-map skeleton to edit. A
 * one-shot command run instead of the daemon: it blocks (getaddrinfo,
 * libcoap's own wait) and never runs on the daemon's loop.
 */
#include "adapters/coap/coap_lib.h"
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "adapters/coap/coap_int.h"

struct disc {
	bool done;
	bool nack;
	unsigned int code;
	uint8_t *body;
	size_t len;
};

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
				   const coap_pdu_t *rcvd, const coap_mid_t mid)
{
	struct disc *d = coap_get_app_data(coap_session_get_context(s));
	const uint8_t *data;
	size_t len, off, total;

	(void)sent, (void)mid;
	d->code = coap_pdu_get_code(rcvd);
	if (!d->body && coap_get_data_large(rcvd, &len, &data, &off, &total) && len) {
		d->body = gw_malloc(len);
		if (d->body) {
			memcpy(d->body, data, len);
			d->len = len;
		}
	}
	d->done = true;
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason,
		    const coap_mid_t mid)
{
	struct disc *d = coap_get_app_data(coap_session_get_context(s));

	(void)sent, (void)reason, (void)mid;
	d->nack = d->done = true;
}

/* A section-name-safe version of a path: /sensors/temp -> sensors_temp. */
static void point_name(struct gw_slice path, char *buf, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < path.len && k + 1 < n; i++) {
		char c = (char)path.p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-';

		if (c == '/' && k == 0)
			continue;
		buf[k++] = ok ? c : '_';
	}
	buf[k] = '\0';
	if (k == 0)
		snprintf(buf, n, "root");
}

/* The device's name from its host: 10.0.0.7 -> dev_10_0_0_7. */
static void device_name(const char *host, char *buf, size_t n)
{
	size_t k;

	snprintf(buf, n, "dev_%s", host);
	for (k = 4; buf[k]; k++)
		if (!((buf[k] >= 'a' && buf[k] <= 'z') || (buf[k] >= 'A' && buf[k] <= 'Z') ||
		      (buf[k] >= '0' && buf[k] <= '9') || buf[k] == '-'))
			buf[k] = '_';
}

static void print_skeleton(const char *url, const struct ad_coap_device *cd, const uint8_t *p,
			   size_t n, FILE *out)
{
	char dev[300], pt[200];
	struct ad_coap_link l;
	size_t off = 0;
	unsigned int count = 0;
	int rc;

	device_name(cd->host, dev, sizeof(dev));
	fprintf(out,
		"; Discovered by fieldmq --discover %s (RFC 6690 /.well-known/core).\n"
		"; Edit: names, type (float64 by default), unit, json_pointer / senml_name for\n"
		"; JSON and SenML resources, and drop what you do not want.\n\n"
		"[device:%s]\nprotocol = coap\nurl = %s\npoll = 10s\n",
		url, dev, url);
	while ((rc = ad_coap_link_next(p, n, &off, &l)) == 1) {
		if (l.target.len == 0 || l.target.p[0] != '/' ||
		    gw_slice_eq_cstr(l.target, "/.well-known/core"))
			continue;
		point_name(l.target, pt, sizeof(pt));
		fprintf(out, "\n[point:%s/%s]\npath = %.*s\nobserve = %s\n", dev, pt,
			(int)l.target.len, (const char *)l.target.p, l.obs ? "yes" : "no");
		if (l.rt.len || l.ct.len || l.title.len)
			fprintf(out, "; rt=\"%.*s\" ct=\"%.*s\" title=\"%.*s\"\n", (int)l.rt.len,
				(const char *)l.rt.p, (int)l.ct.len, (const char *)l.ct.p,
				(int)l.title.len, (const char *)l.title.p);
		if (gw_slice_eq_cstr(l.ct, "50"))
			fprintf(out, ";json_pointer = /value\n");
		else if (gw_slice_eq_cstr(l.ct, "110"))
			fprintf(out, ";senml_name =\n");
		count++;
	}
	if (rc < 0)
		fprintf(out, "\n; the rest of /.well-known/core was not link-format\n");
	if (!count)
		fprintf(out, "\n; the device lists no resources\n");
}

int ad_coap_discover(const char *url, unsigned int timeout_ms, FILE *out, FILE *err)
{
	struct ad_coap_device cd;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM }, *ai = NULL;
	coap_context_t *ctx = NULL;
	coap_session_t *sess = NULL;
	coap_address_t dst;
	coap_pdu_t *pdu;
	struct disc d = { 0 };
	const char *why;
	char port[8];
	size_t off;
	unsigned int waited = 0;
	int rc = 1;

	memset(&cd, 0, sizeof(cd));
	if (ad_coap_url_split(url, &cd, &off, &why)) {
		fprintf(err, "fieldmq: --discover %s: %s\n", url, why);
		return 2;
	}
	if (cd.secure) {
		fprintf(err, "fieldmq: --discover: coaps:// is not supported here (no PSK on the "
			     "command line); use coap://\n");
		return 2;
	}
	snprintf(port, sizeof(port), "%u", cd.port);
	if (getaddrinfo(cd.host, port, &hints, &ai) || !ai || ai->ai_addrlen > sizeof(dst.addr)) {
		fprintf(err, "fieldmq: --discover: cannot resolve %s\n", cd.host);
		goto out;
	}
	if (ad_coap_lib_load(false)) {
		fprintf(err, "fieldmq: --discover: cannot load libcoap: %s\n", ad_coap_lib_error());
		goto out;
	}
	coap_set_log_level(LOG_ERR);
	coap_address_init(&dst);
	memcpy(&dst.addr, ai->ai_addr, ai->ai_addrlen);
	dst.size = ai->ai_addrlen;
	ctx = coap_new_context(NULL);
	if (!ctx)
		goto out;
	coap_set_app_data(ctx, &d);
	coap_context_set_block_mode(ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	coap_register_response_handler(ctx, on_response);
	coap_register_nack_handler(ctx, on_nack);
	sess = coap_new_client_session(ctx, NULL, &dst, COAP_PROTO_UDP);
	pdu = sess ? coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, sess) : NULL;
	if (!pdu)
		goto out;
	coap_add_option(pdu, COAP_OPTION_URI_PATH, 11, (const uint8_t *)".well-known");
	coap_add_option(pdu, COAP_OPTION_URI_PATH, 4, (const uint8_t *)"core");
	if (coap_send(sess, pdu) == COAP_INVALID_MID)
		goto out;
	while (!d.done && waited < timeout_ms) {
		int spent = coap_io_process(ctx, 100);

		if (spent < 0)
			break;
		waited += spent > 0 ? (unsigned int)spent : 1;
	}
	if (!d.done || d.nack) {
		fprintf(err, "fieldmq: --discover %s: %s\n", url,
			d.nack ? "no answer (unreachable, or RST)" : "no answer in time");
		goto out;
	}
	if (d.code >> 5 != 2) {
		fprintf(err, "fieldmq: --discover %s: /.well-known/core answered %u.%02u\n", url,
			d.code >> 5, d.code & 31);
		goto out;
	}
	print_skeleton(url, &cd, d.body ? d.body : (const uint8_t *)"", d.len, out);
	rc = 0;
out:
	if (ctx)
		coap_free_context(ctx); /* frees the session too */
	if (ai)
		freeaddrinfo(ai);
	gw_free(d.body);
	return rc;
}
