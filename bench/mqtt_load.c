/*
 * mqtt_load.c - the MQTT load generator of `make bench`: one process, one
 * epoll loop, many connections, pipelined writes, MQTT 3.1.1 encoded by hand
 * (the packets it needs are a dozen bytes of framing each).
 *
 * Usage: mqtt_load -p PORT -s SCENARIO [-H HOST] [-d SECS] [-u WARMUP_SECS]
 *                  [-w WINDOW] [-n IDLE_CONNS] [-r RATE] [-B BROKER_PID]
 *                  [-T CAFILE] [-W] [-k HOLD_SECS]
 *
 *   -T CAFILE  every connection is TLS (mbedTLS client, TLS 1.2 or what the
 *              library has, server name "localhost" verified against CAFILE);
 *              the handshake is done blocking when a connection opens
 *   -W         s6 only: idle connections are MQTT over WebSocket (ws://, path
 *              /mqtt, subprotocol mqtt), opened blocking one after the other
 *
 *   s1  1 publisher -> 1 subscriber, QoS 0, max rate
 *   s2  4 -> 4 on 4 topics (publisher i -> topic i -> subscriber i), QoS 0
 *   s3  1 -> 1 QoS 1: the publisher keeps at most 100 PUBLISHes unacknowledged,
 *       the subscriber acknowledges every delivery
 *   s4  fan-out 1 -> 50 subscribers of one topic, QoS 0
 *   s5  fan-in 50 publishers at RATE msgs/s each (default 200) -> 1 subscriber
 *       of a wildcard; latency from a CLOCK_MONOTONIC stamp in the payload
 *   s6  IDLE_CONNS (default 5000) CONNECTed idle clients (keepalive 0); the
 *       broker's VmRSS before, and 2.5 s after the last CONNACK (/proc/PID/status);
 *       with -k, the connections then stay open HOLD_SECS more (bench/soak.sh),
 *       and any of them closed by the broker is an error
 *   hs  connect, (TLS handshake,) CONNECT, CONNACK, DISCONNECT, close, one after
 *       the other for the run: new connections a second, and the broker's CPU
 *
 * Flow control: a publisher may be at most WINDOW messages ahead of what its
 * subscribers have received (every payload carries the publisher's index, a
 * sequence number and a send time), so the figure is messages delivered, not
 * messages piled up in socket buffers. A message that never arrives (QoS 0
 * may be dropped) is forgiven after 500 ms and counted as a stall.
 *
 * Prints one line "RESULT key=value ..." on stdout (bench/run.sh parses it);
 * rates are measured over the window after the warm-up. Exit 1 on an error
 * (refused connection, broker gone, no progress for 3 s).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/error.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#define PAYLOAD_LEN 64
#define RBUF_SIZE (256 * 1024)
#define PUB_WBUF (64 * 1024)
#define MAX_EVENTS 256
#define STALL_NS (500 * 1000000LL)
#define DEAD_NS (3000 * 1000000LL)
#define MAX_PENDING_CONNECTS 64

enum role {
	R_PUB,
	R_SUB,
	R_IDLE,
};

enum submode {
	SUB_SAME_INDEX, /* subscriber i takes topic i */
	SUB_TOPIC0,	/* every subscriber takes topic 0 */
	SUB_WILD,	/* one subscriber takes bench/# */
};

struct scen {
	const char *name;
	unsigned int npub, nsub, ntopics;
	uint8_t qos;
	enum submode submode;
	unsigned int window;	 /* messages a publisher may be ahead of its subscribers */
	unsigned int ack_window; /* QoS 1: PUBLISHes not yet PUBACKed */
	unsigned int rate;	 /* msgs/s per publisher; 0 = as fast as the window allows */
	unsigned int idle;	 /* idle connections (s6) */
	bool latency;		 /* keep every latency of the measured window */
};

static const struct scen scens[] = {
	{ .name = "s1", .npub = 1, .nsub = 1, .ntopics = 1, .window = 1000 },
	{ .name = "s2", .npub = 4, .nsub = 4, .ntopics = 4, .window = 1000 },
	{ .name = "s3",
	  .npub = 1,
	  .nsub = 1,
	  .ntopics = 1,
	  .qos = 1,
	  .window = 1000,
	  .ack_window = 100 },
	{ .name = "s4", .npub = 1, .nsub = 50, .ntopics = 1, .submode = SUB_TOPIC0, .window = 200 },
	{ .name = "s5",
	  .npub = 50,
	  .nsub = 1,
	  .ntopics = 50,
	  .submode = SUB_WILD,
	  .window = 1000,
	  .rate = 200,
	  .latency = true },
	{ .name = "s6", .idle = 5000 },
	{ .name = "hs" },
};

