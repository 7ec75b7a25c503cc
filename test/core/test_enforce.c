/*
 * test/core/test_enforce.c - the write check inside the apply pipeline
 * (core/apply.c, core/authz.c) over the in-memory store: what a replica
 * with a root key does with each change it receives (docs/permissions.md).
 *
 * A root key R, an admin A (granted by R: issue within store 1 and 2,
 * policy, delegate), and devices: a clerk and a manager of store 1, a
 * clerk of store 2.  The retail policy of docs/permissions.md.  Directed
 * cases pin one verdict each (admitted, rejected, waiting); the property
 * test makes random sets of honest and forged changes (each device writes
 * from its own view, which applies everything, so forged changes get
 * dependents) and delivers every set to fresh enforcing stores in random
 * orders, in random batches with duplicates: all must end with the same
 * digests, the same applied and rejected changes, and nothing pending.
 *
 * SHOAL_SEED picks the seed (printed); SHOAL_ENFORCE_SETS the number of
 * random sets.
 */
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply_mem.h"
#include "check.h"
#include "core.h"

#define WALL_MS 1700000000000ull

enum {
    ROOT = 0,
    ADMIN,
    CLERK1,
    MGR1,
    CLERK2,
    MGR2,
    REG, /* a regional manager: moves products between stores 1 and 2 */
    NKEYS,
    MAXENV = 160
};

static const char POLICY[] =
    "{\"collections\": {\"products\": {\"guard\": [\"store_id\"],"
    "   \"queryable\": [\"store_id\", \"price\"]}},"
    " \"roles\": {"
    "  \"clerk\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "             \"write\": [\"stock\"]}},"
    "  \"manager\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "             \"write\": \"*\", \"create\": true, \"delete\": true}},"
    "  \"regional\": {\"products\": {\"where\": \"store_id IN (1, 2)\", \"read\": \"*\","
    "             \"write\": [\"store_id\"]}},"
    "  \"relay\": {\"products\": {\"where\": \"TRUE\", \"read\": \"*\"}},"
    "  \"auditor\": {\"products\": {\"where\": \"TRUE\","
    "             \"read\": {\"except\": [\"secret\", \"tally\"]}}}}}";

typedef struct key {
    uint8_t pk[32], sk[64];
    uint64_t seq, clock;
    shoal__memstore *view; /* open mode: applies everything it is given */
    uint8_t cert[32];      /* id of the certificate its changes name */
    uint8_t policy[32];    /* id of the policy its changes name */
    uint8_t newcert[32];   /* a certificate issued since, named once heard */
    bool has_newcert;
} key;

typedef struct world {
    key k[NKEYS];
    uint8_t *env[MAXENV];
    size_t len[MAXENV];
    uint8_t id[MAXENV][32];
    size_t n;
    uint8_t policy[32]; /* id of the newest policy's change */
    uint64_t policy_version;
    uint8_t grant[32];      /* id of the admin's grant */
    uint64_t serial[NKEYS]; /* the last certificate serial of each key */
    /* Sealed fields: the policies published (a change's sealing follows
     * the one it names), and each envelope's disclosure records. */
    uint8_t pol_id[8][32];
    shoal__policy *pol[8];
    size_t npol;
    uint8_t *disc[MAXENV];
    size_t disclen[MAXENV];
    bool forge_seal; /* the next data change breaks the sealing rules */
} world;

/* Envelope i of w as a record, with its disclosures (into dv, room for
 * SHOAL__MAX_SEALS) unless withheld. */
static void
rec_disc(const world *w, size_t i, shoal__rec *r, shoal__disc *dv, bool withhold)
{
    memset(r, 0, sizeof *r);
    size_t elen;
    int err = shoal__envelope_parse(w->env[i], w->len[i], &elen, &r->body, &r->body_len);
    CHECK_EQ(err, SHOAL_OK);
    r->env = w->env[i];
    r->env_len = w->len[i];
    memcpy(r->cid, w->id[i], 32);
    if (!withhold && w->disclen[i]) {
        size_t dl, dc;
        CHECK_EQ(shoal__disc_scan(w->disc[i], w->disclen[i], &dl, dv, &dc), SHOAL_OK);
        r->disc = dv;
        r->ndisc = dc;
    }
}

static int
import_with(shoal__memstore *m, const world *w, const size_t *idx, size_t n, uint64_t *clock,
            shoal_import_result *res, bool withhold)
{
    static shoal__rec r[MAXENV * 2];
    static shoal__disc dv[MAXENV * 2][2];
    for (size_t i = 0; i < n; i++)
        rec_disc(w, idx[i], &r[i], dv[i], withhold);
    return shoal__memstore_import(m, r, n, WALL_MS, 60000, clock, res);
}

static int
import(shoal__memstore *m, const world *w, const size_t *idx, size_t n, uint64_t *clock,
       shoal_import_result *res)
{
    return import_with(m, w, idx, n, clock, res, false);
}

/* The products collection of the policy named pid (NULL: not one
 * published here): its read classes say which ops are sealed. */
static const shoal__pcoll *
named_coll(const world *w, const uint8_t *pid)
{
    for (size_t k = 0; k < w->npol; k++)
        if (memcmp(w->pol_id[k], pid, 32) == 0)
            return shoal__policy_coll(w->pol[k], (const uint8_t *)"products", 8);
    return NULL;
}

/* The op of a change under construction. */
typedef struct top {
    uint8_t kind;
    const char *field;
    int64_t v;
} top;

/* Sign a change by key ki on products/doc (or _auth/doc when obj is
 * given: one SET of "object"), naming auth, after the heads of ki's view;
 * the key's view applies it.  Returns its index. */
static size_t
make(world *w, int ki, const char *coll, const char *doc, uint64_t epoch, const top *ops,
     size_t nops, const uint8_t *obj, size_t objlen, const uint8_t *auth, size_t nauth, int version)
{
    key *k = &w->k[ki];
    if (w->n >= MAXENV)
        abort();
    shoal__op o[8];
    memset(o, 0, sizeof o);
    for (size_t i = 0; i < nops; i++) {
        o[i].kind = ops[i].kind;
        o[i].field = ops[i].field ? (const uint8_t *)ops[i].field : NULL;
        o[i].field_len = ops[i].field ? strlen(ops[i].field) : 0;
        if (ops[i].kind == SHOAL__OP_SET) {
            o[i].value.type = SHOAL_T_INT;
            o[i].value.i = ops[i].v;
        }
        if (ops[i].kind == SHOAL__OP_COUNT)
            o[i].delta = ops[i].v;
    }
    if (obj) {
        o[0].kind = SHOAL__OP_SET;
        o[0].field = (const uint8_t *)"object";
        o[0].field_len = 6;
        o[0].value.type = SHOAL_T_BYTES;
        o[0].value.ptr = obj;
        o[0].value.len = objlen;
        nops = 1;
    }
    const uint8_t *heads;
    size_t nheads;
    (void)shoal__memstore_doc(k->view, (const uint8_t *)coll, strlen(coll), (const uint8_t *)doc,
                              strlen(doc), &heads, &nheads);
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, k->pk, 32);
    c.seq = ++k->seq;
    k->clock = shoal__hlc_tick(k->clock, WALL_MS);
    c.hlc = k->clock;
    c.ndeps = nheads;
    c.deps = heads;
    c.coll = (const uint8_t *)coll;
    c.coll_len = strlen(coll);
    c.doc = (const uint8_t *)doc;
    c.doc_len = strlen(doc);
    c.epoch = epoch;
    c.nops = nops;
    c.ops = o;
    c.version = (uint8_t)version;
    c.nauth = version == SHOAL__FORMAT_V2 ? nauth : 0;
    c.auth = c.nauth ? auth : NULL;
    /* Sealed fields: the ops on restricted fields under the policy named
     * go sealed, in one group per class, with a salt from the seeded
     * stream; a forger leaves one in clear. */
    uint8_t commits[2 * 32];
    shoal__buf groups[2];
    shoal__buf_init(&groups[0]);
    shoal__buf_init(&groups[1]);
    const shoal__pcoll *co = !obj && c.nauth == 2 ? named_coll(w, auth + 32) : NULL;
    if (co) {
        bool used[3] = { false, false, false };
        for (size_t i = 0; i < nops; i++)
            if (o[i].kind != SHOAL__OP_DELDOC && o[i].kind != SHOAL__OP_DEL) {
                uint8_t cls = shoal__pcoll_class(o[i].field, o[i].field_len, (void *)(uintptr_t)co);
                if (cls > 2)
                    abort(); /* POLICY has one class */
                o[i].sealed = cls != 0 && !w->forge_seal;
                used[cls] = used[cls] || o[i].sealed;
            }
        w->forge_seal = false;
        for (uint8_t cls = 1; cls <= 2; cls++)
            if (used[cls]) {
                uint8_t salt[SHOAL__SALT_BYTES];
                for (size_t b = 0; b < sizeof salt; b++)
                    salt[b] = (uint8_t)check_rand();
                shoal__buf *g = &groups[c.nseals];
                CHECK_EQ(
                    shoal__seal_group(&c, cls, salt, shoal__pcoll_class, (void *)(uintptr_t)co, g),
                    SHOAL_OK);
                shoal__seal_commit(g->p, g->len, commits + c.nseals * 32);
                c.seal_class[c.nseals++] = cls;
            }
        c.seal_commit = c.nseals ? commits : NULL;
    }
    shoal__buf body, env;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    CHECK_EQ(shoal__change_encode(&c, &body), SHOAL_OK);
    CHECK_EQ(shoal__envelope_seal(body.p, body.len, k->pk, k->sk, &env), SHOAL_OK);
    size_t i = w->n++;
    w->env[i] = env.p;
    w->len[i] = env.len;
    shoal__change_id(env.p, env.len, w->id[i]);
    shoal__buf_free(&body);
    shoal__buf d;
    shoal__buf_init(&d);
    for (uint8_t g = 0; g < c.nseals; g++)
        CHECK_EQ(shoal__disc_append(&d, g, groups[g].p, groups[g].len), SHOAL_OK);
    w->disc[i] = d.p;
    w->disclen[i] = d.len;
    shoal__buf_free(&groups[0]);
    shoal__buf_free(&groups[1]);
    shoal_import_result res;
    CHECK_EQ(import(k->view, w, &i, 1, &k->clock, &res), SHOAL_OK);
    CHECK_EQ(res.pending, 0); /* applied, or rejected by an enforcing view */
    return i;
}

/* Everything in w so far, given to key ki's view. */
static void
hear_all(world *w, int ki)
{
    size_t idx[MAXENV];
    for (size_t i = 0; i < w->n; i++)
        idx[i] = i;
    CHECK_EQ(import(w->k[ki].view, w, idx, w->n, &w->k[ki].clock, NULL), SHOAL_OK);
    /* from now on it names the newest authority it heard of */
    key *k = &w->k[ki];
    memcpy(k->policy, w->policy, 32);
    if (k->has_newcert) {
        memcpy(k->cert, k->newcert, 32);
        k->has_newcert = false;
    }
}

/* A certificate for key pk (user "u", one role, attribute store_id),
 * issued as a change by issuer naming its grant. */
static size_t
put_cert_pk(world *w, int issuer, const uint8_t *issuer_grant, const uint8_t *pk, const char *role,
            int64_t store, uint64_t serial)
{
    shoal__cert ce;
    memset(&ce, 0, sizeof ce);
    memcpy(ce.subject, pk, 32);
    shoal__name r = { (const uint8_t *)role, strlen(role) },
                an = { (const uint8_t *)"store_id", 8 };
    shoal_value av = { .type = SHOAL_T_INT, .i = store };
    ce.user = (shoal__name){ (const uint8_t *)"u", 1 };
    ce.nroles = 1;
    ce.roles = &r;
    ce.nattrs = 1;
    ce.attr_names = &an;
    ce.attr_vals = &av;
    ce.not_after = UINT64_MAX;
    ce.serial = serial;
    ce.policy_floor = 1;
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__cert_encode(&ce, &b), SHOAL_OK);
    char doc[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_CERT, pk, doc);
    size_t i = make(w, issuer, "_auth", doc, 0, NULL, 0, b.p, b.len, issuer_grant,
                    issuer_grant ? 1 : 0, SHOAL__FORMAT_V2);
    shoal__buf_free(&b);
    return i;
}

static size_t
put_cert_serial(world *w, int issuer, const uint8_t *issuer_grant, int subject, const char *role,
                int64_t store, uint64_t serial)
{
    size_t i = put_cert_pk(w, issuer, issuer_grant, w->k[subject].pk, role, store, serial);
    if (serial == 1) {
        w->serial[subject] = 1;
        memcpy(w->k[subject].cert, w->id[i], 32);
    } else {
        memcpy(w->k[subject].newcert, w->id[i], 32);
        w->k[subject].has_newcert = true;
    }
    return i;
}

static size_t
put_cert(world *w, int issuer, const uint8_t *issuer_grant, int subject, const char *role,
         int64_t store)
{
    return put_cert_serial(w, issuer, issuer_grant, subject, role, store, 1);
}

/* Remember the policy published as change pi (b: its bytes). */
static void
note_policy(world *w, size_t pi, const shoal__buf *b)
{
    REQUIRE(w->npol < 8);
    memcpy(w->pol_id[w->npol], w->id[pi], 32);
    CHECK_EQ(shoal__policy_decode(b->p, b->len, &w->pol[w->npol], NULL, 0), SHOAL_OK);
    w->npol++;
}

/* The root publishes the next policy version: the retail one, or (tight)
 * one where clerks may only count stock, not set it. */
static void
publish_policy(world *w, bool tight)
{
    static const char TIGHT[] =
        "{\"collections\": {\"products\": {\"guard\": [\"store_id\"],"
        "   \"queryable\": [\"store_id\", \"price\"]}},"
        " \"roles\": {"
        "  \"clerk\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
        "             \"write\": [\"n\"]}},"
        "  \"manager\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": "
        "\"*\", \"write\": \"*\", \"create\": true, \"delete\": true}}}}";
    const char *json = tight ? TIGHT : POLICY;
    shoal__buf b;
    shoal__buf_init(&b);
    char err[200];
    CHECK_EQ(shoal__policy_from_json(json, strlen(json), ++w->policy_version, w->policy, &b, err,
                                     sizeof err),
             SHOAL_OK);
    size_t pi = make(w, ROOT, "_auth", "policy", 0, NULL, 0, b.p, b.len, NULL, 0, SHOAL__FORMAT_V2);
    memcpy(w->policy, w->id[pi], 32);
    note_policy(w, pi, &b);
    shoal__buf_free(&b);
}

/* The root revokes key ki with cut: its changes past it become VOID. */
static void
put_revoke(world *w, int ki, uint64_t cut)
{
    shoal__revoke rv;
    memset(&rv, 0, sizeof rv);
    memcpy(rv.target, w->k[ki].pk, 32);
    rv.cut = cut;
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__revoke_encode(&rv, &b), SHOAL_OK);
    char doc[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_REVOKE, w->k[ki].pk, doc);
    hear_all(w, ROOT);
    (void)make(w, ROOT, "_auth", doc, 0, NULL, 0, b.p, b.len, NULL, 0, SHOAL__FORMAT_V2);
    shoal__buf_free(&b);
}

/* The authority of a world: R grants A, publishes the policy; A certifies
 * the devices.  Every key hears all of it. */
