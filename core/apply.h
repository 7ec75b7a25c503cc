/*
 * core/apply.h - the causal apply pipeline: the rules that make replicas
 * converge, as a module without I/O.
 *
 * The pipeline takes verified envelopes (their signatures were checked
 * before, see core/verify.c), decodes each once into a candidate, and
 * resolves every candidate, together with the stored pending set, as
 * applied, duplicate, another version of an (author, seq) (equivocation),
 * or pending.  Like transport/session.c it does no I/O, reads no clock
 * (the wall time comes in as a field) and starts no thread: everything it
 * keeps or reads goes through one narrow interface, shoal__apply_store,
 * which a storage backend implements.  Implementations:
 *   core/apply_lmdb.c  the replica's LMDB store (core/write.c runs it);
 *   core/apply_mem.c   an in-memory store, for tests and fuzzing;
 * a PostgreSQL-backed hub will be the third.
 *
 * ----------------------------------------------------------- the contract
 *
 * A store holds five things: the applied changes (envelope by change id,
 * change id by (author, seq)), the pending set (envelopes by change id),
 * the evidence of equivocation (envelopes by (author, seq, change id),
 * plus every version id seen mapped to its (author, seq): "aliases"), and
 * the state of every document (a shoal__doc, with whatever the store keeps
 * beside it: heads, a log, snapshots).
 *
 * Every call below happens inside one transaction of the store, which the
 * caller opened and will either commit (the drain returned SHOAL_OK) or
 * roll back whole (any error): a store must then forget every call made
 * in it, document states included.  The pipeline never reads what it has
 * not written in the same transaction inconsistently: a read after a
 * write in the same transaction sees the write.
 *
 * Errors: SHOAL_OK, SHOAL_ENOTFOUND where said, SHOAL_ENOMEM, or any other
 * shoal_err (storage failure), which the pipeline returns as it came.
 * Byte values handed out (get, pending_scan) are Borrowed until the next
 * call on the store; the pipeline copies what it keeps.  Ids, authors and
 * envelopes handed in are Borrowed for the call: copy them.
 *
 * Applied changes
 *   has(cid)                  true if cid is applied.
 *   get(cid, env)             its envelope; SHOAL_ENOTFOUND if not applied.
 *   authseq(author, seq, cid) the id applied under (author, seq);
 *                             SHOAL_ENOTFOUND if none.  Applied seqs of an
 *                             author are 1..n, no gap (the pipeline
 *                             applies seq only after seq - 1), except on a
 *                             partial replica (per_doc below).
 * Pending set
 *   pending_count()           entries; pending_has(cid);
 *   pending_scan(cb, arg)     every entry (cb non-zero stops; the store
 *                             must not be called from cb); any order;
 *   pending_put(cid, env)     add (or replace); pending_del(cid) remove
 *                             (the pipeline removes only entries it has
 *                             seen in the set in this transaction).
 * Evidence
 *   ev_find(cid, author, seq) the (author, seq) cid is a version of, from
 *                             the aliases (author and seq may be NULL);
 *                             SHOAL_ENOTFOUND if never seen as one.
 *   ev_versions(author, seq, cids, max, n)
 *                             ids with an envelope kept for (author, seq),
 *                             ascending (memcmp): the first max into cids,
 *                             their number in *n.
 *   ev_count(), ev_ids()      envelopes kept; aliases kept (the pipeline
 *                             enforces SHOAL__EVIDENCE_MAX / _IDS with them).
 *   ev_put(author, seq, cid, env)  keep an envelope (and its alias).
 *   ev_del(author, seq, cid)  drop an envelope; its alias stays.
 *   ev_alias(author, seq, cid)     record the alias only.
 * Documents
 *   doc(c, &h, &d)            the state of change c's document (coll, doc
 *                             fields of c) for this transaction: *d is
 *                             the document, owned by the store, which the
 *                             pipeline changes in place (shoal__doc_apply);
 *                             *h an opaque handle for the put that follows.
 *                             A document the store lacks starts empty
 *                             (shoal__doc_new).  SHOAL_EINVAL for a name
 *                             out of bounds.
 *   put(h, rec, c, deps)      change rec (decoded as c, already applied to
 *                             h's document) is applied: keep it (has, get,
 *                             authseq find it from now on) and record it in
 *                             the document's history; deps are c's deps
 *                             mapped to applied ids (shoal__apply_dep), for
 *                             the document's heads.
 *   supersede(old, oc, rec, c)
 *                             equivocation: applied version old (decoded as
 *                             oc) stops counting as applied and rec
 *                             (decoded as c, same (author, seq), smaller id)
 *                             takes its place; then the state of c's
 *                             document and of oc's (when another) is rebuilt
 *                             from scratch from their applied changes, in
 *                             the order of application but each change after
 *                             the changes its deps name (mapped through
 *                             shoal__apply_dep) that lie in the same
 *                             document, a pass at a time; a pass that makes
 *                             no progress (a cycle only dishonest authors
 *                             make) takes the rest in application order.
 *                             Every store must rebuild in exactly this order:
 *                             the state is the same whatever store holds it.
 *                             A change that fails to apply in the rebuild:
 *                             SHOAL_ECORRUPT.  SHOAL_EINVAL (c's name out of
 *                             bounds) is taken as SHOAL_EPROTO.
 */
