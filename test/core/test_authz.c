/*
 * test/core/test_authz.c - permissions below the replica: the policy
 * compiler (core/policy.c) and the canonical authority objects
 * (crdt/auth.c), and the write check (crdt/authz.c) on changes and
 * document states built here.
 *
 * Each right of the retail and hospital policies of docs/permissions.md is
 * exercised allowed and denied; each rule of `_auth` (who may publish,
 * issue, delegate, revoke) likewise.  The check is a pure function, so
 * these tests pin its verdict for each input; how a replica finds those
 * inputs (the state at a change's deps, the objects a change names) is
 * tested with replicas.
 */
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "check.h"
#include "core.h"
#include "crdt.h"

/* ------------------------------------------------------------- helpers */

static const uint8_t ROOT[32] = { 0xa0, 1 };
static const uint8_t ADM_A[32] = { 0xa1, 2 };
static const uint8_t ADM_B[32] = { 0xa2, 3 };
static const uint8_t DEV1[32] = { 0xd1, 4 };
static const uint8_t DEV2[32] = { 0xd2, 5 };

static const char RETAIL[] =
    "{\"collections\": {\"products\": {\"guard\": [\"store_id\"],"
    "   \"queryable\": [\"store_id\", \"category\", \"size\", \"price\"]}},"
    " \"roles\": {"
    "  \"clerk\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "             \"write\": [\"stock\"]}},"
    "  \"manager\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "             \"write\": \"*\", \"create\": true, \"delete\": true}},"
    "  \"creator\": {\"products\": {\"where\": \"store_id == $user.store_id\", \"read\": \"*\","
    "             \"write\": \"*\", \"create\": true}},"
    "  \"pricer\": {\"products\": {\"where\": \"TRUE\", \"read\": \"*\", \"write\": [\"price\"]}},"
    "  \"regional\": {\"products\": {\"where\": \"store_id IN (1, 2)\", \"read\": \"*\","
    "             \"write\": [\"store_id\", \"stock\"]}},"
    "  \"auditor\": {\"products\": {\"where\": \"TRUE\", \"read\": {\"except\": [\"cost_price\"]},"
    "             \"write\": []}}}}";

static const char HOSPITAL[] =
    "{\"collections\": {\"charts\": {\"guard\": [\"ward\", \"care_team\", \"team\"],"
    "   \"queryable\": [\"ward\", \"care_team\", \"team\", \"status\", \"admitted_at\"]}},"
    " \"roles\": {"
    "  \"resident\": {\"charts\": {\"where\": \"care_team CONTAINS $user.id\", \"read\": \"*\","
    "               \"write\": [\"notes\", \"vitals\", \"status\"]}},"
    "  \"fellow\": {\"charts\": {\"where\": \"team == $user.team\", \"read\": \"*\","
    "               \"write\": [\"notes\", \"vitals\", \"status\", \"diagnosis\"]}},"
    "  \"attending\": {\"charts\": {\"where\": \"ward == $user.ward\", \"read\": \"*\","
    "               \"write\": \"*\", \"create\": true, \"delete\": false}},"
    "  \"admin\": {\"charts\": {\"where\": \"TRUE\","
    "               \"read\": {\"except\": [\"diagnosis\", \"notes\", \"vitals\"]},"
    "               \"write\": [\"name\", \"address\", \"ward\", \"care_team\", \"team\"],"
    "               \"create\": true, \"delete\": true}}}}";

static shoal__policy *
compile(const char *json, uint64_t version)
{
    shoal__buf b;
    shoal__buf_init(&b);
    char err[256];
    int rc = shoal__policy_from_json(json, strlen(json), version, NULL, &b, err, sizeof err);
    if (rc) {
        fprintf(stderr, "compile: %s\n", err);
        shoal__buf_free(&b);
        return NULL;
    }
    shoal__policy *p = NULL;
    rc = shoal__policy_decode(b.p, b.len, &p, err, sizeof err);
    shoal__buf_free(&b);
    if (rc)
        fprintf(stderr, "decode: %s\n", err);
    return p;
}

/* The error of compiling json, its message in err. */
static int
compile_err(const char *json, char *err, size_t errlen)
{
    shoal__buf b;
    shoal__buf_init(&b);
    int rc = shoal__policy_from_json(json, strlen(json), 1, NULL, &b, err, errlen);
    CHECK(rc == SHOAL_OK || b.len == 0); /* nothing left behind on error */
    shoal__buf_free(&b);
    return rc;
}

static shoal_value
vstr(const char *s)
{
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = strlen(s) };
    return v;
}

static shoal_value
vint(int64_t i)
{
    shoal_value v = { .type = SHOAL_T_INT, .i = i };
    return v;
}

static shoal_value
vbin(const uint8_t *p, size_t n)
{
    shoal_value v = { .type = SHOAL_T_BYTES, .ptr = p, .len = n };
    return v;
}

/* A certificate for subject, encoded into *bytes and decoded from it. */
typedef struct tcert {
    shoal__buf bytes;
    shoal__cert c;
} tcert;

static void
mkcert(tcert *t, const uint8_t subject[32], const char *user, const char *roles_csv,
       const char *attr, shoal_value attr_val, uint64_t nb, uint64_t na, uint64_t serial,
       uint64_t floor)
{
    shoal__cert c;
    memset(&c, 0, sizeof c);
    memcpy(c.subject, subject, 32);
    c.user.p = (const uint8_t *)user;
    c.user.n = strlen(user);
    shoal__name roles[8];
    char buf[128];
    snprintf(buf, sizeof buf, "%s", roles_csv);
    uint32_t n = 0;
    for (char *s = strtok(buf, ","); s && n < 8; s = strtok(NULL, ","))
        roles[n++] = (shoal__name){ (const uint8_t *)s, strlen(s) };
    /* sorted, as the encoder wants */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t k = i;
             k > 0 && strcmp((const char *)roles[k - 1].p, (const char *)roles[k].p) > 0; k--) {
            shoal__name x = roles[k];
            roles[k] = roles[k - 1];
            roles[k - 1] = x;
        }
    /* the names above are NUL-terminated inside buf, so strcmp is fine */
    c.nroles = n;
    c.roles = roles;
    shoal__name an = { (const uint8_t *)attr, attr ? strlen(attr) : 0 };
    if (attr) {
        c.nattrs = 1;
        c.attr_names = &an;
        c.attr_vals = &attr_val;
    }
    c.not_before = nb;
    c.not_after = na;
    c.serial = serial;
    c.policy_floor = floor;
    shoal__buf_init(&t->bytes);
    int rc = shoal__cert_encode(&c, &t->bytes);
    CHECK_EQ(rc, SHOAL_OK);
    CHECK_EQ(shoal__cert_decode(t->bytes.p, t->bytes.len, &t->c), SHOAL_OK);
}

static void
freecert(tcert *t)
{
    shoal__cert_clear(&t->c);
    shoal__buf_free(&t->bytes);
}

#define HLC(ms) ((uint64_t)(ms) << 16)
#define ALWAYS  0, UINT64_MAX

/* A change under construction. */
typedef struct tch {
    shoal__change c;
    shoal__op ops[8];
} tch;

static void
mkch(tch *t, const uint8_t author[32], uint64_t seq, uint64_t hlc, const char *coll,
     const char *doc, uint64_t epoch)
{
    memset(t, 0, sizeof *t);
    memcpy(t->c.author, author, 32);
    t->c.seq = seq;
    t->c.hlc = hlc;
    t->c.coll = (const uint8_t *)coll;
    t->c.coll_len = strlen(coll);
    t->c.doc = (const uint8_t *)doc;
    t->c.doc_len = strlen(doc);
    t->c.epoch = epoch;
    t->c.ops = t->ops;
}

static void
op_set(tch *t, const char *f, shoal_value v)
{
    shoal__op *o = &t->ops[t->c.nops++];
    memset(o, 0, sizeof *o);
    o->kind = SHOAL__OP_SET;
    o->field = (const uint8_t *)f;
    o->field_len = strlen(f);
    o->value = v;
}

