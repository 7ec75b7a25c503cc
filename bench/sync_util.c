/*
 * bench/sync_util.c - what the two network benchmarks (bench_sync.c,
 * bench_partial.c) share: opening a replica with a log prefix, the
 * signature-verification floor, and the byte-counting loopback proxy.
 *
 * The floor checks envelope signatures with libsodium alone, as
 * docs/format.md defines the signed message, so "shoal minus floor" is what
 * shoal adds on top of the cryptography any receiver must do.  The proxy
 * counts the bytes handed to TCP in each direction: what actually crossed
 * the wire (ZMTP framing, CurveZMQ boxes, protocol frames and heartbeats;
 * TCP/IP headers not), without asking the engine, which keeps no byte
 * counter.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shoal.h"

/* Envelope and bundle layout (docs/format.md). */
enum {
    ENV_HEADER = 1 + 32 + 4, /* version, author, body length (u32 BE) */
    SIG_BYTES = 64,
    BUNDLE_HEADER = 12 /* "SHOALBN1", count (u32 BE) */
};

static void
log_cb(void *ctx, int level, const char *msg)
{
    if (level <= SHOAL_LOG_WARN)
        fprintf(stderr, "  [%s] %s\n", (const char *)ctx, msg);
}

shoal_err
shoal__bench_open_replica(const char *dir, bool durable, const char *logname, shoal_replica **out)
{
    shoal_options *o = NULL;
    shoal_err e;

    *out = NULL;
    if ((e = shoal_options_new(&o)) != SHOAL_OK)
        return e;
    e = shoal_options_set_durable(o, durable);
    if (e == SHOAL_OK && logname)
        e = shoal_options_set_log(o, log_cb, (void *)logname);
    if (e == SHOAL_OK)
        e = shoal_replica_open(out, dir, o);
    shoal_options_free(o);
    return e;
}

/* -------------------------------------------------------- verify floor */

/* CPU time of the calling thread, in ms. */
static double
thread_cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double
shoal__bench_verify_ms(const uint8_t *b, size_t len, size_t max_changes, double *cpu_ms)
{
    static const char ctx[] = "shoal-change-v1"; /* sizeof counts the NUL */
    uint8_t *msg = NULL;
    size_t off = BUNDLE_HEADER, cap = 0, i, count;
    uint64_t t0;
    double ms = -1.0, c0;

    if (len < BUNDLE_HEADER || memcmp(b, "SHOALBN1", 8) != 0)
        return -1.0;
    count = shoal__bench_bundle_count(b, len);
    if (max_changes && count > max_changes)
        count = max_changes;
    t0 = shoal__bench_now_ns();
    c0 = thread_cpu_ms();
    for (i = 0; i < count; i++) {
        size_t body, signed_len;

        if (len - off < ENV_HEADER)
            goto out;
        body = (size_t)b[off + 33] << 24 | (size_t)b[off + 34] << 16 | (size_t)b[off + 35] << 8 |
               b[off + 36];
        signed_len = ENV_HEADER + body;
        if (len - off < signed_len + SIG_BYTES)
            goto out;
        if (sizeof ctx + signed_len > cap) {
            uint8_t *m;

            cap = 2 * (sizeof ctx + signed_len);
            m = realloc(msg, cap);
            if (!m)
                goto out;
            msg = m;
            memcpy(msg, ctx, sizeof ctx);
        }
        memcpy(msg + sizeof ctx, b + off, signed_len);
        if (crypto_sign_verify_detached(b + off + signed_len, msg, sizeof ctx + signed_len,
                                        b + off + 1) != 0)
            goto out;
        off += signed_len + SIG_BYTES;
    }
    if (max_changes || off == len) {
        ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
        if (cpu_ms)
            *cpu_ms = thread_cpu_ms() - c0;
    }
out:
    free(msg);
    return ms;
}

size_t
shoal__bench_bundle_count(const uint8_t *b, size_t len)
{
    if (len < BUNDLE_HEADER)
        return 0;
    return (size_t)b[8] << 24 | (size_t)b[9] << 16 | (size_t)b[10] << 8 | b[11];
}

size_t
shoal__bench_bundle_raw_bytes(size_t len)
{
    return len < BUNDLE_HEADER ? 0 : len - BUNDLE_HEADER;
}

/* ------------------------------------------------------------- the proxy */

enum {
    PROXY_MAX_PAIRS = 16
};

int
shoal__bench_proxy_main(void *argp)
{
    shoal__bench_proxy *a = argp;
    int lfd, one = 1, pairs[PROXY_MAX_PAIRS][2], npairs = 0, i;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    static uint8_t buf[1 << 16];
    uint64_t deadline = shoal__bench_now_ns() + 3600ull * 1000000000ull;

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(a->err, a->err_len, "proxy: %s", strerror(errno));
        atomic_store(a->state, -1);
        return 1;
    }
    snprintf(a->endpoint, a->endpoint_len, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    atomic_store(a->state, 1);

    while (!atomic_load(a->stop) && shoal__bench_now_ns() < deadline) {
        struct pollfd pf[1 + 2 * PROXY_MAX_PAIRS];
        int n = 0, rc;

        pf[n].fd = lfd;
        pf[n++].events = POLLIN;
        for (i = 0; i < npairs; i++) {
            pf[n].fd = pairs[i][0];
            pf[n++].events = POLLIN;
            pf[n].fd = pairs[i][1];
            pf[n++].events = POLLIN;
        }
        rc = poll(pf, (nfds_t)n, 50);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            int c = accept(lfd, NULL, NULL), s;
            struct sockaddr_in ta;

            if (c >= 0) {
                memset(&ta, 0, sizeof ta);
                ta.sin_family = AF_INET;
                ta.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                ta.sin_port = htons((uint16_t)a->target_port);
                s = socket(AF_INET, SOCK_STREAM, 0);
                if (npairs == PROXY_MAX_PAIRS || s < 0 ||
                    connect(s, (struct sockaddr *)&ta, sizeof ta) != 0) {
                    close(c);
                    if (s >= 0)
                        close(s);
                } else {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    pairs[npairs][0] = c;
                    pairs[npairs][1] = s;
                    npairs++;
                }
            }
        }
        for (i = 0; i < npairs; i++) {
            int d;

            for (d = 0; d < 2; d++) {
                struct pollfd *p = &pf[1 + 2 * i + d];
                ssize_t got;

                if (!(p->revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                got = read(pairs[i][d], buf, sizeof buf);
                if (got > 0 && shoal__bench_write_all(pairs[i][1 - d], buf, (size_t)got)) {
                    atomic_fetch_add(d == 0 ? a->up : a->down, (uint64_t)got);
                    continue;
                }
                if (got < 0 && errno == EINTR)
                    continue;
                /* closed or failed: drop the pair (the poll set is rebuilt) */
                close(pairs[i][0]);
                close(pairs[i][1]);
                pairs[i][0] = pairs[npairs - 1][0];
                pairs[i][1] = pairs[npairs - 1][1];
                npairs--;
                i = npairs; /* stop this round: pf no longer matches */
                break;
            }
        }
    }
    for (i = 0; i < npairs; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
    close(lfd);
    return 0;
}
