/*
 * core/authapi.c - the public permissions API (include/shoal.h,
 * docs/permissions.md): the root option, publishing a policy, issuing
 * certificates and admin grants, and a JSON picture of `_auth`.
 *
 * Each publication is one ordinary write of an object to its `_auth`
 * document, through shoal_txn_commit, so it passes the same built-in
 * rules every replica applies to it (SHOAL_EPERM when this key may not).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core.h"

shoal_err
shoal_options_set_root(shoal_options *o, const uint8_t *root_key)
{
    if (!o)
        return SHOAL_EINVAL;
    shoal__options_set_root(o, root_key);
    return SHOAL_OK;
}

shoal_err
shoal_replica_root(shoal_replica *r, uint8_t *out)
{
    if (!r || !out)
        return SHOAL_EINVAL;
    if (!r->enforce)
        return SHOAL_ENOTFOUND;
    memcpy(out, r->root, SHOAL_KEY_BYTES);
    return SHOAL_OK;
}

/* ------------------------------------------------------------- reading */

/* The newest object of kind about key, as this replica holds it. */
typedef struct pick_ctx {
    shoal_replica *r;
    int kind;
    const uint8_t *key;
    uint8_t cid[SHOAL__ID_BYTES];
    shoal__buf obj; /* the object's bytes */
    uint8_t issuer[SHOAL_KEY_BYTES];
} pick_ctx;

int
shoal__auth_newest(shoal__wset *w, int kind, const uint8_t *key, uint8_t cid[SHOAL__ID_BYTES],
                   shoal__change *ch)
{
    int err = shoal__wset_auth_pick(w, kind, key, cid);
    shoal__sval env;
    if (!err)
        err = shoal__stxn_change_get(w->t, cid, &env);
    if (!err)
        err = shoal__change_stored(env.p, env.len, ch);
    return err;
}

static int
pick_fn(shoal__stxn *t, void *arg)
{
    pick_ctx *c = arg;
    shoal__wset w;
    shoal__wset_init(&w, c->r);
    shoal__wset_reset(&w, t);
    shoal__change ch;
    int err = shoal__auth_newest(&w, c->kind, c->key, c->cid, &ch);
    if (!err) {
        memcpy(c->issuer, ch.author, SHOAL_KEY_BYTES);
        c->obj.len = 0;
        err = shoal__buf_append(&c->obj, ch.ops[0].value.ptr, ch.ops[0].value.len);
        shoal__change_clear(&ch);
    }
    shoal__wset_free(&w);
    return err;
}

/* Caller holds r->mu. */
static int
pick(shoal_replica *r, int kind, const uint8_t *key, pick_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->r = r;
    c->kind = kind;
    c->key = key;
    shoal__buf_init(&c->obj);
    return shoal__store_read(r->store, pick_fn, c);
}

/* --------------------------------------------------------------- writes */

/* Write obj to _auth/docid as this replica's key (r->mu not held). */
static int
publish(shoal_replica *r, const char *docid, const shoal__buf *obj)
{
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(r, &t);
    shoal_value v = { .type = SHOAL_T_BYTES, .ptr = obj->p, .len = obj->len };
    if (!err)
        err = shoal_txn_set(t, "_auth", docid, "object", &v);
    if (!err)
        return shoal_txn_commit(t);
    shoal_txn_abort(t);
    return err;
}

static int
open_mode(shoal_replica *r)
{
    return shoal__fail(r, SHOAL_EINVAL,
                       "the replica enforces no permissions (it was created without a root key)");
}

/* Lock r; in open mode, unlock again and refuse. */
static int
enter_enforcing(shoal_replica *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->enforce)
        return SHOAL_OK;
    int e = open_mode(r);
    pthread_mutex_unlock(&r->mu);
    return e;
}

shoal_err
shoal_auth_policy(shoal_replica *r, const char *json, size_t len, uint64_t *version)
{
    if (!r || (!json && len))
        return SHOAL_EINVAL;
    int ee = enter_enforcing(r);
    if (ee)
        return (shoal_err)ee;
    /* The next version after the newest held, naming it. */
    pick_ctx c;
    int err = pick(r, SHOAL__AUTH_POLICY, NULL, &c);
    uint64_t v = 1;
    bool has_prev = err == SHOAL_OK;
    if (has_prev) {
        shoal__policy *p = NULL;
        if (shoal__policy_decode(c.obj.p, c.obj.len, &p, NULL, 0) == SHOAL_OK)
            v = p->version + 1;
        shoal__policy_free(p);
    }
    if (err == SHOAL_ENOTFOUND)
        err = SHOAL_OK;
    shoal__buf obj;
    shoal__buf_init(&obj);
    char msg[256] = "";
    if (!err) {
        err = shoal__policy_from_json(json ? json : "", len, v, has_prev ? c.cid : NULL, &obj, msg,
                                      sizeof msg);
        if (err)
            shoal__fail(r, err, "%s", msg);
    }
    shoal__buf_free(&c.obj);
    pthread_mutex_unlock(&r->mu);
    if (!err)
        err = publish(r, "policy", &obj);
    if (!err && version)
        *version = v;
    shoal__buf_free(&obj);
    return (shoal_err)err;
}

/* An attribute of a certificate to issue; sorted by name_cmp, which reads
 * the name at its start. */
typedef struct attr_pair {
    shoal__name name;
    shoal_value value;
} attr_pair;

static int
name_cmp(const void *a, const void *b)
{
    const shoal__name *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    return c ? c : x->n < y->n ? -1 : x->n > y->n;
}

