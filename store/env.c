/*
 * store/env.c - the LMDB environment of a replica directory (layout:
 * store.h; the files of store/: store_int.h).
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
 * Log positions start at 1, so position 0 never names an entry and a reader
 * can use it for "nothing seen yet".  A txn takes the next one from the
 * log's last key (one past it; 1 for an empty log) when it loads the tail
 * (tail.c), or from meta "lognext" when a dropped entry (a local eviction,
 * evict.c) left that greater; meta "ixnext" (u64 BE) says where the
 * unindexed tail begins (log.c).
 *
 * The transactions (shoal__store_write's map-full retry, sticky errors) are
 * in txn.c; the tables in the files store_int.h lists.
 *
 * Rejected: one environment per table (no atomic commit across them); a
 * per-thread store handle (LMDB forbids opening one environment twice in a
 * process); MDB_NOLOCK (a second process on the directory must work).
 */

#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Disk format: the table names are part of the on-disk layout (store.h,
 * docs/storage.md); renaming one is a format change. */
const char *const shoal__st_table_names[T_COUNT] = {
    "meta",  "changes", "authseq", "log",    "pending", "evidence", "docs",  "docsnap",  "peers",
    "evcid", "qview",   "qixreg",  "qindex", "evicted", "rejected", "seals", "unsealed",
};

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
int
shoal__st_fail(shoal__store *s, const char *what, int rc)
{
    set_msg(s->errmsg, sizeof s->errmsg, what, rc);
    return map_err(rc);
}

/* Resize the map with no txn of this process open; size 0 adopts the size
 * another process recorded.  Called with no lock held. */
static int
resize(shoal__store *s, uint64_t size)
{
    pthread_rwlock_wrlock(&s->resize_lock);
    int rc = mdb_env_set_mapsize(s->env, (size_t)size);
    pthread_rwlock_unlock(&s->resize_lock);
    if (rc)
        return shoal__st_fail(s, "mdb_env_set_mapsize", rc);
    return SHOAL_OK;
}

/* Growth is bounded twice: by MAX_MAP_SIZE (address space), and by what
 * the data can need and the disk can hold: the pages in use (up to the last
 * page LMDB has allocated) plus the free space of the file system holding
 * data.mdb (fstatvfs; available blocks, or free blocks for root).  A map
 * larger than that could only be filled by a file the disk cannot hold, so
 * a write that fills it gets SHOAL_ENOSPC instead of another doubling.
 * With the map bounded so, LMDB (which never allocates a page number at or
 * past the map, mdb_page_alloc) cannot write past it either; a page number
 * read from the file that lies past the last page (a damaged free list) is
 * refused at open by the walk (walk.c), before any writer could reuse it. */
int
shoal__st_grow(shoal__store *s)
{
    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(s->env, &info);
    uint64_t cur = info.me_mapsize;
    uint64_t psize = mdb_env_stat(s->env, &est) == 0 ? est.ms_psize : 4096;
    uint64_t cap = MAX_MAP_SIZE;
    int fd;
    struct statvfs sv;
    if (mdb_env_get_fd(s->env, &fd) == 0 && fstatvfs(fd, &sv) == 0) {
        uint64_t blocks = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
        uint64_t disk = (info.me_last_pgno + 1) * psize + blocks * (uint64_t)sv.f_frsize;
        if (disk < cap)
            cap = disk;
    }
    cap -= cap % psize;
    if (cur >= cap) {
        if (cap == MAX_MAP_SIZE)
            snprintf(s->errmsg, sizeof s->errmsg, "map size limit reached (%llu bytes)",
                     (unsigned long long)cur);
        else
            snprintf(s->errmsg, sizeof s->errmsg,
                     "the file system of data.mdb is full: the map of %llu bytes already "
                     "covers the data and the free space (%llu bytes)",
                     (unsigned long long)cur, (unsigned long long)cap);
        return SHOAL_ENOSPC;
    }
    return resize(s, cur * 2 < cap ? cur * 2 : cap);
}

/* Begin a txn holding resize_lock shared; handles MDB_MAP_RESIZED. */
int
shoal__st_txn_begin(shoal__store *s, bool write, MDB_txn **out)
{
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&s->resize_lock);
        int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, out);
        if (rc == 0)
            return SHOAL_OK;
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc != MDB_MAP_RESIZED || tries >= MAX_RESIZED_RETRIES)
            return shoal__st_fail(s, "mdb_txn_begin", rc);
        int r = resize(s, 0);
        if (r)
            return r;
    }
}

