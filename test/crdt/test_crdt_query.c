/*
 * test/crdt/test_crdt_query.c - the query language of crdt/query.c against a
 * reference model written here, independently of it.
 *
 * The model keeps documents and predicates as plain trees, renders each
 * predicate to text (random keyword case, random spacing, backticked names,
 * JSON escapes, parameters for what has no literal form), and evaluates
 * both itself.  Its number comparisons go through long double, where every
 * int64 and every double is exact, rather than the int/double split of
 * query.c.  Views are encoded here with shoal__mpw_* and, for the same
 * document built through shoal__doc_apply, by shoal__doc_encode_qview: the
 * bytes must agree.  Then: the sort order, index keys, index terms
 * (soundness on the random queries), every parser error with its position,
 * the bounds, parameters, and malformed views.
 *
 * SHOAL_SEED picks the seed (printed); SHOAL_QUERY_PREDS the number of
 * random predicates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crdt.h"

/* ------------------------------------------------------------- values */

static const char *const STRS[] = { "",      "a",    "ab",         "b",
                                    "B",     "a\0b", "\xc3\xa9",   "\xf0\x9f\x98\x80",
                                    "\"q\\", "zz",   "line\nbreak" };
static const size_t STR_LENS[] = { 0, 1, 2, 1, 1, 3, 2, 4, 3, 2, 10 };
static const char *const BINS[] = { "", "\x00", "\x00\xff", "a", "ab", "\xff" };
static const size_t BIN_LENS[] = { 0, 1, 2, 1, 2, 1 };
#define NSTRS (sizeof STRS / sizeof STRS[0])
#define NBINS (sizeof BINS / sizeof BINS[0])

static uint64_t
rnd(uint64_t n)
{
    return check_rand_below(n);
}

static shoal_value
v_nil(void)
{
    shoal_value v = { .type = SHOAL_T_NIL };
    return v;
}

static shoal_value
v_int(int64_t i)
{
    shoal_value v = { .type = SHOAL_T_INT, .i = i };
    return v;
}

static shoal_value
v_dbl(double d)
{
    shoal_value v = { .type = SHOAL_T_DOUBLE, .d = d };
    return v;
}

static shoal_value
v_bool(bool b)
{
    shoal_value v = { .type = SHOAL_T_BOOL, .b = b };
    return v;
}

static shoal_value
v_str(const char *s, size_t n)
{
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = n };
    return v;
}

static shoal_value
v_bin(const char *s, size_t n)
{
    shoal_value v = { .type = SHOAL_T_BYTES, .ptr = (const uint8_t *)s, .len = n };
    return v;
}

/* A random scalar, biased to collide across types and around the edges. */
static shoal_value
rand_value(void)
{
    static const double dbls[] = { 0.0,
                                   -0.0,
                                   0.5,
                                   -1.5,
                                   1.0,
                                   2.0,
                                   -3.0,
                                   3.0,
                                   1e300,
                                   -1e300,
                                   9007199254740992.0,
                                   9007199254740994.0,
                                   9223372036854775808.0,
                                   -9223372036854775808.0 };
    static const int64_t ints[] = { 0,
                                    1,
                                    -1,
                                    2,
                                    3,
                                    -3,
                                    9007199254740992LL,
                                    9007199254740993LL,
                                    9007199254740991LL,
                                    INT64_MAX,
                                    INT64_MIN,
                                    INT64_MAX - 1 };
    switch (rnd(12)) {
    case 0: return v_nil();
    case 1: return v_bool(rnd(2));
    case 2:
    case 3: return v_int(ints[rnd(sizeof ints / sizeof ints[0])]);
    case 4: return v_int((int64_t)check_rand());
    case 5: return v_dbl(dbls[rnd(sizeof dbls / sizeof dbls[0])]);
    case 6:
        switch (rnd(4)) {
        case 0: return v_dbl(NAN);
        case 1: return v_dbl(INFINITY);
        case 2: return v_dbl(-INFINITY);
        default: return v_dbl((double)(int64_t)check_rand() / 1024.0);
        }
    case 7:
    case 8:
    case 9: {
        size_t k = rnd(NSTRS);
        return v_str(STRS[k], STR_LENS[k]);
    }
    default: {
        size_t k = rnd(NBINS);
        return v_bin(BINS[k], BIN_LENS[k]);
    }
    }
}

/* --------------------------------------------------------------- model */

static bool
m_nan(const shoal_value *v)
{
    return v->type == SHOAL_T_DOUBLE && v->d != v->d;
}

static long double
m_num(const shoal_value *v)
{
    return v->type == SHOAL_T_INT ? (long double)v->i : (long double)v->d;
}

static int
m_bytes(const shoal_value *a, const shoal_value *b)
{
    for (size_t i = 0; i < a->len && i < b->len; i++)
        if (a->ptr[i] != b->ptr[i])
            return a->ptr[i] < b->ptr[i] ? -1 : 1;
    return a->len == b->len ? 0 : a->len < b->len ? -1 : 1;
}

/* 0 null, 1 bool, 2 number, 3 string, 4 bytes */
static int
m_class(const shoal_value *v)
{
    static const int cls[] = { 0, 1, 2, 2, 3, 4 };
    return cls[v->type];
}

/* The total order of crdt.h for scalars. */
static int
m_order(const shoal_value *a, const shoal_value *b)
{
    int ra = m_class(a) * 2 + (a->type == SHOAL_T_BOOL && a->b);
    int rb = m_class(b) * 2 + (b->type == SHOAL_T_BOOL && b->b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (m_class(a) == 2) {
        if (m_nan(a) || m_nan(b))
            return m_nan(a) - m_nan(b);
        long double x = m_num(a), y = m_num(b);
        return x < y ? -1 : x > y;
    }
    if (m_class(a) >= 3)
        return m_bytes(a, b);
    return 0;
}

enum {
    EQ = 1,
    NE,
    LT,
    LE,
    GT,
    GE
};
static const char *const OPS[] = { "", "==", "!=", "<", "<=", ">", ">=" };

/* a op b for scalars, straight from the rules. */
static bool
m_test(const shoal_value *a, const shoal_value *b, int op)
{
    if (m_nan(a) || m_nan(b))
        return false;
    if (m_class(a) != m_class(b))
        return op == NE;
    int c = m_order(a, b);
    bool ordered = m_class(a) >= 2;
    switch (op) {
    case EQ: return c == 0;
    case NE: return c != 0;
    case LT: return ordered && c < 0;
    case LE: return ordered && c <= 0;
    case GT: return ordered && c > 0;
    default: return ordered && c >= 0;
    }
}

/* Field names: some need backticks (keywords, "_id", odd bytes). */
static const char *const NAMES[] = { "a",   "b", "ab",          "x_1",        "AND", "in",
                                     "_id", "Z", "\xc3\xa9",    "with space", "`t",  "nULl",
                                     "c9",  "_", "contains_it", "e" };
#define NNAMES (sizeof NAMES / sizeof NAMES[0])

enum {
    K_ABSENT = 0,
    K_REG = 1,
    K_CNT = 2,
    K_LIST = 3
};

typedef struct mfield {
    int name;
    int kind;
    shoal_value v;      /* K_REG; K_CNT as an int */
    shoal_value *items; /* K_LIST, malloc'd */
    size_t nitems;
} mfield;

typedef struct mdoc {
    int id; /* index into STRS */
    mfield f[8];
    int nf;
    bool has_long;
    /* views: capped and full, encoded here, and parsed */
    shoal__buf vcap, vfull;
    shoal__qfield *qcap, *qfull;
    size_t ncap, nfull, capcap, capfull;
} mdoc;

static const mfield *
m_field(const mdoc *d, int name)
{
    for (int i = 0; i < d->nf; i++)
        if (d->f[i].name == name)
            return &d->f[i];
    return NULL;
}

static void
rand_doc(mdoc *d)
{
    memset(d, 0, sizeof *d);
    d->id = (int)rnd(NSTRS);
    int n = (int)rnd(9);
    for (int i = 0; i < n; i++) {
        int name = (int)rnd(NNAMES);
        if (m_field(d, name))
            continue;
        mfield *f = &d->f[d->nf++];
        f->name = name;
        f->kind = 1 + (int)rnd(3);
        if (f->kind == K_REG)
            f->v = rand_value();
        else if (f->kind == K_CNT)
            f->v = rnd(3) ? v_int((int64_t)rnd(7) - 3) : v_int((int64_t)check_rand());
        else {
            f->nitems = rnd(20) == 0 ? 257 + rnd(60) : rnd(6);
            if (f->nitems > SHOAL__Q_LIST_VIEW)
                d->has_long = true;
            f->items = malloc((f->nitems + 1) * sizeof *f->items);
            for (size_t k = 0; k < f->nitems; k++)
                f->items[k] = rand_value();
        }
    }
}

static int
name_cmp(const void *a, const void *b)
{
    const mfield *x = a, *y = b;
    shoal_value s = v_str(NAMES[x->name], strlen(NAMES[x->name]));
    shoal_value t = v_str(NAMES[y->name], strlen(NAMES[y->name]));
    return m_bytes(&s, &t);
}

/* The query view of d as crdt.h describes it, written by hand. */
static void
encode_view(mdoc *d, size_t cap, shoal__buf *out)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    qsort(d->f, (size_t)d->nf, sizeof d->f[0], name_cmp);
    shoal__mpw_map(&w, (uint32_t)d->nf);
    for (int i = 0; i < d->nf; i++) {
        const mfield *f = &d->f[i];
        shoal__mpw_str(&w, NAMES[f->name], strlen(NAMES[f->name]));
        shoal__mpw_array(&w, 2);
        shoal__mpw_uint(&w, (uint64_t)f->kind);
        if (f->kind == K_REG)
            shoal__mpw_value(&w, &f->v);
        else if (f->kind == K_CNT)
            shoal__mpw_int(&w, f->v.i);
        else if (f->nitems > cap) {
            /* rewrite the tag: [4, n] */
            out->p[out->len - 1] = 4;
            shoal__mpw_uint(&w, f->nitems);
        } else {
            shoal__mpw_array(&w, (uint32_t)f->nitems);
            for (size_t k = 0; k < f->nitems; k++)
                shoal__mpw_value(&w, &f->items[k]);
        }
    }
    CHECK_EQ(w.err, SHOAL_OK);
}

