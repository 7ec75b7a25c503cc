/*
 * base/hex.c - lower-case hex encoding of byte strings (keys and ids in
 * logs, error messages, the CLI and the Python binding).
 */
#include "hex.h"

#include "shoal.h"

void
shoal__hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
shoal__unhex(uint8_t *out, size_t n, const char *s)
{
    /* Check everything before writing, so out is untouched on error. */
    for (size_t i = 0; i < 2 * n; i++)
        if (hexval(s[i]) < 0)
            return SHOAL_EINVAL;
    if (s[2 * n] != '\0')
        return SHOAL_EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    return SHOAL_OK;
}
