/*
 * test/core/test_crash.c - crash safety and durability.
 *
 * The parent runs this binary again as a child ("--child DIR MODE FD ROUND"),
 * with the fsync shim preloaded (SHOAL_FSYNC_SHIM names it).  The child
 * opens the replica and commits in a loop; after each commit returns it
 * writes the commit's number to a pipe.  The parent SIGKILLs it at a seeded
 * random moment, reaps it, reopens the directory and checks that the store
 * opens cleanly and every reported commit is there, over many rounds.
 *
 * With the shim, the child also checks that each durable commit called
 * fsync/fdatasync/msync before returning (a record flag tells the parent),
 * and, in a separate non-durable run, that shoal_replica_flush returns only
 * after a sync.
 *
 * A third loop kills a child in the middle of equivocation swaps: each
 * round imports an author's seq 1 and the larger of two versions of its
 * seq 2, commits a local change built on it, then imports the smaller
 * version (one write transaction replaces the applied one and rebuilds
 * the document).  After each kill, every reported round must show the
 * smaller version, and the reopened store must be consistent: a replica
 * that imports its export has the same full digest.
 *
 * Under AddressSanitizer the shim must come after the ASan runtime in
 * LD_PRELOAD; the parent finds the runtime in its own maps and puts it
 * first, or skips the shim checks with a note if it cannot.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "crdt.h"
#include "core.h"
#include "shoal.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

enum {
    ROUNDS = 30,
    FLAG_NOSYNC = 1,
    FLAG_ERROR = 2,
    FLAG_NOSHIM = 4
};

typedef struct record {
    uint64_t id;
    uint32_t flags;
    uint32_t pad;
} record;

/* ------------------------------------------------------------------ child */

typedef unsigned long (*count_fn)(void);

static count_fn
find_counter(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "shoal_test_sync_count");
    count_fn f;
    memcpy(&f, &sym, sizeof f);
    return f;
}

static shoal_replica *
open_mode(const char *dir, bool durable)
{
    shoal_options *o;
    if (shoal_options_new(&o))
        return NULL;
    shoal_options_set_durable(o, durable);
    shoal_replica *r = NULL;
    if (shoal_replica_open(&r, dir, o))
        r = NULL;
    shoal_options_free(o);
    return r;
}

