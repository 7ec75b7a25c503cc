/*
 * core/qview.c - query views and indexes, kept in the transaction of every
 * change.
 *
 * A query view is what the query engine reads of a live document
 * (shoal__doc_encode_qview): its visible fields, with lists cut at
 * SHOAL__Q_LIST_VIEW items so that a change to a long list never rewrites
 * the whole list.  The stored value is epoch (u64 BE) | view; a deleted or
 * never-created document has none.  wdoc_flush (docstore.c) calls
 * shoal__qview_update for every document a write changed, local, imported,
 * synced or rebuilt, so views and indexes never lag the documents: a
 * commit that fails leaves all three as they were.
 *
 * An index (coll, field) holds one entry per distinct value key
 * (shoal__qkey) of the field in each live document: a register's value, a
 * counter's number, each element of a short list, and one SHOAL__QKEY_LONGLIST
 * entry for a long list.  Absent fields have no entry.  Maintenance diffs
 * the keys of the old view against the new one, so a change that leaves
 * the field alone writes no index page.
 *
 * Rejected: re-deriving the view from the document on every read (a scan
 * of 100,000 documents would decode 100,000 snapshots), and a view without
 * the list cap (an edit of a 100,000-element text would rewrite it all).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* ------------------------------------------------------------ value keys */

typedef struct keyset {
    uint8_t (*k)[SHOAL__QKEY_MAX];
    size_t *len;
    size_t n, cap;
} keyset;

static void
keyset_free(keyset *s)
{
    shoal__free(s->k);
    shoal__free(s->len);
    memset(s, 0, sizeof *s);
}

static bool
keyset_has(const keyset *s, const uint8_t *k, size_t n)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->len[i] == n && memcmp(s->k[i], k, n) == 0)
            return true;
    return false;
}

static int
keyset_add(keyset *s, const uint8_t *k, size_t n)
{
    if (keyset_has(s, k, n))
        return SHOAL_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        void *nk = shoal__realloc(s->k, cap * sizeof *s->k);
        if (!nk)
            return SHOAL_ENOMEM;
        s->k = nk;
        void *nl = shoal__realloc(s->len, cap * sizeof *s->len);
        if (!nl)
            return SHOAL_ENOMEM;
        s->len = nl;
        s->cap = cap;
    }
    memcpy(s->k[s->n], k, n);
    s->len[s->n++] = n;
    return SHOAL_OK;
}

int
shoal__qfield_keys(const shoal__qfield *f, shoal__qkeys_fn cb, void *arg)
{
    uint8_t k[SHOAL__QKEY_MAX];
    switch (f->kind) {
    case SHOAL_K_REGISTER:
    case SHOAL_K_COUNTER: return cb(k, shoal__qkey(&f->value, k), arg);
    case SHOAL_K_LIST:
        if (f->long_list) {
            k[0] = SHOAL__QKEY_LONGLIST;
            return cb(k, 1, arg);
        }
        {
            shoal__mpr r;
            shoal__mpr_init(&r, f->items, f->items_len);
            for (uint32_t i = 0; i < f->nitems; i++) {
                shoal_value v;
                shoal__mpr_value(&r, &v);
                if (r.err)
                    return SHOAL_ECORRUPT;
                int rc = cb(k, shoal__qkey(&v, k), arg);
                if (rc)
                    return rc;
            }
        }
        return SHOAL_OK;
    }
    return SHOAL_ECORRUPT;
}

static int
keyset_cb(const uint8_t *k, size_t n, void *arg)
{
    return keyset_add(arg, k, n);
}

/* The keys of field name in the parsed view f[0..n) into s. */
static int
field_keys(const shoal__qfield *f, size_t n, const uint8_t *name, size_t nlen, keyset *s)
{
    shoal__qdoc d = { .fields = f, .nfields = n };
    const shoal__qfield *x = shoal__qdoc_field(&d, name, nlen);
    s->n = 0;
    return x ? shoal__qfield_keys(x, keyset_cb, s) : SHOAL_OK;
}

/* ------------------------------------------------------------------ views */

static int
qixs_cb(const uint8_t *coll, size_t clen, const uint8_t *field, size_t flen, uint32_t ix, void *arg)
{
    shoal__qixs *l = arg;
    if (clen > SHOAL_MAX_COLLECTION || flen > SHOAL_MAX_FIELD)
        return SHOAL_ECORRUPT;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        void *p = shoal__realloc(l->e, cap * sizeof *l->e);
        if (!p)
            return SHOAL_ENOMEM;
        l->e = p;
        l->cap = cap;
    }
    shoal__qixent *e = &l->e[l->n++];
    memcpy(e->coll, coll, clen);
    e->clen = clen;
    memcpy(e->field, field, flen);
    e->flen = flen;
    e->ix = ix;
    return SHOAL_OK;
}

int
shoal__qixs_load(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__qixs *out)
{
    return shoal__stxn_qix_list(t, coll, clen, qixs_cb, out);
}

void
shoal__qixs_free(shoal__qixs *l)
{
    shoal__free(l->e);
    memset(l, 0, sizeof *l);
}