struct conn {
	struct load *lg;
	int fd;
	mbedtls_net_context net;
	mbedtls_ssl_context *ssl; /* NULL: plain TCP */
	size_t tls_pend;	  /* a write that returned WANT_WRITE: retried with this length */
	enum role role;
	unsigned int idx; /* among the publishers or the subscribers */
	bool connacked, subacked, want_out, closed;
	/* A partial packet left from the last read. */
	uint8_t *tail;
	size_t tlen, tcap;
	/* Output not yet written. */
	uint8_t *wbuf;
	size_t woff, wlen, wcap;
	/* Publisher. */
	uint8_t prefix[64]; /* fixed header + topic of every PUBLISH */
	size_t prefix_len;
	unsigned int fanout; /* subscribers matching its topic */
	uint64_t sent, delivered, unacked;
	uint16_t next_pid;
	int64_t next_due, last_progress;
};

struct load {
	const struct scen *sc;
	struct sockaddr_in addr;
	int ep;
	int broker_pid;
	double dur, warmup, hold;
	unsigned int window, rate, idle;
	struct conn **pubs, **subs, **idles;
	unsigned int n_pubs, n_subs, n_idles, n_connected, n_ready;
	uint8_t *rbuf;
	/* Run state. */
	bool running, measuring;
	int64_t t_start, t_meas, t_end, last_rx;
	uint64_t rx_total, rx_meas, reorder, gaps, stalls, forgiven;
	uint64_t *last_seq; /* [sub * n_pubs + pub] */
	uint64_t *lat;	    /* ns, measured window only */
	size_t n_lat, cap_lat;
	/* -T: TLS; -W: WebSocket (s6). */
	bool tls, ws;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "mqtt_load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *msg)
{
	fprintf(stderr, "mqtt_load: %s\n", msg);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n);

	if (!p)
		fail("out of memory");
	return p;
}

/* ------------------------------------------------------------ /proc */

/* Resident set of @pid in kB, or -1. */
static long proc_rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* utime + stime of @pid in seconds, or -1. */
static double proc_cpu_s(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The command name may hold spaces: fields are counted after its ')'. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* -------------------------------------------------------------- encoding */

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

static void topic_of(const struct scen *sc, unsigned int pub, char *out, size_t n)
{
	snprintf(out, n, "bench/%u", pub % sc->ntopics);
}

static bool sub_matches(const struct scen *sc, unsigned int sub, unsigned int pub)
{
	switch (sc->submode) {
	case SUB_SAME_INDEX:
		return pub % sc->ntopics == sub;
	case SUB_TOPIC0:
		return pub % sc->ntopics == 0;
	case SUB_WILD:
		return true;
	}
	return false;
}

/* ------------------------------------------------------------- output */

static void conn_want_out(struct conn *c, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };

	if (c->want_out == on)
		return;
	c->want_out = on;
	if (epoll_ctl(c->lg->ep, EPOLL_CTL_MOD, c->fd, &ev))
		die("epoll_ctl");
}

static void conn_reserve(struct conn *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n <= c->wcap)
		return;
	if (c->woff) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	if (c->wlen + n > c->wcap) {
		size_t cap = c->wcap ? c->wcap : 256;

		while (cap < c->wlen + n)
			cap *= 2;
		c->wbuf = realloc(c->wbuf, cap);
		if (!c->wbuf)
			fail("out of memory");
		c->wcap = cap;
	}
}

static void conn_flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n;

		if (c->ssl) {
			size_t len = c->tls_pend ? c->tls_pend : c->wlen - c->woff;
			int rc = mbedtls_ssl_write(c->ssl, c->wbuf + c->woff, len);

			/* mbedTLS wants the same length again after WANT_WRITE. */
			if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
				c->tls_pend = len;
				conn_want_out(c, true);
				return;
			}
			if (rc < 0)
				fail("TLS write failed");
			c->tls_pend = 0;
			c->woff += (size_t)rc;
			continue;
		}
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				conn_want_out(c, true);
				return;
			}
			if (errno == EINTR)
				continue;
			die("write");
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	conn_want_out(c, false);
}

static void conn_send(struct conn *c, const uint8_t *p, size_t n)
{
	conn_reserve(c, n);
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
}

static void send_connect(struct conn *c, const char *id)
{
	uint8_t v[128], body[96];
	size_t bl = 0, n = 0;

	bl += put_str(body + bl, "MQTT");
	body[bl++] = 4;	   /* 3.1.1 */
	body[bl++] = 0x02; /* clean session */
	body[bl++] = 0;	   /* keepalive 0: never times out */
	body[bl++] = 0;
	bl += put_str(body + bl, id);
	v[n++] = 0x10;
	n += put_varint(v + n, bl);
	memcpy(v + n, body, bl);
	conn_send(c, v, n + bl);
}