static void
op_kind(tch *t, uint8_t kind, const char *f)
{
    shoal__op *o = &t->ops[t->c.nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->field = f ? (const uint8_t *)f : NULL;
    o->field_len = f ? strlen(f) : 0;
    if (kind == SHOAL__OP_COUNT)
        o->delta = 1;
}

/* INS at the head of list field f. */
static void
op_ins(tch *t, const char *f, shoal_value v)
{
    shoal__op *o = &t->ops[t->c.nops++];
    memset(o, 0, sizeof *o);
    o->kind = SHOAL__OP_INS;
    o->field = (const uint8_t *)f;
    o->field_len = strlen(f);
    o->value = v;
    o->ref.head = true;
}

static void
apply(shoal__doc *d, tch *t)
{
    CHECK_EQ(shoal__doc_apply(d, &t->c, 0, t->c.nops), SHOAL_OK);
}

/* A product doc "p1" of store `store` written by DEV2 at hlc 100. */
static shoal__doc *
product(int64_t store)
{
    shoal__doc *d = shoal__doc_new();
    tch t;
    mkch(&t, DEV2, 1, HLC(100), "products", "p1", 0);
    op_set(&t, "store_id", vint(store));
    op_set(&t, "price", vint(10));
    op_set(&t, "stock", vint(3));
    apply(d, &t);
    return d;
}

static int
judge(const tch *t, const tcert *cert, const shoal__policy *p, const shoal__doc *pre,
      shoal__authz_out *out)
{
    shoal__authz_in in;
    memset(&in, 0, sizeof in);
    in.c = &t->c;
    in.cert = cert ? &cert->c : NULL;
    in.policy = p;
    in.pre = pre;
    memset(out, 0, sizeof *out);
    CHECK_EQ(shoal__authz_check(&in, out), SHOAL_OK);
    if (out->verdict != SHOAL__AUTHZ_ADMIT && getenv("SHOAL_AUTHZ_VERBOSE"))
        fprintf(stderr, "  verdict %d: %s\n", out->verdict, out->why);
    return out->verdict;
}

/* ----------------------------------------------------- policy compiler */

static void
test_policy_compiles(void)
{
    shoal__policy *p = compile(RETAIL, 3);
    REQUIRE(p);
    CHECK_EQ(p->version, 3);
    uint64_t hv = 0;
    CHECK_EQ(shoal__policy_version(p->bytes, p->len, &hv), SHOAL_OK);
    CHECK_EQ(hv, 3);
    CHECK(shoal__policy_version(p->bytes, 3, &hv) != SHOAL_OK);
    CHECK_EQ(p->ncolls, 1);
    CHECK_EQ(p->nroles, 6);
    const shoal__prole *ro = shoal__policy_role(p, (const uint8_t *)"auditor", 7);
    REQUIRE(ro);
    const shoal__prule *ru = shoal__prole_rule(ro, (const uint8_t *)"products", 8);
    REQUIRE(ru);
    CHECK(shoal__fset_has(&ru->read, (const uint8_t *)"price", 5));
    CHECK(!shoal__fset_has(&ru->read, (const uint8_t *)"cost_price", 10));
    CHECK(!shoal__fset_has(&ru->write, (const uint8_t *)"stock", 5));
    CHECK(!ru->create && !ru->del);
    ro = shoal__policy_role(p, (const uint8_t *)"manager", 7);
    REQUIRE(ro);
    ru = shoal__prole_rule(ro, (const uint8_t *)"products", 8);
    REQUIRE(ru);
    CHECK(ru->create && ru->del);
    CHECK(shoal__fset_has(&ru->write, (const uint8_t *)"anything", 8));
    CHECK(shoal__policy_role(p, (const uint8_t *)"nobody", 6) == NULL);
    shoal__policy_free(p);
    p = compile(HOSPITAL, 1);
    CHECK(p != NULL);
    shoal__policy_free(p);
}

/* One encoding per policy: key order, list order and duplicates in the
 * JSON do not change the bytes. */
static void
test_policy_canonical(void)
{
    const char *a =
        "{\"roles\": {\"b\": {\"c\": {\"where\": \"TRUE\", \"write\": [\"y\", \"x\"]}},"
        " \"a\": {\"c\": {\"where\": \"g == 1\", \"read\": \"*\"}}},"
        " \"collections\": {\"c\": {\"queryable\": [\"q\", \"g\"], \"guard\": [\"g\"]}}}";
    const char *b =
        "{\"collections\": {\"c\": {\"guard\": [\"g\", \"g\"], \"queryable\": [\"g\", \"q\"]}},"
        " \"roles\": {\"a\": {\"c\": {\"read\": \"*\", \"where\": \"g == 1\"}},"
        " \"b\": {\"c\": {\"write\": [\"x\", \"y\", \"x\"], \"where\": \"TRUE\", "
        "\"create\": false}}}, \"lang\": 1}";
    shoal__buf ba, bb;
    shoal__buf_init(&ba);
    shoal__buf_init(&bb);
    char err[256];
    CHECK_EQ(shoal__policy_from_json(a, strlen(a), 7, NULL, &ba, err, sizeof err), SHOAL_OK);
    CHECK_EQ(shoal__policy_from_json(b, strlen(b), 7, NULL, &bb, err, sizeof err), SHOAL_OK);
    CHECK(ba.len == bb.len && memcmp(ba.p, bb.p, ba.len) == 0);
    /* Every prefix is refused. */
    for (size_t n = 0; n < ba.len; n++) {
        shoal__policy *p = NULL;
        int rc = shoal__policy_decode(ba.p, n, &p, err, sizeof err);
        CHECK(rc != SHOAL_OK && p == NULL);
    }
    /* Non-canonical forms of one policy: names out of order or repeated. */
    for (int v = 0; v < 3; v++) {
        shoal__buf nb;
        shoal__buf_init(&nb);
        shoal__mpw w;
        shoal__mpw_init(&w, &nb);
        shoal__mpw_array(&w, 6);
        shoal__mpw_uint(&w, SHOAL__AUTH_POLICY);
        shoal__mpw_uint(&w, SHOAL__AUTH_LANG);
        shoal__mpw_uint(&w, 1);
        shoal__mpw_nil(&w);
        shoal__mpw_array(&w, 1);
        shoal__mpw_array(&w, 3);
        shoal__mpw_str(&w, "c", 1);
        shoal__mpw_array(&w, 0);
        shoal__mpw_array(&w, v == 2 ? 2 : 1); /* v 2: queryable ["q", "q"] */
        shoal__mpw_str(&w, "q", 1);
        if (v == 2)
            shoal__mpw_str(&w, "q", 1);
        shoal__mpw_array(&w, 2);
        for (int k = 0; k < 2; k++) { /* roles "a", "b"; v 1: "b", "a" */
            shoal__mpw_array(&w, 2);
            shoal__mpw_str(&w, (v == 1) == (k == 0) ? "b" : "a", 1);
            shoal__mpw_array(&w, 0);
        }
        REQUIRE(w.err == SHOAL_OK);
        shoal__policy *p = NULL;
        CHECK_EQ(shoal__policy_decode(nb.p, nb.len, &p, err, sizeof err),
                 v == 0 ? SHOAL_OK : SHOAL_EPROTO);
        shoal__policy_free(p);
        shoal__buf_free(&nb);
    }
    /* A byte flipped anywhere: a clean refusal or another policy, never a
     * crash (ASan). */
    for (size_t i = 0; i < ba.len; i++) {
        uint8_t saved = ba.p[i];
        ba.p[i] ^= 0x01;
        shoal__policy *p = NULL;
        int rc = shoal__policy_decode(ba.p, ba.len, &p, err, sizeof err);
        CHECK((rc == SHOAL_OK) == (p != NULL));
        shoal__policy_free(p);
        ba.p[i] = saved;
    }
    /* Trailing bytes */
    shoal__buf_append(&ba, "\xc0", 1);
    shoal__policy *p = NULL;
    CHECK_EQ(shoal__policy_decode(ba.p, ba.len, &p, err, sizeof err), SHOAL_EPROTO);
    shoal__buf_free(&ba);
    shoal__buf_free(&bb);
}

static void
test_policy_errors(void)
{
    char err[256];
    static const struct {
        const char *json;
        int rc;
        const char *msg;
    } cases[] = {
        { "[1]", SHOAL_EINVAL, "expected a JSON object" },
        { "{\"collections\": {}, \"roles\": {}, \"extra\": 1}", SHOAL_EINVAL,
          "unknown key \"extra\"" },
        { "{\"collections\": {}}", SHOAL_EINVAL, "policy.roles" },
        { "{\"lang\": 2, \"collections\": {}, \"roles\": {}}", SHOAL_EINVAL, "language version" },
        { "{\"collections\": {\"c\": {\"guard\": [\"g\"]}}, \"roles\": {}}", SHOAL_EINVAL,
          "guard field \"g\" is not queryable" },
        { "{\"collections\": {\"c\": {\"gaurd\": []}}, \"roles\": {}}", SHOAL_EINVAL,
          "unknown key \"gaurd\"" },
        { "{\"collections\": {\"_auth\": {}}, \"roles\": {}}", SHOAL_EINVAL, "reserved" },
        { "{\"collections\": {\"c\": {\"guard\": [\"g\"], \"queryable\": [\"g\"]}},"
          " \"roles\": {\"r\": {\"c\": {\"where\": \"x == 1\"}}}}",
          SHOAL_EINVAL, "where names \"x\", which is not a guard field" },
        { "{\"collections\": {\"c\": {}}, \"roles\": {\"r\": {\"d\": {\"where\": \"TRUE\"}}}}",
          SHOAL_EINVAL, "collection \"d\" is not declared" },
        { "{\"collections\": {\"c\": {}}, \"roles\": {\"r\": {\"c\": {\"read\": \"*\"}}}}",
          SHOAL_EINVAL, "where: required" },
        { "{\"collections\": {\"c\": {\"guard\": [\"g\"], \"queryable\": [\"g\"]}},"
          " \"roles\": {\"r\": {\"c\": {\"where\": \"g == :p\"}}}}",
          SHOAL_EINVAL, "takes no :parameters" },
        { "{\"collections\": {\"c\": {\"guard\": [\"g\"], \"queryable\": [\"g\"]}},"
          " \"roles\": {\"r\": {\"c\": {\"where\": \"g ==\"}}}}",
          SHOAL_EINVAL, "where: position" },
        { "{\"collections\": {\"c\": {\"guard\": [\"g\"], \"queryable\": [\"g\", \"q\"]}},"
          " \"roles\": {\"r\": {\"c\": {\"where\": \"TRUE\", \"read\": {\"except\": [\"q\"]}}}}}",
          SHOAL_EINVAL, "not its queryable field \"q\"" },
        { "{\"collections\": {\"c\": {\"guard\": [\"g\"], \"queryable\": [\"g\"]}},"
          " \"roles\": {\"r\": {\"c\": {\"where\": \"TRUE\", \"read\": [\"x\"]}}}}",
          SHOAL_EINVAL, "not its queryable field \"g\"" },
        { "{\"collections\": {\"c\": {}}, \"roles\": {\"r\": {\"c\": {\"where\": \"TRUE\","
          " \"write\": {\"except\": []}}}}}",
          SHOAL_EINVAL, "expected \"*\" or an array" },
        { "{\"collections\": {\"c\": {}}, \"roles\": {\"r\": {\"c\": {\"where\": \"TRUE\","
          " \"create\": 1}}}}",
          SHOAL_EINVAL, "expected true or false" },
        { "{\"collections\": {}, \"roles\": {}", SHOAL_EINVAL, "line 1" },
        { "{\"collections\": {}, \"roles\": {}, \"roles\": {}}", SHOAL_EINVAL, "duplicate" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = compile_err(cases[i].json, err, sizeof err);
        CHECK_EQ(rc, cases[i].rc);
        if (!strstr(err, cases[i].msg)) {
            fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, err, cases[i].msg);
            check_failures++;
        }
    }
    /* A reader that reads nothing is no reader: no queryable field needed. */
    CHECK_EQ(compile_err("{\"collections\": {\"c\": {\"guard\": [\"g\"], \"queryable\": [\"g\"]}},"
                         " \"roles\": {\"r\": {\"c\": {\"where\": \"TRUE\", \"write\": [\"x\"]}}}}",
                         err, sizeof err),
             SHOAL_OK);
}

/* $user belongs to policies; :parameters to queries. */
static void
test_query_user_refs(void)
{
    shoal__query *q = NULL;
    char err[128];
    CHECK_EQ(shoal__query_parse("a == $user.x", 12, &q, err, sizeof err), SHOAL_EINVAL);
    CHECK(strstr(err, "only in a policy") != NULL);
    CHECK_EQ(shoal__query_parse_policy("a == $usr.x", 11, &q, err, sizeof err), SHOAL_EINVAL);
    CHECK_EQ(shoal__query_parse_policy("a == $user.", 11, &q, err, sizeof err), SHOAL_EINVAL);
    REQUIRE(shoal__query_parse_policy("a == $user.x OR b IN ($user.id, 3)", 34, &q, err,
                                      sizeof err) == SHOAL_OK);
    CHECK_EQ(shoal__query_nparams(q), 2);
    CHECK(strcmp(shoal__query_param(q, 0), "$user.x") == 0);
    CHECK(strcmp(shoal__query_param(q, 1), "$user.id") == 0);
    CHECK_EQ(shoal__query_ready(q, err, sizeof err), SHOAL_EINVAL);
    CHECK(strstr(err, "$user.x is not bound") != NULL);
    /* eval_with takes the values without binding them */
    shoal__qfield f[2];
    memset(f, 0, sizeof f);
    f[0].name = (const uint8_t *)"a";
    f[0].name_len = 1;
    f[0].kind = SHOAL_K_REGISTER;
    f[0].value = vint(5);
    f[1].name = (const uint8_t *)"b";
    f[1].name_len = 1;
    f[1].kind = SHOAL_K_REGISTER;
    f[1].value = vstr("u1");
    shoal__qdoc d = { (const uint8_t *)"d", 1, f, 2 };
    shoal_value pv[2] = { vint(5), vstr("zz") };
    CHECK_EQ(shoal__query_eval_with(q, pv, &d), 1);
    pv[0] = vint(6);
    CHECK_EQ(shoal__query_eval_with(q, pv, &d), 0);
    pv[1] = vstr("u1");
    CHECK_EQ(shoal__query_eval_with(q, pv, &d), 1);
    CHECK_EQ(shoal__query_ready(q, NULL, 0), SHOAL_EINVAL); /* still unbound */
    shoal__query_free(q);
}

/* ------------------------------------------------------- object codecs */

static void
test_cert_codec(void)
{
    tcert t;
    mkcert(&t, DEV1, "u1", "manager,clerk", "store_id", vint(12), HLC(10), HLC(20), 4, 2);
    CHECK_EQ(t.c.nroles, 2);
    CHECK(t.c.roles[0].n == 5 && memcmp(t.c.roles[0].p, "clerk", 5) == 0);
    CHECK(shoal__cert_has_role(&t.c, (const uint8_t *)"manager", 7));
    const shoal_value *a = shoal__cert_attr(&t.c, (const uint8_t *)"store_id", 8);
    CHECK(a && a->type == SHOAL_T_INT && a->i == 12);
    CHECK_EQ(t.c.serial, 4);
    CHECK_EQ(t.c.policy_floor, 2);
    CHECK_EQ(shoal__auth_kind(t.bytes.p, t.bytes.len), SHOAL__AUTH_CERT);
    /* every prefix is refused */
    for (size_t n = 0; n < t.bytes.len; n++) {
        shoal__cert c;
        CHECK(shoal__cert_decode(t.bytes.p, n, &c) != SHOAL_OK);
    }
    freecert(&t);

    /* What the encoder refuses to write (it would not decode). */
    shoal__cert c;
    memset(&c, 0, sizeof c);
    shoal__name roles[2] = { { (const uint8_t *)"b", 1 }, { (const uint8_t *)"a", 1 } };
    c.user = (shoal__name){ (const uint8_t *)"u", 1 };
    c.roles = roles;
    c.nroles = 2; /* unsorted */
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__cert_encode(&c, &b), SHOAL_EINVAL);
    CHECK_EQ(b.len, 0);
    c.nroles = 0; /* no role */
    CHECK_EQ(shoal__cert_encode(&c, &b), SHOAL_EINVAL);
    c.nroles = 1;
    shoal__name an = { (const uint8_t *)"id", 2 };
    shoal_value av = vint(1);
    c.nattrs = 1;
    c.attr_names = &an;
    c.attr_vals = &av;
    CHECK_EQ(shoal__cert_encode(&c, &b), SHOAL_EINVAL); /* reserved attribute */
    an = (shoal__name){ (const uint8_t *)"role", 4 };
    CHECK_EQ(shoal__cert_encode(&c, &b), SHOAL_EINVAL);
    an = (shoal__name){ (const uint8_t *)"ward", 4 };
    c.not_before = 5;
    c.not_after = 4;
    CHECK_EQ(shoal__cert_encode(&c, &b), SHOAL_EINVAL); /* empty validity */
    c.not_after = 5;
    CHECK_EQ(shoal__cert_encode(&c, &b), SHOAL_OK);
    shoal__buf_free(&b);
}

