/*
 * core/feed.c - what a partial peer receives from us: one feed per session
 * whose peer holds subscriptions (docs/protocol.md, "Partial replicas").
 *
 * We decide per document on our own current state: a document is in the
 * peer's view when it is live and matches at least one of the peer's
 * subscriptions.  The feed goes through three phases:
 *
 *   build    (one call) run each subscription as a query on a snapshot (the
 *            planner's indexes serve it) and note the log's end there;
 *            documents the peer's summary names that we hold but that no
 *            longer match are to leave;
 *   initial  for each document in view, the changes the peer lacks (not
 *            in the causal past of the heads its summary gave, not its own
 *            changes), in log order, which is causal; a document deleted
 *            here that the peer holds gets its missing changes (the delete
 *            among them) and then LEAVE; then COMPLETE;
 *   live     walk the log from the end noted at build: a change to a
 *            document in view is sent (STAY: a delete too, followed by
 *            LEAVE); a document that starts matching is sent whole
 *            (ENTER); one that stops matching gets LEAVE.
 *
 * inview maps each document the peer holds in its view (as far as we
 * know) to the log's last position when we sent its changes: the live walk
 * skips its changes at or below it, as they went with it.  The peer's own
 * changes (author = the peer, seq <= what it holds) are never sent back.
 *
 * Every call takes r->mu (judging a document may read it through the
 * document cache) and reads one snapshot; one call examines at most
 * SHOAL__HOST_SCAN log positions, like next_changes.
 *
 * Incremental evaluation (the hub, one per replica): a change is judged
 * against a peer's subscriptions only if the peer holds the document in
 * its view (STAY or LEAVE), or if one of the peer's subscriptions could
 * match it.  Each subscription whose predicate is an AND with an equality
 * term (field == c, field IN (...)) is filed under (coll, field, value
 * key) for each value, the rest per collection (residual).  For a log
 * position, the candidates are the feeds filed under the values of the
 * document's anchored fields plus the residual ones, computed once from
 * the document's query view and kept in a small ring of positions, so the
 * feeds of many peers walking the same new changes parse the document
 * once and evaluate only the subscriptions that can match.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

enum {
    PH_BUILD = 0,
    PH_INITIAL = 1,
    PH_LIVE = 2
};

typedef struct fkey {
    uint8_t *key; /* "coll\0id", owned */
    size_t klen;
    uint8_t what; /* W_SEND, W_SEND_LEAVE, W_LEAVE */
} fkey;

enum {
    W_SEND = 0,
    W_SEND_LEAVE = 1,
    W_LEAVE = 2,
    W_RECHECK = 3 /* live: the peer's read rights changed: judge it again, in view or not */
};

typedef struct fsub {
    shoal_query *q;
    const char *coll; /* into q */
    size_t clen;
} fsub;

/* A list of (feed, subscription) pairs. */
typedef struct fsubref {
    struct shoal__feed *f;
    size_t sub;
} fsubref;
typedef struct fvec {
    fsubref *v;
    size_t n, cap;
} fvec;

enum {
    CAND_RING = 64 /* positions whose candidates are kept */
};

/* One log position's document, judged once for every feed: its query view
 * (copied and parsed) and the (feed, subscription) pairs that may match
 * it, sorted. */
typedef struct cand {
    uint64_t pos;   /* 0: empty */
    uint64_t epoch; /* the hub's epoch it was computed in */
    fsubref *r;     /* owned */
    size_t n, cap;
    bool alive;       /* the document has a view (it is live) */
    shoal__buf view;  /* the view's bytes (its epoch header cut off) */
    shoal__qfield *f; /* parsed from view, owned */
    size_t fcap, nf;
} cand;

struct shoal__feedhub {
    shoal__map anchors;  /* "coll\0field\0qkey" -> fvec* */
    shoal__map residual; /* "coll" -> fvec* */
    shoal__map afields;  /* "coll\0field" -> (uintptr_t) references */
    cand ring[CAND_RING];
    uint64_t epoch; /* moves when a feed comes or goes: the ring is stale */
    shoal__qscratch sc;
};

struct shoal__feed {
    shoal_replica *r;
    uint8_t peer[SHOAL_KEY_BYTES];
    fsub *subs;
    size_t nsubs;
    shoal__map held;     /* key -> owned heads block: u32 n | n x 32 */
    shoal__map inview;   /* key -> (uintptr_t)(upto + 1) */
    shoal__map frompeer; /* change id -> 1: the peer sent it to us (not sent back) */
    int phase;
    fkey *list; /* initial phase: documents to send or to leave */
    size_t nlist, caplist, at;
    /* The document being sent: positions still to send, ascending. */
    uint64_t *cpos;
    size_t ncpos, cat, capcpos;
    uint8_t ckey[SHOAL__DOCKEY_MAX];
    size_t cklen;
    bool cleave;       /* LEAVE it once its changes are out */
    bool leave_due;    /* ckey's LEAVE is the next thing to send */
    bool leave_behind; /* ... with reason BEHIND and lheads (the peer's) */
    bool leave_gone;   /* ... with reason GONE (we evicted it) */
    size_t nlheads;
    uint8_t *lheads; /* the heads the last LEAVE carried, owned */
    size_t caplheads;
    uint64_t cursor;    /* live: next log position */
    uint64_t held_seen; /* r->held_gen we have looked at */
    fkey *lq;           /* live: documents to judge again (the peer's HAVE) */
    size_t nlq, caplq, lqat;
    shoal__qscratch sc;
    shoal__map anc;   /* scratch: ancestors of the peer's heads */
    shoal__buf akeys; /* the hub keys it is filed under: u16 len | key | u8 map */
    /* What the peer may read (read filtering: its roles AND its
     * subscriptions).  When authority changes, the change is sent first:
     * the reader is loaded again once the walk has passed the log's end
     * as it was then (recheck_at), and every document is judged again. */
    shoal__reader rd;
    bool named;        /* we dialled it by its key: its roles do not limit it */
    bool revoked_seen; /* a revocation went by: judge everything again */
    bool recheck;
    uint64_t recheck_at;
    /* Sealed groups: which of a change's groups the peer reads
     * (shoal__reader_groups): its scratch and the policies it decodes. */
    shoal__qscratch sc_seal;
    shoal__authz_cache *authz;
};

/* ------------------------------------------------------------- helpers */

/* Append a change's envelope to a batch, and after it the disclosures of
 * the sealed groups the peer may read (every one for a peer we dialled by
 * its key).  cid NULL: computed when needed. */
static int
append_env(shoal__feed *f, shoal__stxn *t, const uint8_t *cid, const uint8_t *env, size_t len,
           shoal__buf *out)
{
    int err = shoal__buf_append(out, env, len);
    if (err || !shoal__envelope_sealed(env, len))
        return err;
    uint8_t id[SHOAL__ID_BYTES];
    if (!cid) {
        shoal__change_id(env, len, id);
        cid = id;
    }
    uint64_t groups = SHOAL__ALL_GROUPS;
    if (!f->named)
        err = shoal__reader_groups(&f->rd, f->r, t, &f->authz, &f->sc_seal, env, len, &groups);
    if (!err)
        err = shoal__seals_append(t, cid, env, len, groups, out);
    return err;
}

static void
free_val(void *v)
{
    shoal__free(v);
}

static uintptr_t
inview_get(const shoal__feed *f, const uint8_t *key, size_t klen, bool *has)
{
    void *v = shoal__map_get(&f->inview, key, klen);
    *has = v != NULL;
    return v ? (uintptr_t)v - 1 : 0;
}

