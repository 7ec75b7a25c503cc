/*
 * crdt/change.c - the change body: canonical encoding and strict decoding.
 *
 * A change body is one MessagePack array (docs/format.md has the
 * byte-level spec; keep both in step, and add a format version and a
 * vector under test/vectors/ for any change to the layout):
 *
 *   [seq, hlc, deps, coll, doc, epoch, authors, ops]          version 1
 *   [seq, hlc, deps, coll, doc, epoch, authors, ops, auth]    version 2
 *
 * Canonical means one byte string per change: the writer always emits the
 * smallest headers (crdt/mp.c), and the decoder rejects anything else, so
 * decode(bytes) followed by encode gives back the same bytes.  That lets
 * replicas store and forward the signed bytes and still agree on what they
 * mean, and it keeps the change id (a hash of the bytes) unique per change.
 *
 * The encoder checks the same invariants as the decoder (EINVAL instead of
 * EPROTO), so this replica never signs a change its peers would reject.
 *
 * Decoding never trusts a count: each array count is checked against the
 * bytes that remain (crdt/mp.c) before the one allocation is made.  deps
 * and authors are stored in the body as separate 32-byte bins with headers
 * in between, so they are copied into the same block as the ops array; the
 * block is owned by the change through c->ops and freed by
 * shoal__change_clear (the single owner).
 */
#include "crdt.h"

#include <sodium.h>
#include <string.h>

/* Smallest encoded sizes, for bounding counts by the remaining bytes. */
enum {
    BIN32_BYTES = 2 + 32, /* bin8 header + 32 bytes */
    MIN_OP_BYTES = 2      /* [7]: fixarray + fixint */
};

/* Number of items in the op array of each kind (index = kind). */
static const uint8_t op_items[SHOAL__OP_SREP + 1] = { 0, 3, 2, 3, 4, 3, 4, 1, 4, 4, 4, 2, 2, 4, 3 };

/* The value of a sealed op whose group is not held. */
static const shoal_value redacted = { .type = SHOAL_T_REDACTED };

shoal__opid
shoal__change_opid(const shoal__change *c, uint32_t i)
{
    shoal__opid id = { c->hlc, c->author, i };
    return id;
}

const uint8_t *
shoal__change_author(const shoal__change *c, uint32_t ai)
{
    if (ai == 0)
        return c->author;
    if (ai > c->nauthors)
        return NULL;
    return c->authors + (size_t)(ai - 1) * 32;
}

int
shoal__opid_cmp(const shoal__opid *a, const shoal__opid *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if (a->author != b->author) {
        int c = memcmp(a->author, b->author, 32);
        if (c)
            return c < 0 ? -1 : 1;
    }
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return 0;
}

void
shoal__change_clear(shoal__change *c)
{
    uint8_t author[32];
    memcpy(author, c->author, 32);
    shoal__free(c->ops);
    shoal__free(c->extra);
    memset(c, 0, sizeof *c);
    memcpy(c->author, author, 32);
}

/* Encoded sizes of a uint v and of the negative int -d (both < 2^32), for
 * the two forms of a ref to an op of the change itself. */
static int
uint_bytes(uint32_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : 5;
}

static int
neg_bytes(uint32_t d)
{
    return d <= 32 ? 1 : d <= 128 ? 2 : d <= 32768 ? 3 : 5;
}

/* ---------------------------------------------------------------- encoder */

static bool
name_ok(const uint8_t *p, size_t n, size_t max)
{
    return n >= 1 && n <= max && p && !memchr(p, 0, n) && shoal__utf8_valid(p, n);
}

static bool
sorted_keys(const uint8_t *k, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (memcmp(k + (i - 1) * 32, k + i * 32, 32) >= 0)
            return false;
    return true;
}

static int
check_change(const shoal__change *c)
{
    if (c->seq == 0 || c->ndeps > SHOAL__MAX_DEPS || c->nauthors > SHOAL__MAX_AUTHORS ||
        c->nops > SHOAL__MAX_OPS)
        return SHOAL_EINVAL;
    if ((c->ndeps && !c->deps) || (c->nauthors && !c->authors) || (c->nops && !c->ops))
        return SHOAL_EINVAL;
    if (c->version > SHOAL__FORMAT_V2 || c->nauth > SHOAL__MAX_AUTH ||
        (c->nauth && (c->version != SHOAL__FORMAT_V2 || !c->auth)))
        return SHOAL_EINVAL;
    if (c->nseals > SHOAL__MAX_SEALS ||
        (c->nseals && (c->version != SHOAL__FORMAT_V2 || !c->seal_commit)))
        return SHOAL_EINVAL;
    for (size_t i = 0; i < c->nseals; i++)
        if (c->seal_class[i] == 0 || c->seal_class[i] > SHOAL__MAX_SEALS ||
            (i && c->seal_class[i - 1] >= c->seal_class[i]))
            return SHOAL_EINVAL;
    bool any_sealed = false;
    if (!sorted_keys(c->deps, c->ndeps) || !sorted_keys(c->authors, c->nauthors))
        return SHOAL_EINVAL;
    for (size_t i = 0; i < c->nauthors; i++)
        if (memcmp(c->authors + i * 32, c->author, 32) == 0)
            return SHOAL_EINVAL;
    if (!name_ok(c->coll, c->coll_len, SHOAL_MAX_COLLECTION) ||
        !name_ok(c->doc, c->doc_len, SHOAL_MAX_DOC_ID))
        return SHOAL_EINVAL;
    for (size_t i = 0; i < c->nops; i++) {
        const shoal__op *op = &c->ops[i];
        if (op->kind < SHOAL__OP_SET || op->kind > SHOAL__OP_DELDOC)
            return SHOAL_EINVAL;
        if (op->sealed && (op->kind == SHOAL__OP_DEL || op->kind == SHOAL__OP_DELDOC))
            return SHOAL_EINVAL;
        any_sealed = any_sealed || op->sealed;
        if (op->kind == SHOAL__OP_DELDOC)
            continue;
        if (!name_ok(op->field, op->field_len, SHOAL_MAX_FIELD))
            return SHOAL_EINVAL;
        switch (op->kind) {
        case SHOAL__OP_INS:
        case SHOAL__OP_DEL:
        case SHOAL__OP_REP:
            if (op->ref.head ? op->kind != SHOAL__OP_INS : op->ref.author > c->nauthors)
                return SHOAL_EINVAL;
            /* An op can only refer to an earlier op of its own change. */
            if (!op->ref.head && op->ref.author == 0 && op->ref.hlc == c->hlc && op->ref.index >= i)
                return SHOAL_EINVAL;
            break;
        default: break;
        }
        if (op->kind == SHOAL__OP_SET || op->kind == SHOAL__OP_INS || op->kind == SHOAL__OP_REP) {
            /* A sealed op's value goes to its group, not the body: one
             * that was never disclosed still encodes. */
            if (shoal__value_check(&op->value) &&
                !(op->sealed && op->value.type == SHOAL_T_REDACTED))
                return SHOAL_EINVAL;
        }
    }
    if (any_sealed != (c->nseals > 0))
        return SHOAL_EINVAL;
    return SHOAL_OK;
}