static void
test_grant_revoke_codec(void)
{
    shoal__grant g;
    memset(&g, 0, sizeof g);
    memcpy(g.key, ADM_A, 32);
    g.caps = SHOAL__CAP_ISSUE | SHOAL__CAP_REVOKE;
    g.scope = (shoal__name){ (const uint8_t *)"store_id == 12", 14 };
    g.max_life_ms = 86400000;
    g.serial = 1;
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__grant_encode(&g, &b), SHOAL_OK);
    shoal__grant d;
    CHECK_EQ(shoal__grant_decode(b.p, b.len, &d), SHOAL_OK);
    CHECK_EQ(d.caps, g.caps);
    CHECK(d.scope.n == 14 && memcmp(d.scope.p, "store_id == 12", 14) == 0);
    CHECK_EQ(d.max_life_ms, 86400000);
    CHECK_EQ(shoal__auth_kind(b.p, b.len), SHOAL__AUTH_ADMIN);
    b.len = 0;
    g.caps = 0;
    CHECK_EQ(shoal__grant_encode(&g, &b), SHOAL_EINVAL);
    g.caps = 16;
    CHECK_EQ(shoal__grant_encode(&g, &b), SHOAL_EINVAL);
    g.caps = 1;
    g.scope = (shoal__name){ (const uint8_t *)"x == :p", 7 };
    CHECK_EQ(shoal__grant_encode(&g, &b), SHOAL_EINVAL); /* a scope has no parameters */
    g.scope = (shoal__name){ (const uint8_t *)"x ==", 4 };
    CHECK_EQ(shoal__grant_encode(&g, &b), SHOAL_EINVAL);

    shoal__revoke v;
    memset(&v, 0, sizeof v);
    memcpy(v.target, DEV1, 32);
    v.cut = 41;
    v.reason = (shoal__name){ (const uint8_t *)"stolen", 6 };
    b.len = 0;
    CHECK_EQ(shoal__revoke_encode(&v, &b), SHOAL_OK);
    shoal__revoke rv;
    CHECK_EQ(shoal__revoke_decode(b.p, b.len, &rv), SHOAL_OK);
    CHECK_EQ(rv.cut, 41);
    CHECK(!rv.has_cert);
    CHECK_EQ(shoal__auth_kind(b.p, b.len), SHOAL__AUTH_REVOKE);
    CHECK_EQ(shoal__auth_kind((const uint8_t *)"\x91\x06", 2), 0);
    CHECK_EQ(shoal__auth_kind((const uint8_t *)"\x91", 1), 0);
    char id[SHOAL__AUTH_DOCID_MAX];
    CHECK_EQ(shoal__auth_docid(SHOAL__AUTH_POLICY, NULL, id), 6);
    CHECK(strcmp(id, "policy") == 0);
    CHECK_EQ(shoal__auth_docid(SHOAL__AUTH_REVOKE, DEV1, id), 7 + 64);
    CHECK(strncmp(id, "revoke:d104000000", 17) == 0);
    shoal__buf_free(&b);
}

/* ------------------------------------------------------ the write check */

static void
test_field_rights(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    tcert clerk, other;
    mkcert(&clerk, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&other, DEV1, "u1", "clerk", "store_id", vint(2), ALWAYS, 1, 0);
    shoal__doc *d = product(1);
    shoal__authz_out o;
    tch t;
    /* the clerk of store 1 counts stock */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "stock", vint(7));
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(o.op, -1);
    /* ...and so does a counter or unset on it, but not on the price */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_kind(&t, SHOAL__OP_UNSET, "stock");
    op_set(&t, "price", vint(1));
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(o.op, 1);
    CHECK(strstr(o.why, "\"price\"") && strstr(o.why, "clerk"));
    /* the clerk of store 2 may not touch store 1's stock */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "stock", vint(7));
    CHECK_EQ(judge(&t, &other, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(o.op, 0);
    /* a list field and a counter are field writes too */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_ins(&t, "stock", vint(1));
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_ADMIT);
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_kind(&t, SHOAL__OP_COUNT, "tags");
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_REJECT);
    /* a collection no role of the cert has a rule for */
    mkch(&t, DEV1, 1, HLC(200), "orders", "o1", 0);
    op_set(&t, "x", vint(1));
    CHECK_EQ(judge(&t, &clerk, p, NULL, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "no role") != NULL);
    /* nor is _auth written as data */
    mkch(&t, DEV1, 1, HLC(200), "_auth", "policy", 0);
    op_set(&t, "object", vint(1));
    CHECK_EQ(judge(&t, &clerk, p, NULL, &o), SHOAL__AUTHZ_REJECT);
    freecert(&clerk);
    freecert(&other);
    shoal__doc_free(d);
    shoal__policy_free(p);
}

