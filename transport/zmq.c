/*
 * transport/zmq.c - the ZeroMQ engine: one background thread per replica
 * that owns every socket and moves the sans-I/O session's frames.
 *
 * Threads.  API threads never touch a socket (ZeroMQ sockets are not
 * thread-safe).  They queue a command (a struct on their own stack) under
 * e->mu, poke a non-blocking pipe that the engine thread polls together with
 * its sockets, and wait on e->cv until the engine marks the command done.
 * A pipe beats an inproc PAIR here: any thread may write to it without a
 * socket of its own, and a notification from inside a commit costs one
 * write(2).  The engine thread takes e->mu only for short bookkeeping and
 * never holds it while it calls the host (whose apply takes the replica
 * mutex) or the log and save callbacks: the lock order is always
 * replica mutex -> e->mu, never the reverse.
 *
 * Sockets.  A listening endpoint is a ROUTER with CURVE_SERVER; each peer
 * we connect to is a DEALER with CURVE_SERVERKEY set to the conversion of
 * the peer's Ed25519 key to X25519 (crypto_sign_ed25519_pk_to_curve25519),
 * so a DEALER only completes a handshake with the key it expects.  A ZAP
 * handler (a REP socket on inproc://zeromq.zap.01 of the engine's own
 * context, bound before any listener exists: CURVE without ZAP admits
 * anyone) admits a client only if its X25519 key is the conversion of an
 * allowed Ed25519 key, or any key under allow_any, and sets the User-Id to
 * the hex Ed25519 key ("x" + hex X25519 key when allow_any admitted an
 * unknown key: the session's HELLO must then name an Ed25519 key that
 * converts to it).  Every socket has a monitor (inproc PAIR): handshake
 * success starts a fresh session on a DEALER, handshake failure counts as a
 * refusal, a disconnect drops the session (on a ROUTER the session is found
 * by the file descriptor the messages came from, ZMQ_SRCFD).
 *
 * Sessions.  One per connection: on a DEALER the connection is the socket
 * (ZMQ_IMMEDIATE, so nothing is queued for a link that is not up); on a
 * ROUTER one per routing id, created by the first frame from it, and
 * only ever fed frames whose authenticated identity (User-Id) and
 * connection are its own (router_route says why).  A frame
 * that the socket cannot take now (high-water mark) is kept as the
 * session's one pending frame and retried on a short timer; the session's
 * own window bounds how much it produces.  A failed session sends its one
 * ERROR frame and is dropped; a DEALER then closes its socket and opens a
 * new one after a back-off, so the next handshake starts clean.
 *
 * Peer state is kept per Ed25519 key (per X25519 key for refused clients
 * we cannot name otherwise), folded from the sessions' stats, and handed
 * to cfg->save_peer on connection changes and every few seconds.  The
 * records are capped (cfg.max_peers, stored ones included): past the cap
 * the least recently active record without a link goes (peer_evict) and
 * cfg->forget_peer drops its stored copy.
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

#include "transport.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* a draft option in libzmq 4.3 */
#endif

enum {
    RECV_BURST = 64,        /* messages read from one socket per wake-up */
    SNDHWM = 64,            /* our own frames are bounded by the window */
    RCVHWM = 4,             /* frames of up to SHOAL__MAX_FRAME bytes queued per peer
                                 (a full pipe stops reading the TCP socket: nothing is lost) */
    MAX_RSESS = 4096,       /* sessions per listening socket */
    MAX_KEY_SESS = 8,       /* sessions per peer key on one listening socket */
    MAX_UNKNOWN_PEERS = 64, /* peer records for refused, unknown keys */
    DEAD_RIDS = 64,         /* routing ids of failed sessions we ignore */
    RETRY_MS = 20,          /* retry of a frame a ROUTER could not take */
    SAVE_MS = 5000,         /* periodic save of changed peer state */
    URGENT_SAVE_MS = 1000,  /* a peer's urgent saves: at most one per interval */
    BACKOFF_MIN_MS = 500,
    BACKOFF_MAX_MS = 30000,
    RECONNECT_IVL_MS = 100,
    RECONNECT_IVL_MAX_MS = 5000,
    HANDSHAKE_IVL_MS = 10000,
    HELLO_TIMEOUT_BEATS = 10 /* heartbeats before an incoming link that never said HELLO goes */
};

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN   "shoal"

enum {
    L_LISTEN = 1,
    L_CONNECT = 2,
    L_SYNC = 3
};
enum {
    C_LISTEN = 1,
    C_CONNECT,
    C_DISCONNECT,
    C_SYNC,
    C_DISALLOW
};

typedef struct cmd {
    int op;
    const char *ep; /* Borrowed from the API thread */
    uint8_t key[32];
    int timeout_ms;
    char *bound; /* out (listen): owned by the API thread once done */
    int rc;
    bool done;
    struct cmd *next;
} cmd;

typedef struct sess {
    shoal__session *s; /* owned */
    bool key_known;
    uint8_t key[32]; /* the peer's Ed25519 key */
    bool check_x;    /* allow_any: HELLO's key must convert to x */
    uint8_t x[32];
    uint8_t rid[256]; /* ROUTER: routing id */
    size_t ridlen;
    int fd;                    /* ROUTER: ZMQ_SRCFD of its messages */
    shoal__session_stats last; /* stats already folded into the peer */
    bool live_counted;         /* counted in the peer's live links */
    uint8_t *pend;             /* a frame the socket refused for now, owned */
    size_t pendlen;
    uint64_t born; /* monotonic ms */
    bool dead;
    struct sess *next;
} sess;

/* The authenticated identity of a message on a listener, from the User-Id
 * the ZAP handler gave its connection: an allowed Ed25519 key, or (allow
 * any) the X25519 key of a client not on the list. */
typedef struct ident {
    bool xonly;
    uint8_t key[32];
} ident;

/* A routing id whose frames we ignore, for one identity and connection. */
typedef struct dead_rid {
    uint8_t rid[256];
    size_t len;
    ident id;
    int fd;
} dead_rid;

typedef struct lnk {
    int kind;
    void *sock, *mon;
    char ep[256];    /* the endpoint connected to, or bound */
    uint8_t key[32]; /* DEALER: the peer's Ed25519 key */
    sess *ss;        /* sessions (a DEALER has at most one) */
    size_t nss;
    dead_rid buried[DEAD_RIDS];
    size_t dead_next;
    uint64_t retry_at; /* DEALER without socket: when to open one */
    uint64_t backoff;
    cmd *sync; /* L_SYNC: the waiting command */
    uint64_t deadline;
    bool reached; /* a handshake ever succeeded */
    bool dead;
    struct lnk *next;
} lnk;

typedef struct peer {
    shoal__peer_info info;
    int live;          /* sessions up now */
    bool unknown;      /* refused, key is X25519 */
    bool refused_only; /* never completed a handshake (in any run) */
    bool dirty, urgent;
    uint64_t urgent_at; /* monotonic ms: its next urgent save, not before */
    uint64_t touched;   /* e->tick at its last activity (least recently seen goes first) */
} peer;

/* A peer record evicted (its stored record is to be forgotten). */
typedef struct gone {
    uint8_t key[32];
} gone;

size_t shoal__engine_max_peers = SHOAL__ENGINE_PEERS;
/* How often the engine looks at the log for commits of other processes
 * (tests raise it to show that pushes never wait for it). */
_Atomic uint64_t shoal__engine_log_poll_ms = 250;

typedef struct allowed {
    uint8_t x[32];
    uint8_t ed[32];
} allowed;

struct shoal__engine {
    shoal__engine_cfg cfg; /* the pointers in it are Borrowed */
    shoal__host host;
    uint8_t pk[32];
    uint8_t xpk[32];
    uint8_t *xsk; /* 32 bytes, sodium_malloc'd, owned */
    pthread_t th;
    bool th_started;
    int wake[2];
    atomic_bool notified;
    uint64_t frames_out; /* frames the sessions produced (engine thread) */

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    cmd *q_head, *q_tail;
    bool stopping, stopped;
    allowed *allow;
    size_t nallow, capallow;
    allowed *deny; /* disallowed keys: refused even under allow_any */
    size_t ndeny, capdeny;
    bool allow_any;
    peer *peers;
    size_t npeers, cappeers, nunknown;
    size_t maxpeers; /* cap on npeers */
    uint64_t tick;   /* logical clock of peer activity */
    gone *gone;      /* evicted records not yet forgotten */
    size_t ngone, capgone;

