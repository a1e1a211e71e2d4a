/*
 * serial_nmea.c - NMEA 0183 sentences (GGA RMC VTG GSA GSV ZDA GLL) to the
 * fields a GPS point can take. Pure: bounded reads of the sentence only.
 *
 * Sentence layout [NMEA 0183 4.10, 5.2]: '$', a two-letter talker and a
 * three-letter type, comma-separated fields, '*', two hex digits of the XOR
 * of every byte between '$' and '*'. An empty field means "not available".
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

#define MAX_NMEA 82 /* the standard's bound; receivers exceed it: we take up to 4x */
#define NMEA_FIELDS 24

const char *const ser_nmea_field_names[__SER_NMEA_MAX] = {
	[SER_NMEA_LAT] = "lat",
	[SER_NMEA_LON] = "lon",
	[SER_NMEA_ALT] = "alt",
	[SER_NMEA_SPEED] = "speed",
	[SER_NMEA_COURSE] = "course",
	[SER_NMEA_FIX] = "fix",
	[SER_NMEA_SATS] = "sats",
	[SER_NMEA_HDOP] = "hdop",
	[SER_NMEA_UTC] = "utc",
	[SER_NMEA_PDOP] = "pdop",
	[SER_NMEA_VDOP] = "vdop",
	[SER_NMEA_MODE] = "mode",
	[SER_NMEA_SATS_VIEW] = "sats_view",
};

static const char types[__SER_NMEA_TYPE_MAX][4] = {
	[SER_NMEA_GGA] = "GGA", [SER_NMEA_RMC] = "RMC", [SER_NMEA_VTG] = "VTG",
	[SER_NMEA_GSA] = "GSA", [SER_NMEA_GSV] = "GSV", [SER_NMEA_ZDA] = "ZDA",
	[SER_NMEA_GLL] = "GLL",
};

struct fields {
	struct gw_slice f[NMEA_FIELDS]; /* f[0] is the address "GPGGA" */
	unsigned int n;
};

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A decimal number of at most 20 characters: digits, one '.', a leading sign. */
static bool num(struct gw_slice s, double *out)
{
	char buf[24];
	char *end;

	if (!s.len || s.len >= sizeof(buf))
		return false;
	memcpy(buf, s.p, s.len);
	buf[s.len] = '\0';
	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];

		if (!(c >= '0' && c <= '9') && c != '.' && !(i == 0 && (c == '-' || c == '+')))
			return false;
	}
	*out = strtod(buf, &end);
	return *end == '\0' && isfinite(*out);
}

static bool uint_of(struct gw_slice s, unsigned int digits, unsigned int *out)
{
	unsigned int v = 0, i;

	if (s.len < digits)
		return false;
	for (i = 0; i < digits; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (s.p[i] - '0');
	}
	*out = v;
	return true;
}

/* ddmm.mmmm / dddmm.mmmm with a hemisphere letter to decimal degrees. */
static bool coord(struct gw_slice v, struct gw_slice hemi, unsigned int deg_digits, double max,
		  double *out)
{
	unsigned int deg;
	double min;
	struct gw_slice m;

	if (v.len < deg_digits + 2 || hemi.len != 1 || !uint_of(v, deg_digits, &deg))
		return false;
	m.p = v.p + deg_digits;
	m.len = v.len - deg_digits;
	if (m.p[0] < '0' || m.p[0] > '9' || !num(m, &min) || min >= 60)
		return false;
	*out = deg + min / 60.0;
	if (*out > max)
		return false;
	switch (hemi.p[0]) {
	case 'N':
	case 'E':
		return true;
	case 'S':
	case 'W':
		*out = -*out;
		return true;
	default:
		return false;
	}
}