static shoal_err
commit_one(shoal_replica *r, uint64_t id)
{
    char doc[32];
    snprintf(doc, sizeof doc, "n%llu", (unsigned long long)id);
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value v = { .type = SHOAL_T_INT, .i = (int64_t)id };
    err = shoal_txn_set(t, "crash", doc, "v", &v);
    if (!err)
        err = shoal_txn_counter_add(t, "crash", "total", "n", 1);
    if (!err)
        err = shoal_txn_list_insert(t, "crash", "total", "ids", 0, &v);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

static bool
write_all(int fd, const void *p, size_t n)
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

/* Durable: commit forever (until killed), reporting each commit. */
static int
child_durable(const char *dir, int fd, uint64_t base, bool want_shim)
{
    count_fn count = find_counter();
    shoal_replica *r = open_mode(dir, true);
    if (!r)
        return 2;
    for (uint64_t i = 0;; i++) {
        record rec = { .id = base + i };
        unsigned long c0 = count ? count() : 0;
        shoal_err err = commit_one(r, rec.id);
        unsigned long c1 = count ? count() : 0;
        if (err)
            rec.flags |= FLAG_ERROR;
        else if (count && c1 == c0)
            rec.flags |= FLAG_NOSYNC;
        if (want_shim && !count)
            rec.flags |= FLAG_NOSHIM;
        if (!write_all(fd, &rec, sizeof rec))
            return 3;
        if (err)
            return 4;
    }
}

/* Not durable (group commit, store/batch.c): a commit returns without
 * waiting for a sync; its batch is synced by the flusher within a few
 * milliseconds, or by a flush.  So when shoal_replica_flush returns, a sync
 * has happened since the commit began.  (When the flusher's timer fires is
 * up to the scheduler, so how many syncs the commits caused is not
 * checked.) */
static int
child_lazy(const char *dir)
{
    count_fn count = find_counter();
    if (!count)
        return 5;
    shoal_replica *r = open_mode(dir, false);
    if (!r)
        return 2;
    int bad = 0;
    for (uint64_t i = 0; i < 20; i++) {
        unsigned long c0 = count();
        if (commit_one(r, 900000000 + i) != SHOAL_OK)
            bad |= 1;
        if (i % 5 == 4) {
            if (shoal_replica_flush(r) != SHOAL_OK)
                bad |= 4;
            if (count() == c0)
                bad |= 8;
        }
    }
    shoal_replica_close(r);
    return bad ? 10 + bad : 0;
}

/* Round i of the swap loop: X_i's seq 1, and two versions of its seq 2
 * (small: the one with the smaller id), as one-change bundles. */
typedef struct swap_round {
    shoal__buf x1, big, small;
    char small_val[16];
} swap_round;

static int
swap_env(shoal__buf *bundle, const uint8_t pk[32], const uint8_t sk[64], uint64_t seq, uint64_t hlc,
         const uint8_t *dep, const char *doc, const char *val, uint8_t id[32])
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_SET;
    op.field = (const uint8_t *)"v";
    op.field_len = 1;
    op.value.type = SHOAL_T_STR;
    op.value.ptr = (const uint8_t *)val;
    op.value.len = strlen(val);
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, pk, 32);
    c.seq = seq;
    c.hlc = hlc;
    c.deps = dep;
    c.ndeps = dep ? 1 : 0;
    c.coll = (const uint8_t *)"swap";
    c.coll_len = 4;
    c.doc = (const uint8_t *)doc;
    c.doc_len = strlen(doc);
    c.ops = &op;
    c.nops = 1;
    shoal__buf body, env;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    shoal__buf_init(bundle);
    int err = shoal__change_encode(&c, &body);
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, pk, sk, &env);
    if (!err) {
        shoal__change_id(env.p, env.len, id);
        err = shoal__bundle_begin(bundle);
    }
    if (!err)
        err = shoal__bundle_add(bundle, env.p, env.len);
    if (!err)
        shoal__bundle_finish(bundle, 1);
    shoal__buf_free(&body);
    shoal__buf_free(&env);
    return err;
}

static int
swap_round_make(swap_round *w, uint64_t i)
{
    uint8_t seed[32] = { 0 }, pk[32], sk[64], id1[32], ia[32], ib[32];
    memcpy(seed, &i, sizeof i);
    seed[31] = 0x5a;
    crypto_sign_seed_keypair(pk, sk, seed);
    char doc[32];
    snprintf(doc, sizeof doc, "e%llu", (unsigned long long)i);
    uint64_t h = (uint64_t)1700000000000ull << 16; /* fixed: ids must repeat */
    shoal__buf a, b;
    int err = swap_env(&w->x1, pk, sk, 1, h, NULL, doc, "x1", id1);
    if (!err)
        err = swap_env(&a, pk, sk, 2, h + 1, id1, doc, "a", ia);
    if (!err)
        err = swap_env(&b, pk, sk, 2, h + 1, id1, doc, "b", ib);
    if (err)
        return err;
    bool a_small = memcmp(ia, ib, 32) < 0;
    w->small = a_small ? a : b;
    w->big = a_small ? b : a;
    snprintf(w->small_val, sizeof w->small_val, "%s", a_small ? "a" : "b");
    return SHOAL_OK;
}

static void
swap_round_free(swap_round *w)
{
    shoal__buf_free(&w->x1);
    shoal__buf_free(&w->big);
    shoal__buf_free(&w->small);
}

/* Swaps forever (until killed), reporting each round. */
static int
child_swap(const char *dir, int fd, uint64_t base)
{
    shoal_replica *r = open_mode(dir, true);
    if (!r)
        return 2;
    for (uint64_t i = 0;; i++) {
        swap_round w;
        if (swap_round_make(&w, base + i))
            return 3;
        shoal_import_result res;
        if (shoal_import(r, w.x1.p, w.x1.len, NULL) || shoal_import(r, w.big.p, w.big.len, NULL))
            return 4;
        char doc[32];
        snprintf(doc, sizeof doc, "e%llu", (unsigned long long)(base + i));
        shoal_txn *t;
        shoal_value v = { .type = SHOAL_T_INT, .i = 1 };
        if (shoal_txn_begin(r, &t) || shoal_txn_counter_add(t, "swap", doc, "n", 1) ||
            shoal_txn_list_insert(t, "swap", doc, "l", 0, &v) || shoal_txn_commit(t))
            return 5;
        if (shoal_import(r, w.small.p, w.small.len, &res) || res.applied != 1)
            return 6;
        swap_round_free(&w);
        record rec = { .id = base + i };
        if (!write_all(fd, &rec, sizeof rec))
            return 7;
    }
}

