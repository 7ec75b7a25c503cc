/*
 * bench/bench_list.c - `shoal-bench list`: speed of the in-memory RGA list
 * (crdt/list.c) at a given size.
 *
 * Builds a list of --n elements (default 100,000) by local inserts at
 * random indexes, then times --ops K (default 20,000) operations of each
 * kind, one at a time, each with its own pair of monotonic clock reads:
 *   local-insert   id_at(i - 1) for a random i in [0, len], insert after it
 *                  with a fresh, greatest id (what a local edit does)
 *   local-delete   id_at(i) for a random visible i, delete that id
 *   local-replace  id_at(i), replace with a fresh op id
 *   remote-insert  a random existing element (tombstones too) as ref and an
 *                  id from another author, found through the id index and
 *                  placed by the skip-greater rule
 * Each kind prints one JSON line with the median and 99th percentile of
 * the per-op times in microseconds.  The clock pair costs about 20-40 ns
 * and is included.  With --runs R the whole thing repeats on fresh lists
 * and the run with the lowest median is reported per kind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "crdt.h"

static int
acmp(uint32_t a, uint32_t b, void *ctx)
{
    (void)ctx;
    return a < b ? -1 : a > b ? 1 : 0;
}

static uint64_t
rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static size_t
rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n);
}

enum {
    KINDS = 4
};
static const char *const kind_name[KINDS] = { "local-insert", "local-delete", "local-replace",
                                              "remote-insert" };

/* One run: fills us[kind][0..ops) with per-op microseconds. */
static int
run_once(size_t n, size_t ops, uint64_t seed, double *us[KINDS])
{
    shoal__list *l = shoal__list_new(acmp, NULL);
    if (!l)
        return SHOAL_ENOMEM;
    uint64_t rng = seed;
    uint64_t hlc = 1000;
    uint32_t local = 1, remote = 2;
    shoal_value v;
    memset(&v, 0, sizeof v);
    v.type = SHOAL_T_INT;
    int rc = SHOAL_OK;
    for (size_t k = 0; k < n && rc == SHOAL_OK; k++) {
        size_t i = rng_below(&rng, shoal__list_len(l) + 1);
        shoal__eid ref, id = { ++hlc, local, 0 };
        if (i > 0)
            rc = shoal__list_id_at(l, i - 1, &ref);
        v.i = (int64_t)k;
        if (rc == SHOAL_OK)
            rc = shoal__list_insert(l, i ? &ref : NULL, &id, &v);
    }
    /* Remote refs are drawn from every id inserted so far. */
    shoal__eid *all = malloc((n + 2 * ops) * sizeof *all);
    size_t nall = 0;
    if (!all)
        rc = SHOAL_ENOMEM;
    for (uint64_t h = 1001; rc == SHOAL_OK && h <= hlc; h++)
        all[nall++] = (shoal__eid){ h, local, 0 };

    for (size_t k = 0; k < ops && rc == SHOAL_OK; k++) {
        size_t i = rng_below(&rng, shoal__list_len(l) + 1);
        shoal__eid ref, id = { ++hlc, local, 0 };
        v.i = (int64_t)k;
        uint64_t t0 = shoal__bench_now_ns();
        if (i > 0)
            rc = shoal__list_id_at(l, i - 1, &ref);
        if (rc == SHOAL_OK)
            rc = shoal__list_insert(l, i ? &ref : NULL, &id, &v);
        uint64_t t1 = shoal__bench_now_ns();
        us[0][k] = (double)(t1 - t0) / 1000.0;
        all[nall++] = id;
    }
    for (size_t k = 0; k < ops && rc == SHOAL_OK; k++) {
        size_t i = rng_below(&rng, shoal__list_len(l));
        shoal__eid id;
        uint64_t t0 = shoal__bench_now_ns();
        rc = shoal__list_id_at(l, i, &id);
        if (rc == SHOAL_OK)
            rc = shoal__list_delete(l, &id);
        uint64_t t1 = shoal__bench_now_ns();
        us[1][k] = (double)(t1 - t0) / 1000.0;
    }
    for (size_t k = 0; k < ops && rc == SHOAL_OK; k++) {
        size_t i = rng_below(&rng, shoal__list_len(l));
        shoal__eid id, op = { ++hlc, local, 0 };
        v.i = -(int64_t)k;
        uint64_t t0 = shoal__bench_now_ns();
        rc = shoal__list_id_at(l, i, &id);
        if (rc == SHOAL_OK)
            rc = shoal__list_replace(l, &id, &op, &v);
        uint64_t t1 = shoal__bench_now_ns();
        us[2][k] = (double)(t1 - t0) / 1000.0;
    }
    for (size_t k = 0; k < ops && rc == SHOAL_OK; k++) {
        shoal__eid ref = all[rng_below(&rng, nall)];
        /* A remote author's op, made after it saw ref: greater than ref,
         * and concurrent with the newest local ops. */
        shoal__eid id = { hlc - rng_below(&rng, 64), remote, (uint32_t)k };
        if (id.hlc <= ref.hlc)
            id.hlc = ref.hlc + 1;
        v.i = (int64_t)k;
        uint64_t t0 = shoal__bench_now_ns();
        rc = shoal__list_insert(l, &ref, &id, &v);
        uint64_t t1 = shoal__bench_now_ns();
        us[3][k] = (double)(t1 - t0) / 1000.0;
        all[nall++] = id;
    }
    free(all);
    shoal__list_free(l);
    return rc;
}

