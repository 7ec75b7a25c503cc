/*
 * test/core/test_check.c - shoal_replica_check (core/check.c) and the
 * recovery path of docs/operations.md, "A damaged replica".
 *
 * A healthy replica with registers, counters, lists, deletes, snapshots,
 * changes of three authors, a pending change and equivocation evidence
 * checks clean; then one thing at a time is damaged through the store's
 * internal API (store_int.h: raw table access, with the replica closed)
 * and the check must report exactly that problem, and SHOAL_ECORRUPT.
 * Then the identity questions of re-syncing a device into a new directory:
 * with its old key, re-synced first, its next change continues after the
 * highest seq the relay holds (no equivocation); written before the
 * re-sync, or if the old directory's unsynced change ever travels, the two
 * versions of one seq are an equivocation; a new key starts at seq 1.
 *
 * Seeded identities and a fixed fake clock: every run makes the same
 * changes.  Temporary directories are removed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "core.h"
#include "replica.h"
#include "shoal.h"
#include "store_int.h" /* raw tables, to damage them */

/* ---------------------------------------------------------------- helpers */

static uint64_t
fake_clock(void *ctx)
{
    uint64_t *t = ctx;
    return (*t)++;
}

static uint64_t clock_ms = 1750000000000ull;

static shoal_replica *
open_seeded(const char *dir, bool seed)
{
    if (seed && !check_seed_identity(dir))
        return NULL;
    return check_replica_open(dir, fake_clock, &clock_ms);
}

static bool
copy_identity(const char *from, const char *to)
{
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s/identity", from);
    snprintf(q, sizeof q, "%s/identity", to);
    uint8_t sk[64];
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return false;
    bool ok = read(fd, sk, sizeof sk) == (ssize_t)sizeof sk;
    close(fd);
    int out = open(q, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (!ok || out < 0)
        return false;
    ok = write(out, sk, sizeof sk) == (ssize_t)sizeof sk;
    close(out);
    return ok;
}

/* The problems a check reported. */
typedef struct problems {
    int n;
    char text[8][512];
} problems;

static void
collect(void *arg, const char *problem)
{
    problems *p = arg;
    if (p->n < 8)
        snprintf(p->text[p->n], sizeof p->text[p->n], "%s", problem);
    p->n++;
}

static shoal_err
run_check(const char *dir, problems *p, shoal_check_stats *st)
{
    memset(p, 0, sizeof *p);
    shoal_replica *r = check_replica_open(dir, fake_clock, &clock_ms);
    if (!r)
        return SHOAL_ESTORE;
    shoal_err err = shoal_replica_check(r, collect, p, st);
    for (int i = 0; i < p->n && i < 8; i++)
        fprintf(stderr, "  problem: %s\n", p->text[i]);
    shoal_replica_close(r);
    return err;
}

/* Exactly one problem, containing each of the NULL-terminated parts. */
static bool
one_problem(const problems *p, const char *a, const char *b)
{
    if (p->n != 1)
        return false;
    return strstr(p->text[0], a) && (!b || strstr(p->text[0], b));
}

/* BLAKE2b of dir/data.mdb. */
static bool
file_hash(const char *dir, uint8_t out[32])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_generichash_update(&st, buf, n);
    fclose(f);
    crypto_generichash_final(&st, out, 32);
    return true;
}

/* -------------------------------------------------------------- fixture */

/* A replica with some of everything:
 *   items/a   registers, a counter, a list with an insert and a remove;
 *   items/b   created then deleted;
 *   items/big ten 600-byte fields v0..v9, one per change: a snapshot
 *             after the sixth, the last four in its tail;
 *   other/z   from a second author (its bundle imported);
 *   eq/d      two versions of one (author, seq) by a cloned identity:
 *             one applied, the other evidence;
 *   p/q       a third author's seq 2 without its seq 1: pending. */
