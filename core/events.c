/*
 * core/events.c - the per-handle event queue.
 *
 * A bounded ring (SHOAL__EVENT_CAP) under its own mutex and condition
 * variable, so a thread blocked in shoal_event_next() never holds the
 * replica lock.  When the ring is full the oldest event is dropped and the
 * next event delivered carries overflowed = true: a slow consumer learns
 * that it must re-read state, and a replica nobody listens to uses bounded
 * memory.  Rejected: an unbounded queue (grows forever when the app never
 * reads events) and blocking the writer (a commit must not wait on a UI).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "core.h"

struct shoal_event {
    char *coll; /* owned */
    char *id;   /* owned */
    bool remote;
    bool left;   /* evicted: it left our view (partial sync) */
    bool voided; /* our own changes to it became VOID (orphans) */
    bool overflowed;
};

static void
event_free(struct shoal_event *e)
{
    if (e) {
        shoal__free(e->coll);
        shoal__free(e->id);
        shoal__free(e);
    }
}

void
shoal__events_init(shoal_replica *r)
{
    pthread_mutex_init(&r->ev_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->ev_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static char *
dup_str(const uint8_t *p, size_t n)
{
    char *s = shoal__malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static void push(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                 size_t idlen, bool remote, bool left, bool voided);

void
shoal__events_push(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                   size_t idlen, bool remote)
{
    push(r, coll, clen, id, idlen, remote, false, false);
}

void
shoal__events_push_left(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                        size_t idlen)
{
    push(r, coll, clen, id, idlen, false, true, false);
}

void
shoal__events_push_voided(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                          size_t idlen)
{
    push(r, coll, clen, id, idlen, true, false, true);
}

static void
push(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
     bool remote, bool left, bool voided)
{
    struct shoal_event *e = shoal__calloc(1, sizeof *e);
    if (e) {
        e->coll = dup_str(coll, clen);
        e->id = dup_str(id, idlen);
        e->remote = remote;
        e->left = left;
        e->voided = voided;
        if (!e->coll || !e->id) {
            event_free(e);
            e = NULL;
        }
    }
    pthread_mutex_lock(&r->ev_mu);
    shoal__event_q *q = &r->ev;
    if (!e) {
        /* Out of memory: the event is lost, say so on the next one. */
        q->overflow = true;
    } else {
        if (q->n == SHOAL__EVENT_CAP) {
            event_free(q->ring[q->head]);
            q->ring[q->head] = NULL;
            q->head = (q->head + 1) % SHOAL__EVENT_CAP;
            q->n--;
            q->overflow = true;
        }
        q->ring[(q->head + q->n) % SHOAL__EVENT_CAP] = e;
        q->n++;
        pthread_cond_signal(&r->ev_cv);
    }
    pthread_mutex_unlock(&r->ev_mu);
}

void
shoal__events_close(shoal_replica *r)
{
    pthread_mutex_lock(&r->ev_mu);
    shoal__event_q *q = &r->ev;
    q->closing = true;
    pthread_cond_broadcast(&r->ev_cv);
    while (q->waiters > 0)
        pthread_cond_wait(&r->ev_cv, &r->ev_mu);
    while (q->n > 0) {
        event_free(q->ring[q->head]);
        q->ring[q->head] = NULL;
        q->head = (q->head + 1) % SHOAL__EVENT_CAP;
        q->n--;
    }
    pthread_mutex_unlock(&r->ev_mu);
    pthread_cond_destroy(&r->ev_cv);
    pthread_mutex_destroy(&r->ev_mu);
    shoal__free(q->ring);
    q->ring = NULL;
}

shoal_err
shoal_event_next(shoal_replica *r, int timeout_ms, shoal_event **out)
{
    assert(r && out);
    *out = NULL;
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    shoal_err err = SHOAL_OK;
    pthread_mutex_lock(&r->ev_mu);
    shoal__event_q *q = &r->ev;
    q->waiters++;
    for (;;) {
        if (q->closing) {
            err = SHOAL_ECLOSED;
            break;
        }
        if (q->n > 0)
            break;
        if (timeout_ms == 0) {
            err = SHOAL_ETIMEDOUT;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&r->ev_cv, &r->ev_mu);
        } else if (pthread_cond_timedwait(&r->ev_cv, &r->ev_mu, &deadline) == ETIMEDOUT &&
                   q->n == 0 && !q->closing) {
            err = SHOAL_ETIMEDOUT;
            break;
        }
    }
    if (err == SHOAL_OK) {
        struct shoal_event *e = q->ring[q->head];
        q->ring[q->head] = NULL;
        q->head = (q->head + 1) % SHOAL__EVENT_CAP;
        q->n--;
        if (q->overflow) {
            e->overflowed = true;
            q->overflow = false;
        }
        *out = e;
    }
    q->waiters--;
    if (q->closing)
        pthread_cond_broadcast(&r->ev_cv);
    pthread_mutex_unlock(&r->ev_mu);
    return err;
}

void
shoal_event_free(shoal_event *e)
{
    event_free(e);
}

const char *
shoal_event_collection(const shoal_event *e)
{
    assert(e);
    return e->coll;
}

const char *
shoal_event_doc_id(const shoal_event *e)
{
    assert(e);
    return e->id;
}

bool
shoal_event_remote(const shoal_event *e)
{
    assert(e);
    return e->remote;
}

bool
shoal_event_left(const shoal_event *e)
{
    assert(e);
    return e->left;
}

bool
shoal_event_voided(const shoal_event *e)
{
    assert(e);
    return e->voided;
}

bool
shoal_event_overflowed(const shoal_event *e)
{
    assert(e);
    return e->overflowed;
}
