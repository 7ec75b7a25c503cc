/*
 * shoal.h - the one public header of shoal, a peer-to-peer CRDT
 * replication library.
 *
 * Conventions used in every comment below:
 *   Borrowed.              only read during the call; the caller keeps it.
 *   Borrowed until X.      points into shoal memory, valid until event X.
 *   Caller owns; free with F.  freshly allocated result.
 *
 * Thread safety: a shoal_replica may be used from several threads at once;
 * every function that takes one locks internally.  Smaller handles
 * (shoal_txn, shoal_doc, shoal_vv, shoal_strlist, shoal_event) belong to one
 * thread at a time.  Programmer errors (NULL where a pointer is required, use
 * after free) are assertions, not error codes.
 *
 * Strings (collection, document id, field name) are NUL-terminated UTF-8;
 * invalid UTF-8 or an over-long name is SHOAL_EINVAL.
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

/* Error codes.  Values are ABI: append only, never renumber. */
typedef enum shoal_err {
    SHOAL_OK = 0,
    SHOAL_ENOMEM = 1,      /* out of memory */
    SHOAL_EINVAL = 2,      /* invalid argument */
    SHOAL_ENOTFOUND = 3,   /* no such document, field or entry */
    SHOAL_ECLOSED = 4,     /* replica closed */
    SHOAL_ETIMEDOUT = 5,   /* timed out */
    SHOAL_ENOSPC = 6,      /* disk full */
    SHOAL_EPROTO = 7,      /* input malformed (wrong type, trailing bytes, non-canonical) */
    SHOAL_EBADSIG = 8,     /* signature check failed; input dropped unparsed */
    SHOAL_ECORRUPT = 9,    /* stored state failed validation */
    SHOAL_ESTORE = 10,     /* storage error with no closer mapping */
    SHOAL_ETRANSPORT = 11, /* network error with no closer mapping */
    SHOAL_EDELETED = 12,   /* the document is deleted */
    SHOAL_EKIND = 13,      /* the field holds another kind (register, counter, list) */
    SHOAL_ERANGE = 14,     /* list index out of range */
    SHOAL_ETRUNC = 15,     /* input ends before its declared length */
    SHOAL_ETOOBIG = 16,    /* input or state exceeds a documented bound */
    SHOAL_EVERSION = 17,   /* unknown format version */
    SHOAL_EREADONLY = 18,  /* replica directory or file not writable */
    SHOAL_EBUSY = 19,      /* transaction already open on this handle, or similar misuse */
    SHOAL_EREFUSED = 20    /* the peer refused the link (key not allowed, handshake failed) */
} shoal_err;

/* A static string describing err; never NULL, never freed. */
SHOAL_API const char *shoal_strerror(shoal_err err);

/* "MAJOR.MINOR.PATCH" of the library actually linked.  Static string. */
SHOAL_API const char *shoal_version(void);
/* SHOAL_VERSION_MAJOR * 10000 + MINOR * 100 + PATCH of the linked library. */
SHOAL_API int shoal_version_number(void);
/* Runtime copies of the size constants, for bindings that cannot read enums. */
SHOAL_API size_t shoal_key_bytes(void);

/* Free memory that shoal returned with "free with shoal_free()".  NULL is a no-op. */
SHOAL_API void shoal_free(void *p);

/* ---------------------------------------------------------------- values */

typedef enum shoal_type {
    SHOAL_T_NIL = 0,
    SHOAL_T_BOOL = 1,
    SHOAL_T_INT = 2,    /* int64 */
    SHOAL_T_DOUBLE = 3, /* IEEE-754 binary64 */
    SHOAL_T_STR = 4,    /* UTF-8, ptr/len, not NUL-terminated on output */
    SHOAL_T_BYTES = 5   /* binary, ptr/len */
} shoal_type;

/* A scalar value.  A small transparent view: only the member named by type
 * is meaningful.  On input ptr is Borrowed; on output it is Borrowed until
 * the object it was read from (shoal_doc) is freed. */
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

typedef struct shoal_options shoal_options;

