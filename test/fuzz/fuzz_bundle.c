/*
 * test/fuzz/fuzz_bundle.c - a bundle from a file or a peer
 * (shoal__bundle_split in crdt/envelope.c: header, count, every
 * envelope's bounds and signature).
 *
 * Input: bundle bytes.
 * Checks: on success the spans tile the input after the header exactly,
 * in order, each one an envelope that opens and its disclosures (version
 * 2); rebuilding the bundle from them gives the input bytes.
 */
#include <string.h>

#include "crdt.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shoal__span *sp = NULL;
    size_t count = 0;
    if (shoal__bundle_split(data, size, &sp, &count) != SHOAL_OK) {
        FUZZ_CHECK(sp == NULL || count == 0);
        shoal__free(sp);
        return 0;
    }
    shoal__buf again;
    shoal__buf_init(&again);
    FUZZ_CHECK(shoal__bundle_begin(&again) == SHOAL_OK);
    size_t off = SHOAL__BUNDLE_HEADER;
    for (size_t i = 0; i < count; i++) {
        FUZZ_CHECK(sp[i].off == off && sp[i].len <= size - off);
        size_t env_len = 0, body_len = 0;
        const uint8_t *body;
        FUZZ_CHECK(shoal__envelope_open(data + sp[i].off, sp[i].len, &env_len, &body, &body_len) ==
                   SHOAL_OK);
        FUZZ_CHECK(env_len == sp[i].len);
        FUZZ_CHECK(shoal__bundle_add(&again, data + sp[i].off, sp[i].len) == SHOAL_OK);
        off += sp[i].len;
        shoal__disc_view dv[SHOAL__MAX_SEALS];
        size_t dl = 0, dc = 0;
        FUZZ_CHECK(shoal__disc_scan(data + off, size - off, &dl, dv, &dc) == SHOAL_OK);
        FUZZ_CHECK(dc == 0 || SHOAL__BUNDLE_VERSION(data) == 2);
        for (size_t k = 0; k < dc; k++)
            FUZZ_CHECK(shoal__bundle_add_disc(&again, dv[k].g, dv[k].p, dv[k].n) == SHOAL_OK);
        off += dl;
    }
    FUZZ_CHECK(off == size);
    shoal__bundle_finish(&again, (uint32_t)count);
    if (SHOAL__BUNDLE_VERSION(data) == 2) /* version 2 with no disclosure: the writer's 1 */
        again.p[7] = '2';
    FUZZ_CHECK(again.len == size && memcmp(again.p, data, size) == 0);
    shoal__buf_free(&again);
    shoal__free(sp);
    return 0;
}
