/*
 * test/core/test_query.c - queries through the public API on real LMDB
 * files: find / count / aggregate against a model of the documents kept
 * by the test itself, the same queries with and without indexes (and
 * after random changes, drops and re-adds), sorting, projection, bad
 * input, views rebuilt for an old directory, and live queries fed by
 * local commits, imports and another process.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core.h"
#include "replica.h"
#include "shoal.h"

/* ------------------------------------------------------------ the model */

/* Fields: a, b, s registers of any type; n a counter; tags a list. */
enum {
    NDOCS = 40,
    NREG = 3,
    MAXL = 6
};
static const char *const reg_names[NREG] = { "a", "b", "s" };

typedef struct mval {
    int type; /* SHOAL_T_*; -1 absent */
    bool b;
    int64_t i;
    double d;
    char s[8];
} mval;

typedef struct mdoc {
    bool live;
    mval reg[NREG];
    bool has_n;
    int64_t n;
    bool has_tags;
    mval tags[MAXL];
    size_t ntags;
} mdoc;

static mdoc model[NDOCS];

static const char *const strs[] = { "", "a", "ab", "b", "jeans", "z" };
static const double dbls[] = { 0.0, -0.0, 0.5, -1.5, 2.0, 8.0, 1e300, -INFINITY, INFINITY };

static mval
rand_val(void)
{
    mval v;
    memset(&v, 0, sizeof v);
    switch (check_rand_below(6)) {
    case 0: v.type = SHOAL_T_NIL; break;
    case 1:
        v.type = SHOAL_T_BOOL;
        v.b = check_rand_below(2);
        break;
    case 2:
    case 3:
        v.type = SHOAL_T_INT;
        v.i = (int64_t)check_rand_below(10) - 3;
        break;
    case 4:
        v.type = SHOAL_T_DOUBLE;
        v.d = dbls[check_rand_below(sizeof dbls / sizeof dbls[0])];
        break;
    default:
        v.type = SHOAL_T_STR;
        snprintf(v.s, sizeof v.s, "%s", strs[check_rand_below(sizeof strs / sizeof strs[0])]);
        break;
    }
    return v;
}

static shoal_value
to_value(const mval *m)
{
    shoal_value v = { .type = (shoal_type)m->type, .b = m->b, .i = m->i, .d = m->d };
    if (m->type == SHOAL_T_STR) {
        v.ptr = (const uint8_t *)m->s;
        v.len = strlen(m->s);
    }
    return v;
}

/* The language's ==: numbers numerically, NaN never, same type otherwise. */
static bool
m_eq(const mval *x, const mval *y)
{
    bool xn = x->type == SHOAL_T_INT || x->type == SHOAL_T_DOUBLE;
    bool yn = y->type == SHOAL_T_INT || y->type == SHOAL_T_DOUBLE;
    if (xn && yn) {
        if (x->type == SHOAL_T_INT && y->type == SHOAL_T_INT)
            return x->i == y->i;
        double a = x->type == SHOAL_T_INT ? (double)x->i : x->d;
        double b = y->type == SHOAL_T_INT ? (double)y->i : y->d;
        return a == b; /* small ints only: exact as doubles */
    }
    if (x->type != y->type)
        return false;
    switch (x->type) {
    case SHOAL_T_NIL: return true;
    case SHOAL_T_BOOL: return x->b == y->b;
    case SHOAL_T_STR: return strcmp(x->s, y->s) == 0;
    }
    return false;
}

static bool
is_nan(const mval *x)
{
    return x->type == SHOAL_T_DOUBLE && isnan(x->d);
}

/* Ordering: -1/0/1, or 2 when not comparable (false for every < > op). */
static int
m_order(const mval *x, const mval *y)
{
    bool xn = x->type == SHOAL_T_INT || x->type == SHOAL_T_DOUBLE;
    bool yn = y->type == SHOAL_T_INT || y->type == SHOAL_T_DOUBLE;
    if (xn && yn) {
        double a = x->type == SHOAL_T_INT ? (double)x->i : x->d;
        double b = y->type == SHOAL_T_INT ? (double)y->i : y->d;
        return a < b ? -1 : a > b;
    }
    if (x->type == SHOAL_T_STR && y->type == SHOAL_T_STR) {
        int c = strcmp(x->s, y->s);
        return c < 0 ? -1 : c > 0;
    }
    return 2;
}

/* A field of a model doc as the language sees it. */
typedef struct mfield {
    int kind; /* 0 absent, 1 scalar, 2 list */
    mval v;
    const mval *items;
    size_t n;
} mfield;

static mfield
m_field(const mdoc *d, const char *name)
{
    mfield f = { 0 };
    for (int i = 0; i < NREG; i++)
        if (strcmp(name, reg_names[i]) == 0 && d->reg[i].type >= 0) {
            f.kind = 1;
            f.v = d->reg[i];
        }
    if (strcmp(name, "n") == 0 && d->has_n) {
        f.kind = 1;
        f.v.type = SHOAL_T_INT;
        f.v.i = d->n;
    }
    if (strcmp(name, "tags") == 0 && d->has_tags) {
        f.kind = 2;
        f.items = d->tags;
        f.n = d->ntags;
    }
    return f;
}

/* ------------------------------------------------------------ predicates */

enum {
    P_CMP,
    P_IN,
    P_CONTAINS,
    P_EXISTS,
    P_AND,
    P_OR,
    P_NOT,
    P_TRUE,
    P_FALSE
};
enum {
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE
};
static const char *const op_text[] = { "==", "!=", "<", "<=", ">", ">=" };
static const char *const field_pool[] = { "a", "b", "s", "n", "tags", "zz" };

typedef struct pred {
    int kind, op;
    const char *field;
    mval lit[3];
    size_t nlit;
    bool param; /* lit[0] is passed as parameter :p<id> */
    int pid;
    struct pred *kid[2];
} pred;

/* A literal: infinities cannot be written in text (1e400 is out of
 * range), so they become the largest finite stand-ins there. */
