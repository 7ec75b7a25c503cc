/*
 * test/core/test_apply.c - the apply pipeline (core/apply.c) over the
 * in-memory store (core/apply_mem.c), checked against the LMDB path.
 *
 * Each round makes one random change set: a few authors (seeded keys) edit
 * a few documents, each from its own view (an in-memory store it applies
 * its own changes to and random subsets of the others' to), with every op
 * kind (set and remove a field, counters, list insert / delete / replace,
 * document delete and re-create) and now and then an equivocation (two
 * different changes under one (author, seq)).  The set is then delivered
 * to fresh in-memory stores in several random orders (random batches,
 * duplicates, dependencies arriving late) and once, in another random
 * order, to a real replica through shoal_import.  Every delivery must end
 * with the same full-state and visible-state digest as the replica, the
 * same number of applied changes and an empty pending set.
 *
 * The replicas are not durable and, unless TMPDIR says otherwise, live in
 * /dev/shm when there is one: this test is about the pipeline, not about
 * fsync, and a sync per replica would be most of its time.
 *
 * Seeded: SHOAL_SEED picks the seed (printed); SHOAL_APPLY_SETS how many
 * change sets (default 1500, 200 under ASan); SHOAL_APPLY_ORDERS how many
 * in-memory delivery orders per set (default 4).  In every other set the
 * two versions of an equivocation hold any op, the second with a later
 * HLC (see forks_any below); in the rest they hold register and counter
 * ops only and share their HLC.  SHOAL_APPLY_FORKS=any (or =plain) makes
 * every set of one kind.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply_mem.h"
#include "check.h"
#include "core.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

enum {
    NAUTH = 3,
    NDOCS = 3,
    NFIELDS = 4,
    MAXENV = 96,
    MAXOPS = 4
};

/* Every change is stamped around this time; replicas read it as now. */
#define WALL_MS 1700000000000ull

static const char *coll = "c";
static const char *docs[NDOCS] = { "d0", "d1", "d2" };
static const char *fields[NFIELDS] = { "f0", "f1", "f2", "f3" };
static const char *strs[] = { "x", "yy", "zzz", "" };

typedef struct author {
    uint8_t pk[32];
    uint8_t sk[64];
    uint64_t seq;
    uint64_t clock;
    shoal__memstore *view;
} author;

typedef struct envl {
    uint8_t *p;
    size_t n;
} envl;

typedef struct world {
    author a[NAUTH];
    envl e[MAXENV];
    size_t ne;
    size_t equivocations;
} world;

static uint64_t
fixed_now(void *ctx)
{
    (void)ctx;
    return WALL_MS;
}

static void
rec_of(const envl *e, shoal__rec *r)
{
    memset(r, 0, sizeof *r);
    size_t elen;
    int err = shoal__envelope_parse(e->p, e->n, &elen, &r->body, &r->body_len);
    (void)err;
    r->env = e->p;
    r->env_len = e->n;
    shoal__change_id(e->p, e->n, r->cid);
}

/* Import envelopes idx[0..n) of w into m; SHOAL_OK expected. */
static int
mem_import(shoal__memstore *m, const world *w, const size_t *idx, size_t n, uint64_t *clock)
{
    shoal__rec r[MAXENV * 2];
    for (size_t i = 0; i < n; i++)
        rec_of(&w->e[idx[i]], &r[i]);
    return shoal__memstore_import(m, r, n, WALL_MS, 60000, clock, NULL);
}

/* -------------------------------------------------------------- generate */

/* Forks of any op: the two versions of an equivocation may hold any op,
 * the second has a later HLC and the author's later changes later ones
 * still.  Such sets did not converge until a dependency on a version held
 * as evidence waited for that version's own dependencies (and for it to
 * be applied, when it is smaller than the applied version: it replaces
 * that one once ready).  Before, it counted as satisfied once the
 * canonical version of its (author, seq) was applied, so a change that
 * depended on the losing version of seq 5 could apply before the changes
 * the losing version itself depended on (say the winning version of seq
 * 4, if the author equivocated there too and the other version of seq 4
 * was applied first); its list inserts after an element of those changes
 * were then dropped as dangling, while another delivery order kept them
 * (SHOAL_APPLY_FORKS=any SHOAL_SEED=33 SHOAL_APPLY_SETS=1 showed it). */
static bool forks_any;
/* No equivocation at all (test_doc_at). */
static bool no_forks;

typedef struct pop {
    shoal__op op;
    const uint8_t *rkey; /* ref author key (NULL: head or none) */
} pop;

static int
akey_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Encode and sign c as a's, add it to w; its index, or -1. */
static int
seal(world *w, const author *a, const shoal__change *c)
{
    shoal__buf body, env;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    int err = shoal__change_encode(c, &body);
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, a->pk, a->sk, &env);
    shoal__buf_free(&body);
    if (err || w->ne == MAXENV) {
        CHECK_EQ(err, SHOAL_OK);
        shoal__buf_free(&env);
        return -1;
    }
    envl *e = &w->e[w->ne];
    e->p = shoal__buf_take(&env, &e->n);
    return (int)w->ne++;
}

/* Build, sign and record a change of author a on doc di; ops chosen from
 * a's view.  onlyreg: only register and counter ops (equivocations).
 * Returns the envelope index or -1 when nothing was made. */
