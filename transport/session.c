/*
 * transport/session.c - one side of one sync link, as a state machine over
 * frames in memory (sans-I/O: no sockets, no clock, no threads).
 *
 * States: new -> started (our HELLO queued) -> handshaken (the peer's HELLO
 * received) -> ... -> failed (sticky).  The caller feeds every frame from
 * the peer to shoal__session_recv and sends whatever shoal__session_next
 * hands out, in that order, over one ordered, reliable connection.
 *
 * Sending: a log cursor and the peer's known version vector (its HELLO,
 * raised by the vv entries of its ACKs and by every change it sends us: a
 * peer only sends changes it applied, so it holds that author's changes up
 * to that seq).  The host walks the log from the cursor and returns the
 * changes above the known vector, in log (causal) order, at most
 * SHOAL__BATCH_CHANGES / SHOAL__BATCH_BYTES per BATCH, examining at most
 * SHOAL__HOST_SCAN log positions per host call; at most SHOAL__WINDOW
 * batches wait for their ACK.
 *
 * Receiving: BATCH n must be the next number (1, 2, ...) and must not
 * exceed the window (we hold at most SHOAL__WINDOW ACKs not yet handed
 * out); anything else fails the session with SHOAL_EPROTO and the link
 * reconnects with a fresh session, whose HELLO says exactly what is missing.
 * A batch is applied whole through host->apply (verify every signature,
 * causal apply, pending set) or rejected whole.
 *
 * Equivocation: when the peer claims another change id than ours for an
 * (author, seq) (its HELLO, its ACKs), we send it our version (at most
 * SHOAL__EXTRA_MAX per session) in an ordinary BATCH, so the peer holds
 * both and applies the rule; we count ourselves caught up only once that
 * batch is acknowledged and a batch from the peer brought its version of
 * each such (author, seq) (the peer does the same).  Once after the
 * handshake, and again whenever the host stores new evidence, we send the
 * evidence we hold (at most SHOAL__EVIDENCE_SEND envelopes per session),
 * so a replica that resolved an equivocation tells every peer.  To the
 * receiver these are envelopes like any other: a duplicate is a no-op.
 *
 * Ownership: the session owns every buffer it hands out; a frame returned
 * by shoal__session_next is Borrowed until the next call on the session.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "transport.h"

enum {
    QCAP = SHOAL__WINDOW + 4, /* our HELLO, up to SHOAL__WINDOW ACKs, a SUBSCRIBE, a HAVE,
                                 a HOLDS */
    FAILURE_TEXT = 256
};

struct shoal__session {
    const shoal__host *host;
    const shoal__host_ext *ext; /* the host's equivocation support, or NULL */
    uint8_t self[SHOAL_KEY_BYTES];
    bool expect;
    uint8_t expect_key[SHOAL_KEY_BYTES];
    bool started;
    shoal__session_stats st;
    char failure[FAILURE_TEXT];
    bool error_out; /* the ERROR frame (in bat) is due */

    /* Control frames (HELLO, ACKs) in order; q_out: q[qhead] was handed out. */
    shoal__buf q[QCAP];
    bool q_ack[QCAP];
    size_t qhead, qn;
    size_t acks_waiting; /* ACKs queued and not yet handed out */
    bool q_out;
    shoal__buf bat;  /* the last BATCH, or the ERROR frame */
    shoal__buf envs; /* scratch: envelopes from the host */

    shoal__vventry *our_hello; /* our vv at start(), owned */
    size_t n_our_hello;
    shoal__vventry *peer_hello; /* the peer's HELLO vv, owned */
    size_t n_peer_hello;
    shoal__vventry *known; /* what the peer holds (sorted), owned */
    size_t nknown, capknown;
    shoal__vventry *ours; /* our vv, refreshed when dirty, owned */
    size_t nours;
    bool ours_dirty; /* the log may have grown since ours was read */
    bool restat;     /* ours or known changed: st.lag, st.caught_up are stale */

    uint64_t cursor;       /* host log position to read from */
    bool more;             /* the log may hold more for the peer */
    uint64_t sent_batches; /* BATCH numbers handed out: 1..sent_batches */
    uint64_t acked;        /* ACKs received: batches 1..acked */
    uint64_t recv_batches; /* BATCH frames received and applied */

    /* Equivocation (see the top). */
    shoal__vventry *extra; /* (author, seq, the peer's cid) we disagree on */
    bool *extra_got;       /* a batch from the peer held that (author, seq) */
    size_t nextra;         /* entries (at most SHOAL__EXTRA_MAX) */
    size_t extra_sent;     /* entries whose version we sent */
    uint64_t extra_batch;  /* number of the last BATCH carrying versions */
    bool ev_started;       /* evidence_gen read at least once */
    uint64_t ev_gen;       /* generation of the evidence being sent */
    size_t ev_from;        /* next evidence envelope (host's count) */
    bool ev_more;          /* evidence of ev_gen left to send */
    size_t ev_total;       /* evidence envelopes sent */

    /* Partial sync (docs/protocol.md, "Partial replicas"). */
    const shoal__host_view *view;     /* the host's support, or NULL */
    bool self_partial;                /* our HELLO was version 2 */
    uint64_t self_gen;                /* the host's generation of the set we sent last */
    uint64_t self_set;                /* its number in this session (1: the HELLO's) */
    bool self_complete;               /* the peer sent COMPLETE for self_set */
    uint64_t held_seen;               /* the host's held_gen our summary or HAVEs cover */
    uint64_t own_acked;               /* the host's own_acked when the lag was computed */
    uint64_t owed;                    /* a partial peer's own seq it sent us that we did not
                                         hold when we acknowledged it (0: none) */
    bool resummarize;                 /* HAVEs fell behind: send SUBSCRIBE again */
    bool peer_partial;                /* the peer's HELLO was version 2 (or it sent SUBSCRIBE) */
    bool dialled;                     /* we dialled the peer by its key (read filtering) */
    void *feed;                       /* what the peer's view gets from us, Owned (host's) */
    uint64_t peer_set;                /* the number of the peer's current set */
    uint64_t complete_set;            /* the set our last COMPLETE was for (0: none) */
    uint64_t complete_batch;          /* BATCH frames sent before that COMPLETE */
    shoal__buf subs;                  /* scratch: our set and summary */
    char peer_subs[SHOAL__PEER_SUBS]; /* the peer's set as text */
};

/* ------------------------------------------------------------- helpers */

static const shoal__vventry *
vv_find(const shoal__vventry *v, size_t n, const uint8_t *author, size_t *at)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(v[mid].author, author, SHOAL_KEY_BYTES);
        if (c == 0) {
            if (at)
                *at = mid;
            return &v[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at)
        *at = lo;
    return NULL;
}