static mval
lit_val(void)
{
    mval v = rand_val();
    if (v.type == SHOAL_T_DOUBLE && isinf(v.d))
        v.d = v.d > 0 ? 1e300 : -1e300;
    return v;
}

static int param_count;
static mval param_vals[64];

static pred *
gen_pred(int depth)
{
    pred *p = calloc(1, sizeof *p);
    int k = (int)check_rand_below(depth >= 3 ? 5 : 9);
    static const int leaf[] = { P_CMP, P_CMP, P_IN, P_CONTAINS, P_EXISTS };
    static const int any[] = {
        P_CMP, P_CMP, P_IN, P_CONTAINS, P_EXISTS, P_AND, P_OR, P_NOT, P_TRUE
    };
    p->kind = depth >= 3 ? leaf[k] : any[k];
    p->field = field_pool[check_rand_below(sizeof field_pool / sizeof field_pool[0])];
    switch (p->kind) {
    case P_CMP:
        p->op = (int)check_rand_below(6);
        p->lit[0] = lit_val();
        p->nlit = 1;
        if (param_count < 64 && check_rand_below(4) == 0) {
            p->param = true;
            p->lit[0] = rand_val(); /* a parameter may be infinite */
            p->pid = param_count;
            if (check_rand_below(4) == 0) { /* a NaN only a parameter can carry */
                p->lit[0].type = SHOAL_T_DOUBLE;
                p->lit[0].d = NAN;
            }
            param_vals[param_count++] = p->lit[0];
        }
        break;
    case P_IN:
        p->nlit = 1 + check_rand_below(3);
        for (size_t i = 0; i < p->nlit; i++)
            p->lit[i] = lit_val();
        break;
    case P_CONTAINS:
        p->lit[0] = lit_val();
        p->nlit = 1;
        break;
    case P_AND:
    case P_OR:
        p->kid[0] = gen_pred(depth + 1);
        p->kid[1] = gen_pred(depth + 1);
        break;
    case P_NOT: p->kid[0] = gen_pred(depth + 1); break;
    }
    return p;
}

static void
free_pred(pred *p)
{
    if (!p)
        return;
    free_pred(p->kid[0]);
    free_pred(p->kid[1]);
    free(p);
}

static void
lit_text(const mval *v, char *out, size_t n)
{
    switch (v->type) {
    case SHOAL_T_NIL: snprintf(out, n, "%s", check_rand_below(2) ? "null" : "NULL"); break;
    case SHOAL_T_BOOL: snprintf(out, n, "%s", v->b ? "true" : "False"); break;
    case SHOAL_T_INT: snprintf(out, n, "%lld", (long long)v->i); break;
    case SHOAL_T_DOUBLE:
        if (v->d == 0 && signbit(v->d))
            snprintf(out, n, "-0.0");
        else
            snprintf(out, n, "%.17g%s", v->d, floor(v->d) == v->d && fabs(v->d) < 1e15 ? ".0" : "");
        break;
    default: snprintf(out, n, "\"%s\"", v->s); break;
    }
}

static void
render(const pred *p, char *out, size_t n)
{
    char a[2048], b[2048], l[64];
    size_t k = 0;
    switch (p->kind) {
    case P_CMP:
        if (p->param)
            snprintf(l, sizeof l, ":p%d", p->pid);
        else
            lit_text(&p->lit[0], l, sizeof l);
        snprintf(out, n, "%s %s %s", p->field, op_text[p->op], l);
        break;
    case P_IN:
        k = (size_t)snprintf(out, n, "%s %s (", p->field, check_rand_below(2) ? "IN" : "in");
        for (size_t i = 0; i < p->nlit; i++) {
            lit_text(&p->lit[i], l, sizeof l);
            k += (size_t)snprintf(out + k, n - k, "%s%s", i ? ", " : "", l);
        }
        snprintf(out + k, n - k, ")");
        break;
    case P_CONTAINS:
        lit_text(&p->lit[0], l, sizeof l);
        snprintf(out, n, "%s CONTAINS %s", p->field, l);
        break;
    case P_EXISTS: snprintf(out, n, "%s exists", p->field); break;
    case P_AND:
    case P_OR:
        render(p->kid[0], a, sizeof a);
        render(p->kid[1], b, sizeof b);
        snprintf(out, n, "(%s) %s (%s)", a, p->kind == P_AND ? "AND" : "or", b);
        break;
    case P_NOT:
        render(p->kid[0], a, sizeof a);
        snprintf(out, n, "NOT (%s)", a);
        break;
    case P_TRUE: snprintf(out, n, "TRUE"); break;
    }
}

static bool
m_cmp(const mfield *f, int op, const mval *lit)
{
    if (f->kind == 2)
        return op == OP_NE && !is_nan(lit);
    mval v = f->v;
    if (f->kind == 0)
        v.type = SHOAL_T_NIL;
    if (is_nan(&v) || is_nan(lit))
        return false;
    switch (op) {
    case OP_EQ: return m_eq(&v, lit);
    case OP_NE: return !m_eq(&v, lit);
    }
    if (v.type == SHOAL_T_BOOL || lit->type == SHOAL_T_BOOL)
        return false;
    int o = m_order(&v, lit);
    if (o == 2)
        return false;
    switch (op) {
    case OP_LT: return o < 0;
    case OP_LE: return o <= 0;
    case OP_GT: return o > 0;
    default: return o >= 0;
    }
}

static bool
m_eval(const pred *p, const mdoc *d)
{
    mfield f = m_field(d, p->field);
    switch (p->kind) {
    case P_CMP: return m_cmp(&f, p->op, &p->lit[0]);
    case P_IN:
        for (size_t i = 0; i < p->nlit; i++)
            if (m_cmp(&f, OP_EQ, &p->lit[i]))
                return true;
        return false;
    case P_CONTAINS:
        if (f.kind != 2 || is_nan(&p->lit[0]))
            return false;
        for (size_t i = 0; i < f.n; i++)
            if (!is_nan(&f.items[i]) && m_eq(&f.items[i], &p->lit[0]))
                return true;
        return false;
    case P_EXISTS: return f.kind != 0;
    case P_AND: return m_eval(p->kid[0], d) && m_eval(p->kid[1], d);
    case P_OR: return m_eval(p->kid[0], d) || m_eval(p->kid[1], d);
    case P_NOT: return !m_eval(p->kid[0], d);
    case P_TRUE: return true;
    }
    return false;
}