static int
make_change(world *w, author *a, size_t di, bool onlyreg, uint64_t seq, uint64_t hlc)
{
    const uint8_t *heads;
    size_t nheads;
    const shoal__doc *d =
        shoal__memstore_doc(a->view, (const uint8_t *)coll, strlen(coll), (const uint8_t *)docs[di],
                            strlen(docs[di]), &heads, &nheads);
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, a->pk, 32);
    c.seq = seq;
    c.hlc = hlc;
    c.coll = (const uint8_t *)coll;
    c.coll_len = strlen(coll);
    c.doc = (const uint8_t *)docs[di];
    c.doc_len = strlen(docs[di]);
    bool exists = d && shoal__doc_exists(d);
    bool deleted = exists && shoal__doc_deleted(d);
    c.epoch = !exists ? 0 : deleted ? shoal__doc_epoch(d) + 1 : shoal__doc_epoch(d);
    c.deps = heads;
    c.ndeps = nheads;

    pop ops[MAXOPS];
    size_t nops = 0;
    shoal_kind fk[NFIELDS] = { 0 };
    /* Elements named by this change (each at most once). */
    shoal__eid used[MAXOPS];
    size_t nused = 0;
    if (!onlyreg && exists && !deleted && check_rand_below(12) == 0) {
        memset(&ops[0], 0, sizeof ops[0]);
        ops[0].op.kind = SHOAL__OP_DELDOC;
        nops = 1;
    }
    size_t want = 1 + check_rand_below(MAXOPS);
    for (size_t tries = 0; nops == 0 || (tries < 8 && nops < want); tries++) {
        if (nops && ops[0].op.kind == SHOAL__OP_DELDOC)
            break;
        if (tries > 16)
            break;
        size_t fi = check_rand_below(NFIELDS);
        const uint8_t *f = (const uint8_t *)fields[fi];
        shoal_kind k = fk[fi];
        if (!k && d && !deleted) {
            shoal_kind have;
            if (shoal__doc_field_kind(d, f, 2, &have) == SHOAL_OK)
                k = have;
        }
        if (!k)
            k = onlyreg ? (check_rand_below(2) ? SHOAL_K_REGISTER : SHOAL_K_COUNTER)
                        : (shoal_kind)(1 + check_rand_below(3));
        if (onlyreg && k == SHOAL_K_LIST)
            continue;
        pop *p = &ops[nops];
        memset(p, 0, sizeof *p);
        p->op.field = f;
        p->op.field_len = 2;
        if (k == SHOAL_K_REGISTER) {
            if (check_rand_below(5) == 0) {
                p->op.kind = SHOAL__OP_UNSET;
            } else {
                p->op.kind = SHOAL__OP_SET;
                if (check_rand_below(2)) {
                    p->op.value.type = SHOAL_T_INT;
                    p->op.value.i = (int64_t)check_rand_below(100);
                } else {
                    const char *s = strs[check_rand_below(4)];
                    p->op.value.type = SHOAL_T_STR;
                    p->op.value.ptr = (const uint8_t *)s;
                    p->op.value.len = strlen(s);
                }
            }
        } else if (k == SHOAL_K_COUNTER) {
            p->op.kind = SHOAL__OP_COUNT;
            p->op.delta = (int64_t)check_rand_below(9) - 4;
            if (p->op.delta == 0)
                p->op.delta = 7;
        } else {
            const shoal__list *l = d && !deleted ? shoal__doc_list(d, f, 2) : NULL;
            size_t len = l ? shoal__list_len(l) : 0;
            uint64_t r = check_rand_below(10);
            p->op.value.type = SHOAL_T_INT;
            p->op.value.i = (int64_t)check_rand_below(1000);
            if (len == 0 || r < 5) {
                p->op.kind = SHOAL__OP_INS;
                size_t at = len ? check_rand_below(len + 1) : 0;
                if (at == 0) {
                    p->op.ref.head = true;
                } else {
                    shoal__eid id;
                    if (shoal__list_id_at(l, at - 1, &id))
                        continue;
                    p->op.ref.hlc = id.hlc;
                    p->op.ref.index = id.index;
                    p->rkey = shoal__doc_author_key(d, id.author);
                }
            } else {
                p->op.kind = r < 8 ? SHOAL__OP_DEL : SHOAL__OP_REP;
                shoal__eid id;
                if (shoal__list_id_at(l, check_rand_below(len), &id))
                    continue;
                bool dup = false;
                for (size_t j = 0; j < nused; j++)
                    dup = dup || (used[j].hlc == id.hlc && used[j].author == id.author &&
                                  used[j].index == id.index);
                if (dup)
                    continue;
                used[nused++] = id;
                p->op.ref.hlc = id.hlc;
                p->op.ref.index = id.index;
                p->rkey = shoal__doc_author_key(d, id.author);
            }
        }
        fk[fi] = k;
        nops++;
    }
    if (nops == 0)
        return -1;
    /* The author table: the other authors named, sorted; index 0 is c's. */
    uint8_t akeys[MAXOPS * 32];
    size_t nak = 0;
    for (size_t i = 0; i < nops; i++) {
        const uint8_t *k = ops[i].rkey;
        if (!k || memcmp(k, a->pk, 32) == 0)
            continue;
        bool have = false;
        for (size_t j = 0; j < nak; j++)
            have = have || memcmp(akeys + j * 32, k, 32) == 0;
        if (!have)
            memcpy(akeys + nak++ * 32, k, 32);
    }
    qsort(akeys, nak, 32, akey_cmp);
    shoal__op o[MAXOPS];
    for (size_t i = 0; i < nops; i++) {
        o[i] = ops[i].op;
        const uint8_t *k = ops[i].rkey;
        o[i].ref.author = 0;
        for (size_t j = 0; k && j < nak; j++)
            if (memcmp(akeys + j * 32, k, 32) == 0)
                o[i].ref.author = (uint32_t)j + 1;
    }
    c.authors = akeys;
    c.nauthors = nak;
    c.ops = o;
    c.nops = nops;
    return seal(w, a, &c);
}

/* a applies envelope i (its own change): must apply. */
static void
own_apply(world *w, author *a, int i)
{
    size_t idx = (size_t)i;
    CHECK_EQ(mem_import(a->view, w, &idx, 1, &a->clock), SHOAL_OK);
}

