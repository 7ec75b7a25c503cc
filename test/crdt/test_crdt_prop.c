/*
 * test/crdt/test_crdt_prop.c - convergence property of the document CRDT.
 *
 * Each run simulates 3 to 5 replicas of one document.  A replica makes
 * local changes the way the store would: ops chosen against its own current
 * state (list refs from its own view, applied op by op as the change is
 * built), epoch = its current epoch, or +1 once it has seen a delete, HLC
 * ahead of everything it has seen (with per-replica clock skew so concurrent
 * ops race both ways).  Changes are delivered to the other replicas in
 * random causal orders, with duplicates that a per-replica seen-set skips.
 * Whenever two replicas have applied the same set of changes, and at the
 * end after full delivery, their full and visible encodings must be
 * byte-identical; the final full state must also survive decode/encode.
 *
 * SHOAL_SEED picks the first seed, SHOAL_PROP_SEEDS the number of runs
 * (seed, seed + 1, ...).  A failure prints the seed to rerun it alone.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crdt.h"

enum {
    MAXR = 5,
    MAXOPS = 8
};

typedef struct rec {
    shoal__change c;
    shoal__op ops[MAXOPS];
    int origin;
    uint64_t vv[MAXR]; /* changes of each origin applied before it */
} rec;

typedef struct replica {
    uint8_t key[32];
    uint8_t others[32 * MAXR]; /* the other keys, sorted: change author table */
    size_t nothers;
    shoal__doc *doc;
    uint64_t hlc;
    uint64_t wall;
    uint64_t skew;
    uint64_t vv[MAXR];
    bool *seen; /* by log index */
} replica;

typedef struct sim {
    int nr;
    replica r[MAXR];
    rec *log; /* every change, in creation order */
    size_t nlog, cap;
    size_t *by_origin[MAXR]; /* log indexes of each origin's changes */
    size_t norigin[MAXR];
    bool failed;
    unsigned del_permille; /* chance of a DELDOC op, per op */
    uint64_t applied, dups, ops;
} sim;

static const char *FIELDS[] = { "a", "b", "list", "n" };
static const char *STRS[] = { "", "x", "hello", "\xc3\xa9t\xc3\xa9", "a longer string value" };

static shoal_value
rand_value(void)
{
    shoal_value v = { .type = SHOAL_T_NIL };
    switch (check_rand_below(7)) {
    case 0: break;
    case 1:
        v.type = SHOAL_T_BOOL;
        v.b = check_rand_below(2);
        break;
    case 2:
        v.type = SHOAL_T_INT;
        v.i = (int64_t)check_rand() >> check_rand_below(64);
        break;
    case 3:
        v.type = SHOAL_T_INT;
        v.i = (int64_t)check_rand_below(100) - 50;
        break;
    case 4: {
        v.type = SHOAL_T_DOUBLE;
        uint64_t bits = check_rand();
        if (check_rand_below(4) == 0)
            bits = 0x7ff8000000000000ull | (bits & 0xff); /* NaN with payload */
        memcpy(&v.d, &bits, 8);
        break;
    }
    case 5: {
        const char *s = STRS[check_rand_below(sizeof STRS / sizeof *STRS)];
        v.type = SHOAL_T_STR;
        v.ptr = (const uint8_t *)s;
        v.len = strlen(s);
        break;
    }
    default:
        v.type = SHOAL_T_BYTES;
        v.ptr = (const uint8_t *)"\0\1\2\3";
        v.len = check_rand_below(5);
        break;
    }
    return v;
}

static rec *
log_push(sim *s)
{
    if (s->nlog == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->log = realloc(s->log, s->cap * sizeof *s->log);
        if (!s->log)
            abort();
        /* Every rec's c.ops points into the rec itself: fix up. */
        for (size_t i = 0; i < s->nlog; i++) {
            s->log[i].c.ops = s->log[i].ops;
        }
    }
    rec *r = &s->log[s->nlog++];
    memset(r, 0, sizeof *r);
    r->c.ops = r->ops;
    return r;
}

