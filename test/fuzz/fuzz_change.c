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
 * A body with seals takes the next piece as a sealed group (its seals
 * entry patched to the piece's commitment, fields mapped to read classes
 * 1 and 2 by their first byte): a group that discloses re-encodes to the
 * same bytes, and the body is unchanged; one that does not leaves the
 * change as it was (REDACTED).
 */
#include <string.h>

#include "crdt.h"
#include "fuzz.h"

static uint8_t pk[FUZZ_NKEYS][32], sk[FUZZ_NKEYS][64];

static uint8_t
fuzz_class(const uint8_t *field, size_t len, void *arg)
{
    (void)arg;
    return len && !(field[0] & 1) ? 2 : 1; /* "cost" (odd first byte): class 1 */
}

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
        if (c.nseals && i + 1 < n && pc[i + 1].n >= 1) {
            /* the next piece: g (1 byte), then the group */
            uint8_t commits[SHOAL__MAX_SEALS * 32];
            memcpy(commits, c.seal_commit, (size_t)c.nseals * 32);
            uint32_t g = pc[i + 1].p[0] % c.nseals;
            const uint8_t *gp = pc[i + 1].p + 1;
            size_t gn = pc[i + 1].n - 1;
            shoal__seal_commit(gp, gn, commits + g * 32);
            const uint8_t *orig = c.seal_commit;
            c.seal_commit = commits;
            int rc = shoal__change_disclose(&c, g, gp, gn, fuzz_class, NULL);
            FUZZ_CHECK(rc == SHOAL_OK || rc == SHOAL_EPROTO);
            if (rc == SHOAL_OK && gn >= 3 + SHOAL__SALT_BYTES) {
                /* canonical: [salt, class, entries], salt after 2 header bytes */
                shoal__buf again;
                shoal__buf_init(&again);
                FUZZ_CHECK(shoal__seal_group(&c, c.seal_class[g], gp + 3, fuzz_class, NULL,
                                             &again) == SHOAL_OK);
                FUZZ_CHECK(again.len == gn && memcmp(again.p, gp, gn) == 0);
                shoal__buf_free(&again);
            }
            c.seal_commit = orig; /* the body's own commitments */
            out.len = 0;
            FUZZ_CHECK(shoal__change_encode(&c, &out) == SHOAL_OK);
            FUZZ_CHECK(out.len == len && memcmp(out.p, body, len) == 0);
            i++;
        }
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
