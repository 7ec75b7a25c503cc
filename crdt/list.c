/*
 * crdt/list.c - the time-ordered list (RGA) of one list field.
 *
 * What it does.  Elements are identified by the id of the op that inserted
 * them (hlc, author index, op index).  An insert goes right after its
 * reference element (or at the head), then skips every following element
 * whose id is greater than its own.  Because every element's id is greater
 * than its reference's id (checked here: SHOAL_EPROTO otherwise), that rule
 * gives the same order on every replica whatever order the inserts arrive
 * in (DESIGN.md rule 3).  Deletes leave tombstones; a value is an LWW
 * register keyed by the id of the op that wrote it; a tombstone ignores
 * every later replace.
 *
 * Tombstones are canonical: delete drops the value (it becomes nil) and
 * resets the value op to the element's own id.  A replica that saw
 * "replace, then delete" and one that saw "delete, then replace" would
 * otherwise keep different dead values, and the full-state encoding (which
 * walks tombstones through shoal__list_visit) would differ.
 *
 * How.  Two structures share the elements:
 *   - an order-statistic B+ tree.  Leaves hold up to LEAF_MAX element
 *     records inline in one array, in list order, and are chained
 *     prev/next; inner nodes hold up to FAN children with the visible
 *     element count of each child's subtree.  Visible index -> element is
 *     one descent (three or four levels at 100k elements), and a change of
 *     visibility walks the parent pointers up adding +-1.  No element is
 *     ever removed (tombstones stay), so nodes only split, never merge.
 *   - an open-addressing hash map (linear probing, load <= 1/2) from
 *     element id to the leaf that holds it.  A leaf split rewrites the
 *     entries of the elements it moves (at most LEAF_MAX / 2 of them).
 *     Inside the leaf the element is found by a short scan.
 * A small cache remembers the last leaf reached by index (with the visible
 * index of its first element) and the last element found, so the local
 * edit pattern "id_at(i) then insert/delete/replace that id" and typing at
 * one place touch the tree once.  The cache lives behind a pointer so the
 * const readers may update it: a list must therefore not be read from two
 * threads at once (the document that owns it is used under one lock).
 *
 * Rejected alternatives.  A linked list of elements (plain RGA) costs O(n)
 * per index lookup.  A tree of single elements costs a pointer chase and an
 * allocation per element and twice the memory.  A rope of runs (like
 * diamond-types' run-length encoding) would be smaller for typing traces,
 * but shoal's elements carry an arbitrary value and value op each, so runs
 * would rarely merge beyond one keystroke; flat leaf arrays get most of the
 * cache benefit with far simpler code.
 *
 * Ownership.  The list owns its nodes, its hash table and every str/bytes
 * value longer than INLINE_MAX (heap copies, freed only in value_clear).
 * Values of at most INLINE_MAX bytes live inside the element record;
 * shoal__list_get hands out views into the leaf, Borrowed until the next
 * change to the list.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"

enum {
    LEAF_MAX = 64,    /* elements per leaf */
    LEAF_MIN_CAP = 4, /* first capacity of a leaf's array (tiny lists) */
    FAN = 32,         /* children per inner node */
    INLINE_MAX = 8,   /* str/bytes up to this many bytes are stored inline */
    HASH_MIN_CAP = 16
};

_Static_assert(LEAF_MAX == 64, "leaf->live has one bit per element");

/* Bits [0, n) set (n <= 64). */
static uint64_t
low_bits(size_t n)
{
    return n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
}

/* Set bits of x (portable: no popcnt instruction is assumed). */
static unsigned
popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Position of the k-th (0-based) set bit of x; x has more than k. */
static size_t
select64(uint64_t x, size_t k)
{
    /* Byte counts, then their running sums: byte i of sums = bits set in
     * bytes 0..i. */
    uint64_t c = x - ((x >> 1) & 0x5555555555555555ull);
    c = (c & 0x3333333333333333ull) + ((c >> 2) & 0x3333333333333333ull);
    c = (c + (c >> 4)) & 0x0f0f0f0f0f0f0f0full;
    uint64_t sums = c * 0x0101010101010101ull;
    size_t byte = 0;
    while (((sums >> (byte * 8)) & 0xff) <= k)
        byte++;
    if (byte)
        k -= (size_t)((sums >> ((byte - 1) * 8)) & 0xff);
    uint64_t b = (x >> (byte * 8)) & 0xff;
    while (k--)
        b &= b - 1;
    return byte * 8 + (size_t)__builtin_ctzll(b);
}

