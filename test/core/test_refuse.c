/*
 * test/core/test_refuse.c - admission is a function of the change (and its
 * causal past) alone, and costs bounded work per byte, end to end through
 * shoal_import:
 *
 * - a DEL / REP / INS naming another author's op at the change's own HLC
 *   (an op that cannot be in its causal past) is refused on every replica,
 *   whichever of the two changes arrives first: same verdict, same digests;
 * - the same refusal when the change waits in the pending set first (it is
 *   dropped when finally applied, later writes go on) and when it comes in
 *   the bundle being imported (the import fails whole, nothing changes);
 * - a 133-byte change holding one DEL run of 2^20 ops is refused at once
 *   (SHOAL_ETOOBIG), directly or behind a missing dependency.
 *
 * Changes are crafted and signed here with fixed seeded keys.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "replica.h"
#include "crdt.h"
#include "shoal.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A keypair from a fixed seed byte. */
static void
seeded_key(uint8_t pk[32], uint8_t sk[64], uint8_t seed)
{
    uint8_t s[32];
    memset(s, seed, sizeof s);
    crypto_sign_seed_keypair(pk, sk, s);
}

/* Seal c (author pk) into out as an envelope. */
static int
seal_change(shoal__buf *out, const shoal__change *c, const uint8_t sk[64])
{
    shoal__buf body;
    shoal__buf_init(&body);
    int err = shoal__change_encode(c, &body);
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, c->author, sk, out);
    shoal__buf_free(&body);
    return err;
}

static void
change_init(shoal__change *c, const uint8_t pk[32], uint64_t seq, uint64_t hlc, shoal__op *ops,
            size_t nops)
{
    memset(c, 0, sizeof *c);
    memcpy(c->author, pk, 32);
    c->seq = seq;
    c->hlc = hlc;
    c->coll = (const uint8_t *)"c";
    c->coll_len = 1;
    c->doc = (const uint8_t *)"d";
    c->doc_len = 1;
    c->ops = ops;
    c->nops = nops;
}

static shoal__op
list_op(uint8_t kind, shoal__ref ref, int64_t v)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.field = (const uint8_t *)"l";
    op.field_len = 1;
    op.ref = ref;
    op.value.type = kind == SHOAL__OP_DEL ? SHOAL_T_NIL : SHOAL_T_INT;
    op.value.i = v;
    return op;
}

static void
bundle_of(shoal__buf *out, const shoal__buf *const *envs, size_t n)
{
    shoal__buf_init(out);
    shoal__bundle_begin(out);
    for (size_t i = 0; i < n; i++)
        shoal__bundle_add(out, envs[i]->p, envs[i]->len);
    shoal__bundle_finish(out, (uint32_t)n);
}

static shoal_err
import1(shoal_replica *r, const shoal__buf *env, shoal_import_result *res)
{
    shoal__buf b;
    const shoal__buf *e[1] = { env };
    bundle_of(&b, e, 1);
    shoal_err err = shoal_import(r, b.p, b.len, res);
    shoal__buf_free(&b);
    return err;
}

/* Import env into r, expecting err and no change at all. */
static void
expect_refused(shoal_replica *r, const shoal__buf *env, shoal_err want, const char *what)
{
    check_snap before, after;
    REQUIRE(check_snap_take(r, &before));
    shoal_import_result res;
    shoal_err err = import1(r, env, &res);
    if (err != want) {
        fprintf(stderr, "%s: got %s, want %s\n", what, shoal_strerror(err), shoal_strerror(want));
        check_failures++;
    }
    REQUIRE(check_snap_take(r, &after));
    if (!check_snap_same(&before, &after)) {
        fprintf(stderr, "%s: state changed\n", what);
        check_failures++;
    }
}

/* ---------------------------------------------------------------- tests */

/* Author A signs a change at HLC h naming B's op (h, B, 0), B's key being
 * greater than A's (and, for the insert, the other way round).  Replica 1
 * gets B's change first, replica 2 A's: both refuse A's change, both end
 * with the same digests. */