/* Raise the peer's known seqs to at least those of in[0..n), sorted
 * strictly ascending by author.  Authors already known are raised in place;
 * the new ones are merged in with one pass from the back, so one frame
 * costs O(nknown + n log nknown), never O(nknown * n) (a peer's own HELLO
 * may have made known a quarter of a million entries long). */
static int
raise_known(shoal__session *s, const shoal__vventry *in, size_t n)
{
    s->restat = true;
    size_t nnew = 0;
    for (size_t i = 0; i < n; i++) {
        shoal__vventry *e = (shoal__vventry *)vv_find(s->known, s->nknown, in[i].author, NULL);
        if (!e)
            nnew++;
        else if (in[i].seq > e->seq) {
            e->seq = in[i].seq;
            memcpy(e->cid, in[i].cid, SHOAL__ID_BYTES);
        }
    }
    if (nnew == 0)
        return SHOAL_OK;
    size_t total = s->nknown + nnew;
    if (total > s->capknown) {
        size_t cap = s->capknown ? s->capknown : 16;
        while (cap < total)
            cap *= 2;
        shoal__vventry *p = shoal__realloc(s->known, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        s->known = p;
        s->capknown = cap;
    }
    size_t i = s->nknown, j = n, w = total;
    while (j > 0) {
        const shoal__vventry *x = &in[j - 1];
        if (i > 0) {
            int c = memcmp(s->known[i - 1].author, x->author, SHOAL_KEY_BYTES);
            if (c == 0) { /* known already: raised above */
                j--;
                continue;
            }
            if (c > 0) {
                s->known[--w] = s->known[--i];
                continue;
            }
        }
        s->known[--w] = *x;
        j--;
    }
    s->nknown = total;
    return SHOAL_OK;
}

static void fail_with(shoal__session *s, int err, bool send_error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
fail_with(shoal__session *s, int err, bool send_error, const char *fmt, ...)
{
    if (s->st.failed)
        return;
    s->st.failed = true;
    s->st.error = err ? err : SHOAL_EPROTO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->failure, sizeof s->failure, fmt, ap);
    va_end(ap);
    /* Nothing queued leaves any more: only the ERROR frame. */
    for (size_t i = 0; i < QCAP; i++)
        s->q[i].len = 0;
    s->qn = s->qhead = s->acks_waiting = 0;
    s->q_out = false;
    s->error_out = false;
    if (send_error) {
        s->bat.len = 0;
        if (shoal__wire_error(&s->bat, s->st.error, s->failure) == SHOAL_OK)
            s->error_out = true;
    }
}

#define FAIL(s, err, ...) fail_with((s), (err), true, __VA_ARGS__)

/* Whether err from applying a peer's batch means the peer's input was bad
 * (counted as rejected), rather than trouble of our own. */
static bool
peer_fault(int err)
{
    switch (err) {
    case SHOAL_EPROTO:
    case SHOAL_EBADSIG:
    case SHOAL_ETRUNC:
    case SHOAL_ETOOBIG:
    case SHOAL_EVERSION:
    case SHOAL_EINVAL: return true;
    default: return false;
    }
}

/* Append a control frame slot; returns it (len 0) or NULL if full. */
static shoal__buf *
q_push(shoal__session *s, bool ack)
{
    if (s->qn == QCAP)
        return NULL;
    size_t i = (s->qhead + s->qn) % QCAP;
    s->q[i].len = 0;
    s->q_ack[i] = ack;
    s->qn++;
    if (ack)
        s->acks_waiting++;
    return &s->q[i];
}

static void
q_pop(shoal__session *s)
{
    s->q[s->qhead].len = 0;
    s->qhead = (s->qhead + 1) % QCAP;
    s->qn--;
}

static int
refresh_ours(shoal__session *s)
{
    shoal__vventry *v = NULL;
    size_t n = 0;
    int err = s->host->version(s->host->ctx, &v, &n);
    if (err)
        return err;
    shoal__free(s->ours);
    s->ours = v;
    s->nours = n;
    s->ours_dirty = false;
    s->restat = true;
    return SHOAL_OK;
}

/* Recompute st.lag and st.caught_up after ours or known changed (not on
 * every look at the stats: the engine folds them after every frame, and
 * they cost O(n log n) in the number of authors). */
static void
update_stats(shoal__session *s)
{
    if (s->self_partial && s->view->own_acked(s->host->ctx) != s->own_acked) {
        s->own_acked = s->view->own_acked(s->host->ctx);
        s->restat = true;
    }
    if (!s->restat)
        return;
    s->restat = false;
    uint64_t lag = 0;
    bool versions_done = s->extra_sent == s->nextra && s->acked >= s->extra_batch;
    for (size_t i = 0; versions_done && i < s->nextra; i++) {
        if (!s->extra_got[i] && s->ext->settled &&
            s->ext->settled(s->host->ctx, s->extra[i].author, s->extra[i].seq, s->extra[i].cid))
            s->extra_got[i] = true;
        versions_done = s->extra_got[i];
    }
    /* The lag is a full peer's: a partial one holds what its view needs.
     * A partial replica's own vector has gaps (it holds other authors'
     * changes only in its view, and evicts them): only its own entry
     * counts, the writes it owes upstream. */
    for (size_t i = 0; !s->peer_partial && i < s->nours; i++) {
        if (s->self_partial && memcmp(s->ours[i].author, s->self, SHOAL_KEY_BYTES) != 0)
            continue;
        const shoal__vventry *k = vv_find(s->known, s->nknown, s->ours[i].author, NULL);
        uint64_t have = k ? k->seq : 0;
        /* (Our own changes a full replica holds may be evicted here: not
         * owed to this peer any more.) */
        if (s->self_partial && s->own_acked > have)
            have = s->own_acked;
        if (s->ours[i].seq > have)
            lag += s->ours[i].seq - have;
    }
    s->st.lag = lag;
    /* Both halves only grow (ours and known never go down, a COMPLETE is
     * not taken back): once caught up, always caught up.  We hold what the
     * peer held at its HELLO: by its vector, or for a partial replica, the
     * peer said COMPLETE for our set.  The peer holds what we held at our
     * HELLO: by our vector (a partial replica's: its own entry), or for a
     * partial peer (which holds only its view, and says so for no author
     * but itself), every batch before our COMPLETE for its set is
     * acknowledged. */
    bool up = s->st.handshaken && !s->st.caught_up && versions_done;
    if (up && s->self_partial && !s->self_complete)
        up = false;
    for (size_t i = 0; up && !s->self_partial && i < s->n_peer_hello; i++) {
        const shoal__vventry *o = vv_find(s->ours, s->nours, s->peer_hello[i].author, NULL);
        if (!o || o->seq < s->peer_hello[i].seq)
            up = false;
    }
    if (up && s->peer_partial && (s->complete_set != s->peer_set || s->acked < s->complete_batch))
        up = false;
    for (size_t i = 0; up && !s->peer_partial && i < s->n_our_hello; i++) {
        const shoal__vventry *k = vv_find(s->known, s->nknown, s->our_hello[i].author, NULL);
        uint64_t have = k ? k->seq : 0;
        if (s->self_partial && s->own_acked > have &&
            memcmp(s->our_hello[i].author, s->self, SHOAL_KEY_BYTES) == 0)
            have = s->own_acked; /* held by a full replica, maybe evicted here */
        if (have < s->our_hello[i].seq)
            up = false;
    }
    if (up)
        s->st.caught_up = true;
}

/* Remember to send our version of e's (author, seq) and to wait for the
 * peer's, and to send our versions of the SHOAL__EXTRA_BELOW seqs below it
 * as well (the fork may lie under the disputed change, which then names
 * the peer's other version as its dependency); once per (author, seq), at
 * most SHOAL__EXTRA_MAX in all. */
static int
want_version(shoal__session *s, const shoal__vventry *e)
{
    if (!s->ext || !s->ext->envelope)
        return SHOAL_OK;
    if (!s->extra) {
        s->extra = shoal__malloc(SHOAL__EXTRA_MAX * sizeof *s->extra);
        s->extra_got = shoal__calloc(SHOAL__EXTRA_MAX, sizeof *s->extra_got);
        if (!s->extra || !s->extra_got)
            return SHOAL_ENOMEM;
    }
    for (uint64_t k = 0; k <= SHOAL__EXTRA_BELOW && k < e->seq; k++) {
        uint64_t seq = e->seq - k;
        bool dup = false;
        for (size_t i = 0; i < s->nextra && !dup; i++)
            dup = s->extra[i].seq == seq &&
                  memcmp(s->extra[i].author, e->author, SHOAL_KEY_BYTES) == 0;
        if (dup)
            continue;
        if (s->nextra == SHOAL__EXTRA_MAX)
            break;
        s->extra[s->nextra] = *e;
        s->extra[s->nextra].seq = seq;
        s->extra_got[s->nextra] = k > 0; /* only the disputed one is awaited */
        s->nextra++;
    }
    s->restat = true;
    return SHOAL_OK;
}

/* Compare the peer's claims with our own changes: a different id under one
 * (author, seq) is equivocation by that author.  Our version vector says
 * which claims we can check at all (we hold an author's changes 1..seq):
 * an entry above it costs nothing, one at it is compared with the id the
 * vector carries, and only older ones ask the host.  So a HELLO full of
 * authors we never saw costs no store lookups. */
static int
check_entries(shoal__session *s, const shoal__vventry *e, size_t n)
{
    if (s->ours_dirty) {
        int err = refresh_ours(s);
        if (err)
            return err;
    }
    for (size_t i = 0; i < n; i++) {
        const shoal__vventry *o = vv_find(s->ours, s->nours, e[i].author, NULL);
        if (!o || o->seq < e[i].seq)
            continue;
        uint8_t cid[SHOAL__ID_BYTES];
        if (o->seq == e[i].seq) {
            memcpy(cid, o->cid, SHOAL__ID_BYTES);
        } else {
            int err = s->host->authseq(s->host->ctx, e[i].author, e[i].seq, cid);
            if (err == SHOAL_ENOTFOUND)
                continue;
            if (err)
                return err;
        }
        if (memcmp(cid, e[i].cid, SHOAL__ID_BYTES) != 0) {
            /* A claim, not proof: the peer may be lying, so it is not
             * counted; the signed version it then sends is (see BATCH). */
            int err = want_version(s, &e[i]);
            if (err)
                return err;
        }
    }
    return SHOAL_OK;
}

/* What a full peer holds, from its vector (its HELLO, its ACKs): a
 * partial replica may evict a document once every change of it is held by
 * a full replica. */
static int
note_acked(shoal__session *s, const shoal__vventry *e, size_t n)
{
    if (!s->view || !s->view->acked || n == 0)
        return SHOAL_OK;
    if (!s->peer_partial)
        return s->view->acked(s->host->ctx, e, n);
    /* A partial peer's vector: its own entry (it holds its changes, but it
     * is not a full replica) and the entries full replicas showed it,
     * which it vouches for; only those count. */
    size_t at;
    if (!vv_find(e, n, s->st.peer, &at))
        return s->view->acked(s->host->ctx, e, n);
    int err = at ? s->view->acked(s->host->ctx, e, at) : SHOAL_OK;
    if (!err && at + 1 < n)
        err = s->view->acked(s->host->ctx, e + at + 1, n - at - 1);
    return err;
}

/* Start feeding the peer's new subscription set (its HELLO or SUBSCRIBE). */
/* The vector entries of an ACK or HOLDS: what the peer holds (checked for
 * versions we know otherwise), and for a partial replica, its own changes
 * a full replica holds. */
static int
take_entries(shoal__session *s, const shoal__frame *f)
{
    s->restat = true;
    int err = check_entries(s, f->entries, f->nentries);
    if (!err)
        err = raise_known(s, f->entries, f->nentries);
    if (!err)
        err = note_acked(s, f->entries, f->nentries);
    return err;
}

static int
feed_start(shoal__session *s, shoal__frame *f)
{
    if (s->feed)
        s->view->feed_free(s->host->ctx, s->feed);
    s->feed = NULL;
    int err = s->view->feed_new(s->host->ctx, s->st.peer, s->dialled, f->subs, f->nsubs, f->held,
                                f->nheld, &s->feed);
    if (err)
        return err;
    s->peer_partial = true;
    s->peer_set++;
    /* The set as text, for peer records ("shoal peers"). */
    size_t at = 0;
    s->peer_subs[0] = 0;
    for (size_t i = 0; i < f->nsubs && at + 1 < sizeof s->peer_subs; i++) {
        const shoal__wsub *w = &f->subs[i];
        bool all = w->wlen == 0 || (w->wlen == 4 && memcmp(w->where, "TRUE", 4) == 0);
        int k = snprintf(s->peer_subs + at, sizeof s->peer_subs - at, "%s%.*s: %.*s%s%.*s",
                         i ? "; " : "", (int)w->nlen, (const char *)w->name, (int)w->clen,
                         (const char *)w->coll, all ? "" : " WHERE ", all ? 0 : (int)w->wlen,
                         (const char *)w->where);
        if (k < 0)
            break;
        at += (size_t)k;
    }
    if (at >= sizeof s->peer_subs) {
        /* Cut on a UTF-8 character boundary. */
        at = sizeof s->peer_subs - 1;
        while (at > 0 && ((uint8_t)s->peer_subs[at] & 0xc0) == 0x80)
            at--;
        s->peer_subs[at] = 0;
    }
    s->more = true;
    s->restat = true;
    return SHOAL_OK;
}

/* ------------------------------------------------------------------ API */

shoal__session *
shoal__session_new(const shoal__host *host, const uint8_t self[SHOAL_KEY_BYTES],
                   const uint8_t *expect_peer)
{
    shoal__session *s = shoal__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->host = host;
    s->ext = host->ext;
    s->view = host->view;
    shoal__buf_init(&s->subs);
    memcpy(s->self, self, SHOAL_KEY_BYTES);
    if (expect_peer) {
        s->expect = true;
        memcpy(s->expect_key, expect_peer, SHOAL_KEY_BYTES);
    }
    for (size_t i = 0; i < QCAP; i++)
        shoal__buf_init(&s->q[i]);
    shoal__buf_init(&s->bat);
    shoal__buf_init(&s->envs);
    s->ours_dirty = true;
    return s;
}

void
shoal__session_dialled(shoal__session *s)
{
    s->dialled = true;
}

void
shoal__session_free(shoal__session *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < QCAP; i++)
        shoal__buf_free(&s->q[i]);
    shoal__buf_free(&s->bat);
    shoal__buf_free(&s->envs);
    shoal__buf_free(&s->subs);
    if (s->feed)
        s->view->feed_free(s->host->ctx, s->feed);
    shoal__free(s->our_hello);
    shoal__free(s->peer_hello);
    shoal__free(s->known);
    shoal__free(s->ours);
    shoal__free(s->extra);
    shoal__free(s->extra_got);
    shoal__free(s);
}

