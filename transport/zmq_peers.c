/*
 * transport/zmq_peers.c - the ZeroMQ engine's allow and deny lists and its peer
 * records (kept per Ed25519 key, capped, saved through cfg->save_peer).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "zmq_int.h"

const allowed *
shoal__zq_alist_find_x(const allowed *v, size_t n, const uint8_t x[XKEY_BYTES])
{
    for (size_t i = 0; i < n; i++)
        if (sodium_memcmp(v[i].x, x, XKEY_BYTES) == 0)
            return &v[i];
    return NULL;
}

const allowed *
shoal__zq_alist_find(const allowed *v, size_t n, const uint8_t ed[SHOAL_KEY_BYTES])
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].ed, ed, SHOAL_KEY_BYTES) == 0)
            return &v[i];
    return NULL;
}

/* Add a (if missing); 0 or SHOAL_ENOMEM. */
int
shoal__zq_alist_add(allowed **v, size_t *n, size_t *cap, const allowed *a)
{
    if (shoal__zq_alist_find(*v, *n, a->ed))
        return SHOAL_OK;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        allowed *na = shoal__realloc(*v, nc * sizeof *na);
        if (!na)
            return SHOAL_ENOMEM;
        *v = na;
        *cap = nc;
    }
    (*v)[(*n)++] = *a;
    return SHOAL_OK;
}

void
shoal__zq_alist_del(allowed *v, size_t *n, const uint8_t ed[SHOAL_KEY_BYTES])
{
    for (size_t i = 0; i < *n; i++)
        if (memcmp(v[i].ed, ed, SHOAL_KEY_BYTES) == 0) {
            v[i] = v[--*n];
            return;
        }
}

/* May a link authenticated as id (see shoal__zq_router_route) hold a session now?
 * The ZAP handler decided when it connected; the lists may have changed
 * since (shoal_net_disallow).  Caller holds e->mu. */
bool
shoal__zq_ident_permitted(const shoal__engine *e, const ident *id)
{
    if (e->host.revoked) {
        uint8_t x[XKEY_BYTES];
        const uint8_t *xp = id->key;
        if (!id->xonly)
            xp = crypto_sign_ed25519_pk_to_curve25519(x, id->key) == 0 ? x : NULL;
        if (xp && e->host.revoked(e->host.ctx, xp))
            return false;
    }
    if (id->xonly)
        return !shoal__zq_alist_find_x(e->deny, e->ndeny, id->key) &&
               (e->allow_any || shoal__zq_alist_find_x(e->allow, e->nallow, id->key));
    return !shoal__zq_alist_find(e->deny, e->ndeny, id->key) &&
           (e->allow_any || shoal__zq_alist_find(e->allow, e->nallow, id->key) ||
            shoal__zq_alist_find(e->certok, e->ncertok, id->key));
}

/* Whether key is on the allow-list.  Caller holds e->mu. */
static bool
is_allowed(const shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES])
{
    for (size_t i = 0; i < e->nallow; i++)
        if (memcmp(e->allow[i].ed, key, SHOAL_KEY_BYTES) == 0)
            return true;
    return false;
}

/* A record that must stay: a link is up with it, or it is the peer of a
 * link we keep (shoal_net_connect) or a sync in progress.  Caller holds
 * e->mu, on the engine thread (e->links is the engine thread's). */
static bool
peer_kept(const shoal__engine *e, const peer *p)
{
    if (p->live > 0)
        return true;
    if (p->unknown)
        return false;
    for (const lnk *l = e->links; l; l = l->next)
        if (l->kind != L_LISTEN && !l->dead && memcmp(l->key, p->info.key, SHOAL_KEY_BYTES) == 0)
            return true;
    return false;
}

/* Make room for one record: evict the least recently active record that
 * is not kept, taking records of refused attempts (never a handshake)
 * first, then records of keys not on the allow-list (allow any), then
 * the rest.  Its stored record is forgotten by the next shoal__zq_save_peers.
 * False if every record is kept.  Caller holds e->mu. */
