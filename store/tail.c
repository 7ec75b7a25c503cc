/*
 * store/tail.c - the log tail: log entries not yet in the changes and authseq
 * indexes, held in memory per transaction with maps by change id and by
 * author, cached between transactions (store_int.h, docs/storage.md), and
 * moved into the indexes in one batch.
 */
#include "store_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

bool
shoal__st_ent_parse(const uint8_t *p, size_t n, log_ent *e)
{
    memset(e, 0, sizeof *e);
    if (n < LOG_HDR)
        return false;
    uint64_t l = shoal__be64_get(p + LOG_LINK);
    size_t off = LOG_HDR;
    e->link = l & ~(LINK_META | LINK_DEAD);
    e->dead = (l & LINK_DEAD) != 0;
    if (l & LINK_META) {
        if (n - off < 2)
            return false;
        size_t kl = shoal__be16_get(p + off);
        off += 2;
        if (kl == 0 || kl > SHOAL__DOCKEY_MAX || n - off < kl + 4)
            return false;
        e->key = p + off;
        e->klen = kl;
        off += kl;
        size_t ml = shoal__be32_get(p + off);
        off += 4;
        if (n - off < ml)
            return false;
        e->meta = p + off;
        e->mlen = ml;
        off += ml;
    }
    e->env = p + off;
    e->elen = n - off;
    return true;
}

static void
tail_drop_metas(shoal__stxn *t)
{
    for (size_t i = 0; i < t->ntail; i++) {
        shoal__free(t->tail[i].own);
        t->tail[i].own = NULL;
        t->tail[i].dk = NULL;
    }
}

void
shoal__st_tail_free(shoal__stxn *t)
{
    tail_drop_metas(t);
    shoal__free(t->tail);
    shoal__map_clear(&t->bycid, NULL);
    shoal__map_clear(&t->byauthor, NULL);
    t->tail = NULL;
    t->ntail = t->captail = 0;
    t->tail_ok = false;
    t->borrows = false;
}

static void
hash_add(shoal__stxn *t, size_t i)
{
    tail_ent *e = &t->tail[i];
    if (e->dead)
        return;
    /* Room was reserved (hash_rebuild): these puts never fail. */
    (void)shoal__map_put(&t->bycid, e->cid, SHOAL__ID_BYTES, e);
    const tail_ent *o = shoal__map_get(&t->byauthor, e->author, SHOAL_KEY_BYTES);
    if (!o || e->seq > o->seq)
        (void)shoal__map_put(&t->byauthor, e->author, SHOAL_KEY_BYTES, e);
}

/* Size the maps for captail entries and fill them from the tail (after
 * the tail array moved, too: the maps point into it).  On failure the
 * tail is dropped whole (the next lookup reloads it from the map). */
static int
hash_rebuild(shoal__stxn *t)
{
    if (!t->bycid.s)
        shoal__map_init_borrow(&t->bycid);
    if (!t->byauthor.s)
        shoal__map_init_borrow(&t->byauthor);
    shoal__map_reset(&t->bycid);
    shoal__map_reset(&t->byauthor);
    if (shoal__map_reserve(&t->bycid, t->captail) != SHOAL_OK ||
        shoal__map_reserve(&t->byauthor, t->captail) != SHOAL_OK) {
        shoal__st_tail_free(t);
        return SHOAL_ENOMEM;
    }
    for (size_t i = 0; i < t->ntail; i++)
        hash_add(t, i);
    return SHOAL_OK;
}

/* The key of the snapshot t reads, for the tail cache: the LMDB txn id of
 * a committed snapshot (a write txn's id is one past the one it read),
 * shifted to leave room for a batch's commit count; a child of an open
 * batch carries its own (batch.c). */
uint64_t
shoal__st_snap_id(const shoal__stxn *t)
{
    if (t->key)
        return t->key;
    return ((uint64_t)mdb_txn_id(t->txn) - (t->write ? 1 : 0)) << BATCH_GEN_BITS;
}

