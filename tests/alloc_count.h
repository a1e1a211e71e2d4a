/*
 * alloc_count.h - counts the calls into the real allocator made by fieldmq's
 * objects in a test linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc,--wrap=free (in the test's .ldflags): gw_malloc() and the
 * arena's fall-through to the heap, which is where cJSON's allocations go
 * once the test installs gateway/base/arena.h's hooks as gateway/main.c
 * does. Include it in one test file per binary.
 */
#ifndef FIELDMQ_TEST_ALLOC_COUNT_H
#define FIELDMQ_TEST_ALLOC_COUNT_H

#include <stddef.h>

static unsigned long alloc_calls;

void *__real_malloc(size_t n);
void *__real_calloc(size_t m, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t m, size_t n);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

void *__wrap_malloc(size_t n)
{
	alloc_calls++;
	return __real_malloc(n);
}

void *__wrap_calloc(size_t m, size_t n)
{
	alloc_calls++;
	return __real_calloc(m, n);
}

void *__wrap_realloc(void *p, size_t n)
{
	alloc_calls++;
	return __real_realloc(p, n);
}

void __wrap_free(void *p)
{
	alloc_calls += p != NULL;
	__real_free(p);
}

#endif
