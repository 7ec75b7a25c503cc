/*
 * test/fuzz/fuzz_apply.c - the causal apply pipeline (core/apply.c) over
 * the in-memory store (core/apply_mem.c): one set of changes delivered in
 * three orders to three stores must leave them in the same state.
 *
 * Input: a byte stream read as up to MAX_CHANGES changes (a byte missing at
 * the end reads as 0).  Each item starts with a control byte c; author
 * (c >> 3) % 3 is one of the identities of test/vectors (fuzz_keys):
 *   c % 8 == 0  raw: a length (2 bytes, little-endian, modulo 512) and
 *               that many body bytes, sealed as they are (any op kind
 *               the decoder accepts, or garbage it refuses);
 *   c % 8 == 1  again: one more delivery of an earlier change (the next
 *               byte picks it): a duplicate;
 *   otherwise   built: a change the target builds and encodes from a few
 *               bytes (flags, a mask of deps among the 8 changes before,
 *               document and epoch, op count, one byte or two per op: set,
 *               unset, counter, insert at the head or after an element,
 *               runs of inserts (INSRUN / TEXTRUN items), runs of deletes
 *               (DELRUN), replace, document delete).  A built change
 *               depends on its author's previous built change and on the
 *               deps the mask names, takes an HLC above everything in its
 *               causal past, and names list elements only from that past
 *               (or its own earlier ops), as an honest author does.  Flags
 *               make it dishonest or late: another version of its
 *               author's last (author, seq) (an equivocation), a ref
 *               stamped after the change (refused when applied), a dep on
 *               a change that never comes, a gap in the seqs, an HLC past
 *               the drift window (held back).
 *
 * Deliveries, each import through shoal__memstore_import with the fixed
 * wall clock FUZZ_NOW_MS (so a held-back change is held back in every
 * order alike):
 *   store A: everything in one import (in input order);
 *   store B: one change per import, in an order shuffled by a hash of the
 *            input;
 *   store C: chunks of 1..8 changes in another shuffled order.
 * An import that is refused (a change in it fails to decode or to apply)
 * is delivered again one change per import, so every store ends up
 * offered every change alone at least once.
 *
 * Checks (FUZZ_CHECK aborts):
 *   - every refused import leaves both digests and the applied, pending
 *     and evidence counts as they were;
 *   - A, B and C end with the same full-state and visible-state digests
 *     and the same applied and pending counts;
 *   - delivering everything again to B (as one import, or one change per
 *     import if that is refused) applies nothing and changes neither
 *     digest nor the applied and pending counts.  (The evidence count may
 *     grow: a version that was refused alone, because it could not apply,
 *     is kept as evidence when it comes again after the other version was
 *     applied.)
 *
 * What is left out, and why (the check must hold for every input):
 *   - Versions of one (author, seq) must share their HLC and deps and hold
 *     only register and counter ops; a group of versions that does not is
 *     cut down to its first version in input order.  Otherwise the outcome
 *     depends on the order for dishonest authors by design: a dep on a
 *     version held as evidence counts as satisfied once the canonical
 *     version is applied, so a change may apply before the past of the
 *     version it names (test/core/test_apply.c, SHOAL_APPLY_FORKS=any);
 *     a canonical version that can never apply blocks the other one only
 *     in the orders where it came first; and a version refused when
 *     applied (a bad ref) is refused outright where it is the smallest
 *     one when it arrives, but kept as evidence (its id then satisfies
 *     deps) where a smaller version was applied before, so a change that
 *     depends on it applies in one order and waits forever in another.
 *   - A raw body that could apply (its deps are changes of the set) and
 *     names a list element (insert after, delete, replace) neither inserted
 *     by a change of its causal past (its deps, theirs, and so on) nor by
 *     an earlier op of its own is left out (unless it is refused
 *     outright): such a ref resolves or is a no-op depending on the order
 *     (docs/semantics.md, "References that no longer resolve": convergence
 *     holds for honest changes).  Built changes never do that.
 *
 * FUZZ_APPLY_DEBUG set in the environment: the set and every import are
 * printed on stderr (to read a crash).
 */