static void send_subscribe(struct conn *c, const char *filter, uint8_t qos)
{
	uint8_t v[96], body[80];
	size_t bl = 0, n = 0;

	body[bl++] = 0;
	body[bl++] = 1; /* packet id */
	bl += put_str(body + bl, filter);
	body[bl++] = qos;
	v[n++] = 0x82;
	n += put_varint(v + n, bl);
	memcpy(v + n, body, bl);
	conn_send(c, v, n + bl);
}

/* ---------------------------------------------------------- publishers */

static void pub_prepare(struct load *lg, struct conn *c)
{
	const struct scen *sc = lg->sc;
	char topic[32];
	size_t rl, n = 0;
	unsigned int s;

	topic_of(sc, c->idx, topic, sizeof(topic));
	rl = 2 + strlen(topic) + (sc->qos ? 2 : 0) + PAYLOAD_LEN;
	c->prefix[n++] = (uint8_t)(0x30 | (sc->qos << 1));
	n += put_varint(c->prefix + n, rl);
	n += put_str(c->prefix + n, topic);
	c->prefix_len = n;
	for (s = 0; s < sc->nsub; s++)
		c->fanout += sub_matches(sc, s, c->idx);
	c->next_pid = 1;
}

/* May @c send one more PUBLISH now? Forgives lost QoS 0 messages after STALL_NS. */
static bool pub_may_send(struct load *lg, struct conn *c, int64_t now)
{
	const struct scen *sc = lg->sc;
	uint64_t ahead = c->sent * c->fanout - c->delivered;

	if (lg->rate && now < c->next_due)
		return false;
	if (sc->qos && c->unacked >= sc->ack_window)
		return false;
	if (ahead >= (uint64_t)lg->window * c->fanout) {
		if (sc->qos == 0 && now - c->last_progress > STALL_NS) {
			lg->stalls++;
			lg->forgiven += ahead;
			c->delivered += ahead;
			c->last_progress = now;
			return true;
		}
		return false;
	}
	return true;
}

static void pub_pump(struct load *lg, struct conn *c, int64_t now)
{
	const size_t plen = c->prefix_len + (lg->sc->qos ? 2 : 0) + PAYLOAD_LEN;

	if (!lg->running || c->want_out)
		return;
	while (c->wlen - c->woff + plen <= PUB_WBUF && pub_may_send(lg, c, now)) {
		uint8_t *p;
		uint32_t idx = c->idx;
		uint64_t seq = c->sent + 1;
		int64_t ts = lg->rate ? now_ns() : now;

		conn_reserve(c, plen);
		p = c->wbuf + c->wlen;
		memcpy(p, c->prefix, c->prefix_len);
		p += c->prefix_len;
		if (lg->sc->qos) {
			*p++ = (uint8_t)(c->next_pid >> 8);
			*p++ = (uint8_t)c->next_pid;
			c->next_pid = c->next_pid == 65535 ? 1 : c->next_pid + 1;
			c->unacked++;
		}
		memset(p, 0x5a, PAYLOAD_LEN);
		memcpy(p, &idx, 4);
		memcpy(p + 4, &seq, 8);
		memcpy(p + 12, &ts, 8);
		c->wlen += plen;
		c->sent++;
		if (lg->rate) {
			c->next_due += 1000000000LL / lg->rate;
			/* Fallen far behind (the loop was busy): do not burst to catch up. */
			if (now - c->next_due > 100000000LL)
				c->next_due = now;
		}
	}
	if (c->wlen > c->woff)
		conn_flush(c);
}

/* ------------------------------------------------------------- input */

static void on_delivery(struct load *lg, struct conn *c, const uint8_t *pl, size_t len, int64_t now)
{
	uint32_t pidx;
	uint64_t seq, *last;
	int64_t ts;
	struct conn *p;

	if (len < 20)
		fail("short payload");
	memcpy(&pidx, pl, 4);
	memcpy(&seq, pl + 4, 8);
	memcpy(&ts, pl + 12, 8);
	if (pidx >= lg->n_pubs)
		fail("payload from an unknown publisher");
	p = lg->pubs[pidx];
	p->delivered++;
	p->last_progress = now;
	lg->last_rx = now;
	lg->rx_total++;
	last = &lg->last_seq[(size_t)c->idx * lg->n_pubs + pidx];
	if (seq <= *last)
		lg->reorder++;
	else
		lg->gaps += seq - *last - 1;
	if (seq > *last)
		*last = seq;
	if (!lg->measuring)
		return;
	lg->rx_meas++;
	if (lg->sc->latency) {
		if (lg->n_lat == lg->cap_lat) {
			lg->cap_lat = lg->cap_lat ? lg->cap_lat * 2 : 65536;
			lg->lat = realloc(lg->lat, lg->cap_lat * sizeof(*lg->lat));
			if (!lg->lat)
				fail("out of memory");
		}
		lg->lat[lg->n_lat++] = (uint64_t)(now - ts);
	}
}

