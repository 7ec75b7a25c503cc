/*
 * core/bundle.c - export and import of bundles, and the causal apply loop
 * (drain) shared by import, open and local commits.
 *
 * Import is verify-then-apply: shoal__bundle_open checks every signature
 * (on several threads for a large batch, see "verification" below) and
 * every body is decoded before the write transaction starts, so a bundle
 * holding one bad change is rejected whole with nothing written.
 *
 * Memory.  A body of a few bytes can decode to SHOAL__MAX_OPS ops (a DEL
 * run), about 100 MB of op structs, so decoding a whole batch up front
 * could demand that much per change.  Candidates therefore keep their
 * decoded ops only while the ops kept add up to at most KEEP_OPS; beyond
 * that a candidate is validated (decoded in full, then freed at once),
 * keeps only what the causal checks need (header fields, a copy of its
 * deps) and is decoded again just before it is applied.  An import thus
 * holds at most KEEP_OPS kept ops for the bundle, as many for the pending
 * set, and one change decoded again, whatever the bodies expand to.  In the
 * common case (small changes) nothing is decoded twice.  Inside one
 * write transaction each change is then a duplicate (already applied or
 * pending), another version of an (author, seq) (the smaller change id
 * is canonical: a larger one is kept as evidence, a smaller one replaces
 * the applied one once it is ready; see "equivocation" below), ready
 * (applied), or pending.
 *
 * The drain puts the new changes and the stored pending set together,
 * sorted by (hlc, author, seq).  An honest author's change has a greater HLC
 * than its previous change and than every dependency (the HLC observed
 * them), so this order is causal and one pass applies everything that is
 * ready; more passes only happen for out-of-order or dishonest input.
 *
 * A change held back because its HLC is too far ahead of the wall clock
 * stays in the pending set; r->due_ms remembers when the earliest such
 * change becomes acceptable, and the next commit or import after that time
 * drains the pending set again.  Held back, never lost.
 *
 * A pending change that turns out invalid when finally applied (SHOAL_EPROTO
 * from shoal__doc_apply, e.g. a list insert after an element that does not
 * exist) must not wedge every later write: the write transaction is aborted,
 * the change's id is remembered in wctx.skip and the transaction rerun with
 * that change dropped from the pending set.  If the invalid change came in
 * the bundle being imported, the whole import fails instead.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "core.h"

/* Decoded ops a batch of candidates keeps (see above): 2^19 ops, about
 * 50 MB of op structs. */
#define KEEP_OPS ((size_t)1 << 19)

struct shoal__cand {
    const uint8_t *env; /* into the bundle, or owned */
    size_t env_len;
    uint8_t *owned;      /* env copy from the pending table */
    const uint8_t *body; /* into env */
    size_t body_len;
    shoal__change c; /* decoded; ops owned (none when stripped) */
    uint8_t *deps;   /* owned copy of c.deps when stripped */
    bool stripped;   /* ops dropped: decode body again to apply */
    uint8_t cid[32];
    bool from_bundle;
    bool in_pending; /* stored in the pending table */
    bool done;
};

/* ----------------------------------------------------------------- clock */

/* The HLC is the greatest of meta "clock" and the HLC of the last change
 * in the log.  Every tick makes a change (the last one of its commit), so
 * a local commit leaves the clock equal to its last change's HLC and need
 * not write meta; only an import that observed a greater HLC than the
 * change it appended last does. */
static int
clock_derived(shoal__stxn *t, uint64_t *clock)
{
    shoal__sval v;
    *clock = 0;
    int err = shoal__stxn_meta_get(t, "clock", &v);
    if (err == SHOAL_OK) {
        if (v.len != 8)
            return SHOAL_ECORRUPT;
        *clock = shoal__be64_get(v.p);
    } else if (err != SHOAL_ENOTFOUND) {
        return err;
    }
    shoal__sval env;
    err = shoal__stxn_log_last(t, NULL, &env);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    if (err)
        return err;
    size_t elen, blen;
    const uint8_t *body;
    err = shoal__envelope_parse(env.p, env.len, &elen, &body, &blen);
    if (err)
        return SHOAL_ECORRUPT;
    /* The body is [seq, hlc, ...]. */
    shoal__mpr rd;
    shoal__mpr_init(&rd, body, blen);
    (void)shoal__mpr_array(&rd, 8, 1);
    (void)shoal__mpr_uint(&rd);
    uint64_t hlc = shoal__mpr_uint(&rd);
    if (rd.err)
        return SHOAL_ECORRUPT;
    if (hlc > *clock)
        *clock = hlc;
    return SHOAL_OK;
}

int
shoal__clock_load(shoal__stxn *t, uint64_t *clock)
{
    return clock_derived(t, clock);
}

int
shoal__clock_store(shoal__stxn *t, uint64_t clock)
{
    uint64_t have;
    int err = clock_derived(t, &have);
    if (err || clock <= have)
        return err;
    uint8_t b[8];
    shoal__be64_put(b, clock);
    return shoal__stxn_meta_put(t, "clock", b, sizeof b);
}

/* ------------------------------------------------------------ candidates */

/* Keep k's decoded ops if *kept + k's ops stay within KEEP_OPS, else drop
 * them (the change was decoded in full, so it is valid as far as decoding
 * goes), keeping the header fields and a copy of the deps. */
static int
cand_budget(shoal__cand *k, size_t *kept)
{
    if (k->c.nops <= KEEP_OPS - *kept) {
        *kept += k->c.nops;
        return SHOAL_OK;
    }
    uint8_t *deps = NULL;
    if (k->c.ndeps) {
        deps = shoal__malloc(k->c.ndeps * 32);
        if (!deps)
            return SHOAL_ENOMEM;
        memcpy(deps, k->c.deps, k->c.ndeps * 32);
    }
    shoal__change h = k->c;
    shoal__change_clear(&k->c); /* frees the ops block (deps, authors in it) */
    k->c = h;
    k->c.ops = NULL;
    k->c.nops = 0;
    k->c.authors = NULL;
    k->c.nauthors = 0;
    k->c.deps = deps;
    k->deps = deps;
    k->stripped = true;
    return SHOAL_OK;
}

