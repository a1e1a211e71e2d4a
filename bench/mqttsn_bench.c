/*
 * mqttsn_bench.c - load for the MQTT-SN gateway of a running fieldmq: N
 * MQTT-SN clients (one UDP socket each) publish to the gateway, an MQTT 3.1.1
 * subscriber on the broker's TCP port counts what comes through.
 *
 * Usage: mqttsn_bench -u UDP_PORT -p TCP_PORT [-n CLIENTS] [-q 0|1] [-t SECONDS]
 *                     [-s PAYLOAD] [-w WINDOW] [-P PID]
 *   -q 0: QoS 0 publishes, round robin over the clients, with at most WINDOW
 *         (default 256) sent and not yet seen by the subscriber, so the
 *         figure is the rate that reaches the subscriber, not the rate the
 *         kernel drops at.
 *   -q 1: QoS 1, each client with one PUBLISH awaiting its PUBACK (MQTT-SN
 *         clients have one in flight), so N in flight in all.
 *   -P PID: RSS mode: connect the clients (each registers a topic and
 *         subscribes to one), and report the growth of PID's VmRSS per
 *         client; -t is then ignored.
 * Prints "mqttsn_bench: name value unit" lines. Only 127.0.0.1 is used.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "adapters/mqttsn/mqttsn_codec.h"

struct snc {
	int fd;
	uint16_t topic_id;
	uint16_t next_mid;
	uint16_t inflight_mid; /* 0: none (QoS 1) */
};

