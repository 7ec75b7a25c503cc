/*
 * test/crdt/test_list.c - the RGA list (crdt/list.c).
 *
 * Hand-written cases pin the ordering and value rules; a seeded random run
 * compares every operation against a naive array RGA; a convergence run
 * applies one set of ops in several random causal orders and compares the
 * full element sequences; a 100k-element list checks the tree invariants.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crdt.h"

/* Author "keys": acmp compares rank[a] with rank[b], deliberately not the
 * order of the indexes themselves, so a list that compared indexes would
 * fail the ordering tests. */
static const uint32_t rank[8] = { 5, 2, 7, 0, 3, 6, 1, 4 };

static int
acmp(uint32_t a, uint32_t b, void *ctx)
{
    (void)ctx;
    return rank[a] < rank[b] ? -1 : rank[a] > rank[b] ? 1 : 0;
}

static shoal__eid
mk(uint64_t hlc, uint32_t author, uint32_t index)
{
    shoal__eid e = { hlc, author, index };
    return e;
}

static shoal_value
vint(int64_t i)
{
    shoal_value v;
    memset(&v, 0, sizeof v);
    v.type = SHOAL_T_INT;
    v.i = i;
    return v;
}

static shoal_value
vstr(const char *s, size_t n)
{
    shoal_value v;
    memset(&v, 0, sizeof v);
    v.type = SHOAL_T_STR;
    v.ptr = (const uint8_t *)s;
    v.len = n;
    return v;
}

static bool
eid_eq(const shoal__eid *a, const shoal__eid *b)
{
    return a->hlc == b->hlc && a->author == b->author && a->index == b->index;
}

static int
eid_cmp(const shoal__eid *a, const shoal__eid *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    int c = acmp(a->author, b->author, NULL);
    if (c)
        return c;
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return 0;
}

/* The visible values as ints, into out (at most max); returns the count. */
static size_t
ints(const shoal__list *l, int64_t *out, size_t max)
{
    size_t n = shoal__list_len(l);
    for (size_t i = 0; i < n && i < max; i++) {
        shoal_value v;
        if (shoal__list_get(l, i, &v) != SHOAL_OK || v.type != SHOAL_T_INT)
            return (size_t)-1;
        out[i] = v.i;
    }
    return n;
}

static bool
same_ints(const shoal__list *l, const int64_t *want, size_t n)
{
    int64_t got[64];
    if (ints(l, got, 64) != n)
        return false;
    return memcmp(got, want, n * sizeof *want) == 0;
}

/* ---------------------------------------------------------------- basics */

static void
test_concurrent_same_position(void)
{
    /* Same hlc, different authors: rank[2] = 7 > rank[1] = 2, so author 2's
     * element is greater and goes first, whichever arrives first. */
    shoal__eid root = mk(1, 0, 0), a = mk(5, 1, 0), b = mk(5, 2, 0), c = mk(9, 3, 0);
    for (int order = 0; order < 2; order++) {
        shoal__list *l = shoal__list_new(acmp, NULL);
        REQUIRE(l);
        shoal_value v0 = vint(0), va = vint(1), vb = vint(2), vc = vint(3);
        CHECK_EQ(shoal__list_insert(l, NULL, &root, &v0), SHOAL_OK);
        if (order == 0) {
            CHECK_EQ(shoal__list_insert(l, &root, &a, &va), SHOAL_OK);
            CHECK_EQ(shoal__list_insert(l, &root, &b, &vb), SHOAL_OK);
        } else {
            CHECK_EQ(shoal__list_insert(l, &root, &b, &vb), SHOAL_OK);
            CHECK_EQ(shoal__list_insert(l, &root, &a, &va), SHOAL_OK);
        }
        /* c has the greatest hlc: it goes right after root. */
        CHECK_EQ(shoal__list_insert(l, &root, &c, &vc), SHOAL_OK);
        int64_t want[] = { 0, 3, 2, 1 };
        CHECK(same_ints(l, want, 4));
        /* Head inserts follow the same rule with "ref = head". */
        shoal__eid h1 = mk(2, 0, 7), h2 = mk(3, 0, 0);
        shoal_value v8 = vint(8), v9 = vint(9);
        CHECK_EQ(shoal__list_insert(l, NULL, &h2, &v9), SHOAL_OK);
        CHECK_EQ(shoal__list_insert(l, NULL, &h1, &v8), SHOAL_OK);
        int64_t want2[] = { 9, 8, 0, 3, 2, 1 };
        CHECK(same_ints(l, want2, 6));
        CHECK_EQ(shoal__list_check(l), SHOAL_OK);
        shoal__list_free(l);
    }
}