static void
cand_clear(shoal__cand *k)
{
    shoal__change_clear(&k->c);
    shoal__free(k->deps);
    k->deps = NULL;
    k->stripped = false;
}

/* Remember x->bad as a pending change to drop on the next run. */
static int
wctx_skip_bad(shoal__wctx *x)
{
    uint8_t *p = shoal__realloc(x->skip, (x->nskip + 1) * 32);
    if (!p)
        return SHOAL_ENOMEM;
    x->skip = p;
    memcpy(x->skip + x->nskip * 32, x->bad, 32);
    x->nskip++;
    x->bad_pending = false;
    return SHOAL_OK;
}

void
shoal__wctx_init(shoal__wctx *x, shoal_replica *r)
{
    memset(x, 0, sizeof *x);
    x->r = r;
    shoal__wset_init(&x->w, r);
    x->wall = shoal__wall_ms(r);
}

int
shoal__wctx_write(shoal__wctx *x, shoal__txn_fn fn, void *arg)
{
    int err;
    for (;;) {
        x->bad_pending = false;
        x->ev_new = false;
        err = shoal__store_write(x->r->store, fn, arg);
        if (err && x->bad_pending) {
            int e2 = wctx_skip_bad(x);
            if (e2) {
                err = e2;
                break;
            }
            continue;
        }
        break;
    }
    if (!err) {
        shoal__wset_commit(&x->w);
        x->r->due_ms = x->due_ms;
        if (x->ev_new)
            atomic_fetch_add(&x->r->ev_gen, 1); /* sessions resend evidence */
    } else {
        shoal__wset_free(&x->w);
    }
    shoal__free(x->skip);
    x->skip = NULL;
    x->nskip = 0;
    return err;
}

/* ----------------------------------------------------------------- drain */

typedef struct load_ctx {
    shoal__wctx *x;
    shoal__stxn *t;
    shoal__cand *c;
    size_t n;
    size_t cap;
    uint8_t *drop; /* ids to delete after the scan */
    size_t ndrop;
    size_t kept; /* decoded ops kept (cand_budget) */
    int err;
} load_ctx;

static bool
in_skip(const shoal__wctx *x, const uint8_t *cid)
{
    for (size_t i = 0; i < x->nskip; i++)
        if (memcmp(x->skip + i * 32, cid, 32) == 0)
            return true;
    return false;
}

static int
load_pending_cb(const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    load_ctx *lc = arg;
    if (in_skip(lc->x, cid)) {
        uint8_t *p = shoal__realloc(lc->drop, (lc->ndrop + 1) * 32);
        if (!p) {
            lc->err = SHOAL_ENOMEM;
            return 1;
        }
        lc->drop = p;
        memcpy(lc->drop + lc->ndrop++ * 32, cid, 32);
        return 0;
    }
    if (lc->n == lc->cap) {
        size_t cap = lc->cap ? lc->cap * 2 : 16;
        shoal__cand *p = shoal__realloc(lc->c, cap * sizeof *p);
        if (!p) {
            lc->err = SHOAL_ENOMEM;
            return 1;
        }
        lc->c = p;
        lc->cap = cap;
    }
    shoal__cand *k = &lc->c[lc->n];
    memset(k, 0, sizeof *k);
    k->owned = shoal__malloc(env->len ? env->len : 1);
    if (!k->owned) {
        lc->err = SHOAL_ENOMEM;
        return 1;
    }
    memcpy(k->owned, env->p, env->len);
    k->env = k->owned;
    k->env_len = env->len;
    memcpy(k->cid, cid, 32);
    k->in_pending = true;
    lc->n++;
    size_t elen, blen;
    const uint8_t *body;
    int err = shoal__envelope_parse(k->env, k->env_len, &elen, &body, &blen);
    if (!err && elen != k->env_len)
        err = SHOAL_ECORRUPT;
    if (!err) {
        k->body = body;
        k->body_len = blen;
        memcpy(k->c.author, shoal__envelope_author(k->env), 32);
        err = shoal__change_decode(body, blen, &k->c);
    }
    if (!err)
        err = cand_budget(k, &lc->kept);
    if (err) {
        lc->err = err == SHOAL_ENOMEM ? SHOAL_ENOMEM : SHOAL_ECORRUPT;
        return 1;
    }
    return 0;
}

static int
cand_cmp(const void *a, const void *b)
{
    const shoal__cand *x = *(shoal__cand *const *)a, *y = *(shoal__cand *const *)b;
    if (x->c.hlc != y->c.hlc)
        return x->c.hlc < y->c.hlc ? -1 : 1;
    int c = memcmp(x->c.author, y->c.author, 32);
    if (c)
        return c;
    if (x->c.seq != y->c.seq)
        return x->c.seq < y->c.seq ? -1 : 1;
    return memcmp(x->cid, y->cid, 32);
}

/* ----------------------------------------------------------- equivocation
 *
 * Rule (docs/c-api.md, "Equivocation"): of the versions of one (author,
 * seq) a replica holds, the one with the smallest change id (memcmp) is
 * canonical and the only one applied; the others are evidence.  A smaller
 * version arriving after another was applied replaces it (swap) as soon as
 * it is applicable; a dependency naming a version held as evidence counts
 * as satisfied once the canonical version of its (author, seq) is applied.
 * Evidence per (author, seq): the canonical version and one other (the
 * displaced one after a swap, else the first other seen); SHOAL__EVIDENCE_MAX
 * entries in all (past it, a new pair is not stored, the rule still
 * applies to the versions in hand). */

