/*
 * hist.c - the fixed-bucket latency histogram (see hist.h). Pure.
 */
#include "gateway/base/hist.h"

static const uint64_t bounds_us[GW_HIST_N] = { GW_HIST_BOUNDS_US };

uint64_t gw_hist_bound_us(unsigned int i)
{
	return i < GW_HIST_N ? bounds_us[i] : UINT64_MAX;
}

void gw_hist_observe_us(struct gw_hist *h, int64_t us)
{
	uint64_t v = us > 0 ? (uint64_t)us : 0;
	unsigned int i;

	for (i = 0; i < GW_HIST_N; i++) {
		if (v <= bounds_us[i]) {
			h->bucket[i]++;
			break;
		}
	}
	h->count++;
	h->sum_us += v;
}

void gw_hist_add(struct gw_hist *a, const struct gw_hist *b)
{
	unsigned int i;

	for (i = 0; i < GW_HIST_N; i++)
		a->bucket[i] += b->bucket[i];
	a->count += b->count;
	a->sum_us += b->sum_us;
}
