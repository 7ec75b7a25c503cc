/*
 * test/transport/test_partial_sim.c - partial sync as a convergence
 * property, driven in memory (sessions over real replicas in temp dirs, no
 * sockets), with the link model of test_session.c's fault simulation.
 *
 * Odd seeds add permissions: every replica trusts one root, which
 * certifies the full replicas as relays (they read and write everything)
 * and each partial one for a random store (it reads and writes that
 * store's products); a write outside the writer's role fails with
 * SHOAL_EPERM and writes nothing, and property 2 below becomes: the
 * documents that match one of P's subscriptions AND that P's role reads
 * (docs/permissions.md, "Reading").
 *
 * Per seed: 4 to 6 replicas, one or two of them full, the rest partial
 * with one to three subscriptions each on collection "products" (by
 * store_id, category, price, a counter), joined by random links: the full
 * replicas in a tree, each partial one linked to a full one, and up to
 * three links more (partial to partial too).  Some replicas index
 * store_id and category.  A seeded scheduler commits random edits on
 * random replicas (fields that move documents in and out of views,
 * counters, lists, deletes, re-creations, transactions over two documents,
 * writes to a collection no one subscribes to; the partial replicas write
 * to documents in and out of their views too), changes a partial
 * replica's subscriptions now and then (add, replace, remove; one stays),
 * and moves frames with delays, drops, duplicates and reorders (damage:
 * the link resets with fresh sessions), and cuts and restores links.  Then
 * the faults stop and the links stay up until nothing moves; then every
 * link reconnects once more (fresh HELLOs with fresh summaries) and runs
 * until nothing moves.
 *
 * Then, on every seed:
 *   1. the full replicas hold the same full and visible digest;
 *   2. every partial replica P holds exactly the live documents that match
 *      at least one of P's subscriptions on a full replica (shoal_docs on
 *      P against the union of shoal_find on the full replica), holds no
 *      live document of a collection it does not subscribe to, and keeps
 *      no document (deleted ones included) outside its view: its own
 *      writes are all acknowledged by then (4), so none is pinned;
 *   3. every document P holds has the full replica's state (its full
 *      encoding and its heads);
 *   4. no write is lost: each replica's greatest own seq after a commit
 *      is at most the full replicas' vector entry for it; and nothing is
 *      pending anywhere (a change no one will complete is a lost one);
 *   5. shoal_replica_check passes on every replica, and every replica
 *      closes and opens again with the same full digest;
 * and every session is up, not failed and caught up, and every
 * subscription complete.  The same properties are also judged after the
 * first quiet phase (before the reconnect): there a violation is counted
 * (and printed with SHOAL_PARTIAL_SIM_VERBOSE), and fails the test only
 * with SHOAL_PARTIAL_SIM_STRICT=1.
 *
 * Before the simulation, directed cases: the smallest worlds that show
 * what the simulation found, each one a reproduction on its own.
 *
 * SHOAL_SEED picks the first seed, SHOAL_PARTIAL_SIM_SEEDS how many
 * seeds, SHOAL_PARTIAL_SIM_STEPS the steps per seed,
 * SHOAL_PARTIAL_SIM_PP=0 leaves out links between partial replicas, and
 * SHOAL_PARTIAL_SIM_TRACE=p3 prints every commit, frame and eviction that
 * concerns products/p3.  A failing seed is printed with its world, the
 * pending changes and what they wait for, and the command line that
 * repeats it.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core.h"
#include "crdt.h"
#include "shoal.h"
#include "transport.h"

enum {
    MAXNODES = 6,
    MAXLINKS = MAXNODES * (MAXNODES - 1) / 2,
    MAXSUBS = 3,
    NDOCS = 8,   /* products p0..p7 */
    NOTHER = 2,  /* other o0, o1: no one subscribes to it */
    NSTORES = 4, /* store_id 0..3 */
    QUIET_ROUNDS = 20000
};

static const char *const cats[] = { "a", "b", "c" };

/* ------------------------------------------------------- subscriptions */

/* Predicates a partial replica subscribes with; :s, :p and :q are bound
 * from the psub. */
static const char *const where_of[] = {
    "store_id == :s", "category IN (\"a\", \"b\")",    "category == \"c\"",
    "price < :p",     "store_id == :s AND price < :p", "qty > :q",
};
enum {
    NWHERE = sizeof where_of / sizeof where_of[0]
};

typedef struct psub {
    char name[16];
    int where; /* index into where_of */
    int64_t s, p, q;
} psub;

static void
psub_random(psub *s, const char *name)
{
    snprintf(s->name, sizeof s->name, "%s", name);
    s->where = (int)check_rand_below(NWHERE);
    s->s = (int64_t)check_rand_below(NSTORES);
    s->p = 10 + (int64_t)check_rand_below(80);
    s->q = (int64_t)check_rand_below(6);
}

static void
psub_text(const psub *s, char *out, size_t n)
{
    snprintf(out, n, "%s: %s (s=%lld p=%lld q=%lld)", s->name, where_of[s->where], (long long)s->s,
             (long long)s->p, (long long)s->q);
}

/* s as a query on r (its parameters bound); NULL on an error (counted). */
static shoal_query *
psub_query(shoal_replica *r, const psub *s)
{
    shoal_query *q = NULL;
    if (shoal_query_new(r, "products", where_of[s->where], &q) != SHOAL_OK) {
        fprintf(stderr, "query %s: %s\n", where_of[s->where], shoal_replica_errmsg(r));
        check_failures++;
        return NULL;
    }
    const struct {
        const char *name;
        int64_t v;
    } params[] = { { "s", s->s }, { "p", s->p }, { "q", s->q } };
    for (size_t i = 0; i < shoal_query_param_count(q); i++) {
        const char *pn = shoal_query_param_name(q, i);
        for (size_t k = 0; k < 3; k++)
            if (strcmp(pn, params[k].name) == 0) {
                shoal_value v = { .type = SHOAL_T_INT, .i = params[k].v };
                CHECK_EQ(shoal_query_bind(q, pn, &v), SHOAL_OK);
            }
    }
    return q;
}

/* ------------------------------------------------------------- replicas */

typedef struct node {
    char *dir;
    char name[16];
    uint64_t ms; /* fake clock */
    shoal_replica *r;
    shoal__host h;
    uint8_t key[32];
    uint64_t maxseq; /* our greatest seq after a local commit */
    bool partial;
    bool revoked;  /* roles: the root revoked it (it is out of every property) */
    int64_t store; /* roles: the store its certificate names (partial replicas) */
    bool auditor;  /* roles: certified as an auditor: every product, its cost sealed */
    psub subs[MAXSUBS];
    int nsubs;
    int subs_made; /* names handed out: s0, s1, ... */
} node;

static uint64_t
node_now(void *ctx)
{
    return ((node *)ctx)->ms;
}

/* Roles (odd seeds): every replica trusts this root, whose replica
 * publishes the policy and certifies each replica; NULL: open mode. */
static const uint8_t *sim_root;

static bool
node_open(node *n, int i)
{
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "n%d", i);
    n->dir = check_tmpdir("psim");
    n->ms = 1700000000000ull;
    if (!n->dir || !check_seed_identity(n->dir))
        return false;
    shoal_options *o;
    if (shoal_options_new(&o))
        return false;
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, node_now, n);
    if (sim_root)
        shoal_options_set_root(o, sim_root);
    shoal_err err = shoal_replica_open(&n->r, n->dir, o);
    shoal_options_free(o);
    if (err)
        return false;
    memcpy(n->key, shoal_replica_id(n->r), 32);
    shoal__host_init(&n->h, n->r);
    return true;
}

/* Close and open again (links down): what it holds must survive. */
static bool
node_reopen(node *n)
{
    shoal_replica_close(n->r);
    n->r = NULL;
    shoal_options *o;
    if (shoal_options_new(&o))
        return false;
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, node_now, n);
    shoal_err err = shoal_replica_open(&n->r, n->dir, o);
    shoal_options_free(o);
    if (err) {
        fprintf(stderr, "reopen %s: %s\n", n->name, shoal_strerror(err));
        n->r = NULL;
        return false;
    }
    shoal__host_init(&n->h, n->r);
    return true;
}

static void
node_close(node *n)
{
    shoal_replica_close(n->r);
    if (n->dir) {
        check_rmtree(n->dir);
        free(n->dir);
    }
    memset(n, 0, sizeof *n);
}

static uint64_t
vv_of(node *n, const uint8_t *author)
{
    shoal_vv *vv;
    if (shoal_replica_version(n->r, &vv) != SHOAL_OK)
        return 0;
    uint64_t s = shoal_vv_get(vv, author);
    shoal_vv_free(vv);
    return s;
}

static uint64_t
pending(node *n)
{
    uint64_t c = 0;
    CHECK_EQ(shoal_pending_count(n->r, &c), SHOAL_OK);
    return c;
}

static bool
node_subscribe(node *n, const psub *s)
{
    shoal_query *q = psub_query(n->r, s);
    if (!q)
        return false;
    shoal_err err = shoal_subscribe(n->r, s->name, q);
    shoal_query_free(q);
    if (err) {
        fprintf(stderr, "subscribe: %s\n", shoal_replica_errmsg(n->r));
        check_failures++;
    }
    return err == SHOAL_OK;
}

/* ------------------------------------------- what a replica holds, exactly */

/* A sorted set of strings ("coll\0id" keys or ids), malloc'd. */
typedef struct strset {
    char **s;
    size_t n, cap;
} strset;

static void
set_add(strset *x, const char *p, size_t len)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->s = realloc(x->s, x->cap * sizeof *x->s);
    }
    char *c = malloc(len + 1);
    memcpy(c, p, len);
    c[len] = 0;
    x->s[x->n++] = c;
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates. */
static void
set_norm(strset *x)
{
    if (x->n > 1)
        qsort(x->s, x->n, sizeof *x->s, str_cmp);
    size_t w = 0;
    for (size_t i = 0; i < x->n; i++) {
        if (w > 0 && strcmp(x->s[w - 1], x->s[i]) == 0)
            free(x->s[i]);
        else
            x->s[w++] = x->s[i];
    }
    x->n = w;
}

static bool
set_has(const strset *x, const char *s)
{
    return x->n > 0 && bsearch(&s, x->s, x->n, sizeof *x->s, str_cmp) != NULL;
}

static void
set_free(strset *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->s[i]);
    free(x->s);
    memset(x, 0, sizeof *x);
}

/* Live ids of coll on n (shoal_docs). */
static void
live_ids(node *n, const char *coll, strset *out)
{
    shoal_strlist *l = NULL;
    CHECK_EQ(shoal_docs(n->r, coll, &l), SHOAL_OK);
    for (size_t i = 0; i < shoal_strlist_count(l); i++)
        set_add(out, shoal_strlist_get(l, i), strlen(shoal_strlist_get(l, i)));
    shoal_strlist_free(l);
    set_norm(out);
}

/* Whether products/id on f has store_id == store (roles: what a
 * partial replica's certificate reads). */