static void
set_take(shoal__stxn *t, tail_set *c)
{
    t->ixnext = c->ixnext;
    t->lognext = c->lognext;
    t->tail = c->tail;
    t->ntail = c->ntail;
    t->captail = c->captail;
    t->bycid = c->bycid;
    t->byauthor = c->byauthor;
    memset(c, 0, sizeof *c);
}

static void
set_clear(tail_set *c)
{
    for (size_t i = 0; i < c->ntail; i++)
        shoal__free(c->tail[i].own);
    shoal__free(c->tail);
    shoal__map_clear(&c->bycid, NULL);
    shoal__map_clear(&c->byauthor, NULL);
    memset(c, 0, sizeof *c);
}

void
shoal__st_set_free(tail_set *c)
{
    if (!c)
        return;
    set_clear(c);
    shoal__free(c);
}

/* Take the store's cached tail if it describes t's snapshot. */
static bool
tail_cache_take(shoal__stxn *t)
{
    shoal__store *s = t->s;
    bool ok = false;
    pthread_mutex_lock(&s->tc_mu);
    if (s->tc_ok && s->tc_txnid == shoal__st_snap_id(t)) {
        set_take(t, s->tc);
        s->tc_ok = false;
        ok = true;
    }
    pthread_mutex_unlock(&s->tc_mu);
    return ok;
}

/* Before t ends (its pages still mapped): give every entry its own copy
 * of the meta it borrows from the map.  False if out of memory. */
bool
shoal__st_tail_own(shoal__stxn *t)
{
    if (!t->borrows) /* a cached tail, and what change_put adds, own theirs */
        return true;
    for (size_t i = 0; i < t->ntail; i++) {
        tail_ent *e = &t->tail[i];
        if (e->dk && !e->own &&
            shoal__st_tail_set_meta(e, e->dk, e->klen, e->dmeta, e->mlen) != SHOAL_OK)
            return false;
    }
    t->borrows = false;
    return true;
}

/* Hand t's tail (owned: tail_own) to the store's cache as the tail of
 * snapshot id, unless the cache already holds a newer one; t's tail is
 * empty afterwards. */
void
shoal__st_tail_cache_put(shoal__stxn *t, uint64_t id)
{
    shoal__store *s = t->s;
    pthread_mutex_lock(&s->tc_mu);
    if (!s->tc_ok || id > s->tc_txnid) {
        if (!s->tc)
            s->tc = shoal__calloc(1, sizeof *s->tc);
        else
            set_clear(s->tc);
        if (s->tc) {
            tail_set *c = s->tc;
            c->ixnext = t->ixnext;
            c->lognext = t->lognext;
            c->tail = t->tail;
            c->ntail = t->ntail;
            c->captail = t->captail;
            c->bycid = t->bycid;
            c->byauthor = t->byauthor;
            t->tail = NULL;
            memset(&t->bycid, 0, sizeof t->bycid);
            memset(&t->byauthor, 0, sizeof t->byauthor);
            t->ntail = t->captail = 0;
            s->tc_ok = true;
            s->tc_txnid = id;
        }
    }
    pthread_mutex_unlock(&s->tc_mu);
    shoal__st_tail_free(t);
}

/* Give e a copy of key and meta. */
int
shoal__st_tail_set_meta(tail_ent *e, const uint8_t *key, size_t klen, const uint8_t *meta,
                        size_t mlen)
{
    uint8_t *b = shoal__malloc(klen + mlen + 1);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, key, klen);
    if (mlen)
        memcpy(b + klen, meta, mlen);
    shoal__free(e->own);
    e->own = b;
    e->dk = b;
    e->dmeta = b + klen;
    e->klen = klen;
    e->mlen = mlen;
    return SHOAL_OK;
}

