/*
 * crdt/doc.c - the CRDT state of one document.
 *
 * A document is (epoch, deleted, exists) plus, per field, up to three
 * states, one per kind: a register (winning op id and value, or absent), a
 * PN-counter (per author P and N totals) and a list (shoal__list, RGA).
 * Each kind remembers the smallest op id of that kind seen in the epoch
 * ("first op"); the visible kind of a field is the kind whose first op is
 * greatest.  The rules are spelled out in docs/semantics.md and the two
 * canonical encodings in docs/state-format.md.
 *
 * Why it is built this way:
 * - Op ids inside the document carry an author *index* into a per-document
 *   table of 32-byte keys (interned through the base hash map), so
 *   a list element id is 16 bytes instead of 44.  Comparing two ids compares
 *   the keys behind the indexes, never the indexes, so the order of
 *   interning never shows.  The canonical encoding writes a sorted table of
 *   the authors that the state actually uses and remaps every index to it,
 *   so the bytes do not depend on interning order either, nor on authors of
 *   changes whose ops were all discarded.
 * - Fields live in the base hash map (base/map.h) keyed by name, with a
 *   one-entry cache of the last field touched: a list trace replays through
 *   shoal__doc_apply with one memcmp per op and no hashing.  Sorting by name
 *   happens only when a view or an encoding is made (rejected: a sorted
 *   array, which makes every new field O(n); a tree, more code for nothing
 *   the hot path needs).
 * - Tombstoned list elements are encoded without their value: whether a
 *   concurrent replace reached an element before or after its delete
 *   differs between replicas, and the replace is dead either way.  Keeping
 *   the value in the full encoding would make converged replicas differ.
 * - decode_full reads a trusted local snapshot but is still strict: every
 *   count is bounded by the bytes that remain (shoal__mpr), structural rules
 *   are checked, and finally the decoded state is re-encoded and must equal
 *   the input byte for byte, so encode(decode(x)) == x holds by construction
 *   and any non-canonical input is SHOAL_ECORRUPT.
 *
 * Ownership: the doc owns its author table, its fields, every field's name,
 * register value copy, counter entries and list.  Views hand out pointers
 * into those (Borrowed until the next change to the doc).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"

/* Format version inside the full encoding (docs/state-format.md).  Bump it
 * when the layout changes; snapshots of another version are SHOAL_ECORRUPT
 * and must be rebuilt from the change log. */
enum {
    FULL_FORMAT = 1
};

typedef struct cnt_entry {
    uint32_t author; /* index into the doc's author table */
    uint64_t p;      /* sum of increments, wrapping */
    uint64_t n;      /* sum of decrements (as positive numbers), wrapping */
} cnt_entry;

typedef struct field {
    uint8_t *name; /* Owned by this struct. */
    size_t name_len;
    bool has_reg;
    bool has_cnt;
    bool reg_present; /* false: the register holds "absent" */
    shoal__eid reg_first;
    shoal__eid reg_op;   /* op that wrote the current value */
    shoal_value reg_val; /* Owned copy when reg_present. */
    shoal__eid cnt_first;
    cnt_entry *cnt; /* Owned; sorted by author index. */
    size_t ncnt, cnt_cap;
    uint32_t cnt_hidden; /* sealed increments not disclosed: the counter reads REDACTED */
    shoal__eid list_first;
    shoal__list *list; /* Owned; NULL until the first list op. */
} field;

struct shoal__doc {
    uint64_t epoch;
    bool deleted;
    bool exists;
    uint8_t (*keys)[32]; /* Owned: author table. */
    uint32_t nkeys, keys_cap;
    shoal__map kmap; /* key -> index + 1; keys Borrowed from `keys` */
    field **fields;  /* Owned: every field, insertion order. */
    size_t nfields, fields_cap;
    shoal__map fmap; /* name -> field; names Borrowed from the fields */
    field *last;     /* cache of the last field looked up */
};

/* ------------------------------------------------------------ authors */

static uint32_t
author_find(const shoal__doc *d, const uint8_t *key)
{
    uintptr_t v = (uintptr_t)shoal__map_get(&d->kmap, key, SHOAL_KEY_BYTES);
    return v ? (uint32_t)(v - 1) : UINT32_MAX;
}

/* Point the map at keys again (after the table moved); room for
 * keys_cap entries is reserved, so nothing allocates. */
static void
author_rehash(shoal__doc *d)
{
    shoal__map_reset(&d->kmap);
    for (uint32_t i = 0; i < d->nkeys; i++)
        (void)shoal__map_put(&d->kmap, d->keys[i], SHOAL_KEY_BYTES, (void *)(uintptr_t)(i + 1));
}

static int
author_intern(shoal__doc *d, const uint8_t *key, uint32_t *out)
{
    uint32_t ix = author_find(d, key);
    if (ix != UINT32_MAX) {
        *out = ix;
        return SHOAL_OK;
    }
    if (d->nkeys >= UINT32_MAX / 4)
        return SHOAL_ETOOBIG;
    if (d->nkeys == d->keys_cap) {
        /* A new table, not realloc: on failure the map still points into
         * the old one, which stays valid. */
        uint32_t cap = d->keys_cap ? d->keys_cap * 2 : 4;
        int rc = shoal__map_reserve(&d->kmap, cap);
        if (rc)
            return rc;
        uint8_t(*p)[SHOAL_KEY_BYTES] = shoal__malloc((size_t)cap * SHOAL_KEY_BYTES);
        if (!p)
            return SHOAL_ENOMEM;
        if (d->nkeys)
            memcpy(p, d->keys, (size_t)d->nkeys * SHOAL_KEY_BYTES);
        shoal__free(d->keys);
        d->keys = p;
        d->keys_cap = cap;
        author_rehash(d);
    }
    memcpy(d->keys[d->nkeys], key, SHOAL_KEY_BYTES);
    /* Room for keys_cap entries was reserved: the put cannot fail. */
    (void)shoal__map_put(&d->kmap, d->keys[d->nkeys], SHOAL_KEY_BYTES,
                         (void *)(uintptr_t)(d->nkeys + 1));
    *out = d->nkeys++;
    return SHOAL_OK;
}

