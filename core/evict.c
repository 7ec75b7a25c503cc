/*
 * core/evict.c - evicting one document from a replica: its materialised
 * state and every change of it leave in one write transaction, as if the
 * replica had never received the document.  For partial replicas (a
 * replica that holds subscriptions drops what it no longer follows).
 *
 * This is local removal, not a CRDT delete: nothing is signed, nothing
 * travels, and a later import of the same envelopes applies them as new
 * changes and brings the document back in the same state.  What goes:
 *   - every log entry of the document's chain (docstore.c: the meta's
 *     last_pos, then each entry's link), superseded ones included (they
 *     are links of the chain and name the document's history), with the
 *     changes and authseq entries that name them (store/evict.c);
 *   - the docs and docsnap entries;
 *   - its query view and its index entries (shoal__qview_update with an
 *     empty document, the path of a deleted one);
 *   - its doc cache entry and the working set's copy (shoal__wset_evict:
 *     at commit, so an abort leaves the cache as the store is).
 * What stays: the pending set and the equivocation evidence (they are
 * envelopes waiting or kept as proof, not state of the document), and
 * every other document: a change names one document and its dependencies
 * are that document's heads, so no other document's chain runs through
 * the dropped entries.
 *
 * Three things derived from the log must not move backwards when the
 * dropped entries are the newest ones:
 *   - log positions: the store keeps them unique (meta "lognext",
 *     store/evict.c);
 *   - the HLC, which is derived from meta "clock" and the last log entry
 *     (clock.c): it is loaded before the drops and stored after them;
 *   - this replica's own seq, which a local commit takes from the version
 *     vector (txn.c): dropping its newest changes would hand the same
 *     (author, seq) to a different change, an equivocation of our own
 *     making.  Meta "ownseq" (u64 BE) keeps the greatest own seq an
 *     eviction dropped, and a commit allocates above it.
 * The version vector of other authors does drop to the greatest seq left,
 * which is what this replica holds.
 *
 * Rejected: a CRDT delete (it travels, and the replica would still hold
 * the history); keeping the changes and dropping only the state (a
 * re-import would be all duplicates and could not restore it).
 */
#include <assert.h>
#include <string.h>

#include "core.h"

/* Disk format: meta "ownseq" (docs/storage.md). */
#define META_OWNSEQ "ownseq"

int
shoal__seq_floor(shoal__stxn *t, uint64_t *floor)
{
    shoal__sval v;
    *floor = 0;
    int err = shoal__stxn_meta_get(t, META_OWNSEQ, &v);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (err)
        return err;
    if (v.len != 8)
        return SHOAL_ECORRUPT;
    *floor = shoal__be64_get(v.p);
    return SHOAL_OK;
}

static int
seq_floor_raise(shoal__stxn *t, uint64_t seq)
{
    uint64_t have;
    int err = shoal__seq_floor(t, &have);
    if (err || seq <= have)
        return err;
    uint8_t b[8];
    shoal__be64_put(b, seq);
    return shoal__stxn_meta_put(t, META_OWNSEQ, b, sizeof b);
}

/* The head and length of (coll, id)'s chain as this txn has it: from the
 * working set when the txn touched it (its meta is written at the flush,
 * later), else from the store.  SHOAL_ENOTFOUND when there is none. */
static int
chain_head(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           uint64_t *last_pos, uint64_t *nchanges, bool *stored)
{
    const shoal__wdoc *wd = shoal__wset_find(w, coll, clen, id, idlen);
    if (wd) {
        if (wd->evicted || (!wd->stored && wd->nnew == 0))
            return SHOAL_ENOTFOUND;
        *last_pos = wd->meta.last_pos;
        *nchanges = wd->meta.nchanges;
        *stored = wd->stored;
        return SHOAL_OK;
    }
    shoal__sval mv;
    int err = shoal__stxn_doc_get(w->t, coll, clen, id, idlen, &mv);
    if (err)
        return err;
    shoal__dmeta m;
    err = shoal__dmeta_parse(mv.p, mv.len, &m);
    if (!err) {
        *last_pos = m.last_pos;
        *nchanges = m.nchanges;
        *stored = true;
    }
    shoal__dmeta_clear(&m);
    return err;
}

/* The positions of the chain, newest first, into pos[0..n): each entry
 * must be a change to (coll, id) and link below itself, and the chain must
 * end (link 0) after exactly n entries.  *own_max: the greatest seq of
 * own's changes among them (0: none). */
