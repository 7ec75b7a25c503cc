/*
 * transport/transport.h - the one interface header of the transport module.
 *
 * Two layers:
 *   - the sync protocol as a state machine over frames in memory
 *     (session.c, wire.c: sans-I/O, no sockets, no clocks of its own: the
 *     caller passes the time), driven by tests directly;
 *   - the ZeroMQ engine (zmq.c, the only file that includes <zmq.h>) that
 *     moves those frames between replicas on one background thread.
 * transport/ never includes store/ or core/ headers: it reaches the replica
 * only through the shoal__host interface that core/ hands it.
 * Frames are specified byte for byte in docs/protocol.md.
 */
#ifndef SHOAL_TRANSPORT_TRANSPORT_H
#define SHOAL_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt.h"
#include "shoal.h"

enum {
    SHOAL__PROTO_VERSION = 1,      /* HELLO of a full replica (every build speaks it) */
    SHOAL__PROTO_PARTIAL = 2,      /* HELLO of a partial replica: its subscriptions follow */
    SHOAL__BATCH_CHANGES = 256,    /* changes per BATCH frame (at most) */
    SHOAL__BATCH_BYTES = 1u << 20, /* envelope bytes per BATCH (one change may exceed it alone) */
    SHOAL__WINDOW = 4,             /* unacknowledged BATCH frames in flight per link */
    SHOAL__MAX_FRAME = SHOAL__MAX_BODY + (1u << 20), /* ZMQ_MAXMSGSIZE */
    SHOAL__MAX_VV = 1u << 20,                        /* entries in a HELLO version vector */
    SHOAL__HOST_SCAN = 4096,      /* log positions one next_changes call examines (at most) */
    SHOAL__EXTRA_MAX = 64,        /* (author, seq) versions a session sends on a mismatch */
    SHOAL__EXTRA_BELOW = 7,       /* ... and the seqs below a disputed one it sends too */
    SHOAL__EVIDENCE_SEND = 1024,  /* evidence envelopes one session sends (at most) */
    SHOAL__MAX_SUBS = 64,         /* subscriptions in one set */
    SHOAL__MAX_SUB_NAME = 64,     /* bytes of a subscription name */
    SHOAL__MAX_SUB_TEXT = 4096,   /* bytes of a predicate (as the query language's bound) */
    SHOAL__MAX_SUB_PARAMS = 8192, /* bytes of a subscription's bound parameters */
    SHOAL__MAX_HELD = 1u << 20,   /* documents in a held-document summary */
    SHOAL__MAX_HEADS = 256,       /* heads of one document in a summary */
    SHOAL__HAVE_BATCH = 64,       /* documents in one HAVE we send */
    SHOAL__PEER_SUBS = 512        /* bytes of a peer's subscriptions as text (peer records) */
};

/* One version-vector entry: author -> highest contiguous seq, and the id of
 * that change. */
typedef struct shoal__vventry {
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
    uint8_t cid[SHOAL__ID_BYTES];
} shoal__vventry;

/* One subscription as it travels (HELLO version 2, SUBSCRIBE): every field
 * points into a frame (or the host's buffer) and is not NUL-terminated.
 * params: canonical MessagePack, an array of [name str, value] pairs. */
typedef struct shoal__wsub {
    const uint8_t *name;
    size_t nlen;
    const uint8_t *coll;
    size_t clen;
    const uint8_t *where; /* "" : the whole collection */
    size_t wlen;
    const uint8_t *params;
    size_t plen;
} shoal__wsub;

/* One document a partial replica holds (its summary): its heads, nheads
 * ids of 32 bytes back to back. */
typedef struct shoal__wheld {
    const uint8_t *coll;
    size_t clen;
    const uint8_t *id;
    size_t idlen;
    const uint8_t *heads;
    size_t nheads;
} shoal__wheld;