/*
 * Handles one packet of @len bytes (type byte @h, body @b of @bl bytes).
 * Fails the run on anything a 3.1.1 broker must not send here.
 */
static void on_packet(struct load *lg, struct conn *c, uint8_t h, const uint8_t *b, size_t bl,
		      int64_t now)
{
	switch (h >> 4) {
	case 2: /* CONNACK */
		if (bl < 2 || b[1] != 0)
			fail("CONNACK refused");
		if (!c->connacked) {
			c->connacked = true;
			lg->n_connected++;
			if (c->role == R_SUB) {
				send_subscribe(c,
					       lg->sc->submode == SUB_WILD
						       ? "bench/#"
						       : (const char *)c->prefix,
					       lg->sc->qos);
				conn_flush(c);
			} else {
				lg->n_ready++;
			}
		}
		break;
	case 9: /* SUBACK */
		if (bl < 3 || b[2] == 0x80)
			fail("SUBACK refused");
		c->subacked = true;
		lg->n_ready++;
		break;
	case 3: { /* PUBLISH */
		uint8_t qos = (h >> 1) & 3;
		size_t tl, off;

		if (bl < 2)
			fail("short PUBLISH");
		tl = (size_t)b[0] << 8 | b[1];
		off = 2 + tl + (qos ? 2 : 0);
		if (off > bl || c->role != R_SUB)
			fail("bad PUBLISH");
		if (qos == 1) {
			uint8_t ack[4] = { 0x40, 2, b[2 + tl], b[3 + tl] };

			conn_send(c, ack, 4);
		} else if (qos) {
			fail("QoS 2 delivery");
		}
		on_delivery(lg, c, b + off, bl - off, now);
		break;
	}
	case 4: /* PUBACK */
		if (c->role != R_PUB || !c->unacked)
			fail("unexpected PUBACK");
		c->unacked--;
		break;
	case 13: /* PINGRESP */
		break;
	default:
		fprintf(stderr, "mqtt_load: unexpected packet type %u\n", h >> 4);
		exit(1);
	}
}

/* Parses whole packets of @p; returns the bytes consumed. */
static size_t parse(struct load *lg, struct conn *c, const uint8_t *p, size_t n, int64_t now)
{
	size_t off = 0;

	while (off + 2 <= n) {
		size_t rl = 0, i = 1;
		unsigned int shift = 0;

		for (;;) {
			if (off + i >= n)
				return off;
			rl |= (size_t)(p[off + i] & 0x7f) << shift;
			if (!(p[off + i++] & 0x80))
				break;
			shift += 7;
			if (shift > 21)
				fail("bad remaining length");
		}
		if (off + i + rl > n)
			return off;
		on_packet(lg, c, p[off], p + off + i, rl, now);
		off += i + rl;
	}
	return off;
}

static void conn_readable(struct load *lg, struct conn *c)
{
	uint8_t *buf = lg->rbuf;
	size_t have = c->tlen, used;
	ssize_t n;

	if (have)
		memcpy(buf, c->tail, have);
again:
	if (c->ssl) {
		int rc = mbedtls_ssl_read(c->ssl, buf + have, RBUF_SIZE - have);

		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
			errno = EAGAIN;
			n = -1;
		} else if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			n = 0;
		} else if (rc < 0) {
			if (c->closed)
				return;
			fail("TLS read failed");
		} else {
			n = rc;
		}
	} else {
		n = read(c->fd, buf + have, RBUF_SIZE - have);
	}
	if (n < 0 && c->ssl && errno == EAGAIN && have) {
		n = 0;
		goto parse_it; /* what was read before this WANT_READ */
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		die("read");
	}
	if (n == 0) {
		if (c->closed)
			return;
		fail("broker closed a connection");
	}
	have += (size_t)n;
	/* mbedTLS may hold decrypted records epoll cannot see: read them all. */
	if (c->ssl && have < RBUF_SIZE && mbedtls_ssl_get_bytes_avail(c->ssl))
		goto again;
	if (c->ssl && have < RBUF_SIZE / 2)
		goto again; /* until WANT_READ */
