/*
 * core/apply_mem.h - an in-memory store for the apply pipeline (apply.h):
 * applied changes, pending set, evidence and document states in arrays and
 * hash maps, with transactions (a rolled-back import leaves nothing).  For
 * tests and fuzzing: the same pipeline as a replica's, without LMDB.  Not
 * thread-safe; one user at a time.
 */
#ifndef SHOAL_CORE_APPLY_MEM_H
#define SHOAL_CORE_APPLY_MEM_H

#include "apply.h"

typedef struct shoal__memstore shoal__memstore;

/* Caller owns *out; free with shoal__memstore_free (NULL is a no-op). */
int shoal__memstore_new(shoal__memstore **out);
void shoal__memstore_free(shoal__memstore *m);

/* Import count verified records (shoal__recs_open, or records the caller
 * built from envelopes it trusts) as shoal_import does: decode, then one
 * drain in a transaction of m, rerun without a stored pending change that
 * fails to apply; on error nothing changes.  wall: the wall time in ms;
 * *clock: the HLC, observed by every applied change.  res may be NULL. */
int shoal__memstore_import(shoal__memstore *m, const shoal__rec *recs, size_t count, uint64_t wall,
                           uint64_t max_drift_ms, uint64_t *clock, shoal_import_result *res);

/* The visible-state or full-state digest (docs/digests.md) of m's
 * documents, byte for byte what shoal_digest gives for the same state. */
int shoal__memstore_digest(shoal__memstore *m, bool full, uint8_t out[SHOAL_DIGEST_BYTES]);

/* The state of document (coll, id), Borrowed until the next call on m, and
 * its heads (sorted ascending); NULL if m holds no change of it. */
const shoal__doc *shoal__memstore_doc(shoal__memstore *m, const uint8_t *coll, size_t clen,
                                      const uint8_t *id, size_t idlen, const uint8_t **heads,
                                      size_t *nheads);
/* The state of document (coll, id) over the closure of deps
 * (shoal__apply_doc_at), Caller owns *out; NULL when the deps reach none
 * of its changes. */
int shoal__memstore_doc_at(shoal__memstore *m, const uint8_t *coll, size_t clen, const uint8_t *id,
                           size_t idlen, const uint8_t *deps, size_t ndeps, shoal__doc **out);
/* Enforce permissions with this root key (docs/permissions.md; NULL: open
 * mode, the default): every change is judged (shoal__authz_judge). */
void shoal__memstore_set_root(shoal__memstore *m, const uint8_t root[SHOAL_KEY_BYTES]);
/* Changes held as REJECTed; whether cid is one. */
uint64_t shoal__memstore_rejected(shoal__memstore *m);
bool shoal__memstore_is_rejected(shoal__memstore *m, const uint8_t cid[SHOAL__ID_BYTES]);
/* Counts: applied changes, pending changes, evidence envelopes. */
uint64_t shoal__memstore_applied(shoal__memstore *m);
uint64_t shoal__memstore_pending(shoal__memstore *m);
uint64_t shoal__memstore_evidence(shoal__memstore *m);

#endif /* SHOAL_CORE_APPLY_MEM_H */