/* Caller owns *out; free with shoal_options_free(). */
SHOAL_API shoal_err shoal_options_new(shoal_options **out);
SHOAL_API void shoal_options_free(shoal_options *o);
/* Durable (the default): every commit is fsynced before it returns.
 * Not durable: commits are written but not fsynced; shoal_replica_flush()
 * or close syncs.  A process crash loses nothing; an OS crash or power loss
 * can lose the commits since the last sync (see docs/c-api.md). */
SHOAL_API shoal_err shoal_options_set_durable(shoal_options *o, bool durable);
/* Initial LMDB map size in bytes (it grows on demand). */
SHOAL_API shoal_err shoal_options_set_map_size(shoal_options *o, uint64_t bytes);
/* How far (ms) a remote HLC may be ahead of the local wall clock before its
 * change is held back in the pending set until its time.  Default 60000. */
SHOAL_API shoal_err shoal_options_set_max_drift_ms(shoal_options *o, uint64_t ms);
/* Replace the wall clock (milliseconds since the epoch); for tests.
 * now_ms is called with ctx under the replica lock. */
SHOAL_API shoal_err shoal_options_set_clock(shoal_options *o, uint64_t (*now_ms)(void *ctx),
                                            void *ctx);

/* Log messages of the library (network engine, relay): level is one of
 * shoal_log_level; msg is Borrowed for the call.  fn is called from the
 * library's threads (the network engine's among them), never with a
 * replica lock held, and must not call back into shoal. */
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

/* Create or open the replica in directory dir (created if missing).  On the
 * first open an Ed25519 identity is generated and its secret key stored
 * owner-only.  opts may be NULL (defaults); Borrowed.  On failure *out is
 * NULL.  Caller owns *out; close with shoal_replica_close(). */
SHOAL_API shoal_err shoal_replica_open(shoal_replica **out, const char *dir,
                                       const shoal_options *opts);
/* Sync and close.  NULL is a harmless no-op. */
SHOAL_API void shoal_replica_close(shoal_replica *r);
/* Text of the last error on r in this thread's last call; Borrowed until the
 * next call on r.  Never NULL. */
SHOAL_API const char *shoal_replica_errmsg(shoal_replica *r);
/* The replica's public key (its author id), SHOAL_KEY_BYTES bytes; Borrowed
 * until close. */
SHOAL_API const uint8_t *shoal_replica_id(shoal_replica *r);
/* Force every commit so far to disk (useful in non-durable mode). */
SHOAL_API shoal_err shoal_replica_flush(shoal_replica *r);

/* ---------------------------------------------------------- transactions */

/* A transaction gathers edits over one or more documents and commits them
 * atomically: one signed change per document, each with its own HLC tick.
 * Edits are resolved (list indexes included) at commit, in order, against
 * the newest state; reads do not see uncommitted edits.  A txn belongs to
 * one thread.  Caller owns *out; end it with commit or abort. */
typedef struct shoal_txn shoal_txn;

SHOAL_API shoal_err shoal_txn_begin(shoal_replica *r, shoal_txn **out);
/* Commit and free txn (always freed, even on error).  On error nothing of
 * the txn is stored.  Durable on return unless the replica is non-durable. */
SHOAL_API SHOAL_NODISCARD shoal_err shoal_txn_commit(shoal_txn *txn);
/* Drop txn's edits and free it.  NULL is a no-op. */
SHOAL_API void shoal_txn_abort(shoal_txn *txn);

/* Edits.  All strings and values are Borrowed (copied into the txn).
 * Argument errors (bad names, oversized values) are returned at once;
 * state errors (index out of range, wrong kind) are returned by commit. */
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
 * next epoch. */
SHOAL_API shoal_err shoal_txn_delete(shoal_txn *t, const char *coll, const char *id);

/* ----------------------------------------------------------------- reads */

/* A read-only copy of one live document's visible state. */
typedef struct shoal_doc shoal_doc;

/* SHOAL_OK and *out for a live document; SHOAL_EDELETED if it is deleted;
 * SHOAL_ENOTFOUND if this replica never saw it.  Caller owns *out; free with
 * shoal_doc_free(). */
