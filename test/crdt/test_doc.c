/*
 * test/crdt/test_doc.c - the document CRDT (crdt/doc.c) through
 * shoal__doc_apply with hand-built changes: every conflict rule of
 * docs/semantics.md, in every arrival order that respects causality, plus
 * the canonical encodings of docs/state-format.md.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crdt.h"

/* Three authors with KA < KB < KC bytewise. */
static uint8_t KA[32], KB[32], KC[32];

static void
keys_init(void)
{
    memset(KA, 0x11, 32);
    memset(KB, 0x22, 32);
    memset(KC, 0x33, 32);
    KA[31] = 1; /* keys differ in more than one byte */
}

/* A change under construction; ops point at static strings. */
typedef struct tchange {
    shoal__change c;
    shoal__op ops[16];
    uint8_t authors[32 * 3];
} tchange;

static void
tc_init(tchange *t, const uint8_t *author, uint64_t hlc, uint64_t epoch)
{
    memset(t, 0, sizeof *t);
    memcpy(t->c.author, author, 32);
    t->c.seq = 1;
    t->c.hlc = hlc;
    t->c.coll = (const uint8_t *)"c";
    t->c.coll_len = 1;
    t->c.doc = (const uint8_t *)"d";
    t->c.doc_len = 1;
    t->c.epoch = epoch;
    t->c.ops = t->ops;
    /* Every change may refer to the two other test authors: index 1, 2
     * in key order (never itself). */
    const uint8_t *all[3] = { KA, KB, KC };
    for (int i = 0; i < 3; i++) {
        if (memcmp(all[i], author, 32) == 0)
            continue;
        memcpy(t->authors + 32 * t->c.nauthors++, all[i], 32);
    }
    t->c.authors = t->authors;
}

/* Author index that key has inside change t. */
static uint32_t
tc_ai(const tchange *t, const uint8_t *key)
{
    if (memcmp(key, t->c.author, 32) == 0)
        return 0;
    for (uint32_t i = 0; i < t->c.nauthors; i++)
        if (memcmp(t->authors + 32 * i, key, 32) == 0)
            return i + 1;
    abort();
}

static shoal__op *
tc_op(tchange *t, uint8_t kind, const char *field)
{
    if (t->c.nops >= 16)
        abort();
    shoal__op *op = &t->ops[t->c.nops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    if (field) {
        op->field = (const uint8_t *)field;
        op->field_len = strlen(field);
    }
    op->value.type = SHOAL_T_NIL;
    return op;
}

static shoal_value
vint(int64_t i)
{
    shoal_value v = { .type = SHOAL_T_INT, .i = i };
    return v;
}

static shoal_value
vstr(const char *s)
{
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = strlen(s) };
    return v;
}

static void
set(tchange *t, const char *f, shoal_value v)
{
    tc_op(t, SHOAL__OP_SET, f)->value = v;
}

static void
unset(tchange *t, const char *f)
{
    tc_op(t, SHOAL__OP_UNSET, f);
}

static void
count(tchange *t, const char *f, int64_t delta)
{
    tc_op(t, SHOAL__OP_COUNT, f)->delta = delta;
}

static void
deldoc(tchange *t)
{
    tc_op(t, SHOAL__OP_DELDOC, NULL);
}

/* A reference to the element inserted by op index of (key, hlc). */
static shoal__ref
ref(const tchange *t, const uint8_t *key, uint64_t hlc, uint32_t index)
{
    shoal__ref r = { false, hlc, tc_ai(t, key), index };
    return r;
}

static shoal__ref
head(void)
{
    shoal__ref r = { true, 0, 0, 0 };
    return r;
}

static void
ins(tchange *t, const char *f, shoal__ref r, shoal_value v)
{
    shoal__op *op = tc_op(t, SHOAL__OP_INS, f);
    op->ref = r;
    op->value = v;
}

static void
del(tchange *t, const char *f, shoal__ref r)
{
    tc_op(t, SHOAL__OP_DEL, f)->ref = r;
}

static void
rep(tchange *t, const char *f, shoal__ref r, shoal_value v)
{
    shoal__op *op = tc_op(t, SHOAL__OP_REP, f);
    op->ref = r;
    op->value = v;
}

/* ------------------------------------------------------------ rendering */

static void
put_value(char *out, size_t cap, const shoal_value *v)
{
    size_t n = strlen(out);
    switch (v->type) {
    case SHOAL_T_NIL: snprintf(out + n, cap - n, "nil"); break;
    case SHOAL_T_BOOL: snprintf(out + n, cap - n, v->b ? "true" : "false"); break;
    case SHOAL_T_INT: snprintf(out + n, cap - n, "%lld", (long long)v->i); break;
    case SHOAL_T_DOUBLE: snprintf(out + n, cap - n, "%g", v->d); break;
    case SHOAL_T_STR:
        snprintf(out + n, cap - n, "'%.*s'", (int)v->len, (const char *)v->ptr);
        break;
    case SHOAL_T_BYTES: snprintf(out + n, cap - n, "bin%zu", v->len); break;
    case SHOAL_T_REDACTED: snprintf(out + n, cap - n, "?"); break;
    }
}

/* The visible state as text: "a=1 c=#3 l=[x,y]", "<deleted>", "<none>". */
static const char *
render(const shoal__doc *d)
{
    static char out[1024];
    shoal__vfield *v;
    size_t n;
    out[0] = 0;
    if (!shoal__doc_exists(d))
        return "<none>";
    if (shoal__doc_deleted(d))
        return "<deleted>";
    if (shoal__doc_view(d, &v, &n) != SHOAL_OK)
        return "<view error>";
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(out);
        snprintf(out + k, sizeof out - k, "%s%.*s=", i ? " " : "", (int)v[i].name_len,
                 (const char *)v[i].name);
        k = strlen(out);
        if (v[i].kind == SHOAL_K_REGISTER) {
            put_value(out, sizeof out, &v[i].value);
        } else if (v[i].kind == SHOAL_K_COUNTER && v[i].value.type == SHOAL_T_REDACTED) {
            snprintf(out + k, sizeof out - k, "#?");
        } else if (v[i].kind == SHOAL_K_COUNTER) {
            snprintf(out + k, sizeof out - k, "#%lld", (long long)v[i].counter);
        } else {
            snprintf(out + k, sizeof out - k, "[");
            for (size_t j = 0; j < v[i].nitems; j++) {
                if (j) {
                    k = strlen(out);
                    snprintf(out + k, sizeof out - k, ",");
                }
                put_value(out, sizeof out, &v[i].items[j]);
            }
            k = strlen(out);
            snprintf(out + k, sizeof out - k, "]");
        }
    }
    shoal__doc_view_free(v, n);
    return out;
}

/* encode_full(d) -> decode -> encode must give the same bytes. */
static void
check_roundtrip(const shoal__doc *d)
{
    shoal__buf a, b;
    shoal__doc *d2 = NULL;
    shoal__buf_init(&a);
    shoal__buf_init(&b);
    CHECK_EQ(shoal__doc_encode_full(d, &a), SHOAL_OK);
    CHECK_EQ(shoal__doc_decode_full(a.p, a.len, &d2), SHOAL_OK);
    if (d2) {
        CHECK_EQ(shoal__doc_encode_full(d2, &b), SHOAL_OK);
        CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
        char r1[1024];
        snprintf(r1, sizeof r1, "%s", render(d));
        CHECK(strcmp(r1, render(d2)) == 0);
    }
    shoal__doc_free(d2);
    shoal__buf_free(&a);
    shoal__buf_free(&b);
}

/* Apply the n changes in every order in which each change comes after
 * after[i] (an index or -1); each order must render as expect, and all must
 * have byte-identical full and visible encodings.  Returns the number of
 * orders tried. */
