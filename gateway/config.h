/*
 * config.h - fieldmq's configuration: the main INI file and the device maps
 * it names, parsed with inih, validated key by key, with defaults from
 * DESIGN.md section 4.
 *
 * Every error names file:line, the section and key, and what was expected.
 */
#ifndef FIELDMQ_CONFIG_H
#define FIELDMQ_CONFIG_H

#include <stdio.h>

#include "adapters/adapter.h"
#include "broker/broker.h"
#include "gateway/base/base.h"
#include "gateway/base/cidr.h"

enum gw_payload {
	GW_PAYLOAD_JSON,
	GW_PAYLOAD_VALUE,
	__GW_PAYLOAD_MAX,
};

enum gw_overflow {
	GW_OVERFLOW_DROP_OLDEST,
	GW_OVERFLOW_DROP_NEWEST,
	__GW_OVERFLOW_MAX,
};

enum gw_uplink_queue {
	GW_UPQ_ALWAYS,
	GW_UPQ_OFFLINE,
	GW_UPQ_OFF,
	__GW_UPQ_MAX,
};

struct gw_arena_chunk;

#define GW_MAX_FILTERS 32

/* A "FILTER [QOS]" entry of forward / subscribe. */
struct gw_filter {
	char *filter;
	uint8_t qos;
};

struct gw_gateway_config {
	char *id;
	char *topic_prefix; /* {id} already substituted */
	char *data_dir;	    /* absolute or relative to the cwd */
	char *devices;	    /* glob, resolved against the main file's folder */
	int log_level;
	enum gw_log_target log_target;
	enum gw_payload payload;
	enum ad_publish publish;
	uint64_t heartbeat_ms;
};

struct gw_store_config {
	char *path; /* {data_dir} substituted */
	uint64_t queue_max_messages;
	uint64_t queue_max_bytes;
	enum gw_overflow overflow;
	uint64_t sync_interval_ms;
	int synchronous; /* 0 normal, 1 full (fsync every commit) */
};

struct gw_uplink_config {
	bool enabled;
	char *url;
	bool tls;   /* mqtts:// */
	char *host; /* from url */
	uint16_t port;
	char *client_id;
	char *username;
	char *password;
	char *ca_file;
	char *cert_file;
	char *key_file;
	bool tls_insecure;
	uint8_t protocol; /* 4 (3.1.1) or 5 */
	uint64_t keepalive_ms;
	uint64_t session_expiry_ms;
	struct gw_filter forward[GW_MAX_FILTERS];
	unsigned int n_forward;
	char *remote_prefix;
	struct gw_filter subscribe[GW_MAX_FILTERS];
	unsigned int n_subscribe;
	char *local_prefix;
	enum gw_uplink_queue queue;
	bool queue_qos0;
	uint16_t max_inflight;
	uint32_t drain_rate;
	uint64_t reconnect_min_ms;
	uint64_t reconnect_max_ms;
};

struct gw_predefined {
	uint16_t id;
	char *topic;
};

#define GW_MAX_PREDEFINED 256
#define GW_MAX_ALLOW_FROM 32

struct gw_mqttsn_config {
	bool enabled;
	char *listen;
	uint8_t gateway_id;
	uint64_t advertise_interval_ms;
	char *multicast; /* NULL: off */
	uint32_t max_clients;
	uint32_t max_queued;  /* messages buffered per client (asleep / in flight) */
	uint32_t max_retries; /* sends of an unacknowledged message before it is dropped */
	uint64_t retry_interval_ms;
	char *mountpoint;
	struct gw_predefined predefined[GW_MAX_PREDEFINED];
	unsigned int n_predefined;
	/* Who may send datagrams (empty: anyone; required when listen is not loopback). */
	struct gw_cidr allow_from[GW_MAX_ALLOW_FROM];
	unsigned int n_allow_from;
};

/* [coap]: the CoAP server (the EMQX CoAP gateway interface). */
struct gw_coap_config {
	bool enabled;
	char *listen; /* comma-separated HOST:PORT, coap:// or coaps:// */
	char *psk_identity;
	char *psk_key;
	bool connection_required;
	int notify_type; /* enum coapsrv_notify: 0 non, 1 con, 2 qos */
	char *mountpoint;
	uint32_t max_clients;
	uint32_t max_observations;
	uint32_t max_queued;
	uint64_t max_payload;
	uint64_t heartbeat_ms;
	uint32_t rate_limit;
};

