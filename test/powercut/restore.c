/*
 * test/powercut/restore.c - pc_restore, the "power on" step of the
 * power-cut harness: from the undo log the shim wrote (undo.h), turn the
 * files of a replica directory, as a killed process left them, into what a
 * disk could hold after a power cut at the same moment.
 *
 *   pc_restore ordered LOG DIR SEED   every unsynced write is lost
 *   pc_restore reorder LOG DIR SEED   each 512-byte block keeps some version
 *   pc_restore events LOG             the number of events the log records
 *   pc_restore dump LOG               one line per record, to read a log
 *
 * Both print one JSON line (records, events, and per file the unsynced
 * records, the blocks they touch, the synced, final and restored sizes).
 *
 * Per file, only the records after its last sync marker matter ("the
 * unsynced records"); everything before was on the disk.
 *
 * ordered: the records are undone newest first: each puts back the old
 * contents of its region and the old size, except the bytes a later
 * durable marker covers (an O_DSYNC write was on the disk when it
 * returned, so an older write to the same bytes cannot be what the disk
 * holds).  The file ends at its synced size, or past it where a durable
 * write reached.  This is a disk that writes nothing until told to sync.
 *
 * reorder: a disk with a write cache that reorders freely between syncs
 * and writes 512-byte sectors atomically.  Undoing the records newest
 * first yields every version a block went through since the sync; each
 * touched block independently keeps one of them, drawn by a seeded RNG,
 * among those still current at or after the block's last durable marker.
 * The size is the synced or the final one (a coin); blocks past the kept
 * size are gone, and a kept block that rolls back to before the file
 * reached it reads as zeros.
 *
 * Neither model tears a sector, nor lies about a flush (a drive that
 * acknowledges a sync it did not make defeats every database).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "undo.h"

typedef struct rec {
    pc_rec h;
    const uint8_t *data; /* into the log buffer */
} rec;

typedef struct log_view {
    uint8_t *buf;
    size_t len;
    rec *recs;
    size_t n;
    bool truncated; /* the last record was cut short (ignored) */
    uint64_t events;
    char names[PC_MAX_FILES][PC_NAME_MAX];
} log_view;

/* One version of a block: its contents from record `from` on. */
typedef struct version {
    size_t from; /* index of the record that wrote it; SIZE_MAX: the synced one */
    uint8_t data[PC_BLOCK];
} version;

typedef struct block {
    version *v; /* newest first */
    size_t n;
    size_t cap;
    size_t durable; /* 1 + index of the newest durable marker touching it; 0: none */
} block;

typedef struct file_result {
    size_t unsynced;
    size_t blocks;
    uint64_t synced_size;
    uint64_t final_size;
    uint64_t size;
} file_result;

static uint64_t rng;

static uint64_t
rng_next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "pc_restore: out of memory\n");
        exit(2);
    }
    return q;
}

static bool
read_all(const char *path, uint8_t **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return false;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = xrealloc(NULL, len);
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *out_len = got;
    return true;
}

/* Parse the log; false (with a message) if it is damaged before its end. */
static bool
parse(const char *path, log_view *lv)
{
    memset(lv, 0, sizeof *lv);
    /* No log: the process was cut before its first event. */
    if (!read_all(path, &lv->buf, &lv->len)) {
        if (errno == ENOENT)
            return true;
        fprintf(stderr, "pc_restore: cannot read %s\n", path);
        return false;
    }
    size_t pos = 0, cap = 0;
    while (pos < lv->len) {
        pc_rec h;
        if (lv->len - pos < sizeof h) {
            lv->truncated = true;
            break;
        }
        memcpy(&h, lv->buf + pos, sizeof h);
        if (h.magic != PC_MAGIC || h.sum != pc_rec_sum(&h) || h.file >= PC_MAX_FILES) {
            fprintf(stderr, "pc_restore: damaged record at byte %zu of %s\n", pos, path);
            return false;
        }
        if (lv->len - pos - sizeof h < h.data_len) {
            lv->truncated = true;
            break;
        }
        if (h.kind == PC_WRITE && h.data_len > h.len) {
            fprintf(stderr, "pc_restore: record at byte %zu has more data than its region\n", pos);
            return false;
        }
        if (lv->n == cap) {
            cap = cap ? 2 * cap : 1024;
            lv->recs = xrealloc(lv->recs, cap * sizeof *lv->recs);
        }
        lv->recs[lv->n].h = h;
        lv->recs[lv->n].data = lv->buf + pos + sizeof h;
        lv->n++;
        if (h.kind == PC_OPEN && h.data_len < PC_NAME_MAX) {
            memcpy(lv->names[h.file], lv->buf + pos + sizeof h, h.data_len);
            lv->names[h.file][h.data_len] = '\0';
        }
        if (h.event > lv->events)
            lv->events = h.event;
        pos += sizeof h + h.data_len;
    }
    return true;
}

