/*
 * test/fuzz/fuzz_import.c - a whole import into a replica (shoal_import:
 * bundle split and signature checks, decoding, causal apply, pending set,
 * equivocation evidence, LMDB store).
 *
 * One replica in a temporary directory (real LMDB, non-durable, fixed
 * clock) is reused across runs and replaced by an empty one every
 * RESET_EVERY runs, so state from earlier inputs takes part (a crash found
 * this way may need the inputs before it to reproduce: libFuzzer's
 * -runs over the whole corpus does that).
 *
 * Input: a mode byte, then
 *   even mode: bundle bytes, imported as they are;
 *   odd mode: up to 64 pieces separated by FUZZ_SEP, each one author byte
 *   (identity % 3 of test/vectors) and a change body; the target seals
 *   each body with that identity and imports them as one bundle, so the
 *   fuzzer reaches past the signature check.
 * Checks: a refused import leaves both digests unchanged; an accepted one
 * imported again applies nothing and leaves both digests unchanged.
 */
#include <string.h>

#include "crdt.h"
#include "fuzz.h"

enum {
    RESET_EVERY = 2000,
    MAX_PIECES = 64
};

static uint8_t pk[FUZZ_NKEYS][32], sk[FUZZ_NKEYS][64];
static shoal_replica *rep;
static unsigned long runs;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keys(pk, sk);
    rep = fuzz_replica_open();
    return 0;
}

static void
digests(uint8_t out[2][32])
{
    FUZZ_CHECK(shoal_digest(rep, false, out[0]) == SHOAL_OK);
    FUZZ_CHECK(shoal_digest(rep, true, out[1]) == SHOAL_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (++runs % RESET_EVERY == 0)
        rep = fuzz_replica_reset(rep);
    shoal__buf bundle;
    shoal__buf_init(&bundle);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        fuzz_piece pc[MAX_PIECES];
        size_t k = fuzz_split(p, n, pc, MAX_PIECES);
        FUZZ_CHECK(shoal__bundle_begin(&bundle) == SHOAL_OK);
        uint32_t count = 0;
        shoal__buf env;
        shoal__buf_init(&env);
        for (size_t i = 0; i < k; i++) {
            if (pc[i].n < 1 || pc[i].n - 1 > SHOAL__MAX_BODY)
                continue;
            int a = pc[i].p[0] % FUZZ_NKEYS;
            env.len = 0;
            FUZZ_CHECK(shoal__envelope_seal(pc[i].p + 1, pc[i].n - 1, pk[a], sk[a], &env) ==
                       SHOAL_OK);
            FUZZ_CHECK(shoal__bundle_add(&bundle, env.p, env.len) == SHOAL_OK);
            count++;
        }
        shoal__buf_free(&env);
        shoal__bundle_finish(&bundle, count);
        p = bundle.p;
        n = bundle.len;
    }

    uint8_t before[2][32], after[2][32];
    digests(before);
    shoal_import_result res;
    memset(&res, 0, sizeof res);
    shoal_err err = shoal_import(rep, p, n, &res);
    digests(after);
    if (err != SHOAL_OK) {
        FUZZ_CHECK(memcmp(before, after, sizeof before) == 0);
    } else {
        shoal_import_result again;
        memset(&again, 0, sizeof again);
        FUZZ_CHECK(shoal_import(rep, p, n, &again) == SHOAL_OK);
        FUZZ_CHECK(again.applied == 0);
        uint8_t third[2][32];
        digests(third);
        FUZZ_CHECK(memcmp(after, third, sizeof after) == 0);
    }
    shoal__buf_free(&bundle);
    return 0;
}
