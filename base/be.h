/*
 * base/be.h - big-endian fixed-width integers, the byte order of every
 * integer shoal writes into a key, a log entry or a frame (so keys sort
 * numerically under LMDB's bytewise comparison).
 *
 * Inline: they sit on the store's hot paths (every key and log header).
 */
#ifndef SHOAL_BASE_BE_H
#define SHOAL_BASE_BE_H

#include <stdint.h>

static inline void
shoal__be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t
shoal__be16_get(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline void
shoal__be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t
shoal__be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void
shoal__be64_put(uint8_t *p, uint64_t v)
{
    shoal__be32_put(p, (uint32_t)(v >> 32));
    shoal__be32_put(p + 4, (uint32_t)v);
}

static inline uint64_t
shoal__be64_get(const uint8_t *p)
{
    return (uint64_t)shoal__be32_get(p) << 32 | shoal__be32_get(p + 4);
}

#endif /* SHOAL_BASE_BE_H */
