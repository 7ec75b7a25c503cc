/*
 * base/keys.c - the author | seq and coll NUL id keys (keys.h).
 */
#include "keys.h"

#include <string.h>

#include "be.h"

size_t
shoal__seqkey(uint8_t out[SHOAL__SEQKEY_BYTES], const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq)
{
    memcpy(out, author, SHOAL_KEY_BYTES);
    shoal__be64_put(out + SHOAL_KEY_BYTES, seq);
    return SHOAL__SEQKEY_BYTES;
}

size_t
shoal__dockey(uint8_t *out, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen)
{
    memcpy(out, coll, clen);
    out[clen] = 0;
    memcpy(out + clen + 1, id, idlen);
    return clen + 1 + idlen;
}