/* ------------------------------------------------------------ op groups */

/* The body's ops array holds items, each standing for one op or for a run
 * of several consecutive ops (docs/format.md "Ops"); op ids count the
 * expanded ops.  The writer groups greedily from the left: an op joins the
 * run of the op before it when ops_link() says so.  The reader expands every
 * item and checks, at each boundary between two items, that the ops on
 * either side do not link; with the per-item checks (a run has at least 2
 * ops; an INS run whose values are all one-code-point strings is a TEXT
 * run) this makes the grouping, and so the bytes, a function of the ops. */

/* true if ref names op idx of change c itself. */
static bool
ref_is_own(const shoal__change *c, const shoal__ref *ref)
{
    return !ref->head && ref->author == 0 && ref->hlc == c->hlc;
}

static bool
same_field(const shoal__op *a, const shoal__op *b)
{
    return a->field_len == b->field_len && memcmp(a->field, b->field, a->field_len) == 0;
}

/* Does op n (at index i) continue the group whose last op is p (at index
 * i - 1)?  dir is the group's DEL direction: +1 or -1 once it has two DEL
 * ops, 0 for a single op. */
static bool
ops_link(const shoal__change *c, const shoal__op *p, const shoal__op *n, uint32_t i, int dir)
{
    if (p->kind != n->kind || p->sealed != n->sealed || n->kind == SHOAL__OP_DELDOC ||
        !same_field(p, n))
        return false;
    if (n->kind == SHOAL__OP_INS)
        return ref_is_own(c, &n->ref) && n->ref.index == i - 1;
    if (n->kind != SHOAL__OP_DEL || n->ref.hlc != p->ref.hlc || n->ref.author != p->ref.author)
        return false;
    if (dir > 0 || (dir == 0 && p->ref.index != UINT32_MAX))
        if (n->ref.index == p->ref.index + 1)
            return true;
    if (dir < 0 || (dir == 0 && p->ref.index != 0))
        if (n->ref.index == p->ref.index - 1)
            return true;
    return false;
}

/* May the group that starts at op i take op j too?  A DEL run holds at
 * most SHOAL__MAX_DELRUN ops: it is the one item whose ops cost no bytes
 * of their own, so the cap bounds the ops (the work) per byte of a body at
 * about SHOAL__MAX_DELRUN / 5 (docs/format.md, "Ops").  A longer range is
 * written as several runs, each full but the last. */
static bool
group_room(const shoal__op *ops, size_t i, size_t j)
{
    bool capped = ops[i].kind == SHOAL__OP_DEL || (ops[i].kind == SHOAL__OP_INS && ops[i].sealed);
    return !capped || j - i < SHOAL__MAX_DELRUN;
}

/* The end of the item (the group of ops one body item stands for) that
 * starts at op i; *dir receives its DEL direction. */
static size_t
item_end(const shoal__change *c, size_t i, int *dir)
{
    *dir = 0;
    size_t j = i + 1;
    while (j < c->nops && group_room(c->ops, i, j) &&
           ops_link(c, &c->ops[j - 1], &c->ops[j], (uint32_t)j, *dir)) {
        if (c->ops[j].kind == SHOAL__OP_DEL)
            *dir = c->ops[j].ref.index > c->ops[j - 1].ref.index ? 1 : -1;
        j++;
    }
    return j;
}

/* Bytes of the UTF-8 sequence starting with lead byte b (valid input). */
static size_t
utf8_seq(uint8_t b)
{
    return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

/* A str value of exactly one code point. */
static bool
one_cp(const shoal_value *v)
{
    return v->type == SHOAL_T_STR && v->len >= 1 && utf8_seq(v->ptr[0]) == v->len;
}

/* ---------------------------------------------------------------- encoder */

static void
write_ref(shoal__mpw *w, const shoal__change *c, const shoal__ref *ref, uint32_t i)
{
    if (ref->head) {
        shoal__mpw_nil(w);
        return;
    }
    if (ref_is_own(c, ref)) {
        /* check_change guarantees ref->index < i */
        uint32_t d = i - ref->index;
        if (uint_bytes(ref->index) < neg_bytes(d))
            shoal__mpw_uint(w, ref->index);
        else
            shoal__mpw_int(w, -(int64_t)d);
        return;
    }
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, ref->hlc);
    shoal__mpw_uint(w, ref->author);
    shoal__mpw_uint(w, ref->index);
}

