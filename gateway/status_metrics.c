/*
 * status_metrics.c - the body of GET /metrics (routed by status.c): the
 * Prometheus text exposition, written with gateway/metrics.c, of the broker,
 * the store, the uplink, the devices and their requests, the adapters,
 * MQTT-SN, CoAP, the HTTP listener itself and the process (/proc/self, the
 * heap). Runs on the loop thread, into the writer status.c sizes; nothing
 * here waits.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "adapters/coap/coap_srv.h"
#include "adapters/modbus/modbus_adapter.h"
#include "adapters/serial/serial_adapter.h"
#include "gateway/auth_files.h"
#include "gateway/gateway_int.h"
#include "gateway/httpd.h"
#include "gateway/metrics.h"
#include "gateway/uplink.h"
#include "store/store.h"

/* ------------------------------------------------------------- process */

struct proc_figures {
	double cpu_s, start_s;
	uint64_t rss, vsize, fds, max_fds;
};

/* /proc/self: CPU, memory, start time, descriptors. Fields left 0 when unreadable. */
static void proc_figures(struct proc_figures *pf)
{
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long utime = 0, stime = 0, vsize = 0;
	unsigned long long start = 0;
	long rss = 0;
	char buf[1024], *p;
	double btime = 0;
	struct dirent *de;
	FILE *f;
	DIR *d;
	size_t n;

	memset(pf, 0, sizeof(*pf));
	f = fopen("/proc/self/stat", "r");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		/* After the command name in parentheses: state is field 3. */
		p = strrchr(buf, ')');
		if (p &&
		    sscanf(p + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %llu %lu %ld",
			   &utime, &stime, &start, &vsize, &rss) == 5 &&
		    tck > 0) {
			pf->cpu_s = (double)(utime + stime) / (double)tck;
			pf->vsize = vsize;
			pf->rss = (uint64_t)rss * (uint64_t)page;
		}
	}
	f = fopen("/proc/stat", "r");
	if (f) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "btime %lf", &btime) == 1)
				break;
		fclose(f);
	}
	if (btime > 0 && tck > 0)
		pf->start_s = btime + (double)start / (double)tck;
	d = opendir("/proc/self/fd");
	if (d) {
		while ((de = readdir(d)))
			pf->fds += de->d_name[0] != '.';
		closedir(d);
		pf->fds--; /* the one opendir holds */
	}
	pf->max_fds = (uint64_t)sysconf(_SC_OPEN_MAX);
}

/* ------------------------------------------------------------- /metrics */

#define FAM(n, t, h) gw_expo_family(w, n, t, h)
#define U(n, v) gw_expo_u64(w, n, NULL, 0, v)