static void
test_interleaved_runs(void)
{
    /* Author 1 types 10,11,12 and author 2 types 20,21,22, both after root,
     * concurrently.  Runs never interleave: the run whose first element is
     * greater comes first.  Every causal arrival order gives one result. */
    shoal__eid root = mk(1, 0, 0);
    shoal__eid a[3] = { mk(10, 1, 0), mk(11, 1, 0), mk(12, 1, 0) };
    shoal__eid b[3] = { mk(10, 2, 0), mk(12, 2, 0), mk(13, 2, 0) };
    /* b[0] > a[0] (same hlc, author rank 7 > 2). */
    int64_t want[] = { 0, 20, 21, 22, 10, 11, 12 };
    for (int mask = 0; mask < 20; mask++) {
        shoal__list *l = shoal__list_new(acmp, NULL);
        REQUIRE(l);
        shoal_value v = vint(0);
        CHECK_EQ(shoal__list_insert(l, NULL, &root, &v), SHOAL_OK);
        int ia = 0, ib = 0;
        uint64_t bits = (uint64_t)mask * 2654435761u;
        while (ia < 3 || ib < 3) {
            bool take_a = ib == 3 || (ia < 3 && (bits & 1));
            bits >>= 1;
            if (take_a) {
                v = vint(10 + ia);
                CHECK_EQ(shoal__list_insert(l, ia ? &a[ia - 1] : &root, &a[ia], &v), SHOAL_OK);
                ia++;
            } else {
                v = vint(20 + ib);
                CHECK_EQ(shoal__list_insert(l, ib ? &b[ib - 1] : &root, &b[ib], &v), SHOAL_OK);
                ib++;
            }
        }
        CHECK(same_ints(l, want, 7));
        shoal__list_free(l);
    }
}

static void
test_insert_after_tombstone(void)
{
    shoal__list *l = shoal__list_new(acmp, NULL);
    REQUIRE(l);
    shoal__eid x = mk(1, 0, 0), y = mk(2, 0, 0), z = mk(3, 0, 0), w = mk(3, 1, 0);
    shoal_value v1 = vint(1), v2 = vint(2), v3 = vint(3), v4 = vint(4);
    CHECK_EQ(shoal__list_insert(l, NULL, &x, &v1), SHOAL_OK);
    CHECK_EQ(shoal__list_insert(l, &x, &y, &v2), SHOAL_OK);
    CHECK_EQ(shoal__list_delete(l, &y), SHOAL_OK);
    CHECK_EQ(shoal__list_len(l), 1);
    CHECK_EQ(shoal__list_total(l), 2);
    CHECK_EQ(shoal__list_insert(l, &y, &z, &v3), SHOAL_OK);
    int64_t want[] = { 1, 3 };
    CHECK(same_ints(l, want, 2));
    /* A concurrent insert after x with a smaller id than y lands after the
     * tombstone y and its (greater) successor z. */
    shoal__eid small = mk(1, 0, 5);
    CHECK_EQ(shoal__list_insert(l, &x, &small, &v4), SHOAL_OK);
    int64_t want2[] = { 1, 3, 4 };
    CHECK(same_ints(l, want2, 3));
    /* w > y, but z (after the tombstone) is greater than w?  rank[1]=2 <
     * rank[0]=5, so w < z: w goes between y and z. */
    shoal_value v5 = vint(5);
    CHECK_EQ(shoal__list_insert(l, &y, &w, &v5), SHOAL_OK);
    int64_t want3[] = { 1, 3, 5, 4 };
    CHECK(same_ints(l, want3, 4));
    shoal__eid id;
    CHECK_EQ(shoal__list_id_at(l, 2, &id), SHOAL_OK);
    CHECK(eid_eq(&id, &w));
    CHECK_EQ(shoal__list_check(l), SHOAL_OK);
    shoal__list_free(l);
}

