/*
 * core/subs.c - subscriptions: what a partial replica holds, and how it
 * lets go of what leaves its view (docs/sync.md).
 *
 * A replica with no subscription is full and syncs everything.  One with
 * at least one is partial: its peers send it the documents that match any
 * of its subscriptions on their own state (core/feed.c does that for our
 * peers), and it evicts a document that leaves its view.  The set is kept
 * whole in meta "subs":
 *
 *   [next, [[name str, coll str, where str, params bin, since, complete bool] ...]]
 *
 * next is the set's generation counter: every change of the set takes the
 * next number, and a subscription remembers the one it was created with
 * (since).  A session sends the set with its generation and the peer's
 * COMPLETE for it marks every subscription created up to that generation
 * complete: the peer sent every document that matched at the start.
 *
 * Eviction never loses a write: a document that holds one of our own
 * changes that no full replica is known to hold stays until one is (every
 * author keeps its own changes, so every write survives until a full
 * replica has it).  A full peer's vector (its HELLO, its ACKs) says what
 * it holds; the highest of our own seqs it showed is kept in meta
 * "acked".  The other authors' entries are kept in memory (fullvv) and
 * passed on, as vouched for, in our HELLO and ACKs, so that a partial
 * replica behind us (a device behind a scoped relay) learns that a full
 * replica holds its writes.  Documents told to leave and waiting are
 * kept in memory only: after a restart the sender's summary
 * check names them again.  So eviction is tried when a peer says LEAVE,
 * when the set changes (every held document is judged against the
 * remaining set), and when our acknowledged seq rises (those told to
 * leave; while draining, every held document).  Our own judgement does
 * not evict after an acknowledgement: our copy may be older than the
 * sender's, which says LEAVE for what it judges out of our view (a
 * document we wrote outside it included).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"

typedef struct sub {
    char *name;
    size_t nlen;
    shoal_query *q;  /* compiled, parameters bound; owned */
    uint8_t *params; /* canonical MessagePack, owned */
    size_t plen;
    uint64_t since;
    bool complete;
} sub;

struct shoal__subs {
    sub *s;
    size_t n;
    uint64_t next;              /* generation counter */
    uint64_t acked;             /* our own changes up to it are held by a full peer */
    bool draining;              /* no subscription left, but other authors' changes are
                           still held (meta "draining"): partial until they go */
    _Atomic uint64_t looked_ms; /* monotonic ms of the last look at meta "subs" */
    shoal__map fullvv;  /* author -> owned fullent: a full peer holds its changes up to it */
    shoal__map leaving; /* "coll\0id" -> 1: told to leave, waiting for acks */
    /* The last SHOAL__HELD_RING documents evicted or come to be held
     * (r->held_gen counts them), for the feeds of the peers we serve and
     * the HAVEs we send. */
    uint8_t (*ring)[SHOAL__DOCKEY_MAX];
    uint16_t ringlen[SHOAL__HELD_RING];
    bool ringgone[SHOAL__HELD_RING]; /* evicted (else: came to be held) */
};

/* What a full peer holds of one author: up to seq, whose change is cid. */
typedef struct fullent {
    uint64_t seq;
    uint8_t cid[SHOAL__ID_BYTES];
} fullent;

static void
sub_clear(sub *s)
{
    shoal__free(s->name);
    shoal_query_free(s->q);
    shoal__free(s->params);
    memset(s, 0, sizeof *s);
}

void
shoal__subs_free(shoal_replica *r)
{
    shoal__subs *S = r->subs;
    if (!S)
        return;
    for (size_t i = 0; i < S->n; i++)
        sub_clear(&S->s[i]);
    shoal__free(S->s);
    shoal__map_clear(&S->leaving, NULL);
    shoal__map_clear(&S->fullvv, shoal__free);
    shoal__free(S->ring);
    shoal__free(S);
    r->subs = NULL;
}

static void
publish_gen(shoal_replica *r)
{
    /* A replica that held a view keeps saying so (an empty set) until it
     * holds no other author's change: its version vector has gaps until
     * then, and a full HELLO would claim changes it lacks. */
    atomic_store(&r->subs_gen, r->subs->n || r->subs->draining ? r->subs->next : 0);
}

/* ------------------------------------------------------------- storage */

static int
subs_encode(const shoal__subs *S, shoal__buf *out)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, S->next);
    shoal__mpw_array(&w, (uint32_t)S->n);
    for (size_t i = 0; i < S->n; i++) {
        const sub *s = &S->s[i];
        const char *coll, *text;
        size_t clen, tlen;
        (void)shoal__query_of(s->q, &coll, &clen);
        shoal__query_text(s->q, &text, &tlen);
        shoal__mpw_array(&w, 6);
        shoal__mpw_str(&w, s->name, s->nlen);
        shoal__mpw_str(&w, coll, clen);
        shoal__mpw_str(&w, text, tlen);
        shoal__mpw_bin(&w, s->params, s->plen);
        shoal__mpw_uint(&w, s->since);
        shoal__mpw_bool(&w, s->complete);
    }
    return w.err;
}

/* One subscription from its parts (as stored, or as a peer sent it). */
static int
sub_make(sub *s, const uint8_t *name, size_t nlen, const uint8_t *coll, size_t clen,
         const uint8_t *where, size_t wlen, const uint8_t *params, size_t plen)
{
    memset(s, 0, sizeof *s);
    char msg[8];
    int err = shoal__query_compile((const char *)coll, clen, (const char *)where, wlen, &s->q, msg,
                                   sizeof msg);
    if (!err)
        err = shoal__query_params_decode(s->q, params, plen);
    if (!err) {
        s->name = shoal__malloc(nlen + 1);
        s->params = shoal__malloc(plen ? plen : 1);
        if (!s->name || !s->params)
            err = SHOAL_ENOMEM;
    }
    if (err) {
        sub_clear(s);
        return err;
    }
    memcpy(s->name, name, nlen);
    s->name[nlen] = 0;
    s->nlen = nlen;
    if (plen)
        memcpy(s->params, params, plen);
    s->plen = plen;
    return SHOAL_OK;
}

static int
subs_decode(shoal__subs *S, const uint8_t *p, size_t n)
{
    shoal__mpr rd, *m = &rd;
    shoal__mpr_init(m, p, n);
    uint32_t k = shoal__mpr_array(m, 2, 1);
    S->next = shoal__mpr_uint(m);
    uint32_t ns = shoal__mpr_array(m, SHOAL__MAX_SUBS, 8);
    if (m->err || k != 2)
        return SHOAL_ECORRUPT;
    S->s = shoal__calloc(ns ? ns : 1, sizeof *S->s);
    if (!S->s)
        return SHOAL_ENOMEM;
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *name, *coll, *where, *params;
        uint32_t f = shoal__mpr_array(m, 6, 1);
        size_t nl = shoal__mpr_str(m, &name, SHOAL__MAX_SUB_NAME);
        size_t cl = shoal__mpr_str(m, &coll, SHOAL_MAX_COLLECTION);
        size_t wl = shoal__mpr_str(m, &where, SHOAL__MAX_SUB_TEXT);
        size_t pl = shoal__mpr_bin(m, &params, SHOAL__MAX_SUB_PARAMS);
        uint64_t since = shoal__mpr_uint(m);
        bool complete = shoal__mpr_bool(m);
        if (m->err || f != 6)
            return SHOAL_ECORRUPT;
        int err = sub_make(&S->s[S->n], name, nl, coll, cl, where, wl, params, pl);
        if (err)
            return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
        S->s[S->n].since = since;
        S->s[S->n].complete = complete;
        S->n++;
    }
    return shoal__mpr_finish(m) ? SHOAL_ECORRUPT : SHOAL_OK;
}