/* ---------------------------------------------------------- the replica */

static void
doc_id(int i, char *out)
{
    snprintf(out, 16, "d%02d", i);
}

/* One random change to one document, in the replica and the model. */
static void
random_change(shoal_replica *r, const char *coll)
{
    int i = (int)check_rand_below(NDOCS);
    char id[16];
    doc_id(i, id);
    mdoc *d = &model[i];
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    int what = (int)check_rand_below(d->live ? 10 : 3);
    if (!d->live) {
        memset(d, 0, sizeof *d);
        for (int k = 0; k < NREG; k++)
            d->reg[k].type = -1;
        d->live = true;
    }
    if (what == 9) {
        CHECK_EQ(shoal_txn_delete(t, coll, id), SHOAL_OK);
        d->live = false;
    } else if (what <= 3) {
        int k = (int)check_rand_below(NREG);
        mval v = rand_val();
        shoal_value sv = to_value(&v);
        CHECK_EQ(shoal_txn_set(t, coll, id, reg_names[k], &sv), SHOAL_OK);
        d->reg[k] = v;
    } else if (what == 4) {
        int k = (int)check_rand_below(NREG);
        CHECK_EQ(shoal_txn_unset(t, coll, id, reg_names[k]), SHOAL_OK);
        d->reg[k].type = -1;
        if (!d->live)
            d->live = true;
    } else if (what <= 6) {
        int64_t delta = (int64_t)check_rand_below(7) - 3;
        CHECK_EQ(shoal_txn_counter_add(t, coll, id, "n", delta), SHOAL_OK);
        d->n = d->has_n ? d->n + delta : delta;
        d->has_n = true;
    } else if (what == 7 || d->ntags == 0) {
        if (d->ntags < MAXL) {
            size_t at = check_rand_below(d->ntags + 1);
            mval v = rand_val();
            shoal_value sv = to_value(&v);
            CHECK_EQ(shoal_txn_list_insert(t, coll, id, "tags", at, &sv), SHOAL_OK);
            memmove(d->tags + at + 1, d->tags + at, (d->ntags - at) * sizeof *d->tags);
            d->tags[at] = v;
            d->ntags++;
            d->has_tags = true;
        } else {
            CHECK_EQ(shoal_txn_list_remove(t, coll, id, "tags", 0), SHOAL_OK);
            memmove(d->tags, d->tags + 1, (d->ntags - 1) * sizeof *d->tags);
            d->ntags--;
        }
    } else {
        size_t at = check_rand_below(d->ntags);
        CHECK_EQ(shoal_txn_list_remove(t, coll, id, "tags", at), SHOAL_OK);
        memmove(d->tags + at, d->tags + at + 1, (d->ntags - at - 1) * sizeof *d->tags);
        d->ntags--;
    }
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
}

/* A document that a change to "unset" created has no visible field, yet is
 * live: the model agrees (live, fields absent). */

static shoal_query *
compile(shoal_replica *r, const char *coll, const pred *p, char *text, size_t n)
{
    render(p, text, n);
    shoal_query *q = NULL;
    shoal_err e = shoal_query_new(r, coll, text, &q);
    if (e != SHOAL_OK) {
        fprintf(stderr, "query %s: %s\n", text, shoal_replica_errmsg(r));
        return NULL;
    }
    for (int i = 0; i < param_count; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        shoal_value v = to_value(&param_vals[i]);
        shoal_err b = shoal_query_bind(q, name, &v);
        if (b != SHOAL_OK && b != SHOAL_ENOTFOUND) {
            shoal_query_free(q);
            return NULL;
        }
    }
    return q;
}

/* The ids find returns, joined with ',' (rows in order). */
static void
find_ids(shoal_replica *r, shoal_query *q, char *out, size_t n)
{
    shoal_rows *rows = NULL;
    out[0] = 0;
    if (shoal_find(r, q, &rows) != SHOAL_OK) {
        snprintf(out, n, "ERROR %s", shoal_replica_errmsg(r));
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < shoal_rows_count(rows); i++)
        k += (size_t)snprintf(out + k, n - k, "%s,", shoal_rows_id(rows, i));
    shoal_rows_free(rows);
}

static void
model_ids(const pred *p, char *out, size_t n)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < NDOCS; i++)
        if (model[i].live && m_eval(p, &model[i])) {
            char id[16];
            doc_id(i, id);
            k += (size_t)snprintf(out + k, n - k, "%s,", id);
        }
}

static void
model_reset(void)
{
    memset(model, 0, sizeof model);
}

/* Random queries: the model, find without indexes and find with an index
 * on every field agree; so does count. */
