/*
 * coap_keys.c - the CoAP device adapter's device-map keys: one row per key
 * of its [device:] and [point:] sections (it has no buses: each device is
 * its own session), and the checks that need a whole section: the url
 * split and checked, DTLS keys (a PSK, or PEM files: ca_file, cert_file,
 * key_file, readable) only with coaps:// and only where this libcoap has DTLS, one location per point matching its format.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "adapters/coap/coap_int.h"
#include "adapters/coap/coap_uv.h"

/* ---------------------------------------------------------------- device */

enum {
	CD_URL,
	CD_PSK_IDENTITY,
	CD_PSK_KEY,
	CD_CA_FILE,
	CD_CERT_FILE,
	CD_KEY_FILE,
	CD_CERT_NAME,
	CD_TIMEOUT,
	CD_RETRIES,
	CD_DEGRADE_AFTER,
	CD_DEGRADE_FOR,
	__CD_MAX,
};

#define DK(f) offsetof(struct ad_coap_device, f)
static const struct ad_key device_rows[__CD_MAX] = {
	[CD_URL] = { .name = "url",
		     .type = AD_K_STR,
		     .off = DK(url),
		     .help = "coap://HOST[:PORT][/BASE] or coaps:// (DTLS: psk_identity / psk_key, or "
			     "ca_file)" },
	[CD_PSK_IDENTITY] = { .name = "psk_identity",
			      .type = AD_K_STR,
			      .off = DK(psk_identity),
			      .help = "coaps://: the pre-shared key's identity" },
	[CD_PSK_KEY] = { .name = "psk_key",
			 .type = AD_K_STR,
			 .off = DK(psk_key),
			 .flag = AD_KF_SECRET,
			 .help = "coaps://: the pre-shared key (as text)" },
	[CD_CA_FILE] = { .name = "ca_file",
			 .type = AD_K_PATH,
			 .off = DK(ca_file),
			 .help = "coaps:// with certificates: CA(s) (PEM) the device's certificate "
				 "must chain to" },
	[CD_CERT_FILE] = { .name = "cert_file",
			   .type = AD_K_PATH,
			   .off = DK(cert_file),
			   .help = "coaps:// with ca_file: our client certificate (PEM), if the "
				   "device asks for one" },
	[CD_KEY_FILE] = { .name = "key_file",
			  .type = AD_K_PATH,
			  .off = DK(key_file),
			  .help = "cert_file's private key (PEM)" },
	[CD_CERT_NAME] = { .name = "cert_name",
			   .type = AD_K_STR,
			   .off = DK(cert_name),
			   .help = "ca_file: the name the device's certificate must carry (its "
				   "first DNS subjectAltName, else its CN); default the url's host" },
	[CD_TIMEOUT] = { .name = "timeout",
			 .type = AD_K_DUR,
			 .off = DK(timeout_ms),
			 .size = 4,
			 .min = 100,
			 .max = 600000,
			 .def = "10s",
			 .help = "a request without an answer after this failed" },
	[CD_RETRIES] = { .name = "retries",
			 .type = AD_K_INT,
			 .off = DK(retries),
			 .size = 1,
			 .min = 0,
			 .max = 10,
			 .def = "1",
			 .help = "failed requests in a row before the device is offline" },
	[CD_DEGRADE_AFTER] = AD_KEY_DEGRADE_AFTER(
		struct ad_coap_device, "failed requests in a row before the device is skipped"),
	[CD_DEGRADE_FOR] = AD_KEY_DEGRADE_FOR(struct ad_coap_device),
};

static bool given(const char *s)
{
	return s && *s;
}

/* A file key, when given, must name a readable file. */
static bool readable(struct ad_parse *ap, const char *key, const char *path)
{
	if (!given(path) || !access(path, R_OK))
		return true;
	ad_parse_error(ap, ap->line, "[%s] %s: '%s': %s", ap->section, key, path, strerror(errno));
	return false;
}