    /* Engine thread only. */
    void *ctx;
    void *zap;
    lnk *links;
    unsigned mon_seq;
    uint64_t next_save;
    uint64_t next_log_poll; /* when to look at the log for others' commits */
    bool relay;             /* a link applied changes: make the others push */
};

/* ------------------------------------------------------------ helpers */

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t
wall_ms(shoal__engine *e)
{
    if (e->cfg.now_ms)
        return e->cfg.now_ms(e->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void logf_(shoal__engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
logf_(shoal__engine *e, int level, const char *fmt, ...)
{
    if (!e->cfg.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e->cfg.log(e->cfg.log_ctx, level, msg);
}

static void
keyhex(char out[17], const uint8_t *k)
{
    /* Short form for log lines: the first 8 bytes. */
    shoal__hex(out, k, 8);
}

static void
wake(shoal__engine *e)
{
    char c = 1;
    ssize_t n = write(e->wake[1], &c, 1);
    (void)n; /* a full pipe already wakes the engine */
}

static int
zmq_err(void)
{
    switch (errno) {
    case ENOMEM: return SHOAL_ENOMEM;
    case EINVAL:
    case EPROTONOSUPPORT:
    case ENOCOMPATPROTO: return SHOAL_EINVAL;
    case EADDRINUSE: return SHOAL_EBUSY;
    default: return SHOAL_ETRANSPORT;
    }
}

/* --------------------------------------------------------- key lists */

static const allowed *
alist_find_x(const allowed *v, size_t n, const uint8_t x[32])
{
    for (size_t i = 0; i < n; i++)
        if (sodium_memcmp(v[i].x, x, 32) == 0)
            return &v[i];
    return NULL;
}

static const allowed *
alist_find(const allowed *v, size_t n, const uint8_t ed[32])
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].ed, ed, 32) == 0)
            return &v[i];
    return NULL;
}

/* Add a (if missing); 0 or SHOAL_ENOMEM. */
static int
alist_add(allowed **v, size_t *n, size_t *cap, const allowed *a)
{
    if (alist_find(*v, *n, a->ed))
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

static void
alist_del(allowed *v, size_t *n, const uint8_t ed[32])
{
    for (size_t i = 0; i < *n; i++)
        if (memcmp(v[i].ed, ed, 32) == 0) {
            v[i] = v[--*n];
            return;
        }
}

/* May a link authenticated as id (see router_route) hold a session now?
 * The ZAP handler decided when it connected; the lists may have changed
 * since (shoal_net_disallow).  Caller holds e->mu. */
static bool
ident_permitted(const shoal__engine *e, const ident *id)
{
    if (id->xonly)
        return !alist_find_x(e->deny, e->ndeny, id->key) &&
               (e->allow_any || alist_find_x(e->allow, e->nallow, id->key));
    return !alist_find(e->deny, e->ndeny, id->key) &&
           (e->allow_any || alist_find(e->allow, e->nallow, id->key));
}

/* ------------------------------------------------------------- peers */

/* Whether key is on the allow-list.  Caller holds e->mu. */
static bool
is_allowed(const shoal__engine *e, const uint8_t key[32])
{
    for (size_t i = 0; i < e->nallow; i++)
        if (memcmp(e->allow[i].ed, key, 32) == 0)
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
        if (l->kind != L_LISTEN && !l->dead && memcmp(l->key, p->info.key, 32) == 0)
            return true;
    return false;
}

/* Make room for one record: evict the least recently active record that
 * is not kept, taking records of refused attempts (never a handshake)
 * first, then records of keys not on the allow-list (allow any), then
 * the rest.  Its stored record is forgotten by the next save_peers.
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
    memcpy(e->gone[e->ngone++].key, e->peers[best].info.key, 32);
    if (e->peers[best].unknown)
        e->nunknown--;
    e->peers[best] = e->peers[--e->npeers];
    return true;
}

/* Caller holds e->mu.  A found or created record counts as active now. */
static peer *
peer_find(shoal__engine *e, const uint8_t key[32], bool unknown, bool create)
{
    for (size_t i = 0; i < e->npeers; i++)
        if (e->peers[i].unknown == unknown && memcmp(e->peers[i].info.key, key, 32) == 0) {
            if (create)
                e->peers[i].touched = ++e->tick;
            return &e->peers[i];
        }
    if (!create)
        return NULL;
    if (unknown && e->nunknown >= MAX_UNKNOWN_PEERS) {
        /* Past the bound every further unknown key is counted under the
         * all-zero key. */
        static const uint8_t zero[32];
        if (memcmp(key, zero, 32) != 0)
            return peer_find(e, zero, true, true);
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
    memcpy(p->info.key, key, 32);
    p->unknown = unknown;
    p->refused_only = true;
    p->touched = ++e->tick;
    if (unknown)
        e->nunknown++;
    return p;
}

static void peer_error(peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
peer_error(peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->info.last_error, sizeof p->info.last_error, fmt, ap);
    va_end(ap);
}

/* Set key's last error (its record, if it has one) and save it soon. */
static void
peer_note(shoal__engine *e, const uint8_t key[32], const char *what)
{
    pthread_mutex_lock(&e->mu);
    peer *p = peer_find(e, key, false, false);
    if (p) {
        peer_error(p, "%s", what);
        p->dirty = p->urgent = true;
    }
    pthread_mutex_unlock(&e->mu);
}

/* Hand changed peer records to save_peer (urgent ones only unless all).
 * Each save is a store write (an fsync when durable) on this thread, so a
 * peer that connects, fails and reconnects in a tight loop must not buy one
 * per event: a peer's urgent saves are at most one per URGENT_SAVE_MS (the
 * rest wait for the next allowed time or the periodic save). */
static void
save_peers(shoal__engine *e, bool all)
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
    uint64_t now = mono_ms();
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
static void
sess_fold(shoal__engine *e, lnk *l, sess *s, shoal__session_stats *out)
{
    shoal__session_stats now;
    shoal__session_get_stats(s->s, &now);
    if (!s->key_known && now.handshaken) {
        uint8_t x[32];
        if (s->check_x && (crypto_sign_ed25519_pk_to_curve25519(x, now.peer) != 0 ||
                           sodium_memcmp(x, s->x, 32) != 0)) {
            logf_(e, SHOAL_LOG_WARN, "incoming link: HELLO names a key that is not its CURVE key");
            s->dead = true;
        } else {
            memcpy(s->key, now.peer, 32);
            s->key_known = true;
        }
    }
    bool up = false;
    if (s->key_known) {
        pthread_mutex_lock(&e->mu);
        peer *p = peer_find(e, s->key, false, true);
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
            if (now.failed && !s->last.failed) {
                peer_error(p, "link failed: %s", shoal_strerror((shoal_err)now.error));
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
        keyhex(kh, s->key);
        logf_(e, SHOAL_LOG_INFO, "%s: incoming link from %s", l->ep, kh);
    }
    s->last = now;
    if (out)
        *out = now;
}

/* ----------------------------------------------------------- sockets */

static int
set_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* Options shared by every socket. */
static int
common_opts(shoal__engine *e, void *sock)
{
    int hb = e->cfg.heartbeat_ms > 0 ? e->cfg.heartbeat_ms : 1000;
    int64_t maxmsg = (int64_t)SHOAL__MAX_FRAME;
    int rc = 0;
    rc |= set_int(sock, ZMQ_LINGER, 0);
    rc |= zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    rc |= set_int(sock, ZMQ_SNDHWM, SNDHWM);
    rc |= set_int(sock, ZMQ_RCVHWM, RCVHWM);
    rc |= set_int(sock, ZMQ_IPV6, 1);
    rc |= set_int(sock, ZMQ_HEARTBEAT_IVL, hb);
    rc |= set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, 3 * hb);
    /* TTL has a resolution of 100 ms. */
    rc |= set_int(sock, ZMQ_HEARTBEAT_TTL, ((3 * hb + 99) / 100) * 100);
    rc |= set_int(sock, ZMQ_HANDSHAKE_IVL, HANDSHAKE_IVL_MS);
    rc |= zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, e->xpk, 32);
    rc |= zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, e->xsk, 32);
    return rc ? -1 : 0;
}