static bool
peer_evict(shoal__engine *e)
{
    size_t best = SIZE_MAX;
    int btier = 0;
    for (size_t i = 0; i < e->npeers; i++) {
        const peer *p = &e->peers[i];
        if (best != SIZE_MAX && btier == 0 && !p->refused_only)
            continue; /* cannot beat a refused-only candidate */
        if (peer_kept(e, p))
            continue;
        int tier = p->refused_only ? 0 : p->unknown || !is_allowed(e, p->info.key) ? 1 : 2;
        if (best == SIZE_MAX || tier < btier ||
            (tier == btier && p->touched < e->peers[best].touched)) {
            best = i;
            btier = tier;
        }
    }
    if (best == SIZE_MAX)
        return false;
    if (e->ngone == e->capgone) {
        size_t nc = e->capgone ? e->capgone * 2 : 16;
        gone *ng = shoal__realloc(e->gone, nc * sizeof *ng);
        if (!ng)
            return false;
        e->gone = ng;
        e->capgone = nc;
    }
    memcpy(e->gone[e->ngone++].key, e->peers[best].info.key, SHOAL_KEY_BYTES);
    if (e->peers[best].unknown)
        e->nunknown--;
    e->peers[best] = e->peers[--e->npeers];
    return true;
}

/* Caller holds e->mu.  A found or created record counts as active now. */
peer *
shoal__zq_peer_find(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES], bool unknown, bool create)
{
    for (size_t i = 0; i < e->npeers; i++)
        if (e->peers[i].unknown == unknown &&
            memcmp(e->peers[i].info.key, key, SHOAL_KEY_BYTES) == 0) {
            if (create)
                e->peers[i].touched = ++e->tick;
            return &e->peers[i];
        }
    if (!create)
        return NULL;
    if (unknown && e->nunknown >= MAX_UNKNOWN_PEERS) {
        /* Past the bound every further unknown key is counted under the
         * all-zero key. */
        static const uint8_t zero[SHOAL_KEY_BYTES];
        if (memcmp(key, zero, SHOAL_KEY_BYTES) != 0)
            return shoal__zq_peer_find(e, zero, true, true);
    }
    if (e->npeers >= e->maxpeers && !peer_evict(e))
        return NULL; /* every record is in use: this one is not kept */
    if (e->npeers == e->cappeers) {
        size_t nc = e->cappeers ? e->cappeers * 2 : 8;
        peer *np = shoal__realloc(e->peers, nc * sizeof *np);
        if (!np)
            return NULL;
        e->peers = np;
        e->cappeers = nc;
    }
    peer *p = &e->peers[e->npeers++];
    memset(p, 0, sizeof *p);
    memcpy(p->info.key, key, SHOAL_KEY_BYTES);
    p->unknown = unknown;
    p->refused_only = true;
    p->touched = ++e->tick;
    if (unknown)
        e->nunknown++;
    return p;
}

void
shoal__zq_peer_error(peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->info.last_error, sizeof p->info.last_error, fmt, ap);
    va_end(ap);
}

/* Set key's last error (its record, if it has one) and save it soon. */
void
shoal__zq_peer_note(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES], const char *what)
{
    pthread_mutex_lock(&e->mu);
    peer *p = shoal__zq_peer_find(e, key, false, false);
    if (p) {
        shoal__zq_peer_error(p, "%s", what);
        p->dirty = p->urgent = true;
    }
    pthread_mutex_unlock(&e->mu);
}

/* Hand changed peer records to save_peer (urgent ones only unless all).
 * Each save is a store write (an fsync when durable) on this thread, so a
 * peer that connects, fails and reconnects in a tight loop must not buy one
 * per event: a peer's urgent saves are at most one per URGENT_SAVE_MS (the
 * rest wait for the next allowed time or the periodic save). */
void
shoal__zq_save_peers(shoal__engine *e, bool all)
{
    for (;;) {
        gone g;
        pthread_mutex_lock(&e->mu);
        bool any = e->ngone > 0;
        if (any)
            g = e->gone[--e->ngone];
        pthread_mutex_unlock(&e->mu);
        if (!any)
            break;
        if (e->cfg.forget_peer)
            e->cfg.forget_peer(e->cfg.save_ctx, g.key);
    }
    if (!e->cfg.save_peer)
        return;
    uint64_t now = shoal__zq_mono_ms();
    for (size_t i = 0;; i++) {
        shoal__peer_info info;
        pthread_mutex_lock(&e->mu);
        bool found = false;
        for (; i < e->npeers; i++) {
            peer *p = &e->peers[i];
            if (p->dirty && (all || (p->urgent && now >= p->urgent_at))) {
                p->dirty = p->urgent = false;
                p->urgent_at = now + URGENT_SAVE_MS;
                info = p->info;
                info.connected = p->live > 0;
                info.xkey = p->unknown;
                found = true;
                break;
            }
        }
        pthread_mutex_unlock(&e->mu);
        if (!found)
            return;
        e->cfg.save_peer(e->cfg.save_ctx, &info);
    }
}

