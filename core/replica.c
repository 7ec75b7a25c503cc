/*
 * core/replica.c - options and the replica handle: open, close, flush,
 * identity, the wall clock and the per-replica error message.
 *
 * One pthread mutex per replica serialises every API call that reads or
 * writes the store (the event queue and the network calls have locks of
 * their own, docs/c-api.md "Thread safety").  LMDB allows
 * one writer anyway, and the doc cache and the working set are plain data
 * structures; finer locking would buy little for an embedded, mostly local
 * workload and cost a lot of reasoning.  Reads still never block writers of
 * other processes (LMDB MVCC).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core.h"

/* --------------------------------------------------------------- options */

shoal_err
shoal_options_new(shoal_options **out)
{
    assert(out);
    shoal_options *o = shoal__calloc(1, sizeof *o);
    *out = o;
    if (!o)
        return SHOAL_ENOMEM;
    o->durable = true;
    o->map_size = 0;
    o->max_drift_ms = SHOAL__DEFAULT_DRIFT_MS;
    return SHOAL_OK;
}

void
shoal_options_free(shoal_options *o)
{
    shoal__free(o);
}

shoal_err
shoal_options_set_durable(shoal_options *o, bool durable)
{
    assert(o);
    o->durable = durable;
    return SHOAL_OK;
}

shoal_err
shoal_options_set_map_size(shoal_options *o, uint64_t bytes)
{
    assert(o);
    if (bytes != 0 && bytes < (1u << 20))
        return SHOAL_EINVAL;
    o->map_size = bytes;
    return SHOAL_OK;
}

shoal_err
shoal_options_set_max_drift_ms(shoal_options *o, uint64_t ms)
{
    assert(o);
    /* The HLC keeps 48 bits of milliseconds. */
    if (ms >= (1ull << 47))
        return SHOAL_EINVAL;
    o->max_drift_ms = ms;
    return SHOAL_OK;
}

shoal_err
shoal_options_set_clock(shoal_options *o, uint64_t (*now_ms)(void *ctx), void *ctx)
{
    assert(o);
    o->now_ms = now_ms;
    o->clock_ctx = ctx;
    return SHOAL_OK;
}

/* --------------------------------------------------------------- helpers */