typedef struct load_ctx {
    shoal__subs *S;
} load_ctx;

static int
load_fn(shoal__stxn *t, void *arg)
{
    load_ctx *c = arg;
    shoal__sval v;
    int err = shoal__stxn_meta_get(t, "subs", &v);
    if (err == SHOAL_OK)
        err = subs_decode(c->S, v.p, v.len);
    else if (err == SHOAL_ENOTFOUND)
        err = SHOAL_OK;
    if (err)
        return err;
    err = shoal__stxn_meta_get(t, "acked", &v);
    if (err == SHOAL_OK) {
        if (v.len != 8)
            return SHOAL_ECORRUPT;
        c->S->acked = shoal__be64_get(v.p);
    }
    if (err && err != SHOAL_ENOTFOUND)
        return err;
    err = shoal__stxn_meta_get(t, "draining", &v);
    c->S->draining = err == SHOAL_OK && v.len == 1 && v.p[0] == 1;
    return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
}

int
shoal__subs_load(shoal_replica *r)
{
    shoal__subs *S = shoal__calloc(1, sizeof *S);
    if (!S)
        return SHOAL_ENOMEM;
    shoal__map_init(&S->leaving);
    shoal__map_init(&S->fullvv);
    r->subs = S;
    load_ctx c = { S };
    int err = shoal__store_read(r->store, load_fn, &c);
    if (err)
        return err;
    publish_gen(r);
    return SHOAL_OK;
}

static int
subs_save(shoal__stxn *t, const shoal__subs *S)
{
    shoal__buf b;
    shoal__buf_init(&b);
    int err = subs_encode(S, &b);
    if (!err)
        err = shoal__stxn_meta_put(t, "subs", b.p, b.len);
    shoal__buf_free(&b);
    return err;
}

/* ------------------------------------------------------------ matching */

/* Whether the live document (coll, id) matches one of our subscriptions
 * in snapshot t.  A deleted or absent document matches none. */
static int
local_match(shoal_replica *r, shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
            size_t idlen, shoal__qscratch *sc, bool *match)
{
    *match = false;
    if (r->enforce && clen == 5 && memcmp(coll, "_auth", 5) == 0) {
        /* the authority stays: every change is judged by it */
        shoal__sval v;
        int err = shoal__stxn_qview_get(t, coll, clen, id, idlen, &v);
        *match = err == SHOAL_OK;
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    }
    const shoal__subs *S = r->subs;
    bool any = false;
    for (size_t i = 0; i < S->n && !any; i++) {
        const char *c;
        size_t cl;
        (void)shoal__query_of(S->s[i].q, &c, &cl);
        any = cl == clen && memcmp(c, coll, clen) == 0;
    }
    if (!any)
        return SHOAL_OK;
    shoal__sval v;
    int err = shoal__stxn_qview_get(t, coll, clen, id, idlen, &v);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (err)
        return err;
    /* The view is Borrowed from the map; judging may read the document. */
    for (size_t i = 0; i < S->n && !*match; i++) {
        const char *c;
        size_t cl;
        const shoal__query *q = shoal__query_of(S->s[i].q, &c, &cl);
        if (cl != clen || memcmp(c, coll, clen) != 0)
            continue;
        err = shoal__query_judge(r, t, q, c, cl, id, idlen, &v, sc, false, match);
        if (err)
            return err;
    }
    if (*match && r->enforce) {
        /* and our own roles read it, as a sender judges (feed.c): a
         * document we may no longer read leaves when it says so */
        if (!r->self_reader) {
            r->self_reader = shoal__malloc(sizeof *r->self_reader);
            if (!r->self_reader)
                return SHOAL_ENOMEM;
            shoal__reader_init(r->self_reader);
        }
        err = shoal__reader_fresh(r->self_reader, r, t, r->pk);
        if (!err)
            err = shoal__reader_reads(r->self_reader, r, t, coll, clen, id, idlen, &v, sc, true,
                                      match);
    }
    return err;
}

/* ------------------------------------------------------------- eviction */

/* Whether the document (its meta m) holds one of our own changes that no
 * full replica is known to hold (its chain, walked back from its newest
 * change). */
static int
unacked(shoal_replica *r, shoal__stxn *t, const shoal__dmeta *m, bool *out)
{
    *out = false;
    uint64_t pos = m->last_pos;
    for (uint64_t steps = 0; pos != 0 && steps <= m->nchanges + 1; steps++) {
        shoal__sval env;
        uint64_t link;
        bool dead;
        int err = shoal__stxn_log_entry(t, pos, &env, &link, &dead, NULL);
        if (err)
            return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
        size_t elen, blen;
        const uint8_t *body;
        uint64_t seq;
        if (shoal__envelope_parse(env.p, env.len, &elen, &body, &blen) ||
            shoal__change_peek(body, blen, &seq, NULL))
            return SHOAL_ECORRUPT;
        if (!dead && memcmp(shoal__envelope_author(env.p), r->pk, SHOAL_KEY_BYTES) == 0 &&
            seq > r->subs->acked) {
            *out = true;
            return SHOAL_OK;
        }
        pos = link;
    }
    return SHOAL_OK;
}

typedef struct evicted {
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen;
} evicted;

/* One eviction pass in write transaction t: the candidates (keys) that
 * must go (told to leave, or matching nothing) and hold no unacknowledged
 * change of ours; the keys evicted are appended to out (for events). */
typedef struct evict_ctx {
    shoal_replica *r;
    shoal__wctx *wx;
    uint8_t (*keys)[SHOAL__DOCKEY_MAX];
    size_t *klens;
    size_t nkeys;
    bool all;     /* judge every held document instead of keys */
    bool trust;   /* keys are out of view (a sender's LEAVE BEHIND): no judging */
    bool evicted; /* out: documents were evicted (tell the engine) */
    evicted *out; /* grows */
    size_t nout, capout;
    shoal__qscratch sc;
} evict_ctx;