static void
test_model_and_indexes(void)
{
    uint64_t seed = check_seed(20261207);
    check_rand_reseed(seed);
    model_reset();
    char *dir = check_tmpdir("query-model");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    long rounds = check_env_long("SHOAL_QUERY_ROUNDS", 12);
    char text[8192], want[2048], got[2048], got2[2048];
    int mismatches = 0;
    for (long round = 0; round < rounds; round++) {
        for (int c = 0; c < 60; c++)
            random_change(r, "c");
        bool indexed = round % 2 == 1;
        for (size_t f = 0; f < sizeof field_pool / sizeof field_pool[0]; f++) {
            if (indexed)
                CHECK_EQ(shoal_index_add(r, "c", field_pool[f]), SHOAL_OK);
            else if (round > 0)
                CHECK_EQ(shoal_index_drop(r, "c", field_pool[f]), SHOAL_OK);
        }
        for (int qn = 0; qn < 80; qn++) {
            param_count = 0;
            pred *p = gen_pred(0);
            shoal_query *q = compile(r, "c", p, text, sizeof text);
            CHECK(q != NULL);
            if (q) {
                model_ids(p, want, sizeof want);
                find_ids(r, q, got, sizeof got);
                if (strcmp(want, got) != 0 && mismatches++ < 5)
                    fprintf(stderr, "seed %llu round %ld: %s\n  model: %s\n  find:  %s\n",
                            (unsigned long long)seed, round, text, want, got);
                CHECK(strcmp(want, got) == 0);
                uint64_t cnt = 0;
                CHECK_EQ(shoal_count(r, q, &cnt), SHOAL_OK);
                size_t commas = 0;
                for (const char *s = want; *s; s++)
                    commas += *s == ',';
                CHECK_EQ(cnt, commas);
                /* The other way round: drop / add one index, same rows. */
                const char *fld = p->field;
                if (indexed) {
                    CHECK_EQ(shoal_index_drop(r, "c", fld), SHOAL_OK);
                    find_ids(r, q, got2, sizeof got2);
                    CHECK_EQ(shoal_index_add(r, "c", fld), SHOAL_OK);
                    CHECK(strcmp(got, got2) == 0);
                }
                shoal_query_free(q);
            }
            free_pred(p);
        }
    }
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------ the seed example */

typedef struct product {
    const char *id, *category;
    int64_t size;
    double price;
    int64_t store;
    int64_t stock;
} product;

static const product products[] = {
    { "p1", "jeans", 8, 39.5, 12, 3 }, { "p2", "jeans", 8, 45.0, 12, 1 },
    { "p3", "jeans", 10, 20.0, 7, 0 }, { "p4", "shirts", 8, 15.0, 12, 9 },
    { "p5", "jeans", 8, 12.25, 7, 4 }, { "p6", "shoes", 42, 80.0, 3, 2 },
    { "p7", "jeans", 8, 40.0, 3, 5 },
};

static void
load_products(shoal_replica *r)
{
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    for (size_t i = 0; i < sizeof products / sizeof products[0]; i++) {
        const product *p = &products[i];
        shoal_value v = { .type = SHOAL_T_STR,
                          .ptr = (const uint8_t *)p->category,
                          .len = strlen(p->category) };
        CHECK_EQ(shoal_txn_set(t, "products", p->id, "category", &v), SHOAL_OK);
        v = (shoal_value){ .type = SHOAL_T_INT, .i = p->size };
        CHECK_EQ(shoal_txn_set(t, "products", p->id, "size", &v), SHOAL_OK);
        v = (shoal_value){ .type = SHOAL_T_DOUBLE, .d = p->price };
        CHECK_EQ(shoal_txn_set(t, "products", p->id, "price", &v), SHOAL_OK);
        v = (shoal_value){ .type = SHOAL_T_INT, .i = p->store };
        CHECK_EQ(shoal_txn_set(t, "products", p->id, "store_id", &v), SHOAL_OK);
        CHECK_EQ(shoal_txn_counter_add(t, "products", p->id, "stock", p->stock), SHOAL_OK);
    }
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
}

static shoal_query *
q_new(shoal_replica *r, const char *coll, const char *where)
{
    shoal_query *q = NULL;
    shoal_err e = shoal_query_new(r, coll, where, &q);
    if (e != SHOAL_OK)
        fprintf(stderr, "%s: %s\n", where ? where : "(none)", shoal_replica_errmsg(r));
    return q;
}

static void
test_jeans(void)
{
    char *dir = check_tmpdir("query-jeans");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    load_products(r);
    char got[512];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            CHECK_EQ(shoal_index_add(r, "products", "category"), SHOAL_OK);
            CHECK_EQ(shoal_index_add(r, "products", "price"), SHOAL_OK);
        }
        shoal_query *q = q_new(r, "products", "category == \"jeans\" AND size == 8 AND price < 40");
        REQUIRE(q);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "p1,p5,") == 0);
        shoal_query_free(q);
        /* parameters, sorting, limit and offset */
        q = q_new(r, "products", "category == :c AND price >= :lo");
        REQUIRE(q);
        CHECK_EQ(shoal_query_param_count(q), 2);
        shoal_value c = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"jeans", .len = 5 };
        shoal_value lo = { .type = SHOAL_T_INT, .i = 20 };
        CHECK_EQ(shoal_query_bind(q, "c", &c), SHOAL_OK);
        shoal_rows *rows = NULL;
        CHECK_EQ(shoal_find(r, q, &rows), SHOAL_EINVAL); /* :lo unbound */
        CHECK(strstr(shoal_replica_errmsg(r), "lo") != NULL);
        CHECK_EQ(shoal_query_bind(q, "lo", &lo), SHOAL_OK);
        CHECK_EQ(shoal_query_bind(q, "nope", &lo), SHOAL_ENOTFOUND);
        CHECK_EQ(shoal_query_sort(q, "price", true), SHOAL_OK);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "p2,p7,p1,p3,") == 0);
        shoal_query_limit(q, 2, 1);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "p7,p1,") == 0);
        shoal_query_free(q);
        /* no sort keys: _id order, offset and limit applied as matches come */
        q = q_new(r, "products", "size <= 10");
        REQUIRE(q);
        shoal_query_limit(q, 2, 1);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "p2,p3,") == 0);
        shoal_query_limit(q, 0, 4);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "p5,p7,") == 0);
        shoal_query_free(q);
        /* ties by _id, in either direction */
        q = q_new(r, "products", NULL);
        REQUIRE(q);
        CHECK_EQ(shoal_query_sort(q, "size", true), SHOAL_OK);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "p6,p3,p1,p2,p4,p5,p7,") == 0);
        CHECK_EQ(shoal_query_field(q, "price"), SHOAL_OK);
        shoal_query_limit(q, 1, 0);
        CHECK_EQ(shoal_find(r, q, &rows), SHOAL_OK);
        REQUIRE(rows && shoal_rows_count(rows) == 1);
        const shoal_doc *d = shoal_rows_doc(rows, 0);
        CHECK_EQ(shoal_doc_field_count(d), 1);
        shoal_value pv;
        CHECK_EQ(shoal_doc_field_value(d, 0, &pv), SHOAL_OK);
        CHECK(pv.type == SHOAL_T_DOUBLE && pv.d == 80.0);
        shoal_rows_free(rows);
        shoal_query_free(q);
        /* aggregation: count, sum of the counter, min price per category */
        q = q_new(r, "products", "size != 42");
        REQUIRE(q);
        const char *group[] = { "category" };
        shoal_aggregate_spec spec[] = { { SHOAL_AGG_COUNT, NULL },
                                        { SHOAL_AGG_SUM, "stock" },
                                        { SHOAL_AGG_MIN, "price" },
                                        { SHOAL_AGG_AVG, "size" },
                                        { SHOAL_AGG_MAX, "nothing" } };
        shoal_groups *g = NULL;
        CHECK_EQ(shoal_aggregate(r, q, group, 1, spec, 5, &g), SHOAL_OK);
        REQUIRE(g && shoal_groups_count(g) == 2);
        shoal_value k, v;
        shoal_groups_key(g, 0, 0, &k);
        CHECK(k.type == SHOAL_T_STR && k.len == 5 && memcmp(k.ptr, "jeans", 5) == 0);
        shoal_groups_value(g, 0, 0, &v);
        CHECK(v.type == SHOAL_T_INT && v.i == 5);
        shoal_groups_value(g, 0, 1, &v);
        CHECK(v.type == SHOAL_T_INT && v.i == 13);
        shoal_groups_value(g, 0, 2, &v);
        CHECK(v.type == SHOAL_T_DOUBLE && v.d == 12.25);
        shoal_groups_value(g, 0, 3, &v);
        CHECK(v.type == SHOAL_T_DOUBLE && v.d == 8.4);
        shoal_groups_value(g, 0, 4, &v);
        CHECK(v.type == SHOAL_T_NIL);
        shoal_groups_key(g, 1, 0, &k);
        CHECK(k.type == SHOAL_T_STR && k.len == 6 && memcmp(k.ptr, "shirts", 6) == 0);
        shoal_groups_free(g);
        /* no group field: one group, even over nothing */
        CHECK_EQ(shoal_aggregate(r, q, NULL, 0, spec, 2, &g), SHOAL_OK);
        REQUIRE(g && shoal_groups_count(g) == 1);
        shoal_groups_value(g, 0, 0, &v);
        CHECK(v.type == SHOAL_T_INT && v.i == 6);
        shoal_groups_free(g);
        shoal_query_free(q);
        q = q_new(r, "nothing_here", "x == 1");
        REQUIRE(q);
        CHECK_EQ(shoal_aggregate(r, q, NULL, 0, spec, 2, &g), SHOAL_OK);
        REQUIRE(g && shoal_groups_count(g) == 1);
        shoal_groups_value(g, 0, 0, &v);
        CHECK(v.type == SHOAL_T_INT && v.i == 0);
        shoal_groups_value(g, 0, 1, &v);
        CHECK(v.type == SHOAL_T_NIL);
        shoal_groups_free(g);
        /* with a group field: no group at all */
        CHECK_EQ(shoal_aggregate(r, q, group, 1, spec, 2, &g), SHOAL_OK);
        REQUIRE(g);
        CHECK_EQ(shoal_groups_count(g), 0);
        shoal_groups_free(g);
        find_ids(r, q, got, sizeof got);
        CHECK(strcmp(got, "") == 0);
        shoal_query_free(q);
    }
    /* a sum of ints that would overflow int64 goes on as a double */
    {
        shoal_txn *t;
        REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
        shoal_value big = { .type = SHOAL_T_INT, .i = (int64_t)1 << 62 };
        CHECK_EQ(shoal_txn_set(t, "sums", "x", "v", &big), SHOAL_OK);
        CHECK_EQ(shoal_txn_set(t, "sums", "y", "v", &big), SHOAL_OK);
        CHECK_EQ(shoal_txn_set(t, "sums", "z", "v", &big), SHOAL_OK);
        CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
        shoal_query *q = q_new(r, "sums", NULL);
        REQUIRE(q);
        shoal_aggregate_spec sp[] = { { SHOAL_AGG_SUM, "v" }, { SHOAL_AGG_AVG, "v" } };
        shoal_groups *g = NULL;
        CHECK_EQ(shoal_aggregate(r, q, NULL, 0, sp, 2, &g), SHOAL_OK);
        shoal_value v;
        REQUIRE(g);
        shoal_groups_value(g, 0, 0, &v);
        CHECK(v.type == SHOAL_T_DOUBLE && v.d == 3.0 * 4611686018427387904.0);
        shoal_groups_value(g, 0, 1, &v);
        CHECK(v.type == SHOAL_T_DOUBLE && v.d == 4611686018427387904.0);
        shoal_groups_free(g);
        shoal_query_free(q);
    }
    /* index listing */
    shoal_strlist *l = NULL;
    CHECK_EQ(shoal_indexes(r, NULL, &l), SHOAL_OK);
    CHECK(l && shoal_strlist_count(l) == 1 && strcmp(shoal_strlist_get(l, 0), "products") == 0);
    shoal_strlist_free(l);
    CHECK_EQ(shoal_indexes(r, "products", &l), SHOAL_OK);
    CHECK(l && shoal_strlist_count(l) == 2 && strcmp(shoal_strlist_get(l, 0), "category") == 0 &&
          strcmp(shoal_strlist_get(l, 1), "price") == 0);
    shoal_strlist_free(l);
    CHECK_EQ(shoal_index_add(r, "products", "category"), SHOAL_OK); /* exists: no-op */
    CHECK_EQ(shoal_index_add(r, "products", "_id"), SHOAL_EINVAL);
    CHECK_EQ(shoal_index_drop(r, "products", "size"), SHOAL_ENOTFOUND);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* Syntax and bound errors name the position; nothing else changes. */
