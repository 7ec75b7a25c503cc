/*
 * shoal.h - the one public header of shoal, a peer-to-peer CRDT
 * replication library.  docs/c-api.md is the long form of every comment
 * here; this header is the contract.
 *
 * Ownership.  Every pointer is described by one of these phrases:
 *   Borrowed.                  only read during the call; the caller keeps it.
 *   Borrowed until X.          points into shoal memory, valid until event X.
 *   Caller owns; free with F.  a fresh allocation the caller releases with F.
 * Every destructor (shoal_*_free, shoal_replica_close, shoal_txn_abort)
 * accepts NULL as a harmless no-op.  A constructor that fails leaves its
 * *out NULL.
 *
 * Errors.  Each function lists the shoal_err codes it can return.  Two
 * groups recur:
 *   read errors:  SHOAL_ENOMEM, SHOAL_ECORRUPT (stored state failed
 *                 validation), SHOAL_ESTORE (any other storage failure);
 *   write errors: the read errors plus SHOAL_ENOSPC (disk full; the map
 *                 itself grows on demand) and SHOAL_EREADONLY.
 * A failing call that reached the replica records a message for
 * shoal_replica_errmsg().  Programmer errors (NULL where a pointer is
 * required, an index past the end where the comment says so, a handle
 * used after it was freed or closed) are assertions, not error codes.
 * Bytes from a peer or from disk never reach an assertion: they are
 * validated and give an error code.
 *
 * Threads.  A shoal_replica may be used from any number of threads at
 * once.  Every function that takes one locks the replica for the whole call
 * (calls on one handle run one after another), except where its comment
 * says otherwise: shoal_replica_id and shoal_replica_errmsg take no lock,
 * shoal_event_next waits on the event queue's own lock, and the network
 * functions hand commands to the replica's network engine.
 * shoal_replica_close must not run at the same time as, or before, any
 * other call on the same handle.  The smaller handles (shoal_options,
 * shoal_txn, shoal_doc, shoal_strlist, shoal_vv, shoal_event, shoal_peers)
 * are plain values: use each from one thread at a time.  Several processes
 * may open one directory: LMDB serialises their writes.
 *
 * Strings (collection, document id, field name) are NUL-terminated UTF-8;
 * invalid UTF-8, an empty name or an over-long name is SHOAL_EINVAL.
 */
#ifndef SHOAL_INCLUDE_SHOAL_H
#define SHOAL_INCLUDE_SHOAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHOAL_BUILDING) && defined(__GNUC__)
#define SHOAL_API __attribute__((visibility("default")))
#else
#define SHOAL_API
#endif

#if defined(__GNUC__)
#define SHOAL_NODISCARD __attribute__((warn_unused_result))
#else
#define SHOAL_NODISCARD
#endif

#define SHOAL_VERSION_MAJOR 0
#define SHOAL_VERSION_MINOR 1
#define SHOAL_VERSION_PATCH 0

/* Sizes of public keys (replica / author ids) and digests, in bytes. */
enum {
    SHOAL_KEY_BYTES = 32,
    SHOAL_DIGEST_BYTES = 32
};

/* Limits on names and values (also checked on input from peers). */
enum {
    SHOAL_MAX_COLLECTION = 128, /* bytes of a collection name */
    SHOAL_MAX_DOC_ID = 256,     /* bytes of a document id */
    SHOAL_MAX_FIELD = 256,      /* bytes of a field name */
    SHOAL_MAX_VALUE = 1 << 20   /* bytes of one string or binary value */
};

/* Error codes.  Values are ABI: append only, never renumber (the Python
 * binding's ErrorCode mirrors them; a test compares the two).  The
 * functions that return each code are listed in docs/c-api.md. */
typedef enum shoal_err {
    SHOAL_OK = 0,
    SHOAL_ENOMEM = 1,      /* out of memory */
    SHOAL_EINVAL = 2,      /* invalid argument (name, value, key, endpoint, option) */
    SHOAL_ENOTFOUND = 3,   /* no such document, field or link */
    SHOAL_ECLOSED = 4,     /* the replica or its network engine is closing */
    SHOAL_ETIMEDOUT = 5,   /* timed out */
    SHOAL_ENOSPC = 6,      /* disk full */
    SHOAL_EPROTO = 7,      /* input malformed (wrong type, trailing bytes, non-canonical) */
    SHOAL_EBADSIG = 8,     /* signature check failed; input dropped unparsed */
    SHOAL_ECORRUPT = 9,    /* stored state failed validation */
    SHOAL_ESTORE = 10,     /* storage error with no closer mapping */
    SHOAL_ETRANSPORT = 11, /* network error with no closer mapping (shoal_net_*) */
    SHOAL_EDELETED = 12,   /* the document is deleted */
    SHOAL_EKIND = 13,      /* the field holds another kind (register, counter, list) */
    SHOAL_ERANGE = 14,     /* list, field or vector index out of range */
    SHOAL_ETRUNC = 15,     /* input ends before its declared length */
    SHOAL_ETOOBIG = 16,    /* input or state exceeds a documented bound */
    SHOAL_EVERSION = 17,   /* unknown format version */
    SHOAL_EREADONLY = 18,  /* replica directory or file not writable */
    SHOAL_EBUSY = 19,      /* in use: address already bound (shoal_net_listen), endpoint
                              already linked with another key (shoal_net_connect) */
    SHOAL_EREFUSED = 20,   /* the peer refused the link (key not allowed, handshake failed) */
    SHOAL_EPERM = 21       /* not allowed by the permissions: a write, or a full replica's
                              link to a peer whose roles do not read everything */
} shoal_err;

/* A static string describing err ("unknown error" for a value that is not
 * a code); never NULL, never freed.  Thread: any thread, no lock. */
SHOAL_API const char *shoal_strerror(shoal_err err);

/* "MAJOR.MINOR.PATCH" of the library actually linked.  Static string,
 * never freed.  Thread: any thread, no lock. */
SHOAL_API const char *shoal_version(void);
/* SHOAL_VERSION_MAJOR * 10000 + MINOR * 100 + PATCH of the linked library;
 * compare with the header's SHOAL_VERSION_* to detect a mismatch.  Thread:
 * any thread. */
SHOAL_API int shoal_version_number(void);
/* SHOAL_KEY_BYTES at run time, for bindings that cannot read enums.
 * Thread: any thread. */
SHOAL_API size_t shoal_key_bytes(void);

/* Free memory that shoal documents as "free with shoal_free()" (the bytes
 * of shoal_export, the endpoint of shoal_net_listen).  NULL is a no-op.
 * Thread: any thread. */
SHOAL_API void shoal_free(void *p);

/* ---------------------------------------------------------------- values */

typedef enum shoal_type {
    SHOAL_T_NIL = 0,
    SHOAL_T_BOOL = 1,
    SHOAL_T_INT = 2,    /* int64 */
    SHOAL_T_DOUBLE = 3, /* IEEE-754 binary64 */
    SHOAL_T_STR = 4,    /* UTF-8, ptr/len, not NUL-terminated on output */
    SHOAL_T_BYTES = 5,  /* binary, ptr/len */
    /* On output only: a value this replica may not read (a sealed field
     * whose group it does not hold, docs/permissions.md "Sealed fields").
     * No payload.  Writing it is SHOAL_EINVAL. */
    SHOAL_T_REDACTED = 6
} shoal_type;