static int
chain_collect(shoal__stxn *t, uint64_t last_pos, uint64_t n, const uint8_t *coll, size_t clen,
              const uint8_t *id, size_t idlen, const uint8_t own[SHOAL_KEY_BYTES], uint64_t *pos,
              uint64_t *own_max)
{
    uint64_t at = last_pos;
    *own_max = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (at == 0)
            return SHOAL_ECORRUPT;
        shoal__sval env;
        uint64_t prev;
        int err = shoal__stxn_log_entry(t, at, &env, &prev, NULL, NULL);
        if (err)
            return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
        if (prev >= at)
            return SHOAL_ECORRUPT; /* links point back; anything else could loop */
        shoal__change c;
        err = shoal__change_stored(env.p, env.len, &c);
        if (err)
            return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
        /* A damaged link must not take another document's change along. */
        bool mine = c.coll_len == clen && c.doc_len == idlen && memcmp(c.coll, coll, clen) == 0 &&
                    memcmp(c.doc, id, idlen) == 0;
        if (mine && memcmp(c.author, own, SHOAL_KEY_BYTES) == 0 && c.seq > *own_max)
            *own_max = c.seq;
        shoal__change_clear(&c);
        if (!mine)
            return SHOAL_ECORRUPT;
        pos[i] = at;
        at = prev;
    }
    return at == 0 ? SHOAL_OK : SHOAL_ECORRUPT;
}

int
shoal__doc_evict(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                 uint64_t *nchanges)
{
    assert(w && w->t && coll && id);
    shoal__stxn *t = w->t;
    if (nchanges)
        *nchanges = 0;
    if (clen == 0 || clen > SHOAL_MAX_COLLECTION || idlen == 0 || idlen > SHOAL_MAX_DOC_ID)
        return SHOAL_EINVAL;
    uint64_t last_pos = 0, n = 0;
    bool stored = false;
    int err = chain_head(w, coll, clen, id, idlen, &last_pos, &n, &stored);
    if (err)
        return err;
    /* The chain visits distinct log entries: a longer one is a damaged
     * meta, not a reason to allocate. */
    if (n > shoal__stxn_log_count(t))
        return SHOAL_ECORRUPT;
    uint64_t *pos = NULL;
    if (n > 0) {
        pos = n <= SIZE_MAX / sizeof *pos ? shoal__malloc(n * sizeof *pos) : NULL;
        if (!pos)
            return SHOAL_ENOMEM;
    }
    uint64_t own_max = 0, clock = 0;
    err = chain_collect(t, last_pos, n, coll, clen, id, idlen, w->r->pk, pos, &own_max);
    if (!err)
        err = shoal__clock_load(t, &clock);
    for (uint64_t i = 0; !err && i < n; i++) {
        /* its sealed groups go with it */
        shoal__sval env;
        uint8_t cid[SHOAL__ID_BYTES];
        err = shoal__stxn_log_entry(t, pos[i], &env, NULL, NULL, cid);
        if (!err && shoal__envelope_sealed(env.p, env.len))
            err = shoal__stxn_seal_drop(t, cid);
        if (!err)
            err = shoal__stxn_log_drop(t, pos[i]);
    }
    shoal__free(pos);
    if (!err) {
        err = shoal__stxn_doc_del(t, coll, clen, id, idlen);
        if (err == SHOAL_ENOTFOUND && !stored)
            err = SHOAL_OK; /* created by this txn: its meta was never written */
    }
    if (!err)
        err = shoal__stxn_snap_del(t, coll, clen, id, idlen);
    if (!err) {
        /* An empty document is what the views keep of a never-created
         * one: no view, no index entry. */
        shoal__doc *none = shoal__doc_new();
        err = none ? shoal__qview_update(t, coll, clen, id, idlen, none) : SHOAL_ENOMEM;
        shoal__doc_free(none);
    }
    if (!err)
        err = shoal__clock_store(t, clock);
    if (!err && own_max)
        err = seq_floor_raise(t, own_max);
    if (!err)
        err = shoal__wset_evict(w, coll, clen, id, idlen);
    if (!err && nchanges)
        *nchanges = n;
    return err;
}

/* ------------------------------------------------------------ the helper */

typedef struct ectx {
    shoal__wctx *x;
    const uint8_t *coll, *id;
    size_t clen, idlen;
    uint64_t n;
} ectx;

static int
evict_fn(shoal__stxn *t, void *arg)
{
    ectx *e = arg;
    shoal__wctx *x = e->x;
    shoal__wctx_begin(x, t);
    /* Nothing is drained here: keep the time a held-back change is due
     * (shoal__wctx_write stores it back). */
    x->a.due_ms = x->r->due_ms;
    return shoal__doc_evict(&x->w, e->coll, e->clen, e->id, e->idlen, &e->n);
}

shoal_err
shoal__evict(shoal_replica *r, const char *coll, const char *id)
{
    assert(r);
    size_t clen, idlen;
    if (!shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen) ||
        !shoal__name_ok(id, SHOAL_MAX_DOC_ID, &idlen))
        return SHOAL_EINVAL;
    pthread_mutex_lock(&r->mu);
    shoal__wctx x;
    shoal__wctx_init(&x, r);
    ectx e = { &x, (const uint8_t *)coll, (const uint8_t *)id, clen, idlen, 0 };
    int err = shoal__wctx_write(&x, evict_fn, &e);
    if (err)
        shoal__fail(r, err, "evict %s/%s", coll, id);
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}