/* Author index of key inside a change of replica x. */
static uint32_t
ai_of(const replica *x, const uint8_t *key)
{
    if (memcmp(key, x->key, 32) == 0)
        return 0;
    for (size_t i = 0; i < x->nothers; i++)
        if (memcmp(x->others + 32 * i, key, 32) == 0)
            return (uint32_t)i + 1;
    abort();
}

static void
to_ref(const replica *x, const shoal__eid *id, shoal__ref *ref)
{
    const uint8_t *key = shoal__doc_author_key(x->doc, id->author);
    if (!key)
        abort();
    ref->head = false;
    ref->hlc = id->hlc;
    ref->author = ai_of(x, key);
    ref->index = id->index;
}

/* Replica xi makes one local change against its own state. */
static void
local_change(sim *s, int xi)
{
    replica *x = &s->r[xi];
    rec *r = log_push(s);
    size_t idx = s->nlog - 1;
    shoal__change *c = &r->c;

    x->wall += check_rand_below(4);
    uint64_t h = x->wall + x->skew;
    x->hlc = h > x->hlc ? h : x->hlc + 1;
    memcpy(c->author, x->key, 32);
    c->seq = s->norigin[xi] + 1;
    c->hlc = x->hlc;
    c->coll = (const uint8_t *)"coll";
    c->coll_len = 4;
    c->doc = (const uint8_t *)"doc";
    c->doc_len = 3;
    c->epoch = shoal__doc_epoch(x->doc) + (shoal__doc_deleted(x->doc) ? 1 : 0);
    c->nauthors = x->nothers;
    c->authors = x->others;
    r->origin = xi;
    memcpy(r->vv, x->vv, sizeof r->vv);

    size_t want = 1 + check_rand_below(MAXOPS);
    for (size_t i = 0; i < want; i++) {
        shoal__op *op = &r->ops[i];
        memset(op, 0, sizeof *op);
        const char *f = FIELDS[check_rand_below(4)];
        op->field = (const uint8_t *)f;
        op->field_len = strlen(f);
        unsigned roll = 2 + (unsigned)check_rand_below(98);
        if (check_rand_below(1000) < s->del_permille)
            roll = 0;
        const shoal__list *l = shoal__doc_list(x->doc, op->field, op->field_len);
        size_t n = l ? shoal__list_len(l) : 0;
        if (roll == 0) {
            op->kind = SHOAL__OP_DELDOC;
            op->field = NULL;
            op->field_len = 0;
        } else if (roll < 20) {
            op->kind = SHOAL__OP_SET;
            op->value = rand_value();
        } else if (roll < 25) {
            op->kind = SHOAL__OP_UNSET;
        } else if (roll < 40) {
            op->kind = SHOAL__OP_COUNT;
            int64_t d = (int64_t)check_rand_below(21) - 10;
            if (check_rand_below(20) == 0)
                d = (int64_t)check_rand(); /* exercise wrapping */
            op->delta = d ? d : 1;
        } else if (roll < 70 || n == 0) {
            op->kind = SHOAL__OP_INS;
            op->value = rand_value();
            size_t pos = check_rand_below(n + 1);
            if (pos == 0) {
                op->ref.head = true;
            } else {
                shoal__eid id;
                CHECK_EQ(shoal__list_id_at(l, pos - 1, &id), SHOAL_OK);
                to_ref(x, &id, &op->ref);
            }
        } else {
            op->kind = roll < 82 ? SHOAL__OP_DEL : SHOAL__OP_REP;
            if (op->kind == SHOAL__OP_REP)
                op->value = rand_value();
            shoal__eid id;
            CHECK_EQ(shoal__list_id_at(l, check_rand_below(n), &id), SHOAL_OK);
            to_ref(x, &id, &op->ref);
        }
        c->nops = i + 1;
        int rc = shoal__doc_apply(x->doc, c, i, i + 1);
        if (rc != SHOAL_OK) {
            fprintf(stderr, "local apply of op %zu (kind %d) failed: %d\n", i, op->kind, rc);
            s->failed = true;
        }
        s->ops++;
        if (op->kind == SHOAL__OP_DELDOC)
            break;
    }
    x->seen[idx] = true;
    x->vv[xi]++;
    s->by_origin[xi][s->norigin[xi]++] = idx;
}