shoal_err
shoal_auth_grant(shoal_replica *r, const uint8_t *key, const shoal_cert_spec *spec)
{
    if (!r || !key || !spec || !spec->user || !spec->nroles || !spec->roles ||
        spec->nroles > SHOAL__AUTH_MAX_NAMES || spec->nattrs > SHOAL__AUTH_MAX_ATTRS ||
        (spec->nattrs && (!spec->attr_names || !spec->attr_values)))
        return SHOAL_EINVAL;
    for (size_t i = 0; i < spec->nroles; i++)
        if (!spec->roles[i])
            return SHOAL_EINVAL;
    for (size_t i = 0; i < spec->nattrs; i++)
        if (!spec->attr_names[i])
            return SHOAL_EINVAL;
    int ee = enter_enforcing(r);
    if (ee)
        return (shoal_err)ee;
    shoal__cert ce;
    memset(&ce, 0, sizeof ce);
    memcpy(ce.subject, key, SHOAL_KEY_BYTES);
    ce.user = (shoal__name){ (const uint8_t *)spec->user, strlen(spec->user) };
    shoal__name roles[SHOAL__AUTH_MAX_NAMES], an[SHOAL__AUTH_MAX_ATTRS];
    shoal_value av[SHOAL__AUTH_MAX_ATTRS];
    for (size_t i = 0; i < spec->nroles; i++)
        roles[i] = (shoal__name){ (const uint8_t *)spec->roles[i], strlen(spec->roles[i]) };
    qsort(roles, spec->nroles, sizeof roles[0], name_cmp);
    /* attributes sorted by name, each value beside its name */
    attr_pair pairs[SHOAL__AUTH_MAX_ATTRS];
    for (size_t i = 0; i < spec->nattrs; i++) {
        pairs[i].name =
            (shoal__name){ (const uint8_t *)spec->attr_names[i], strlen(spec->attr_names[i]) };
        pairs[i].value = spec->attr_values[i];
    }
    qsort(pairs, spec->nattrs, sizeof pairs[0], name_cmp); /* the name comes first */
    for (size_t i = 0; i < spec->nattrs; i++) {
        an[i] = pairs[i].name;
        av[i] = pairs[i].value;
    }
    ce.nroles = (uint32_t)spec->nroles;
    ce.roles = roles;
    ce.nattrs = (uint32_t)spec->nattrs;
    ce.attr_names = an;
    ce.attr_vals = av;
    /* Valid from now for life_ms (0: without end), the next serial, the
     * current policy as its floor. */
    uint64_t now = shoal__hlc_make(shoal__wall_ms(r), 0);
    ce.not_before = now;
    ce.not_after =
        spec->life_ms ? shoal__hlc_make(shoal__wall_ms(r) + spec->life_ms, 0xffff) : UINT64_MAX;
    pick_ctx c;
    int err = pick(r, SHOAL__AUTH_CERT, key, &c);
    ce.serial = 1;
    if (!err) {
        shoal__cert old;
        if (shoal__cert_decode(c.obj.p, c.obj.len, &old) == SHOAL_OK) {
            ce.serial = old.serial + 1;
            shoal__cert_clear(&old);
        }
        ce.has_prev = true;
        memcpy(ce.prev, c.cid, SHOAL__ID_BYTES);
    }
    shoal__buf_free(&c.obj);
    if (err == SHOAL_ENOTFOUND)
        err = pick(r, SHOAL__AUTH_POLICY, NULL, &c);
    else if (!err)
        err = pick(r, SHOAL__AUTH_POLICY, NULL, &c);
    if (!err) {
        shoal__policy *p = NULL;
        if (shoal__policy_decode(c.obj.p, c.obj.len, &p, NULL, 0) == SHOAL_OK)
            ce.policy_floor = p->version;
        shoal__policy_free(p);
    }
    shoal__buf_free(&c.obj);
    if (err == SHOAL_ENOTFOUND)
        err = shoal__fail(r, SHOAL_EINVAL, "publish a policy before issuing certificates");
    shoal__buf obj;
    shoal__buf_init(&obj);
    if (!err && shoal__cert_encode(&ce, &obj))
        err = shoal__fail(r, SHOAL_EINVAL,
                          "not a valid certificate (roles 1 to %d bytes, no repeated role or "
                          "attribute, attributes not named id, role or user)",
                          SHOAL__AUTH_MAX_ROLE);
    pthread_mutex_unlock(&r->mu);
    char docid[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_CERT, key, docid);
    if (!err)
        err = publish(r, docid, &obj);
    shoal__buf_free(&obj);
    return (shoal_err)err;
}

shoal_err
shoal_auth_admin(shoal_replica *r, const uint8_t *key, uint32_t caps, const char *scope,
                 uint64_t max_life_ms)
{
    if (!r || !key || !caps || (caps & ~(uint32_t)SHOAL__CAP_ALL))
        return SHOAL_EINVAL;
    int ee = enter_enforcing(r);
    if (ee)
        return (shoal_err)ee;
    shoal__grant g;
    memset(&g, 0, sizeof g);
    memcpy(g.key, key, SHOAL_KEY_BYTES);
    g.caps = caps;
    const char *sc = scope && *scope ? scope : "TRUE";
    g.scope = (shoal__name){ (const uint8_t *)sc, strlen(sc) };
    g.max_life_ms = max_life_ms;
    g.serial = 1;
    pick_ctx c;
    int err = pick(r, SHOAL__AUTH_ADMIN, key, &c);
    if (!err) {
        shoal__grant old;
        if (shoal__grant_decode(c.obj.p, c.obj.len, &old) == SHOAL_OK)
            g.serial = old.serial + 1;
        g.has_prev = true;
        memcpy(g.prev, c.cid, SHOAL__ID_BYTES);
    }
    shoal__buf_free(&c.obj);
    if (err == SHOAL_ENOTFOUND)
        err = SHOAL_OK;
    shoal__buf obj;
    shoal__buf_init(&obj);
    if (!err && shoal__grant_encode(&g, &obj)) {
        char qerr[160];
        shoal__query *q = NULL;
        int qe = shoal__query_parse(sc, strlen(sc), &q, qerr, sizeof qerr);
        shoal__query_free(q);
        err = shoal__fail(r, SHOAL_EINVAL, "scope: %s", qe ? qerr : "a scope takes no :parameters");
    }
    pthread_mutex_unlock(&r->mu);
    char docid[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_ADMIN, key, docid);
    if (!err)
        err = publish(r, docid, &obj);
    shoal__buf_free(&obj);
    return (shoal_err)err;
}