static void
test_union_of_roles(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    tcert both, clerk;
    mkcert(&both, DEV1, "u1", "pricer,clerk", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&clerk, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    shoal__doc *d = product(1);
    shoal__authz_out o;
    tch t;
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "stock", vint(7));
    op_set(&t, "price", vint(9));
    CHECK_EQ(judge(&t, &both, p, d, &o), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_REJECT);
    /* role order in the certificate does not matter */
    tcert both2;
    mkcert(&both2, DEV1, "u1", "clerk,pricer", "store_id", vint(1), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &both2, p, d, &o), SHOAL__AUTHZ_ADMIT);
    /* a role the policy does not define adds nothing */
    tcert ghost;
    mkcert(&ghost, DEV1, "u1", "clerk,ghost", "store_id", vint(1), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &ghost, p, d, &o), SHOAL__AUTHZ_REJECT);
    freecert(&both);
    freecert(&both2);
    freecert(&clerk);
    freecert(&ghost);
    shoal__doc_free(d);
    shoal__policy_free(p);
}

static void
test_user_attributes(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    shoal__doc *d = product(1);
    shoal__authz_out o;
    tch t;
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "stock", vint(7));
    /* no store_id attribute: the role applies nowhere, even to a product
     * without a store (absent never equals a missing attribute) */
    tcert none;
    mkcert(&none, DEV1, "u1", "clerk", "region", vint(1), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &none, p, d, &o), SHOAL__AUTHZ_REJECT);
    shoal__doc *bare = shoal__doc_new();
    tch w;
    mkch(&w, DEV2, 1, HLC(100), "products", "p1", 0);
    op_set(&w, "stock", vint(1));
    apply(bare, &w);
    CHECK_EQ(judge(&t, &none, p, bare, &o), SHOAL__AUTHZ_REJECT);
    /* a string attribute does not equal the number */
    tcert s;
    mkcert(&s, DEV1, "u1", "clerk", "store_id", vstr("1"), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &s, p, d, &o), SHOAL__AUTHZ_REJECT);
    freecert(&none);
    freecert(&s);
    shoal__doc_free(bare);

    /* $user.id and CONTAINS over a list guard (hospital resident) */
    shoal__policy *h = compile(HOSPITAL, 1);
    REQUIRE(h);
    shoal__doc *chart = shoal__doc_new();
    mkch(&w, DEV2, 1, HLC(100), "charts", "c1", 0);
    op_set(&w, "ward", vint(7));
    op_ins(&w, "care_team", vstr("alice"));
    apply(chart, &w);
    tcert alice, bob;
    mkcert(&alice, DEV1, "alice", "resident", NULL, vint(0), ALWAYS, 1, 0);
    mkcert(&bob, DEV1, "bob", "resident", NULL, vint(0), ALWAYS, 1, 0);
    mkch(&t, DEV1, 1, HLC(200), "charts", "c1", 0);
    op_set(&t, "notes", vstr("ok"));
    /* notes is restricted (the admin may not read it): sealed */
    static const uint8_t commit[32] = { 1 };
    t.c.version = SHOAL__FORMAT_V2;
    t.ops[0].sealed = true;
    t.c.nseals = 1;
    t.c.seal_class[0] = 1;
    t.c.seal_commit = commit;
    CHECK_EQ(judge(&t, &alice, h, chart, &o), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(judge(&t, &bob, h, chart, &o), SHOAL__AUTHZ_REJECT);
    /* bob may not add himself to the care team (not his field) */
    mkch(&t, DEV1, 1, HLC(200), "charts", "c1", 0);
    op_ins(&t, "care_team", vstr("bob"));
    CHECK_EQ(judge(&t, &bob, h, chart, &o), SHOAL__AUTHZ_REJECT);
    freecert(&alice);
    freecert(&bob);
    shoal__doc_free(chart);
    shoal__doc_free(d);
    shoal__policy_free(h);
    shoal__policy_free(p);
}

/* Read filtering: d as the evaluator sees it (its view keeping at most
 * cap list items), parsed into v. */
typedef struct tview {
    shoal__buf b;
    shoal__qfield *f;
    size_t cap;
    shoal__qdoc q;
} tview;

static void
view_of(tview *v, const shoal__doc *d, const char *id, size_t cap)
{
    memset(v, 0, sizeof *v);
    shoal__buf_init(&v->b);
    CHECK_EQ(shoal__doc_encode_qview(d, cap, &v->b), SHOAL_OK);
    size_t n = 0;
    bool alive = false;
    CHECK_EQ(shoal__qview_parse(v->b.p, v->b.len, &v->f, &v->cap, &n, &alive), SHOAL_OK);
    v->q = (shoal__qdoc){ (const uint8_t *)id, strlen(id), v->f, n };
}

static void
view_free(tview *v)
{
    shoal__buf_free(&v->b);
    shoal__free(v->f);
}

static int
reads(const shoal__policy *p, const tcert *c, const char *coll, const tview *v)
{
    return shoal__authz_reads(p, &c->c, (const uint8_t *)coll, strlen(coll), &v->q);
}

/* A role reads a document when its rule for the collection reads whole
 * documents and its where holds there; the union over the roles; a rule
 * that hides fields reads nothing (no sealed fields yet); a missing
 * attribute applies nowhere; a where that needs a long list left out of a
 * capped view asks for the full one.  reads_all: every collection with a
 * TRUE rule that reads whole documents. */
static void
test_reads(void)
{
    shoal__policy *p = compile(RETAIL, 1), *h = compile(HOSPITAL, 1);
    REQUIRE(p && h);
    shoal__doc *d1 = product(1), *d2 = product(2);
    tview v1, v2;
    view_of(&v1, d1, "p1", SIZE_MAX);
    view_of(&v2, d2, "p1", SIZE_MAX);
    tcert clerk, noattr, aud, audclerk, audpricer, mgr;
    mkcert(&clerk, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&noattr, DEV1, "u1", "clerk", "region", vint(1), ALWAYS, 1, 0);
    mkcert(&aud, DEV1, "u1", "auditor", NULL, vint(0), ALWAYS, 1, 0);
    mkcert(&audclerk, DEV1, "u1", "auditor,clerk", "store_id", vint(2), ALWAYS, 1, 0);
    mkcert(&audpricer, DEV1, "u1", "auditor,pricer", NULL, vint(0), ALWAYS, 1, 0);
    mkcert(&mgr, DEV1, "u1", "manager", "store_id", vint(2), ALWAYS, 1, 0);
    CHECK_EQ(reads(p, &clerk, "products", &v1), 1);
    CHECK_EQ(reads(p, &clerk, "products", &v2), 0);
    CHECK_EQ(reads(p, &clerk, "other", &v1), 0);
    CHECK_EQ(reads(p, &noattr, "products", &v1), 0);
    /* the auditor reads every product (its cost_price travels sealed) */
    CHECK_EQ(reads(p, &aud, "products", &v1), 1);
    CHECK_EQ(reads(p, &audclerk, "products", &v1), 1);
    CHECK_EQ(reads(p, &audclerk, "products", &v2), 1);
    CHECK_EQ(reads(p, &audpricer, "products", &v1), 1);
    CHECK_EQ(reads(p, &mgr, "products", &v2), 1);
    CHECK(!shoal__authz_reads_all(p, &clerk.c));
    CHECK(!shoal__authz_reads_all(p, &aud.c));
    CHECK(shoal__authz_reads_all(p, &audpricer.c));

    /* $user.id over a list guard, and a list longer than the stored view */
    shoal__doc *chart = shoal__doc_new();
    tch w;
    mkch(&w, DEV2, 1, HLC(100), "charts", "c1", 0);
    op_set(&w, "ward", vint(7));
    op_ins(&w, "care_team", vstr("alice"));
    apply(chart, &w);
    tcert alice, bob, admin;
    mkcert(&alice, DEV1, "alice", "resident", NULL, vint(0), ALWAYS, 1, 0);
    mkcert(&bob, DEV1, "bob", "resident", NULL, vint(0), ALWAYS, 1, 0);
    mkcert(&admin, DEV1, "ann", "admin", NULL, vint(0), ALWAYS, 1, 0);
    tview vc;
    view_of(&vc, chart, "c1", SIZE_MAX);
    CHECK_EQ(reads(h, &alice, "charts", &vc), 1);
    CHECK_EQ(reads(h, &bob, "charts", &vc), 0);
    CHECK_EQ(reads(h, &admin, "charts", &vc), 1);
    CHECK(!shoal__authz_reads_all(h, &admin.c)); /* not every field: no full replica */
    view_free(&vc);
    for (int i = 0; i < SHOAL__Q_LIST_VIEW + 4; i++) {
        mkch(&w, DEV2, (uint64_t)i + 2, HLC(101 + i), "charts", "c1", 0);
        op_ins(&w, "care_team", vstr("x"));
        apply(chart, &w);
    }
    view_of(&vc, chart, "c1", SHOAL__Q_LIST_VIEW);
    CHECK_EQ(reads(h, &alice, "charts", &vc), SHOAL__Q_NEEDLIST);
    view_free(&vc);
    view_of(&vc, chart, "c1", SIZE_MAX);
    CHECK_EQ(reads(h, &alice, "charts", &vc), 1);
    view_free(&vc);

    tcert *all[] = { &clerk, &noattr, &aud, &audclerk, &audpricer, &mgr, &alice, &bob, &admin };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        freecert(all[i]);
    view_free(&v1);
    view_free(&v2);
    shoal__doc_free(chart);
    shoal__doc_free(d1);
    shoal__doc_free(d2);
    shoal__policy_free(p);
    shoal__policy_free(h);
}

