/*
 * auth_files.h - reading the broker's acl_file and password_file: at start
 * (gateway/config_broker.c) and again on SIGHUP (gateway/gateway.c), where a bad
 * file keeps the one in use.
 */
#ifndef FIELDMQ_AUTH_FILES_H
#define FIELDMQ_AUTH_FILES_H

#include <stddef.h>

struct brk;
struct brk_acl;
struct brk_passwd;
struct gw_config;
struct gw_logger;

/* The most either file may hold: it is read whole into memory. */
#define GW_AUTH_FILE_MAX (4u << 20)

/*
 * gw_acl_load / gw_passwd_load - read @path and parse it (brk_acl_parse,
 * brk_passwd_parse). 0 and *out; or -EINVAL with *line the 1-based line of
 * the error (0: the file as a whole: unreadable, too large) and a message in
 * @msg (without the file name); or -ENOMEM. gw_passwd_load loads mbedTLS's
 * crypto library first (gateway/tls/mbed_lib.h): -ENOENT, *line 0 and why in
 * @msg when it cannot.
 */
int gw_acl_load(const char *path, struct brk_acl **out, unsigned int *line, char *msg, size_t n);
int gw_passwd_load(const char *path, struct brk_passwd **out, unsigned int *line, char *msg,
		   size_t n);

/*
 * gw_auth_reload - SIGHUP: read @cfg's acl_file and password_file again (those
 * configured) and hand them to @b; the ones replaced are freed and @cfg
 * points at the new ones. A file that fails keeps the one in use, logged
 * with its file:line. 0, or the first error (-EINVAL, -ENOMEM).
 */
int gw_auth_reload(struct gw_config *cfg, struct brk *b, const struct gw_logger *lg);

#endif
