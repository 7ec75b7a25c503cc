/*
 * test/support/replica.c - replica helpers the core tests share.
 */
#include "replica.h"

#include <sodium.h>
#include <string.h>

shoal_replica *
check_replica_open(const char *dir, uint64_t (*now_ms)(void *ctx), void *ctx)
{
    shoal_options *o;
    if (shoal_options_new(&o) != SHOAL_OK)
        return NULL;
    shoal_options_set_durable(o, false);
    if (now_ms)
        shoal_options_set_clock(o, now_ms, ctx);
    shoal_replica *r = NULL;
    if (shoal_replica_open(&r, dir, o) != SHOAL_OK)
        r = NULL;
    shoal_options_free(o);
    return r;
}

bool
check_snap_take(shoal_replica *r, check_snap *s)
{
    memset(s, 0, sizeof *s);
    shoal_vv *vv;
    if (shoal_digest(r, false, s->vis) || shoal_digest(r, true, s->full) ||
        shoal_pending_count(r, &s->pending) || shoal_replica_version(r, &vv))
        return false;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof s->vvsum);
    for (size_t i = 0; i < shoal_vv_count(vv); i++) {
        const uint8_t *a;
        uint64_t seq;
        shoal_vv_entry(vv, i, &a, &seq);
        crypto_generichash_update(&st, a, SHOAL_KEY_BYTES);
        crypto_generichash_update(&st, (const uint8_t *)&seq, sizeof seq);
    }
    crypto_generichash_final(&st, s->vvsum, sizeof s->vvsum);
    shoal_vv_free(vv);
    return true;
}

bool
check_snap_same(const check_snap *a, const check_snap *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}
