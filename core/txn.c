/*
 * core/txn.c - local transactions: buffered edits, and the commit that
 * turns them into signed changes in one store write.
 *
 * Edits are only validated (names, values) when they are made; they are
 * resolved at commit, under the replica lock and inside the LMDB write
 * transaction, against the newest state.  That is what makes seq and the
 * HLC safe to allocate: two processes on one directory share LMDB's write
 * lock, so no two changes of this author ever get the same seq.
 *
 * Per document (in first-touch order) the edits become ops of one change,
 * applied to the working document op by op (shoal__doc_apply with a range
 * of one op), so a later edit sees the earlier ones: list indexes resolve
 * against the list as the earlier edits left it, and the kind check sees
 * the kind they made visible.  A delete ends its change; further edits of
 * that document start another change in the next epoch (a re-create).
 */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

typedef struct tedit {
    uint8_t kind;   /* shoal__opkind */
    size_t doc;     /* index into txn->docs */
    uint8_t *field; /* owned, NUL-terminated; NULL for DELDOC */
    size_t flen;
    shoal_value v; /* owned copy (SET, INS, REP) */
    int64_t delta; /* COUNT */
    size_t index;  /* INS, DEL, REP */
    size_t next;   /* next edit of the same document, or SIZE_MAX */
} tedit;

typedef struct tdoc {
    uint8_t *coll; /* owned, NUL-terminated */
    size_t clen;
    uint8_t *id; /* owned, NUL-terminated */
    size_t idlen;
    size_t first; /* first edit, or SIZE_MAX */
    size_t last;
} tdoc;

struct shoal_txn {
    shoal_replica *r;
    tdoc *docs; /* owned */
    size_t ndocs;
    size_t capdocs;
    shoal__map index; /* "coll\0id" -> (uintptr_t)(doc index + 1) */
    tedit *edits;     /* owned */
    size_t nedits;
    size_t capedits;
};

shoal_err
shoal_txn_begin(shoal_replica *r, shoal_txn **out)
{
    assert(r && out);
    shoal_txn *t = shoal__calloc(1, sizeof *t);
    *out = t;
    if (!t)
        return SHOAL_ENOMEM;
    t->r = r;
    shoal__map_init(&t->index);
    return SHOAL_OK;
}

static void
txn_free(shoal_txn *t)
{
    for (size_t i = 0; i < t->ndocs; i++) {
        shoal__free(t->docs[i].coll);
        shoal__free(t->docs[i].id);
    }
    for (size_t i = 0; i < t->nedits; i++) {
        shoal__free(t->edits[i].field);
        shoal__value_clear(&t->edits[i].v);
    }
    shoal__free(t->docs);
    shoal__free(t->edits);
    shoal__map_clear(&t->index, NULL);
    shoal__free(t);
}

void
shoal_txn_abort(shoal_txn *t)
{
    if (t)
        txn_free(t);
}

