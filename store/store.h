/*
 * store/store.h - the one interface header of the store module: the LMDB
 * layout of a replica directory.  The only module that includes <lmdb.h>;
 * no MDB_* value or type leaves it.
 *
 * A replica directory holds:
 *   data.mdb, lock.mdb   one LMDB environment (never MDB_WRITEMAP)
 *   identity             the Ed25519 secret key (64 bytes), mode 0600: not
 *                        the store's (core/identity.c)
 *
 * Tables (LMDB named databases; keys compare bytewise; format 2):
 *   meta      short name -> value ("clock", "ixnext", "lognext", ...)
 *   log       position (u64 BE, from 1) -> cid (32) | author (32) |
 *             seq (u64 BE) | link (u64 BE) | [doc meta, when bit 63 of
 *             link is set: klen (u16 BE) | coll NUL id | mlen (u32 BE) |
 *             meta] | envelope; apply order
 *             (causal), append-only but for log_drop (a local eviction);
 *             link is the caller's (core/: the
 *             position of the previous change of the same document)
 *   changes   change id (32) -> log position (u64 BE)
 *   authseq   author (32) | seq (u64 BE) -> change id (32)
 *   pending   change id (32) -> envelope bytes (verified, not yet applied)
 *   evidence  author (32) | seq (u64 BE) | change id (32) -> envelope
 *   docs      coll NUL id -> document meta (opaque to the store; lags the
 *             log: a log entry may carry its document's meta, see doc_put)
 *   docsnap   coll NUL id -> document snapshot (opaque to the store)
 *   peers     peer key (32) -> peer state (opaque to the store)
 *   evcid     change id (32) -> author (32) | seq (u64 BE): every version
 *             of an equivocated (author, seq) seen, with or without its
 *             envelope in evidence (dependency mapping, docs/c-api.md)
 *   qview     coll NUL id -> query view of a live document (opaque to the
 *             store; core/ keeps it in the transaction of every change)
 *   qixreg    coll NUL field -> index number (u32 BE), from meta "qixnext"
 *   evicted   coll NUL id -> one byte (1): a document this replica evicted
 *   seals     change id (32) | group index (1) -> a sealed group's bytes
 *             (the disclosures this replica holds; removed with their
 *             change by a local eviction)
 *   rejected  change id -> one byte (1): a change the write check rejected
 *             (partial sync: it left its view), so that it can tell the
 *             peers it serves that it left theirs; written by core/subs.c,
 *             never removed (a document held again is judged by its state)
 *   qindex    index number (u32 BE) | value key | id -> value key length
 *             (u16 BE): one entry per value of the field (per element of
 *             a list), see shoal__qkey
 *
 * A log entry whose change was superseded (an equivocation resolved
 * against it) keeps its position and link but has bit 62 of the link set:
 * it names no applied change from then on (no index entry, not in the
 * tail's lookups, the version vector or shoal__stxn_log_scan), see
 * shoal__stxn_change_supersede.
 *
 * The two indexes (changes, authseq) lag the log: log entries from meta
 * "ixnext" (u64 BE, absent = 1) on, fewer than 256, are the tail, which
 * every lookup below also searches; the commit that makes the tail 256
 * entries long moves it into the indexes.  So a commit of one change
 * writes the log's last leaf, not a leaf of each index.  The version
 * vector is derived: an author's entry is its greatest seq in authseq or
 * the tail.  A directory of format 1 (with a "vv" table) is refused.
 *
 * A local eviction (log_drop) leaves holes in the log positions, all below
 * "ixnext"; meta "lognext" (u64 BE), written by every drop, keeps the next
 * position past every position ever handed out (evict.c).
 *
 * Values returned as shoal__sval are Borrowed until the end of the
 * transaction (they point into the LMDB map): copy them out.
 * Errors: shoal_err values (SHOAL_ENOSPC for a full disk, SHOAL_ECORRUPT for
 * a damaged file, SHOAL_EREADONLY for a directory we cannot write,
 * SHOAL_ENOTFOUND for a missing key, SHOAL_ESTORE otherwise).
 */
#ifndef SHOAL_STORE_STORE_H
#define SHOAL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt.h"

typedef struct shoal__store shoal__store;
typedef struct shoal__stxn shoal__stxn;

typedef struct shoal__sval {
    const uint8_t *p;
    size_t len;
} shoal__sval;

typedef struct shoal__store_opts {
    bool durable;      /* fsync every commit (default true) */
    uint64_t map_size; /* initial map size; 0 = default (64 MiB) */
} shoal__store_opts;

/* Open (creating dir, mode 0700, and the environment if missing).  On
 * error errbuf holds a one-line explanation. */
