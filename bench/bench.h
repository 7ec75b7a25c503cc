/*
 * bench/bench.h - shared declarations of shoal-bench's subcommands.
 * Every subcommand prints one JSON object per line on stdout; progress and
 * errors go to stderr.
 */
#ifndef SHOAL_BENCH_BENCH_H
#define SHOAL_BENCH_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shoal.h"

/* Subcommands get argv[0] = the subcommand's name, options after it; they
 * return the process exit code. */

/* shoal-bench list [--n N] [--ops K] [--runs R] */
int shoal__bench_list(int argc, char **argv);
/* shoal-bench trace FILE [--runs R] [--variant NAME] */
int shoal__bench_trace(int argc, char **argv);
/* shoal-bench commits [--n N] [--runs R] */
int shoal__bench_commits(int argc, char **argv);
/* shoal-bench sync [--changes N] [--samples S] [--seconds T] [--runs R] [--docs N]
 *                  [--peers P] [--incoming N] [--variant NAME] */
int shoal__bench_authz(int argc, char **argv);
int shoal__bench_sync(int argc, char **argv);
/* The partial-sync variants of `shoal-bench sync` (bench_partial.c):
 * variant is partial-initial, partial-relay, partial-latency or
 * partial-latency-nondurable; dir is the session's temp dir. */
typedef struct shoal__bench_partial_opts {
    uint64_t docs;     /* partial-initial: relay documents; partial-relay: 10x its base */
    uint64_t peers;    /* partial-relay: devices */
    uint64_t incoming; /* partial-relay: changes of the writer (then one marker a device) */
    uint64_t samples;  /* partial-latency: samples per run */
    size_t runs;
} shoal__bench_partial_opts;
int shoal__bench_partial(const char *variant, const shoal__bench_partial_opts *o, const char *dir);
/* shoal-bench query [--docs N] [--runs R] [--seed S]; built only when
 * SQLite is found (SHOAL_BENCH_QUERY defined). */
int shoal__bench_query(int argc, char **argv);

/* Helpers (bench/util.c). */
uint64_t shoal__bench_now_ns(void);
void shoal__bench_sleep_ms(double ms);           /* nanosleep, resumed after EINTR */
double shoal__bench_median(double *v, size_t n); /* sorts v */
/* Median of the first n of v (copied; v keeps its order). */
double shoal__bench_median_of(const double *v, size_t n);
/* The p-th percentile (0..100) of n values, nearest rank; sorts v. */
double shoal__bench_percentile(double *v, size_t n, double p);
/* Print ,"name":[v0,v1,...] with prec decimals (a JSON field). */
void shoal__bench_print_runs(const char *name, const double *v, size_t n, int prec);
double shoal__bench_load1(void);        /* 1-minute load average, -1 if unknown */
const char *shoal__bench_yesno(bool b); /* "true" / "false" */
double shoal__bench_rss_mb(void);       /* current RSS in MiB */
double shoal__bench_peak_rss_mb(void);  /* VmHWM in MiB */
/* Bytes this process has handed to write system calls so far (write,
 * pwrite, writev: /proc/self/io wchar), or 0 if unknown.  LMDB writes its
 * pages with these (never through the map), so the difference over a phase
 * is what that phase wrote to its files.  (write_bytes, the page-cache
 * accounting, was tried and over-counted pages re-dirtied between fsyncs.) */
uint64_t shoal__bench_io_write_bytes(void);
/* Reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0); false if
 * the kernel refused. */
bool shoal__bench_reset_peak_rss(void);

/* A fresh directory under $TMPDIR (default /tmp), named after prefix.
 * Caller owns the result (free()); NULL on failure (message on stderr). */
char *shoal__bench_mkdtemp(const char *prefix);
/* Remove the tree at path (files and directories); errors are ignored. */
void shoal__bench_rmtree(const char *path);

/* Parse a positive integer option value; exits with a message if bad. */
long shoal__bench_parse_long(const char *opt, const char *s);