/* What a feed (below) hands the session next. */
typedef enum shoal__feed_kind {
    SHOAL__FEED_NONE = 0,    /* nothing now */
    SHOAL__FEED_BATCH = 1,   /* count envelopes were appended */
    SHOAL__FEED_LEAVE = 2,   /* a document left the peer's view: coll, id, reason, heads */
    SHOAL__FEED_COMPLETE = 3 /* every document in view at the set's start was sent */
} shoal__feed_kind;

enum {
    SHOAL__LEAVE_NOMATCH = 1, /* the document no longer matches any subscription */
    SHOAL__LEAVE_UNSUB = 2,   /* the subscription that matched it was removed */
    SHOAL__LEAVE_BEHIND = 3,  /* the heads are the peer's own (its HAVE): we hold all
                                 of that, and on our state it is out of view */
    SHOAL__LEAVE_GONE = 4     /* it left our own view (we evicted it): no heads */
};

typedef struct shoal__feed_out {
    shoal__feed_kind kind;
    size_t count; /* BATCH */
    uint8_t coll[SHOAL_MAX_COLLECTION];
    size_t clen;
    uint8_t id[SHOAL_MAX_DOC_ID];
    size_t idlen;
    unsigned reason;
    const uint8_t *heads; /* our heads of it (Borrowed from the feed until its next call) */
    size_t nheads;
    bool moved; /* NONE: the feed moved on in its log; ask again */
} shoal__feed_out;

/* Partial sync support of a host (docs/protocol.md, "Partial replicas"),
 * shoal__host.view; NULL: the host neither subscribes nor serves partial
 * peers (a partial peer's HELLO then fails with SHOAL_EVERSION).  Every
 * function takes the host's ctx. */
typedef struct shoal__host_view {
    /* A number that changes whenever our own subscription set changes; 0
     * while we hold none (a full replica).  Cheap: called often. */
    uint64_t (*self_gen)(void *ctx);
    /* Our subscription set and held-document summary as two MessagePack
     * arrays appended to out (the last two items of HELLO version 2 and of
     * SUBSCRIBE); *gen: the set's generation (0: none, nothing appended). */
    int (*self_subs)(void *ctx, uint64_t *gen, shoal__buf *out);
    /* Start feeding a partial peer: *feed Owned, free with feed_free.
     * named: we dialled it, expecting its key (the operator named it).
     * SHOAL_EINVAL (or SHOAL_EPROTO) for a subscription that does not
     * compile. */
    int (*feed_new)(void *ctx, const uint8_t peer[SHOAL_KEY_BYTES], bool named,
                    const shoal__wsub *subs, size_t nsubs, const shoal__wheld *held, size_t nheld,
                    void **feed);
    /* The next thing to send the peer: envelopes into envs (at most
     * max_changes and about max_bytes), a LEAVE or the COMPLETE mark. */
    int (*feed_next)(void *ctx, void *feed, size_t max_changes, size_t max_bytes, shoal__buf *envs,
                     shoal__feed_out *out);
    /* Documents in the peer's view as far as the feed knows. */
    uint64_t (*feed_docs)(void *ctx, void *feed);
    void (*feed_free)(void *ctx, void *feed);
    /* The peer sent us these envelopes (a BATCH, before it is applied):
     * they are not sent back to it. */
    void (*feed_received)(void *ctx, void *feed, const uint8_t *envs, size_t len, size_t count);
    /* The peer says what it holds of some documents now (its HAVE): an
     * entry without heads, that it no longer holds the document. */
    int (*feed_have)(void *ctx, void *feed, const shoal__wheld *held, size_t nheld);
    /* As a partial replica: a number that moves whenever we come to hold
     * a document or stop holding one (cheap: called often); and the held
     * array (shoal__wire_put_held) of at most SHOAL__HAVE_BATCH documents
     * whose holding changed after *seen, with our heads now (none: no
     * longer held), appended to out, *seen advanced, *count = entries.
     * SHOAL_ENOTFOUND: more changed than are remembered (*seen advanced
     * to now): the peer needs our whole summary again (SUBSCRIBE). */
    uint64_t (*held_gen)(void *ctx);
    /* As a partial replica: the highest of our own seqs a full replica is
     * known to hold (we may have evicted them since). */
    uint64_t (*own_acked)(void *ctx);
    int (*held_changes)(void *ctx, uint64_t *seen, shoal__buf *out, size_t *count);
    /* Receiving, as a partial replica: the sender says a document left our
     * view (evict it once our own changes to it are acknowledged); the
     * sender sent everything in view for our set of generation gen; a full
     * peer holds the changes of e's authors up to their seqs (its HELLO
     * vector, its ACKs' entries; e sorted by author). */
    int (*leave)(void *ctx, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                 unsigned reason, const uint8_t *heads, size_t nheads);
    int (*complete)(void *ctx, uint64_t gen);
    int (*acked)(void *ctx, const shoal__vventry *e, size_t n);
    /* As a partial replica: the entries a full peer's vector showed us
     * (what a full replica holds: other authors' changes up to seq),
     * sorted by author, *out Owned (free with shoal__free); and one
     * author's (0: none).  A partial replica passes them on in its HELLO
     * and ACKs, so that its own partial peers may evict too. */
    int (*vouched)(void *ctx, shoal__vventry **out, size_t *n);
    bool (*vouched_get)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], shoal__vventry *out);
} shoal__host_view;