static uint64_t
max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void
block_push(block *b, size_t from, const uint8_t *data)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n].from = from;
    memcpy(b->v[b->n].data, data, PC_BLOCK);
    b->n++;
}

/* Undo record r on img (whose size is *size): the old contents of its
 * region below the old size, zeros above it, then the old size.  Bytes
 * with mask set (durable) keep their contents; mask may be NULL. */
static void
undo(uint8_t *img, uint64_t *size, const rec *r, const uint8_t *mask)
{
    uint64_t off = r->h.off, len = r->h.len;
    for (uint64_t i = 0; i < len; i++) {
        if (mask && mask[off + i])
            continue;
        img[off + i] = i < r->h.data_len ? r->data[i] : 0;
    }
    for (uint64_t i = r->h.old_size; i < *size; i++)
        if (!mask || !mask[i])
            img[i] = 0;
    *size = r->h.old_size;
}

static bool
restore_file(const log_view *lv, int file, const char *dir, bool reorder, file_result *res)
{
    memset(res, 0, sizeof *res);
    size_t first = 0; /* first record after the file's last sync */
    for (size_t i = 0; i < lv->n; i++)
        if (lv->recs[i].h.file == file && lv->recs[i].h.kind == PC_SYNC)
            first = i + 1;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, lv->names[file]);
    uint8_t *cur = NULL;
    size_t cur_len = 0;
    if (!read_all(path, &cur, &cur_len)) {
        fprintf(stderr, "pc_restore: cannot read %s\n", path);
        return false;
    }
    /* The image holds every size the file had since the sync. */
    uint64_t cap = cur_len;
    for (size_t i = first; i < lv->n; i++) {
        const rec *r = &lv->recs[i];
        if (r->h.file != file || (r->h.kind != PC_WRITE && r->h.kind != PC_DURABLE))
            continue;
        res->unsynced++;
        cap = max64(cap, max64(r->h.off + r->h.len, r->h.old_size));
    }
    res->final_size = cur_len;
    res->synced_size = cur_len;
    res->size = cur_len;
    if (res->unsynced == 0) {
        free(cur);
        return true;
    }
    cap = (cap + PC_BLOCK - 1) / PC_BLOCK * PC_BLOCK;
    uint8_t *img = calloc(1, cap);
    uint8_t *mask = calloc(1, cap);
    size_t nblocks = cap / PC_BLOCK;
    block *blocks = calloc(nblocks ? nblocks : 1, sizeof *blocks);
    if (!img || !mask || !blocks) {
        fprintf(stderr, "pc_restore: out of memory\n");
        exit(2);
    }
    memcpy(img, cur, cur_len);
    free(cur);
    uint64_t size = cur_len, durable_end = 0;
    for (size_t i = lv->n; i-- > first;) {
        const rec *r = &lv->recs[i];
        if (r->h.file != file)
            continue;
        uint64_t lo = r->h.off / PC_BLOCK;
        uint64_t hi =
            (max64(r->h.off + r->h.len, max64(r->h.old_size, size)) + PC_BLOCK - 1) / PC_BLOCK;
        if (r->h.kind == PC_DURABLE) {
            memset(mask + r->h.off, 1, r->h.len);
            durable_end = max64(durable_end, r->h.off + r->h.len);
            for (uint64_t b = lo; b < (r->h.off + r->h.len + PC_BLOCK - 1) / PC_BLOCK; b++)
                if (!blocks[b].durable)
                    blocks[b].durable = i + 1;
            continue;
        }
        if (r->h.kind != PC_WRITE)
            continue;
        if (reorder) {
            /* The blocks this record changed (its region, and any size
             * change) as they were right after it. */
            if (r->h.old_size == size)
                hi = (r->h.off + r->h.len + PC_BLOCK - 1) / PC_BLOCK;
            else
                lo = lo < r->h.old_size / PC_BLOCK ? lo : r->h.old_size / PC_BLOCK;
            for (uint64_t b = lo; b < hi; b++)
                block_push(&blocks[b], i, img + b * PC_BLOCK);
            undo(img, &size, r, NULL);
        } else {
            undo(img, &size, r, mask);
        }
    }
    res->synced_size = size;
    uint64_t keep = max64(size, durable_end);
    if (reorder) {
        uint64_t synced = size;
        /* img is now the synced state; each touched block draws a version. */
        for (size_t b = 0; b < nblocks; b++) {
            block *bl = &blocks[b];
            if (bl->n == 0)
                continue;
            res->blocks++;
            block_push(bl, SIZE_MAX, img + b * PC_BLOCK);
            /* v[j] (newest first) is current from v[j].from until the
             * record of v[j - 1]; the synced one from the start.  Allowed:
             * current at or after the newest durable marker. */
            size_t allowed = bl->n;
            if (bl->durable) {
                allowed = 0;
                while (allowed < bl->n &&
                       (allowed == 0 || bl->v[allowed - 1].from > bl->durable - 1))
                    allowed++;
            }
            size_t pick = (size_t)(rng_next() % allowed);
            memcpy(img + b * PC_BLOCK, bl->v[pick].data, PC_BLOCK);
            free(bl->v);
        }
        keep = max64(rng_next() & 1 ? synced : res->final_size, durable_end);
    }
    res->size = keep;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0;
    uint64_t done = 0;
    while (ok && done < keep) {
        ssize_t w = pwrite(fd, img + done, keep - done, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            ok = false;
        else
            done += (uint64_t)w;
    }
    if (ok && ftruncate(fd, (off_t)keep) != 0)
        ok = false;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "pc_restore: cannot write %s\n", path);
    free(img);
    free(mask);
    free(blocks);
    return ok;
}

