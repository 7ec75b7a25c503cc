/*
 * test/core/test_prop.c - convergence through the public API.
 *
 * Several replicas (temp dirs, fake clocks with skew) make random edits of
 * every kind on a few shared documents (registers, removals, counters, list
 * inserts/removes/replaces, deletes and re-creates, multi-document
 * transactions) and exchange bundles in random ways: full exports, exports
 * since the receiver's version vector, random subsets of changes in random
 * order with duplicates, and bundles held back and delivered late.  After a
 * final full delivery every replica must hold the same full and visible
 * digest, the same documents and an empty pending set.
 *
 * Seeded: SHOAL_SEED picks the first seed, SHOAL_PROP_SEEDS how many seeds
 * to run, SHOAL_PROP_OPS how many steps per seed.
 */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "crdt.h"
#include "shoal.h"

enum {
    NREP = 3,
    NDOCS = 4,
    MAXHELD = 16
};

typedef struct fclock {
    uint64_t ms;
} fclock;

static uint64_t
fclock_now(void *ctx)
{
    return ((fclock *)ctx)->ms;
}

typedef struct held {
    uint8_t *b;
    size_t n;
    int to;
} held;

typedef struct world {
    char *dir[NREP];
    fclock clk[NREP];
    shoal_replica *r[NREP];
    held h[MAXHELD];
    size_t nheld;
    uint64_t commits, failed, syncs;
} world;

static const char *docs[NDOCS] = { "d0", "d1", "d2", "d3" };
static const char *fields[] = { "a", "b", "c", "n", "l", "m" };
enum {
    NFIELDS = sizeof fields / sizeof fields[0]
};

static shoal_replica *
open_rep(const char *dir, fclock *c)
{
    shoal_options *o;
    if (shoal_options_new(&o))
        return NULL;
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, fclock_now, c);
    shoal_replica *r = NULL;
    if (shoal_replica_open(&r, dir, o))
        r = NULL;
    shoal_options_free(o);
    return r;
}

/* Length of list field f of doc in r (0 if none or not a list). */
static size_t
list_len(shoal_replica *r, const char *doc, const char *f)
{
    shoal_doc *d;
    size_t len = 0, i;
    if (shoal_doc_get(r, "c", doc, &d) != SHOAL_OK)
        return 0;
    if (shoal_doc_field_find(d, f, &i) != SHOAL_OK ||
        shoal_doc_field_list_len(d, i, &len) != SHOAL_OK)
        len = 0;
    shoal_doc_free(d);
    return len;
}

static shoal_value
rand_value(char *buf)
{
    shoal_value v;
    memset(&v, 0, sizeof v);
    switch (check_rand_below(5)) {
    case 0:
        v.type = SHOAL_T_INT;
        v.i = (int64_t)check_rand_below(2000) - 1000;
        break;
    case 1:
        v.type = SHOAL_T_BOOL;
        v.b = check_rand_below(2);
        break;
    case 2:
        v.type = SHOAL_T_DOUBLE;
        v.d = (double)check_rand_below(100) / 8.0;
        break;
    case 3: v.type = SHOAL_T_NIL; break;
    default:
        snprintf(buf, 16, "s%u", (unsigned)check_rand_below(1000));
        v.type = SHOAL_T_STR;
        v.ptr = (const uint8_t *)buf;
        v.len = strlen(buf);
        break;
    }
    return v;
}