static void
test_delete_replace(void)
{
    shoal__list *l = shoal__list_new(acmp, NULL);
    REQUIRE(l);
    shoal__eid x = mk(10, 0, 0), y = mk(11, 0, 0);
    shoal_value v1 = vint(1), v2 = vint(2);
    CHECK_EQ(shoal__list_insert(l, NULL, &x, &v1), SHOAL_OK);
    CHECK_EQ(shoal__list_insert(l, &x, &y, &v2), SHOAL_OK);

    /* LWW: a greater op wins, a smaller one is ignored, in either order. */
    shoal__eid r1 = mk(20, 1, 0), r2 = mk(20, 2, 0); /* r2 > r1 */
    const char *longs = "a value longer than the inline bytes";
    shoal_value s1 = vstr("short", 5), s2 = vstr(longs, strlen(longs));
    CHECK_EQ(shoal__list_replace(l, &x, &r2, &s2), SHOAL_OK);
    CHECK_EQ(shoal__list_replace(l, &x, &r1, &s1), SHOAL_OK);
    shoal_value got;
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_STR && got.len == strlen(longs) &&
          memcmp(got.ptr, longs, got.len) == 0);
    CHECK(got.ptr != (const uint8_t *)longs); /* copied */
    /* An op not greater than the element's own insert is ignored. */
    shoal__eid old = mk(5, 0, 0);
    CHECK_EQ(shoal__list_replace(l, &y, &old, &s1), SHOAL_OK);
    CHECK_EQ(shoal__list_get(l, 1, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_INT && got.i == 2);
    CHECK_EQ(shoal__list_replace(l, &y, &r1, &s1), SHOAL_OK);
    CHECK_EQ(shoal__list_get(l, 1, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_STR && got.len == 5 && memcmp(got.ptr, "short", 5) == 0);

    /* Delete wins over replace, whatever the op ids. */
    CHECK_EQ(shoal__list_delete(l, &x), SHOAL_OK);
    CHECK_EQ(shoal__list_delete(l, &x), SHOAL_OK); /* idempotent */
    shoal__eid late = mk(99, 7, 0);
    CHECK_EQ(shoal__list_replace(l, &x, &late, &s1), SHOAL_OK);
    CHECK_EQ(shoal__list_len(l), 1);
    CHECK_EQ(shoal__list_total(l), 2);
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_STR && got.len == 5);
    CHECK_EQ(shoal__list_id_at(l, 0, &late), SHOAL_OK);
    CHECK(eid_eq(&late, &y));

    /* Other value types round-trip. */
    shoal_value vb;
    memset(&vb, 0, sizeof vb);
    vb.type = SHOAL_T_BOOL;
    vb.b = true;
    shoal__eid r3 = mk(30, 0, 0), r4 = mk(31, 0, 0), r5 = mk(32, 0, 0);
    CHECK_EQ(shoal__list_replace(l, &y, &r3, &vb), SHOAL_OK);
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_BOOL && got.b);
    shoal_value vd;
    memset(&vd, 0, sizeof vd);
    vd.type = SHOAL_T_DOUBLE;
    vd.d = -2.5;
    CHECK_EQ(shoal__list_replace(l, &y, &r4, &vd), SHOAL_OK);
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_DOUBLE && got.d == -2.5);
    shoal_value vbin = vstr("\0\1\2", 3);
    vbin.type = SHOAL_T_BYTES;
    CHECK_EQ(shoal__list_replace(l, &y, &r5, &vbin), SHOAL_OK);
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_OK);
    CHECK(got.type == SHOAL_T_BYTES && got.len == 3 && memcmp(got.ptr, "\0\1\2", 3) == 0);
    CHECK_EQ(shoal__list_check(l), SHOAL_OK);
    shoal__list_free(l);
}

static void
test_errors(void)
{
    shoal__list *l = shoal__list_new(acmp, NULL);
    REQUIRE(l);
    shoal__eid x = mk(10, 0, 0), nope = mk(11, 0, 0), y = mk(12, 0, 0);
    shoal_value v = vint(1), v2 = vint(2);
    shoal__eid out;
    shoal_value got;
    CHECK_EQ(shoal__list_id_at(l, 0, &out), SHOAL_ERANGE);
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_ERANGE);
    CHECK_EQ(shoal__list_insert(l, &nope, &y, &v), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__list_insert(l, NULL, &x, &v), SHOAL_OK);
    CHECK_EQ(shoal__list_insert(l, &nope, &y, &v), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__list_delete(l, &nope), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__list_replace(l, &nope, &y, &v), SHOAL_ENOTFOUND);
    /* Id not greater than its ref. */
    shoal__eid same_hlc_smaller = mk(10, 1, 0); /* rank[1] = 2 < rank[0] = 5 */
    shoal__eid older = mk(9, 2, 0);
    CHECK_EQ(shoal__list_insert(l, &x, &older, &v), SHOAL_EPROTO);
    CHECK_EQ(shoal__list_insert(l, &x, &same_hlc_smaller, &v), SHOAL_EPROTO);
    shoal__eid self = x, next = mk(10, 0, 1);
    CHECK_EQ(shoal__list_insert(l, &x, &next, &v), SHOAL_OK);
    CHECK_EQ(shoal__list_total(l), 2);
    /* Inserting an existing id is a no-op, even with another ref/value. */
    CHECK_EQ(shoal__list_insert(l, NULL, &self, &v2), SHOAL_OK);
    CHECK_EQ(shoal__list_total(l), 2);
    CHECK_EQ(shoal__list_get(l, 0, &got), SHOAL_OK);
    CHECK(got.i == 1);
    CHECK_EQ(shoal__list_id_at(l, 2, &out), SHOAL_ERANGE);
    CHECK_EQ(shoal__list_get(l, 2, &got), SHOAL_ERANGE);
    /* A duplicate id in a raw (decoded) sequence is malformed input. */
    CHECK_EQ(shoal__list_append_raw(l, &x, &x, &v, false), SHOAL_EPROTO);
    CHECK_EQ(shoal__list_total(l), 2);
    CHECK_EQ(shoal__list_check(l), SHOAL_OK);
    shoal__list_free(l);
    shoal__list_free(NULL);
}

