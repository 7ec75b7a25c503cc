/*
 * tools/allowfile.h - the allow-list file: which peers' keys may link.
 */
#ifndef SHOAL_TOOLS_ALLOWFILE_H
#define SHOAL_TOOLS_ALLOWFILE_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "shoal.h"

/* Read the allow-list file at path: one hex public key per line; blank
 * lines and lines starting with '#' (after leading blanks) are ignored;
 * blanks around a key are trimmed.  Returns 0 and the keys in *keys (n *
 * SHOAL_KEY_BYTES bytes; caller owns, free with free(); may be NULL when n
 * is 0), or -1 with a one-line message in err naming the file and, for a
 * malformed line, its number. */
int shoal__read_allow_file(const char *path, uint8_t **keys, size_t *n, char *err, size_t errlen);

/* Re-read the allow-list file at path (SIGHUP) and apply the difference
 * to r's network: keys in the file and not in *keys are allowed
 * (shoal_net_allow), keys in *keys and not in the file are disallowed
 * (shoal_net_disallow, which closes their links); each is logged on lg.
 * *keys (n keys; caller owns, free with free()) becomes the file's list.
 * A file that cannot be read or parsed changes nothing and is logged as
 * an error.  Returns 0, or -1 on any error. */
int shoal__allow_reload(shoal_replica *r, const char *path, uint8_t **keys, size_t *n,
                        shoal_tool_log *lg);

#endif /* SHOAL_TOOLS_ALLOWFILE_H */
