/*
 * crdt/hlc.c - hybrid logical clock arithmetic.
 *
 * An HLC is one uint64: 48 bits of milliseconds since the Unix epoch, then
 * a 16-bit logical counter (enough until the year 10889).  Because the
 * counter sits in the low bits, "counter + 1, carrying into the
 * milliseconds on overflow" is plain integer increment, and HLC order is
 * integer order.  The functions are pure: the caller reads the wall clock
 * and passes it in (crdt/ reads no clocks), which makes every case testable.
 *
 * Drift bound: a remote HLC whose millisecond part is more than
 * max_drift_ms ahead of the local wall clock is not acceptable; the caller
 * holds that change back until its time instead of letting it drag the
 * local clock (and every later last-writer-wins race) into the future.
 */
#include "crdt.h"

#define HLC_MS_MAX ((UINT64_C(1) << 48) - 1)

uint64_t
shoal__hlc_make(uint64_t ms, uint16_t logical)
{
    if (ms > HLC_MS_MAX)
        ms = HLC_MS_MAX;
    return ms << 16 | logical;
}

uint64_t
shoal__hlc_tick(uint64_t last, uint64_t wall_ms)
{
    uint64_t wall = shoal__hlc_make(wall_ms, 0);
    if (wall > last)
        return wall;
    /* The wall clock has not moved past last (same ms, or it went back):
     * bump the counter; at 0xffff this carries into the milliseconds. */
    if (last == UINT64_MAX)
        return last; /* the end of time: cannot advance */
    return last + 1;
}

bool
shoal__hlc_acceptable(uint64_t remote, uint64_t wall_ms, uint64_t max_drift_ms)
{
    uint64_t limit = wall_ms + max_drift_ms;
    if (limit < wall_ms)
        limit = UINT64_MAX; /* saturate */
    return SHOAL__HLC_MS(remote) <= limit;
}

uint64_t
shoal__hlc_observe(uint64_t last, uint64_t remote)
{
    return remote > last ? remote : last;
}
