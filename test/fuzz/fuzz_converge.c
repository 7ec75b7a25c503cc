/*
 * test/fuzz/fuzz_converge.c - one set of changes imported in two orders
 * into two replicas must leave them in the same state (DESIGN.md: any two
 * replicas that applied the same changes, in any order, hold
 * byte-identical state), through the whole import path (shoal_import over
 * real LMDB: causal apply, pending set, equivocation, admission rules).
 *
 * Two replicas (temporary directories, non-durable, fixed clock) are kept
 * across runs and replaced together every RESET_EVERY runs.
 * Input: up to 32 pieces separated by FUZZ_SEP, each one author byte
 * (identity % 3 of test/vectors) and a change body; the target seals each.
 * Replica 1 imports them as one bundle.  If it refuses, neither replica
 * takes them.  If it accepts, replica 2 imports the same envelopes one
 * bundle each, in an order shuffled by a hash of the input, then all of
 * them again in that order (so none stays pending only because of the
 * order).  Checks: every one-change import is accepted, and both replicas
 * hold the same visible and full digests and the same pending count.
 */
#include <string.h>

#include "crdt.h"
#include "fuzz.h"

enum {
    RESET_EVERY = 1000,
    MAX_PIECES = 32
};

static uint8_t pk[FUZZ_NKEYS][32], sk[FUZZ_NKEYS][64];
static shoal_replica *r1, *r2;
static unsigned long runs;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keys(pk, sk);
    r1 = fuzz_replica_open();
    r2 = fuzz_replica_open();
    return 0;
}

static void
same_state(void)
{
    uint8_t a[32], b[32];
    for (int full = 0; full < 2; full++) {
        FUZZ_CHECK(shoal_digest(r1, full, a) == SHOAL_OK);
        FUZZ_CHECK(shoal_digest(r2, full, b) == SHOAL_OK);
        if (memcmp(a, b, 32) != 0)
            fprintf(stderr, "converge: %s digests differ\n", full ? "full" : "visible");
        FUZZ_CHECK(memcmp(a, b, 32) == 0);
    }
    uint64_t p1, p2;
    FUZZ_CHECK(shoal_pending_count(r1, &p1) == SHOAL_OK);
    FUZZ_CHECK(shoal_pending_count(r2, &p2) == SHOAL_OK);
    FUZZ_CHECK(p1 == p2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++runs % RESET_EVERY == 0) {
        r1 = fuzz_replica_reset(r1);
        r2 = fuzz_replica_reset(r2);
    }
    fuzz_piece pc[MAX_PIECES];
    size_t k = fuzz_split(data, size, pc, MAX_PIECES);
    shoal__buf envs[MAX_PIECES], bundle;
    size_t n = 0;
    shoal__buf_init(&bundle);
    FUZZ_CHECK(shoal__bundle_begin(&bundle) == SHOAL_OK);
    for (size_t i = 0; i < k; i++) {
        if (pc[i].n < 1 || pc[i].n - 1 > SHOAL__MAX_BODY)
            continue;
        int a = pc[i].p[0] % FUZZ_NKEYS;
        shoal__buf_init(&envs[n]);
        FUZZ_CHECK(shoal__envelope_seal(pc[i].p + 1, pc[i].n - 1, pk[a], sk[a], &envs[n]) ==
                   SHOAL_OK);
        FUZZ_CHECK(shoal__bundle_add(&bundle, envs[n].p, envs[n].len) == SHOAL_OK);
        n++;
    }
    shoal__bundle_finish(&bundle, (uint32_t)n);
    shoal_import_result res;
    if (shoal_import(r1, bundle.p, bundle.len, &res) == SHOAL_OK) {
        /* A shuffle seeded by the input (FNV-1a), so reruns repeat it. */
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < size; i++)
            h = (h ^ data[i]) * 1099511628211ull;
        size_t order[MAX_PIECES];
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = n; i > 1; i--) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = (size_t)((h >> 33) % i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        shoal__buf one;
        shoal__buf_init(&one);
        for (int round = 0; round < 2; round++) {
            for (size_t i = 0; i < n; i++) {
                const shoal__buf *e = &envs[order[i]];
                one.len = 0;
                FUZZ_CHECK(shoal__bundle_begin(&one) == SHOAL_OK);
                FUZZ_CHECK(shoal__bundle_add(&one, e->p, e->len) == SHOAL_OK);
                shoal__bundle_finish(&one, 1);
                shoal_err err = shoal_import(r2, one.p, one.len, &res);
                if (err)
                    fprintf(stderr, "converge: change %zu of %zu alone: %s\n", order[i], n,
                            shoal_strerror(err));
                FUZZ_CHECK(err == SHOAL_OK);
            }
        }
        shoal__buf_free(&one);
        same_state();
    }
    for (size_t i = 0; i < n; i++)
        shoal__buf_free(&envs[i]);
    shoal__buf_free(&bundle);
    return 0;
}
