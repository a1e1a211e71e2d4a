/*
 * coap_json.c - JSON payloads of CoAP devices through cJSON: RFC 6901
 * pointers into application/json documents and records of SenML JSON packs
 * (RFC 8428). cJSON builds its tree in the caller's arena (no allocator
 * call once the arena is warm; gateway/base/arena.h).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "adapters/coap/coap_int.h"

void *ad_coap_json_parse(struct gw_arena *arena, const uint8_t *p, size_t n)
{
	void *doc;

	if (arena)
		gw_arena_enter(arena);
	doc = cJSON_ParseWithLength((const char *)p, n);
	if (arena)
		gw_arena_leave(arena);
	return doc;
}

void ad_coap_json_free(struct gw_arena *arena, void *doc)
{
	/* On the heap when cJSON's hooks are not the arena's (cJSON_InitHooks(NULL)). */
	if (doc && !(arena && gw_arena_owns(arena, doc)))
		cJSON_Delete(doc);
	if (arena)
		gw_arena_reset(arena);
}

/* Does the escaped pointer token tok[0..n) name @key? (~0 is '~', ~1 is '/') [RFC 6901 4] */
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

/* An array index token: "0" or digits without a leading zero [RFC 6901 4]. */
static int token_index(const char *tok, size_t n)
{
	int v = 0;
	size_t i;

	if (n == 0 || n > 6 || (n > 1 && tok[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return -1;
		v = v * 10 + (tok[i] - '0');
	}
	return v;
}

static const cJSON *json_at(const cJSON *j, const char *ptr)
{
	while (j && *ptr) {
		const char *tok;
		size_t n;

		if (*ptr != '/')
			return NULL;
		tok = ptr + 1;
		n = strcspn(tok, "/");
		ptr = tok + n;
		if (cJSON_IsArray(j)) {
			int idx = token_index(tok, n);

			j = idx < 0 ? NULL : cJSON_GetArrayItem(j, idx);
		} else if (cJSON_IsObject(j)) {
			const cJSON *c;

			for (c = j->child; c; c = c->next)
				if (c->string && token_eq(tok, n, c->string))
					break;
			j = c;
		} else {
			j = NULL;
		}
	}
	return j;
}

/* A scalar JSON value as a raw value. */
static int scalar(const cJSON *j, struct ad_coap_raw *out)
{
	memset(out, 0, sizeof(*out));
	if (cJSON_IsBool(j)) {
		out->kind = AD_COAP_RAW_BOOL;
		out->b = cJSON_IsTrue(j);
		return 0;
	}
	if (cJSON_IsNumber(j)) {
		out->kind = AD_COAP_RAW_NUM;
		out->num = j->valuedouble;
		if (isfinite(out->num) && out->num == floor(out->num) &&
		    fabs(out->num) < 9007199254740992.0) {
			out->is_int = true;
			out->i = (int64_t)out->num;
		}
		return 0;
	}
	if (cJSON_IsString(j) && j->valuestring) {
		size_t n = strlen(j->valuestring);

		if (n > AD_COAP_MAX_TEXT)
			return -EBADMSG;
		out->kind = AD_COAP_RAW_STR;
		out->s = (struct gw_slice){ (const uint8_t *)j->valuestring, n };
		return 0;
	}
	if (cJSON_IsNull(j))
		return -ENOENT;
	return -EBADMSG;
}

int ad_coap_json_get(const void *doc, const char *pointer, struct ad_coap_raw *out)
{
	const cJSON *j = json_at(doc, pointer ? pointer : "");

	if (!j)
		return -ENOENT;
	return scalar(j, out);
}

/*
 * SenML JSON [RFC 8428 4, 5]: an array of records; bn (base name) applies to
 * the records after it; a record's name is bn + n; v, vb, vs, vd hold values.
 */
int ad_coap_senml_get(const void *doc, const char *name, struct ad_coap_raw *out)
{
	const cJSON *pack = doc, *rec;
	const char *bn = "";

	if (!cJSON_IsArray(pack))
		return -EBADMSG;
	for (rec = pack->child; rec; rec = rec->next) {
		const cJSON *b, *n, *v;
		const char *nm;
		size_t bl;

		if (!cJSON_IsObject(rec))
			return -EBADMSG;
		b = cJSON_GetObjectItemCaseSensitive(rec, "bn");
		if (cJSON_IsString(b) && b->valuestring)
			bn = b->valuestring;
		n = cJSON_GetObjectItemCaseSensitive(rec, "n");
		nm = cJSON_IsString(n) && n->valuestring ? n->valuestring : "";
		v = cJSON_GetObjectItemCaseSensitive(rec, "v");
		if (!v)
			v = cJSON_GetObjectItemCaseSensitive(rec, "vb");
		if (!v)
			v = cJSON_GetObjectItemCaseSensitive(rec, "vs");
		if (!v)
			continue; /* a record of base fields only, or sums / data */
		if (name && *name) {
			bl = strlen(bn);
			if (strncmp(name, bn, bl) || strcmp(name + bl, nm))
				continue;
		}
		return scalar(v, out);
	}
	return -ENOENT;
}