/* coaps:// with certificates: ca_file, and cert_file / key_file together. */
static int check_pki(struct ad_parse *ap, const struct ad_coap_device *cd)
{
	const char *w = ap->section;
	bool ok = true;

	if (!given(cd->ca_file)) {
		ad_parse_error(ap, ap->line,
			       "[%s] coaps:// with a certificate needs ca_file (to verify the "
			       "device's)",
			       w);
		return -EINVAL;
	}
	if (given(cd->cert_file) != given(cd->key_file)) {
		ad_parse_error(ap, ap->line, "[%s] cert_file and key_file: both or neither", w);
		return -EINVAL;
	}
	ok = readable(ap, "ca_file", cd->ca_file) && ok;
	ok = readable(ap, "cert_file", cd->cert_file) && ok;
	ok = readable(ap, "key_file", cd->key_file) && ok;
	return ok ? 0 : -EINVAL;
}

static int check_device(struct ad_parse *ap, struct ad_device *d)
{
	struct ad_coap_device *cd = d->ext;
	const char *why = NULL, *w = ap->section;
	size_t off = 0;
	bool psk = (cd->psk_identity && *cd->psk_identity) || (cd->psk_key && *cd->psk_key);
	bool pki = given(cd->ca_file) || given(cd->cert_file) || given(cd->key_file) ||
		   given(cd->cert_name);

	if (!cd->url || !*cd->url) {
		ad_parse_error(ap, ap->line, "[%s] url: required (coap://HOST[:PORT])", w);
		return -EINVAL;
	}
	if (ad_coap_url_split(cd->url, cd, &off, &why)) {
		ad_parse_error(ap, ap->line, "[%s] url: '%s': %s", w, cd->url, why);
		return -EINVAL;
	}
	cd->base_path = ap->ops->strdup(ap, cd->url + off);
	if (!cd->base_path)
		return -ENOMEM;
	/* "coap://h/" names no base path */
	if (!strcmp(cd->base_path, "/"))
		cd->base_path[0] = '\0';
	if (cd->secure && !ad_coap_has_dtls()) {
		ad_parse_error(ap, ap->line,
			       "[%s] url: coaps:// needs DTLS, and this build's libcoap has none",
			       w);
		return -EINVAL;
	}
	if (!cd->secure && psk) {
		ad_parse_error(ap, ap->line, "[%s] psk_identity / psk_key: only with coaps://", w);
		return -EINVAL;
	}
	if (!cd->secure && pki) {
		ad_parse_error(ap, ap->line,
			       "[%s] ca_file / cert_file / key_file / cert_name: only with "
			       "coaps://",
			       w);
		return -EINVAL;
	}
	if (!cd->secure)
		return 0;
	if (psk && pki) {
		ad_parse_error(ap, ap->line,
			       "[%s] coaps://: psk_identity / psk_key or ca_file / cert_file / "
			       "key_file / cert_name, not both",
			       w);
		return -EINVAL;
	}
	if (pki)
		return check_pki(ap, cd);
	if (!cd->psk_identity || !*cd->psk_identity || !cd->psk_key || !*cd->psk_key) {
		ad_parse_error(ap, ap->line,
			       "[%s] coaps:// needs psk_identity and psk_key, or ca_file", w);
		return -EINVAL;
	}
	return 0;
}

/* ----------------------------------------------------------------- point */

enum {
	CP_PATH,
	CP_OBSERVE,
	CP_FORMAT,
	CP_JSON_POINTER,
	CP_SENML_NAME,
	CP_METHOD,
	CP_WRITE_PATH,
	__CP_MAX,
};

static const char *const formats[] = { "auto", "text", "json", "senml", NULL };
static const char *const methods[] = { "put", "post", NULL };

#define PK(f) offsetof(struct ad_coap_point, f)
static const struct ad_key point_rows[__CP_MAX] = {
	[CP_PATH] = { .name = "path",
		      .type = AD_K_STR,
		      .off = PK(path),
		      .help = "the resource, e.g. /sensors/temp (after the url's path)" },
	[CP_OBSERVE] = { .name = "observe",
			 .type = AD_K_BOOL,
			 .off = PK(observe),
			 .def = "no",
			 .help = "yes: observe (RFC 7641); no: GET every poll" },
	[CP_FORMAT] = { .name = "format",
			.type = AD_K_ENUM,
			.off = PK(format),
			.size = sizeof(enum ad_coap_format),
			.enums = formats,
			.def = "auto",
			.help = "auto: from the Content-Format (text/plain, json, senml+json)" },
	[CP_JSON_POINTER] = { .name = "json_pointer",
			      .type = AD_K_STR,
			      .off = PK(json_pointer),
			      .help = "json: RFC 6901 pointer, e.g. /temperature (empty: the whole document)" },
	[CP_SENML_NAME] = { .name = "senml_name",
			    .type = AD_K_STR,
			    .off = PK(senml_name),
			    .help = "senml: the record's name (bn + n); empty: the first record" },
	[CP_METHOD] = { .name = "method",
			.type = AD_K_ENUM,
			.off = PK(method),
			.size = sizeof(enum ad_coap_method),
			.enums = methods,
			.def = "put",
			.help = "access = rw: how .../set writes" },
	[CP_WRITE_PATH] = { .name = "write_path",
			    .type = AD_K_STR,
			    .off = PK(write_path),
			    .help = "access = rw: the resource written (default: path)" },
};