static uint8_t *
dup_nul(const char *s, size_t n)
{
    uint8_t *p = shoal__malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static shoal_err
add_edit(shoal_txn *t, uint8_t kind, const char *coll, const char *id, const char *field,
         const shoal_value *v, int64_t delta, size_t index)
{
    assert(t);
    size_t clen, idlen, flen = 0;
    if (!shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen) ||
        !shoal__name_ok(id, SHOAL_MAX_DOC_ID, &idlen))
        return SHOAL_EINVAL;
    if (kind != SHOAL__OP_DELDOC && !shoal__name_ok(field, SHOAL_MAX_FIELD, &flen))
        return SHOAL_EINVAL;
    if (kind == SHOAL__OP_SET || kind == SHOAL__OP_INS || kind == SHOAL__OP_REP) {
        if (!v || shoal__value_check(v) != SHOAL_OK)
            return SHOAL_EINVAL;
    }
    if (t->nedits == t->capedits) {
        size_t cap = t->capedits ? t->capedits * 2 : 8;
        tedit *e = shoal__realloc(t->edits, cap * sizeof *e);
        if (!e)
            return SHOAL_ENOMEM;
        t->edits = e;
        t->capedits = cap;
    }
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, (const uint8_t *)coll, clen, (const uint8_t *)id, idlen);
    uintptr_t di = (uintptr_t)shoal__map_get(&t->index, key, klen);
    if (di == 0) {
        if (t->ndocs == t->capdocs) {
            size_t cap = t->capdocs ? t->capdocs * 2 : 4;
            tdoc *d = shoal__realloc(t->docs, cap * sizeof *d);
            if (!d)
                return SHOAL_ENOMEM;
            t->docs = d;
            t->capdocs = cap;
        }
        tdoc *d = &t->docs[t->ndocs];
        memset(d, 0, sizeof *d);
        d->coll = dup_nul(coll, clen);
        d->id = dup_nul(id, idlen);
        d->clen = clen;
        d->idlen = idlen;
        d->first = d->last = SIZE_MAX;
        int err = (d->coll && d->id) ? SHOAL_OK : SHOAL_ENOMEM;
        if (!err)
            err = shoal__map_put(&t->index, key, klen, (void *)(uintptr_t)(t->ndocs + 1));
        if (err) {
            shoal__free(d->coll);
            shoal__free(d->id);
            return (shoal_err)err;
        }
        di = ++t->ndocs;
    }
    tedit *e = &t->edits[t->nedits];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->doc = di - 1;
    e->delta = delta;
    e->index = index;
    e->next = SIZE_MAX;
    if (field) {
        e->field = dup_nul(field, flen);
        e->flen = flen;
        if (!e->field)
            return SHOAL_ENOMEM;
    }
    if (kind == SHOAL__OP_SET || kind == SHOAL__OP_INS || kind == SHOAL__OP_REP) {
        int err = shoal__value_copy(&e->v, v);
        if (err) {
            shoal__free(e->field);
            return (shoal_err)err;
        }
    }
    tdoc *d = &t->docs[e->doc];
    if (d->last == SIZE_MAX)
        d->first = t->nedits;
    else
        t->edits[d->last].next = t->nedits;
    d->last = t->nedits;
    t->nedits++;
    return SHOAL_OK;
}

shoal_err
shoal_txn_set(shoal_txn *t, const char *coll, const char *id, const char *field,
              const shoal_value *v)
{
    return add_edit(t, SHOAL__OP_SET, coll, id, field, v, 0, 0);
}

shoal_err
shoal_txn_unset(shoal_txn *t, const char *coll, const char *id, const char *field)
{
    return add_edit(t, SHOAL__OP_UNSET, coll, id, field, NULL, 0, 0);
}

shoal_err
shoal_txn_counter_add(shoal_txn *t, const char *coll, const char *id, const char *field,
                      int64_t delta)
{
    /* delta 0 is recorded too: it makes the field a counter reading 0. */
    return add_edit(t, SHOAL__OP_COUNT, coll, id, field, NULL, delta, 0);
}

shoal_err
shoal_txn_list_insert(shoal_txn *t, const char *coll, const char *id, const char *field,
                      size_t index, const shoal_value *v)
{
    return add_edit(t, SHOAL__OP_INS, coll, id, field, v, 0, index);
}

shoal_err
shoal_txn_list_remove(shoal_txn *t, const char *coll, const char *id, const char *field,
                      size_t index)
{
    return add_edit(t, SHOAL__OP_DEL, coll, id, field, NULL, 0, index);
}

shoal_err
shoal_txn_list_replace(shoal_txn *t, const char *coll, const char *id, const char *field,
                       size_t index, const shoal_value *v)
{
    return add_edit(t, SHOAL__OP_REP, coll, id, field, v, 0, index);
}

