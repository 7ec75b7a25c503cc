/*
 * store/evict.c - local removal of log entries, for a replica that evicts
 * a document (core/evict.c) as if it had never received it; the
 * document's meta and snapshot go with doc_del and snap_del (docs.c, the
 * file of their key).  Not a CRDT delete: nothing is signed and nothing
 * travels.
 *
 * Dropping a log entry removes it and whatever names it: its `changes`
 * entry (cid -> its position) and its `authseq` entry ((author, seq) ->
 * its cid; a superseded entry has none, its (author, seq) names the
 * winning version, which stays).  The two indexes lag the log (log.c), so
 * the whole tail is indexed first: the entry is then below meta "ixnext",
 * no tail read can meet it again, and the document metas the tail carried
 * are in `docs`.  The tail stays consecutive from ixnext on (tail.c relies
 * on that), because every hole lies below it.
 *
 * Positions are never reused.  The next position used to be the log's
 * last key + 1; dropping the last entry would hand its position out again,
 * and a position is a cursor outside this file (a peer link's "sent up
 * to", a live query's "looked at up to"), so a new change would hide
 * behind it.  Every drop therefore records meta "lognext" (u64 BE): the
 * next position at the time, a floor below which no append goes.
 * tail_load takes the greater of it and the last key + 1.  Appends never
 * update it (they go past it), so a local commit still writes the log's
 * last leaf only.  Its presence also tells the check (core/check.c) that
 * holes in the positions and in an author's seqs are evictions, not
 * damage.
 *
 * Rejected: marking entries dead as change_supersede does (the replica
 * must not hold the change at all: a re-import has to apply it as new,
 * and an export must not send it); keeping a separate "next position"
 * that every append writes (one more dirty page per commit for an
 * operation that is rare).
 */
#include "store_int.h"

#include <assert.h>
#include <string.h>

/* Disk format: meta "lognext" (docs/storage.md). */
#define META_LOGNEXT "lognext"

int
shoal__stxn_log_drop(shoal__stxn *t, uint64_t pos)
{
    assert(t->write);
    /* Dropping frees pages the same transaction may have allocated: the
     * commit that follows makes the file as long as its last page again
     * (shoal__store_fit). */
    atomic_store(&t->s->fit_due, true);
    int rc = shoal__stxn_index_flush(t);
    if (rc)
        return rc;
    uint8_t pk[8];
    shoal__be64_put(pk, pos);
    shoal__sval v = { NULL, 0 };
    rc = shoal__st_get(t, T_LOG, pk, 8, &v);
    if (rc)
        return rc;
    log_ent le;
    if (!shoal__st_ent_parse(v.p, v.len, &le))
        return shoal__st_corrupt(t, "malformed log entry");
    /* v dies at the first write below: copy what names the entry. */
    uint8_t cid[SHOAL__ID_BYTES], author[SHOAL_KEY_BYTES];
    memcpy(cid, v.p, SHOAL__ID_BYTES);
    memcpy(author, v.p + LOG_AUTHOR, SHOAL_KEY_BYTES);
    uint64_t seq = shoal__be64_get(v.p + LOG_SEQ);
    rc = shoal__st_del(t, T_LOG, pk, 8);
    if (rc)
        return rc;
    /* Index entries go only if they name this entry: a superseded entry's
     * id has no changes entry, and its (author, seq) belongs to the
     * version that won. */
    shoal__sval x = { NULL, 0 };
    rc = shoal__st_get(t, T_CHANGES, cid, SHOAL__ID_BYTES, &x);
    if (rc == SHOAL_OK && x.len == 8 && shoal__be64_get(x.p) == pos)
        rc = shoal__st_del(t, T_CHANGES, cid, SHOAL__ID_BYTES);
    else if (rc == SHOAL_ENOTFOUND || rc == SHOAL_OK)
        rc = SHOAL_OK;
    if (rc)
        return rc;
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, author, seq);
    rc = shoal__st_get(t, T_AUTHSEQ, k, SHOAL__SEQKEY_BYTES, &x);
    if (rc == SHOAL_OK && x.len == SHOAL__ID_BYTES && memcmp(x.p, cid, SHOAL__ID_BYTES) == 0)
        rc = shoal__st_del(t, T_AUTHSEQ, k, SHOAL__SEQKEY_BYTES);
    else if (rc == SHOAL_ENOTFOUND || rc == SHOAL_OK)
        rc = SHOAL_OK;
    if (rc)
        return rc;
    /* change_pos may remember a miss; a drop only adds misses, so it
     * stays true.  The floor: t->lognext is past pos (tail_load). */
    uint8_t nb[8];
    shoal__be64_put(nb, t->lognext);
    return shoal__st_put(t, T_META, META_LOGNEXT, strlen(META_LOGNEXT), nb, 8, 0);
}

int
shoal__stxn_log_next(shoal__stxn *t, uint64_t *next, bool *dropped)
{
    int rc = shoal__st_tail_load(t);
    if (rc)
        return rc;
    if (dropped) {
        rc = shoal__st_get(t, T_META, META_LOGNEXT, strlen(META_LOGNEXT), NULL);
        if (rc && rc != SHOAL_ENOTFOUND)
            return rc;
        *dropped = rc == SHOAL_OK;
    }
    if (next)
        *next = t->lognext;
    return SHOAL_OK;
}

/* The floor itself is read where the tail is (tail.c: tail_load). */
int
shoal__st_lognext_get(shoal__stxn *t, uint64_t *floor)
{
    shoal__sval v = { NULL, 0 };
    *floor = 0;
    int rc = shoal__st_get(t, T_META, META_LOGNEXT, strlen(META_LOGNEXT), &v);
    if (rc == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (rc)
        return rc;
    if (v.len != 8)
        return shoal__st_corrupt(t, "meta lognext is not 8 bytes");
    *floor = shoal__be64_get(v.p);
    return SHOAL_OK;
}