static int
evict_one(evict_ctx *x, shoal__stxn *t, const uint8_t *key, size_t klen)
{
    shoal_replica *r = x->r;
    const uint8_t *nul = memchr(key, 0, klen);
    if (!nul)
        return SHOAL_OK;
    const uint8_t *coll = key, *id = nul + 1;
    size_t clen = (size_t)(nul - key), idlen = klen - clen - 1;
    /* Judged on our own state: a sender's LEAVE comes after everything it
     * holds of the document, so ours is at least as new as the state it
     * judged (shoal__subs_leave); one that still matches stays. */
    bool m = false;
    int err = x->trust ? SHOAL_OK : local_match(r, t, coll, clen, id, idlen, &x->sc, &m);
    if (err)
        return err;
    if (m) {
        (void)shoal__map_take(&r->subs->leaving, key, klen);
        return SHOAL_OK;
    }
    shoal__sval mv;
    err = shoal__stxn_doc_get(t, coll, clen, id, idlen, &mv);
    if (err == SHOAL_ENOTFOUND) {
        (void)shoal__map_take(&r->subs->leaving, key, klen);
        return SHOAL_OK;
    }
    if (err)
        return err;
    shoal__dmeta dm;
    err = shoal__dmeta_parse(mv.p, mv.len, &dm);
    if (err)
        return err;
    bool held;
    err = unacked(r, t, &dm, &held);
    shoal__dmeta_clear(&dm);
    if (err)
        return err;
    if (held) {
        /* Our write goes up first: the acknowledgement that covers it
         * judges the document again. */
        return shoal__map_put(&r->subs->leaving, key, klen, (void *)1);
    }
    err = shoal__doc_evict(&x->wx->w, coll, clen, id, idlen, NULL);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    /* The stub: "shoal check" and our own bookkeeping know it left. */
    if (!err)
        err = shoal__stxn_stub_put(t, coll, clen, id, idlen);
    if (err)
        return err;
    (void)shoal__map_take(&r->subs->leaving, key, klen);
    if (x->nout == x->capout) {
        size_t cap = x->capout ? x->capout * 2 : 16;
        evicted *p = shoal__realloc(x->out, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        x->out = p;
        x->capout = cap;
    }
    memcpy(x->out[x->nout].key, key, klen);
    x->out[x->nout].klen = klen;
    x->nout++;
    return SHOAL_OK;
}

typedef struct all_ctx {
    evict_ctx *x;
    uint8_t (*keys)[SHOAL__DOCKEY_MAX];
    size_t *klens;
    size_t n, cap;
} all_ctx;

static int
all_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
       void *arg)
{
    (void)meta;
    all_ctx *a = arg;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void *k = shoal__realloc(a->keys, cap * sizeof *a->keys);
        if (!k)
            return SHOAL_ENOMEM;
        a->keys = k;
        size_t *l = shoal__realloc(a->klens, cap * sizeof *l);
        if (!l)
            return SHOAL_ENOMEM;
        a->klens = l;
        a->cap = cap;
    }
    a->klens[a->n] = shoal__dockey(a->keys[a->n], coll, clen, id, idlen);
    a->n++;
    return SHOAL_OK;
}

/* Pending changes of the documents evicted in this pass go too: they
 * waited for changes we no longer hold, and a sender that finds the
 * document in our view sends it whole. */
typedef struct prune_ctx {
    const evict_ctx *x;
    uint8_t *drop; /* ids, grows */
    size_t n, cap;
} prune_ctx;

static int
prune_cb(const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    prune_ctx *p = arg;
    shoal__change c;
    if (shoal__change_stored(env->p, env->len, &c) != SHOAL_OK)
        return 0; /* "shoal check" reports it */
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, c.coll, c.coll_len, c.doc, c.doc_len);
    shoal__change_clear(&c);
    bool gone = false;
    for (size_t i = 0; !gone && i < p->x->nout; i++)
        gone = p->x->out[i].klen == klen && memcmp(p->x->out[i].key, key, klen) == 0;
    if (!gone)
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        uint8_t *d = shoal__realloc(p->drop, cap * SHOAL__ID_BYTES);
        if (!d)
            return SHOAL_ENOMEM;
        p->drop = d;
        p->cap = cap;
    }
    memcpy(p->drop + p->n++ * SHOAL__ID_BYTES, cid, SHOAL__ID_BYTES);
    return 0;
}

static int
prune_pending(evict_ctx *x, shoal__stxn *t)
{
    if (x->nout == 0 || shoal__stxn_pending_count(t) == 0)
        return SHOAL_OK;
    prune_ctx p = { x, NULL, 0, 0 };
    int err = shoal__stxn_pending_scan(t, prune_cb, &p);
    for (size_t i = 0; !err && i < p.n; i++)
        err = shoal__stxn_pending_del(t, p.drop + i * SHOAL__ID_BYTES);
    shoal__free(p.drop);
    return err;
}

static int
evict_fn(shoal__stxn *t, void *arg)
{
    evict_ctx *x = arg;
    x->nout = 0;
    shoal__wctx_begin(x->wx, t);
    /* Nothing is drained: keep the time a held-back change is due. */
    x->wx->a.due_ms = x->r->due_ms;
    int err = SHOAL_OK;
    if (x->all) {
        /* Every held document: collect the keys first (the scan must not
         * run while documents are removed). */
        all_ctx a = { .x = x };
        err = shoal__stxn_doc_scan(t, NULL, 0, all_cb, &a);
        for (size_t i = 0; !err && i < a.n; i++)
            err = evict_one(x, t, a.keys[i], a.klens[i]);
        shoal__free(a.keys);
        shoal__free(a.klens);
        return err ? err : prune_pending(x, t);
    }
    for (size_t i = 0; !err && i < x->nkeys; i++)
        err = evict_one(x, t, x->keys[i], x->klens[i]);
    return err ? err : prune_pending(x, t);
}

/* Note that we came to hold key or stopped holding it (caller holds
 * r->mu): the feeds of the peers we serve and the HAVEs we send read the
 * ring.  Without a ring, consumers are told they missed some. */
static void
ring_push(shoal_replica *r, const uint8_t *key, size_t klen, bool gone)
{
    shoal__subs *S = r->subs;
    if (!S->ring)
        S->ring = shoal__malloc(SHOAL__HELD_RING * sizeof *S->ring);
    if (!S->ring) {
        atomic_fetch_add(&r->held_gen, SHOAL__HELD_RING + 1);
        return;
    }
    size_t at = (size_t)(atomic_load(&r->held_gen) % SHOAL__HELD_RING);
    memcpy(S->ring[at], key, klen);
    S->ringlen[at] = (uint16_t)klen;
    S->ringgone[at] = gone;
    atomic_fetch_add(&r->held_gen, 1);
}

/* Run an eviction pass (caller holds r->mu), then raise SHOAL_EV_LEFT
 * for each evicted document. */
static int
evict_run(shoal_replica *r, evict_ctx *x)
{
    x->r = r;
    shoal__wctx wx;
    shoal__wctx_init(&wx, r);
    x->wx = &wx;
    /* One write: the working set drops the cache entries and tells live
     * queries (they drop the documents at once) when it commits. */
    int err = shoal__wctx_write(&wx, evict_fn, x);
    shoal__qscratch_free(&x->sc);
    for (size_t i = 0; !err && i < x->nout; i++) {
        const uint8_t *nul = memchr(x->out[i].key, 0, x->out[i].klen);
        size_t clen = (size_t)(nul - x->out[i].key);
        shoal__events_push_left(r, x->out[i].key, clen, nul + 1, x->out[i].klen - clen - 1);
        ring_push(r, x->out[i].key, x->out[i].klen, true);
    }
    x->evicted = !err && x->nout > 0;
    shoal__free(x->out);
    x->out = NULL;
    return err;
}

