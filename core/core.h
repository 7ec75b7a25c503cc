/*
 * core/core.h - private header of the core module (the public API).
 *
 * core/ wires crdt/ (pure CRDT state and the change envelope) and store/
 * (the LMDB layout) into a shoal_replica.  Only files in core/ include this.
 *
 * Ownership in one place:
 *   - The replica owns its doc cache; every cached shoal__doc is freed only
 *     by cache_free_val() in docstore.c.
 *   - A write transaction moves documents out of the cache into its working
 *     set (shoal__wset), which then owns them; after a successful commit
 *     shoal__wset_commit() moves them back, after an abort or a map-full
 *     retry shoal__wset_free() frees them.  So the cache never holds state
 *     that was not committed.
 *   - Every API call on a replica holds r->mu, so the cache and the working
 *     set are never touched by two threads at once.  The event queue has its
 *     own lock (ev_mu) so that a thread waiting for events blocks nobody.
 */
#ifndef SHOAL_CORE_CORE_H
#define SHOAL_CORE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"
#include "crdt.h"
#include "shoal.h"
#include "store.h"

enum {
    SHOAL__EVENT_CAP = 4096, /* events queued per replica handle */
    SHOAL__CACHE_MAX = 1024, /* documents in the doc cache */
    SHOAL__SNAP_MIN = 4096,  /* tail bytes before a snapshot is written */
    SHOAL__ERRMSG = 256
};

#define SHOAL__DEFAULT_DRIFT_MS 60000u

struct shoal_options {
    bool durable;
    uint64_t map_size;
    uint64_t max_drift_ms;
    uint64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    void (*log)(void *ctx, int level, const char *msg); /* may be NULL */
    void *log_ctx;
    bool has_root; /* permissions (docs/permissions.md): the root key to trust */
    uint8_t root[SHOAL_KEY_BYTES];
};

/* Devices certified now, for incoming links (authapi.c): load them at
 * open, note an object of `_auth/cert:KEY` that became current, admit an
 * X25519 key (true with its Ed25519 key), free them. */
int shoal__certs_load(shoal_replica *r);
void shoal__certs_note(shoal_replica *r, const uint8_t *obj, size_t n);
bool shoal__certs_admit(shoal_replica *r, const uint8_t x[32], uint8_t ed[SHOAL_KEY_BYTES]);
/* Revoked keys (docs/permissions.md, "Revoking a device"): note an
 * admitted revocation object; whether the X25519 key x is revoked. */
void shoal__certs_note_revoke(shoal_replica *r, const uint8_t *obj, size_t n);
/* Forget the certificate noted for Ed25519 key ed (its document was
 * rebuilt: what it holds now is noted again, if anything). */
void shoal__certs_forget(shoal_replica *r, const uint8_t ed[SHOAL_KEY_BYTES]);
bool shoal__certs_revoked(shoal_replica *r, const uint8_t x[32]);
/* Note the certificates and revocations other processes sharing the
 * directory committed since the last look (the log past r->auth_pos);
 * takes r->mu. */
void shoal__certs_refresh(shoal_replica *r);
/* Equivocation proofs (docs/permissions.md, "Equivocation"): a full
 * replica that enforces permissions publishes, for each author whose two
 * signed versions of one seq it holds as evidence, a proof at the
 * smallest such seq (`_auth/equivocation:HEX`), unless it holds a proof
 * or revocation cutting that author as low already.  Run after an import
 * that found equivocations; r->mu not held.  Best effort: a replica that
 * may not publish (no certificate, no grant) publishes nothing.  The
 * number published. */
size_t shoal__equiv_publish(shoal_replica *r);
void shoal__certs_free(shoal_replica *r);

/* The change that wrote the newest object of kind about key in w's
 * snapshot (shoal__wset_auth_pick), decoded into *ch (clear it after);
 * its id in cid.  SHOAL_ENOTFOUND if none. */
typedef struct shoal__wset shoal__wset;
int shoal__auth_newest(shoal__wset *w, int kind, const uint8_t *key, uint8_t cid[SHOAL__ID_BYTES],
                       shoal__change *ch);

/* Make replicas opened with o enforce permissions under root
 * (docs/permissions.md).  Internal until every part of enforcement
 * exists: a directory created with a root keeps it (meta "root"), one
 * created without refuses it. */
void shoal__options_set_root(shoal_options *o, const uint8_t root[SHOAL_KEY_BYTES]);

/* ------------------------------------------------------------- identity */

/* The replica's Ed25519 identity (identity.c): dir's "identity" file
 * (64 bytes, 0600), created on first use.  pk receives the public key, *sk
 * a sodium_malloc'd copy of the 64-byte secret key (free with
 * shoal__identity_free).  _open runs _load under st's writer lock, so
 * processes opening a fresh directory at once share one identity.  On
 * error errbuf holds a one-line explanation (SHOAL_ECORRUPT: a damaged
 * file; SHOAL_EREADONLY: cannot write the directory). */
