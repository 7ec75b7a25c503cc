/*
 * transport/zmq.c - the ZeroMQ engine: one background thread per replica
 * that owns every socket and moves the sans-I/O session's frames.  This
 * file holds the helpers, the command queue, the loop and the public
 * calls; zmq_int.h lists the others.
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

#include "zmq_int.h"

size_t shoal__engine_max_peers = SHOAL__ENGINE_PEERS;
/* How often the engine looks at the log for commits of other processes
 * (tests raise it to show that pushes never wait for it). */
_Atomic uint64_t shoal__engine_log_poll_ms = 250;

uint64_t
shoal__zq_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
shoal__zq_wall_ms(shoal__engine *e)
{
    if (e->cfg.now_ms)
        return e->cfg.now_ms(e->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
shoal__zq_logf(shoal__engine *e, int level, const char *fmt, ...)
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

void
shoal__zq_keyhex(char out[17], const uint8_t *k)
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

int
shoal__zq_zmq_err(void)
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
        return shoal__zq_zmq_err();
    }
    int backlog = e->cfg.backlog > 0 ? e->cfg.backlog : 1024;
    int rc = shoal__zq_common_opts(e, l->sock);
    rc |= shoal__zq_set_int(l->sock, ZMQ_CURVE_SERVER, 1);
    rc |= zmq_setsockopt(l->sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    rc |= shoal__zq_set_int(l->sock, ZMQ_ROUTER_MANDATORY, 1);
    rc |= shoal__zq_set_int(l->sock, ZMQ_BACKLOG, backlog);
    /* A draft option in libzmq 4.3: ask for it, but the ZAP handler is in
     * place before any bind anyway. */
    shoal__zq_set_int(l->sock, ZMQ_ZAP_ENFORCE_DOMAIN, 1);
    if (rc == 0)
        rc = shoal__zq_monitor(e, l);
    if (rc == 0)
        rc = zmq_bind(l->sock, c->ep);
    if (rc != 0) {
        int err = shoal__zq_zmq_err();
        shoal__zq_logf(e, SHOAL_LOG_ERROR, "cannot listen on %s: %s", c->ep, zmq_strerror(errno));
        shoal__zq_sock_close(l);
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
    shoal__zq_logf(e, SHOAL_LOG_INFO, "listening on %s", l->ep);
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
do_disallow(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES])
{
    uint8_t x[XKEY_BYTES];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return SHOAL_EINVAL;
    char kh[17];
    shoal__zq_keyhex(kh, key);
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
                bool match = (s->key_known && memcmp(s->key, key, SHOAL_KEY_BYTES) == 0) ||
                             (s->check_x && memcmp(s->x, x, XKEY_BYTES) == 0);
                if (!match)
                    continue;
                if (err.len && !s->dead)
                    shoal__zq_send_frame(l, s, err.p, err.len);
                shoal__zq_sess_bury(l, s);
                shoal__zq_sess_drop(e, l, s, NULL);
                closed++;
            }
        } else if (memcmp(l->key, key, SHOAL_KEY_BYTES) == 0 && l->ss) {
            if (l->kind == L_SYNC)
                shoal__zq_sync_done(e, l, SHOAL_EREFUSED);
            shoal__zq_dealer_reset(e, l, NULL);
            closed++;
        }
    }
    shoal__buf_free(&err);
    if (closed) {
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s disallowed: %d link(s) closed", kh, closed);
        shoal__zq_peer_note(e, key, "link closed: key disallowed");
    }
    return SHOAL_OK;
}

/* Close every incoming session whose key may no longer hold one: allow_any
 * was switched off, or a certificate that admitted it expired or a
 * revocation names it (ZAP only judges new connections, and a session's
 * frames are not judged again); why goes in the log. */