/* Durable, changes received over the network (the host's apply, as the
 * session calls it): they are committed relaxed (meta page unsynced, so
 * they are visible one fsync sooner) and must be durable when apply
 * returns, since the session then acknowledges them: the data sync of the
 * commit plus the flush, two syncs at least.  A local commit after it syncs
 * again.  Exit 0 on success, 10 + bits on a failed check. */
static int
child_relax(const char *dir)
{
    count_fn count = find_counter();
    if (!count)
        return 5;
    char src_dir[4096];
    snprintf(src_dir, sizeof src_dir, "%s/src", dir);
    char dst_dir[4096];
    snprintf(dst_dir, sizeof dst_dir, "%s/dst", dir);
    shoal_replica *src = open_mode(src_dir, false);
    shoal_replica *dst = open_mode(dst_dir, true);
    if (!src || !dst)
        return 2;
    int bad = 0;
    for (uint64_t i = 0; i < 40; i++)
        if (commit_one(src, 800000000 + i) != SHOAL_OK)
            bad |= 1;
    uint8_t *b = NULL;
    size_t blen = 0;
    if (shoal_export(src, NULL, &b, &blen) != SHOAL_OK || blen < 12)
        return 3;
    size_t n = (size_t)b[8] << 24 | (size_t)b[9] << 16 | (size_t)b[10] << 8 | b[11];
    shoal__host h;
    shoal__host_init(&h, dst);
    shoal_import_result res;
    unsigned long c0 = count();
    if (h.apply(h.ctx, b + 12, blen - 12, n, &res) != SHOAL_OK || res.applied != n)
        bad |= 2;
    if (count() - c0 < 2)
        bad |= 4;
    /* A replayed batch is all duplicates: nothing to make durable. */
    c0 = count();
    if (h.apply(h.ctx, b + 12, blen - 12, n, &res) != SHOAL_OK || res.duplicate != n)
        bad |= 8;
    c0 = count();
    if (commit_one(dst, 800000100) != SHOAL_OK || count() == c0)
        bad |= 16;
    shoal_free(b);
    shoal_replica_close(src);
    shoal_replica_close(dst);
    return bad ? 10 + bad : 0;
}

/* ----------------------------------------------------------------- parent */

static char preload[8192];
static bool have_shim;

/* Decide LD_PRELOAD for the children (see the file comment). */
static void
setup_preload(void)
{
    const char *shim = getenv("SHOAL_FSYNC_SHIM");
    if (!shim || !*shim || access(shim, R_OK) != 0) {
        printf("note: SHOAL_FSYNC_SHIM not set or missing; sync counting skipped\n");
        return;
    }
    if (!UNDER_ASAN) {
        snprintf(preload, sizeof preload, "%s", shim);
        have_shim = true;
        return;
    }
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096], asan[4096] = "";
    while (f && fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/');
        if (p && strstr(p, "libasan.so")) {
            p[strcspn(p, "\n")] = 0;
            snprintf(asan, sizeof asan, "%s", p);
            break;
        }
    }
    if (f)
        fclose(f);
    if (!asan[0]) {
        printf("note: ASan runtime not found in maps; sync counting skipped under ASan\n");
        return;
    }
    snprintf(preload, sizeof preload, "%s:%s", asan, shim);
    have_shim = true;
}