static char *
fixture(void)
{
    char *dir = check_tmpdir("check-a");
    char *db = check_tmpdir("check-b");
    char *de1 = check_tmpdir("check-e1");
    char *de2 = check_tmpdir("check-e2");
    char *dp = check_tmpdir("check-p");
    shoal_replica *a = open_seeded(dir, true), *b = open_seeded(db, true);
    shoal_replica *e1 = open_seeded(de1, true), *e2 = NULL, *p = open_seeded(dp, true);
    bool ok = a && b && e1 && p && copy_identity(de1, de2);
    if (ok)
        e2 = open_seeded(de2, false);
    ok = ok && e2;
    ok = ok && check_set_str(a, "items", "a", "name", "alpha") == SHOAL_OK;
    shoal_txn *t = NULL;
    shoal_value one = { .type = SHOAL_T_INT, .i = 1 }, two = { .type = SHOAL_T_INT, .i = 2 };
    ok = ok && shoal_txn_begin(a, &t) == SHOAL_OK;
    ok = ok && shoal_txn_counter_add(t, "items", "a", "stock", 5) == SHOAL_OK &&
         shoal_txn_list_insert(t, "items", "a", "tags", 0, &one) == SHOAL_OK &&
         shoal_txn_list_insert(t, "items", "a", "tags", 1, &two) == SHOAL_OK;
    ok = ok && shoal_txn_commit(t) == SHOAL_OK;
    ok = ok && shoal_txn_begin(a, &t) == SHOAL_OK;
    ok = ok && shoal_txn_list_remove(t, "items", "a", "tags", 0) == SHOAL_OK &&
         shoal_txn_counter_add(t, "items", "a", "stock", -2) == SHOAL_OK;
    ok = ok && shoal_txn_commit(t) == SHOAL_OK;
    ok = ok && check_set_str(a, "items", "b", "name", "beta") == SHOAL_OK;
    ok = ok && shoal_txn_begin(a, &t) == SHOAL_OK;
    ok = ok && shoal_txn_delete(t, "items", "b") == SHOAL_OK && shoal_txn_commit(t) == SHOAL_OK;
    char big[601], field[8];
    for (int i = 0; ok && i < 10; i++) {
        memset(big, 'a' + i, 600);
        big[600] = 0;
        snprintf(field, sizeof field, "v%d", i);
        ok = check_set_str(a, "items", "big", field, big) == SHOAL_OK;
    }
    ok = ok && check_set_str(b, "other", "z", "f", "zed") == SHOAL_OK;
    shoal_import_result res;
    ok = ok && check_push(b, a, &res) == SHOAL_OK && res.applied == 1;
    ok = ok && check_set_str(e1, "eq", "d", "f", "one") == SHOAL_OK &&
         check_set_str(e2, "eq", "d", "f", "two") == SHOAL_OK;
    ok = ok && check_push(e1, a, &res) == SHOAL_OK && check_push(e2, a, &res) == SHOAL_OK &&
         res.equivocations == 1;
    /* p's seq 2 alone: export since a vector holding p at seq 1. */
    ok = ok && check_set_str(p, "p", "q", "f", "1") == SHOAL_OK &&
         check_set_str(p, "p", "q", "f", "2") == 0;
    shoal_vv *vv = NULL;
    uint8_t *bb = NULL;
    size_t bn = 0;
    ok = ok && shoal_vv_new(&vv) == SHOAL_OK && shoal_vv_set(vv, shoal_replica_id(p), 1) == 0 &&
         shoal_export(p, vv, &bb, &bn) == SHOAL_OK;
    ok = ok && shoal_import(a, bb, bn, &res) == SHOAL_OK && res.pending == 1;
    shoal_free(bb);
    shoal_vv_free(vv);
    shoal_replica_close(a);
    shoal_replica_close(b);
    shoal_replica_close(e1);
    shoal_replica_close(e2);
    shoal_replica_close(p);
    const char *tmp[] = { db, de1, de2, dp };
    for (size_t i = 0; i < 4; i++) {
        check_rmtree(tmp[i]);
        free((void *)tmp[i]);
    }
    if (!ok) {
        check_rmtree(dir);
        free(dir);
        return NULL;
    }
    return dir;
}

