/*
 * serial_json.c - the json parser of the serial adapter: JSON lines (rtl_433
 * and the like) through cJSON, RFC 6901 pointers, and the /pointer=value
 * match that picks one sensor out of a receiver's stream. cJSON builds its
 * tree in the line's arena (no allocator call once the arena is warm), or on
 * the heap when the line has none or cJSON's hooks are not the arena's.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/serial/serial_int.h"

void ser_line_fini(struct ser_line *l)
{
	bool in_arena = l->json && l->arena && gw_arena_owns(l->arena, l->json);

	if (l->json && !in_arena)
		cJSON_Delete(l->json);
	/* A failed parse may have left nodes in the arena too. */
	if (l->arena && l->json_done)
		gw_arena_reset(l->arena);
	l->json = NULL;
}

/* ------------------------------------------------------------------- json */

/* Does the escaped pointer token tok[0..n) name @key? (~0 is '~', ~1 is '/') */
static bool token_eq(const char *tok, size_t n, const char *key)
{
	size_t i = 0;

	while (i < n) {
		char c = tok[i++];

		if (c == '~') {
			if (i >= n)
				return false;
			c = tok[i] == '0' ? '~' : tok[i] == '1' ? '/' : 0;
			i++;
			if (!c)
				return false;
		}
		if (*key++ != c)
			return false;
	}
	return *key == '\0';
}

const void *ser_json_get(const void *root, const char *ptr)
{
	const cJSON *j = root;

	if (!j || !ptr)
		return NULL;
	while (*ptr) {
		const char *tok, *e;
		size_t n;

		if (*ptr != '/')
			return NULL;
		tok = ptr + 1;
		e = strchr(tok, '/');
		n = e ? (size_t)(e - tok) : strlen(tok);
		ptr = tok + n;
		if (cJSON_IsArray(j)) {
			size_t idx = 0, i;
			const cJSON *c;

			/* [RFC 6901 4]: digits, no leading zeros; "-" names no element. */
			if (!n || (n > 1 && tok[0] == '0') || n > 9)
				return NULL;
			for (i = 0; i < n; i++) {
				if (tok[i] < '0' || tok[i] > '9')
					return NULL;
				idx = idx * 10 + (size_t)(tok[i] - '0');
			}
			for (c = j->child; c && idx; c = c->next)
				idx--;
			j = c;
		} else if (cJSON_IsObject(j)) {
			const cJSON *c;

			for (c = j->child; c; c = c->next)
				if (c->string && token_eq(tok, n, c->string))
					break;
			j = c;
		} else {
			return NULL;
		}
		if (!j)
			return NULL;
	}
	return j;
}

int ser_jmatch_parse(char *s, struct ser_dev *d, const char **why)
{
	char *p = s;

	d->n_jmatch = 0;
	while (*p) {
		char *eq, *next;

		if (*p != '/') {
			*why = "match: json terms are /pointer=value, comma-separated";
			return -EINVAL;
		}
		if (d->n_jmatch >= SER_MAX_MATCH) {
			*why = "match: more than 8 terms";
			return -EINVAL;
		}
		next = strstr(p, ",/");
		if (next)
			*next = '\0';
		eq = strchr(p, '=');
		if (!eq) {
			*why = "match: a term has no '=' (/pointer=value)";
			return -EINVAL;
		}
		*eq = '\0';
		d->jmatch[d->n_jmatch].pointer = p;
		d->jmatch[d->n_jmatch].value = eq + 1;
		d->n_jmatch++;
		p = next ? next + 1 : eq + 1 + strlen(eq + 1);
	}
	return 0;
}

/* Does JSON value @j print as @want? Numbers compare by value, so "1234" matches 1234.0. */
static bool jvalue_eq(const cJSON *j, const char *want)
{
	char *end;
	double d;

	if (cJSON_IsString(j))
		return !strcmp(j->valuestring, want);
	if (cJSON_IsNumber(j)) {
		d = strtod(want, &end);
		return end != want && !*end && d == j->valuedouble;
	}
	if (cJSON_IsTrue(j))
		return !strcmp(want, "true");
	if (cJSON_IsFalse(j))
		return !strcmp(want, "false");
	if (cJSON_IsNull(j))
		return !strcmp(want, "null");
	return false;
}

static void json_result(const struct ser_point *pt, const cJSON *j, struct ser_result *r)
{
	int rc;

	if (cJSON_IsNumber(j)) {
		if (pt->type == AD_PT_STRING) {
			/* cJSON keeps no text of a number: print the shortest form back. */
			int n = 0, prec;

			for (prec = 1; prec <= 17; prec++) {
				n = snprintf(r->text, sizeof(r->text), "%.*g", prec,
					     j->valuedouble);
				if (strtod(r->text, NULL) == j->valuedouble)
					break;
			}
			r->value.type = AD_VAL_STRING;
			r->value.s.p = (const uint8_t *)r->text;
			r->value.s.len = n > 0 ? (size_t)n : 0;
			r->found = SER_OK;
			return;
		}
		rc = ser_convert_num(pt->type, pt->scale, pt->offset, j->valuedouble, &r->value);
	} else if (cJSON_IsBool(j)) {
		rc = pt->type == AD_PT_STRING
			     ? ser_convert_text(
				       pt->type, 1, 0,
				       (const uint8_t *)(cJSON_IsTrue(j) ? "true" : "false"),
				       cJSON_IsTrue(j) ? 4 : 5, &r->value)
			     : ser_convert_num(pt->type, pt->scale, pt->offset, cJSON_IsTrue(j),
					       &r->value);
	} else if (cJSON_IsString(j)) {
		rc = ser_convert_text(pt->type, pt->scale, pt->offset,
				      (const uint8_t *)j->valuestring, strlen(j->valuestring),
				      &r->value);
	} else {
		rc = -EINVAL; /* null, object, array */
	}
	r->found = rc ? SER_BAD : SER_OK;
}

int ser__parse_json(struct ser_dev *d, struct ser_line *l, struct ser_result *res)
{
	unsigned int i, found = 0;

	/* A line that does not start like JSON is another device's, not a bad one. */
	if (!l->len || (l->p[0] != '{' && l->p[0] != '['))
		return 0;
	if (!l->json_done) {
		l->json_done = true;
		if (l->arena)
			gw_arena_enter(l->arena);
		l->json = cJSON_ParseWithLength((const char *)l->p, l->len);
		if (l->arena)
			gw_arena_leave(l->arena);
	}
	if (!l->json)
		return -EBADMSG;
	for (i = 0; i < d->n_jmatch; i++) {
		const cJSON *j = ser_json_get(l->json, d->jmatch[i].pointer);

		if (!j || !jvalue_eq(j, d->jmatch[i].value))
			return 0;
	}
	for (i = 0; i < d->n_points; i++) {
		const cJSON *j = ser_json_get(l->json, d->points[i].json_pointer);

		if (!j) {
			res[i].found = SER_ABSENT;
			continue;
		}
		found++;
		json_result(&d->points[i], j, &res[i]);
	}
	return found || d->n_jmatch ? 1 : 0;
}
