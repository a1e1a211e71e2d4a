/*
 * mbus_plan.c - the read planner (a device's points coalesced into the
 * fewest requests) and the per-device health state machine. Pure.
 */
#include <errno.h>
#include <stdlib.h>

#include "mbus_int.h"

static int cmp_points(const void *a, const void *b)
{
	const struct ad_point *p = *(const struct ad_point *const *)a;
	const struct ad_point *q = *(const struct ad_point *const *)b;

	if (mbus_pt(p)->area != mbus_pt(q)->area)
		return mbus_pt(p)->area < mbus_pt(q)->area ? -1 : 1;
	if (mbus_pt(p)->address != mbus_pt(q)->address)
		return mbus_pt(p)->address < mbus_pt(q)->address ? -1 : 1;
	/* Wider first, then file order is lost; ties are harmless. */
	return (int)ad_point_regs(q) - (int)ad_point_regs(p);
}

static unsigned int limit_for(const struct ad_device *dev, enum ad_area area)
{
	unsigned int lim;

	if (area == AD_AREA_COIL || area == AD_AREA_DISCRETE) {
		lim = mbus_dev(dev)->max_bits_per_read ? mbus_dev(dev)->max_bits_per_read
						       : MBUS_MAX_READ_BITS;
		return GW_MIN(lim, MBUS_MAX_READ_BITS);
	}
	lim = mbus_dev(dev)->max_regs_per_read ? mbus_dev(dev)->max_regs_per_read
					       : MBUS_MAX_READ_REGS;
	return GW_MIN(lim, MBUS_MAX_READ_REGS);
}

int mbus_plan(const struct ad_device *dev, const struct ad_point **order, struct mbus_req *reqs,
	      const struct ad_point **bad)
{
	struct mbus_req *cur = NULL;
	unsigned int i, n = 0;
	uint32_t end = 0; /* one past the last unit of cur */

	for (i = 0; i < dev->n_points; i++)
		order[i] = dev->points[i];
	qsort(order, dev->n_points, sizeof(*order), cmp_points);

	for (i = 0; i < dev->n_points; i++) {
		const struct ad_point *pt = order[i];
		uint32_t w = ad_point_regs(pt);
		uint32_t lim, pend;

		if (mbus_pt(pt)->area >= __AD_AREA_MAX) {
			*bad = pt;
			return -EINVAL;
		}
		lim = limit_for(dev, mbus_pt(pt)->area);
		pend = (uint32_t)mbus_pt(pt)->address + w;
		if (w == 0 || w > lim || pend > 0x10000) {
			*bad = pt;
			return -EMSGSIZE;
		}
		if (cur && !mbus_dev(dev)->one_request_per_point &&
		    cur->area == mbus_pt(pt)->area &&
		    mbus_pt(pt)->address <= end + mbus_dev(dev)->max_gap &&
		    GW_MAX(end, pend) - cur->address <= lim) {
			end = GW_MAX(end, pend);
			cur->count = (uint16_t)(end - cur->address);
			cur->n_pts++;
			continue;
		}
		cur = &reqs[n++];
		cur->area = mbus_pt(pt)->area;
		cur->address = mbus_pt(pt)->address;
		cur->count = (uint16_t)w;
		cur->first = i;
		cur->n_pts = 1;
		end = pend;
	}
	return (int)n;
}

/* ----------------------------------------------------------------- health */

unsigned int mbus_health_update(struct mbus_health *h, const struct ad_device *dev, bool ok,
				int64_t now_ms)
{
	unsigned int act = 0;
	unsigned int limit = mbus_dev(dev)->retries ? mbus_dev(dev)->retries : 1;

	if (ok) {
		if (h->state != MBUS_ONLINE)
			act |= MBUS_ACT_ONLINE;
		h->state = MBUS_ONLINE;
		h->fails = 0;
		h->skip_until = 0;
		return act;
	}
	if (h->fails++ == 0)
		act |= MBUS_ACT_BAD;
	/* Offline once `retries` cycles in a row failed (at least one). */
	if (h->fails >= limit && h->state != MBUS_OFFLINE) {
		h->state = MBUS_OFFLINE;
		act |= MBUS_ACT_OFFLINE;
	}
	if (mbus_dev(dev)->degrade_after && h->fails >= mbus_dev(dev)->degrade_after &&
	    mbus_dev(dev)->degrade_for_ms) {
		h->skip_until = now_ms + mbus_dev(dev)->degrade_for_ms;
		act |= MBUS_ACT_DEGRADE;
	}
	return act;
}

bool mbus_health_skip(const struct mbus_health *h, int64_t now_ms)
{
	return h->skip_until && now_ms < h->skip_until;
}