static void
fixture_free(char *dir)
{
    check_rmtree(dir);
    free(dir);
}

/* ----------------------------------------------------- damage (raw store) */

typedef int (*damage_fn)(shoal__stxn *t, void *arg);

static bool
damage(const char *dir, damage_fn fn, void *arg)
{
    shoal__store *s;
    shoal__store_opts so = { .durable = false };
    char eb[256];
    if (shoal__store_open(&s, dir, &so, eb, sizeof eb) != SHOAL_OK)
        return false;
    int err = shoal__store_write(s, fn, arg);
    shoal__store_close(s);
    return err == SHOAL_OK;
}

/* The log entry whose envelope holds needle: its position and the
 * needle's offset in the value. */
typedef struct findc {
    const char *needle;
    uint64_t pos;
    size_t off;
} findc;

static int
find_fn(const shoal__log_rec *e, void *arg)
{
    findc *f = arg;
    size_t nl = strlen(f->needle);
    for (size_t i = 0; !e->bad && i + nl <= e->env.len; i++)
        if (memcmp(e->env.p + i, f->needle, nl) == 0) {
            f->pos = e->pos;
            f->off = (size_t)(e->env.p + i - e->cid); /* from the value's start */
            return 1;
        }
    return 0;
}

/* Rewrite log entry pos with byte off xor-ed with x. */
static int
log_flip(shoal__stxn *t, uint64_t pos, size_t off, uint8_t x)
{
    uint8_t k[8];
    shoal__be64_put(k, pos);
    shoal__sval v;
    int err = shoal__st_get(t, T_LOG, k, 8, &v);
    if (err)
        return err;
    uint8_t *b = malloc(v.len);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, v.len);
    b[off] ^= x;
    err = shoal__st_put(t, T_LOG, k, 8, b, v.len, 0);
    free(b);
    return err;
}

static int
flip_value_fn(shoal__stxn *t, void *arg)
{
    findc *f = arg;
    int err = shoal__stxn_log_walk(t, find_fn, f);
    if (err != 1 || f->pos == 0)
        return SHOAL_ENOTFOUND;
    return log_flip(t, f->pos, f->off, 0x20);
}

/* The fixture damaged by fn(arg) fails the check with exactly one
 * problem, holding a (and b unless NULL); *st receives the stats. */
static void
expect_one_problem(damage_fn fn, void *arg, const char *a, const char *b, shoal_check_stats *st)
{
    char *dir = fixture();
    REQUIRE(dir);
    REQUIRE(damage(dir, fn, arg));
    problems p;
    CHECK_EQ(run_check(dir, &p, st), SHOAL_ECORRUPT);
    CHECK(one_problem(&p, a, b));
    fixture_free(dir);
}

/* A change's envelope byte flipped inside the log: its signature fails. */
static void
test_flipped_envelope(void)
{
    char *dir = fixture();
    REQUIRE(dir);
    findc f = { "alpha", 0, 0 };
    REQUIRE(damage(dir, flip_value_fn, &f));
    problems p;
    shoal_check_stats st;
    CHECK_EQ(run_check(dir, &p, &st), SHOAL_ECORRUPT);
    char at[32];
    snprintf(at, sizeof at, "log %llu: ", (unsigned long long)f.pos);
    CHECK(one_problem(&p, at, "the signature does not verify"));
    CHECK_EQ(st.problems, 1);
    fixture_free(dir);
}

/* The stored id of the first log entry (not its author's newest change)
 * no longer matches its envelope. */
static int
bad_id_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    return log_flip(t, 1, 0, 0x01);
}

static void
test_stored_id(void)
{
    shoal_check_stats st;
    expect_one_problem(bad_id_fn, NULL, "log 1: stored change id", "is not the envelope's id", &st);
}

/* An index entry (changes: id -> position) pointing at another position,
 * once the tail is indexed. */
typedef struct ixd {
    uint8_t cid[32];
} ixd;

