/*
 * core/host.c - the sync protocol's view of a replica (shoal__host).
 *
 * transport/ never sees the store: it asks through these four functions,
 * each of which takes r->mu like a public API call, so the engine thread
 * and the app's threads never touch the replica at once.
 *
 *   version       the version vector with the id of each author's latest
 *                 change, sorted by author;
 *   next_changes  walk the log (apply order, hence causal) from a cursor,
 *                 keeping the changes the peer lacks by its vector; at most
 *                 SHOAL__HOST_SCAN positions per call, so a peer that holds
 *                 everything never makes one call walk the whole log under
 *                 r->mu (the session calls again while the cursor moves);
 *   apply         the import path: every signature verified (several
 *                 threads for a large batch, shoal__recs_open), then the same
 *                 decode -> causal apply -> pending set as shoal_import
 *                 (shoal__import_recs in bundle.c, core/apply.c);
 *   authseq       the id of the change applied under (author, seq), to
 *                 notice equivocation from a peer's vector;
 * and the equivocation extension (shoal__host_ext, registered for
 * host_version): our applied envelope of one (author, seq), and the
 * evidence we hold, with a generation that moves when new evidence is
 * stored (r->ev_gen), so sessions pass it on.
 *
 * Only durable changes leave: in non-durable mode next_changes syncs the
 * store once before it hands out any change (a commit returned before its
 * fsync, so a peer must not hold a change we could still lose).
 */
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

/* --------------------------------------------------------------- version */

typedef struct vvc {
    shoal__vventry *e;
    size_t n;
    size_t cap;
    int err;
} vvc;

static int
vv_cb(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
      void *arg)
{
    vvc *v = arg;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        shoal__vventry *p = shoal__realloc(v->e, cap * sizeof *p);
        if (!p) {
            v->err = SHOAL_ENOMEM;
            return 1;
        }
        v->e = p;
        v->cap = cap;
    }
    memcpy(v->e[v->n].author, author, SHOAL_KEY_BYTES);
    v->e[v->n].seq = seq;
    memcpy(v->e[v->n].cid, cid, SHOAL__ID_BYTES);
    v->n++;
    return 0;
}

static int
version_fn(shoal__stxn *t, void *arg)
{
    vvc *v = arg;
    int err = shoal__stxn_vv_scan(t, vv_cb, v);
    return v->err ? v->err : err;
}

static int
entry_cmp(const void *a, const void *b)
{
    return memcmp(((const shoal__vventry *)a)->author, ((const shoal__vventry *)b)->author,
                  SHOAL_KEY_BYTES);
}

static int
host_version(void *ctx, shoal__vventry **out, size_t *n)
{
    shoal_replica *r = ctx;
    vvc v = { 0 };
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, version_fn, &v);
    pthread_mutex_unlock(&r->mu);
    if (err) {
        shoal__free(v.e);
        return err;
    }
    /* shoal__stxn_vv_scan already goes by author, ascending (store.h);
     * sorting again costs little and makes the contract local. */
    if (v.n > 1)
        qsort(v.e, v.n, sizeof *v.e, entry_cmp);
    *out = v.e;
    *n = v.n;
    return SHOAL_OK;
}

/* ---------------------------------------------------------- next_changes */

typedef struct ncx {
    uint64_t cursor;
    const shoal__vventry *peer;
    size_t npeer;
    size_t max_changes;
    size_t max_bytes;
    shoal__buf *out;
    size_t count;
    size_t bytes;
    size_t examined; /* positions examined by this call */
    shoal__stxn *t;
    int err;
    bool full;    /* stopped at a limit (the scan's stop code is no error) */
    uint64_t end; /* one past the snapshot's last log position */
} ncx;

static uint64_t
peer_seq(const shoal__vventry *peer, size_t n, const uint8_t *author)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(peer[mid].author, author, SHOAL_KEY_BYTES);
        if (c == 0)
            return peer[mid].seq;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int
