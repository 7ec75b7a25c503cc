/*
 * base/sizes.h - the named sizes of shoal's fixed-width byte strings, so
 * that code says what a 32 or a 64 is.  Part of the formats (docs/format.md,
 * docs/storage.md): changing one is a format change.
 */
#ifndef SHOAL_BASE_SIZES_H
#define SHOAL_BASE_SIZES_H

#include "shoal.h" /* SHOAL_KEY_BYTES (32): an Ed25519 public key, an author */

enum {
    SHOAL__ID_BYTES = 32,  /* a change id: BLAKE2b-256 of the signed bytes */
    SHOAL__SIG_BYTES = 64, /* an Ed25519 signature */
    SHOAL__SK_BYTES = 64,  /* an Ed25519 secret key (libsodium: seed | public key) */
    SHOAL__SEQ_BYTES = 8,  /* a seq in a key: u64 BE */
    /* author | seq: the key of an (author, seq) (keys.h) */
    SHOAL__SEQKEY_BYTES = SHOAL_KEY_BYTES + SHOAL__SEQ_BYTES,
    /* coll NUL id (keys.h): at most 128 + 1 + 256 bytes with the public
     * limits, below LMDB's 511-byte key limit */
    SHOAL__DOCKEY_MAX = SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_DOC_ID
};

#endif /* SHOAL_BASE_SIZES_H */
