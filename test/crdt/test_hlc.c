/*
 * test/crdt/test_hlc.c - hybrid logical clock arithmetic and op id order.
 */
#include "crdt.h"
#include "check.h"

static void
test_make(void)
{
    uint64_t h = shoal__hlc_make(1234567, 42);
    CHECK_EQ(SHOAL__HLC_MS(h), 1234567);
    CHECK_EQ(SHOAL__HLC_LOGICAL(h), 42);
    CHECK(shoal__hlc_make(5, 0xffff) < shoal__hlc_make(6, 0));
    /* The millisecond part has 48 bits: larger values saturate instead of
     * wrapping into a time in the past. */
    uint64_t top = shoal__hlc_make(UINT64_C(1) << 48, 7);
    CHECK_EQ(SHOAL__HLC_MS(top), (UINT64_C(1) << 48) - 1);
    CHECK(top > shoal__hlc_make(UINT64_C(1) << 47, 0));
}

static void
test_tick_increases(void)
{
    /* Wall clock ahead: jump to it with counter 0. */
    uint64_t h = shoal__hlc_tick(0, 1000);
    CHECK_EQ(h, shoal__hlc_make(1000, 0));
    /* Same millisecond: counter goes up, strictly. */
    uint64_t prev = h;
    for (int i = 0; i < 1000; i++) {
        uint64_t next = shoal__hlc_tick(prev, 1000);
        CHECK(next > prev);
        CHECK_EQ(SHOAL__HLC_MS(next), 1000);
        prev = next;
    }
    CHECK_EQ(SHOAL__HLC_LOGICAL(prev), 1000);
    /* Wall clock moves on: counter resets. */
    h = shoal__hlc_tick(prev, 1001);
    CHECK_EQ(h, shoal__hlc_make(1001, 0));
    /* A long sequence with a jittery clock stays strictly increasing. */
    check_rand_reseed(7);
    prev = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t wall = 5000 + check_rand_below(20);
        uint64_t next = shoal__hlc_tick(prev, wall);
        CHECK(next > prev);
        CHECK(SHOAL__HLC_MS(next) >= wall);
        prev = next;
    }
}

static void
test_tick_clock_backwards(void)
{
    uint64_t h = shoal__hlc_tick(0, 50000);
    uint64_t back = shoal__hlc_tick(h, 40000); /* clock stepped back 10 s */
    CHECK(back > h);
    CHECK_EQ(SHOAL__HLC_MS(back), 50000);
    CHECK_EQ(SHOAL__HLC_LOGICAL(back), 1);
    /* Clock at 0 (unset RTC): still increasing. */
    CHECK(shoal__hlc_tick(back, 0) > back);
}

static void
test_tick_counter_overflow(void)
{
    uint64_t h = shoal__hlc_make(777, 0xfffe);
    uint64_t a = shoal__hlc_tick(h, 777);
    CHECK_EQ(SHOAL__HLC_MS(a), 777);
    CHECK_EQ(SHOAL__HLC_LOGICAL(a), 0xffff);
    uint64_t b = shoal__hlc_tick(a, 777);
    CHECK(b > a);
    CHECK_EQ(SHOAL__HLC_MS(b), 778);
    CHECK_EQ(SHOAL__HLC_LOGICAL(b), 0);
    /* Then the real clock reaching 778 must still move forward. */
    uint64_t c = shoal__hlc_tick(b, 778);
    CHECK(c > b);
    CHECK_EQ(SHOAL__HLC_MS(c), 778);
    CHECK_EQ(SHOAL__HLC_LOGICAL(c), 1);
    /* End of time does not wrap to 0. */
    CHECK_EQ(shoal__hlc_tick(UINT64_MAX, 1), UINT64_MAX);
}

static void
test_acceptable_edge(void)
{
    uint64_t wall = 1000000, drift = 60000;
    CHECK(shoal__hlc_acceptable(shoal__hlc_make(wall, 0), wall, drift));
    CHECK(shoal__hlc_acceptable(shoal__hlc_make(0, 0), wall, drift));
    /* Exactly max_drift ahead, any counter: still fine. */
    CHECK(shoal__hlc_acceptable(shoal__hlc_make(wall + drift, 0), wall, drift));
    CHECK(shoal__hlc_acceptable(shoal__hlc_make(wall + drift, 0xffff), wall, drift));
    /* One millisecond further: held back. */
    CHECK(!shoal__hlc_acceptable(shoal__hlc_make(wall + drift + 1, 0), wall, drift));
    CHECK(!shoal__hlc_acceptable(UINT64_MAX, wall, drift));
    /* Zero drift allowed. */
    CHECK(shoal__hlc_acceptable(shoal__hlc_make(wall, 9), wall, 0));
    CHECK(!shoal__hlc_acceptable(shoal__hlc_make(wall + 1, 0), wall, 0));
    /* Saturating: a huge drift bound does not wrap around. */
    CHECK(shoal__hlc_acceptable(UINT64_MAX, wall, UINT64_MAX));
}

static void
test_observe(void)
{
    uint64_t local = shoal__hlc_make(100, 5);
    uint64_t remote = shoal__hlc_make(100, 9);
    CHECK_EQ(shoal__hlc_observe(local, remote), remote);
    CHECK_EQ(shoal__hlc_observe(remote, local), remote);
    CHECK_EQ(shoal__hlc_observe(local, local), local);
    /* After observing, the next local tick is after the remote. */
    uint64_t far = shoal__hlc_make(200, 3);
    uint64_t seen = shoal__hlc_observe(local, far);
    uint64_t next = shoal__hlc_tick(seen, 150);
    CHECK(next > far);
    CHECK_EQ(SHOAL__HLC_MS(next), 200);
    CHECK_EQ(SHOAL__HLC_LOGICAL(next), 4);
}

static void
test_opid_order(void)
{
    uint8_t a[32] = { 0 }, b[32] = { 0 };
    b[31] = 1;
    shoal__opid x = { 10, a, 0 }, y = { 10, b, 0 }, z = { 11, a, 0 }, w = { 10, a, 1 };
    CHECK(shoal__opid_cmp(&x, &y) < 0);
    CHECK(shoal__opid_cmp(&y, &x) > 0);
    CHECK(shoal__opid_cmp(&y, &z) < 0); /* hlc first */
    CHECK(shoal__opid_cmp(&x, &w) < 0); /* index last */
    CHECK(shoal__opid_cmp(&w, &y) < 0); /* author before index */
    CHECK_EQ(shoal__opid_cmp(&x, &x), 0);
    uint8_t a2[32] = { 0 };
    shoal__opid x2 = { 10, a2, 0 };
    CHECK_EQ(shoal__opid_cmp(&x, &x2), 0); /* by bytes, not pointer */
}

int
main(void)
{
    RUN(test_make);
    RUN(test_tick_increases);
    RUN(test_tick_clock_backwards);
    RUN(test_tick_counter_overflow);
    RUN(test_acceptable_edge);
    RUN(test_observe);
    RUN(test_opid_order);
    return check_summary();
}