uint64_t
shoal__wall_ms(shoal_replica *r)
{
    if (r->opt.now_ms)
        return r->opt.now_ms(r->opt.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
cat(char *buf, size_t size, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + 1 >= size)
        return;
    if (n > size - 1 - *pos)
        n = size - 1 - *pos;
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = 0;
}

shoal_err
shoal__fail(shoal_replica *r, int err, const char *fmt, ...)
{
    if (err == SHOAL_OK)
        return SHOAL_OK;
    char detail[SHOAL__ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    const char *store = NULL;
    if ((err == SHOAL_ESTORE || err == SHOAL_ENOSPC || err == SHOAL_ECORRUPT ||
         err == SHOAL_EREADONLY) &&
        r->store)
        store = shoal__store_errmsg(r->store);
    size_t pos = 0;
    r->errmsg[0] = 0;
    cat(r->errmsg, sizeof r->errmsg, &pos, shoal_strerror((shoal_err)err));
    if (detail[0]) {
        cat(r->errmsg, sizeof r->errmsg, &pos, ": ");
        cat(r->errmsg, sizeof r->errmsg, &pos, detail);
    }
    if (store && store[0]) {
        cat(r->errmsg, sizeof r->errmsg, &pos, " - ");
        cat(r->errmsg, sizeof r->errmsg, &pos, store);
    }
    return (shoal_err)err;
}

bool
shoal__name_ok(const char *s, size_t max, size_t *len)
{
    if (!s)
        return false;
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return false;
    if (!shoal__utf8_valid((const uint8_t *)s, n))
        return false;
    if (len)
        *len = n;
    return true;
}

/* --------------------------------------------------------------- replica */

typedef struct pend_ctx {
    uint64_t n;
} pend_ctx;

static int
pending_count_fn(shoal__stxn *t, void *arg)
{
    ((pend_ctx *)arg)->n = shoal__stxn_pending_count(t);
    return SHOAL_OK;
}

void
shoal__options_set_root(shoal_options *o, const uint8_t root[SHOAL_KEY_BYTES])
{
    o->has_root = root != NULL;
    if (root)
        memcpy(o->root, root, SHOAL_KEY_BYTES);
}

/* Disk format: meta "root", the 32-byte root key of a replica that
 * enforces permissions (docs/storage.md). */
typedef struct root_ctx {
    shoal_replica *r;
    bool found;
    bool empty;
} root_ctx;

static int
root_read_fn(shoal__stxn *t, void *arg)
{
    root_ctx *c = arg;
    shoal__sval v;
    int err = shoal__stxn_meta_get(t, "root", &v);
    if (err == SHOAL_ENOTFOUND) {
        uint64_t next = 0;
        err = shoal__stxn_log_next(t, &next, NULL);
        c->empty = next <= 1;
        return err;
    }
    if (err)
        return err;
    if (v.len != SHOAL_KEY_BYTES)
        return SHOAL_ECORRUPT;
    memcpy(c->r->root, v.p, SHOAL_KEY_BYTES);
    c->found = true;
    return SHOAL_OK;
}

static int
root_write_fn(shoal__stxn *t, void *arg)
{
    shoal_replica *r = arg;
    return shoal__stxn_meta_put(t, "root", r->opt.root, SHOAL_KEY_BYTES);
}

/* Load the root a directory trusts, or record the option's in a new one. */
static int
root_load(shoal_replica *r)
{
    root_ctx c = { r, false, false };
    int err = shoal__store_read(r->store, root_read_fn, &c);
    if (err)
        return err;
    if (c.found) {
        if (r->opt.has_root && memcmp(r->opt.root, r->root, SHOAL_KEY_BYTES) != 0)
            return shoal__fail(r, SHOAL_EINVAL, "the replica trusts another root key");
        r->enforce = true;
        return SHOAL_OK;
    }
    if (!r->opt.has_root)
        return SHOAL_OK;
    if (!c.empty)
        return shoal__fail(r, SHOAL_EINVAL,
                           "the replica was created without a root key and holds changes");
    err = shoal__store_write(r->store, root_write_fn, r);
    if (err)
        return err;
    memcpy(r->root, r->opt.root, SHOAL_KEY_BYTES);
    r->enforce = true;
    return SHOAL_OK;
}

shoal_err
shoal_replica_open(shoal_replica **out, const char *dir, const shoal_options *opts)
{
    assert(out);
    *out = NULL;
    if (!dir || !*dir)
        return SHOAL_EINVAL;
    if (sodium_init() < 0)
        return SHOAL_ESTORE;
    shoal_replica *r = shoal__calloc(1, sizeof *r);
    if (!r)
        return SHOAL_ENOMEM;
    if (opts) {
        r->opt = *opts;
    } else {
        r->opt.durable = true;
        r->opt.max_drift_ms = SHOAL__DEFAULT_DRIFT_MS;
    }
    snprintf(r->errmsg, sizeof r->errmsg, "no error");
    shoal__map_init(&r->cache);
    r->ev.ring = shoal__calloc(SHOAL__EVENT_CAP, sizeof *r->ev.ring);
    if (!r->ev.ring) {
        shoal__free(r);
        return SHOAL_ENOMEM;
    }
    r->dir = shoal__malloc(strlen(dir) + 1);
    if (!r->dir) {
        shoal__free(r->ev.ring);
        shoal__free(r);
        return SHOAL_ENOMEM;
    }
    strcpy(r->dir, dir);
    shoal__store_opts so = { .durable = r->opt.durable, .map_size = r->opt.map_size };
    char errbuf[SHOAL__ERRMSG];
    errbuf[0] = 0;
    int err = shoal__store_open(&r->store, dir, &so, errbuf, sizeof errbuf);
    if (!err) {
        err = shoal__identity_open(r->store, dir, r->pk, &r->sk, errbuf, sizeof errbuf);
        if (err)
            shoal__store_close(r->store);
    }
    if (err) {
        shoal__free(r->ev.ring);
        shoal__free(r->dir);
        shoal__free(r);
        return (shoal_err)err;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->net_mu, NULL);
    pthread_mutex_init(&r->cert_mu, NULL);
    shoal__map_init(&r->certs);
    shoal__map_init(&r->revoked);
    shoal__events_init(r);
    err = shoal__subs_load(r);
    if (!err)
        err = root_load(r);
    if (!err)
        err = shoal__certs_load(r);
    /* Query views and indexes of a directory from before them. */
    if (!err)
        err = shoal__qviews_ensure(r);
    if (err == SHOAL_EREADONLY)
        err = SHOAL_OK;
    /* Release pending changes whose dependencies or time have come. */
    pend_ctx pc = { 0 };
    if (!err)
        err = shoal__store_read(r->store, pending_count_fn, &pc);
    if (!err && pc.n > 0) {
        err = shoal__drain_now(r);
        if (err == SHOAL_EREADONLY)
            err = SHOAL_OK;
    }
    if (err) {
        shoal_replica_close(r);
        return (shoal_err)err;
    }
    *out = r;
    return SHOAL_OK;
}

void
shoal_replica_close(shoal_replica *r)
{
    if (!r)
        return;
    /* The engine thread calls into the replica: stop it first. */
    shoal__net_close(r);
    shoal__events_close(r);
    pthread_mutex_lock(&r->mu);
    shoal__store_close(r->store);
    r->store = NULL;
    if (r->sk)
        shoal__identity_free(r->sk);
    r->sk = NULL;
    shoal__cache_free(r);
    shoal__live_free(r);
    shoal__subs_free(r);
    shoal__feedhub_free(r);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_destroy(&r->mu);
    shoal__free(r->dir);
    shoal__certs_free(r);
    if (r->self_reader) {
        shoal__reader_free(r->self_reader);
        shoal__free(r->self_reader);
    }
    shoal__authz_cache_free(r->authz);
    pthread_mutex_destroy(&r->cert_mu);
    pthread_mutex_destroy(&r->net_mu);
    shoal__free(r);
}

const char *
shoal_replica_errmsg(shoal_replica *r)
{
    assert(r);
    return r->errmsg;
}

const uint8_t *
shoal_replica_id(shoal_replica *r)
{
    assert(r);
    return r->pk;
}

shoal_err
shoal_replica_flush(shoal_replica *r)
{
    assert(r);
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_flush(r->store);
    shoal__fail(r, err, "flush");
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}
