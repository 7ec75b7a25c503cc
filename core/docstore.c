/*
 * core/docstore.c - materialised documents: the meta blob, loading a
 * document from its snapshot and change tail, the doc cache and the
 * working set of a write transaction.
 *
 * A document's state on disk is a snapshot (shoal__doc_encode_full, in the
 * docsnap table) plus the tail of changes applied after it: the last
 * nchanges - snap_n changes of its chain.  The chain needs no table of its
 * own: the meta holds the log position of the document's last change
 * (last_pos) and every log entry holds (as its store link) the position of
 * the document's change before it, so a commit writes the log and the meta
 * and nothing else; the meta is put with last_pos, so the store keeps it in
 * that log entry and moves it to the docs table with the index batch
 * (docs/storage.md): a commit then writes only the log.  Loading decodes the snapshot, walks the chain back and
 * re-applies the tail in log order.  When the tail grows to max(SHOAL__SNAP_MIN, size of
 * the last snapshot) bytes, a new snapshot replaces it, so the bytes written
 * per change stay proportional to the change (not to the document) while
 * loading costs at most about twice a snapshot.  Rejected: a snapshot on
 * every change (writes O(document) per edit, bad for big lists) and no
 * snapshot (loading replays the whole history).
 *
 * The cache maps "coll\0id" to a document and the nchanges (and snapshot
 * size and count) it reflects.  An entry is used only when these equal
 * the stored meta's (a rebuild after an equivocation may leave nchanges as
 * it was but writes a new snapshot; only one of exactly the old length
 * and count would go unnoticed, by another process sharing the directory,
 * until the document's next change), so a
 * document changed by another process sharing the directory is reloaded.
 * The state after n changes is unique because LMDB serialises writers.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core.h"

typedef struct shoal__cdoc {
    shoal__doc *doc; /* owned */
    uint64_t nchanges;
    uint64_t snap_n;
    uint64_t snap_bytes;
} shoal__cdoc;

static bool
cdoc_fresh(const shoal__cdoc *c, const shoal__dmeta *m)
{
    return c->nchanges == m->nchanges && c->snap_n == m->snap_n && c->snap_bytes == m->snap_bytes;
}

/* ------------------------------------------------------------------ meta */

int
shoal__dmeta_get(shoal__stxn *t, const uint8_t *key, size_t klen, shoal__dmeta *m)
{
    const uint8_t *nul = memchr(key, 0, klen);
    if (!nul)
        return SHOAL_EINVAL;
    size_t clen = (size_t)(nul - key);
    shoal__sval mv;
    int err = shoal__stxn_doc_get(t, key, clen, nul + 1, klen - clen - 1, &mv);
    return err ? err : shoal__dmeta_parse(mv.p, mv.len, m);
}

int
shoal__dmeta_parse(const uint8_t *p, size_t n, shoal__dmeta *m)
{
    memset(m, 0, sizeof *m);
    if (n < SHOAL__META_FIXED || p[0] != SHOAL__META_VERSION)
        return SHOAL_ECORRUPT;
    uint8_t flags = p[1];
    m->exists = (flags & 1) != 0;
    m->deleted = (flags & 2) != 0;
    m->nchanges = shoal__be64_get(p + 2);
    m->snap_n = shoal__be64_get(p + 10);
    m->tail_bytes = shoal__be64_get(p + 18);
    m->snap_bytes = shoal__be64_get(p + 26);
    m->epoch = shoal__be64_get(p + 34);
    m->last_pos = shoal__be64_get(p + 42);
    uint32_t nh = shoal__be32_get(p + 50);
    if ((n - SHOAL__META_FIXED) / SHOAL__ID_BYTES != nh ||
        (n - SHOAL__META_FIXED) % SHOAL__ID_BYTES != 0 || m->snap_n > m->nchanges ||
        (m->nchanges > 0) != (m->last_pos > 0))
        return SHOAL_ECORRUPT;
    if (nh) {
        m->heads = shoal__malloc((size_t)nh * SHOAL__ID_BYTES);
        if (!m->heads)
            return SHOAL_ENOMEM;
        memcpy(m->heads, p + SHOAL__META_FIXED, (size_t)nh * SHOAL__ID_BYTES);
    }
    m->nheads = nh;
    return SHOAL_OK;
}

int
shoal__dmeta_encode(const shoal__dmeta *m, shoal__buf *out)
{
    uint8_t h[SHOAL__META_FIXED];
    h[0] = SHOAL__META_VERSION;
    h[1] = (uint8_t)((m->exists ? 1 : 0) | (m->deleted ? 2 : 0));
    shoal__be64_put(h + 2, m->nchanges);
    shoal__be64_put(h + 10, m->snap_n);
    shoal__be64_put(h + 18, m->tail_bytes);
    shoal__be64_put(h + 26, m->snap_bytes);
    shoal__be64_put(h + 34, m->epoch);
    shoal__be64_put(h + 42, m->last_pos);
    shoal__be32_put(h + 50, (uint32_t)m->nheads);
    int err = shoal__buf_append(out, h, sizeof h);
    if (!err && m->nheads)
        err = shoal__buf_append(out, m->heads, m->nheads * SHOAL__ID_BYTES);
    return err;
}

void
shoal__dmeta_clear(shoal__dmeta *m)
{
    shoal__free(m->heads);
    memset(m, 0, sizeof *m);
}

/* ----------------------------------------------------------------- cache */

static void
cache_free_val(void *v)
{
    shoal__cdoc *c = v;
    if (c) {
        shoal__doc_free(c->doc);
        shoal__free(c);
    }
}

void
shoal__cache_free(shoal_replica *r)
{
    shoal__map_clear(&r->cache, cache_free_val);
}

/* Remove the entry; return its document if it reflects nchanges (caller
 * owns it), else free it and return NULL. */
