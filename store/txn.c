/*
 * store/txn.c - write and read transactions (map-full retry, sticky errors, the
 * relaxed commit) and generic access to one table.
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* An LMDB call inside a txn failed: remember whether it poisoned the txn. */
int
shoal__st_tfail(shoal__stxn *t, const char *what, int rc)
{
    if (rc == MDB_NOTFOUND)
        return SHOAL_ENOTFOUND;
    if (rc == MDB_MAP_FULL)
        t->map_full = true;
    if (rc != MDB_KEYEXIST && t->err == 0)
        t->err = rc;
    return shoal__st_fail(t->s, what, rc);
}

/* LMDB turns a short pwrite() into EIO, and a write that runs out of space
 * part way through is short, so a full disk often shows up as EIO.  Call it
 * ENOSPC when the file system holding data.mdb has (almost) nothing left;
 * the threshold only has to tell "full" from "plenty left". */
bool
shoal__st_disk_full(shoal__store *s)
{
    int fd;
    struct statvfs sv;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstatvfs(fd, &sv) != 0)
        return false;
    uint64_t blocks = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
    uint64_t slack = (uint64_t)sv.f_blocks * sv.f_frsize / 64; /* small file systems */
    if (slack > DISK_FULL_SLACK)
        slack = DISK_FULL_SLACK;
    return blocks * (uint64_t)sv.f_frsize < slack;
}

/* A top-level commit.  A relaxed one turns MDB_NOMETASYNC on for itself
 * only: LMDB 0.9 reads it from the env flags at commit.  flags_mu keeps a
 * concurrent flush from reading them meanwhile. */
static int
commit_top(shoal__stxn *t)
{
    shoal__store *s = t->s;
    bool relax = s->relaxed && s->durable;
    if (relax) {
        pthread_mutex_lock(&s->flags_mu);
        mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1);
    }
    int mrc = mdb_txn_commit(t->txn);
    if (relax) {
        mdb_env_set_flags(s->env, MDB_NOMETASYNC, 0);
        pthread_mutex_unlock(&s->flags_mu);
    }
    /* Committed: fitting the file is best effort (it failing leaves the
     * file as LMDB made it; the next eviction's commit tries again). */
    if (mrc == 0 && atomic_exchange(&s->fit_due, false) && shoal__store_fit(s) != SHOAL_OK)
        atomic_store(&s->fit_due, true);
    return mrc;
}

int
shoal__st_write_end(shoal__stxn *t, int rc, int (*commit)(shoal__stxn *t), const char *what,
                    uint64_t key_kept, uint64_t key_wrote, bool *full, bool *done)
{
    shoal__store *s = t->s;
    /* A tail to cache must not borrow from pages the commit frees. */
    bool keep = t->tail_ok && rc == SHOAL_OK && !t->map_full && !t->err && shoal__st_tail_own(t);
    if (!keep)
        shoal__st_tail_free(t);
    *full = *done = false;
    if (t->map_full || rc != SHOAL_OK || t->err) {
        mdb_txn_abort(t->txn);
        if (t->map_full)
            *full = true;
        else if (rc == SHOAL_OK)
            rc = shoal__st_fail(s, "transaction failed earlier", t->err);
    } else {
        int mrc = commit(t);
        if (mrc == MDB_MAP_FULL) {
            *full = true;
        } else if (mrc == EIO && shoal__st_disk_full(s)) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s (short write, file system full)", what);
            rc = shoal__st_fail(s, msg, ENOSPC);
        } else if (mrc) {
            rc = shoal__st_fail(s, what, mrc);
        } else {
            *done = true;
            if (keep)
                shoal__st_tail_cache_put(t, t->wrote ? key_wrote : key_kept);
        }
    }
    shoal__st_tail_free(t);
    return rc;
}

int
shoal__store_write(shoal__store *s, shoal__txn_fn fn, void *arg)
{
    assert(s && fn);
    if (s->batched)
        return shoal__st_batch_write(s, fn, arg);
    for (;;) {
        shoal__stxn t = { .s = s, .write = true };
        int rc = shoal__st_txn_begin(s, true, &t.txn);
        if (rc)
            return rc;
        uint64_t id = (uint64_t)mdb_txn_id(t.txn);
        rc = fn(&t, arg);
        /* Committed, the tail is that of the new snapshot (our txn id) if
         * we wrote anything; LMDB commits no new id for a txn that wrote
         * nothing, so the tail is still the one we began with. */
        bool full, done;
        rc = shoal__st_write_end(&t, rc, commit_top, "mdb_txn_commit", (id - 1) << BATCH_GEN_BITS,
                                 id << BATCH_GEN_BITS, &full, &done);
        shoal__st_txn_end_lock(s);
        if (!full)
            return rc;
        rc = shoal__st_grow(s);
        if (rc)
            return rc;
    }
}