/* The greatest seq of key this replica holds (its vector's entry). */
typedef struct vv_ctx {
    const uint8_t *key;
    uint64_t seq;
} vv_ctx;

static int
vv_fn(shoal__stxn *t, void *arg)
{
    vv_ctx *c = arg;
    uint8_t cid[SHOAL__ID_BYTES];
    int err = shoal__stxn_vv_get(t, c->key, &c->seq, cid);
    return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
}

/* ------------------------------------------------- equivocation proofs */

typedef struct eqp {
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
    uint8_t cid[SHOAL__ID_BYTES]; /* the first version's id */
    shoal__buf env[2];
    size_t nenv;
} eqp;

typedef struct eq_ctx {
    shoal_replica *r;
    eqp *v;
    size_t n, cap;
} eq_ctx;

static void
eq_free(eq_ctx *c)
{
    for (size_t i = 0; i < c->n; i++)
        for (int k = 0; k < 2; k++)
            shoal__buf_free(&c->v[i].env[k]);
    shoal__free(c->v);
    c->v = NULL;
    c->n = c->cap = 0;
}

/* Evidence comes by author, then seq: each author's smallest seq only. */
static int
eq_scan(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
        const shoal__sval *env, void *arg)
{
    eq_ctx *c = arg;
    eqp *last = c->n ? &c->v[c->n - 1] : NULL;
    if (last && memcmp(last->author, author, SHOAL_KEY_BYTES) == 0) {
        if (last->seq != seq || last->nenv == 2)
            return 0;
        return shoal__buf_append(&last->env[last->nenv++], env->p, env->len);
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        eqp *nv = shoal__realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return SHOAL_ENOMEM;
        c->v = nv;
        c->cap = nc;
    }
    eqp *e = &c->v[c->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->author, author, SHOAL_KEY_BYTES);
    e->seq = seq;
    memcpy(e->cid, cid, SHOAL__ID_BYTES);
    shoal__buf_init(&e->env[0]);
    shoal__buf_init(&e->env[1]);
    e->nenv = 1;
    return shoal__buf_append(&e->env[0], env->p, env->len);
}

static int
eq_fn(shoal__stxn *t, void *arg)
{
    eq_ctx *c = arg;
    int err = shoal__stxn_evidence_scan(t, eq_scan, c);
    shoal__wset w;
    shoal__wset_init(&w, c->r);
    shoal__wset_reset(&w, t);
    size_t keep = 0;
    for (size_t i = 0; !err && i < c->n; i++) {
        eqp *e = &c->v[i];
        if (e->nenv == 1) {
            /* the other version is the applied one */
            uint8_t cid[SHOAL__ID_BYTES];
            shoal__sval env;
            int e2 = shoal__stxn_authseq_get(t, e->author, e->seq, cid);
            if (!e2 && memcmp(cid, e->cid, SHOAL__ID_BYTES) != 0 &&
                (e2 = shoal__stxn_change_get(t, cid, &env)) == SHOAL_OK)
                err = shoal__buf_append(&e->env[e->nenv++], env.p, env.len);
            else if (e2 && e2 != SHOAL_ENOTFOUND)
                err = e2;
        }
        uint64_t cut;
        int e3 = err ? SHOAL_OK : shoal__wset_cut(&w, e->author, &cut);
        if (!err && e3 && e3 != SHOAL_ENOTFOUND)
            err = e3;
        bool held = !e3 && cut < e->seq; /* cut at or below seq - 1 already */
        if (!err && e->nenv == 2 && !held) {
            if (keep != i) {
                eqp tmp = c->v[keep];
                c->v[keep] = *e;
                *e = tmp;
            }
            keep++;
        }
    }
    shoal__wset_free(&w);
    for (size_t i = keep; i < c->n; i++)
        for (int k = 0; k < 2; k++)
            shoal__buf_free(&c->v[i].env[k]);
    c->n = keep;
    return err;
}

size_t
shoal__equiv_publish(shoal_replica *r)
{
    if (!r->enforce || shoal__partial(r))
        return 0;
    eq_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, eq_fn, &c);
    pthread_mutex_unlock(&r->mu);
    size_t done = 0;
    for (size_t i = 0; !err && i < c.n; i++) {
        eqp *e = &c.v[i];
        shoal__buf obj;
        shoal__buf_init(&obj);
        char docid[SHOAL__AUTH_DOCID_MAX];
        shoal__auth_docid(SHOAL__AUTH_EQUIV, e->author, docid);
        /* a proof too large for one value stays evidence here */
        if (shoal__equiv_encode(e->env[0].p, e->env[0].len, e->env[1].p, e->env[1].len, &obj) ==
                SHOAL_OK &&
            obj.len <= SHOAL_MAX_VALUE && publish(r, docid, &obj) == SHOAL_OK)
            done++;
        shoal__buf_free(&obj);
    }
    eq_free(&c);
    return done;
}