static uint8_t KA[32];

/* The same document through the CRDT: one change, one op per register or
 * counter, a chain of inserts per list (plus insert + delete for an empty
 * list).  Returns NULL if something failed (counted). */
static shoal__doc *
build_doc(const mdoc *m)
{
    size_t nops = 0;
    for (int i = 0; i < m->nf; i++)
        nops += m->f[i].kind == K_LIST ? m->f[i].nitems + 2 : 1;
    shoal__op *ops = calloc(nops + 1, sizeof *ops);
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, KA, 32);
    c.seq = 1;
    c.hlc = 1000;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)STRS[m->id];
    c.doc_len = STR_LENS[m->id];
    c.ops = ops;
    size_t k = 0;
    for (int i = 0; i < m->nf; i++) {
        const mfield *f = &m->f[i];
        const uint8_t *name = (const uint8_t *)NAMES[f->name];
        size_t nl = strlen(NAMES[f->name]);
        if (f->kind == K_REG) {
            ops[k] =
                (shoal__op){ .kind = SHOAL__OP_SET, .field = name, .field_len = nl, .value = f->v };
            k++;
        } else if (f->kind == K_CNT) {
            ops[k] = (shoal__op){
                .kind = SHOAL__OP_COUNT, .field = name, .field_len = nl, .delta = f->v.i
            };
            k++;
        } else {
            for (size_t j = 0; j < f->nitems; j++) {
                shoal__ref r = { j == 0, j ? 1000 : 0, 0, (uint32_t)(k - 1) };
                ops[k] = (shoal__op){ .kind = SHOAL__OP_INS,
                                      .field = name,
                                      .field_len = nl,
                                      .value = f->items[j],
                                      .ref = r };
                k++;
            }
            if (f->nitems == 0) {
                shoal__ref h = { true, 0, 0, 0 };
                ops[k] = (shoal__op){ .kind = SHOAL__OP_INS,
                                      .field = name,
                                      .field_len = nl,
                                      .value = v_int(7),
                                      .ref = h };
                k++;
                shoal__ref r = { false, 1000, 0, (uint32_t)(k - 1) };
                ops[k] =
                    (shoal__op){ .kind = SHOAL__OP_DEL, .field = name, .field_len = nl, .ref = r };
                k++;
            }
        }
    }
    c.nops = k;
    shoal__doc *d = shoal__doc_new();
    int rc = d ? shoal__doc_apply(d, &c, 0, c.nops) : SHOAL_ENOMEM;
    CHECK_EQ(rc, SHOAL_OK);
    free(ops);
    if (rc) {
        shoal__doc_free(d);
        return NULL;
    }
    return d;
}

static void
prepare_doc(mdoc *d, bool via_crdt)
{
    shoal__buf_init(&d->vcap);
    shoal__buf_init(&d->vfull);
    encode_view(d, SHOAL__Q_LIST_VIEW, &d->vcap);
    encode_view(d, SIZE_MAX, &d->vfull);
    bool alive;
    CHECK_EQ(shoal__qview_parse(d->vcap.p, d->vcap.len, &d->qcap, &d->capcap, &d->ncap, &alive),
             SHOAL_OK);
    CHECK(alive && d->ncap == (size_t)d->nf);
    CHECK_EQ(
        shoal__qview_parse(d->vfull.p, d->vfull.len, &d->qfull, &d->capfull, &d->nfull, &alive),
        SHOAL_OK);
    CHECK(alive && d->nfull == (size_t)d->nf);
    if (!via_crdt)
        return;
    shoal__doc *cd = build_doc(d);
    if (!cd)
        return;
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__doc_encode_qview(cd, SHOAL__Q_LIST_VIEW, &b), SHOAL_OK);
    CHECK(b.len == d->vcap.len && memcmp(b.p, d->vcap.p, b.len) == 0);
    shoal__buf_free(&b);
    CHECK_EQ(shoal__doc_encode_qview(cd, SIZE_MAX, &b), SHOAL_OK);
    CHECK(b.len == d->vfull.len && memcmp(b.p, d->vfull.p, b.len) == 0);
    shoal__buf_free(&b);
    shoal__doc_free(cd);
}

static void
free_doc(mdoc *d)
{
    for (int i = 0; i < d->nf; i++)
        free(d->f[i].items);
    shoal__buf_free(&d->vcap);
    shoal__buf_free(&d->vfull);
    shoal__free(d->qcap);
    shoal__free(d->qfull);
}

static shoal__qdoc
qdoc_of(const mdoc *d, bool full)
{
    shoal__qdoc q = { (const uint8_t *)STRS[d->id], STR_LENS[d->id], full ? d->qfull : d->qcap,
                      full ? d->nfull : d->ncap };
    return q;
}

/* ----------------------------------------------------------- predicates */

enum {
    P_AND = 1,
    P_OR,
    P_NOT,
    P_TRUE,
    P_FALSE,
    P_CMP,
    P_IN,
    P_CONTAINS,
    P_EXISTS
};

typedef struct mlit {
    shoal_value v;
    int param; /* -1 or a parameter index */
} mlit;

typedef struct mpred {
    int type, op;
    int field; /* -1: the document id (bare _id) */
    int nlits;
    mlit lits[6];
    int nkids;
    struct mpred *kids[4];
    bool parens; /* extra parentheses around it */
} mpred;

static mpred arena[2048];
static size_t narena;
static shoal_value params[64];
static int nparams;

static mlit
rand_lit(void)
{
    mlit l = { rand_value(), -1 };
    if (nparams && rnd(8) == 0) {
        l.param = (int)rnd((uint64_t)nparams);
        l.v = params[l.param];
        return l;
    }
    bool literal_ok =
        l.v.type != SHOAL_T_BYTES && !(l.v.type == SHOAL_T_DOUBLE && !isfinite(l.v.d));
    if (!literal_ok || rnd(6) == 0) {
        if (nparams < 64) {
            l.param = nparams;
            params[nparams++] = l.v;
        } else {
            l.v = v_int(1);
        }
    }
    return l;
}

static mpred *
gen(int level)
{
    if (narena == sizeof arena / sizeof arena[0])
        return NULL;
    mpred *p = &arena[narena++];
    memset(p, 0, sizeof *p);
    p->parens = rnd(12) == 0;
    if (level < 5 && rnd(100) < 45) {
        uint64_t r = rnd(10);
        p->type = r < 4 ? P_AND : r < 8 ? P_OR : P_NOT;
        int nk = p->type == P_NOT ? 1 : 2 + (int)rnd(3);
        for (int i = 0; i < nk; i++) {
            mpred *k = gen(level + (rnd(4) == 0 ? 2 : 1));
            if (!k)
                break;
            p->kids[p->nkids++] = k;
        }
        if (p->nkids == 0)
            p->type = P_TRUE;
        else if (p->type != P_NOT && p->nkids == 1)
            p->type = P_AND; /* a chain of one: rendered without a keyword */
        return p;
    }
    mpred *top = p;
    if (rnd(40) == 0) { /* a stack of NOTs, sometimes over the bound */
        int n = 1 + (int)rnd(10);
        mpred *inner = NULL, *outer = p;
        for (int i = 0; i < n && narena < sizeof arena / sizeof arena[0]; i++) {
            outer->type = P_NOT;
            inner = &arena[narena++];
            memset(inner, 0, sizeof *inner);
            outer->kids[0] = inner;
            outer->nkids = 1;
            outer = inner;
        }
        if (!inner) {
            p->type = P_TRUE;
            return p;
        }
        p = inner;
    }
    p->field = rnd(10) == 0 ? -1 : (int)rnd(NNAMES);
    uint64_t r = rnd(100);
    if (r < 4)
        p->type = P_TRUE;
    else if (r < 8)
        p->type = P_FALSE;
    else if (r < 16)
        p->type = P_EXISTS;
    else if (r < 31) {
        p->type = P_IN;
        p->nlits = 1 + (int)rnd(6);
    } else if (r < 46) {
        p->type = P_CONTAINS;
        p->nlits = 1;
    } else {
        p->type = P_CMP;
        p->op = 1 + (int)rnd(6);
        p->nlits = 1;
    }
    for (int i = 0; i < p->nlits; i++)
        p->lits[i] = rand_lit();
    return top;
}

/* Scalar a field stands for, or NULL for a list; absent is null. */
static bool
m_scalar(const mdoc *d, int field, shoal_value *out, const mfield **lf)
{
    *lf = NULL;
    if (field < 0) {
        *out = v_str(STRS[d->id], STR_LENS[d->id]);
        return true;
    }
    const mfield *f = m_field(d, field);
    if (!f) {
        *out = v_nil();
        return true;
    }
    if (f->kind == K_LIST) {
        *lf = f;
        return false;
    }
    *out = f->v;
    return true;
}

/* Model evaluation; capped: CONTAINS on a long list is unknown (-1), with
 * Kleene's three-valued AND / OR / NOT. */
static int
m_eval(const mpred *p, const mdoc *d, bool capped)
{
    switch (p->type) {
    case P_TRUE: return 1;
    case P_FALSE: return 0;
    case P_NOT: {
        int r = m_eval(p->kids[0], d, capped);
        return r < 0 ? r : !r;
    }
    case P_AND:
    case P_OR: {
        bool unknown = false;
        for (int i = 0; i < p->nkids; i++) {
            int r = m_eval(p->kids[i], d, capped);
            if (r < 0)
                unknown = true;
            else if (r == (p->type == P_OR))
                return r;
        }
        return unknown ? -1 : p->type == P_AND;
    }
    default: break;
    }
    shoal_value v;
    const mfield *lf;
    bool scalar = m_scalar(d, p->field, &v, &lf);
    switch (p->type) {
    case P_EXISTS: return p->field < 0 || m_field(d, p->field) != NULL;
    case P_CMP: /* NaN first: a list != NaN is false too */
        return scalar ? m_test(&v, &p->lits[0].v, p->op) : p->op == NE && !m_nan(&p->lits[0].v);
    case P_IN:
        if (!scalar)
            return 0;
        for (int i = 0; i < p->nlits; i++)
            if (m_test(&v, &p->lits[i].v, EQ))
                return 1;
        return 0;
    default: /* P_CONTAINS */
        if (scalar)
            return 0;
        if (capped && lf->nitems > SHOAL__Q_LIST_VIEW && !m_nan(&p->lits[0].v))
            return -1;
        for (size_t i = 0; i < lf->nitems; i++)
            if (m_test(&lf->items[i], &p->lits[0].v, EQ))
                return 1;
        return 0;
    }
}

