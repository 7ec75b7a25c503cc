/*
 * core/seals.c - sealed groups leaving this replica: the disclosure
 * records that follow an envelope in a batch or a bundle (docs/format.md
 * "Disclosures"), for the groups this replica holds and the receiver may
 * read (docs/permissions.md "Sealed fields", shoal__reader_groups).
 */
#include <string.h>

#include "core.h"

typedef struct sapp {
    uint64_t groups;
    shoal__buf *out;
} sapp;

static int
seal_cb(uint8_t g, const shoal__sval *v, void *arg)
{
    sapp *x = arg;
    if (g >= 64 || !(x->groups >> g & 1))
        return SHOAL_OK;
    return shoal__disc_append(x->out, g, v->p, v->len);
}

int
shoal__seals_append(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                    size_t env_len, uint64_t groups, shoal__buf *out)
{
    if (!shoal__envelope_sealed(env, env_len) || groups == 0)
        return SHOAL_OK;
    sapp x = { groups, out };
    return shoal__stxn_seal_scan(t, cid, seal_cb, &x);
}
