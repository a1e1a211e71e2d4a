/*
 * acl.c - topic access control: the acl_file parser (a subset of
 * mosquitto.conf(5) acl_file syntax), the rules one client gets once its user
 * name and client id are known, and the checks SUBSCRIBE, PUBLISH and
 * delivery make against them.
 *
 * Pure: no file I/O, no logging, no clock. The caller reads the file
 * (gateway/config_broker.c, tests/sim/brokerd.c) and reports errors with its name.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"

/* ---------------------------------------------------------------- parsing */

static int rule_add(struct brk_acl *acl, const struct brk_acl_rule *r)
{
	if (acl->n == acl->cap) {
		unsigned int cap = acl->cap ? acl->cap * 2 : 16;
		struct brk_acl_rule *v = gw_realloc(acl->rules, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		acl->rules = v;
		acl->cap = cap;
	}
	acl->rules[acl->n++] = *r;
	return 0;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* The next blank-separated word of [*s, end): NUL-terminates it in place. */
static char *word(char **s, char *end)
{
	char *w = *s, *p;

	while (w < end && is_space(*w))
		w++;
	if (w == end)
		return NULL;
	for (p = w; p < end && !is_space(*p); p++)
		;
	*s = p < end ? p + 1 : p;
	*p = '\0';
	return w;
}

static const struct {
	const char *name;
	uint8_t access;
} access_words[] = {
	{ "read", BRK_ACL_READ },
	{ "write", BRK_ACL_WRITE },
	{ "readwrite", BRK_ACL_READ | BRK_ACL_WRITE },
	{ "deny", BRK_ACL_DENY },
};

static int access_word(const char *w)
{
	size_t i;

	for (i = 0; i < GW_ARRAY_SIZE(access_words); i++)
		if (!strcmp(w, access_words[i].name))
			return access_words[i].access;
	return -1;
}

/*
 * One "topic ..." or "pattern ..." line after its keyword, [s, end) with
 * surrounding blanks already trimmed. A line with an access word takes the
 * rest of the line as the topic (blanks included, as Mosquitto does); one
 * without is a single word, so "topic reed a/b" is a bad access word, not a
 * topic with a blank in it.
 */
static int topic_line(struct brk_acl *acl, char *s, char *end, const char *user, bool pattern,
		      char *err, size_t errlen)
{
	struct brk_acl_rule r;
	char *first = s, *rest;
	int acc;

	memset(&r, 0, sizeof(r));
	for (rest = s; rest < end && !is_space(*rest); rest++)
		;
	if (rest == end) {
		if (access_word(first) >= 0) {
			snprintf(err, errlen, "'%s': expected a topic after the access word",
				 first);
			return -EINVAL;
		}
		acc = BRK_ACL_READ | BRK_ACL_WRITE;
		r.filter = first;
	} else {
		*rest++ = '\0';
		while (rest < end && is_space(*rest))
			rest++;
		acc = access_word(first);
		if (acc < 0) {
			snprintf(
				err, errlen,
				"'%s': unknown access; expected %s [read|write|readwrite|deny] TOPIC",
				first, pattern ? "pattern" : "topic");
			return -EINVAL;
		}
		r.filter = rest;
	}
	r.len = (uint32_t)(end - r.filter);
	if (!brk__topic_filter_valid((struct gw_slice){ (const uint8_t *)r.filter, r.len })) {
		snprintf(err, errlen, "'%s': invalid topic filter", r.filter);
		return -EINVAL;
	}
	r.access = (uint8_t)acc;
	r.pattern = pattern;
	r.user = pattern ? NULL : user;
	if (pattern) {
		r.pat_c = strstr(r.filter, "%c") != NULL;
		r.pat_u = strstr(r.filter, "%u") != NULL;
		acl->pat_c |= r.pat_c;
		acl->pat_u |= r.pat_u;
	}
	return rule_add(acl, &r);
}

int brk_acl_parse(const char *text, size_t len, struct brk_acl **out, unsigned int *line, char *err,
		  size_t errlen)
{
	struct brk_acl *acl;
	const char *user = NULL;
	char *p, *end;
	int rc = 0;

	*out = NULL;
	*line = 0;
	if (errlen)
		err[0] = '\0';
	acl = gw_calloc(1, sizeof(*acl));
	if (!acl)
		return -ENOMEM;
	/* One copy of the text: the rules' strings are NUL-terminated in place. */
	acl->text = gw_malloc(len + 1);
	if (!acl->text) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(acl->text, text, len);
	acl->text[len] = '\0';
	for (p = acl->text, end = p + len; p < end && !rc;) {
		char *eol = memchr(p, '\n', (size_t)(end - p)), *s, *e, *kw;

		if (!eol)
			eol = end;
		++*line;
		s = p;
		e = eol;
		p = eol < end ? eol + 1 : end;
		if (memchr(s, '\0', (size_t)(e - s))) {
			snprintf(err, errlen, "NUL byte in the line");
			rc = -EINVAL;
			break;
		}
		if (e - s > BRK_ACL_MAX_LINE) {
			snprintf(err, errlen, "line too long (at most %d characters)",
				 BRK_ACL_MAX_LINE);
			rc = -EINVAL;
			break;
		}
		while (e > s && (is_space(e[-1]) || e[-1] == '\r'))
			e--;
		*e = '\0';
		while (s < e && is_space(*s))
			s++;
		if (s == e || *s == '#')
			continue;
		kw = word(&s, e);
		while (s < e && is_space(*s))
			s++;
		if (!strcmp(kw, "topic") || !strcmp(kw, "pattern")) {
			if (s == e) {
				snprintf(err, errlen,
					 "expected %s [read|write|readwrite|deny] TOPIC", kw);
				rc = -EINVAL;
				break;
			}
			rc = topic_line(acl, s, e, user, kw[0] == 'p', err, errlen);
		} else if (!strcmp(kw, "user")) {
			if (s == e) {
				snprintf(err, errlen, "expected user USERNAME");
				rc = -EINVAL;
				break;
			}
			user = s; /* the rest of the line: Mosquitto allows blanks in names */
		} else {
			snprintf(err, errlen,
				 "'%s': unknown keyword; expected topic, user or pattern", kw);
			rc = -EINVAL;
		}
	}
out:
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		brk_acl_free(acl);
		return rc;
	}
	*line = 0;
	*out = acl;
	return 0;
}

void brk_acl_free(struct brk_acl *acl)
{
	if (!acl)
		return;
	gw_free(acl->rules);
	gw_free(acl->text);
	gw_free(acl);
}

/* --------------------------------------------------------------- matching */

/* The end of the level that starts at @i of @s (its length or the next '/'). */
static size_t level_end(const uint8_t *s, size_t len, size_t i)
{
	while (i < len && s[i] != '/')
		i++;
	return i;
}

bool brk__acl_match(struct gw_slice f, struct gw_slice t)
{
	size_t fi = 0, ti = 0;

	/* [MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics. */
	if (t.len && t.p[0] == '$' && f.len && (f.p[0] == '+' || f.p[0] == '#'))
		return false;
	for (;;) {
		size_t fe, te;

		if (fi < f.len && f.p[fi] == '#')
			return true;
		fe = level_end(f.p, f.len, fi);
		te = level_end(t.p, t.len, ti);
		if (!(fe - fi == 1 && f.p[fi] == '+') &&
		    (fe - fi != te - ti || memcmp(f.p + fi, t.p + ti, fe - fi)))
			return false;
		if (fe == f.len && te == t.len)
			return true;
		if (te == t.len) /* [MQTT-4.7.1-2] "a/#" matches "a" too */
			return f.len - fe == 2 && f.p[fe + 1] == '#';
		if (fe == f.len)
			return false;
		fi = fe + 1;
		ti = te + 1;
	}
}

bool brk__acl_covers(struct gw_slice r, struct gw_slice f)
{
	size_t ri = 0, fi = 0;

	/* A wildcard rule level matches no $ topic; a filter starting "$x" matches only those. */
	if (f.len && f.p[0] == '$' && r.len && (r.p[0] == '+' || r.p[0] == '#'))
		return false;
	for (;;) {
		size_t re, fe;

		if (ri < r.len && r.p[ri] == '#')
			return true;
		if (fi < f.len && f.p[fi] == '#')
			return false; /* the rule level is narrower than "everything below" */
		re = level_end(r.p, r.len, ri);
		fe = level_end(f.p, f.len, fi);
		/* A "+" rule level takes a literal or "+" level; a literal only itself. */
		if (!(re - ri == 1 && r.p[ri] == '+') &&
		    (re - ri != fe - fi || memcmp(r.p + ri, f.p + fi, re - ri)))
			return false;
		if (re == r.len && fe == f.len)
			return true;
		if (fe ==
		    f.len) /* the filter's topics end here: only a trailing "/#" still matches */
			return r.len - re == 2 && r.p[re + 1] == '#';
		if (re == r.len)
			return false;
		ri = re + 1;
		fi = fe + 1;
	}
}

/* ------------------------------------------------------- one client's rules */

static bool has_wild(struct gw_slice s)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (s.p[i] == '+' || s.p[i] == '#')
			return true;
	return false;
}