shoal_err
shoal_auth_revoke(shoal_replica *r, const uint8_t *key, uint64_t cut, const char *reason,
                  uint64_t *cut_out)
{
    if (!r || !key)
        return SHOAL_EINVAL;
    const char *why = reason ? reason : "";
    if (strlen(why) > SHOAL__AUTH_MAX_REASON) {
        pthread_mutex_lock(&r->mu);
        int e = shoal__fail(r, SHOAL_EINVAL, "revoke: a reason of at most %d bytes",
                            (int)SHOAL__AUTH_MAX_REASON);
        pthread_mutex_unlock(&r->mu);
        return (shoal_err)e;
    }
    int ee = enter_enforcing(r);
    if (ee)
        return (shoal_err)ee;
    shoal__revoke rv;
    memset(&rv, 0, sizeof rv);
    memcpy(rv.target, key, SHOAL_KEY_BYTES);
    rv.reason = (shoal__name){ (const uint8_t *)why, strlen(why) };
    int err = SHOAL_OK;
    if (cut == UINT64_MAX) {
        /* what we hold of the key: its changes up to there stand */
        vv_ctx vc = { key, 0 };
        err = shoal__store_read(r->store, vv_fn, &vc);
        cut = vc.seq;
    }
    rv.cut = cut;
    pick_ctx c;
    if (!err) {
        err = pick(r, SHOAL__AUTH_CERT, key, &c);
        if (!err) {
            rv.has_cert = true;
            memcpy(rv.cert, c.cid, SHOAL__ID_BYTES);
        }
        shoal__buf_free(&c.obj);
        if (err == SHOAL_ENOTFOUND)
            err = SHOAL_OK; /* the root may revoke a key it never certified */
    }
    shoal__buf obj;
    shoal__buf_init(&obj);
    if (!err)
        err = shoal__revoke_encode(&rv, &obj);
    pthread_mutex_unlock(&r->mu);
    char docid[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_REVOKE, key, docid);
    if (!err)
        err = publish(r, docid, &obj);
    if (!err && cut_out)
        *cut_out = cut;
    shoal__buf_free(&obj);
    return (shoal_err)err;
}

/* ----------------------------------------------------------------- show */

static json_t *
hexj(const uint8_t *p, size_t n)
{
    char h[2 * SHOAL__ID_BYTES + 1];
    shoal__hex(h, p, n);
    return json_string(h);
}

static json_t *
names_j(const shoal__name *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_stringn((const char *)v[i].p, v[i].n));
    return a;
}

static json_t *
value_j(const shoal_value *v)
{
    switch (v->type) {
    case SHOAL_T_NIL: return json_null();
    case SHOAL_T_BOOL: return json_boolean(v->b);
    case SHOAL_T_INT: return json_integer(v->i);
    case SHOAL_T_DOUBLE: return json_real(v->d);
    case SHOAL_T_STR: return json_stringn((const char *)v->ptr, v->len);
    default: return hexj(v->ptr, v->len); /* bytes, as hex */
    }
}

/* Walk the newest object of every certificate and admin document of
 * `_auth`, in one read snapshot: fn(kind, key, id of its change, the
 * change, arg); non-zero stops and is returned. */
typedef int (*auth_each_fn)(int kind, const uint8_t key[SHOAL_KEY_BYTES],
                            const uint8_t cid[SHOAL__ID_BYTES], const shoal__change *ch, void *arg);
typedef struct each_ctx {
    shoal_replica *r;
    shoal__wset w;
    auth_each_fn fn;
    void *arg;
    int err;
} each_ctx;

static int
each_doc(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
         void *arg)
{
    (void)coll;
    (void)clen;
    (void)meta;
    each_ctx *c = arg;
    uint8_t key[SHOAL_KEY_BYTES];
    int kind = shoal__auth_id_kind(id, idlen, key);
    if (kind < SHOAL__AUTH_CERT)
        return 0;
    uint8_t cid[SHOAL__ID_BYTES];
    shoal__change ch;
    int err = shoal__auth_newest(&c->w, kind, key, cid, &ch);
    if (err == SHOAL_ENOTFOUND)
        return 0;
    if (!err) {
        err = c->fn(kind, key, cid, &ch, c->arg);
        shoal__change_clear(&ch);
    }
    c->err = err;
    return err ? 1 : 0;
}

static int
each_fn(shoal__stxn *t, void *arg)
{
    each_ctx *c = arg;
    shoal__wset_init(&c->w, c->r);
    shoal__wset_reset(&c->w, t);
    int err = shoal__stxn_doc_scan(t, (const uint8_t *)"_auth", 5, each_doc, c);
    shoal__wset_free(&c->w);
    return c->err ? c->err : err;
}

static int
auth_each(shoal_replica *r, auth_each_fn fn, void *arg)
{
    each_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.fn = fn;
    c.arg = arg;
    return shoal__store_read(r->store, each_fn, &c);
}

typedef struct show_ctx {
    json_t *certs, *admins, *revokes, *equivs;
} show_ctx;