/* The body's seq, deps, coll and doc without decoding its ops. */
static int
peek_body(const uint8_t *body, size_t blen, uint64_t *seq, const uint8_t **deps, size_t *ndeps,
          const uint8_t **coll, size_t *clen, const uint8_t **doc, size_t *dlen)
{
    shoal__mpr rd, *m = &rd;
    shoal__mpr_init(m, body, blen);
    uint32_t items = shoal__mpr_array(m, 10, 1); /* format 1: 8 items, format 2: 9 or 10 */
    *seq = shoal__mpr_uint(m);
    (void)shoal__mpr_uint(m);
    uint32_t nd = shoal__mpr_array(m, 1024, 34);
    const uint8_t *first = NULL;
    for (uint32_t i = 0; i < nd && !m->err; i++) {
        const uint8_t *d;
        size_t dl = shoal__mpr_bin(m, &d, SHOAL__ID_BYTES);
        if (dl != SHOAL__ID_BYTES)
            return SHOAL_ECORRUPT;
        if (i == 0)
            first = d;
    }
    *clen = shoal__mpr_str(m, coll, SHOAL_MAX_COLLECTION);
    *dlen = shoal__mpr_str(m, doc, SHOAL_MAX_DOC_ID);
    if (m->err || items < 8)
        return SHOAL_ECORRUPT;
    /* Each dep is "c4 20" then 32 bytes: the ids lie 34 bytes apart. */
    *deps = first;
    *ndeps = nd;
    return SHOAL_OK;
}

static const uint8_t *
dep_at(const uint8_t *deps, size_t i)
{
    return deps + i * (SHOAL__ID_BYTES + 2);
}

/* The authority of a replica that enforces permissions: in every peer's
 * view, whatever its subscriptions (docs/permissions.md). */
static bool
auth_in_view(const shoal__feed *f, const uint8_t *coll, size_t clen)
{
    return f->r->enforce && clen == 5 && memcmp(coll, "_auth", 5) == 0;
}

/* Whether the live document (coll, id) matches one of the peer's
 * subscriptions in snapshot t; *alive: it is live here. */
static int
judge(shoal__feed *f, shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
      size_t idlen, bool *match)
{
    *match = false;
    if (auth_in_view(f, coll, clen)) {
        shoal__sval v;
        int err = shoal__stxn_qview_get(t, coll, clen, id, idlen, &v);
        *match = err == SHOAL_OK;
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    }
    bool any = false;
    for (size_t i = 0; i < f->nsubs && !any; i++)
        any = f->subs[i].clen == clen && memcmp(f->subs[i].coll, coll, clen) == 0;
    if (!any)
        return SHOAL_OK;
    shoal__sval v;
    int err = shoal__stxn_qview_get(t, coll, clen, id, idlen, &v);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (err)
        return err;
    for (size_t i = 0; i < f->nsubs && !*match; i++) {
        const fsub *s = &f->subs[i];
        if (s->clen != clen || memcmp(s->coll, coll, clen) != 0)
            continue;
        const char *c;
        size_t cl;
        const shoal__query *q = shoal__query_of(s->q, &c, &cl);
        err = shoal__query_judge(f->r, t, q, c, cl, id, idlen, &v, &f->sc, false, match);
        if (err)
            return err;
    }
    if (*match && !f->rd.all)
        err = shoal__reader_reads(&f->rd, f->r, t, coll, clen, id, idlen, &v, &f->sc, true, match);
    return err;
}

static bool
in_subs_coll(const shoal__feed *f, const uint8_t *coll, size_t clen)
{
    for (size_t i = 0; i < f->nsubs; i++)
        if (f->subs[i].clen == clen && memcmp(f->subs[i].coll, coll, clen) == 0)
            return true;
    return false;
}

/* Mark in f->anc every change of ours in the causal past of the peer's
 * heads for key (the heads included), following deps within the
 * document. */
static int
ancestors(shoal__feed *f, shoal__stxn *t, const uint8_t *heads, size_t nheads)
{
    shoal__map_reset(&f->anc);
    uint8_t(*stack)[SHOAL__ID_BYTES] = NULL;
    size_t n = 0, cap = 0;
    int err = SHOAL_OK;
    for (size_t i = 0; !err && i <= nheads; i++) {
        const uint8_t *start = i < nheads ? heads + i * SHOAL__ID_BYTES : NULL;
        if (start) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                void *p = shoal__realloc(stack, cap * sizeof *stack);
                if (!p) {
                    err = SHOAL_ENOMEM;
                    break;
                }
                stack = p;
            }
            memcpy(stack[n++], start, SHOAL__ID_BYTES);
        }
        while (!err && n > 0) {
            uint8_t id[SHOAL__ID_BYTES];
            memcpy(id, stack[--n], SHOAL__ID_BYTES);
            if (shoal__map_get(&f->anc, id, SHOAL__ID_BYTES))
                continue;
            shoal__sval env;
            err = shoal__stxn_change_get(t, id, &env);
            if (err == SHOAL_ENOTFOUND) {
                err = SHOAL_OK; /* the peer holds a change we lack */
                continue;
            }
            if (err)
                break;
            err = shoal__map_put(&f->anc, id, SHOAL__ID_BYTES, (void *)1);
            size_t elen, blen;
            const uint8_t *body, *deps, *coll, *doc;
            size_t ndeps, clen, dlen;
            uint64_t seq;
            if (!err && (shoal__envelope_parse(env.p, env.len, &elen, &body, &blen) ||
                         peek_body(body, blen, &seq, &deps, &ndeps, &coll, &clen, &doc, &dlen)))
                err = SHOAL_ECORRUPT;
            for (size_t d = 0; !err && d < ndeps; d++) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    void *p = shoal__realloc(stack, cap * sizeof *stack);
                    if (!p) {
                        err = SHOAL_ENOMEM;
                        break;
                    }
                    stack = p;
                }
                memcpy(stack[n++], dep_at(deps, d), SHOAL__ID_BYTES);
            }
        }
    }
    shoal__free(stack);
    return err;
}

static int
pos_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Make key's changes that the peer lacks the document being sent: its
 * chain walked back from the newest change, minus what the heads the peer
 * gave (summary or HAVE) cover, in log order; LEAVE after them if leave.
 * Records key in inview with the log's last position in t.  Nothing when
 * the document is not here. */