next_cb(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    ncx *x = arg;
    if (x->count >= x->max_changes || x->examined >= SHOAL__HOST_SCAN ||
        (x->count > 0 && x->bytes + env->len > x->max_bytes)) {
        x->full = true; /* pos stays for the next call */
        return 1;
    }
    x->examined++;
    size_t elen, blen;
    const uint8_t *body;
    int err = shoal__envelope_parse(env->p, env->len, &elen, &body, &blen);
    if (err || elen != env->len) {
        x->err = SHOAL_ECORRUPT;
        return 1;
    }
    uint64_t seq;
    if (shoal__change_peek(body, blen, &seq, NULL)) {
        x->err = SHOAL_ECORRUPT;
        return 1;
    }
    x->cursor = pos + 1;
    if (seq <= peer_seq(x->peer, x->npeer, shoal__envelope_author(env->p)))
        return 0;
    size_t before = x->out->len;
    err = shoal__buf_append(x->out, env->p, env->len);
    /* a full peer reads everything (serve_full): every group held */
    if (!err)
        err = shoal__seals_append(x->t, cid, env->p, env->len, SHOAL__ALL_GROUPS, x->out);
    if (err) {
        x->err = err;
        return 1;
    }
    x->count++;
    x->bytes += x->out->len - before;
    return 0;
}

static int
next_fn(shoal__stxn *t, void *arg)
{
    ncx *x = arg;
    x->t = t;
    int err = shoal__stxn_log_scan(t, x->cursor, next_cb, x);
    if (x->err)
        return x->err;
    uint64_t last;
    if (x->count > 0 && shoal__stxn_log_last(t, &last, NULL) == SHOAL_OK)
        x->end = last + 1;
    return x->full ? SHOAL_OK : err;
}

static int
host_next_changes(void *ctx, uint64_t *cursor, const shoal__vventry *peer, size_t npeer,
                  size_t max_changes, size_t max_bytes, shoal__buf *out, size_t *count)
{
    shoal_replica *r = ctx;
    *count = 0;
    if (max_changes == 0)
        return SHOAL_OK;
    size_t start = out->len;
    ncx x = { .cursor = *cursor,
              .peer = peer,
              .npeer = npeer,
              .max_changes = max_changes,
              .max_bytes = max_bytes,
              .out = out };
    /* A read transaction is an MVCC snapshot and the store is safe to read
     * from any thread (store.c), so the log is read without r->mu: the
     * app's commits never wait for a batch being copied.  The store lives
     * until the replica closes, after the engine has stopped. */
    int err = shoal__store_read(r->store, next_fn, &x);
    /* Only durable changes leave: a non-durable replica flushes before it
     * sends, unless an earlier flush already covered these positions.  The
     * flush runs without r->mu, so commits go on meanwhile: it covers every
     * transaction committed before it starts, which includes the whole
     * snapshot read above, up to its last log position, not only this
     * batch.  So one flush serves the batches that follow it for as far as
     * the log had grown (a writer far ahead of its peers flushes once per
     * that stretch, not once per batch) and every peer a relay sends that
     * range to. */
    if (!err && x.count > 0 && !r->opt.durable && x.cursor > atomic_load(&r->synced_pos)) {
        err = shoal__store_flush(r->store);
        uint64_t covered = x.end > x.cursor ? x.end : x.cursor;
        if (!err) {
            uint64_t had = atomic_load(&r->synced_pos);
            while (had < covered && !atomic_compare_exchange_weak(&r->synced_pos, &had, covered))
                ;
        }
    }
    if (err) {
        out->len = start;
        return err;
    }
    *cursor = x.cursor;
    *count = x.count;
    return SHOAL_OK;
}

/* ----------------------------------------------------------------- apply */

static int
host_apply(void *ctx, const uint8_t *p, size_t len, size_t count, shoal_import_result *res)
{
    shoal_replica *r = ctx;
    shoal_import_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    /* Every envelope takes at least its header and signature: bound the
     * declared count by the bytes before allocating for it. */
    if (count > len / SHOAL__ENV_MIN)
        return SHOAL_ETRUNC;
    /* Verify every signature (on several threads for a large batch)
     * before anything is decoded or stored, without holding r->mu. */
    shoal__rec *recs = NULL;
    int err = shoal__recs_open(p, len, 0, count, &recs);
    if (err)
        return err;
    /* A durable replica commits received changes relaxed (the meta page
     * unsynced, see shoal__store_relax), so they are visible, and their
     * events queued, one fsync sooner; the flush below makes them durable
     * before this returns, that is before the session acknowledges them
     * and before this engine forwards them to anyone. */
    pthread_mutex_lock(&r->mu);
    shoal__store_relax(r->store, true);
    err = shoal__import_recs(r, recs, count, res);
    shoal__store_relax(r->store, false);
    pthread_mutex_unlock(&r->mu);
    shoal__free(recs);
    if (!err && r->opt.durable && (res->applied || res->pending || res->equivocations))
        err = shoal__store_flush(r->store);
    if (!err && (res->applied > 0 || res->equivocations > 0))
        shoal__net_notify(r); /* new changes, or evidence to pass on */
    if (!err && res->equivocations > 0)
        (void)shoal__equiv_publish(r); /* a full replica proves it */
    return err;
}