/* Attach a monitor PAIR to sock; 0 or -1. */
static int
monitor(shoal__engine *e, lnk *l)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://shoal-mon-%u", ++e->mon_seq);
    int events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(l->sock, ep, events) != 0)
        return -1;
    l->mon = zmq_socket(e->ctx, ZMQ_PAIR);
    if (!l->mon)
        return -1;
    set_int(l->mon, ZMQ_LINGER, 0);
    if (zmq_connect(l->mon, ep) != 0) {
        zmq_close(l->mon);
        l->mon = NULL;
        return -1;
    }
    return 0;
}

static void
sess_free(sess *s)
{
    shoal__session_free(s->s);
    shoal__free(s->pend);
    shoal__free(s);
}

/* Drop s from l (not freed twice: s is unlinked here). */
static void
sess_drop(shoal__engine *e, lnk *l, sess *s, const char *why)
{
    sess_fold(e, l, s, NULL);
    if (s->live_counted) {
        pthread_mutex_lock(&e->mu);
        peer *p = peer_find(e, s->key, false, false);
        if (p) {
            p->live--;
            p->dirty = p->urgent = true;
            if (why && !p->info.last_error[0])
                peer_error(p, "%s", why);
        }
        pthread_mutex_unlock(&e->mu);
    }
    for (sess **pp = &l->ss; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            l->nss--;
            break;
        }
    }
    sess_free(s);
}

static void
sock_close(lnk *l)
{
    if (l->sock)
        zmq_socket_monitor(l->sock, NULL, 0);
    if (l->mon)
        zmq_close(l->mon);
    if (l->sock)
        zmq_close(l->sock);
    l->mon = l->sock = NULL;
}

static void
link_close(shoal__engine *e, lnk *l, const char *why)
{
    while (l->ss)
        sess_drop(e, l, l->ss, why);
    sock_close(l);
}

/* Open a DEALER to l->ep; 0 or a shoal_err. */
static int
dealer_open(shoal__engine *e, lnk *l)
{
    uint8_t xserver[32];
    if (crypto_sign_ed25519_pk_to_curve25519(xserver, l->key) != 0)
        return SHOAL_EINVAL;
    l->sock = zmq_socket(e->ctx, ZMQ_DEALER);
    if (!l->sock)
        return zmq_err();
    int rc = common_opts(e, l->sock);
    rc |= zmq_setsockopt(l->sock, ZMQ_CURVE_SERVERKEY, xserver, 32);
    rc |= set_int(l->sock, ZMQ_IMMEDIATE, 1);
    rc |= set_int(l->sock, ZMQ_RECONNECT_IVL, RECONNECT_IVL_MS);
    rc |= set_int(l->sock, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS);
    if (rc == 0)
        rc = monitor(e, l);
    if (rc == 0)
        rc = zmq_connect(l->sock, l->ep);
    if (rc != 0) {
        int err = zmq_err();
        sock_close(l);
        return err;
    }
    return SHOAL_OK;
}