/* One random local transaction on replica k. */
static void
local_txn(world *w, int k)
{
    shoal_replica *r = w->r[k];
    shoal_txn *t;
    if (shoal_txn_begin(r, &t) != SHOAL_OK) {
        check_failures++;
        return;
    }
    size_t nedits = 1 + check_rand_below(check_rand_below(4) == 0 ? 6 : 2);
    /* Pending list growth within this txn, per (doc, field 'l'/'m'). */
    size_t extra[NDOCS][2] = { { 0 } };
    size_t base[NDOCS][2];
    bool have[NDOCS][2] = { { false } };
    char sbuf[16];
    for (size_t e = 0; e < nedits; e++) {
        size_t di = check_rand_below(NDOCS);
        const char *doc = docs[di];
        shoal_value v = rand_value(sbuf);
        shoal_err err;
        /* Fields a, b, c are registers, n a counter, l and m lists; one op
         * in twenty goes to any field, to make kind conflicts. */
        bool any = check_rand_below(20) == 0;
        unsigned what = (unsigned)check_rand_below(100);
        const char *f;
        if (what < 4) {
            err = shoal_txn_delete(t, "c", doc);
        } else if (what < 30) {
            f = any ? fields[check_rand_below(NFIELDS)] : fields[check_rand_below(3)];
            err = shoal_txn_set(t, "c", doc, f, &v);
        } else if (what < 36) {
            f = any ? fields[check_rand_below(NFIELDS)] : fields[check_rand_below(3)];
            err = shoal_txn_unset(t, "c", doc, f);
        } else if (what < 55) {
            f = any ? fields[check_rand_below(NFIELDS)] : "n";
            err = shoal_txn_counter_add(t, "c", doc, f, (int64_t)check_rand_below(21) - 10);
        } else {
            int li = check_rand_below(2);
            const char *lf = any ? fields[check_rand_below(NFIELDS)] : (li ? "m" : "l");
            if (any)
                li = -1;
            size_t len;
            if (li >= 0) {
                if (!have[di][li]) {
                    base[di][li] = list_len(r, doc, lf);
                    have[di][li] = true;
                }
                len = base[di][li] + extra[di][li];
            } else {
                len = list_len(r, doc, lf);
            }
            unsigned op = (unsigned)check_rand_below(10);
            if (op < 6 || len == 0) {
                err = shoal_txn_list_insert(t, "c", doc, lf, check_rand_below(len + 1), &v);
                if (li >= 0)
                    extra[di][li]++;
            } else if (op < 8) {
                err = shoal_txn_list_remove(t, "c", doc, lf, check_rand_below(len));
                if (li >= 0) {
                    if (extra[di][li])
                        extra[di][li]--;
                    else
                        base[di][li]--;
                }
            } else {
                err = shoal_txn_list_replace(t, "c", doc, lf, check_rand_below(len), &v);
            }
        }
        if (err != SHOAL_OK) {
            fprintf(stderr, "edit rejected: %s\n", shoal_strerror(err));
            check_failures++;
        }
    }
    shoal_err err = shoal_txn_commit(t);
    if (err == SHOAL_OK) {
        w->commits++;
    } else if (err == SHOAL_EKIND || err == SHOAL_ERANGE) {
        /* A conflicting kind or a list shortened by a delete: expected. */
        w->failed++;
    } else {
        fprintf(stderr, "commit: %s (%s)\n", shoal_strerror(err), shoal_replica_errmsg(r));
        check_failures++;
    }
}

/* A bundle of a random subset of the envelopes of b, shuffled, with
 * duplicates.  Caller frees with shoal__free. */
static uint8_t *
shuffle_subset(const uint8_t *b, size_t n, size_t *out_n)
{
    /* Split without verifying (the import verifies): offsets only. */
    size_t cnt = n >= 12 ? shoal__be32_get(b + 8) : 0, off = 12;
    shoal__span *sp = shoal__calloc(cnt + 1, sizeof *sp);
    *out_n = 0;
    if (!sp)
        return NULL;
    for (size_t i = 0; i < cnt; i++) {
        size_t el, bl;
        const uint8_t *body;
        if (shoal__envelope_parse(b + off, n - off, &el, &body, &bl) != SHOAL_OK) {
            shoal__free(sp);
            return NULL;
        }
        sp[i].off = off;
        sp[i].len = el;
        off += el;
    }
    size_t pick = cnt ? check_rand_below(cnt * 2 + 1) : 0;
    shoal__buf out;
    shoal__buf_init(&out);
    shoal__bundle_begin(&out);
    for (size_t i = 0; i < pick; i++) {
        size_t j = check_rand_below(cnt);
        shoal__bundle_add(&out, b + sp[j].off, sp[j].len);
    }
    shoal__bundle_finish(&out, (uint32_t)pick);
    shoal__free(sp);
    return shoal__buf_take(&out, out_n);
}

static void
deliver(world *w, int to, const uint8_t *b, size_t n)
{
    shoal_import_result res;
    shoal_err err = shoal_import(w->r[to], b, n, &res);
    if (err != SHOAL_OK) {
        fprintf(stderr, "import: %s (%s)\n", shoal_strerror(err), shoal_replica_errmsg(w->r[to]));
        check_failures++;
    }
    if (res.equivocations) {
        fprintf(stderr, "unexpected equivocation\n");
        check_failures++;
    }
    w->syncs++;
}