/* A scalar value.  A small transparent view: only the member named by type
 * is meaningful (b, i, d, or ptr/len for STR and BYTES).  On input ptr is
 * Borrowed; on output it is Borrowed until the object it was read from
 * (shoal_doc) is freed.  A string or binary value is at most
 * SHOAL_MAX_VALUE bytes; a string must be valid UTF-8. */
typedef struct shoal_value {
    shoal_type type;
    bool b;
    int64_t i;
    double d;
    const uint8_t *ptr;
    size_t len;
} shoal_value;

/* The kind of a field. */
typedef enum shoal_kind {
    SHOAL_K_REGISTER = 1,
    SHOAL_K_COUNTER = 2,
    SHOAL_K_LIST = 3
} shoal_kind;

/* --------------------------------------------------------------- options */

/* An opaque builder of replica options; shoal_replica_open copies it, so it
 * may be freed right after the open.  A plain value: one thread at a time.
 * The setters return SHOAL_OK unless stated otherwise. */
typedef struct shoal_options shoal_options;

/* The defaults: durable, map size 64 MiB, max drift 60000 ms, the system
 * clock, no log.  Errors: SHOAL_ENOMEM.  Caller owns *out; free with
 * shoal_options_free(). */
SHOAL_API shoal_err shoal_options_new(shoal_options **out);
/* NULL is a no-op. */
SHOAL_API void shoal_options_free(shoal_options *o);
/* Durable (the default): every commit is fsynced before it returns.
 * Not durable (the fast mode): commits return at once and are written in
 * batches, each one durable LMDB commit, at most 10 ms after the first
 * commit of the batch; shoal_replica_flush() and close write the open
 * batch.  A crash of the process, the OS or the power loses at most the
 * open batch, never a flushed commit, and never damages the replica (see
 * docs/c-api.md). */
SHOAL_API shoal_err shoal_options_set_durable(shoal_options *o, bool durable);
/* Initial LMDB map size in bytes (it grows on demand); 0 means the
 * default.  Errors: SHOAL_EINVAL below 1 MiB (except 0). */
SHOAL_API shoal_err shoal_options_set_map_size(shoal_options *o, uint64_t bytes);
/* How far (ms) a remote HLC may be ahead of the local wall clock before its
 * change is held back in the pending set until its time.  Default 60000.
 * Errors: SHOAL_EINVAL at or above 2^47. */
SHOAL_API shoal_err shoal_options_set_max_drift_ms(shoal_options *o, uint64_t ms);
/* Replace the wall clock (milliseconds since the epoch); for tests.  NULL
 * restores the system clock.  now_ms is called with ctx under the replica
 * lock (at open, per commit and import, and by the network engine), so it
 * must not call into shoal.  ctx is handed back as given and never freed:
 * it must stay valid while a replica opened with these options is open. */
SHOAL_API shoal_err shoal_options_set_clock(shoal_options *o, uint64_t (*now_ms)(void *ctx),
                                            void *ctx);

/* Log messages of the network engine: level is one of shoal_log_level; msg
 * is Borrowed for the call.  fn (NULL: no logging) is called on the
 * engine's thread, never with the replica lock held, and must not call
 * back into shoal.  Nothing outside the network engine logs.  ctx is
 * handed back as given and never freed: it must stay valid while a replica
 * opened with these options is open. */
typedef enum shoal_log_level {
    SHOAL_LOG_ERROR = 1,
    SHOAL_LOG_WARN = 2,
    SHOAL_LOG_INFO = 3,
    SHOAL_LOG_DEBUG = 4
} shoal_log_level;
SHOAL_API shoal_err shoal_options_set_log(shoal_options *o,
                                          void (*fn)(void *ctx, int level, const char *msg),
                                          void *ctx);

/* --------------------------------------------------------------- replica */

typedef struct shoal_replica shoal_replica;

/* Create or open the replica in directory dir (the directory itself is
 * created, mode 0700, if missing).  On the first open an Ed25519 identity is
 * generated and its secret key stored owner-only in dir/identity.  Then the
 * pending set is drained once.  dir and opts (NULL: defaults) are Borrowed.
 * Errors: SHOAL_EINVAL (NULL or empty dir), SHOAL_ECORRUPT (damaged
 * environment, unreadable identity, a directory of an older store layout),
 * the write errors.  No errmsg exists for a failed open.  On failure *out
 * is NULL.  Caller owns *out; close with shoal_replica_close().  Thread: any
 * thread (it makes a new handle). */
SHOAL_API shoal_err shoal_replica_open(shoal_replica **out, const char *dir,
                                       const shoal_options *opts);
/* Stop the network engine, wake every thread blocked in shoal_event_next
 * (SHOAL_ECLOSED), sync the store, wipe the secret key and free r.  NULL is
 * a harmless no-op.  Thread: no other call on r may run at the same time or
 * after it (threads waiting in shoal_event_next are the exception). */
SHOAL_API void shoal_replica_close(shoal_replica *r);
/* Text of the last failure recorded on r: the shoal_strerror text, then a
 * detail (document, field, index, endpoint), then the storage layer's
 * message when it has one; "no error" before any failure.  One buffer per
 * replica, not per thread: a failure in any thread overwrites it, and a
 * successful call leaves it alone; argument errors found before the call
 * reaches the replica (a bad name, a NULL endpoint) do not record text.
 * Never NULL.  Borrowed until shoal_replica_close(r); its text changes with
 * the next failing call on r.  Thread: no lock; read it in the thread that
 * made the failing call, before any other call on r fails.  When several
 * threads share r, their messages may overwrite one another (the returned
 * code is always right). */
SHOAL_API const char *shoal_replica_errmsg(shoal_replica *r);
/* The replica's public key (its author id), SHOAL_KEY_BYTES bytes; Borrowed
 * until close.  Thread: any thread, no lock (the key never changes). */
SHOAL_API const uint8_t *shoal_replica_id(shoal_replica *r);
/* Force every commit so far to disk (useful in non-durable mode; a no-op
 * in effect when durable).  Errors: the write errors. */
SHOAL_API shoal_err shoal_replica_flush(shoal_replica *r);

/* ---------------------------------------------------------- transactions */

/* A transaction gathers edits over one or more documents and commits them
 * atomically: one signed change per document, each with its own HLC tick.
 * Edits are resolved (list indexes included) at commit, in order, against
 * the newest state; reads do not see uncommitted edits.  Any number of
 * transactions may be open on one replica; they commit one after another.
 * A txn is a plain value: one thread at a time.  It must end (commit or
 * abort) before its replica is closed. */
typedef struct shoal_txn shoal_txn;

/* Start a transaction on r (no lock taken, nothing read yet).  Errors:
 * SHOAL_ENOMEM.  Caller owns *out; end it with shoal_txn_commit or
 * shoal_txn_abort. */
SHOAL_API shoal_err shoal_txn_begin(shoal_replica *r, shoal_txn **out);
/* Commit and free txn (always freed, even on error), under the replica
 * lock, in one store write.  On error nothing of the txn is stored (no
 * change, no seq, no clock movement).  Durable on return unless the replica
 * is non-durable.  Queues one local event per changed document.  Errors:
 * SHOAL_EKIND, SHOAL_ERANGE (the errmsg names document, field and index),
 * SHOAL_ETOOBIG (over 1024 heads, 2^20 ops or 4096 other authors in one
 * change), the write errors. */
