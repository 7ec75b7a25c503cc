/*
 * test/store/test_damage.c - a replica whose data.mdb was damaged gives
 * SHOAL_ECORRUPT, never a signal (SIGSEGV, SIGBUS, an abort) or a hang
 * (docs/storage.md, "Damaged files").
 *
 * One source replica is made through the public API: four collections, a
 * log table of depth 3 or more, values on overflow pages, and free pages
 * (documents written twice).  Each case copies its data.mdb and identity
 * into a fresh directory, damages the copy, and in a forked child opens the
 * store (the code and the message come back through a pipe) and then the
 * replica, reading every document of every collection, an export of
 * everything and both digests.  The parent reaps the child: a signal fails
 * the case, and so does a child that runs past its alarm.
 *
 * Cases and what they must give:
 *   - truncation (0 bytes, 1 page, 2 pages, half, one byte short):
 *     SHOAL_ECORRUPT at open, the message naming data.mdb;
 *   - a zeroed page: the meta pages, every free page and a seeded sample of
 *     the rest, 100 in all: SHOAL_ECORRUPT
 *     at open for a meta page or a page in use with a header; a page on the
 *     free list opens and gives the original digests; the inside of an
 *     overflow run (no header) anything but a crash;
 *   - a flipped bit in each structural field of both meta pages, and in the
 *     header, node offsets and child page numbers of a seeded sample of
 *     branch pages: SHOAL_ECORRUPT at open;
 *   - a huge declared map size (2^60, 2^45) in either meta page:
 *     SHOAL_ECORRUPT at open;
 *   - random flips in a seeded sample of leaf pages: anything but a crash;
 *   - a leaf page zeroed under an open store: shoal__store_verify gives
 *     SHOAL_ECORRUPT naming the page.
 * The seed is printed; SHOAL_SEED overrides it.
 */
#include "check.h"
#include "replica.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCOLL        4
#define DOCS_PER_TXN 40
#define TXNS         16
#define BIG_BYTES    9000 /* a value on overflow pages (4 KiB pages) */
#define SAMPLE       100
#define FLIP_SAMPLE  40
#define CHILD_SECS   20

static const char *const colls[NCOLL] = { "notes", "tasks", "people", "big" };

/* The source replica and what a reader of it sees. */
static char *src;
static uint8_t *src_file; /* data.mdb */
static size_t src_len;
static size_t psize;
static uint64_t last_pg;
static uint8_t *is_free; /* per page: on LMDB's free list */
static uint8_t vis0[32], full0[32];

static bool
write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return false;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w <= 0) {
            close(fd);
            return false;
        }
        done += (size_t)w;
    }
    return close(fd) == 0;
}

static uint8_t *
read_file(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    uint8_t *p = malloc((size_t)st.st_size + 1);
    size_t done = 0;
    while (p && done < (size_t)st.st_size) {
        ssize_t r = read(fd, p + done, (size_t)st.st_size - done);
        if (r <= 0) {
            free(p);
            p = NULL;
            break;
        }
        done += (size_t)r;
    }
    close(fd);
    *n = done;
    return p;
}

static uint64_t
get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static unsigned
get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* ------------------------------------------------------------- source */

static bool
set_str(shoal_txn *t, const char *coll, const char *id, const char *field, size_t n, unsigned seed)
{
    char *s = malloc(n);
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (seed + i * 7) % 26);
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = n };
    bool ok = shoal_txn_set(t, coll, id, field, &v) == SHOAL_OK;
    free(s);
    return ok;
}

/* A fixed clock, so that a seed gives the same file byte for byte. */
static uint64_t
fixed_ms(void *ctx)
{
    (void)ctx;
    return 1700000000000ull;
}