shoal_err
shoal_txn_delete(shoal_txn *t, const char *coll, const char *id)
{
    return add_edit(t, SHOAL__OP_DELDOC, coll, id, NULL, NULL, 0, 0);
}

/* ---------------------------------------------------------------- commit */

/* A local change being built. */
typedef struct builder {
    bool open;
    shoal__change c;
    shoal__op *ops; /* owned */
    size_t capops;
    uint8_t *authors; /* owned, sorted */
    size_t capauthors;
    uint8_t *deps; /* owned copy of the heads */
    /* Permissions: the change names auth (nauth ids).  Its ops change the
     * document in place, so the check gets it summarised: before the
     * change (pre, pre_view: its guard fields under the policy named,
     * policy), and after its ops up to a DELDOC (post_view, taken when
     * the first DELDOC is added; post_taken). */
    uint8_t auth[2 * SHOAL__ID_BYTES];
    const shoal__policy *policy; /* Borrowed from the commit's cache; NULL for _auth */
    shoal__authz_state pre;
    shoal__buf pre_view, post_view;
    bool post_taken;
    /* Sealed fields: the groups of the change (one per read class it
     * writes) and their commitments, made by builder_seal. */
    uint8_t commits[SHOAL__MAX_SEALS * 32];
    shoal__buf *groups; /* owned, SHOAL__MAX_SEALS of them once used */
} builder;

typedef struct cctx {
    shoal__wctx *x;
    shoal_txn *txn;
    uint64_t seq;  /* last seq allocated */
    bool appended; /* a change of this commit is in the log */
    char detail[300];
    /* Permissions: this device's certificate and the current policy, found
     * once per commit (have_refs). */
    bool have_refs;
    uint8_t refs[2 * SHOAL__ID_BYTES];
    shoal__authz_cache *authz;
} cctx;

static void
builder_reset(builder *b)
{
    b->pre_view.len = 0;
    b->post_view.len = 0;
    b->post_taken = false;
    b->policy = NULL;
    b->open = false;
    b->c.nops = 0;
    b->c.nauthors = 0;
    b->c.ndeps = 0;
    for (size_t g = 0; b->groups && g < b->c.nseals; g++)
        b->groups[g].len = 0;
    b->c.nseals = 0;
    b->c.seal_commit = NULL;
}

static void
builder_free(builder *b)
{
    shoal__buf_free(&b->pre_view);
    shoal__buf_free(&b->post_view);
    for (size_t g = 0; b->groups && g < SHOAL__MAX_SEALS; g++)
        shoal__buf_free(&b->groups[g]);
    shoal__free(b->groups);
    shoal__free(b->ops);
    shoal__free(b->authors);
    shoal__free(b->deps);
    memset(b, 0, sizeof *b);
}

/* A replica that enforces permissions (docs/permissions.md) writes format
 * 2, naming the authority each change relies on, and keeps the document
 * as it was before the change for the check at the end. */