/* Evict what no subscription matches (nothing pinned by our own writes). */
static int
sweep(shoal_replica *r)
{
    if (r->subs->n == 0 && r->subs->leaving.n == 0)
        return SHOAL_OK;
    evict_ctx x = { .all = true };
    return evict_run(r, &x);
}

/* Whether any held document has a change by another author than us. */
typedef struct foreign_ctx {
    shoal_replica *r;
    shoal__stxn *t;
    bool any;
} foreign_ctx;

static int
foreign_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           const shoal__sval *meta, void *arg)
{
    (void)coll;
    (void)clen;
    (void)id;
    (void)idlen;
    foreign_ctx *c = arg;
    shoal__dmeta m;
    int err = shoal__dmeta_parse(meta->p, meta->len, &m);
    if (err)
        return err;
    uint64_t pos = m.last_pos;
    for (uint64_t steps = 0; !err && pos != 0 && steps <= m.nchanges + 1; steps++) {
        shoal__sval env;
        uint64_t link;
        err = shoal__stxn_log_entry(c->t, pos, &env, &link, NULL, NULL);
        if (!err && memcmp(shoal__envelope_author(env.p), c->r->pk, SHOAL_KEY_BYTES) != 0)
            c->any = true;
        pos = link;
        if (c->any)
            break;
    }
    shoal__dmeta_clear(&m);
    return err ? err : (c->any ? 1 : 0);
}

static int
drain_fn(shoal__stxn *t, void *arg)
{
    foreign_ctx *c = arg;
    c->t = t;
    int err = shoal__stxn_doc_scan(t, NULL, 0, foreign_cb, c);
    if (err == 1 && c->any)
        err = SHOAL_OK;
    if (err)
        return err;
    shoal__subs *S = c->r->subs;
    bool draining = S->n == 0 && c->any;
    if (draining == S->draining)
        return SHOAL_OK;
    const uint8_t flag = draining ? 1 : 0;
    return shoal__stxn_meta_put(t, "draining", &flag, 1);
}

/* With no subscription left: evict what can go, then stay partial (an
 * empty set) while other authors' changes are still held; caller holds
 * r->mu. */
static int
drain(shoal_replica *r)
{
    evict_ctx x = { .all = true };
    int err = evict_run(r, &x);
    foreign_ctx c = { r, NULL, false };
    if (!err)
        err = shoal__store_write(r->store, drain_fn, &c);
    if (!err) {
        r->subs->draining = r->subs->n == 0 && c.any;
        publish_gen(r);
    }
    return err;
}

/* ------------------------------------------------------------ public API */

static int
save_fn(shoal__stxn *t, void *arg)
{
    return subs_save(t, arg);
}

shoal_err
shoal_subscribe(shoal_replica *r, const char *name, const shoal_query *q)
{
    size_t nlen;
    if (!r || !q || !shoal__name_ok(name, SHOAL__MAX_SUB_NAME, &nlen)) {
        if (r) {
            pthread_mutex_lock(&r->mu);
            shoal__fail(r, SHOAL_EINVAL,
                        "subscribe: bad subscription name (1 to %d bytes of UTF-8)",
                        (int)SHOAL__MAX_SUB_NAME);
            pthread_mutex_unlock(&r->mu);
        }
        return SHOAL_EINVAL;
    }
    pthread_mutex_lock(&r->mu);
    int err = shoal__query_check(r, q);
    if (!err && !shoal__query_plain(q))
        err = shoal__fail(r, SHOAL_EINVAL,
                          "subscribe: a subscription takes no sort, limit, offset or field list");
    shoal__subs *S = r->subs;
    size_t at = S->n;
    for (size_t i = 0; i < S->n; i++)
        if (S->s[i].nlen == nlen && memcmp(S->s[i].name, name, nlen) == 0)
            at = i;
    if (!err && at == S->n && S->n == SHOAL__MAX_SUBS)
        err = shoal__fail(r, SHOAL_ETOOBIG, "subscribe: at most %d subscriptions",
                          (int)SHOAL__MAX_SUBS);
    shoal__buf pb;
    shoal__buf_init(&pb);
    sub ns;
    memset(&ns, 0, sizeof ns);
    if (!err)
        err = shoal__query_params_encode(q, &pb);
    if (!err) {
        const char *coll, *text;
        size_t clen, tlen;
        (void)shoal__query_of(q, &coll, &clen);
        shoal__query_text(q, &text, &tlen);
        err = sub_make(&ns, (const uint8_t *)name, nlen, (const uint8_t *)coll, clen,
                       (const uint8_t *)text, tlen, pb.p, pb.len);
        if (err)
            shoal__fail(r, err, "subscribe %s", name);
    }
    /* The same definition again changes nothing (it stays complete). */
    bool same = false;
    if (!err && at < S->n) {
        const char *c0, *c1, *t0, *t1;
        size_t cl0, cl1, tl0, tl1;
        (void)shoal__query_of(S->s[at].q, &c0, &cl0);
        (void)shoal__query_of(ns.q, &c1, &cl1);
        shoal__query_text(S->s[at].q, &t0, &tl0);
        shoal__query_text(ns.q, &t1, &tl1);
        same = cl0 == cl1 && memcmp(c0, c1, cl0) == 0 && tl0 == tl1 && memcmp(t0, t1, tl0) == 0 &&
               S->s[at].plen == ns.plen && memcmp(S->s[at].params, ns.params, ns.plen) == 0;
    }
    if (!err && !same) {
        if (at == S->n) {
            sub *p = shoal__realloc(S->s, (S->n + 1) * sizeof *p);
            if (!p)
                err = SHOAL_ENOMEM;
            else
                S->s = p;
        }
        if (!err) {
            sub old = at < S->n ? S->s[at] : (sub){ 0 };
            bool added = at == S->n;
            ns.since = ++S->next;
            S->s[at] = ns;
            if (added)
                S->n++;
            err = shoal__store_write(r->store, save_fn, S);
            if (err) {
                /* Put the set back as it was. */
                S->next--;
                if (added)
                    S->n--;
                else
                    S->s[at] = old;
                shoal__fail(r, err, "subscribe %s", name);
            } else {
                sub_clear(&old);
                memset(&ns, 0, sizeof ns);
                publish_gen(r);
                if (S->draining)
                    err = drain(r); /* a set again: draining is over */
                /* A replaced subscription may no longer match what the old
                 * one held. */
                if (!added)
                    err = sweep(r);
            }
        }
    }
    sub_clear(&ns);
    shoal__buf_free(&pb);
    pthread_mutex_unlock(&r->mu);
    if (!err && !same)
        shoal__net_notify(r); /* sessions send the new set */
    return (shoal_err)err;
}

