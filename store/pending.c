/*
 * store/pending.c - the pending set: verified changes waiting for their dependencies
 * or their time.
 */
#include "store_int.h"

#include <stdio.h>

int
shoal__stxn_pending_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                        size_t len)
{
    return shoal__st_put(t, T_PENDING, cid, SHOAL__ID_BYTES, env, len, 0);
}

bool
shoal__stxn_pending_has(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    return shoal__st_get(t, T_PENDING, cid, SHOAL__ID_BYTES, NULL) == SHOAL_OK;
}

int
shoal__stxn_pending_del(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    return shoal__st_del(t, T_PENDING, cid, SHOAL__ID_BYTES);
}

uint64_t
shoal__stxn_pending_count(shoal__stxn *t)
{
    return shoal__st_count(t, T_PENDING);
}

int
shoal__stxn_pending_scan(shoal__stxn *t, shoal__pending_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_PENDING, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SHOAL__ID_BYTES) {
            snprintf(t->s->errmsg, sizeof t->s->errmsg, "malformed pending key");
            rc = SHOAL_ECORRUPT;
            break;
        }
        shoal__sval env = sval(&v);
        int r = cb(k.mv_data, &env, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}