static void
test_bad_input(void)
{
    char *dir = check_tmpdir("query-bad");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    static const struct {
        const char *text;
        shoal_err err;
    } cases[] = {
        { "a ==", SHOAL_EINVAL },
        { "a == 1 AND", SHOAL_EINVAL },
        { "(a == 1", SHOAL_EINVAL },
        { "a IN ()", SHOAL_EINVAL },
        { "a == \"x", SHOAL_EINVAL },
        { "a ~ 1", SHOAL_EINVAL },
        { "a == 1 b", SHOAL_EINVAL },
        { "a == 99999999999999999999", SHOAL_EINVAL },
        { "NOT NOT NOT NOT NOT NOT NOT NOT NOT a == 1", SHOAL_ETOOBIG },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        shoal_query *q = (shoal_query *)1;
        CHECK_EQ(shoal_query_new(r, "c", cases[i].text, &q), cases[i].err);
        CHECK(q == NULL);
        CHECK(strstr(shoal_replica_errmsg(r), "position ") != NULL);
    }
    /* 65 predicates; 4097 bytes */
    char big[8192];
    size_t k = 0;
    for (int i = 0; i < 65; i++)
        k += (size_t)snprintf(big + k, sizeof big - k, "%sa == %d", i ? " OR " : "", i);
    shoal_query *q = NULL;
    CHECK_EQ(shoal_query_new(r, "c", big, &q), SHOAL_ETOOBIG);
    memset(big, ' ', 4097);
    memcpy(big + 4090, "TRUE", 4);
    big[4097] = 0;
    CHECK_EQ(shoal_query_new(r, "c", big, &q), SHOAL_ETOOBIG);
    CHECK_EQ(shoal_query_new(r, "", "TRUE", &q), SHOAL_EINVAL);
    /* parameter values are checked */
    CHECK_EQ(shoal_query_new(r, "c", "a == :x", &q), SHOAL_OK);
    shoal_value bad = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"\xff", .len = 1 };
    CHECK_EQ(shoal_query_bind(q, "x", &bad), SHOAL_EINVAL);
    shoal_value odd = { .type = (shoal_type)99 };
    CHECK_EQ(shoal_query_bind(q, "x", &odd), SHOAL_EINVAL);
    uint64_t n;
    CHECK_EQ(shoal_count(r, q, &n), SHOAL_EINVAL);
    shoal_query_free(q);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* A directory whose views were never built (as one written before them)
 * gets them, and its indexes, at open. */