static bool
in_store(node *f, const char *id, int64_t store)
{
    shoal_doc *d = NULL;
    size_t fi;
    shoal_value v;
    bool ok = shoal_doc_get(f->r, "products", id, &d) == SHOAL_OK &&
              shoal_doc_field_find(d, "store_id", &fi) == SHOAL_OK &&
              shoal_doc_field_value(d, fi, &v) == SHOAL_OK && v.type == SHOAL_T_INT && v.i == store;
    shoal_doc_free(d);
    return ok;
}

/* The ids of the live products on f that match one of p's
 * subscriptions and, with roles, that p's role reads. */
static void
view_ids(node *f, const node *p, strset *out)
{
    for (int i = 0; i < p->nsubs; i++) {
        shoal_query *q = psub_query(f->r, &p->subs[i]);
        shoal_rows *rows = NULL;
        if (q && shoal_find(f->r, q, &rows) == SHOAL_OK) {
            for (size_t k = 0; k < shoal_rows_count(rows); k++)
                if (!sim_root || p->auditor || in_store(f, shoal_rows_id(rows, k), p->store))
                    set_add(out, shoal_rows_id(rows, k), strlen(shoal_rows_id(rows, k)));
        } else {
            check_failures++;
        }
        shoal_rows_free(rows);
        shoal_query_free(q);
    }
    set_norm(out);
}

/* Every document the store of n has an entry for (deleted ones too), as
 * "coll/id". */
typedef struct held_ctx {
    strset *out;
} held_ctx;

static int
held_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
        void *arg)
{
    held_ctx *h = arg;
    shoal__dmeta m;
    int err = shoal__dmeta_parse(meta->p, meta->len, &m);
    if (err)
        return err;
    if (m.exists) {
        char k[SHOAL__DOCKEY_MAX + 1];
        memcpy(k, coll, clen);
        k[clen] = '/';
        memcpy(k + clen + 1, id, idlen);
        set_add(h->out, k, clen + 1 + idlen);
    }
    shoal__dmeta_clear(&m);
    return SHOAL_OK;
}

static int
held_fn(shoal__stxn *t, void *arg)
{
    return shoal__stxn_doc_scan(t, NULL, 0, held_cb, arg);
}

static void
held_docs(node *n, strset *out)
{
    held_ctx h = { out };
    pthread_mutex_lock(&n->r->mu);
    int err = shoal__store_read(n->r->store, held_fn, &h);
    pthread_mutex_unlock(&n->r->mu);
    CHECK_EQ(err, SHOAL_OK);
    set_norm(out);
}

/* One document's state as the store has it: its full encoding (every
 * field's CRDT state, tombstones, epoch), then its heads and whether it is
 * deleted.  *found: the store has it. */
typedef struct state_ctx {
    shoal_replica *r;
    const char *coll, *id;
    shoal__buf *out;
    bool found;
} state_ctx;

static int
state_fn(shoal__stxn *t, void *arg)
{
    state_ctx *c = arg;
    const uint8_t *coll = (const uint8_t *)c->coll, *id = (const uint8_t *)c->id;
    size_t clen = strlen(c->coll), idlen = strlen(c->id);
    shoal__sval mv;
    int err = shoal__stxn_doc_get(t, coll, clen, id, idlen, &mv);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    shoal__dmeta m;
    if (!err)
        err = shoal__dmeta_parse(mv.p, mv.len, &m);
    if (err)
        return err;
    if (m.exists) {
        shoal__doc *d = NULL;
        if (sim_root) {
            /* roles: sealed values as their commitments (an auditor holds
             * them REDACTED, a relay in clear: docs/digests.md) */
            shoal__wset ws;
            shoal__wset_init(&ws, c->r);
            shoal__wset_reset(&ws, t);
            shoal__wdoc *wd;
            err = shoal__wset_get(&ws, coll, clen, id, idlen, &wd);
            if (!err)
                err = shoal__wset_commit_doc(&ws, wd, &d);
            shoal__wset_free(&ws);
        } else {
            err = shoal__doc_load(c->r, t, &m, coll, clen, id, idlen, &d);
        }
        if (!err)
            err = shoal__doc_encode_full(d, c->out);
        shoal__doc_free(d);
        uint8_t tail[2] = { (uint8_t)m.deleted, (uint8_t)m.nheads };
        if (!err)
            err = shoal__buf_append(c->out, tail, sizeof tail);
        if (!err && m.nheads)
            err = shoal__buf_append(c->out, m.heads, m.nheads * SHOAL__ID_BYTES);
        c->found = !err;
    }
    shoal__dmeta_clear(&m);
    return err;
}

static bool
doc_state(node *n, const char *coll, const char *id, shoal__buf *out)
{
    state_ctx c = { n->r, coll, id, out, false };
    out->len = 0;
    pthread_mutex_lock(&n->r->mu);
    int err = shoal__store_read(n->r->store, state_fn, &c);
    pthread_mutex_unlock(&n->r->mu);
    CHECK_EQ(err, SHOAL_OK);
    return c.found;
}

/* The visible fields of a document, one line, for a failure report. */
static void
print_doc(const char *who, node *n, const char *coll, const char *id)
{
    shoal_doc *d = NULL;
    shoal_err err = shoal_doc_get(n->r, coll, id, &d);
    fprintf(stderr, "    %s %s/%s:", who, coll, id);
    if (err) {
        fprintf(stderr, " %s\n", shoal_strerror(err));
        return;
    }
    fprintf(stderr, " epoch %llu", (unsigned long long)shoal_doc_epoch(d));
    for (size_t i = 0; i < shoal_doc_field_count(d); i++) {
        shoal_value v;
        int64_t c;
        size_t len;
        fprintf(stderr, " %s=", shoal_doc_field_name(d, i));
        switch (shoal_doc_field_kind(d, i)) {
        case SHOAL_K_REGISTER:
            if (shoal_doc_field_value(d, i, &v) != SHOAL_OK)
                fprintf(stderr, "?");
            else if (v.type == SHOAL_T_INT)
                fprintf(stderr, "%lld", (long long)v.i);
            else if (v.type == SHOAL_T_STR)
                fprintf(stderr, "\"%.*s\"", (int)v.len, (const char *)v.ptr);
            else
                fprintf(stderr, "<type %d>", (int)v.type);
            break;
        case SHOAL_K_COUNTER:
            if (shoal_doc_field_counter(d, i, &c) == SHOAL_OK)
                fprintf(stderr, "counter(%lld)", (long long)c);
            break;
        case SHOAL_K_LIST:
            if (shoal_doc_field_list_len(d, i, &len) == SHOAL_OK)
                fprintf(stderr, "list(%zu)", len);
            break;
        }
    }
    fprintf(stderr, "\n");
    shoal_doc_free(d);
}

/* ------------------------------------------------- the pending set, shown */

typedef struct cinfo {
    bool found;
    char text[160];
} cinfo;

static const char *
who(const node *all, int nn, const uint8_t *key)
{
    for (int i = 0; i < nn; i++)
        if (memcmp(all[i].key, key, 32) == 0)
            return all[i].name;
    return "?";
}

/* (author, seq, doc) of change cid in n's store. */
typedef struct cid_ctx {
    const uint8_t *cid;
    const node *all;
    int nn;
    cinfo *out;
} cid_ctx;

static void
describe(const uint8_t *env, size_t len, const node *all, int nn, char *out, size_t n)
{
    size_t elen, blen;
    const uint8_t *body;
    shoal__change c;
    if (shoal__envelope_parse(env, len, &elen, &body, &blen) ||
        shoal__change_decode(body, blen, &c)) {
        snprintf(out, n, "(undecodable)");
        return;
    }
    uint8_t id[32];
    shoal__change_id(env, elen, id);
    char deps[40] = "";
    for (size_t i = 0; i < c.ndeps && i < 4; i++)
        snprintf(deps + strlen(deps), sizeof deps - strlen(deps), "%s%02x%02x", i ? "," : " ",
                 c.deps[i * 32], c.deps[i * 32 + 1]);
    snprintf(out, n, "%02x%02x %s@%llu %.*s/%.*s epoch %llu, %zu ops, %zu deps%s", id[0], id[1],
             who(all, nn, shoal__envelope_author(env)), (unsigned long long)c.seq, (int)c.coll_len,
             (const char *)c.coll, (int)c.doc_len, (const char *)c.doc, (unsigned long long)c.epoch,
             c.nops, c.ndeps, deps);
    shoal__change_clear(&c);
}

static int
cid_fn(shoal__stxn *t, void *arg)
{
    cid_ctx *c = arg;
    shoal__sval env;
    int err = shoal__stxn_change_get(t, c->cid, &env);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (err)
        return err;
    c->out->found = true;
    describe(env.p, env.len, c->all, c->nn, c->out->text, sizeof c->out->text);
    return SHOAL_OK;
}

static cinfo
change_info(node *n, const uint8_t *cid, const node *all, int nn)
{
    cinfo ci = { 0 };
    cid_ctx c = { cid, all, nn, &ci };
    pthread_mutex_lock(&n->r->mu);
    (void)shoal__store_read(n->r->store, cid_fn, &c);
    pthread_mutex_unlock(&n->r->mu);
    return ci;
}

typedef struct pend_ctx {
    node *n;
    const node *all;
    int nn;
    uint8_t (*missing)[SHOAL__ID_BYTES];
    size_t nmissing;
    shoal__stxn *t;
} pend_ctx;

static int
pend_cb(const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    (void)cid;
    pend_ctx *p = arg;
    char text[160];
    describe(env->p, env->len, p->all, p->nn, text, sizeof text);
    fprintf(stderr, "      pending on %s: %s\n", p->n->name, text);
    size_t elen, blen;
    const uint8_t *body;
    shoal__change c;
    if (shoal__envelope_parse(env->p, env->len, &elen, &body, &blen) ||
        shoal__change_decode(body, blen, &c))
        return SHOAL_OK;
    for (size_t i = 0; i < c.ndeps; i++) {
        shoal__sval e;
        const uint8_t *d = c.deps + i * SHOAL__ID_BYTES;
        if (shoal__stxn_change_get(p->t, d, &e) == SHOAL_OK || shoal__stxn_pending_has(p->t, d))
            continue;
        p->missing = realloc(p->missing, (p->nmissing + 1) * sizeof *p->missing);
        memcpy(p->missing[p->nmissing++], d, SHOAL__ID_BYTES);
    }
    shoal__change_clear(&c);
    return SHOAL_OK;
}

static int
pend_fn(shoal__stxn *t, void *arg)
{
    pend_ctx *p = arg;
    p->t = t;
    return shoal__stxn_pending_scan(t, pend_cb, p);
}

/* n's pending changes, and the dependencies they wait for as full
 * replica f has them. */
