/*
 * test/core/test_oom.c - allocation-failure sweeps over import, apply and
 * commit, as libuv's OOM loops do: for i = 1, 2, ... fail the i-th
 * allocation (crdt/alloc.c's hook) until the operation succeeds without
 * reaching it.  Every injected failure must give SHOAL_ENOMEM and leave
 * both digests (visible and full) and the pending set as they were, and
 * the replica must still work afterwards.  A failure the library absorbs
 * (the operation succeeds although the i-th allocation failed) must give
 * exactly the state of a run without failures; the replica is then put
 * back to its starting state from a copy before the sweep goes on.
 *
 * Covered: importing a bundle that applies changes, swaps in the smaller
 * version of an equivocation (rebuilding a document), keeps a larger one as
 * evidence, releases a stored pending change and leaves another pending;
 * the same changes applied as a network batch (the host's apply, as the
 * session calls it); and a local commit of several edits on two documents.
 *
 * Replicas run on a fixed fake clock with seeded identities and signing
 * keys, so every run makes the same changes.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "replica.h"
#include "core.h"
#include "crdt.h"
#include "shoal.h"
#include "transport.h"

enum {
    MAX_STEPS = 200000 /* a sweep longer than this is a bug in the test */
};

static const uint64_t NOW_MS = 1700000000000ull;

static uint64_t
fake_now(void *ctx)
{
    (void)ctx;
    return NOW_MS;
}

/* A fresh replica directory with a seeded identity. */
static char *
new_dir(const char *tag)
{
    char *d = check_tmpdir(tag);
    if (d && !check_seed_identity(d)) {
        check_rmtree(d);
        free(d);
        return NULL;
    }
    return d;
}

static shoal_err
set_int(shoal_replica *r, const char *coll, const char *id, const char *f, int64_t i)
{
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value v = { .type = SHOAL_T_INT, .i = i };
    err = shoal_txn_set(t, coll, id, f, &v);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

/* ------------------------------------------------------- crafted changes */

typedef struct key {
    uint8_t pk[32];
    uint8_t sk[64];
} key;

static void
key_seed(key *k, uint8_t seed)
{
    uint8_t s[32];
    memset(s, seed, sizeof s);
    crypto_sign_seed_keypair(k->pk, k->sk, s);
}

/* A change by k on c/doc at hlc that sets field f to i and inserts i at
 * the head of list l; its envelope is appended to out (which collects
 * envelopes back to back), its id returned in id. */
static int
craft(shoal__buf *out, const key *k, uint64_t seq, uint64_t hlc, const uint8_t *deps, size_t ndeps,
      const char *doc, const char *f, int64_t i, uint8_t id[32])
{
    shoal__op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].kind = SHOAL__OP_SET;
    ops[0].field = (const uint8_t *)f;
    ops[0].field_len = strlen(f);
    ops[0].value.type = SHOAL_T_INT;
    ops[0].value.i = i;
    ops[1].kind = SHOAL__OP_INS;
    ops[1].field = (const uint8_t *)"l";
    ops[1].field_len = 1;
    ops[1].ref.head = true;
    ops[1].value.type = SHOAL_T_INT;
    ops[1].value.i = i;
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, k->pk, 32);
    c.seq = seq;
    c.hlc = hlc;
    c.deps = deps;
    c.ndeps = ndeps;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)doc;
    c.doc_len = strlen(doc);
    c.ops = ops;
    c.nops = 2;
    shoal__buf body;
    shoal__buf_init(&body);
    int err = shoal__change_encode(&c, &body);
    size_t at = out->len;
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, k->pk, k->sk, out);
    if (!err)
        shoal__change_id(out->p + at, out->len - at, id);
    shoal__buf_free(&body);
    return err;
}

/* ------------------------------------------------------------- fixture */

/* The template replica (closed, in tmpl) and the input for the sweeps:
 * envs, the envelopes of the "incoming" changes back to back (count of
 * them), and the same as a bundle. */
typedef struct fixture {
    char *tmpl;
    shoal__buf envs;
    size_t count;
    shoal__buf bundle;
} fixture;

static void
add_env(fixture *fx, const shoal__buf *one)
{
    shoal__buf_append(&fx->envs, one->p, one->len);
    fx->count++;
}