static int
forget_views_fn(shoal__stxn *t, void *arg)
{
    int err = shoal__stxn_qview_clear(t);
    return err ? err : shoal__stxn_meta_put(t, "qviews", "\0", 1);
}

static int
mark_fn(shoal__stxn *t, void *arg)
{
    shoal__sval v;
    *(bool *)arg = shoal__stxn_meta_get(t, "qviews", &v) == SHOAL_OK;
    return SHOAL_OK;
}

/* Opening a new directory writes nothing; its first write marks the views
 * built, and a later open has nothing to build. */
static void
test_views_mark(void)
{
    char *dir = check_tmpdir("query-mark");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    bool marked = true;
    CHECK_EQ(shoal__store_read(r->store, mark_fn, &marked), SHOAL_OK);
    CHECK(!marked);
    load_products(r);
    CHECK_EQ(shoal__store_read(r->store, mark_fn, &marked), SHOAL_OK);
    CHECK(marked);
    shoal_replica_close(r);
    r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    shoal_query *q = q_new(r, "products", "store_id == 12");
    char got[256];
    find_ids(r, q, got, sizeof got);
    CHECK(strcmp(got, "p1,p2,p4,") == 0);
    shoal_query_free(q);
    shoal_check_stats cs;
    CHECK_EQ(shoal_replica_check(r, NULL, NULL, &cs), SHOAL_OK);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static void
test_views_rebuilt(void)
{
    char *dir = check_tmpdir("query-rebuild");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    load_products(r);
    CHECK_EQ(shoal_index_add(r, "products", "store_id"), SHOAL_OK);
    CHECK_EQ(shoal__store_write(r->store, forget_views_fn, NULL), SHOAL_OK);
    shoal_query *q = q_new(r, "products", "store_id == 12 OR size == 10");
    char got[256];
    find_ids(r, q, got, sizeof got);
    CHECK(strcmp(got, "") == 0); /* no views: nothing found */
    shoal_replica_close(r);
    r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    find_ids(r, q, got, sizeof got);
    CHECK(strcmp(got, "p1,p2,p3,p4,") == 0);
    shoal_query_free(q);
    q = q_new(r, "products", "store_id == 12");
    find_ids(r, q, got, sizeof got); /* through the rebuilt index */
    CHECK(strcmp(got, "p1,p2,p4,") == 0);
    shoal_query_free(q);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* ---------------------------------------------------------- live queries */

typedef struct mirror {
    char fp[NDOCS][512]; /* the last document delivered, as doc_fp */
    bool in[NDOCS];
    bool ready;
} mirror;

/* A document as text: each field's name, kind and value(s). */
static void
doc_fp(const shoal_doc *d, char *out, size_t n)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; d && i < shoal_doc_field_count(d) && k < n; i++) {
        shoal_value v;
        int64_t c;
        size_t len;
        k += (size_t)snprintf(out + k, n - k, "%s:", shoal_doc_field_name(d, i));
        if (k >= n)
            break;
        switch (shoal_doc_field_kind(d, i)) {
        case SHOAL_K_REGISTER:
            shoal_doc_field_value(d, i, &v);
            k += (size_t)snprintf(out + k, n - k, "r%d/%lld/%g/%.*s;", v.type, (long long)v.i,
                                  v.type == SHOAL_T_DOUBLE ? v.d : 0.0,
                                  v.type == SHOAL_T_STR ? (int)v.len : 0,
                                  v.type == SHOAL_T_STR ? (const char *)v.ptr : "");
            break;
        case SHOAL_K_COUNTER:
            shoal_doc_field_counter(d, i, &c);
            k += (size_t)snprintf(out + k, n - k, "c%lld;", (long long)c);
            break;
        default:
            shoal_doc_field_list_len(d, i, &len);
            k += (size_t)snprintf(out + k, n - k, "l%zu;", len);
            break;
        }
    }
}