static int
recheck_sessions(shoal__engine *e, const char *why)
{
    shoal__buf err;
    shoal__buf_init(&err);
    if (shoal__wire_error(&err, SHOAL_EREFUSED, "your key is no longer allowed") != SHOAL_OK)
        err.len = 0;
    int closed = 0;
    for (lnk *l = e->links; l; l = l->next) {
        if (l->dead || l->kind != L_LISTEN)
            continue;
        for (sess *s = l->ss, *next; s; s = next) {
            next = s->next;
            if (s->dead)
                continue;
            ident id = { .xonly = s->check_x };
            memcpy(id.key, s->check_x ? s->x : s->key, XKEY_BYTES);
            pthread_mutex_lock(&e->mu);
            bool permitted = shoal__zq_ident_permitted(e, &id);
            pthread_mutex_unlock(&e->mu);
            if (permitted)
                continue;
            if (err.len)
                shoal__zq_send_frame(l, s, err.p, err.len);
            shoal__zq_sess_bury(l, s);
            shoal__zq_sess_drop(e, l, s, NULL);
            closed++;
        }
    }
    shoal__buf_free(&err);
    if (closed)
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: %d link(s) of keys not allowed closed", why, closed);
    return SHOAL_OK;
}

static int
do_recheck(shoal__engine *e)
{
    return recheck_sessions(e, "allow_any off");
}

enum {
    CERT_RECHECK_MS = 1000 /* how often admissions by certificate are judged again */
};

/* Permissions: keys admitted by a certificate that no longer admits them
 * (expired, revoked) leave the list, and every incoming session is judged
 * again (a revocation also refuses an allow-listed key). */
