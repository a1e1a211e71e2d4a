/*
 * metrics.c - the Prometheus text exposition format (see metrics.h). Pure.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gateway/metrics.h"

static void put(struct gw_writer *w, const char *s)
{
	gw_wr_bytes(w, s, strlen(s));
}

void gw_expo_escape(struct gw_writer *w, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = *s == '\\'   ? "\\\\"
				  : *s == '"'  ? "\\\""
				  : *s == '\n' ? "\\n"
					       : NULL;

		if (!esc)
			continue;
		gw_wr_bytes(w, run, (size_t)(s - run));
		put(w, esc);
		run = s + 1;
	}
	gw_wr_bytes(w, run, (size_t)(s - run));
}

/* HELP text: only \\ and \n are escaped there. */
static void help_text(struct gw_writer *w, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(w, "\\\\");
		else if (*s == '\n')
			put(w, "\\n");
		else
			gw_wr_u8(w, (uint8_t)*s);
	}
}

void gw_expo_family(struct gw_writer *w, const char *name, const char *type, const char *help)
{
	put(w, "# HELP ");
	put(w, name);
	gw_wr_u8(w, ' ');
	help_text(w, help);
	put(w, "\n# TYPE ");
	put(w, name);
	gw_wr_u8(w, ' ');
	put(w, type);
	gw_wr_u8(w, '\n');
}

/* @name{labels[, le="@le"]} without the value. */
static void sample_head(struct gw_writer *w, const char *name, const char *suffix,
			const struct gw_expo_label *l, unsigned int n, const char *le)
{
	unsigned int i;

	put(w, name);
	put(w, suffix);
	if (!n && !le)
		return;
	gw_wr_u8(w, '{');
	for (i = 0; i < n; i++) {
		if (i)
			gw_wr_u8(w, ',');
		put(w, l[i].name);
		put(w, "=\"");
		gw_expo_escape(w, l[i].value ? l[i].value : "");
		gw_wr_u8(w, '"');
	}
	if (le) {
		put(w, n ? ",le=\"" : "le=\"");
		put(w, le);
		gw_wr_u8(w, '"');
	}
	gw_wr_u8(w, '}');
}

static void value_u64(struct gw_writer *w, uint64_t v)
{
	char buf[24];
	int k = snprintf(buf, sizeof(buf), " %" PRIu64 "\n", v);

	gw_wr_bytes(w, buf, (size_t)k);
}

static void value_double(struct gw_writer *w, double v)
{
	char buf[40];
	int k;

	if (isnan(v))
		k = snprintf(buf, sizeof(buf), " NaN\n");
	else if (isinf(v))
		k = snprintf(buf, sizeof(buf), " %cInf\n", v > 0 ? '+' : '-');
	else
		k = snprintf(buf, sizeof(buf), " %.17g\n", v);
	gw_wr_bytes(w, buf, (size_t)k);
}

void gw_expo_u64(struct gw_writer *w, const char *name, const struct gw_expo_label *l,
		 unsigned int n, uint64_t v)
{
	sample_head(w, name, "", l, n, NULL);
	value_u64(w, v);
}

void gw_expo_double(struct gw_writer *w, const char *name, const struct gw_expo_label *l,
		    unsigned int n, double v)
{
	sample_head(w, name, "", l, n, NULL);
	value_double(w, v);
}

void gw_expo_hist(struct gw_writer *w, const char *name, const struct gw_expo_label *l,
		  unsigned int n, const struct gw_hist *h)
{
	uint64_t cum = 0;
	char le[24];
	unsigned int i;

	for (i = 0; i < GW_HIST_N; i++) {
		uint64_t us = gw_hist_bound_us(i);

		cum += h->bucket[i];
		/* Microseconds as seconds, exactly: 500 -> 0.0005, 2500000 -> 2.5. */
		snprintf(le, sizeof(le), "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
		/* Trailing zeros off ("0.000500" -> "0.0005", "1.000000" -> "1"). */
		for (size_t k = strlen(le); k && (le[k - 1] == '0' || le[k - 1] == '.'); k--) {
			bool dot = le[k - 1] == '.';

			le[k - 1] = '\0';
			if (dot)
				break;
		}
		sample_head(w, name, "_bucket", l, n, le);
		value_u64(w, cum);
	}
	sample_head(w, name, "_bucket", l, n, "+Inf");
	value_u64(w, h->count);
	sample_head(w, name, "_sum", l, n, NULL);
	value_double(w, (double)h->sum_us / 1e6);
	sample_head(w, name, "_count", l, n, NULL);
	value_u64(w, h->count);
}