static void
random_sync(world *w)
{
    int from = (int)check_rand_below(NREP), to = (int)check_rand_below(NREP - 1);
    if (to >= from)
        to++;
    shoal_vv *since = NULL;
    /* Mostly since the receiver's version (as a sync would), sometimes
     * everything (lots of duplicates). */
    if (check_rand_below(10) && shoal_replica_version(w->r[to], &since) != SHOAL_OK) {
        check_failures++;
        return;
    }
    uint8_t *b;
    size_t n;
    shoal_err err = shoal_export(w->r[from], since, &b, &n);
    shoal_vv_free(since);
    if (err) {
        check_failures++;
        return;
    }
    unsigned how = (unsigned)check_rand_below(4);
    if (how == 0) {
        /* Partial, shuffled, with duplicates. */
        size_t sn;
        uint8_t *s = shuffle_subset(b, n, &sn);
        if (s) {
            deliver(w, to, s, sn);
            shoal__free(s);
        }
        shoal_free(b);
    } else if (how == 1 && w->nheld < MAXHELD) {
        /* Delayed: delivered at a random later step. */
        w->h[w->nheld++] = (held){ b, n, to };
    } else {
        deliver(w, to, b, n);
        shoal_free(b);
    }
}

static void
deliver_held(world *w, bool all)
{
    while (w->nheld > 0) {
        size_t i = check_rand_below(w->nheld);
        held h = w->h[i];
        w->h[i] = w->h[--w->nheld];
        deliver(w, h.to, h.b, h.n);
        shoal_free(h.b);
        if (!all)
            break;
    }
}

/* Text of every live document of r, for comparison. */
static char *
dump(shoal_replica *r)
{
    shoal__buf out;
    shoal__buf_init(&out);
    shoal_strlist *ids;
    if (shoal_docs(r, "c", &ids) != SHOAL_OK)
        return NULL;
    char line[512];
    for (size_t k = 0; k < shoal_strlist_count(ids); k++) {
        shoal_doc *d;
        if (shoal_doc_get(r, "c", shoal_strlist_get(ids, k), &d) != SHOAL_OK)
            continue;
        snprintf(line, sizeof line, "doc %s epoch %llu\n", shoal_strlist_get(ids, k),
                 (unsigned long long)shoal_doc_epoch(d));
        shoal__buf_append(&out, line, strlen(line));
        for (size_t i = 0; i < shoal_doc_field_count(d); i++) {
            shoal_kind kind = shoal_doc_field_kind(d, i);
            snprintf(line, sizeof line, " %s kind %d:", shoal_doc_field_name(d, i), kind);
            shoal__buf_append(&out, line, strlen(line));
            size_t n = 1;
            if (kind == SHOAL_K_COUNTER) {
                int64_t c = 0;
                shoal_doc_field_counter(d, i, &c);
                snprintf(line, sizeof line, " %lld", (long long)c);
                shoal__buf_append(&out, line, strlen(line));
                n = 0;
            } else if (kind == SHOAL_K_LIST) {
                shoal_doc_field_list_len(d, i, &n);
            }
            for (size_t j = 0; j < n; j++) {
                shoal_value v;
                memset(&v, 0, sizeof v);
                if (kind == SHOAL_K_LIST)
                    shoal_doc_field_list_item(d, i, j, &v);
                else
                    shoal_doc_field_value(d, i, &v);
                snprintf(line, sizeof line, " [%d %d %lld %a %.*s]", v.type, v.b, (long long)v.i,
                         v.d, (int)(v.type == SHOAL_T_STR ? v.len : 0),
                         v.type == SHOAL_T_STR ? (const char *)v.ptr : "");
                shoal__buf_append(&out, line, strlen(line));
            }
            shoal__buf_append(&out, "\n", 1);
        }
        shoal_doc_free(d);
    }
    shoal_strlist_free(ids);
    shoal__buf_append(&out, "", 1);
    size_t n;
    return (char *)shoal__buf_take(&out, &n);
}

/* The results of a fixed set of queries (find with sorting and a limit,
 * count, an aggregation), as text; NULL on error. */