static int
bad_index_fn(shoal__stxn *t, void *arg)
{
    ixd *x = arg;
    int err = shoal__stxn_index_flush(t);
    uint64_t link;
    bool dead;
    if (!err)
        err = shoal__stxn_log_entry(t, 2, NULL, &link, &dead, x->cid);
    uint8_t v[8];
    shoal__be64_put(v, 3);
    if (!err)
        err = shoal__st_put(t, T_CHANGES, x->cid, 32, v, 8, 0);
    return err;
}

static void
test_index_position(void)
{
    ixd x;
    shoal_check_stats st;
    expect_one_problem(bad_index_fn, &x, "changes index: change",
                       "-> log 3, but the log holds it at 2", &st);
}

/* An authseq entry removed: the index lacks an applied change. */
static int
drop_authseq_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    int err = shoal__stxn_index_flush(t);
    uint8_t k[8];
    shoal__be64_put(k, 1);
    shoal__sval v;
    if (!err)
        err = shoal__st_get(t, T_LOG, k, 8, &v);
    uint8_t sk[SHOAL__SEQKEY_BYTES];
    if (!err) {
        memcpy(sk, v.p + LOG_AUTHOR, SHOAL__SEQKEY_BYTES); /* author | seq, as in authseq */
        err = shoal__st_del(t, T_AUTHSEQ, sk, sizeof sk);
    }
    return err;
}

static void
test_authseq_missing(void)
{
    shoal_check_stats st;
    expect_one_problem(drop_authseq_fn, NULL, "authseq index: lacks author", "(log 1)", &st);
}

/* One letter of field v3 (600 x 'd') changed in items/big's snapshot:
 * still a valid snapshot, but no longer the state its changes rebuild. */
static int
swap_snap_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    shoal__sval s;
    int err = shoal__stxn_snap_get(t, (const uint8_t *)"items", 5, (const uint8_t *)"big", 3, &s);
    if (err)
        return err;
    uint8_t *b = malloc(s.len);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, s.p, s.len);
    uint8_t *hit = memchr(b, 'd', s.len);
    if (hit && hit + 300 < b + s.len && hit[299] == 'd')
        hit[299] = 'D';
    else
        hit = NULL;
    err = hit ? shoal__stxn_snap_put(t, (const uint8_t *)"items", 5, (const uint8_t *)"big", 3, b,
                                     s.len)
              : SHOAL_ENOTFOUND;
    free(b);
    return err;
}

static void
test_doc_state(void)
{
    shoal_check_stats st;
    expect_one_problem(swap_snap_fn, NULL, "document items/big: the stored state differs", NULL,
                       &st);
}

/* items/a's entry removed from the docs table (after the index batch
 * moved the metas there). */
static int
drop_doc_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    int err = shoal__stxn_index_flush(t);
    if (!err)
        err = shoal__st_del(t, T_DOCS, "items\0a", 7);
    return err;
}

static void
test_doc_missing(void)
{
    shoal_check_stats st;
    expect_one_problem(drop_doc_fn, NULL,
                       "document items/a: 3 changes in the log, but no entry in the docs table",
                       NULL, &st);
}

/* A pending envelope with a flipped byte. */
static int
pend_cb(const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    uint8_t *out = arg;
    memcpy(out, cid, 32);
    memcpy(out + 32, &env->len, sizeof env->len);
    return 1;
}

static int
flip_pending_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    uint8_t got[32 + sizeof(size_t)];
    if (shoal__stxn_pending_scan(t, pend_cb, got) != 1)
        return SHOAL_ENOTFOUND;
    shoal__sval v;
    int err = shoal__st_get(t, T_PENDING, got, 32, &v);
    if (err)
        return err;
    uint8_t *b = malloc(v.len);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, v.len);
    b[v.len - 1] ^= 0x01; /* in the signature: it still parses and decodes */
    err = shoal__st_put(t, T_PENDING, got, 32, b, v.len, 0);
    free(b);
    return err;
}

static void
test_pending_damaged(void)
{
    shoal_check_stats st;
    expect_one_problem(flip_pending_fn, NULL, "pending ", "the signature does not verify", &st);
    CHECK_EQ(st.pending, 1);
}