/* ------------------------------------------------------------ rendering */

typedef struct rtext {
    char s[16384];
    size_t n;
    int depth, maxdepth, preds;
} rtext;

static void
put(rtext *t, const char *s, size_t n)
{
    if (t->n + n < sizeof t->s) {
        memcpy(t->s + t->n, s, n);
        t->n += n;
    } else {
        t->n = sizeof t->s; /* too long: the parse must refuse it anyway */
    }
}

static void
puts_(rtext *t, const char *s)
{
    put(t, s, strlen(s));
}

static void
ws(rtext *t, bool needed)
{
    static const char *const W[] = { " ", " ", " ", "\t", "\n", "\r\n", "  " };
    if (!needed && rnd(3) == 0)
        return;
    puts_(t, W[rnd(sizeof W / sizeof W[0])]);
}

static void
keyword(rtext *t, const char *kw)
{
    char b[16];
    size_t n = strlen(kw);
    for (size_t i = 0; i < n; i++)
        b[i] = rnd(2) ? kw[i] : (char)(kw[i] | 0x20);
    put(t, b, n);
}

static bool
is_kw(const char *s)
{
    static const char *const K[] = { "and",    "or",   "not",   "in",  "contains",
                                     "exists", "true", "false", "null" };
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++)
        if (strcasecmp(s, K[i]) == 0)
            return true;
    return false;
}

static void
render_name(rtext *t, int field)
{
    if (field < 0) {
        puts_(t, "_id");
        return;
    }
    const char *s = NAMES[field];
    bool bare = (s[0] == '_' || (s[0] | 0x20) >= 'a') && (s[0] | 0x20) <= 'z' && !is_kw(s) &&
                strcmp(s, "_id") != 0;
    for (const char *c = s; *c && bare; c++)
        if (!(*c == '_' || ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') || (*c >= '0' && *c <= '9')))
            bare = false;
    if (bare && rnd(5)) {
        puts_(t, s);
        return;
    }
    puts_(t, "`");
    for (const char *c = s; *c; c++)
        puts_(t, *c == '`' ? "``" : (char[]){ *c, 0 });
    puts_(t, "`");
}

static void
render_string(rtext *t, const shoal_value *v)
{
    char b[32];
    puts_(t, "\"");
    for (size_t i = 0; i < v->len;) {
        uint8_t c = v->ptr[i];
        if (c == '"' || c == '\\') {
            puts_(t, c == '"' ? "\\\"" : "\\\\");
            i++;
        } else if (c < 0x20 || (c < 0x80 && rnd(8) == 0)) {
            snprintf(b, sizeof b, rnd(2) ? "\\u%04x" : "\\u%04X", c);
            puts_(t, b);
            i++;
        } else if (c >= 0x80) {
            /* one UTF-8 sequence, as is or as \u escapes */
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            uint32_t u = c & (0x3f >> (n - 1));
            for (size_t k = 1; k < n; k++)
                u = u << 6 | (v->ptr[i + k] & 0x3f);
            if (rnd(2)) {
                put(t, (const char *)v->ptr + i, n);
            } else if (u >= 0x10000) {
                u -= 0x10000;
                snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff));
                puts_(t, b);
            } else {
                snprintf(b, sizeof b, "\\u%04x", u);
                puts_(t, b);
            }
            i += n;
        } else {
            put(t, (const char *)&c, 1);
            i++;
        }
    }
    puts_(t, "\"");
}

static void
render_lit(rtext *t, const mlit *l)
{
    char b[64];
    if (l->param >= 0) {
        snprintf(b, sizeof b, ":p%d", l->param);
        puts_(t, b);
        return;
    }
    const shoal_value *v = &l->v;
    switch (v->type) {
    case SHOAL_T_NIL: keyword(t, "NULL"); break;
    case SHOAL_T_BOOL: keyword(t, v->b ? "TRUE" : "FALSE"); break;
    case SHOAL_T_INT:
        snprintf(b, sizeof b, "%lld", (long long)v->i);
        puts_(t, b);
        break;
    case SHOAL_T_DOUBLE:
        snprintf(b, sizeof b, rnd(2) ? "%.17g" : "%.17e", v->d);
        if (!strpbrk(b, ".eE"))
            strcat(b, ".0");
        puts_(t, b);
        break;
    default: render_string(t, v); break;
    }
}

static void render(rtext *t, const mpred *p);

static void
render_in(rtext *t, const mpred *p, bool parens)
{
    if (parens) {
        t->depth++;
        if (t->depth > t->maxdepth)
            t->maxdepth = t->depth;
        puts_(t, "(");
        ws(t, false);
    }
    render(t, p);
    if (parens) {
        ws(t, false);
        puts_(t, ")");
        t->depth--;
    }
}

static void
render(rtext *t, const mpred *p)
{
    if (p->parens) {
        mpred q = *p;
        q.parens = false;
        render_in(t, &q, true);
        return;
    }
    switch (p->type) {
    case P_TRUE:
    case P_FALSE:
        t->preds++;
        keyword(t, p->type == P_TRUE ? "TRUE" : "FALSE");
        return;
    case P_NOT:
        keyword(t, "NOT");
        t->depth++;
        if (t->depth > t->maxdepth)
            t->maxdepth = t->depth;
        ws(t, true);
        render_in(t, p->kids[0], p->kids[0]->type == P_AND || p->kids[0]->type == P_OR);
        t->depth--;
        return;
    case P_AND:
    case P_OR:
        for (int i = 0; i < p->nkids; i++) {
            if (i) {
                ws(t, true);
                keyword(t, p->type == P_AND ? "AND" : "OR");
                ws(t, true);
            }
            const mpred *k = p->kids[i];
            /* AND binds tighter: an OR under an AND needs parentheses,
             * and so does a one-kid chain's kid if the chain is one */
            bool need = (p->type == P_AND && k->type == P_OR && k->nkids > 1) ||
                        ((k->type == P_AND || k->type == P_OR) && k->nkids > 1 && p->type == P_OR &&
                         k->type == P_OR);
            render_in(t, k, need);
        }
        return;
    default: break;
    }
    t->preds++;
    render_name(t, p->field);
    ws(t, true);
    switch (p->type) {
    case P_EXISTS: keyword(t, "EXISTS"); break;
    case P_CONTAINS:
        keyword(t, "CONTAINS");
        ws(t, true);
        render_lit(t, &p->lits[0]);
        break;
    case P_CMP:
        puts_(t, OPS[p->op]);
        ws(t, false);
        render_lit(t, &p->lits[0]);
        break;
    default:
        keyword(t, "IN");
        ws(t, false);
        puts_(t, "(");
        for (int i = 0; i < p->nlits; i++) {
            if (i) {
                ws(t, false);
                puts_(t, ",");
                ws(t, false);
            }
            render_lit(t, &p->lits[i]);
        }
        puts_(t, ")");
        break;
    }
}

/* ---------------------------------------------------------------- terms */

/* Whether doc d satisfies term tm (by the model's own rules). */
static bool
term_holds(const shoal__qterm *tm, const mdoc *d)
{
    int field = -1; /* "_id" is the document id: the field _id has no terms */
    if (tm->field_len != 3 || memcmp(tm->field, "_id", 3) != 0) {
        field = -2;
        for (size_t i = 0; i < NNAMES; i++)
            if (strlen(NAMES[i]) == tm->field_len &&
                memcmp(NAMES[i], tm->field, tm->field_len) == 0)
                field = (int)i;
        if (field == -2)
            return false;
    }
    shoal_value v;
    const mfield *lf;
    bool scalar = m_scalar(d, field, &v, &lf);
    if (tm->kind == SHOAL__QT_EQ) {
        for (size_t k = 0; k < tm->nvals; k++) {
            if (!tm->contains && scalar && m_test(&v, &tm->vals[k], EQ))
                return true;
            if (tm->contains && !scalar)
                for (size_t j = 0; j < lf->nitems; j++)
                    if (m_test(&lf->items[j], &tm->vals[k], EQ))
                        return true;
        }
        return false;
    }
    if (!scalar)
        return false;
    if (tm->has_lo && !m_test(&v, &tm->lo, tm->lo_incl ? GE : GT))
        return false;
    if (tm->has_hi && !m_test(&v, &tm->hi, tm->hi_incl ? LE : LT))
        return false;
    return tm->has_lo || tm->has_hi;
}

static void
check_terms_shape(const shoal__qterm *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind == SHOAL__QT_EQ) {
            CHECK(t[i].nvals >= 1);
            for (size_t k = 0; k < t[i].nvals; k++) {
                CHECK(!m_nan(&t[i].vals[k]));
                CHECK(t[i].contains || t[i].vals[k].type != SHOAL_T_NIL);
                if (k)
                    CHECK(m_order(&t[i].vals[k - 1], &t[i].vals[k]) < 0);
            }
        } else {
            CHECK_EQ(t[i].kind, SHOAL__QT_RANGE);
            CHECK(t[i].has_lo || t[i].has_hi);
        }
    }
}

/* ----------------------------------------------------- the random test */

enum {
    NDOCS = 300
};
static mdoc docs[NDOCS];