static int
start_doc(shoal__feed *f, shoal__stxn *t, const uint8_t *key, size_t klen, bool leave)
{
    f->ncpos = f->cat = 0;
    memcpy(f->ckey, key, klen);
    f->cklen = klen;
    f->cleave = leave;
    shoal__dmeta m;
    int err = shoal__dmeta_get(t, key, klen, &m);
    if (err == SHOAL_ENOTFOUND) {
        f->cleave = false;
        return SHOAL_OK;
    }
    if (err)
        return err;
    /* What the peer holds of it: nothing, or the heads of its summary
     * (the same heads as ours: nothing to send). */
    const uint8_t *hb = shoal__map_get(&f->held, key, klen);
    size_t nh = 0;
    const uint8_t *heads = NULL;
    if (hb) {
        nh = shoal__be32_get(hb);
        heads = hb + 4;
    }
    bool same = hb && nh == m.nheads && memcmp(heads, m.heads, nh * SHOAL__ID_BYTES) == 0;
    /* A document in the peer's view (judged again: W_RECHECK) holds
     * every change the live walk passed. */
    bool in = shoal__map_get(&f->inview, key, klen) != NULL;
    if (!err && hb && !same)
        err = ancestors(f, t, heads, nh);
    uint64_t pos = same ? 0 : m.last_pos;
    for (uint64_t steps = 0; !err && pos != 0; steps++) {
        if (steps > m.nchanges + 64) {
            err = SHOAL_ECORRUPT;
            break;
        }
        shoal__sval env;
        uint64_t link;
        bool dead;
        uint8_t cid[SHOAL__ID_BYTES];
        err = shoal__stxn_log_entry(t, pos, &env, &link, &dead, cid);
        if (err)
            break;
        /* The peer's own changes are not skipped as such: a partial peer
         * evicts them with the document, and one that holds it again may
         * lack them.  Those behind its heads are. */
        bool skip = dead || (hb && shoal__map_get(&f->anc, cid, SHOAL__ID_BYTES)) ||
                    (in && pos < f->cursor);
        if (!err && !skip) {
            if (f->ncpos == f->capcpos) {
                size_t cap = f->capcpos ? f->capcpos * 2 : 64;
                uint64_t *p = shoal__realloc(f->cpos, cap * sizeof *p);
                if (!p) {
                    err = SHOAL_ENOMEM;
                    break;
                }
                f->cpos = p;
                f->capcpos = cap;
            }
            f->cpos[f->ncpos++] = pos;
        }
        pos = link;
    }
    shoal__dmeta_clear(&m);
    if (err)
        return err;
    if (f->ncpos > 1)
        qsort(f->cpos, f->ncpos, sizeof *f->cpos, pos_cmp);
    /* The peer holds all of it now: its new changes follow (STAY), also
     * when it is to leave, until the peer says it let it go (HAVE). */
    free_val(shoal__map_take(&f->held, key, klen));
    uint64_t last = 0;
    err = shoal__stxn_log_last(t, &last, NULL);
    if (err == SHOAL_ENOTFOUND)
        err = SHOAL_OK;
    if (!err)
        err = shoal__map_put(&f->inview, key, klen, (void *)(uintptr_t)(last + 1));
    return err;
}

/* ------------------------------------------------------------- building */

typedef struct build_ctx {
    shoal__feed *f;
    shoal__stxn *t;
    shoal__map set; /* keys listed */
    const char *coll;
    size_t clen;
    int err;
} build_ctx;

static int
list_add(shoal__feed *f, const uint8_t *key, size_t klen, uint8_t what)
{
    if (f->nlist == f->caplist) {
        size_t cap = f->caplist ? f->caplist * 2 : 64;
        fkey *p = shoal__realloc(f->list, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        f->list = p;
        f->caplist = cap;
    }
    uint8_t *k = shoal__malloc(klen);
    if (!k)
        return SHOAL_ENOMEM;
    memcpy(k, key, klen);
    f->list[f->nlist++] = (fkey){ k, klen, what };
    return SHOAL_OK;
}

static int
build_cb(const uint8_t *id, size_t idlen, shoal__qscratch *s, void *arg)
{
    (void)s;
    build_ctx *b = arg;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, (const uint8_t *)b->coll, b->clen, id, idlen);
    if (shoal__map_get(&b->set, key, klen))
        return 0;
    if (!b->f->rd.all && b->t) {
        /* and the peer's roles read it */
        shoal__sval v;
        bool ok = false;
        int err = shoal__stxn_qview_get(b->t, (const uint8_t *)b->coll, b->clen, id, idlen, &v);
        if (!err)
            err = shoal__reader_reads(&b->f->rd, b->f->r, b->t, (const uint8_t *)b->coll, b->clen,
                                      id, idlen, &v, &b->f->sc, false, &ok);
        if (err == SHOAL_ENOTFOUND)
            err = SHOAL_OK;
        if (err || !ok)
            return err;
    }
    int err = shoal__map_put(&b->set, key, klen, (void *)1);
    if (!err)
        err = list_add(b->f, key, klen, W_SEND);
    return err;
}

static int
key_cmp(const void *a, const void *b)
{
    const fkey *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen < y->klen ? -1 : x->klen > y->klen);
}

/* Every document of `_auth`, for the initial send (auth_in_view). */
static int
build_auth_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
              const shoal__sval *meta, void *arg)
{
    (void)coll;
    (void)clen;
    (void)meta;
    build_ctx *b = arg;
    return build_cb(id, idlen, NULL, b);
}

static int
build(shoal__feed *f, shoal__stxn *t)
{
    build_ctx b = { .f = f, .t = t };
    shoal__map_init(&b.set);
    int err = SHOAL_OK;
    if (f->named)
        f->rd.all = f->rd.loaded = true;
    else
        err = shoal__reader_fresh(&f->rd, f->r, t, f->peer);
    f->recheck = false;
    if (!err && auth_in_view(f, (const uint8_t *)"_auth", 5)) {
        b.coll = "_auth";
        b.clen = 5;
        err = shoal__stxn_doc_scan(t, (const uint8_t *)b.coll, b.clen, build_auth_cb, &b);
    }
    for (size_t i = 0; !err && i < f->nsubs; i++) {
        b.coll = f->subs[i].coll;
        b.clen = f->subs[i].clen;
        err = shoal__query_each(f->r, t, f->subs[i].q, build_cb, &b);
    }
    /* What the peer holds that is not in view here. */
    for (size_t i = 0; !err && i < f->held.cap; i++) {
        const uint8_t *key = f->held.s[i].key;
        size_t klen = f->held.s[i].klen;
        if (!key || shoal__map_get(&b.set, key, klen))
            continue;
        const uint8_t *nul = memchr(key, 0, klen);
        size_t clen = (size_t)(nul - key);
        shoal__sval mv;
        err = shoal__stxn_doc_get(t, key, clen, nul + 1, klen - clen - 1, &mv);
        if (err == SHOAL_ENOTFOUND) {
            /* It left our own view (we evicted it): the peer is told, as
             * what it receives from us can no longer keep it up to date
             * (should a sender that holds it find it in the peer's view,
             * that one sends it again).  One we never held is not ours to
             * judge. */
            err = SHOAL_OK;
            if (shoal__stxn_stub_has(t, key, clen, nul + 1, klen - clen - 1))
                err = list_add(f, key, klen, W_LEAVE);
            continue;
        }
        /* What the peer lacks of it (a delete, the changes that moved
         * it out), then LEAVE: the peer judges it on a state at least as
         * new as ours. */
        if (!err)
            err = list_add(f, key, klen, W_SEND_LEAVE);
    }
    shoal__map_clear(&b.set, NULL);
    if (err)
        return err;
    if (f->nlist > 1)
        qsort(f->list, f->nlist, sizeof *f->list, key_cmp);
    uint64_t last = 0;
    err = shoal__stxn_log_last(t, &last, NULL);
    if (err == SHOAL_ENOTFOUND)
        err = SHOAL_OK;
    f->cursor = last + 1;
    f->phase = PH_INITIAL;
    return err;
}

/* ------------------------------------------------------------- sending */

typedef struct next_ctx {
    shoal__feed *f;
    size_t max_changes, max_bytes;
    shoal__buf *envs;
    shoal__feed_out *out;
    uint64_t top; /* the highest log position sent */
} next_ctx;

static bool
batch_full(const next_ctx *x, size_t len)
{
    return x->out->count >= x->max_changes ||
           (x->out->count > 0 && x->envs->len + len > x->max_bytes);
}

/* Send the current document's positions while the batch has room; true
 * when they are all out. */
static int
send_current(next_ctx *x, shoal__stxn *t, bool *done)
{
    shoal__feed *f = x->f;
    *done = false;
    while (f->cat < f->ncpos) {
        shoal__sval env;
        int err = shoal__stxn_log_get(t, f->cpos[f->cat], &env, NULL);
        if (err == SHOAL_ENOTFOUND) { /* evicted meanwhile */
            f->cat++;
            continue;
        }
        if (err)
            return err;
        if (batch_full(x, env.len))
            return SHOAL_OK;
        err = append_env(f, t, NULL, env.p, env.len, x->envs);
        if (err)
            return err;
        if (f->cpos[f->cat] > x->top)
            x->top = f->cpos[f->cat];
        x->out->count++;
        f->cat++;
    }
    if (f->cleave) {
        f->leave_due = true;
        f->cleave = false;
    }
    *done = true;
    return SHOAL_OK;
}