/* ---------------------------------------------------------------- authseq */

typedef struct asx {
    const uint8_t *author;
    uint64_t seq;
    uint8_t *cid;
} asx;

static int
authseq_fn(shoal__stxn *t, void *arg)
{
    asx *a = arg;
    return shoal__stxn_authseq_get(t, a->author, a->seq, a->cid);
}

static int
host_authseq(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
             uint8_t cid[SHOAL__ID_BYTES])
{
    shoal_replica *r = ctx;
    asx a = { author, seq, cid };
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, authseq_fn, &a);
    pthread_mutex_unlock(&r->mu);
    return err;
}

/* ---------------------------------------------------------- equivocation */

typedef struct envx {
    const uint8_t *author;
    uint64_t seq;
    shoal__buf *out;
} envx;

static int
envelope_fn(shoal__stxn *t, void *arg)
{
    envx *x = arg;
    uint8_t cid[SHOAL__ID_BYTES];
    int err = shoal__stxn_authseq_get(t, x->author, x->seq, cid);
    shoal__sval env;
    if (!err)
        err = shoal__stxn_change_get(t, cid, &env);
    if (!err)
        err = shoal__buf_append(x->out, env.p, env.len);
    return err;
}

static int
host_envelope(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, shoal__buf *out)
{
    shoal_replica *r = ctx;
    size_t start = out->len;
    envx x = { author, seq, out };
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, envelope_fn, &x);
    pthread_mutex_unlock(&r->mu);
    if (err)
        out->len = start;
    return err;
}

static uint64_t
host_evidence_gen(void *ctx)
{
    shoal_replica *r = ctx;
    return atomic_load(&r->ev_gen);
}

typedef struct evx {
    shoal__stxn *t;
    size_t skip;
    size_t seen;
    size_t max_changes, max_bytes;
    shoal__buf *out;
    size_t count, bytes;
    int err;
} evx;

static int
evidence_cb(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
            const shoal__sval *env, void *arg)
{
    (void)cid;
    evx *x = arg;
    uint8_t have[SHOAL__ID_BYTES];
    if (shoal__stxn_authseq_get(x->t, author, seq, have) != SHOAL_OK)
        return 0; /* nothing applied at seq: the peer would think we hold it */
    if (x->seen++ < x->skip)
        return 0;
    if (x->count >= x->max_changes || (x->count > 0 && x->bytes + env->len > x->max_bytes)) {
        x->seen--;
        return 1;
    }
    int err = shoal__buf_append(x->out, env->p, env->len);
    if (err) {
        x->err = err;
        return 1;
    }
    x->count++;
    x->bytes += env->len;
    return 0;
}

static int
evidence_fn(shoal__stxn *t, void *arg)
{
    evx *x = arg;
    x->t = t;
    if (shoal__stxn_evidence_count(t) == 0)
        return SHOAL_OK;
    int err = shoal__stxn_evidence_scan(t, evidence_cb, x);
    if (x->err)
        return x->err;
    return err == 1 ? SHOAL_OK : err;
}

static int
host_evidence(void *ctx, size_t *from, size_t max_changes, size_t max_bytes, shoal__buf *out,
              size_t *count)
{
    shoal_replica *r = ctx;
    size_t start = out->len;
    evx x = { .skip = *from, .max_changes = max_changes, .max_bytes = max_bytes, .out = out };
    *count = 0;
    if (max_changes == 0)
        return SHOAL_OK;
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, evidence_fn, &x);
    pthread_mutex_unlock(&r->mu);
    if (err) {
        out->len = start;
        return err;
    }
    *from = x.seen;
    *count = x.count;
    return SHOAL_OK;
}

typedef struct stx {
    const uint8_t *author;
    uint64_t seq;
    const uint8_t *cid;
    bool yes;
} stx;

