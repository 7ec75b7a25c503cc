/*
 * store/store.c - the LMDB store of a replica directory (layout: store.h).
 *
 * One LMDB environment per directory, opened with MDB_NOTLS (a read txn is
 * not tied to the thread that began it and does not use a thread-local
 * reader slot) and never MDB_WRITEMAP: with a writable map a full disk kills
 * the process with SIGBUS while writing through the page cache, whereas the
 * default mode writes pages with pwrite() and gets a clean ENOSPC.  Every
 * table is a named database, so one file holds one consistent snapshot of
 * everything; a write is one LMDB transaction and therefore atomic.
 *
 * Growing the map.  LMDB returns MDB_MAP_FULL from a put (or from the commit,
 * when the free list needs a page) once the map is full.  The txn is then
 * unusable, so shoal__store_write aborts it, doubles the map size and runs
 * the caller's function again from scratch.  mdb_env_set_mapsize may only be
 * called while this process has no transaction open, so every txn holds
 * `resize_lock` shared and a resize takes it exclusively.  MDB_MAP_RESIZED
 * (another process grew the map past ours) is handled the same way with a
 * size of 0, which adopts the size recorded in the file.
 *
 * Sticky txn errors.  After any LMDB error except MDB_NOTFOUND and
 * MDB_KEYEXIST the txn can only be aborted.  Each stxn remembers the first
 * such error: a function that swallowed it and returned SHOAL_OK still gets
 * the error back and nothing is committed.
 *
 * Errors leave this file as shoal_err values; the LMDB or errno text is kept
 * in s->errmsg for shoal__store_errmsg.
 *
 * Log positions start at 1; meta "log_next" (u64 BE) is the next one to
 * hand out (absent = 1), so position 0 never names an entry and a reader can
 * use it for "nothing seen yet".
 *
 * Rejected: one environment per table (no atomic commit across them); a
 * per-thread store handle (LMDB forbids opening one environment twice in a
 * process); MDB_NOLOCK (a second process on the directory must work).
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

enum {
    T_META,
    T_CHANGES,
    T_AUTHSEQ,
    T_LOG,
    T_PENDING,
    T_EVIDENCE,
    T_DOCS,
    T_DOCSNAP,
    T_PEERS,
    T_EVCID,
    T_COUNT
};

/* Disk format: the table names are part of the on-disk layout (store.h,
 * docs/storage.md); renaming one is a format change. */
static const char *const table_names[T_COUNT] = {
    "meta", "changes", "authseq", "log", "pending", "evidence", "docs", "docsnap", "peers", "evcid",
};

/* The table of the first layout (format 1), which kept the version vector
 * and the envelopes elsewhere; a directory holding it is refused. */
#define FORMAT1_TABLE "vv"

#define DEFAULT_MAP_SIZE ((uint64_t)64 << 20)
/* The map never grows past this (virtual address space, not disk). */
#define MAX_MAP_SIZE ((uint64_t)1 << 42)
/* Bound on MDB_MAP_RESIZED retries in a row (another process keeps growing). */
#define MAX_RESIZED_RETRIES 64
/* Free space below which an EIO from a commit counts as a full disk (or
 * 1/64 of the file system when that is smaller). */
#define DISK_FULL_SLACK ((uint64_t)1 << 20)
/* The changes and authseq indexes take the log tail in batches: a commit
 * that brings the tail to this many entries indexes all of them. */
#define TAIL_MAX 256
/* Bytes before the envelope in a log value: cid | author | seq (u64 BE) |
 * link (u64 BE). */
#define LOG_HDR 80
/* Set in a log entry's link when a document meta follows the header:
 * key length (u16 BE) | coll NUL id | meta length (u32 BE) | meta, then the
 * envelope.  Positions stay far below 2^63, so old entries never have it. */
#define LINK_META ((uint64_t)1 << 63)
/* Set in a log entry's link when the change was superseded (an
 * equivocation resolved against it, change_supersede): the entry stays (its
 * link keeps the document chain whole) but names no applied change: no
 * index, tail lookup, version vector or log scan counts it. */
#define LINK_DEAD     ((uint64_t)1 << 62)
#define IDENTITY_FILE "identity"
#define IDENTITY_TMP  "identity.tmp"

struct shoal__store {
    MDB_env *env; /* owned */
    MDB_dbi dbi[T_COUNT];
    bool durable;
    bool relaxed;                 /* shoal__store_relax; under the replica lock */
    pthread_mutex_t flags_mu;     /* LMDB's env flags: a relaxed commit vs flush */
    pthread_rwlock_t resize_lock; /* shared by every txn, exclusive to resize */
    char errmsg[256];
    /* The log tail of the newest snapshot a txn of this handle saw, kept
     * between txns (tail_cache_take/tail_cache_put): a txn whose snapshot
     * is tc_txnid takes it instead of reading and parsing the tail from the
     * map.  Any commit (by any process or handle) makes a newer snapshot,
     * so a stale cache is never taken.  It owns all its memory (no pointer
     * into the map: pages are reused and the map moves when it grows).  At
     * most one txn holds it at a time; others read the map as before. */
    pthread_mutex_t tc_mu;
    bool tc_ok;
    uint64_t tc_txnid;   /* the LMDB txn id of the snapshot it describes */
    struct tail_set *tc; /* owned when tc_ok */
};

/* A log entry not yet in the changes and authseq indexes. */
typedef struct tail_ent {
    uint64_t pos;
    uint64_t seq;
    uint8_t cid[32];
    uint8_t author[32];
    /* The document key and meta the entry carries (dk NULL: none).  They
     * point into own (entries this txn wrote) or into the map: a page read
     * from the map is never changed in place (no MDB_WRITEMAP; a write txn
     * copies it first and frees it to later txns only), so they stay valid
     * for the whole transaction. */
    const uint8_t *dk, *dmeta;
    size_t klen, mlen;
    uint8_t *own; /* owned or NULL */
    bool dead;    /* superseded (LINK_DEAD): kept for positions only */
} tail_ent;

/* A log value taken apart. */
typedef struct log_ent {
    uint64_t link;
    bool dead;                       /* LINK_DEAD */
    const uint8_t *key, *meta, *env; /* key, meta NULL without a meta */
    size_t klen, mlen, elen;
} log_ent;

/* The unindexed log tail of one snapshot, as held by a txn or the
 * store's cache. */
typedef struct tail_set {
    uint64_t ixnext;  /* first log position not in the indexes */
    uint64_t lognext; /* next log position to hand out */
    tail_ent *tail;   /* owned; positions ixnext .. lognext - 1 */
    size_t ntail;
    size_t captail;
    /* Maps over the live (not dead) entries, keys Borrowed from the
     * entries, room for captail entries: bycid by change id, byauthor by
     * author (the entry with the author's greatest seq). */
    shoal__map bycid, byauthor;
} tail_set;