static int
author_cmp(uint32_t a, uint32_t b, void *ctx)
{
    const shoal__doc *d = ctx;
    if (a == b)
        return 0;
    return memcmp(d->keys[a], d->keys[b], 32);
}

static int
eid_cmp(const shoal__doc *d, const shoal__eid *a, const shoal__eid *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if (a->author != b->author) {
        int c = memcmp(d->keys[a->author], d->keys[b->author], 32);
        if (c)
            return c < 0 ? -1 : 1;
    }
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return 0;
}

/* ------------------------------------------------------------- fields */

static void
field_free(field *f)
{
    if (!f)
        return;
    if (f->reg_present)
        shoal__value_clear(&f->reg_val);
    shoal__free(f->cnt);
    shoal__list_free(f->list);
    shoal__free(f->name);
    shoal__free(f);
}

static void
clear_fields(shoal__doc *d)
{
    for (size_t i = 0; i < d->nfields; i++)
        field_free(d->fields[i]);
    d->nfields = 0;
    shoal__map_reset(&d->fmap);
    d->last = NULL;
}

static field *
field_find(const shoal__doc *d, const uint8_t *name, size_t len)
{
    if (d->last && d->last->name_len == len && memcmp(d->last->name, name, len) == 0)
        return d->last;
    return shoal__map_get(&d->fmap, name, len);
}

static bool
name_ok(const uint8_t *p, size_t n)
{
    return p && n >= 1 && n <= SHOAL_MAX_FIELD && !memchr(p, 0, n) && shoal__utf8_valid(p, n);
}

/* The field called name, created empty if missing. */
static int
field_get(shoal__doc *d, const uint8_t *name, size_t len, field **out)
{
    field *f = field_find(d, name, len);
    if (f) {
        d->last = f;
        *out = f;
        return SHOAL_OK;
    }
    if (!name_ok(name, len))
        return SHOAL_EPROTO;
    if (d->nfields == d->fields_cap) {
        size_t cap = d->fields_cap ? d->fields_cap * 2 : 8;
        void *p = shoal__realloc(d->fields, cap * sizeof *d->fields);
        if (!p)
            return SHOAL_ENOMEM;
        d->fields = p;
        d->fields_cap = cap;
    }
    int rc = shoal__map_reserve(&d->fmap, d->nfields + 1);
    if (rc)
        return rc;
    f = shoal__calloc(1, sizeof *f);
    if (!f)
        return SHOAL_ENOMEM;
    f->name = shoal__malloc(len);
    if (!f->name) {
        shoal__free(f);
        return SHOAL_ENOMEM;
    }
    memcpy(f->name, name, len);
    f->name_len = len;
    (void)shoal__map_put(&d->fmap, f->name, len, f); /* reserved above */
    d->fields[d->nfields++] = f;
    d->last = f;
    *out = f;
    return SHOAL_OK;
}

static bool
field_empty(const field *f)
{
    return !f->has_reg && !f->has_cnt && !f->list;
}

/* Visible kind: the kind whose first op is greatest; 0 if none or if that
 * is a register holding absent. */
static shoal_kind
field_visible(const shoal__doc *d, const field *f)
{
    shoal_kind k = 0;
    const shoal__eid *best = NULL;
    if (f->has_reg) {
        k = SHOAL_K_REGISTER;
        best = &f->reg_first;
    }
    if (f->has_cnt && (!best || eid_cmp(d, &f->cnt_first, best) > 0)) {
        k = SHOAL_K_COUNTER;
        best = &f->cnt_first;
    }
    if (f->list && (!best || eid_cmp(d, &f->list_first, best) > 0))
        k = SHOAL_K_LIST;
    if (k == SHOAL_K_REGISTER && !f->reg_present)
        return 0;
    return k;
}

static int
cnt_find(const field *f, uint32_t author, size_t *pos)
{
    size_t lo = 0, hi = f->ncnt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->cnt[mid].author < author)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return lo < f->ncnt && f->cnt[lo].author == author;
}

static int
cnt_add(field *f, uint32_t author, int64_t delta)
{
    size_t pos;
    if (!cnt_find(f, author, &pos)) {
        if (f->ncnt == f->cnt_cap) {
            size_t cap = f->cnt_cap ? f->cnt_cap * 2 : 2;
            void *p = shoal__realloc(f->cnt, cap * sizeof *f->cnt);
            if (!p)
                return SHOAL_ENOMEM;
            f->cnt = p;
            f->cnt_cap = cap;
        }
        memmove(f->cnt + pos + 1, f->cnt + pos, (f->ncnt - pos) * sizeof *f->cnt);
        f->cnt[pos] = (cnt_entry){ author, 0, 0 };
        f->ncnt++;
    }
    if (delta >= 0)
        f->cnt[pos].p += (uint64_t)delta;
    else
        f->cnt[pos].n += -(uint64_t)delta;
    return SHOAL_OK;
}

static int64_t
cnt_value(const field *f)
{
    uint64_t p = 0, n = 0;
    for (size_t i = 0; i < f->ncnt; i++) {
        p += f->cnt[i].p;
        n += f->cnt[i].n;
    }
    return (int64_t)(p - n);
}

/* ------------------------------------------------------------- public */

shoal__doc *
shoal__doc_new(void)
{
    shoal__doc *d = shoal__calloc(1, sizeof(shoal__doc));
    if (d) {
        shoal__map_init_borrow(&d->kmap);
        shoal__map_init_borrow(&d->fmap);
    }
    return d;
}

void
shoal__doc_free(shoal__doc *d)
{
    if (!d)
        return;
    clear_fields(d);
    shoal__free(d->fields);
    shoal__map_clear(&d->fmap, NULL);
    shoal__free(d->keys);
    shoal__map_clear(&d->kmap, NULL);
    shoal__free(d);
}