#include <string.h>

#include "apply_mem.h"
#include "crdt.h"
#include "fuzz.h"

enum {
    MAX_CHANGES = 24,   /* changes built or sealed per input */
    MAX_DELIVER = 32,   /* deliveries, duplicates included */
    MAX_OPS = 24,       /* ops of a built change */
    MAX_RAW = 511,      /* bytes of a raw body */
    MAX_ELEMS = 256,    /* list elements remembered */
    MAX_FIELD_KEEP = 16 /* field names of elements remembered up to this */
};

#define BASE_MS  1700000000000ull /* the vectors' HLCs (fuzz.h) */
#define DRIFT_MS 60000ull

static uint8_t pk[FUZZ_NKEYS][32], sk[FUZZ_NKEYS][64];
/* FUZZ_APPLY_DEBUG set: the set and every import on stderr (for a crash). */
static bool debug;

/* The documents built changes edit: two of the vectors' (so that built
 * changes meet raw ones taken from them) and one of their own. */
static const char *colls[3] = { "items", "items", "c" };
static const char *docs[3] = { "sku-1", "sku-2", "d0" };
static const char *fields[4] = { "f0", "f1", "f2", "f3" };
static const char *strs[4] = { "", "a", "bb", "\xc3\xa9" };
static const uint8_t bins[3] = { 0, 1, 0xc1 };

/* One change of the set. */
typedef struct chg {
    uint8_t *env; /* sealed envelope, owned */
    size_t len;
    shoal__rec rec;
    bool dec;      /* the body decodes */
    bool refused;  /* decodes but shoal__doc_refusal refuses it */
    bool regonly;  /* only SET / UNSET / COUNT ops */
    bool resolved; /* every dep is an earlier change of the set */
    bool dangling; /* names a list element not in its past nor its own */
    bool out;      /* left out of the deliveries */
    uint8_t author[32];
    uint64_t seq, hlc;
    uint8_t *deps; /* ndeps x 32, owned */
    size_t ndeps;
    uint64_t past; /* bit i: change i is in its causal past (from its deps) */
    int doc;       /* index into docs, -1 for another name */
    bool built;    /* built by the target (else raw) */
} chg;

/* A list element some change inserted. */
typedef struct elem {
    int ch; /* the change */
    uint64_t hlc;
    uint8_t key[32];
    uint32_t index;
    int doc;
    uint8_t field[MAX_FIELD_KEEP];
    size_t flen;
} elem;

typedef struct set {
    chg c[MAX_CHANGES];
    size_t n;
    elem e[MAX_ELEMS];
    size_t ne;
    size_t dl[MAX_DELIVER]; /* deliveries: indexes into c */
    size_t ndl;
    int last[FUZZ_NKEYS]; /* each author's last built change (-1: none) */
    uint64_t seq[FUZZ_NKEYS];
} set;

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t
next(reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keys(pk, sk);
    debug = getenv("FUZZ_APPLY_DEBUG") != NULL;
    return 0;
}

/* ------------------------------------------------------------ the set */

static int
doc_index(const shoal__change *c)
{
    for (int i = 0; i < 3; i++)
        if (c->coll_len == strlen(colls[i]) && memcmp(c->coll, colls[i], c->coll_len) == 0 &&
            c->doc_len == strlen(docs[i]) && memcmp(c->doc, docs[i], c->doc_len) == 0)
            return i;
    return -1;
}

/* Whether op i of d names an element of past or an earlier op of d. */
static bool
named_ok(const set *s, const shoal__change *d, uint64_t past, const shoal__op *o, size_t i)
{
    const uint8_t *key = shoal__change_author(d, o->ref.author);
    if (!key)
        return false;
    if (o->ref.hlc == d->hlc && o->ref.author == 0 && o->ref.index < i)
        return true;
    for (size_t j = 0; j < s->ne; j++) {
        const elem *e = &s->e[j];
        if ((past >> e->ch & 1) && e->hlc == o->ref.hlc && e->index == o->ref.index &&
            memcmp(e->key, key, 32) == 0)
            return true;
    }
    return false;
}