/* What the protocol needs from a replica; implemented by core/ over the
 * store.  Every function returns a shoal_err and is called from the engine
 * thread (or a test), never with a transport lock held. */
typedef struct shoal__host {
    void *ctx;
    /* The current version vector, sorted by author.  *out is owned by the
     * caller (free with shoal__free). */
    int (*version)(void *ctx, shoal__vventry **out, size_t *n);
    /* Append to out (envelopes back to back) the applied changes at log
     * positions >= *cursor whose seq is above peer's entry for their author
     * (peer: sorted by author, npeer entries), in log (causal) order, at
     * most max_changes and about max_bytes (at least one change if any);
     * advance *cursor past every position examined; *count = changes
     * appended.  One call examines at most SHOAL__HOST_SCAN positions (it
     * holds the replica's lock while it walks), so *count == 0 does not
     * mean the log is exhausted: only a call that leaves *cursor where it
     * was has reached the end of the log.  The caller calls again (without
     * holding anything) while *count == 0 and *cursor moved.  Only durable
     * changes are returned (in non-durable mode the host syncs before
     * handing out changes it has not synced). */
    int (*next_changes)(void *ctx, uint64_t *cursor, const shoal__vventry *peer, size_t npeer,
                        size_t max_changes, size_t max_bytes, shoal__buf *out, size_t *count);
    /* Verify, decode and apply count envelopes (back to back in p) exactly as
     * shoal_import does; res may be NULL.  An invalid change rejects the
     * batch whole with its error (SHOAL_EBADSIG, SHOAL_EPROTO, ...). */
    int (*apply)(void *ctx, const uint8_t *p, size_t len, size_t count, shoal_import_result *res);
    /* The id of the applied change (author, seq): SHOAL_ENOTFOUND if none. */
    int (*authseq)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                   uint8_t cid[SHOAL__ID_BYTES]);
    /* Equivocation support (below); NULL: the session sends no versions
     * or evidence of its own.  Borrowed for the host's life. */
    const struct shoal__host_ext *ext;
    /* Partial sync support (shoal__host_view below), or NULL.  Borrowed
     * for the host's life. */
    const struct shoal__host_view *view;
    /* Whether the X25519 key x belongs to a device certified now by the
     * replica's permissions (docs/permissions.md): true with its Ed25519
     * key in ed.  Consulted for an incoming link the lists do not decide;
     * NULL: never. */
    bool (*certified)(void *ctx, const uint8_t x[32], uint8_t ed[SHOAL_KEY_BYTES]);
    /* Whether a full peer (no subscriptions) with Ed25519 key peer may
     * receive everything we hold: SHOAL_OK, or SHOAL_EPERM with one line
     * saying why in why (len bytes); the session then fails.  NULL:
     * always. */
    int (*serve_full)(void *ctx, const uint8_t peer[SHOAL_KEY_BYTES], char *why, size_t len);
    /* Whether the X25519 key x is revoked by the replica's permissions:
     * refused like a disallowed key, its live links closed.  NULL:
     * never. */
    bool (*revoked)(void *ctx, const uint8_t x[32]);
    /* Bring certified and revoked keys up to date with what other
     * processes sharing the directory committed; called about once a
     * second by the engine.  NULL: nothing to do. */
    void (*auth_refresh)(void *ctx);
    /* A number that moves whenever the replica's authority (`_auth`)
     * changes; cheap.  NULL: never. */
    uint64_t (*auth_gen)(void *ctx);
    /* A full replica's HELLO vector (v, *n entries, sorted), lowered in
     * place below each change it holds without one of its sealed groups,
     * so that the peer sends those changes again with their groups
     * (docs/permissions.md, "Sealed fields"); an entry lowered to 0 is
     * removed.  NULL: as it is. */
    int (*hello_vv)(void *ctx, shoal__vventry *v, size_t *n);
} shoal__host;

