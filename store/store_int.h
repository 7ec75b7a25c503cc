/*
 * store/store_int.h - private header of the store module: what the files
 * of store/ share (the table ids, the handle and transaction structs, the
 * log tail, and the helpers each file exports to the others).  Only
 * the store/ files include it; everything else uses store.h.
 *
 * Files, one concern each:
 *   env.c       the environment: open, close, tables, map growth, flush
 *   txn.c       write and read transactions, generic table access, meta
 *   tail.c      the unindexed log tail, its lookup maps and its cache
 *   log.c       the log and its two indexes (changes, authseq)
 *   vv.c        the version vector (derived from authseq and the tail)
 *   pending.c   the pending set
 *   evidence.c  equivocation evidence
 *   docs.c      document metas and snapshots
 *   evict.c     dropping log entries (local eviction) and meta "lognext"
 *   peers.c     per-peer link state
 *   batch.c     group commit: the fast mode's batches and their flusher
 *   walk.c      validation of data.mdb (meta pages, every page of a snapshot)
 * The replica's identity file is not the store's: core/identity.c.
 */
#ifndef SHOAL_STORE_STORE_INT_H
#define SHOAL_STORE_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store.h"

enum {
    T_META,
    T_CHANGES,
    T_AUTHSEQ,
    T_LOG,
    T_PENDING,
    T_EVIDENCE,
    T_DOCS,
    T_DOCSNAP,
    T_PEERS,
    T_EVCID,
    T_QVIEW,
    T_QIXREG,
    T_QINDEX,
    T_EVICTED,
    T_REJECTED,
    T_SEALS,
    T_UNSEALED,
    T_COUNT
};

/* Disk format: the table names are part of the on-disk layout (store.h,
 * docs/storage.md); renaming one is a format change. */
extern const char *const shoal__st_table_names[T_COUNT];

/* The table of the first layout (format 1), which kept the version vector
 * and the envelopes elsewhere; a directory holding it is refused. */
#define FORMAT1_TABLE "vv"

#define DEFAULT_MAP_SIZE ((uint64_t)64 << 20)
/* The map never grows past this (virtual address space, not disk). */
#define MAX_MAP_SIZE ((uint64_t)1 << 42)
/* Bound on MDB_MAP_RESIZED retries in a row (another process keeps growing). */
#define MAX_RESIZED_RETRIES 64
/* Free space below which an EIO from a commit counts as a full disk (or
 * 1/64 of the file system when that is smaller). */
#define DISK_FULL_SLACK ((uint64_t)1 << 20)
/* The changes and authseq indexes take the log tail in batches: a commit
 * that brings the tail to this many entries indexes all of them. */
#define TAIL_MAX 256
/* Bytes before the envelope in a log value: cid | author | seq (u64 BE) |
 * link (u64 BE). */
#define LOG_HDR 80
/* Offsets in that header (the change id is at 0). */
#define LOG_AUTHOR SHOAL__ID_BYTES
#define LOG_SEQ    (LOG_AUTHOR + SHOAL_KEY_BYTES)
#define LOG_LINK   (LOG_SEQ + 8)
/* An evidence key: author | seq (u64 BE) | change id. */
#define EVKEY_BYTES (SHOAL__SEQKEY_BYTES + SHOAL__ID_BYTES)
_Static_assert(LOG_HDR == LOG_LINK + 8, "log header: cid | author | seq | link");
/* Set in a log entry's link when a document meta follows the header:
 * key length (u16 BE) | coll NUL id | meta length (u32 BE) | meta, then the
 * envelope.  Positions stay far below 2^63, so old entries never have it. */
#define LINK_META ((uint64_t)1 << 63)
/* Set in a log entry's link when the change was superseded (an
 * equivocation resolved against it, change_supersede): the entry stays (its
 * link keeps the document chain whole) but names no applied change: no
 * index, tail lookup, version vector or log scan counts it. */
