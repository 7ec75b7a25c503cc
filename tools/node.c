/*
 * tools/node.c - the live-replica loop of `shoal serve` and `shoal-relay`
 * (see node.h).
 */
#include "node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>
#include <unistd.h>

#include <jansson.h>

#include "allowfile.h"
#include "encode.h"
#include "json.h"
#include "peerspec.h"
#include "signals.h"

enum {
    ENDPOINT_MAX = 256
};

int
shoal__node_prepare(shoal_node *n, char *err, size_t errlen)
{
    for (int i = 0; i < n->npeers; i++) {
        char ep[ENDPOINT_MAX];
        uint8_t key[SHOAL_KEY_BYTES];
        if (shoal__parse_peer(n->peers[i], ep, sizeof ep, key, err, errlen) != 0)
            return 1;
    }
    free(n->keys);
    n->keys = NULL;
    n->nkeys = 0;
    if (n->allow != NULL && shoal__read_allow_file(n->allow, &n->keys, &n->nkeys, err, errlen) != 0)
        return 2;
    return 0;
}

/* "WHAT: ERROR (library message)" into err. */
static int
start_error(shoal_replica *r, shoal_err e, const char *what, char *err, size_t errlen)
{
    const char *msg = shoal_replica_errmsg(r);
    if (msg[0] != '\0')
        snprintf(err, errlen, "%s: %s (%s)", what, shoal_strerror(e), msg);
    else
        snprintf(err, errlen, "%s: %s", what, shoal_strerror(e));
    return -1;
}

int
shoal__node_start(shoal_node *n, shoal_replica *r, char *err, size_t errlen)
{
    shoal_tool_log *lg = n->log;
    if (shoal__signals_install() != 0) {
        snprintf(err, errlen, "cannot install signal handlers: %s", strerror(errno));
        return -1;
    }
    for (size_t k = 0; k < n->nkeys; k++) {
        shoal_err e = shoal_net_allow(r, n->keys + k * SHOAL_KEY_BYTES);
        if (e != SHOAL_OK)
            return start_error(r, e, "allow", err, errlen);
    }
    if (n->allow_any) {
        shoal_err e = shoal_net_allow_any(r, true);
        if (e != SHOAL_OK)
            return start_error(r, e, "allow-any", err, errlen);
        shoal__tool_logf(lg, SHOAL_LOG_WARN,
                         "allow-any: every peer that completes the handshake is admitted");
    } else if (n->allow != NULL) {
        shoal__tool_logf(lg, SHOAL_LOG_INFO, "allow-list %s: %zu key(s)", n->allow, n->nkeys);
    } else if (n->nlisten > 0) {
        shoal__tool_logf(lg, SHOAL_LOG_WARN,
                         "no --allow and no --allow-any: every incoming link is refused");
    }
    for (int i = 0; i < n->nlisten; i++) {
        char *bound = NULL;
        shoal_err e = shoal_net_listen(r, n->listen[i], &bound);
        if (e != SHOAL_OK) {
            char what[64 + ENDPOINT_MAX];
            snprintf(what, sizeof what, "listen %.256s", n->listen[i]);
            return start_error(r, e, what, err, errlen);
        }
        if (bound != NULL)
            shoal__endpoint_tidy(bound);
        printf("%s\n", bound != NULL ? bound : n->listen[i]);
        fflush(stdout);
        shoal_free(bound);
    }
    char hex[2 * SHOAL_KEY_BYTES + 1];
    shoal__hex_encode(shoal_replica_id(r), SHOAL_KEY_BYTES, hex);
    printf("id %s\n", hex);
    fflush(stdout);
    for (int i = 0; i < n->npeers; i++) {
        char ep[ENDPOINT_MAX];
        uint8_t key[SHOAL_KEY_BYTES];
        if (shoal__parse_peer(n->peers[i], ep, sizeof ep, key, err, errlen) != 0)
            return -1; /* checked by shoal__node_prepare */
        shoal_err e = shoal_net_connect(r, ep, key);
        if (e != SHOAL_OK) {
            char what[64 + ENDPOINT_MAX];
            snprintf(what, sizeof what, "peer %.256s", ep);
            return start_error(r, e, what, err, errlen);
        }
        shoal__hex_encode(key, SHOAL_KEY_BYTES, hex);
        shoal__tool_logf(lg, SHOAL_LOG_INFO, "linking to %s (key %.16s...)", ep, hex);
    }
    return 0;
}

/* SIGUSR1: the per-peer state as one JSON line on the log. */
static void
log_peers(shoal_node *n, shoal_replica *r)
{
    shoal_peers *p = NULL;
    shoal_err e = shoal_net_peers(r, &p);
    if (e != SHOAL_OK) {
        shoal__tool_logf(n->log, SHOAL_LOG_ERROR, "peers: %s", shoal_strerror(e));
        return;
    }
    json_t *j = shoal__json_from_peers(p);
    shoal_peers_free(p);
    char *s = j != NULL ? shoal__json_dumps(j) : NULL;
    json_decref(j);
    if (s == NULL) {
        shoal__tool_logf(n->log, SHOAL_LOG_ERROR, "peers: out of memory");
        return;
    }
    /* Not through the 1 KiB log line: many peers make a long line. */
    shoal__tool_log_long(n->log, SHOAL_LOG_INFO, "peers", s);
    free(s);
}

