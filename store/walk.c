/*
 * store/walk.c - validation of data.mdb: its meta pages before LMDB maps the
 * file, then every page of one snapshot before LMDB follows a page number
 * (docs/storage.md, "Damaged files").
 *
 * Why.  LMDB 0.9 does not checksum pages and trusts what it reads through
 * its map: a page number past the end of the file is a SIGBUS, a node
 * offset past the page a read past the map or a SIGSEGV, a branch page with
 * one key an assertion abort, a free-list entry far past the file a write
 * that grows it to terabytes.  So before anything follows a page number
 * (mdb_dbi_open does, in open_tables), the store reads every page of the
 * snapshot it is about to use with pread(), never through the map, and
 * checks what its users rely on.  A problem is SHOAL_ECORRUPT with a line
 * naming the first one: "data.mdb is damaged: page 123: child page 98765
 * past the last page 400".
 *
 * What is checked (the layout is LMDB 0.9.24's, liblmdb/mdb.c; LMDB's own
 * checks are named where we rely on them):
 *   - meta pages (shoal__st_precheck, before mdb_env_open, and again for
 *     the snapshot walked): the file holds both; header page number and
 *     P_META; magic and data version (LMDB checks these too, in
 *     mdb_env_read_header, but then maps the file using the page size it
 *     read, unchecked); page size a power of two in [512, 65536] and equal
 *     in both; no fixed map address; the declared map size at most
 *     MAX_MAP_SIZE (LMDB maps that much address space at open); the last
 *     page inside the file (LMDB only keeps page numbers below last + 1,
 *     mdb_page_get); the free and main DB records (flags, depth, counts,
 *     roots in [2, last] or P_INVALID when empty); transaction N is written
 *     to meta page N % 2 (mdb_env_write_meta), so a txn id of the wrong
 *     parity is damage (both pages of a new file hold id 0).
 *   - the snapshot (shoal__st_walk): every page of the free DB, the main DB
 *     and each table (a named DB, a F_SUBDATA node of the main DB): header
 *     page number, type (branch above the leaves, leaf at the DB's depth,
 *     overflow), lower and upper bounds, every node inside the page and
 *     2-byte aligned, key sizes at most LMDB's maximum, keys strictly
 *     ascending within a page, branch pages with two keys or more (LMDB
 *     asserts it, mdb_page_search_root; one is allowed in the free DB),
 *     child page numbers in [2, last], no page reached twice (a bitmap: no
 *     cycle, no shared subtree), overflow runs inside [2, last] and long
 *     enough for their value, the DB records' page and entry counts, no
 *     F_DUPDATA (shoal uses no sorted duplicates), only tables in the main
 *     DB, table records of sizeof(MDB_db) with no flags; free-list records
 *     (key: a txn id no newer than the snapshot; value: a count then that
 *     many page numbers, strictly descending) whose pages are in [2, last],
 *     listed once and not in use by a tree.
 * What is not: keys against the separators of the branch pages above
 * them (lookups may then miss a subtree; not memory-unsafe); the bytes of
 * keys and values (a flipped bit that keeps the structure valid reads back
 * as a different value; the `check` command verifies signatures and ids);
 * a high bit flipped in the older meta's txn id (LMDB then opens the
 * intact snapshot before the last commit); pages no tree or free list
 * reaches (a leak, harmless); anything damaged after the walk (the pages
 * are then trusted).
 *
 * Concurrency.  The walk runs inside a read txn: LMDB never reuses a page
 * of a snapshot a reader holds, so another process's writer cannot change
 * the pages walked.  It can rewrite the meta pages, though (every commit
 * writes one): the meta of the txn's snapshot (slot txnid % 2) is read
 * twice before the walk, and the caller retries in a new txn when the two
 * reads differ (torn by a write) or the slot holds another txn id (two
 * commits since the txn began).  A problem found in a meta page counts
 * only when a second read gives the same bytes.
 *
 * Rejected: following pages through LMDB's map (a bad page number is then
 * the very SIGBUS this avoids); mdb_env_copy or a cursor walk (both trust
 * the pages); checking only the pages a read will touch (they are all
 * touched eventually, and a writer copies and frees any of them).
 *
 * The structs of LMDB are private to mdb.c, so the offsets below are ours,
 * for a 64-bit build (pgno_t and txnid_t are size_t); a change of LMDB's
 * data version (MDB_DATA_VERSION, 1 in 0.9) is refused before any of them
 * is used.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(size_t) == 8, "walk.c reads LMDB's 64-bit page layout");

/* Page header: page number (u64) | pad (u16) | flags (u16) | lower (u16) |
 * upper (u16); an overflow page has a page count (u32) where lower and
 * upper are.  Then the node offsets (u16 each) of a branch or leaf page. */