/* The newest tail entry carrying a meta for document key k, or NULL. */
const tail_ent *
shoal__st_tail_find_doc(const shoal__stxn *t, const uint8_t *k, size_t klen)
{
    for (size_t i = t->ntail; i > 0; i--) {
        const tail_ent *e = &t->tail[i - 1];
        if (e->dk && e->klen == klen && memcmp(e->dk, k, klen) == 0)
            return e;
    }
    return NULL;
}

int
shoal__st_tail_push(shoal__stxn *t, uint64_t pos, const uint8_t *hdr, const log_ent *le)
{
    if (t->ntail == t->captail) {
        size_t cap = t->captail ? t->captail * 2 : TAIL_MAX;
        if (cap > UINT32_MAX - 1)
            return SHOAL_ENOMEM;
        tail_ent *p = shoal__realloc(t->tail, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        t->tail = p;
        t->captail = cap;
        int rc = hash_rebuild(t);
        if (rc)
            return rc;
    }
    tail_ent *e = &t->tail[t->ntail++];
    e->pos = pos;
    memcpy(e->cid, hdr, SHOAL__ID_BYTES);
    memcpy(e->author, hdr + LOG_AUTHOR, SHOAL_KEY_BYTES);
    e->seq = shoal__be64_get(hdr + LOG_SEQ);
    e->own = NULL;
    e->dk = le ? le->key : NULL; /* borrowed from the map (see tail_ent) */
    e->dmeta = le ? le->meta : NULL;
    e->klen = le ? le->klen : 0;
    e->mlen = le ? le->mlen : 0;
    e->dead = le ? le->dead : false;
    if (e->dk)
        t->borrows = true;
    hash_add(t, t->ntail - 1);
    return SHOAL_OK;
}

/* Load ixnext, lognext (the greater of the last key + 1 and meta
 * "lognext", evict.c) and the tail (once per txn). */
int
shoal__st_tail_load(shoal__stxn *t)
{
    if (t->tail_ok)
        return SHOAL_OK;
    if (tail_cache_take(t)) {
        t->tail_ok = true;
        return SHOAL_OK;
    }
    shoal__sval v = { NULL, 0 };
    uint64_t ix = 1;
    int rc = shoal__st_get(t, T_META, "ixnext", 6, &v);
    if (rc == SHOAL_OK) {
        if (v.len != 8)
            return shoal__st_corrupt(t, "meta ixnext is not 8 bytes");
        ix = shoal__be64_get(v.p);
    } else if (rc != SHOAL_ENOTFOUND) {
        return rc;
    }
    MDB_cursor *c;
    rc = shoal__st_cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    MDB_val k, val;
    uint64_t last = 0;
    rc = shoal__st_cur_get(t, c, &k, &val, MDB_LAST);
    if (rc == SHOAL_OK) {
        if (k.mv_size != 8)
            rc = shoal__st_corrupt(t, "malformed log key");
        else
            last = shoal__be64_get(k.mv_data);
    } else if (rc == SHOAL_ENOTFOUND) {
        rc = SHOAL_OK;
    }
    /* The next position: past the last entry, and past every position a
     * drop (evict.c) handed out before, so none is ever reused. */
    uint64_t next = last + 1, floor = 0;
    if (!rc)
        rc = shoal__st_lognext_get(t, &floor);
    if (floor > next)
        next = floor;
    if (!rc && (ix == 0 || ix > next))
        rc = shoal__st_corrupt(t, "meta ixnext is past the log");
    /* A drop indexes the whole tail, and appends go on from the floor:
     * while the floor is past the last entry, nothing is unindexed. */
    if (!rc && floor > last + 1 && ix != floor)
        rc = shoal__st_corrupt(t, "meta lognext is past an unindexed log entry");
    shoal__st_tail_free(t);
    if (!rc && ix <= last) {
        uint8_t start[8];
        shoal__be64_put(start, ix);
        for (rc = shoal__st_cur_first(t, c, start, 8, &k, &val); rc == SHOAL_OK;
             rc = shoal__st_cur_get(t, c, &k, &val, MDB_NEXT)) {
            log_ent le;
            if (k.mv_size != 8 || !shoal__st_ent_parse(val.mv_data, val.mv_size, &le)) {
                rc = shoal__st_corrupt(t, "malformed log entry");
                break;
            }
            /* Positions are handed out one by one, so the tail holds
             * ix, ix + 1, ... last: its entry i is position ix + i, which
             * doc_put relies on to index it.  A gap is damage. */
            if (shoal__be64_get(k.mv_data) != ix + t->ntail) {
                rc = shoal__st_corrupt(t, "log positions of the tail are not consecutive");
                break;
            }
            rc = shoal__st_tail_push(t, shoal__be64_get(k.mv_data), val.mv_data, &le);
            if (rc)
                break;
        }
        if (rc == SHOAL_ENOTFOUND)
            rc = SHOAL_OK;
    }
    mdb_cursor_close(c);
    if (rc)
        return rc;
    t->ixnext = ix;
    t->lognext = next;
    t->tail_ok = true;
    return SHOAL_OK;
}

const tail_ent *
shoal__st_tail_find_cid(const shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    return shoal__map_get(&t->bycid, cid, SHOAL__ID_BYTES);
}

/* The live tail entry of author with the greatest seq, or NULL. */
const tail_ent *
shoal__st_tail_find_author(const shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES])
{
    return shoal__map_get(&t->byauthor, author, SHOAL_KEY_BYTES);
}