int
shoal__change_encode(const shoal__change *c, shoal__buf *out)
{
    int err = check_change(c);
    if (err)
        return err;
    /* Count the items first (the array header comes before them). */
    size_t nitems = 0;
    for (size_t i = 0; i < c->nops; nitems++) {
        int dir;
        i = item_end(c, i, &dir);
    }
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    bool v2 = c->version == SHOAL__FORMAT_V2;
    shoal__mpw_array(&w, v2 ? (c->nseals ? 10 : 9) : 8);
    shoal__mpw_uint(&w, c->seq);
    shoal__mpw_uint(&w, c->hlc);
    shoal__mpw_array(&w, (uint32_t)c->ndeps);
    for (size_t i = 0; i < c->ndeps; i++)
        shoal__mpw_bin(&w, c->deps + i * 32, 32);
    shoal__mpw_str(&w, c->coll, c->coll_len);
    shoal__mpw_str(&w, c->doc, c->doc_len);
    shoal__mpw_uint(&w, c->epoch);
    shoal__mpw_array(&w, (uint32_t)c->nauthors);
    for (size_t i = 0; i < c->nauthors; i++)
        shoal__mpw_bin(&w, c->authors + i * 32, 32);
    shoal__mpw_array(&w, (uint32_t)nitems);
    const shoal__op *prev = NULL; /* first op of the previous item */
    for (size_t i = 0; i < c->nops && !w.err;) {
        const shoal__op *op = &c->ops[i];
        int dir;
        size_t j = item_end(c, i, &dir);
        size_t n = j - i;
        uint8_t kind = op->kind;
        bool text = false;
        if (op->sealed) {
            kind = kind == SHOAL__OP_COUNT ? SHOAL__OP_SCOUNT
                   : kind == SHOAL__OP_INS ? SHOAL__OP_SINS
                   : kind == SHOAL__OP_REP ? SHOAL__OP_SREP
                                           : SHOAL__OP_SWRITE;
        } else if (n > 1 && kind == SHOAL__OP_INS) {
            text = true;
            for (size_t k = i; k < j && text; k++)
                text = one_cp(&c->ops[k].value);
            kind = text ? SHOAL__OP_TEXTRUN : SHOAL__OP_INSRUN;
        } else if (n > 1) {
            kind = SHOAL__OP_DELRUN;
        }
        /* The field is left out (the array is one item shorter) when it
         * is the previous item's. */
        bool same = kind != SHOAL__OP_DELDOC && prev && prev->kind != SHOAL__OP_DELDOC &&
                    same_field(prev, op);
        shoal__mpw_array(&w, op_items[kind] - (same ? 1u : 0u));
        shoal__mpw_uint(&w, kind);
        if (kind != SHOAL__OP_DELDOC && !same)
            shoal__mpw_str(&w, op->field, op->field_len);
        switch (kind) {
        case SHOAL__OP_SET: shoal__mpw_value(&w, &op->value); break;
        case SHOAL__OP_COUNT: shoal__mpw_int(&w, op->delta); break;
        case SHOAL__OP_INS:
        case SHOAL__OP_REP:
            write_ref(&w, c, &op->ref, (uint32_t)i);
            shoal__mpw_value(&w, &op->value);
            break;
        case SHOAL__OP_DEL: write_ref(&w, c, &op->ref, (uint32_t)i); break;
        case SHOAL__OP_INSRUN:
            write_ref(&w, c, &op->ref, (uint32_t)i);
            shoal__mpw_array(&w, (uint32_t)n);
            for (size_t k = i; k < j; k++)
                shoal__mpw_value(&w, &c->ops[k].value);
            break;
        case SHOAL__OP_TEXTRUN: {
            write_ref(&w, c, &op->ref, (uint32_t)i);
            size_t len = 0;
            for (size_t k = i; k < j; k++)
                len += c->ops[k].value.len;
            if (len > SHOAL__MAX_BODY) {
                w.err = SHOAL_ETOOBIG;
                break;
            }
            /* The str is the run's code points back to back: write its
             * canonical header and bytes directly. */
            shoal__buf *o = w.out;
            if (w.err)
                break;
            uint8_t h[5];
            size_t hl;
            if (len < 32) {
                h[0] = (uint8_t)(0xa0 | len);
                hl = 1;
            } else if (len < 256) {
                h[0] = 0xd9;
                h[1] = (uint8_t)len;
                hl = 2;
            } else if (len < 65536) {
                h[0] = 0xda;
                h[1] = (uint8_t)(len >> 8);
                h[2] = (uint8_t)len;
                hl = 3;
            } else {
                h[0] = 0xdb;
                shoal__be32_put(h + 1, (uint32_t)len);
                hl = 5;
            }
            w.err = shoal__buf_reserve(o, hl + len);
            if (w.err)
                break;
            memcpy(o->p + o->len, h, hl);
            o->len += hl;
            for (size_t k = i; k < j; k++) {
                memcpy(o->p + o->len, c->ops[k].value.ptr, c->ops[k].value.len);
                o->len += c->ops[k].value.len;
            }
            break;
        }
        case SHOAL__OP_DELRUN:
            write_ref(&w, c, &op->ref, (uint32_t)i);
            shoal__mpw_int(&w, dir > 0 ? (int64_t)n : -(int64_t)n);
            break;
        case SHOAL__OP_SINS:
            write_ref(&w, c, &op->ref, (uint32_t)i);
            shoal__mpw_uint(&w, n);
            break;
        case SHOAL__OP_SREP: write_ref(&w, c, &op->ref, (uint32_t)i); break;
        default: break; /* SWRITE, SCOUNT: the field alone */
        }
        prev = op;
        i = j;
    }
    if (v2) {
        shoal__mpw_array(&w, (uint32_t)c->nauth);
        for (size_t i = 0; i < c->nauth; i++)
            shoal__mpw_bin(&w, c->auth + i * 32, 32);
    }
    if (v2 && c->nseals) {
        shoal__mpw_array(&w, c->nseals);
        for (size_t i = 0; i < c->nseals; i++) {
            shoal__mpw_array(&w, 2);
            shoal__mpw_uint(&w, c->seal_class[i]);
            shoal__mpw_bin(&w, c->seal_commit + i * 32, 32);
        }
    }
    if (!w.err && out->len - start > SHOAL__MAX_BODY)
        w.err = SHOAL_ETOOBIG;
    if (w.err)
        out->len = start;
    return w.err;
}