parse_it:
	used = parse(lg, c, buf, have, now_ns());
	c->tlen = have - used;
	if (c->tlen) {
		if (c->tlen > c->tcap) {
			c->tail = realloc(c->tail, c->tlen);
			if (!c->tail)
				fail("out of memory");
			c->tcap = c->tlen;
		}
		memcpy(c->tail, buf + used, c->tlen);
	}
	/* PUBACKs owed by a subscriber go out in one write per read. */
	if (c->wlen > c->woff && !c->want_out)
		conn_flush(c);
	if (c->ssl && !c->closed && mbedtls_ssl_get_bytes_avail(c->ssl))
		conn_readable(lg, c);
}

/* ---------------------------------------------------------- connections */

#if MBEDTLS_VERSION_MAJOR == 2
static const mbedtls_ecp_group_id client_curves[] = {
	MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};
#endif

/* A blocking TLS handshake on @c's (still blocking, timed-out) socket. */
static void tls_handshake(struct load *lg, struct conn *c)
{
	int64_t end = now_ns() + 10 * 1000000000LL;
	int rc;

	c->ssl = xmalloc(sizeof(*c->ssl));
	mbedtls_ssl_init(c->ssl);
	if (mbedtls_ssl_setup(c->ssl, &lg->conf) || mbedtls_ssl_set_hostname(c->ssl, "localhost"))
		fail("TLS setup");
	c->net.fd = c->fd;
	mbedtls_ssl_set_bio(c->ssl, &c->net, mbedtls_net_send, mbedtls_net_recv, NULL);
	while ((rc = mbedtls_ssl_handshake(c->ssl)) != 0) {
		if ((rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) ||
		    now_ns() > end) {
			char e[128];

			mbedtls_strerror(rc, e, sizeof(e));
			fprintf(stderr, "mqtt_load: TLS handshake: %s\n", e);
			exit(1);
		}
	}
}

/* All of @n bytes on a blocking socket, or fail. */
static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t k = write(fd, b, n);

		if (k <= 0)
			die("write");
		b += k;
		n -= (size_t)k;
	}
}

/*
 * -W: the WebSocket upgrade and CONNECT in a masked binary frame, and the
 * CONNACK in the server's frame, all blocking. The connection then idles.
 */
static void ws_open(struct load *lg, struct conn *c, const char *id)
{
	static const char req[] =
		"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n"
		"Upgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";
	uint8_t buf[1024], frame[160];
	size_t got = 0, n, i;
	char *end;

	write_all(c->fd, req, sizeof(req) - 1);
	for (;;) {
		ssize_t k = read(c->fd, buf + got, sizeof(buf) - 1 - got);

		if (k <= 0)
			fail("WebSocket upgrade: no answer");
		got += (size_t)k;
		buf[got] = 0;
		end = strstr((char *)buf, "\r\n\r\n");
		if (end)
			break;
		if (got == sizeof(buf) - 1)
			fail("WebSocket upgrade: answer too long");
	}
	if (strncmp((char *)buf, "HTTP/1.1 101", 12))
		fail("WebSocket upgrade refused");
	/* CONNECT, in a masked frame (mask 0: the payload as is). */
	c->wlen = c->woff = 0;
	send_connect(c, id);
	n = c->wlen;
	frame[0] = 0x82;
	frame[1] = (uint8_t)(0x80 | n);
	memset(frame + 2, 0, 4);
	memcpy(frame + 6, c->wbuf, n);
	c->wlen = 0;
	write_all(c->fd, frame, 6 + n);
	/* What came after the 101, then the frame 0x82 0x04 + CONNACK. */
	n = got - (size_t)(end + 4 - (char *)buf);
	memmove(buf, end + 4, n);
	while (n < 6) {
		ssize_t k = read(c->fd, buf + n, sizeof(buf) - n);

		if (k <= 0)
			fail("WebSocket: no CONNACK");
		n += (size_t)k;
	}
	for (i = 0; i < 2; i++)
		if (buf[i] != (i ? 0x04 : 0x82))
			fail("WebSocket: not a CONNACK frame");
	if (buf[2] != 0x20 || buf[5] != 0)
		fail("WebSocket: CONNACK refused");
	c->connacked = true;
	lg->n_connected++;
}

static struct conn *conn_open(struct load *lg, enum role role, unsigned int idx)
{
	struct conn *c = xmalloc(sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	struct timeval tv = { .tv_sec = 5 };
	char id[48];
	int one = 1;

	c->lg = lg;
	c->role = role;
	c->idx = idx;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket");
	/* A blocking connect (and handshake) bounded by timeouts, then non-blocking I/O. */
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&lg->addr, sizeof(lg->addr)))
		die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(id, sizeof(id), "bench-%d-%c%u", (int)getpid(), "psi"[role], idx);
	if (lg->ws) {
		ws_open(lg, c, id);
		return c; /* idle: never read again */
	}
	if (lg->tls)
		tls_handshake(lg, c);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	if (epoll_ctl(lg->ep, EPOLL_CTL_ADD, c->fd, &ev))
		die("epoll_ctl");
	send_connect(c, id);
	if (role == R_SUB) {
		/* Its filter, kept in prefix until SUBACK (subscribers publish nothing). */
		topic_of(lg->sc, idx, (char *)c->prefix, sizeof(c->prefix));
	}
	conn_flush(c);
	return c;
}