static void
test_random(void)
{
    memset(KA, 0xab, 32);
    for (int i = 0; i < NDOCS; i++) {
        rand_doc(&docs[i]);
        prepare_doc(&docs[i], i % 3 == 0 || docs[i].has_long);
    }
    long npreds = check_env_long("SHOAL_QUERY_PREDS", 20000);
    long parsed = 0, toobig = 0, evals = 0, matched = 0, needlist = 0, nterms = 0;
    for (long it = 0; it < npreds && check_failures < 10; it++) {
        narena = 0;
        nparams = 0;
        mpred *p = gen(0);
        rtext *t = malloc(sizeof *t);
        memset(t, 0, sizeof *t);
        ws(t, false);
        render(t, p);
        ws(t, false);
        shoal__query *q = NULL;
        char err[128];
        int rc = shoal__query_parse(t->s, t->n, &q, err, sizeof err);
        bool over = t->n > SHOAL__Q_MAX_TEXT || t->preds > SHOAL__Q_MAX_PREDS ||
                    t->maxdepth > SHOAL__Q_MAX_DEPTH;
        if (over) {
            toobig++;
            CHECK_EQ(rc, SHOAL_ETOOBIG);
            if (rc != SHOAL_ETOOBIG)
                fprintf(stderr, "text: %.*s\nerr: %s\n", (int)t->n, t->s, err);
            shoal__query_free(q);
            free(t);
            continue;
        }
        CHECK_EQ(rc, SHOAL_OK);
        if (rc) {
            fprintf(stderr, "text: %.*s\nerr: %s\n", (int)t->n, t->s, err);
            free(t);
            continue;
        }
        parsed++;
        /* bind: names are p0..pN in order of first appearance */
        CHECK_EQ(shoal__query_nparams(q), nparams);
        for (int i = 0; i < nparams; i++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            CHECK(strcmp(shoal__query_param(q, (size_t)i), name) == 0);
            if (i == 0)
                CHECK_EQ(shoal__query_ready(q, err, sizeof err), SHOAL_EINVAL);
            CHECK_EQ(shoal__query_bind(q, name, &params[i]), SHOAL_OK);
        }
        CHECK_EQ(shoal__query_ready(q, err, sizeof err), SHOAL_OK);
        shoal__qterm *terms;
        size_t nt;
        CHECK_EQ(shoal__query_terms(q, &terms, &nt), SHOAL_OK);
        check_terms_shape(terms, nt);
        nterms += (long)nt;
        for (int k = 0; k < 40; k++) {
            const mdoc *d = &docs[rnd(NDOCS)];
            int want = m_eval(p, d, false), want3 = m_eval(p, d, true);
            shoal__qdoc qc = qdoc_of(d, false), qf = qdoc_of(d, true);
            int got3 = shoal__query_eval(q, &qc), got = shoal__query_eval(q, &qf);
            evals++;
            matched += want;
            needlist += got3 == SHOAL__Q_NEEDLIST;
            CHECK_EQ(got, want);
            CHECK_EQ(got3, want3 < 0 ? SHOAL__Q_NEEDLIST : want3);
            if (got != want || got3 != (want3 < 0 ? SHOAL__Q_NEEDLIST : want3))
                fprintf(stderr, "text: %.*s\ndoc %d\n", (int)t->n, t->s, (int)(d - docs));
            if (want == 1)
                for (size_t i = 0; i < nt; i++) {
                    bool ok = term_holds(&terms[i], d);
                    CHECK(ok);
                    if (!ok)
                        fprintf(stderr, "term %zu unsound: %.*s\n", i, (int)t->n, t->s);
                }
        }
        shoal__free(terms);
        shoal__query_free(q);
        free(t);
    }
    printf("random: %ld predicates parsed, %ld over a bound, %ld evaluations (%ld match, %ld "
           "need the list), %ld terms\n",
           parsed, toobig, evals, matched, needlist, nterms);
    CHECK(parsed > npreds / 2 && toobig > 0 && matched > evals / 20 && needlist > 0 && nterms > 0);
    for (int i = 0; i < NDOCS; i++)
        free_doc(&docs[i]);
}

/* ----------------------------------------------------------- sort order */

static int
sgn(int x)
{
    return (x > 0) - (x < 0);
}

/* Model order of fields: absent/null < ... < scalars < lists. */
static int
m_field_order(const mfield *a, const mfield *b)
{
    bool la = a && a->kind == K_LIST, lb = b && b->kind == K_LIST;
    if (la != lb)
        return la ? 1 : -1;
    if (!la) {
        shoal_value x = a ? a->v : v_nil(), y = b ? b->v : v_nil();
        return m_order(&x, &y);
    }
    for (size_t i = 0;; i++) {
        if (i == a->nitems || i == b->nitems)
            return i == a->nitems && i == b->nitems ? 0 : i == a->nitems ? -1 : 1;
        int c = m_order(&a->items[i], &b->items[i]);
        if (c)
            return c;
    }
}

static void
test_order(void)
{
    enum {
        N = 60
    };
    shoal_value v[N];
    for (int i = 0; i < N; i++)
        v[i] = rand_value();
    v[0] = v_dbl(-0.0);
    v[1] = v_dbl(0.0);
    v[2] = v_int(0);
    v[3] = v_dbl(NAN);
    v[4] = v_dbl(-NAN);
    v[5] = v_dbl(INFINITY);
    v[6] = v_int(9007199254740993LL);
    v[7] = v_dbl(9007199254740992.0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int c = shoal__qvalue_cmp(&v[i], &v[j]);
            CHECK_EQ(sgn(c), m_order(&v[i], &v[j]));
            CHECK_EQ(sgn(c), -sgn(shoal__qvalue_cmp(&v[j], &v[i])));
            for (int k = 0; k < N; k += 7)
                if (c <= 0 && shoal__qvalue_cmp(&v[j], &v[k]) <= 0)
                    CHECK(shoal__qvalue_cmp(&v[i], &v[k]) <= 0);
        }
    CHECK_EQ(shoal__qvalue_cmp(&v[0], &v[1]), 0);
    CHECK_EQ(shoal__qvalue_cmp(&v[3], &v[4]), 0);
    CHECK(shoal__qvalue_cmp(&v[5], &v[3]) < 0);
    CHECK(shoal__qvalue_cmp(&v[6], &v[7]) > 0);

    /* Fields, through views encoded here: one field "f" per document. */
    enum {
        M = 40
    };
    mdoc *d = calloc(M, sizeof *d);
    for (int i = 0; i < M; i++) {
        d[i].id = 0;
        if (i % 8 == 0)
            continue; /* absent */
        d[i].nf = 1;
        mfield *f = &d[i].f[0];
        f->name = 0;
        f->kind = 1 + (int)rnd(3);
        if (f->kind == K_LIST) {
            f->nitems = rnd(4);
            f->items = malloc((f->nitems + 1) * sizeof *f->items);
            for (size_t k = 0; k < f->nitems; k++)
                f->items[k] = rnd(2) ? v_int((int64_t)rnd(3)) : rand_value();
        } else {
            f->v = f->kind == K_CNT ? v_int((int64_t)rnd(5) - 2) : rand_value();
        }
        prepare_doc(&d[i], false);
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) {
            const shoal__qfield *a = d[i].nfull ? &d[i].qfull[0] : NULL;
            const shoal__qfield *b = d[j].nfull ? &d[j].qfull[0] : NULL;
            const mfield *ma = d[i].nf ? &d[i].f[0] : NULL, *mb = d[j].nf ? &d[j].f[0] : NULL;
            int c = shoal__qfield_cmp(a, b);
            CHECK_EQ(sgn(c), m_field_order(ma, mb));
            CHECK_EQ(sgn(c), -sgn(shoal__qfield_cmp(b, a)));
            for (int k = 0; k < M; k += 5) {
                const shoal__qfield *e = d[k].nfull ? &d[k].qfull[0] : NULL;
                if (c <= 0 && shoal__qfield_cmp(b, e) <= 0)
                    CHECK(shoal__qfield_cmp(a, e) <= 0);
            }
        }
    for (int i = 0; i < M; i++)
        if (d[i].nf)
            free_doc(&d[i]);
    free(d);
}

/* ---------------------------------------------------------- index keys */

static int
key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    shoal_value x = v_bin((const char *)a, an), y = v_bin((const char *)b, bn);
    return m_bytes(&x, &y);
}

static shoal_value
rand_key_value(char *buf)
{
    if (rnd(3))
        return rand_value();
    /* long strings / bytes around the truncation point */
    size_t n = SHOAL__QKEY_TRUNC - 3 + rnd(8);
    for (size_t i = 0; i < n; i++)
        buf[i] = "\0ab"[rnd(i < SHOAL__QKEY_TRUNC - 5 ? 1 : 3)];
    if (rnd(2))
        buf[rnd(n)] = 0;
    return rnd(2) ? v_str(buf, n) : v_bin(buf, n);
}

