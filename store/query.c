/*
 * store/query.c - the tables behind queries: query views (one per live
 * document), the index registry and the index entries.  What a view or a
 * value key holds is core/'s and crdt/'s business; here they are bytes.
 *
 * An index entry's key is index number (u32 BE) | value key | id.  The
 * value key is self-delimiting, but the store does not parse it: the
 * entry's value holds its length (u16 BE), so a scan can hand the two
 * parts apart and stop at the end of a range without knowing the format.
 * Keys stay within LMDB's 511 bytes: 4 + SHOAL__QKEY_MAX + SHOAL_MAX_DOC_ID.
 */
#include "store_int.h"

#include <string.h>

_Static_assert(4 + SHOAL__QKEY_MAX + SHOAL_MAX_DOC_ID <= 511, "index key over LMDB's limit");
_Static_assert(SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_FIELD <= 511, "registry key over LMDB's limit");

enum {
    IXKEY_MAX = 4 + SHOAL__QKEY_MAX + SHOAL_MAX_DOC_ID
};

static bool
name_ok(const uint8_t *p, size_t n, size_t max)
{
    return p && n > 0 && n <= max && !memchr(p, 0, n);
}

static size_t
pair_key(uint8_t *k, const uint8_t *a, size_t alen, size_t amax, const uint8_t *b, size_t blen,
         size_t bmax)
{
    if (!name_ok(a, alen, amax) || !name_ok(b, blen, bmax))
        return 0;
    memcpy(k, a, alen);
    k[alen] = 0;
    memcpy(k + alen + 1, b, blen);
    return alen + 1 + blen;
}

/* ------------------------------------------------------------------ views */

int
shoal__stxn_qview_get(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                      size_t idlen, shoal__sval *view)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, id, idlen, SHOAL_MAX_DOC_ID);
    if (!n)
        return SHOAL_EINVAL;
    return shoal__st_get(t, T_QVIEW, k, n, view);
}

int
shoal__stxn_stub_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, id, idlen, SHOAL_MAX_DOC_ID);
    if (!n)
        return SHOAL_EINVAL;
    static const uint8_t one = 1;
    return shoal__st_put(t, T_EVICTED, k, n, &one, 1, 0);
}

bool
shoal__stxn_stub_has(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, id, idlen, SHOAL_MAX_DOC_ID);
    shoal__sval v;
    return n && shoal__st_get(t, T_EVICTED, k, n, &v) == SHOAL_OK;
}

int
shoal__stxn_rejected_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    static const uint8_t one = 1;
    return shoal__st_put(t, T_REJECTED, cid, SHOAL__ID_BYTES, &one, 1, 0);
}

bool
shoal__stxn_rejected_has(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__sval v;
    return shoal__st_get(t, T_REJECTED, cid, SHOAL__ID_BYTES, &v) == SHOAL_OK;
}

int
shoal__stxn_seal_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g,
                     const uint8_t *p, size_t n)
{
    uint8_t k[SHOAL__ID_BYTES + 1];
    memcpy(k, cid, SHOAL__ID_BYTES);
    k[SHOAL__ID_BYTES] = g;
    shoal__sval v;
    int err = shoal__st_get(t, T_SEALS, k, sizeof k, &v);
    if (err != SHOAL_ENOTFOUND)
        return err;
    return shoal__st_put(t, T_SEALS, k, sizeof k, p, n, 0);
}

int
shoal__stxn_seal_scan(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], shoal__seal_fn cb,
                      void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_SEALS, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, cid, SHOAL__ID_BYTES, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SHOAL__ID_BYTES + 1 || memcmp(k.mv_data, cid, SHOAL__ID_BYTES) != 0)
            break;
        shoal__sval sv = { v.mv_data, v.mv_size };
        int r = cb(((const uint8_t *)k.mv_data)[SHOAL__ID_BYTES], &sv, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_seal_get(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, shoal__sval *v)
{
    uint8_t k[SHOAL__ID_BYTES + 1];
    memcpy(k, cid, SHOAL__ID_BYTES);
    k[SHOAL__ID_BYTES] = g;
    return shoal__st_get(t, T_SEALS, k, sizeof k, v);
}

int
shoal__stxn_qview_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                      size_t idlen, const void *view, size_t vlen)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, id, idlen, SHOAL_MAX_DOC_ID);
    if (!n)
        return SHOAL_EINVAL;
    return shoal__st_put(t, T_QVIEW, k, n, view, vlen, 0);
}