#define LINK_DEAD ((uint64_t)1 << 62)
/* Group commit (batch.c).  A batch stays open at most BATCH_MS after its
 * first commit; it is committed sooner once it holds BATCH_MAX_BYTES of
 * puts (or a quarter of the map that was unused when it began) or
 * BATCH_MAX_GEN commits.  Before a batch begins, the map grows while less
 * than BATCH_HEADROOM (or half of it) is unused. */
#define BATCH_MS        10
#define BATCH_MAX_BYTES ((uint64_t)8 << 20)
#define BATCH_GEN_BITS  20
#define BATCH_MAX_GEN   (((uint64_t)1 << BATCH_GEN_BITS) - 2)
#define BATCH_HEADROOM  (4 * BATCH_MAX_BYTES)

struct shoal__store {
    MDB_env *env; /* owned */
    MDB_dbi dbi[T_COUNT];
    bool durable;
    bool relaxed;                 /* shoal__store_relax; under the replica lock */
    _Atomic bool fit_due;         /* log entries were dropped: the next commit fits the file */
    pthread_mutex_t flags_mu;     /* LMDB's env flags: a relaxed commit vs flush */
    pthread_rwlock_t resize_lock; /* shared by every txn, exclusive to resize */
    char errmsg[256];
    /* Group commit, the fast mode (batch.c): commits go into child txns
     * of one open LMDB write txn, `batch`, which the flusher thread begins
     * and commits (durably) every BATCH_MS; reads of this process go
     * through it too, so they see every commit that returned.  All of it
     * under bmu; a child txn is only ever active with bmu held, so the
     * flusher never touches the batch while a child uses it. */
    bool batched;
    pthread_mutex_t bmu;
    pthread_cond_t bwake; /* to the flusher: bwant, bflush or bstop set */
    pthread_cond_t bdone; /* from the flusher: a batch began or ended */
    pthread_t flusher;
    MDB_txn *batch;            /* the open batch, or NULL */
    uint64_t bgen;             /* commits that wrote, in the open batch */
    uint64_t bbytes;           /* bytes put in the open batch */
    uint64_t bcap;             /* end the open batch once bbytes passes this */
    struct timespec bdeadline; /* when the open batch ends (CLOCK_MONOTONIC) */
    uint64_t bcommits;         /* batches ended so far */
    bool bwant;                /* a writer waits for a batch */
    bool bflush;               /* end the open batch now */
    bool bstop;                /* close: end the open batch and exit */
    int berr;                  /* an error of the flusher nobody has been told yet */
    char berrmsg[256];
    /* The log tail of the newest snapshot a txn of this handle saw, kept
     * between txns (tail_cache_take/tail_cache_put): a txn whose snapshot
     * is tc_txnid takes it instead of reading and parsing the tail from the
     * map.  Any commit (by any process or handle) makes a newer snapshot,
     * so a stale cache is never taken.  It owns all its memory (no pointer
     * into the map: pages are reused and the map moves when it grows).  At
     * most one txn holds it at a time; others read the map as before. */
    pthread_mutex_t tc_mu;
    bool tc_ok;
    uint64_t tc_txnid;   /* the snapshot key (shoal__st_snap_id) it describes */
    struct tail_set *tc; /* owned when tc_ok */
};

/* A log entry not yet in the changes and authseq indexes. */
typedef struct tail_ent {
    uint64_t pos;
    uint64_t seq;
    uint8_t cid[SHOAL__ID_BYTES];
    uint8_t author[SHOAL_KEY_BYTES];
    /* The document key and meta the entry carries (dk NULL: none).  They
     * point into own (entries this txn wrote) or into the map: a page read
     * from the map is never changed in place (no MDB_WRITEMAP; a write txn
     * copies it first and frees it to later txns only), so they stay valid
     * for the whole transaction. */
    const uint8_t *dk, *dmeta;
    size_t klen, mlen;
    uint8_t *own; /* owned or NULL */
    bool dead;    /* superseded (LINK_DEAD): kept for positions only */
} tail_ent;