static int
all_orders(tchange **cs, size_t n, const int *after, const char *expect)
{
    size_t perm[8], tried = 0;
    shoal__buf first_full, first_vis;
    shoal__buf_init(&first_full);
    shoal__buf_init(&first_vis);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    /* Iterate over permutations in lexicographic order. */
    for (;;) {
        bool okorder = true;
        for (size_t i = 0; i < n && okorder; i++) {
            if (after && after[perm[i]] >= 0) {
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                    seen |= (int)perm[j] == after[perm[i]];
                okorder = seen;
            }
        }
        if (okorder) {
            shoal__doc *d = shoal__doc_new();
            for (size_t i = 0; i < n; i++)
                CHECK_EQ(shoal__doc_apply(d, &cs[perm[i]]->c, 0, cs[perm[i]]->c.nops), SHOAL_OK);
            const char *got = render(d);
            if (strcmp(got, expect) != 0) {
                fprintf(stderr, "order");
                for (size_t i = 0; i < n; i++)
                    fprintf(stderr, " %zu", perm[i]);
                fprintf(stderr, ": got \"%s\", expected \"%s\"\n", got, expect);
                check_failures++;
            }
            shoal__buf full, vis;
            shoal__buf_init(&full);
            shoal__buf_init(&vis);
            CHECK_EQ(shoal__doc_encode_full(d, &full), SHOAL_OK);
            CHECK_EQ(shoal__doc_encode_visible(d, &vis), SHOAL_OK);
            if (tried == 0) {
                first_full = full;
                first_vis = vis;
                check_roundtrip(d);
            } else {
                CHECK(full.len == first_full.len && memcmp(full.p, first_full.p, full.len) == 0);
                CHECK(vis.len == first_vis.len && memcmp(vis.p, first_vis.p, vis.len) == 0);
                shoal__buf_free(&full);
                shoal__buf_free(&vis);
            }
            tried++;
            shoal__doc_free(d);
        }
        /* next permutation */
        size_t i = n - 1;
        while (i > 0 && perm[i - 1] > perm[i])
            i--;
        if (i == 0)
            break;
        size_t j = n - 1;
        while (perm[j] < perm[i - 1])
            j--;
        size_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
        for (size_t a = i, b = n - 1; a < b; a++, b--) {
            tmp = perm[a];
            perm[a] = perm[b];
            perm[b] = tmp;
        }
    }
    shoal__buf_free(&first_full);
    shoal__buf_free(&first_vis);
    return (int)tried;
}

static shoal__doc *
apply_all(tchange **cs, size_t n)
{
    shoal__doc *d = shoal__doc_new();
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(shoal__doc_apply(d, &cs[i]->c, 0, cs[i]->c.nops), SHOAL_OK);
    return d;
}

/* -------------------------------------------------------------- tests */

static void
test_lww_register(void)
{
    tchange a, b, c;
    tc_init(&a, KA, 100, 0);
    set(&a, "x", vint(1));
    tc_init(&b, KB, 200, 0);
    set(&b, "x", vint(2));
    tchange *cs[] = { &a, &b };
    CHECK_EQ(all_orders(cs, 2, NULL, "x=2"), 2);

    /* Same HLC: the greater author key wins. */
    tc_init(&c, KC, 100, 0);
    set(&c, "x", vstr("from c"));
    tchange *cs2[] = { &a, &c };
    CHECK_EQ(all_orders(cs2, 2, NULL, "x='from c'"), 2);

    /* Same change, same field twice: the later index wins. */
    tc_init(&a, KA, 100, 0);
    set(&a, "x", vint(1));
    set(&a, "x", vint(7));
    set(&a, "y", vint(3));
    tchange *cs3[] = { &a };
    CHECK_EQ(all_orders(cs3, 1, NULL, "x=7 y=3"), 1);
}

static void
test_unset(void)
{
    tchange a, b, c;
    tc_init(&a, KA, 100, 0);
    set(&a, "x", vint(1));
    set(&a, "y", vint(2));
    tc_init(&b, KB, 200, 0);
    unset(&b, "x");
    tchange *cs[] = { &a, &b };
    CHECK_EQ(all_orders(cs, 2, NULL, "y=2"), 2);

    shoal__doc *d = apply_all(cs, 2);
    shoal_kind k;
    CHECK_EQ(shoal__doc_field_kind(d, (const uint8_t *)"x", 1, &k), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__doc_field_kind(d, (const uint8_t *)"y", 1, &k), SHOAL_OK);
    CHECK_EQ(k, SHOAL_K_REGISTER);
    shoal__doc_free(d);

    /* A concurrent earlier unset loses to a later set. */
    tc_init(&c, KC, 300, 0);
    set(&c, "x", vint(9));
    tchange *cs2[] = { &a, &b, &c };
    CHECK_EQ(all_orders(cs2, 3, NULL, "x=9 y=2"), 6);
}

static void
test_delete_wins(void)
{
    tchange a, b;
    /* The update has the greater HLC, the delete still wins. */
    tc_init(&a, KA, 500, 0);
    set(&a, "x", vint(1));
    count(&a, "n", 4);
    tc_init(&b, KB, 100, 0);
    deldoc(&b);
    tchange *cs[] = { &a, &b };
    CHECK_EQ(all_orders(cs, 2, NULL, "<deleted>"), 2);
    shoal__doc *d = apply_all(cs, 2);
    CHECK(shoal__doc_deleted(d));
    CHECK(shoal__doc_exists(d));
    CHECK_EQ(shoal__doc_epoch(d), 0);
    shoal__vfield *v;
    size_t n = 99;
    CHECK_EQ(shoal__doc_view(d, &v, &n), SHOAL_OK);
    CHECK_EQ(n, 0);
    shoal__doc_view_free(v, n);
    shoal__doc_free(d);

    /* Ops after DELDOC in the same change are discarded too. */
    tc_init(&b, KB, 100, 0);
    deldoc(&b);
    set(&b, "z", vint(1));
    tchange *cs2[] = { &b };
    CHECK_EQ(all_orders(cs2, 1, NULL, "<deleted>"), 1);
}

static void
test_recreate(void)
{
    tchange s0, d0, s1, late;
    tc_init(&s0, KA, 100, 0);
    set(&s0, "x", vint(1));
    tc_init(&d0, KB, 200, 0);
    deldoc(&d0);
    /* KC saw the delete and writes again: epoch 1. */
    tc_init(&s1, KC, 300, 1);
    set(&s1, "y", vint(2));
    /* A slow replica that never saw the delete writes in epoch 0 at a later
     * time: discarded wherever it arrives. */
    tc_init(&late, KA, 900, 0);
    set(&late, "x", vint(5));
    set(&late, "y", vint(5));
    tchange *cs[] = { &s0, &d0, &s1, &late };
    int after[] = { -1, -1, 1, 0 };
    CHECK_EQ(all_orders(cs, 4, after, "y=2"), 6);

    shoal__doc *d = apply_all(cs, 4);
    CHECK_EQ(shoal__doc_epoch(d), 1);
    CHECK(!shoal__doc_deleted(d));
    shoal__doc_free(d);

    /* Delete of the new epoch, then epoch 2. */
    tchange d1, s2;
    tc_init(&d1, KA, 400, 1);
    deldoc(&d1);
    tc_init(&s2, KB, 500, 2);
    count(&s2, "n", 3);
    tchange *cs2[] = { &s0, &d0, &s1, &d1, &s2 };
    int after2[] = { -1, 0, 1, 2, 3 };
    CHECK_EQ(all_orders(cs2, 5, after2, "n=#3"), 1);
}

/* A VOID change (its author revoked below its seq): its list inserts stay
 * as invisible anchors, so an element another author inserted after one
 * keeps its place; nothing else of it takes effect (a register, a
 * counter, a DELDOC, a new epoch), and it does not make the document
 * exist.  Other changes apply as ever. */