/* The size of @r with %c and %u replaced (the caller checked %u has a user). */
static size_t expand(const struct brk_acl_rule *r, struct gw_slice id, struct gw_slice user,
		     char *out)
{
	size_t i, n = 0;

	for (i = 0; i < r->len; i++) {
		const struct gw_slice *v = NULL;

		if (r->filter[i] == '%' && i + 1 < r->len) {
			if (r->filter[i + 1] == 'c')
				v = &id;
			else if (r->filter[i + 1] == 'u')
				v = &user;
		}
		if (v) {
			if (out)
				memcpy(out + n, v->p, v->len);
			n += v->len;
			i++;
		} else {
			if (out)
				out[n] = r->filter[i];
			n++;
		}
	}
	return n;
}

static const char *copy_user(char *dst, struct gw_slice user)
{
	memcpy(dst, user.p, user.len);
	dst[user.len] = '\0';
	return dst;
}

static bool rule_applies(const struct brk_acl_rule *r, struct gw_slice id,
			 const struct gw_slice *user)
{
	/* A publisher without a client id (MQTT-SN QoS -1) has no pattern rules. */
	if (r->pattern)
		return id.p && (!r->pat_u || user);
	if (!r->user)
		return true;
	return user && gw_slice_eq_cstr(*user, r->user);
}

