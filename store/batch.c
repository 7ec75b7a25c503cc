/*
 * store/batch.c - group commit, the store's fast (non-durable) mode.
 *
 * A durable commit costs two syncs.  The fast mode must not cost them per
 * commit, and must never damage the replica after a power cut (LMDB's
 * MDB_NOSYNC can: the meta page may reach the disk before the pages it
 * points to).  So commits are grouped: the flusher thread begins one LMDB
 * write transaction, the batch; each commit of the store runs in a child
 * transaction of it (mdb_txn_begin with the batch as parent) and, when it
 * returns, is merged into the batch, in memory; the flusher commits the
 * batch, an ordinary durable LMDB commit, BATCH_MS after it began (sooner
 * when it grew past BATCH_MAX_BYTES, on a flush, or at close).  Every
 * batch is atomic and synced, so after any crash the replica holds exactly
 * the batches committed before it: a prefix of its commits.  What a crash
 * (of the process or of the machine) can lose is the open batch: the
 * commits of the last BATCH_MS.  shoal__store_flush ends the open batch
 * and returns once it is on disk.
 *
 * Why a thread.  LMDB ties a write transaction to the thread that began it
 * (its writer lock is a process-shared mutex, unlocked by the owner), and a
 * batch must end on time even when no further commit comes; so the flusher
 * begins and commits every batch, and the callers' threads only run child
 * transactions.  LMDB allows one child at a time and no use of the parent
 * while a child is active: every child runs with bmu held, and the flusher
 * ends a batch only with bmu held.
 *
 * Reads.  Commits that returned are in the batch, not yet in any LMDB
 * snapshot.  So while a batch is open, a read of this process runs in the
 * batch, with bmu held, and sees them; with no batch open it is an
 * ordinary read transaction.  Other processes see a commit once
 * its batch is committed, at most BATCH_MS later; while a batch is open
 * their writers wait for LMDB's writer lock.  A read made inside a commit's
 * function (same thread, bmu held) reads the last committed snapshot, as
 * it would in durable mode.
 *
 * Failures.  A child that fails (fn's error, a poisoned txn) is aborted and
 * leaves the batch as it was.  A child that fills the map is aborted, the
 * batch is committed, the map grows and fn runs again.  A batch begins
 * only with BATCH_HEADROOM bytes of the map unused, and ends once it holds
 * BATCH_MAX_BYTES, so its own commit does not run out of map.  If the
 * commit of a batch still fails (an I/O error, a full disk), its commits
 * are undone, as a power cut would undo them; the error is kept and
 * returned by the next write or flush of this handle.
 *
 * Tail cache keys.  A child's mdb_txn_id is its batch's, so a snapshot
 * inside a batch is keyed by the batch's txn id and the number of commits
 * that wrote into it so far (shoal__st_snap_id; BATCH_GEN_BITS).
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The store whose batch child this thread is running, if any: a read it
 * makes meanwhile cannot use the batch (bmu is held, one child at a
 * time). */
static _Thread_local const shoal__store *in_child;

/* Record an error of the flusher for the next caller. */
static void
batch_fail(shoal__store *s, const char *what, int rc)
{
    if (s->berr)
        return;
    if (rc == EIO && shoal__st_disk_full(s))
        rc = ENOSPC;
    s->berr = shoal__st_fail(s, what, rc);
    snprintf(s->berrmsg, sizeof s->berrmsg, "%s", s->errmsg);
}

/* The flusher's error, once: SHOAL_OK if none.  bmu held. */
static int
take_err(shoal__store *s)
{
    int rc = s->berr;
    if (rc) {
        snprintf(s->errmsg, sizeof s->errmsg,
                 "an earlier batch of fast-mode commits was undone: %.190s", s->berrmsg);
        s->berr = 0;
    }
    return rc;
}

/* The bytes of the map no snapshot uses yet. */
static uint64_t
map_unused(shoal__store *s, uint64_t *mapsize)
{
    MDB_envinfo info;
    MDB_stat st;
    *mapsize = 0;
    if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st))
        return 0;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    *mapsize = info.me_mapsize;
    return info.me_mapsize > used ? info.me_mapsize - used : 0;
}

/* Before a batch begins (bmu held, none open): grow the map while less
 * than BATCH_HEADROOM, or half of it, is unused, as far as it may grow
 * (best effort: a child that fills the map still retries), and set the
 * batch's byte cap to a quarter of what is unused, so that the commit of
 * the batch itself does not run out of map. */