/* Send one frame on l for s: 1 sent, 0 not now, -1 the peer is gone. */
static int
send_frame(lnk *l, sess *s, const uint8_t *f, size_t n)
{
    if (!l->sock)
        return 0;
    if (l->kind == L_LISTEN) {
        if (zmq_send(l->sock, s->rid, s->ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return errno == EAGAIN ? 0 : -1;
    }
    if (zmq_send(l->sock, f, n, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 0 : -1;
    return 1;
}

/* Send what s has to send, as far as the socket takes it. */
static void
sess_pump(shoal__engine *e, lnk *l, sess *s)
{
    while (!s->dead) {
        if (s->pend) {
            int rc = send_frame(l, s, s->pend, s->pendlen);
            if (rc == 0)
                break;
            shoal__free(s->pend);
            s->pend = NULL;
            if (rc < 0) {
                s->dead = true;
                break;
            }
        }
        const uint8_t *f;
        size_t n;
        if (shoal__session_next(s->s, &f, &n) != 1)
            break;
        e->frames_out++;
        int rc = send_frame(l, s, f, n);
        if (rc < 0) {
            s->dead = true;
        } else if (rc == 0) {
            s->pend = shoal__malloc(n ? n : 1);
            if (!s->pend) {
                s->dead = true;
                break;
            }
            memcpy(s->pend, f, n);
            s->pendlen = n;
        }
    }
    shoal__session_stats st;
    sess_fold(e, l, s, &st);
    if (st.failed && !s->pend)
        s->dead = true; /* its ERROR frame is out */
}

static sess *
sess_new(shoal__engine *e, lnk *l, const uint8_t *expect)
{
    sess *s = shoal__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->s = shoal__session_new(&e->host, e->pk, expect);
    if (!s->s) {
        shoal__free(s);
        return NULL;
    }
    s->fd = -1;
    s->born = mono_ms();
    if (expect) {
        memcpy(s->key, expect, 32);
        s->key_known = true;
    }
    s->next = l->ss;
    l->ss = s;
    l->nss++;
    return s;
}

/* A sync command is over. */
static void
sync_done(shoal__engine *e, lnk *l, int rc)
{
    if (!l->sync)
        return;
    pthread_mutex_lock(&e->mu);
    l->sync->rc = rc;
    l->sync->done = true;
    l->sync = NULL;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    l->dead = true;
}

/* A DEALER's session failed or its socket broke: close and retry later. */
static void
dealer_reset(shoal__engine *e, lnk *l, const char *why)
{
    link_close(e, l, why);
    if (l->kind == L_SYNC)
        return;
    l->backoff = l->backoff ? l->backoff * 2 : BACKOFF_MIN_MS;
    if (l->backoff > BACKOFF_MAX_MS)
        l->backoff = BACKOFF_MAX_MS;
    l->retry_at = mono_ms() + l->backoff;
}

/* ----------------------------------------------------------- monitor */

static void
on_event(shoal__engine *e, lnk *l, uint16_t ev, uint32_t value)
{
    char kh[17];
    keyhex(kh, l->key);
    if (l->kind == L_LISTEN) {
        if (ev == ZMQ_EVENT_DISCONNECTED) {
            if (e->cfg.hold_disconnects)
                return; /* tests: the window before this event arrives, held open */
            for (sess *s = l->ss; s; s = s->next)
                if (s->fd == (int)value)
                    s->dead = true;
        } else if (ev &
                   (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) {
            logf_(e, SHOAL_LOG_WARN, "%s: incoming handshake failed (%s %u)", l->ep,
                  ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "errno",
                  (unsigned)value);
        }
        return;
    }
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        while (l->ss)
            sess_drop(e, l, l->ss, NULL);
        pthread_mutex_lock(&e->mu);
        bool denied = alist_find(e->deny, e->ndeny, l->key) != NULL;
        pthread_mutex_unlock(&e->mu);
        if (denied) {
            logf_(e, SHOAL_LOG_WARN, "%s: %s is disallowed: link closed", l->ep, kh);
            peer_note(e, l->key, "link closed: key disallowed");
            if (l->kind == L_SYNC)
                sync_done(e, l, SHOAL_EREFUSED);
            dealer_reset(e, l, NULL);
            return;
        }
        l->reached = true;
        sess *s = sess_new(e, l, l->key);
        if (!s || shoal__session_start(s->s, wall_ms(e)) != SHOAL_OK) {
            logf_(e, SHOAL_LOG_ERROR, "%s: cannot start a session", l->ep);
            if (s)
                s->dead = true;
            return;
        }
        logf_(e, SHOAL_LOG_INFO, "%s: link up with %s", l->ep, kh);
        sess_pump(e, l, s);
    } else if (ev == ZMQ_EVENT_DISCONNECTED) {
        if (l->ss)
            logf_(e, SHOAL_LOG_INFO, "%s: link down", l->ep);
        while (l->ss)
            sess_drop(e, l, l->ss, "disconnected");
    } else {
        const char *what = ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                               ? "refused by the peer (our key is not on its allow-list)"
                           : ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                               ? "handshake failed: protocol error"
                               : "handshake failed (wrong peer key?)";
        logf_(e, SHOAL_LOG_WARN, "%s: %s", l->ep, what);
        pthread_mutex_lock(&e->mu);
        peer *p = peer_find(e, l->key, false, true);
        if (p) {
            p->info.refused++;
            snprintf(p->info.endpoint, sizeof p->info.endpoint, "%s", l->ep);
            peer_error(p, "%s", what);
            p->dirty = p->urgent = true;
        }
        pthread_mutex_unlock(&e->mu);
        if (l->kind == L_SYNC)
            sync_done(e, l, SHOAL_EREFUSED);
        else
            /* libzmq does not try again after a refusal: we do, with our
             * back-off, so a device refused until the other side allows
             * it (or allows it again) gets its link without a restart. */
            dealer_reset(e, l, NULL);
    }
}

static void
read_monitor(shoal__engine *e, lnk *l)
{
    for (int i = 0; i < RECV_BURST && l->mon; i++) {
        zmq_msg_t m1, m2;
        zmq_msg_init(&m1);
        if (zmq_msg_recv(&m1, l->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m1);
            return;
        }
        uint16_t ev = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&m1) >= 6) {
            const uint8_t *p = zmq_msg_data(&m1);
            memcpy(&ev, p, 2);
            memcpy(&value, p + 2, 4);
        }
        bool more = zmq_msg_more(&m1);
        zmq_msg_close(&m1);
        while (more) { /* the endpoint string */
            zmq_msg_init(&m2);
            if (zmq_msg_recv(&m2, l->mon, 0) < 0) {
                zmq_msg_close(&m2);
                break;
            }
            more = zmq_msg_more(&m2);
            zmq_msg_close(&m2);
        }
        on_event(e, l, ev, value);
    }
}

/* --------------------------------------------------------------- ZAP */

/* Serve one ZAP request (ZeroMQ RFC 27): version, request id, domain,
 * address, routing id, mechanism, credentials. */
static void
zap_serve(shoal__engine *e)
{
    enum {
        PARTS = 8
    };
    zmq_msg_t part[PARTS];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, e->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < PARTS)
            part[n++] = m;
        else
            zmq_msg_close(&m);
    }
    if (n == 0)
        return;
    const char *status = "400", *text = "key not allowed";
    char user[80] = "";
    bool ok_shape = n >= 7 && zmq_msg_size(&part[0]) == 3 &&
                    memcmp(zmq_msg_data(&part[0]), "1.0", 3) == 0 && zmq_msg_size(&part[5]) == 5 &&
                    memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 && zmq_msg_size(&part[6]) == 32;
    if (ok_shape) {
        const uint8_t *x = zmq_msg_data(&part[6]);
        pthread_mutex_lock(&e->mu);
        const allowed *a = NULL, *d = alist_find_x(e->deny, e->ndeny, x);
        for (size_t i = 0; i < e->nallow; i++)
            if (sodium_memcmp(e->allow[i].x, x, 32) == 0)
                a = &e->allow[i];
        if (d) {
            /* An operator named this key: it is counted under its Ed25519
             * key, and its saves are limited like any peer's. */
            peer *p = peer_find(e, d->ed, false, true);
            if (p) {
                p->info.refused++;
                peer_error(p, "refused an incoming link: key disallowed");
                p->dirty = p->urgent = true;
            }
            text = "key disallowed";
            shoal__hex(user, d->ed, 32); /* for the log line below */
        } else if (a) {
            shoal__hex(user, a->ed, 32);
            status = "200";
            text = "OK";
        } else if (e->allow_any) {
            user[0] = 'x';
            shoal__hex(user + 1, x, 32);
            status = "200";
            text = "OK";
        } else {
            peer *p = peer_find(e, x, true, true);
            if (p) {
                /* Anyone on the network can make these: counted, saved
                 * with the periodic save, never one store write each. */
                p->info.refused++;
                peer_error(p, "refused an incoming link: X25519 key not on the allow-list");
                p->dirty = true;
            }
        }
        pthread_mutex_unlock(&e->mu);
        if (status[0] != '2' && user[0]) {
            logf_(e, SHOAL_LOG_WARN, "refused an incoming link from %.16s...: key disallowed",
                  user);
            user[0] = 0;
        } else if (status[0] != '2') {
            char kh[17];
            keyhex(kh, x);
            logf_(e, SHOAL_LOG_WARN, "refused an incoming link from X25519 key %s...", kh);
        }
    } else {
        text = "unsupported mechanism";
        logf_(e, SHOAL_LOG_WARN, "refused an incoming link: not a CURVE handshake");
    }
    /* Reply: version, request id, status code, status text, user id, metadata. */
    zmq_send(e->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(e->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
    else
        zmq_send(e->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(e->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(e->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(e->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(e->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

/* ------------------------------------------------------------ frames */

/* The identity of the connection m came from (its ZAP User-Id); false if
 * it has none we understand. */
static bool
msg_ident(zmq_msg_t *m, ident *out)
{
    const char *uid = zmq_msg_gets(m, "User-Id");
    memset(out, 0, sizeof *out);
    if (uid && strlen(uid) == 64 && shoal__unhex(out->key, 32, uid) == SHOAL_OK)
        return true;
    if (uid && strlen(uid) == 65 && uid[0] == 'x' &&
        shoal__unhex(out->key, 32, uid + 1) == SHOAL_OK) {
        out->xonly = true;
        return true;
    }
    return false;
}

/* Whether s is the session of a connection authenticated as id. */
static bool
sess_is(const sess *s, const ident *id)
{
    if (id->xonly)
        return s->check_x && memcmp(s->x, id->key, 32) == 0;
    return !s->check_x && s->key_known && memcmp(s->key, id->key, 32) == 0;
}

static bool
rid_dead(const lnk *l, const uint8_t *rid, size_t n, const ident *id, int fd)
{
    for (size_t i = 0; i < DEAD_RIDS; i++) {
        const dead_rid *d = &l->buried[i];
        if (d->len == n && n && memcmp(d->rid, rid, n) == 0 && d->fd == fd &&
            d->id.xonly == id->xonly && memcmp(d->id.key, id->key, 32) == 0)
            return true;
    }
    return false;
}

/* Frames from this routing id are ignored from now on, as long as they
 * come from the same identity over the same connection (as far as the
 * file descriptor tells): another peer that later takes the routing id
 * over, or the same peer on a new connection, is served. */
static void
rid_bury(lnk *l, const uint8_t *rid, size_t n, const ident *id, int fd)
{
    dead_rid *d = &l->buried[l->dead_next];
    memcpy(d->rid, rid, n);
    d->len = n;
    d->id = *id;
    d->fd = fd;
    l->dead_next = (l->dead_next + 1) % DEAD_RIDS;
}

static void
sess_bury(lnk *l, const sess *s)
{
    ident id = { .xonly = s->check_x };
    memcpy(id.key, s->check_x ? s->x : s->key, 32);
    rid_bury(l, s->rid, s->ridlen, &id, s->fd);
}

/* A frame from a new routing id on a listener, from a connection
 * authenticated as id: its session. */
static sess *
router_sess_new(shoal__engine *e, lnk *l, const uint8_t *rid, size_t ridlen, const ident *id,
                int fd)
{
    const uint8_t *key = id->key;
    bool xonly = id->xonly, known = !id->xonly;
    pthread_mutex_lock(&e->mu);
    bool permitted = ident_permitted(e, id);
    pthread_mutex_unlock(&e->mu);
    if (!permitted) {
        char kh[17];
        keyhex(kh, key);
        logf_(e, SHOAL_LOG_WARN, "%s: a frame from %s, no longer allowed: its link is ignored",
              l->ep, kh);
        rid_bury(l, rid, ridlen, id, fd);
        return NULL;
    }
    if (l->nss >= MAX_RSESS) {
        logf_(e, SHOAL_LOG_WARN, "%s: too many incoming links: frame dropped", l->ep);
        return NULL;
    }
    /* One key may rightly hold a few links at once (below), but not
     * thousands: each session may keep two copies of the peer's version
     * vector, a HELLO frame's worth (up to SHOAL__MAX_FRAME bytes) each. */
    size_t same = 0;
    for (sess *o = l->ss; o; o = o->next)
        if (!o->dead && (xonly ? o->check_x && memcmp(o->x, key, 32) == 0
                               : !o->check_x && memcmp(o->key, key, 32) == 0))
            same++;
    if (same >= MAX_KEY_SESS) {
        char kh[17];
        keyhex(kh, key);
        logf_(e, SHOAL_LOG_WARN, "%s: %s already holds %d links: another one ignored", l->ep, kh,
              (int)MAX_KEY_SESS);
        rid_bury(l, rid, ridlen, id, fd);
        return NULL;
    }
    /* A new connection from a key that already has one does not replace
     * it: the same identity may rightly hold two links at once (a one-shot
     * `shoal sync` beside a running `shoal serve` on one directory), and
     * replacing would break the live one.  A stale session goes when its
     * connection's DISCONNECTED event (matched by ZMQ_SRCFD) arrives, which
     * ZMTP heartbeats guarantee within a few heartbeat periods. */
    sess *s = sess_new(e, l, known ? key : NULL);
    if (!s)
        return NULL;
    if (xonly) {
        s->check_x = true;
        memcpy(s->x, key, 32);
    }
    memcpy(s->rid, rid, ridlen);
    s->ridlen = ridlen;
    s->fd = fd;
    if (shoal__session_start(s->s, wall_ms(e)) != SHOAL_OK)
        s->dead = true;
    return s;
}

static void
on_frame(shoal__engine *e, lnk *l, sess *s, const uint8_t *f, size_t n)
{
    int rc = shoal__session_recv(s->s, f, n, wall_ms(e));
    if (rc != SHOAL_OK) {
        char kh[17];
        keyhex(kh, s->key);
        logf_(e, SHOAL_LOG_WARN, "%s: input from %s rejected: %s", l->ep[0] ? l->ep : "incoming",
              kh, shoal_strerror((shoal_err)rc));
    }
    sess_pump(e, l, s);
    if (l->kind == L_SYNC && l->sync) {
        shoal__session_stats st;
        shoal__session_get_stats(s->s, &st);
        if (st.failed)
            sync_done(e, l, st.error ? st.error : SHOAL_EPROTO);
        else if (st.caught_up)
            sync_done(e, l, SHOAL_OK);
    }
    if (l->kind == L_CONNECT && l->backoff) {
        /* A link that got this far is healthy: the next failure starts
         * the back-off afresh. */
        shoal__session_stats st;
        shoal__session_get_stats(s->s, &st);
        if (st.caught_up && !st.failed)
            l->backoff = 0;
    }
}

/* Is f a HELLO frame?  (Canonical: a fixarray of 4 whose first item is
 * the positive fixint 1.) */
static bool
is_hello(const uint8_t *f, size_t n)
{
    return n >= 2 && f[0] == 0x94 && f[1] == SHOAL__F_HELLO;
}

/* The session a message on listener l goes to, or NULL to drop it.
 *
 * The routing id alone does not name a connection for long: when a
 * connection goes, the ROUTER forgets its routing id at once, but its
 * DISCONNECTED event reaches us through the monitor later, so for a while
 * the old session is still here.  A client may choose its own routing id
 * (ZMQ_ROUTING_ID), so the next connection to present that id, another
 * allowed peer or the same peer reconnecting, would have its frames fed
 * into the old session: counted for the wrong peer, the wrong peer blamed
 * for its input, or worse, one peer's changes applied and acknowledged as
 * another's.  So every message's authenticated identity (the User-Id the
 * ZAP handler set for its connection, read from the message itself) must
 * match the session's, and its connection (ZMQ_SRCFD) must be the
 * session's; otherwise the old session is over and a new one starts for
 * the new connection.  A HELLO on a session that is past its handshake is
 * also a new connection of the same peer (a peer says HELLO once per
 * connection, and a file descriptor may be reused): the session starts
 * afresh rather than failing on a "second HELLO". */
static sess *
router_route(shoal__engine *e, lnk *l, zmq_msg_t *rid, zmq_msg_t *m, bool multipart)
{
    const uint8_t *r = zmq_msg_data(rid);
    size_t rn = zmq_msg_size(rid);
    ident id;
    if (!msg_ident(m, &id)) {
        logf_(e, SHOAL_LOG_WARN, "%s: a frame without an authenticated key: dropped", l->ep);
        return NULL;
    }
    if (rn == 0 || rn > sizeof l->ss->rid)
        return NULL;
    int fd = zmq_msg_get(m, ZMQ_SRCFD);
    if (rid_dead(l, r, rn, &id, fd))
        return NULL;
    sess *s;
    for (s = l->ss; s; s = s->next)
        if (s->ridlen == rn && memcmp(s->rid, r, rn) == 0)
            break;
    if (s) {
        const char *why = NULL;
        if (!sess_is(s, &id))
            why = "another peer now holds its routing id";
        else if (s->fd >= 0 && fd >= 0 && s->fd != fd)
            why = "a new connection took its routing id";
        else if (!multipart && s->last.handshaken && is_hello(zmq_msg_data(m), zmq_msg_size(m)))
            why = "a new HELLO: the peer reconnected";
        if (why) {
            char kh[17];
            keyhex(kh, s->key);
            logf_(e, SHOAL_LOG_INFO, "%s: link with %s replaced (%s)", l->ep, kh, why);
            sess_drop(e, l, s, "link closed");
            s = NULL;
        }
    }
    if (!s)
        s = router_sess_new(e, l, r, rn, &id, fd);
    return s;
}

static void
read_socket(shoal__engine *e, lnk *l)
{
    for (int i = 0; i < RECV_BURST && l->sock && !l->dead; i++) {
        zmq_msg_t rid, m;
        zmq_msg_init(&rid);
        zmq_msg_init(&m);
        bool got = false, multipart = false;
        if (l->kind == L_LISTEN) {
            if (zmq_msg_recv(&rid, l->sock, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&rid) &&
                zmq_msg_recv(&m, l->sock, 0) >= 0)
                got = true;
        } else if (zmq_msg_recv(&m, l->sock, ZMQ_DONTWAIT) >= 0) {
            got = true;
        }
        if (got && zmq_msg_more(&m)) {
            multipart = true;
            int more = 1;
            while (more) { /* drain and ignore the extra parts */
                zmq_msg_t x;
                zmq_msg_init(&x);
                if (zmq_msg_recv(&x, l->sock, 0) < 0) {
                    zmq_msg_close(&x);
                    break;
                }
                more = zmq_msg_more(&x);
                zmq_msg_close(&x);
            }
        }
        if (!got) {
            zmq_msg_close(&rid);
            zmq_msg_close(&m);
            return;
        }
        sess *s = NULL;
        if (l->kind == L_LISTEN) {
            s = router_route(e, l, &rid, &m, multipart);
        } else {
            s = l->ss;
        }
        if (s && !s->dead) {
            if (multipart) {
                /* Frames are single-part: answer like any malformed frame. */
                static const uint8_t junk[1] = { 0 };
                on_frame(e, l, s, junk, 0);
            } else {
                on_frame(e, l, s, zmq_msg_data(&m), zmq_msg_size(&m));
            }
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&m);
    }
}

/* ---------------------------------------------------------- commands */

static lnk *
link_new(shoal__engine *e, int kind, const char *ep)
{
    lnk *l = shoal__calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->kind = kind;
    snprintf(l->ep, sizeof l->ep, "%s", ep);
    l->next = e->links;
    e->links = l;
    return l;
}

static int
do_listen(shoal__engine *e, cmd *c)
{
    lnk *l = link_new(e, L_LISTEN, c->ep);
    if (!l)
        return SHOAL_ENOMEM;
    l->sock = zmq_socket(e->ctx, ZMQ_ROUTER);
    if (!l->sock) {
        l->dead = true;
        return zmq_err();
    }
    int backlog = e->cfg.backlog > 0 ? e->cfg.backlog : 1024;
    int rc = common_opts(e, l->sock);
    rc |= set_int(l->sock, ZMQ_CURVE_SERVER, 1);
    rc |= zmq_setsockopt(l->sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    rc |= set_int(l->sock, ZMQ_ROUTER_MANDATORY, 1);
    rc |= set_int(l->sock, ZMQ_BACKLOG, backlog);
    /* A draft option in libzmq 4.3: ask for it, but the ZAP handler is in
     * place before any bind anyway. */
    set_int(l->sock, ZMQ_ZAP_ENFORCE_DOMAIN, 1);
    if (rc == 0)
        rc = monitor(e, l);
    if (rc == 0)
        rc = zmq_bind(l->sock, c->ep);
    if (rc != 0) {
        int err = zmq_err();
        logf_(e, SHOAL_LOG_ERROR, "cannot listen on %s: %s", c->ep, zmq_strerror(errno));
        sock_close(l);
        l->dead = true;
        return err;
    }
    char buf[256];
    size_t n = sizeof buf;
    if (zmq_getsockopt(l->sock, ZMQ_LAST_ENDPOINT, buf, &n) == 0 && n > 0 && n <= sizeof buf) {
        buf[sizeof buf - 1] = 0;
        /* With ZMQ_IPV6 an IPv4 bind reports the mapped form
         * "tcp://[::ffff:127.0.0.1]:PORT": give back the plain one. */
        const char *m = "tcp://[::ffff:";
        char *close = strstr(buf, "]:");
        if (strncmp(buf, m, strlen(m)) == 0 && close && strchr(buf + strlen(m), '.'))
            snprintf(l->ep, sizeof l->ep, "tcp://%.*s%s", (int)(close - buf - strlen(m)),
                     buf + strlen(m), close + 1);
        else
            snprintf(l->ep, sizeof l->ep, "%s", buf);
    }
    c->bound = shoal__malloc(strlen(l->ep) + 1);
    if (!c->bound)
        return SHOAL_ENOMEM;
    memcpy(c->bound, l->ep, strlen(l->ep) + 1);
    logf_(e, SHOAL_LOG_INFO, "listening on %s", l->ep);
    return SHOAL_OK;
}

static lnk *
find_dealer(shoal__engine *e, const char *ep)
{
    for (lnk *l = e->links; l; l = l->next)
        if (l->kind == L_CONNECT && !l->dead && strcmp(l->ep, ep) == 0)
            return l;
    return NULL;
}

/* Close every link up with key (just disallowed): an incoming session
 * gets an ERROR frame (an honest peer drops the connection and its
 * reconnect is refused by ZAP), then its routing id is ignored; an
 * outgoing link is reset (and closed again at each handshake while the
 * key stays disallowed). */
static int
do_disallow(shoal__engine *e, const uint8_t key[32])
{
    uint8_t x[32];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return SHOAL_EINVAL;
    char kh[17];
    keyhex(kh, key);
    shoal__buf err;
    shoal__buf_init(&err);
    if (shoal__wire_error(&err, SHOAL_EREFUSED, "your key was disallowed") != SHOAL_OK)
        err.len = 0;
    int closed = 0;
    for (lnk *l = e->links; l; l = l->next) {
        if (l->dead)
            continue;
        if (l->kind == L_LISTEN) {
            for (sess *s = l->ss, *next; s; s = next) {
                next = s->next;
                bool match = (s->key_known && memcmp(s->key, key, 32) == 0) ||
                             (s->check_x && memcmp(s->x, x, 32) == 0);
                if (!match)
                    continue;
                if (err.len && !s->dead)
                    send_frame(l, s, err.p, err.len);
                sess_bury(l, s);
                sess_drop(e, l, s, NULL);
                closed++;
            }
        } else if (memcmp(l->key, key, 32) == 0 && l->ss) {
            if (l->kind == L_SYNC)
                sync_done(e, l, SHOAL_EREFUSED);
            dealer_reset(e, l, NULL);
            closed++;
        }
    }
    shoal__buf_free(&err);
    if (closed) {
        logf_(e, SHOAL_LOG_WARN, "%s disallowed: %d link(s) closed", kh, closed);
        peer_note(e, key, "link closed: key disallowed");
    }
    return SHOAL_OK;
}

/* Returns true when the command is complete. */
static bool
run_cmd(shoal__engine *e, cmd *c)
{
    switch (c->op) {
    case C_LISTEN: c->rc = do_listen(e, c); return true;
    case C_CONNECT: {
        lnk *l = find_dealer(e, c->ep);
        if (l) {
            c->rc = memcmp(l->key, c->key, 32) == 0 ? SHOAL_OK : SHOAL_EBUSY;
            return true;
        }
        l = link_new(e, L_CONNECT, c->ep);
        if (!l) {
            c->rc = SHOAL_ENOMEM;
            return true;
        }
        memcpy(l->key, c->key, 32);
        c->rc = dealer_open(e, l);
        if (c->rc)
            l->dead = true;
        return true;
    }
    case C_DISCONNECT: {
        lnk *l = find_dealer(e, c->ep);
        c->rc = l ? SHOAL_OK : SHOAL_ENOTFOUND;
        if (l) {
            link_close(e, l, "disconnected by us");
            l->dead = true;
        }
        return true;
    }
    case C_SYNC: {
        lnk *l = link_new(e, L_SYNC, c->ep);
        if (!l) {
            c->rc = SHOAL_ENOMEM;
            return true;
        }
        memcpy(l->key, c->key, 32);
        l->deadline = mono_ms() + (uint64_t)(c->timeout_ms > 0 ? c->timeout_ms : 0);
        c->rc = dealer_open(e, l);
        if (c->rc) {
            l->dead = true;
            return true;
        }
        l->sync = c;
        return false; /* done later, by sync_done */
    }
    case C_DISALLOW: c->rc = do_disallow(e, c->key); return true;
    default: c->rc = SHOAL_EINVAL; return true;
    }
}

static void
run_cmds(shoal__engine *e)
{
    pthread_mutex_lock(&e->mu);
    cmd *c = e->q_head;
    e->q_head = e->q_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (c) {
        cmd *next = c->next;
        bool done = run_cmd(e, c);
        if (done) {
            pthread_mutex_lock(&e->mu);
            c->done = true;
            pthread_cond_broadcast(&e->cv);
            pthread_mutex_unlock(&e->mu);
        }
        c = next;
    }
}

/* -------------------------------------------------------------- loop */

/* Drop dead sessions and links; run timers.  Returns the poll timeout. */
static long
housekeeping(shoal__engine *e)
{
    uint64_t now = mono_ms();
    long timeout = 1000;
    int hb = e->cfg.heartbeat_ms > 0 ? e->cfg.heartbeat_ms : 1000;
    for (lnk **lp = &e->links; *lp;) {
        lnk *l = *lp;
        for (sess *s = l->ss, *next; s; s = next) {
            next = s->next;
            if (!s->dead && l->kind == L_LISTEN && !s->last.handshaken &&
                now - s->born > (uint64_t)hb * HELLO_TIMEOUT_BEATS)
                s->dead = true;
            if (!s->dead)
                continue;
            bool failed = s->last.failed;
            if (l->kind == L_LISTEN) {
                if (failed || s->check_x)
                    sess_bury(l, s);
                sess_drop(e, l, s, failed ? NULL : "link closed");
            } else if (l->kind == L_SYNC) {
                sync_done(e, l, s->last.error ? s->last.error : SHOAL_ETRANSPORT);
            } else {
                dealer_reset(e, l, NULL);
                break;
            }
        }
        if (l->kind == L_SYNC && l->sync && now >= l->deadline)
            sync_done(e, l, SHOAL_ETIMEDOUT);
        if (l->kind == L_CONNECT && !l->dead && !l->sock && now >= l->retry_at) {
            if (dealer_open(e, l) != SHOAL_OK) {
                l->backoff = l->backoff ? l->backoff * 2 : BACKOFF_MIN_MS;
                if (l->backoff > BACKOFF_MAX_MS)
                    l->backoff = BACKOFF_MAX_MS;
                l->retry_at = now + l->backoff;
            }
        }
        if (l->dead) {
            sync_done(e, l, SHOAL_ECLOSED);
            link_close(e, l, "link closed");
            *lp = l->next;
            shoal__free(l);
            continue;
        }
        for (sess *s = l->ss; s; s = s->next)
            if (s->pend && l->kind == L_LISTEN && timeout > RETRY_MS)
                timeout = RETRY_MS;
        if (l->kind == L_SYNC && l->sync && (long)(l->deadline - now) < timeout)
            timeout = (long)(l->deadline - now);
        if (l->kind == L_CONNECT && !l->sock && (long)(l->retry_at - now) < timeout)
            timeout = l->retry_at > now ? (long)(l->retry_at - now) : 0;
        lp = &l->next;
    }
    save_peers(e, now >= e->next_save);
    if (now >= e->next_save)
        e->next_save = now + SAVE_MS;
    /* Another process sharing the replica directory (the `shoal` tool
     * beside a running `serve`, say) commits without calling notify: look
     * at the log now and then, so its changes are pushed too.  A session
     * at the end of the log costs one short read transaction. */
    if (now >= e->next_log_poll) {
        if (e->links)
            e->relay = true;
        e->next_log_poll = now + shoal__engine_log_poll_ms;
    }
    if ((long)(e->next_log_poll - now) < timeout)
        timeout = (long)(e->next_log_poll - now);
    return timeout < 0 ? 0 : timeout;
}

/* Tell every session the log grew and pump it.  Returns false when that
 * was for nothing and more commits would be too: no session had a frame to
 * send, and every live session is handshaken and waits for the peer to
 * acknowledge changes in flight (lag > 0 with nothing sendable means its
 * window is full), so each of them pumps again when that ACK arrives. */
static bool
push_all(shoal__engine *e)
{
    uint64_t before = e->frames_out;
    bool waiting = false, idle = false;
    for (lnk *l = e->links; l; l = l->next)
        for (sess *s = l->ss; s; s = s->next)
            if (!s->dead) {
                shoal__session_changed(s->s);
                sess_pump(e, l, s);
                shoal__session_stats st;
                shoal__session_get_stats(s->s, &st);
                if (s->dead || st.failed)
                    continue;
                if (st.handshaken && st.lag > 0)
                    waiting = true;
                else
                    idle = true;
            }
    return e->frames_out != before || idle || !waiting;
}

static void *
engine_main(void *arg)
{
    shoal__engine *e = arg;
    zmq_pollitem_t *items = NULL;
    lnk **owners = NULL;
    size_t cap = 0;
    for (;;) {
        long timeout = housekeeping(e);
        size_t nl = 0;
        for (lnk *l = e->links; l; l = l->next)
            nl++;
        size_t need = 2 + 2 * nl;
        if (need > cap) {
            zmq_pollitem_t *ni = shoal__realloc(items, need * sizeof *ni);
            lnk **no = ni ? shoal__realloc(owners, need * sizeof *no) : NULL;
            if (ni)
                items = ni;
            if (!no) {
                logf_(e, SHOAL_LOG_ERROR, "engine: out of memory");
                struct timespec ts = { 0, 10000000 };
                nanosleep(&ts, NULL);
                continue;
            }
            owners = no;
            cap = need;
        }
        size_t n = 0;
        items[n] = (zmq_pollitem_t){ .fd = e->wake[0], .events = ZMQ_POLLIN };
        owners[n++] = NULL;
        items[n] = (zmq_pollitem_t){ .socket = e->zap, .events = ZMQ_POLLIN };
        owners[n++] = NULL;
        for (lnk *l = e->links; l; l = l->next) {
            if (l->mon) {
                items[n] = (zmq_pollitem_t){ .socket = l->mon, .events = ZMQ_POLLIN };
                owners[n++] = l;
            }
            if (l->sock) {
                short ev = ZMQ_POLLIN;
                if (l->kind != L_LISTEN && l->ss && l->ss->pend)
                    ev |= ZMQ_POLLOUT;
                items[n] = (zmq_pollitem_t){ .socket = l->sock, .events = ev };
                owners[n++] = l;
            }
        }
        int rc = zmq_poll(items, (int)n, timeout);
        if (rc < 0 && errno != EINTR) {
            logf_(e, SHOAL_LOG_ERROR, "engine: zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            char buf[64];
            while (read(e->wake[0], buf, sizeof buf) > 0)
                ;
        }
        pthread_mutex_lock(&e->mu);
        bool stop = e->stopping;
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
        run_cmds(e);
        if (items[1].revents & ZMQ_POLLIN)
            for (int i = 0; i < RECV_BURST; i++) {
                int ev = 0;
                size_t evl = sizeof ev;
                if (zmq_getsockopt(e->zap, ZMQ_EVENTS, &ev, &evl) != 0 || !(ev & ZMQ_POLLIN))
                    break;
                zap_serve(e);
            }
        /* Sockets: links created by the commands above are not in items;
         * links in items are still alive (only housekeeping frees). */
        for (size_t i = 2; i < n; i++) {
            lnk *l = owners[i];
            if (!(items[i].revents & ZMQ_POLLIN) || l->dead)
                continue; /* POLLOUT: the retry below */
            if (items[i].socket == l->mon)
                read_monitor(e, l);
            else if (items[i].socket == l->sock)
                read_socket(e, l);
        }
        /* Retry frames the sockets refused earlier. */
        for (lnk *l = e->links; l; l = l->next)
            for (sess *s = l->ss; s; s = s->next)
                if (s->pend && !s->dead)
                    sess_pump(e, l, s);
        bool notified = atomic_exchange(&e->notified, false);
        if (notified || e->relay) {
            e->relay = false;
            /* Every session waits for an ACK (see push_all) and already
             * knows the log grew.  Leave notified set so that commits
             * meanwhile do not wake this thread for nothing (a writer
             * committing thousands of times a second against a full
             * window); the next pass of this loop, after any frame or the
             * log poll, clears it and pushes again. */
            if (!push_all(e))
                atomic_store(&e->notified, true);
        }
    }
    /* Shut down: fail waiting commands, close everything, save. */
    for (lnk *l = e->links; l; l = l->next) {
        sync_done(e, l, SHOAL_ECLOSED);
        link_close(e, l, "engine stopped");
    }
    while (e->links) {
        lnk *l = e->links;
        e->links = l->next;
        shoal__free(l);
    }
    pthread_mutex_lock(&e->mu);
    e->stopped = true;
    for (cmd *c = e->q_head; c; c = c->next) {
        c->rc = SHOAL_ECLOSED;
        c->done = true;
    }
    e->q_head = e->q_tail = NULL;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    save_peers(e, true);
    shoal__free(items);
    shoal__free(owners);
    return NULL;
}

/* ------------------------------------------------------------ public */

static int
by_last_seen(const void *a, const void *b)
{
    const shoal__peer_info *x = *(const shoal__peer_info *const *)a;
    const shoal__peer_info *y = *(const shoal__peer_info *const *)b;
    return x->last_seen_ms < y->last_seen_ms ? -1 : x->last_seen_ms > y->last_seen_ms;
}

/* The records known before this run (cfg.known) become the first peer
 * records, least recently seen first (so they are evicted first), with
 * zero counts (the caller adds its stored totals); past the cap the
 * oldest go at once. */
static int
seed_peers(shoal__engine *e, const shoal__peer_info *known, size_t n)
{
    if (n == 0)
        return SHOAL_OK;
    const shoal__peer_info **order = shoal__malloc(n * sizeof *order);
    if (!order)
        return SHOAL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = &known[i];
    qsort(order, n, sizeof *order, by_last_seen);
    int err = SHOAL_OK;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < n && !err; i++) {
        const shoal__peer_info *k = order[i];
        if (peer_find(e, k->key, k->xkey, false))
            continue;
        peer *p = peer_find(e, k->key, k->xkey, true);
        if (!p) {
            err = SHOAL_ENOMEM;
            break;
        }
        p->info.last_seen_ms = k->last_seen_ms;
        p->refused_only = k->connects == 0;
    }
    pthread_mutex_unlock(&e->mu);
    shoal__free(order);
    return err;
}

int
shoal__engine_start(shoal__engine **out, const shoal__engine_cfg *cfg)
{
    assert(out && cfg && cfg->pk && cfg->sk && cfg->host);
    *out = NULL;
    if (sodium_init() < 0)
        return SHOAL_ETRANSPORT;
    shoal__engine *e = shoal__calloc(1, sizeof *e);
    if (!e)
        return SHOAL_ENOMEM;
    e->cfg = *cfg;
    e->host = *cfg->host;
    memcpy(e->pk, cfg->pk, 32);
    e->wake[0] = e->wake[1] = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    atomic_init(&e->notified, false);
    int err = SHOAL_OK;
    e->xsk = sodium_malloc(32);
    if (!e->xsk) {
        err = SHOAL_ENOMEM;
        goto fail;
    }
    if (crypto_sign_ed25519_sk_to_curve25519(e->xsk, cfg->sk) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(e->xpk, cfg->pk) != 0) {
        err = SHOAL_EINVAL;
        goto fail;
    }
    if (pipe2(e->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        e->wake[0] = e->wake[1] = -1;
        err = SHOAL_ETRANSPORT;
        goto fail;
    }
    e->ctx = zmq_ctx_new();
    if (!e->ctx) {
        err = SHOAL_ETRANSPORT;
        goto fail;
    }
    zmq_ctx_set(e->ctx, ZMQ_BLOCKY, 0);
    /* The ZAP handler exists before any listener: CURVE without ZAP admits
     * anyone. */
    e->zap = zmq_socket(e->ctx, ZMQ_REP);
    if (!e->zap || set_int(e->zap, ZMQ_LINGER, 0) != 0 || zmq_bind(e->zap, ZAP_ENDPOINT) != 0) {
        err = SHOAL_ETRANSPORT;
        goto fail;
    }
    e->maxpeers = cfg->max_peers ? cfg->max_peers : shoal__engine_max_peers;
    if (e->maxpeers == 0)
        e->maxpeers = 1;
    err = seed_peers(e, cfg->known, cfg->nknown);
    if (err)
        goto fail;
    e->next_save = mono_ms() + SAVE_MS;
    if (pthread_create(&e->th, NULL, engine_main, e) != 0) {
        err = SHOAL_ENOMEM;
        goto fail;
    }
    e->th_started = true;
    *out = e;
    return SHOAL_OK;
fail:
    shoal__engine_stop(e);
    return err;
}

void
shoal__engine_stop(shoal__engine *e)
{
    if (!e)
        return;
    if (e->th_started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = true;
        pthread_mutex_unlock(&e->mu);
        wake(e);
        pthread_join(e->th, NULL);
    }
    if (e->zap)
        zmq_close(e->zap);
    if (e->ctx)
        zmq_ctx_term(e->ctx);
    if (e->wake[0] >= 0)
        close(e->wake[0]);
    if (e->wake[1] >= 0)
        close(e->wake[1]);
    if (e->xsk)
        sodium_free(e->xsk);
    shoal__free(e->allow);
    shoal__free(e->deny);
    shoal__free(e->peers);
    shoal__free(e->gone);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    shoal__free(e);
}

/* Queue c and wait until the engine completed it. */
static int
submit(shoal__engine *e, cmd *c)
{
    /* A link keeps its endpoint in a fixed buffer (lnk.ep, peer_info
     * endpoint): a longer one would be cut and name another endpoint. */
    if (strnlen(c->ep, sizeof((lnk *)0)->ep) >= sizeof((lnk *)0)->ep)
        return SHOAL_EINVAL;
    c->done = false;
    c->next = NULL;
    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->stopped) {
        pthread_mutex_unlock(&e->mu);
        return SHOAL_ECLOSED;
    }
    if (e->q_tail)
        e->q_tail->next = c;
    else
        e->q_head = c;
    e->q_tail = c;
    pthread_mutex_unlock(&e->mu);
    wake(e);
    pthread_mutex_lock(&e->mu);
    while (!c->done)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return c->rc;
}

int
shoal__engine_allow(shoal__engine *e, const uint8_t key[32])
{
    assert(e && key);
    allowed a;
    if (crypto_sign_ed25519_pk_to_curve25519(a.x, key) != 0)
        return SHOAL_EINVAL;
    memcpy(a.ed, key, 32);
    pthread_mutex_lock(&e->mu);
    int err = alist_add(&e->allow, &e->nallow, &e->capallow, &a);
    if (!err)
        alist_del(e->deny, &e->ndeny, key);
    pthread_mutex_unlock(&e->mu);
    return err;
}

int
shoal__engine_disallow(shoal__engine *e, const uint8_t key[32], bool close_links)
{
    assert(e && key);
    allowed a;
    if (crypto_sign_ed25519_pk_to_curve25519(a.x, key) != 0)
        return SHOAL_EINVAL;
    memcpy(a.ed, key, 32);
    pthread_mutex_lock(&e->mu);
    int err = alist_add(&e->deny, &e->ndeny, &e->capdeny, &a);
    if (!err)
        alist_del(e->allow, &e->nallow, key);
    pthread_mutex_unlock(&e->mu);
    if (err || !close_links)
        return err;
    /* From here on ZAP refuses the key; now close its links. */
    cmd c = { .op = C_DISALLOW, .ep = "" };
    memcpy(c.key, key, 32);
    return submit(e, &c);
}

int
shoal__engine_allow_any(shoal__engine *e, bool any)
{
    assert(e);
    pthread_mutex_lock(&e->mu);
    e->allow_any = any;
    pthread_mutex_unlock(&e->mu);
    return SHOAL_OK;
}

int
shoal__engine_listen(shoal__engine *e, const char *endpoint, char **bound)
{
    assert(e && endpoint);
    if (bound)
        *bound = NULL;
    cmd c = { .op = C_LISTEN, .ep = endpoint };
    int rc = submit(e, &c);
    if (rc == SHOAL_OK && bound)
        *bound = c.bound;
    else
        shoal__free(c.bound);
    return rc;
}

int
shoal__engine_connect(shoal__engine *e, const char *endpoint, const uint8_t key[32])
{
    assert(e && endpoint && key);
    uint8_t x[32];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return SHOAL_EINVAL;
    cmd c = { .op = C_CONNECT, .ep = endpoint };
    memcpy(c.key, key, 32);
    return submit(e, &c);
}

int
shoal__engine_disconnect(shoal__engine *e, const char *endpoint)
{
    assert(e && endpoint);
    cmd c = { .op = C_DISCONNECT, .ep = endpoint };
    return submit(e, &c);
}

int
shoal__engine_sync(shoal__engine *e, const char *endpoint, const uint8_t key[32], int timeout_ms)
{
    assert(e && endpoint && key);
    uint8_t x[32];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return SHOAL_EINVAL;
    cmd c = { .op = C_SYNC, .ep = endpoint, .timeout_ms = timeout_ms };
    memcpy(c.key, key, 32);
    return submit(e, &c);
}

void
shoal__engine_notify(shoal__engine *e)
{
    if (!e)
        return;
    if (!atomic_exchange(&e->notified, true))
        wake(e);
}

int
shoal__engine_peers(shoal__engine *e, shoal__peer_info **out, size_t *n)
{
    assert(e && out && n);
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&e->mu);
    int err = SHOAL_OK;
    if (e->npeers) {
        *out = shoal__malloc(e->npeers * sizeof **out);
        if (!*out) {
            err = SHOAL_ENOMEM;
        } else {
            for (size_t i = 0; i < e->npeers; i++) {
                (*out)[i] = e->peers[i].info;
                (*out)[i].connected = e->peers[i].live > 0;
                (*out)[i].xkey = e->peers[i].unknown;
            }
            *n = e->npeers;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return err;
}