/* Insert bit b at position pos of x (x has at most 63 bits in use). */
static uint64_t
insert_bit(uint64_t x, size_t pos, bool b)
{
    uint64_t lo = x & low_bits(pos);
    uint64_t hi = pos + 1 < 64 ? (x >> pos) << (pos + 1) : 0;
    return lo | hi | ((uint64_t)b << pos);
}

/* One element: 48 bytes. */
typedef struct elem {
    uint64_t hlc; /* element id */
    uint32_t author;
    uint32_t index;
    uint64_t vhlc; /* id of the op that wrote the value */
    uint32_t vauthor;
    uint32_t vindex;
    uint8_t type; /* shoal_type */
    uint8_t deleted;
    uint8_t b;    /* SHOAL_T_BOOL */
    uint8_t heap; /* u.ptr is an owned heap copy */
    uint32_t len; /* STR/BYTES */
    union {
        int64_t i;
        double d;
        uint8_t inl[INLINE_MAX];
        uint8_t *ptr; /* owned when heap */
    } u;
} elem;

typedef struct inner inner;

typedef struct node {
    inner *parent;  /* NULL at the root */
    uint16_t pslot; /* index of this node in parent->child */
    uint16_t n;     /* children (inner) or elements (leaf) */
    bool is_leaf;
} node;

struct inner {
    node h;
    size_t vis[FAN];  /* visible elements under child[i] */
    node *child[FAN]; /* owned */
};

typedef struct leaf {
    node h;
    uint16_t cap;  /* capacity of e */
    uint32_t nvis; /* visible elements in e */
    uint64_t live; /* bit i set: e[i] is visible (LEAF_MAX == 64) */
    struct leaf *prev;
    struct leaf *next;
    elem *e; /* owned, cap records */
} leaf;

typedef struct hslot {
    uint64_t hlc;
    uint32_t author;
    uint32_t index;
    leaf *lf; /* NULL: empty slot */
} hslot;

typedef struct lcache {
    leaf *lf;         /* leaf last reached by index, or NULL */
    size_t start;     /* visible index of lf's first visible element */
    leaf *hint_lf;    /* leaf of the element last found */
    size_t hint_slot; /* its slot (checked before use) */
} lcache;

struct shoal__list {
    shoal__author_cmp_fn acmp;
    void *ctx;
    node *root; /* owned */
    leaf *first;
    leaf *last;
    size_t len;     /* visible elements */
    size_t total;   /* elements including tombstones */
    hslot *tab;     /* owned, tab_cap slots */
    size_t tab_cap; /* power of two */
    size_t tab_n;
    lcache *cache; /* owned; mutable from const readers */
};

/* ------------------------------------------------------------ ids */