/* dep counts as applied: itself, or the canonical version of the (author,
 * seq) it is evidence for.  *out (may be NULL) receives the applied id. */
int
shoal__dep_applied(shoal__stxn *t, const uint8_t dep[32], uint8_t out[32])
{
    if (shoal__stxn_change_has(t, dep)) {
        if (out)
            memcpy(out, dep, 32);
        return SHOAL_OK;
    }
    uint8_t author[32], cid[32];
    uint64_t seq;
    int err = shoal__stxn_evidence_find(t, dep, author, &seq);
    if (err)
        return err;
    err = shoal__stxn_authseq_get(t, author, seq, cid);
    if (!err && out)
        memcpy(out, cid, 32);
    return err;
}

static bool
deps_ok(shoal__stxn *t, const shoal__cand *k)
{
    for (size_t i = 0; i < k->c.ndeps; i++)
        if (shoal__dep_applied(t, k->c.deps + i * 32, NULL) != SHOAL_OK)
            return false;
    return true;
}

/* Copy of the envelope of applied change cid (Owned by the caller). */
static int
applied_env(shoal__stxn *t, const uint8_t cid[32], uint8_t **env, size_t *len)
{
    shoal__sval oe;
    int err = shoal__stxn_change_get(t, cid, &oe);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
    /* Copy: a value read in a write txn may move on the next put. */
    *env = shoal__malloc(oe.len ? oe.len : 1);
    if (!*env)
        return SHOAL_ENOMEM;
    memcpy(*env, oe.p, oe.len);
    *len = oe.len;
    return SHOAL_OK;
}

/* Make the evidence of (author, seq) hold versions a and b (a < b; each
 * with its envelope).  force (a swap): drop every other version first.
 * Otherwise a pair is stored only if (author, seq) holds no evidence yet
 * and the total cap allows it.  Sets x->ev_new when something was stored. */
static int
evidence_pair(shoal__wctx *x, shoal__stxn *t, const uint8_t author[32], uint64_t seq,
              const uint8_t a[32], const uint8_t *aenv, size_t alen, const uint8_t b[32],
              const uint8_t *benv, size_t blen, bool force)
{
    uint8_t have[4 * 32];
    size_t n;
    int err = shoal__stxn_evidence_versions(t, author, seq, have, 4, &n);
    if (err)
        return err;
    if (!force && (n > 0 || shoal__stxn_evidence_count(t) + 2 > SHOAL__EVIDENCE_MAX))
        return SHOAL_OK;
    bool has_a = false, has_b = false;
    for (size_t i = 0; i < n && i < 4; i++) {
        const uint8_t *h = have + i * 32;
        if (memcmp(h, a, 32) == 0) {
            has_a = true;
        } else if (memcmp(h, b, 32) == 0) {
            has_b = true;
        } else {
            err = shoal__stxn_evidence_del(t, author, seq, h);
            if (err)
                return err;
            x->ev_new = true;
        }
    }
    if (n > 4)
        return SHOAL_ECORRUPT; /* never more than two are stored */
    if (!has_a) {
        err = shoal__stxn_evidence_put(t, author, seq, a, aenv, alen);
        x->ev_new = true;
    }
    if (!err && !has_b) {
        err = shoal__stxn_evidence_put(t, author, seq, b, benv, blen);
        x->ev_new = true;
    }
    return err;
}

/* The smallest id held as evidence for k's (author, seq) into min;
 * false if none. */
static int
evidence_min(shoal__stxn *t, const shoal__cand *k, uint8_t min[32], bool *found)
{
    uint8_t have[32];
    size_t n;
    int err = shoal__stxn_evidence_versions(t, k->c.author, k->c.seq, have, 1, &n);
    *found = !err && n > 0;
    if (*found)
        memcpy(min, have, 32);
    return err;
}

static int
apply_one(shoal__wctx *x, shoal__stxn *t, shoal__cand *k)
{
    /* A stripped candidate is decoded again, for this call only. */
    shoal__change full;
    const shoal__change *c = &k->c;
    if (k->stripped) {
        memset(&full, 0, sizeof full);
        memcpy(full.author, k->c.author, 32);
        int err = shoal__change_decode(k->body, k->body_len, &full);
        if (err)
            return err == SHOAL_ENOMEM ? SHOAL_ENOMEM : SHOAL_ECORRUPT;
        c = &full;
    }
    shoal__wdoc *wd;
    int err = shoal__wset_get(&x->w, c->coll, c->coll_len, c->doc, c->doc_len, &wd);
    if (err) {
        err = err == SHOAL_EINVAL ? SHOAL_EPROTO : err;
        goto out;
    }
    err = shoal__doc_apply(wd->doc, c, 0, c->nops);
    if (err) {
        if (err != SHOAL_ENOMEM) {
            if (!k->from_bundle) {
                x->bad_pending = true;
                memcpy(x->bad, k->cid, 32);
            }
            err = SHOAL_EPROTO;
        }
        goto out;
    }
    uint64_t pos;
    err = shoal__stxn_change_put(t, k->cid, k->env, k->env_len, c->author, c->seq,
                                 wd->meta.last_pos, &pos);
    /* The heads lose the deps as applied here (a dep on a version held
     * as evidence names its canonical version). */
    shoal__change cm = *c;
    uint8_t *mdeps = NULL;
    if (!err && c->ndeps) {
        mdeps = shoal__malloc(c->ndeps * 32);
        if (!mdeps)
            err = SHOAL_ENOMEM;
        for (size_t i = 0; !err && i < c->ndeps; i++) {
            int e2 = shoal__dep_applied(t, c->deps + i * 32, mdeps + i * 32);
            if (e2 == SHOAL_ENOTFOUND)
                memcpy(mdeps + i * 32, c->deps + i * 32, 32);
            else
                err = e2;
        }
        cm.deps = mdeps;
    }
    if (!err)
        err = shoal__wset_applied(&x->w, wd, &cm, k->cid, pos, k->env_len, true);
    shoal__free(mdeps);
    if (!err)
        x->clock = shoal__hlc_observe(x->clock, c->hlc);
out:
    if (c == &full)
        shoal__change_clear(&full);
    return err;
}