static pid_t
spawn(const char *dir, const char *mode, int fd, uint64_t base)
{
    char fds[16], bases[32];
    snprintf(fds, sizeof fds, "%d", fd);
    snprintf(bases, sizeof bases, "%llu", (unsigned long long)base);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (have_shim)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        setenv("SHOAL_CRASH_SHIM", have_shim ? "1" : "0", 1);
        execl("/proc/self/exe", "test_crash", "--child", dir, mode, fds, bases, (char *)NULL);
        _exit(127);
    }
    return pid;
}

typedef struct seen {
    uint64_t *ids;
    size_t n;
    size_t cap;
} seen;

static void
seen_add(seen *s, uint64_t id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        if (!s->ids)
            abort();
    }
    s->ids[s->n++] = id;
}

/* Read one record; false at EOF. */
static bool
read_rec(int fd, record *rec)
{
    size_t got = 0;
    while (got < sizeof *rec) {
        ssize_t r = read(fd, (char *)rec + got, sizeof *rec - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void
verify(const char *dir, const seen *s, int round)
{
    shoal_replica *r = open_mode(dir, true);
    if (!r) {
        fprintf(stderr, "round %d: reopen failed\n", round);
        check_failures++;
        return;
    }
    size_t missing = 0;
    for (size_t i = 0; i < s->n; i++) {
        char doc[32];
        snprintf(doc, sizeof doc, "n%llu", (unsigned long long)s->ids[i]);
        shoal_doc *d;
        size_t fi;
        shoal_value v;
        if (shoal_doc_get(r, "crash", doc, &d) != SHOAL_OK) {
            missing++;
            continue;
        }
        if (shoal_doc_field_find(d, "v", &fi) != SHOAL_OK ||
            shoal_doc_field_value(d, fi, &v) != SHOAL_OK || v.i != (int64_t)s->ids[i])
            missing++;
        shoal_doc_free(d);
    }
    if (missing) {
        fprintf(stderr, "round %d: %zu of %zu reported commits missing\n", round, missing, s->n);
        check_failures++;
    }
    /* The counter and the list hold one entry per commit that made it
     * (at least the reported ones, at most one more per killed child). */
    shoal_doc *d;
    int64_t total = -1;
    size_t len = 0, fi;
    if (shoal_doc_get(r, "crash", "total", &d) == SHOAL_OK) {
        if (shoal_doc_field_find(d, "n", &fi) == SHOAL_OK)
            shoal_doc_field_counter(d, fi, &total);
        if (shoal_doc_field_find(d, "ids", &fi) == SHOAL_OK)
            shoal_doc_field_list_len(d, fi, &len);
        shoal_doc_free(d);
    }
    CHECK(total >= (int64_t)s->n && total <= (int64_t)s->n + round + 1);
    CHECK_EQ((int64_t)len, total);
    shoal_vv *vv;
    if (shoal_replica_version(r, &vv) == SHOAL_OK) {
        /* Two documents per commit: two changes. */
        CHECK_EQ(shoal_vv_get(vv, shoal_replica_id(r)), 2 * (uint64_t)total);
        shoal_vv_free(vv);
    } else {
        check_failures++;
    }
    uint8_t dig[32];
    uint64_t pc = 1;
    CHECK_EQ(shoal_digest(r, true, dig), SHOAL_OK);
    CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 0);
    /* Query views and indexes survive too: indexes on a register and on
     * the list (long after 256 commits) are kept by every child from the
     * first round on; the check holds views against the documents and the
     * indexes against the views, and the index finds every document. */
    CHECK_EQ(shoal_index_add(r, "crash", "v"), SHOAL_OK);
    CHECK_EQ(shoal_index_add(r, "crash", "ids"), SHOAL_OK);
    shoal_check_stats cs;
    CHECK_EQ(shoal_replica_check(r, NULL, NULL, &cs), SHOAL_OK);
    CHECK_EQ(cs.problems, 0);
    shoal_query *q = NULL;
    uint64_t n = 0;
    CHECK_EQ(shoal_query_new(r, "crash", "v >= 0", &q), SHOAL_OK);
    CHECK_EQ(shoal_count(r, q, &n), SHOAL_OK);
    CHECK_EQ((int64_t)n, total);
    shoal_query_free(q);
    if (!s->n || shoal_query_new(r, "crash", "ids CONTAINS :v", &q) != SHOAL_OK) {
        check_failures += s->n != 0;
    } else {
        shoal_value v = { .type = SHOAL_T_INT, .i = (int64_t)s->ids[s->n - 1] };
        CHECK_EQ(shoal_query_bind(q, "v", &v), SHOAL_OK);
        CHECK(shoal_count(r, q, &n) == SHOAL_OK && n == 1);
        shoal_query_free(q);
    }
    shoal_replica_close(r);
}

static void
test_kill_loop(void)
{
    char *dir = check_tmpdir("crash");
    seen s = { 0 };
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        REQUIRE(pipe(p) == 0);
        pid_t pid = spawn(dir, "durable", p[1], (uint64_t)round * 1000000u);
        close(p[1]);
        REQUIRE(pid > 0);
        /* Let it report a random number of commits, then kill it at a
         * random moment of the next ones. */
        uint64_t want = 1 + check_rand_below(12);
        record rec;
        uint64_t got = 0;
        bool eof = false;
        while (got < want) {
            if (!read_rec(p[0], &rec)) {
                eof = true;
                break;
            }
            got++;
            if (rec.flags) {
                fprintf(stderr, "round %d: commit %llu flags %u\n", round,
                        (unsigned long long)rec.id, rec.flags);
                check_failures++;
            }
            if (!(rec.flags & FLAG_ERROR))
                seen_add(&s, rec.id);
        }
        usleep((useconds_t)check_rand_below(3000));
        kill(pid, SIGKILL);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (eof) {
            fprintf(stderr, "round %d: child ended early (status %d)\n", round, status);
            check_failures++;
        } else {
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
        /* Commits reported after the ones counted above count too. */
        while (read_rec(p[0], &rec)) {
            if (rec.flags) {
                fprintf(stderr, "round %d: commit %llu flags %u\n", round,
                        (unsigned long long)rec.id, rec.flags);
                check_failures++;
            }
            if (!(rec.flags & FLAG_ERROR))
                seen_add(&s, rec.id);
        }
        close(p[0]);
        verify(dir, &s, round);
        if (check_failures)
            break;
    }
    printf("%d rounds, %zu reported commits all present\n", ROUNDS, s.n);
    free(s.ids);
    check_rmtree(dir);
    free(dir);
}

static bool
get_v(shoal_replica *r, const char *doc, const char *want)
{
    shoal_doc *d;
    if (shoal_doc_get(r, "swap", doc, &d) != SHOAL_OK)
        return false;
    size_t i;
    shoal_value v;
    bool ok = shoal_doc_field_find(d, "v", &i) == SHOAL_OK &&
              shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_STR &&
              v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
    shoal_doc_free(d);
    return ok;
}

static void
verify_swaps(const char *dir, const seen *s, int round)
{
    shoal_replica *r = open_mode(dir, true);
    if (!r) {
        fprintf(stderr, "swap round %d: reopen failed\n", round);
        check_failures++;
        return;
    }
    size_t wrong = 0;
    for (size_t i = 0; i < s->n; i++) {
        swap_round w;
        if (swap_round_make(&w, s->ids[i])) {
            check_failures++;
            break;
        }
        char doc[32];
        snprintf(doc, sizeof doc, "e%llu", (unsigned long long)s->ids[i]);
        wrong += !get_v(r, doc, w.small_val);
        swap_round_free(&w);
    }
    if (wrong) {
        fprintf(stderr, "swap round %d: %zu of %zu reported swaps lost\n", round, wrong, s->n);
        check_failures++;
    }
    /* Log, indexes and documents agree: a replica built from the export
     * holds the same state. */
    uint8_t *b = NULL;
    size_t n = 0;
    uint8_t d1[32], d2[32];
    uint64_t pc = 1;
    CHECK_EQ(shoal_export(r, NULL, &b, &n), SHOAL_OK);
    CHECK_EQ(shoal_digest(r, true, d1), SHOAL_OK);
    CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 0);
    char *dir2 = check_tmpdir("crash-swap-copy");
    shoal_replica *c = open_mode(dir2, false);
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ(shoal_import(c, b, n, NULL), SHOAL_OK);
        CHECK_EQ(shoal_digest(c, true, d2), SHOAL_OK);
        if (memcmp(d1, d2, 32) != 0) {
            fprintf(stderr, "swap round %d: the export does not rebuild the state\n", round);
            check_failures++;
        }
        shoal_replica_close(c);
    }
    check_rmtree(dir2);
    free(dir2);
    shoal_free(b);
    shoal_replica_close(r);
}