static int
builder_authority(cctx *cx, builder *b, shoal__wdoc *wd)
{
    shoal_replica *r = cx->x->r;
    shoal__wset *w = &cx->x->w;
    b->c.version = SHOAL__FORMAT_V2;
    int err = SHOAL_OK;
    if (wd->clen == 5 && memcmp(wd->coll, "_auth", 5) == 0) {
        /* the root names nothing; an admin its grant; a device its
         * certificate, for an equivocation proof */
        if (memcmp(r->pk, r->root, SHOAL_KEY_BYTES) != 0) {
            err = shoal__wset_auth_pick(w, SHOAL__AUTH_ADMIN, r->pk, b->auth);
            if (err == SHOAL_ENOTFOUND &&
                shoal__auth_id_kind(wd->id, wd->idlen, NULL) == SHOAL__AUTH_EQUIV)
                err = shoal__wset_auth_pick(w, SHOAL__AUTH_CERT, r->pk, b->auth);
            if (err == SHOAL_ENOTFOUND) {
                snprintf(cx->detail, sizeof cx->detail, "this key holds no admin grant");
                return SHOAL_EPERM;
            }
            b->c.nauth = 1;
        }
    } else {
        if (!cx->have_refs) {
            err = shoal__wset_auth_pick(w, SHOAL__AUTH_CERT, r->pk, cx->refs);
            if (err == SHOAL_ENOTFOUND) {
                snprintf(cx->detail, sizeof cx->detail, "this key holds no certificate");
                return SHOAL_EPERM;
            }
            if (!err)
                err = shoal__wset_auth_pick(w, SHOAL__AUTH_POLICY, NULL, cx->refs + 32);
            if (err == SHOAL_ENOTFOUND) {
                snprintf(cx->detail, sizeof cx->detail, "this replica holds no policy");
                return SHOAL_EPERM;
            }
            cx->have_refs = !err;
        }
        memcpy(b->auth, cx->refs, sizeof b->auth);
        b->c.nauth = 2;
    }
    if (err)
        return err;
    b->c.auth = b->auth;
    const shoal__doc *d = wd->doc;
    b->pre.exists = shoal__doc_exists(d);
    b->pre.deleted = shoal__doc_deleted(d);
    b->pre.epoch = shoal__doc_epoch(d);
    b->pre_view.len = 0;
    b->post_view.len = 0;
    b->post_taken = false;
    b->policy = NULL;
    if (b->c.nauth == 2) {
        /* the guard fields under the policy the change names */
        err = cx->authz ? SHOAL_OK : shoal__authz_cache_new(&cx->authz);
        if (!err)
            err = shoal__authz_policy(&cx->x->s, cx->authz, b->auth + SHOAL__ID_BYTES, &b->policy);
        if (err == SHOAL_ENOTFOUND) {
            snprintf(cx->detail, sizeof cx->detail, "the current policy does not decode");
            return SHOAL_EPERM;
        }
        if (!err)
            err = shoal__authz_guard_view(b->policy, wd->coll, wd->clen, d, &b->pre_view);
    }
    return err;
}

/* The write check of the change built (docs/permissions.md): anything but
 * ADMIT is SHOAL_EPERM, with the rule in cx->detail. */
static int
builder_check(cctx *cx, builder *b, shoal__wdoc *wd)
{
    shoal__wctx *x = cx->x;
    int err = cx->authz ? SHOAL_OK : shoal__authz_cache_new(&cx->authz);
    /* after its ops: the working document, unless a DELDOC came */
    if (!err && b->policy && !b->post_taken)
        err = shoal__authz_guard_view(b->policy, wd->coll, wd->clen, wd->doc, &b->post_view);
    shoal__authz_hint hint = { b->pre, b->post_view.p, b->post_view.len };
    hint.pre.view = b->pre_view.p;
    hint.pre.view_len = b->pre_view.len;
    /* This replica's own key revoked below this seq, or the authority
     * it names VOID (issued by a revoked admin past its cut): the change
     * would be VOID everywhere. */
    bool vd = false;
    if (!err)
        err = shoal__wset_void(&x->w, &b->c, &vd);
    if (!err && vd) {
        snprintf(cx->detail, sizeof cx->detail,
                 "%.*s/%.*s: this replica's key is revoked, or its certificate was issued by a "
                 "revoked admin (docs/permissions.md)",
                 (int)b->c.coll_len, (const char *)b->c.coll, (int)b->c.doc_len,
                 (const char *)b->c.doc);
        return SHOAL_EPERM;
    }
    shoal__authz_out out;
    /* A document holding a VOID change: verdicts do not see what made it
     * VOID, so the check replays it to the change's deps as every other
     * replica does (shoal__wset_doc_at), instead of this state. */
    bool voided = shoal__wset_voided(&x->w, wd);
    if (!err)
        err = shoal__authz_judge(&x->s, cx->authz, x->r->root, &b->c, voided ? NULL : &hint, &out);
    if (!err && out.verdict != SHOAL__AUTHZ_ADMIT) {
        snprintf(cx->detail, sizeof cx->detail, "%.*s/%.*s: %s", (int)b->c.coll_len,
                 (const char *)b->c.coll, (int)b->c.doc_len, (const char *)b->c.doc, out.why);
        err = SHOAL_EPERM;
    }
    return err;
}

