/*
 * bench/bench.h - shared declarations of shoal-bench's subcommands.
 * Every subcommand prints one JSON object per line on stdout; progress and
 * errors go to stderr.
 */
#ifndef SHOAL_BENCH_BENCH_H
#define SHOAL_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Subcommands get argv[0] = the subcommand's name, options after it; they
 * return the process exit code. */

/* shoal-bench list [--n N] [--ops K] [--runs R] */
int shoal__bench_list(int argc, char **argv);
/* shoal-bench trace FILE [--runs R] [--variant NAME] */
int shoal__bench_trace(int argc, char **argv);
/* shoal-bench commits [--n N] [--runs R] */
int shoal__bench_commits(int argc, char **argv);
/* shoal-bench sync [--changes N] [--samples S] [--seconds T] [--runs R] [--variant NAME] */
int shoal__bench_sync(int argc, char **argv);
/* shoal-bench query [--docs N] [--runs R] [--seed S]; built only when
 * SQLite is found (SHOAL_BENCH_QUERY defined). */
int shoal__bench_query(int argc, char **argv);

/* Helpers (bench/util.c). */
uint64_t shoal__bench_now_ns(void);
double shoal__bench_median(double *v, size_t n); /* sorts v */
double shoal__bench_rss_mb(void);                /* current RSS in MiB */
double shoal__bench_peak_rss_mb(void);           /* VmHWM in MiB */
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

#endif /* SHOAL_BENCH_BENCH_H */
