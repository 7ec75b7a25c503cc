/*
 * store/peers.c - per-peer link state (format owned by core/).
 */
#include "store_int.h"

#include <assert.h>

int
shoal__stxn_peer_put(shoal__stxn *t, const uint8_t key[SHOAL_KEY_BYTES], const void *v, size_t n)
{
    assert(t && key && (v || n == 0));
    return shoal__st_put(t, T_PEERS, key, SHOAL_KEY_BYTES, v, n, 0);
}

int
shoal__stxn_peer_del(shoal__stxn *t, const uint8_t key[SHOAL_KEY_BYTES])
{
    assert(t && key);
    int rc = shoal__st_del(t, T_PEERS, key, SHOAL_KEY_BYTES);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_peer_scan(shoal__stxn *t, shoal__peer_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = shoal__st_cur_open(t, T_PEERS, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = shoal__st_cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = shoal__st_cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SHOAL_KEY_BYTES)
            continue; /* not ours to judge: skip, never trust */
        shoal__sval val = sval(&v);
        int r = cb(k.mv_data, &val, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}