static void
setup2(world *w, uint64_t seed, unsigned enforce)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < NKEYS; i++) {
        uint8_t s[32];
        memset(s, 0, sizeof s);
        s[0] = (uint8_t)i;
        memcpy(s + 1, &seed, sizeof seed);
        crypto_sign_seed_keypair(w->k[i].pk, w->k[i].sk, s);
        REQUIRE(shoal__memstore_new(&w->k[i].view) == SHOAL_OK);
    }
    for (int i = 0; i < NKEYS; i++)
        if (enforce & (1u << i))
            shoal__memstore_set_root(w->k[i].view, w->k[ROOT].pk);
    shoal__grant g;
    memset(&g, 0, sizeof g);
    memcpy(g.key, w->k[ADMIN].pk, 32);
    g.caps = SHOAL__CAP_ISSUE | SHOAL__CAP_POLICY | SHOAL__CAP_DELEGATE;
    g.scope = (shoal__name){ (const uint8_t *)"store_id IN (1, 2)", 18 };
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__grant_encode(&g, &b), SHOAL_OK);
    char doc[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_ADMIN, w->k[ADMIN].pk, doc);
    size_t gi = make(w, ROOT, "_auth", doc, 0, NULL, 0, b.p, b.len, NULL, 0, SHOAL__FORMAT_V2);
    b.len = 0;
    char err[200];
    CHECK_EQ(shoal__policy_from_json(POLICY, strlen(POLICY), 1, NULL, &b, err, sizeof err),
             SHOAL_OK);
    size_t pi = make(w, ROOT, "_auth", "policy", 0, NULL, 0, b.p, b.len, NULL, 0, SHOAL__FORMAT_V2);
    memcpy(w->policy, w->id[pi], 32);
    note_policy(w, pi, &b);
    w->policy_version = 1;
    memcpy(w->grant, w->id[gi], 32);
    shoal__buf_free(&b);
    hear_all(w, ADMIN);
    put_cert(w, ADMIN, w->id[gi], CLERK1, "clerk", 1);
    put_cert(w, ADMIN, w->id[gi], MGR1, "manager", 1);
    put_cert(w, ADMIN, w->id[gi], CLERK2, "clerk", 2);
    put_cert(w, ADMIN, w->id[gi], MGR2, "manager", 2);
    put_cert(w, ADMIN, w->id[gi], REG, "regional", 1);
    for (int i = 0; i < NKEYS; i++)
        hear_all(w, i);
}

/* Every view in open mode: devices depend on whatever they wrote. */
static void
setup(world *w, uint64_t seed)
{
    setup2(w, seed, 0);
}

static void
teardown(world *w)
{
    for (int i = 0; i < NKEYS; i++)
        shoal__memstore_free(w->k[i].view);
    for (size_t i = 0; i < w->n; i++) {
        shoal__free(w->env[i]);
        shoal__free(w->disc[i]);
    }
    for (size_t i = 0; i < w->npol; i++)
        shoal__policy_free(w->pol[i]);
}

/* A data change by device ki, naming its certificate and the policy. */
static size_t
write(world *w, int ki, const char *doc, uint64_t epoch, const top *ops, size_t nops)
{
    uint8_t auth[64];
    memcpy(auth, w->k[ki].cert, 32);
    memcpy(auth + 32, w->k[ki].policy, 32);
    return make(w, ki, "products", doc, epoch, ops, nops, NULL, 0, auth, 2, SHOAL__FORMAT_V2);
}

/* The epoch a write by ki to products/doc takes in ki's view (a
 * re-create after a delete takes the next). */
static uint64_t
epoch_of(const world *w, int ki, const char *doc)
{
    const uint8_t *h;
    size_t nh;
    const shoal__doc *d = shoal__memstore_doc(w->k[ki].view, (const uint8_t *)"products", 8,
                                              (const uint8_t *)doc, strlen(doc), &h, &nh);
    return d ? shoal__doc_epoch(d) + (shoal__doc_deleted(d) ? 1 : 0) : 0;
}

/* Key ki equivocates: two changes with one seq, on two documents; their
 * indexes in *a and *b. */
static void
equivocate(world *w, int ki, const char *d1, const char *d2, size_t *a, size_t *b)
{
    top op = { SHOAL__OP_SET, "stock", (int64_t)check_rand_below(50) };
    *a = write(w, ki, d1, epoch_of(w, ki, d1), &op, 1);
    w->k[ki].seq--;
    op.v++;
    *b = write(w, ki, d2, epoch_of(w, ki, d2), &op, 1);
}

/* Publish the proof of envelopes a and b (one key, one seq) as key pub:
 * the root names nothing, a device its certificate. */
static size_t
put_equiv(world *w, int pub, size_t a, size_t b)
{
    shoal__buf obj;
    shoal__buf_init(&obj);
    CHECK_EQ(shoal__equiv_encode(w->env[a], w->len[a], w->env[b], w->len[b], &obj), SHOAL_OK);
    char doc[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_EQUIV, shoal__envelope_author(w->env[a]), doc);
    hear_all(w, pub);
    size_t i = make(w, pub, "_auth", doc, 0, NULL, 0, obj.p, obj.len, w->k[pub].cert,
                    pub == ROOT ? 0 : 1, SHOAL__FORMAT_V2);
    shoal__buf_free(&obj);
    return i;
}

/* A fresh enforcing store that took envelopes idx[0..n) (one import). */
static shoal__memstore *
enforcing(const world *w, const size_t *idx, size_t n, shoal_import_result *res)
{
    shoal__memstore *m = NULL;
    CHECK_EQ(shoal__memstore_new(&m), SHOAL_OK);
    shoal__memstore_set_root(m, w->k[ROOT].pk);
    uint64_t clock = 0;
    CHECK_EQ(import(m, w, idx, n, &clock, res), SHOAL_OK);
    return m;
}

static shoal__memstore *
enforcing_all(const world *w, shoal_import_result *res)
{
    size_t idx[MAXENV];
    for (size_t i = 0; i < w->n; i++)
        idx[i] = i;
    return enforcing(w, idx, w->n, res);
}

/* ------------------------------------------------------------ directed */

static void
test_verdicts(void)
{
    world w;
    setup(&w, 1);
    top stock = { SHOAL__OP_SET, "stock", 5 }, price = { SHOAL__OP_SET, "price", 9 };
    top store1 = { SHOAL__OP_SET, "store_id", 1 };
    top create[2] = { store1, stock };
    size_t c1 = write(&w, MGR1, "p1", 0, create, 2); /* manager creates: admitted */
    hear_all(&w, CLERK1);
    size_t ok = write(&w, CLERK1, "p1", 0, &stock, 1);    /* clerk counts: admitted */
    size_t bad = write(&w, CLERK1, "p1", 0, &price, 1);   /* clerk prices: forged */
    size_t dep = write(&w, CLERK1, "p1", 0, &stock, 1);   /* after the forged one */
    size_t other = write(&w, CLERK1, "p2", 0, create, 2); /* clerk may not create */
    hear_all(&w, MGR1);
    /* The manager, after all of it, writes what would be a valid creation
     * of p1 (its deps reach only rejected changes, so the document at them
     * is empty): only the rule that a change depending on a rejected one
     * is rejected too refuses it. */
    size_t mdep = write(&w, MGR1, "p1", 0, create, 2);
    size_t fresh = write(&w, MGR1, "p3", 0, create, 2); /* unrelated: admitted */
    size_t far = write(&w, CLERK2, "p1", 0, &stock, 1); /* store 2's clerk: rejected */
    shoal_import_result res;
    shoal__memstore *m = enforcing_all(&w, &res);
    CHECK(!shoal__memstore_is_rejected(m, w.id[c1]));
    CHECK(!shoal__memstore_is_rejected(m, w.id[ok]));
    CHECK(shoal__memstore_is_rejected(m, w.id[bad]));
    CHECK(shoal__memstore_is_rejected(m, w.id[dep])); /* depends on a rejected change */
    CHECK(shoal__memstore_is_rejected(m, w.id[other]));
    CHECK(shoal__memstore_is_rejected(m, w.id[mdep])); /* so does this one */
    CHECK(!shoal__memstore_is_rejected(m, w.id[fresh]));
    CHECK(shoal__memstore_is_rejected(m, w.id[far]));
    CHECK_EQ(shoal__memstore_rejected(m), 5);
    CHECK_EQ(shoal__memstore_pending(m), 0);
    CHECK_EQ(res.applied + shoal__memstore_rejected(m), w.n);
    /* Rejected changes have no effect: p1 holds the clerk's first count
     * (5) and the manager's creation, no price change; p2 does not exist. */
    const uint8_t *h;
    size_t nh;
    const shoal__doc *d =
        shoal__memstore_doc(m, (const uint8_t *)"products", 8, (const uint8_t *)"p2", 2, &h, &nh);
    CHECK(d == NULL || !shoal__doc_exists(d));
    /* p1 is what the admitted changes alone make of it (in open mode) */
    shoal__memstore *open = NULL;
    CHECK_EQ(shoal__memstore_new(&open), SHOAL_OK);
    size_t idx[MAXENV], n = 0;
    for (size_t i = 0; i < w.n; i++)
        if (i != bad && i != dep && i != other && i != mdep && i != far)
            idx[n++] = i;
    uint64_t clock = 0;
    CHECK_EQ(import(open, &w, idx, n, &clock, NULL), SHOAL_OK);
    shoal__buf b1, b2;
    shoal__buf_init(&b1);
    shoal__buf_init(&b2);
    d = shoal__memstore_doc(m, (const uint8_t *)"products", 8, (const uint8_t *)"p1", 2, &h, &nh);
    REQUIRE(d);
    CHECK_EQ(shoal__doc_encode_full(d, &b1), SHOAL_OK);
    d = shoal__memstore_doc(open, (const uint8_t *)"products", 8, (const uint8_t *)"p1", 2, &h,
                            &nh);
    REQUIRE(d);
    CHECK_EQ(shoal__doc_encode_full(d, &b2), SHOAL_OK);
    CHECK(b1.len == b2.len && memcmp(b1.p, b2.p, b1.len) == 0);
    shoal__buf_free(&b1);
    shoal__buf_free(&b2);
    d = shoal__memstore_doc(m, (const uint8_t *)"products", 8, (const uint8_t *)"p3", 2, &h, &nh);
    CHECK(d && shoal__doc_exists(d)); /* the manager's later creation */
    shoal__memstore_free(open);
    /* Duplicates of rejected changes are no-ops. */
    CHECK_EQ(import(m, &w, &bad, 1, &clock, &res), SHOAL_OK);
    CHECK_EQ(res.duplicate, 1);
    CHECK_EQ(shoal__memstore_rejected(m), 5);
    shoal__memstore_free(m);
    teardown(&w);
}

/* What a change names and the store lacks makes it wait; it applies when
 * that arrives, in a later import. */