/* Seal body as author a's, add it to s and learn what it holds.  false
 * when s is full. */
static bool
add(set *s, int a, const uint8_t *body, size_t blen)
{
    if (s->n == MAX_CHANGES)
        return false;
    chg *c = &s->c[s->n];
    memset(c, 0, sizeof *c);
    shoal__buf env;
    shoal__buf_init(&env);
    FUZZ_CHECK(shoal__envelope_seal(body, blen, pk[a], sk[a], &env) == SHOAL_OK);
    c->env = shoal__buf_take(&env, &c->len);
    FUZZ_CHECK(c->env != NULL);
    size_t elen;
    FUZZ_CHECK(shoal__envelope_open(c->env, c->len, &elen, &c->rec.body, &c->rec.body_len) ==
               SHOAL_OK);
    FUZZ_CHECK(elen == c->len);
    c->rec.env = c->env;
    c->rec.env_len = c->len;
    shoal__change_id(c->env, c->len, c->rec.cid);
    memcpy(c->author, pk[a], 32);
    c->doc = -1;

    shoal__change d;
    memset(&d, 0, sizeof d);
    memcpy(d.author, pk[a], 32);
    if (shoal__change_decode(c->rec.body, c->rec.body_len, &d) == SHOAL_OK) {
        c->dec = true;
        c->seq = d.seq;
        c->hlc = d.hlc;
        c->doc = doc_index(&d);
        size_t at;
        c->refused = shoal__doc_refusal(&d, &at) != NULL;
        c->regonly = true;
        if (d.ndeps) {
            c->deps = shoal__malloc(d.ndeps * 32);
            FUZZ_CHECK(c->deps != NULL);
            memcpy(c->deps, d.deps, d.ndeps * 32);
            c->ndeps = d.ndeps;
        }
        c->resolved = true;
        for (size_t k = 0; k < d.ndeps; k++) {
            size_t j = 0;
            while (j < s->n && memcmp(s->c[j].rec.cid, d.deps + k * 32, 32) != 0)
                j++;
            if (j < s->n)
                c->past |= s->c[j].past | 1ull << j;
            else
                c->resolved = false;
        }
        for (size_t i = 0; i < d.nops; i++) {
            const shoal__op *o = &d.ops[i];
            if (o->kind != SHOAL__OP_SET && o->kind != SHOAL__OP_UNSET &&
                o->kind != SHOAL__OP_COUNT)
                c->regonly = false;
            if ((o->kind == SHOAL__OP_INS || o->kind == SHOAL__OP_DEL ||
                 o->kind == SHOAL__OP_REP) &&
                !o->ref.head && !named_ok(s, &d, c->past, o, i))
                c->dangling = true;
            if (o->kind == SHOAL__OP_INS && s->ne < MAX_ELEMS && o->field_len <= MAX_FIELD_KEEP &&
                i <= UINT32_MAX) {
                elem *e = &s->e[s->ne++];
                e->ch = (int)s->n;
                e->hlc = d.hlc;
                memcpy(e->key, pk[a], 32);
                e->index = (uint32_t)i;
                e->doc = c->doc;
                memcpy(e->field, o->field, o->field_len);
                e->flen = o->field_len;
            }
        }
        shoal__change_clear(&d);
    }
    s->n++;
    return true;
}

static void
set_free(set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        shoal__free(s->c[i].env);
        shoal__free(s->c[i].deps);
    }
}

