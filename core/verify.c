/*
 * core/verify.c - opening a batch of envelopes: every header parsed and
 * every signature verified before anything is decoded or stored, on the
 * process's signature-check threads for a large batch.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "core.h"

/* Signatures are checked before anything is decoded or stored, and a
 * batch with one bad envelope is rejected whole.  Verifying is most of an
 * import's CPU (one Ed25519 check is about 45 us here), so a batch of at
 * least SHOAL__VERIFY_PARALLEL_MIN envelopes is shared out between the
 * calling thread and up to SHOAL__VERIFY_THREADS - 1 helper threads, one
 * per online processor.  The helpers belong to the process: made on first
 * need, then kept, each waiting on a condition variable for the next batch
 * (making and joining threads for every batch cost about 2.4 us of CPU per
 * change on a loaded two-core machine: the stack's pages faulted in again,
 * more context switches).  The batch is cut into chunks of VERIFY_CHUNK
 * envelopes that the caller and the helpers claim in order under the
 * pool's mutex, so a helper that starts late (a busy machine) just finds
 * less to do, and a batch never waits for a helper that has not started.
 * Each chunk goes in order and stops at its first bad envelope; a chunk
 * starting past the lowest bad index known is skipped.  Every chunk below
 * the lowest bad index is checked whole, so that index, and its error, are
 * found whatever the scheduling: the same result as checking one after the
 * other.  One batch uses the helpers at a time; a batch that finds them
 * busy (another replica or thread of the process) is checked on its
 * calling thread alone.  After fork() the child starts without helpers
 * (pthread_atfork resets the pool). */

enum {
    VERIFY_CHUNK = 4
};

static struct vpool {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new batch (gen changed) */
    pthread_cond_t done; /* the batch's last chunk finished */
    size_t helpers;      /* helper threads running */
    long cpus;           /* online processors, read once */
    bool busy;           /* a batch owns the helpers */
    uint64_t gen;        /* batch number */
    shoal__rec *recs;
    size_t count, nchunks;
    size_t next;     /* next chunk to claim */
    size_t finished; /* chunks done */
    size_t bad;      /* lowest bad index known (SIZE_MAX: none) */
    int err;         /* its error */
} vp = { PTHREAD_MUTEX_INITIALIZER,
         PTHREAD_COND_INITIALIZER,
         PTHREAD_COND_INITIALIZER,
         0,
         0,
         false,
         0,
         NULL,
         0,
         0,
         0,
         0,
         SIZE_MAX,
         SHOAL_OK };

static pthread_once_t vp_once = PTHREAD_ONCE_INIT;

static void
vp_prepare(void)
{
    pthread_mutex_lock(&vp.mu);
}

static void
vp_parent(void)
{
    pthread_mutex_unlock(&vp.mu);
}

/* The child has no helpers (only the forking thread survives fork).  The
 * forking thread holds vp.mu (vp_prepare) and unlocks its copy; the
 * condition variables may still count the parent's waiting helpers, so
 * they start afresh. */
static void
vp_child(void)
{
    pthread_mutex_unlock(&vp.mu);
    pthread_cond_init(&vp.wake, NULL);
    pthread_cond_init(&vp.done, NULL);
    vp.helpers = 0;
    vp.busy = false;
}

static void
vp_init(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    vp.cpus = n < 1 ? 1 : n;
    pthread_atfork(vp_prepare, vp_parent, vp_child);
}

/* The disclosures of a verified envelope: each names a group of its
 * seals and is the group committed to (docs/permissions.md "Sealed
 * fields"); SHOAL_EBADSIG otherwise, as for a bad signature. */
static int
check_discs(const shoal__rec *r)
{
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, shoal__envelope_author(r->env), SHOAL_KEY_BYTES);
    int err = shoal__change_decode(r->body, r->body_len, &c);
    if (err)
        return err;
    for (size_t k = 0; !err && k < r->ndisc; k++) {
        uint8_t h[32];
        if (r->disc[k].g >= c.nseals) {
            err = SHOAL_EBADSIG;
            break;
        }
        shoal__seal_commit(r->disc[k].p, r->disc[k].n, h);
        if (sodium_memcmp(h, c.seal_commit + (size_t)r->disc[k].g * 32, 32) != 0)
            err = SHOAL_EBADSIG;
    }
    shoal__change_clear(&c);
    return err;
}

/* Check recs[lo..hi) (the batch's array, read under vp.mu by the claimer
 * and passed in): verify each signature and compute its change id; returns
 * the first bad index or SIZE_MAX. */
static size_t
verify_chunk(shoal__rec *recs, size_t lo, size_t hi, int *err)
{
    for (size_t i = lo; i < hi; i++) {
        size_t elen, blen;
        const uint8_t *body;
        int e = shoal__envelope_open(recs[i].env, recs[i].env_len, &elen, &body, &blen);
        if (e) {
            *err = e;
            return i;
        }
        shoal__change_id(recs[i].env, recs[i].env_len, recs[i].cid);
        if (recs[i].ndisc && (e = check_discs(&recs[i]))) {
            *err = e;
            return i;
        }
    }
    return SIZE_MAX;
}

/* Claim and check chunks of the batch of generation gen until none is
 * left; called and returns with vp.mu held. */
