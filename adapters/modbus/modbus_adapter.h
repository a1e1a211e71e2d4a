/*
 * modbus_adapter.h - the Modbus adapter (TCP, RTU, RTU-over-TCP): polls the
 * modbus devices of a device map and writes their rw points on command.
 *
 * Usage from the daemon:
 *   struct ad_adapter *a = ad_modbus_new(loop, map, log, &sink);
 *   a->ops->start(a);                        // 0 or -errno; on failure nothing is
 *                                            // left open: free() may follow directly
 *   a->ops->command(a, pt, &value, token, &why);
 *   a->ops->stop(a, done_cb, arg);           // done_cb once every handle closed
 *   a->ops->free(a);                         // after done_cb (or if never started)
 *
 * Each bus is polled by the sans-I/O poller of mbus_poll.c, one request at a
 * time. Modbus TCP and RTU-over-TCP buses live on the loop (no thread); a
 * serial RTU bus runs libmodbus on one worker thread of its own, whose
 * results come back to the loop through a uv_async. All sink callbacks run
 * on the loop thread.
 */
#ifndef FIELDMQ_MODBUS_ADAPTER_H
#define FIELDMQ_MODBUS_ADAPTER_H

#include "adapters/adapter.h"
#include "adapters/modbus/mbus_map.h"

/*
 * Create the adapter for the devices of @map whose protocol is modbus. The
 * map, logger and loop must outlive the adapter; @sink is copied. Plans every
 * device's reads; nothing is opened until start().
 * Returns NULL when out of memory or when a device cannot be planned (a point
 * wider than one request allows; the reason is logged with file:line).
 */
struct ad_adapter *ad_modbus_new(struct uv_loop_s *loop, const struct ad_map *map,
				 const struct gw_logger *log, const struct ad_sink *sink);

/* Counters, for $SYS figures and the benchmark. Read on the loop thread. */
struct ad_modbus_stats {
	uint64_t polls;		     /* poll cycles completed */
	uint64_t requests;	     /* read requests sent */
	uint64_t failures;	     /* read requests that failed (timeout, exception, ...) */
	uint64_t readings;	     /* on_reading calls */
	uint64_t overruns;	     /* polls skipped because the previous one was still running */
	uint64_t skipped;	     /* polls skipped because the device was degraded */
	uint64_t writes;	     /* commands sent to devices */
	unsigned int devices;	     /* modbus devices served */
	unsigned int devices_online; /* of which online */
};

/* Copy @a's counters into @out. @a must come from ad_modbus_new(). */
void ad_modbus_get_stats(const struct ad_adapter *a, struct ad_modbus_stats *out);

#endif
