/*
 * tls.h - TLS client and server sessions with mbedTLS over memory buffers: the
 * uplink's client side and the broker's mqtts:// and wss:// listeners.
 *
 * mbedTLS never touches a socket here: ciphertext that arrives is handed to
 * gw_tls_feed(), ciphertext to send comes out through the send callback, and
 * the glue moves both with libuv. Nothing blocks the loop.
 *
 * Builds against mbedTLS 2.28 and 3.x.
 */
#ifndef FIELDMQ_TLS_H
#define FIELDMQ_TLS_H

#include "gateway/base/base.h"

struct gw_tls_conf;
struct gw_tls;

/*
 * gw_tls_conf_new - a client configuration: trust @ca_file (NULL or "": the
 * system's bundle in /etc/ssl/certs), present @cert_file / @key_file when
 * both are set, and verify the server's chain and name unless @insecure.
 * Reads the files at once (call at start-up). Errors are logged with the file
 * name and mbedTLS's reason. Returns 0 and *out, -EINVAL, -ENOMEM, or -ENOENT
 * when mbedTLS cannot be loaded (gateway/tls/mbed_lib.h; logged).
 */
int gw_tls_conf_new(const char *ca_file, const char *cert_file, const char *key_file, bool insecure,
		    const struct gw_logger *lg, struct gw_tls_conf **out);

/*
 * gw_tls_server_conf_new - a server configuration presenting @cert_file /
 * @key_file (both required). With @require_cert, clients must present a
 * certificate that @ca_file (then required) verifies; without, none is asked
 * for. TLS 1.2, and 1.3 when the library has it. Reads the files at once;
 * errors are logged with the file name and mbedTLS's reason. 0 and *out,
 * -EINVAL, -ENOMEM, -ENOENT (mbedTLS cannot be loaded; logged).
 */
int gw_tls_server_conf_new(const char *cert_file, const char *key_file, const char *ca_file,
			   bool require_cert, const struct gw_logger *lg, struct gw_tls_conf **out);
void gw_tls_conf_free(struct gw_tls_conf *c);

/* Where a session's ciphertext goes: 0, or -errno to fail the session. */
typedef int (*gw_tls_send_fn)(void *arg, const void *p, size_t len);

/*
 * gw_tls_new - a session of @c (which must outlive it) with @host as the
 * server name (SNI, and the name checked in the certificate). Returns 0 and
 * *out, -ENOMEM, -EINVAL.
 */
int gw_tls_new(struct gw_tls_conf *c, const char *host, gw_tls_send_fn send, void *arg,
	       struct gw_tls **out);
/* gw_tls_server_new - a server session of @c (which must outlive it). 0 and *out, -ENOMEM. */
int gw_tls_server_new(struct gw_tls_conf *c, gw_tls_send_fn send, void *arg, struct gw_tls **out);
void gw_tls_free(struct gw_tls *t);

/*
 * gw_tls_peer_cn - the common name of the peer's (verified) certificate into
 * @buf, NUL-terminated. 0, -ENOENT (no certificate or no CN), -EINVAL (longer
 * than @n - 1, or holds a NUL).
 */
int gw_tls_peer_cn(struct gw_tls *t, char *buf, size_t n);
/* "TLSv1.2", "TLSv1.3": the version negotiated (static string). */
const char *gw_tls_version(struct gw_tls *t);
/* Give back the input buffer while nothing waits in it (an idle session). */
void gw_tls_trim(struct gw_tls *t);
/*
 * gw_tls_sleep - an idle session gives back mbedTLS's record buffers (about
 * 33 KB with 16 KB records); the next gw_tls_read that has input,
 * gw_tls_write or gw_tls_close_notify takes new ones, transparently. 0
 * (asleep, or was), -EBUSY (not now: in a handshake, or a record half read
 * or written, or decrypted bytes unread), -EOPNOTSUPP (mbedTLS 3.x, which
 * does not install what this needs: its sessions keep their buffers). A
 * wake-up without memory makes that call fail (-ENOMEM / -EPROTO).
 */
int gw_tls_sleep(struct gw_tls *t);
bool gw_tls_asleep(const struct gw_tls *t);

/* Ciphertext received. 0 or -ENOMEM. */
int gw_tls_feed(struct gw_tls *t, const void *p, size_t len);

/*
 * gw_tls_handshake - advance the handshake with what has been fed. Returns 1
 * when it is complete, 0 when it needs more input, or -EPROTO with a
 * sentence in @err ("certificate verify failed: ...") for the log.
 */
int gw_tls_handshake(struct gw_tls *t, char *err, size_t errlen);

/*
 * gw_tls_read - decrypted bytes into @buf. Returns the count (> 0), 0 when
 * more input is needed, -ECONNRESET when the peer closed (close_notify),
 * -EPROTO on an error (described in @err).
 */
int gw_tls_read(struct gw_tls *t, void *buf, size_t cap, char *err, size_t errlen);

/* gw_tls_write - encrypt all of @p to the send callback. 0 or -EPROTO / the callback's error. */
int gw_tls_write(struct gw_tls *t, const void *p, size_t len);

/* The library's name and version, "mbed TLS 2.28.3", and whether it has TLS 1.3. */
const char *gw_tls_library(void);

/* Sends a close_notify alert (best effort). */
void gw_tls_close_notify(struct gw_tls *t);

#endif
