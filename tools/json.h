/*
 * tools/json.h - JSON forms of shoal values, documents, version vectors and
 * the per-peer state, shared by the command-line tools.
 *
 * The JSON form of a scalar:
 *   nil -> null, bool -> true/false, int64 -> integer, finite double -> real
 *   (-0.0 kept), non-finite double -> {"$float": "nan" | "inf" | "-inf"},
 *   string -> string, binary -> {"$bytes": "<standard base64, padded>"}.
 * A document is an object of its visible fields: registers as scalars,
 * counters as integers, lists as arrays of scalars.  A version vector is an
 * object {author_hex: seq}.
 *
 * These helpers use only the public API (shoal.h), jansson and (for
 * base64) libsodium.
 */
#ifndef SHOAL_TOOLS_JSON_H
#define SHOAL_TOOLS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shoal.h"

/* Compact JSON text of j (Borrowed), keys sorted bytewise: the output of
 * json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY), except
 * that reals use the shortest digits that read back to the same double.
 * Caller owns the result; free with free().  NULL when out of memory. */
char *shoal__json_dumps(const json_t *j);

/* Size of an error message buffer for the functions below. */
enum {
    SHOAL_JSON_ERRLEN = 256
};

/* A scalar converted from JSON: the value, plus the buffer that a binary
 * value points into (NULL otherwise).  Caller owns buf; free with free(). */
typedef struct shoal_json_scalar {
    shoal_value value;
    uint8_t *buf; /* decoded $bytes; owned by this struct */
} shoal_json_scalar;

/* The JSON form of v.  Caller owns the result (a new reference); NULL when
 * out of memory or when a string is not valid UTF-8. */
json_t *shoal__json_from_value(const shoal_value *v);

/* Convert j (Borrowed) to a scalar.  Returns 0, or -1 with a one-line
 * message in err (errlen bytes) when j is an array, an object other than
 * the $bytes / $float forms, or a malformed form.  On success the caller
 * owns out->buf. */
int shoal__json_to_scalar(const json_t *j, shoal_json_scalar *out, char *err, size_t errlen);

/* The JSON object of document d (Borrowed).  Caller owns the result; NULL
 * with a message in err on failure. */
json_t *shoal__json_from_doc(const shoal_doc *d, char *err, size_t errlen);

/* The JSON object of version vector vv (Borrowed).  Caller owns the result;
 * NULL when out of memory. */
json_t *shoal__json_from_vv(const shoal_vv *vv);

/* Fill vv (empty, caller-owned) from the object j printed by
 * shoal__json_from_vv.  Returns 0, or -1 with a message in err. */
int shoal__json_to_vv(const json_t *j, shoal_vv *vv, char *err, size_t errlen);

/* The JSON array of peers p (Borrowed), one object per peer with its key,
 * endpoint, every shoal_peer_stat and last_error.  Caller owns the result;
 * NULL when out of memory. */
json_t *shoal__json_from_peers(const shoal_peers *p);

#endif /* SHOAL_TOOLS_JSON_H */