static int
key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static void
value_of(shoal_value *v, uint8_t t, uint8_t x)
{
    memset(v, 0, sizeof *v);
    switch (t % 6) {
    case 0: v->type = SHOAL_T_NIL; break;
    case 1:
        v->type = SHOAL_T_BOOL;
        v->b = x & 1;
        break;
    case 2:
        v->type = SHOAL_T_INT;
        v->i = (int8_t)x;
        break;
    case 3:
        v->type = SHOAL_T_DOUBLE;
        v->d = (int8_t)x / 4.0;
        break;
    case 4:
        v->type = SHOAL_T_STR;
        v->ptr = (const uint8_t *)strs[x % 4];
        v->len = strlen(strs[x % 4]);
        break;
    default:
        v->type = SHOAL_T_BYTES;
        v->ptr = bins;
        v->len = x % 4;
        break;
    }
}

/* A built op and the author key of its ref (NULL: own or none). */
typedef struct bop {
    shoal__op op;
    const uint8_t *rkey;
} bop;

/* An element of c's past on document doc, chosen by x; NULL if none. */
static const elem *
pick(const set *s, uint64_t past, int doc, uint8_t x)
{
    const elem *v[MAX_ELEMS];
    size_t n = 0;
    for (size_t i = 0; i < s->ne; i++)
        if ((past >> s->e[i].ch & 1) && s->e[i].doc == doc)
            v[n++] = &s->e[i];
    return n ? v[x % n] : NULL;
}

static const elem *
find_elem(const set *s, uint64_t past, const elem *like, uint32_t index)
{
    for (size_t i = 0; i < s->ne; i++) {
        const elem *e = &s->e[i];
        if ((past >> e->ch & 1) && e->hlc == like->hlc && e->index == index &&
            memcmp(e->key, like->key, 32) == 0)
            return e;
    }
    return NULL;
}

static void
ref_to(bop *b, const elem *e)
{
    b->op.field = e->field;
    b->op.field_len = e->flen;
    b->op.ref.hlc = e->hlc;
    b->op.ref.index = e->index;
    b->rkey = e->key;
}

/* Build a change of author a from the bytes of r (control byte ctl read)
 * and add it to s. */