#define PG_HDR    16
#define PG_FLAGS  10
#define PG_LOWER  12
#define PG_UPPER  14
#define PG_NPAGES 12
#define PF_BRANCH 0x01
#define PF_LEAF   0x02
#define PF_OVER   0x04
#define PF_META   0x08
/* The meta record follows the header of pages 0 and 1: magic (u32) |
 * version (u32) | fixed map address (u64) | map size (u64) | free DB record
 * | main DB record | last page (u64) | txn id (u64). */
#define M_MAGIC           0
#define M_VERSION         4
#define M_ADDRESS         8
#define M_MAPSIZE         16
#define M_FREEDB          24
#define M_MAINDB          72
#define M_LASTPG          120
#define M_TXNID           128
#define META_BYTES        136
#define LMDB_MAGIC        0xBEEFC0DEu
#define LMDB_DATA_VERSION 1
/* A DB record (MDB_db, 48 bytes): pad (u32; the page size in the free DB's)
 * | flags (u16) | depth (u16) | branch, leaf, overflow pages | entries |
 * root page (u64 each). */
#define DB_BYTES   48
#define DB_FLAGS   4
#define DB_DEPTH   6
#define DB_BRANCH  8
#define DB_LEAF    16
#define DB_OVER    24
#define DB_ENTRIES 32
#define DB_ROOT    40
/* A node: two u16 halves of the data size (the child page on a branch
 * page, whose flags field holds bits 32..47 of it) | flags (u16) | key size
 * (u16) | key | data (a leaf's value, or the first page of its overflow
 * run, u64, with F_BIGDATA). */
#define NODE_HDR   8
#define NF_BIGDATA 0x01
#define NF_SUBDATA 0x02
#define NF_DUPDATA 0x04
#define NO_PAGE    UINT64_MAX /* P_INVALID: the root of an empty tree */
/* The least room an entry takes on a leaf: its offset, a node header, a
 * key of one byte (LMDB refuses empty keys). */
#define MIN_NODE (2 + NODE_HDR + 1)
/* LMDB's cursor stack (CURSOR_STACK): no tree is deeper. */
#define MAX_DEPTH 32
/* Free-list keys are txn ids (MDB_INTEGERKEY), the only persistent flag a
 * shoal file has in its free DB record. */
#define FREEDB_FLAGS 0x08

enum {
    TREE_FREE,
    TREE_MAIN,
    TREE_TABLE
};