/* ---------------------------------------------------------- read classes */

static uint8_t
class_of(const shoal__policy *p, const char *coll, const char *field)
{
    const shoal__pcoll *co = shoal__policy_coll(p, (const uint8_t *)coll, strlen(coll));
    return shoal__pcoll_class((const uint8_t *)field, strlen(field), (void *)(uintptr_t)co);
}

static bool
class_reader(const shoal__policy *p, const char *coll, uint8_t cls, const char *role)
{
    const shoal__pcoll *co = shoal__policy_coll(p, (const uint8_t *)coll, strlen(coll));
    const shoal__prole *ro = shoal__policy_role(p, (const uint8_t *)role, strlen(role));
    return co && ro && shoal__pcoll_class_reader(p, co, cls, ro);
}

static void
test_read_classes(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    CHECK_EQ(class_of(p, "products", "cost_price"), 1);
    CHECK_EQ(class_of(p, "products", "stock"), 0);
    CHECK_EQ(class_of(p, "products", "store_id"), 0);
    CHECK_EQ(class_of(p, "products", "anything"), 0);
    CHECK_EQ(class_of(p, "orders", "cost_price"), 0); /* undeclared: in clear */
    CHECK(class_reader(p, "products", 1, "clerk"));
    CHECK(!class_reader(p, "products", 1, "auditor"));
    CHECK(class_reader(p, "products", 0, "auditor"));
    shoal__policy_free(p);
    p = compile(HOSPITAL, 1);
    REQUIRE(p);
    CHECK_EQ(class_of(p, "charts", "diagnosis"), 1);
    CHECK_EQ(class_of(p, "charts", "vitals"), 1);
    CHECK_EQ(class_of(p, "charts", "name"), 0);
    CHECK(class_reader(p, "charts", 1, "resident"));
    CHECK(!class_reader(p, "charts", 1, "admin"));
    shoal__policy_free(p);
    /* Classes are numbered by their reader sets, roles in name order,
     * larger sets of early roles first: other fields {all, r1, r2} = 1,
     * s1 {all, r2} = 2, s2 {all} = 3; k is read by all. */
    p = compile(
        "{\"collections\": {\"c\": {\"guard\": [], \"queryable\": []}},"
        " \"roles\": {\"all\": {\"c\": {\"where\": \"TRUE\", \"read\": \"*\"}},"
        "  \"r1\": {\"c\": {\"where\": \"TRUE\", \"read\": {\"except\": [\"s1\", \"s2\"]}}},"
        "  \"r2\": {\"c\": {\"where\": \"TRUE\", \"read\": {\"except\": [\"s2\"]}}},"
        "  \"r3\": {\"c\": {\"where\": \"TRUE\", \"read\": [\"k\"]}},"
        "  \"w\": {\"c\": {\"where\": \"TRUE\", \"read\": [], \"write\": \"*\"}}}}",
        1);
    REQUIRE(p);
    CHECK_EQ(class_of(p, "c", "other"), 1);
    CHECK_EQ(class_of(p, "c", "s1"), 2);
    CHECK_EQ(class_of(p, "c", "s2"), 3);
    CHECK_EQ(class_of(p, "c", "k"), 0);
    CHECK(class_reader(p, "c", 2, "r2") && !class_reader(p, "c", 2, "r1"));
    CHECK(!class_reader(p, "c", 1, "r3") && !class_reader(p, "c", 1, "w"));
    CHECK(!class_reader(p, "c", 4, "all")); /* no such class */
    shoal__policy_free(p);
    /* At most 64 classes per collection: 65 roles each reading one field
     * of its own make 66 (each field, and every other field). */
    size_t cap = 20000, n = 0;
    char *j = malloc(cap);
    REQUIRE(j);
    n += (size_t)snprintf(j + n, cap - n,
                          "{\"collections\": {\"c\": {\"guard\": [], \"queryable\": []}},"
                          " \"roles\": {\"all\": {\"c\": {\"where\": \"TRUE\", \"read\": \"*\"}}");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(j + n, cap - n,
                              ", \"r%02d\": {\"c\": {\"where\": \"TRUE\", \"read\": [\"f%02d\"]}}",
                              i, i);
    snprintf(j + n, cap - n, "}}");
    char err[256];
    CHECK_EQ(compile_err(j, err, sizeof err), SHOAL_EINVAL);
    CHECK(strstr(err, "more than 64 read classes") != NULL);
    free(j);
}

/* The sealing rules are part of the write check. */
static void
test_sealing_rules(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    tcert mgr;
    mkcert(&mgr, DEV1, "u1", "manager", "store_id", vint(1), ALWAYS, 1, 0);
    shoal__doc *d = product(1);
    shoal__authz_out o;
    tch t;
    uint8_t commit[2 * 32];
    memset(commit, 0x33, sizeof commit);
    /* cost_price in clear: REJECT, naming the field and the policy */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    t.c.version = SHOAL__FORMAT_V2;
    op_set(&t, "stock", vint(2));
    op_set(&t, "cost_price", vint(5));
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(o.op, 1);
    CHECK(strstr(o.why, "\"cost_price\" is restricted") != NULL);
    /* sealed, with its class: ADMIT */
    t.ops[1].sealed = true;
    t.c.nseals = 1;
    t.c.seal_class[0] = 1;
    t.c.seal_commit = commit;
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_ADMIT);
    /* an undisclosed sealed value judges the same: the check needs no value */
    t.ops[1].value.type = SHOAL_T_REDACTED;
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_ADMIT);
    /* a field in clear sealed */
    t.ops[0].sealed = true;
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(o.op, 0);
    CHECK(strstr(o.why, "\"stock\" is in clear") != NULL);
    t.ops[0].sealed = false;
    /* seals that do not list exactly the classes used */
    t.c.seal_class[0] = 2;
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "seals") != NULL);
    t.c.nseals = 2;
    t.c.seal_class[0] = 1;
    t.c.seal_class[1] = 2;
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_REJECT);
    t.c.nseals = 0;
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_REJECT);
    /* a list delete carries no value: in clear on a restricted field */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_kind(&t, SHOAL__OP_DEL, "cost_price");
    t.ops[0].ref = (shoal__ref){ false, HLC(100), 0, 0 };
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_ADMIT);
    /* an `_auth` change is never sealed */
    freecert(&mgr);
    shoal__doc_free(d);
    shoal__policy_free(p);
}

static void
test_create_delete(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    tcert mgr, clerk;
    mkcert(&mgr, DEV1, "u1", "manager", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&clerk, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    shoal__authz_out o;
    tch t;
    /* create: judged on the state the change leaves */
    mkch(&t, DEV1, 1, HLC(200), "products", "p9", 0);
    op_set(&t, "store_id", vint(1));
    op_set(&t, "stock", vint(1));
    CHECK_EQ(judge(&t, &mgr, p, NULL, &o), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(judge(&t, &clerk, p, NULL, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "create") != NULL);
    mkch(&t, DEV1, 1, HLC(200), "products", "p9", 0);
    op_set(&t, "store_id", vint(2)); /* into another store */
    CHECK_EQ(judge(&t, &mgr, p, NULL, &o), SHOAL__AUTHZ_REJECT);
    /* a document untouched by the deps is a create even if given empty */
    shoal__doc *empty = shoal__doc_new();
    mkch(&t, DEV1, 1, HLC(200), "products", "p9", 0);
    op_set(&t, "store_id", vint(1));
    CHECK_EQ(judge(&t, &clerk, p, empty, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(judge(&t, &mgr, p, empty, &o), SHOAL__AUTHZ_ADMIT);
    shoal__doc_free(empty);

    /* delete */
    shoal__doc *d = product(1);
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_kind(&t, SHOAL__OP_DELDOC, NULL);
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(o.op, 0);
    CHECK(strstr(o.why, "delete") != NULL);
    /* a manager of another store may not delete it */
    tcert mgr2;
    mkcert(&mgr2, DEV1, "u1", "manager", "store_id", vint(2), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &mgr2, p, d, &o), SHOAL__AUTHZ_REJECT);

    /* a new epoch over a live document is a delete and a create */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 1);
    op_set(&t, "store_id", vint(1));
    op_set(&t, "stock", vint(0));
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_ADMIT);
    tcert creator;
    mkcert(&creator, DEV1, "u1", "creator", "store_id", vint(1), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &creator, p, d, &o), SHOAL__AUTHZ_REJECT); /* may create, not delete */
    CHECK(strstr(o.why, "new epoch") != NULL);
    mkch(&t, DEV1, 1, HLC(200), "products", "p8", 0);
    op_set(&t, "store_id", vint(1));
    CHECK_EQ(judge(&t, &creator, p, NULL, &o), SHOAL__AUTHZ_ADMIT);
    freecert(&creator);

    /* re-creating a deleted document (next epoch) needs create */
    tch del;
    mkch(&del, DEV2, 2, HLC(150), "products", "p1", 0);
    op_kind(&del, SHOAL__OP_DELDOC, NULL);
    apply(d, &del);
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 1);
    op_set(&t, "store_id", vint(1));
    op_set(&t, "stock", vint(5));
    CHECK_EQ(judge(&t, &clerk, p, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "create") != NULL);
    CHECK_EQ(judge(&t, &mgr, p, d, &o), SHOAL__AUTHZ_ADMIT);
    freecert(&mgr);
    freecert(&mgr2);
    freecert(&clerk);
    shoal__doc_free(d);
    shoal__policy_free(p);
}

