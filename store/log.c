/*
 * store/log.c - the log and its two indexes.
 *
 * The log holds every applied change in apply order: position (u64 BE) ->
 * cid | author | seq (u64 BE) | link (u64 BE) | envelope.  Two indexes point into it:
 * changes (cid -> position) and authseq (author | seq -> cid).  A commit
 * appends to the log only; the indexes take the entries from meta
 * "ixnext" on (the tail) once there are TAIL_MAX of them, in one batch.
 * Every lookup consults the index and the tail (held in memory per txn,
 * at most TAIL_MAX entries), so the split is invisible to callers.  A
 * local commit thus writes the log's last leaf instead of a random leaf
 * of changes and the last one of authseq.
 */
#include "store_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

int
shoal__stxn_log_get(shoal__stxn *t, uint64_t pos, shoal__sval *env, uint64_t *link)
{
    return shoal__stxn_log_entry(t, pos, env, link, NULL, NULL);
}

int
shoal__stxn_log_entry(shoal__stxn *t, uint64_t pos, shoal__sval *env, uint64_t *link, bool *dead,
                      uint8_t cid[SHOAL__ID_BYTES])
{
    uint8_t k[8];
    shoal__be64_put(k, pos);
    shoal__sval v = { NULL, 0 };
    int rc = shoal__st_get(t, T_LOG, k, 8, &v);
    if (rc)
        return rc;
    log_ent le;
    if (!shoal__st_ent_parse(v.p, v.len, &le))
        return shoal__st_corrupt(t, "malformed log entry");
    if (env) {
        env->p = le.env;
        env->len = le.elen;
    }
    if (link)
        *link = le.link;
    if (dead)
        *dead = le.dead;
    if (cid)
        memcpy(cid, v.p, SHOAL__ID_BYTES);
    return SHOAL_OK;
}

int
shoal__stxn_log_last(shoal__stxn *t, uint64_t *pos, shoal__sval *env)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = shoal__st_cur_get(t, c, &k, &v, MDB_LAST);
    log_ent le;
    if (rc == SHOAL_OK && (k.mv_size != 8 || !shoal__st_ent_parse(v.mv_data, v.mv_size, &le)))
        rc = shoal__st_corrupt(t, "malformed log entry");
    if (rc == SHOAL_OK) {
        if (pos)
            *pos = shoal__be64_get(k.mv_data);
        if (env) {
            env->p = le.env;
            env->len = le.elen;
        }
    }
    mdb_cursor_close(c);
    return rc;
}

/* Log position of cid: SHOAL_OK, SHOAL_ENOTFOUND or an error. */
static int
change_pos(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint64_t *pos)
{
    if (t->miss_ok && memcmp(t->miss, cid, SHOAL__ID_BYTES) == 0)
        return SHOAL_ENOTFOUND;
    /* The tail first (a hash probe; dependencies are mostly recent): a
     * live id is in the tail or the index, never both. */
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    const tail_ent *e = shoal__st_tail_find_cid(t, cid);
    if (e) {
        *pos = e->pos;
        return SHOAL_OK;
    }
    shoal__sval v = { NULL, 0 };
    rc = shoal__st_get(t, T_CHANGES, cid, SHOAL__ID_BYTES, &v);
    if (rc == SHOAL_OK) {
        if (v.len != 8)
            return shoal__st_corrupt(t, "changes value is not 8 bytes");
        *pos = shoal__be64_get(v.p);
        return SHOAL_OK;
    }
    if (rc == SHOAL_ENOTFOUND) {
        memcpy(t->miss, cid, SHOAL__ID_BYTES);
        t->miss_ok = true;
    }
    return rc;
}

int
shoal__stxn_change_get(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], shoal__sval *env)
{
    uint64_t pos = 0;
    int rc = change_pos(t, cid, &pos);
    if (rc)
        return rc;
    rc = shoal__stxn_log_get(t, pos, env, NULL);
    if (rc == SHOAL_ENOTFOUND) {
        snprintf(t->s->errmsg, sizeof t->s->errmsg,
                 "change index names missing log "
                 "position %llu",
                 (unsigned long long)pos);
        rc = SHOAL_ECORRUPT;
    }
    return rc;
}

bool
shoal__stxn_change_has(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    uint64_t pos = 0;
    return change_pos(t, cid, &pos) == SHOAL_OK;
}

/* Refuses (SHOAL_EINVAL) a change id that is already stored: a second log
 * entry for one change would break "the log holds each change once". */