int brk__acl_view_new(const struct brk_acl *acl, struct gw_slice client_id,
		      const struct gw_slice *user, struct brk_acl_view **out)
{
	struct gw_slice u = user ? *user : (struct gw_slice){ (const uint8_t *)"", 0 };
	struct brk_acl_view *v;
	size_t size, strs = user ? user->len + 1 : 0;
	unsigned int i, n = 0;
	char *sp;

	*out = NULL;
	/*
	 * A client id or user name with a wildcard in it would widen the
	 * patterns it is put into: such a client gets no rule at all, so it
	 * is refused everything (Mosquitto denies it too).
	 */
	if ((acl->pat_c && has_wild(client_id)) || (acl->pat_u && user && has_wild(*user))) {
		v = gw_calloc(1, sizeof(*v) + strs);
		if (!v)
			return -ENOMEM;
		v->user = user ? copy_user((char *)&v->e[0], *user) : NULL;
		*out = v;
		return 0;
	}
	for (i = 0; i < acl->n; i++) {
		const struct brk_acl_rule *r = &acl->rules[i];

		if (!rule_applies(r, client_id, user))
			continue;
		n++;
		if (r->pattern)
			strs += expand(r, client_id, u, NULL) + 1;
	}
	size = sizeof(*v) + n * sizeof(v->e[0]) + strs;
	v = gw_calloc(1, size);
	if (!v)
		return -ENOMEM;
	sp = (char *)&v->e[n];
	if (user) {
		/* Kept so that the rules can be rebuilt when the ACL is reloaded. */
		v->user = copy_user(sp, *user);
		sp += user->len + 1;
	}
	for (i = 0; i < acl->n; i++) {
		const struct brk_acl_rule *r = &acl->rules[i];
		struct brk_acl_ent *e;

		if (!rule_applies(r, client_id, user))
			continue;
		e = &v->e[v->n++];
		e->access = r->access;
		if (r->access & BRK_ACL_DENY)
			v->has_deny = true;
		if (r->pattern) {
			e->len = expand(r, client_id, u, sp);
			e->filter = sp;
			sp[e->len] = '\0';
			sp += e->len + 1;
		} else {
			/* Topic rules point into the ACL, which outlives the broker's clients. */
			e->filter = r->filter;
			e->len = r->len;
		}
	}
	*out = v;
	return 0;
}

static struct gw_slice ent_slice(const struct brk_acl_ent *e)
{
	return (struct gw_slice){ (const uint8_t *)e->filter, e->len };
}

bool brk__acl_allowed(const struct brk_acl_view *v, struct gw_slice topic, unsigned int want)
{
	bool granted = false;
	unsigned int i;

	for (i = 0; i < v->n; i++) {
		const struct brk_acl_ent *e = &v->e[i];

		if (!(e->access & (want | BRK_ACL_DENY)) || (granted && !v->has_deny))
			continue;
		if (!brk__acl_match(ent_slice(e), topic))
			continue;
		if (e->access & BRK_ACL_DENY)
			return false;
		granted = true;
	}
	return granted;
}

bool brk__acl_sub_allowed(const struct brk_acl_view *v, struct gw_slice filter)
{
	bool granted = false;
	struct gw_slice g, f;
	unsigned int i;
	bool bad;

	/* A shared subscription is checked on its filter, without "$share/group/". */
	if (brk__share_split(filter, &g, &f, &bad))
		filter = f;
	for (i = 0; i < v->n; i++) {
		const struct brk_acl_ent *e = &v->e[i];

		if (!(e->access & (BRK_ACL_READ | BRK_ACL_DENY)) || (granted && !v->has_deny))
			continue;
		if (!brk__acl_covers(ent_slice(e), filter))
			continue;
		if (e->access & BRK_ACL_DENY)
			return false;
		granted = true;
	}
	return granted;
}