#ifndef SHOAL_CORE_APPLY_H
#define SHOAL_CORE_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt.h"
#include "shoal.h"

enum {
    SHOAL__AUTHZ_CACHE_MAX = 4096, /* decoded _auth objects a replica keeps */
    SHOAL__PENDING_MAX = 100000,   /* changes in the pending set */
    SHOAL__EVIDENCE_MAX = 65536,   /* evidence envelopes kept (docs/c-api.md) */
    SHOAL__EVIDENCE_IDS = 262144,  /* version ids kept for dependency mapping */
};

/* Called for each pending entry; non-zero stops the scan. */
typedef int (*shoal__apply_pending_fn)(const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                                       size_t len, void *arg);

/* One envelope that travels down the pipeline: parsed once (bounds, body),
 * its id computed once.  The author is the envelope's (env + 1). */
/* A sealed group that came with an envelope (a disclosure), its bytes
 * checked against the commitment g of the envelope's seals. */
typedef shoal__disc_view shoal__disc;

typedef struct shoal__rec {
    const uint8_t *env; /* the envelope's bytes, Borrowed (or a candidate's copy) */
    size_t env_len;
    const uint8_t *body; /* into env */
    size_t body_len;
    uint8_t cid[SHOAL__ID_BYTES];
    /* Its disclosures, Borrowed like env; the drain holds them (seal_put)
     * whatever becomes of the change. */
    const shoal__disc *disc;
    size_t ndisc;
} shoal__rec;

