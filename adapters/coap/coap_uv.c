/*
 * coap_uv.c - a libcoap 4.3 context on the libuv loop (see coap_uv.h).
 *
 * libcoap built with epoll gathers every socket of a context and a timerfd
 * for its deadlines in one epoll fd. That fd is readable whenever libcoap has
 * something to do, so one uv_poll on it replaces libcoap's own wait, and
 * coap_io_process(ctx, COAP_IO_NO_WAIT) does the work without blocking. The
 * uv_timer covers deadlines computed after a send made outside a handler
 * (4.3.1 re-arms its timerfd only in coap_io_prepare_epoll()) and kicks.
 */
#include "adapters/coap/coap_lib.h"
#include <errno.h>
#include <uv.h>

#include "adapters/coap/coap_uv.h"
#include "gateway/base/base.h"

struct ad_coap_uv {
	uv_poll_t poll;
	uv_timer_t timer;
	coap_context_t *ctx;
	const struct gw_logger *log;
	const char *tag;
	unsigned long rounds;
	int open_handles; /* uv handles not yet closed */
	bool polling;	  /* poll was initialised */
	bool closing;
	void (*done)(void *arg);
	void *done_arg;
};

static void on_timer(uv_timer_t *t);

/* Arm the timer for libcoap's next deadline (0 from libcoap: none). */
static void rearm(struct ad_coap_uv *cu)
{
	coap_tick_t now;
	unsigned int ms;

	coap_ticks(&now);
	ms = coap_io_prepare_epoll(cu->ctx, now);
	if (ms == 0) {
		uv_timer_stop(&cu->timer);
		return;
	}
	uv_timer_start(&cu->timer, on_timer, ms, 0);
}

/* One round: read what is there, run handlers, send what is due, re-arm. */
static void process(struct ad_coap_uv *cu)
{
	if (cu->closing || !cu->ctx)
		return;
	cu->rounds++;
	if (coap_io_process(cu->ctx, COAP_IO_NO_WAIT) < 0)
		gw_log(cu->log, LOG_DEBUG, cu->tag, "coap_io_process failed");
	rearm(cu);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct ad_coap_uv *cu = container_of(h, struct ad_coap_uv, poll);

	(void)events;
	if (status < 0)
		gw_log(cu->log, LOG_WARNING, cu->tag, "poll of libcoap's fd: %s",
		       uv_strerror(status));
	process(cu);
}

static void on_timer(uv_timer_t *t)
{
	process(container_of(t, struct ad_coap_uv, timer));
}

int ad_coap_uv_new(uv_loop_t *loop, const struct gw_logger *log, const char *tag,
		   struct ad_coap_uv **out)
{
	struct ad_coap_uv *cu;
	int fd, rc;

	*out = NULL;
	/* Loads libcoap (and calls coap_startup) on the first call: coap_lib.h. */
	rc = ad_coap_lib_load(false);
	if (rc) {
		gw_log(log, LOG_ERR, tag ? tag : "coap", "cannot load libcoap: %s",
		       ad_coap_lib_error());
		return rc;
	}
	/*
	 * Warnings: the CoAP server counts libcoap's "discard malformed PDU"
	 * warnings through its log handler (coap_srv_uv.c). They come once per
	 * packet (ICMP errors too): a handler that prints should rate-limit.
	 */
	coap_set_log_level(LOG_WARNING);
	cu = gw_calloc(1, sizeof(*cu));
	if (!cu)
		return -ENOMEM;
	cu->log = log;
	cu->tag = tag ? tag : "coap";
	cu->ctx = coap_new_context(NULL);
	if (!cu->ctx) {
		rc = -ENOMEM;
		goto fail;
	}
	fd = coap_context_get_coap_fd(cu->ctx);
	if (fd < 0) {
		gw_log(log, LOG_ERR, cu->tag,
		       "this libcoap has no epoll support: cannot run on the loop");
		rc = -ENOTSUP;
		goto fail;
	}
	rc = uv_timer_init(loop, &cu->timer);
	if (rc < 0)
		goto fail;
	cu->timer.data = cu;
	cu->poll.data = cu;
	cu->open_handles = 1;
	rc = uv_poll_init(loop, &cu->poll, fd);
	if (rc < 0)
		goto fail_timer;
	cu->open_handles = 2;
	cu->polling = true;
	rc = uv_poll_start(&cu->poll, UV_READABLE, on_poll);
	if (rc < 0)
		goto fail_timer;
	*out = cu;
	return 0;

fail_timer:
	/* Handles are initialised: hand them to close, which frees @cu. */
	ad_coap_uv_close(cu, NULL, NULL);
	return rc;
fail:
	if (cu->ctx)
		coap_free_context(cu->ctx);
	gw_free(cu);
	return rc;
}

struct coap_context_t *ad_coap_uv_context(struct ad_coap_uv *cu)
{
	return cu->ctx;
}

void ad_coap_uv_kick(struct ad_coap_uv *cu)
{
	if (cu->closing)
		return;
	uv_timer_start(&cu->timer, on_timer, 0, 0);
}

unsigned long ad_coap_uv_rounds(const struct ad_coap_uv *cu)
{
	return cu->rounds;
}

static void on_closed(uv_handle_t *h)
{
	struct ad_coap_uv *cu = h->data;

	if (--cu->open_handles > 0)
		return;
	/*
	 * The poll is closed: now libcoap may close its epoll fd. Freeing the
	 * context frees its sessions and endpoints; libcoap may still call the
	 * owner's event handler from here (COAP_EVENT_SESSION_CLOSED).
	 */
	if (cu->ctx)
		coap_free_context(cu->ctx);
	cu->ctx = NULL;
	if (cu->done)
		cu->done(cu->done_arg);
	gw_free(cu);
}

void ad_coap_uv_close(struct ad_coap_uv *cu, void (*done)(void *arg), void *arg)
{
	if (cu->closing)
		return;
	cu->closing = true;
	cu->done = done;
	cu->done_arg = arg;
	/* The poll watches the context's epoll fd: stop it before libcoap closes the fd. */
	if (cu->polling)
		uv_poll_stop(&cu->poll);
	uv_timer_stop(&cu->timer);
	uv_close((uv_handle_t *)&cu->timer, on_closed);
	if (cu->polling)
		uv_close((uv_handle_t *)&cu->poll, on_closed);
}

bool ad_coap_has_dtls(void)
{
	/* The first caller decides the flavour: configuration checks, with coaps:// in hand. */
	return ad_coap_lib_load(true) == 0 && coap_dtls_is_supported() != 0;
}

const char *ad_coap_tls_name(void)
{
	const coap_tls_version_t *v;

	if (ad_coap_lib_load(false))
		return "none";
	v = coap_get_tls_library_version();

	switch (v ? v->type : COAP_TLS_LIBRARY_NOTLS) {
	case COAP_TLS_LIBRARY_TINYDTLS:
		return "TinyDTLS";
	case COAP_TLS_LIBRARY_OPENSSL:
		return "OpenSSL";
	case COAP_TLS_LIBRARY_GNUTLS:
		return "GnuTLS";
	case COAP_TLS_LIBRARY_MBEDTLS:
		return "Mbed TLS";
	default:
		return "none";
	}
}
