/*
 * ack_load.c - QoS 1 publishers that measure their PUBACKs, and a counting
 * subscriber, for the forwarded-QoS-1 section of `make bench`
 * (bench/acks_bench.sh). One process, one epoll loop, MQTT 3.1.1 encoded by
 * hand.
 *
 * Publishers:  ack_load -p PORT [-c CONNS] [-w WINDOW] [-d SECS] [-u WARMUP]
 *                       [-t PREFIX] [-l PAYLOAD_LEN] [-i ID_PREFIX]
 *   CONNS connections each keep WINDOW QoS 1 PUBLISHes unacknowledged
 *   (WINDOW 1: stop-and-wait, the next PUBLISH goes when the PUBACK came).
 *   Connection i publishes to PREFIX/i. After WARMUP seconds, for SECS
 *   seconds, every PUBACK is timed from its PUBLISH's write. Prints
 *   "RESULT acked=N rate=MSGS_PER_S p50_us=.. p99_us=.. max_us=.. sent=N"
 *   where sent counts every PUBLISH written, warm-up included, and acked the
 *   PUBACKs of the measured window.
 *
 * Subscriber:  ack_load -p PORT -S FILTER [-q QOS] [-n COUNT] [-T IDLE_SECS]
 *   Subscribes to FILTER and counts PUBLISHes until COUNT arrived (0: no
 *   limit) or none came for IDLE_SECS (default 3) after the first. Prints
 *   "RESULT received=N secs=FIRST_TO_LAST rate=MSGS_PER_S". A QoS 1
 *   subscription is acknowledged.
 *
 * Exit 1 on an error (refused connection, closed by the broker, no CONNACK).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF 65536
#define WBUF (256 * 1024)
#define MAX_CONNS 64

struct conn {
	int fd;
	unsigned int idx;
	bool connacked;
	uint8_t rbuf[RBUF];
	size_t rlen;
	uint8_t wbuf[WBUF];
	size_t woff, wlen;
	uint8_t prefix[128]; /* PUBLISH fixed header + topic, pid and payload follow */
	size_t prefix_len;
	uint16_t next_pid;
	unsigned int unacked;
	int64_t sent_at[65536];
};

static struct {
	int ep;
	struct sockaddr_in addr;
	unsigned int window, payload_len;
	double dur, warmup;
	const char *prefix, *id;
	struct conn *c[MAX_CONNS];
	unsigned int n;
	bool measuring, stopping;
	uint64_t sent, acked;
	uint32_t *lat; /* us */
	size_t n_lat, cap_lat;
	/* subscriber */
	const char *filter;
	unsigned int qos;
	uint64_t limit, received;
	double idle;
	int64_t first, last;
} L;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *what)
{
	fprintf(stderr, "ack_load: %s%s%s\n", what, errno ? ": " : "",
		errno ? strerror(errno) : "");
	exit(1);
}

static size_t put_varint(uint8_t *p, size_t v)
{
	size_t n = 0;

	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		p[n++] = b | (v ? 0x80 : 0);
	} while (v);
	return n;
}

static size_t put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s);

	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

static void flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);

		if (w < 0) {
			if (errno == EAGAIN)
				break;
			fail("write");
		}
		c->woff += (size_t)w;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
}

static uint8_t *wreserve(struct conn *c, size_t n)
{
	if (c->wlen + n > WBUF) {
		flush(c);
		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		if (c->wlen + n > WBUF) {
			errno = 0;
			fail("write buffer full");
		}
	}
	c->wlen += n;
	return c->wbuf + c->wlen - n;
}

static void send_connect(struct conn *c)
{
	uint8_t v[256];
	char id[96];
	size_t n = 0, h;
	uint8_t *p;

	snprintf(id, sizeof(id), "%s-%u-%d", L.id, c->idx, (int)getpid());
	n += put_str(v + n, "MQTT");
	v[n++] = 4;
	v[n++] = 0x02; /* clean session */
	v[n++] = 0;
	v[n++] = 60;
	n += put_str(v + n, id);
	p = wreserve(c, 1 + 4 + n);
	p[0] = 0x10;
	h = 1 + put_varint(p + 1, n);
	memmove(p + h, v, n);
	c->wlen -= 1 + 4 + n - (h + n);
}