/* ------------------------------------------------------------ healthy */

/* ------------------------------------------------- query views, indexes */

#define ITEMS (const uint8_t *)"items", 5

static int
drop_view_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    return shoal__stxn_qview_del(t, ITEMS, (const uint8_t *)"a", 1);
}

/* items/a's view replaced by that of another live document. */
static int
swap_view_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    shoal__sval v;
    int err = shoal__stxn_qview_get(t, ITEMS, (const uint8_t *)"big", 3, &v);
    if (err)
        return err;
    uint8_t *b = malloc(v.len);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, v.len);
    err = shoal__stxn_qview_put(t, ITEMS, (const uint8_t *)"a", 1, b, v.len);
    free(b);
    return err;
}

static int
ghost_view_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    static const uint8_t view[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0x80 }; /* epoch 0, no field */
    return shoal__stxn_qview_put(t, ITEMS, (const uint8_t *)"ghost", 5, view, sizeof view);
}

static int
unbuilt_fn(shoal__stxn *t, void *arg)
{
    (void)arg;
    return shoal__st_del(t, T_META, "qviews", 6);
}

typedef struct first {
    uint8_t key[SHOAL__QKEY_MAX];
    size_t kl;
    uint8_t id[SHOAL_MAX_DOC_ID];
    size_t idl;
    bool got;
} first;

static int
first_entry_fn(const uint8_t *key, size_t klen, const uint8_t *id, size_t idlen, void *arg)
{
    first *f = arg;
    memcpy(f->key, key, klen);
    f->kl = klen;
    memcpy(f->id, id, idlen);
    f->idl = idlen;
    f->got = true;
    return 1;
}

/* An index on items.name, then one entry too few (arg NULL) or one too many. */
static int
index_fn(shoal__stxn *t, void *arg)
{
    uint32_t ix;
    int err = shoal__stxn_qix_create(t, ITEMS, (const uint8_t *)"name", 4, &ix);
    if (!err)
        err = shoal__qindex_build(t, ITEMS, (const uint8_t *)"name", 4, ix);
    if (err)
        return err;
    if (arg) {
        uint8_t key[SHOAL__QKEY_MAX];
        size_t kl;
        shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"no such", .len = 7 };
        kl = shoal__qkey(&v, key);
        return shoal__stxn_qix_put(t, ix, key, kl, (const uint8_t *)"a", 1);
    }
    /* the first entry, whatever it is */
    first fr = { .got = false };
    err = shoal__stxn_qix_scan(t, ix, NULL, 0, NULL, 0, first_entry_fn, &fr);
    if (err != 1 || !fr.got)
        return err && err != 1 ? err : SHOAL_ENOTFOUND;
    return shoal__stxn_qix_del(t, ix, fr.key, fr.kl, fr.id, fr.idl);
}

static void
test_query_tables(void)
{
    shoal_check_stats st;
    expect_one_problem(drop_view_fn, NULL, "document items/a: no query view", NULL, &st);
    expect_one_problem(swap_view_fn, NULL, "document items/a: its query view differs", NULL, &st);
    expect_one_problem(ghost_view_fn, NULL, "query view of items/ghost: the log holds no change",
                       NULL, &st);
    /* views never built (a directory from before them): the open that
     * precedes the check builds them */
    char *dir = fixture();
    REQUIRE(dir);
    REQUIRE(damage(dir, unbuilt_fn, NULL));
    problems p;
    CHECK_EQ(run_check(dir, &p, &st), SHOAL_OK);
    CHECK_EQ(st.problems, 0);
    fixture_free(dir);
    expect_one_problem(index_fn, NULL, "index items.name: 1 entries missing, 0 entries too many",
                       NULL, &st);
    expect_one_problem(index_fn, "extra", "index items.name: 0 entries missing, 1 entries too many",
                       NULL, &st);
}