struct bench {
	struct snc *c;
	int n;
	int qos;
	double seconds;
	size_t payload;
	uint64_t window;
	int tcp;
	uint8_t rx[1 << 16];
	size_t rx_len;
	uint64_t sent, acked, received, refused;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "mqttsn_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void send_msg(int fd, const struct mqttsn_msg *m)
{
	uint8_t buf[512];
	struct gw_writer w;
	int n;

	gw_writer_init(&w, buf, sizeof(buf));
	n = mqttsn_encode(&w, m);
	if (n <= 0) {
		fprintf(stderr, "mqttsn_bench: encode %s: %d\n", mqttsn_type_name(m->type), n);
		exit(1);
	}
	if (send(fd, buf, (size_t)n, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED)
		die("send");
}

/* The next datagram on fd decoded into *m (its slices point into buf); 0 or -1 on timeout. */
static int recv_msg(int fd, uint8_t *buf, size_t cap, struct mqttsn_msg *m, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	n = recv(fd, buf, cap, 0);
	if (n <= 0 || mqttsn_decode(buf, (size_t)n, m) < 0)
		return -1;
	return 0;
}

/* A request and the answer of type @want (others, e.g. retransmissions, are skipped). */
static int transact(struct snc *c, const struct mqttsn_msg *req, uint8_t want,
		    struct mqttsn_msg *ans, uint8_t *buf, size_t cap)
{
	int tries;

	for (tries = 0; tries < 5; tries++) {
		double end = now_s() + 1.0;

		send_msg(c->fd, req);
		while (now_s() < end) {
			if (recv_msg(c->fd, buf, cap, ans, 200))
				continue;
			if (ans->type == want)
				return 0;
		}
	}
	return -1;
}

/* CONNECT, REGISTER bench/I (and SUBSCRIBE in RSS mode) for client i. */
static void sn_setup(struct bench *b, int udp_port, int i, bool subscribe)
{
	struct snc *c = &b->c[i];
	struct sockaddr_in gw = loopback(udp_port), me = loopback(0);
	char id[32], topic[32];
	uint8_t buf[512];
	struct mqttsn_msg m, a;
	int sz = 1 << 20;

	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		die("socket");
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (bind(c->fd, (struct sockaddr *)&me, sizeof(me)) ||
	    connect(c->fd, (struct sockaddr *)&gw, sizeof(gw)))
		die("bind/connect");
	snprintf(id, sizeof(id), "bench-%d", i);
	snprintf(topic, sizeof(topic), "bench/%d", i);
	m = (struct mqttsn_msg){ .type = MQTTSN_CONNECT,
				 .flags = { .clean_session = true },
				 .connect = { MQTTSN_PROTOCOL_ID, 600, gw_slice_cstr(id) } };
	if (transact(c, &m, MQTTSN_CONNACK, &a, buf, sizeof(buf)) || a.resp.rc) {
		fprintf(stderr, "mqttsn_bench: client %d: no CONNACK accepted\n", i);
		exit(1);
	}
	m = (struct mqttsn_msg){ .type = MQTTSN_REGISTER, .reg = { 0, 1, gw_slice_cstr(topic) } };
	if (transact(c, &m, MQTTSN_REGACK, &a, buf, sizeof(buf)) || a.ack.rc) {
		fprintf(stderr, "mqttsn_bench: client %d: no REGACK\n", i);
		exit(1);
	}
	c->topic_id = a.ack.topic_id;
	c->next_mid = 2;
	if (subscribe) {
		snprintf(topic, sizeof(topic), "cmd/%d", i);
		m = (struct mqttsn_msg){ .type = MQTTSN_SUBSCRIBE,
					 .flags = { .qos = 1 },
					 .sub = { 2, 0, gw_slice_cstr(topic) } };
		if (transact(c, &m, MQTTSN_SUBACK, &a, buf, sizeof(buf)) || a.ack.rc) {
			fprintf(stderr, "mqttsn_bench: client %d: no SUBACK\n", i);
			exit(1);
		}
	}
}

/* ------------------------------------------------------ MQTT subscriber */

static void tcp_write(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			die("tcp write");
		p += w;
		n -= (size_t)w;
	}
}

static void mqtt_subscriber(struct bench *b, int tcp_port)
{
	static const uint8_t conn[] = { 0x10, 20,   0x00, 0x04, 'M', 'Q', 'T', 'T', 4,	 2,   0,
					60,   0x00, 8,	  'b',	'e', 'n', 'c', 'h', '-', 's', 'u' };
	/* SUBSCRIBE packet id 1, "bench/#" at QoS 0; the length byte is set below. */
	static const uint8_t sub[] = { 0x82, 0,	  0x00, 0x01, 0x00, 7,	 'b',
				       'e',  'n', 'c',	'h',  '/',  '#', 0x00 };
	struct sockaddr_in a = loopback(tcp_port);
	uint8_t buf[16];
	int one = 1, sz = 4 << 20;

	b->tcp = socket(AF_INET, SOCK_STREAM, 0);
	if (b->tcp < 0 || connect(b->tcp, (struct sockaddr *)&a, sizeof(a)))
		die("mqtt connect");
	setsockopt(b->tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(b->tcp, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	tcp_write(b->tcp, conn, sizeof(conn));
	if (read(b->tcp, buf, 4) != 4 || buf[0] != 0x20 || buf[3] != 0) {
		fprintf(stderr, "mqttsn_bench: MQTT CONNACK refused\n");
		exit(1);
	}
	{
		uint8_t s[sizeof(sub)];

		memcpy(s, sub, sizeof(sub));
		s[1] = (uint8_t)(sizeof(sub) - 2);
		tcp_write(b->tcp, s, sizeof(s));
	}
	if (read(b->tcp, buf, 5) != 5 || buf[0] != 0x90) {
		fprintf(stderr, "mqttsn_bench: no SUBACK\n");
		exit(1);
	}
}

/* Reads what the subscriber socket has and counts the PUBLISH packets in it. */
static void mqtt_drain(struct bench *b)
{
	ssize_t n = read(b->tcp, b->rx + b->rx_len, sizeof(b->rx) - b->rx_len);
	size_t off = 0;

	if (n <= 0)
		die("mqtt read");
	b->rx_len += (size_t)n;
	for (;;) {
		size_t i = off + 1, len = 0, shift = 0;

		while (i < b->rx_len && i < off + 5) {
			len |= (size_t)(b->rx[i] & 0x7f) << shift;
			shift += 7;
			if (!(b->rx[i++] & 0x80))
				goto have_len;
		}
		break;
	have_len:
		if (i + len > b->rx_len)
			break;
		if ((b->rx[off] >> 4) == 3)
			b->received++;
		off = i + len;
	}
	memmove(b->rx, b->rx + off, b->rx_len - off);
	b->rx_len -= off;
}

/* ---------------------------------------------------------------- load */

static void publish(struct bench *b, struct snc *c, const uint8_t *payload)
{
	struct mqttsn_msg m = { .type = MQTTSN_PUBLISH };
	uint16_t mid = 0;

	if (b->qos) {
		mid = c->next_mid++;
		if (!c->next_mid)
			c->next_mid = 1;
		c->inflight_mid = mid;
	}
	m.flags.qos = (int8_t)b->qos;
	m.publish.topic_id = c->topic_id;
	m.publish.msg_id = mid;
	m.publish.data = (struct gw_slice){ payload, b->payload };
	send_msg(c->fd, &m);
	b->sent++;
}

static void run_load(struct bench *b)
{
	struct pollfd *p = calloc((size_t)b->n + 1, sizeof(*p));
	uint8_t payload[1024], buf[512];
	double t0, end;
	int i, next = 0;

	if (!p)
		die("calloc");
	memset(payload, 'x', sizeof(payload));
	for (i = 0; i < b->n; i++)
		p[i] = (struct pollfd){ .fd = b->c[i].fd, .events = POLLIN };
	p[b->n] = (struct pollfd){ .fd = b->tcp, .events = POLLIN };
	t0 = now_s();
	end = t0 + b->seconds;
	while (now_s() < end) {
		if (b->qos == 0) {
			/* Keep the window full, round robin over the clients. */
			while (b->sent - b->received < b->window) {
				publish(b, &b->c[next], payload);
				next = (next + 1) % b->n;
			}
		} else {
			for (i = 0; i < b->n; i++)
				if (!b->c[i].inflight_mid)
					publish(b, &b->c[i], payload);
		}
		if (poll(p, (nfds_t)b->n + 1, 100) < 0)
			die("poll");
		if (p[b->n].revents & POLLIN)
			mqtt_drain(b);
		if (b->qos == 0)
			continue;
		for (i = 0; i < b->n; i++) {
			struct mqttsn_msg m;
			ssize_t n;

			if (!(p[i].revents & POLLIN))
				continue;
			while ((n = recv(b->c[i].fd, buf, sizeof(buf), 0)) > 0) {
				if (mqttsn_decode(buf, (size_t)n, &m) < 0 ||
				    m.type != MQTTSN_PUBACK)
					continue;
				if (m.ack.msg_id != b->c[i].inflight_mid)
					continue;
				if (m.ack.rc)
					b->refused++;
				else
					b->acked++;
				b->c[i].inflight_mid = 0;
			}
		}
	}
	{
		double el = now_s() - t0;
		uint64_t recv_at_end = b->received;

		/* What is still on its way reaches the subscriber shortly after. */
		end = now_s() + 2.0;
		while (b->received < b->sent && now_s() < end) {
			if (poll(&p[b->n], 1, 100) > 0)
				mqtt_drain(b);
		}
		printf("mqttsn_bench: clients %d\n", b->n);
		printf("mqttsn_bench: qos %d\n", b->qos);
		printf("mqttsn_bench: payload %zu bytes\n", b->payload);
		printf("mqttsn_bench: duration %.2f s\n", el);
		printf("mqttsn_bench: sent %llu\n", (unsigned long long)b->sent);
		if (b->qos)
			printf("mqttsn_bench: puback %llu (refused %llu)\n",
			       (unsigned long long)b->acked, (unsigned long long)b->refused);
		printf("mqttsn_bench: received %llu\n", (unsigned long long)b->received);
		printf("mqttsn_bench: lost %lld\n", (long long)(b->sent - b->received));
		printf("mqttsn_bench: rate %.0f msg/s\n", (double)recv_at_end / el);
	}
	free(p);
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		die(path);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	static struct bench b = { .n = 100, .seconds = 5, .payload = 16, .window = 256 };
	int opt, udp = 0, tcp = 0, pid = 0, i;
	struct rlimit rl;

	while ((opt = getopt(argc, argv, "u:p:n:q:t:s:w:P:")) != -1) {
		switch (opt) {
		case 'u':
			udp = atoi(optarg);
			break;
		case 'p':
			tcp = atoi(optarg);
			break;
		case 'n':
			b.n = atoi(optarg);
			break;
		case 'q':
			b.qos = atoi(optarg);
			break;
		case 't':
			b.seconds = atof(optarg);
			break;
		case 's':
			b.payload = (size_t)atoi(optarg);
			break;
		case 'w':
			b.window = (uint64_t)atoll(optarg);
			break;
		case 'P':
			pid = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (!udp || (!tcp && !pid) || b.n < 1 || b.qos < 0 || b.qos > 1 || b.payload > 1024 ||
	    !b.window)
		goto usage;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)b.n + 64) {
		rl.rlim_cur = GW_MIN(rl.rlim_max, (rlim_t)b.n + 64);
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	b.c = calloc((size_t)b.n, sizeof(*b.c));
	if (!b.c)
		die("calloc");
	if (pid) {
		long before = rss_kb(pid), after;
		double t0 = now_s();

		for (i = 0; i < b.n; i++)
			sn_setup(&b, udp, i, true);
		usleep(200 * 1000);
		after = rss_kb(pid);
		printf("mqttsn_bench: clients %d (each: CONNECT, REGISTER, SUBSCRIBE)\n", b.n);
		printf("mqttsn_bench: connect rate %.0f clients/s\n", b.n / (now_s() - t0));
		printf("mqttsn_bench: rss before %ld kB\n", before);
		printf("mqttsn_bench: rss after %ld kB\n", after);
		printf("mqttsn_bench: rss per client %.0f bytes\n",
		       (double)(after - before) * 1024.0 / b.n);
		return 0;
	}
	mqtt_subscriber(&b, tcp);
	for (i = 0; i < b.n; i++)
		sn_setup(&b, udp, i, false);
	run_load(&b);
	return 0;
usage:
	fprintf(stderr, "usage: mqttsn_bench -u UDP_PORT -p TCP_PORT [-n CLIENTS] [-q 0|1] "
			"[-t SECONDS] [-s PAYLOAD] [-w WINDOW] [-P PID]\n");
	return 2;
}
