/*
 * bench/bench_commits.c - `shoal-bench commits`: how many small writes per
 * second shoal commits through the public API, next to what raw LMDB does
 * on the same disk in the same run.
 *
 * Variants (each run in a forked child, round-robin over the runs):
 *   single             N durable commits, each one shoal_txn_set of one int
 *                      field (docs d000..d099 in turn): N changes
 *   single-nondurable  the same with durable = false and one flush at the
 *                      end (what batching fsyncs would give)
 *   batch100           N changes in N/100 durable commits: each txn sets
 *                      one field in 100 documents (one change per document)
 *   lmdb-floor         N durable raw LMDB commits of one small put each,
 *                      same environment flags as shoal's durable mode
 *
 * A durable commit costs at least one fsync of the data and one of the
 * meta page (LMDB), so on a disk the floor dominates; what shoal adds on
 * top (signing, encoding, the materialised document, the version vector)
 * is the difference.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal.h"

#define COLL "bench"

typedef struct cresult {
    double ms;
    double rss_mb;
    uint64_t commits;
    uint64_t changes;
    uint64_t write_bytes; /* handed to write syscalls in the timed phase */
    char err[200];
} cresult;

typedef struct carg {
    const char *variant;
    uint64_t n;
} carg;

static const char *const all_variants[] = {
    "single",
    "single-nondurable",
    "batch100",
    "lmdb-floor",
};
enum {
    NVARIANTS = sizeof all_variants / sizeof all_variants[0]
};

static int
fail(cresult *res, const char *what, shoal_err e, shoal_replica *r)
{
    snprintf(res->err, sizeof res->err, "%s: %s (%s)", what, shoal_strerror(e),
             r ? shoal_replica_errmsg(r) : "");
    return -1;
}

/* n changes, per_commit documents per transaction (one change each). */
static int
run_api(uint64_t n, uint64_t per_commit, bool durable, cresult *res)
{
    char *dir = shoal__bench_mkdtemp("shoal-bench-commits");
    shoal_options *o = NULL;
    shoal_replica *r = NULL;
    shoal_txn *txn = NULL;
    shoal_doc *d = NULL;
    uint64_t i = 0, t0, w0;
    shoal_err e;
    int rc = -1;

    if (!dir) {
        snprintf(res->err, sizeof res->err, "cannot make a temp dir");
        return -1;
    }
    if ((e = shoal_options_new(&o)) != SHOAL_OK || (e = shoal_options_set_durable(o, durable)) ||
        (e = shoal_replica_open(&r, dir, o)) != SHOAL_OK) {
        fail(res, "shoal_replica_open", e, NULL);
        goto out;
    }
    sync();
    w0 = shoal__bench_io_write_bytes();
    t0 = shoal__bench_now_ns();
    while (i < n) {
        uint64_t k;

        if ((e = shoal_txn_begin(r, &txn)) != SHOAL_OK) {
            fail(res, "shoal_txn_begin", e, r);
            goto out;
        }
        for (k = 0; k < per_commit && i < n; k++, i++) {
            char id[32];
            shoal_value v = { .type = SHOAL_T_INT, .i = (int64_t)i };

            snprintf(id, sizeof id, "d%03llu", (unsigned long long)(i % 100));
            if ((e = shoal_txn_set(txn, COLL, id, "v", &v)) != SHOAL_OK) {
                fail(res, "shoal_txn_set", e, r);
                goto out;
            }
        }
        e = shoal_txn_commit(txn);
        txn = NULL;
        if (e != SHOAL_OK) {
            fail(res, "shoal_txn_commit", e, r);
            goto out;
        }
        res->commits++;
        res->changes += k;
    }
    if ((e = shoal_replica_flush(r)) != SHOAL_OK) {
        fail(res, "shoal_replica_flush", e, r);
        goto out;
    }
    res->ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
    res->write_bytes = shoal__bench_io_write_bytes() - w0;
    res->rss_mb = shoal__bench_peak_rss_mb();

    /* Sanity: the last write is visible. */
    if (n > 0) {
        char id[32];
        size_t fi;
        shoal_value v;

        snprintf(id, sizeof id, "d%03llu", (unsigned long long)((n - 1) % 100));
        if ((e = shoal_doc_get(r, COLL, id, &d)) != SHOAL_OK ||
            (e = shoal_doc_field_find(d, "v", &fi)) != SHOAL_OK ||
            (e = shoal_doc_field_value(d, fi, &v)) != SHOAL_OK) {
            fail(res, "reading back", e, r);
            goto out;
        }
        if (v.type != SHOAL_T_INT || v.i != (int64_t)(n - 1)) {
            snprintf(res->err, sizeof res->err, "read back a wrong value");
            goto out;
        }
    }
    rc = 0;
out:
    shoal_doc_free(d);
    shoal_txn_abort(txn);
    shoal_replica_close(r);
    shoal_options_free(o);
    shoal__bench_rmtree(dir);
    free(dir);
    return rc;
}

