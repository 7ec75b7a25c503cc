/*
 * crdt/authz.c - the write check: ADMIT, PEND or REJECT for one change.
 *
 * Pure: the verdict is a function of the change, the certificate and the
 * policy it names, and its document as it stood over the closure of its
 * deps (docs/permissions.md, "The write check").  Nothing here reads a
 * clock, a store or arrival order, so every replica that holds the same
 * inputs reaches the same verdict.
 *
 * A role applies to an op when its `where` holds on the document before
 * the change (G-), after it (G+: the change's ops up to its first DELDOC
 * applied to G-), or both:
 *   - a create (the first change of an epoch) is judged on G+;
 *   - a write to a guard field must be allowed on G- and on G+ (no moving
 *     a document out of one's reach, nor into a place one cannot write);
 *   - every other op, DELDOC included, on G-.
 * A user's rights are the union over its certificate's roles.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crdt.h"

static int
verdict(shoal__authz_out *out, int v, long op, const char *fmt, ...)
{
    out->verdict = v;
    out->op = op;
    out->why[0] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out->why, sizeof out->why, fmt, ap);
        va_end(ap);
    }
    return SHOAL_OK;
}

#define NM(p, n) (int)((n) > 64 ? 64 : (n)), (const char *)(p)

/* ------------------------------------------------------- document views */

/* A document state as the evaluator sees it. */
typedef struct view {
    shoal__buf buf;
    shoal__qfield *fields;
    size_t cap;
    shoal__qdoc q;
} view;

static void
view_free(view *v)
{
    shoal__buf_free(&v->buf);
    shoal__free(v->fields);
}

/* Parse the guard view p[0..n) (NULL: no live document) into v. */
static int
view_parse(view *v, const uint8_t *p, size_t n, const shoal__change *c)
{
    memset(&v->q, 0, sizeof v->q);
    v->q.id = c->doc;
    v->q.id_len = c->doc_len;
    if (!p)
        return SHOAL_OK;
    size_t nf = 0;
    bool alive = false;
    int rc = shoal__qview_parse(p, n, &v->fields, &v->cap, &nf, &alive);
    if (rc)
        return rc == SHOAL_ENOMEM ? rc : SHOAL_EINVAL;
    v->q.fields = v->fields;
    v->q.nfields = nf;
    return SHOAL_OK;
}

/* Fill v from the guards of d (NULL: a document no change has touched):
 * a where sees nothing else, and a long list outside the guards costs
 * nothing. */
static int
view_of(view *v, const shoal__doc *d, const shoal__fset *guards, const shoal__change *c)
{
    v->buf.len = 0;
    if (!d)
        return view_parse(v, NULL, 0, c);
    int rc = shoal__doc_encode_qview_only(d, guards, &v->buf);
    if (rc)
        return rc;
    rc = view_parse(v, v->buf.p, v->buf.len, c);
    return rc == SHOAL_EINVAL ? SHOAL_ECORRUPT : rc;
}

/* d with ops [0, to) of c applied, in *out (owned). */
static int
doc_after(const shoal__doc *d, const shoal__change *c, size_t to, shoal__doc **out)
{
    *out = NULL;
    shoal__doc *n = NULL;
    if (d) {
        shoal__buf b;
        shoal__buf_init(&b);
        int rc = shoal__doc_encode_full(d, &b);
        if (!rc)
            rc = shoal__doc_decode_full(b.p, b.len, &n);
        shoal__buf_free(&b);
        if (rc)
            return rc == SHOAL_ENOMEM ? rc : SHOAL_ECORRUPT;
    } else if (!(n = shoal__doc_new())) {
        return SHOAL_ENOMEM;
    }
    int rc = shoal__doc_apply(n, c, 0, to);
    if (rc) {
        shoal__doc_free(n);
        return rc;
    }
    *out = n;
    return SHOAL_OK;
}

/* ---------------------------------------------------------------- roles */

/* One certificate role that has a rule for the change's collection, with
 * where it applies. */
typedef struct arole {
    const shoal__prole *role;
    const shoal__prule *rule;
    bool pre, post; /* its where holds on G- / on G+ */
} arole;