static void
dump_pending(node *n, node *f, const node *all, int nn)
{
    pend_ctx p = { .n = n, .all = all, .nn = nn };
    pthread_mutex_lock(&n->r->mu);
    (void)shoal__store_read(n->r->store, pend_fn, &p);
    pthread_mutex_unlock(&n->r->mu);
    for (size_t i = 0; i < p.nmissing; i++) {
        cinfo ci = change_info(f, p.missing[i], all, nn);
        fprintf(stderr, "      missing on %s: %s\n", n->name, ci.found ? ci.text : "(unknown)");
    }
    free(p.missing);
}

/* ------------------------------------------------- tracing one document */

/* SHOAL_PARTIAL_SIM_TRACE=p3 prints every commit, frame and eviction that
 * concerns products/p3, with the step number: a failing seed's story. */
static const char *trace_doc;
static int trace_step;

/* Does the envelope at env change the traced document?  *text: it. */
static bool
env_traced(const uint8_t *env, size_t len, const node *all, int nn, char *text, size_t n)
{
    size_t elen, blen;
    const uint8_t *body;
    shoal__change c;
    if (shoal__envelope_parse(env, len, &elen, &body, &blen) ||
        shoal__change_decode(body, blen, &c))
        return false;
    bool hit = c.coll_len == 8 && memcmp(c.coll, "products", 8) == 0 &&
               c.doc_len == strlen(trace_doc) && memcmp(c.doc, trace_doc, c.doc_len) == 0;
    shoal__change_clear(&c);
    if (hit)
        describe(env, len, all, nn, text, n);
    return hit;
}

static void
trace_frame(const node *from, const node *to, const uint8_t *p, size_t n, const char *fate,
            const node *all, int nn)
{
    if (!trace_doc)
        return;
    shoal__frame f;
    if (shoal__frame_decode(p, n, &f) != SHOAL_OK)
        return;
    size_t dl = strlen(trace_doc);
    if (f.type == SHOAL__F_BATCH) {
        size_t off = 0;
        for (uint64_t i = 0; i < f.count && off < f.envs_len; i++) {
            size_t elen, blen;
            const uint8_t *body;
            char text[160];
            if (shoal__envelope_parse(f.envs + off, f.envs_len - off, &elen, &body, &blen))
                break;
            if (env_traced(f.envs + off, elen, all, nn, text, sizeof text))
                fprintf(stderr, "[%d] %s -> %s BATCH %llu%s: %s\n", trace_step, from->name,
                        to->name, (unsigned long long)f.n, fate, text);
            off += elen;
        }
    } else if (f.type == SHOAL__F_LEAVE && f.idlen == dl && memcmp(f.id, trace_doc, dl) == 0) {
        char heads[64] = "";
        for (size_t k = 0; k < f.nheads && k < 8; k++)
            snprintf(heads + strlen(heads), sizeof heads - strlen(heads), " %02x%02x",
                     f.heads[k * 32], f.heads[k * 32 + 1]);
        fprintf(stderr, "[%d] %s -> %s LEAVE%s reason %llu, heads%s\n", trace_step, from->name,
                to->name, fate, (unsigned long long)f.reason, heads);
    } else if (f.type == SHOAL__F_HAVE) {
        for (size_t i = 0; i < f.nheld; i++)
            if (f.held[i].idlen == dl && memcmp(f.held[i].id, trace_doc, dl) == 0) {
                char heads[64] = "";
                for (size_t k = 0; k < f.held[i].nheads && k < 8; k++)
                    snprintf(heads + strlen(heads), sizeof heads - strlen(heads), " %02x%02x",
                             f.held[i].heads[k * 32], f.held[i].heads[k * 32 + 1]);
                fprintf(stderr, "[%d] %s -> %s HAVE%s: %s%s\n", trace_step, from->name, to->name,
                        fate, f.held[i].nheads ? "holds it, heads" : "does not hold it", heads);
            }
    } else if (f.type == SHOAL__F_HELLO || f.type == SHOAL__F_SUBSCRIBE) {
        bool held = false;
        size_t nh = 0;
        char heads[64] = "";
        for (size_t i = 0; i < f.nheld; i++)
            if (f.held[i].idlen == dl && memcmp(f.held[i].id, trace_doc, dl) == 0) {
                held = true;
                nh = f.held[i].nheads;
                for (size_t k = 0; k < nh && k < 8; k++)
                    snprintf(heads + strlen(heads), sizeof heads - strlen(heads), " %02x%02x",
                             f.held[i].heads[k * 32], f.held[i].heads[k * 32 + 1]);
            }
        if (f.type == SHOAL__F_SUBSCRIBE || f.version == SHOAL__PROTO_PARTIAL)
            fprintf(stderr, "[%d] %s -> %s %s%s (%zu subs; %s%s)\n", trace_step, from->name,
                    to->name, f.type == SHOAL__F_HELLO ? "HELLO 2" : "SUBSCRIBE", fate, f.nsubs,
                    held ? (nh ? "holds it, heads" : "holds it, no heads") : "does not hold it",
                    heads);
    }
    shoal__frame_clear(&f);
}

/* Evictions of the traced document on n (its "left" events). */
static void
trace_left(node *n)
{
    if (!trace_doc)
        return;
    shoal_event *e = NULL;
    while (shoal_event_next(n->r, 0, &e) == SHOAL_OK) {
        if (shoal_event_left(e) && strcmp(shoal_event_doc_id(e), trace_doc) == 0)
            fprintf(stderr, "[%d] %s evicts it\n", trace_step, n->name);
        shoal_event_free(e);
    }
}

/* ---------------------------------------------------------------- links */

typedef struct msg {
    uint8_t *p;
    size_t n;
    int hold; /* steps before it may be delivered */
} msg;

typedef struct queue {
    msg *m;
    size_t n, cap;
} queue;

static void
q_add(queue *q, const uint8_t *p, size_t n, int hold)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->m = realloc(q->m, q->cap * sizeof *q->m);
    }
    msg *m = &q->m[q->n++];
    m->p = malloc(n ? n : 1);
    memcpy(m->p, p, n);
    m->n = n;
    m->hold = hold;
}

static msg
q_take(queue *q, size_t i)
{
    msg m = q->m[i];
    memmove(&q->m[i], &q->m[i + 1], (q->n - i - 1) * sizeof *q->m);
    q->n--;
    return m;
}

static void
q_clear(queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->m[i].p);
    free(q->m);
    memset(q, 0, sizeof *q);
}

/* A link between nodes a and b: s[0] lives at a, s[1] at b; q[0] carries
 * a -> b, q[1] b -> a (test_session.c's model). */
typedef struct link {
    node *n[2];
    shoal__session *s[2];
    queue q[2];
    bool up;
    bool damaged; /* a frame was lost: reset after a timeout */
    bool tainted; /* a frame was dropped, duplicated or reordered */
    int timer;    /* steps until reset (damaged) or restore (down) */
} link_t;

