/*
 * core/authz.c - the write check of a change against what a store holds:
 * the authority objects its auth item names, the admin chain behind an
 * `_auth` change, and its document over the closure of its deps
 * (docs/permissions.md).  The rules themselves are crdt/authz.c's; this
 * file finds their inputs through the apply store (apply.h), so the same
 * code serves every store.
 *
 * Every input is named by the change itself (ids in auth and deps), so the
 * verdict does not depend on what else the store holds or when it came:
 * what is not held yet makes the change wait (PEND), as a missing dep does.
 */
#include <stdio.h>
#include <string.h>

#include "apply.h"
#include "core.h"

/* A decoded `_auth` object, cached by the id of the change that wrote it. */
typedef struct aobj {
    int kind; /* SHOAL__AUTH_*; 0: the change carries no object */
    uint8_t author[SHOAL_KEY_BYTES];
    uint8_t *env; /* owned copy: the objects point into it */
    shoal__change c;
    shoal__policy *policy;
    shoal__cert cert;
    shoal__grant grant;
    shoal__revoke rv;
} aobj;

struct shoal__authz_cache {
    shoal__map objs; /* cid -> aobj (Owned) */
};

static void
aobj_free(void *v)
{
    aobj *o = v;
    if (!o)
        return;
    shoal__policy_free(o->policy);
    shoal__cert_clear(&o->cert);
    shoal__change_clear(&o->c);
    shoal__free(o->env);
    shoal__free(o);
}

int
shoal__authz_cache_new(shoal__authz_cache **out)
{
    *out = shoal__calloc(1, sizeof **out);
    if (!*out)
        return SHOAL_ENOMEM;
    shoal__map_init(&(*out)->objs);
    return SHOAL_OK;
}

void
shoal__authz_cache_trim(shoal__authz_cache *k, size_t max)
{
    if (k && k->objs.n > max)
        shoal__map_clear(&k->objs, aobj_free);
}

void
shoal__authz_cache_free(shoal__authz_cache *k)
{
    if (!k)
        return;
    shoal__map_clear(&k->objs, aobj_free);
    shoal__free(k);
}

/* The object written by held change cid, decoded (Borrowed from the
 * cache).  A change that is not one SET of "object" in `_auth`, or whose
 * object does not decode, gives an object of kind 0. */
static int
load_obj(const shoal__apply_store *s, shoal__authz_cache *k, const uint8_t cid[SHOAL__ID_BYTES],
         const aobj **out)
{
    aobj *o = shoal__map_get(&k->objs, cid, SHOAL__ID_BYTES);
    if (o) {
        *out = o;
        return SHOAL_OK;
    }
    const uint8_t *env;
    size_t len;
    int err = s->get(s->ctx, cid, &env, &len);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
    o = shoal__calloc(1, sizeof *o);
    if (!o)
        return SHOAL_ENOMEM;
    o->env = shoal__malloc(len ? len : 1);
    if (!o->env) {
        shoal__free(o);
        return SHOAL_ENOMEM;
    }
    memcpy(o->env, env, len);
    err = shoal__change_stored(o->env, len, &o->c);
    if (!err) {
        memcpy(o->author, o->c.author, SHOAL_KEY_BYTES);
        const shoal__change *c = &o->c;
        if (c->coll_len == 5 && memcmp(c->coll, "_auth", 5) == 0 && c->nops == 1 &&
            c->ops[0].kind == SHOAL__OP_SET && c->ops[0].value.type == SHOAL_T_BYTES) {
            const uint8_t *p = c->ops[0].value.ptr;
            size_t n = c->ops[0].value.len;
            int kind = shoal__auth_kind(p, n);
            int rc = SHOAL_EPROTO;
            switch (kind) {
            case SHOAL__AUTH_POLICY: rc = shoal__policy_decode(p, n, &o->policy, NULL, 0); break;
            case SHOAL__AUTH_CERT: rc = shoal__cert_decode(p, n, &o->cert); break;
            case SHOAL__AUTH_ADMIN:
                rc = shoal__grant_decode(p, n, &o->grant);
                memcpy(o->grant.issuer, o->author, SHOAL_KEY_BYTES);
                break;
            case SHOAL__AUTH_REVOKE: rc = shoal__revoke_decode(p, n, &o->rv); break;
            default: break;
            }
            if (rc == SHOAL_ENOMEM)
                err = rc;
            else if (rc == SHOAL_OK)
                o->kind = kind;
        }
    }
    if (!err)
        err = shoal__map_put(&k->objs, cid, SHOAL__ID_BYTES, o);
    if (err) {
        aobj_free(o);
        return err;
    }
    *out = o;
    return SHOAL_OK;
}