/* Make key's LEAVE the next thing to send; nothing else of a document is
 * being sent then. */
static void
due_leave(shoal__feed *f, const uint8_t *key, size_t klen)
{
    memcpy(f->ckey, key, klen);
    f->cklen = klen;
    f->ncpos = f->cat = 0;
    f->leave_due = true;
}

/* The LEAVE for ckey, with our heads of it in snapshot t (every change
 * behind them was sent).  None when we no longer hold it (o stays NONE,
 * moved: the session asks again). */
static int
emit_leave(shoal__feed *f, shoal__stxn *t, shoal__feed_out *o)
{
    f->leave_due = false;
    const uint8_t *nul = memchr(f->ckey, 0, f->cklen);
    size_t clen = (size_t)(nul - f->ckey);
    if (f->leave_behind || f->leave_gone) {
        o->kind = SHOAL__FEED_LEAVE;
        o->clen = clen;
        memcpy(o->coll, f->ckey, clen);
        o->idlen = f->cklen - clen - 1;
        memcpy(o->id, nul + 1, o->idlen);
        o->reason = f->leave_gone ? SHOAL__LEAVE_GONE : SHOAL__LEAVE_BEHIND;
        o->heads = f->leave_gone ? NULL : f->lheads;
        o->nheads = f->leave_gone ? 0 : f->nlheads;
        f->leave_behind = f->leave_gone = false;
        return SHOAL_OK;
    }
    shoal__dmeta m;
    int err = shoal__dmeta_get(t, f->ckey, f->cklen, &m);
    if (err == SHOAL_ENOTFOUND) {
        o->moved = true;
        return SHOAL_OK;
    }
    if (err)
        return err;
    size_t nh = m.nheads > SHOAL__MAX_HEADS ? SHOAL__MAX_HEADS : m.nheads;
    if (nh > f->caplheads) {
        uint8_t *p = shoal__realloc(f->lheads, nh * SHOAL__ID_BYTES);
        if (!p) {
            shoal__dmeta_clear(&m);
            return SHOAL_ENOMEM;
        }
        f->lheads = p;
        f->caplheads = nh;
    }
    if (nh)
        memcpy(f->lheads, m.heads, nh * SHOAL__ID_BYTES);
    shoal__dmeta_clear(&m);
    o->kind = SHOAL__FEED_LEAVE;
    o->clen = clen;
    memcpy(o->coll, f->ckey, clen);
    o->idlen = f->cklen - clen - 1;
    memcpy(o->id, nul + 1, o->idlen);
    o->reason = SHOAL__LEAVE_NOMATCH;
    o->heads = f->lheads;
    o->nheads = nh;
    return SHOAL_OK;
}

static int
initial_step(next_ctx *x, shoal__stxn *t)
{
    shoal__feed *f = x->f;
    for (;;) {
        if (f->cat < f->ncpos || f->cleave) {
            bool done;
            int err = send_current(x, t, &done);
            if (err || !done)
                return err;
        }
        if (f->leave_due)
            return x->out->count == 0 ? emit_leave(f, t, x->out) : SHOAL_OK;
        if (f->at == f->nlist) {
            if (x->out->count == 0) {
                x->out->kind = SHOAL__FEED_COMPLETE;
                f->phase = PH_LIVE;
            }
            return SHOAL_OK;
        }
        fkey *k = &f->list[f->at++];
        if (k->what == W_LEAVE) {
            due_leave(f, k->key, k->klen);
            f->leave_gone = true;
            continue;
        }
        int err = start_doc(f, t, k->key, k->klen, k->what == W_SEND_LEAVE);
        if (err)
            return err;
    }
}

/* ------------------------------------------------------------- the hub */

static void
fvec_free(void *p)
{
    fvec *v = p;
    if (v) {
        shoal__free(v->v);
        shoal__free(v);
    }
}

static int
hub_file(shoal__map *m, const uint8_t *key, size_t klen, shoal__feed *f, size_t sub)
{
    fvec *v = shoal__map_get(m, key, klen);
    if (!v) {
        v = shoal__calloc(1, sizeof *v);
        if (!v || shoal__map_put(m, key, klen, v) != SHOAL_OK) {
            shoal__free(v);
            return SHOAL_ENOMEM;
        }
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        fsubref *p = shoal__realloc(v->v, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = (fsubref){ f, sub };
    return SHOAL_OK;
}

static void
hub_unfile(shoal__map *m, const uint8_t *key, size_t klen, const shoal__feed *f)
{
    fvec *v = shoal__map_get(m, key, klen);
    if (!v)
        return;
    size_t w = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i].f != f)
            v->v[w++] = v->v[i];
    v->n = w;
    if (w == 0)
        fvec_free(shoal__map_take(m, key, klen));
}

/* Remember key (and which map: 0 anchors, 1 residual, 2 afields) in
 * f->akeys, to take f out again. */
static int
note_key(shoal__feed *f, const uint8_t *key, size_t klen, uint8_t which)
{
    uint8_t h[2];
    shoal__be16_put(h, (uint16_t)klen);
    int err = shoal__buf_append(&f->akeys, h, 2);
    if (!err)
        err = shoal__buf_append(&f->akeys, key, klen);
    if (!err)
        err = shoal__buf_append(&f->akeys, &which, 1);
    return err;
}

/* File f's subscriptions in the hub (caller holds r->mu). */
static int
hub_add(shoal__feed *f)
{
    shoal_replica *r = f->r;
    if (!r->feeds) {
        r->feeds = shoal__calloc(1, sizeof *r->feeds);
        if (!r->feeds)
            return SHOAL_ENOMEM;
        shoal__map_init(&r->feeds->anchors);
        shoal__map_init(&r->feeds->residual);
        shoal__map_init(&r->feeds->afields);
    }
    struct shoal__feedhub *h = r->feeds;
    h->epoch++;
    int err = SHOAL_OK;
    for (size_t i = 0; !err && i < f->nsubs; i++) {
        const fsub *s = &f->subs[i];
        const char *c;
        size_t cl;
        const shoal__query *q = shoal__query_of(s->q, &c, &cl);
        shoal__qterm *terms = NULL;
        size_t nt = 0;
        err = shoal__query_terms(q, &terms, &nt);
        const shoal__qterm *a = NULL;
        for (size_t k = 0; !err && k < nt && !a; k++)
            if (terms[k].kind == SHOAL__QT_EQ && !terms[k].contains && terms[k].nvals > 0)
                a = &terms[k];
        uint8_t key[SHOAL_MAX_COLLECTION + SHOAL_MAX_FIELD + 2 + SHOAL__QKEY_MAX];
        if (!err && a) {
            memcpy(key, s->coll, s->clen);
            key[s->clen] = 0;
            memcpy(key + s->clen + 1, a->field, a->field_len);
            size_t fl = s->clen + 1 + a->field_len;
            uintptr_t refs = (uintptr_t)shoal__map_get(&h->afields, key, fl);
            err = shoal__map_put(&h->afields, key, fl, (void *)(refs + 1));
            if (!err)
                err = note_key(f, key, fl, 2);
            key[fl] = 0;
            for (size_t v = 0; !err && v < a->nvals; v++) {
                size_t kl = fl + 1 + shoal__qkey(&a->vals[v], key + fl + 1);
                err = hub_file(&h->anchors, key, kl, f, i);
                if (!err)
                    err = note_key(f, key, kl, 0);
            }
        } else if (!err) {
            err = hub_file(&h->residual, (const uint8_t *)s->coll, s->clen, f, i);
            if (!err)
                err = note_key(f, (const uint8_t *)s->coll, s->clen, 1);
        }
        shoal__free(terms);
    }
    return err;
}

