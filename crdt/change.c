/*
 * crdt/change.c - the change body: canonical encoding and strict decoding.
 *
 * A change body is one MessagePack array of 8 items (docs/format.md has
 * the byte-level spec; keep both in step, and bump SHOAL__FORMAT_VERSION
 * and add a vector under test/vectors/ for any change to the layout):
 *
 *   [seq, hlc, deps, coll, doc, epoch, authors, ops]
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

#include <string.h>

/* Smallest encoded sizes, for bounding counts by the remaining bytes. */
enum {
    BIN32_BYTES = 2 + 32,   /* bin8 header + 32 bytes */
    MIN_OP_BYTES = 2        /* [7]: fixarray + fixint */
};

/* Number of items in the op array of each kind (index = kind). */
static const uint8_t op_items[8] = {0, 3, 2, 3, 4, 3, 4, 1};

shoal__opid
shoal__change_opid(const shoal__change *c, uint32_t i)
{
    shoal__opid id = {c->hlc, c->author, i};
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
    memset(c, 0, sizeof *c);
    memcpy(c->author, author, 32);
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
        if (op->kind == SHOAL__OP_DELDOC)
            continue;
        if (!name_ok(op->field, op->field_len, SHOAL_MAX_FIELD))
            return SHOAL_EINVAL;
        switch (op->kind) {
        case SHOAL__OP_COUNT:
            if (op->delta == 0)
                return SHOAL_EINVAL;
            break;
        case SHOAL__OP_INS:
        case SHOAL__OP_DEL:
        case SHOAL__OP_REP:
            if (op->ref.head ? op->kind != SHOAL__OP_INS : op->ref.author > c->nauthors)
                return SHOAL_EINVAL;
            break;
        default:
            break;
        }
        if (op->kind == SHOAL__OP_SET || op->kind == SHOAL__OP_INS ||
            op->kind == SHOAL__OP_REP) {
            if (shoal__value_check(&op->value))
                return SHOAL_EINVAL;
        }
    }
    return SHOAL_OK;
}

static void
write_ref(shoal__mpw *w, const shoal__ref *ref)
{
    if (ref->head) {
        shoal__mpw_nil(w);
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
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 8);
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
    shoal__mpw_array(&w, (uint32_t)c->nops);
    for (size_t i = 0; i < c->nops && !w.err; i++) {
        const shoal__op *op = &c->ops[i];
        shoal__mpw_array(&w, op_items[op->kind]);
        shoal__mpw_uint(&w, op->kind);
        if (op->kind == SHOAL__OP_DELDOC)
            continue;
        shoal__mpw_str(&w, op->field, op->field_len);
        switch (op->kind) {
        case SHOAL__OP_SET:
            shoal__mpw_value(&w, &op->value);
            break;
        case SHOAL__OP_COUNT:
            shoal__mpw_int(&w, op->delta);
            break;
        case SHOAL__OP_INS:
        case SHOAL__OP_REP:
            write_ref(&w, &op->ref);
            shoal__mpw_value(&w, &op->value);
            break;
        case SHOAL__OP_DEL:
            write_ref(&w, &op->ref);
            break;
        default:
            break;
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

static void
read_ref(shoal__mpr *r, uint8_t kind, size_t nauthors, shoal__ref *ref)
{
    memset(ref, 0, sizeof *ref);
    if (shoal__mpr_is_nil(r)) {
        shoal__mpr_nil(r);
        if (kind != SHOAL__OP_INS)
            r->err = SHOAL_EPROTO;
        ref->head = true;
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
    if (ai > nauthors || ix > UINT32_MAX) {
        r->err = SHOAL_EPROTO;
        return;
    }
    ref->author = (uint32_t)ai;
    ref->index = (uint32_t)ix;
}

static void
read_op(shoal__mpr *r, size_t nauthors, shoal__op *op)
{
    memset(op, 0, sizeof *op);
    op->value.type = SHOAL_T_NIL;
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
    if (kind < SHOAL__OP_SET || kind > SHOAL__OP_DELDOC || n != op_items[kind]) {
        r->err = SHOAL_EPROTO;
        return;
    }
    op->kind = (uint8_t)kind;
    if (kind == SHOAL__OP_DELDOC)
        return;
    op->field_len = read_name(r, &op->field, SHOAL_MAX_FIELD);
    switch (kind) {
    case SHOAL__OP_SET:
        shoal__mpr_value(r, &op->value);
        break;
    case SHOAL__OP_COUNT:
        op->delta = shoal__mpr_int(r);
        if (!r->err && op->delta == 0)
            r->err = SHOAL_EPROTO;
        break;
    case SHOAL__OP_INS:
    case SHOAL__OP_REP:
        read_ref(r, op->kind, nauthors, &op->ref);
        shoal__mpr_value(r, &op->value);
        break;
    case SHOAL__OP_DEL:
        read_ref(r, op->kind, nauthors, &op->ref);
        break;
    default:
        break;
    }
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
    if (!r.err && items != 8)
        r.err = SHOAL_EPROTO;
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
    uint32_t nops = shoal__mpr_array(&r, SHOAL__MAX_OPS, MIN_OP_BYTES);
    if (r.err)
        goto fail;

    size_t keys = (c->ndeps + c->nauthors) * 32;
    size_t opsz = (size_t)nops * sizeof(shoal__op);
    if (opsz + keys > 0) {
        uint8_t *block = shoal__malloc(opsz + keys);
        if (!block) {
            r.err = SHOAL_ENOMEM;
            goto fail;
        }
        c->ops = (shoal__op *)(void *)block;
        copy_keys(block + opsz, deps0, c->ndeps);
        copy_keys(block + opsz + c->ndeps * 32, authors0, c->nauthors);
        c->deps = c->ndeps ? block + opsz : NULL;
        c->authors = c->nauthors ? block + opsz + c->ndeps * 32 : NULL;
    }
    c->nops = nops;
    for (uint32_t i = 0; i < nops && !r.err; i++)
        read_op(&r, c->nauthors, &c->ops[i]);
    if (shoal__mpr_finish(&r))
        goto fail;
    return SHOAL_OK;
fail:
    shoal__change_clear(c);
    return r.err;
}
