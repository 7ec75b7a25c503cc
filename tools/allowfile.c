/*
 * tools/allowfile.c - reading the allow-list file and applying a re-read
 * one to a running replica (see allowfile.h).
 */
#include "allowfile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/types.h>

#include "encode.h"

int
shoal__read_allow_file(const char *path, uint8_t **keys, size_t *n, char *err, size_t errlen)
{
    *keys = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "allow-list %.200s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *out = NULL;
    size_t count = 0, cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    unsigned long lineno = 0;
    int rc = 0;
    ssize_t got;
    while ((got = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        char *p = line;
        while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' ' ||
                           p[len - 1] == '\t'))
            len--;
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        if (len == 0 || *p == '#')
            continue;
        if (count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            uint8_t *nk = realloc(out, ncap * SHOAL_KEY_BYTES);
            if (nk == NULL) {
                snprintf(err, errlen, "allow-list %.200s: out of memory", path);
                rc = -1;
                break;
            }
            out = nk;
            cap = ncap;
        }
        if (shoal__hex_decode(p, len, out + count * SHOAL_KEY_BYTES, SHOAL_KEY_BYTES) != 0) {
            snprintf(err, errlen, "allow-list %.200s line %lu: not a public key (%d hex digits)",
                     path, lineno, 2 * SHOAL_KEY_BYTES);
            rc = -1;
            break;
        }
        count++;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "allow-list %.200s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *keys = out;
    *n = count;
    return 0;
}

static bool
key_in(const uint8_t *keys, size_t n, const uint8_t *k)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(keys + i * SHOAL_KEY_BYTES, k, SHOAL_KEY_BYTES) == 0)
            return true;
    return false;
}

int
shoal__allow_reload(shoal_replica *r, const char *path, uint8_t **keys, size_t *n,
                    shoal_tool_log *lg)
{
    uint8_t *nk = NULL;
    size_t nn = 0;
    char err[SHOAL_TOOL_ERRLEN];
    if (shoal__read_allow_file(path, &nk, &nn, err, sizeof err) != 0) {
        shoal__tool_logf(lg, SHOAL_LOG_ERROR, "allow-list not reloaded, nothing changed: %s", err);
        return -1;
    }
    size_t added = 0, removed = 0, failed = 0;
    char hex[2 * SHOAL_KEY_BYTES + 1];
    for (size_t i = 0; i < nn; i++) {
        const uint8_t *k = nk + i * SHOAL_KEY_BYTES;
        if (key_in(*keys, *n, k))
            continue;
        shoal__hex_encode(k, SHOAL_KEY_BYTES, hex);
        shoal_err e = shoal_net_allow(r, k);
        if (e != SHOAL_OK) {
            shoal__tool_logf(lg, SHOAL_LOG_ERROR, "allow %s: %s", hex, shoal_strerror(e));
            failed++;
        } else {
            shoal__tool_logf(lg, SHOAL_LOG_INFO, "allowed %s", hex);
            added++;
        }
    }
    for (size_t i = 0; i < *n; i++) {
        const uint8_t *k = *keys + i * SHOAL_KEY_BYTES;
        if (key_in(nk, nn, k))
            continue;
        shoal__hex_encode(k, SHOAL_KEY_BYTES, hex);
        shoal_err e = shoal_net_disallow(r, k);
        if (e != SHOAL_OK) {
            shoal__tool_logf(lg, SHOAL_LOG_ERROR, "disallow %s: %s", hex, shoal_strerror(e));
            failed++;
        } else {
            shoal__tool_logf(lg, SHOAL_LOG_WARN, "disallowed %s", hex);
            removed++;
        }
    }
    free(*keys);
    *keys = nk;
    *n = nn;
    shoal__tool_logf(lg, failed ? SHOAL_LOG_ERROR : SHOAL_LOG_INFO,
                     "allow-list %s reloaded: %zu key(s), %zu added, %zu removed%s", path, nn,
                     added, removed, failed ? ", some changes failed (see above)" : "");
    return failed ? -1 : 0;
}