static void
test_waits_for_authority(void)
{
    world w;
    setup(&w, 2);
    top stock = { SHOAL__OP_SET, "stock", 5 }, store1 = { SHOAL__OP_SET, "store_id", 1 };
    top create[2] = { store1, stock };
    size_t c1 = write(&w, MGR1, "p1", 0, create, 2);
    /* Everything but the manager's certificate (index 3 in setup: grant,
     * policy, then the certificates of CLERK1, MGR1, CLERK2). */
    size_t idx[MAXENV], n = 0;
    for (size_t i = 0; i < w.n; i++)
        if (i != 3)
            idx[n++] = i;
    shoal_import_result res;
    shoal__memstore *m = enforcing(&w, idx, n, &res);
    /* the change, and the admin's next seqs (the certificates of CLERK2,
     * MGR2 and REG) */
    CHECK_EQ(res.pending, 4);
    CHECK_EQ(shoal__memstore_pending(m), 4);
    CHECK(!shoal__memstore_is_rejected(m, w.id[c1]));
    size_t cert = 3;
    uint64_t clock = 0;
    CHECK_EQ(import(m, &w, &cert, 1, &clock, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 5); /* the certificate and the four it released */
    CHECK_EQ(shoal__memstore_pending(m), 0);
    CHECK_EQ(shoal__memstore_rejected(m), 0);
    shoal__memstore_free(m);
    /* Without the policy, nothing of the devices applies. */
    n = 0;
    for (size_t i = 0; i < w.n; i++)
        if (i != 1)
            idx[n++] = i;
    m = enforcing(&w, idx, n, &res);
    CHECK_EQ(shoal__memstore_pending(m), 1);
    shoal__memstore_free(m);
    teardown(&w);
}

/* Authority that does not hold: format 1, a certificate the admin had no
 * scope for, a self-issued one, a grant the device made itself. */
static void
test_bad_authority(void)
{
    world w;
    setup(&w, 3);
    top stock = { SHOAL__OP_SET, "stock", 5 }, store3 = { SHOAL__OP_SET, "store_id", 3 };
    top create[2] = { store3, stock };
    /* a format-1 change */
    size_t v1 = make(&w, MGR1, "products", "p1", 0, &stock, 1, NULL, 0, NULL, 0, SHOAL__FORMAT_V1);
    /* A certifies CLERK2 again as a manager of store 3: outside its scope */
    uint8_t grant[32];
    memcpy(grant, w.id[0], 32);
    size_t out = put_cert(&w, ADMIN, grant, CLERK2, "manager", 3);
    hear_all(&w, CLERK2);
    size_t use = write(&w, CLERK2, "p9", 0, create, 2); /* names the rejected cert */
    /* CLERK1 certifies itself as a manager: no grant to name */
    size_t self = put_cert(&w, CLERK1, NULL, CLERK1, "manager", 1);
    shoal_import_result res;
    shoal__memstore *m = enforcing_all(&w, &res);
    CHECK(shoal__memstore_is_rejected(m, w.id[v1]));
    CHECK(shoal__memstore_is_rejected(m, w.id[out]));
    CHECK(shoal__memstore_is_rejected(m, w.id[use]));
    CHECK(shoal__memstore_is_rejected(m, w.id[self]));
    CHECK_EQ(shoal__memstore_pending(m), 0);
    /* In open mode every one of them applies. */
    shoal__memstore *open = NULL;
    CHECK_EQ(shoal__memstore_new(&open), SHOAL_OK);
    size_t idx[MAXENV];
    for (size_t i = 0; i < w.n; i++)
        idx[i] = i;
    uint64_t clock = 0;
    CHECK_EQ(import(open, &w, idx, w.n, &clock, &res), SHOAL_OK);
    CHECK_EQ(res.applied, w.n);
    CHECK_EQ(shoal__memstore_rejected(open), 0);
    shoal__memstore_free(open);
    shoal__memstore_free(m);
    teardown(&w);
}

/* Per-document monotonicity (docs/permissions.md, "The write check"): an
 * author's change names a certificate serial and policy version at least
 * as new as its own earlier changes to the same document in its causal
 * past; another document, or a change that does not have the newer one
 * in its past, is judged on its own. */
static void
test_monotonic(void)
{
    world w;
    setup(&w, 5);
    top create[2] = { { SHOAL__OP_SET, "store_id", 1 }, { SHOAL__OP_SET, "stock", 1 } };
    top stock = { SHOAL__OP_SET, "stock", 2 };
    size_t a = write(&w, MGR1, "p1", 0, create, 2);
    uint8_t old[32];
    memcpy(old, w.k[MGR1].cert, 32);
    /* a new certificate (serial 2), heard, then named on p1 */
    hear_all(&w, ADMIN);
    put_cert_serial(&w, ADMIN, w.grant, MGR1, "manager", 1, 2);
    hear_all(&w, MGR1);
    size_t b = write(&w, MGR1, "p1", 0, &stock, 1);
    /* the old certificate again, after b on p1: refused */
    memcpy(w.k[MGR1].cert, old, 32);
    size_t back = write(&w, MGR1, "p1", 0, &stock, 1);
    /* on another document it is its first change: admitted */
    size_t other = write(&w, MGR1, "p2", 0, create, 2);
    /* the same for the policy: version 2 named on p2, then version 1 */
    memcpy(w.k[MGR1].cert, w.id[b - 1], 32); /* the serial-2 certificate again */
    publish_policy(&w, false);
    hear_all(&w, MGR1);
    size_t pol2 = write(&w, MGR1, "p2", 0, &stock, 1);
    memcpy(w.k[MGR1].policy, w.pol_id[0], 32);
    size_t pol1 = write(&w, MGR1, "p2", 0, &stock, 1);
    shoal_import_result res;
    shoal__memstore *m = enforcing_all(&w, &res);
    CHECK(!shoal__memstore_is_rejected(m, w.id[a]));
    CHECK(!shoal__memstore_is_rejected(m, w.id[b]));
    CHECK(shoal__memstore_is_rejected(m, w.id[back]));
    CHECK(!shoal__memstore_is_rejected(m, w.id[other]));
    CHECK(!shoal__memstore_is_rejected(m, w.id[pol2]));
    CHECK(shoal__memstore_is_rejected(m, w.id[pol1]));
    CHECK_EQ(shoal__memstore_pending(m), 0);
    shoal__memstore_free(m);
    teardown(&w);
}

/* ------------------------------------------------------------ property */

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

static const char *const DOCS[] = { "p1", "p2", "p3" };

static void
test_convergence(void)
{
    uint64_t seed = check_seed(0xe4f0ceull);
    long sets = check_env_long("SHOAL_ENFORCE_SETS", 300);
    uint64_t total = 0, rejected = 0, sealed = 0, sealed_ok = 0, proofs = 0, proofs_ok = 0;
    for (long s = 0; s < sets; s++) {
        check_rand_reseed(seed + (uint64_t)s);
        world w;
        /* each device's view enforces or not: an honest device never
         * depends on a change its replica rejected, a forger does */
        setup2(&w, seed + (uint64_t)s, (unsigned)check_rand_below(1u << NKEYS));
        static const int devs[] = { CLERK1, MGR1, CLERK2, MGR2 };
        /* the managers create the products first */
        for (int i = 0; i < 3; i++) {
            int64_t store = i < 2 ? 1 : 2;
            top create[2] = { { SHOAL__OP_SET, "store_id", store }, { SHOAL__OP_SET, "stock", 1 } };
            write(&w, store == 1 ? MGR1 : MGR2, DOCS[i], 0, create, 2);
        }
        for (int i = 0; i < NKEYS; i++)
            hear_all(&w, i);
        for (int step = 0; step < 40 && w.n < MAXENV - 4; step++) {
            int ki = devs[check_rand_below(4)];
            if (check_rand_below(4) == 0) {
                hear_all(&w, ki);
                continue;
            }
            /* Now and then the authority changes under the writers: a new
             * policy version (tightened or not), a device certified again
             * with another role or store (serial 2, 3...), or certified out
             * of the admin's scope (rejected, and so is what names it).
             * Writers name what they last heard of. */
            uint64_t ev = check_rand_below(30);
            if (ev == 0) {
                publish_policy(&w, check_rand_below(2) == 0);
                continue;
            }
            if (ev == 1 || ev == 2) {
                hear_all(&w, ADMIN);
                put_cert_serial(&w, ADMIN, w.grant, ki, check_rand_below(2) ? "clerk" : "manager",
                                ev == 2 ? 3 : 1 + (int64_t)check_rand_below(2), ++w.serial[ki]);
                continue;
            }
            if (ev == 3) {
                /* a revocation with a cut at or below what the victim
                 * wrote so far (its later changes, and those past the
                 * cut, VOID); the admin's: the certificates it issued
                 * past the cut are VOID, and so is what names them */
                uint64_t vr = check_rand_below(6);
                int victim = vr == 0 ? ADMIN : vr == 1 ? REG : ki;
                put_revoke(&w, victim, check_rand_below(w.k[victim].seq + 1));
                continue;
            }
            if (ev == 4) {
                /* the regional manager moves a product between stores */
                top mv = { SHOAL__OP_SET, "store_id", 1 + (int64_t)check_rand_below(2) };
                write(&w, REG, DOCS[check_rand_below(3)], 0, &mv, 1);
                continue;
            }
            const char *doc = DOCS[check_rand_below(3)];
            top ops[2];
            size_t nops = 1;
            uint64_t r = check_rand_below(24);
            if (r < 9) {
                ops[0] = (top){ SHOAL__OP_SET, "stock", (int64_t)check_rand_below(50) };
            } else if (r < 12) {
                ops[0] = (top){ SHOAL__OP_SET, "price", (int64_t)check_rand_below(50) };
            } else if (r < 15) {
                ops[0] = (top){ SHOAL__OP_SET, "store_id", 1 + (int64_t)check_rand_below(2) };
                ops[1] = (top){ SHOAL__OP_COUNT, "stock", 1 };
                nops = 2;
            } else if (r < 19) {
                ops[0] = (top){ SHOAL__OP_COUNT, "stock", 1 };
            } else if (r < 20) {
                ops[0] = (top){ SHOAL__OP_DELDOC, NULL, 0 };
            } else {
                /* restricted fields: sealed under POLICY, in clear under
                 * the tight one; now and then the sealing is forged */
                ops[0] = (top){ SHOAL__OP_SET, "secret", (int64_t)check_rand_below(50) };
                ops[1] = (top){ SHOAL__OP_COUNT, "tally", 1 + (int64_t)check_rand_below(5) };
                nops = 1 + check_rand_below(2);
                w.forge_seal = check_rand_below(6) == 0;
            }
            /* the epoch of the doc in the writer's view (re-create after a delete) */
            const uint8_t *h;
            size_t nh;
            const shoal__doc *d = shoal__memstore_doc(w.k[ki].view, (const uint8_t *)"products", 8,
                                                      (const uint8_t *)doc, strlen(doc), &h, &nh);
            uint64_t epoch = d ? shoal__doc_epoch(d) + (shoal__doc_deleted(d) ? 1 : 0) : 0;
            write(&w, ki, doc, epoch, ops, nops);
        }
        /* Now and then a device equivocates at the end (nobody else
         * builds on either version) and the root or another device
         * publishes the proof: both versions VOID everywhere, whichever
         * a store applied, so the state and every other verdict agree.
         * Which version a store keeps as evidence, rejected or applied
         * depends on the order (docs/permissions.md, "Limits"). */
        size_t eqa = SIZE_MAX, eqb = SIZE_MAX, proof = SIZE_MAX;
        if (check_rand_below(3) == 0 && w.n < MAXENV - 4) {
            int ki = devs[check_rand_below(4)];
            uint64_t d = check_rand_below(3);
            equivocate(&w, ki, DOCS[d], DOCS[(d + 1) % 3], &eqa, &eqb);
            proof =
                put_equiv(&w, check_rand_below(2) ? ROOT : (ki == MGR1 ? MGR2 : MGR1), eqa, eqb);
        }
        /* the reference: one store, everything at once */
        shoal_import_result res;
        shoal__memstore *ref = enforcing_all(&w, &res);
        if (proof != SIZE_MAX && shoal__memstore_is_rejected(ref, w.id[proof])) {
            /* the device's certificate did not hold: the root proves it,
             * building on what its enforcing replica admitted (ref) */
            shoal__memstore *own = w.k[ROOT].view;
            w.k[ROOT].view = ref;
            (void)put_equiv(&w, ROOT, eqa, eqb);
            w.k[ROOT].view = own;
            shoal__memstore_free(ref);
            ref = enforcing_all(&w, &res);
        }
        uint8_t rf[32], rv[32];
        CHECK_EQ(shoal__memstore_digest(ref, true, rf), SHOAL_OK);
        CHECK_EQ(shoal__memstore_digest(ref, false, rv), SHOAL_OK);
        uint64_t rrej = shoal__memstore_rejected(ref);
        CHECK_EQ(shoal__memstore_pending(ref), 0);
        total += w.n;
        rejected += rrej;
        for (size_t i = 0; i < w.n; i++) {
            if (w.disclen[i]) {
                sealed++;
                sealed_ok += !shoal__memstore_is_rejected(ref, w.id[i]);
            }
            shoal__change c;
            REQUIRE(shoal__envelope_decode(w.env[i], w.len[i], &c) == SHOAL_OK);
            uint8_t target[32];
            uint64_t cut;
            if (shoal__change_cut(&c, target, &cut) && c.doc_len > 13 &&
                memcmp(c.doc, "equivocation:", 13) == 0) {
                proofs++;
                proofs_ok += !shoal__memstore_is_rejected(ref, w.id[i]);
            }
            shoal__change_clear(&c);
        }
        for (int order = 0; order < 4; order++) {
            size_t idx[MAXENV * 2], n = 0;
            for (size_t i = 0; i < w.n; i++) {
                idx[n++] = i;
                if (check_rand_below(6) == 0)
                    idx[n++] = i;
            }
            shuffle(idx, n);
            shoal__memstore *m = NULL;
            CHECK_EQ(shoal__memstore_new(&m), SHOAL_OK);
            shoal__memstore_set_root(m, w.k[ROOT].pk);
            uint64_t clock = 0;
            /* the last order gets no sealed group: the same verdicts,
             * values REDACTED, until the groups come with the envelopes
             * again (duplicates) */
            bool withhold = order == 3;
            for (size_t at = 0; at < n;) {
                size_t b = 1 + check_rand_below(8);
                if (b > n - at)
                    b = n - at;
                CHECK_EQ(import_with(m, &w, idx + at, b, &clock, NULL, withhold), SHOAL_OK);
                at += b;
            }
            bool same = true;
            if (withhold) {
                same = (eqa != SIZE_MAX || shoal__memstore_rejected(m) == rrej) &&
                       shoal__memstore_pending(m) == 0;
                for (size_t i = 0; same && i < w.n; i++)
                    same = i == eqa || i == eqb ||
                           shoal__memstore_is_rejected(m, w.id[i]) ==
                               shoal__memstore_is_rejected(ref, w.id[i]);
                shuffle(idx, n);
                for (size_t at = 0; at < n;) {
                    size_t b = 1 + check_rand_below(8);
                    if (b > n - at)
                        b = n - at;
                    CHECK_EQ(import(m, &w, idx + at, b, &clock, NULL), SHOAL_OK);
                    at += b;
                }
            }
            uint8_t f[32], v[32];
            CHECK_EQ(shoal__memstore_digest(m, true, f), SHOAL_OK);
            CHECK_EQ(shoal__memstore_digest(m, false, v), SHOAL_OK);
            same = same && memcmp(f, rf, 32) == 0 && memcmp(v, rv, 32) == 0 &&
                   (eqa != SIZE_MAX || shoal__memstore_rejected(m) == rrej) &&
                   shoal__memstore_pending(m) == 0;
            for (size_t i = 0; same && i < w.n; i++)
                same = i == eqa || i == eqb ||
                       shoal__memstore_is_rejected(m, w.id[i]) ==
                           shoal__memstore_is_rejected(ref, w.id[i]);
            if (!same) {
                fprintf(stderr,
                        "set %ld (SHOAL_SEED=%llu SHOAL_ENFORCE_SETS=1), order %d differs\n", s,
                        (unsigned long long)(seed + (uint64_t)s), order);
                check_failures++;
            }
            shoal__memstore_free(m);
        }
        shoal__memstore_free(ref);
        teardown(&w);
        if (check_failures)
            break;
    }
    printf("enforce: %ld sets, %llu changes, %llu rejected, %llu sealed (%llu admitted), "
           "%llu equivocation proofs (%llu admitted)\n",
           sets, (unsigned long long)total, (unsigned long long)rejected,
           (unsigned long long)sealed, (unsigned long long)sealed_ok, (unsigned long long)proofs,
           (unsigned long long)proofs_ok);
    CHECK(proofs_ok > (uint64_t)sets / 10); /* equivocation proofs take effect */
    CHECK(sealed_ok > (uint64_t)sets / 2);  /* sealed changes take effect */
    CHECK(rejected > total / 20);           /* forged changes are common */
    CHECK(rejected < total * 3 / 4);        /* and so are admitted ones */
}

/* ----------------------------------------------------- a real replica */

/* The managers create three products, then steps of random writes (a
 * price, a store move, a count: the first nkinds of them) by random
 * devices, some of which first hear everything. */
static void
small_set(world *w, int steps, uint64_t nkinds)
{
    static const int devs[] = { CLERK1, MGR1, CLERK2, MGR2 };
    for (int i = 0; i < 3; i++) {
        int64_t store = i < 2 ? 1 : 2;
        top create[2] = { { SHOAL__OP_SET, "store_id", store }, { SHOAL__OP_SET, "stock", 1 } };
        write(w, store == 1 ? MGR1 : MGR2, DOCS[i], 0, create, 2);
    }
    for (int step = 0; step < steps && w->n < MAXENV - 4; step++) {
        int ki = devs[check_rand_below(4)];
        if (check_rand_below(3) == 0) {
            hear_all(w, ki);
            continue;
        }
        if (check_rand_below(40) == 0) {
            put_revoke(w, ki, check_rand_below(w->k[ki].seq + 1));
            continue;
        }
        uint64_t r = check_rand_below(nkinds);
        top op = r == 0   ? (top){ SHOAL__OP_SET, "price", 3 }
                 : r == 1 ? (top){ SHOAL__OP_SET, "store_id", 1 + (int64_t)check_rand_below(2) }
                          : (top){ SHOAL__OP_COUNT, "stock", 1 };
        write(w, ki, DOCS[check_rand_below(3)], 0, &op, 1);
    }
}

/* The replicas' wall clock: WALL_MS, moved on only by test_expiry (the
 * network engine's thread reads it too). */
static _Atomic uint64_t clock_ms = WALL_MS;

static uint64_t
fixed_now(void *ctx)
{
    (void)ctx;
    return atomic_load(&clock_ms);
}

static shoal_replica *
open_replica(const char *dir, const uint8_t *root, int *err)
{
    shoal_options *o = NULL;
    shoal_replica *r = NULL;
    CHECK_EQ(shoal_options_new(&o), SHOAL_OK);
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, fixed_now, NULL);
    if (root)
        shoal__options_set_root(o, root);
    *err = shoal_replica_open(&r, dir, o);
    shoal_options_free(o);
    return r;
}

static int
bundle_import(shoal_replica *r, const world *w, const size_t *idx, size_t n,
              shoal_import_result *res)
{
    shoal__buf bb;
    shoal__buf_init(&bb);
    int err = shoal__bundle_begin(&bb);
    for (size_t i = 0; !err && i < n; i++)
        err = shoal__bundle_add(&bb, w->env[idx[i]], w->len[idx[i]]);
    if (!err) {
        shoal__bundle_finish(&bb, (uint32_t)n);
        err = shoal_import(r, bb.p, bb.len, res);
    }
    shoal__buf_free(&bb);
    return err;
}

typedef struct rej_ctx {
    const world *w;
    bool rejected[MAXENV];
} rej_ctx;

static int
rej_fn(shoal__stxn *t, void *arg)
{
    rej_ctx *c = arg;
    for (size_t i = 0; i < c->w->n; i++)
        c->rejected[i] = shoal__stxn_rejected_has(t, c->w->id[i]);
    return SHOAL_OK;
}

static void
problem_fn(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "check: %s\n", line);
}

/* The LMDB store does what the in-memory one does: the same rejected
 * changes, digests and nothing pending, in random bundles; `check` finds
 * nothing wrong; a reopened replica still enforces, and one created
 * without a root refuses to take one. */
static void
test_replica(void)
{
    uint64_t seed = check_seed(0x4e9114ull);
    long sets = check_env_long("SHOAL_ENFORCE_REPLICA_SETS", 12);
    for (long s = 0; s < sets; s++) {
        check_rand_reseed(seed + (uint64_t)s);
        world w;
        setup2(&w, seed + (uint64_t)s, (unsigned)check_rand_below(1u << NKEYS));
        small_set(&w, 30, 4);
        shoal__memstore *ref = enforcing_all(&w, NULL);
        char *dir = check_tmpdir("enforce");
        REQUIRE(dir);
        int err;
        shoal_replica *rp = open_replica(dir, w.k[ROOT].pk, &err);
        CHECK_EQ(err, SHOAL_OK);
        size_t idx[MAXENV * 2], n = 0;
        for (size_t i = 0; i < w.n; i++) {
            idx[n++] = i;
            if (check_rand_below(6) == 0)
                idx[n++] = i;
        }
        shuffle(idx, n);
        for (size_t at = 0; rp && at < n;) {
            size_t b = 1 + check_rand_below(10);
            if (b > n - at)
                b = n - at;
            CHECK_EQ(bundle_import(rp, &w, idx + at, b, NULL), SHOAL_OK);
            at += b;
        }
        uint8_t f1[32], f2[32], v1[32], v2[32];
        uint64_t pending = 1;
        rej_ctx rc = { &w, { false } };
        if (rp) {
            CHECK_EQ(shoal_digest(rp, true, f1), SHOAL_OK);
            CHECK_EQ(shoal_digest(rp, false, v1), SHOAL_OK);
            CHECK_EQ(shoal_pending_count(rp, &pending), SHOAL_OK);
            CHECK_EQ(shoal__store_read(rp->store, rej_fn, &rc), SHOAL_OK);
            shoal_check_stats st;
            CHECK_EQ(shoal_replica_check(rp, problem_fn, NULL, &st), SHOAL_OK);
            CHECK_EQ(st.problems, 0);
        }
        CHECK_EQ(shoal__memstore_digest(ref, true, f2), SHOAL_OK);
        CHECK_EQ(shoal__memstore_digest(ref, false, v2), SHOAL_OK);
        bool same = memcmp(f1, f2, 32) == 0 && memcmp(v1, v2, 32) == 0 && pending == 0;
        for (size_t i = 0; same && i < w.n; i++)
            same = rc.rejected[i] == shoal__memstore_is_rejected(ref, w.id[i]);
        if (!same) {
            fprintf(stderr, "replica: set %ld (SHOAL_SEED=%llu) differs from the memory store\n", s,
                    (unsigned long long)(seed + (uint64_t)s));
            check_failures++;
        }
        shoal_replica_close(rp);
        /* reopened without the option: still enforcing; with another root: refused */
        rp = open_replica(dir, NULL, &err);
        CHECK_EQ(err, SHOAL_OK);
        if (rp) {
            CHECK(rp->enforce && memcmp(rp->root, w.k[ROOT].pk, 32) == 0);
            shoal_replica_close(rp);
        }
        rp = open_replica(dir, w.k[ADMIN].pk, &err);
        CHECK_EQ(err, SHOAL_EINVAL);
        shoal_replica_close(rp);
        check_rmtree(dir);
        free(dir);
        /* a replica created without a root that holds changes keeps none */
        dir = check_tmpdir("enforce");
        rp = open_replica(dir, NULL, &err);
        size_t first = 0; /* the root's grant: it applies at once */
        CHECK_EQ(bundle_import(rp, &w, &first, 1, NULL), SHOAL_OK);
        shoal_replica_close(rp);
        rp = open_replica(dir, w.k[ROOT].pk, &err);
        CHECK_EQ(err, SHOAL_EINVAL);
        shoal_replica_close(rp);
        check_rmtree(dir);
        free(dir);
        shoal__memstore_free(ref);
        teardown(&w);
        if (check_failures)
            break;
    }
}