static void
test_void(void)
{
    tchange a, v, b, vset, vdel, vnew;
    tc_init(&a, KA, 100, 0);
    set(&a, "x", vint(1));
    ins(&a, "l", head(), vstr("a"));
    tc_init(&v, KB, 200, 0); /* KB is revoked: every change of it is void */
    ins(&v, "l", ref(&v, KA, 100, 1), vstr("v1"));
    ins(&v, "l", ref(&v, KB, 200, 0), vstr("v2"));
    set(&v, "x", vint(9));
    count(&v, "n", 5);
    tc_init(&b, KC, 300, 0); /* KC inserts after KB's second element */
    ins(&b, "l", ref(&b, KB, 200, 1), vstr("c"));
    shoal__doc *d = shoal__doc_new();
    CHECK_EQ(shoal__doc_apply(d, &a.c, 0, a.c.nops), SHOAL_OK);
    CHECK_EQ(shoal__doc_apply_void(d, &v.c), SHOAL_OK);
    CHECK_EQ(shoal__doc_apply(d, &b.c, 0, b.c.nops), SHOAL_OK);
    CHECK(strcmp(render(d), "l=['a','c'] x=1") == 0);
    check_roundtrip(d);
    /* a void DELDOC, a void new epoch: nothing */
    tc_init(&vdel, KB, 400, 0);
    deldoc(&vdel);
    CHECK_EQ(shoal__doc_apply_void(d, &vdel.c), SHOAL_OK);
    tc_init(&vnew, KB, 500, 1);
    set(&vnew, "y", vint(2));
    CHECK_EQ(shoal__doc_apply_void(d, &vnew.c), SHOAL_OK);
    CHECK(!shoal__doc_deleted(d) && shoal__doc_epoch(d) == 0);
    CHECK(strcmp(render(d), "l=['a','c'] x=1") == 0);
    shoal__doc_free(d);
    /* a document only void changes touched does not exist */
    d = shoal__doc_new();
    tc_init(&vset, KB, 600, 0);
    set(&vset, "x", vint(3));
    ins(&vset, "l", head(), vstr("z"));
    CHECK_EQ(shoal__doc_apply_void(d, &vset.c), SHOAL_OK);
    CHECK(!shoal__doc_exists(d));
    /* a refused ref is refused all the same */
    tchange bad;
    tc_init(&bad, KB, 700, 0);
    ins(&bad, "l", ref(&bad, KA, 800, 0), vstr("q"));
    CHECK_EQ(shoal__doc_apply_void(d, &bad.c), SHOAL_EPROTO);
    shoal__doc_free(d);
}

/* Sealed ops whose group is not held (docs/permissions.md "Sealed
 * fields"): REDACTED values with the structure intact, in every order,
 * through both encodings. */
static void
seal_op(tchange *t)
{
    shoal__op *op = &t->ops[t->c.nops - 1];
    op->sealed = true;
    op->value.type = SHOAL_T_REDACTED;
}

static void
test_redacted(void)
{
    tchange a, b, c;
    tc_init(&a, KA, 100, 0);
    set(&a, "cost", vint(0));
    seal_op(&a);
    ins(&a, "l", head(), vstr("a"));
    ins(&a, "l", ref(&a, KA, 100, 1), vint(0));
    seal_op(&a);
    count(&a, "n", 2);
    tc_init(&b, KB, 200, 0);
    count(&b, "n", 0);
    seal_op(&b);                                  /* a hidden increment */
    ins(&b, "l", ref(&b, KA, 100, 2), vstr("b")); /* after the redacted element */
    rep(&b, "l", ref(&b, KA, 100, 1), vint(0));
    seal_op(&b);
    tc_init(&c, KC, 300, 0);
    set(&c, "name", vstr("tea"));
    tchange *cs[] = { &a, &b, &c };
    int after[] = { -1, 0, -1 };
    CHECK_EQ(all_orders(cs, 3, after, "cost=? l=[?,?,'b'] n=#? name='tea'"), 3);
    shoal__doc *d = shoal__doc_new();
    for (int i = 0; i < 3; i++)
        CHECK_EQ(shoal__doc_apply(d, &cs[i]->c, 0, cs[i]->c.nops), SHOAL_OK);
    check_roundtrip(d);
    /* the visible encoding holds the marker */
    shoal__buf v;
    shoal__buf_init(&v);
    CHECK_EQ(shoal__doc_encode_visible(d, &v), SHOAL_OK);
    CHECK(memmem(v.p, v.len, "\xd4\x01\x00", 3) != NULL);
    /* a later disclosed write replaces a redacted one, as any LWW write */
    tchange e;
    tc_init(&e, KA, 400, 0);
    set(&e, "cost", vint(7));
    CHECK_EQ(shoal__doc_apply(d, &e.c, 0, e.c.nops), SHOAL_OK);
    CHECK(strstr(render(d), "cost=7") != NULL);
    check_roundtrip(d);
    shoal__doc_free(d);
    shoal__buf_free(&v);
    /* a counter whose increments are all hidden */
    d = shoal__doc_new();
    CHECK_EQ(shoal__doc_apply(d, &b.c, 0, 1), SHOAL_OK);
    CHECK(strcmp(render(d), "n=#?") == 0);
    check_roundtrip(d);
    shoal__doc_free(d);
}

static void
test_old_epoch_discarded(void)
{
    tchange a, b;
    tc_init(&a, KA, 100, 2);
    set(&a, "x", vint(1));
    tc_init(&b, KB, 900, 1);
    set(&b, "x", vint(2));
    set(&b, "y", vint(2));
    deldoc(&b);
    tchange *cs[] = { &a, &b };
    CHECK_EQ(all_orders(cs, 2, NULL, "x=1"), 2);

    /* A change with no ops makes the document exist. */
    tchange e;
    tc_init(&e, KA, 100, 0);
    shoal__doc *d = shoal__doc_new();
    CHECK(!shoal__doc_exists(d));
    CHECK(strcmp(render(d), "<none>") == 0);
    CHECK_EQ(shoal__doc_apply(d, &e.c, 0, 0), SHOAL_OK);
    CHECK(shoal__doc_exists(d));
    CHECK(strcmp(render(d), "") == 0);
    shoal__doc_free(d);
}

static void
test_counter_dies_with_epoch(void)
{
    tchange inc, del, inc1;
    tc_init(&inc, KA, 300, 0);
    count(&inc, "n", 5);
    tc_init(&del, KB, 200, 0);
    deldoc(&del);
    tc_init(&inc1, KC, 400, 1);
    count(&inc1, "n", 1);
    tchange *cs[] = { &inc, &del, &inc1 };
    int after[] = { -1, -1, 1 };
    CHECK_EQ(all_orders(cs, 3, after, "n=#1"), 3);
}

static void
test_counters_keep_all(void)
{
    tchange a1, a2, b, c;
    tc_init(&a1, KA, 100, 0);
    count(&a1, "n", 5);
    tc_init(&a2, KA, 300, 0);
    count(&a2, "n", 2);
    count(&a2, "n", -1);
    tc_init(&b, KB, 100, 0);
    count(&b, "n", -3);
    tc_init(&c, KC, 50, 0);
    count(&c, "n", 10);
    tchange *cs[] = { &a1, &a2, &b, &c };
    int after[] = { -1, 0, -1, -1 };
    CHECK_EQ(all_orders(cs, 4, after, "n=#13"), 12);

    /* Sums wrap: value = (int64)(P - N). */
    tc_init(&a1, KA, 100, 0);
    count(&a1, "n", INT64_MAX);
    count(&a1, "n", INT64_MAX);
    count(&a1, "n", 2);
    count(&a1, "m", INT64_MIN);
    count(&a1, "k", INT64_MAX);
    tc_init(&b, KB, 100, 0);
    count(&b, "k", 1);
    tchange *cs2[] = { &a1, &b };
    char expect[128];
    snprintf(expect, sizeof expect, "k=#%lld m=#%lld n=#0", (long long)INT64_MIN,
             (long long)INT64_MIN);
    CHECK_EQ(all_orders(cs2, 2, NULL, expect), 2);
}

