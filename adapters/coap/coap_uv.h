/*
 * coap_uv.h - one libcoap 4.3 context driven by the libuv loop, without a
 * second thread. Shared by the CoAP client adapter (devices in device maps)
 * and the CoAP server ([coap], the EMQX gateway interface): each makes its
 * own struct ad_coap_uv and adds sessions or endpoints to its context.
 *
 * How it works: libcoap (built with epoll, as Debian's and OpenWrt's are)
 * keeps all of a context's sockets and a timerfd for its own deadlines
 * (retransmits, observe refreshes, session timeouts) in one epoll fd,
 * coap_context_get_coap_fd(). A uv_poll watches that fd; when it is readable
 * the glue calls coap_io_process(ctx, COAP_IO_NO_WAIT), which reads what is
 * there, runs the application's handlers and returns at once. After every
 * round the glue asks coap_io_prepare_epoll() when libcoap next wants to run
 * and arms a uv_timer for that moment too (a belt to the timerfd's braces).
 *
 * Usage:
 *   struct ad_coap_uv *cu;
 *   int rc = ad_coap_uv_new(loop, log, "coap", &cu);   // 0 or -errno
 *   coap_context_t *ctx = ad_coap_uv_context(cu);
 *   coap_set_app_data(ctx, me);             // the context's app data is the user's
 *   coap_register_response_handler(ctx, ...);  // or endpoints + resources
 *   ... coap_send(session, pdu); ad_coap_uv_kick(cu);
 *   ad_coap_uv_close(cu, done, arg);        // frees ctx, then done(arg) once the
 *                                           // uv handles are closed; cu is gone
 *
 * Handlers registered with libcoap run on the loop thread, inside
 * coap_io_process(). They may call coap_send() and ad_coap_uv_kick(); they
 * must not call ad_coap_uv_close() (mark the owner closing and close from a
 * later callback, e.g. a uv_timer or uv_idle of the owner).
 *
 * libcoap's own log goes to stderr; ad_coap_uv_new() sets its level to
 * warnings (the server counts malformed PDUs from them). Process-wide.
 */
#ifndef FIELDMQ_COAP_UV_H
#define FIELDMQ_COAP_UV_H

#include <stdbool.h>

struct uv_loop_s;
struct gw_logger;
struct coap_context_t;
struct ad_coap_uv;

/*
 * Create a libcoap context and start watching it on @loop. @tag names the
 * owner in log lines ("coap", "coap-srv"); it must outlive the object.
 * Returns 0 and *@out, or -ENOMEM, or -ENOTSUP when this libcoap has no
 * epoll support (coap_context_get_coap_fd() is -1: not driven here), or a
 * libuv error. Nothing is left behind on failure.
 */
int ad_coap_uv_new(struct uv_loop_s *loop, const struct gw_logger *log, const char *tag,
		   struct ad_coap_uv **out);

/* The libcoap context (owned by @cu; freed by ad_coap_uv_close()). */
struct coap_context_t *ad_coap_uv_context(struct ad_coap_uv *cu);

/*
 * Ask for a processing round soon (on the next loop iteration): call it
 * after coap_send(), coap_new_client_session(), adding an endpoint or
 * anything else that changes libcoap's deadlines outside its handlers.
 * Cheap and idempotent; safe inside handlers.
 */
void ad_coap_uv_kick(struct ad_coap_uv *cu);

/*
 * Stop at once (no more handler calls from the loop), close the uv handles,
 * then free the context (its sessions, endpoints and resources; libcoap may
 * call the context's event handler while freeing, so keep its app data
 * alive until @done) and call @done(@arg) if not NULL; @cu is freed after
 * it. Not from inside a libcoap handler.
 */
void ad_coap_uv_close(struct ad_coap_uv *cu, void (*done)(void *arg), void *arg);

/* Processing rounds run so far (coap_io_process calls), for tests and stats. */
unsigned long ad_coap_uv_rounds(const struct ad_coap_uv *cu);

/*
 * Whether libcoap does DTLS (coaps://). The first libcoap call of the process
 * decides which flavour is loaded (coap_lib.h): called first, this loads one
 * with DTLS if one is installed. Configuration checks call it for coaps://.
 */
bool ad_coap_has_dtls(void);

/* The DTLS library libcoap was built with, for --check-config / --version ("OpenSSL", "none"). */
const char *ad_coap_tls_name(void);

#endif
