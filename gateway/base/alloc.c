/*
 * alloc.c - the capped allocator.
 *
 * Each block carries a small header with its size so frees can be counted.
 * The counters are process-wide and updated atomically: the thread pool
 * (SQLite work, Modbus bus workers) allocates too.
 */
#include <stdlib.h>
#include <string.h>

#include "base.h"

struct blk {
	size_t size;
	size_t pad; /* keeps the payload 16-byte aligned */
};

static size_t mem_used;
static size_t mem_peak;
static size_t mem_limit;
static unsigned long fail_countdown;

void gw_mem_set_limit(size_t bytes)
{
	__atomic_store_n(&mem_limit, bytes, __ATOMIC_RELAXED);
}

size_t gw_mem_used(void)
{
	return __atomic_load_n(&mem_used, __ATOMIC_RELAXED);
}

size_t gw_mem_peak(void)
{
	return __atomic_load_n(&mem_peak, __ATOMIC_RELAXED);
}

void gw_mem_fail_after(unsigned long n)
{
	__atomic_store_n(&fail_countdown, n, __ATOMIC_RELAXED);
}

/* Reserve n bytes against the cap; false if it would be exceeded. */
static bool charge(size_t n)
{
	size_t limit = __atomic_load_n(&mem_limit, __ATOMIC_RELAXED);
	unsigned long fc = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);
	size_t now, peak;

	if (fc) {
		if (__atomic_sub_fetch(&fail_countdown, 1, __ATOMIC_RELAXED) == 0)
			return false;
	}
	now = __atomic_add_fetch(&mem_used, n, __ATOMIC_RELAXED);
	if (limit && now > limit) {
		__atomic_sub_fetch(&mem_used, n, __ATOMIC_RELAXED);
		return false;
	}
	peak = __atomic_load_n(&mem_peak, __ATOMIC_RELAXED);
	while (now > peak && !__atomic_compare_exchange_n(&mem_peak, &peak, now, true,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return true;
}

static void uncharge(size_t n)
{
	__atomic_sub_fetch(&mem_used, n, __ATOMIC_RELAXED);
}

void *gw_malloc(size_t n)
{
	struct blk *b;

	if (n > SIZE_MAX - sizeof(*b) || !charge(n))
		return NULL;
	b = malloc(sizeof(*b) + n);
	if (!b) {
		uncharge(n);
		return NULL;
	}
	b->size = n;
	return b + 1;
}

void *gw_calloc(size_t nmemb, size_t n)
{
	void *p;

	if (n && nmemb > SIZE_MAX / n)
		return NULL;
	p = gw_malloc(nmemb * n);
	if (p)
		memset(p, 0, nmemb * n);
	return p;
}

void *gw_realloc(void *p, size_t n)
{
	struct blk *b, *nb;
	size_t old;

	if (!p)
		return gw_malloc(n);
	if (n > SIZE_MAX - sizeof(*b))
		return NULL;
	b = (struct blk *)p - 1;
	old = b->size;
	if (n > old && !charge(n - old))
		return NULL;
	nb = realloc(b, sizeof(*nb) + n);
	if (!nb) {
		if (n > old)
			uncharge(n - old);
		return NULL;
	}
	if (n < old)
		uncharge(old - n);
	nb->size = n;
	return nb + 1;
}

void gw_free(void *p)
{
	struct blk *b;

	if (!p)
		return;
	b = (struct blk *)p - 1;
	uncharge(b->size);
	free(b);
}

char *gw_strndup(const char *s, size_t n)
{
	char *d = gw_malloc(n + 1);

	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *gw_strdup(const char *s)
{
	return gw_strndup(s, strlen(s));
}
