/*
 * core/check.c - shoal_replica_check: verify a replica against its own
 * signed log, read-only, in one snapshot.
 *
 * The log is the truth (DESIGN.md: sign bytes, store bytes): every other
 * table is derived from it (the two indexes, the version vector, document
 * metas and snapshots) or holds envelopes that verify on their own
 * (pending, evidence).  So the check walks the log once into a compact
 * record per entry (what it stores, whether its envelope verified, the id
 * its bytes really have, its document), then holds each derived table
 * against those records, and rebuilds every document from its changes with
 * the same code a swap uses (shoal__apply_rebuild), comparing the full
 * state encoding with what the stored snapshot and tail load to.
 *
 * The records are keyed by the id each envelope really has when its
 * signature verifies (the stored id otherwise): an index entry names the
 * change, not the header, so a damaged stored id is one problem, not one
 * per table that names the change.  A damaged envelope is reported once:
 * its id, author and seq are not checked again, and its document is not
 * rebuilt from it (each consequence would be one more line for one
 * damage).  An entry that no longer decodes names no document: it joins
 * the document of the entry that links to it, or whose meta ends at it.
 *
 * The environment comes first: the store's page walk (shoal__store_verify,
 * store/walk.c) checks every page of data.mdb before LMDB is asked to
 * follow one for the tables; a damaged page ends the check there (it is
 * the problem: nothing read through it could be trusted).
 *
 * A store call that fails with SHOAL_ECORRUPT (a malformed table entry,
 * an LMDB page that does not read) may have ended the LMDB transaction, so
 * the check reports it as a problem and stops there.  ENOMEM and ESTORE
 * end the check with that error.
 *
 * Rejected: checking through the read paths (shoal_doc_get, the doc cache)
 * - they trust stored bytes they have verified once, on arrival, and the
 * cache may hold a document the disk no longer does.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

enum {
    PROBLEM_LEN = 512,
    SHORT_HEX = 8 /* bytes of an id or key shown in a problem */
};

/* One log entry. */
typedef struct cent {
    uint64_t pos;
    uint64_t link;
    uint8_t cid[SHOAL__ID_BYTES];        /* the envelope's id (stored id if it does not verify) */
    uint8_t seqkey[SHOAL__SEQKEY_BYTES]; /* stored author | seq (BE) */
    size_t doc;                          /* its document (index + 1), 0: none */
    size_t next;                         /* the document's next entry (index + 1), 0: last */
    bool bad;                            /* malformed entry */
    bool damaged;                        /* its envelope failed (reported) */
    bool dead;                           /* superseded */
    bool in_changes, in_authseq;         /* named rightly by the index */
} cent;

/* One document of the log. */
typedef struct cdoc {
    uint8_t key[SHOAL__DOCKEY_MAX]; /* coll NUL id */
    size_t klen;
    size_t first, last; /* entries (index + 1) */
    uint64_t count;     /* entries, superseded ones included */
    bool in_table;
    bool damaged; /* holds a damaged entry: not rebuilt (it was reported) */
} cdoc;

/* One author of the log. */
typedef struct cauth {
    uint64_t count; /* applied changes */
    uint64_t max;   /* greatest applied seq */
    uint8_t maxcid[SHOAL__ID_BYTES];
    bool in_vv;
} cauth;

typedef struct chk {
    shoal_replica *r;
    shoal__stxn *t;
    shoal_check_fn cb;
    void *arg;
    shoal_check_stats st;
    int err;      /* ENOMEM / ESTORE that ends the check */
    bool stopped; /* a store call failed with ECORRUPT */
    cent *e;      /* owned */
    size_t n, cap;
    cdoc *d; /* owned */
    size_t nd, capd;
    cauth *a; /* owned */
    size_t na, capa;
    shoal__map bycid;  /* applied entries by id (keys Borrowed from e) */
    shoal__map byseq;  /* applied entries by author | seq (Borrowed from e) */
    shoal__map byauth; /* author -> index + 1 into a (Borrowed from e) */
    shoal__map bydoc;  /* document key -> index + 1 into d (keys copied) */
    uint64_t expect;   /* next log position expected */
    bool holes;        /* a document was evicted: positions and seqs may skip */
    bool partial;      /* subscriptions: an author's seqs may skip */
    shoal__wset cw;    /* revocation cuts while the documents are checked */
} chk;

/* ------------------------------------------------------------- reporting */

static void problem(chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(chk *k, const char *fmt, ...)
{
    k->st.problems++;
    if (!k->cb || k->st.problems > SHOAL_CHECK_REPORT_MAX)
        return;
    char buf[PROBLEM_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One line: names may hold any UTF-8, control characters included. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    k->cb(k->arg, buf);
}

/* The first SHORT_HEX bytes of p in hex (enough to find it). */
typedef struct hexs {
    char s[2 * SHORT_HEX + 1];
} hexs;

static hexs
hx(const uint8_t *p)
{
    hexs h;
    shoal__hex(h.s, p, SHORT_HEX);
    return h;
}

/* A document key "coll\0id" as "coll/id" (truncated names are fine in a
 * problem line). */
typedef struct dname {
    char s[SHOAL__DOCKEY_MAX + 1];
} dname;

static dname
dn(const uint8_t *key, size_t klen)
{
    dname d;
    memcpy(d.s, key, klen);
    d.s[klen] = 0;
    char *nul = memchr(d.s, 0, klen);
    if (nul)
        *nul = '/';
    return d;
}

/* A store call failed: ECORRUPT is a problem that ends the walk (the
 * transaction may be unusable after it), anything else ends the check.
 * Returns non-zero to stop the caller. */
static int
store_failed(chk *k, int err, const char *what)
{
    if (err == SHOAL_ECORRUPT) {
        problem(k, "check stopped: %s: %s", what, shoal__store_errmsg(k->r->store));
        k->stopped = true;
    } else if (err) {
        k->err = err;
    }
    return err;
}

static bool
going(const chk *k)
{
    return !k->err && !k->stopped;
}

/* --------------------------------------------------------------- the log */

static cent *
ent_add(chk *k)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        cent *p = shoal__realloc(k->e, cap * sizeof *p);
        if (!p)
            return NULL;
        k->e = p;
        k->cap = cap;
    }
    cent *c = &k->e[k->n++];
    memset(c, 0, sizeof *c);
    return c;
}