SHOAL_API shoal_err shoal_doc_get(shoal_replica *r, const char *coll, const char *id,
                                  shoal_doc **out);
SHOAL_API void shoal_doc_free(shoal_doc *d);
SHOAL_API uint64_t shoal_doc_epoch(const shoal_doc *d);
/* Visible fields, sorted by name (bytewise). */
SHOAL_API size_t shoal_doc_field_count(const shoal_doc *d);
/* Borrowed until shoal_doc_free(d). */
SHOAL_API const char *shoal_doc_field_name(const shoal_doc *d, size_t i);
SHOAL_API shoal_kind shoal_doc_field_kind(const shoal_doc *d, size_t i);
/* Index of field name, or SHOAL_ENOTFOUND. */
SHOAL_API shoal_err shoal_doc_field_find(const shoal_doc *d, const char *name, size_t *i);
/* Register value of field i (SHOAL_EKIND for another kind); out's pointers
 * are Borrowed until shoal_doc_free(d). */
SHOAL_API shoal_err shoal_doc_field_value(const shoal_doc *d, size_t i, shoal_value *out);
/* Counter value of field i (SHOAL_EKIND for another kind). */
SHOAL_API shoal_err shoal_doc_field_counter(const shoal_doc *d, size_t i, int64_t *out);
/* Length of list field i (SHOAL_EKIND for another kind). */
SHOAL_API shoal_err shoal_doc_field_list_len(const shoal_doc *d, size_t i, size_t *out);
/* Element j of list field i. */
SHOAL_API shoal_err shoal_doc_field_list_item(const shoal_doc *d, size_t i, size_t j,
                                              shoal_value *out);

/* A list of strings (document ids, collection names), sorted bytewise. */
typedef struct shoal_strlist shoal_strlist;
SHOAL_API size_t shoal_strlist_count(const shoal_strlist *l);
/* Borrowed until shoal_strlist_free(l). */
SHOAL_API const char *shoal_strlist_get(const shoal_strlist *l, size_t i);
SHOAL_API void shoal_strlist_free(shoal_strlist *l);

/* Ids of the live documents of coll.  Caller owns *out. */
SHOAL_API shoal_err shoal_docs(shoal_replica *r, const char *coll, shoal_strlist **out);
/* Names of the collections that hold at least one live document. */
SHOAL_API shoal_err shoal_collections(shoal_replica *r, shoal_strlist **out);

/* ---------------------------------------------------------------- events */

/* Every commit and every import that changes a document queues one event per
 * document on the replica handle that made it (bounded; on overflow the
 * oldest are dropped and the next event has overflowed set).  Events from
 * other processes sharing the directory are not seen. */
typedef struct shoal_event shoal_event;

/* Wait up to timeout_ms (0: do not wait, <0: forever) for the next event.
 * SHOAL_ETIMEDOUT when none came; SHOAL_ECLOSED once the replica is closing.
 * Caller owns *out; free with shoal_event_free(). */
SHOAL_API shoal_err shoal_event_next(shoal_replica *r, int timeout_ms, shoal_event **out);
SHOAL_API void shoal_event_free(shoal_event *e);
/* Borrowed until shoal_event_free(e). */
SHOAL_API const char *shoal_event_collection(const shoal_event *e);
SHOAL_API const char *shoal_event_doc_id(const shoal_event *e);
/* true if the change came from another replica (import or sync). */
SHOAL_API bool shoal_event_remote(const shoal_event *e);
/* true if events were dropped before this one. */
SHOAL_API bool shoal_event_overflowed(const shoal_event *e);

/* ------------------------------------------------------- version vectors */

/* author -> highest contiguous seq applied (and that change's id). */
typedef struct shoal_vv shoal_vv;