/* ---------------------------------------------------------------- decoder */

/* A name (coll, doc or field): str of 1..max bytes, UTF-8, no NUL. */
static size_t
read_name(shoal__mpr *r, const uint8_t **p, size_t max)
{
    size_t n = shoal__mpr_str(r, p, max);
    if (!r->err && (n == 0 || memchr(*p, 0, n)))
        r->err = SHOAL_EPROTO;
    return n;
}

/* An array of 32-byte keys, sorted strictly ascending.  Returns the count
 * and, in *first, where the first key's bytes start (keys then follow at a
 * stride of BIN32_BYTES, since a canonical 32-byte bin has a 2-byte
 * header). */
static uint32_t
read_keys(shoal__mpr *r, uint32_t max, const uint8_t **first)
{
    uint32_t n = shoal__mpr_array(r, max, BIN32_BYTES);
    const uint8_t *prev = NULL;
    *first = NULL;
    for (uint32_t i = 0; i < n && !r->err; i++) {
        const uint8_t *k;
        size_t len = shoal__mpr_bin(r, &k, 32);
        if (r->err)
            break;
        if (len != 32 || (prev && memcmp(prev, k, 32) >= 0)) {
            r->err = SHOAL_EPROTO;
            break;
        }
        if (!prev)
            *first = k;
        prev = k;
    }
    return r->err ? 0 : n;
}

static void
copy_keys(uint8_t *dst, const uint8_t *first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(dst + i * 32, first + i * BIN32_BYTES, 32);
}

/* A ref at expanded op index i: nil (INS only: the list head), a negative
 * int -d (op i - d of this change, 1 <= d <= i) or [hlc, author_ix, index]
 * naming an op of another change. */
static void
read_ref(shoal__mpr *r, const shoal__change *c, uint8_t kind, uint32_t i, shoal__ref *ref)
{
    memset(ref, 0, sizeof *ref);
    if (shoal__mpr_is_nil(r)) {
        shoal__mpr_nil(r);
        if (kind != SHOAL__OP_INS && kind != SHOAL__OP_INSRUN && kind != SHOAL__OP_TEXTRUN &&
            kind != SHOAL__OP_SINS)
            r->err = SHOAL_EPROTO;
        ref->head = true;
        return;
    }
    if (shoal__mpr_peek(r) == SHOAL_T_INT) {
        /* An op of this change: the shorter of index (uint) and -(i -
         * index), the negative form when both take as many bytes. */
        int64_t v = shoal__mpr_int(r);
        if (r->err)
            return;
        if (v >= 0) {
            if ((uint64_t)v >= i || uint_bytes((uint32_t)v) >= neg_bytes(i - (uint32_t)v)) {
                r->err = SHOAL_EPROTO;
                return;
            }
            ref->index = (uint32_t)v;
        } else {
            uint64_t d = (uint64_t)(-(v + 1)) + 1;
            if (d > i || neg_bytes((uint32_t)d) > uint_bytes(i - (uint32_t)d)) {
                r->err = SHOAL_EPROTO;
                return;
            }
            ref->index = (uint32_t)(i - d);
        }
        ref->hlc = c->hlc;
        ref->author = 0;
        return;
    }
    uint32_t n = shoal__mpr_array(r, UINT32_MAX, 1);
    if (r->err)
        return;
    if (n != 3) {
        r->err = SHOAL_EPROTO;
        return;
    }
    ref->hlc = shoal__mpr_uint(r);
    uint64_t ai = shoal__mpr_uint(r);
    uint64_t ix = shoal__mpr_uint(r);
    if (r->err)
        return;
    /* An op of this change must use the short form. */
    if (ai > c->nauthors || ix > UINT32_MAX || (ai == 0 && ref->hlc == c->hlc)) {
        r->err = SHOAL_EPROTO;
        return;
    }
    ref->author = (uint32_t)ai;
    ref->index = (uint32_t)ix;
}

/* The decoder's growing op array. */
typedef struct opvec {
    shoal__op *ops; /* owned until handed to the change */
    size_t n;
    size_t cap;
} opvec;

/* Room for k more ops (the total stays <= SHOAL__MAX_OPS); NULL on error. */
static shoal__op *
opvec_grow(shoal__mpr *r, opvec *v, uint64_t k)
{
    if (r->err)
        return NULL;
    if (k > SHOAL__MAX_OPS - v->n) {
        r->err = SHOAL_ETOOBIG;
        return NULL;
    }
    if (v->n + k > v->cap) {
        size_t cap = v->cap * 2 > v->n + k ? v->cap * 2 : v->n + (size_t)k;
        if (cap > SHOAL__MAX_OPS)
            cap = SHOAL__MAX_OPS;
        shoal__op *p = shoal__realloc(v->ops, cap * sizeof *p);
        if (!p) {
            r->err = SHOAL_ENOMEM;
            return NULL;
        }
        v->ops = p;
        v->cap = cap;
    }
    shoal__op *o = v->ops + v->n;
    memset(o, 0, (size_t)k * sizeof *o);
    for (uint64_t j = 0; j < k; j++)
        o[j].value.type = SHOAL_T_NIL;
    return o;
}