/* @path after the device's base path, copied into the map. */
static char *full_path(struct ad_parse *ap, const struct ad_coap_device *cd, const char *path)
{
	char buf[1024];

	if ((size_t)snprintf(buf, sizeof(buf), "%s%s", cd->base_path ? cd->base_path : "", path) >=
	    sizeof(buf))
		return NULL;
	return ap->ops->strdup(ap, buf);
}

static int check_point(struct ad_parse *ap, struct ad_point *pt)
{
	const struct ad_coap_device *cd = ad_coap_dev_keys(pt->device);
	struct ad_coap_point *cp = pt->ext;
	const char *w = ap->section;
	bool jp = ad_given(ap, CP_JSON_POINTER), sn = ad_given(ap, CP_SENML_NAME);

	if (!cp->path || cp->path[0] != '/') {
		ad_parse_error(ap, ap->line,
			       "[%s] path: required, starting with / (e.g. /sensors/temp)", w);
		return -EINVAL;
	}
	if (strpbrk(cp->path, "?#")) {
		ad_parse_error(ap, ap->line, "[%s] path: '%s': no query or fragment", w, cp->path);
		return -EINVAL;
	}
	if (jp && cp->json_pointer[0] && cp->json_pointer[0] != '/')
		ad_parse_error(ap, ap->line, "[%s] json_pointer: '%s': must start with /", w,
			       cp->json_pointer);
	if (jp && (cp->format == AD_COAP_FMT_TEXT || cp->format == AD_COAP_FMT_SENML))
		ad_parse_error(ap, ap->line, "[%s] json_pointer: only with format = json or auto",
			       w);
	if (sn && (cp->format == AD_COAP_FMT_TEXT || cp->format == AD_COAP_FMT_JSON))
		ad_parse_error(ap, ap->line, "[%s] senml_name: only with format = senml or auto",
			       w);
	if (jp && sn)
		ad_parse_error(ap, ap->line, "[%s] json_pointer and senml_name: one or the other",
			       w);
	if (pt->type == AD_PT_BIT)
		ad_parse_error(ap, ap->line, "[%s] type: bit is a Modbus register layout; use bool",
			       w);
	if (!pt->writable && (ad_given(ap, CP_METHOD) || ad_given(ap, CP_WRITE_PATH)))
		ad_parse_error(ap, ap->line, "[%s] method / write_path: only with access = rw", w);
	if (ad_given(ap, CP_WRITE_PATH) && cp->write_path[0] != '/')
		ad_parse_error(ap, ap->line, "[%s] write_path: must start with /", w);
	cp->path = full_path(ap, cd, cp->path);
	if (!cp->path)
		return -ENOMEM;
	if (cp->write_path && *cp->write_path) {
		cp->write_path = full_path(ap, cd, cp->write_path);
		if (!cp->write_path)
			return -ENOMEM;
	} else {
		cp->write_path = cp->path;
	}
	/*
	 * An observed value that does not change is not re-sent: it is fresh
	 * for its Max-Age (60 s unless the device says otherwise), and the core
	 * re-registers then. Do not call it stale before three of those.
	 */
	if (cp->observe && pt->device->stale_ms < 3 * (AD_COAP_DEFAULT_MAX_AGE_MS + 1000))
		pt->device->stale_ms = 3 * (AD_COAP_DEFAULT_MAX_AGE_MS + 1000);
	return 0;
}

const struct ad_schema ad_coap_schema = {
	.device = { device_rows, __CD_MAX, sizeof(struct ad_coap_device) },
	.point = { point_rows, __CP_MAX, sizeof(struct ad_coap_point) },
	.point_type = AD_PT_FLOAT64,
	.check_device = check_device,
	.check_point = check_point,
};