/* k (canonical) replaces applied version old of its (author, seq): old is
 * superseded in the log, k appended, the documents of both rebuilt from
 * their applied changes (docstore.c). */
static int
swap_in(shoal__wctx *x, shoal__stxn *t, shoal__cand *k, const uint8_t old[32])
{
    uint8_t *oenv = NULL;
    size_t olen = 0;
    int err = applied_env(t, old, &oenv, &olen);
    if (err)
        return err;
    err = evidence_pair(x, t, k->c.author, k->c.seq, k->cid, k->env, k->env_len, old, oenv, olen,
                        true);
    shoal__change oc;
    memset(&oc, 0, sizeof oc);
    size_t elen, blen;
    const uint8_t *body;
    if (!err) {
        err = shoal__envelope_parse(oenv, olen, &elen, &body, &blen);
        if (!err) {
            memcpy(oc.author, shoal__envelope_author(oenv), 32);
            err = shoal__change_decode(body, blen, &oc);
        }
        if (err && err != SHOAL_ENOMEM)
            err = SHOAL_ECORRUPT;
    }
    if (!err)
        err = shoal__stxn_change_supersede(t, old, NULL);
    shoal__wdoc *wo = NULL, *wn = NULL;
    if (!err)
        err = shoal__wset_get(&x->w, oc.coll, oc.coll_len, oc.doc, oc.doc_len, &wo);
    if (!err) {
        err = shoal__wset_get(&x->w, k->c.coll, k->c.coll_len, k->c.doc, k->c.doc_len, &wn);
        if (err == SHOAL_EINVAL)
            err = SHOAL_EPROTO;
    }
    uint64_t pos = 0;
    if (!err)
        err = shoal__stxn_change_put(t, k->cid, k->env, k->env_len, k->c.author, k->c.seq,
                                     wn->meta.last_pos, &pos);
    if (!err) {
        wn->meta.last_pos = pos;
        wn->meta.nchanges++;
        wn->newbytes += k->env_len;
        err = shoal__wset_rebuild(&x->w, wn);
    }
    if (!err && wo != wn)
        err = shoal__wset_rebuild(&x->w, wo);
    if (!err)
        x->clock = shoal__hlc_observe(x->clock, k->c.hlc);
    shoal__change_clear(&oc);
    shoal__free(oenv);
    if (err == SHOAL_EPROTO && !k->from_bundle) {
        x->bad_pending = true;
        memcpy(x->bad, k->cid, 32);
    }
    return err;
}

/* One candidate: 0 = waits, 1 = resolved (applied, duplicate, evidence).
 * sib: (author, seq) -> the candidate of smallest id of this drain. */
static int
step(shoal__wctx *x, shoal__stxn *t, shoal__cand *k, const shoal__map *sib, bool *resolved)
{
    *resolved = false;
    int err;
    if (shoal__stxn_change_has(t, k->cid)) {
        if (k->from_bundle)
            x->res.duplicate++;
        *resolved = true;
        return SHOAL_OK;
    }
    err = shoal__stxn_evidence_find(t, k->cid, NULL, NULL);
    if (err && err != SHOAL_ENOTFOUND)
        return err;
    bool known = err == SHOAL_OK; /* seen as a version already */
    uint8_t emin[32];
    bool has_ev;
    err = evidence_min(t, k, emin, &has_ev);
    if (err)
        return err;
    uint8_t other[32];
    err = shoal__stxn_authseq_get(t, k->c.author, k->c.seq, other);
    if (err && err != SHOAL_ENOTFOUND)
        return err;
    bool applied = err == SHOAL_OK;
    err = SHOAL_OK;
    /* Is k the smallest version held? */
    bool smallest =
        (!applied || memcmp(k->cid, other, 32) < 0) && (!has_ev || memcmp(k->cid, emin, 32) <= 0);
    const shoal__cand *sb = NULL;
    if (smallest && !applied) {
        uint8_t key[40];
        memcpy(key, k->c.author, 32);
        shoal__be64_put(key + 32, k->c.seq);
        sb = shoal__map_get(sib, key, sizeof key);
        if (sb && (sb == k || sb->done || memcmp(sb->cid, k->cid, 32) >= 0))
            sb = NULL;
        if (sb)
            smallest = false; /* a smaller version waits in this drain */
    }
    if (!smallest) {
        /* Evidence only, never applied here. */
        if (!known) {
            x->res.equivocations++;
            if (applied || sb) {
                uint8_t *oenv = NULL;
                size_t olen = 0;
                const uint8_t *lo = applied ? other : sb->cid;
                if (applied)
                    err = applied_env(t, other, &oenv, &olen);
                if (!err)
                    err = evidence_pair(x, t, k->c.author, k->c.seq, lo, applied ? oenv : sb->env,
                                        applied ? olen : sb->env_len, k->cid, k->env, k->env_len,
                                        false);
                shoal__free(oenv);
                if (err)
                    return err;
            }
            /* Kept or not, its id maps to its (author, seq) (rule 3), up
             * to SHOAL__EVIDENCE_IDS ids. */
            if (shoal__stxn_evidence_find(t, k->cid, NULL, NULL) == SHOAL_ENOTFOUND &&
                shoal__stxn_evidence_ids(t) < SHOAL__EVIDENCE_IDS)
                err = shoal__stxn_evidence_alias(t, k->c.author, k->c.seq, k->cid);
            if (err)
                return err;
        } else if (k->from_bundle) {
            x->res.duplicate++;
        }
        *resolved = true;
        return SHOAL_OK;
    }
    if (applied && !known) {
        /* A smaller version than the applied one: report it at once (it
         * may wait for its dependencies before it can replace it). */
        uint8_t *oenv = NULL;
        size_t olen = 0;
        err = applied_env(t, other, &oenv, &olen);
        if (!err)
            err = evidence_pair(x, t, k->c.author, k->c.seq, k->cid, k->env, k->env_len, other,
                                oenv, olen, true);
        shoal__free(oenv);
        if (err)
            return err;
        x->res.equivocations++;
    }
    if (!applied) {
        uint64_t have = 0;
        err = shoal__stxn_vv_get(t, k->c.author, &have, other);
        if (err == SHOAL_ENOTFOUND) {
            have = 0;
            err = SHOAL_OK;
        }
        if (err)
            return err;
        if (k->c.seq != have + 1)
            return SHOAL_OK;
    }
    if (!deps_ok(t, k))
        return SHOAL_OK;
    if (!shoal__hlc_acceptable(k->c.hlc, x->wall, x->r->opt.max_drift_ms))
        return SHOAL_OK;
    err = applied ? swap_in(x, t, k, other) : apply_one(x, t, k);
    if (err)
        return err;
    x->res.applied++;
    *resolved = true;
    return SHOAL_OK;
}