/* Read one item of the ops array and append the op(s) it stands for.
 * field and flen carry the field of the previous item (NULL at the start and
 * after DELDOC); *dir receives the DEL direction of the item (0 unless it
 * is a DEL run). */
static void
read_item(shoal__mpr *r, const shoal__change *c, opvec *v, const uint8_t **field, size_t *flen,
          int *dir)
{
    *dir = 0;
    uint32_t n = shoal__mpr_array(r, UINT32_MAX, 1);
    if (r->err)
        return;
    if (n == 0) {
        r->err = SHOAL_EPROTO;
        return;
    }
    uint64_t kind = shoal__mpr_uint(r);
    if (r->err)
        return;
    if (kind < SHOAL__OP_SET || kind > SHOAL__OP_SREP ||
        (n != op_items[kind] && (kind == SHOAL__OP_DELDOC || n + 1 != op_items[kind]))) {
        r->err = SHOAL_EPROTO;
        return;
    }
    uint32_t i = (uint32_t)v->n;
    if (kind == SHOAL__OP_DELDOC) {
        shoal__op *op = opvec_grow(r, v, 1);
        if (op) {
            op->kind = SHOAL__OP_DELDOC;
            v->n++;
        }
        *field = NULL;
        return;
    }
    const uint8_t *f;
    size_t fl;
    if (n + 1 == op_items[kind]) {
        /* No field: the previous item's. */
        if (!*field) {
            r->err = SHOAL_EPROTO;
            return;
        }
        f = *field;
        fl = *flen;
    } else {
        fl = read_name(r, &f, SHOAL_MAX_FIELD);
        if (!r->err && *field && fl == *flen && memcmp(f, *field, fl) == 0)
            r->err = SHOAL_EPROTO; /* must have been left out */
    }
    if (r->err)
        return;
    *field = f;
    *flen = fl;
    shoal__ref ref;
    memset(&ref, 0, sizeof ref);
    shoal__op *op = NULL;
    size_t k = 1; /* ops the item stands for */
    switch (kind) {
    case SHOAL__OP_SET:
    case SHOAL__OP_UNSET:
    case SHOAL__OP_COUNT:
        if (!(op = opvec_grow(r, v, 1)))
            return;
        if (kind == SHOAL__OP_SET)
            shoal__mpr_value(r, &op->value);
        if (kind == SHOAL__OP_COUNT)
            op->delta = shoal__mpr_int(r); /* 0 too: makes the field a counter */
        break;
    case SHOAL__OP_INS:
    case SHOAL__OP_REP:
    case SHOAL__OP_DEL:
        read_ref(r, c, (uint8_t)kind, i, &ref);
        if (!(op = opvec_grow(r, v, 1)))
            return;
        op->ref = ref;
        if (kind != SHOAL__OP_DEL)
            shoal__mpr_value(r, &op->value);
        break;
    case SHOAL__OP_INSRUN: {
        read_ref(r, c, (uint8_t)kind, i, &ref);
        k = shoal__mpr_array(r, SHOAL__MAX_OPS, 1);
        if (!r->err && k < 2)
            r->err = SHOAL_EPROTO;
        if (!(op = opvec_grow(r, v, k)))
            return;
        bool text = true;
        for (size_t j = 0; j < k && !r->err; j++) {
            shoal__mpr_value(r, &op[j].value);
            text = text && one_cp(&op[j].value);
        }
        if (!r->err && text)
            r->err = SHOAL_EPROTO; /* must have been a TEXT run */
        break;
    }
    case SHOAL__OP_TEXTRUN: {
        read_ref(r, c, (uint8_t)kind, i, &ref);
        const uint8_t *s;
        size_t len = shoal__mpr_str(r, &s, SHOAL__MAX_BODY);
        if (r->err)
            return;
        k = 0;
        for (size_t o = 0; o < len; o += utf8_seq(s[o]))
            k++;
        if (k < 2) {
            r->err = SHOAL_EPROTO;
            return;
        }
        if (!(op = opvec_grow(r, v, k)))
            return;
        for (size_t j = 0, o = 0; j < k; j++) {
            size_t l = utf8_seq(s[o]);
            op[j].value.type = SHOAL_T_STR;
            op[j].value.ptr = s + o;
            op[j].value.len = l;
            o += l;
        }
        break;
    }
    case SHOAL__OP_DELRUN: {
        read_ref(r, c, (uint8_t)kind, i, &ref);
        int64_t cnt = shoal__mpr_int(r);
        if (r->err)
            return;
        uint64_t m = cnt < 0 ? (uint64_t)(-(cnt + 1)) + 1 : (uint64_t)cnt;
        if (m < 2 || m > SHOAL__MAX_DELRUN) {
            r->err = m < 2 ? SHOAL_EPROTO : SHOAL_ETOOBIG;
            return;
        }
        k = (size_t)m;
        if (cnt > 0 ? (uint64_t)ref.index + (k - 1) > UINT32_MAX : ref.index < k - 1) {
            r->err = SHOAL_EPROTO;
            return;
        }
        if (!(op = opvec_grow(r, v, k)))
            return;
        *dir = cnt > 0 ? 1 : -1;
        for (size_t j = 0; j < k; j++) {
            op[j].ref = ref;
            op[j].ref.index = cnt > 0 ? ref.index + (uint32_t)j : ref.index - (uint32_t)j;
        }
        break;
    }
    case SHOAL__OP_SWRITE:
    case SHOAL__OP_SCOUNT:
        if (!(op = opvec_grow(r, v, 1)))
            return;
        op->value = redacted;
        break;
    case SHOAL__OP_SREP:
        read_ref(r, c, (uint8_t)kind, i, &ref);
        if (!(op = opvec_grow(r, v, 1)))
            return;
        op->ref = ref;
        op->value = redacted;
        break;
    case SHOAL__OP_SINS: {
        /* k linked inserts whose values are in a group: capped like a DEL
         * run, since its ops cost no bytes of the body */
        read_ref(r, c, (uint8_t)kind, i, &ref);
        uint64_t m = shoal__mpr_uint(r);
        if (r->err)
            return;
        if (m < 1 || m > SHOAL__MAX_DELRUN) {
            r->err = m < 1 ? SHOAL_EPROTO : SHOAL_ETOOBIG;
            return;
        }
        k = (size_t)m;
        if (!(op = opvec_grow(r, v, k)))
            return;
        for (size_t j = 0; j < k; j++)
            op[j].value = redacted;
        break;
    }
    default: break;
    }
    if (r->err)
        return;
    /* Fill in what every op of the item shares. */
    uint8_t base = kind == SHOAL__OP_INSRUN || kind == SHOAL__OP_TEXTRUN || kind == SHOAL__OP_SINS
                       ? SHOAL__OP_INS
                   : kind == SHOAL__OP_DELRUN ? SHOAL__OP_DEL
                   : kind == SHOAL__OP_SWRITE ? SHOAL__OP_SET
                   : kind == SHOAL__OP_SCOUNT ? SHOAL__OP_COUNT
                   : kind == SHOAL__OP_SREP   ? SHOAL__OP_REP
                                              : (uint8_t)kind;
    bool sealed = kind >= SHOAL__OP_SWRITE;
    for (size_t j = 0; j < k; j++) {
        op[j].kind = base;
        op[j].sealed = sealed;
        op[j].field = f;
        op[j].field_len = fl;
    }
    if (base == SHOAL__OP_INS) {
        op[0].ref = ref;
        for (size_t j = 1; j < k; j++) {
            op[j].ref.hlc = c->hlc;
            op[j].ref.index = i + (uint32_t)j - 1;
        }
    }
    v->n += k;
}

