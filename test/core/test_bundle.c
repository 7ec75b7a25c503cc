/*
 * test/core/test_bundle.c - hostile and odd bundles through shoal_import:
 * truncation at every offset, flipped bytes, forged and misattributed
 * signatures, unknown versions, trailing garbage, oversized headers, one bad
 * change among good ones, replays, equivocation and causal reordering, and
 * the memory an import of amplifying (run-length) bodies may take.
 * Every rejection must leave both digests (and the version vector and the
 * pending set) exactly as they were.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "replica.h"
#include "crdt.h"
#include "shoal.h"
#include "store.h"
#include "core.h" /* the identity (core/identity.c) */

/* The store and the replica's identity (core/identity.c), as a replica
 * opens them. */
static int
store_open_id(shoal__store **s, const char *dir, const shoal__store_opts *o, uint8_t pk[32],
              uint8_t **sk, char *eb, size_t elen)
{
    *sk = NULL;
    int rc = shoal__store_open(s, dir, o, eb, elen);
    if (rc)
        return rc;
    rc = shoal__identity_open(*s, dir, pk, sk, eb, elen);
    if (rc) {
        shoal__store_close(*s);
        *s = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- helpers */

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Everything observable about a replica's state, to compare before/after. */
/* A fixture: replica src with some history, its full bundle, and a target
 * replica dst with state of its own. */
typedef struct fix {
    char *dsrc, *ddst;
    shoal_replica *src, *dst;
    uint8_t *b;
    size_t n;
    shoal__span *sp; /* envelopes of b */
    size_t cnt;
    check_snap before;
} fix;

static bool
fix_open(fix *f)
{
    memset(f, 0, sizeof *f);
    f->dsrc = check_tmpdir("bundle-src");
    f->ddst = check_tmpdir("bundle-dst");
    f->src = check_replica_open(f->dsrc, NULL, NULL);
    f->dst = check_replica_open(f->ddst, NULL, NULL);
    if (!f->src || !f->dst)
        return false;
    if (check_set_str(f->src, "c", "a", "f", "one") ||
        check_set_str(f->src, "c", "b", "f", "two") ||
        check_set_str(f->src, "c", "a", "g", "three") ||
        check_set_str(f->src, "k", "x", "f", "four"))
        return false;
    shoal_txn *t;
    if (shoal_txn_begin(f->src, &t))
        return false;
    shoal_value v = { .type = SHOAL_T_INT, .i = 5 };
    if (shoal_txn_list_insert(t, "c", "a", "l", 0, &v) || shoal_txn_commit(t))
        return false;
    if (check_set_str(f->dst, "c", "a", "f", "dst") || check_set_str(f->dst, "z", "z", "z", "z"))
        return false;
    if (shoal_export(f->src, NULL, &f->b, &f->n))
        return false;
    if (shoal__bundle_split(f->b, f->n, &f->sp, &f->cnt) || f->cnt != 5)
        return false;
    return check_snap_take(f->dst, &f->before);
}

static void
fix_close(fix *f)
{
    shoal_replica_close(f->src);
    shoal_replica_close(f->dst);
    shoal_free(f->b);
    shoal__free(f->sp);
    check_rmtree(f->dsrc);
    check_rmtree(f->ddst);
    free(f->dsrc);
    free(f->ddst);
}

/* Import p[0..n) into dst; expect want (or any error if want < 0) and no
 * change at all. */
static void
expect_reject(fix *f, const uint8_t *p, size_t n, int want, const char *what, size_t at)
{
    shoal_import_result res;
    memset(&res, 0xab, sizeof res);
    shoal_err err = shoal_import(f->dst, p, n, &res);
    bool bad = want < 0 ? err == SHOAL_OK : (int)err != want;
    if (bad) {
        fprintf(stderr, "%s at %zu: got %s, want %s\n", what, at, shoal_strerror(err),
                want < 0 ? "an error" : shoal_strerror((shoal_err)want));
        check_failures++;
    }
    CHECK(res.applied == 0 && res.pending == 0 && res.duplicate == 0);
    check_snap after;
    CHECK(check_snap_take(f->dst, &after));
    if (!check_snap_same(&f->before, &after)) {
        fprintf(stderr, "%s at %zu: state changed\n", what, at);
        check_failures++;
    }
}

static uint8_t *
dup_bytes(const uint8_t *p, size_t n, size_t extra)
{
    uint8_t *q = malloc(n + extra + 1);
    if (q)
        memcpy(q, p, n);
    return q;
}

/* A signed change by (pk, sk) with the given ops. */
static int
make_env(shoal__buf *out, const uint8_t pk[32], const uint8_t sk[64], uint64_t seq, uint64_t hlc,
         const uint8_t *deps, size_t ndeps, const char *doc, shoal__op *ops, size_t nops,
         bool trailing_byte)
{
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, pk, 32);
    c.seq = seq;
    c.hlc = hlc;
    c.deps = deps;
    c.ndeps = ndeps;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)doc;
    c.doc_len = strlen(doc);
    c.ops = ops;
    c.nops = nops;
    shoal__buf body;
    shoal__buf_init(&body);
    int err = shoal__change_encode(&c, &body);
    if (!err && trailing_byte)
        err = shoal__buf_append(&body, "\xc0", 1);
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, pk, sk, out);
    shoal__buf_free(&body);
    return err;
}

static shoal__op
op_set(const char *field, const char *val)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_SET;
    op.field = (const uint8_t *)field;
    op.field_len = strlen(field);
    op.value.type = SHOAL_T_STR;
    op.value.ptr = (const uint8_t *)val;
    op.value.len = strlen(val);
    return op;
}

/* A bundle of the given envelopes (each a shoal__buf). */
static void
make_bundle(shoal__buf *out, shoal__buf **envs, size_t n)
{
    shoal__buf_init(out);
    shoal__bundle_begin(out);
    for (size_t i = 0; i < n; i++)
        shoal__bundle_add(out, envs[i]->p, envs[i]->len);
    shoal__bundle_finish(out, (uint32_t)n);
}

static shoal_err
import_buf(shoal_replica *r, const shoal__buf *b, shoal_import_result *res)
{
    return shoal_import(r, b->p, b->len, res);
}

/* ----------------------------------------------------- equivocation kit */

/* A seeded author key. */
typedef struct tkey {
    uint8_t pk[32], sk[64];
} tkey;

static void
tkey_make(tkey *k)
{
    uint8_t seed[32];
    for (size_t i = 0; i < 32; i += 8) {
        uint64_t r = check_rand();
        memcpy(seed + i, &r, 8);
    }
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
}

/* One signed change and its id. */
typedef struct tenv {
    shoal__buf b;
    uint8_t id[32];
} tenv;

/* A change by k with other authors (sorted here) for its refs. */
static int
tenv_make(tenv *v, const tkey *k, uint64_t seq, uint64_t hlc, const tenv *const *deps, size_t ndeps,
          const char *doc, const uint8_t *authors, size_t nauthors, shoal__op *ops, size_t nops)
{
    uint8_t d[8 * 32];
    for (size_t i = 0; i < ndeps; i++)
        memcpy(d + i * 32, deps[i]->id, 32);
    /* sort deps */
    for (size_t i = 1; i < ndeps; i++)
        for (size_t j = i; j > 0 && memcmp(d + (j - 1) * 32, d + j * 32, 32) > 0; j--) {
            uint8_t tmp[32];
            memcpy(tmp, d + j * 32, 32);
            memcpy(d + j * 32, d + (j - 1) * 32, 32);
            memcpy(d + (j - 1) * 32, tmp, 32);
        }
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, k->pk, 32);
    c.seq = seq;
    c.hlc = hlc;
    c.deps = ndeps ? d : NULL;
    c.ndeps = ndeps;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)doc;
    c.doc_len = strlen(doc);
    c.authors = authors;
    c.nauthors = nauthors;
    c.ops = ops;
    c.nops = nops;
    shoal__buf body;
    shoal__buf_init(&body);
    shoal__buf_init(&v->b);
    int err = shoal__change_encode(&c, &body);
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, k->pk, k->sk, &v->b);
    shoal__buf_free(&body);
    if (!err)
        shoal__change_id(v->b.p, v->b.len, v->id);
    return err;
}

static shoal__op
t_op(int kind, const char *field, uint64_t rh, uint32_t rai, uint32_t rix, bool head,
     const char *val)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    if (kind != SHOAL__OP_DELDOC) {
        op.field = (const uint8_t *)field;
        op.field_len = strlen(field);
    }
    op.ref.hlc = rh;
    op.ref.author = rai;
    op.ref.index = rix;
    op.ref.head = head;
    if (val) {
        op.value.type = SHOAL_T_STR;
        op.value.ptr = (const uint8_t *)val;
        op.value.len = strlen(val);
    }
    return op;
}

static shoal__op
t_count(const char *field, int64_t delta)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_COUNT;
    op.field = (const uint8_t *)field;
    op.field_len = strlen(field);
    op.delta = delta;
    return op;
}