/* A write to a guard field is allowed before and after. */
static void
test_guard_moves(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    tcert mgr, reg;
    mkcert(&mgr, DEV1, "u1", "manager", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&reg, DEV1, "u1", "regional", NULL, vint(0), ALWAYS, 1, 0);
    shoal__doc *d1 = product(1), *d3 = product(3);
    shoal__authz_out o;
    tch t;
    /* the manager of store 1 may not move a product out of its reach */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "store_id", vint(2));
    CHECK_EQ(judge(&t, &mgr, p, d1, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "before and after") != NULL);
    /* ...nor unset its guard */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_kind(&t, SHOAL__OP_UNSET, "store_id");
    CHECK_EQ(judge(&t, &mgr, p, d1, &o), SHOAL__AUTHZ_REJECT);
    /* but it may write the guard to the same value */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "store_id", vint(1));
    CHECK_EQ(judge(&t, &mgr, p, d1, &o), SHOAL__AUTHZ_ADMIT);
    /* the regional role moves between stores 1 and 2 */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "store_id", vint(2));
    CHECK_EQ(judge(&t, &reg, p, d1, &o), SHOAL__AUTHZ_ADMIT);
    /* but not into store 3 */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "store_id", vint(3));
    CHECK_EQ(judge(&t, &reg, p, d1, &o), SHOAL__AUTHZ_REJECT);
    /* nor out of store 3 */
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "store_id", vint(1));
    CHECK_EQ(judge(&t, &reg, p, d3, &o), SHOAL__AUTHZ_REJECT);
    /* a forged change stamped before the value it overwrites does not
     * win the register, so the document does not move: G+ is what the
     * merge makes of it, not what the op says */
    mkch(&t, DEV1, 1, HLC(50), "products", "p1", 0);
    op_set(&t, "store_id", vint(3));
    CHECK_EQ(judge(&t, &reg, p, d1, &o), SHOAL__AUTHZ_ADMIT);
    freecert(&mgr);
    freecert(&reg);
    shoal__doc_free(d1);
    shoal__doc_free(d3);
    shoal__policy_free(p);
}

static void
test_cert_validity(void)
{
    shoal__policy *p1 = compile(RETAIL, 1), *p3 = compile(RETAIL, 3);
    REQUIRE(p1 && p3);
    shoal__doc *d = product(1);
    shoal__authz_out o;
    tch t;
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "stock", vint(7));
    tcert c;
    /* validity bounds are inclusive, on the change's own HLC */
    mkcert(&c, DEV1, "u1", "clerk", "store_id", vint(1), HLC(200), HLC(300), 1, 0);
    CHECK_EQ(judge(&t, &c, p1, d, &o), SHOAL__AUTHZ_ADMIT);
    freecert(&c);
    mkcert(&c, DEV1, "u1", "clerk", "store_id", vint(1), HLC(100), HLC(200), 1, 0);
    CHECK_EQ(judge(&t, &c, p1, d, &o), SHOAL__AUTHZ_ADMIT);
    freecert(&c);
    mkcert(&c, DEV1, "u1", "clerk", "store_id", vint(1), HLC(200) + 1, HLC(300), 1, 0);
    CHECK_EQ(judge(&t, &c, p1, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "not yet valid") != NULL);
    freecert(&c);
    mkcert(&c, DEV1, "u1", "clerk", "store_id", vint(1), HLC(100), HLC(200) - 1, 1, 0);
    CHECK_EQ(judge(&t, &c, p1, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "expired") != NULL);
    freecert(&c);
    /* policy floor: a change naming an older policy than the cert's floor */
    mkcert(&c, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 3);
    CHECK_EQ(judge(&t, &c, p1, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "floor") != NULL);
    CHECK_EQ(judge(&t, &c, p3, d, &o), SHOAL__AUTHZ_ADMIT);
    freecert(&c);
    /* another key's certificate authorises nothing */
    mkcert(&c, DEV2, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    CHECK_EQ(judge(&t, &c, p1, d, &o), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(o.why, "another key") != NULL);
    freecert(&c);
    /* per-document monotonicity */
    mkcert(&c, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 5, 0);
    shoal__authz_in in;
    memset(&in, 0, sizeof in);
    in.c = &t.c;
    in.cert = &c.c;
    in.policy = p3;
    in.pre = d;
    in.prior_serial = 5;
    in.prior_version = 3;
    CHECK_EQ(shoal__authz_check(&in, &o), SHOAL_OK);
    CHECK_EQ(o.verdict, SHOAL__AUTHZ_ADMIT);
    in.prior_serial = 6;
    CHECK_EQ(shoal__authz_check(&in, &o), SHOAL_OK);
    CHECK_EQ(o.verdict, SHOAL__AUTHZ_REJECT);
    in.prior_serial = 5;
    in.prior_version = 4;
    CHECK_EQ(shoal__authz_check(&in, &o), SHOAL_OK);
    CHECK_EQ(o.verdict, SHOAL__AUTHZ_REJECT);
    /* what is not held yet makes the change wait */
    in.prior_version = 0;
    in.cert = NULL;
    CHECK_EQ(shoal__authz_check(&in, &o), SHOAL_OK);
    CHECK_EQ(o.verdict, SHOAL__AUTHZ_PEND);
    in.cert = &c.c;
    in.policy = NULL;
    CHECK_EQ(shoal__authz_check(&in, &o), SHOAL_OK);
    CHECK_EQ(o.verdict, SHOAL__AUTHZ_PEND);
    freecert(&c);
    shoal__doc_free(d);
    shoal__policy_free(p1);
    shoal__policy_free(p3);
}

/* The same inputs give the same verdict whatever was checked before: the
 * check keeps no state and does not change the policy it reads. */
static void
test_check_is_pure(void)
{
    shoal__policy *p = compile(RETAIL, 1);
    REQUIRE(p);
    size_t len = p->len;
    uint8_t *copy = malloc(len);
    REQUIRE(copy);
    memcpy(copy, p->bytes, len);
    tcert c1, c2;
    mkcert(&c1, DEV1, "u1", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&c2, DEV1, "u2", "clerk", "store_id", vint(2), ALWAYS, 1, 0);
    shoal__doc *d = product(1);
    tch t;
    mkch(&t, DEV1, 1, HLC(200), "products", "p1", 0);
    op_set(&t, "stock", vint(7));
    shoal__authz_out o;
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(judge(&t, i % 2 ? &c1 : &c2, p, d, &o),
                 i % 2 ? SHOAL__AUTHZ_ADMIT : SHOAL__AUTHZ_REJECT);
    }
    CHECK(memcmp(copy, p->bytes, len) == 0);
    free(copy);
    freecert(&c1);
    freecert(&c2);
    shoal__doc_free(d);
    shoal__policy_free(p);
}

/* ------------------------------------------------------------- _auth */

typedef struct tobj {
    shoal__buf b;
    tch t;
    char docid[SHOAL__AUTH_DOCID_MAX];
} tobj;

/* An _auth change by author carrying the object in o->b. */
static void
auth_change(tobj *o, const uint8_t author[32], int kind, const uint8_t key[32])
{
    shoal__auth_docid(kind, key, o->docid);
    mkch(&o->t, author, 1, HLC(100), "_auth", o->docid, 0);
    op_set(&o->t, "object", vbin(o->b.p, o->b.len));
}

static void
grant_obj(tobj *o, shoal__grant *g, const uint8_t author[32], const uint8_t key[32], uint32_t caps,
          const char *scope, uint64_t life)
{
    memset(g, 0, sizeof *g);
    memcpy(g->key, key, 32);
    memcpy(g->issuer, author, 32);
    g->caps = caps;
    g->scope = (shoal__name){ (const uint8_t *)scope, strlen(scope) };
    g->max_life_ms = life;
    shoal__buf_init(&o->b);
    CHECK_EQ(shoal__grant_encode(g, &o->b), SHOAL_OK);
    auth_change(o, author, SHOAL__AUTH_ADMIN, key);
}

static void
cert_obj(tobj *o, const uint8_t author[32], const uint8_t subject[32], const char *roles,
         int64_t store, uint64_t nb, uint64_t na)
{
    tcert c;
    mkcert(&c, subject, "u", roles, "store_id", vint(store), nb, na, 1, 0);
    shoal__buf_init(&o->b);
    shoal__buf_append(&o->b, c.bytes.p, c.bytes.len);
    freecert(&c);
    auth_change(o, author, SHOAL__AUTH_CERT, subject);
}

static int
judge_auth(const tobj *o, const shoal__grant *const *chain, size_t n, const shoal__cert *target,
           shoal__authz_out *out)
{
    shoal__authz_auth_in in;
    memset(&in, 0, sizeof in);
    in.c = &o->t.c;
    in.root = ROOT;
    in.chain = chain;
    in.nchain = n;
    in.target_cert = target;
    memset(out, 0, sizeof *out);
    CHECK_EQ(shoal__authz_check_auth(&in, out), SHOAL_OK);
    if (out->verdict != SHOAL__AUTHZ_ADMIT && getenv("SHOAL_AUTHZ_VERBOSE"))
        fprintf(stderr, "  auth verdict %d: %s\n", out->verdict, out->why);
    return out->verdict;
}