int
shoal__change_peek(const uint8_t *body, size_t len, uint64_t *seq, uint64_t *hlc)
{
    shoal__mpr r;
    shoal__mpr_init(&r, body, len);
    (void)shoal__mpr_array(&r, 10, 1); /* [seq, hlc, ...] */
    *seq = shoal__mpr_uint(&r);
    if (hlc)
        *hlc = shoal__mpr_uint(&r);
    return r.err;
}

int
shoal__change_decode(const uint8_t *body, size_t len, shoal__change *c)
{
    shoal__mpr r;
    const uint8_t *deps0, *authors0;
    /* Overwrite (never free) what c held: callers may pass a struct whose
     * only initialised member is author. */
    uint8_t author[32];
    memcpy(author, c->author, 32);
    memset(c, 0, sizeof *c);
    memcpy(c->author, author, 32);
    shoal__mpr_init(&r, body, len);

    uint32_t items = shoal__mpr_array(&r, UINT32_MAX, 1);
    if (!r.err && (items < 8 || items > 10))
        r.err = SHOAL_EPROTO;
    c->version = items >= 9 ? SHOAL__FORMAT_V2 : SHOAL__FORMAT_V1;
    c->seq = shoal__mpr_uint(&r);
    if (!r.err && c->seq == 0)
        r.err = SHOAL_EPROTO;
    c->hlc = shoal__mpr_uint(&r);
    c->ndeps = read_keys(&r, SHOAL__MAX_DEPS, &deps0);
    c->coll_len = read_name(&r, &c->coll, SHOAL_MAX_COLLECTION);
    c->doc_len = read_name(&r, &c->doc, SHOAL_MAX_DOC_ID);
    c->epoch = shoal__mpr_uint(&r);
    c->nauthors = read_keys(&r, SHOAL__MAX_AUTHORS, &authors0);
    for (size_t i = 0; i < c->nauthors && !r.err; i++)
        if (memcmp(authors0 + i * BIN32_BYTES, c->author, 32) == 0)
            r.err = SHOAL_EPROTO;
    uint32_t nitems = shoal__mpr_array(&r, SHOAL__MAX_OPS, MIN_OP_BYTES);
    if (r.err)
        goto fail;

    /* Expand the items into ops.  Every op but those of a DEL run takes at
     * least one byte of the items, so nitems + the bytes left bound the
     * count in all other cases: one allocation of that size (at most
     * SHOAL__MAX_OPS), grown by doubling only for DEL runs, and trimmed at
     * the end, where the keys are appended. */
    opvec v = { NULL, 0, 0 };
    if (nitems > 0) {
        size_t cap = (size_t)nitems + (size_t)(r.end - r.p);
        if (cap > SHOAL__MAX_OPS)
            cap = SHOAL__MAX_OPS;
        v.ops = shoal__malloc(cap * sizeof *v.ops);
        if (!v.ops) {
            r.err = SHOAL_ENOMEM;
            goto fail;
        }
        v.cap = cap;
    }
    const uint8_t *field = NULL;
    size_t flen = 0;
    int dir = 0;
    size_t pfirst = 0; /* first op of the previous item */
    for (uint32_t it = 0; it < nitems && !r.err; it++) {
        size_t first = v.n;
        int pdir = dir;
        read_item(&r, c, &v, &field, &flen, &dir);
        /* Canonical grouping: the item could not have continued the one
         * before it (unless that one was a full DEL run). */
        if (!r.err && first > 0 && group_room(v.ops, pfirst, first) &&
            ops_link(c, &v.ops[first - 1], &v.ops[first], (uint32_t)first, pdir))
            r.err = SHOAL_EPROTO;
        pfirst = first;
    }
    /* auth: change ids in their order (it has a meaning), not sorted */
    const uint8_t *auth0 = NULL;
    if (c->version == SHOAL__FORMAT_V2 && !r.err) {
        c->nauth = shoal__mpr_array(&r, SHOAL__MAX_AUTH, BIN32_BYTES);
        for (size_t i = 0; i < c->nauth && !r.err; i++) {
            const uint8_t *k = NULL;
            if (shoal__mpr_bin(&r, &k, 32) != 32 && !r.err)
                r.err = SHOAL_EPROTO;
            if (i == 0)
                auth0 = k;
        }
    }
    /* seals: [[class, commitment], ...], classes strictly ascending; the
     * item is there exactly when some op is sealed */
    const uint8_t *seal0[SHOAL__MAX_SEALS];
    if (items == 10 && !r.err) {
        uint32_t ns = shoal__mpr_array(&r, SHOAL__MAX_SEALS, 1 + 1 + BIN32_BYTES);
        if (!r.err && ns == 0)
            r.err = SHOAL_EPROTO;
        for (uint32_t i = 0; i < ns && !r.err; i++) {
            if (shoal__mpr_array(&r, 2, 1) != 2 && !r.err)
                r.err = SHOAL_EPROTO;
            uint64_t cls = shoal__mpr_uint(&r);
            if (shoal__mpr_bin(&r, &seal0[i], 32) != 32 && !r.err)
                r.err = SHOAL_EPROTO;
            if (!r.err &&
                (cls == 0 || cls > SHOAL__MAX_SEALS || (i && c->seal_class[i - 1] >= cls)))
                r.err = SHOAL_EPROTO;
            c->seal_class[i] = (uint8_t)cls;
        }
        c->nseals = r.err ? 0 : (uint8_t)ns;
    }
    if (!r.err) {
        bool any = false;
        for (size_t i = 0; i < v.n && !any; i++)
            any = v.ops[i].sealed;
        if (any != (c->nseals > 0))
            r.err = SHOAL_EPROTO;
    }
    if (shoal__mpr_finish(&r)) {
        shoal__free(v.ops);
        goto fail;
    }
    size_t keys = (c->ndeps + c->nauthors + c->nauth + c->nseals) * 32;
    size_t opsz = v.n * sizeof(shoal__op);
    if (opsz + keys > 0) {
        uint8_t *block = shoal__realloc(v.ops, opsz + keys);
        if (!block) {
            shoal__free(v.ops);
            r.err = SHOAL_ENOMEM;
            goto fail;
        }
        c->ops = (shoal__op *)(void *)block;
        copy_keys(block + opsz, deps0, c->ndeps);
        copy_keys(block + opsz + c->ndeps * 32, authors0, c->nauthors);
        copy_keys(block + opsz + (c->ndeps + c->nauthors) * 32, auth0, c->nauth);
        c->deps = c->ndeps ? block + opsz : NULL;
        c->authors = c->nauthors ? block + opsz + c->ndeps * 32 : NULL;
        c->auth = c->nauth ? block + opsz + (c->ndeps + c->nauthors) * 32 : NULL;
        uint8_t *sc = block + opsz + (c->ndeps + c->nauthors + c->nauth) * 32;
        for (size_t i = 0; i < c->nseals; i++)
            memcpy(sc + i * 32, seal0[i], 32);
        c->seal_commit = c->nseals ? sc : NULL;
    }
    c->nops = v.n;
    return SHOAL_OK;
fail:
    shoal__change_clear(c);
    return r.err;
}