static uint64_t
get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t
get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static unsigned
get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* "data.mdb is damaged: " then the problem. */
static int
damaged(char *msg, size_t len, const char *fmt, ...)
{
    if (msg && len) {
        int n = snprintf(msg, len, "data.mdb is damaged: ");
        if (n > 0 && (size_t)n < len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(msg + n, len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return SHOAL_ECORRUPT;
}

/* An I/O error reading the file.  Not inlined: at -O3 gcc mistakes the
 * size of msg at some call sites and warns (-Wformat-truncation). */
static __attribute__((noinline)) int
io_error(char *msg, size_t len, int e)
{
    if (msg && len)
        snprintf(msg, len, "reading data.mdb: %s", strerror(e));
    return SHOAL_ESTORE;
}

/* Read n bytes at off; SHOAL_ECORRUPT if the file ends first. */
static int
read_at(int fd, void *buf, size_t n, uint64_t off, char *msg, size_t len)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return io_error(msg, len, errno);
        if (r == 0)
            return damaged(msg, len, "the file ends at byte %llu, inside a page it needs",
                           (unsigned long long)(off + got));
        got += (size_t)r;
    }
    return SHOAL_OK;
}

/* One DB record of a meta page (or of a table) against the snapshot's last
 * page. */
static int
db_check(const uint8_t *db, uint64_t last, uint64_t psize, const char *what, char *msg, size_t len)
{
    uint64_t root = get64(db + DB_ROOT), depth = get16(db + DB_DEPTH);
    uint64_t br = get64(db + DB_BRANCH), lf = get64(db + DB_LEAF), ov = get64(db + DB_OVER);
    uint64_t ent = get64(db + DB_ENTRIES);
    if (root == NO_PAGE) {
        if (depth || br || lf || ov || ent)
            return damaged(msg, len, "%s: empty tree with depth %llu and %llu entries", what,
                           (unsigned long long)depth, (unsigned long long)ent);
        return SHOAL_OK;
    }
    if (root < 2 || root > last)
        return damaged(msg, len, "%s: root page %llu outside pages 2..%llu", what,
                       (unsigned long long)root, (unsigned long long)last);
    if (depth < 1 || depth > MAX_DEPTH)
        return damaged(msg, len, "%s: depth %llu", what, (unsigned long long)depth);
    if (lf < 1 || br < depth - 1 || br > last || lf > last || ov > last ||
        br + lf + ov > last - 1 || ent < lf || ent > lf * ((psize - PG_HDR) / MIN_NODE))
        return damaged(msg, len,
                       "%s: page counts %llu branch, %llu leaf, %llu overflow, "
                       "%llu entries do not fit %llu pages",
                       what, (unsigned long long)br, (unsigned long long)lf, (unsigned long long)ov,
                       (unsigned long long)ent, (unsigned long long)(last + 1));
    return SHOAL_OK;
}

/* Meta page slot (0 or 1), its first PG_HDR + META_BYTES bytes in p. */
static int
meta_check(const uint8_t *p, unsigned slot, uint64_t psize, uint64_t file_bytes, char *msg,
           size_t len)
{
    const uint8_t *m = p + PG_HDR;
    if (get64(p) != slot || get16(p + PG_FLAGS) != PF_META)
        return damaged(msg, len, "meta page %u: not a meta page header", slot);
    if (get32(m + M_MAGIC) != LMDB_MAGIC)
        return damaged(msg, len, "meta page %u: not an LMDB file (magic 0x%08x)", slot,
                       (unsigned)get32(m + M_MAGIC));
    if (get32(m + M_VERSION) != LMDB_DATA_VERSION)
        return damaged(msg, len, "meta page %u: LMDB data version %u, not %u", slot,
                       (unsigned)get32(m + M_VERSION), LMDB_DATA_VERSION);
    uint64_t ps = get32(m + M_FREEDB); /* the free DB's pad is the page size */
    if (ps != psize)
        return damaged(msg, len, "meta page %u: page size %llu, not %llu as in meta page 0", slot,
                       (unsigned long long)ps, (unsigned long long)psize);
    if (get64(m + M_ADDRESS) != 0)
        return damaged(msg, len, "meta page %u: a fixed map address", slot);
    uint64_t map = get64(m + M_MAPSIZE);
    if (map > MAX_MAP_SIZE)
        return damaged(msg, len, "meta page %u: map size %llu over the limit %llu", slot,
                       (unsigned long long)map, (unsigned long long)MAX_MAP_SIZE);
    uint64_t last = get64(m + M_LASTPG), pages = file_bytes / psize;
    if (last < 1 || last >= pages)
        return damaged(msg, len, "meta page %u: last page %llu, but the file holds %llu pages",
                       slot, (unsigned long long)last, (unsigned long long)pages);
    uint64_t txnid = get64(m + M_TXNID);
    if (txnid != 0 && (txnid & 1) != slot)
        return damaged(msg, len, "meta page %u: txn id %llu belongs in meta page %u", slot,
                       (unsigned long long)txnid, (unsigned)(txnid & 1));
    if (get16(m + M_FREEDB + DB_FLAGS) != FREEDB_FLAGS || get16(m + M_MAINDB + DB_FLAGS) != 0 ||
        get32(m + M_MAINDB) != 0)
        return damaged(msg, len, "meta page %u: DB flags 0x%x and 0x%x", slot,
                       get16(m + M_FREEDB + DB_FLAGS), get16(m + M_MAINDB + DB_FLAGS));
    char what[32];
    snprintf(what, sizeof what, "meta page %u free DB", slot);
    int rc = db_check(m + M_FREEDB, last, psize, what, msg, len);
    if (rc)
        return rc;
    snprintf(what, sizeof what, "meta page %u main DB", slot);
    return db_check(m + M_MAINDB, last, psize, what, msg, len);
}

/* Both meta pages as read from fd: the page size from page 0, then each
 * page checked.  metas receives their first bytes. */
static int
metas_read(int fd, uint64_t file_bytes, uint8_t metas[2][PG_HDR + META_BYTES], uint64_t *psize,
           char *msg, size_t len)
{
    if (file_bytes < PG_HDR + META_BYTES)
        return damaged(msg, len, "%llu bytes, too short for its meta pages",
                       (unsigned long long)file_bytes);
    int rc = read_at(fd, metas[0], PG_HDR + META_BYTES, 0, msg, len);
    if (rc)
        return rc;
    uint64_t ps = get32(metas[0] + PG_HDR + M_FREEDB);
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)
        return damaged(msg, len, "meta page 0: page size %llu", (unsigned long long)ps);
    if (file_bytes < 2 * ps)
        return damaged(msg, len, "%llu bytes, too short for two pages of %llu",
                       (unsigned long long)file_bytes, (unsigned long long)ps);
    rc = read_at(fd, metas[1], PG_HDR + META_BYTES, ps, msg, len);
    if (rc)
        return rc;
    *psize = ps;
    return SHOAL_OK;
}