static int
import_envs(shoal_replica *r, tenv *const *v, size_t n, shoal_import_result *res)
{
    shoal__buf bb;
    shoal__buf *e[16];
    for (size_t i = 0; i < n; i++)
        e[i] = &v[i]->b;
    make_bundle(&bb, e, n);
    int err = import_buf(r, &bb, res);
    shoal__buf_free(&bb);
    if (err)
        fprintf(stderr, "import: %s\n", shoal_replica_errmsg(r));
    return err;
}

/* Export all of a into b. */
static int
pour(shoal_replica *a, shoal_replica *b)
{
    uint8_t *p;
    size_t n;
    int err = shoal_export(a, NULL, &p, &n);
    if (!err)
        err = shoal_import(b, p, n, NULL);
    shoal_free(p);
    return err;
}

static bool
names_equivocator(shoal_replica *r, const tkey *k)
{
    char hex[65];
    shoal__hex(hex, k->pk, 32);
    shoal_strlist *l;
    if (shoal_equivocators(r, &l) != SHOAL_OK)
        return false;
    bool ok = false;
    for (size_t i = 0; i < shoal_strlist_count(l); i++)
        ok |= strcmp(shoal_strlist_get(l, i), hex) == 0;
    shoal_strlist_free(l);
    return ok;
}

/* The visible strings of list field f of (c, id), joined with ',' into
 * out. */
static bool
list_str(shoal_replica *r, const char *id, const char *f, char *out, size_t cap)
{
    out[0] = 0;
    shoal_doc *d;
    if (shoal_doc_get(r, "c", id, &d) != SHOAL_OK)
        return false;
    size_t i, n;
    bool ok = shoal_doc_field_find(d, f, &i) == SHOAL_OK &&
              shoal_doc_field_list_len(d, i, &n) == SHOAL_OK;
    for (size_t j = 0; ok && j < n; j++) {
        shoal_value v;
        ok = shoal_doc_field_list_item(d, i, j, &v) == SHOAL_OK && v.type == SHOAL_T_STR;
        if (ok) {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, "%s%.*s", j ? "," : "", (int)v.len, (const char *)v.ptr);
        }
    }
    shoal_doc_free(d);
    return ok;
}

/* ------------------------------------------------------------------ tests */