static bool
make_source(void)
{
    if (!check_seed_identity(src))
        return false;
    shoal_replica *r = check_replica_open(src, fixed_ms, NULL);
    if (!r)
        return false;
    bool ok = true;
    for (int x = 0; x < TXNS && ok; x++) {
        shoal_txn *t;
        ok = shoal_txn_begin(r, &t) == SHOAL_OK;
        for (int d = 0; d < DOCS_PER_TXN && ok; d++) {
            char id[32];
            const char *coll = colls[d % 3];
            snprintf(id, sizeof id, "doc%d", (x * DOCS_PER_TXN + d) % 400);
            ok = set_str(t, coll, id, "body", 1200 + (size_t)(d * 13), (unsigned)(x + d)) &&
                 shoal_txn_counter_add(t, coll, id, "n", d) == SHOAL_OK;
        }
        if (ok && x % 4 == 0) {
            char id[32];
            snprintf(id, sizeof id, "blob%d", x / 4);
            ok = set_str(t, "big", id, "data", BIG_BYTES, (unsigned)x);
        }
        if (ok)
            ok = shoal_txn_commit(t) == SHOAL_OK;
        else
            shoal_txn_abort(t);
    }
    ok = ok && shoal_digest(r, false, vis0) == SHOAL_OK && shoal_digest(r, true, full0) == SHOAL_OK;
    shoal_replica_close(r);
    return ok;
}

/* What LMDB says of the source (trusted: it was just written): page size,
 * last page, the free list, and the shape the cases need. */
static bool
survey_source(void)
{
    MDB_env *env;
    MDB_txn *txn;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16))
        return false;
    if (mdb_env_open(env, src, MDB_RDONLY, 0600)) {
        mdb_env_close(env);
        return false;
    }
    bool ok = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0;
    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &est);
    psize = est.ms_psize;
    last_pg = info.me_last_pgno;
    is_free = calloc(last_pg + 1, 1);
    MDB_cursor *c;
    MDB_val k, v;
    ok = ok && is_free && mdb_cursor_open(txn, 0, &c) == 0;
    if (ok) {
        int rc;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            const uint8_t *idl = v.mv_data;
            for (uint64_t i = 1; i <= get64(idl); i++)
                is_free[get64(idl + 8 * i)] = 1;
        }
        mdb_cursor_close(c);
    }
    MDB_dbi dbi;
    MDB_stat ls;
    ok = ok && mdb_dbi_open(txn, "log", 0, &dbi) == 0 && mdb_stat(txn, dbi, &ls) == 0;
    if (ok) {
        printf("  source: %zu-byte pages, last page %llu, log depth %u, log overflow pages %zu\n",
               psize, (unsigned long long)last_pg, ls.ms_depth, ls.ms_overflow_pages);
        CHECK(ls.ms_depth >= 3);
    }
    MDB_stat ds;
    ok = ok && mdb_dbi_open(txn, "docsnap", 0, &dbi) == 0 && mdb_stat(txn, dbi, &ds) == 0;
    if (ok)
        CHECK(ls.ms_overflow_pages + ds.ms_overflow_pages > 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return ok;
}

/* ------------------------------------------------------------- a case */

typedef enum {
    EXPECT_CORRUPT,
    EXPECT_ORIGINAL,
    EXPECT_NO_CRASH
} expect;

typedef struct outcome {
    int open_rc;    /* shoal__store_open's code */
    char msg[256];  /* its message */
    int replica_rc; /* the first failing public call, SHOAL_OK if none */
    bool same;      /* both digests equal the source's */
} outcome;

static int count_unexpected;