static void
test_auth_policy(void)
{
    shoal__authz_out v;
    shoal__grant ga, gb;
    tobj oa, ob, op;
    grant_obj(&oa, &ga, ROOT, ADM_A, SHOAL__CAP_POLICY, "TRUE", 0);
    grant_obj(&ob, &gb, ROOT, ADM_B, SHOAL__CAP_ISSUE, "TRUE", 0);
    shoal__buf_init(&op.b);
    char err[200];
    CHECK_EQ(shoal__policy_from_json(RETAIL, strlen(RETAIL), 1, NULL, &op.b, err, sizeof err),
             SHOAL_OK);
    const shoal__grant *ca[] = { &ga }, *cb[] = { &gb };
    auth_change(&op, ROOT, SHOAL__AUTH_POLICY, NULL);
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_ADMIT);
    auth_change(&op, ADM_A, SHOAL__AUTH_POLICY, NULL);
    CHECK_EQ(judge_auth(&op, ca, 1, NULL, &v), SHOAL__AUTHZ_ADMIT);
    auth_change(&op, ADM_B, SHOAL__AUTH_POLICY, NULL);
    CHECK_EQ(judge_auth(&op, cb, 1, NULL, &v), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(v.why, "may not publish") != NULL);
    /* a key with no grant held: wait for it */
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_PEND);
    /* the root names no grant */
    auth_change(&op, ROOT, SHOAL__AUTH_POLICY, NULL);
    CHECK_EQ(judge_auth(&op, ca, 1, NULL, &v), SHOAL__AUTHZ_REJECT);
    /* a policy in another document, or in a language not known here */
    memcpy(op.docid, "policx", 6);
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    memcpy(op.docid, "policy", 6);
    op.b.p[2] = 2; /* [1, lang...]: byte 0 is the array header, 1 the kind */
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_PEND);
    op.b.p[2] = 1;
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_ADMIT);
    /* shapes an _auth change may not have */
    op.t.c.epoch = 1;
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    op.t.c.epoch = 0;
    op_set(&op.t, "extra", vint(1));
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    op.t.c.nops = 1;
    op.t.ops[0].value = vstr("x");
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    op.t.ops[0].value = vbin(op.b.p, op.b.len);
    op.t.ops[0].field = (const uint8_t *)"objekt";
    CHECK_EQ(judge_auth(&op, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    shoal__buf_free(&oa.b);
    shoal__buf_free(&ob.b);
    shoal__buf_free(&op.b);
}

static void
test_auth_certs(void)
{
    shoal__authz_out v;
    shoal__grant ga, gb;
    tobj oa, ob, oc;
    /* root -> A (issue, delegate; store 12, 30 days) -> B (issue; clerks) */
    grant_obj(&oa, &ga, ROOT, ADM_A, SHOAL__CAP_ISSUE | SHOAL__CAP_DELEGATE, "store_id == 12",
              30ull * 86400000);
    grant_obj(&ob, &gb, ADM_A, ADM_B, SHOAL__CAP_ISSUE, "role == \"clerk\"", 0);
    const shoal__grant *ca[] = { &ga }, *cba[] = { &gb, &ga };
    CHECK_EQ(judge_auth(&oa, NULL, 0, NULL, &v), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(judge_auth(&ob, ca, 1, NULL, &v), SHOAL__AUTHZ_ADMIT);

    /* the root issues anything, except to itself */
    cert_obj(&oc, ROOT, DEV1, "manager", 99, ALWAYS);
    CHECK_EQ(judge_auth(&oc, NULL, 0, NULL, &v), SHOAL__AUTHZ_ADMIT);
    shoal__buf_free(&oc.b);
    cert_obj(&oc, ROOT, ROOT, "manager", 99, ALWAYS);
    CHECK_EQ(judge_auth(&oc, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(v.why, "certify itself") != NULL);
    shoal__buf_free(&oc.b);
    /* A: store 12 only, at most 30 days */
    cert_obj(&oc, ADM_A, DEV1, "manager", 12, HLC(0), HLC(86400000));
    CHECK_EQ(judge_auth(&oc, ca, 1, NULL, &v), SHOAL__AUTHZ_ADMIT);
    shoal__buf_free(&oc.b);
    cert_obj(&oc, ADM_A, DEV1, "manager", 13, HLC(0), HLC(86400000));
    CHECK_EQ(judge_auth(&oc, ca, 1, NULL, &v), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(v.why, "scope") != NULL);
    shoal__buf_free(&oc.b);
    cert_obj(&oc, ADM_A, DEV1, "manager", 12, HLC(0), HLC(31ull * 86400000));
    CHECK_EQ(judge_auth(&oc, ca, 1, NULL, &v), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(v.why, "longer") != NULL);
    shoal__buf_free(&oc.b);
    /* a self-issued certificate authorises nothing */
    cert_obj(&oc, ADM_A, ADM_A, "manager", 12, HLC(0), HLC(86400000));
    CHECK_EQ(judge_auth(&oc, ca, 1, NULL, &v), SHOAL__AUTHZ_REJECT);
    shoal__buf_free(&oc.b);
    /* B: clerks, within A's scope and life too (attenuation) */
    cert_obj(&oc, ADM_B, DEV1, "clerk", 12, HLC(0), HLC(86400000));
    CHECK_EQ(judge_auth(&oc, cba, 2, NULL, &v), SHOAL__AUTHZ_ADMIT);
    /* ... in the document of its subject only */
    memcpy(oc.docid + 5, "00", 2);
    CHECK_EQ(judge_auth(&oc, cba, 2, NULL, &v), SHOAL__AUTHZ_REJECT);
    shoal__buf_free(&oc.b);
    cert_obj(&oc, ADM_B, DEV1, "clerk", 13, HLC(0), HLC(86400000));
    CHECK_EQ(judge_auth(&oc, cba, 2, NULL, &v), SHOAL__AUTHZ_REJECT);
    shoal__buf_free(&oc.b);
    cert_obj(&oc, ADM_B, DEV1, "clerk,manager", 12, HLC(0), HLC(86400000));
    CHECK_EQ(judge_auth(&oc, cba, 2, NULL, &v), SHOAL__AUTHZ_REJECT); /* every role in scope */
    shoal__buf_free(&oc.b);
    cert_obj(&oc, ADM_B, DEV1, "clerk", 12, HLC(0), HLC(60ull * 86400000));
    CHECK_EQ(judge_auth(&oc, cba, 2, NULL, &v), SHOAL__AUTHZ_REJECT); /* A's life bound */
    shoal__buf_free(&oc.b);
    /* chains that do not hold together */
    cert_obj(&oc, ADM_B, DEV1, "clerk", 12, HLC(0), HLC(86400000));
    const shoal__grant *only_b[] = { &gb }, *wrong[] = { &ga, &gb };
    CHECK_EQ(judge_auth(&oc, only_b, 1, NULL, &v), SHOAL__AUTHZ_REJECT); /* not to the root */
    CHECK_EQ(judge_auth(&oc, wrong, 2, NULL, &v), SHOAL__AUTHZ_REJECT);  /* another key's */
    shoal__grant ga_nodel = ga;
    ga_nodel.caps = SHOAL__CAP_ISSUE;
    const shoal__grant *nodel[] = { &gb, &ga_nodel };
    CHECK_EQ(judge_auth(&oc, nodel, 2, NULL, &v), SHOAL__AUTHZ_REJECT); /* A could not delegate */
    shoal__buf_free(&oc.b);
    /* B holds no delegate: it grants nothing; A may not grant beyond its caps */
    tobj od;
    shoal__grant gd;
    grant_obj(&od, &gd, ADM_B, DEV2, SHOAL__CAP_ISSUE, "TRUE", 0);
    CHECK_EQ(judge_auth(&od, cba, 2, NULL, &v), SHOAL__AUTHZ_REJECT);
    shoal__buf_free(&od.b);
    grant_obj(&od, &gd, ADM_A, DEV2, SHOAL__CAP_ISSUE | SHOAL__CAP_POLICY, "TRUE", 0);
    CHECK_EQ(judge_auth(&od, ca, 1, NULL, &v), SHOAL__AUTHZ_REJECT);
    CHECK(strstr(v.why, "does not hold") != NULL);
    shoal__buf_free(&od.b);
    grant_obj(&od, &gd, ADM_A, ADM_A, SHOAL__CAP_ISSUE, "TRUE", 0);
    CHECK_EQ(judge_auth(&od, ca, 1, NULL, &v), SHOAL__AUTHZ_REJECT); /* itself */
    shoal__buf_free(&od.b);
    shoal__buf_free(&oa.b);
    shoal__buf_free(&ob.b);
}

static void
test_auth_revoke(void)
{
    shoal__authz_out v;
    shoal__grant ga, gn;
    tobj oa, on, orv;
    grant_obj(&oa, &ga, ROOT, ADM_A, SHOAL__CAP_REVOKE, "store_id == 12", 0);
    grant_obj(&on, &gn, ROOT, ADM_B, SHOAL__CAP_ISSUE, "TRUE", 0);
    const shoal__grant *ca[] = { &ga }, *cn[] = { &gn };
    tcert in12, in13;
    mkcert(&in12, DEV1, "u", "clerk", "store_id", vint(12), ALWAYS, 1, 0);
    mkcert(&in13, DEV1, "u", "clerk", "store_id", vint(13), ALWAYS, 1, 0);
    shoal__revoke r;
    memset(&r, 0, sizeof r);
    memcpy(r.target, DEV1, 32);
    r.cut = 9;
    shoal__buf_init(&orv.b);
    CHECK_EQ(shoal__revoke_encode(&r, &orv.b), SHOAL_OK);
    auth_change(&orv, ROOT, SHOAL__AUTH_REVOKE, DEV1);
    CHECK_EQ(judge_auth(&orv, NULL, 0, NULL, &v), SHOAL__AUTHZ_ADMIT); /* the root */
    auth_change(&orv, ADM_A, SHOAL__AUTH_REVOKE, DEV1);
    CHECK_EQ(judge_auth(&orv, ca, 1, &in12.c, &v), SHOAL__AUTHZ_REJECT); /* names no cert */
    r.has_cert = true;
    memset(r.cert, 7, 32);
    orv.b.len = 0;
    CHECK_EQ(shoal__revoke_encode(&r, &orv.b), SHOAL_OK);
    auth_change(&orv, ADM_A, SHOAL__AUTH_REVOKE, DEV1);
    CHECK_EQ(judge_auth(&orv, ca, 1, &in12.c, &v), SHOAL__AUTHZ_ADMIT);
    CHECK_EQ(judge_auth(&orv, ca, 1, NULL, &v), SHOAL__AUTHZ_PEND);
    CHECK_EQ(judge_auth(&orv, ca, 1, &in13.c, &v), SHOAL__AUTHZ_REJECT); /* outside scope */
    auth_change(&orv, ADM_B, SHOAL__AUTH_REVOKE, DEV1);
    CHECK_EQ(judge_auth(&orv, cn, 1, &in12.c, &v), SHOAL__AUTHZ_REJECT); /* no revoke cap */
    tcert other;
    mkcert(&other, DEV2, "u", "clerk", "store_id", vint(12), ALWAYS, 1, 0);
    auth_change(&orv, ADM_A, SHOAL__AUTH_REVOKE, DEV1);
    CHECK_EQ(judge_auth(&orv, ca, 1, &other.c, &v), SHOAL__AUTHZ_REJECT); /* another's cert */
    freecert(&other);
    freecert(&in12);
    freecert(&in13);
    shoal__buf_free(&orv.b);
    shoal__buf_free(&oa.b);
    shoal__buf_free(&on.b);
}

/* Two envelopes signed by one key for one seq, and what proves it. */
static void
signed_env(shoal__buf *out, const uint8_t pk[32], const uint8_t sk[64], uint64_t seq, int64_t v)
{
    tch t;
    mkch(&t, pk, seq, HLC(300 + seq), "products", "p1", 0);
    op_set(&t, "stock", vint(v));
    shoal__buf body;
    shoal__buf_init(&body);
    CHECK_EQ(shoal__change_encode(&t.c, &body), SHOAL_OK);
    shoal__buf_init(out);
    CHECK_EQ(shoal__envelope_seal(body.p, body.len, pk, sk, out), SHOAL_OK);
    shoal__buf_free(&body);
}

static void
test_auth_equivocation(void)
{
    uint8_t pk[32], sk[64], seed[32];
    memset(seed, 0x33, sizeof seed);
    REQUIRE(crypto_sign_seed_keypair(pk, sk, seed) == 0);
    shoal__buf e1, e2, e3;
    signed_env(&e1, pk, sk, 5, 1);
    signed_env(&e2, pk, sk, 5, 2);
    signed_env(&e3, pk, sk, 6, 3);
    tobj o;
    shoal__buf_init(&o.b);
    /* a proof: two versions of one seq, in id order whatever the order given */
    CHECK_EQ(shoal__equiv_encode(e2.p, e2.len, e1.p, e1.len, &o.b), SHOAL_OK);
    shoal__buf again;
    shoal__buf_init(&again);
    CHECK_EQ(shoal__equiv_encode(e1.p, e1.len, e2.p, e2.len, &again), SHOAL_OK);
    CHECK(again.len == o.b.len && memcmp(again.p, o.b.p, o.b.len) == 0);
    shoal__equiv eq;
    CHECK_EQ(shoal__equiv_decode(o.b.p, o.b.len, &eq), SHOAL_OK);
    CHECK(memcmp(eq.target, pk, 32) == 0);
    CHECK_EQ(eq.seq, 5);
    uint8_t i0[32], i1[32];
    shoal__change_id(eq.env[0], eq.len[0], i0);
    shoal__change_id(eq.env[1], eq.len[1], i1);
    CHECK(memcmp(i0, i1, 32) < 0);
    CHECK_EQ(shoal__auth_kind(o.b.p, o.b.len), SHOAL__AUTH_EQUIV);
    /* not proofs: one change twice, two seqs */
    again.len = 0;
    CHECK_EQ(shoal__equiv_encode(e1.p, e1.len, e1.p, e1.len, &again), SHOAL_EINVAL);
    CHECK_EQ(shoal__equiv_encode(e1.p, e1.len, e3.p, e3.len, &again), SHOAL_EINVAL);
    CHECK_EQ(again.len, 0);
    /* a signature altered, a seq altered: the proof does not verify */
    again.len = 0;
    shoal__buf_append(&again, o.b.p, o.b.len);
    again.p[again.len - 1] ^= 1;
    CHECK_EQ(shoal__equiv_decode(again.p, again.len, &eq), SHOAL_EPROTO);
    again.p[again.len - 1] ^= 1;
    CHECK_EQ(shoal__equiv_decode(again.p, again.len, &eq), SHOAL_OK);
    again.p[2 + 34] = 6; /* [5, bin32 target, 5, ...]: the seq */
    CHECK_EQ(shoal__equiv_decode(again.p, again.len, &eq), SHOAL_EPROTO);
    CHECK(shoal__equiv_decode(again.p, again.len - 1, &eq) != SHOAL_OK);

    /* who may publish it: the root, an admin with any capability, a
     * device naming its own certificate valid at the change's time */
    shoal__authz_out v;
    auth_change(&o, ROOT, SHOAL__AUTH_EQUIV, pk);
    CHECK_EQ(judge_auth(&o, NULL, 0, NULL, &v), SHOAL__AUTHZ_ADMIT);
    uint8_t target[32];
    uint64_t cut = 0;
    CHECK(shoal__change_cut(&o.t.c, target, &cut));
    CHECK(memcmp(target, pk, 32) == 0);
    CHECK_EQ(cut, 4);
    CHECK_EQ(shoal__auth_cut_target(o.b.p, o.b.len, target), SHOAL_OK);
    tobj og;
    shoal__grant g;
    grant_obj(&og, &g, ROOT, ADM_A, SHOAL__CAP_POLICY, "TRUE", 0);
    const shoal__grant *ca[] = { &g };
    auth_change(&o, ADM_A, SHOAL__AUTH_EQUIV, pk);
    CHECK_EQ(judge_auth(&o, ca, 1, NULL, &v), SHOAL__AUTHZ_ADMIT);
    tcert dc, late, other;
    mkcert(&dc, DEV1, "u", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    mkcert(&late, DEV1, "u", "clerk", "store_id", vint(1), HLC(500), UINT64_MAX, 2, 0);
    mkcert(&other, DEV2, "u", "clerk", "store_id", vint(1), ALWAYS, 1, 0);
    auth_change(&o, DEV1, SHOAL__AUTH_EQUIV, pk);
    shoal__authz_auth_in in;
    memset(&in, 0, sizeof in);
    in.c = &o.t.c;
    in.root = ROOT;
    CHECK_EQ(shoal__authz_check_auth(&in, &v), SHOAL_OK);
    CHECK_EQ(v.verdict, SHOAL__AUTHZ_PEND); /* names nothing held */
    in.signer_cert = &dc.c;
    CHECK_EQ(shoal__authz_check_auth(&in, &v), SHOAL_OK);
    CHECK_EQ(v.verdict, SHOAL__AUTHZ_ADMIT);
    in.signer_cert = &late.c; /* not valid yet at HLC(100) */
    CHECK_EQ(shoal__authz_check_auth(&in, &v), SHOAL_OK);
    CHECK_EQ(v.verdict, SHOAL__AUTHZ_REJECT);
    in.signer_cert = &other.c; /* another key's */
    CHECK_EQ(shoal__authz_check_auth(&in, &v), SHOAL_OK);
    CHECK_EQ(v.verdict, SHOAL__AUTHZ_REJECT);
    /* in the wrong document */
    auth_change(&o, DEV1, SHOAL__AUTH_EQUIV, DEV2);
    in.signer_cert = &dc.c;
    CHECK_EQ(shoal__authz_check_auth(&in, &v), SHOAL_OK);
    CHECK_EQ(v.verdict, SHOAL__AUTHZ_REJECT);
    /* a device publishes nothing else: a revocation named by its cert */
    tobj orv;
    shoal__revoke r;
    memset(&r, 0, sizeof r);
    memcpy(r.target, DEV2, 32);
    shoal__buf_init(&orv.b);
    CHECK_EQ(shoal__revoke_encode(&r, &orv.b), SHOAL_OK);
    auth_change(&orv, DEV1, SHOAL__AUTH_REVOKE, DEV2);
    in.c = &orv.t.c;
    CHECK_EQ(shoal__authz_check_auth(&in, &v), SHOAL_OK);
    CHECK_EQ(v.verdict, SHOAL__AUTHZ_REJECT);
    /* a proof that does not verify is refused whoever signs it */
    shoal__buf_free(&o.b);
    shoal__buf_init(&o.b);
    shoal__buf_append(&o.b, again.p, again.len);
    auth_change(&o, ROOT, SHOAL__AUTH_EQUIV, pk);
    CHECK_EQ(judge_auth(&o, NULL, 0, NULL, &v), SHOAL__AUTHZ_REJECT);
    CHECK(!shoal__change_cut(&o.t.c, target, &cut));

    /* document names */
    char id[SHOAL__AUTH_DOCID_MAX];
    uint8_t key[32];
    CHECK_EQ(shoal__auth_docid(SHOAL__AUTH_EQUIV, pk, id), 13 + 64);
    CHECK_EQ(shoal__auth_id_kind((const uint8_t *)id, strlen(id), key), SHOAL__AUTH_EQUIV);
    CHECK(memcmp(key, pk, 32) == 0);
    CHECK_EQ(shoal__auth_id_kind((const uint8_t *)"policy", 6, key), SHOAL__AUTH_POLICY);
    id[20] = 'G';
    CHECK_EQ(shoal__auth_id_kind((const uint8_t *)id, strlen(id), key), 0);
    CHECK_EQ(shoal__auth_id_kind((const uint8_t *)id, 13 + 63, key), 0);

    freecert(&dc);
    freecert(&late);
    freecert(&other);
    shoal__buf_free(&orv.b);
    shoal__buf_free(&og.b);
    shoal__buf_free(&o.b);
    shoal__buf_free(&again);
    shoal__buf_free(&e1);
    shoal__buf_free(&e2);
    shoal__buf_free(&e3);
}

int
main(void)
{
    RUN(test_policy_compiles);
    RUN(test_policy_canonical);
    RUN(test_policy_errors);
    RUN(test_query_user_refs);
    RUN(test_cert_codec);
    RUN(test_grant_revoke_codec);
    RUN(test_field_rights);
    RUN(test_union_of_roles);
    RUN(test_user_attributes);
    RUN(test_reads);
    RUN(test_read_classes);
    RUN(test_sealing_rules);
    RUN(test_create_delete);
    RUN(test_guard_moves);
    RUN(test_cert_validity);
    RUN(test_check_is_pure);
    RUN(test_auth_policy);
    RUN(test_auth_certs);
    RUN(test_auth_revoke);
    RUN(test_auth_equivocation);
    return check_summary();
}
