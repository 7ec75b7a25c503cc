/*
 * base/hash.h - the one hash function of shoal, for in-memory tables only.
 *
 * Its values are never stored or sent (they may differ between machines of
 * different byte order), so it can change at will.  Keys are change ids and
 * public keys (uniform already, but tests use patterned ones), list element
 * ids and user-chosen names: it reads 8 bytes at a time, multiplies and
 * folds after each word, and ends with a full 64-bit finaliser, so every
 * input bit reaches the low bits a table indexes with.  A 32-byte key costs
 * four multiplies; FNV-1a, used before in three places, cost 32.
 * Not for hostile keys at scale: shoal's tables hold bounded sets (a
 * document's fields, the store's log tail, one import's changes).
 *
 * Inline: the store's log-tail lookups run it once per change.
 */
#ifndef SHOAL_BASE_HASH_H
#define SHOAL_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Finaliser (MurmurHash3's fmix64): a bijection that mixes all 64 bits. */
static inline uint64_t
shoal__hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t
shoal__hash(const void *key, size_t n)
{
    const uint8_t *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n * 0xff51afd7ed558ccdull;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (n) { /* 1..7 bytes: a loop, not a memcpy call of unknown length */
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++)
            w |= (uint64_t)p[i] << (8 * i);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return shoal__hash_mix(h);
}

#endif /* SHOAL_BASE_HASH_H */