static void metrics_broker(struct gw *g, struct gw_writer *w)
{
	struct brk_stats bs;

	brk_get_stats(g->broker, &bs);
	FAM("fieldmq_broker_clients", "gauge", "MQTT clients connected now.");
	U("fieldmq_broker_clients", bs.clients_connected);
	FAM("fieldmq_broker_connections_total", "counter", "MQTT connections accepted.");
	U("fieldmq_broker_connections_total", bs.clients_total);
	FAM("fieldmq_broker_messages_received_total", "counter", "PUBLISH packets received.");
	U("fieldmq_broker_messages_received_total", bs.msgs_received);
	FAM("fieldmq_broker_messages_sent_total", "counter", "PUBLISH packets sent.");
	U("fieldmq_broker_messages_sent_total", bs.msgs_sent);
	FAM("fieldmq_broker_received_bytes_total", "counter", "Bytes received from clients.");
	U("fieldmq_broker_received_bytes_total", bs.bytes_received);
	FAM("fieldmq_broker_sent_bytes_total", "counter", "Bytes sent to clients.");
	U("fieldmq_broker_sent_bytes_total", bs.bytes_sent);
	FAM("fieldmq_broker_subscriptions", "gauge", "Subscriptions now.");
	U("fieldmq_broker_subscriptions", bs.subscriptions);
	FAM("fieldmq_broker_retained_messages", "gauge", "Retained messages now.");
	U("fieldmq_broker_retained_messages", bs.retained);
	FAM("fieldmq_broker_dropped_messages_total", "counter",
	    "Messages dropped (queue limits, offline sessions).");
	U("fieldmq_broker_dropped_messages_total", bs.dropped);
	FAM("fieldmq_broker_slow_consumer_dropped_messages_total", "counter",
	    "QoS 0 messages dropped because the client's output passed max_buffered_bytes.");
	U("fieldmq_broker_slow_consumer_dropped_messages_total", bs.slow_dropped);
	FAM("fieldmq_broker_slow_consumer_disconnects_total", "counter",
	    "Clients closed for staying past max_buffered_bytes for slow_consumer_timeout.");
	U("fieldmq_broker_slow_consumer_disconnects_total", bs.slow_disconnected);
	FAM("fieldmq_broker_acl_denials_total", "counter",
	    "PUBLISHes, subscriptions and wills refused by the ACL.");
	U("fieldmq_broker_acl_denials_total", bs.acl_denied);
	FAM("fieldmq_broker_malformed_packets_total", "counter", "Packets that did not decode.");
	U("fieldmq_broker_malformed_packets_total", bs.malformed);
	FAM("fieldmq_broker_protocol_errors_total", "counter", "MQTT protocol violations.");
	U("fieldmq_broker_protocol_errors_total", bs.protocol_errors);
	FAM("fieldmq_broker_read_pauses_total", "counter",
	    "Times a connection was not read while it was owed acknowledgements.");
	U("fieldmq_broker_read_pauses_total", bs.read_pauses);
	FAM("fieldmq_broker_tls_handshake_failures_total", "counter",
	    "TLS handshakes that failed.");
	U("fieldmq_broker_tls_handshake_failures_total", bs.tls_failed);
	FAM("fieldmq_broker_websocket_refused_total", "counter", "WebSocket upgrades refused.");
	U("fieldmq_broker_websocket_refused_total", bs.ws_refused);
}

static void metrics_store(struct gw *g, struct gw_writer *w)
{
	struct st_stats ss = { 0 };

	FAM("fieldmq_store_open", "gauge", "1 when the SQLite store is open.");
	U("fieldmq_store_open", g->store != NULL);
	if (!g->store)
		return;
	st_get_stats(g->store, &ss);
	FAM("fieldmq_store_queued_messages", "gauge", "Messages in the store's uplink queue.");
	U("fieldmq_store_queued_messages", ss.queue_messages);
	FAM("fieldmq_store_queued_bytes", "gauge", "Bytes in the store's uplink queue.");
	U("fieldmq_store_queued_bytes", ss.queue_bytes);
	FAM("fieldmq_store_dropped_messages_total", "counter",
	    "Queued messages dropped by the overflow policy (kept across restarts).");
	U("fieldmq_store_dropped_messages_total", ss.dropped);
	FAM("fieldmq_store_commits_total", "counter", "Transactions committed.");
	U("fieldmq_store_commits_total", ss.commits);
	FAM("fieldmq_store_commit_errors_total", "counter",
	    "Failed commit attempts (disk full, read-only, I/O errors).");
	U("fieldmq_store_commit_errors_total", ss.commit_errors);
	FAM("fieldmq_store_pending_operations", "gauge", "Operations waiting for a commit.");
	U("fieldmq_store_pending_operations", ss.pending_ops);
	FAM("fieldmq_store_failing", "gauge", "1 while the last commit failed.");
	U("fieldmq_store_failing", ss.failing);
	FAM("fieldmq_store_commit_duration_seconds", "histogram",
	    "Time from the start of a commit to its completion.");
	gw_expo_hist(w, "fieldmq_store_commit_duration_seconds", NULL, 0, &ss.commit_latency);
	FAM("fieldmq_store_sqlite_memory_bytes", "gauge",
	    "Heap held by SQLite (all the store's connections).");
	U("fieldmq_store_sqlite_memory_bytes", ss.sqlite_heap);
	FAM("fieldmq_store_sqlite_page_cache_bytes", "gauge",
	    "The part of it that is page cache (up to cache_size per connection).");
	U("fieldmq_store_sqlite_page_cache_bytes", ss.sqlite_page_cache);
}

