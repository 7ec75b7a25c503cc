/*
 * base/alloc.c - the one allocator of shoal.
 *
 * Every allocation in the library goes through shoal__malloc & co so that
 * tests can make the Nth allocation fail and check that each caller turns
 * it into SHOAL_ENOMEM without leaking (the OOM loop in STYLE.md 8).
 *
 * The failure counter is the one piece of global state in base/ and crdt/: it is a
 * test hook, atomic so that the engine thread and the app's threads may
 * allocate at once, and when it is off (the normal case) the cost is one
 * relaxed atomic load.  A replaceable allocator (function pointers) was
 * rejected: nothing needs it yet, and a public hook is an ABI promise.
 *
 * Size 0 is treated as size 1, so a NULL result always means "out of
 * memory" and never "you asked for nothing".
 */
#include "alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

/* 0: never fail.  n > 0: the nth allocation from now fails (once), then
 * allocations succeed again. */
static _Atomic uint64_t fail_countdown;

static bool
should_fail(void)
{
    uint64_t n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (n != 0) {
        if (atomic_compare_exchange_weak_explicit(&fail_countdown, &n, n - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return n == 1;
    }
    return false;
}

void
shoal__alloc_fail_after(uint64_t n)
{
    atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

uint64_t
shoal__alloc_fail_left(void)
{
    return atomic_load_explicit(&fail_countdown, memory_order_relaxed);
}

void *
shoal__malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *
shoal__calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    if (n == 0 || size == 0)
        n = size = 1;
    return calloc(n, size);
}

void *
shoal__realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void
shoal__free(void *p)
{
    free(p);
}