int
shoal__session_start(shoal__session *s, uint64_t now_ms)
{
    (void)now_ms;
    if (s->st.failed)
        return s->st.error;
    if (s->started)
        return SHOAL_OK;
    int err = refresh_ours(s);
    if (err) {
        FAIL(s, err, "reading our version vector failed");
        return err;
    }
    /* A partial replica (one with subscriptions) says HELLO version 2 with
     * its set and what it holds; its vector is only its own entry: it
     * holds other authors' changes with gaps (causality per document). */
    s->subs.len = 0;
    if (s->view && s->view->self_gen && s->view->self_gen(s->host->ctx) != 0) {
        /* Read first: a change of what we hold after it goes in a HAVE. */
        s->held_seen = s->view->held_gen(s->host->ctx);
        err = s->view->self_subs(s->host->ctx, &s->self_gen, &s->subs);
        if (err) {
            FAIL(s, err, "reading our subscriptions failed");
            return err;
        }
        s->self_partial = s->self_gen != 0;
    }
    const shoal__vventry *hv = s->ours;
    size_t nhv = s->nours;
    shoal__vventry *vouch = NULL;
    size_t nvouch = 0;
    if (s->self_partial) {
        /* Our own entry, and what full replicas were seen to hold (so our
         * partial peers may evict what a full replica has). */
        const shoal__vventry *me = vv_find(s->ours, s->nours, s->self, NULL);
        if (s->view->vouched && s->view->vouched(s->host->ctx, &vouch, &nvouch) != SHOAL_OK) {
            vouch = NULL;
            nvouch = 0;
        }
        if (me) {
            size_t at;
            const shoal__vventry *v = vv_find(vouch, nvouch, s->self, &at);
            if (v) {
                vouch[at] = *me;
            } else {
                shoal__vventry *p = shoal__realloc(vouch, (nvouch + 1) * sizeof *p);
                if (p) {
                    vouch = p;
                    memmove(&vouch[at + 1], &vouch[at], (nvouch - at) * sizeof *vouch);
                    vouch[at] = *me;
                    nvouch++;
                }
            }
        }
        hv = vouch;
        nhv = nvouch;
    } else if (s->host->hello_vv && s->nours) {
        /* changes held without a sealed group: asked for again */
        vouch = shoal__malloc(s->nours * sizeof *vouch);
        if (!vouch) {
            FAIL(s, SHOAL_ENOMEM, "out of memory");
            return SHOAL_ENOMEM;
        }
        memcpy(vouch, s->ours, s->nours * sizeof *vouch);
        nvouch = s->nours;
        int herr = s->host->hello_vv(s->host->ctx, vouch, &nvouch);
        if (herr) {
            shoal__free(vouch);
            FAIL(s, herr, "reading our version failed");
            return herr;
        }
        hv = vouch;
        nhv = nvouch;
    }
    s->our_hello = shoal__malloc((nhv ? nhv : 1) * sizeof *s->our_hello);
    if (!s->our_hello) {
        shoal__free(vouch);
        FAIL(s, SHOAL_ENOMEM, "out of memory");
        return SHOAL_ENOMEM;
    }
    /* What our HELLO says we hold for the caught-up check: all of it, or
     * as a partial replica our own entry only. */
    if (s->self_partial) {
        const shoal__vventry *me = vv_find(s->ours, s->nours, s->self, NULL);
        s->n_our_hello = me ? 1 : 0;
        if (me)
            s->our_hello[0] = *me;
    } else {
        if (nhv)
            memcpy(s->our_hello, hv, nhv * sizeof *hv);
        s->n_our_hello = nhv;
    }
    shoal__buf *b = q_push(s, false);
    if (!b)
        err = SHOAL_ENOMEM;
    else if (s->self_partial) {
        s->self_set = 1;
        err = shoal__wire_hello2(b, s->self, hv, nhv, s->subs.p, s->subs.len);
        if (err == SHOAL_ETOOBIG && nhv > 1) {
            /* Too many vouched authors: our own entry alone. */
            b->len = 0;
            err = shoal__wire_hello2(b, s->self, s->our_hello, s->n_our_hello, s->subs.p,
                                     s->subs.len);
        }
    } else
        err = shoal__wire_hello(b, s->self, hv, nhv);
    shoal__free(vouch);
    if (err == SHOAL_ETOOBIG) {
        /* Not the peer's fault: say so locally, send nothing. */
        fail_with(s, err, false,
                  s->self_partial
                      ? "our subscriptions and held documents do not fit in one HELLO frame"
                      : "our version vector (%zu authors) does not fit in one HELLO frame",
                  s->nours);
        return err;
    }
    if (err) {
        FAIL(s, err, "cannot encode HELLO");
        return err;
    }
    s->started = true;
    update_stats(s);
    return SHOAL_OK;
}