/* Check both meta pages; a writer of another process may be rewriting one
 * (a torn read), so a problem counts once the same bytes read twice.
 * While they keep changing, writers are busy, not the file damaged: keep
 * trying (1 ms apart, for up to about 2 s: eight processes opening a new
 * directory at once on a loaded machine wrote meta pages for longer than
 * the 8 ms this allowed before, and one open failed). */
static int
metas_check(int fd, uint64_t file_bytes, uint8_t metas[2][PG_HDR + META_BYTES], uint64_t *psize,
            char *msg, size_t len)
{
    for (int tries = 0;; tries++) {
        int rc = metas_read(fd, file_bytes, metas, psize, msg, len);
        for (unsigned i = 0; i < 2 && rc == SHOAL_OK; i++)
            rc = meta_check(metas[i], i, *psize, file_bytes, msg, len);
        if (rc != SHOAL_ECORRUPT || tries >= 2000)
            return rc;
        uint8_t again[2][PG_HDR + META_BYTES];
        uint64_t ps2;
        char m2[8];
        if (metas_read(fd, file_bytes, again, &ps2, m2, sizeof m2) != SHOAL_OK ||
            memcmp(again, metas, sizeof again) == 0)
            return rc;
        usleep(1000);
    }
}

static int
file_size(int fd, uint64_t *out, char *msg, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        if (msg && len)
            snprintf(msg, len, "fstat data.mdb: %s", strerror(errno));
        return SHOAL_ESTORE;
    }
    *out = (uint64_t)st.st_size;
    return SHOAL_OK;
}

int
shoal__st_precheck(const char *path, char *msg, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (msg && len)
            snprintf(msg, len, "cannot open %s: %s", path, strerror(e));
        return e == EACCES || e == EPERM ? SHOAL_EREADONLY : SHOAL_ESTORE;
    }
    uint64_t bytes, psize;
    uint8_t metas[2][PG_HDR + META_BYTES];
    int rc = file_size(fd, &bytes, msg, len);
    if (!rc)
        rc = metas_check(fd, bytes, metas, &psize, msg, len);
    close(fd);
    return rc;
}

/* --------------------------------------------------------------- walk */

typedef struct table_rec {
    uint8_t db[DB_BYTES];
    char name[24]; /* for messages; truncated */
} table_rec;

typedef struct walker {
    int fd;
    uint64_t psize, last, txnid, maxkey;
    uint8_t *live;  /* owned: bitmap of pages in use by a tree (0, 1: metas) */
    uint8_t *freed; /* owned: bitmap of pages on the free list */
    uint8_t *bufs;  /* owned: one page per tree level */
    uint8_t *idl;   /* owned: a free-list record read from an overflow run */
    size_t idlcap;
    table_rec *tables; /* owned: the tables found in the main DB */
    size_t ntables, captables;
    int tree;      /* TREE_* of the tree being walked */
    uint64_t n[4]; /* its branch, leaf, overflow pages and entries */
    shoal__store_check *st;
    char *msg;
    size_t len;
} walker;

static bool
bit_get(const uint8_t *map, uint64_t i)
{
    return (map[i >> 3] >> (i & 7)) & 1;
}

static void
bit_set(uint8_t *map, uint64_t i)
{
    map[i >> 3] = (uint8_t)(map[i >> 3] | (1u << (i & 7)));
}

