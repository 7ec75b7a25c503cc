/*
 * test/store/test_store.c - the LMDB store against real files in temp dirs.
 *
 * Covers the layout and persistence of every table, scan order and prefix
 * filtering, rollback, map growth (in one txn, across txns, and by another
 * process), a full disk and a read-only directory (on small tmpfs mounts;
 * skipped, and not counted as passed, when mounting is not permitted), two
 * processes on one directory, and the non-durable mode.
 */
#include "check.h"
#include "store.h"
#include "core.h" /* the identity (core/identity.c) */

#include <lmdb.h> /* test_batch reads the file as another process would */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define U8(s) ((const uint8_t *)(s))

static char errbuf[256];

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

static shoal__store *
open_store(const char *dir, bool durable, uint64_t map, uint8_t pk[32], uint8_t **sk)
{
    shoal__store_opts o = { .durable = durable, .map_size = map };
    shoal__store *s = NULL;
    int rc = store_open_id(&s, dir, &o, pk, sk, errbuf, sizeof errbuf);
    if (rc != SHOAL_OK)
        fprintf(stderr, "open %s: %d %s\n", dir, rc, errbuf);
    return s;
}

static void
fill_bytes(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(seed >> 56);
    }
}

static void
make_id(uint8_t id[32], uint8_t tag, uint64_t n)
{
    memset(id, tag, 32);
    for (int i = 0; i < 8; i++)
        id[31 - i] = (uint8_t)(n >> (8 * i));
}

static bool
sval_eq(const shoal__sval *v, const void *p, size_t n)
{
    return v->len == n && (n == 0 || memcmp(v->p, p, n) == 0);
}

/* ------------------------------------------------------------ fixture */

enum {
    NCHANGES = 6
};

static uint8_t author_a[32], author_b[32];
static uint8_t cids[NCHANGES][32];
static uint8_t *envs[NCHANGES];
static size_t env_lens[NCHANGES];

static void
fixture_init(void)
{
    memset(author_a, 0xA1, 32);
    memset(author_b, 0xB2, 32);
    for (int i = 0; i < NCHANGES; i++) {
        make_id(cids[i], (uint8_t)(0x90 - i * 7), (uint64_t)i);
        /* Some envelopes are bigger than a page (LMDB overflow pages). */
        env_lens[i] = 20 + check_rand_below(i % 2 ? 9000 : 300);
        envs[i] = malloc(env_lens[i]);
        if (!envs[i])
            abort();
        fill_bytes(envs[i], env_lens[i], check_rand());
    }
}

static void
fixture_free(void)
{
    for (int i = 0; i < NCHANGES; i++) {
        free(envs[i]);
        envs[i] = NULL;
    }
}

static const uint8_t *
change_author(int i)
{
    return i % 2 ? author_b : author_a;
}
static uint64_t
change_seq(int i)
{
    return (uint64_t)(i / 2 + 1);
}

struct doc_spec {
    const char *coll, *id, *meta;
};
static const struct doc_spec docs[] = {
    { "b", "z", "meta b/z" }, { "a", "y", "meta a/y" },   { "ab", "x", "meta ab/x" },
    { "a", "x", "meta a/x" }, { "a", "xy", "meta a/xy" },
};
enum {
    NDOCS = sizeof docs / sizeof docs[0]
};

static int
put_doc(shoal__stxn *t, const char *coll, const char *id, const char *meta)
{
    return shoal__stxn_doc_put(t, U8(coll), strlen(coll), U8(id), strlen(id), meta, strlen(meta),
                               0);
}

static int
fixture_write(shoal__stxn *t, void *arg)
{
    (void)arg;
    int rc;
    uint8_t clock[8] = { 0, 0, 1, 2, 3, 4, 5, 6 };
    if ((rc = shoal__stxn_meta_put(t, "format", "1", 1)) ||
        (rc = shoal__stxn_meta_put(t, "clock", clock, 8)))
        return rc;
    for (int i = 0; i < NCHANGES; i++) {
        uint64_t pos = 0;
        rc = shoal__stxn_change_put(t, cids[i], envs[i], env_lens[i], change_author(i),
                                    change_seq(i), 1000 + (uint64_t)i, &pos);
        if (rc)
            return rc;
        if (pos != (uint64_t)i + 1)
            return SHOAL_EINVAL;
    }
    for (int i = 0; i < 3; i++) {
        uint8_t cid[32], env[100];
        make_id(cid, 0x50, (uint64_t)(3 - i));
        fill_bytes(env, sizeof env, (uint64_t)i);
        if ((rc = shoal__stxn_pending_put(t, cid, env, 10 + (size_t)i * 30)))
            return rc;
    }
    if ((rc = shoal__stxn_evidence_put(t, author_b, 7, cids[1], envs[1], env_lens[1])) ||
        (rc = shoal__stxn_evidence_put(t, author_b, 7, cids[3], envs[3], env_lens[3])))
        return rc;
    for (int i = 0; i < NDOCS; i++)
        if ((rc = put_doc(t, docs[i].coll, docs[i].id, docs[i].meta)))
            return rc;
    if ((rc = shoal__stxn_snap_put(t, U8("a"), 1, U8("x"), 1, "snap a/x", 8)) ||
        (rc = shoal__stxn_snap_put(t, U8("ab"), 2, U8("x"), 1, "snap ab/x", 9)))
        return rc;
    return SHOAL_OK;
}

/* ------------------------------------------------------ scan collectors */

struct logacc {
    int n;
    uint64_t pos[64];
    int bad;
    int stop_after;
};

static int
log_cb(uint64_t pos, const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    struct logacc *a = arg;
    if (a->n < 64) {
        a->pos[a->n] = pos;
        int i = (int)pos - 1;
        if (i < 0 || i >= NCHANGES || memcmp(cid, cids[i], 32) != 0 ||
            !sval_eq(env, envs[i], env_lens[i]))
            a->bad++;
    }
    a->n++;
    if (a->stop_after && a->n == a->stop_after)
        return 42;
    return 0;
}

struct docacc {
    int n;
    char keys[16][64];
    int bad;
};

static int
doc_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
       void *arg)
{
    struct docacc *a = arg;
    if (a->n < 16) {
        snprintf(a->keys[a->n], sizeof a->keys[a->n], "%.*s/%.*s", (int)clen, (const char *)coll,
                 (int)idlen, (const char *)id);
        char want[80];
        snprintf(want, sizeof want, "meta %s", a->keys[a->n]);
        if (!sval_eq(meta, want, strlen(want)))
            a->bad++;
    }
    a->n++;
    return 0;
}

struct nacc {
    int n;
    uint64_t v[32];
    uint8_t tag[32];
};

struct vvacc {
    int n;
    uint8_t first[8];
    uint64_t seq[8];
};

static int
vv_cb(const uint8_t author[32], uint64_t seq, const uint8_t cid[32], void *arg)
{
    struct vvacc *a = arg;
    (void)cid;
    if (a->n < 8) {
        a->first[a->n] = author[0];
        a->seq[a->n] = seq;
    }
    a->n++;
    return 0;
}

static int
pending_cb(const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    struct nacc *a = arg;
    if (a->n < 32) {
        a->v[a->n] = cid[31];
        a->tag[a->n] = (uint8_t)env->len;
    }
    a->n++;
    return 0;
}

static int
evidence_cb(const uint8_t author[32], uint64_t seq, const uint8_t cid[32], const shoal__sval *env,
            void *arg)
{
    struct nacc *a = arg;
    int i = cid[31];
    if (a->n < 32) {
        a->v[a->n] = (uint64_t)i;
        bool ok = author[0] == 0xB2 && seq == 7 && i < NCHANGES && memcmp(cid, cids[i], 32) == 0 &&
                  sval_eq(env, envs[i], env_lens[i]);
        a->tag[a->n] = ok;
    }
    a->n++;
    return 0;
}