/* ------------------------------------------------------ reference model */

typedef struct mel {
    shoal__eid id;
    shoal__eid vop;
    shoal_value v; /* str bytes point into s */
    char s[24];
    bool del;
} mel;

typedef struct model {
    mel *a;
    size_t n, cap;
} model;

static size_t
model_find(const model *m, const shoal__eid *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (eid_eq(&m->a[i].id, id))
            return i;
    return (size_t)-1;
}

static void
set_val(mel *e, const shoal_value *v)
{
    e->v = *v;
    if (v->type == SHOAL_T_STR) {
        memcpy(e->s, v->ptr, v->len);
        e->v.ptr = (const uint8_t *)e->s;
    }
}

static int
model_insert(model *m, const shoal__eid *ref, const shoal__eid *id, const shoal_value *v)
{
    if (model_find(m, id) != (size_t)-1)
        return SHOAL_OK;
    size_t pos = 0;
    if (ref) {
        size_t r = model_find(m, ref);
        if (r == (size_t)-1)
            return SHOAL_ENOTFOUND;
        if (eid_cmp(id, ref) <= 0)
            return SHOAL_EPROTO;
        pos = r + 1;
    }
    while (pos < m->n && eid_cmp(&m->a[pos].id, id) > 0)
        pos++;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->a = realloc(m->a, m->cap * sizeof *m->a);
    }
    memmove(&m->a[pos + 1], &m->a[pos], (m->n - pos) * sizeof *m->a);
    for (size_t i = 0; i <= m->n; i++) /* the array may have moved */
        if (m->a[i].v.type == SHOAL_T_STR)
            m->a[i].v.ptr = (const uint8_t *)m->a[i].s;
    mel *e = &m->a[pos];
    memset(e, 0, sizeof *e);
    e->id = *id;
    e->vop = *id;
    set_val(e, v);
    m->n++;
    return SHOAL_OK;
}

static void
model_delete(model *m, const shoal__eid *id)
{
    mel *e = &m->a[model_find(m, id)];
    if (!e->del) {
        e->del = true;
        e->vop = e->id;
        memset(&e->v, 0, sizeof e->v);
    }
}

static void
model_replace(model *m, const shoal__eid *id, const shoal__eid *op, const shoal_value *v)
{
    mel *e = &m->a[model_find(m, id)];
    if (!e->del && eid_cmp(op, &e->vop) > 0) {
        e->vop = *op;
        set_val(e, v);
    }
}

static size_t
model_visible(const model *m, size_t k)
{
    for (size_t i = 0; i < m->n; i++)
        if (!m->a[i].del && k-- == 0)
            return i;
    return (size_t)-1;
}

static size_t
model_len(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += !m->a[i].del;
    return n;
}

static bool
value_eq(const shoal_value *a, const shoal_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SHOAL_T_NIL: return true;
    case SHOAL_T_BOOL: return a->b == b->b;
    case SHOAL_T_INT: return a->i == b->i;
    case SHOAL_T_DOUBLE: return memcmp(&a->d, &b->d, sizeof a->d) == 0;
    default: return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
    }
}

typedef struct visit_ctx {
    const model *m;
    size_t i;
    bool ok;
} visit_ctx;

static int
visit_cmp(const shoal__eid *id, const shoal__eid *vop, const shoal_value *v, bool deleted,
          void *arg)
{
    visit_ctx *c = arg;
    if (c->i >= c->m->n) {
        c->ok = false;
        return 1;
    }
    const mel *e = &c->m->a[c->i++];
    if (!eid_eq(id, &e->id) || !eid_eq(vop, &e->vop) || deleted != e->del || !value_eq(v, &e->v))
        c->ok = false;
    return 0;
}