static int
say(shoal__authz_out *out, int verdict, const char *why)
{
    out->verdict = verdict;
    out->op = -1;
    snprintf(out->why, sizeof out->why, "%s", why);
    return SHOAL_OK;
}

/* A referenced id: held and not rejected (0), not held (PEND) or
 * rejected (REJECT), with the verdict set in out. */
static int
ref_state(const shoal__apply_store *s, const uint8_t *id, shoal__authz_out *out, const char *what,
          bool *stop)
{
    char why[128];
    *stop = true;
    if (!s->has(s->ctx, id)) {
        snprintf(why, sizeof why, "the %s it names is not held", what);
        return say(out, SHOAL__AUTHZ_PEND, why);
    }
    if (s->rejected(s->ctx, id)) {
        snprintf(why, sizeof why, "the %s it names was rejected", what);
        return say(out, SHOAL__AUTHZ_REJECT, why);
    }
    *stop = false;
    return SHOAL_OK;
}

/* The judged change is an `_auth` change. */
static int
judge_auth(const shoal__apply_store *s, shoal__authz_cache *k, const uint8_t *root,
           const shoal__change *c, shoal__authz_out *out)
{
    const shoal__grant *chain[SHOAL__AUTH_MAX_CHAIN];
    size_t n = 0;
    bool stop;
    int err;
    const shoal__change *at = c; /* the change whose grant comes next */
    const shoal__cert *signer = NULL;
    if (c->nauth == 1 && memcmp(c->author, root, SHOAL_KEY_BYTES) != 0) {
        /* a device naming its own certificate (an equivocation proof) */
        if ((err = ref_state(s, c->auth, out, "grant or certificate", &stop)) || stop)
            return err;
        const aobj *o;
        if ((err = load_obj(s, k, c->auth, &o)))
            return err;
        if (o->kind == SHOAL__AUTH_CERT)
            signer = &o->cert;
    }
    while (!signer && memcmp(at->author, root, SHOAL_KEY_BYTES) != 0) {
        if (at->nauth != 1)
            return say(out, SHOAL__AUTHZ_REJECT, "an admin's _auth change names one grant");
        if (n == SHOAL__AUTH_MAX_CHAIN)
            return say(out, SHOAL__AUTHZ_REJECT, "admin chain too long");
        if ((err = ref_state(s, at->auth, out, "admin grant", &stop)) || stop)
            return err;
        const aobj *o;
        if ((err = load_obj(s, k, at->auth, &o)))
            return err;
        if (o->kind != SHOAL__AUTH_ADMIN)
            return say(out, SHOAL__AUTHZ_REJECT, "the grant it names is not an admin grant");
        chain[n++] = &o->grant;
        at = &o->c;
    }
    if (!signer && at == c && c->nauth != 0)
        return say(out, SHOAL__AUTHZ_REJECT, "the root names no grant");
    const shoal__cert *target = NULL;
    if (c->nops == 1 && c->ops[0].kind == SHOAL__OP_SET && c->ops[0].value.type == SHOAL_T_BYTES &&
        shoal__auth_kind(c->ops[0].value.ptr, c->ops[0].value.len) == SHOAL__AUTH_REVOKE) {
        shoal__revoke rv;
        if (shoal__revoke_decode(c->ops[0].value.ptr, c->ops[0].value.len, &rv) == SHOAL_OK &&
            rv.has_cert) {
            if ((err = ref_state(s, rv.cert, out, "certificate", &stop)) || stop)
                return err;
            const aobj *o;
            if ((err = load_obj(s, k, rv.cert, &o)))
                return err;
            if (o->kind != SHOAL__AUTH_CERT)
                return say(out, SHOAL__AUTHZ_REJECT, "the revocation names no certificate");
            target = &o->cert;
        }
    }
    shoal__authz_auth_in in = { c, root, chain, n, target, signer };
    return shoal__authz_check_auth(&in, out);
}