SHOAL_API SHOAL_NODISCARD shoal_err shoal_txn_commit(shoal_txn *txn);
/* Drop txn's edits and free it.  NULL is a no-op. */
SHOAL_API void shoal_txn_abort(shoal_txn *txn);

/* Edits.  All strings and values are Borrowed (copied into the txn).
 * Argument errors are returned at once, and the txn stays usable (the bad
 * edit is not recorded): SHOAL_EINVAL (bad name, NULL or invalid value),
 * SHOAL_ENOMEM.  State errors (index out of range, wrong kind) are
 * returned by shoal_txn_commit.  No lock is taken. */
SHOAL_API shoal_err shoal_txn_set(shoal_txn *t, const char *coll, const char *id, const char *field,
                                  const shoal_value *v);
SHOAL_API shoal_err shoal_txn_unset(shoal_txn *t, const char *coll, const char *id,
                                    const char *field);
SHOAL_API shoal_err shoal_txn_counter_add(shoal_txn *t, const char *coll, const char *id,
                                          const char *field, int64_t delta);
SHOAL_API shoal_err shoal_txn_list_insert(shoal_txn *t, const char *coll, const char *id,
                                          const char *field, size_t index, const shoal_value *v);
SHOAL_API shoal_err shoal_txn_list_remove(shoal_txn *t, const char *coll, const char *id,
                                          const char *field, size_t index);
SHOAL_API shoal_err shoal_txn_list_replace(shoal_txn *t, const char *coll, const char *id,
                                           const char *field, size_t index, const shoal_value *v);
/* Delete the document (delete wins over concurrent edits of its epoch).
 * A later edit of the same id, in this txn or another, re-creates it in the
 * next epoch.  Deleting a deleted or never-seen document is a no-op. */
SHOAL_API shoal_err shoal_txn_delete(shoal_txn *t, const char *coll, const char *id);

/* ----------------------------------------------------------------- reads */

/* A read-only deep copy of one live document's visible state: later writes
 * do not change it.  A plain value: one thread at a time.  The accessors
 * take no lock and never touch the replica. */
typedef struct shoal_doc shoal_doc;

/* One LMDB read snapshot; never blocks a writer.  SHOAL_OK and *out for a
 * live document; SHOAL_EDELETED if it is deleted; SHOAL_ENOTFOUND if this
 * replica never applied a change to it (pending changes do not count).
 * Other errors: SHOAL_EINVAL (bad name), the read errors.  coll and id are
 * Borrowed.  Caller owns *out; free with shoal_doc_free(). */
SHOAL_API shoal_err shoal_doc_get(shoal_replica *r, const char *coll, const char *id,
                                  shoal_doc **out);
/* NULL is a no-op. */
SHOAL_API void shoal_doc_free(shoal_doc *d);
/* 0, plus one per re-create after a delete. */
SHOAL_API uint64_t shoal_doc_epoch(const shoal_doc *d);
/* Visible fields, sorted by name (bytewise). */
SHOAL_API size_t shoal_doc_field_count(const shoal_doc *d);
/* Name of field i, NULL if i is out of range; Borrowed until
 * shoal_doc_free(d). */
SHOAL_API const char *shoal_doc_field_name(const shoal_doc *d, size_t i);
/* Kind of field i; i must be in range (asserted). */
SHOAL_API shoal_kind shoal_doc_field_kind(const shoal_doc *d, size_t i);
/* Index of field name (Borrowed) into *i; SHOAL_ENOTFOUND if absent. */
SHOAL_API shoal_err shoal_doc_field_find(const shoal_doc *d, const char *name, size_t *i);
/* Register value of field i.  Errors: SHOAL_ERANGE (i out of range),
 * SHOAL_EKIND (another kind).  out's pointers are Borrowed until
 * shoal_doc_free(d). */
SHOAL_API shoal_err shoal_doc_field_value(const shoal_doc *d, size_t i, shoal_value *out);
/* Counter value of field i (wrapping int64 sum).  Errors: SHOAL_ERANGE,
 * SHOAL_EKIND. */
SHOAL_API shoal_err shoal_doc_field_counter(const shoal_doc *d, size_t i, int64_t *out);
/* Number of visible elements of list field i.  Errors: SHOAL_ERANGE,
 * SHOAL_EKIND. */
SHOAL_API shoal_err shoal_doc_field_list_len(const shoal_doc *d, size_t i, size_t *out);
/* Element j of list field i.  Errors: SHOAL_ERANGE (i or j out of range),
 * SHOAL_EKIND.  out's pointers are Borrowed until shoal_doc_free(d). */
SHOAL_API shoal_err shoal_doc_field_list_item(const shoal_doc *d, size_t i, size_t j,
                                              shoal_value *out);

/* A list of strings (document ids, collection names, hex keys), sorted
 * bytewise.  A plain value: one thread at a time. */
typedef struct shoal_strlist shoal_strlist;
SHOAL_API size_t shoal_strlist_count(const shoal_strlist *l);
/* String i, NULL if i is out of range; Borrowed until shoal_strlist_free(l). */
SHOAL_API const char *shoal_strlist_get(const shoal_strlist *l, size_t i);
/* NULL is a no-op. */
SHOAL_API void shoal_strlist_free(shoal_strlist *l);

/* Ids of the live documents of coll (Borrowed); an unknown collection gives
 * an empty list.  Errors: SHOAL_EINVAL (bad name), the read errors.  Caller
 * owns *out; free with shoal_strlist_free(). */
SHOAL_API shoal_err shoal_docs(shoal_replica *r, const char *coll, shoal_strlist **out);
/* Names of the collections that hold at least one live document.  Errors:
 * the read errors.  Caller owns *out; free with shoal_strlist_free(). */
SHOAL_API shoal_err shoal_collections(shoal_replica *r, shoal_strlist **out);

/* ---------------------------------------------------------------- events */

/* Every commit and every import (or sync) that changes a document queues one
 * event per document on the replica handle that made it (bounded at 4096;
 * on overflow the oldest are dropped and the next event has overflowed
 * set).  Events from other processes sharing the directory are not seen.
 * An event is a plain value: one thread at a time. */
typedef struct shoal_event shoal_event;

/* Wait up to timeout_ms (0: do not wait, <0: forever) for the next event.
 * Errors: SHOAL_ETIMEDOUT when none came; SHOAL_ECLOSED once
 * shoal_replica_close has started.  Thread: any thread; it waits on the
 * event queue's own lock, never the replica lock, so other calls on r run
 * meanwhile.  Caller owns *out; free with shoal_event_free(). */
SHOAL_API shoal_err shoal_event_next(shoal_replica *r, int timeout_ms, shoal_event **out);
/* NULL is a no-op. */
SHOAL_API void shoal_event_free(shoal_event *e);
/* The event's collection and document id; Borrowed until
 * shoal_event_free(e). */
SHOAL_API const char *shoal_event_collection(const shoal_event *e);
SHOAL_API const char *shoal_event_doc_id(const shoal_event *e);
/* true if the change came from another replica (import or sync). */
SHOAL_API bool shoal_event_remote(const shoal_event *e);
/* true if events were dropped before this one. */
SHOAL_API bool shoal_event_overflowed(const shoal_event *e);
/* true if the document left this partial replica's view and was evicted
 * (docs/sync.md): its state and changes are gone from this replica. */