static void
link_up(link_t *l)
{
    for (int i = 0; i < 2; i++) {
        l->s[i] = shoal__session_new(&l->n[i]->h, l->n[i]->key, l->n[1 - i]->key);
        CHECK(l->s[i] != NULL);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(shoal__session_start(l->s[i], l->n[i]->ms), SHOAL_OK);
    l->up = true;
    l->damaged = false;
    l->tainted = false;
}

static void
link_down(link_t *l)
{
    for (int i = 0; i < 2; i++) {
        shoal__session_free(l->s[i]);
        l->s[i] = NULL;
        q_clear(&l->q[i]);
    }
    l->up = false;
    l->damaged = false;
}

/* ------------------------------------------------------------ the world */

typedef struct sim {
    uint64_t seed;
    int nn, nfull, nl;
    bool pp; /* links between partial replicas allowed */
    node n[MAXNODES];
    link_t l[MAXLINKS];
    uint64_t commits, subchanges, drops, dups, reorders, cuts, fails;
    uint64_t refused; /* roles: commits the writer's role did not allow (SHOAL_EPERM) */
    uint64_t revoked_cut, revoked_max; /* roles: the revocation's cut and its target's last seq */
} sim;

/* The node's log grew or its set changed: every live session of it may
 * have something to send (what the engine does on shoal__net_notify). */
static void
notify(sim *w, node *n)
{
    for (int i = 0; i < w->nl; i++)
        for (int j = 0; j < 2; j++)
            if (w->l[i].up && w->l[i].n[j] == n)
                shoal__session_changed(w->l[i].s[j]);
}

/* One step of link l: collect frames, deliver some, with faults when
 * faults is set.  Returns what moved (0: quiet). */
static int
link_step(sim *w, link_t *l, bool faults)
{
    if (!l->up && (l->n[0]->revoked || l->n[1]->revoked))
        return 0;
    if (!l->up) {
        if (--l->timer <= 0) {
            link_up(l);
            if (trace_doc)
                fprintf(stderr, "[%d] link %s-%s up\n", trace_step, l->n[0]->name, l->n[1]->name);
        }
        return 1;
    }
    int moved = 0;
    for (int i = 0; i < 2; i++) {
        const uint8_t *f;
        size_t n;
        int budget = faults ? (int)check_rand_below(4) : 1 << 30;
        while (budget-- > 0 && shoal__session_next(l->s[i], &f, &n) == 1) {
            int hold = faults && check_rand_below(4) == 0 ? (int)check_rand_below(6) : 0;
            q_add(&l->q[i], f, n, hold);
            moved++;
        }
    }
    for (int i = 0; i < 2; i++) {
        queue *q = &l->q[i];
        for (size_t k = 0; k < q->n; k++)
            if (q->m[k].hold > 0)
                q->m[k].hold--;
        if (faults && q->n >= 2 && check_rand_below(40) == 0) {
            size_t x = check_rand_below(q->n - 1);
            msg t = q->m[x];
            q->m[x] = q->m[x + 1];
            q->m[x + 1] = t;
            w->reorders++;
            l->tainted = true;
        }
        size_t budget = faults ? 1 + check_rand_below(3) : q->n;
        while (q->n && budget-- && q->m[0].hold == 0) {
            msg m = q_take(q, 0);
            node *to = l->n[1 - i];
            unsigned r = faults ? (unsigned)check_rand_below(100) : 100;
            trace_frame(l->n[i], to, m.p, m.n, r < 2 ? " (dropped)" : "", w->n, w->nn);
            if (r < 2) {
                w->drops++;
                l->damaged = l->tainted = true;
                if (l->timer <= 0)
                    l->timer = 5 + (int)check_rand_below(20);
            } else {
                int times = r < 4 ? 2 : 1;
                if (times == 2) {
                    w->dups++;
                    l->tainted = true;
                }
                for (int t = 0; t < times; t++)
                    (void)shoal__session_recv(l->s[1 - i], m.p, m.n, to->ms);
                notify(w, to);
                trace_left(to);
            }
            free(m.p);
            moved++;
        }
        moved += (int)q->n; /* held frames: not quiet yet */
    }
    shoal__session_stats a, b;
    shoal__session_get_stats(l->s[0], &a);
    shoal__session_get_stats(l->s[1], &b);
    if (a.failed || b.failed) {
        /* Only damage may fail a session: delays and cuts never do. */
        if (!l->tainted) {
            fprintf(stderr, "seed %llu: session %s-%s failed on an undamaged link: %s / %s\n",
                    (unsigned long long)w->seed, l->n[0]->name, l->n[1]->name,
                    shoal__session_failure(l->s[0]), shoal__session_failure(l->s[1]));
            check_failures++;
        }
        w->fails++;
        if (trace_doc)
            fprintf(stderr, "[%d] link %s-%s fails: %s / %s\n", trace_step, l->n[0]->name,
                    l->n[1]->name, shoal__session_failure(l->s[0]),
                    shoal__session_failure(l->s[1]));
        link_down(l);
        l->timer = 1 + (int)(faults ? check_rand_below(5) : 0);
        return moved + 1;
    }
    if (l->damaged && --l->timer <= 0) {
        /* Heartbeat timeout: the link is declared dead and reconnects. */
        link_down(l);
        l->timer = 1;
        return moved + 1;
    }
    return moved;
}

/* Every link up (fresh sessions where fresh is set or a link is down or
 * damaged), then no faults until nothing moves for two rounds. */
static bool
quiesce(sim *w, bool fresh)
{
    for (int i = 0; i < w->nl; i++) {
        link_t *l = &w->l[i];
        if (l->up && (fresh || l->damaged))
            link_down(l);
        if (!l->up && !l->n[0]->revoked && !l->n[1]->revoked)
            link_up(l); /* a revoked replica is refused: its links stay down */
    }
    int quiet = 0;
    for (int round = 0; round < QUIET_ROUNDS && quiet < 2; round++) {
        int moved = 0;
        for (int i = 0; i < w->nl; i++)
            moved += link_step(w, &w->l[i], false);
        quiet = moved ? 0 : quiet + 1;
    }
    return quiet >= 2;
}

/* ------------------------------------------------------------ the edits */

static void
v_int(shoal_value *v, int64_t i)
{
    *v = (shoal_value){ .type = SHOAL_T_INT, .i = i };
}

static void
v_str(shoal_value *v, const char *s)
{
    *v = (shoal_value){ .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = strlen(s) };
}

/* One field edit that may move doc in or out of views. */
static shoal_err
edit_field(shoal_txn *t, const char *doc)
{
    shoal_value v;
    switch (check_rand_below(3)) {
    case 0:
        v_int(&v, (int64_t)check_rand_below(NSTORES));
        return shoal_txn_set(t, "products", doc, "store_id", &v);
    case 1:
        v_str(&v, cats[check_rand_below(3)]);
        return shoal_txn_set(t, "products", doc, "category", &v);
    default:
        v_int(&v, (int64_t)check_rand_below(100));
        return shoal_txn_set(t, "products", doc, "price", &v);
    }
}

/* One random transaction on n; updates n->maxseq. */
static void
random_edit(sim *w, node *n)
{
    shoal_txn *t;
    CHECK_EQ(shoal_txn_begin(n->r, &t), SHOAL_OK);
    char doc[16], doc2[16];
    snprintf(doc, sizeof doc, "p%d", (int)check_rand_below(NDOCS));
    snprintf(doc2, sizeof doc2, "p%d", (int)check_rand_below(NDOCS));
    static const char *const unsettable[] = { "store_id", "category", "price" };
    shoal_value v;
    shoal_err err;
    unsigned what = (unsigned)check_rand_below(100);
    if (what < 45) {
        err = edit_field(t, doc);
    } else if (what < 50) {
        /* a restricted field (roles: sealed, an auditor may not read it) */
        v_int(&v, (int64_t)check_rand_below(1000));
        err = shoal_txn_set(t, "products", doc, "cost", &v);
    } else if (what < 58) {
        err = shoal_txn_counter_add(t, "products", doc, "qty", (int64_t)check_rand_below(9) - 3);
    } else if (what < 63) {
        v_str(&v, n->name);
        err = shoal_txn_list_insert(t, "products", doc, "tags", 0, &v);
    } else if (what < 68) {
        err = shoal_txn_unset(t, "products", doc, unsettable[check_rand_below(3)]);
    } else if (what < 76) {
        err = shoal_txn_delete(t, "products", doc);
    } else if (what < 80) {
        /* Deleted and re-created in one transaction. */
        err = shoal_txn_delete(t, "products", doc);
        if (!err)
            err = edit_field(t, doc);
    } else if (what < 90) {
        /* Two documents in one transaction (one change each). */
        err = edit_field(t, doc);
        if (!err)
            err = edit_field(t, doc2);
    } else if (what < 95) {
        char o[16];
        snprintf(o, sizeof o, "o%d", (int)check_rand_below(NOTHER));
        v_int(&v, (int64_t)check_rand_below(100));
        err = shoal_txn_set(t, "other", o, "x", &v);
    } else {
        /* A whole product, as an application creates one. */
        err = shoal_txn_delete(t, "products", doc);
        for (int k = 0; !err && k < 3; k++)
            err = edit_field(t, doc);
    }
    if (err) {
        fprintf(stderr, "seed %llu: edit on %s: %s\n", (unsigned long long)w->seed, n->name,
                shoal_strerror(err));
        check_failures++;
        shoal_txn_abort(t);
        return;
    }
    err = shoal_txn_commit(t);
    if (err == SHOAL_EPERM && sim_root) {
        w->refused++; /* outside the writer's role: nothing written */
        return;
    }
    if (err) {
        fprintf(stderr, "seed %llu: commit on %s: %s (%s)\n", (unsigned long long)w->seed, n->name,
                shoal_strerror(err), shoal_replica_errmsg(n->r));
        check_failures++;
        return;
    }
    /* Right after a commit our newest change is in the log: the vector's
     * entry is its seq (a no-op commit makes none). */
    uint64_t s = vv_of(n, n->key);
    if (s > n->maxseq)
        n->maxseq = s;
    w->commits++;
    notify(w, n);
    if (trace_doc && what < 90 &&
        (strcmp(doc, trace_doc) == 0 || (what >= 80 && strcmp(doc2, trace_doc) == 0))) {
        fprintf(stderr, "[%d] %s commits %s@%llu (edit kind %u) on it; now:\n", trace_step, n->name,
                n->name, (unsigned long long)s, what);
        print_doc(n->name, n, "products", trace_doc);
    }
    trace_left(n);
}

/* Add, replace or remove one subscription of partial replica n (it keeps
 * at least one: it stays partial). */
static void
change_subs(sim *w, node *n)
{
    unsigned what = (unsigned)check_rand_below(3);
    if (what == 0 && n->nsubs < MAXSUBS) {
        char name[16];
        snprintf(name, sizeof name, "s%d", n->subs_made++);
        psub_random(&n->subs[n->nsubs], name);
        if (node_subscribe(n, &n->subs[n->nsubs]))
            n->nsubs++;
    } else if (what == 1 && n->nsubs > 1) {
        int k = (int)check_rand_below((uint64_t)n->nsubs);
        CHECK_EQ(shoal_unsubscribe(n->r, n->subs[k].name), SHOAL_OK);
        n->subs[k] = n->subs[n->nsubs - 1];
        n->nsubs--;
    } else {
        int k = (int)check_rand_below((uint64_t)n->nsubs);
        char name[16];
        memcpy(name, n->subs[k].name, sizeof name);
        psub_random(&n->subs[k], name);
        (void)node_subscribe(n, &n->subs[k]);
    }
    w->subchanges++;
    notify(w, n);
    if (trace_doc) {
        fprintf(stderr, "[%d] %s changes its subscriptions:", trace_step, n->name);
        for (int k = 0; k < n->nsubs; k++) {
            char t[160];
            psub_text(&n->subs[k], t, sizeof t);
            fprintf(stderr, " [%s]", t);
        }
        fprintf(stderr, "\n");
    }
    trace_left(n);
}

/* ---------------------------------------------------------- the checks */

/* A violation: in the final phase a failure, after the first quiet phase a
 * count (strict: a failure too). */
typedef struct judge {
    sim *w;
    bool hard;
    const char *phase;
    int bad;
} judge;

static void judge_fail(judge *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
judge_fail(judge *j, const char *fmt, ...)
{
    j->bad++;
    if (j->hard)
        check_failures++;
    if (!j->hard && !getenv("SHOAL_PARTIAL_SIM_VERBOSE"))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "seed %llu, %s: ", (unsigned long long)j->w->seed, j->phase);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void
print_problem(void *arg, const char *problem)
{
    fprintf(stderr, "    check %s: %s\n", (const char *)arg, problem);
}

static void
judge_all(judge *j)
{
    sim *w = j->w;
    node *f0 = &w->n[0];
    uint8_t a[SHOAL_DIGEST_BYTES], b[SHOAL_DIGEST_BYTES];
    /* 1. The full replicas agree. */
    for (int i = 1; i < w->nfull; i++)
        for (int full = 0; full < 2; full++) {
            CHECK_EQ(shoal_digest(f0->r, full, a), SHOAL_OK);
            CHECK_EQ(shoal_digest(w->n[i].r, full, b), SHOAL_OK);
            if (memcmp(a, b, sizeof a) != 0)
                judge_fail(j, "1: %s digests of %s and %s differ", full ? "full" : "visible",
                           f0->name, w->n[i].name);
        }
    /* 4. No write lost, nothing pending (a revoked replica is refused
     * everywhere: what it holds is its own affair). */
    for (int i = 0; i < w->nn; i++) {
        node *n = &w->n[i];
        if (n->revoked)
            continue;
        for (int k = 0; k < w->nfull; k++) {
            uint64_t have = vv_of(&w->n[k], n->key);
            if (have < n->maxseq)
                judge_fail(j, "4: %s holds %s's changes up to %llu of %llu", w->n[k].name, n->name,
                           (unsigned long long)have, (unsigned long long)n->maxseq);
        }
        uint64_t p = pending(n);
        if (p) {
            judge_fail(j, "4: %s (%s) has %llu pending changes", n->name,
                       n->partial ? "partial" : "full", (unsigned long long)p);
            if (j->hard)
                dump_pending(n, f0, w->n, w->nn);
        }
    }
    /* 2 and 3: what each partial replica holds. */
    shoal__buf sp, sf;
    shoal__buf_init(&sp);
    shoal__buf_init(&sf);
    for (int i = w->nfull; i < w->nn; i++) {
        node *p = &w->n[i];
        if (p->revoked)
            continue;
        strset held = { 0 }, want = { 0 }, other = { 0 }, all = { 0 };
        live_ids(p, "products", &held);
        view_ids(f0, p, &want);
        live_ids(p, "other", &other);
        held_docs(p, &all);
        for (size_t k = 0; k < want.n; k++)
            if (!set_has(&held, want.s[k])) {
                judge_fail(j, "2: %s lacks products/%s (in its view on %s)", p->name, want.s[k],
                           f0->name);
                if (j->hard)
                    print_doc(f0->name, f0, "products", want.s[k]);
            }
        for (size_t k = 0; k < held.n; k++)
            if (!set_has(&want, held.s[k])) {
                judge_fail(j, "2: %s holds products/%s (not in its view on %s)", p->name, held.s[k],
                           f0->name);
                if (j->hard) {
                    print_doc(p->name, p, "products", held.s[k]);
                    print_doc(f0->name, f0, "products", held.s[k]);
                }
            }
        for (size_t k = 0; k < other.n; k++)
            judge_fail(j, "2: %s holds other/%s (no subscription there)", p->name, other.s[k]);
        /* Deleted documents kept (tombstones) outside the view. */
        for (size_t k = 0; k < all.n; k++) {
            const char *slash = strchr(all.s[k], '/');
            bool prod = (size_t)(slash - all.s[k]) == 8 && memcmp(all.s[k], "products", 8) == 0;
            if (prod && set_has(&held, slash + 1))
                continue;
            if (prod && set_has(&want, slash + 1))
                continue; /* reported above */
            if (sim_root && (size_t)(slash - all.s[k]) == 5 && memcmp(all.s[k], "_auth", 5) == 0)
                continue; /* the authority: in every view */
            if (!prod && !set_has(&other, slash + 1))
                judge_fail(j, "2: %s keeps %s (deleted, outside its view)", p->name, all.s[k]);
            else if (prod)
                judge_fail(j, "2: %s keeps %s (deleted, outside its view)", p->name, all.s[k]);
        }
        /* An auditor holds no cost in clear. */
        for (size_t k = 0; p->auditor && k < all.n; k++) {
            const char *slash = strchr(all.s[k], '/');
            if ((size_t)(slash - all.s[k]) != 8 || memcmp(all.s[k], "products", 8) != 0)
                continue;
            shoal_doc *d = NULL;
            size_t fi;
            shoal_value v;
            if (shoal_doc_get(p->r, "products", slash + 1, &d) == SHOAL_OK &&
                shoal_doc_field_find(d, "cost", &fi) == SHOAL_OK &&
                shoal_doc_field_value(d, fi, &v) == SHOAL_OK && v.type != SHOAL_T_REDACTED) {
                fprintf(stderr, "seed %llu: auditor %s reads the cost of %s\n",
                        (unsigned long long)w->seed, p->name, all.s[k]);
                check_failures++;
            }
            shoal_doc_free(d);
        }
        /* 3. Each document it holds has the full replica's state (with
         * roles: the state its commitments say). */
        for (size_t k = 0; k < all.n; k++) {
            char coll[16];
            const char *slash = strchr(all.s[k], '/');
            size_t cl = (size_t)(slash - all.s[k]);
            if (cl >= sizeof coll)
                continue;
            memcpy(coll, all.s[k], cl);
            coll[cl] = 0;
            bool fp = doc_state(p, coll, slash + 1, &sp);
            bool ff = doc_state(f0, coll, slash + 1, &sf);
            if (!fp)
                continue;
            if (!ff) {
                judge_fail(j, "3: %s holds %s, which %s never saw", p->name, all.s[k], f0->name);
            } else if (sp.len != sf.len || (sp.len && memcmp(sp.p, sf.p, sp.len) != 0)) {
                judge_fail(j, "3: %s's %s differs from %s's", p->name, all.s[k], f0->name);
                if (j->hard) {
                    print_doc(p->name, p, coll, slash + 1);
                    print_doc(f0->name, f0, coll, slash + 1);
                }
            }
        }
        /* Every subscription complete (a peer sent all it matched). */
        shoal_subs *L = NULL;
        CHECK_EQ(shoal_subscriptions(p->r, &L), SHOAL_OK);
        CHECK_EQ(shoal_subs_count(L), p->nsubs);
        for (size_t k = 0; k < shoal_subs_count(L); k++)
            if (!shoal_subs_complete(L, k))
                judge_fail(j, "%s's subscription %s is not complete", p->name,
                           shoal_subs_name(L, k));
        shoal_subs_free(L);
        set_free(&held);
        set_free(&want);
        set_free(&other);
        set_free(&all);
    }
    shoal__buf_free(&sp);
    shoal__buf_free(&sf);
    /* 5. Every replica passes its own check. */
    for (int i = 0; i < w->nn; i++) {
        shoal_check_stats st;
        shoal_err err =
            shoal_replica_check(w->n[i].r, j->hard ? print_problem : NULL, w->n[i].name, &st);
        if (err)
            judge_fail(j, "5: shoal_replica_check on %s: %s (%llu problems)", w->n[i].name,
                       shoal_strerror(err), (unsigned long long)st.problems);
    }
    /* The sessions: up, not failed, caught up. */
    for (int i = 0; i < w->nl; i++) {
        link_t *l = &w->l[i];
        if (l->n[0]->revoked || l->n[1]->revoked)
            continue; /* refused */
        if (!l->up) {
            judge_fail(j, "link %s-%s is down", l->n[0]->name, l->n[1]->name);
            continue;
        }
        for (int k = 0; k < 2; k++) {
            shoal__session_stats st;
            shoal__session_get_stats(l->s[k], &st);
            if (st.failed || !st.caught_up || st.lag)
                judge_fail(j, "session %s->%s: failed %d (%s), caught up %d, lag %llu",
                           l->n[k]->name, l->n[1 - k]->name, (int)st.failed,
                           shoal__session_failure(l->s[k]), (int)st.caught_up,
                           (unsigned long long)st.lag);
        }
    }
}

/* -------------------------------------------------------------- one seed */

static bool
linked(const sim *w, int a, int b)
{
    for (int i = 0; i < w->nl; i++)
        if ((w->l[i].n[0] == &w->n[a] && w->l[i].n[1] == &w->n[b]) ||
            (w->l[i].n[0] == &w->n[b] && w->l[i].n[1] == &w->n[a]))
            return true;
    return false;
}

static void
add_link(sim *w, int a, int b)
{
    link_t *l = &w->l[w->nl++];
    l->n[0] = &w->n[a];
    l->n[1] = &w->n[b];
}

static void
print_world(const sim *w)
{
    fprintf(stderr, "  replicas:");
    for (int i = 0; i < w->nn; i++)
        fprintf(stderr, " %s(%s)", w->n[i].name, w->n[i].partial ? "partial" : "full");
    fprintf(stderr, "\n  links:");
    for (int i = 0; i < w->nl; i++)
        fprintf(stderr, " %s-%s", w->l[i].n[0]->name, w->l[i].n[1]->name);
    fprintf(stderr, "\n");
    for (int i = w->nfull; i < w->nn; i++) {
        if (sim_root)
            fprintf(stderr, "  %s reads store %lld and subscribes:", w->n[i].name,
                    (long long)w->n[i].store);
        else
            fprintf(stderr, "  %s subscribes:", w->n[i].name);
        for (int k = 0; k < w->n[i].nsubs; k++) {
            char t[160];
            psub_text(&w->n[i].subs[k], t, sizeof t);
            fprintf(stderr, " [%s]", t);
        }
        fprintf(stderr, "\n");
    }
}

static const char SIM_POLICY[] =
    "{\"collections\": {\"products\": {\"guard\": [\"store_id\"],"
    "   \"queryable\": [\"store_id\", \"category\", \"price\", \"qty\"]}, \"other\": {}},"
    " \"roles\": {"
    "  \"relay\": {\"products\": {\"where\": \"TRUE\", \"read\": \"*\", \"write\": \"*\","
    "                        \"create\": true, \"delete\": true},"
    "            \"other\": {\"where\": \"TRUE\", \"read\": \"*\", \"write\": \"*\","
    "                      \"create\": true, \"delete\": true}},"
    "  \"auditor\": {\"products\": {\"where\": \"TRUE\", \"read\": {\"except\": [\"cost\"]}},"
    "            \"other\": {\"where\": \"TRUE\", \"read\": \"*\"}},"
    "  \"store\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "                        \"write\": \"*\", \"create\": true, \"delete\": true},"
    "            \"other\": {\"where\": \"TRUE\", \"read\": \"*\", \"write\": \"*\","
    "                      \"create\": true, \"delete\": true}}}}";

static uint64_t
root_now(void *ctx)
{
    (void)ctx;
    return 1700000000000ull - 5000; /* before every replica's first change */
}

/* The root of a world with roles: a replica that trusts its own key. */
static shoal_replica *
root_open(const char *dir, const uint8_t *root)
{
    shoal_options *o;
    if (shoal_options_new(&o))
        return NULL;
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, root_now, NULL);
    if (root)
        shoal_options_set_root(o, root);
    shoal_replica *r = NULL;
    if (shoal_replica_open(&r, dir, o) != SHOAL_OK)
        r = NULL;
    shoal_options_free(o);
    return r;
}

/* Roles: the root publishes the policy and certifies every replica, the
 * full ones as relays (they read everything), each partial one for a
 * random store (it reads that store's products); every replica takes
 * that authority before any link is up. */
static bool
roles_setup(sim *w, shoal_replica *root)
{
    uint64_t v;
    if (shoal_auth_policy(root, SIM_POLICY, strlen(SIM_POLICY), &v) != SHOAL_OK) {
        fprintf(stderr, "policy: %s\n", shoal_replica_errmsg(root));
        return false;
    }
    for (int i = 0; i < w->nn; i++) {
        node *n = &w->n[i];
        n->store = (int64_t)check_rand_below(NSTORES);
        n->auditor = n->partial && check_rand_below(3) == 0;
        const char *roles[] = { n->partial ? (n->auditor ? "auditor" : "store") : "relay" },
                   *an[] = { "store_id" };
        shoal_value av[] = { { .type = SHOAL_T_INT, .i = n->store } };
        shoal_cert_spec spec = { "u", roles, 1, an, av, 1, 0 };
        if (shoal_auth_grant(root, n->key, &spec) != SHOAL_OK) {
            fprintf(stderr, "grant: %s\n", shoal_replica_errmsg(root));
            return false;
        }
    }
    uint8_t *b = NULL;
    size_t len = 0;
    bool ok = shoal_export(root, NULL, &b, &len) == SHOAL_OK;
    for (int i = 0; ok && i < w->nn; i++)
        ok = shoal_import(w->n[i].r, b, len, NULL) == SHOAL_OK;
    shoal_free(b);
    return ok;
}

static bool
sim_run(uint64_t seed, int steps, bool pp_ok)
{
    int before = check_failures;
    check_rand_reseed(seed);
    sim *w = calloc(1, sizeof *w);
    w->seed = seed;
    w->nn = 4 + (int)check_rand_below(MAXNODES - 3);
    w->nfull = 1 + (int)check_rand_below(2);
    w->pp = pp_ok && check_rand_below(2);
    /* Odd seeds: permissions, read filtering among them. */
    char *rdir = NULL;
    shoal_replica *root = NULL;
    uint8_t rkey[32];
    if (seed & 1) {
        rdir = check_tmpdir("psim-root");
        root = rdir ? root_open(rdir, NULL) : NULL;
        if (root) {
            memcpy(rkey, shoal_replica_id(root), 32);
            shoal_replica_close(root);
            root = root_open(rdir, rkey);
        }
        if (!root) {
            check_failures++;
            goto out;
        }
        sim_root = rkey;
    }
    for (int i = 0; i < w->nn; i++) {
        if (!node_open(&w->n[i], i)) {
            check_failures++;
            goto out;
        }
        w->n[i].ms += check_rand_below(2000); /* some clock skew */
        w->n[i].partial = i >= w->nfull;
    }
    if (root && !roles_setup(w, root)) {
        check_failures++;
        goto out;
    }
    /* Indexes on some replicas: the feed's queries then use them. */
    for (int i = 0; i < w->nn; i++)
        if (check_rand_below(2)) {
            CHECK_EQ(shoal_index_add(w->n[i].r, "products", "store_id"), SHOAL_OK);
            CHECK_EQ(shoal_index_add(w->n[i].r, "products", "category"), SHOAL_OK);
        }
    /* Products on the first full replica. */
    for (int d = 0; d < NDOCS; d++) {
        shoal_txn *t;
        char doc[16];
        snprintf(doc, sizeof doc, "p%d", d);
        CHECK_EQ(shoal_txn_begin(w->n[0].r, &t), SHOAL_OK);
        for (int k = 0; k < 3; k++)
            CHECK_EQ(edit_field(t, doc), SHOAL_OK);
        CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    }
    w->n[0].maxseq = vv_of(&w->n[0], w->n[0].key);
    for (int i = w->nfull; i < w->nn; i++) {
        node *n = &w->n[i];
        int k = 1 + (int)check_rand_below(MAXSUBS);
        for (int s = 0; s < k; s++) {
            char name[16];
            snprintf(name, sizeof name, "s%d", n->subs_made++);
            psub_random(&n->subs[n->nsubs], name);
            if (node_subscribe(n, &n->subs[n->nsubs]))
                n->nsubs++;
        }
    }
    /* Topology: the full replicas in a tree, each partial one linked to a
     * full one, then up to three links more. */
    for (int i = 1; i < w->nfull; i++)
        add_link(w, i, (int)check_rand_below((uint64_t)i));
    for (int i = w->nfull; i < w->nn; i++)
        add_link(w, i, (int)check_rand_below((uint64_t)w->nfull));
    int extra = (int)check_rand_below(4);
    for (int tries = 0; extra > 0 && tries < 50; tries++) {
        int a = (int)check_rand_below((uint64_t)w->nn), b = (int)check_rand_below((uint64_t)w->nn);
        if (a == b || linked(w, a, b) || (!w->pp && a >= w->nfull && b >= w->nfull))
            continue;
        add_link(w, a, b);
        extra--;
    }
    for (int i = 0; i < w->nl; i++)
        link_up(&w->l[i]);

    for (int step = 0; step < steps; step++) {
        trace_step = step;
        for (int i = 0; i < w->nn; i++)
            w->n[i].ms += check_rand_below(30);
        unsigned what = (unsigned)check_rand_below(100);
        if (what < 25) {
            random_edit(w, &w->n[check_rand_below((uint64_t)w->nn)]);
        } else if (what < 27) {
            change_subs(w, &w->n[w->nfull + (int)check_rand_below((uint64_t)(w->nn - w->nfull))]);
        } else if (what < 30) {
            link_t *l = &w->l[check_rand_below((uint64_t)w->nl)];
            if (l->up) {
                link_down(l);
                l->timer = 1 + (int)check_rand_below(40);
                w->cuts++;
            }
        } else {
            link_step(w, &w->l[check_rand_below((uint64_t)w->nl)], true);
        }
    }

    /* Faults stop: quiet with the sessions that are up, judged softly;
     * then every link reconnects and runs quiet again, judged for real. */
    bool strict = check_env_long("SHOAL_PARTIAL_SIM_STRICT", 0) != 0;
    judge j1 = { w, strict, "after the first quiet phase", 0 };
    trace_step = steps;
    if (trace_doc)
        fprintf(stderr, "[%d] faults stop\n", trace_step);
    if (!quiesce(w, false)) {
        fprintf(stderr, "seed %llu: no quiescence\n", (unsigned long long)seed);
        check_failures++;
    }
    judge_all(&j1);
    judge j2 = { w, true, "after the reconnect", 0 };
    trace_step = steps + 1;
    if (trace_doc)
        fprintf(stderr, "[%d] every link reconnects\n", trace_step);
    if (!quiesce(w, true)) {
        fprintf(stderr, "seed %llu: no quiescence after the reconnect\n", (unsigned long long)seed);
        check_failures++;
    }
    judge_all(&j2);
    /* Roles, one seed in two: the root revokes a partial replica with a cut
     * at or below what it wrote; the revocation reaches the first full
     * replica and travels; every link reconnects (the revoked replica's
     * are refused).  Its changes past the cut are VOID everywhere, full
     * and partial replicas rebuild what they had applied, and the feeds
     * judge their peers' views again (on the live links, then after a
     * reconnect): every property holds again. */
    if (sim_root && w->nn - w->nfull >= 2 && check_rand_below(2)) {
        node *x = &w->n[w->nfull + (int)check_rand_below((uint64_t)(w->nn - w->nfull))];
        uint64_t cut = check_rand_below(x->maxseq + 1);
        CHECK_EQ(shoal_auth_revoke(root, x->key, cut, NULL, NULL), SHOAL_OK);
        uint8_t *bundle = NULL;
        size_t blen = 0;
        CHECK_EQ(shoal_export(root, NULL, &bundle, &blen), SHOAL_OK);
        CHECK_EQ(shoal_import(w->n[0].r, bundle, blen, NULL), SHOAL_OK);
        shoal_free(bundle);
        x->revoked = true;
        for (int i = 0; i < w->nl; i++)
            if (w->l[i].up && (w->l[i].n[0] == x || w->l[i].n[1] == x))
                link_down(&w->l[i]);
        w->revoked_cut = cut;
        w->revoked_max = x->maxseq;
        notify(w, &w->n[0]);
        /* on the live links first (the feeds judge their peers' views
         * again), then after a reconnect */
        for (int round = 0; round < 2; round++) {
            if (!quiesce(w, round == 1)) {
                fprintf(stderr, "seed %llu: no quiescence after the revocation\n",
                        (unsigned long long)seed);
                check_failures++;
            }
            judge j3 = { w, true,
                         round ? "after a revocation and a reconnect" : "after a revocation", 0 };
            judge_all(&j3);
        }
    }
    /* 5, again: every replica closes and opens again with the same
     * state. */
    for (int i = 0; i < w->nl; i++)
        if (w->l[i].up)
            link_down(&w->l[i]);
    for (int i = 0; i < w->nn; i++) {
        uint8_t d0[SHOAL_DIGEST_BYTES], d1[SHOAL_DIGEST_BYTES];
        CHECK_EQ(shoal_digest(w->n[i].r, true, d0), SHOAL_OK);
        if (!node_reopen(&w->n[i])) {
            fprintf(stderr, "seed %llu: %s does not open again\n", (unsigned long long)seed,
                    w->n[i].name);
            check_failures++;
            continue;
        }
        CHECK_EQ(shoal_digest(w->n[i].r, true, d1), SHOAL_OK);
        CHECK(memcmp(d0, d1, sizeof d0) == 0);
        CHECK_EQ(shoal_replica_check(w->n[i].r, print_problem, w->n[i].name, NULL), SHOAL_OK);
    }
out:;
    bool ok = check_failures == before;
    if (!ok || j1.bad || getenv("SHOAL_PARTIAL_SIM_VERBOSE")) {
        fprintf(stderr,
                "partial sim seed %llu: %s (%d replicas, %d full, %d links%s; commits %llu, "
                "subscription changes %llu, drops %llu, dups %llu, reorders %llu, cuts %llu, "
                "session failures %llu; %d violations after the first quiet phase)\n",
                (unsigned long long)seed, ok ? "ok" : "FAILED", w->nn, w->nfull, w->nl,
                w->pp ? ", partial-partial allowed" : "", (unsigned long long)w->commits,
                (unsigned long long)w->subchanges, (unsigned long long)w->drops,
                (unsigned long long)w->dups, (unsigned long long)w->reorders,
                (unsigned long long)w->cuts, (unsigned long long)w->fails, j1.bad);
        if (sim_root) {
            int aud = 0;
            for (int i = 0; i < w->nn; i++)
                aud += w->n[i].auditor;
            fprintf(stderr, "  roles: %llu commits refused by the writer's role, %d auditors\n",
                    (unsigned long long)w->refused, aud);
        }
        for (int i = 0; i < w->nn; i++)
            if (w->n[i].revoked)
                fprintf(stderr, "  %s revoked with cut %llu (it wrote %llu)\n", w->n[i].name,
                        (unsigned long long)w->revoked_cut, (unsigned long long)w->revoked_max);
        if (!ok || getenv("SHOAL_PARTIAL_SIM_VERBOSE"))
            print_world(w);
    }
    for (int i = 0; i < w->nl; i++)
        if (w->l[i].up)
            link_down(&w->l[i]);
    for (int i = 0; i < w->nn; i++)
        node_close(&w->n[i]);
    shoal_replica_close(root);
    if (rdir) {
        check_rmtree(rdir);
        free(rdir);
    }
    sim_root = NULL;
    free(w);
    return ok;
}

/* ------------------------------------------------------- directed cases */

/* The smallest worlds that show what the simulation found, each a
 * reproduction on its own: nodes 0..nfull-1 full, the rest partial. */
static sim *
world_new(int nn, int nfull)
{
    sim *w = calloc(1, sizeof *w);
    w->nn = nn;
    w->nfull = nfull;
    for (int i = 0; i < nn; i++) {
        if (!node_open(&w->n[i], i)) {
            check_failures++;
            for (int k = 0; k < i; k++)
                node_close(&w->n[k]);
            free(w);
            return NULL;
        }
        w->n[i].partial = i >= nfull;
    }
    return w;
}

static void
world_free(sim *w)
{
    for (int i = 0; i < w->nl; i++)
        if (w->l[i].up)
            link_down(&w->l[i]);
    for (int i = 0; i < w->nn; i++)
        node_close(&w->n[i]);
    free(w);
}

/* One commit: products/doc.field = v (an int, or a category string). */
static void
put(sim *w, node *n, const char *doc, const char *field, int64_t v)
{
    shoal_txn *t;
    shoal_value x;
    if (strcmp(field, "category") == 0)
        v_str(&x, cats[v % 3]);
    else
        v_int(&x, v);
    CHECK_EQ(shoal_txn_begin(n->r, &t), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "products", doc, field, &x), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    uint64_t s = vv_of(n, n->key);
    if (s > n->maxseq)
        n->maxseq = s;
    notify(w, n);
}

static void
sub_store(node *p, const char *name, int64_t store)
{
    psub s = { .where = 0, .s = store };
    snprintf(s.name, sizeof s.name, "%s", name);
    p->subs[p->nsubs] = s;
    if (node_subscribe(p, &s))
        p->nsubs++;
}

static bool
holds(node *n, const char *doc)
{
    shoal_doc *d = NULL;
    shoal_err err = shoal_doc_get(n->r, "products", doc, &d);
    shoal_doc_free(d);
    return err == SHOAL_OK;
}

/* p holds doc in the state f has it. */
static bool
same_doc(node *p, node *f, const char *doc)
{
    shoal__buf a, b;
    shoal__buf_init(&a);
    shoal__buf_init(&b);
    bool fa = doc_state(p, "products", doc, &a), fb = doc_state(f, "products", doc, &b);
    bool ok = fa && fb && a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
    if (!ok) {
        print_doc(p->name, p, "products", doc);
        print_doc(f->name, f, "products", doc);
    }
    shoal__buf_free(&a);
    shoal__buf_free(&b);
    return ok;
}

/* A live link: a document that enters a partial peer's view, then one
 * that leaves it, with no damage on the link: the sessions must not fail
 * (the feed's live walk stops its log scan to send an ENTER or a LEAVE;
 * that stop must not come back as an error). */
static void
test_live_enter_leave(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1];
    put(w, f, "p0", "store_id", 3);
    put(w, f, "p1", "store_id", 1);
    sub_store(p, "mine", 3);
    add_link(w, 1, 0);
    link_up(&w->l[0]);
    CHECK(quiesce(w, false));
    CHECK(holds(p, "p0") && !holds(p, "p1"));
    put(w, f, "p1", "store_id", 3); /* enters */
    CHECK(quiesce(w, false));
    CHECK(holds(p, "p1"));
    put(w, f, "p0", "store_id", 2); /* leaves */
    CHECK(quiesce(w, false));
    CHECK(!holds(p, "p0"));
    CHECK_EQ(w->fails, 0);
    world_free(w);
}