bool
shoal__doc_exists(const shoal__doc *d)
{
    return d->exists;
}

bool
shoal__doc_deleted(const shoal__doc *d)
{
    return d->deleted;
}

uint64_t
shoal__doc_epoch(const shoal__doc *d)
{
    return d->epoch;
}

const uint8_t *
shoal__doc_author_key(const shoal__doc *d, uint32_t author)
{
    return author < d->nkeys ? d->keys[author] : NULL;
}

const shoal__list *
shoal__doc_list(const shoal__doc *d, const uint8_t *name, size_t len)
{
    const field *f = field_find(d, name, len);
    return f ? f->list : NULL;
}

int
shoal__doc_field_kind(const shoal__doc *d, const uint8_t *name, size_t len, shoal_kind *out)
{
    const field *f = field_find(d, name, len);
    shoal_kind k = f ? field_visible(d, f) : 0;
    if (!k)
        return SHOAL_ENOTFOUND;
    *out = k;
    return SHOAL_OK;
}

/* Per-call cache that maps a change's author indexes to the doc's table. */
typedef struct refmap {
    const shoal__change *c;
    uint32_t own;     /* doc index of c->author */
    uint32_t last_ai; /* last other author index looked up */
    uint32_t last_ix;
} refmap;

/* Element id named by ref, or false if it cannot name a known element. */
static bool
ref_eid(shoal__doc *d, refmap *m, const shoal__ref *ref, shoal__eid *out)
{
    uint32_t ix;
    if (ref->author == 0) {
        ix = m->own;
    } else if (ref->author == m->last_ai) {
        ix = m->last_ix;
    } else {
        const uint8_t *key = shoal__change_author(m->c, ref->author);
        if (!key)
            return false;
        ix = author_find(d, key);
        if (ix == UINT32_MAX)
            return false;
        m->last_ai = ref->author;
        m->last_ix = ix;
    }
    *out = (shoal__eid){ ref->hlc, ix, ref->index };
    return true;
}

static void
first_min(const shoal__doc *d, shoal__eid *first, const shoal__eid *id)
{
    if (eid_cmp(d, id, first) < 0)
        *first = *id;
}

static bool
value_type_ok(const shoal_value *v)
{
    return v->type >= SHOAL_T_NIL && v->type <= SHOAL_T_REDACTED &&
           ((v->type != SHOAL_T_STR && v->type != SHOAL_T_BYTES) ||
            (v->len <= SHOAL_MAX_VALUE && (v->ptr || v->len == 0)));
}

static int
apply_reg(shoal__doc *d, field *f, const shoal__eid *id, const shoal_value *v)
{
    if (f->has_reg) {
        first_min(d, &f->reg_first, id);
        if (eid_cmp(d, id, &f->reg_op) <= 0)
            return SHOAL_OK;
    }
    shoal_value nv = { .type = SHOAL_T_NIL };
    if (v) {
        int rc = shoal__value_copy(&nv, v);
        if (rc)
            return rc;
    }
    if (f->reg_present)
        shoal__value_clear(&f->reg_val);
    f->reg_present = v != NULL;
    if (v)
        f->reg_val = nv;
    if (!f->has_reg) {
        f->has_reg = true;
        f->reg_first = *id;
    }
    f->reg_op = *id;
    return SHOAL_OK;
}

/* Missing references (docs/semantics.md, "References that no longer
 * resolve").  A list op whose ref names no element of the list is a no-op,
 * not an error: after an equivocation is resolved, a change built on the
 * losing version may name an element that only that version created (or
 * one inserted after such an element, which was itself a no-op).  The
 * choice is made from the change and the state it applies to, and every
 * replica applies the changes of a document in a causal order in which
 * the element, if it exists at all, was created first; so the outcome is
 * the same everywhere.  Only refs that could lie in the change's causal
 * past qualify (ref_check: an earlier op of the change, or an op stamped
 * before it; SHOAL_EPROTO otherwise), and an author index outside the
 * change's authors stays an error. */

/* Structural checks of a list op's ref that hold whether or not the
 * element exists: NULL or the reason for SHOAL_EPROTO.  The ref must name an op that
 * can lie in the change's causal past: an earlier op of the change itself,
 * or an op stamped strictly before the change (an author's clock has
 * observed every change it applied, so each is stamped before its next
 * tick).  An op of another author at the change's own clock value, or
 * later, is concurrent at best: whether it is known when the change
 * applies would depend on arrival order, so it is refused, for INS, DEL
 * and REP alike, whatever the replica holds. */
static const char *
ref_problem(const shoal__change *c, const shoal__op *op, uint32_t index)
{
    if (op->ref.head)
        return op->kind == SHOAL__OP_INS ? NULL : "a delete or replace of the list head";
    if (!shoal__change_author(c, op->ref.author))
        return "a ref to an author index outside the change's authors";
    if (op->ref.hlc < c->hlc)
        return NULL;
    /* Same clock: only an earlier op of this change (own author). */
    if (op->ref.hlc == c->hlc && op->ref.author == 0 && op->ref.index < index)
        return NULL;
    if (op->ref.hlc == c->hlc && op->ref.author == 0)
        return "a ref to a later op of the change itself";
    return op->ref.hlc == c->hlc ? "a ref to another author's op stamped with the change's own "
                                   "clock, which cannot be in its causal past"
                                 : "a ref to an op stamped later than the change";
}

static int
ref_check(const refmap *m, const shoal__op *op, const shoal__eid *id)
{
    return ref_problem(m->c, op, id->index) ? SHOAL_EPROTO : SHOAL_OK;
}