shoal_err
shoal_unsubscribe(shoal_replica *r, const char *name)
{
    if (!r || !name)
        return SHOAL_EINVAL;
    size_t nlen = strlen(name);
    pthread_mutex_lock(&r->mu);
    shoal__subs *S = r->subs;
    size_t at = S->n;
    for (size_t i = 0; i < S->n; i++)
        if (S->s[i].nlen == nlen && memcmp(S->s[i].name, name, nlen) == 0)
            at = i;
    int err = SHOAL_OK;
    if (at == S->n) {
        err = shoal__fail(r, SHOAL_ENOTFOUND, "unsubscribe: no subscription named %s", name);
    } else {
        sub old = S->s[at];
        memmove(&S->s[at], &S->s[at + 1], (S->n - at - 1) * sizeof *S->s);
        S->n--;
        S->next++;
        err = shoal__store_write(r->store, save_fn, S);
        if (err) {
            memmove(&S->s[at + 1], &S->s[at], (S->n - at) * sizeof *S->s);
            S->s[at] = old;
            S->n++;
            S->next--;
            shoal__fail(r, err, "unsubscribe %s", name);
        } else {
            sub_clear(&old);
            publish_gen(r);
            /* Evaluated locally: what no remaining subscription matches
             * goes (a peer with newer state re-enters what it must).  With
             * no subscription left nothing matches: the replica is full
             * again, and syncs everything afresh, once it holds no other
             * author's change (documents our unacknowledged writes pin
             * keep it partial, with an empty set, until they go). */
            if (S->n == 0) {
                err = drain(r);
            } else {
                evict_ctx x = { .all = true };
                err = evict_run(r, &x);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (!err)
        shoal__net_notify(r);
    return (shoal_err)err;
}

struct shoal_subs {
    size_t n;
    struct {
        char *name, *coll, *where;
        shoal_query *q;
        bool complete;
        uint64_t docs;
    } * e;
};

void
shoal_subs_free(shoal_subs *L)
{
    if (!L)
        return;
    for (size_t i = 0; i < L->n; i++) {
        shoal__free(L->e[i].name);
        shoal__free(L->e[i].coll);
        shoal__free(L->e[i].where);
        shoal_query_free(L->e[i].q);
    }
    shoal__free(L->e);
    shoal__free(L);
}

static char *
dupn(const char *p, size_t n)
{
    char *s = shoal__malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

shoal_err
shoal_subscriptions(shoal_replica *r, shoal_subs **out)
{
    if (!r || !out)
        return SHOAL_EINVAL;
    *out = NULL;
    shoal_subs *L = shoal__calloc(1, sizeof *L);
    if (!L)
        return SHOAL_ENOMEM;
    int err = SHOAL_OK;
    pthread_mutex_lock(&r->mu);
    const shoal__subs *S = r->subs;
    L->e = shoal__calloc(S->n ? S->n : 1, sizeof *L->e);
    if (!L->e)
        err = SHOAL_ENOMEM;
    for (size_t i = 0; !err && i < S->n; i++) {
        const char *c, *t;
        size_t cl, tl;
        (void)shoal__query_of(S->s[i].q, &c, &cl);
        shoal__query_text(S->s[i].q, &t, &tl);
        L->e[i].name = dupn(S->s[i].name, S->s[i].nlen);
        L->e[i].coll = dupn(c, cl);
        L->e[i].where = dupn(t, tl);
        L->e[i].complete = S->s[i].complete;
        L->n = i + 1;
        if (!L->e[i].name || !L->e[i].coll || !L->e[i].where)
            err = SHOAL_ENOMEM;
        if (!err)
            err = shoal__query_copy(S->s[i].q, &L->e[i].q);
    }
    pthread_mutex_unlock(&r->mu);
    /* Each subscription's document count, as a count query on our state. */
    for (size_t i = 0; !err && i < L->n; i++)
        err = shoal_count(r, L->e[i].q, &L->e[i].docs);
    if (err) {
        shoal_subs_free(L);
        return (shoal_err)err;
    }
    *out = L;
    return SHOAL_OK;
}

size_t
shoal_subs_count(const shoal_subs *L)
{
    return L ? L->n : 0;
}

const char *
shoal_subs_name(const shoal_subs *L, size_t i)
{
    return L && i < L->n ? L->e[i].name : NULL;
}

const char *
shoal_subs_collection(const shoal_subs *L, size_t i)
{
    return L && i < L->n ? L->e[i].coll : NULL;
}

const char *
shoal_subs_where(const shoal_subs *L, size_t i)
{
    return L && i < L->n ? L->e[i].where : NULL;
}

size_t
shoal_subs_param_count(const shoal_subs *L, size_t i)
{
    return L && i < L->n ? shoal_query_param_count(L->e[i].q) : 0;
}

const char *
shoal_subs_param_name(const shoal_subs *L, size_t i, size_t k)
{
    return L && i < L->n ? shoal_query_param_name(L->e[i].q, k) : NULL;
}

shoal_err
shoal_subs_param_value(const shoal_subs *L, size_t i, size_t k, shoal_value *out)
{
    if (!L || i >= L->n || !out)
        return SHOAL_EINVAL;
    return (shoal_err)shoal__query_param_value(L->e[i].q, k, out);
}

bool
shoal_subs_complete(const shoal_subs *L, size_t i)
{
    return L && i < L->n && L->e[i].complete;
}

uint64_t
shoal_subs_docs(const shoal_subs *L, size_t i)
{
    return L && i < L->n ? L->e[i].docs : 0;
}

/* ------------------------------------------------- the host's side (sync) */

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct refresh_ctx {
    shoal__subs *S;
    shoal__subs fresh;
    bool changed;
} refresh_ctx;

/* Whether meta "subs" (or "draining") differs from ours; if so, decode it
 * into fresh. */
static int
refresh_fn(shoal__stxn *t, void *arg)
{
    refresh_ctx *c = arg;
    shoal__buf mine;
    shoal__buf_init(&mine);
    int err = c->S->n || c->S->next ? subs_encode(c->S, &mine) : SHOAL_OK;
    shoal__sval v = { 0 };
    int e = err ? err : shoal__stxn_meta_get(t, "subs", &v);
    if (e && e != SHOAL_ENOTFOUND) {
        shoal__buf_free(&mine);
        return e;
    }
    bool same =
        e == SHOAL_ENOTFOUND ? mine.len == 0 : v.len == mine.len && memcmp(v.p, mine.p, v.len) == 0;
    shoal__buf_free(&mine);
    shoal__sval d;
    int de = shoal__stxn_meta_get(t, "draining", &d);
    bool draining = de == SHOAL_OK && d.len == 1 && d.p[0] == 1;
    if (same && draining == c->S->draining)
        return SHOAL_OK;
    c->changed = true;
    c->fresh.draining = draining;
    return e == SHOAL_ENOTFOUND ? SHOAL_OK : subs_decode(&c->fresh, v.p, v.len);
}

/* Another process sharing the directory may have changed the set
 * (`shoal subscribe` while `shoal serve` runs): look at most every 500 ms,
 * never waiting for r->mu. */
static void
refresh(shoal_replica *r)
{
    static const uint64_t every_ms = 500;
    shoal__subs *S = r->subs;
    uint64_t now = mono_ms();
    uint64_t last = atomic_load(&S->looked_ms);
    if (now - last < every_ms || !atomic_compare_exchange_strong(&S->looked_ms, &last, now))
        return;
    if (pthread_mutex_trylock(&r->mu) != 0)
        return;
    refresh_ctx c = { .S = S };
    if (shoal__store_read(r->store, refresh_fn, &c) == SHOAL_OK && c.changed) {
        for (size_t i = 0; i < S->n; i++)
            sub_clear(&S->s[i]);
        shoal__free(S->s);
        S->s = c.fresh.s;
        S->n = c.fresh.n;
        S->next = c.fresh.next;
        S->draining = c.fresh.draining;
        c.fresh.s = NULL;
        c.fresh.n = 0;
        publish_gen(r);
    }
    for (size_t i = 0; i < c.fresh.n; i++)
        sub_clear(&c.fresh.s[i]);
    shoal__free(c.fresh.s);
    pthread_mutex_unlock(&r->mu);
}

uint64_t
shoal__subs_gen(shoal_replica *r)
{
    refresh(r);
    return atomic_load(&r->subs_gen);
}

typedef struct held_ctx {
    shoal__mpw *w;
    const uint8_t *coll;
    size_t clen;
    size_t n;
    int err;
    shoal__map ask; /* documents to be sent again whole: "coll\0id" -> 1 */
} held_ctx;

/* Sealed groups a partial replica lacks but may read (it got the change
 * from a peer that did not hold them): the documents of those changes are
 * summarised as not held, so the peer sends them whole, groups and all
 * (duplicates are no-ops; the drain keeps the groups). */
typedef struct ask_ctx {
    shoal_replica *r;
    shoal__stxn *t;
    shoal__reader rd;
    shoal__authz_cache *authz;
    shoal__qscratch sc;
    shoal__map *ask; /* NULL: count only */
    bool partial;
    uint64_t count; /* changes held without a group we may read */
    int err;
} ask_ctx;

static int
ask_cb(const uint8_t cid[SHOAL__ID_BYTES], const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
       void *arg)
{
    (void)author;
    (void)seq;
    ask_ctx *x = arg;
    shoal__sval env;
    int err = shoal__stxn_change_get(x->t, cid, &env);
    if (err == SHOAL_ENOTFOUND)
        return 0; /* evicted, or replaced by another version */
    shoal__change c;
    if (!err)
        err = shoal__change_stored(env.p, env.len, &c);
    if (err) {
        x->err = err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
        return 1;
    }
    /* a full replica must read everything: every group it lacks */
    uint64_t groups = UINT64_MAX;
    if (x->partial)
        err = shoal__reader_groups(&x->rd, x->r, x->t, &x->authz, &x->sc, env.p, env.len, &groups);
    bool want = false;
    for (uint8_t g = 0; !err && !want && g < c.nseals; g++) {
        shoal__sval grp;
        if (!(groups >> g & 1))
            continue;
        err = shoal__stxn_seal_get(x->t, cid, g, &grp);
        want = err == SHOAL_ENOTFOUND;
        if (want)
            err = SHOAL_OK;
    }
    if (!err && want) {
        uint8_t key[SHOAL__DOCKEY_MAX];
        size_t klen = shoal__dockey(key, c.coll, c.coll_len, c.doc, c.doc_len);
        x->count++;
        if (x->ask)
            err = shoal__map_put(x->ask, key, klen, (void *)1);
    }
    shoal__change_clear(&c);
    if (err) {
        x->err = err;
        return 1;
    }
    return 0;
}

static int
ask_again(shoal_replica *r, shoal__stxn *t, shoal__map *ask, uint64_t *count)
{
    if (count)
        *count = 0;
    if (!r->enforce)
        return SHOAL_OK;
    ask_ctx x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.t = t;
    x.ask = ask;
    x.partial = shoal__partial(r);
    shoal__reader_init(&x.rd);
    int err = shoal__reader_fresh(&x.rd, r, t, r->pk);
    if (!err)
        err = shoal__stxn_unsealed_scan(t, ask_cb, &x);
    shoal__reader_free(&x.rd);
    shoal__authz_cache_free(x.authz);
    shoal__qscratch_free(&x.sc);
    if (count)
        *count = x.count;
    return x.err ? x.err : err;
}

int
shoal__subs_withheld(shoal_replica *r, shoal__stxn *t, uint64_t *n)
{
    return ask_again(r, t, NULL, n);
}

static int
held_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
        void *arg)
{
    held_ctx *h = arg;
    shoal__dmeta m;
    int err = shoal__dmeta_parse(meta->p, meta->len, &m);
    if (err)
        return err;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    if (m.nheads > SHOAL__MAX_HEADS || shoal__map_get(&h->ask, key, klen)) {
        /* More concurrent heads than a summary carries, or a sealed group
         * we may read but lack: say we hold none of it, so the peer sends
         * it whole (duplicates are no-ops). */
        m.nheads = 0;
    }
    if (h->n == SHOAL__MAX_HELD) {
        shoal__dmeta_clear(&m);
        return SHOAL_ETOOBIG;
    }
    shoal__wheld e = { coll, clen, id, idlen, m.heads, m.nheads };
    shoal__wire_put_held(h->w, &e);
    shoal__dmeta_clear(&m);
    h->n++;
    return h->w->err;
}

typedef struct summary_ctx {
    shoal_replica *r;
    shoal__buf *out;
    uint64_t gen;
} summary_ctx;

/* Our set and, for the collections it names, every document we hold with
 * its heads.  The count of held documents goes in front of them, so they
 * are written to a second buffer first. */
static int
summary_fn(shoal__stxn *t, void *arg)
{
    summary_ctx *c = arg;
    const shoal__subs *S = c->r->subs;
    shoal__wsub ws[SHOAL__MAX_SUBS];
    for (size_t i = 0; i < S->n; i++) {
        const char *coll, *text;
        size_t clen, tlen;
        (void)shoal__query_of(S->s[i].q, &coll, &clen);
        shoal__query_text(S->s[i].q, &text, &tlen);
        ws[i] = (shoal__wsub){
            (const uint8_t *)S->s[i].name, S->s[i].nlen, (const uint8_t *)coll, clen,
            (const uint8_t *)text,         tlen,         S->s[i].params,        S->s[i].plen
        };
    }
    shoal__mpw w;
    shoal__mpw_init(&w, c->out);
    shoal__wire_put_subs(&w, ws, S->n);
    if (w.err)
        return w.err;
    shoal__buf docs;
    shoal__buf_init(&docs);
    shoal__mpw dw;
    shoal__mpw_init(&dw, &docs);
    held_ctx h = { .w = &dw };
    shoal__map_init(&h.ask);
    int err = ask_again(c->r, t, &h.ask, NULL);
    /* Every document we hold, whatever its collection: the sender judges
     * each (one outside every subscription, which we wrote, is told to
     * leave once our write is up). */
    if (!err)
        err = shoal__stxn_doc_scan(t, NULL, 0, held_cb, &h);
    shoal__map_clear(&h.ask, NULL);
    if (!err) {
        shoal__wire_put_held_header(&w, h.n);
        err = w.err;
    }
    if (!err)
        err = shoal__buf_append(c->out, docs.p, docs.len);
    shoal__buf_free(&docs);
    return err;
}

int
shoal__subs_encode(shoal_replica *r, uint64_t *gen, shoal__buf *out)
{
    pthread_mutex_lock(&r->mu);
    *gen = r->subs->n || r->subs->draining ? r->subs->next : 0;
    int err = SHOAL_OK;
    if (*gen) {
        summary_ctx c = { r, out, *gen };
        err = shoal__store_read(r->store, summary_fn, &c);
    }
    pthread_mutex_unlock(&r->mu);
    return err;
}

int
shoal__subs_held_key(shoal_replica *r, uint64_t gen, uint8_t *key, size_t *klen)
{
    const shoal__subs *S = r->subs;
    if (!S->ring || gen >= r->held_gen || r->held_gen - gen > SHOAL__HELD_RING)
        return SHOAL_ENOTFOUND;
    size_t at = (size_t)(gen % SHOAL__HELD_RING);
    memcpy(key, S->ring[at], S->ringlen[at]);
    *klen = S->ringlen[at];
    return SHOAL_OK;
}

typedef struct leave_ctx {
    const uint8_t *coll, *id;
    size_t clen, idlen;
    const uint8_t *heads;
    size_t nheads;
    bool behind; /* the heads are ours as the sender knew them */
    bool gone;   /* the sender no longer holds it */
    bool judge;  /* out: judge the document (or, behind, evict it) */
    bool held;   /* out: we hold the document */
} leave_ctx;

static int
leave_fn(shoal__stxn *t, void *arg)
{
    leave_ctx *c = arg;
    shoal__sval mv;
    int err = shoal__stxn_doc_get(t, c->coll, c->clen, c->id, c->idlen, &mv);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    c->held = true;
    if (c->gone) {
        c->judge = true;
        return SHOAL_OK;
    }
    if (!c->behind) {
        c->judge = true;
        for (size_t i = 0; c->judge && i < c->nheads; i++)
            c->judge = shoal__stxn_change_has(t, c->heads + i * SHOAL__ID_BYTES);
        return SHOAL_OK;
    }
    /* BEHIND: our heads now are the ones the sender judged. */
    shoal__dmeta m;
    err = shoal__dmeta_parse(mv.p, mv.len, &m);
    if (err)
        return err;
    c->judge = m.nheads == c->nheads && c->nheads > 0;
    for (size_t i = 0; c->judge && i < m.nheads; i++) {
        bool found = false;
        for (size_t k = 0; !found && k < c->nheads; k++)
            found = memcmp(m.heads + i * SHOAL__ID_BYTES, c->heads + k * SHOAL__ID_BYTES,
                           SHOAL__ID_BYTES) == 0;
        c->judge = found;
    }
    shoal__dmeta_clear(&m);
    return SHOAL_OK;
}

int
shoal__subs_leave(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                  size_t idlen, unsigned reason, const uint8_t *heads, size_t nheads)
{
    bool behind = reason == SHOAL__LEAVE_BEHIND, gone = reason == SHOAL__LEAVE_GONE;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    pthread_mutex_lock(&r->mu);
    /* The sender sent everything it holds of the document before this:
     * when we hold all of it, our state is at least as new as the one it
     * judged, and we judge again on ours.  When we lack some (it is still
     * on its way, or waits for a dependency), this LEAVE is stale: the
     * sender says LEAVE again after the changes it still has to send. */
    leave_ctx c = { coll, id, clen, idlen, heads, nheads, behind, gone, false, false };
    int err = shoal__store_read(r->store, leave_fn, &c);
    evict_ctx x = { .keys = &key, .klens = &klen, .nkeys = 1, .trust = behind || gone };
    if (!err && c.judge)
        err = evict_run(r, &x);
    /* Held, but the LEAVE does not fit what we hold (we got more of the
     * document meanwhile): our peers hear what we hold now (HAVE), so that
     * the sender judges it again on that. */
    if (!err && c.held && !c.judge)
        ring_push(r, key, klen, false);
    pthread_mutex_unlock(&r->mu);
    if (x.evicted)
        shoal__net_notify(r); /* the peers we serve are told */
    return err;
}

static int
complete_fn(shoal__stxn *t, void *arg)
{
    return subs_save(t, arg);
}

int
shoal__subs_complete(shoal_replica *r, uint64_t gen)
{
    pthread_mutex_lock(&r->mu);
    shoal__subs *S = r->subs;
    bool changed = false;
    for (size_t i = 0; i < S->n; i++)
        if (!S->s[i].complete && S->s[i].since <= gen) {
            S->s[i].complete = true;
            changed = true;
        }
    int err = changed ? shoal__store_write(r->store, complete_fn, S) : SHOAL_OK;
    pthread_mutex_unlock(&r->mu);
    return err;
}

typedef struct acked_ctx {
    shoal_replica *r;
    uint64_t from, to; /* own seqs newly acknowledged: from < seq <= to */
    evict_ctx *x;
} acked_ctx;

/* Append the keys of map m to x's keys (room made by the caller). */
static void
add_keys(const shoal__map *m, evict_ctx *x)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].key) {
            memcpy(x->keys[x->nkeys], m->s[i].key, m->s[i].klen);
            x->klens[x->nkeys++] = m->s[i].klen;
        }
}