static void
child_read(const char *dir, outcome *o)
{
    shoal__store *s = NULL;
    o->open_rc = shoal__store_open(&s, dir, NULL, o->msg, sizeof o->msg);
    shoal__store_close(s);
    if (o->open_rc)
        return;
    shoal_replica *r = check_replica_open(dir, fixed_ms, NULL);
    if (!r) {
        o->replica_rc = -1;
        return;
    }
    int rc = SHOAL_OK;
    shoal_strlist *cl = NULL;
    rc = shoal_collections(r, &cl);
    for (size_t i = 0; rc == SHOAL_OK && i < shoal_strlist_count(cl); i++) {
        shoal_strlist *dl = NULL;
        rc = shoal_docs(r, shoal_strlist_get(cl, i), &dl);
        for (size_t j = 0; rc == SHOAL_OK && j < shoal_strlist_count(dl); j++) {
            shoal_doc *d = NULL;
            rc = shoal_doc_get(r, shoal_strlist_get(cl, i), shoal_strlist_get(dl, j), &d);
            for (size_t f = 0; rc == SHOAL_OK && d && f < shoal_doc_field_count(d); f++) {
                shoal_value v;
                int64_t n;
                if (shoal_doc_field_kind(d, f) == SHOAL_K_COUNTER)
                    rc = shoal_doc_field_counter(d, f, &n);
                else if (shoal_doc_field_kind(d, f) == SHOAL_K_REGISTER)
                    rc = shoal_doc_field_value(d, f, &v);
            }
            shoal_doc_free(d);
        }
        shoal_strlist_free(dl);
    }
    shoal_strlist_free(cl);
    uint8_t *bundle = NULL;
    size_t blen = 0;
    if (rc == SHOAL_OK)
        rc = shoal_export(r, NULL, &bundle, &blen);
    shoal_free(bundle);
    uint8_t vis[32], full[32];
    if (rc == SHOAL_OK)
        rc = shoal_digest(r, false, vis);
    if (rc == SHOAL_OK)
        rc = shoal_digest(r, true, full);
    o->replica_rc = rc;
    o->same = rc == SHOAL_OK && memcmp(vis, vis0, 32) == 0 && memcmp(full, full0, 32) == 0;
    shoal_replica_close(r);
}

/* Write img (n bytes) as a replica's data.mdb beside the source's
 * identity, run the reader in a child, check the outcome. */