static void
headroom(shoal__store *s)
{
    uint64_t size, unused = map_unused(s, &size);
    for (int i = 0; i < 8 && unused < BATCH_HEADROOM && unused < size / 2; i++) {
        if (shoal__st_grow(s) != SHOAL_OK)
            break;
        unused = map_unused(s, &size);
    }
    s->bcap = unused / 4 < BATCH_MAX_BYTES ? unused / 4 : BATCH_MAX_BYTES;
}

/* Commit the open batch.  bmu held; no child active. */
static void
batch_end(shoal__store *s)
{
    if (!s->batch)
        return;
    int rc = mdb_txn_commit(s->batch);
    s->batch = NULL;
    shoal__st_txn_end_lock(s);
    if (rc == 0 && atomic_exchange(&s->fit_due, false) && shoal__store_fit(s) != SHOAL_OK)
        atomic_store(&s->fit_due, true); /* best effort, as in txn.c */
    if (rc)
        batch_fail(s, "committing a batch of fast-mode commits", rc);
    /* The tail cache may hold a snapshot of the batch: its key names a
     * batch that no longer exists (and on failure, a state that never
     * will), and LMDB reuses the txn id if the commit failed. */
    pthread_mutex_lock(&s->tc_mu);
    s->tc_ok = false;
    pthread_mutex_unlock(&s->tc_mu);
    s->bcommits++;
    s->bflush = false;
    pthread_cond_broadcast(&s->bdone);
}

static void
deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *
flusher_main(void *arg)
{
    shoal__store *s = arg;
    pthread_mutex_lock(&s->bmu);
    for (;;) {
        while (!s->bwant && !s->bstop)
            pthread_cond_wait(&s->bwake, &s->bmu);
        if (!s->bwant)
            break; /* stopping, nothing open */
        headroom(s);
        int rc = shoal__st_txn_begin(s, true, &s->batch);
        s->bwant = false;
        if (rc) {
            s->batch = NULL;
            if (!s->berr) {
                s->berr = rc;
                snprintf(s->berrmsg, sizeof s->berrmsg, "%s", s->errmsg);
            }
            pthread_cond_broadcast(&s->bdone);
            continue;
        }
        s->bgen = 0;
        s->bbytes = 0;
        pthread_cond_broadcast(&s->bdone);
        deadline_after(&s->bdeadline, BATCH_MS);
        while (!s->bflush && !s->bstop) {
            if (pthread_cond_timedwait(&s->bwake, &s->bmu, &s->bdeadline) == ETIMEDOUT)
                break;
        }
        batch_end(s);
    }
    pthread_mutex_unlock(&s->bmu);
    return NULL;
}

int
shoal__st_batch_start(shoal__store *s)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return SHOAL_ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_cond_init(&s->bwake, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok)
        return SHOAL_ENOMEM;
    if (pthread_cond_init(&s->bdone, NULL) != 0) {
        pthread_cond_destroy(&s->bwake);
        return SHOAL_ENOMEM;
    }
    if (pthread_mutex_init(&s->bmu, NULL) != 0) {
        pthread_cond_destroy(&s->bdone);
        pthread_cond_destroy(&s->bwake);
        return SHOAL_ENOMEM;
    }
    if (pthread_create(&s->flusher, NULL, flusher_main, s) != 0) {
        pthread_mutex_destroy(&s->bmu);
        pthread_cond_destroy(&s->bdone);
        pthread_cond_destroy(&s->bwake);
        return SHOAL_ENOMEM;
    }
    s->batched = true;
    return SHOAL_OK;
}

void
shoal__st_batch_stop(shoal__store *s)
{
    if (!s->batched)
        return;
    pthread_mutex_lock(&s->bmu);
    s->bstop = true;
    pthread_cond_signal(&s->bwake);
    pthread_mutex_unlock(&s->bmu);
    pthread_join(s->flusher, NULL);
    s->batched = false;
    pthread_mutex_destroy(&s->bmu);
    pthread_cond_destroy(&s->bdone);
    pthread_cond_destroy(&s->bwake);
}

/* End the open batch and wait until it is committed.  bmu held. */
static void
end_now(shoal__store *s)
{
    if (!s->batch)
        return;
    uint64_t target = s->bcommits + 1;
    s->bflush = true;
    pthread_cond_signal(&s->bwake);
    while (s->bcommits < target)
        pthread_cond_wait(&s->bdone, &s->bmu);
}

