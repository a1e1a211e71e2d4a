/*
 * notify.h - systemd's service notification protocol (sd_notify(3)),
 * without libsystemd: one datagram of "KEY=VALUE\n" lines to the unix
 * socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
 * namespace). READY=1 once the listeners are up, STATUS= with the device and
 * uplink state, WATCHDOG=1 every half $WATCHDOG_USEC while the loop runs,
 * STOPPING=1 when a stop begins. Without $NOTIFY_SOCKET everything here is
 * a no-op, so the daemon runs the same outside systemd (and under procd).
 *
 * Threads: the loop thread only.
 */
#ifndef FIELDMQ_NOTIFY_H
#define FIELDMQ_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "gateway/base/base.h"

struct uv_loop_s;
struct gw_notify;

/*
 * gw_notify_addr - the socket address of @env (the value of NOTIFY_SOCKET):
 * "/path" or "@abstract". Returns 0 with *@sa and *@len set, -EINVAL for an
 * empty or relative name, -ENAMETOOLONG when it does not fit in sun_path.
 */
int gw_notify_addr(const char *env, struct sockaddr_un *sa, socklen_t *len);

/*
 * gw_notify_watchdog_usec - the watchdog period systemd asks for: @usec and
 * @pid are the values of WATCHDOG_USEC and WATCHDOG_PID (either may be
 * NULL), @self our pid. Returns the period in microseconds, or 0 when there
 * is none for us (unset, not a positive number, or meant for another pid).
 */
uint64_t gw_notify_watchdog_usec(const char *usec, const char *pid, pid_t self);

/*
 * gw_notify_new - reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and,
 * when there is a socket, opens one to write to it and starts the watchdog
 * timer on @loop. *@out is NULL (and 0 returned) when there is no socket to
 * notify. Returns 0, -ENOMEM, or a socket error (logged). A bad
 * NOTIFY_SOCKET is logged and ignored.
 */
int gw_notify_new(struct uv_loop_s *loop, struct gw_logger *log, struct gw_notify **out);

/* Sends READY=1: the listeners are up. @n may be NULL. */
void gw_notify_ready(struct gw_notify *n);

/*
 * gw_notify_format_state - the STATUS= text for @online of @devices devices
 * online and the uplink (@uplink: -1 not enabled, 0 disconnected, 1
 * connected, with @queued messages in its queue) into @buf of @size bytes.
 */
void gw_notify_format_state(char *buf, size_t size, unsigned int online, unsigned int devices,
			    int uplink, uint64_t queued);

/* Sends that STATUS= when it differs from the last one sent. @n may be NULL. */
void gw_notify_state(struct gw_notify *n, unsigned int online, unsigned int devices, int uplink,
		     uint64_t queued);

/* Sends STOPPING=1 and closes the watchdog timer. @n may be NULL. */
void gw_notify_stopping(struct gw_notify *n);

/* Frees @n (NULL is fine) after gw_notify_stopping() and the loop's end. */
void gw_notify_free(struct gw_notify *n);

#endif
