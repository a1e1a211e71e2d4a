/*
 * serial_bench.c - lines per second each serial parser turns into readings
 * on one core: a buffer of typical lines goes through the port state machine
 * (framer, parser, value conversion, reading callback), as the daemon runs
 * it, without I/O.
 *
 *   build/bench/serial_bench [-n LINES] [-m MIN_LINES_PER_S]
 *
 * Prints one row per parser; exit 1 when a parser is below -m (default 0).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapters/serial/serial_int.h"

struct sink {
	uint64_t readings, good;
	struct ser_port port;
};

static void b_open(void *arg)
{
	struct sink *s = arg;

	ser_port_opened(&s->port, s->port.now, 0);
}

static void b_close(void *arg)
{
	(void)arg;
}

static int b_write(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return 0;
}

static void b_reading(void *arg, const struct ser_dev *d, const struct ser_point *pt,
		      const struct ad_value *v, enum ad_quality q)
{
	struct sink *s = arg;

	(void)d;
	(void)pt;
	(void)v;
	s->readings++;
	s->good += q == AD_Q_GOOD;
}

static void b_status(void *arg, const struct ser_dev *d, bool online)
{
	(void)arg;
	(void)d;
	(void)online;
}

static void b_cmd_done(void *arg, void *token, bool ok, const char *error, const struct ad_value *v)
{
	(void)arg;
	(void)token;
	(void)ok;
	(void)error;
	(void)v;
}

static const struct ser_port_ops ops = {
	.open = b_open,
	.close = b_close,
	.write = b_write,
	.reading = b_reading,
	.status = b_status,
	.cmd_done = b_cmd_done,
};

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nmea(const char *body, char *out, size_t cap)
{
	uint8_t sum = 0;

	for (const char *p = body; *p; p++)
		sum ^= (uint8_t)*p;
	snprintf(out, cap, "$%s*%02X\r\n", body, sum);
}

/* Run @lines (a block of newline-ended lines, repeated) through a port with @d. */
static int run(const char *name, struct ser_dev *d, const char *block, unsigned long n_lines,
	       double min_rate)
{
	static uint8_t fbuf[4096];
	static struct sink s;
	struct ser_framer_conf fc = {
		.mode = SER_FR_LINE, .delim = "\n", .delim_len = 1, .max_frame = 2048
	};
	struct ser_result res[16];
	size_t blen = strlen(block);
	unsigned long per_block = 0, rounds, i;
	double t0, c0, dt, cpu, rate;

	for (i = 0; i < blen; i++)
		per_block += block[i] == '\n';
	rounds = n_lines / per_block + 1;
	memset(&s, 0, sizeof(s));
	ser_port_init(&s.port, &ops, &s, &fc, fbuf, d, 1, res, 1000, 1000, 1000);
	ser_port_start(&s.port, 0);
	t0 = clock_s(CLOCK_MONOTONIC);
	c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	/* Chunks of one block: about what one read() of a busy line returns. */
	for (i = 0; i < rounds; i++)
		ser_port_data(&s.port, (const uint8_t *)block, blen, 0);
	cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	dt = clock_s(CLOCK_MONOTONIC) - t0;
	/* On a shared machine the wall clock counts other processes' turns: rate by CPU time. */
	rate = (double)s.port.st.lines / cpu;
	printf("%-6s %9lu %8.3f %8.3f %12.0f %12.0f %12.0f  %llu/%llu%s\n", name,
	       (unsigned long)s.port.st.lines, cpu, dt, rate, (double)s.readings / cpu,
	       (double)s.port.st.lines / dt, (unsigned long long)s.good,
	       (unsigned long long)s.readings, rate < min_rate ? "  BELOW TARGET" : "");
	ser_port_fini(&s.port);
	if (s.good != s.readings || !s.readings) {
		printf("%s: not every reading was good\n", name);
		return 1;
	}
	return rate < min_rate;
}

