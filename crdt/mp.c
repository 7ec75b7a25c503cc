/*
 * crdt/mp.c - canonical MessagePack: a writer and a strict bounded reader.
 *
 * Writer: msgpack-c's packer already picks the smallest header for ints,
 * strings, binaries and arrays, and packs doubles as float64, which is the
 * canonical form docs/format.md defines.  Its write callback appends to a
 * shoal__buf; an allocation failure is recorded in w->err and every later
 * write is skipped, so encoders check once at the end.
 *
 * Reader: our own, not msgpack-c's unpacker.  msgpack-c 4.0 allocates from
 * a declared count before it checks that the bytes exist (34 input bytes can
 * ask for 16 GiB), and it accepts every encoding of a value, which would let
 * one change have many byte forms.  This reader:
 *   - never allocates; strings and binaries point into the input;
 *   - checks each declared length against the remaining bytes, and each
 *     declared count against remaining / smallest item, before using it;
 *   - accepts only the smallest header for every int, str, bin, array and
 *     map, only unsigned forms for non-negative ints, and only float64;
 *   - keeps the first error (sticky), after which every read returns zero,
 *     so decoders check r->err once per item group, not per read.
 * Error order for one item: ETRUNC if the header itself is cut, then EPROTO
 * (wrong type, non-canonical), then ETOOBIG (over the caller's bound), then
 * ETRUNC (payload longer than the input).
 */
#include "crdt.h"

#include <msgpack/pack.h>
#include <string.h>

/* ----------------------------------------------------------------- writer */

static int
mpw_write(void *data, const char *p, size_t n)
{
    shoal__mpw *w = data;
    if (w->err)
        return -1;
    int err = shoal__buf_append(w->out, p, n);
    if (err) {
        w->err = err;
        return -1;
    }
    return 0;
}

#define WITH_PACKER(w, stmt)                       \
    do {                                           \
        if ((w)->err)                              \
            return;                                \
        msgpack_packer pk_;                        \
        msgpack_packer_init(&pk_, (w), mpw_write); \
        msgpack_packer *pk = &pk_;                 \
        stmt;                                      \
    } while (0)

void
shoal__mpw_init(shoal__mpw *w, shoal__buf *out)
{
    w->out = out;
    w->err = SHOAL_OK;
}

void
shoal__mpw_nil(shoal__mpw *w)
{
    WITH_PACKER(w, msgpack_pack_nil(pk));
}

void
shoal__mpw_bool(shoal__mpw *w, bool v)
{
    WITH_PACKER(w, v ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}

void
shoal__mpw_uint(shoal__mpw *w, uint64_t v)
{
    WITH_PACKER(w, msgpack_pack_uint64(pk, v));
}

void
shoal__mpw_int(shoal__mpw *w, int64_t v)
{
    /* msgpack-c packs a non-negative int64 with the unsigned forms. */
    WITH_PACKER(w, msgpack_pack_int64(pk, v));
}

void
shoal__mpw_double(shoal__mpw *w, double v)
{
    WITH_PACKER(w, msgpack_pack_double(pk, v));
}

void
shoal__mpw_str(shoal__mpw *w, const void *p, size_t n)
{
    if (n > UINT32_MAX && !w->err)
        w->err = SHOAL_ETOOBIG;
    WITH_PACKER(w, if (msgpack_pack_str(pk, n) == 0) msgpack_pack_str_body(pk, p, n));
}

void
shoal__mpw_bin(shoal__mpw *w, const void *p, size_t n)
{
    if (n > UINT32_MAX && !w->err)
        w->err = SHOAL_ETOOBIG;
    WITH_PACKER(w, if (msgpack_pack_bin(pk, n) == 0) msgpack_pack_bin_body(pk, p, n));
}

void
shoal__mpw_array(shoal__mpw *w, uint32_t n)
{
    WITH_PACKER(w, msgpack_pack_array(pk, n));
}

void
shoal__mpw_map(shoal__mpw *w, uint32_t n)
{
    WITH_PACKER(w, msgpack_pack_map(pk, n));
}

void
shoal__mpw_value(shoal__mpw *w, const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_NIL: shoal__mpw_nil(w); break;
    case SHOAL_T_BOOL: shoal__mpw_bool(w, v->b); break;
    case SHOAL_T_INT: shoal__mpw_int(w, v->i); break;
    case SHOAL_T_DOUBLE: shoal__mpw_double(w, v->d); break;
    case SHOAL_T_STR: shoal__mpw_str(w, v->ptr, v->len); break;
    case SHOAL_T_BYTES: shoal__mpw_bin(w, v->ptr, v->len); break;
    case SHOAL_T_REDACTED:
        if (!w->err)
            w->err = shoal__buf_append(w->out, "\xd4\x01\x00", 3);
        break;
    default:
        if (!w->err)
            w->err = SHOAL_EINVAL;
        break;
    }
}