static void send_subscribe(struct conn *c)
{
	size_t fl = strlen(L.filter), n = 2 + 2 + fl + 1, h;
	uint8_t *p = wreserve(c, 1 + 4 + n);

	p[0] = 0x82;
	h = 1 + put_varint(p + 1, n);
	p[h] = 0;
	p[h + 1] = 1;
	put_str(p + h + 2, L.filter);
	p[h + 2 + 2 + fl] = (uint8_t)L.qos;
	c->wlen -= 1 + 4 + n - (h + n);
}

static void send_publish(struct conn *c)
{
	uint8_t *p;

	if (++c->next_pid == 0)
		c->next_pid = 1;
	p = wreserve(c, c->prefix_len + 2 + L.payload_len);
	memcpy(p, c->prefix, c->prefix_len);
	p[c->prefix_len] = (uint8_t)(c->next_pid >> 8);
	p[c->prefix_len + 1] = (uint8_t)c->next_pid;
	memset(p + c->prefix_len + 2, 'x', L.payload_len);
	c->sent_at[c->next_pid] = now_ns();
	c->unacked++;
	L.sent++;
}

static void build_prefix(struct conn *c)
{
	char topic[96];
	size_t tl, rem;
	uint8_t *p = c->prefix;

	snprintf(topic, sizeof(topic), "%s/%u", L.prefix, c->idx);
	tl = strlen(topic);
	rem = 2 + tl + 2 + L.payload_len;
	p[0] = 0x32;
	c->prefix_len = 1 + put_varint(p + 1, rem);
	c->prefix_len += put_str(p + c->prefix_len, topic);
}

static void fill_window(struct conn *c)
{
	while (!L.stopping && c->unacked < L.window)
		send_publish(c);
}

static void on_packet(struct conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	switch (type >> 4) {
	case 2: /* CONNACK */
		if (len < 2 || body[1]) {
			errno = 0;
			fail("CONNECT refused");
		}
		c->connacked = true;
		if (L.filter)
			send_subscribe(c);
		else
			fill_window(c);
		break;
	case 4: { /* PUBACK */
		uint16_t pid = (uint16_t)(body[0] << 8 | body[1]);
		int64_t dt = now_ns() - c->sent_at[pid];

		if (c->unacked)
			c->unacked--;
		if (L.measuring) {
			L.acked++;
			if (L.n_lat == L.cap_lat) {
				L.cap_lat = L.cap_lat ? L.cap_lat * 2 : 65536;
				L.lat = realloc(L.lat, L.cap_lat * sizeof(*L.lat));
				if (!L.lat)
					fail("out of memory");
			}
			L.lat[L.n_lat++] = (uint32_t)(dt / 1000);
		}
		fill_window(c);
		break;
	}
	case 3: { /* PUBLISH to the subscriber */
		int64_t t = now_ns();

		if (!L.received)
			L.first = t;
		L.last = t;
		L.received++;
		if ((type >> 1 & 3) == 1) {
			size_t tl = (size_t)(body[0] << 8 | body[1]);
			uint8_t *p = wreserve(c, 4);

			p[0] = 0x40;
			p[1] = 2;
			p[2] = body[2 + tl];
			p[3] = body[3 + tl];
		}
		break;
	}
	default:
		break;
	}
}

