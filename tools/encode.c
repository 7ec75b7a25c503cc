/*
 * tools/encode.c - hex and base64 through libsodium (see encode.h).
 *
 * libsodium's decoders stop at the first character they do not take and
 * report where; passing no "ignore" set and requiring that they consumed
 * the whole text makes them strict: no whitespace, no trailing bytes.
 * sodium_base642bin with the ORIGINAL variant also requires the padding
 * and refuses non-zero pad bits.
 */
#include "encode.h"

#include <stdlib.h>

#include <sodium.h>

void
shoal__hex_encode(const uint8_t *in, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, in, n);
}

int
shoal__hex_decode(const char *text, size_t textlen, uint8_t *out, size_t n)
{
    size_t got = 0;
    const char *end = NULL;
    if (textlen != 2 * n)
        return -1;
    if (sodium_hex2bin(out, n, text, textlen, NULL, &got, &end) != 0 || got != n ||
        end != text + textlen)
        return -1;
    return 0;
}

char *
shoal__base64_encode(const uint8_t *in, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

int
shoal__base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0)
        return -1;
    size_t cap = len / 4 * 3;
    uint8_t *buf = malloc(cap > 0 ? cap : 1);
    if (buf == NULL)
        return -1;
    size_t got = 0;
    const char *end = NULL;
    if (len > 0 && (sodium_base642bin(buf, cap, in, len, NULL, &got, &end,
                                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
                    end != in + len)) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = got;
    return 0;
}