static char *
query_dump(shoal_replica *r)
{
    static const char *const wheres[] = {
        "a == 1 OR a == \"x\"",
        "l CONTAINS 3 OR m CONTAINS \"y\"",
        "n > 0 AND NOT b EXISTS",
        "a < 5 OR c >= \"m\"",
        "TRUE",
    };
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
#define EMIT(...)                                             \
    do {                                                      \
        int w_ = snprintf(out + len, cap - len, __VA_ARGS__); \
        if (w_ < 0 || (size_t)w_ >= cap - len) {              \
            free(out);                                        \
            return NULL;                                      \
        }                                                     \
        len += (size_t)w_;                                    \
    } while (0)
    for (size_t i = 0; i < sizeof wheres / sizeof wheres[0]; i++) {
        shoal_query *q = NULL;
        if (shoal_query_new(r, "c", wheres[i], &q) != SHOAL_OK ||
            shoal_query_sort(q, "a", true) != SHOAL_OK ||
            shoal_query_sort(q, "n", false) != SHOAL_OK) {
            shoal_query_free(q);
            free(out);
            return NULL;
        }
        shoal_query_limit(q, 12, 1);
        shoal_rows *rows = NULL;
        uint64_t n = 0;
        shoal_groups *g = NULL;
        const char *group[] = { "a" };
        shoal_aggregate_spec spec[] = { { SHOAL_AGG_COUNT, NULL },
                                        { SHOAL_AGG_SUM, "n" },
                                        { SHOAL_AGG_MAX, "b" } };
        if (shoal_find(r, q, &rows) != SHOAL_OK || shoal_count(r, q, &n) != SHOAL_OK ||
            shoal_aggregate(r, q, group, 1, spec, 3, &g) != SHOAL_OK) {
            shoal_rows_free(rows);
            shoal_query_free(q);
            free(out);
            return NULL;
        }
        EMIT("%s: %llu:", wheres[i], (unsigned long long)n);
        for (size_t j = 0; j < shoal_rows_count(rows); j++)
            EMIT(" %s/%zu", shoal_rows_id(rows, j), shoal_doc_field_count(shoal_rows_doc(rows, j)));
        for (size_t j = 0; j < shoal_groups_count(g); j++) {
            shoal_value k, c, sum, mx;
            shoal_groups_key(g, j, 0, &k);
            shoal_groups_value(g, j, 0, &c);
            shoal_groups_value(g, j, 1, &sum);
            shoal_groups_value(g, j, 2, &mx);
            EMIT(" [%d %lld %lld %d %lld %d %d]", k.type, (long long)k.i, (long long)c.i, sum.type,
                 (long long)sum.i, mx.type, (int)mx.len);
        }
        EMIT("\n");
        shoal_groups_free(g);
        shoal_rows_free(rows);
        shoal_query_free(q);
    }
#undef EMIT
    return out;
}