int shoal__store_open(shoal__store **out, const char *dir, const shoal__store_opts *o, char *errbuf,
                      size_t errlen);
void shoal__store_close(shoal__store *s); /* syncs first; NULL is a no-op */
/* Run fn(arg) holding LMDB's writer lock of the directory (it serialises
 * with every writer of every process); fn must not use s.  Returns fn's
 * result, or the error of taking the lock (text in shoal__store_errmsg).
 * core/ creates the identity file under it, so that two processes opening
 * a fresh directory at once end up with one identity. */
int shoal__store_exclusive(shoal__store *s, int (*fn)(void *arg), void *arg);
/* fsync everything committed so far. */
int shoal__store_flush(shoal__store *s);
/* Make data.mdb at least as long as its last page: a transaction that
 * freed pages it had allocated leaves them unwritten past the end of the
 * file (LMDB reads no free page), but the open-time check of the meta
 * pages (walk.c) wants every page up to the last inside the file.  Called
 * after evictions, which free many pages at once; extends with zeros and
 * fsyncs. */
int shoal__store_fit(shoal__store *s);
/* Durable store: while relaxed, commits write LMDB's meta page without
 * syncing it (MDB_NOMETASYNC for those commits only).  Still atomic and
 * consistent, and a process crash loses nothing; an OS crash may undo the
 * last such commits.  The caller holds the replica lock from on to off
 * (every write runs under it) and calls shoal__store_flush before it tells
 * anyone that those commits are held.  No effect on a non-durable store. */
void shoal__store_relax(shoal__store *s, bool on);
/* What shoal__store_verify walked: data.mdb's size, LMDB's page size, the
 * snapshot's txn id and last page, the pages in use by every tree (LMDB's
 * free list and catalog included), the pages on the free list, and the
 * entries of the tables. */
typedef struct shoal__store_check {
    uint64_t file_bytes, page_size, txnid, last_page, branch_pages, leaf_pages, overflow_pages,
        free_pages, entries;
} shoal__store_check;
/* Check every page of the current snapshot of data.mdb as the open does
 * (docs/storage.md, "Damaged files"), inside a read txn; st (may be NULL)
 * receives the figures.  SHOAL_ECORRUPT with the first problem in
 * shoal__store_errmsg ("data.mdb is damaged: page 123: ..."); also
 * SHOAL_ENOMEM, SHOAL_ESTORE (an I/O error), the read errors. */
int shoal__store_verify(shoal__store *s, shoal__store_check *st);
/* Text of the last LMDB/system error seen on s (for errmsg). */
const char *shoal__store_errmsg(const shoal__store *s);

/* Run fn inside one write transaction; commit if it returns SHOAL_OK, else
 * abort and return its error.  If the map fills up, abort, grow the map and
 * run fn again from scratch: fn must have no effect outside the txn.
 * Durable (fsynced) on return when the store is durable. */
typedef int (*shoal__txn_fn)(shoal__stxn *t, void *arg);
int shoal__store_write(shoal__store *s, shoal__txn_fn fn, void *arg);
/* Run fn inside one read transaction (MVCC snapshot; never blocks writers). */
int shoal__store_read(shoal__store *s, shoal__txn_fn fn, void *arg);

/* meta */
int shoal__stxn_meta_get(shoal__stxn *t, const char *name, shoal__sval *out);
int shoal__stxn_meta_put(shoal__stxn *t, const char *name, const void *v, size_t n);

/* changes (applied) and the log.  change_put appends the change to the log
 * (its position returned in *pos); the indexes follow (see above). */
int shoal__stxn_change_get(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], shoal__sval *env);
bool shoal__stxn_change_has(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
int shoal__stxn_change_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                           size_t len, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                           uint64_t link, uint64_t *pos);
int shoal__stxn_authseq_get(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                            uint8_t cid[SHOAL__ID_BYTES]);
/* Walk the log from position from (inclusive) in order; cb non-zero stops. */
typedef int (*shoal__log_fn)(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES],
                             const shoal__sval *env, void *arg);
int shoal__stxn_log_scan(shoal__stxn *t, uint64_t from, shoal__log_fn cb, void *arg);
uint64_t shoal__stxn_log_count(shoal__stxn *t);
/* The envelope (and link) at log position pos, or at the last one (*pos
 * set); SHOAL_ENOTFOUND when there is none.  env, link, pos may be NULL. */
