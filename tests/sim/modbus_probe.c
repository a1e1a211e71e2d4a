/*
 * modbus_probe.c - runs the Modbus adapter on a libuv loop for a while with a
 * device map built from the command line, and prints every reading, status
 * change and command result as one JSON object per line on stdout. The
 * integration tests drive it until the daemon wires the adapter.
 *
 *   modbus_probe --seconds 3
 *     --bus  NAME,type=tcp|rtu|rtu_over_tcp,host=H,port=P,device=D,baud=B,
 *            parity=N,data=8,stop=1,rs485=0,timeout=MS,turnaround=MS
 *     --dev  NAME,bus=BUS,unit=U,poll=MS,retries=N,degrade_after=N,
 *            degrade_for=MS,max_gap=N,max_regs=N,max_bits=N,one=0|1,wma=0|1,bo=ORDER
 *     --pt   DEV/NAME,area=holding,addr=A,type=T,bo=ORDER,bit=B,len=N,swap=0|1,
 *            scale=X,offset=X,rw=0|1
 *     --write AT_MS,DEV/PT,VALUE      VALUE: true false 42 -1.5 "text"
 *     --log  error|warning|info|debug   (adapter log lines go to stderr)
 *
 * Lines: {"t":MS,"ev":"reading","dev":..,"pt":..,"q":"good","v":..,"ts":..}
 *        {"t":MS,"ev":"status","dev":..,"online":true}
 *        {"t":MS,"ev":"cmd","id":N,"ok":false,"error":".."}
 *        {"t":MS,"ev":"refused","id":N,"rc":-13,"why":".."}
 *        {"t":MS,"ev":"stats",...} once at the end.
 * t is milliseconds since the probe started. Exit 0 after a clean stop.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "adapters/modbus/modbus_adapter.h"

#define MAX_ITEMS 20000

struct write_cmd {
	uv_timer_t timer;
	unsigned int id;
	uint64_t at_ms;
	const struct ad_point *pt;
	struct ad_value value;
	char *text;
};

struct probe {
	uv_loop_t *loop;
	struct ad_map map;
	struct ad_adapter *ad;
	uv_timer_t end;
	uint64_t seconds_ms;
	int64_t t0;
	struct write_cmd *writes;
	unsigned int n_writes;
	struct gw_logger log;
	bool stopped;
};

static struct probe P;

static int64_t rel(void)
{
	return gw_mono_ms() - P.t0;
}

static void put_json_str(const uint8_t *p, size_t n)
{
	size_t i;

	putchar('"');
	for (i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if (p[i] < 0x20)
			printf("\\u%04x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

static void put_value(const struct ad_value *v)
{
	switch (v->type) {
	case AD_VAL_BOOL:
		printf("%s", v->b ? "true" : "false");
		break;
	case AD_VAL_INT:
		printf("%lld", (long long)v->i);
		break;
	case AD_VAL_UINT:
		printf("%llu", (unsigned long long)v->u);
		break;
	case AD_VAL_DOUBLE:
		if (isfinite(v->d))
			printf("%.17g", v->d);
		else
			printf("\"%f\"", v->d);
		break;
	case AD_VAL_STRING:
		put_json_str(v->s.p, v->s.len);
		break;
	default:
		printf("null");
		break;
	}
}

static void on_reading(void *arg, const struct ad_reading *r)
{
	static const char *const q[] = { "good", "bad", "stale" };

	(void)arg;
	printf("{\"t\":%lld,\"ev\":\"reading\",\"dev\":\"%s\",\"pt\":\"%s\",\"q\":\"%s\",\"v\":",
	       (long long)rel(), r->device->name, r->point->name, q[r->quality]);
	put_value(&r->value);
	printf(",\"ts\":%lld}\n", (long long)r->ts_ms);
	fflush(stdout);
}

static void on_status(void *arg, const struct ad_device *dev, bool online)
{
	(void)arg;
	printf("{\"t\":%lld,\"ev\":\"status\",\"dev\":\"%s\",\"online\":%s}\n", (long long)rel(),
	       dev->name, online ? "true" : "false");
	fflush(stdout);
}

static void on_cmd_done(void *arg, void *token, const struct ad_cmd_result *res)
{
	struct write_cmd *w = token;

	(void)arg;
	printf("{\"t\":%lld,\"ev\":\"cmd\",\"id\":%u,\"ok\":%s,\"error\":", (long long)rel(), w->id,
	       res->ok ? "true" : "false");
	if (res->error)
		put_json_str((const uint8_t *)res->error, strlen(res->error));
	else
		printf("null");
	printf(",\"v\":");
	put_value(&res->value);
	printf("}\n");
	fflush(stdout);
}

static void on_write(uv_timer_t *t)
{
	struct write_cmd *w = container_of(t, struct write_cmd, timer);
	const char *why = NULL;
	int rc;

	if (P.stopped)
		return;
	rc = P.ad->ops->command(P.ad, w->pt, &w->value, w, &why);
	if (rc) {
		printf("{\"t\":%lld,\"ev\":\"refused\",\"id\":%u,\"rc\":%d,\"why\":",
		       (long long)rel(), w->id, rc);
		put_json_str((const uint8_t *)(why ? why : "?"), why ? strlen(why) : 1);
		printf("}\n");
		fflush(stdout);
	}
}

static void on_stopped(void *arg)
{
	struct ad_modbus_stats st;
	unsigned int i;

	(void)arg;
	ad_modbus_get_stats(P.ad, &st);
	printf("{\"t\":%lld,\"ev\":\"stats\",\"polls\":%llu,\"requests\":%llu,\"failures\":%llu,"
	       "\"readings\":%llu,\"overruns\":%llu,\"skipped\":%llu,\"writes\":%llu,"
	       "\"devices\":%u,\"online\":%u}\n",
	       (long long)rel(), (unsigned long long)st.polls, (unsigned long long)st.requests,
	       (unsigned long long)st.failures, (unsigned long long)st.readings,
	       (unsigned long long)st.overruns, (unsigned long long)st.skipped,
	       (unsigned long long)st.writes, st.devices, st.devices_online);
	fflush(stdout);
	uv_close((uv_handle_t *)&P.end, NULL);
	for (i = 0; i < P.n_writes; i++)
		uv_close((uv_handle_t *)&P.writes[i].timer, NULL);
}

static void on_end(uv_timer_t *t)
{
	(void)t;
	P.stopped = true;
	P.ad->ops->stop(P.ad, on_stopped, NULL);
}

static void on_sig(uv_signal_t *s, int signum)
{
	(void)signum;
	(void)s;
	if (!P.stopped)
		on_end(&P.end);
}

/* ------------------------------------------------------------ arguments */

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "modbus_probe: %s: %s\n", what, arg);
	exit(2);
}