/*
 * Raw LMDB floor: in a new temp dir, `commits` write transactions of one
 * small put each, with the environment flags shoal uses in durable mode
 * (every commit synced).  Returns the wall time in ms, or a negative value
 * on error (message on stderr).
 */
double shoal__bench_lmdb_floor_ms(uint64_t commits, bool durable);
/* Bytes written (as above) by the last shoal__bench_lmdb_floor_ms call. */
extern uint64_t shoal__bench_lmdb_floor_write_bytes;

/*
 * Run fn(arg, out) in a forked child so that memory peaks of different
 * measurements do not mix; out (out_len bytes) is filled by the child and
 * copied back to the caller's out.  Returns fn's return value in the child
 * (0 = success), or -1 if the child crashed or could not be started.
 */
typedef int (*shoal__bench_child_fn)(void *arg, void *out);
int shoal__bench_in_child(shoal__bench_child_fn fn, void *arg, void *out, size_t out_len);

/* write() all of p to fd, retrying on EINTR and short writes; false on
 * error. */
bool shoal__bench_write_all(int fd, const void *p, size_t n);

/*
 * A process of a multi-process benchmark: fork; the child runs fn(arg) and
 * exits with 0 if it returned 0, else 1.  The child dies with the parent
 * (PR_SET_PDEATHSIG).  Returns the pid, or -1 (message on stderr).  Fork
 * before opening anything that starts threads (a network engine).
 */
pid_t shoal__bench_spawn(int (*fn)(void *arg), void *arg);
/* Wait up to timeout_ms for pid; SIGKILL it after that.  Returns its exit
 * status (0 = success), or -1 if it was killed or crashed.  cpu_s (may be
 * NULL) receives the CPU seconds (user + system) the child used. */
int shoal__bench_reap(pid_t pid, double timeout_ms, double *cpu_s);

/* ------------------------------------------- network benchmarks (sync_util.c) */

/* shoal_replica_open with durability set and, if logname is not NULL,
 * warnings and errors printed to stderr under that name (which must stay
 * valid while the replica is open). */
shoal_err shoal__bench_open_replica(const char *dir, bool durable, const char *logname,
                                    shoal_replica **out);

/* Check the envelope signatures of a bundle (the first max_changes, or all
 * if 0) with libsodium and nothing else (the signed message: the context
 * "shoal-change-v1", its NUL, then the envelope bytes before the
 * signature; docs/format.md).  Returns the wall time in ms, -1 if the
 * bundle is malformed or a signature fails; *cpu_ms (may be NULL)
 * receives the thread's CPU time for it. */
double shoal__bench_verify_ms(const uint8_t *b, size_t len, size_t max_changes, double *cpu_ms);
/* Changes in a bundle (its header count); its envelopes' bytes (the
 * bundle without its header). */
size_t shoal__bench_bundle_count(const uint8_t *b, size_t len);
size_t shoal__bench_bundle_raw_bytes(size_t len);

/* A loopback TCP proxy (run it with shoal__bench_spawn): it listens on
 * 127.0.0.1 (a port chosen by the OS), connects each client to
 * 127.0.0.1:target_port, copies bytes both ways and counts them: the
 * application bytes handed to TCP (ZMTP framing, CurveZMQ boxes and
 * heartbeats included; TCP/IP headers not).  Every pointer is into memory
 * shared with the parent. */
typedef struct shoal__bench_proxy {
    _Atomic int *stop;           /* in: non-zero ends the proxy */
    _Atomic int *state;          /* out: 1 listening, -1 failed (err set) */
    char *endpoint;              /* out: "tcp://127.0.0.1:PORT" */
    size_t endpoint_len;         /* its buffer size */
    char *err;                   /* out: why it failed */
    size_t err_len;              /* its buffer size */
    _Atomic uint64_t *up, *down; /* out: bytes client -> target, target -> client */
    int target_port;             /* in */
} shoal__bench_proxy;
int shoal__bench_proxy_main(void *arg);

#endif /* SHOAL_BENCH_BENCH_H */
