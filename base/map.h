/*
 * base/map.h - the one hash map of shoal (map.c): byte-string keys to
 * pointers, open addressing with linear probing.
 *
 * Slots are one flat array (key pointer, value, 32 bits of the key's hash,
 * key length) kept at most half full, so a miss ends after a probe or two
 * and a hit costs one key comparison.  Removal shifts the following
 * entries back (no tombstones), so a map that takes and puts forever (the
 * replica's document cache) never degrades.
 *
 * Keys are either copied (shoal__map_init: the map owns one allocation per
 * key and frees it on take, evict and clear) or Borrowed
 * (shoal__map_init_borrow: the caller keeps each key's bytes alive and
 * unchanged while its entry exists, e.g. a name or id inside the value the
 * entry points to; nothing is allocated per entry).  The map never owns
 * values.
 *
 * Users: the replica's document cache, a write's working set and a local
 * transaction's document index (core/), one import's change and (author,
 * seq) tables (core/bundle.c), a document's fields and authors
 * (crdt/doc.c), the store's log tail by change id and by author and its
 * per-document flush (store/).  A list's element-id index (crdt/list.c)
 * keeps its own table: its 16-byte keys sit inside the slots and a leaf
 * split rewrites their values in place, for lists of millions of elements
 * with no allocation and no key pointer per element.
 */
#ifndef SHOAL_BASE_MAP_H
#define SHOAL_BASE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hash.h"

typedef struct shoal__map_slot {
    const uint8_t *key; /* NULL: empty slot */
    void *val;
    uint32_t hash; /* low 32 bits of shoal__hash(key) */
    uint32_t klen;
} shoal__map_slot;

typedef struct shoal__map {
    shoal__map_slot *s; /* cap slots; owned */
    size_t cap;         /* a power of two, or 0 */
    size_t n;           /* entries */
    size_t hand;        /* where shoal__map_evict looks next */
    bool borrow;        /* keys are Borrowed, not copied */
} shoal__map;

/* An empty map that copies keys / that borrows them. */
void shoal__map_init(shoal__map *m);
void shoal__map_init_borrow(shoal__map *m);
/* The value of key, or NULL.  Inline (with the hash): it is the hot path
 * of every user, and a constant klen lets the compiler unroll the hash
 * and the key comparison. */
static inline void *shoal__map_get(const shoal__map *m, const void *key, size_t klen);
/* Insert or replace (the old value is dropped, not freed; a borrowing map
 * takes the new key pointer).  SHOAL_ENOMEM (nothing changed) if the map
 * had to grow and could not; never allocates in a borrowing map that
 * shoal__map_reserve made room in.  SHOAL_EINVAL for a key of 4 GiB or
 * more. */
int shoal__map_put(shoal__map *m, const void *key, size_t klen, void *val);
/* Remove key; returns its value or NULL. */
void *shoal__map_take(shoal__map *m, const void *key, size_t klen);
/* Remove some entry; returns its value or NULL when empty. */
void *shoal__map_evict(shoal__map *m);
/* Remove every entry, calling fn (if not NULL) on each value, and free the
 * slots; the map stays usable (in the same key mode). */
void shoal__map_clear(shoal__map *m, void (*fn)(void *val));
/* Make room for n entries in all, so that puts up to n allocate nothing
 * (copied keys still do). */
int shoal__map_reserve(shoal__map *m, size_t n);
/* Remove every entry, keeping the slots (no call on the values). */
void shoal__map_reset(shoal__map *m);

/* The slot holding key, or the empty slot where it would go; m->cap > 0. */
static inline size_t
shoal__map_find(const shoal__map *m, const void *key, size_t klen, uint32_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const shoal__map_slot *s = &m->s[i];
        if (!s->key ||
            (s->hash == h && s->klen == klen && (klen == 0 || memcmp(s->key, key, klen) == 0)))
            return i;
    }
}

static inline void *
shoal__map_get(const shoal__map *m, const void *key, size_t klen)
{
    if (m->n == 0)
        return NULL;
    size_t i = shoal__map_find(m, key, klen, (uint32_t)shoal__hash(key, klen));
    return m->s[i].key ? m->s[i].val : NULL;
}

#endif /* SHOAL_BASE_MAP_H */
