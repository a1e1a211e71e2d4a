/*
 * serial_sim.c - a serial line device for tests and demos: prints lines of
 * one of the kinds the serial adapter parses, answers queries and commands,
 * and can disappear and come back like an unplugged USB adapter.
 *
 *   serial_sim --pty LINK          make a pty, LINK -> its slave (the daemon opens LINK)
 *   serial_sim --device PATH       write into an existing tty (one end of a socat pair)
 *   serial_sim --tcp HOST:PORT     a raw TCP serial server (one client at a time)
 *   options: --mode M          nmea | csv | kv | json | mixed (nmea + json) | scpi | none
 *            --rate N          lines per second (default 10; 0 = only answer)
 *            --count N         stop writing after N lines (still answers)
 *            --bad-every N     every N-th NMEA sentence has a wrong checksum
 *            --noise-every N   every N-th line is preceded by binary noise and an
 *                              overlong line
 *            --vanish-after S  (--pty) remove the pty after S seconds ...
 *            --vanish-for S    ... for S seconds, then make a new one (repeats)
 * Lines: nmea: GGA/RMC/VTG/GSA/GSV/ZDA of a moving fix; csv: a header then
 * "time,temp,hum,pres"; kv: "id=1;temp=21.5;hum=40"; json: rtl_433 lines of
 * two sensors (Acurite-Tower id 1234 and LaCrosse-TX141THBv2 id 77). Values
 * move with the line counter n: temp = 20 + (n % 50) / 10.
 * scpi: answers "MEAS:TEMP?" with "+2.150E+01" style numbers, "*IDN?" with
 * an identity, "SOUR:VOLT <v>" with "OK <v>" (and remembers it, read back by
 * "SOUR:VOLT?"), anything else with "ERR". Every mode answers these.
 * SIGUSR1 makes the device vanish now, SIGUSR2 brings it back (--pty only).
 * Prints "ready" once the line exists. SIGTERM/SIGINT stop.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <netinet/in.h>

static volatile sig_atomic_t stop, vanish_now, return_now;

static void on_signal(int s)
{
	if (s == SIGUSR1)
		vanish_now = 1;
	else if (s == SIGUSR2)
		return_now = 1;
	else
		stop = 1;
}

struct sim {
	const char *pty_link, *device, *tcp;
	const char *mode;
	double rate;
	long count;
	long bad_every, noise_every;
	double vanish_after, vanish_for;
	int fd;	    /* the line: pty master, tty or TCP client */
	int master; /* --pty */
	int lfd;    /* --tcp listener */
	long n;
	double volt;
	char in[1024];
	size_t in_len;
	bool header_sent;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sim *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	size_t off = 0;

	if (s->fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	while (off < (size_t)n) {
		ssize_t w = write(s->fd, buf + off, (size_t)n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = s->fd, .events = POLLOUT };

			if (poll(&p, 1, 200) <= 0)
				return; /* nobody reads: drop the line, as a device would */
			continue;
		}
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void nmea(struct sim *s, const char *body, bool bad)
{
	unsigned int sum = 0;
	const char *p;

	for (p = body; *p; p++)
		sum ^= (unsigned char)*p;
	put(s, "$%s*%02X\r\n", body, bad ? sum ^ 0x5a : sum);
}

static void line_nmea(struct sim *s, long n)
{
	static const char *const kinds[] = { "GGA", "RMC", "VTG", "GSA", "GSV", "ZDA" };
	char b[256];
	double lat = 4807.038 + (double)(n % 100) / 1000, lon = 1131.000 + (double)(n % 100) / 500;
	long t = 120000 + n % 3600;
	bool bad = s->bad_every && n % s->bad_every == s->bad_every - 1;

	switch (n % 6) {
	case 0:
		snprintf(b, sizeof(b), "GPGGA,%06ld.00,%.3f,N,%09.3f,E,1,08,0.9,%.1f,M,46.9,M,,", t,
			 lat, lon, 545.4 + (double)(n % 10));
		break;
	case 1:
		snprintf(b, sizeof(b),
			 "GPRMC,%06ld.00,A,%.3f,N,%09.3f,E,022.4,084.4,071226,003.1,W", t, lat,
			 lon);
		break;
	case 2:
		snprintf(b, sizeof(b), "GPVTG,084.4,T,081.3,M,022.4,N,041.5,K,A");
		break;
	case 3:
		snprintf(b, sizeof(b), "GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1");
		break;
	case 4:
		snprintf(b, sizeof(b), "GPGSV,1,1,08,04,15,270,38,05,40,080,42");
		break;
	default:
		snprintf(b, sizeof(b), "GPZDA,%06ld.00,07,12,2026,00,00", t);
		break;
	}
	(void)kinds;
	nmea(s, b, bad);
}

static void line_json(struct sim *s, long n)
{
	if (n % 2 == 0)
		put(s,
		    "{\"time\":\"2026-12-07 10:00:00\",\"model\":\"Acurite-Tower\",\"id\":1234,"
		    "\"channel\":\"A\",\"battery_ok\":1,\"temperature_C\":%.1f,\"humidity\":%ld,"
		    "\"mic\":\"CHECKSUM\"}\n",
		    20 + (double)(n % 50) / 10, 40 + n % 10);
	else
		put(s,
		    "{\"time\":\"2026-12-07 10:00:00\",\"model\":\"LaCrosse-TX141THBv2\",\"id\":77,"
		    "\"channel\":1,\"battery_ok\":1,\"temperature_C\":%.1f,\"humidity\":55}\n",
		    5 + (double)(n % 20) / 10);
}

static void write_line(struct sim *s)
{
	long n = s->n++;
	double temp = 20 + (double)(n % 50) / 10;

	if (s->noise_every && n % s->noise_every == s->noise_every - 1) {
		static const unsigned char noise[] = { 0x00, 0xff, 0xfe, 0x80, 0x13, 0x11, 0xc3 };
		char big[3000];

		if (s->fd >= 0 && write(s->fd, noise, sizeof(noise)) < 0)
			return;
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		put(s, "\n%s\n", big);
	}
	if (!strcmp(s->mode, "nmea")) {
		line_nmea(s, n);
	} else if (!strcmp(s->mode, "json")) {
		line_json(s, n);
	} else if (!strcmp(s->mode, "mixed")) {
		if (n % 2)
			line_json(s, n / 2);
		else
			line_nmea(s, n / 2);
	} else if (!strcmp(s->mode, "csv")) {
		if (!s->header_sent || n % 100 == 0) {
			put(s, "time,temp,hum,pres\r\n");
			s->header_sent = true;
		}
		put(s, "12:%02ld:%02ld,%.1f,%ld,%ld\r\n", n / 60 % 60, n % 60, temp, 40 + n % 10,
		    1000 + n % 30);
	} else if (!strcmp(s->mode, "kv")) {
		put(s, "id=1;temp=%.1f;hum=%ld\r\nid=2;temp=%.1f;hum=%ld\r\n", temp, 40 + n % 10,
		    temp - 10, 60 + n % 10);
	}
}

/* One query line from the daemon. */
static void answer(struct sim *s, char *q)
{
	size_t n = strlen(q);

	while (n && (q[n - 1] == '\r' || q[n - 1] == ' '))
		q[--n] = '\0';
	if (!strcmp(q, "MEAS:TEMP?"))
		put(s, "%+.3E\r\n", 20 + (double)(s->n++ % 50) / 10);
	else if (!strcmp(q, "*IDN?"))
		put(s, "fieldmq,serial_sim,0,1.0\r\n");
	else if (!strcmp(q, "SOUR:VOLT?"))
		put(s, "%+.3E\r\n", s->volt);
	else if (!strncmp(q, "SOUR:VOLT ", 10)) {
		char *end;
		double v = strtod(q + 10, &end);

		if (end == q + 10 || *end) {
			put(s, "ERR\r\n");
		} else {
			s->volt = v;
			put(s, "OK %g\r\n", v);
		}
	} else if (n)
		put(s, "ERR\r\n");
}

static void on_input(struct sim *s)
{
	ssize_t r = read(s->fd, s->in + s->in_len, sizeof(s->in) - 1 - s->in_len);
	char *nl;

	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* The other side closed (the daemon let go of the pty, the TCP client left). */
		if (s->tcp) {
			close(s->fd);
			s->fd = -1;
		}
		return;
	}
	s->in_len += (size_t)r;
	s->in[s->in_len] = '\0';
	while ((nl = strchr(s->in, '\n'))) {
		*nl = '\0';
		answer(s, s->in);
		memmove(s->in, nl + 1, s->in_len - (size_t)(nl + 1 - s->in) + 1);
		s->in_len -= (size_t)(nl + 1 - s->in);
	}
	if (s->in_len == sizeof(s->in) - 1)
		s->in_len = 0;
}