static int
idcmp(const shoal__list *l, uint64_t ah, uint32_t aa, uint32_t ai, uint64_t bh, uint32_t ba,
      uint32_t bi)
{
    if (ah != bh)
        return ah < bh ? -1 : 1;
    if (aa != ba) {
        int c = l->acmp(aa, ba, l->ctx);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
    if (ai != bi)
        return ai < bi ? -1 : 1;
    return 0;
}

static int
elem_cmp_id(const shoal__list *l, const elem *e, const shoal__eid *id)
{
    return idcmp(l, e->hlc, e->author, e->index, id->hlc, id->author, id->index);
}

static bool
elem_is(const elem *e, const shoal__eid *id)
{
    return e->hlc == id->hlc && e->index == id->index && e->author == id->author;
}

/* ------------------------------------------------------------ values */

static void
value_clear(elem *e)
{
    if (e->heap)
        shoal__free(e->u.ptr);
    e->heap = 0;
    e->type = SHOAL_T_NIL;
    e->b = 0;
    e->len = 0;
    e->u.i = 0;
}

/* Copy v into a fresh value (not yet in e; e is only written on success). */
static int
value_set(elem *e, const shoal_value *v)
{
    elem t;
    memset(&t, 0, sizeof t);
    t.type = (uint8_t)v->type;
    switch (v->type) {
    case SHOAL_T_NIL:
    case SHOAL_T_REDACTED: break;
    case SHOAL_T_BOOL: t.b = v->b ? 1 : 0; break;
    case SHOAL_T_INT: t.u.i = v->i; break;
    case SHOAL_T_DOUBLE: t.u.d = v->d; break;
    case SHOAL_T_STR:
    case SHOAL_T_BYTES:
        if (v->len > UINT32_MAX)
            return SHOAL_ETOOBIG;
        t.len = (uint32_t)v->len;
        if (v->len <= INLINE_MAX) {
            if (v->len)
                memcpy(t.u.inl, v->ptr, v->len);
        } else {
            t.u.ptr = shoal__malloc(v->len);
            if (!t.u.ptr)
                return SHOAL_ENOMEM;
            memcpy(t.u.ptr, v->ptr, v->len);
            t.heap = 1;
        }
        break;
    default: return SHOAL_EINVAL;
    }
    e->type = t.type;
    e->b = t.b;
    e->heap = t.heap;
    e->len = t.len;
    e->u = t.u;
    return SHOAL_OK;
}

static void
value_view(const elem *e, shoal_value *out)
{
    memset(out, 0, sizeof *out);
    out->type = (shoal_type)e->type;
    switch (e->type) {
    case SHOAL_T_BOOL: out->b = e->b != 0; break;
    case SHOAL_T_INT: out->i = e->u.i; break;
    case SHOAL_T_DOUBLE: out->d = e->u.d; break;
    case SHOAL_T_STR:
    case SHOAL_T_BYTES:
        out->ptr = e->heap ? e->u.ptr : e->u.inl;
        out->len = e->len;
        break;
    default: break;
    }
}

/* ------------------------------------------------------------ id index */

static size_t
hash_id(uint64_t hlc, uint32_t author, uint32_t index)
{
    uint64_t x = hlc * 0x9e3779b97f4a7c15ull;
    x ^= (((uint64_t)author << 32) | index) * 0xc2b2ae3d27d4eb4full;
    x ^= x >> 31;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    return (size_t)x;
}

/* The slot holding id, or the empty slot where id would go. */
static hslot *
hash_slot(const shoal__list *l, uint64_t hlc, uint32_t author, uint32_t index)
{
    size_t mask = l->tab_cap - 1;
    size_t i = hash_id(hlc, author, index) & mask;
    for (;;) {
        hslot *s = &l->tab[i];
        if (!s->lf || (s->hlc == hlc && s->index == index && s->author == author))
            return s;
        i = (i + 1) & mask;
    }
}

static hslot *
hash_find(const shoal__list *l, uint64_t hlc, uint32_t author, uint32_t index)
{
    hslot *s = hash_slot(l, hlc, author, index);
    return s->lf ? s : NULL;
}

static bool
hash_full(const shoal__list *l)
{
    return (l->tab_n + 1) * 2 > l->tab_cap;
}

/* Insert a key known to be absent; capacity must already suffice. */
static void
hash_put(shoal__list *l, uint64_t hlc, uint32_t author, uint32_t index, leaf *lf)
{
    size_t mask = l->tab_cap - 1;
    size_t i = hash_id(hlc, author, index) & mask;
    while (l->tab[i].lf)
        i = (i + 1) & mask;
    l->tab[i].hlc = hlc;
    l->tab[i].author = author;
    l->tab[i].index = index;
    l->tab[i].lf = lf;
    l->tab_n++;
}

/* Make room for one more key (load stays <= 1/2). */
static int
hash_reserve(shoal__list *l)
{
    if (!hash_full(l))
        return SHOAL_OK;
    size_t ncap = l->tab_cap * 2;
    hslot *nt = shoal__calloc(ncap, sizeof *nt);
    if (!nt)
        return SHOAL_ENOMEM;
    hslot *old = l->tab;
    size_t ocap = l->tab_cap;
    l->tab = nt;
    l->tab_cap = ncap;
    l->tab_n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].lf)
            hash_put(l, old[i].hlc, old[i].author, old[i].index, old[i].lf);
    shoal__free(old);
    return SHOAL_OK;
}