/* Fold s's stats into its peer; returns the stats now. */
void
shoal__zq_sess_fold(shoal__engine *e, lnk *l, sess *s, shoal__session_stats *out)
{
    shoal__session_stats now;
    shoal__session_get_stats(s->s, &now);
    if (!s->key_known && now.handshaken) {
        uint8_t x[XKEY_BYTES];
        if (s->check_x && (crypto_sign_ed25519_pk_to_curve25519(x, now.peer) != 0 ||
                           sodium_memcmp(x, s->x, XKEY_BYTES) != 0)) {
            shoal__zq_logf(e, SHOAL_LOG_WARN,
                           "incoming link: HELLO names a key that is not its CURVE key");
            s->dead = true;
        } else {
            memcpy(s->key, now.peer, SHOAL_KEY_BYTES);
            s->key_known = true;
        }
    }
    bool up = false;
    if (s->key_known) {
        pthread_mutex_lock(&e->mu);
        peer *p = shoal__zq_peer_find(e, s->key, false, true);
        if (p) {
            shoal__peer_info *i = &p->info;
            if (!s->live_counted) {
                s->live_counted = true;
                p->live++;
                p->urgent = p->dirty = true;
                if (l->kind != L_LISTEN)
                    snprintf(i->endpoint, sizeof i->endpoint, "%s", l->ep);
            }
            if (now.handshaken && !s->last.handshaken) {
                up = true;
                p->refused_only = false;
                i->connects++;
                i->last_error[0] = 0;
                p->urgent = true;
            }
            uint64_t ds = now.sent - s->last.sent, dr = now.received - s->last.received;
            i->sent_bytes += now.sent_bytes - s->last.sent_bytes;
            i->received_bytes += now.received_bytes - s->last.received_bytes;
            uint64_t dj = now.rejected - s->last.rejected;
            uint64_t dq = now.equivocations - s->last.equivocations;
            if (ds || dr || dj || dq || i->lag != now.lag ||
                now.last_recv_ms != s->last.last_recv_ms)
                p->dirty = true;
            if (dj || dq)
                p->urgent = true;
            i->sent += ds;
            i->received += dr;
            i->rejected += dj;
            i->equivocations += dq;
            if (now.handshaken)
                i->lag = now.lag;
            if (now.last_recv_ms > i->last_seen_ms)
                i->last_seen_ms = now.last_recv_ms;
            if (now.handshaken) {
                const char *subs = shoal__session_peer_subs(s->s);
                uint64_t vd = shoal__session_view_docs(s->s);
                if (vd != i->view_docs || strcmp(subs, i->subs) != 0)
                    p->dirty = true;
                snprintf(i->subs, sizeof i->subs, "%s", subs);
                i->view_docs = vd;
            }
            if (now.failed && !s->last.failed) {
                /* what went wrong, ours or the peer's ERROR text */
                const char *why = shoal__session_failure(s->s);
                shoal__zq_peer_error(p, "link failed: %s",
                                     why[0] ? why : shoal_strerror((shoal_err)now.error));
                p->urgent = true;
            }
        }
        pthread_mutex_unlock(&e->mu);
        /* Received changes may have been applied: the other links push
         * them on (relay).  The host's apply also notifies; both are
         * cheap when nothing is new. */
        if (now.received != s->last.received)
            e->relay = true;
    }
    if (up && l->kind == L_LISTEN) {
        char kh[17];
        shoal__zq_keyhex(kh, s->key);
        shoal__zq_logf(e, SHOAL_LOG_INFO, "%s: incoming link from %s", l->ep, kh);
    }
    s->last = now;
    if (out)
        *out = now;
}
