/*
 * base/keys.h - builders of the two composite keys every module uses
 * (keys.c); their bytes are part of the store's layout (docs/storage.md).
 *
 *   author | seq     SHOAL_KEY_BYTES author key, then seq as u64 BE: sorts
 *                    by author, then numerically by seq
 *   coll NUL id      a collection and a document id (neither holds a NUL)
 */
#ifndef SHOAL_BASE_KEYS_H
#define SHOAL_BASE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "sizes.h"

/* author | seq (u64 BE) into out; returns SHOAL__SEQKEY_BYTES. */
size_t shoal__seqkey(uint8_t out[SHOAL__SEQKEY_BYTES], const uint8_t author[SHOAL_KEY_BYTES],
                     uint64_t seq);
/* "coll\0id" into out (SHOAL__DOCKEY_MAX bytes); returns its length.  The
 * caller has checked the names (no NUL, within the public limits). */
size_t shoal__dockey(uint8_t *out, const uint8_t *coll, size_t clen, const uint8_t *id,
                     size_t idlen);

#endif /* SHOAL_BASE_KEYS_H */