static int
settled_fn(shoal__stxn *t, void *arg)
{
    stx *x = arg;
    uint8_t have[2 * SHOAL__ID_BYTES];
    size_t n = 0;
    int err = shoal__stxn_evidence_versions(t, x->author, x->seq, have, 2, &n);
    if (err)
        return err;
    x->yes = n >= 2 || shoal__stxn_change_has(t, x->cid) || shoal__stxn_pending_has(t, x->cid) ||
             shoal__stxn_evidence_find(t, x->cid, NULL, NULL) == SHOAL_OK;
    return SHOAL_OK;
}

static bool
host_settled(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
             const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal_replica *r = ctx;
    stx x = { author, seq, cid, false };
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, settled_fn, &x);
    pthread_mutex_unlock(&r->mu);
    return !err && x.yes;
}

/* ---------------------------------------------------------- partial sync */

static uint64_t
view_self_gen(void *ctx)
{
    return shoal__subs_gen(ctx);
}

static int
view_self_subs(void *ctx, uint64_t *gen, shoal__buf *out)
{
    return shoal__subs_encode(ctx, gen, out);
}

static int
view_feed_new(void *ctx, const uint8_t peer[SHOAL_KEY_BYTES], bool named, const shoal__wsub *subs,
              size_t nsubs, const shoal__wheld *held, size_t nheld, void **feed)
{
    shoal__feed *f = NULL;
    int err = shoal__feed_new(ctx, peer, named, subs, nsubs, held, nheld, &f);
    *feed = f;
    return err;
}

static int
view_feed_next(void *ctx, void *feed, size_t max_changes, size_t max_bytes, shoal__buf *envs,
               shoal__feed_out *out)
{
    return shoal__feed_next(ctx, feed, max_changes, max_bytes, envs, out);
}

static uint64_t
view_feed_docs(void *ctx, void *feed)
{
    (void)ctx;
    return shoal__feed_docs(feed);
}

static void
view_feed_free(void *ctx, void *feed)
{
    (void)ctx;
    shoal__feed_free(feed);
}

static void
view_feed_received(void *ctx, void *feed, const uint8_t *envs, size_t len, size_t count)
{
    (void)ctx;
    shoal__feed_received(feed, envs, len, count);
}

static int
view_feed_have(void *ctx, void *feed, const shoal__wheld *held, size_t nheld)
{
    (void)ctx;
    return shoal__feed_have(feed, held, nheld);
}

static int
view_leave(void *ctx, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           unsigned reason, const uint8_t *heads, size_t nheads)
{
    return shoal__subs_leave(ctx, coll, clen, id, idlen, reason, heads, nheads);
}

static uint64_t
view_held_gen(void *ctx)
{
    shoal_replica *r = ctx;
    return atomic_load(&r->held_gen);
}

static uint64_t
view_own_acked(void *ctx)
{
    return shoal__subs_own_acked(ctx);
}

static int
view_held_changes(void *ctx, uint64_t *seen, shoal__buf *out, size_t *count)
{
    return shoal__subs_held_changes(ctx, seen, out, count);
}

static int
view_complete(void *ctx, uint64_t gen)
{
    return shoal__subs_complete(ctx, gen);
}

static int
view_acked(void *ctx, const shoal__vventry *e, size_t n)
{
    return shoal__subs_acked(ctx, e, n);
}

static int
view_vouched(void *ctx, shoal__vventry **out, size_t *n)
{
    return shoal__subs_vouched(ctx, out, n);
}

static bool
view_vouched_get(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], shoal__vventry *out)
{
    return shoal__subs_vouched_get(ctx, author, out);
}

static const shoal__host_view host_view = {
    .self_gen = view_self_gen,
    .self_subs = view_self_subs,
    .feed_new = view_feed_new,
    .feed_next = view_feed_next,
    .feed_docs = view_feed_docs,
    .feed_free = view_feed_free,
    .feed_received = view_feed_received,
    .feed_have = view_feed_have,
    .held_gen = view_held_gen,
    .held_changes = view_held_changes,
    .own_acked = view_own_acked,
    .leave = view_leave,
    .complete = view_complete,
    .acked = view_acked,
    .vouched = view_vouched,
    .vouched_get = view_vouched_get,
};

static const shoal__host_ext host_ext = {
    .envelope = host_envelope,
    .evidence_gen = host_evidence_gen,
    .evidence = host_evidence,
    .settled = host_settled,
};

/* An incoming link's key: a device this replica's permissions certify
 * now (docs/permissions.md). */
static bool
host_certified(void *ctx, const uint8_t x[32], uint8_t ed[SHOAL_KEY_BYTES])
{
    shoal_replica *r = ctx;
    return r->enforce && shoal__certs_admit(r, x, ed);
}

