/*
 * test_topic.c - the subscription tree and the retained messages.
 */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"

#define S(x) gw_slice_cstr(x)

struct fix {
	struct brk_tree t;
	struct brk_matches m;
	struct brk_session s[4];
	struct brk_sub *subs[32];
	unsigned int n_subs;
};

static int setup(void **state)
{
	struct fix *f = gw_calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(brk__tree_init(&f->t), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	unsigned int i;

	for (i = 0; i < f->n_subs; i++) {
		brk__tree_unsub(&f->t, f->subs[i]);
		gw_free(f->subs[i]);
	}
	brk__tree_fini(&f->t);
	gw_free(f->m.v);
	gw_free(f);
	assert_int_equal(gw_mem_used(), 0);
	return 0;
}

static struct brk_sub *sub(struct fix *f, unsigned int si, const char *filter, uint8_t qos,
			   uint8_t opts, uint32_t id)
{
	size_t n = strlen(filter);
	struct brk_sub *s = gw_calloc(1, sizeof(*s) + n + 1);

	assert_non_null(s);
	memcpy(s->filter, filter, n);
	s->filter_len = (uint16_t)n;
	s->s = &f->s[si];
	s->qos = qos;
	s->opts = opts;
	s->sub_id = id;
	assert_int_equal(brk__tree_sub(&f->t, s), 0);
	f->subs[f->n_subs++] = s;
	return s;
}

static unsigned int match(struct fix *f, const char *topic, const struct brk_session *from)
{
	static uint64_t gen;

	f->m.gen = ++gen;
	brk__tree_match(&f->t, S(topic), from, &f->m);
	return f->m.n;
}

static void test_validation(void **state)
{
	(void)state;
	assert_true(brk__topic_name_valid(S("a/b")));
	assert_true(brk__topic_name_valid(S("/")));
	assert_false(brk__topic_name_valid(S("")));
	assert_false(brk__topic_name_valid(S("a/+")));
	assert_false(brk__topic_name_valid(S("a/#")));
	assert_true(brk__topic_filter_valid(S("#")));
	assert_true(brk__topic_filter_valid(S("+/+/#")));
	assert_true(brk__topic_filter_valid(S("a//b")));
	assert_false(brk__topic_filter_valid(S("a/#/b")));
	assert_false(brk__topic_filter_valid(S("a+")));
	assert_false(brk__topic_filter_valid(S("a/b#")));
	assert_false(brk__topic_filter_valid(S("")));
}

static void test_share_split(void **state)
{
	struct gw_slice g, r;
	bool bad;

	(void)state;
	assert_true(brk__share_split(S("$share/grp/a/+"), &g, &r, &bad));
	assert_true(gw_slice_eq_cstr(g, "grp"));
	assert_true(gw_slice_eq_cstr(r, "a/+"));
	assert_false(brk__share_split(S("$share//a"), &g, &r, &bad));
	assert_true(bad);
	assert_false(brk__share_split(S("$share/grp"), &g, &r, &bad));
	assert_true(bad);
	assert_false(brk__share_split(S("$share/g+/a"), &g, &r, &bad));
	assert_true(bad);
	assert_false(brk__share_split(S("a/b"), &g, &r, &bad));
	assert_false(bad);
}

static void test_wildcards(void **state)
{
	struct fix *f = *state;

	sub(f, 0, "a/b", 0, 0, 0);
	sub(f, 1, "a/+", 0, 0, 0);
	sub(f, 2, "a/#", 0, 0, 0);
	sub(f, 3, "#", 0, 0, 0);
	assert_int_equal(match(f, "a/b", NULL), 4);
	assert_int_equal(match(f, "a", NULL), 2); /* a/# and # */
	assert_int_equal(match(f, "a/c", NULL), 3);
	assert_int_equal(match(f, "a/b/c", NULL), 2);
	assert_int_equal(match(f, "b", NULL), 1);
	/* [MQTT-4.7.2-1] */
	assert_int_equal(match(f, "$SYS/x", NULL), 0);
}

static void test_dollar_explicit(void **state)
{
	struct fix *f = *state;

	sub(f, 0, "$SYS/#", 0, 0, 0);
	sub(f, 1, "+/x", 0, 0, 0);
	assert_int_equal(match(f, "$SYS/x", NULL), 1);
	assert_ptr_equal(f->m.v[0].s, &f->s[0]);
}

static void test_overlap_one_copy(void **state)
{
	struct fix *f = *state;

	sub(f, 0, "o/+", 0, 0, 5);
	sub(f, 0, "o/#", 2, BRK_SUB_RAP, 6);
	sub(f, 1, "o/x", 1, 0, 0);
	assert_int_equal(match(f, "o/x", NULL), 2);
	assert_ptr_equal(f->m.v[0].s, &f->s[0]);
	assert_int_equal(f->m.v[0].qos, 2);
	assert_true(f->m.v[0].rap);
	assert_int_equal(f->m.v[0].n_ids, 2);
	assert_int_equal(f->m.v[1].qos, 1);
}

static void test_no_local(void **state)
{
	struct fix *f = *state;

	sub(f, 0, "n", 0, BRK_SUB_NO_LOCAL, 0);
	sub(f, 1, "n", 0, 0, 0);
	assert_int_equal(match(f, "n", &f->s[0]), 1);
	assert_ptr_equal(f->m.v[0].s, &f->s[1]);
	assert_int_equal(match(f, "n", &f->s[1]), 2);
}

static void test_shared_round_robin(void **state)
{
	struct fix *f = *state;
	unsigned int count[3] = { 0 }, i;
	int fake_conn;

	for (i = 0; i < 3; i++)
		f->s[i].conn = (struct brk_conn *)&fake_conn; /* online */
	sub(f, 0, "$share/g/j/+", 1, 0, 0);
	sub(f, 1, "$share/g/j/+", 1, 0, 0);
	sub(f, 2, "$share/g/j/+", 1, 0, 0);
	for (i = 0; i < 30; i++) {
		assert_int_equal(match(f, "j/1", NULL), 1);
		assert_true(f->m.v[0].shared);
		count[f->m.v[0].s - f->s]++;
	}
	assert_int_equal(count[0], 10);
	assert_int_equal(count[1], 10);
	assert_int_equal(count[2], 10);
	/* An offline member stops receiving while others are online. */
	f->s[1].conn = NULL;
	memset(count, 0, sizeof(count));
	for (i = 0; i < 10; i++) {
		match(f, "j/1", NULL);
		count[f->m.v[0].s - f->s]++;
	}
	assert_int_equal(count[1], 0);
	assert_int_equal(count[0] + count[2], 10);
	/* Removing a member keeps the group working. */
	brk__tree_unsub(&f->t, f->subs[0]);
	assert_int_equal(match(f, "j/1", NULL), 1);
	assert_ptr_equal(f->m.v[0].s, &f->s[2]);
	for (i = 0; i < 3; i++)
		f->s[i].conn = NULL;
}

static void test_unsub_prunes(void **state)
{
	struct fix *f = *state;
	struct brk_sub *a = sub(f, 0, "p/q/r", 0, 0, 0);

	assert_int_equal(match(f, "p/q/r", NULL), 1);
	brk__tree_unsub(&f->t, a);
	assert_int_equal(match(f, "p/q/r", NULL), 0);
	assert_int_equal(f->t.root->n_children, 0);
}

static void test_many_siblings(void **state)
{
	struct fix *f = *state;
	struct brk_sub *v[200];
	char name[32];
	unsigned int i;

	/* Enough children to grow the hash several times. */
	for (i = 0; i < 200; i++) {
		size_t n;

		snprintf(name, sizeof(name), "dev/%u/t", i);
		n = strlen(name);
		v[i] = gw_calloc(1, sizeof(*v[i]) + n + 1);
		memcpy(v[i]->filter, name, n);
		v[i]->filter_len = (uint16_t)n;
		v[i]->s = &f->s[i % 4];
		assert_int_equal(brk__tree_sub(&f->t, v[i]), 0);
	}
	assert_int_equal(match(f, "dev/137/t", NULL), 1);
	assert_ptr_equal(f->m.v[0].s, &f->s[137 % 4]);
	for (i = 0; i < 200; i++) {
		brk__tree_unsub(&f->t, v[i]);
		gw_free(v[i]);
	}
	assert_int_equal(f->t.n_subs, 0);
}

struct collect {
	char topics[8][32];
	unsigned int n;
};

static void collect_fn(void *arg, struct brk_msg *m)
{
	struct collect *c = arg;

	if (c->n < 8)
		snprintf(c->topics[c->n++], 32, "%s", m->topic);
}

static void retain(struct fix *f, const char *topic, const char *payload)
{
	struct brk_pub pub = { .topic = S(topic), .payload = S(payload), .retain = true };
	struct brk_msg *m = brk__msg_new(&pub, 0);

	assert_non_null(m);
	assert_int_equal(brk__tree_retain(&f->t, m), 0);
	brk__msg_unref(m);
}

static unsigned int retained(struct fix *f, const char *filter)
{
	struct collect c = { .n = 0 };

	brk__tree_retained_foreach(&f->t, S(filter), collect_fn, &c);
	return c.n;
}

static void test_retained(void **state)
{
	struct fix *f = *state;

	retain(f, "r/a", "1");
	retain(f, "r/b", "2");
	retain(f, "r/a", "3"); /* replace */
	retain(f, "r/x/y", "4");
	retain(f, "$SYS/v", "5");
	assert_int_equal(f->t.n_retained, 4);
	assert_int_equal(retained(f, "r/a"), 1);
	assert_int_equal(retained(f, "r/+"), 2);
	assert_int_equal(retained(f, "r/#"), 3);
	assert_int_equal(retained(f, "#"), 3); /* not $SYS */
	assert_int_equal(retained(f, "+/+"), 2);
	assert_int_equal(retained(f, "$SYS/#"), 1);
	assert_int_equal(retained(f, "r/x/#"), 1);
	retain(f, "r/a", ""); /* clear */
	assert_int_equal(retained(f, "r/+"), 1);
	assert_int_equal(f->t.n_retained, 3);
	retain(f, "r/none", ""); /* clearing nothing is fine */
	assert_int_equal(f->t.n_retained, 3);
}

/*
 * A node's subscription part (+ and # children, subscriptions, share
 * groups) exists only while it holds something: nodes of topics that are
 * only published to, or whose subscriptions are gone, have none.
 */
static void test_filters_lazy(void **state)
{
	struct fix *f = *state;
	struct brk_tnode *a;
	struct brk_sub *s1, *s2, *s3;

	retain(f, "r/a", "1");
	assert_null(f->t.root->f);
	s1 = sub(f, 0, "r/+", 0, 0, 0);
	s2 = sub(f, 1, "r/a", 0, 0, 0);
	s3 = sub(f, 2, "$share/g/r/a/#", 0, 0, 0);
	a = s2->node;
	assert_non_null(a->f);	       /* s2 and the # child */
	assert_non_null(a->parent->f); /* the + child of r */
	assert_non_null(s1->node->f);
	assert_null(s1->node->f->hash); /* r/+ has a subscription, no # child */
	assert_int_equal(match(f, "r/a", NULL), 3);
	brk__tree_unsub(&f->t, s3);
	assert_null(a->f->hash); /* r/a/# pruned */
	brk__tree_unsub(&f->t, s2);
	assert_null(a->f); /* nothing left: freed */
	assert_non_null(a->retained);
	brk__tree_unsub(&f->t, s1);
	assert_null(a->parent->f); /* r's + child pruned, its part freed */
	assert_int_equal(match(f, "r/a", NULL), 0);
	assert_int_equal(retained(f, "r/+"), 1);
	retain(f, "r/a", ""); /* the last reason for r/a: pruned up to the root */
	assert_int_equal(f->t.root->n_children, 0);
	assert_null(f->t.root->f);
	/* The fixture unsubscribes again at teardown: no-ops now. */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_share_split),
		cmocka_unit_test_setup_teardown(test_wildcards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dollar_explicit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_one_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_round_robin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsub_prunes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_siblings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters_lazy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