/* Over real links: a replica in open mode holds a set of honest and
 * forged changes and syncs it to an enforcing one, which another
 * enforcing replica then syncs with.  Both hold what the in-memory store
 * holds: rejected changes travel (they keep their seq slots) and are
 * rejected again on arrival. */
static void
test_sync(void)
{
    uint64_t seed = check_seed(0x5c4e);
    check_rand_reseed(seed);
    world w;
    setup2(&w, seed, 0);
    size_t nsetup = w.n;
    small_set(&w, 40, 3);
    char *da = check_tmpdir("enforce-a"), *db = check_tmpdir("enforce-b"),
         *dc = check_tmpdir("enforce-c");
    int err;
    shoal_replica *a = open_replica(da, w.k[ROOT].pk, &err);
    shoal_replica *b = open_replica(db, w.k[ROOT].pk, &err);
    shoal_replica *c = open_replica(dc, NULL, &err);
    REQUIRE(a && b && c);
    /* b and c link to a as full replicas: a serves them everything only
     * if their roles read it all (a relay's); a holds the authority
     * before they link */
    put_cert_pk(&w, ADMIN, w.grant, shoal_replica_id(b), "relay", 1, 1);
    put_cert_pk(&w, ADMIN, w.grant, shoal_replica_id(c), "relay", 1, 1);
    shoal__memstore *ref = enforcing_all(&w, NULL);
    CHECK(shoal__memstore_rejected(ref) > 0);
    size_t idx[MAXENV];
    for (size_t i = 0; i < nsetup; i++)
        idx[i] = i;
    idx[nsetup] = w.n - 2;
    idx[nsetup + 1] = w.n - 1;
    CHECK_EQ(bundle_import(a, &w, idx, nsetup + 2, NULL), SHOAL_OK);
    for (size_t i = 0; i < w.n; i++)
        idx[i] = i;
    shoal_import_result res;
    CHECK_EQ(bundle_import(c, &w, idx, w.n, &res), SHOAL_OK);
    CHECK_EQ(res.applied, w.n); /* open mode: everything */
    char *ep = NULL;
    CHECK_EQ(shoal_net_allow_any(a, true), SHOAL_OK);
    CHECK_EQ(shoal_net_listen(a, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    uint8_t ak[32];
    memcpy(ak, shoal_replica_id(a), 32);
    CHECK_EQ(shoal_net_sync(c, ep, ak, 20000), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(b, ep, ak, 20000), SHOAL_OK);
    uint8_t rf[32], f[32];
    CHECK_EQ(shoal__memstore_digest(ref, true, rf), SHOAL_OK);
    shoal_replica *both[2] = { a, b };
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(shoal_digest(both[i], true, f), SHOAL_OK);
        CHECK(memcmp(f, rf, 32) == 0);
        uint64_t pending = 1;
        CHECK_EQ(shoal_pending_count(both[i], &pending), SHOAL_OK);
        CHECK_EQ(pending, 0);
        rej_ctx rc = { &w, { false } };
        CHECK_EQ(shoal__store_read(both[i]->store, rej_fn, &rc), SHOAL_OK);
        for (size_t k = 0; k < w.n; k++)
            CHECK(rc.rejected[k] == shoal__memstore_is_rejected(ref, w.id[k]));
    }
    shoal_free(ep);
    shoal_replica_close(a);
    shoal_replica_close(b);
    shoal_replica_close(c);
    check_rmtree(da);
    check_rmtree(db);
    check_rmtree(dc);
    free(da);
    free(db);
    free(dc);
    shoal__memstore_free(ref);
    teardown(&w);
}

typedef struct held_ctx {
    const world *w;
    bool held[MAXENV];
} held_ctx;

static int
held_fn(shoal__stxn *t, void *arg)
{
    held_ctx *c = arg;
    for (size_t i = 0; i < c->w->n; i++)
        c->held[i] = shoal__stxn_change_has(t, c->w->id[i]);
    return SHOAL_OK;
}

/* Whether two documents show the same registers and counters. */
static bool
same_doc(const shoal_doc *x, const shoal_doc *y)
{
    size_t n = shoal_doc_field_count(x);
    if (n != shoal_doc_field_count(y))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(shoal_doc_field_name(x, i), shoal_doc_field_name(y, i)) != 0 ||
            shoal_doc_field_kind(x, i) != shoal_doc_field_kind(y, i))
            return false;
        shoal_value a, b;
        int64_t ca = 0, cb = 0;
        if (shoal_doc_field_kind(x, i) == SHOAL_K_REGISTER) {
            if (shoal_doc_field_value(x, i, &a) || shoal_doc_field_value(y, i, &b) ||
                !shoal__value_eq(&a, &b))
                return false;
        } else if (shoal_doc_field_kind(x, i) == SHOAL_K_COUNTER) {
            if (shoal_doc_field_counter(x, i, &ca) || shoal_doc_field_counter(y, i, &cb) ||
                ca != cb)
                return false;
        }
    }
    return true;
}

/* A partial replica that enforces permissions (docs/sync.md), certified
 * as store 1's clerk and subscribed to more than that (every product, or
 * stores 1 and 2): it syncs from an enforcing replica that holds a set of
 * honest and forged changes, and holds store 1's documents exactly as that
 * replica does and no other (role AND subscription), rejected changes
 * rejected, nothing pending. */
static void
test_partial(void)
{
    uint64_t seed = check_seed(0x9a471a1);
    long sets = check_env_long("SHOAL_ENFORCE_PARTIAL_SETS", 6);
    for (long s = 0; s < sets; s++) {
        check_rand_reseed(seed + (uint64_t)s);
        world w;
        setup2(&w, seed + (uint64_t)s, (unsigned)check_rand_below(1u << NKEYS));
        small_set(&w, 30, 3);
        char *da = check_tmpdir("enforce-pa"), *db = check_tmpdir("enforce-pb");
        int err;
        shoal_replica *a = open_replica(da, w.k[ROOT].pk, &err);
        shoal_replica *b = open_replica(db, w.k[ROOT].pk, &err);
        REQUIRE(a && b);
        /* b is store 1's clerk: it subscribes to every product and
         * receives what its role reads (role AND subscription) */
        put_cert_pk(&w, ADMIN, w.grant, shoal_replica_id(b), "clerk", 1, 1);
        size_t idx[MAXENV];
        for (size_t i = 0; i < w.n; i++)
            idx[i] = i;
        CHECK_EQ(bundle_import(a, &w, idx, w.n, NULL), SHOAL_OK);
        shoal_query *q = NULL;
        CHECK_EQ(shoal_query_new(b, "products", s % 2 ? NULL : "store_id IN (1, 2)", &q), SHOAL_OK);
        CHECK_EQ(shoal_subscribe(b, "s1", q), SHOAL_OK);
        shoal_query_free(q);
        char *ep = NULL;
        CHECK_EQ(shoal_net_allow_any(a, true), SHOAL_OK);
        CHECK_EQ(shoal_net_listen(a, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
        REQUIRE(ep);
        uint8_t ak[32];
        memcpy(ak, shoal_replica_id(a), 32);
        CHECK_EQ(shoal_net_sync(b, ep, ak, 20000), SHOAL_OK);
        uint64_t pending = 1;
        CHECK_EQ(shoal_pending_count(b, &pending), SHOAL_OK);
        CHECK_EQ(pending, 0);
        for (int d = 0; d < 3; d++) {
            shoal_doc *x = NULL, *y = NULL;
            int ea = shoal_doc_get(a, "products", DOCS[d], &x);
            int eb = shoal_doc_get(b, "products", DOCS[d], &y);
            int64_t store = -1;
            size_t fi;
            shoal_value v;
            if (ea == SHOAL_OK && shoal_doc_field_find(x, "store_id", &fi) == SHOAL_OK &&
                shoal_doc_field_value(x, fi, &v) == SHOAL_OK && v.type == SHOAL_T_INT)
                store = v.i;
            if (store == 1) {
                CHECK_EQ(eb, SHOAL_OK);
                if (eb == SHOAL_OK)
                    CHECK(same_doc(x, y));
            } else {
                CHECK(eb != SHOAL_OK);
            }
            shoal_doc_free(x);
            shoal_doc_free(y);
        }
        /* every change the partial replica holds has the full one's verdict */
        rej_ctx ra = { &w, { false } }, rb = { &w, { false } };
        held_ctx hb = { &w, { false } };
        CHECK_EQ(shoal__store_read(a->store, rej_fn, &ra), SHOAL_OK);
        CHECK_EQ(shoal__store_read(b->store, rej_fn, &rb), SHOAL_OK);
        CHECK_EQ(shoal__store_read(b->store, held_fn, &hb), SHOAL_OK);
        size_t held = 0;
        for (size_t i = 0; i < w.n; i++) {
            held += hb.held[i];
            CHECK(!hb.held[i] || rb.rejected[i] == ra.rejected[i]);
        }
        CHECK(held > 0 && held < w.n);
        shoal_check_stats st;
        CHECK_EQ(shoal_replica_check(b, problem_fn, NULL, &st), SHOAL_OK);
        CHECK_EQ(st.problems, 0);
        shoal_free(ep);
        shoal_replica_close(a);
        shoal_replica_close(b);
        check_rmtree(da);
        check_rmtree(db);
        free(da);
        free(db);
        teardown(&w);
        if (check_failures)
            break;
    }
}

/* ------------------------------------------------------- local writes */

/* A replica in a new directory that trusts root (NULL: its own key). */
static shoal_replica *
new_replica(char **dir, const uint8_t *root)
{
    *dir = check_tmpdir("enforce-local");
    int err;
    shoal_replica *r = open_replica(*dir, NULL, &err);
    CHECK_EQ(err, SHOAL_OK);
    uint8_t pk[32];
    memcpy(pk, shoal_replica_id(r), 32);
    shoal_replica_close(r);
    r = open_replica(*dir, root ? root : pk, &err);
    CHECK_EQ(err, SHOAL_OK);
    return r;
}

/* One SET of "object" to bytes in _auth/doc. */
static int
put_object(shoal_replica *r, const char *doc, const shoal__buf *obj)
{
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(r, &t);
    shoal_value v = { .type = SHOAL_T_BYTES, .ptr = obj->p, .len = obj->len };
    if (!err)
        err = shoal_txn_set(t, "_auth", doc, "object", &v);
    if (!err)
        return shoal_txn_commit(t);
    shoal_txn_abort(t);
    return err;
}

static int
put_int(shoal_replica *r, const char *doc, const char *f1, int64_t v1, const char *f2, int64_t v2)
{
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(r, &t);
    shoal_value a = { .type = SHOAL_T_INT, .i = v1 }, b = { .type = SHOAL_T_INT, .i = v2 };
    if (!err)
        err = shoal_txn_set(t, "products", doc, f1, &a);
    if (!err && f2)
        err = shoal_txn_set(t, "products", doc, f2, &b);
    if (!err)
        return shoal_txn_commit(t);
    shoal_txn_abort(t);
    return err;
}

/* Move everything a holds to b. */
static void
pass(shoal_replica *a, shoal_replica *b)
{
    uint8_t *bundle = NULL;
    size_t len = 0;
    CHECK_EQ(shoal_export(a, NULL, &bundle, &len), SHOAL_OK);
    CHECK_EQ(shoal_import(b, bundle, len, NULL), SHOAL_OK);
    shoal_free(bundle);
}

static uint64_t
own_seq(shoal_replica *r)
{
    shoal_vv *vv = NULL;
    uint64_t seq = 0;
    CHECK_EQ(shoal_replica_version(r, &vv), SHOAL_OK);
    for (size_t i = 0; i < shoal_vv_count(vv); i++) {
        const uint8_t *k = NULL;
        uint64_t s = 0;
        CHECK_EQ(shoal_vv_entry(vv, i, &k, &s), SHOAL_OK);
        if (k && memcmp(k, shoal_replica_id(r), 32) == 0)
            seq = s;
    }
    shoal_vv_free(vv);
    return seq;
}

/* A device's own writes are checked before they commit: one its role does
 * not allow fails with SHOAL_EPERM, naming the rule, and writes nothing
 * (no seq taken, same digest); one it allows is written in format 2 and
 * admitted by the root's replica. */
static void
test_local_writes(void)
{
    char *rdir, *ddir, *odir;
    shoal_replica *root = new_replica(&rdir, NULL);
    const uint8_t *rk = shoal_replica_id(root);
    shoal_replica *dev = new_replica(&ddir, rk);
    shoal_replica *other = new_replica(&odir, rk); /* enrolled nowhere */
    REQUIRE(root && dev && other);
    /* the root publishes the policy and certifies dev as a manager of store 1 */
    shoal__buf b;
    shoal__buf_init(&b);
    char err[200];
    CHECK_EQ(shoal__policy_from_json(POLICY, strlen(POLICY), 1, NULL, &b, err, sizeof err),
             SHOAL_OK);
    CHECK_EQ(put_object(root, "policy", &b), SHOAL_OK);
    shoal__cert ce;
    memset(&ce, 0, sizeof ce);
    memcpy(ce.subject, shoal_replica_id(dev), 32);
    shoal__name role = { (const uint8_t *)"manager", 7 }, an = { (const uint8_t *)"store_id", 8 };
    shoal_value av = { .type = SHOAL_T_INT, .i = 1 };
    ce.user = (shoal__name){ (const uint8_t *)"u", 1 };
    ce.nroles = 1;
    ce.roles = &role;
    ce.nattrs = 1;
    ce.attr_names = &an;
    ce.attr_vals = &av;
    ce.not_after = UINT64_MAX;
    ce.serial = 1;
    ce.policy_floor = 1;
    b.len = 0;
    CHECK_EQ(shoal__cert_encode(&ce, &b), SHOAL_OK);
    char doc[SHOAL__AUTH_DOCID_MAX];
    shoal__auth_docid(SHOAL__AUTH_CERT, shoal_replica_id(dev), doc);
    CHECK_EQ(put_object(root, doc, &b), SHOAL_OK);
    /* the root may not certify itself */
    memcpy(ce.subject, rk, 32);
    b.len = 0;
    CHECK_EQ(shoal__cert_encode(&ce, &b), SHOAL_OK);
    shoal__auth_docid(SHOAL__AUTH_CERT, rk, doc);
    CHECK_EQ(put_object(root, doc, &b), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(root), "certify itself") != NULL);
    pass(root, dev);
    pass(root, other);

    /* allowed: a product of store 1 */
    CHECK_EQ(put_int(dev, "p1", "store_id", 1, "stock", 4), SHOAL_OK);
    uint64_t seq = own_seq(dev);
    uint8_t before[32], after[32];
    CHECK_EQ(shoal_digest(dev, true, before), SHOAL_OK);
    /* not allowed: creating in store 2, moving p1 there */
    CHECK_EQ(put_int(dev, "p2", "store_id", 2, "stock", 4), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(dev), "products/p2") != NULL);
    CHECK(strstr(shoal_replica_errmsg(dev), "create") != NULL);
    CHECK_EQ(put_int(dev, "p1", "store_id", 2, NULL, 0), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(dev), "store_id") != NULL);
    /* nothing written, no seq taken */
    CHECK_EQ(shoal_digest(dev, true, after), SHOAL_OK);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_EQ(own_seq(dev), seq);
    /* nor may it write _auth, holding no admin grant */
    CHECK_EQ(put_object(dev, "policy", &b), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(dev), "admin grant") != NULL);
    /* a key with no certificate writes nothing */
    CHECK_EQ(put_int(other, "p3", "store_id", 1, NULL, 0), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(other), "no certificate") != NULL);
    /* the next allowed write takes the next seq; the root admits all of it */
    CHECK_EQ(put_int(dev, "p1", "stock", 5, NULL, 0), SHOAL_OK);
    CHECK_EQ(own_seq(dev), seq + 1);
    pass(dev, root);
    uint8_t d1[32], d2[32];
    CHECK_EQ(shoal_digest(dev, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(root, true, d2), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0);
    uint64_t pending = 1;
    CHECK_EQ(shoal_pending_count(root, &pending), SHOAL_OK);
    CHECK_EQ(pending, 0);
    shoal_check_stats st;
    CHECK_EQ(shoal_replica_check(root, problem_fn, NULL, &st), SHOAL_OK);
    CHECK_EQ(st.problems, 0);
    shoal__buf_free(&b);
    shoal_replica_close(root);
    shoal_replica_close(dev);
    shoal_replica_close(other);
    check_rmtree(rdir);
    check_rmtree(ddir);
    check_rmtree(odir);
    free(rdir);
    free(ddir);
    free(odir);
}

