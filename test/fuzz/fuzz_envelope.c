/*
 * test/fuzz/fuzz_envelope.c - one change envelope from a peer or a file
 * (crdt/envelope.c), then its body (crdt/change.c).
 *
 * Input: envelope bytes (possibly followed by more bytes).
 * Checks: parse and open agree on bounds; the envelope lies inside the
 * input and its body inside the envelope; a verified envelope by one of
 * the identities of test/vectors re-seals to the same bytes (Ed25519 is
 * deterministic); a body that decodes re-encodes to the same bytes.
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
    size_t env_len = 0, body_len = 0;
    const uint8_t *body = NULL;
    int perr = shoal__envelope_parse(data, size, &env_len, &body, &body_len);
    size_t olen = 0, obody_len = 0;
    const uint8_t *obody = NULL;
    int oerr = shoal__envelope_open(data, size, &olen, &obody, &obody_len);
    if (perr) {
        FUZZ_CHECK(oerr == perr);
        return 0;
    }
    FUZZ_CHECK(env_len <= size);
    FUZZ_CHECK(env_len == SHOAL__ENV_HEADER + body_len + SHOAL__SIG_BYTES);
    FUZZ_CHECK(body == data + SHOAL__ENV_HEADER);
    FUZZ_CHECK(oerr == SHOAL_OK || oerr == SHOAL_EBADSIG);
    uint8_t id[32];
    shoal__change_id(data, env_len, id);
    const uint8_t *author = shoal__envelope_author(data);
    if (oerr == SHOAL_OK) {
        FUZZ_CHECK(olen == env_len && obody == body && obody_len == body_len);
        for (int i = 0; i < FUZZ_NKEYS; i++) {
            if (memcmp(author, pk[i], 32) != 0)
                continue;
            shoal__buf again;
            shoal__buf_init(&again);
            FUZZ_CHECK(shoal__envelope_seal(body, body_len, pk[i], sk[i], &again) == SHOAL_OK);
            FUZZ_CHECK(again.len == env_len && memcmp(again.p, data, env_len) == 0);
            shoal__buf_free(&again);
        }
    }
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, author, 32);
    if (shoal__change_decode(body, body_len, &c) == SHOAL_OK) {
        shoal__buf out;
        shoal__buf_init(&out);
        FUZZ_CHECK(shoal__change_encode(&c, &out) == SHOAL_OK);
        FUZZ_CHECK(out.len == body_len && memcmp(out.p, body, body_len) == 0);
        shoal__buf_free(&out);
        shoal__change_clear(&c);
    }
    return 0;
}