static int
recv_hello(shoal__session *s, shoal__frame *f)
{
    if (s->st.handshaken) {
        FAIL(s, SHOAL_EPROTO, "second HELLO");
        return SHOAL_EPROTO;
    }
    if (s->expect && memcmp(f->key, s->expect_key, SHOAL_KEY_BYTES) != 0) {
        FAIL(s, SHOAL_EREFUSED, "unexpected peer key");
        return SHOAL_EREFUSED;
    }
    if (memcmp(f->key, s->self, SHOAL_KEY_BYTES) == 0) {
        FAIL(s, SHOAL_EREFUSED, "the peer has our own key");
        return SHOAL_EREFUSED;
    }
    memcpy(s->st.peer, f->key, SHOAL_KEY_BYTES);
    uint8_t x[32];
    if (s->host->revoked && crypto_sign_ed25519_pk_to_curve25519(x, f->key) == 0 &&
        s->host->revoked(s->host->ctx, x)) {
        FAIL(s, SHOAL_EREFUSED, "the peer's key is revoked");
        return SHOAL_EREFUSED;
    }
    int err = check_entries(s, f->entries, f->nentries);
    if (err) {
        FAIL(s, err, "reading our log failed");
        return err;
    }
    s->peer_hello = f->entries; /* taken */
    s->n_peer_hello = f->nentries;
    f->entries = NULL;
    size_t n = s->n_peer_hello;
    if (n) {
        s->known = shoal__malloc(n * sizeof *s->known);
        if (!s->known) {
            FAIL(s, SHOAL_ENOMEM, "out of memory");
            return SHOAL_ENOMEM;
        }
        memcpy(s->known, s->peer_hello, n * sizeof *s->known);
        s->nknown = s->capknown = n;
    }
    s->st.handshaken = true;
    s->more = true;
    s->restat = true;
    if (f->version == SHOAL__PROTO_PARTIAL) {
        if (!s->view || !s->view->feed_new) {
            FAIL(s, SHOAL_EVERSION, "partial peers are not served here");
            return SHOAL_EVERSION;
        }
        err = feed_start(s, f);
        if (err) {
            FAIL(s, err, "the peer's subscriptions: %s", shoal_strerror((shoal_err)err));
            return err;
        }
    } else if (s->host->serve_full && !s->dialled) {
        /* A full peer that dialled us receives everything: its roles must
         * read it all.  (One we dialled by its key was named by our
         * operator.) */
        char why[200] = "";
        err = s->host->serve_full(s->host->ctx, s->st.peer, why, sizeof why);
        if (err) {
            FAIL(s, err, "a full replica: %s", why);
            return err;
        }
    }
    /* A full peer's vector, or what a partial peer vouches for. */
    if ((err = note_acked(s, s->peer_hello, s->n_peer_hello))) {
        FAIL(s, err, "cannot note what the peer holds");
        return err;
    }
    return SHOAL_OK;
}

