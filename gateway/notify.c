/*
 * notify.c - systemd's notification datagrams (see notify.h). The protocol:
 * https://www.freedesktop.org/software/systemd/man/sd_notify.html - each
 * notification is one datagram on an AF_UNIX SOCK_DGRAM socket; the sender
 * is identified by its credentials, so nothing more is needed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "gateway/notify.h"

#define MOD "notify"
#define STATUS_MAX 256

struct gw_notify {
	struct gw_logger *log;
	int fd;
	struct sockaddr_un sa;
	socklen_t sa_len;
	uv_timer_t watchdog; /* runs when watchdog_ms > 0 */
	uint64_t watchdog_ms;
	bool closing;
	char status[STATUS_MAX];
};

int gw_notify_addr(const char *env, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n;

	if (!env || (env[0] != '/' && env[0] != '@') || !env[1])
		return -EINVAL;
	n = strlen(env);
	if (n > sizeof(sa->sun_path) - (env[0] == '/'))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, env, n);
	/* "@name": the abstract namespace, whose names start with a NUL and are not terminated. */
	if (env[0] == '@')
		sa->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (env[0] == '/'));
	return 0;
}

uint64_t gw_notify_watchdog_usec(const char *usec, const char *pid, pid_t self)
{
	unsigned long long v;
	char *end;

	if (!usec || !*usec)
		return 0;
	if (pid && *pid) {
		errno = 0;
		v = strtoull(pid, &end, 10);
		if (errno || *end || v != (unsigned long long)self)
			return 0;
	}
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno || *end || usec[0] == '-')
		return 0;
	return v;
}

/* Sends @msg as one datagram; a failure is logged at debug level only (systemd may be gone). */
static void send_msg(struct gw_notify *n, const char *msg)
{
	ssize_t r;

	do
		r = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&n->sa,
			   n->sa_len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		gw_log(n->log, LOG_DEBUG, MOD, "cannot notify: %s", strerror(errno));
}

static void on_watchdog(uv_timer_t *t)
{
	send_msg(container_of(t, struct gw_notify, watchdog), "WATCHDOG=1");
}

int gw_notify_new(struct uv_loop_s *loop, struct gw_logger *log, struct gw_notify **out)
{
	const char *env = getenv("NOTIFY_SOCKET");
	struct gw_notify *n;
	uint64_t usec;
	int rc;

	*out = NULL;
	if (!env || !*env)
		return 0;
	n = gw_calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->log = log;
	rc = gw_notify_addr(env, &n->sa, &n->sa_len);
	if (rc) {
		gw_log(log, LOG_WARNING, MOD, "NOTIFY_SOCKET=%s: %s; not notifying", env,
		       strerror(-rc));
		gw_free(n);
		return 0;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		rc = -errno;
		gw_log(log, LOG_ERR, MOD, "socket: %s", strerror(errno));
		gw_free(n);
		return rc;
	}
	uv_timer_init(loop, &n->watchdog);
	usec = gw_notify_watchdog_usec(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid());
	/* Twice per period, as sd_watchdog_enabled(3) advises; at least every 1 ms. */
	n->watchdog_ms = usec ? (usec / 2000 ? usec / 2000 : 1) : 0;
	if (n->watchdog_ms)
		uv_timer_start(&n->watchdog, on_watchdog, 0, n->watchdog_ms);
	gw_log(log, LOG_DEBUG, MOD, "notifying %s, watchdog every %" PRIu64 " ms", env,
	       n->watchdog_ms);
	*out = n;
	return 0;
}

void gw_notify_ready(struct gw_notify *n)
{
	if (n)
		send_msg(n, "READY=1");
}

void gw_notify_format_state(char *buf, size_t size, unsigned int online, unsigned int devices,
			    int uplink, uint64_t queued)
{
	if (uplink < 0)
		snprintf(buf, size, "%u/%u devices online, uplink off", online, devices);
	else
		snprintf(buf, size, "%u/%u devices online, uplink %s, %" PRIu64 " queued", online,
			 devices, uplink ? "connected" : "disconnected", queued);
}

void gw_notify_state(struct gw_notify *n, unsigned int online, unsigned int devices, int uplink,
		     uint64_t queued)
{
	char status[STATUS_MAX], msg[STATUS_MAX + 16];

	if (!n || n->closing)
		return;
	gw_notify_format_state(status, sizeof(status), online, devices, uplink, queued);
	if (!strcmp(status, n->status))
		return;
	memcpy(n->status, status, sizeof(status));
	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	send_msg(n, msg);
}

void gw_notify_stopping(struct gw_notify *n)
{
	if (!n || n->closing)
		return;
	n->closing = true;
	send_msg(n, "STOPPING=1\nSTATUS=stopping");
	uv_close((uv_handle_t *)&n->watchdog, NULL);
}

void gw_notify_free(struct gw_notify *n)
{
	if (!n)
		return;
	close(n->fd);
	gw_free(n);
}