SHOAL_API bool shoal_event_left(const shoal_event *e);
/* true if this replica's own changes to the document became VOID (its
 * key was revoked below them, or its certificate was issued by a revoked
 * admin): they are orphans now (shoal_orphans). */
SHOAL_API bool shoal_event_voided(const shoal_event *e);

/* --------------------------------------------------------------- queries */

/* A query: a collection, a predicate in the query language
 * (docs/queries.md) with its parameters bound, and for shoal_find a sort,
 * a limit, an offset and the fields to return.  Compiled once, run any
 * number of times; binding again between runs is fine.  A plain value:
 * one thread at a time (a run only reads it). */
typedef struct shoal_query shoal_query;

/* Compile where (NULL or "" : every live document) for collection coll.
 * Errors: SHOAL_EINVAL (bad collection name; a syntax error),
 * SHOAL_ETOOBIG (over a bound: 4 KiB of text, 64 predicates, depth 8, IN
 * of 256 items), SHOAL_ENOMEM; the message, naming the byte position
 * ("position 14: ..."), is in shoal_replica_errmsg(r).  r is used only for
 * that message.  coll and where are Borrowed.  Caller owns *out; free with
 * shoal_query_free(). */
SHOAL_API shoal_err shoal_query_new(shoal_replica *r, const char *coll, const char *where,
                                    shoal_query **out);
/* NULL is a no-op. */
SHOAL_API void shoal_query_free(shoal_query *q);
/* Number of parameters (":name" in the text) and the name of parameter i
 * without its colon (NULL past the end; Borrowed until shoal_query_free). */
SHOAL_API size_t shoal_query_param_count(const shoal_query *q);
SHOAL_API const char *shoal_query_param_name(const shoal_query *q, size_t i);
/* Bind parameter name (without the colon) to a copy of v.  Parameters are
 * values, never spliced into text.  Errors: SHOAL_ENOTFOUND (no such
 * parameter), SHOAL_EINVAL (invalid value), SHOAL_ENOMEM. */
SHOAL_API shoal_err shoal_query_bind(shoal_query *q, const char *name, const shoal_value *v);
/* Add a sort key (the first added sorts first): field (Borrowed; "_id" is
 * the id) ascending or descending in the total order of docs/queries.md;
 * ties go by _id ascending.  Errors: SHOAL_EINVAL (bad name), SHOAL_ETOOBIG
 * (more than 16 keys), SHOAL_ENOMEM. */
SHOAL_API shoal_err shoal_query_sort(shoal_query *q, const char *field, bool descending);
/* Skip the first offset results, then return at most limit (0: no
 * limit). */
SHOAL_API void shoal_query_limit(shoal_query *q, uint64_t limit, uint64_t offset);
/* Return only these fields of each document (call once per field; none
 * called: every field).  Errors: SHOAL_EINVAL, SHOAL_ETOOBIG (more than 256),
 * SHOAL_ENOMEM. */
SHOAL_API shoal_err shoal_query_field(shoal_query *q, const char *field);

/* The result of shoal_find: documents in order, each a shoal_doc.  A plain
 * value: one thread at a time. */
typedef struct shoal_rows shoal_rows;

/* Run q in one read snapshot: the live documents of q's collection that
 * match, sorted, offset, limited and projected.  An unknown collection
 * gives no rows.  Uses an index when one fits (shoal_index_add); the rows
 * are the same with or without it.  Errors: SHOAL_EINVAL (a parameter not
 * bound; message names it), the read errors.  Caller owns *out; free with
 * shoal_rows_free(). */
SHOAL_API shoal_err shoal_find(shoal_replica *r, const shoal_query *q, shoal_rows **out);
/* Number of live documents that match q (sort, limit, offset and fields
 * ignored).  Errors: as shoal_find. */
SHOAL_API shoal_err shoal_count(shoal_replica *r, const shoal_query *q, uint64_t *out);
SHOAL_API size_t shoal_rows_count(const shoal_rows *rows);
/* Id of row i; i below shoal_rows_count (asserted).  Borrowed until
 * shoal_rows_free(rows). */
SHOAL_API const char *shoal_rows_id(const shoal_rows *rows, size_t i);
/* Document of row i (only the requested fields), read with the shoal_doc
 * accessors; i below shoal_rows_count (asserted).  Borrowed until
 * shoal_rows_free(rows); do not shoal_doc_free it. */
SHOAL_API const shoal_doc *shoal_rows_doc(const shoal_rows *rows, size_t i);
/* NULL is a no-op. */
SHOAL_API void shoal_rows_free(shoal_rows *rows);

/* Aggregates over the documents a query matches, grouped by zero or more
 * fields.  count: matching documents; sum and avg: over the numbers
 * (registers and counters; other values are skipped; sum is an int while
 * every term is an int and no partial sum overflows, else a double); min
 * and max: over the values that are present and not null, in the total
 * order (lists skipped).  An aggregate with nothing to aggregate is null. */
typedef enum shoal_agg_op {
    SHOAL_AGG_COUNT = 1,
    SHOAL_AGG_SUM = 2,
    SHOAL_AGG_MIN = 3,
    SHOAL_AGG_MAX = 4,
    SHOAL_AGG_AVG = 5
} shoal_agg_op;

typedef struct shoal_aggregate_spec {
    shoal_agg_op op;
    const char *field; /* Borrowed; ignored (may be NULL) for COUNT */
} shoal_aggregate_spec;

/* The groups of an aggregation, sorted by their key values in the total
 * order; with no group field, exactly one group (even over no document).
 * A plain value: one thread at a time. */
typedef struct shoal_groups shoal_groups;

/* Run q (sort, limit, offset and fields ignored) grouped by the ngroup
 * fields group[] (a document's group key holds each field's value; absent
 * and lists group as null) computing the nspec aggregates spec[].  One
 * read snapshot.  Errors: SHOAL_EINVAL (bad name, unknown op, a parameter
 * not bound), SHOAL_ETOOBIG (over 16 group fields or 64 aggregates), the
 * read errors.  Caller owns *out; free with shoal_groups_free(). */
SHOAL_API shoal_err shoal_aggregate(shoal_replica *r, const shoal_query *q,
                                    const char *const *group, size_t ngroup,
                                    const shoal_aggregate_spec *spec, size_t nspec,
                                    shoal_groups **out);
SHOAL_API size_t shoal_groups_count(const shoal_groups *g);
/* Value of group field k in group i (SHOAL_T_NIL for absent, null or a
 * list); result j of group i (count: SHOAL_T_INT).  Indexes must be in
 * range (asserted).  Pointers Borrowed until shoal_groups_free(g). */
SHOAL_API void shoal_groups_key(const shoal_groups *g, size_t i, size_t k, shoal_value *out);
SHOAL_API void shoal_groups_value(const shoal_groups *g, size_t i, size_t j, shoal_value *out);
/* NULL is a no-op. */
SHOAL_API void shoal_groups_free(shoal_groups *g);

/* ---------------------------------------------------------------- indexes */

/* Index field of collection coll (both Borrowed): built now, in one write
 * transaction, then kept up to date in the transaction of every change
 * (local, imported or synced).  Persistent; shared by every process
 * opening the directory.  A list field is indexed by its elements.  Adding
 * an index that exists is a no-op.  An index only makes queries faster:
 * results are the same without it.  Errors: SHOAL_EINVAL (bad name; "_id"
 * is indexed already), the write errors. */
