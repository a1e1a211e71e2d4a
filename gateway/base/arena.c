/*
 * arena.c - the bump arena behind cJSON's hooks (arena.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "arena.h"
#include "base.h"

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif

#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define REDZONE 16 /* poisoned bytes after each allocation: overruns are reported */
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define REDZONE 0
#endif

/*
 * What malloc() guarantees, and what any type needs: 16 bytes on x86-64, 8 on
 * 32-bit ARM (where malloc() gives 8, so a 16 here could not be kept anyway).
 */
#define ALIGN _Alignof(max_align_t)

struct gw_arena_chunk {
	struct gw_arena_chunk *next;
	size_t size; /* bytes of data */
	size_t used;
	size_t pad; /* keeps the data ALIGN-aligned */
};

/* The data follows the header in one malloc()ed block: the header keeps it aligned. */
_Static_assert(sizeof(struct gw_arena_chunk) % ALIGN == 0, "arena chunk header breaks alignment");

/*
 * The arena the hooks serve on this thread. The one mutable global of the
 * module, and a thread-local one: cJSON's hooks take no context, and the
 * thread pool and the Modbus workers must never see the loop's arena.
 */
static _Thread_local struct gw_arena *cur;

static char *data_of(const struct gw_arena_chunk *c)
{
	return (char *)(c + 1);
}

void gw_arena_init(struct gw_arena *a, size_t warm, size_t cap)
{
	a->chunks = NULL;
	a->warm = warm;
	a->cap = cap < warm ? warm : cap;
	a->total = 0;
	a->want = 0;
	a->hit_cap = false;
	a->grows = 0;
	a->refused = 0;
	a->prev = NULL;
}

static void free_chunks(struct gw_arena *a)
{
	struct gw_arena_chunk *c, *next;

	for (c = a->chunks; c; c = next) {
		next = c->next;
		UNPOISON(data_of(c), c->size);
		gw_free(c);
	}
	a->chunks = NULL;
	a->total = 0;
}

void gw_arena_fini(struct gw_arena *a)
{
	free_chunks(a);
	a->want = 0;
}

/*
 * A new first chunk with room for @need bytes: the folded size after a
 * reset, else the warm size for the first one, else as much as the arena
 * holds already (doubling), never past the cap. NULL at the cap (counted)
 * or when gw_malloc() refuses.
 */
static struct gw_arena_chunk *grow(struct gw_arena *a, size_t need)
{
	struct gw_arena_chunk *c;
	size_t size;

	if (!a->chunks)
		size = a->want ? a->want : a->warm;
	else
		size = a->total;
	if (size < need)
		size = need;
	if (size > a->cap - a->total)
		size = a->cap - a->total;
	if (size < need) {
		a->hit_cap = true;
		a->refused++;
		return NULL;
	}
	c = gw_malloc(sizeof(*c) + size);
	if (!c)
		return NULL;
	c->next = a->chunks;
	c->size = size;
	c->used = 0;
	POISON(data_of(c), size);
	a->chunks = c;
	a->total += size;
	a->grows++;
	return c;
}

void *gw_arena_alloc(struct gw_arena *a, size_t n)
{
	struct gw_arena_chunk *c = a->chunks;
	size_t need;
	char *p;

	if (n > a->cap) {
		a->hit_cap = true;
		a->refused++;
		return NULL;
	}
	/* Every allocation is distinct, even of 0 bytes, and keeps the next aligned. */
	need = ((n ? n : 1) + REDZONE + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	if (!c || c->size - c->used < need) {
		c = grow(a, need);
		if (!c)
			return NULL;
	}
	p = data_of(c) + c->used;
	c->used += need;
	UNPOISON(p, n);
	return p;
}

void gw_arena_reset(struct gw_arena *a)
{
	struct gw_arena_chunk *c = a->chunks;
	size_t want;

	if (!c)
		return;
	want = a->hit_cap ? a->cap : a->total;
	a->hit_cap = false;
	if (!c->next && c->size == want) {
		c->used = 0;
		POISON(data_of(c), c->size);
		return;
	}
	/*
	 * Fold into one chunk that holds what this message needed, now: the
	 * message that grew the arena pays for it, not the next one. If
	 * gw_malloc() refuses, the next allocation tries again.
	 */
	free_chunks(a);
	a->want = want;
	(void)grow(a, 0);
}

bool gw_arena_owns(const struct gw_arena *a, const void *p)
{
	const struct gw_arena_chunk *c;
	uintptr_t u = (uintptr_t)p;

	for (c = a->chunks; c; c = c->next)
		if (u >= (uintptr_t)data_of(c) && u < (uintptr_t)data_of(c) + c->size)
			return true;
	return false;
}

void gw_arena_enter(struct gw_arena *a)
{
	a->prev = cur;
	cur = a;
}

void gw_arena_leave(struct gw_arena *a)
{
	if (cur == a) {
		cur = a->prev;
		a->prev = NULL;
	}
}

void *gw_arena_hook_malloc(size_t n)
{
	struct gw_arena *a = cur;

	return a ? gw_arena_alloc(a, n) : malloc(n);
}

void gw_arena_hook_free(void *p)
{
	const struct gw_arena *a;

	if (!p)
		return;
	for (a = cur; a; a = a->prev)
		if (gw_arena_owns(a, p))
			return;
	free(p);
}