static shoal__doc *
cache_take(shoal_replica *r, const uint8_t *key, size_t klen, const shoal__dmeta *m)
{
    shoal__cdoc *c = shoal__map_take(&r->cache, key, klen);
    if (!c)
        return NULL;
    shoal__doc *d = NULL;
    if (cdoc_fresh(c, m)) {
        d = c->doc;
        c->doc = NULL;
    }
    cache_free_val(c);
    return d;
}

/* Takes ownership of d in every case (frees it on failure). */
static int
cache_put(shoal_replica *r, const uint8_t *key, size_t klen, shoal__doc *d, const shoal__dmeta *m)
{
    cache_free_val(shoal__map_take(&r->cache, key, klen));
    while (r->cache.n >= SHOAL__CACHE_MAX)
        cache_free_val(shoal__map_evict(&r->cache));
    shoal__cdoc *c = shoal__malloc(sizeof *c);
    if (!c) {
        shoal__doc_free(d);
        return SHOAL_ENOMEM;
    }
    c->doc = d;
    c->nchanges = m->nchanges;
    c->snap_n = m->snap_n;
    c->snap_bytes = m->snap_bytes;
    int err = shoal__map_put(&r->cache, key, klen, c);
    if (err)
        cache_free_val(c);
    return err;
}

/* ------------------------------------------------------------------ load */

static bool in_auth(const uint8_t *coll, size_t clen);
static int disclose_stored(shoal__stxn *t, shoal__authz_cache **authz,
                           const uint8_t cid[SHOAL__ID_BYTES], shoal__change *c);

static int
as_corrupt(int err)
{
    return err == SHOAL_ENOMEM ? SHOAL_ENOMEM : SHOAL_ECORRUPT;
}

int
shoal__doc_load(shoal_replica *r, shoal__stxn *t, const shoal__dmeta *m, const uint8_t *coll,
                size_t clen, const uint8_t *id, size_t idlen, shoal__doc **out)
{
    shoal__doc *d = NULL;
    shoal__authz_cache *authz = NULL; /* for sealed changes in the tail */
    int err;
    *out = NULL;
    if (m->snap_n > 0) {
        shoal__sval s;
        err = shoal__stxn_snap_get(t, coll, clen, id, idlen, &s);
        if (err)
            return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
        err = shoal__doc_decode_full(s.p, s.len, &d);
        if (err)
            return as_corrupt(err);
    } else {
        d = shoal__doc_new();
        if (!d)
            return SHOAL_ENOMEM;
    }
    /* The tail: walk the chain back from last_pos, then apply forward. */
    uint64_t ntail = m->nchanges - m->snap_n;
    uint64_t *pos = NULL;
    err = SHOAL_OK;
    /* The chain visits distinct log entries: a longer one is a damaged
     * meta, not a reason to allocate (test_damage's leaf flips). */
    if (ntail > shoal__stxn_log_count(t))
        err = SHOAL_ECORRUPT;
    if (ntail > 0 && !err) {
        pos = ntail <= SIZE_MAX / sizeof *pos ? shoal__malloc(ntail * sizeof *pos) : NULL;
        if (!pos)
            err = SHOAL_ENOMEM;
    }
    shoal__wset cw; /* for revocation cuts, when the tail needs them */
    cw.r = NULL;
    uint64_t at = m->last_pos;
    for (uint64_t i = ntail; !err && i > 0; i--) {
        uint64_t prev;
        if (at == 0) {
            err = SHOAL_ECORRUPT;
            break;
        }
        err = shoal__stxn_log_get(t, at, NULL, &prev);
        if (err == SHOAL_ENOTFOUND)
            err = SHOAL_ECORRUPT;
        /* Links point back: a link not below its entry is damage (and
         * could loop). */
        if (!err && prev >= at)
            err = SHOAL_ECORRUPT;
        pos[i - 1] = at;
        at = prev;
    }
    for (uint64_t i = 0; !err && i < ntail; i++) {
        shoal__sval env;
        bool dead = false;
        err = shoal__stxn_log_entry(t, pos[i], &env, NULL, &dead, NULL);
        if (err) {
            err = err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
            break;
        }
        if (dead)
            continue; /* superseded (equivocation): not applied */
        size_t elen, blen;
        const uint8_t *body;
        err = shoal__envelope_parse(env.p, env.len, &elen, &body, &blen);
        if (err) {
            err = as_corrupt(err);
            break;
        }
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, shoal__envelope_author(env.p), SHOAL_KEY_BYTES);
        err = shoal__change_decode(body, blen, &c);
        if (err) {
            err = as_corrupt(err);
            break;
        }
        /* The chain must stay within this document. */
        if (c.coll_len != clen || c.doc_len != idlen || memcmp(c.coll, coll, clen) != 0 ||
            memcmp(c.doc, id, idlen) != 0)
            err = SHOAL_ECORRUPT;
        if (!err && c.nseals) {
            uint8_t cid[SHOAL__ID_BYTES];
            shoal__change_id(env.p, env.len, cid);
            err = disclose_stored(t, &authz, cid, &c);
            if (err)
                break;
        }
        if (!err) {
            /* past its author's cut, or naming VOID authority: VOID (the
             * cuts as this snapshot holds them) */
            bool vd = false;
            if (cw.r == NULL && r->enforce) {
                shoal__wset_init(&cw, r);
                shoal__wset_reset(&cw, t);
            }
            if (cw.r)
                err = shoal__wset_void(&cw, &c, &vd);
            if (!err)
                err = vd ? shoal__doc_apply_void(d, &c) : shoal__doc_apply(d, &c, 0, c.nops);
            if (err)
                err = as_corrupt(err);
        }
        shoal__change_clear(&c);
    }
    if (cw.r)
        shoal__wset_free(&cw);
    shoal__authz_cache_free(authz);
    shoal__free(pos);
    if (err) {
        shoal__doc_free(d);
        return err;
    }
    *out = d;
    return SHOAL_OK;
}

