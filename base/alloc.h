/*
 * base/alloc.h - the one allocator (alloc.c).
 *
 * Every allocation in shoal goes through these, so tests may make the Nth
 * one fail (shoal__alloc_fail_after) and check the caller's error path.
 */
#ifndef SHOAL_BASE_ALLOC_H
#define SHOAL_BASE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *shoal__malloc(size_t n);
void *shoal__calloc(size_t n, size_t size);
void *shoal__realloc(void *p, size_t n);
void shoal__free(void *p);
/* Test hook: make the nth allocation from now on fail (0 = never). */
void shoal__alloc_fail_after(uint64_t n);
/* Test hook: allocations left before the armed failure (0: it happened, or
 * none is armed), so an OOM loop can tell a failure the caller absorbed
 * from one that was never reached. */
uint64_t shoal__alloc_fail_left(void);

#endif /* SHOAL_BASE_ALLOC_H */