static bool
build(set *s, reader *r, uint8_t ctl)
{
    int a = (ctl >> 3) % FUZZ_NKEYS;
    uint8_t fl = next(r), mask = next(r), db = next(r), nb = next(r);
    bool equiv = (fl & 3) == 3 && s->last[a] >= 0;
    bool bad = (fl & 0x1c) == 0x1c;
    bool future = (fl & 0x1c) == 0x14;
    bool missing = (fl & 0xe0) == 0xe0;
    bool gap = (fl & 0xe0) == 0xc0;

    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, pk[a], 32);
    int doc = db % 3;
    c.coll = (const uint8_t *)colls[doc];
    c.coll_len = strlen(colls[doc]);
    c.doc = (const uint8_t *)docs[doc];
    c.doc_len = strlen(docs[doc]);
    c.epoch = (db >> 2) % 4 == 3 ? 1 + (db >> 4) % 2 : 0;

    uint8_t deps[10 * 32];
    size_t ndeps = 0;
    uint64_t past = 0;
    if (equiv) {
        /* Another version of a's last change: same seq, HLC and deps. */
        const chg *l = &s->c[s->last[a]];
        c.seq = l->seq;
        c.hlc = l->hlc;
        if (l->ndeps)
            memcpy(deps, l->deps, l->ndeps * 32);
        ndeps = l->ndeps;
        past = l->past;
    } else {
        uint64_t hlc = shoal__hlc_make(BASE_MS, 0);
        int own = s->last[a];
        for (int j = -1; j < 8; j++) {
            int i = j < 0 ? own : (int)s->n - 1 - j;
            if (i < 0 || (j >= 0 && !(mask >> j & 1)) || (j >= 0 && i == own))
                continue;
            const chg *d = &s->c[i];
            memcpy(deps + ndeps++ * 32, d->rec.cid, 32);
            past |= d->past | (1ull << i);
        }
        for (size_t i = 0; i < s->n; i++)
            if ((past >> i & 1) && s->c[i].dec && s->c[i].hlc > hlc)
                hlc = s->c[i].hlc;
        c.hlc = hlc > UINT64_MAX - 4 ? hlc : hlc + 1 + (fl & 3);
        if (future)
            c.hlc = shoal__hlc_make(FUZZ_NOW_MS + 2 * DRIFT_MS, 0);
        c.seq = s->seq[a] + 1 + (gap ? 1 : 0);
        if (missing) {
            /* A dep on a change no one will ever send. */
            memset(deps + ndeps * 32, 0x5a, 32);
            deps[ndeps++ * 32] = mask;
        }
        qsort(deps, ndeps, 32, key_cmp);
    }
    c.deps = deps;
    c.ndeps = ndeps;

    bop ops[MAX_OPS];
    size_t nops = 0;
    size_t want = 1 + nb % 6;
    for (size_t k = 0; k < want && nops < MAX_OPS; k++) {
        uint8_t b = next(r), x = next(r);
        unsigned kind = b % 8, f = (b >> 3) & 3, y = b >> 5;
        if (equiv)
            kind %= 3; /* register and counter ops only (see the top) */
        bop *o = &ops[nops];
        memset(o, 0, sizeof *o);
        o->op.field = (const uint8_t *)fields[f];
        o->op.field_len = 2;
        switch (kind) {
        case 0:
            o->op.kind = SHOAL__OP_SET;
            value_of(&o->op.value, y, x);
            nops++;
            break;
        case 1:
            o->op.kind = SHOAL__OP_UNSET;
            nops++;
            break;
        case 2:
            o->op.kind = SHOAL__OP_COUNT;
            o->op.delta = (int8_t)x;
            nops++;
            break;
        case 3:
        case 4: {
            o->op.kind = SHOAL__OP_INS;
            value_of(&o->op.value, y, x);
            const elem *e = kind == 4 ? pick(s, past, doc, x) : NULL;
            if (e)
                ref_to(o, e);
            else
                o->op.ref.head = true;
            nops++;
            break;
        }
        case 5:
        case 6: {
            const elem *e = pick(s, past, doc, x);
            if (!e)
                break;
            if (kind == 6) {
                o->op.kind = SHOAL__OP_REP;
                value_of(&o->op.value, y, (uint8_t)(x + 1));
                ref_to(o, e);
                nops++;
                break;
            }
            /* Deletes of consecutive elements of one insert run. */
            for (uint32_t j = 0; j <= y % 4 && e && nops < MAX_OPS; j++) {
                o = &ops[nops++];
                memset(o, 0, sizeof *o);
                o->op.kind = SHOAL__OP_DEL;
                ref_to(o, e);
                e = find_elem(s, past, e, e->index + 1);
            }
            break;
        }
        default:
            if (y == 7 && nops == 0) {
                o->op.kind = SHOAL__OP_DELDOC;
                o->op.field = NULL;
                o->op.field_len = 0;
                nops = 1;
                k = want;
                break;
            }
            /* A run of inserts, each after the one before. */
            for (unsigned j = 0; j < 2 + y % 5 && nops < MAX_OPS; j++) {
                o = &ops[nops];
                memset(o, 0, sizeof *o);
                o->op.kind = SHOAL__OP_INS;
                o->op.field = (const uint8_t *)fields[f];
                o->op.field_len = 2;
                if (x & 1) {
                    o->op.value.type = SHOAL_T_STR;
                    o->op.value.ptr = (const uint8_t *)"xyz" + j % 3;
                    o->op.value.len = 1;
                } else {
                    value_of(&o->op.value, 2, (uint8_t)(x + j));
                }
                if (j == 0) {
                    o->op.ref.head = true;
                } else {
                    o->op.ref.hlc = c.hlc;
                    o->op.ref.index = (uint32_t)(nops - 1);
                }
                nops++;
            }
            break;
        }
        if (nops && ops[0].op.kind == SHOAL__OP_DELDOC)
            break;
    }
    if (bad && nops < MAX_OPS) {
        /* A ref stamped after the change: refused whatever the document
         * holds, when the change is applied (decoding accepts it). */
        bop *o = &ops[nops++];
        memset(o, 0, sizeof *o);
        o->op.kind = SHOAL__OP_INS;
        o->op.field = (const uint8_t *)fields[0];
        o->op.field_len = 2;
        o->op.value.type = SHOAL_T_NIL;
        o->op.ref.hlc = c.hlc == UINT64_MAX ? c.hlc : c.hlc + 1;
        o->op.ref.index = 0;
    }
    if (nops == 0) {
        ops[0].op.kind = SHOAL__OP_UNSET;
        ops[0].op.field = (const uint8_t *)fields[0];
        ops[0].op.field_len = 2;
        ops[0].rkey = NULL;
        nops = 1;
    }
    if (ops[0].op.kind == SHOAL__OP_DELDOC)
        nops = 1;

    /* The author table: the other authors named, sorted; 0 is c's own. */
    uint8_t akeys[MAX_OPS * 32];
    size_t nak = 0;
    for (size_t i = 0; i < nops; i++) {
        const uint8_t *k = ops[i].rkey;
        if (!k || memcmp(k, c.author, 32) == 0)
            continue;
        bool have = false;
        for (size_t j = 0; j < nak && !have; j++)
            have = memcmp(akeys + j * 32, k, 32) == 0;
        if (!have)
            memcpy(akeys + nak++ * 32, k, 32);
    }
    qsort(akeys, nak, 32, key_cmp);
    shoal__op o[MAX_OPS];
    for (size_t i = 0; i < nops; i++) {
        o[i] = ops[i].op;
        o[i].ref.author = 0;
        for (size_t j = 0; ops[i].rkey && j < nak; j++)
            if (memcmp(akeys + j * 32, ops[i].rkey, 32) == 0)
                o[i].ref.author = (uint32_t)j + 1;
    }
    c.authors = nak ? akeys : NULL;
    c.nauthors = nak;
    c.ops = o;
    c.nops = nops;

    shoal__buf body;
    shoal__buf_init(&body);
    bool ok = true;
    if (shoal__change_encode(&c, &body) == SHOAL_OK) {
        size_t at = s->n;
        ok = add(s, a, body.p, body.len);
        if (ok)
            s->c[at].built = true;
        if (ok && !equiv) {
            s->last[a] = (int)at;
            s->seq[a] = c.seq;
        }
    }
    shoal__buf_free(&body);
    return ok;
}