static void
test_swap_kill_loop(void)
{
    enum {
        SWAP_ROUNDS = 8
    };
    char *dir = check_tmpdir("crash-swap");
    seen s = { 0 };
    for (int round = 0; round < SWAP_ROUNDS; round++) {
        int p[2];
        REQUIRE(pipe(p) == 0);
        pid_t pid = spawn(dir, "swap", p[1], (uint64_t)round * 1000000u);
        close(p[1]);
        REQUIRE(pid > 0);
        uint64_t want = 1 + check_rand_below(6);
        record rec;
        uint64_t got = 0;
        bool eof = false;
        while (got < want) {
            if (!read_rec(p[0], &rec)) {
                eof = true;
                break;
            }
            got++;
            seen_add(&s, rec.id);
        }
        usleep((useconds_t)check_rand_below(3000));
        kill(pid, SIGKILL);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (eof) {
            fprintf(stderr, "swap round %d: child ended early (status %d)\n", round, status);
            check_failures++;
        }
        while (read_rec(p[0], &rec))
            seen_add(&s, rec.id);
        close(p[0]);
        verify_swaps(dir, &s, round);
        if (check_failures)
            break;
    }
    printf("%d swap rounds, %zu reported swaps all present\n", SWAP_ROUNDS, s.n);
    free(s.ids);
    check_rmtree(dir);
    free(dir);
}

