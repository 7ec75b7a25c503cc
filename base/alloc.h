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

#endif /* SHOAL_BASE_ALLOC_H */
