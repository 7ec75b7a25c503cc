/*
 * core/net.c - the public network API (shoal_net_*, shoal_peers_*): wires
 * a replica to its ZeroMQ engine (transport/zmq.c) and persists per-peer
 * state in the store's peers table.
 *
 * Locking.  r->net_mu guards r->net and the engine pointer in it; it is
 * never held while waiting on the engine, because the engine thread calls
 * the host, which takes r->mu, and a commit (holding r->mu) takes r->net_mu
 * to notify the engine: order r->mu -> r->net_mu, never the reverse.  An
 * API call registers itself in net->users while it uses the engine; stopping
 * the engine detaches it under net_mu and waits until the users left (a
 * running shoal_net_sync therefore delays shoal_net_stop by at most its
 * timeout).  None of these calls takes r->mu except to record errmsg.
 *
 * Peer state.  The engine counts from zero each time it starts.  The
 * persisted record of a peer is "base" (the record stored when the engine
 * started) plus the engine's live counts, written on each save_peer call;
 * shoal_net_peers merges the same way, so the numbers are totals over
 * every run.  Record format (the value in the peers table, big-endian):
 *   version u8 (1) | flags u8 (bit 0: connected when saved; bit 1: the
 *   key is the X25519 key of a refused client) |
 *   last_seen_ms, sent, received, lag, rejected, connects, refused,
 *   equivocations (8 x u64) | endpoint length u16 | endpoint |
 *   last_error length u16 | last_error
 * A record that does not parse is ignored (and overwritten by the next
 * save); it never stops the replica.
 *
 * Bounded.  The engine keeps at most shoal__engine_max_peers (4096)
 * records, the stored ones included (handed to it at start as cfg.known);
 * past that it evicts the least recently active record without a link
 * (refused attempts first) and forget_peer drops the stored record, so
 * what is stored is what the engine holds: a forgotten record's row is
 * deleted.  (Readers still skip an empty value, which builds before the
 * delete existed wrote in its place.)
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core.h"

enum {
    PEER_VERSION = 2, /* 1: without subs and view_docs (still read) */
    PEER_FIXED = 2 + 8 * 8
};

typedef struct shoal__net {
    shoal__engine *e; /* owned; NULL while stopped */
    shoal__host host;
    int users;                         /* API calls using e now */
    pthread_cond_t cv;                 /* signalled when users drops */
    uint8_t (*allow)[SHOAL_KEY_BYTES]; /* keys allowed so far (re-applied on restart), owned */
    size_t nallow, capallow;
    uint8_t (*deny)[SHOAL_KEY_BYTES]; /* keys disallowed so far (re-applied on restart), owned */
    size_t ndeny, capdeny;
    bool allow_any;
    shoal__peer_info *base; /* stored records when e started, owned */
    size_t nbase;
} shoal__net;

struct shoal_peers {
    shoal__peer_info *p; /* owned */
    size_t n;
};

/* ------------------------------------------------------- peer records */

static int
peer_encode(const shoal__peer_info *p, shoal__buf *out)
{
    size_t el = strnlen(p->endpoint, sizeof p->endpoint);
    size_t ml = strnlen(p->last_error, sizeof p->last_error);
    size_t sl = strnlen(p->subs, sizeof p->subs);
    int err = shoal__buf_reserve(out, PEER_FIXED + 4 + el + ml + 2 + sl + 24);
    if (err)
        return err;
    uint8_t *q = out->p + out->len;
    q[0] = PEER_VERSION;
    q[1] = (uint8_t)((p->connected ? 1 : 0) | (p->xkey ? 2 : 0));
    const uint64_t v[8] = { p->last_seen_ms, p->sent,     p->received, p->lag,
                            p->rejected,     p->connects, p->refused,  p->equivocations };
    for (int i = 0; i < 8; i++)
        shoal__be64_put(q + 2 + 8 * i, v[i]);
    q += PEER_FIXED;
    shoal__be16_put(q, (uint16_t)el);
    memcpy(q + 2, p->endpoint, el);
    q += 2 + el;
    shoal__be16_put(q, (uint16_t)ml);
    memcpy(q + 2, p->last_error, ml);
    q += 2 + ml;
    shoal__be16_put(q, (uint16_t)sl);
    memcpy(q + 2, p->subs, sl);
    shoal__be64_put(q + 2 + sl, p->view_docs);
    shoal__be64_put(q + 2 + sl + 8, p->sent_bytes);
    shoal__be64_put(q + 2 + sl + 16, p->received_bytes);
    out->len += PEER_FIXED + 4 + el + ml + 2 + sl + 24;
    return SHOAL_OK;
}