int
shoal__drain(shoal__wctx *x, shoal__stxn *t, shoal__cand *bc, size_t nb)
{
    load_ctx lc = { .x = x, .t = t };
    shoal__cand **list = NULL;
    shoal__map seen, sib;
    shoal__map_init(&seen);
    shoal__map_init(&sib);
    int err = SHOAL_OK;

    /* Stored pending changes. */
    if (shoal__stxn_pending_count(t) > 0) {
        err = shoal__stxn_pending_scan(t, load_pending_cb, &lc);
        if (lc.err)
            err = lc.err;
        for (size_t i = 0; !err && i < lc.ndrop; i++)
            err = shoal__stxn_pending_del(t, lc.drop + i * 32);
    }
    size_t nlist = 0;
    if (!err) {
        list = shoal__malloc((nb + lc.n + 1) * sizeof *list);
        if (!list)
            err = SHOAL_ENOMEM;
    }
    /* New changes: duplicates of stored or earlier ones are no-ops. */
    for (size_t i = 0; !err && i < nb; i++) {
        shoal__cand *k = &bc[i];
        k->from_bundle = true;
        k->in_pending = false;
        k->done = false;
        if (shoal__map_get(&seen, k->cid, 32) || shoal__stxn_change_has(t, k->cid) ||
            shoal__stxn_pending_has(t, k->cid)) {
            x->res.duplicate++;
            k->done = true;
            continue;
        }
        err = shoal__map_put(&seen, k->cid, 32, k);
        list[nlist++] = k;
    }
    for (size_t i = 0; !err && i < lc.n; i++)
        list[nlist++] = &lc.c[i];
    if (!err && nlist > 1)
        qsort(list, nlist, sizeof *list, cand_cmp);
    /* The smallest id per (author, seq) among the candidates: of two
     * versions waiting together, only that one may apply. */
    for (size_t i = 0; !err && i < nlist; i++) {
        uint8_t key[40];
        memcpy(key, list[i]->c.author, 32);
        shoal__be64_put(key + 32, list[i]->c.seq);
        shoal__cand *cur = shoal__map_get(&sib, key, sizeof key);
        if (!cur || memcmp(list[i]->cid, cur->cid, 32) < 0)
            err = shoal__map_put(&sib, key, sizeof key, list[i]);
    }

    /* Passes until nothing more resolves. */
    bool progress = true;
    while (!err && progress) {
        progress = false;
        for (size_t i = 0; !err && i < nlist; i++) {
            shoal__cand *k = list[i];
            if (k->done)
                continue;
            bool resolved;
            err = step(x, t, k, &sib, &resolved);
            if (err || !resolved)
                continue;
            k->done = true;
            progress = true;
            if (k->in_pending)
                err = shoal__stxn_pending_del(t, k->cid);
        }
    }

    /* The rest waits in the pending set. */
    uint64_t due = UINT64_MAX;
    for (size_t i = 0; !err && i < nlist; i++) {
        shoal__cand *k = list[i];
        if (k->done)
            continue;
        if (!k->in_pending) {
            err = shoal__stxn_pending_put(t, k->cid, k->env, k->env_len);
            k->in_pending = true;
        }
        if (k->from_bundle)
            x->res.pending++;
        if (!shoal__hlc_acceptable(k->c.hlc, x->wall, x->r->opt.max_drift_ms)) {
            uint64_t ms = SHOAL__HLC_MS(k->c.hlc);
            uint64_t at = ms > x->r->opt.max_drift_ms ? ms - x->r->opt.max_drift_ms : 0;
            if (at < due)
                due = at;
        }
    }
    if (!err && shoal__stxn_pending_count(t) > SHOAL__PENDING_MAX)
        err = SHOAL_ETOOBIG;
    if (!err)
        x->due_ms = due;

    for (size_t i = 0; i < lc.n; i++) {
        cand_clear(&lc.c[i]);
        shoal__free(lc.c[i].owned);
    }
    shoal__free(lc.c);
    shoal__free(lc.drop);
    shoal__free(list);
    shoal__map_clear(&seen, NULL);
    shoal__map_clear(&sib, NULL);
    return err;
}

