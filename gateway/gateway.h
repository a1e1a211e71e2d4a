/*
 * gateway.h - the daemon object: it owns the loop, the configuration, the
 * broker, the store, the uplink and the adapters, and runs the reading path
 * between them. gateway.c is the composition root, where the modules are
 * wired together; main.c only parses the command line and drives it.
 */
#ifndef FIELDMQ_GATEWAY_H
#define FIELDMQ_GATEWAY_H

#include <uv.h>

#include "gateway/base/base.h"
#include "gateway/config.h"

struct gw;

/*
 * gw_new - a daemon for @cfg (taken over: freed by gw_free) on @loop, logging
 * through @log. Returns 0 or -ENOMEM.
 */
int gw_gateway_new(uv_loop_t *loop, struct gw_config *cfg, struct gw_logger *log, struct gw **out);

/*
 * gw_start - open the store, start the broker's listeners, the uplink and the
 * adapters, and install the signal handlers (SIGTERM/SIGINT stop, SIGHUP
 * reloads the device maps). Returns 0 or -errno (e.g. -EADDRINUSE), with the
 * reason logged.
 */
int gw_gateway_start(struct gw *g);

/* Begins a graceful stop; the loop ends once every handle is closed. */
void gw_gateway_stop(struct gw *g);

/* Reloads the device maps; a bad map is logged and the old one kept. */
int gw_gateway_reload(struct gw *g);

/* Exit status for main(): 0 after a clean stop, 1 after a runtime failure. */
int gw_gateway_exit_code(const struct gw *g);

void gw_gateway_free(struct gw *g);

#endif