int
shoal__stxn_qview_del(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                      size_t idlen)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, id, idlen, SHOAL_MAX_DOC_ID);
    if (!n)
        return SHOAL_EINVAL;
    int rc = shoal__st_del(t, T_QVIEW, k, n);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

/* Walk table tab (keys "coll NUL rest") in key order, all of it or only
 * coll's keys: cb(coll, rest, value); a key without its NUL, or with an
 * empty part, is damage named what. */
typedef int (*pair_fn)(const uint8_t *coll, size_t clen, const uint8_t *rest, size_t rlen,
                       const MDB_val *v, void *arg);

static int
pair_scan(shoal__stxn *t, int tab, const uint8_t *coll, size_t clen, const char *what, pair_fn cb,
          void *arg)
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
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, tab, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, pl ? prefix : NULL, pl, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (pl && (k.mv_size < pl || memcmp(kp, prefix, pl) != 0))
            break;
        const uint8_t *nul = memchr(kp, 0, k.mv_size);
        if (!nul || nul == kp || (size_t)(nul - kp) + 1 >= k.mv_size) {
            rc = shoal__st_corrupt(t, what);
            break;
        }
        size_t cl = (size_t)(nul - kp);
        int r = cb(kp, cl, nul + 1, k.mv_size - cl - 1, &v, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

typedef struct view_scan {
    shoal__qview_fn cb;
    void *arg;
} view_scan;

static int
view_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const MDB_val *v,
        void *arg)
{
    view_scan *vs = arg;
    shoal__sval val = sval(v);
    return vs->cb(coll, clen, id, idlen, &val, vs->arg);
}

int
shoal__stxn_qview_scan(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__qview_fn cb,
                       void *arg)
{
    view_scan vs = { cb, arg };
    return pair_scan(t, T_QVIEW, coll, clen, "query view with a malformed key", view_cb, &vs);
}

int
shoal__stxn_qview_clear(shoal__stxn *t)
{
    int rc = mdb_drop(t->txn, t->s->dbi[T_QVIEW], 0);
    if (rc)
        return shoal__st_tfail(t, "mdb_drop", rc);
    t->wrote = true;
    return SHOAL_OK;
}

struct shoal__qvcur {
    shoal__stxn *t;
    MDB_cursor *c;
};

int
shoal__stxn_qvcur_open(shoal__stxn *t, shoal__qvcur **out)
{
    shoal__qvcur *q = shoal__malloc(sizeof *q);
    if (!q)
        return SHOAL_ENOMEM;
    int rc = shoal__st_cur_open(t, T_QVIEW, &q->c);
    if (rc) {
        shoal__free(q);
        return rc;
    }
    q->t = t;
    *out = q;
    return SHOAL_OK;
}

int
shoal__qvcur_get(shoal__qvcur *q, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                 shoal__sval *view)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, id, idlen, SHOAL_MAX_DOC_ID);
    if (!n)
        return SHOAL_EINVAL;
    MDB_val kv = { .mv_size = n, .mv_data = k }, v;
    int rc = shoal__st_cur_get(q->t, q->c, &kv, &v, MDB_SET);
    if (rc)
        return rc;
    *view = sval(&v);
    return SHOAL_OK;
}

void
shoal__qvcur_close(shoal__qvcur *q)
{
    if (!q)
        return;
    mdb_cursor_close(q->c);
    shoal__free(q);
}

/* --------------------------------------------------------------- registry */

