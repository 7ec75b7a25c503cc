/*
 * transport/zmq_sock.c - the ZeroMQ engine's sockets: listening ROUTERs and
 * connecting DEALERs (links), the sessions on them, socket monitors and
 * the ZAP handler that admits CURVE clients.
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

int
shoal__zq_set_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* Options shared by every socket. */
int
shoal__zq_common_opts(shoal__engine *e, void *sock)
{
    int hb = e->cfg.heartbeat_ms > 0 ? e->cfg.heartbeat_ms : 1000;
    int64_t maxmsg = (int64_t)SHOAL__MAX_FRAME;
    int rc = 0;
    rc |= shoal__zq_set_int(sock, ZMQ_LINGER, 0);
    rc |= zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    rc |= shoal__zq_set_int(sock, ZMQ_SNDHWM, SNDHWM);
    rc |= shoal__zq_set_int(sock, ZMQ_RCVHWM, RCVHWM);
    rc |= shoal__zq_set_int(sock, ZMQ_IPV6, 1);
    rc |= shoal__zq_set_int(sock, ZMQ_HEARTBEAT_IVL, hb);
    rc |= shoal__zq_set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, 3 * hb);
    /* TTL has a resolution of 100 ms. */
    rc |= shoal__zq_set_int(sock, ZMQ_HEARTBEAT_TTL, ((3 * hb + 99) / 100) * 100);
    rc |= shoal__zq_set_int(sock, ZMQ_HANDSHAKE_IVL, HANDSHAKE_IVL_MS);
    rc |= zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, e->xpk, XKEY_BYTES);
    rc |= zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, e->xsk, XKEY_BYTES);
    return rc ? -1 : 0;
}