/* Deliver change k of origin o to replica xi if causally ready; a change
 * already seen is skipped.  Returns true if it was applied. */
static bool
deliver(sim *s, int xi, int o, size_t k)
{
    replica *x = &s->r[xi];
    if (k >= s->norigin[o])
        return false;
    size_t idx = s->by_origin[o][k];
    if (x->seen[idx]) {
        s->dups++;
        return false;
    }
    const rec *r = &s->log[idx];
    for (int j = 0; j < s->nr; j++)
        if (r->vv[j] > x->vv[j])
            return false;
    if (r->vv[o] != x->vv[o])
        return false;
    int rc = shoal__doc_apply(x->doc, &r->c, 0, r->c.nops);
    if (rc != SHOAL_OK) {
        fprintf(stderr, "remote apply failed: %d\n", rc);
        s->failed = true;
    }
    x->seen[idx] = true;
    x->vv[o]++;
    if (r->c.hlc > x->hlc)
        x->hlc = r->c.hlc;
    s->applied++;
    return true;
}

static bool
same_bytes(shoal__doc *a, shoal__doc *b, bool full)
{
    shoal__buf x, y;
    shoal__buf_init(&x);
    shoal__buf_init(&y);
    int r1 = full ? shoal__doc_encode_full(a, &x) : shoal__doc_encode_visible(a, &x);
    int r2 = full ? shoal__doc_encode_full(b, &y) : shoal__doc_encode_visible(b, &y);
    bool eq = r1 == SHOAL_OK && r2 == SHOAL_OK && x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
    shoal__buf_free(&x);
    shoal__buf_free(&y);
    return eq;
}

/* Replicas that applied the same set must agree. */
static void
compare_equal_sets(sim *s, const char *when)
{
    for (int a = 0; a < s->nr; a++)
        for (int b = a + 1; b < s->nr; b++) {
            if (memcmp(s->r[a].vv, s->r[b].vv, sizeof s->r[a].vv) != 0)
                continue;
            if (!same_bytes(s->r[a].doc, s->r[b].doc, true) ||
                !same_bytes(s->r[a].doc, s->r[b].doc, false)) {
                fprintf(stderr, "%s: replicas %d and %d diverged\n", when, a, b);
                s->failed = true;
            }
        }
}