void
shoal__st_txn_end_lock(shoal__store *s)
{
    pthread_rwlock_unlock(&s->resize_lock);
}

/* An errno value from a file system call on path: text into errbuf. */
static int
errno_err(char *errbuf, size_t errlen, const char *what, const char *path, int e)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s %s: %s", what, path, strerror(e));
    return map_err(e);
}

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

/* dir/data.mdb, or NULL (no memory). */
static char *
data_path(const char *dir)
{
    size_t n = strlen(dir) + sizeof "/data.mdb";
    char *p = shoal__malloc(n);
    if (p)
        snprintf(p, n, "%s/data.mdb", dir);
    return p;
}

static bool
data_file_missing(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/* The walk of walk.c over the current snapshot, in a read txn of its own:
 * again in a new txn while a writer rewrites the snapshot's meta page
 * meanwhile (SHOAL__ST_RETRY).  Text into msg. */
static int
snapshot_verify(shoal__store *s, shoal__store_check *st, char *msg, size_t len)
{
    for (int tries = 0;; tries++) {
        MDB_txn *txn;
        int rc = shoal__st_txn_begin(s, false, &txn);
        if (rc) {
            if (msg != s->errmsg && msg && len)
                snprintf(msg, len, "%s", s->errmsg);
            return rc;
        }
        rc = shoal__st_walk(s->env, txn, st, msg, len);
        mdb_txn_abort(txn);
        shoal__st_txn_end_lock(s);
        if (rc != SHOAL__ST_RETRY)
            return rc;
        /* Two commits per walk for so long: the meta page that should hold
         * the snapshot does not (msg says so when it holds another id). */
        if (tries >= 64) {
            if (msg && len && strncmp(msg, "data.mdb is damaged", 19) != 0)
                snprintf(msg, len, "data.mdb: the meta page kept changing during the check");
            return SHOAL_ECORRUPT;
        }
    }
}

int
shoal__store_verify(shoal__store *s, shoal__store_check *st)
{
    assert(s);
    s->errmsg[0] = '\0';
    return snapshot_verify(s, st, s->errmsg, sizeof s->errmsg);
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
        if (k.mv_size != EVKEY_BYTES)
            continue;
        uint8_t kb[EVKEY_BYTES]; /* a copy: the put may not point into the map */
        memcpy(kb, k.mv_data, EVKEY_BYTES);
        MDB_val ck = mval(kb + SHOAL__SEQKEY_BYTES, SHOAL__ID_BYTES),
                cv = mval(kb, SHOAL__SEQKEY_BYTES);
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
        int rc = shoal__st_txn_begin(s, true, &txn);
        if (rc)
            return rc;
        MDB_dbi old;
        int mrc = mdb_dbi_open(txn, FORMAT1_TABLE, 0, &old);
        if (mrc == 0) {
            mdb_txn_abort(txn);
            shoal__st_txn_end_lock(s);
            snprintf(s->errmsg, sizeof s->errmsg,
                     "the replica uses the first store layout (format 1), which this "
                     "version does not read");
            return SHOAL_ECORRUPT;
        }
        mrc = 0;
        for (int i = 0; i < T_COUNT && !mrc; i++)
            mrc = mdb_dbi_open(txn, shoal__st_table_names[i], MDB_CREATE, &s->dbi[i]);
        if (!mrc)
            mrc = evcid_backfill(s, txn);
        if (!mrc)
            mrc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        shoal__st_txn_end_lock(s);
        if (mrc == MDB_MAP_FULL) {
            rc = shoal__st_grow(s);
            if (rc)
                return rc;
            continue;
        }
        if (mrc)
            return shoal__st_fail(s, "opening tables", mrc);
        return SHOAL_OK;
    }
    return shoal__st_fail(s, "opening tables", MDB_MAP_FULL);
}

/* ------------------------------------------------- a new environment */

/* Staging directories are DIR/.new-PID-XXXXXX. */
#define STAGE_PREFIX ".new-"

/* Remove a staging directory (its data.mdb and lock.mdb). */
static void
stage_remove(const char *stage)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n = strlen(stage) + strlen(files[i]) + 2;
        char *p = shoal__malloc(n);
        if (!p)
            return;
        snprintf(p, n, "%s/%s", stage, files[i]);
        unlink(p);
        shoal__free(p);
    }
    rmdir(stage);
}