static void
recheck_certs(shoal__engine *e, uint64_t now)
{
    if ((!e->host.certified && !e->host.revoked) || now < e->cert_check_at)
        return;
    e->cert_check_at = now + CERT_RECHECK_MS;
    if (e->host.auth_refresh)
        e->host.auth_refresh(e->host.ctx);
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->ncertok;) {
        uint8_t ed[SHOAL_KEY_BYTES];
        if (e->host.certified && e->host.certified(e->host.ctx, e->certok[i].x, ed))
            i++;
        else
            e->certok[i] = e->certok[--e->ncertok];
    }
    pthread_mutex_unlock(&e->mu);
    (void)recheck_sessions(e, "certificate expired or key revoked");
    /* The authority changed: a full peer must still read everything. */
    uint64_t gen = e->host.auth_gen ? e->host.auth_gen(e->host.ctx) : 0;
    if (gen != e->auth_seen) {
        e->auth_seen = gen;
        for (lnk *l = e->links; l; l = l->next)
            for (sess *s = l->ss; s && l->kind == L_LISTEN && !l->dead; s = s->next)
                if (!s->dead && shoal__session_recheck_full(s->s))
                    shoal__zq_sess_pump(e, l, s);
    }
    /* Links we dialled to a key revoked since (reset, and refused again
     * at each handshake while it stays revoked). */
    for (lnk *l = e->links; e->host.revoked && l; l = l->next) {
        uint8_t x[XKEY_BYTES];
        if (l->dead || l->kind == L_LISTEN || !l->ss ||
            crypto_sign_ed25519_pk_to_curve25519(x, l->key) != 0 ||
            !e->host.revoked(e->host.ctx, x))
            continue;
        char kh[17];
        shoal__zq_keyhex(kh, l->key);
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: %s is revoked: link closed", l->ep, kh);
        shoal__zq_peer_note(e, l->key, "link closed: key revoked");
        if (l->kind == L_SYNC)
            shoal__zq_sync_done(e, l, SHOAL_EREFUSED);
        shoal__zq_dealer_reset(e, l, NULL);
    }
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
            c->rc = memcmp(l->key, c->key, SHOAL_KEY_BYTES) == 0 ? SHOAL_OK : SHOAL_EBUSY;
            return true;
        }
        l = link_new(e, L_CONNECT, c->ep);
        if (!l) {
            c->rc = SHOAL_ENOMEM;
            return true;
        }
        memcpy(l->key, c->key, SHOAL_KEY_BYTES);
        c->rc = shoal__zq_dealer_open(e, l);
        if (c->rc)
            l->dead = true;
        return true;
    }
    case C_DISCONNECT: {
        lnk *l = find_dealer(e, c->ep);
        c->rc = l ? SHOAL_OK : SHOAL_ENOTFOUND;
        if (l) {
            shoal__zq_link_close(e, l, "disconnected by us");
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
        memcpy(l->key, c->key, SHOAL_KEY_BYTES);
        l->deadline = shoal__zq_mono_ms() + (uint64_t)(c->timeout_ms > 0 ? c->timeout_ms : 0);
        c->rc = shoal__zq_dealer_open(e, l);
        if (c->rc) {
            l->dead = true;
            return true;
        }
        l->sync = c;
        return false; /* done later, by shoal__zq_sync_done */
    }
    case C_DISALLOW: c->rc = do_disallow(e, c->key); return true;
    case C_RECHECK: c->rc = do_recheck(e); return true;
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

/* Drop dead sessions and links; run timers.  Returns the poll timeout. */
static long
housekeeping(shoal__engine *e)
{
    uint64_t now = shoal__zq_mono_ms();
    long timeout = 1000;
    int hb = e->cfg.heartbeat_ms > 0 ? e->cfg.heartbeat_ms : 1000;
    recheck_certs(e, now);
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
                    shoal__zq_sess_bury(l, s);
                shoal__zq_sess_drop(e, l, s, failed ? NULL : "link closed");
            } else if (l->kind == L_SYNC) {
                shoal__zq_sync_done(e, l, s->last.error ? s->last.error : SHOAL_ETRANSPORT);
            } else {
                shoal__zq_dealer_reset(e, l, NULL);
                break;
            }
        }
        if (l->kind == L_SYNC && l->sync && now >= l->deadline)
            shoal__zq_sync_done(e, l, SHOAL_ETIMEDOUT);
        if (l->kind == L_CONNECT && !l->dead && !l->sock && now >= l->retry_at) {
            if (shoal__zq_dealer_open(e, l) != SHOAL_OK) {
                l->backoff = l->backoff ? l->backoff * 2 : BACKOFF_MIN_MS;
                if (l->backoff > BACKOFF_MAX_MS)
                    l->backoff = BACKOFF_MAX_MS;
                l->retry_at = now + l->backoff;
            }
        }
        if (l->dead) {
            shoal__zq_sync_done(e, l, SHOAL_ECLOSED);
            shoal__zq_link_close(e, l, "link closed");
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
    shoal__zq_save_peers(e, now >= e->next_save);
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
                shoal__zq_sess_pump(e, l, s);
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
                shoal__zq_logf(e, SHOAL_LOG_ERROR, "engine: out of memory");
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
            shoal__zq_logf(e, SHOAL_LOG_ERROR, "engine: zmq_poll: %s", zmq_strerror(errno));
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
                shoal__zq_zap_serve(e);
            }
        /* Sockets: links created by the commands above are not in items;
         * links in items are still alive (only housekeeping frees). */
        for (size_t i = 2; i < n; i++) {
            lnk *l = owners[i];
            if (!(items[i].revents & ZMQ_POLLIN) || l->dead)
                continue; /* POLLOUT: the retry below */
            if (items[i].socket == l->mon)
                shoal__zq_read_monitor(e, l);
            else if (items[i].socket == l->sock)
                shoal__zq_read_socket(e, l);
        }
        /* Retry frames the sockets refused earlier. */
        for (lnk *l = e->links; l; l = l->next)
            for (sess *s = l->ss; s; s = s->next)
                if (s->pend && !s->dead)
                    shoal__zq_sess_pump(e, l, s);
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
        shoal__zq_sync_done(e, l, SHOAL_ECLOSED);
        shoal__zq_link_close(e, l, "engine stopped");
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
    shoal__zq_save_peers(e, true);
    shoal__free(items);
    shoal__free(owners);
    return NULL;
}

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
        if (shoal__zq_peer_find(e, k->key, k->xkey, false))
            continue;
        peer *p = shoal__zq_peer_find(e, k->key, k->xkey, true);
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
    memcpy(e->pk, cfg->pk, SHOAL_KEY_BYTES);
    e->wake[0] = e->wake[1] = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    atomic_init(&e->notified, false);
    int err = SHOAL_OK;
    e->xsk = sodium_malloc(XKEY_BYTES);
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
    if (!e->zap || shoal__zq_set_int(e->zap, ZMQ_LINGER, 0) != 0 ||
        zmq_bind(e->zap, ZAP_ENDPOINT) != 0) {
        err = SHOAL_ETRANSPORT;
        goto fail;
    }
    e->maxpeers = cfg->max_peers ? cfg->max_peers : shoal__engine_max_peers;
    if (e->maxpeers == 0)
        e->maxpeers = 1;
    err = seed_peers(e, cfg->known, cfg->nknown);
    if (err)
        goto fail;
    e->next_save = shoal__zq_mono_ms() + SAVE_MS;
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
    shoal__free(e->certok);
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
shoal__engine_allow(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES])
{
    assert(e && key);
    allowed a;
    if (crypto_sign_ed25519_pk_to_curve25519(a.x, key) != 0)
        return SHOAL_EINVAL;
    memcpy(a.ed, key, SHOAL_KEY_BYTES);
    pthread_mutex_lock(&e->mu);
    int err = shoal__zq_alist_add(&e->allow, &e->nallow, &e->capallow, &a);
    if (!err)
        shoal__zq_alist_del(e->deny, &e->ndeny, key);
    pthread_mutex_unlock(&e->mu);
    return err;
}