int
shoal__store_read(shoal__store *s, shoal__txn_fn fn, void *arg)
{
    assert(s && fn);
    if (s->batched) {
        bool done;
        int rc = shoal__st_batch_read(s, fn, arg, &done);
        if (done)
            return rc;
    }
    shoal__stxn t = { .s = s, .write = false };
    int rc = shoal__st_txn_begin(s, false, &t.txn);
    if (rc)
        return rc;
    rc = fn(&t, arg);
    if (t.tail_ok && shoal__st_tail_own(&t))
        shoal__st_tail_cache_put(&t, shoal__st_snap_id(&t));
    shoal__st_tail_free(&t);
    mdb_txn_abort(t.txn);
    shoal__st_txn_end_lock(s);
    return rc;
}

int
shoal__st_get(shoal__stxn *t, int tab, const void *k, size_t klen, shoal__sval *out)
{
    MDB_val key = mval(k, klen), val;
    int rc = mdb_get(t->txn, t->s->dbi[tab], &key, &val);
    if (rc)
        return shoal__st_tfail(t, "mdb_get", rc);
    if (out)
        *out = sval(&val);
    return SHOAL_OK;
}

int
shoal__st_put(shoal__stxn *t, int tab, const void *k, size_t klen, const void *v, size_t vlen,
              unsigned flags)
{
    assert(t->write);
    MDB_val key = mval(k, klen), val = mval(v, vlen);
    int rc = mdb_put(t->txn, t->s->dbi[tab], &key, &val, flags);
    if (rc)
        return shoal__st_tfail(t, "mdb_put", rc);
    t->wrote = true;
    if (t->key) /* a batch child: bmu is held */
        t->s->bbytes += klen + vlen;
    return SHOAL_OK;
}

int
shoal__st_del(shoal__stxn *t, int tab, const void *k, size_t klen)
{
    assert(t->write);
    MDB_val key = mval(k, klen);
    int rc = mdb_del(t->txn, t->s->dbi[tab], &key, NULL);
    if (rc)
        return shoal__st_tfail(t, "mdb_del", rc);
    t->wrote = true;
    return SHOAL_OK;
}

uint64_t
shoal__st_count(shoal__stxn *t, int tab)
{
    MDB_stat st;
    if (mdb_stat(t->txn, t->s->dbi[tab], &st) != 0)
        return 0;
    return st.ms_entries;
}

/* A cursor walk: position at the first key >= start (or the first key when
 * start is NULL), then step.  cur_first/cur_next return SHOAL_OK with the
 * entry, SHOAL_ENOTFOUND at the end, or another error. */
int
shoal__st_cur_open(shoal__stxn *t, int tab, MDB_cursor **c)
{
    int rc = mdb_cursor_open(t->txn, t->s->dbi[tab], c);
    if (rc)
        return shoal__st_tfail(t, "mdb_cursor_open", rc);
    return SHOAL_OK;
}

int
shoal__st_cur_get(shoal__stxn *t, MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(c, k, v, op);
    if (rc == MDB_NOTFOUND)
        return SHOAL_ENOTFOUND;
    if (rc)
        return shoal__st_tfail(t, "mdb_cursor_get", rc);
    return SHOAL_OK;
}

int
shoal__st_cur_first(shoal__stxn *t, MDB_cursor *c, const void *start, size_t slen, MDB_val *k,
                    MDB_val *v)
{
    if (!start)
        return shoal__st_cur_get(t, c, k, v, MDB_FIRST);
    *k = mval(start, slen);
    return shoal__st_cur_get(t, c, k, v, MDB_SET_RANGE);
}

int
shoal__st_corrupt(shoal__stxn *t, const char *what)
{
    snprintf(t->s->errmsg, sizeof t->s->errmsg, "%s", what);
    return SHOAL_ECORRUPT;
}

int
shoal__stxn_meta_get(shoal__stxn *t, const char *name, shoal__sval *out)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255)
        return SHOAL_EINVAL;
    return shoal__st_get(t, T_META, name, n, out);
}

int
shoal__stxn_meta_put(shoal__stxn *t, const char *name, const void *v, size_t n)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > 255)
        return SHOAL_EINVAL;
    return shoal__st_put(t, T_META, name, nl, v, n, 0);
}