struct shoal__stxn {
    shoal__store *s;
    MDB_txn *txn;
    bool write;
    int err;       /* first LMDB error that poisoned the txn, else 0 */
    bool map_full; /* a put (or cursor op) hit MDB_MAP_FULL */
    bool wrote;    /* a put or delete succeeded (LMDB will commit a new txn id) */
    /* The unindexed log tail, loaded on first use (tail_load). */
    bool tail_ok;
    uint64_t ixnext; /* see tail_set */
    uint64_t lognext;
    tail_ent *tail;
    size_t ntail;
    size_t captail;
    shoal__map bycid, byauthor;
    /* The last change id change_pos found nowhere (miss_ok): an import
     * asks change_has and then change_put for the same new id.  Only
     * change_put adds an id, and it clears this. */
    bool miss_ok;
    uint8_t miss[32];
    bool borrows; /* some entry's meta may point into the map (tail_own) */
};

static void tail_free(shoal__stxn *t);
static bool tail_own(shoal__stxn *t);
static void tail_cache_put(shoal__stxn *t, uint64_t id);
static void set_free(struct tail_set *c);
static uint64_t snap_id(const shoal__stxn *t);
static int tail_set_meta(tail_ent *e, const uint8_t *key, size_t klen, const uint8_t *meta,
                         size_t mlen);

/* ------------------------------------------------------------- errors */

static int
map_err(int rc)
{
    switch (rc) {
    case 0: return SHOAL_OK;
    case MDB_NOTFOUND: return SHOAL_ENOTFOUND;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return SHOAL_ECORRUPT;
    case ENOSPC:
    case MDB_MAP_FULL: return SHOAL_ENOSPC;
    case EACCES:
    case EROFS:
    case EPERM: return SHOAL_EREADONLY;
    case ENOMEM: return SHOAL_ENOMEM;
    default: return SHOAL_ESTORE;
    }
}

static void
set_msg(char *buf, size_t len, const char *what, int rc)
{
    if (buf && len)
        snprintf(buf, len, "%s: %s", what, mdb_strerror(rc));
}

/* Record rc (an LMDB or errno value) on s and return its shoal_err. */
static int
fail(shoal__store *s, const char *what, int rc)
{
    set_msg(s->errmsg, sizeof s->errmsg, what, rc);
    return map_err(rc);
}

/* An LMDB call inside a txn failed: remember whether it poisoned the txn. */
static int
tfail(shoal__stxn *t, const char *what, int rc)
{
    if (rc == MDB_NOTFOUND)
        return SHOAL_ENOTFOUND;
    if (rc == MDB_MAP_FULL)
        t->map_full = true;
    if (rc != MDB_KEYEXIST && t->err == 0)
        t->err = rc;
    return fail(t->s, what, rc);
}

/* -------------------------------------------------------------- bytes */

static MDB_val
mval(const void *p, size_t n)
{
    MDB_val v;
    v.mv_data = (void *)(uintptr_t)p;
    v.mv_size = n;
    return v;
}

static shoal__sval
sval(const MDB_val *v)
{
    shoal__sval o;
    o.p = v->mv_data;
    o.len = v->mv_size;
    return o;
}

/* ----------------------------------------------------------- identity */

static int
errno_err(char *errbuf, size_t errlen, const char *what, const char *path, int e)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s %s: %s", what, path, strerror(e));
    return map_err(e);
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write sk to dir/identity atomically: temp file, fsync, rename, fsync dir. */
static int
identity_create(const char *dir, const char *path, const uint8_t *sk, char *errbuf, size_t errlen)
{
    size_t tlen = strlen(dir) + sizeof IDENTITY_TMP + 2;
    char *tmp = shoal__malloc(tlen);
    if (!tmp)
        return SHOAL_ENOMEM;
    snprintf(tmp, tlen, "%s/%s", dir, IDENTITY_TMP);
    int rc = SHOAL_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = errno_err(errbuf, errlen, "cannot create", tmp, errno);
        goto out;
    }
    int e = 0;
    if (fchmod(fd, 0600) != 0)
        e = errno;
    if (!e)
        e = write_all(fd, sk, SHOAL__SK_BYTES);
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (e) {
        unlink(tmp);
        rc = errno_err(errbuf, errlen, "cannot write", tmp, e);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        rc = errno_err(errbuf, errlen, "cannot rename to", path, e);
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = errno_err(errbuf, errlen, "cannot open", dir, errno);
        goto out;
    }
    if (fsync(dfd) != 0) {
        e = errno;
        close(dfd);
        rc = errno_err(errbuf, errlen, "cannot fsync", dir, e);
        goto out;
    }
    close(dfd);
out:
    shoal__free(tmp);
    return rc;
}

/* Load (or create) the identity; on success *skp is sodium_malloc'd. */
static int
identity_load(const char *dir, uint8_t pk[32], uint8_t **skp, char *errbuf, size_t errlen)
{
    size_t plen = strlen(dir) + sizeof IDENTITY_FILE + 2;
    char *path = shoal__malloc(plen);
    if (!path)
        return SHOAL_ENOMEM;
    snprintf(path, plen, "%s/%s", dir, IDENTITY_FILE);
    uint8_t *sk = sodium_malloc(SHOAL__SK_BYTES);
    if (!sk) {
        shoal__free(path);
        return SHOAL_ENOMEM;
    }
    int rc = SHOAL_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        crypto_sign_keypair(pk, sk);
        rc = identity_create(dir, path, sk, errbuf, errlen);
        goto out;
    }
    if (fd < 0) {
        rc = errno_err(errbuf, errlen, "cannot open", path, errno);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = errno_err(errbuf, errlen, "cannot stat", path, errno);
        close(fd);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != SHOAL__SK_BYTES) {
        close(fd);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: not a %d-byte identity file", path, SHOAL__SK_BYTES);
        rc = SHOAL_ECORRUPT;
        goto out;
    }
    size_t got = 0;
    while (got < SHOAL__SK_BYTES) {
        ssize_t r = read(fd, sk + got, SHOAL__SK_BYTES - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            rc = errno_err(errbuf, errlen, "cannot read", path, e);
            goto out;
        }
        got += (size_t)r;
    }
    close(fd);
    /* The key pair must be self-consistent: rebuild it from the seed. */
    uint8_t *chk = sodium_malloc(SHOAL__SK_BYTES);
    if (!chk) {
        rc = SHOAL_ENOMEM;
        goto out;
    }
    crypto_sign_seed_keypair(pk, chk, sk);
    if (sodium_memcmp(chk, sk, SHOAL__SK_BYTES) != 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: public half does not match the secret key", path);
        rc = SHOAL_ECORRUPT;
    }
    sodium_free(chk);
out:
    shoal__free(path);
    if (rc != SHOAL_OK) {
        sodium_free(sk);
        sodium_memzero(pk, 32);
    } else {
        *skp = sk;
    }
    return rc;
}

void
shoal__store_free_secret(uint8_t *sk)
{
    /* sodium_free zeroes the whole allocation before releasing it. */
    if (sk) {
        sodium_memzero(sk, SHOAL__SK_BYTES);
        sodium_free(sk);
    }
}

/* ------------------------------------------------------- map resizing */

/* Resize the map with no txn of this process open; size 0 adopts the size
 * another process recorded.  Called with no lock held. */