SHOAL_API shoal_err shoal_index_add(shoal_replica *r, const char *coll, const char *field);
/* Drop the index.  Errors: SHOAL_ENOTFOUND (no such index), SHOAL_EINVAL,
 * the write errors. */
SHOAL_API shoal_err shoal_index_drop(shoal_replica *r, const char *coll, const char *field);
/* coll NULL: the collections that have an index; else the indexed fields
 * of coll.  Errors: SHOAL_EINVAL, the read errors.  Caller owns *out; free
 * with shoal_strlist_free(). */
SHOAL_API shoal_err shoal_indexes(shoal_replica *r, const char *coll, shoal_strlist **out);

/* ----------------------------------------------------------- live queries */

/* A live query: q's current result, then ENTER / UPDATE / LEAVE events as
 * commits (of this handle, of other handles and of other processes on the
 * same directory), imports and syncs move documents into, within and out
 * of it.  Sort, limit, offset and fields of q are ignored: a live query
 * tracks membership; each ENTER and UPDATE carries the whole document.
 * Events are delivered in order; a change is evaluated only against the
 * live queries it can affect.  A plain value: one thread at a time; close
 * every live query before closing its replica. */
typedef struct shoal_live shoal_live;

typedef enum shoal_live_kind {
    SHOAL_LIVE_ENTER = 1,  /* the document matches now (and did not) */
    SHOAL_LIVE_UPDATE = 2, /* it matched and still matches, and changed */
    SHOAL_LIVE_LEAVE = 3,  /* it matched and no longer does (or was deleted) */
    SHOAL_LIVE_READY = 4   /* the ENTERs before it were the initial result */
} shoal_live_kind;

typedef struct shoal_live_event shoal_live_event;

/* Open a live query on a copy of q (q may be freed after).  Its first
 * events are an ENTER per matching document, by _id, then READY.  Errors:
 * SHOAL_EINVAL (a parameter not bound), SHOAL_ENOMEM, SHOAL_ESTORE
 * (inotify or eventfd failed), the read errors.  Caller owns *out; close
 * with shoal_live_close(). */
SHOAL_API shoal_err shoal_live_open(shoal_replica *r, const shoal_query *q, shoal_live **out);
/* A file descriptor that polls readable (POLLIN) when shoal_live_next may
 * have an event; owned by l, valid until shoal_live_close.  Thread: any. */
SHOAL_API int shoal_live_fd(const shoal_live *l);
/* The next event, waiting up to timeout_ms (0: do not wait, <0: forever).
 * Errors: SHOAL_ETIMEDOUT when none came, the read errors.  Caller owns
 * *out; free with shoal_live_event_free(). */
SHOAL_API shoal_err shoal_live_next(shoal_live *l, int timeout_ms, shoal_live_event **out);
/* NULL is a no-op.  Must run before shoal_replica_close of its replica. */
SHOAL_API void shoal_live_close(shoal_live *l);
SHOAL_API shoal_live_kind shoal_live_event_kind(const shoal_live_event *e);
/* Document id ("" for READY); Borrowed until shoal_live_event_free(e). */
SHOAL_API const char *shoal_live_event_id(const shoal_live_event *e);
/* The document (ENTER and UPDATE) or NULL (LEAVE, READY); Borrowed until
 * shoal_live_event_free(e); do not shoal_doc_free it. */
SHOAL_API const shoal_doc *shoal_live_event_doc(const shoal_live_event *e);
/* NULL is a no-op. */
SHOAL_API void shoal_live_event_free(shoal_live_event *e);

/* ------------------------------------------------- subscriptions (sync.md) */

/* A replica with no subscription is full: it syncs every document.  One
 * with at least one is partial: its peers send it the documents that match
 * any of its subscriptions (on their state), and it evicts the ones that
 * leave its view once its own changes to them are acknowledged by a full
 * peer (docs/sync.md).
 *
 * Create or replace the subscription name (1..64 bytes of UTF-8): every
 * document of q's collection that q's predicate matches, with q's
 * parameters bound now (q is copied; it may be freed after).  Persistent;
 * takes effect on the next exchange and on live links at once.  A new or
 * changed subscription is pending until a peer has sent everything that
 * matched it.  Replacing one evicts what no subscription matches any more.
 * Errors: SHOAL_EINVAL (a name out of bounds, a parameter not bound, a
 * sort, limit, offset or field list on q), SHOAL_ETOOBIG (more than 64
 * subscriptions), the write errors. */
SHOAL_API shoal_err shoal_subscribe(shoal_replica *r, const char *name, const shoal_query *q);
/* Remove it and evict every document no remaining subscription matches
 * (except those holding our own changes not yet acknowledged; they go once
 * they are).  With none left the replica is full again.  Errors:
 * SHOAL_ENOTFOUND, the write errors. */
SHOAL_API shoal_err shoal_unsubscribe(shoal_replica *r, const char *name);

typedef struct shoal_subs shoal_subs;
/* Our subscriptions, by creation order, each with its state and the number
 * of documents it matches here now.  Caller owns *out; free with
 * shoal_subs_free(). */
SHOAL_API shoal_err shoal_subscriptions(shoal_replica *r, shoal_subs **out);
SHOAL_API void shoal_subs_free(shoal_subs *s);
SHOAL_API size_t shoal_subs_count(const shoal_subs *s);
/* Borrowed until shoal_subs_free; NULL past the end. */
SHOAL_API const char *shoal_subs_name(const shoal_subs *s, size_t i);
SHOAL_API const char *shoal_subs_collection(const shoal_subs *s, size_t i);
/* The predicate ("TRUE" for a whole collection). */
SHOAL_API const char *shoal_subs_where(const shoal_subs *s, size_t i);
SHOAL_API size_t shoal_subs_param_count(const shoal_subs *s, size_t i);
SHOAL_API const char *shoal_subs_param_name(const shoal_subs *s, size_t i, size_t k);
/* Borrowed until shoal_subs_free. */
SHOAL_API shoal_err shoal_subs_param_value(const shoal_subs *s, size_t i, size_t k,
                                           shoal_value *out);
/* true once a peer sent every document that matched it when the exchange
 * began (after shoal_net_sync returns SHOAL_OK, every subscription is). */
SHOAL_API bool shoal_subs_complete(const shoal_subs *s, size_t i);
/* Documents it matches in this replica now. */
SHOAL_API uint64_t shoal_subs_docs(const shoal_subs *s, size_t i);

/* ------------------------------------------------------- version vectors */

/* A version vector: author -> highest seq such that every seq from 1 up to
 * it has been applied.  A plain value: one thread at a time. */
typedef struct shoal_vv shoal_vv;

/* An empty vector.  Errors: SHOAL_ENOMEM.  Caller owns *out; free with
 * shoal_vv_free(). */
SHOAL_API shoal_err shoal_vv_new(shoal_vv **out);
/* NULL is a no-op. */
SHOAL_API void shoal_vv_free(shoal_vv *vv);
/* Set author's seq (author: SHOAL_KEY_BYTES bytes, Borrowed); seq 0
 * removes the entry.  Errors: SHOAL_ENOMEM. */
SHOAL_API shoal_err shoal_vv_set(shoal_vv *vv, const uint8_t *author, uint64_t seq);
/* Number of entries; they are sorted by author key. */
SHOAL_API size_t shoal_vv_count(const shoal_vv *vv);
/* Entry i: *author (Borrowed until the vector is changed or freed) and
 * *seq; either pointer may be NULL.  Errors: SHOAL_ERANGE past the end. */
