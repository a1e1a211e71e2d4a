/*
 * test_serial_port.c - the per-port state machine with a fake clock and fake
 * I/O: hotplug (missing at start, backoff, disappears, returns), devices
 * sharing a line, polls with one request in flight and timeouts, commands
 * with and without write_response, a port that fails on write, bad values
 * reported once, noise, the counters and the per-device figures of /metrics.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/serial/serial_int.h"

struct ev {
	char what[160];
};

struct fake {
	struct ser_port port;
	int open_result; /* what the next open answers */
	int write_result;
	int opens, closes;
	char written[1024];
	size_t written_len;
	struct ev ev[256];
	unsigned int n_ev;
	uint8_t fbuf[2048];
	struct ser_result res[8];
};

static void ev_add(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev_add(struct fake *f, const char *fmt, ...)
{
	va_list ap;

	if (f->n_ev >= 256)
		return;
	va_start(ap, fmt);
	vsnprintf(f->ev[f->n_ev++].what, sizeof(f->ev[0].what), fmt, ap);
	va_end(ap);
}

static void f_open(void *arg)
{
	struct fake *f = arg;

	f->opens++;
	/* a synchronous answer, as the machine allows */
	ser_port_opened(&f->port, f->port.now, f->open_result);
}

static void f_close(void *arg)
{
	((struct fake *)arg)->closes++;
}

static int f_write(void *arg, const uint8_t *p, size_t n)
{
	struct fake *f = arg;

	if (f->write_result)
		return f->write_result;
	memcpy(f->written + f->written_len, p, n);
	f->written_len += n;
	f->written[f->written_len] = '\0';
	return 0;
}

static const char *q_names[] = { "good", "bad", "stale" };

static void f_reading(void *arg, const struct ser_dev *d, const struct ser_point *pt,
		      const struct ad_value *v, enum ad_quality q)
{
	struct fake *f = arg;
	unsigned int di = (unsigned int)(d - f->port.devs), pi = (unsigned int)(pt - d->points);

	if (v->type == AD_VAL_DOUBLE)
		ev_add(f, "r%u.%u=%g %s", di, pi, v->d, q_names[q]);
	else
		ev_add(f, "r%u.%u %s", di, pi, q_names[q]);
}

static void f_status(void *arg, const struct ser_dev *d, bool online)
{
	struct fake *f = arg;

	ev_add(f, "d%u %s", (unsigned int)(d - f->port.devs), online ? "online" : "offline");
}

static void f_cmd_done(void *arg, void *token, bool ok, const char *error, const struct ad_value *v)
{
	struct fake *f = arg;

	(void)v;
	ev_add(f, "cmd %s %s %s", (const char *)token, ok ? "ok" : "fail", error ? error : "");
}

static const struct ser_port_ops fops = {
	.open = f_open,
	.close = f_close,
	.write = f_write,
	.reading = f_reading,
	.status = f_status,
	.cmd_done = f_cmd_done,
};

static const struct ser_framer_conf line = {
	.mode = SER_FR_LINE, .delim = "\n", .delim_len = 1, .max_frame = 256
};

/* The events since the last call, joined with "|". */
static const char *events(struct fake *f)
{
	static char out[4096];
	size_t o = 0;
	unsigned int i;

	out[0] = '\0';
	for (i = 0; i < f->n_ev; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? "|" : "",
				      f->ev[i].what);
	f->n_ev = 0;
	return out;
}

static void data(struct fake *f, const char *s, int64_t now)
{
	ser_port_data(&f->port, (const uint8_t *)s, strlen(s), now);
}

/* Two kv devices on one line: "a" takes t=, "b" takes h=. */
static struct ser_point pa[1], pb[1];
static struct ser_dev kvdevs[2];

static void setup_kv(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	memset(pa, 0, sizeof(pa));
	memset(pb, 0, sizeof(pb));
	memset(kvdevs, 0, sizeof(kvdevs));
	pa[0] = (struct ser_point){ .type = AD_PT_FLOAT64, .scale = 1, .key = "t" };
	pb[0] = (struct ser_point){ .type = AD_PT_FLOAT64, .scale = 1, .key = "h" };
	kvdevs[0] = (struct ser_dev){ .parser = SER_PARSE_KV,
				      .pair_seps = ";",
				      .kv_seps = "=",
				      .points = pa,
				      .n_points = 1 };
	kvdevs[1] = (struct ser_dev){ .parser = SER_PARSE_KV,
				      .pair_seps = ";",
				      .kv_seps = "=",
				      .points = pb,
				      .n_points = 1 };
	ser_port_init(&f->port, &fops, f, &line, f->fbuf, kvdevs, 2, f->res, 500, 1000, 8000);
}

static void test_hotplug(void **state)
{
	static struct fake f;
	int64_t t = 100;

	(void)state;
	setup_kv(&f);
	f.open_result = -ENOENT; /* missing at start: no failure, devices offline */
	ser_port_start(&f.port, t);
	assert_string_equal(events(&f), "d0 offline|d1 offline");
	assert_int_equal(f.port.state, SER_PORT_CLOSED);
	assert_int_equal(ser_port_deadline(&f.port), t + 1000);
	/* backoff doubles up to reopen_max, and nothing happens before the deadline */
	ser_port_tick(&f.port, t + 999);
	assert_int_equal(f.opens, 1);
	t += 1000;
	ser_port_tick(&f.port, t);
	assert_int_equal(f.opens, 2);
	assert_int_equal(ser_port_deadline(&f.port), t + 2000);
	t += 2000;
	ser_port_tick(&f.port, t);
	t += 4000;
	ser_port_tick(&f.port, t);
	assert_int_equal(ser_port_deadline(&f.port), t + 8000);
	t += 8000;
	ser_port_tick(&f.port, t);
	assert_int_equal(ser_port_deadline(&f.port), t + 8000); /* capped */
	assert_int_equal(f.opens, 5);
	assert_int_equal(f.port.st.open_failures, 5);
	assert_string_equal(events(&f), ""); /* status told once */
	/* it comes back */
	f.open_result = 0;
	t += 8000;
	ser_port_tick(&f.port, t);
	assert_int_equal(f.port.state, SER_PORT_OPEN);
	assert_string_equal(events(&f), "d0 online|d1 online");
	data(&f, "t=21.5\nh=40\nt=1;h=2\nzzz\n", t);
	assert_string_equal(events(&f), "r0.0=21.5 good|r1.0=40 good|r0.0=1 good|r1.0=2 good");
	assert_int_equal(f.port.st.lines, 4);
	assert_int_equal(f.port.st.unmatched, 1);
	/* unplugged: offline, reopened after reopen_min, a partial line forgotten */
	data(&f, "t=9", t);
	ser_port_failed(&f.port, t, -EIO);
	assert_int_equal(f.closes, 1);
	assert_string_equal(events(&f), "d0 offline|d1 offline");
	assert_int_equal(ser_port_deadline(&f.port), t + 1000);
	data(&f, "t=5\n", t); /* nothing is read from a closed port */
	t += 1000;
	ser_port_tick(&f.port, t);
	assert_string_equal(events(&f), "d0 online|d1 online");
	data(&f, "\nt=3\n", t);
	assert_string_equal(events(&f), "r0.0=3 good");
	assert_int_equal(f.port.st.opens, 2);
	assert_int_equal(f.port.st.closes, 1);
	ser_port_stop(&f.port, t);
	assert_int_equal(f.closes, 2);
	assert_int_equal(ser_port_deadline(&f.port), -1);
}

static void test_bad_once(void **state)
{
	static struct fake f;
	int64_t t = 1000;

	(void)state;
	setup_kv(&f);
	ser_port_start(&f.port, t);
	events(&f);
	data(&f, "t=1\nt=x\nt=y\nt=2\n", t);
	assert_string_equal(events(&f), "r0.0=1 good|r0.0 bad|r0.0=2 good");
	assert_int_equal(f.port.st.bad_values, 2);
	assert_int_equal(kvdevs[0].last_seen, t);
	/* binary noise and a wrong baud rate: counted, nothing reported */
	data(&f, "\x01\xff\xfe\x80=\x13;\n\xc3\x28\n", t);
	assert_string_equal(events(&f), "");
	assert_int_equal(f.port.st.unmatched, 2);
}

/* Two SCPI-style instruments on one line, each asked in turn. */
static void test_polls(void **state)
{
	static struct fake f;
	static regex_t re0, re1;
	struct ser_point p0 = { .type = AD_PT_FLOAT64, .scale = 1, .group = 1 };
	struct ser_point p1 = { .type = AD_PT_FLOAT64, .scale = 1, .group = 1 };
	struct ser_dev devs[3] = {
		{ .parser = SER_PARSE_REGEX,
		  .match = &re0,
		  .n_groups = 1,
		  .points = &p0,
		  .n_points = 1,
		  .poll_ms = 1000,
		  .poll_cmd = (const uint8_t *)"A?\r\n",
		  .poll_cmd_len = 4 },
		{ .parser = SER_PARSE_REGEX,
		  .match = &re1,
		  .n_groups = 1,
		  .points = &p1,
		  .n_points = 1,
		  .poll_ms = 1000,
		  .poll_cmd = (const uint8_t *)"B?\r\n",
		  .poll_cmd_len = 4 },
		{ .parser = SER_PARSE_KV,
		  .pair_seps = ";",
		  .kv_seps = "=",
		  .points = pa,
		  .n_points = 1 },
	};
	int64_t t = 0;

	(void)state;
	memset(&f, 0, sizeof(f));
	pa[0] = (struct ser_point){ .type = AD_PT_FLOAT64, .scale = 1, .key = "t" };
	assert_int_equal(regcomp(&re0, "^([-+0-9.E]+)$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&re1, "^([-+0-9.E]+)$", REG_EXTENDED), 0);
	ser_port_init(&f.port, &fops, &f, &line, f.fbuf, devs, 3, f.res, 500, 1000, 8000);
	ser_port_start(&f.port, t);
	assert_string_equal(events(&f), "d2 online"); /* asked devices: online when they answer */
	assert_int_equal(ser_port_deadline(&f.port), 0);
	ser_port_tick(&f.port, t);
	/* one request in flight: A asked, B waits */
	assert_string_equal(f.written, "A?\r\n");
	assert_int_equal(ser_port_deadline(&f.port), 500);
	data(&f, "t=7\n", 100); /* an unsolicited line from the third device */
	assert_string_equal(events(&f), "r2.0=7 good");
	data(&f, "+2.15E+01\n", 120);
	assert_string_equal(events(&f), "d0 online|r0.0=21.5 good");
	assert_string_equal(f.written, "A?\r\nB?\r\n"); /* the answer frees the line for B */
	data(&f, "3.5\n", 150);
	assert_string_equal(events(&f), "d1 online|r1.0=3.5 good");
	/* a number nobody asked for is not taken by an asked device */
	data(&f, "4.5\n", 160);
	assert_string_equal(events(&f), "");
	assert_int_equal(f.port.st.unmatched, 1);
	/* A stops answering: bad once, offline after three timeouts; B still asked */
	f.written_len = 0;
	for (t = 1000; t < 4000; t += 1000) {
		ser_port_tick(&f.port, t);
		ser_port_tick(&f.port, t + 500); /* A times out, B goes out */
		data(&f, "1.0\n", t + 510);
	}
	assert_string_equal(events(&f), "r0.0 bad|r1.0=1 good|r1.0=1 good|d0 offline|r1.0=1 good");
	assert_int_equal(f.port.st.timeouts, 3);
	assert_string_equal(f.written, "A?\r\nB?\r\nA?\r\nB?\r\nA?\r\nB?\r\n");
	/* it answers again */
	ser_port_tick(&f.port, 4000);
	data(&f, "20\n", 4010);
	assert_string_equal(events(&f), "d0 online|r0.0=20 good");
	/* an overrun: the poll is due while the previous one still waits */
	ser_port_tick(&f.port, 4020); /* B asked */
	ser_port_tick(&f.port, 5000); /* A due, B still out... */
	ser_port_tick(&f.port, 5000);
	assert_int_equal(f.port.st.overruns, 0);
	f.port.timeout_ms = 5000;
	ser_port_tick(&f.port, 6000);
	ser_port_tick(&f.port, 7000);
	assert_true(f.port.st.overruns >= 1);
	regfree(&re0);
	regfree(&re1);
}

static void test_commands(void **state)
{
	static struct fake f;
	static regex_t resp;
	static struct ser_fmt fmt;
	const char *why = NULL;
	struct ad_value v = { .type = AD_VAL_DOUBLE, .d = 42 };
	int64_t t = 0;
	int i;

	(void)state;
	setup_kv(&f);
	assert_int_equal(regcomp(&resp, "^OK", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(ser_fmt_compile((const uint8_t *)"SET %v\r\n", 8, &fmt, &why), 0);
	/* not writable, port not open */
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "c0", &why, t), -EACCES);
	pa[0].writable = true;
	pa[0].write_fmt = &fmt;
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "c0", &why, t),
			 -ENOTCONN);
	ser_port_start(&f.port, t);
	events(&f);
	/* no write_response: done once written */
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "c1", &why, t), 0);
	assert_string_equal(f.written, "SET 42\r\n");
	assert_string_equal(events(&f), "cmd c1 ok ");
	/* a value the template cannot take */
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0],
					  &(struct ad_value){ .type = AD_VAL_STRING,
							      .s = GW_SLICE_STR("x\0y") },
					  "c2", &why, t),
			 0); /* %v takes text as it is */
	events(&f);
	/* with write_response: the matching line ends it; others still parse */
	pa[0].write_response = &resp;
	f.written_len = 0;
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "c3", &why, t), 0);
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "c4", &why, t), 0);
	assert_string_equal(f.written, "SET 42\r\n"); /* c4 waits for c3 */
	data(&f, "h=1\nOK 42\n", 10);
	assert_string_equal(events(&f), "r1.0=1 good|cmd c3 ok ");
	assert_string_equal(f.written, "SET 42\r\nSET 42\r\n");
	ser_port_tick(&f.port, 600);
	assert_string_equal(events(&f), "cmd c4 fail timeout: no write_response from the device");
	/* the queue is bounded */
	for (i = 0; i < SER_MAX_QUEUE; i++)
		assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "q", &why, 700),
				 0);
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "full", &why, 700),
			 -EBUSY);
	/* the port fails on write: the command fails, queued ones too, the port reopens */
	ser_port_stop(&f.port, 800);
	events(&f);
	setup_kv(&f);
	pa[0].writable = true;
	pa[0].write_fmt = &fmt;
	ser_port_start(&f.port, 0);
	events(&f);
	f.write_result = -EIO;
	assert_int_equal(ser_port_command(&f.port, &kvdevs[0], &pa[0], &v, "w", &why, 5), 0);
	assert_string_equal(events(&f),
			    "cmd w fail write to the port failed|d0 offline|d1 offline");
	assert_int_equal(f.port.st.write_errors, 1);
	assert_int_equal(f.port.state, SER_PORT_CLOSED);
	f.write_result = 0;
	ser_port_tick(&f.port, 1005);
	assert_int_equal(f.port.state, SER_PORT_OPEN);
	regfree(&resp);
}