int
shoal__doc_read(shoal_replica *r, shoal__stxn *t, const uint8_t *coll, size_t clen,
                const uint8_t *id, size_t idlen, shoal__dmeta *m, const shoal__doc **out)
{
    shoal__sval mv;
    *out = NULL;
    memset(m, 0, sizeof *m);
    if (clen > SHOAL_MAX_COLLECTION || idlen > SHOAL_MAX_DOC_ID)
        return SHOAL_ENOTFOUND;
    int err = shoal__stxn_doc_get(t, coll, clen, id, idlen, &mv);
    if (err)
        return err;
    err = shoal__dmeta_parse(mv.p, mv.len, m);
    if (err)
        return err;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    shoal__cdoc *c = shoal__map_get(&r->cache, key, klen);
    if (c && cdoc_fresh(c, m)) {
        *out = c->doc;
        return SHOAL_OK;
    }
    shoal__doc *d;
    err = shoal__doc_load(r, t, m, coll, clen, id, idlen, &d);
    if (err)
        return err;
    err = cache_put(r, key, klen, d, m);
    if (err)
        return err;
    *out = d;
    return SHOAL_OK;
}

/* ----------------------------------------------------------- working set */

static void
wdoc_free(shoal__wdoc *wd)
{
    if (!wd)
        return;
    shoal__free(wd->coll);
    shoal__free(wd->id);
    shoal__dmeta_clear(&wd->meta);
    shoal__doc_free(wd->doc);
    shoal__free(wd);
}

void
shoal__wset_init(shoal__wset *w, shoal_replica *r)
{
    memset(w, 0, sizeof *w);
    w->r = r;
    shoal__map_init(&w->map);
    shoal__map_init(&w->vcut);
    shoal__map_init(&w->voids);
}

void
shoal__wset_free(shoal__wset *w)
{
    for (size_t i = 0; i < w->n; i++)
        wdoc_free(w->order[i]);
    shoal__free(w->order);
    shoal__map_clear(&w->map, NULL);
    shoal__map_clear(&w->vcut, NULL);
    shoal__map_clear(&w->voids, NULL);
    shoal_replica *r = w->r;
    shoal__wset_init(w, r);
}

void
shoal__wset_reset(shoal__wset *w, shoal__stxn *t)
{
    shoal__wset_free(w);
    w->t = t;
}

static uint8_t *
dup_nul(const uint8_t *p, size_t n)
{
    uint8_t *s = shoal__malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static shoal__wdoc *
wdoc_new(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen)
{
    shoal__wdoc *wd = shoal__calloc(1, sizeof *wd);
    if (!wd)
        return NULL;
    wd->coll = dup_nul(coll, clen);
    wd->id = dup_nul(id, idlen);
    wd->clen = clen;
    wd->idlen = idlen;
    if (!wd->coll || !wd->id) {
        wdoc_free(wd);
        return NULL;
    }
    return wd;
}

/* Add wd under key; on error the caller still owns it. */
static int
wset_insert(shoal__wset *w, const uint8_t *key, size_t klen, shoal__wdoc *wd)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        shoal__wdoc **o = shoal__realloc(w->order, cap * sizeof *o);
        if (!o)
            return SHOAL_ENOMEM;
        w->order = o;
        w->cap = cap;
    }
    int err = shoal__map_put(&w->map, key, klen, wd);
    if (err)
        return err;
    w->order[w->n++] = wd;
    return SHOAL_OK;
}

static bool
wset_names_ok(size_t clen, size_t idlen)
{
    return clen > 0 && clen <= SHOAL_MAX_COLLECTION && idlen > 0 && idlen <= SHOAL_MAX_DOC_ID;
}

shoal__wdoc *
shoal__wset_find(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen)
{
    if (!wset_names_ok(clen, idlen))
        return NULL;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    return shoal__map_get(&w->map, key, klen);
}

int
shoal__wset_get(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                shoal__wdoc **out)
{
    uint8_t key[SHOAL__DOCKEY_MAX];
    *out = NULL;
    if (!wset_names_ok(clen, idlen))
        return SHOAL_EINVAL;
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    shoal__wdoc *wd = shoal__map_get(&w->map, key, klen);
    if (wd && wd->evicted) {
        /* Evicted earlier in this txn: it starts again from nothing, as
         * a document the store never had. */
        wd->doc = shoal__doc_new();
        if (!wd->doc)
            return SHOAL_ENOMEM;
        wd->evicted = false;
    }
    if (wd) {
        *out = wd;
        return SHOAL_OK;
    }
    wd = wdoc_new(coll, clen, id, idlen);
    if (!wd)
        return SHOAL_ENOMEM;
    shoal__sval mv;
    int err = shoal__stxn_doc_get(w->t, coll, clen, id, idlen, &mv);
    if (err == SHOAL_ENOTFOUND) {
        wd->doc = shoal__doc_new();
        err = wd->doc ? SHOAL_OK : SHOAL_ENOMEM;
    } else if (!err) {
        wd->stored = true;
        err = shoal__dmeta_parse(mv.p, mv.len, &wd->meta);
        if (!err) {
            wd->doc = cache_take(w->r, key, klen, &wd->meta);
            if (!wd->doc)
                err = shoal__doc_load(w->r, w->t, &wd->meta, coll, clen, id, idlen, &wd->doc);
        }
    }
    if (!err)
        err = wset_insert(w, key, klen, wd);
    if (err) {
        wdoc_free(wd);
        return err;
    }
    *out = wd;
    return SHOAL_OK;
}

/* What the wdoc held is gone from the store (core/evict.c dropped it):
 * nothing to flush, events or cache put for it, whatever was applied to it
 * earlier in this txn (those changes were in its chain and went too). */
int
shoal__wset_evict(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen)
{
    if (!wset_names_ok(clen, idlen))
        return SHOAL_EINVAL;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    shoal__wdoc *wd = shoal__map_get(&w->map, key, klen);
    if (!wd) {
        wd = wdoc_new(coll, clen, id, idlen);
        if (!wd)
            return SHOAL_ENOMEM;
        int err = wset_insert(w, key, klen, wd);
        if (err) {
            wdoc_free(wd);
            return err;
        }
    }
    shoal__dmeta_clear(&wd->meta);
    shoal__doc_free(wd->doc);
    wd->doc = NULL;
    wd->stored = false;
    wd->nnew = 0;
    wd->newbytes = 0;
    wd->local = wd->remote = wd->rebuilt = false;
    wd->evicted = wd->dropped = true;
    return SHOAL_OK;
}