/* ----------------------------------------------------------------- reader */

void
shoal__mpr_init(shoal__mpr *r, const uint8_t *p, size_t n)
{
    r->p = p;
    r->end = p + n;
    r->err = SHOAL_OK;
    r->redacted_ok = false;
}

static size_t
left(const shoal__mpr *r)
{
    return (size_t)(r->end - r->p);
}

static void
fail(shoal__mpr *r, int err)
{
    if (!r->err)
        r->err = err;
}

/* Big-endian unsigned of width n (1, 2, 4, 8) at p. */
static uint64_t
load(const uint8_t *p, int n)
{
    switch (n) {
    case 1: return p[0];
    case 2: return (uint64_t)p[0] << 8 | p[1];
    case 4: return shoal__be32_get(p);
    default: return shoal__be64_get(p);
    }
}

/* Consume the header byte plus an n-byte big-endian length/value.  Returns
 * false (ETRUNC) if the input is too short. */
static bool
take(shoal__mpr *r, int n, uint64_t *v)
{
    if (left(r) < 1 + (size_t)n) {
        fail(r, SHOAL_ETRUNC);
        return false;
    }
    *v = n ? load(r->p + 1, n) : 0;
    r->p += 1 + n;
    return true;
}

int
shoal__mpr_peek(const shoal__mpr *r)
{
    if (r->err || r->p >= r->end)
        return -1;
    uint8_t c = *r->p;
    if (c <= 0x7f || c >= 0xe0)
        return SHOAL_T_INT;
    if (c >= 0xa0 && c <= 0xbf)
        return SHOAL_T_STR;
    switch (c) {
    case 0xc0: return SHOAL_T_NIL;
    case 0xc2:
    case 0xc3: return SHOAL_T_BOOL;
    case 0xc4:
    case 0xc5:
    case 0xc6: return SHOAL_T_BYTES;
    case 0xca:
    case 0xcb: return SHOAL_T_DOUBLE;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: return SHOAL_T_INT;
    case 0xd9:
    case 0xda:
    case 0xdb: return SHOAL_T_STR;
    default: return -1;
    }
}

bool
shoal__mpr_is_nil(const shoal__mpr *r)
{
    return !r->err && r->p < r->end && *r->p == 0xc0;
}

/* Check that there is a next byte; ETRUNC otherwise. */
static bool
more(shoal__mpr *r)
{
    if (r->err)
        return false;
    if (r->p >= r->end) {
        fail(r, SHOAL_ETRUNC);
        return false;
    }
    return true;
}

void
shoal__mpr_nil(shoal__mpr *r)
{
    if (!more(r))
        return;
    if (*r->p != 0xc0) {
        fail(r, SHOAL_EPROTO);
        return;
    }
    r->p++;
}

bool
shoal__mpr_bool(shoal__mpr *r)
{
    if (!more(r))
        return false;
    uint8_t c = *r->p;
    if (c != 0xc2 && c != 0xc3) {
        fail(r, SHOAL_EPROTO);
        return false;
    }
    r->p++;
    return c == 0xc3;
}

/* Read any int.  *neg tells whether *mag holds a negative value (as the
 * two's-complement bits of an int64) or a non-negative one.  Non-canonical
 * forms are EPROTO. */