/* The public API: the root option, policies, certificates, admins, show. */
static void
test_public_api(void)
{
    char *rdir, *adir, *ddir, *odir;
    shoal_replica *root = new_replica(&rdir, NULL);
    REQUIRE(root);
    const uint8_t *rk = shoal_replica_id(root);
    shoal_replica *adm = new_replica(&adir, rk), *dev = new_replica(&ddir, rk);
    uint8_t got[32];
    CHECK_EQ(shoal_replica_root(root, got), SHOAL_OK);
    CHECK(memcmp(got, rk, 32) == 0);
    /* policies: versions count up; a bad one names its fault */
    uint64_t v = 0;
    CHECK_EQ(shoal_auth_policy(root, POLICY, strlen(POLICY), &v), SHOAL_OK);
    CHECK_EQ(v, 1);
    CHECK_EQ(shoal_auth_policy(root, POLICY, strlen(POLICY), &v), SHOAL_OK);
    CHECK_EQ(v, 2);
    const char *bad = "{\"collections\": {}, \"roles\": {\"r\": {\"c\": {\"where\": \"TRUE\"}}}}";
    CHECK_EQ(shoal_auth_policy(root, bad, strlen(bad), &v), SHOAL_EINVAL);
    CHECK(strstr(shoal_replica_errmsg(root), "not declared") != NULL);
    /* an admin for store 1's clerks; a manager certificate for dev */
    CHECK_EQ(shoal_auth_admin(root, shoal_replica_id(adm), SHOAL_CAP_ISSUE,
                              "store_id == 1 AND role == \"clerk\"", 0),
             SHOAL_OK);
    CHECK_EQ(shoal_auth_admin(root, shoal_replica_id(adm), 16, NULL, 0), SHOAL_EINVAL);
    CHECK_EQ(shoal_auth_admin(root, shoal_replica_id(adm), 1, "x ==", 0), SHOAL_EINVAL);
    CHECK(strstr(shoal_replica_errmsg(root), "scope") != NULL);
    const char *roles[] = { "manager" }, *an[] = { "store_id" };
    shoal_value av[] = { { .type = SHOAL_T_INT, .i = 1 } };
    shoal_cert_spec spec = { "ann", roles, 1, an, av, 1, 0 };
    CHECK_EQ(shoal_auth_grant(root, shoal_replica_id(dev), &spec), SHOAL_OK);
    pass(root, adm);
    pass(root, dev);
    /* the admin issues within its scope only */
    const char *clerk[] = { "clerk" };
    shoal_cert_spec cs = { "bob", clerk, 1, an, av, 1, 3600000 };
    uint8_t other[32];
    memset(other, 0x77, 32);
    CHECK_EQ(shoal_auth_grant(adm, other, &cs), SHOAL_OK);
    shoal_value two[] = { { .type = SHOAL_T_INT, .i = 2 } };
    cs.attr_values = two;
    CHECK_EQ(shoal_auth_grant(adm, other, &cs), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(adm), "scope") != NULL);
    CHECK_EQ(shoal_auth_grant(adm, shoal_replica_id(adm), &spec), SHOAL_EPERM);
    /* nor may it publish policies */
    CHECK_EQ(shoal_auth_policy(adm, POLICY, strlen(POLICY), &v), SHOAL_EPERM);
    /* the device writes what its role allows */
    CHECK_EQ(put_int(dev, "p1", "store_id", 1, "price", 3), SHOAL_OK);
    CHECK_EQ(put_int(dev, "p2", "store_id", 2, NULL, 0), SHOAL_EPERM);
    /* deletes: the manager may, and may re-create; a clerk may do neither */
    CHECK_EQ(put_int(dev, "p3", "store_id", 1, "stock", 1), SHOAL_OK);
    shoal_txn *t = NULL;
    CHECK_EQ(shoal_txn_begin(dev, &t), SHOAL_OK);
    CHECK_EQ(shoal_txn_delete(t, "products", "p3"), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    CHECK_EQ(put_int(dev, "p3", "store_id", 2, NULL, 0), SHOAL_EPERM); /* re-create elsewhere */
    CHECK_EQ(put_int(dev, "p3", "store_id", 1, NULL, 0), SHOAL_OK);
    char *cdir;
    shoal_replica *clerkr = new_replica(&cdir, rk);
    shoal_cert_spec ccs = { "cy", clerk, 1, an, av, 1, 0 };
    CHECK_EQ(shoal_auth_grant(root, shoal_replica_id(clerkr), &ccs), SHOAL_OK);
    pass(root, clerkr);
    pass(dev, clerkr);
    CHECK_EQ(shoal_txn_begin(clerkr, &t), SHOAL_OK);
    CHECK_EQ(shoal_txn_delete(t, "products", "p3"), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(clerkr), "delete") != NULL);
    CHECK_EQ(put_int(clerkr, "p3", "stock", 4, NULL, 0), SHOAL_OK);          /* a count it may */
    CHECK_EQ(put_int(clerkr, "p3", "stock", 4, "store_id", 1), SHOAL_EPERM); /* a guard */
    shoal_replica_close(clerkr);
    check_rmtree(cdir);
    free(cdir);
    pass(adm, root);
    pass(dev, root);
    char *js = NULL;
    CHECK_EQ(shoal_auth_show(root, &js), SHOAL_OK);
    REQUIRE(js);
    CHECK(strstr(js, "\"mode\":\"enforcing\"") != NULL);
    CHECK(strstr(js, "\"version\":2") != NULL);
    CHECK(strstr(js, "\"user\":\"ann\"") != NULL);
    CHECK(strstr(js, "\"user\":\"bob\"") != NULL);
    CHECK(strstr(js, "\"caps\":[\"issue\"]") != NULL);
    CHECK(strstr(js, "\"policy_floor\":2") != NULL);
    shoal_free(js);
    /* a replica without a root: open mode, and it says so */
    odir = check_tmpdir("enforce-open");
    int err;
    shoal_replica *open = open_replica(odir, NULL, &err);
    CHECK_EQ(shoal_replica_root(open, got), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal_auth_show(open, &js), SHOAL_OK);
    CHECK(js && strstr(js, "\"mode\":\"open\"") && strstr(js, "\"root\":null"));
    shoal_free(js);
    CHECK_EQ(shoal_auth_policy(open, POLICY, strlen(POLICY), &v), SHOAL_EINVAL);
    CHECK(strstr(shoal_replica_errmsg(open), "without a root") != NULL);
    CHECK_EQ(shoal_options_set_root(NULL, rk), SHOAL_EINVAL);
    shoal_replica_close(open);
    shoal_replica *all[] = { root, adm, dev };
    char *dirs[] = { rdir, adir, ddir, odir };
    for (int i = 0; i < 3; i++)
        shoal_replica_close(all[i]);
    for (int i = 0; i < 4; i++) {
        check_rmtree(dirs[i]);
        free(dirs[i]);
    }
}

/* Subscribe r to where (NULL: every document) of products. */
static void
subscribe(shoal_replica *r, const char *where)
{
    shoal_query *q = NULL;
    CHECK_EQ(shoal_query_new(r, "products", where, &q), SHOAL_OK);
    CHECK_EQ(shoal_subscribe(r, "s", q), SHOAL_OK);
    shoal_query_free(q);
}

/* Links follow certificates: a replica that enforces permissions, with
 * no allow-list, admits a device it holds a certificate for, refuses one
 * it does not, and admits it once certified; a disallowed key stays
 * refused whatever its certificate.  A clerk's device, which reads part
 * of the data, is refused as a full replica (SHOAL_EPERM) and served as a
 * partial one. */
static void
test_links(void)
{
    char *rdir, *ddir, *odir;
    shoal_replica *root = new_replica(&rdir, NULL);
    REQUIRE(root);
    const uint8_t *rk = shoal_replica_id(root);
    shoal_replica *dev = new_replica(&ddir, rk), *other = new_replica(&odir, rk);
    uint64_t v;
    CHECK_EQ(shoal_auth_policy(root, POLICY, strlen(POLICY), &v), SHOAL_OK);
    const char *roles[] = { "clerk" }, *an[] = { "store_id" };
    shoal_value av[] = { { .type = SHOAL_T_INT, .i = 1 } };
    shoal_cert_spec spec = { "u", roles, 1, an, av, 1, 0 };
    CHECK_EQ(shoal_auth_grant(root, shoal_replica_id(dev), &spec), SHOAL_OK);
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    uint8_t rkey[32];
    memcpy(rkey, rk, 32);
    CHECK_EQ(shoal_net_sync(dev, ep, rkey, 20000), SHOAL_EPERM);
    CHECK(strstr(shoal_replica_errmsg(dev), "partial") != NULL);
    subscribe(dev, NULL);
    subscribe(other, NULL);
    CHECK_EQ(shoal_net_sync(dev, ep, rkey, 20000), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(other, ep, rkey, 5000), SHOAL_EREFUSED);
    CHECK_EQ(shoal_auth_grant(root, shoal_replica_id(other), &spec), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(other, ep, rkey, 20000), SHOAL_OK);
    CHECK_EQ(shoal_net_disallow(root, shoal_replica_id(dev)), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(dev, ep, rkey, 5000), SHOAL_EREFUSED);
    /* reopened, the root still knows whom it certified */
    shoal_free(ep);
    shoal_replica_close(root);
    int err;
    root = open_replica(rdir, NULL, &err);
    REQUIRE(root);
    ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    CHECK_EQ(shoal_net_sync(other, ep, rkey, 20000), SHOAL_OK);
    shoal_free(ep);
    shoal_replica *all[] = { root, dev, other };
    char *dirs[] = { rdir, ddir, odir };
    for (int i = 0; i < 3; i++) {
        shoal_replica_close(all[i]);
        check_rmtree(dirs[i]);
        free(dirs[i]);
    }
}

/* ------------------------------------------------------------ reading */

/* A root replica (its own key) that published POLICY, in r[0], and
 * replicas that trust it in r[1..n-1]; dir[i] their directories. */
typedef struct team {
    shoal_replica *r[5];
    char *dir[5];
    int n;
    uint8_t root[32];
} team;

static bool
team_open(team *t, int n)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->r[0] = new_replica(&t->dir[0], NULL);
    if (!t->r[0])
        return false;
    memcpy(t->root, shoal_replica_id(t->r[0]), 32);
    for (int i = 1; i < n; i++)
        if (!(t->r[i] = new_replica(&t->dir[i], t->root)))
            return false;
    uint64_t v;
    CHECK_EQ(shoal_auth_policy(t->r[0], POLICY, strlen(POLICY), &v), SHOAL_OK);
    return true;
}

static void
team_close(team *t)
{
    for (int i = 0; i < t->n; i++) {
        shoal_replica_close(t->r[i]);
        if (t->dir[i])
            check_rmtree(t->dir[i]);
        free(t->dir[i]);
    }
}

static bool
has_doc(shoal_replica *r, const char *id)
{
    shoal_doc *d = NULL;
    int err = shoal_doc_get(r, "products", id, &d);
    shoal_doc_free(d);
    return err == SHOAL_OK;
}

/* Poll (bounded) until r holds id (present) or does not. */
static bool
wait_doc(shoal_replica *r, const char *id, bool present)
{
    uint64_t t0 = check_now_ms();
    while (has_doc(r, id) != present && check_now_ms() - t0 < 20000) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return has_doc(r, id) == present;
}

static void
grant(shoal_replica *root, shoal_replica *dev, const char *role, int64_t store)
{
    const char *roles[] = { role }, *an[] = { "store_id" };
    shoal_value av[] = { { .type = SHOAL_T_INT, .i = store } };
    shoal_cert_spec spec = { "u", roles, 1, an, av, 1, 0 };
    CHECK_EQ(shoal_auth_grant(root, shoal_replica_id(dev), &spec), SHOAL_OK);
}

/* Read filtering (docs/permissions.md, "Reading"): a device that dials a
 * replica that enforces receives what its roles read AND its
 * subscriptions match.  A clerk of store 1 subscribed to every product
 * over a live link holds store 1's products and every `_auth` document,
 * never store 2's; certified again for store 2 while linked, it receives
 * store 2's and lets store 1's go; new documents follow the new role.  A
 * relay whose role reads everything is served as a full replica. */
static void
test_reading(void)
{
    team tm;
    if (!team_open(&tm, 5)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *m1 = tm.r[1], *m2 = tm.r[2], *clerk = tm.r[3], *relay = tm.r[4];
    const uint8_t *rk = tm.root;
    grant(root, m1, "manager", 1);
    grant(root, m2, "manager", 2);
    grant(root, clerk, "clerk", 1);
    grant(root, relay, "relay", 1);
    pass(root, m1);
    pass(root, m2);
    CHECK_EQ(put_int(m1, "p1", "store_id", 1, "stock", 1), SHOAL_OK);
    CHECK_EQ(put_int(m1, "p2", "store_id", 1, "stock", 2), SHOAL_OK);
    CHECK_EQ(put_int(m2, "p3", "store_id", 2, "stock", 3), SHOAL_OK);
    pass(m1, root);
    pass(m2, root);
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    uint8_t rkey[32];
    memcpy(rkey, rk, 32);
    subscribe(clerk, NULL);
    CHECK_EQ(shoal_net_connect(clerk, ep, rkey), SHOAL_OK);
    CHECK(wait_doc(clerk, "p1", true));
    CHECK(wait_doc(clerk, "p2", true));
    CHECK(!has_doc(clerk, "p3"));
    shoal_doc *d = NULL;
    CHECK_EQ(shoal_doc_get(clerk, "_auth", "policy", &d), SHOAL_OK);
    shoal_doc_free(d);
    /* the relay reads everything: a full replica */
    CHECK_EQ(shoal_net_sync(relay, ep, rkey, 20000), SHOAL_OK);
    CHECK(has_doc(relay, "p1") && has_doc(relay, "p3"));
    /* the clerk moves to store 2 while linked */
    grant(root, clerk, "clerk", 2);
    CHECK(wait_doc(clerk, "p3", true));
    CHECK(wait_doc(clerk, "p1", false));
    CHECK(wait_doc(clerk, "p2", false));
    /* new documents: store 1's stays out, store 2's comes in */
    CHECK_EQ(put_int(m1, "p5", "store_id", 1, "stock", 5), SHOAL_OK);
    pass(m1, root);
    CHECK_EQ(put_int(m2, "p4", "store_id", 2, "stock", 4), SHOAL_OK);
    pass(m2, root);
    CHECK(wait_doc(clerk, "p4", true));
    CHECK(!has_doc(clerk, "p5") && !has_doc(clerk, "p1"));
    shoal_free(ep);
    team_close(&tm);
}

/* ------------------------------------------------------- sealed fields */

/* POLICY with an auditor that reads every product but its cost, margin
 * and notes: those three are restricted, one read class. */
static const char SEALED_POLICY[] =
    "{\"collections\": {\"products\": {\"guard\": [\"store_id\"],"
    "   \"queryable\": [\"store_id\", \"price\"]}},"
    " \"roles\": {"
    "  \"manager\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "             \"write\": \"*\", \"create\": true, \"delete\": true}},"
    "  \"relay\": {\"products\": {\"where\": \"TRUE\", \"read\": \"*\"}},"
    "  \"auditor\": {\"products\": {\"where\": \"TRUE\","
    "             \"read\": {\"except\": [\"cost\", \"margin\", \"notes\"]}}}}}";

/* p1 of store 1 with a stock in clear and a cost, a margin (counter) and
 * notes (list) sealed. */
static int
put_sealed(shoal_replica *r, const char *doc)
{
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(r, &t);
    shoal_value store = { .type = SHOAL_T_INT, .i = 1 }, stock = { .type = SHOAL_T_INT, .i = 3 };
    shoal_value cost = { .type = SHOAL_T_INT, .i = 7 };
    shoal_value a = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"a", .len = 1 };
    shoal_value b = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"b", .len = 1 };
    if (!err)
        err = shoal_txn_set(t, "products", doc, "store_id", &store);
    if (!err)
        err = shoal_txn_set(t, "products", doc, "stock", &stock);
    if (!err)
        err = shoal_txn_set(t, "products", doc, "cost", &cost);
    if (!err)
        err = shoal_txn_counter_add(t, "products", doc, "margin", 5);
    if (!err)
        err = shoal_txn_list_insert(t, "products", doc, "notes", 0, &a);
    if (!err)
        err = shoal_txn_list_insert(t, "products", doc, "notes", 1, &b);
    if (!err)
        return shoal_txn_commit(t);
    shoal_txn_abort(t);
    return err;
}