static bool
peer_parse(const uint8_t key[SHOAL_KEY_BYTES], const uint8_t *p, size_t n, shoal__peer_info *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->key, key, SHOAL_KEY_BYTES);
    if (n < PEER_FIXED + 4 || (p[0] != 1 && p[0] != PEER_VERSION))
        return false;
    out->connected = p[1] & 1;
    out->xkey = (p[1] & 2) != 0;
    uint64_t *v[8] = { &out->last_seen_ms, &out->sent,     &out->received, &out->lag,
                       &out->rejected,     &out->connects, &out->refused,  &out->equivocations };
    for (int i = 0; i < 8; i++)
        *v[i] = shoal__be64_get(p + 2 + 8 * i);
    size_t off = PEER_FIXED;
    size_t el = shoal__be16_get(p + off);
    off += 2;
    if (el >= sizeof out->endpoint || n - off < el + 2)
        return false;
    memcpy(out->endpoint, p + off, el);
    off += el;
    size_t ml = shoal__be16_get(p + off);
    off += 2;
    if (ml >= sizeof out->last_error || n - off < ml)
        return false;
    memcpy(out->last_error, p + off, ml);
    off += ml;
    if (p[0] == 1)
        return off == n;
    if (n - off < 2)
        return false;
    size_t sl = shoal__be16_get(p + off);
    off += 2;
    if (sl >= sizeof out->subs || n - off != sl + 24)
        return false;
    memcpy(out->subs, p + off, sl);
    out->view_docs = shoal__be64_get(p + off + sl);
    out->sent_bytes = shoal__be64_get(p + off + sl + 8);
    out->received_bytes = shoal__be64_get(p + off + sl + 16);
    return true;
}

typedef struct scan_ctx {
    shoal__peer_info *p;
    size_t n, cap;
    int err;
} scan_ctx;

static int
scan_cb(const uint8_t key[SHOAL_KEY_BYTES], const shoal__sval *v, void *arg)
{
    scan_ctx *x = arg;
    shoal__peer_info info;
    if (!peer_parse(key, v->p, v->len, &info))
        return 0;
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 8;
        shoal__peer_info *np = shoal__realloc(x->p, nc * sizeof *np);
        if (!np) {
            x->err = SHOAL_ENOMEM;
            return 1;
        }
        x->p = np;
        x->cap = nc;
    }
    info.connected = false; /* a stored record says nothing about now */
    x->p[x->n++] = info;
    return 0;
}

static int
scan_fn(shoal__stxn *t, void *arg)
{
    scan_ctx *x = arg;
    int err = shoal__stxn_peer_scan(t, scan_cb, x);
    return x->err ? x->err : err;
}

/* Every stored record; *out owned by the caller. */
static int
stored_peers(shoal_replica *r, shoal__peer_info **out, size_t *n)
{
    scan_ctx x = { 0 };
    int err = shoal__store_read(r->store, scan_fn, &x);
    if (err) {
        shoal__free(x.p);
        x.p = NULL;
        x.n = 0;
    }
    *out = x.p;
    *n = x.n;
    return err;
}

static const shoal__peer_info *
find_info(const shoal__peer_info *v, size_t n, const uint8_t key[SHOAL_KEY_BYTES])
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].key, key, SHOAL_KEY_BYTES) == 0)
            return &v[i];
    return NULL;
}

/* Totals: base (may be NULL) plus the live counts of this run. */
static void
merge(const shoal__peer_info *base, const shoal__peer_info *live, shoal__peer_info *out)
{
    *out = *live;
    if (!base)
        return;
    out->sent += base->sent;
    out->received += base->received;
    out->rejected += base->rejected;
    out->connects += base->connects;
    out->refused += base->refused;
    out->equivocations += base->equivocations;
    if (base->last_seen_ms > out->last_seen_ms)
        out->last_seen_ms = base->last_seen_ms;
    if (live->connects == 0)
        out->lag = base->lag;
    if (!out->endpoint[0])
        memcpy(out->endpoint, base->endpoint, sizeof out->endpoint);
    if (!out->last_error[0])
        memcpy(out->last_error, base->last_error, sizeof out->last_error);
}

typedef struct put_ctx {
    const uint8_t *key;
    const shoal__buf *v;
} put_ctx;