/* Values of the where's $user parameters from the certificate; false if
 * one is missing (the role then applies nowhere: an absent attribute never
 * stands for null, which would match documents without the guard). */
static bool
bind_user(const shoal__query *q, const shoal__cert *cert, shoal_value *pv)
{
    size_t np = shoal__query_nparams(q);
    for (size_t i = 0; i < np; i++) {
        const char *name = shoal__query_param(q, i); /* "$user.NAME" */
        const char *a = name + 6;
        memset(&pv[i], 0, sizeof pv[i]);
        if (strcmp(a, "id") == 0) {
            pv[i].type = SHOAL_T_STR;
            pv[i].ptr = cert->user.p;
            pv[i].len = cert->user.n;
            continue;
        }
        const shoal_value *v = shoal__cert_attr(cert, (const uint8_t *)a, strlen(a));
        if (!v)
            return false;
        pv[i] = *v;
    }
    return true;
}

static int
holds(const shoal__prule *ru, const shoal_value *pv, const view *v)
{
    /* Guards are registers or lists of scalars, so a full view never asks
     * for more; a NEEDLIST answer counts as "does not hold". */
    return shoal__query_eval_with(ru->where, pv, &v->q) == 1;
}

/* Whether some applying role grants writing field f: on G- (pre), G+
 * (post), or both. */
static bool
may_write(const arole *ar, size_t n, const uint8_t *f, size_t fl, bool pre, bool post)
{
    bool ok_pre = !pre, ok_post = !post;
    for (size_t i = 0; i < n; i++) {
        if (!shoal__fset_has(&ar[i].rule->write, f, fl))
            continue;
        ok_pre = ok_pre || ar[i].pre;
        ok_post = ok_post || ar[i].post;
    }
    return ok_pre && ok_post;
}

static void
role_list(const arole *ar, size_t n, char *out, size_t len)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && k + 1 < len; i++)
        k += (size_t)snprintf(out + k, len - k, "%s%.*s", i ? ", " : "",
                              NM(ar[i].role->name.p, ar[i].role->name.n));
    if (n == 0)
        snprintf(out, len, "none with a rule for this collection");
}

/* ---------------------------------------------------------------- check */

int
shoal__authz_guard_view(const shoal__policy *p, const uint8_t *coll, size_t clen,
                        const shoal__doc *d, shoal__buf *out)
{
    static const shoal__fset none = { SHOAL__FS_ONLY, 0, NULL };
    const shoal__pcoll *co = shoal__policy_coll(p, coll, clen);
    return shoal__doc_encode_qview_only(d, co ? &co->guard : &none, out);
}

static bool
is_guard(const shoal__pcoll *co, const uint8_t *f, size_t n)
{
    return co && shoal__fset_has(&co->guard, f, n);
}

/* The sealing rules (docs/permissions.md "Sealed fields"): under the
 * policy the change names, every op that carries a value on a restricted
 * field is sealed, no other op is, and the seals list exactly the classes
 * of the sealed ops.  A verdict (REJECT) or SHOAL_OK to go on. */
static int
check_seals(const shoal__change *c, const shoal__policy *pol, const shoal__pcoll *co,
            shoal__authz_out *out, bool *bad)
{
    bool want[SHOAL__MAX_SEALS + 1];
    memset(want, 0, sizeof want);
    *bad = true;
    for (size_t i = 0; i < c->nops; i++) {
        const shoal__op *op = &c->ops[i];
        if (op->kind == SHOAL__OP_DELDOC || op->kind == SHOAL__OP_DEL)
            continue;
        uint8_t cls = shoal__pcoll_class(op->field, op->field_len, (void *)(uintptr_t)co);
        if (op->sealed != (cls != 0))
            return verdict(out, SHOAL__AUTHZ_REJECT, (long)i,
                           cls ? "field \"%.*s\" is restricted under policy version %llu: its "
                                 "ops must be sealed"
                               : "field \"%.*s\" is in clear under policy version %llu: its "
                                 "ops may not be sealed",
                           NM(op->field, op->field_len), (unsigned long long)pol->version);
        want[cls] = true;
    }
    size_t k = 0;
    bool exact = true;
    for (uint32_t cls = 1; cls <= SHOAL__MAX_SEALS && exact; cls++)
        if (want[cls])
            exact = k < c->nseals && c->seal_class[k++] == cls;
    exact = exact && k == c->nseals;
    if (!exact)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "its seals do not list exactly the read classes of its sealed ops");
    *bad = false;
    return SHOAL_OK;
}