static void metrics_uplink(struct gw *g, struct gw_writer *w)
{
	struct gw_uplink_stats us;

	FAM("fieldmq_uplink_enabled", "gauge", "1 when an uplink is configured.");
	U("fieldmq_uplink_enabled", g->uplink != NULL);
	if (!g->uplink)
		return;
	gw_uplink_get_stats(g->uplink, &us);
	FAM("fieldmq_uplink_connected", "gauge", "1 while connected to the cloud broker.");
	U("fieldmq_uplink_connected", us.connected);
	FAM("fieldmq_uplink_connects_total", "counter", "Successful connections (CONNACK).");
	U("fieldmq_uplink_connects_total", us.connects);
	FAM("fieldmq_uplink_last_connect_timestamp_seconds", "gauge",
	    "When the uplink last connected (0: never), to the second.");
	gw_expo_double(w, "fieldmq_uplink_last_connect_timestamp_seconds", NULL, 0,
		       (double)g->upl_last_connect_ms / 1000.0);
	FAM("fieldmq_uplink_sent_messages_total", "counter",
	    "Messages acknowledged by the cloud (QoS 0: written).");
	U("fieldmq_uplink_sent_messages_total", us.sent);
	FAM("fieldmq_uplink_received_messages_total", "counter",
	    "Messages from the cloud published locally.");
	U("fieldmq_uplink_received_messages_total", us.received);
	FAM("fieldmq_uplink_dropped_messages_total", "counter",
	    "Messages dropped by the uplink or by the store's overflow policy.");
	U("fieldmq_uplink_dropped_messages_total", us.dropped + us.store_dropped);
	FAM("fieldmq_uplink_queued_messages", "gauge", "Backlog waiting to be sent to the cloud.");
	U("fieldmq_uplink_queued_messages", us.queued);
	FAM("fieldmq_uplink_inflight_messages", "gauge", "Sent, waiting for the cloud's ack.");
	U("fieldmq_uplink_inflight_messages", us.inflight);
}

/* The device map's protocol names, from the registry the map was loaded with. */
#define PROTO_NAME(g, p) ((g)->cfg.drivers[p].name)

/* The adapter serving device @i, when it keeps request figures. */
static int device_stats(struct gw *g, unsigned int i, struct ad_device_stats *out)
{
	const struct ad_device *d = g->cfg.devmap->map.devices[i];
	const struct ad_adapter *a = g->adapters[d->protocol].a;

	if (!a || !a->ops->device_stats)
		return -ENOENT;
	return a->ops->device_stats(a, d, out);
}

/* Per device: requests, errors by kind, the latency histogram (adapters that count them). */
static void metrics_device_requests(struct gw *g, struct gw_writer *w)
{
	static const char *const kinds[__AD_ERR_MAX] = {
		[AD_ERR_TIMEOUT] = "timeout",
		[AD_ERR_EXCEPTION] = "exception",
		[AD_ERR_TRANSPORT] = "transport",
		[AD_ERR_PARSE] = "parse",
		[AD_ERR_TLS] = "tls",
		[AD_ERR_OVERRUN] = "overrun",
	};
	const struct ad_map *map = &g->cfg.devmap->map;
	struct gw_expo_label l[3] = { { "device", NULL }, { "protocol", NULL }, { "kind", NULL } };
	struct ad_device_stats ds;
	unsigned int i, k;

	FAM("fieldmq_device_requests_total", "counter", "Requests to the device that ended.");
	for (i = 0; i < map->n_devices; i++) {
		if (device_stats(g, i, &ds))
			continue;
		l[0].value = map->devices[i]->name;
		l[1].value = PROTO_NAME(g, map->devices[i]->protocol);
		gw_expo_u64(w, "fieldmq_device_requests_total", l, 2, ds.requests);
	}
	FAM("fieldmq_device_request_errors_total", "counter",
	    "Device errors by kind (timeout, exception, transport, parse, tls, overrun).");
	for (i = 0; i < map->n_devices; i++) {
		if (device_stats(g, i, &ds))
			continue;
		l[0].value = map->devices[i]->name;
		l[1].value = PROTO_NAME(g, map->devices[i]->protocol);
		for (k = 0; k < __AD_ERR_MAX; k++) {
			if (!(ds.kinds & AD_ERR_BIT(k)))
				continue; /* a kind this adapter does not have */
			l[2].value = kinds[k];
			gw_expo_u64(w, "fieldmq_device_request_errors_total", l, 3, ds.errors[k]);
		}
	}
	FAM("fieldmq_device_request_duration_seconds", "histogram",
	    "Time from sending a request to the device to its answer (Modbus: or failure).");
	for (i = 0; i < map->n_devices; i++) {
		if (device_stats(g, i, &ds))
			continue;
		l[0].value = map->devices[i]->name;
		l[1].value = PROTO_NAME(g, map->devices[i]->protocol);
		gw_expo_hist(w, "fieldmq_device_request_duration_seconds", l, 2, &ds.latency);
	}
}

