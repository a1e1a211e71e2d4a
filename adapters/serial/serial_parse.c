/*
 * serial_parse.c - the five line parsers (regex, csv, kv, json, nmea): does
 * a line belong to a device, and what value does it carry for each point.
 *
 * A line is split or decoded once (struct ser_line) and offered to every
 * device of its port. Values are slices of the line until converted. Pure;
 * the json parser, which needs cJSON's allocation, is in serial_json.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

const char *const ser_parser_names[__SER_PARSE_MAX] = {
	[SER_PARSE_REGEX] = "regex", [SER_PARSE_CSV] = "csv",	[SER_PARSE_KV] = "kv",
	[SER_PARSE_JSON] = "json",   [SER_PARSE_NMEA] = "nmea",
};

void ser_line_init(struct ser_line *l, const uint8_t *p, size_t len, struct gw_arena *arena)
{
	l->p = p;
	l->len = len;
	l->csv_done = l->json_done = l->nmea_done = false;
	l->n_fields = 0;
	l->json = NULL;
	l->arena = arena;
	l->nmea_rc = 0;
}

static bool matches(const regex_t *re, const struct ser_line *l, regmatch_t *m, size_t nm)
{
#ifdef REG_STARTEND
	/* Bytes after a NUL inside the line still count. */
	regmatch_t one[1];

	if (!nm) {
		m = one;
		nm = 1;
	}
	m[0].rm_so = 0;
	m[0].rm_eo = (regoff_t)l->len;
	return regexec(re, (const char *)l->p, nm, m, REG_STARTEND) == 0;
#else
	return regexec(re, (const char *)l->p, nm, m, 0) == 0;
#endif
}

static void result_text(const struct ser_point *pt, const uint8_t *p, size_t len,
			struct ser_result *r)
{
	char hex[SER_TEXT_MAX + 3];

	if (pt->hex && pt->type >= AD_PT_INT16 && pt->type <= AD_PT_UINT64 && len &&
	    len <= SER_TEXT_MAX) {
		/* Integers cut out of a hex-encoded frame are hex digits. */
		hex[0] = '0';
		hex[1] = 'x';
		memcpy(hex + 2, p, len);
		p = (const uint8_t *)hex;
		len += 2;
	}
	r->found = ser_convert_text(pt->type, pt->scale, pt->offset, p, len, &r->value) ? SER_BAD
											: SER_OK;
}

/* ------------------------------------------------------------------ regex */

static int parse_regex(struct ser_dev *d, struct ser_line *l, struct ser_result *res)
{
	regmatch_t m[SER_MAX_GROUPS];
	unsigned int i;

	if (!d->match || !matches(d->match, l, m, GW_MIN(d->n_groups + 1, SER_MAX_GROUPS)))
		return 0;
	for (i = 0; i < d->n_points; i++) {
		const struct ser_point *pt = &d->points[i];
		const regmatch_t *g;

		if (pt->group > d->n_groups || pt->group >= SER_MAX_GROUPS) {
			res[i].found = SER_ABSENT;
			continue;
		}
		g = &m[pt->group];
		if (g->rm_so < 0 || g->rm_eo < g->rm_so) {
			res[i].found = SER_ABSENT; /* an optional group that took no part */
			continue;
		}
		result_text(pt, l->p + g->rm_so, (size_t)(g->rm_eo - g->rm_so), &res[i]);
	}
	return 1;
}

/* -------------------------------------------------------------------- csv */

/* Split the line at @sep; a field in double quotes may hold the separator. */
static void csv_split(struct ser_line *l, uint8_t sep)
{
	size_t i = 0;

	l->n_fields = 0;
	l->csv_sep = sep;
	l->csv_done = true;
	while (l->n_fields < SER_MAX_FIELDS) {
		struct gw_slice *f = &l->fields[l->n_fields++];

		if (i < l->len && l->p[i] == '"') {
			size_t j = i + 1;

			while (j < l->len) {
				if (l->p[j] == '"') {
					if (j + 1 < l->len && l->p[j + 1] == '"') {
						j += 2;
						continue;
					}
					break;
				}
				j++;
			}
			f->p = l->p + i + 1;
			f->len = j - i - 1;
			i = j < l->len ? j + 1 : j;
			while (i < l->len && l->p[i] != sep)
				i++;
		} else {
			const uint8_t *e = memchr(l->p + i, sep, l->len - i);
			size_t j = e ? (size_t)(e - l->p) : l->len;

			f->p = l->p + i;
			f->len = j - i;
			i = j;
		}
		if (i >= l->len)
			break;
		i++; /* the separator */
		if (i == l->len) {
			/* A trailing separator ends with one empty field. */
			if (l->n_fields < SER_MAX_FIELDS) {
				l->fields[l->n_fields].p = l->p + i;
				l->fields[l->n_fields].len = 0;
				l->n_fields++;
			}
			break;
		}
	}
}

static struct gw_slice trim(struct gw_slice s)
{
	while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return s;
}

/* The field equal to @name, 1-based, or 0. */
static unsigned int csv_find(const struct ser_line *l, const char *name)
{
	unsigned int i;

	for (i = 0; i < l->n_fields; i++)
		if (gw_slice_eq_cstr(trim(l->fields[i]), name))
			return i + 1;
	return 0;
}

/*
 * A header line names every column the points ask for by name: it sets
 * their column numbers (a device may print it again, e.g. after a reset).
 */
static bool csv_header(struct ser_dev *d, const struct ser_line *l)
{
	unsigned int i, named = 0;

	for (i = 0; i < d->n_points; i++) {
		if (d->points[i].column || !d->points[i].column_name)
			continue;
		named++;
		if (!csv_find(l, d->points[i].column_name))
			return false;
	}
	if (!named)
		return false;
	for (i = 0; i < d->n_points; i++)
		if (!d->points[i].column && d->points[i].column_name)
			d->points[i].col_found = csv_find(l, d->points[i].column_name);
	return true;
}