static void
test_lazy_sync(void)
{
    if (!have_shim) {
        printf("note: no fsync shim: non-durable sync check skipped\n");
        return;
    }
    char *dir = check_tmpdir("crash-lazy");
    pid_t pid = spawn(dir, "lazy", -1, 0);
    REQUIRE(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        fprintf(stderr, "lazy child exit %d\n", WEXITSTATUS(status));
        check_failures++;
    }
    /* What it wrote is there after the flush. */
    shoal_replica *r = open_mode(dir, true);
    CHECK(r != NULL);
    shoal_doc *d;
    CHECK(r && shoal_doc_get(r, "crash", "n900000019", &d) == SHOAL_OK);
    if (r && d)
        shoal_doc_free(d);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static void
test_relaxed_apply(void)
{
    if (!have_shim) {
        printf("note: no fsync shim: relaxed apply check skipped\n");
        return;
    }
    char *dir = check_tmpdir("crash-relax");
    pid_t pid = spawn(dir, "relax", -1, 0);
    REQUIRE(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "relax child exit %d\n", WEXITSTATUS(status));
    /* Everything it received and wrote is there. */
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/dst", dir);
    shoal_replica *r = open_mode(dst, true);
    CHECK(r != NULL);
    shoal_doc *d = NULL;
    CHECK(r && shoal_doc_get(r, "crash", "n800000039", &d) == SHOAL_OK);
    shoal_doc_free(d);
    d = NULL;
    CHECK(r && shoal_doc_get(r, "crash", "n800000100", &d) == SHOAL_OK);
    shoal_doc_free(d);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

int
main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "--child") == 0) {
        const char *shim = getenv("SHOAL_CRASH_SHIM");
        bool want = shim && strcmp(shim, "1") == 0;
        if (strcmp(argv[3], "lazy") == 0)
            return child_lazy(argv[2]);
        if (strcmp(argv[3], "swap") == 0)
            return child_swap(argv[2], atoi(argv[4]), strtoull(argv[5], NULL, 10));
        if (strcmp(argv[3], "relax") == 0)
            return child_relax(argv[2]);
        return child_durable(argv[2], atoi(argv[4]), strtoull(argv[5], NULL, 10), want);
    }
    signal(SIGPIPE, SIG_IGN);
    check_seed(7);
    setup_preload();
    RUN(test_kill_loop);
    RUN(test_lazy_sync);
    RUN(test_swap_kill_loop);
    RUN(test_relaxed_apply);
    return check_summary();
}