int
shoal__stxn_qix_find(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                     size_t flen, uint32_t *ix)
{
    uint8_t k[SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_FIELD];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, field, flen, SHOAL_MAX_FIELD);
    if (!n)
        return SHOAL_EINVAL;
    shoal__sval v;
    int rc = shoal__st_get(t, T_QIXREG, k, n, &v);
    if (rc)
        return rc;
    if (v.len != 4)
        return shoal__st_corrupt(t, "index registry entry of the wrong size");
    *ix = shoal__be32_get(v.p);
    return SHOAL_OK;
}

int
shoal__stxn_qix_create(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                       size_t flen, uint32_t *ix)
{
    uint8_t k[SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_FIELD];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, field, flen, SHOAL_MAX_FIELD);
    if (!n)
        return SHOAL_EINVAL;
    uint32_t old = 0;
    int rc = shoal__stxn_qix_find(t, coll, clen, field, flen, &old);
    if (rc == SHOAL_OK)
        return SHOAL_EBUSY;
    if (rc != SHOAL_ENOTFOUND)
        return rc;
    /* Numbers are never reused, so a dropped index's entries can never be
     * mistaken for a new one's. */
    shoal__sval v;
    uint32_t next = 1;
    rc = shoal__stxn_meta_get(t, "qixnext", &v);
    if (rc == SHOAL_OK) {
        if (v.len != 4)
            return shoal__st_corrupt(t, "meta qixnext of the wrong size");
        next = shoal__be32_get(v.p);
    } else if (rc != SHOAL_ENOTFOUND) {
        return rc;
    }
    if (next == 0 || next == UINT32_MAX)
        return SHOAL_ETOOBIG;
    uint8_t b[4];
    shoal__be32_put(b, next + 1);
    rc = shoal__stxn_meta_put(t, "qixnext", b, 4);
    if (rc)
        return rc;
    shoal__be32_put(b, next);
    rc = shoal__st_put(t, T_QIXREG, k, n, b, 4, 0);
    if (rc)
        return rc;
    *ix = next;
    return SHOAL_OK;
}

/* Delete every entry of table tab whose key starts with p[0..n). */
static int
prefix_del(shoal__stxn *t, int tab, const uint8_t *p, size_t n)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, tab, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, p, n, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < n || memcmp(k.mv_data, p, n) != 0)
            break;
        int mrc = mdb_cursor_del(c, 0);
        if (mrc) {
            rc = shoal__st_tfail(t, "mdb_cursor_del", mrc);
            break;
        }
        t->wrote = true;
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_qix_truncate(shoal__stxn *t, uint32_t ix)
{
    uint8_t p[4];
    shoal__be32_put(p, ix);
    return prefix_del(t, T_QINDEX, p, sizeof p);
}

int
shoal__stxn_qix_drop(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                     size_t flen)
{
    uint32_t ix = 0;
    int rc = shoal__stxn_qix_find(t, coll, clen, field, flen, &ix);
    if (rc)
        return rc;
    rc = shoal__stxn_qix_truncate(t, ix);
    if (rc)
        return rc;
    uint8_t k[SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_FIELD];
    size_t n = pair_key(k, coll, clen, SHOAL_MAX_COLLECTION, field, flen, SHOAL_MAX_FIELD);
    return shoal__st_del(t, T_QIXREG, k, n);
}

typedef struct reg_scan {
    shoal__qix_fn cb;
    void *arg;
    shoal__stxn *t;
} reg_scan;

static int
reg_cb(const uint8_t *coll, size_t clen, const uint8_t *field, size_t flen, const MDB_val *v,
       void *arg)
{
    reg_scan *rs = arg;
    if (v->mv_size != 4)
        return shoal__st_corrupt(rs->t, "malformed index registry entry");
    return rs->cb(coll, clen, field, flen, shoal__be32_get(v->mv_data), rs->arg);
}

int
shoal__stxn_qix_list(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__qix_fn cb, void *arg)
{
    reg_scan rs = { cb, arg, t };
    return pair_scan(t, T_QIXREG, coll, clen, "malformed index registry entry", reg_cb, &rs);
}

