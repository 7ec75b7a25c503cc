/*
 * store/vv.c - the version vector.
 *
 * The version vector is not stored: an author's entry is the last authseq
 * key with its prefix, or a later one in the log tail.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* The last indexed (seq, cid) of author via cursor c; SHOAL_ENOTFOUND if
 * the index has none. */
static int
index_last(shoal__stxn *t, MDB_cursor *c, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *seq,
           uint8_t cid[SHOAL__ID_BYTES])
{
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, author, UINT64_MAX);
    MDB_val key = mval(k, SHOAL__SEQKEY_BYTES), v;
    int rc = shoal__st_cur_get(t, c, &key, &v, MDB_SET_RANGE);
    if (rc == SHOAL_OK &&
        !(key.mv_size == SHOAL__SEQKEY_BYTES && memcmp(key.mv_data, author, SHOAL_KEY_BYTES) == 0))
        rc = shoal__st_cur_get(t, c, &key, &v, MDB_PREV);
    else if (rc == SHOAL_ENOTFOUND)
        rc = shoal__st_cur_get(t, c, &key, &v, MDB_LAST);
    if (rc)
        return rc;
    if (key.mv_size != SHOAL__SEQKEY_BYTES || v.mv_size != SHOAL__ID_BYTES)
        return shoal__st_corrupt(t, "malformed authseq entry");
    if (memcmp(key.mv_data, author, SHOAL_KEY_BYTES) != 0)
        return SHOAL_ENOTFOUND;
    *seq = shoal__be64_get((const uint8_t *)key.mv_data + SHOAL_KEY_BYTES);
    memcpy(cid, v.mv_data, SHOAL__ID_BYTES);
    return SHOAL_OK;
}

int
shoal__stxn_vv_get(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *seq,
                   uint8_t cid[SHOAL__ID_BYTES])
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_AUTHSEQ, &c);
    if (rc)
        return rc;
    uint64_t s = 0;
    uint8_t id[SHOAL__ID_BYTES];
    rc = index_last(t, c, author, &s, id);
    mdb_cursor_close(c);
    if (rc && rc != SHOAL_ENOTFOUND)
        return rc;
    bool found = rc == SHOAL_OK;
    rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    const tail_ent *e = shoal__st_tail_find_author(t, author);
    if (e && (!found || e->seq > s)) {
        s = e->seq;
        memcpy(id, e->cid, SHOAL__ID_BYTES);
        found = true;
    }
    if (!found)
        return SHOAL_ENOTFOUND;
    if (seq)
        *seq = s;
    if (cid)
        memcpy(cid, id, SHOAL__ID_BYTES);
    return SHOAL_OK;
}

typedef struct vv_ent {
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
    uint8_t cid[SHOAL__ID_BYTES];
} vv_ent;

static int
vv_ent_cmp(const void *a, const void *b)
{
    return memcmp(((const vv_ent *)a)->author, ((const vv_ent *)b)->author, SHOAL_KEY_BYTES);
}

int
shoal__stxn_vv_scan(shoal__stxn *t, shoal__vv_fn cb, void *arg)
{
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    MDB_cursor *c;
    rc = shoal__st_cur_open(t, T_AUTHSEQ, &c);
    if (rc)
        return rc;
    vv_ent *e = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    /* One hop per author: its first key, then its last (index_last). */
    for (rc = shoal__st_cur_get(t, c, &k, &v, MDB_FIRST); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SHOAL__SEQKEY_BYTES) {
            rc = shoal__st_corrupt(t, "malformed authseq entry");
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            vv_ent *p = shoal__realloc(e, cap * sizeof *p);
            if (!p) {
                rc = SHOAL_ENOMEM;
                break;
            }
            e = p;
        }
        memcpy(e[n].author, k.mv_data, SHOAL_KEY_BYTES);
        rc = index_last(t, c, e[n].author, &e[n].seq, e[n].cid);
        if (rc)
            break;
        n++;
    }
    mdb_cursor_close(c);
    if (rc == SHOAL_ENOTFOUND)
        rc = SHOAL_OK;
    /* The tail: later seqs of known authors, and new authors. */
    size_t nidx = n;
    for (size_t i = 0; !rc && i < t->ntail; i++) {
        const tail_ent *te = &t->tail[i];
        if (te->dead)
            continue;
        vv_ent key;
        memcpy(key.author, te->author, SHOAL_KEY_BYTES);
        vv_ent *hit = nidx ? bsearch(&key, e, nidx, sizeof *e, vv_ent_cmp) : NULL;
        for (size_t j = nidx; !hit && j < n; j++)
            if (memcmp(e[j].author, te->author, SHOAL_KEY_BYTES) == 0)
                hit = &e[j];
        if (hit) {
            if (te->seq > hit->seq) {
                hit->seq = te->seq;
                memcpy(hit->cid, te->cid, SHOAL__ID_BYTES);
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            vv_ent *p = shoal__realloc(e, cap * sizeof *p);
            if (!p) {
                rc = SHOAL_ENOMEM;
                break;
            }
            e = p;
        }
        memcpy(e[n].author, te->author, SHOAL_KEY_BYTES);
        e[n].seq = te->seq;
        memcpy(e[n].cid, te->cid, SHOAL__ID_BYTES);
        n++;
    }
    if (!rc && n > nidx)
        qsort(e, n, sizeof *e, vv_ent_cmp);
    for (size_t i = 0; !rc && i < n; i++) {
        int r = cb(e[i].author, e[i].seq, e[i].cid, arg);
        if (r)
            rc = r;
    }
    shoal__free(e);
    return rc;
}