static void test_idle_framing_through_port(void **state)
{
	static struct fake f;
	static const struct ser_framer_conf idle = { .mode = SER_FR_IDLE,
						     .idle_gap_ms = 20,
						     .max_frame = 64 };

	(void)state;
	setup_kv(&f);
	ser_port_init(&f.port, &fops, &f, &idle, f.fbuf, kvdevs, 2, f.res, 500, 1000, 8000);
	ser_port_start(&f.port, 0);
	events(&f);
	data(&f, "t=", 100);
	data(&f, "5", 110);
	assert_int_equal(ser_port_deadline(&f.port), 130);
	ser_port_tick(&f.port, 130);
	assert_string_equal(events(&f), "r0.0=5 good");
}

/*
 * The per-device figures of /metrics: a polled device (A) and one that talks
 * by itself (K) on one line whose frames may be 16 bytes, with a fake clock.
 */
static void test_device_stats(void **state)
{
	static struct fake f;
	static regex_t re;
	static const struct ser_framer_conf short_line = {
		.mode = SER_FR_LINE, .delim = "\n", .delim_len = 1, .max_frame = 16
	};
	struct ser_point pA = { .type = AD_PT_FLOAT64, .scale = 1, .group = 1 };
	struct ser_point pK = { .type = AD_PT_FLOAT64, .scale = 1, .key = "t" };
	struct ser_dev devs[2] = {
		{ .parser = SER_PARSE_REGEX,
		  .match = &re,
		  .n_groups = 1,
		  .points = &pA,
		  .n_points = 1,
		  .poll_ms = 1000,
		  .poll_cmd = (const uint8_t *)"A?\r\n",
		  .poll_cmd_len = 4 },
		{ .parser = SER_PARSE_KV,
		  .pair_seps = ";",
		  .kv_seps = "=",
		  .points = &pK,
		  .n_points = 1 },
	};
	struct ad_device_stats a, k;
	unsigned int i;

	(void)state;
	memset(&f, 0, sizeof(f));
	assert_int_equal(regcomp(&re, "^([-+0-9.E]+)$", REG_EXTENDED), 0);
	ser_port_init(&f.port, &fops, &f, &short_line, f.fbuf, devs, 2, f.res, 500, 1000, 8000);
	/* the port is missing at first: a transport error of both devices */
	f.open_result = -ENOENT;
	ser_port_start(&f.port, 0);
	f.open_result = 0;
	ser_port_tick(&f.port, 1000); /* opened; A asked at once */
	assert_string_equal(f.written, "A?\r\n");
	data(&f, "t=7\n", 1010);  /* K talks: a frame of K's */
	data(&f, "12.5\n", 1040); /* A answers after 40 ms */
	/* A's next question gets a line nobody takes, then nothing: parse error, timeout */
	ser_port_tick(&f.port, 2000);
	data(&f, "garbage!\n", 2010);
	ser_port_tick(&f.port, 2500);
	/* a frame over max_frame while nobody is asked: K's overrun, not A's */
	data(&f, "t=123456789012345678901234\n", 2600);
	/* one while A is asked: A's; then its answer after 20 ms */
	ser_port_tick(&f.port, 3000);
	data(&f, "99999999999999999999999\n", 3010);
	data(&f, "1.5\n", 3020);
	/* a value K's point cannot read */
	data(&f, "t=x\n", 3100);
	/* the port goes away with A's question out: A's request ends, both get a transport error */
	ser_port_tick(&f.port, 3200);
	ser_port_failed(&f.port, 3210, -EIO); /* nothing asked: 3200 < next poll at 4000 */
	ser_port_tick(&f.port, 4210);	      /* reopened: A asked at once */
	assert_int_equal(f.port.state, SER_PORT_OPEN);
	ser_port_failed(&f.port, 4250, -EIO);
	/* reopened, and the port refuses A's question */
	f.write_result = -EIO;
	ser_port_tick(&f.port, 5250);
	assert_int_equal(f.port.st.write_errors, 1);
	ser_dev_stats(&devs[0], &a);
	ser_dev_stats(&devs[1], &k);
	/* A: answered twice (timed), timed out once, cut by the port once, refused once */
	assert_int_equal(a.requests, 5);
	assert_int_equal(a.latency.count, 2);
	assert_int_equal(a.latency.sum_us, 60000);
	assert_int_equal(a.latency.bucket[5], 1); /* 20 ms: le=0.025 */
	assert_int_equal(a.latency.bucket[6], 1); /* 40 ms: le=0.05 */
	assert_int_equal(a.errors[AD_ERR_TIMEOUT], 1);
	assert_int_equal(a.errors[AD_ERR_PARSE], 1);
	assert_int_equal(a.errors[AD_ERR_OVERRUN], 1);
	assert_int_equal(a.errors[AD_ERR_TRANSPORT], 4); /* open, gone twice, write */
	/* K: two frames (no latency: nobody asked), one unreadable value, one overrun */
	assert_int_equal(k.requests, 2);
	assert_int_equal(k.latency.count, 0);
	assert_int_equal(k.errors[AD_ERR_TIMEOUT], 0);
	assert_int_equal(k.errors[AD_ERR_PARSE], 1);
	assert_int_equal(k.errors[AD_ERR_OVERRUN], 1);
	assert_int_equal(k.errors[AD_ERR_TRANSPORT], 4);
	/* the kinds a serial device has */
	for (i = 0; i < __AD_ERR_MAX; i++)
		assert_int_equal(!!(a.kinds & AD_ERR_BIT(i)),
				 i != AD_ERR_EXCEPTION && i != AD_ERR_TLS);
	ser_port_stop(&f.port, 6000);
	regfree(&re);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hotplug),
		cmocka_unit_test(test_bad_once),
		cmocka_unit_test(test_polls),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_idle_framing_through_port),
		cmocka_unit_test(test_device_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
