/*
 * core/apply_lmdb.c - the apply pipeline's store (core/apply.h) over a
 * replica's LMDB write transaction: applied changes, pending set and
 * evidence are the store's tables (shoal__stxn_*), documents are the
 * transaction's working set (docstore.c).  A rollback is the store's
 * abort plus shoal__wset_free (core/write.c).
 */
#include <string.h>

#include "core.h"

static bool
l_has(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_change_has(c->t, cid);
}

static int
l_get(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t **env, size_t *len)
{
    shoal__lmdb_apply *c = ctx;
    shoal__sval v;
    int err = shoal__stxn_change_get(c->t, cid, &v);
    if (!err) {
        *env = v.p;
        *len = v.len;
    }
    return err;
}

static int
l_authseq(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
          uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_authseq_get(c->t, author, seq, cid);
}

static uint64_t
l_pending_count(void *ctx)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_pending_count(c->t);
}

static bool
l_pending_has(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_pending_has(c->t, cid);
}

typedef struct pscan {
    shoal__apply_pending_fn cb;
    void *arg;
} pscan;

static int
l_pending_cb(const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    pscan *p = arg;
    return p->cb(cid, env->p, env->len, p->arg);
}

static int
l_pending_scan(void *ctx, shoal__apply_pending_fn cb, void *arg)
{
    shoal__lmdb_apply *c = ctx;
    pscan p = { cb, arg };
    return shoal__stxn_pending_scan(c->t, l_pending_cb, &p);
}

static int
l_pending_put(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_pending_put(c->t, cid, env, len);
}

static int
l_pending_del(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_pending_del(c->t, cid);
}

static int
l_ev_find(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t author[SHOAL_KEY_BYTES],
          uint64_t *seq)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_find(c->t, cid, author, seq);
}

static int
l_ev_versions(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, uint8_t *cids,
              size_t max, size_t *n)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_versions(c->t, author, seq, cids, max, n);
}

static int
l_ev_get(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
         const uint8_t cid[SHOAL__ID_BYTES], const uint8_t **env, size_t *len)
{
    shoal__lmdb_apply *c = ctx;
    shoal__sval v;
    int err = shoal__stxn_evidence_get(c->t, author, seq, cid, &v);
    if (!err) {
        *env = v.p;
        *len = v.len;
    }
    return err;
}

static uint64_t
l_ev_count(void *ctx)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_count(c->t);
}

static uint64_t
l_ev_ids(void *ctx)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_ids(c->t);
}

static int
l_ev_put(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
         const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len)
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_put(c->t, author, seq, cid, env, len);
}

static int
l_ev_del(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
         const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_del(c->t, author, seq, cid);
}

static int
l_ev_alias(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
           const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_evidence_alias(c->t, author, seq, cid);
}

static int
l_doc(void *ctx, const shoal__change *ch, void **h, shoal__doc **d)
{
    shoal__lmdb_apply *c = ctx;
    shoal__wdoc *wd;
    int err = shoal__wset_get(c->w, ch->coll, ch->coll_len, ch->doc, ch->doc_len, &wd);
    if (err)
        return err;
    *h = wd;
    *d = wd->doc;
    return SHOAL_OK;
}

static bool
l_may_wait(void *ctx, const shoal__change *ch)
{
    shoal__lmdb_apply *c = ctx;
    /* Held: loaded from the store, or created by this drain. */
    shoal__wdoc *wd = shoal__wset_find(c->w, ch->coll, ch->coll_len, ch->doc, ch->doc_len);
    bool held;
    if (wd) {
        held = wd->stored || wd->nnew > 0;
    } else {
        shoal__sval mv;
        held = shoal__stxn_doc_get(c->t, ch->coll, ch->coll_len, ch->doc, ch->doc_len, &mv) !=
               SHOAL_ENOTFOUND;
    }
    if (held)
        return true;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, ch->coll, ch->coll_len, ch->doc, ch->doc_len);
    shoal__subs_note_held(c->w->r, key, klen);
    return false;
}

static int
l_cut(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *cut)
{
    shoal__lmdb_apply *c = ctx;
    return c->w ? shoal__wset_cut(c->w, author, cut) : SHOAL_ENOTFOUND;
}

