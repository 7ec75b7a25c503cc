/*
 * store/evidence.c - equivocation evidence (both signed versions of an (author, seq))
 * and the evcid index of every version seen.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

int
shoal__stxn_evidence_put(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                         const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len)
{
    uint8_t k[EVKEY_BYTES];
    shoal__seqkey(k, author, seq);
    memcpy(k + SHOAL__SEQKEY_BYTES, cid, SHOAL__ID_BYTES);
    int rc = shoal__st_put(t, T_EVIDENCE, k, EVKEY_BYTES, env, len, 0);
    if (!rc)
        rc = shoal__st_put(t, T_EVCID, cid, SHOAL__ID_BYTES, k, SHOAL__SEQKEY_BYTES, 0);
    return rc;
}

int
shoal__stxn_evidence_del(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                         const uint8_t cid[SHOAL__ID_BYTES])
{
    uint8_t k[EVKEY_BYTES];
    shoal__seqkey(k, author, seq);
    memcpy(k + SHOAL__SEQKEY_BYTES, cid, SHOAL__ID_BYTES);
    return shoal__st_del(t, T_EVIDENCE, k, EVKEY_BYTES);
}

int
shoal__stxn_evidence_alias(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                           const uint8_t cid[SHOAL__ID_BYTES])
{
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, author, seq);
    return shoal__st_put(t, T_EVCID, cid, SHOAL__ID_BYTES, k, SHOAL__SEQKEY_BYTES, 0);
}

uint64_t
shoal__stxn_evidence_ids(shoal__stxn *t)
{
    return shoal__st_count(t, T_EVCID);
}

int
shoal__stxn_evidence_find(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES],
                          uint8_t author[SHOAL_KEY_BYTES], uint64_t *seq)
{
    shoal__sval v = { NULL, 0 };
    int rc = shoal__st_get(t, T_EVCID, cid, SHOAL__ID_BYTES, &v);
    if (rc)
        return rc;
    if (v.len != SHOAL__SEQKEY_BYTES)
        return shoal__st_corrupt(t, "malformed evcid entry");
    if (author)
        memcpy(author, v.p, SHOAL_KEY_BYTES);
    if (seq)
        *seq = shoal__be64_get(v.p + SHOAL_KEY_BYTES);
    return SHOAL_OK;
}

int
shoal__stxn_evidence_get(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                         const uint8_t cid[SHOAL__ID_BYTES], shoal__sval *env)
{
    uint8_t k[EVKEY_BYTES];
    shoal__seqkey(k, author, seq);
    memcpy(k + SHOAL__SEQKEY_BYTES, cid, SHOAL__ID_BYTES);
    return shoal__st_get(t, T_EVIDENCE, k, EVKEY_BYTES, env);
}

uint64_t
shoal__stxn_evidence_count(shoal__stxn *t)
{
    return shoal__st_count(t, T_EVIDENCE);
}

int
shoal__stxn_evidence_versions(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                              uint8_t *cids, size_t max, size_t *n)
{
    *n = 0;
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_EVIDENCE, &c);
    if (rc)
        return rc;
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, author, seq);
    MDB_val key, v;
    for (rc = shoal__st_cur_first(t, c, k, SHOAL__SEQKEY_BYTES, &key, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &key, &v, MDB_NEXT)) {
        if (!has_prefix(&key, k, SHOAL__SEQKEY_BYTES))
            break;
        if (key.mv_size != EVKEY_BYTES) {
            rc = shoal__st_corrupt(t, "malformed evidence key");
            break;
        }
        if (*n < max)
            memcpy(cids + *n * SHOAL__ID_BYTES, (const uint8_t *)key.mv_data + SHOAL__SEQKEY_BYTES,
                   SHOAL__ID_BYTES);
        (*n)++;
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_evidence_scan(shoal__stxn *t, shoal__evidence_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_EVIDENCE, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != EVKEY_BYTES) {
            snprintf(t->s->errmsg, sizeof t->s->errmsg, "malformed evidence key");
            rc = SHOAL_ECORRUPT;
            break;
        }
        const uint8_t *p = k.mv_data;
        shoal__sval env = sval(&v);
        int r = cb(p, shoal__be64_get(p + SHOAL_KEY_BYTES), p + SHOAL__SEQKEY_BYTES, &env, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}