static int
recv_subscribe(shoal__session *s, shoal__frame *f)
{
    if (!s->st.handshaken) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "SUBSCRIBE before HELLO");
        return SHOAL_EPROTO;
    }
    if (!s->view || !s->view->feed_new) {
        FAIL(s, SHOAL_EVERSION, "partial peers are not served here");
        return SHOAL_EVERSION;
    }
    int err = feed_start(s, f);
    if (err)
        FAIL(s, err, "the peer's subscriptions: %s", shoal_strerror((shoal_err)err));
    return err;
}

static int
recv_leave(shoal__session *s, shoal__frame *f)
{
    if (!s->st.handshaken || !s->self_partial || f->set > s->self_set) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "LEAVE %s",
             !s->st.handshaken ? "before HELLO"
                               : (!s->self_partial ? "to a full replica" : "for a set not sent"));
        return SHOAL_EPROTO;
    }
    if (f->set < s->self_set)
        return SHOAL_OK; /* judged against a set we replaced since */
    int err = s->view->leave(s->host->ctx, f->coll, f->clen, f->id, f->idlen, (unsigned)f->reason,
                             f->heads, f->nheads);
    if (err)
        FAIL(s, err, "cannot evict a document: %s", shoal_strerror((shoal_err)err));
    return err;
}

static int
recv_holds(shoal__session *s, shoal__frame *f)
{
    /* Only a full replica's vector says it holds every change up to a
     * seq: a partial one's has gaps. */
    if (!s->st.handshaken || !s->self_partial || s->peer_partial ||
        memcmp(f->entries[0].author, s->self, SHOAL_KEY_BYTES) != 0) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "HOLDS %s",
             !s->st.handshaken  ? "before HELLO"
             : !s->self_partial ? "to a full replica"
             : s->peer_partial  ? "from a partial replica"
                                : "for another author");
        return SHOAL_EPROTO;
    }
    int err = take_entries(s, f);
    if (err)
        FAIL(s, err, "cannot process HOLDS");
    return err;
}

static int
recv_have(shoal__session *s, shoal__frame *f)
{
    if (!s->st.handshaken || !s->feed) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "HAVE %s",
             !s->st.handshaken ? "before HELLO" : "from a full replica");
        return SHOAL_EPROTO;
    }
    int err = s->view->feed_have(s->host->ctx, s->feed, f->held, f->nheld);
    if (err)
        FAIL(s, err, "cannot judge what the peer holds: %s", shoal_strerror((shoal_err)err));
    s->more = true;
    return err;
}

static int
recv_complete(shoal__session *s, shoal__frame *f)
{
    if (!s->st.handshaken || !s->self_partial || f->set > s->self_set) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "COMPLETE %llu unexpected", (unsigned long long)f->set);
        return SHOAL_EPROTO;
    }
    if (f->set < s->self_set)
        return SHOAL_OK; /* for a set we replaced since */
    s->self_complete = true;
    s->restat = true;
    int err = s->view->complete(s->host->ctx, s->self_gen);
    if (err)
        FAIL(s, err, "cannot mark our subscriptions complete");
    return err;
}

/* Authors touched by a batch are collected as vv entries (author, highest
 * seq in the batch, no cid) sorted by author. */
static int
entry_cmp(const void *a, const void *b)
{
    return memcmp(((const shoal__vventry *)a)->author, ((const shoal__vventry *)b)->author,
                  SHOAL_KEY_BYTES);
}