int shoal__stxn_log_get(shoal__stxn *t, uint64_t pos, shoal__sval *env, uint64_t *link);
int shoal__stxn_log_last(shoal__stxn *t, uint64_t *pos, shoal__sval *env);
/* log_get, and also whether the entry was superseded (*dead) and its
 * change id; every out-parameter may be NULL.  log_get and log_last return
 * superseded entries too (document chains run through them); log_scan
 * skips them. */
int shoal__stxn_log_entry(shoal__stxn *t, uint64_t pos, shoal__sval *env, uint64_t *link,
                          bool *dead, uint8_t cid[SHOAL__ID_BYTES]);
/* The whole log as stored, superseded entries included, for the
 * verification of a replica (core/check.c): every entry in position order,
 * taken apart (Borrowed until the end of the transaction).  An entry whose
 * value does not parse has bad set and only pos filled in; the walk goes
 * on.  cb non-zero stops. */
typedef struct shoal__log_rec {
    uint64_t pos;
    bool bad;              /* key or value malformed */
    const uint8_t *cid;    /* the stored change id (32) */
    const uint8_t *author; /* the stored author (32) */
    uint64_t seq;          /* the stored seq */
    uint64_t link;         /* flags removed */
    bool dead;             /* superseded */
    const uint8_t *dockey; /* a document meta's key, or NULL */
    size_t klen;
    shoal__sval meta; /* that meta */
    shoal__sval env;  /* the envelope */
} shoal__log_rec;
typedef int (*shoal__log_rec_fn)(const shoal__log_rec *e, void *arg);
int shoal__stxn_log_walk(shoal__stxn *t, shoal__log_rec_fn cb, void *arg);
/* The first log position the indexes do not hold (meta "ixnext"). */
int shoal__stxn_index_next(shoal__stxn *t, uint64_t *ixnext);
/* The raw entries of one index (authseq false: changes, cid -> pos; true:
 * authseq, (author, seq) -> cid), the tail not merged in, key order.  An
 * entry of the wrong size has bad set and nothing else.  cb non-zero
 * stops. */
typedef struct shoal__ix_rec {
    bool bad;
    uint8_t cid[SHOAL__ID_BYTES];
    uint8_t author[SHOAL_KEY_BYTES]; /* authseq only */
    uint64_t seq;                    /* authseq only */
    uint64_t pos;                    /* changes only */
} shoal__ix_rec;
typedef int (*shoal__ix_fn)(const shoal__ix_rec *e, void *arg);
int shoal__stxn_index_scan(shoal__stxn *t, bool authseq, shoal__ix_fn cb, void *arg);
/* Index the whole log tail now, whatever its length. */
int shoal__stxn_index_flush(shoal__stxn *t);
/* The applied change cid no longer counts as applied: index the tail,
 * flag its log entry superseded, drop it from changes and authseq.  *pos
 * (may be NULL) receives its log position.  SHOAL_ENOTFOUND if cid is not
 * an applied change. */
int shoal__stxn_change_supersede(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint64_t *pos);
/* Local eviction (evict.c): drop the log entry at pos, applied or
 * superseded, as if it had never been appended: index the tail, delete
 * the entry and the changes and authseq entries that name it, record meta
 * "lognext".  Positions are never reused: the next append still gets the
 * position it would have got (even when pos was the last).  Holes are
 * fine for every reader: log_scan, log_walk and the tail skip them,
 * log_count counts entries, and the version vector is each author's
 * greatest seq left.  SHOAL_ENOTFOUND if the log has no entry at pos. */
int shoal__stxn_log_drop(shoal__stxn *t, uint64_t pos);
/* The position the next append gets (*next) and whether any entry was
 * ever dropped (*dropped: log positions and an author's seqs may have
 * holes); either may be NULL. */
int shoal__stxn_log_next(shoal__stxn *t, uint64_t *next, bool *dropped);

/* version vector (derived from authseq and the log tail; nothing to put):
 * the greatest applied seq of an author and its change id.  vv_scan goes
 * by author, ascending. */
int shoal__stxn_vv_get(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *seq,
                       uint8_t cid[SHOAL__ID_BYTES]);
typedef int (*shoal__vv_fn)(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                            const uint8_t cid[SHOAL__ID_BYTES], void *arg);
int shoal__stxn_vv_scan(shoal__stxn *t, shoal__vv_fn cb, void *arg);

/* pending set */
int shoal__stxn_pending_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env,
                            size_t len);