/* Equivocation support of a host (docs/protocol.md), shoal__host.ext.
 * Each function takes the host's ctx; any may be NULL (the session then
 * sends no versions or evidence of its own). */
typedef struct shoal__host_ext {
    /* Append our applied envelope of (author, seq) to out; SHOAL_ENOTFOUND
     * if none. */
    int (*envelope)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                    shoal__buf *out);
    /* A number that changes whenever the replica stores new evidence. */
    uint64_t (*evidence_gen)(void *ctx);
    /* Append evidence envelopes whose (author, seq) has an applied version
     * here (so we hold that author up to seq), skipping the first *from
     * such envelopes: at most max_changes and about max_bytes; *count =
     * appended, *from advanced past them; *count == 0: no more. */
    int (*evidence)(void *ctx, size_t *from, size_t max_changes, size_t max_bytes, shoal__buf *out,
                    size_t *count);
    /* Whether the replica has nothing more to learn about (author, seq)
     * from a peer that claims cid: it holds cid (applied, evidence or
     * pending), or already keeps as many versions as it ever will. */
    bool (*settled)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                    const uint8_t cid[SHOAL__ID_BYTES]);
} shoal__host_ext;

/* ------------------------------------------------------------- session */

/* One side of one link.  Created when a link comes up; HELLO first, then
 * catch-up in bounded batches with a window of SHOAL__WINDOW unacked
 * batches, then live push.  After a protocol or signature error the
 * session is failed (sticky) and produces at most one ERROR frame. */
typedef struct shoal__session shoal__session;

typedef struct shoal__session_stats {
    bool handshaken;               /* HELLO received and valid */
    bool failed;                   /* sticky error */
    int error;                     /* the sticky error (shoal_err) */
    uint8_t peer[SHOAL_KEY_BYTES]; /* the peer's key from its HELLO */
    uint64_t sent;                 /* changes sent */
    uint64_t received;             /* changes received */
    uint64_t sent_bytes;           /* envelope bytes of the changes sent */
    uint64_t received_bytes;       /* envelope bytes of the changes received */
    uint64_t rejected;             /* frames rejected */
    uint64_t equivocations;        /* signed conflicting versions its batches brought (new here) */
    uint64_t lag;                  /* sum over authors of max(0, ours - peer's known seq) */
    uint64_t last_recv_ms;         /* now_ms passed with the last frame received */
    bool caught_up;                /* we hold all the peer held at its HELLO, and the
                               peer acknowledged all we held at our HELLO */
} shoal__session_stats;

/* self: our key (32 bytes, copied).  expect_peer: the key we expect in the
 * peer's HELLO (NULL: any; a mismatch fails the session with
 * SHOAL_EREFUSED).  host is Borrowed until free. */
shoal__session *shoal__session_new(const shoal__host *host, const uint8_t self[SHOAL_KEY_BYTES],
                                   const uint8_t *expect_peer);
void shoal__session_free(shoal__session *s);
/* We dialled the peer by the key our operator named (EP@KEY): it is
 * served as it asks, whatever its roles read (docs/permissions.md,
 * "Reading"); a peer that dialled us is served what its roles read. */