/* The full side of a link to a partial peer reaches caught_up once the
 * peer holds its view (what shoal_net_sync waits for when a full replica
 * starts the exchange). */
static void
test_full_side_caught_up(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1];
    put(w, f, "p0", "store_id", 3);
    put(w, f, "p1", "store_id", 1);
    sub_store(p, "mine", 3);
    add_link(w, 1, 0);
    link_up(&w->l[0]);
    CHECK(quiesce(w, false));
    shoal__session_stats sp, sf;
    shoal__session_get_stats(w->l[0].s[0], &sp);
    shoal__session_get_stats(w->l[0].s[1], &sf);
    CHECK(sp.caught_up && !sp.failed);
    CHECK(sf.caught_up && !sf.failed);
    world_free(w);
}

/* A partial replica's own change to a document, acknowledged, then the
 * document leaves its view (evicted, with that change) and comes back: it
 * must come back whole, our own change included.  Every exchange here is
 * a fresh session (no live ENTER or LEAVE): the partial replica holds
 * another own change (p2), so its HELLO says it holds its own seqs up to
 * 2, and a sender that skips "the peer's own changes" up to there leaves
 * p0 without seq 1. */
static void
test_reenter_own_change(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1];
    put(w, f, "p0", "store_id", 3);
    put(w, f, "p2", "store_id", 3);
    sub_store(p, "mine", 3);
    add_link(w, 1, 0);
    link_up(&w->l[0]);
    CHECK(quiesce(w, false));
    put(w, p, "p0", "price", 7); /* P@1 */
    put(w, p, "p2", "price", 8); /* P@2 */
    CHECK(quiesce(w, true));
    CHECK_EQ(vv_of(f, p->key), 2);
    link_down(&w->l[0]);
    put(w, f, "p0", "store_id", 1); /* leaves */
    CHECK(quiesce(w, true));
    CHECK(!holds(p, "p0"));
    link_down(&w->l[0]);
    put(w, f, "p0", "store_id", 3); /* back */
    CHECK(quiesce(w, true));
    CHECK(holds(p, "p0"));
    CHECK(same_doc(p, f, "p0"));
    CHECK_EQ(pending(p), 0);
    if (pending(p))
        dump_pending(p, f, w->n, w->nn);
    world_free(w);
}

