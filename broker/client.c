/*
 * client.c - the in-process clients of broker.h (the gateway, the adapters,
 * the uplink): sessions without a network connection, delivered to through a
 * callback. Attaching one (taking a session over as a CONNECT would), its
 * subscriptions, detaching it. Its publishes (brk_client_publish*) are in
 * broker.c, beside the message functions they inline.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/mqtt_codec.h"

/* ---------------------------------------------------- in-process clients */

int brk_client_new(struct brk *b, const struct brk_client_opts *opts, struct brk_client **out,
		   bool *session_present)
{
	int64_t now = brk__now(b);
	struct gw_slice id = gw_slice_cstr(opts->client_id);
	struct brk_acl_view *av = NULL;
	struct brk_client *ic;
	struct brk_session *s;
	char idbuf[40];

	if (session_present)
		*session_present = false;
	if (id.len > 65535)
		return -EINVAL;
	if (opts->will && (!brk__topic_name_valid(opts->will->topic) || opts->will->qos > 2))
		return -EINVAL;
	if (!id.len) {
		snprintf(idbuf, sizeof(idbuf), "fieldmq-local-%llx",
			 (unsigned long long)++b->id_counter);
		id = gw_slice_cstr(idbuf);
	}
	ic = gw_calloc(1, sizeof(*ic));
	if (!ic)
		return -ENOMEM;
	/* The client's ACL rules, before anything of a session it may take over changes. */
	if (opts->acl && b->cfg.acl) {
		struct gw_slice user = gw_slice_cstr(opts->username);

		if (brk__acl_view_new(b->cfg.acl, id, opts->username ? &user : NULL, &av)) {
			gw_free(ic);
			return -ENOMEM;
		}
	}
	s = brk__session_find(b, id);
	if (s && s->conn) {
		struct brk_conn *old = s->conn;

		brk__conn_kick(old, MQTT_RC_SESSION_TAKEN_OVER);
		old->s = NULL;
		if (old->counted && b->st.clients_connected)
			b->st.clients_connected--;
		old->counted = false;
		brk__session_offline(s, old->will_ok, now);
		s = brk__session_find(b, id);
	} else if (s && s->ic) {
		s->ic->s = NULL;
		brk__session_offline(s, false, now);
		s = brk__session_find(b, id);
	}
	if (s && opts->clean_start) {
		brk__session_end(s, now);
		s = NULL;
	}
	if (s) {
		if (session_present)
			*session_present = true;
		brk__session_resume(s);
	} else {
		s = brk__session_new(b, id);
		if (!s) {
			gw_free(av);
			gw_free(ic);
			return -ENOMEM;
		}
	}
	if (av) {
		brk__session_acl_attach(s, av, session_present && *session_present);
	} else {
		/* Trusted in-process clients (or no ACL): no rules. */
		gw_free(s->acl);
		s->acl = NULL;
		s->acl_deliver = false;
	}
	s->expiry = opts->session_expiry;
	s->persist = s->expiry != 0;
	if (opts->will && s->acl && !brk__acl_allowed(s->acl, opts->will->topic, BRK_ACL_WRITE)) {
		/* As for a network client: the will is dropped, the client accepted. */
		b->st.acl_denied++;
	} else if (opts->will) {
		s->will = brk__msg_new(opts->will, 0);
		s->will_delay = opts->will_delay;
	}
	ic->s = s;
	ic->deliver = opts->deliver;
	ic->arg = opts->arg;
	s->ic = ic;
	brk__session_save(s);
	*out = ic;
	brk__session_pump(s, now, true);
	return 0;
}

bool brk__filter_ok(struct gw_slice f)
{
	struct gw_slice g, real;
	bool bad;

	if (brk__share_split(f, &g, &real, &bad))
		return true;
	return !bad && brk__topic_filter_valid(f);
}

int brk_client_subscribe(struct brk_client *c, struct gw_slice filter, uint8_t qos,
			 unsigned int flags, uint32_t sub_id)
{
	bool existed;
	int rc;

	if (!c->s)
		return -ENOTCONN;
	if (!brk__filter_ok(filter) || qos > 2)
		return -EINVAL;
	if (c->s->acl && !brk__acl_sub_allowed(c->s->acl, filter)) {
		c->s->b->st.acl_denied++;
		return -EACCES;
	}
	rc = brk__session_subscribe(c->s, filter, qos, flags, sub_id, &existed);
	if (rc)
		return rc;
	if (((flags >> BRK_SUB_RH_SHIFT) & 3) == 1 && existed)
		return 0;
	brk__session_send_retained(c->s, filter, qos, flags, sub_id, brk__now(c->s->b));
	return 0;
}

const char *brk_client_id(const struct brk_client *c)
{
	return c && c->s ? c->s->client_id : NULL;
}

int brk_client_unsubscribe(struct brk_client *c, struct gw_slice filter)
{
	if (!c->s)
		return -ENOTCONN;
	return brk__session_unsubscribe(c->s, filter);
}

void brk_client_free(struct brk_client *c, bool publish_will)
{
	if (!c)
		return;
	if (c->s) {
		c->s->ic = NULL;
		brk__session_offline(c->s, publish_will, brk__now(c->s->b));
	}
	gw_free(c);
}
