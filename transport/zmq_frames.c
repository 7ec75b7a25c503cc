/*
 * transport/zmq_frames.c - the ZeroMQ engine reading its sockets: each frame goes
 * to the session of its connection and authenticated identity
 * (router_route says why it must be both).
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

/* The identity of the connection m came from (its ZAP User-Id); false if
 * it has none we understand. */
static bool
msg_ident(zmq_msg_t *m, ident *out)
{
    const char *uid = zmq_msg_gets(m, "User-Id");
    memset(out, 0, sizeof *out);
    if (uid && strlen(uid) == 2 * SHOAL_KEY_BYTES &&
        shoal__unhex(out->key, SHOAL_KEY_BYTES, uid) == SHOAL_OK)
        return true;
    if (uid && strlen(uid) == 1 + 2 * XKEY_BYTES && uid[0] == 'x' &&
        shoal__unhex(out->key, XKEY_BYTES, uid + 1) == SHOAL_OK) {
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
        return s->check_x && memcmp(s->x, id->key, XKEY_BYTES) == 0;
    return !s->check_x && s->key_known && memcmp(s->key, id->key, SHOAL_KEY_BYTES) == 0;
}

static bool
rid_dead(const lnk *l, const uint8_t *rid, size_t n, const ident *id, int fd)
{
    for (size_t i = 0; i < DEAD_RIDS; i++) {
        const dead_rid *d = &l->buried[i];
        if (d->len == n && n && memcmp(d->rid, rid, n) == 0 && d->fd == fd &&
            d->id.xonly == id->xonly && memcmp(d->id.key, id->key, SHOAL_KEY_BYTES) == 0)
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

void
shoal__zq_sess_bury(lnk *l, const sess *s)
{
    ident id = { .xonly = s->check_x };
    memcpy(id.key, s->check_x ? s->x : s->key, XKEY_BYTES);
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
    bool permitted = shoal__zq_ident_permitted(e, id);
    pthread_mutex_unlock(&e->mu);
    if (!permitted) {
        char kh[17];
        shoal__zq_keyhex(kh, key);
        shoal__zq_logf(e, SHOAL_LOG_WARN,
                       "%s: a frame from %s, no longer allowed: its link is ignored", l->ep, kh);
        rid_bury(l, rid, ridlen, id, fd);
        return NULL;
    }
    if (l->nss >= MAX_RSESS) {
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: too many incoming links: frame dropped", l->ep);
        return NULL;
    }
    /* One key may rightly hold a few links at once (below), but not
     * thousands: each session may keep two copies of the peer's version
     * vector, a HELLO frame's worth (up to SHOAL__MAX_FRAME bytes) each. */
    size_t same = 0;
    for (sess *o = l->ss; o; o = o->next)
        if (!o->dead && (xonly ? o->check_x && memcmp(o->x, key, XKEY_BYTES) == 0
                               : !o->check_x && memcmp(o->key, key, SHOAL_KEY_BYTES) == 0))
            same++;
    if (same >= MAX_KEY_SESS) {
        char kh[17];
        shoal__zq_keyhex(kh, key);
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: %s already holds %d links: another one ignored",
                       l->ep, kh, (int)MAX_KEY_SESS);
        rid_bury(l, rid, ridlen, id, fd);
        return NULL;
    }
    /* A new connection from a key that already has one does not replace
     * it: the same identity may rightly hold two links at once (a one-shot
     * `shoal sync` beside a running `shoal serve` on one directory), and
     * replacing would break the live one.  A stale session goes when its
     * connection's DISCONNECTED event (matched by ZMQ_SRCFD) arrives, which
     * ZMTP heartbeats guarantee within a few heartbeat periods. */
    sess *s = shoal__zq_sess_new(e, l, known ? key : NULL);
    if (!s)
        return NULL;
    if (xonly) {
        s->check_x = true;
        memcpy(s->x, key, XKEY_BYTES);
    }
    memcpy(s->rid, rid, ridlen);
    s->ridlen = ridlen;
    s->fd = fd;
    if (shoal__session_start(s->s, shoal__zq_wall_ms(e)) != SHOAL_OK)
        s->dead = true;
    return s;
}

static void
on_frame(shoal__engine *e, lnk *l, sess *s, const uint8_t *f, size_t n)
{
    int rc = shoal__session_recv(s->s, f, n, shoal__zq_wall_ms(e));
    if (rc != SHOAL_OK) {
        char kh[17];
        shoal__zq_keyhex(kh, s->key);
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: input from %s rejected: %s",
                       l->ep[0] ? l->ep : "incoming", kh, shoal_strerror((shoal_err)rc));
    }
    shoal__zq_sess_pump(e, l, s);
    if (l->kind == L_SYNC && l->sync) {
        shoal__session_stats st;
        shoal__session_get_stats(s->s, &st);
        if (st.failed)
            shoal__zq_sync_done(e, l, st.error ? st.error : SHOAL_EPROTO);
        else if (st.caught_up)
            shoal__zq_sync_done(e, l, SHOAL_OK);
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
    return n >= 2 && (f[0] == 0x94 || f[0] == 0x96) && f[1] == SHOAL__F_HELLO;
}

/* The session a message on listener l goes to, or NULL to drop it.
 *
 * The routing id alone does not name a connection for long: when a
 * connection goes, the ROUTER forgets its routing id at once, but its
 * DISCONNECTED event reaches us through the shoal__zq_monitor later, so for a while
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
sess *
shoal__zq_router_route(shoal__engine *e, lnk *l, zmq_msg_t *rid, zmq_msg_t *m, bool multipart)
{
    const uint8_t *r = zmq_msg_data(rid);
    size_t rn = zmq_msg_size(rid);
    ident id;
    if (!msg_ident(m, &id)) {
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: a frame without an authenticated key: dropped",
                       l->ep);
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
            shoal__zq_keyhex(kh, s->key);
            shoal__zq_logf(e, SHOAL_LOG_INFO, "%s: link with %s replaced (%s)", l->ep, kh, why);
            shoal__zq_sess_drop(e, l, s, "link closed");
            s = NULL;
        }
    }
    if (!s)
        s = router_sess_new(e, l, r, rn, &id, fd);
    return s;
}

void
shoal__zq_read_socket(shoal__engine *e, lnk *l)
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
            s = shoal__zq_router_route(e, l, &rid, &m, multipart);
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