static int
recv_batch(shoal__session *s, shoal__frame *f)
{
    if (!s->st.handshaken) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "BATCH before HELLO");
        return SHOAL_EPROTO;
    }
    if (f->n != s->recv_batches + 1) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "BATCH %llu out of order (expected %llu)", (unsigned long long)f->n,
             (unsigned long long)(s->recv_batches + 1));
        return SHOAL_EPROTO;
    }
    if (s->acks_waiting >= SHOAL__WINDOW) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "BATCH %llu beyond the window of %d", (unsigned long long)f->n,
             (int)SHOAL__WINDOW);
        return SHOAL_EPROTO;
    }
    shoal_import_result res;
    memset(&res, 0, sizeof res);
    if (s->feed)
        s->view->feed_received(s->host->ctx, s->feed, f->envs, f->envs_len, (size_t)f->count);
    int err = s->host->apply(s->host->ctx, f->envs, f->envs_len, (size_t)f->count, &res);
    if (err && peer_fault(err)) {
        s->st.rejected++;
        FAIL(s, err, "BATCH %llu rejected: %s", (unsigned long long)f->n,
             shoal_strerror((shoal_err)err));
        return err;
    }
    if (err) {
        /* Our own trouble (disk full, store error, out of memory): the
         * session ends, nothing of the batch is kept, and the peer's input
         * is not counted as rejected; it is sent again next time. */
        FAIL(s, err, "cannot store BATCH %llu here: %s", (unsigned long long)f->n,
             shoal_strerror((shoal_err)err));
        return err;
    }
    s->recv_batches++;
    s->st.received += f->count;
    s->st.received_bytes += f->envs_len;
    /* Equivocations are counted only on signed evidence: versions of an
     * (author, seq) new to this replica that the peer's batch brought. */
    s->st.equivocations += res.equivocations;

    /* The peer holds what it sent (it only sends applied changes). */
    shoal__vventry *t = NULL;
    size_t nt = 0;
    if (f->count) {
        t = shoal__calloc(f->count, sizeof *t);
        if (!t)
            err = SHOAL_ENOMEM;
    }
    size_t off = 0;
    for (uint64_t i = 0; !err && i < f->count; i++) {
        size_t elen, blen;
        const uint8_t *body;
        err = shoal__envelope_parse(f->envs + off, f->envs_len - off, &elen, &body, &blen);
        if (err)
            break;
        uint64_t seq;
        if ((err = shoal__change_peek(body, blen, &seq, NULL)))
            break;
        memcpy(t[nt].author, shoal__envelope_author(f->envs + off), SHOAL_KEY_BYTES);
        t[nt].seq = seq;
        for (size_t j = 0; j < s->nextra; j++)
            if (!s->extra_got[j] && s->extra[j].seq == seq &&
                memcmp(s->extra[j].author, t[nt].author, SHOAL_KEY_BYTES) == 0) {
                s->extra_got[j] = true;
                s->restat = true;
            }
        nt++;
        off += elen;
        size_t dl, dc; /* its disclosures (checked by the host's apply) */
        if ((err = shoal__disc_scan(f->envs + off, f->envs_len - off, &dl, NULL, &dc)))
            break;
        off += dl;
    }
    if (!err && nt > 1) {
        qsort(t, nt, sizeof *t, entry_cmp);
        size_t w = 0;
        for (size_t i = 0; i < nt; i++) {
            if (w > 0 && memcmp(t[w - 1].author, t[i].author, SHOAL_KEY_BYTES) == 0) {
                if (t[i].seq > t[w - 1].seq)
                    t[w - 1].seq = t[i].seq;
            } else {
                t[w++] = t[i];
            }
        }
        nt = w;
    }
    if (!err)
        err = raise_known(s, t, nt);
    /* ACK with our entries for the authors the batch touched (a partial
     * replica: only its own, the one it holds without gaps). */
    if (!err)
        err = refresh_ours(s);
    shoal__vventry *delta = NULL;
    size_t nd = 0;
    if (!err && nt) {
        delta = shoal__malloc(nt * sizeof *delta);
        if (!delta)
            err = SHOAL_ENOMEM;
    }
    /* A partial peer's own changes that wait here (on changes of its that
     * it evicted, which reach us from another peer): HOLDS tells it once
     * we hold them, or it would keep them pinned until its next HELLO. */
    if (!err && s->peer_partial && !s->self_partial && res.pending) {
        const shoal__vventry *sent = vv_find(t, nt, s->st.peer, NULL);
        const shoal__vventry *held = vv_find(s->ours, s->nours, s->st.peer, NULL);
        if (sent && (!held || held->seq < sent->seq) && sent->seq > s->owed)
            s->owed = sent->seq;
    }
    for (size_t i = 0; !err && i < nt; i++) {
        if (s->self_partial && memcmp(t[i].author, s->self, SHOAL_KEY_BYTES) != 0) {
            /* Other authors: what a full replica was seen to hold. */
            if (s->view->vouched_get && s->view->vouched_get(s->host->ctx, t[i].author, &delta[nd]))
                nd++;
            continue;
        }
        const shoal__vventry *e = vv_find(s->ours, s->nours, t[i].author, NULL);
        if (e)
            delta[nd++] = *e;
    }
    if (!err) {
        shoal__buf *b = q_push(s, true);
        err = b ? shoal__wire_ack(b, f->n, &res, delta, nd) : SHOAL_EPROTO;
    }
    shoal__free(delta);
    shoal__free(t);
    if (err)
        FAIL(s, err, "cannot answer BATCH %llu", (unsigned long long)f->n);
    return err;
}

static int
recv_ack(shoal__session *s, shoal__frame *f)
{
    if (!s->st.handshaken) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "ACK before HELLO");
        return SHOAL_EPROTO;
    }
    if (f->n != s->acked + 1 || f->n > s->sent_batches) {
        s->st.rejected++;
        FAIL(s, SHOAL_EPROTO, "ACK %llu unexpected (next unacknowledged: %llu of %llu sent)",
             (unsigned long long)f->n, (unsigned long long)(s->acked + 1),
             (unsigned long long)s->sent_batches);
        return SHOAL_EPROTO;
    }
    s->acked++;
    int err = take_entries(s, f);
    if (err)
        FAIL(s, err, "cannot process ACK %llu", (unsigned long long)f->n);
    return err;
}

/* Whether a peer's ERROR code is one of shoal_err's error codes (not
 * SHOAL_OK): only those reach the caller of shoal_net_sync; any other
 * number becomes SHOAL_EPROTO (docs/protocol.md, "Receiving ERROR").  No
 * default case: -Wswitch names a code appended to shoal_err and not
 * listed here. */
static bool
error_code(int code)
{
    switch ((shoal_err)code) {
    case SHOAL_OK: return false;
    case SHOAL_ENOMEM:
    case SHOAL_EINVAL:
    case SHOAL_ENOTFOUND:
    case SHOAL_ECLOSED:
    case SHOAL_ETIMEDOUT:
    case SHOAL_ENOSPC:
    case SHOAL_EPROTO:
    case SHOAL_EBADSIG:
    case SHOAL_ECORRUPT:
    case SHOAL_ESTORE:
    case SHOAL_ETRANSPORT:
    case SHOAL_EDELETED:
    case SHOAL_EKIND:
    case SHOAL_ERANGE:
    case SHOAL_ETRUNC:
    case SHOAL_ETOOBIG:
    case SHOAL_EVERSION:
    case SHOAL_EREADONLY:
    case SHOAL_EBUSY:
    case SHOAL_EREFUSED:
    case SHOAL_EPERM: return true;
    }
    return false;
}