/* ---------------------------------------------------------------- entries */

static size_t
ent_key(uint8_t k[IXKEY_MAX], uint32_t ix, const uint8_t *key, size_t klen, const uint8_t *id,
        size_t idlen)
{
    if (klen == 0 || klen > SHOAL__QKEY_MAX || !name_ok(id, idlen, SHOAL_MAX_DOC_ID))
        return 0;
    shoal__be32_put(k, ix);
    memcpy(k + 4, key, klen);
    memcpy(k + 4 + klen, id, idlen);
    return 4 + klen + idlen;
}

int
shoal__stxn_qix_put(shoal__stxn *t, uint32_t ix, const uint8_t *key, size_t klen, const uint8_t *id,
                    size_t idlen)
{
    uint8_t k[IXKEY_MAX];
    size_t n = ent_key(k, ix, key, klen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    uint8_t v[2];
    shoal__be16_put(v, (uint16_t)klen);
    return shoal__st_put(t, T_QINDEX, k, n, v, 2, 0);
}

int
shoal__stxn_qix_del(shoal__stxn *t, uint32_t ix, const uint8_t *key, size_t klen, const uint8_t *id,
                    size_t idlen)
{
    uint8_t k[IXKEY_MAX];
    size_t n = ent_key(k, ix, key, klen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    int rc = shoal__st_del(t, T_QINDEX, k, n);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

static int
bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

int
shoal__stxn_qix_scan(shoal__stxn *t, uint32_t ix, const uint8_t *lo, size_t lolen,
                     const uint8_t *hi, size_t hilen, shoal__qent_fn cb, void *arg)
{
    uint8_t start[4 + SHOAL__QKEY_MAX];
    if (lo && lolen > SHOAL__QKEY_MAX)
        return SHOAL_EINVAL;
    shoal__be32_put(start, ix);
    size_t sl = 4;
    if (lo) {
        memcpy(start + 4, lo, lolen);
        sl += lolen;
    }
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_QINDEX, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, start, sl, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size < 4 || memcmp(kp, start, 4) != 0)
            break;
        if (v.mv_size != 2) {
            rc = shoal__st_corrupt(t, "index entry of the wrong size");
            break;
        }
        size_t kl = shoal__be16_get(v.mv_data);
        if (kl == 0 || 4 + kl >= k.mv_size) {
            rc = shoal__st_corrupt(t, "index entry with a malformed key");
            break;
        }
        if (hi && bytes_cmp(kp + 4, kl, hi, hilen) > 0)
            break;
        int r = cb(kp + 4, kl, kp + 4 + kl, k.mv_size - 4 - kl, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_unsealed_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES],
                         const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq)
{
    uint8_t v[SHOAL_KEY_BYTES + 8];
    memcpy(v, author, SHOAL_KEY_BYTES);
    shoal__be64_put(v + SHOAL_KEY_BYTES, seq);
    return shoal__st_put(t, T_UNSEALED, cid, SHOAL__ID_BYTES, v, sizeof v, 0);
}

int
shoal__stxn_unsealed_del(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    int err = shoal__st_del(t, T_UNSEALED, cid, SHOAL__ID_BYTES);
    return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
}

int
shoal__stxn_unsealed_scan(shoal__stxn *t, shoal__unsealed_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_UNSEALED, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (v.mv_size != SHOAL_KEY_BYTES + 8) {
            rc = shoal__st_corrupt(t, "unsealed");
            break;
        }
        const uint8_t *p = v.mv_data;
        if (k.mv_size != SHOAL__ID_BYTES) {
            rc = shoal__st_corrupt(t, "unsealed");
            break;
        }
        int r = cb(k.mv_data, p, shoal__be64_get(p + SHOAL_KEY_BYTES), arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_seal_drop(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    return prefix_del(t, T_SEALS, cid, SHOAL__ID_BYTES);
}

uint64_t
shoal__stxn_seal_count(shoal__stxn *t)
{
    return shoal__st_count(t, T_SEALS);
}