static void conn_close(struct conn *c)
{
	static const uint8_t disc[2] = { 0xe0, 0 };

	if (c->closed)
		return;
	/* Best effort: the broker learns it is a clean DISCONNECT. */
	if (c->ssl) {
		mbedtls_ssl_write(c->ssl, disc, 2);
		mbedtls_ssl_free(c->ssl);
		free(c->ssl);
		c->ssl = NULL;
	} else if (write(c->fd, disc, 2) < 0) {
		/* Nothing to do: the close below ends the connection anyway. */
	}
	c->closed = true;
	close(c->fd);
}

static void loop_once(struct load *lg, int timeout_ms)
{
	struct epoll_event ev[MAX_EVENTS];
	int n, i;

	n = epoll_wait(lg->ep, ev, MAX_EVENTS, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return;
		die("epoll_wait");
	}
	for (i = 0; i < n; i++) {
		struct conn *c = ev[i].data.ptr;

		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_readable(lg, c);
		if (ev[i].events & EPOLLOUT) {
			conn_flush(c);
			if (!c->want_out && c->role == R_PUB)
				pub_pump(lg, c, now_ns());
		}
	}
}

/* ---------------------------------------------------------------- runs */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double pct)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static int run_idle(struct load *lg)
{
	long before, after;
	int64_t t0, t1, settle;
	unsigned int i;

	lg->idles = xmalloc(lg->idle * sizeof(*lg->idles));
	before = proc_rss_kb(lg->broker_pid);
	t0 = now_ns();
	/* Keep few connects pending: the broker's listen backlog is finite. */
	for (i = 0; i < lg->idle;) {
		while (i < lg->idle && i - lg->n_connected < MAX_PENDING_CONNECTS) {
			lg->idles[i] = conn_open(lg, R_IDLE, i);
			i++;
		}
		lg->n_idles = i;
		loop_once(lg, 10);
		if (now_ns() - t0 > 300 * 1000000000LL)
			fail("idle connections: no CONNACK within 300 s");
	}
	while (lg->n_connected < lg->idle) {
		loop_once(lg, 10);
		if (now_ns() - t0 > 300 * 1000000000LL)
			fail("idle connections: no CONNACK within 300 s");
	}
	t1 = now_ns();
	/* Let the broker settle: fieldmq gives idle buffers back on its 1 s tick. */
	settle = now_ns() + 2500000000LL;
	while (now_ns() < settle)
		loop_once(lg, 50);
	after = proc_rss_kb(lg->broker_pid);
	printf("RESULT scen=s6 conns=%u connect_s=%.3f rss_before_kb=%ld rss_after_kb=%ld "
	       "per_conn_bytes=%.0f\n",
	       lg->idle, (double)(t1 - t0) / 1e9, before, after,
	       before < 0 || after < 0 ? -1.0 : (double)(after - before) * 1024.0 / lg->idle);
	fflush(stdout);
	settle = now_ns() + (int64_t)(lg->hold * 1e9);
	while (now_ns() < settle)
		loop_once(lg, 200);
	for (i = 0; i < lg->n_idles; i++)
		conn_close(lg->idles[i]);
	return 0;
}

/*
 * hs: one new connection after the other for warm-up + duration: connect,
 * TLS handshake (-T), CONNECT, wait for the CONNACK, DISCONNECT, close.
 */