/* Splits "NAME,k=v,k=v": returns NAME, then each call of next_kv gives one pair. */
static char *next_kv(char **s, char **val)
{
	char *tok = strsep(s, ",");
	char *eq;

	if (!tok)
		return NULL;
	eq = strchr(tok, '=');
	if (!eq)
		die("expected key=value", tok);
	*eq = 0;
	*val = eq + 1;
	return tok;
}

static long num(const char *v)
{
	char *end;
	long n = strtol(v, &end, 0);

	if (*end)
		die("not a number", v);
	return n;
}

static enum ad_byte_order order_of(const char *v)
{
	static const char *const names[] = { "ABCD", "BADC", "CDAB", "DCBA" };
	int i;

	for (i = 0; i < 4; i++)
		if (!strcmp(v, names[i]))
			return (enum ad_byte_order)(AD_BO_ABCD + i);
	die("bad byte order", v);
	return AD_BO_ABCD;
}

static struct ad_bus *find_bus(const char *name)
{
	unsigned int i;

	for (i = 0; i < P.map.n_buses; i++)
		if (!strcmp(P.map.buses[i]->name, name))
			return P.map.buses[i];
	die("no such bus", name);
	return NULL;
}

static struct ad_device *find_dev(const char *name)
{
	unsigned int i;