/* hhmmss[.sss] to seconds of the day. */
static bool tod(struct gw_slice s, double *out)
{
	unsigned int h, m;
	double sec;
	struct gw_slice ss;

	if (s.len < 6 || !uint_of(s, 2, &h))
		return false;
	ss.p = s.p + 2;
	ss.len = 2;
	if (!uint_of(ss, 2, &m))
		return false;
	ss.p = s.p + 4;
	ss.len = s.len - 4;
	if (ss.p[0] < '0' || ss.p[0] > '9' || !num(ss, &sec))
		return false;
	if (h > 23 || m > 59 || sec >= 61)
		return false;
	*out = h * 3600.0 + m * 60.0 + sec;
	return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era;
	unsigned int yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned int)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool date_ok(unsigned int y, unsigned int m, unsigned int d)
{
	return y >= 1980 && y <= 2199 && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static void set(struct ser_nmea *n, enum ser_nmea_field f, bool ok, double v)
{
	n->has |= 1u << f;
	if (ok)
		n->v[f] = v;
	else
		n->bad |= 1u << f;
}

/* A field that must be a number when present; an empty one is "not available". */
static void set_num(struct ser_nmea *n, enum ser_nmea_field f, const struct fields *fs,
		    unsigned int i)
{
	double v = 0;
	bool ok;

	if (i >= fs->n)
		return;
	ok = num(fs->f[i], &v);
	set(n, f, ok, v);
}

/* Latitude (@lon false) or longitude from fields @i (value) and @i + 1 (hemisphere). */
static void set_coord(struct ser_nmea *n, bool lon, const struct fields *fs, unsigned int i,
		      bool valid)
{
	double v = 0;
	bool ok = valid && fs->n > i + 1 &&
		  coord(fs->f[i], fs->f[i + 1], lon ? 3 : 2, lon ? 180 : 90, &v);

	set(n, lon ? SER_NMEA_LON : SER_NMEA_LAT, ok, v);
}

static void gga(struct ser_nmea *n, const struct fields *fs)
{
	set_coord(n, false, fs, 2, true);
	set_coord(n, true, fs, 4, true);
	set_num(n, SER_NMEA_FIX, fs, 6);
	set_num(n, SER_NMEA_SATS, fs, 7);
	set_num(n, SER_NMEA_HDOP, fs, 8);
	set_num(n, SER_NMEA_ALT, fs, 9);
	/* Without a fix the receiver's position fields are meaningless even when filled. */
	if ((n->has & ~n->bad & 1u << SER_NMEA_FIX) && n->v[SER_NMEA_FIX] == 0)
		n->bad |= 1u << SER_NMEA_LAT | 1u << SER_NMEA_LON | 1u << SER_NMEA_ALT;
}

static void utc_of(struct ser_nmea *n, struct gw_slice time, unsigned int y, unsigned int mo,
		   unsigned int d, bool date)
{
	double secs = 0;
	bool ok = date && date_ok(y, mo, d) && tod(time, &secs);

	set(n, SER_NMEA_UTC, ok, ok ? (double)days_from_civil(y, mo, d) * 86400.0 + secs : 0);
}

static void rmc(struct ser_nmea *n, const struct fields *fs)
{
	bool valid = fs->n > 2 && fs->f[2].len == 1 && fs->f[2].p[0] == 'A';
	double v = 0;
	unsigned int d = 0, m = 0, y = 0;
	bool date = false;

	set_coord(n, false, fs, 3, valid);
	set_coord(n, true, fs, 5, valid);
	if (fs->n > 7) {
		bool ok = valid && num(fs->f[7], &v);

		set(n, SER_NMEA_SPEED, ok, v * 1.852);
	}
	if (fs->n > 8) {
		bool ok = valid && num(fs->f[8], &v);

		set(n, SER_NMEA_COURSE, ok, v);
	}
	if (fs->n > 9 && fs->f[9].len == 6) {
		struct gw_slice s = fs->f[9];

		date = uint_of(s, 2, &d);
		s.p += 2;
		date = date && uint_of(s, 2, &m);
		s.p += 2;
		date = date && uint_of(s, 2, &y);
		/* Two-digit years: RMC has no century; GPS time begins in 1980. */
		y += y < 80 ? 2000 : 1900;
	}
	if (fs->n > 1)
		utc_of(n, fs->f[1], y, m, d, date);
}

static void vtg(struct ser_nmea *n, const struct fields *fs)
{
	double v = 0;

	set_num(n, SER_NMEA_COURSE, fs, 1);
	/* km/h (field 7) when given, else knots (field 5). */
	if (fs->n > 7 && fs->f[7].len) {
		set_num(n, SER_NMEA_SPEED, fs, 7);
	} else if (fs->n > 5) {
		bool ok = num(fs->f[5], &v);

		set(n, SER_NMEA_SPEED, ok, v * 1.852);
	}
}

static void gsa(struct ser_nmea *n, const struct fields *fs)
{
	set_num(n, SER_NMEA_MODE, fs, 2);
	set_num(n, SER_NMEA_PDOP, fs, 15);
	set_num(n, SER_NMEA_HDOP, fs, 16);
	set_num(n, SER_NMEA_VDOP, fs, 17);
}

static void gsv(struct ser_nmea *n, const struct fields *fs)
{
	set_num(n, SER_NMEA_SATS_VIEW, fs, 3);
}

static void zda(struct ser_nmea *n, const struct fields *fs)
{
	unsigned int d = 0, m = 0, y = 0;
	bool date = fs->n > 4 && fs->f[2].len == 2 && fs->f[3].len == 2 && fs->f[4].len == 4 &&
		    uint_of(fs->f[2], 2, &d) && uint_of(fs->f[3], 2, &m) &&
		    uint_of(fs->f[4], 4, &y);

	if (fs->n > 1)
		utc_of(n, fs->f[1], y, m, d, date);
}

static void gll(struct ser_nmea *n, const struct fields *fs)
{
	/* Status (field 6, NMEA 2.3+) V means the position is not valid. */
	bool valid = !(fs->n > 6 && fs->f[6].len == 1 && fs->f[6].p[0] == 'V');

	set_coord(n, false, fs, 1, valid);
	set_coord(n, true, fs, 3, valid);
}

int ser_nmea_decode(const uint8_t *p, size_t len, struct ser_nmea *out)
{
	struct fields fs;
	uint8_t sum = 0;
	size_t i, star, start;
	int hi, lo, t;

	/* Trailing blanks and a stray line end are tolerated. */
	while (len && (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' '))
		len--;
	if (len < 9 || len > 4 * MAX_NMEA || p[0] != '$')
		return -EBADMSG;
	star = len - 3;
	if (p[star] != '*')
		return -EBADMSG; /* NMEA 0183 4.x: every sentence carries a checksum */
	hi = hexval(p[star + 1]);
	lo = hexval(p[star + 2]);
	if (hi < 0 || lo < 0)
		return -EBADMSG;
	for (i = 1; i < star; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e)
			return -EBADMSG;
		sum ^= p[i];
	}
	if (sum != (uint8_t)(hi << 4 | lo))
		return -EBADMSG;
	/* Split "GPGGA,f1,f2,...". */
	fs.n = 0;
	start = 1;
	for (i = 1; i <= star; i++) {
		if (i == star || p[i] == ',') {
			if (fs.n < NMEA_FIELDS) {
				fs.f[fs.n].p = p + start;
				fs.f[fs.n].len = i - start;
				fs.n++;
			}
			start = i + 1;
		}
	}
	memset(out, 0, sizeof(*out));
	if (fs.f[0].len != 5 || fs.f[0].p[0] == 'P')
		return 0; /* proprietary ($PUBX...) or unusual address */
	out->talker[0] = (char)fs.f[0].p[0];
	out->talker[1] = (char)fs.f[0].p[1];
	for (t = 0; t < __SER_NMEA_TYPE_MAX; t++)
		if (!memcmp(fs.f[0].p + 2, types[t], 3))
			break;
	if (t == __SER_NMEA_TYPE_MAX)
		return 0;
	out->type = (enum ser_nmea_type)t;
	switch (out->type) {
	case SER_NMEA_GGA:
		gga(out, &fs);
		break;
	case SER_NMEA_RMC:
		rmc(out, &fs);
		break;
	case SER_NMEA_VTG:
		vtg(out, &fs);
		break;
	case SER_NMEA_GSA:
		gsa(out, &fs);
		break;
	case SER_NMEA_GSV:
		gsv(out, &fs);
		break;
	case SER_NMEA_ZDA:
		zda(out, &fs);
		break;
	case SER_NMEA_GLL:
		gll(out, &fs);
		break;
	default:
		break;
	}
	return 1;
}