static int run_hs(struct load *lg)
{
	int64_t t0 = now_ns(), tm = t0 + (int64_t)(lg->warmup * 1e9), te, now;
	double bcpu0 = -1, bcpu1, gcpu0 = 0, gcpu1;
	uint64_t n = 0;
	unsigned int i = 0;

	te = tm + (int64_t)(lg->dur * 1e9);
	for (;;) {
		struct conn *c;

		now = now_ns();
		if (bcpu0 < 0 && now >= tm) {
			bcpu0 = proc_cpu_s(lg->broker_pid);
			gcpu0 = self_cpu_s();
			tm = now;
			n = 0;
		}
		if (now >= te)
			break;
		c = conn_open(lg, R_IDLE, i++);
		while (!c->connacked) {
			loop_once(lg, 10);
			if (now_ns() - now > 5 * 1000000000LL)
				fail("hs: no CONNACK within 5 s");
		}
		lg->n_connected--;
		epoll_ctl(lg->ep, EPOLL_CTL_DEL, c->fd, NULL);
		conn_close(c);
		free(c->wbuf);
		free(c->tail);
		free(c);
		n++;
	}
	bcpu1 = proc_cpu_s(lg->broker_pid);
	gcpu1 = self_cpu_s();
	printf("RESULT scen=hs secs=%.2f conns=%llu rate=%.1f broker_cpu=%.0f gen_cpu=%.0f\n",
	       (double)(now - tm) / 1e9, (unsigned long long)n,
	       (double)n * 1e9 / (double)(now - tm),
	       bcpu0 < 0 || bcpu1 < 0 ? -1.0 : (bcpu1 - bcpu0) * 100.0 * 1e9 / (double)(now - tm),
	       (gcpu1 - gcpu0) * 100.0 * 1e9 / (double)(now - tm));
	return 0;
}