	for (i = 0; i < P.map.n_devices; i++)
		if (!strcmp(P.map.devices[i]->name, name))
			return P.map.devices[i];
	die("no such device", name);
	return NULL;
}

static struct ad_point *find_pt(const char *path)
{
	const char *slash = strchr(path, '/');
	struct ad_device *d;
	char devname[256];
	unsigned int i;

	if (!slash || (size_t)(slash - path) >= sizeof(devname))
		die("expected DEV/POINT", path);
	memcpy(devname, path, (size_t)(slash - path));
	devname[slash - path] = 0;
	d = find_dev(devname);
	for (i = 0; i < d->n_points; i++)
		if (!strcmp(d->points[i]->name, slash + 1))
			return d->points[i];
	die("no such point", path);
	return NULL;
}

static void add_bus(char *arg)
{
	struct ad_bus *b = calloc(1, sizeof(*b));
	struct mbus_bus *mb = calloc(1, sizeof(*mb));
	char *k, *v;

	b->name = strsep(&arg, ",");
	b->protocol = AD_PROTO_MODBUS;
	b->ext = mb;
	mb->type = AD_BUS_TCP;
	mb->host = "127.0.0.1";
	mb->port = 502;
	mb->baud = 9600;
	mb->parity = 'N';
	mb->data_bits = 8;
	mb->stop_bits = 1;
	mb->timeout_ms = 500;
	mb->turnaround_ms = 0;
	while ((k = next_kv(&arg, &v))) {
		if (!strcmp(k, "type"))
			mb->type = !strcmp(v, "rtu")		? AD_BUS_RTU
				   : !strcmp(v, "rtu_over_tcp") ? AD_BUS_RTU_OVER_TCP
								: AD_BUS_TCP;
		else if (!strcmp(k, "host"))
			mb->host = v;
		else if (!strcmp(k, "port"))
			mb->port = (uint16_t)num(v);
		else if (!strcmp(k, "device"))
			mb->device = v;
		else if (!strcmp(k, "baud"))
			mb->baud = (uint32_t)num(v);
		else if (!strcmp(k, "parity"))
			mb->parity = v[0];
		else if (!strcmp(k, "data"))
			mb->data_bits = (uint8_t)num(v);
		else if (!strcmp(k, "stop"))
			mb->stop_bits = (uint8_t)num(v);
		else if (!strcmp(k, "rs485"))
			mb->rs485 = num(v) != 0;
		else if (!strcmp(k, "timeout"))
			mb->timeout_ms = (uint32_t)num(v);
		else if (!strcmp(k, "turnaround"))
			mb->turnaround_ms = (uint32_t)num(v);
		else
			die("unknown bus key", k);
	}
	P.map.buses[P.map.n_buses++] = b;
}

static void add_dev(char *arg)
{
	struct ad_device *d = calloc(1, sizeof(*d));
	struct mbus_device *md = calloc(1, sizeof(*md));
	char *k, *v;

	d->name = strsep(&arg, ",");
	d->protocol = AD_PROTO_MODBUS;
	d->ext = md;
	md->unit_id = 1;
	d->poll_ms = 1000;
	md->byte_order = AD_BO_ABCD;
	md->max_regs_per_read = 125;
	md->max_bits_per_read = 2000;
	md->max_gap = 10;
	md->retries = 1;
	md->degrade_after = 3;
	md->degrade_for_ms = 60000;
	d->publish = AD_PUB_ON_CHANGE;
	d->stale_ms = 3 * d->poll_ms;
	d->points = calloc(MAX_ITEMS, sizeof(*d->points));
	while ((k = next_kv(&arg, &v))) {
		if (!strcmp(k, "bus"))
			d->bus = find_bus(v);
		else if (!strcmp(k, "unit"))
			md->unit_id = (uint8_t)num(v);
		else if (!strcmp(k, "poll"))
			d->poll_ms = (uint32_t)num(v);
		else if (!strcmp(k, "retries"))
			md->retries = (uint8_t)num(v);
		else if (!strcmp(k, "degrade_after"))
			md->degrade_after = (uint16_t)num(v);
		else if (!strcmp(k, "degrade_for"))
			md->degrade_for_ms = (uint32_t)num(v);
		else if (!strcmp(k, "max_gap"))
			md->max_gap = (uint16_t)num(v);
		else if (!strcmp(k, "max_regs"))
			md->max_regs_per_read = (uint16_t)num(v);
		else if (!strcmp(k, "max_bits"))
			md->max_bits_per_read = (uint16_t)num(v);
		else if (!strcmp(k, "one"))
			md->one_request_per_point = num(v) != 0;
		else if (!strcmp(k, "wma"))
			md->write_multiple_always = num(v) != 0;
		else if (!strcmp(k, "bo"))
			md->byte_order = order_of(v);
		else
			die("unknown device key", k);
	}
	if (!d->bus)
		die("device needs bus=", d->name);
	P.map.devices[P.map.n_devices++] = d;
}