static void metrics_devices(struct gw *g, struct gw_writer *w)
{
	const struct ad_map *map = &g->cfg.devmap->map;
	struct gw_expo_label l[2] = { { "device", NULL }, { "protocol", NULL } };
	unsigned int i;

#define EACH_DEV(expr)                                                 \
	for (i = 0; i < map->n_devices; i++) {                         \
		const struct gw_devstate *ds = &g->devices[i];         \
		l[0].value = map->devices[i]->name;                    \
		l[1].value = PROTO_NAME(g, map->devices[i]->protocol); \
		expr;                                                  \
	}
	FAM("fieldmq_devices", "gauge", "Devices in the device map.");
	U("fieldmq_devices", map->n_devices);
	FAM("fieldmq_points", "gauge", "Points in the device map.");
	U("fieldmq_points", map->n_points);
	FAM("fieldmq_device_online", "gauge",
	    "1 while the device answers (0: offline or unknown).");
	EACH_DEV(gw_expo_u64(w, "fieldmq_device_online", l, 2, ds->known && ds->online));
	FAM("fieldmq_device_readings_total", "counter", "Readings the adapter produced.");
	EACH_DEV(gw_expo_u64(w, "fieldmq_device_readings_total", l, 2, ds->readings));
	FAM("fieldmq_device_bad_readings_total", "counter",
	    "Readings of quality bad (the read failed).");
	EACH_DEV(gw_expo_u64(w, "fieldmq_device_bad_readings_total", l, 2, ds->bad_readings));
	FAM("fieldmq_device_offline_total", "counter", "Times the device went offline.");
	EACH_DEV(gw_expo_u64(w, "fieldmq_device_offline_total", l, 2, ds->offline_count));
	metrics_device_requests(g, w);
	FAM("fieldmq_device_last_success_timestamp_seconds", "gauge",
	    "When the device last gave a good reading (0: never).");
	EACH_DEV(gw_expo_double(w, "fieldmq_device_last_success_timestamp_seconds", l, 2,
				(double)ds->last_good_ms / 1000.0));
#undef EACH_DEV
}

static void metrics_adapters(struct gw *g, struct gw_writer *w)
{
	const struct ad_adapter *a;

	/* Only the real registry's adapters have these figures (tests run fakes). */
	if (g->cfg.drivers != gw_drivers)
		return;
	a = g->adapters[AD_PROTO_MODBUS].a;
	if (a) {
		struct ad_modbus_stats ms;

		ad_modbus_get_stats(a, &ms);
		FAM("fieldmq_modbus_polls_total", "counter", "Poll cycles completed.");
		U("fieldmq_modbus_polls_total", ms.polls);
		FAM("fieldmq_modbus_requests_total", "counter", "Read requests sent.");
		U("fieldmq_modbus_requests_total", ms.requests);
		FAM("fieldmq_modbus_request_failures_total", "counter",
		    "Read requests that failed (timeout, exception, transport).");
		U("fieldmq_modbus_request_failures_total", ms.failures);
		FAM("fieldmq_modbus_overruns_total", "counter",
		    "Polls skipped because the previous one was still running.");
		U("fieldmq_modbus_overruns_total", ms.overruns);
		FAM("fieldmq_modbus_skipped_polls_total", "counter",
		    "Polls skipped while a device was degraded.");
		U("fieldmq_modbus_skipped_polls_total", ms.skipped);
		FAM("fieldmq_modbus_writes_total", "counter", "Commands written to devices.");
		U("fieldmq_modbus_writes_total", ms.writes);
	}
	a = g->adapters[AD_PROTO_SERIAL].a;
	if (a) {
		struct ad_serial_stats ss;

		ad_serial_get_stats(a, &ss);
		FAM("fieldmq_serial_received_bytes_total", "counter",
		    "Bytes read from serial ports.");
		U("fieldmq_serial_received_bytes_total", ss.bytes);
		FAM("fieldmq_serial_lines_total", "counter", "Lines framed.");
		U("fieldmq_serial_lines_total", ss.lines);
		FAM("fieldmq_serial_bad_lines_total", "counter", "Lines that did not parse.");
		U("fieldmq_serial_bad_lines_total", ss.bad_lines);
		FAM("fieldmq_serial_ports_open", "gauge", "Serial ports open now.");
		U("fieldmq_serial_ports_open", ss.ports_open);
	}
}