/* What r shows of p1: "stock=3 cost=7 margin=5 notes=a,b", with ? for a
 * value it may not read. */
static const char *
show(shoal_replica *r, const char *doc)
{
    static char out[200];
    shoal_doc *d = NULL;
    if (shoal_doc_get(r, "products", doc, &d) != SHOAL_OK)
        return "<none>";
    const char *names[] = { "stock", "cost", "margin", "notes" };
    size_t k = 0;
    out[0] = 0;
    for (int f = 0; f < 4; f++) {
        size_t i;
        k += (size_t)snprintf(out + k, sizeof out - k, "%s%s=", f ? " " : "", names[f]);
        if (shoal_doc_field_find(d, names[f], &i) != SHOAL_OK) {
            k += (size_t)snprintf(out + k, sizeof out - k, "-");
            continue;
        }
        shoal_value v;
        int64_t n;
        size_t len;
        switch (shoal_doc_field_kind(d, i)) {
        case SHOAL_K_REGISTER:
            CHECK_EQ(shoal_doc_field_value(d, i, &v), SHOAL_OK);
            k += (size_t)snprintf(out + k, sizeof out - k,
                                  v.type == SHOAL_T_REDACTED ? "?" : "%lld", (long long)v.i);
            break;
        case SHOAL_K_COUNTER: {
            int rc = shoal_doc_field_counter(d, i, &n);
            CHECK(rc == SHOAL_OK || rc == SHOAL_EPERM);
            if (rc)
                k += (size_t)snprintf(out + k, sizeof out - k, "?");
            else
                k += (size_t)snprintf(out + k, sizeof out - k, "%lld", (long long)n);
            break;
        }
        default:
            CHECK_EQ(shoal_doc_field_list_len(d, i, &len), SHOAL_OK);
            for (size_t j = 0; j < len; j++) {
                CHECK_EQ(shoal_doc_field_list_item(d, i, j, &v), SHOAL_OK);
                k += (size_t)snprintf(out + k, sizeof out - k, "%s%.*s", j ? "," : "",
                                      v.type == SHOAL_T_REDACTED ? 1 : (int)v.len,
                                      v.type == SHOAL_T_REDACTED ? "?" : (const char *)v.ptr);
            }
            break;
        }
    }
    shoal_doc_free(d);
    return out;
}

static int
unsealed_cb(const uint8_t cid[SHOAL__ID_BYTES], const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
            void *arg)
{
    (void)cid;
    (void)author;
    (void)seq;
    (*(size_t *)arg)++;
    return 0;
}

static int
unsealed_fn(shoal__stxn *t, void *arg)
{
    return shoal__stxn_unsealed_scan(t, unsealed_cb, arg);
}

static int
seal_fn(shoal__stxn *t, void *arg)
{
    *(size_t *)arg = (size_t)shoal__stxn_seal_count(t);
    return SHOAL_OK;
}

/* Sealed groups r holds (table seals). */
static size_t
seal_count(shoal_replica *r)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    CHECK_EQ(shoal__store_read(r->store, seal_fn, &n), SHOAL_OK);
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Whether `auth show` of r says n changes are held without a sealed
 * group r may read. */
static bool
withheld_is(shoal_replica *r, unsigned n)
{
    char *j = NULL, want[64];
    CHECK_EQ(shoal_auth_show(r, &j), SHOAL_OK);
    snprintf(want, sizeof want, "\"withheld\":%u", n);
    bool ok = j && strstr(j, want) != NULL;
    shoal_free(j);
    return ok;
}

/* Changes r holds without a sealed group (table unsealed). */
static size_t
unsealed_count(shoal_replica *r)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    CHECK_EQ(shoal__store_read(r->store, unsealed_fn, &n), SHOAL_OK);
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void
print_problem(void *arg, const char *problem)
{
    (void)arg;
    fprintf(stderr, "  check: %s\n", problem);
}

static bool
wait_show(shoal_replica *r, const char *doc, const char *want)
{
    uint64_t t0 = check_now_ms();
    while (strcmp(show(r, doc), want) != 0 && check_now_ms() - t0 < 20000) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (strcmp(show(r, doc), want) != 0)
        fprintf(stderr, "  %s: want %s\n", show(r, doc), want);
    return strcmp(show(r, doc), want) == 0;
}

/* Sealed fields (docs/permissions.md "Sealed fields"): a manager's write
 * to restricted fields travels sealed; the root and a relay, which read
 * them, get their values; an auditor, which may not, holds the document
 * with those values REDACTED and the rest in clear, over a live link, and
 * its signatures verify.  A bundle carries the groups (version 2); one
 * with a disclosure altered is refused whole; a replica that got the
 * change without its group fills the values in when the group comes. */
