/*
 * crdt/value.c - scalar values: deep copy, validation, equality.
 *
 * A shoal_value is a small transparent view (include/shoal.h).  Values that
 * outlive the bytes they were read from (register state, list elements) are
 * deep copies made here; their str/bin bytes are owned by the value and
 * freed by shoal__value_clear.  Equality is bytewise: doubles compare by bit
 * pattern, so -0.0 != 0.0 and a NaN equals itself, which is what replicas
 * need to agree on state byte for byte.
 */
#include "crdt.h"

#include <string.h>

int
shoal__value_copy(shoal_value *dst, const shoal_value *src)
{
    shoal_value v = *src;
    if (src->type == SHOAL_T_STR || src->type == SHOAL_T_BYTES) {
        uint8_t *p = shoal__malloc(src->len ? src->len : 1);
        if (!p)
            return SHOAL_ENOMEM;
        if (src->len)
            memcpy(p, src->ptr, src->len);
        v.ptr = p;
    } else {
        v.ptr = NULL;
        v.len = 0;
    }
    *dst = v;
    return SHOAL_OK;
}

void
shoal__value_clear(shoal_value *v)
{
    if (v->type == SHOAL_T_STR || v->type == SHOAL_T_BYTES)
        shoal__free((void *)(uintptr_t)v->ptr);
    memset(v, 0, sizeof *v);
    v->type = SHOAL_T_NIL;
}

int
shoal__value_check(const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_NIL:
    case SHOAL_T_BOOL:
    case SHOAL_T_INT:
    case SHOAL_T_DOUBLE: return SHOAL_OK;
    case SHOAL_T_STR:
    case SHOAL_T_BYTES:
        if (v->len > SHOAL_MAX_VALUE)
            return SHOAL_EINVAL;
        if (v->len && !v->ptr)
            return SHOAL_EINVAL;
        if (v->type == SHOAL_T_STR && !shoal__utf8_valid(v->ptr, v->len))
            return SHOAL_EINVAL;
        return SHOAL_OK;
    default: return SHOAL_EINVAL;
    }
}

bool
shoal__value_eq(const shoal_value *a, const shoal_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SHOAL_T_NIL:
    case SHOAL_T_REDACTED: return true;
    case SHOAL_T_BOOL: return a->b == b->b;
    case SHOAL_T_INT: return a->i == b->i;
    case SHOAL_T_DOUBLE: {
        uint64_t x, y;
        memcpy(&x, &a->d, sizeof x);
        memcpy(&y, &b->d, sizeof y);
        return x == y;
    }
    case SHOAL_T_STR:
    case SHOAL_T_BYTES:
        return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
    default: return false;
    }
}