static void
hash_move(shoal__list *l, const elem *e, leaf *to)
{
    hslot *s = hash_find(l, e->hlc, e->author, e->index);
    assert(s);
    s->lf = to;
}

/* ------------------------------------------------------------ tree */

static leaf *
leaf_new(uint16_t cap)
{
    leaf *lf = shoal__calloc(1, sizeof *lf);
    if (!lf)
        return NULL;
    lf->e = shoal__malloc((size_t)cap * sizeof(elem));
    if (!lf->e) {
        shoal__free(lf);
        return NULL;
    }
    lf->h.is_leaf = true;
    lf->cap = cap;
    return lf;
}

static void
node_free(node *n)
{
    if (n->is_leaf) {
        leaf *lf = (leaf *)n;
        for (uint16_t i = 0; i < lf->h.n; i++)
            value_clear(&lf->e[i]);
        shoal__free(lf->e);
        shoal__free(lf);
        return;
    }
    inner *in = (inner *)n;
    for (uint16_t i = 0; i < in->h.n; i++)
        node_free(in->child[i]);
    shoal__free(in);
}

/* Add delta to the visible count of lf and of every ancestor entry. */
static void
adjust_vis(shoal__list *l, leaf *lf, long delta)
{
    lf->nvis = (uint32_t)((long)lf->nvis + delta);
    node *c = &lf->h;
    for (inner *p = c->parent; p; c = &p->h, p = p->h.parent)
        p->vis[c->pslot] = (size_t)((long)p->vis[c->pslot] + delta);
    l->len = (size_t)((long)l->len + delta);
    /* The cached leaf's start only moves when a leaf before it changes. */
    if (l->cache->lf != lf)
        l->cache->lf = NULL;
}

/* Preallocated inner nodes for one leaf split (at most tree height + 1). */
typedef struct pool {
    inner *n[24];
    int count;
} pool;

static inner *
pool_take(pool *p)
{
    assert(p->count > 0);
    return p->n[--p->count];
}

static void
pool_free(pool *p)
{
    while (p->count > 0)
        shoal__free(p->n[--p->count]);
}

/* Make n the only child of a new root. */
static void
grow_root(shoal__list *l, node *n, size_t vis, pool *pl)
{
    inner *r = pool_take(pl);
    memset(r, 0, sizeof *r);
    r->child[0] = n;
    r->vis[0] = vis;
    r->h.n = 1;
    n->parent = r;
    n->pslot = 0;
    l->root = &r->h;
}

static size_t
inner_sum(const inner *in)
{
    size_t s = 0;
    for (uint16_t i = 0; i < in->h.n; i++)
        s += in->vis[i];
    return s;
}

/* Put child c (visible count vis) at slot idx of p, which has room. */
static void
array_insert(inner *p, uint16_t idx, node *c, size_t vis)
{
    for (uint16_t i = p->h.n; i > idx; i--) {
        p->child[i] = p->child[i - 1];
        p->vis[i] = p->vis[i - 1];
        p->child[i]->pslot = i;
    }
    p->child[idx] = c;
    p->vis[idx] = vis;
    c->parent = p;
    c->pslot = idx;
    p->h.n++;
}

/* Insert child c (with visible count vis) into p at slot idx.  The counts of
 * p's ancestors already include c's elements (they were moved out of a
 * sibling), so only p's own array changes, unless p is full: then p splits
 * and its upper half q, c included if it lands there, goes to p's parent
 * the same way. */
static void
insert_child(shoal__list *l, inner *p, uint16_t idx, node *c, size_t vis, pool *pl)
{
    if (p->h.n < FAN) {
        array_insert(p, idx, c, vis);
        return;
    }
    if (!p->h.parent)
        grow_root(l, &p->h, inner_sum(p) + vis, pl);
    inner *q = pool_take(pl);
    memset(q, 0, sizeof *q);
    uint16_t m = FAN / 2;
    for (uint16_t i = m; i < FAN; i++) {
        node *ch = p->child[i];
        q->child[i - m] = ch;
        q->vis[i - m] = p->vis[i];
        ch->parent = q;
        ch->pslot = (uint16_t)(i - m);
    }
    q->h.n = (uint16_t)(FAN - m);
    p->h.n = m;
    if (idx > m)
        array_insert(q, (uint16_t)(idx - m), c, vis);
    else
        array_insert(p, idx, c, vis);
    size_t qvis = inner_sum(q);
    inner *gp = p->h.parent;
    gp->vis[p->h.pslot] -= qvis;
    insert_child(l, gp, (uint16_t)(p->h.pslot + 1), &q->h, qvis, pl);
}