/* [http]: metrics, health and the status page (gateway/status.c). */
struct gw_http_config {
	bool enabled;
	char *listen;	     /* HOST:PORT, http:// or https:// (the broker's cert_file/key_file) */
	char *password_file; /* NULL / "": no authentication */
};

/* [homeassistant]: MQTT discovery (gateway/ha.c, gateway/ha_glue.c). */
struct gw_ha_config {
	bool enabled;
	char *discovery_prefix; /* a topic without wildcards, "homeassistant" by default */
};

/* A loaded device map and everything it owns (one arena, freed at once). */
struct gw_devmap {
	struct ad_map map;
	struct gw_arena_chunk *arena;
};

struct gw_config {
	char *path;			 /* the main file as given */
	const struct ad_driver *drivers; /* the adapter registry the maps were loaded with */
	struct gw_gateway_config gateway;
	struct brk_config broker;
	struct gw_store_config store;
	struct gw_uplink_config uplink;
	struct gw_mqttsn_config mqttsn;
	struct gw_coap_config coap;
	struct gw_http_config http;
	struct gw_ha_config homeassistant;
	struct gw_devmap *devmap;
	struct gw_arena_chunk *arena; /* strings of the sections above */
	/* [broker] acl_file / password_file resolved (NULL: none): read again on SIGHUP. */
	char *acl_file, *password_file;
};

/*
 * gw_config_load - parse and validate @path and the device maps it names.
 * On success returns 0 with *cfg filled (free with gw_config_free). On a
 * configuration error returns -EINVAL and writes one line per error
 * ("file:line: [section] key: message") to @err (NUL-terminated, truncated
 * to @errlen); other failures (-ENOENT, -ENOMEM) are described there too.
 * *cfg is always safe to gw_config_free().
 */
int gw_config_load(const char *path, struct gw_config *cfg, char *err, size_t errlen);
void gw_config_free(struct gw_config *cfg);

/*
 * The adapter registry (gateway/adapters.c), indexed by enum ad_protocol:
 * the name of each protocol, its device-map schema and its constructor.
 */
extern const struct ad_driver gw_drivers[__AD_PROTO_MAX];

/*
 * gw_config_load_drivers - gw_config_load() with another registry
 * (__AD_PROTO_MAX rows; tests use it to plug in a fake adapter). @drivers
 * must outlive @cfg: reloads (gw_devmap_load) use it too.
 */
int gw_config_load_drivers(const char *path, const struct ad_driver *drivers, struct gw_config *cfg,
			   char *err, size_t errlen);

/* One file of an in-memory configuration: its name and @len bytes of text. */
struct gw_config_file {
	const char *path;
	const char *text; /* need not be NUL-terminated */
	size_t len;
};

/*
 * gw_config_load_mem - gw_config_load() on files held in memory (the fuzz
 * target and tests): files[0] is the main file; the [gateway] devices glob
 * (resolved against files[0].path's folder) is matched with fnmatch against
 * the paths of files[1..n-1], which are parsed in that order. No directory
 * is read; files that keys name (acl_file, password_file, certificates) are
 * still opened from the disk. The texts must outlive the call only. n == 0
 * returns -EINVAL. gw_devmap_load() on the result reads the disk.
 */
int gw_config_load_mem(const struct gw_config_file *files, size_t n, struct gw_config *cfg,
		       char *err, size_t errlen);

/*
 * gw_devmap_load - load only the device maps named by @cfg's [gateway] devices
 * (used on SIGHUP). Same error contract as gw_config_load. On success *out is a
 * new map to free with gw_devmap_free().
 */
int gw_devmap_load(const struct gw_config *cfg, struct gw_devmap **out, char *err, size_t errlen);
void gw_devmap_free(struct gw_devmap *dm);

/*
 * gw_config_print - the effective configuration of @cfg as INI text on @f:
 * every key of every main section and of every bus, device and point, with
 * the defaults filled in (from the key tables' rows: one source for every
 * default) and the device maps' inherited values resolved. Secrets and
 * absent values are written as comments. For fieldmq --check-config -v.
 */
void gw_config_print(const struct gw_config *cfg, FILE *f);

/* Looks a device / point up by name; NULL when absent. */
struct ad_device *gw_devmap_device(const struct gw_devmap *dm, struct gw_slice name);
struct ad_point *gw_devmap_point(const struct ad_device *dev, struct gw_slice name);

#endif