int
shoal__wset_applied(shoal__wset *w, shoal__wdoc *wd, const shoal__change *c,
                    const uint8_t cid[SHOAL__ID_BYTES], uint64_t pos, size_t env_len, bool remote)
{
    (void)w;
    shoal__dmeta *m = &wd->meta;
    uint8_t *h;
    size_t n;
    int err = shoal__heads_advance(m->heads, m->nheads, c->deps, c->ndeps, cid, &h, &n);
    if (err)
        return err;
    wd->nnew++;
    wd->newbytes += env_len;
    m->last_pos = pos;
    shoal__free(m->heads);
    m->heads = h;
    m->nheads = n;
    m->nchanges++;
    m->exists = shoal__doc_exists(wd->doc);
    m->deleted = shoal__doc_deleted(wd->doc);
    m->epoch = shoal__doc_epoch(wd->doc);
    if (remote)
        wd->remote = true;
    else
        wd->local = true;
    return SHOAL_OK;
}

/* --------------------------------------------------------------- rebuild */

/* An applied change of a chain being rebuilt: at is its log position. */
typedef shoal__rent rent;

static int
rebuild_collect(shoal__stxn *t, shoal__wdoc *wd, rent **out, size_t *nout, uint64_t *nchain)
{
    rent *e = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    int err = SHOAL_OK;
    for (uint64_t at = wd->meta.last_pos; !err && at != 0;) {
        uint64_t prev;
        bool dead;
        uint8_t cid[SHOAL__ID_BYTES];
        err = shoal__stxn_log_entry(t, at, NULL, &prev, &dead, cid);
        if (err == SHOAL_ENOTFOUND || (!err && prev >= at))
            err = SHOAL_ECORRUPT;
        if (err)
            break;
        total++;
        if (!dead) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                rent *p = shoal__realloc(e, cap * sizeof *p);
                if (!p) {
                    err = SHOAL_ENOMEM;
                    break;
                }
                e = p;
            }
            memset(&e[n], 0, sizeof e[n]);
            e[n].at = at;
            memcpy(e[n].cid, cid, SHOAL__ID_BYTES);
            n++;
        }
        at = prev;
    }
    /* Walked newest first: put them in log order. */
    for (size_t i = 0; i < n / 2; i++) {
        rent tmp = e[i];
        e[i] = e[n - 1 - i];
        e[n - 1 - i] = tmp;
    }
    *out = e;
    *nout = n;
    *nchain = total;
    return err;
}

static int
decode_at(shoal__stxn *t, uint64_t pos, shoal__change *c)
{
    shoal__sval env;
    int err = shoal__stxn_log_get(t, pos, &env, NULL);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
    return shoal__change_stored(env.p, env.len, c);
}

static int
rent_load(void *ctx, const rent *e, shoal__change *c)
{
    return decode_at(ctx, e->at, c);
}

/* The loader of a replay that builds a document's state: sealed ops get
 * the values of the groups held (shoal__apply_disclose). */
typedef struct dload {
    shoal__stxn *t;
    shoal__authz_cache *authz; /* created on the first sealed change, owned */
} dload;

static int
disclose_stored(shoal__stxn *t, shoal__authz_cache **authz, const uint8_t cid[SHOAL__ID_BYTES],
                shoal__change *c)
{
    shoal__lmdb_apply la = { t, NULL };
    shoal__apply_store s;
    shoal__apply_lmdb(&s, &la);
    int err = shoal__apply_disclose(&s, authz, cid, c);
    if (err)
        shoal__change_clear(c);
    return err;
}

static int
rent_load_state(void *ctx, const rent *e, shoal__change *c)
{
    dload *x = ctx;
    int err = decode_at(x->t, e->at, c);
    if (!err && c->nseals)
        err = disclose_stored(x->t, &x->authz, e->cid, c);
    return err;
}

/* ------------------------------------------------------ revocation cuts */

/* Whether the store holds any admitted revocation (meta "revoked"). */
static int
anyrev(shoal__wset *w, bool *yes)
{
    if (w->anyrev == 0) {
        shoal__sval v;
        int err = shoal__stxn_meta_get(w->t, "revoked", &v);
        if (err && err != SHOAL_ENOTFOUND)
            return err;
        w->anyrev = err ? 1 : 2;
    }
    *yes = w->anyrev == 2;
    return SHOAL_OK;
}

int
shoal__wset_cut(shoal__wset *w, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *cut)
{
    bool yes = false;
    int err = w->r->enforce ? anyrev(w, &yes) : SHOAL_OK;
    if (err)
        return err;
    if (!yes)
        return SHOAL_ENOTFOUND;
    uintptr_t v = (uintptr_t)shoal__map_get(&w->vcut, author, SHOAL_KEY_BYTES);
    if (v == 0) {
        /* the smaller of the smallest revocation cut and the smallest
         * equivocation proof's (seq - 1) */
        static const int kinds[] = { SHOAL__AUTH_REVOKE, SHOAL__AUTH_EQUIV };
        v = 1;
        for (size_t i = 0; i < 2; i++) {
            uint8_t cid[SHOAL__ID_BYTES], target[SHOAL_KEY_BYTES];
            shoal__change ch;
            uint64_t c;
            err = shoal__auth_newest(w, kinds[i], author, cid, &ch);
            if (err == SHOAL_ENOTFOUND)
                continue;
            if (err)
                return err;
            if (shoal__change_cut(&ch, target, &c) && c < UINT64_MAX - 2 && (v == 1 || c + 2 < v))
                v = (uintptr_t)c + 2;
            shoal__change_clear(&ch);
        }
        err = shoal__map_put(&w->vcut, author, SHOAL_KEY_BYTES, (void *)v);
        if (err)
            return err;
    }
    if (v == 1)
        return SHOAL_ENOTFOUND;
    *cut = (uint64_t)v - 2;
    return SHOAL_OK;
}