/* ---------------------------------------------------------------- import */

typedef struct ictx {
    shoal__wctx *x;
    shoal__cand *c;
    size_t n;
} ictx;

static int
import_fn(shoal__stxn *t, void *arg)
{
    ictx *ic = arg;
    shoal__wctx *x = ic->x;
    shoal__wset_reset(&x->w, t);
    memset(&x->res, 0, sizeof x->res);
    int err = shoal__clock_load(t, &x->clock);
    if (!err)
        err = shoal__drain(x, t, ic->c, ic->n);
    if (!err)
        err = shoal__wset_flush(&x->w);
    if (!err)
        err = shoal__clock_store(t, x->clock);
    return err;
}

/* Apply cands (may be empty) and the pending set; caller holds r->mu. */
static int
import_run(shoal_replica *r, shoal__cand *c, size_t n, shoal_import_result *res)
{
    shoal__wctx x;
    shoal__wctx_init(&x, r);
    ictx ic = { .x = &x, .c = c, .n = n };
    int err = shoal__wctx_write(&x, import_fn, &ic);
    if (!err && res)
        *res = x.res;
    return err;
}

int
shoal__drain_now(shoal_replica *r)
{
    pthread_mutex_lock(&r->mu);
    int err = import_run(r, NULL, 0, NULL);
    pthread_mutex_unlock(&r->mu);
    return err;
}

int
shoal__import_spans(shoal_replica *r, const uint8_t *base, const shoal__span *spans, size_t count,
                    shoal_import_result *res)
{
    shoal__cand *c = NULL;
    int err = SHOAL_OK;
    size_t kept = 0;
    if (res)
        memset(res, 0, sizeof *res);
    if (count) {
        c = shoal__calloc(count, sizeof *c);
        if (!c)
            return SHOAL_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        shoal__cand *k = &c[i];
        const uint8_t *env = base + spans[i].off;
        size_t elen, blen;
        const uint8_t *body;
        err = shoal__envelope_parse(env, spans[i].len, &elen, &body, &blen);
        if (!err && elen != spans[i].len)
            err = SHOAL_EPROTO;
        if (!err) {
            memcpy(k->c.author, shoal__envelope_author(env), 32);
            err = shoal__change_decode(body, blen, &k->c);
        }
        if (!err) {
            k->body = body;
            k->body_len = blen;
            err = cand_budget(k, &kept);
            if (err) {
                shoal__fail(r, err, "import");
                goto out;
            }
        }
        if (err) {
            shoal__fail(r, err, "import: change %zu of %zu does not decode", i + 1, count);
            /* Entries after i were never decoded; zeroed, so clearing is safe. */
            goto out;
        }
        k->env = env;
        k->env_len = elen;
        shoal__change_id(env, elen, k->cid);
    }
    err = import_run(r, c, count, res);
    if (err)
        shoal__fail(r, err, "import");
out:
    for (size_t i = 0; c && i < count; i++)
        cand_clear(&c[i]);
    shoal__free(c);
    return err;
}

/* ---------------------------------------------------------- verification */

/* Signatures are checked before anything is decoded or stored, and a
 * batch with one bad envelope is rejected whole.  Verifying is most of an
 * import's CPU (one Ed25519 check is about 45 us here), so a batch of at
 * least SHOAL__VERIFY_PARALLEL_MIN envelopes is shared out between the
 * calling thread and up to SHOAL__VERIFY_THREADS - 1 helper threads, one
 * per online processor.  The helpers belong to the process: made on first
 * need, then kept, each waiting on a condition variable for the next batch
 * (making and joining threads for every batch cost about 2.4 us of CPU per
 * change on a loaded two-core machine: the stack's pages faulted in again,
 * more context switches).  The batch is cut into chunks of VERIFY_CHUNK
 * envelopes that the caller and the helpers claim in order under the
 * pool's mutex, so a helper that starts late (a busy machine) just finds
 * less to do, and a batch never waits for a helper that has not started.
 * Each chunk goes in order and stops at its first bad envelope; a chunk
 * starting past the lowest bad index known is skipped.  Every chunk below
 * the lowest bad index is checked whole, so that index, and its error, are
 * found whatever the scheduling: the same result as checking one after the
 * other.  One batch uses the helpers at a time; a batch that finds them
 * busy (another replica or thread of the process) is checked on its
 * calling thread alone.  After fork() the child starts without helpers
 * (pthread_atfork resets the pool). */

enum {
    VERIFY_CHUNK = 4
};

static struct vpool {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new batch (gen changed) */
    pthread_cond_t done; /* the batch's last chunk finished */
    size_t helpers;      /* helper threads running */
    long cpus;           /* online processors, read once */
    bool busy;           /* a batch owns the helpers */
    uint64_t gen;        /* batch number */
    const uint8_t *base;
    const shoal__span *spans;
    size_t count, nchunks;
    size_t next;     /* next chunk to claim */
    size_t finished; /* chunks done */
    size_t bad;      /* lowest bad index known (SIZE_MAX: none) */
    int err;         /* its error */
} vp = { PTHREAD_MUTEX_INITIALIZER,
         PTHREAD_COND_INITIALIZER,
         PTHREAD_COND_INITIALIZER,
         0,
         0,
         false,
         0,
         NULL,
         NULL,
         0,
         0,
         0,
         0,
         SIZE_MAX,
         SHOAL_OK };

static pthread_once_t vp_once = PTHREAD_ONCE_INIT;

static void
vp_prepare(void)
{
    pthread_mutex_lock(&vp.mu);
}

static void
vp_parent(void)
{
    pthread_mutex_unlock(&vp.mu);
}