void shoal__session_dialled(shoal__session *s);
/* Queue our HELLO (with the current version vector). */
int shoal__session_start(shoal__session *s, uint64_t now_ms);
/* Process one frame from the peer.  Returns SHOAL_OK, or the (now sticky)
 * error: SHOAL_EPROTO / SHOAL_ETRUNC / SHOAL_ETOOBIG for a malformed frame,
 * SHOAL_EVERSION for an unknown protocol version, SHOAL_EBADSIG and the
 * other import errors for a bad change, SHOAL_EREFUSED for an unexpected
 * peer key. */
int shoal__session_recv(shoal__session *s, const uint8_t *frame, size_t len, uint64_t now_ms);
/* The next frame to send, if flow control allows one: returns 1 and sets
 * *frame and *len (Borrowed until the next call on s), or 0 if there is nothing
 * to send now.  Errors (from the host) go sticky and show in the stats; a
 * failed session returns its one ERROR frame, then 0. */
int shoal__session_next(shoal__session *s, const uint8_t **frame, size_t *len);
/* The replica's log grew (a local commit, or changes from another link):
 * the next call to shoal__session_next may find changes to push. */
void shoal__session_changed(shoal__session *s);
/* The authority changed: a full peer that dialled us and may no longer
 * read everything (host->serve_full) fails the session with its ERROR
 * queued (true); any other session is left as it is (false). */
bool shoal__session_recheck_full(shoal__session *s);
void shoal__session_get_stats(const shoal__session *s, shoal__session_stats *out);
/* A partial peer's subscriptions as text, "name: coll WHERE pred" joined
 * by "; " and cut to SHOAL__PEER_SUBS - 1 bytes ("" for a full peer), and
 * the documents its view holds as far as our feed knows (0 for a full
 * peer). */
const char *shoal__session_peer_subs(const shoal__session *s);
uint64_t shoal__session_view_docs(const shoal__session *s);

/* The session's own failure text or the text of the peer's ERROR frame
 * ("" while not failed): shoal__session_failure(s). */
const char *shoal__session_failure(const shoal__session *s);

/* Frames (wire.c; docs/protocol.md): canonical MessagePack arrays.
 *   HELLO [1, 1, key bin32, [[author bin32, seq, cid bin32] ...]]
 *   HELLO [1, 2, key, vv, subs, held] (a partial replica)
 *     subs [[name str, coll str, where str, params bin] ...]
 *     held [[coll str, id str, heads bin (32 bytes each)] ...]
 *   SUBSCRIBE [6, subs, held]
 *   LEAVE [8, set, coll str, id str, reason, heads bin (32 bytes each)]
 *   HAVE [9, held] (held as above; no heads: no longer held)
 *   HOLDS [11, [[author, seq, cid]]] (one entry: the peer's own author)
 *   COMPLETE [10, set]
 *   BATCH [2, n, count, envelopes bin (count envelopes back to back)]
 *   ACK   [3, n, applied, duplicate, pending, [[author, seq, cid] ...]]
 *   ERROR [4, code, text str] */
enum {
    SHOAL__F_HELLO = 1,
    SHOAL__F_BATCH = 2,
    SHOAL__F_ACK = 3,
    SHOAL__F_ERROR = 4,
    SHOAL__F_SUBSCRIBE = 6, /* 5 (AUTH), 7 (ENTER): reserved */
    SHOAL__F_LEAVE = 8,
    SHOAL__F_HAVE = 9,
    SHOAL__F_COMPLETE = 10,
    SHOAL__F_HOLDS = 11,
    SHOAL__ERROR_TEXT = 200 /* bytes of an ERROR frame's text (at most) */
};

/* A decoded frame.  Pointers point into the frame's bytes; entries is
 * owned (free with shoal__frame_clear). */