static void
test_sealed(void)
{
    team tm;
    if (!team_open(&tm, 5)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *mgr = tm.r[1], *aud = tm.r[2], *relay = tm.r[3],
                  *late = tm.r[4];
    uint64_t v;
    CHECK_EQ(shoal_auth_policy(root, SEALED_POLICY, strlen(SEALED_POLICY), &v), SHOAL_OK);
    grant(root, mgr, "manager", 1);
    grant(root, aud, "auditor", 1);
    grant(root, relay, "relay", 1);
    pass(root, mgr);
    CHECK_EQ(put_sealed(mgr, "p1"), SHOAL_OK);
    const char *all = "stock=3 cost=7 margin=5 notes=a,b";
    const char *hidden = "stock=3 cost=? margin=? notes=?,?";
    CHECK(strcmp(show(mgr, "p1"), all) == 0);
    /* the bundle carries the groups: version 2 */
    uint8_t *bundle = NULL;
    size_t blen = 0;
    CHECK_EQ(shoal_export(mgr, NULL, &bundle, &blen), SHOAL_OK);
    REQUIRE(bundle && blen > 12);
    CHECK(memcmp(bundle, "SHOALBN2", 8) == 0);
    /* a disclosure altered: refused whole, nothing taken */
    uint8_t *bad = malloc(blen);
    REQUIRE(bad);
    memcpy(bad, bundle, blen);
    bad[blen - 1] ^= 1; /* the last group's last byte */
    CHECK_EQ(shoal_import(root, bad, blen, NULL), SHOAL_EBADSIG);
    CHECK(!has_doc(root, "p1"));
    free(bad);
    CHECK_EQ(shoal_import(root, bundle, blen, NULL), SHOAL_OK);
    shoal_free(bundle);
    CHECK(strcmp(show(root, "p1"), all) == 0);
    /* live links: the auditor (partial) and the relay (full) */
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    subscribe(aud, NULL);
    CHECK_EQ(shoal_net_connect(aud, ep, tm.root), SHOAL_OK);
    CHECK(wait_show(aud, "p1", hidden));
    CHECK_EQ(shoal_net_sync(relay, ep, tm.root, 20000), SHOAL_OK);
    CHECK(strcmp(show(relay, "p1"), all) == 0);
    /* a later write in clear reaches the auditor; a sealed one stays hidden */
    CHECK_EQ(put_int(mgr, "p1", "stock", 9, "cost", 8), SHOAL_OK);
    pass(mgr, root);
    CHECK(wait_show(aud, "p1", "stock=9 cost=? margin=? notes=?,?"));
    CHECK(strcmp(show(root, "p1"), "stock=9 cost=8 margin=5 notes=a,b") == 0);
    /* the auditor's replica checks clean and keeps it across a reopen */
    CHECK_EQ(shoal_net_disconnect(aud, ep), SHOAL_OK);
    /* what it holds differs from the root's, yet both commit to the
     * same: equal commitment digests, different full-state digests */
    uint8_t ca[SHOAL_DIGEST_BYTES], cr[SHOAL_DIGEST_BYTES], fa[SHOAL_DIGEST_BYTES],
        fr[SHOAL_DIGEST_BYTES];
    CHECK_EQ(shoal_digest_commitment(aud, ca), SHOAL_OK);
    CHECK_EQ(shoal_digest_commitment(root, cr), SHOAL_OK);
    CHECK(memcmp(ca, cr, sizeof ca) == 0);
    CHECK_EQ(shoal_digest(aud, true, fa), SHOAL_OK);
    CHECK_EQ(shoal_digest(root, true, fr), SHOAL_OK);
    CHECK(memcmp(fa, fr, sizeof fa) != 0);
    CHECK(memcmp(ca, fr, sizeof ca) != 0);
    /* the groups never reached it: its export carries none */
    CHECK_EQ(shoal_export(aud, NULL, &bundle, &blen), SHOAL_OK);
    CHECK(bundle && memcmp(bundle, "SHOALBN1", 8) == 0);
    shoal_free(bundle);
    CHECK_EQ(shoal_replica_check(aud, print_problem, NULL, NULL), SHOAL_OK);
    /* a full replica that got the changes without their groups (from
     * the auditor) asks for them again when it links (its HELLO vector
     * stops below them): the root sends them with their groups */
    pass(aud, late);
    CHECK(strcmp(show(late, "p1"), "stock=9 cost=? margin=? notes=?,?") == 0);
    CHECK_EQ(unsealed_count(late), 2); /* the two sealed changes */
    CHECK(withheld_is(late, 2));
    grant(root, late, "relay", 1);
    CHECK_EQ(shoal_net_sync(late, ep, tm.root, 20000), SHOAL_OK);
    CHECK(strcmp(show(late, "p1"), "stock=9 cost=8 margin=5 notes=a,b") == 0);
    CHECK_EQ(unsealed_count(late), 0); /* nothing left to ask for */
    CHECK(withheld_is(late, 0));
    CHECK_EQ(shoal_net_sync(late, ep, tm.root, 20000), SHOAL_OK);
    uint8_t d1[SHOAL_DIGEST_BYTES], d2[SHOAL_DIGEST_BYTES];
    CHECK_EQ(shoal_digest(late, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(root, true, d2), SHOAL_OK);
    CHECK(memcmp(d1, d2, sizeof d1) == 0);
    CHECK_EQ(shoal_digest_commitment(late, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest_commitment(root, cr), SHOAL_OK);
    CHECK(memcmp(d1, cr, sizeof d1) == 0);
    /* the manager and the late replica rebuild the same from their logs */
    CHECK_EQ(shoal_replica_check(mgr, print_problem, NULL, NULL), SHOAL_OK);
    CHECK_EQ(shoal_replica_check(late, print_problem, NULL, NULL), SHOAL_OK);
    /* a local eviction takes the document's sealed groups with its changes */
    CHECK(seal_count(late) > 0);
    CHECK_EQ(shoal__evict(late, "products", "p1"), SHOAL_OK);
    CHECK_EQ(seal_count(late), 0);
    shoal_free(ep);
    team_close(&tm);
}

/* Whether r's engine has a link up with key. */
static bool
linked(shoal_replica *r, const uint8_t *pk)
{
    shoal_peers *p = NULL;
    bool up = false;
    if (shoal_net_peers(r, &p) == SHOAL_OK)
        for (size_t i = 0; i < shoal_peers_count(p); i++)
            if (memcmp(shoal_peers_key(p, i), pk, 32) == 0)
                up = up || shoal_peers_stat(p, i, SHOAL_PS_CONNECTED) != 0;
    shoal_peers_free(p);
    return up;
}

static bool
wait_linked(shoal_replica *r, const uint8_t *pk, bool up)
{
    uint64_t t0 = check_now_ms();
    while (linked(r, pk) != up && check_now_ms() - t0 < 20000) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return linked(r, pk) == up;
}

/* Revoking a device (docs/permissions.md, "Revoking a device"): the
 * revocation takes the cut from what the revoker holds; the revoker closes
 * a live link it dialled to the key and one the key dialled; the key is
 * refused from then on, even when allow-listed, and a reopened replica
 * still refuses it; a key without the `revoke` capability may not
 * revoke. */
static void
test_revoke(void)
{
    team tm;
    if (!team_open(&tm, 2)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *dev = tm.r[1];
    const uint8_t *rk = tm.root;
    uint8_t dk[32];
    memcpy(dk, shoal_replica_id(dev), 32);
    grant(root, dev, "manager", 1);
    pass(root, dev);
    CHECK_EQ(put_int(dev, "p1", "store_id", 1, "stock", 1), SHOAL_OK);
    CHECK_EQ(put_int(dev, "p1", "stock", 2, NULL, 0), SHOAL_OK);
    pass(dev, root);
    /* the device may not revoke (no revoke capability) */
    uint64_t cut = 0;
    CHECK_EQ(shoal_auth_revoke(dev, rk, UINT64_MAX, NULL, &cut), SHOAL_EPERM);
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    subscribe(dev, NULL);
    /* a link the root dials to the device, and one the device dials */
    char *dep = NULL;
    CHECK_EQ(shoal_net_allow(dev, rk), SHOAL_OK);
    CHECK_EQ(shoal_net_listen(dev, "tcp://127.0.0.1:0", &dep), SHOAL_OK);
    REQUIRE(dep);
    CHECK_EQ(shoal_net_connect(root, dep, dk), SHOAL_OK);
    CHECK(wait_linked(dev, rk, true));
    CHECK_EQ(shoal_auth_revoke(root, dk, UINT64_MAX, "lost", &cut), SHOAL_OK);
    CHECK_EQ(cut, 2); /* the device's two writes the root holds */
    CHECK(wait_linked(dev, rk, false));
    CHECK_EQ(shoal_net_disconnect(root, dep), SHOAL_OK);
    shoal_free(dep);
    /* a live link a second device dialled is closed when it is revoked */
    char *d2dir = NULL;
    shoal_replica *dev2 = new_replica(&d2dir, rk);
    REQUIRE(dev2);
    uint8_t dk2[32];
    memcpy(dk2, shoal_replica_id(dev2), 32);
    grant(root, dev2, "clerk", 1);
    subscribe(dev2, NULL);
    CHECK_EQ(shoal_net_connect(dev2, ep, rk), SHOAL_OK);
    CHECK(wait_linked(root, dk2, true));
    CHECK_EQ(shoal_auth_revoke(root, dk2, UINT64_MAX, NULL, NULL), SHOAL_OK);
    CHECK(wait_linked(root, dk2, false));
    shoal_replica_close(dev2);
    check_rmtree(d2dir);
    free(d2dir);
    CHECK_EQ(shoal_net_connect(dev, ep, rk), SHOAL_OK);
    CHECK_EQ(shoal_net_disconnect(dev, ep), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(dev, ep, rk, 5000), SHOAL_EREFUSED);
    CHECK_EQ(shoal_net_allow(root, dk), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(dev, ep, rk, 5000), SHOAL_EREFUSED);
    char *js = NULL;
    CHECK_EQ(shoal_auth_show(root, &js), SHOAL_OK);
    CHECK(js && strstr(js, "\"revocations\":[{") && strstr(js, "\"cut\":2") &&
          strstr(js, "\"reason\":\"lost\""));
    shoal_free(js);
    /* reopened, the root still refuses it */
    shoal_free(ep);
    shoal_replica_close(root);
    int err;
    tm.r[0] = root = open_replica(tm.dir[0], NULL, &err);
    if (!root) {
        team_close(&tm);
        REQUIRE(!"the root opens again");
    }
    ep = NULL;
    CHECK_EQ(shoal_net_allow_any(root, true), SHOAL_OK);
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    CHECK_EQ(shoal_net_sync(dev, ep, rk, 5000), SHOAL_EREFUSED);
    shoal_free(ep);
    team_close(&tm);
}

/* A device admitted by its certificate loses its live link once the
 * certificate expires by the listener's clock, and is refused after. */
static void
test_expiry(void)
{
    team tm;
    if (!team_open(&tm, 2)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *dev = tm.r[1];
    const uint8_t *rk = tm.root;
    uint8_t dk[32];
    memcpy(dk, shoal_replica_id(dev), 32);
    const char *roles[] = { "clerk" }, *an[] = { "store_id" };
    shoal_value av[] = { { .type = SHOAL_T_INT, .i = 1 } };
    shoal_cert_spec spec = { "u", roles, 1, an, av, 1, 60000 }; /* one minute */
    CHECK_EQ(shoal_auth_grant(root, dk, &spec), SHOAL_OK);
    pass(root, dev);
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    subscribe(dev, NULL);
    CHECK_EQ(shoal_net_connect(dev, ep, rk), SHOAL_OK);
    CHECK(wait_linked(root, dk, true));
    atomic_store(&clock_ms, WALL_MS + 120000);
    CHECK(wait_linked(root, dk, false));
    CHECK_EQ(shoal_net_disconnect(dev, ep), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(dev, ep, rk, 5000), SHOAL_EREFUSED);
    atomic_store(&clock_ms, WALL_MS);
    shoal_free(ep);
    team_close(&tm);
}

/* Whether r's record of peer pk has a last error containing text. */
static bool
peer_error_has(shoal_replica *r, const uint8_t *pk, const char *text)
{
    shoal_peers *p = NULL;
    bool has = false;
    if (shoal_net_peers(r, &p) == SHOAL_OK)
        for (size_t i = 0; i < shoal_peers_count(p); i++)
            if (memcmp(shoal_peers_key(p, i), pk, 32) == 0)
                has = has || strstr(shoal_peers_last_error(p, i), text) != NULL;
    shoal_peers_free(p);
    return has;
}

/* A full replica whose roles read everything (a relay) linked live; once
 * it is certified again with a role that reads part of the data, its
 * link fails with SHOAL_EPERM. */
static void
test_full_demoted(void)
{
    team tm;
    if (!team_open(&tm, 2)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *relay = tm.r[1];
    const uint8_t *rk = tm.root;
    uint8_t k[32];
    memcpy(k, shoal_replica_id(relay), 32);
    grant(root, relay, "relay", 1);
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    CHECK_EQ(shoal_net_connect(relay, ep, rk), SHOAL_OK);
    CHECK(wait_linked(root, k, true));
    grant(root, relay, "clerk", 1);
    uint64_t t0 = check_now_ms();
    while (!peer_error_has(relay, rk, "do not read every document") &&
           check_now_ms() - t0 < 20000) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    CHECK(peer_error_has(relay, rk, "do not read every document"));
    shoal_free(ep);
    team_close(&tm);
}

/* One list insert at index of products/doc.tags, and optionally a SET. */
static int
put_tag(shoal_replica *r, const char *doc, size_t index, const char *tag)
{
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(r, &t);
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)tag, .len = strlen(tag) };
    if (!err)
        err = shoal_txn_list_insert(t, "products", doc, "tags", index, &v);
    if (!err)
        return shoal_txn_commit(t);
    shoal_txn_abort(t);
    return err;
}

static int
del_doc(shoal_replica *r, const char *doc)
{
    shoal_txn *t = NULL;
    int err = shoal_txn_begin(r, &t);
    if (!err)
        err = shoal_txn_delete(t, "products", doc);
    if (!err)
        return shoal_txn_commit(t);
    shoal_txn_abort(t);
    return err;
}

/* products/doc as "stock=N price=N tags=a,b" ("-" for a missing field),
 * or "none" / "deleted". */
static const char *
doc_text(shoal_replica *r, const char *doc)
{
    static char out[256];
    shoal_doc *d = NULL;
    int err = shoal_doc_get(r, "products", doc, &d);
    if (err) {
        snprintf(out, sizeof out, "%s", err == SHOAL_EDELETED ? "deleted" : "none");
        return out;
    }
    size_t k = 0;
    const char *names[] = { "stock", "price" };
    for (int n = 0; n < 2; n++) {
        size_t fi;
        shoal_value v;
        if (shoal_doc_field_find(d, names[n], &fi) == SHOAL_OK &&
            shoal_doc_field_value(d, fi, &v) == SHOAL_OK && v.type == SHOAL_T_INT)
            k += (size_t)snprintf(out + k, sizeof out - k, "%s=%lld ", names[n], (long long)v.i);
        else
            k += (size_t)snprintf(out + k, sizeof out - k, "%s=- ", names[n]);
    }
    k += (size_t)snprintf(out + k, sizeof out - k, "tags=");
    size_t fi, len = 0;
    if (shoal_doc_field_find(d, "tags", &fi) == SHOAL_OK &&
        shoal_doc_field_list_len(d, fi, &len) == SHOAL_OK)
        for (size_t j = 0; j < len; j++) {
            shoal_value v;
            if (shoal_doc_field_list_item(d, fi, j, &v) == SHOAL_OK && v.type == SHOAL_T_STR)
                k += (size_t)snprintf(out + k, sizeof out - k, "%s%.*s", j ? "," : "", (int)v.len,
                                      (const char *)v.ptr);
        }
    shoal_doc_free(d);
    return out;
}

/* Revocation cuts (docs/permissions.md, "Revoking a device"): a manager
 * writes p1 (seq 1), then, past the cut it is revoked at, sets the stock,
 * inserts tag "a" and deletes p1; another manager inserts "b" after "a"
 * and sets the price.  Wherever the revocation is held, the revoked
 * key's changes past the cut take no effect: p1 lives with the stock of
 * seq 1, "a" is an invisible anchor and "b" keeps its place; the same on
 * the replica that applied them first and was rebuilt, on one that got
 * the revocation first, after a reopen, for a change made after the
 * revocation, and `check` finds nothing wrong. */
static void
test_void(void)
{
    team tm;
    if (!team_open(&tm, 4)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *m1 = tm.r[1], *m2 = tm.r[2], *late = tm.r[3];
    grant(root, m1, "manager", 1);
    grant(root, m2, "manager", 1);
    pass(root, m1);
    pass(root, m2);
    CHECK_EQ(put_int(m1, "p1", "store_id", 1, "stock", 1), SHOAL_OK); /* seq 1 */
    CHECK_EQ(put_int(m1, "p1", "stock", 5, NULL, 0), SHOAL_OK);       /* seq 2: void */
    CHECK_EQ(put_tag(m1, "p1", 0, "a"), SHOAL_OK);                    /* seq 3: an anchor */
    pass(m1, m2);
    CHECK_EQ(put_tag(m2, "p1", 1, "b"), SHOAL_OK);
    CHECK_EQ(put_int(m2, "p1", "price", 3, NULL, 0), SHOAL_OK);
    CHECK_EQ(del_doc(m1, "p1"), SHOAL_OK); /* seq 4: void */
    pass(m1, root);
    pass(m2, root);
    CHECK(strcmp(doc_text(root, "p1"), "deleted") == 0);
    uint64_t cut = 0;
    CHECK_EQ(shoal_auth_revoke(root, shoal_replica_id(m1), 1, "stolen", &cut), SHOAL_OK);
    CHECK_EQ(cut, 1);
    const char *want = "stock=1 price=3 tags=b";
    CHECK(strcmp(doc_text(root, "p1"), want) == 0);
    /* a replica that gets the authority and the revocation first */
    uint8_t *b = NULL;
    size_t len = 0;
    CHECK_EQ(shoal_export(root, NULL, &b, &len), SHOAL_OK);
    CHECK_EQ(shoal_import(late, b, len, NULL), SHOAL_OK);
    shoal_free(b);
    CHECK(strcmp(doc_text(late, "p1"), want) == 0);
    uint8_t d1[32], d2[32];
    CHECK_EQ(shoal_digest(root, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(late, true, d2), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0);
    /* a change of the revoked key made after the revocation */
    CHECK_EQ(put_int(m1, "p1", "store_id", 1, "stock", 9), SHOAL_OK); /* m1 lacks the revocation */
    pass(m1, root);
    CHECK(strcmp(doc_text(root, "p1"), want) == 0);
    /* the other manager's next write is judged on the document as
     * verdicts see it, and applies */
    pass(root, m2);
    CHECK_EQ(put_int(m2, "p1", "stock", 2, NULL, 0), SHOAL_OK);
    pass(m2, root);
    CHECK(strcmp(doc_text(root, "p1"), "stock=2 price=3 tags=b") == 0);
    shoal_check_stats st;
    CHECK_EQ(shoal_replica_check(root, problem_fn, NULL, &st), SHOAL_OK);
    CHECK_EQ(st.problems, 0);
    /* reopened: the same */
    CHECK_EQ(shoal_digest(root, true, d1), SHOAL_OK);
    shoal_replica_close(root);
    int err;
    tm.r[0] = root = open_replica(tm.dir[0], NULL, &err);
    if (!root) {
        team_close(&tm);
        REQUIRE(!"the root opens again");
    }
    CHECK_EQ(shoal_digest(root, true, d2), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0);
    CHECK(strcmp(doc_text(root, "p1"), "stock=2 price=3 tags=b") == 0);
    CHECK_EQ(shoal_replica_check(root, problem_fn, NULL, &st), SHOAL_OK);
    CHECK_EQ(st.problems, 0);
    team_close(&tm);
}

/* Every delivery order of w's changes to fresh enforcing stores gives
 * the same verdicts and digests; *rejected_out: whether change i was
 * rejected. */
static void
all_orders(const world *w, size_t i, bool *rejected_out)
{
    uint8_t first[32];
    bool first_rej = false;
    for (int order = 0; order < 6; order++) {
        size_t idx[MAXENV];
        for (size_t k = 0; k < w->n; k++)
            idx[k] = k;
        if (order == 1) /* newest first */
            for (size_t k = 0; k < w->n / 2; k++) {
                size_t t = idx[k];
                idx[k] = idx[w->n - 1 - k];
                idx[w->n - 1 - k] = t;
            }
        else if (order > 1)
            shuffle(idx, w->n);
        shoal__memstore *m = NULL;
        CHECK_EQ(shoal__memstore_new(&m), SHOAL_OK);
        shoal__memstore_set_root(m, w->k[ROOT].pk);
        uint64_t clock = 0;
        for (size_t k = 0; k < w->n; k++)
            CHECK_EQ(import(m, w, &idx[k], 1, &clock, NULL), SHOAL_OK);
        uint8_t f[32];
        CHECK_EQ(shoal__memstore_digest(m, true, f), SHOAL_OK);
        CHECK_EQ(shoal__memstore_pending(m), 0);
        bool rej = shoal__memstore_is_rejected(m, w->id[i]);
        if (order == 0) {
            memcpy(first, f, 32);
            first_rej = rej;
        } else {
            CHECK(memcmp(first, f, 32) == 0);
            CHECK_EQ(rej, first_rej);
        }
        shoal__memstore_free(m);
    }
    *rejected_out = first_rej;
}

/* A write is judged at its own deps: one made while the document was in
 * the writer's reach stays valid when a concurrent change moves the
 * document out of it; one made under a policy that was tightened
 * concurrently stays valid (it names the policy it was made under, at or
 * above its certificate's floor), and the writer's next write under the
 * new policy is judged by it.  In every delivery order. */
static void
test_concurrency(void)
{
    world w;
    setup(&w, 7);
    top create[2] = { { SHOAL__OP_SET, "store_id", 1 }, { SHOAL__OP_SET, "stock", 1 } };
    write(&w, MGR1, "p1", 0, create, 2);
    hear_all(&w, CLERK1);
    hear_all(&w, REG);
    top stock = { SHOAL__OP_SET, "stock", 9 }, move = { SHOAL__OP_SET, "store_id", 2 };
    size_t counted = write(&w, CLERK1, "p1", 0, &stock, 1); /* offline */
    size_t moved = write(&w, REG, "p1", 0, &move, 1);       /* concurrently */
    bool rej;
    all_orders(&w, counted, &rej);
    CHECK(!rej);
    all_orders(&w, moved, &rej);
    CHECK(!rej);
    /* the clerk writes again after hearing of the move: out of its reach */
    hear_all(&w, CLERK1);
    size_t late = write(&w, CLERK1, "p1", 0, &stock, 1);
    all_orders(&w, late, &rej);
    CHECK(rej);
    teardown(&w);

    /* a policy tightened (clerks may no longer set stock) concurrently
     * with an offline write */
    setup(&w, 8);
    write(&w, MGR1, "p1", 0, create, 2);
    hear_all(&w, CLERK1);
    size_t offline = write(&w, CLERK1, "p1", 0, &stock, 1);
    publish_policy(&w, true);
    all_orders(&w, offline, &rej);
    CHECK(!rej);
    hear_all(&w, CLERK1);
    size_t after = write(&w, CLERK1, "p1", 0, &stock, 1);
    all_orders(&w, after, &rej);
    CHECK(rej);
    teardown(&w);
}

/* The hex of a key, for looking into `auth show`. */
static const char *
hex_of(const uint8_t *k)
{
    static char out[65];
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", k[i]);
    return out;
}

/* The number of equivocation proofs `auth show` lists, and whether one
 * names target at seq, published by pub. */
static size_t
proofs_of(shoal_replica *r, const uint8_t *target, uint64_t seq, const uint8_t *pub, bool *found)
{
    char *j = NULL;
    CHECK_EQ(shoal_auth_show(r, &j), SHOAL_OK);
    *found = false;
    size_t n = 0;
    const char *at = j ? strstr(j, "\"equivocations\":[") : NULL;
    char want[256];
    snprintf(want, sizeof want, "\"key\":\"%s\"", hex_of(target));
    char pubs[128];
    snprintf(pubs, sizeof pubs, "\"publisher\":\"%s\"", hex_of(pub));
    char seqs[64];
    snprintf(seqs, sizeof seqs, "\"seq\":%llu", (unsigned long long)seq);
    for (const char *o = at ? at + strlen("\"equivocations\":[") : NULL; o && *o == '{';
         o = strchr(o, '}') + 2) {
        const char *end = strchr(o, '}');
        n++;
        size_t len = (size_t)(end - o);
        char one[2048];
        snprintf(one, sizeof one, "%.*s", (int)len, o);
        if (strstr(one, want) && strstr(one, pubs) && strstr(one, seqs))
            *found = true;
        if (end[1] != ',')
            break;
    }
    shoal_free(j);
    return n;
}

/* A device restored from a copy of its directory signs a second change
 * with a seq it had used: an equivocation.  A full replica that holds
 * both versions (one from a bundle, one over a live link) publishes the
 * proof by itself, under its certificate;
 * wherever the proof is held the key's changes from that seq on take no
 * effect (also where one version was applied before), its links are
 * refused, its own replica refuses its writes, and replicas that saw
 * either version, or only the proof, end in the same state. */
static void
test_equivocation(void)
{
    team tm;
    if (!team_open(&tm, 5)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *dev = tm.r[1], *m2 = tm.r[2], *late = tm.r[3], *part = tm.r[4];
    grant(root, dev, "manager", 1);
    grant(root, m2, "relay", 1);
    grant(root, part, "clerk", 1);
    pass(root, dev);
    pass(root, m2);
    pass(root, part);
    subscribe(part, "store_id == 1");
    CHECK_EQ(put_int(dev, "p1", "store_id", 1, "stock", 1), SHOAL_OK);
    uint64_t seq = own_seq(dev) + 1; /* the seq both versions take */
    /* the twin: a copy of dev's directory, opened beside it */
    shoal_replica_close(dev);
    char *tdir = check_tmpdir("enforce-twin");
    REQUIRE(tdir && check_copy_dir(tm.dir[1], tdir));
    int err;
    tm.r[1] = dev = open_replica(tm.dir[1], tm.root, &err);
    shoal_replica *twin = open_replica(tdir, tm.root, &err);
    if (!dev || !twin) {
        shoal_replica_close(twin);
        check_rmtree(tdir);
        free(tdir);
        team_close(&tm);
        REQUIRE(!"the device and its twin open");
    }
    CHECK(memcmp(shoal_replica_id(dev), shoal_replica_id(twin), 32) == 0);
    CHECK_EQ(put_int(dev, "p1", "stock", 5, NULL, 0), SHOAL_OK);
    CHECK_EQ(put_int(twin, "p2", "store_id", 1, "stock", 7), SHOAL_OK);
    CHECK_EQ(own_seq(dev), seq);
    CHECK_EQ(own_seq(twin), seq);

    /* the root gets one version: it applies */
    pass(dev, root);
    CHECK(strcmp(doc_text(root, "p1"), "stock=5 price=- tags=") == 0);
    /* so does the partial replica, the other one */
    pass(twin, part);
    CHECK(strcmp(doc_text(part, "p2"), "stock=7 price=- tags=") == 0);
    bool found;
    CHECK_EQ(proofs_of(part, shoal_replica_id(dev), seq, shoal_replica_id(m2), &found), 0);

    /* a full replica with a certificate (a relay's) gets both, the second
     * over a live link (from the twin, made a partial replica so that it
     * does not prove it first): it proves it */
    uint64_t before = own_seq(m2);
    pass(dev, m2);
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(m2, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    subscribe(twin, "store_id == 1");
    CHECK_EQ(shoal_net_sync(twin, ep, shoal_replica_id(m2), 20000), SHOAL_OK);
    shoal_free(ep);
    uint64_t until = check_now_ms() + 10000;
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    while (own_seq(m2) == before && check_now_ms() < until)
        nanosleep(&ts, NULL);
    CHECK_EQ(own_seq(m2), before + 1);
    CHECK_EQ(proofs_of(m2, shoal_replica_id(dev), seq, shoal_replica_id(m2), &found), 1);
    CHECK(found);
    CHECK(strcmp(doc_text(m2, "p1"), "stock=1 price=- tags=") == 0);
    CHECK(strcmp(doc_text(m2, "p2"), "none") == 0);

    /* the proof reaches the root, which rebuilds what it had applied */
    pass(m2, root);
    CHECK_EQ(proofs_of(root, shoal_replica_id(dev), seq, shoal_replica_id(m2), &found), 1);
    CHECK(found);
    CHECK(strcmp(doc_text(root, "p1"), "stock=1 price=- tags=") == 0);
    CHECK(strcmp(doc_text(root, "p2"), "none") == 0);
    uint8_t x[32];
    REQUIRE(crypto_sign_ed25519_pk_to_curve25519(x, shoal_replica_id(dev)) == 0);
    CHECK(shoal__certs_revoked(root, x)); /* its links are refused */
    /* the root sees both versions too now: it publishes no second proof */
    before = own_seq(root);
    pass(twin, root);
    CHECK_EQ(own_seq(root), before);
    /* the partial replica, which cannot see the seq twice, agrees */
    pass(root, part);
    CHECK(strcmp(doc_text(part, "p2"), "none") == 0);
    CHECK(strcmp(doc_text(part, "p1"), "stock=1 price=- tags=") == 0);
    /* a replica that gets the proof first, then a version */
    pass(m2, late);
    pass(twin, late);
    CHECK(strcmp(doc_text(late, "p2"), "none") == 0);
    /* the same changes, the same state */
    pass(root, m2);
    pass(root, late);
    uint8_t d1[32], d2[32], d3[32];
    CHECK_EQ(shoal_digest(root, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(m2, true, d2), SHOAL_OK);
    CHECK_EQ(shoal_digest(late, true, d3), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0);
    CHECK(memcmp(d1, d3, 32) == 0);
    /* the equivocating key's own replica refuses its writes once it
     * holds the proof */
    pass(root, dev);
    CHECK_EQ(put_int(dev, "p3", "store_id", 1, "stock", 2), SHOAL_EPERM);
    shoal_check_stats st;
    CHECK_EQ(shoal_replica_check(root, problem_fn, NULL, &st), SHOAL_OK);
    CHECK_EQ(st.problems, 0);
    /* reopened: the same */
    shoal_replica_close(root);
    tm.r[0] = root = open_replica(tm.dir[0], NULL, &err);
    if (root) {
        CHECK_EQ(shoal_digest(root, true, d2), SHOAL_OK);
        CHECK(memcmp(d1, d2, 32) == 0);
        CHECK(shoal__certs_revoked(root, x));
    }
    shoal_replica_close(twin);
    check_rmtree(tdir);
    free(tdir);
    team_close(&tm);
    REQUIRE(root);
}

/* A partial replica that got sealed changes from a peer without their
 * groups (an auditor's export) asks for them again when it links, if its
 * roles read them: it summarises those documents as not held, and the
 * peer sends them whole, groups and all.  An auditor, which may not read
 * them, does not ask. */
static void
test_sealed_partial(void)
{
    team tm;
    if (!team_open(&tm, 4)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *mgr = tm.r[1], *aud = tm.r[2], *pm = tm.r[3];
    uint64_t v;
    CHECK_EQ(shoal_auth_policy(root, SEALED_POLICY, strlen(SEALED_POLICY), &v), SHOAL_OK);
    grant(root, mgr, "manager", 1);
    grant(root, aud, "auditor", 1);
    grant(root, pm, "manager", 1);
    pass(root, mgr);
    CHECK_EQ(put_sealed(mgr, "p1"), SHOAL_OK);
    pass(mgr, root);
    const char *all = "stock=3 cost=7 margin=5 notes=a,b";
    const char *hidden = "stock=3 cost=? margin=? notes=?,?";
    char *ep = NULL;
    CHECK_EQ(shoal_net_listen(root, "tcp://127.0.0.1:0", &ep), SHOAL_OK);
    REQUIRE(ep);
    subscribe(aud, NULL);
    CHECK_EQ(shoal_net_sync(aud, ep, tm.root, 20000), SHOAL_OK);
    CHECK(strcmp(show(aud, "p1"), hidden) == 0);
    /* the partial manager gets the changes from the auditor's export */
    subscribe(pm, "store_id == 1");
    pass(aud, pm);
    CHECK(strcmp(show(pm, "p1"), hidden) == 0);
    CHECK(withheld_is(pm, 1)); /* auth show says what was withheld */
    /* linked to the root, it asks for the document again */
    CHECK_EQ(shoal_net_sync(pm, ep, tm.root, 20000), SHOAL_OK);
    CHECK(wait_show(pm, "p1", all));
    CHECK_EQ(unsealed_count(pm), 0);
    CHECK(withheld_is(pm, 0));
    /* the auditor asks for nothing: it still reads no value */
    CHECK_EQ(shoal_net_sync(aud, ep, tm.root, 20000), SHOAL_OK);
    CHECK(strcmp(show(aud, "p1"), hidden) == 0);
    CHECK(withheld_is(aud, 0)); /* nothing it may read is missing */
    CHECK_EQ(shoal_replica_check(pm, print_problem, NULL, NULL), SHOAL_OK);
    shoal_free(ep);
    team_close(&tm);
}

/* A device's own writes that become VOID are never lost: an event says
 * so, shoal_orphans lists them, and shoal_orphan_reauthor re-issues them
 * under the device's new key, checked like any write. */
static void
test_orphans(void)
{
    team tm;
    if (!team_open(&tm, 4)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *dev = tm.r[1], *dev2 = tm.r[2], *clerk = tm.r[3];
    grant(root, dev, "manager", 1);
    grant(root, dev2, "manager", 1);
    grant(root, clerk, "clerk", 1);
    pass(root, dev);
    CHECK_EQ(put_int(dev, "p1", "store_id", 1, "stock", 3), SHOAL_OK);
    CHECK_EQ(put_int(dev, "p1", "stock", 5, NULL, 0), SHOAL_OK);
    CHECK_EQ(put_tag(dev, "p1", 0, "a"), SHOAL_OK);
    pass(dev, root);
    CHECK(strcmp(doc_text(root, "p1"), "stock=5 price=- tags=a") == 0);
    char *j = NULL;
    CHECK_EQ(shoal_orphans(dev, &j), SHOAL_OK);
    CHECK(j && strcmp(j, "[]") == 0); /* nothing VOID yet */
    shoal_free(j);
    /* the tablet is lost, then found: its key was revoked meanwhile */
    CHECK_EQ(shoal_auth_revoke(root, shoal_replica_id(dev), 0, "lost", NULL), SHOAL_OK);
    CHECK(strcmp(doc_text(root, "p1"), "none") == 0);
    shoal_event *e = NULL;
    while (shoal_event_next(dev, 0, &e) == SHOAL_OK) /* its own writes' events */
        shoal_event_free(e);
    pass(root, dev);
    bool voided = false;
    while (shoal_event_next(dev, 0, &e) == SHOAL_OK) {
        voided = voided || (shoal_event_voided(e) && strcmp(shoal_event_doc_id(e), "p1") == 0);
        shoal_event_free(e);
    }
    CHECK(voided);
    CHECK_EQ(shoal_orphans(dev, &j), SHOAL_OK);
    CHECK(j && strstr(j, "\"doc\":\"p1\"") && strstr(j, "\"op\":\"insert\"") &&
          strstr(j, "\"value\":5") && strstr(j, "\"seq\":3"));
    shoal_free(j);
    CHECK_EQ(shoal_orphans(root, &j), SHOAL_OK); /* the root's own are not VOID */
    CHECK(j && strcmp(j, "[]") == 0);
    shoal_free(j);
    /* re-issued where the roles do not allow it: refused, nothing made */
    pass(root, clerk);
    size_t n = 9;
    CHECK_EQ(shoal_orphan_reauthor(dev, clerk, &n), SHOAL_EPERM);
    CHECK_EQ(n, 0);
    CHECK(strcmp(doc_text(clerk, "p1"), "none") == 0);
    /* under the device's new key: the same document again */
    pass(root, dev2);
    CHECK_EQ(shoal_orphan_reauthor(dev, dev2, &n), SHOAL_OK);
    CHECK_EQ(n, 3);
    CHECK(strcmp(doc_text(dev2, "p1"), "stock=5 price=- tags=a") == 0);
    pass(dev2, root);
    CHECK(strcmp(doc_text(root, "p1"), "stock=5 price=- tags=a") == 0);
    CHECK_EQ(shoal_orphan_reauthor(dev, dev, &n), SHOAL_EINVAL);
    team_close(&tm);
}

/* Revoking an admin: the certificates it issued past the cut are VOID,
 * and so is every change that names one (a device enrolled by a stolen
 * admin key writes nothing that takes effect), on replicas that applied
 * them before the revocation and on those that get it first; what it
 * issued up to the cut stands; the device's links are refused and its
 * own replica refuses its writes. */
static void
test_admin_void(void)
{
    team tm;
    if (!team_open(&tm, 5)) {
        team_close(&tm);
        REQUIRE(!"a replica opens");
    }
    shoal_replica *root = tm.r[0], *adm = tm.r[1], *old = tm.r[2], *dev = tm.r[3], *late = tm.r[4];
    CHECK_EQ(shoal_auth_admin(root, shoal_replica_id(adm), SHOAL_CAP_ISSUE, NULL, 0), SHOAL_OK);
    pass(root, adm);
    grant(adm, old, "manager", 1); /* up to the cut: stands */
    uint64_t cut = own_seq(adm);
    grant(adm, dev, "manager", 1); /* past it: VOID once the admin is revoked */
    pass(adm, old);
    pass(adm, dev);
    CHECK_EQ(put_int(old, "p1", "store_id", 1, "stock", 1), SHOAL_OK);
    CHECK_EQ(put_int(dev, "p2", "store_id", 1, "stock", 2), SHOAL_OK);
    pass(old, dev);
    CHECK_EQ(put_int(dev, "p1", "stock", 9, NULL, 0), SHOAL_OK);
    pass(adm, root);
    pass(old, root);
    pass(dev, root);
    CHECK(strcmp(doc_text(root, "p1"), "stock=9 price=- tags=") == 0);
    CHECK(strcmp(doc_text(root, "p2"), "stock=2 price=- tags=") == 0);
    uint8_t x[32], ed[32];
    REQUIRE(crypto_sign_ed25519_pk_to_curve25519(x, shoal_replica_id(dev)) == 0);
    CHECK(shoal__certs_admit(root, x, ed));

    /* the admin's key is stolen: the root revokes it from past the first
     * certificate */
    uint64_t got = 0;
    CHECK_EQ(shoal_auth_revoke(root, shoal_replica_id(adm), cut, "stolen", &got), SHOAL_OK);
    CHECK_EQ(got, cut);
    CHECK(strcmp(doc_text(root, "p1"), "stock=1 price=- tags=") == 0);
    CHECK(strcmp(doc_text(root, "p2"), "none") == 0);
    CHECK(!shoal__certs_admit(root, x, ed)); /* its links are refused */
    char *j = NULL;
    CHECK_EQ(shoal_auth_show(root, &j), SHOAL_OK);
    char devhex[65], oldhex[65];
    snprintf(devhex, sizeof devhex, "%s", hex_of(shoal_replica_id(dev)));
    snprintf(oldhex, sizeof oldhex, "%s", hex_of(shoal_replica_id(old)));
    CHECK(j && strstr(j, oldhex) != NULL);
    CHECK(j && strstr(j, devhex) == NULL); /* its certificate is not in force */
    shoal_free(j);
    /* a replica that gets the revocation with everything else */
    pass(root, late);
    CHECK(strcmp(doc_text(late, "p1"), "stock=1 price=- tags=") == 0);
    CHECK(strcmp(doc_text(late, "p2"), "none") == 0);
    uint8_t d1[32], d2[32];
    CHECK_EQ(shoal_digest(root, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(late, true, d2), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0);
    /* the device's own replica refuses its writes once it holds it; the
     * manager certified before the cut writes on */
    pass(root, dev);
    CHECK_EQ(put_int(dev, "p3", "store_id", 1, "stock", 3), SHOAL_EPERM);
    pass(root, old);
    CHECK_EQ(put_int(old, "p1", "stock", 4, NULL, 0), SHOAL_OK);
    pass(old, root);
    CHECK(strcmp(doc_text(root, "p1"), "stock=4 price=- tags=") == 0);
    shoal_check_stats st;
    CHECK_EQ(shoal_replica_check(root, problem_fn, NULL, &st), SHOAL_OK);
    CHECK_EQ(st.problems, 0);
    /* reopened: the same */
    CHECK_EQ(shoal_digest(root, true, d1), SHOAL_OK);
    shoal_replica_close(root);
    int err;
    tm.r[0] = root = open_replica(tm.dir[0], NULL, &err);
    if (root) {
        CHECK_EQ(shoal_digest(root, true, d2), SHOAL_OK);
        CHECK(memcmp(d1, d2, 32) == 0);
        CHECK(!shoal__certs_admit(root, x, ed));
    }
    team_close(&tm);
    REQUIRE(root);
}

int
main(void)
{
    RUN(test_verdicts);
    RUN(test_sealed);
    RUN(test_waits_for_authority);
    RUN(test_bad_authority);
    RUN(test_monotonic);
    RUN(test_convergence);
    RUN(test_replica);
    RUN(test_local_writes);
    RUN(test_sync);
    RUN(test_public_api);
    RUN(test_links);
    RUN(test_reading);
    RUN(test_revoke);
    RUN(test_expiry);
    RUN(test_full_demoted);
    RUN(test_void);
    RUN(test_equivocation);
    RUN(test_admin_void);
    RUN(test_sealed_partial);
    RUN(test_orphans);
    RUN(test_partial);
    RUN(test_concurrency);
    return check_summary();
}