static void
shuffle(size_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = check_rand_below(i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void
gen_set(world *w, size_t steps)
{
    for (size_t s = 0; s < steps && w->ne < MAXENV - 2; s++) {
        author *a = &w->a[check_rand_below(NAUTH)];
        uint64_t r = check_rand_below(100);
        if (r < 25 && w->ne > 0) {
            /* a hears some of the others' changes, in some order. */
            size_t idx[MAXENV], n = 0;
            for (size_t i = 0; i < w->ne; i++)
                if (check_rand_below(10) < 6)
                    idx[n++] = i;
            shuffle(idx, n);
            CHECK_EQ(mem_import(a->view, w, idx, n, &a->clock), SHOAL_OK);
        } else if (r < 30 && !no_forks) {
            /* Equivocation: two changes under one (author, seq) from the
             * same view; the author goes on from the first. */
            size_t di = check_rand_below(NDOCS);
            uint64_t seq = ++a->seq;
            uint64_t hlc = shoal__hlc_tick(a->clock, WALL_MS);
            a->clock = hlc;
            int x = make_change(w, a, di, !forks_any, seq, hlc);
            int y = make_change(w, a, check_rand_below(NDOCS), !forks_any, seq,
                                forks_any ? shoal__hlc_tick(hlc, WALL_MS) : hlc);
            if (forks_any)
                a->clock = shoal__hlc_tick(hlc, WALL_MS); /* later ones after both */
            if (x < 0) {
                a->seq--;
                continue;
            }
            if (y >= 0)
                w->equivocations++;
            own_apply(w, a, x);
        } else {
            size_t di = check_rand_below(NDOCS);
            uint64_t seq = ++a->seq;
            uint64_t hlc = shoal__hlc_tick(a->clock, WALL_MS);
            int x = make_change(w, a, di, false, seq, hlc);
            if (x < 0) {
                a->seq--;
                continue;
            }
            a->clock = hlc;
            own_apply(w, a, x);
        }
    }
}

/* --------------------------------------------------------------- deliver */

typedef struct result {
    uint8_t full[32];
    uint8_t vis[32];
    uint64_t applied;
    uint64_t pending;
} result;

/* Deliver every envelope (random order, duplicates, batches) to a fresh
 * in-memory store. */
static int
deliver_mem(const world *w, result *out)
{
    size_t idx[MAXENV * 2], n = 0;
    for (size_t i = 0; i < w->ne; i++) {
        idx[n++] = i;
        if (check_rand_below(6) == 0)
            idx[n++] = i; /* a duplicate */
    }
    shuffle(idx, n);
    shoal__memstore *m;
    int err = shoal__memstore_new(&m);
    uint64_t clock = 0;
    for (size_t at = 0; !err && at < n;) {
        size_t b = 1 + check_rand_below(8);
        if (b > n - at)
            b = n - at;
        err = mem_import(m, w, idx + at, b, &clock);
        at += b;
    }
    if (!err)
        err = shoal__memstore_digest(m, true, out->full);
    if (!err)
        err = shoal__memstore_digest(m, false, out->vis);
    if (m) {
        out->applied = shoal__memstore_applied(m);
        out->pending = shoal__memstore_pending(m);
    }
    shoal__memstore_free(m);
    return err;
}

/* The same through a real replica: shoal_import of random bundles. */
static int
deliver_lmdb(const world *w, result *out)
{
    char *dir = check_tmpdir("apply");
    if (!dir)
        return SHOAL_ENOMEM;
    shoal_options *o = NULL;
    shoal_replica *r = NULL;
    int err = shoal_options_new(&o);
    if (!err) {
        shoal_options_set_durable(o, false);
        shoal_options_set_clock(o, fixed_now, NULL);
        err = shoal_replica_open(&r, dir, o);
    }
    shoal_options_free(o);
    size_t idx[MAXENV * 2], n = 0;
    for (size_t i = 0; i < w->ne; i++) {
        idx[n++] = i;
        if (check_rand_below(8) == 0)
            idx[n++] = i;
    }
    shuffle(idx, n);
    for (size_t at = 0; !err && at < n;) {
        size_t b = 1 + check_rand_below(12);
        if (b > n - at)
            b = n - at;
        shoal__buf bb;
        shoal__buf_init(&bb);
        err = shoal__bundle_begin(&bb);
        for (size_t i = 0; !err && i < b; i++)
            err = shoal__bundle_add(&bb, w->e[idx[at + i]].p, w->e[idx[at + i]].n);
        if (!err) {
            shoal__bundle_finish(&bb, (uint32_t)b);
            err = shoal_import(r, bb.p, bb.len, NULL);
        }
        shoal__buf_free(&bb);
        at += b;
    }
    if (!err)
        err = shoal_digest(r, true, out->full);
    if (!err)
        err = shoal_digest(r, false, out->vis);
    if (!err) {
        /* Applied changes: the sum of the version vector's seqs (an
         * author's applied seqs are 1..n). */
        shoal_vv *vv = NULL;
        err = shoal_replica_version(r, &vv);
        out->applied = 0;
        for (size_t i = 0; !err && i < shoal_vv_count(vv); i++) {
            uint64_t seq = 0;
            err = shoal_vv_entry(vv, i, NULL, &seq);
            out->applied += seq;
        }
        shoal_vv_free(vv);
    }
    if (!err)
        err = shoal_pending_count(r, &out->pending);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
    return err;
}

/* Sets that once failed (forks of any op): each seed with forks_any. */
static const uint64_t regress_seeds[] = {
    33,     /* a dependency on a losing version applied before that version's
               own dependencies (the other version of seq 4, which replaced
               the applied one later) */
    101048, /* the same, found without the wait for a smaller version's deps */
};

static void
test_convergence(void)
{
    uint64_t seed = check_seed(0x5eed0a991e5ull);
    long sets = check_env_long("SHOAL_APPLY_SETS", SANITIZED ? 200 : 1500);
    long orders = check_env_long("SHOAL_APPLY_ORDERS", 4);
    const char *fk = getenv("SHOAL_APPLY_FORKS");
    size_t total_env = 0, total_eq = 0;
    long nreg = getenv("SHOAL_SEED") ? 0 : (long)(sizeof regress_seeds / sizeof regress_seeds[0]);
    for (long s = -nreg; s < sets; s++) {
        forks_any = s < 0 || (fk ? strcmp(fk, "any") == 0 : (s & 1) != 0);
        uint64_t sseed = s < 0 ? regress_seeds[nreg + s] : seed + (uint64_t)s;
        check_rand_reseed(sseed);
        world w;
        memset(&w, 0, sizeof w);
        for (int i = 0; i < NAUTH; i++) {
            uint8_t ks[32];
            for (int j = 0; j < 32; j++)
                ks[j] = (uint8_t)check_rand();
            crypto_sign_seed_keypair(w.a[i].pk, w.a[i].sk, ks);
            REQUIRE(shoal__memstore_new(&w.a[i].view) == SHOAL_OK);
        }
        gen_set(&w, 8 + check_rand_below(40));
        total_env += w.ne;
        total_eq += w.equivocations;
        result want;
        memset(&want, 0, sizeof want);
        int err = deliver_lmdb(&w, &want);
        CHECK_EQ(err, SHOAL_OK);
        for (long k = 0; !err && k < orders; k++) {
            result got;
            memset(&got, 0, sizeof got);
            CHECK_EQ(deliver_mem(&w, &got), SHOAL_OK);
            bool same = memcmp(got.full, want.full, 32) == 0 &&
                        memcmp(got.vis, want.vis, 32) == 0 && got.applied == want.applied &&
                        got.pending == 0 && want.pending == 0;
            if (!same) {
                fprintf(stderr,
                        "set %ld (SHOAL_SEED=%llu SHOAL_APPLY_SETS=1 SHOAL_APPLY_FORKS=%s "
                        "reproduces it), order %ld: "
                        "%zu envelopes, applied %llu vs %llu, pending %llu, full %s, "
                        "visible %s\n",
                        s, (unsigned long long)sseed, forks_any ? "any" : "plain", k, w.ne,
                        (unsigned long long)got.applied, (unsigned long long)want.applied,
                        (unsigned long long)got.pending,
                        memcmp(got.full, want.full, 32) ? "differ" : "same",
                        memcmp(got.vis, want.vis, 32) ? "differ" : "same");
                check_failures++;
                err = 1;
            }
        }
        for (int i = 0; i < NAUTH; i++)
            shoal__memstore_free(w.a[i].view);
        for (size_t i = 0; i < w.ne; i++)
            shoal__free(w.e[i].p);
        if (check_failures)
            break;
    }
    printf("apply: %ld change sets, %zu envelopes, %zu equivocations, %ld orders each\n", sets,
           total_env, total_eq, orders);
}

/* Whether two buffers hold the same bytes (either may be empty, p NULL). */
static bool
same_bytes(const shoal__buf *a, const shoal__buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* A document's full-state encoding, or "" for none. */
static void
full_of(const shoal__doc *d, shoal__buf *out)
{
    out->len = 0;
    if (d)
        CHECK_EQ(shoal__doc_encode_full(d, out), SHOAL_OK);
}

/* The state of a document over the closure of a change's deps
 * (shoal__apply_doc_at, which the write check of docs/permissions.md
 * judges a change on) against a store that was given exactly those
 * ancestors: for every change of random sets without equivocation, in a
 * store holding the whole set, whatever was applied after it.  When the
 * deps are the document's current heads it is the current state. */
static void
test_doc_at(void)
{
    uint64_t seed = check_seed(0xd0c0a7ull);
    long sets = check_env_long("SHOAL_DOCAT_SETS", SANITIZED ? 40 : 200);
    size_t checked = 0, past = 0, none = 0;
    for (long s = 0; s < sets; s++) {
        check_rand_reseed(seed + (uint64_t)s);
        forks_any = false;
        no_forks = true;
        world w;
        memset(&w, 0, sizeof w);
        for (int i = 0; i < NAUTH; i++) {
            uint8_t ks[32];
            for (int j = 0; j < 32; j++)
                ks[j] = (uint8_t)check_rand();
            crypto_sign_seed_keypair(w.a[i].pk, w.a[i].sk, ks);
            REQUIRE(shoal__memstore_new(&w.a[i].view) == SHOAL_OK);
        }
        gen_set(&w, 8 + check_rand_below(40));
        uint8_t cids[MAXENV][32];
        size_t all[MAXENV];
        for (size_t i = 0; i < w.ne; i++) {
            shoal__change_id(w.e[i].p, w.e[i].n, cids[i]);
            all[i] = i;
        }
        shoal__memstore *m = NULL;
        REQUIRE(shoal__memstore_new(&m) == SHOAL_OK);
        uint64_t clock = 0;
        /* creation order is causal */
        CHECK_EQ(mem_import(m, &w, all, w.ne, &clock), SHOAL_OK);
        shoal__buf got, want;
        shoal__buf_init(&got);
        shoal__buf_init(&want);
        for (size_t i = 0; i < w.ne; i++) {
            shoal__change c;
            REQUIRE(shoal__change_stored(w.e[i].p, w.e[i].n, &c) == SHOAL_OK);
            /* the ancestors of c, by following deps among the set */
            bool in[MAXENV] = { false };
            size_t stack[MAXENV], top = 0;
            for (size_t d = 0; d < c.ndeps; d++)
                for (size_t k = 0; k < w.ne; k++)
                    if (memcmp(cids[k], c.deps + d * 32, 32) == 0 && !in[k]) {
                        in[k] = true;
                        stack[top++] = k;
                    }
            while (top > 0) {
                shoal__change a;
                size_t k = stack[--top];
                REQUIRE(shoal__change_stored(w.e[k].p, w.e[k].n, &a) == SHOAL_OK);
                for (size_t d = 0; d < a.ndeps; d++)
                    for (size_t j = 0; j < w.ne; j++)
                        if (memcmp(cids[j], a.deps + d * 32, 32) == 0 && !in[j]) {
                            in[j] = true;
                            stack[top++] = j;
                        }
                shoal__change_clear(&a);
            }
            /* ...applied in the order they were made (a causal order) to
             * a new document: what the author saw */
            shoal__doc *ref = NULL;
            for (size_t k = 0; k < w.ne; k++) {
                if (!in[k])
                    continue;
                shoal__change a;
                REQUIRE(shoal__change_stored(w.e[k].p, w.e[k].n, &a) == SHOAL_OK);
                if (!ref)
                    REQUIRE((ref = shoal__doc_new()) != NULL);
                CHECK_EQ(shoal__doc_apply(ref, &a, 0, a.nops), SHOAL_OK);
                shoal__change_clear(&a);
            }
            full_of(ref, &want);
            shoal__doc_free(ref);
            const uint8_t *h;
            size_t nh;
            shoal__doc *at = NULL;
            CHECK_EQ(shoal__memstore_doc_at(m, c.coll, c.coll_len, c.doc, c.doc_len, c.deps,
                                            c.ndeps, &at),
                     SHOAL_OK);
            full_of(at, &got);
            if (!same_bytes(&got, &want)) {
                fprintf(stderr,
                        "doc_at: set %ld (SHOAL_SEED=%llu SHOAL_DOCAT_SETS=1), change %zu\n", s,
                        (unsigned long long)(seed + (uint64_t)s), i);
                check_failures++;
            }
            checked++;
            none += at == NULL;
            shoal__doc_free(at);
            /* the current heads give the current state */
            const shoal__doc *cur =
                shoal__memstore_doc(m, c.coll, c.coll_len, c.doc, c.doc_len, &h, &nh);
            CHECK_EQ(shoal__memstore_doc_at(m, c.coll, c.coll_len, c.doc, c.doc_len, h, nh, &at),
                     SHOAL_OK);
            /* (a past state: not the current one) */
            bool was_past = want.len != 0;
            full_of(cur, &want);
            was_past = was_past && !same_bytes(&want, &got);
            past += was_past;
            full_of(at, &got);
            CHECK(same_bytes(&got, &want));
            shoal__doc_free(at);
            shoal__change_clear(&c);
        }
        shoal__buf_free(&got);
        shoal__buf_free(&want);
        shoal__memstore_free(m);
        for (int i = 0; i < NAUTH; i++)
            shoal__memstore_free(w.a[i].view);
        for (size_t i = 0; i < w.ne; i++)
            shoal__free(w.e[i].p);
        if (check_failures)
            break;
    }
    no_forks = false;
    printf("doc_at: %zu changes, %zu on a past state, %zu on no state\n", checked, past, none);
    CHECK(past > checked / 4); /* the interesting case is common */
    CHECK(none > 0);
}

/* Import envelopes idx[0..n) of w into a fresh replica r (already open)
 * as one bundle. */
static int
lmdb_import(shoal_replica *r, const world *w, const size_t *idx, size_t n, shoal_import_result *res)
{
    shoal__buf bb;
    shoal__buf_init(&bb);
    int err = shoal__bundle_begin(&bb);
    for (size_t i = 0; !err && i < n; i++)
        err = shoal__bundle_add(&bb, w->e[idx[i]].p, w->e[idx[i]].n);
    if (!err) {
        shoal__bundle_finish(&bb, (uint32_t)n);
        err = shoal_import(r, bb.p, bb.len, res);
    }
    shoal__buf_free(&bb);
    return err;
}

/* A fresh replica: non-durable, fixed clock. */
static shoal_replica *
open_replica(char **dir)
{
    *dir = check_tmpdir("applyinv");
    shoal_options *o = NULL;
    shoal_replica *r = NULL;
    CHECK_EQ(shoal_options_new(&o), SHOAL_OK);
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, fixed_now, NULL);
    CHECK_EQ(shoal_replica_open(&r, *dir, o), SHOAL_OK);
    shoal_options_free(o);
    return r;
}

static void
close_replica(shoal_replica *r, char *dir)
{
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* A change of author a on doc d0: one op, at WALL_MS:tick, after deps. */
static int
seal_one(world *w, const author *a, uint64_t seq, uint16_t tick, const uint8_t *deps, size_t ndeps,
         shoal__op *op)
{
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, a->pk, 32);
    c.coll = (const uint8_t *)coll;
    c.coll_len = 1;
    c.doc = (const uint8_t *)docs[0];
    c.doc_len = 2;
    c.seq = seq;
    c.hlc = shoal__hlc_make(WALL_MS, tick);
    c.deps = deps;
    c.ndeps = ndeps;
    c.ops = op;
    c.nops = 1;
    return seal(w, a, &c);
}

static shoal__op
op_set_int(const char *field, int64_t v)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_SET;
    op.field = (const uint8_t *)field;
    op.field_len = strlen(field);
    op.value.type = SHOAL_T_INT;
    op.value.i = v;
    return op;
}

/* An insert whose reference is stamped after the change's own HLC: it
 * decodes, but shoal__doc_apply refuses it whatever the document holds. */
static shoal__op
op_bad_insert(void)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_INS;
    op.field = (const uint8_t *)"f1";
    op.field_len = 2;
    op.value.type = SHOAL_T_INT;
    op.ref.hlc = shoal__hlc_make(WALL_MS, 9);
    return op;
}