int
shoal__authz_check(const shoal__authz_in *in, shoal__authz_out *out)
{
    const shoal__change *c = in->c;
    const shoal__cert *cert = in->cert;
    const shoal__policy *pol = in->policy;
    if (!cert)
        return verdict(out, SHOAL__AUTHZ_PEND, -1, "the certificate it names is not held");
    if (!pol)
        return verdict(out, SHOAL__AUTHZ_PEND, -1, "the policy it names is not held");
    if (c->coll_len == 5 && memcmp(c->coll, "_auth", 5) == 0)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1, "_auth is written under its own rules");
    if (memcmp(cert->subject, c->author, 32) != 0)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "the certificate it names belongs to another key");
    if (c->hlc < cert->not_before)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "the certificate is not yet valid at the change's time");
    if (c->hlc > cert->not_after)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "the certificate has expired at the change's time");
    if (pol->version < cert->policy_floor)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "policy version %llu is below the certificate's floor %llu",
                       (unsigned long long)pol->version, (unsigned long long)cert->policy_floor);
    if (cert->serial < in->prior_serial || pol->version < in->prior_version)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "it names an older certificate or policy than an earlier change of its "
                       "author to this document");

    const shoal__pcoll *co = shoal__policy_coll(pol, c->coll, c->coll_len);
    bool bad;
    int src = check_seals(c, pol, co, out, &bad);
    if (bad)
        return src;
    arole ar[SHOAL__AUTH_MAX_NAMES];
    size_t nar = 0;
    for (uint32_t i = 0; i < cert->nroles; i++) {
        const shoal__prole *ro = shoal__policy_role(pol, cert->roles[i].p, cert->roles[i].n);
        const shoal__prule *ru = ro ? shoal__prole_rule(ro, c->coll, c->coll_len) : NULL;
        if (!ru)
            continue;
        memset(&ar[nar], 0, sizeof ar[nar]);
        ar[nar].role = ro;
        ar[nar].rule = ru;
        nar++;
    }
    char roles[128];
    role_list(ar, nar, roles, sizeof roles);
    if (nar == 0)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                       "no role of the certificate has a rule for collection \"%.*s\"",
                       NM(c->coll, c->coll_len));

    /* What kind of change: a create (first of an epoch), and whether it
     * resets a live epoch (an implicit delete). */
    const shoal__authz_state *ps = in->pre_state;
    const shoal__doc *pre = !ps && in->pre && shoal__doc_exists(in->pre) ? in->pre : NULL;
    bool pre_exists = ps ? ps->exists : pre != NULL;
    bool pre_alive = ps ? ps->exists && !ps->deleted : pre && !shoal__doc_deleted(pre);
    uint64_t pre_epoch = ps ? ps->epoch : pre ? shoal__doc_epoch(pre) : 0;
    bool create = !pre_exists || c->epoch > pre_epoch;
    bool reset = pre_alive && c->epoch > pre_epoch;
    size_t upto = c->nops; /* ops before the first DELDOC */
    bool guard_op = false;
    for (size_t i = 0; i < c->nops; i++) {
        const shoal__op *op = &c->ops[i];
        if (op->kind == SHOAL__OP_DELDOC) {
            if (upto == c->nops)
                upto = i;
            continue;
        }
        guard_op = guard_op || is_guard(co, op->field, op->field_len);
    }

    int rc = SHOAL_OK;
    view vpre, vpost;
    memset(&vpre, 0, sizeof vpre);
    memset(&vpost, 0, sizeof vpost);
    shoal__buf_init(&vpre.buf);
    shoal__buf_init(&vpost.buf);
    shoal__doc *after = NULL;
    if (ps) {
        rc = view_parse(&vpre, pre_alive ? ps->view : NULL, ps->view_len, c);
    } else {
        rc = view_of(&vpre, pre_alive ? pre : NULL, &co->guard, c);
    }
    if (rc)
        goto done;
    const view *post = &vpre;
    if ((create || guard_op) && ps) {
        if (!in->post_view) {
            rc = SHOAL_EINVAL;
            goto done;
        }
        if ((rc = view_parse(&vpost, in->post_view, in->post_view_len, c)))
            goto done;
        post = &vpost;
    } else if (create || guard_op) {
        rc = doc_after(pre, c, upto, &after);
        if (rc == SHOAL_EPROTO) {
            rc = verdict(out, SHOAL__AUTHZ_REJECT, -1, "its ops do not apply (%s)",
                         "malformed references");
            goto done;
        }
        if (rc || (rc = view_of(&vpost, after, &co->guard, c)))
            goto done;
        post = &vpost;
    }
    for (size_t i = 0; i < nar; i++) {
        shoal_value pv[SHOAL__AUTH_MAX_USER_REFS];
        if (!bind_user(ar[i].rule->where, cert, pv))
            continue;
        ar[i].pre = holds(ar[i].rule, pv, &vpre);
        ar[i].post = post == &vpre ? ar[i].pre : holds(ar[i].rule, pv, post);
    }

    if (create) {
        bool ok = false;
        for (size_t i = 0; i < nar && !ok; i++)
            ok = ar[i].rule->create && ar[i].post;
        if (!ok) {
            rc = verdict(out, SHOAL__AUTHZ_REJECT, -1,
                         "no role may create this document in \"%.*s\" (roles: %s)",
                         NM(c->coll, c->coll_len), roles);
            goto done;
        }
    }
    if (reset) {
        bool ok = false;
        for (size_t i = 0; i < nar && !ok; i++)
            ok = ar[i].rule->del && ar[i].pre;
        if (!ok) {
            rc = verdict(out, SHOAL__AUTHZ_REJECT, -1,
                         "it starts a new epoch of a live document, which needs the delete "
                         "right (roles: %s)",
                         roles);
            goto done;
        }
    }
    if (c->nops == 0 && !create) {
        bool ok = false;
        for (size_t i = 0; i < nar && !ok; i++)
            ok = ar[i].pre;
        if (!ok) {
            rc = verdict(out, SHOAL__AUTHZ_REJECT, -1,
                         "no role applies to this document (roles: %s)", roles);
            goto done;
        }
    }
    for (size_t i = 0; i < c->nops; i++) {
        const shoal__op *op = &c->ops[i];
        if (op->kind == SHOAL__OP_DELDOC) {
            bool ok = false;
            for (size_t k = 0; k < nar && !ok; k++)
                ok = ar[k].rule->del && ar[k].pre;
            if (!ok) {
                rc = verdict(out, SHOAL__AUTHZ_REJECT, (long)i,
                             "op %zu: no role may delete this document (roles: %s)", i, roles);
                goto done;
            }
            continue;
        }
        bool g = is_guard(co, op->field, op->field_len);
        bool need_pre = !create, need_post = create || g;
        if (!may_write(ar, nar, op->field, op->field_len, need_pre, need_post)) {
            rc = verdict(out, SHOAL__AUTHZ_REJECT, (long)i,
                         "op %zu: no role may write field \"%.*s\" of this document%s (roles: %s)",
                         i, NM(op->field, op->field_len),
                         g && !create ? " before and after the change" : "", roles);
            goto done;
        }
    }
    rc = verdict(out, SHOAL__AUTHZ_ADMIT, -1, NULL);