static void
test_qkey(void)
{
    enum {
        N = 150
    };
    static char bufs[N][SHOAL__QKEY_TRUNC + 8];
    static uint8_t keys[N][SHOAL__QKEY_MAX];
    shoal_value v[N];
    size_t kl[N];
    for (int i = 0; i < N; i++) {
        v[i] = rand_key_value(bufs[i]);
        kl[i] = shoal__qkey(&v[i], keys[i]);
        CHECK(kl[i] >= 1 && kl[i] <= SHOAL__QKEY_MAX);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int m = m_order(&v[i], &v[j]);
            int k = sgn(key_cmp(keys[i], kl[i], keys[j], kl[j]));
            if (m <= 0)
                CHECK(k <= 0); /* monotone */
            if (m == 0)
                CHECK(k == 0); /* equal values, equal keys */
            if (k == 0 && m != 0) {
                /* only numbers that round alike, or long shared prefixes */
                bool num = m_class(&v[i]) == 2 && m_class(&v[j]) == 2;
                bool pre = v[i].type == v[j].type && m_class(&v[i]) >= 3 &&
                           v[i].len >= SHOAL__QKEY_TRUNC && v[j].len >= SHOAL__QKEY_TRUNC &&
                           memcmp(v[i].ptr, v[j].ptr, SHOAL__QKEY_TRUNC) == 0;
                if (num) {
                    double a = v[i].type == SHOAL_T_INT ? (double)v[i].i : v[i].d;
                    double b = v[j].type == SHOAL_T_INT ? (double)v[j].i : v[j].d;
                    num = a == b;
                }
                CHECK(num || pre);
            }
            /* self-delimiting: no key is a proper prefix of another */
            if (kl[i] < kl[j])
                CHECK(memcmp(keys[i], keys[j], kl[i]) != 0);
        }
    uint8_t k1[SHOAL__QKEY_MAX], k2[SHOAL__QKEY_MAX];
    shoal_value a = v_int(3), b = v_dbl(3.0), c = v_dbl(-0.0), z = v_int(0);
    CHECK(shoal__qkey(&a, k1) == 9 && shoal__qkey(&b, k2) == 9 && memcmp(k1, k2, 9) == 0);
    CHECK(shoal__qkey(&c, k1) == 9 && shoal__qkey(&z, k2) == 9 && memcmp(k1, k2, 9) == 0);
    shoal_value n1 = v_dbl(NAN), n2 = v_dbl(-NAN), inf = v_dbl(INFINITY);
    CHECK(shoal__qkey(&n1, k1) == 9 && shoal__qkey(&n2, k2) == 9 && memcmp(k1, k2, 9) == 0);
    CHECK(shoal__qkey(&inf, k2) == 9 && memcmp(k2, k1, 9) < 0);
    shoal_value nul = v_nil(), f = v_bool(false), t = v_bool(true);
    CHECK(shoal__qkey(&nul, k1) == 1 && k1[0] == 0x10);
    CHECK(shoal__qkey(&f, k1) == 1 && k1[0] == 0x20);
    CHECK(shoal__qkey(&t, k1) == 1 && k1[0] == 0x21);
    shoal_value s = v_str("a\0", 2);
    CHECK(shoal__qkey(&s, k1) == 6 && memcmp(k1,
                                             "\x40"
                                             "a\x00\xff\x00\x00",
                                             6) == 0);
    shoal_value bb = v_bin("", 0);
    CHECK(shoal__qkey(&bb, k1) == 3 && memcmp(k1, "\x50\x00\x00", 3) == 0);
    char zeros[SHOAL__QKEY_TRUNC + 10];
    memset(zeros, 0, sizeof zeros);
    shoal_value big = v_bin(zeros, sizeof zeros);
    CHECK_EQ(shoal__qkey(&big, k1), SHOAL__QKEY_MAX);
    CHECK(SHOAL__QKEY_LONGLIST > 0x50);
}

/* ----------------------------------------------------------- the parser */

typedef struct perr {
    const char *text;
    int code;
    const char *msg; /* the whole message */
} perr;

static void
test_parse_errors(void)
{
    static const perr T[] = {
        { "", SHOAL_EINVAL, "position 0: query is empty" },
        { " \t\r\n ", SHOAL_EINVAL, "position 0: query is empty" },
        { "x == 1 OR y ==)", SHOAL_EINVAL, "position 14: expected a value after \"==\"" },
        { "a ==", SHOAL_EINVAL, "position 4: expected a value after \"==\"" },
        { "a >= b", SHOAL_EINVAL, "position 5: expected a value after \">=\"" },
        { "a = 1", SHOAL_EINVAL, "position 2: \"=\" is not an operator (use \"==\")" },
        { "a ! 1", SHOAL_EINVAL, "position 2: \"!\" is not an operator (use \"!=\" or NOT)" },
        { "a == \"abc", SHOAL_EINVAL, "position 5: unterminated string" },
        { "a == \"ab\\", SHOAL_EINVAL, "position 5: unterminated string" },
        { "a == \"\\x\"", SHOAL_EINVAL, "position 5: invalid escape in string" },
        { "a == \"\\u12\"", SHOAL_EINVAL, "position 5: invalid escape in string" },
        { "a == \"\\ud800\"", SHOAL_EINVAL, "position 5: lone surrogate in string" },
        { "a == \"\\udc00\\ud800\"", SHOAL_EINVAL, "position 5: lone surrogate in string" },
        { "a == \"\\ud800\\u0041\"", SHOAL_EINVAL, "position 5: lone surrogate in string" },
        { "a == \"\xff\"", SHOAL_EINVAL, "position 5: invalid UTF-8 in string" },
        { "a == \"\xed\xa0\x80\"", SHOAL_EINVAL, "position 5: invalid UTF-8 in string" },
        { "a == \"\t\"", SHOAL_EINVAL, "position 5: control character in string (escape it)" },
        { "a == 9223372036854775808", SHOAL_EINVAL, "position 5: integer out of range" },
        { "a == -9223372036854775809", SHOAL_EINVAL, "position 5: integer out of range" },
        { "a == 99999999999999999999999", SHOAL_EINVAL, "position 5: integer out of range" },
        { "a == 1e999", SHOAL_EINVAL, "position 5: number out of range" },
        { "a == 01", SHOAL_EINVAL, "position 5: invalid number" },
        { "a == 1.", SHOAL_EINVAL, "position 5: invalid number" },
        { "a == .5", SHOAL_EINVAL, "position 5: unexpected character" },
        { "a == 1e", SHOAL_EINVAL, "position 5: invalid number" },
        { "a == -", SHOAL_EINVAL, "position 5: invalid number" },
        { "a == +1", SHOAL_EINVAL, "position 5: unexpected character" },
        { "a == 1x", SHOAL_EINVAL, "position 5: invalid number" },
        { "a == 1.5.2", SHOAL_EINVAL, "position 5: invalid number" },
        { "a == :", SHOAL_EINVAL, "position 5: expected a parameter name after \":\"" },
        { "a == : x", SHOAL_EINVAL, "position 5: expected a parameter name after \":\"" },
        { "a == :1", SHOAL_EINVAL, "position 5: expected a parameter name after \":\"" },
        { "`abc", SHOAL_EINVAL, "position 0: unterminated field name" },
        { "`` == 1", SHOAL_EINVAL, "position 0: invalid field name (1 to 256 bytes of UTF-8)" },
        { "`\xc3` == 1", SHOAL_EINVAL, "position 0: invalid field name (1 to 256 bytes of UTF-8)" },
        { "a", SHOAL_EINVAL, "position 1: expected an operator after the field name" },
        { "a b", SHOAL_EINVAL, "position 2: expected an operator after the field name" },
        { "a == 1 b", SHOAL_EINVAL, "position 7: expected AND, OR or the end of the query" },
        { "a == 1)", SHOAL_EINVAL, "position 6: expected AND, OR or the end of the query" },
        { "(a == 1", SHOAL_EINVAL, "position 7: expected \")\"" },
        { "()", SHOAL_EINVAL, "position 1: expected a predicate" },
        { "a == 1 AND", SHOAL_EINVAL, "position 10: expected a predicate" },
        { "a == 1 OR OR", SHOAL_EINVAL, "position 10: expected a predicate" },
        { "NOT", SHOAL_EINVAL, "position 3: expected a predicate" },
        { "null", SHOAL_EINVAL, "position 0: expected a predicate" },
        { "1 == a", SHOAL_EINVAL, "position 0: expected a predicate" },
        { "and == 1", SHOAL_EINVAL, "position 0: expected a predicate" },
        { "a IN 1", SHOAL_EINVAL, "position 5: expected \"(\" after IN" },
        { "a IN ()", SHOAL_EINVAL, "position 6: expected a value in the IN list" },
        { "a IN (1,)", SHOAL_EINVAL, "position 8: expected a value in the IN list" },
        { "a IN (1 2)", SHOAL_EINVAL, "position 8: expected \",\" or \")\" in the IN list" },
        { "a IN (1", SHOAL_EINVAL, "position 7: expected \",\" or \")\" in the IN list" },
        { "a CONTAINS", SHOAL_EINVAL, "position 10: expected a value after CONTAINS" },
        { "a CONTAINS b", SHOAL_EINVAL, "position 11: expected a value after CONTAINS" },
        { "a == 1 # x", SHOAL_EINVAL, "position 7: unexpected character" },
        { "a\v== 1", SHOAL_EINVAL, "position 1: unexpected character" },
        { "TRUE TRUE", SHOAL_EINVAL, "position 5: expected AND, OR or the end of the query" },
        { "a EXISTS 1", SHOAL_EINVAL, "position 9: expected AND, OR or the end of the query" },
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        char err[200];
        memset(err, 'X', sizeof err);
        shoal__query *q = (shoal__query *)&err; /* must be reset to NULL */
        int rc = shoal__query_parse(T[i].text, strlen(T[i].text), &q, err, sizeof err);
        CHECK_EQ(rc, T[i].code);
        CHECK(q == NULL);
        if (strcmp(err, T[i].msg) != 0) {
            fprintf(stderr, "case %zu (%s): got \"%s\", want \"%s\"\n", i, T[i].text, err,
                    T[i].msg);
            check_failures++;
        }
        CHECK(strchr(err, '\n') == NULL);
        shoal__query_free(q);
    }
    /* Truncated messages stay NUL-terminated; errlen 0 writes nothing. */
    char small[11];
    shoal__query *q;
    CHECK_EQ(shoal__query_parse("a ==", 4, &q, small, sizeof small), SHOAL_EINVAL);
    CHECK(strcmp(small, "position 4") == 0);
    CHECK_EQ(shoal__query_parse("a ==", 4, &q, NULL, 0), SHOAL_EINVAL);
    char one[1] = { 'X' };
    CHECK_EQ(shoal__query_parse("a ==", 4, &q, one, 1), SHOAL_EINVAL);
    CHECK_EQ(one[0], 0);
    /* Not NUL-terminated input: len rules. */
    CHECK_EQ(shoal__query_parse("a == 1 garbage", 6, &q, NULL, 0), SHOAL_OK);
    shoal__query_free(q);
}

static void
expect_toobig(const char *text, size_t len, const char *msg)
{
    char err[200];
    shoal__query *q;
    CHECK_EQ(shoal__query_parse(text, len, &q, err, sizeof err), SHOAL_ETOOBIG);
    if (strcmp(err, msg) != 0) {
        fprintf(stderr, "got \"%s\", want \"%s\"\n", err, msg);
        check_failures++;
    }
}

static void
expect_ok(const char *text, size_t len)
{
    char err[200];
    shoal__query *q;
    int rc = shoal__query_parse(text, len, &q, err, sizeof err);
    CHECK_EQ(rc, SHOAL_OK);
    if (rc)
        fprintf(stderr, "%s\n", err);
    shoal__query_free(q);
}