/* The document of key (index + 1), added if new; 0 on ENOMEM. */
static size_t
doc_of(chk *k, const uint8_t *key, size_t klen)
{
    size_t i = (size_t)(uintptr_t)shoal__map_get(&k->bydoc, key, klen);
    if (i)
        return i;
    if (k->nd == k->capd) {
        size_t cap = k->capd ? k->capd * 2 : 64;
        cdoc *p = shoal__realloc(k->d, cap * sizeof *p);
        if (!p)
            return 0;
        k->d = p;
        k->capd = cap;
    }
    cdoc *d = &k->d[k->nd];
    memset(d, 0, sizeof *d);
    memcpy(d->key, key, klen);
    d->klen = klen;
    if (shoal__map_put(&k->bydoc, key, klen, (void *)(uintptr_t)(k->nd + 1)))
        return 0;
    return ++k->nd;
}

static int
walk_fn(const shoal__log_rec *e, void *arg)
{
    chk *k = arg;
    cent *c = ent_add(k);
    if (!c) {
        k->err = SHOAL_ENOMEM;
        return SHOAL_ENOMEM;
    }
    c->pos = e->pos;
    /* An eviction (core/evict.c) leaves holes; positions still ascend
     * (LMDB's key order), and a dropped change took its whole chain, so
     * a hole inside a document's chain still shows as a broken link. */
    if (e->pos != k->expect && !(k->holes && e->pos > k->expect))
        problem(k, "log: position %llu follows %llu (positions run 1, 2, 3, ...)",
                (unsigned long long)e->pos, (unsigned long long)(k->expect - 1));
    k->expect = e->pos + 1;
    if (e->bad) {
        c->bad = true;
        problem(k, "log %llu: malformed entry", (unsigned long long)e->pos);
        return 0;
    }
    c->link = e->link;
    c->dead = e->dead;
    memcpy(c->cid, e->cid, SHOAL__ID_BYTES);
    shoal__seqkey(c->seqkey, e->author, e->seq);
    if (e->dead)
        k->st.superseded++;
    else
        k->st.changes++;
    unsigned long long pos = (unsigned long long)e->pos;
    if (e->link >= e->pos)
        problem(k, "log %llu: links forward to %llu", pos, (unsigned long long)e->link);
    size_t elen, blen;
    const uint8_t *body;
    int err = shoal__envelope_open(e->env.p, e->env.len, &elen, &body, &blen);
    if (err == SHOAL_EBADSIG) {
        problem(k, "log %llu: change %s: the signature does not verify", pos, hx(e->cid).s);
    } else if (err) {
        problem(k, "log %llu: change %s: the envelope does not parse (%s)", pos, hx(e->cid).s,
                shoal_strerror((shoal_err)err));
    } else if (elen != e->env.len) {
        problem(k, "log %llu: change %s: %zu bytes after the envelope", pos, hx(e->cid).s,
                e->env.len - elen);
        err = SHOAL_EPROTO;
    }
    c->damaged = err != SHOAL_OK;
    if (!err) {
        shoal__change_id(e->env.p, elen, c->cid);
        if (memcmp(c->cid, e->cid, SHOAL__ID_BYTES) != 0)
            problem(k, "log %llu: stored change id %s is not the envelope's id %s", pos,
                    hx(e->cid).s, hx(c->cid).s);
    }
    /* The document: decoding needs no signature (a flipped byte in a value
     * still decodes), so the entry still counts in its document's chain. */
    shoal__change ch;
    int derr = shoal__change_stored(e->env.p, e->env.len, &ch);
    if (derr == SHOAL_ENOMEM) {
        k->err = derr;
        return derr;
    }
    if (derr) {
        if (!err)
            problem(k, "log %llu: change %s does not decode", pos, hx(c->cid).s);
        c->damaged = true;
        return 0;
    }
    if (!err && (memcmp(ch.author, e->author, SHOAL_KEY_BYTES) != 0 || ch.seq != e->seq))
        problem(k, "log %llu: change %s: stored author %s seq %llu, the change is by %s seq %llu",
                pos, hx(c->cid).s, hx(e->author).s, (unsigned long long)e->seq, hx(ch.author).s,
                (unsigned long long)ch.seq);
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = 0;
    if (ch.coll_len >= 1 && ch.coll_len <= SHOAL_MAX_COLLECTION && ch.doc_len >= 1 &&
        ch.doc_len <= SHOAL_MAX_DOC_ID)
        klen = shoal__dockey(key, ch.coll, ch.coll_len, ch.doc, ch.doc_len);
    shoal__change_clear(&ch);
    if (!klen) {
        if (!err)
            problem(k, "log %llu: change %s names no valid document", pos, hx(c->cid).s);
        return 0;
    }
    if (e->dockey && (e->klen != klen || memcmp(e->dockey, key, klen) != 0))
        problem(k, "log %llu: carries the meta of %s, its change is to %s", pos,
                dn(e->dockey, e->klen).s, dn(key, klen).s);
    /* A change the write check rejected (docs/permissions.md) is held in
     * the log but belongs to no document's chain. */
    if (!e->dead && shoal__stxn_rejected_has(k->t, e->cid)) {
        if (e->link || e->dockey)
            problem(k, "log %llu: rejected change %s is in the chain of %s", pos, hx(c->cid).s,
                    dn(key, klen).s);
        return 0;
    }
    size_t di = doc_of(k, key, klen);
    if (!di) {
        k->err = SHOAL_ENOMEM;
        return SHOAL_ENOMEM;
    }
    cdoc *d = &k->d[di - 1];
    if (d->last)
        k->e[d->last - 1].next = k->n;
    else
        d->first = k->n;
    d->last = k->n;
    d->count++;
    d->damaged |= c->damaged;
    c->doc = di;
    return 0;
}