typedef struct shoal__frame {
    int type;
    uint64_t version;        /* HELLO */
    const uint8_t *key;      /* HELLO: 32 bytes */
    shoal__vventry *entries; /* HELLO vv / ACK delta, sorted by author */
    size_t nentries;
    uint64_t n;          /* BATCH, ACK: batch number */
    uint64_t count;      /* BATCH: envelopes */
    const uint8_t *envs; /* BATCH */
    size_t envs_len;
    uint64_t applied, duplicate, pending; /* ACK */
    uint64_t code;                        /* ERROR */
    const uint8_t *text;                  /* ERROR: UTF-8, not NUL-terminated */
    size_t text_len;
    /* HELLO version 2, SUBSCRIBE: owned arrays of pointers into the frame */
    shoal__wsub *subs;
    size_t nsubs;
    shoal__wheld *held;
    size_t nheld;
    /* LEAVE */
    const uint8_t *coll, *id;
    size_t clen, idlen;
    uint64_t reason;
    const uint8_t *heads; /* the sender's heads of the document, 32 bytes each */
    size_t nheads;
    /* COMPLETE, LEAVE: the set number (1: the HELLO's, then one per
     * SUBSCRIBE) */
    uint64_t set;
} shoal__frame;

/* Decode and check one frame (every count bounded before use, canonical
 * forms only, no trailing bytes, vv entries strictly ascending by author
 * with seq >= 1).  Errors: SHOAL_ETRUNC, SHOAL_EPROTO, SHOAL_ETOOBIG,
 * SHOAL_EVERSION (a HELLO of another protocol version), SHOAL_ENOMEM. */
int shoal__frame_decode(const uint8_t *p, size_t len, shoal__frame *f);
void shoal__frame_clear(shoal__frame *f);
/* Encoders: append one frame to out. */
int shoal__wire_hello(shoal__buf *out, const uint8_t key[SHOAL_KEY_BYTES], const shoal__vventry *vv,
                      size_t n);
/* HELLO version 2: subs_held is the host's two arrays (self_subs). */
int shoal__wire_hello2(shoal__buf *out, const uint8_t key[SHOAL_KEY_BYTES],
                       const shoal__vventry *vv, size_t n, const uint8_t *subs_held, size_t len);
int shoal__wire_subscribe(shoal__buf *out, const uint8_t *subs_held, size_t len);
int shoal__wire_leave(shoal__buf *out, uint64_t set, const uint8_t *coll, size_t clen,
                      const uint8_t *id, size_t idlen, uint64_t reason, const uint8_t *heads,
                      size_t nheads);
/* HAVE: held is one held-document array (shoal__wire_put_held_header and
 * shoal__wire_put_held). */
int shoal__wire_have(shoal__buf *out, const uint8_t *held, size_t len);
int shoal__wire_complete(shoal__buf *out, uint64_t set);
int shoal__wire_holds(shoal__buf *out, const shoal__vventry *e);
/* Append the two arrays of HELLO version 2 / SUBSCRIBE (hosts use these
 * to build self_subs's output; held entries with nheads heads each). */
void shoal__wire_put_subs(shoal__mpw *w, const shoal__wsub *subs, size_t n);
void shoal__wire_put_held_header(shoal__mpw *w, size_t n);
void shoal__wire_put_held(shoal__mpw *w, const shoal__wheld *h);
int shoal__wire_batch(shoal__buf *out, uint64_t n, size_t count, const uint8_t *envs, size_t len);
int shoal__wire_ack(shoal__buf *out, uint64_t n, const shoal_import_result *res,
                    const shoal__vventry *delta, size_t ndelta);
int shoal__wire_error(shoal__buf *out, int code, const char *text);

/* -------------------------------------------------------------- engine */

/* The ZeroMQ engine: one background thread owning every socket of one
 * replica.  All functions are thread-safe. */
typedef struct shoal__engine shoal__engine;

typedef struct shoal__peer_info {
    uint8_t key[SHOAL_KEY_BYTES];
    char endpoint[256]; /* "" for an incoming link */
    bool connected;
    bool xkey; /* key is the X25519 key of a refused client */
    uint64_t last_seen_ms, sent, received, lag, rejected, connects, refused, equivocations;
    uint64_t sent_bytes, received_bytes; /* envelope bytes of the changes */
    char last_error[160];
    /* A partial peer: its subscriptions as text ("" for a full peer) and
     * the documents in its view that we know of (our feed's count). */
    char subs[SHOAL__PEER_SUBS];
    uint64_t view_docs;
} shoal__peer_info;