static void
test_same_clock_ref_both_orders(void)
{
    uint8_t k1[32], s1[64], k2[32], s2[64];
    seeded_key(k1, s1, 1);
    seeded_key(k2, s2, 2);
    uint64_t h = shoal__hlc_make(now_ms(), 0);
    for (int kase = 0; kase < 4; kase++) {
        /* kase 0..2: DEL, REP, INS by the smaller key; 3: INS by the greater. */
        bool small_refers = kase < 3;
        const uint8_t *pa =
            small_refers ? (memcmp(k1, k2, 32) < 0 ? k1 : k2) : (memcmp(k1, k2, 32) < 0 ? k2 : k1);
        const uint8_t *sa = pa == k1 ? s1 : s2;
        const uint8_t *pb = pa == k1 ? k2 : k1;
        const uint8_t *sb = pa == k1 ? s2 : s1;
        /* B inserts at the head of l at HLC h. */
        shoal__ref headref = { true, 0, 0, 0 };
        shoal__op bop = list_op(SHOAL__OP_INS, headref, 1);
        shoal__change cb;
        change_init(&cb, pb, 1, h, &bop, 1);
        /* A, at the same HLC, names B's element. */
        static const uint8_t kinds[4] = { SHOAL__OP_DEL, SHOAL__OP_REP, SHOAL__OP_INS,
                                          SHOAL__OP_INS };
        shoal__ref rb = { false, h, 1, 0 };
        shoal__op aop = list_op(kinds[kase], rb, 2);
        shoal__change ca;
        change_init(&ca, pa, 1, h, &aop, 1);
        ca.nauthors = 1;
        ca.authors = pb;
        shoal__buf eb, ea;
        shoal__buf_init(&eb);
        shoal__buf_init(&ea);
        REQUIRE(seal_change(&eb, &cb, sb) == SHOAL_OK);
        REQUIRE(seal_change(&ea, &ca, sa) == SHOAL_OK);

        char *d1 = check_tmpdir("refuse-1"), *d2 = check_tmpdir("refuse-2");
        shoal_replica *r1 = check_replica_open(d1, NULL, NULL),
                      *r2 = check_replica_open(d2, NULL, NULL);
        REQUIRE(r1 && r2);
        shoal_import_result res;
        CHECK_EQ(import1(r1, &eb, &res), SHOAL_OK);
        CHECK_EQ(res.applied, 1);
        expect_refused(r1, &ea, SHOAL_EPROTO, "B first, then A");
        expect_refused(r2, &ea, SHOAL_EPROTO, "A first");
        CHECK_EQ(import1(r2, &eb, &res), SHOAL_OK);
        CHECK_EQ(res.applied, 1);
        check_snap a, b;
        REQUIRE(check_snap_take(r1, &a) && check_snap_take(r2, &b));
        if (!check_snap_same(&a, &b)) {
            fprintf(stderr, "case %d: replicas differ\n", kase);
            check_failures++;
        }
        /* Both still take writes. */
        shoal_txn *t;
        REQUIRE(shoal_txn_begin(r1, &t) == SHOAL_OK);
        CHECK_EQ(shoal_txn_counter_add(t, "c", "d", "n", 1), SHOAL_OK);
        CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
        shoal_replica_close(r1);
        shoal_replica_close(r2);
        check_rmtree(d1);
        check_rmtree(d2);
        free(d1);
        free(d2);
        shoal__buf_free(&eb);
        shoal__buf_free(&ea);
    }
}

/* The same refusal before the pending set: A's seq 2 (naming B's op at its
 * own HLC) arriving before A's seq 1 would wait; it is refused on arrival
 * all the same (core/apply.c, cand_valid), and the replica ends where one
 * that never saw seq 2 ends.  In one bundle with seq 1, the import fails
 * whole. */