static void
test_list_order(void)
{
    tchange a, b, c;
    /* Two concurrent inserts at the head: greater id first. */
    tc_init(&a, KA, 100, 0);
    ins(&a, "l", head(), vstr("a"));
    tc_init(&b, KB, 200, 0);
    ins(&b, "l", head(), vstr("b"));
    tchange *cs[] = { &a, &b };
    CHECK_EQ(all_orders(cs, 2, NULL, "l=['b','a']"), 2);

    /* X at head; then concurrently y (hlc 200) and z (hlc 300) after X;
     * w after y (hlc 250, same author as y).  RGA: X z y w. */
    tchange x, y, z, w;
    tc_init(&x, KA, 100, 0);
    ins(&x, "l", head(), vstr("X"));
    tc_init(&y, KB, 200, 0);
    ins(&y, "l", ref(&y, KA, 100, 0), vstr("y"));
    tc_init(&w, KB, 250, 0);
    ins(&w, "l", ref(&w, KB, 200, 0), vstr("w"));
    tc_init(&z, KC, 300, 0);
    ins(&z, "l", ref(&z, KA, 100, 0), vstr("z"));
    tchange *cs2[] = { &x, &y, &w, &z };
    int after[] = { -1, 0, 1, 0 };
    CHECK_EQ(all_orders(cs2, 4, after, "l=['X','z','y','w']"), 3);

    /* Several inserts in one change, each after the previous. */
    tc_init(&c, KC, 400, 0);
    ins(&c, "m", head(), vint(1));
    ins(&c, "m", ref(&c, KC, 400, 0), vint(2));
    ins(&c, "m", ref(&c, KC, 400, 1), vint(3));
    ins(&c, "m", head(), vint(0));
    tchange *cs3[] = { &c };
    CHECK_EQ(all_orders(cs3, 1, NULL, "m=[0,1,2,3]"), 1);

    /* Applying a change in pieces equals applying it whole. */
    shoal__doc *d1 = shoal__doc_new(), *d2 = shoal__doc_new();
    CHECK_EQ(shoal__doc_apply(d1, &c.c, 0, 4), SHOAL_OK);
    CHECK_EQ(shoal__doc_apply(d2, &c.c, 0, 1), SHOAL_OK);
    CHECK_EQ(shoal__doc_apply(d2, &c.c, 1, 3), SHOAL_OK);
    CHECK_EQ(shoal__doc_apply(d2, &c.c, 3, 4), SHOAL_OK);
    shoal__buf b1, b2;
    shoal__buf_init(&b1);
    shoal__buf_init(&b2);
    CHECK_EQ(shoal__doc_encode_full(d1, &b1), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_full(d2, &b2), SHOAL_OK);
    CHECK(b1.len == b2.len && memcmp(b1.p, b2.p, b1.len) == 0);
    const shoal__list *l = shoal__doc_list(d2, (const uint8_t *)"m", 1);
    REQUIRE(l != NULL);
    CHECK_EQ(shoal__list_len(l), 4);
    shoal__eid id;
    CHECK_EQ(shoal__list_id_at(l, 1, &id), SHOAL_OK);
    CHECK_EQ(id.hlc, 400);
    CHECK_EQ(id.index, 0);
    const uint8_t *key = shoal__doc_author_key(d2, id.author);
    CHECK(key && memcmp(key, KC, 32) == 0);
    CHECK(shoal__doc_list(d2, (const uint8_t *)"zz", 2) == NULL);
    shoal__buf_free(&b1);
    shoal__buf_free(&b2);
    shoal__doc_free(d1);
    shoal__doc_free(d2);
}

static void
test_list_replace_lww(void)
{
    tchange x, p, q;
    tc_init(&x, KA, 100, 0);
    ins(&x, "l", head(), vstr("e"));
    ins(&x, "l", ref(&x, KA, 100, 0), vstr("f"));
    tc_init(&p, KB, 300, 0);
    rep(&p, "l", ref(&p, KA, 100, 0), vstr("p"));
    tc_init(&q, KC, 200, 0);
    rep(&q, "l", ref(&q, KA, 100, 0), vstr("q"));
    rep(&q, "l", ref(&q, KA, 100, 1), vstr("g"));
    tchange *cs[] = { &x, &p, &q };
    int after[] = { -1, 0, 0 };
    CHECK_EQ(all_orders(cs, 3, after, "l=['p','g']"), 2);
}

static void
test_list_delete_wins(void)
{
    tchange x, r, dl, r2;
    tc_init(&x, KA, 100, 0);
    ins(&x, "l", head(), vint(1));
    ins(&x, "l", ref(&x, KA, 100, 0), vint(2));
    /* The replace is later than the delete; the delete still wins. */
    tc_init(&r, KB, 300, 0);
    rep(&r, "l", ref(&r, KA, 100, 0), vint(10));
    tc_init(&dl, KC, 200, 0);
    del(&dl, "l", ref(&dl, KA, 100, 0));
    tc_init(&r2, KC, 150, 0);
    rep(&r2, "l", ref(&r2, KA, 100, 0), vint(11));
    tchange *cs[] = { &x, &r, &dl, &r2 };
    int after[] = { -1, 0, 0, 0 };
    CHECK_EQ(all_orders(cs, 4, after, "l=[2]"), 6);

    /* Deleting everything leaves a visible empty list. */
    tchange d2;
    tc_init(&d2, KB, 400, 0);
    del(&d2, "l", ref(&d2, KA, 100, 1));
    del(&d2, "l", ref(&d2, KA, 100, 1)); /* twice: idempotent */
    tchange *cs2[] = { &x, &r, &dl, &d2 };
    int after2[] = { -1, 0, 0, 0 };
    CHECK_EQ(all_orders(cs2, 4, after2, "l=[]"), 6);
}

static void
test_kind_conflicts(void)
{
    tchange r, c, l;
    /* Register first op 100, counter 200, list 300: the list shows. */
    tc_init(&r, KA, 100, 0);
    set(&r, "f", vint(1));
    tc_init(&c, KB, 200, 0);
    count(&c, "f", 2);
    tc_init(&l, KC, 300, 0);
    ins(&l, "f", head(), vstr("x"));
    tchange *cs[] = { &r, &c, &l };
    CHECK_EQ(all_orders(cs, 3, NULL, "f=['x']"), 6);

    /* Register first op greatest: the register shows. */
    tc_init(&r, KA, 400, 0);
    set(&r, "f", vint(1));
    CHECK_EQ(all_orders(cs, 3, NULL, "f=1"), 6);

    /* Counter greatest, and the register holds absent behind it. */
    tc_init(&r, KA, 100, 0);
    unset(&r, "f");
    tc_init(&c, KB, 500, 0);
    count(&c, "f", -2);
    CHECK_EQ(all_orders(cs, 3, NULL, "f=#-2"), 6);

    /* The first op decides, not the latest: a later register write does
     * not take the field back from the counter. */
    tchange r2;
    tc_init(&r, KA, 100, 0);
    set(&r, "f", vint(1));
    tc_init(&c, KB, 200, 0);
    count(&c, "f", 2);
    tc_init(&r2, KA, 900, 0);
    set(&r2, "f", vint(5));
    tchange *cs2[] = { &r, &c, &r2 };
    int after[] = { -1, -1, 0 };
    CHECK_EQ(all_orders(cs2, 3, after, "f=#2"), 3);
    shoal__doc *d = apply_all(cs2, 3);
    shoal_kind k;
    CHECK_EQ(shoal__doc_field_kind(d, (const uint8_t *)"f", 1, &k), SHOAL_OK);
    CHECK_EQ(k, SHOAL_K_COUNTER);
    shoal__doc_free(d);

    /* Register greatest but absent: the field is hidden. */
    tc_init(&r, KA, 900, 0);
    unset(&r, "f");
    tchange *cs3[] = { &r, &c };
    CHECK_EQ(all_orders(cs3, 2, NULL, ""), 2);
}

/* Missing refs (an element only a losing equivocation version created,
 * or one inserted after such an element) are no-ops that leave the state
 * byte for byte as it was; structural errors stay SHOAL_EPROTO. */