static int
recv_frame(shoal__session *s, const uint8_t *frame, size_t len, uint64_t now_ms)
{
    if (s->st.failed)
        return s->st.error;
    s->st.last_recv_ms = now_ms;
    shoal__frame f;
    int err = shoal__frame_decode(frame, len, &f);
    if (err) {
        s->st.rejected++;
        if (err == SHOAL_EVERSION)
            FAIL(s, err, "unsupported protocol version (we speak %d and %d)",
                 (int)SHOAL__PROTO_VERSION, (int)SHOAL__PROTO_PARTIAL);
        else
            FAIL(s, err, "malformed frame: %s", shoal_strerror((shoal_err)err));
        return err;
    }
    switch (f.type) {
    case SHOAL__F_HELLO: err = recv_hello(s, &f); break;
    case SHOAL__F_BATCH: err = recv_batch(s, &f); break;
    case SHOAL__F_ACK: err = recv_ack(s, &f); break;
    case SHOAL__F_SUBSCRIBE: err = recv_subscribe(s, &f); break;
    case SHOAL__F_LEAVE: err = recv_leave(s, &f); break;
    case SHOAL__F_HAVE: err = recv_have(s, &f); break;
    case SHOAL__F_HOLDS: err = recv_holds(s, &f); break;
    case SHOAL__F_COMPLETE: err = recv_complete(s, &f); break;
    default: { /* SHOAL__F_ERROR: the peer gave up; no answer */
        bool known = f.code <= INT_MAX && error_code((int)f.code);
        int code = known ? (int)f.code : SHOAL_EPROTO;
        if (known)
            fail_with(s, code, false, "peer: %.*s", (int)f.text_len, (const char *)f.text);
        else
            fail_with(s, code, false, "peer: %.*s (unknown error code %llu)", (int)f.text_len,
                      (const char *)f.text, (unsigned long long)f.code);
        err = code;
        break;
    }
    }
    shoal__frame_clear(&f);
    return err;
}

int
shoal__session_recv(shoal__session *s, const uint8_t *frame, size_t len, uint64_t now_ms)
{
    int err = recv_frame(s, frame, len, now_ms);
    update_stats(s);
    return err;
}

/* A BATCH of our versions of disputed (author, seq)s and of evidence, if
 * one is due: 1 (frame set), 0 (none), -1 (the session failed). */
static int
next_versions(shoal__session *s, const uint8_t **frame, size_t *len)
{
    if (s->ext && s->ext->evidence_gen && s->ext->evidence) {
        uint64_t gen = s->ext->evidence_gen(s->host->ctx);
        if (!s->ev_started || gen != s->ev_gen) {
            s->ev_started = true;
            s->ev_gen = gen;
            s->ev_from = 0;
            s->ev_more = true;
        }
    }
    /* Evidence goes to full replicas only: equivocation is theirs to
     * resolve, and a partial peer must not receive changes outside its
     * view. */
    bool ev_due = s->ev_more && s->ev_total < SHOAL__EVIDENCE_SEND && !s->peer_partial;
    if (s->extra_sent == s->nextra && !ev_due)
        return 0;
    s->envs.len = 0;
    size_t count = 0;
    int err = SHOAL_OK;
    while (!err && s->extra_sent < s->nextra && count < SHOAL__BATCH_CHANGES &&
           (count == 0 || s->envs.len < SHOAL__BATCH_BYTES)) {
        const shoal__vventry *e = &s->extra[s->extra_sent];
        err = s->ext->envelope(s->host->ctx, e->author, e->seq, &s->envs);
        if (!err)
            count++;
        else if (err == SHOAL_ENOTFOUND)
            err = SHOAL_OK;
        s->extra_sent++;
    }
    if (!err && ev_due && count < SHOAL__BATCH_CHANGES && s->envs.len < SHOAL__BATCH_BYTES) {
        size_t room = SHOAL__BATCH_CHANGES - count, n = 0;
        if (room > SHOAL__EVIDENCE_SEND - s->ev_total)
            room = SHOAL__EVIDENCE_SEND - s->ev_total;
        err = s->ext->evidence(s->host->ctx, &s->ev_from, room, SHOAL__BATCH_BYTES - s->envs.len,
                               &s->envs, &n);
        if (!err) {
            if (n == 0)
                s->ev_more = false;
            s->ev_total += n;
            count += n;
        }
    }
    if (!err && count == 0)
        return 0;
    if (!err) {
        s->bat.len = 0;
        err = shoal__wire_batch(&s->bat, s->sent_batches + 1, count, s->envs.p, s->envs.len);
    }
    if (err) {
        FAIL(s, err, "reading our versions failed: %s", shoal_strerror((shoal_err)err));
        return -1;
    }
    s->sent_batches++;
    if (s->extra_sent == s->nextra && s->nextra > 0 && s->extra_batch < s->sent_batches)
        s->extra_batch = s->sent_batches;
    s->st.sent += count;
    s->st.sent_bytes += s->envs.len;
    s->restat = true;
    *frame = s->bat.p;
    *len = s->bat.len;
    return 1;
}

static int next_frame(shoal__session *s, const uint8_t **frame, size_t *len);

/* The next frame for a partial peer: its feed decides (a BATCH of the
 * changes its view lacks, a LEAVE, or COMPLETE). */
static int
next_feed(shoal__session *s, const uint8_t **frame, size_t *len)
{
    shoal__feed_out o;
    int err;
    /* Each look examines a bounded stretch of the log; one that found
     * nothing but moved on is followed by another, until the end. */
    do {
        memset(&o, 0, sizeof o);
        s->envs.len = 0;
        err = s->view->feed_next(s->host->ctx, s->feed, SHOAL__BATCH_CHANGES, SHOAL__BATCH_BYTES,
                                 &s->envs, &o);
    } while (!err && o.kind == SHOAL__FEED_NONE && o.moved);
    s->bat.len = 0;
    if (!err) {
        switch (o.kind) {
        case SHOAL__FEED_NONE: s->more = false; return 0;
        case SHOAL__FEED_BATCH:
            err = shoal__wire_batch(&s->bat, s->sent_batches + 1, o.count, s->envs.p, s->envs.len);
            if (!err) {
                s->sent_batches++;
                s->st.sent += o.count;
                s->st.sent_bytes += s->envs.len;
            }
            break;
        case SHOAL__FEED_LEAVE:
            err = shoal__wire_leave(&s->bat, s->peer_set, o.coll, o.clen, o.id, o.idlen, o.reason,
                                    o.heads, o.nheads);
            break;
        case SHOAL__FEED_COMPLETE:
            err = shoal__wire_complete(&s->bat, s->peer_set);
            if (!err) {
                s->complete_set = s->peer_set;
                s->complete_batch = s->sent_batches;
                s->restat = true;
            }
            break;
        }
    }
    if (err) {
        FAIL(s, err, "reading our log failed: %s", shoal_strerror((shoal_err)err));
        return next_frame(s, frame, len);
    }
    *frame = s->bat.p;
    *len = s->bat.len;
    return 1;
}