/* Take f out of the hub (caller holds r->mu). */
static void
hub_remove(shoal__feed *f)
{
    struct shoal__feedhub *h = f->r->feeds;
    if (!h)
        return;
    h->epoch++;
    for (size_t off = 0; off + 2 <= f->akeys.len;) {
        size_t kl = shoal__be16_get(f->akeys.p + off);
        const uint8_t *k = f->akeys.p + off + 2;
        uint8_t which = k[kl];
        if (which == 0)
            hub_unfile(&h->anchors, k, kl, f);
        else if (which == 1)
            hub_unfile(&h->residual, k, kl, f);
        else {
            uintptr_t refs = (uintptr_t)shoal__map_get(&h->afields, k, kl);
            if (refs <= 1)
                (void)shoal__map_take(&h->afields, k, kl);
            else
                (void)shoal__map_put(&h->afields, k, kl, (void *)(refs - 1));
        }
        off += 2 + kl + 1;
    }
    f->akeys.len = 0;
}

void
shoal__feedhub_free(shoal_replica *r)
{
    struct shoal__feedhub *h = r->feeds;
    if (!h)
        return;
    shoal__map_clear(&h->anchors, fvec_free);
    shoal__map_clear(&h->residual, fvec_free);
    shoal__map_clear(&h->afields, NULL);
    for (size_t i = 0; i < CAND_RING; i++) {
        shoal__free(h->ring[i].r);
        shoal__free(h->ring[i].f);
        shoal__buf_free(&h->ring[i].view);
    }
    shoal__qscratch_free(&h->sc);
    shoal__free(h);
    r->feeds = NULL;
}

static int
ref_cmp(const void *a, const void *b)
{
    const fsubref *x = a, *y = b;
    if (x->f != y->f)
        return (uintptr_t)x->f < (uintptr_t)y->f ? -1 : 1;
    return x->sub < y->sub ? -1 : x->sub > y->sub;
}

static int
cand_add(cand *c, const fvec *v)
{
    for (size_t i = 0; v && i < v->n; i++) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 8;
            fsubref *p = shoal__realloc(c->r, cap * sizeof *p);
            if (!p)
                return SHOAL_ENOMEM;
            c->r = p;
            c->cap = cap;
        }
        c->r[c->n++] = v->v[i];
    }
    return SHOAL_OK;
}

/* The document of log position pos (coll, id) as every feed judges it:
 * its view, read and parsed once per position in snapshot t, and the
 * subscriptions that may match it; *out Borrowed until the hub changes. */
static int
candidates(shoal__feed *f, shoal__stxn *t, uint64_t pos, const uint8_t *coll, size_t clen,
           const uint8_t *id, size_t idlen, const cand **out)
{
    struct shoal__feedhub *h = f->r->feeds;
    cand *c = &h->ring[pos % CAND_RING];
    if (c->pos == pos && c->epoch == h->epoch) {
        *out = c;
        return SHOAL_OK;
    }
    c->pos = 0;
    c->n = 0;
    c->nf = 0;
    c->alive = false;
    c->view.len = 0;
    int err = cand_add(c, shoal__map_get(&h->residual, coll, clen));
    shoal__sval v;
    int e = err ? err : shoal__stxn_qview_get(t, coll, clen, id, idlen, &v);
    if (e && e != SHOAL_ENOTFOUND)
        return e;
    if (!e) {
        /* The anchored fields of coll, looked up in the document's view. */
        const uint8_t *vp;
        size_t vl;
        bool alive;
        uint64_t epoch;
        err = shoal__qview_split(v.p, v.len, &epoch, &vp, &vl);
        if (!err)
            err = shoal__buf_append(&c->view, vp, vl);
        if (!err)
            err = shoal__qview_parse(c->view.p, c->view.len, &c->f, &c->fcap, &c->nf, &alive);
        if (err)
            return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
        c->alive = true;
        shoal__qdoc d = { .id = id, .id_len = idlen, .fields = c->f, .nfields = c->nf };
        uint8_t key[SHOAL_MAX_COLLECTION + SHOAL_MAX_FIELD + 2 + SHOAL__QKEY_MAX];
        for (size_t i = 0; !err && i < h->afields.cap; i++) {
            const uint8_t *k = h->afields.s[i].key;
            size_t kl = h->afields.s[i].klen;
            if (!k || kl <= clen || k[clen] != 0 || memcmp(k, coll, clen) != 0)
                continue;
            const uint8_t *field = k + clen + 1;
            size_t flen = kl - clen - 1;
            shoal__qfield idf;
            const shoal__qfield *fl;
            if (flen == 3 && memcmp(field, "_id", 3) == 0) {
                memset(&idf, 0, sizeof idf);
                idf.kind = SHOAL_K_REGISTER;
                idf.value.type = SHOAL_T_STR;
                idf.value.ptr = id;
                idf.value.len = idlen;
                fl = &idf;
            } else {
                fl = shoal__qdoc_field(&d, field, flen);
            }
            if (!fl || fl->kind == SHOAL_K_LIST)
                continue; /* absent (null) matches no anchor value; lists neither */
            memcpy(key, k, kl);
            key[kl] = 0;
            size_t full = kl + 1 + shoal__qkey(&fl->value, key + kl + 1);
            err = cand_add(c, shoal__map_get(&h->anchors, key, full));
        }
    }
    if (err)
        return err;
    if (c->n > 1)
        qsort(c->r, c->n, sizeof *c->r, ref_cmp);
    c->pos = pos;
    c->epoch = h->epoch;
    *out = c;
    return SHOAL_OK;
}

/* The first of f's pairs in c (index), or c->n if none. */
static size_t
cand_first(const cand *c, const shoal__feed *f)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)c->r[mid].f < (uintptr_t)f)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->r[lo].f == f ? lo : c->n;
}

/* Whether the document of c matches one of f's subscriptions: all of them
 * when the peer holds it (stay or leave), else only the candidates.  The
 * shared parse answers unless a long list left out of the view is needed:
 * then the document itself is judged. */
static int
cand_match(shoal__feed *f, shoal__stxn *t, const cand *c, bool all, const uint8_t *coll,
           size_t clen, const uint8_t *id, size_t idlen, bool *match)
{
    *match = false;
    if (!c->alive)
        return SHOAL_OK;
    shoal__qdoc d = { .id = id, .id_len = idlen, .fields = c->f, .nfields = c->nf };
    size_t at = all ? 0 : cand_first(c, f);
    for (size_t i = 0; i < f->nsubs && !*match; i++) {
        const fsub *s = &f->subs[i];
        if (s->clen != clen || memcmp(s->coll, coll, clen) != 0)
            continue;
        if (!all) {
            while (at < c->n && c->r[at].f == f && c->r[at].sub < i)
                at++;
            if (at >= c->n || c->r[at].f != f || c->r[at].sub != i)
                continue;
        }
        const char *qc;
        size_t qcl;
        int m = shoal__query_eval(shoal__query_of(s->q, &qc, &qcl), &d);
        if (m == SHOAL__Q_NEEDLIST)
            return judge(f, t, coll, clen, id, idlen, match);
        if (m < 0)
            return SHOAL_ECORRUPT;
        *match = m == 1;
    }
    if (*match && !f->rd.all) {
        /* and the peer's roles read it (the same parse serves) */
        int m = shoal__reader_match(&f->rd, coll, clen, &d);
        if (m == SHOAL__Q_NEEDLIST)
            return judge(f, t, coll, clen, id, idlen, match);
        *match = m == 1;
    }
    return SHOAL_OK;
}