static void
test_invalid_ops(void)
{
    tchange base, t;
    tc_init(&base, KA, 100, 0);
    ins(&base, "l", head(), vint(1));
    set(&base, "r", vint(1));
    shoal__buf want;
    shoal__buf_init(&want);
    {
        shoal__doc *d0 = shoal__doc_new();
        REQUIRE(shoal__doc_apply(d0, &base.c, 0, base.c.nops) == SHOAL_OK);
        REQUIRE(shoal__doc_encode_full(d0, &want) == SHOAL_OK);
        shoal__doc_free(d0);
    }

    for (int kase = 0; kase < 15; kase++) {
        shoal__doc *d = shoal__doc_new();
        CHECK_EQ(shoal__doc_apply(d, &base.c, 0, base.c.nops), SHOAL_OK);
        tc_init(&t, KB, 200, 0);
        bool noop = kase <= 5;
        switch (kase) {
        case 0: ins(&t, "l", ref(&t, KA, 99, 0), vint(2)); break;       /* unknown ref */
        case 1: ins(&t, "l", ref(&t, KC, 100, 0), vint(2)); break;      /* unknown author */
        case 2: del(&t, "l", ref(&t, KA, 100, 5)); break;               /* unknown element */
        case 3: rep(&t, "l", ref(&t, KA, 100, 1), vint(2)); break;      /* unknown element */
        case 4: del(&t, "nolist", ref(&t, KA, 100, 0)); break;          /* field has no list */
        case 5: ins(&t, "nolist", ref(&t, KA, 100, 0), vint(2)); break; /* field has no list */
        case 6:
            set(&t, "x", vint(1));
            t.ops[0].field = NULL;
            break;                                        /* no field */
        case 7: del(&t, "l", ref(&t, KC, 200, 0)); break; /* another author, same clock */
        case 8: tc_op(&t, 99, "x"); break;                /* unknown kind */
        case 9: {                                         /* ref author out of range */
            shoal__ref r = ref(&t, KA, 100, 0);
            r.author = 7;
            del(&t, "l", r);
            break;
        }
        case 10: /* id not greater than its ref: insert after an element
                  * from the future. */
            t.c.hlc = 50;
            ins(&t, "l", ref(&t, KA, 100, 0), vint(2));
            break;
        case 11:
            set(&t, "x", vint(1));
            t.ops[0].field_len = 0;
            break; /* empty field */
        case 12:   /* the same, with a ref that names no element */
            t.c.hlc = 50;
            ins(&t, "l", ref(&t, KA, 60, 0), vint(2));
            break;
        case 13: del(&t, "l", ref(&t, KA, 300, 0)); break; /* missing and later than the change */
        case 14: { /* missing, ref author out of range, into a missing list */
            shoal__ref r = ref(&t, KA, 100, 0);
            r.author = 7;
            ins(&t, "nolist", r, vint(1));
            break;
        }
        }
        int rc = shoal__doc_apply(d, &t.c, 0, t.c.nops);
        if (rc != (noop ? SHOAL_OK : SHOAL_EPROTO)) {
            fprintf(stderr, "case %d: rc %d\n", kase, rc);
            check_failures++;
        }
        if (noop) {
            shoal__buf got;
            shoal__buf_init(&got);
            CHECK_EQ(shoal__doc_encode_full(d, &got), SHOAL_OK);
            CHECK(got.len == want.len && memcmp(got.p, want.p, got.len) == 0);
            shoal__buf_free(&got);
        }
        shoal__doc_free(d);
    }
    shoal__buf_free(&want);
}

/* A list op may only name an op that can lie in its change's causal past:
 * an earlier op of the change itself, or an op stamped before the change.
 * Another author's op at the change's own clock value (either key order),
 * or a later one, is refused (SHOAL_EPROTO) whether or not the element is
 * held, so the verdict does not depend on arrival order. */
static void
test_refs_causal_past(void)
{
    /* B (key greater than A's) and A both insert an element at hlc 200. */
    tchange eb, ea;
    tc_init(&eb, KB, 200, 0);
    ins(&eb, "l", head(), vint(1));
    tc_init(&ea, KA, 200, 0);
    ins(&ea, "l", head(), vint(2));
    for (int kase = 0; kase < 9; kase++) {
        tchange t;
        bool ok = false;
        tc_init(&t, KA, 200, 0);
        switch (kase) {
        case 0: del(&t, "l", ref(&t, KB, 200, 0)); break;          /* same clock, greater key */
        case 1: rep(&t, "l", ref(&t, KB, 200, 0), vint(9)); break; /* the same, replace */
        case 2: ins(&t, "l", ref(&t, KB, 200, 0), vint(9)); break; /* the same, insert */
        case 3: /* B at the same clock naming A's op (smaller key): was
                 * accepted for an insert (its id is greater), refused now. */
            tc_init(&t, KB, 200, 0);
            ins(&t, "l", ref(&t, KA, 200, 0), vint(9));
            break;
        case 4:
            tc_init(&t, KB, 200, 0);
            del(&t, "l", ref(&t, KA, 200, 0));
            break;
        case 5: del(&t, "l", ref(&t, KB, 201, 0)); break; /* later clock */
        case 6: /* an op of this change naming a later op of itself */
            ins(&t, "l", head(), vint(3));
            del(&t, "l", ref(&t, KA, 200, 1));
            break;
        case 7: /* earlier op of this change: fine */
            ins(&t, "l", head(), vint(3));
            del(&t, "l", ref(&t, KA, 200, 0));
            ok = true;
            break;
        case 8: /* an op stamped before the change: fine */
            t.c.hlc = 201;
            del(&t, "l", ref(&t, KB, 200, 0));
            ok = true;
            break;
        }
        /* The reason, for error messages, from the change alone. */
        size_t at = 99;
        const char *why = shoal__doc_refusal(&t.c, &at);
        CHECK(ok ? why == NULL : why != NULL);
        if (!ok && why)
            CHECK_EQ(at, t.c.nops - 1);
        if (kase == 0 && why)
            CHECK(strstr(why, "causal past") != NULL);
        bool a_author = memcmp(t.c.author, KA, 32) == 0;
        /* The other author's change arrived first, or not at all. */
        for (int first = 0; first < 2; first++) {
            shoal__doc *d = shoal__doc_new();
            if (first)
                CHECK_EQ(shoal__doc_apply(d, a_author ? &eb.c : &ea.c, 0, 1), SHOAL_OK);
            int rc = shoal__doc_apply(d, &t.c, 0, t.c.nops);
            if (rc != (ok ? SHOAL_OK : SHOAL_EPROTO)) {
                fprintf(stderr, "case %d first %d: rc %d\n", kase, first, rc);
                check_failures++;
            }
            shoal__doc_free(d);
        }
    }
}

/* A change shoal__doc_refusal refuses is refused (SHOAL_EPROTO) whatever
 * the document holds, also where the epoch rule discards its ops: on a
 * document already at a newer epoch, on a deleted one, and after its own
 * DELDOC.  It used to be taken there (its ops discarded), so whether it
 * counted as applied depended on the order it arrived in: found by
 * test/fuzz/fuzz_apply.c (corpus/apply/regress-refusal-epoch). */
static void
test_refusal_any_epoch(void)
{
    tchange newer, gone;
    tc_init(&newer, KB, 150, 1);
    set(&newer, "x", vint(1));
    tc_init(&gone, KB, 150, 0);
    deldoc(&gone);
    for (int kase = 0; kase < 3; kase++) {
        tchange t;
        tc_init(&t, KA, 200, 0);
        if (kase == 2)
            deldoc(&t);
        del(&t, "l", ref(&t, KB, 300, 0)); /* stamped after the change */
        size_t at;
        CHECK(shoal__doc_refusal(&t.c, &at) != NULL);
        shoal__doc *d = shoal__doc_new();
        if (kase < 2)
            CHECK_EQ(shoal__doc_apply(d, kase == 0 ? &newer.c : &gone.c, 0, 1), SHOAL_OK);
        shoal__buf before, after;
        shoal__buf_init(&before);
        shoal__buf_init(&after);
        CHECK_EQ(shoal__doc_encode_full(d, &before), SHOAL_OK);
        int rc = shoal__doc_apply(d, &t.c, 0, t.c.nops);
        if (rc != SHOAL_EPROTO) {
            fprintf(stderr, "case %d: rc %d\n", kase, rc);
            check_failures++;
        }
        /* Refused before it touched the document. */
        CHECK_EQ(shoal__doc_encode_full(d, &after), SHOAL_OK);
        CHECK(after.len == before.len && memcmp(after.p, before.p, after.len) == 0);
        /* A later range of the same change is checked the same way. */
        if (kase == 2)
            CHECK_EQ(shoal__doc_apply(d, &t.c, 1, 2), SHOAL_EPROTO);
        shoal__buf_free(&before);
        shoal__buf_free(&after);
        shoal__doc_free(d);
    }
}

/* A COUNT op of delta 0 is valid: it makes the field a counter reading 0
 * (with its first-op id and a zero entry for its author), like +5 then -5. */
static void
test_count_zero(void)
{
    tchange a, b;
    tc_init(&a, KA, 100, 0);
    count(&a, "n", 0);
    shoal__doc *d = shoal__doc_new();
    CHECK_EQ(shoal__doc_apply(d, &a.c, 0, a.c.nops), SHOAL_OK);
    CHECK(strcmp(render(d), "n=#0") == 0);
    shoal_kind k;
    CHECK(shoal__doc_field_kind(d, (const uint8_t *)"n", 1, &k) == SHOAL_OK &&
          k == SHOAL_K_COUNTER);
    check_roundtrip(d);
    shoal__doc_free(d);
    /* Concurrent with B's +3: 3 in either order. */
    tc_init(&b, KB, 101, 0);
    count(&b, "n", 3);
    tchange *cs[] = { &a, &b };
    CHECK_EQ(all_orders(cs, 2, NULL, "n=#3"), 2);
    /* A register started later than the counter shows instead. */
    tc_init(&b, KB, 101, 0);
    set(&b, "n", vint(7));
    CHECK_EQ(all_orders(cs, 2, NULL, "n=7"), 2);
}