int
shoal__qview_split(const uint8_t *p, size_t n, uint64_t *epoch, const uint8_t **view, size_t *vlen)
{
    if (n < SHOAL__QVIEW_HDR + 1)
        return SHOAL_ECORRUPT;
    if (epoch)
        *epoch = shoal__be64_get(p);
    *view = p + SHOAL__QVIEW_HDR;
    *vlen = n - SHOAL__QVIEW_HDR;
    return SHOAL_OK;
}

/* Replace the index entries of one document: old view bytes (NULL: none)
 * to new (NULL: none). */
static int
reindex(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
        const uint8_t *ov, size_t olen, const uint8_t *nv, size_t nlen)
{
    shoal__qixs ixs = { 0 };
    int err = shoal__qixs_load(t, coll, clen, &ixs);
    if (err || ixs.n == 0) {
        shoal__qixs_free(&ixs);
        return err;
    }
    shoal__qfield *of = NULL, *nf = NULL;
    size_t ocap = 0, ncap = 0, on = 0, nn = 0;
    bool alive;
    keyset ok = { 0 }, nk = { 0 };
    if (ov) {
        const uint8_t *v;
        size_t vl;
        err = shoal__qview_split(ov, olen, NULL, &v, &vl);
        if (!err)
            err = shoal__qview_parse(v, vl, &of, &ocap, &on, &alive);
    }
    if (!err && nv) {
        const uint8_t *v;
        size_t vl;
        err = shoal__qview_split(nv, nlen, NULL, &v, &vl);
        if (!err)
            err = shoal__qview_parse(v, vl, &nf, &ncap, &nn, &alive);
    }
    for (size_t i = 0; !err && i < ixs.n; i++) {
        const shoal__qixent *x = &ixs.e[i];
        err = field_keys(of, on, x->field, x->flen, &ok);
        if (!err)
            err = field_keys(nf, nn, x->field, x->flen, &nk);
        for (size_t j = 0; !err && j < ok.n; j++)
            if (!keyset_has(&nk, ok.k[j], ok.len[j]))
                err = shoal__stxn_qix_del(t, x->ix, ok.k[j], ok.len[j], id, idlen);
        for (size_t j = 0; !err && j < nk.n; j++)
            if (!keyset_has(&ok, nk.k[j], nk.len[j]))
                err = shoal__stxn_qix_put(t, x->ix, nk.k[j], nk.len[j], id, idlen);
    }
    keyset_free(&ok);
    keyset_free(&nk);
    shoal__free(of);
    shoal__free(nf);
    shoal__qixs_free(&ixs);
    return err;
}

int
shoal__qview_update(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                    size_t idlen, const shoal__doc *d)
{
    bool alive = shoal__doc_exists(d) && !shoal__doc_deleted(d);
    shoal__buf nv, ov;
    shoal__buf_init(&nv);
    shoal__buf_init(&ov);
    int err = SHOAL_OK;
    if (alive) {
        uint8_t e[SHOAL__QVIEW_HDR];
        shoal__be64_put(e, shoal__doc_epoch(d));
        err = shoal__buf_append(&nv, e, sizeof e);
        if (!err)
            err = shoal__doc_encode_qview(d, SHOAL__Q_LIST_VIEW, &nv);
    }
    shoal__sval cur;
    bool had = false;
    if (!err) {
        err = shoal__stxn_qview_get(t, coll, clen, id, idlen, &cur);
        if (err == SHOAL_OK) {
            had = true;
            err = shoal__buf_append(&ov, cur.p, cur.len); /* cur dies at the next put */
        } else if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK;
        }
    }
    if (!err && had == alive && (!alive || (ov.len == nv.len && memcmp(ov.p, nv.p, nv.len) == 0)))
        goto out; /* unchanged: no page written */
    if (!err)
        err = reindex(t, coll, clen, id, idlen, had ? ov.p : NULL, ov.len, alive ? nv.p : NULL,
                      nv.len);
    if (!err)
        err = alive ? shoal__stxn_qview_put(t, coll, clen, id, idlen, nv.p, nv.len)
                    : shoal__stxn_qview_del(t, coll, clen, id, idlen);
out:
    shoal__buf_free(&nv);
    shoal__buf_free(&ov);
    return err;
}

/* ---------------------------------------------------------- index builds */

typedef struct build_ctx {
    shoal__stxn *t;
    uint32_t ix;
    const uint8_t *field;
    size_t flen;
    shoal__qfield *f;
    size_t cap;
    keyset ks;
    /* Entries are put after the scan: a put while a cursor walks the
     * views table is fine in LMDB, but the index table is another tree
     * and the scan's value pointers must not be used after a put. */
} build_ctx;

static int
build_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *view,
         void *arg)
{
    build_ctx *b = arg;
    const uint8_t *v;
    size_t vl, n;
    bool alive;
    int err = shoal__qview_split(view->p, view->len, NULL, &v, &vl);
    if (!err)
        err = shoal__qview_parse(v, vl, &b->f, &b->cap, &n, &alive);
    if (!err)
        err = field_keys(b->f, n, b->field, b->flen, &b->ks);
    for (size_t j = 0; !err && j < b->ks.n; j++)
        err = shoal__stxn_qix_put(b->t, b->ix, b->ks.k[j], b->ks.len[j], id, idlen);
    return err;
}