/* Put record *e at slot pos of lf (splitting lf if full).  On success *out
 * is the leaf that now holds it and *slot its position.  The hash entry is
 * not written here.  On SHOAL_ENOMEM nothing changed. */
static int
leaf_insert(shoal__list *l, leaf *lf, size_t pos, const elem *e, leaf **out, size_t *slot)
{
    if (lf->h.n == lf->cap && lf->cap < LEAF_MAX) {
        uint16_t ncap = (uint16_t)(lf->cap * 2 > LEAF_MAX ? LEAF_MAX : lf->cap * 2);
        elem *ne = shoal__realloc(lf->e, (size_t)ncap * sizeof(elem));
        if (!ne)
            return SHOAL_ENOMEM;
        lf->e = ne;
        lf->cap = ncap;
    }
    if (lf->h.n == LEAF_MAX) {
        /* Allocate everything the split needs before touching the tree. */
        pool pl = { .count = 0 };
        int need = 0;
        for (inner *p = lf->h.parent;; p = p->h.parent) {
            if (!p) {
                need++;
                break;
            }
            if (p->h.n < FAN)
                break;
            need++;
        }
        assert(need <= (int)(sizeof pl.n / sizeof pl.n[0]));
        leaf *r = leaf_new(LEAF_MAX);
        if (!r)
            return SHOAL_ENOMEM;
        for (int i = 0; i < need; i++) {
            inner *in = shoal__malloc(sizeof *in);
            if (!in) {
                pool_free(&pl);
                node_free(&r->h);
                return SHOAL_ENOMEM;
            }
            pl.n[pl.count++] = in;
        }
        /* Appending at the end of a full leaf starts an empty right leaf, so
         * sequential typing and decoding fill leaves completely. */
        size_t m = pos == LEAF_MAX ? LEAF_MAX : LEAF_MAX / 2;
        uint32_t moved_vis = 0;
        for (size_t i = m; i < LEAF_MAX; i++) {
            r->e[i - m] = lf->e[i];
            if (!lf->e[i].deleted)
                moved_vis++;
            hash_move(l, &lf->e[i], r);
        }
        r->h.n = (uint16_t)(LEAF_MAX - m);
        r->nvis = moved_vis;
        r->live = m < 64 ? lf->live >> m : 0;
        lf->live &= low_bits(m);
        lf->h.n = (uint16_t)m;
        lf->nvis -= moved_vis;
        r->prev = lf;
        r->next = lf->next;
        if (lf->next)
            lf->next->prev = r;
        else
            l->last = r;
        lf->next = r;
        if (!lf->h.parent)
            grow_root(l, &lf->h, (size_t)lf->nvis + moved_vis, &pl);
        inner *p = lf->h.parent;
        p->vis[lf->h.pslot] -= moved_vis;
        insert_child(l, p, (uint16_t)(lf->h.pslot + 1), &r->h, moved_vis, &pl);
        assert(pl.count == 0);
        if (pos > m || m == LEAF_MAX) {
            lf = r;
            pos -= m;
        }
    }
    memmove(&lf->e[pos + 1], &lf->e[pos], (lf->h.n - pos) * sizeof(elem));
    lf->e[pos] = *e;
    lf->live = insert_bit(lf->live, pos, !e->deleted);
    lf->h.n++;
    l->total++;
    if (!e->deleted)
        adjust_vis(l, lf, 1);
    *out = lf;
    *slot = pos;
    return SHOAL_OK;
}

/* Slot of the visible element number k (0-based) in lf. */
static size_t
leaf_vis_slot(const leaf *lf, size_t k)
{
    if (lf->nvis == lf->h.n)
        return k;
    return select64(lf->live, k);
}