int
shoal__stxn_change_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                       size_t len, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                       uint64_t link, uint64_t *pos)
{
    assert(t->write);
    uint64_t old = 0;
    int rc = change_pos(t, cid, &old);
    if (rc == SHOAL_OK) {
        snprintf(t->s->errmsg, sizeof t->s->errmsg, "change already stored");
        return SHOAL_EINVAL;
    }
    if (rc != SHOAL_ENOTFOUND)
        return rc;
    t->miss_ok = false;
    rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    if (len > SIZE_MAX - LOG_HDR)
        return SHOAL_ETOOBIG;
    if (link & LINK_META)
        return SHOAL_EINVAL;
    uint64_t next = t->lognext;
    uint8_t pk[8];
    shoal__be64_put(pk, next);
    MDB_val key = mval(pk, 8), val = mval(NULL, LOG_HDR + len);
    /* MDB_APPEND refuses a key that is not past the last one; lognext came
     * from the last key, so that would mean a damaged tree. */
    int mrc = mdb_put(t->txn, t->s->dbi[T_LOG], &key, &val, MDB_APPEND | MDB_RESERVE);
    if (mrc == MDB_KEYEXIST) {
        t->err = MDB_CORRUPTED;
        return shoal__st_corrupt(t, "log position is not past the log");
    }
    if (mrc)
        return shoal__st_tfail(t, "mdb_put log", mrc);
    t->wrote = true;
    uint8_t *p = val.mv_data;
    memcpy(p, cid, SHOAL__ID_BYTES);
    memcpy(p + LOG_AUTHOR, author, SHOAL_KEY_BYTES);
    shoal__be64_put(p + LOG_SEQ, seq);
    shoal__be64_put(p + LOG_LINK, link);
    if (len)
        memcpy(p + LOG_HDR, env, len);
    rc = shoal__st_tail_push(t, next, p, NULL);
    if (rc)
        return rc;
    t->lognext = next + 1;
    if (t->ntail >= TAIL_MAX) {
        rc = shoal__st_tail_flush(t);
        if (rc)
            return rc;
    }
    if (pos)
        *pos = next;
    return SHOAL_OK;
}

int
shoal__stxn_authseq_get(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                        uint8_t cid[SHOAL__ID_BYTES])
{
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, author, seq);
    shoal__sval v = { NULL, 0 };
    int rc = shoal__st_get(t, T_AUTHSEQ, k, SHOAL__SEQKEY_BYTES, &v);
    if (rc == SHOAL_OK) {
        if (v.len != SHOAL__ID_BYTES)
            return shoal__st_corrupt(t, "authseq value is not 32 bytes");
        memcpy(cid, v.p, SHOAL__ID_BYTES);
        return SHOAL_OK;
    }
    if (rc != SHOAL_ENOTFOUND)
        return rc;
    rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    for (size_t i = 0; i < t->ntail; i++) {
        const tail_ent *e = &t->tail[i];
        if (!e->dead && e->seq == seq && memcmp(e->author, author, SHOAL_KEY_BYTES) == 0) {
            memcpy(cid, e->cid, SHOAL__ID_BYTES);
            return SHOAL_OK;
        }
    }
    return SHOAL_ENOTFOUND;
}

/* Index the whole tail now (whatever its length). */
int
shoal__stxn_index_flush(shoal__stxn *t)
{
    assert(t->write);
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    return t->ntail ? shoal__st_tail_flush(t) : SHOAL_OK;
}

/* The tail is indexed first, so the entry is below ixnext from then on:
 * no later tail read meets it, and the metas it may carry are already in
 * docs.  Its flag is still what every reader of the log checks. */