static void add_pt(char *arg)
{
	struct ad_point *p = calloc(1, sizeof(*p));
	struct mbus_point *mp = calloc(1, sizeof(*mp));
	char *path = strsep(&arg, ",");
	char *slash = strchr(path, '/');
	static const char *const areas[] = { "coil", "discrete", "input", "holding" };
	static const char *const types[] = { "bool",	"bit",	   "int16", "uint16",
					     "int32",	"uint32",  "int64", "uint64",
					     "float32", "float64", "string" };
	bool bo_set = false;
	char *k, *v;
	unsigned int i;

	if (!slash)
		die("expected DEV/POINT", path);
	*slash = 0;
	p->device = find_dev(path);
	p->name = slash + 1;
	p->ext = mp;
	mp->area = AD_AREA_HOLDING;
	p->type = AD_PT_UINT16;
	p->scale = 1.0;
	p->publish = AD_PUB_ON_CHANGE;
	while ((k = next_kv(&arg, &v))) {
		if (!strcmp(k, "area")) {
			for (i = 0; i < 4 && strcmp(v, areas[i]); i++)
				;
			if (i == 4)
				die("bad area", v);
			mp->area = (enum ad_area)i;
		} else if (!strcmp(k, "addr")) {
			mp->address = (uint16_t)num(v);
		} else if (!strcmp(k, "type")) {
			for (i = 0; i < GW_ARRAY_SIZE(types) && strcmp(v, types[i]); i++)
				;
			if (i == GW_ARRAY_SIZE(types))
				die("bad type", v);
			p->type = (enum ad_point_type)i;
		} else if (!strcmp(k, "bo")) {
			mp->byte_order = order_of(v);
			bo_set = true;
		} else if (!strcmp(k, "bit")) {
			mp->bit = (uint8_t)num(v);
		} else if (!strcmp(k, "len")) {
			mp->length = (uint16_t)num(v);
		} else if (!strcmp(k, "swap")) {
			mp->string_swap = num(v) != 0;
		} else if (!strcmp(k, "scale")) {
			p->scale = strtod(v, NULL);
		} else if (!strcmp(k, "offset")) {
			p->offset = strtod(v, NULL);
		} else if (!strcmp(k, "rw")) {
			p->writable = num(v) != 0;
		} else {
			die("unknown point key", k);
		}
	}
	if (!bo_set)
		mp->byte_order = mbus_dev(p->device)->byte_order;
	if (p->device->n_points == MAX_ITEMS)
		die("too many points", path);
	p->device->points[p->device->n_points++] = p;
	P.map.points[P.map.n_points++] = p;
}