static void
run_case(const char *name, const uint8_t *img, size_t n, expect want)
{
    char *dir = check_tmpdir("damage");
    char *data = check_path_join(dir, "data.mdb"), *id = check_path_join(dir, "identity");
    char *sid = check_path_join(src, "identity");
    size_t idlen;
    uint8_t *idb = read_file(sid, &idlen);
    bool ok = idb && write_file(data, img, n) && write_file(id, idb, idlen);
    CHECK(ok);
    int fds[2];
    if (ok && pipe(fds) == 0) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            alarm(CHILD_SECS);
            outcome o;
            memset(&o, 0, sizeof o);
            child_read(dir, &o);
            ssize_t w = write(fds[1], &o, sizeof o);
            _exit(w == (ssize_t)sizeof o ? 0 : 3);
        }
        close(fds[1]);
        outcome o;
        memset(&o, 0, sizeof o);
        size_t got = 0;
        while (pid > 0 && got < sizeof o) {
            ssize_t r = read(fds[0], (uint8_t *)&o + got, sizeof o - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        close(fds[0]);
        int status = 0;
        while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (pid < 0 || WIFSIGNALED(status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
            got != sizeof o) {
            fprintf(stderr, "%s: child died (%s %d)\n", name,
                    WIFSIGNALED(status) ? "signal" : "exit",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            check_failures++;
        } else if (want == EXPECT_CORRUPT &&
                   (o.open_rc != SHOAL_ECORRUPT || !strstr(o.msg, "data.mdb"))) {
            fprintf(stderr, "%s: open gave %d (%s), not SHOAL_ECORRUPT naming data.mdb\n", name,
                    o.open_rc, o.msg);
            check_failures++;
        } else if (want == EXPECT_ORIGINAL && (o.open_rc != SHOAL_OK || !o.same)) {
            fprintf(stderr, "%s: open %d (%s), reads %d, digests %s\n", name, o.open_rc, o.msg,
                    o.replica_rc, o.same ? "same" : "differ");
            check_failures++;
        } else if (want == EXPECT_NO_CRASH && o.open_rc == SHOAL_OK && o.replica_rc != SHOAL_OK) {
            count_unexpected++; /* a clean error past the open: allowed */
        }
    } else if (ok) {
        CHECK(!"pipe");
    }
    free(idb);
    check_rmtree(dir);
    free(sid);
    free(id);
    free(data);
    free(dir);
}

static uint8_t *
copy_src(void)
{
    uint8_t *p = malloc(src_len);
    if (!p)
        abort();
    memcpy(p, src_file, src_len);
    return p;
}

/* ---------------------------------------------------------------- cases */

static void
test_truncated(void)
{
    size_t lens[] = { 0, psize, 2 * psize, src_len / 2, src_len - 1 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "truncated to %zu bytes", lens[i]);
        run_case(name, src_file, lens[i], EXPECT_CORRUPT);
    }
}

/* The newer meta page (the one LMDB uses) and the older. */
static unsigned
newer_meta(void)
{
    return get64(src_file + 128 + 16) > get64(src_file + psize + 128 + 16) ? 0 : 1;
}

static void
test_huge_map(void)
{
    uint64_t sizes[] = { (uint64_t)1 << 60, (uint64_t)1 << 45 };
    for (unsigned slot = 0; slot < 2; slot++)
        for (size_t i = 0; i < 2; i++) {
            uint8_t *img = copy_src();
            memcpy(img + slot * psize + 16 + 16, &sizes[i], 8);
            char name[64];
            snprintf(name, sizeof name, "meta page %u: map size 2^%d", slot, i ? 45 : 60);
            run_case(name, img, src_len, EXPECT_CORRUPT);
            free(img);
        }
}

/* A field of a meta page: offset in the page, its width.  Each gets a
 * flip of a high bit (bit 50 of a u64), which makes a value no check
 * passes; the fields the walk follows also a flip of bit 0 in the meta page
 * in use (in the other one, only the next commit would use them, and it
 * rewrites them first). */
typedef struct meta_field {
    const char *name;
    size_t off;
    unsigned width;  /* bytes */
    bool low_in_use; /* flip bit 0 too, in the newer meta */
} meta_field;

static const meta_field meta_fields[] = {
    { "page number", 0, 8, false },
    { "page flags", 10, 2, false },
    { "magic", 16, 4, false },
    { "version", 20, 4, false },
    { "map address", 24, 8, false },
    { "map size", 32, 8, false },
    { "page size", 40, 4, true },
    { "free DB flags", 44, 2, true },
    { "free DB depth", 46, 2, true },
    { "free DB branch pages", 48, 8, true },
    { "free DB leaf pages", 56, 8, true },
    { "free DB overflow pages", 64, 8, true },
    { "free DB entries", 72, 8, true },
    { "free DB root", 80, 8, true },
    { "main DB pad", 88, 4, true },
    { "main DB flags", 92, 2, true },
    { "main DB depth", 94, 2, true },
    { "main DB branch pages", 96, 8, true },
    { "main DB leaf pages", 104, 8, true },
    { "main DB overflow pages", 112, 8, true },
    { "main DB entries", 120, 8, true },
    { "main DB root", 128, 8, true },
    { "last page", 136, 8, true },
    { "txn id", 144, 8, true },
};

static void
flip(uint8_t *img, size_t off, unsigned bit)
{
    img[off + bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

static void
test_meta_flips(void)
{
    unsigned newer = newer_meta();
    for (unsigned slot = 0; slot < 2; slot++) {
        for (size_t f = 0; f < sizeof meta_fields / sizeof meta_fields[0]; f++) {
            const meta_field *mf = &meta_fields[f];
            unsigned bits[2] = { mf->width * 8 - 2, 0 }; /* a high bit, bit 0 */
            if (mf->width == 8)
                bits[0] = 50;
            int nbits = slot == newer && mf->low_in_use ? 2 : 1;
            /* txn id: only bit 0 is damage in either page; a high bit makes
             * the older meta the newer (docs/storage.md: not caught). */
            if (mf->off == 144) {
                bits[0] = 0;
                nbits = 1;
            }
            for (int b = 0; b < nbits; b++) {
                uint8_t *img = copy_src();
                flip(img, slot * psize + mf->off, bits[b]);
                char name[96];
                snprintf(name, sizeof name, "meta page %u%s: %s bit %u", slot,
                         slot == newer ? " (in use)" : "", mf->name, bits[b]);
                run_case(name, img, src_len, EXPECT_CORRUPT);
                free(img);
            }
        }
    }
}

/* Page p of the source: a branch (1), leaf (2) or overflow (4) page in use
 * with its header, else 0 (a meta page, a free page, inside a run). */
static unsigned
page_kind(uint64_t p)
{
    if (p < 2 || p > last_pg || is_free[p])
        return 0;
    const uint8_t *pg = src_file + p * psize;
    unsigned fl = get16(pg + 10);
    if (get64(pg) != p || (fl != 1 && fl != 2 && fl != 4))
        return 0;
    return fl;
}

static void
test_zeroed(void)
{
    /* The meta pages and every free page, then a sample of the rest. */
    uint64_t pages = last_pg + 1, *pick = malloc(SAMPLE * sizeof *pick);
    REQUIRE(pick);
    size_t n = 0;
    for (uint64_t p = 0; p < pages && n < SAMPLE; p++)
        if (p < 2 || is_free[p])
            pick[n++] = p;
    while (n < SAMPLE && n < pages)
        pick[n++] = 2 + check_rand_below(pages - 2);
    int corrupt = 0, original = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t p = pick[i];
        uint8_t *img = copy_src();
        memset(img + p * psize, 0, psize);
        expect want = EXPECT_NO_CRASH;
        if (p < 2 || page_kind(p))
            want = EXPECT_CORRUPT, corrupt++;
        else if (is_free[p])
            want = EXPECT_ORIGINAL, original++;
        char name[64];
        snprintf(name, sizeof name, "page %llu zeroed", (unsigned long long)p);
        run_case(name, img, src_len, want);
        free(img);
    }
    printf("  %zu pages zeroed: %d in use, %d free\n", n, corrupt, original);
    CHECK(original > 0);
    free(pick);
}

/* Pages of one kind, in page order. */
static size_t
pages_of(unsigned kind, uint64_t *out)
{
    size_t n = 0;
    for (uint64_t p = 2; p <= last_pg; p++)
        if (page_kind(p) == kind)
            out[n++] = p;
    return n;
}

static void
test_branch_flips(void)
{
    uint64_t *br = malloc((last_pg + 1) * sizeof *br);
    REQUIRE(br);
    size_t nbr = pages_of(1, br);
    printf("  %zu branch pages in use\n", nbr);
    CHECK(nbr > 0);
    for (int i = 0; nbr && i < FLIP_SAMPLE; i++) {
        uint64_t p = br[check_rand_below(nbr)];
        const uint8_t *pg = src_file + p * psize;
        size_t nkeys = (get16(pg + 12) - 16) / 2;
        size_t off;
        unsigned bit;
        const char *what;
        switch (i % 4) {
        case 0: /* header: page number, flags, or a clear bit of upper */
            what = "header";
            switch (check_rand_below(3)) {
            case 0: off = 0, bit = (unsigned)check_rand_below(64); break;
            case 1: off = 10, bit = (unsigned)check_rand_below(16); break;
            default: {
                unsigned up = get16(pg + 14);
                off = 14;
                do
                    bit = (unsigned)check_rand_below(16);
                while (up & (1u << bit));
            }
            }
            break;
        case 1: /* a node offset */
            what = "node offset";
            off = 16 + 2 * check_rand_below(nkeys);
            bit = (unsigned)check_rand_below(16);
            break;
        default: /* a child page number: its low 48 bits */
            what = "child page";
            off = get16(pg + 16 + 2 * check_rand_below(nkeys));
            bit = (unsigned)check_rand_below(32);
            break;
        }
        uint8_t *img = copy_src();
        flip(img, p * psize + off, bit);
        char name[96];
        snprintf(name, sizeof name, "branch page %llu: %s bit %u at %zu", (unsigned long long)p,
                 what, bit, off);
        run_case(name, img, src_len, EXPECT_CORRUPT);
        free(img);
    }
    free(br);
}

static void
test_leaf_flips(void)
{
    uint64_t *lf = malloc((last_pg + 1) * sizeof *lf);
    REQUIRE(lf);
    size_t nlf = pages_of(2, lf);
    CHECK(nlf > 0);
    count_unexpected = 0;
    for (int i = 0; nlf && i < FLIP_SAMPLE; i++) {
        uint64_t p = lf[check_rand_below(nlf)];
        uint8_t *img = copy_src();
        int nflips = 1 + (int)check_rand_below(4);
        for (int k = 0; k < nflips; k++)
            flip(img, p * psize, (unsigned)check_rand_below(psize * 8));
        char name[64];
        snprintf(name, sizeof name, "leaf page %llu: %d random flips", (unsigned long long)p,
                 nflips);
        run_case(name, img, src_len, EXPECT_NO_CRASH);
        free(img);
    }
    printf("  leaf flips: %d opened and then failed cleanly\n", count_unexpected);
    free(lf);
}

/* shoal__store_verify on the undamaged source: its figures add up. */
static void
test_verify_source(void)
{
    shoal__store *s = NULL;
    char eb[256];
    REQUIRE(shoal__store_open(&s, src, NULL, eb, sizeof eb) == SHOAL_OK);
    shoal__store_check st;
    CHECK_EQ(shoal__store_verify(s, &st), SHOAL_OK);
    CHECK_EQ(st.page_size, psize);
    CHECK(st.last_page >= last_pg);
    CHECK(st.file_bytes >= (st.last_page + 1) * st.page_size);
    CHECK(st.branch_pages + st.leaf_pages + st.overflow_pages + st.free_pages + 2 <=
          st.last_page + 1);
    CHECK(st.entries > 0 && st.overflow_pages > 0 && st.free_pages > 0);
    printf("  verify: %llu pages: %llu branch, %llu leaf, %llu overflow, %llu free; %llu "
           "entries\n",
           (unsigned long long)(st.last_page + 1), (unsigned long long)st.branch_pages,
           (unsigned long long)st.leaf_pages, (unsigned long long)st.overflow_pages,
           (unsigned long long)st.free_pages, (unsigned long long)st.entries);
    shoal__store_close(s);
}

/* shoal__store_verify on an open store whose file is damaged afterwards
 * (a leaf page zeroed in place): the walk reads with pread, so it reports
 * the damage instead of touching the page through LMDB's map. */
static void
test_verify_damaged(void)
{
    uint64_t *lf = malloc((last_pg + 1) * sizeof *lf);
    REQUIRE(lf);
    size_t nlf = pages_of(2, lf);
    char *dir = check_tmpdir("damage-verify");
    char *data = check_path_join(dir, "data.mdb");
    shoal__store *s = NULL;
    char eb[256];
    if (nlf && write_file(data, src_file, src_len) &&
        shoal__store_open(&s, dir, NULL, eb, sizeof eb) == SHOAL_OK) {
        CHECK_EQ(shoal__store_verify(s, NULL), SHOAL_OK);
        uint64_t p = lf[check_rand_below(nlf)];
        uint8_t *zero = calloc(1, psize);
        int fd = open(data, O_WRONLY);
        CHECK(zero && fd >= 0 && pwrite(fd, zero, psize, (off_t)(p * psize)) == (ssize_t)psize);
        if (fd >= 0)
            close(fd);
        free(zero);
        shoal__store_check st;
        CHECK_EQ(shoal__store_verify(s, &st), SHOAL_ECORRUPT);
        CHECK(strstr(shoal__store_errmsg(s), "data.mdb is damaged") != NULL);
        printf("  verify after page %llu was zeroed: %s\n", (unsigned long long)p,
               shoal__store_errmsg(s));
        shoal__store_close(s);
    } else {
        CHECK(!"open a copy of the source");
    }
    check_rmtree(dir);
    free(data);
    free(dir);
    free(lf);
}

int
main(void)
{
    check_seed(0x5eed0d15c0ffeeull);
    src = check_tmpdir("damage-src");
    if (!make_source() || !survey_source()) {
        fprintf(stderr, "making the source replica failed\n");
        check_rmtree(src);
        free(src);
        return 1;
    }
    /* The source as it was surveyed (its open below walks but writes
     * nothing the cases depend on: they use this copy). */
    char *data = check_path_join(src, "data.mdb");
    src_file = read_file(data, &src_len);
    free(data);
    if (!src_file || src_len < 2 * psize) {
        check_rmtree(src);
        return 1;
    }
    RUN(test_verify_source);
    RUN(test_truncated);
    RUN(test_huge_map);
    RUN(test_meta_flips);
    RUN(test_zeroed);
    RUN(test_branch_flips);
    RUN(test_leaf_flips);
    RUN(test_verify_damaged);
    free(src_file);
    free(is_free);
    check_rmtree(src);
    free(src);
    return check_summary();
}