typedef struct shoal__apply_store {
    void *ctx;
    /* applied changes */
    bool (*has)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES]);
    int (*get)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t **env, size_t *len);
    int (*authseq)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                   uint8_t cid[SHOAL__ID_BYTES]);
    /* pending set */
    uint64_t (*pending_count)(void *ctx);
    bool (*pending_has)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES]);
    int (*pending_scan)(void *ctx, shoal__apply_pending_fn cb, void *arg);
    int (*pending_put)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                       size_t len);
    int (*pending_del)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES]);
    /* evidence */
    int (*ev_find)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t author[SHOAL_KEY_BYTES],
                   uint64_t *seq);
    int (*ev_versions)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                       uint8_t *cids, size_t max, size_t *n);
    uint64_t (*ev_count)(void *ctx);
    uint64_t (*ev_ids)(void *ctx);
    int (*ev_put)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                  const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len);
    int (*ev_del)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                  const uint8_t cid[SHOAL__ID_BYTES]);
    int (*ev_alias)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                    const uint8_t cid[SHOAL__ID_BYTES]);
    /* The envelope kept as evidence for version cid of (author, seq)
     * (Borrowed until the next store call); SHOAL_ENOTFOUND when only its
     * id is known.  NULL: never kept. */
    int (*ev_get)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                  const uint8_t cid[SHOAL__ID_BYTES], const uint8_t **env, size_t *len);
    /* documents */
    int (*doc)(void *ctx, const shoal__change *c, void **h, shoal__doc **d);
    int (*put)(void *ctx, void *h, const shoal__rec *rec, const shoal__change *c,
               const uint8_t *deps);
    int (*supersede)(void *ctx, const uint8_t old[SHOAL__ID_BYTES], const shoal__change *oc,
                     const shoal__rec *rec, const shoal__change *c);
    /* Per-document causality (per_doc below): whether a new change that
     * lacks a dependency waits in the pending set; NULL: always.  A
     * partial replica keeps none for a document it does not hold (a sender
     * that thinks it holds it sent it; the sender is told otherwise and
     * sends the document whole if it is in view). */
    bool (*may_wait)(void *ctx, const shoal__change *c);
    /* Permissions (docs/permissions.md), called only when the drain has a
     * root (shoal__apply.root):
     *   rejected(cid)        true if cid is held as REJECTed;
     *   put_rejected(rec, c) hold rec (decoded as c) as REJECTed: has,
     *                        get and authseq find it (it takes its author's
     *                        seq), rejected says so, and it never touches
     *                        its document (state, heads, history);
     *   doc_at(c, out)       the state of c's document over the closure of
     *                        c's deps (shoal__apply_doc_at), Caller owns
     *                        *out; NULL when they reach none of its changes. */
    bool (*rejected)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES]);
    int (*put_rejected)(void *ctx, const shoal__rec *rec, const shoal__change *c);
    int (*doc_at)(void *ctx, const shoal__change *c, const shoal__doc **out, bool *owned);
    /* Revocation cuts (docs/permissions.md, "Revoking a device"), with a
     * root; NULL: none.
     *   cut(author, &cut)  the smallest cut of author's admitted
     *                      revocations and equivocation proofs in this
     *                      transaction; SHOAL_ENOTFOUND: none.  A change of
     *                      author past it applies VOID (shoal__apply_void,
     *                      shoal__doc_apply_void); verdicts never look at it
     *                      (doc_at ignores it);
     *   revoked(target)    an admitted revocation of target was just
     *                      applied: every document target changed past
     *                      the cut is rebuilt with those changes VOID. */
    int (*cut)(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *cut);
    int (*revoked)(void *ctx, const uint8_t target[SHOAL_KEY_BYTES]);
    /* Sealed groups (docs/permissions.md "Sealed fields"); NULL: none held.
     *   seal_get(cid, g, p, n)   the bytes of group g of change cid
     *                            (Borrowed until the next store call);
     *                            SHOAL_ENOTFOUND if not held;
     *   seal_put(cid, g, p, n, fresh)
     *                            hold them (checked against the change's
     *                            commitment before); *fresh: they were not
     *                            held before;
     *   disclosed(cid, c)        a group of applied change cid (decoded
     *                            as c) arrived after it was applied:
     *                            rebuild c's document;
     *   unsealed(cid, c)         a full replica (not per_doc) applied
     *                            cid, which has seals: note whether a
     *                            group of it is missing (a full replica
     *                            asks its peers for it again, host.c). */
    int (*seal_get)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, const uint8_t **p,
                    size_t *n);
    int (*seal_put)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, const uint8_t *p,
                    size_t n, bool *fresh);
    int (*disclosed)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const shoal__change *c);
    int (*unsealed)(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const shoal__change *c);
} shoal__apply_store;

/* The objects of `_auth` a drain has decoded (core/authz.c). */
typedef struct shoal__authz_cache shoal__authz_cache;
int shoal__authz_cache_new(shoal__authz_cache **out);
void shoal__authz_cache_free(shoal__authz_cache *k);
/* Forget everything when k holds more than max objects.  Entries are keyed
 * by change id, so they never go stale: a cache may outlive transactions,
 * rolled back ones included. */
void shoal__authz_cache_trim(shoal__authz_cache *k, size_t max);
/* The write check of change c against what s holds: the objects c's auth
 * item names (and, for an `_auth` change, the admin chain behind them),
 * whether c depends on a rejected change, and c's document at its deps.
 * SHOAL_OK with the verdict in *out, or a store error. */
/* A writer that changed c's document in place gives the check the
 * document before c (and after it) instead of the store's doc_at. */
typedef struct shoal__authz_hint {
    shoal__authz_state pre;
    const uint8_t *post_view;
    size_t post_view_len;
} shoal__authz_hint;
int shoal__authz_judge(const shoal__apply_store *s, shoal__authz_cache *k, const uint8_t *root,
                       const shoal__change *c, const shoal__authz_hint *hint,
                       shoal__authz_out *out);
