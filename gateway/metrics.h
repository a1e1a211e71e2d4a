/*
 * metrics.h - the Prometheus text exposition format (version 0.0.4), written
 * into a bounded writer: the /metrics endpoint of the HTTP listener builds
 * its body with these. Pure: no allocation, no clock, no I/O.
 *
 * A family is announced once (# HELP, # TYPE), then its samples follow, each
 * with its labels. Names are the caller's constants (fieldmq_..., _total for
 * counters, base units: seconds, bytes); label values are escaped here, so
 * device names from a device map are safe.
 */
#ifndef FIELDMQ_METRICS_H
#define FIELDMQ_METRICS_H

#include "gateway/base/base.h"
#include "gateway/base/hist.h"

/* The Content-Type of the format. */
#define GW_EXPO_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct gw_expo_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, a constant of ours */
	const char *value; /* any UTF-8; escaped */
};

/* # HELP @name @help and # TYPE @name @type (counter, gauge, histogram). */
void gw_expo_family(struct gw_writer *w, const char *name, const char *type, const char *help);

/* One sample: @name{@l[0..@n-1]} @v. */
void gw_expo_u64(struct gw_writer *w, const char *name, const struct gw_expo_label *l,
		 unsigned int n, uint64_t v);
/* The same for a double: NaN, +Inf and -Inf as the format spells them. */
void gw_expo_double(struct gw_writer *w, const char *name, const struct gw_expo_label *l,
		    unsigned int n, double v);

/*
 * The samples of histogram @h in seconds: @name_bucket{...,le="0.0005"} with
 * cumulative counts up to le="+Inf", then @name_sum and @name_count.
 */
void gw_expo_hist(struct gw_writer *w, const char *name, const struct gw_expo_label *l,
		  unsigned int n, const struct gw_hist *h);

/* A label value escaped as the format wants it (\\, \", \n), without quotes. */
void gw_expo_escape(struct gw_writer *w, const char *s);

#endif