/* Verify the whole fixture (and missing keys) inside one read txn. */
static int
fixture_check(shoal__stxn *t, void *arg)
{
    int *fails = arg;
    int before = check_failures;
    shoal__sval v = { NULL, 0 };

    CHECK_EQ(shoal__stxn_meta_get(t, "format", &v), SHOAL_OK);
    CHECK(sval_eq(&v, "1", 1));
    CHECK_EQ(shoal__stxn_meta_get(t, "clock", &v), SHOAL_OK);
    CHECK(v.len == 8 && v.p[7] == 6);
    uint64_t last = 0;
    CHECK_EQ(shoal__stxn_log_last(t, &last, &v), SHOAL_OK);
    CHECK(last == NCHANGES && sval_eq(&v, envs[NCHANGES - 1], env_lens[NCHANGES - 1]));
    uint64_t link = 0;
    CHECK_EQ(shoal__stxn_log_get(t, 2, &v, &link), SHOAL_OK);
    CHECK(sval_eq(&v, envs[1], env_lens[1]) && link == 1001);
    CHECK_EQ(shoal__stxn_log_get(t, NCHANGES, NULL, &link), SHOAL_OK);
    CHECK_EQ(link, 1000 + NCHANGES - 1);
    CHECK_EQ(shoal__stxn_log_get(t, NCHANGES + 1, &v, NULL), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__stxn_meta_get(t, "nope", &v), SHOAL_ENOTFOUND);

    uint8_t missing[32], cid[32];
    make_id(missing, 0x01, 999);
    for (int i = 0; i < NCHANGES; i++) {
        CHECK_EQ(shoal__stxn_change_get(t, cids[i], &v), SHOAL_OK);
        CHECK(sval_eq(&v, envs[i], env_lens[i]));
        CHECK(shoal__stxn_change_has(t, cids[i]));
        memset(cid, 0, 32);
        CHECK_EQ(shoal__stxn_authseq_get(t, change_author(i), change_seq(i), cid), SHOAL_OK);
        CHECK(memcmp(cid, cids[i], 32) == 0);
    }
    CHECK_EQ(shoal__stxn_change_get(t, missing, &v), SHOAL_ENOTFOUND);
    CHECK(!shoal__stxn_change_has(t, missing));
    CHECK_EQ(shoal__stxn_authseq_get(t, author_a, 99, cid), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__stxn_log_count(t), NCHANGES);

    struct logacc la = { 0 };
    CHECK_EQ(shoal__stxn_log_scan(t, 0, log_cb, &la), SHOAL_OK);
    CHECK_EQ(la.n, NCHANGES);
    CHECK_EQ(la.bad, 0);
    for (int i = 0; i < la.n && i < NCHANGES; i++)
        CHECK_EQ(la.pos[i], i + 1);
    memset(&la, 0, sizeof la);
    CHECK_EQ(shoal__stxn_log_scan(t, 4, log_cb, &la), SHOAL_OK);
    CHECK_EQ(la.n, NCHANGES - 3);
    CHECK_EQ(la.pos[0], 4);
    memset(&la, 0, sizeof la);
    la.stop_after = 2;
    CHECK_EQ(shoal__stxn_log_scan(t, 1, log_cb, &la), 42);
    CHECK_EQ(la.n, 2);
    memset(&la, 0, sizeof la);
    CHECK_EQ(shoal__stxn_log_scan(t, NCHANGES + 1, log_cb, &la), SHOAL_OK);
    CHECK_EQ(la.n, 0);

    uint64_t seq = 0;
    CHECK_EQ(shoal__stxn_vv_get(t, author_a, &seq, cid), SHOAL_OK);
    CHECK(seq == 3 && memcmp(cid, cids[4], 32) == 0);
    CHECK_EQ(shoal__stxn_vv_get(t, missing, &seq, cid), SHOAL_ENOTFOUND);
    struct vvacc va = { 0 };
    CHECK_EQ(shoal__stxn_vv_scan(t, vv_cb, &va), SHOAL_OK);
    CHECK(va.n == 2 && va.first[0] == 0xA1 && va.first[1] == 0xB2 && va.seq[1] == 3);

    CHECK_EQ(shoal__stxn_pending_count(t), 3);
    make_id(cid, 0x50, 2);
    CHECK(shoal__stxn_pending_has(t, cid));
    CHECK(!shoal__stxn_pending_has(t, missing));
    struct nacc na = { 0 };
    CHECK_EQ(shoal__stxn_pending_scan(t, pending_cb, &na), SHOAL_OK);
    /* Key order: cid ...01, ...02, ...03 (written 3, 2, 1 with lengths 10, 40, 70). */
    CHECK(na.n == 3 && na.v[0] == 1 && na.v[1] == 2 && na.v[2] == 3);
    CHECK(na.tag[0] == 70 && na.tag[2] == 10);

    memset(&na, 0, sizeof na);
    CHECK_EQ(shoal__stxn_evidence_scan(t, evidence_cb, &na), SHOAL_OK);
    CHECK(na.n == 2 && na.tag[0] && na.tag[1]);

    for (int i = 0; i < NDOCS; i++) {
        const struct doc_spec *d = &docs[i];
        CHECK_EQ(shoal__stxn_doc_get(t, U8(d->coll), strlen(d->coll), U8(d->id), strlen(d->id), &v),
                 SHOAL_OK);
        CHECK(sval_eq(&v, d->meta, strlen(d->meta)));
    }
    CHECK_EQ(shoal__stxn_doc_get(t, U8("a"), 1, U8("q"), 1, &v), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__stxn_doc_get(t, U8("ab"), 2, U8("y"), 1, &v), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__stxn_snap_get(t, U8("a"), 1, U8("x"), 1, &v), SHOAL_OK);
    CHECK(sval_eq(&v, "snap a/x", 8));
    CHECK_EQ(shoal__stxn_snap_get(t, U8("ab"), 2, U8("x"), 1, &v), SHOAL_OK);
    CHECK(sval_eq(&v, "snap ab/x", 9));
    CHECK_EQ(shoal__stxn_snap_get(t, U8("a"), 1, U8("y"), 1, &v), SHOAL_ENOTFOUND);
    *fails += check_failures - before;
    return SHOAL_OK;
}

/* ------------------------------------------------------------- tests */