/* The child has no helpers (only the forking thread survives fork).  The
 * forking thread holds vp.mu (vp_prepare) and unlocks its copy; the
 * condition variables may still count the parent's waiting helpers, so
 * they start afresh. */
static void
vp_child(void)
{
    pthread_mutex_unlock(&vp.mu);
    pthread_cond_init(&vp.wake, NULL);
    pthread_cond_init(&vp.done, NULL);
    vp.helpers = 0;
    vp.busy = false;
}

static void
vp_init(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    vp.cpus = n < 1 ? 1 : n;
    pthread_atfork(vp_prepare, vp_parent, vp_child);
}

/* Check chunk c of the current batch (its fields read under vp.mu by the
 * claimer and passed in); returns the first bad index or SIZE_MAX. */
static size_t
verify_chunk(const uint8_t *base, const shoal__span *spans, size_t lo, size_t hi, int *err)
{
    for (size_t i = lo; i < hi; i++) {
        size_t elen, blen;
        const uint8_t *body;
        int e = shoal__envelope_open(base + spans[i].off, spans[i].len, &elen, &body, &blen);
        if (e) {
            *err = e;
            return i;
        }
    }
    return SIZE_MAX;
}

/* Claim and check chunks of the batch of generation gen until none is
 * left; called and returns with vp.mu held. */
static void
vp_work(uint64_t gen)
{
    while (vp.gen == gen && vp.next < vp.nchunks) {
        size_t c = vp.next++;
        size_t lo = c * VERIFY_CHUNK;
        size_t hi = lo + VERIFY_CHUNK < vp.count ? lo + VERIFY_CHUNK : vp.count;
        if (lo > vp.bad) { /* a lower index already fails the batch */
            if (++vp.finished == vp.nchunks)
                pthread_cond_signal(&vp.done);
            continue;
        }
        const uint8_t *base = vp.base;
        const shoal__span *spans = vp.spans;
        pthread_mutex_unlock(&vp.mu);
        int err = SHOAL_OK;
        size_t at = verify_chunk(base, spans, lo, hi, &err);
        pthread_mutex_lock(&vp.mu);
        if (at < vp.bad) {
            vp.bad = at;
            vp.err = err;
        }
        if (++vp.finished == vp.nchunks)
            pthread_cond_signal(&vp.done);
    }
}

static void *
vp_helper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&vp.mu);
    uint64_t seen = vp.gen;
    for (;;) {
        while (vp.gen == seen)
            pthread_cond_wait(&vp.wake, &vp.mu);
        seen = vp.gen;
        vp_work(seen);
    }
    return NULL;
}

/* Verify the signatures of spans[0..count); the error of the lowest-index
 * bad one, or SHOAL_OK. */
static int
verify_spans(const uint8_t *base, const shoal__span *spans, size_t count)
{
    if (sodium_init() < 0) /* once, before any thread may call it */
        return SHOAL_ENOMEM;
    pthread_once(&vp_once, vp_init);
    size_t want = vp.cpus > SHOAL__VERIFY_THREADS ? SHOAL__VERIFY_THREADS : (size_t)vp.cpus;
    bool pool = false;
    if (count >= SHOAL__VERIFY_PARALLEL_MIN && want > 1) {
        pthread_mutex_lock(&vp.mu);
        if (!vp.busy) {
            while (vp.helpers < want - 1) {
                pthread_t th;
                pthread_attr_t at;
                bool ok = pthread_attr_init(&at) == 0;
                if (ok) {
                    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
                    ok = pthread_create(&th, &at, vp_helper, NULL) == 0;
                    pthread_attr_destroy(&at);
                }
                if (!ok)
                    break; /* fewer helpers: the caller checks more */
                vp.helpers++;
            }
            pool = vp.helpers > 0;
        }
        if (pool) {
            vp.busy = true;
            vp.base = base;
            vp.spans = spans;
            vp.count = count;
            vp.nchunks = (count + VERIFY_CHUNK - 1) / VERIFY_CHUNK;
            vp.next = vp.finished = 0;
            vp.bad = SIZE_MAX;
            vp.err = SHOAL_OK;
            uint64_t gen = ++vp.gen;
            pthread_cond_broadcast(&vp.wake);
            vp_work(gen);
            while (vp.finished < vp.nchunks)
                pthread_cond_wait(&vp.done, &vp.mu);
            int err = vp.err;
            vp.base = NULL;
            vp.spans = NULL;
            vp.busy = false;
            pthread_mutex_unlock(&vp.mu);
            return err;
        }
        pthread_mutex_unlock(&vp.mu);
    }
    int err = SHOAL_OK;
    verify_chunk(base, spans, 0, count, &err);
    return err;
}

int
shoal__spans_open(const uint8_t *p, size_t n, size_t off, size_t count, shoal__span **spans)
{
    *spans = NULL;
    shoal__span *s = NULL;
    if (count) {
        s = shoal__calloc(count, sizeof *s);
        if (!s)
            return SHOAL_ENOMEM;
    }
    /* Headers and bounds first (cheap, in order); a header error at index
     * i counts only if no envelope before i has a bad signature. */
    int perr = SHOAL_OK;
    size_t parsed = 0;
    for (; parsed < count; parsed++) {
        size_t elen, blen;
        const uint8_t *body;
        perr = shoal__envelope_parse(p + off, n - off, &elen, &body, &blen);
        if (perr)
            break;
        s[parsed].off = off;
        s[parsed].len = elen;
        off += elen;
    }
    int err = verify_spans(p, s, parsed);
    if (!err)
        err = perr;
    if (!err && off != n)
        err = SHOAL_EPROTO;
    if (err) {
        shoal__free(s);
        return err;
    }
    *spans = s;
    return SHOAL_OK;
}

