/*
 * core/write.c - the write context of one API call (shoal__wctx): a store
 * write transaction, its working set of documents, and the apply pipeline
 * (core/apply.c) over them, rerun without a stored pending change that
 * fails to apply.
 *
 * A pending change that turns out invalid when finally applied (SHOAL_EPROTO
 * from shoal__doc_apply, e.g. a list insert after an element that does not
 * exist) must not wedge every later write: the write transaction is aborted,
 * the change's id is remembered in the skip list and the transaction rerun
 * with that change dropped from the pending set.  If the invalid change came
 * in the bundle being imported, the whole import fails instead.
 */
#include <stdatomic.h>
#include <string.h>

#include "core.h"

void
shoal__wctx_init(shoal__wctx *x, shoal_replica *r)
{
    memset(x, 0, sizeof *x);
    x->r = r;
    shoal__wset_init(&x->w, r);
    x->la.w = &x->w;
    shoal__apply_lmdb(&x->s, &x->la);
    x->a.s = &x->s;
    x->a.wall = shoal__wall_ms(r);
    x->a.max_drift_ms = r->opt.max_drift_ms;
    x->a.per_doc = shoal__partial(r);
    x->a.root = r->enforce ? r->root : NULL;
    /* The replica's decoded _auth objects serve every drain (caller holds
     * r->mu); made on first use. */
    if (r->enforce && !r->authz)
        (void)shoal__authz_cache_new(&r->authz);
    x->a.authz = r->authz;
    x->a.authz_shared = r->authz != NULL;
}

void
shoal__wctx_begin(shoal__wctx *x, shoal__stxn *t)
{
    shoal__wset_reset(&x->w, t);
    x->la.t = t;
    memset(&x->a.res, 0, sizeof x->a.res);
}

int
shoal__wctx_drain(shoal__wctx *x, shoal__cand *cands, size_t n)
{
    x->a.skip = x->skip;
    x->a.nskip = x->nskip;
    return shoal__apply_drain(&x->a, cands, n);
}

int
shoal__wctx_write(shoal__wctx *x, shoal__txn_fn fn, void *arg)
{
    int err;
    for (;;) {
        x->a.bad_pending = false;
        x->a.ev_new = false;
        err = shoal__store_write(x->r->store, fn, arg);
        if (err && x->a.bad_pending) {
            int e2 = shoal__apply_skip_bad(&x->a, &x->skip, &x->nskip);
            if (e2) {
                err = e2;
                break;
            }
            continue;
        }
        break;
    }
    if (!err) {
        shoal__wset_commit(&x->w);
        x->r->due_ms = x->a.due_ms;
        if (x->a.ev_new)
            atomic_fetch_add(&x->r->ev_gen, 1); /* sessions resend evidence */
        shoal__live_after_write(x->r);
    } else {
        shoal__wset_free(&x->w);
    }
    shoal__free(x->skip);
    x->skip = NULL;
    x->nskip = 0;
    return err;
}
