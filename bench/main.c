/*
 * bench/main.c - shoal-bench: dispatches to one subcommand.
 *
 * Every subcommand prints one JSON object per line (JSON lines) on stdout,
 * so results can be piped into jq or a script; progress and errors go to
 * stderr.  docs/benchmarks.md explains each figure.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static void
usage(FILE *f)
{
    fputs("usage: shoal-bench COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  list [--n N] [--ops K] [--runs R]\n"
          "      in-memory list (crdt/) insert/delete/index speed\n"
          "  trace FILE [--runs R] [--variant NAME]...\n"
          "      replay an editing trace (gzipped JSON, e.g. automerge-paper.json.gz);\n"
          "      variants: crdt local-batch100 local-batch100-durable local-txn remote\n"
          "      local-batch100-policy remote-policy (default: all), R runs each\n"
          "      (default 5), one median line per variant\n"
          "  authz [--history N] [--checks N] [--runs R]\n"
          "      the write check's own cost per change: deps at the heads, and deps\n"
          "      N/2 changes in the past (docs/permissions.md)\n"
          "  commits [--n N] [--runs R]\n"
          "      durable commits/s through the public API, and raw LMDB in the same run\n"
          "  sync [--changes N] [--samples S] [--seconds T] [--runs R] [--docs N]\n"
          "       [--peers P] [--incoming N] [--variant NAME]...\n"
          "      live sync over loopback: catch-up, latency, throughput, beside floors;\n"
          "      partial sync (subscriptions): initial sync, relay CPU, LEAVE/ENTER latency\n"
#ifdef SHOAL_BENCH_QUERY
          "  query [--docs N] [--runs R] [--seed S]\n"
          "      queries, aggregation, live queries and index upkeep, beside SQLite\n"
          "      (typed columns and JSON documents) holding the same data\n"
#endif
          "\n"
          "Output: one JSON object per line on stdout.  Temp dirs go under $TMPDIR.\n"
          "See docs/benchmarks.md.\n",
          f);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "list") == 0)
        return shoal__bench_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "trace") == 0)
        return shoal__bench_trace(argc - 1, argv + 1);
    if (strcmp(argv[1], "commits") == 0)
        return shoal__bench_commits(argc - 1, argv + 1);
    if (strcmp(argv[1], "sync") == 0)
        return shoal__bench_sync(argc - 1, argv + 1);
    if (strcmp(argv[1], "authz") == 0)
        return shoal__bench_authz(argc - 1, argv + 1);
#ifdef SHOAL_BENCH_QUERY
    if (strcmp(argv[1], "query") == 0)
        return shoal__bench_query(argc - 1, argv + 1);
#endif
    fprintf(stderr, "shoal-bench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
