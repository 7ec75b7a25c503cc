/*
 * test/powercut/undo.h - the undo log that the power-cut shim (shim.c)
 * writes and pc_restore (restore.c) reads.
 *
 * The log is a sequence of records, each a fixed header followed by
 * data_len bytes.  The shim appends a record before the call it describes
 * (PC_WRITE: the old contents and old size of the region the call may
 * change) and a marker after the call returned (PC_DURABLE: the bytes an
 * O_DSYNC write made durable; PC_SYNC: fsync or fdatasync of the file).
 * So a kill between a record and its call leaves an undo record for a
 * write that never happened (undoing it restores what is there), and a
 * kill between a call and its marker leaves a sync or durable write
 * unrecorded (the restore then treats it as not having returned, which a
 * power cut during the call allows).  A SIGKILL can cut the last record
 * short: the restore ignores a record whose bytes do not all follow.
 *
 * Checklist: the record layout is shared by shim.c and restore.c only (the
 * log never outlives one cut); change PC_MAGIC when it changes.
 */
#ifndef SHOAL_TEST_POWERCUT_UNDO_H
#define SHOAL_TEST_POWERCUT_UNDO_H

#include <stdint.h>

enum {
    PC_MAGIC = 0x31524350, /* "PCR1" read little-endian */
    PC_MAX_FILES = 8,      /* watched file names (SHOAL_PC_FILES) */
    PC_NAME_MAX = 64,      /* bytes of one watched file name, NUL included */
    PC_BLOCK = 512         /* the sector the reordering model keeps or loses whole */
};

typedef enum pc_kind {
    PC_OPEN = 1,    /* first open of a watched file in this process: data = its name */
    PC_WRITE = 2,   /* before write, pwrite, writev, pwritev, ftruncate, fallocate */
    PC_DURABLE = 3, /* after a write through an O_DSYNC / O_SYNC descriptor returned */
    PC_SYNC = 4     /* after fsync, fdatasync, syncfs or sync returned 0 */
} pc_kind;

typedef struct pc_rec {
    uint32_t magic;    /* PC_MAGIC */
    uint16_t kind;     /* pc_kind */
    uint16_t file;     /* index of the file in SHOAL_PC_FILES */
    uint64_t event;    /* the write or sync event it belongs to (1-based; 0: PC_OPEN) */
    uint64_t off;      /* PC_WRITE, PC_DURABLE: the region [off, off + len) */
    uint64_t len;      /* the call may change (or made durable) */
    uint64_t old_size; /* PC_WRITE: size before the call; others: size after */
    uint64_t data_len; /* bytes that follow: PC_WRITE the old contents of the
                          region below old_size, PC_OPEN the file name */
    uint64_t sum;      /* pc_rec_sum() of the fields above */
} pc_rec;

/* A checksum of a header's fields, so a damaged log is refused rather than
 * restored wrongly. */
static inline uint64_t
pc_rec_sum(const pc_rec *r)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    const uint64_t f[] = { r->magic, r->kind, r->file,     r->event,
                           r->off,   r->len,  r->old_size, r->data_len };
    for (unsigned i = 0; i < sizeof f / sizeof f[0]; i++) {
        h ^= f[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

#endif /* SHOAL_TEST_POWERCUT_UNDO_H */