static int
acked_fn(shoal__stxn *t, void *arg)
{
    acked_ctx *a = arg;
    shoal_replica *r = a->r;
    const shoal__subs *S = r->subs;
    int err = SHOAL_OK;
    if (a->to > a->from) {
        uint8_t v[8];
        shoal__be64_put(v, a->to);
        err = shoal__stxn_meta_put(t, "acked", v, sizeof v);
    }
    /* Candidates: the documents a peer told to leave (they stayed for our
     * writes).  Documents our own judgement would drop are not: our copy
     * may be older than the sender's, which keeps them in our view or
     * tells us to leave (the peer's own writes outside its view are told
     * so by the sender too). */
    evict_ctx *x = a->x;
    size_t cap = S->leaving.n;
    if (!err && cap) {
        x->keys = shoal__malloc(cap * sizeof *x->keys);
        x->klens = shoal__malloc(cap * sizeof *x->klens);
        if (!x->keys || !x->klens)
            return SHOAL_ENOMEM;
        add_keys(&S->leaving, x);
    }
    return err;
}

typedef struct own_ctx {
    shoal_replica *r;
    uint64_t *seq;
} own_ctx;

static int
own_seq_fn(shoal__stxn *t, void *arg)
{
    own_ctx *c = arg;
    uint8_t cid[SHOAL__ID_BYTES];
    int err = shoal__stxn_vv_get(t, c->r->pk, c->seq, cid);
    return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
}