static int
run_variant(void *argp, void *outp)
{
    carg *a = argp;
    cresult *res = outp;

    memset(res, 0, sizeof *res);
    if (strcmp(a->variant, "single") == 0)
        return run_api(a->n, 1, true, res);
    if (strcmp(a->variant, "single-nondurable") == 0)
        return run_api(a->n, 1, false, res);
    if (strcmp(a->variant, "batch100") == 0)
        return run_api(a->n, 100, true, res);
    if (strcmp(a->variant, "lmdb-floor") == 0) {
        res->ms = shoal__bench_lmdb_floor_ms(a->n, true);
        res->write_bytes = shoal__bench_lmdb_floor_write_bytes;
        res->rss_mb = shoal__bench_peak_rss_mb();
        res->commits = a->n;
        if (res->ms < 0) {
            snprintf(res->err, sizeof res->err, "raw LMDB failed");
            return -1;
        }
        return 0;
    }
    snprintf(res->err, sizeof res->err, "unknown variant");
    return -1;
}

int
shoal__bench_commits(int argc, char **argv)
{
    uint64_t n = 2000;
    size_t runs = 5, i, k;
    cresult *results;
    bool failed[NVARIANTS] = { false };
    char *session;
    int status = 0;

    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--n") == 0) {
            n = (uint64_t)shoal__bench_parse_long("--n", argv[++i]);
        } else if (strcmp(argv[i], "--runs") == 0) {
            runs = (size_t)shoal__bench_parse_long("--runs", argv[++i]);
            if (runs > 64) {
                fprintf(stderr, "shoal-bench commits: --runs is at most 64\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: shoal-bench commits [--n N] [--runs R]\n");
            return 2;
        }
    }
    session = shoal__bench_mkdtemp("shoal-bench");
    results = calloc(NVARIANTS * runs, sizeof *results);
    if (!session || !results) {
        free(session);
        free(results);
        return 1;
    }
    setenv("TMPDIR", session, 1);

    for (k = 0; k < runs; k++) {
        for (i = 0; i < NVARIANTS; i++) {
            carg a = { all_variants[i], n };
            cresult *res = &results[i * runs + k];
            int rc;

            if (failed[i])
                continue;
            rc = shoal__bench_in_child(run_variant, &a, res, sizeof *res);
            if (rc != 0) {
                fprintf(stderr, "shoal-bench commits: %s run %zu failed: %s\n", all_variants[i],
                        k + 1, rc < 0 ? "child crashed" : res->err);
                failed[i] = true;
                status = 1;
                continue;
            }
            fprintf(stderr, "  %s run %zu: %.1f ms, %llu commits, %llu changes\n", all_variants[i],
                    k + 1, res->ms, (unsigned long long)res->commits,
                    (unsigned long long)res->changes);
        }
    }
    for (i = 0; i < NVARIANTS; i++) {
        double ms[64], rss[64], wr[64], med;
        const cresult *rs = &results[i * runs];

        if (failed[i])
            continue;
        for (k = 0; k < runs; k++) {
            ms[k] = rs[k].ms;
            rss[k] = rs[k].rss_mb;
            wr[k] = (double)rs[k].write_bytes / 1048576.0;
        }
        printf("{\"bench\":\"commits\",\"variant\":\"%s\",\"commits\":%llu,\"changes\":%llu,"
               "\"runs_ms\":[",
               all_variants[i], (unsigned long long)rs[0].commits,
               (unsigned long long)rs[0].changes);
        for (k = 0; k < runs; k++)
            printf("%s%.1f", k ? "," : "", ms[k]);
        med = shoal__bench_median(ms, runs);
        printf("],\"ms\":%.1f,\"commits_per_s\":%.0f", med,
               med > 0 ? (double)rs[0].commits * 1000.0 / med : 0.0);
        if (rs[0].changes)
            printf(",\"changes_per_s\":%.0f", med > 0 ? (double)rs[0].changes * 1000.0 / med : 0.0);
        printf(",\"write_mb\":%.1f,\"rss_mb\":%.1f,\"runs\":%zu}\n", shoal__bench_median(wr, runs),
               shoal__bench_median(rss, runs), runs);
    }
    shoal__bench_rmtree(session);
    free(session);
    free(results);
    return status;
}