const char *
shoal__doc_refusal(const shoal__change *c, size_t *op)
{
    for (size_t i = 0; i < c->nops && i <= UINT32_MAX; i++) {
        const shoal__op *o = &c->ops[i];
        const char *why = NULL;
        if (o->kind == SHOAL__OP_INS || o->kind == SHOAL__OP_DEL || o->kind == SHOAL__OP_REP)
            why = ref_problem(c, o, (uint32_t)i);
        if (why) {
            *op = i;
            return why;
        }
    }
    return NULL;
}

static int
list_err(int rc)
{
    return rc == SHOAL_ENOTFOUND ? SHOAL_EPROTO : rc;
}

static int
apply_op(shoal__doc *d, refmap *m, const shoal__op *op, const shoal__eid *id)
{
    field *f;
    int rc;
    shoal__eid rid;

    if (op->kind == SHOAL__OP_DELDOC) {
        d->deleted = true;
        clear_fields(d);
        return SHOAL_OK;
    }
    if (op->kind < SHOAL__OP_SET || op->kind > SHOAL__OP_REP || !op->field)
        return SHOAL_EPROTO;
    if ((op->kind == SHOAL__OP_SET || op->kind == SHOAL__OP_INS || op->kind == SHOAL__OP_REP) &&
        !value_type_ok(&op->value))
        return SHOAL_EPROTO;

    if (op->kind >= SHOAL__OP_INS) {
        rc = ref_check(m, op, id);
        if (rc)
            return rc;
        if (!op->ref.head) {
            /* A ref into a list that does not exist, or to an author this
             * document never saw, names no element: a no-op, and the
             * field is not even created. */
            if (!name_ok(op->field, op->field_len))
                return SHOAL_EPROTO;
            f = field_find(d, op->field, op->field_len);
            if (!f || !f->list || !ref_eid(d, m, &op->ref, &rid))
                return SHOAL_OK;
        }
    }
    rc = field_get(d, op->field, op->field_len, &f);
    if (rc)
        return rc;
    switch (op->kind) {
    case SHOAL__OP_SET: return apply_reg(d, f, id, &op->value);
    case SHOAL__OP_UNSET: return apply_reg(d, f, id, NULL);
    case SHOAL__OP_COUNT:
        if (op->value.type == SHOAL_T_REDACTED) {
            /* a sealed increment whose group is not held */
            if (f->cnt_hidden < UINT32_MAX)
                f->cnt_hidden++;
        } else if ((rc = cnt_add(f, id->author, op->delta))) {
            return rc;
        }
        if (!f->has_cnt) {
            f->has_cnt = true;
            f->cnt_first = *id;
        } else {
            first_min(d, &f->cnt_first, id);
        }
        return SHOAL_OK;
    case SHOAL__OP_INS:
        if (!f->list) { /* only at the head here (see above) */
            f->list = shoal__list_new(author_cmp, d);
            if (!f->list)
                return SHOAL_ENOMEM;
            f->list_first = *id;
        }
        rc = shoal__list_insert(f->list, op->ref.head ? NULL : &rid, id, &op->value);
        if (rc == SHOAL_ENOTFOUND)
            return SHOAL_OK; /* missing ref: a no-op */
        if (rc)
            return list_err(rc);
        first_min(d, &f->list_first, id);
        return SHOAL_OK;
    case SHOAL__OP_DEL:
    case SHOAL__OP_REP:
        if (op->kind == SHOAL__OP_DEL)
            rc = shoal__list_delete(f->list, &rid);
        else
            rc = shoal__list_replace(f->list, &rid, id, &op->value);
        if (rc == SHOAL_ENOTFOUND)
            return SHOAL_OK; /* missing ref: a no-op */
        if (rc)
            return list_err(rc);
        first_min(d, &f->list_first, id);
        return SHOAL_OK;
    }
    return SHOAL_EPROTO;
}