static int
resize(shoal__store *s, uint64_t size)
{
    pthread_rwlock_wrlock(&s->resize_lock);
    int rc = mdb_env_set_mapsize(s->env, (size_t)size);
    pthread_rwlock_unlock(&s->resize_lock);
    if (rc)
        return fail(s, "mdb_env_set_mapsize", rc);
    return SHOAL_OK;
}

static int
grow(shoal__store *s)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    uint64_t cur = info.me_mapsize;
    if (cur >= MAX_MAP_SIZE) {
        snprintf(s->errmsg, sizeof s->errmsg, "map size limit reached (%llu bytes)",
                 (unsigned long long)cur);
        return SHOAL_ENOSPC;
    }
    return resize(s, cur * 2);
}

/* Begin a txn holding resize_lock shared; handles MDB_MAP_RESIZED. */
static int
txn_begin(shoal__store *s, bool write, MDB_txn **out)
{
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&s->resize_lock);
        int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, out);
        if (rc == 0)
            return SHOAL_OK;
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc != MDB_MAP_RESIZED || tries >= MAX_RESIZED_RETRIES)
            return fail(s, "mdb_txn_begin", rc);
        int r = resize(s, 0);
        if (r)
            return r;
    }
}

static void
txn_end_lock(shoal__store *s)
{
    pthread_rwlock_unlock(&s->resize_lock);
}

/* --------------------------------------------------------- open/close */

static int
make_dir(const char *dir, char *errbuf, size_t errlen)
{
    if (mkdir(dir, 0700) == 0)
        return SHOAL_OK;
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return SHOAL_OK;
    if (e == EEXIST) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s exists and is not a directory", dir);
        return SHOAL_ESTORE;
    }
    return errno_err(errbuf, errlen, "cannot create directory", dir, e);
}

static bool
data_file_missing(const char *dir)
{
    size_t n = strlen(dir) + sizeof "/data.mdb";
    char *p = shoal__malloc(n);
    if (!p)
        return false;
    snprintf(p, n, "%s/data.mdb", dir);
    struct stat st;
    bool missing = stat(p, &st) != 0 && errno == ENOENT;
    shoal__free(p);
    return missing;
}

/* A directory written before the evcid table existed: index its
 * evidence by change id once (an LMDB error code or 0). */
static int
evcid_backfill(shoal__store *s, MDB_txn *txn)
{
    MDB_stat st;
    int mrc = mdb_stat(txn, s->dbi[T_EVCID], &st);
    if (mrc || st.ms_entries > 0)
        return mrc;
    MDB_cursor *c;
    mrc = mdb_cursor_open(txn, s->dbi[T_EVIDENCE], &c);
    if (mrc)
        return mrc;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 72)
            continue;
        uint8_t kb[72]; /* a copy: the put may not point into the map */
        memcpy(kb, k.mv_data, 72);
        MDB_val ck = mval(kb + 40, 32), cv = mval(kb, 40);
        mrc = mdb_put(txn, s->dbi[T_EVCID], &ck, &cv, 0);
        if (mrc)
            break;
    }
    mdb_cursor_close(c);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int
open_tables(shoal__store *s)
{
    for (int tries = 0; tries < 64; tries++) {
        MDB_txn *txn;
        int rc = txn_begin(s, true, &txn);
        if (rc)
            return rc;
        MDB_dbi old;
        int mrc = mdb_dbi_open(txn, FORMAT1_TABLE, 0, &old);
        if (mrc == 0) {
            mdb_txn_abort(txn);
            txn_end_lock(s);
            snprintf(s->errmsg, sizeof s->errmsg,
                     "the replica uses the first store layout (format 1), which this "
                     "version does not read");
            return SHOAL_ECORRUPT;
        }
        mrc = 0;
        for (int i = 0; i < T_COUNT && !mrc; i++)
            mrc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &s->dbi[i]);
        if (!mrc)
            mrc = evcid_backfill(s, txn);
        if (!mrc)
            mrc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        txn_end_lock(s);
        if (mrc == MDB_MAP_FULL) {
            rc = grow(s);
            if (rc)
                return rc;
            continue;
        }
        if (mrc)
            return fail(s, "opening tables", mrc);
        return SHOAL_OK;
    }
    return fail(s, "opening tables", MDB_MAP_FULL);
}

int
shoal__store_open(shoal__store **out, const char *dir, const shoal__store_opts *o, uint8_t pk[32],
                  uint8_t **sk, char *errbuf, size_t errlen)
{
    assert(out && dir && pk && sk);
    *out = NULL;
    *sk = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (sodium_init() < 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "libsodium failed to initialise");
        return SHOAL_ESTORE;
    }
    bool durable = o ? o->durable : true;
    uint64_t map_size = o && o->map_size ? o->map_size : DEFAULT_MAP_SIZE;
    if (map_size > MAX_MAP_SIZE)
        map_size = MAX_MAP_SIZE;

    int rc = make_dir(dir, errbuf, errlen);
    if (rc)
        return rc;

    shoal__store *s = shoal__calloc(1, sizeof *s);
    if (!s)
        return SHOAL_ENOMEM;
    s->durable = durable;
    if (pthread_mutex_init(&s->flags_mu, NULL) != 0) {
        shoal__free(s);
        return SHOAL_ENOMEM;
    }
    if (pthread_rwlock_init(&s->resize_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->flags_mu);
        shoal__free(s);
        return SHOAL_ENOMEM;
    }
    if (pthread_mutex_init(&s->tc_mu, NULL) != 0) {
        pthread_rwlock_destroy(&s->resize_lock);
        pthread_mutex_destroy(&s->flags_mu);
        shoal__free(s);
        return SHOAL_ENOMEM;
    }
    int mrc = mdb_env_create(&s->env);
    if (mrc) {
        s->env = NULL;
        set_msg(errbuf, errlen, "mdb_env_create", mrc);
        rc = map_err(mrc);
        goto fail;
    }
    /* A new environment gets exactly the requested map size.  An existing
     * one keeps the size recorded in its file (it may have grown) unless the
     * caller asks for more, which is set once it is open. */
    bool fresh = data_file_missing(dir);
    mrc = mdb_env_set_maxdbs(s->env, T_COUNT + 2);
    if (!mrc && fresh)
        mrc = mdb_env_set_mapsize(s->env, (size_t)map_size);
    if (mrc) {
        set_msg(errbuf, errlen, "configuring LMDB", mrc);
        rc = map_err(mrc);
        goto fail;
    }
    unsigned flags = MDB_NOTLS | (durable ? 0 : MDB_NOSYNC);
    mrc = mdb_env_open(s->env, dir, flags, 0600);
    if (mrc) {
        rc = map_err(mrc);
        if (errbuf && errlen) {
            if (rc == SHOAL_EREADONLY)
                snprintf(errbuf, errlen, "replica directory %s is not writable: %s", dir,
                         mdb_strerror(mrc));
            else
                snprintf(errbuf, errlen, "cannot open LMDB environment in %s: %s", dir,
                         mdb_strerror(mrc));
        }
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (info.me_mapsize < map_size) {
        mrc = mdb_env_set_mapsize(s->env, (size_t)map_size);
        if (mrc) {
            set_msg(errbuf, errlen, "mdb_env_set_mapsize", mrc);
            rc = map_err(mrc);
            goto fail;
        }
    }
    /* Free reader slots left by crashed processes: a stale slot pins old
     * pages and makes the file grow without bound. */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    rc = open_tables(s);
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", s->errmsg);
        goto fail;
    }
    /* The LMDB writer lock serialises identity creation between processes
     * opening a fresh directory at once; the txn itself stays empty. */
    MDB_txn *idtxn;
    rc = txn_begin(s, true, &idtxn);
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", s->errmsg);
        goto fail;
    }
    rc = identity_load(dir, pk, sk, errbuf, errlen);
    mdb_txn_abort(idtxn);
    txn_end_lock(s);
    if (rc)
        goto fail;
    *out = s;
    return SHOAL_OK;