/* Leaf and slot of visible element index (index < l->len). */
static void
locate(const shoal__list *l, size_t index, leaf **out, size_t *slot)
{
    lcache *c = l->cache;
    if (c->lf) {
        /* Editing moves across leaf borders: try the neighbours too. */
        leaf *lf = c->lf;
        if (index < c->start && lf->prev && c->start - index <= lf->prev->nvis) {
            lf = c->lf = lf->prev;
            c->start -= lf->nvis;
        } else if (index >= c->start + lf->nvis && lf->next &&
                   index - c->start - lf->nvis < lf->next->nvis) {
            c->start += lf->nvis;
            lf = c->lf = lf->next;
        }
        if (index >= c->start && index - c->start < lf->nvis) {
            *out = lf;
            *slot = leaf_vis_slot(lf, index - c->start);
            return;
        }
    }
    const node *n = l->root;
    size_t start = 0;
    size_t k = index;
    while (!n->is_leaf) {
        const inner *in = (const inner *)n;
        uint16_t i = 0;
        while (k >= in->vis[i]) {
            k -= in->vis[i];
            start += in->vis[i];
            i++;
            assert(i < in->h.n);
        }
        n = in->child[i];
    }
    leaf *lf = (leaf *)(uintptr_t)n;
    c->lf = lf;
    c->start = start;
    *out = lf;
    *slot = leaf_vis_slot(lf, k);
}

static bool
find_elem(const shoal__list *l, const shoal__eid *id, leaf **out, size_t *slot)
{
    lcache *c = l->cache;
    if (c->hint_lf && c->hint_slot < c->hint_lf->h.n && elem_is(&c->hint_lf->e[c->hint_slot], id)) {
        *out = c->hint_lf;
        *slot = c->hint_slot;
        return true;
    }
    hslot *s = hash_find(l, id->hlc, id->author, id->index);
    if (!s)
        return false;
    leaf *lf = s->lf;
    for (size_t i = 0; i < lf->h.n; i++) {
        if (elem_is(&lf->e[i], id)) {
            *out = lf;
            *slot = i;
            c->hint_lf = lf;
            c->hint_slot = i;
            return true;
        }
    }
    assert(!"id index points to a leaf without the element");
    return false;
}

/* ------------------------------------------------------------ API */

shoal__list *
shoal__list_new(shoal__author_cmp_fn acmp, void *ctx)
{
    assert(acmp);
    shoal__list *l = shoal__calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->acmp = acmp;
    l->ctx = ctx;
    l->cache = shoal__calloc(1, sizeof *l->cache);
    l->tab = shoal__calloc(HASH_MIN_CAP, sizeof *l->tab);
    leaf *lf = leaf_new(LEAF_MIN_CAP);
    if (!l->cache || !l->tab || !lf) {
        shoal__free(l->cache);
        shoal__free(l->tab);
        if (lf)
            node_free(&lf->h);
        shoal__free(l);
        return NULL;
    }
    l->tab_cap = HASH_MIN_CAP;
    l->root = &lf->h;
    l->first = l->last = lf;
    return l;
}

void
shoal__list_free(shoal__list *l)
{
    if (!l)
        return;
    node_free(l->root);
    shoal__free(l->tab);
    shoal__free(l->cache);
    shoal__free(l);
}

size_t
shoal__list_len(const shoal__list *l)
{
    return l->len;
}

size_t
shoal__list_total(const shoal__list *l)
{
    return l->total;
}