static bool
matches_model(const shoal__list *l, const model *m)
{
    if (shoal__list_total(l) != m->n || shoal__list_len(l) != model_len(m))
        return false;
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->a[i].del)
            continue;
        shoal__eid id;
        shoal_value v;
        if (shoal__list_id_at(l, k, &id) != SHOAL_OK || !eid_eq(&id, &m->a[i].id))
            return false;
        if (shoal__list_get(l, k, &v) != SHOAL_OK || !value_eq(&v, &m->a[i].v))
            return false;
        k++;
    }
    visit_ctx c = { m, 0, true };
    if (shoal__list_visit(l, visit_cmp, &c) != SHOAL_OK || !c.ok || c.i != m->n)
        return false;
    return shoal__list_check(l) == SHOAL_OK;
}

static shoal_value
rand_value(char *buf)
{
    uint64_t r = check_rand_below(4);
    if (r == 0) {
        size_t n = (size_t)check_rand_below(20);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)('a' + check_rand_below(26));
        return vstr(buf, n);
    }
    return vint((int64_t)check_rand());
}

static void
test_random_vs_model(void)
{
    shoal__list *l = shoal__list_new(acmp, NULL);
    REQUIRE(l);
    model m = { 0 };
    uint64_t hlc = 100;
    uint32_t idx = 0;
    char buf[24];
    int steps = 15000;
    /* SHOAL_LIST_CHECK_EACH=1 checks the tree after every step (slow). */
    bool check_each = check_env_long("SHOAL_LIST_CHECK_EACH", 0) != 0;
    for (int step = 0; step < steps; step++) {
        uint64_t r = check_rand_below(100);
        size_t len = model_len(&m);
        shoal_value v = rand_value(buf);
        if (r < 40 || len == 0) {
            /* Local insert at a random index. */
            size_t i = (size_t)check_rand_below(len + 1);
            shoal__eid ref, id = mk(++hlc, 0, idx++);
            const shoal__eid *rp = NULL;
            if (i > 0) {
                CHECK_EQ(shoal__list_id_at(l, i - 1, &ref), SHOAL_OK);
                CHECK(eid_eq(&ref, &m.a[model_visible(&m, i - 1)].id));
                rp = &ref;
            }
            CHECK_EQ(shoal__list_insert(l, rp, &id, &v), SHOAL_OK);
            model_insert(&m, rp, &id, &v);
        } else if (r < 65) {
            /* Remote insert: random ref (tombstones too, or the head) and
             * an id a little greater than the ref, so that it meets
             * concurrent siblings and the skip rule matters. */
            shoal__eid ref, id;
            const shoal__eid *rp = NULL;
            uint64_t base = 50;
            if (check_rand_below(10) != 0) {
                ref = m.a[check_rand_below(m.n)].id;
                rp = &ref;
                base = ref.hlc;
            }
            id = mk(base + check_rand_below(8), (uint32_t)check_rand_below(8), idx++);
            if (id.hlc > hlc)
                hlc = id.hlc; /* the local clock observes remote ids */
            int want = model_insert(&m, rp, &id, &v);
            CHECK_EQ(shoal__list_insert(l, rp, &id, &v), want);
        } else if (r < 80) {
            shoal__eid id;
            size_t i = (size_t)check_rand_below(len);
            CHECK_EQ(shoal__list_id_at(l, i, &id), SHOAL_OK);
            CHECK_EQ(shoal__list_delete(l, &id), SHOAL_OK);
            model_delete(&m, &id);
        } else if (r < 85) {
            /* Remote delete of any element (maybe already dead). */
            shoal__eid id = m.a[check_rand_below(m.n)].id;
            CHECK_EQ(shoal__list_delete(l, &id), SHOAL_OK);
            model_delete(&m, &id);
        } else {
            /* Replace: local (fresh greatest op) or remote (random op). */
            shoal__eid id = m.a[check_rand_below(m.n)].id;
            shoal__eid op = check_rand_below(2) ? mk(++hlc, 0, idx++)
                                                : mk(id.hlc + check_rand_below(40),
                                                     (uint32_t)check_rand_below(8), idx++);
            if (op.hlc > hlc)
                hlc = op.hlc;
            CHECK_EQ(shoal__list_replace(l, &id, &op, &v), SHOAL_OK);
            model_replace(&m, &id, &op, &v);
        }
        if (check_each && shoal__list_check(l) != SHOAL_OK) {
            CHECK(!"list invariants broken");
            fprintf(stderr, "corrupt at step %d (op class %d)\n", step, (int)r);
            break;
        }
        if (step % 500 == 499 || step == steps - 1) {
            bool ok = matches_model(l, &m);
            CHECK(ok);
            if (!ok) {
                fprintf(stderr, "diverged at step %d\n", step);
                break;
            }
        }
    }
    CHECK(m.n > 8000);
    shoal__list_free(l);
    free(m.a);
}

/* ------------------------------------------------------------ convergence */