static void
drain(shoal_live *l, mirror *m)
{
    shoal_live_event *e;
    while (shoal_live_next(l, 0, &e) == SHOAL_OK) {
        shoal_live_kind k = shoal_live_event_kind(e);
        const char *id = shoal_live_event_id(e);
        if (k == SHOAL_LIVE_READY) {
            m->ready = true;
        } else {
            int i = atoi(id + 1);
            CHECK(i >= 0 && i < NDOCS);
            if (i >= 0 && i < NDOCS) {
                if (k == SHOAL_LIVE_ENTER)
                    CHECK(!m->in[i]);
                if (k == SHOAL_LIVE_UPDATE || k == SHOAL_LIVE_LEAVE)
                    CHECK(m->in[i]);
                CHECK((shoal_live_event_doc(e) != NULL) == (k != SHOAL_LIVE_LEAVE));
                m->in[i] = k != SHOAL_LIVE_LEAVE;
                doc_fp(shoal_live_event_doc(e), m->fp[i], sizeof m->fp[i]);
            }
        }
        shoal_live_event_free(e);
    }
}

static void
mirror_ids(const mirror *m, char *out, size_t n)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < NDOCS && k < n; i++)
        if (m->in[i]) {
            char id[16];
            doc_id(i, id);
            k += (size_t)snprintf(out + k, n - k, "%s{%s},", id, m->fp[i]);
        }
}

/* find's rows with their documents, as mirror_ids renders a mirror. */
static void
find_docs(shoal_replica *r, shoal_query *q, char *out, size_t n)
{
    shoal_rows *rows = NULL;
    out[0] = 0;
    if (shoal_find(r, q, &rows) != SHOAL_OK) {
        snprintf(out, n, "ERROR %s", shoal_replica_errmsg(r));
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < shoal_rows_count(rows) && k < n; i++) {
        char fp[512];
        doc_fp(shoal_rows_doc(rows, i), fp, sizeof fp);
        k += (size_t)snprintf(out + k, n - k, "%s{%s},", shoal_rows_id(rows, i), fp);
    }
    shoal_rows_free(rows);
}

enum {
    NLIVE = 6
};

static void
test_live(void)
{
    uint64_t seed = check_seed(20261207);
    check_rand_reseed(seed ^ 0x11);
    model_reset();
    char *dir = check_tmpdir("query-live");
    char *dir2 = check_tmpdir("query-live2");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    shoal_replica *other = check_replica_open(dir2, NULL, NULL);
    REQUIRE(r && other);
    for (int c = 0; c < 40; c++)
        random_change(r, "c");
    CHECK_EQ(shoal_index_add(r, "c", "a"), SHOAL_OK);
    shoal_live *live[NLIVE];
    shoal_query *qs[NLIVE];
    mirror mir[NLIVE];
    memset(mir, 0, sizeof mir);
    static const char *const wheres[NLIVE] = {
        "a == 1",
        "a IN (1, 2, \"ab\") AND n > 0",
        "tags CONTAINS \"jeans\" OR tags CONTAINS 2",
        "b < 3 OR NOT s EXISTS",
        "n >= 1",
        NULL,
    };
    for (int i = 0; i < NLIVE; i++) {
        qs[i] = q_new(r, "c", wheres[i]);
        REQUIRE(qs[i]);
        CHECK_EQ(shoal_live_open(r, qs[i], &live[i]), SHOAL_OK);
        CHECK(shoal_live_fd(live[i]) >= 0);
        drain(live[i], &mir[i]);
        CHECK(mir[i].ready);
    }
    static char want[1 << 16], got[1 << 16];
    long steps = check_env_long("SHOAL_LIVE_STEPS", 60);
    for (long s = 0; s < steps; s++) {
        int how = (int)check_rand_below(4);
        if (how <= 1) {
            int n = 1 + (int)check_rand_below(4);
            for (int c = 0; c < n; c++)
                random_change(r, "c");
        } else if (how == 2) {
            /* changes made elsewhere arrive by import (other first
             * catches up, so the model stays a sequence) */
            shoal_import_result res;
            CHECK_EQ(check_push(r, other, &res), SHOAL_OK);
            for (int c = 0; c < 3; c++)
                random_change(other, "c");
            CHECK_EQ(check_push(other, r, &res), SHOAL_OK);
        } else {
            /* another process writes the same directory */
            shoal_replica_flush(r);
            pid_t pid = fork();
            if (pid == 0) {
                shoal_replica *c = check_replica_open(dir, NULL, NULL);
                if (!c)
                    _exit(2);
                shoal_txn *t;
                char id[16];
                doc_id((int)(s % NDOCS), id);
                shoal_value v = { .type = SHOAL_T_INT, .i = (int64_t)(s % 3) };
                int bad = shoal_txn_begin(c, &t) != SHOAL_OK ||
                          shoal_txn_set(t, "c", id, "a", &v) != SHOAL_OK ||
                          shoal_txn_commit(t) != SHOAL_OK;
                shoal_replica_close(c);
                _exit(bad);
            }
            int st = 0;
            CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
            /* Wait (bounded) until the live queries saw it: the watched
             * data.mdb was written, so the descriptor polls readable. */
            uint64_t until = check_now_ms() + 5000;
            bool seen = false;
            while (!seen && check_now_ms() < until) {
                drain(live[0], &mir[0]);
                char id[16];
                doc_id((int)(s % NDOCS), id);
                shoal_doc *d = NULL;
                if (shoal_doc_get(r, "c", id, &d) == SHOAL_OK) {
                    size_t fi;
                    shoal_value v;
                    seen = shoal_doc_field_find(d, "a", &fi) == SHOAL_OK &&
                           shoal_doc_field_value(d, fi, &v) == SHOAL_OK && v.type == SHOAL_T_INT &&
                           v.i == (int64_t)(s % 3);
                }
                shoal_doc_free(d);
            }
            CHECK(seen);
            int idx = (int)(s % NDOCS);
            if (!model[idx].live) {
                memset(&model[idx], 0, sizeof model[idx]);
                for (int k = 0; k < NREG; k++)
                    model[idx].reg[k].type = -1;
                model[idx].live = true;
            }
            model[idx].reg[0] = (mval){ .type = SHOAL_T_INT, .i = (int64_t)(s % 3) };
        }
        for (int i = 0; i < NLIVE; i++) {
            shoal_query *q = qs[i];
            /* Events of this handle's writes are queued before the write
             * returns; those of another process's commit come through the
             * inotify watch: poll until the mirror matches find (bounded). */
            uint64_t until = check_now_ms() + (how == 3 ? 3000 : 0);
            for (;;) {
                drain(live[i], &mir[i]);
                mirror_ids(&mir[i], got, sizeof got);
                find_docs(r, q, want, sizeof want);
                if (strcmp(want, got) == 0 || check_now_ms() > until)
                    break;
                shoal_live_event *e = NULL;
                if (shoal_live_next(live[i], 50, &e) == SHOAL_OK) {
                    /* put it back through the mirror */
                    shoal_live_kind k = shoal_live_event_kind(e);
                    if (k != SHOAL_LIVE_READY) {
                        int di = atoi(shoal_live_event_id(e) + 1);
                        if (di >= 0 && di < NDOCS) {
                            mir[i].in[di] = k != SHOAL_LIVE_LEAVE;
                            doc_fp(shoal_live_event_doc(e), mir[i].fp[di], sizeof mir[i].fp[di]);
                        }
                    }
                    shoal_live_event_free(e);
                }
            }
            if (strcmp(want, got) != 0)
                fprintf(stderr, "seed %llu step %ld live %d (%s):\n  find: %s\n  live: %s\n",
                        (unsigned long long)seed, s, i, wheres[i] ? wheres[i] : "TRUE", want, got);
            CHECK(strcmp(want, got) == 0);
        }
        if (check_failures)
            break;
    }
    for (int i = 0; i < NLIVE; i++) {
        shoal_live_close(live[i]);
        shoal_query_free(qs[i]);
    }
    shoal_replica_close(r);
    shoal_replica_close(other);
    check_rmtree(dir);
    check_rmtree(dir2);
    free(dir);
    free(dir2);
}