static int
builder_begin(cctx *cx, builder *b, shoal__wdoc *wd)
{
    shoal__wctx *x = cx->x;
    shoal_replica *r = x->r;
    const shoal__doc *d = wd->doc;
    memset(&b->c, 0, sizeof b->c);
    memcpy(b->c.author, r->pk, SHOAL_KEY_BYTES);
    b->c.seq = ++cx->seq;
    b->c.hlc = shoal__hlc_tick(x->a.clock, x->a.wall);
    x->a.clock = b->c.hlc;
    if (!shoal__doc_exists(d))
        b->c.epoch = 0;
    else if (shoal__doc_deleted(d))
        b->c.epoch = shoal__doc_epoch(d) + 1;
    else
        b->c.epoch = shoal__doc_epoch(d);
    if (wd->meta.nheads > SHOAL__MAX_DEPS) {
        snprintf(cx->detail, sizeof cx->detail, "%s/%s has too many heads", wd->coll, wd->id);
        return SHOAL_ETOOBIG;
    }
    shoal__free(b->deps);
    b->deps = NULL;
    if (wd->meta.nheads) {
        b->deps = shoal__malloc(wd->meta.nheads * SHOAL__ID_BYTES);
        if (!b->deps)
            return SHOAL_ENOMEM;
        memcpy(b->deps, wd->meta.heads, wd->meta.nheads * SHOAL__ID_BYTES);
    }
    b->c.deps = b->deps;
    b->c.ndeps = wd->meta.nheads;
    b->c.coll = wd->coll;
    b->c.coll_len = wd->clen;
    b->c.doc = wd->id;
    b->c.doc_len = wd->idlen;
    b->c.ops = b->ops;
    b->c.authors = b->authors;
    b->open = true;
    return r->enforce ? builder_authority(cx, b, wd) : SHOAL_OK;
}

static bool
op_has_ref(const shoal__op *op)
{
    return (op->kind == SHOAL__OP_INS && !op->ref.head) || op->kind == SHOAL__OP_DEL ||
           op->kind == SHOAL__OP_REP;
}

/* Author index (0 = own) of key in the change being built, adding it to the
 * sorted author table (and renumbering earlier refs) when new. */
static int
builder_author(cctx *cx, builder *b, const uint8_t *key, uint32_t *out)
{
    if (memcmp(key, cx->x->r->pk, SHOAL_KEY_BYTES) == 0) {
        *out = 0;
        return SHOAL_OK;
    }
    size_t pos = 0;
    while (pos < b->c.nauthors) {
        int cmp = memcmp(b->authors + pos * SHOAL_KEY_BYTES, key, SHOAL_KEY_BYTES);
        if (cmp == 0) {
            *out = (uint32_t)pos + 1;
            return SHOAL_OK;
        }
        if (cmp > 0)
            break;
        pos++;
    }
    if (b->c.nauthors >= SHOAL__MAX_AUTHORS)
        return SHOAL_ETOOBIG;
    if (b->c.nauthors == b->capauthors) {
        size_t cap = b->capauthors ? b->capauthors * 2 : 4;
        uint8_t *p = shoal__realloc(b->authors, cap * SHOAL_KEY_BYTES);
        if (!p)
            return SHOAL_ENOMEM;
        b->authors = p;
        b->capauthors = cap;
    }
    memmove(b->authors + (pos + 1) * SHOAL_KEY_BYTES, b->authors + pos * SHOAL_KEY_BYTES,
            (b->c.nauthors - pos) * SHOAL_KEY_BYTES);
    memcpy(b->authors + pos * SHOAL_KEY_BYTES, key, SHOAL_KEY_BYTES);
    b->c.nauthors++;
    b->c.authors = b->authors;
    for (size_t i = 0; i < b->c.nops; i++) {
        shoal__op *op = &b->ops[i];
        if (op_has_ref(op) && op->ref.author >= pos + 1)
            op->ref.author++;
    }
    *out = (uint32_t)pos + 1;
    return SHOAL_OK;
}