/* Keys compare as LMDB's default for our tables (bytewise, a prefix
 * first) or, in the free DB, as native u64 txn ids. */
static int
key_cmp(const walker *w, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (w->tree == TREE_FREE) {
        uint64_t x = get64(a), y = get64(b);
        return x < y ? -1 : x > y;
    }
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* A free-list record: key txn id, value a count then that many page
 * numbers, strictly descending (LMDB's MDB_IDL).  A reserved record may be
 * longer than its count needs (mdb_freelist_save). */
static int
idl_check(walker *w, uint64_t pgno, uint64_t key, const uint8_t *v, uint64_t n)
{
    if (n < 8 || n % 8)
        return damaged(w->msg, w->len, "page %llu: free-list record of %llu bytes",
                       (unsigned long long)pgno, (unsigned long long)n);
    if (key < 1 || key > w->txnid)
        return damaged(w->msg, w->len,
                       "page %llu: free-list record of txn %llu, newer than "
                       "the snapshot's %llu",
                       (unsigned long long)pgno, (unsigned long long)key,
                       (unsigned long long)w->txnid);
    uint64_t count = get64(v);
    if (count > n / 8 - 1)
        return damaged(w->msg, w->len,
                       "page %llu: free-list record of %llu pages in %llu "
                       "bytes",
                       (unsigned long long)pgno, (unsigned long long)count, (unsigned long long)n);
    uint64_t prev = UINT64_MAX;
    for (uint64_t i = 1; i <= count; i++) {
        uint64_t p = get64(v + 8 * i);
        if (p < 2 || p > w->last)
            return damaged(w->msg, w->len, "page %llu: free page %llu outside pages 2..%llu",
                           (unsigned long long)pgno, (unsigned long long)p,
                           (unsigned long long)w->last);
        if (p >= prev)
            return damaged(w->msg, w->len, "page %llu: free list not in descending order",
                           (unsigned long long)pgno);
        if (bit_get(w->freed, p))
            return damaged(w->msg, w->len, "page %llu: page %llu listed free twice",
                           (unsigned long long)pgno, (unsigned long long)p);
        bit_set(w->freed, p);
        prev = p;
    }
    w->st->free_pages += count;
    return SHOAL_OK;
}

/* The overflow run at ov holding a value of n bytes (a node of page
 * pgno).  A free-list record in it is read and checked. */
static int
over_check(walker *w, uint64_t pgno, uint64_t ov, uint64_t n, uint64_t key)
{
    if (ov < 2 || ov > w->last)
        return damaged(w->msg, w->len, "page %llu: overflow page %llu outside pages 2..%llu",
                       (unsigned long long)pgno, (unsigned long long)ov,
                       (unsigned long long)w->last);
    uint8_t h[PG_HDR];
    int rc = read_at(w->fd, h, PG_HDR, ov * w->psize, w->msg, w->len);
    if (rc)
        return rc;
    uint64_t np = get32(h + PG_NPAGES), need = (PG_HDR - 1 + n) / w->psize + 1;
    if (get64(h) != ov || get16(h + PG_FLAGS) != PF_OVER)
        return damaged(w->msg, w->len, "page %llu: overflow page %llu has a wrong header",
                       (unsigned long long)pgno, (unsigned long long)ov);
    if (np < need || np - 1 > w->last - ov)
        return damaged(w->msg, w->len,
                       "page %llu: overflow run %llu of %llu pages (the value "
                       "needs %llu, the file ends at page %llu)",
                       (unsigned long long)pgno, (unsigned long long)ov, (unsigned long long)np,
                       (unsigned long long)need, (unsigned long long)w->last);
    for (uint64_t i = ov; i < ov + np; i++) {
        if (bit_get(w->live, i))
            return damaged(w->msg, w->len,
                           "page %llu: overflow run %llu reaches page %llu, "
                           "already in use",
                           (unsigned long long)pgno, (unsigned long long)ov, (unsigned long long)i);
        bit_set(w->live, i);
    }
    w->n[2] += np;
    if (w->tree != TREE_FREE)
        return SHOAL_OK;
    if (n > w->idlcap) {
        uint8_t *b = shoal__realloc(w->idl, (size_t)n);
        if (!b)
            return SHOAL_ENOMEM;
        w->idl = b;
        w->idlcap = (size_t)n;
    }
    rc = read_at(w->fd, w->idl, (size_t)n, ov * w->psize + PG_HDR, w->msg, w->len);
    if (rc)
        return rc;
    return idl_check(w, pgno, key, w->idl, n);
}

/* One leaf node (its header at node, inside page p of number pgno). */
static int
leaf_node(walker *w, uint64_t pgno, const uint8_t *p, size_t off)
{
    const uint8_t *node = p + off;
    unsigned flags = get16(node + 4);
    size_t ks = get16(node + 6);
    uint64_t dsize = get16(node) | (uint64_t)get16(node + 2) << 16;
    const uint8_t *key = node + NODE_HDR, *data = key + ks;
    size_t room = w->psize - off - NODE_HDR - ks;
    if (flags & ~(unsigned)(NF_BIGDATA | NF_SUBDATA | NF_DUPDATA))
        return damaged(w->msg, w->len, "page %llu: node flags 0x%x", (unsigned long long)pgno,
                       flags);
    if (flags & NF_DUPDATA)
        return damaged(w->msg, w->len,
                       "page %llu: sorted duplicates, which shoal never "
                       "writes",
                       (unsigned long long)pgno);
    if (ks == 0)
        return damaged(w->msg, w->len, "page %llu: empty key", (unsigned long long)pgno);
    if (flags & NF_BIGDATA) {
        if (room < 8 || (flags & NF_SUBDATA))
            return damaged(w->msg, w->len, "page %llu: overflow node runs past the page",
                           (unsigned long long)pgno);
    } else if (dsize > room) {
        return damaged(w->msg, w->len, "page %llu: value of %llu bytes runs past the page",
                       (unsigned long long)pgno, (unsigned long long)dsize);
    }
    w->n[3]++;
    if (w->tree == TREE_FREE && ks != 8)
        return damaged(w->msg, w->len, "page %llu: free-list key of %zu bytes",
                       (unsigned long long)pgno, ks);
    if (w->tree == TREE_MAIN) {
        /* shoal keeps nothing but tables (named DBs) in the main DB. */
        if (flags != NF_SUBDATA || dsize != DB_BYTES)
            return damaged(w->msg, w->len, "page %llu: a main DB entry that is not a table",
                           (unsigned long long)pgno);
        if (w->ntables == w->captables) {
            size_t cap = w->captables ? 2 * w->captables : 16;
            table_rec *t = shoal__realloc(w->tables, cap * sizeof *t);
            if (!t)
                return SHOAL_ENOMEM;
            w->tables = t;
            w->captables = cap;
        }
        table_rec *t = &w->tables[w->ntables++];
        memcpy(t->db, data, DB_BYTES);
        size_t nl = ks < sizeof t->name - 1 ? ks : sizeof t->name - 1;
        for (size_t i = 0; i < nl; i++)
            t->name[i] = key[i] >= 0x20 && key[i] < 0x7f ? (char)key[i] : '?';
        t->name[nl] = '\0';
        return SHOAL_OK;
    }
    if (flags & NF_SUBDATA)
        return damaged(w->msg, w->len, "page %llu: a table inside a table",
                       (unsigned long long)pgno);
    uint64_t key64 = w->tree == TREE_FREE ? get64(key) : 0;
    if (flags & NF_BIGDATA)
        return over_check(w, pgno, get64(data), dsize, key64);
    if (w->tree == TREE_FREE)
        return idl_check(w, pgno, key64, data, dsize);
    return SHOAL_OK;
}

static int
page_walk(walker *w, uint64_t pgno, unsigned level, unsigned depth)
{
    uint8_t *p = w->bufs + (size_t)(level - 1) * w->psize;
    int rc = read_at(w->fd, p, (size_t)w->psize, pgno * w->psize, w->msg, w->len);
    if (rc)
        return rc;
    bool leaf = level == depth;
    unsigned flags = get16(p + PG_FLAGS);
    if (get64(p) != pgno)
        return damaged(w->msg, w->len, "page %llu: its header says page %llu",
                       (unsigned long long)pgno, (unsigned long long)get64(p));
    if (flags != (leaf ? PF_LEAF : PF_BRANCH))
        return damaged(w->msg, w->len,
                       "page %llu: flags 0x%x where a %s page belongs "
                       "(level %u of %u)",
                       (unsigned long long)pgno, flags, leaf ? "leaf" : "branch", level, depth);
    size_t lower = get16(p + PG_LOWER), upper = get16(p + PG_UPPER);
    if (lower < PG_HDR || (lower - PG_HDR) % 2 || lower > upper || upper > w->psize)
        return damaged(w->msg, w->len, "page %llu: free space bounds %zu..%zu",
                       (unsigned long long)pgno, lower, upper);
    size_t nkeys = (lower - PG_HDR) / 2;
    size_t minkeys = leaf || w->tree == TREE_FREE ? 1 : 2;
    if (nkeys < minkeys)
        return damaged(w->msg, w->len, "page %llu: %zu keys on a %s page", (unsigned long long)pgno,
                       nkeys, leaf ? "leaf" : "branch");
    w->n[leaf ? 1 : 0]++;
    const uint8_t *pkey = NULL;
    size_t pks = 0;
    for (size_t i = 0; i < nkeys; i++) {
        size_t off = get16(p + PG_HDR + 2 * i);
        if (off < upper || off % 2 || off > w->psize - NODE_HDR)
            return damaged(w->msg, w->len, "page %llu: node %zu at offset %zu outside %zu..%llu",
                           (unsigned long long)pgno, i, off, upper,
                           (unsigned long long)(w->psize - NODE_HDR));
        const uint8_t *node = p + off;
        size_t ks = get16(node + 6);
        if (ks > w->maxkey || ks > w->psize - off - NODE_HDR)
            return damaged(w->msg, w->len, "page %llu: node %zu: key of %zu bytes",
                           (unsigned long long)pgno, i, ks);
        const uint8_t *key = node + NODE_HDR;
        /* A branch page's first key is not used (LMDB leaves it empty). */
        if (leaf || i > 0) {
            if (w->tree == TREE_FREE && ks != 8)
                return damaged(w->msg, w->len, "page %llu: free-list key of %zu bytes",
                               (unsigned long long)pgno, ks);
            if (pkey && key_cmp(w, pkey, pks, key, ks) >= 0)
                return damaged(w->msg, w->len, "page %llu: keys out of order at node %zu",
                               (unsigned long long)pgno, i);
            pkey = key;
            pks = ks;
        }
        if (leaf) {
            rc = leaf_node(w, pgno, p, off);
            if (rc)
                return rc;
            continue;
        }
        uint64_t child =
            get16(node) | (uint64_t)get16(node + 2) << 16 | (uint64_t)get16(node + 4) << 32;
        if (child < 2 || child > w->last)
            return damaged(w->msg, w->len, "page %llu: child page %llu past the last page %llu",
                           (unsigned long long)pgno, (unsigned long long)child,
                           (unsigned long long)w->last);
        if (bit_get(w->live, child))
            return damaged(w->msg, w->len, "page %llu: child page %llu reached twice",
                           (unsigned long long)pgno, (unsigned long long)child);
        bit_set(w->live, child);
        rc = page_walk(w, child, level + 1, depth);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

static int
tree_walk(walker *w, const uint8_t *db, int tree, const char *what)
{
    int rc = db_check(db, w->last, w->psize, what, w->msg, w->len);
    if (rc)
        return rc;
    uint64_t root = get64(db + DB_ROOT);
    if (root == NO_PAGE)
        return SHOAL_OK;
    if (bit_get(w->live, root))
        return damaged(w->msg, w->len, "%s: root page %llu already in use", what,
                       (unsigned long long)root);
    bit_set(w->live, root);
    w->tree = tree;
    memset(w->n, 0, sizeof w->n);
    rc = page_walk(w, root, 1, get16(db + DB_DEPTH));
    if (rc)
        return rc;
    if (w->n[0] != get64(db + DB_BRANCH) || w->n[1] != get64(db + DB_LEAF) ||
        w->n[2] != get64(db + DB_OVER) || w->n[3] != get64(db + DB_ENTRIES))
        return damaged(
            w->msg, w->len,
            "%s: %llu branch, %llu leaf, %llu overflow pages and "
            "%llu entries, its record says %llu, %llu, %llu and %llu",
            what, (unsigned long long)w->n[0], (unsigned long long)w->n[1],
            (unsigned long long)w->n[2], (unsigned long long)w->n[3],
            (unsigned long long)get64(db + DB_BRANCH), (unsigned long long)get64(db + DB_LEAF),
            (unsigned long long)get64(db + DB_OVER), (unsigned long long)get64(db + DB_ENTRIES));
    w->st->branch_pages += w->n[0];
    w->st->leaf_pages += w->n[1];
    w->st->overflow_pages += w->n[2];
    if (tree == TREE_TABLE)
        w->st->entries += w->n[3];
    return SHOAL_OK;
}

static int
walk_all(walker *w, const uint8_t *meta)
{
    int rc = tree_walk(w, meta + M_FREEDB, TREE_FREE, "free DB");
    if (!rc)
        rc = tree_walk(w, meta + M_MAINDB, TREE_MAIN, "main DB");
    for (size_t i = 0; i < w->ntables && !rc; i++) {
        table_rec *t = &w->tables[i];
        char what[40];
        snprintf(what, sizeof what, "table %s", t->name);
        if (get16(t->db + DB_FLAGS) != 0 || get32(t->db) != 0)
            return damaged(w->msg, w->len, "%s: flags 0x%x", what, get16(t->db + DB_FLAGS));
        rc = tree_walk(w, t->db, TREE_TABLE, what);
    }
    if (rc)
        return rc;
    size_t nb = (size_t)(w->last / 8 + 1);
    for (size_t i = 0; i < nb; i++) {
        uint8_t both = w->live[i] & w->freed[i];
        if (both) {
            unsigned b = 0;
            while (!((both >> b) & 1))
                b++;
            return damaged(w->msg, w->len, "page %llu is both free and in use",
                           (unsigned long long)(i * 8 + b));
        }
    }
    return SHOAL_OK;
}

int
shoal__st_walk(MDB_env *env, MDB_txn *txn, shoal__store_check *st, char *msg, size_t len)
{
    shoal__store_check local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    walker w = { .st = st, .msg = msg, .len = len };
    if (mdb_env_get_fd(env, &w.fd) != 0) {
        if (msg && len)
            snprintf(msg, len, "data.mdb: no file descriptor");
        return SHOAL_ESTORE;
    }
    int mk = mdb_env_get_maxkeysize(env);
    w.maxkey = mk > 0 ? (uint64_t)mk : 511;
    uint64_t bytes;
    uint8_t metas[2][PG_HDR + META_BYTES];
    int rc = file_size(w.fd, &bytes, msg, len);
    if (!rc)
        rc = metas_check(w.fd, bytes, metas, &w.psize, msg, len);
    if (rc)
        return rc;
    /* The snapshot of txn is that of meta page txnid % 2 (mdb_txn_renew0);
     * when it holds another id now, a writer has rewritten it since (two
     * commits after ours began).  A read torn by a writer rewriting it
     * differs from a second read (the txn id is its last field), so the
     * walk trusts a meta read twice alike. */
    w.txnid = (uint64_t)mdb_txn_id(txn);
    unsigned slot = (unsigned)(w.txnid & 1);
    const uint8_t *meta = metas[slot] + PG_HDR;
    uint8_t again[PG_HDR + META_BYTES];
    rc = read_at(w.fd, again, sizeof again, slot * w.psize, msg, len);
    if (rc)
        return rc;
    if (memcmp(again, metas[slot], sizeof again) != 0)
        return SHOAL__ST_RETRY;
    if (get64(meta + M_TXNID) != w.txnid) {
        damaged(msg, len, "meta page %u holds txn %llu, not the snapshot's txn %llu", slot,
                (unsigned long long)get64(meta + M_TXNID), (unsigned long long)w.txnid);
        return SHOAL__ST_RETRY;
    }
    w.last = get64(meta + M_LASTPG);
    st->file_bytes = bytes;
    st->page_size = w.psize;
    st->txnid = w.txnid;
    st->last_page = w.last;
    size_t nb = (size_t)(w.last / 8 + 1);
    w.live = shoal__calloc(1, nb);
    w.freed = shoal__calloc(1, nb);
    w.bufs = shoal__malloc((size_t)(MAX_DEPTH * w.psize));
    if (!w.live || !w.freed || !w.bufs) {
        rc = SHOAL_ENOMEM;
        goto out;
    }
    bit_set(w.live, 0);
    bit_set(w.live, 1);
    rc = walk_all(&w, meta);
out:
    shoal__free(w.live);
    shoal__free(w.freed);
    shoal__free(w.bufs);
    shoal__free(w.idl);
    shoal__free(w.tables);
    return rc;
}
