/*
 * core/apply.c - the causal apply pipeline over a shoal__apply_store
 * (apply.h): decoded candidates, the pending set, causal order,
 * duplicates, equivocation.  No I/O, no clock, no threads: the store does
 * the keeping, the caller passes the wall time in and runs the drain in a
 * transaction of the store.
 *
 * Memory.  A body of a few bytes can decode to SHOAL__MAX_OPS ops (a DEL
 * run), about 100 MB of op structs, so decoding a whole batch up front
 * could demand that much per change.  Candidates therefore keep their
 * decoded ops only while the ops kept add up to at most KEEP_OPS; beyond
 * that a candidate is validated (decoded in full, then freed at once),
 * keeps only what the causal checks need (header fields, a copy of its
 * deps) and is decoded again just before it is applied.  A drain thus
 * holds at most KEEP_OPS kept ops for the new candidates, as many for the
 * pending set, and one change decoded again, whatever the bodies expand
 * to.  In the common case (small changes) nothing is decoded twice.  Each
 * change is then a duplicate (already applied or pending), another version
 * of an (author, seq) (the smaller change id is canonical: one larger than
 * the applied one is kept as evidence, a smaller one replaces the applied
 * one once it is ready; see "equivocation" below), ready (applied), or
 * pending.
 *
 * The drain puts the new changes and the stored pending set together,
 * sorted by (hlc, author, seq).  An honest author's change has a greater HLC
 * than its previous change and than every dependency (the HLC observed
 * them), so this order is causal and one pass applies everything that is
 * ready; more passes only happen for out-of-order or dishonest input.
 *
 * A change held back because its HLC is too far ahead of the wall clock
 * stays in the pending set; a->due_ms says when the earliest such change
 * becomes acceptable (the caller drains again after that time).  Held
 * back, never lost.
 *
 * A change that shoal__doc_apply refuses whatever the document holds (a
 * reference that cannot lie in its causal past, see shoal__doc_refusal)
 * is refused on arrival, by shoal__cands_make, even if it would only wait
 * in the pending set (cand_decode says why); one found in a pending set
 * stored before is dropped when the set is loaded.  Should a stored
 * pending change still fail to apply (SHOAL_EPROTO from shoal__doc_apply)
 * it must not wedge every later write: the drain fails with
 * a->bad_pending set and the change's id in a->bad; the caller rolls back,
 * adds it to the skip list (shoal__apply_skip_bad) and runs again, and the
 * drain drops it from the pending set.  If the invalid change is a new
 * candidate, the drain fails without bad_pending (the import fails).
 */
#include <stdlib.h>
#include <string.h>

/* core.h only for the hash map (shoal__map); nothing here calls the
 * store, the replica or the clock. */
#include "apply.h"
#include "core.h"

/* Decoded ops a batch of candidates keeps (see above): 2^19 ops, about
 * 50 MB of op structs. */
#define KEEP_OPS ((size_t)1 << 19)

struct shoal__cand {
    shoal__rec r;    /* env and body into the caller's bytes, or into owned */
    uint8_t *owned;  /* env copy from the pending set */
    shoal__change c; /* decoded; ops owned (none when stripped) */
    uint8_t *deps;   /* owned copy of c.deps when stripped */
    bool stripped;   /* ops dropped: decode body again to apply */
    bool from_bundle;
    bool in_pending; /* stored in the pending set */
    bool done;
};

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
        deps = shoal__malloc(k->c.ndeps * SHOAL__ID_BYTES);
        if (!deps)
            return SHOAL_ENOMEM;
        memcpy(deps, k->c.deps, k->c.ndeps * SHOAL__ID_BYTES);
    }
    shoal__change h = k->c;
    shoal__change_clear(&k->c); /* frees the ops block (deps, authors in it) */
    k->c = h;
    k->c.ops = NULL;
    k->c.nops = 0;
    k->c.authors = NULL;
    k->c.nauthors = 0;
    k->c.extra = NULL; /* freed with the block */
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

/* Decode k->r's body into k->c (the author from the envelope); *refused:
 * whether its ops fail the checks of shoal__doc_apply that look at the
 * change alone (shoal__doc_refusal), so that it can never apply, on any
 * replica.  Such a change is refused when it arrives, even if it would
 * wait in the pending set, so that it never takes part in anything: were
 * it kept until it becomes ready, it would meanwhile count as a version of
 * its (author, seq), and a larger version arriving before it is dropped
 * would end as evidence on one replica while another, which received that
 * version after the drop, applies it (test_apply.c, test_invalid_version,
 * test_bad_swap).  So no candidate a drain sees is refused this way. */
static int
cand_decode(shoal__cand *k, bool *refused)
{
    /* the body's version must be the envelope's (crdt/envelope.c) */
    int err = shoal__envelope_decode(k->r.env, k->r.env_len, &k->c);
    size_t at;
    *refused = !err && shoal__doc_refusal(&k->c, &at) != NULL;
    return err;
}

int
shoal__cands_make(const shoal__rec *recs, size_t count, shoal__cand **out, size_t *at)
{
    *out = NULL;
    *at = SIZE_MAX;
    if (!count)
        return SHOAL_OK;
    shoal__cand *c = shoal__calloc(count, sizeof *c);
    if (!c)
        return SHOAL_ENOMEM;
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        shoal__cand *k = &c[i];
        k->r = recs[i];
        bool refused;
        int err = cand_decode(k, &refused);
        if (!err && refused)
            err = SHOAL_EPROTO;
        if (err) {
            *at = i;
        } else {
            err = cand_budget(k, &kept);
        }
        if (err) {
            /* Entries after i were never decoded; zeroed, so clearing is safe. */
            shoal__cands_free(c, count);
            return err;
        }
    }
    *out = c;
    return SHOAL_OK;
}

