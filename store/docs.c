/*
 * store/docs.c - document metas (lagging the log like the indexes: the tail's
 * newest meta of a document wins) and snapshots.
 */
#include "store_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
name_ok(const uint8_t *p, size_t n, size_t max)
{
    return p && n > 0 && n <= max && !memchr(p, 0, n);
}

/* Build coll NUL id into k; returns its length or 0 (bad names). */
static size_t
doc_key(uint8_t k[SHOAL__DOCKEY_MAX], const uint8_t *coll, size_t clen, const uint8_t *id,
        size_t idlen)
{
    if (!name_ok(coll, clen, SHOAL_MAX_COLLECTION) || !name_ok(id, idlen, SHOAL_MAX_DOC_ID))
        return 0;
    return shoal__dockey(k, coll, clen, id, idlen);
}

static int
doc_get(shoal__stxn *t, int tab, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
        shoal__sval *out)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    return shoal__st_get(t, tab, k, n, out);
}

static int
doc_put(shoal__stxn *t, int tab, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
        const void *v, size_t vlen)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    return shoal__st_put(t, tab, k, n, v, vlen, 0);
}

/* Bytewise key order, as LMDB's default comparison. */
static int
key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static int
tent_cmp(const void *a, const void *b)
{
    const tail_ent *x = *(const tail_ent *const *)a, *y = *(const tail_ent *const *)b;
    return key_cmp(x->dk, x->klen, y->dk, y->klen);
}

static int
doc_emit(shoal__stxn *t, const uint8_t *p, size_t n, const uint8_t *m, size_t ml, shoal__doc_fn cb,
         void *arg)
{
    const uint8_t *nul = memchr(p, 0, n);
    if (!nul || nul == p || (size_t)(nul - p) + 1 >= n) {
        snprintf(t->s->errmsg, sizeof t->s->errmsg, "malformed document key");
        return SHOAL_ECORRUPT;
    }
    size_t cl = (size_t)(nul - p);
    shoal__sval meta = { m, ml };
    return cb(p, cl, nul + 1, n - cl - 1, &meta, arg);
}

/* A document's meta lags like the indexes: the newest tail entry carrying
 * one for the document wins over the docs table. */
int
shoal__stxn_doc_get(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                    size_t idlen, shoal__sval *meta)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    const tail_ent *e = shoal__st_tail_find_doc(t, k, n);
    if (e) {
        if (meta) {
            meta->p = e->dmeta;
            meta->len = e->mlen;
        }
        return SHOAL_OK;
    }
    return shoal__st_get(t, T_DOCS, k, n, meta);
}

int
shoal__stxn_doc_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                    size_t idlen, const void *meta, size_t mlen, uint64_t pos)
{
    assert(t->write);
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n || (mlen && !meta))
        return SHOAL_EINVAL;
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    if (pos == 0 || pos < t->ixnext) {
        if (pos == 0 && shoal__st_tail_find_doc(t, k, n)) {
            snprintf(t->s->errmsg, sizeof t->s->errmsg,
                     "document meta rides in the log tail: put it with its position");
            return SHOAL_EINVAL;
        }
        return shoal__st_put(t, T_DOCS, k, n, meta, mlen, 0);
    }
    if (pos >= t->lognext)
        return SHOAL_EINVAL;
    if (mlen > UINT32_MAX)
        return SHOAL_ETOOBIG;
    if (pos - t->ixnext >= t->ntail)
        return shoal__st_corrupt(t, "log tail shorter than its positions");
    tail_ent *e = &t->tail[pos - t->ixnext];
    if (e->pos != pos)
        return shoal__st_corrupt(t, "log tail out of order");
    /* Rewrite the entry with the meta between header and envelope; the
     * entry was appended by this transaction, so its page is dirty already. */
    uint8_t pk[8];
    shoal__be64_put(pk, pos);
    shoal__sval v = { NULL, 0 };
    rc = shoal__st_get(t, T_LOG, pk, 8, &v);
    if (rc)
        return rc == SHOAL_ENOTFOUND ? shoal__st_corrupt(t, "log tail entry missing") : rc;
    log_ent le;
    if (!shoal__st_ent_parse(v.p, v.len, &le))
        return shoal__st_corrupt(t, "malformed log entry");
    size_t nlen = LOG_HDR + 2 + n + 4 + mlen + le.elen;
    uint8_t *b = shoal__malloc(nlen);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, LOG_HDR);
    shoal__be64_put(b + LOG_LINK, le.link | LINK_META | (le.dead ? LINK_DEAD : 0));
    size_t off = LOG_HDR;
    shoal__be16_put(b + off, (uint16_t)n);
    off += 2;
    memcpy(b + off, k, n);
    off += n;
    shoal__be32_put(b + off, (uint32_t)mlen);
    off += 4;
    if (mlen)
        memcpy(b + off, meta, mlen);
    off += mlen;
    if (le.elen)
        memcpy(b + off, le.env, le.elen);
    rc = shoal__st_put(t, T_LOG, pk, 8, b, nlen, 0);
    shoal__free(b);
    if (!rc)
        rc = shoal__st_tail_set_meta(e, k, n, meta, mlen);
    return rc;
}

