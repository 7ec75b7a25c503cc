/*
 * bench/util.c - helpers shared by shoal-bench's subcommands: clocks,
 * medians and percentiles, RSS, temp dirs, the raw LMDB floor,
 * fork-per-measurement and the processes of multi-process benchmarks.
 *
 * Each measurement runs in a forked child: a child's peak RSS then covers
 * that measurement alone (the parent resets nothing it cannot see), and a
 * crash in one variant does not take the others down.  Results come back
 * over a pipe as a fixed-size struct (same binary on both ends).
 *
 * Every timed phase that writes to disk starts with sync(), so writeback
 * left over from an earlier phase (or another process) is not billed to it.
 *
 * The LMDB floor opens its environment the way store/ opens a replica in
 * durable mode (no MDB_NOSYNC / MDB_NOMETASYNC / MDB_WRITEMAP, one
 * environment per directory), so "shoal minus floor" is what shoal adds on
 * top of the fsyncs that durability needs anyway.
 */
#include "bench.h"

#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t
shoal__bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
shoal__bench_sleep_ms(double ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ms / 1000.0);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000.0) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double
shoal__bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    if (n % 2)
        return v[n / 2];
    return (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double
shoal__bench_median_of(const double *v, size_t n)
{
    double *tmp, m;

    if (n == 0)
        return 0.0;
    tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return 0.0;
    memcpy(tmp, v, n * sizeof *v);
    m = shoal__bench_median(tmp, n);
    free(tmp);
    return m;
}

double
shoal__bench_percentile(double *v, size_t n, double p)
{
    size_t k;

    if (n == 0)
        return 0.0;
    shoal__bench_median(v, n); /* sorts */
    k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

void
shoal__bench_print_runs(const char *name, const double *v, size_t n, int prec)
{
    size_t i;

    printf(",\"%s\":[", name);
    for (i = 0; i < n; i++)
        printf("%s%.*f", i ? "," : "", prec, v[i]);
    printf("]");
}

double
shoal__bench_load1(void)
{
    double l[1];

    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

const char *
shoal__bench_yesno(bool b)
{
    return b ? "true" : "false";
}

/* A "Key:   N kB" line of /proc/self/status, in MiB (-1 if absent). */
static double
status_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t klen = strlen(key);
    double mb = -1.0;

    if (!f)
        return -1.0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            mb = strtod(line + klen + 1, NULL) / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

double
shoal__bench_rss_mb(void)
{
    return status_mb("VmRSS");
}

double
shoal__bench_peak_rss_mb(void)
{
    return status_mb("VmHWM");
}

uint64_t
shoal__bench_io_write_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    uint64_t v = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "wchar:", 6) == 0) {
            v = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

bool
shoal__bench_reset_peak_rss(void)
{
    FILE *f;
    bool ok;

    malloc_trim(0);
    f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    ok = fputs("5", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

char *
shoal__bench_mkdtemp(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    size_t n;
    char *path;

    if (!base || !*base)
        base = "/tmp";
    n = strlen(base) + strlen(prefix) + 16;
    path = malloc(n);
    if (!path)
        return NULL;
    snprintf(path, n, "%s/%s-XXXXXX", base, prefix);
    if (!mkdtemp(path)) {
        fprintf(stderr, "shoal-bench: mkdtemp %s: %s\n", path, strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void
shoal__bench_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

long
shoal__bench_parse_long(const char *opt, const char *s)
{
    char *end;
    long v;

    if (!s) {
        fprintf(stderr, "shoal-bench: %s needs a value\n", opt);
        exit(2);
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "shoal-bench: %s: not a positive integer: %s\n", opt, s);
        exit(2);
    }
    return v;
}

uint64_t shoal__bench_lmdb_floor_write_bytes;

double
shoal__bench_lmdb_floor_ms(uint64_t commits, bool durable)
{
    char *dir = shoal__bench_mkdtemp("shoal-bench-lmdb");
    MDB_env *env = NULL;
    MDB_dbi dbi;
    MDB_txn *txn;
    uint64_t t0, i, w0;
    double ms = -1.0;
    int rc;

    if (!dir)
        return -1.0;
    rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, (size_t)64 << 20);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(env, 4);
    /* Same durability flags as store/ in durable mode: none of NOSYNC,
     * NOMETASYNC, WRITEMAP; MDB_NOTLS because shoal's read txns are not
     * bound to threads.  Non-durable mode adds MDB_NOSYNC. */
    if (rc == 0)
        rc = mdb_env_open(env, dir, MDB_NOTLS | (durable ? 0 : MDB_NOSYNC), 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "floor", MDB_CREATE, &dbi);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc != 0)
        goto out;

    sync(); /* earlier writes of this machine are not billed to us */
    w0 = shoal__bench_io_write_bytes();
    t0 = shoal__bench_now_ns();
    for (i = 0; i < commits && rc == 0; i++) {
        uint8_t kb[8], vb[32];
        MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };
        int j;

        for (j = 0; j < 8; j++)
            kb[j] = (uint8_t)(i >> (56 - 8 * j));
        memset(vb, (int)(i & 0xff), sizeof vb);
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc != 0)
            break;
        rc = mdb_put(txn, dbi, &k, &v, 0);
        if (rc != 0) {
            mdb_txn_abort(txn);
            break;
        }
        rc = mdb_txn_commit(txn);
    }
    if (rc == 0) {
        ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
        shoal__bench_lmdb_floor_write_bytes = shoal__bench_io_write_bytes() - w0;
    }

out:
    if (rc != 0)
        fprintf(stderr, "shoal-bench: lmdb floor: %s\n", mdb_strerror(rc));
    if (env)
        mdb_env_close(env);
    shoal__bench_rmtree(dir);
    free(dir);
    return ms;
}

/* write()/read() the whole buffer, retrying on EINTR and short transfers. */
bool
shoal__bench_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static bool
read_all(int fd, void *p, size_t n)
{
    char *c = p;

    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        c += r;
        n -= (size_t)r;
    }
    return true;
}

int
shoal__bench_in_child(shoal__bench_child_fn fn, void *arg, void *out, size_t out_len)
{
    int fds[2], status = 0, rc = -1;
    bool got;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int r;

        close(fds[0]);
        shoal__bench_reset_peak_rss();
        r = fn(arg, out);
        fflush(stdout);
        fflush(stderr);
        if (!shoal__bench_write_all(fds[1], out, out_len))
            r = -1;
        close(fds[1]);
        /* exit(), not _exit(): stdio was flushed before the fork, and a
         * leak checker (ASan) should look at the child too. */
        exit(r == 0 ? 0 : 3);
    }
    close(fds[1]);
    got = read_all(fds[0], out, out_len);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got && WIFEXITED(status))
        rc = WEXITSTATUS(status) == 0 ? 0 : 1;
    return rc;
}

pid_t
shoal__bench_spawn(int (*fn)(void *arg), void *arg)
{
    pid_t parent = getpid(), pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "shoal-bench: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        _exit(fn(arg) == 0 ? 0 : 1);
    }
    return pid;
}

int
shoal__bench_reap(pid_t pid, double timeout_ms, double *cpu_s)
{
    uint64_t deadline = shoal__bench_now_ns() + (uint64_t)(timeout_ms * 1e6);
    struct rusage ru;
    int status;

    if (pid <= 0)
        return -1;
    for (;;) {
        pid_t w = wait4(pid, &status, WNOHANG, &ru);

        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        if (shoal__bench_now_ns() > deadline) {
            fprintf(stderr, "shoal-bench: child %d did not exit; killing it\n", (int)pid);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        shoal__bench_sleep_ms(2);
    }
    if (cpu_s)
        *cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