static int
show_obj(int kind, const uint8_t key[SHOAL_KEY_BYTES], const uint8_t cid[SHOAL__ID_BYTES],
         const shoal__change *ch, void *arg)
{
    show_ctx *c = arg;
    const uint8_t *p = ch->ops[0].value.ptr;
    size_t n = ch->ops[0].value.len;
    json_t *o = json_object();
    json_object_set_new(o, "key", hexj(key, SHOAL_KEY_BYTES));
    json_object_set_new(o, "id", hexj(cid, SHOAL__ID_BYTES));
    json_object_set_new(o, "issuer", hexj(ch->author, SHOAL_KEY_BYTES));
    if (kind == SHOAL__AUTH_CERT) {
        shoal__cert ce;
        if (shoal__cert_decode(p, n, &ce) == SHOAL_OK) {
            json_object_set_new(o, "user", json_stringn((const char *)ce.user.p, ce.user.n));
            json_object_set_new(o, "roles", names_j(ce.roles, ce.nroles));
            json_t *at = json_object();
            for (uint32_t i = 0; i < ce.nattrs; i++) {
                char nm[SHOAL_MAX_FIELD + 1];
                snprintf(nm, sizeof nm, "%.*s", (int)ce.attr_names[i].n,
                         (const char *)ce.attr_names[i].p);
                json_object_set_new(at, nm, value_j(&ce.attr_vals[i]));
            }
            json_object_set_new(o, "attrs", at);
            json_object_set_new(o, "not_before_ms",
                                json_integer((json_int_t)SHOAL__HLC_MS(ce.not_before)));
            json_object_set_new(o, "not_after_ms",
                                ce.not_after == UINT64_MAX
                                    ? json_null()
                                    : json_integer((json_int_t)SHOAL__HLC_MS(ce.not_after)));
            json_object_set_new(o, "serial", json_integer((json_int_t)ce.serial));
            json_object_set_new(o, "policy_floor", json_integer((json_int_t)ce.policy_floor));
            shoal__cert_clear(&ce);
        }
        json_array_append_new(c->certs, o);
    } else if (kind == SHOAL__AUTH_REVOKE) {
        shoal__revoke rv;
        if (shoal__revoke_decode(p, n, &rv) == SHOAL_OK) {
            json_object_set_new(o, "cut", json_integer((json_int_t)rv.cut));
            json_object_set_new(o, "certificate",
                                rv.has_cert ? hexj(rv.cert, SHOAL__ID_BYTES) : json_null());
            json_object_set_new(o, "reason", json_stringn((const char *)rv.reason.p, rv.reason.n));
        }
        json_array_append_new(c->revokes, o);
    } else if (kind == SHOAL__AUTH_EQUIV) {
        shoal__equiv eq;
        if (shoal__equiv_decode(p, n, &eq) == SHOAL_OK) {
            json_object_set_new(o, "seq", json_integer((json_int_t)eq.seq));
            json_object_set_new(o, "cut", json_integer((json_int_t)(eq.seq - 1)));
            json_t *ids = json_array();
            for (int i = 0; i < 2; i++) {
                uint8_t vid[SHOAL__ID_BYTES];
                shoal__change_id(eq.env[i], eq.len[i], vid);
                json_array_append_new(ids, hexj(vid, SHOAL__ID_BYTES));
            }
            json_object_set_new(o, "versions", ids);
        }
        json_object_del(o, "issuer");
        json_object_set_new(o, "publisher", hexj(ch->author, SHOAL_KEY_BYTES));
        json_array_append_new(c->equivs, o);
    } else {
        shoal__grant g;
        if (shoal__grant_decode(p, n, &g) == SHOAL_OK) {
            json_t *caps = json_array();
            static const char *const cn[] = { "policy", "issue", "revoke", "delegate" };
            for (int i = 0; i < 4; i++)
                if (g.caps & (1u << i))
                    json_array_append_new(caps, json_string(cn[i]));
            json_object_set_new(o, "caps", caps);
            json_object_set_new(o, "scope", json_stringn((const char *)g.scope.p, g.scope.n));
            json_object_set_new(o, "max_life_ms", json_integer((json_int_t)g.max_life_ms));
            json_object_set_new(o, "serial", json_integer((json_int_t)g.serial));
        }
        json_array_append_new(c->admins, o);
    }
    return 0;
}

/* --------------------------------------------------------------- orphans */

/* This replica's own changes that are VOID here (docs/permissions.md,
 * "Orphans"), in seq order, decoded with their sealed values filled in
 * from the groups it holds (its own). */
typedef struct orph {
    uint8_t cid[SHOAL__ID_BYTES];
    shoal__change c;
    uint8_t *env; /* owned: c points into it (and into c.extra) */
} orph;

typedef struct orph_ctx {
    shoal_replica *r;
    orph *v;
    size_t n, cap;
} orph_ctx;

static void
orph_free(orph_ctx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        shoal__change_clear(&x->v[i].c);
        shoal__free(x->v[i].env);
    }
    shoal__free(x->v);
    x->v = NULL;
    x->n = x->cap = 0;
}

static int
orph_fn(shoal__stxn *t, void *arg)
{
    orph_ctx *x = arg;
    shoal__wset w;
    shoal__wset_init(&w, x->r);
    shoal__wset_reset(&w, t);
    uint64_t top = 0;
    uint8_t cid[SHOAL__ID_BYTES];
    int err = shoal__wset_may_void(&w) ? shoal__stxn_vv_get(t, x->r->pk, &top, cid) : SHOAL_OK;
    if (err == SHOAL_ENOTFOUND)
        err = SHOAL_OK;
    shoal__lmdb_apply la = { t, NULL };
    shoal__apply_store s;
    shoal__apply_lmdb(&s, &la);
    shoal__authz_cache *k = NULL;
    for (uint64_t seq = 1; !err && seq <= top; seq++) {
        shoal__sval env;
        err = shoal__stxn_authseq_get(t, x->r->pk, seq, cid);
        if (!err)
            err = shoal__stxn_change_get(t, cid, &env);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK; /* evicted (a partial replica) */
            continue;
        }
        if (err || shoal__stxn_rejected_has(t, cid))
            continue;
        if (x->n == x->cap) {
            size_t nc = x->cap ? 2 * x->cap : 8;
            orph *nv = shoal__realloc(x->v, nc * sizeof *nv);
            if (!nv) {
                err = SHOAL_ENOMEM;
                break;
            }
            x->v = nv;
            x->cap = nc;
        }
        orph *o = &x->v[x->n];
        memset(o, 0, sizeof *o);
        memcpy(o->cid, cid, SHOAL__ID_BYTES);
        o->env = shoal__malloc(env.len);
        if (!o->env) {
            err = SHOAL_ENOMEM;
            break;
        }
        memcpy(o->env, env.p, env.len);
        err = shoal__change_stored(o->env, env.len, &o->c);
        if (err) {
            shoal__free(o->env);
            err = err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
            break;
        }
        bool vd = false;
        err = shoal__wset_void(&w, &o->c, &vd);
        if (!err && vd && o->c.nseals)
            err = shoal__apply_disclose(&s, &k, cid, &o->c);
        if (err || !vd) {
            shoal__change_clear(&o->c);
            shoal__free(o->env);
            continue;
        }
        x->n++;
    }
    shoal__authz_cache_free(k);
    shoal__wset_free(&w);
    return err;
}

static int
orphans_load(shoal_replica *r, orph_ctx *x)
{
    memset(x, 0, sizeof *x);
    x->r = r;
    if (!r->enforce)
        return SHOAL_OK;
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, orph_fn, x);
    pthread_mutex_unlock(&r->mu);
    if (err)
        orph_free(x);
    return err;
}