int
shoal__stxn_snap_get(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen, shoal__sval *snap)
{
    return doc_get(t, T_DOCSNAP, coll, clen, id, idlen, snap);
}

int
shoal__stxn_snap_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen, const void *snap, size_t slen)
{
    return doc_put(t, T_DOCSNAP, coll, clen, id, idlen, snap, slen);
}

int
shoal__stxn_doc_scan(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__doc_fn cb, void *arg)
{
    uint8_t prefix[SHOAL_MAX_COLLECTION + 1];
    size_t pl = 0;
    if (coll) {
        if (!name_ok(coll, clen, SHOAL_MAX_COLLECTION))
            return SHOAL_EINVAL;
        memcpy(prefix, coll, clen);
        prefix[clen] = 0;
        pl = clen + 1;
    }
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    /* The tail's newest meta per document (in the scanned range), sorted;
     * merged with the table, winning over it. */
    const tail_ent **tm = NULL;
    size_t ntm = 0;
    if (t->ntail) {
        tm = shoal__malloc(t->ntail * sizeof *tm);
        if (!tm)
            return SHOAL_ENOMEM;
    }
    for (size_t i = t->ntail; i > 0; i--) {
        const tail_ent *e = &t->tail[i - 1];
        if (!e->dk || (coll && (e->klen < pl || memcmp(e->dk, prefix, pl) != 0)))
            continue;
        bool seen = false;
        for (size_t j = 0; j < ntm && !seen; j++)
            seen = tm[j]->klen == e->klen && memcmp(tm[j]->dk, e->dk, e->klen) == 0;
        if (!seen)
            tm[ntm++] = e;
    }
    if (ntm > 1)
        qsort(tm, ntm, sizeof *tm, tent_cmp);
    size_t ti = 0;
    MDB_cursor *c;
    rc = shoal__st_cur_open(t, T_DOCS, &c);
    if (rc) {
        shoal__free(tm);
        return rc;
    }
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, coll ? prefix : NULL, pl, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (coll && !has_prefix(&k, prefix, pl))
            break;
        int r = 0, cmp = 1;
        while (!r && ti < ntm &&
               (cmp = key_cmp(tm[ti]->dk, tm[ti]->klen, k.mv_data, k.mv_size)) <= 0) {
            r = doc_emit(t, tm[ti]->dk, tm[ti]->klen, tm[ti]->dmeta, tm[ti]->mlen, cb, arg);
            ti++;
            if (cmp == 0)
                break;
        }
        if (!r && cmp != 0)
            r = doc_emit(t, k.mv_data, k.mv_size, v.mv_data, v.mv_size, cb, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc == SHOAL_ENOTFOUND)
        rc = SHOAL_OK;
    for (; !rc && ti < ntm; ti++)
        rc = doc_emit(t, tm[ti]->dk, tm[ti]->klen, tm[ti]->dmeta, tm[ti]->mlen, cb, arg);
    shoal__free(tm);
    return rc;
}

/* A meta the tail carries would win over the table (doc_get): index the
 * tail first, which moves it into docs, then delete it there. */
int
shoal__stxn_doc_del(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                    size_t idlen)
{
    assert(t->write);
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    if (shoal__st_tail_find_doc(t, k, n)) {
        rc = shoal__stxn_index_flush(t);
        if (rc)
            return rc;
    }
    return shoal__st_del(t, T_DOCS, k, n);
}

int
shoal__stxn_snap_del(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen)
{
    assert(t->write);
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    int rc = shoal__st_del(t, T_DOCSNAP, k, n);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}
