/*
 * tools/node.h - a live replica on the network until a signal: the loop
 * that `shoal serve` and `shoal-relay` both run.
 *
 * The network work is the library's engine thread; a node is the process
 * around it: the allow-list (and its reload on SIGHUP), the bound
 * endpoints printed on stdout, the outgoing links, and a main thread that
 * sleeps in poll(2) on the signal pipe (signals.h) until SIGTERM or SIGINT:
 *
 *   SIGUSR1  log the per-peer state as one JSON line
 *   SIGHUP   re-read the allow-list file (shoal__allow_reload)
 *   every status_interval seconds (if not 0): one status line on the log
 *   events   (if set) one JSON line on stdout per document a received
 *            change touched
 */
#ifndef SHOAL_TOOLS_NODE_H
#define SHOAL_TOOLS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "shoal.h"

typedef struct shoal_node {
    /* Settings, filled by the caller (strings Borrowed for the node's life). */
    const char *const *listen; /* endpoints to bind */
    int nlisten;
    const char *const *peers; /* ENDPOINT@PUBKEY links to keep */
    int npeers;
    const char *allow;    /* allow-list file, or NULL */
    bool allow_any;       /* admit any peer that completes the handshake */
    long status_interval; /* seconds between status lines; 0: none */
    bool events;          /* print events on stdout */
    shoal_tool_log *log;
    /* State: the allow-list as last read (owned; shoal__node_free). */
    uint8_t *keys;
    size_t nkeys;
} shoal_node;

/* Check n's settings before anything is opened: every peer spec parses and
 * the allow-list file reads.  Returns 0; 1 when a peer spec is malformed,
 * 2 when the allow-list cannot be read or parsed; a one-line message in
 * err (errlen bytes) on failure. */
int shoal__node_prepare(shoal_node *n, char *err, size_t errlen);

/* Start n on r (open, not yet on the network): install the signal pipe,
 * allow the keys (or any peer), bind each listen endpoint and print it on
 * stdout (in order, one line each, as bound: the port the OS picked), then
 * "id <hex>", then connect each peer.  Returns 0, or -1 with a one-line
 * message in err. */
int shoal__node_start(shoal_node *n, shoal_replica *r, char *err, size_t errlen);

/* Run until SIGTERM or SIGINT (see above), then stop r's network engine.
 * r stays open: the caller closes it. */
void shoal__node_run(shoal_node *n, shoal_replica *r);

/* Free what n owns (not the settings). */
void shoal__node_free(shoal_node *n);

#endif /* SHOAL_TOOLS_NODE_H */