static int run_flow(struct load *lg)
{
	const struct scen *sc = lg->sc;
	double bcpu0 = 0, bcpu1 = 0, gcpu0, gcpu1, secs;
	uint64_t sent0 = 0, sent1 = 0, expect = 0;
	int64_t now, t0, deadline;
	unsigned int i;

	lg->subs = xmalloc(sc->nsub * sizeof(*lg->subs));
	lg->pubs = xmalloc(sc->npub * sizeof(*lg->pubs));
	lg->n_subs = sc->nsub;
	lg->n_pubs = sc->npub;
	lg->last_seq = xmalloc((size_t)sc->nsub * sc->npub * sizeof(*lg->last_seq));
	for (i = 0; i < sc->nsub; i++)
		lg->subs[i] = conn_open(lg, R_SUB, i);
	for (i = 0; i < sc->npub; i++) {
		lg->pubs[i] = conn_open(lg, R_PUB, i);
		pub_prepare(lg, lg->pubs[i]);
	}
	t0 = now_ns();
	while (lg->n_ready < sc->nsub + sc->npub) {
		loop_once(lg, 10);
		if (now_ns() - t0 > 10 * 1000000000LL)
			fail("no CONNACK / SUBACK within 10 s");
	}
	now = now_ns();
	lg->running = true;
	lg->t_start = now;
	lg->t_meas = now + (int64_t)(lg->warmup * 1e9);
	lg->t_end = lg->t_meas + (int64_t)(lg->dur * 1e9);
	lg->last_rx = now;
	for (i = 0; i < sc->npub; i++) {
		struct conn *p = lg->pubs[i];

		p->last_progress = now;
		/* Spread the rate-limited publishers over one period. */
		if (lg->rate)
			p->next_due = now + (int64_t)i * (1000000000LL / lg->rate) / sc->npub;
	}
	gcpu0 = self_cpu_s();
	for (;;) {
		now = now_ns();
		if (!lg->measuring && now >= lg->t_meas) {
			lg->measuring = true;
			lg->t_meas = now;
			bcpu0 = proc_cpu_s(lg->broker_pid);
			gcpu0 = self_cpu_s();
			for (i = 0; i < sc->npub; i++)
				sent0 += lg->pubs[i]->sent;
		}
		if (now >= lg->t_end)
			break;
		if (now - lg->last_rx > DEAD_NS)
			fail("no delivery for 3 s: the broker stalled");
		for (i = 0; i < sc->npub; i++)
			pub_pump(lg, lg->pubs[i], now);
		loop_once(lg, 1);
	}
	lg->measuring = false;
	lg->running = false;
	bcpu1 = proc_cpu_s(lg->broker_pid);
	gcpu1 = self_cpu_s();
	secs = (double)(now - lg->t_meas) / 1e9;
	for (i = 0; i < sc->npub; i++) {
		sent1 += lg->pubs[i]->sent;
		expect += lg->pubs[i]->sent * lg->pubs[i]->fanout;
	}
	/* Drain: whatever is still in flight is counted as lost after 2 s. */
	deadline = now_ns() + 2000000000LL;
	while (lg->rx_total + lg->forgiven < expect && now_ns() < deadline)
		loop_once(lg, 10);
	if (sc->latency && lg->n_lat)
		qsort(lg->lat, lg->n_lat, sizeof(*lg->lat), cmp_u64);
	printf("RESULT scen=%s secs=%.2f pub_rate=%.0f rate=%.0f sent=%llu delivered=%llu "
	       "lost=%llu stalls=%llu reorder=%llu gaps=%llu broker_cpu=%.0f gen_cpu=%.0f",
	       sc->name, secs, (double)(sent1 - sent0) / secs, (double)lg->rx_meas / secs,
	       (unsigned long long)sent1, (unsigned long long)lg->rx_total,
	       (unsigned long long)(expect - lg->rx_total), (unsigned long long)lg->stalls,
	       (unsigned long long)lg->reorder, (unsigned long long)lg->gaps,
	       bcpu0 < 0 || bcpu1 < 0 ? -1.0 : (bcpu1 - bcpu0) * 100.0 / secs,
	       (gcpu1 - gcpu0) * 100.0 / secs);
	if (sc->latency)
		printf(" samples=%zu p50_us=%.0f p99_us=%.0f max_us=%.0f", lg->n_lat,
		       pct_us(lg->lat, lg->n_lat, 50), pct_us(lg->lat, lg->n_lat, 99),
		       pct_us(lg->lat, lg->n_lat, 100));
	printf("\n");
	for (i = 0; i < sc->npub; i++)
		conn_close(lg->pubs[i]);
	for (i = 0; i < sc->nsub; i++)
		conn_close(lg->subs[i]);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: mqtt_load -p PORT -s s1|s2|s3|s4|s5|s6|hs [-H HOST] [-d SECS] "
			"[-u WARMUP_SECS] [-w WINDOW] [-n IDLE_CONNS] [-r RATE] [-B BROKER_PID] "
			"[-T CAFILE] [-W] [-k HOLD_SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct load lg = { .dur = 5, .warmup = 1, .broker_pid = -1 };
	const char *host = "127.0.0.1", *scen = NULL, *cafile = NULL;
	long window = -1, rate = -1, idle = -1;
	int opt, port = 0;
	unsigned int i;

	while ((opt = getopt(argc, argv, "p:s:H:d:u:w:n:r:B:T:Wk:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 's':
			scen = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'd':
			lg.dur = atof(optarg);
			break;
		case 'u':
			lg.warmup = atof(optarg);
			break;
		case 'w':
			window = atol(optarg);
			break;
		case 'n':
			idle = atol(optarg);
			break;
		case 'r':
			rate = atol(optarg);
			break;
		case 'B':
			lg.broker_pid = atoi(optarg);
			break;
		case 'T':
			cafile = optarg;
			break;
		case 'W':
			lg.ws = true;
			break;
		case 'k':
			lg.hold = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (!port || !scen || lg.dur <= 0 || lg.warmup < 0)
		usage();
	for (i = 0; i < sizeof(scens) / sizeof(scens[0]); i++)
		if (!strcmp(scens[i].name, scen))
			lg.sc = &scens[i];
	if (!lg.sc)
		usage();
	lg.window = window > 0 ? (unsigned int)window : lg.sc->window;
	lg.rate = rate >= 0 ? (unsigned int)rate : lg.sc->rate;
	lg.idle = lg.sc->idle && idle > 0 ? (unsigned int)idle : lg.sc->idle;
	lg.addr.sin_family = AF_INET;
	lg.addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &lg.addr.sin_addr) != 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	lg.ep = epoll_create1(0);
	if (lg.ep < 0)
		die("epoll_create1");
	lg.rbuf = xmalloc(RBUF_SIZE);
	if (cafile) {
		lg.tls = true;
		mbedtls_ssl_config_init(&lg.conf);
		mbedtls_x509_crt_init(&lg.ca);
		mbedtls_entropy_init(&lg.entropy);
		mbedtls_ctr_drbg_init(&lg.drbg);
		if (mbedtls_ctr_drbg_seed(&lg.drbg, mbedtls_entropy_func, &lg.entropy, NULL, 0) ||
		    mbedtls_x509_crt_parse_file(&lg.ca, cafile) ||
		    mbedtls_ssl_config_defaults(&lg.conf, MBEDTLS_SSL_IS_CLIENT,
						MBEDTLS_SSL_TRANSPORT_STREAM,
						MBEDTLS_SSL_PRESET_DEFAULT))
			fail("TLS client configuration");
		mbedtls_ssl_conf_rng(&lg.conf, mbedtls_ctr_drbg_random, &lg.drbg);
		mbedtls_ssl_conf_ca_chain(&lg.conf, &lg.ca, NULL);
		mbedtls_ssl_conf_authmode(&lg.conf, MBEDTLS_SSL_VERIFY_REQUIRED);
#if MBEDTLS_VERSION_MAJOR == 2
		/* Offered as OpenSSL's clients (paho, mosquitto_pub, Node) do: X25519 first. */
		mbedtls_ssl_conf_curves(&lg.conf, client_curves);
#endif
	}
	if (!strcmp(lg.sc->name, "hs"))
		return run_hs(&lg);
	if (lg.idle)
		return run_idle(&lg);
	return run_flow(&lg);
}