static void
test_bounds(void)
{
    static char b[8192];
    size_t n = 0;
    /* 64 predicates pass, the 65th is refused at its position */
    for (int i = 0; i < 64; i++)
        n += (size_t)sprintf(b + n, "%sa == 1", i ? " AND " : "");
    expect_ok(b, n);
    size_t at = n + 5;
    n += (size_t)sprintf(b + n, " AND TRUE");
    char msg[100];
    snprintf(msg, sizeof msg, "position %zu: more than 64 predicates", at);
    expect_toobig(b, n, msg);
    expect_ok("a == 1 OR b == 2 AND TRUE OR FALSE AND x EXISTS", 47);

    /* depth: 8 NOTs pass, 9 do not; the same for parentheses and mixes */
    n = 0;
    for (int i = 0; i < 8; i++)
        n += (size_t)sprintf(b + n, "NOT ");
    n += (size_t)sprintf(b + n, "a == 1");
    expect_ok(b, n);
    n = 0;
    for (int i = 0; i < 9; i++)
        n += (size_t)sprintf(b + n, "NOT ");
    n += (size_t)sprintf(b + n, "a == 1");
    expect_toobig(b, n, "position 32: nesting deeper than 8");
    n = (size_t)sprintf(b, "((((((((a == 1))))))))");
    expect_ok(b, n);
    n = (size_t)sprintf(b, "(((((((((a == 1)))))))))");
    expect_toobig(b, n, "position 8: nesting deeper than 8");
    n = (size_t)sprintf(b, "NOT (NOT (NOT (a == 1 AND NOT (b == 2))))");
    expect_ok(b, n);
    n = (size_t)sprintf(b, "NOT (NOT (NOT (a == 1 AND NOT ((b == 2)))))");
    snprintf(msg, sizeof msg, "position %zu: nesting deeper than 8",
             (size_t)(strstr(b, "((b") - b) + 1);
    expect_toobig(b, n, msg);
    /* siblings do not add up */
    n = (size_t)sprintf(b, "(((((((a == 1))))))) AND (((((((b == 1)))))))");
    expect_ok(b, n);

    /* IN: 256 items pass, the 257th is refused at its position */
    n = (size_t)sprintf(b, "a IN (");
    for (int i = 0; i < 256; i++)
        n += (size_t)sprintf(b + n, "%s%d", i ? "," : "", i % 10);
    b[n] = ')';
    expect_ok(b, n + 1);
    at = n + 1;
    n += (size_t)sprintf(b + n, ",7)");
    snprintf(msg, sizeof msg, "position %zu: more than 256 items in an IN list", at);
    expect_toobig(b, n, msg);

    /* text: 4096 bytes pass, 4097 do not */
    memset(b, ' ', 8192);
    memcpy(b, "a == 1", 6);
    expect_ok(b, 4096);
    expect_toobig(b, 4097, "position 4096: query longer than 4096 bytes");
    expect_toobig(b, 8192, "position 4096: query longer than 4096 bytes");
}

static shoal__query *
parse(const char *text)
{
    shoal__query *q = NULL;
    char err[200];
    int rc = shoal__query_parse(text, strlen(text), &q, err, sizeof err);
    CHECK_EQ(rc, SHOAL_OK);
    if (rc)
        fprintf(stderr, "%s: %s\n", text, err);
    return q;
}

static void
test_params(void)
{
    shoal__query *q = parse("a == :x AND b IN (:y, 3, :x) OR c CONTAINS :Xy_1");
    REQUIRE(q);
    CHECK_EQ(shoal__query_nparams(q), 3);
    CHECK(strcmp(shoal__query_param(q, 0), "x") == 0);
    CHECK(strcmp(shoal__query_param(q, 1), "y") == 0);
    CHECK(strcmp(shoal__query_param(q, 2), "Xy_1") == 0);
    char err[64];
    CHECK_EQ(shoal__query_ready(q, err, sizeof err), SHOAL_EINVAL);
    CHECK(strcmp(err, "parameter :x is not bound") == 0);
    char s[] = "hello";
    shoal_value v = v_str(s, 5);
    CHECK_EQ(shoal__query_bind(q, "x", &v), SHOAL_OK);
    s[0] = 'j'; /* the bound value is a copy */
    CHECK_EQ(shoal__query_ready(q, err, sizeof err), SHOAL_EINVAL);
    CHECK(strcmp(err, "parameter :y is not bound") == 0);
    CHECK_EQ(shoal__query_ready(q, err, 5), SHOAL_EINVAL);
    CHECK(strcmp(err, "para") == 0);
    shoal_value i = v_int(3);
    CHECK_EQ(shoal__query_bind(q, "y", &i), SHOAL_OK);
    CHECK_EQ(shoal__query_bind(q, "Xy_1", &i), SHOAL_OK);
    CHECK_EQ(shoal__query_ready(q, err, sizeof err), SHOAL_OK);
    CHECK_EQ(shoal__query_bind(q, "z", &i), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__query_bind(q, "xy_1", &i), SHOAL_ENOTFOUND);
    shoal_value bad = v_str("\xff", 1);
    CHECK_EQ(shoal__query_bind(q, "x", &bad), SHOAL_EINVAL);
    shoal_value badt = { .type = (shoal_type)42 };
    CHECK_EQ(shoal__query_bind(q, "x", &badt), SHOAL_EINVAL);
    /* a failed bind keeps the old value */
    shoal__qfield f = { .name = (const uint8_t *)"a",
                        .name_len = 1,
                        .kind = SHOAL_K_REGISTER,
                        .value = v_str("hello", 5) };
    shoal__qdoc d = { (const uint8_t *)"id", 2, &f, 1 };
    CHECK_EQ(shoal__query_eval(q, &d), 0); /* b is absent, c too */
    shoal__query_free(q);
    q = parse("a == :x");
    REQUIRE(q);
    CHECK_EQ(shoal__query_bind(q, "x", &v), SHOAL_OK); /* v holds "jello" now */
    CHECK_EQ(shoal__query_eval(q, &d), 0);
    CHECK_EQ(shoal__query_bind(q, "x", &f.value), SHOAL_OK); /* rebinding replaces */
    CHECK_EQ(shoal__query_eval(q, &d), 1);
    shoal__query_free(q);
    q = parse("TRUE");
    CHECK_EQ(shoal__query_nparams(q), 0);
    CHECK_EQ(shoal__query_ready(q, NULL, 0), SHOAL_OK);
    CHECK_EQ(shoal__query_bind(q, "x", &i), SHOAL_ENOTFOUND);
    shoal__query_free(q);
}

/* Hand-picked semantics, one document; each line its expected answer. */
static void
test_semantics(void)
{
    static const struct {
        const char *text;
        int want;
    } T[] = {
        { "i == 9007199254740993", 1 },
        { "i == 9007199254740992.0", 0 },
        { "i > 9007199254740992.0", 1 },
        { "i != 9007199254740992.0", 1 },
        { "d == 9007199254740992", 1 },
        { "z == 0", 1 },
        { "z == -0.0", 1 },
        { "z >= 0.0", 1 },
        { "nan == 0.0", 0 },
        { "nan != 1", 0 },
        { "nan != \"x\"", 0 },
        { "nan >= -1e300", 0 },
        { "s == \"h\\u00e9\"", 1 },
        { "s > \"h\"", 1 },
        { "s < \"hz\"", 0 }, /* 0xc3 > 'z' */
        { "s < \"i\"", 1 },
        { "s < 1", 0 },
        { "s != 1", 1 },
        { "b == true", 1 },
        { "b != false", 1 },
        { "b > false", 0 },
        { "b >= true", 0 },
        { "missing == null", 1 },
        { "missing != null", 0 },
        { "missing EXISTS", 0 },
        { "n == NULL", 1 },
        { "n EXISTS", 1 },
        { "n < 1", 0 },
        { "n <= null", 0 },
        { "n != 1", 1 },
        { "c == 5", 1 },
        { "c == 5.0", 1 },
        { "c IN (1, \"5\", 5.0)", 1 },
        { "c CONTAINS 5", 0 },
        { "s CONTAINS \"h\"", 0 },
        { "l CONTAINS 2", 1 },
        { "l CONTAINS 2.0", 1 },
        { "l CONTAINS null", 1 },
        { "l CONTAINS \"x\"", 0 },
        { "l == null", 0 },
        { "l != null", 1 },
        { "l != 1", 1 },
        { "l < 1", 0 },
        { "l IN (1, 2)", 0 },
        { "l EXISTS", 1 },
        { "_id == \"doc\"", 1 },
        { "_id > \"d\"", 1 },
        { "_id EXISTS", 1 },
        { "`_id` == \"field\"", 1 },
        { "`_id` == \"doc\"", 0 },
        { "`AND` == 1", 1 },
        { "`a``b` == 2", 1 },
        { "NOT NOT TRUE", 1 },
        { "true", 1 },
        { "fAlSe or TrUe and not FALSE", 1 },
        { "FALSE AND TRUE OR TRUE", 1 },
        { "FALSE AND (TRUE OR TRUE)", 0 },
        { "s IN (\"a\", \"h\\u00E9\")", 1 },
        { "s == \"h\\u00e9\" AND z==0", 1 },
        { "e == \"\\ud83d\\ude00\"", 1 },
        { "big == 9223372036854775807", 1 },
        { "big < 9223372036854775808.0", 1 },
        { "small == -9223372036854775808", 1 },
        { "small == -9223372036854775808.0", 1 },
        { "small > -1e300", 1 },
        { "inf > 1e300", 1 },
        { "inf == 1e300", 0 },
        /* a value this replica may not read: no comparison holds */
        { "r == null", 0 },
        { "r != null", 0 },
        { "r != 1", 0 },
        { "r > 0", 0 },
        { "r IN (1, null)", 0 },
        { "r EXISTS", 1 },
        { "NOT r == 1", 1 },
    };
    /* fields, sorted by name */
    static const char l_items[] = "\x01\x02\xc0";
    shoal__qfield f[] = {
        { .name = (const uint8_t *)"AND",
          .name_len = 3,
          .kind = SHOAL_K_REGISTER,
          .value = v_int(1) },
        { .name = (const uint8_t *)"_id",
          .name_len = 3,
          .kind = SHOAL_K_REGISTER,
          .value = v_str("field", 5) },
        { .name = (const uint8_t *)"a`b",
          .name_len = 3,
          .kind = SHOAL_K_REGISTER,
          .value = v_int(2) },
        { .name = (const uint8_t *)"b",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = v_bool(true) },
        { .name = (const uint8_t *)"big",
          .name_len = 3,
          .kind = SHOAL_K_REGISTER,
          .value = v_int(INT64_MAX) },
        { .name = (const uint8_t *)"c", .name_len = 1, .kind = SHOAL_K_COUNTER, .value = v_int(5) },
        { .name = (const uint8_t *)"d",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = v_dbl(9007199254740992.0) },
        { .name = (const uint8_t *)"e",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = v_str("\xf0\x9f\x98\x80", 4) },
        { .name = (const uint8_t *)"i",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = v_int(9007199254740993LL) },
        { .name = (const uint8_t *)"inf",
          .name_len = 3,
          .kind = SHOAL_K_REGISTER,
          .value = v_dbl(INFINITY) },
        { .name = (const uint8_t *)"l",
          .name_len = 1,
          .kind = SHOAL_K_LIST,
          .items = (const uint8_t *)l_items,
          .items_len = 3,
          .nitems = 3 },
        { .name = (const uint8_t *)"n", .name_len = 1, .kind = SHOAL_K_REGISTER, .value = v_nil() },
        { .name = (const uint8_t *)"nan",
          .name_len = 3,
          .kind = SHOAL_K_REGISTER,
          .value = v_dbl(NAN) },
        { .name = (const uint8_t *)"r",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = { .type = SHOAL_T_REDACTED } },
        { .name = (const uint8_t *)"s",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = v_str("h\xc3\xa9", 3) },
        { .name = (const uint8_t *)"small",
          .name_len = 5,
          .kind = SHOAL_K_REGISTER,
          .value = v_int(INT64_MIN) },
        { .name = (const uint8_t *)"z",
          .name_len = 1,
          .kind = SHOAL_K_REGISTER,
          .value = v_dbl(-0.0) },
    };
    shoal__qdoc d = { (const uint8_t *)"doc", 3, f, sizeof f / sizeof f[0] };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        shoal__query *q = parse(T[i].text);
        if (!q)
            continue;
        int got = shoal__query_eval(q, &d);
        if (got != T[i].want) {
            fprintf(stderr, "%s: got %d, want %d\n", T[i].text, got, T[i].want);
            check_failures++;
        }
        shoal__query_free(q);
    }
}