static int
put_fn(shoal__stxn *t, void *arg)
{
    put_ctx *x = arg;
    if (x->v->len == 0)
        return shoal__stxn_peer_del(t, x->key);
    return shoal__stxn_peer_put(t, x->key, x->v->p, x->v->len);
}

/* cfg.save_peer: on the engine thread, no engine lock held. */
static void
save_peer(void *ctx, const shoal__peer_info *p)
{
    shoal_replica *r = ctx;
    shoal__net *net = r->net; /* stable: freed only after the engine stopped */
    shoal__peer_info rec;
    merge(find_info(net->base, net->nbase, p->key), p, &rec);
    shoal__buf b;
    shoal__buf_init(&b);
    if (peer_encode(&rec, &b) == SHOAL_OK) {
        put_ctx x = { .key = p->key, .v = &b };
        pthread_mutex_lock(&r->mu);
        int err = r->store ? shoal__store_write(r->store, put_fn, &x) : SHOAL_ECLOSED;
        pthread_mutex_unlock(&r->mu);
        if (err && r->opt.log) {
            char msg[128];
            snprintf(msg, sizeof msg, "cannot save peer state: %s", shoal_strerror((shoal_err)err));
            r->opt.log(r->opt.log_ctx, SHOAL_LOG_WARN, msg);
        }
    }
    shoal__buf_free(&b);
}

/* cfg.forget_peer: the engine evicted key's record (engine thread, no
 * engine lock held). */
static void
forget_peer(void *ctx, const uint8_t key[SHOAL_KEY_BYTES])
{
    shoal_replica *r = ctx;
    shoal__net *net = r->net;
    shoal__buf empty = { 0 };
    put_ctx x = { .key = key, .v = &empty };
    pthread_mutex_lock(&r->mu);
    int err = r->store ? shoal__store_write(r->store, put_fn, &x) : SHOAL_ECLOSED;
    pthread_mutex_unlock(&r->mu);
    if (err && r->opt.log) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot forget a peer record: %s",
                 shoal_strerror((shoal_err)err));
        r->opt.log(r->opt.log_ctx, SHOAL_LOG_WARN, msg);
    }
    /* save_peer reads base on this thread without the lock; shoal_net_peers
     * reads it under net_mu. */
    pthread_mutex_lock(&r->net_mu);
    for (size_t i = 0; i < net->nbase; i++)
        if (memcmp(net->base[i].key, key, SHOAL_KEY_BYTES) == 0) {
            net->base[i] = net->base[--net->nbase];
            break;
        }
    pthread_mutex_unlock(&r->net_mu);
}

/* --------------------------------------------------------- the engine */

static uint64_t
engine_clock(void *ctx)
{
    shoal_replica *r = ctx;
    if (!r->opt.now_ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    }
    /* A caller's clock is documented to run under the replica lock. */
    pthread_mutex_lock(&r->mu);
    uint64_t now = shoal__wall_ms(r);
    pthread_mutex_unlock(&r->mu);
    return now;
}

/* Caller holds r->net_mu.  Create r->net if missing. */
static int
net_get(shoal_replica *r)
{
    if (r->net)
        return SHOAL_OK;
    shoal__net *net = shoal__calloc(1, sizeof *net);
    if (!net)
        return SHOAL_ENOMEM;
    pthread_cond_init(&net->cv, NULL);
    shoal__host_init(&net->host, r);
    r->net = net;
    return SHOAL_OK;
}

/* Caller holds r->net_mu.  Start the engine if it is not running. */
static int
engine_up(shoal_replica *r)
{
    int err = net_get(r);
    if (err)
        return err;
    shoal__net *net = r->net;
    if (net->e)
        return SHOAL_OK;
    shoal__free(net->base);
    net->base = NULL;
    net->nbase = 0;
    err = stored_peers(r, &net->base, &net->nbase);
    if (err)
        return err;
    shoal__engine_cfg cfg = {
        .pk = r->pk,
        .sk = r->sk,
        .host = &net->host,
        .now_ms = engine_clock,
        .clock_ctx = r,
        .log = r->opt.log,
        .log_ctx = r->opt.log_ctx,
        .save_peer = save_peer,
        .save_ctx = r,
        .forget_peer = forget_peer,
        .known = net->base,
        .nknown = net->nbase,
    };
    shoal__engine *e;
    err = shoal__engine_start(&e, &cfg);
    if (err)
        return err;
    for (size_t i = 0; i < net->nallow && !err; i++)
        err = shoal__engine_allow(e, net->allow[i]);
    /* A new engine has no links to close; and it must not be waited for
     * here: r->net_mu is held, which its forget_peer takes. */
    for (size_t i = 0; i < net->ndeny && !err; i++)
        err = shoal__engine_disallow(e, net->deny[i], false);
    if (!err)
        err = shoal__engine_allow_any(e, net->allow_any);
    if (err) {
        shoal__engine_stop(e);
        return err;
    }
    net->e = e;
    return SHOAL_OK;
}

