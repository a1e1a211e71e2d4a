/*
 * gateway_int.h - the daemon object's body, shared by the files of the
 * gateway that act on it: gateway.c (the composition root: builds and wires
 * the modules, runs the lifecycle of adapters and services), reading_path.c
 * (adapter readings and statuses to topics, the publish policy, staleness)
 * and commands.c (.../set to the adapter of the point's protocol, results
 * back). Included by those files only.
 *
 * Threads: everything here runs on the loop thread.
 */
#ifndef FIELDMQ_GATEWAY_INT_H
#define FIELDMQ_GATEWAY_INT_H

#include <uv.h>

#include "adapters/adapter.h"
#include "adapters/mqttsn/mqttsn.h"
#include "broker/broker.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/reading.h"

#define GW_TOPIC_MAX 1024
#define GW_PAYLOAD_MAX 2048
/* Replaced [http] password files waiting for running checks to end. */
#define GW_HTTP_PW_RETIRED 4

struct st_store;
struct gw_persist;
struct gw_uplink;
struct coapsrv_server;
struct gw_httpd;
struct gw_ha;

/* What the gateway knows of a device between readings, and its figures for /metrics. */
struct gw_devstate {
	bool known;
	bool online;
	uint64_t readings;	/* on_reading calls */
	uint64_t bad_readings;	/* of quality bad */
	uint64_t offline_count; /* online -> offline transitions (and a first offline) */
	int64_t last_good_ms;	/* wall clock of the last good reading, 0: never */
};

/*
 * One adapter of the registry as it runs: created from gw_drivers[proto]
 * when the map has devices of that protocol. @g and @old let the stop
 * callback find its way back.
 */
struct gw_slot {
	struct gw *g;
	struct ad_adapter *a;
	bool old; /* serving the map being replaced */
};

/* Optional parts of the daemon, started and stopped through one table (gateway.c). */
enum gw_service_id {
	GW_SVC_MQTTSN,
	GW_SVC_COAP,
	GW_SVC_HTTP,
	GW_SVC_HOMEASSISTANT,
	__GW_SVC_MAX,
};

struct gw {
	uv_loop_t *loop;
	struct gw_config cfg;
	struct gw_logger *log;
	struct brk *broker;
	struct st_store *store;
	struct gw_persist *persist;
	struct gw_uplink *uplink;
	/* services */
	struct mqttsn_server *mqttsn;
	struct mqttsn_predef predefined[GW_MAX_PREDEFINED];
	struct coapsrv_server *coap;
	struct gw_httpd *httpd; /* [http] (status.c) */
	/*
	 * [http] password_file: read at start and on SIGHUP. Pool threads read
	 * the pointer (atomically) during password checks, so a replaced file
	 * waits in http_pw_retired until no check runs (status.c).
	 */
	struct brk_passwd *http_passwd;
	struct brk_passwd *http_pw_retired[GW_HTTP_PW_RETIRED];
	struct gw_ha *ha;			 /* Home Assistant discovery, or NULL */
	const char *proto_names[__AD_PROTO_MAX]; /* for its device models */
	int64_t last_sys_ms;
	int64_t started_ms, started_mono_ms; /* gw_gateway_new: wall and monotonic */
	uint64_t upl_connects_seen;	     /* status.c: the uplink's connects at the last tick */
	int64_t upl_last_connect_ms;	     /* wall clock, 0: never */
	/* adapters, indexed by enum ad_protocol */
	struct gw_slot adapters[__AD_PROTO_MAX];
	struct gw_slot old_adapters[__AD_PROTO_MAX]; /* closing after a reload */
	unsigned int old_closing;		     /* of old_adapters, still closing */
	struct gw_devmap *old_map;		     /* freed once old_closing is 0 */
	/* reading path (reading_path.c) */
	struct gw_point_state *points; /* one per map point */
	struct gw_devstate *devices;   /* one per map device */
	struct gw_notify *notify;      /* systemd: NULL outside it */
	/* commands (commands.c) */
	struct brk_client *cmd_client;
	struct gw_list cmds;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t tick;
	bool started; /* gw_gateway_start finished */
	bool stopping;
	int exit_code;
	char status_topic[GW_TOPIC_MAX];
};

/* Publishes through the broker's in-process API; 0 or -errno. */
int gw__publish(struct gw *g, const char *topic, const void *payload, size_t len, uint8_t qos,
		bool retain, const struct brk_msg_props *props);

/* ------------------------------------------------------- reading_path.c */

/* The sink every adapter gets (readings, statuses, command results). */
void gw__sink(struct gw *g, struct ad_sink *out);

/* Per-point and per-device state for @dm; 0 or -ENOMEM. Free with gw__map_state_free(). */
int gw__map_state_new(const struct gw_devmap *dm, struct gw_point_state **pts,
		      struct gw_devstate **devs);
void gw__map_state_free(struct gw_point_state *pts, unsigned int n, struct gw_devstate *devs);

/* Every second: stale points, $SYS figures. */
void gw__check_stale(struct gw *g, int64_t now_mono_ms);

/* -------------------------------------------------------- coap_service.c */

/* The CoAP server ([coap]) as a service of gateway.c's table. */
bool gw__coap_enabled(const struct gw *g);
int gw__coap_start(struct gw *g);
void gw__coap_stop(struct gw *g);
void gw__coap_free(struct gw *g);
void gw__coap_sys(struct gw *g);

/* ----------------------------------------------------------- commands.c */

/* Subscribes to <prefix>/+/+/set; 0 or -errno. */
int gw__commands_start(struct gw *g);
/* Unsubscribes (the pending commands are answered by their adapters as they stop). */
void gw__commands_stop(struct gw *g);
/* Frees the pending commands (at free time, after every adapter stopped). */
void gw__commands_free(struct gw *g);
/* sink->on_cmd_done */
void gw__on_cmd_done(void *arg, void *token, const struct ad_cmd_result *res);

/* ------------------------------------------------------------- status.c */

/* [http]: the listener of /metrics, /healthz, /readyz and the status page. 0 or -errno (logged). */
int gw__http_start(struct gw *g);
/* Closes the listener and its connections. */
void gw__http_stop(struct gw *g);
/* Frees the password file (after the loop ended). */
void gw__http_free(struct gw *g);
/* Every second: the status page's event streams, the uplink's last connect time. */
void gw__http_tick(struct gw *g);
/*
 * SIGHUP: read [http] password_file again. A file that cannot be read or
 * parsed keeps the one in use (logged with file:line). 0, -EINVAL, -ENOMEM,
 * -EBUSY (replaced files still wait for checks to end: try again).
 */
int gw__http_reload(struct gw *g);

/* ----------------------------------------------------- status_metrics.c */

/* The body of GET /metrics: every module's figures in Prometheus text format, into @w. */
void gw__metrics_body(struct gw *g, struct gw_writer *w);

#endif