/* A partial replica writes a value that takes a document out of its view
 * while the full replica holds a later write that keeps it in: after the
 * full replica acknowledges our write, the document must stay (it is in
 * our view on the sender), and the sender's next change to it must
 * apply. */
static void
test_local_evict_in_view(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1];
    put(w, f, "p0", "store_id", 3);
    sub_store(p, "mine", 3);
    add_link(w, 1, 0);
    link_up(&w->l[0]);
    CHECK(quiesce(w, false));
    CHECK(holds(p, "p0"));
    /* Concurrent: P moves it out, and its BATCH reaches F; then F, ten
     * seconds later, keeps it in (a later HLC wins the register).  F's
     * ACK of P's batch goes out before F's change. */
    put(w, p, "p0", "store_id", 1);
    link_t *l = &w->l[0];
    const uint8_t *fr;
    size_t n;
    while (shoal__session_next(l->s[0], &fr, &n) == 1)
        CHECK_EQ(shoal__session_recv(l->s[1], fr, n, f->ms), SHOAL_OK);
    f->ms += 10000;
    put(w, f, "p0", "store_id", 3);
    CHECK(quiesce(w, false));
    CHECK(holds(p, "p0"));
    CHECK_EQ(pending(p), 0);
    if (pending(p))
        dump_pending(p, f, w->n, w->nn);
    put(w, f, "p0", "price", 5);
    CHECK(quiesce(w, false));
    CHECK(holds(p, "p0") && same_doc(p, f, "p0"));
    CHECK_EQ(w->fails, 0);
    world_free(w);
}