/* An empty vector.  Caller owns *out; free with shoal_vv_free(). */
SHOAL_API shoal_err shoal_vv_new(shoal_vv **out);
SHOAL_API void shoal_vv_free(shoal_vv *vv);
/* Set author's seq (author: SHOAL_KEY_BYTES bytes, Borrowed). */
SHOAL_API shoal_err shoal_vv_set(shoal_vv *vv, const uint8_t *author, uint64_t seq);
/* Entries sorted by author key. */
SHOAL_API size_t shoal_vv_count(const shoal_vv *vv);
/* author is Borrowed until shoal_vv_free(vv). */
SHOAL_API shoal_err shoal_vv_entry(const shoal_vv *vv, size_t i, const uint8_t **author,
                                   uint64_t *seq);
/* seq of author, 0 if absent. */
SHOAL_API uint64_t shoal_vv_get(const shoal_vv *vv, const uint8_t *author);

/* The replica's version vector.  Caller owns *out. */
SHOAL_API shoal_err shoal_replica_version(shoal_replica *r, shoal_vv **out);

/* --------------------------------------------------------------- bundles */

/* The signed changes that a replica at version since lacks (all if since is
 * NULL), in causal order, as bundle bytes.  Caller owns *out; free with
 * shoal_free(). */
SHOAL_API shoal_err shoal_export(shoal_replica *r, const shoal_vv *since, uint8_t **out,
                                 size_t *out_len);

typedef struct shoal_import_result {
    uint64_t applied;       /* changes applied now (including pending ones they released) */
    uint64_t duplicate;     /* changes already held: no-ops */
    uint64_t pending;       /* changes stored, waiting for their dependencies or their time */
    uint64_t equivocations; /* conflicting changes for one (author, seq): evidence kept */
} shoal_import_result;

/* Verify every signature, decode every change, then apply in one write
 * transaction.  A bundle holding any invalid change is rejected whole
 * (SHOAL_EBADSIG, SHOAL_EPROTO, SHOAL_ETRUNC, SHOAL_ETOOBIG, SHOAL_EVERSION)
 * and nothing changes.  bundle is Borrowed; res may be NULL. */
SHOAL_API SHOAL_NODISCARD shoal_err shoal_import(shoal_replica *r, const uint8_t *bundle,
                                                 size_t len, shoal_import_result *res);

/* --------------------------------------------------------------- digests */

/* Visible-state digest (full = false) or full-state digest (full = true),
 * SHOAL_DIGEST_BYTES bytes into out.  Defined in docs/format.md. */
SHOAL_API shoal_err shoal_digest(shoal_replica *r, bool full, uint8_t *out);

/* Number of changes waiting in the pending set. */
SHOAL_API shoal_err shoal_pending_count(shoal_replica *r, uint64_t *out);

/* Authors caught equivocating (two different signed changes with one
 * (author, seq)).  Caller owns *out (hex keys). */
SHOAL_API shoal_err shoal_equivocators(shoal_replica *r, shoal_strlist **out);

/* --------------------------------------------------------------- network */

/* Live sync over ZeroMQ.  Links are encrypted and both ends authenticated
 * with CurveZMQ, using X25519 keys derived from each replica's Ed25519
 * identity.  A background engine thread per replica, started on first use,
 * owns every socket; these functions only send it commands and are safe to
 * call from any thread.  Endpoints are ZeroMQ endpoints ("tcp://HOST:PORT";
 * "tcp://127.0.0.1:*" lets the OS pick the port).  Every change received
 * goes through the same verify -> causal apply -> store path as
 * shoal_import.  See docs/protocol.md and docs/security.md. */

/* Admit the peer whose public key is peer_key (SHOAL_KEY_BYTES, Borrowed)
 * on this replica's listening endpoints.  Without any allowed key and
 * without shoal_net_allow_any, every incoming link is refused. */
SHOAL_API shoal_err shoal_net_allow(shoal_replica *r, const uint8_t *peer_key);
/* Revoke peer_key (SHOAL_KEY_BYTES, Borrowed) at run time: take it off the
 * allow-list, refuse its future handshakes (even under
 * shoal_net_allow_any), and close every link up with it now, incoming or
 * outgoing; each closing and each refusal is logged and recorded in its
 * peer state (last_error, refused).  shoal_net_allow admits it again.
 * Changes it already wrote, or writes and others forward, are still
 * accepted: the allow-list decides who may link, not who may write. */