/* Take the engine for one API call (starting it if needed); pair with
 * release().  Returns NULL and sets *err on failure. */
static shoal__engine *
acquire(shoal_replica *r, int *err)
{
    pthread_mutex_lock(&r->net_mu);
    *err = engine_up(r);
    shoal__engine *e = NULL;
    if (!*err) {
        e = r->net->e;
        r->net->users++;
    }
    pthread_mutex_unlock(&r->net_mu);
    return e;
}

static void
release(shoal_replica *r)
{
    pthread_mutex_lock(&r->net_mu);
    if (--r->net->users == 0)
        pthread_cond_broadcast(&r->net->cv);
    pthread_mutex_unlock(&r->net_mu);
}

static shoal_err
fail(shoal_replica *r, int err, const char *fmt, const char *arg)
{
    if (err == SHOAL_OK)
        return SHOAL_OK;
    pthread_mutex_lock(&r->mu);
    shoal__fail(r, err, fmt, arg);
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

void
shoal__net_notify(shoal_replica *r)
{
    pthread_mutex_lock(&r->net_mu);
    if (r->net && r->net->e)
        shoal__engine_notify(r->net->e);
    pthread_mutex_unlock(&r->net_mu);
}

/* Detach and stop the engine (waiting for API calls that use it). */
static void
engine_down(shoal_replica *r)
{
    pthread_mutex_lock(&r->net_mu);
    shoal__net *net = r->net;
    shoal__engine *e = net ? net->e : NULL;
    if (net) {
        while (net->users > 0)
            pthread_cond_wait(&net->cv, &r->net_mu);
        net->e = NULL;
    }
    pthread_mutex_unlock(&r->net_mu);
    shoal__engine_stop(e);
}

void
shoal__net_close(shoal_replica *r)
{
    engine_down(r);
    pthread_mutex_lock(&r->net_mu);
    shoal__net *net = r->net;
    r->net = NULL;
    pthread_mutex_unlock(&r->net_mu);
    if (!net)
        return;
    pthread_cond_destroy(&net->cv);
    shoal__free(net->allow);
    shoal__free(net->deny);
    shoal__free(net->base);
    shoal__free(net);
}

/* ----------------------------------------------------------- public */

shoal_err
shoal_options_set_log(shoal_options *o, void (*fn)(void *ctx, int level, const char *msg),
                      void *ctx)
{
    assert(o);
    o->log = fn;
    o->log_ctx = ctx;
    return SHOAL_OK;
}

/* Add key to the list v (if missing); 0 or SHOAL_ENOMEM. */
static int
keys_add(uint8_t (**v)[SHOAL_KEY_BYTES], size_t *n, size_t *cap, const uint8_t *key)
{
    for (size_t i = 0; i < *n; i++)
        if (memcmp((*v)[i], key, SHOAL_KEY_BYTES) == 0)
            return SHOAL_OK;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        uint8_t(*nv)[SHOAL_KEY_BYTES] = shoal__realloc(*v, nc * sizeof *nv);
        if (!nv)
            return SHOAL_ENOMEM;
        *v = nv;
        *cap = nc;
    }
    memcpy((*v)[(*n)++], key, SHOAL_KEY_BYTES);
    return SHOAL_OK;
}

static void
keys_del(uint8_t (*v)[SHOAL_KEY_BYTES], size_t *n, const uint8_t *key)
{
    for (size_t i = 0; i < *n; i++)
        if (memcmp(v[i], key, SHOAL_KEY_BYTES) == 0) {
            memcpy(v[i], v[--*n], SHOAL_KEY_BYTES);
            return;
        }
}

/* Allow (allow true) or revoke peer_key: tell the engine, then move the
 * key between the lists kept for an engine restart. */