/* ---------------------------------------------------------- sealed groups */

/* A sealed group is [salt, class, entries]: one entry per sealed item of
 * its class, in the order of the ops (docs/format.md "Sealed fields").
 * Items are found with the encoder's grouping (item_end), so an entry
 * stands for exactly what one body item stands for. */

static const char seal_ctx[] = "shoal-seal-v2";

void
shoal__seal_commit(const uint8_t *group, size_t len, uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)seal_ctx, sizeof seal_ctx); /* with the NUL */
    crypto_generichash_update(&st, group, len);
    crypto_generichash_final(&st, out, 32);
}

/* Whether the sealed item starting at op i belongs to class cls. */
static bool
item_in_class(const shoal__change *c, size_t i, uint8_t cls, shoal__class_fn class_of, void *arg)
{
    const shoal__op *op = &c->ops[i];
    return op->sealed && class_of(op->field, op->field_len, arg) == cls;
}

int
shoal__seal_group(const shoal__change *c, uint8_t cls, const uint8_t salt[SHOAL__SALT_BYTES],
                  shoal__class_fn class_of, void *arg, shoal__buf *out)
{
    size_t n = 0;
    for (size_t i = 0, j; i < c->nops; i = j) {
        int dir;
        j = item_end(c, i, &dir);
        n += item_in_class(c, i, cls, class_of, arg);
    }
    if (n == 0)
        return SHOAL_EINVAL;
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 3);
    shoal__mpw_bin(&w, salt, SHOAL__SALT_BYTES);
    shoal__mpw_uint(&w, cls);
    shoal__mpw_array(&w, (uint32_t)n);
    for (size_t i = 0, j; i < c->nops && !w.err; i = j) {
        int dir;
        j = item_end(c, i, &dir);
        if (!item_in_class(c, i, cls, class_of, arg))
            continue;
        const shoal__op *op = &c->ops[i];
        if (op->kind != SHOAL__OP_COUNT && op->kind != SHOAL__OP_UNSET &&
            shoal__value_check(&op->value)) {
            w.err = SHOAL_EINVAL; /* REDACTED: nothing to seal */
            break;
        }
        switch (op->kind) {
        case SHOAL__OP_SET:
            shoal__mpw_array(&w, 1);
            shoal__mpw_value(&w, &op->value);
            break;
        case SHOAL__OP_UNSET: shoal__mpw_array(&w, 0); break;
        case SHOAL__OP_COUNT:
            if (op->value.type == SHOAL_T_REDACTED)
                w.err = SHOAL_EINVAL;
            shoal__mpw_int(&w, op->delta);
            break;
        case SHOAL__OP_INS: {
            if (j - i == 1) {
                shoal__mpw_value(&w, &op->value);
                break;
            }
            bool text = true;
            size_t len = 0;
            for (size_t k = i; k < j; k++) {
                text = text && one_cp(&c->ops[k].value);
                len += c->ops[k].value.len;
            }
            if (text) {
                /* one str of the run's code points */
                uint8_t *s = shoal__malloc(len);
                if (!s) {
                    w.err = SHOAL_ENOMEM;
                    break;
                }
                for (size_t k = i, o = 0; k < j; k++) {
                    memcpy(s + o, c->ops[k].value.ptr, c->ops[k].value.len);
                    o += c->ops[k].value.len;
                }
                shoal__mpw_str(&w, s, len);
                shoal__free(s);
            } else {
                shoal__mpw_array(&w, (uint32_t)(j - i));
                for (size_t k = i; k < j; k++)
                    shoal__mpw_value(&w, &c->ops[k].value);
            }
            break;
        }
        default: shoal__mpw_value(&w, &op->value); break; /* REP */
        }
    }
    if (w.err)
        out->len = start;
    return w.err;
}

