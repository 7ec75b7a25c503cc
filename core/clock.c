/*
 * core/clock.c - persistence of the replica's hybrid logical clock.
 *
 * The HLC is the greatest of meta "clock" and the HLC of the last change
 * in the log.  Every tick makes a change (the last one of its commit), so
 * a local commit leaves the clock equal to its last change's HLC and need
 * not write meta; only an import that observed a greater HLC than the
 * change it appended last does.
 */
#include "core.h"

static int
clock_derived(shoal__stxn *t, uint64_t *clock)
{
    shoal__sval v;
    *clock = 0;
    int err = shoal__stxn_meta_get(t, "clock", &v);
    if (err == SHOAL_OK) {
        if (v.len != 8)
            return SHOAL_ECORRUPT;
        *clock = shoal__be64_get(v.p);
    } else if (err != SHOAL_ENOTFOUND) {
        return err;
    }
    shoal__sval env;
    err = shoal__stxn_log_last(t, NULL, &env);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (err)
        return err;
    size_t elen, blen;
    const uint8_t *body;
    err = shoal__envelope_parse(env.p, env.len, &elen, &body, &blen);
    if (err)
        return SHOAL_ECORRUPT;
    uint64_t seq, hlc;
    if (shoal__change_peek(body, blen, &seq, &hlc))
        return SHOAL_ECORRUPT;
    if (hlc > *clock)
        *clock = hlc;
    return SHOAL_OK;
}

int
shoal__clock_load(shoal__stxn *t, uint64_t *clock)
{
    return clock_derived(t, clock);
}

int
shoal__clock_store(shoal__stxn *t, uint64_t clock)
{
    uint64_t have;
    int err = clock_derived(t, &have);
    if (err || clock <= have)
        return err;
    uint8_t b[8];
    shoal__be64_put(b, clock);
    return shoal__stxn_meta_put(t, "clock", b, sizeof b);
}
