/*
 * serial_setup.h - what the serial glue uses to set a port up, beyond the
 * sans-I/O machine of serial_int.h: building a device's and its points'
 * struct ser_dev / ser_point from their device-map keys (serial_build.c;
 * it allocates, no I/O), and opening the line (serial_open.c; blocking
 * system calls, run on the libuv thread pool). No libuv in either. Private
 * to adapters/serial/ and its tests.
 */
#ifndef FIELDMQ_SERIAL_SETUP_H
#define FIELDMQ_SERIAL_SETUP_H

#include "adapters/serial/serial_int.h"

struct sockaddr_storage;

/* What the machine's devices and points need beyond struct ser_dev / ser_point. */
struct ser_dev_rt {
	regex_t match;
	bool has_match;
	char *jbuf; /* json match terms, cut in place */
	char pair[17], kv[17];
	uint8_t poll_cmd[SER_MAX_CMD];
};

struct ser_point_rt {
	struct ser_fmt fmt;
	regex_t resp;
	bool has_fmt, has_resp;
	unsigned int column; /* csv by number */
};

/*
 * Sets up device @x (and @rt, its compiled match, separators and poll
 * command) and its d->n_points points @pts / @prt from the keys of @d on bus
 * @sb. @x, @rt, @pts and @prt must be zeroed by the caller; what was set up
 * before a failure stays for the caller to release (regfree() of the
 * regexes marked has_*, gw_free() of rt->jbuf), as it does for a complete
 * one. Returns 0, -ENOMEM, or -EINVAL (a bad match regex, json match,
 * write_command or write_response).
 */
int ser_dev_build(const struct ser_bus *sb, struct ser_dev *x, struct ser_dev_rt *rt,
		  const struct ad_device *d, struct ser_point *pts, struct ser_point_rt *prt);

/*
 * Opens the tty of @sb (type rtu/serial) non-blocking and configures it raw
 * with its speed, framing and flow control; a FIFO or a character device
 * without termios is taken as it is. Blocks: thread pool only. Returns 0
 * with the fd in *out (the caller closes it), -EINVAL for a speed termios
 * does not have, or the -errno of open() / tcsetattr().
 */
int ser_tty_open(const struct ser_bus *sb, int *out);

/*
 * Resolves the host and port of @sb (type tcp) into *out. Blocks (DNS):
 * thread pool only. Returns 0, -EHOSTUNREACH, or -errno.
 */
int ser_tcp_resolve(const struct ser_bus *sb, struct sockaddr_storage *out);

#endif