/* Attach a shoal__zq_monitor PAIR to sock; 0 or -1. */
int
shoal__zq_monitor(shoal__engine *e, lnk *l)
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
    shoal__zq_set_int(l->mon, ZMQ_LINGER, 0);
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
void
shoal__zq_sess_drop(shoal__engine *e, lnk *l, sess *s, const char *why)
{
    shoal__zq_sess_fold(e, l, s, NULL);
    if (s->live_counted) {
        pthread_mutex_lock(&e->mu);
        peer *p = shoal__zq_peer_find(e, s->key, false, false);
        if (p) {
            p->live--;
            p->dirty = p->urgent = true;
            if (why && !p->info.last_error[0])
                shoal__zq_peer_error(p, "%s", why);
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

void
shoal__zq_sock_close(lnk *l)
{
    if (l->sock)
        zmq_socket_monitor(l->sock, NULL, 0);
    if (l->mon)
        zmq_close(l->mon);
    if (l->sock)
        zmq_close(l->sock);
    l->mon = l->sock = NULL;
}

void
shoal__zq_link_close(shoal__engine *e, lnk *l, const char *why)
{
    while (l->ss)
        shoal__zq_sess_drop(e, l, l->ss, why);
    shoal__zq_sock_close(l);
}

/* Open a DEALER to l->ep; 0 or a shoal_err. */
int
shoal__zq_dealer_open(shoal__engine *e, lnk *l)
{
    uint8_t xserver[XKEY_BYTES];
    if (crypto_sign_ed25519_pk_to_curve25519(xserver, l->key) != 0)
        return SHOAL_EINVAL;
    l->sock = zmq_socket(e->ctx, ZMQ_DEALER);
    if (!l->sock)
        return shoal__zq_zmq_err();
    int rc = shoal__zq_common_opts(e, l->sock);
    rc |= zmq_setsockopt(l->sock, ZMQ_CURVE_SERVERKEY, xserver, XKEY_BYTES);
    rc |= shoal__zq_set_int(l->sock, ZMQ_IMMEDIATE, 1);
    rc |= shoal__zq_set_int(l->sock, ZMQ_RECONNECT_IVL, RECONNECT_IVL_MS);
    rc |= shoal__zq_set_int(l->sock, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS);
    if (rc == 0)
        rc = shoal__zq_monitor(e, l);
    if (rc == 0)
        rc = zmq_connect(l->sock, l->ep);
    if (rc != 0) {
        int err = shoal__zq_zmq_err();
        shoal__zq_sock_close(l);
        return err;
    }
    return SHOAL_OK;
}

/* Send one frame on l for s: 1 sent, 0 not now, -1 the peer is gone. */
int
shoal__zq_send_frame(lnk *l, sess *s, const uint8_t *f, size_t n)
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
void
shoal__zq_sess_pump(shoal__engine *e, lnk *l, sess *s)
{
    while (!s->dead) {
        if (s->pend) {
            int rc = shoal__zq_send_frame(l, s, s->pend, s->pendlen);
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
        int rc = shoal__zq_send_frame(l, s, f, n);
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
    shoal__zq_sess_fold(e, l, s, &st);
    if (st.failed && !s->pend)
        s->dead = true; /* its ERROR frame is out */
}

sess *
shoal__zq_sess_new(shoal__engine *e, lnk *l, const uint8_t *expect)
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
    s->born = shoal__zq_mono_ms();
    if (expect) {
        memcpy(s->key, expect, SHOAL_KEY_BYTES);
        s->key_known = true;
    }
    s->next = l->ss;
    l->ss = s;
    l->nss++;
    return s;
}

/* A sync command is over. */
void
shoal__zq_sync_done(shoal__engine *e, lnk *l, int rc)
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
void
shoal__zq_dealer_reset(shoal__engine *e, lnk *l, const char *why)
{
    shoal__zq_link_close(e, l, why);
    if (l->kind == L_SYNC)
        return;
    l->backoff = l->backoff ? l->backoff * 2 : BACKOFF_MIN_MS;
    if (l->backoff > BACKOFF_MAX_MS)
        l->backoff = BACKOFF_MAX_MS;
    l->retry_at = shoal__zq_mono_ms() + l->backoff;
}

static void
on_event(shoal__engine *e, lnk *l, uint16_t ev, uint32_t value)
{
    char kh[17];
    shoal__zq_keyhex(kh, l->key);
    if (l->kind == L_LISTEN) {
        if (ev == ZMQ_EVENT_DISCONNECTED) {
            if (e->cfg.hold_disconnects)
                return; /* tests: the window before this event arrives, held open */
            for (sess *s = l->ss; s; s = s->next)
                if (s->fd == (int)value)
                    s->dead = true;
        } else if (ev &
                   (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) {
            shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: incoming handshake failed (%s %u)", l->ep,
                           ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "errno",
                           (unsigned)value);
        }
        return;
    }
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        while (l->ss)
            shoal__zq_sess_drop(e, l, l->ss, NULL);
        pthread_mutex_lock(&e->mu);
        bool denied = shoal__zq_alist_find(e->deny, e->ndeny, l->key) != NULL;
        pthread_mutex_unlock(&e->mu);
        if (denied) {
            shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: %s is disallowed: link closed", l->ep, kh);
            shoal__zq_peer_note(e, l->key, "link closed: key disallowed");
            if (l->kind == L_SYNC)
                shoal__zq_sync_done(e, l, SHOAL_EREFUSED);
            shoal__zq_dealer_reset(e, l, NULL);
            return;
        }
        l->reached = true;
        sess *s = shoal__zq_sess_new(e, l, l->key);
        if (s)
            shoal__session_dialled(s->s);
        if (!s || shoal__session_start(s->s, shoal__zq_wall_ms(e)) != SHOAL_OK) {
            shoal__zq_logf(e, SHOAL_LOG_ERROR, "%s: cannot start a session", l->ep);
            if (s)
                s->dead = true;
            return;
        }
        shoal__zq_logf(e, SHOAL_LOG_INFO, "%s: link up with %s", l->ep, kh);
        shoal__zq_sess_pump(e, l, s);
    } else if (ev == ZMQ_EVENT_DISCONNECTED) {
        if (l->ss)
            shoal__zq_logf(e, SHOAL_LOG_INFO, "%s: link down", l->ep);
        while (l->ss)
            shoal__zq_sess_drop(e, l, l->ss, "disconnected");
    } else {
        const char *what = ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                               ? "refused by the peer (our key is not on its allow-list)"
                           : ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                               ? "handshake failed: protocol error"
                               : "handshake failed (wrong peer key?)";
        shoal__zq_logf(e, SHOAL_LOG_WARN, "%s: %s", l->ep, what);
        pthread_mutex_lock(&e->mu);
        peer *p = shoal__zq_peer_find(e, l->key, false, true);
        if (p) {
            p->info.refused++;
            snprintf(p->info.endpoint, sizeof p->info.endpoint, "%s", l->ep);
            shoal__zq_peer_error(p, "%s", what);
            p->dirty = p->urgent = true;
        }
        pthread_mutex_unlock(&e->mu);
        if (l->kind == L_SYNC)
            shoal__zq_sync_done(e, l, SHOAL_EREFUSED);
        else
            /* libzmq does not try again after a refusal: we do, with our
             * back-off, so a device refused until the other side allows
             * it (or allows it again) gets its link without a restart. */
            shoal__zq_dealer_reset(e, l, NULL);
    }
}

void
shoal__zq_read_monitor(shoal__engine *e, lnk *l)
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

/* Serve one ZAP request (ZeroMQ RFC 27): version, request id, domain,
 * address, routing id, mechanism, credentials. */
void
shoal__zq_zap_serve(shoal__engine *e)
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
                    memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
                    zmq_msg_size(&part[6]) == XKEY_BYTES;
    if (ok_shape) {
        const uint8_t *x = zmq_msg_data(&part[6]);
        /* A certified device (a replica that enforces permissions) is
         * admitted like a listed key; the lists still decide first. */
        uint8_t ced[SHOAL_KEY_BYTES];
        bool certified = e->host.certified && e->host.certified(e->host.ctx, x, ced);
        bool revoked = e->host.revoked && e->host.revoked(e->host.ctx, x);
        pthread_mutex_lock(&e->mu);
        const allowed *a = NULL, *d = shoal__zq_alist_find_x(e->deny, e->ndeny, x);
        for (size_t i = 0; i < e->nallow; i++)
            if (sodium_memcmp(e->allow[i].x, x, XKEY_BYTES) == 0)
                a = &e->allow[i];
        if (d) {
            /* An operator named this key: it is counted under its Ed25519
             * key, and its saves are limited like any peer's. */
            peer *p = shoal__zq_peer_find(e, d->ed, false, true);
            if (p) {
                p->info.refused++;
                shoal__zq_peer_error(p, "refused an incoming link: key disallowed");
                p->dirty = p->urgent = true;
            }
            text = "key disallowed";
            shoal__hex(user, d->ed, SHOAL_KEY_BYTES); /* for the log line below */
        } else if (revoked) {
            /* a revocation names it (docs/permissions.md): whatever the
             * lists say */
            text = "key revoked";
            user[0] = 'x';
            shoal__hex(user + 1, x, XKEY_BYTES);
        } else if (a) {
            shoal__hex(user, a->ed, SHOAL_KEY_BYTES);
            status = "200";
            text = "OK";
        } else if (e->allow_any) {
            user[0] = 'x';
            shoal__hex(user + 1, x, XKEY_BYTES);
            status = "200";
            text = "OK";
        } else if (certified) {
            allowed c;
            memset(&c, 0, sizeof c);
            memcpy(c.ed, ced, SHOAL_KEY_BYTES);
            memcpy(c.x, x, XKEY_BYTES);
            if (shoal__zq_alist_add(&e->certok, &e->ncertok, &e->capcertok, &c) == SHOAL_OK) {
                shoal__hex(user, ced, SHOAL_KEY_BYTES);
                status = "200";
                text = "OK";
            }
        } else {
            peer *p = shoal__zq_peer_find(e, x, true, true);
            if (p) {
                /* Anyone on the network can make these: counted, saved
                 * with the periodic save, never one store write each. */
                p->info.refused++;
                shoal__zq_peer_error(p,
                                     "refused an incoming link: X25519 key not on the allow-list");
                p->dirty = true;
            }
        }
        pthread_mutex_unlock(&e->mu);
        if (status[0] != '2' && user[0]) {
            shoal__zq_logf(e, SHOAL_LOG_WARN,
                           "refused an incoming link from %.16s...: key disallowed", user);
            user[0] = 0;
        } else if (status[0] != '2') {
            char kh[17];
            shoal__zq_keyhex(kh, x);
            shoal__zq_logf(e, SHOAL_LOG_WARN, "refused an incoming link from X25519 key %s...", kh);
        }
    } else {
        text = "unsupported mechanism";
        shoal__zq_logf(e, SHOAL_LOG_WARN, "refused an incoming link: not a CURVE handshake");
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