static bool
in_auth(const uint8_t *coll, size_t clen)
{
    return clen == 5 && memcmp(coll, "_auth", 5) == 0;
}

bool
shoal__wset_may_void(shoal__wset *w)
{
    bool yes = false;
    return w->r->enforce && (anyrev(w, &yes) != SHOAL_OK || yes);
}

int
shoal__wset_void(shoal__wset *w, const shoal__change *c, bool *v)
{
    *v = false;
    bool yes = false;
    int err = w->r->enforce ? anyrev(w, &yes) : SHOAL_OK;
    if (err || !yes)
        return err;
    shoal__lmdb_apply la = { w->t, w };
    shoal__apply_store s;
    shoal__apply_lmdb(&s, &la);
    return shoal__apply_void(&s, &w->voids, c, v);
}

/* meta "void:" + hex("coll\0id") */
static void
void_name(const shoal__wdoc *wd, char *out)
{
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, wd->coll, wd->clen, wd->id, wd->idlen);
    memcpy(out, "void:", 5);
    shoal__hex(out + 5, key, klen);
}

enum {
    VOID_NAME_MAX = 5 + 2 * SHOAL__DOCKEY_MAX + 1
};

int
shoal__wset_set_voided(shoal__wset *w, shoal__wdoc *wd)
{
    if (wd->voided)
        return SHOAL_OK;
    wd->voided = true;
    char name[VOID_NAME_MAX];
    void_name(wd, name);
    const uint8_t one = 1;
    return shoal__stxn_meta_put(w->t, name, &one, 1);
}

bool
shoal__wset_voided(shoal__wset *w, shoal__wdoc *wd)
{
    bool yes = false;
    if (wd->voided)
        return true;
    if (anyrev(w, &yes) != SHOAL_OK)
        return true; /* not known: the slow path is right either way */
    if (!yes)
        return false;
    char name[VOID_NAME_MAX];
    void_name(wd, name);
    shoal__sval v;
    int err = shoal__stxn_meta_get(w->t, name, &v);
    return err != SHOAL_ENOTFOUND;
}

/* Set e[i].voided for the changes of a document that apply VOID in w's
 * txn; *any: some do. */
static int
mark_void(shoal__wset *w, rent *e, size_t n, bool *any, bool *own)
{
    *any = false;
    if (own)
        *own = false;
    bool yes = false;
    int err0 = w->r->enforce ? anyrev(w, &yes) : SHOAL_OK;
    if (err0 || !yes)
        return err0;
    for (size_t i = 0; i < n; i++) {
        shoal__change c;
        int err = decode_at(w->t, e[i].at, &c);
        if (!err) {
            err = shoal__wset_void(w, &c, &e[i].voided);
            if (own && e[i].voided && memcmp(c.author, w->r->pk, SHOAL_KEY_BYTES) == 0)
                *own = true;
            shoal__change_clear(&c);
        }
        if (err)
            return err;
        *any = *any || e[i].voided;
    }
    return SHOAL_OK;
}

typedef struct every_ctx {
    shoal__buf keys; /* coll \0 id, each with its u16 length before it */
} every_ctx;

static int
every_fn(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
         void *arg)
{
    (void)meta;
    every_ctx *x = arg;
    uint8_t key[SHOAL__DOCKEY_MAX], len[2];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    len[0] = (uint8_t)(klen >> 8);
    len[1] = (uint8_t)klen;
    int err = shoal__buf_append(&x->keys, len, 2);
    return err ? err : shoal__buf_append(&x->keys, key, klen);
}

/* Rebuild every document the store holds and every one this txn
 * touched (not flushed yet); the keys first: no write while the scan's
 * cursor is open. */
static int
rebuild_every(shoal__wset *w)
{
    every_ctx x;
    shoal__buf_init(&x.keys);
    int err = SHOAL_OK;
    for (size_t i = 0; !err && i < w->n; i++)
        err = every_fn(w->order[i]->coll, w->order[i]->clen, w->order[i]->id, w->order[i]->idlen,
                       NULL, &x);
    if (!err)
        err = shoal__stxn_doc_scan(w->t, NULL, 0, every_fn, &x);
    shoal__map done;
    shoal__map_init(&done);
    for (size_t at = 0; !err && at + 2 <= x.keys.len;) {
        size_t klen = (size_t)x.keys.p[at] << 8 | x.keys.p[at + 1];
        const uint8_t *key = x.keys.p + at + 2;
        at += 2 + klen;
        const uint8_t *nul = memchr(key, 0, klen);
        if (!nul || shoal__map_get(&done, key, klen))
            continue;
        if ((err = shoal__map_put(&done, key, klen, (void *)1)))
            break;
        size_t clen = (size_t)(nul - key);
        shoal__wdoc *wd;
        err = shoal__wset_get(w, key, clen, nul + 1, klen - clen - 1, &wd);
        if (!err && !wd->evicted && wd->meta.last_pos != 0) {
            wd->cut_rebuilt = true;
            err = shoal__wset_rebuild(w, wd);
        }
    }
    shoal__map_clear(&done, NULL);
    shoal__buf_free(&x.keys);
    return err;
}