/* The open batch is past its deadline.  Writers check it themselves: a
 * thread committing in a loop takes bmu again at once and would starve
 * the flusher (mutexes are not fair). */
static bool
overdue(const shoal__store *s)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > s->bdeadline.tv_sec ||
           (now.tv_sec == s->bdeadline.tv_sec && now.tv_nsec >= s->bdeadline.tv_nsec);
}

/* A child's commit merges it into the batch (in memory). */
static int
commit_child(shoal__stxn *t)
{
    return mdb_txn_commit(t->txn);
}

/* Have a batch open.  bmu held. */
static int
need_batch(shoal__store *s)
{
    while (!s->batch) {
        int rc = take_err(s);
        if (rc)
            return rc;
        s->bwant = true;
        pthread_cond_signal(&s->bwake);
        pthread_cond_wait(&s->bdone, &s->bmu);
    }
    return SHOAL_OK;
}

int
shoal__st_batch_write(shoal__store *s, shoal__txn_fn fn, void *arg)
{
    assert(s->batched && in_child != s);
    pthread_mutex_lock(&s->bmu);
    int rc = take_err(s);
    for (; !rc;) {
        if (s->batch && (s->bgen >= BATCH_MAX_GEN || overdue(s)))
            end_now(s);
        rc = need_batch(s);
        if (rc)
            break;
        shoal__stxn t = { .s = s, .write = true };
        int mrc = mdb_txn_begin(s->env, s->batch, 0, &t.txn);
        if (mrc) {
            rc = shoal__st_fail(s, "beginning a commit in the batch", mrc);
            break;
        }
        uint64_t base = (uint64_t)mdb_txn_id(s->batch) << BATCH_GEN_BITS;
        t.key = base | s->bgen;
        in_child = s;
        rc = fn(&t, arg);
        in_child = NULL;
        bool full, done;
        rc = shoal__st_write_end(&t, rc, commit_child, "merging a commit into the batch", t.key,
                                 base | (s->bgen + 1), &full, &done);
        if (done && t.wrote)
            s->bgen++;
        if (!full) {
            /* Past the cap: commit the batch now, while the map still has
             * room for the commit's own pages. */
            if (!rc && s->bbytes > s->bcap) {
                end_now(s);
                rc = take_err(s);
            }
            break;
        }
        /* Full: commit what the batch holds, grow, run fn again. */
        end_now(s);
        rc = take_err(s);
        if (!rc)
            rc = shoal__st_grow(s);
    }
    pthread_mutex_unlock(&s->bmu);
    return rc;
}

int
shoal__st_batch_read(shoal__store *s, shoal__txn_fn fn, void *arg, bool *done)
{
    *done = false;
    if (in_child == s)
        return SHOAL_OK;
    pthread_mutex_lock(&s->bmu);
    if (!s->batch) {
        pthread_mutex_unlock(&s->bmu);
        return SHOAL_OK;
    }
    *done = true;
    /* The read runs in the batch itself, not in a child: a child costs
     * LMDB two large allocations, and a read changes nothing.  Only a
     * damaged page (MDB_CORRUPTED, MDB_PAGE_NOTFOUND) can poison the batch
     * from here, and then its commit fails and reports it. */
    shoal__stxn t = { .s = s, .write = false, .txn = s->batch };
    t.key = ((uint64_t)mdb_txn_id(s->batch) << BATCH_GEN_BITS) | s->bgen;
    in_child = s;
    int rc = fn(&t, arg);
    in_child = NULL;
    if (t.tail_ok && shoal__st_tail_own(&t))
        shoal__st_tail_cache_put(&t, t.key);
    shoal__st_tail_free(&t);
    pthread_mutex_unlock(&s->bmu);
    return rc;
}

int
shoal__st_batch_flush(shoal__store *s)
{
    pthread_mutex_lock(&s->bmu);
    end_now(s);
    int rc = take_err(s);
    pthread_mutex_unlock(&s->bmu);
    return rc;
}

int
shoal__st_batch_quiet(shoal__store *s, int (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&s->bmu);
    end_now(s);
    int rc = take_err(s);
    if (!rc)
        rc = fn(arg);
    pthread_mutex_unlock(&s->bmu);
    return rc;
}
