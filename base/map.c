/*
 * base/map.c - the one hash map (map.h).
 *
 * Linear probing at load <= 1/2 over a power-of-two array.  Deletion is
 * backward shift: the entries after the hole that probed past it move back,
 * so every lookup stops at the first empty slot and no tombstones pile up.
 * A slot keeps 32 bits of the hash: a probe compares them before the key
 * bytes, and growing re-slots entries without hashing a key again.
 *
 * Replaced (issue 8): the chained map of core/map.c (one allocation per
 * entry, a pointer chase per probe) and the open-coded tables of
 * crdt/doc.c (fields, authors) and store/store.c (log tail, document
 * flush), each with its own hash function.
 */
#include "map.h"

#include <string.h>

#include "alloc.h"
#include "hash.h"
#include "shoal.h"

enum {
    MIN_CAP = 8
};

/* Stands in for a NULL key pointer of length 0 (a NULL key marks an empty
 * slot). */
static const uint8_t empty_key[1];

void
shoal__map_init(shoal__map *m)
{
    memset(m, 0, sizeof *m);
}

void
shoal__map_init_borrow(shoal__map *m)
{
    memset(m, 0, sizeof *m);
    m->borrow = true;
}

/* Re-slot every entry into cap slots (cap a power of two >= 2 * n). */
static int
resize(shoal__map *m, size_t cap)
{
    shoal__map_slot *s = shoal__calloc(cap, sizeof *s);
    if (!s)
        return SHOAL_ENOMEM;
    size_t mask = cap - 1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].key)
            continue;
        size_t j = m->s[i].hash & mask;
        while (s[j].key)
            j = (j + 1) & mask;
        s[j] = m->s[i];
    }
    shoal__free(m->s);
    m->s = s;
    m->cap = cap;
    m->hand = 0;
    return SHOAL_OK;
}

int
shoal__map_reserve(shoal__map *m, size_t n)
{
    if (n > SIZE_MAX / 4)
        return SHOAL_ENOMEM;
    size_t cap = m->cap ? m->cap : MIN_CAP;
    while (cap < 2 * n)
        cap *= 2;
    return cap == m->cap ? SHOAL_OK : resize(m, cap);
}

int
shoal__map_put(shoal__map *m, const void *key, size_t klen, void *val)
{
    if (klen > UINT32_MAX)
        return SHOAL_EINVAL;
    uint32_t h = (uint32_t)shoal__hash(key, klen);
    size_t i = m->cap ? shoal__map_find(m, key, klen, h) : 0;
    if (m->cap && m->s[i].key) {
        if (m->borrow)
            m->s[i].key = klen ? key : empty_key;
        m->s[i].val = val;
        return SHOAL_OK;
    }
    const uint8_t *k = klen ? key : empty_key;
    if (!m->borrow) {
        uint8_t *copy = shoal__malloc(klen);
        if (!copy)
            return SHOAL_ENOMEM;
        if (klen)
            memcpy(copy, key, klen);
        k = copy;
    }
    if (2 * (m->n + 1) > m->cap) {
        int rc = shoal__map_reserve(m, m->n + 1);
        if (rc) {
            if (!m->borrow)
                shoal__free((void *)(uintptr_t)k);
            return rc;
        }
        i = shoal__map_find(m, key, klen, h);
    }
    m->s[i].key = k;
    m->s[i].val = val;
    m->s[i].hash = h;
    m->s[i].klen = (uint32_t)klen;
    m->n++;
    return SHOAL_OK;
}

/* Empty slot i and shift back the entries after it that probed past it. */
static void
remove_at(shoal__map *m, size_t i)
{
    if (!m->borrow)
        shoal__free((void *)(uintptr_t)m->s[i].key);
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->s[j].key; j = (j + 1) & mask) {
        size_t home = m->s[j].hash & mask;
        /* The entry at j may move to the hole at i unless its home lies
         * cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            m->s[i] = m->s[j];
            i = j;
        }
    }
    memset(&m->s[i], 0, sizeof m->s[i]);
    m->n--;
}

void *
shoal__map_take(shoal__map *m, const void *key, size_t klen)
{
    if (m->n == 0)
        return NULL;
    size_t i = shoal__map_find(m, key, klen, (uint32_t)shoal__hash(key, klen));
    if (!m->s[i].key)
        return NULL;
    void *val = m->s[i].val;
    remove_at(m, i);
    return val;
}

void *
shoal__map_evict(shoal__map *m)
{
    if (m->n == 0)
        return NULL;
    for (size_t k = 0; k < m->cap; k++) {
        size_t i = (m->hand + k) & (m->cap - 1);
        if (m->s[i].key) {
            void *val = m->s[i].val;
            remove_at(m, i);
            m->hand = i + 1;
            return val;
        }
    }
    return NULL;
}

void
shoal__map_reset(shoal__map *m)
{
    if (!m->borrow) {
        for (size_t i = 0; i < m->cap; i++)
            if (m->s[i].key)
                shoal__free((void *)(uintptr_t)m->s[i].key);
    }
    if (m->cap)
        memset(m->s, 0, m->cap * sizeof *m->s);
    m->n = 0;
    m->hand = 0;
}

void
shoal__map_clear(shoal__map *m, void (*fn)(void *val))
{
    for (size_t i = 0; (fn || !m->borrow) && i < m->cap; i++) {
        if (!m->s[i].key)
            continue;
        if (fn)
            fn(m->s[i].val);
        if (!m->borrow)
            shoal__free((void *)(uintptr_t)m->s[i].key);
    }
    shoal__free(m->s);
    bool borrow = m->borrow;
    memset(m, 0, sizeof *m);
    m->borrow = borrow;
}
