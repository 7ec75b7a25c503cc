/*
 * test/core/test_evict.c - evicting one document (core/evict.c,
 * store/evict.c): its state and all its changes leave the replica in one
 * write transaction, as if the replica had never received it.
 *
 * The store first, with synthetic entries: drops in the indexed log, in
 * the tail and at its end, log scans over the holes, a superseded entry,
 * positions never reused (also across a reopen, the tail not cached), the
 * document's meta and snapshot.  Then replicas: a document of its own
 * author among others, spread over the indexed log and the tail (more
 * than 256 changes), evicted, must leave the replica equal to one that
 * never received it (both digests, version vector, check), across a
 * reopen, and a re-import of its envelopes applies them as new and gives
 * back the digests of before; documents of the local author only in the
 * indexed log or only in the tail; the newest log entries (the next commit
 * gets a fresh position, the clock and this replica's seq do not move
 * back); an indexed field; a live query; the doc cache against another
 * process that brings the document back; an aborted eviction; a chain
 * holding a superseded entry (an equivocation); missing documents.  Both the non-durable (batched) and the durable commit path.
 *
 * Seeded identities and a fake clock: every run makes the same changes.
 * Temporary directories are removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "core.h"
#include "replica.h"
#include "shoal.h"
#include "store.h"

#define U8(s) ((const uint8_t *)(s))

/* ---------------------------------------------------------------- helpers */

static uint64_t
fake_clock(void *ctx)
{
    uint64_t *t = ctx;
    return (*t)++;
}

static uint64_t clock_ms = 1750000000000ull;

/* A replica in dir (seeded identity when the directory has none yet). */
static shoal_replica *
open_replica(const char *dir, bool durable, bool seed)
{
    if (seed && !check_seed_identity(dir))
        return NULL;
    shoal_options *o;
    if (shoal_options_new(&o) != SHOAL_OK)
        return NULL;
    shoal_options_set_durable(o, durable);
    shoal_options_set_clock(o, fake_clock, &clock_ms);
    shoal_replica *r = NULL;
    if (shoal_replica_open(&r, dir, o) != SHOAL_OK)
        r = NULL;
    shoal_options_free(o);
    return r;
}

static void
report(void *arg, const char *problem)
{
    (void)arg;
    fprintf(stderr, "  problem: %s\n", problem);
}

static shoal_err
check_clean(shoal_replica *r)
{
    shoal_check_stats st;
    return shoal_replica_check(r, report, NULL, &st);
}