typedef struct live_ctx {
    next_ctx *x;
    shoal__stxn *t;
    size_t examined;
    int err;
    bool stop;
} live_ctx;

static int
live_cb(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    live_ctx *c = arg;
    next_ctx *x = c->x;
    shoal__feed *f = x->f;
    if (c->examined >= SHOAL__HOST_SCAN || batch_full(x, env->len)) {
        c->stop = true;
        return 1;
    }
    c->examined++;
    size_t elen, blen, ndeps, clen, dlen;
    const uint8_t *body, *deps, *coll, *doc;
    uint64_t seq;
    if (shoal__envelope_parse(env->p, env->len, &elen, &body, &blen) ||
        peek_body(body, blen, &seq, &deps, &ndeps, &coll, &clen, &doc, &dlen)) {
        c->err = SHOAL_ECORRUPT;
        return 1;
    }
    f->cursor = pos + 1;
    bool by_peer = memcmp(shoal__envelope_author(env->p), f->peer, SHOAL_KEY_BYTES) == 0;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, doc, dlen);
    bool has;
    uintptr_t upto = inview_get(f, key, klen, &has);
    bool match = auth_in_view(f, coll, clen);
    /* A revocation (or an equivocation proof) changes documents' state without a change of theirs
     * (VOID): every document is judged again once it has been sent. */
    if (match && shoal__auth_cut_doc(doc, dlen))
        f->revoked_seen = true;
    if (!match && in_subs_coll(f, coll, clen)) {
        /* Not in the peer's view: only a subscription that can match it
         * needs a look (the hub's candidates); in it: all of the peer's. */
        const cand *cd;
        c->err = candidates(f, c->t, pos, coll, clen, doc, dlen, &cd);
        if (c->err)
            return 1;
        if (has || cand_first(cd, f) != cd->n)
            c->err = cand_match(f, c->t, cd, has, coll, clen, doc, dlen, &match);
        if (c->err)
            return 1;
    }
    if (!has && !match) {
        /* The peer wrote to a document outside its view (on our state): it
         * holds it, so it gets what it lacks of it, then LEAVE. */
        if (!by_peer)
            return 0;
        c->err = start_doc(f, c->t, key, klen, true);
        c->stop = true;
        return 1;
    }
    /* What the peer itself sent us on this link is not echoed.  (Its own
     * changes that reach us by another way are sent: it may have evicted
     * them with the document since.) */
    bool own = shoal__map_take(&f->frompeer, cid, SHOAL__ID_BYTES) != NULL;
    if (has) {
        /* STAY: every new change of a document the peer holds, whether it
         * still matches or not (a delete too: it must reach every holder),
         * so that a LEAVE comes after everything we hold of it. */
        if (pos > upto && !own) {
            c->err = append_env(f, c->t, cid, env->p, env->len, x->envs);
            if (c->err)
                return 1;
            x->out->count++;
            if (pos > x->top)
                x->top = pos;
        }
        if (!match) {
            /* LEAVE after the batch, once this is the document's newest
             * change (later ones are on their way in this walk). */
            shoal__dmeta m;
            int err = shoal__dmeta_get(c->t, key, klen, &m);
            if (!err) {
                if (m.last_pos <= pos) {
                    due_leave(f, key, klen);
                    c->stop = true;
                }
                shoal__dmeta_clear(&m);
            }
            if (err && err != SHOAL_ENOTFOUND)
                c->err = err;
            return c->stop || c->err ? 1 : 0;
        }
        return 0;
    }
    if (!match)
        return 0;
    /* ENTER: the whole document (what the peer lacks of it). */
    c->err = start_doc(f, c->t, key, klen, false);
    c->stop = true;
    return 1;
}

static int
lq_add(shoal__feed *f, const uint8_t *key, size_t klen, uint8_t what)
{
    if (f->nlq == f->caplq) {
        if (f->lqat > 0) { /* reuse the front */
            memmove(f->lq, f->lq + f->lqat, (f->nlq - f->lqat) * sizeof *f->lq);
            f->nlq -= f->lqat;
            f->lqat = 0;
        }
        if (f->nlq == f->caplq) {
            size_t cap = f->caplq ? f->caplq * 2 : 16;
            fkey *p = shoal__realloc(f->lq, cap * sizeof *p);
            if (!p)
                return SHOAL_ENOMEM;
            f->lq = p;
            f->caplq = cap;
        }
    }
    uint8_t *k = shoal__malloc(klen);
    if (!k)
        return SHOAL_ENOMEM;
    memcpy(k, key, klen);
    f->lq[f->nlq++] = (fkey){ k, klen, what };
    return SHOAL_OK;
}

/* Documents we evicted since the last look (they left our own view):
 * those in the peer's view leave inview, and the peer is told (GONE).
 * When more changed than the replica remembers, every document in inview
 * is looked up. */
static int
evictions(shoal__feed *f, shoal__stxn *t)
{
    shoal_replica *r = f->r;
    uint64_t gen = atomic_load(&r->held_gen);
    if (f->held_seen == gen)
        return SHOAL_OK;
    int err = SHOAL_OK;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen;
    bool all = false;
    for (uint64_t g = f->held_seen; !err && !all && g < gen; g++) {
        err = shoal__subs_held_key(r, g, key, &klen);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK;
            all = true;
            break;
        }
        const uint8_t *nul = memchr(key, 0, klen);
        size_t clen = (size_t)(nul - key);
        shoal__sval mv;
        if (!err && shoal__map_get(&f->inview, key, klen)) {
            err = shoal__stxn_doc_get(t, key, clen, nul + 1, klen - clen - 1, &mv);
            if (err == SHOAL_ENOTFOUND) {
                (void)shoal__map_take(&f->inview, key, klen);
                err = lq_add(f, key, klen, W_LEAVE);
            }
        }
    }
    for (size_t i = 0; !err && all && i < f->inview.cap; i++) {
        const uint8_t *k = f->inview.s[i].key;
        if (!k)
            continue;
        size_t kl = f->inview.s[i].klen;
        const uint8_t *nul = memchr(k, 0, kl);
        size_t clen = (size_t)(nul - k);
        shoal__sval mv;
        err = shoal__stxn_doc_get(t, k, clen, nul + 1, kl - clen - 1, &mv);
        if (err == SHOAL_ENOTFOUND)
            err = lq_add(f, k, kl, W_LEAVE);
    }
    /* (Taken out of inview after the scan, which must not see it change.) */
    for (size_t i = f->lqat; !err && all && i < f->nlq; i++)
        if (f->lq[i].what == W_LEAVE)
            (void)shoal__map_take(&f->inview, f->lq[i].key, f->lq[i].klen);
    if (!err)
        f->held_seen = gen;
    return err;
}

/* Judge key again after the peer's HAVE: it holds none of it, or part of
 * it without our knowing.  A document in the peer's view goes whole
 * (what the peer lacks of it); one the peer holds outside it gets what it
 * lacks, then LEAVE. */