int
shoal__stxn_change_supersede(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint64_t *pos)
{
    assert(t->write);
    int rc = shoal__stxn_index_flush(t);
    if (rc)
        return rc;
    uint64_t p = 0;
    rc = change_pos(t, cid, &p);
    if (rc)
        return rc;
    uint8_t pk[8];
    shoal__be64_put(pk, p);
    shoal__sval v = { NULL, 0 };
    rc = shoal__st_get(t, T_LOG, pk, 8, &v);
    if (rc)
        return rc == SHOAL_ENOTFOUND ? shoal__st_corrupt(t, "change index names a missing entry")
                                     : rc;
    log_ent le;
    if (!shoal__st_ent_parse(v.p, v.len, &le) || memcmp(v.p, cid, SHOAL__ID_BYTES) != 0)
        return shoal__st_corrupt(t, "malformed log entry");
    uint8_t *b = shoal__malloc(v.len);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, v.len);
    shoal__be64_put(b + LOG_LINK, shoal__be64_get(b + LOG_LINK) | LINK_DEAD);
    uint8_t author[SHOAL_KEY_BYTES];
    memcpy(author, b + LOG_AUTHOR, SHOAL_KEY_BYTES);
    uint64_t seq = shoal__be64_get(b + LOG_SEQ);
    rc = shoal__st_put(t, T_LOG, pk, 8, b, v.len, 0);
    shoal__free(b);
    if (!rc) {
        rc = shoal__st_del(t, T_CHANGES, cid, SHOAL__ID_BYTES);
    }
    if (!rc) {
        uint8_t k[SHOAL__SEQKEY_BYTES], cur[SHOAL__ID_BYTES];
        shoal__seqkey(k, author, seq);
        shoal__sval a = { NULL, 0 };
        rc = shoal__st_get(t, T_AUTHSEQ, k, SHOAL__SEQKEY_BYTES, &a);
        if (rc == SHOAL_OK) {
            if (a.len == SHOAL__ID_BYTES)
                memcpy(cur, a.p, SHOAL__ID_BYTES);
            rc = a.len == SHOAL__ID_BYTES && memcmp(cur, cid, SHOAL__ID_BYTES) == 0
                     ? shoal__st_del(t, T_AUTHSEQ, k, SHOAL__SEQKEY_BYTES)
                     : SHOAL_OK;
        } else if (rc == SHOAL_ENOTFOUND) {
            rc = SHOAL_OK;
        }
    }
    if (!rc && pos)
        *pos = p;
    return rc;
}

int
shoal__stxn_log_scan(shoal__stxn *t, uint64_t from, shoal__log_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    uint8_t start[8];
    shoal__be64_put(start, from);
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, start, 8, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        log_ent le;
        if (k.mv_size != 8 || !shoal__st_ent_parse(v.mv_data, v.mv_size, &le)) {
            rc = shoal__st_corrupt(t, "malformed log entry");
            break;
        }
        if (le.dead)
            continue; /* superseded: not an applied change */
        const uint8_t *p = v.mv_data;
        shoal__sval env = { le.env, le.elen };
        int r = cb(shoal__be64_get(k.mv_data), p, &env, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

uint64_t
shoal__stxn_log_count(shoal__stxn *t)
{
    return shoal__st_count(t, T_LOG);
}

/* ------------------------------------------------ verification (check) */

int
shoal__stxn_log_walk(shoal__stxn *t, shoal__log_rec_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        shoal__log_rec e;
        memset(&e, 0, sizeof e);
        log_ent le;
        if (k.mv_size != 8 || !shoal__st_ent_parse(v.mv_data, v.mv_size, &le)) {
            e.bad = true;
            e.pos = k.mv_size == 8 ? shoal__be64_get(k.mv_data) : 0;
        } else {
            const uint8_t *p = v.mv_data;
            e.pos = shoal__be64_get(k.mv_data);
            e.cid = p;
            e.author = p + LOG_AUTHOR;
            e.seq = shoal__be64_get(p + LOG_SEQ);
            e.link = le.link;
            e.dead = le.dead;
            e.dockey = le.key;
            e.klen = le.klen;
            e.meta.p = le.meta;
            e.meta.len = le.mlen;
            e.env.p = le.env;
            e.env.len = le.elen;
        }
        int r = cb(&e, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_index_next(shoal__stxn *t, uint64_t *ixnext)
{
    int rc = shoal__st_tail_load(t);
    if (!rc)
        *ixnext = t->ixnext;
    return rc;
}

int
shoal__stxn_index_scan(shoal__stxn *t, bool authseq, shoal__ix_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, authseq ? T_AUTHSEQ : T_CHANGES, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        shoal__ix_rec e;
        memset(&e, 0, sizeof e);
        if (authseq && k.mv_size == SHOAL__SEQKEY_BYTES && v.mv_size == SHOAL__ID_BYTES) {
            memcpy(e.author, k.mv_data, SHOAL_KEY_BYTES);
            e.seq = shoal__be64_get((const uint8_t *)k.mv_data + SHOAL_KEY_BYTES);
            memcpy(e.cid, v.mv_data, SHOAL__ID_BYTES);
        } else if (!authseq && k.mv_size == SHOAL__ID_BYTES && v.mv_size == 8) {
            memcpy(e.cid, k.mv_data, SHOAL__ID_BYTES);
            e.pos = shoal__be64_get(v.mv_data);
        } else {
            e.bad = true;
        }
        int r = cb(&e, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}