fail:
    if (s->env)
        mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->resize_lock);
    pthread_mutex_destroy(&s->flags_mu);
    pthread_mutex_destroy(&s->tc_mu);
    set_free(s->tc);
    shoal__free(s);
    return rc;
}

void
shoal__store_close(shoal__store *s)
{
    if (!s)
        return;
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->resize_lock);
    pthread_mutex_destroy(&s->flags_mu);
    pthread_mutex_destroy(&s->tc_mu);
    set_free(s->tc);
    shoal__free(s);
}

void
shoal__store_relax(shoal__store *s, bool on)
{
    assert(s);
    s->relaxed = on;
}

int
shoal__store_flush(shoal__store *s)
{
    assert(s);
    pthread_mutex_lock(&s->flags_mu);
    int rc = mdb_env_sync(s->env, 1);
    pthread_mutex_unlock(&s->flags_mu);
    if (rc)
        return fail(s, "mdb_env_sync", rc);
    return SHOAL_OK;
}

const char *
shoal__store_errmsg(const shoal__store *s)
{
    return s ? s->errmsg : "";
}

/* ------------------------------------------------------- transactions */

/* LMDB turns a short pwrite() into EIO, and a write that runs out of space
 * part way through is short, so a full disk often shows up as EIO.  Call it
 * ENOSPC when the file system holding data.mdb has (almost) nothing left;
 * the threshold only has to tell "full" from "plenty left". */
static bool
disk_full(shoal__store *s)
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

int
shoal__store_write(shoal__store *s, shoal__txn_fn fn, void *arg)
{
    assert(s && fn);
    for (;;) {
        shoal__stxn t = { .s = s, .write = true };
        int rc = txn_begin(s, true, &t.txn);
        if (rc)
            return rc;
        uint64_t id = (uint64_t)mdb_txn_id(t.txn);
        rc = fn(&t, arg);
        /* A tail to cache must not borrow from pages the commit frees. */
        bool keep = t.tail_ok && rc == SHOAL_OK && !t.map_full && !t.err && tail_own(&t);
        if (!keep)
            tail_free(&t);
        int mrc = 0;
        if (t.map_full || rc != SHOAL_OK || t.err) {
            mdb_txn_abort(t.txn);
            if (t.map_full)
                mrc = MDB_MAP_FULL;
            else if (rc == SHOAL_OK)
                rc = fail(s, "transaction failed earlier", t.err);
        } else {
            /* A relaxed commit turns MDB_NOMETASYNC on for itself only:
             * LMDB 0.9 reads it from the env flags at commit.  flags_mu
             * keeps a concurrent flush from reading them meanwhile. */
            bool relax = s->relaxed && s->durable;
            if (relax) {
                pthread_mutex_lock(&s->flags_mu);
                mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1);
            }
            mrc = mdb_txn_commit(t.txn);
            if (relax) {
                mdb_env_set_flags(s->env, MDB_NOMETASYNC, 0);
                pthread_mutex_unlock(&s->flags_mu);
            }
            if (mrc == EIO && disk_full(s))
                rc = fail(s, "mdb_txn_commit (short write, file system full)", ENOSPC);
            else if (mrc && mrc != MDB_MAP_FULL)
                rc = fail(s, "mdb_txn_commit", mrc);
            /* Committed: the tail is that of the new snapshot (our txn id)
             * if we wrote anything; LMDB commits no new id for a txn that
             * wrote nothing, so the tail is still the one we began with. */
            if (keep && mrc == 0)
                tail_cache_put(&t, t.wrote ? id : id - 1);
        }
        tail_free(&t);
        txn_end_lock(s);
        if (mrc != MDB_MAP_FULL)
            return rc;
        rc = grow(s);
        if (rc)
            return rc;
    }
}

int
shoal__store_read(shoal__store *s, shoal__txn_fn fn, void *arg)
{
    assert(s && fn);
    shoal__stxn t = { .s = s, .write = false };
    int rc = txn_begin(s, false, &t.txn);
    if (rc)
        return rc;
    rc = fn(&t, arg);
    if (t.tail_ok && tail_own(&t))
        tail_cache_put(&t, snap_id(&t));
    tail_free(&t);
    mdb_txn_abort(t.txn);
    txn_end_lock(s);
    return rc;
}

/* ------------------------------------------------------ generic access */

static int
t_get(shoal__stxn *t, int tab, const void *k, size_t klen, shoal__sval *out)
{
    MDB_val key = mval(k, klen), val;
    int rc = mdb_get(t->txn, t->s->dbi[tab], &key, &val);
    if (rc)
        return tfail(t, "mdb_get", rc);
    if (out)
        *out = sval(&val);
    return SHOAL_OK;
}

static int
t_put(shoal__stxn *t, int tab, const void *k, size_t klen, const void *v, size_t vlen,
      unsigned flags)
{
    assert(t->write);
    MDB_val key = mval(k, klen), val = mval(v, vlen);
    int rc = mdb_put(t->txn, t->s->dbi[tab], &key, &val, flags);
    if (rc)
        return tfail(t, "mdb_put", rc);
    t->wrote = true;
    return SHOAL_OK;
}

static int
t_del(shoal__stxn *t, int tab, const void *k, size_t klen)
{
    assert(t->write);
    MDB_val key = mval(k, klen);
    int rc = mdb_del(t->txn, t->s->dbi[tab], &key, NULL);
    if (rc)
        return tfail(t, "mdb_del", rc);
    t->wrote = true;
    return SHOAL_OK;
}

static uint64_t
t_count(shoal__stxn *t, int tab)
{
    MDB_stat st;
    if (mdb_stat(t->txn, t->s->dbi[tab], &st) != 0)
        return 0;
    return st.ms_entries;
}

/* A cursor walk: position at the first key >= start (or the first key when
 * start is NULL), then step.  cur_first/cur_next return SHOAL_OK with the
 * entry, SHOAL_ENOTFOUND at the end, or another error. */
static int
cur_open(shoal__stxn *t, int tab, MDB_cursor **c)
{
    int rc = mdb_cursor_open(t->txn, t->s->dbi[tab], c);
    if (rc)
        return tfail(t, "mdb_cursor_open", rc);
    return SHOAL_OK;
}

static int
cur_get(shoal__stxn *t, MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(c, k, v, op);
    if (rc == MDB_NOTFOUND)
        return SHOAL_ENOTFOUND;
    if (rc)
        return tfail(t, "mdb_cursor_get", rc);
    return SHOAL_OK;
}