/* Put change *arg (a shoal__rec) in the pending set as is. */
static int
plant_fn(shoal__stxn *t, void *arg)
{
    const shoal__rec *rec = arg;
    return shoal__stxn_pending_put(t, rec->cid, rec->env, rec->env_len);
}

/* A change that decodes but can never apply (a reference stamped after
 * the change) is refused on arrival, whole bundle, whether it would apply
 * at once or wait in the pending set, in memory as on LMDB; nothing
 * changes. */
static void
test_bad_pending(void)
{
    world w;
    memset(&w, 0, sizeof w);
    uint8_t ks[32] = { 7 };
    author *a = &w.a[0];
    crypto_sign_seed_keypair(a->pk, a->sk, ks);
    shoal__op set = op_set_int("f0", 1), bad = op_bad_insert();
    REQUIRE(seal_one(&w, a, 1, 1, NULL, 0, &set) == 0);
    shoal__rec gr;
    rec_of(&w.e[0], &gr);
    REQUIRE(seal_one(&w, a, 2, 2, gr.cid, 1, &bad) == 1);

    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: the bad change alone (it would wait for its dependency),
         * then its dependency; pass 1: both in one import. */
        size_t first[] = { 1 }, then[] = { 0 }, both[] = { 1, 0 };
        shoal__memstore *m;
        REQUIRE(shoal__memstore_new(&m) == SHOAL_OK);
        char *dir;
        shoal_replica *r = open_replica(&dir);
        REQUIRE(r);
        uint64_t clock = 0;
        shoal_import_result lres;
        if (pass == 0) {
            CHECK_EQ(mem_import(m, &w, first, 1, &clock), SHOAL_EPROTO);
            CHECK_EQ(lmdb_import(r, &w, first, 1, &lres), SHOAL_EPROTO);
            CHECK(strstr(shoal_replica_errmsg(r), "change 1 of 1") != NULL);
            CHECK_EQ(shoal__memstore_pending(m), 0);
            CHECK_EQ(mem_import(m, &w, then, 1, &clock), SHOAL_OK);
            CHECK_EQ(lmdb_import(r, &w, then, 1, &lres), SHOAL_OK);
            CHECK_EQ(lres.applied, 1);
            CHECK_EQ(shoal__memstore_applied(m), 1);
        } else {
            CHECK_EQ(mem_import(m, &w, both, 2, &clock), SHOAL_EPROTO);
            CHECK_EQ(lmdb_import(r, &w, both, 2, &lres), SHOAL_EPROTO);
            CHECK_EQ(shoal__memstore_applied(m), 0);
        }
        CHECK_EQ(shoal__memstore_pending(m), 0);
        uint64_t pc = 9;
        CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 0);
        uint8_t d1[32], d2[32];
        CHECK(shoal_digest(r, true, d1) == SHOAL_OK);
        CHECK(shoal__memstore_digest(m, true, d2) == SHOAL_OK);
        CHECK(memcmp(d1, d2, 32) == 0);
        close_replica(r, dir);
        shoal__memstore_free(m);
    }

    /* Such a change in a pending set stored before it was refused on
     * arrival (planted here) is dropped at the next drain, and the
     * import that finds it goes on. */
    char *dir;
    shoal_replica *r = open_replica(&dir);
    REQUIRE(r);
    shoal__rec br;
    rec_of(&w.e[1], &br);
    CHECK_EQ(shoal__store_write(r->store, plant_fn, &br), SHOAL_OK);
    uint64_t pc = 0;
    CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 1);
    size_t then[] = { 0 };
    shoal_import_result lres;
    CHECK_EQ(lmdb_import(r, &w, then, 1, &lres), SHOAL_OK);
    CHECK_EQ(lres.applied, 1);
    CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 0);
    close_replica(r, dir);
    for (size_t i = 0; i < w.ne; i++)
        shoal__free(w.e[i].p);
}