static void
test_view(void)
{
    tchange t;
    tc_init(&t, KA, 100, 0);
    set(&t, "b", vstr("bee"));
    count(&t, "aa", 3);
    ins(&t, "a", head(), vint(1));
    ins(&t, "a", ref(&t, KA, 100, 2), vint(2));
    set(&t, "B", vint(-5));
    unset(&t, "gone");
    shoal_value bin = { .type = SHOAL_T_BYTES, .ptr = (const uint8_t *)"\0\1", .len = 2 };
    set(&t, "\xc3\xa9", bin);
    shoal__doc *d = shoal__doc_new();
    CHECK_EQ(shoal__doc_apply(d, &t.c, 0, t.c.nops), SHOAL_OK);

    shoal__vfield *v;
    size_t n;
    CHECK_EQ(shoal__doc_view(d, &v, &n), SHOAL_OK);
    REQUIRE(n == 5);
    const char *names[] = { "B", "a", "aa", "b", "\xc3\xa9" };
    for (size_t i = 0; i < n; i++)
        CHECK(v[i].name_len == strlen(names[i]) && memcmp(v[i].name, names[i], v[i].name_len) == 0);
    CHECK_EQ(v[0].kind, SHOAL_K_REGISTER);
    CHECK(v[0].value.type == SHOAL_T_INT && v[0].value.i == -5);
    CHECK_EQ(v[1].kind, SHOAL_K_LIST);
    CHECK(v[1].nitems == 2 && v[1].items[0].i == 1 && v[1].items[1].i == 2);
    CHECK_EQ(v[2].kind, SHOAL_K_COUNTER);
    CHECK_EQ(v[2].counter, 3);
    CHECK(v[3].value.type == SHOAL_T_STR && v[3].value.len == 3 &&
          memcmp(v[3].value.ptr, "bee", 3) == 0);
    CHECK(v[4].value.type == SHOAL_T_BYTES && v[4].value.len == 2 &&
          memcmp(v[4].value.ptr, "\0\1", 2) == 0);
    shoal__doc_view_free(v, n);
    shoal__doc_free(d);
}

/* A doc with every kind of state, several authors, tombstones and
 * special doubles. */
static int
rich_apply(shoal__doc *d)
{
    tchange a, b, c;
    tc_init(&a, KB, 100, 3);
    ins(&a, "list", head(), vint(1));
    ins(&a, "list", ref(&a, KB, 100, 0), vstr("two"));
    ins(&a, "list", ref(&a, KB, 100, 1), vint(3));
    count(&a, "n", 7);
    set(&a, "reg", vint(1));
    shoal_value nan = { .type = SHOAL_T_DOUBLE };
    uint64_t bits = 0x7ff8000000000123ull; /* a NaN with a payload */
    memcpy(&nan.d, &bits, 8);
    set(&a, "nan", nan);
    shoal_value nz = { .type = SHOAL_T_DOUBLE, .d = -0.0 };
    set(&a, "negzero", nz);
    shoal_value t = { .type = SHOAL_T_BOOL, .b = true };
    set(&a, "t", t);
    set(&a, "nil", (shoal_value){ .type = SHOAL_T_NIL });
    tc_init(&b, KA, 200, 3);
    del(&b, "list", ref(&b, KB, 100, 1));
    rep(&b, "list", ref(&b, KB, 100, 2), vint(33));
    count(&b, "n", -2);
    unset(&b, "reg");
    count(&b, "reg", 1);
    tc_init(&c, KC, 300, 3);
    ins(&c, "list", head(), vint(0));
    count(&c, "n", 1);
    set(&c, "reg", vstr("c"));
    int rc = shoal__doc_apply(d, &a.c, 0, a.c.nops);
    if (rc == SHOAL_OK)
        rc = shoal__doc_apply(d, &b.c, 0, b.c.nops);
    if (rc == SHOAL_OK)
        rc = shoal__doc_apply(d, &c.c, 0, c.c.nops);
    return rc;
}

static shoal__doc *
rich_doc(void)
{
    shoal__doc *d = shoal__doc_new();
    CHECK_EQ(rich_apply(d), SHOAL_OK);
    return d;
}

static void
test_full_roundtrip(void)
{
    shoal__doc *d = rich_doc();
    CHECK(strcmp(render(d), "list=[0,1,33] n=#6 nan=nan negzero=-0 nil=nil reg=#1 t=true") == 0);
    check_roundtrip(d);

    /* The decoded doc keeps working: the same further change gives the
     * same state as on the original. */
    shoal__buf a, b;
    shoal__buf_init(&a);
    shoal__buf_init(&b);
    CHECK_EQ(shoal__doc_encode_full(d, &a), SHOAL_OK);
    shoal__doc *d2 = NULL;
    CHECK_EQ(shoal__doc_decode_full(a.p, a.len, &d2), SHOAL_OK);
    REQUIRE(d2 != NULL);
    tchange e;
    tc_init(&e, KC, 400, 3);
    rep(&e, "list", ref(&e, KB, 100, 0), vint(100));
    ins(&e, "list", ref(&e, KB, 100, 1), vint(50)); /* after a tombstone */
    count(&e, "n", 10);
    CHECK_EQ(shoal__doc_apply(d, &e.c, 0, e.c.nops), SHOAL_OK);
    CHECK_EQ(shoal__doc_apply(d2, &e.c, 0, e.c.nops), SHOAL_OK);
    shoal__buf_free(&a);
    CHECK_EQ(shoal__doc_encode_full(d, &a), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_full(d2, &b), SHOAL_OK);
    CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    CHECK(strcmp(render(d2), "list=[0,100,50,33] n=#16 nan=nan negzero=-0 nil=nil reg=#1 t=true") ==
          0);

    /* The NaN payload and -0.0 survive bit for bit. */
    shoal__vfield *v;
    size_t n;
    CHECK_EQ(shoal__doc_view(d2, &v, &n), SHOAL_OK);
    REQUIRE(n == 7);
    uint64_t bits;
    memcpy(&bits, &v[2].value.d, 8);
    CHECK_EQ(bits, 0x7ff8000000000123ull);
    CHECK(v[3].value.d == 0.0 && signbit(v[3].value.d));
    shoal__doc_view_free(v, n);

    /* Empty, nonexistent and deleted docs round-trip too. */
    shoal__doc *e0 = shoal__doc_new();
    check_roundtrip(e0);
    tchange dd;
    tc_init(&dd, KA, 100, 4);
    deldoc(&dd);
    CHECK_EQ(shoal__doc_apply(e0, &dd.c, 0, 1), SHOAL_OK);
    check_roundtrip(e0);
    shoal__doc_free(e0);

    shoal__buf_free(&a);
    shoal__buf_free(&b);
    shoal__doc_free(d);
    shoal__doc_free(d2);
}

static void
test_full_exact_bytes(void)
{
    /* docs/state-format.md example: KA sets "x" = 1 at hlc 5 in epoch 0. */
    tchange t;
    tc_init(&t, KA, 5, 0);
    set(&t, "x", vint(1));
    shoal__doc *d = shoal__doc_new();
    CHECK_EQ(shoal__doc_apply(d, &t.c, 0, 1), SHOAL_OK);
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__doc_encode_full(d, &b), SHOAL_OK);
    uint8_t want[64] = { 0x96, 0x01, 0x00, 0xc2, 0xc3, 0x91, 0xc4, 0x20 };
    memcpy(want + 8, KA, 32);
    const uint8_t tail[] = { 0x91, 0x94, 0xa1, 'x',  0x97, 0x05, 0x00,
                             0x00, 0x05, 0x00, 0x00, 0x01, 0xc0, 0xc0 };
    memcpy(want + 40, tail, sizeof tail);
    CHECK_EQ(b.len, 40 + sizeof tail);
    CHECK(b.len == 40 + sizeof tail && memcmp(b.p, want, b.len) == 0);
    shoal__buf_free(&b);
    /* Nonexistent doc. */
    shoal__doc *e = shoal__doc_new();
    CHECK_EQ(shoal__doc_encode_full(e, &b), SHOAL_OK);
    const uint8_t none[] = { 0x96, 0x01, 0x00, 0xc2, 0xc2, 0x90, 0x90 };
    CHECK(b.len == sizeof none && memcmp(b.p, none, b.len) == 0);
    shoal__buf_free(&b);
    shoal__doc_free(e);
    shoal__doc_free(d);
}

