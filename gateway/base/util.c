/*
 * util.c - clocks and the config value parsers.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "base.h"

int64_t gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gw_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Leading unsigned decimal integer; *end points past it. */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		s++;
	}
	*end = s;
	*out = v;
	return 0;
}

static int scaled(uint64_t v, uint64_t mul, uint64_t *out)
{
	if (mul && v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int gw_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 },	  { "s", 1000 },     { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 }, { "", 1000 },
	};
	const char *end;
	uint64_t v;
	size_t i;
	int rc;

	rc = parse_u64(s, &end, &v);
	if (rc)
		return rc;
	for (i = 0; i < GW_ARRAY_SIZE(units); i++)
		if (!strcasecmp(end, units[i].suffix))
			return scaled(v, units[i].ms, out_ms);
	return -EINVAL;
}

int gw_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	rc = parse_u64(s, &end, &v);
	if (rc)
		return rc;
	if (!*end)
		return scaled(v, 1, out);
	if (end[1] && !(end[1] == 'B' || end[1] == 'b'))
		return -EINVAL;
	if (end[1] && end[2])
		return -EINVAL;
	switch (*end) {
	case 'K':
	case 'k':
		return scaled(v, 1024ULL, out);
	case 'M':
	case 'm':
		return scaled(v, 1024ULL * 1024, out);
	case 'G':
	case 'g':
		return scaled(v, 1024ULL * 1024 * 1024, out);
	case 'B':
	case 'b':
		return end[1] ? -EINVAL : scaled(v, 1, out);
	}
	return -EINVAL;
}

int gw_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < GW_ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int gw_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (!*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 0);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int gw_parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end || !isfinite(v))
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}
