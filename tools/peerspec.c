/*
 * tools/peerspec.c - ENDPOINT@PUBKEY parsing and endpoint tidying (see
 * peerspec.h).
 */
#include "peerspec.h"

#include <stdio.h>
#include <string.h>

#include "encode.h"

int
shoal__parse_peer(const char *spec, char *endpoint, size_t cap, uint8_t key[SHOAL_KEY_BYTES],
                  char *err, size_t errlen)
{
    const char *at = strrchr(spec, '@');
    if (at == NULL || at == spec) {
        snprintf(err, errlen, "peer '%.200s' is not ENDPOINT@PUBKEY", spec);
        return -1;
    }
    size_t elen = (size_t)(at - spec);
    if (elen >= cap) {
        snprintf(err, errlen, "peer endpoint is longer than %zu bytes", cap - 1);
        return -1;
    }
    if (shoal__hex_decode(at + 1, strlen(at + 1), key, SHOAL_KEY_BYTES) != 0) {
        snprintf(err, errlen, "peer '%.200s': the key after '@' is not %d hex digits", spec,
                 2 * SHOAL_KEY_BYTES);
        return -1;
    }
    memcpy(endpoint, spec, elen);
    endpoint[elen] = '\0';
    return 0;
}

void
shoal__endpoint_tidy(char *ep)
{
    static const char prefix[] = "tcp://[::ffff:";
    size_t plen = sizeof prefix - 1;
    if (strncmp(ep, prefix, plen) != 0)
        return;
    char *close = strchr(ep + plen, ']');
    if (close == NULL || close[1] != ':')
        return;
    for (const char *p = ep + plen; p < close; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return; /* not a dotted IPv4 address */
    /* "tcp://" + address + ":port": shift left over "[::ffff:" and "]". */
    size_t alen = (size_t)(close - (ep + plen));
    memmove(ep + 6, ep + plen, alen);
    memmove(ep + 6 + alen, close + 1, strlen(close + 1) + 1);
}