static bool
host_revoked(void *ctx, const uint8_t x[32])
{
    shoal_replica *r = ctx;
    return r->enforce && shoal__certs_revoked(r, x);
}

static void
host_auth_refresh(void *ctx)
{
    shoal__certs_refresh(ctx);
}

static uint64_t
host_auth_gen(void *ctx)
{
    shoal_replica *r = ctx;
    return atomic_load(&r->auth_gen);
}

/* Whether a full peer may receive everything we hold: in open mode, the
 * root, or a key whose roles read every document (docs/permissions.md,
 * "Reading"); any other key must subscribe. */
typedef struct full_ctx {
    shoal_replica *r;
    const uint8_t *peer;
    shoal__reader rd;
} full_ctx;

static int
full_fn(shoal__stxn *t, void *arg)
{
    full_ctx *c = arg;
    return shoal__reader_fresh(&c->rd, c->r, t, c->peer);
}

static int
host_serve_full(void *ctx, const uint8_t peer[SHOAL_KEY_BYTES], char *why, size_t len)
{
    shoal_replica *r = ctx;
    if (!r->enforce)
        return SHOAL_OK;
    full_ctx c = { .r = r, .peer = peer };
    shoal__reader_init(&c.rd);
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, full_fn, &c);
    pthread_mutex_unlock(&r->mu);
    if (!err && !c.rd.full) {
        err = SHOAL_EPERM;
        if (c.rd.has_cert)
            snprintf(why, len,
                     "its roles (%s) do not read every document: it must link as a partial "
                     "replica (subscribe)",
                     c.rd.roles);
        else
            snprintf(why, len,
                     "it holds no certificate valid now: it must link as a partial replica, "
                     "which receives only _auth");
    }
    shoal__reader_free(&c.rd);
    return err;
}

/* A full replica's HELLO vector, lowered below the changes it holds
 * without one of their sealed groups (table `unsealed`). */
typedef struct hvv {
    shoal__vventry *v;
    size_t *n;
    shoal__stxn *t;
    int err;
} hvv;

static int
unsealed_cb(const uint8_t cid[SHOAL__ID_BYTES], const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
            void *arg)
{
    hvv *x = arg;
    /* a version an equivocation replaced: no longer ours to complete */
    if (!shoal__stxn_change_has(x->t, cid))
        return 0;
    size_t lo = 0, hi = *x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(x->v[mid].author, author, SHOAL_KEY_BYTES);
        if (c == 0) {
            lo = mid;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= *x->n || memcmp(x->v[lo].author, author, SHOAL_KEY_BYTES) != 0 || x->v[lo].seq < seq)
        return 0;
    if (seq <= 1) { /* nothing of the author held: the entry goes */
        memmove(&x->v[lo], &x->v[lo + 1], (*x->n - lo - 1) * sizeof *x->v);
        (*x->n)--;
        return 0;
    }
    x->v[lo].seq = seq - 1;
    int err = shoal__stxn_authseq_get(x->t, author, seq - 1, x->v[lo].cid);
    if (err) {
        x->err = err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
        return 1;
    }
    return 0;
}

static int
hello_fn(shoal__stxn *t, void *arg)
{
    hvv *x = arg;
    x->t = t;
    int err = shoal__stxn_unsealed_scan(t, unsealed_cb, x);
    return x->err ? x->err : err;
}

static int
host_hello_vv(void *ctx, shoal__vventry *v, size_t *n)
{
    shoal_replica *r = ctx;
    if (!r->enforce || shoal__partial(r))
        return SHOAL_OK; /* a partial replica asks in its summary (subs.c) */
    hvv x = { v, n, NULL, SHOAL_OK };
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, hello_fn, &x);
    pthread_mutex_unlock(&r->mu);
    return err;
}

void
shoal__host_init(shoal__host *h, shoal_replica *r)
{
    memset(h, 0, sizeof *h);
    h->ctx = r;
    h->version = host_version;
    h->next_changes = host_next_changes;
    h->apply = host_apply;
    h->authseq = host_authseq;
    h->ext = &host_ext;
    h->view = &host_view;
    h->certified = host_certified;
    h->serve_full = host_serve_full;
    h->revoked = host_revoked;
    h->auth_refresh = host_auth_refresh;
    h->auth_gen = host_auth_gen;
    h->hello_vv = host_hello_vv;
}