int shoal__identity_open(shoal__store *st, const char *dir, uint8_t pk[SHOAL_KEY_BYTES],
                         uint8_t **sk, char *errbuf, size_t errlen);
int shoal__identity_load(const char *dir, uint8_t pk[SHOAL_KEY_BYTES], uint8_t **sk, char *errbuf,
                         size_t errlen);
void shoal__identity_free(uint8_t *sk); /* NULL is a no-op */

/* -------------------------------------------------------------- replica */

typedef struct shoal__event_q {
    struct shoal_event **ring; /* SHOAL__EVENT_CAP slots; owned */
    size_t head;
    size_t n;
    bool overflow; /* events were dropped since the last delivery */
    bool closing;
    int waiters;
} shoal__event_q;

struct shoal_replica {
    pthread_mutex_t mu;                /* held by every API call that takes r */
    bool enforce;                      /* a root key is trusted: every change is judged */
    uint8_t root[SHOAL_KEY_BYTES];     /* that key (meta "root") */
    struct shoal__authz_cache *authz;  /* decoded _auth objects (under mu), owned */
    pthread_mutex_t cert_mu;           /* guards certs (taken last, never held across calls) */
    shoal__map certs;                  /* X25519 key -> certified device (authapi.c), owned */
    shoal__map revoked;                /* X25519 key -> 1: a revocation names it (cert_mu) */
    uint64_t auth_pos;                 /* the log's end when certs/revoked were last brought
                                          up to date (under mu): shoal__certs_refresh */
    _Atomic uint64_t auth_gen;         /* bumped when an `_auth` document changes (readers) */
    struct shoal__reader *self_reader; /* what we may read ourselves (reader.c, under mu), owned */
    shoal__store *store;               /* owned */
    uint8_t pk[SHOAL_KEY_BYTES];       /* identity public key (author id) */
    uint8_t *sk;                       /* 64-byte secret key, sodium_malloc'd, owned */
    struct shoal_options opt;
    shoal__map cache; /* "coll\0id" -> shoal__cdoc*, owned */
    uint64_t due_ms;  /* wall ms when a held-back change may apply */
    char errmsg[SHOAL__ERRMSG];
    pthread_mutex_t ev_mu;
    pthread_cond_t ev_cv;
    shoal__event_q ev;
    pthread_mutex_t net_mu;       /* guards net (never held while waiting on the engine) */
    struct shoal__net *net;       /* network state (net.c), owned; NULL until first use */
    _Atomic uint64_t synced_pos;  /* non-durable: log positions below it are flushed */
    _Atomic uint64_t ev_gen;      /* bumped by every commit that stored evidence */
    char *dir;                    /* the directory, owned */
    struct shoal__livehub *live;  /* live queries (live.c); NULL while none is open */
    _Atomic bool qviews_marked;   /* meta "qviews" seen set: every document has its view */
    struct shoal__subs *subs;     /* our subscriptions (subs.c), owned */
    struct shoal__feedhub *feeds; /* the feeds' shared anchor index (feed.c), under mu */
    _Atomic uint64_t held_gen;    /* documents come to be held or evicted so far
                                    (under mu): feeds and HAVEs read them
                                    (shoal__subs_held_key) */
    _Atomic uint64_t subs_gen;    /* their generation; 0: none (a full replica) */
};