/* A partial replica writes to a document it does not hold; on the full
 * replica an older-looking write of its own wins (a later HLC), so the
 * document is not in the partial replica's view there, though the partial
 * replica's own copy (its one change) matches its subscription.  Once the
 * full replica holds the write, the partial replica must not keep a copy
 * that is neither in its view nor the full replica's state, on the live
 * link as after a reconnect. */
static void
test_own_write_outside_view(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1];
    f->ms += 60000; /* F's clock is a minute ahead */
    put(w, f, "p0", "store_id", 1);
    put(w, f, "p0", "price", 50);
    psub s = { .where = 3, .p = 10 }; /* price < 10 */
    snprintf(s.name, sizeof s.name, "cheap");
    p->subs[p->nsubs++] = s;
    CHECK(node_subscribe(p, &s));
    add_link(w, 1, 0);
    link_up(&w->l[0]);
    CHECK(quiesce(w, false));
    CHECK(!holds(p, "p0"));
    put(w, p, "p0", "price", 5); /* loses to F's 50 */
    CHECK(quiesce(w, false));
    CHECK_EQ(vv_of(f, p->key), p->maxseq);
    CHECK(!holds(p, "p0"));
    if (holds(p, "p0"))
        CHECK(same_doc(p, f, "p0"));
    CHECK(quiesce(w, true));
    CHECK(!holds(p, "p0"));
    world_free(w);
}

/* An eviction leaves a valid store that opens again.  Fifty documents
 * imported into a durable partial replica, then an unsubscribe evicts them
 * all in one write: LMDB may leave the file's last pages free and never
 * written (a page allocated and freed in the same transaction is not
 * flushed), which LMDB reads fine. */
static void
test_reopen_after_eviction(void)
{
    char *fd = check_tmpdir("psim-f"), *pd = check_tmpdir("psim-p");
    REQUIRE(fd && pd && check_seed_identity(fd) && check_seed_identity(pd));
    shoal_replica *f = NULL, *p = NULL;
    REQUIRE(shoal_replica_open(&f, fd, NULL) == SHOAL_OK);
    REQUIRE(shoal_replica_open(&p, pd, NULL) == SHOAL_OK);
    static char blob[4000];
    memset(blob, 'x', sizeof blob);
    for (int i = 0; i < 50; i++) {
        shoal_txn *t;
        char id[16];
        snprintf(id, sizeof id, "p%05d", i);
        shoal_value s, b = { .type = SHOAL_T_STR,
                             .ptr = (const uint8_t *)blob,
                             .len = 100 + (size_t)(i * 37 % 3000) };
        v_int(&s, 1);
        CHECK_EQ(shoal_txn_begin(f, &t), SHOAL_OK);
        CHECK_EQ(shoal_txn_set(t, "products", id, "store_id", &s), SHOAL_OK);
        CHECK_EQ(shoal_txn_set(t, "products", id, "blob", &b), SHOAL_OK);
        CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    }
    const char *where[] = { "store_id == 1", "store_id == 2" };
    for (int i = 0; i < 2; i++) {
        shoal_query *q;
        CHECK_EQ(shoal_query_new(p, "products", where[i], &q), SHOAL_OK);
        CHECK_EQ(shoal_subscribe(p, i ? "b" : "a", q), SHOAL_OK);
        shoal_query_free(q);
    }
    uint8_t *bundle;
    size_t n;
    REQUIRE(shoal_export(f, NULL, &bundle, &n) == SHOAL_OK);
    CHECK_EQ(shoal_import(p, bundle, n, NULL), SHOAL_OK);
    shoal_free(bundle);
    CHECK_EQ(shoal_unsubscribe(p, "a"), SHOAL_OK); /* evicts all 50 */
    shoal_strlist *l = NULL;
    CHECK_EQ(shoal_docs(p, "products", &l), SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 0);
    shoal_strlist_free(l);
    CHECK_EQ(shoal_replica_check(p, print_problem, "p", NULL), SHOAL_OK);
    shoal_replica_close(p);
    p = NULL;
    CHECK_EQ(shoal_replica_open(&p, pd, NULL), SHOAL_OK);
    shoal_replica_close(p);
    shoal_replica_close(f);
    check_rmtree(fd);
    check_rmtree(pd);
    free(fd);
    free(pd);
}

/* Run one link (no faults) until nothing moves. */
static void
pump_link(sim *w, link_t *l)
{
    int quiet = 0;
    for (int round = 0; round < QUIET_ROUNDS && quiet < 2; round++)
        quiet = link_step(w, l, false) ? 0 : quiet + 1;
    CHECK(quiet >= 2);
}

/* Hand the peer every frame side i has now. */
static void
deliver(link_t *l, int i)
{
    const uint8_t *fr;
    size_t n;
    while (shoal__session_next(l->s[i], &fr, &n) == 1)
        (void)shoal__session_recv(l->s[1 - i], fr, n, l->n[1 - i]->ms);
}

/* A document told to leave while one of our own changes to it is not yet
 * acknowledged stays (pinned); when it is back in our view before that
 * acknowledgement comes, the acknowledgement must not evict it. */