SHOAL_API shoal_err shoal_vv_entry(const shoal_vv *vv, size_t i, const uint8_t **author,
                                   uint64_t *seq);
/* seq of author (Borrowed), 0 if absent. */
SHOAL_API uint64_t shoal_vv_get(const shoal_vv *vv, const uint8_t *author);

/* The replica's version vector.  Errors: the read errors.  Caller owns
 * *out; free with shoal_vv_free(). */
SHOAL_API shoal_err shoal_replica_version(shoal_replica *r, shoal_vv **out);

/* --------------------------------------------------------------- bundles */

/* The applied changes that a replica at version since lacks (all if since
 * is NULL), in causal order (this replica's log order), as bundle bytes:
 * the original signed envelopes, never re-encoded.  Every bundle ends with
 * the stored equivocation evidence that is not an applied change, whatever
 * since says.  Pending changes are not exported.  One read snapshot.
 * Errors: SHOAL_ETOOBIG (over 2^32 - 1 envelopes), the read errors.  since
 * is Borrowed.  Caller owns *out (*out_len bytes); free with shoal_free(). */
SHOAL_API shoal_err shoal_export(shoal_replica *r, const shoal_vv *since, uint8_t **out,
                                 size_t *out_len);

typedef struct shoal_import_result {
    uint64_t applied;       /* changes applied now (including pending ones they released) */
    uint64_t duplicate;     /* changes already held: no-ops */
    uint64_t pending;       /* changes stored, waiting for their dependencies or their time */
    uint64_t equivocations; /* conflicting changes for one (author, seq): evidence kept */
    uint64_t rejected;      /* changes the write check rejected: held without effect
                               (a replica that enforces permissions; docs/permissions.md) */
} shoal_import_result;

/* Verify every signature, decode every change, then apply in one write
 * transaction.  A bundle holding any invalid change is rejected whole and
 * nothing changes: SHOAL_EBADSIG, SHOAL_EPROTO (also a change invalid
 * against its document), SHOAL_ETRUNC, SHOAL_ETOOBIG (also a pending set
 * that would pass 100,000 changes), SHOAL_EVERSION; a signature, bound or
 * decoding error is that of the first bad envelope.  Other errors: SHOAL_EINVAL (NULL bundle
 * with len > 0), the write errors.  Replaying a bundle is a no-op (every
 * change a duplicate).  Queues one remote event per changed document.
 * bundle is Borrowed; res may be NULL and is zeroed on error.  Thread: the
 * signatures are checked before the replica is locked (on helper threads
 * for a large bundle); the apply holds the lock. */
SHOAL_API SHOAL_NODISCARD shoal_err shoal_import(shoal_replica *r, const uint8_t *bundle,
                                                 size_t len, shoal_import_result *res);

/* --------------------------------------------------------------- digests */

/* Visible-state digest (full = false) or full-state digest (full = true),
 * SHOAL_DIGEST_BYTES bytes into out (Borrowed).  Defined byte for byte in
 * docs/digests.md.  Errors: SHOAL_ETOOBIG (a document state over 4 GiB),
 * the read errors. */
SHOAL_API shoal_err shoal_digest(shoal_replica *r, bool full, uint8_t *out);
/* The commitment digest (docs/digests.md): the full-state digest with
 * every value that came from a sealed group standing for the group's
 * commitment, whether this replica may read it or not, so it is equal on
 * every replica that applied the same changes (an auditor's and the
 * hub's).  SHOAL_DIGEST_BYTES bytes into out.  It replays every document
 * from its changes: its time grows with the log.  Errors: as
 * shoal_digest. */
SHOAL_API shoal_err shoal_digest_commitment(shoal_replica *r, uint8_t *out);

/* Number of changes waiting in the pending set (for dependencies or for
 * their time) into *out.  Errors: the read errors. */
SHOAL_API shoal_err shoal_pending_count(shoal_replica *r, uint64_t *out);

/* Authors caught equivocating (two different signed changes with one
 * (author, seq)), as 64-digit lowercase hex keys, sorted.  Errors: the read
 * errors.  Caller owns *out; free with shoal_strlist_free(). */
SHOAL_API shoal_err shoal_equivocators(shoal_replica *r, shoal_strlist **out);

/* ----------------------------------------------------------------- check */

/* What shoal_replica_check looked at. */
typedef struct shoal_check_stats {
    uint64_t changes;    /* applied changes in the log */
    uint64_t superseded; /* log entries of versions an equivocation replaced */
    uint64_t pending;    /* changes in the pending set */
    uint64_t evidence;   /* equivocation evidence envelopes */
    uint64_t documents;  /* documents in the docs table */
    uint64_t problems;   /* problems found: all of them, reported or not */
    uint64_t pages;      /* pages of data.mdb in use (the page walk) */
    uint64_t free_pages; /* pages on LMDB's free list */
} shoal_check_stats;

/* Receives one problem: a line of text without a newline, Borrowed for
 * the call. */
typedef void (*shoal_check_fn)(void *arg, const char *problem);

enum {
    SHOAL_CHECK_REPORT_MAX = 100 /* problems passed to the callback; the rest are counted */
};

/* Verify the replica.  First the environment: every page of data.mdb
 * (the store's page walk, in a read snapshot of its own); damage there is
 * the one problem reported, and the check goes no further.  Then one read
 * snapshot (one LMDB read transaction; it writes nothing and never blocks
 * writers): every log entry (its envelope parses, its signature verifies,
 * the change id recomputed from its bytes is the stored one, the stored
 * author and seq are the change's), the log
 * positions, each author's seqs 1..n, the two indexes and the version
 * vector against the log, the pending set and the evidence (envelopes
 * verify, ids match their keys), and every document: rebuilt from its
 * changes and compared with its stored state, heads and meta; a document
 * with changes in the log but no entry in the docs table, or the reverse,
 * is a problem too.  Each problem goes to cb(arg, text) (cb may be NULL),
 * at most SHOAL_CHECK_REPORT_MAX of them; st (may be NULL) receives the
 * counts.  cb runs on the calling thread with the replica locked: it must
 * not call shoal on r.  The check reads the whole replica: its time grows
 * with the log.  Returns SHOAL_OK when nothing is wrong, SHOAL_ECORRUPT when
 * something is (st->problems > 0; damage that stops the walk is reported
 * as a problem too).  Other errors: SHOAL_ENOMEM, SHOAL_ESTORE (the check
 * stopped; problems reported before it stand). */
SHOAL_API SHOAL_NODISCARD shoal_err shoal_replica_check(shoal_replica *r, shoal_check_fn cb,
                                                        void *arg, shoal_check_stats *st);

/* ----------------------------------------------------------- permissions */

/* Role- and field-level permissions (docs/permissions.md).  A replica
 * created with a root key enforces them: every change it receives is
 * judged by the write check, and its own writes that its certificate does
 * not allow fail with SHOAL_EPERM.  What is and is not enforced yet:
 * docs/permissions.md, "Status". */

/* Trust root_key (SHOAL_KEY_BYTES, Borrowed; NULL: none) in replicas
 * opened with o.  A new directory keeps it: reopened without the option it
 * still enforces; opening it with another root, or giving a root to a
 * directory created without one that holds changes, fails with
 * SHOAL_EINVAL.  Errors: SHOAL_EINVAL (NULL o). */