void
shoal__cands_free(shoal__cand *c, size_t count)
{
    for (size_t i = 0; c && i < count; i++) {
        cand_clear(&c[i]);
        shoal__free(c[i].owned);
    }
    shoal__free(c);
}

int
shoal__apply_skip_bad(shoal__apply *a, uint8_t **skip, size_t *nskip)
{
    uint8_t *p = shoal__realloc(*skip, (*nskip + 1) * SHOAL__ID_BYTES);
    if (!p)
        return SHOAL_ENOMEM;
    *skip = p;
    memcpy(p + *nskip * SHOAL__ID_BYTES, a->bad, SHOAL__ID_BYTES);
    (*nskip)++;
    a->bad_pending = false;
    return SHOAL_OK;
}

/* ---------------------------------------------------------- pending load */

typedef struct load_ctx {
    shoal__apply *a;
    shoal__cand *c;
    size_t n;
    size_t cap;
    uint8_t *drop; /* ids to delete after the scan */
    size_t ndrop;
    size_t kept; /* decoded ops kept (cand_budget) */
    int err;
} load_ctx;

static bool
in_skip(const shoal__apply *a, const uint8_t *cid)
{
    for (size_t i = 0; i < a->nskip; i++)
        if (memcmp(a->skip + i * SHOAL__ID_BYTES, cid, SHOAL__ID_BYTES) == 0)
            return true;
    return false;
}

/* Remember pending change cid for deletion after the scan. */
static int
load_drop(load_ctx *lc, const uint8_t cid[SHOAL__ID_BYTES])
{
    uint8_t *p = shoal__realloc(lc->drop, (lc->ndrop + 1) * SHOAL__ID_BYTES);
    if (!p) {
        lc->err = SHOAL_ENOMEM;
        return 1;
    }
    lc->drop = p;
    memcpy(lc->drop + lc->ndrop++ * SHOAL__ID_BYTES, cid, SHOAL__ID_BYTES);
    return 0;
}