/* One status line: links, lag, pending, rejected input, refusals. */
static void
log_status(shoal_node *n, shoal_replica *r)
{
    shoal_peers *p = NULL;
    if (shoal_net_peers(r, &p) != SHOAL_OK)
        return;
    size_t np = shoal_peers_count(p), up = 0;
    uint64_t lag = 0, rejected = 0, refused = 0, equiv = 0;
    for (size_t i = 0; i < np; i++) {
        up += shoal_peers_stat(p, i, SHOAL_PS_CONNECTED) != 0;
        lag += shoal_peers_stat(p, i, SHOAL_PS_LAG);
        rejected += shoal_peers_stat(p, i, SHOAL_PS_REJECTED);
        refused += shoal_peers_stat(p, i, SHOAL_PS_REFUSED);
        equiv += shoal_peers_stat(p, i, SHOAL_PS_EQUIVOCATIONS);
    }
    shoal_peers_free(p);
    uint64_t pending = 0;
    (void)shoal_pending_count(r, &pending);
    shoal__tool_logf(n->log, SHOAL_LOG_INFO,
                     "status: peers=%zu connected=%zu lag=%llu pending=%llu rejected=%llu "
                     "refused=%llu equivocations=%llu",
                     np, up, (unsigned long long)lag, (unsigned long long)pending,
                     (unsigned long long)rejected, (unsigned long long)refused,
                     (unsigned long long)equiv);
}

/* The events waiting on r as JSON lines on stdout, waiting at most wait_ms
 * for the first. */
static void
print_events(shoal_replica *r, int wait_ms)
{
    shoal_event *ev = NULL;
    while (shoal_event_next(r, wait_ms, &ev) == SHOAL_OK) {
        json_t *j = json_pack("{s:s,s:s,s:b}", "coll", shoal_event_collection(ev), "id",
                              shoal_event_doc_id(ev), "remote", shoal_event_remote(ev));
        if (j != NULL && shoal_event_overflowed(ev))
            json_object_set_new(j, "overflowed", json_true());
        shoal_event_free(ev);
        if (j != NULL) {
            char *s = shoal__json_dumps(j);
            if (s != NULL)
                printf("%s\n", s);
            free(s);
            json_decref(j);
        }
        fflush(stdout);
        wait_ms = 0;
    }
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Handle the signals waiting on the pipe; true once told to stop. */
static bool
handle_signals(shoal_node *n, shoal_replica *r)
{
    bool stop = false;
    char sigs[64];
    ssize_t got;
    while ((got = read(shoal__signal_fd(), sigs, sizeof sigs)) > 0)
        for (ssize_t k = 0; k < got; k++) {
            if (sigs[k] == SIGUSR1) {
                log_peers(n, r);
            } else if (sigs[k] == SIGHUP) {
                if (n->allow != NULL)
                    (void)shoal__allow_reload(r, n->allow, &n->keys, &n->nkeys, n->log);
                else
                    shoal__tool_logf(n->log, SHOAL_LOG_WARN,
                                     "SIGHUP: no allow-list file (--allow) to reload");
            } else if (!stop) {
                shoal__tool_logf(n->log, SHOAL_LOG_INFO, "%s: shutting down",
                                 sigs[k] == SIGINT ? "SIGINT" : "SIGTERM");
                stop = true;
            }
        }
    return stop;
}

void
shoal__node_run(shoal_node *n, shoal_replica *r)
{
    shoal__tool_logf(n->log, SHOAL_LOG_INFO, "running (pid %ld)", (long)getpid());
    /* The engine pushes this handle's commits at once, and finds commits
     * made by other processes on the same directory (`shoal put` while the
     * node runs) by looking at the log a few times a second: the loop only
     * waits for signals, status times and (--events) events. */
    uint64_t period = (uint64_t)n->status_interval * 1000u;
    uint64_t next_status = mono_ms() + period;
    bool stop = false;
    while (!stop) {
        int timeout = -1;
        if (period > 0) {
            uint64_t now = mono_ms();
            timeout = now >= next_status ? 0 : (int)(next_status - now);
        }
        /* With events the wait is shoal_event_next's, at most 250 ms. */
        int events_wait = timeout < 0 || timeout > 250 ? 250 : timeout;
        struct pollfd pfd = { .fd = shoal__signal_fd(), .events = POLLIN };
        int got = poll(&pfd, 1, n->events ? 0 : timeout);
        if (got < 0 && errno != EINTR) {
            shoal__tool_logf(n->log, SHOAL_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (got > 0)
            stop = handle_signals(n, r);
        if (n->events && !stop)
            print_events(r, events_wait);
        if (period > 0 && mono_ms() >= next_status) {
            log_status(n, r);
            next_status = mono_ms() + period;
        }
    }
    shoal_net_stop(r);
}

void
shoal__node_free(shoal_node *n)
{
    free(n->keys);
    n->keys = NULL;
    n->nkeys = 0;
}
