/*
 * tools/json.h - JSON forms of shoal values, documents and version vectors,
 * shared by the command-line tools.
 *
 * The JSON form of a scalar:
 *   nil -> null, bool -> true/false, int64 -> integer, finite double -> real
 *   (-0.0 kept), non-finite double -> {"$float": "nan" | "inf" | "-inf"},
 *   string -> string, binary -> {"$bytes": "<standard base64, padded>"}.
 * A document is an object of its visible fields: registers as scalars,
 * counters as integers, lists as arrays of scalars.  A version vector is an
 * object {author_hex: seq}.
 *
 * These helpers use only the public API (shoal.h) and jansson.  The last
 * section holds the helpers of the network commands and shoal-relay.
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

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void shoal__hex_encode(const uint8_t *in, size_t n, char *out);

/* Standard padded base64 of n bytes.  Caller owns the result; free with
 * free().  NULL when out of memory. */
char *shoal__base64_encode(const uint8_t *in, size_t n);

/* Decode strict padded base64 (no whitespace, zero pad bits).  Returns 0
 * and a malloc'ed buffer in *out (caller frees with free(); non-NULL even
 * for empty input), or -1 when malformed or out of memory. */
int shoal__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

/* ------------------------------------------------ network tool helpers */

/* Decode exactly 2n hex digits (either case) of text into out (n bytes).
 * Returns 0, or -1 when text is not exactly 2n hex digits. */
int shoal__hex_decode(const char *text, size_t textlen, uint8_t *out, size_t n);

/* Split "ENDPOINT@PUBKEY" (the key: 64 hex digits, after the last '@') into
 * endpoint (NUL-terminated, at most cap - 1 bytes) and key.  Returns 0, or
 * -1 with a one-line message in err. */
int shoal__parse_peer(const char *spec, char *endpoint, size_t cap, uint8_t key[SHOAL_KEY_BYTES],
                      char *err, size_t errlen);

/* Read the allow-list file at path: one hex public key per line; blank
 * lines and lines starting with '#' (after leading blanks) are ignored;
 * blanks around a key are trimmed.  Returns 0 and the keys in *keys (n *
 * SHOAL_KEY_BYTES bytes; caller owns, free with free(); may be NULL when n
 * is 0), or -1 with a one-line message in err naming the file and, for a
 * malformed line, its number. */
int shoal__read_allow_file(const char *path, uint8_t **keys, size_t *n, char *err, size_t errlen);

/* The JSON array of peers p (Borrowed), one object per peer with its key,
 * endpoint, every shoal_peer_stat and last_error.  Caller owns the result;
 * NULL when out of memory. */
json_t *shoal__json_from_peers(const shoal_peers *p);

/* Where a tool's log lines go: every message at level <= max_level is
 * written to stderr as one line "TIMESTAMP PROG LEVEL message" (UTC,
 * milliseconds) with a single write(2), so lines from several threads do
 * not interleave. */
typedef struct shoal_tool_log {
    int max_level;    /* a shoal_log_level */
    const char *prog; /* Borrowed for the logger's life */
} shoal_tool_log;

/* A log callback for shoal_options_set_log; ctx is a shoal_tool_log. */
void shoal__tool_log(void *ctx, int level, const char *msg);
/* printf-style shoal__tool_log. */
void shoal__tool_logf(shoal_tool_log *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int shoal__log_level_parse(const char *name);

/* Rewrite in place an endpoint that ZeroMQ reports with an IPv4-mapped
 * IPv6 address ("tcp://[::ffff:127.0.0.1]:5555") to its IPv4 form
 * ("tcp://127.0.0.1:5555"), the form a user typed; others are left as
 * they are. */
void shoal__endpoint_tidy(char *ep);

/* Re-read the allow-list file at path (SIGHUP) and apply the difference
 * to r's network: keys in the file and not in *keys are allowed
 * (shoal_net_allow), keys in *keys and not in the file are disallowed
 * (shoal_net_disallow, which closes their links); each is logged on lg.
 * *keys (n keys; caller owns, free with free()) becomes the file's list.
 * A file that cannot be read or parsed changes nothing and is logged as
 * an error.  Returns 0, or -1 on any error. */
int shoal__allow_reload(shoal_replica *r, const char *path, uint8_t **keys, size_t *n,
                        shoal_tool_log *lg);

/* SIGTERM, SIGINT, SIGUSR1 and SIGHUP write one byte naming the signal into a
 * non-blocking self-pipe whose read end is shoal__signal_fd(); SIGPIPE is
 * ignored.  Returns 0, or -1 with errno set. */
int shoal__signals_install(void);
int shoal__signal_fd(void);

#endif /* SHOAL_TOOLS_JSON_H */
