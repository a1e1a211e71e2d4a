/*
 * arena.h - a bump arena for a library that allocates through hooks (cJSON),
 * so that a parse on a hot path costs no allocator call once the arena is
 * warm.
 *
 * An arena is a chain of chunks taken from gw_malloc(). gw_arena_alloc()
 * bumps a pointer; nothing is freed one by one: gw_arena_reset() drops every
 * allocation at once. A message that needs more than the chunk has grows the
 * chain (an allocator call), and the next reset folds the chain into one
 * chunk of that size, so the same message costs nothing the next time. No
 * arena holds more than its cap: past it gw_arena_alloc() returns NULL
 * (the library then fails the parse cleanly), and after a message that hit
 * the cap the arena keeps one chunk of the cap, so a message past the cap
 * costs no allocator call either.
 *
 * The hooks: gw_arena_hook_malloc() / gw_arena_hook_free() have the shape of
 * cJSON_Hooks and are installed once at start (gateway/main.c), before any
 * thread exists. They serve from the arena current on the calling thread
 * (thread-local: gw_arena_enter() .. gw_arena_leave(), which nest) and fall
 * through to malloc() / free() when none is, so every other cJSON user (on
 * any thread) keeps the plain heap. free() of a pointer inside an entered
 * arena is a no-op. A tree built inside an arena must not outlive its reset,
 * nor be freed after gw_arena_leave() (free() would get an arena pointer):
 * callers drop such a tree with gw_arena_reset(), never cJSON_Delete().
 * If the hooks are not installed (or were reset by cJSON_InitHooks(NULL), as
 * tests/gateway/test_ha.c does), the library allocates from the heap: check
 * gw_arena_owns() on the result to pick reset or the library's own free.
 *
 * Pure: no I/O, no clock, no logging; memory only through gw_malloc().
 * Built with AddressSanitizer, the unused part of every chunk, a redzone
 * after each allocation and everything after a reset are poisoned, so
 * overruns and use after reset are reported as on the heap.
 */
#ifndef FIELDMQ_ARENA_H
#define FIELDMQ_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct gw_arena_chunk;

struct gw_arena {
	struct gw_arena_chunk *chunks; /* newest first; allocation bumps in the first */
	size_t warm;		       /* bytes of the first chunk */
	size_t cap;		       /* most bytes all chunks together may hold */
	size_t total;		       /* bytes of all chunks */
	size_t want;		       /* size of the one chunk to take after a reset */
	bool hit_cap;		       /* an allocation was refused since the last reset */
	unsigned long grows;	       /* chunks taken from gw_malloc(), for tests and stats */
	unsigned long refused;	       /* allocations refused at the cap */
	struct gw_arena *prev;	       /* the arena entered before this one on this thread */
};

/*
 * Set up @a: no memory is taken until the first allocation. @warm: bytes of
 * the first chunk; @cap: most bytes the arena may hold (>= @warm).
 */
void gw_arena_init(struct gw_arena *a, size_t warm, size_t cap);

/* Free every chunk of @a (it must not be entered). @a may be initialised again. */
void gw_arena_fini(struct gw_arena *a);

/*
 * @n bytes aligned for any type from @a, or NULL when the cap (or gw_malloc)
 * refuses. The memory is uninitialised and valid until gw_arena_reset().
 */
void *gw_arena_alloc(struct gw_arena *a, size_t n);

/* Drop every allocation of @a; keeps (or folds the chain into) one chunk. */
void gw_arena_reset(struct gw_arena *a);

/* Is @p inside one of @a's chunks? */
bool gw_arena_owns(const struct gw_arena *a, const void *p);

/*
 * Make @a the arena the hooks serve on this thread until gw_arena_leave(@a);
 * enters nest (the previous one is restored on leave). @a must be left on
 * the thread that entered it, in reverse order of entering.
 */
void gw_arena_enter(struct gw_arena *a);
void gw_arena_leave(struct gw_arena *a);

/* Hooks in the shape of cJSON_Hooks (see above). */
void *gw_arena_hook_malloc(size_t n);
void gw_arena_hook_free(void *p);

#endif