static shoal_err
list_key(shoal_replica *r, const uint8_t *peer_key, bool allow)
{
    assert(r);
    if (!peer_key)
        return SHOAL_EINVAL;
    int err;
    shoal__engine *e = acquire(r, &err);
    if (!e)
        return fail(r, err, "%s", "cannot start the network engine");
    err = allow ? shoal__engine_allow(e, peer_key) : shoal__engine_disallow(e, peer_key, true);
    if (!err) {
        pthread_mutex_lock(&r->net_mu);
        shoal__net *net = r->net;
        if (allow) {
            err = keys_add(&net->allow, &net->nallow, &net->capallow, peer_key);
            keys_del(net->deny, &net->ndeny, peer_key);
        } else {
            err = keys_add(&net->deny, &net->ndeny, &net->capdeny, peer_key);
            keys_del(net->allow, &net->nallow, peer_key);
        }
        pthread_mutex_unlock(&r->net_mu);
    }
    release(r);
    const char *what = allow ? "allow" : "disallow";
    if (err == SHOAL_EINVAL)
        return fail(r, err, "%s: not a valid Ed25519 public key", what);
    return fail(r, err, "%s", what);
}

shoal_err
shoal_net_allow(shoal_replica *r, const uint8_t *peer_key)
{
    return list_key(r, peer_key, true);
}

shoal_err
shoal_net_disallow(shoal_replica *r, const uint8_t *peer_key)
{
    return list_key(r, peer_key, false);
}

shoal_err
shoal_net_allow_any(shoal_replica *r, bool any)
{
    assert(r);
    int err;
    shoal__engine *e = acquire(r, &err);
    if (!e)
        return fail(r, err, "%s", "cannot start the network engine");
    err = shoal__engine_allow_any(e, any);
    if (!err) {
        pthread_mutex_lock(&r->net_mu);
        r->net->allow_any = any;
        pthread_mutex_unlock(&r->net_mu);
    }
    release(r);
    return fail(r, err, "%s", "allow_any");
}

shoal_err
shoal_net_listen(shoal_replica *r, const char *endpoint, char **bound)
{
    assert(r);
    if (bound)
        *bound = NULL;
    if (!endpoint || !*endpoint)
        return SHOAL_EINVAL;
    int err;
    shoal__engine *e = acquire(r, &err);
    if (!e)
        return fail(r, err, "%s", "cannot start the network engine");
    err = shoal__engine_listen(e, endpoint, bound);
    release(r);
    return fail(r, err, "cannot listen on %s", endpoint);
}

shoal_err
shoal_net_connect(shoal_replica *r, const char *endpoint, const uint8_t *peer_key)
{
    assert(r);
    if (!endpoint || !*endpoint || !peer_key)
        return SHOAL_EINVAL;
    int err;
    shoal__engine *e = acquire(r, &err);
    if (!e)
        return fail(r, err, "%s", "cannot start the network engine");
    err = shoal__engine_connect(e, endpoint, peer_key);
    release(r);
    return fail(r, err, "cannot connect to %s", endpoint);
}

shoal_err
shoal_net_disconnect(shoal_replica *r, const char *endpoint)
{
    assert(r);
    if (!endpoint)
        return SHOAL_EINVAL;
    int err;
    shoal__engine *e = acquire(r, &err);
    if (!e)
        return fail(r, err, "%s", "cannot start the network engine");
    err = shoal__engine_disconnect(e, endpoint);
    release(r);
    return fail(r, err, "no link to %s", endpoint);
}

shoal_err
shoal_net_sync(shoal_replica *r, const char *endpoint, const uint8_t *peer_key, int timeout_ms)
{
    assert(r);
    if (!endpoint || !*endpoint || !peer_key)
        return SHOAL_EINVAL;
    int err;
    shoal__engine *e = acquire(r, &err);
    if (!e)
        return fail(r, err, "%s", "cannot start the network engine");
    err = shoal__engine_sync(e, endpoint, peer_key, timeout_ms);
    char why[200] = "";
    if (err == SHOAL_EREFUSED || err == SHOAL_EPERM) {
        /* The refusal this sync just met is the peer's newest error; any
         * other failure has no record of its own there, and an older
         * error of the peer would only mislead. */
        shoal__peer_info *p = NULL;
        size_t n = 0;
        if (shoal__engine_peers(e, &p, &n) == SHOAL_OK) {
            const shoal__peer_info *i = find_info(p, n, peer_key);
            if (i && i->last_error[0])
                snprintf(why, sizeof why, " (%s)", i->last_error);
        }
        shoal__free(p);
    }
    release(r);
    if (!err)
        return SHOAL_OK;
    char msg[SHOAL__ERRMSG];
    if (err == SHOAL_ETIMEDOUT)
        snprintf(msg, sizeof msg, "cannot reach %.120s or finish the exchange within %d ms%s",
                 endpoint, timeout_ms, why);
    else if (err == SHOAL_EREFUSED)
        snprintf(msg, sizeof msg, "%.120s refused the link%s", endpoint, why);
    else if (err == SHOAL_EPERM)
        snprintf(msg, sizeof msg, "%.120s refused to serve this replica%s", endpoint, why);
    else
        snprintf(msg, sizeof msg, "sync with %.120s failed%s", endpoint, why);
    return fail(r, err, "%s", msg);
}