static int
next_frame(shoal__session *s, const uint8_t **frame, size_t *len)
{
    *frame = NULL;
    *len = 0;
    if (s->q_out) {
        q_pop(s);
        s->q_out = false;
    }
    if (s->st.failed) {
        if (!s->error_out)
            return 0;
        s->error_out = false;
        *frame = s->bat.p;
        *len = s->bat.len;
        return 1;
    }
    if (!s->started)
        return 0;
    /* Our subscriptions changed: tell the peer (the whole set again, and
     * what we hold now). */
    if (s->view && s->view->self_gen && s->st.handshaken &&
        (s->view->self_gen(s->host->ctx) != s->self_gen || s->resummarize) && s->qn < QCAP) {
        uint64_t gen = 0;
        s->subs.len = 0;
        s->resummarize = false;
        s->held_seen = s->view->held_gen(s->host->ctx);
        int err = s->view->self_subs(s->host->ctx, &gen, &s->subs);
        /* No subscription left: an empty set for the rest of this session
         * (the next one starts as a full replica). */
        if (!err && gen == 0)
            err = shoal__buf_append(&s->subs, (const uint8_t *)"\x90\x90", 2);
        shoal__buf *b = err ? NULL : q_push(s, false);
        if (!err)
            err = b ? shoal__wire_subscribe(b, s->subs.p, s->subs.len) : SHOAL_ENOMEM;
        if (err) {
            FAIL(s, err, "cannot send our subscriptions: %s", shoal_strerror((shoal_err)err));
            return next_frame(s, frame, len);
        }
        s->self_gen = gen;
        s->self_set++;
        s->self_complete = false;
        s->self_partial = true;
    }
    /* What we hold changed (a document arrived from another peer, or we
     * evicted one): tell the peer, which judges it again. */
    if (s->self_partial && s->st.handshaken && s->qn < QCAP &&
        s->view->held_gen(s->host->ctx) != s->held_seen) {
        s->subs.len = 0;
        size_t count = 0;
        int err = s->view->held_changes(s->host->ctx, &s->held_seen, &s->subs, &count);
        if (err == SHOAL_ENOTFOUND) {
            s->resummarize = true;
            return next_frame(s, frame, len);
        }
        shoal__buf *b = err || count == 0 ? NULL : q_push(s, false);
        if (!err && count)
            err = b ? shoal__wire_have(b, s->subs.p, s->subs.len) : SHOAL_ENOMEM;
        if (err) {
            FAIL(s, err, "cannot tell what we hold: %s", shoal_strerror((shoal_err)err));
            return next_frame(s, frame, len);
        }
    }
    /* A partial peer's own changes that waited here apply now. */
    if (s->owed && s->st.handshaken && s->qn < QCAP) {
        int err = refresh_ours(s);
        const shoal__vventry *held = vv_find(s->ours, s->nours, s->st.peer, NULL);
        if (!err && held && held->seq >= s->owed) {
            shoal__buf *b = q_push(s, false);
            err = b ? shoal__wire_holds(b, held) : SHOAL_ENOMEM;
            s->owed = 0;
        }
        if (err) {
            FAIL(s, err, "cannot tell the peer what we hold: %s", shoal_strerror((shoal_err)err));
            return next_frame(s, frame, len);
        }
    }
    if (s->qn > 0) {
        s->q_out = true;
        if (s->q_ack[s->qhead])
            s->acks_waiting--; /* handed out: the peer may now send one more */
        *frame = s->q[s->qhead].p;
        *len = s->q[s->qhead].len;
        return 1;
    }
    if (!s->st.handshaken || s->sent_batches - s->acked >= SHOAL__WINDOW)
        return 0;
    int vr = next_versions(s, frame, len);
    if (vr != 0)
        return vr < 0 ? next_frame(s, frame, len) : 1;
    if (!s->more)
        return 0;
    if (s->peer_partial)
        return next_feed(s, frame, len);
    size_t count = 0;
    s->envs.len = 0;
    uint64_t from = s->cursor, at;
    int err;
    /* One host call examines at most SHOAL__HOST_SCAN log positions under
     * the replica's lock; a peer that holds most of our log makes calls
     * that find nothing but move the cursor.  Call again (the lock is free
     * between calls, so commits interleave) until a change is found or the
     * cursor stops: the end of the log.  This ends, as the cursor only
     * grows, and the catch-up needs no later wake-up of the engine. */
    do {
        at = s->cursor;
        err = s->host->next_changes(s->host->ctx, &s->cursor, s->known, s->nknown,
                                    SHOAL__BATCH_CHANGES, SHOAL__BATCH_BYTES, &s->envs, &count);
    } while (!err && count == 0 && s->cursor != at);
    /* Our vector (for the lag) is re-read only when the log really grew:
     * the engine says "changed" to every session on every commit and on a
     * timer, and an idle session must not re-read the whole vector each
     * time. */
    if (!err && s->ours_dirty && s->cursor != from)
        err = refresh_ours(s);
    if (!err && count == 0) {
        s->more = false;
        return 0;
    }
    if (!err) {
        s->bat.len = 0;
        err = shoal__wire_batch(&s->bat, s->sent_batches + 1, count, s->envs.p, s->envs.len);
    }
    if (err) {
        FAIL(s, err, "reading our log failed: %s", shoal_strerror((shoal_err)err));
        return next_frame(s, frame, len);
    }
    s->sent_batches++;
    s->st.sent += count;
    s->st.sent_bytes += s->envs.len;
    *frame = s->bat.p;
    *len = s->bat.len;
    return 1;
}

int
shoal__session_next(shoal__session *s, const uint8_t **frame, size_t *len)
{
    int r = next_frame(s, frame, len);
    update_stats(s);
    return r;
}

bool
shoal__session_recheck_full(shoal__session *s)
{
    if (s->st.failed || !s->st.handshaken || s->peer_partial || s->dialled || !s->host->serve_full)
        return false;
    char why[200] = "";
    int err = s->host->serve_full(s->host->ctx, s->st.peer, why, sizeof why);
    if (!err)
        return false;
    FAIL(s, err, "a full replica: %s", why);
    return true;
}

void
shoal__session_changed(shoal__session *s)
{
    s->more = true;
    s->ours_dirty = true;
}

void
shoal__session_get_stats(const shoal__session *s, shoal__session_stats *out)
{
    *out = s->st;
}

const char *
shoal__session_peer_subs(const shoal__session *s)
{
    return s->peer_subs;
}

uint64_t
shoal__session_view_docs(const shoal__session *s)
{
    return s->feed && s->view->feed_docs ? s->view->feed_docs(s->host->ctx, s->feed) : 0;
}

const char *
shoal__session_failure(const shoal__session *s)
{
    return s->st.failed ? s->failure : "";
}
