/*
 * fuzz_coap_srv_core.c - the CoAP server's core (coap_srv.c) under libFuzzer
 * (or the corpus replay of `make test`), with fake ops and a fake clock: the
 * input is a sequence of events separated by '\n' lines, each starting with
 * an event byte:
 *   'R' P M O rest   a request from peer P (low 3 bits) with method M,
 *                    Observe O (0xff: none); rest is the options as in
 *                    fuzz_coap_srv_route ('|' separates them, '?' starts a
 *                    Uri-Query item), the payload after a 0x01 byte
 *   'D' N            a delivery to the N-th client (topic "a/b"), QoS N & 3
 *   'X' P            an RST / failed CON for the last token of peer P
 *   'T' S            S seconds pass, a tick; 'I' libcoap idle; 'F' flush
 * Clients, observations, pending notifications and their links must stay
 * consistent whatever the order (ASan finds a use after free, the asserts
 * a count that drifts); everything is freed at the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/coap/coap_srv_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXOPT 16

struct fz {
	struct coapsrv_core core;
	int sessions; /* attached and not detached */
	int links;    /* observations linked */
	struct coapsrv_client *last[8];
};

static int f_attach(void *arg, struct coapsrv_client *c, const struct coapsrv_attach *info,
		    void **session)
{
	struct fz *f = arg;

	if (info->client_id.len && info->client_id.p[0] == '!')
		return -13; /* -EACCES */
	f->sessions++;
	*session = c;
	return 0;
}

static void f_detach(void *arg, struct coapsrv_client *c, void *session)
{
	struct fz *f = arg;
	unsigned int i;

	if (session != c)
		abort();
	for (i = 0; i < 8; i++)
		if (f->last[i] == c)
			f->last[i] = NULL;
	f->sessions--;
}

static int f_subscribe(void *arg, void *session, struct gw_slice filter, uint8_t qos,
		       uint32_t sub_id)
{
	struct fz *f = arg;
	struct coapsrv_client *c = session;

	(void)filter;
	if (qos == 2)
		return -13;
	/* a retained message, delivered inside the call as the broker does */
	coapsrv_on_deliver(&f->core, c, GW_SLICE_STR("a/b"), GW_SLICE_STR("r"), qos, &sub_id, 1);
	return 0;
}

static int f_unsubscribe(void *arg, void *session, struct gw_slice filter)
{
	(void)arg;
	(void)session;
	(void)filter;
	return 0;
}

static int f_notify(void *arg, struct coapsrv_obs *o, uint32_t seq, bool con,
		    struct gw_slice payload)
{
	(void)arg;
	(void)con;
	(void)payload;
	if (!o->c || seq > 0xFFFFFF)
		abort();
	return 0;
}

static void f_forget(void *arg, struct coapsrv_obs *o)
{
	struct fz *f = arg;

	if (o->linked)
		f->links--;
	o->linked = false;
}

static const struct coapsrv_ops fops = {
	.attach = f_attach,
	.detach = f_detach,
	.subscribe = f_subscribe,
	.unsubscribe = f_unsubscribe,
	.notify = f_notify,
	.forget = f_forget,
};

static void request(struct fz *f, const uint8_t *p, size_t n, int64_t now)
{
	struct gw_slice path[MAXOPT], query[MAXOPT], payload = { 0 };
	struct coapsrv_raw raw = { .path = path, .query = query };
	struct coapsrv_peer peer = { 0 };
	struct coapsrv_resp r;
	const uint8_t *end = p + n, *s;
	uint8_t tok[2];

	if (n < 3)
		return;
	peer.len = 4;
	peer.addr[0] = 127;
	peer.addr[3] = p[0] & 7;
	peer.name = "peer";
	peer.link = &peer;
	raw.method = p[1] & 7;
	raw.observe = p[2] == 0xff ? -1 : p[2] & 3;
	tok[0] = p[0];
	tok[1] = p[1];
	p += 3;
	s = memchr(p, 1, (size_t)(end - p));
	if (s) {
		payload = (struct gw_slice){ s + 1, (size_t)(end - s - 1) };
		end = s;
	}
	while (p <= end) {
		const uint8_t *e = memchr(p, '|', (size_t)(end - p));
		struct gw_slice v;

		if (!e)
			e = end;
		v = (struct gw_slice){ p, (size_t)(e - p) };
		if (v.len && v.p[0] == '?') {
			if (raw.n_query < MAXOPT)
				query[raw.n_query++] = (struct gw_slice){ v.p + 1, v.len - 1 };
		} else if (raw.n_path < MAXOPT) {
			path[raw.n_path++] = v;
		}
		p = e + 1;
	}
	if (!coapsrv_on_request(&f->core, &peer, &raw, (struct gw_slice){ tok, 2 }, payload, now,
				&r))
		return;
	if (r.obs && !r.obs->linked) {
		r.obs->linked = true; /* the glue takes a reference on the link */
		f->links++;
	}
	if (r.code == 0) {
		if (!r.pub_client || r.pub_qos > 2)
			abort();
		f->last[peer.addr[3]] = r.pub_client;
	}
	if (coapsrv_has_pending(&f->core))
		coapsrv_flush(&f->core);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct coapsrv_config cfg;
	struct coapsrv_stats st;
	struct fz *f = calloc(1, sizeof(*f));
	const uint8_t *p = data, *end = data + size;
	int64_t now = 1000;

	if (!f)
		return 0;
	coapsrv_config_defaults(&cfg);
	cfg.max_clients = 4;
	cfg.max_observations = 6;
	cfg.max_queued = 3;
	cfg.max_payload = 8;
	cfg.heartbeat_ms = 5000;
	cfg.rate_limit = 20;
	cfg.mountpoint = "m/";
	if (coapsrv_core_init(&f->core, &cfg, &fops, f, 1))
		abort();
	while (p < end) {
		const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (!e)
			e = end;
		n = (size_t)(e - p);
		if (n) {
			switch (p[0]) {
			case 'R':
				request(f, p + 1, n - 1, now);
				break;
			case 'D':
				if (n > 1 && f->last[p[1] & 7])
					coapsrv_on_deliver(&f->core, f->last[p[1] & 7],
							   GW_SLICE_STR("m/a/b"), GW_SLICE_STR("d"),
							   p[1] & 3, NULL, 0);
				break;
			case 'X':
				if (n > 1) {
					uint8_t addr[4] = { 127, 0, 0, (uint8_t)(p[1] & 7) };
					uint8_t tok[2] = { (uint8_t)(p[1] & 7), COAPSRV_GET };

					coapsrv_on_reset(&f->core, addr, 4,
							 (struct gw_slice){ tok, 2 }, true);
				}
				break;
			case 'T':
				now += 1000 * (n > 1 ? p[1] % 60 : 1);
				coapsrv_on_tick(&f->core, now);
				break;
			case 'I':
				coapsrv_on_idle(&f->core);
				break;
			case 'F':
				coapsrv_flush(&f->core);
				break;
			default:
				break;
			}
		}
		coapsrv_core_stats(&f->core, &st);
		if (st.clients > cfg.max_clients || st.observations > cfg.max_observations ||
		    (int)st.clients != f->sessions || f->links < 0 ||
		    f->links > (int)st.observations)
			abort();
		p = e + 1;
	}
	coapsrv_core_fini(&f->core);
	if (f->sessions != 0 || f->links != 0)
		abort();
	free(f);
	return 0;
}
