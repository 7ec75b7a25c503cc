/*
 * core/bundle.c - export and import of bundles.
 *
 * Import is verify-then-apply: shoal__bundle_open checks every signature
 * (core/verify.c, on several threads for a large batch) before the
 * replica is locked, then every body is decoded (core/apply.c) before the
 * write transaction starts, so a bundle holding one bad change is
 * rejected whole with nothing written.  Inside one write transaction
 * (core/write.c) the causal apply pipeline (core/apply.c) resolves each
 * change against the store and the pending set.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* ---------------------------------------------------------------- import */

typedef struct ictx {
    shoal__wctx *x;
    shoal__cand *c;
    size_t n;
} ictx;

static int
import_fn(shoal__stxn *t, void *arg)
{
    ictx *ic = arg;
    shoal__wctx *x = ic->x;
    shoal__wctx_begin(x, t);
    int err = shoal__clock_load(t, &x->a.clock);
    if (!err)
        err = shoal__wctx_drain(x, ic->c, ic->n);
    if (!err)
        err = shoal__wset_flush(&x->w);
    if (!err)
        err = shoal__clock_store(t, x->a.clock);
    return err;
}

/* Apply cands (may be empty) and the pending set; caller holds r->mu. */
static int
import_run(shoal_replica *r, shoal__cand *c, size_t n, shoal_import_result *res)
{
    shoal__wctx x;
    shoal__wctx_init(&x, r);
    ictx ic = { .x = &x, .c = c, .n = n };
    int err = shoal__wctx_write(&x, import_fn, &ic);
    if (!err && res)
        *res = x.a.res;
    return err;
}

int
shoal__drain_now(shoal_replica *r)
{
    pthread_mutex_lock(&r->mu);
    int err = import_run(r, NULL, 0, NULL);
    pthread_mutex_unlock(&r->mu);
    return err;
}

int
shoal__import_recs(shoal_replica *r, const shoal__rec *recs, size_t count, shoal_import_result *res)
{
    shoal__cand *c = NULL;
    size_t at;
    if (res)
        memset(res, 0, sizeof *res);
    int err = shoal__cands_make(recs, count, &c, &at);
    if (err) {
        if (at == SIZE_MAX)
            shoal__fail(r, err, "import");
        else
            shoal__fail(r, err, "import: change %zu of %zu does not decode or is invalid", at + 1,
                        count);
        return err;
    }
    err = import_run(r, c, count, res);
    if (err)
        shoal__fail(r, err, "import");
    shoal__cands_free(c, count);
    return err;
}

int
shoal__bundle_open(const uint8_t *p, size_t n, shoal__rec **recs, size_t *count)
{
    *recs = NULL;
    *count = 0;
    uint32_t cnt;
    int err = shoal__bundle_header(p, n, &cnt);
    if (err)
        return err;
    err = shoal__recs_open(p, n, SHOAL__BUNDLE_HEADER, cnt, recs);
    /* disclosures only in version 2 */
    for (size_t i = 0; !err && SHOAL__BUNDLE_VERSION(p) == 1 && i < cnt; i++)
        if ((*recs)[i].ndisc)
            err = SHOAL_EPROTO;
    if (err) {
        shoal__free(*recs);
        *recs = NULL;
        return err;
    }
    *count = cnt;
    return err;
}

shoal_err
shoal_import(shoal_replica *r, const uint8_t *bundle, size_t len, shoal_import_result *res)
{
    assert(r);
    shoal_import_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!bundle && len > 0)
        return SHOAL_EINVAL;
    /* Every signature is verified before the replica is locked (the bundle
     * is the caller's and touches no replica state). */
    shoal__rec *recs = NULL;
    size_t count = 0;
    int err = shoal__bundle_open(bundle ? bundle : (const uint8_t *)"", len, &recs, &count);
    pthread_mutex_lock(&r->mu);
    if (err)
        shoal__fail(r, err, "import: bundle rejected");
    else
        err = shoal__import_recs(r, recs, count, res);
    shoal__free(recs);
    pthread_mutex_unlock(&r->mu);
    if (!err && count)
        shoal__net_notify(r); /* peers get what the bundle brought */
    if (!err && res->equivocations > 0)
        (void)shoal__equiv_publish(r);
    return (shoal_err)err;
}