static void
test_healthy(void)
{
    char *dir = fixture();
    REQUIRE(dir);
    problems p;
    shoal_check_stats st;
    CHECK_EQ(run_check(dir, &p, &st), SHOAL_OK);
    CHECK_EQ(p.n, 0);
    CHECK_EQ(st.problems, 0);
    /* a: 3 + 2 + 10, b: 1, e: 1 applied (+1 evidence), p: 1 pending. */
    CHECK_EQ(st.changes, 17);
    CHECK(st.superseded <= 1); /* 1 if eq/d's second version swapped in */
    CHECK_EQ(st.pending, 1);
    CHECK_EQ(st.evidence, 2);
    CHECK_EQ(st.documents, 5);
    /* Without a callback: the same verdict and counts; and data.mdb is
     * the same file after a check (it writes nothing). */
    shoal_replica *r = check_replica_open(dir, fake_clock, &clock_ms);
    REQUIRE(r);
    uint8_t before[32], after[32];
    REQUIRE(file_hash(dir, before));
    shoal_check_stats st2;
    CHECK_EQ(shoal_replica_check(r, NULL, NULL, &st2), SHOAL_OK);
    CHECK(memcmp(&st, &st2, sizeof st) == 0);
    REQUIRE(file_hash(dir, after));
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_EQ(shoal_replica_check(r, NULL, NULL, NULL), SHOAL_OK);
    /* Past the index batch (256 entries): the indexes hold them now. */
    for (int i = 0; i < 300; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        REQUIRE(check_set_str(r, "many", v, "f", v) == SHOAL_OK);
    }
    CHECK_EQ(shoal_replica_check(r, collect, &p, &st2), SHOAL_OK);
    CHECK_EQ(st2.changes, 317);
    shoal_replica_close(r);
    fixture_free(dir);
}

/* A swap (a smaller version replacing an applied one) leaves a superseded
 * log entry and rebuilt documents: still clean. */
static void
test_healthy_swap(void)
{
    char *d1 = check_tmpdir("swap-1"), *d2 = check_tmpdir("swap-2"), *dt = check_tmpdir("swap-t");
    shoal_replica *a = open_seeded(d1, true);
    REQUIRE(a && copy_identity(d1, d2));
    shoal_replica *b = open_seeded(d2, false), *t = open_seeded(dt, true);
    REQUIRE(b && t);
    REQUIRE(check_set_str(a, "eq", "d", "f", "one") == SHOAL_OK);
    REQUIRE(check_set_str(b, "eq", "d", "f", "two") == SHOAL_OK);
    REQUIRE(check_set_str(a, "eq", "d", "g", "later") == SHOAL_OK);
    uint8_t *ba, *bb;
    size_t na, nb;
    REQUIRE(shoal_export(a, NULL, &ba, &na) == SHOAL_OK);
    REQUIRE(shoal_export(b, NULL, &bb, &nb) == SHOAL_OK);
    /* Both orders onto t: whichever is canonical, one of them swaps. */
    shoal_import_result res;
    CHECK_EQ(shoal_import(t, ba, na, &res), SHOAL_OK);
    CHECK_EQ(shoal_import(t, bb, nb, &res), SHOAL_OK);
    CHECK_EQ(res.equivocations, 1);
    shoal_check_stats st;
    problems p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(shoal_replica_check(t, collect, &p, &st), SHOAL_OK);
    CHECK_EQ(st.evidence, 2);
    CHECK_EQ(st.changes, 2);
    shoal_free(ba);
    shoal_free(bb);
    shoal_replica_close(a);
    shoal_replica_close(b);
    shoal_replica_close(t);
    check_rmtree(d1);
    check_rmtree(d2);
    check_rmtree(dt);
    free(d1);
    free(d2);
    free(dt);
}

/* --------------------------------------------- re-sync after the damage */

static uint64_t
own_seq(shoal_replica *r)
{
    shoal_vv *vv;
    if (shoal_replica_version(r, &vv) != SHOAL_OK)
        return UINT64_MAX;
    uint64_t s = shoal_vv_get(vv, shoal_replica_id(r));
    shoal_vv_free(vv);
    return s;
}