SHOAL_API shoal_err shoal_net_disallow(shoal_replica *r, const uint8_t *peer_key);
/* Admit every peer that completes a CurveZMQ handshake (any key).  An
 * explicit choice, never the default. */
SHOAL_API shoal_err shoal_net_allow_any(shoal_replica *r, bool any);
/* Bind endpoint and accept links from allowed peers.  *bound receives the
 * endpoint actually bound (the port the OS picked); Caller owns; free with
 * shoal_free().  bound may be NULL. */
SHOAL_API shoal_err shoal_net_listen(shoal_replica *r, const char *endpoint, char **bound);
/* Keep a link to the replica with key peer_key listening at endpoint:
 * handshake, catch up both ways, then push changes live; reconnect with
 * back-off after a failure, for as long as the replica is open or until
 * shoal_net_disconnect. */
SHOAL_API shoal_err shoal_net_connect(shoal_replica *r, const char *endpoint,
                                      const uint8_t *peer_key);
SHOAL_API shoal_err shoal_net_disconnect(shoal_replica *r, const char *endpoint);
/* One-shot sync: connect, exchange, and return SHOAL_OK once each side holds
 * every change the other held when the sync began.  SHOAL_EREFUSED when
 * the peer refuses the link, SHOAL_ETIMEDOUT when it cannot be reached or
 * the exchange does not finish within timeout_ms. */
SHOAL_API shoal_err shoal_net_sync(shoal_replica *r, const char *endpoint, const uint8_t *peer_key,
                                   int timeout_ms);
/* Stop the engine: close every link and socket (shoal_replica_close does
 * it too).  Safe to call when no engine runs. */
SHOAL_API void shoal_net_stop(shoal_replica *r);

/* Per-peer state: every peer this replica has linked with, connected now
 * or not (persisted in the replica directory), and refused attempts. */
typedef struct shoal_peers shoal_peers;

typedef enum shoal_peer_stat {
    SHOAL_PS_CONNECTED = 1,    /* 1 if a link is up now */
    SHOAL_PS_LAST_SEEN_MS = 2, /* wall ms of the last frame received */
    SHOAL_PS_SENT = 3,         /* changes sent */
    SHOAL_PS_RECEIVED = 4,     /* changes received (applied, duplicate or pending) */
    SHOAL_PS_LAG = 5,          /* changes we hold that the peer is not known to hold */
    SHOAL_PS_REJECTED = 6,     /* frames or changes rejected (malformed, bad signature) */
    SHOAL_PS_CONNECTS = 7,     /* handshakes completed */
    SHOAL_PS_REFUSED = 8,      /* links refused (by us or by the peer) */
    SHOAL_PS_EQUIVOCATIONS = 9 /* conflicting changes this peer showed us */
} shoal_peer_stat;

/* Caller owns *out; free with shoal_peers_free(). */
SHOAL_API shoal_err shoal_net_peers(shoal_replica *r, shoal_peers **out);
SHOAL_API void shoal_peers_free(shoal_peers *p);
SHOAL_API size_t shoal_peers_count(const shoal_peers *p);
/* Key of peer i (SHOAL_KEY_BYTES); Borrowed until shoal_peers_free(p). */
SHOAL_API const uint8_t *shoal_peers_key(const shoal_peers *p, size_t i);
/* Endpoint we connect to for peer i, or "" for a peer that connected to us;
 * Borrowed until shoal_peers_free(p). */
SHOAL_API const char *shoal_peers_endpoint(const shoal_peers *p, size_t i);
SHOAL_API uint64_t shoal_peers_stat(const shoal_peers *p, size_t i, shoal_peer_stat which);
/* Text of the last error on the link with peer i ("" if none); Borrowed
 * until shoal_peers_free(p). */
SHOAL_API const char *shoal_peers_last_error(const shoal_peers *p, size_t i);

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_INCLUDE_SHOAL_H */