static int make_pty(struct sim *s)
{
	struct termios t;
	char *name;
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	if (m < 0 || grantpt(m) || unlockpt(m) || !(name = ptsname(m))) {
		perror("serial_sim: pty");
		return -1;
	}
	if (tcgetattr(m, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(m, TCSANOW, &t);
	}
	/* The slave keeps raw mode too: open it once to set it. */
	{
		int sl = open(name, O_RDWR | O_NOCTTY);

		if (sl >= 0) {
			if (tcgetattr(sl, &t) == 0) {
				cfmakeraw(&t);
				tcsetattr(sl, TCSANOW, &t);
			}
			close(sl);
		}
	}
	fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
	unlink(s->pty_link);
	if (symlink(name, s->pty_link)) {
		perror("serial_sim: symlink");
		close(m);
		return -1;
	}
	s->master = s->fd = m;
	return 0;
}

static void drop_pty(struct sim *s)
{
	unlink(s->pty_link);
	if (s->master >= 0)
		close(s->master);
	s->master = s->fd = -1;
}

static int listen_tcp(struct sim *s)
{
	char host[256], *colon;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	int one = 1, fd;

	snprintf(host, sizeof(host), "%s", s->tcp);
	colon = strrchr(host, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res))
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 4)) {
		perror("serial_sim: listen");
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	s->lfd = fd;
	return 0;
}