static void
test_good_then_replay(void)
{
    fix f;
    REQUIRE(fix_open(&f));
    shoal_import_result res;
    CHECK_EQ(shoal_import(f.dst, f.b, f.n, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 5);
    CHECK_EQ(res.duplicate, 0);
    check_snap s1, s2;
    CHECK(check_snap_take(f.dst, &s1));
    CHECK(!check_snap_same(&s1, &f.before));
    /* Replay: every change a duplicate, nothing changes. */
    CHECK_EQ(shoal_import(f.dst, f.b, f.n, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 0);
    CHECK_EQ(res.duplicate, 5);
    CHECK_EQ(res.pending, 0);
    CHECK(check_snap_take(f.dst, &s2));
    CHECK(check_snap_same(&s1, &s2));
    /* An empty bundle is fine too. */
    uint8_t empty[12] = { 'S', 'H', 'O', 'A', 'L', 'B', 'N', '1', 0, 0, 0, 0 };
    CHECK_EQ(shoal_import(f.dst, empty, sizeof empty, &res), SHOAL_OK);
    CHECK_EQ(res.applied + res.duplicate, 0);
    /* A bundle holding one change twice applies it once. */
    shoal__buf twice;
    shoal__buf_init(&twice);
    shoal__bundle_begin(&twice);
    shoal__bundle_add(&twice, f.b + f.sp[0].off, f.sp[0].len);
    shoal__bundle_add(&twice, f.b + f.sp[0].off, f.sp[0].len);
    shoal__bundle_finish(&twice, 2);
    char *d3 = check_tmpdir("bundle-twice");
    shoal_replica *r3 = check_replica_open(d3, NULL, NULL);
    REQUIRE(r3);
    CHECK_EQ(import_buf(r3, &twice, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    CHECK_EQ(res.duplicate, 1);
    shoal_replica_close(r3);
    check_rmtree(d3);
    free(d3);
    shoal__buf_free(&twice);
    fix_close(&f);
}

static void
test_truncated(void)
{
    fix f;
    REQUIRE(fix_open(&f));
    for (size_t cut = 0; cut < f.n; cut++)
        expect_reject(&f, f.b, cut, SHOAL_ETRUNC, "truncated", cut);
    fix_close(&f);
}

static void
test_flipped_bytes(void)
{
    fix f;
    REQUIRE(fix_open(&f));
    uint8_t *q = dup_bytes(f.b, f.n, 0);
    REQUIRE(q);
    const uint8_t masks[] = { 0x01, 0x80, 0xff };
    for (size_t i = 0; i < f.n; i++) {
        /* Which part of which envelope byte i is in. */
        int want = -1;
        for (size_t e = 0; e < f.cnt; e++) {
            size_t off = f.sp[e].off, len = f.sp[e].len;
            if (i < off || i >= off + len)
                continue;
            size_t k = i - off;
            if (k == 0)
                want = SHOAL_EVERSION;
            else if (k < 33 || k >= SHOAL__ENV_HEADER)
                want = SHOAL_EBADSIG; /* author, body, signature */
        }
        for (size_t m = 0; m < sizeof masks; m++) {
            q[i] ^= masks[m];
            expect_reject(&f, q, f.n, want, "flipped", i);
            q[i] ^= masks[m];
        }
    }
    free(q);
    fix_close(&f);
}

static void
test_forged_and_foreign(void)
{
    fix f;
    REQUIRE(fix_open(&f));
    uint8_t *q = dup_bytes(f.b, f.n, 64);
    REQUIRE(q);
    /* Forged signature: a valid-looking signature by another key. */
    size_t last = f.cnt - 1;
    size_t sig = f.sp[last].off + f.sp[last].len - SHOAL__SIG_BYTES;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    crypto_sign_detached(q + sig, NULL, q + f.sp[last].off, f.sp[last].len - 64, sk);
    expect_reject(&f, q, f.n, SHOAL_EBADSIG, "forged signature", 0);
    memcpy(q, f.b, f.n);
    /* Wrong key: the header names another author than the signer. */
    memcpy(q + f.sp[1].off + 1, shoal_replica_id(f.dst), 32);
    expect_reject(&f, q, f.n, SHOAL_EBADSIG, "wrong key", 0);
    memcpy(q, f.b, f.n);
    /* A change signed properly by its own header key, but over bytes that
     * then were re-signed by a different key claiming the same author. */
    shoal__buf env;
    shoal__buf_init(&env);
    shoal__op op = op_set("f", "v");
    REQUIRE(make_env(&env, pk, sk, 1, shoal__hlc_make(now_ms(), 0), NULL, 0, "q", &op, 1, false) ==
            SHOAL_OK);
    memcpy(env.p + 1, shoal_replica_id(f.src), 32);
    shoal__buf *envs[] = { &env };
    shoal__buf bb;
    make_bundle(&bb, envs, 1);
    expect_reject(&f, bb.p, bb.len, SHOAL_EBADSIG, "impostor", 0);
    shoal__buf_free(&bb);
    shoal__buf_free(&env);
    /* Unknown versions. */
    q[f.sp[2].off] = 3;
    expect_reject(&f, q, f.n, SHOAL_EVERSION, "envelope version", 0);
    memcpy(q, f.b, f.n);
    q[7] = '3';
    expect_reject(&f, q, f.n, SHOAL_EVERSION, "bundle version", 0);
    q[7] = 'X';
    expect_reject(&f, q, f.n, SHOAL_EPROTO, "bundle magic", 0);
    memcpy(q, "NOTSHOAL", 8);
    expect_reject(&f, q, f.n, SHOAL_EPROTO, "foreign file", 0);
    memcpy(q, f.b, f.n);
    /* Trailing garbage: a byte, or a whole extra envelope not counted. */
    q[f.n] = 0;
    expect_reject(&f, q, f.n + 1, SHOAL_EPROTO, "trailing byte", 0);
    memcpy(q + f.n, f.b + f.sp[0].off, 64);
    expect_reject(&f, q, f.n + 64, SHOAL_EPROTO, "trailing bytes", 0);
    shoal__be32_put(q + 8, (uint32_t)f.cnt - 1);
    expect_reject(&f, q, f.n, SHOAL_EPROTO, "count too small", 0);
    /* Oversized declarations. */
    memcpy(q, f.b, f.n);
    shoal__be32_put(q + 8, 0xffffffffu);
    expect_reject(&f, q, f.n, SHOAL_ETOOBIG, "huge count", 0);
    memcpy(q, f.b, f.n);
    shoal__be32_put(q + f.sp[0].off + 33, SHOAL__MAX_BODY + 1);
    expect_reject(&f, q, f.n, SHOAL_ETOOBIG, "huge body", 0);
    shoal__be32_put(q + f.sp[0].off + 33, 0xffffffffu);
    expect_reject(&f, q, f.n, SHOAL_ETOOBIG, "huge body", 1);
    memcpy(q, f.b, f.n);
    shoal__be32_put(q + 8, (uint32_t)f.cnt + 1);
    expect_reject(&f, q, f.n, SHOAL_ETRUNC, "count too big", 0);
    free(q);
    fix_close(&f);
}

static void
test_one_bad_among_good(void)
{
    fix f;
    REQUIRE(fix_open(&f));
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    uint64_t hlc = shoal__hlc_make(now_ms(), 0);
    shoal__buf good, bad, bad2, e0, e1;
    shoal__buf_init(&good);
    shoal__buf_init(&bad);
    shoal__buf_init(&bad2);
    shoal__buf_init(&e0);
    shoal__buf_init(&e1);
    shoal__op op = op_set("f", "v");
    REQUIRE(make_env(&good, pk, sk, 1, hlc, NULL, 0, "g", &op, 1, false) == SHOAL_OK);
    /* Signed correctly, but the body has a trailing byte. */
    REQUIRE(make_env(&bad, pk, sk, 2, hlc + 1, NULL, 0, "g", &op, 1, true) == SHOAL_OK);
    shoal__buf_append(&e0, f.b + f.sp[0].off, f.sp[0].len);
    shoal__buf_append(&e1, f.b + f.sp[1].off, f.sp[1].len);
    shoal__buf *envs[] = { &e0, &good, &bad, &e1 };
    shoal__buf bb;
    make_bundle(&bb, envs, 4);
    expect_reject(&f, bb.p, bb.len, SHOAL_EPROTO, "bad body", 0);
    shoal__buf_free(&bb);
    /* Decodes, but invalid: an insert whose id is not after its ref (a
     * ref stamped later than the change).  Rejected at apply, whole.  (An
     * insert after an element that merely does not exist is a no-op, see
     * test_dangling_refs.) */
    shoal__op ins;
    memset(&ins, 0, sizeof ins);
    ins.kind = SHOAL__OP_INS;
    ins.field = (const uint8_t *)"l";
    ins.field_len = 1;
    ins.value.type = SHOAL_T_INT;
    ins.ref.hlc = hlc + ((uint64_t)1 << 30);
    ins.ref.author = 0;
    ins.ref.index = 0;
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    REQUIRE(make_env(&bad2, pk2, sk2, 1, hlc, NULL, 0, "h", &ins, 1, false) == SHOAL_OK);
    shoal__buf *envs2[] = { &e0, &good, &e1, &bad2 };
    make_bundle(&bb, envs2, 4);
    expect_reject(&f, bb.p, bb.len, SHOAL_EPROTO, "bad op", 0);
    shoal__buf_free(&bb);
    /* Without the bad ones all apply. */
    shoal__buf *envs3[] = { &e0, &good, &e1 };
    make_bundle(&bb, envs3, 3);
    shoal_import_result res;
    CHECK_EQ(import_buf(f.dst, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 3);
    shoal__buf_free(&bb);
    /* A bad change that would wait in the pending set (its author's seq 1
     * is missing) is refused on arrival all the same (core/apply.c,
     * cand_valid): it never takes part in anything. */
    shoal__buf first, later;
    shoal__buf_init(&first);
    shoal__buf_init(&later);
    uint8_t pk3[32], sk3[64];
    crypto_sign_keypair(pk3, sk3);
    REQUIRE(make_env(&first, pk3, sk3, 1, hlc, NULL, 0, "i", &op, 1, false) == SHOAL_OK);
    REQUIRE(make_env(&later, pk3, sk3, 2, hlc + 1, NULL, 0, "i", &ins, 1, false) == SHOAL_OK);
    shoal__buf *envs4[] = { &later };
    make_bundle(&bb, envs4, 1);
    CHECK_EQ(import_buf(f.dst, &bb, &res), SHOAL_EPROTO);
    shoal__buf_free(&bb);
    shoal__buf *envs5[] = { &first };
    make_bundle(&bb, envs5, 1);
    CHECK_EQ(import_buf(f.dst, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    shoal__buf_free(&bb);
    uint64_t pc = 9;
    CHECK(shoal_pending_count(f.dst, &pc) == SHOAL_OK && pc == 0);
    CHECK(check_has_str(f.dst, "c", "i", "f", "v"));
    CHECK_EQ(check_set_str(f.dst, "c", "i", "f", "w"), SHOAL_OK);
    shoal__buf_free(&first);
    shoal__buf_free(&later);
    shoal__buf_free(&good);
    shoal__buf_free(&bad);
    shoal__buf_free(&bad2);
    shoal__buf_free(&e0);
    shoal__buf_free(&e1);
    fix_close(&f);
}

typedef struct ev_ctx {
    int n;
    uint8_t author[32];
} ev_ctx;

static int
ev_cb(const uint8_t author[32], uint64_t seq, const uint8_t cid[32], const shoal__sval *env,
      void *arg)
{
    (void)cid;
    ev_ctx *e = arg;
    if (seq == 1 && memcmp(author, e->author, 32) == 0 && env->len > 0)
        e->n++;
    return 0;
}

static int
ev_fn(shoal__stxn *t, void *arg)
{
    return shoal__stxn_evidence_scan(t, ev_cb, arg);
}

static void
test_equivocation(void)
{
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    uint64_t hlc = shoal__hlc_make(now_ms(), 0);
    shoal__buf c1, c1b, c2, c2b;
    shoal__buf_init(&c1);
    shoal__buf_init(&c1b);
    shoal__buf_init(&c2);
    shoal__buf_init(&c2b);
    shoal__op one = op_set("f", "one"), two = op_set("f", "two"), three = op_set("g", "3");
    REQUIRE(make_env(&c1, pk, sk, 1, hlc, NULL, 0, "d", &one, 1, false) == SHOAL_OK);
    REQUIRE(make_env(&c1b, pk, sk, 1, hlc, NULL, 0, "d", &two, 1, false) == SHOAL_OK);
    uint8_t id1[32], id1b[32];
    shoal__change_id(c1.p, c1.len, id1);
    shoal__change_id(c1b.p, c1b.len, id1b);
    REQUIRE(make_env(&c2, pk, sk, 2, hlc + 1, id1, 1, "d", &three, 1, false) == SHOAL_OK);
    REQUIRE(make_env(&c2b, pk, sk, 2, hlc + 1, id1b, 1, "d", &three, 1, false) == SHOAL_OK);
    char hex[65];
    shoal__hex(hex, pk, 32);

    /* The version with the smaller change id is canonical, whichever came
     * first (docs/c-api.md, "Equivocation"). */
    bool first_wins = memcmp(id1, id1b, 32) < 0;
    char *dir = check_tmpdir("bundle-equiv");
    shoal_replica *x = check_replica_open(dir, NULL, NULL);
    REQUIRE(x);
    shoal__buf bb;
    shoal__buf *e1[] = { &c1 };
    make_bundle(&bb, e1, 1);
    shoal_import_result res;
    CHECK_EQ(import_buf(x, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    shoal__buf_free(&bb);
    shoal__buf *e2[] = { &c1b };
    make_bundle(&bb, e2, 1);
    CHECK_EQ(import_buf(x, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, first_wins ? 0 : 1);
    CHECK_EQ(res.equivocations, 1);
    CHECK_EQ(res.pending, 0);
    shoal__buf_free(&bb);
    CHECK(check_has_str(x, "c", "d", "f", first_wins ? "one" : "two"));
    shoal_strlist *l;
    REQUIRE(shoal_equivocators(x, &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 1);
    CHECK(shoal_strlist_count(l) == 1 && strcmp(shoal_strlist_get(l, 0), hex) == 0);
    shoal_strlist_free(l);
    /* c2 and c2b are two versions of seq 2 as well, each built on its own
     * seq 1: the canonical one applies (its dependency, if it names the
     * other seq-1 version, maps to the canonical one). */
    shoal__buf *e3[] = { &c2, &c2b };
    make_bundle(&bb, e3, 2);
    CHECK_EQ(import_buf(x, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    CHECK_EQ(res.equivocations, 1);
    CHECK_EQ(res.pending, 0);
    shoal__buf_free(&bb);
    CHECK(check_has_str(x, "c", "d", "g", "3"));
    shoal_replica_close(x);
    /* Both signed versions of seq 1 are kept as evidence. */
    shoal__store *s;
    shoal__store_opts so = { .durable = false };
    uint8_t spk[32];
    uint8_t *ssk = NULL;
    char eb[256];
    REQUIRE(store_open_id(&s, dir, &so, spk, &ssk, eb, sizeof eb) == SHOAL_OK);
    ev_ctx ec = { 0 };
    memcpy(ec.author, pk, 32);
    CHECK_EQ(shoal__store_read(s, ev_fn, &ec), SHOAL_OK);
    CHECK_EQ(ec.n, 2);
    shoal__identity_free(ssk);
    shoal__store_close(s);
    check_rmtree(dir);
    free(dir);

    /* Both versions in one bundle: the canonical one applies, the other
     * is evidence; the reported author survives a reopen. */
    dir = check_tmpdir("bundle-equiv2");
    x = check_replica_open(dir, NULL, NULL);
    REQUIRE(x);
    shoal__buf *e4[] = { &c1b, &c1 };
    make_bundle(&bb, e4, 2);
    CHECK_EQ(import_buf(x, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    CHECK_EQ(res.equivocations, 1);
    shoal__buf_free(&bb);
    CHECK(check_has_str(x, "c", "d", "f", first_wins ? "one" : "two"));
    shoal_replica_close(x);
    x = check_replica_open(dir, NULL, NULL);
    REQUIRE(x);
    REQUIRE(shoal_equivocators(x, &l) == SHOAL_OK);
    CHECK(shoal_strlist_count(l) == 1 && strcmp(shoal_strlist_get(l, 0), hex) == 0);
    shoal_strlist_free(l);
    shoal_replica_close(x);
    check_rmtree(dir);
    free(dir);
    shoal__buf_free(&c1);
    shoal__buf_free(&c1b);
    shoal__buf_free(&c2);
    shoal__buf_free(&c2b);
}

static void
test_causal_order(void)
{
    char *da = check_tmpdir("bundle-ca"), *db = check_tmpdir("bundle-cb"),
         *dc = check_tmpdir("bundle-cc");
    shoal_replica *a = check_replica_open(da, NULL, NULL), *b = check_replica_open(db, NULL, NULL),
                  *c = check_replica_open(dc, NULL, NULL);
    REQUIRE(a && b && c);
    CHECK_EQ(check_set_str(a, "c", "d", "f", "1"), SHOAL_OK);
    CHECK_EQ(check_set_str(a, "c", "d", "f", "2"), SHOAL_OK);
    CHECK_EQ(check_set_str(a, "c", "d", "f", "3"), SHOAL_OK);
    uint8_t *ab;
    size_t an;
    REQUIRE(shoal_export(a, NULL, &ab, &an) == SHOAL_OK);
    shoal__span *sp;
    size_t cnt;
    REQUIRE(shoal__bundle_split(ab, an, &sp, &cnt) == SHOAL_OK && cnt == 3);
    shoal__buf one[3];
    for (size_t i = 0; i < 3; i++) {
        shoal__buf_init(&one[i]);
        shoal__bundle_begin(&one[i]);
        shoal__bundle_add(&one[i], ab + sp[i].off, sp[i].len);
        shoal__bundle_finish(&one[i], 1);
    }
    /* 3, then 2: both wait; then 1 releases all three. */
    shoal_import_result res;
    uint64_t pc = 0;
    CHECK_EQ(import_buf(c, &one[2], &res), SHOAL_OK);
    CHECK(res.pending == 1 && res.applied == 0);
    CHECK_EQ(import_buf(c, &one[1], &res), SHOAL_OK);
    CHECK(res.pending == 1 && res.applied == 0);
    CHECK(shoal_pending_count(c, &pc) == SHOAL_OK && pc == 2);
    shoal_doc *d;
    CHECK_EQ(shoal_doc_get(c, "c", "d", &d), SHOAL_ENOTFOUND);
    CHECK_EQ(import_buf(c, &one[2], &res), SHOAL_OK);
    CHECK(res.duplicate == 1 && res.pending == 0);
    CHECK_EQ(import_buf(c, &one[0], &res), SHOAL_OK);
    CHECK_EQ(res.applied, 3);
    CHECK(shoal_pending_count(c, &pc) == SHOAL_OK && pc == 0);
    CHECK(check_has_str(c, "c", "d", "f", "3"));
    /* Across authors: b edits after seeing a's changes; c2 gets b's change
     * first, then a's. */
    CHECK_EQ(shoal_import(b, ab, an, &res), SHOAL_OK);
    CHECK_EQ(check_set_str(b, "c", "d", "f", "b"), SHOAL_OK);
    shoal_vv *vv;
    REQUIRE(shoal_vv_new(&vv) == SHOAL_OK);
    CHECK_EQ(shoal_vv_set(vv, shoal_replica_id(a), 3), SHOAL_OK);
    uint8_t *bb;
    size_t bn;
    REQUIRE(shoal_export(b, vv, &bb, &bn) == SHOAL_OK);
    shoal_vv_free(vv);
    char *dc2 = check_tmpdir("bundle-cc2");
    shoal_replica *c2 = check_replica_open(dc2, NULL, NULL);
    REQUIRE(c2);
    CHECK_EQ(shoal_import(c2, bb, bn, &res), SHOAL_OK);
    CHECK(res.pending == 1 && res.applied == 0);
    CHECK_EQ(shoal_import(c2, ab, an, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 4);
    CHECK(check_has_str(c2, "c", "d", "f", "b"));
    uint8_t d1[32], d2[32];
    CHECK_EQ(shoal_import(c, bb, bn, &res), SHOAL_OK);
    CHECK_EQ(shoal_digest(c, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(c2, true, d2), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0);
    for (size_t i = 0; i < 3; i++)
        shoal__buf_free(&one[i]);
    shoal__free(sp);
    shoal_free(ab);
    shoal_free(bb);
    shoal_replica_close(a);
    shoal_replica_close(b);
    shoal_replica_close(c);
    shoal_replica_close(c2);
    check_rmtree(da);
    check_rmtree(db);
    check_rmtree(dc);
    check_rmtree(dc2);
    free(da);
    free(db);
    free(dc);
    free(dc2);
}

/* ------------------------------------------------------- import memory */

/* Run-length bodies expand: DEL runs of about 150 KB decode to
 * SHOAL__MAX_OPS ops (about 100 MB of op structs).  An import must not
 * hold every decoded body of a batch at once. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Change seq of author (pk, sk) on c/d holding ops (encoded as runs). */
static int
make_body_env(shoal__buf *out, const uint8_t pk[32], const uint8_t sk[64], uint64_t seq,
              uint64_t hlc, const uint8_t *deps, size_t ndeps, shoal__op *ops, size_t nops)
{
    return make_env(out, pk, sk, seq, hlc, deps, ndeps, "d", ops, nops, false);
}

/* nops DEL ops of elements (ref_hlc, own author, 0..nops-1) of field l:
 * one DEL run item. */
static shoal__op *
del_run_ops(size_t nops, uint64_t ref_hlc)
{
    shoal__op *ops = calloc(nops, sizeof *ops);
    for (size_t j = 0; ops && j < nops; j++) {
        ops[j].kind = SHOAL__OP_DEL;
        ops[j].field = (const uint8_t *)"l";
        ops[j].field_len = 1;
        ops[j].ref.hlc = ref_hlc;
        ops[j].ref.index = (uint32_t)j;
    }
    return ops;
}

/* nops one-character inserts typed at the head of l: one TEXT run. */
static shoal__op *
text_run_ops(size_t nops, uint64_t hlc)
{
    shoal__op *ops = calloc(nops, sizeof *ops);
    for (size_t j = 0; ops && j < nops; j++) {
        ops[j].kind = SHOAL__OP_INS;
        ops[j].field = (const uint8_t *)"l";
        ops[j].field_len = 1;
        ops[j].value.type = SHOAL_T_STR;
        ops[j].value.ptr = (const uint8_t *)"abcdefghijklmnopqrstuvwxyz" + j % 26;
        ops[j].value.len = 1;
        if (j == 0) {
            ops[j].ref.head = true;
        } else {
            ops[j].ref.hlc = hlc;
            ops[j].ref.index = (uint32_t)(j - 1);
        }
    }
    return ops;
}

#ifndef UNDER_ASAN
static long
vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            kb = strtol(line + 7, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}
#endif

enum {
    AMP_LIMIT_MB = 1024
};

/* In a child under RLIMIT_AS (address space now + AMP_LIMIT_MB; not under
 * ASan, whose shadow memory needs terabytes of address space): import the
 * batch, expect every change to wait in the pending set, then drain the
 * pending set again.  Exit status 0 when all went as expected. */
static int
amp_child(const char *dir, const shoal__buf *bundle, size_t k)
{
#ifndef UNDER_ASAN
    long kb = vm_size_kb();
    if (kb < 0)
        return 10;
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = ((rlim_t)kb << 10) + ((rlim_t)AMP_LIMIT_MB << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 11;
#endif
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    if (!r)
        return 12;
    shoal_import_result res;
    shoal_err err = shoal_import(r, bundle->p, bundle->len, &res);
    if (err) {
        fprintf(stderr, "  amplified import: %s (%s)\n", shoal_strerror(err),
                shoal_replica_errmsg(r));
        return 13;
    }
    if (res.applied != 0 || res.pending != k)
        return 14;
    /* An empty bundle drains the pending set: every stored change is
     * decoded again, and still waits. */
    static const uint8_t empty[12] = { 'S', 'H', 'O', 'A', 'L', 'B', 'N', '1', 0, 0, 0, 0 };
    err = shoal_import(r, empty, sizeof empty, &res);
    uint64_t pending = 0;
    if (err || shoal_pending_count(r, &pending) || pending != k)
        return 15;
    shoal_replica_close(r);
    return 0;
}

static void
test_import_memory(void)
{
#ifdef UNDER_ASAN
    const size_t k = 4;
#else
    const size_t k = 24; /* unbounded: about 2.4 GB of decoded ops */
#endif
    uint8_t pk[32], sk[64], missing[32];
    crypto_sign_keypair(pk, sk);
    randombytes_buf(missing, sizeof missing);
    uint64_t hlc = shoal__hlc_make(now_ms(), 0);

    /* K changes, each one DEL run of SHOAL__MAX_OPS ops, all waiting for a
     * change that never comes. */
    shoal__op *ops = del_run_ops(SHOAL__MAX_OPS, hlc - 1000);
    REQUIRE(ops);
    shoal__buf *envs = calloc(k, sizeof *envs);
    shoal__buf **ep = calloc(k, sizeof *ep);
    REQUIRE(envs && ep);
    for (size_t i = 0; i < k; i++) {
        shoal__buf_init(&envs[i]);
        ep[i] = &envs[i];
        REQUIRE(make_body_env(&envs[i], pk, sk, i + 1, hlc + i, missing, 1, ops, SHOAL__MAX_OPS) ==
                SHOAL_OK);
        /* A small body that expands to 2^20 ops: DEL runs of at most
         * SHOAL__MAX_DELRUN ops, here about 19 bytes per item. */
        REQUIRE(envs[i].len < 2 * SHOAL__MAX_OPS);
    }
    free(ops);
    shoal__buf bundle;
    make_bundle(&bundle, ep, k);

    char *dir = check_tmpdir("bundle-amp");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(amp_child(dir, &bundle, k));
    int st = 0;
    struct rusage ru;
    REQUIRE(wait4(pid, &st, 0, &ru) == pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    printf("  %zu amplified changes (%zu ops each): child peak RSS %ld MB\n", k,
           (size_t)SHOAL__MAX_OPS, ru.ru_maxrss / 1024);
    /* The state the child left: all K wait, nothing applied. */
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    REQUIRE(r);
    uint64_t pending = 0;
    CHECK_EQ(shoal_pending_count(r, &pending), SHOAL_OK);
    CHECK_EQ(pending, k);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
    shoal__buf_free(&bundle);
    for (size_t i = 0; i < k; i++)
        shoal__buf_free(&envs[i]);
    free(envs);
    free(ep);
}

/* A change too big to keep decoded is applied from a second decode, from
 * the bundle and from the pending set, with the same result. */
static void
test_import_redecode(void)
{
    enum {
        BIG = 600000
    }; /* ops: more than an import keeps decoded */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    uint64_t hlc = shoal__hlc_make(now_ms(), 0);
    shoal__buf c1, c2;
    shoal__buf_init(&c1);
    shoal__buf_init(&c2);
    shoal__op one = op_set("f", "one");
    REQUIRE(make_body_env(&c1, pk, sk, 1, hlc, NULL, 0, &one, 1) == SHOAL_OK);
    uint8_t id1[32];
    shoal__change_id(c1.p, c1.len, id1);
    shoal__op *ops = text_run_ops(BIG, hlc + 1);
    REQUIRE(ops);
    REQUIRE(make_body_env(&c2, pk, sk, 2, hlc + 1, id1, 1, ops, BIG) == SHOAL_OK);
    free(ops);

    for (int order = 0; order < 2; order++) {
        char *dir = check_tmpdir("bundle-redecode");
        shoal_replica *r = check_replica_open(dir, NULL, NULL);
        REQUIRE(r);
        shoal_import_result res;
        shoal__buf bb;
        if (order == 0) {
            /* Both in one bundle: the big one from a second decode. */
            shoal__buf *e[] = { &c2, &c1 };
            make_bundle(&bb, e, 2);
            CHECK_EQ(import_buf(r, &bb, &res), SHOAL_OK);
            CHECK_EQ(res.applied, 2);
            shoal__buf_free(&bb);
        } else {
            /* The big one waits, then applies from the pending set. */
            shoal__buf *e2[] = { &c2 }, *e1[] = { &c1 };
            make_bundle(&bb, e2, 1);
            CHECK_EQ(import_buf(r, &bb, &res), SHOAL_OK);
            CHECK_EQ(res.pending, 1);
            shoal__buf_free(&bb);
            make_bundle(&bb, e1, 1);
            CHECK_EQ(import_buf(r, &bb, &res), SHOAL_OK);
            CHECK_EQ(res.applied, 2); /* counts the one from the pending set */
            shoal__buf_free(&bb);
        }
        uint64_t pending = 9;
        CHECK_EQ(shoal_pending_count(r, &pending), SHOAL_OK);
        CHECK_EQ(pending, 0);
        shoal_doc *d;
        REQUIRE(shoal_doc_get(r, "c", "d", &d) == SHOAL_OK);
        size_t i, len = 0;
        shoal_value v;
        CHECK_EQ(shoal_doc_field_find(d, "l", &i), SHOAL_OK);
        CHECK_EQ(shoal_doc_field_list_len(d, i, &len), SHOAL_OK);
        CHECK_EQ(len, BIG);
        /* Typed at the head one after the other: "abc..." in order. */
        CHECK(shoal_doc_field_list_item(d, i, BIG - 1, &v) == SHOAL_OK && v.type == SHOAL_T_STR &&
              v.len == 1 && v.ptr[0] == 'a' + (BIG - 1) % 26);
        shoal_doc_free(d);
        CHECK(check_has_str(r, "c", "d", "f", "one"));
        shoal_replica_close(r);
        check_rmtree(dir);
        free(dir);
    }
    shoal__buf_free(&c1);
    shoal__buf_free(&c2);
}

/* A large bundle verifies on several threads (core/bundle.c): one bad
 * signature at the first, middle, last or a random index still rejects the
 * whole bundle, with the error of the lowest-index bad envelope, and the
 * state untouched; the same bundle intact applies in full. */
enum {
    BIG = 300
};

static void
test_large_bad_signature(void)
{
    fix f;
    REQUIRE(fix_open(&f));
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    uint64_t hlc = shoal__hlc_make(now_ms(), 0);
    shoal__buf bb;
    shoal__buf_init(&bb);
    REQUIRE(shoal__bundle_begin(&bb) == SHOAL_OK);
    size_t off[BIG], len[BIG];
    shoal__op op = op_set("f", "v");
    for (size_t i = 0; i < BIG; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "big%zu", i % 37);
        size_t at = bb.len;
        REQUIRE(make_env(&bb, pk, sk, i + 1, hlc + i, NULL, 0, doc, &op, 1, false) == SHOAL_OK);
        off[i] = at;
        len[i] = bb.len - at;
    }
    shoal__bundle_finish(&bb, BIG);
    size_t rnd = (size_t)check_rand_below(BIG);
    size_t where[] = { 0, 1, BIG / 2 - 1, BIG / 2, BIG / 2 + 1, BIG - 1, rnd };
    uint8_t *q = dup_bytes(bb.p, bb.len, 0);
    REQUIRE(q);
    for (size_t w = 0; w < sizeof where / sizeof *where; w++) {
        size_t i = where[w];
        /* A flipped signature byte, then a flipped body byte (the signature
         * covers it). */
        size_t pos[2] = { off[i] + len[i] - 1 - (size_t)check_rand_below(64),
                          off[i] + 37 + (size_t)check_rand_below(len[i] - 37 - 64) };
        for (int k = 0; k < 2; k++) {
            memcpy(q, bb.p, bb.len);
            q[pos[k]] ^= 0x01;
            expect_reject(&f, q, bb.len, SHOAL_EBADSIG, "big bundle, bad signature", i);
        }
    }
    /* Two bad envelopes: the lower index decides.  A bad version byte is a
     * header error (SHOAL_EVERSION), found before any signature is checked;
     * a bad signature before it still wins. */
    size_t lo = 3 + (size_t)check_rand_below(BIG / 2),
           hi = BIG / 2 + (size_t)check_rand_below(BIG / 2);
    memcpy(q, bb.p, bb.len);
    q[off[lo] + len[lo] - 1] ^= 0x01;
    q[off[hi]] = 9;
    expect_reject(&f, q, bb.len, SHOAL_EBADSIG, "bad signature before bad version", lo);
    memcpy(q, bb.p, bb.len);
    q[off[lo]] = 9;
    q[off[hi] + len[hi] - 1] ^= 0x01;
    expect_reject(&f, q, bb.len, SHOAL_EVERSION, "bad version before bad signature", lo);
    /* Bad signatures at both ends and in the middle at once. */
    memcpy(q, bb.p, bb.len);
    q[off[0] + len[0] - 1] ^= 0x01;
    q[off[BIG / 2] + len[BIG / 2] - 1] ^= 0x01;
    q[off[BIG - 1] + len[BIG - 1] - 1] ^= 0x01;
    expect_reject(&f, q, bb.len, SHOAL_EBADSIG, "three bad signatures", 0);
    /* Trailing garbage after good envelopes: EPROTO, checked last. */
    uint8_t *t = dup_bytes(bb.p, bb.len, 1);
    REQUIRE(t);
    t[bb.len] = 0;
    expect_reject(&f, t, bb.len + 1, SHOAL_EPROTO, "trailing byte", bb.len);
    t[off[7] + len[7] - 1] ^= 0x01;
    expect_reject(&f, t, bb.len + 1, SHOAL_EBADSIG, "bad signature and trailing byte", 7);
    free(t);
    free(q);
    /* Intact, it applies in full. */
    shoal_import_result res;
    CHECK_EQ(import_buf(f.dst, &bb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, BIG);
    CHECK(check_has_str(f.dst, "c", "big0", "f", "v"));
    shoal__buf_free(&bb);
    fix_close(&f);
}

/* The verify helpers are shared by the process (core/bundle.c): imports of
 * large bundles on several threads at once, each into its own replica,
 * each get their own verdict (a bad signature is never lost or lent to
 * another import, a good bundle never refused), and a child forked after
 * the helpers exist verifies on its own (it has none of them). */
typedef struct pool_arg {
    const uint8_t *good, *bad;
    size_t n;
    int fails;
} pool_arg;

static int
pool_rounds(const pool_arg *a)
{
    int fails = 0;
    char *dir = check_tmpdir("bundle-pool");
    shoal_replica *r = check_replica_open(dir, NULL, NULL);
    if (!r) {
        fails++;
        goto out;
    }
    for (int k = 0; k < 6; k++) {
        shoal_import_result res;
        bool good = k == 2 || k == 5;
        shoal_err err = shoal_import(r, good ? a->good : a->bad, a->n, &res);
        if (good ? err != SHOAL_OK : err != SHOAL_EBADSIG)
            fails++;
        if (good && (res.applied + res.duplicate != BIG || (k == 2 && res.applied != BIG)))
            fails++;
    }
out:
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
    return fails;
}

static void *
pool_thread(void *p)
{
    pool_arg *a = p;
    a->fails = pool_rounds(a);
    return NULL;
}

static void
test_verify_pool(void)
{
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    uint64_t hlc = shoal__hlc_make(now_ms(), 0);
    shoal__buf bb;
    shoal__buf_init(&bb);
    REQUIRE(shoal__bundle_begin(&bb) == SHOAL_OK);
    size_t off[BIG], len[BIG];
    shoal__op op = op_set("f", "v");
    for (size_t i = 0; i < BIG; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "pool%zu", i % 11);
        size_t at = bb.len;
        REQUIRE(make_env(&bb, pk, sk, i + 1, hlc + i, NULL, 0, doc, &op, 1, false) == SHOAL_OK);
        off[i] = at;
        len[i] = bb.len - at;
    }
    shoal__bundle_finish(&bb, BIG);
    uint8_t *q = dup_bytes(bb.p, bb.len, 0);
    REQUIRE(q);
    size_t i = 1 + (size_t)check_rand_below(BIG - 1);
    q[off[i] + len[i] - 1] ^= 0x01;
    enum {
        NTH = 4
    };
    pool_arg a[NTH];
    pthread_t th[NTH];
    bool started[NTH];
    for (int t = 0; t < NTH; t++) {
        a[t] = (pool_arg){ bb.p, q, bb.len, 0 };
        started[t] = pthread_create(&th[t], NULL, pool_thread, &a[t]) == 0;
        CHECK(started[t]);
    }
    for (int t = 0; t < NTH; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        CHECK_EQ(a[t].fails, 0);
    }
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        pool_arg c = { bb.p, q, bb.len, 0 };
        _exit(pool_rounds(&c) == 0 ? 0 : 1);
    }
    int st = -1;
    uint64_t deadline = now_ms() + 120000;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 || now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st = -1;
            break;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(q);
    shoal__buf_free(&bb);
}

/* ------------------------------------------------- equivocation: converge */

/* X signs two versions A and B of seq 2; honest H builds on A (and on its
 * own insert after A's element), honest K builds on B.  Variant 0: both
 * versions edit document d (with the same element id when hA == hB);
 * 1: B deletes d; 2: B edits another document. */
typedef struct scen {
    tkey x, h, k;
    tenv x1, a, b, h1, h2, k1, z1;
    uint64_t h0, ha, hb;
    int variant;
} scen;

static void
scen_free(scen *c)
{
    tenv *all[] = { &c->x1, &c->a, &c->b, &c->h1, &c->h2, &c->k1, &c->z1 };
    for (size_t i = 0; i < 7; i++)
        shoal__buf_free(&all[i]->b);
}

static bool
scen_make(scen *c, int variant, const char *tag)
{
    memset(c, 0, sizeof *c);
    tkey_make(&c->x);
    tkey_make(&c->h);
    tkey_make(&c->k);
    c->variant = variant;
    c->h0 = shoal__hlc_make(now_ms(), 0);
    c->ha = c->h0 + 10;
    c->hb = c->h0 + 10 + check_rand_below(2);
    bool ok = true;
    shoal__op o1[] = { t_op(SHOAL__OP_INS, "l", 0, 0, 0, true, "x1") };
    ok &= tenv_make(&c->x1, &c->x, 1, c->h0, NULL, 0, "d", NULL, 0, o1, 1) == 0;
    const tenv *dx1[] = { &c->x1 };
    shoal__op oa[] = { t_op(SHOAL__OP_INS, "l", c->h0, 0, 0, false, "a"),
                       t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, "A"), t_count("n", 1) };
    ok &= tenv_make(&c->a, &c->x, 2, c->ha, dx1, 1, "d", NULL, 0, oa, 3) == 0;
    shoal__op ob0[] = { t_op(SHOAL__OP_INS, "l", c->h0, 0, 0, false, "b"),
                        t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, tag), t_count("n", 5) };
    shoal__op ob1[] = { t_op(SHOAL__OP_DELDOC, NULL, 0, 0, 0, false, NULL) };
    shoal__op ob2[] = { t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, tag),
                        t_op(SHOAL__OP_INS, "l", 0, 0, 0, true, "b") };
    if (variant == 0)
        ok &= tenv_make(&c->b, &c->x, 2, c->hb, dx1, 1, "d", NULL, 0, ob0, 3) == 0;
    else if (variant == 1)
        ok &= tenv_make(&c->b, &c->x, 2, c->hb, dx1, 1, "d", NULL, 0, ob1, 1) == 0;
    else
        ok &= tenv_make(&c->b, &c->x, 2, c->hb, dx1, 1, "e", NULL, 0, ob2, 2) == 0;
    const tenv *da[] = { &c->a };
    shoal__op oh1[] = { t_op(SHOAL__OP_INS, "l", c->ha, 1, 0, false, "h"),
                        t_op(SHOAL__OP_REP, "l", c->ha, 1, 0, false, "hr"),
                        t_op(SHOAL__OP_SET, "g", 0, 0, 0, false, "H"), t_count("n", 2),
                        t_op(SHOAL__OP_INS, "l", c->h0, 1, 0, false, "h3") };
    ok &= tenv_make(&c->h1, &c->h, 1, c->h0 + 20, da, 1, "d", c->x.pk, 1, oh1, 5) == 0;
    const tenv *dh1[] = { &c->h1 };
    shoal__op oh2[] = { t_op(SHOAL__OP_INS, "l", c->h0 + 20, 0, 0, false, "h4") };
    ok &= tenv_make(&c->h2, &c->h, 2, c->h0 + 30, dh1, 1, "d", NULL, 0, oh2, 1) == 0;
    const tenv *db[] = { &c->b };
    shoal__op ok0[] = { t_op(SHOAL__OP_INS, "l", c->hb, 1, 0, false, "k"),
                        t_op(SHOAL__OP_DEL, "l", c->hb, 1, 0, false, NULL), t_count("n", 3) };
    shoal__op ok1[] = { t_op(SHOAL__OP_SET, "g", 0, 0, 0, false, "K") };
    shoal__op ok2[] = { t_op(SHOAL__OP_INS, "l", c->hb, 1, 1, false, "k") };
    if (variant == 0)
        ok &= tenv_make(&c->k1, &c->k, 1, c->h0 + 21, db, 1, "d", c->x.pk, 1, ok0, 3) == 0;
    else if (variant == 1)
        ok &= tenv_make(&c->k1, &c->k, 1, c->h0 + 21, db, 1, "d", c->x.pk, 1, ok1, 1) == 0;
    else
        ok &= tenv_make(&c->k1, &c->k, 1, c->h0 + 21, db, 1, "e", c->x.pk, 1, ok2, 1) == 0;
    shoal__op oz[] = { t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, "z") };
    ok &= tenv_make(&c->z1, &c->k, 2, c->h0 + 40, NULL, 0, "z", NULL, 0, oz, 1) == 0;
    return ok;
}

static bool
snap_eq_digests(shoal_replica *a, shoal_replica *b)
{
    check_snap x, y;
    if (!check_snap_take(a, &x) || !check_snap_take(b, &y))
        return false;
    return memcmp(x.full, y.full, 32) == 0 && memcmp(x.vis, y.vis, 32) == 0 &&
           x.pending == y.pending && memcmp(x.vvsum, y.vvsum, 32) == 0;
}

static void
test_equiv_converge(void)
{
    for (int iter = 0; iter < 9; iter++) {
        scen c;
        char tag[16];
        snprintf(tag, sizeof tag, "B%d", iter);
        REQUIRE(scen_make(&c, iter % 3, tag));
        bool a_wins = memcmp(c.a.id, c.b.id, 32) < 0;
        char *d1 = check_tmpdir("equiv-r1"), *d2 = check_tmpdir("equiv-r2"),
             *d3 = check_tmpdir("equiv-r3");
        shoal_replica *r1 = check_replica_open(d1, NULL, NULL),
                      *r2 = check_replica_open(d2, NULL, NULL),
                      *r3 = check_replica_open(d3, NULL, NULL);
        REQUIRE(r1 && r2 && r3);
        shoal_import_result res;
        tenv *s1[] = { &c.x1, &c.a, &c.h1, &c.h2 };
        tenv *s1b[] = { &c.b, &c.k1, &c.z1 };
        tenv *s2[] = { &c.x1, &c.b, &c.k1, &c.z1 };
        tenv *s2b[] = { &c.a, &c.h1, &c.h2 };
        CHECK_EQ(import_envs(r1, s1, 4, &res), SHOAL_OK);
        CHECK_EQ(res.applied, 4);
        CHECK_EQ(import_envs(r1, s1b, 3, &res), SHOAL_OK);
        CHECK_EQ(res.equivocations, 1);
        CHECK_EQ(import_envs(r2, s2, 4, &res), SHOAL_OK);
        CHECK_EQ(res.applied, 4);
        CHECK_EQ(import_envs(r2, s2b, 3, &res), SHOAL_OK);
        CHECK_EQ(res.equivocations, 1);
        /* r3: one change per import, in a random order. */
        tenv *all[] = { &c.x1, &c.a, &c.b, &c.h1, &c.h2, &c.k1, &c.z1 };
        for (size_t i = 7; i > 1; i--) {
            size_t j = check_rand_below(i);
            tenv *tmp = all[i - 1];
            all[i - 1] = all[j];
            all[j] = tmp;
        }
        for (size_t i = 0; i < 7; i++)
            CHECK_EQ(import_envs(r3, &all[i], 1, &res), SHOAL_OK);
        uint64_t pc = 99;
        CHECK(shoal_pending_count(r1, &pc) == SHOAL_OK && pc == 0);
        CHECK(shoal_pending_count(r2, &pc) == SHOAL_OK && pc == 0);
        CHECK(shoal_pending_count(r3, &pc) == SHOAL_OK && pc == 0);
        if (!snap_eq_digests(r1, r2) || !snap_eq_digests(r1, r3)) {
            fprintf(stderr, "iteration %d (variant %d, %s wins): replicas differ\n", iter, iter % 3,
                    a_wins ? "A" : "B");
            check_failures++;
        }
        /* The canonical version's effects are visible, the other's not. */
        if (a_wins)
            CHECK(check_has_str(r1, "c", "d", "f", "A"));
        else if (c.variant == 0)
            CHECK(check_has_str(r1, "c", "d", "f", tag));
        else if (c.variant == 2)
            CHECK(check_has_str(r1, "c", "e", "f", tag) && !check_has_str(r1, "c", "d", "f", "A"));
        CHECK(names_equivocator(r1, &c.x) && names_equivocator(r2, &c.x) &&
              names_equivocator(r3, &c.x));
        /* Exchanging everything (bundles carry the evidence) changes
         * nothing more. */
        check_snap before;
        CHECK(check_snap_take(r1, &before));
        CHECK_EQ(pour(r1, r2), SHOAL_OK);
        CHECK_EQ(pour(r2, r1), SHOAL_OK);
        CHECK(snap_eq_digests(r1, r2));
        check_snap after;
        CHECK(check_snap_take(r1, &after) && check_snap_same(&before, &after));
        /* A reopen keeps it all. */
        shoal_replica_close(r1);
        shoal_replica_close(r2);
        r1 = check_replica_open(d1, NULL, NULL);
        r2 = check_replica_open(d2, NULL, NULL);
        REQUIRE(r1 && r2);
        CHECK(check_snap_take(r1, &after) && check_snap_same(&before, &after));
        CHECK(snap_eq_digests(r1, r2) && snap_eq_digests(r1, r3));
        CHECK(names_equivocator(r1, &c.x) && names_equivocator(r2, &c.x));
        /* A new local change on top of the rebuilt document applies. */
        CHECK_EQ(check_set_str(r1, "c", "d", "w", "after"), SHOAL_OK);
        CHECK_EQ(pour(r1, r2), SHOAL_OK);
        CHECK(snap_eq_digests(r1, r2));
        shoal_replica_close(r1);
        shoal_replica_close(r2);
        shoal_replica_close(r3);
        check_rmtree(d1);
        check_rmtree(d2);
        check_rmtree(d3);
        free(d1);
        free(d2);
        free(d3);
        scen_free(&c);
    }
}

/* Make the scenario with B's id below A's (retrying B's tag). */
static bool
scen_b_wins(scen *c, int variant, char *tag, size_t cap)
{
    for (int i = 0; i < 64; i++) {
        snprintf(tag, cap, "B%d", i);
        if (!scen_make(c, variant, tag))
            return false;
        if (memcmp(c->b.id, c->a.id, 32) < 0 && c->hb != c->ha)
            return true;
        scen_free(c);
    }
    return false;
}

/* Ops built on the losing version's elements are no-ops everywhere; a
 * replica that only ever held the winner applies the changes built on the
 * loser once the loser's envelope arrives as evidence. */
static void
test_dangling_refs(void)
{
    scen c;
    char tag[16];
    REQUIRE(scen_b_wins(&c, 0, tag, sizeof tag));
    char *d1 = check_tmpdir("dangle-1"), *d2 = check_tmpdir("dangle-2");
    shoal_replica *r1 = check_replica_open(d1, NULL, NULL),
                  *r2 = check_replica_open(d2, NULL, NULL);
    REQUIRE(r1 && r2);
    shoal_import_result res;
    /* r1 applies A and the changes built on it, then B replaces A. */
    tenv *s1[] = { &c.x1, &c.a, &c.h1, &c.h2 };
    CHECK_EQ(import_envs(r1, s1, 4, &res), SHOAL_OK);
    char l[256];
    CHECK(list_str(r1, "d", "l", l, sizeof l) && strcmp(l, "x1,h3,hr,h,h4") == 0);
    tenv *s1b[] = { &c.b };
    CHECK_EQ(import_envs(r1, s1b, 1, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    CHECK_EQ(res.equivocations, 1);
    /* RGA after x1: h3 (greater id) before b; h (after A's element), the
     * REP of it and h4 (after h) are gone. */
    CHECK(list_str(r1, "d", "l", l, sizeof l) && strcmp(l, "x1,h3,b") == 0);
    if (strcmp(l, "x1,h3,b") != 0)
        fprintf(stderr, "list after the swap: %s\n", l);
    CHECK(check_has_str(r1, "c", "d", "f", tag) && check_has_str(r1, "c", "d", "g", "H"));
    /* r2 holds only the winner: the changes built on A wait ... */
    tenv *s2[] = { &c.x1, &c.b, &c.h1, &c.h2 };
    CHECK_EQ(import_envs(r2, s2, 4, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 2);
    CHECK_EQ(res.pending, 2);
    /* ... until A's envelope arrives: evidence, and their dependency. */
    tenv *s2b[] = { &c.a };
    CHECK_EQ(import_envs(r2, s2b, 1, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 2); /* h1 and h2, from the pending set; not A */
    CHECK_EQ(res.equivocations, 1);
    uint64_t pc = 9;
    CHECK(shoal_pending_count(r2, &pc) == SHOAL_OK && pc == 0);
    CHECK(list_str(r2, "d", "l", l, sizeof l) && strcmp(l, "x1,h3,b") == 0);
    CHECK(snap_eq_digests(r1, r2));
    /* Replays of either version or of the honest changes: no-ops. */
    check_snap before, after;
    CHECK(check_snap_take(r1, &before));
    tenv *again[] = { &c.a, &c.b, &c.h1, &c.x1 };
    CHECK_EQ(import_envs(r1, again, 4, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 0);
    CHECK_EQ(res.equivocations, 0);
    CHECK_EQ(res.duplicate, 4);
    CHECK(check_snap_take(r1, &after) && check_snap_same(&before, &after));
    shoal_replica_close(r1);
    shoal_replica_close(r2);
    check_rmtree(d1);
    check_rmtree(d2);
    free(d1);
    free(d2);
    scen_free(&c);
}

typedef struct evc {
    const uint8_t *author;
    size_t n, all;
    uint8_t min[32];
} evc;

static int
evc_cb(const uint8_t author[32], uint64_t seq, const uint8_t cid[32], const shoal__sval *env,
       void *arg)
{
    (void)seq;
    (void)env;
    evc *e = arg;
    e->all++;
    if (memcmp(author, e->author, 32) == 0) {
        if (e->n == 0 || memcmp(cid, e->min, 32) < 0)
            memcpy(e->min, cid, 32);
        e->n++;
    }
    return 0;
}

static int
evc_fn(shoal__stxn *t, void *arg)
{
    return shoal__stxn_evidence_scan(t, evc_cb, arg);
}

typedef struct swc {
    const uint8_t *author;
    uint64_t seq;
    uint8_t cid[32];
    int as;
    bool has_a, has_b;
    const uint8_t *a, *b;
} swc;

static int
swc_fn(shoal__stxn *t, void *arg)
{
    swc *w = arg;
    w->as = shoal__stxn_authseq_get(t, w->author, w->seq, w->cid);
    w->has_a = shoal__stxn_change_has(t, w->a);
    w->has_b = shoal__stxn_change_has(t, w->b);
    return SHOAL_OK;
}

static void
store_check(const char *dir, swc *w, evc *e)
{
    shoal__store *s;
    shoal__store_opts so = { .durable = false };
    uint8_t spk[32];
    uint8_t *ssk = NULL;
    char eb[256];
    if (store_open_id(&s, dir, &so, spk, &ssk, eb, sizeof eb) != SHOAL_OK) {
        check_failures++;
        return;
    }
    if (w)
        CHECK_EQ(shoal__store_read(s, swc_fn, w), SHOAL_OK);
    if (e)
        CHECK_EQ(shoal__store_read(s, evc_fn, e), SHOAL_OK);
    shoal__identity_free(ssk);
    shoal__store_close(s);
}

/* Many versions of one seq: evidence stays bounded (the canonical plus one
 * other), the state converges on the smallest id whatever the order. */
static void
test_evidence_bound(void)
{
    enum {
        NV = 40
    };
    tkey x;
    tkey_make(&x);
    uint64_t h0 = shoal__hlc_make(now_ms(), 0);
    tenv x1, v[NV];
    shoal__op o1[] = { t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, "one") };
    REQUIRE(tenv_make(&x1, &x, 1, h0, NULL, 0, "d", NULL, 0, o1, 1) == 0);
    size_t min = 0;
    char vals[NV][8];
    for (size_t i = 0; i < NV; i++) {
        snprintf(vals[i], sizeof vals[i], "v%zu", i);
        shoal__op o[] = { t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, vals[i]) };
        const tenv *dx[] = { &x1 };
        REQUIRE(tenv_make(&v[i], &x, 2, h0 + 1 + i, dx, 1, "d", NULL, 0, o, 1) == 0);
        if (memcmp(v[i].id, v[min].id, 32) < 0)
            min = i;
    }
    char *d1 = check_tmpdir("evb-1"), *d2 = check_tmpdir("evb-2");
    shoal_replica *r1 = check_replica_open(d1, NULL, NULL),
                  *r2 = check_replica_open(d2, NULL, NULL);
    REQUIRE(r1 && r2);
    tenv *first[] = { &x1 };
    CHECK_EQ(import_envs(r1, first, 1, NULL), SHOAL_OK);
    CHECK_EQ(import_envs(r2, first, 1, NULL), SHOAL_OK);
    /* r1: in index order, a few per bundle; r2: reversed, one by one. */
    for (size_t i = 0; i < NV; i += 5) {
        tenv *b[5];
        for (size_t j = 0; j < 5; j++)
            b[j] = &v[i + j];
        CHECK_EQ(import_envs(r1, b, 5, NULL), SHOAL_OK);
    }
    for (size_t i = NV; i > 0; i--) {
        tenv *b[] = { &v[i - 1] };
        CHECK_EQ(import_envs(r2, b, 1, NULL), SHOAL_OK);
    }
    CHECK(check_has_str(r1, "c", "d", "f", vals[min]) &&
          check_has_str(r2, "c", "d", "f", vals[min]));
    CHECK(snap_eq_digests(r1, r2));
    CHECK(names_equivocator(r1, &x) && names_equivocator(r2, &x));
    shoal_replica_close(r1);
    shoal_replica_close(r2);
    const char *dirs[] = { d1, d2 };
    for (size_t i = 0; i < 2; i++) {
        evc e = { .author = x.pk };
        store_check(dirs[i], NULL, &e);
        CHECK_EQ(e.n, 2);
        CHECK_EQ(e.all, 2);
        CHECK(memcmp(e.min, v[min].id, 32) == 0);
    }
    check_rmtree(d1);
    check_rmtree(d2);
    free(d1);
    free(d2);
    shoal__buf_free(&x1.b);
    for (size_t i = 0; i < NV; i++)
        shoal__buf_free(&v[i].b);
}

/* The swap through the lagging indexes: A applied, hundreds of changes
 * after it, then B (smaller) replaces it, more changes cross the index
 * batch of 256; after a reopen the indexes, the version vector, the log
 * (export) and the state are those of a replica that only ever had B. */
static void
test_swap_reopen(void)
{
    scen c;
    char tag[16];
    REQUIRE(scen_b_wins(&c, 0, tag, sizeof tag));
    enum {
        NH = 300
    };
    tenv *hs = calloc(2 * NH, sizeof *hs);
    REQUIRE(hs);
    for (size_t i = 0; i < 2 * NH; i++) {
        char val[16], doc[16];
        snprintf(val, sizeof val, "%zu", i);
        snprintf(doc, sizeof doc, "h%zu", i % 7);
        shoal__op o[] = { t_op(SHOAL__OP_SET, "f", 0, 0, 0, false, val) };
        REQUIRE(tenv_make(&hs[i], &c.h, 1 + i, c.h0 + 100 + i, NULL, 0, doc, NULL, 0, o, 1) == 0);
    }
    char *d1 = check_tmpdir("swap-1"), *d2 = check_tmpdir("swap-2");
    shoal_replica *r1 = check_replica_open(d1, NULL, NULL),
                  *r2 = check_replica_open(d2, NULL, NULL);
    REQUIRE(r1 && r2);
    tenv *pre[] = { &c.x1, &c.a };
    CHECK_EQ(import_envs(r1, pre, 2, NULL), SHOAL_OK);
    for (size_t i = 0; i < NH; i += 10)
        CHECK_EQ(
            import_envs(r1,
                        (tenv *[]){ &hs[i], &hs[i + 1], &hs[i + 2], &hs[i + 3], &hs[i + 4],
                                    &hs[i + 5], &hs[i + 6], &hs[i + 7], &hs[i + 8], &hs[i + 9] },
                        10, NULL),
            SHOAL_OK);
    tenv *sw[] = { &c.b };
    shoal_import_result res;
    CHECK_EQ(import_envs(r1, sw, 1, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    for (size_t i = NH; i < 2 * NH; i++)
        CHECK_EQ(import_envs(r1, (tenv *[]){ &hs[i] }, 1, NULL), SHOAL_OK);
    /* r2: only ever B. */
    tenv *pre2[] = { &c.x1, &c.b };
    CHECK_EQ(import_envs(r2, pre2, 2, NULL), SHOAL_OK);
    for (size_t i = 0; i < 2 * NH; i++)
        CHECK_EQ(import_envs(r2, (tenv *[]){ &hs[i] }, 1, NULL), SHOAL_OK);
    CHECK(snap_eq_digests(r1, r2));
    uint8_t *p;
    size_t n;
    REQUIRE(shoal_export(r1, NULL, &p, &n) == SHOAL_OK);
    shoal__span *sp;
    size_t cnt;
    REQUIRE(shoal__bundle_split(p, n, &sp, &cnt) == SHOAL_OK);
    /* Applied changes (A not among them), then the evidence A. */
    CHECK_EQ(cnt, 2 + 2 * NH + 1);
    bool a_last = cnt > 0 && sp[cnt - 1].len == c.a.b.len &&
                  memcmp(p + sp[cnt - 1].off, c.a.b.p, c.a.b.len) == 0;
    CHECK(a_last);
    shoal__free(sp);
    shoal_free(p);
    shoal_replica_close(r1);
    shoal_replica_close(r2);
    swc w = { .author = c.x.pk, .seq = 2, .a = c.a.id, .b = c.b.id };
    store_check(d1, &w, NULL);
    CHECK_EQ(w.as, SHOAL_OK);
    CHECK(memcmp(w.cid, c.b.id, 32) == 0);
    CHECK(!w.has_a && w.has_b);
    r1 = check_replica_open(d1, NULL, NULL);
    r2 = check_replica_open(d2, NULL, NULL);
    REQUIRE(r1 && r2);
    CHECK(snap_eq_digests(r1, r2));
    shoal_vv *vv;
    REQUIRE(shoal_replica_version(r1, &vv) == SHOAL_OK);
    CHECK_EQ(shoal_vv_get(vv, c.x.pk), 2);
    CHECK_EQ(shoal_vv_get(vv, c.h.pk), 2 * NH);
    shoal_vv_free(vv);
    shoal_replica_close(r1);
    shoal_replica_close(r2);
    check_rmtree(d1);
    check_rmtree(d2);
    free(d1);
    free(d2);
    for (size_t i = 0; i < 2 * NH; i++)
        shoal__buf_free(&hs[i].b);
    free(hs);
    scen_free(&c);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    check_seed(1);
    RUN(test_good_then_replay);
    RUN(test_truncated);
    RUN(test_flipped_bytes);
    RUN(test_forged_and_foreign);
    RUN(test_one_bad_among_good);
    RUN(test_equivocation);
    RUN(test_equiv_converge);
    RUN(test_dangling_refs);
    RUN(test_evidence_bound);
    RUN(test_swap_reopen);
    RUN(test_causal_order);
    RUN(test_import_redecode);
    RUN(test_import_memory);
    RUN(test_large_bad_signature);
    RUN(test_verify_pool);
    return check_summary();
}