typedef struct rop {
    int kind; /* 0 insert, 1 delete, 2 replace */
    bool head;
    shoal__eid ref; /* insert: ref; delete/replace: target */
    shoal__eid id;  /* insert: new id; replace: op id */
    shoal_value v;
    char s[24];
    size_t dep; /* index of the op this one needs, or SIZE_MAX */
} rop;

static int
apply_rop(shoal__list *l, const rop *o)
{
    shoal_value v = o->v;
    if (v.type == SHOAL_T_STR)
        v.ptr = (const uint8_t *)o->s;
    switch (o->kind) {
    case 0: return shoal__list_insert(l, o->head ? NULL : &o->ref, &o->id, &v);
    case 1: return shoal__list_delete(l, &o->ref);
    default: return shoal__list_replace(l, &o->ref, &o->id, &v);
    }
}

typedef struct seq {
    shoal__eid *ids;
    size_t n, cap;
    uint64_t sum; /* a digest of values and flags */
} seq;

static int
collect(const shoal__eid *id, const shoal__eid *vop, const shoal_value *v, bool deleted, void *arg)
{
    seq *s = arg;
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
    }
    s->ids[s->n++] = *id;
    s->ids[s->n++] = *vop;
    uint64_t h = (uint64_t)v->type * 31 + (deleted ? 7 : 0);
    if (v->type == SHOAL_T_INT)
        h = h * 1000003 + (uint64_t)v->i;
    for (size_t i = 0; v->type == SHOAL_T_STR && i < v->len; i++)
        h = h * 131 + v->ptr[i];
    s->sum = s->sum * 1099511628211ull + h;
    return 0;
}

static void
test_convergence(void)
{
    /* Generate ops on a model (which guarantees they are valid), recording
     * what each needs (the insert of its ref or target). */
    enum {
        NOPS = 2500,
        ORDERS = 5
    };
    rop *ops = calloc(NOPS, sizeof *ops);
    REQUIRE(ops);
    model m = { 0 };
    uint32_t idx = 0;
    size_t nops = 0;
    while (nops < NOPS) {
        rop *o = &ops[nops];
        memset(o, 0, sizeof *o);
        o->dep = SIZE_MAX;
        uint64_t r = check_rand_below(10);
        if (r < 6 || m.n == 0) {
            o->kind = 0;
            o->head = m.n == 0 || check_rand_below(20) == 0;
            uint64_t base = 10;
            if (!o->head) {
                size_t t = (size_t)check_rand_below(m.n);
                o->ref = m.a[t].id;
                base = o->ref.hlc;
            }
            o->id = mk(base + 1 + check_rand_below(5), (uint32_t)check_rand_below(8), idx++);
        } else {
            size_t t = (size_t)check_rand_below(m.n);
            o->kind = r < 8 ? 1 : 2;
            o->ref = m.a[t].id;
            o->id = mk(o->ref.hlc + check_rand_below(6), (uint32_t)check_rand_below(8), idx++);
        }
        shoal_value v = rand_value(o->s);
        o->v = v;
        if (o->kind == 0)
            model_insert(&m, o->head ? NULL : &o->ref, &o->id, &v);
        else if (o->kind == 1)
            model_delete(&m, &o->ref);
        else
            model_replace(&m, &o->ref, &o->id, &v);
        /* dep: the insert op of ref (search backwards; ops are few). */
        if (!(o->kind == 0 && o->head)) {
            for (size_t j = 0; j < nops; j++)
                if (ops[j].kind == 0 && eid_eq(&ops[j].id, &o->ref)) {
                    o->dep = j;
                    break;
                }
            CHECK(o->dep != SIZE_MAX);
        }
        nops++;
    }
    seq first = { 0 };
    for (int ord = 0; ord < ORDERS; ord++) {
        /* Random causal order: a ready set; applying an insert readies the
         * ops that need it. */
        bool *done = calloc(nops, 1);
        size_t *ready = malloc(nops * sizeof *ready);
        size_t nready = 0;
        shoal__list *l = shoal__list_new(acmp, NULL);
        REQUIRE(l && done && ready);
        for (size_t i = 0; i < nops; i++)
            if (ops[i].dep == SIZE_MAX)
                ready[nready++] = i;
        size_t applied = 0;
        while (nready) {
            size_t k = (size_t)check_rand_below(nready);
            size_t i = ready[k];
            ready[k] = ready[--nready];
            CHECK_EQ(apply_rop(l, &ops[i]), SHOAL_OK);
            done[i] = true;
            applied++;
            if (ops[i].kind == 0)
                for (size_t j = 0; j < nops; j++)
                    if (ops[j].dep == i)
                        ready[nready++] = j;
        }
        CHECK_EQ(applied, nops);
        /* Applying everything again changes nothing (idempotence). */
        if (ord == 1)
            for (size_t i = 0; i < nops; i++)
                CHECK_EQ(apply_rop(l, &ops[i]), SHOAL_OK);
        seq s = { 0 };
        CHECK_EQ(shoal__list_visit(l, collect, &s), SHOAL_OK);
        CHECK_EQ(shoal__list_check(l), SHOAL_OK);
        if (ord == 0) {
            CHECK(matches_model(l, &m));
            first = s;
        } else {
            CHECK_EQ(s.n, first.n);
            CHECK(s.sum == first.sum);
            CHECK(s.n == first.n && memcmp(s.ids, first.ids, s.n * sizeof *s.ids) == 0);
            free(s.ids);
        }
        shoal__list_free(l);
        free(done);
        free(ready);
    }
    free(first.ids);
    free(ops);
    free(m.a);
}