/* Read the entries of a group into the sealed items of class cls of c:
 * a dry run first (write false) so that a group that does not fit
 * leaves c unchanged, then for real. */
static int
read_entries(shoal__change *c, shoal__mpr *r, uint32_t n, uint8_t cls, shoal__class_fn class_of,
             void *arg, bool write)
{
    uint32_t seen = 0;
    for (size_t i = 0, j; i < c->nops && !r->err; i = j) {
        int dir;
        j = item_end(c, i, &dir);
        if (!item_in_class(c, i, cls, class_of, arg))
            continue;
        if (++seen > n) {
            r->err = SHOAL_EPROTO;
            break;
        }
        shoal__op *op = &c->ops[i];
        shoal_value v;
        switch (op->kind) {
        case SHOAL__OP_SET:
        case SHOAL__OP_UNSET: {
            uint32_t m = shoal__mpr_array(r, 1, 1);
            if (m == 1)
                shoal__mpr_value(r, &v);
            if (write && !r->err) {
                op->kind = m ? SHOAL__OP_SET : SHOAL__OP_UNSET;
                op->value = m ? v : (shoal_value){ .type = SHOAL_T_NIL };
            }
            break;
        }
        case SHOAL__OP_COUNT: {
            int64_t d = shoal__mpr_int(r);
            if (write && !r->err) {
                op->delta = d;
                op->value.type = SHOAL_T_NIL;
            }
            break;
        }
        case SHOAL__OP_INS:
            if (j - i == 1) {
                shoal__mpr_value(r, &v);
                if (write && !r->err)
                    op->value = v;
            } else if (shoal__mpr_peek(r) == SHOAL_T_STR) {
                const uint8_t *s;
                size_t len = shoal__mpr_str(r, &s, SHOAL__MAX_BODY);
                size_t k = 0, o = 0;
                for (; o < len && !r->err; o += utf8_seq(s[o]), k++)
                    if (write && k < j - i)
                        c->ops[i + k].value = (shoal_value){ .type = SHOAL_T_STR,
                                                             .ptr = s + o,
                                                             .len = utf8_seq(s[o]) };
                if (!r->err && k != j - i)
                    r->err = SHOAL_EPROTO;
            } else {
                uint32_t m = shoal__mpr_array(r, SHOAL__MAX_DELRUN, 1);
                bool text = true;
                if (!r->err && m != j - i)
                    r->err = SHOAL_EPROTO;
                for (size_t k = i; k < j && !r->err; k++) {
                    shoal__mpr_value(r, &v);
                    text = text && one_cp(&v);
                    if (write && !r->err)
                        c->ops[k].value = v;
                }
                if (!r->err && text)
                    r->err = SHOAL_EPROTO; /* must have been a str */
            }
            break;
        default: /* REP */
            shoal__mpr_value(r, &v);
            if (write && !r->err)
                op->value = v;
            break;
        }
    }
    if (!r->err && seen != n)
        r->err = SHOAL_EPROTO;
    return r->err;
}

int
shoal__change_disclose(shoal__change *c, uint32_t g, const uint8_t *group, size_t len,
                       shoal__class_fn class_of, void *arg)
{
    if (g >= c->nseals)
        return SHOAL_EINVAL;
    uint8_t h[32];
    shoal__seal_commit(group, len, h);
    if (sodium_memcmp(h, c->seal_commit + (size_t)g * 32, 32) != 0)
        return SHOAL_EINVAL;
    for (int pass = 0; pass < 2; pass++) {
        shoal__mpr r;
        shoal__mpr_init(&r, group, len);
        const uint8_t *salt;
        if (shoal__mpr_array(&r, 3, 1) != 3 && !r.err)
            r.err = SHOAL_EPROTO;
        if (shoal__mpr_bin(&r, &salt, SHOAL__SALT_BYTES) != SHOAL__SALT_BYTES && !r.err)
            r.err = SHOAL_EPROTO;
        if (shoal__mpr_uint(&r) != c->seal_class[g] && !r.err)
            r.err = SHOAL_EPROTO;
        uint32_t n = shoal__mpr_array(&r, SHOAL__MAX_OPS, 1);
        if (!r.err)
            read_entries(c, &r, n, c->seal_class[g], class_of, arg, pass == 1);
        if (shoal__mpr_finish(&r))
            return r.err == SHOAL_ENOMEM ? r.err : SHOAL_EPROTO;
    }
    return SHOAL_OK;
}

bool
shoal__change_disclosed(const shoal__change *c)
{
    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].sealed && c->ops[i].value.type == SHOAL_T_REDACTED)
            return false;
    return true;
}