/* docs/operations.md, "A damaged replica": the device's directory is lost
 * after it synced seqs 1..3 to the relay and wrote seq 4 alone. */
static void
test_resync_identity(void)
{
    char *dd = check_tmpdir("dev"), *drel = check_tmpdir("relay"), *dn = check_tmpdir("dev-new");
    char *dw = check_tmpdir("dev-wrong"), *dk = check_tmpdir("dev-key");
    shoal_replica *dev = open_seeded(dd, true), *rel = open_seeded(drel, true);
    REQUIRE(dev && rel);
    for (int i = 1; i <= 3; i++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        REQUIRE(check_set_str(dev, "items", "x", "f", v) == SHOAL_OK);
    }
    shoal_import_result res;
    REQUIRE(check_push(dev, rel, &res) == SHOAL_OK && res.applied == 3);
    REQUIRE(check_set_str(dev, "items", "x", "f", "lost") == SHOAL_OK); /* seq 4, never synced */

    /* The right order: a new directory with the old identity, re-synced
     * from the relay before any write.  The next change is seq 4, a new
     * one; the relay takes it without an equivocation. */
    REQUIRE(copy_identity(dd, dn));
    shoal_replica *nw = open_seeded(dn, false);
    REQUIRE(nw);
    CHECK(memcmp(shoal_replica_id(nw), shoal_replica_id(dev), 32) == 0);
    CHECK_EQ(own_seq(nw), 0);
    CHECK_EQ(check_push(rel, nw, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 3);
    CHECK_EQ(own_seq(nw), 3);
    CHECK(check_has_str(nw, "items", "x", "f", "v3"));
    REQUIRE(check_set_str(nw, "items", "x", "f", "after") == SHOAL_OK);
    CHECK_EQ(own_seq(nw), 4);
    CHECK_EQ(check_push(nw, rel, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 1);
    CHECK_EQ(res.equivocations, 0);
    CHECK(check_has_str(rel, "items", "x", "f", "after"));
    /* The loss: seq 4 of the old directory.  Should that old copy ever
     * travel (an export, a sync), its seq 4 and the new one are two
     * versions of one (author, seq): an equivocation. */
    CHECK_EQ(check_push(dev, rel, &res), SHOAL_OK);
    CHECK_EQ(res.equivocations, 1);
    shoal_strlist *l;
    REQUIRE(shoal_equivocators(rel, &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 1);
    shoal_strlist_free(l);

    /* The wrong order: the old identity writes before it re-synced; its
     * change takes seq 1, which the relay already holds. */
    REQUIRE(copy_identity(dd, dw));
    shoal_replica *wr = open_seeded(dw, false);
    REQUIRE(wr);
    REQUIRE(check_set_str(wr, "items", "x", "f", "too-early") == SHOAL_OK);
    CHECK_EQ(own_seq(wr), 1);
    CHECK_EQ(check_push(rel, wr, &res), SHOAL_OK);
    CHECK(res.equivocations >= 1);
    REQUIRE(shoal_equivocators(wr, &l) == SHOAL_OK);
    char hex[65];
    shoal__hex(hex, shoal_replica_id(wr), 32);
    CHECK(shoal_strlist_count(l) == 1 && strcmp(shoal_strlist_get(l, 0), hex) == 0);
    shoal_strlist_free(l);

    /* A new key: no history to clash with; its first change is seq 1 of
     * a new author, next to the old author's changes. */
    shoal_replica *nk = open_seeded(dk, true);
    REQUIRE(nk);
    CHECK(memcmp(shoal_replica_id(nk), shoal_replica_id(dev), 32) != 0);
    CHECK_EQ(check_push(rel, nk, &res), SHOAL_OK);
    REQUIRE(check_set_str(nk, "items", "x", "f", "new-key") == SHOAL_OK);
    CHECK_EQ(own_seq(nk), 1);
    CHECK_EQ(check_push(nk, rel, &res), SHOAL_OK);
    CHECK_EQ(res.equivocations, 0);
    CHECK_EQ(res.applied, 1);
    shoal_check_stats st;
    CHECK_EQ(shoal_replica_check(rel, NULL, NULL, &st), SHOAL_OK);

    shoal_replica *all[] = { dev, rel, nw, wr, nk };
    for (size_t i = 0; i < 5; i++)
        shoal_replica_close(all[i]);
    char *dirs[] = { dd, drel, dn, dw, dk };
    for (size_t i = 0; i < 5; i++) {
        check_rmtree(dirs[i]);
        free(dirs[i]);
    }
}

/* The last signature byte of every log entry flipped: one problem each,
 * the first SHOAL_CHECK_REPORT_MAX of them reported, all counted. */
static int
flip_all_fn(shoal__stxn *t, void *arg)
{
    uint64_t *n = arg;
    *n = shoal__stxn_log_count(t);
    for (uint64_t pos = 1; pos <= *n; pos++) {
        uint8_t k[8];
        shoal__be64_put(k, pos);
        shoal__sval v;
        int err = shoal__st_get(t, T_LOG, k, 8, &v);
        if (!err)
            err = log_flip(t, pos, v.len - 1, 0x01);
        if (err)
            return err;
    }
    return SHOAL_OK;
}

static void
test_report_bound(void)
{
    char *dir = fixture();
    REQUIRE(dir);
    shoal_replica *r = check_replica_open(dir, fake_clock, &clock_ms);
    REQUIRE(r);
    for (int i = 0; i < 120; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        REQUIRE(check_set_str(r, "many", v, "f", v) == SHOAL_OK);
    }
    shoal_replica_close(r);
    uint64_t n = 0;
    REQUIRE(damage(dir, flip_all_fn, &n));
    CHECK(n > SHOAL_CHECK_REPORT_MAX);
    problems p;
    shoal_check_stats st;
    CHECK_EQ(run_check(dir, &p, &st), SHOAL_ECORRUPT);
    CHECK_EQ(p.n, SHOAL_CHECK_REPORT_MAX);
    CHECK_EQ(st.problems, n);
    CHECK(strstr(p.text[0], "log 1: ") && strstr(p.text[0], "the signature does not verify"));
    fixture_free(dir);
}

/* Pages of data.mdb damaged while the replica is open (after the open's
 * own walk): the environment is the one problem, and the check reads no
 * table through LMDB after it. */
static void
test_environment(void)
{
    char *dir = fixture();
    REQUIRE(dir);
    shoal_replica *r = check_replica_open(dir, fake_clock, &clock_ms);
    REQUIRE(r);
    shoal_check_stats st;
    CHECK_EQ(shoal_replica_check(r, NULL, NULL, &st), SHOAL_OK);
    CHECK(st.pages > 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    static const uint8_t zero[4096];
    /* Every page but the two meta pages. */
    for (off_t o = 2 * 4096; o + 4096 <= size; o += 4096)
        CHECK(pwrite(fd, zero, sizeof zero, o) == (ssize_t)sizeof zero);
    close(fd);
    problems p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(shoal_replica_check(r, collect, &p, &st), SHOAL_ECORRUPT);
    CHECK(one_problem(&p, "environment: data.mdb is damaged: page ", NULL));
    CHECK_EQ(st.problems, 1);
    CHECK_EQ(st.changes, 0);
    shoal_replica_close(r);
    /* Reopening it fails: the damage shows as SHOAL_ECORRUPT. */
    shoal_replica *again = NULL;
    CHECK_EQ(shoal_replica_open(&again, dir, NULL), SHOAL_ECORRUPT);
    CHECK(again == NULL);
    fixture_free(dir);
}

int
main(void)
{
    check_seed(15);
    RUN(test_healthy);
    RUN(test_healthy_swap);
    RUN(test_flipped_envelope);
    RUN(test_stored_id);
    RUN(test_index_position);
    RUN(test_authseq_missing);
    RUN(test_doc_state);
    RUN(test_doc_missing);
    RUN(test_pending_damaged);
    RUN(test_query_tables);
    RUN(test_report_bound);
    RUN(test_environment);
    RUN(test_resync_identity);
    return check_summary();
}