static int
l_revoked(void *ctx, const uint8_t target[SHOAL_KEY_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__wset_revoked(c->w, target);
}

static int
l_put(void *ctx, void *h, const shoal__rec *rec, const shoal__change *ch, const uint8_t *deps)
{
    shoal__lmdb_apply *c = ctx;
    shoal__wdoc *wd = h;
    bool vd = false;
    int verr = shoal__wset_void(c->w, ch, &vd);
    if (!verr && vd)
        verr = shoal__wset_set_voided(c->w, wd);
    if (verr)
        return verr;
    uint64_t pos;
    int err = shoal__stxn_change_put(c->t, rec->cid, rec->env, rec->env_len, ch->author, ch->seq,
                                     wd->meta.last_pos, &pos);
    if (err)
        return err;
    shoal__change cm = *ch;
    if (ch->ndeps)
        cm.deps = deps;
    return shoal__wset_applied(c->w, wd, &cm, rec->cid, pos, rec->env_len, true);
}

static bool
l_rejected(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__lmdb_apply *c = ctx;
    return shoal__stxn_rejected_has(c->t, cid);
}

/* A rejected change is in the log (exports and feeds send it, the version
 * vector counts it) but in no document's chain: link 0, no meta. */
static int
l_put_rejected(void *ctx, const shoal__rec *rec, const shoal__change *ch)
{
    shoal__lmdb_apply *c = ctx;
    uint64_t pos;
    int err = shoal__stxn_change_put(c->t, rec->cid, rec->env, rec->env_len, ch->author, ch->seq, 0,
                                     &pos);
    if (!err)
        err = shoal__stxn_rejected_put(c->t, rec->cid);
    return err;
}

static int
l_doc_at(void *ctx, const shoal__change *ch, const shoal__doc **out, bool *owned)
{
    shoal__lmdb_apply *c = ctx;
    shoal__wdoc *wd;
    int err = shoal__wset_get(c->w, ch->coll, ch->coll_len, ch->doc, ch->doc_len, &wd);
    if (err)
        return err == SHOAL_EINVAL ? SHOAL_EPROTO : err;
    return shoal__wset_doc_at(c->w, wd, ch->deps, ch->ndeps, out, owned);
}

/* old is superseded in the log, rec appended, the documents of both
 * rebuilt from their applied changes (docstore.c). */
static int
l_supersede(void *ctx, const uint8_t old[SHOAL__ID_BYTES], const shoal__change *oc,
            const shoal__rec *rec, const shoal__change *ch)
{
    shoal__lmdb_apply *c = ctx;
    int err = shoal__stxn_change_supersede(c->t, old, NULL);
    shoal__wdoc *wo = NULL, *wn = NULL;
    if (!err)
        err = shoal__wset_get(c->w, oc->coll, oc->coll_len, oc->doc, oc->doc_len, &wo);
    if (!err) {
        err = shoal__wset_get(c->w, ch->coll, ch->coll_len, ch->doc, ch->doc_len, &wn);
        if (err == SHOAL_EINVAL)
            err = SHOAL_EPROTO;
    }
    uint64_t pos = 0;
    if (!err)
        err = shoal__stxn_change_put(c->t, rec->cid, rec->env, rec->env_len, ch->author, ch->seq,
                                     wn->meta.last_pos, &pos);
    if (!err) {
        wn->meta.last_pos = pos;
        wn->meta.nchanges++;
        wn->newbytes += rec->env_len;
        err = shoal__wset_rebuild(c->w, wn);
    }
    if (!err && wo != wn)
        err = shoal__wset_rebuild(c->w, wo);
    return err;
}

static int
l_seal_get(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, const uint8_t **p, size_t *n)
{
    shoal__lmdb_apply *c = ctx;
    shoal__sval v;
    int err = shoal__stxn_seal_get(c->t, cid, g, &v);
    if (!err) {
        *p = v.p;
        *n = v.len;
    }
    return err;
}

static int
l_seal_put(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, const uint8_t *p, size_t n,
           bool *fresh)
{
    shoal__lmdb_apply *c = ctx;
    shoal__sval v;
    int err = shoal__stxn_seal_get(c->t, cid, g, &v);
    *fresh = err == SHOAL_ENOTFOUND;
    if (err != SHOAL_ENOTFOUND)
        return err;
    return shoal__stxn_seal_put(c->t, cid, g, p, n);
}

/* Whether this replica lacks a group of ch; noted in `unsealed` (or no
 * longer) so that it asks its peers for ch again: a full replica in its
 * HELLO, a partial one in its summary when its roles read the group. */
static int
l_unsealed(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const shoal__change *ch)
{
    shoal__lmdb_apply *c = ctx;
    bool missing = false;
    for (uint8_t g = 0; g < ch->nseals && !missing; g++) {
        shoal__sval v;
        int err = shoal__stxn_seal_get(c->t, cid, g, &v);
        if (err && err != SHOAL_ENOTFOUND)
            return err;
        missing = err == SHOAL_ENOTFOUND;
    }
    return missing ? shoal__stxn_unsealed_put(c->t, cid, ch->author, ch->seq)
                   : shoal__stxn_unsealed_del(c->t, cid);
}

/* A group came after its change applied: the document is built again
 * from its changes, which now read it. */
static int
l_disclosed(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const shoal__change *ch)
{
    shoal__lmdb_apply *c = ctx;
    shoal__wdoc *wd;
    int err = shoal__wset_get(c->w, ch->coll, ch->coll_len, ch->doc, ch->doc_len, &wd);
    if (err)
        return err == SHOAL_EINVAL ? SHOAL_EPROTO : err;
    if (!err && ch->nseals)
        err = l_unsealed(ctx, cid, ch);
    if (err || wd->evicted || wd->meta.last_pos == 0)
        return err;
    return shoal__wset_rebuild(c->w, wd);
}

static const shoal__apply_store lmdb_store = {
    .has = l_has,
    .get = l_get,
    .authseq = l_authseq,
    .pending_count = l_pending_count,
    .pending_has = l_pending_has,
    .pending_scan = l_pending_scan,
    .pending_put = l_pending_put,
    .pending_del = l_pending_del,
    .ev_find = l_ev_find,
    .ev_versions = l_ev_versions,
    .ev_get = l_ev_get,
    .ev_count = l_ev_count,
    .ev_ids = l_ev_ids,
    .ev_put = l_ev_put,
    .ev_del = l_ev_del,
    .ev_alias = l_ev_alias,
    .doc = l_doc,
    .may_wait = l_may_wait,
    .put = l_put,
    .supersede = l_supersede,
    .rejected = l_rejected,
    .put_rejected = l_put_rejected,
    .doc_at = l_doc_at,
    .cut = l_cut,
    .revoked = l_revoked,
    .seal_get = l_seal_get,
    .seal_put = l_seal_put,
    .disclosed = l_disclosed,
    .unsealed = l_unsealed,
};

void
shoal__apply_lmdb(shoal__apply_store *s, shoal__lmdb_apply *c)
{
    *s = lmdb_store;
    s->ctx = c;
}