/* Read the input into s. */
static void
parse(set *s, const uint8_t *data, size_t size)
{
    reader r = { data, size };
    uint8_t raw[MAX_RAW];
    for (int a = 0; a < FUZZ_NKEYS; a++)
        s->last[a] = -1;
    while (r.n > 0 && s->ndl < MAX_DELIVER) {
        uint8_t ctl = next(&r);
        if (ctl % 8 == 1) {
            if (s->n)
                s->dl[s->ndl++] = next(&r) % s->n;
            continue;
        }
        size_t before = s->n;
        if (ctl % 8 == 0) {
            size_t len = (next(&r) | (size_t)next(&r) << 8) % (MAX_RAW + 1);
            if (len > r.n)
                len = r.n;
            memcpy(raw, r.p, len);
            r.p += len;
            r.n -= len;
            if (!add(s, (ctl >> 3) % FUZZ_NKEYS, raw, len))
                break;
        } else if (!build(s, &r, ctl)) {
            break;
        }
        if (s->n > before)
            s->dl[s->ndl++] = before;
    }
}

static bool
same_deps(const chg *x, const chg *y)
{
    return x->ndeps == y->ndeps && (x->ndeps == 0 || memcmp(x->deps, y->deps, x->ndeps * 32) == 0);
}

/* Leave out what the checks cannot hold for (see the top). */
static void
leave_out(set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        chg *c = &s->c[i];
        /* A built change names only its past (the generator's promise). */
        FUZZ_CHECK(!(c->built && c->resolved && c->dangling && !c->refused));
        if (c->dec && c->resolved && c->dangling && !c->refused)
            c->out = true;
    }
    /* Versions of one (author, seq): the first one, in input order, and
     * the others only if every version fits. */
    bool seen[MAX_CHANGES] = { false };
    for (size_t i = 0; i < s->n; i++) {
        const chg *c = &s->c[i];
        if (seen[i] || !c->dec || c->out)
            continue;
        size_t grp[MAX_CHANGES], ng = 0;
        bool fits = c->regonly;
        for (size_t j = i + 1; j < s->n; j++) {
            const chg *v = &s->c[j];
            if (!v->dec || v->out || v->seq != c->seq || memcmp(v->author, c->author, 32) != 0 ||
                memcmp(v->rec.cid, c->rec.cid, 32) == 0)
                continue;
            seen[j] = true;
            grp[ng++] = j;
            fits = fits && v->hlc == c->hlc && same_deps(v, c) && v->regonly;
        }
        for (size_t k = 0; !fits && k < ng; k++)
            s->c[grp[k]].out = true;
    }
}