int
shoal__authz_policy(const shoal__apply_store *s, shoal__authz_cache *k,
                    const uint8_t cid[SHOAL__ID_BYTES], const shoal__policy **out)
{
    const aobj *o;
    int err = load_obj(s, k, cid, &o);
    if (err)
        return err;
    if (o->kind != SHOAL__AUTH_POLICY)
        return SHOAL_ENOTFOUND;
    *out = o->policy;
    return SHOAL_OK;
}

/* Per-document monotonicity (docs/permissions.md, "The write check"):
 * the greatest certificate serial and policy version named by c's
 * author's changes in c's document causal past.  A walk back over the
 * deps that stops at each change of the author: that change passed the
 * same check, so nothing of the author below it names more.  It costs
 * the changes of others since the author's last ones (the whole history
 * for an author's first change to a document). */
static int
push_deps(const shoal__apply_store *s, const shoal__change *x, uint8_t **stack, size_t *n,
          size_t *cap)
{
    for (size_t i = 0; i < x->ndeps; i++) {
        uint8_t id[SHOAL__ID_BYTES];
        int err = shoal__apply_dep(s, x->deps + i * SHOAL__ID_BYTES, id);
        if (err == SHOAL_ENOTFOUND)
            continue; /* not held: the change waits, or it is in another past */
        if (err)
            return err;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            uint8_t *p = shoal__realloc(*stack, nc * SHOAL__ID_BYTES);
            if (!p)
                return SHOAL_ENOMEM;
            *stack = p;
            *cap = nc;
        }
        memcpy(*stack + (*n)++ * SHOAL__ID_BYTES, id, SHOAL__ID_BYTES);
    }
    return SHOAL_OK;
}

static int
prior_of(const shoal__apply_store *s, shoal__authz_cache *k, const shoal__change *c,
         uint64_t *serial, uint64_t *version)
{
    *serial = *version = 0;
    uint8_t *stack = NULL;
    size_t n = 0, cap = 0;
    shoal__map seen;
    shoal__map_init(&seen);
    int err = push_deps(s, c, &stack, &n, &cap);
    while (!err && n > 0) {
        uint8_t id[SHOAL__ID_BYTES];
        memcpy(id, stack + --n * SHOAL__ID_BYTES, SHOAL__ID_BYTES);
        if (shoal__map_get(&seen, id, SHOAL__ID_BYTES))
            continue;
        if ((err = shoal__map_put(&seen, id, SHOAL__ID_BYTES, (void *)1)))
            break;
        const uint8_t *env;
        size_t len;
        err = s->get(s->ctx, id, &env, &len);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK;
            continue;
        }
        shoal__change x;
        memset(&x, 0, sizeof x);
        if (!err)
            err = shoal__change_stored(env, len, &x);
        if (err)
            break;
        bool same_doc = x.coll_len == c->coll_len && x.doc_len == c->doc_len &&
                        memcmp(x.coll, c->coll, c->coll_len) == 0 &&
                        memcmp(x.doc, c->doc, c->doc_len) == 0;
        if (same_doc && memcmp(x.author, c->author, SHOAL_KEY_BYTES) == 0) {
            const aobj *o;
            if (x.nauth == 2 && (err = load_obj(s, k, x.auth, &o)) == SHOAL_OK &&
                o->kind == SHOAL__AUTH_CERT && o->cert.serial > *serial)
                *serial = o->cert.serial;
            if (!err && x.nauth == 2 &&
                (err = load_obj(s, k, x.auth + SHOAL__ID_BYTES, &o)) == SHOAL_OK &&
                o->kind == SHOAL__AUTH_POLICY && o->policy->version > *version)
                *version = o->policy->version;
            if (err == SHOAL_ENOTFOUND)
                err = SHOAL_OK;
        } else if (same_doc) {
            err = push_deps(s, &x, &stack, &n, &cap);
        }
        shoal__change_clear(&x);
    }
    shoal__map_clear(&seen, NULL);
    shoal__free(stack);
    return err;
}