static bool
run_one(uint64_t seed, size_t nchanges, uint64_t *ops, uint64_t *dups)
{
    sim s;
    memset(&s, 0, sizeof s);
    check_rand_reseed(seed);
    s.nr = 3 + (int)check_rand_below(MAXR - 2);
    /* Some runs never delete, some rarely, some often. */
    static const unsigned del_rates[] = { 0, 2, 5, 20 };
    s.del_permille = del_rates[check_rand_below(4)];
    for (int i = 0; i < s.nr; i++) {
        replica *x = &s.r[i];
        for (int j = 0; j < 32; j++)
            x->key[j] = (uint8_t)check_rand();
        x->doc = shoal__doc_new();
        x->skew = check_rand_below(30);
        x->seen = calloc(nchanges, sizeof *x->seen);
        s.by_origin[i] = calloc(nchanges, sizeof *s.by_origin[i]);
        if (!x->doc || !x->seen || !s.by_origin[i])
            abort();
    }
    for (int i = 0; i < s.nr; i++) {
        replica *x = &s.r[i];
        /* others: every other key, sorted ascending (insertion sort) */
        for (int j = 0; j < s.nr; j++) {
            if (j == i)
                continue;
            size_t k = x->nothers++;
            while (k > 0 && memcmp(x->others + 32 * (k - 1), s.r[j].key, 32) > 0) {
                memcpy(x->others + 32 * k, x->others + 32 * (k - 1), 32);
                k--;
            }
            memcpy(x->others + 32 * k, s.r[j].key, 32);
        }
    }

    /* Random interleaving of local changes and deliveries. */
    size_t step = 0;
    while (s.nlog < nchanges && !s.failed) {
        int xi = (int)check_rand_below((uint64_t)s.nr);
        if (check_rand_below(100) < 35) {
            local_change(&s, xi);
        } else {
            int o = (int)check_rand_below((uint64_t)s.nr);
            if (o != xi) {
                size_t next = s.r[xi].vv[o];
                /* mostly the next one; sometimes an old one (duplicate) */
                size_t k = next;
                if (next > 0 && check_rand_below(5) == 0)
                    k = check_rand_below(next);
                deliver(&s, xi, o, k);
            }
        }
        if (++step % 64 == 0)
            compare_equal_sets(&s, "mid-run");
    }
    /* Full delivery in random order. */
    bool progress = true;
    while (progress && !s.failed) {
        progress = false;
        int start = (int)check_rand_below((uint64_t)s.nr);
        for (int t = 0; t < s.nr; t++) {
            int xi = (start + t) % s.nr;
            int o0 = (int)check_rand_below((uint64_t)s.nr);
            for (int u = 0; u < s.nr; u++) {
                int o = (o0 + u) % s.nr;
                size_t burst = 1 + check_rand_below(4);
                for (size_t b = 0; b < burst; b++)
                    if (deliver(&s, xi, o, s.r[xi].vv[o]))
                        progress = true;
                if (s.r[xi].vv[o] > 0 && check_rand_below(8) == 0)
                    deliver(&s, xi, o, check_rand_below(s.r[xi].vv[o])); /* duplicate */
            }
        }
    }
    for (int i = 0; i < s.nr && !s.failed; i++)
        for (int o = 0; o < s.nr; o++)
            if (s.r[i].vv[o] != s.norigin[o]) {
                fprintf(stderr, "replica %d did not receive everything\n", i);
                s.failed = true;
            }
    if (!s.failed)
        compare_equal_sets(&s, "final");
    if (!s.failed) {
        /* The final state survives a snapshot. */
        shoal__buf a, b;
        shoal__doc *d2 = NULL;
        shoal__buf_init(&a);
        shoal__buf_init(&b);
        if (shoal__doc_encode_full(s.r[0].doc, &a) != SHOAL_OK ||
            shoal__doc_decode_full(a.p, a.len, &d2) != SHOAL_OK ||
            shoal__doc_encode_full(d2, &b) != SHOAL_OK || a.len != b.len ||
            memcmp(a.p, b.p, a.len) != 0) {
            fprintf(stderr, "snapshot round trip failed\n");
            s.failed = true;
        }
        shoal__doc_free(d2);
        shoal__buf_free(&a);
        shoal__buf_free(&b);
    }
    *ops += s.ops;
    *dups += s.dups;
    for (int i = 0; i < s.nr; i++) {
        shoal__doc_free(s.r[i].doc);
        free(s.r[i].seen);
        free(s.by_origin[i]);
    }
    free(s.log);
    return !s.failed;
}

static void
test_convergence(void)
{
    uint64_t base = check_seed(20240601);
    long seeds = check_env_long("SHOAL_PROP_SEEDS", 100);
    long nchanges = check_env_long("SHOAL_PROP_CHANGES", 700);
    uint64_t ops = 0, dups = 0;
    int failures = 0;
    for (long i = 0; i < seeds; i++) {
        uint64_t seed = base + (uint64_t)i;
        if (!run_one(seed, (size_t)nchanges, &ops, &dups)) {
            fprintf(stderr, "FAILED seed %llu (rerun: SHOAL_SEED=%llu SHOAL_PROP_SEEDS=1)\n",
                    (unsigned long long)seed, (unsigned long long)seed);
            check_failures++;
            if (++failures >= 3)
                break;
        }
    }
    printf("%ld runs, %llu local ops, %llu duplicates skipped\n", seeds, (unsigned long long)ops,
           (unsigned long long)dups);
    CHECK(ops > 1000);
    CHECK(dups > 0);
}

int
main(void)
{
    RUN(test_convergence);
    return check_summary();
}