static void metrics_mqttsn(struct gw *g, struct gw_writer *w)
{
	struct mqttsn_stats ms;

	if (!g->mqttsn)
		return;
	mqttsn_server_get_stats(g->mqttsn, &ms);
	FAM("fieldmq_mqttsn_clients", "gauge", "MQTT-SN clients connected now.");
	U("fieldmq_mqttsn_clients", ms.clients);
	FAM("fieldmq_mqttsn_connections_total", "counter", "MQTT-SN connections accepted.");
	U("fieldmq_mqttsn_connections_total", ms.clients_total);
	FAM("fieldmq_mqttsn_connections_refused_total", "counter", "MQTT-SN connections refused.");
	U("fieldmq_mqttsn_connections_refused_total", ms.clients_refused);
	FAM("fieldmq_mqttsn_clients_lost_total", "counter",
	    "MQTT-SN clients lost (keepalive or sleep expired).");
	U("fieldmq_mqttsn_clients_lost_total", ms.clients_lost);
	FAM("fieldmq_mqttsn_datagrams_received_total", "counter", "Datagrams received.");
	U("fieldmq_mqttsn_datagrams_received_total", ms.datagrams_in);
	FAM("fieldmq_mqttsn_datagrams_sent_total", "counter", "Datagrams sent.");
	U("fieldmq_mqttsn_datagrams_sent_total", ms.datagrams_out);
	FAM("fieldmq_mqttsn_malformed_datagrams_total", "counter",
	    "Datagrams that did not decode.");
	U("fieldmq_mqttsn_malformed_datagrams_total", ms.malformed);
	FAM("fieldmq_mqttsn_dropped_messages_total", "counter",
	    "Messages dropped (in: unusable; out: queue full, retries exhausted).");
	gw_expo_u64(w, "fieldmq_mqttsn_dropped_messages_total",
		    (struct gw_expo_label[]){ { "direction", "in" } }, 1, ms.dropped_in);
	gw_expo_u64(w, "fieldmq_mqttsn_dropped_messages_total",
		    (struct gw_expo_label[]){ { "direction", "out" } }, 1, ms.dropped_out);
}

static void metrics_coap(struct gw *g, struct gw_writer *w)
{
	struct coapsrv_stats cs;

	if (!g->coap)
		return;
	coapsrv_server_get_stats(g->coap, &cs);
	FAM("fieldmq_coap_clients", "gauge", "CoAP server clients now.");
	U("fieldmq_coap_clients", cs.clients);
	FAM("fieldmq_coap_sessions_total", "counter", "CoAP client sessions made.");
	U("fieldmq_coap_sessions_total", cs.clients_total);
	FAM("fieldmq_coap_sessions_refused_total", "counter", "CoAP client sessions refused.");
	U("fieldmq_coap_sessions_refused_total", cs.clients_refused);
	FAM("fieldmq_coap_observations", "gauge", "CoAP observations now.");
	U("fieldmq_coap_observations", cs.observations);
	FAM("fieldmq_coap_requests_total", "counter", "CoAP requests received.");
	U("fieldmq_coap_requests_total", cs.requests);
	FAM("fieldmq_coap_publishes_total", "counter", "CoAP publishes accepted into the broker.");
	U("fieldmq_coap_publishes_total", cs.publishes);
	FAM("fieldmq_coap_notifications_total", "counter", "CoAP notifications sent.");
	U("fieldmq_coap_notifications_total", cs.notifications);
	FAM("fieldmq_coap_notifications_dropped_total", "counter", "CoAP notifications dropped.");
	U("fieldmq_coap_notifications_dropped_total", cs.notify_dropped);
	FAM("fieldmq_coap_rate_limited_total", "counter",
	    "CoAP requests dropped unanswered over rate_limit.");
	U("fieldmq_coap_rate_limited_total", cs.rate_limited);
}