static json_t *
op_j(const shoal__op *op)
{
    static const char *const names[] = { NULL,     "set",    "unset",   "incr",
                                         "insert", "remove", "replace", "delete" };
    json_t *o = json_object();
    json_object_set_new(o, "op",
                        json_string(op->kind >= 1 && op->kind <= 7 ? names[op->kind] : "other"));
    if (op->field)
        json_object_set_new(o, "field", json_stringn((const char *)op->field, op->field_len));
    if (op->kind == SHOAL__OP_SET || op->kind == SHOAL__OP_INS || op->kind == SHOAL__OP_REP)
        json_object_set_new(o, "value",
                            op->value.type == SHOAL_T_REDACTED ? json_pack("{s:b}", "$redacted", 1)
                                                               : value_j(&op->value));
    if (op->kind == SHOAL__OP_COUNT)
        json_object_set_new(o, "by", json_integer(op->delta));
    return o;
}

shoal_err
shoal_orphans(shoal_replica *r, char **out)
{
    if (!r || !out)
        return SHOAL_EINVAL;
    *out = NULL;
    orph_ctx x;
    int err = orphans_load(r, &x);
    if (err)
        return shoal__fail(r, err, "orphans");
    json_t *a = json_array();
    for (size_t i = 0; i < x.n; i++) {
        const shoal__change *c = &x.v[i].c;
        json_t *o = json_object(), *ops = json_array();
        json_object_set_new(o, "change", hexj(x.v[i].cid, SHOAL__ID_BYTES));
        json_object_set_new(o, "seq", json_integer((json_int_t)c->seq));
        json_object_set_new(o, "collection", json_stringn((const char *)c->coll, c->coll_len));
        json_object_set_new(o, "doc", json_stringn((const char *)c->doc, c->doc_len));
        for (size_t j = 0; j < c->nops; j++)
            json_array_append_new(ops, op_j(&c->ops[j]));
        json_object_set_new(o, "ops", ops);
        json_array_append_new(a, o);
    }
    orph_free(&x);
    char *s = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(a);
    if (!s)
        return shoal__fail(r, SHOAL_ENOMEM, "orphans");
    size_t n = strlen(s);
    *out = shoal__malloc(n + 1);
    if (*out)
        memcpy(*out, s, n + 1);
    free(s);
    return *out ? SHOAL_OK : shoal__fail(r, SHOAL_ENOMEM, "orphans");
}

/* The length of list field f of (coll, id) on dst (0: none). */
static size_t
list_len(shoal_replica *dst, const char *coll, const char *id, const char *f)
{
    shoal_doc *d = NULL;
    size_t fi, n = 0;
    if (shoal_doc_get(dst, coll, id, &d) == SHOAL_OK && shoal_doc_field_find(d, f, &fi) == SHOAL_OK)
        (void)shoal_doc_field_list_len(d, fi, &n);
    shoal_doc_free(d);
    return n;
}

/* Re-issue one orphan on dst as one new change: register and counter
 * ops and deletes as they were, list inserts appended at the end; list
 * removes and replaces (of elements of the VOID history) and values not
 * held (REDACTED) are left out.  *made: a change was committed. */
static int
reissue(shoal_replica *dst, const shoal__change *c, bool *made)
{
    *made = false;
    char coll[SHOAL_MAX_COLLECTION + 1], id[SHOAL_MAX_DOC_ID + 1], f[SHOAL_MAX_FIELD + 1];
    if (c->coll_len >= sizeof coll || c->doc_len >= sizeof id)
        return SHOAL_EINVAL;
    memcpy(coll, c->coll, c->coll_len);
    coll[c->coll_len] = 0;
    memcpy(id, c->doc, c->doc_len);
    id[c->doc_len] = 0;
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(dst, &t);
    size_t nops = 0;
    for (size_t i = 0; !err && i < c->nops; i++) {
        const shoal__op *op = &c->ops[i];
        if (op->field && op->field_len >= sizeof f)
            continue;
        if (op->field) {
            memcpy(f, op->field, op->field_len);
            f[op->field_len] = 0;
        }
        bool redacted = op->value.type == SHOAL_T_REDACTED;
        switch (op->kind) {
        case SHOAL__OP_SET:
            if (!redacted) {
                err = shoal_txn_set(t, coll, id, f, &op->value);
                nops++;
            }
            break;
        case SHOAL__OP_UNSET:
            err = shoal_txn_unset(t, coll, id, f);
            nops++;
            break;
        case SHOAL__OP_COUNT:
            err = shoal_txn_counter_add(t, coll, id, f, op->delta);
            nops++;
            break;
        case SHOAL__OP_INS: {
            if (redacted)
                break;
            size_t at = list_len(dst, coll, id, f);
            for (size_t j = 0; j < i; j++) /* earlier appends to f in this change */
                at += c->ops[j].kind == SHOAL__OP_INS && c->ops[j].field_len == op->field_len &&
                      memcmp(c->ops[j].field, op->field, op->field_len) == 0 &&
                      c->ops[j].value.type != SHOAL_T_REDACTED;
            err = shoal_txn_list_insert(t, coll, id, f, at, &op->value);
            nops++;
            break;
        }
        case SHOAL__OP_DELDOC:
            err = shoal_txn_delete(t, coll, id);
            nops++;
            break;
        default: break; /* remove, replace: of elements that are VOID */
        }
    }
    if (err || nops == 0) {
        shoal_txn_abort(t);
        return err;
    }
    err = shoal_txn_commit(t);
    *made = !err;
    return err;
}

shoal_err
shoal_orphan_reauthor(shoal_replica *r, shoal_replica *dst, size_t *count)
{
    if (count)
        *count = 0;
    if (!r || !dst || r == dst)
        return SHOAL_EINVAL;
    orph_ctx x;
    int err = orphans_load(r, &x);
    if (err)
        return shoal__fail(r, err, "orphans");
    for (size_t i = 0; !err && i < x.n; i++) {
        bool made = false;
        err = reissue(dst, &x.v[i].c, &made);
        if (!err && made && count)
            (*count)++;
    }
    orph_free(&x);
    if (err)
        return shoal__fail(r, err, "orphan_reauthor: %s", shoal_replica_errmsg(dst));
    return SHOAL_OK;
}