static int
rejudge(shoal__feed *f, shoal__stxn *t, const uint8_t *key, size_t klen)
{
    if (shoal__map_get(&f->inview, key, klen))
        return SHOAL_OK; /* its changes go as they come */
    const uint8_t *nul = memchr(key, 0, klen);
    size_t clen = (size_t)(nul - key);
    shoal__sval mv;
    int err = shoal__stxn_doc_get(t, key, clen, nul + 1, klen - clen - 1, &mv);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err; /* not ours to judge */
    bool match = false;
    err = judge(f, t, key, clen, nul + 1, klen - clen - 1, &match);
    if (err)
        return err;
    const uint8_t *hb = shoal__map_get(&f->held, key, klen);
    if (!match && !hb)
        return SHOAL_OK;
    if (!match) {
        /* When we hold all the peer holds of it, LEAVE at once with its
         * own heads (it lets go if it holds no more by then): sending it
         * what it lacks first would only bring it back to a peer that let
         * it go meanwhile. */
        size_t nh = shoal__be32_get(hb);
        bool all = true;
        for (size_t i = 0; all && i < nh; i++)
            all = shoal__stxn_change_has(t, hb + 4 + i * SHOAL__ID_BYTES);
        if (all && nh > 0) {
            if (nh > f->caplheads) {
                uint8_t *p = shoal__realloc(f->lheads, nh * SHOAL__ID_BYTES);
                if (!p)
                    return SHOAL_ENOMEM;
                f->lheads = p;
                f->caplheads = nh;
            }
            memcpy(f->lheads, hb + 4, nh * SHOAL__ID_BYTES);
            f->nlheads = nh;
            due_leave(f, key, klen);
            f->leave_behind = true;
            return SHOAL_OK;
        }
    }
    return start_doc(f, t, key, klen, !match);
}

/* The documents of the peer's subscriptions not in its view that it may
 * read now, and every one in it, to be judged again (W_RECHECK). */
static int
recheck_cb(const uint8_t *id, size_t idlen, shoal__qscratch *s, void *arg)
{
    (void)s;
    build_ctx *b = arg;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, (const uint8_t *)b->coll, b->clen, id, idlen);
    if (shoal__map_get(&b->f->inview, key, klen) || shoal__map_get(&b->set, key, klen))
        return 0;
    int err = shoal__map_put(&b->set, key, klen, (void *)1);
    return err ? err : lq_add(b->f, key, klen, W_RECHECK);
}

/* Authority changed (an `_auth` document, or the clock passed a bound of
 * the peer's certificate): once the walk has sent every change up to the
 * log's end as it was then (the authority among them, so the peer judges
 * its own view on it too), load the reader again and judge every
 * document again. */
static int
recheck(shoal__feed *f, shoal__stxn *t)
{
    shoal_replica *r = f->r;
    if (!r->enforce)
        return SHOAL_OK;
    uint64_t gen = atomic_load(&r->auth_gen);
    if (!f->recheck) {
        if (gen == f->rd.gen && (f->rd.all || shoal__wall_ms(r) <= f->rd.until_ms))
            return SHOAL_OK;
        uint64_t last = 0;
        int err = shoal__stxn_log_last(t, &last, NULL);
        if (err && err != SHOAL_ENOTFOUND)
            return err;
        f->recheck = true;
        f->recheck_at = last;
    }
    if (f->cursor <= f->recheck_at)
        return SHOAL_OK;
    f->recheck = false;
    int err = SHOAL_OK;
    bool same;
    if (f->rd.all) {
        /* everything readable (the root, a named peer): only a revocation
         * (VOID changes states) calls for judging again */
        f->rd.gen = gen;
        same = !f->revoked_seen;
    } else {
        /* The same policy and certificate as before (another key's
         * authority changed), and no revocation: nothing to judge again. */
        shoal__buf before;
        shoal__buf_init(&before);
        err = shoal__reader_sig(&f->rd, &before);
        f->rd.loaded = false;
        if (!err)
            err = shoal__reader_fresh(&f->rd, r, t, f->peer);
        shoal__buf after;
        shoal__buf_init(&after);
        if (!err)
            err = shoal__reader_sig(&f->rd, &after);
        same = !err && !f->revoked_seen && before.len == after.len &&
               memcmp(before.p, after.p, before.len) == 0;
        shoal__buf_free(&before);
        shoal__buf_free(&after);
    }
    f->revoked_seen = false;
    if (err || same)
        return err;
    build_ctx b = { .f = f, .t = t };
    shoal__map_init(&b.set);
    for (size_t i = 0; !err && i < f->inview.cap; i++)
        if (f->inview.s[i].key)
            err = lq_add(f, f->inview.s[i].key, f->inview.s[i].klen, W_RECHECK);
    for (size_t i = 0; !err && i < f->nsubs; i++) {
        b.coll = f->subs[i].coll;
        b.clen = f->subs[i].clen;
        err = shoal__query_each(r, t, f->subs[i].q, recheck_cb, &b);
    }
    shoal__map_clear(&b.set, NULL);
    return err;
}

/* Judge key again after the peer's read rights changed: one in its view
 * that it may no longer read gets the rest of its changes, then LEAVE;
 * one out of it that it may read now goes whole (ENTER). */
static int
rejudge_rights(shoal__feed *f, shoal__stxn *t, const uint8_t *key, size_t klen)
{
    const uint8_t *nul = memchr(key, 0, klen);
    size_t clen = (size_t)(nul - key);
    bool in = shoal__map_get(&f->inview, key, klen) != NULL;
    bool match = false;
    int err = judge(f, t, key, clen, nul + 1, klen - clen - 1, &match);
    if (err || match == in)
        return err;
    err = start_doc(f, t, key, klen, in);
    return err;
}

static int
live_step(next_ctx *x, shoal__stxn *t)
{
    shoal__feed *f = x->f;
    int err = evictions(f, t);
    if (!err)
        err = recheck(f, t);
    if (err)
        return err;
    while (f->lqat < f->nlq && f->cat >= f->ncpos && !f->leave_due && !f->cleave) {
        fkey *k = &f->lq[f->lqat++];
        if (k->what == W_LEAVE) {
            due_leave(f, k->key, k->klen);
            f->leave_gone = true;
        } else if (k->what == W_RECHECK) {
            err = rejudge_rights(f, t, k->key, k->klen);
        } else {
            err = rejudge(f, t, k->key, k->klen);
        }
        shoal__free(k->key);
        if (err)
            return err;
    }
    if (f->leave_due && x->out->count == 0)
        return emit_leave(f, t, x->out);
    for (;;) {
        if (f->cat < f->ncpos || f->cleave) {
            bool done;
            err = send_current(x, t, &done);
            if (err || !done)
                return err;
        }
        if (f->leave_due)
            return x->out->count == 0 ? emit_leave(f, t, x->out) : SHOAL_OK;
        live_ctx c = { .x = x, .t = t };
        uint64_t from = f->cursor;
        err = shoal__stxn_log_scan(t, f->cursor, live_cb, &c);
        if (c.err)
            return c.err;
        /* The scan returns the callback's stop value (1) as it came. */
        if (err && !c.stop)
            return err;
        err = SHOAL_OK;
        if (f->cat < f->ncpos || f->leave_due || f->cleave)
            continue; /* an ENTER or a LEAVE to send */
        /* A look that found nothing but moved on: the session asks again
         * (r->mu is free in between), as for next_changes. */
        x->out->moved = f->cursor != from;
        return SHOAL_OK;
    }
}

typedef struct step_ctx {
    next_ctx *x;
} step_ctx;

static int
step_fn(shoal__stxn *t, void *arg)
{
    next_ctx *x = arg;
    shoal__feed *f = x->f;
    int err = SHOAL_OK;
    if (f->phase == PH_BUILD)
        err = build(f, t);
    if (!err && f->phase == PH_INITIAL)
        err = initial_step(x, t);
    if (!err && f->phase == PH_LIVE && x->out->kind == SHOAL__FEED_NONE)
        err = live_step(x, t);
    return err;
}