static void
test_create_reopen(void)
{
    char *base = check_tmpdir("store");
    char *dir = check_path_join(base, "replica"); /* does not exist yet */
    uint8_t pk[32], pk2[32];
    uint8_t *sk = NULL, *sk2 = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s && sk);

    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    char *idp = check_path_join(dir, "identity");
    CHECK(stat(idp, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 64);
    ino_t ino = st.st_ino;
    char *datap = check_path_join(dir, "data.mdb");
    CHECK(stat(datap, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(memcmp(sk + 32, pk, 32) == 0);
    uint8_t zero[32] = { 0 };
    CHECK(memcmp(pk, zero, 32) != 0);

    CHECK_EQ(shoal__store_write(s, fixture_write, NULL), SHOAL_OK);
    int fails = 0;
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    CHECK_EQ(fails, 0);
    shoal__store_close(s);

    s = open_store(dir, true, 0, pk2, &sk2);
    REQUIRE(s && sk2);
    CHECK(memcmp(pk, pk2, 32) == 0);
    CHECK(memcmp(sk, sk2, 64) == 0);
    CHECK(stat(idp, &st) == 0 && st.st_ino == ino); /* not rewritten */
    fails = 0;
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    CHECK_EQ(fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    shoal__identity_free(sk2);
    free(idp);
    free(datap);
    free(dir);
    check_rmtree(base);
    free(base);
}

/* ------------------------------------------------------ the index tail */

/* Changes of three authors committed one per txn, then in bulk: every
 * lookup (change, authseq, version vector) must find each change whether
 * it sits in the indexes or in the unindexed log tail, before and after a
 * reopen; a duplicate is refused wherever the first copy sits. */
/* The store indexes the tail in batches of 256 (store.c TAIL_MAX). */
enum {
    TAIL_TOTAL = 900,
    TAIL_SINGLE = 300
};

static const uint8_t tail_authors[3] = { 0x30, 0x10, 0x20 };

static void
tail_change(int i, uint8_t cid[32], uint8_t author[32], uint64_t *seq, uint8_t env[48])
{
    make_id(cid, 0xE0, (uint64_t)i);
    memset(author, tail_authors[i % 3], 32);
    *seq = (uint64_t)(i / 3 + 1);
    fill_bytes(env, 48, (uint64_t)i * 7 + 1);
}

struct tail_range {
    int from, to;
};

static int
tail_put_fn(shoal__stxn *t, void *arg)
{
    const struct tail_range *r = arg;
    for (int i = r->from; i < r->to; i++) {
        uint8_t cid[32], author[32], env[48];
        uint64_t seq, pos = 0;
        tail_change(i, cid, author, &seq, env);
        int rc = shoal__stxn_change_put(t, cid, env, sizeof env, author, seq, 0, &pos);
        if (rc)
            return rc;
        if (pos != (uint64_t)i + 1)
            return SHOAL_EINVAL;
        /* Visible at once, in the same txn. */
        if (!shoal__stxn_change_has(t, cid))
            return SHOAL_EINVAL;
    }
    return SHOAL_OK;
}

static int
tail_dup_fn(shoal__stxn *t, void *arg)
{
    int i = *(int *)arg;
    uint8_t cid[32], author[32], env[48];
    uint64_t seq, pos;
    tail_change(i, cid, author, &seq, env);
    return shoal__stxn_change_put(t, cid, env, sizeof env, author, seq, 0, &pos);
}

struct tail_vv {
    int n;
    uint8_t first[4];
    uint64_t seq[4];
    int bad;
};

static int
tail_vv_cb(const uint8_t author[32], uint64_t seq, const uint8_t cid[32], void *arg)
{
    struct tail_vv *a = arg;
    if (a->n < 4) {
        a->first[a->n] = author[0];
        a->seq[a->n] = seq;
        uint8_t want[32];
        int i = (int)(seq - 1) * 3;
        while (tail_authors[i % 3] != author[0])
            i++;
        make_id(want, 0xE0, (uint64_t)i);
        if (memcmp(cid, want, 32) != 0)
            a->bad++;
    }
    a->n++;
    return 0;
}

/* Check changes [0, n): every lookup, and the vector. */
static int
tail_check_fn(shoal__stxn *t, void *arg)
{
    int n = *(int *)arg;
    int before = check_failures;
    for (int i = 0; i < n; i++) {
        uint8_t cid[32], author[32], env[48], got[32];
        uint64_t seq;
        tail_change(i, cid, author, &seq, env);
        shoal__sval v = { NULL, 0 };
        CHECK_EQ(shoal__stxn_change_get(t, cid, &v), SHOAL_OK);
        CHECK(sval_eq(&v, env, sizeof env));
        CHECK(shoal__stxn_change_has(t, cid));
        memset(got, 0, 32);
        CHECK_EQ(shoal__stxn_authseq_get(t, author, seq, got), SHOAL_OK);
        CHECK(memcmp(got, cid, 32) == 0);
        CHECK_EQ(shoal__stxn_log_get(t, (uint64_t)i + 1, &v, NULL), SHOAL_OK);
        CHECK(sval_eq(&v, env, sizeof env));
    }
    uint8_t missing[32], author[32], got[32];
    make_id(missing, 0xE0, (uint64_t)n);
    CHECK(!shoal__stxn_change_has(t, missing));
    CHECK_EQ(shoal__stxn_log_count(t), (uint64_t)n);
    for (int a = 0; a < 3; a++) {
        memset(author, tail_authors[a], 32);
        uint64_t want = 0;
        for (int i = a; i < n; i += 3)
            want = (uint64_t)(i / 3 + 1);
        uint64_t seq = 0;
        int rc = shoal__stxn_vv_get(t, author, &seq, got);
        if (want) {
            CHECK_EQ(rc, SHOAL_OK);
            CHECK_EQ(seq, want);
        } else {
            CHECK_EQ(rc, SHOAL_ENOTFOUND);
        }
        CHECK_EQ(shoal__stxn_authseq_get(t, author, want + 1, got), SHOAL_ENOTFOUND);
    }
    struct tail_vv va = { 0 };
    CHECK_EQ(shoal__stxn_vv_scan(t, tail_vv_cb, &va), SHOAL_OK);
    int nauth = n < 3 ? n : 3;
    CHECK_EQ(va.n, nauth);
    for (int k = 0; k + 1 < va.n && k + 1 < 4; k++)
        CHECK(va.first[k] < va.first[k + 1]); /* by author, ascending */
    CHECK_EQ(va.bad, 0);
    *(int *)arg = n + (check_failures - before) * 100000;
    return SHOAL_OK;
}

static void
tail_check(shoal__store *s, int n)
{
    int arg = n;
    CHECK_EQ(shoal__store_read(s, tail_check_fn, &arg), SHOAL_OK);
    CHECK_EQ(arg, n);
}

static void
test_index_tail(void)
{
    char *dir = check_tmpdir("store-tail");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    tail_check(s, 0);
    int checks[] = { 1, 2, 3, 255, 256, 257, 258, 280, TAIL_SINGLE };
    size_t ci = 0;
    for (int i = 0; i < TAIL_SINGLE; i++) {
        struct tail_range r = { i, i + 1 };
        REQUIRE(shoal__store_write(s, tail_put_fn, &r) == SHOAL_OK);
        if (ci < sizeof checks / sizeof checks[0] && checks[ci] == i + 1) {
            tail_check(s, i + 1);
            ci++;
        }
    }
    /* A duplicate of an indexed change and of one in the tail. */
    int dup = 0;
    CHECK_EQ(shoal__store_write(s, tail_dup_fn, &dup), SHOAL_EINVAL);
    dup = TAIL_SINGLE - 1;
    CHECK_EQ(shoal__store_write(s, tail_dup_fn, &dup), SHOAL_EINVAL);
    /* A bulk txn crossing several index batches. */
    struct tail_range r = { TAIL_SINGLE, TAIL_TOTAL };
    CHECK_EQ(shoal__store_write(s, tail_put_fn, &r), SHOAL_OK);
    tail_check(s, TAIL_TOTAL);
    shoal__store_close(s);
    shoal__identity_free(sk);
    sk = NULL;
    s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    tail_check(s, TAIL_TOTAL);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

/* A superseded log entry (equivocation resolved against it): it keeps its
 * position and link, names no applied change in any lookup, the vector or
 * a log scan, and stays so through index batches and a reopen.  Evidence
 * ids map back to their (author, seq) with or without an envelope. */
enum {
    SUP_N = 300,
    SUP_AT = 10
};

struct sup_scan {
    int n;
    bool saw_dead;
    uint8_t dead[32];
};

static int
sup_log_cb(uint64_t pos, const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    (void)pos;
    (void)env;
    struct sup_scan *a = arg;
    a->n++;
    if (memcmp(cid, a->dead, 32) == 0)
        a->saw_dead = true;
    return 0;
}

static int
sup_put_fn(shoal__stxn *t, void *arg)
{
    const struct tail_range *r = arg;
    return tail_put_fn(t, (void *)r);
}

static int
sup_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    uint8_t cid[32], author[32], env[48], n2[32];
    uint64_t seq, pos = 0;
    tail_change(SUP_AT, cid, author, &seq, env);
    int rc = shoal__stxn_change_supersede(t, cid, &pos);
    if (rc)
        return rc;
    if (pos != SUP_AT + 1)
        return SHOAL_EINVAL;
    /* Gone from every lookup in this txn already. */
    if (shoal__stxn_change_has(t, cid) ||
        shoal__stxn_authseq_get(t, author, seq, n2) != SHOAL_ENOTFOUND)
        return SHOAL_EINVAL;
    if (shoal__stxn_change_supersede(t, cid, NULL) != SHOAL_ENOTFOUND)
        return SHOAL_EINVAL;
    /* The winner takes (author, seq), appended; both versions as evidence. */
    make_id(n2, 0xD0, 1);
    rc = shoal__stxn_change_put(t, n2, env, sizeof env, author, seq, 0, &pos);
    if (!rc)
        rc = shoal__stxn_evidence_put(t, author, seq, n2, env, sizeof env);
    if (!rc)
        rc = shoal__stxn_evidence_alias(t, author, seq, cid);
    return rc;
}

/* 30 changes of another author, from *arg on. */
static int
sup_more_fn(shoal__stxn *t, void *arg)
{
    int from = *(int *)arg;
    uint8_t author[32], env[8] = { 0 };
    memset(author, 0x77, 32);
    for (int i = from; i < from + 30 && i < SUP_N; i++) {
        uint8_t cid[32];
        make_id(cid, 0xC0, (uint64_t)i);
        int rc = shoal__stxn_change_put(t, cid, env, sizeof env, author, (uint64_t)i + 1, 0, NULL);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

static int
sup_check_fn(shoal__stxn *t, void *arg)
{
    int before = check_failures;
    uint8_t cid[32], author[32], env[48], got[32], n2[32];
    uint64_t seq;
    tail_change(SUP_AT, cid, author, &seq, env);
    make_id(n2, 0xD0, 1);
    CHECK(!shoal__stxn_change_has(t, cid));
    CHECK(shoal__stxn_change_has(t, n2));
    CHECK_EQ(shoal__stxn_authseq_get(t, author, seq, got), SHOAL_OK);
    CHECK(memcmp(got, n2, 32) == 0);
    bool dead = false;
    uint8_t at[32];
    shoal__sval v;
    CHECK_EQ(shoal__stxn_log_entry(t, SUP_AT + 1, &v, NULL, &dead, at), SHOAL_OK);
    CHECK(dead && memcmp(at, cid, 32) == 0 && sval_eq(&v, env, sizeof env));
    CHECK_EQ(shoal__stxn_log_entry(t, SUP_AT + 2, NULL, NULL, &dead, NULL), SHOAL_OK);
    CHECK(!dead);
    struct sup_scan sc = { 0 };
    memcpy(sc.dead, cid, 32);
    CHECK_EQ(shoal__stxn_log_scan(t, 0, sup_log_cb, &sc), SHOAL_OK);
    CHECK_EQ(sc.n, *(int *)arg);
    CHECK(!sc.saw_dead);
    uint64_t vs = 0;
    CHECK_EQ(shoal__stxn_vv_get(t, author, &vs, NULL), SHOAL_OK);
    uint64_t want = 0;
    for (int i = SUP_AT % 3; i < 99; i += 3)
        want = (uint64_t)(i / 3 + 1);
    CHECK_EQ(vs, want);
    /* Evidence ids: the kept one and the alias both map. */
    uint8_t ea[32];
    uint64_t es = 0;
    CHECK_EQ(shoal__stxn_evidence_find(t, cid, ea, &es), SHOAL_OK);
    CHECK(es == seq && memcmp(ea, author, 32) == 0);
    CHECK_EQ(shoal__stxn_evidence_find(t, n2, NULL, NULL), SHOAL_OK);
    uint8_t vers[2 * 32];
    size_t nv = 0;
    CHECK_EQ(shoal__stxn_evidence_versions(t, author, seq, vers, 2, &nv), SHOAL_OK);
    CHECK(nv == 1 && memcmp(vers, n2, 32) == 0);
    CHECK_EQ(shoal__stxn_evidence_count(t), 1);
    CHECK_EQ(shoal__stxn_evidence_ids(t), 2);
    *(int *)arg = check_failures - before;
    return SHOAL_OK;
}

static void
test_superseded(void)
{
    char *dir = check_tmpdir("store-sup");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    /* The entry to supersede is still in the tail (fewer than 256). */
    struct tail_range r = { 0, 100 };
    REQUIRE(shoal__store_write(s, sup_put_fn, &r) == SHOAL_OK);
    REQUIRE(shoal__store_write(s, sup_fn, NULL) == SHOAL_OK);
    int arg = 100; /* 100 live: 99 of the range and the winner */
    CHECK_EQ(shoal__store_read(s, sup_check_fn, &arg), SHOAL_OK);
    CHECK_EQ(arg, 0);
    /* More changes: the tail crosses the batch of 256 (positions shifted by
     * the winner's entry). */
    for (int i = 0; i < SUP_N; i += 30) {
        int k = i;
        CHECK_EQ(shoal__store_write(s, sup_more_fn, &k), SHOAL_OK);
    }
    arg = 100 + SUP_N;
    CHECK_EQ(shoal__store_read(s, sup_check_fn, &arg), SHOAL_OK);
    CHECK_EQ(arg, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    sk = NULL;
    s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    arg = 100 + SUP_N;
    CHECK_EQ(shoal__store_read(s, sup_check_fn, &arg), SHOAL_OK);
    CHECK_EQ(arg, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

/* Document metas ride in their change's log entry and lag like the
 * indexes: doc_get and doc_scan must give each document's newest meta
 * whether it sits in the tail or the docs table (before and after the
 * batch that indexes the tail, and after a reopen), the envelope and link
 * must come back unchanged, and a direct put must be refused while the
 * tail holds a meta of that document. */
enum {
    DM_DOCS = 3,
    DM_TXNS = 300
};

struct dm_state {
    int i;                      /* next change */
    int per;                    /* changes per txn */
    uint64_t last[DM_DOCS + 1]; /* newest log position per doc (index DM_DOCS: b/x) */
    int ver[DM_DOCS + 1];       /* meta version per doc; -1: direct "old" */
};

static void
dm_name(int d, const char **coll, char id[8])
{
    *coll = d == DM_DOCS ? "b" : "a";
    snprintf(id, 8, d == DM_DOCS ? "x" : "d%d", d);
}

static void
dm_meta(int d, int ver, char m[40])
{
    if (ver < 0)
        snprintf(m, 40, "old");
    else
        snprintf(m, 40, "meta-%d-%d", d, ver);
}

static int
dm_write_fn(shoal__stxn *t, void *arg)
{
    struct dm_state *st = arg;
    bool touched[DM_DOCS + 1] = { false };
    for (int k = 0; k < st->per; k++, st->i++) {
        int i = st->i, d = i % 7 == 6 ? DM_DOCS : i % DM_DOCS;
        uint8_t cid[32], author[32], env[48];
        uint64_t seq, pos = 0;
        tail_change(i, cid, author, &seq, env);
        int rc = shoal__stxn_change_put(t, cid, env, sizeof env, author, seq, st->last[d], &pos);
        if (rc)
            return rc;
        st->last[d] = pos;
        st->ver[d] = i;
        touched[d] = true;
    }
    /* As core does: each touched doc's meta once, at its newest change. */
    for (int d = 0; d <= DM_DOCS; d++) {
        if (!touched[d])
            continue;
        const char *coll;
        char id[8], m[40];
        dm_name(d, &coll, id);
        dm_meta(d, st->ver[d], m);
        int rc = shoal__stxn_doc_put(t, U8(coll), strlen(coll), U8(id), strlen(id), m, strlen(m),
                                     st->last[d]);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

static int
dm_direct_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    return shoal__stxn_doc_put(t, U8("b"), 1, U8("x"), 1, "old", 3, 0);
}

struct dm_scan {
    int n;
    int bad;
    char prev[16];
    const struct dm_state *st;
};

static int
dm_scan_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           const shoal__sval *meta, void *arg)
{
    struct dm_scan *a = arg;
    char key[16];
    snprintf(key, sizeof key, "%.*s/%.*s", (int)clen, (const char *)coll, (int)idlen,
             (const char *)id);
    if (a->n > 0 && strcmp(a->prev, key) >= 0)
        a->bad++; /* sorted, each once */
    snprintf(a->prev, sizeof a->prev, "%s", key);
    int d = -1;
    for (int k = 0; k <= DM_DOCS; k++) {
        const char *c;
        char want_id[8];
        dm_name(k, &c, want_id);
        if (clen == strlen(c) && memcmp(coll, c, clen) == 0 && idlen == strlen(want_id) &&
            memcmp(id, want_id, idlen) == 0)
            d = k;
    }
    char m[40];
    if (d < 0) {
        a->bad++;
    } else {
        dm_meta(d, a->st->ver[d], m);
        if (meta->len != strlen(m) || memcmp(meta->p, m, meta->len) != 0)
            a->bad++;
    }
    a->n++;
    return 0;
}

static int
dm_check_fn(shoal__stxn *t, void *arg)
{
    const struct dm_state *st = arg;
    int bad = 0, want_n = 0;
    for (int d = 0; d <= DM_DOCS; d++) {
        const char *coll;
        char id[8], m[40];
        dm_name(d, &coll, id);
        shoal__sval v;
        int rc = shoal__stxn_doc_get(t, U8(coll), strlen(coll), U8(id), strlen(id), &v);
        if (st->ver[d] == -3) {
            bad += rc != SHOAL_ENOTFOUND;
            continue;
        }
        want_n++;
        dm_meta(d, st->ver[d], m);
        bad += rc != SHOAL_OK || v.len != strlen(m) || memcmp(v.p, m, v.len) != 0;
    }
    struct dm_scan sa = { .st = st };
    bad += shoal__stxn_doc_scan(t, NULL, 0, dm_scan_cb, &sa) != SHOAL_OK;
    bad += sa.bad + (sa.n != want_n);
    struct dm_scan sb = { .st = st };
    bad += shoal__stxn_doc_scan(t, U8("b"), 1, dm_scan_cb, &sb) != SHOAL_OK;
    bad += sb.bad + (sb.n != (st->ver[DM_DOCS] == -3 ? 0 : 1));
    /* Envelopes and links unchanged by the metas riding along. */
    for (int i = 0; i < st->i; i += 1 + i / 40) {
        uint8_t cid[32], author[32], env[48];
        uint64_t seq, link = 0;
        tail_change(i, cid, author, &seq, env);
        shoal__sval e;
        bad += shoal__stxn_change_get(t, cid, &e) != SHOAL_OK || e.len != sizeof env ||
               memcmp(e.p, env, sizeof env) != 0;
        bad += shoal__stxn_log_get(t, (uint64_t)i + 1, &e, &link) != SHOAL_OK ||
               e.len != sizeof env || link >= (uint64_t)i + 1;
    }
    return bad ? SHOAL_ECORRUPT : SHOAL_OK;
}

static void
test_doc_meta_tail(void)
{
    char *dir = check_tmpdir("store-dmeta");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    struct dm_state st = { .per = 1 };
    for (int d = 0; d < DM_DOCS; d++)
        st.ver[d] = -3; /* not there */
    st.ver[DM_DOCS] = -1;
    CHECK_EQ(shoal__store_write(s, dm_direct_fn, NULL), SHOAL_OK);
    CHECK_EQ(shoal__store_read(s, dm_check_fn, &st), SHOAL_OK);
    int checks[] = { 1, 6, 7, 8, 100, 255, 256, 257, 260, DM_TXNS };
    size_t ci = 0;
    bool refused = false;
    while (st.i < DM_TXNS) {
        REQUIRE(shoal__store_write(s, dm_write_fn, &st) == SHOAL_OK);
        if (ci < sizeof checks / sizeof checks[0] && checks[ci] == st.i) {
            CHECK_EQ(shoal__store_read(s, dm_check_fn, &st), SHOAL_OK);
            ci++;
        }
        if (st.i == 7) {
            /* b/x's meta rides in the tail now: a direct put is refused. */
            CHECK_EQ(shoal__store_write(s, dm_direct_fn, NULL), SHOAL_EINVAL);
            refused = true;
        }
    }
    CHECK(refused);
    CHECK_EQ(ci, sizeof checks / sizeof checks[0]);
    /* Bulk txns of 50 changes crossing an index batch (the batch is taken
     * inside change_put, before later metas of this txn are put). */
    st.per = 50;
    for (int k = 0; k < 6; k++) {
        REQUIRE(shoal__store_write(s, dm_write_fn, &st) == SHOAL_OK);
        CHECK_EQ(shoal__store_read(s, dm_check_fn, &st), SHOAL_OK);
    }
    shoal__store_close(s);
    shoal__identity_free(sk);
    sk = NULL;
    s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_read(s, dm_check_fn, &st), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

static void
write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

static void
test_identity_corrupt(void)
{
    char *dir = check_tmpdir("store-id");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    shoal__store_close(s);
    char *idp = check_path_join(dir, "identity");
    uint8_t good[64];
    memcpy(good, sk, 64);
    shoal__identity_free(sk);

    /* Wrong size. */
    write_file(idp, good, 63);
    s = NULL;
    sk = NULL;
    shoal__store_opts o = { .durable = true };
    errbuf[0] = 0;
    CHECK_EQ(store_open_id(&s, dir, &o, pk, &sk, errbuf, sizeof errbuf), SHOAL_ECORRUPT);
    CHECK(s == NULL && sk == NULL && errbuf[0] != 0);
    /* Public half that does not belong to the secret key. */
    good[40] ^= 1;
    write_file(idp, good, 64);
    CHECK_EQ(store_open_id(&s, dir, &o, pk, &sk, errbuf, sizeof errbuf), SHOAL_ECORRUPT);
    CHECK(s == NULL && sk == NULL);
    good[40] ^= 1;
    write_file(idp, good, 64);
    CHECK_EQ(store_open_id(&s, dir, &o, pk, &sk, errbuf, sizeof errbuf), SHOAL_OK);
    CHECK(s && sk && memcmp(pk, good + 32, 32) == 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    free(idp);
    check_rmtree(dir);
    free(dir);
}

static int
scan_fixture(shoal__stxn *t, void *arg)
{
    int *fails = arg;
    int before = check_failures;
    struct docacc da = { 0 };
    CHECK_EQ(shoal__stxn_doc_scan(t, NULL, 0, doc_cb, &da), SHOAL_OK);
    CHECK_EQ(da.n, NDOCS);
    CHECK_EQ(da.bad, 0);
    const char *order[] = { "a/x", "a/xy", "a/y", "ab/x", "b/z" };
    for (int i = 0; i < da.n && i < NDOCS; i++)
        CHECK(strcmp(da.keys[i], order[i]) == 0);

    memset(&da, 0, sizeof da);
    CHECK_EQ(shoal__stxn_doc_scan(t, U8("a"), 1, doc_cb, &da), SHOAL_OK);
    CHECK_EQ(da.n, 3); /* a/x a/xy a/y, never ab/x */
    CHECK(strcmp(da.keys[2], "a/y") == 0);
    memset(&da, 0, sizeof da);
    CHECK_EQ(shoal__stxn_doc_scan(t, U8("ab"), 2, doc_cb, &da), SHOAL_OK);
    CHECK(da.n == 1 && strcmp(da.keys[0], "ab/x") == 0);
    memset(&da, 0, sizeof da);
    CHECK_EQ(shoal__stxn_doc_scan(t, U8("aa"), 2, doc_cb, &da), SHOAL_OK);
    CHECK_EQ(da.n, 0);
    memset(&da, 0, sizeof da);
    CHECK_EQ(shoal__stxn_doc_scan(t, U8("c"), 1, doc_cb, &da), SHOAL_OK);
    CHECK_EQ(da.n, 0);
    CHECK_EQ(shoal__stxn_doc_scan(t, U8("a\0b"), 3, doc_cb, &da), SHOAL_EINVAL);
    CHECK_EQ(da.n, 0);

    *fails += check_failures - before;
    return SHOAL_OK;
}

static int
pending_del_fn(shoal__stxn *t, void *arg)
{
    uint8_t cid[32];
    make_id(cid, 0x50, 2);
    int rc = shoal__stxn_pending_del(t, cid);
    if (rc)
        return rc;
    *(uint64_t *)arg = shoal__stxn_pending_count(t);
    make_id(cid, 0x50, 77);
    return shoal__stxn_pending_del(t, cid) == SHOAL_ENOTFOUND ? SHOAL_OK : SHOAL_EINVAL;
}

static int
dup_change_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    uint64_t pos;
    return shoal__stxn_change_put(t, cids[0], envs[0], env_lens[0], author_a, 1, 0, &pos);
}

static int
count_fn(shoal__stxn *t, void *arg)
{
    uint64_t *c = arg;
    c[0] = shoal__stxn_pending_count(t);
    c[1] = shoal__stxn_log_count(t);
    return SHOAL_OK;
}

static void
test_scans(void)
{
    char *dir = check_tmpdir("store-scan");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_write(s, fixture_write, NULL), SHOAL_OK);
    int fails = 0;
    CHECK_EQ(shoal__store_read(s, scan_fixture, &fails), SHOAL_OK);
    uint64_t cnt = 99;
    CHECK_EQ(shoal__store_write(s, pending_del_fn, &cnt), SHOAL_OK);
    CHECK_EQ(cnt, 2);
    /* A change id that is already stored is refused, log untouched. */
    CHECK_EQ(shoal__store_write(s, dup_change_fn, NULL), SHOAL_EINVAL);
    uint64_t c[2] = { 0, 0 };
    CHECK_EQ(shoal__store_read(s, count_fn, c), SHOAL_OK);
    CHECK(c[0] == 2 && c[1] == NCHANGES);
    shoal__store_close(s);

    /* The delete persists. */
    shoal__identity_free(sk);
    sk = NULL;
    s = NULL;
    CHECK_EQ(store_open_id(&s, dir, NULL, pk, &sk, errbuf, sizeof errbuf), SHOAL_OK);
    REQUIRE(s);
    CHECK_EQ(shoal__store_read(s, count_fn, c), SHOAL_OK);
    CHECK(c[0] == 2 && c[1] == NCHANGES);
    CHECK_EQ(fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

/* peers: put two, delete one (twice: the second finds none), scan. */
static int
peer_put_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    uint8_t k1[32], k2[32];
    memset(k1, 1, 32);
    memset(k2, 2, 32);
    int rc = shoal__stxn_peer_put(t, k1, "one", 3);
    if (!rc)
        rc = shoal__stxn_peer_put(t, k2, "two", 3);
    return rc;
}

static int
peer_del_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    uint8_t k1[32];
    memset(k1, 1, 32);
    int rc = shoal__stxn_peer_del(t, k1);
    if (!rc)
        rc = shoal__stxn_peer_del(t, k1);
    return rc;
}

static int
peer_cb(const uint8_t key[32], const shoal__sval *v, void *arg)
{
    int *seen = arg;
    if (key[0] == 1)
        seen[0]++;
    if (key[0] == 2 && v->len == 3 && memcmp(v->p, "two", 3) == 0)
        seen[1]++;
    return 0;
}

static int
peer_scan_fn(shoal__stxn *t, void *arg)
{
    return shoal__stxn_peer_scan(t, peer_cb, arg);
}

static void
test_peer_rows(void)
{
    char *dir = check_tmpdir("store-peers");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_write(s, peer_put_fn, NULL), SHOAL_OK);
    int seen[2] = { 0, 0 };
    CHECK_EQ(shoal__store_read(s, peer_scan_fn, seen), SHOAL_OK);
    CHECK(seen[0] == 1 && seen[1] == 1);
    CHECK_EQ(shoal__store_write(s, peer_del_fn, NULL), SHOAL_OK);
    seen[0] = seen[1] = 0;
    CHECK_EQ(shoal__store_read(s, peer_scan_fn, seen), SHOAL_OK);
    CHECK(seen[0] == 0 && seen[1] == 1);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

/* fn writes, then fails: nothing may be left behind. */
static int
write_then_fail(shoal__stxn *t, void *arg)
{
    int rc = fixture_write(t, arg);
    if (rc)
        return rc;
    return SHOAL_EPROTO;
}

static int
empty_check(shoal__stxn *t, void *arg)
{
    int *fails = arg;
    int before = check_failures;
    shoal__sval v;
    CHECK_EQ(shoal__stxn_meta_get(t, "format", &v), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal__stxn_log_last(t, NULL, &v), SHOAL_ENOTFOUND);
    CHECK(!shoal__stxn_change_has(t, cids[0]));
    CHECK_EQ(shoal__stxn_log_count(t), 0);
    CHECK_EQ(shoal__stxn_pending_count(t), 0);
    struct docacc da = { 0 };
    CHECK_EQ(shoal__stxn_doc_scan(t, NULL, 0, doc_cb, &da), SHOAL_OK);
    CHECK_EQ(da.n, 0);
    struct vvacc va = { 0 };
    CHECK_EQ(shoal__stxn_vv_scan(t, vv_cb, &va), SHOAL_OK);
    CHECK_EQ(va.n, 0);
    *fails += check_failures - before;
    return SHOAL_OK;
}

static int
read_returns(shoal__stxn *t, void *arg)
{
    (void)t;
    return *(int *)arg;
}

static void
test_rollback(void)
{
    char *dir = check_tmpdir("store-rb");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_write(s, write_then_fail, NULL), SHOAL_EPROTO);
    int fails = 0;
    CHECK_EQ(shoal__store_read(s, empty_check, &fails), SHOAL_OK);
    int want = SHOAL_ENOTFOUND;
    CHECK_EQ(shoal__store_read(s, read_returns, &want), SHOAL_ENOTFOUND);
    shoal__store_close(s);
    shoal__identity_free(sk);
    sk = NULL;
    s = NULL;
    CHECK_EQ(store_open_id(&s, dir, NULL, pk, &sk, errbuf, sizeof errbuf), SHOAL_OK);
    REQUIRE(s);
    CHECK_EQ(shoal__store_read(s, empty_check, &fails), SHOAL_OK);
    CHECK_EQ(fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

/* --------------------------------------------------------- map growth */

enum {
    BIG_N = 64,
    BIG_LEN = 64 * 1024,
    BIG_CHANGES = 40
};

struct big {
    int calls;
    uint8_t *buf; /* BIG_LEN bytes */
};

static int
big_fn(shoal__stxn *t, void *arg)
{
    struct big *b = arg;
    b->calls++;
    for (int i = 0; i < BIG_N; i++) {
        uint8_t cid[32];
        make_id(cid, 0x60, (uint64_t)i);
        b->buf[0] = (uint8_t)i;
        int rc = shoal__stxn_pending_put(t, cid, b->buf, BIG_LEN);
        if (rc)
            return rc;
    }
    for (int i = 0; i < BIG_CHANGES; i++) {
        uint8_t cid[32], author[32];
        make_id(cid, 0x70, (uint64_t)i);
        memset(author, 0xC3, 32);
        uint64_t pos = 0;
        b->buf[0] = (uint8_t)(0x80 + i);
        int rc = shoal__stxn_change_put(t, cid, b->buf, 10000, author, (uint64_t)i + 1, 0, &pos);
        if (rc)
            return rc;
        if (pos != (uint64_t)i + 1)
            return SHOAL_EINVAL;
    }
    return SHOAL_OK;
}

struct small {
    int i;
    uint8_t *buf;
};

static int
small_fn(shoal__stxn *t, void *arg)
{
    struct small *sm = arg;
    char id[32];
    snprintf(id, sizeof id, "doc%04d", sm->i);
    sm->buf[0] = (uint8_t)sm->i;
    return shoal__stxn_snap_put(t, U8("grow"), 4, U8(id), strlen(id), sm->buf, 32 * 1024);
}

struct growcheck {
    uint8_t *buf;
    int fails;
    int nsmall;
};

static int
big_pending_cb(const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    struct nacc *a = arg;
    if (env->len != BIG_LEN || env->p[0] != cid[31])
        a->tag[0]++;
    a->n++;
    return 0;
}

static int
grow_check(shoal__stxn *t, void *arg)
{
    struct growcheck *g = arg;
    int before = check_failures;
    CHECK_EQ(shoal__stxn_pending_count(t), BIG_N);
    CHECK_EQ(shoal__stxn_log_count(t), BIG_CHANGES);
    shoal__sval v = { NULL, 0 };
    uint64_t last = 0;
    CHECK_EQ(shoal__stxn_log_last(t, &last, &v), SHOAL_OK);
    CHECK(last == BIG_CHANGES);
    struct nacc a = { 0 };
    CHECK_EQ(shoal__stxn_pending_scan(t, big_pending_cb, &a), SHOAL_OK);
    CHECK(a.n == BIG_N && a.tag[0] == 0);
    uint8_t cid[32];
    make_id(cid, 0x70, BIG_CHANGES - 1);
    CHECK_EQ(shoal__stxn_change_get(t, cid, &v), SHOAL_OK);
    CHECK(v.len == 10000 && v.p[0] == 0x80 + BIG_CHANGES - 1 &&
          memcmp(v.p + 1, g->buf + 1, 9999) == 0);
    for (int i = 0; i < g->nsmall; i++) {
        char id[32];
        snprintf(id, sizeof id, "doc%04d", i);
        CHECK_EQ(shoal__stxn_snap_get(t, U8("grow"), 4, U8(id), strlen(id), &v), SHOAL_OK);
        CHECK(v.len == 32 * 1024 && v.p[0] == (uint8_t)i &&
              memcmp(v.p + 1, g->buf + 1, 32 * 1024 - 1) == 0);
    }
    g->fails += check_failures - before;
    return SHOAL_OK;
}

static void
test_map_growth(void)
{
    char *dir = check_tmpdir("store-grow");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 64 * 1024, pk, &sk);
    REQUIRE(s);
    struct big b = { 0, malloc(BIG_LEN) };
    REQUIRE(b.buf);
    fill_bytes(b.buf, BIG_LEN, check_rand());
    CHECK_EQ(shoal__store_write(s, big_fn, &b), SHOAL_OK);
    CHECK(b.calls > 1); /* the map grew at least once: fn ran again */
    printf("  one 6.5 MB txn in a 64 KiB map: fn ran %d times\n", b.calls);

    struct small sm = { 0, b.buf };
    int nsmall = 120;
    for (sm.i = 0; sm.i < nsmall; sm.i++)
        CHECK_EQ(shoal__store_write(s, small_fn, &sm), SHOAL_OK);
    struct growcheck g = { b.buf, 0, nsmall };
    CHECK_EQ(shoal__store_read(s, grow_check, &g), SHOAL_OK);
    CHECK_EQ(shoal__store_flush(s), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);

    /* Reopen asking for the tiny map again: the data must all be there and
     * further writes must still succeed. */
    s = open_store(dir, true, 64 * 1024, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_read(s, grow_check, &g), SHOAL_OK);
    for (sm.i = nsmall; sm.i < nsmall + 40; sm.i++)
        CHECK_EQ(shoal__store_write(s, small_fn, &sm), SHOAL_OK);
    g.nsmall = nsmall + 40;
    CHECK_EQ(shoal__store_read(s, grow_check, &g), SHOAL_OK);
    CHECK_EQ(g.fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    free(b.buf);
    check_rmtree(dir);
    free(dir);
}

/* A careless fn that ignores put errors: the store must notice the full map
 * itself, rerun it, and never commit a txn that LMDB had poisoned. */
static int
careless_fn(shoal__stxn *t, void *arg)
{
    struct big *b = arg;
    b->calls++;
    for (int i = 0; i < 48; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%03d", i);
        b->buf[0] = (uint8_t)i;
        (void)shoal__stxn_snap_put(t, U8("careless"), 8, U8(id), strlen(id), b->buf, BIG_LEN);
    }
    return SHOAL_OK;
}

static int
careless_check(shoal__stxn *t, void *arg)
{
    struct big *b = arg;
    int before = check_failures;
    for (int i = 0; i < 48; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%03d", i);
        shoal__sval v = { NULL, 0 };
        CHECK_EQ(shoal__stxn_snap_get(t, U8("careless"), 8, U8(id), strlen(id), &v), SHOAL_OK);
        CHECK(v.len == BIG_LEN && v.p[0] == (uint8_t)i &&
              memcmp(v.p + 1, b->buf + 1, BIG_LEN - 1) == 0);
    }
    return check_failures == before ? SHOAL_OK : SHOAL_ECORRUPT;
}

static void
test_map_full_swallowed(void)
{
    char *dir = check_tmpdir("store-careless");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 64 * 1024, pk, &sk);
    REQUIRE(s);
    struct big b = { 0, malloc(BIG_LEN) };
    REQUIRE(b.buf);
    fill_bytes(b.buf, BIG_LEN, 99);
    CHECK_EQ(shoal__store_write(s, careless_fn, &b), SHOAL_OK);
    CHECK(b.calls > 1);
    CHECK_EQ(shoal__store_read(s, careless_check, &b), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    free(b.buf);
    check_rmtree(dir);
    free(dir);
}

/* Readers on other threads while a writer grows the map: the resize must
 * wait for their txns (the store's own lock; LMDB does not check). */
struct reader_arg {
    shoal__store *s;
    volatile int stop;
    int reads, bad;
    uint8_t *buf;
};

static int
reader_fn(shoal__stxn *t, void *arg)
{
    struct reader_arg *ra = arg;
    struct nacc a = { 0 };
    if (shoal__stxn_pending_scan(t, big_pending_cb, &a) != SHOAL_OK || a.tag[0] != 0)
        ra->bad++;
    uint64_t n = shoal__stxn_pending_count(t);
    if (n != 0 && n != BIG_N)
        ra->bad++;
    return SHOAL_OK;
}

static void *
reader_thread(void *arg)
{
    struct reader_arg *ra = arg;
    while (!__atomic_load_n(&ra->stop, __ATOMIC_ACQUIRE)) {
        if (shoal__store_read(ra->s, reader_fn, ra) != SHOAL_OK)
            ra->bad++;
        ra->reads++;
    }
    return NULL;
}

static void
test_threads_during_growth(void)
{
    char *dir = check_tmpdir("store-threads");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 64 * 1024, pk, &sk);
    REQUIRE(s);
    struct big b = { 0, malloc(BIG_LEN) };
    REQUIRE(b.buf);
    fill_bytes(b.buf, BIG_LEN, 7);
    struct reader_arg ra[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&ra[i], 0, sizeof ra[i]);
        ra[i].s = s;
        REQUIRE(pthread_create(&th[i], NULL, reader_thread, &ra[i]) == 0);
    }
    int rc = shoal__store_write(s, big_fn, &b);
    for (int i = 0; i < 2; i++) {
        __atomic_store_n(&ra[i].stop, 1, __ATOMIC_RELEASE);
        pthread_join(th[i], NULL);
        CHECK_EQ(ra[i].bad, 0);
    }
    CHECK_EQ(rc, SHOAL_OK);
    CHECK(b.calls > 1);
    printf("  readers did %d + %d txns while the map grew %d times\n", ra[0].reads, ra[1].reads,
           b.calls - 1);
    struct growcheck g = { b.buf, 0, 0 };
    CHECK_EQ(shoal__store_read(s, grow_check, &g), SHOAL_OK);
    CHECK_EQ(g.fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    free(b.buf);
    check_rmtree(dir);
    free(dir);
}

/* -------------------------------------------------- tmpfs-based tests */

static bool
mount_tmpfs(const char *dir, const char *opts)
{
    return mount("tmpfs", dir, "tmpfs", 0, opts) == 0;
}

static void
unmount_dir(const char *dir)
{
    if (umount(dir) != 0) {
        fprintf(stderr, "umount %s: %s (detaching)\n", dir, strerror(errno));
        umount2(dir, MNT_DETACH);
    }
}

static bool
can_mount(void)
{
    char *d = check_tmpdir("store-probe");
    bool ok = mount_tmpfs(d, "size=64k");
    if (ok)
        unmount_dir(d);
    check_rmtree(d);
    free(d);
    return ok;
}

/* Mount a tmpfs with opts, run body on it, unmount whatever happened. */
static void
with_tmpfs(const char *tag, const char *opts, void (*body)(const char *mnt))
{
    char *base = check_tmpdir(tag);
    char *mnt = check_path_join(base, "mnt");
    if (mkdir(mnt, 0700) != 0 || !mount_tmpfs(mnt, opts)) {
        fprintf(stderr, "mount tmpfs on %s: %s\n", mnt, strerror(errno));
        check_failures++;
    } else {
        body(mnt);
        unmount_dir(mnt);
    }
    check_rmtree(base);
    free(mnt);
    free(base);
}

struct fill {
    int next; /* first snapshot id this write uses */
    int n;    /* snapshots per write */
    size_t len;
    uint8_t *buf;
};

static int
fill_fn(shoal__stxn *t, void *arg)
{
    struct fill *f = arg;
    for (int i = 0; i < f->n; i++) {
        char id[32];
        snprintf(id, sizeof id, "f%06d", f->next + i);
        int rc = shoal__stxn_snap_put(t, U8("fill"), 4, U8(id), strlen(id), f->buf, f->len);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

/* Every fill snapshot below f->next is there, none from next on. */
static int
fill_check(shoal__stxn *t, void *arg)
{
    struct fill *f = arg;
    int before = check_failures;
    for (int i = 0; i < f->next + f->n; i++) {
        char id[32];
        snprintf(id, sizeof id, "f%06d", i);
        shoal__sval v = { NULL, 0 };
        int rc = shoal__stxn_snap_get(t, U8("fill"), 4, U8(id), strlen(id), &v);
        if (i < f->next) {
            CHECK_EQ(rc, SHOAL_OK);
            CHECK(sval_eq(&v, f->buf, f->len));
        } else {
            CHECK_EQ(rc, SHOAL_ENOTFOUND);
        }
    }
    return check_failures == before ? SHOAL_OK : SHOAL_ECORRUPT;
}

static void
enospc_body(const char *mnt)
{
    char *dir = check_path_join(mnt, "replica");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    if (!s) {
        check_failures++;
        free(dir);
        return;
    }
    CHECK_EQ(shoal__store_write(s, fixture_write, NULL), SHOAL_OK);

    uint8_t *buf = malloc(64 * 1024);
    if (!buf)
        abort();
    fill_bytes(buf, 64 * 1024, 5);
    /* One txn bigger than the file system. */
    struct fill f = { 0, 32, 64 * 1024, buf };
    CHECK_EQ(shoal__store_write(s, fill_fn, &f), SHOAL_ENOSPC);
    CHECK(strlen(shoal__store_errmsg(s)) > 0);
    printf("  full disk: %s\n", shoal__store_errmsg(s));
    int fails = 0;
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    f.n = 0;
    CHECK_EQ(shoal__store_read(s, fill_check, &f), SHOAL_OK);
    /* Small txns until the disk is full. */
    f.n = 1;
    f.len = 16 * 1024;
    int rc = SHOAL_OK;
    for (int i = 0; i < 200 && rc == SHOAL_OK; i++) {
        rc = shoal__store_write(s, fill_fn, &f);
        if (rc == SHOAL_OK)
            f.next++;
    }
    CHECK_EQ(rc, SHOAL_ENOSPC);
    CHECK(f.next > 0);
    printf("  %d small commits before the disk filled: %s\n", f.next, shoal__store_errmsg(s));
    CHECK_EQ(shoal__store_read(s, fill_check, &f), SHOAL_OK);
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    /* Once there is space again, the same handle writes again. */
    CHECK(mount(NULL, mnt, NULL, MS_REMOUNT, "size=4m,mode=0700") == 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(shoal__store_write(s, fill_fn, &f), SHOAL_OK);
        f.next++;
    }
    CHECK_EQ(shoal__store_read(s, fill_check, &f), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);

    s = open_store(dir, true, 0, pk, &sk);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
        CHECK_EQ(shoal__store_read(s, fill_check, &f), SHOAL_OK);
        shoal__store_close(s);
        shoal__identity_free(sk);
    }
    CHECK_EQ(fails, 0);
    free(buf);
    free(dir);
}

static void
test_full_disk(void)
{
    with_tmpfs("store-full", "size=1m,mode=0700", enospc_body);
}

/* The map grows no further than the pages in use plus the free space of
 * the file system: a txn larger than the disk ends in SHOAL_ENOSPC from the
 * growth itself, with its reason, and the store goes on working. */
static void
map_bound_body(const char *mnt)
{
    char *dir = check_path_join(mnt, "replica");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 128 * 1024, pk, &sk);
    if (!s) {
        check_failures++;
        free(dir);
        return;
    }
    uint8_t *buf = malloc(64 * 1024);
    if (!buf)
        abort();
    fill_bytes(buf, 64 * 1024, 7);
    struct fill f = { 0, 48, 64 * 1024, buf };
    CHECK_EQ(shoal__store_write(s, fill_fn, &f), SHOAL_ENOSPC);
    CHECK(strstr(shoal__store_errmsg(s), "file system of data.mdb is full") != NULL);
    printf("  map bound: %s\n", shoal__store_errmsg(s));
    f.n = 2;
    CHECK_EQ(shoal__store_write(s, fill_fn, &f), SHOAL_OK);
    f.next = 2;
    CHECK_EQ(shoal__store_read(s, fill_check, &f), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    free(buf);
    free(dir);
}

static void
test_map_bounded_by_disk(void)
{
    with_tmpfs("store-bound", "size=2m,mode=0700", map_bound_body);
}

static void
readonly_body(const char *mnt)
{
    char *dir = check_path_join(mnt, "replica");
    char *fresh = check_path_join(mnt, "fresh");
    uint8_t pk[32], pk2[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    if (!s) {
        check_failures++;
        goto out;
    }
    CHECK_EQ(shoal__store_write(s, fixture_write, NULL), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    sk = NULL;

    if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        fprintf(stderr, "remount ro: %s\n", strerror(errno));
        check_failures++;
        goto out;
    }
    s = NULL;
    errbuf[0] = 0;
    shoal__store_opts o = { .durable = true };
    CHECK_EQ(store_open_id(&s, dir, &o, pk2, &sk, errbuf, sizeof errbuf), SHOAL_EREADONLY);
    CHECK(s == NULL && sk == NULL);
    CHECK(strstr(errbuf, "not writable") != NULL);
    printf("  read-only: %s\n", errbuf);
    errbuf[0] = 0;
    CHECK_EQ(store_open_id(&s, fresh, &o, pk2, &sk, errbuf, sizeof errbuf), SHOAL_EREADONLY);
    CHECK(s == NULL && errbuf[0] != 0);

    if (mount(NULL, mnt, NULL, MS_REMOUNT, NULL) != 0) {
        fprintf(stderr, "remount rw: %s\n", strerror(errno));
        check_failures++;
        goto out;
    }
    s = open_store(dir, true, 0, pk2, &sk);
    CHECK(s != NULL);
    if (s) {
        CHECK(memcmp(pk, pk2, 32) == 0);
        int fails = 0;
        CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
        CHECK_EQ(fails, 0);
        shoal__store_close(s);
        shoal__identity_free(sk);
    }
out:
    free(fresh);
    free(dir);
}

static void
test_readonly_dir(void)
{
    with_tmpfs("store-ro", "size=4m,mode=0700", readonly_body);
}

/* ------------------------------------------------------ two processes */

enum {
    CHILD_N = 300
};

struct child_commit {
    int i;
};

static int
child_commit_fn(shoal__stxn *t, void *arg)
{
    struct child_commit *c = arg;
    uint8_t cid[32], author[32], env[200];
    make_id(cid, 0xC0, (uint64_t)c->i);
    memset(author, 0xCC, 32);
    fill_bytes(env, sizeof env, (uint64_t)c->i);
    uint64_t pos;
    int rc = shoal__stxn_change_put(t, cid, env, sizeof env, author, (uint64_t)c->i + 1, 0, &pos);
    return rc;
}

/* In a forked child: open dir itself and commit CHILD_N changes. */
static int
child_writer(const char *dir)
{
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    if (!s)
        return 2;
    int bad = 0;
    for (int i = 0; i < CHILD_N; i++) {
        struct child_commit c = { i };
        if (shoal__store_write(s, child_commit_fn, &c) != SHOAL_OK)
            bad++;
    }
    shoal__store_close(s);
    shoal__identity_free(sk);
    return bad ? 1 : 0;
}

struct snapshot {
    uint64_t log, vvseq;
    int bad;
};

static int
snapshot_fn(shoal__stxn *t, void *arg)
{
    struct snapshot *sn = arg;
    uint8_t author[32], cid[32];
    memset(author, 0xCC, 32);
    sn->log = shoal__stxn_log_count(t);
    sn->vvseq = 0;
    int rc = shoal__stxn_vv_get(t, author, &sn->vvseq, cid);
    if (rc != SHOAL_OK && rc != SHOAL_ENOTFOUND)
        sn->bad++;
    return SHOAL_OK;
}

static int
parent_doc_fn(shoal__stxn *t, void *arg)
{
    char id[32];
    snprintf(id, sizeof id, "p%05d", *(int *)arg);
    return shoal__stxn_doc_put(t, U8("parent"), 6, U8(id), strlen(id), "x", 1, 0);
}

static int
count_docs(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           const shoal__sval *meta, void *arg)
{
    (void)coll, (void)clen, (void)id, (void)idlen, (void)meta;
    ++*(int *)arg;
    return 0;
}

struct final_check {
    int fails;
    int parent_docs;
};

static int
child_log_cb(uint64_t pos, const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    int *n = arg;
    uint8_t want[32];
    make_id(want, 0xC0, pos - 1);
    if (pos != (uint64_t)*n + 1 || memcmp(cid, want, 32) != 0 || env->len != 200)
        return 1;
    ++*n;
    return 0;
}

static int
final_fn(shoal__stxn *t, void *arg)
{
    struct final_check *f = arg;
    int before = check_failures;
    CHECK_EQ(shoal__stxn_log_count(t), CHILD_N);
    int n = 0;
    CHECK_EQ(shoal__stxn_log_scan(t, 0, child_log_cb, &n), SHOAL_OK);
    CHECK_EQ(n, CHILD_N);
    int docs_n = 0;
    CHECK_EQ(shoal__stxn_doc_scan(t, U8("parent"), 6, count_docs, &docs_n), SHOAL_OK);
    CHECK_EQ(docs_n, f->parent_docs);
    f->fails += check_failures - before;
    return SHOAL_OK;
}

/* Wait for pid with a deadline; kill it on timeout.  Returns the wait status
 * or -1. */
static int
wait_child(pid_t pid, uint64_t deadline_ms)
{
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (check_now_ms() > deadline_ms) {
            fprintf(stderr, "child %d timed out; killing it\n", (int)pid);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec ts = { 0, 2 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

static void
test_two_processes(void)
{
    char *dir = check_tmpdir("store-2p");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(child_writer(dir)); /* never touches the parent's handle */

    uint64_t deadline = check_now_ms() + 120000;
    struct snapshot prev = { 0, 0, 0 };
    int reads = 0, writes = 0, wrc_bad = 0, st = -1;
    bool saw_partial = false;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (check_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st = -1;
            break;
        }
        struct snapshot sn = { 0, 0, 0 };
        CHECK_EQ(shoal__store_read(s, snapshot_fn, &sn), SHOAL_OK);
        reads++;
        /* Each child commit adds one log entry and bumps the vv together. */
        CHECK(sn.bad == 0 && sn.log == sn.vvseq);
        CHECK(sn.log >= prev.log);
        if (sn.log > 0 && sn.log < CHILD_N)
            saw_partial = true;
        prev = sn;
        if (writes < 200) {
            if (shoal__store_write(s, parent_doc_fn, &writes) != SHOAL_OK)
                wrc_bad++;
            writes++;
        } else {
            struct timespec ts = { 0, 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(wrc_bad, 0);
    printf("  parent: %d reads, %d writes while the child committed (saw partial: %s)\n", reads,
           writes, saw_partial ? "yes" : "no");
    struct final_check f = { 0, writes };
    CHECK_EQ(shoal__store_read(s, final_fn, &f), SHOAL_OK);
    CHECK_EQ(f.fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

/* A child grows the map far past the parent's while the parent keeps the
 * environment open; the parent's next txns must cope (MDB_MAP_RESIZED). */
static int
child_grower(const char *dir, uint8_t *buf)
{
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 64 * 1024, pk, &sk);
    if (!s)
        return 2;
    struct big b = { 0, buf };
    int rc = shoal__store_write(s, big_fn, &b);
    shoal__store_close(s);
    shoal__identity_free(sk);
    return rc == SHOAL_OK && b.calls > 1 ? 0 : 1;
}

static void
test_child_grows_map(void)
{
    char *dir = check_tmpdir("store-resized");
    uint8_t pk[32], *sk = NULL;
    uint8_t *buf = malloc(BIG_LEN);
    REQUIRE(buf);
    fill_bytes(buf, BIG_LEN, check_rand());
    shoal__store *s = open_store(dir, true, 64 * 1024, pk, &sk);
    REQUIRE(s);
    uint64_t c[2] = { 9, 9 };
    CHECK_EQ(shoal__store_read(s, count_fn, c), SHOAL_OK);
    CHECK(c[0] == 0 && c[1] == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(child_grower(dir, buf));
    int st = wait_child(pid, check_now_ms() + 120000);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    struct growcheck g = { buf, 0, 0 };
    CHECK_EQ(shoal__store_read(s, grow_check, &g), SHOAL_OK);
    /* And the parent writes on top, growing its own map further. */
    struct small sm = { 0, buf };
    for (sm.i = 0; sm.i < 100; sm.i++)
        CHECK_EQ(shoal__store_write(s, small_fn, &sm), SHOAL_OK);
    g.nsmall = 100;
    CHECK_EQ(shoal__store_read(s, grow_check, &g), SHOAL_OK);
    CHECK_EQ(g.fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    free(buf);
    check_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------- non-durable */

static void
test_nondurable_flush(void)
{
    char *dir = check_tmpdir("store-nosync");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_write(s, fixture_write, NULL), SHOAL_OK);
    CHECK_EQ(shoal__store_flush(s), SHOAL_OK);
    int fails = 0;
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    CHECK_EQ(shoal__store_flush(s), SHOAL_OK);
    CHECK_EQ(fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    shoal__store_close(NULL);
    shoal__identity_free(NULL);
    check_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------- tail cache (store) */

/* Change i of the cache tests: author one of three, seq i / 3 + 1, a
 * document meta on document i % 5 riding in its log entry.  The store
 * keeps the tail of its last snapshot between txns; every check below
 * fails if it serves a stale one. */
enum {
    TC_DOCS = 5
};

struct tc_put {
    int from, to;
    size_t envlen; /* 0: 48 */
    bool fail;     /* return an error after the puts (the txn aborts) */
};

static void
tc_meta(int i, char m[32])
{
    snprintf(m, 32, "meta-%d", i);
}

static int
tc_put_fn(shoal__stxn *t, void *arg)
{
    const struct tc_put *a = arg;
    size_t elen = a->envlen ? a->envlen : 48;
    uint8_t *env = malloc(elen);
    if (!env)
        return SHOAL_ENOMEM;
    int rc = SHOAL_OK;
    for (int i = a->from; !rc && i < a->to; i++) {
        uint8_t cid[32], author[32], e48[48];
        uint64_t seq, pos = 0;
        tail_change(i, cid, author, &seq, e48);
        memset(env, (int)i, elen);
        memcpy(env, e48, 48);
        rc = shoal__stxn_change_put(t, cid, env, elen, author, seq, 0, &pos);
        if (!rc && pos != (uint64_t)i + 1)
            rc = SHOAL_EINVAL;
        char id[8], m[32];
        snprintf(id, sizeof id, "d%d", i % TC_DOCS);
        tc_meta(i, m);
        if (!rc)
            rc = shoal__stxn_doc_put(t, U8("tc"), 2, U8(id), strlen(id), m, strlen(m), pos);
    }
    free(env);
    return rc ? rc : a->fail ? SHOAL_EINVAL : SHOAL_OK;
}

/* Everything below n is stored, n itself is not. */
static int
tc_check_fn(shoal__stxn *t, void *arg)
{
    int n = *(int *)arg, bad = 0;
    for (int i = 0; i <= n; i++) {
        uint8_t cid[32], author[32], env[48], got[32];
        uint64_t seq;
        tail_change(i, cid, author, &seq, env);
        bool has = shoal__stxn_change_has(t, cid);
        if (has != (i < n))
            bad++;
        if (i < n &&
            (shoal__stxn_authseq_get(t, author, seq, got) != SHOAL_OK || memcmp(got, cid, 32) != 0))
            bad++;
    }
    for (int a = 0; a < 3 && a < n; a++) {
        int last = a + ((n - 1 - a) / 3) * 3; /* greatest i < n with i % 3 == a */
        uint8_t cid[32], author[32], env[48], got[32];
        uint64_t seq, gseq = 0;
        tail_change(last, cid, author, &seq, env);
        if (shoal__stxn_vv_get(t, author, &gseq, got) != SHOAL_OK || gseq != seq ||
            memcmp(got, cid, 32) != 0)
            bad++;
    }
    for (int d = 0; d < TC_DOCS && d < n; d++) {
        int last = d + ((n - 1 - d) / TC_DOCS) * TC_DOCS;
        char id[8], m[32];
        snprintf(id, sizeof id, "d%d", d);
        tc_meta(last, m);
        shoal__sval v = { NULL, 0 };
        if (shoal__stxn_doc_get(t, U8("tc"), 2, U8(id), strlen(id), &v) != SHOAL_OK ||
            !sval_eq(&v, m, strlen(m)))
            bad++;
    }
    if (shoal__stxn_log_count(t) != (uint64_t)n)
        bad++;
    return bad ? SHOAL_EINVAL : SHOAL_OK;
}

static int
tc_readonly_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    uint8_t cid[32];
    uint64_t seq;
    memset(cid, 0xAB, sizeof cid);
    if (shoal__stxn_vv_get(t, U8("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"), &seq, cid) != SHOAL_ENOTFOUND)
        return SHOAL_EINVAL;
    return shoal__stxn_change_has(t, cid) ? SHOAL_EINVAL : SHOAL_OK;
}

static int
tc_flush_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    return shoal__stxn_index_flush(t);
}

/* Another process appends [from, to) while the parent keeps its handle. */
static void
tc_child_put(const char *dir, int from, int to)
{
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        uint8_t pk[32], *sk = NULL;
        shoal__store *c = open_store(dir, false, 0, pk, &sk);
        struct tc_put a = { from, to, 0, false };
        int rc = c ? shoal__store_write(c, tc_put_fn, &a) : SHOAL_ESTORE;
        shoal__store_close(c);
        shoal__identity_free(sk);
        _exit(rc == SHOAL_OK ? 0 : 1);
    }
    int st = -1;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---------------------------------------- creation (create_staged) */

static bool
path_exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static void
make_stage(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    REQUIRE(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/%s/data.mdb", dir, name);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs("half-made", f);
    fclose(f);
}

/* A new replica's data.mdb is made in a staging directory and linked into
 * place whole; the staging directory of a creator that died (a power cut
 * or a kill mid-creation) is removed by the next creation, that of a live
 * process is left alone, and nothing else of the staging is left. */
static void
test_create_staged(void)
{
    char *dir = check_tmpdir("store-create");
    REQUIRE(mkdir(dir, 0700) == 0 || errno == EEXIST);
    char live[64];
    snprintf(live, sizeof live, ".new-%ld-live00", (long)getppid());
    make_stage(dir, ".new-2147483646-dead00"); /* no such pid */
    make_stage(dir, live);
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, true, 0, pk, &sk);
    REQUIRE(s);
    CHECK(path_exists(dir, "data.mdb"));
    CHECK(!path_exists(dir, ".new-2147483646-dead00"));
    CHECK(path_exists(dir, live));
    int fails = 0;
    CHECK_EQ(shoal__store_write(s, fixture_write, NULL), SHOAL_OK);
    CHECK_EQ(shoal__store_read(s, fixture_check, &fails), SHOAL_OK);
    CHECK_EQ(fails, 0);
    shoal__store_close(s);
    shoal__identity_free(sk);
    /* Only the live process's staging directory and the store's files. */
    DIR *d = opendir(dir);
    REQUIRE(d);
    struct dirent *de;
    int stages = 0;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, ".new-", 5) == 0)
            stages++;
    closedir(d);
    CHECK_EQ(stages, 1);
    check_rmtree(dir);
    free(dir);
}

/* -------------------------------------------- group commit (batch.c) */

/* What another process reading the directory now sees: the number of log
 * entries in the newest committed snapshot, read by a child with liblmdb
 * directly (read-only: the store's open would wait for the writer lock,
 * that is for the open batch to end; and one process must not open an
 * environment twice), or -1. */
static long
batch_committed(const char *dir)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        long n = -1;
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_stat st;
        if (!mdb_env_create(&env)) {
            mdb_env_set_maxdbs(env, 16);
            if (!mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) &&
                !mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
                if (!mdb_dbi_open(txn, "log", 0, &dbi) && !mdb_stat(txn, dbi, &st))
                    n = (long)st.ms_entries;
                mdb_txn_abort(txn);
            }
            mdb_env_close(env);
        }
        _exit(write(p[1], &n, sizeof n) == (ssize_t)sizeof n ? 0 : 1);
    }
    close(p[1]);
    long n = -1;
    if (read(p[0], &n, sizeof n) != (ssize_t)sizeof n)
        n = -1;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return n;
}

/* A child process reads the directory: 0 when it holds exactly [0, n). */
static int
batch_child_sees(const char *dir, int n)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 3;
    if (pid == 0) {
        uint8_t pk[32], *sk = NULL;
        shoal__store *c = open_store(dir, true, 0, pk, &sk);
        int m = n;
        int rc = c ? shoal__store_read(c, tc_check_fn, &m) : SHOAL_ESTORE;
        shoal__store_close(c);
        shoal__identity_free(sk);
        _exit(rc == SHOAL_OK ? 0 : 1);
    }
    int st = -1;
    if (waitpid(pid, &st, 0) != pid)
        return 3;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}

struct batch_has {
    const uint8_t *cid;
    bool has;
};

static int
batch_has_fn(shoal__stxn *t, void *arg)
{
    struct batch_has *q = arg;
    q->has = shoal__stxn_change_has(t, q->cid);
    return SHOAL_OK;
}

struct batch_reader {
    shoal__store *s;
    _Atomic int published; /* commits the writer says returned */
    _Atomic int stop;
    _Atomic int bad, reads;
};

/* Another thread of the process: every commit that returned before a read
 * began is in what the read sees (the read may see later ones too). */
static void *
batch_reader_main(void *arg)
{
    struct batch_reader *r = arg;
    while (!atomic_load(&r->stop)) {
        int n = atomic_load(&r->published);
        uint8_t cid[32], author[32], env[48];
        uint64_t seq;
        if (n > 0) {
            tail_change(n - 1, cid, author, &seq, env);
            struct batch_has q = { cid, false };
            if (shoal__store_read(r->s, batch_has_fn, &q) != SHOAL_OK || !q.has)
                atomic_fetch_add(&r->bad, 1);
            atomic_fetch_add(&r->reads, 1);
        }
    }
    return NULL;
}

/* Fast mode: commits go into a batch that the flusher commits every few
 * milliseconds.  A commit that returned is seen by every later read of
 * the process (another thread included) at once; another process sees it
 * once its batch is committed, which a flush forces; a commit that fails
 * leaves the batch as it was; the tail cache follows the batch. */
static void
test_batch(void)
{
    char *dir = check_tmpdir("store-batch");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    struct batch_reader r = { .s = s };
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, batch_reader_main, &r) == 0);
    int n = 0;
    for (; n < 400; n++) {
        struct tc_put a = { n, n + 1, 0, false };
        CHECK_EQ(shoal__store_write(s, tc_put_fn, &a), SHOAL_OK);
        atomic_store(&r.published, n + 1);
        if (n % 50 == 7) {
            int m = n + 1;
            CHECK_EQ(shoal__store_read(s, tc_check_fn, &m), SHOAL_OK);
            /* A failed commit in the middle of a batch: no trace of it,
             * and the commits before it stay. */
            struct tc_put f = { n + 1, n + 3, 0, true };
            CHECK_EQ(shoal__store_write(s, tc_put_fn, &f), SHOAL_EINVAL);
            CHECK_EQ(shoal__store_read(s, tc_check_fn, &m), SHOAL_OK);
        }
    }
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    CHECK_EQ(atomic_load(&r.bad), 0);
    printf("  batch: %d reads by another thread, %d missed a returned commit\n",
           atomic_load(&r.reads), atomic_load(&r.bad));
    /* After a flush the newest snapshot on disk holds everything (and the
     * batch was still open before it: BATCH_MS is far longer than the
     * commit), so another process holds it too. */
    struct tc_put last = { n, n + 1, 0, false };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &last), SHOAL_OK);
    n++;
    long before = batch_committed(dir);
    CHECK_EQ(shoal__store_flush(s), SHOAL_OK);
    CHECK_EQ(batch_committed(dir), n);
    printf("  batch: %ld of %d commits in the newest snapshot before the flush, %ld after\n",
           before, n, batch_committed(dir));
    CHECK_EQ(batch_child_sees(dir, n), 0);
    /* Without a flush, the flusher commits the batch within BATCH_MS (the
     * wait is bounded far above it). */
    last = (struct tc_put){ n, n + 1, 0, false };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &last), SHOAL_OK);
    n++;
    uint64_t until = check_now_ms() + 10000;
    while (batch_committed(dir) != n && check_now_ms() < until)
        usleep(1000);
    CHECK_EQ(batch_committed(dir), n);
    /* Another process writing meanwhile waits for the open batch and
     * commits after it; our next read sees its commits. */
    struct tc_put a = { n, n + 2, 0, false };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &a), SHOAL_OK);
    n += 2;
    tc_child_put(dir, n, n + 3);
    n += 3;
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    CHECK_EQ(shoal__store_write(s, tc_check_fn, &n), SHOAL_OK);
    /* Close commits the open batch. */
    a = (struct tc_put){ n, n + 1, 0, false };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &a), SHOAL_OK);
    n += 1;
    shoal__store_close(s);
    CHECK_EQ(batch_child_sees(dir, n), 0);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

static void
test_tail_cache(void)
{
    char *dir = check_tmpdir("store-tc");
    uint8_t pk[32], *sk = NULL;
    shoal__store *s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    int n = 0;
    /* One change per txn, across an index batch (TAIL_MAX 256). */
    for (; n < 300; n++) {
        struct tc_put a = { n, n + 1, 0, false };
        CHECK_EQ(shoal__store_write(s, tc_put_fn, &a), SHOAL_OK);
        if (n % 37 == 0) {
            int m = n + 1;
            CHECK_EQ(shoal__store_read(s, tc_check_fn, &m), SHOAL_OK);
        }
    }
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    /* Another process commits: our cached tail is of an older snapshot. */
    tc_child_put(dir, n, n + 3);
    n += 3;
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    struct tc_put a = { n, n + 2, 0, false };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &a), SHOAL_OK);
    n += 2;
    /* ... also right after a write txn of ours, and one that wrote nothing
     * (LMDB commits no new txn id for it). */
    tc_child_put(dir, n, n + 2);
    n += 2;
    CHECK_EQ(shoal__store_write(s, tc_check_fn, &n), SHOAL_OK);
    CHECK_EQ(shoal__store_write(s, tc_readonly_fn, NULL), SHOAL_OK);
    tc_child_put(dir, n, n + 1);
    n += 1;
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    CHECK_EQ(shoal__store_write(s, tc_readonly_fn, NULL), SHOAL_OK);
    tc_child_put(dir, n, n + 1);
    n += 1;
    CHECK_EQ(shoal__store_write(s, tc_check_fn, &n), SHOAL_OK);
    /* An aborted txn leaves nothing in the cache. */
    struct tc_put f = { n, n + 4, 0, true };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &f), SHOAL_EINVAL);
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    f.fail = false;
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &f), SHOAL_OK);
    n += 4;
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    /* An index flush empties the tail; the child then appends to it. */
    CHECK_EQ(shoal__store_write(s, tc_flush_fn, NULL), SHOAL_OK);
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    tc_child_put(dir, n, n + 2);
    n += 2;
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    CHECK_EQ(shoal__store_write(s, tc_flush_fn, NULL), SHOAL_OK);
    tc_child_put(dir, n, n + 1);
    n += 1;
    CHECK_EQ(shoal__store_write(s, tc_check_fn, &n), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);

    /* Map growth between txns: the cached metas must not point into the
     * old mapping or into pages later txns reuse.  The tail is loaded from
     * the map (reopen) and then kept while large entries grow the map. */
    dir = check_tmpdir("store-tc-grow");
    s = open_store(dir, false, 1 << 20, pk, &sk);
    REQUIRE(s);
    struct tc_put g = { 0, 10, 0, false };
    CHECK_EQ(shoal__store_write(s, tc_put_fn, &g), SHOAL_OK);
    shoal__store_close(s);
    shoal__identity_free(sk);
    s = open_store(dir, false, 0, pk, &sk);
    REQUIRE(s);
    n = 10;
    CHECK_EQ(shoal__store_read(s, tc_check_fn, &n), SHOAL_OK);
    for (; n < 40; n++) {
        struct tc_put b = { n, n + 1, 100000, false };
        CHECK_EQ(shoal__store_write(s, tc_put_fn, &b), SHOAL_OK);
        int m = n + 1;
        CHECK_EQ(shoal__store_read(s, tc_check_fn, &m), SHOAL_OK);
    }
    shoal__store_close(s);
    shoal__identity_free(sk);
    check_rmtree(dir);
    free(dir);
}

int
main(void)
{
    check_seed(0x5703e);
    fixture_init();
    RUN(test_create_reopen);
    RUN(test_create_staged);
    RUN(test_identity_corrupt);
    RUN(test_scans);
    RUN(test_peer_rows);
    RUN(test_index_tail);
    RUN(test_superseded);
    RUN(test_doc_meta_tail);
    RUN(test_rollback);
    RUN(test_map_growth);
    RUN(test_map_full_swallowed);
    RUN(test_threads_during_growth);
    RUN(test_nondurable_flush);
    RUN(test_two_processes);
    RUN(test_child_grows_map);
    RUN(test_tail_cache);
    RUN(test_batch);
    if (can_mount()) {
        RUN(test_full_disk);
        RUN(test_map_bounded_by_disk);
        RUN(test_readonly_dir);
    } else {
        printf("skipped: cannot mount tmpfs (needs root or CAP_SYS_ADMIN): "
               "test_full_disk, test_map_bounded_by_disk, test_readonly_dir not run\n");
    }
    fixture_free();
    return check_summary();
}