/* ---------------------------------------------------------- raw + large */

typedef struct raw_ctx {
    shoal__list *dst;
    int rc;
} raw_ctx;

static int
copy_raw(const shoal__eid *id, const shoal__eid *vop, const shoal_value *v, bool deleted, void *arg)
{
    raw_ctx *c = arg;
    c->rc = shoal__list_append_raw(c->dst, id, vop, v, deleted);
    return c->rc;
}

static int
stop_at_three(const shoal__eid *id, const shoal__eid *vop, const shoal_value *v, bool deleted,
              void *arg)
{
    int *n = arg;
    return ++*n == 3 ? 42 : 0;
}

static void
test_append_raw_and_large(void)
{
    /* A 100k-element list built by mixed local edits. */
    enum {
        N = 100000
    };
    shoal__list *l = shoal__list_new(acmp, NULL);
    REQUIRE(l);
    uint64_t hlc = 1000;
    size_t cursor = 0;
    char buf[24];
    while (shoal__list_total(l) < N) {
        size_t len = shoal__list_len(l);
        /* Mostly typing at a cursor, sometimes jumping or deleting. */
        if (check_rand_below(50) == 0)
            cursor = (size_t)check_rand_below(len + 1);
        if (cursor > len)
            cursor = len;
        shoal_value v = rand_value(buf);
        if (len > 0 && check_rand_below(5) == 0) {
            shoal__eid id;
            size_t at = cursor ? cursor - 1 : 0;
            CHECK_EQ(shoal__list_id_at(l, at, &id), SHOAL_OK);
            CHECK_EQ(shoal__list_delete(l, &id), SHOAL_OK);
            if (cursor)
                cursor--;
            continue;
        }
        shoal__eid ref, id = mk(++hlc, (uint32_t)check_rand_below(3), 0);
        if (cursor > 0)
            CHECK_EQ(shoal__list_id_at(l, cursor - 1, &ref), SHOAL_OK);
        CHECK_EQ(shoal__list_insert(l, cursor ? &ref : NULL, &id, &v), SHOAL_OK);
        cursor++;
    }
    CHECK_EQ(shoal__list_check(l), SHOAL_OK);
    /* id_at, get and visit agree on every element. */
    seq s = { 0 };
    CHECK_EQ(shoal__list_visit(l, collect, &s), SHOAL_OK);
    CHECK_EQ(s.n, 2 * (size_t)N);
    size_t k = 0;
    bool agree = true;
    for (size_t i = 0; i < s.n && agree; i += 2) {
        /* Skip tombstones: find them via visit's order; id_at sees only
         * visible elements, in the same relative order. */
        shoal__eid id;
        if (k >= shoal__list_len(l))
            break;
        if (shoal__list_id_at(l, k, &id) != SHOAL_OK) {
            agree = false;
            break;
        }
        if (eid_eq(&id, &s.ids[i]))
            k++;
    }
    CHECK(agree);
    CHECK_EQ(k, shoal__list_len(l));

    /* Round trip through append_raw: same sequence, same digest. */
    shoal__list *l2 = shoal__list_new(acmp, NULL);
    REQUIRE(l2);
    raw_ctx c = { l2, 0 };
    CHECK_EQ(shoal__list_visit(l, copy_raw, &c), SHOAL_OK);
    CHECK_EQ(c.rc, SHOAL_OK);
    CHECK_EQ(shoal__list_check(l2), SHOAL_OK);
    CHECK_EQ(shoal__list_len(l2), shoal__list_len(l));
    CHECK_EQ(shoal__list_total(l2), N);
    seq s2 = { 0 };
    CHECK_EQ(shoal__list_visit(l2, collect, &s2), SHOAL_OK);
    CHECK(s2.n == s.n && s2.sum == s.sum && memcmp(s2.ids, s.ids, s.n * sizeof *s.ids) == 0);
    /* The raw list's ids are indexed: the same later ops give the same
     * result on both lists. */
    for (int i = 0; i < 2000; i++) {
        shoal__eid ref = s.ids[2 * check_rand_below(N)];
        shoal__eid id = mk(++hlc, 1, 0);
        shoal_value v = vint(i);
        CHECK_EQ(shoal__list_insert(l, &ref, &id, &v), SHOAL_OK);
        CHECK_EQ(shoal__list_insert(l2, &ref, &id, &v), SHOAL_OK);
        if (i % 3 == 0) {
            CHECK_EQ(shoal__list_delete(l, &ref), SHOAL_OK);
            CHECK_EQ(shoal__list_delete(l2, &ref), SHOAL_OK);
        }
    }
    free(s.ids);
    free(s2.ids);
    memset(&s, 0, sizeof s);
    memset(&s2, 0, sizeof s2);
    CHECK_EQ(shoal__list_visit(l, collect, &s), SHOAL_OK);
    CHECK_EQ(shoal__list_visit(l2, collect, &s2), SHOAL_OK);
    CHECK(s2.n == s.n && s2.sum == s.sum && memcmp(s2.ids, s.ids, s.n * sizeof *s.ids) == 0);
    CHECK_EQ(shoal__list_check(l), SHOAL_OK);
    CHECK_EQ(shoal__list_check(l2), SHOAL_OK);
    /* visit stops when the callback returns non-zero, with that value. */
    int n = 0;
    CHECK_EQ(shoal__list_visit(l, stop_at_three, &n), 42);
    CHECK_EQ(n, 3);
    free(s.ids);
    free(s2.ids);
    shoal__list_free(l);
    shoal__list_free(l2);
}

