/*
 * hist.h - a fixed-bucket latency histogram for the Prometheus exposition
 * (gateway/metrics.c): store commits, adapter requests. No allocation: it is
 * a plain struct embedded in its owner's figures, and an observation is a
 * few compares and three additions, cheap enough for every commit and every
 * request.
 */
#ifndef FIELDMQ_BASE_HIST_H
#define FIELDMQ_BASE_HIST_H

#include <stdint.h>

/* Upper bounds of the buckets, in microseconds: 0.5 ms to 10 s, then +Inf. */
#define GW_HIST_BOUNDS_US                                                                     \
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, \
		5000000, 10000000
#define GW_HIST_N 14

struct gw_hist {
	uint64_t bucket[GW_HIST_N]; /* not cumulative: observations <= bound[i] and > bound[i-1] */
	uint64_t count;		    /* every observation, +Inf included */
	uint64_t sum_us;
};

/* The upper bound of bucket @i (0 <= i < GW_HIST_N) in microseconds. */
uint64_t gw_hist_bound_us(unsigned int i);

/* Counts one observation of @us microseconds (negative values count as 0). */
void gw_hist_observe_us(struct gw_hist *h, int64_t us);

/* Adds @b's counts to @a (per-device histograms summed into an adapter's). */
void gw_hist_add(struct gw_hist *a, const struct gw_hist *b);

#endif