/* Regression (fuzz_converge, pending counts and digests that differed):
 * an invalid change S and a valid change L of the same (author, seq) with
 * S's id the smaller, both after the author's seq 1, G, and N, the
 * author's seq 3 on top of L.  S used to be admitted to the pending set
 * and dropped only when it became ready and failed; meanwhile it counted
 * as the canonical version, so L arriving before that drop became
 * evidence and never applied (N then waited forever), while L arriving
 * after it applied.  The outcome depended on arrival order.  Now S is
 * refused on arrival: every order, each change imported alone, in memory
 * and on LMDB, ends with G, L and N applied and nothing pending. */
static void
test_invalid_version(void)
{
    world w;
    memset(&w, 0, sizeof w);
    uint8_t ks[32] = { 9 };
    author *a = &w.a[0];
    crypto_sign_seed_keypair(a->pk, a->sk, ks);
    shoal__op set = op_set_int("f0", 1), bad = op_bad_insert();
    REQUIRE(seal_one(&w, a, 1, 1, NULL, 0, &set) == 0); /* G */
    shoal__rec g, sr, lr;
    rec_of(&w.e[0], &g);
    REQUIRE(seal_one(&w, a, 2, 2, g.cid, 1, &bad) == 1); /* S */
    rec_of(&w.e[1], &sr);
    /* L: the first value (deterministic: fixed key, deterministic
     * signatures) that gives L the larger id. */
    shoal__op lop;
    for (int64_t v = 0;; v++) {
        REQUIRE(v < 64);
        lop = op_set_int("f2", v);
        REQUIRE(seal_one(&w, a, 2, 2, g.cid, 1, &lop) == 2);
        rec_of(&w.e[2], &lr);
        if (memcmp(sr.cid, lr.cid, 32) < 0)
            break;
        shoal__free(w.e[2].p);
        w.ne = 2;
    }
    shoal__op nop = op_set_int("f3", 3);
    REQUIRE(seal_one(&w, a, 3, 3, lr.cid, 1, &nop) == 3); /* N */

    enum {
        G = 0,
        S = 1,
        L = 2,
        N = 3
    };
    static const size_t orders[][4] = {
        { S, L, G, N }, /* L while S waits: L used to become evidence */
        { S, G, L, N }, /* S dropped first: L applied */
        { G, L, S, N }, /* S after L is applied: a smaller version */
        { L, S, N, G }, { N, L, S, G }, { G, S, N, L },
    };
    uint8_t want[2][32];
    bool have_want = false;
    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
        shoal__memstore *m;
        REQUIRE(shoal__memstore_new(&m) == SHOAL_OK);
        char *dir;
        shoal_replica *r = open_replica(&dir);
        REQUIRE(r);
        uint64_t clock = 0;
        for (size_t i = 0; i < 4; i++) {
            size_t one[] = { orders[o][i] };
            shoal_import_result res;
            int want_err = one[0] == S ? SHOAL_EPROTO : SHOAL_OK;
            CHECK_EQ(mem_import(m, &w, one, 1, &clock), want_err);
            CHECK_EQ(lmdb_import(r, &w, one, 1, &res), want_err);
        }
        uint64_t pc = 9;
        CHECK(shoal_pending_count(r, &pc) == SHOAL_OK);
        if (pc != 0 || shoal__memstore_pending(m) != 0 || shoal__memstore_applied(m) != 3)
            fprintf(stderr, "order %zu: pending %llu (LMDB) %llu (memory), applied %llu\n", o,
                    (unsigned long long)pc, (unsigned long long)shoal__memstore_pending(m),
                    (unsigned long long)shoal__memstore_applied(m));
        CHECK_EQ(pc, 0);
        CHECK_EQ(shoal__memstore_pending(m), 0);
        CHECK_EQ(shoal__memstore_applied(m), 3);
        for (int full = 0; full < 2; full++) {
            uint8_t d1[32], d2[32];
            CHECK(shoal_digest(r, full, d1) == SHOAL_OK);
            CHECK(shoal__memstore_digest(m, full, d2) == SHOAL_OK);
            CHECK(memcmp(d1, d2, 32) == 0);
            if (have_want)
                CHECK(memcmp(d1, want[full], 32) == 0);
            memcpy(want[full], d1, 32);
        }
        have_want = true;
        close_replica(r, dir);
        shoal__memstore_free(m);
    }
    for (size_t i = 0; i < w.ne; i++)
        shoal__free(w.e[i].p);
}