static void
test_decode_garbage(void)
{
    shoal__doc *d = rich_doc();
    shoal__buf a;
    shoal__buf_init(&a);
    CHECK_EQ(shoal__doc_encode_full(d, &a), SHOAL_OK);
    shoal__doc *out = (shoal__doc *)&out;

    /* Every proper prefix is corrupt. */
    int bad = 0;
    for (size_t n = 0; n < a.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
        memcpy(copy, a.p, n);
        if (shoal__doc_decode_full(copy, n, &out) != SHOAL_ECORRUPT || out != NULL)
            bad++;
        free(copy);
    }
    CHECK_EQ(bad, 0);
    /* Trailing bytes. */
    uint8_t *longer = malloc(a.len + 1);
    memcpy(longer, a.p, a.len);
    longer[a.len] = 0xc0;
    CHECK_EQ(shoal__doc_decode_full(longer, a.len + 1, &out), SHOAL_ECORRUPT);
    free(longer);

    /* Single-byte changes: corrupt, or (rarely) another canonical state
     * that re-encodes to exactly the mutated bytes. */
    check_seed(1234);
    uint8_t *m = malloc(a.len);
    for (int it = 0; it < 3000; it++) {
        memcpy(m, a.p, a.len);
        size_t k = 1 + check_rand_below(3);
        for (size_t j = 0; j < k; j++)
            m[check_rand_below(a.len)] = (uint8_t)check_rand();
        int rc = shoal__doc_decode_full(m, a.len, &out);
        if (rc == SHOAL_OK) {
            shoal__buf again;
            shoal__buf_init(&again);
            CHECK_EQ(shoal__doc_encode_full(out, &again), SHOAL_OK);
            CHECK(again.len == a.len && memcmp(again.p, m, a.len) == 0);
            shoal__buf_free(&again);
            shoal__doc_free(out);
        } else {
            CHECK_EQ(rc, SHOAL_ECORRUPT);
        }
    }
    free(m);

    /* Random garbage and huge declared counts. */
    uint8_t g[64];
    for (int it = 0; it < 2000; it++) {
        size_t n = check_rand_below(sizeof g);
        for (size_t j = 0; j < n; j++)
            g[j] = (uint8_t)check_rand();
        if (n > 0 && it % 2)
            g[0] = 0x96;
        int rc = shoal__doc_decode_full(g, n, &out);
        if (rc == SHOAL_OK)
            shoal__doc_free(out);
        else
            CHECK_EQ(rc, SHOAL_ECORRUPT);
    }
    const uint8_t huge[] = { 0x96, 0x01, 0x00, 0xc2, 0xc3, 0xdd, 0xff, 0xff, 0xff, 0xff };
    CHECK_EQ(shoal__doc_decode_full(huge, sizeof huge, &out), SHOAL_ECORRUPT);
    const uint8_t huge2[] = { 0x96, 0x01, 0x00, 0xc2, 0xc3, 0x90, 0xdd, 0x7f, 0xff, 0xff, 0xff };
    CHECK_EQ(shoal__doc_decode_full(huge2, sizeof huge2, &out), SHOAL_ECORRUPT);
    /* Fields in a deleted doc; wrong version. */
    const uint8_t delf[] = { 0x96, 0x01, 0x00, 0xc3, 0xc3, 0x90, 0x91,
                             0x94, 0xa1, 'x',  0xc0, 0xc0, 0xc0 };
    CHECK_EQ(shoal__doc_decode_full(delf, sizeof delf, &out), SHOAL_ECORRUPT);
    const uint8_t ver[] = { 0x96, 0x02, 0x00, 0xc2, 0xc2, 0x90, 0x90 };
    CHECK_EQ(shoal__doc_decode_full(ver, sizeof ver, &out), SHOAL_ECORRUPT);
    const uint8_t ok0[] = { 0x96, 0x01, 0x00, 0xc2, 0xc2, 0x90, 0x90 };
    CHECK_EQ(shoal__doc_decode_full(ok0, sizeof ok0, &out), SHOAL_OK);
    shoal__doc_free(out);
    /* Unsorted author table. */
    uint8_t two[80] = { 0x96, 0x01, 0x00, 0xc2, 0xc3, 0x92, 0xc4, 0x20 };
    memcpy(two + 8, KB, 32);
    two[40] = 0xc4;
    two[41] = 0x20;
    memcpy(two + 42, KA, 32);
    two[74] = 0x90;
    CHECK_EQ(shoal__doc_decode_full(two, 75, &out), SHOAL_ECORRUPT);
    /* Sorted, but unused authors: not canonical. */
    memcpy(two + 8, KA, 32);
    memcpy(two + 42, KB, 32);
    CHECK_EQ(shoal__doc_decode_full(two, 75, &out), SHOAL_ECORRUPT);

    shoal__buf_free(&a);
    shoal__doc_free(d);
}

static void
test_visible_bytes(void)
{
    shoal__buf b;
    shoal__buf_init(&b);
    shoal__doc *d = shoal__doc_new();
    CHECK_EQ(shoal__doc_encode_visible(d, &b), SHOAL_OK);
    CHECK(b.len == 1 && b.p[0] == 0xc0); /* nonexistent: nil */
    shoal__buf_free(&b);

    tchange t;
    tc_init(&t, KA, 100, 0);
    CHECK_EQ(shoal__doc_apply(d, &t.c, 0, 0), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_visible(d, &b), SHOAL_OK);
    CHECK(b.len == 1 && b.p[0] == 0x80); /* live, empty: {} */
    shoal__buf_free(&b);

    tc_init(&t, KA, 100, 0);
    ins(&t, "l", head(), vstr("x"));
    count(&t, "c", -2);
    set(&t, "a", vint(1));
    unset(&t, "z");
    shoal_value dbl = { .type = SHOAL_T_DOUBLE, .d = 1.5 };
    set(&t, "d", dbl);
    CHECK_EQ(shoal__doc_apply(d, &t.c, 0, t.c.nops), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_visible(d, &b), SHOAL_OK);
    const uint8_t want[] = { 0x84, 0xa1, 'a', 0x01, 0xa1, 'c', 0xfe, 0xa1, 'd',  0xcb, 0x3f, 0xf8,
                             0,    0,    0,   0,    0,    0,   0xa1, 'l',  0x91, 0xa1, 'x' };
    CHECK(b.len == sizeof want && memcmp(b.p, want, b.len) == 0);
    shoal__buf_free(&b);

    tc_init(&t, KB, 50, 0);
    deldoc(&t);
    CHECK_EQ(shoal__doc_apply(d, &t.c, 0, 1), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_visible(d, &b), SHOAL_OK);
    CHECK(b.len == 1 && b.p[0] == 0xc0); /* deleted: nil */
    shoal__buf_free(&b);
    shoal__doc_free(d);
}

/* A long single-author list through apply, then snapshot encode/decode:
 * catches quadratic behaviour (the test has a timeout) and checks size. */
static void
test_big_list(void)
{
    enum {
        N = 20000
    };
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, KA, 32);
    c.seq = 1;
    c.hlc = 1000;
    c.ops = calloc(N, sizeof *c.ops);
    REQUIRE(c.ops != NULL);
    for (uint32_t i = 0; i < N; i++) {
        shoal__op *op = &c.ops[i];
        op->kind = SHOAL__OP_INS;
        op->field = (const uint8_t *)"text";
        op->field_len = 4;
        op->value = vint(i);
        if (i == 0)
            op->ref.head = true;
        else
            op->ref = (shoal__ref){ false, 1000, 0, i - 1 };
    }
    c.nops = N;
    shoal__doc *d = shoal__doc_new();
    for (size_t i = 0; i < N; i += 100)
        CHECK_EQ(shoal__doc_apply(d, &c, i, i + 100), SHOAL_OK);
    const shoal__list *l = shoal__doc_list(d, (const uint8_t *)"text", 4);
    REQUIRE(l != NULL);
    CHECK_EQ(shoal__list_len(l), N);
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__doc_encode_full(d, &b), SHOAL_OK);
    shoal__doc *d2 = NULL;
    CHECK_EQ(shoal__doc_decode_full(b.p, b.len, &d2), SHOAL_OK);
    REQUIRE(d2 != NULL);
    l = shoal__doc_list(d2, (const uint8_t *)"text", 4);
    REQUIRE(l != NULL);
    shoal_value v;
    CHECK_EQ(shoal__list_get(l, N - 1, &v), SHOAL_OK);
    CHECK(v.type == SHOAL_T_INT && v.i == N - 1);
    shoal__buf_free(&b);
    shoal__doc_free(d);
    shoal__doc_free(d2);
    free(c.ops);
}

