/*
 * crdt/buf.c - growable byte buffers and small byte helpers.
 *
 * shoal__buf is the output type of every encoder in shoal: encoders append,
 * callers take the bytes or reuse the buffer (len = 0 keeps the capacity,
 * which is how hot loops avoid one malloc per change).  Capacity grows by
 * doubling so a sequence of appends is amortised O(1).
 *
 * The UTF-8 validator follows RFC 3629 exactly (no overlong forms, no
 * surrogates, nothing above U+10FFFF): names and string values come from
 * peers, and two replicas must agree on which strings are valid.
 */
#include "crdt.h"

#include <string.h>

void
shoal__buf_init(shoal__buf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void
shoal__buf_free(shoal__buf *b)
{
    shoal__free(b->p);
    shoal__buf_init(b);
}

int
shoal__buf_reserve(shoal__buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return SHOAL_OK;
    if (extra > SIZE_MAX - b->len)
        return SHOAL_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = shoal__realloc(b->p, cap);
    if (!p)
        return SHOAL_ENOMEM;
    b->p = p;
    b->cap = cap;
    return SHOAL_OK;
}

int
shoal__buf_append(shoal__buf *b, const void *p, size_t n)
{
    if (n == 0)
        return SHOAL_OK;
    int err = shoal__buf_reserve(b, n);
    if (err)
        return err;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return SHOAL_OK;
}

uint8_t *
shoal__buf_take(shoal__buf *b, size_t *len)
{
    uint8_t *p = b->p;
    if (len)
        *len = b->len;
    shoal__buf_init(b);
    return p;
}

void
shoal__be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t
shoal__be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
shoal__be64_put(uint8_t *p, uint64_t v)
{
    shoal__be32_put(p, (uint32_t)(v >> 32));
    shoal__be32_put(p + 4, (uint32_t)v);
}

uint64_t
shoal__be64_get(const uint8_t *p)
{
    return (uint64_t)shoal__be32_get(p) << 32 | shoal__be32_get(p + 4);
}

void
shoal__hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
shoal__unhex(uint8_t *out, size_t n, const char *s)
{
    /* Check everything before writing, so out is untouched on error. */
    for (size_t i = 0; i < 2 * n; i++)
        if (hexval(s[i]) < 0)
            return SHOAL_EINVAL;
    if (s[2 * n] != '\0')
        return SHOAL_EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    return SHOAL_OK;
}

bool
shoal__utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* no overlongs */
            else if (c == 0xed)
                hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90; /* no overlongs */
            else if (c == 0xf4)
                hi = 0x8f; /* nothing above U+10FFFF */
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}