/* Regression (fuzz_converge): two versions of one (author, seq), O ready
 * and N, with the smaller id, waiting for a dependency no replica has,
 * and P, the author's next change, on top of O.  Two versions waiting
 * together used to let only the smaller apply and drop the other as
 * evidence at once: a replica that received N and O together applied
 * neither (P waited forever), one that applied O before N arrived kept O.
 * Now O applies whenever it is ready, as if it had come first, and N
 * would replace it once ready: every order, in memory and on LMDB, ends
 * with G, O and P applied and N pending. */
static void
test_stuck_smaller_version(void)
{
    world w;
    memset(&w, 0, sizeof w);
    uint8_t ks[32] = { 11 };
    author *a = &w.a[0];
    crypto_sign_seed_keypair(a->pk, a->sk, ks);
    shoal__op set = op_set_int("f0", 1);
    REQUIRE(seal_one(&w, a, 1, 1, NULL, 0, &set) == 0); /* G */
    shoal__rec g, orec, nrec;
    rec_of(&w.e[0], &g);
    shoal__op oop = op_set_int("f1", 1);
    REQUIRE(seal_one(&w, a, 2, 2, g.cid, 1, &oop) == 1); /* O */
    rec_of(&w.e[1], &orec);
    /* N: after G and an id nobody has; the first value that gives N the
     * smaller id (fixed key, deterministic signatures). */
    uint8_t ndeps[64];
    memcpy(ndeps, g.cid, 32);
    memset(ndeps + 32, 0xee, 32);
    if (memcmp(ndeps, ndeps + 32, 32) > 0) {
        uint8_t t[32];
        memcpy(t, ndeps, 32);
        memcpy(ndeps, ndeps + 32, 32);
        memcpy(ndeps + 32, t, 32);
    }
    shoal__op nop;
    for (int64_t v = 0;; v++) {
        REQUIRE(v < 64);
        nop = op_set_int("f2", v);
        REQUIRE(seal_one(&w, a, 2, 2, ndeps, 2, &nop) == 2);
        rec_of(&w.e[2], &nrec);
        if (memcmp(nrec.cid, orec.cid, 32) < 0)
            break;
        shoal__free(w.e[2].p);
        w.ne = 2;
    }
    shoal__op pchg = op_set_int("f3", 3);
    REQUIRE(seal_one(&w, a, 3, 3, orec.cid, 1, &pchg) == 3); /* P */

    enum {
        G = 0,
        O = 1,
        N = 2,
        P = 3
    };
    static const size_t orders[][4] = {
        { N, O, G, P }, /* N and O wait together: O used to be dropped */
        { G, N, O, P }, /* N waits when O arrives: O used to be dropped */
        { G, O, N, P }, /* O applied before N arrives: O stays */
        { O, G, P, N }, { P, N, O, G }, { O, N, P, G },
    };
    uint8_t want[2][32];
    for (size_t o = 0; o <= sizeof orders / sizeof orders[0]; o++) {
        shoal__memstore *m;
        REQUIRE(shoal__memstore_new(&m) == SHOAL_OK);
        char *dir;
        shoal_replica *r = open_replica(&dir);
        REQUIRE(r);
        uint64_t clock = 0;
        shoal_import_result res;
        if (o < sizeof orders / sizeof orders[0]) {
            for (size_t i = 0; i < 4; i++) {
                size_t one[] = { orders[o][i] };
                CHECK_EQ(mem_import(m, &w, one, 1, &clock), SHOAL_OK);
                CHECK_EQ(lmdb_import(r, &w, one, 1, &res), SHOAL_OK);
            }
        } else { /* all four in one import */
            size_t all[] = { N, O, P, G };
            CHECK_EQ(mem_import(m, &w, all, 4, &clock), SHOAL_OK);
            CHECK_EQ(lmdb_import(r, &w, all, 4, &res), SHOAL_OK);
        }
        uint64_t pc = 9;
        CHECK(shoal_pending_count(r, &pc) == SHOAL_OK);
        if (pc != 1 || shoal__memstore_pending(m) != 1 || shoal__memstore_applied(m) != 3)
            fprintf(stderr, "order %zu: pending %llu (LMDB) %llu (memory), applied %llu\n", o,
                    (unsigned long long)pc, (unsigned long long)shoal__memstore_pending(m),
                    (unsigned long long)shoal__memstore_applied(m));
        CHECK_EQ(pc, 1);
        CHECK_EQ(shoal__memstore_pending(m), 1);
        CHECK_EQ(shoal__memstore_applied(m), 3);
        shoal_strlist *eq = NULL;
        CHECK(shoal_equivocators(r, &eq) == SHOAL_OK && shoal_strlist_count(eq) == 1);
        shoal_strlist_free(eq);
        for (int full = 0; full < 2; full++) {
            uint8_t d1[32], d2[32];
            CHECK(shoal_digest(r, full, d1) == SHOAL_OK);
            CHECK(shoal__memstore_digest(m, full, d2) == SHOAL_OK);
            CHECK(memcmp(d1, d2, 32) == 0);
            if (o > 0)
                CHECK(memcmp(d1, want[full], 32) == 0);
            memcpy(want[full], d1, 32);
        }
        close_replica(r, dir);
        shoal__memstore_free(m);
    }
    for (size_t i = 0; i < w.ne; i++)
        shoal__free(w.e[i].p);
}