/* Changes held without a sealed group this replica's roles read: a sender
 * withheld it (docs/permissions.md, "Sealed fields"). */
typedef struct withheld_ctx {
    shoal_replica *r;
    uint64_t n;
} withheld_ctx;

static int
withheld_fn(shoal__stxn *t, void *arg)
{
    withheld_ctx *c = arg;
    return shoal__subs_withheld(c->r, t, &c->n);
}

shoal_err
shoal_auth_show(shoal_replica *r, char **out)
{
    if (!r || !out)
        return SHOAL_EINVAL;
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    json_t *j = json_object();
    json_object_set_new(j, "mode", json_string(r->enforce ? "enforcing" : "open"));
    json_object_set_new(j, "root", r->enforce ? hexj(r->root, SHOAL_KEY_BYTES) : json_null());
    int err = SHOAL_OK;
    show_ctx c = { json_array(), json_array(), json_array(), json_array() };
    if (r->enforce) {
        pick_ctx pc;
        err = pick(r, SHOAL__AUTH_POLICY, NULL, &pc);
        if (!err) {
            shoal__policy *p = NULL;
            json_t *po = json_object();
            json_object_set_new(po, "id", hexj(pc.cid, SHOAL__ID_BYTES));
            json_object_set_new(po, "issuer", hexj(pc.issuer, SHOAL_KEY_BYTES));
            if (shoal__policy_decode(pc.obj.p, pc.obj.len, &p, NULL, 0) == SHOAL_OK)
                json_object_set_new(po, "version", json_integer((json_int_t)p->version));
            shoal__policy_free(p);
            json_object_set_new(j, "policy", po);
        } else if (err == SHOAL_ENOTFOUND) {
            json_object_set_new(j, "policy", json_null());
            err = SHOAL_OK;
        }
        shoal__buf_free(&pc.obj);
        if (!err)
            err = auth_each(r, show_obj, &c);
        withheld_ctx wc = { r, 0 };
        if (!err)
            err = shoal__store_read(r->store, withheld_fn, &wc);
        if (!err)
            json_object_set_new(j, "withheld", json_integer((json_int_t)wc.n));
    } else {
        json_object_set_new(j, "policy", json_null());
    }
    json_object_set_new(j, "certificates", c.certs);
    json_object_set_new(j, "admins", c.admins);
    json_object_set_new(j, "revocations", c.revokes);
    json_object_set_new(j, "equivocations", c.equivs);
    pthread_mutex_unlock(&r->mu);
    if (!err) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s) {
            err = SHOAL_ENOMEM;
        } else {
            size_t n = strlen(s);
            *out = shoal__malloc(n + 1);
            if (*out)
                memcpy(*out, s, n + 1);
            else
                err = SHOAL_ENOMEM;
            free(s);
        }
    }
    json_decref(j);
    return (shoal_err)err;
}

/* ------------------------------------------------------ certified devices */

/* A device whose newest certificate this replica holds, for the ZAP
 * handler: admitted while the wall clock is within its validity.  Link
 * admission is no verdict on a change, so it may read the clock. */
typedef struct cert_ent {
    uint8_t ed[SHOAL_KEY_BYTES];
    uint64_t not_before_ms, not_after_ms;
    uint64_t serial;
} cert_ent;

void
shoal__certs_note(shoal_replica *r, const uint8_t *obj, size_t n)
{
    shoal__cert ce;
    if (shoal__cert_decode(obj, n, &ce) != SHOAL_OK)
        return;
    uint8_t x[32];
    if (crypto_sign_ed25519_pk_to_curve25519(x, ce.subject) != 0) {
        shoal__cert_clear(&ce);
        return;
    }
    cert_ent *c = shoal__malloc(sizeof *c);
    if (c) {
        memcpy(c->ed, ce.subject, SHOAL_KEY_BYTES);
        c->not_before_ms = SHOAL__HLC_MS(ce.not_before);
        c->not_after_ms = ce.not_after == UINT64_MAX ? UINT64_MAX : SHOAL__HLC_MS(ce.not_after);
        c->serial = ce.serial;
    }
    /* The greatest serial stands, as shoal__wset_auth_pick picks it at open
     * (a document's visible object is its last write, which an older
     * serial may be). */
    pthread_mutex_lock(&r->cert_mu);
    cert_ent *old = shoal__map_get(&r->certs, x, sizeof x);
    if (c && old && old->serial > c->serial) {
        shoal__free(c);
    } else if (c) {
        shoal__free(shoal__map_take(&r->certs, x, sizeof x));
        if (shoal__map_put(&r->certs, x, sizeof x, c) != SHOAL_OK)
            shoal__free(c);
    }
    pthread_mutex_unlock(&r->cert_mu);
    shoal__cert_clear(&ce);
}

void
shoal__certs_forget(shoal_replica *r, const uint8_t ed[SHOAL_KEY_BYTES])
{
    uint8_t x[32];
    if (crypto_sign_ed25519_pk_to_curve25519(x, ed) != 0)
        return;
    pthread_mutex_lock(&r->cert_mu);
    shoal__free(shoal__map_take(&r->certs, x, sizeof x));
    pthread_mutex_unlock(&r->cert_mu);
}

void
shoal__certs_note_revoke(shoal_replica *r, const uint8_t *obj, size_t n)
{
    uint8_t target[32], x[32];
    if (shoal__auth_cut_target(obj, n, target) != SHOAL_OK ||
        crypto_sign_ed25519_pk_to_curve25519(x, target) != 0)
        return;
    pthread_mutex_lock(&r->cert_mu);
    (void)shoal__map_put(&r->revoked, x, sizeof x, (void *)1);
    pthread_mutex_unlock(&r->cert_mu);
}

bool
shoal__certs_revoked(shoal_replica *r, const uint8_t x[32])
{
    pthread_mutex_lock(&r->cert_mu);
    bool v = shoal__map_get(&r->revoked, x, 32) != NULL;
    pthread_mutex_unlock(&r->cert_mu);
    return v;
}