static void
run_seed(uint64_t seed, long steps)
{
    check_rand_reseed(seed);
    world w;
    memset(&w, 0, sizeof w);
    uint64_t t0 = 1700000000000ull;
    for (int k = 0; k < NREP; k++) {
        w.dir[k] = check_tmpdir("prop");
        w.clk[k].ms = t0 + check_rand_below(4000);
        if (!check_seed_identity(w.dir[k])) {
            check_failures++;
            return;
        }
        w.r[k] = open_rep(w.dir[k], &w.clk[k]);
        if (!w.r[k]) {
            check_failures++;
            return;
        }
    }
    /* Replicas differ in their indexes; their query results must not. */
    CHECK_EQ(shoal_index_add(w.r[1], "c", "a"), SHOAL_OK);
    CHECK_EQ(shoal_index_add(w.r[1], "c", "l"), SHOAL_OK);
    CHECK_EQ(shoal_index_add(w.r[2 % NREP], "c", "n"), SHOAL_OK);
    for (long s = 0; s < steps; s++) {
        for (int k = 0; k < NREP; k++)
            w.clk[k].ms += check_rand_below(30);
        unsigned what = (unsigned)check_rand_below(100);
        if (what < 65) {
            local_txn(&w, (int)check_rand_below(NREP));
        } else if (what < 93) {
            random_sync(&w);
        } else if (what < 97) {
            deliver_held(&w, false);
        } else if (what < 98) {
            /* A clock jumps back (HLCs must still increase). */
            int k = (int)check_rand_below(NREP);
            w.clk[k].ms -= check_rand_below(3000);
        } else if (what < 99) {
            /* Reopen a replica. */
            int k = (int)check_rand_below(NREP);
            shoal_replica_close(w.r[k]);
            w.r[k] = open_rep(w.dir[k], &w.clk[k]);
            if (!w.r[k]) {
                check_failures++;
                return;
            }
        } else {
            /* A clock runs ahead beyond the drift bound for a while: its
             * changes wait at the others until their time. */
            int k = (int)check_rand_below(NREP);
            w.clk[k].ms += 70000;
        }
    }
    /* Full delivery, with every clock past every HLC made so far. */
    deliver_held(&w, true);
    uint64_t maxc = 0;
    for (int k = 0; k < NREP; k++)
        if (w.clk[k].ms > maxc)
            maxc = w.clk[k].ms;
    for (int k = 0; k < NREP; k++)
        w.clk[k].ms = maxc + 1000;
    for (int round = 0; round < 2; round++)
        for (int from = 0; from < NREP; from++)
            for (int to = 0; to < NREP; to++) {
                if (from == to)
                    continue;
                uint8_t *b;
                size_t n;
                shoal_vv *since = NULL;
                if (shoal_replica_version(w.r[to], &since) != SHOAL_OK ||
                    shoal_export(w.r[from], since, &b, &n) != SHOAL_OK) {
                    shoal_vv_free(since);
                    check_failures++;
                    continue;
                }
                shoal_vv_free(since);
                deliver(&w, to, b, n);
                shoal_free(b);
            }
    uint8_t dv[NREP][32], df[NREP][32];
    char *text[NREP];
    for (int k = 0; k < NREP; k++) {
        uint64_t pc = 1;
        CHECK(shoal_pending_count(w.r[k], &pc) == SHOAL_OK && pc == 0);
        CHECK_EQ(shoal_digest(w.r[k], false, dv[k]), SHOAL_OK);
        CHECK_EQ(shoal_digest(w.r[k], true, df[k]), SHOAL_OK);
        text[k] = dump(w.r[k]);
        CHECK(text[k] != NULL);
    }
    /* The same queries give the same rows and groups everywhere, and every
     * replica's views and indexes agree with its documents. */
    char *qtext[NREP];
    for (int k = 0; k < NREP; k++) {
        qtext[k] = query_dump(w.r[k]);
        CHECK(qtext[k] != NULL);
        shoal_check_stats cs;
        CHECK_EQ(shoal_replica_check(w.r[k], NULL, NULL, &cs), SHOAL_OK);
    }
    for (int k = 1; k < NREP; k++)
        if (qtext[0] && qtext[k] && strcmp(qtext[0], qtext[k]) != 0) {
            fprintf(stderr, "seed %llu: queries on replica 0 and %d differ:\n%s\n---\n%s\n",
                    (unsigned long long)seed, k, qtext[0], qtext[k]);
            check_failures++;
        }
    for (int k = 0; k < NREP; k++)
        free(qtext[k]);
    for (int k = 1; k < NREP; k++) {
        CHECK(memcmp(dv[0], dv[k], 32) == 0);
        CHECK(memcmp(df[0], df[k], 32) == 0);
        if (text[0] && text[k] && strcmp(text[0], text[k]) != 0) {
            fprintf(stderr, "seed %llu: replica 0 and %d differ:\n%s\n---\n%s\n",
                    (unsigned long long)seed, k, text[0], text[k]);
            check_failures++;
        }
    }
    /* Restart one replica: the same state comes back from disk. */
    shoal_replica_close(w.r[0]);
    w.r[0] = open_rep(w.dir[0], &w.clk[0]);
    uint8_t again[32];
    CHECK(w.r[0] && shoal_digest(w.r[0], true, again) == SHOAL_OK && memcmp(again, df[0], 32) == 0);
    if (check_failures)
        fprintf(stderr, "seed %llu failed (%llu commits, %llu rejected, %llu syncs)\n",
                (unsigned long long)seed, (unsigned long long)w.commits,
                (unsigned long long)w.failed, (unsigned long long)w.syncs);
    else
        printf("seed %llu: %llu commits (%llu rejected), %llu syncs\n", (unsigned long long)seed,
               (unsigned long long)w.commits, (unsigned long long)w.failed,
               (unsigned long long)w.syncs);
    for (int k = 0; k < NREP; k++) {
        free(text[k]);
        shoal_replica_close(w.r[k]);
        check_rmtree(w.dir[k]);
        free(w.dir[k]);
    }
}

static uint64_t first_seed;

static void
test_convergence(void)
{
    long seeds = check_env_long("SHOAL_PROP_SEEDS", 6);
    long steps = check_env_long("SHOAL_PROP_OPS", 800);
    for (long i = 0; i < seeds; i++)
        run_seed(first_seed + (uint64_t)i, steps);
}

int
main(void)
{
    first_seed = check_seed(20240601);
    RUN(test_convergence);
    return check_summary();
}