static bool
fixture_make(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    shoal__buf_init(&fx->envs);
    shoal__buf_init(&fx->bundle);
    fx->tmpl = new_dir("oom-tmpl");
    char *sdir = new_dir("oom-src");
    if (!fx->tmpl || !sdir)
        return false;
    shoal_replica *t = check_replica_open(fx->tmpl, fake_now, NULL),
                  *s = check_replica_open(sdir, fake_now, NULL);
    if (!t || !s)
        return false;
    /* The template's own history: registers, a list, a counter. */
    bool ok = set_int(t, "c", "a", "f", 1) == SHOAL_OK && set_int(t, "c", "b", "g", 2) == SHOAL_OK;
    shoal_txn *tx;
    ok = ok && shoal_txn_begin(t, &tx) == SHOAL_OK;
    if (ok) {
        shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"x", .len = 1 };
        ok = shoal_txn_list_insert(tx, "c", "a", "l", 0, &v) == SHOAL_OK &&
             shoal_txn_counter_add(tx, "c", "a", "n", 3) == SHOAL_OK;
        ok = ok ? shoal_txn_commit(tx) == SHOAL_OK : (shoal_txn_abort(tx), false);
    }
    /* Another replica's history, some of it on the same documents; the
     * big value takes c/a's tail past SHOAL__SNAP_MIN, so the import writes
     * a snapshot too. */
    ok = ok && set_int(s, "c", "a", "f", 10) == SHOAL_OK &&
         set_int(s, "c", "s", "h", 11) == SHOAL_OK && set_int(s, "k", "z", "z", 12) == SHOAL_OK;
    static char big[SHOAL__SNAP_MIN + 1000];
    memset(big, 'b', sizeof big - 1);
    ok = ok && shoal_txn_begin(s, &tx) == SHOAL_OK;
    if (ok) {
        shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)big, .len = sizeof big - 1 };
        ok = shoal_txn_set(tx, "c", "a", "big", &v) == SHOAL_OK;
        ok = ok ? shoal_txn_commit(tx) == SHOAL_OK : (shoal_txn_abort(tx), false);
    }
    uint8_t *sb = NULL;
    size_t sn = 0;
    ok = ok && shoal_export(s, NULL, &sb, &sn) == SHOAL_OK;
    shoal__span *sp = NULL;
    size_t scount = 0;
    ok = ok && shoal__bundle_split(sb, sn, &sp, &scount) == SHOAL_OK && scount == 4;
    for (size_t i = 0; ok && i < scount; i++) {
        shoal__buf one;
        shoal__buf_init(&one);
        shoal__buf_append(&one, sb + sp[i].off, sp[i].len);
        add_env(fx, &one);
        shoal__buf_free(&one);
    }
    shoal__free(sp);
    shoal_free(sb);

    /* Crafted authors: X and W equivocate at seq 1; Y's seq 2 is stored
     * pending in the template and released by Y's seq 1 in the input; Z's
     * seq 2 stays pending (seq 1 never comes). */
    key X, W, Y, Z;
    key_seed(&X, 0x41);
    key_seed(&W, 0x42);
    key_seed(&Y, 0x43);
    key_seed(&Z, 0x44);
    uint64_t h = shoal__hlc_make(NOW_MS - 5000, 0);
    shoal__buf x1, x2, w1, w2, y1, y2, z2;
    shoal__buf *all[] = { &x1, &x2, &w1, &w2, &y1, &y2, &z2 };
    for (size_t i = 0; i < 7; i++)
        shoal__buf_init(all[i]);
    uint8_t idx1[32], idx2[32], idw1[32], idw2[32], idy1[32], idy2[32], idz2[32];
    ok = ok && craft(&x1, &X, 1, h + 1, NULL, 0, "e", "v", 1, idx1) == SHOAL_OK &&
         craft(&x2, &X, 1, h + 2, NULL, 0, "e", "v", 2, idx2) == SHOAL_OK &&
         craft(&w1, &W, 1, h + 3, NULL, 0, "e", "w", 1, idw1) == SHOAL_OK &&
         craft(&w2, &W, 1, h + 4, NULL, 0, "e", "w", 2, idw2) == SHOAL_OK &&
         craft(&y1, &Y, 1, h + 5, NULL, 0, "y", "v", 1, idy1) == SHOAL_OK &&
         craft(&y2, &Y, 2, h + 6, idy1, 1, "y", "v", 2, idy2) == SHOAL_OK &&
         craft(&z2, &Z, 2, h + 7, NULL, 0, "z", "v", 1, idz2) == SHOAL_OK;
    /* X: the template holds the larger id, the input brings the smaller
     * (a swap and a rebuild); W: the other way round (evidence only). */
    shoal__buf *xbig = memcmp(idx1, idx2, 32) > 0 ? &x1 : &x2;
    shoal__buf *xsmall = xbig == &x1 ? &x2 : &x1;
    shoal__buf *wsmall = memcmp(idw1, idw2, 32) < 0 ? &w1 : &w2;
    shoal__buf *wbig = wsmall == &w1 ? &w2 : &w1;
    shoal__buf *pre[] = { xbig, wsmall, &y2 };
    for (size_t i = 0; ok && i < 3; i++) {
        shoal__buf b;
        shoal__buf_init(&b);
        shoal__bundle_begin(&b);
        shoal__bundle_add(&b, pre[i]->p, pre[i]->len);
        shoal__bundle_finish(&b, 1);
        ok = shoal_import(t, b.p, b.len, NULL) == SHOAL_OK;
        shoal__buf_free(&b);
    }
    uint64_t pc = 0;
    ok = ok && shoal_pending_count(t, &pc) == SHOAL_OK && pc == 1;
    shoal__buf *in[] = { xsmall, wbig, &y1, &z2 };
    for (size_t i = 0; ok && i < 4; i++)
        add_env(fx, in[i]);
    for (size_t i = 0; i < 7; i++)
        shoal__buf_free(all[i]);
    shoal__bundle_begin(&fx->bundle);
    shoal__buf_append(&fx->bundle, fx->envs.p, fx->envs.len);
    shoal__bundle_finish(&fx->bundle, (uint32_t)fx->count);
    shoal_replica_close(t);
    shoal_replica_close(s);
    check_rmtree(sdir);
    free(sdir);
    return ok;
}