bool shoal__stxn_pending_has(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
int shoal__stxn_pending_del(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
uint64_t shoal__stxn_pending_count(shoal__stxn *t);
typedef int (*shoal__pending_fn)(const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env,
                                 void *arg);
int shoal__stxn_pending_scan(shoal__stxn *t, shoal__pending_fn cb, void *arg);

/* equivocation evidence */
int shoal__stxn_evidence_put(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                             const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len);
typedef int (*shoal__evidence_fn)(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                                  const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env,
                                  void *arg);
int shoal__stxn_evidence_scan(shoal__stxn *t, shoal__evidence_fn cb, void *arg);
/* Remove one evidence envelope (SHOAL_ENOTFOUND if absent); its id stays
 * in evcid. */
int shoal__stxn_evidence_del(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                             const uint8_t cid[SHOAL__ID_BYTES]);
/* Record that cid is a version of (author, seq) without keeping its
 * envelope (evidence_put records it too). */
int shoal__stxn_evidence_alias(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                               const uint8_t cid[SHOAL__ID_BYTES]);
/* Ids in evcid. */
uint64_t shoal__stxn_evidence_ids(shoal__stxn *t);
/* The (author, seq) of version cid (either may be NULL), from evcid;
 * SHOAL_ENOTFOUND if cid was never seen as a version of an equivocated
 * (author, seq). */
int shoal__stxn_evidence_find(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES],
                              uint8_t author[SHOAL_KEY_BYTES], uint64_t *seq);
/* The envelope of one evidence entry (Borrowed as every sval). */
int shoal__stxn_evidence_get(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
                             const uint8_t cid[SHOAL__ID_BYTES], shoal__sval *env);
uint64_t shoal__stxn_evidence_count(shoal__stxn *t);
/* The ids held as evidence for (author, seq), ascending: the first max
 * into cids (max x 32 bytes), their number in *n (may exceed max). */
int shoal__stxn_evidence_versions(shoal__stxn *t, const uint8_t author[SHOAL_KEY_BYTES],
                                  uint64_t seq, uint8_t *cids, size_t max, size_t *n);

/* documents: coll and id are byte strings without NUL bytes. */
int shoal__stxn_doc_get(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                        size_t idlen, shoal__sval *meta);
/* pos: the log position of the document's newest change, appended by this
 * transaction; the meta then rides in that log entry (it lags the log like
 * the indexes: doc_get and doc_scan take the tail's newest meta of a
 * document over the docs table, and the batch that indexes the tail puts
 * the metas into the table).  pos == 0 puts into the docs table directly
 * (SHOAL_EINVAL while the tail holds a meta of that document).  doc_get's
 * value is Borrowed until the next store call of the transaction. */
int shoal__stxn_doc_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                        size_t idlen, const void *meta, size_t mlen, uint64_t pos);
int shoal__stxn_snap_get(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                         size_t idlen, shoal__sval *snap);
int shoal__stxn_snap_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                         size_t idlen, const void *snap, size_t slen);
/* Delete the document's meta (SHOAL_ENOTFOUND if it has none; a meta the
 * tail carries is moved into docs by indexing the tail first, so that no
 * log entry brings it back) or its snapshot (SHOAL_OK if none).  For a
 * local eviction: the log keeps no change of the document (log_drop). */
int shoal__stxn_doc_del(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                        size_t idlen);
/* A change held as REJECTed by the write check (docs/permissions.md):
 * table `rejected`, change id -> one byte (1).  Put; whether cid is one. */
int shoal__stxn_rejected_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
bool shoal__stxn_rejected_has(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
/* Sealed groups (docs/permissions.md "Sealed fields"): table `seals`,
 * change id | group index (1 byte) -> the group's bytes, as its author
 * committed to them.  Put (a group held already is left as it is); get
 * (SHOAL_ENOTFOUND if not held; *v Borrowed until the next write). */
int shoal__stxn_seal_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g,
                         const uint8_t *p, size_t n);
int shoal__stxn_seal_get(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g,
                         shoal__sval *v);
/* Changes this replica applied without every sealed group (table
 * `unsealed`, change id -> author | seq (u64 BE)): put, delete, and a scan
 * (cb non-zero stops it and is returned). */
int shoal__stxn_unsealed_put(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES],
                             const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq);
int shoal__stxn_unsealed_del(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
typedef int (*shoal__unsealed_fn)(const uint8_t cid[SHOAL__ID_BYTES],
                                  const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, void *arg);
int shoal__stxn_unsealed_scan(shoal__stxn *t, shoal__unsealed_fn cb, void *arg);
/* Groups held, all changes together. */
uint64_t shoal__stxn_seal_count(shoal__stxn *t);
/* Delete every group held for cid (a local eviction). */
int shoal__stxn_seal_drop(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
/* Every group held for cid, by index; cb non-zero stops the scan and is
 * returned. */
typedef int (*shoal__seal_fn)(uint8_t g, const shoal__sval *v, void *arg);
int shoal__stxn_seal_scan(shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES], shoal__seal_fn cb,
                          void *arg);
/* The eviction stub of (coll, id): put; whether there is one. */
int shoal__stxn_stub_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                         size_t idlen);
bool shoal__stxn_stub_has(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                          size_t idlen);
int shoal__stxn_snap_del(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                         size_t idlen);
/* Every document (coll == NULL) or those of one collection, sorted by
 * (coll, id). */
