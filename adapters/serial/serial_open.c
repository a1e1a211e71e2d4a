/*
 * serial_open.c - opening a serial line, blocking: a tty configured from the
 * bus keys (speed, data bits, parity, stop bits, flow control) with termios,
 * or the address of a raw TCP serial server. Run on the libuv thread pool by
 * serial_conn_uv.c, never on the loop; no libuv here.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sys/socket.h>

#include "adapters/serial/serial_setup.h"
static speed_t speed_of(uint32_t baud)
{
	static const struct {
		uint32_t baud;
		speed_t speed;
	} speeds[] = {
		{ 50, B50 },	       { 75, B75 },	      { 110, B110 },
		{ 134, B134 },	       { 150, B150 },	      { 200, B200 },
		{ 300, B300 },	       { 600, B600 },	      { 1200, B1200 },
		{ 1800, B1800 },       { 2400, B2400 },	      { 4800, B4800 },
		{ 9600, B9600 },       { 19200, B19200 },     { 38400, B38400 },
		{ 57600, B57600 },     { 115200, B115200 },   { 230400, B230400 },
		{ 460800, B460800 },   { 500000, B500000 },   { 576000, B576000 },
		{ 921600, B921600 },   { 1000000, B1000000 }, { 1152000, B1152000 },
		{ 1500000, B1500000 }, { 2000000, B2000000 }, { 2500000, B2500000 },
		{ 3000000, B3000000 }, { 3500000, B3500000 }, { 4000000, B4000000 },
	};
	unsigned int i;

	for (i = 0; i < GW_ARRAY_SIZE(speeds); i++)
		if (speeds[i].baud == baud)
			return speeds[i].speed;
	return B0;
}

/* On the thread pool: open and configure the tty. */
int ser_tty_open(const struct ser_bus *sb, int *out)
{
	struct termios t;
	speed_t sp = speed_of(sb->baud);
	int fd;

	if (sp == B0)
		return -EINVAL;
	fd = open(sb->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
		t.c_cflag |= CLOCAL | CREAD;
		t.c_cflag |= sb->data_bits == 5	  ? CS5
			     : sb->data_bits == 6 ? CS6
			     : sb->data_bits == 7 ? CS7
						  : CS8;
		if (sb->parity != 'N')
			t.c_cflag |= PARENB | (sb->parity == 'O' ? PARODD : 0);
		if (sb->stop_bits == 2)
			t.c_cflag |= CSTOPB;
		t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
		if (sb->flow == SER_FLOW_RTSCTS)
			t.c_cflag |= CRTSCTS;
		else if (sb->flow == SER_FLOW_XONXOFF)
			t.c_iflag |= IXON | IXOFF;
		/*
		 * VMIN 1: a non-blocking read with nothing to read fails with EAGAIN;
		 * with VMIN 0 it returns 0, which is also what a hang-up returns.
		 */
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		cfsetispeed(&t, sp);
		cfsetospeed(&t, sp);
		if (tcsetattr(fd, TCSANOW, &t)) {
			int err = -errno;

			close(fd);
			return err;
		}
		tcflush(fd, TCIFLUSH); /* what queued before we came is stale */
	} else if (errno != ENOTTY && errno != EINVAL) {
		int err = -errno;

		close(fd);
		return err;
	}
	/* A FIFO or a character device without termios is read as it is. */
	*out = fd;
	return 0;
}

/* On the thread pool: the serial server's address. */
int ser_tcp_resolve(const struct ser_bus *sb, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", sb->port);
	rc = getaddrinfo(sb->host, port, &hints, &res);
	if (rc || !res)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	memcpy(out, res->ai_addr, GW_MIN((size_t)res->ai_addrlen, sizeof(*out)));
	freeaddrinfo(res);
	return 0;
}