static void
vp_work(uint64_t gen)
{
    while (vp.gen == gen && vp.next < vp.nchunks) {
        size_t c = vp.next++;
        size_t lo = c * VERIFY_CHUNK;
        size_t hi = lo + VERIFY_CHUNK < vp.count ? lo + VERIFY_CHUNK : vp.count;
        if (lo > vp.bad) { /* a lower index already fails the batch */
            if (++vp.finished == vp.nchunks)
                pthread_cond_signal(&vp.done);
            continue;
        }
        shoal__rec *recs = vp.recs;
        pthread_mutex_unlock(&vp.mu);
        int err = SHOAL_OK;
        size_t at = verify_chunk(recs, lo, hi, &err);
        pthread_mutex_lock(&vp.mu);
        if (at < vp.bad) {
            vp.bad = at;
            vp.err = err;
        }
        if (++vp.finished == vp.nchunks)
            pthread_cond_signal(&vp.done);
    }
}

static void *
vp_helper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&vp.mu);
    uint64_t seen = vp.gen;
    for (;;) {
        while (vp.gen == seen)
            pthread_cond_wait(&vp.wake, &vp.mu);
        seen = vp.gen;
        vp_work(seen);
    }
    return NULL;
}

/* Verify the signatures of recs[0..count) and fill in their ids; the
 * error of the lowest-index bad one, or SHOAL_OK. */
static int
verify_recs(shoal__rec *recs, size_t count)
{
    if (sodium_init() < 0) /* once, before any thread may call it */
        return SHOAL_ENOMEM;
    pthread_once(&vp_once, vp_init);
    size_t want = vp.cpus > SHOAL__VERIFY_THREADS ? SHOAL__VERIFY_THREADS : (size_t)vp.cpus;
    bool pool = false;
    if (count >= SHOAL__VERIFY_PARALLEL_MIN && want > 1) {
        pthread_mutex_lock(&vp.mu);
        if (!vp.busy) {
            while (vp.helpers < want - 1) {
                pthread_t th;
                pthread_attr_t at;
                bool ok = pthread_attr_init(&at) == 0;
                if (ok) {
                    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
                    ok = pthread_create(&th, &at, vp_helper, NULL) == 0;
                    pthread_attr_destroy(&at);
                }
                if (!ok)
                    break; /* fewer helpers: the caller checks more */
                vp.helpers++;
            }
            pool = vp.helpers > 0;
        }
        if (pool) {
            vp.busy = true;
            vp.recs = recs;
            vp.count = count;
            vp.nchunks = (count + VERIFY_CHUNK - 1) / VERIFY_CHUNK;
            vp.next = vp.finished = 0;
            vp.bad = SIZE_MAX;
            vp.err = SHOAL_OK;
            uint64_t gen = ++vp.gen;
            pthread_cond_broadcast(&vp.wake);
            vp_work(gen);
            while (vp.finished < vp.nchunks)
                pthread_cond_wait(&vp.done, &vp.mu);
            int err = vp.err;
            vp.recs = NULL;
            vp.busy = false;
            pthread_mutex_unlock(&vp.mu);
            return err;
        }
        pthread_mutex_unlock(&vp.mu);
    }
    int err = SHOAL_OK;
    verify_chunk(recs, 0, count, &err);
    return err;
}

int
shoal__recs_open(const uint8_t *p, size_t n, size_t off, size_t count, shoal__rec **recs)
{
    *recs = NULL;
    shoal__rec *s = NULL;
    /* The disclosures that follow envelopes, counted first: records and
     * disclosures share one block. */
    size_t ndisc = 0;
    for (size_t i = 0, o = off; i < count && o < n; i++) {
        size_t elen, blen, dl, dc;
        const uint8_t *body;
        if (shoal__envelope_parse(p + o, n - o, &elen, &body, &blen) ||
            shoal__disc_scan(p + o + elen, n - o - elen, &dl, NULL, &dc))
            break; /* found again below */
        ndisc += dc;
        o += elen + dl;
    }
    if (count) {
        s = shoal__calloc(1, count * sizeof *s + ndisc * sizeof(shoal__disc));
        if (!s)
            return SHOAL_ENOMEM;
    }
    shoal__disc *dv = s ? (shoal__disc *)(void *)(s + count) : NULL;
    /* Headers and bounds first (cheap, in order); a header error at index
     * i counts only if no envelope before i has a bad signature. */
    int perr = SHOAL_OK;
    size_t parsed = 0, used = 0;
    for (; parsed < count; parsed++) {
        size_t elen, blen, dl, dc;
        const uint8_t *body;
        perr = shoal__envelope_parse(p + off, n - off, &elen, &body, &blen);
        if (perr)
            break;
        s[parsed].env = p + off;
        s[parsed].env_len = elen;
        s[parsed].body = body;
        s[parsed].body_len = blen;
        off += elen;
        perr = shoal__disc_scan(p + off, n - off, &dl, NULL, &dc);
        if (!perr && used + dc > ndisc)
            perr = SHOAL_EPROTO;
        if (!perr)
            perr = shoal__disc_scan(p + off, n - off, &dl, dv + used, &dc);
        if (perr)
            break;
        s[parsed].disc = dc ? dv + used : NULL;
        s[parsed].ndisc = dc;
        used += dc;
        off += dl;
    }
    int err = verify_recs(s, parsed);
    if (!err)
        err = perr;
    if (!err && off != n)
        err = SHOAL_EPROTO;
    if (err) {
        shoal__free(s);
        return err;
    }
    *recs = s;
    return SHOAL_OK;
}