static void on_readable(struct conn *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
		size_t off = 0;

		if (r == 0) {
			errno = 0;
			fail("closed by the broker");
		}
		if (r < 0) {
			if (errno == EAGAIN)
				break;
			fail("read");
		}
		c->rlen += (size_t)r;
		while (c->rlen - off >= 2) {
			size_t len = 0, i = 1, mult = 1;

			while (i < c->rlen - off && i < 5) {
				uint8_t b = c->rbuf[off + i++];

				len += (size_t)(b & 0x7f) * mult;
				mult *= 128;
				if (!(b & 0x80))
					break;
			}
			if (c->rbuf[off + i - 1] & 0x80 || c->rlen - off < i + len)
				break;
			on_packet(c, c->rbuf[off], c->rbuf + off + i, len);
			off += i + len;
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	flush(c);
}

static struct conn *conn_new(unsigned int idx)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN };
	int one = 1;

	if (!c)
		fail("out of memory");
	c->idx = idx;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&L.addr, sizeof(L.addr)))
		fail("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK))
		fail("fcntl");
	build_prefix(c);
	send_connect(c);
	flush(c);
	ev.data.ptr = c;
	if (epoll_ctl(L.ep, EPOLL_CTL_ADD, c->fd, &ev))
		fail("epoll_ctl");
	return c;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: ack_load -p PORT [-c CONNS] [-w WINDOW] [-d SECS] [-u WARMUP] "
			"[-t PREFIX] [-l LEN] [-i ID]\n"
			"       ack_load -p PORT -S FILTER [-q QOS] [-n COUNT] [-T IDLE_SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct epoll_event evs[64];
	unsigned int conns = 1, i;
	int opt, port = 0;
	int64_t t0, t_meas = 0, t_end = 0, deadline;

	L.window = 1;
	L.dur = 5;
	L.warmup = 1;
	L.prefix = "bench/ack";
	L.id = "ackload";
	L.payload_len = 64;
	L.idle = 3;
	L.qos = 0;
	inet_pton(AF_INET, "127.0.0.1", &L.addr.sin_addr);
	while ((opt = getopt(argc, argv, "p:H:c:w:d:u:t:l:i:S:q:n:T:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'H':
			if (inet_pton(AF_INET, optarg, &L.addr.sin_addr) != 1)
				usage();
			break;
		case 'c':
			conns = (unsigned int)atoi(optarg);
			break;
		case 'w':
			L.window = (unsigned int)atoi(optarg);
			break;
		case 'd':
			L.dur = atof(optarg);
			break;
		case 'u':
			L.warmup = atof(optarg);
			break;
		case 't':
			L.prefix = optarg;
			break;
		case 'l':
			L.payload_len = (unsigned int)atoi(optarg);
			break;
		case 'i':
			L.id = optarg;
			break;
		case 'S':
			L.filter = optarg;
			break;
		case 'q':
			L.qos = (unsigned int)atoi(optarg);
			break;
		case 'n':
			L.limit = strtoull(optarg, NULL, 10);
			break;
		case 'T':
			L.idle = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (!port || !conns || conns > MAX_CONNS || !L.window || L.window > 30000 ||
	    L.payload_len > 1024 || L.qos > 1)
		usage();
	L.addr.sin_family = AF_INET;
	L.addr.sin_port = htons((uint16_t)port);
	L.ep = epoll_create1(0);
	if (L.ep < 0)
		fail("epoll_create1");
	if (L.filter)
		conns = 1;
	for (i = 0; i < conns; i++)
		L.c[L.n++] = conn_new(i);
	t0 = now_ns();
	deadline = t0 + 10 * 1000000000LL; /* to the CONNACKs */
	for (;;) {
		int64_t now = now_ns();
		int n, k;

		if (L.filter) {
			if (L.limit && L.received >= L.limit)
				break;
			if (L.received && now - L.last > (int64_t)(L.idle * 1e9))
				break;
			if (!L.received && now > deadline + (int64_t)(L.idle * 1e9) * 10) {
				errno = 0;
				fail("nothing received");
			}
		} else {
			bool all = true;

			for (i = 0; i < L.n; i++)
				all = all && L.c[i]->connacked;
			if (!all && now > deadline) {
				errno = 0;
				fail("no CONNACK");
			}
			if (all && !t_meas) {
				t_meas = now + (int64_t)(L.warmup * 1e9);
				t_end = t_meas + (int64_t)(L.dur * 1e9);
			}
			if (t_meas && !L.measuring && now >= t_meas && now < t_end)
				L.measuring = true;
			if (t_end && now >= t_end)
				break;
		}
		n = epoll_wait(L.ep, evs, 64, 20);
		if (n < 0 && errno != EINTR)
			fail("epoll_wait");
		for (k = 0; k < n; k++)
			on_readable(evs[k].data.ptr);
		for (i = 0; i < L.n; i++)
			if (L.c[i]->wlen)
				flush(L.c[i]);
	}
	if (L.filter) {
		double secs = L.received > 1 ? (double)(L.last - L.first) / 1e9 : 0;

		printf("RESULT received=%llu secs=%.3f rate=%.0f\n", (unsigned long long)L.received,
		       secs, secs > 0 ? (double)(L.received - 1) / secs : 0.0);
		return 0;
	}
	qsort(L.lat, L.n_lat, sizeof(*L.lat), cmp_u32);
	printf("RESULT acked=%llu rate=%.0f p50_us=%u p99_us=%u max_us=%u sent=%llu\n",
	       (unsigned long long)L.acked, (double)L.acked / L.dur,
	       L.n_lat ? L.lat[L.n_lat / 2] : 0, L.n_lat ? L.lat[(size_t)(L.n_lat * 0.99)] : 0,
	       L.n_lat ? L.lat[L.n_lat - 1] : 0, (unsigned long long)L.sent);
	return 0;
}