/* ----------------------------------------------------------- delivering */

typedef struct snap {
    uint8_t full[32], vis[32];
    uint64_t applied, pending, evidence;
} snap;

static void
take(shoal__memstore *m, snap *out)
{
    FUZZ_CHECK(shoal__memstore_digest(m, true, out->full) == SHOAL_OK);
    FUZZ_CHECK(shoal__memstore_digest(m, false, out->vis) == SHOAL_OK);
    out->applied = shoal__memstore_applied(m);
    out->pending = shoal__memstore_pending(m);
    out->evidence = shoal__memstore_evidence(m);
}

static bool
same(const snap *a, const snap *b)
{
    return memcmp(a->full, b->full, 32) == 0 && memcmp(a->vis, b->vis, 32) == 0 &&
           a->applied == b->applied && a->pending == b->pending;
}

/* One import of changes idx[0..n) of s into m; a refused one must change
 * nothing.  Returns the error. */
static int
import(shoal__memstore *m, uint64_t *clock, const set *s, const size_t *idx, size_t n,
       shoal_import_result *res)
{
    shoal__rec recs[MAX_DELIVER];
    for (size_t i = 0; i < n; i++)
        recs[i] = s->c[idx[i]].rec;
    snap before, after;
    take(m, &before);
    shoal_import_result r0;
    if (!res)
        res = &r0;
    int err = shoal__memstore_import(m, recs, n, FUZZ_NOW_MS, DRIFT_MS, clock, res);
    if (debug) {
        fprintf(stderr, "apply: %p import", (void *)m);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %zu", idx[i]);
        fprintf(stderr, ": %s applied %llu dup %llu pending %llu eq %llu\n", shoal_strerror(err),
                (unsigned long long)res->applied, (unsigned long long)res->duplicate,
                (unsigned long long)res->pending, (unsigned long long)res->equivocations);
    }
    if (err) {
        take(m, &after);
        if (!same(&before, &after) || before.evidence != after.evidence)
            fprintf(stderr, "apply: a refused import (%s) changed the store\n",
                    shoal_strerror(err));
        FUZZ_CHECK(same(&before, &after) && before.evidence == after.evidence);
    }
    return err;
}

/* Deliver idx[0..n) in chunks of the sizes that sizes[] gives (cycled;
 * NULL: all in one); a refused chunk goes again one change at a time. */
static void
deliver(shoal__memstore *m, uint64_t *clock, const set *s, const size_t *idx, size_t n,
        const uint8_t *sizes, size_t nsizes)
{
    for (size_t at = 0, k = 0; at < n; k++) {
        size_t b = sizes ? sizes[k % nsizes] : n;
        if (b > n - at)
            b = n - at;
        if (import(m, clock, s, idx + at, b, NULL) != SHOAL_OK && b > 1)
            for (size_t i = 0; i < b; i++)
                (void)import(m, clock, s, idx + at + i, 1, NULL);
        at += b;
    }
}