static shoal_err
set_int(shoal_replica *r, const char *coll, const char *id, const char *f, int64_t v)
{
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value x = { .type = SHOAL_T_INT, .i = v };
    err = shoal_txn_set(t, coll, id, f, &x);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

/* Several kinds of op in one change: a register, a counter, a list. */
static shoal_err
edit_doc(shoal_replica *r, const char *coll, const char *id, int64_t n)
{
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    char s[32];
    snprintf(s, sizeof s, "v%lld", (long long)n);
    shoal_value v = { .type = SHOAL_T_STR, .ptr = U8(s), .len = strlen(s) };
    shoal_value tag = { .type = SHOAL_T_STR,
                        .ptr = U8(n % 2 ? "odd" : "even"),
                        .len = n % 2 ? 3 : 4 };
    err = shoal_txn_set(t, coll, id, "name", &v);
    if (!err)
        err = shoal_txn_set(t, coll, id, "tag", &tag);
    if (!err)
        err = shoal_txn_counter_add(t, coll, id, "hits", n);
    if (!err)
        err = shoal_txn_list_insert(t, coll, id, "items", 0, &v);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

/* Export from `from` the changes `to` lacks and import them. */
static shoal_err
push_new(shoal_replica *from, shoal_replica *to)
{
    shoal_vv *vv;
    shoal_err err = shoal_replica_version(to, &vv);
    if (err)
        return err;
    uint8_t *b;
    size_t n;
    err = shoal_export(from, vv, &b, &n);
    shoal_vv_free(vv);
    if (err)
        return err;
    shoal_import_result res;
    err = shoal_import(to, b, n, &res);
    shoal_free(b);
    return err;
}

/* The whole replica as a bundle (Caller owns *b, free with shoal_free). */
static bool
export_all(shoal_replica *r, uint8_t **b, size_t *n)
{
    return shoal_export(r, NULL, b, n) == SHOAL_OK;
}

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

static uint64_t
seq_of(shoal_replica *r, const uint8_t *author)
{
    shoal_vv *vv;
    if (shoal_replica_version(r, &vv) != SHOAL_OK)
        return UINT64_MAX;
    uint64_t s = shoal_vv_get(vv, author);
    shoal_vv_free(vv);
    return s;
}

static bool
doc_absent(shoal_replica *r, const char *coll, const char *id)
{
    shoal_doc *d = NULL;
    shoal_err err = shoal_doc_get(r, coll, id, &d);
    shoal_doc_free(d);
    return err == SHOAL_ENOTFOUND;
}

/* Live documents of coll matching where, and whether id is among them
 * (shoal_find and shoal_count must agree). */
static uint64_t
count_where(shoal_replica *r, const char *coll, const char *where, const char *id, bool *has)
{
    shoal_query *q;
    *has = false;
    if (shoal_query_new(r, coll, where, &q) != SHOAL_OK)
        return UINT64_MAX;
    uint64_t n = UINT64_MAX;
    shoal_rows *rows = NULL;
    if (shoal_count(r, q, &n) == SHOAL_OK && shoal_find(r, q, &rows) == SHOAL_OK) {
        if (shoal_rows_count(rows) != n)
            n = UINT64_MAX - 1;
        for (size_t i = 0; id && i < shoal_rows_count(rows); i++)
            if (strcmp(shoal_rows_id(rows, i), id) == 0)
                *has = true;
    }
    shoal_rows_free(rows);
    shoal_query_free(q);
    return n;
}

/* A hash of every live document of coll: ids, field names and values
 * (the visible state other documents must keep through an eviction). */
static bool
coll_hash(shoal_replica *r, const char *coll, uint8_t out[32])
{
    shoal_query *q;
    if (shoal_query_new(r, coll, NULL, &q) != SHOAL_OK)
        return false;
    shoal_rows *rows;
    shoal_err err = shoal_find(r, q, &rows);
    shoal_query_free(q);
    if (err)
        return false;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    for (size_t i = 0; i < shoal_rows_count(rows); i++) {
        const char *id = shoal_rows_id(rows, i);
        crypto_generichash_update(&st, U8(id), strlen(id) + 1);
        const shoal_doc *d = shoal_rows_doc(rows, i);
        for (size_t f = 0; f < shoal_doc_field_count(d); f++) {
            const char *name = shoal_doc_field_name(d, f);
            crypto_generichash_update(&st, U8(name), strlen(name) + 1);
            shoal_value v;
            int64_t c;
            size_t len;
            if (shoal_doc_field_value(d, f, &v) == SHOAL_OK) {
                crypto_generichash_update(&st, (const uint8_t *)&v.type, sizeof v.type);
                if (v.type == SHOAL_T_STR || v.type == SHOAL_T_BYTES)
                    crypto_generichash_update(&st, v.ptr, v.len);
                else
                    crypto_generichash_update(&st, (const uint8_t *)&v.i, sizeof v.i);
            } else if (shoal_doc_field_counter(d, f, &c) == SHOAL_OK) {
                crypto_generichash_update(&st, (const uint8_t *)&c, sizeof c);
            } else if (shoal_doc_field_list_len(d, f, &len) == SHOAL_OK) {
                for (size_t j = 0; j < len; j++)
                    if (shoal_doc_field_list_item(d, f, j, &v) == SHOAL_OK && v.ptr)
                        crypto_generichash_update(&st, v.ptr, v.len);
            }
        }
    }
    shoal_rows_free(rows);
    crypto_generichash_final(&st, out, 32);
    return true;
}

/* ------------------------------------------------- store-level look-ups */

typedef struct logpos {
    uint64_t last, next, count, clock;
    bool dropped;
} logpos;

static int
logpos_fn(shoal__stxn *t, void *arg)
{
    logpos *p = arg;
    int err = shoal__stxn_log_last(t, &p->last, NULL);
    if (err == SHOAL_ENOTFOUND) {
        p->last = 0;
        err = SHOAL_OK;
    }
    if (!err)
        err = shoal__stxn_log_next(t, &p->next, &p->dropped);
    p->count = shoal__stxn_log_count(t);
    if (!err)
        err = shoal__clock_load(t, &p->clock);
    return err;
}

static logpos
log_pos(shoal_replica *r)
{
    logpos p;
    memset(&p, 0, sizeof p);
    if (shoal__store_read(r->store, logpos_fn, &p) != SHOAL_OK)
        p.last = p.next = UINT64_MAX;
    return p;
}

/* Index entries (of any index) naming document id. */
typedef struct ixcount {
    shoal__stxn *t;
    const char *id;
    uint64_t n;
} ixcount;

static int
ixent_fn(const uint8_t *key, size_t klen, const uint8_t *id, size_t idlen, void *arg)
{
    (void)key;
    (void)klen;
    ixcount *c = arg;
    if (idlen == strlen(c->id) && memcmp(id, c->id, idlen) == 0)
        c->n++;
    return 0;
}

static int
ixlist_fn(const uint8_t *coll, size_t clen, const uint8_t *field, size_t flen, uint32_t ix,
          void *arg)
{
    (void)coll;
    (void)clen;
    (void)field;
    (void)flen;
    ixcount *c = arg;
    return shoal__stxn_qix_scan(c->t, ix, NULL, 0, NULL, 0, ixent_fn, c);
}

static int
ixcount_fn(shoal__stxn *t, void *arg)
{
    ixcount *c = arg;
    c->t = t;
    return shoal__stxn_qix_list(t, NULL, 0, ixlist_fn, c);
}

static uint64_t
index_entries_of(shoal_replica *r, const char *id)
{
    ixcount c = { NULL, id, 0 };
    if (shoal__store_read(r->store, ixcount_fn, &c) != SHOAL_OK)
        return UINT64_MAX;
    return c.n;
}

/* Which of a document's meta, snapshot and query view the store holds. */
typedef struct traces {
    const char *coll, *id;
    bool meta, snap, view;
} traces;

static int
traces_fn(shoal__stxn *t, void *arg)
{
    traces *x = arg;
    size_t cl = strlen(x->coll), il = strlen(x->id);
    x->meta = shoal__stxn_doc_get(t, U8(x->coll), cl, U8(x->id), il, NULL) == SHOAL_OK;
    x->snap = shoal__stxn_snap_get(t, U8(x->coll), cl, U8(x->id), il, NULL) == SHOAL_OK;
    x->view = shoal__stxn_qview_get(t, U8(x->coll), cl, U8(x->id), il, NULL) == SHOAL_OK;
    return SHOAL_OK;
}

static traces
traces_of(shoal_replica *r, const char *coll, const char *id)
{
    traces x = { coll, id, true, true, true };
    if (shoal__store_read(r->store, traces_fn, &x) != SHOAL_OK)
        x.meta = x.snap = x.view = true;
    return x;
}

/* ------------------------------------------------------------ the store */

enum {
    NSTORE = 300
};

static void
fake_change(uint64_t i, uint8_t cid[SHOAL__ID_BYTES], uint8_t author[SHOAL_KEY_BYTES],
            uint64_t *seq)
{
    uint8_t in[9];
    memcpy(in, "cid", 3);
    for (int b = 0; b < 6; b++)
        in[3 + b] = (uint8_t)(i >> (8 * b));
    crypto_generichash(cid, SHOAL__ID_BYTES, in, sizeof in, NULL, 0);
    memset(author, (i % 2) ? 0xbb : 0xaa, SHOAL_KEY_BYTES);
    *seq = i % 2 ? (i + 1) / 2 : i / 2 + 1; /* each author's from 1 */
}

typedef struct sput {
    uint64_t from, to; /* change numbers [from, to) */
    uint64_t pos;      /* last position put */
} sput;

static int
sput_fn(shoal__stxn *t, void *arg)
{
    sput *p = arg;
    for (uint64_t i = p->from; i < p->to; i++) {
        uint8_t cid[SHOAL__ID_BYTES], author[SHOAL_KEY_BYTES];
        uint64_t seq;
        fake_change(i, cid, author, &seq);
        uint8_t env[16];
        memset(env, (int)(i & 0xff), sizeof env);
        int err = shoal__stxn_change_put(t, cid, env, sizeof env, author, seq, 0, &p->pos);
        if (err)
            return err;
    }
    return SHOAL_OK;
}

typedef struct sdrop {
    const uint64_t *pos;
    size_t n;
    int err_last; /* the result of the last drop */
} sdrop;

static int
sdrop_fn(shoal__stxn *t, void *arg)
{
    sdrop *d = arg;
    for (size_t i = 0; i < d->n; i++) {
        d->err_last = shoal__stxn_log_drop(t, d->pos[i]);
        if (d->err_last)
            return d->err_last;
    }
    return SHOAL_OK;
}

typedef struct sscan {
    uint64_t n, prev;
    bool ascending;
    bool saw[NSTORE + 8];
} sscan;

static int
sscan_cb(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    (void)cid;
    (void)env;
    sscan *s = arg;
    if (pos <= s->prev)
        s->ascending = false;
    s->prev = pos;
    if (pos < sizeof s->saw)
        s->saw[pos] = true;
    s->n++;
    return 0;
}

static int
swalk_cb(const shoal__log_rec *e, void *arg)
{
    sscan *s = arg;
    if (e->bad || e->pos <= s->prev)
        s->ascending = false;
    s->prev = e->pos;
    s->n++;
    return 0;
}

typedef struct sread {
    sscan scan, walk;
    uint64_t count, next, ixnext, vv_a, vv_b;
    bool dropped;
    bool has[NSTORE];   /* change i applied */
    bool byseq[NSTORE]; /* its (author, seq) names it */
} sread;

static int
sread_fn(shoal__stxn *t, void *arg)
{
    sread *r = arg;
    r->scan.ascending = r->walk.ascending = true;
    int err = shoal__stxn_log_scan(t, 1, sscan_cb, &r->scan);
    if (!err)
        err = shoal__stxn_log_walk(t, swalk_cb, &r->walk);
    if (!err)
        err = shoal__stxn_log_next(t, &r->next, &r->dropped);
    if (!err)
        err = shoal__stxn_index_next(t, &r->ixnext);
    r->count = shoal__stxn_log_count(t);
    uint8_t a[SHOAL_KEY_BYTES], cid[SHOAL__ID_BYTES];
    memset(a, 0xaa, sizeof a);
    if (!err && shoal__stxn_vv_get(t, a, &r->vv_a, NULL) != SHOAL_OK)
        r->vv_a = 0;
    memset(a, 0xbb, sizeof a);
    if (!err && shoal__stxn_vv_get(t, a, &r->vv_b, NULL) != SHOAL_OK)
        r->vv_b = 0;
    for (uint64_t i = 0; !err && i < NSTORE; i++) {
        uint8_t c[SHOAL__ID_BYTES], au[SHOAL_KEY_BYTES];
        uint64_t seq;
        fake_change(i, c, au, &seq);
        r->has[i] = shoal__stxn_change_has(t, c);
        r->byseq[i] = shoal__stxn_authseq_get(t, au, seq, cid) == SHOAL_OK &&
                      memcmp(cid, c, SHOAL__ID_BYTES) == 0;
    }
    return err;
}

static shoal__store *
store_open(const char *dir)
{
    char eb[256];
    shoal__store_opts o = { .durable = false };
    shoal__store *s = NULL;
    if (shoal__store_open(&s, dir, &o, eb, sizeof eb) != SHOAL_OK) {
        fprintf(stderr, "open %s: %s\n", dir, eb);
        return NULL;
    }
    return s;
}

/* Change i sits at position i + 1 (one put per change from an empty log). */
static void
test_store_drop(void)
{
    char *dir = check_tmpdir("evict-store");
    shoal__store *s = store_open(dir);
    REQUIRE(s);
    sput p = { 0, NSTORE, 0 };
    REQUIRE(shoal__store_write(s, sput_fn, &p) == SHOAL_OK);
    CHECK_EQ(p.pos, NSTORE);
    sread r0;
    memset(&r0, 0, sizeof r0);
    REQUIRE(shoal__store_read(s, sread_fn, &r0) == SHOAL_OK);
    CHECK(r0.ixnext > 1 && r0.ixnext <= NSTORE); /* the indexes moved */
    CHECK(!r0.dropped);
    CHECK_EQ(r0.next, NSTORE + 1);

    /* Change 4 (pos 5) is indexed, 298 (pos 299) in the tail, 299 (pos
     * 300) the last entry. */
    const uint64_t drop[] = { 5, 299, 300 };
    sdrop d = { drop, 3, 0 };
    CHECK_EQ(shoal__store_write(s, sdrop_fn, &d), SHOAL_OK);
    sread r1;
    memset(&r1, 0, sizeof r1);
    REQUIRE(shoal__store_read(s, sread_fn, &r1) == SHOAL_OK);
    CHECK(r1.dropped);
    CHECK_EQ(r1.count, NSTORE - 3);
    CHECK_EQ(r1.scan.n, NSTORE - 3);
    CHECK_EQ(r1.walk.n, NSTORE - 3);
    CHECK(r1.scan.ascending && r1.walk.ascending);
    CHECK(!r1.scan.saw[5] && !r1.scan.saw[299] && !r1.scan.saw[300] && r1.scan.saw[6]);
    CHECK_EQ(r1.next, NSTORE + 1); /* the last position is not handed out again */
    CHECK_EQ(r1.ixnext, NSTORE + 1);
    for (uint64_t i = 0; i < NSTORE; i++) {
        bool gone = i == 4 || i == 298 || i == 299;
        CHECK_EQ(r1.has[i], !gone);
        CHECK_EQ(r1.byseq[i], !gone);
    }
    /* Changes 298 (aa seq 150) and 299 (bb seq 150) were each author's
     * greatest. */
    CHECK_EQ(r0.vv_a, 150);
    CHECK_EQ(r0.vv_b, 150);
    CHECK_EQ(r1.vv_a, 149);
    CHECK_EQ(r1.vv_b, 149);
    /* A position without an entry. */
    const uint64_t again[] = { 5 };
    d = (sdrop){ again, 1, 0 };
    CHECK_EQ(shoal__store_write(s, sdrop_fn, &d), SHOAL_ENOTFOUND);

    /* Reopened: the tail is read from the file, not taken from the
     * cache; ixnext is past the last entry + 1 and that is no damage. */
    shoal__store_close(s);
    s = store_open(dir);
    REQUIRE(s);
    sread r2;
    memset(&r2, 0, sizeof r2);
    REQUIRE(shoal__store_read(s, sread_fn, &r2) == SHOAL_OK);
    CHECK_EQ(r2.next, NSTORE + 1);
    CHECK_EQ(r2.count, NSTORE - 3);
    CHECK(r2.dropped);
    /* The dropped changes come back as new entries at fresh positions. */
    p = (sput){ 298, NSTORE, 0 };
    CHECK_EQ(shoal__store_write(s, sput_fn, &p), SHOAL_OK);
    CHECK_EQ(p.pos, NSTORE + 2);
    p = (sput){ 4, 5, 0 };
    CHECK_EQ(shoal__store_write(s, sput_fn, &p), SHOAL_OK);
    CHECK_EQ(p.pos, NSTORE + 3);
    sread r3;
    memset(&r3, 0, sizeof r3);
    REQUIRE(shoal__store_read(s, sread_fn, &r3) == SHOAL_OK);
    for (uint64_t i = 0; i < NSTORE; i++)
        CHECK(r3.has[i] && r3.byseq[i]);
    CHECK_EQ(r3.vv_a, 150);
    CHECK_EQ(r3.vv_b, 150);
    CHECK_EQ(r3.count, NSTORE);
    shoal__store_close(s);
    check_rmtree(dir);
    free(dir);
}

/* A superseded entry: its (author, seq) names the winning version, which
 * stays applied when the superseded one is dropped. */
typedef struct ssup {
    uint8_t loser[SHOAL__ID_BYTES], winner[SHOAL__ID_BYTES];
    uint64_t lpos, wpos;
    bool winner_has, winner_seq, loser_has;
} ssup;

static int
ssup_put_fn(shoal__stxn *t, void *arg)
{
    ssup *x = arg;
    uint8_t author[SHOAL_KEY_BYTES];
    memset(author, 0xcc, sizeof author);
    memset(x->loser, 0x11, sizeof x->loser);
    memset(x->winner, 0x22, sizeof x->winner);
    int err = shoal__stxn_change_put(t, x->loser, U8("l"), 1, author, 1, 0, &x->lpos);
    if (!err)
        err = shoal__stxn_change_supersede(t, x->loser, NULL);
    if (!err)
        err = shoal__stxn_change_put(t, x->winner, U8("w"), 1, author, 1, x->lpos, &x->wpos);
    return err;
}

static int
ssup_drop_fn(shoal__stxn *t, void *arg)
{
    ssup *x = arg;
    return shoal__stxn_log_drop(t, x->lpos);
}

static int
ssup_read_fn(shoal__stxn *t, void *arg)
{
    ssup *x = arg;
    uint8_t author[SHOAL_KEY_BYTES], cid[SHOAL__ID_BYTES];
    memset(author, 0xcc, sizeof author);
    x->winner_has = shoal__stxn_change_has(t, x->winner);
    x->loser_has = shoal__stxn_change_has(t, x->loser);
    x->winner_seq = shoal__stxn_authseq_get(t, author, 1, cid) == SHOAL_OK &&
                    memcmp(cid, x->winner, SHOAL__ID_BYTES) == 0;
    return SHOAL_OK;
}

static void
test_store_drop_superseded(void)
{
    char *dir = check_tmpdir("evict-sup");
    shoal__store *s = store_open(dir);
    REQUIRE(s);
    ssup x;
    memset(&x, 0, sizeof x);
    REQUIRE(shoal__store_write(s, ssup_put_fn, &x) == SHOAL_OK);
    CHECK_EQ(shoal__store_write(s, ssup_drop_fn, &x), SHOAL_OK);
    CHECK_EQ(shoal__store_read(s, ssup_read_fn, &x), SHOAL_OK);
    CHECK(x.winner_has && x.winner_seq && !x.loser_has);
    shoal__store_close(s);
    check_rmtree(dir);
    free(dir);
}

/* doc_del takes a meta out of the tail or the table; snap_del is quiet
 * about a snapshot that is not there. */
typedef struct sdoc {
    int del1, del2, snap1, snap2, get_meta, get_snap;
} sdoc;

static int
sdoc_fn(shoal__stxn *t, void *arg)
{
    sdoc *x = arg;
    uint8_t cid[SHOAL__ID_BYTES], author[SHOAL_KEY_BYTES];
    memset(cid, 0x33, sizeof cid);
    memset(author, 0xdd, sizeof author);
    uint64_t pos;
    int err = shoal__stxn_change_put(t, cid, U8("e"), 1, author, 1, 0, &pos);
    if (!err) /* the meta rides in the tail entry */
        err = shoal__stxn_doc_put(t, U8("c"), 1, U8("d"), 1, "meta", 4, pos);
    if (!err)
        err = shoal__stxn_snap_put(t, U8("c"), 1, U8("d"), 1, "snap", 4);
    if (err)
        return err;
    x->del1 = shoal__stxn_doc_del(t, U8("c"), 1, U8("d"), 1);
    x->del2 = shoal__stxn_doc_del(t, U8("c"), 1, U8("d"), 1);
    x->snap1 = shoal__stxn_snap_del(t, U8("c"), 1, U8("d"), 1);
    x->snap2 = shoal__stxn_snap_del(t, U8("c"), 1, U8("d"), 1);
    x->get_meta = shoal__stxn_doc_get(t, U8("c"), 1, U8("d"), 1, NULL);
    x->get_snap = shoal__stxn_snap_get(t, U8("c"), 1, U8("d"), 1, NULL);
    return SHOAL_OK;
}

static void
test_store_doc_del(void)
{
    char *dir = check_tmpdir("evict-doc");
    shoal__store *s = store_open(dir);
    REQUIRE(s);
    sdoc x;
    memset(&x, 0, sizeof x);
    CHECK_EQ(shoal__store_write(s, sdoc_fn, &x), SHOAL_OK);
    CHECK_EQ(x.del1, SHOAL_OK);
    CHECK_EQ(x.del2, SHOAL_ENOTFOUND);
    CHECK_EQ(x.snap1, SHOAL_OK);
    CHECK_EQ(x.snap2, SHOAL_OK);
    CHECK_EQ(x.get_meta, SHOAL_ENOTFOUND);
    CHECK_EQ(x.get_snap, SHOAL_ENOTFOUND);
    shoal__store_close(s);
    check_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------- replicas */

/* The target T (local author) imports the changes of B (documents b/0 to b/9)
 * and of W, whose only document is c/x, round by round, with its own
 * commits in between: over 256 changes, so c/x has changes in the indexed
 * log and in the tail.  T also writes t/early (first round only: indexed
 * at the end) and t/late (last round only: in the tail). */
typedef struct world {
    char *dt, *db, *dw;
    shoal_replica *t, *b, *w;
    uint64_t nx; /* changes of c/x */
    uint64_t nt_early, nt_late;
} world;

enum {
    ROUNDS = 8
};

static bool
world_make(world *w, bool durable)
{
    memset(w, 0, sizeof *w);
    w->dt = check_tmpdir("evict-t");
    w->db = check_tmpdir("evict-b");
    w->dw = check_tmpdir("evict-w");
    w->t = open_replica(w->dt, durable, true);
    w->b = open_replica(w->db, false, true);
    w->w = open_replica(w->dw, false, true);
    if (!w->t || !w->b || !w->w)
        return false;
    int64_t n = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char id[16];
        for (int i = 0; i < 30; i++) {
            snprintf(id, sizeof id, "%d", i % 10);
            if (edit_doc(w->b, "b", id, n++))
                return false;
        }
        for (int i = 0; i < 8; i++) {
            if (edit_doc(w->w, "c", "x", n++))
                return false;
            w->nx++;
        }
        for (int i = 0; i < 4; i++) {
            snprintf(id, sizeof id, "%d", i);
            if (edit_doc(w->t, "t", id, n++))
                return false;
        }
        if (round == 0)
            for (int i = 0; i < 3; i++, w->nt_early++)
                if (edit_doc(w->t, "t", "early", n++))
                    return false;
        if (push_new(w->b, w->t) || push_new(w->w, w->t))
            return false;
    }
    for (int i = 0; i < 3; i++, w->nt_late++)
        if (edit_doc(w->t, "t", "late", n++))
            return false;
    return true;
}

static void
world_free(world *w)
{
    shoal_replica_close(w->t);
    shoal_replica_close(w->b);
    shoal_replica_close(w->w);
    const char *d[] = { w->dt, w->db, w->dw };
    for (int i = 0; i < 3; i++)
        if (d[i]) {
            check_rmtree(d[i]);
            free((char *)d[i]);
        }
}

/* A replica holding everything T holds but W's changes (c/x). */
static shoal_replica *
reference(world *w, const char *dir)
{
    shoal_replica *ref = open_replica(dir, false, true);
    if (!ref)
        return NULL;
    shoal_vv *since;
    uint8_t *b = NULL;
    size_t n = 0;
    shoal_import_result res;
    bool ok = shoal_vv_new(&since) == SHOAL_OK &&
              shoal_vv_set(since, shoal_replica_id(w->w), UINT64_MAX) == SHOAL_OK &&
              shoal_export(w->t, since, &b, &n) == SHOAL_OK &&
              shoal_import(ref, b, n, &res) == SHOAL_OK && res.pending == 0;
    shoal_vv_free(since);
    shoal_free(b);
    if (!ok) {
        shoal_replica_close(ref);
        return NULL;
    }
    return ref;
}

static void
evict_among_docs(bool durable)
{
    world w;
    REQUIRE(world_make(&w, durable));
    shoal_replica *t = w.t;
    logpos p0 = log_pos(t);
    CHECK(p0.count > 256 + 2 * ROUNDS);
    CHECK_EQ(check_clean(t), SHOAL_OK);
    check_snap s0;
    REQUIRE(check_snap_take(t, &s0));
    uint8_t hb0[32], ht0[32];
    REQUIRE(coll_hash(t, "b", hb0) && coll_hash(t, "t", ht0));
    uint8_t *all = NULL, *wb = NULL;
    size_t nall = 0, nwb = 0;
    REQUIRE(export_all(t, &all, &nall) && export_all(w.w, &wb, &nwb));
    uint64_t wseq = seq_of(t, shoal_replica_id(w.w)), bseq = seq_of(t, shoal_replica_id(w.b));
    uint64_t tseq = own_seq(t);
    /* Cached before the eviction: a read after it must not see it. */
    shoal_doc *d = NULL;
    CHECK_EQ(shoal_doc_get(t, "c", "x", &d), SHOAL_OK);
    shoal_doc_free(d);
    bool has;
    uint64_t even0 = count_where(t, "c", "tag == \"even\" OR tag == \"odd\"", "x", &has);
    CHECK(has && even0 == 1);

    traces tr = traces_of(t, "c", "x");
    CHECK(tr.meta && tr.snap && tr.view); /* it has a snapshot to drop */
    /* c/x, of an author with no other change: spread over the indexed log
     * and the tail. */
    CHECK_EQ(shoal__evict(t, "c", "x"), SHOAL_OK);
    CHECK(doc_absent(t, "c", "x"));
    tr = traces_of(t, "c", "x");
    CHECK(!tr.meta && !tr.snap && !tr.view);
    CHECK_EQ(count_where(t, "c", NULL, "x", &has), 0);
    CHECK(!has);
    logpos p1 = log_pos(t);
    CHECK_EQ(p1.count, p0.count - w.nx);
    CHECK_EQ(p1.next, p0.next);
    CHECK(p1.dropped);
    CHECK_EQ(p1.clock, p0.clock);
    CHECK_EQ(seq_of(t, shoal_replica_id(w.w)), 0);
    CHECK_EQ(seq_of(t, shoal_replica_id(w.b)), bseq);
    CHECK_EQ(own_seq(t), tseq);
    CHECK_EQ(check_clean(t), SHOAL_OK);
    /* As if T had never received it: the same as a replica that did not. */
    char *dref = check_tmpdir("evict-ref");
    shoal_replica *ref = reference(&w, dref);
    CHECK(ref);
    check_snap s1, sref;
    CHECK(check_snap_take(t, &s1));
    if (ref) {
        CHECK(check_snap_take(ref, &sref));
        CHECK(check_snap_same(&s1, &sref));
        shoal_replica_close(ref);
    }
    check_rmtree(dref);
    free(dref);
    uint8_t h[32];
    CHECK(coll_hash(t, "b", h) && memcmp(h, hb0, 32) == 0);
    CHECK(coll_hash(t, "t", h) && memcmp(h, ht0, 32) == 0);
    CHECK_EQ(shoal__evict(t, "c", "x"), SHOAL_ENOTFOUND);

    /* Reopened: the same answers. */
    shoal_replica_close(t);
    t = w.t = open_replica(w.dt, durable, false);
    REQUIRE(t);
    check_snap s2;
    CHECK(check_snap_take(t, &s2));
    CHECK(check_snap_same(&s1, &s2));
    CHECK(doc_absent(t, "c", "x"));
    CHECK_EQ(check_clean(t), SHOAL_OK);
    logpos p2 = log_pos(t);
    CHECK_EQ(p2.next, p1.next);
    CHECK_EQ(p2.count, p1.count);

    /* Re-imported: applied as new, the same state as before. */
    shoal_import_result res;
    CHECK_EQ(shoal_import(t, wb, nwb, &res), SHOAL_OK);
    CHECK_EQ(res.applied, w.nx);
    CHECK_EQ(res.duplicate, 0);
    CHECK_EQ(res.pending, 0);
    check_snap s3;
    CHECK(check_snap_take(t, &s3));
    CHECK(check_snap_same(&s0, &s3));
    CHECK_EQ(seq_of(t, shoal_replica_id(w.w)), wseq);
    CHECK_EQ(count_where(t, "c", "tag == \"even\" OR tag == \"odd\"", "x", &has), even0);
    CHECK(has);
    CHECK_EQ(check_clean(t), SHOAL_OK);
    logpos p3 = log_pos(t);
    CHECK_EQ(p3.last, p0.next + w.nx - 1); /* fresh positions, past every old one */

    /* t/early (indexed only) and t/late (tail only), both of the local
     * author: t/late holds its newest changes. */
    CHECK_EQ(shoal__evict(t, "t", "early"), SHOAL_OK);
    CHECK_EQ(shoal__evict(t, "t", "late"), SHOAL_OK);
    CHECK(doc_absent(t, "t", "early") && doc_absent(t, "t", "late"));
    CHECK(coll_hash(t, "b", h) && memcmp(h, hb0, 32) == 0);
    CHECK_EQ(count_where(t, "t", NULL, NULL, &has), 4);
    CHECK_EQ(check_clean(t), SHOAL_OK);
    CHECK(own_seq(t) < tseq);
    CHECK_EQ(log_pos(t).count, p3.count - w.nt_early - w.nt_late);
    /* The whole bundle of before: only what was evicted is new. */
    CHECK_EQ(shoal_import(t, all, nall, &res), SHOAL_OK);
    CHECK_EQ(res.applied, w.nt_early + w.nt_late);
    CHECK_EQ(res.duplicate, p0.count - w.nt_early - w.nt_late);
    CHECK(check_snap_take(t, &s3));
    CHECK(check_snap_same(&s0, &s3));
    CHECK(coll_hash(t, "t", h) && memcmp(h, ht0, 32) == 0);
    shoal_strlist *eq = NULL;
    CHECK_EQ(shoal_equivocators(t, &eq), SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(eq), 0);
    shoal_strlist_free(eq);
    CHECK_EQ(check_clean(t), SHOAL_OK);
    shoal_free(all);
    shoal_free(wb);
    world_free(&w);
}

static void
test_evict_among_docs(void)
{
    evict_among_docs(false);
}

static void
test_evict_among_docs_durable(void)
{
    evict_among_docs(true);
}

/* The evicted document holds the newest log entries and the newest
 * changes of the local author: the next commit gets a fresh position and
 * a fresh seq, and the clock stays where it was. */
static void
test_evict_last_entries(void)
{
    char *dir = check_tmpdir("evict-last");
    shoal_replica *r = open_replica(dir, false, true);
    REQUIRE(r);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(edit_doc(r, "a", i % 2 ? "1" : "2", i), SHOAL_OK);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(edit_doc(r, "a", "last", 10 + i), SHOAL_OK);
    uint8_t *all;
    size_t nall;
    REQUIRE(export_all(r, &all, &nall));
    logpos p0 = log_pos(r);
    uint64_t s0 = own_seq(r);
    CHECK_EQ(p0.last, 8);
    CHECK_EQ(s0, 8);
    CHECK_EQ(shoal__evict(r, "a", "last"), SHOAL_OK);
    logpos p1 = log_pos(r);
    CHECK_EQ(p1.last, 5);
    CHECK_EQ(p1.next, 9);
    CHECK_EQ(p1.clock, p0.clock); /* the HLC was the last entry's */
    CHECK_EQ(own_seq(r), 5);
    CHECK_EQ(check_clean(r), SHOAL_OK);

    /* Reopened: nothing cached any more, the floors are on disk. */
    shoal_replica_close(r);
    r = open_replica(dir, false, false);
    REQUIRE(r);
    logpos p2 = log_pos(r);
    CHECK_EQ(p2.next, 9);
    CHECK_EQ(p2.clock, p0.clock);
    CHECK_EQ(edit_doc(r, "a", "1", 20), SHOAL_OK);
    logpos p3 = log_pos(r);
    CHECK_EQ(p3.last, 9);
    CHECK(p3.clock > p0.clock);
    CHECK_EQ(own_seq(r), s0 + 1); /* seqs 6..8 stay taken */
    CHECK_EQ(check_clean(r), SHOAL_OK);

    /* The evicted changes come back without an equivocation. */
    shoal_import_result res;
    CHECK_EQ(shoal_import(r, all, nall, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 3);
    CHECK_EQ(res.equivocations, 0);
    CHECK(check_has_str(r, "a", "last", "name", "v12"));
    CHECK_EQ(own_seq(r), s0 + 1);
    shoal_strlist *eq = NULL;
    CHECK_EQ(shoal_equivocators(r, &eq), SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(eq), 0);
    shoal_strlist_free(eq);
    CHECK_EQ(check_clean(r), SHOAL_OK);

    /* Everything evicted: an empty log still hands out fresh positions. */
    CHECK_EQ(shoal__evict(r, "a", "1"), SHOAL_OK);
    CHECK_EQ(shoal__evict(r, "a", "2"), SHOAL_OK);
    CHECK_EQ(shoal__evict(r, "a", "last"), SHOAL_OK);
    logpos p4 = log_pos(r);
    CHECK_EQ(p4.count, 0);
    CHECK_EQ(p4.next, 13);
    CHECK_EQ(check_clean(r), SHOAL_OK);
    shoal_replica_close(r);
    r = open_replica(dir, false, false);
    REQUIRE(r);
    CHECK_EQ(log_pos(r).next, 13);
    CHECK_EQ(set_int(r, "a", "new", "n", 1), SHOAL_OK);
    CHECK_EQ(log_pos(r).last, 13);
    CHECK_EQ(own_seq(r), s0 + 2);
    CHECK_EQ(check_clean(r), SHOAL_OK);
    shoal_free(all);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* An indexed field: the evicted document leaves no index entry (the check
 * holds every index against the views) and no query finds it. */
static void
test_evict_indexed(void)
{
    char *dir = check_tmpdir("evict-ix");
    shoal_replica *r = open_replica(dir, false, true);
    REQUIRE(r);
    CHECK_EQ(shoal_index_add(r, "p", "tag"), SHOAL_OK);
    CHECK_EQ(shoal_index_add(r, "p", "items"), SHOAL_OK);
    char id[8];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "%d", i);
        CHECK_EQ(edit_doc(r, "p", id, i), SHOAL_OK);
    }
    CHECK_EQ(index_entries_of(r, "2"), 2); /* tag, one list item */
    bool has;
    CHECK_EQ(count_where(r, "p", "tag == \"even\"", "2", &has), 3);
    CHECK(has);
    CHECK_EQ(shoal__evict(r, "p", "2"), SHOAL_OK);
    CHECK_EQ(index_entries_of(r, "2"), 0);
    CHECK_EQ(index_entries_of(r, "4"), 2);
    CHECK_EQ(count_where(r, "p", "tag == \"even\"", "2", &has), 2);
    CHECK(!has);
    CHECK_EQ(count_where(r, "p", "items CONTAINS \"v2\"", "2", &has), 0);
    CHECK_EQ(check_clean(r), SHOAL_OK);
    /* A deleted document is evicted too, and is then not found rather
     * than deleted. */
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    CHECK_EQ(shoal_txn_delete(t, "p", "3"), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    shoal_doc *d = NULL;
    CHECK_EQ(shoal_doc_get(r, "p", "3", &d), SHOAL_EDELETED);
    CHECK_EQ(shoal__evict(r, "p", "3"), SHOAL_OK);
    CHECK(doc_absent(r, "p", "3"));
    CHECK_EQ(check_clean(r), SHOAL_OK);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* A live query on the collection sees the document leave. */
static void
test_evict_live(void)
{
    char *dir = check_tmpdir("evict-live");
    shoal_replica *r = open_replica(dir, false, true);
    REQUIRE(r);
    CHECK_EQ(edit_doc(r, "l", "a", 1), SHOAL_OK);
    CHECK_EQ(edit_doc(r, "l", "b", 2), SHOAL_OK);
    shoal_query *q;
    REQUIRE(shoal_query_new(r, "l", NULL, &q) == SHOAL_OK);
    shoal_live *l;
    REQUIRE(shoal_live_open(r, q, &l) == SHOAL_OK);
    shoal_query_free(q);
    shoal_live_event *e;
    int enters = 0;
    for (int i = 0; i < 3 && shoal_live_next(l, 0, &e) == SHOAL_OK; i++) {
        enters += shoal_live_event_kind(e) == SHOAL_LIVE_ENTER;
        shoal_live_event_free(e);
    }
    CHECK_EQ(enters, 2);
    CHECK_EQ(shoal__evict(r, "l", "a"), SHOAL_OK);
    REQUIRE(shoal_live_next(l, 1000, &e) == SHOAL_OK);
    CHECK_EQ(shoal_live_event_kind(e), SHOAL_LIVE_LEAVE);
    CHECK(strcmp(shoal_live_event_id(e), "a") == 0);
    shoal_live_event_free(e);
    CHECK_EQ(shoal_live_next(l, 0, &e), SHOAL_ETIMEDOUT);
    shoal_live_close(l);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* The doc cache: another process brings the evicted document back with
 * as many changes (and no snapshot) but another state; this handle's
 * cached copy of before must not pass for it. */
static void
test_evict_cache(void)
{
    char *dirs[4];
    const char *tags[4] = { "evict-ca", "evict-cb", "evict-cc", "evict-ct" };
    for (int i = 0; i < 4; i++)
        dirs[i] = check_tmpdir(tags[i]);
    uint8_t *b[3] = { NULL, NULL, NULL };
    size_t n[3] = { 0, 0, 0 };
    const char *field[3] = { "f", "g", "h" };
    for (int i = 0; i < 3; i++) {
        shoal_replica *a = open_replica(dirs[i], false, true);
        REQUIRE(a);
        CHECK_EQ(check_set_str(a, "k", "d", field[i], field[i]), SHOAL_OK);
        CHECK(export_all(a, &b[i], &n[i]));
        shoal_replica_close(a);
    }
    shoal_replica *t = open_replica(dirs[3], false, true);
    REQUIRE(t);
    shoal_import_result res;
    CHECK_EQ(shoal_import(t, b[0], n[0], &res), SHOAL_OK);
    CHECK_EQ(shoal_import(t, b[1], n[1], &res), SHOAL_OK);
    shoal_replica_close(t);
    int go[2];
    REQUIRE(pipe(go) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        shoal_replica *cr = open_replica(dirs[3], false, false);
        if (!cr)
            _exit(2);
        int bad = shoal_import(cr, b[0], n[0], &res) != SHOAL_OK || res.applied != 1;
        bad |= shoal_import(cr, b[2], n[2], &res) != SHOAL_OK || res.applied != 1;
        shoal_replica_close(cr);
        _exit(bad);
    }
    close(go[0]);
    t = open_replica(dirs[3], false, false);
    REQUIRE(t);
    CHECK(check_has_str(t, "k", "d", "g", "g")); /* cached: 2 changes */
    CHECK_EQ(shoal__evict(t, "k", "d"), SHOAL_OK);
    CHECK_EQ(shoal_replica_flush(t), SHOAL_OK);
    CHECK(write(go[1], "g", 1) == 1);
    close(go[1]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(check_has_str(t, "k", "d", "h", "h"));
    CHECK(!check_has_str(t, "k", "d", "g", "g"));
    CHECK_EQ(check_clean(t), SHOAL_OK);
    shoal_replica_close(t);
    for (int i = 0; i < 4; i++) {
        check_rmtree(dirs[i]);
        free(dirs[i]);
    }
    for (int i = 0; i < 3; i++)
        shoal_free(b[i]);
}

/* Inside one write: an eviction whose transaction fails leaves the
 * replica (and its doc cache) as it was; evicting twice is not found; a
 * change applied after the eviction starts the document again. */
typedef struct inner {
    shoal__wctx *x;
    int second;
    bool fail;
} inner;

static int
inner_fn(shoal__stxn *t, void *arg)
{
    inner *in = arg;
    shoal__wctx_begin(in->x, t);
    in->x->a.due_ms = in->x->r->due_ms;
    uint64_t n = 0;
    int err = shoal__doc_evict(&in->x->w, U8("i"), 1, U8("a"), 1, &n);
    if (err)
        return err;
    in->second = shoal__doc_evict(&in->x->w, U8("i"), 1, U8("a"), 1, NULL);
    if (in->fail)
        return SHOAL_EBUSY;
    shoal__wdoc *wd;
    err = shoal__wset_get(&in->x->w, U8("i"), 1, U8("a"), 1, &wd);
    if (!err && (shoal__doc_exists(wd->doc) || wd->meta.nchanges != 0 || wd->stored))
        err = SHOAL_ECORRUPT;
    return err;
}

static shoal_err
run_inner(shoal_replica *r, bool fail, int *second)
{
    pthread_mutex_lock(&r->mu);
    shoal__wctx x;
    shoal__wctx_init(&x, r);
    inner in = { &x, -1, fail };
    int err = shoal__wctx_write(&x, inner_fn, &in);
    pthread_mutex_unlock(&r->mu);
    *second = in.second;
    return (shoal_err)err;
}

static void
test_evict_in_txn(void)
{
    char *dir = check_tmpdir("evict-txn");
    shoal_replica *r = open_replica(dir, false, true);
    REQUIRE(r);
    CHECK_EQ(edit_doc(r, "i", "a", 1), SHOAL_OK);
    CHECK_EQ(edit_doc(r, "i", "b", 2), SHOAL_OK);
    CHECK_EQ(edit_doc(r, "i", "a", 3), SHOAL_OK);
    check_snap s0, s1;
    REQUIRE(check_snap_take(r, &s0));
    CHECK(check_has_str(r, "i", "a", "name", "v3")); /* cached */
    int second;
    CHECK_EQ(run_inner(r, true, &second), SHOAL_EBUSY);
    CHECK_EQ(second, SHOAL_ENOTFOUND);
    CHECK(check_has_str(r, "i", "a", "name", "v3"));
    CHECK(check_snap_take(r, &s1) && check_snap_same(&s0, &s1));
    CHECK_EQ(check_clean(r), SHOAL_OK);
    CHECK_EQ(run_inner(r, false, &second), SHOAL_OK);
    CHECK(doc_absent(r, "i", "a"));
    CHECK(check_has_str(r, "i", "b", "name", "v2"));
    CHECK_EQ(check_clean(r), SHOAL_OK);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static bool
copy_identity(const char *from, const char *to)
{
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s/identity", from);
    snprintf(q, sizeof q, "%s/identity", to);
    uint8_t sk[64];
    FILE *f = fopen(p, "rb");
    if (!f)
        return false;
    bool ok = fread(sk, 1, sizeof sk, f) == sizeof sk;
    fclose(f);
    FILE *g = ok ? fopen(q, "wbx") : NULL;
    if (!g)
        return false;
    ok = fwrite(sk, 1, sizeof sk, g) == sizeof sk;
    return fclose(g) == 0 && ok;
}

/* Two versions of one (author, seq), both to eq/d, the larger id first:
 * the replica applies it, then swaps in the smaller one and keeps the
 * larger one's log entry, superseded, in the chain of eq/d.  Evicting
 * eq/d drops both entries; the evidence stays; importing both versions
 * again gives the same state. */
static void
test_evict_superseded(void)
{
    char *dr = check_tmpdir("evict-eq"), *d1 = check_tmpdir("evict-e1"),
         *d2 = check_tmpdir("evict-e2");
    shoal_replica *r = open_replica(dr, false, true);
    shoal_replica *e1 = open_replica(d1, false, true), *e2 = NULL;
    REQUIRE(r && e1 && copy_identity(d1, d2));
    e2 = open_replica(d2, false, false);
    REQUIRE(e2);
    CHECK_EQ(set_int(r, "eq", "other", "n", 1), SHOAL_OK);
    CHECK_EQ(check_set_str(e1, "eq", "d", "f", "one"), SHOAL_OK);
    CHECK_EQ(check_set_str(e2, "eq", "d", "f", "two"), SHOAL_OK);
    uint8_t *b1, *b2;
    size_t n1, n2;
    REQUIRE(export_all(e1, &b1, &n1) && export_all(e2, &b2, &n2));
    /* Whichever id is larger goes first. */
    shoal_import_result res;
    CHECK_EQ(shoal_import(r, b1, n1, &res), SHOAL_OK);
    CHECK_EQ(shoal_import(r, b2, n2, &res), SHOAL_OK);
    CHECK_EQ(res.equivocations, 1);
    if (log_pos(r).count == 2) { /* e1's was the smaller: no swap; redo */
        shoal_replica_close(r);
        check_rmtree(dr);
        free(dr);
        dr = check_tmpdir("evict-eq");
        r = open_replica(dr, false, true);
        REQUIRE(r);
        CHECK_EQ(set_int(r, "eq", "other", "n", 1), SHOAL_OK);
        CHECK_EQ(shoal_import(r, b2, n2, &res), SHOAL_OK);
        CHECK_EQ(shoal_import(r, b1, n1, &res), SHOAL_OK);
        CHECK_EQ(res.equivocations, 1);
    }
    logpos p0 = log_pos(r);
    CHECK_EQ(p0.count, 3); /* other, the superseded version, the winner */
    check_snap s0, s1;
    REQUIRE(check_snap_take(r, &s0));
    CHECK_EQ(check_clean(r), SHOAL_OK);
    CHECK_EQ(shoal__evict(r, "eq", "d"), SHOAL_OK);
    CHECK(doc_absent(r, "eq", "d"));
    CHECK_EQ(log_pos(r).count, 1);
    CHECK_EQ(seq_of(r, shoal_replica_id(e1)), 0);
    shoal_strlist *eq = NULL;
    CHECK_EQ(shoal_equivocators(r, &eq), SHOAL_OK); /* the evidence stays */
    CHECK_EQ(shoal_strlist_count(eq), 1);
    shoal_strlist_free(eq);
    CHECK_EQ(check_clean(r), SHOAL_OK);
    CHECK_EQ(shoal_import(r, b1, n1, &res), SHOAL_OK);
    CHECK_EQ(shoal_import(r, b2, n2, &res), SHOAL_OK);
    CHECK(check_snap_take(r, &s1) && check_snap_same(&s0, &s1));
    CHECK_EQ(check_clean(r), SHOAL_OK);
    shoal_free(b1);
    shoal_free(b2);
    shoal_replica_close(r);
    shoal_replica_close(e1);
    shoal_replica_close(e2);
    const char *dirs[] = { dr, d1, d2 };
    for (int i = 0; i < 3; i++) {
        check_rmtree(dirs[i]);
        free((char *)dirs[i]);
    }
}

/* Nothing to evict: a document never seen, one whose only change waits
 * in the pending set (left there), bad names. */
static void
test_evict_missing(void)
{
    char *da = check_tmpdir("evict-miss-a"), *db = check_tmpdir("evict-miss-b");
    shoal_replica *a = open_replica(da, false, true), *b = open_replica(db, false, true);
    REQUIRE(a && b);
    CHECK_EQ(shoal__evict(a, "c", "nope"), SHOAL_ENOTFOUND);
    CHECK(strstr(shoal_replica_errmsg(a), "c/nope") != NULL);
    CHECK_EQ(shoal__evict(a, "", "x"), SHOAL_EINVAL);
    CHECK_EQ(shoal__evict(a, "c", ""), SHOAL_EINVAL);
    CHECK_EQ(set_int(a, "c", "q", "n", 0), SHOAL_OK);
    /* b's second change of c/p depends on its first, which a lacks. */
    CHECK_EQ(set_int(b, "c", "p", "n", 1), SHOAL_OK);
    shoal_vv *vv;
    REQUIRE(shoal_replica_version(b, &vv) == SHOAL_OK);
    CHECK_EQ(set_int(b, "c", "p", "n", 2), SHOAL_OK);
    uint8_t *bundle;
    size_t n;
    REQUIRE(shoal_export(b, vv, &bundle, &n) == SHOAL_OK);
    shoal_vv_free(vv);
    shoal_import_result res;
    CHECK_EQ(shoal_import(a, bundle, n, &res), SHOAL_OK);
    shoal_free(bundle);
    CHECK_EQ(res.pending, 1);
    CHECK_EQ(shoal__evict(a, "c", "p"), SHOAL_ENOTFOUND);
    uint64_t pending = 0;
    CHECK_EQ(shoal_pending_count(a, &pending), SHOAL_OK);
    CHECK_EQ(pending, 1);
    CHECK_EQ(check_clean(a), SHOAL_OK);
    shoal_replica_close(a);
    shoal_replica_close(b);
    check_rmtree(da);
    check_rmtree(db);
    free(da);
    free(db);
}

int
main(void)
{
    check_seed(0xe71c7);
    if (sodium_init() < 0)
        return 1;
    RUN(test_store_drop);
    RUN(test_store_drop_superseded);
    RUN(test_store_doc_del);
    RUN(test_evict_among_docs);
    RUN(test_evict_among_docs_durable);
    RUN(test_evict_last_entries);
    RUN(test_evict_indexed);
    RUN(test_evict_live);
    RUN(test_evict_cache);
    RUN(test_evict_in_txn);
    RUN(test_evict_superseded);
    RUN(test_evict_missing);
    return check_summary();
}