static int
cur_first(shoal__stxn *t, MDB_cursor *c, const void *start, size_t slen, MDB_val *k, MDB_val *v)
{
    if (!start)
        return cur_get(t, c, k, v, MDB_FIRST);
    *k = mval(start, slen);
    return cur_get(t, c, k, v, MDB_SET_RANGE);
}

static bool
has_prefix(const MDB_val *k, const uint8_t *p, size_t n)
{
    return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

/* --------------------------------------------------------------- meta */

int
shoal__stxn_meta_get(shoal__stxn *t, const char *name, shoal__sval *out)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255)
        return SHOAL_EINVAL;
    return t_get(t, T_META, name, n, out);
}

int
shoal__stxn_meta_put(shoal__stxn *t, const char *name, const void *v, size_t n)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > 255)
        return SHOAL_EINVAL;
    return t_put(t, T_META, name, nl, v, n, 0);
}

/* ------------------------------------------------------ changes, log */

/* The log holds every applied change in apply order: position (u64 BE) ->
 * cid | author | seq (u64 BE) | link (u64 BE) | envelope.  Two indexes point into it:
 * changes (cid -> position) and authseq (author | seq -> cid).  A commit
 * appends to the log only; the indexes take the entries from meta
 * "ixnext" on (the tail) once there are TAIL_MAX of them, in one batch.
 * Every lookup consults the index and the tail (held in memory per txn,
 * at most TAIL_MAX entries), so the split is invisible to callers.  A
 * local commit thus writes the log's last leaf instead of a random leaf
 * of changes and the last one of authseq. */

static int
corrupt(shoal__stxn *t, const char *what)
{
    snprintf(t->s->errmsg, sizeof t->s->errmsg, "%s", what);
    return SHOAL_ECORRUPT;
}

static bool
ent_parse(const uint8_t *p, size_t n, log_ent *e)
{
    memset(e, 0, sizeof *e);
    if (n < LOG_HDR)
        return false;
    uint64_t l = shoal__be64_get(p + 72);
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

static void
tail_free(shoal__stxn *t)
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

/* ------------------------------------------------ tail hashes, cache */

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
        tail_free(t);
        return SHOAL_ENOMEM;
    }
    for (size_t i = 0; i < t->ntail; i++)
        hash_add(t, i);
    return SHOAL_OK;
}

/* The snapshot t reads: a write txn's id is one past it. */
static uint64_t
snap_id(const shoal__stxn *t)
{
    return (uint64_t)mdb_txn_id(t->txn) - (t->write ? 1 : 0);
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

static void
set_free(tail_set *c)
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
    if (s->tc_ok && s->tc_txnid == snap_id(t)) {
        set_take(t, s->tc);
        s->tc_ok = false;
        ok = true;
    }
    pthread_mutex_unlock(&s->tc_mu);
    return ok;
}

/* Before t ends (its pages still mapped): give every entry its own copy
 * of the meta it borrows from the map.  False if out of memory. */
static bool
tail_own(shoal__stxn *t)
{
    if (!t->borrows) /* a cached tail, and what change_put adds, own theirs */
        return true;
    for (size_t i = 0; i < t->ntail; i++) {
        tail_ent *e = &t->tail[i];
        if (e->dk && !e->own && tail_set_meta(e, e->dk, e->klen, e->dmeta, e->mlen) != SHOAL_OK)
            return false;
    }
    t->borrows = false;
    return true;
}

/* Hand t's tail (owned: tail_own) to the store's cache as the tail of
 * snapshot id, unless the cache already holds a newer one; t's tail is
 * empty afterwards. */
static void
tail_cache_put(shoal__stxn *t, uint64_t id)
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
    tail_free(t);
}

/* Give e a copy of key and meta. */
static int
tail_set_meta(tail_ent *e, const uint8_t *key, size_t klen, const uint8_t *meta, size_t mlen)
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
static const tail_ent *
tail_find_doc(const shoal__stxn *t, const uint8_t *k, size_t klen)
{
    for (size_t i = t->ntail; i > 0; i--) {
        const tail_ent *e = &t->tail[i - 1];
        if (e->dk && e->klen == klen && memcmp(e->dk, k, klen) == 0)
            return e;
    }
    return NULL;
}

static int
tail_push(shoal__stxn *t, uint64_t pos, const uint8_t *hdr, const log_ent *le)
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
    memcpy(e->cid, hdr, 32);
    memcpy(e->author, hdr + 32, 32);
    e->seq = shoal__be64_get(hdr + 64);
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

/* Load ixnext, lognext and the tail (once per txn). */
static int
tail_load(shoal__stxn *t)
{
    if (t->tail_ok)
        return SHOAL_OK;
    if (tail_cache_take(t)) {
        t->tail_ok = true;
        return SHOAL_OK;
    }
    shoal__sval v = { NULL, 0 };
    uint64_t ix = 1;
    int rc = t_get(t, T_META, "ixnext", 6, &v);
    if (rc == SHOAL_OK) {
        if (v.len != 8)
            return corrupt(t, "meta ixnext is not 8 bytes");
        ix = shoal__be64_get(v.p);
    } else if (rc != SHOAL_ENOTFOUND) {
        return rc;
    }
    MDB_cursor *c;
    rc = cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    MDB_val k, val;
    uint64_t last = 0;
    rc = cur_get(t, c, &k, &val, MDB_LAST);
    if (rc == SHOAL_OK) {
        if (k.mv_size != 8)
            rc = corrupt(t, "malformed log key");
        else
            last = shoal__be64_get(k.mv_data);
    } else if (rc == SHOAL_ENOTFOUND) {
        rc = SHOAL_OK;
    }
    if (!rc && (ix == 0 || ix > last + 1))
        rc = corrupt(t, "meta ixnext is past the log");
    tail_free(t);
    if (!rc && ix <= last) {
        uint8_t start[8];
        shoal__be64_put(start, ix);
        for (rc = cur_first(t, c, start, 8, &k, &val); rc == SHOAL_OK;
             rc = cur_get(t, c, &k, &val, MDB_NEXT)) {
            log_ent le;
            if (k.mv_size != 8 || !ent_parse(val.mv_data, val.mv_size, &le)) {
                rc = corrupt(t, "malformed log entry");
                break;
            }
            rc = tail_push(t, shoal__be64_get(k.mv_data), val.mv_data, &le);
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
    t->lognext = last + 1;
    t->tail_ok = true;
    return SHOAL_OK;
}

static const tail_ent *
tail_find_cid(const shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES])
{
    return shoal__map_get(&t->bycid, cid, SHOAL__ID_BYTES);
}

/* The live tail entry of author with the greatest seq, or NULL. */
static const tail_ent *
tail_find_author(const shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES])
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
        rc = t_put(t, T_DOCS, e->dk, e->klen, e->dmeta, e->mlen, 0);
    }
    shoal__map_clear(&seen, NULL);
    return rc;
}