done:
    shoal__doc_free(after);
    view_free(&vpre);
    view_free(&vpost);
    return rc;
}

/* ---------------------------------------------------------------- _auth */

/* Insert a register field into f[0..*n), kept sorted by name. */
static void
put_sorted(shoal__qfield *f, size_t *n, const uint8_t *name, size_t len, const shoal_value *v)
{
    size_t at = *n;
    while (at > 0) {
        const shoal__qfield *p = &f[at - 1];
        int c = memcmp(p->name, name, p->name_len < len ? p->name_len : len);
        if (c < 0 || (c == 0 && p->name_len < len))
            break;
        f[at] = f[at - 1];
        at--;
    }
    memset(&f[at], 0, sizeof f[at]);
    f[at].name = name;
    f[at].name_len = len;
    f[at].kind = SHOAL_K_REGISTER;
    f[at].value = *v;
    (*n)++;
}

/* Whether scope holds on a certificate as an admin's scope sees it, once
 * per role: the fields `role`, `user` and its attributes. */
static bool
scope_admits(const shoal__query *scope, const shoal__cert *cert, shoal__qfield *f,
             const uint8_t *doc, size_t doc_len)
{
    for (uint32_t r = 0; r < cert->nroles; r++) {
        size_t n = 0;
        for (uint32_t a = 0; a < cert->nattrs; a++)
            put_sorted(f, &n, cert->attr_names[a].p, cert->attr_names[a].n, &cert->attr_vals[a]);
        shoal_value role = { .type = SHOAL_T_STR,
                             .ptr = cert->roles[r].p,
                             .len = cert->roles[r].n };
        shoal_value user = { .type = SHOAL_T_STR, .ptr = cert->user.p, .len = cert->user.n };
        put_sorted(f, &n, (const uint8_t *)"role", 4, &role);
        put_sorted(f, &n, (const uint8_t *)"user", 4, &user);
        shoal__qdoc q = { doc, doc_len, f, n };
        if (shoal__query_eval(scope, &q) != 1)
            return false;
    }
    return true;
}