static void
test_pinned_then_back(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1];
    put(w, f, "p0", "store_id", 3);
    sub_store(p, "mine", 3);
    add_link(w, 1, 0);
    link_t *l = &w->l[0];
    link_up(l);
    CHECK(quiesce(w, false));
    CHECK(holds(p, "p0"));
    /* Apart: P edits p0, F moves it out of P's view. */
    link_down(l);
    put(w, p, "p0", "price", 7);
    put(w, f, "p0", "store_id", 1);
    /* Together again, but P's change does not get through: F says LEAVE,
     * P keeps p0 for its unacknowledged change. */
    link_up(l);
    const uint8_t *fr;
    size_t n;
    CHECK(shoal__session_next(l->s[0], &fr, &n) == 1); /* P's HELLO */
    CHECK_EQ(shoal__session_recv(l->s[1], fr, n, f->ms), SHOAL_OK);
    for (int k = 0; k < 4; k++) {
        deliver(l, 1);
        while (shoal__session_next(l->s[0], &fr, &n) == 1)
            ; /* lost with the connection */
    }
    CHECK(holds(p, "p0"));
    link_down(l);
    /* p0 is back in P's view; then everything gets through. */
    put(w, f, "p0", "store_id", 3);
    link_up(l);
    CHECK(quiesce(w, false));
    CHECK_EQ(vv_of(f, p->key), p->maxseq);
    CHECK(holds(p, "p0"));
    CHECK(quiesce(w, true));
    CHECK(holds(p, "p0") && same_doc(p, f, "p0"));
    world_free(w);
}

/* A partial replica linked to two full ones.  Its HELLO to F0 names p0
 * with its own change c as head; before F0 answers, F1 moves p0 out of
 * the view and P evicts it, c included.  F0 then sends p0's changes that
 * the summary did not cover (a change of F0's built on c), which P cannot
 * apply without c.  P keeps no pending change for a document it does not
 * hold, and its HAVE (it no longer holds p0) makes F0 judge p0 again:
 * out of view, nothing more is sent.  Both without and with a reconnect,
 * nothing is pending and P holds its view. */
static void
test_summary_stale_after_other_leave(void)
{
    sim *w = world_new(3, 2);
    REQUIRE(w);
    node *f0 = &w->n[0], *f1 = &w->n[1], *p = &w->n[2];
    put(w, f0, "p0", "store_id", 3);
    uint8_t *b;
    size_t bn;
    REQUIRE(shoal_export(f0->r, NULL, &b, &bn) == SHOAL_OK);
    CHECK_EQ(shoal_import(f1->r, b, bn, NULL), SHOAL_OK);
    shoal_free(b);
    sub_store(p, "mine", 3);
    add_link(w, 2, 0); /* l[0]: P-F0 */
    add_link(w, 2, 1); /* l[1]: P-F1 */
    add_link(w, 0, 1); /* l[2]: F0-F1, down until the end */
    link_up(&w->l[0]);
    link_up(&w->l[1]);
    pump_link(w, &w->l[0]);
    pump_link(w, &w->l[1]);
    CHECK(holds(p, "p0"));
    link_down(&w->l[0]);
    link_down(&w->l[1]);
    put(w, p, "p0", "price", 7); /* c */
    put(w, f1, "p0", "store_id", 1);
    /* The HELLOs cross (P's names p0 with head c), and c reaches F0; F0
     * has not looked at P's view yet. */
    link_up(&w->l[0]);
    link_t *l0 = &w->l[0];
    const uint8_t *fr;
    size_t n;
    CHECK(shoal__session_next(l0->s[1], &fr, &n) == 1); /* F0's HELLO */
    CHECK_EQ(shoal__session_recv(l0->s[0], fr, n, p->ms), SHOAL_OK);
    deliver(l0, 0); /* P's HELLO, then its BATCH with c */
    CHECK_EQ(vv_of(f0, p->key), 1);
    /* F1: P's c goes up, F1 acknowledges it and says p0 left: evicted. */
    link_up(&w->l[1]);
    pump_link(w, &w->l[1]);
    CHECK(!holds(p, "p0"));
    /* F0 builds on c, then answers P. */
    put(w, f0, "p0", "qty", 2);
    pump_link(w, &w->l[0]);
    /* Now everyone, twice. */
    link_up(&w->l[2]);
    for (int round = 0; round < 2; round++) {
        CHECK(quiesce(w, round == 1));
        CHECK_EQ(pending(p), 0);
        if (pending(p))
            dump_pending(p, f0, w->n, w->nn);
        CHECK(!holds(p, "p0"));
        strset held = { 0 }, want = { 0 };
        live_ids(p, "products", &held);
        view_ids(f0, p, &want);
        CHECK_EQ(held.n, want.n);
        set_free(&held);
        set_free(&want);
    }
    world_free(w);
}

/* A partial replica's own write that waits at a full replica F0, which
 * lacks the replica's earlier write (the replica evicted that one once F1
 * held it), applies at F0 when F1 brings the earlier one; F0 then says so
 * (HOLDS), and the replica lets the document go without a reconnect. */
static void
test_holds_after_pending(void)
{
    sim *w = world_new(3, 2);
    REQUIRE(w);
    node *f0 = &w->n[0], *p = &w->n[2];
    sub_store(p, "mine", 3);
    add_link(w, 2, 1);              /* l[0]: P-F1 */
    add_link(w, 2, 0);              /* l[1]: P-F0 */
    add_link(w, 0, 1);              /* l[2]: F0-F1 */
    put(w, p, "p0", "store_id", 1); /* seq 1, outside P's view */
    link_up(&w->l[0]);
    pump_link(w, &w->l[0]); /* F1 holds it: P evicts p0 */
    CHECK(!holds(p, "p0"));
    link_down(&w->l[0]);
    put(w, p, "p1", "store_id", 1); /* seq 2, outside P's view too */
    link_up(&w->l[1]);
    pump_link(w, &w->l[1]);
    CHECK_EQ(vv_of(f0, p->key), 0); /* seq 2 waits for seq 1 at F0 */
    CHECK(holds(p, "p1"));          /* pinned: no full replica holds it */
    link_up(&w->l[2]);
    pump_link(w, &w->l[2]);
    CHECK_EQ(vv_of(f0, p->key), 2);
    pump_link(w, &w->l[1]);
    CHECK(!holds(p, "p1"));
    shoal__session_stats st;
    shoal__session_get_stats(w->l[1].s[0], &st);
    CHECK(st.caught_up);
    CHECK_EQ(st.lag, 0);
    world_free(w);
}

/* HOLDS is a full replica's word to a partial peer about the peer's own
 * changes: to a full replica, from a partial one, or about another author
 * it fails the session (EPROTO). */
static void
test_holds_refused(void)
{
    sim *w = world_new(3, 1);
    REQUIRE(w);
    node *f = &w->n[0], *p = &w->n[1], *q = &w->n[2];
    sub_store(p, "mine", 3);
    sub_store(q, "mine", 3);
    put(w, p, "p0", "store_id", 3);
    add_link(w, 1, 0); /* P-F */
    add_link(w, 1, 2); /* P-Q */
    struct {
        int link, side;    /* the session that receives it */
        const node *about; /* whose changes */
    } cases[] = {
        { 0, 1, p }, /* to F, a full replica */
        { 0, 0, f }, /* to P about F's changes */
        { 1, 0, p }, /* to P from Q, a partial replica */
        { 0, 0, p }, /* to P from F about P's own: accepted */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        link_t *l = &w->l[cases[i].link];
        if (l->up)
            link_down(l);
        link_up(l);
        pump_link(w, l);
        shoal__vventry e = { .seq = 1 };
        memcpy(e.author, cases[i].about->key, SHOAL_KEY_BYTES);
        shoal__buf b;
        shoal__buf_init(&b);
        REQUIRE(shoal__wire_holds(&b, &e) == SHOAL_OK);
        shoal__session *s = l->s[cases[i].side];
        int err = shoal__session_recv(s, b.p, b.len, l->n[cases[i].side]->ms);
        shoal__session_stats st;
        shoal__session_get_stats(s, &st);
        bool ok = i == 3;
        CHECK_EQ(err, ok ? SHOAL_OK : SHOAL_EPROTO);
        CHECK(st.failed == !ok);
        if (!ok)
            CHECK(strstr(shoal__session_failure(s), "HOLDS") != NULL);
        shoal__buf_free(&b);
    }
    world_free(w);
}

/* HAVE is a partial replica's word to a sender that feeds it: from a full
 * replica (no feed for it) it fails the session (EPROTO). */
static void
test_have_refused(void)
{
    sim *w = world_new(2, 1);
    REQUIRE(w);
    node *p = &w->n[1];
    sub_store(p, "mine", 3);
    add_link(w, 1, 0); /* P-F */
    link_t *l = &w->l[0];
    link_up(l);
    pump_link(w, l);
    shoal__buf held, b;
    shoal__buf_init(&held);
    shoal__buf_init(&b);
    shoal__mpw mw;
    shoal__mpw_init(&mw, &held);
    shoal__wire_put_held_header(&mw, 1);
    shoal__wheld e = { (const uint8_t *)"products", 8, (const uint8_t *)"p0", 2, NULL, 0 };
    shoal__wire_put_held(&mw, &e);
    REQUIRE(mw.err == SHOAL_OK);
    REQUIRE(shoal__wire_have(&b, held.p, held.len) == SHOAL_OK);
    /* To F from P (a partial peer): accepted. */
    CHECK_EQ(shoal__session_recv(l->s[1], b.p, b.len, w->n[0].ms), SHOAL_OK);
    /* To P from F (a full replica): refused. */
    CHECK_EQ(shoal__session_recv(l->s[0], b.p, b.len, p->ms), SHOAL_EPROTO);
    CHECK(strstr(shoal__session_failure(l->s[0]), "HAVE from a full replica") != NULL);
    shoal__buf_free(&held);
    shoal__buf_free(&b);
    world_free(w);
}

static void
test_partial_sim(void)
{
    uint64_t first = check_seed(1);
    long seeds = check_env_long("SHOAL_PARTIAL_SIM_SEEDS", 20);
    long steps = check_env_long("SHOAL_PARTIAL_SIM_STEPS", 800);
    bool pp = check_env_long("SHOAL_PARTIAL_SIM_PP", 1) != 0;
    long bad = 0;
    for (long i = 0; i < seeds; i++)
        if (!sim_run(first + (uint64_t)i, (int)steps, pp)) {
            fprintf(stderr,
                    "  repeat: SHOAL_SEED=%llu SHOAL_PARTIAL_SIM_SEEDS=1 "
                    "SHOAL_PARTIAL_SIM_STEPS=%ld test_partial_sim\n",
                    (unsigned long long)(first + (uint64_t)i), steps);
            bad++;
        }
    if (bad)
        fprintf(stderr, "partial sync simulation: %ld of %ld seeds failed\n", bad, seeds);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    trace_doc = getenv("SHOAL_PARTIAL_SIM_TRACE");
    RUN(test_live_enter_leave);
    RUN(test_full_side_caught_up);
    RUN(test_reenter_own_change);
    RUN(test_local_evict_in_view);
    RUN(test_pinned_then_back);
    RUN(test_own_write_outside_view);
    RUN(test_reopen_after_eviction);
    RUN(test_summary_stale_after_other_leave);
    RUN(test_holds_after_pending);
    RUN(test_holds_refused);
    RUN(test_have_refused);
    RUN(test_partial_sim);
    return check_summary();
}
