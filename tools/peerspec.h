/*
 * tools/peerspec.h - peers named ENDPOINT@PUBKEY, and endpoints as printed.
 */
#ifndef SHOAL_TOOLS_PEERSPEC_H
#define SHOAL_TOOLS_PEERSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

/* Split "ENDPOINT@PUBKEY" (the key: 64 hex digits, after the last '@') into
 * endpoint (NUL-terminated, at most cap - 1 bytes) and key.  Returns 0, or
 * -1 with a one-line message in err. */
int shoal__parse_peer(const char *spec, char *endpoint, size_t cap, uint8_t key[SHOAL_KEY_BYTES],
                      char *err, size_t errlen);

/* Rewrite in place an endpoint that ZeroMQ reports with an IPv4-mapped
 * IPv6 address ("tcp://[::ffff:127.0.0.1]:5555") to its IPv4 form
 * ("tcp://127.0.0.1:5555"), the form a user typed; others are left as
 * they are. */
void shoal__endpoint_tidy(char *ep);

#endif /* SHOAL_TOOLS_PEERSPEC_H */