/* Events of one document fold until they are read: the queue holds at
 * most one per document, the difference from what was read last. */
static shoal_err
set_int(shoal_replica *r, const char *id, const char *f, int64_t v)
{
    shoal_txn *t;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e)
        return e;
    shoal_value x = { .type = SHOAL_T_INT, .i = v };
    e = shoal_txn_set(t, "f", id, f, &x);
    if (e) {
        shoal_txn_abort(t);
        return e;
    }
    return shoal_txn_commit(t);
}

/* The queued events as "kind:id" separated by spaces (READY as "R"). */
static void
queued(shoal_live *l, char *out, size_t n)
{
    size_t k = 0;
    out[0] = 0;
    shoal_live_event *e;
    while (shoal_live_next(l, 0, &e) == SHOAL_OK) {
        static const char kinds[] = "?EULR";
        k += (size_t)snprintf(
            out + k, n - k, "%s%c%s%s", k ? " " : "", kinds[shoal_live_event_kind(e)],
            shoal_live_event_kind(e) == SHOAL_LIVE_READY ? "" : ":", shoal_live_event_id(e));
        shoal_live_event_free(e);
    }
}

static void
test_live_fold(void)
{
    char *dir = check_tmpdir("query-fold");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    CHECK_EQ(set_int(r, "x", "a", 1), SHOAL_OK);
    shoal_query *q = q_new(r, "f", "a == 1");
    REQUIRE(q);
    shoal_live *l = NULL;
    REQUIRE(shoal_live_open(r, q, &l) == SHOAL_OK);
    char got[256];
    /* ENTER x folds with its UPDATE: one ENTER (of the newer document) */
    CHECK_EQ(set_int(r, "x", "b", 5), SHOAL_OK);
    queued(l, got, sizeof got);
    CHECK(strcmp(got, "E:x R") == 0);
    /* ENTER then LEAVE before a read: nothing */
    CHECK_EQ(set_int(r, "y", "a", 1), SHOAL_OK);
    CHECK_EQ(set_int(r, "y", "a", 2), SHOAL_OK);
    queued(l, got, sizeof got);
    CHECK(strcmp(got, "") == 0);
    /* LEAVE then ENTER: an UPDATE (x was read as a member) */
    CHECK_EQ(set_int(r, "x", "a", 2), SHOAL_OK);
    CHECK_EQ(set_int(r, "x", "a", 1), SHOAL_OK);
    queued(l, got, sizeof got);
    CHECK(strcmp(got, "U:x") == 0); /* as read before, but it left meanwhile */
    CHECK_EQ(set_int(r, "x", "a", 2), SHOAL_OK);
    CHECK_EQ(set_int(r, "x", "a", 1), SHOAL_OK);
    CHECK_EQ(set_int(r, "x", "b", 6), SHOAL_OK);
    queued(l, got, sizeof got);
    CHECK(strcmp(got, "U:x") == 0);
    /* UPDATE then LEAVE: a LEAVE; several documents keep their order */
    CHECK_EQ(set_int(r, "z", "a", 1), SHOAL_OK);
    CHECK_EQ(set_int(r, "x", "b", 7), SHOAL_OK);
    CHECK_EQ(set_int(r, "x", "a", 3), SHOAL_OK);
    queued(l, got, sizeof got);
    CHECK(strcmp(got, "E:z L:x") == 0);
    /* a thousand changes to one document unread: one event */
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(set_int(r, "z", "b", i), SHOAL_OK);
    queued(l, got, sizeof got);
    CHECK(strcmp(got, "U:z") == 0);
    shoal_live_close(l);
    shoal_query_free(q);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

int
main(void)
{
    RUN(test_jeans);
    RUN(test_bad_input);
    RUN(test_views_rebuilt);
    RUN(test_views_mark);
    RUN(test_model_and_indexes);
    RUN(test_live);
    RUN(test_live_fold);
    return check_summary();
}