/* The policy written by held change cid, decoded (Borrowed from k);
 * SHOAL_ENOTFOUND if it carries none. */
int shoal__authz_policy(const shoal__apply_store *s, shoal__authz_cache *k,
                        const uint8_t cid[SHOAL__ID_BYTES], const shoal__policy **out);

/* Fill in the sealed ops of change cid (decoded as c) from the groups s
 * holds for it (seal_get), read with the read classes of the policy c
 * names; the bytes are copied into c->extra.  A group not held, or held
 * but not fitting (shoal__change_disclose's EPROTO), leaves its ops
 * REDACTED; so does a policy not held.  Errors: the store's, SHOAL_ENOMEM. */
int shoal__apply_disclose(const shoal__apply_store *s, shoal__authz_cache **k,
                          const uint8_t cid[SHOAL__ID_BYTES], shoal__change *c);

/* Whether c applies VOID (docs/permissions.md, "Revoking a device"): its
 * author is cut below its seq (s->cut), or an authority object it names
 * (its certificate, policy or grant) is itself VOID, transitively: a
 * revoked admin's certificates, grants and policies past its cut, and what
 * names them.  Revocations and equivocation proofs are never VOID (cuts
 * only grow).  cache (cid -> 1 not VOID, 2 VOID) spares repeated walks;
 * clear it when a cut changes.  Verdicts never look at this.  Errors: the
 * store's, SHOAL_ENOMEM. */
int shoal__apply_void(const shoal__apply_store *s, shoal__map *cache, const shoal__change *c,
                      bool *v);

/* A candidate: one envelope decoded for the pipeline (apply.c). */
typedef struct shoal__cand shoal__cand;

/* One drain: inputs set by the caller, outputs set by shoal__apply_drain. */
typedef struct shoal__apply {
    const shoal__apply_store *s;
    /* in */
    uint64_t wall;         /* wall ms ("now"): held-back changes compare with it */
    uint64_t max_drift_ms; /* how far ahead of wall a change's HLC may be */
    const uint8_t *skip;   /* ids of pending changes to drop (nskip x 32) */
    bool per_doc;          /* a partial replica: a change waits for its deps
                              only, not its author's previous seq (which may
                              be on a document outside its view) */
    size_t nskip;
    /* Permissions: the root key a replica trusts (32 bytes); NULL: open
     * mode, no write check.  With a root every change is judged
     * (shoal__authz_judge) once it is otherwise ready: PEND waits, REJECT
     * is held without effect (put_rejected), ADMIT applies. */
    const uint8_t *root;
    /* in and out */
    uint64_t clock; /* HLC: observes every applied change's */
    /* out */
    shoal_import_result res;      /* counts for the new candidates (not reset) */
    uint64_t due_ms;              /* earliest wall ms a held-back change is due */
    bool ev_new;                  /* evidence was stored or dropped */
    uint64_t rejected;            /* changes held as REJECTed (with a root) */
    shoal__authz_cache *authz;    /* decoded _auth objects; the drain's own, freed at its end, */
    bool authz_shared;            /* unless shared: the caller's, kept (trimmed) */
    shoal__map voids;             /* the drain's shoal__apply_void cache */
    bool bad_pending;             /* a stored pending change failed to apply: */
    uint8_t bad[SHOAL__ID_BYTES]; /* its id (skip it and run again) */
} shoal__apply;

/* Decode count records into *out (Owned; free with shoal__cands_free; NULL
 * when count is 0).  SHOAL_EPROTO also for a change that decodes but that
 * shoal__doc_apply refuses whatever the document holds (shoal__doc_refusal).
 * On such an error, *at is the index of the record that failed (SIZE_MAX
 * for an allocation failure). */
int shoal__cands_make(const shoal__rec *recs, size_t count, shoal__cand **out, size_t *at);
void shoal__cands_free(shoal__cand *c, size_t count);

/* Apply the ready ones of cands (n new candidates, may be 0) and of the
 * pending set, in causal order, until no progress; the rest go to (or
 * stay in) the pending set.  SHOAL_EPROTO: a change failed to apply (if it
 * was a stored pending one, a->bad_pending is set); SHOAL_ETOOBIG: the
 * pending set would exceed SHOAL__PENDING_MAX.  On any error the caller
 * rolls the store's transaction back. */
