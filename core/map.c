/*
 * core/map.c - a small chained hash map from byte strings to pointers.
 *
 * Used for the replica's doc cache, a write transaction's working set and
 * a local transaction's document index.  Chaining (rather than open
 * addressing) keeps removal trivial, and the cache removes entries often
 * (a write takes documents out of it).  FNV-1a is enough: keys are
 * collection/document names chosen by users, and a bad distribution costs
 * time, never correctness.
 */
#include <string.h>

#include "core.h"

static uint64_t
hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void
shoal__map_init(shoal__map *m)
{
    memset(m, 0, sizeof *m);
}

static shoal__map_ent **
find_slot(const shoal__map *m, const void *key, size_t klen, uint64_t h)
{
    if (m->nb == 0)
        return NULL;
    shoal__map_ent **pp = &m->b[h & (m->nb - 1)];
    while (*pp) {
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
        pp = &(*pp)->next;
    }
    return NULL;
}

void *
shoal__map_get(const shoal__map *m, const void *key, size_t klen)
{
    shoal__map_ent **pp = find_slot(m, key, klen, hash_bytes(key, klen));
    return pp ? (*pp)->val : NULL;
}

static int
grow(shoal__map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    shoal__map_ent **b = shoal__calloc(nb, sizeof *b);
    if (!b)
        return SHOAL_ENOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        shoal__map_ent *e = m->b[i];
        while (e) {
            shoal__map_ent *next = e->next;
            size_t j = e->hash & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    shoal__free(m->b);
    m->b = b;
    m->nb = nb;
    return SHOAL_OK;
}

int
shoal__map_put(shoal__map *m, const void *key, size_t klen, void *val)
{
    uint64_t h = hash_bytes(key, klen);
    shoal__map_ent **pp = find_slot(m, key, klen, h);
    if (pp) {
        (*pp)->val = val;
        return SHOAL_OK;
    }
    if (m->n + 1 > m->nb) {
        int err = grow(m);
        if (err)
            return err;
    }
    shoal__map_ent *e = shoal__malloc(sizeof *e + klen);
    if (!e)
        return SHOAL_ENOMEM;
    e->hash = h;
    e->klen = klen;
    e->val = val;
    memcpy(e->key, key, klen);
    size_t j = h & (m->nb - 1);
    e->next = m->b[j];
    m->b[j] = e;
    m->n++;
    return SHOAL_OK;
}

void *
shoal__map_take(shoal__map *m, const void *key, size_t klen)
{
    shoal__map_ent **pp = find_slot(m, key, klen, hash_bytes(key, klen));
    if (!pp)
        return NULL;
    shoal__map_ent *e = *pp;
    void *val = e->val;
    *pp = e->next;
    shoal__free(e);
    m->n--;
    return val;
}

void *
shoal__map_evict(shoal__map *m)
{
    if (m->n == 0)
        return NULL;
    for (size_t k = 0; k < m->nb; k++) {
        size_t i = (m->hand + k) & (m->nb - 1);
        shoal__map_ent *e = m->b[i];
        if (e) {
            void *val = e->val;
            m->b[i] = e->next;
            shoal__free(e);
            m->n--;
            m->hand = i + 1;
            return val;
        }
    }
    return NULL;
}

void
shoal__map_clear(shoal__map *m, void (*fn)(void *val))
{
    for (size_t i = 0; i < m->nb; i++) {
        shoal__map_ent *e = m->b[i];
        while (e) {
            shoal__map_ent *next = e->next;
            if (fn)
                fn(e->val);
            shoal__free(e);
            e = next;
        }
    }
    shoal__free(m->b);
    memset(m, 0, sizeof *m);
}