static void
fixture_free(fixture *fx)
{
    if (fx->tmpl) {
        check_rmtree(fx->tmpl);
        free(fx->tmpl);
    }
    shoal__buf_free(&fx->envs);
    shoal__buf_free(&fx->bundle);
}

/* ---------------------------------------------------------------- sweep */

typedef struct op_ctx {
    const fixture *fx;
    shoal__host host;
    shoal_import_result res;
} op_ctx;

typedef shoal_err (*op_fn)(shoal_replica *r, op_ctx *c);

static shoal_err
op_import(shoal_replica *r, op_ctx *c)
{
    return shoal_import(r, c->fx->bundle.p, c->fx->bundle.len, &c->res);
}

/* The network path: a session hands a BATCH's envelopes to host->apply. */
static shoal_err
op_apply(shoal_replica *r, op_ctx *c)
{
    shoal__host_init(&c->host, r);
    return (shoal_err)c->host.apply(c->host.ctx, c->fx->envs.p, c->fx->envs.len, c->fx->count,
                                    &c->res);
}

/* A local transaction of several edits on two documents. */
static shoal_err
op_commit(shoal_replica *r, op_ctx *c)
{
    (void)c;
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value s = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"hello", .len = 5 };
    shoal_value i = { .type = SHOAL_T_INT, .i = 7 };
    if (!err)
        err = shoal_txn_set(t, "c", "a", "f", &s);
    if (!err)
        err = shoal_txn_list_insert(t, "c", "a", "l", 1, &i);
    if (!err)
        err = shoal_txn_list_replace(t, "c", "a", "l", 0, &s);
    if (!err)
        err = shoal_txn_counter_add(t, "c", "a", "n", -2);
    if (!err)
        err = shoal_txn_set(t, "c", "new", "g", &i);
    if (!err)
        err = shoal_txn_list_remove(t, "c", "a", "l", 0);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

/* The replica still works: a read and a commit, then the state is as
 * expected by the caller. */
static bool
still_works(shoal_replica *r)
{
    shoal_doc *d;
    if (shoal_doc_get(r, "c", "a", &d) != SHOAL_OK)
        return false;
    shoal_doc_free(d);
    return set_int(r, "after", "oom", "f", 1) == SHOAL_OK;
}