/* Wall clock in ms (the options clock or CLOCK_REALTIME). */
uint64_t shoal__wall_ms(shoal_replica *r);
/* Record err with a printf-style detail in r->errmsg and return err. */
shoal_err shoal__fail(shoal_replica *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Validate a user name (collection, id, field): UTF-8, 1..max bytes. */
bool shoal__name_ok(const char *s, size_t max, size_t *len);

/* --------------------------------------------------------- doc metadata */

/* Document meta blob, stored in the docs table or carried by the log entry
 * of the document's newest change until the index batch moves it there
 * (docs/storage.md); format in docs/c-api.md:
 *   version u8 (2) | flags u8 (1 exists, 2 deleted) | nchanges u64 |
 *   snap_n u64 | tail_bytes u64 | snap_bytes u64 | epoch u64 |
 *   last_pos u64 | nheads u32 | heads (nheads x 32 bytes, sorted ascending)
 * all integers big-endian. */
enum {
    SHOAL__META_VERSION = 2,
    SHOAL__META_FIXED = 54
};

typedef struct shoal__dmeta {
    bool exists;
    bool deleted;
    uint64_t nchanges;   /* changes applied to this document */
    uint64_t snap_n;     /* changes covered by the snapshot (0: none) */
    uint64_t tail_bytes; /* envelope bytes of the changes after it */
    uint64_t snap_bytes; /* size of the snapshot */
    uint64_t epoch;
    uint64_t last_pos; /* log position of its last change (0: none); each
                              log entry links to the one before (docstore.c) */
    size_t nheads;
    uint8_t *heads; /* nheads x 32, owned */
} shoal__dmeta;

int shoal__dmeta_parse(const uint8_t *p, size_t n, shoal__dmeta *m);
int shoal__dmeta_encode(const shoal__dmeta *m, shoal__buf *out);
void shoal__dmeta_clear(shoal__dmeta *m);

/* shoal__dockey ("coll\0id") and SHOAL__DOCKEY_MAX: base/keys.h. */

/* The stored meta of the document whose key is key ("coll\0id") in
 * snapshot t into *m (clear it after); SHOAL_ENOTFOUND when it is not
 * held. */
int shoal__dmeta_get(shoal__stxn *t, const uint8_t *key, size_t klen, shoal__dmeta *m);

/* Read path: meta of (coll, id) into *m (caller clears it) and the
 * materialised document, Borrowed from the cache until the next cache
 * change (the next call that loads a document).  SHOAL_ENOTFOUND if the
 * store has no such document. */
int shoal__doc_read(shoal_replica *r, shoal__stxn *t, const uint8_t *coll, size_t clen,
                    const uint8_t *id, size_t idlen, shoal__dmeta *m, const shoal__doc **out);
/* Materialise (coll, id) from its snapshot and the changes of its chain
 * after it, as meta m describes them, bypassing the cache.  Caller owns
 * *out.  SHOAL_ECORRUPT when they do not load. */
int shoal__doc_load(shoal_replica *r, shoal__stxn *t, const shoal__dmeta *m, const uint8_t *coll,
                    size_t clen, const uint8_t *id, size_t idlen, shoal__doc **out);
/* Free every cached document. */
void shoal__cache_free(shoal_replica *r);

/* ---------------------------------------------------------- working set */

/* A document touched by the running write transaction. */
typedef struct shoal__wdoc {
    uint8_t *coll; /* NUL-terminated copy, owned */
    size_t clen;
    uint8_t *id; /* NUL-terminated copy, owned */
    size_t idlen;
    shoal__dmeta meta; /* as it will be stored */
    shoal__doc *doc;   /* owned */
    bool stored;       /* meta existed in the store when loaded */
    size_t nnew;       /* changes applied in this txn */
    uint64_t newbytes; /* their envelope bytes */
    bool local;        /* changed by a local change */
    bool remote;       /* changed by a remote change */
    bool rebuilt;      /* rebuilt from its chain: snapshot it whole */
    bool evicted;      /* evicted by this txn and not touched since: no doc, nothing to flush */
    bool dropped;      /* evicted by this txn: its cache entry goes at commit */
    bool voided;       /* holds a VOID change (its state is not the one verdicts see) */
    bool own_void;     /* rebuilt holding a VOID change of our own */
    bool cut_rebuilt;  /* rebuilt because a cut landed (revocation, proof) */
} shoal__wdoc;

typedef struct shoal__wset {
    shoal_replica *r;
    shoal__stxn *t;
    shoal__map map;      /* "coll\0id" -> shoal__wdoc* */
    shoal__wdoc **order; /* first-touch order, owned (and the wdocs) */
    size_t n;
    size_t cap;
    bool marked; /* this txn holds meta "qviews" (shoal__qviews_mark) */
    /* Revocation cuts this txn looked up: author -> (uintptr_t)(cut + 2),
     * or (void *)1 for none; anyrev: meta "revoked" (0 not read yet, 1
     * absent, 2 present). */
    shoal__map vcut;
    int anyrev;
    shoal__map voids; /* shoal__apply_void's cache for this txn */
} shoal__wset;

/* Revocation cuts (docs/permissions.md, "Revoking a device"), read from
 * the store so that every process sharing the directory agrees: meta
 * "revoked" is set once any revocation is admitted, and meta "void:HEX"
 * (the hex of "coll\0id") marks a document holding a VOID change.
 * shoal__wset_cut: the smallest cut of author's admitted revocations as
 * this txn sees them (SHOAL_ENOTFOUND: none); shoal__wset_void: whether
 * change c is VOID (shoal__apply_void: past its author's cut, or naming a
 * VOID authority object); shoal__wset_voided: whether wd holds a VOID change (its state
 * is not what verdicts see). */
int shoal__wset_cut(shoal__wset *w, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *cut);
int shoal__wset_void(shoal__wset *w, const shoal__change *c, bool *v);
/* Whether any change may be VOID in w's txn (a revocation is held). */
bool shoal__wset_may_void(shoal__wset *w);
bool shoal__wset_voided(shoal__wset *w, shoal__wdoc *wd);
/* wd holds a VOID change: say so in the store (meta "void:HEX"), once. */
int shoal__wset_set_voided(shoal__wset *w, shoal__wdoc *wd);
/* The txn admitted a revocation of target: mark the store, and rebuild
 * every document target changed past the smallest cut (its changes there
 * VOID). */
int shoal__wset_revoked(shoal__wset *w, const uint8_t target[SHOAL_KEY_BYTES]);

void shoal__wset_init(shoal__wset *w, shoal_replica *r);
/* Free everything and bind to t (start of every run of a write fn). */
void shoal__wset_reset(shoal__wset *w, shoal__stxn *t);
/* Find or load (coll, id); a document the store lacks starts empty (so
 * does one this txn evicted). */
int shoal__wset_get(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id,
                    size_t idlen, shoal__wdoc **out);
/* (coll, id) as this txn has it so far, without loading it: NULL when the
 * working set does not hold it. */
shoal__wdoc *shoal__wset_find(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id,
                              size_t idlen);
/* Record that this txn evicted (coll, id) (core/evict.c): the working set
 * forgets its state (adding an entry if it held none), the flush skips it,
 * and the commit drops its cache entry and tells the live queries. */
int shoal__wset_evict(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id,
                      size_t idlen);
/* Record that change c (id cid, envelope env_len bytes, stored at log
 * position pos with link wd->meta.last_pos) was applied to wd->doc: meta,
 * heads, the change chain. */
int shoal__wset_applied(shoal__wset *w, shoal__wdoc *wd, const shoal__change *c,
                        const uint8_t cid[SHOAL__ID_BYTES], uint64_t pos, size_t env_len,
                        bool remote);
/* Rebuild wd->doc, its heads and nchanges from every applied change of
 * its chain (superseded entries skipped), in an order that puts each
 * change after its dependencies (mapped through the evidence:
 * shoal__apply_rebuild); the flush then writes a snapshot covering it all. */
/* The id of the newest admitted `_auth` object of kind about key (the
 * policy: key ignored) that this txn sees: the greatest serial (policy:
 * version), of equal ones the greatest id.  SHOAL_ENOTFOUND if none. */
int shoal__wset_auth_pick(shoal__wset *w, int kind, const uint8_t key[SHOAL_KEY_BYTES],
                          uint8_t cid[SHOAL__ID_BYTES]);
/* The state of wd's document over the closure of deps (ndeps ids, sorted)
 * (shoal__apply_doc_at): its current state, Borrowed, when deps are its
 * heads; else a replay of its chain that the caller frees (*owned).  NULL
 * when deps reach none of its changes. */
int shoal__wset_doc_at(shoal__wset *w, shoal__wdoc *wd, const uint8_t *deps, size_t ndeps,
                       const shoal__doc **out, bool *owned);
int shoal__wset_rebuild(shoal__wset *w, shoal__wdoc *wd);
/* wd's document replayed as for the commitment digest (docs/digests.md):
 * every sealed op's value stands for its group's commitment, whether this
 * replica holds the group or not, so the state is the same on every
 * replica that applied the same changes.  *out Caller owns. */
int shoal__wset_commit_doc(shoal__wset *w, shoal__wdoc *wd, shoal__doc **out);
/* Write meta and snapshots of every changed document. */
int shoal__wset_flush(shoal__wset *w);
/* After a successful store commit: queue events, move documents into the
 * cache, free the rest. */
void shoal__wset_commit(shoal__wset *w);
void shoal__wset_free(shoal__wset *w);

/* ------------------------------------------------------- write context */

/* The pipeline's store over a write transaction (apply_lmdb.c): the store
 * tables through t, the documents through the working set w. */
typedef struct shoal__lmdb_apply {
    shoal__stxn *t;
    shoal__wset *w; /* NULL: no document calls (shoal__wset_rebuild's deps) */
} shoal__lmdb_apply;

/* Point s at the LMDB implementation of shoal__apply_store over c. */
void shoal__apply_lmdb(shoal__apply_store *s, shoal__lmdb_apply *c);

/* State shared by the local commit and the import write functions
 * (write.c): the working set, the pipeline over the LMDB store, and the
 * skip-and-rerun list.  Never moved once initialised (it points into
 * itself). */
typedef struct shoal__wctx {
    shoal_replica *r;
    shoal__wset w;
    shoal__lmdb_apply la;
    shoal__apply_store s;
    /* The drain's state: _init sets wall (read once) and max_drift_ms,
     * _drain sets skip; clock is not set here: each write function loads
     * it from its txn (shoal__clock_load) before draining and stores it
     * back (shoal__clock_store); res, due_ms, ev_new and bad_pending are
     * the drain's outputs. */
    shoal__apply a;
    uint8_t *skip; /* ids of pending changes to drop, owned */
    size_t nskip;
} shoal__wctx;

/* Clock persistence (clock.c): the HLC is the greater of meta "clock" and
 * the HLC of the last change in the log. */
int shoal__clock_load(shoal__stxn *t, uint64_t *clock);
int shoal__clock_store(shoal__stxn *t, uint64_t clock);
/* Start x for one API call on r (caller holds r->mu): reads the wall clock
 * once. */
void shoal__wctx_init(shoal__wctx *x, shoal_replica *r);
/* Start one run of a write function: bind the working set to t, reset the
 * pipeline's results. */
void shoal__wctx_begin(shoal__wctx *x, shoal__stxn *t);
/* shoal__apply_drain over t with x's skip list. */
int shoal__wctx_drain(shoal__wctx *x, shoal__cand *cands, size_t n);
/* Run fn(t, arg), a write function over x, in a store write until it
 * commits or fails for good: when it failed on a stored pending change
 * (x->a.bad_pending), that change is remembered, dropped on the next run,
 * and fn runs again.  On success the working set moves to the cache and
 * r->due_ms is updated; on failure it is freed.  Frees x's skip list. */
int shoal__wctx_write(shoal__wctx *x, shoal__txn_fn fn, void *arg);
/* Drain the pending set in its own write transaction (open, import). */
int shoal__drain_now(shoal_replica *r);

/* ------------------------------------------------------ eviction (evict.c) */

/* Evict (coll, id) in w's write transaction, as if the replica had never
 * received it: every change of its chain (superseded ones included) leaves
 * the log and the indexes (positions are never reused), its meta,
 * snapshot, query view and index entries go, and the working set and (at
 * commit) the doc cache forget it.  The pending set, the evidence and
 * every other document stay; meta "clock" keeps the HLC and meta "ownseq"
 * this replica's seq from moving back.  A change applied to it earlier in
 * the txn goes too; one applied later starts it again from nothing.
 * *nchanges (may be NULL) receives the number of log entries dropped.
 * SHOAL_ENOTFOUND if the replica holds no change of it (or the txn evicted
 * it already); SHOAL_EINVAL for a bad name; SHOAL_ECORRUPT when its chain
 * does not lead through changes of it back to position 0; the write
 * errors. */
int shoal__doc_evict(shoal__wset *w, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen, uint64_t *nchanges);
/* shoal__doc_evict in a write transaction of its own, under r->mu (for
 * tests and tools until partial replicas call it in their own writes);
 * durable on return when the replica is.  coll and id are Borrowed
 * NUL-terminated names.  Errors as shoal__doc_evict, the message in
 * shoal_replica_errmsg. */
shoal_err shoal__evict(shoal_replica *r, const char *coll, const char *id);
/* The greatest seq of this replica's own changes that an eviction dropped
 * (meta "ownseq"; 0: none): a local commit allocates above it. */
int shoal__seq_floor(shoal__stxn *t, uint64_t *floor);

/* --------------------------------------------------------------- events */

void shoal__events_init(shoal_replica *r);
void shoal__events_push(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                        size_t idlen, bool remote);
/* Our own changes to (coll, id) became VOID (an orphans event). */
void shoal__events_push_voided(shoal_replica *r, const uint8_t *coll, size_t clen,
                               const uint8_t *id, size_t idlen);
/* The document left our view and was evicted (shoal_event_left). */
void shoal__events_push_left(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                             size_t idlen);
/* Wake every waiter with SHOAL_ECLOSED, wait until they left, free. */
void shoal__events_close(shoal_replica *r);

/* ------------------------------------------------------------ network */

/* Stop the engine and free r->net (net.c); called by close before the
 * store closes, without r->mu held. */
void shoal__net_close(shoal_replica *r);

/* ----------------------------------------------------------------- sync */

#include "transport.h"

/* ------------------------------------------------- partial sync (subs.c) */

typedef struct shoal__subs shoal__subs;
/* Load our subscriptions at open (r->subs); free them at close. */
int shoal__subs_load(shoal_replica *r);
void shoal__subs_free(shoal_replica *r);
/* r->subs_gen. */
uint64_t shoal__subs_gen(shoal_replica *r);
/* The host's self_subs: our set and held-document summary (r->mu taken). */
int shoal__subs_encode(shoal_replica *r, uint64_t *gen, shoal__buf *out);
/* The changes this replica holds without a sealed group its own roles
 * read (withheld by whoever sent them; table `unsealed`), in snapshot t. */
int shoal__subs_withheld(shoal_replica *r, shoal__stxn *t, uint64_t *n);
/* A peer said LEAVE; a peer sent all of our set of generation gen; a full
 * peer holds the changes of e's authors up to their seqs (its HELLO vector
 * or an ACK's entries).  Each takes r->mu. */
int shoal__subs_leave(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                      size_t idlen, unsigned reason, const uint8_t *heads, size_t nheads);
int shoal__subs_complete(shoal_replica *r, uint64_t gen);
/* A peer sent us these changes (verified): their documents are in its
 * view, so no earlier LEAVE for them holds. */
/* We came to hold the document key (a commit created it here; caller
 * holds r->mu): our peers are told (HAVE), so that one which judges it
 * differently sends what we lack of it or says LEAVE. */
void shoal__subs_note_held(shoal_replica *r, const uint8_t *key, size_t klen);
/* The host's own_acked (transport.h; takes r->mu). */
uint64_t shoal__subs_own_acked(shoal_replica *r);
/* The host's held_changes (transport.h). */
int shoal__subs_held_changes(shoal_replica *r, uint64_t *seen, shoal__buf *out, size_t *count);
int shoal__subs_acked(shoal_replica *r, const shoal__vventry *e, size_t n);
/* What full peers were seen to hold (other authors than us), sorted by
 * author (*out Owned); one author's entry (false: none).  Each takes
 * r->mu. */
int shoal__subs_vouched(shoal_replica *r, shoal__vventry **out, size_t *n);
bool shoal__subs_vouched_get(shoal_replica *r, const uint8_t author[SHOAL_KEY_BYTES],
                             shoal__vventry *out);
/* The key of the document whose holding changed as number gen (0-based,
 * below r->held_gen: evicted, or come to be held) into key
 * (SHOAL__DOCKEY_MAX bytes); SHOAL_ENOTFOUND when it is no longer
 * remembered (only the last SHOAL__HELD_RING are).  Caller holds r->mu. */
enum {
    SHOAL__HELD_RING = 1024
};
int shoal__subs_held_key(shoal_replica *r, uint64_t gen, uint8_t *key, size_t *klen);
/* Whether a change applied here may wait only for its deps (causality per
 * document): r holds subscriptions. */
static inline bool
shoal__partial(shoal_replica *r)
{
    return atomic_load(&r->subs_gen) != 0;
}

/* What one partial peer receives from us (feed.c). */
typedef struct shoal__feed shoal__feed;
/* named: we dialled the peer by its key (EP@KEY), which our operator
 * named: it receives what its subscriptions match; otherwise also only
 * what its roles read (reader.c). */
int shoal__feed_new(shoal_replica *r, const uint8_t peer[SHOAL_KEY_BYTES], bool named,
                    const shoal__wsub *subs, size_t nsubs, const shoal__wheld *held, size_t nheld,
                    shoal__feed **out);
int shoal__feed_next(shoal_replica *r, shoal__feed *f, size_t max_changes, size_t max_bytes,
                     shoal__buf *envs, shoal__feed_out *out);
/* The peer sent us these envelopes (takes r->mu): not sent back. */
void shoal__feed_received(shoal__feed *f, const uint8_t *envs, size_t len, size_t count);
/* The peer's HAVE: what it holds of these documents now (takes r->mu). */
int shoal__feed_have(shoal__feed *f, const shoal__wheld *held, size_t nheld);
uint64_t shoal__feed_docs(const shoal__feed *f);
void shoal__feed_free(shoal__feed *f);
/* Free r->feeds at close (every feed is gone by then). */
void shoal__feedhub_free(shoal_replica *r);

/* Sealed groups on the way out (core/seals.c): after the envelope of
 * change cid, append to out the disclosure records of the groups held for
 * it that are in groups (bit g for group g of its seals;
 * SHOAL__ALL_GROUPS: every group held).  Nothing for a change without
 * seals. */
#define SHOAL__ALL_GROUPS UINT64_MAX
int shoal__seals_append(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                        size_t env_len, uint64_t groups, shoal__buf *out);

/* Decode and import count verified records (shoal__recs_open) together
 * with the pending set, exactly as shoal_import does after opening its
 * bundle (bundle.c); the caller holds r->mu.  res may be NULL. */
int shoal__import_recs(shoal_replica *r, const shoal__rec *recs, size_t count,
                       shoal_import_result *res);
/* Batches of at least this many envelopes verify their signatures on
 * several threads (verify.c: the caller and the process's helper threads);
 * at most SHOAL__VERIFY_THREADS in all. */
enum {
    SHOAL__VERIFY_PARALLEL_MIN = 32,
    SHOAL__VERIFY_THREADS = 4
};
/* Open count envelopes stored back to back in p[off..n): parse each header
 * once into a record (bounds, body), verify every signature (on several
 * threads for a large batch) and compute each change id.  The result is
 * the one of opening them one after the other with shoal__envelope_open:
 * the error of the lowest-index bad envelope, then SHOAL_EPROTO if bytes
 * are left after the last one.  On success *recs (Owned by the caller;
 * NULL when count is 0) holds one record per envelope, pointing into p
 * (Borrowed: p must outlive them).  Touches no replica state. */
int shoal__recs_open(const uint8_t *p, size_t n, size_t off, size_t count, shoal__rec **recs);
/* The same for a whole bundle ("SHOALBN1", count, envelopes), its header
 * judged by shoal__bundle_header (the errors of shoal__bundle_split). */
int shoal__bundle_open(const uint8_t *p, size_t n, shoal__rec **recs, size_t *count);
/* Fill h with the protocol's view of r (host.c); r is Borrowed while h is
 * used. */
void shoal__host_init(shoal__host *h, shoal_replica *r);
/* The replica's log grew (a local commit, an import, changes applied from
 * a peer through the host): wake the network engine, if running, so its
 * links push them (core/net.c). */
void shoal__net_notify(shoal_replica *r);

/* ------------------------------------------------ query views (qview.c) */

enum {
    SHOAL__QVIEW_HDR = 8,    /* stored view: epoch (u64 BE) | view */
    SHOAL__QVIEW_VERSION = 1 /* meta "qviews": views and indexes are built */
};
/* The stored view of a live document, split: its epoch and view bytes.
 * SHOAL_ECORRUPT if too short. */
int shoal__qview_split(const uint8_t *p, size_t n, uint64_t *epoch, const uint8_t **view,
                       size_t *vlen);
/* Bring (coll, id)'s view and index entries in line with d (a write's
 * working-set document, live or not). */
int shoal__qview_update(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                        size_t idlen, const shoal__doc *d);
/* The registered indexes of coll (NULL: all), sorted by (coll, field). */
typedef struct shoal__qixent {
    uint8_t coll[SHOAL_MAX_COLLECTION];
    size_t clen;
    uint8_t field[SHOAL_MAX_FIELD];
    size_t flen;
    uint32_t ix;
} shoal__qixent;
typedef struct shoal__qixs {
    shoal__qixent *e; /* owned */
    size_t n, cap;
} shoal__qixs;
/* Append them to *out (zeroed first by the caller); free with
 * shoal__qixs_free.  SHOAL_ECORRUPT for a name over its bound. */
int shoal__qixs_load(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__qixs *out);
void shoal__qixs_free(shoal__qixs *l);
/* (Re)build index ix of (coll, field) from the views. */
int shoal__qindex_build(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                        size_t flen, uint32_t ix);
/* At open: build every view and index if meta "qviews" says they are not
 * (a directory from before views); caller holds no lock. */
int shoal__qviews_ensure(shoal_replica *r);
/* Put meta "qviews" in write t if it is not there (a directory that had
 * no document when this handle opened it). */
int shoal__qviews_mark(shoal__stxn *t);
/* Build every view and index again from the documents. */
int shoal__qviews_rebuild(shoal_replica *r);
/* Each value key of field f (one per register / counter, one per list
 * element, the long-list key for a long list); cb non-zero stops. */
typedef int (*shoal__qkeys_fn)(const uint8_t *key, size_t n, void *arg);
int shoal__qfield_keys(const shoal__qfield *f, shoal__qkeys_fn cb, void *arg);
/* A shoal_doc (one allocation; shoal_doc_free frees it) holding the fields
 * of a parsed view f[0..n) that keep (NULL: all) accepts.  SHOAL_EINVAL if
 * a kept field is a long list (parse a full view first). */
int shoal__doc_from_view(const shoal__qfield *f, size_t n, uint64_t epoch,
                         bool (*keep)(const shoal__qfield *f, void *arg), void *arg,
                         shoal_doc **out);

/* An empty string list / append a copy of p[0..n) (read.c). */
int shoal__strlist_new(shoal_strlist **out);
int shoal__strlist_add(shoal_strlist *l, const void *p, size_t n);

/* ----------------------------------------------------- queries (query.c) */

/* Scratch of judging documents: the parsed view (growable), the view
 * bytes it was parsed from (vp: the stored view, or full when a long list
 * had to be read from the document), its epoch and the document as the
 * evaluator sees it. */
typedef struct shoal__qscratch {
    shoal__qfield *f;
    size_t cap, n;
    uint64_t epoch;
    bool long_list; /* f holds a long list left out of the view */
    shoal__qdoc doc;
    const uint8_t *vp;
    size_t vlen;
    shoal__buf full;
} shoal__qscratch;
void shoal__qscratch_free(shoal__qscratch *s);
/* Judge the document (coll, id) whose stored view is stored: *match, and
 * s describes it.  q NULL matches every live document.  full: a matching
 * document must come with every list item (its full view is read when the
 * stored one left a list out).  Errors: the read errors. */
int shoal__query_judge(shoal_replica *r, shoal__stxn *t, const shoal__query *q, const char *coll,
                       size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *stored,
                       shoal__qscratch *s, bool full, bool *match);

/* What a key may read of this replica (reader.c, docs/permissions.md
 * "Reading"): everything (open mode, or the root), or what the roles of
 * its newest certificate, valid now by the wall clock, read under the
 * newest policy; nothing but `_auth` without one.  Loaded in a snapshot,
 * kept until r->auth_gen moves or the certificate's validity ends. */
struct shoal__reader {
    bool loaded;
    uint64_t gen;       /* r->auth_gen when loaded */
    uint64_t until_ms;  /* wall clock past which it is loaded again */
    bool all;           /* reads every document */
    bool full;          /* may be a full replica (all, or its roles read everything) */
    shoal__policy *pol; /* owned; NULL: none (then it reads nothing) */
    shoal__cert cert;   /* valid when has_cert; points into certbytes */
    bool has_cert;
    shoal__buf certbytes;
    char roles[160]; /* "clerk, manager" for messages */
};
typedef struct shoal__reader shoal__reader;
void shoal__reader_init(shoal__reader *rd);
/* What decides rd's answers (its policy's and certificate's bytes),
 * appended to out: equal bytes, equal answers. */
int shoal__reader_sig(const shoal__reader *rd, shoal__buf *out);
void shoal__reader_free(shoal__reader *rd);
/* Load rd for key in snapshot t unless it is current. */
int shoal__reader_fresh(shoal__reader *rd, shoal_replica *r, shoal__stxn *t,
                        const uint8_t key[SHOAL_KEY_BYTES]);
/* Whether rd reads the document d of coll: 1, 0, or SHOAL__Q_NEEDLIST
 * (d left out a long guard list). */
int shoal__reader_match(const shoal__reader *rd, const uint8_t *coll, size_t clen,
                        const shoal__qdoc *d);
/* Whether rd reads the document (coll, id) whose stored query view is
 * *stored (shoal__stxn_qview_get), judged in scratch s, which holds the
 * parsed view after; parsed: s holds it already (shoal__query_judge just
 * ran on it), so it is not parsed again. */
int shoal__reader_reads(const shoal__reader *rd, shoal_replica *r, shoal__stxn *t,
                        const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                        const shoal__sval *stored, shoal__qscratch *s, bool parsed, bool *out);
/* The sealed groups of the change in env that rd may read (bit g for
 * group g of its seals; every bit for a change without seals, or when rd
 * reads everything): those whose every op writes a field that a rule of
 * rd reading the change's document, as it stands in t, reads
 * (docs/permissions.md "Sealed fields"; the group's ops are found with the
 * classes of the policy the change names, decoded into *k).  s is scratch. */
int shoal__reader_groups(const shoal__reader *rd, shoal_replica *r, shoal__stxn *t,
                         struct shoal__authz_cache **k, shoal__qscratch *s, const uint8_t *env,
                         size_t env_len, uint64_t *groups);
/* Compile (coll, text) without a replica (text empty: every document);
 * msg receives the parser's message. */
int shoal__query_compile(const char *coll, size_t clen, const char *text, size_t tlen,
                         shoal_query **out, char *msg, size_t msglen);
/* SHOAL_EINVAL unless every parameter of q is bound. */
int shoal__query_check_bound(const shoal_query *q);
/* Parameter i's bound value (Borrowed from q). */
int shoal__query_param_value(const shoal_query *q, size_t i, shoal_value *out);
/* q's predicate text ("TRUE" when none), Borrowed from q. */
void shoal__query_text(const shoal_query *q, const char **text, size_t *tlen);
/* No sort, limit, offset or field list. */
bool shoal__query_plain(const shoal_query *q);
/* q's parameters as canonical MessagePack, [[name, value] ...] (unbound
 * ones as nil), and binding them back (SHOAL_EINVAL for a name q lacks,
 * SHOAL_EPROTO for bytes that are not such an array). */
int shoal__query_params_encode(const shoal_query *q, shoal__buf *out);
int shoal__query_params_decode(shoal_query *q, const uint8_t *p, size_t n);
/* A copy of q (text compiled again, parameters bound again). */
int shoal__query_copy(const shoal_query *q, shoal_query **out);
/* q's compiled predicate and collection (Borrowed from q). */
const shoal__query *shoal__query_of(const shoal_query *q, const char **coll, size_t *clen);
/* SHOAL_EINVAL (message in r naming the parameter) unless every parameter
 * of q is bound; caller holds r->mu. */
int shoal__query_check(shoal_replica *r, const shoal_query *q);

/* Every live document of q's collection that q matches, in _id order, in
 * snapshot t: cb(id, s) with s describing it (its full view); cb non-zero
 * stops and is returned. */
int shoal__query_each(shoal_replica *r, shoal__stxn *t, const shoal_query *q,
                      int (*cb)(const uint8_t *id, size_t idlen, shoal__qscratch *s, void *arg),
                      void *arg);

/* ------------------------------------------------- live queries (live.c) */

struct shoal__livehub;
/* A write of this handle touched (coll, id) (shoal__wset_commit). */
void shoal__live_touch(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                       size_t idlen);
/* After a committed write: bring the live queries up to date. */
void shoal__live_after_write(shoal_replica *r);
/* Free the hub (no live query may be open); NULL hub is a no-op. */
void shoal__live_free(shoal_replica *r);

/* ------------------------------------------------------ policy (policy.c) */

/* Compile a policy written as JSON (docs/permissions.md, "Policy file")
 * into its canonical encoding, appended to out, with the given version and
 * previous policy id (NULL: none).  SHOAL_EINVAL with one line in err
 * naming the key or rule at fault; the rules of shoal__policy_decode are
 * checked on the result.  out is left as it was on error. */
int shoal__policy_from_json(const char *text, size_t len, uint64_t version, const uint8_t *prev,
                            shoal__buf *out, char *err, size_t errlen);

#endif /* SHOAL_CORE_CORE_H */