/* shoal__apply_replay's load: an empty change (no op), or fail at
 * rent index fail_at. */
typedef struct replay_ctx {
    shoal__rent *base;
    size_t fail_at;
    size_t loads;
} replay_ctx;

static int
replay_load(void *ctx, const shoal__rent *e, shoal__change *c)
{
    replay_ctx *x = ctx;
    x->loads++;
    memset(c, 0, sizeof *c);
    c->seq = 1;
    return (size_t)(e - x->base) == x->fail_at ? SHOAL_ECORRUPT : SHOAL_OK;
}

/* The rebuild both stores share (apply.h): the heads left by a replay,
 * with deps in order, out of order and in a cycle; and the heads update
 * of one applied change. */
static void
test_replay_heads(void)
{
    /* ids 1..4: A=1, B=2, C=3, D=4; B and C depend on A, D on B and C. */
    shoal__rent e[4];
    size_t dB[] = { 0 }, dC[] = { 0 };
    memset(e, 0, sizeof e);
    for (int i = 0; i < 4; i++)
        memset(e[i].cid, i + 1, SHOAL__ID_BYTES);
    e[1].dep = dB, e[1].ndep = 1;
    e[2].dep = dC, e[2].ndep = 1;
    replay_ctx x = { e, SIZE_MAX, 0 };
    shoal__doc *d;
    uint8_t *h;
    size_t nh;
    /* A, B, C: heads {B, C}. */
    REQUIRE(shoal__apply_replay(e, 3, replay_load, &x, &d, &h, &nh) == SHOAL_OK);
    CHECK(nh == 2 && memcmp(h, e[1].cid, 32) == 0 && memcmp(h + 32, e[2].cid, 32) == 0);
    shoal__doc_free(d);
    shoal__free(h);
    /* D listed first, before what it depends on: still heads {D}. */
    shoal__rent f[4] = { e[3], e[0], e[1], e[2] };
    size_t fB[] = { 1 }, fC[] = { 1 }, fD[] = { 2, 3 };
    for (int i = 0; i < 4; i++)
        f[i].done = false;
    f[0].dep = fD, f[0].ndep = 2;
    f[2].dep = fB, f[2].ndep = 1;
    f[3].dep = fC, f[3].ndep = 1;
    x = (replay_ctx){ f, SIZE_MAX, 0 };
    REQUIRE(shoal__apply_replay(f, 4, replay_load, &x, &d, &h, &nh) == SHOAL_OK);
    CHECK(nh == 1 && memcmp(h, e[3].cid, 32) == 0);
    CHECK_EQ(x.loads, 4);
    shoal__doc_free(d);
    shoal__free(h);
    /* A cycle (A on B, B on A): taken in list order, heads {B}. */
    shoal__rent g[2];
    memset(g, 0, sizeof g);
    memset(g[0].cid, 1, 32);
    memset(g[1].cid, 2, 32);
    size_t gA[] = { 1 }, gB[] = { 0 };
    g[0].dep = gA, g[0].ndep = 1;
    g[1].dep = gB, g[1].ndep = 1;
    x = (replay_ctx){ g, SIZE_MAX, 0 };
    REQUIRE(shoal__apply_replay(g, 2, replay_load, &x, &d, &h, &nh) == SHOAL_OK);
    CHECK(nh == 1 && memcmp(h, g[1].cid, 32) == 0);
    shoal__doc_free(d);
    shoal__free(h);
    /* A load error: returned, nothing handed out. */
    for (int i = 0; i < 2; i++)
        g[i].done = false;
    x = (replay_ctx){ g, 1, 0 };
    CHECK_EQ(shoal__apply_replay(g, 2, replay_load, &x, &d, &h, &nh), SHOAL_ECORRUPT);
    CHECK(d == NULL && h == NULL && nh == 0);

    /* heads {1, 3}, a change 2 on 1: {2, 3}; then 4 on nothing: {2, 3, 4};
     * the same id again: no duplicate. */
    uint8_t hs[2 * 32], one[32], two[32], four[32];
    memset(hs, 1, 32);
    memset(hs + 32, 3, 32);
    memset(one, 1, 32);
    memset(two, 2, 32);
    memset(four, 4, 32);
    uint8_t *o, *o2;
    size_t no, no2;
    REQUIRE(shoal__heads_advance(hs, 2, one, 1, two, &o, &no) == SHOAL_OK);
    CHECK(no == 2 && o[0] == 2 && o[32] == 3);
    REQUIRE(shoal__heads_advance(o, no, NULL, 0, four, &o2, &no2) == SHOAL_OK);
    CHECK(no2 == 3 && o2[0] == 2 && o2[32] == 3 && o2[64] == 4);
    shoal__free(o);
    REQUIRE(shoal__heads_advance(o2, no2, NULL, 0, four, &o, &no) == SHOAL_OK);
    CHECK(no == 3 && o[64] == 4);
    shoal__free(o);
    shoal__free(o2);
}

/* shoal__apply_rebuild over a store where every id but those starting
 * with byte 9 is applied (no evidence): each rent's change has the deps
 * of its row in deps. */
typedef struct rebuild_ctx {
    const shoal__rent *base;
    const uint8_t *deps[4];
    size_t ndeps[4];
} rebuild_ctx;

static int
rebuild_load(void *ctx, const shoal__rent *e, shoal__change *c)
{
    const rebuild_ctx *x = ctx;
    size_t i = (size_t)(e - x->base);
    memset(c, 0, sizeof *c);
    c->seq = 1;
    c->deps = x->deps[i];
    c->ndeps = x->ndeps[i];
    return SHOAL_OK;
}

static bool
fake_has(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    (void)ctx;
    return cid[0] != 9;
}

static int
fake_ev_find(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t who[SHOAL_KEY_BYTES],
             uint64_t *seq)
{
    (void)ctx, (void)cid, (void)who, (void)seq;
    return SHOAL_ENOTFOUND;
}

/* The rebuild maps deps to the list itself: D (listed first) on B, C and
 * an id outside the list (9...), B and C on A: heads {D}; the dep arrays
 * are gone afterwards. */
static void
test_rebuild_deps(void)
{
    shoal__apply_store s;
    memset(&s, 0, sizeof s);
    s.has = fake_has;
    s.ev_find = fake_ev_find;
    uint8_t id[5][32];
    for (int i = 0; i < 4; i++)
        memset(id[i], i + 1, 32); /* A=1, B=2, C=3, D=4 */
    memset(id[4], 9, 32);
    uint8_t dD[3 * 32], dA1[32];
    memcpy(dD, id[1], 32);
    memcpy(dD + 32, id[2], 32);
    memcpy(dD + 64, id[4], 32);
    memcpy(dA1, id[0], 32);
    shoal__rent e[4];
    memset(e, 0, sizeof e);
    const int order[4] = { 3, 0, 1, 2 }; /* D, A, B, C */
    for (int i = 0; i < 4; i++)
        memcpy(e[i].cid, id[order[i]], 32);
    rebuild_ctx x = { e, { dD, NULL, dA1, dA1 }, { 3, 0, 1, 1 } };
    shoal__doc *d;
    uint8_t *h;
    size_t nh;
    REQUIRE(shoal__apply_rebuild(&s, e, 4, rebuild_load, &x, &d, &h, &nh) == SHOAL_OK);
    CHECK(nh == 1 && memcmp(h, id[3], 32) == 0);
    for (int i = 0; i < 4; i++)
        CHECK(e[i].dep == NULL && e[i].ndep == 0 && e[i].done);
    shoal__doc_free(d);
    shoal__free(h);
}