/* Append op to the change and apply it to the working document. */
static int
builder_add(builder *b, shoal__wdoc *wd, const shoal__op *op)
{
    if (b->c.nops >= SHOAL__MAX_OPS)
        return SHOAL_ETOOBIG;
    if (b->c.nops == b->capops) {
        size_t cap = b->capops ? b->capops * 2 : 8;
        shoal__op *p = shoal__realloc(b->ops, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        b->ops = p;
        b->capops = cap;
    }
    /* The check's "after" stops at the first DELDOC: take it now. */
    if (op->kind == SHOAL__OP_DELDOC && b->policy && !b->post_taken) {
        b->post_view.len = 0;
        int err = shoal__authz_guard_view(b->policy, wd->coll, wd->clen, wd->doc, &b->post_view);
        if (err)
            return err;
        b->post_taken = true;
    }
    b->ops[b->c.nops++] = *op;
    b->c.ops = b->ops;
    return shoal__doc_apply(wd->doc, &b->c, b->c.nops - 1, b->c.nops);
}

/* Seal the ops on restricted fields under the policy the change names
 * (docs/permissions.md "Sealed fields"): each read class written gets a
 * group with a fresh random salt, and the change its commitment. */
static int
builder_seal(builder *b)
{
    const shoal__pcoll *co =
        b->policy ? shoal__policy_coll(b->policy, b->c.coll, b->c.coll_len) : NULL;
    if (!co || co->nclasses == 0)
        return SHOAL_OK;
    bool used[SHOAL__MAX_SEALS + 1];
    memset(used, 0, sizeof used);
    for (size_t i = 0; i < b->c.nops; i++) {
        shoal__op *op = &b->ops[i];
        if (op->kind == SHOAL__OP_DEL || op->kind == SHOAL__OP_DELDOC)
            continue;
        uint8_t cls = shoal__pcoll_class(op->field, op->field_len, (void *)(uintptr_t)co);
        op->sealed = cls != 0;
        used[cls] = true;
    }
    uint8_t n = 0;
    for (uint32_t cls = 1; cls <= SHOAL__MAX_SEALS; cls++)
        if (used[cls])
            b->c.seal_class[n++] = (uint8_t)cls;
    if (n == 0)
        return SHOAL_OK;
    if (!b->groups) {
        b->groups = shoal__calloc(SHOAL__MAX_SEALS, sizeof *b->groups);
        if (!b->groups)
            return SHOAL_ENOMEM;
    }
    b->c.nseals = n;
    b->c.seal_commit = b->commits;
    for (uint8_t g = 0; g < n; g++) {
        uint8_t salt[SHOAL__SALT_BYTES];
        randombytes_buf(salt, sizeof salt);
        b->groups[g].len = 0;
        int err = shoal__seal_group(&b->c, b->c.seal_class[g], salt, shoal__pcoll_class,
                                    (void *)(uintptr_t)co, &b->groups[g]);
        if (err)
            return err;
        shoal__seal_commit(b->groups[g].p, b->groups[g].len, b->commits + (size_t)g * 32);
    }
    return SHOAL_OK;
}

/* Encode, sign and store the change being built. */
static int
builder_finish(cctx *cx, builder *b, shoal__stxn *t, shoal__wdoc *wd)
{
    shoal_replica *r = cx->x->r;
    shoal__buf body, env;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    uint8_t cid[SHOAL__ID_BYTES];
    uint64_t pos;
    int err = r->enforce ? builder_seal(b) : SHOAL_OK;
    if (!err && r->enforce)
        err = builder_check(cx, b, wd);
    if (!err)
        err = shoal__change_encode(&b->c, &body);
    if (!err)
        err = shoal__envelope_seal(body.p, body.len, r->pk, r->sk, &env);
    if (!err) {
        shoal__change_id(env.p, env.len, cid);
        err = shoal__stxn_change_put(t, cid, env.p, env.len, r->pk, b->c.seq, wd->meta.last_pos,
                                     &pos);
    }
    for (uint8_t g = 0; !err && g < b->c.nseals; g++)
        err = shoal__stxn_seal_put(t, cid, g, b->groups[g].p, b->groups[g].len);
    if (!err)
        cx->appended = true;
    if (!err)
        err = shoal__wset_applied(&cx->x->w, wd, &b->c, cid, pos, env.len, false);
    /* A revocation this replica publishes: what its target changed past
     * the cut is VOID here from now on (as apply.c does for one received). */
    uint8_t target[SHOAL_KEY_BYTES];
    uint64_t cut;
    if (!err && r->enforce && shoal__change_cut(&b->c, target, &cut))
        err = shoal__wset_revoked(&cx->x->w, target);
    shoal__buf_free(&body);
    shoal__buf_free(&env);
    builder_reset(b);
    return err;
}

static shoal_kind
kind_of(uint8_t op)
{
    switch (op) {
    case SHOAL__OP_SET:
    case SHOAL__OP_UNSET: return SHOAL_K_REGISTER;
    case SHOAL__OP_COUNT: return SHOAL_K_COUNTER;
    default: return SHOAL_K_LIST;
    }
}

static const char *
kind_name(shoal_kind k)
{
    return k == SHOAL_K_REGISTER ? "register" : k == SHOAL_K_COUNTER ? "counter" : "list";
}

/* Turn one edit into an op of the change being built. */
static int
build_edit(cctx *cx, builder *b, shoal__stxn *t, shoal__wdoc *wd, const tedit *e)
{
    const shoal__doc *d = wd->doc;
    if (e->kind == SHOAL__OP_DELDOC) {
        /* Deleting a deleted or never-seen document changes nothing. */
        if (!shoal__doc_exists(d) || shoal__doc_deleted(d))
            return SHOAL_OK;
        int err = b->open ? SHOAL_OK : builder_begin(cx, b, wd);
        shoal__op op;
        memset(&op, 0, sizeof op);
        op.kind = SHOAL__OP_DELDOC;
        if (!err)
            err = builder_add(b, wd, &op);
        if (!err)
            err = builder_finish(cx, b, t, wd);
        return err;
    }
    shoal_kind want = kind_of(e->kind), have;
    int err = shoal__doc_field_kind(d, e->field, e->flen, &have);
    if (err == SHOAL_OK && have != want) {
        snprintf(cx->detail, sizeof cx->detail, "%s/%s field %s is a %s, not a %s", wd->coll,
                 wd->id, e->field, kind_name(have), kind_name(want));
        return SHOAL_EKIND;
    }
    if (err != SHOAL_OK && err != SHOAL_ENOTFOUND)
        return err;
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = e->kind;
    op.field = e->field;
    op.field_len = e->flen;
    op.value = e->v;
    op.delta = e->delta;
    if (want == SHOAL_K_LIST) {
        const shoal__list *l = shoal__doc_list(d, e->field, e->flen);
        size_t len = l ? shoal__list_len(l) : 0;
        bool ins = e->kind == SHOAL__OP_INS;
        if (ins ? e->index > len : e->index >= len) {
            snprintf(cx->detail, sizeof cx->detail, "%s/%s field %s: index %zu, length %zu",
                     wd->coll, wd->id, e->field, e->index, len);
            return SHOAL_ERANGE;
        }
        if (ins && e->index == 0) {
            op.ref.head = true;
        } else {
            shoal__eid eid;
            err = shoal__list_id_at(l, ins ? e->index - 1 : e->index, &eid);
            if (err)
                return err;
            const uint8_t *key = shoal__doc_author_key(d, eid.author);
            if (!key)
                return SHOAL_ECORRUPT;
            if (!b->open) {
                err = builder_begin(cx, b, wd);
                if (err)
                    return err;
            }
            err = builder_author(cx, b, key, &op.ref.author);
            if (err)
                return err;
            op.ref.hlc = eid.hlc;
            op.ref.index = eid.index;
        }
    }
    if (!b->open) {
        err = builder_begin(cx, b, wd);
        if (err)
            return err;
    }
    return builder_add(b, wd, &op);
}

static int
commit_fn(shoal__stxn *t, void *arg)
{
    cctx *cx = arg;
    shoal__wctx *x = cx->x;
    shoal_replica *r = x->r;
    shoal_txn *txn = cx->txn;
    shoal__wctx_begin(x, t);
    x->a.due_ms = r->due_ms;
    cx->detail[0] = 0;
    cx->appended = false;
    cx->have_refs = false;
    int err = shoal__clock_load(t, &x->a.clock);
    if (!err && r->due_ms <= x->a.wall)
        err = shoal__wctx_drain(x, NULL, 0);
    if (err)
        return err;
    uint8_t cid[SHOAL__ID_BYTES];
    err = shoal__stxn_vv_get(t, r->pk, &cx->seq, cid);
    if (err == SHOAL_ENOTFOUND) {
        cx->seq = 0;
        err = SHOAL_OK;
    }
    /* An evicted own change keeps its seq taken (evict.c). */
    uint64_t floor = 0;
    if (!err)
        err = shoal__seq_floor(t, &floor);
    if (!err && floor > cx->seq)
        cx->seq = floor;
    builder b;
    memset(&b, 0, sizeof b);
    for (size_t di = 0; !err && di < txn->ndocs; di++) {
        const tdoc *td = &txn->docs[di];
        shoal__wdoc *wd;
        err = shoal__wset_get(&x->w, td->coll, td->clen, td->id, td->idlen, &wd);
        for (size_t ei = td->first; !err && ei != SIZE_MAX; ei = txn->edits[ei].next)
            err = build_edit(cx, &b, t, wd, &txn->edits[ei]);
        if (!err && b.open)
            err = builder_finish(cx, &b, t, wd);
        builder_reset(&b);
    }
    builder_free(&b);
    if (!err)
        err = shoal__wset_flush(&x->w);
    /* The clock is derived from meta "clock" and the last change's HLC
     * (clock.c); after the drain above only our ticks moved it, and the
     * last tick stamped the change appended last, so with a change
     * appended there is nothing to store (and nothing to re-derive). */
    if (!err && !cx->appended)
        err = shoal__clock_store(t, x->a.clock);
    return err;
}

shoal_err
shoal_txn_commit(shoal_txn *txn)
{
    assert(txn);
    shoal_replica *r = txn->r;
    pthread_mutex_lock(&r->mu);
    shoal__wctx x;
    shoal__wctx_init(&x, r);
    cctx cx = { .x = &x, .txn = txn, .authz = x.a.authz }; /* the replica's */
    int err = shoal__wctx_write(&x, commit_fn, &cx);
    if (cx.authz != r->authz) /* made here when the replica has none */
        shoal__authz_cache_free(cx.authz);
    if (err)
        shoal__fail(r, err, "commit%s%s", cx.detail[0] ? ": " : "", cx.detail);
    pthread_mutex_unlock(&r->mu);
    txn_free(txn);
    if (!err)
        shoal__net_notify(r); /* live push to connected peers */
    return (shoal_err)err;
}