/* A log value taken apart. */
typedef struct log_ent {
    uint64_t link;
    bool dead;                       /* LINK_DEAD */
    const uint8_t *key, *meta, *env; /* key, meta NULL without a meta */
    size_t klen, mlen, elen;
} log_ent;

/* The unindexed log tail of one snapshot, as held by a txn or the
 * store's cache. */
typedef struct tail_set {
    uint64_t ixnext;  /* first log position not in the indexes */
    uint64_t lognext; /* next log position to hand out (never a reused one) */
    tail_ent *tail;   /* owned; positions ixnext .. lognext - 1 */
    size_t ntail;
    size_t captail;
    /* Maps over the live (not dead) entries, keys Borrowed from the
     * entries, room for captail entries: bycid by change id, byauthor by
     * author (the entry with the author's greatest seq). */
    shoal__map bycid, byauthor;
} tail_set;

struct shoal__stxn {
    shoal__store *s;
    MDB_txn *txn;
    bool write;
    int err;       /* first LMDB error that poisoned the txn, else 0 */
    bool map_full; /* a put (or cursor op) hit MDB_MAP_FULL */
    bool wrote;    /* a put or delete succeeded (LMDB will commit a new txn id) */
    /* The unindexed log tail, loaded on first use (tail_load). */
    bool tail_ok;
    uint64_t ixnext; /* see tail_set */
    uint64_t lognext;
    tail_ent *tail;
    size_t ntail;
    size_t captail;
    shoal__map bycid, byauthor;
    /* The last change id change_pos found nowhere (miss_ok): an import
     * asks change_has and then change_put for the same new id.  Only
     * change_put adds an id, and it clears this. */
    bool miss_ok;
    uint8_t miss[SHOAL__ID_BYTES];
    bool borrows; /* some entry's meta may point into the map (tail_own) */
    /* A child of the open batch: its snapshot key (shoal__st_snap_id),
     * else 0. */
    uint64_t key;
};

/* ------------------------------------------------------------- bytes */

static inline MDB_val
mval(const void *p, size_t n)
{
    MDB_val v;
    v.mv_data = (void *)(uintptr_t)p;
    v.mv_size = n;
    return v;
}

static inline shoal__sval
sval(const MDB_val *v)
{
    shoal__sval o;
    o.p = v->mv_data;
    o.len = v->mv_size;
    return o;
}