int
shoal__subs_acked(shoal_replica *r, const shoal__vventry *e, size_t n)
{
    /* A full replica evicts nothing: not even the lock (every ACK of every
     * link comes here). */
    if (!shoal__partial(r))
        return SHOAL_OK;
    pthread_mutex_lock(&r->mu);
    shoal__subs *S = r->subs;
    int err = SHOAL_OK;
    bool gone = false;
    /* Kept while partial only: a full replica evicts nothing, and a
     * replica that becomes partial later counts changes as unacknowledged
     * until a full peer's vector says otherwise. */
    if (S->n == 0 && S->leaving.n == 0 && !S->draining) {
        pthread_mutex_unlock(&r->mu);
        return SHOAL_OK;
    }
    uint64_t own = S->acked;
    for (size_t i = 0; !err && i < n; i++) {
        if (memcmp(e[i].author, r->pk, SHOAL_KEY_BYTES) == 0) {
            if (e[i].seq > own)
                own = e[i].seq;
            continue;
        }
        fullent *v = shoal__map_get(&S->fullvv, e[i].author, SHOAL_KEY_BYTES);
        if (v) {
            if (e[i].seq > v->seq) {
                v->seq = e[i].seq;
                memcpy(v->cid, e[i].cid, SHOAL__ID_BYTES);
            }
            continue;
        }
        v = shoal__malloc(sizeof *v);
        if (!v || shoal__map_put(&S->fullvv, e[i].author, SHOAL_KEY_BYTES, v) != SHOAL_OK) {
            shoal__free(v);
            err = SHOAL_ENOMEM;
            break;
        }
        v->seq = e[i].seq;
        memcpy(v->cid, e[i].cid, SHOAL__ID_BYTES);
    }
    /* A peer's claim past what we wrote means nothing more. */
    uint64_t mine = 0;
    if (!err && own > S->acked)
        err = shoal__store_read(r->store, own_seq_fn, &(own_ctx){ r, &mine });
    if (own > mine)
        own = mine;
    bool own_up = own > S->acked;
    if (!err && own_up) {
        evict_ctx x = { 0 };
        acked_ctx a = { r, S->acked, own_up ? own : S->acked, &x };
        err = shoal__store_write(r->store, acked_fn, &a);
        if (!err) {
            S->acked = a.to;
            x.all = false;
            err = evict_run(r, &x);
            gone = x.evicted;
            /* Draining: what our writes pinned may go now; full again once
             * no other author's change is left. */
            if (!err && S->draining) {
                err = drain(r);
                gone = true;
            }
        }
        shoal__free(x.keys);
        shoal__free(x.klens);
    }
    pthread_mutex_unlock(&r->mu);
    if (gone)
        shoal__net_notify(r);
    return err;
}