int
shoal__authz_judge(const shoal__apply_store *s, shoal__authz_cache *k, const uint8_t *root,
                   const shoal__change *c, const shoal__authz_hint *hint, shoal__authz_out *out)
{
    memset(out, 0, sizeof *out);
    out->op = -1;
    if (c->version != SHOAL__FORMAT_V2)
        return say(out, SHOAL__AUTHZ_REJECT, "a format-1 change names no authority");
    bool stop;
    int err;
    for (size_t i = 0; i < c->ndeps; i++)
        if (s->rejected(s->ctx, c->deps + i * SHOAL__ID_BYTES))
            return say(out, SHOAL__AUTHZ_REJECT, "it depends on a rejected change");
    if (c->coll_len == 5 && memcmp(c->coll, "_auth", 5) == 0)
        return judge_auth(s, k, root, c, out);
    if (c->nauth != 2)
        return say(out, SHOAL__AUTHZ_REJECT, "a change names its certificate and policy");
    const aobj *co, *po;
    if ((err = ref_state(s, c->auth, out, "certificate", &stop)) || stop)
        return err;
    if ((err = ref_state(s, c->auth + SHOAL__ID_BYTES, out, "policy", &stop)) || stop)
        return err;
    if ((err = load_obj(s, k, c->auth, &co)) || (err = load_obj(s, k, c->auth + 32, &po)))
        return err;
    if (co->kind != SHOAL__AUTH_CERT)
        return say(out, SHOAL__AUTHZ_REJECT, "the certificate it names is not one");
    if (po->kind != SHOAL__AUTH_POLICY)
        return say(out, SHOAL__AUTHZ_REJECT, "the policy it names is not one");
    const shoal__doc *pre = NULL;
    bool owned = false;
    if (!hint && (err = s->doc_at(s->ctx, c, &pre, &owned)))
        return err;
    shoal__authz_in in;
    memset(&in, 0, sizeof in);
    in.c = c;
    in.cert = &co->cert;
    in.policy = po->policy;
    in.pre = pre;
    err = prior_of(s, k, c, &in.prior_serial, &in.prior_version);
    if (err) {
        if (owned)
            shoal__doc_free((shoal__doc *)(uintptr_t)pre);
        return err;
    }
    if (hint) {
        in.pre_state = &hint->pre;
        in.post_view = hint->post_view;
        in.post_view_len = hint->post_view_len;
    }
    err = shoal__authz_check(&in, out);
    if (owned)
        shoal__doc_free((shoal__doc *)(uintptr_t)pre);
    return err;
}

/* ---------------------------------------------------------- disclosure */

int
shoal__apply_disclose(const shoal__apply_store *s, shoal__authz_cache **k,
                      const uint8_t cid[SHOAL__ID_BYTES], shoal__change *c)
{
    if (!c->nseals || !s->seal_get || c->nauth < 2 || c->extra || shoal__change_disclosed(c))
        return SHOAL_OK;
    /* The groups held, copied at once (store bytes last until the next
     * call only): their lengths first, then one block. */
    size_t len[SHOAL__MAX_SEALS], total = 0;
    for (uint8_t g = 0; g < c->nseals; g++) {
        const uint8_t *p;
        int err = s->seal_get(s->ctx, cid, g, &p, &len[g]);
        if (err == SHOAL_ENOTFOUND)
            len[g] = 0;
        else if (err)
            return err;
        total += len[g];
    }
    if (total == 0)
        return SHOAL_OK;
    if (!*k) {
        int err = shoal__authz_cache_new(k);
        if (err)
            return err;
    }
    const shoal__policy *pol;
    int err = shoal__authz_policy(s, *k, c->auth + SHOAL__ID_BYTES, &pol);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    const shoal__pcoll *co = shoal__policy_coll(pol, c->coll, c->coll_len);
    uint8_t *block = shoal__malloc(total);
    if (!block)
        return SHOAL_ENOMEM;
    size_t at = 0;
    for (uint8_t g = 0; g < c->nseals && !err; g++) {
        if (!len[g])
            continue;
        const uint8_t *p;
        size_t n;
        err = s->seal_get(s->ctx, cid, g, &p, &n);
        if (!err && n != len[g])
            err = SHOAL_ECORRUPT;
        if (err)
            break;
        memcpy(block + at, p, n);
        int rc = shoal__change_disclose(c, g, block + at, n, shoal__pcoll_class, (void *)co);
        if (rc == SHOAL_ENOMEM)
            err = rc;
        /* EPROTO (does not fit) or EINVAL (not its commitment: a damaged
         * store): the group's ops stay REDACTED */
        at += n;
    }
    if (err || at == 0) {
        shoal__free(block);
        return err;
    }
    shoal__free(c->extra);
    c->extra = block;
    return SHOAL_OK;
}
