/*
 * coap_bench.c - load for the CoAP server of a running fieldmq: N CoAP
 * clients (one UDP socket, so one address and one broker session each)
 * publish with POST ps/bench/I, each with one request outstanding (NSTART
 * 1, RFC 7252 4.7), and the 2.04 responses are counted: a 2.04 means the
 * broker accepted the message. Also reports the daemon's CPU (utime + stime
 * from /proc/PID/stat over the run) and the growth of its VmRSS per client.
 *
 * Usage: coap_bench -u UDP_PORT -P PID [-n CLIENTS] [-t SECONDS] [-N] [-s PAYLOAD]
 *   -N: NON requests (answered by NON 2.04), else CON (2.04 in the ACK).
 * A request without an answer within 1 s is sent again as a new one.
 * Prints "coap_bench: name value unit" lines. Only 127.0.0.1 is used.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct cc {
	int fd;
	uint16_t mid;
	bool waiting;
	double sent_at;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* utime + stime of @pid, in clock ticks. */
static long long cpu_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* fields after the command: state is 3, utime 14, stime 15 (proc(5)) */
	for (i = 3; i < 15 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* A POST ps/bench/I with @payload bytes. */
static size_t build(uint8_t *b, bool con, uint16_t mid, int i, size_t payload)
{
	char seg[16];
	size_t n = 0, sl;

	b[n++] = (uint8_t)(0x40 | (con ? 0 : 1) << 4 | 2); /* ver 1, CON/NON, TKL 2 */
	b[n++] = 2;					   /* POST */
	b[n++] = (uint8_t)(mid >> 8);
	b[n++] = (uint8_t)mid;
	b[n++] = (uint8_t)(mid >> 8); /* token = mid */
	b[n++] = (uint8_t)mid;
	b[n++] = 0xB2; /* Uri-Path (11), 2 bytes */
	b[n++] = 'p';
	b[n++] = 's';
	b[n++] = 0x05; /* Uri-Path, delta 0, 5 bytes */
	memcpy(b + n, "bench", 5);
	n += 5;
	sl = (size_t)snprintf(seg, sizeof(seg), "%d", i);
	b[n++] = (uint8_t)sl;
	memcpy(b + n, seg, sl);
	n += sl;
	b[n++] = 0xff;
	memset(b + n, 'x', payload);
	return n + payload;
}

int main(int argc, char **argv)
{
	int port = 0, pid = 0, n = 100, opt, i;
	double secs = 5, t0, t1, end;
	size_t payload = 16;
	bool con = true;
	struct sockaddr_in to = { 0 };
	struct pollfd *pfd;
	struct cc *c;
	uint8_t buf[2048], rx[2048];
	uint64_t ok = 0, resent = 0, refused = 0;
	long rss0, rss1;
	long long cpu0, cpu1;

	while ((opt = getopt(argc, argv, "u:P:n:t:Ns:")) != -1) {
		switch (opt) {
		case 'u':
			port = atoi(optarg);
			break;
		case 'P':
			pid = atoi(optarg);
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'N':
			con = false;
			break;
		case 's':
			payload = (size_t)atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: coap_bench -u PORT -P PID [-n N] [-t S] [-N] [-s B]\n");
			return 2;
		}
	}
	if (!port || !pid || n < 1 || payload > 1024)
		return 2;
	to.sin_family = AF_INET;
	to.sin_port = htons((uint16_t)port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c = calloc((size_t)n, sizeof(*c));
	pfd = calloc((size_t)n, sizeof(*pfd));
	if (!c || !pfd)
		return 1;
	rss0 = rss_kb(pid);
	for (i = 0; i < n; i++) {
		c[i].fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (c[i].fd < 0 || connect(c[i].fd, (struct sockaddr *)&to, sizeof(to))) {
			perror("socket");
			return 1;
		}
		c[i].mid = (uint16_t)(i * 7919);
		pfd[i].fd = c[i].fd;
		pfd[i].events = POLLIN;
	}
	cpu0 = cpu_ticks(pid);
	t0 = now_s();
	end = t0 + secs;
	while (now_s() < end) {
		double t = now_s();

		for (i = 0; i < n; i++) {
			if (c[i].waiting && t - c[i].sent_at < 1.0)
				continue;
			if (c[i].waiting)
				resent++;
			c[i].mid++;
			if (send(c[i].fd, buf, build(buf, con, c[i].mid, i, payload), 0) > 0) {
				c[i].waiting = true;
				c[i].sent_at = t;
			}
		}
		if (poll(pfd, (nfds_t)n, 100) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			ssize_t r;

			if (!(pfd[i].revents & POLLIN))
				continue;
			while ((r = recv(c[i].fd, rx, sizeof(rx), MSG_DONTWAIT)) >= 4) {
				uint16_t mid = (uint16_t)(rx[2] << 8 | rx[3]);
				uint16_t tok = (rx[0] & 15) == 2 && r >= 6
						       ? (uint16_t)(rx[4] << 8 | rx[5])
						       : 0;

				/* CON: the ACK carries our mid; NON: the token is our mid. */
				if ((con ? mid : tok) != c[i].mid || !c[i].waiting)
					continue;
				c[i].waiting = false;
				if (rx[1] == (2 << 5 | 4))
					ok++;
				else
					refused++;
			}
		}
	}
	t1 = now_s();
	cpu1 = cpu_ticks(pid);
	rss1 = rss_kb(pid);
	printf("coap_bench: mode %s\n", con ? "CON" : "NON");
	printf("coap_bench: clients %d\n", n);
	printf("coap_bench: publishes %.0f /s\n", (double)ok / (t1 - t0));
	printf("coap_bench: refused %llu\n", (unsigned long long)refused);
	printf("coap_bench: resent %llu\n", (unsigned long long)resent);
	printf("coap_bench: fieldmq_cpu %.1f %%\n",
	       100.0 * (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) / (t1 - t0));
	{
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		printf("coap_bench: load_generator_cpu %.1f %%\n",
		       100.0 *
			       ((double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
				(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6) /
			       (t1 - t0));
	}
	if (ok)
		printf("coap_bench: fieldmq_cpu_per_publish %.1f us\n",
		       1e6 * (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) / (double)ok);
	printf("coap_bench: fieldmq_rss %ld kB\n", rss1);
	printf("coap_bench: rss_per_client %.1f kB\n", (double)(rss1 - rss0) / n);
	return 0;
}