int
shoal__wset_revoked(shoal__wset *w, const uint8_t target[SHOAL_KEY_BYTES])
{
    const uint8_t one = 1;
    int err = shoal__stxn_meta_put(w->t, "revoked", &one, 1);
    if (err)
        return err;
    w->anyrev = 2;
    (void)shoal__map_take(&w->vcut, target, SHOAL_KEY_BYTES);
    shoal__map_clear(&w->voids, NULL); /* what is VOID may have grown */
    uint64_t cut;
    err = shoal__wset_cut(w, target, &cut);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    /* Its changes past the cut, up to the greatest seq held. */
    uint64_t top = 0;
    uint8_t cid[SHOAL__ID_BYTES];
    if (!err) {
        err = shoal__stxn_vv_get(w->t, target, &top, cid);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK;
            top = 0;
        }
    }
    shoal__map done;
    shoal__map_init(&done);
    bool every = false;
    for (uint64_t s = cut + 1; !err && s <= top && s != 0; s++) {
        err = shoal__stxn_authseq_get(w->t, target, s, cid);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK; /* a gap (a partial replica) */
            continue;
        }
        shoal__sval env;
        if (!err)
            err = shoal__stxn_change_get(w->t, cid, &env);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK;
            continue;
        }
        if (err || shoal__stxn_rejected_has(w->t, cid))
            continue; /* rejected: in no document */
        shoal__change c;
        err = shoal__change_stored(env.p, env.len, &c);
        if (err) {
            err = err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
            break;
        }
        uint8_t key[SHOAL__DOCKEY_MAX];
        size_t klen = shoal__dockey(key, c.coll, c.coll_len, c.doc, c.doc_len);
        uint8_t tk[SHOAL_KEY_BYTES];
        uint64_t tc;
        if (in_auth(c.coll, c.coll_len) && !shoal__change_cut(&c, tk, &tc))
            every = true; /* authority it issued past the cut: VOID, and what names it */
        if (!shoal__map_get(&done, key, klen)) {
            err = shoal__map_put(&done, key, klen, (void *)1);
            shoal__wdoc *wd;
            if (!err)
                err = shoal__wset_get(w, c.coll, c.coll_len, c.doc, c.doc_len, &wd);
            if (!err && !wd->evicted && wd->meta.last_pos != 0) {
                wd->cut_rebuilt = true;
                err = shoal__wset_rebuild(w, wd);
            }
        }
        shoal__change_clear(&c);
    }
    shoal__map_clear(&done, NULL);
    /* A revoked admin: the changes that name what it issued past the cut
     * are VOID too, wherever they are (rare: every document is rebuilt). */
    if (!err && every)
        err = rebuild_every(w);
    return err;
}

/* The commitment replay's loader: each sealed op gets, for a value, the
 * 32-byte commitment of its group and its op index (a 36-byte bin); a
 * sealed increment, an int64 taken from the hash of the same bytes
 * (summed like any increment, so order-free).  Which group: by the read
 * classes of the policy the change names; without that policy, the hash
 * of all the change's commitments stands in. */
static int
rent_load_commit(void *ctx, const rent *e, shoal__change *c)
{
    dload *x = ctx;
    int err = decode_at(x->t, e->at, c);
    if (err || !c->nseals)
        return err;
    const shoal__pcoll *co = NULL;
    bool have_pol = false;
    if (c->nauth == 2) {
        shoal__lmdb_apply la = { x->t, NULL };
        shoal__apply_store s;
        shoal__apply_lmdb(&s, &la);
        const shoal__policy *pol = NULL;
        err = x->authz ? SHOAL_OK : shoal__authz_cache_new(&x->authz);
        if (!err)
            err = shoal__authz_policy(&s, x->authz, c->auth + SHOAL__ID_BYTES, &pol);
        if (!err) {
            have_pol = true;
            co = shoal__policy_coll(pol, c->coll, c->coll_len);
        }
        if (err == SHOAL_ENOTFOUND)
            err = SHOAL_OK;
    }
    uint8_t all[32];
    crypto_generichash(all, 32, c->seal_commit, (size_t)c->nseals * 32, NULL, 0);
    size_t nsealed = 0;
    for (size_t i = 0; i < c->nops; i++)
        nsealed += c->ops[i].sealed;
    uint8_t *block = err ? NULL : shoal__malloc(nsealed * 36 + 1);
    if (!err && !block)
        err = SHOAL_ENOMEM;
    for (size_t i = 0, k = 0; !err && i < c->nops; i++) {
        shoal__op *op = &c->ops[i];
        if (!op->sealed)
            continue;
        const uint8_t *com = all;
        if (have_pol) {
            uint8_t cls = shoal__pcoll_class(op->field, op->field_len, (void *)(uintptr_t)co);
            for (uint8_t g = 0; g < c->nseals; g++)
                if (c->seal_class[g] == cls)
                    com = c->seal_commit + (size_t)g * 32;
        }
        uint8_t *v = block + 36 * k++;
        memcpy(v, com, 32);
        shoal__be32_put(v + 32, (uint32_t)i);
        if (op->kind == SHOAL__OP_COUNT) {
            uint8_t h[8];
            crypto_generichash(h, sizeof h, v, 36, NULL, 0);
            op->delta = (int64_t)shoal__be64_get(h);
            op->value.type = SHOAL_T_NIL;
        } else {
            op->kind = op->kind == SHOAL__OP_UNSET ? SHOAL__OP_SET : op->kind;
            op->value = (shoal_value){ .type = SHOAL_T_BYTES, .ptr = v, .len = 36 };
        }
    }
    if (err) {
        shoal__free(block);
        shoal__change_clear(c);
        return err;
    }
    c->extra = block;
    return SHOAL_OK;
}

int
shoal__wset_commit_doc(shoal__wset *w, shoal__wdoc *wd, shoal__doc **out)
{
    *out = NULL;
    rent *e = NULL;
    size_t n = 0;
    uint64_t total = 0;
    uint8_t *heads = NULL;
    size_t nheads = 0;
    int err = rebuild_collect(w->t, wd, &e, &n, &total);
    bool voided = false;
    if (!err)
        err = mark_void(w, e, n, &voided, NULL);
    if (!err) {
        shoal__lmdb_apply la = { w->t, NULL };
        shoal__apply_store s;
        shoal__apply_lmdb(&s, &la);
        dload dl = { w->t, NULL };
        err = shoal__apply_rebuild(&s, e, n, rent_load_commit, &dl, out, &heads, &nheads);
        shoal__authz_cache_free(dl.authz);
    }
    shoal__free(heads);
    shoal__free(e);
    return err;
}