int
shoal__qindex_build(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                    size_t flen, uint32_t ix)
{
    build_ctx b = { .t = t, .ix = ix, .field = field, .flen = flen };
    int err = shoal__stxn_qix_truncate(t, ix);
    if (!err)
        err = shoal__stxn_qview_scan(t, coll, clen, build_cb, &b);
    keyset_free(&b.ks);
    shoal__free(b.f);
    return err;
}

/* ------------------------------------------------- rebuilding everything */

typedef struct rb_ctx {
    shoal_replica *r;
    shoal__stxn *t;
    uint8_t (*keys)[SHOAL__DOCKEY_MAX];
    size_t *klen;
    size_t n, cap;
} rb_ctx;

static int
rb_collect(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           const shoal__sval *meta, void *arg)
{
    rb_ctx *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        void *k = shoal__realloc(c->keys, cap * sizeof *c->keys);
        if (!k)
            return SHOAL_ENOMEM;
        c->keys = k;
        void *l = shoal__realloc(c->klen, cap * sizeof *c->klen);
        if (!l)
            return SHOAL_ENOMEM;
        c->klen = l;
        c->cap = cap;
    }
    c->klen[c->n] = shoal__dockey(c->keys[c->n], coll, clen, id, idlen);
    c->n++;
    return SHOAL_OK;
}

static int
rebuild_fn(shoal__stxn *t, void *arg)
{
    rb_ctx *c = arg;
    c->t = t;
    c->n = 0;
    int err = shoal__stxn_qview_clear(t);
    shoal__qixs ia = { 0 };
    if (!err)
        err = shoal__qixs_load(t, NULL, 0, &ia);
    for (size_t i = 0; !err && i < ia.n; i++)
        err = shoal__stxn_qix_truncate(t, ia.e[i].ix);
    if (!err)
        err = shoal__stxn_doc_scan(t, NULL, 0, rb_collect, c);
    for (size_t i = 0; !err && i < c->n; i++) {
        const uint8_t *k = c->keys[i];
        const uint8_t *nul = memchr(k, 0, c->klen[i]);
        size_t clen = (size_t)(nul - k);
        const uint8_t *id = nul + 1;
        size_t idlen = c->klen[i] - clen - 1;
        shoal__dmeta m;
        const shoal__doc *d;
        err = shoal__doc_read(c->r, t, k, clen, id, idlen, &m, &d);
        if (!err)
            err = shoal__qview_update(t, k, clen, id, idlen, d);
        shoal__dmeta_clear(&m);
    }
    for (size_t i = 0; !err && i < ia.n; i++)
        err = shoal__qindex_build(t, ia.e[i].coll, ia.e[i].clen, ia.e[i].field, ia.e[i].flen,
                                  ia.e[i].ix);
    if (!err) {
        uint8_t v = SHOAL__QVIEW_VERSION;
        err = shoal__stxn_meta_put(t, "qviews", &v, 1);
    }
    shoal__qixs_free(&ia);
    return err;
}

static int
qviews_ok_fn(shoal__stxn *t, void *arg)
{
    bool *ok = arg;
    shoal__sval v;
    int err = shoal__stxn_meta_get(t, "qviews", &v);
    if (err == SHOAL_ENOTFOUND) {
        /* Not marked: a directory from before views (build them), or one
         * that has no change yet (nothing to build; its first write puts
         * the mark, so that opening a new directory writes nothing). */
        *ok = shoal__stxn_log_count(t) == 0;
        return SHOAL_OK;
    }
    if (err)
        return err;
    *ok = v.len == 1 && v.p[0] == SHOAL__QVIEW_VERSION;
    return SHOAL_OK;
}

int
shoal__qviews_mark(shoal__stxn *t)
{
    shoal__sval v;
    int err = shoal__stxn_meta_get(t, "qviews", &v);
    if (err == SHOAL_ENOTFOUND) {
        uint8_t b = SHOAL__QVIEW_VERSION;
        err = shoal__stxn_meta_put(t, "qviews", &b, 1);
    }
    return err;
}

int
shoal__qviews_ensure(shoal_replica *r)
{
    bool ok = false;
    int err = shoal__store_read(r->store, qviews_ok_fn, &ok);
    if (err || ok)
        return err;
    rb_ctx c = { .r = r };
    err = shoal__store_write(r->store, rebuild_fn, &c);
    shoal__free(c.keys);
    shoal__free(c.klen);
    if (!err)
        atomic_store(&r->qviews_marked, true);
    /* The rebuild read documents through the cache; it holds committed
     * state only, so nothing to undo there. */
    return err;
}

int
shoal__qviews_rebuild(shoal_replica *r)
{
    rb_ctx c = { .r = r };
    int err = shoal__store_write(r->store, rebuild_fn, &c);
    shoal__free(c.keys);
    shoal__free(c.klen);
    return err;
}