static void
test_same_clock_ref_pending(void)
{
    uint8_t ka[32], sa[64], kb[32], sb[64];
    seeded_key(ka, sa, 3);
    seeded_key(kb, sb, 4);
    uint64_t h = shoal__hlc_make(now_ms(), 0);
    shoal__ref headref = { true, 0, 0, 0 };
    shoal__op bop = list_op(SHOAL__OP_INS, headref, 1);
    shoal__change cb;
    change_init(&cb, kb, 1, h + 1, &bop, 1);
    shoal__op a1op = list_op(SHOAL__OP_INS, headref, 7);
    a1op.field = (const uint8_t *)"m";
    shoal__change ca1;
    change_init(&ca1, ka, 1, h, &a1op, 1);
    shoal__ref rb = { false, h + 1, 1, 0 };
    shoal__op a2op = list_op(SHOAL__OP_DEL, rb, 0);
    shoal__change ca2;
    change_init(&ca2, ka, 2, h + 1, &a2op, 1);
    ca2.nauthors = 1;
    ca2.authors = kb;
    shoal__buf eb, e1, e2;
    shoal__buf_init(&eb);
    shoal__buf_init(&e1);
    shoal__buf_init(&e2);
    REQUIRE(seal_change(&eb, &cb, sb) == SHOAL_OK);
    REQUIRE(seal_change(&e1, &ca1, sa) == SHOAL_OK);
    REQUIRE(seal_change(&e2, &ca2, sa) == SHOAL_OK);

    char *d1 = check_tmpdir("refuse-p1"), *d2 = check_tmpdir("refuse-p2");
    char *d3 = check_tmpdir("refuse-p3");
    shoal_replica *r1 = check_replica_open(d1, NULL, NULL),
                  *r2 = check_replica_open(d2, NULL, NULL),
                  *r3 = check_replica_open(d3, NULL, NULL);
    REQUIRE(r1 && r2 && r3);
    shoal_import_result res;
    /* r1: B, then A2 (would wait for A1): refused; then A1. */
    CHECK_EQ(import1(r1, &eb, &res), SHOAL_OK);
    CHECK_EQ(import1(r1, &e2, &res), SHOAL_EPROTO);
    CHECK(strstr(shoal_replica_errmsg(r1), "change 1 of 1") != NULL);
    CHECK_EQ(import1(r1, &e1, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    uint64_t pc = 9;
    CHECK(shoal_pending_count(r1, &pc) == SHOAL_OK && pc == 0);
    /* r2: A1 and A2 in one bundle: refused whole; then A1 and B. */
    shoal__buf both;
    const shoal__buf *pair[2] = { &e1, &e2 };
    bundle_of(&both, pair, 2);
    check_snap before, after;
    REQUIRE(check_snap_take(r2, &before));
    CHECK_EQ(shoal_import(r2, both.p, both.len, &res), SHOAL_EPROTO);
    REQUIRE(check_snap_take(r2, &after));
    CHECK(check_snap_same(&before, &after));
    shoal__buf_free(&both);
    CHECK_EQ(import1(r2, &e1, &res), SHOAL_OK);
    CHECK_EQ(import1(r2, &eb, &res), SHOAL_OK);
    /* r3: A1 and B only. */
    CHECK_EQ(import1(r3, &eb, &res), SHOAL_OK);
    CHECK_EQ(import1(r3, &e1, &res), SHOAL_OK);
    check_snap s1, s2, s3;
    REQUIRE(check_snap_take(r1, &s1) && check_snap_take(r2, &s2) && check_snap_take(r3, &s3));
    CHECK(check_snap_same(&s1, &s3));
    CHECK(check_snap_same(&s2, &s3));
    /* A2 again, now that its dep is in: refused at once. */
    expect_refused(r3, &e2, SHOAL_EPROTO, "A2 after A1");
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r1, &t) == SHOAL_OK);
    CHECK_EQ(shoal_txn_counter_add(t, "c", "d", "n", 1), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    shoal_replica_close(r1);
    shoal_replica_close(r2);
    shoal_replica_close(r3);
    check_rmtree(d1);
    check_rmtree(d2);
    check_rmtree(d3);
    free(d1);
    free(d2);
    free(d3);
    shoal__buf_free(&eb);
    shoal__buf_free(&e1);
    shoal__buf_free(&e2);
}

/* The body [seq, hlc, deps, "c", "d", 0, [], [[10, "l", [ref_hlc, 0, 0],
 * count]]]: one DEL run, written by hand (the encoder never writes a run
 * longer than SHOAL__MAX_DELRUN). */
static int
delrun_env(shoal__buf *out, const uint8_t pk[32], const uint8_t sk[64], uint64_t seq, uint64_t hlc,
           const uint8_t *dep, int64_t count)
{
    shoal__buf body;
    shoal__buf_init(&body);
    shoal__mpw w;
    shoal__mpw_init(&w, &body);
    shoal__mpw_array(&w, 8);
    shoal__mpw_uint(&w, seq);
    shoal__mpw_uint(&w, hlc);
    shoal__mpw_array(&w, dep ? 1 : 0);
    if (dep)
        shoal__mpw_bin(&w, dep, 32);
    shoal__mpw_str(&w, "c", 1);
    shoal__mpw_str(&w, "d", 1);
    shoal__mpw_uint(&w, 0);
    shoal__mpw_array(&w, 0);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 4);
    shoal__mpw_uint(&w, SHOAL__OP_DELRUN);
    shoal__mpw_str(&w, "l", 1);
    shoal__mpw_array(&w, 3);
    shoal__mpw_uint(&w, hlc - 1000);
    shoal__mpw_uint(&w, 0);
    shoal__mpw_uint(&w, 0);
    shoal__mpw_int(&w, count);
    int err = w.err;
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, pk, sk, out);
    shoal__buf_free(&body);
    return err;
}