/* Terms of fixed queries: shapes, sorting, what is left out. */
static void
test_terms(void)
{
    shoal__qterm *t;
    size_t n;
    shoal__query *q =
        parse("a IN (3, 1, 2.0, 1.0, \"x\", 2) AND NOT b == 1 AND (c >= 5 AND d < \"k\") "
              "AND e CONTAINS null AND _id == \"z\" AND f == null AND g > true "
              "AND h != 1 AND i EXISTS AND (j == 1 OR k == 2)");
    REQUIRE(q);
    CHECK_EQ(shoal__query_terms(q, &t, &n), SHOAL_OK);
    REQUIRE(n == 5);
    CHECK(t[0].kind == SHOAL__QT_EQ && !t[0].contains && t[0].field_len == 1 &&
          t[0].field[0] == 'a');
    CHECK_EQ(t[0].nvals, 4); /* 1, 2.0, 3, "x" */
    shoal_value one = v_int(1);
    CHECK(m_order(&t[0].vals[0], &one) == 0); /* 1 or 1.0: qsort is not stable */
    CHECK(t[0].vals[3].type == SHOAL_T_STR);
    CHECK(t[1].kind == SHOAL__QT_RANGE && t[1].field[0] == 'c' && t[1].has_lo && t[1].lo_incl &&
          !t[1].has_hi && t[1].lo.i == 5);
    CHECK(t[2].kind == SHOAL__QT_RANGE && t[2].field[0] == 'd' && !t[2].has_lo && t[2].has_hi &&
          !t[2].hi_incl && t[2].hi.type == SHOAL_T_STR);
    CHECK(t[3].kind == SHOAL__QT_EQ && t[3].contains && t[3].nvals == 1 &&
          t[3].vals[0].type == SHOAL_T_NIL);
    CHECK(t[4].kind == SHOAL__QT_EQ && t[4].field_len == 3 && memcmp(t[4].field, "_id", 3) == 0 &&
          t[4].nvals == 1); /* the document id */
    shoal__free(t);
    shoal__query_free(q);
    /* a field literally named _id gets no term (it would read as the id) */
    q = parse("`_id` == \"z\" AND `_id` IN (1) AND `_id` > 1 AND `_id` CONTAINS 1");
    CHECK_EQ(shoal__query_terms(q, &t, &n), SHOAL_OK);
    CHECK(n == 0 && t == NULL);
    shoal__query_free(q);
    q = parse("a == 1 OR b == 2");
    CHECK_EQ(shoal__query_terms(q, &t, &n), SHOAL_OK);
    CHECK(n == 0 && t == NULL);
    shoal__query_free(q);
    q = parse("x <= :p");
    shoal_value v = v_dbl(NAN);
    CHECK_EQ(shoal__query_bind(q, "p", &v), SHOAL_OK);
    CHECK_EQ(shoal__query_terms(q, &t, &n), SHOAL_OK);
    CHECK_EQ(n, 0);
    v = v_bin("\x01", 1);
    CHECK_EQ(shoal__query_bind(q, "p", &v), SHOAL_OK);
    CHECK_EQ(shoal__query_terms(q, &t, &n), SHOAL_OK);
    CHECK(n == 1 && t[0].has_hi && t[0].hi_incl && t[0].hi.type == SHOAL_T_BYTES);
    shoal__free(t);
    shoal__query_free(q);
}

/* ---------------------------------------------------------- query views */

static int
view_rc(void (*build)(shoal__mpw *w))
{
    shoal__buf b;
    shoal__buf_init(&b);
    shoal__mpw w;
    shoal__mpw_init(&w, &b);
    build(&w);
    shoal__qfield *f = NULL;
    size_t cap = 0, n = 99;
    bool alive = true;
    int rc = shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive);
    /* every proper prefix is malformed too */
    for (size_t k = 0; rc == SHOAL_OK && k < b.len; k++) {
        size_t n2;
        bool a2;
        CHECK_EQ(shoal__qview_parse(b.p, k, &f, &cap, &n2, &a2), SHOAL_ECORRUPT);
    }
    if (rc == SHOAL_OK) {
        /* and one trailing byte */
        uint8_t z = 0xc0;
        shoal__buf_append(&b, &z, 1);
        size_t n2;
        bool a2;
        CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n2, &a2), SHOAL_ECORRUPT);
    }
    shoal__free(f);
    shoal__buf_free(&b);
    return rc;
}

static void
entry(shoal__mpw *w, const char *name, int kind)
{
    shoal__mpw_str(w, name, strlen(name));
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, (uint64_t)kind);
}

static void
v_ok(shoal__mpw *w)
{
    shoal__mpw_map(w, 4);
    entry(w, "a", 1);
    shoal__mpw_nil(w);
    entry(w, "ab", 2);
    shoal__mpw_int(w, -5);
    entry(w, "b", 3);
    shoal__mpw_array(w, 2);
    shoal__mpw_str(w, "x", 1);
    shoal__mpw_double(w, 1.5);
    entry(w, "c", 4);
    shoal__mpw_uint(w, 257);
}
static void
v_nilview(shoal__mpw *w)
{
    shoal__mpw_nil(w);
}
static void
v_empty(shoal__mpw *w)
{
    shoal__mpw_map(w, 0);
}
static void
v_unsorted(shoal__mpw *w)
{
    shoal__mpw_map(w, 2);
    entry(w, "b", 1);
    shoal__mpw_nil(w);
    entry(w, "a", 1);
    shoal__mpw_nil(w);
}
static void
v_dup(shoal__mpw *w)
{
    shoal__mpw_map(w, 2);
    entry(w, "a", 1);
    shoal__mpw_nil(w);
    entry(w, "a", 1);
    shoal__mpw_nil(w);
}
static void
v_prefix_order(shoal__mpw *w)
{
    shoal__mpw_map(w, 2);
    entry(w, "ab", 1);
    shoal__mpw_nil(w);
    entry(w, "a", 1);
    shoal__mpw_nil(w);
}
static void
v_kind0(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 0);
    shoal__mpw_nil(w);
}
static void
v_kind5(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 5);
    shoal__mpw_nil(w);
}
static void
v_long_small(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 4);
    shoal__mpw_uint(w, 256);
}
static void
v_long_str(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 4);
    shoal__mpw_str(w, "x", 1);
}
static void
v_counter_str(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 2);
    shoal__mpw_str(w, "x", 1);
}
static void
v_reg_array(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 1);
    shoal__mpw_array(w, 0);
}
static void
v_list_nested(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 3);
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 0);
}
static void
v_list_notarray(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "a", 3);
    shoal__mpw_int(w, 1);
}
static void
v_triple(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    shoal__mpw_str(w, "a", 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 1);
    shoal__mpw_nil(w);
    shoal__mpw_nil(w);
}
static void
v_empty_name(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    entry(w, "", 1);
    shoal__mpw_nil(w);
}
static void
v_bin_name(shoal__mpw *w)
{
    shoal__mpw_map(w, 1);
    shoal__mpw_bin(w, "a", 1);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 1);
    shoal__mpw_nil(w);
}
static void
v_array_top(shoal__mpw *w)
{
    shoal__mpw_array(w, 0);
}