static int
load_pending_cb(const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len, void *arg)
{
    load_ctx *lc = arg;
    if (in_skip(lc->a, cid))
        return load_drop(lc, cid);
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
    k->owned = shoal__malloc(len ? len : 1);
    if (!k->owned) {
        lc->err = SHOAL_ENOMEM;
        return 1;
    }
    memcpy(k->owned, env, len);
    memcpy(k->r.cid, cid, SHOAL__ID_BYTES);
    k->in_pending = true;
    lc->n++;
    size_t elen, blen;
    const uint8_t *body;
    int err = shoal__envelope_parse(k->owned, len, &elen, &body, &blen);
    if (!err && elen != len)
        err = SHOAL_ECORRUPT;
    bool refused = false;
    if (!err) {
        k->r.env = k->owned;
        k->r.env_len = len;
        k->r.body = body;
        k->r.body_len = blen;
        err = cand_decode(k, &refused);
    }
    if (!err && refused) {
        /* Refused on arrival since (cand_decode); one stored before: dropped. */
        cand_clear(k);
        shoal__free(k->owned);
        lc->n--;
        return load_drop(lc, cid);
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
    int c = memcmp(x->c.author, y->c.author, SHOAL_KEY_BYTES);
    if (c)
        return c;
    if (x->c.seq != y->c.seq)
        return x->c.seq < y->c.seq ? -1 : 1;
    return memcmp(x->r.cid, y->r.cid, SHOAL__ID_BYTES);
}

/* ----------------------------------------------------------- equivocation
 *
 * Rule (docs/c-api.md, "Equivocation"): of the versions of one (author,
 * seq) a replica holds, the one with the smallest change id (memcmp) is
 * canonical and the only one applied once it is ready; the others are
 * evidence.  Until it is ready, the smallest of the others that is ready
 * applies, whatever the order of arrival; a smaller version replaces the
 * applied one (swap) as soon as it is ready, and a version larger than the
 * applied one is never applied.  A dependency naming a version held as evidence counts
 * as satisfied once the canonical version of its (author, seq) is applied,
 * unless it is the smaller one, and once its own deps are (dep_ready).
 * Evidence per (author, seq): the canonical version and one other (the
 * displaced one after a swap, else the first other seen); SHOAL__EVIDENCE_MAX
 * entries in all (past it, a new pair is not stored, the rule still
 * applies to the versions in hand). */

int
shoal__apply_dep(const shoal__apply_store *s, const uint8_t dep[SHOAL__ID_BYTES],
                 uint8_t out[SHOAL__ID_BYTES])
{
    if (s->has(s->ctx, dep)) {
        if (out)
            memcpy(out, dep, SHOAL__ID_BYTES);
        return SHOAL_OK;
    }
    uint8_t author[SHOAL_KEY_BYTES], cid[SHOAL__ID_BYTES];
    uint64_t seq;
    int err = s->ev_find(s->ctx, dep, author, &seq);
    if (err)
        return err;
    err = s->authseq(s->ctx, author, seq, cid);
    if (!err && out)
        memcpy(out, cid, SHOAL__ID_BYTES);
    return err;
}

enum {
    DEP_DEPTH = 16 /* versions held as evidence followed through their own deps */
};

/* Whether a change may build on dep.  An applied change: yes.  A version
 * held as evidence: once the canonical version of its (author, seq) is
 * applied, if dep is not smaller than that one (a smaller one replaces it
 * once ready: its dependents wait for it), and once dep's own deps are
 * ready in turn (the elements a dependent refers to come from them), as
 * far as its envelope is kept. */
static bool
dep_ready(const shoal__apply_store *s, const uint8_t dep[SHOAL__ID_BYTES], int depth)
{
    if (s->has(s->ctx, dep))
        return true;
    uint8_t author[SHOAL_KEY_BYTES], applied[SHOAL__ID_BYTES];
    uint64_t seq;
    if (s->ev_find(s->ctx, dep, author, &seq) != SHOAL_OK ||
        s->authseq(s->ctx, author, seq, applied) != SHOAL_OK)
        return false;
    if (memcmp(dep, applied, SHOAL__ID_BYTES) < 0)
        return false;
    const uint8_t *env;
    size_t len;
    if (depth >= DEP_DEPTH || !s->ev_get || s->ev_get(s->ctx, author, seq, dep, &env, &len))
        return true;
    shoal__change c;
    if (shoal__change_stored(env, len, &c) != SHOAL_OK)
        return true; /* verified when kept: cannot happen */
    /* Copy the deps: the envelope is Borrowed until the next store call. */
    size_t n = c.ndeps;
    uint8_t *deps = n ? shoal__malloc(n * SHOAL__ID_BYTES) : NULL;
    bool ok = !n || deps != NULL;
    if (deps)
        memcpy(deps, c.deps, n * SHOAL__ID_BYTES);
    shoal__change_clear(&c);
    for (size_t i = 0; ok && i < n; i++)
        ok = dep_ready(s, deps + i * SHOAL__ID_BYTES, depth + 1);
    shoal__free(deps);
    return ok;
}

static bool
deps_ok(const shoal__apply_store *s, const shoal__cand *k)
{
    for (size_t i = 0; i < k->c.ndeps; i++)
        if (!dep_ready(s, k->c.deps + i * SHOAL__ID_BYTES, 0))
            return false;
    return true;
}

/* Copy of the envelope of applied change cid (Owned by the caller). */
static int
applied_env(const shoal__apply_store *s, const uint8_t cid[SHOAL__ID_BYTES], uint8_t **env,
            size_t *len)
{
    const uint8_t *p;
    size_t n;
    int err = s->get(s->ctx, cid, &p, &n);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
    /* Copy: a value read may move on the next write. */
    *env = shoal__malloc(n ? n : 1);
    if (!*env)
        return SHOAL_ENOMEM;
    memcpy(*env, p, n);
    *len = n;
    return SHOAL_OK;
}

/* Make the evidence of (author, seq) hold versions a and b (a < b; each
 * with its envelope).  force (a swap): drop every other version first.
 * Otherwise a pair is stored only if (author, seq) holds no evidence yet
 * and the total cap allows it.  Sets a->ev_new when something was stored. */
static int
evidence_pair(shoal__apply *ap, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
              const uint8_t a[SHOAL__ID_BYTES], const uint8_t *aenv, size_t alen,
              const uint8_t b[SHOAL__ID_BYTES], const uint8_t *benv, size_t blen, bool force)
{
    const shoal__apply_store *s = ap->s;
    uint8_t have[4 * SHOAL__ID_BYTES];
    size_t n;
    int err = s->ev_versions(s->ctx, author, seq, have, 4, &n);
    if (err)
        return err;
    if (!force && (n > 0 || s->ev_count(s->ctx) + 2 > SHOAL__EVIDENCE_MAX))
        return SHOAL_OK;
    bool has_a = false, has_b = false;
    for (size_t i = 0; i < n && i < 4; i++) {
        const uint8_t *h = have + i * SHOAL__ID_BYTES;
        if (memcmp(h, a, SHOAL__ID_BYTES) == 0) {
            has_a = true;
        } else if (memcmp(h, b, SHOAL__ID_BYTES) == 0) {
            has_b = true;
        } else {
            err = s->ev_del(s->ctx, author, seq, h);
            if (err)
                return err;
            ap->ev_new = true;
        }
    }
    if (n > 4)
        return SHOAL_ECORRUPT; /* never more than two are stored */
    if (!has_a) {
        err = s->ev_put(s->ctx, author, seq, a, aenv, alen);
        ap->ev_new = true;
    }
    if (!err && !has_b) {
        err = s->ev_put(s->ctx, author, seq, b, benv, blen);
        ap->ev_new = true;
    }
    return err;
}

/* Remember k as a stored pending change that failed to apply. */
static void
mark_bad(shoal__apply *a, const shoal__cand *k)
{
    if (!k->from_bundle) {
        a->bad_pending = true;
        memcpy(a->bad, k->r.cid, SHOAL__ID_BYTES);
    }
}

/* k's change with its ops: a stripped candidate is decoded again into
 * *full, for one call (clear *full after when *c == full). */
static int
cand_full(const shoal__cand *k, shoal__change *full, const shoal__change **c)
{
    *c = &k->c;
    if (!k->stripped)
        return SHOAL_OK;
    memset(full, 0, sizeof *full);
    memcpy(full->author, k->c.author, SHOAL_KEY_BYTES);
    int err = shoal__change_decode(k->r.body, k->r.body_len, full);
    if (err)
        return err == SHOAL_ENOMEM ? SHOAL_ENOMEM : SHOAL_ECORRUPT;
    *c = full;
    return SHOAL_OK;
}

/* ------------------------------------------------------------------ VOID */

enum {
    VOID_DEPTH = 2 * SHOAL__AUTH_MAX_CHAIN + 4 /* a certificate, its chain, slack */
};

static bool
cut_object(const shoal__change *c)
{
    return c->coll_len == 5 && memcmp(c->coll, "_auth", 5) == 0 &&
           shoal__auth_cut_doc(c->doc, c->doc_len);
}

static int void_rec(const shoal__apply_store *s, shoal__map *cache, const shoal__change *c,
                    int depth, bool *v);

/* Whether the authority object of change cid is VOID (not held: no). */
static int
object_void(const shoal__apply_store *s, shoal__map *cache, const uint8_t cid[SHOAL__ID_BYTES],
            int depth, bool *v)
{
    *v = false;
    uintptr_t known = (uintptr_t)shoal__map_get(cache, cid, SHOAL__ID_BYTES);
    if (known) {
        *v = known == 2;
        return SHOAL_OK;
    }
    if (depth > VOID_DEPTH)
        return SHOAL_OK;
    const uint8_t *env;
    size_t len;
    int err = s->get(s->ctx, cid, &env, &len);
    if (err == SHOAL_ENOTFOUND)
        return SHOAL_OK;
    shoal__change c;
    if (!err)
        err = shoal__change_stored(env, len, &c);
    if (err)
        return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
    err = void_rec(s, cache, &c, depth + 1, v);
    shoal__change_clear(&c);
    if (!err)
        err = shoal__map_put(cache, cid, SHOAL__ID_BYTES, (void *)(uintptr_t)(*v ? 2 : 1));
    return err;
}

static int
void_rec(const shoal__apply_store *s, shoal__map *cache, const shoal__change *c, int depth, bool *v)
{
    *v = false;
    if (!s->cut || cut_object(c))
        return SHOAL_OK;
    uint64_t cut;
    int err = s->cut(s->ctx, c->author, &cut);
    if (!err && c->seq > cut) {
        *v = true;
        return SHOAL_OK;
    }
    if (err && err != SHOAL_ENOTFOUND)
        return err;
    err = SHOAL_OK;
    for (size_t i = 0; !err && !*v && i < c->nauth; i++)
        err = object_void(s, cache, c->auth + i * SHOAL__ID_BYTES, depth, v);
    return err;
}

int
shoal__apply_void(const shoal__apply_store *s, shoal__map *cache, const shoal__change *c, bool *v)
{
    return void_rec(s, cache, c, 0, v);
}

/* Whether c applies VOID here: only with a root. */
static int
void_of(shoal__apply *a, const shoal__change *c, bool *v)
{
    *v = false;
    return a->root ? shoal__apply_void(a->s, &a->voids, c, v) : SHOAL_OK;
}

static int
apply_one(shoal__apply *a, shoal__cand *k)
{
    const shoal__apply_store *s = a->s;
    shoal__change full;
    const shoal__change *c;
    int cerr = cand_full(k, &full, &c);
    if (cerr)
        return cerr;
    void *h;
    shoal__doc *d;
    uint8_t *mdeps = NULL;
    int err = s->doc(s->ctx, c, &h, &d);
    if (err) {
        err = err == SHOAL_EINVAL ? SHOAL_EPROTO : err;
        goto out;
    }
    bool vd;
    err = void_of(a, c, &vd);
    if (!err && c->nseals)
        err = shoal__apply_disclose(s, &a->authz, k->r.cid, (shoal__change *)(uintptr_t)c);
    if (err)
        goto out;
    err = vd ? shoal__doc_apply_void(d, c) : shoal__doc_apply(d, c, 0, c->nops);
    if (err) {
        if (err != SHOAL_ENOMEM) {
            mark_bad(a, k);
            err = SHOAL_EPROTO;
        }
        goto out;
    }
    /* The heads lose the deps as applied here (a dep on a version held
     * as evidence names its canonical version). */
    if (c->ndeps) {
        mdeps = shoal__malloc(c->ndeps * SHOAL__ID_BYTES);
        if (!mdeps)
            err = SHOAL_ENOMEM;
        for (size_t i = 0; !err && i < c->ndeps; i++) {
            int e2 =
                shoal__apply_dep(s, c->deps + i * SHOAL__ID_BYTES, mdeps + i * SHOAL__ID_BYTES);
            if (e2 == SHOAL_ENOTFOUND)
                memcpy(mdeps + i * SHOAL__ID_BYTES, c->deps + i * SHOAL__ID_BYTES, SHOAL__ID_BYTES);
            else
                err = e2;
        }
    }
    if (!err)
        err = s->put(s->ctx, h, &k->r, c, mdeps);
    if (!err && c->nseals && s->unsealed)
        err = s->unsealed(s->ctx, k->r.cid, c);
    /* An admitted revocation or equivocation proof: what its target
     * changed past the cut is VOID from now on, also where it was applied
     * before. */
    uint8_t target[SHOAL_KEY_BYTES];
    uint64_t cut;
    if (!err && a->root && s->revoked && shoal__change_cut(c, target, &cut)) {
        shoal__map_clear(&a->voids, NULL); /* the cuts changed */
        err = s->revoked(s->ctx, target);
    }
    if (!err)
        a->clock = shoal__hlc_observe(a->clock, c->hlc);
out:
    shoal__free(mdeps);
    if (c == &full)
        shoal__change_clear(&full);
    return err;
}

/* k (canonical) replaces applied version old of its (author, seq): old
 * and k are kept as evidence, then the store supersedes old by k.  k is
 * never a change shoal__doc_refusal refuses (cand_decode): the store's
 * rebuild would fail on one with SHOAL_ECORRUPT. */
static int
swap_in(shoal__apply *a, shoal__cand *k, const uint8_t old[SHOAL__ID_BYTES])
{
    const shoal__apply_store *s = a->s;
    uint8_t *oenv = NULL;
    size_t olen = 0;
    int err = applied_env(s, old, &oenv, &olen);
    if (err)
        return err;
    err = evidence_pair(a, k->c.author, k->c.seq, k->r.cid, k->r.env, k->r.env_len, old, oenv, olen,
                        true);
    shoal__change oc;
    memset(&oc, 0, sizeof oc);
    size_t elen, blen;
    const uint8_t *body;
    if (!err) {
        err = shoal__envelope_parse(oenv, olen, &elen, &body, &blen);
        if (!err) {
            memcpy(oc.author, shoal__envelope_author(oenv), SHOAL_KEY_BYTES);
            err = shoal__change_decode(body, blen, &oc);
        }
        if (err && err != SHOAL_ENOMEM)
            err = SHOAL_ECORRUPT;
    }
    if (!err)
        err = s->supersede(s->ctx, old, &oc, &k->r, &k->c);
    if (!err)
        a->clock = shoal__hlc_observe(a->clock, k->c.hlc);
    shoal__change_clear(&oc);
    shoal__free(oenv);
    if (err == SHOAL_EPROTO)
        mark_bad(a, k);
    return err;
}

/* The write check of k (its full decode when it was stripped). */
static int
judge(shoal__apply *a, shoal__cand *k, int *verdict)
{
    shoal__change full;
    const shoal__change *c;
    int err = cand_full(k, &full, &c);
    if (err)
        return err;
    if (!a->authz)
        err = shoal__authz_cache_new(&a->authz);
    shoal__authz_out out;
    if (!err)
        err = shoal__authz_judge(a->s, a->authz, a->root, c, NULL, &out);
    if (!err)
        *verdict = out.verdict;
    if (c == &full)
        shoal__change_clear(&full);
    return err;
}

/* One candidate: 0 = waits, 1 = resolved (applied, duplicate, evidence).
 * sib: (author, seq) -> the candidate of smallest id of this drain.
 * relax: a smaller version of k's (author, seq) waiting in this drain no
 * longer holds k back (see shoal__apply_drain); *held is set when it did. */
static int
step(shoal__apply *a, shoal__cand *k, const shoal__map *sib, bool relax, bool *resolved, bool *held)
{
    const shoal__apply_store *s = a->s;
    *resolved = false;
    int err;
    if (s->has(s->ctx, k->r.cid)) {
        if (k->from_bundle)
            a->res.duplicate++;
        *resolved = true;
        return SHOAL_OK;
    }
    err = s->ev_find(s->ctx, k->r.cid, NULL, NULL);
    if (err && err != SHOAL_ENOTFOUND)
        return err;
    bool known = err == SHOAL_OK; /* seen as a version already */
    uint8_t other[SHOAL__ID_BYTES];
    err = s->authseq(s->ctx, k->c.author, k->c.seq, other);
    if (err && err != SHOAL_ENOTFOUND)
        return err;
    bool applied = err == SHOAL_OK;
    err = SHOAL_OK;
    /* A smaller version of k's (author, seq) that waits in this drain. */
    const shoal__cand *sb = NULL;
    if (!applied) {
        uint8_t key[SHOAL__SEQKEY_BYTES];
        shoal__seqkey(key, k->c.author, k->c.seq);
        sb = shoal__map_get(sib, key, sizeof key);
        if (sb && (sb == k || sb->done || memcmp(sb->r.cid, k->r.cid, SHOAL__ID_BYTES) >= 0))
            sb = NULL;
    }
    /* Only a smaller version ever replaces the applied one, so a larger
     * one can never apply: evidence only.  Any other version may apply
     * once ready, even if a smaller one is held (as evidence or waiting):
     * that one replaces it once it is ready itself.  Were k dropped as
     * evidence instead, a smaller version that never becomes ready (a
     * dependency no replica has) would leave the (author, seq) applied on
     * a replica that applied k before receiving it and unapplied on one
     * that received both together. */
    if ((applied && memcmp(k->r.cid, other, SHOAL__ID_BYTES) > 0) || (sb && !known)) {
        if (!known) {
            a->res.equivocations++;
            uint8_t *oenv = NULL;
            size_t olen = 0;
            const uint8_t *lo = applied ? other : sb->r.cid;
            if (applied)
                err = applied_env(s, other, &oenv, &olen);
            if (!err)
                err = evidence_pair(a, k->c.author, k->c.seq, lo, applied ? oenv : sb->r.env,
                                    applied ? olen : sb->r.env_len, k->r.cid, k->r.env,
                                    k->r.env_len, false);
            shoal__free(oenv);
            if (err)
                return err;
            /* Kept or not, its id maps to its (author, seq) (rule 3), up
             * to SHOAL__EVIDENCE_IDS ids. */
            if (s->ev_find(s->ctx, k->r.cid, NULL, NULL) == SHOAL_ENOTFOUND &&
                s->ev_ids(s->ctx) < SHOAL__EVIDENCE_IDS)
                err = s->ev_alias(s->ctx, k->c.author, k->c.seq, k->r.cid);
            if (err)
                return err;
            known = true;
        } else if (k->from_bundle && applied) {
            a->res.duplicate++;
        }
        if (applied) {
            *resolved = true;
            return SHOAL_OK;
        }
    }
    /* The smaller version goes first while it may still apply. */
    if (sb && !relax) {
        *held = true;
        return SHOAL_OK;
    }
    if (applied && !known) {
        /* A smaller version than the applied one: report it at once (it
         * may wait for its dependencies before it can replace it). */
        uint8_t *oenv = NULL;
        size_t olen = 0;
        err = applied_env(s, other, &oenv, &olen);
        if (!err)
            err = evidence_pair(a, k->c.author, k->c.seq, k->r.cid, k->r.env, k->r.env_len, other,
                                oenv, olen, true);
        shoal__free(oenv);
        if (err)
            return err;
        a->res.equivocations++;
    }
    if (!applied) {
        /* Applied seqs of an author are 1..n: k is next if seq - 1 is
         * applied (or k is the first).  A partial replica's causality is
         * per document: its deps alone. */
        if (k->c.seq == 0)
            return SHOAL_OK;
        if (k->c.seq > 1 && !a->per_doc) {
            err = s->authseq(s->ctx, k->c.author, k->c.seq - 1, other);
            if (err == SHOAL_ENOTFOUND)
                return SHOAL_OK;
            if (err)
                return err;
        }
    }
    if (!deps_ok(s, k))
        return SHOAL_OK;
    if (!shoal__hlc_acceptable(k->c.hlc, a->wall, a->max_drift_ms))
        return SHOAL_OK;
    if (a->root) {
        int verdict;
        err = judge(a, k, &verdict);
        if (err || verdict == SHOAL__AUTHZ_PEND)
            return err;
        if (verdict == SHOAL__AUTHZ_REJECT) {
            /* Held without effect.  A smaller version of an applied seq
             * that fails the check stays evidence (docs/permissions.md,
             * "Limits"). */
            if (!applied) {
                err = s->put_rejected(s->ctx, &k->r, &k->c);
                if (err)
                    return err;
                a->clock = shoal__hlc_observe(a->clock, k->c.hlc);
                a->rejected++;
                a->res.rejected++;
            }
            *resolved = true;
            return SHOAL_OK;
        }
    }
    err = applied ? swap_in(a, k, other) : apply_one(a, k);
    if (err)
        return err;
    a->res.applied++;
    *resolved = true;
    return SHOAL_OK;
}

/* ----------------------------------------------------------------- drain */

int
shoal__apply_drain(shoal__apply *a, shoal__cand *bc, size_t nb)
{
    const shoal__apply_store *s = a->s;
    load_ctx lc = { .a = a };
    shoal__cand **list = NULL;
    shoal__map seen, sib;
    shoal__map_init(&seen);
    shoal__map_init(&sib);
    shoal__map_init(&a->voids);
    int err = SHOAL_OK;

    /* Stored pending changes. */
    if (s->pending_count(s->ctx) > 0) {
        err = s->pending_scan(s->ctx, load_pending_cb, &lc);
        if (lc.err)
            err = lc.err;
        for (size_t i = 0; !err && i < lc.ndrop; i++)
            err = s->pending_del(s->ctx, lc.drop + i * SHOAL__ID_BYTES);
    }
    size_t nlist = 0;
    if (!err) {
        list = shoal__malloc((nb + lc.n + 1) * sizeof *list);
        if (!list)
            err = SHOAL_ENOMEM;
    }
    /* New changes: duplicates of stored or earlier ones are no-ops, but
     * for the sealed groups they bring (every group that came is held,
     * whatever becomes of its change; one that comes after its change
     * applied refills the change's document). */
    for (size_t i = 0; !err && i < nb; i++) {
        shoal__cand *k = &bc[i];
        k->from_bundle = true;
        k->in_pending = false;
        k->done = false;
        bool fresh = false;
        for (size_t g = 0; !err && s->seal_put && g < k->r.ndisc; g++) {
            bool f = false;
            err = s->seal_put(s->ctx, k->r.cid, k->r.disc[g].g, k->r.disc[g].p, k->r.disc[g].n, &f);
            fresh = fresh || f;
        }
        if (err)
            break;
        if (shoal__map_get(&seen, k->r.cid, SHOAL__ID_BYTES) || s->has(s->ctx, k->r.cid) ||
            s->pending_has(s->ctx, k->r.cid)) {
            a->res.duplicate++;
            k->done = true;
            if (fresh && s->disclosed && s->has(s->ctx, k->r.cid) &&
                !(a->root && s->rejected && s->rejected(s->ctx, k->r.cid)))
                err = s->disclosed(s->ctx, k->r.cid, &k->c);
            continue;
        }
        err = shoal__map_put(&seen, k->r.cid, SHOAL__ID_BYTES, k);
        list[nlist++] = k;
    }
    for (size_t i = 0; !err && i < lc.n; i++)
        list[nlist++] = &lc.c[i];
    if (!err && nlist > 1)
        qsort(list, nlist, sizeof *list, cand_cmp);
    /* The smallest id per (author, seq) among the candidates: of two
     * versions waiting together, only that one may apply (none is one
     * shoal__doc_refusal refuses: cand_decode). */
    for (size_t i = 0; !err && i < nlist; i++) {
        uint8_t key[SHOAL__SEQKEY_BYTES];
        shoal__seqkey(key, list[i]->c.author, list[i]->c.seq);
        shoal__cand *cur = shoal__map_get(&sib, key, sizeof key);
        if (!cur || memcmp(list[i]->r.cid, cur->r.cid, SHOAL__ID_BYTES) < 0)
            err = shoal__map_put(&sib, key, sizeof key, list[i]);
    }

    /* Passes until nothing more resolves.  Of two versions of an (author,
     * seq) waiting together the smaller goes first; when nothing else
     * resolves, one more pass (relax) lets a larger one that is ready
     * apply although the smaller one waits, as it would have had it
     * arrived first (the smaller one replaces it once ready). */
    bool progress = true, relax = false, held = false;
    while (!err && (progress || (held && !relax))) {
        relax = !progress;
        progress = false;
        held = false;
        for (size_t i = 0; !err && i < nlist; i++) {
            shoal__cand *k = list[i];
            if (k->done)
                continue;
            bool resolved;
            err = step(a, k, &sib, relax, &resolved, &held);
            if (err || !resolved)
                continue;
            k->done = true;
            progress = true;
            if (k->in_pending)
                err = s->pending_del(s->ctx, k->r.cid);
        }
    }

    /* The rest waits in the pending set. */
    uint64_t due = UINT64_MAX;
    for (size_t i = 0; !err && i < nlist; i++) {
        shoal__cand *k = list[i];
        if (k->done)
            continue;
        if (!k->in_pending && a->per_doc && s->may_wait && !s->may_wait(s->ctx, &k->c))
            continue;
        if (!k->in_pending) {
            err = s->pending_put(s->ctx, k->r.cid, k->r.env, k->r.env_len);
            k->in_pending = true;
        }
        if (k->from_bundle)
            a->res.pending++;
        if (!shoal__hlc_acceptable(k->c.hlc, a->wall, a->max_drift_ms)) {
            uint64_t ms = SHOAL__HLC_MS(k->c.hlc);
            uint64_t at = ms > a->max_drift_ms ? ms - a->max_drift_ms : 0;
            if (at < due)
                due = at;
        }
    }
    if (!err && s->pending_count(s->ctx) > SHOAL__PENDING_MAX)
        err = SHOAL_ETOOBIG;
    if (!err)
        a->due_ms = due;

    for (size_t i = 0; i < lc.n; i++) {
        cand_clear(&lc.c[i]);
        shoal__free(lc.c[i].owned);
    }
    shoal__free(lc.c);
    shoal__free(lc.drop);
    shoal__free(list);
    shoal__map_clear(&seen, NULL);
    shoal__map_clear(&sib, NULL);
    shoal__map_clear(&a->voids, NULL);
    if (a->authz_shared) {
        shoal__authz_cache_trim(a->authz, SHOAL__AUTHZ_CACHE_MAX);
    } else {
        shoal__authz_cache_free(a->authz);
        a->authz = NULL;
    }
    return err;
}

/* ---------------------------------------------------------------- rebuild */

static int
as_corrupt(int err)
{
    return err == SHOAL_ENOMEM ? SHOAL_ENOMEM : SHOAL_ECORRUPT;
}

int
shoal__change_stored(const uint8_t *env, size_t len, shoal__change *c)
{
    int err = shoal__envelope_decode(env, len, c);
    return err ? as_corrupt(err) : SHOAL_OK;
}

static int
heads_cmp(const void *a, const void *b)
{
    return memcmp(a, b, SHOAL__ID_BYTES);
}

int
shoal__apply_replay(shoal__rent *e, size_t n, shoal__rent_load_fn load, void *ctx, shoal__doc **doc,
                    uint8_t **heads_out, size_t *nheads_out)
{
    *doc = NULL;
    *heads_out = NULL;
    *nheads_out = 0;
    shoal__doc *d = shoal__doc_new();
    uint8_t *heads = shoal__malloc((n ? n : 1) * SHOAL__ID_BYTES);
    size_t nheads = 0;
    int err = !d || !heads ? SHOAL_ENOMEM : SHOAL_OK;
    size_t left = n;
    bool strict = true;
    while (!err && left > 0) {
        bool progress = false;
        for (size_t i = 0; !err && i < n; i++) {
            if (e[i].done)
                continue;
            bool ready = true;
            for (size_t j = 0; strict && ready && j < e[i].ndep; j++)
                ready = e[e[i].dep[j]].done;
            if (!ready)
                continue;
            shoal__change c;
            err = load(ctx, &e[i], &c);
            if (err)
                break;
            err = e[i].voided ? shoal__doc_apply_void(d, &c) : shoal__doc_apply(d, &c, 0, c.nops);
            if (err)
                err = as_corrupt(err);
            shoal__change_clear(&c);
            /* heads = heads - deps + cid */
            size_t k = 0;
            for (size_t h = 0; h < nheads; h++) {
                bool drop = false;
                for (size_t j = 0; !drop && j < e[i].ndep; j++)
                    drop = memcmp(heads + h * SHOAL__ID_BYTES, e[e[i].dep[j]].cid,
                                  SHOAL__ID_BYTES) == 0;
                if (!drop)
                    memmove(heads + k++ * SHOAL__ID_BYTES, heads + h * SHOAL__ID_BYTES,
                            SHOAL__ID_BYTES);
            }
            nheads = k;
            memcpy(heads + nheads++ * SHOAL__ID_BYTES, e[i].cid, SHOAL__ID_BYTES);
            e[i].done = true;
            left--;
            progress = true;
        }
        if (!progress)
            strict = false;
    }
    if (err) {
        shoal__doc_free(d);
        shoal__free(heads);
        return err;
    }
    if (nheads > 1)
        qsort(heads, nheads, SHOAL__ID_BYTES, heads_cmp);
    *doc = d;
    *heads_out = heads;
    *nheads_out = nheads;
    return SHOAL_OK;
}

/* Map each change's deps through s to the entries of e they name (the
 * dep arrays, allocated here; free_deps frees them). */
static int
map_deps(const shoal__apply_store *s, shoal__rent *e, size_t n, shoal__rent_load_fn load, void *ctx)
{
    shoal__map ix; /* cid -> its entry; keys Borrowed from e */
    shoal__map_init_borrow(&ix);
    int err = shoal__map_reserve(&ix, n);
    for (size_t i = 0; !err && i < n; i++)
        err = shoal__map_put(&ix, e[i].cid, SHOAL__ID_BYTES, &e[i]);
    /* Deps, mapped to applied ids, that lie in this list. */
    for (size_t i = 0; !err && i < n; i++) {
        shoal__change c;
        err = load(ctx, &e[i], &c);
        if (err)
            break;
        if (c.ndeps) {
            e[i].dep = shoal__malloc(c.ndeps * sizeof *e[i].dep);
            if (!e[i].dep)
                err = SHOAL_ENOMEM;
        }
        for (size_t j = 0; !err && j < c.ndeps; j++) {
            uint8_t id[SHOAL__ID_BYTES];
            int e2 = shoal__apply_dep(s, c.deps + j * SHOAL__ID_BYTES, id);
            if (e2 == SHOAL_ENOTFOUND)
                continue;
            if (e2) {
                err = e2;
                break;
            }
            shoal__rent *r = shoal__map_get(&ix, id, SHOAL__ID_BYTES);
            if (r && r != &e[i])
                e[i].dep[e[i].ndep++] = (size_t)(r - e);
        }
        shoal__change_clear(&c);
    }
    shoal__map_clear(&ix, NULL);
    return err;
}

static void
free_deps(shoal__rent *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        shoal__free(e[i].dep);
        e[i].dep = NULL;
        e[i].ndep = 0;
    }
}