static int
vv_author_cmp(const void *a, const void *b)
{
    return memcmp(((const shoal__vventry *)a)->author, ((const shoal__vventry *)b)->author,
                  SHOAL_KEY_BYTES);
}

int
shoal__subs_vouched(shoal_replica *r, shoal__vventry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    const shoal__map *m = &r->subs->fullvv;
    int err = SHOAL_OK;
    if (m->n) {
        *out = shoal__calloc(m->n, sizeof **out);
        if (!*out)
            err = SHOAL_ENOMEM;
    }
    for (size_t i = 0; !err && i < m->cap; i++)
        if (m->s[i].key) {
            shoal__vventry *e = &(*out)[(*n)++];
            const fullent *v = m->s[i].val;
            memcpy(e->author, m->s[i].key, SHOAL_KEY_BYTES);
            e->seq = v->seq;
            memcpy(e->cid, v->cid, SHOAL__ID_BYTES);
        }
    pthread_mutex_unlock(&r->mu);
    if (*n > 1)
        qsort(*out, *n, sizeof **out, vv_author_cmp);
    return err;
}

bool
shoal__subs_vouched_get(shoal_replica *r, const uint8_t author[SHOAL_KEY_BYTES],
                        shoal__vventry *out)
{
    pthread_mutex_lock(&r->mu);
    const fullent *v = shoal__map_get(&r->subs->fullvv, author, SHOAL_KEY_BYTES);
    if (v) {
        memcpy(out->author, author, SHOAL_KEY_BYTES);
        out->seq = v->seq;
        memcpy(out->cid, v->cid, SHOAL__ID_BYTES);
    }
    pthread_mutex_unlock(&r->mu);
    return v != NULL;
}

void
shoal__subs_note_held(shoal_replica *r, const uint8_t *key, size_t klen)
{
    ring_push(r, key, klen, false);
}

typedef struct changes_ctx {
    shoal_replica *r;
    uint64_t from, to;
    shoal__buf *out;
    size_t count;
} changes_ctx;

static int
changes_fn(shoal__stxn *t, void *arg)
{
    changes_ctx *c = arg;
    shoal__buf docs;
    shoal__buf_init(&docs);
    shoal__mpw w;
    shoal__mpw_init(&w, &docs);
    int err = SHOAL_OK;
    for (uint64_t g = c->from; !err && g < c->to; g++) {
        uint8_t key[SHOAL__DOCKEY_MAX];
        size_t klen;
        if (shoal__subs_held_key(c->r, g, key, &klen) != SHOAL_OK)
            continue;
        const uint8_t *nul = memchr(key, 0, klen);
        size_t clen = (size_t)(nul - key);
        shoal__dmeta m;
        memset(&m, 0, sizeof m);
        /* An eviction is said as such even when we hold the document
         * again by now (a later entry says so): the peer may have sent
         * changes meanwhile that we no longer hold. */
        bool gone = c->r->subs->ringgone[g % SHOAL__HELD_RING];
        err = gone ? SHOAL_ENOTFOUND : shoal__dmeta_get(t, key, klen, &m);
        if (err == SHOAL_ENOTFOUND) {
            memset(&m, 0, sizeof m);
            err = SHOAL_OK;
        }
        if (err)
            break;
        /* Many concurrent heads: some of them (the sender then sends what
         * is not behind those, duplicates included). */
        size_t nh = m.nheads > SHOAL__MAX_HEADS ? SHOAL__MAX_HEADS : m.nheads;
        shoal__wheld e = { key, clen, nul + 1, klen - clen - 1, m.heads, nh };
        shoal__wire_put_held(&w, &e);
        shoal__dmeta_clear(&m);
        c->count++;
        err = w.err;
    }
    shoal__mpw o;
    shoal__mpw_init(&o, c->out);
    if (!err) {
        shoal__wire_put_held_header(&o, c->count);
        err = o.err;
    }
    if (!err)
        err = shoal__buf_append(c->out, docs.p, docs.len);
    shoal__buf_free(&docs);
    return err;
}

int
shoal__subs_held_changes(shoal_replica *r, uint64_t *seen, shoal__buf *out, size_t *count)
{
    *count = 0;
    pthread_mutex_lock(&r->mu);
    uint64_t gen = atomic_load(&r->held_gen);
    int err = SHOAL_OK;
    if (*seen != gen && (!r->subs->ring || gen - *seen > SHOAL__HELD_RING)) {
        *seen = gen;
        err = SHOAL_ENOTFOUND;
    } else if (*seen != gen) {
        uint64_t to = gen - *seen > SHOAL__HAVE_BATCH ? *seen + SHOAL__HAVE_BATCH : gen;
        changes_ctx c = { r, *seen, to, out, 0 };
        err = shoal__store_read(r->store, changes_fn, &c);
        if (!err) {
            *seen = to;
            *count = c.count;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return err;
}

uint64_t
shoal__subs_own_acked(shoal_replica *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t v = r->subs->acked;
    pthread_mutex_unlock(&r->mu);
    return v;
}