bool
shoal__certs_admit(shoal_replica *r, const uint8_t x[32], uint8_t ed[SHOAL_KEY_BYTES])
{
    uint64_t now = shoal__wall_ms(r);
    bool ok = false;
    pthread_mutex_lock(&r->cert_mu);
    const cert_ent *c = shoal__map_get(&r->certs, x, 32);
    if (c && now >= c->not_before_ms && now <= c->not_after_ms &&
        !shoal__map_get(&r->revoked, x, 32)) {
        memcpy(ed, c->ed, SHOAL_KEY_BYTES);
        ok = true;
    }
    pthread_mutex_unlock(&r->cert_mu);
    return ok;
}

void
shoal__certs_free(shoal_replica *r)
{
    shoal__map_clear(&r->certs, shoal__free);
    shoal__map_clear(&r->revoked, NULL);
}

static int
load_obj(int kind, const uint8_t key[SHOAL_KEY_BYTES], const uint8_t cid[SHOAL__ID_BYTES],
         const shoal__change *ch, void *arg)
{
    (void)key;
    (void)cid;
    if (kind == SHOAL__AUTH_CERT)
        shoal__certs_note(arg, ch->ops[0].value.ptr, ch->ops[0].value.len);
    else if (kind == SHOAL__AUTH_REVOKE || kind == SHOAL__AUTH_EQUIV)
        shoal__certs_note_revoke(arg, ch->ops[0].value.ptr, ch->ops[0].value.len);
    return 0;
}

static int
last_fn(shoal__stxn *t, void *arg)
{
    int err = shoal__stxn_log_last(t, arg, NULL);
    return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
}

int
shoal__certs_load(shoal_replica *r)
{
    if (!r->enforce)
        return SHOAL_OK;
    uint64_t last = 0;
    int err = shoal__store_read(r->store, last_fn, &last);
    if (!err)
        err = auth_each(r, load_obj, r);
    if (!err)
        r->auth_pos = last;
    return err;
}

/* ------------------------------------------- commits of other processes */

/* The `_auth` documents the log names past r->auth_pos (collected by id,
 * "cert:HEX" and "revoke:HEX" only matter to links). */
typedef struct refresh_ctx {
    shoal_replica *r;
    shoal__map ids; /* doc id -> 1 */
    bool any;       /* an `_auth` change at all */
    uint64_t last;
    int err;
} refresh_ctx;

static int
refresh_cb(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    (void)cid;
    refresh_ctx *c = arg;
    c->last = pos;
    size_t elen, blen;
    const uint8_t *body;
    if (shoal__envelope_parse(env->p, env->len, &elen, &body, &blen))
        return 0;
    /* seq, hlc, deps, coll, doc: the head of every format's body */
    shoal__mpr rd, *m = &rd;
    shoal__mpr_init(m, body, blen);
    (void)shoal__mpr_array(m, 16, 1);
    (void)shoal__mpr_uint(m);
    (void)shoal__mpr_uint(m);
    uint32_t nd = shoal__mpr_array(m, 1024, 34);
    for (uint32_t i = 0; i < nd && !m->err; i++) {
        const uint8_t *d;
        (void)shoal__mpr_bin(m, &d, SHOAL__ID_BYTES);
    }
    const uint8_t *coll, *doc;
    size_t clen = shoal__mpr_str(m, &coll, SHOAL_MAX_COLLECTION);
    size_t dlen = shoal__mpr_str(m, &doc, SHOAL_MAX_DOC_ID);
    if (m->err || clen != 5 || memcmp(coll, "_auth", 5) != 0)
        return 0;
    c->any = true;
    c->err = shoal__map_put(&c->ids, doc, dlen, (void *)1);
    return c->err ? 1 : 0;
}

static int
refresh_fn(shoal__stxn *t, void *arg)
{
    refresh_ctx *c = arg;
    shoal_replica *r = c->r;
    uint64_t last = 0;
    int err = shoal__stxn_log_last(t, &last, NULL);
    if (err == SHOAL_ENOTFOUND || (!err && last <= r->auth_pos))
        return SHOAL_OK;
    if (err)
        return err;
    c->last = r->auth_pos;
    err = shoal__stxn_log_scan(t, r->auth_pos + 1, refresh_cb, c);
    if (c->err)
        return c->err;
    if (err && err != 1)
        return err;
    shoal__wset w;
    shoal__wset_init(&w, r);
    shoal__wset_reset(&w, t);
    for (size_t i = 0; !err && i < c->ids.cap; i++) {
        const uint8_t *id = c->ids.s[i].key;
        size_t n = c->ids.s[i].klen;
        uint8_t key[SHOAL_KEY_BYTES];
        int kind = id ? shoal__auth_id_kind(id, n, key) : 0;
        if (kind != SHOAL__AUTH_CERT && kind != SHOAL__AUTH_REVOKE && kind != SHOAL__AUTH_EQUIV)
            continue;
        uint8_t ocid[SHOAL__ID_BYTES];
        shoal__change ch;
        err = shoal__auth_newest(&w, kind, key, ocid, &ch);
        if (err == SHOAL_ENOTFOUND) {
            err = SHOAL_OK; /* rejected, or pending: nothing admitted */
            continue;
        }
        if (!err) {
            (void)load_obj(kind, key, ocid, &ch, r);
            shoal__change_clear(&ch);
        }
    }
    shoal__wset_free(&w);
    return err;
}

void
shoal__certs_refresh(shoal_replica *r)
{
    if (!r->enforce)
        return;
    refresh_ctx c = { .r = r };
    shoal__map_init(&c.ids);
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, refresh_fn, &c);
    if (!err && c.last > r->auth_pos) {
        r->auth_pos = c.last;
        if (c.any)
            atomic_fetch_add(&r->auth_gen, 1); /* readers load again */
    }
    pthread_mutex_unlock(&r->mu);
    shoal__map_clear(&c.ids, NULL);
}