static void
test_qview(void)
{
    CHECK_EQ(view_rc(v_ok), SHOAL_OK);
    CHECK_EQ(view_rc(v_nilview), SHOAL_OK);
    CHECK_EQ(view_rc(v_empty), SHOAL_OK);
    void (*bad[])(shoal__mpw *) = { v_unsorted,   v_dup,         v_prefix_order,  v_kind0,
                                    v_kind5,      v_long_small,  v_long_str,      v_counter_str,
                                    v_reg_array,  v_list_nested, v_list_notarray, v_triple,
                                    v_empty_name, v_bin_name,    v_array_top };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = view_rc(bad[i]);
        if (rc != SHOAL_ECORRUPT) {
            fprintf(stderr, "malformed view %zu: rc %d\n", i, rc);
            check_failures++;
        }
    }
    /* the good view, field by field; the array is reused */
    shoal__buf b;
    shoal__buf_init(&b);
    shoal__mpw w;
    shoal__mpw_init(&w, &b);
    v_ok(&w);
    shoal__qfield *f = NULL;
    size_t cap = 0, n;
    bool alive;
    CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive), SHOAL_OK);
    REQUIRE(n == 4 && alive && cap >= 4);
    CHECK(f[0].kind == SHOAL_K_REGISTER && f[0].value.type == SHOAL_T_NIL);
    CHECK(f[1].kind == SHOAL_K_COUNTER && f[1].value.type == SHOAL_T_INT && f[1].value.i == -5);
    CHECK(f[2].kind == SHOAL_K_LIST && f[2].nitems == 2 && !f[2].long_list &&
          f[2].items_len == 2 + 9);
    CHECK(f[2].items >= b.p && f[2].items < b.p + b.len); /* not copied */
    CHECK(f[3].kind == SHOAL_K_LIST && f[3].long_list && f[3].nitems == 257 && !f[3].items);
    shoal__qfield *keep = f;
    CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive), SHOAL_OK);
    CHECK(f == keep); /* no allocation once the array is big enough */
    uint8_t nil = 0xc0;
    CHECK_EQ(shoal__qview_parse(&nil, 1, &f, &cap, &n, &alive), SHOAL_OK);
    CHECK(!alive && n == 0);
    CHECK_EQ(shoal__qview_parse(&nil, 0, &f, &cap, &n, &alive), SHOAL_ECORRUPT);

    /* long lists: answered from the kind, except CONTAINS */
    shoal__qdoc d = { (const uint8_t *)"x", 1, f, 0 };
    CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive), SHOAL_OK);
    d.fields = f;
    d.nfields = n;
    static const struct {
        const char *text;
        int want;
    } T[] = {
        { "c CONTAINS 1", SHOAL__Q_NEEDLIST },
        { "NOT c CONTAINS 1", SHOAL__Q_NEEDLIST },
        { "c CONTAINS 1 OR b CONTAINS 1", SHOAL__Q_NEEDLIST },
        { "c CONTAINS 1 OR b CONTAINS \"x\"", 1 },
        { "c CONTAINS 1 AND b CONTAINS 2", 0 },
        { "c CONTAINS 1 OR TRUE", 1 },
        { "FALSE AND c CONTAINS 1", 0 },
        { "c CONTAINS :nan", 0 },
        { "c EXISTS", 1 },
        { "c == 1", 0 },
        { "c != null", 1 },
        { "c IN (1, 2)", 0 },
        { "c > 1", 0 },
        { "NOT c EXISTS", 0 },
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        shoal__query *q = parse(T[i].text);
        if (!q)
            continue;
        shoal_value nan = v_dbl(NAN);
        (void)shoal__query_bind(q, "nan", &nan);
        CHECK_EQ(shoal__query_eval(q, &d), T[i].want);
        shoal__query_free(q);
    }
    shoal__free(f);
    shoal__buf_free(&b);
}

/* encode_qview over a real document with a list of 300 items, a
 * counter and a register. */
static void
test_encode_qview(void)
{
    memset(KA, 0xab, 32);
    mdoc m;
    memset(&m, 0, sizeof m);
    m.nf = 3;
    m.f[0] = (mfield){ .name = 0, .kind = K_LIST, .nitems = 300 };
    m.f[0].items = malloc(300 * sizeof(shoal_value));
    for (int i = 0; i < 300; i++)
        m.f[0].items[i] = v_int(i);
    m.f[1] = (mfield){ .name = 1, .kind = K_CNT, .v = v_int(-7) };
    m.f[2] = (mfield){ .name = 2, .kind = K_REG, .v = v_str("s", 1) };
    shoal__doc *d = build_doc(&m);
    REQUIRE(d);
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__doc_encode_qview(d, SHOAL__Q_LIST_VIEW, &b), SHOAL_OK);
    /* {"a": [4, 300], "ab": [1, "s"], "b": [2, -7]} */
    static const uint8_t want[] = { 0x83, 0xa1, 'a', 0x92, 4,   0xcd, 0x01, 0x2c, 0xa2, 'a',
                                    'b',  0x92, 1,   0xa1, 's', 0xa1, 'b',  0x92, 2,    0xf9 };
    CHECK(b.len == sizeof want && memcmp(b.p, want, sizeof want) == 0);
    shoal__buf_free(&b);
    CHECK_EQ(shoal__doc_encode_qview(d, SIZE_MAX, &b), SHOAL_OK);
    shoal__qfield *f = NULL;
    size_t cap = 0, n;
    bool alive;
    CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive), SHOAL_OK);
    REQUIRE(n == 3 && alive);
    CHECK(f[0].kind == SHOAL_K_LIST && !f[0].long_list && f[0].nitems == 300);
    shoal__mpr r;
    shoal__mpr_init(&r, f[0].items, f[0].items_len);
    for (int i = 0; i < 300; i++)
        CHECK_EQ(shoal__mpr_int(&r), i);
    CHECK_EQ(shoal__mpr_finish(&r), SHOAL_OK);
    shoal__buf_free(&b);
    /* cap 300 keeps the list, cap 299 does not */
    CHECK_EQ(shoal__doc_encode_qview(d, 300, &b), SHOAL_OK);
    CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive), SHOAL_OK);
    CHECK(n == 3 && f[0].nitems == 300 && !f[0].long_list);
    shoal__buf_free(&b);
    CHECK_EQ(shoal__doc_encode_qview(d, 299, &b), SHOAL_OK);
    CHECK_EQ(shoal__qview_parse(b.p, b.len, &f, &cap, &n, &alive), SHOAL_OK);
    CHECK(n == 3 && f[0].nitems == 300 && f[0].long_list);
    shoal__buf_free(&b);
    /* tombstones are skipped: x0, x1 (deleted), x2 */
    shoal__op ops[4];
    memset(ops, 0, sizeof ops);
    for (int i = 0; i < 4; i++) {
        ops[i].kind = i < 3 ? SHOAL__OP_INS : SHOAL__OP_DEL;
        ops[i].field = (const uint8_t *)"t";
        ops[i].field_len = 1;
        ops[i].value = i < 3 ? v_int(10 + i) : v_nil();
        ops[i].ref = (shoal__ref){ i == 0, i ? 1000 : 0, 0, i == 3 ? 1 : (uint32_t)(i - 1) };
    }
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, KA, 32);
    c.seq = 1;
    c.hlc = 1000;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)"t";
    c.doc_len = 1;
    c.ops = ops;
    c.nops = 4;
    shoal__doc *td = shoal__doc_new();
    REQUIRE(td);
    CHECK_EQ(shoal__doc_apply(td, &c, 0, 4), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_qview(td, SHOAL__Q_LIST_VIEW, &b), SHOAL_OK);
    static const uint8_t tw[] = { 0x81, 0xa1, 't', 0x92, 3, 0x92, 10, 12 };
    CHECK(b.len == sizeof tw && memcmp(b.p, tw, sizeof tw) == 0);
    shoal__buf_free(&b);
    shoal__doc_free(td);
    /* a missing document is nil */
    shoal__doc *e = shoal__doc_new();
    CHECK_EQ(shoal__doc_encode_qview(e, SHOAL__Q_LIST_VIEW, &b), SHOAL_OK);
    CHECK(b.len == 1 && b.p[0] == 0xc0);
    shoal__buf_free(&b);
    shoal__doc_free(e);
    shoal__free(f);
    shoal__doc_free(d);
    free(m.f[0].items);
}

/* Every allocation of parse, bind, terms and qview_parse failing in turn:
 * SHOAL_ENOMEM or success, never a leak (ASan) or a crash. */
static void
test_oom(void)
{
    static const char text[] = "a IN (\"x\", :p, 3) AND (`b c` CONTAINS \"long string here\" OR "
                               "NOT d >= :q) AND e == \"\\u00e9\" AND f < :p";
    bool done = false;
    for (uint64_t n = 1; n < 200 && !done; n++) {
        shoal__alloc_fail_after(n);
        shoal__query *q = NULL;
        char err[64];
        int rc = shoal__query_parse(text, strlen(text), &q, err, sizeof err);
        CHECK(rc == SHOAL_OK || rc == SHOAL_ENOMEM);
        if (rc == SHOAL_OK) {
            shoal_value s = v_str("bound", 5), i = v_int(4);
            int r1 = shoal__query_bind(q, "p", &s), r2 = shoal__query_bind(q, "q", &i);
            CHECK(r1 == SHOAL_OK || r1 == SHOAL_ENOMEM);
            CHECK(r2 == SHOAL_OK || r2 == SHOAL_ENOMEM);
            if (r1 == SHOAL_OK && r2 == SHOAL_OK) {
                shoal__qterm *t = NULL;
                size_t nt = 0;
                int r3 = shoal__query_terms(q, &t, &nt);
                CHECK(r3 == SHOAL_OK || r3 == SHOAL_ENOMEM);
                if (r3 == SHOAL_OK) {
                    CHECK_EQ(nt, 3);
                    done = shoal__alloc_fail_left() > 0; /* nothing failed */
                }
                shoal__free(t);
            }
        }
        shoal__query_free(q);
        shoal__alloc_fail_after(0);
    }
    CHECK(done);
}

int
main(void)
{
    check_seed(20261207);
    RUN(test_parse_errors);
    RUN(test_bounds);
    RUN(test_params);
    RUN(test_semantics);
    RUN(test_terms);
    RUN(test_qview);
    RUN(test_encode_qview);
    RUN(test_order);
    RUN(test_qkey);
    RUN(test_oom);
    RUN(test_random);
    return check_summary();
}
