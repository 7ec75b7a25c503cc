/*
 * test/support/replica.c - replica helpers the core tests share.
 */
#include "replica.h"

#include <sodium.h>
#include <string.h>

shoal_replica *
check_replica_open(const char *dir, uint64_t (*now_ms)(void *ctx), void *ctx)
{
    shoal_options *o;
    if (shoal_options_new(&o) != SHOAL_OK)
        return NULL;
    shoal_options_set_durable(o, false);
    if (now_ms)
        shoal_options_set_clock(o, now_ms, ctx);
    shoal_replica *r = NULL;
    if (shoal_replica_open(&r, dir, o) != SHOAL_OK)
        r = NULL;
    shoal_options_free(o);
    return r;
}

bool
check_snap_take(shoal_replica *r, check_snap *s)
{
    memset(s, 0, sizeof *s);
    shoal_vv *vv;
    if (shoal_digest(r, false, s->vis) || shoal_digest(r, true, s->full) ||
        shoal_pending_count(r, &s->pending) || shoal_replica_version(r, &vv))
        return false;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof s->vvsum);
    for (size_t i = 0; i < shoal_vv_count(vv); i++) {
        const uint8_t *a;
        uint64_t seq;
        shoal_vv_entry(vv, i, &a, &seq);
        crypto_generichash_update(&st, a, SHOAL_KEY_BYTES);
        crypto_generichash_update(&st, (const uint8_t *)&seq, sizeof seq);
    }
    crypto_generichash_final(&st, s->vvsum, sizeof s->vvsum);
    shoal_vv_free(vv);
    return true;
}

bool
check_snap_same(const check_snap *a, const check_snap *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

shoal_err
check_set_str(shoal_replica *r, const char *coll, const char *id, const char *f, const char *s)
{
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = strlen(s) };
    err = shoal_txn_set(t, coll, id, f, &v);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

bool
check_has_str(shoal_replica *r, const char *coll, const char *id, const char *f, const char *want)
{
    shoal_doc *d;
    if (shoal_doc_get(r, coll, id, &d) != SHOAL_OK)
        return false;
    size_t i;
    shoal_value v;
    bool ok = shoal_doc_field_find(d, f, &i) == SHOAL_OK &&
              shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_STR &&
              v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
    shoal_doc_free(d);
    return ok;
}

shoal_err
check_push(shoal_replica *from, shoal_replica *to, shoal_import_result *res)
{
    uint8_t *b;
    size_t n;
    shoal_err err = shoal_export(from, NULL, &b, &n);
    if (err)
        return err;
    err = shoal_import(to, b, n, res);
    shoal_free(b);
    return err;
}