/* Fail the nth allocation for n = 1, 2, ... until a whole pass succeeds:
 * every call returns SHOAL_OK or SHOAL_ENOMEM, nothing leaks (LeakSanitizer
 * under the ASan build), and the passing run gives the reference bytes. */
static void
test_oom(void)
{
    shoal__doc *ref = rich_doc();
    shoal__buf want;
    shoal__buf_init(&want);
    CHECK_EQ(shoal__doc_encode_full(ref, &want), SHOAL_OK);
    shoal__doc_free(ref);
    bool done = false;
    for (uint64_t n = 1; n < 10000 && !done; n++) {
        shoal__buf full, vis;
        shoal__buf_init(&full);
        shoal__buf_init(&vis);
        shoal__doc *d2 = NULL;
        shoal__vfield *v = NULL;
        size_t nv = 0;
        int rc = SHOAL_ENOMEM;
        shoal__alloc_fail_after(n);
        shoal__doc *d = shoal__doc_new();
        if (d)
            rc = rich_apply(d);
        if (rc == SHOAL_OK)
            rc = shoal__doc_encode_full(d, &full);
        if (rc == SHOAL_OK)
            rc = shoal__doc_decode_full(full.p, full.len, &d2);
        if (rc == SHOAL_OK)
            rc = shoal__doc_view(d2, &v, &nv);
        if (rc == SHOAL_OK)
            rc = shoal__doc_encode_visible(d2, &vis);
        shoal__alloc_fail_after(0);
        if (rc == SHOAL_OK) {
            done = true;
            CHECK(full.len == want.len && memcmp(full.p, want.p, want.len) == 0);
            CHECK_EQ(nv, 7);
        } else {
            CHECK_EQ(rc, SHOAL_ENOMEM);
        }
        shoal__doc_view_free(v, nv);
        shoal__doc_free(d);
        shoal__doc_free(d2);
        shoal__buf_free(&full);
        shoal__buf_free(&vis);
    }
    CHECK(done);
    shoal__buf_free(&want);
}

/* Run items (docs/format.md): a change is encoded with TEXT/INS/DEL runs
 * and decoded back to single ops; applying the decoded change must give a
 * state byte-identical (encode_full) to applying the ops as built.  The
 * changes are editor-like: typing at a cursor, backspace, forward delete,
 * cursor jumps, by two authors referring to each other's elements. */
static void
test_runs_apply_equal(void)
{
    enum {
        NCH = 40,
        MAXOPS = 400
    };
    static const char *cps[] = { "a", "b", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x90\x9f" };
    shoal__doc *x = shoal__doc_new(), *y = shoal__doc_new();
    shoal__op *ops = calloc(MAXOPS, sizeof *ops);
    REQUIRE(x && y && ops);
    uint64_t hlc = (uint64_t)1000 << 16;
    size_t total_ops = 0, total_bytes = 0;
    for (int ci = 0; ci < NCH; ci++) {
        const uint8_t *me = ci % 3 ? KA : KB;
        const uint8_t *other = me == KA ? KB : KA;
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, me, 32);
        c.seq = (uint64_t)ci + 1;
        hlc += 1 + check_rand_below(3);
        c.hlc = hlc;
        c.coll = (const uint8_t *)"c";
        c.coll_len = 1;
        c.doc = (const uint8_t *)"d";
        c.doc_len = 1;
        c.authors = other;
        c.nauthors = 1;
        c.ops = ops;
        const shoal__list *l = shoal__doc_list(y, (const uint8_t *)"t", 1);
        size_t cursor = check_rand_below((l ? shoal__list_len(l) : 0) + 1);
        size_t want = 1 + check_rand_below(MAXOPS - 1);
        while (c.nops < want) {
            l = shoal__doc_list(y, (const uint8_t *)"t", 1);
            size_t len = l ? shoal__list_len(l) : 0;
            unsigned r = (unsigned)check_rand_below(20);
            shoal__op *op = &ops[c.nops];
            memset(op, 0, sizeof *op);
            op->field = (const uint8_t *)"t";
            op->field_len = 1;
            op->value.type = SHOAL_T_NIL;
            size_t at;
            if (r < 13) {
                op->kind = SHOAL__OP_INS;
                op->value = check_rand_below(12) ? vstr(cps[check_rand_below(5)])
                                                 : vint((int64_t)check_rand_below(100));
                at = cursor++;
                if (at == 0) {
                    op->ref.head = true;
                    goto add;
                }
                at--;
            } else if (r < 17 && cursor > 0) {
                op->kind = SHOAL__OP_DEL; /* backspace */
                at = --cursor;
            } else if (r < 19 && cursor < len) {
                op->kind = SHOAL__OP_DEL; /* forward delete */
                at = cursor;
            } else {
                cursor = check_rand_below(len + 1);
                continue;
            }
            {
                shoal__eid e;
                REQUIRE(shoal__list_id_at(l, at, &e) == SHOAL_OK);
                const uint8_t *key = shoal__doc_author_key(y, e.author);
                op->ref.hlc = e.hlc;
                op->ref.author = memcmp(key, me, 32) == 0 ? 0 : 1;
                op->ref.index = e.index;
            }
        add:
            c.nops++;
            REQUIRE(shoal__doc_apply(y, &c, c.nops - 1, c.nops) == SHOAL_OK);
        }
        shoal__buf body;
        shoal__buf_init(&body);
        REQUIRE(shoal__change_encode(&c, &body) == SHOAL_OK);
        for (size_t i = 0; i < c.nops; i++) /* smallest single items */
            total_ops += ops[i].kind == SHOAL__OP_DEL
                             ? 4
                             : 4 + (ops[i].value.type == SHOAL_T_STR ? 1 + ops[i].value.len : 1);
        total_bytes += body.len;
        shoal__change d;
        memset(&d, 0, sizeof d);
        memcpy(d.author, me, 32);
        REQUIRE(shoal__change_decode(body.p, body.len, &d) == SHOAL_OK);
        CHECK_EQ(d.nops, c.nops);
        CHECK_EQ(shoal__doc_apply(x, &d, 0, d.nops), SHOAL_OK);
        shoal__change_clear(&d);
        shoal__buf_free(&body);
        shoal__buf a, b;
        shoal__buf_init(&a);
        shoal__buf_init(&b);
        CHECK_EQ(shoal__doc_encode_full(x, &a), SHOAL_OK);
        CHECK_EQ(shoal__doc_encode_full(y, &b), SHOAL_OK);
        CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
        shoal__buf_free(&a);
        shoal__buf_free(&b);
    }
    /* Runs make the bodies smaller than the ops as single items could be
     * (total_ops sums the smallest single-item size of each op). */
    CHECK(total_bytes < total_ops);
    fprintf(stderr, "  body bytes %zu, as single items at least %zu\n", total_bytes, total_ops);
    free(ops);
    shoal__doc_free(x);
    shoal__doc_free(y);
}

int
main(void)
{
    keys_init();
    RUN(test_lww_register);
    RUN(test_unset);
    RUN(test_delete_wins);
    RUN(test_recreate);
    RUN(test_old_epoch_discarded);
    RUN(test_counter_dies_with_epoch);
    RUN(test_counters_keep_all);
    RUN(test_list_order);
    RUN(test_list_replace_lww);
    RUN(test_list_delete_wins);
    RUN(test_kind_conflicts);
    RUN(test_invalid_ops);
    RUN(test_refs_causal_past);
    RUN(test_refusal_any_epoch);
    RUN(test_count_zero);
    RUN(test_view);
    RUN(test_full_roundtrip);
    RUN(test_full_exact_bytes);
    RUN(test_decode_garbage);
    RUN(test_visible_bytes);
    RUN(test_void);
    RUN(test_redacted);
    RUN(test_big_list);
    RUN(test_runs_apply_equal);
    RUN(test_oom);
    return check_summary();
}