/* ---------------------------------------------------------------- export */

typedef struct ectx {
    const shoal_vv *since;
    shoal__stxn *t;
    shoal__buf out;
    uint32_t count;
    int err;
} ectx;

static int
export_cb(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    (void)pos;
    ectx *e = arg;
    if (e->since) {
        size_t elen, blen;
        const uint8_t *body;
        int err = shoal__envelope_parse(env->p, env->len, &elen, &body, &blen);
        if (err) {
            e->err = SHOAL_ECORRUPT;
            return 1;
        }
        uint64_t seq;
        if (shoal__change_peek(body, blen, &seq, NULL)) {
            e->err = SHOAL_ECORRUPT;
            return 1;
        }
        if (seq <= shoal_vv_get(e->since, shoal__envelope_author(env->p)))
            return 0;
    }
    if (e->count == UINT32_MAX) {
        e->err = SHOAL_ETOOBIG;
        return 1;
    }
    int err = shoal__bundle_add(&e->out, env->p, env->len);
    /* every sealed group held goes with its change: the bundle is then
     * version 2 (an export is its operator's to hand out) */
    size_t before = e->out.len;
    if (!err)
        err = shoal__seals_append(e->t, cid, env->p, env->len, SHOAL__ALL_GROUPS, &e->out);
    if (!err && e->out.len > before)
        e->out.p[7] = '2';
    if (err) {
        e->err = err;
        return 1;
    }
    e->count++;
    return 0;
}

/* Evidence envelopes that are not applied changes go at the end of every
 * export (at most SHOAL__EVIDENCE_MAX), whatever since says: a replica
 * that holds the other version of an (author, seq) needs them to resolve
 * it, and to an importer they are ordinary envelopes (a duplicate, or
 * evidence it did not have). */
typedef struct xev {
    ectx *e;
    shoal__stxn *t;
} xev;

static int
export_ev_cb(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
             const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    (void)author;
    (void)seq;
    xev *v = arg;
    if (shoal__stxn_change_has(v->t, cid))
        return 0;
    if (v->e->count == UINT32_MAX) {
        v->e->err = SHOAL_ETOOBIG;
        return 1;
    }
    int err = shoal__bundle_add(&v->e->out, env->p, env->len);
    if (err) {
        v->e->err = err;
        return 1;
    }
    v->e->count++;
    return 0;
}

static int
export_fn(shoal__stxn *t, void *arg)
{
    ectx *e = arg;
    e->t = t;
    int err = shoal__stxn_log_scan(t, 0, export_cb, e);
    if (!err && !e->err && shoal__stxn_evidence_count(t) > 0) {
        xev v = { e, t };
        err = shoal__stxn_evidence_scan(t, export_ev_cb, &v);
    }
    return e->err ? e->err : err;
}

shoal_err
shoal_export(shoal_replica *r, const shoal_vv *since, uint8_t **out, size_t *out_len)
{
    assert(r && out && out_len);
    *out = NULL;
    *out_len = 0;
    pthread_mutex_lock(&r->mu);
    ectx e;
    memset(&e, 0, sizeof e);
    e.since = since;
    shoal__buf_init(&e.out);
    int err = shoal__bundle_begin(&e.out);
    if (!err)
        err = shoal__store_read(r->store, export_fn, &e);
    if (!err) {
        shoal__bundle_finish(&e.out, e.count);
        *out = shoal__buf_take(&e.out, out_len);
    } else {
        shoal__buf_free(&e.out);
        shoal__fail(r, err, "export");
    }
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}