int
shoal__wset_rebuild(shoal__wset *w, shoal__wdoc *wd)
{
    shoal__stxn *t = w->t;
    rent *e = NULL;
    size_t n = 0;
    uint64_t total = 0;
    shoal__doc *d = NULL;
    uint8_t *heads = NULL;
    size_t nheads = 0;
    int err = rebuild_collect(t, wd, &e, &n, &total);
    bool voided = false;
    if (!err)
        err = mark_void(w, e, n, &voided, &wd->own_void);
    if (!err) {
        /* Deps resolve against the store alone: no document call. */
        shoal__lmdb_apply la = { t, NULL };
        shoal__apply_store s;
        shoal__apply_lmdb(&s, &la);
        dload dl = { t, NULL };
        err = shoal__apply_rebuild(&s, e, n, rent_load_state, &dl, &d, &heads, &nheads);
        shoal__authz_cache_free(dl.authz);
    }
    if (!err && voided)
        err = shoal__wset_set_voided(w, wd);
    if (!err) {
        shoal__dmeta *m = &wd->meta;
        shoal__doc_free(wd->doc);
        wd->doc = d;
        d = NULL;
        shoal__free(m->heads);
        m->heads = heads;
        m->nheads = nheads;
        heads = NULL;
        m->nchanges = total;
        m->exists = shoal__doc_exists(wd->doc);
        m->deleted = shoal__doc_deleted(wd->doc);
        m->epoch = shoal__doc_epoch(wd->doc);
        wd->rebuilt = true;
        wd->remote = true;
        wd->nnew++;
    }
    shoal__doc_free(d);
    shoal__free(heads);
    shoal__free(e);
    return err;
}

int
shoal__wset_doc_at(shoal__wset *w, shoal__wdoc *wd, const uint8_t *deps, size_t ndeps,
                   const shoal__doc **out, bool *owned)
{
    *out = NULL;
    *owned = false;
    shoal__dmeta *m = &wd->meta;
    /* The current heads: the current state (heads and deps both sorted),
     * unless it holds a VOID change, which verdicts do not see. */
    bool voided = shoal__wset_voided(w, wd);
    if (!voided && ndeps == m->nheads && (ndeps == 0 || memcmp(deps, m->heads, ndeps * 32) == 0)) {
        *out = ndeps && shoal__doc_exists(wd->doc) ? wd->doc : NULL;
        return SHOAL_OK;
    }
    rent *e = NULL;
    size_t n = 0;
    uint64_t total = 0;
    int err = rebuild_collect(w->t, wd, &e, &n, &total);
    if (!err) {
        shoal__lmdb_apply la = { w->t, NULL };
        shoal__apply_store s;
        shoal__apply_lmdb(&s, &la);
        shoal__doc *d = NULL;
        err = shoal__apply_doc_at(&s, e, n, rent_load, w->t, deps, ndeps, &d);
        *out = d;
        *owned = true;
    }
    shoal__free(e);
    return err;
}

int
shoal__wset_auth_pick(shoal__wset *w, int kind, const uint8_t key[SHOAL_KEY_BYTES],
                      uint8_t cid[SHOAL__ID_BYTES])
{
    char id[SHOAL__AUTH_DOCID_MAX];
    size_t idlen = shoal__auth_docid(kind, key, id);
    shoal__wdoc *wd;
    int err = shoal__wset_get(w, (const uint8_t *)"_auth", 5, (const uint8_t *)id, idlen, &wd);
    if (err)
        return err;
    rent *e = NULL;
    size_t n = 0;
    uint64_t total = 0;
    err = rebuild_collect(w->t, wd, &e, &n, &total);
    bool found = false;
    uint64_t best = 0; /* serial or version */
    /* a VOID object (issued by a revoked admin past its cut) is not in
     * force; revocations and proofs never are VOID */
    bool may = kind != SHOAL__AUTH_REVOKE && kind != SHOAL__AUTH_EQUIV && shoal__wset_may_void(w);
    for (size_t i = 0; !err && i < n; i++) {
        shoal__change c;
        err = decode_at(w->t, e[i].at, &c);
        if (err)
            break;
        bool vd = false;
        if (may && (err = shoal__wset_void(w, &c, &vd)) != SHOAL_OK) {
            shoal__change_clear(&c);
            break;
        }
        if (!vd && c.nops == 1 && c.ops[0].kind == SHOAL__OP_SET &&
            c.ops[0].value.type == SHOAL_T_BYTES) {
            const uint8_t *p = c.ops[0].value.ptr;
            size_t len = c.ops[0].value.len;
            uint64_t rank = 0;
            bool ok = false;
            if (kind == SHOAL__AUTH_POLICY) {
                /* admitted, so it decodes: its version is enough */
                ok = shoal__policy_version(p, len, &rank) == SHOAL_OK;
            } else if (kind == SHOAL__AUTH_CERT) {
                shoal__cert ce;
                ok = shoal__cert_decode(p, len, &ce) == SHOAL_OK;
                rank = ok ? ce.serial : 0;
                if (ok)
                    shoal__cert_clear(&ce);
            } else if (kind == SHOAL__AUTH_ADMIN) {
                shoal__grant g;
                ok = shoal__grant_decode(p, len, &g) == SHOAL_OK;
                rank = ok ? g.serial : 0;
            } else if (kind == SHOAL__AUTH_REVOKE) {
                shoal__revoke rv;
                ok = shoal__revoke_decode(p, len, &rv) == SHOAL_OK;
                rank = ok ? UINT64_MAX - rv.cut : 0; /* the smallest cut */
            } else if (kind == SHOAL__AUTH_EQUIV) {
                shoal__equiv eq;
                ok = shoal__equiv_decode(p, len, &eq) == SHOAL_OK;
                rank = ok ? UINT64_MAX - eq.seq : 0; /* the smallest seq */
            }
            /* the greatest rank; of equal ones, the greatest id */
            if (ok && (!found || rank > best ||
                       (rank == best && memcmp(e[i].cid, cid, SHOAL__ID_BYTES) > 0))) {
                found = true;
                best = rank;
                memcpy(cid, e[i].cid, SHOAL__ID_BYTES);
            }
        }
        shoal__change_clear(&c);
    }
    shoal__free(e);
    if (!err && !found)
        err = SHOAL_ENOTFOUND;
    return err;
}