/* Move the whole tail into the indexes. */
static int
tail_flush(shoal__stxn *t)
{
    for (size_t i = 0; i < t->ntail; i++) {
        const tail_ent *e = &t->tail[i];
        uint8_t pb[8], k[40];
        if (e->dead) { /* superseded: no index entry; a meta it carried is stale */
            continue;
        }
        shoal__be64_put(pb, e->pos);
        MDB_val key = mval(e->cid, 32), val = mval(pb, 8);
        int mrc = mdb_put(t->txn, t->s->dbi[T_CHANGES], &key, &val, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) {
            t->err = MDB_CORRUPTED;
            return corrupt(t, "a change is in the log twice");
        }
        if (mrc)
            return tfail(t, "mdb_put changes", mrc);
        t->wrote = true;
        shoal__seqkey(k, e->author, e->seq);
        int rc = t_put(t, T_AUTHSEQ, k, 40, e->cid, 32, 0);
        if (rc)
            return rc;
    }
    int rc = docs_flush(t);
    if (rc)
        return rc;
    uint8_t nb[8];
    shoal__be64_put(nb, t->lognext);
    rc = t_put(t, T_META, "ixnext", 6, nb, 8, 0);
    if (rc)
        return rc;
    t->ixnext = t->lognext;
    tail_drop_metas(t);
    t->ntail = 0;
    return hash_rebuild(t);
}

int
shoal__stxn_log_get(shoal__stxn *t, uint64_t pos, shoal__sval *env, uint64_t *link)
{
    return shoal__stxn_log_entry(t, pos, env, link, NULL, NULL);
}

int
shoal__stxn_log_entry(shoal__stxn *t, uint64_t pos, shoal__sval *env, uint64_t *link, bool *dead,
                      uint8_t cid[32])
{
    uint8_t k[8];
    shoal__be64_put(k, pos);
    shoal__sval v = { NULL, 0 };
    int rc = t_get(t, T_LOG, k, 8, &v);
    if (rc)
        return rc;
    log_ent le;
    if (!ent_parse(v.p, v.len, &le))
        return corrupt(t, "malformed log entry");
    if (env) {
        env->p = le.env;
        env->len = le.elen;
    }
    if (link)
        *link = le.link;
    if (dead)
        *dead = le.dead;
    if (cid)
        memcpy(cid, v.p, 32);
    return SHOAL_OK;
}