/* The entry at log position pos (index + 1), 0 if none: the walk went in
 * position order. */
static size_t
ent_at(const chk *k, uint64_t pos)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->e[mid].pos == pos)
            return mid + 1;
        if (k->e[mid].pos < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Put entry i (index + 1), which names no document, into document di's
 * list at its position. */
static void
adopt(chk *k, size_t i, size_t di)
{
    cent *c = &k->e[i - 1];
    cdoc *d = &k->d[di - 1];
    size_t prev = 0, at = d->first;
    while (at && k->e[at - 1].pos < c->pos) {
        prev = at;
        at = k->e[at - 1].next;
    }
    c->next = at;
    if (prev)
        k->e[prev - 1].next = i;
    else
        d->first = i;
    if (!at)
        d->last = i;
    c->doc = di;
    d->count++;
    d->damaged = true;
}

/* Damaged entries that name no document join the one whose next entry
 * links to them. */
static void
adopt_orphans(chk *k)
{
    for (size_t i = 0; i < k->n; i++) {
        const cent *c = &k->e[i];
        if (c->bad || c->doc || !c->damaged)
            continue;
        /* Usually the next change of its document is near: look ahead. */
        for (size_t j = i + 1; j < k->n; j++)
            if (!k->e[j].bad && k->e[j].doc && k->e[j].link == c->pos) {
                adopt(k, i + 1, k->e[j].doc);
                break;
            }
    }
}

/* Index the applied entries by id and by (author, seq), and the authors;
 * a second applied entry with one id or one (author, seq) is a problem. */
static int
index_entries(chk *k)
{
    int err = shoal__map_reserve(&k->bycid, k->n);
    if (!err)
        err = shoal__map_reserve(&k->byseq, k->n);
    for (size_t i = 0; !err && i < k->n; i++) {
        cent *c = &k->e[i];
        if (c->bad || c->dead)
            continue;
        cent *o = shoal__map_get(&k->bycid, c->cid, SHOAL__ID_BYTES);
        if (o)
            problem(k, "log %llu: change %s is applied at %llu already", (unsigned long long)c->pos,
                    hx(c->cid).s, (unsigned long long)o->pos);
        else
            err = shoal__map_put(&k->bycid, c->cid, SHOAL__ID_BYTES, c);
        o = shoal__map_get(&k->byseq, c->seqkey, SHOAL__SEQKEY_BYTES);
        uint64_t seq = shoal__be64_get(c->seqkey + SHOAL_KEY_BYTES);
        if (o) {
            problem(k, "log %llu: author %s seq %llu is applied at %llu already",
                    (unsigned long long)c->pos, hx(c->seqkey).s, (unsigned long long)seq,
                    (unsigned long long)o->pos);
            continue;
        }
        if (!err)
            err = shoal__map_put(&k->byseq, c->seqkey, SHOAL__SEQKEY_BYTES, c);
        size_t ai = (size_t)(uintptr_t)shoal__map_get(&k->byauth, c->seqkey, SHOAL_KEY_BYTES);
        if (!err && !ai) {
            if (k->na == k->capa) {
                size_t cap = k->capa ? k->capa * 2 : 16;
                cauth *p = shoal__realloc(k->a, cap * sizeof *p);
                if (!p) {
                    err = SHOAL_ENOMEM;
                    break;
                }
                k->a = p;
                k->capa = cap;
            }
            memset(&k->a[k->na], 0, sizeof k->a[k->na]);
            ai = ++k->na;
            err = shoal__map_put(&k->byauth, c->seqkey, SHOAL_KEY_BYTES, (void *)(uintptr_t)ai);
        }
        if (err)
            break;
        cauth *a = &k->a[ai - 1];
        a->count++;
        if (seq > a->max) {
            a->max = seq;
            memcpy(a->maxcid, c->cid, SHOAL__ID_BYTES);
        }
    }
    if (err)
        k->err = err;
    return err;
}

/* ------------------------------------------------ indexes, version vector */

typedef struct ixc {
    chk *k;
    uint64_t ixnext;
} ixc;

static int
changes_fn(const shoal__ix_rec *x, void *arg)
{
    ixc *ic = arg;
    chk *k = ic->k;
    if (x->bad) {
        problem(k, "changes index: malformed entry");
        return 0;
    }
    cent *c = shoal__map_get(&k->bycid, x->cid, SHOAL__ID_BYTES);
    if (!c) {
        problem(k, "changes index: change %s -> log %llu, but no applied change has that id",
                hx(x->cid).s, (unsigned long long)x->pos);
        return 0;
    }
    c->in_changes = true;
    if (c->pos != x->pos)
        problem(k, "changes index: change %s -> log %llu, but the log holds it at %llu",
                hx(x->cid).s, (unsigned long long)x->pos, (unsigned long long)c->pos);
    else if (c->pos >= ic->ixnext)
        problem(k, "changes index: change %s at log %llu is in the unindexed tail (from %llu)",
                hx(x->cid).s, (unsigned long long)c->pos, (unsigned long long)ic->ixnext);
    return 0;
}

static int
authseq_fn(const shoal__ix_rec *x, void *arg)
{
    ixc *ic = arg;
    chk *k = ic->k;
    if (x->bad) {
        problem(k, "authseq index: malformed entry");
        return 0;
    }
    uint8_t sk[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(sk, x->author, x->seq);
    cent *c = shoal__map_get(&k->byseq, sk, SHOAL__SEQKEY_BYTES);
    if (!c) {
        problem(k, "authseq index: author %s seq %llu -> %s, but no such change is applied",
                hx(x->author).s, (unsigned long long)x->seq, hx(x->cid).s);
        return 0;
    }
    c->in_authseq = true;
    if (memcmp(c->cid, x->cid, SHOAL__ID_BYTES) != 0)
        problem(k, "authseq index: author %s seq %llu -> %s, but the log applies %s (log %llu)",
                hx(x->author).s, (unsigned long long)x->seq, hx(x->cid).s, hx(c->cid).s,
                (unsigned long long)c->pos);
    else if (c->pos >= ic->ixnext)
        problem(k, "authseq index: author %s seq %llu at log %llu is in the unindexed tail",
                hx(x->author).s, (unsigned long long)x->seq, (unsigned long long)c->pos);
    return 0;
}

static int
vv_fn(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
      void *arg)
{
    chk *k = arg;
    size_t ai = (size_t)(uintptr_t)shoal__map_get(&k->byauth, author, SHOAL_KEY_BYTES);
    if (!ai) {
        problem(k, "version vector: author %s at seq %llu, but the log applies no change of it",
                hx(author).s, (unsigned long long)seq);
        return 0;
    }
    cauth *a = &k->a[ai - 1];
    a->in_vv = true;
    if (a->max != seq || memcmp(a->maxcid, cid, SHOAL__ID_BYTES) != 0)
        problem(k, "version vector: author %s at seq %llu (%s), the log's highest is seq %llu (%s)",
                hx(author).s, (unsigned long long)seq, hx(cid).s, (unsigned long long)a->max,
                hx(a->maxcid).s);
    return 0;
}

static void
check_indexes(chk *k)
{
    ixc ic = { k, 0 };
    int err = shoal__stxn_index_next(k->t, &ic.ixnext);
    if (err) {
        store_failed(k, err, "the log tail");
        return;
    }
    err = shoal__stxn_index_scan(k->t, false, changes_fn, &ic);
    if (err && store_failed(k, err, "changes index"))
        return;
    err = shoal__stxn_index_scan(k->t, true, authseq_fn, &ic);
    if (err && store_failed(k, err, "authseq index"))
        return;
    for (size_t i = 0; i < k->n; i++) {
        cent *c = &k->e[i];
        if (c->bad || c->dead || c->pos >= ic.ixnext ||
            shoal__map_get(&k->bycid, c->cid, SHOAL__ID_BYTES) != c)
            continue;
        if (!c->in_changes)
            problem(k, "changes index: lacks change %s (log %llu)", hx(c->cid).s,
                    (unsigned long long)c->pos);
        if (!c->in_authseq && shoal__map_get(&k->byseq, c->seqkey, SHOAL__SEQKEY_BYTES) == c)
            problem(k, "authseq index: lacks author %s seq %llu (log %llu)", hx(c->seqkey).s,
                    (unsigned long long)shoal__be64_get(c->seqkey + SHOAL_KEY_BYTES),
                    (unsigned long long)c->pos);
    }
    err = shoal__stxn_vv_scan(k->t, vv_fn, k);
    if (err && store_failed(k, err, "version vector"))
        return;
    for (size_t i = 0; i < k->n; i++) {
        cent *c = &k->e[i];
        if (c->bad || c->dead)
            continue;
        size_t ai = (size_t)(uintptr_t)shoal__map_get(&k->byauth, c->seqkey, SHOAL_KEY_BYTES);
        cauth *a = ai ? &k->a[ai - 1] : NULL;
        if (!a || a->in_vv)
            continue;
        a->in_vv = true; /* once per author */
        problem(k, "version vector: lacks author %s (seq %llu in the log)", hx(c->seqkey).s,
                (unsigned long long)a->max);
    }
    /* Evicted changes leave holes in their authors' seqs, and a partial
     * replica holds only the changes of the documents in its view. */
    for (size_t i = 0; !k->holes && !k->partial && i < k->na; i++)
        if (k->a[i].count != k->a[i].max) {
            /* Find the author's key for the line: any of its entries. */
            for (size_t j = 0; j < k->n; j++) {
                cent *c = &k->e[j];
                if (!c->bad && !c->dead &&
                    (size_t)(uintptr_t)shoal__map_get(&k->byauth, c->seqkey, SHOAL_KEY_BYTES) ==
                        i + 1) {
                    problem(k,
                            "log: author %s has %llu applied changes up to seq %llu (seqs "
                            "missing)",
                            hx(c->seqkey).s, (unsigned long long)k->a[i].count,
                            (unsigned long long)k->a[i].max);
                    break;
                }
            }
        }
}

/* ------------------------------------------------------ pending, evidence */

/* Open env as a stored, verified envelope: "" when it does, else why not. */
static const char *
env_trouble(const shoal__sval *env, uint8_t cid[SHOAL__ID_BYTES])
{
    size_t elen, blen;
    const uint8_t *body;
    int err = shoal__envelope_open(env->p, env->len, &elen, &body, &blen);
    if (err == SHOAL_EBADSIG)
        return "the signature does not verify";
    if (err)
        return "the envelope does not parse";
    if (elen != env->len)
        return "bytes after the envelope";
    shoal__change_id(env->p, elen, cid);
    return "";
}

static int
pending_fn(const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    chk *k = arg;
    k->st.pending++;
    uint8_t id[SHOAL__ID_BYTES];
    const char *why = env_trouble(env, id);
    if (why[0])
        problem(k, "pending %s: %s", hx(cid).s, why);
    else if (memcmp(id, cid, SHOAL__ID_BYTES) != 0)
        problem(k, "pending %s: the envelope's id is %s", hx(cid).s, hx(id).s);
    return 0;
}

static int
evidence_fn(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
            const shoal__sval *env, void *arg)
{
    chk *k = arg;
    k->st.evidence++;
    uint8_t id[SHOAL__ID_BYTES];
    const char *why = env_trouble(env, id);
    unsigned long long s = (unsigned long long)seq;
    if (why[0]) {
        problem(k, "evidence %s (author %s seq %llu): %s", hx(cid).s, hx(author).s, s, why);
        return 0;
    }
    if (memcmp(id, cid, SHOAL__ID_BYTES) != 0) {
        problem(k, "evidence %s (author %s seq %llu): the envelope's id is %s", hx(cid).s,
                hx(author).s, s, hx(id).s);
        return 0;
    }
    uint64_t eseq = 0;
    const uint8_t *eauth = shoal__envelope_author(env->p);
    size_t elen, blen;
    const uint8_t *body;
    if (shoal__envelope_parse(env->p, env->len, &elen, &body, &blen) != SHOAL_OK ||
        shoal__change_peek(body, blen, &eseq, NULL) != SHOAL_OK ||
        memcmp(eauth, author, SHOAL_KEY_BYTES) != 0 || eseq != seq)
        problem(k, "evidence %s (author %s seq %llu): the change is by %s seq %llu", hx(cid).s,
                hx(author).s, s, hx(eauth).s, (unsigned long long)eseq);
    return 0;
}

/* ------------------------------------------------------------- documents */

/* The replay's loader: sealed ops read the groups held, as in the
 * replica's own rebuild (docstore.c). */
typedef struct cload_ctx {
    shoal__stxn *t;
    shoal__authz_cache *authz; /* owned */
} cload_ctx;

static int
cload(void *ctx, const shoal__rent *e, shoal__change *c)
{
    cload_ctx *x = ctx;
    shoal__sval env;
    int err = shoal__stxn_log_get(x->t, e->at, &env, NULL);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
    err = shoal__change_stored(env.p, env.len, c);
    if (!err && c->nseals) {
        shoal__lmdb_apply la = { x->t, NULL };
        shoal__apply_store s;
        shoal__apply_lmdb(&s, &la);
        err = shoal__apply_disclose(&s, &x->authz, e->cid, c);
        if (err)
            shoal__change_clear(c);
    }
    return err;
}

/* The rebuild resolves dependencies against the check's own records
 * (applied ids as the envelopes really are), not the indexes it is
 * checking; evidence aliases come from the store.  la comes first: the
 * LMDB functions take ctx as a shoal__lmdb_apply. */
typedef struct cstore {
    shoal__lmdb_apply la;
    chk *k;
} cstore;

static bool
c_has(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    cstore *c = ctx;
    return shoal__map_get(&c->k->bycid, cid, SHOAL__ID_BYTES) != NULL;
}

static int
c_authseq(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
          uint8_t cid[SHOAL__ID_BYTES])
{
    cstore *c = ctx;
    uint8_t sk[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(sk, author, seq);
    const cent *e = shoal__map_get(&c->k->byseq, sk, SHOAL__SEQKEY_BYTES);
    if (!e)
        return SHOAL_ENOTFOUND;
    memcpy(cid, e->cid, SHOAL__ID_BYTES);
    return SHOAL_OK;
}

/* Rebuild document d from its applied changes; *doc and *heads Caller
 * owns.  SHOAL_ECORRUPT when they do not replay. */
static int
doc_rebuild(chk *k, const cdoc *d, shoal__doc **doc, uint8_t **heads, size_t *nheads)
{
    size_t n = 0;
    for (size_t i = d->first; i; i = k->e[i - 1].next)
        n += !k->e[i - 1].dead;
    shoal__rent *e = shoal__calloc(n ? n : 1, sizeof *e);
    if (!e)
        return SHOAL_ENOMEM;
    n = 0;
    int err = SHOAL_OK;
    bool may = shoal__wset_may_void(&k->cw);
    for (size_t i = d->first; !err && i; i = k->e[i - 1].next) {
        const cent *c = &k->e[i - 1];
        if (c->dead)
            continue;
        e[n].at = c->pos;
        memcpy(e[n].cid, c->cid, SHOAL__ID_BYTES);
        /* a change past its author's cut, or naming VOID authority,
         * applies VOID */
        shoal__sval env;
        shoal__change ch;
        if (!may) {
            n++;
            continue;
        }
        err = shoal__stxn_log_get(k->t, c->pos, &env, NULL);
        if (!err)
            err = shoal__change_stored(env.p, env.len, &ch);
        if (!err) {
            err = shoal__wset_void(&k->cw, &ch, &e[n].voided);
            shoal__change_clear(&ch);
        }
        n++;
    }
    if (err) {
        shoal__free(e);
        return err == SHOAL_ENOTFOUND || err == SHOAL_EPROTO ? SHOAL_ECORRUPT : err;
    }
    cstore cs = { { k->t, NULL }, k };
    shoal__apply_store s;
    shoal__apply_lmdb(&s, &cs.la);
    s.ctx = &cs;
    s.has = c_has;
    s.authseq = c_authseq;
    cload_ctx cl = { k->t, NULL };
    err = shoal__apply_rebuild(&s, e, n, cload, &cl, doc, heads, nheads);
    shoal__authz_cache_free(cl.authz);
    shoal__free(e);
    return err;
}

static bool
same_state(const shoal__doc *a, const shoal__doc *b, int *err)
{
    shoal__buf x, y;
    shoal__buf_init(&x);
    shoal__buf_init(&y);
    *err = shoal__doc_encode_full(a, &x);
    if (!*err)
        *err = shoal__doc_encode_full(b, &y);
    bool same = !*err && x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
    shoal__buf_free(&x);
    shoal__buf_free(&y);
    return same;
}

/* ----------------------------------------------------------- query views */

/* The stored query view of (coll, id) is the one the rebuilt document d
 * gives (none for a deleted one). */
static void
check_view(chk *k, const shoal__doc *d, const uint8_t *coll, size_t clen, const uint8_t *id,
           size_t idlen, const char *name)
{
    bool alive = shoal__doc_exists(d) && !shoal__doc_deleted(d);
    shoal__sval v;
    int err = shoal__stxn_qview_get(k->t, coll, clen, id, idlen, &v);
    if (err && err != SHOAL_ENOTFOUND) {
        store_failed(k, err, "query views");
        return;
    }
    if (!alive) {
        if (!err)
            problem(k, "document %s: deleted, but it has a query view", name);
        return;
    }
    if (err) {
        problem(k, "document %s: no query view", name);
        return;
    }
    shoal__buf b;
    shoal__buf_init(&b);
    uint8_t e[SHOAL__QVIEW_HDR];
    shoal__be64_put(e, shoal__doc_epoch(d));
    err = shoal__buf_append(&b, e, sizeof e);
    if (!err)
        err = shoal__doc_encode_qview(d, SHOAL__Q_LIST_VIEW, &b);
    if (err)
        k->err = err;
    else if (b.len != v.len || memcmp(b.p, v.p, v.len) != 0)
        problem(k, "document %s: its query view differs from its state", name);
    shoal__buf_free(&b);
}

/* A view whose document the log does not hold (the views of documents
 * the log holds were checked with them). */
static int
orphan_view_fn(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
               const shoal__sval *view, void *arg)
{
    chk *k = arg;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    if (!shoal__map_get(&k->bydoc, key, klen))
        problem(k, "query view of %s: the log holds no change of that document", dn(key, klen).s);
    return 0;
}

/* One index: the entries it should hold (from the views) against those it
 * holds. */
typedef struct ixchk {
    chk *k;
    uint32_t ix;
    const uint8_t *field;
    size_t flen;
    shoal__map want; /* key | id -> (void *)1, then 2 once found */
    shoal__buf kb;
    const uint8_t *id;
    size_t idlen;
    shoal__qfield *f;
    size_t cap;
    uint64_t extra;
} ixchk;

static int
want_key(const uint8_t *key, size_t n, void *arg)
{
    ixchk *c = arg;
    c->kb.len = 0;
    int err = shoal__buf_append(&c->kb, key, n);
    if (!err)
        err = shoal__buf_append(&c->kb, c->id, c->idlen);
    return err ? err : shoal__map_put(&c->want, c->kb.p, c->kb.len, (void *)1);
}

static int
want_fn(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *view,
        void *arg)
{
    ixchk *c = arg;
    const uint8_t *v;
    size_t vl, n;
    bool alive;
    int err = shoal__qview_split(view->p, view->len, NULL, &v, &vl);
    if (!err)
        err = shoal__qview_parse(v, vl, &c->f, &c->cap, &n, &alive);
    if (err == SHOAL_ENOMEM)
        return err;
    if (err)
        return 0; /* a bad view was reported with its document */
    shoal__qdoc d = { .id = id, .id_len = idlen, .fields = c->f, .nfields = n };
    const shoal__qfield *x = shoal__qdoc_field(&d, c->field, c->flen);
    c->id = id;
    c->idlen = idlen;
    return x ? shoal__qfield_keys(x, want_key, c) : 0;
}

static int
have_fn(const uint8_t *key, size_t klen, const uint8_t *id, size_t idlen, void *arg)
{
    ixchk *c = arg;
    c->kb.len = 0;
    int err = shoal__buf_append(&c->kb, key, klen);
    if (!err)
        err = shoal__buf_append(&c->kb, id, idlen);
    if (err)
        return err;
    void *w = shoal__map_get(&c->want, c->kb.p, c->kb.len);
    if (w)
        return shoal__map_put(&c->want, c->kb.p, c->kb.len, (void *)2);
    c->extra++;
    return 0;
}

/* Every view belongs to a document of the log, and every index holds
 * exactly the entries its collection's views give. */
static void
check_query_tables(chk *k)
{
    shoal__sval mv;
    int err = shoal__stxn_meta_get(k->t, "qviews", &mv);
    if (err == SHOAL_ENOTFOUND || (!err && (mv.len != 1 || mv.p[0] != SHOAL__QVIEW_VERSION))) {
        problem(k, "query views: not built (meta qviews); the next open builds them");
        return;
    }
    if (err && store_failed(k, err, "meta"))
        return;
    err = shoal__stxn_qview_scan(k->t, NULL, 0, orphan_view_fn, k);
    if (err && store_failed(k, err, "query views"))
        return;
    shoal__qixs l = { 0 };
    err = shoal__qixs_load(k->t, NULL, 0, &l);
    if (err == SHOAL_ENOMEM)
        k->err = err;
    else if (err)
        store_failed(k, err, "index registry");
    for (size_t i = 0; going(k) && i < l.n; i++) {
        const shoal__qixent *x = &l.e[i];
        ixchk c = { .k = k, .ix = x->ix, .field = x->field, .flen = x->flen };
        shoal__map_init(&c.want);
        shoal__buf_init(&c.kb);
        err = shoal__stxn_qview_scan(k->t, x->coll, x->clen, want_fn, &c);
        if (!err)
            err = shoal__stxn_qix_scan(k->t, c.ix, NULL, 0, NULL, 0, have_fn, &c);
        if (err == SHOAL_ENOMEM)
            k->err = err;
        else if (err)
            store_failed(k, err, "index");
        uint64_t missing = 0;
        for (size_t j = 0; !err && j < c.want.cap; j++)
            if (c.want.s[j].key && c.want.s[j].val == (void *)1)
                missing++;
        if (!err && (missing || c.extra))
            problem(k, "index %.*s.%.*s: %llu entries missing, %llu entries too many", (int)x->clen,
                    (const char *)x->coll, (int)x->flen, (const char *)x->field,
                    (unsigned long long)missing, (unsigned long long)c.extra);
        shoal__map_clear(&c.want, NULL);
        shoal__buf_free(&c.kb);
        shoal__free(c.f);
    }
    shoal__qixs_free(&l);
}

/* Check document d (in the log) against its meta m and its stored state. */
static void
check_doc(chk *k, const cdoc *d, const shoal__dmeta *m, const uint8_t *coll, size_t clen,
          const uint8_t *id, size_t idlen)
{
    if (d->damaged)
        return; /* its damaged change was reported */
    dname nm = dn(d->key, d->klen);
    const char *name = nm.s;
    const cent *last = &k->e[d->last - 1];
    if (m->last_pos != last->pos)
        problem(k, "document %s: meta names its last change at log %llu, the log's is at %llu",
                name, (unsigned long long)m->last_pos, (unsigned long long)last->pos);
    if (m->nchanges != d->count)
        problem(k, "document %s: meta counts %llu changes, the log holds %llu", name,
                (unsigned long long)m->nchanges, (unsigned long long)d->count);
    /* The chain: each entry links to the document's entry before it. */
    uint64_t prev = 0;
    for (size_t i = d->first; i; i = k->e[i - 1].next) {
        const cent *c = &k->e[i - 1];
        if (c->link != prev)
            problem(k, "log %llu: links to %llu, the previous change of %s is at %llu",
                    (unsigned long long)c->pos, (unsigned long long)c->link, name,
                    (unsigned long long)prev);
        prev = c->pos;
    }
    shoal__doc *rebuilt = NULL, *stored = NULL;
    uint8_t *heads = NULL;
    size_t nheads = 0;
    int err = doc_rebuild(k, d, &rebuilt, &heads, &nheads);
    if (err == SHOAL_ECORRUPT) {
        problem(k, "document %s: its changes in the log do not replay", name);
        return;
    }
    if (err) {
        k->err = err;
        return;
    }
    err = shoal__doc_load(k->r, k->t, m, coll, clen, id, idlen, &stored);
    if (err == SHOAL_ECORRUPT) {
        problem(k, "document %s: its stored state does not load (snapshot or chain damaged)", name);
    } else if (err) {
        k->err = err;
    } else if (!same_state(rebuilt, stored, &err)) {
        if (err)
            k->err = err;
        else
            problem(k,
                    "document %s: the stored state differs from the state rebuilt from its "
                    "%llu changes",
                    name, (unsigned long long)d->count);
    } else if (m->exists != shoal__doc_exists(rebuilt) ||
               m->deleted != shoal__doc_deleted(rebuilt) || m->epoch != shoal__doc_epoch(rebuilt)) {
        problem(k,
                "document %s: meta says exists %d deleted %d epoch %llu, the rebuilt "
                "document %d %d %llu",
                name, m->exists, m->deleted, (unsigned long long)m->epoch,
                shoal__doc_exists(rebuilt), shoal__doc_deleted(rebuilt),
                (unsigned long long)shoal__doc_epoch(rebuilt));
    }
    if (!k->err &&
        (m->nheads != nheads || (nheads && memcmp(m->heads, heads, nheads * SHOAL__ID_BYTES) != 0)))
        problem(k, "document %s: stored heads (%zu) differ from the rebuilt heads (%zu)", name,
                m->nheads, nheads);
    if (!k->err)
        check_view(k, rebuilt, coll, clen, id, idlen, name);
    shoal__doc_free(rebuilt);
    shoal__doc_free(stored);
    shoal__free(heads);
}

static int
doc_fn(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
       void *arg)
{
    chk *k = arg;
    k->st.documents++;
    uint8_t key[SHOAL__DOCKEY_MAX];
    if (clen > SHOAL_MAX_COLLECTION || idlen > SHOAL_MAX_DOC_ID) {
        problem(k, "docs table: a document name over its bound");
        return 0;
    }
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    shoal__dmeta m;
    int err = shoal__dmeta_parse(meta->p, meta->len, &m);
    if (err == SHOAL_ENOMEM) {
        k->err = err;
        return err;
    }
    /* coll and id may point into the tail: copy before more store calls. */
    const uint8_t *c2 = key, *id2 = key + clen + 1;
    size_t di = (size_t)(uintptr_t)shoal__map_get(&k->bydoc, key, klen);
    if (!di) {
        problem(k, "document %s: in the docs table, but the log holds no change of it",
                dn(key, klen).s);
    } else {
        /* Its last change may be a damaged one that names no document. */
        size_t i = err ? 0 : ent_at(k, m.last_pos);
        if (i && !k->e[i - 1].doc && k->e[i - 1].damaged && !k->e[i - 1].bad)
            adopt(k, i, di);
        k->d[di - 1].in_table = true;
        if (err)
            problem(k, "document %s: malformed meta", dn(key, klen).s);
        else
            check_doc(k, &k->d[di - 1], &m, c2, clen, id2, idlen);
    }
    shoal__dmeta_clear(&m);
    return k->err;
}

static void
check_docs(chk *k)
{
    int err = shoal__stxn_doc_scan(k->t, NULL, 0, doc_fn, k);
    if (err && err != k->err && store_failed(k, err, "docs table"))
        return;
    if (!going(k))
        return;
    for (size_t i = 0; i < k->nd; i++)
        if (!k->d[i].in_table)
            problem(k, "document %s: %llu changes in the log, but no entry in the docs table",
                    dn(k->d[i].key, k->d[i].klen).s, (unsigned long long)k->d[i].count);
}

/* ------------------------------------------------------------- the check */

static int
check_fn(shoal__stxn *t, void *arg)
{
    chk *k = arg;
    k->t = t;
    k->expect = 1;
    int err = shoal__stxn_log_next(t, NULL, &k->holes);
    if (err && store_failed(k, err, "the log tail"))
        return k->err;
    err = shoal__stxn_log_walk(t, walk_fn, k);
    if (err && err != k->err)
        store_failed(k, err, "log");
    adopt_orphans(k);
    if (going(k))
        index_entries(k);
    if (going(k))
        check_indexes(k);
    if (going(k)) {
        err = shoal__stxn_pending_scan(t, pending_fn, k);
        if (err)
            store_failed(k, err, "pending set");
    }
    if (going(k)) {
        err = shoal__stxn_evidence_scan(t, evidence_fn, k);
        if (err)
            store_failed(k, err, "evidence");
    }
    if (going(k)) {
        /* revocation cuts, as this snapshot holds them (rebuilds) */
        shoal__wset_init(&k->cw, k->r);
        shoal__wset_reset(&k->cw, t);
        check_docs(k);
        shoal__wset_free(&k->cw);
    }
    if (going(k))
        check_query_tables(k);
    return k->err;
}

shoal_err
shoal_replica_check(shoal_replica *r, shoal_check_fn cb, void *arg, shoal_check_stats *st)
{
    assert(r);
    chk k;
    memset(&k, 0, sizeof k);
    k.r = r;
    k.partial = shoal__partial(r);
    k.cb = cb;
    k.arg = arg;
    shoal__map_init_borrow(&k.bycid);
    shoal__map_init_borrow(&k.byseq);
    shoal__map_init_borrow(&k.byauth);
    shoal__map_init(&k.bydoc);
    pthread_mutex_lock(&r->mu);
    /* The environment first: the tables below are read through LMDB,
     * which must not follow a damaged page. */
    shoal__store_check sc;
    memset(&sc, 0, sizeof sc);
    int err = shoal__store_verify(r->store, &sc);
    k.st.pages = sc.branch_pages + sc.leaf_pages + sc.overflow_pages;
    k.st.free_pages = sc.free_pages;
    if (err == SHOAL_ECORRUPT) {
        problem(&k, "environment: %s", shoal__store_errmsg(r->store));
        err = SHOAL_OK;
    } else if (err == SHOAL_OK) {
        err = shoal__store_read(r->store, check_fn, &k);
    }
    if (err == SHOAL_OK && k.st.problems)
        err = SHOAL_ECORRUPT;
    if (err == SHOAL_ECORRUPT)
        shoal__fail(r, err, "check: %llu problem(s)", (unsigned long long)k.st.problems);
    else if (err)
        shoal__fail(r, err, "check");
    pthread_mutex_unlock(&r->mu);
    shoal__map_clear(&k.bycid, NULL);
    shoal__map_clear(&k.byseq, NULL);
    shoal__map_clear(&k.byauth, NULL);
    shoal__map_clear(&k.bydoc, NULL);
    shoal__free(k.e);
    shoal__free(k.d);
    shoal__free(k.a);
    if (st)
        *st = k.st;
    return (shoal_err)err;
}