/* A DEL run of 2^20 ops in a 133-byte change (and 32 of them in one
 * bundle) is refused before any op is made: quickly, with nothing stored,
 * whether or not its dependencies are there.  A run of SHOAL__MAX_DELRUN
 * is fine. */
static void
test_delrun_amplification(void)
{
    uint8_t pk[32], sk[64], missing[32];
    seeded_key(pk, sk, 5);
    memset(missing, 0x5a, sizeof missing);
    uint64_t h = shoal__hlc_make(now_ms(), 0);
    char *dir = check_tmpdir("refuse-amp");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    shoal__buf env;
    shoal__buf_init(&env);
    REQUIRE(delrun_env(&env, pk, sk, 1, h, NULL, (int64_t)SHOAL__MAX_OPS) == SHOAL_OK);
    printf("  one DEL run of %u ops: a %zu-byte envelope\n", (unsigned)SHOAL__MAX_OPS, env.len);
    uint64_t t0 = check_now_ms();
    expect_refused(r, &env, SHOAL_ETOOBIG, "DEL run of 2^20");
    CHECK(strstr(shoal_replica_errmsg(r), "does not decode") != NULL);
    /* 32 of them in one bundle (seq 1..32, the later ones waiting). */
    shoal__buf envs[32];
    const shoal__buf *ep[32];
    for (int i = 0; i < 32; i++) {
        shoal__buf_init(&envs[i]);
        REQUIRE(delrun_env(&envs[i], pk, sk, (uint64_t)i + 1, h + (uint64_t)i, NULL,
                           (int64_t)SHOAL__MAX_OPS) == SHOAL_OK);
        ep[i] = &envs[i];
    }
    shoal__buf b;
    bundle_of(&b, ep, 32);
    check_snap before, after;
    REQUIRE(check_snap_take(r, &before));
    shoal_import_result res;
    CHECK_EQ(shoal_import(r, b.p, b.len, &res), SHOAL_ETOOBIG);
    REQUIRE(check_snap_take(r, &after));
    CHECK(check_snap_same(&before, &after));
    printf("  a %zu-byte bundle of 32 such changes\n", b.len);
    shoal__buf_free(&b);
    for (int i = 0; i < 32; i++)
        shoal__buf_free(&envs[i]);
    /* Behind a missing dependency: refused too, the pending set stays empty. */
    shoal__buf_free(&env);
    shoal__buf_init(&env);
    REQUIRE(delrun_env(&env, pk, sk, 2, h + 100, missing, (int64_t)SHOAL__MAX_OPS) == SHOAL_OK);
    expect_refused(r, &env, SHOAL_ETOOBIG, "DEL run of 2^20, dep missing");
    uint64_t ms = check_now_ms() - t0;
    printf("  refusing them took %llu ms\n", (unsigned long long)ms);
    CHECK(ms < 5000);
    /* One over the cap: refused; at the cap: applied (targets unknown:
     * no-ops). */
    shoal__buf_free(&env);
    shoal__buf_init(&env);
    REQUIRE(delrun_env(&env, pk, sk, 1, h, NULL, SHOAL__MAX_DELRUN + 1) == SHOAL_OK);
    expect_refused(r, &env, SHOAL_ETOOBIG, "DEL run of MAX_DELRUN + 1");
    shoal__buf_free(&env);
    shoal__buf_init(&env);
    REQUIRE(delrun_env(&env, pk, sk, 1, h, NULL, SHOAL__MAX_DELRUN) == SHOAL_OK);
    CHECK_EQ(import1(r, &env, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    shoal__buf_free(&env);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    RUN(test_same_clock_ref_both_orders);
    RUN(test_same_clock_ref_pending);
    RUN(test_delrun_amplification);
    return check_summary();
}