/* Sweep op over the template: see the top of the file. */
static void
sweep(const fixture *fx, const char *name, op_fn op)
{
    char *dir = check_tmpdir("oom-run");
    REQUIRE(dir && check_copy_dir(fx->tmpl, dir));
    op_ctx c = { .fx = fx };
    /* The reference: the state before and after a run without failures. */
    shoal_replica *r = check_replica_open(dir, fake_now, NULL);
    REQUIRE(r);
    check_snap before, want;
    REQUIRE(check_snap_take(r, &before));
    REQUIRE(op(r, &c) == SHOAL_OK);
    shoal_import_result want_res = c.res;
    REQUIRE(check_snap_take(r, &want));
    shoal_replica_close(r);
    REQUIRE(check_copy_dir(fx->tmpl, dir));
    r = check_replica_open(dir, fake_now, NULL);
    REQUIRE(r);

    uint64_t failed = 0, absorbed = 0, i;
    for (i = 1; i < MAX_STEPS; i++) {
        memset(&c.res, 0, sizeof c.res);
        shoal__alloc_fail_after(i);
        shoal_err err = op(r, &c);
        bool reached = shoal__alloc_fail_left() == 0;
        shoal__alloc_fail_after(0);
        check_snap now;
        REQUIRE(check_snap_take(r, &now));
        if (err == SHOAL_OK) {
            if (!check_snap_same(&now, &want) || memcmp(&c.res, &want_res, sizeof want_res) != 0) {
                fprintf(stderr,
                        "%s: allocation %llu failed, the call succeeded with another state\n", name,
                        (unsigned long long)i);
                check_failures++;
            }
            if (!reached)
                break; /* done: the operation needs fewer than i allocations */
            /* Absorbed: start again from the template. */
            absorbed++;
            shoal_replica_close(r);
            REQUIRE(check_copy_dir(fx->tmpl, dir));
            r = check_replica_open(dir, fake_now, NULL);
            REQUIRE(r);
            continue;
        }
        failed++;
        if (err != SHOAL_ENOMEM || !reached) {
            fprintf(stderr, "%s: allocation %llu: %s (%s)%s\n", name, (unsigned long long)i,
                    shoal_strerror(err), shoal_replica_errmsg(r),
                    reached ? "" : " without an injected failure");
            check_failures++;
        }
        if (!check_snap_same(&now, &before)) {
            fprintf(stderr, "%s: allocation %llu failed and the state changed\n", name,
                    (unsigned long long)i);
            check_failures++;
            /* Go on from a clean copy, to find more. */
            shoal_replica_close(r);
            REQUIRE(check_copy_dir(fx->tmpl, dir));
            r = check_replica_open(dir, fake_now, NULL);
            REQUIRE(r);
        }
        if (check_failures > 20)
            break;
    }
    CHECK(i < MAX_STEPS);
    printf("  %s: %llu allocations, each failed once: %llu clean errors, %llu absorbed\n", name,
           (unsigned long long)(i - 1), (unsigned long long)failed, (unsigned long long)absorbed);
    CHECK(still_works(r));
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static fixture fx;
static bool fx_ok;

static void
test_oom_import(void)
{
    REQUIRE(fx_ok);
    sweep(&fx, "import", op_import);
}

static void
test_oom_apply_batch(void)
{
    REQUIRE(fx_ok);
    sweep(&fx, "apply batch", op_apply);
}

static void
test_oom_commit(void)
{
    REQUIRE(fx_ok);
    sweep(&fx, "commit", op_commit);
}

/* The fixture does what the file says: the import applies, swaps, keeps
 * evidence, releases the stored pending change and leaves one pending. */
static void
test_fixture(void)
{
    REQUIRE(fx_ok);
    char *dir = check_tmpdir("oom-fix");
    REQUIRE(dir && check_copy_dir(fx.tmpl, dir));
    shoal_replica *r = check_replica_open(dir, fake_now, NULL);
    REQUIRE(r);
    shoal_import_result res;
    CHECK_EQ(shoal_import(r, fx.bundle.p, fx.bundle.len, &res), SHOAL_OK);
    /* 4 of the source, X's smaller version, Y1 and the released Y2. */
    CHECK_EQ(res.applied, 7);
    CHECK_EQ(res.pending, 1);
    CHECK_EQ(res.equivocations, 2);
    uint64_t pc = 0;
    CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 1);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    check_seed(8);
    fx_ok = fixture_make(&fx);
    RUN(test_fixture);
    RUN(test_oom_import);
    RUN(test_oom_apply_batch);
    RUN(test_oom_commit);
    fixture_free(&fx);
    return check_summary();
}