int
shoal__apply_rebuild(const shoal__apply_store *s, shoal__rent *e, size_t n,
                     shoal__rent_load_fn load, void *ctx, shoal__doc **doc, uint8_t **heads,
                     size_t *nheads)
{
    *doc = NULL;
    *heads = NULL;
    *nheads = 0;
    int err = map_deps(s, e, n, load, ctx);
    if (!err)
        err = shoal__apply_replay(e, n, load, ctx, doc, heads, nheads);
    free_deps(e, n);
    return err;
}

int
shoal__apply_doc_at(const shoal__apply_store *s, shoal__rent *e, size_t n, shoal__rent_load_fn load,
                    void *ctx, const uint8_t *deps, size_t ndeps, shoal__doc **doc)
{
    *doc = NULL;
    bool *in = NULL;
    size_t *stack = NULL, *pos = NULL;
    shoal__rent *sub = NULL;
    int err = map_deps(s, e, n, load, ctx);
    if (!err && n) {
        in = shoal__calloc(n, sizeof *in);
        stack = shoal__malloc(n * sizeof *stack);
        pos = shoal__malloc(n * sizeof *pos);
        sub = shoal__calloc(n, sizeof *sub);
        if (!in || !stack || !pos || !sub)
            err = SHOAL_ENOMEM;
    }
    size_t top = 0, m = 0;
    if (!err) {
        /* The entries the deps name (mapped as the pipeline maps them),
         * then everything they reach. */
        shoal__map ix;
        shoal__map_init_borrow(&ix);
        err = shoal__map_reserve(&ix, n);
        for (size_t i = 0; !err && i < n; i++)
            err = shoal__map_put(&ix, e[i].cid, SHOAL__ID_BYTES, &e[i]);
        for (size_t j = 0; !err && j < ndeps; j++) {
            uint8_t id[SHOAL__ID_BYTES];
            int e2 = shoal__apply_dep(s, deps + j * SHOAL__ID_BYTES, id);
            if (e2 == SHOAL_ENOTFOUND)
                continue;
            if (e2) {
                err = e2;
                break;
            }
            shoal__rent *r = shoal__map_get(&ix, id, SHOAL__ID_BYTES);
            if (r && !in[r - e]) {
                in[r - e] = true;
                stack[top++] = (size_t)(r - e);
            }
        }
        shoal__map_clear(&ix, NULL);
        while (!err && top > 0) {
            size_t i = stack[--top];
            for (size_t k = 0; k < e[i].ndep; k++)
                if (!in[e[i].dep[k]]) {
                    in[e[i].dep[k]] = true;
                    stack[top++] = e[i].dep[k];
                }
        }
    }
    if (!err) {
        /* The reached entries, in log order, their deps renumbered. */
        for (size_t i = 0; i < n; i++)
            if (in[i]) {
                pos[i] = m;
                sub[m].at = e[i].at;
                memcpy(sub[m].cid, e[i].cid, SHOAL__ID_BYTES);
                sub[m].dep = e[i].dep; /* Borrowed: renumbered below, freed with e */
                sub[m].ndep = e[i].ndep;
                m++;
            }
        for (size_t i = 0; i < m; i++)
            for (size_t k = 0; k < sub[i].ndep; k++)
                sub[i].dep[k] = pos[sub[i].dep[k]];
    }
    if (!err && m > 0) {
        uint8_t *heads = NULL;
        size_t nheads = 0;
        err = shoal__apply_replay(sub, m, load, ctx, doc, &heads, &nheads);
        shoal__free(heads);
    }
    free_deps(e, n);
    shoal__free(in);
    shoal__free(stack);
    shoal__free(pos);
    shoal__free(sub);
    return err;
}