/* Every scope of the chain admits cert; *err set on a failure to compile. */
static int
chain_admits(const shoal__authz_auth_in *in, const shoal__cert *cert, bool *ok)
{
    shoal__qfield f[SHOAL__AUTH_MAX_ATTRS + 2];
    *ok = true;
    for (size_t i = 0; i < in->nchain && *ok; i++) {
        shoal__query *q = NULL;
        int rc = shoal__query_parse((const char *)in->chain[i]->scope.p, in->chain[i]->scope.n, &q,
                                    NULL, 0);
        if (rc)
            return rc == SHOAL_ENOMEM ? rc : SHOAL_ECORRUPT; /* decode checked it */
        *ok = scope_admits(q, cert, f, in->c->doc, in->c->doc_len);
        shoal__query_free(q);
    }
    return SHOAL_OK;
}

int
shoal__authz_check_auth(const shoal__authz_auth_in *in, shoal__authz_out *out)
{
    const shoal__change *c = in->c;
    const uint8_t *author = c->author;
    bool root = memcmp(author, in->root, 32) == 0;
    const shoal__cert *sc = in->signer_cert;
    if (sc) {
        /* a device names its certificate: equivocation proofs only */
        if (root || in->nchain)
            return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                           "an _auth change names a grant or a certificate, not both");
        if (memcmp(sc->subject, author, 32) != 0)
            return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                           "the certificate it names is another key's");
        if (c->hlc < sc->not_before || c->hlc > sc->not_after)
            return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                           "the signer's certificate is not valid at the change's time");
        if (c->nops != 1 || c->ops[0].kind != SHOAL__OP_SET ||
            c->ops[0].value.type != SHOAL_T_BYTES ||
            shoal__auth_kind(c->ops[0].value.ptr, c->ops[0].value.len) != SHOAL__AUTH_EQUIV)
            return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                           "a device may publish equivocation proofs only");
    } else if (!root && in->nchain == 0)
        return verdict(out, SHOAL__AUTHZ_PEND, -1, "the signer's admin grant is not held");
    if (in->nchain > SHOAL__AUTH_MAX_CHAIN)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1, "admin chain longer than %d",
                       SHOAL__AUTH_MAX_CHAIN);
    if (root && in->nchain)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1, "the root names no grant");
    /* The chain links the signer to the root, each issuer able to
     * delegate and holding every capability it passed on. */
    for (size_t i = 0; i < in->nchain; i++) {
        const shoal__grant *g = in->chain[i];
        const uint8_t *holder = i == 0 ? author : in->chain[i - 1]->issuer;
        if (memcmp(g->key, holder, 32) != 0)
            return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                           "admin chain: grant %zu is for another key", i);
        if (i > 0 && (!(g->caps & SHOAL__CAP_DELEGATE) || (in->chain[i - 1]->caps & ~g->caps)))
            return verdict(out, SHOAL__AUTHZ_REJECT, -1,
                           "admin chain: grant %zu was issued beyond its issuer's rights", i - 1);
    }
    if (in->nchain && memcmp(in->chain[in->nchain - 1]->issuer, in->root, 32) != 0)
        return verdict(out, SHOAL__AUTHZ_REJECT, -1, "admin chain does not reach the root");
    uint32_t caps = root ? SHOAL__CAP_ALL : sc ? 0 : in->chain[0]->caps;

    /* Shape: one SET of "object" to a bytes value, in epoch 0. */
    if (c->nops != 1 || c->ops[0].kind != SHOAL__OP_SET || c->nseals || c->ops[0].field_len != 6 ||
        memcmp(c->ops[0].field, "object", 6) != 0 || c->ops[0].value.type != SHOAL_T_BYTES ||
        c->epoch != 0)
        return verdict(out, SHOAL__AUTHZ_REJECT, 0,
                       "an _auth change is one SET of the field \"object\" to bytes");
    const uint8_t *ob = c->ops[0].value.ptr;
    size_t on = c->ops[0].value.len;
    int kind = shoal__auth_kind(ob, on);
    if (kind < SHOAL__AUTH_POLICY || kind > SHOAL__AUTH_KIND_MAX)
        return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the object's kind is unknown");

    char want[SHOAL__AUTH_DOCID_MAX];
    uint8_t key[32];
    memset(key, 0, sizeof key);
    int rc = SHOAL_OK;
    switch (kind) {
    case SHOAL__AUTH_POLICY: {
        shoal__policy *p = NULL;
        char err[200];
        rc = shoal__policy_decode(ob, on, &p, err, sizeof err);
        shoal__policy_free(p);
        if (rc == SHOAL_ENOMEM)
            return rc;
        if (rc == SHOAL_EVERSION)
            return verdict(out, SHOAL__AUTHZ_PEND, 0, "%s", err);
        if (rc)
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "%s", err);
        if (!(caps & SHOAL__CAP_POLICY))
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the signer may not publish policies");
        break;
    }
    case SHOAL__AUTH_CERT: {
        shoal__cert ce;
        if (shoal__cert_decode(ob, on, &ce))
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the certificate does not decode");
        memcpy(key, ce.subject, 32);
        const char *why = NULL;
        bool ok = true;
        if (!(caps & SHOAL__CAP_ISSUE))
            why = "the signer may not issue certificates";
        else if (memcmp(ce.subject, author, 32) == 0)
            why = "a key may not certify itself";
        else if ((rc = chain_admits(in, &ce, &ok)) == SHOAL_OK && !ok)
            why = "the certificate is outside the signer's scope";
        else if (rc == SHOAL_OK) {
            uint64_t life = SHOAL__HLC_MS(ce.not_after) - SHOAL__HLC_MS(ce.not_before);
            for (size_t i = 0; i < in->nchain; i++)
                if (in->chain[i]->max_life_ms && life > in->chain[i]->max_life_ms)
                    why = "the certificate lives longer than the signer may issue";
        }
        shoal__cert_clear(&ce);
        if (rc)
            return rc;
        if (why)
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "%s", why);
        break;
    }
    case SHOAL__AUTH_ADMIN: {
        shoal__grant g;
        rc = shoal__grant_decode(ob, on, &g);
        if (rc == SHOAL_ENOMEM)
            return rc;
        if (rc)
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the admin grant does not decode");
        memcpy(key, g.key, 32);
        if (!(caps & SHOAL__CAP_DELEGATE))
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the signer may not grant admin rights");
        if (g.caps & ~caps)
            return verdict(out, SHOAL__AUTHZ_REJECT, 0,
                           "the grant gives capabilities the signer does not hold");
        if (memcmp(g.key, author, 32) == 0)
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "a key may not grant itself");
        break;
    }
    case SHOAL__AUTH_EQUIV: {
        /* self-verifying: both envelopes signed by the target, one seq */
        shoal__equiv eq;
        if (shoal__equiv_decode(ob, on, &eq))
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the equivocation proof does not verify");
        memcpy(key, eq.target, 32);
        break;
    }
    default: { /* SHOAL__AUTH_REVOKE */
        shoal__revoke v;
        if (shoal__revoke_decode(ob, on, &v))
            return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the revocation does not decode");
        memcpy(key, v.target, 32);
        if (!root) {
            if (!(caps & SHOAL__CAP_REVOKE))
                return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the signer may not revoke keys");
            if (!v.has_cert)
                return verdict(out, SHOAL__AUTHZ_REJECT, 0,
                               "an admin's revocation names the target's certificate");
            if (!in->target_cert)
                return verdict(out, SHOAL__AUTHZ_PEND, 0,
                               "the certificate the revocation names is not held");
            if (memcmp(in->target_cert->subject, v.target, 32) != 0)
                return verdict(out, SHOAL__AUTHZ_REJECT, 0,
                               "the certificate the revocation names is another key's");
            bool ok = true;
            if ((rc = chain_admits(in, in->target_cert, &ok)))
                return rc;
            if (!ok)
                return verdict(out, SHOAL__AUTHZ_REJECT, 0,
                               "the target's certificate is outside the signer's scope");
        }
        break;
    }
    }
    shoal__auth_docid(kind, key, want);
    if (c->doc_len != strlen(want) || memcmp(c->doc, want, c->doc_len) != 0)
        return verdict(out, SHOAL__AUTHZ_REJECT, 0, "the object belongs in _auth document \"%s\"",
                       want);
    return verdict(out, SHOAL__AUTHZ_ADMIT, -1, NULL);
}

