/*
 * topic.c - the subscription tree and the retained messages.
 *
 * One node per topic level; literal children hashed, so a publish costs one
 * lookup per level (plus the + and # branches), whatever the number of
 * unrelated subscriptions. Retained messages hang on the node of their topic,
 * and each node counts the retained messages below it so a wildcard search
 * skips empty subtrees.
 */
#include <errno.h>
#include <string.h>

#include "broker/broker_int.h"

/* ---------------------------------------------------------- validation */

bool brk__topic_name_valid(struct gw_slice t)
{
	size_t i;

	/* [MQTT-4.7.3-1] at least one character; [MQTT-4.7.0-1] no wildcards. */
	if (t.len == 0 || t.len > 65535)
		return false;
	for (i = 0; i < t.len; i++)
		if (t.p[i] == '+' || t.p[i] == '#' || t.p[i] == 0)
			return false;
	return true;
}

bool brk__topic_filter_valid(struct gw_slice f)
{
	size_t i;

	if (f.len == 0 || f.len > 65535)
		return false;
	for (i = 0; i < f.len; i++) {
		uint8_t ch = f.p[i];

		if (ch == 0)
			return false;
		if (ch == '+') {
			/* [MQTT-4.7.1-3] + occupies a whole level. */
			if ((i > 0 && f.p[i - 1] != '/') || (i + 1 < f.len && f.p[i + 1] != '/'))
				return false;
		} else if (ch == '#') {
			/* [MQTT-4.7.1-2] # is last and a whole level. */
			if (i + 1 != f.len || (i > 0 && f.p[i - 1] != '/'))
				return false;
		}
	}
	return true;
}