void
shoal_net_stop(shoal_replica *r)
{
    assert(r);
    engine_down(r);
}

shoal_err
shoal_net_peers(shoal_replica *r, shoal_peers **out)
{
    assert(r && out);
    *out = NULL;
    shoal_peers *res = shoal__calloc(1, sizeof *res);
    if (!res)
        return SHOAL_ENOMEM;
    shoal__peer_info *live = NULL, *stored = NULL;
    size_t nlive = 0, nstored = 0;
    pthread_mutex_lock(&r->net_mu);
    shoal__net *net = r->net;
    int err = SHOAL_OK;
    if (net && net->e) {
        net->users++;
        pthread_mutex_unlock(&r->net_mu);
        err = shoal__engine_peers(net->e, &live, &nlive);
        release(r);
    } else {
        pthread_mutex_unlock(&r->net_mu);
    }
    if (!err)
        err = stored_peers(r, &stored, &nstored);
    if (!err && nlive + nstored) {
        res->p = shoal__calloc(nlive + nstored, sizeof *res->p);
        if (!res->p)
            err = SHOAL_ENOMEM;
    }
    if (!err) {
        /* base is stable while the engine whose counts we merge runs; a
         * stop in between leaves live empty or stale, which only shows
         * older numbers. */
        pthread_mutex_lock(&r->net_mu);
        for (size_t i = 0; i < nlive; i++) {
            const shoal__peer_info *b =
                r->net ? find_info(r->net->base, r->net->nbase, live[i].key) : NULL;
            merge(b, &live[i], &res->p[res->n++]);
        }
        pthread_mutex_unlock(&r->net_mu);
        for (size_t i = 0; i < nstored; i++)
            if (!find_info(live, nlive, stored[i].key))
                res->p[res->n++] = stored[i];
    }
    shoal__free(live);
    shoal__free(stored);
    if (err) {
        shoal_peers_free(res);
        return fail(r, err, "%s", "peers");
    }
    *out = res;
    return SHOAL_OK;
}

void
shoal_peers_free(shoal_peers *p)
{
    if (!p)
        return;
    shoal__free(p->p);
    shoal__free(p);
}

size_t
shoal_peers_count(const shoal_peers *p)
{
    assert(p);
    return p->n;
}

const uint8_t *
shoal_peers_key(const shoal_peers *p, size_t i)
{
    assert(p && i < p->n);
    return p->p[i].key;
}

const char *
shoal_peers_endpoint(const shoal_peers *p, size_t i)
{
    assert(p && i < p->n);
    return p->p[i].endpoint;
}

uint64_t
shoal_peers_stat(const shoal_peers *p, size_t i, shoal_peer_stat which)
{
    assert(p && i < p->n);
    const shoal__peer_info *x = &p->p[i];
    switch (which) {
    case SHOAL_PS_CONNECTED: return x->connected ? 1 : 0;
    case SHOAL_PS_LAST_SEEN_MS: return x->last_seen_ms;
    case SHOAL_PS_SENT: return x->sent;
    case SHOAL_PS_RECEIVED: return x->received;
    case SHOAL_PS_LAG: return x->lag;
    case SHOAL_PS_REJECTED: return x->rejected;
    case SHOAL_PS_CONNECTS: return x->connects;
    case SHOAL_PS_REFUSED: return x->refused;
    case SHOAL_PS_EQUIVOCATIONS: return x->equivocations;
    case SHOAL_PS_VIEW_DOCS: return x->view_docs;
    case SHOAL_PS_SENT_BYTES: return x->sent_bytes;
    case SHOAL_PS_RECEIVED_BYTES: return x->received_bytes;
    }
    return 0;
}

const char *
shoal_peers_subscriptions(const shoal_peers *p, size_t i)
{
    assert(p && i < p->n);
    return p->p[i].subs;
}

const char *
shoal_peers_last_error(const shoal_peers *p, size_t i)
{
    assert(p && i < p->n);
    return p->p[i].last_error;
}
