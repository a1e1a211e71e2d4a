/*
 * coap_lib.c - libcoap loaded with dlopen() when first needed (coap_lib.h).
 *
 * The table below is the one piece of process-wide state of the CoAP
 * adapter: it stands in for the dynamic linker's GOT entries that linking
 * libcoap would have made, is written once (on the loop thread, before any
 * libcoap object exists) and only read afterwards. libcoap itself is
 * process-wide state too (coap_startup(), its log level and handler).
 */
#define AD_COAP_LIB_NO_MACROS
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_lib.h"

static struct ad_coap_lib lib;
static void *handle;
static const char *loaded;
static bool tried;
static int load_rc;
static char why[256];

/* Debian's flavours, OpenWrt's (libcoap-3, built --disable-dtls), and libcoap's other DTLS builds. */
static const char *const with_dtls[] = {
	"libcoap-3-openssl.so.3",  "libcoap-3-gnutls.so.3", "libcoap-3-mbedtls.so.3",
	"libcoap-3-tinydtls.so.3", "libcoap-3.so.3",
};
static const char *const without_dtls[] = {
	"libcoap-3-notls.so.3",	 "libcoap-3.so.3",	    "libcoap-3-mbedtls.so.3",
	"libcoap-3-gnutls.so.3", "libcoap-3-tinydtls.so.3", "libcoap-3-openssl.so.3",
};

/*
 * dlopen @name and look every function up into @t. Returns the handle, or
 * NULL with the reason in why[] (the library is closed again).
 */
static void *open_one(const char *name, struct ad_coap_lib *t)
{
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(why, sizeof(why), "%s", dlerror());
		return NULL;
	}
	/* POSIX: dlsym's void * converts to a function pointer. */
#define AD_COAP_LOOKUP(f)                                          \
	if (!(t->f = (__typeof__(t->f))dlsym(h, #f))) {            \
		snprintf(why, sizeof(why), "%s: no %s", name, #f); \
		dlclose(h);                                        \
		return NULL;                                       \
	}
	AD_COAP_FUNCTIONS(AD_COAP_LOOKUP)
#undef AD_COAP_LOOKUP
	return h;
}

int ad_coap_lib_load(bool dtls)
{
	const char *const *names = dtls ? with_dtls : without_dtls;
	size_t n = dtls ? sizeof(with_dtls) / sizeof(with_dtls[0])
			: sizeof(without_dtls) / sizeof(without_dtls[0]);
	const char *env = getenv("FIELDMQ_LIBCOAP");
	struct ad_coap_lib t;
	void *first = NULL;
	const char *first_name = NULL;
	struct ad_coap_lib first_t;

	if (tried)
		return load_rc;
	tried = true;
	if (env && env[0]) {
		names = &env;
		n = 1;
	}
	for (size_t i = 0; i < n; i++) {
		void *h = open_one(names[i], &t);

		if (!h)
			continue;
		/* Without DTLS wanted, or asked for by name: the first that loads. */
		if (!dtls || n == 1 || t.coap_dtls_is_supported()) {
			if (first)
				dlclose(first);
			first = h;
			first_name = names[i];
			first_t = t;
			break;
		}
		/* A flavour without DTLS is kept in case no other has it. */
		if (!first) {
			first = h;
			first_name = names[i];
			first_t = t;
		} else {
			dlclose(h);
		}
	}
	if (!first) {
		load_rc = -ENOENT;
		return load_rc;
	}
	handle = first;
	loaded = first_name;
	lib = first_t;
	why[0] = '\0';
	lib.coap_startup();
	load_rc = 0;
	return 0;
}

const char *ad_coap_lib_name(void)
{
	return loaded;
}

const char *ad_coap_lib_error(void)
{
	return why;
}

const struct ad_coap_lib *ad__coap_lib(void)
{
	if (!handle && ad_coap_lib_load(false)) {
		fprintf(stderr, "fieldmq: cannot load libcoap: %s\n", why);
		abort();
	}
	return &lib;
}