static void
dump(const set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const chg *c = &s->c[i];
        fprintf(stderr,
                "apply: change %zu: author %02x seq %llu hlc %llx ndeps %zu doc %d %s%s%s%s%s "
                "id %02x%02x\n",
                i, c->author[0], (unsigned long long)c->seq, (unsigned long long)c->hlc, c->ndeps,
                c->doc, c->built ? "built" : "raw", c->dec ? "" : " undecodable",
                c->refused ? " refused" : "", c->regonly ? " regonly" : "", c->out ? " out" : "",
                c->rec.cid[0], c->rec.cid[1]);
    }
}

static uint64_t
mix(uint64_t *h)
{
    *h = *h * 6364136223846793005ull + 1442695040888963407ull;
    return *h >> 33;
}

static void
shuffle(size_t *v, size_t n, uint64_t *h)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(mix(h) % i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void
report(const char *what, const snap *a, const snap *b)
{
    fprintf(stderr, "apply: %s: applied %llu vs %llu, pending %llu vs %llu, full %s, visible %s\n",
            what, (unsigned long long)a->applied, (unsigned long long)b->applied,
            (unsigned long long)a->pending, (unsigned long long)b->pending,
            memcmp(a->full, b->full, 32) ? "differ" : "same",
            memcmp(a->vis, b->vis, 32) ? "differ" : "same");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static set s;
    memset(&s, 0, sizeof s);
    parse(&s, data, size);
    leave_out(&s);
    if (debug)
        dump(&s);
    size_t dl[MAX_DELIVER], n = 0;
    for (size_t i = 0; i < s.ndl; i++)
        if (!s.c[s.dl[i]].out)
            dl[n++] = s.dl[i];

    uint64_t h = 1469598103934665603ull; /* FNV-1a of the input: the orders */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;

    shoal__memstore *m[3];
    uint64_t clock[3] = { 0, 0, 0 };
    for (int i = 0; i < 3; i++)
        FUZZ_CHECK(shoal__memstore_new(&m[i]) == SHOAL_OK);

    /* A: all at once. */
    deliver(m[0], &clock[0], &s, dl, n, NULL, 0);
    /* B: one at a time, shuffled. */
    size_t ob[MAX_DELIVER];
    memcpy(ob, dl, n * sizeof *dl);
    shuffle(ob, n, &h);
    uint8_t one = 1;
    deliver(m[1], &clock[1], &s, ob, n, &one, 1);
    /* C: chunks of 1..8, shuffled again. */
    size_t oc[MAX_DELIVER];
    memcpy(oc, dl, n * sizeof *dl);
    shuffle(oc, n, &h);
    uint8_t sizes[8];
    for (int i = 0; i < 8; i++)
        sizes[i] = (uint8_t)(1 + mix(&h) % 8);
    deliver(m[2], &clock[2], &s, oc, n, sizes, 8);

    snap r[3];
    for (int i = 0; i < 3; i++)
        take(m[i], &r[i]);
    if (!same(&r[0], &r[1]))
        report("all at once vs one at a time", &r[0], &r[1]);
    if (!same(&r[0], &r[2]))
        report("all at once vs chunks", &r[0], &r[2]);
    FUZZ_CHECK(same(&r[0], &r[1]));
    FUZZ_CHECK(same(&r[0], &r[2]));

    /* Everything again: nothing applies, nothing changes. */
    snap again;
    shoal_import_result res;
    memset(&res, 0, sizeof res);
    int err = n ? import(m[1], &clock[1], &s, dl, n, &res) : SHOAL_OK;
    if (err == SHOAL_OK)
        FUZZ_CHECK(res.applied == 0);
    for (size_t i = 0; err && i < n; i++)
        if (import(m[1], &clock[1], &s, &dl[i], 1, &res) == SHOAL_OK)
            FUZZ_CHECK(res.applied == 0);
    take(m[1], &again);
    if (!same(&r[1], &again))
        report("delivered again", &r[1], &again);
    FUZZ_CHECK(same(&r[1], &again));

    for (int i = 0; i < 3; i++)
        shoal__memstore_free(m[i]);
    set_free(&s);
    return 0;
}