typedef int (*shoal__doc_fn)(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                             const shoal__sval *meta, void *arg);
int shoal__stxn_doc_scan(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__doc_fn cb,
                         void *arg);

/* peers: persisted per-peer link state (format owned by core/). */
int shoal__stxn_peer_put(shoal__stxn *t, const uint8_t key[SHOAL_KEY_BYTES], const void *v,
                         size_t n);
/* Delete key's record; SHOAL_OK if there was none. */
int shoal__stxn_peer_del(shoal__stxn *t, const uint8_t key[SHOAL_KEY_BYTES]);
typedef int (*shoal__peer_fn)(const uint8_t key[SHOAL_KEY_BYTES], const shoal__sval *v, void *arg);
int shoal__stxn_peer_scan(shoal__stxn *t, shoal__peer_fn cb, void *arg);

/* Query views (core/query.c): one per live document. */
int shoal__stxn_qview_get(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                          size_t idlen, shoal__sval *view);
int shoal__stxn_qview_put(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                          size_t idlen, const void *view, size_t n);
/* SHOAL_OK if there was none. */
int shoal__stxn_qview_del(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
                          size_t idlen);
/* The views of coll in id order, from id from (inclusive; NULL: the
 * first); cb non-zero stops and is returned.  coll NULL: every view, with
 * coll set in the callback. */
typedef int (*shoal__qview_fn)(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
                               const shoal__sval *view, void *arg);
int shoal__stxn_qview_scan(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__qview_fn cb,
                           void *arg);
/* A cursor for view lookups: faster than qview_get for ids in ascending
 * order (LMDB looks in the current page first).  Lives until closed, at
 * most until the end of the transaction; the view is Borrowed until the
 * next call. */
typedef struct shoal__qvcur shoal__qvcur;
int shoal__stxn_qvcur_open(shoal__stxn *t, shoal__qvcur **out);
int shoal__qvcur_get(shoal__qvcur *c, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen, shoal__sval *view);
void shoal__qvcur_close(shoal__qvcur *c); /* NULL is a no-op */
/* Drop every view (before a rebuild). */
int shoal__stxn_qview_clear(shoal__stxn *t);

/* Indexes: the registry. */
int shoal__stxn_qix_find(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                         size_t flen, uint32_t *ix);
/* Register a new index (SHOAL_EBUSY if it exists); its number in *ix. */
int shoal__stxn_qix_create(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                           size_t flen, uint32_t *ix);
/* Unregister and delete its entries (SHOAL_ENOTFOUND if none). */
int shoal__stxn_qix_drop(shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *field,
                         size_t flen);
/* Delete every entry of index ix (registry untouched). */
int shoal__stxn_qix_truncate(shoal__stxn *t, uint32_t ix);
/* The indexes of coll (NULL: all), sorted by (coll, field). */
typedef int (*shoal__qix_fn)(const uint8_t *coll, size_t clen, const uint8_t *field, size_t flen,
                             uint32_t ix, void *arg);
int shoal__stxn_qix_list(shoal__stxn *t, const uint8_t *coll, size_t clen, shoal__qix_fn cb,
                         void *arg);
/* Index entries. */
int shoal__stxn_qix_put(shoal__stxn *t, uint32_t ix, const uint8_t *key, size_t klen,
                        const uint8_t *id, size_t idlen);
/* SHOAL_OK if there was none. */
int shoal__stxn_qix_del(shoal__stxn *t, uint32_t ix, const uint8_t *key, size_t klen,
                        const uint8_t *id, size_t idlen);
/* The entries of ix whose value key lies in [lo, hi] bytewise (lo NULL:
 * from the first; hi NULL: to the last), in key order.  cb non-zero
 * stops.  A malformed entry is SHOAL_ECORRUPT. */
typedef int (*shoal__qent_fn)(const uint8_t *key, size_t klen, const uint8_t *id, size_t idlen,
                              void *arg);
int shoal__stxn_qix_scan(shoal__stxn *t, uint32_t ix, const uint8_t *lo, size_t lolen,
                         const uint8_t *hi, size_t hilen, shoal__qent_fn cb, void *arg);

#endif /* SHOAL_STORE_STORE_H */
