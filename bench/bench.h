/*
 * bench/bench.h - shared declarations of shoal-bench's subcommands.
 * Every subcommand prints one JSON object per line on stdout.
 */
#ifndef SHOAL_BENCH_BENCH_H
#define SHOAL_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* shoal-bench list [--n N] [--ops K] [--runs R] */
int shoal__bench_list(int argc, char **argv);
/* shoal-bench trace FILE [--runs R] [--variant NAME] */
int shoal__bench_trace(int argc, char **argv);
/* shoal-bench commits [--n N] [--runs R] */
int shoal__bench_commits(int argc, char **argv);

/* Helpers (bench/util.c). */
uint64_t shoal__bench_now_ns(void);
double shoal__bench_median(double *v, size_t n);   /* sorts v */
double shoal__bench_rss_mb(void);                   /* current RSS in MiB */
double shoal__bench_peak_rss_mb(void);              /* VmHWM in MiB */

#endif /* SHOAL_BENCH_BENCH_H */