int main(int argc, char **argv)
{
	unsigned long n = 1000000;
	double min_rate = 0;
	char block[4096], s1[128], s2[128], s3[128];
	int opt, fails = 0;
	regex_t re;

	while ((opt = getopt(argc, argv, "n:m:")) != -1) {
		switch (opt) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'm':
			min_rate = strtod(optarg, NULL);
			break;
		default:
			fprintf(stderr, "usage: %s [-n LINES] [-m MIN_LINES_PER_S]\n", argv[0]);
			return 2;
		}
	}
	/* As the daemon does (gateway/main.c): cJSON builds the json parser's trees in the port's arena. */
	cJSON_InitHooks(
		&(cJSON_Hooks){ .malloc_fn = gw_arena_hook_malloc, .free_fn = gw_arena_hook_free });
	printf("serial parsers, one core, %lu lines each: framer + parser + conversion + reading\n",
	       n);
	printf("%-6s %9s %8s %8s %12s %12s %12s  %s\n", "parser", "lines", "cpu s", "wall s",
	       "lines/s", "readings/s", "lines/s wall", "good");
	{
		struct ser_point pts[3] = {
			{ .type = AD_PT_FLOAT64, .scale = 1, .group = 1 },
			{ .type = AD_PT_FLOAT64, .scale = 1, .group = 2 },
			{ .type = AD_PT_UINT16, .scale = 1, .group = 3 },
		};
		struct ser_dev d = { .parser = SER_PARSE_REGEX,
				     .match = &re,
				     .n_groups = 3,
				     .points = pts,
				     .n_points = 3 };

		if (regcomp(&re, "^T=([-0-9.]+) H=([0-9.]+) P=([0-9]+)$", REG_EXTENDED))
			return 2;
		fails += run("regex", &d, "T=21.5 H=40.2 P=1013\r\nT=21.6 H=40.1 P=1012\r\n", n,
			     min_rate);
		regfree(&re);
	}
	{
		struct ser_point pts[3] = {
			{ .type = AD_PT_FLOAT64, .scale = 1, .column = 2 },
			{ .type = AD_PT_FLOAT64, .scale = 1, .column = 3 },
			{ .type = AD_PT_UINT32, .scale = 1, .column = 5 },
		};
		struct ser_dev d = {
			.parser = SER_PARSE_CSV, .separator = ',', .points = pts, .n_points = 3
		};

		fails += run("csv", &d, "12:00:01,21.5,40.2,OK,1013\n12:00:02,21.6,40.1,OK,1012\n",
			     n, min_rate);
	}
	{
		struct ser_point pts[3] = {
			{ .type = AD_PT_FLOAT64, .scale = 1, .key = "temp" },
			{ .type = AD_PT_FLOAT64, .scale = 1, .key = "hum" },
			{ .type = AD_PT_UINT32, .scale = 1, .key = "pres" },
		};
		struct ser_dev d = { .parser = SER_PARSE_KV,
				     .pair_seps = "; ,\t",
				     .kv_seps = "=",
				     .points = pts,
				     .n_points = 3 };

		fails += run("kv", &d, "temp=21.5;hum=40;pres=1013\ntemp=21.6;hum=41;pres=1012\n",
			     n, min_rate);
	}
	{
		struct ser_point pts[3] = {
			{ .type = AD_PT_FLOAT64, .scale = 1, .json_pointer = "/temperature_C" },
			{ .type = AD_PT_UINT16, .scale = 1, .json_pointer = "/humidity" },
			{ .type = AD_PT_BOOL, .scale = 1, .json_pointer = "/battery_ok" },
		};
		struct ser_dev d = { .parser = SER_PARSE_JSON, .points = pts, .n_points = 3 };
		char match[] = "/model=Acurite-Tower,/id=1234";
		const char *why;

		if (ser_jmatch_parse(match, &d, &why))
			return 2;
		fails += run(
			"json", &d,
			"{\"time\":\"2024-05-01 10:00:00\",\"model\":\"Acurite-Tower\",\"id\":1234,"
			"\"channel\":\"A\",\"battery_ok\":1,\"temperature_C\":21.4,"
			"\"humidity\":40,\"mic\":\"CHECKSUM\"}\n",
			n, min_rate);
	}
	{
		struct ser_point pts[5] = {
			{ .type = AD_PT_FLOAT64, .scale = 1, .field = SER_NMEA_LAT },
			{ .type = AD_PT_FLOAT64, .scale = 1, .field = SER_NMEA_LON },
			{ .type = AD_PT_FLOAT64, .scale = 1, .field = SER_NMEA_ALT },
			{ .type = AD_PT_FLOAT64, .scale = 1, .field = SER_NMEA_SPEED },
			{ .type = AD_PT_UINT16, .scale = 1, .field = SER_NMEA_SATS },
		};
		struct ser_dev d = { .parser = SER_PARSE_NMEA, .points = pts, .n_points = 5 };

		nmea("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", s1,
		     sizeof(s1));
		nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", s2,
		     sizeof(s2));
		nmea("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A", s3, sizeof(s3));
		snprintf(block, sizeof(block), "%s%s%s", s1, s2, s3);
		fails += run("nmea", &d, block, n, min_rate);
	}
	return fails ? 1 : 0;
}