int
shoal__engine_disallow(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES], bool close_links)
{
    assert(e && key);
    allowed a;
    if (crypto_sign_ed25519_pk_to_curve25519(a.x, key) != 0)
        return SHOAL_EINVAL;
    memcpy(a.ed, key, SHOAL_KEY_BYTES);
    pthread_mutex_lock(&e->mu);
    int err = shoal__zq_alist_add(&e->deny, &e->ndeny, &e->capdeny, &a);
    if (!err)
        shoal__zq_alist_del(e->allow, &e->nallow, key);
    pthread_mutex_unlock(&e->mu);
    if (err || !close_links)
        return err;
    /* From here on ZAP refuses the key; now close its links. */
    cmd c = { .op = C_DISALLOW, .ep = "" };
    memcpy(c.key, key, SHOAL_KEY_BYTES);
    return submit(e, &c);
}

int
shoal__engine_allow_any(shoal__engine *e, bool any)
{
    assert(e);
    pthread_mutex_lock(&e->mu);
    bool was = e->allow_any;
    e->allow_any = any;
    pthread_mutex_unlock(&e->mu);
    if (!was || any)
        return SHOAL_OK;
    /* From here on ZAP refuses keys not allowed; now close their links. */
    cmd c = { .op = C_RECHECK, .ep = "" };
    return submit(e, &c);
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
shoal__engine_connect(shoal__engine *e, const char *endpoint, const uint8_t key[SHOAL_KEY_BYTES])
{
    assert(e && endpoint && key);
    uint8_t x[XKEY_BYTES];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return SHOAL_EINVAL;
    cmd c = { .op = C_CONNECT, .ep = endpoint };
    memcpy(c.key, key, SHOAL_KEY_BYTES);
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
shoal__engine_sync(shoal__engine *e, const char *endpoint, const uint8_t key[SHOAL_KEY_BYTES],
                   int timeout_ms)
{
    assert(e && endpoint && key);
    uint8_t x[XKEY_BYTES];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return SHOAL_EINVAL;
    cmd c = { .op = C_SYNC, .ep = endpoint, .timeout_ms = timeout_ms };
    memcpy(c.key, key, SHOAL_KEY_BYTES);
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