static inline bool
has_prefix(const MDB_val *k, const uint8_t *p, size_t n)
{
    return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

/* ---------------------------------------------------- shared helpers */

/* env.c: record rc (an LMDB or errno value) on s, return its shoal_err;
 * double the map; begin a txn holding resize_lock shared (handles
 * MDB_MAP_RESIZED), and drop that lock after the txn ended. */
int shoal__st_fail(shoal__store *s, const char *what, int rc);
int shoal__st_grow(shoal__store *s);
int shoal__st_txn_begin(shoal__store *s, bool write, MDB_txn **out);
void shoal__st_txn_end_lock(shoal__store *s);

/* txn.c: an LMDB call inside a txn failed (remembers whether it
 * poisoned the txn); one table's get/put/del/count; a cursor walk
 * (cur_first at the first key >= start, or the first key when start is
 * NULL; SHOAL_ENOTFOUND at the end); a damaged file. */
int shoal__st_tfail(shoal__stxn *t, const char *what, int rc);
int shoal__st_get(shoal__stxn *t, int tab, const void *k, size_t klen, shoal__sval *out);
int shoal__st_put(shoal__stxn *t, int tab, const void *k, size_t klen, const void *v, size_t vlen,
                  unsigned flags);
int shoal__st_del(shoal__stxn *t, int tab, const void *k, size_t klen);
uint64_t shoal__st_count(shoal__stxn *t, int tab);
int shoal__st_cur_open(shoal__stxn *t, int tab, MDB_cursor **c);
int shoal__st_cur_get(shoal__stxn *t, MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op);
int shoal__st_cur_first(shoal__stxn *t, MDB_cursor *c, const void *start, size_t slen, MDB_val *k,
                        MDB_val *v);
int shoal__st_corrupt(shoal__stxn *t, const char *what);
/* txn.c: the file system holding data.mdb is (almost) full. */
bool shoal__st_disk_full(shoal__store *s);
/* txn.c: the end of a write txn whose function returned rc (a top-level
 * txn or a child of the open batch): abort it on any error (rc, a txn LMDB
 * poisoned, a full map), else commit it with commit() (LMDB's code back;
 * what names it in errors).  A txn that committed hands its tail to the
 * cache as snapshot key_wrote if it wrote, else key_kept.  Returns the
 * error; *full when the map filled (grow, run fn again), *done when the
 * txn committed.  The txn's tail is freed either way. */
int shoal__st_write_end(shoal__stxn *t, int rc, int (*commit)(shoal__stxn *t), const char *what,
                        uint64_t key_kept, uint64_t key_wrote, bool *full, bool *done);

/* tail.c: parse a log value; drop, own, cache, load, push to and flush
 * (into the indexes) the tail; find its entries by document key, change
 * id and author. */
bool shoal__st_ent_parse(const uint8_t *p, size_t n, log_ent *e);
void shoal__st_tail_free(shoal__stxn *t);
uint64_t shoal__st_snap_id(const shoal__stxn *t);
void shoal__st_set_free(tail_set *c);
bool shoal__st_tail_own(shoal__stxn *t);
void shoal__st_tail_cache_put(shoal__stxn *t, uint64_t id);
int shoal__st_tail_set_meta(tail_ent *e, const uint8_t *key, size_t klen, const uint8_t *meta,
                            size_t mlen);
const tail_ent *shoal__st_tail_find_doc(const shoal__stxn *t, const uint8_t *k, size_t klen);
int shoal__st_tail_push(shoal__stxn *t, uint64_t pos, const uint8_t *hdr, const log_ent *le);
int shoal__st_tail_load(shoal__stxn *t);
const tail_ent *shoal__st_tail_find_cid(const shoal__stxn *t, const uint8_t cid[SHOAL__ID_BYTES]);
const tail_ent *shoal__st_tail_find_author(const shoal__stxn *t,
                                           const uint8_t author[SHOAL_KEY_BYTES]);
int shoal__st_tail_flush(shoal__stxn *t);

/* evict.c: the floor of the next log position that drops recorded (meta
 * "lognext"; 0 when nothing was ever dropped). */
int shoal__st_lognext_get(shoal__stxn *t, uint64_t *floor);

/* batch.c: start the flusher (a fast-mode store, at open), end the open
 * batch and stop it (close); run fn in a child of the open batch, as a
 * write (map-full retry) or a read; end the open batch now (flush); hold
 * bmu with no batch open (fn runs with LMDB's writer lock free for this
 * thread to take). */
int shoal__st_batch_start(shoal__store *s);
void shoal__st_batch_stop(shoal__store *s);
int shoal__st_batch_write(shoal__store *s, shoal__txn_fn fn, void *arg);
int shoal__st_batch_read(shoal__store *s, shoal__txn_fn fn, void *arg, bool *done);
int shoal__st_batch_flush(shoal__store *s);
int shoal__st_batch_quiet(shoal__store *s, int (*fn)(void *arg), void *arg);
/* walk.c: the meta pages of the data.mdb at path, read before LMDB maps it;
 * every page of txn's snapshot (st may be NULL).  SHOAL_OK, SHOAL_ECORRUPT
 * (the first problem in msg), SHOAL_ENOMEM, SHOAL_ESTORE (an I/O error), or
 * SHOAL__ST_RETRY: a writer rewrote the snapshot's meta page meanwhile,
 * walk again in a new txn. */
#define SHOAL__ST_RETRY (-1)
int shoal__st_precheck(const char *path, char *msg, size_t len);
int shoal__st_walk(MDB_env *env, MDB_txn *txn, shoal__store_check *st, char *msg, size_t len);

#endif /* SHOAL_STORE_STORE_INT_H */