/* Staging directories left by creators that died (their pid is gone). */
static void
stage_sweep(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, STAGE_PREFIX, strlen(STAGE_PREFIX)) != 0)
            continue;
        char *end;
        long pid = strtol(de->d_name + strlen(STAGE_PREFIX), &end, 10);
        if (end == de->d_name + strlen(STAGE_PREFIX) || *end != '-' || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        size_t n = strlen(dir) + strlen(de->d_name) + 2;
        char *p = shoal__malloc(n);
        if (!p)
            break;
        snprintf(p, n, "%s/%s", dir, de->d_name);
        stage_remove(p);
        shoal__free(p);
    }
    closedir(d);
}

/* Make dir's data.mdb appear whole or not at all.  LMDB creates a new
 * environment by writing its two meta pages without a sync; a power cut
 * before the first sync can leave a file whose meta page is zeroed, which
 * no later open accepts (docs/testing.md, "Power cuts").  So the
 * environment is made in a staging directory, with its tables, by one
 * durable commit (which syncs the whole file), then linked into place and
 * the directory synced.  A crash before the link leaves no data.mdb (the
 * next open starts over and sweeps the staging directory); link() fails
 * with EEXIST when another process created data.mdb first, and then its
 * file is the one used. */
static int
create_staged(const char *dir, uint64_t map_size, char *errbuf, size_t errlen)
{
    stage_sweep(dir);
    size_t n = strlen(dir) + sizeof "/" STAGE_PREFIX "-XXXXXX" + 24;
    char *stage = shoal__malloc(n), *from = NULL, *to = NULL;
    if (!stage)
        return SHOAL_ENOMEM;
    snprintf(stage, n, "%s/" STAGE_PREFIX "%ld-XXXXXX", dir, (long)getpid());
    if (!mkdtemp(stage)) {
        int e = errno;
        shoal__free(stage);
        return errno_err(errbuf, errlen, "cannot create a staging directory in", dir, e);
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int mrc = mdb_env_create(&env);
    if (!mrc)
        mrc = mdb_env_set_maxdbs(env, T_COUNT + 2);
    if (!mrc)
        mrc = mdb_env_set_mapsize(env, (size_t)map_size);
    if (!mrc)
        mrc = mdb_env_open(env, stage, MDB_NOTLS, 0600);
    if (!mrc)
        mrc = mdb_txn_begin(env, NULL, 0, &txn);
    for (int i = 0; !mrc && i < T_COUNT; i++) {
        MDB_dbi dbi;
        mrc = mdb_dbi_open(txn, shoal__st_table_names[i], MDB_CREATE, &dbi);
    }
    if (txn) {
        if (!mrc)
            mrc = mdb_txn_commit(txn); /* durable: the whole file is synced */
        else
            mdb_txn_abort(txn);
    }
    if (env)
        mdb_env_close(env);
    int rc = SHOAL_OK;
    if (mrc) {
        rc = map_err(mrc);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cannot create the LMDB environment in %s: %s", dir,
                     mdb_strerror(mrc));
    }
    if (!rc) {
        from = data_path(stage);
        to = data_path(dir);
        if (!from || !to)
            rc = SHOAL_ENOMEM;
        else if (link(from, to) != 0 && errno != EEXIST)
            rc = errno_err(errbuf, errlen, "cannot link the new data.mdb into", dir, errno);
    }
    if (!rc) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0)
            rc = errno_err(errbuf, errlen, "cannot fsync", dir, errno);
        if (dfd >= 0)
            close(dfd);
    }
    stage_remove(stage);
    shoal__free(from);
    shoal__free(to);
    shoal__free(stage);
    return rc;
}

