/*
 * test/fuzz/fuzz.h - what the libFuzzer targets of test/fuzz/ share.
 *
 * Each target defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize).  A broken invariant aborts through FUZZ_CHECK, so
 * libFuzzer records the input as a crash like any sanitizer report.
 */
#ifndef SHOAL_TEST_FUZZ_FUZZ_H
#define SHOAL_TEST_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "shoal.h"

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs that hold several items separate them with FUZZ_SEP, four 0xc1
 * bytes: 0xc1 is never a MessagePack first byte nor part of valid UTF-8,
 * so the separator only ever shows inside bin values or fixed-width
 * numbers.  fuzz_split fills at most max pieces (the rest of the input
 * goes into the last one) and returns how many. */
#define FUZZ_SEP     "\xc1\xc1\xc1\xc1"
#define FUZZ_SEP_LEN 4
typedef struct fuzz_piece {
    const uint8_t *p;
    size_t n;
} fuzz_piece;
size_t fuzz_split(const uint8_t *p, size_t n, fuzz_piece *out, size_t max);

/* Abort unless d's full encoding decodes and re-encodes to the same
 * bytes and its visible encoding and view are computed (crdt.h types,
 * declared opaque here). */
struct shoal__doc;
void fuzz_check_doc(const struct shoal__doc *d);

/* The fixed wall clock of every replica a target opens (ms): one hour after
 * the HLCs of test/vectors/, so the vectors are not held back as "from the
 * future" while a fuzzed HLC further ahead is. */
#define FUZZ_NOW_MS (1700000000000ull + 3600000ull)

/* The Ed25519 identities of test/vectors/gen.c (seed byte j of identity i
 * is 0x11 * (i + 1) + j), so that seeds taken from the vectors carry
 * author tables that name real keys. */
enum {
    FUZZ_NKEYS = 3
};
void fuzz_keys(uint8_t pk[FUZZ_NKEYS][32], uint8_t sk[FUZZ_NKEYS][64]);

/* A replica in a fresh temporary directory (non-durable, fixed clock),
 * closed and removed at exit.  fuzz_replica_reset closes it, removes the directory
 * and opens a new empty one. */
shoal_replica *fuzz_replica_open(void);
shoal_replica *fuzz_replica_reset(shoal_replica *r);

#endif /* SHOAL_TEST_FUZZ_FUZZ_H */