int
shoal__doc_apply(shoal__doc *d, const shoal__change *c, size_t from, size_t to)
{
    assert(from <= to && to <= c->nops);
    if (to > UINT32_MAX)
        return SHOAL_EPROTO;
    /* A change shoal__doc_refusal refuses is refused whatever d holds,
     * also when the epoch rule would discard its ops: otherwise whether it
     * counts as applied would depend on the order replicas receive it in
     * (one that got it before the document's epoch moved on refuses it,
     * one that got it after takes it), and so would every later change of
     * its author, which waits for it. */
    for (size_t i = from; i < to; i++) {
        const shoal__op *o = &c->ops[i];
        if ((o->kind == SHOAL__OP_INS || o->kind == SHOAL__OP_DEL || o->kind == SHOAL__OP_REP) &&
            ref_problem(c, o, (uint32_t)i))
            return SHOAL_EPROTO;
    }
    d->exists = true;
    if (c->epoch < d->epoch)
        return SHOAL_OK;
    if (c->epoch > d->epoch) {
        clear_fields(d);
        d->epoch = c->epoch;
        d->deleted = false;
    }
    if (d->deleted || from == to)
        return SHOAL_OK;

    refmap m = { c, 0, 0, 0 };
    int rc = author_intern(d, c->author, &m.own);
    if (rc)
        return rc;
    for (size_t i = from; i < to && !d->deleted; i++) {
        shoal__opid oid = shoal__change_opid(c, (uint32_t)i);
        shoal__eid id = { oid.hlc, m.own, oid.index };
        rc = apply_op(d, &m, &c->ops[i], &id);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

/* A VOID change (docs/permissions.md, "Revoking a device"): its author
 * was revoked below its seq, so it takes no effect, but other changes may
 * name the list elements it inserted: each insert is kept as an invisible
 * anchor (inserted, then deleted by the same op id), and nothing else is
 * applied: no register, counter, delete or replace, no new epoch, no
 * DELDOC, and the document does not come to exist by it.  A change of
 * another epoch than d's, or to a deleted d, leaves d as it is.  The
 * refusals are shoal__doc_apply's. */
int
shoal__doc_apply_void(shoal__doc *d, const shoal__change *c)
{
    if (c->nops > UINT32_MAX)
        return SHOAL_EPROTO;
    for (size_t i = 0; i < c->nops; i++) {
        const shoal__op *o = &c->ops[i];
        if ((o->kind == SHOAL__OP_INS || o->kind == SHOAL__OP_DEL || o->kind == SHOAL__OP_REP) &&
            ref_problem(c, o, (uint32_t)i))
            return SHOAL_EPROTO;
    }
    if (c->epoch != d->epoch || d->deleted)
        return SHOAL_OK;
    refmap m = { c, 0, 0, 0 };
    bool any = false;
    for (size_t i = 0; i < c->nops && !any; i++)
        any = c->ops[i].kind == SHOAL__OP_INS;
    if (!any)
        return SHOAL_OK;
    int rc = author_intern(d, c->author, &m.own);
    if (rc)
        return rc;
    for (size_t i = 0; i < c->nops; i++) {
        const shoal__op *op = &c->ops[i];
        if (op->kind != SHOAL__OP_INS)
            continue;
        shoal__opid oid = shoal__change_opid(c, (uint32_t)i);
        shoal__eid id = { oid.hlc, m.own, oid.index };
        rc = apply_op(d, &m, op, &id);
        if (rc)
            return rc;
        field *f = field_find(d, op->field, op->field_len);
        if (f && f->list) {
            rc = shoal__list_delete(f->list, &id);
            if (rc && rc != SHOAL_ENOTFOUND) /* not inserted: its ref was missing */
                return list_err(rc);
        }
    }
    return SHOAL_OK;
}

/* ---------------------------------------------------------------- view */

static int
cmp_field_name(const void *a, const void *b)
{
    const field *x = *(field *const *)a, *y = *(field *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* Non-empty fields sorted by name (owned array, may be NULL when n == 0). */
static int
sorted_fields(const shoal__doc *d, field ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (d->nfields == 0)
        return SHOAL_OK;
    field **v = shoal__malloc(d->nfields * sizeof *v);
    if (!v)
        return SHOAL_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < d->nfields; i++)
        if (!field_empty(d->fields[i]))
            v[k++] = d->fields[i];
    qsort(v, k, sizeof *v, cmp_field_name);
    *out = v;
    *n = k;
    return SHOAL_OK;
}

typedef struct collect {
    shoal_value *items;
    size_t n, cap;
} collect;

static int
collect_visible(const shoal__eid *id, const shoal__eid *value_op, const shoal_value *v,
                bool deleted, void *arg)
{
    (void)id;
    (void)value_op;
    collect *c = arg;
    if (deleted)
        return 0;
    if (c->n == c->cap)
        return SHOAL_ECORRUPT; /* list_len disagrees with the walk */
    c->items[c->n++] = *v;
    return 0;
}

int
shoal__doc_view(const shoal__doc *d, shoal__vfield **out, size_t *n)
{
    field **fs;
    size_t nf;
    *out = NULL;
    *n = 0;
    if (!d->exists || d->deleted)
        return SHOAL_OK;
    int rc = sorted_fields(d, &fs, &nf);
    if (rc)
        return rc;
    shoal__vfield *v = nf ? shoal__calloc(nf, sizeof *v) : NULL;
    if (nf && !v) {
        shoal__free(fs);
        return SHOAL_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nf; i++) {
        const field *f = fs[i];
        shoal_kind kind = field_visible(d, f);
        if (!kind)
            continue;
        shoal__vfield *o = &v[k++];
        o->name = f->name;
        o->name_len = f->name_len;
        o->kind = kind;
        if (kind == SHOAL_K_REGISTER) {
            o->value = f->reg_val;
        } else if (kind == SHOAL_K_COUNTER) {
            o->counter = cnt_value(f);
            if (f->cnt_hidden)
                o->value.type = SHOAL_T_REDACTED;
        } else {
            size_t len = shoal__list_len(f->list);
            collect c = { NULL, 0, len };
            if (len) {
                c.items = shoal__malloc(len * sizeof *c.items);
                if (!c.items) {
                    rc = SHOAL_ENOMEM;
                    break;
                }
                o->items = c.items;
                rc = shoal__list_visit(f->list, collect_visible, &c);
                if (rc)
                    break;
            }
            o->nitems = c.n;
        }
    }
    shoal__free(fs);
    if (rc) {
        shoal__doc_view_free(v, k);
        return rc;
    }
    if (k == 0) {
        shoal__free(v);
        v = NULL;
    }
    *out = v;
    *n = k;
    return SHOAL_OK;
}

void
shoal__doc_view_free(shoal__vfield *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        shoal__free(v[i].items);
    shoal__free(v);
}

/* ----------------------------------------------------- full encoding */

typedef struct encctx {
    const shoal__doc *d;
    uint32_t *remap; /* doc index -> encoded index, UINT32_MAX unused */
    shoal__mpw *w;
} encctx;

static int
mark_elem(const shoal__eid *id, const shoal__eid *value_op, const shoal_value *v, bool deleted,
          void *arg)
{
    (void)v;
    encctx *e = arg;
    e->remap[id->author] = 0;
    if (!deleted)
        e->remap[value_op->author] = 0;
    return 0;
}

static void
put_eid(encctx *e, const shoal__eid *id)
{
    shoal__mpw_uint(e->w, id->hlc);
    shoal__mpw_uint(e->w, e->remap[id->author]);
    shoal__mpw_uint(e->w, id->index);
}

static int
write_elem(const shoal__eid *id, const shoal__eid *value_op, const shoal_value *v, bool deleted,
           void *arg)
{
    encctx *e = arg;
    if (deleted) {
        shoal__mpw_array(e->w, 3);
        put_eid(e, id);
    } else {
        shoal__mpw_array(e->w, 7);
        put_eid(e, id);
        put_eid(e, value_op);
        shoal__mpw_value(e->w, v);
    }
    return e->w->err;
}

typedef struct keyref {
    const uint8_t *key;
    uint32_t ix;
} keyref;

static int
cmp_keyref(const void *a, const void *b)
{
    return memcmp(((const keyref *)a)->key, ((const keyref *)b)->key, 32);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int
shoal__doc_encode_full(const shoal__doc *d, shoal__buf *out)
{
    field **fs = NULL;
    size_t nf = 0;
    keyref *kr = NULL;
    cnt_entry *ce = NULL;
    encctx e = { d, NULL, NULL };
    shoal__mpw w;
    int rc = sorted_fields(d, &fs, &nf);
    if (rc)
        return rc;
    if (d->nkeys) {
        e.remap = shoal__malloc((size_t)d->nkeys * sizeof *e.remap);
        kr = shoal__malloc((size_t)d->nkeys * sizeof *kr);
        if (!e.remap || !kr) {
            rc = SHOAL_ENOMEM;
            goto done;
        }
        memset(e.remap, 0xff, (size_t)d->nkeys * sizeof *e.remap);
    }
    /* Mark the authors the state uses; sort them by key; remap. */
    size_t maxcnt = 0;
    for (size_t i = 0; i < nf; i++) {
        const field *f = fs[i];
        if (f->has_reg) {
            e.remap[f->reg_first.author] = 0;
            e.remap[f->reg_op.author] = 0;
        }
        if (f->has_cnt) {
            e.remap[f->cnt_first.author] = 0;
            for (size_t j = 0; j < f->ncnt; j++)
                e.remap[f->cnt[j].author] = 0;
            if (f->ncnt > maxcnt)
                maxcnt = f->ncnt;
        }
        if (f->list) {
            e.remap[f->list_first.author] = 0;
            shoal__list_visit(f->list, mark_elem, &e);
        }
    }
    uint32_t nused = 0;
    for (uint32_t i = 0; i < d->nkeys; i++)
        if (e.remap[i] == 0)
            kr[nused++] = (keyref){ d->keys[i], i };
    if (nused > 1)
        qsort(kr, nused, sizeof *kr, cmp_keyref);
    for (uint32_t i = 0; i < nused; i++)
        e.remap[kr[i].ix] = i;
    if (maxcnt) {
        ce = shoal__malloc(maxcnt * sizeof *ce);
        if (!ce) {
            rc = SHOAL_ENOMEM;
            goto done;
        }
    }

    shoal__mpw_init(&w, out);
    e.w = &w;
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, FULL_FORMAT);
    shoal__mpw_uint(&w, d->epoch);
    shoal__mpw_bool(&w, d->deleted);
    shoal__mpw_bool(&w, d->exists);
    shoal__mpw_array(&w, nused);
    for (uint32_t i = 0; i < nused; i++)
        shoal__mpw_bin(&w, kr[i].key, 32);
    shoal__mpw_array(&w, (uint32_t)nf);
    for (size_t i = 0; i < nf && !w.err; i++) {
        const field *f = fs[i];
        shoal__mpw_array(&w, 4);
        shoal__mpw_str(&w, f->name, f->name_len);
        if (f->has_reg) {
            shoal__mpw_array(&w, f->reg_present ? 7 : 6);
            put_eid(&e, &f->reg_first);
            put_eid(&e, &f->reg_op);
            if (f->reg_present)
                shoal__mpw_value(&w, &f->reg_val);
        } else {
            shoal__mpw_nil(&w);
        }
        if (f->has_cnt) {
            /* Entries sorted by encoded author index = by key. */
            for (size_t j = 0; j < f->ncnt; j++) {
                ce[j] = f->cnt[j];
                ce[j].author = e.remap[f->cnt[j].author];
            }
            if (f->ncnt > 1) /* (none: a counter of hidden increments only) */
                qsort(ce, f->ncnt, sizeof *ce, cmp_u32); /* author is the first member */
            shoal__mpw_array(&w, (uint32_t)(3 + 3 * f->ncnt + (f->cnt_hidden ? 1 : 0)));
            put_eid(&e, &f->cnt_first);
            for (size_t j = 0; j < f->ncnt; j++) {
                shoal__mpw_uint(&w, ce[j].author);
                shoal__mpw_uint(&w, ce[j].p);
                shoal__mpw_uint(&w, ce[j].n);
            }
            if (f->cnt_hidden)
                shoal__mpw_uint(&w, f->cnt_hidden);
        } else {
            shoal__mpw_nil(&w);
        }
        if (f->list) {
            size_t total = shoal__list_total(f->list);
            shoal__mpw_array(&w, 4);
            put_eid(&e, &f->list_first);
            shoal__mpw_array(&w, (uint32_t)total);
            if (!w.err) {
                int vr = shoal__list_visit(f->list, write_elem, &e);
                if (vr && !w.err)
                    w.err = vr;
            }
        } else {
            shoal__mpw_nil(&w);
        }
    }
    rc = w.err;
done:
    shoal__free(ce);
    shoal__free(kr);
    shoal__free(e.remap);
    shoal__free(fs);
    return rc;
}

/* ---------------------------------------------------- full decoding */

typedef struct decctx {
    shoal__mpr r;
    shoal__doc *d;
    bool bad; /* structural rule broken */
} decctx;

static void
get_eid(decctx *x, shoal__eid *id)
{
    id->hlc = shoal__mpr_uint(&x->r);
    uint64_t a = shoal__mpr_uint(&x->r);
    uint64_t ix = shoal__mpr_uint(&x->r);
    if (a >= x->d->nkeys || ix > UINT32_MAX)
        x->bad = true;
    id->author = x->bad ? 0 : (uint32_t)a;
    id->index = (uint32_t)ix;
}

static bool
ok(const decctx *x)
{
    return !x->bad && !x->r.err;
}

static int
decode_field(decctx *x, const uint8_t *prev, size_t prev_len, field **fout)
{
    shoal__mpr *r = &x->r;
    shoal__doc *d = x->d;
    const uint8_t *name;
    field *f;
    int rc;

    if (shoal__mpr_array(r, 4, 1) != 4)
        x->bad = true;
    size_t len = shoal__mpr_str(r, &name, SHOAL_MAX_FIELD);
    if (!ok(x) || !name_ok(name, len))
        return SHOAL_ECORRUPT;
    if (prev) {
        size_t n = len < prev_len ? len : prev_len;
        int c = memcmp(prev, name, n);
        if (c > 0 || (c == 0 && prev_len >= len))
            return SHOAL_ECORRUPT; /* names strictly ascending */
    }
    rc = field_get(d, name, len, &f);
    if (rc)
        return rc == SHOAL_EPROTO ? SHOAL_ECORRUPT : rc;
    *fout = f;

    /* register */
    if (shoal__mpr_is_nil(r)) {
        shoal__mpr_nil(r);
    } else {
        uint32_t n = shoal__mpr_array(r, 7, 1);
        if (n != 6 && n != 7)
            x->bad = true;
        get_eid(x, &f->reg_first);
        get_eid(x, &f->reg_op);
        if (!ok(x))
            return SHOAL_ECORRUPT;
        f->has_reg = true;
        if (n == 7) {
            shoal_value v;
            shoal__mpr_value(r, &v);
            if (!ok(x))
                return SHOAL_ECORRUPT;
            rc = shoal__value_copy(&f->reg_val, &v);
            if (rc)
                return rc;
            f->reg_present = true;
        }
    }
    /* counter */
    if (shoal__mpr_is_nil(r)) {
        shoal__mpr_nil(r);
    } else {
        /* [first op id, entries..., hidden increments if any] */
        uint32_t n = shoal__mpr_array(r, UINT32_MAX, 1);
        bool hidden = n % 3 == 1;
        if (hidden ? n < 4 : n < 6 || n % 3 != 0)
            x->bad = true;
        get_eid(x, &f->cnt_first);
        if (!ok(x))
            return SHOAL_ECORRUPT;
        f->has_cnt = true;
        size_t k = n / 3 - 1;
        f->cnt = shoal__malloc(k ? k * sizeof *f->cnt : 1);
        if (!f->cnt)
            return SHOAL_ENOMEM;
        f->cnt_cap = k;
        uint64_t prev_a = 0;
        for (size_t j = 0; j < k && ok(x); j++) {
            uint64_t a = shoal__mpr_uint(r);
            if (a >= d->nkeys || (j > 0 && a <= prev_a))
                x->bad = true;
            prev_a = a;
            f->cnt[j].author = (uint32_t)(x->bad ? 0 : a);
            f->cnt[j].p = shoal__mpr_uint(r);
            f->cnt[j].n = shoal__mpr_uint(r);
            f->ncnt = j + 1;
        }
        if (hidden) {
            uint64_t h = shoal__mpr_uint(r);
            if (h == 0 || h > UINT32_MAX)
                x->bad = true;
            f->cnt_hidden = (uint32_t)h;
        }
        if (!ok(x))
            return SHOAL_ECORRUPT;
    }
    /* list */
    if (shoal__mpr_is_nil(r)) {
        shoal__mpr_nil(r);
    } else {
        if (shoal__mpr_array(r, 4, 1) != 4)
            x->bad = true;
        get_eid(x, &f->list_first);
        uint32_t n = shoal__mpr_array(r, UINT32_MAX, 4);
        if (!ok(x))
            return SHOAL_ECORRUPT;
        f->list = shoal__list_new(author_cmp, d);
        if (!f->list)
            return SHOAL_ENOMEM;
        for (uint32_t j = 0; j < n; j++) {
            shoal__eid id, vop;
            shoal_value v = { .type = SHOAL_T_NIL };
            uint32_t m = shoal__mpr_array(r, 7, 1);
            if (m != 3 && m != 7)
                x->bad = true;
            get_eid(x, &id);
            if (m == 7) {
                get_eid(x, &vop);
                shoal__mpr_value(r, &v);
            } else {
                vop = id;
            }
            if (!ok(x))
                return SHOAL_ECORRUPT;
            rc = shoal__list_append_raw(f->list, &id, &vop, &v, m == 3);
            if (rc)
                return rc == SHOAL_ENOMEM ? rc : SHOAL_ECORRUPT;
        }
    }
    return ok(x) ? SHOAL_OK : SHOAL_ECORRUPT;
}

int
shoal__doc_decode_full(const uint8_t *p, size_t n, shoal__doc **out)
{
    decctx x = { { 0 }, NULL, false };
    shoal__mpr *r = &x.r;
    shoal__buf again;
    int rc = SHOAL_ECORRUPT;

    *out = NULL;
    shoal__buf_init(&again);
    x.d = shoal__doc_new();
    if (!x.d)
        return SHOAL_ENOMEM;
    shoal__mpr_init(r, p, n);
    r->redacted_ok = true;
    if (shoal__mpr_array(r, 6, 1) != 6 || shoal__mpr_uint(r) != FULL_FORMAT)
        goto fail;
    x.d->epoch = shoal__mpr_uint(r);
    x.d->deleted = shoal__mpr_bool(r);
    x.d->exists = shoal__mpr_bool(r);
    uint32_t na = shoal__mpr_array(r, UINT32_MAX / 4, 34);
    if (r->err)
        goto fail;
    for (uint32_t i = 0; i < na; i++) {
        const uint8_t *key;
        uint32_t ix;
        if (shoal__mpr_bin(r, &key, 32) != 32 || r->err)
            goto fail;
        if (i > 0 && memcmp(x.d->keys[i - 1], key, 32) >= 0)
            goto fail; /* strictly ascending, so interning gives index i */
        rc = author_intern(x.d, key, &ix);
        if (rc)
            goto fail;
        rc = SHOAL_ECORRUPT;
    }
    uint32_t nf = shoal__mpr_array(r, UINT32_MAX, 5);
    if (r->err)
        goto fail;
    if (nf && (x.d->deleted || !x.d->exists))
        goto fail;
    if (!x.d->exists && (x.d->epoch || x.d->deleted))
        goto fail;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < nf; i++) {
        field *f = NULL;
        rc = decode_field(&x, prev, prev_len, &f);
        if (rc)
            goto fail;
        if (field_empty(f)) {
            rc = SHOAL_ECORRUPT;
            goto fail;
        }
        prev = f->name;
        prev_len = f->name_len;
    }
    rc = SHOAL_ECORRUPT;
    if (shoal__mpr_finish(r))
        goto fail;
    /* The input must be exactly what this state encodes to (canonical). */
    rc = shoal__doc_encode_full(x.d, &again);
    if (rc)
        goto fail;
    if (again.len != n || memcmp(again.p, p, n) != 0) {
        rc = SHOAL_ECORRUPT;
        goto fail;
    }
    shoal__buf_free(&again);
    *out = x.d;
    return SHOAL_OK;
fail:
    shoal__buf_free(&again);
    shoal__doc_free(x.d);
    return rc == SHOAL_ENOMEM ? rc : SHOAL_ECORRUPT;
}

/* -------------------------------------------------- visible encoding */

int
shoal__doc_encode_visible(const shoal__doc *d, shoal__buf *out)
{
    shoal__vfield *v;
    size_t n;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    if (!d->exists || d->deleted) {
        shoal__mpw_nil(&w);
        return w.err;
    }
    int rc = shoal__doc_view(d, &v, &n);
    if (rc)
        return rc;
    shoal__mpw_map(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        shoal__mpw_str(&w, v[i].name, v[i].name_len);
        switch (v[i].kind) {
        case SHOAL_K_REGISTER: shoal__mpw_value(&w, &v[i].value); break;
        case SHOAL_K_COUNTER:
            if (v[i].value.type == SHOAL_T_REDACTED)
                shoal__mpw_value(&w, &v[i].value);
            else
                shoal__mpw_int(&w, v[i].counter);
            break;
        case SHOAL_K_LIST:
            shoal__mpw_array(&w, (uint32_t)v[i].nitems);
            for (size_t j = 0; j < v[i].nitems; j++)
                shoal__mpw_value(&w, &v[i].items[j]);
            break;
        }
    }
    shoal__doc_view_free(v, n);
    return w.err;
}

/* One visible list element into the query view; stops (returns 1) once
 * the expected number is written, so the walk never goes past the last
 * visible element it needs. */
typedef struct qview_walk {
    shoal__mpw *w;
    size_t left; /* visible elements still to write */
} qview_walk;

static int
qview_item(const shoal__eid *id, const shoal__eid *value_op, const shoal_value *v, bool deleted,
           void *arg)
{
    (void)id;
    (void)value_op;
    qview_walk *c = arg;
    if (deleted)
        return 0;
    shoal__mpw_value(c->w, v);
    return --c->left == 0;
}

/* Like encode_visible, but each field tagged by kind and lists over cap
 * items written as [4, n] from shoal__list_len alone, so the work is
 * O(fields + kept items) (crdt.h).  cap is at least SHOAL__Q_LIST_VIEW:
 * shoal__qview_parse refuses [4, n] with n <= SHOAL__Q_LIST_VIEW. */
static int
encode_qview(const shoal__doc *d, size_t cap, const shoal__fset *only, shoal__buf *out)
{
    field **fs;
    size_t nf, nvis = 0;
    shoal__mpw w;
    assert(cap >= SHOAL__Q_LIST_VIEW);
    shoal__mpw_init(&w, out);
    if (!d->exists || d->deleted) {
        shoal__mpw_nil(&w);
        return w.err;
    }
    int rc = sorted_fields(d, &fs, &nf);
    if (rc)
        return rc;
    for (size_t i = 0; i < nf; i++)
        nvis += field_visible(d, fs[i]) != 0 &&
                (!only || shoal__fset_has(only, fs[i]->name, fs[i]->name_len));
    shoal__mpw_map(&w, (uint32_t)nvis);
    for (size_t i = 0; i < nf && !rc; i++) {
        const field *f = fs[i];
        shoal_kind kind = field_visible(d, f);
        if (!kind || (only && !shoal__fset_has(only, f->name, f->name_len)))
            continue;
        shoal__mpw_str(&w, f->name, f->name_len);
        shoal__mpw_array(&w, 2);
        if (kind == SHOAL_K_REGISTER) {
            shoal__mpw_uint(&w, 1);
            shoal__mpw_value(&w, &f->reg_val);
            continue;
        }
        if (kind == SHOAL_K_COUNTER) {
            shoal__mpw_uint(&w, 2);
            if (f->cnt_hidden)
                shoal__mpw_value(&w, &(shoal_value){ .type = SHOAL_T_REDACTED });
            else
                shoal__mpw_int(&w, cnt_value(f));
            continue;
        }
        size_t len = shoal__list_len(f->list);
        if (len > UINT32_MAX) {
            rc = SHOAL_ETOOBIG;
            break;
        }
        if (len > cap) {
            shoal__mpw_uint(&w, 4);
            shoal__mpw_uint(&w, len);
            continue;
        }
        shoal__mpw_uint(&w, 3);
        shoal__mpw_array(&w, (uint32_t)len);
        if (len == 0)
            continue;
        qview_walk c = { &w, len };
        rc = shoal__list_visit(f->list, qview_item, &c);
        if (rc == 1 && c.left == 0)
            rc = SHOAL_OK;
        else
            rc = SHOAL_ECORRUPT; /* list_len disagrees with the walk */
    }
    shoal__free(fs);
    return rc ? rc : w.err;
}

int
shoal__doc_encode_qview(const shoal__doc *d, size_t cap, shoal__buf *out)
{
    return encode_qview(d, cap, NULL, out);
}

int
shoal__doc_encode_qview_only(const shoal__doc *d, const shoal__fset *only, shoal__buf *out)
{
    return encode_qview(d, SIZE_MAX, only, out);
}