int
shoal__store_open(shoal__store **out, const char *dir, const shoal__store_opts *o, char *errbuf,
                  size_t errlen)
{
    assert(out && dir);
    *out = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
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
    char *path = data_path(dir);
    if (!path) {
        rc = SHOAL_ENOMEM;
        goto fail;
    }
    bool fresh = data_file_missing(path);
    if (fresh) {
        rc = create_staged(dir, map_size, errbuf, errlen);
        if (rc) {
            shoal__free(path);
            goto fail;
        }
        fresh = data_file_missing(path); /* false: from here it is a file to check */
    }
    /* An existing file's meta pages are checked before LMDB maps it with
     * the page size and map size they declare (walk.c).  A file of 0 bytes
     * is refused too: LMDB would take it for a new environment. */
    if (!fresh)
        rc = shoal__st_precheck(path, errbuf, errlen);
    shoal__free(path);
    if (rc)
        goto fail;
    mrc = mdb_env_set_maxdbs(s->env, T_COUNT + 2);
    if (!mrc && fresh)
        mrc = mdb_env_set_mapsize(s->env, (size_t)map_size);
    if (mrc) {
        set_msg(errbuf, errlen, "configuring LMDB", mrc);
        rc = map_err(mrc);
        goto fail;
    }
    /* Both modes commit to LMDB durably; the fast mode groups commits into
     * batches (batch.c).  Never MDB_NOSYNC: after a power cut its meta page
     * can point at pages that did not reach the disk (docs/storage.md). */
    unsigned flags = MDB_NOTLS;
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
    /* Every page of the snapshot, before anything follows a page number
     * (mdb_dbi_open in open_tables does): see walk.c. */
    if (!fresh) {
        rc = snapshot_verify(s, NULL, errbuf, errlen);
        if (rc)
            goto fail;
    }
    rc = open_tables(s);
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", s->errmsg);
        goto fail;
    }
    if (!durable && (rc = shoal__st_batch_start(s)) != SHOAL_OK) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cannot start the flusher thread");
        goto fail;
    }
    *out = s;
    return SHOAL_OK;
fail:
    if (s->env)
        mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->resize_lock);
    pthread_mutex_destroy(&s->flags_mu);
    pthread_mutex_destroy(&s->tc_mu);
    shoal__st_set_free(s->tc);
    shoal__free(s);
    return rc;
}

void
shoal__store_close(shoal__store *s)
{
    if (!s)
        return;
    shoal__st_batch_stop(s);
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->resize_lock);
    pthread_mutex_destroy(&s->flags_mu);
    pthread_mutex_destroy(&s->tc_mu);
    shoal__st_set_free(s->tc);
    shoal__free(s);
}

/* An empty write txn held while fn runs. */
static int
exclusive_txn(shoal__store *s, int (*fn)(void *arg), void *arg)
{
    MDB_txn *txn;
    int rc = shoal__st_txn_begin(s, true, &txn);
    if (rc)
        return rc;
    rc = fn(arg);
    mdb_txn_abort(txn);
    shoal__st_txn_end_lock(s);
    return rc;
}

typedef struct excl_ctx {
    shoal__store *s;
    int (*fn)(void *arg);
    void *arg;
} excl_ctx;

static int
excl_run(void *argp)
{
    excl_ctx *c = argp;
    return exclusive_txn(c->s, c->fn, c->arg);
}

/* LMDB's writer lock of the directory (which every process writing it
 * takes), held while fn runs; a fast-mode store first ends its open batch
 * and keeps the next one from beginning meanwhile. */
int
shoal__store_exclusive(shoal__store *s, int (*fn)(void *arg), void *arg)
{
    assert(s && fn);
    if (s->batched) {
        excl_ctx c = { s, fn, arg };
        return shoal__st_batch_quiet(s, excl_run, &c);
    }
    return exclusive_txn(s, fn, arg);
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
    if (s->batched) /* every batch is committed durably */
        return shoal__st_batch_flush(s);
    pthread_mutex_lock(&s->flags_mu);
    int rc = mdb_env_sync(s->env, 1);
    pthread_mutex_unlock(&s->flags_mu);
    if (rc)
        return shoal__st_fail(s, "mdb_env_sync", rc);
    return SHOAL_OK;
}

int
shoal__store_fit(shoal__store *s)
{
    assert(s);
    MDB_envinfo info;
    MDB_stat st;
    int fd;
    int rc = mdb_env_info(s->env, &info);
    if (!rc)
        rc = mdb_env_stat(s->env, &st);
    if (!rc)
        rc = mdb_env_get_fd(s->env, &fd);
    if (rc)
        return shoal__st_fail(s, "mdb_env_info", rc);
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return SHOAL_ESTORE;
    off_t need = (off_t)(info.me_last_pgno + 1) * (off_t)st.ms_psize;
    if (sb.st_size >= need)
        return SHOAL_OK;
    /* The pages past the end are free ones LMDB never wrote: extend the
     * file over them (zeros, never read before LMDB writes them) and make
     * that durable, so that the size agrees with the meta page. */
    if (ftruncate(fd, need) != 0 || fsync(fd) != 0)
        return errno == ENOSPC ? SHOAL_ENOSPC : SHOAL_ESTORE;
    return SHOAL_OK;
}

const char *
shoal__store_errmsg(const shoal__store *s)
{
    return s ? s->errmsg : "";
}