int
shoal__list_insert(shoal__list *l, const shoal__eid *ref, const shoal__eid *id,
                   const shoal_value *v)
{
    hslot *hs = hash_slot(l, id->hlc, id->author, id->index);
    if (hs->lf)
        return SHOAL_OK;
    leaf *lf;
    size_t pos;
    if (ref) {
        size_t s;
        if (!find_elem(l, ref, &lf, &s))
            return SHOAL_ENOTFOUND;
        if (idcmp(l, id->hlc, id->author, id->index, ref->hlc, ref->author, ref->index) <= 0)
            return SHOAL_EPROTO;
        pos = s + 1;
    } else {
        lf = l->first;
        pos = 0;
    }
    /* Skip every following element with a greater id (RGA). */
    for (;;) {
        if (pos < lf->h.n) {
            if (elem_cmp_id(l, &lf->e[pos], id) > 0) {
                pos++;
                continue;
            }
            break;
        }
        if (lf->next && elem_cmp_id(l, &lf->next->e[0], id) > 0) {
            lf = lf->next;
            pos = 1;
            continue;
        }
        break;
    }
    elem e;
    memset(&e, 0, sizeof e);
    e.hlc = e.vhlc = id->hlc;
    e.author = e.vauthor = id->author;
    e.index = e.vindex = id->index;
    int rc = value_set(&e, v);
    if (rc != SHOAL_OK)
        return rc;
    if (hash_full(l)) {
        rc = hash_reserve(l);
        hs = hash_slot(l, id->hlc, id->author, id->index);
    }
    if (rc == SHOAL_OK)
        rc = leaf_insert(l, lf, pos, &e, &lf, &pos);
    if (rc != SHOAL_OK) {
        value_clear(&e);
        return rc;
    }
    /* A split only rewrites occupied slots, so hs is still the empty slot
     * probed for id. */
    hs->hlc = id->hlc;
    hs->author = id->author;
    hs->index = id->index;
    hs->lf = lf;
    l->tab_n++;
    l->cache->hint_lf = lf;
    l->cache->hint_slot = pos;
    return SHOAL_OK;
}

int
shoal__list_id_at(const shoal__list *l, size_t index, shoal__eid *out)
{
    if (index >= l->len)
        return SHOAL_ERANGE;
    leaf *lf;
    size_t s;
    locate(l, index, &lf, &s);
    const elem *e = &lf->e[s];
    out->hlc = e->hlc;
    out->author = e->author;
    out->index = e->index;
    l->cache->hint_lf = lf;
    l->cache->hint_slot = s;
    return SHOAL_OK;
}

int
shoal__list_get(const shoal__list *l, size_t index, shoal_value *out)
{
    if (index >= l->len)
        return SHOAL_ERANGE;
    leaf *lf;
    size_t s;
    locate(l, index, &lf, &s);
    value_view(&lf->e[s], out);
    return SHOAL_OK;
}

int
shoal__list_delete(shoal__list *l, const shoal__eid *id)
{
    leaf *lf;
    size_t s;
    if (!find_elem(l, id, &lf, &s))
        return SHOAL_ENOTFOUND;
    elem *e = &lf->e[s];
    if (e->deleted)
        return SHOAL_OK;
    value_clear(e);
    e->vhlc = e->hlc;
    e->vauthor = e->author;
    e->vindex = e->index;
    e->deleted = 1;
    lf->live &= ~((uint64_t)1 << s);
    adjust_vis(l, lf, -1);
    return SHOAL_OK;
}

int
shoal__list_replace(shoal__list *l, const shoal__eid *id, const shoal__eid *op,
                    const shoal_value *v)
{
    leaf *lf;
    size_t s;
    if (!find_elem(l, id, &lf, &s))
        return SHOAL_ENOTFOUND;
    elem *e = &lf->e[s];
    if (e->deleted)
        return SHOAL_OK;
    if (idcmp(l, op->hlc, op->author, op->index, e->vhlc, e->vauthor, e->vindex) <= 0)
        return SHOAL_OK;
    elem t;
    memset(&t, 0, sizeof t);
    int rc = value_set(&t, v);
    if (rc != SHOAL_OK)
        return rc;
    value_clear(e);
    e->type = t.type;
    e->b = t.b;
    e->heap = t.heap;
    e->len = t.len;
    e->u = t.u;
    e->vhlc = op->hlc;
    e->vauthor = op->author;
    e->vindex = op->index;
    return SHOAL_OK;
}

int
shoal__list_visit(const shoal__list *l, shoal__list_visit_fn cb, void *arg)
{
    for (const leaf *lf = l->first; lf; lf = lf->next) {
        for (size_t i = 0; i < lf->h.n; i++) {
            const elem *e = &lf->e[i];
            shoal__eid id = { e->hlc, e->author, e->index };
            shoal__eid vop = { e->vhlc, e->vauthor, e->vindex };
            shoal_value v;
            value_view(e, &v);
            int rc = cb(&id, &vop, &v, e->deleted != 0, arg);
            if (rc != 0)
                return rc;
        }
    }
    return SHOAL_OK;
}