static void metrics_http(struct gw *g, struct gw_writer *w)
{
	struct gw_httpd_stats hs;

	gw_httpd_get_stats(g->httpd, &hs);
	FAM("fieldmq_http_requests_total", "counter", "HTTP requests parsed.");
	U("fieldmq_http_requests_total", hs.requests);
	FAM("fieldmq_http_bad_requests_total", "counter",
	    "HTTP requests refused: malformed, too large, wrong method, too slow.");
	U("fieldmq_http_bad_requests_total", hs.bad_requests);
	FAM("fieldmq_http_unauthorized_total", "counter", "HTTP requests refused with 401.");
	U("fieldmq_http_unauthorized_total", hs.unauthorized);
	FAM("fieldmq_http_header_timeouts_total", "counter",
	    "HTTP connections closed because their head came too slowly.");
	U("fieldmq_http_header_timeouts_total", hs.timeouts);
	FAM("fieldmq_http_event_streams", "gauge", "Status page event streams open now.");
	U("fieldmq_http_event_streams", gw_httpd_sse_clients(g->httpd));
}

static void metrics_process(struct gw *g, struct gw_writer *w)
{
	struct proc_figures pf;
	struct gw_expo_label ver = { "version", FIELDMQ_VERSION };

	proc_figures(&pf);
	FAM("fieldmq_build_info", "gauge", "Always 1; the version as a label.");
	gw_expo_u64(w, "fieldmq_build_info", &ver, 1, 1);
	FAM("fieldmq_memory_allocated_bytes", "gauge", "Bytes allocated through gw_malloc.");
	U("fieldmq_memory_allocated_bytes", gw_mem_used());
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	{
		/*
		 * glibc's own view of its heap, every thread's arena: what it took
		 * from the system and what is allocated (through gw_malloc or not:
		 * SQLite, libuv, the libraries). The difference is freed memory it
		 * keeps for reuse, which RSS still counts (a high-water mark).
		 */
		struct mallinfo2 mi = mallinfo2();

		FAM("fieldmq_malloc_heap_bytes", "gauge",
		    "Bytes glibc malloc holds from the system (arenas and mmap'd blocks).");
		U("fieldmq_malloc_heap_bytes", (uint64_t)(mi.arena + mi.hblkhd));
		FAM("fieldmq_malloc_in_use_bytes", "gauge",
		    "Of them, bytes allocated now; the rest is free and kept for reuse.");
		U("fieldmq_malloc_in_use_bytes", (uint64_t)(mi.uordblks + mi.hblkhd));
	}
#endif
	/* The process_ names every Prometheus client library exports. */
	FAM("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
	gw_expo_double(w, "process_cpu_seconds_total", NULL, 0, pf.cpu_s);
	FAM("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	U("process_resident_memory_bytes", pf.rss);
	FAM("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	U("process_virtual_memory_bytes", pf.vsize);
	FAM("process_open_fds", "gauge", "Number of open file descriptors.");
	U("process_open_fds", pf.fds);
	FAM("process_max_fds", "gauge", "Maximum number of open file descriptors.");
	U("process_max_fds", pf.max_fds);
	FAM("process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	gw_expo_double(w, "process_start_time_seconds", NULL, 0,
		       pf.start_s > 0 ? pf.start_s : (double)g->started_ms / 1000.0);
}

void gw__metrics_body(struct gw *g, struct gw_writer *w)
{
	metrics_broker(g, w);
	metrics_store(g, w);
	metrics_uplink(g, w);
	metrics_devices(g, w);
	metrics_adapters(g, w);
	metrics_mqttsn(g, w);
	metrics_coap(g, w);
	metrics_http(g, w);
	metrics_process(g, w);
}

#undef FAM
#undef U