static bool
ids_has(const uint8_t *ids, size_t n, const uint8_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(ids + i * SHOAL__ID_BYTES, id, SHOAL__ID_BYTES) == 0)
            return true;
    return false;
}

int
shoal__heads_advance(const uint8_t *heads, size_t nheads, const uint8_t *deps, size_t ndeps,
                     const uint8_t cid[SHOAL__ID_BYTES], uint8_t **out, size_t *nout)
{
    uint8_t *h = shoal__malloc((nheads + 1) * SHOAL__ID_BYTES);
    if (!h)
        return SHOAL_ENOMEM;
    size_t n = 0;
    bool placed = false;
    for (size_t i = 0; i < nheads; i++) {
        const uint8_t *x = heads + i * SHOAL__ID_BYTES;
        if (ids_has(deps, ndeps, x))
            continue;
        int cmp = memcmp(x, cid, SHOAL__ID_BYTES);
        if (cmp == 0)
            continue;
        if (cmp > 0 && !placed) {
            memcpy(h + n++ * SHOAL__ID_BYTES, cid, SHOAL__ID_BYTES);
            placed = true;
        }
        memcpy(h + n++ * SHOAL__ID_BYTES, x, SHOAL__ID_BYTES);
    }
    if (!placed)
        memcpy(h + n++ * SHOAL__ID_BYTES, cid, SHOAL__ID_BYTES);
    *out = h;
    *nout = n;
    return SHOAL_OK;
}