int
shoal__list_append_raw(shoal__list *l, const shoal__eid *id, const shoal__eid *value_op,
                       const shoal_value *v, bool deleted)
{
    if (hash_find(l, id->hlc, id->author, id->index))
        return SHOAL_EPROTO;
    elem e;
    memset(&e, 0, sizeof e);
    e.hlc = id->hlc;
    e.author = id->author;
    e.index = id->index;
    if (deleted) {
        /* Canonical tombstone (see the top of this file). */
        e.vhlc = id->hlc;
        e.vauthor = id->author;
        e.vindex = id->index;
        e.deleted = 1;
    } else {
        e.vhlc = value_op->hlc;
        e.vauthor = value_op->author;
        e.vindex = value_op->index;
        int rc = value_set(&e, v);
        if (rc != SHOAL_OK)
            return rc;
    }
    int rc = hash_reserve(l);
    leaf *lf = NULL;
    size_t pos = 0;
    if (rc == SHOAL_OK)
        rc = leaf_insert(l, l->last, l->last->h.n, &e, &lf, &pos);
    if (rc != SHOAL_OK) {
        value_clear(&e);
        return rc;
    }
    hash_put(l, id->hlc, id->author, id->index, lf);
    return SHOAL_OK;
}

/* ------------------------------------------------------------ checks */

static int
check_node(const shoal__list *l, const node *n, const inner *parent, uint16_t pslot, size_t *vis,
           size_t *tot, const leaf **prev, int depth, int *leaf_depth)
{
    if (n->parent != parent || (parent && n->pslot != pslot))
        return SHOAL_ECORRUPT;
    if (n->is_leaf) {
        const leaf *lf = (const leaf *)n;
        if (*leaf_depth < 0)
            *leaf_depth = depth;
        if (*leaf_depth != depth || lf->prev != *prev || lf->h.n > lf->cap || lf->cap > LEAF_MAX)
            return SHOAL_ECORRUPT;
        if (lf->h.n == 0 && l->root != n)
            return SHOAL_ECORRUPT;
        if (*prev && (*prev)->next != lf)
            return SHOAL_ECORRUPT;
        size_t nv = 0;
        for (size_t i = 0; i < lf->h.n; i++) {
            const elem *e = &lf->e[i];
            hslot *s = hash_find(l, e->hlc, e->author, e->index);
            if (!s || s->lf != lf)
                return SHOAL_ECORRUPT;
            if (!e->deleted)
                nv++;
            else if (e->type != SHOAL_T_NIL || e->heap)
                return SHOAL_ECORRUPT;
            if (e->heap != (e->len > INLINE_MAX))
                return SHOAL_ECORRUPT;
        }
        if (nv != lf->nvis || (lf->live & ~low_bits(lf->h.n)) || popcount64(lf->live) != nv)
            return SHOAL_ECORRUPT;
        for (size_t i = 0; i < lf->h.n; i++)
            if (((lf->live >> i) & 1) == lf->e[i].deleted)
                return SHOAL_ECORRUPT;
        *vis = nv;
        *tot = lf->h.n;
        *prev = lf;
        return SHOAL_OK;
    }
    const inner *in = (const inner *)n;
    if (in->h.n == 0 || in->h.n > FAN)
        return SHOAL_ECORRUPT;
    *vis = *tot = 0;
    for (uint16_t i = 0; i < in->h.n; i++) {
        size_t cv, ct;
        int rc = check_node(l, in->child[i], in, i, &cv, &ct, prev, depth + 1, leaf_depth);
        if (rc != SHOAL_OK)
            return rc;
        if (cv != in->vis[i])
            return SHOAL_ECORRUPT;
        *vis += cv;
        *tot += ct;
    }
    return SHOAL_OK;
}

int
shoal__list_check(const shoal__list *l)
{
    size_t vis, tot;
    const leaf *prev = NULL;
    int leaf_depth = -1;
    int rc = check_node(l, l->root, NULL, 0, &vis, &tot, &prev, 0, &leaf_depth);
    if (rc != SHOAL_OK)
        return rc;
    if (prev != l->last || prev->next || l->first->prev)
        return SHOAL_ECORRUPT;
    if (vis != l->len || tot != l->total || l->tab_n != tot || l->tab_n * 2 > l->tab_cap)
        return SHOAL_ECORRUPT;
    return SHOAL_OK;
}