/* Put the newest meta of each document the tail carries into docs (going
 * from the newest entry down, a document seen already is skipped): one put
 * per document instead of one per entry. */
static int
docs_flush(shoal__stxn *t)
{
    shoal__map seen;
    shoal__map_init_borrow(&seen);
    int rc = SHOAL_OK;
    for (size_t i = t->ntail; !rc && i > 0; i--) {
        const tail_ent *e = &t->tail[i - 1];
        if (e->dead || !e->dk) /* a superseded entry's meta is stale */
            continue;
        if (!seen.s && shoal__map_reserve(&seen, t->ntail) != SHOAL_OK)
            return SHOAL_ENOMEM;
        if (shoal__map_get(&seen, e->dk, e->klen))
            continue;
        (void)shoal__map_put(&seen, e->dk, e->klen, (void *)(uintptr_t)e); /* reserved */
        rc = shoal__st_put(t, T_DOCS, e->dk, e->klen, e->dmeta, e->mlen, 0);
    }
    shoal__map_clear(&seen, NULL);
    return rc;
}

/* Move the whole tail into the indexes. */
int
shoal__st_tail_flush(shoal__stxn *t)
{
    for (size_t i = 0; i < t->ntail; i++) {
        const tail_ent *e = &t->tail[i];
        uint8_t pb[8], k[SHOAL__SEQKEY_BYTES];
        if (e->dead) { /* superseded: no index entry; a meta it carried is stale */
            continue;
        }
        shoal__be64_put(pb, e->pos);
        MDB_val key = mval(e->cid, SHOAL__ID_BYTES), val = mval(pb, 8);
        int mrc = mdb_put(t->txn, t->s->dbi[T_CHANGES], &key, &val, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) {
            t->err = MDB_CORRUPTED;
            return shoal__st_corrupt(t, "a change is in the log twice");
        }
        if (mrc)
            return shoal__st_tfail(t, "mdb_put changes", mrc);
        t->wrote = true;
        shoal__seqkey(k, e->author, e->seq);
        int rc = shoal__st_put(t, T_AUTHSEQ, k, SHOAL__SEQKEY_BYTES, e->cid, SHOAL__ID_BYTES, 0);
        if (rc)
            return rc;
    }
    int rc = docs_flush(t);
    if (rc)
        return rc;
    uint8_t nb[8];
    shoal__be64_put(nb, t->lognext);
    rc = shoal__st_put(t, T_META, "ixnext", 6, nb, 8, 0);
    if (rc)
        return rc;
    t->ixnext = t->lognext;
    tail_drop_metas(t);
    t->ntail = 0;
    return hash_rebuild(t);
}
