/*
 * test/fuzz/fuzz_change.c - change bodies from a peer (crdt/change.c),
 * their ops applied to one document (crdt/doc.c, crdt/list.c).
 *
 * Input: up to 16 pieces separated by FUZZ_SEP; each is one byte naming
 * the author (identity byte % 3 of test/vectors) then a change body.
 * Checks: a body that decodes re-encodes to the same bytes (one canonical
 * encoding); the bodies that decode are applied in turn to one document
 * (a refused change ends the run, as a replica would discard that state);
 * the final state's full encoding decodes and re-encodes to the same
 * bytes, and its visible encoding and view are computed without error.
 */
#include <string.h>

#include "crdt.h"
#include "fuzz.h"

static uint8_t pk[FUZZ_NKEYS][32], sk[FUZZ_NKEYS][64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keys(pk, sk);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_piece pc[16];
    size_t n = fuzz_split(data, size, pc, 16);
    shoal__doc *d = shoal__doc_new();
    FUZZ_CHECK(d != NULL);
    bool applied = false;
    for (size_t i = 0; i < n; i++) {
        if (pc[i].n < 1)
            continue;
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, pk[pc[i].p[0] % FUZZ_NKEYS], 32);
        const uint8_t *body = pc[i].p + 1;
        size_t len = pc[i].n - 1;
        if (shoal__change_decode(body, len, &c) != SHOAL_OK)
            continue;
        shoal__buf out;
        shoal__buf_init(&out);
        FUZZ_CHECK(shoal__change_encode(&c, &out) == SHOAL_OK);
        FUZZ_CHECK(out.len == len && memcmp(out.p, body, len) == 0);
        shoal__buf_free(&out);
        int err = shoal__doc_apply(d, &c, 0, c.nops);
        shoal__change_clear(&c);
        if (err) { /* d may hold part of the change: discard it */
            applied = false;
            break;
        }
        applied = true;
    }
    if (applied)
        fuzz_check_doc(d);
    shoal__doc_free(d);
    return 0;
}