int
shoal__feed_next(shoal_replica *r, shoal__feed *f, size_t max_changes, size_t max_bytes,
                 shoal__buf *envs, shoal__feed_out *out)
{
    memset(out, 0, sizeof *out);
    if (max_changes == 0)
        return SHOAL_OK;
    size_t start = envs->len;
    next_ctx x = { f, max_changes, max_bytes, envs, out, 0 };
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, step_fn, &x);
    pthread_mutex_unlock(&r->mu);
    if (!err && out->count > 0)
        out->kind = SHOAL__FEED_BATCH;
    /* Only durable changes leave (as in next_changes). */
    if (!err && out->count > 0 && !r->opt.durable && x.top >= atomic_load(&r->synced_pos)) {
        err = shoal__store_flush(r->store);
        if (!err) {
            uint64_t had = atomic_load(&r->synced_pos);
            while (had < x.top + 1 &&
                   !atomic_compare_exchange_weak(&r->synced_pos, &had, x.top + 1))
                ;
        }
    }
    if (err) {
        envs->len = start;
        memset(out, 0, sizeof *out);
    }
    return err;
}

/* ----------------------------------------------------------- lifecycle */

void
shoal__feed_free(shoal__feed *f)
{
    if (!f)
        return;
    if (f->akeys.len) {
        pthread_mutex_lock(&f->r->mu);
        hub_remove(f);
        pthread_mutex_unlock(&f->r->mu);
    }
    shoal__buf_free(&f->akeys);
    for (size_t i = 0; i < f->nsubs; i++)
        shoal_query_free(f->subs[i].q);
    shoal__free(f->subs);
    shoal__map_clear(&f->held, free_val);
    shoal__map_clear(&f->inview, NULL);
    shoal__map_clear(&f->frompeer, NULL);
    shoal__map_clear(&f->anc, NULL);
    for (size_t i = 0; i < f->nlist; i++)
        shoal__free(f->list[i].key);
    shoal__free(f->list);
    for (size_t i = f->lqat; i < f->nlq; i++)
        shoal__free(f->lq[i].key);
    shoal__free(f->lq);
    shoal__free(f->lheads);
    shoal__free(f->cpos);
    shoal__qscratch_free(&f->sc);
    shoal__qscratch_free(&f->sc_seal);
    shoal__authz_cache_free(f->authz);
    shoal__reader_free(&f->rd);
    shoal__free(f);
}

int
shoal__feed_new(shoal_replica *r, const uint8_t peer[SHOAL_KEY_BYTES], bool named,
                const shoal__wsub *subs, size_t nsubs, const shoal__wheld *held, size_t nheld,
                shoal__feed **out)
{
    *out = NULL;
    shoal__feed *f = shoal__calloc(1, sizeof *f);
    if (!f)
        return SHOAL_ENOMEM;
    f->r = r;
    memcpy(f->peer, peer, SHOAL_KEY_BYTES);
    f->held_seen = r->held_gen;
    shoal__reader_init(&f->rd);
    f->named = named;
    shoal__buf_init(&f->akeys);
    shoal__map_init(&f->held);
    shoal__map_init(&f->inview);
    shoal__map_init(&f->frompeer);
    shoal__map_init(&f->anc);
    int err = SHOAL_OK;
    if (nsubs) {
        f->subs = shoal__calloc(nsubs, sizeof *f->subs);
        if (!f->subs)
            err = SHOAL_ENOMEM;
    }
    for (size_t i = 0; !err && i < nsubs; i++) {
        char msg[8];
        fsub *s = &f->subs[i];
        err =
            shoal__query_compile((const char *)subs[i].coll, subs[i].clen,
                                 (const char *)subs[i].where, subs[i].wlen, &s->q, msg, sizeof msg);
        if (!err)
            err = shoal__query_params_decode(s->q, subs[i].params, subs[i].plen);
        if (!err)
            err = shoal__query_check_bound(s->q);
        if (!err) {
            (void)shoal__query_of(s->q, &s->coll, &s->clen);
            f->nsubs = i + 1;
        } else if (s->q) {
            shoal_query_free(s->q);
            s->q = NULL;
        }
    }
    for (size_t i = 0; !err && i < nheld; i++) {
        uint8_t key[SHOAL__DOCKEY_MAX];
        size_t klen = shoal__dockey(key, held[i].coll, held[i].clen, held[i].id, held[i].idlen);
        uint8_t *hb = shoal__malloc(4 + held[i].nheads * SHOAL__ID_BYTES);
        if (!hb) {
            err = SHOAL_ENOMEM;
            break;
        }
        shoal__be32_put(hb, (uint32_t)held[i].nheads);
        if (held[i].nheads)
            memcpy(hb + 4, held[i].heads, held[i].nheads * SHOAL__ID_BYTES);
        free_val(shoal__map_take(&f->held, key, klen));
        err = shoal__map_put(&f->held, key, klen, hb);
        if (err)
            shoal__free(hb);
    }
    if (!err) {
        pthread_mutex_lock(&r->mu);
        err = hub_add(f);
        pthread_mutex_unlock(&r->mu);
    }
    if (err) {
        shoal__feed_free(f);
        /* A predicate that does not compile is the peer's bad input. */
        return err == SHOAL_ENOMEM ? err : SHOAL_EPROTO;
    }
    *out = f;
    return SHOAL_OK;
}

uint64_t
shoal__feed_docs(const shoal__feed *f)
{
    return f->inview.n;
}

int
shoal__feed_have(shoal__feed *f, const shoal__wheld *held, size_t nheld)
{
    int err = SHOAL_OK;
    pthread_mutex_lock(&f->r->mu);
    for (size_t i = 0; !err && i < nheld; i++) {
        uint8_t key[SHOAL__DOCKEY_MAX];
        size_t klen = shoal__dockey(key, held[i].coll, held[i].clen, held[i].id, held[i].idlen);
        free_val(shoal__map_take(&f->held, key, klen));
        if (held[i].nheads == 0) {
            /* It let the document go: should it be in its view on our
             * state, it is sent whole again. */
            (void)shoal__map_take(&f->inview, key, klen);
        } else {
            uint8_t *hb = shoal__malloc(4 + held[i].nheads * SHOAL__ID_BYTES);
            if (!hb) {
                err = SHOAL_ENOMEM;
                break;
            }
            shoal__be32_put(hb, (uint32_t)held[i].nheads);
            memcpy(hb + 4, held[i].heads, held[i].nheads * SHOAL__ID_BYTES);
            err = shoal__map_put(&f->held, key, klen, hb);
            if (err) {
                shoal__free(hb);
                break;
            }
        }
        err = lq_add(f, key, klen, W_SEND);
    }
    pthread_mutex_unlock(&f->r->mu);
    return err;
}

enum {
    FROMPEER_MAX = 1 << 14 /* ids remembered; past it they are forgotten (echoes: no-ops) */
};

void
shoal__feed_received(shoal__feed *f, const uint8_t *envs, size_t len, size_t count)
{
    pthread_mutex_lock(&f->r->mu);
    if (f->frompeer.n + count > FROMPEER_MAX)
        shoal__map_clear(&f->frompeer, NULL);
    size_t off = 0;
    for (size_t i = 0; i < count && off < len; i++) {
        size_t elen, blen;
        const uint8_t *body;
        if (shoal__envelope_parse(envs + off, len - off, &elen, &body, &blen))
            break; /* the import rejects the batch */
        uint8_t cid[SHOAL__ID_BYTES];
        shoal__change_id(envs + off, elen, cid);
        if (shoal__map_put(&f->frompeer, cid, SHOAL__ID_BYTES, (void *)1) != SHOAL_OK)
            break; /* out of memory: echoes only */
        off += elen;
        size_t dl, dc;
        if (shoal__disc_scan(envs + off, len - off, &dl, NULL, &dc))
            break;
        off += dl;
    }
    pthread_mutex_unlock(&f->r->mu);
}