static bool
read_int(shoal__mpr *r, uint64_t *u, bool *neg)
{
    if (!more(r))
        return false;
    uint8_t c = *r->p;
    uint64_t v;
    *neg = false;
    if (c <= 0x7f) {
        r->p++;
        *u = c;
        return true;
    }
    if (c >= 0xe0) {
        r->p++;
        *neg = true;
        *u = (uint64_t)(int64_t)(int8_t)c;
        return true;
    }
    switch (c) {
    case 0xcc: /* uint8: only for 128..255 */
        if (!take(r, 1, &v))
            return false;
        if (v < 0x80)
            goto noncanon;
        break;
    case 0xcd:
        if (!take(r, 2, &v))
            return false;
        if (v <= 0xff)
            goto noncanon;
        break;
    case 0xce:
        if (!take(r, 4, &v))
            return false;
        if (v <= 0xffff)
            goto noncanon;
        break;
    case 0xcf:
        if (!take(r, 8, &v))
            return false;
        if (v <= 0xffffffffu)
            goto noncanon;
        break;
    case 0xd0: { /* int8: only for -128..-33 */
        if (!take(r, 1, &v))
            return false;
        int64_t s = (int8_t)(uint8_t)v;
        if (s >= -32)
            goto noncanon;
        *neg = true;
        v = (uint64_t)s;
        break;
    }
    case 0xd1: {
        if (!take(r, 2, &v))
            return false;
        int64_t s = (int16_t)(uint16_t)v;
        if (s >= -128)
            goto noncanon;
        *neg = true;
        v = (uint64_t)s;
        break;
    }
    case 0xd2: {
        if (!take(r, 4, &v))
            return false;
        int64_t s = (int32_t)(uint32_t)v;
        if (s >= -32768)
            goto noncanon;
        *neg = true;
        v = (uint64_t)s;
        break;
    }
    case 0xd3: {
        if (!take(r, 8, &v))
            return false;
        int64_t s = (int64_t)v;
        if (s >= -2147483648LL)
            goto noncanon;
        *neg = true;
        break;
    }
    default: fail(r, SHOAL_EPROTO); return false;
    }
    *u = v;
    return true;
noncanon:
    fail(r, SHOAL_EPROTO);
    return false;
}

uint64_t
shoal__mpr_uint(shoal__mpr *r)
{
    uint64_t u;
    bool neg;
    if (!read_int(r, &u, &neg))
        return 0;
    if (neg) {
        fail(r, SHOAL_EPROTO);
        return 0;
    }
    return u;
}

int64_t
shoal__mpr_int(shoal__mpr *r)
{
    uint64_t u;
    bool neg;
    if (!read_int(r, &u, &neg))
        return 0;
    if (!neg && u > INT64_MAX) {
        fail(r, SHOAL_EPROTO);
        return 0;
    }
    return (int64_t)u;
}