int
shoal__bundle_open(const uint8_t *p, size_t n, shoal__span **spans, size_t *count)
{
    *spans = NULL;
    *count = 0;
    /* The header is judged by shoal__bundle_split itself (an empty bundle
     * of the same magic and version verifies nothing), so both agree on
     * every header error. */
    if (n < SHOAL__BUNDLE_HEADER)
        return shoal__bundle_split(p, n, spans, count);
    uint8_t hdr[SHOAL__BUNDLE_HEADER];
    memcpy(hdr, p, 8);
    memset(hdr + 8, 0, 4);
    shoal__span *none = NULL;
    size_t zero = 0;
    int err = shoal__bundle_split(hdr, sizeof hdr, &none, &zero);
    shoal__free(none);
    if (err)
        return err;
    uint32_t cnt = shoal__be32_get(p + 8);
    if (cnt > SHOAL__MAX_BUNDLE_CHANGES)
        return SHOAL_ETOOBIG;
    if (cnt > (n - SHOAL__BUNDLE_HEADER) / (SHOAL__ENV_HEADER + SHOAL__SIG_BYTES))
        return SHOAL_ETRUNC;
    err = shoal__spans_open(p, n, SHOAL__BUNDLE_HEADER, cnt, spans);
    if (!err)
        *count = cnt;
    return err;
}

shoal_err
shoal_import(shoal_replica *r, const uint8_t *bundle, size_t len, shoal_import_result *res)
{
    assert(r);
    if (res)
        memset(res, 0, sizeof *res);
    if (!bundle && len > 0)
        return SHOAL_EINVAL;
    /* Every signature is verified before the replica is locked (the bundle
     * is the caller's and touches no replica state). */
    shoal__span *spans = NULL;
    size_t count = 0;
    int err = shoal__bundle_open(bundle ? bundle : (const uint8_t *)"", len, &spans, &count);
    pthread_mutex_lock(&r->mu);
    if (err)
        shoal__fail(r, err, "import: bundle rejected");
    else
        err = shoal__import_spans(r, bundle, spans, count, res);
    shoal__free(spans);
    pthread_mutex_unlock(&r->mu);
    if (!err && count)
        shoal__net_notify(r); /* peers get what the bundle brought */
    return (shoal_err)err;
}

/* ---------------------------------------------------------------- export */

typedef struct ectx {
    const shoal_vv *since;
    shoal__buf out;
    uint32_t count;
    int err;
} ectx;

static int
export_cb(uint64_t pos, const uint8_t cid[32], const shoal__sval *env, void *arg)
{
    (void)pos;
    (void)cid;
    ectx *e = arg;
    if (e->since) {
        size_t elen, blen;
        const uint8_t *body;
        int err = shoal__envelope_parse(env->p, env->len, &elen, &body, &blen);
        if (err) {
            e->err = SHOAL_ECORRUPT;
            return 1;
        }
        /* The body is [seq, hlc, ...]: read the array header and seq. */
        shoal__mpr rd;
        shoal__mpr_init(&rd, body, blen);
        (void)shoal__mpr_array(&rd, 8, 1);
        uint64_t seq = shoal__mpr_uint(&rd);
        if (rd.err) {
            e->err = SHOAL_ECORRUPT;
            return 1;
        }
        if (seq <= shoal_vv_get(e->since, shoal__envelope_author(env->p)))
            return 0;
    }
    if (e->count == UINT32_MAX) {
        e->err = SHOAL_ETOOBIG;
        return 1;
    }
    int err = shoal__bundle_add(&e->out, env->p, env->len);
    if (err) {
        e->err = err;
        return 1;
    }
    e->count++;
    return 0;
}

/* Evidence envelopes that are not applied changes go at the end of every
 * export (at most SHOAL__EVIDENCE_MAX), whatever since says: a replica
 * that holds the other version of an (author, seq) needs them to resolve
 * it, and to an importer they are ordinary envelopes (a duplicate, or
 * evidence it did not have). */
typedef struct xev {
    ectx *e;
    shoal__stxn *t;
} xev;

static int
export_ev_cb(const uint8_t author[32], uint64_t seq, const uint8_t cid[32], const shoal__sval *env,
             void *arg)
{
    (void)author;
    (void)seq;
    xev *v = arg;
    if (shoal__stxn_change_has(v->t, cid))
        return 0;
    if (v->e->count == UINT32_MAX) {
        v->e->err = SHOAL_ETOOBIG;
        return 1;
    }
    int err = shoal__bundle_add(&v->e->out, env->p, env->len);
    if (err) {
        v->e->err = err;
        return 1;
    }
    v->e->count++;
    return 0;
}

static int
export_fn(shoal__stxn *t, void *arg)
{
    ectx *e = arg;
    int err = shoal__stxn_log_scan(t, 0, export_cb, e);
    if (!err && !e->err && shoal__stxn_evidence_count(t) > 0) {
        xev v = { e, t };
        err = shoal__stxn_evidence_scan(t, export_ev_cb, &v);
    }
    return e->err ? e->err : err;
}

shoal_err
shoal_export(shoal_replica *r, const shoal_vv *since, uint8_t **out, size_t *out_len)
{
    assert(r && out && out_len);
    *out = NULL;
    *out_len = 0;
    pthread_mutex_lock(&r->mu);
    ectx e;
    memset(&e, 0, sizeof e);
    e.since = since;
    shoal__buf_init(&e.out);
    int err = shoal__bundle_begin(&e.out);
    if (!err)
        err = shoal__store_read(r->store, export_fn, &e);
    if (!err) {
        shoal__bundle_finish(&e.out, e.count);
        *out = shoal__buf_take(&e.out, out_len);
    } else {
        shoal__buf_free(&e.out);
        shoal__fail(r, err, "export");
    }
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}