static int
wdoc_flush(shoal__stxn *t, shoal__wdoc *wd)
{
    shoal__dmeta *m = &wd->meta;
    uint64_t tail = m->tail_bytes + wd->newbytes;
    uint64_t limit = m->snap_bytes > SHOAL__SNAP_MIN ? m->snap_bytes : SHOAL__SNAP_MIN;
    int err = SHOAL_OK;
    if (tail >= limit || wd->rebuilt) {
        shoal__buf s;
        shoal__buf_init(&s);
        err = shoal__doc_encode_full(wd->doc, &s);
        if (!err)
            err = shoal__stxn_snap_put(t, wd->coll, wd->clen, wd->id, wd->idlen, s.p, s.len);
        if (!err) {
            m->snap_n = m->nchanges;
            m->snap_bytes = s.len;
            m->tail_bytes = 0;
        }
        shoal__buf_free(&s);
    } else {
        m->tail_bytes = tail;
    }
    if (!err)
        err = shoal__qview_update(t, wd->coll, wd->clen, wd->id, wd->idlen, wd->doc);
    if (err)
        return err;
    shoal__buf mb;
    shoal__buf_init(&mb);
    err = shoal__dmeta_encode(m, &mb);
    if (!err)
        err = shoal__stxn_doc_put(t, wd->coll, wd->clen, wd->id, wd->idlen, mb.p, mb.len,
                                  m->last_pos);
    shoal__buf_free(&mb);
    return err;
}

int
shoal__wset_flush(shoal__wset *w)
{
    /* The first write to a directory that had no document when it was
     * opened marks its views built (shoal__qviews_ensure). */
    if (w->n && !atomic_load(&w->r->qviews_marked)) {
        int err = shoal__qviews_mark(w->t);
        if (err)
            return err;
        w->marked = true;
    }
    for (size_t i = 0; i < w->n; i++) {
        if (w->order[i]->nnew == 0)
            continue;
        int err = wdoc_flush(w->t, w->order[i]);
        if (err)
            return err;
    }
    return SHOAL_OK;
}

/* A certificate, revocation or equivocation proof document changed: its
 * current object, for links. */
static void
note_cert(shoal_replica *r, const shoal__doc *d, bool revoke)
{
    shoal__vfield *v = NULL;
    size_t n = 0;
    if (shoal__doc_view(d, &v, &n) != SHOAL_OK)
        return;
    for (size_t i = 0; i < n; i++)
        if (v[i].name_len == 6 && memcmp(v[i].name, "object", 6) == 0 &&
            v[i].kind == SHOAL_K_REGISTER && v[i].value.type == SHOAL_T_BYTES)
            (revoke ? shoal__certs_note_revoke : shoal__certs_note)(r, v[i].value.ptr,
                                                                    v[i].value.len);
    shoal__doc_view_free(v, n);
}

void
shoal__wset_commit(shoal__wset *w)
{
    shoal_replica *r = w->r;
    if (w->marked)
        atomic_store(&r->qviews_marked, true);
    for (size_t i = 0; i < w->n; i++) {
        shoal__wdoc *wd = w->order[i];
        if (wd->dropped) {
            /* Evicted: the cached state is not the store's any more (and
             * cdoc_fresh could take it for a re-import of equal counts). */
            uint8_t key[SHOAL__DOCKEY_MAX];
            size_t klen = shoal__dockey(key, wd->coll, wd->clen, wd->id, wd->idlen);
            cache_free_val(shoal__map_take(&r->cache, key, klen));
            shoal__live_touch(r, wd->coll, wd->clen, wd->id, wd->idlen);
        }
        if (wd->local)
            shoal__events_push(r, wd->coll, wd->clen, wd->id, wd->idlen, false);
        if (wd->remote)
            shoal__events_push(r, wd->coll, wd->clen, wd->id, wd->idlen, true);
        if (wd->cut_rebuilt && wd->own_void)
            shoal__events_push_voided(r, wd->coll, wd->clen, wd->id, wd->idlen);
        if (wd->nnew > 0 || wd->rebuilt)
            shoal__live_touch(r, wd->coll, wd->clen, wd->id, wd->idlen);
        if (r->enforce && (wd->nnew > 0 || wd->rebuilt) && wd->clen == 5 &&
            memcmp(wd->coll, "_auth", 5) == 0) {
            atomic_fetch_add(&r->auth_gen, 1); /* readers load again */
            uint8_t key[SHOAL_KEY_BYTES];
            if (shoal__auth_id_kind(wd->id, wd->idlen, key) == SHOAL__AUTH_CERT) {
                /* rebuilt: its certificate may have become VOID */
                if (wd->rebuilt)
                    shoal__certs_forget(r, key);
                note_cert(r, wd->doc, false);
            } else if (shoal__auth_cut_doc(wd->id, wd->idlen))
                note_cert(r, wd->doc, true);
        }
        if (wd->nnew > 0 && !wd->stored && !wd->dropped && shoal__partial(r)) {
            uint8_t key[SHOAL__DOCKEY_MAX];
            size_t klen = shoal__dockey(key, wd->coll, wd->clen, wd->id, wd->idlen);
            shoal__subs_note_held(r, key, klen);
        }
        if (wd->nnew > 0 || wd->stored) {
            uint8_t key[SHOAL__DOCKEY_MAX];
            size_t klen = shoal__dockey(key, wd->coll, wd->clen, wd->id, wd->idlen);
            (void)cache_put(r, key, klen, wd->doc, &wd->meta);
            wd->doc = NULL;
        }
    }
    shoal__wset_free(w);
}