typedef struct shoal__engine_cfg {
    const uint8_t *pk; /* 32 bytes: our Ed25519 public key */
    const uint8_t *sk; /* 64 bytes: our Ed25519 secret key (libsodium layout) */
    const shoal__host *host;
    uint64_t (*now_ms)(void *ctx); /* wall clock */
    void *clock_ctx;
    void (*log)(void *ctx, int level, const char *msg); /* may be NULL */
    void *log_ctx;
    /* Persist a peer's state (called from the engine thread on changes of
     * connection state and at most every few seconds otherwise); may be
     * NULL. */
    void (*save_peer)(void *ctx, const shoal__peer_info *p);
    void *save_ctx;
    int backlog;      /* ZMQ_BACKLOG of listening sockets (0: 1024) */
    int heartbeat_ms; /* ZMQ heartbeat interval (0: 1000) */
    /* Tests only: ignore the DISCONNECTED events of listening sockets, so
     * that a gone connection's session stays as it does in the window
     * before its event is read. */
    bool hold_disconnects;
    /* Peer records kept, connected or not (0: shoal__engine_max_peers).
     * Past the cap, a new record evicts the least recently active one that
     * has no link up and is not the peer of a kept or syncing link:
     * refused attempts first, then keys not on the allow-list, then the
     * rest; forget_peer (may be NULL; called on the engine thread with
     * save_ctx) is told each evicted key, so its stored record can go. */
    size_t max_peers;
    void (*forget_peer)(void *ctx, const uint8_t key[SHOAL_KEY_BYTES]);
    /* Records stored before this run (Borrowed during start): they count
     * against the cap from the start (their counts stay the caller's). */
    const shoal__peer_info *known;
    size_t nknown;
} shoal__engine_cfg;

enum {
    SHOAL__ENGINE_PEERS = 4096
};
/* The cap when cfg.max_peers is 0 (SHOAL__ENGINE_PEERS; tests lower it). */
extern size_t shoal__engine_max_peers;
/* Interval of the engine's look at the log for commits made by other
 * processes sharing the directory (ms; 250). */
extern _Atomic uint64_t shoal__engine_log_poll_ms;

int shoal__engine_start(shoal__engine **out, const shoal__engine_cfg *cfg);
/* Close every link, stop and join the thread, free.  NULL is a no-op. */
void shoal__engine_stop(shoal__engine *e);
int shoal__engine_allow(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES]);
int shoal__engine_allow_any(shoal__engine *e, bool any);
/* Refuse key from now on (even under allow_any; shoal__engine_allow lifts
 * it) and, if close_links, close every link up with it (see
 * shoal_net_disallow: this waits for the engine thread, so a caller that
 * the engine thread may wait for, such as one holding a lock that
 * forget_peer takes, passes false, as for an engine without links yet). */
int shoal__engine_disallow(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES], bool close_links);
/* *bound: caller owns; free with shoal__free. */
int shoal__engine_listen(shoal__engine *e, const char *endpoint, char **bound);
int shoal__engine_connect(shoal__engine *e, const char *endpoint,
                          const uint8_t key[SHOAL_KEY_BYTES]);
int shoal__engine_disconnect(shoal__engine *e, const char *endpoint);
/* Blocking one-shot sync (see shoal_net_sync). */
int shoal__engine_sync(shoal__engine *e, const char *endpoint, const uint8_t key[SHOAL_KEY_BYTES],
                       int timeout_ms);
/* The replica's log grew: wake the engine to push. */
void shoal__engine_notify(shoal__engine *e);
/* Snapshot of the live links' state: *out owned by the caller. */
int shoal__engine_peers(shoal__engine *e, shoal__peer_info **out, size_t *n);

#endif /* SHOAL_TRANSPORT_TRANSPORT_H */