double
shoal__mpr_double(shoal__mpr *r)
{
    if (!more(r))
        return 0;
    if (*r->p != 0xcb) {
        fail(r, SHOAL_EPROTO); /* float32 or another type */
        return 0;
    }
    uint64_t bits;
    if (!take(r, 8, &bits))
        return 0;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Length header of a str (is_str) or bin.  Returns false on error. */
static bool
read_len(shoal__mpr *r, bool is_str, size_t *len)
{
    if (!more(r))
        return false;
    uint8_t c = *r->p;
    uint64_t v;
    uint64_t min; /* smallest length this header may carry */
    if (is_str && c >= 0xa0 && c <= 0xbf) {
        r->p++;
        *len = c & 0x1f;
        return true;
    }
    if (c == (is_str ? 0xd9 : 0xc4)) {
        if (!take(r, 1, &v))
            return false;
        min = is_str ? 32 : 0;
    } else if (c == (is_str ? 0xda : 0xc5)) {
        if (!take(r, 2, &v))
            return false;
        min = 256;
    } else if (c == (is_str ? 0xdb : 0xc6)) {
        if (!take(r, 4, &v))
            return false;
        min = 65536;
    } else {
        fail(r, SHOAL_EPROTO);
        return false;
    }
    if (v < min) {
        fail(r, SHOAL_EPROTO);
        return false;
    }
    *len = (size_t)v;
    return true;
}

static size_t
read_bytes(shoal__mpr *r, bool is_str, const uint8_t **p, size_t max)
{
    size_t n;
    *p = NULL;
    if (!read_len(r, is_str, &n))
        return 0;
    if (n > max) {
        fail(r, SHOAL_ETOOBIG);
        return 0;
    }
    if (n > left(r)) {
        fail(r, SHOAL_ETRUNC);
        return 0;
    }
    if (is_str && !shoal__utf8_valid(r->p, n)) {
        fail(r, SHOAL_EPROTO);
        return 0;
    }
    *p = r->p;
    r->p += n;
    return n;
}

size_t
shoal__mpr_str(shoal__mpr *r, const uint8_t **p, size_t max)
{
    return read_bytes(r, true, p, max);
}

size_t
shoal__mpr_bin(shoal__mpr *r, const uint8_t **p, size_t max)
{
    return read_bytes(r, false, p, max);
}

/* Array (fix 0x90, 16 0xdc, 32 0xdd) or map (fix 0x80, 0xde, 0xdf)
 * header with its bounds. */
static uint32_t
read_count(shoal__mpr *r, uint8_t fix, uint8_t c16, uint8_t c32, uint32_t max, size_t min_item)
{
    if (!more(r))
        return 0;
    uint8_t c = *r->p;
    uint64_t v;
    if ((c & 0xf0) == fix) {
        r->p++;
        v = c & 0x0f;
    } else if (c == c16) {
        if (!take(r, 2, &v))
            return 0;
        if (v < 16)
            goto noncanon;
    } else if (c == c32) {
        if (!take(r, 4, &v))
            return 0;
        if (v <= 0xffff)
            goto noncanon;
    } else {
        goto noncanon;
    }
    if (v > max) {
        fail(r, SHOAL_ETOOBIG);
        return 0;
    }
    if (min_item && v > left(r) / min_item) {
        fail(r, SHOAL_ETRUNC);
        return 0;
    }
    return (uint32_t)v;
noncanon:
    fail(r, SHOAL_EPROTO);
    return 0;
}

uint32_t
shoal__mpr_array(shoal__mpr *r, uint32_t max, size_t min_item)
{
    return read_count(r, 0x90, 0xdc, 0xdd, max, min_item);
}

uint32_t
shoal__mpr_map(shoal__mpr *r, uint32_t max, size_t min_item)
{
    return read_count(r, 0x80, 0xde, 0xdf, max, min_item);
}

void
shoal__mpr_value(shoal__mpr *r, shoal_value *out)
{
    memset(out, 0, sizeof *out);
    out->type = SHOAL_T_NIL;
    switch (shoal__mpr_peek(r)) {
    case SHOAL_T_NIL: r->p++; break;
    case SHOAL_T_BOOL:
        out->type = SHOAL_T_BOOL;
        out->b = shoal__mpr_bool(r);
        break;
    case SHOAL_T_INT:
        out->type = SHOAL_T_INT;
        out->i = shoal__mpr_int(r);
        break;
    case SHOAL_T_DOUBLE:
        out->type = SHOAL_T_DOUBLE;
        out->d = shoal__mpr_double(r);
        break;
    case SHOAL_T_STR:
        out->type = SHOAL_T_STR;
        out->len = shoal__mpr_str(r, &out->ptr, SHOAL_MAX_VALUE);
        break;
    case SHOAL_T_BYTES:
        out->type = SHOAL_T_BYTES;
        out->len = shoal__mpr_bin(r, &out->ptr, SHOAL_MAX_VALUE);
        break;
    default:
        if (r->redacted_ok && !r->err && left(r) >= 3 && memcmp(r->p, "\xd4\x01\x00", 3) == 0) {
            out->type = SHOAL_T_REDACTED;
            r->p += 3;
            break;
        }
        (void)more(r);         /* ETRUNC at the end of input */
        fail(r, SHOAL_EPROTO); /* array, map, ext, 0xc1 */
        break;
    }
    if (r->err) {
        memset(out, 0, sizeof *out);
        out->type = SHOAL_T_NIL;
    }
}

int
shoal__mpr_finish(shoal__mpr *r)
{
    if (!r->err && r->p != r->end)
        r->err = SHOAL_EPROTO;
    return r->err;
}
