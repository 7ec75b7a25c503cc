/*
 * base/buf.c - growable byte buffers.
 *
 * shoal__buf is the output type of every encoder in shoal: encoders append,
 * callers take the bytes or reuse the buffer (len = 0 keeps the capacity,
 * which is how hot loops avoid one malloc per change).  Capacity grows by
 * doubling so a sequence of appends is amortised O(1).
 */
#include "buf.h"

#include <string.h>

#include "alloc.h"
#include "shoal.h"

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