int main(int argc, char **argv)
{
	struct sim s = { .mode = "kv", .rate = 10, .count = -1, .fd = -1, .master = -1, .lfd = -1 };
	double next, gone_at = 0, back_at = 0, t0;
	bool gone = false;
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fprintf(stderr, "serial_sim: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--pty"))
			s.pty_link = v;
		else if (!strcmp(a, "--device"))
			s.device = v;
		else if (!strcmp(a, "--tcp"))
			s.tcp = v;
		else if (!strcmp(a, "--mode"))
			s.mode = v;
		else if (!strcmp(a, "--rate"))
			s.rate = atof(v);
		else if (!strcmp(a, "--count"))
			s.count = atol(v);
		else if (!strcmp(a, "--bad-every"))
			s.bad_every = atol(v);
		else if (!strcmp(a, "--noise-every"))
			s.noise_every = atol(v);
		else if (!strcmp(a, "--vanish-after"))
			s.vanish_after = atof(v);
		else if (!strcmp(a, "--vanish-for"))
			s.vanish_for = atof(v);
		else {
			fprintf(stderr, "serial_sim: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGUSR1, on_signal);
	signal(SIGUSR2, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (s.pty_link) {
		if (make_pty(&s))
			return 1;
	} else if (s.device) {
		s.fd = open(s.device, O_RDWR | O_NOCTTY | O_NONBLOCK);
		if (s.fd < 0) {
			perror(s.device);
			return 1;
		}
	} else if (s.tcp) {
		if (listen_tcp(&s))
			return 1;
	} else {
		fprintf(stderr, "serial_sim: --pty, --device or --tcp\n");
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	t0 = next = now_s();
	if (s.vanish_after > 0)
		gone_at = t0 + s.vanish_after;
	while (!stop) {
		struct pollfd p[2];
		int np = 0, timeout = 100;
		double now = now_s();

		if (s.pty_link && !gone && (vanish_now || (gone_at && now >= gone_at))) {
			vanish_now = 0;
			drop_pty(&s);
			gone = true;
			back_at = s.vanish_for > 0 ? now + s.vanish_for : 0;
			fprintf(stderr, "serial_sim: gone\n");
		}
		if (gone && (return_now || (back_at && now >= back_at))) {
			return_now = 0;
			if (make_pty(&s))
				return 1;
			gone = false;
			gone_at = s.vanish_after > 0 ? now + s.vanish_after : 0;
			fprintf(stderr, "serial_sim: back\n");
		}
		return_now = vanish_now = 0;
		if (s.rate > 0 && s.count && now >= next && s.fd >= 0) {
			int burst = 0;

			/* Catch up at most a second's worth after a stall, in bursts. */
			if (now - next > 1)
				next = now;
			while (s.count && now >= next && burst++ < 1000) {
				write_line(&s);
				if (s.count > 0)
					s.count--;
				next += 1 / s.rate;
			}
		}
		if (s.rate > 0 && s.count) {
			double ms = (next - now_s()) * 1000;

			timeout = ms > 0 ? (int)ms : 0;
		}
		if (s.fd >= 0) {
			p[np].fd = s.fd;
			p[np++].events = POLLIN;
		}
		if (s.lfd >= 0 && s.fd < 0) {
			p[np].fd = s.lfd;
			p[np++].events = POLLIN;
		}
		if (timeout > 100)
			timeout = 100;
		if (poll(p, (nfds_t)np, timeout) <= 0)
			continue;
		for (i = 0; i < np; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == s.lfd) {
				s.fd = accept(s.lfd, NULL, NULL);
				if (s.fd >= 0)
					fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
			} else if (p[i].revents & POLLIN) {
				on_input(&s);
			} else if (p[i].revents & (POLLHUP | POLLERR)) {
				/* A pty master with no slave open yet reports HUP: wait. */
				if (s.tcp) {
					close(s.fd);
					s.fd = -1;
				} else {
					struct timespec ts = { 0, 20 * 1000 * 1000 };

					nanosleep(&ts, NULL);
				}
			}
		}
	}
	if (s.pty_link)
		drop_pty(&s);
	else if (s.fd >= 0)
		close(s.fd);
	if (s.lfd >= 0)
		close(s.lfd);
	return 0;
}