static int
usage(void)
{
    fprintf(stderr, "usage: shoal-bench list [--n N] [--ops K] [--runs R]\n");
    return 2;
}

int
shoal__bench_list(int argc, char **argv)
{
    size_t n = 100000, ops = 20000, runs = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        char *end;
        unsigned long long x = strtoull(argv[i + 1], &end, 10);
        if (*end || end == argv[i + 1])
            return usage();
        if (strcmp(argv[i], "--n") == 0)
            n = (size_t)x;
        else if (strcmp(argv[i], "--ops") == 0)
            ops = (size_t)x;
        else if (strcmp(argv[i], "--runs") == 0)
            runs = (size_t)x;
        else
            return usage();
        i++;
    }
    if (ops == 0 || runs == 0 || n == 0)
        return usage();

    double best_med[KINDS], best_p99[KINDS];
    double *us[KINDS];
    for (int k = 0; k < KINDS; k++) {
        best_med[k] = best_p99[k] = -1;
        us[k] = malloc(ops * sizeof(double));
        if (!us[k]) {
            fprintf(stderr, "shoal-bench list: out of memory\n");
            return 1;
        }
    }
    int rc = SHOAL_OK;
    for (size_t r = 0; r < runs && rc == SHOAL_OK; r++) {
        rc = run_once(n, ops, 0x5eed0000u + r, us);
        for (int k = 0; k < KINDS && rc == SHOAL_OK; k++) {
            double med = shoal__bench_median(us[k], ops); /* sorts */
            double p99 = us[k][(ops * 99) / 100 < ops ? (ops * 99) / 100 : ops - 1];
            if (best_med[k] < 0 || med < best_med[k]) {
                best_med[k] = med;
                best_p99[k] = p99;
            }
        }
    }
    for (int k = 0; k < KINDS; k++)
        free(us[k]);
    if (rc != SHOAL_OK) {
        fprintf(stderr, "shoal-bench list: error %d\n", rc);
        return 1;
    }
    for (int k = 0; k < KINDS; k++)
        printf("{\"bench\":\"list\",\"op\":\"%s\",\"n\":%zu,\"ops\":%zu,\"runs\":%zu,"
               "\"median_us\":%.3f,\"p99_us\":%.3f}\n",
               kind_name[k], n, ops, runs, best_med[k], best_p99[k]);
    return 0;
}