int
shoal__stxn_log_last(shoal__stxn *t, uint64_t *pos, shoal__sval *env)
{
    MDB_cursor *c;
    int rc = cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = cur_get(t, c, &k, &v, MDB_LAST);
    log_ent le;
    if (rc == SHOAL_OK && (k.mv_size != 8 || !ent_parse(v.mv_data, v.mv_size, &le)))
        rc = corrupt(t, "malformed log entry");
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
change_pos(shoal__stxn *t, const uint8_t cid[32], uint64_t *pos)
{
    if (t->miss_ok && memcmp(t->miss, cid, 32) == 0)
        return SHOAL_ENOTFOUND;
    /* The tail first (a hash probe; dependencies are mostly recent): a
     * live id is in the tail or the index, never both. */
    int rc = tail_load(t);
    if (rc)
        return rc;
    const tail_ent *e = tail_find_cid(t, cid);
    if (e) {
        *pos = e->pos;
        return SHOAL_OK;
    }
    shoal__sval v = { NULL, 0 };
    rc = t_get(t, T_CHANGES, cid, 32, &v);
    if (rc == SHOAL_OK) {
        if (v.len != 8)
            return corrupt(t, "changes value is not 8 bytes");
        *pos = shoal__be64_get(v.p);
        return SHOAL_OK;
    }
    if (rc == SHOAL_ENOTFOUND) {
        memcpy(t->miss, cid, 32);
        t->miss_ok = true;
    }
    return rc;
}

int
shoal__stxn_change_get(shoal__stxn *t, const uint8_t cid[32], shoal__sval *env)
{
    uint64_t pos;
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
shoal__stxn_change_has(shoal__stxn *t, const uint8_t cid[32])
{
    uint64_t pos;
    return change_pos(t, cid, &pos) == SHOAL_OK;
}

/* Refuses (SHOAL_EINVAL) a change id that is already stored: a second log
 * entry for one change would break "the log holds each change once". */
int
shoal__stxn_change_put(shoal__stxn *t, const uint8_t cid[32], const uint8_t *env, size_t len,
                       const uint8_t author[32], uint64_t seq, uint64_t link, uint64_t *pos)
{
    assert(t->write);
    uint64_t old;
    int rc = change_pos(t, cid, &old);
    if (rc == SHOAL_OK) {
        snprintf(t->s->errmsg, sizeof t->s->errmsg, "change already stored");
        return SHOAL_EINVAL;
    }
    if (rc != SHOAL_ENOTFOUND)
        return rc;
    t->miss_ok = false;
    rc = tail_load(t);
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
        return corrupt(t, "log position is not past the log");
    }
    if (mrc)
        return tfail(t, "mdb_put log", mrc);
    t->wrote = true;
    uint8_t *p = val.mv_data;
    memcpy(p, cid, 32);
    memcpy(p + 32, author, 32);
    shoal__be64_put(p + 64, seq);
    shoal__be64_put(p + 72, link);
    if (len)
        memcpy(p + LOG_HDR, env, len);
    rc = tail_push(t, next, p, NULL);
    if (rc)
        return rc;
    t->lognext = next + 1;
    if (t->ntail >= TAIL_MAX) {
        rc = tail_flush(t);
        if (rc)
            return rc;
    }
    if (pos)
        *pos = next;
    return SHOAL_OK;
}

int
shoal__stxn_authseq_get(shoal__stxn *t, const uint8_t author[32], uint64_t seq, uint8_t cid[32])
{
    uint8_t k[40];
    shoal__seqkey(k, author, seq);
    shoal__sval v = { NULL, 0 };
    int rc = t_get(t, T_AUTHSEQ, k, 40, &v);
    if (rc == SHOAL_OK) {
        if (v.len != 32)
            return corrupt(t, "authseq value is not 32 bytes");
        memcpy(cid, v.p, 32);
        return SHOAL_OK;
    }
    if (rc != SHOAL_ENOTFOUND)
        return rc;
    rc = tail_load(t);
    if (rc)
        return rc;
    for (size_t i = 0; i < t->ntail; i++) {
        const tail_ent *e = &t->tail[i];
        if (!e->dead && e->seq == seq && memcmp(e->author, author, 32) == 0) {
            memcpy(cid, e->cid, 32);
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
    int rc = tail_load(t);
    if (rc)
        return rc;
    return t->ntail ? tail_flush(t) : SHOAL_OK;
}

/* The tail is indexed first, so the entry is below ixnext from then on:
 * no later tail read meets it, and the metas it may carry are already in
 * docs.  Its flag is still what every reader of the log checks. */
int
shoal__stxn_change_supersede(shoal__stxn *t, const uint8_t cid[32], uint64_t *pos)
{
    assert(t->write);
    int rc = shoal__stxn_index_flush(t);
    if (rc)
        return rc;
    uint64_t p;
    rc = change_pos(t, cid, &p);
    if (rc)
        return rc;
    uint8_t pk[8];
    shoal__be64_put(pk, p);
    shoal__sval v = { NULL, 0 };
    rc = t_get(t, T_LOG, pk, 8, &v);
    if (rc)
        return rc == SHOAL_ENOTFOUND ? corrupt(t, "change index names a missing entry") : rc;
    log_ent le;
    if (!ent_parse(v.p, v.len, &le) || memcmp(v.p, cid, 32) != 0)
        return corrupt(t, "malformed log entry");
    uint8_t *b = shoal__malloc(v.len);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, v.len);
    shoal__be64_put(b + 72, shoal__be64_get(b + 72) | LINK_DEAD);
    uint8_t author[32];
    memcpy(author, b + 32, 32);
    uint64_t seq = shoal__be64_get(b + 64);
    rc = t_put(t, T_LOG, pk, 8, b, v.len, 0);
    shoal__free(b);
    if (!rc) {
        rc = t_del(t, T_CHANGES, cid, 32);
    }
    if (!rc) {
        uint8_t k[40], cur[32];
        shoal__seqkey(k, author, seq);
        shoal__sval a = { NULL, 0 };
        rc = t_get(t, T_AUTHSEQ, k, 40, &a);
        if (rc == SHOAL_OK) {
            if (a.len == 32)
                memcpy(cur, a.p, 32);
            rc = a.len == 32 && memcmp(cur, cid, 32) == 0 ? t_del(t, T_AUTHSEQ, k, 40) : SHOAL_OK;
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
    int rc = cur_open(t, T_LOG, &c);
    if (rc)
        return rc;
    uint8_t start[8];
    shoal__be64_put(start, from);
    MDB_val k, v;
    for (rc = cur_first(t, c, start, 8, &k, &v); rc == SHOAL_OK;
         rc = cur_get(t, c, &k, &v, MDB_NEXT)) {
        log_ent le;
        if (k.mv_size != 8 || !ent_parse(v.mv_data, v.mv_size, &le)) {
            rc = corrupt(t, "malformed log entry");
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
    return t_count(t, T_LOG);
}

/* ----------------------------------------------------- version vector */

/* The version vector is not stored: an author's entry is the last authseq
 * key with its prefix, or a later one in the log tail. */

/* The last indexed (seq, cid) of author via cursor c; SHOAL_ENOTFOUND if
 * the index has none. */
static int
index_last(shoal__stxn *t, MDB_cursor *c, const uint8_t author[32], uint64_t *seq, uint8_t cid[32])
{
    uint8_t k[40];
    shoal__seqkey(k, author, UINT64_MAX);
    MDB_val key = mval(k, 40), v;
    int rc = cur_get(t, c, &key, &v, MDB_SET_RANGE);
    if (rc == SHOAL_OK && !(key.mv_size == 40 && memcmp(key.mv_data, author, 32) == 0))
        rc = cur_get(t, c, &key, &v, MDB_PREV);
    else if (rc == SHOAL_ENOTFOUND)
        rc = cur_get(t, c, &key, &v, MDB_LAST);
    if (rc)
        return rc;
    if (key.mv_size != 40 || v.mv_size != 32)
        return corrupt(t, "malformed authseq entry");
    if (memcmp(key.mv_data, author, 32) != 0)
        return SHOAL_ENOTFOUND;
    *seq = shoal__be64_get((const uint8_t *)key.mv_data + 32);
    memcpy(cid, v.mv_data, 32);
    return SHOAL_OK;
}

int
shoal__stxn_vv_get(shoal__stxn *t, const uint8_t author[32], uint64_t *seq, uint8_t cid[32])
{
    MDB_cursor *c;
    int rc = cur_open(t, T_AUTHSEQ, &c);
    if (rc)
        return rc;
    uint64_t s = 0;
    uint8_t id[32];
    rc = index_last(t, c, author, &s, id);
    mdb_cursor_close(c);
    if (rc && rc != SHOAL_ENOTFOUND)
        return rc;
    bool found = rc == SHOAL_OK;
    rc = tail_load(t);
    if (rc)
        return rc;
    const tail_ent *e = tail_find_author(t, author);
    if (e && (!found || e->seq > s)) {
        s = e->seq;
        memcpy(id, e->cid, 32);
        found = true;
    }
    if (!found)
        return SHOAL_ENOTFOUND;
    if (seq)
        *seq = s;
    if (cid)
        memcpy(cid, id, 32);
    return SHOAL_OK;
}

typedef struct vv_ent {
    uint8_t author[32];
    uint64_t seq;
    uint8_t cid[32];
} vv_ent;

static int
vv_ent_cmp(const void *a, const void *b)
{
    return memcmp(((const vv_ent *)a)->author, ((const vv_ent *)b)->author, 32);
}

int
shoal__stxn_vv_scan(shoal__stxn *t, shoal__vv_fn cb, void *arg)
{
    int rc = tail_load(t);
    if (rc)
        return rc;
    MDB_cursor *c;
    rc = cur_open(t, T_AUTHSEQ, &c);
    if (rc)
        return rc;
    vv_ent *e = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    /* One hop per author: its first key, then its last (index_last). */
    for (rc = cur_get(t, c, &k, &v, MDB_FIRST); rc == SHOAL_OK;
         rc = cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 40) {
            rc = corrupt(t, "malformed authseq entry");
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
        memcpy(e[n].author, k.mv_data, 32);
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
        memcpy(key.author, te->author, 32);
        vv_ent *hit = nidx ? bsearch(&key, e, nidx, sizeof *e, vv_ent_cmp) : NULL;
        for (size_t j = nidx; !hit && j < n; j++)
            if (memcmp(e[j].author, te->author, 32) == 0)
                hit = &e[j];
        if (hit) {
            if (te->seq > hit->seq) {
                hit->seq = te->seq;
                memcpy(hit->cid, te->cid, 32);
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
        memcpy(e[n].author, te->author, 32);
        e[n].seq = te->seq;
        memcpy(e[n].cid, te->cid, 32);
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

/* -------------------------------------------------------- pending set */

int
shoal__stxn_pending_put(shoal__stxn *t, const uint8_t cid[32], const uint8_t *env, size_t len)
{
    return t_put(t, T_PENDING, cid, 32, env, len, 0);
}

bool
shoal__stxn_pending_has(shoal__stxn *t, const uint8_t cid[32])
{
    return t_get(t, T_PENDING, cid, 32, NULL) == SHOAL_OK;
}

int
shoal__stxn_pending_del(shoal__stxn *t, const uint8_t cid[32])
{
    return t_del(t, T_PENDING, cid, 32);
}

uint64_t
shoal__stxn_pending_count(shoal__stxn *t)
{
    return t_count(t, T_PENDING);
}

int
shoal__stxn_pending_scan(shoal__stxn *t, shoal__pending_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = cur_open(t, T_PENDING, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32) {
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

/* ----------------------------------------------------------- evidence */

int
shoal__stxn_evidence_put(shoal__stxn *t, const uint8_t author[32], uint64_t seq,
                         const uint8_t cid[32], const uint8_t *env, size_t len)
{
    uint8_t k[72];
    shoal__seqkey(k, author, seq);
    memcpy(k + 40, cid, 32);
    int rc = t_put(t, T_EVIDENCE, k, 72, env, len, 0);
    if (!rc)
        rc = t_put(t, T_EVCID, cid, 32, k, 40, 0);
    return rc;
}

int
shoal__stxn_evidence_del(shoal__stxn *t, const uint8_t author[32], uint64_t seq,
                         const uint8_t cid[32])
{
    uint8_t k[72];
    shoal__seqkey(k, author, seq);
    memcpy(k + 40, cid, 32);
    return t_del(t, T_EVIDENCE, k, 72);
}

int
shoal__stxn_evidence_alias(shoal__stxn *t, const uint8_t author[32], uint64_t seq,
                           const uint8_t cid[32])
{
    uint8_t k[40];
    shoal__seqkey(k, author, seq);
    return t_put(t, T_EVCID, cid, 32, k, 40, 0);
}

uint64_t
shoal__stxn_evidence_ids(shoal__stxn *t)
{
    return t_count(t, T_EVCID);
}

int
shoal__stxn_evidence_find(shoal__stxn *t, const uint8_t cid[32], uint8_t author[32], uint64_t *seq)
{
    shoal__sval v = { NULL, 0 };
    int rc = t_get(t, T_EVCID, cid, 32, &v);
    if (rc)
        return rc;
    if (v.len != 40)
        return corrupt(t, "malformed evcid entry");
    if (author)
        memcpy(author, v.p, 32);
    if (seq)
        *seq = shoal__be64_get(v.p + 32);
    return SHOAL_OK;
}

int
shoal__stxn_evidence_get(shoal__stxn *t, const uint8_t author[32], uint64_t seq,
                         const uint8_t cid[32], shoal__sval *env)
{
    uint8_t k[72];
    shoal__seqkey(k, author, seq);
    memcpy(k + 40, cid, 32);
    return t_get(t, T_EVIDENCE, k, 72, env);
}

uint64_t
shoal__stxn_evidence_count(shoal__stxn *t)
{
    return t_count(t, T_EVIDENCE);
}

int
shoal__stxn_evidence_versions(shoal__stxn *t, const uint8_t author[32], uint64_t seq, uint8_t *cids,
                              size_t max, size_t *n)
{
    *n = 0;
    MDB_cursor *c;
    int rc = cur_open(t, T_EVIDENCE, &c);
    if (rc)
        return rc;
    uint8_t k[40];
    shoal__seqkey(k, author, seq);
    MDB_val key, v;
    for (rc = cur_first(t, c, k, 40, &key, &v); rc == SHOAL_OK;
         rc = cur_get(t, c, &key, &v, MDB_NEXT)) {
        if (!has_prefix(&key, k, 40))
            break;
        if (key.mv_size != 72) {
            rc = corrupt(t, "malformed evidence key");
            break;
        }
        if (*n < max)
            memcpy(cids + *n * 32, (const uint8_t *)key.mv_data + 40, 32);
        (*n)++;
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_evidence_scan(shoal__stxn *t, shoal__evidence_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = cur_open(t, T_EVIDENCE, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 72) {
            snprintf(t->s->errmsg, sizeof t->s->errmsg, "malformed evidence key");
            rc = SHOAL_ECORRUPT;
            break;
        }
        const uint8_t *p = k.mv_data;
        shoal__sval env = sval(&v);
        int r = cb(p, shoal__be64_get(p + 32), p + 40, &env, arg);
        if (r) {
            rc = r;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

/* ---------------------------------------------------------- documents */

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
    return t_get(t, tab, k, n, out);
}

static int
doc_put(shoal__stxn *t, int tab, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
        const void *v, size_t vlen)
{
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t n = doc_key(k, coll, clen, id, idlen);
    if (!n)
        return SHOAL_EINVAL;
    return t_put(t, tab, k, n, v, vlen, 0);
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
    int rc = tail_load(t);
    if (rc)
        return rc;
    const tail_ent *e = tail_find_doc(t, k, n);
    if (e) {
        if (meta) {
            meta->p = e->dmeta;
            meta->len = e->mlen;
        }
        return SHOAL_OK;
    }
    return t_get(t, T_DOCS, k, n, meta);
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
    int rc = tail_load(t);
    if (rc)
        return rc;
    if (pos == 0 || pos < t->ixnext) {
        if (pos == 0 && tail_find_doc(t, k, n)) {
            snprintf(t->s->errmsg, sizeof t->s->errmsg,
                     "document meta rides in the log tail: put it with its position");
            return SHOAL_EINVAL;
        }
        return t_put(t, T_DOCS, k, n, meta, mlen, 0);
    }
    if (pos >= t->lognext)
        return SHOAL_EINVAL;
    if (mlen > UINT32_MAX)
        return SHOAL_ETOOBIG;
    tail_ent *e = &t->tail[pos - t->ixnext];
    if (e->pos != pos)
        return corrupt(t, "log tail out of order");
    /* Rewrite the entry with the meta between header and envelope; the
     * entry was appended by this transaction, so its page is dirty already. */
    uint8_t pk[8];
    shoal__be64_put(pk, pos);
    shoal__sval v = { NULL, 0 };
    rc = t_get(t, T_LOG, pk, 8, &v);
    if (rc)
        return rc == SHOAL_ENOTFOUND ? corrupt(t, "log tail entry missing") : rc;
    log_ent le;
    if (!ent_parse(v.p, v.len, &le))
        return corrupt(t, "malformed log entry");
    size_t nlen = LOG_HDR + 2 + n + 4 + mlen + le.elen;
    uint8_t *b = shoal__malloc(nlen);
    if (!b)
        return SHOAL_ENOMEM;
    memcpy(b, v.p, LOG_HDR);
    shoal__be64_put(b + 72, le.link | LINK_META | (le.dead ? LINK_DEAD : 0));
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
    rc = t_put(t, T_LOG, pk, 8, b, nlen, 0);
    shoal__free(b);
    if (!rc)
        rc = tail_set_meta(e, k, n, meta, mlen);
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
    int rc = tail_load(t);
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
    rc = cur_open(t, T_DOCS, &c);
    if (rc) {
        shoal__free(tm);
        return rc;
    }
    MDB_val k, v;
    for (rc = cur_first(t, c, coll ? prefix : NULL, pl, &k, &v); rc == SHOAL_OK;
         rc = cur_get(t, c, &k, &v, MDB_NEXT)) {
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

/* ---------------------------------------------------------------- peers */

int
shoal__stxn_peer_put(shoal__stxn *t, const uint8_t key[32], const void *v, size_t n)
{
    assert(t && key && (v || n == 0));
    return t_put(t, T_PEERS, key, 32, v, n, 0);
}

int
shoal__stxn_peer_del(shoal__stxn *t, const uint8_t key[32])
{
    assert(t && key);
    int rc = t_del(t, T_PEERS, key, 32);
    return rc == SHOAL_ENOTFOUND ? SHOAL_OK : rc;
}

int
shoal__stxn_peer_scan(shoal__stxn *t, shoal__peer_fn cb, void *arg)
{
    MDB_cursor *c;
    int rc = cur_open(t, T_PEERS, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = cur_first(t, c, NULL, 0, &k, &v); rc == SHOAL_OK;
         rc = cur_get(t, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32)
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