SHOAL_API shoal_err shoal_options_set_root(shoal_options *o, const uint8_t *root_key);
/* The root key r trusts, SHOAL_KEY_BYTES into out; SHOAL_ENOTFOUND when r
 * enforces no permissions (open mode), SHOAL_EINVAL for NULL. */
SHOAL_API shoal_err shoal_replica_root(shoal_replica *r, uint8_t *out);

/* Sign and publish a policy written as JSON (json, len bytes; the format:
 * docs/permissions.md, "Policy file") as the next version after the newest
 * this replica holds; *version (may be NULL) receives it.  Errors:
 * SHOAL_EINVAL (open mode, or a policy that breaks a rule: the message
 * names the key or rule), SHOAL_EPERM (this key may not publish
 * policies), the commit errors. */
SHOAL_API shoal_err shoal_auth_policy(shoal_replica *r, const char *json, size_t len,
                                      uint64_t *version);

/* A device certificate to issue (every pointer Borrowed for the call). */
typedef struct shoal_cert_spec {
    const char *user;         /* user id ($user.id in a policy) */
    const char *const *roles; /* nroles >= 1 role names */
    size_t nroles;
    const char *const *attr_names;  /* nattrs attributes ($user.NAME): not id, role or user */
    const shoal_value *attr_values; /* scalars, one per name */
    size_t nattrs;
    uint64_t life_ms; /* valid from now for this long; 0: without end */
} shoal_cert_spec;
/* Certify device key (SHOAL_KEY_BYTES, Borrowed) with spec: the next serial
 * for that key, the current policy version as its floor.  Errors:
 * SHOAL_EINVAL (open mode, no policy published yet, NULL or malformed
 * spec), SHOAL_EPERM (this key may not issue it: no `issue` capability,
 * outside its scope or life, or its own key), the commit errors. */
SHOAL_API shoal_err shoal_auth_grant(shoal_replica *r, const uint8_t *key,
                                     const shoal_cert_spec *spec);

/* Capabilities of an admin grant. */
enum {
    SHOAL_CAP_POLICY = 1,  /* publish policies */
    SHOAL_CAP_ISSUE = 2,   /* issue certificates within the scope */
    SHOAL_CAP_REVOKE = 4,  /* revoke keys certified within the scope */
    SHOAL_CAP_DELEGATE = 8 /* grant admin rights, no more than one holds */
};
/* Grant key (SHOAL_KEY_BYTES, Borrowed) the capabilities caps (SHOAL_CAP_*
 * bits), within scope (a predicate over a certificate's `role`, `user` and
 * attributes, docs/permissions.md; NULL or "" for all), issuing
 * certificates of at most max_life_ms (0: no bound).  Errors: SHOAL_EINVAL
 * (open mode, caps 0 or unknown bits, a scope that does not compile),
 * SHOAL_EPERM (this key may not grant them), the commit errors. */
SHOAL_API shoal_err shoal_auth_admin(shoal_replica *r, const uint8_t *key, uint32_t caps,
                                     const char *scope, uint64_t max_life_ms);

/* Revoke key (SHOAL_KEY_BYTES, Borrowed): publish a revocation naming
 * key's newest certificate, with cut (UINT64_MAX: the greatest seq of
 * key this replica holds) and reason (NULL: "").  A replica that holds
 * the revocation makes the key's changes past the cut VOID (no effect;
 * list inserts kept as invisible anchors), and for an admin's key every
 * change naming a certificate, grant or policy it issued past the cut;
 * it refuses the key's links, closes the
 * live ones and serves it nothing but `_auth` (docs/permissions.md,
 * "Revoking a device").  *cut_out (may be NULL)
 * receives the cut.  Errors: SHOAL_EINVAL (open mode, NULL key),
 * SHOAL_EPERM (this key may not revoke it: not the root and no `revoke`
 * capability over its certificate, or its own key), the commit errors. */
SHOAL_API shoal_err shoal_auth_revoke(shoal_replica *r, const uint8_t *key, uint64_t cut,
                                      const char *reason, uint64_t *cut_out);

/* r's authority as one line of JSON (docs/permissions.md, "auth show"):
 * mode, root, the current policy, the newest certificate of each key,
 * the newest grant of each admin and the revocations.  Caller owns *json; free with
 * shoal_free().  Errors: SHOAL_EINVAL, SHOAL_ENOMEM, the read errors. */
SHOAL_API shoal_err shoal_auth_show(shoal_replica *r, char **json);

/* Orphans (docs/permissions.md, "Orphans"): this replica's own changes
 * that are VOID here (its key was revoked below them or proven to
 * equivocate, or its certificate was issued by a revoked admin past its
 * cut).  They stay in the log and are never lost: shoal_orphans lists
 * them as one line of JSON, an array of {"change", "seq", "collection",
 * "doc", "ops"}, each op {"op": "set"|"unset"|"incr"|"insert"|"remove"|
 * "replace"|"delete", "field", "value" or "by"}; Caller owns *json, free
 * with shoal_free().  shoal_orphan_reauthor re-issues them on dst (a
 * replica with another key, for example the device's new one) as new
 * changes, one per orphan, checked by dst's permissions like any write:
 * register and counter ops and deletes as they were, list inserts
 * appended at the end of the list; list removes and replaces (of elements
 * of the VOID history) are left out.  *count (may be NULL): the changes
 * made.  Errors: SHOAL_EINVAL (NULL, r == dst), dst's commit errors
 * (SHOAL_EPERM: its roles do not allow one; those before it are
 * committed), the read errors. */
SHOAL_API shoal_err shoal_orphans(shoal_replica *r, char **json);
SHOAL_API shoal_err shoal_orphan_reauthor(shoal_replica *r, shoal_replica *dst, size_t *count);

/* --------------------------------------------------------------- network */

/* Live sync over ZeroMQ.  Links are encrypted and both ends authenticated
 * with CurveZMQ, using X25519 keys derived from each replica's Ed25519
 * identity.  A background engine thread per replica owns every socket; it
 * is started by the first shoal_net_* call other than shoal_net_peers, and
 * a call after shoal_net_stop starts a new one (the allow and disallow
 * settings are re-applied; listeners and links are not).  Endpoints are
 * ZeroMQ endpoints of at most 255 bytes ("tcp://HOST:PORT";
 * "tcp://127.0.0.1:*" lets the OS pick the port).  Every change received
 * goes through the same verify -> causal apply -> store path as
 * shoal_import.  See docs/protocol.md and docs/security.md.
 *
 * Thread: any thread.  These calls send the engine a command and wait for
 * it to be carried out, without holding the replica lock (they take it
 * only to record an errmsg); shoal_net_sync waits up to its timeout.
 * Starting the engine can fail with SHOAL_ENOMEM, SHOAL_ETRANSPORT or a
 * read error (the stored peer records): call these the start errors.
 * SHOAL_ECLOSED means the engine was stopping (shoal_net_stop or close). */

/* Admit the peer whose public key is peer_key (SHOAL_KEY_BYTES, Borrowed)
 * on this replica's listening endpoints (and undo shoal_net_disallow of
 * it).  Without any allowed key and without shoal_net_allow_any, every
 * incoming link is refused.  Errors: SHOAL_EINVAL (NULL, or not a valid
 * Ed25519 public key), the start errors. */