int shoal__apply_drain(shoal__apply *a, shoal__cand *cands, size_t n);

/* Rebuilding a document from its live changes, the order of the
 * "supersede" contract above: both stores (core/docstore.c over LMDB,
 * core/apply_mem.c) list the live changes in log order and hand the list
 * to shoal__apply_rebuild. */
typedef struct shoal__rent {
    uint64_t at;                  /* where the store finds its envelope */
    uint8_t cid[SHOAL__ID_BYTES]; /* its applied id */
    size_t *dep;                  /* indexes (into the list) of its mapped deps, owned */
    size_t ndep;
    bool done;   /* replayed */
    bool voided; /* apply it VOID (shoal__doc_apply_void): its author is revoked below it */
} shoal__rent;
/* Decode the change of e into c (shoal__change_stored's errors). */
typedef int (*shoal__rent_load_fn)(void *ctx, const shoal__rent *e, shoal__change *c);
/* Replay the n changes of e into a new document: passes in log order,
 * each change once its deps are in (the log is causal but for swapped-in
 * versions, so this ends in a pass or two); a pass without progress (a
 * dependency cycle only dishonest authors can make) takes the rest in log
 * order.  On success *doc (Caller owns) is the state and *heads (Caller
 * owns, free with shoal__free) the nheads ids of the changes no other
 * replayed change depends on, sorted.  Errors: load's, SHOAL_ENOMEM,
 * SHOAL_ECORRUPT (a change that does not apply). */
int shoal__apply_replay(shoal__rent *e, size_t n, shoal__rent_load_fn load, void *ctx,
                        shoal__doc **doc, uint8_t **heads, size_t *nheads);
/* Map each change's deps through s (shoal__apply_dep) to the changes of e
 * they name (the dep arrays, allocated and freed here), then
 * shoal__apply_replay.  e[i].at and e[i].cid are the caller's; the cids are
 * unique.  Same results and errors as the replay. */
int shoal__apply_rebuild(const shoal__apply_store *s, shoal__rent *e, size_t n,
                         shoal__rent_load_fn load, void *ctx, shoal__doc **doc, uint8_t **heads,
                         size_t *nheads);
/* The state of a document over the closure of a set of deps: of its n
 * live changes e (in log order, as for shoal__apply_rebuild), those the
 * deps name (mapped through s, shoal__apply_dep) and every one they reach
 * through deps, replayed as shoal__apply_replay does.  *doc (Caller owns)
 * is NULL when the deps reach none of them (the document did not exist in
 * that past).  This is the state a change with those deps was made on,
 * whatever has been applied since: the same on every replica that holds
 * the change.  Errors as for the rebuild. */
int shoal__apply_doc_at(const shoal__apply_store *s, shoal__rent *e, size_t n,
                        shoal__rent_load_fn load, void *ctx, const uint8_t *deps, size_t ndeps,
                        shoal__doc **doc);
/* A document's heads after applying the change cid with deps (ndeps ids):
 * heads minus deps plus cid, kept sorted, into *out (Caller owns, free
 * with shoal__free; *nout ids).  The input is not changed.  SHOAL_ENOMEM. */
int shoal__heads_advance(const uint8_t *heads, size_t nheads, const uint8_t *deps, size_t ndeps,
                         const uint8_t cid[SHOAL__ID_BYTES], uint8_t **out, size_t *nout);
/* Decode a stored envelope's change into c (its author from the header):
 * SHOAL_ENOMEM, or SHOAL_ECORRUPT for any other failure. */
int shoal__change_stored(const uint8_t *env, size_t len, shoal__change *c);

/* Whether dep counts as applied: it is, or it is an alias of an (author,
 * seq) whose canonical version is applied; *out (may be NULL) receives
 * the applied id.  SHOAL_ENOTFOUND otherwise. */
int shoal__apply_dep(const shoal__apply_store *s, const uint8_t dep[SHOAL__ID_BYTES],
                     uint8_t out[SHOAL__ID_BYTES]);

/* Add a->bad to the skip list *skip (nskip ids, Owned by the caller) and
 * clear a->bad_pending. */
int shoal__apply_skip_bad(shoal__apply *a, uint8_t **skip, size_t *nskip);

#endif /* SHOAL_CORE_APPLY_H */