/* Tombstones in raw input are canonicalised: value nil, value op = id. */
static void
test_raw_tombstone(void)
{
    shoal__list *l = shoal__list_new(acmp, NULL);
    REQUIRE(l);
    shoal__eid a = mk(1, 0, 0), b = mk(2, 0, 0), op = mk(9, 0, 0);
    shoal_value v = vstr("some long value here", 20);
    CHECK_EQ(shoal__list_append_raw(l, &a, &op, &v, false), SHOAL_OK);
    CHECK_EQ(shoal__list_append_raw(l, &b, &op, &v, true), SHOAL_OK);
    CHECK_EQ(shoal__list_len(l), 1);
    seq s = { 0 };
    CHECK_EQ(shoal__list_visit(l, collect, &s), SHOAL_OK);
    CHECK_EQ(s.n, 4);
    if (s.n == 4) {
        CHECK(eid_eq(&s.ids[0], &a) && eid_eq(&s.ids[1], &op));
        CHECK(eid_eq(&s.ids[2], &b) && eid_eq(&s.ids[3], &b));
    }
    free(s.ids);
    shoal__list_free(l);
}

/* Every allocation failure is reported and leaves the list unchanged. */
static void
test_oom(void)
{
    char big[40];
    memset(big, 'x', sizeof big);
    int failures = 0;
    for (uint64_t nth = 1; nth < 400; nth++) {
        shoal__list *l = shoal__list_new(acmp, NULL);
        if (!l)
            continue;
        shoal__alloc_fail_after(nth);
        uint64_t hlc = 1;
        int rc = SHOAL_OK;
        size_t ok = 0;
        for (int i = 0; i < 3000 && rc == SHOAL_OK; i++) {
            shoal__eid id = mk(++hlc, 0, 0), ref;
            shoal_value v = vstr(big, (size_t)(i % 40));
            size_t len = shoal__list_len(l);
            size_t at = (size_t)(((uint64_t)i * 7919u) % (len + 1));
            if (at)
                shoal__list_id_at(l, at - 1, &ref);
            rc = shoal__list_insert(l, at ? &ref : NULL, &id, &v);
            if (rc == SHOAL_OK)
                ok++;
        }
        shoal__alloc_fail_after(0);
        if (rc != SHOAL_OK) {
            failures++;
            CHECK_EQ(rc, SHOAL_ENOMEM);
            CHECK_EQ(shoal__list_total(l), ok);
        }
        CHECK_EQ(shoal__list_check(l), SHOAL_OK);
        shoal__list_free(l);
    }
    CHECK(failures > 100);
}

int
main(void)
{
    check_seed(20240611);
    RUN(test_concurrent_same_position);
    RUN(test_interleaved_runs);
    RUN(test_insert_after_tombstone);
    RUN(test_delete_replace);
    RUN(test_errors);
    RUN(test_random_vs_model);
    RUN(test_convergence);
    RUN(test_append_raw_and_large);
    RUN(test_raw_tombstone);
    RUN(test_oom);
    return check_summary();
}
