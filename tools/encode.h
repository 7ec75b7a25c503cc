/*
 * tools/encode.h - hex and base64 text of byte strings, for the tools.
 *
 * Both come from libsodium (sodium_bin2hex / sodium_hex2bin,
 * sodium_bin2base64 / sodium_base642bin), with the strict checks a tool
 * needs on input: one text names one byte string.
 */
#ifndef SHOAL_TOOLS_ENCODE_H
#define SHOAL_TOOLS_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void shoal__hex_encode(const uint8_t *in, size_t n, char *out);

/* Decode exactly 2n hex digits (either case) of text into out (n bytes).
 * Returns 0, or -1 when text is not exactly 2n hex digits. */
int shoal__hex_decode(const char *text, size_t textlen, uint8_t *out, size_t n);

/* Standard padded base64 of n bytes.  Caller owns the result; free with
 * free().  NULL when out of memory. */
char *shoal__base64_encode(const uint8_t *in, size_t n);

/* Decode strict padded base64 (standard alphabet, padding required, no
 * whitespace, zero pad bits).  Returns 0 and a malloc'ed buffer in *out
 * (caller frees with free(); non-NULL even for empty input), or -1 when
 * malformed or out of memory. */
int shoal__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

#endif /* SHOAL_TOOLS_ENCODE_H */
