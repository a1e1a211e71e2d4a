/*
 * serial_adapter.h - the serial line adapter: devices that speak text (or
 * binary frames) over a serial port or a raw TCP serial server - weather
 * stations, SCPI instruments, meters, GPS receivers (NMEA 0183), 433 MHz
 * receivers printing JSON (rtl_433), boards printing key=value lines.
 *
 * Usage from the daemon (through the registry, gateway/adapters.c):
 *   struct ad_adapter *a = ad_serial_new(loop, map, log, &sink);
 *   a->ops->start(a);                  // 0; a missing port is retried, never an error
 *   a->ops->command(a, pt, &value, token, &why);
 *   a->ops->stop(a, done_cb, arg);     // pending commands answered, then done_cb
 *   a->ops->free(a);
 *
 * Threads: everything runs on the loop thread except opening a port (and
 * resolving a serial server's name), which runs on the libuv thread pool. A
 * tty is read and written non-blocking through a uv_poll; a TCP serial
 * server is a uv_tcp on the loop. Nothing waits on a device.
 */
#ifndef FIELDMQ_SERIAL_ADAPTER_H
#define FIELDMQ_SERIAL_ADAPTER_H

#include "adapters/adapter.h"

/* The adapter's device-map keys ([bus:] type = serial | tcp, parsers, ...). */
extern const struct ad_schema ser_schema;

/*
 * Create the adapter for the devices of @map whose protocol is serial. The
 * map, logger and loop must outlive it; @sink is copied. Regexes and
 * templates were checked by the loader and are compiled here. NULL when out
 * of memory.
 */
struct ad_adapter *ad_serial_new(struct uv_loop_s *loop, const struct ad_map *map,
				 const struct gw_logger *log, const struct ad_sink *sink);

/* Counters of one port or of all, for $SYS/fieldmq/serial/... Loop thread only. */
struct ad_serial_stats {
	uint64_t bytes;	       /* bytes read */
	uint64_t lines;	       /* frames parsed */
	uint64_t readings;     /* values reported */
	uint64_t unmatched;    /* frames no device took */
	uint64_t bad_lines;    /* not JSON, bad NMEA checksum */
	uint64_t bad_values;   /* fields that did not parse */
	uint64_t overlong;     /* frames over max_frame, dropped */
	uint64_t dropped;      /* bytes dropped: overlong rests, noise outside frames */
	uint64_t polls;	       /* poll commands sent */
	uint64_t timeouts;     /* polls and writes unanswered */
	uint64_t overruns;     /* polls skipped: the previous one still waiting */
	uint64_t writes;       /* write commands sent */
	uint64_t write_errors; /* writes the port refused */
	uint64_t opens;	       /* opens that worked */
	uint64_t open_failures;
	uint64_t closes; /* ports that went away while open */
	unsigned int ports, ports_open;
};

/* Sum of every port of @a into @out. */
void ad_serial_get_stats(const struct ad_adapter *a, struct ad_serial_stats *out);

/* Port @i's counters and bus name; -ENOENT past the last port. */
int ad_serial_port_stats(const struct ad_adapter *a, unsigned int i, const char **bus,
			 struct ad_serial_stats *out);

#endif