static void add_write(char *arg)
{
	struct write_cmd *w = &P.writes[P.n_writes];
	char *at = strsep(&arg, ",");
	char *path = strsep(&arg, ",");
	char *val = arg, *end;

	if (!at || !path || !val)
		die("expected --write AT_MS,DEV/PT,VALUE", at ? at : "");
	w->id = ++P.n_writes;
	w->at_ms = (uint64_t)num(at);
	w->pt = find_pt(path);
	if (!strcmp(val, "true") || !strcmp(val, "false")) {
		w->value.type = AD_VAL_BOOL;
		w->value.b = val[0] == 't';
	} else if (val[0] == '"') {
		size_t n = strlen(val);

		w->text = val + 1;
		if (n >= 2 && val[n - 1] == '"')
			val[n - 1] = 0;
		w->value.type = AD_VAL_STRING;
		w->value.s = gw_slice_cstr(w->text);
	} else if (strpbrk(val, ".eEn")) {
		w->value.type = AD_VAL_DOUBLE;
		w->value.d = strtod(val, &end);
	} else if (val[0] == '-') {
		w->value.type = AD_VAL_INT;
		w->value.i = strtoll(val, &end, 0);
	} else {
		w->value.type = AD_VAL_UINT;
		w->value.u = strtoull(val, &end, 0);
	}
}

int main(int argc, char **argv)
{
	struct ad_sink sink = {
		.on_reading = on_reading,
		.on_status = on_status,
		.on_cmd_done = on_cmd_done,
	};
	uv_signal_t sig_int, sig_term;
	unsigned int i;
	int rc, level = LOG_WARNING;

	signal(SIGPIPE, SIG_IGN);
	P.loop = uv_default_loop();
	P.seconds_ms = 3000;
	P.map.buses = calloc(MAX_ITEMS, sizeof(*P.map.buses));
	P.map.devices = calloc(MAX_ITEMS, sizeof(*P.map.devices));
	P.map.points = calloc(MAX_ITEMS, sizeof(*P.map.points));
	P.writes = calloc(256, sizeof(*P.writes));
	for (i = 1; i < (unsigned int)argc; i++) {
		const char *a = argv[i];
		char *v = i + 1 < (unsigned int)argc ? argv[i + 1] : NULL;

		if (!v)
			die("missing value for", a);
		i++;
		if (!strcmp(a, "--seconds"))
			P.seconds_ms = (uint64_t)(strtod(v, NULL) * 1000);
		else if (!strcmp(a, "--bus"))
			add_bus(v);
		else if (!strcmp(a, "--dev"))
			add_dev(v);
		else if (!strcmp(a, "--pt"))
			add_pt(v);
		else if (!strcmp(a, "--write") && P.n_writes < 256)
			add_write(v);
		else if (!strcmp(a, "--log"))
			level = gw_log_level_parse(v);
		else
			die("unknown option", a);
	}
	gw_logger_init(&P.log, level < 0 ? LOG_WARNING : level, GW_LOG_STDERR);
	P.t0 = gw_mono_ms();
	P.ad = ad_modbus_new(P.loop, &P.map, &P.log, &sink);
	if (!P.ad)
		die("ad_modbus_new", "failed");
	rc = P.ad->ops->start(P.ad);
	if (rc) {
		fprintf(stderr, "modbus_probe: start: %s\n", uv_strerror(rc));
		return 1;
	}
	uv_timer_init(P.loop, &P.end);
	uv_timer_start(&P.end, on_end, P.seconds_ms, 0);
	for (i = 0; i < P.n_writes; i++) {
		uv_timer_init(P.loop, &P.writes[i].timer);
		uv_timer_start(&P.writes[i].timer, on_write, P.writes[i].at_ms, 0);
	}
	uv_signal_init(P.loop, &sig_int);
	uv_signal_init(P.loop, &sig_term);
	uv_signal_start(&sig_int, on_sig, SIGINT);
	uv_signal_start(&sig_term, on_sig, SIGTERM);
	uv_unref((uv_handle_t *)&sig_int);
	uv_unref((uv_handle_t *)&sig_term);
	uv_run(P.loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_run(P.loop, UV_RUN_DEFAULT);
	P.ad->ops->free(P.ad);
	rc = uv_loop_close(P.loop);
	return rc ? 1 : 0;
}