static int
usage(void)
{
    fprintf(stderr, "usage: pc_restore ordered|reorder LOG DIR SEED\n"
                    "       pc_restore events|dump LOG\n");
    return 2;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        static const char *const kinds[] = { "?", "open", "write", "durable", "sync" };
        log_view lv;
        if (!parse(argv[2], &lv))
            return 1;
        for (size_t i = 0; i < lv.n; i++) {
            const pc_rec *h = &lv.recs[i].h;
            printf("%zu %s file %u event %" PRIu64 " off %" PRIu64 " len %" PRIu64 " size %" PRIu64
                   " data %" PRIu64 "\n",
                   i, kinds[h->kind <= PC_SYNC ? h->kind : 0], h->file, h->event, h->off, h->len,
                   h->old_size, h->data_len);
        }
        printf("%s\n", lv.truncated ? "(last record truncated)" : "(end)");
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "events") == 0) {
        log_view lv;
        if (!parse(argv[2], &lv))
            return 1;
        printf("{\"records\": %zu, \"events\": %" PRIu64 ", \"truncated\": %s}\n", lv.n, lv.events,
               lv.truncated ? "true" : "false");
        return 0;
    }
    if (argc != 5)
        return usage();
    bool reorder;
    if (strcmp(argv[1], "ordered") == 0)
        reorder = false;
    else if (strcmp(argv[1], "reorder") == 0)
        reorder = true;
    else
        return usage();
    rng = strtoull(argv[4], NULL, 0);
    log_view lv;
    if (!parse(argv[2], &lv))
        return 1;
    printf("{\"records\": %zu, \"events\": %" PRIu64 ", \"truncated\": %s, \"files\": [", lv.n,
           lv.events, lv.truncated ? "true" : "false");
    bool ok = true, firstf = true;
    for (int f = 0; f < PC_MAX_FILES && ok; f++) {
        if (!lv.names[f][0])
            continue;
        file_result res;
        ok = restore_file(&lv, f, argv[3], reorder, &res);
        printf("%s{\"name\": \"%s\", \"unsynced\": %zu, \"blocks\": %zu, \"synced_size\": "
               "%" PRIu64 ", \"final_size\": %" PRIu64 ", \"size\": %" PRIu64 "}",
               firstf ? "" : ", ", lv.names[f], res.unsynced, res.blocks, res.synced_size,
               res.final_size, res.size);
        firstf = false;
    }
    printf("]}\n");
    free(lv.recs);
    free(lv.buf);
    return ok ? 0 : 1;
}