bool brk__share_split(struct gw_slice f, struct gw_slice *group, struct gw_slice *filter, bool *bad)
{
	static const char pfx[] = "$share/";
	size_t i;

	*bad = false;
	if (f.len < sizeof(pfx) - 1 || memcmp(f.p, pfx, sizeof(pfx) - 1) != 0)
		return false;
	for (i = sizeof(pfx) - 1; i < f.len && f.p[i] != '/'; i++)
		if (f.p[i] == '+' || f.p[i] == '#') {
			*bad = true; /* [MQTT-4.8.2-2] */
			return false;
		}
	group->p = f.p + sizeof(pfx) - 1;
	group->len = i - (sizeof(pfx) - 1);
	if (group->len == 0 || i + 1 >= f.len) {
		*bad = true; /* [MQTT-4.8.2-1] an empty group or no filter */
		return false;
	}
	filter->p = f.p + i + 1;
	filter->len = f.len - i - 1;
	if (!brk__topic_filter_valid(*filter)) {
		*bad = true;
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- nodes */

static uint32_t hash_word(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--) {
		h ^= *p++;
		h *= 16777619u;
	}
	return h;
}

static struct brk_tnode *node_new(struct brk_tnode *parent, const uint8_t *w, size_t n)
{
	struct brk_tnode *nd = gw_calloc(1, sizeof(*nd) + n + 1);

	if (!nd)
		return NULL;
	nd->parent = parent;
	nd->len = (uint16_t)n;
	memcpy(nd->word, w, n);
	return nd;
}

static struct brk_tnode *child_find(const struct brk_tnode *nd, const uint8_t *w, size_t n)
{
	struct brk_tnode *c;

	if (!nd->n_buckets)
		return NULL;
	for (c = nd->buckets[hash_word(w, n) & (nd->n_buckets - 1)]; c; c = c->hnext)
		if (c->len == n && memcmp(c->word, w, n) == 0)
			return c;
	return NULL;
}

static int child_grow(struct brk_tnode *nd)
{
	uint32_t nb = nd->n_buckets ? nd->n_buckets * 2 : 4, i;
	struct brk_tnode **v = gw_calloc(nb, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (i = 0; i < nd->n_buckets; i++) {
		struct brk_tnode *c = nd->buckets[i], *next;

		for (; c; c = next) {
			uint32_t h = hash_word((const uint8_t *)c->word, c->len) & (nb - 1);

			next = c->hnext;
			c->hnext = v[h];
			v[h] = c;
		}
	}
	gw_free(nd->buckets);
	nd->buckets = v;
	nd->n_buckets = nb;
	return 0;
}

/* @nd's subscription part, allocated if it has none. NULL on out-of-memory. */
static struct brk_tfilters *filters_get(struct brk_tnode *nd)
{
	if (!nd->f) {
		nd->f = gw_calloc(1, sizeof(*nd->f));
		if (!nd->f)
			return NULL;
		gw_list_init(&nd->f->subs);
		gw_list_init(&nd->f->shares);
	}
	return nd->f;
}

/* Frees @nd's subscription part once nothing is left in it. */
static void filters_trim(struct brk_tnode *nd)
{
	struct brk_tfilters *f = nd->f;

	if (f && !f->plus && !f->hash && gw_list_empty(&f->subs) && gw_list_empty(&f->shares)) {
		gw_free(f);
		nd->f = NULL;
	}
}

static struct brk_tnode *plus_of(const struct brk_tnode *nd)
{
	return nd->f ? nd->f->plus : NULL;
}

static struct brk_tnode *hash_of(const struct brk_tnode *nd)
{
	return nd->f ? nd->f->hash : NULL;
}

/* The child for level @w of @nd, created if needed. NULL on out-of-memory. */
static struct brk_tnode *child_get(struct brk_tnode *nd, const uint8_t *w, size_t n)
{
	struct brk_tfilters *f;
	struct brk_tnode *c;
	uint32_t h;

	if (n == 1 && (w[0] == '+' || w[0] == '#')) {
		struct brk_tnode **slot;

		f = filters_get(nd);
		if (!f)
			return NULL;
		slot = w[0] == '+' ? &f->plus : &f->hash;
		if (!*slot)
			*slot = node_new(nd, w, n);
		return *slot;
	}
	c = child_find(nd, w, n);
	if (c)
		return c;
	if (nd->n_children >= nd->n_buckets * 2 && child_grow(nd))
		return NULL;
	c = node_new(nd, w, n);
	if (!c)
		return NULL;
	h = hash_word(w, n) & (nd->n_buckets - 1);
	c->hnext = nd->buckets[h];
	nd->buckets[h] = c;
	nd->n_children++;
	return c;
}

static void child_unlink(struct brk_tnode *parent, struct brk_tnode *c)
{
	struct brk_tnode **pp;

	if (parent->f && parent->f->plus == c) {
		parent->f->plus = NULL;
		filters_trim(parent);
		return;
	}
	if (parent->f && parent->f->hash == c) {
		parent->f->hash = NULL;
		filters_trim(parent);
		return;
	}
	pp = &parent->buckets[hash_word((const uint8_t *)c->word, c->len) &
			      (parent->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			parent->n_children--;
			break;
		}
	if (!parent->n_children) {
		gw_free(parent->buckets);
		parent->buckets = NULL;
		parent->n_buckets = 0;
	}
}

/* After filters_trim(): f is NULL when it held nothing. */
static bool node_unused(const struct brk_tnode *nd)
{
	return !nd->n_children && !nd->f && !nd->retained;
}

/* Free @nd and its empty ancestors (never the root). */
static void node_prune(struct brk_tree *t, struct brk_tnode *nd)
{
	if (nd)
		filters_trim(nd);
	while (nd && nd != t->root && node_unused(nd)) {
		struct brk_tnode *parent = nd->parent;

		child_unlink(parent, nd);
		gw_free(nd);
		nd = parent;
	}
}

/* The node for @f (a name or a filter), created if @create. */
static struct brk_tnode *node_walk(struct brk_tree *t, struct gw_slice f, bool create)
{
	struct brk_tnode *nd = t->root, *c, *created = NULL;
	size_t i = 0;

	for (;;) {
		size_t j = i;

		while (j < f.len && f.p[j] != '/')
			j++;
		if (create) {
			c = child_get(nd, f.p + i, j - i);
			if (!c) {
				if (created)
					node_prune(t, nd);
				else
					filters_trim(nd); /* child_get may have added it */
				return NULL;
			}
			created = c;
		} else if (j - i == 1 && f.p[i] == '+') {
			c = plus_of(nd);
		} else if (j - i == 1 && f.p[i] == '#') {
			c = hash_of(nd);
		} else {
			c = child_find(nd, f.p + i, j - i);
		}
		if (!c)
			return NULL;
		nd = c;
		if (j >= f.len)
			return nd;
		i = j + 1;
	}
}

static void node_free_all(struct brk_tnode *nd)
{
	uint32_t i;

	if (!nd)
		return;
	for (i = 0; i < nd->n_buckets; i++) {
		struct brk_tnode *c = nd->buckets[i], *next;

		for (; c; c = next) {
			next = c->hnext;
			node_free_all(c);
		}
	}
	if (nd->f) {
		node_free_all(nd->f->plus);
		node_free_all(nd->f->hash);
		gw_free(nd->f);
	}
	if (nd->retained)
		brk__msg_unref(nd->retained);
	gw_free(nd->buckets);
	gw_free(nd);
}

int brk__tree_init(struct brk_tree *t)
{
	memset(t, 0, sizeof(*t));
	t->root = node_new(NULL, (const uint8_t *)"", 0);
	return t->root ? 0 : -ENOMEM;
}

void brk__tree_fini(struct brk_tree *t)
{
	node_free_all(t->root);
	t->root = NULL;
}

/* ------------------------------------------------------- subscriptions */

int brk__tree_sub(struct brk_tree *t, struct brk_sub *sub)
{
	struct gw_slice f = { (const uint8_t *)sub->filter, sub->filter_len }, group, real;
	struct brk_share *sh = NULL;
	struct brk_tfilters *tf;
	struct brk_tnode *nd;
	bool bad, shared;
	struct gw_list *pos;

	shared = brk__share_split(f, &group, &real, &bad);
	if (bad)
		return -EINVAL;
	nd = node_walk(t, shared ? real : f, true);
	if (!nd)
		return -ENOMEM;
	tf = filters_get(nd);
	if (!tf) {
		node_prune(t, nd);
		return -ENOMEM;
	}
	sub->node = nd;
	sub->share = NULL;
	if (!shared) {
		gw_list_add_tail(&tf->subs, &sub->node_link);
		t->n_subs++;
		return 0;
	}
	gw_list_for_each (pos, &tf->shares) {
		struct brk_share *x = gw_list_entry(pos, struct brk_share, link);

		if (strlen(x->name) == group.len && memcmp(x->name, group.p, group.len) == 0) {
			sh = x;
			break;
		}
	}
	if (!sh) {
		sh = gw_calloc(1, sizeof(*sh) + group.len + 1);
		if (!sh) {
			node_prune(t, nd);
			return -ENOMEM;
		}
		memcpy(sh->name, group.p, group.len);
		gw_list_init(&sh->members);
		gw_list_add_tail(&tf->shares, &sh->link);
	}
	sub->share = sh;
	gw_list_add_tail(&sh->members, &sub->node_link);
	t->n_subs++;
	return 0;
}

void brk__tree_unsub(struct brk_tree *t, struct brk_sub *sub)
{
	struct brk_share *sh = sub->share;

	if (!sub->node)
		return;
	if (sh && sh->last == sub)
		sh->last = NULL;
	gw_list_del(&sub->node_link);
	if (sh && gw_list_empty(&sh->members)) {
		gw_list_del(&sh->link);
		gw_free(sh);
	}
	t->n_subs--;
	node_prune(t, sub->node);
	sub->node = NULL;
	sub->share = NULL;
}

/* ------------------------------------------------------------- matching */

static struct brk_match *match_slot(struct brk_matches *out)
{
	if (out->n == out->cap) {
		unsigned int nc = out->cap ? out->cap * 2 : 16;
		struct brk_match *v = gw_realloc(out->v, nc * sizeof(*v));

		if (!v) {
			out->err = -ENOMEM;
			return NULL;
		}
		out->v = v;
		out->cap = nc;
	}
	return &out->v[out->n++];
}

static void match_add_id(struct brk_match *m, uint32_t id)
{
	if (id && m->n_ids < GW_ARRAY_SIZE(m->ids))
		m->ids[m->n_ids++] = id;
}

static void match_sub(struct brk_sub *sub, const struct brk_session *publisher,
		      struct brk_matches *out)
{
	struct brk_session *s = sub->s;
	struct brk_match *m;

	/* [MQTT-3.8.3-3] no-local: not back to the publishing client. */
	if ((sub->opts & BRK_SUB_NO_LOCAL) && s == publisher)
		return;
	if (s->match_gen == out->gen) {
		/* Overlapping subscriptions: one copy, the highest QoS, every id. */
		m = &out->v[s->match_idx];
		if (sub->qos > m->qos)
			m->qos = sub->qos;
		m->rap |= !!(sub->opts & BRK_SUB_RAP);
		match_add_id(m, sub->sub_id);
		return;
	}
	m = match_slot(out);
	if (!m)
		return;
	s->match_gen = out->gen;
	s->match_idx = out->n - 1;
	m->s = s;
	m->qos = sub->qos;
	m->rap = !!(sub->opts & BRK_SUB_RAP);
	m->shared = false;
	m->n_ids = 0;
	match_add_id(m, sub->sub_id);
}

static bool session_online(const struct brk_session *s)
{
	return s->conn || s->ic;
}

static void match_share(struct brk_share *sh, struct brk_matches *out)
{
	struct gw_list *start, *pos;
	struct brk_sub *pick = NULL, *any = NULL;
	struct brk_match *m;

	/* Round robin from the member after the last one served; online members first. */
	start = sh->last ? &sh->last->node_link : &sh->members;
	for (pos = start;;) {
		struct brk_sub *sub;

		pos = pos->next;
		if (pos == &sh->members)
			pos = pos->next;
		if (pos == &sh->members)
			break; /* no members */
		sub = gw_list_entry(pos, struct brk_sub, node_link);
		if (!any)
			any = sub;
		if (session_online(sub->s)) {
			pick = sub;
			break;
		}
		if (pos == start || (start == &sh->members && pos == sh->members.prev))
			break;
	}
	if (!pick)
		pick = any;
	if (!pick)
		return;
	sh->last = pick;
	m = match_slot(out);
	if (!m)
		return;
	m->s = pick->s;
	m->qos = pick->qos;
	m->rap = !!(pick->opts & BRK_SUB_RAP);
	m->shared = true;
	m->n_ids = 0;
	match_add_id(m, pick->sub_id);
}

static void match_node_subs(struct brk_tnode *nd, const struct brk_session *publisher,
			    struct brk_matches *out)
{
	struct gw_list *pos;

	if (!nd->f)
		return;
	gw_list_for_each (pos, &nd->f->subs) {
		match_sub(gw_list_entry(pos, struct brk_sub, node_link), publisher, out);
	}
	gw_list_for_each (pos, &nd->f->shares) {
		match_share(gw_list_entry(pos, struct brk_share, link), out);
	}
}

static void match_walk(struct brk_tnode *nd, struct gw_slice topic, size_t i,
		       const struct brk_session *publisher, struct brk_matches *out, bool root)
{
	size_t j = i;
	struct brk_tnode *c, *plus = plus_of(nd), *hash = hash_of(nd);
	/* [MQTT-4.7.2-1] $-topics are not matched by a leading wildcard. */
	bool wild = !(root && topic.len && topic.p[0] == '$');

	if (hash && wild)
		match_node_subs(hash, publisher, out); /* "a/#" also matches "a" */
	while (j < topic.len && topic.p[j] != '/')
		j++;
	c = child_find(nd, topic.p + i, j - i);
	if (j >= topic.len) {
		if (c)
			match_node_subs(c, publisher, out);
		if (plus && wild)
			match_node_subs(plus, publisher, out);
		if (c && hash_of(c))
			match_node_subs(hash_of(c), publisher, out);
		if (plus && wild && hash_of(plus))
			match_node_subs(hash_of(plus), publisher, out);
		return;
	}
	if (c)
		match_walk(c, topic, j + 1, publisher, out, false);
	if (plus && wild)
		match_walk(plus, topic, j + 1, publisher, out, false);
}

void brk__tree_match(struct brk_tree *t, struct gw_slice topic, const struct brk_session *publisher,
		     struct brk_matches *out)
{
	out->n = 0;
	out->err = 0;
	match_walk(t->root, topic, 0, publisher, out, true);
}

/* -------------------------------------------------------------- retained */

static void retained_count(struct brk_tnode *nd, int delta)
{
	for (; nd; nd = nd->parent)
		nd->n_retained_below += (uint32_t)delta;
}

int brk__tree_retain(struct brk_tree *t, struct brk_msg *m)
{
	struct gw_slice topic = brk__msg_topic(m);
	struct brk_tnode *nd;

	if (m->payload_len == 0) {
		/* [MQTT-3.3.1-6] an empty retained payload clears the topic. */
		nd = node_walk(t, topic, false);
		if (!nd || !nd->retained)
			return 0;
		brk__msg_unref(nd->retained);
		nd->retained = NULL;
		retained_count(nd, -1);
		t->n_retained--;
		node_prune(t, nd);
		return 0;
	}
	nd = node_walk(t, topic, true);
	if (!nd)
		return -ENOMEM;
	if (nd->retained) {
		brk__msg_unref(nd->retained);
	} else {
		retained_count(nd, 1);
		t->n_retained++;
	}
	nd->retained = brk__msg_ref(m);
	return 0;
}

struct rwalk {
	void (*fn)(void *arg, struct brk_msg *m);
	void *arg;
};

static void retained_all(struct brk_tnode *nd, const struct rwalk *rw)
{
	uint32_t i;

	if (!nd->n_retained_below)
		return;
	if (nd->retained)
		rw->fn(rw->arg, nd->retained);
	for (i = 0; i < nd->n_buckets; i++) {
		struct brk_tnode *c;

		for (c = nd->buckets[i]; c; c = c->hnext)
			retained_all(c, rw);
	}
}

static void retained_walk(struct brk_tnode *nd, struct gw_slice f, size_t i, const struct rwalk *rw,
			  bool root)
{
	size_t j = i;
	uint32_t k;

	if (!nd->n_retained_below)
		return;
	while (j < f.len && f.p[j] != '/')
		j++;
	if (j - i == 1 && f.p[i] == '#') {
		/* "a/#" matches "a" too, and everything below. */
		if (!root && nd->retained)
			rw->fn(rw->arg, nd->retained);
		for (k = 0; k < nd->n_buckets; k++) {
			struct brk_tnode *c;

			for (c = nd->buckets[k]; c; c = c->hnext)
				if (!(root && c->len && c->word[0] == '$'))
					retained_all(c, rw);
		}
		return;
	}
	if (j - i == 1 && f.p[i] == '+') {
		for (k = 0; k < nd->n_buckets; k++) {
			struct brk_tnode *c;

			for (c = nd->buckets[k]; c; c = c->hnext) {
				if (root && c->len && c->word[0] == '$')
					continue;
				if (j >= f.len) {
					if (c->retained)
						rw->fn(rw->arg, c->retained);
				} else {
					retained_walk(c, f, j + 1, rw, false);
				}
			}
		}
		return;
	}
	{
		struct brk_tnode *c = child_find(nd, f.p + i, j - i);

		if (!c)
			return;
		if (j >= f.len) {
			if (c->retained)
				rw->fn(rw->arg, c->retained);
			return;
		}
		retained_walk(c, f, j + 1, rw, false);
	}
}

/*
 * The walk collects the matching messages (each referenced) before any is
 * handed on: an in-process subscriber may publish from its delivery callback,
 * and a publish that clears a retained message prunes tree nodes the walk
 * would still visit. Up to 64 matches take no allocation; past that the list
 * grows on the heap (a subscribe, not a per-message path), and when it
 * cannot, what was collected is still delivered.
 */
struct rcollect {
	struct brk_msg **v;
	size_t n, cap;
	struct brk_msg *inl[64];
};

static void collect_one(void *arg, struct brk_msg *m)
{
	struct rcollect *rc = arg;

	if (rc->n == rc->cap) {
		size_t cap = rc->cap * 2;
		struct brk_msg **v = gw_malloc(cap * sizeof(*v));

		if (!v)
			return;
		memcpy(v, rc->v, rc->n * sizeof(*v));
		if (rc->v != rc->inl)
			gw_free(rc->v);
		rc->v = v;
		rc->cap = cap;
	}
	rc->v[rc->n++] = brk__msg_ref(m);
}

void brk__tree_retained_foreach(struct brk_tree *t, struct gw_slice filter,
				void (*fn)(void *arg, struct brk_msg *m), void *arg)
{
	struct rcollect rc;
	struct rwalk rw = { collect_one, &rc };
	size_t i;

	rc.v = rc.inl;
	rc.n = 0;
	rc.cap = sizeof(rc.inl) / sizeof(rc.inl[0]);
	retained_walk(t->root, filter, 0, &rw, true);
	for (i = 0; i < rc.n; i++) {
		fn(arg, rc.v[i]);
		brk__msg_unref(rc.v[i]);
	}
	if (rc.v != rc.inl)
		gw_free(rc.v);
}