/* ----------------------------------------------------------------- reads */

/* A rule that lets its role read whole documents, every field: what a
 * full replica needs (it is sent every sealed group). */
static bool
reads_whole(const shoal__prule *ru)
{
    return ru->read.mode == SHOAL__FS_ALL || (ru->read.mode == SHOAL__FS_EXCEPT && ru->read.n == 0);
}

int
shoal__authz_read_rules(const shoal__policy *p, const shoal__cert *cert, const uint8_t *coll,
                        size_t clen, const shoal__qdoc *d, const shoal__prule **rules, size_t *n)
{
    bool needlist = false;
    size_t k = 0;
    for (uint32_t i = 0; i < cert->nroles; i++) {
        const shoal__prole *ro = shoal__policy_role(p, cert->roles[i].p, cert->roles[i].n);
        const shoal__prule *ru = ro ? shoal__prole_rule(ro, coll, clen) : NULL;
        if (!ru || !shoal__prule_reads(ru))
            continue;
        shoal_value pv[SHOAL__AUTH_MAX_USER_REFS];
        if (!bind_user(ru->where, cert, pv))
            continue;
        int m = shoal__query_eval_with(ru->where, pv, d);
        if (m == 1 && rules && k < SHOAL__AUTH_MAX_NAMES)
            rules[k] = ru;
        k += m == 1;
        needlist = needlist || m == SHOAL__Q_NEEDLIST;
    }
    if (n)
        *n = k;
    return needlist ? SHOAL__Q_NEEDLIST : k > 0;
}

int
shoal__authz_reads(const shoal__policy *p, const shoal__cert *cert, const uint8_t *coll,
                   size_t clen, const shoal__qdoc *d)
{
    return shoal__authz_read_rules(p, cert, coll, clen, d, NULL, NULL);
}

bool
shoal__authz_rules_read(const shoal__prule *const *rules, size_t n, const uint8_t *field,
                        size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (shoal__fset_has(&rules[i]->read, field, len))
            return true;
    return false;
}

bool
shoal__authz_reads_all(const shoal__policy *p, const shoal__cert *cert)
{
    for (uint32_t k = 0; k < p->ncolls; k++) {
        const shoal__name *cn = &p->colls[k].name;
        bool ok = false;
        for (uint32_t i = 0; i < cert->nroles && !ok; i++) {
            const shoal__prole *ro = shoal__policy_role(p, cert->roles[i].p, cert->roles[i].n);
            const shoal__prule *ru = ro ? shoal__prole_rule(ro, cn->p, cn->n) : NULL;
            ok = ru && reads_whole(ru) && shoal__query_always(ru->where);
        }
        if (!ok)
            return false;
    }
    return true;
}