/* A smaller version of an applied (author, seq) that can never apply (a
 * ref stamped after it) must not wedge the store nor keep the valid
 * version from applying, in memory as on LMDB, in any order.  It used to
 * wait in the pending set while a dep was missing, then fail the rebuild
 * with SHOAL_ECORRUPT (not taken as a bad pending change, so every later
 * import failed), and arriving first it put the valid version aside as
 * evidence for good.  Now it is refused on arrival (SHOAL_EPROTO), which
 * changes nothing. */
static void
test_bad_swap(void)
{
    check_rand_reseed(11);
    world w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < 2; i++) {
        uint8_t ks[32] = { (uint8_t)(21 + i) };
        crypto_sign_seed_keypair(w.a[i].pk, w.a[i].sk, ks);
    }
    shoal__change c;
    shoal__op op;
    /* 0: b's seq 1 (the dep that comes late); 1: a's seq 1, applied. */
    for (int i = 0; i < 2; i++) {
        memset(&c, 0, sizeof c);
        memcpy(c.author, w.a[1 - i].pk, 32);
        c.coll = (const uint8_t *)coll;
        c.coll_len = 1;
        c.doc = (const uint8_t *)docs[0];
        c.doc_len = 2;
        c.seq = 1;
        c.hlc = shoal__hlc_make(WALL_MS, (uint16_t)(1 + i));
        memset(&op, 0, sizeof op);
        op.kind = SHOAL__OP_SET;
        op.field = (const uint8_t *)"f0";
        op.field_len = 2;
        op.value.type = SHOAL_T_INT;
        op.value.i = i;
        c.ops = &op;
        c.nops = 1;
        REQUIRE(seal(&w, &w.a[1 - i], &c) == i);
    }
    shoal__rec z, g;
    rec_of(&w.e[0], &z);
    rec_of(&w.e[1], &g);
    /* 2: another version of a's seq 1, smaller id than 1's, depending on
     * 0, with an insert after an op stamped later than itself. */
    for (int64_t v = 0;; v++) {
        memset(&c, 0, sizeof c);
        memcpy(c.author, w.a[0].pk, 32);
        c.coll = (const uint8_t *)coll;
        c.coll_len = 1;
        c.doc = (const uint8_t *)docs[0];
        c.doc_len = 2;
        c.seq = 1;
        c.hlc = shoal__hlc_make(WALL_MS, 3);
        c.deps = z.cid;
        c.ndeps = 1;
        memset(&op, 0, sizeof op);
        op.kind = SHOAL__OP_INS;
        op.field = (const uint8_t *)"f1";
        op.field_len = 2;
        op.value.type = SHOAL_T_INT;
        op.value.i = v;
        op.ref.hlc = shoal__hlc_make(WALL_MS, 9);
        c.ops = &op;
        c.nops = 1;
        REQUIRE(seal(&w, &w.a[0], &c) == 2);
        shoal__rec x;
        rec_of(&w.e[2], &x);
        if (memcmp(x.cid, g.cid, 32) < 0)
            break;
        shoal__free(w.e[2].p);
        w.ne = 2;
    }

    for (int pass = 0; pass < 3; pass++) {
        /* pass 0: 1, then 2 (its dep 0 missing), then 0;
         * pass 1: 0, 1, then 2 (ready);
         * pass 2: 2, 1, then 0.  2 is refused on arrival in every order
         * (SHOAL_EPROTO, nothing changes), even where it would only wait:
         * it never puts 1 aside as evidence (1 used to be lost in pass 2)
         * and never wedges a later import.  Before refusal on arrival,
         * pass 0 and 2 stored it pending and the swap had to refuse it. */
        size_t p0[] = { 1, 2, 0 }, p1[] = { 0, 1, 2 }, p2[] = { 2, 1, 0 };
        const size_t *order = pass == 2 ? p2 : pass ? p1 : p0;
        shoal__memstore *m;
        REQUIRE(shoal__memstore_new(&m) == SHOAL_OK);
        char *dir = check_tmpdir("applyswap");
        shoal_options *o = NULL;
        shoal_replica *r = NULL;
        CHECK_EQ(shoal_options_new(&o), SHOAL_OK);
        shoal_options_set_durable(o, false);
        shoal_options_set_clock(o, fixed_now, NULL);
        CHECK_EQ(shoal_replica_open(&r, dir, o), SHOAL_OK);
        shoal_options_free(o);
        REQUIRE(r);
        uint64_t clock = 0;
        for (int k = 0; k < 3; k++) {
            shoal__rec rr;
            rec_of(&w.e[order[k]], &rr);
            shoal_import_result mres, lres;
            int want = order[k] == 2 ? SHOAL_EPROTO : SHOAL_OK;
            CHECK_EQ(shoal__memstore_import(m, &rr, 1, WALL_MS, 60000, &clock, &mres), want);
            CHECK_EQ(lmdb_import(r, &w, &order[k], 1, &lres), want);
            if (want == SHOAL_OK)
                CHECK_EQ(mres.applied, lres.applied);
        }
        CHECK_EQ(shoal__memstore_applied(m), 2);
        CHECK_EQ(shoal__memstore_pending(m), 0);
        uint64_t pc = 9;
        CHECK(shoal_pending_count(r, &pc) == SHOAL_OK && pc == 0);
        /* Not wedged: the next import goes through. */
        size_t again = 0;
        shoal__rec zr;
        rec_of(&w.e[0], &zr);
        CHECK_EQ(shoal__memstore_import(m, &zr, 1, WALL_MS, 60000, &clock, NULL), SHOAL_OK);
        CHECK_EQ(lmdb_import(r, &w, &again, 1, NULL), SHOAL_OK);
        uint8_t d1[32], d2[32];
        CHECK(shoal_digest(r, true, d1) == SHOAL_OK);
        CHECK(shoal__memstore_digest(m, true, d2) == SHOAL_OK);
        CHECK(memcmp(d1, d2, 32) == 0);
        shoal_replica_close(r);
        check_rmtree(dir);
        free(dir);
        shoal__memstore_free(m);
    }
    for (size_t i = 0; i < w.ne; i++)
        shoal__free(w.e[i].p);
}

int
main(void)
{
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    RUN(test_bad_pending);
    RUN(test_replay_heads);
    RUN(test_rebuild_deps);
    RUN(test_bad_swap);
    RUN(test_invalid_version);
    RUN(test_stuck_smaller_version);
    RUN(test_convergence);
    RUN(test_doc_at);
    return check_summary();
}