SHOAL_API shoal_err shoal_net_allow(shoal_replica *r, const uint8_t *peer_key);
/* Revoke peer_key (SHOAL_KEY_BYTES, Borrowed) at run time: take it off the
 * allow-list, refuse its future handshakes (even under
 * shoal_net_allow_any), and close every link up with it now, incoming or
 * outgoing; each closing and each refusal is logged and recorded in its
 * peer state (last_error, refused).  shoal_net_allow admits it again.
 * Changes it already wrote, or writes and others forward, are still
 * accepted: the allow-list decides who may link, not who may write.
 * Errors: SHOAL_EINVAL (NULL, or not a valid Ed25519 public key),
 * SHOAL_ECLOSED, the start errors. */
SHOAL_API shoal_err shoal_net_disallow(shoal_replica *r, const uint8_t *peer_key);
/* Admit every peer that completes a CurveZMQ handshake (any key) except
 * disallowed keys.  An explicit choice, never the default.  Errors: the
 * start errors. */
SHOAL_API shoal_err shoal_net_allow_any(shoal_replica *r, bool any);
/* Bind endpoint (Borrowed) and accept links from allowed peers.  *bound
 * receives the endpoint actually bound (the port the OS picked); Caller
 * owns; free with shoal_free().  bound may be NULL.  Errors: SHOAL_EINVAL
 * (NULL, empty, too long or not an endpoint ZeroMQ can bind),
 * SHOAL_EBUSY (address already in use), SHOAL_ETRANSPORT (any other
 * socket error), SHOAL_ECLOSED, the start errors. */
SHOAL_API shoal_err shoal_net_listen(shoal_replica *r, const char *endpoint, char **bound);
/* Keep a link to the replica with key peer_key (Borrowed) listening at
 * endpoint (Borrowed): handshake, catch up both ways, then push changes
 * live; reconnect with back-off after a failure, for as long as the engine
 * runs or until shoal_net_disconnect.  Returns once the link is set up, not
 * once it is connected (shoal_net_peers shows its state); a second call
 * with the same endpoint and key is a no-op.  Errors: SHOAL_EINVAL (NULL
 * or empty endpoint, NULL or invalid key, an endpoint ZeroMQ rejects),
 * SHOAL_EBUSY (a link to endpoint with another key exists),
 * SHOAL_ETRANSPORT, SHOAL_ECLOSED, the start errors. */
SHOAL_API shoal_err shoal_net_connect(shoal_replica *r, const char *endpoint,
                                      const uint8_t *peer_key);
/* Close the link that shoal_net_connect made to endpoint (Borrowed).
 * Errors: SHOAL_EINVAL (NULL), SHOAL_ENOTFOUND (no such link),
 * SHOAL_ECLOSED, the start errors. */
SHOAL_API shoal_err shoal_net_disconnect(shoal_replica *r, const char *endpoint);
/* One-shot sync: connect, exchange, and return SHOAL_OK once each side holds
 * every change the other held when the sync began.  endpoint and peer_key
 * are Borrowed.  SHOAL_EREFUSED when the peer refuses the link,
 * SHOAL_ETIMEDOUT when it cannot be reached or the exchange does not
 * finish within timeout_ms (a value <= 0 gives up at the engine's first
 * check: there is no "forever").  Other errors: SHOAL_EINVAL (as
 * shoal_net_connect), SHOAL_ETRANSPORT (the link dropped), SHOAL_ECLOSED,
 * the start errors, or the error that ended the exchange: the peer's input
 * rejected here (SHOAL_EPROTO, SHOAL_EBADSIG, SHOAL_ETRUNC, SHOAL_ETOOBIG,
 * SHOAL_EVERSION), a write error applying it, or the code the peer sent in
 * its ERROR frame: passed on if it is one of the shoal_err error codes
 * above, SHOAL_EPROTO for any other number (so the result is always a
 * code this header names). */
SHOAL_API shoal_err shoal_net_sync(shoal_replica *r, const char *endpoint, const uint8_t *peer_key,
                                   int timeout_ms);
/* Stop the engine: close every link and socket (shoal_replica_close does
 * it too).  It waits for shoal_net_* calls in progress (a running
 * shoal_net_sync for up to its timeout).  Safe to call when no engine
 * runs. */
SHOAL_API void shoal_net_stop(shoal_replica *r);

/* Per-peer state: every peer this replica has linked with, connected now
 * or not (persisted in the replica directory), and refused attempts.  A
 * snapshot, a plain value: one thread at a time.  Counters are totals
 * over every run of the engine. */
typedef struct shoal_peers shoal_peers;

typedef enum shoal_peer_stat {
    SHOAL_PS_CONNECTED = 1,      /* 1 if a link is up now */
    SHOAL_PS_LAST_SEEN_MS = 2,   /* wall ms of the last frame received */
    SHOAL_PS_SENT = 3,           /* changes sent */
    SHOAL_PS_RECEIVED = 4,       /* changes received (applied, duplicate or pending) */
    SHOAL_PS_LAG = 5,            /* changes we hold that the peer is not known to hold */
    SHOAL_PS_REJECTED = 6,       /* frames or changes rejected (malformed, bad signature) */
    SHOAL_PS_CONNECTS = 7,       /* handshakes completed */
    SHOAL_PS_REFUSED = 8,        /* links refused (by us or by the peer) */
    SHOAL_PS_EQUIVOCATIONS = 9,  /* conflicting changes this peer showed us */
    SHOAL_PS_VIEW_DOCS = 10,     /* a partial peer: documents in its view as our last link
                                    with it knew them (0 for a full peer) */
    SHOAL_PS_SENT_BYTES = 11,    /* envelope bytes of the changes sent */
    SHOAL_PS_RECEIVED_BYTES = 12 /* envelope bytes of the changes received */
} shoal_peer_stat;

/* The running engine's live records merged with the stored ones; does not
 * start the engine.  Errors: SHOAL_ENOMEM, the read errors.  Thread: any
 * thread.  Caller owns *out; free with shoal_peers_free(). */
SHOAL_API shoal_err shoal_net_peers(shoal_replica *r, shoal_peers **out);
/* NULL is a no-op. */
SHOAL_API void shoal_peers_free(shoal_peers *p);
SHOAL_API size_t shoal_peers_count(const shoal_peers *p);
/* In the accessors below, i must be below shoal_peers_count(p) (asserted). */
/* Key of peer i (SHOAL_KEY_BYTES); Borrowed until shoal_peers_free(p). */
SHOAL_API const uint8_t *shoal_peers_key(const shoal_peers *p, size_t i);
/* Endpoint we connect to for peer i, or "" for a peer that connected to us;
 * Borrowed until shoal_peers_free(p). */
SHOAL_API const char *shoal_peers_endpoint(const shoal_peers *p, size_t i);
/* Statistic which of peer i (0 for a value that is not a shoal_peer_stat). */
SHOAL_API uint64_t shoal_peers_stat(const shoal_peers *p, size_t i, shoal_peer_stat which);
/* A partial peer's subscriptions as its last link with us gave them,
 * "name: coll WHERE pred" joined by "; " (cut at 511 bytes), or "" for a
 * full peer; Borrowed until shoal_peers_free(p). */
SHOAL_API const char *shoal_peers_subscriptions(const shoal_peers *p, size_t i);
/* Text of the last error on the link with peer i ("" if none); Borrowed
 * until shoal_peers_free(p). */
SHOAL_API const char *shoal_peers_last_error(const shoal_peers *p, size_t i);

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_INCLUDE_SHOAL_H */
