/*
 * core/digest.h - the digest stream of docs/digests.md (core/digest.c),
 * written in one place for its two users: shoal_digest over the store and
 * the in-memory store of tests and fuzzing (core/apply_mem.c), which must
 * give the same bytes for the same state.
 *
 * Only the stream lives here; each user finds its documents and sorts them
 * in (coll, id) order itself.
 */
#ifndef SHOAL_CORE_DIGEST_H
#define SHOAL_CORE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "crdt.h"

/* Start the stream: the domain string of a full or a visible digest. */
void shoal__digest_begin(crypto_generichash_state *st, bool full);
/* Add one document: its collection, id and (full or visible) encoding,
 * each length-prefixed.  scratch holds the encoding (its bytes are
 * replaced).  SHOAL_ENOMEM, or SHOAL_ETOOBIG for an encoding of 4 GiB or
 * more (its length prefix is a u32). */
int shoal__digest_doc(crypto_generichash_state *st, bool full, const uint8_t *coll, size_t clen,
                      const uint8_t *id, size_t idlen, const shoal__doc *d, shoal__buf *scratch);

#endif /* SHOAL_CORE_DIGEST_H */