static int parse_csv(struct ser_dev *d, struct ser_line *l, struct ser_result *res)
{
	unsigned int i;

	if (d->match && !matches(d->match, l, NULL, 0))
		return 0;
	if (!l->csv_done || l->csv_sep != d->separator)
		csv_split(l, d->separator);
	if (d->header && csv_header(d, l))
		return 2;
	for (i = 0; i < d->n_points; i++) {
		const struct ser_point *pt = &d->points[i];
		unsigned int col = pt->column ? pt->column : pt->col_found;

		if (!col) {
			res[i].found = SER_ABSENT; /* named column, no header seen yet */
			continue;
		}
		if (col > l->n_fields) {
			res[i].found = SER_BAD; /* a short line */
			continue;
		}
		result_text(pt, l->fields[col - 1].p, l->fields[col - 1].len, &res[i]);
	}
	return 1;
}

/* --------------------------------------------------------------------- kv */

/* The value of @key in "k1=v1;k2=v2", or false. */
static bool kv_find(const struct ser_dev *d, const struct ser_line *l, const char *key,
		    struct gw_slice *val)
{
	const uint8_t *p = l->p, *end = l->p + l->len;
	size_t klen = strlen(key);

	while (p < end) {
		const uint8_t *pair = p, *sep;
		struct gw_slice k;

		while (p < end && !strchr(d->pair_seps, *p))
			p++;
		/* pair .. p is one pair; split at the first key separator. */
		for (sep = pair; sep < p && !strchr(d->kv_seps, *sep); sep++)
			;
		k.p = pair;
		k.len = (size_t)(sep - pair);
		k = trim(k);
		if (sep < p && k.len == klen && !memcmp(k.p, key, klen)) {
			val->p = sep + 1;
			val->len = (size_t)(p - sep - 1);
			return true;
		}
		if (p < end)
			p++;
	}
	return false;
}

static int parse_kv(struct ser_dev *d, struct ser_line *l, struct ser_result *res)
{
	unsigned int i, found = 0;

	if (d->match && !matches(d->match, l, NULL, 0))
		return 0;
	if (memchr(l->p, '\0', l->len))
		return 0; /* strchr below would take a NUL as a separator */
	for (i = 0; i < d->n_points; i++) {
		const struct ser_point *pt = &d->points[i];
		struct gw_slice v;

		if (!pt->key || !kv_find(d, l, pt->key, &v)) {
			res[i].found = SER_ABSENT;
			continue;
		}
		found++;
		result_text(pt, v.p, v.len, &res[i]);
	}
	return found ? 1 : 0;
}

/* ------------------------------------------------------------------- nmea */

static void utc_text(double t, char *buf, size_t cap)
{
	int64_t s = (int64_t)floor(t), days, z, era, doe, yoe, doy, mp;
	unsigned int sod, ms;
	int y, m, dd;

	days = s / 86400 - (s % 86400 < 0);
	sod = (unsigned int)(s - days * 86400);
	ms = (unsigned int)llround((t - (double)s) * 1000);
	if (ms > 999)
		ms = 999;
	/* Howard Hinnant's civil_from_days. */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = (int)(yoe + era * 400);
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	dd = (int)(doy - (153 * mp + 2) / 5 + 1);
	m = (int)(mp < 10 ? mp + 3 : mp - 9);
	y += m <= 2;
	snprintf(buf, cap, "%04d-%02d-%02dT%02u:%02u:%02u.%03uZ", y, m, dd, sod / 3600,
		 sod / 60 % 60, sod % 60, ms);
}

static int parse_nmea(struct ser_dev *d, struct ser_line *l, struct ser_result *res)
{
	unsigned int i, found = 0;

	if (!l->nmea_done) {
		l->nmea_done = true;
		l->nmea_rc = ser_nmea_decode(l->p, l->len, &l->nmea);
	}
	if (l->nmea_rc < 0)
		return l->len && l->p[0] == '$' ? -EBADMSG : 0;
	if (l->nmea_rc == 0)
		return 0;
	if (d->match && !matches(d->match, l, NULL, 0))
		return 0;
	for (i = 0; i < d->n_points; i++) {
		const struct ser_point *pt = &d->points[i];
		uint32_t bit = 1u << pt->field;

		if (!(l->nmea.has & bit)) {
			res[i].found = SER_ABSENT;
			continue;
		}
		found++;
		if (l->nmea.bad & bit) {
			res[i].found = SER_BAD;
			continue;
		}
		if (pt->field == SER_NMEA_UTC && pt->type == AD_PT_STRING) {
			utc_text(l->nmea.v[SER_NMEA_UTC], res[i].text, sizeof(res[i].text));
			res[i].value.type = AD_VAL_STRING;
			res[i].value.s = gw_slice_cstr(res[i].text);
			res[i].found = SER_OK;
			continue;
		}
		res[i].found = ser_convert_num(pt->type, pt->scale, pt->offset,
					       l->nmea.v[pt->field], &res[i].value)
				       ? SER_BAD
				       : SER_OK;
	}
	return found ? 1 : 0;
}

int ser_parse(struct ser_dev *d, struct ser_line *l, struct ser_result *res)
{
	switch (d->parser) {
	case SER_PARSE_REGEX:
		return parse_regex(d, l, res);
	case SER_PARSE_CSV:
		return parse_csv(d, l, res);
	case SER_PARSE_KV:
		return parse_kv(d, l, res);
	case SER_PARSE_JSON:
		return ser__parse_json(d, l, res);
	case SER_PARSE_NMEA:
		return parse_nmea(d, l, res);
	default:
		return 0;
	}
}
