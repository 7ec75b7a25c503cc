/*
 * test/fuzz/fuzz_state.c - a stored document state (the full-state
 * encoding of docs/state-format.md, crdt/doc.c), read back from a file
 * that may be damaged, then changed.
 *
 * Input: the state bytes, then up to 15 pieces separated by FUZZ_SEP, each
 * one author byte (identity % 3 of test/vectors) and a change body.
 * Checks: a state that decodes re-encodes to the same bytes and yields its
 * visible encoding and view; the changes that decode are applied to it in
 * turn (a refused one ends the run) and the result passes fuzz_check_doc.
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
    shoal__doc *d = NULL;
    if (shoal__doc_decode_full(pc[0].p, pc[0].n, &d) != SHOAL_OK)
        return 0;
    FUZZ_CHECK(d != NULL);
    shoal__buf out;
    shoal__buf_init(&out);
    FUZZ_CHECK(shoal__doc_encode_full(d, &out) == SHOAL_OK);
    FUZZ_CHECK(out.len == pc[0].n && memcmp(out.p, pc[0].p, out.len) == 0);
    shoal__buf_free(&out);
    fuzz_check_doc(d);

    bool ok = true;
    for (size_t i = 1; i < n; i++) {
        if (pc[i].n < 1)
            continue;
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, pk[pc[i].p[0] % FUZZ_NKEYS], 32);
        if (shoal__change_decode(pc[i].p + 1, pc[i].n - 1, &c) != SHOAL_OK)
            continue;
        int err = shoal__doc_apply(d, &c, 0, c.nops);
        shoal__change_clear(&c);
        if (err) { /* d may hold part of the change: discard it */
            ok = false;
            break;
        }
    }
    if (ok && n > 1)
        fuzz_check_doc(d);
    shoal__doc_free(d);
    return 0;
}
