/*
 * test/vectors/gen.c - writes the golden vectors of test/vectors/.
 *
 *   vectors_gen DIR
 *
 * Everything comes from fixed inputs: three Ed25519 identities made from
 * fixed seed bytes, fixed HLC values, fixed document contents.  Nothing
 * reads a clock or a random source, and Ed25519 signatures are
 * deterministic, so the output is the same bytes on every run and every
 * machine.  The files are checked in; the "vectors-gen" test runs this
 * program into a temporary directory and compares byte for byte, so a
 * change to any format shows up as a change to the checked-in files.
 *
 * Output (all binary files are the exact bytes; index.txt lists them):
 *   env-NN.bin      envelope of change NN (version | author | len | body | sig)
 *   body-NN.bin     its body (MessagePack), the bytes the envelope carries
 *   group-NN-G.bin  sealed group G of change NN (its disclosure)
 *   bundle.bin      every change in order, as one bundle (version 2: the
 *                   groups follow their envelopes)
 *   state-C-D.bin   full-state encoding of document (C, D) after the bundle
 *   visible-C-D.bin visible-state encoding of the same document
 *   index.txt       one line per vector (format at the top of the file)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "crdt.h"

enum {
    NKEYS = 3,
    MAXCH = 32,
    MAXOPS = 40
};

#define BASE_MS 1700000000000ull

typedef struct ident {
    char name;
    uint8_t seed[32];
    uint8_t pk[32];
    uint8_t sk[64];
    uint64_t seq;
} ident;

typedef struct docref {
    const char *coll;
    const char *doc;
    uint8_t heads[4][32];
    size_t nheads;
    uint64_t epoch;
    shoal__doc *d;
    shoal__doc *dc; /* the same changes as the commitment digest replays them */
} docref;

typedef struct built {
    char label[32];  /* what the change shows, e.g. "set" */
    int author;      /* index into ids */
    docref *doc;     /* its document */
    shoal__change c; /* as built (pointers into the arrays below) */
    shoal__op ops[MAXOPS];
    uint8_t deps[4 * 32];
    uint8_t authors[NKEYS * 32];
    uint8_t auth[SHOAL__MAX_AUTH * 32];
    shoal__buf obj; /* an _auth object the change carries */
    shoal__buf body;
    shoal__buf env;
    uint8_t id[32];
    /* sealed fields: the policy's collection that says which ops are
     * sealed, and the groups made */
    const shoal__pcoll *co;
    uint8_t commits[SHOAL__MAX_SEALS * 32];
    shoal__buf groups[2];
} built;

static ident ids[NKEYS];
static built ch[MAXCH];
static size_t nch;
static char cert_doc[SHOAL__AUTH_DOCID_MAX]; /* "cert:" + B's key, set in main */
static docref docs[] = {
    { "items", "sku-1", { { 0 } }, 0, 0, NULL, NULL },
    { "items", "sku-2", { { 0 } }, 0, 0, NULL, NULL },
    { "orders", "o-1", { { 0 } }, 0, 0, NULL, NULL },
    { "_auth", "policy", { { 0 } }, 0, 0, NULL, NULL },
    { "_auth", cert_doc, { { 0 } }, 0, 0, NULL, NULL },
};
static shoal__policy *policy2; /* the second policy version, decoded */
enum {
    NDOCS = sizeof docs / sizeof docs[0]
};
static uint64_t hlc_ms = BASE_MS;
static const char *outdir;
static FILE *idx;

static void
die(const char *what)
{
    fprintf(stderr, "vectors_gen: %s\n", what);
    exit(1);
}

static void
write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        die(path);
}

static void
hex(char *out, const uint8_t *p, size_t n)
{
    shoal__hex(out, p, n);
}

/* ------------------------------------------------------------- building */

static shoal_value
v_str(const char *s)
{
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)s, .len = strlen(s) };
    return v;
}

static shoal_value
v_int(int64_t i)
{
    shoal_value v = { .type = SHOAL_T_INT, .i = i };
    return v;
}

/* Start change by author a on document d. */
static built *
begin(const char *label, int a, docref *d)
{
    if (nch == MAXCH)
        die("too many changes");
    built *b = &ch[nch++];
    memset(b, 0, sizeof *b);
    snprintf(b->label, sizeof b->label, "%s", label);
    b->author = a;
    b->doc = d;
    shoal__change *c = &b->c;
    memcpy(c->author, ids[a].pk, 32);
    c->seq = ++ids[a].seq;
    c->hlc = shoal__hlc_make(++hlc_ms, 0);
    memcpy(b->deps, d->heads, d->nheads * 32);
    c->ndeps = d->nheads;
    c->deps = b->deps;
    c->coll = (const uint8_t *)d->coll;
    c->coll_len = strlen(d->coll);
    c->doc = (const uint8_t *)d->doc;
    c->doc_len = strlen(d->doc);
    c->epoch = d->epoch;
    /* The author table: every other identity, sorted (refs below name
     * them by index 1..). */
    const uint8_t *others[NKEYS];
    size_t n = 0;
    for (int i = 0; i < NKEYS; i++)
        if (i != a)
            others[n++] = ids[i].pk;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && memcmp(others[j - 1], others[j], 32) > 0; j--) {
            const uint8_t *t = others[j];
            others[j] = others[j - 1];
            others[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        memcpy(b->authors + i * 32, others[i], 32);
    c->nauthors = n;
    c->authors = b->authors;
    c->ops = b->ops;
    return b;
}

/* The author index that change b uses for identity a. */
static uint32_t
aix(const built *b, int a)
{
    if (a == b->author)
        return 0;
    for (size_t i = 0; i < b->c.nauthors; i++)
        if (memcmp(b->c.authors + i * 32, ids[a].pk, 32) == 0)
            return (uint32_t)i + 1;
    die("author not in table");
    return 0;
}

static shoal__op *
add(built *b, uint8_t kind, const char *field)
{
    if (b->c.nops == MAXOPS)
        die("too many ops");
    shoal__op *op = &b->ops[b->c.nops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->field = (const uint8_t *)field;
    op->field_len = field ? strlen(field) : 0;
    op->value.type = SHOAL_T_NIL;
    return op;
}

/* A ref from change b to op index of change target. */
static shoal__ref
ref_to(const built *b, const built *target, uint32_t index)
{
    shoal__ref r = { false, target->c.hlc, aix(b, target->author), index };
    return r;
}

static int
sort_heads(const void *x, const void *y)
{
    return memcmp(x, y, 32);
}

/* The commitment digest's form of decoded change c (docs/digests.md,
 * "Commitment stream"): each sealed op stands for its group's commitment;
 * vals holds the 36-byte values. */
static void
commit_form(shoal__change *c, const shoal__pcoll *co, uint8_t *vals)
{
    for (size_t i = 0, k = 0; i < c->nops; i++) {
        shoal__op *op = &c->ops[i];
        if (!op->sealed)
            continue;
        uint8_t cls = shoal__pcoll_class(op->field, op->field_len, (void *)(uintptr_t)co);
        const uint8_t *com = NULL;
        for (uint8_t g = 0; g < c->nseals; g++)
            if (c->seal_class[g] == cls)
                com = c->seal_commit + (size_t)g * 32;
        if (!com)
            die("commit_form");
        uint8_t *v = vals + 36 * k++;
        memcpy(v, com, 32);
        shoal__be32_put(v + 32, (uint32_t)i);
        if (op->kind == SHOAL__OP_COUNT) {
            uint8_t h[8];
            crypto_generichash(h, sizeof h, v, 36, NULL, 0);
            op->delta = (int64_t)shoal__be64_get(h);
            op->value.type = SHOAL_T_NIL;
        } else {
            op->kind = op->kind == SHOAL__OP_UNSET ? SHOAL__OP_SET : op->kind;
            op->value = (shoal_value){ .type = SHOAL_T_BYTES, .ptr = v, .len = 36 };
        }
    }
}

/* Encode, seal, apply to the document's state and make it the head.
 * With b->co: the ops on restricted fields are sealed first, each class's
 * group with a fixed salt (0x5a bytes). */
static void
finish(built *b)
{
    shoal__change *c = &b->c;
    shoal__buf_init(&b->body);
    shoal__buf_init(&b->env);
    if (b->co) {
        bool used[SHOAL__MAX_SEALS + 1] = { false };
        for (size_t i = 0; i < c->nops; i++) {
            uint8_t cls =
                shoal__pcoll_class(b->ops[i].field, b->ops[i].field_len, (void *)(uintptr_t)b->co);
            b->ops[i].sealed = cls != 0;
            used[cls] = true;
        }
        for (uint32_t cls = 1; cls <= SHOAL__MAX_SEALS; cls++) {
            if (!used[cls])
                continue;
            if (c->nseals == 2)
                die("groups");
            uint8_t salt[SHOAL__SALT_BYTES];
            memset(salt, 0x5a, sizeof salt);
            shoal__buf *g = &b->groups[c->nseals];
            shoal__buf_init(g);
            if (shoal__seal_group(c, (uint8_t)cls, salt, shoal__pcoll_class,
                                  (void *)(uintptr_t)b->co, g))
                die("seal_group");
            shoal__seal_commit(g->p, g->len, b->commits + 32 * c->nseals);
            c->seal_class[c->nseals++] = (uint8_t)cls;
        }
        c->seal_commit = b->commits;
    }
    if (shoal__change_encode(c, &b->body))
        die("encode");
    if (shoal__envelope_seal(b->body.p, b->body.len, ids[b->author].pk, ids[b->author].sk, &b->env))
        die("seal");
    shoal__change_id(b->env.p, b->env.len, b->id);
    docref *d = b->doc;
    if (!d->d && !(d->d = shoal__doc_new()))
        die("doc_new");
    /* Apply the decoded change, as a receiver would. */
    shoal__change dc;
    memset(&dc, 0, sizeof dc);
    memcpy(dc.author, c->author, 32);
    if (shoal__change_decode(b->body.p, b->body.len, &dc))
        die("decode");
    /* the commitment form first (from the undisclosed ops), then the
     * values from the groups */
    if (!d->dc && !(d->dc = shoal__doc_new()))
        die("doc_new");
    uint8_t vals[MAXOPS * 36];
    shoal__change cc;
    memset(&cc, 0, sizeof cc);
    memcpy(cc.author, c->author, 32);
    if (shoal__change_decode(b->body.p, b->body.len, &cc))
        die("decode");
    if (cc.nseals)
        commit_form(&cc, b->co, vals);
    if (shoal__doc_apply(d->dc, &cc, 0, cc.nops))
        die("apply commit");
    shoal__change_clear(&cc);
    for (uint8_t g = 0; g < dc.nseals; g++)
        if (shoal__change_disclose(&dc, g, b->groups[g].p, b->groups[g].len, shoal__pcoll_class,
                                   (void *)(uintptr_t)b->co))
            die("disclose");
    if (shoal__doc_apply(d->d, &dc, 0, dc.nops))
        die("apply");
    shoal__change_clear(&dc);
    /* The author made it with every head of the document as a dep: the
     * new change is now the only head. */
    memcpy(d->heads[0], b->id, 32);
    d->nheads = 1;
    qsort(d->heads, d->nheads, 32, sort_heads);
}

static void
build_all(void)
{
    docref *sku1 = &docs[0], *sku2 = &docs[1], *o1 = &docs[2];
    built *b, *ins, *b_ins, *text;

    /* SET: one field per value type and form. */
    b = begin("set", 0, sku1);
    static const char *names[] = { "nil", "true",        "false", "int-0", "int-neg", "int-big",
                                   "dbl", "dbl-negzero", "str",   "bin",   "name" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        add(b, SHOAL__OP_SET, names[i]);
    b->ops[0].value.type = SHOAL_T_NIL;
    b->ops[1].value = (shoal_value){ .type = SHOAL_T_BOOL, .b = true };
    b->ops[2].value = (shoal_value){ .type = SHOAL_T_BOOL, .b = false };
    b->ops[3].value = v_int(0);
    b->ops[4].value = v_int(-33);
    b->ops[5].value = v_int(INT64_MIN);
    b->ops[6].value = (shoal_value){ .type = SHOAL_T_DOUBLE, .d = 1.5 };
    b->ops[7].value = (shoal_value){ .type = SHOAL_T_DOUBLE, .d = -0.0 };
    b->ops[8].value = v_str("h\xc3\xa9llo \xf0\x9f\x90\x9f");
    b->ops[9].value =
        (shoal_value){ .type = SHOAL_T_BYTES, .ptr = (const uint8_t *)"\x00\x01\xff", .len = 3 };
    b->ops[10].value = v_str("widget");
    finish(b);

    /* UNSET. */
    b = begin("unset", 0, sku1);
    add(b, SHOAL__OP_UNSET, "nil");
    finish(b);

    /* COUNT: an increment and a decrement. */
    b = begin("count", 0, sku1);
    add(b, SHOAL__OP_COUNT, "stock")->delta = 5;
    add(b, SHOAL__OP_COUNT, "stock")->delta = -2;
    finish(b);

    /* INS: one element at the head. */
    ins = b = begin("ins", 0, sku1);
    add(b, SHOAL__OP_INS, "tags")->ref.head = true;
    b->ops[0].value = v_str("red");
    finish(b);

    /* INS by another author, after an element of the first (a ref through
     * the author table). */
    b_ins = b = begin("ins-ref", 1, sku1);
    shoal__op *op = add(b, SHOAL__OP_INS, "tags");
    op->ref = ref_to(b, ins, 0);
    op->value = v_str("blue");
    finish(b);

    /* REP: replace the first element's value. */
    b = begin("rep", 1, sku1);
    op = add(b, SHOAL__OP_REP, "tags");
    op->ref = ref_to(b, ins, 0);
    op->value = v_str("crimson");
    finish(b);

    /* INS run: three linked inserts of mixed values (kind 8). */
    b = begin("insrun", 0, sku1);
    op = add(b, SHOAL__OP_INS, "tags");
    op->ref = ref_to(b, b_ins, 0);
    op->value = v_int(1);
    for (uint32_t i = 1; i < 3; i++) {
        op = add(b, SHOAL__OP_INS, "tags");
        op->ref = (shoal__ref){ false, b->c.hlc, 0, i - 1 };
        op->value = i == 1 ? v_str("two") : (shoal_value){ .type = SHOAL_T_DOUBLE, .d = 3.0 };
    }
    finish(b);

    /* TEXT run: one-code-point strings (kind 9), multi-byte code points. */
    text = b = begin("textrun", 2, sku1);
    static const char *cps[] = { "h", "\xc3\xa9", "l", "l", "o", "\xf0\x9f\x90\x9f" };
    for (uint32_t i = 0; i < 6; i++) {
        op = add(b, SHOAL__OP_INS, "text");
        if (i == 0)
            op->ref.head = true;
        else
            op->ref = (shoal__ref){ false, b->c.hlc, 0, i - 1 };
        op->value = v_str(cps[i]);
    }
    finish(b);

    /* DEL: one element by another author. */
    b = begin("del", 0, sku1);
    op = add(b, SHOAL__OP_DEL, "tags");
    op->ref = ref_to(b, b_ins, 0);
    finish(b);

    /* DEL run: consecutive element indexes, ascending (kind 10). */
    b = begin("delrun", 1, sku1);
    for (uint32_t i = 1; i <= 3; i++)
        add(b, SHOAL__OP_DEL, "text")->ref = ref_to(b, text, i);
    finish(b);

    /* DELDOC, then a re-create in the next epoch. */
    b = begin("set-doc2", 1, sku2);
    add(b, SHOAL__OP_SET, "name")->value = v_str("gadget");
    add(b, SHOAL__OP_COUNT, "stock")->delta = 7;
    finish(b);
    b = begin("deldoc", 0, sku2);
    add(b, SHOAL__OP_DELDOC, NULL);
    finish(b);
    sku2->epoch = 1;
    b = begin("recreate", 2, sku2);
    add(b, SHOAL__OP_SET, "name")->value = v_str("gadget II");
    finish(b);

    /* A second collection, several op kinds in one change. */
    b = begin("mixed", 2, o1);
    add(b, SHOAL__OP_SET, "customer")->value = v_str("ada");
    add(b, SHOAL__OP_COUNT, "total")->delta = 1200;
    op = add(b, SHOAL__OP_INS, "lines");
    op->ref.head = true;
    op->value = v_str("sku-1");
    add(b, SHOAL__OP_UNSET, "note");
    finish(b);

    /* Format version 2 (docs/format.md, docs/permissions.md): A, as the
     * root, publishes a policy and certifies B; B then writes naming the
     * certificate and the policy. */
    docref *pol = &docs[3], *cert = &docs[4];
    built *bp = begin("auth-policy", 0, pol);
    bp->c.version = SHOAL__FORMAT_V2;
    shoal__buf_init(&bp->obj);
    shoal__mpw w;
    shoal__mpw_init(&w, &bp->obj);
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, SHOAL__AUTH_POLICY);
    shoal__mpw_uint(&w, SHOAL__AUTH_LANG);
    shoal__mpw_uint(&w, 1); /* version */
    shoal__mpw_nil(&w);     /* prev */
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 3);
    shoal__mpw_str(&w, "items", 5);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "shelf", 5);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "shelf", 5);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 2);
    shoal__mpw_str(&w, "stocker", 7);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 6);
    shoal__mpw_str(&w, "items", 5);
    shoal__mpw_str(&w, "shelf == $user.shelf", 20);
    shoal__mpw_array(&w, 1);
    shoal__mpw_uint(&w, SHOAL__FS_ALL);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__FS_ONLY);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "stock", 5);
    shoal__mpw_bool(&w, false);
    shoal__mpw_bool(&w, false);
    shoal__policy *check = NULL;
    if (w.err || shoal__policy_decode(bp->obj.p, bp->obj.len, &check, NULL, 0))
        die("policy");
    shoal__policy_free(check);
    op = add(bp, SHOAL__OP_SET, "object");
    op->value.type = SHOAL_T_BYTES;
    op->value.ptr = bp->obj.p;
    op->value.len = bp->obj.len;
    finish(bp);

    built *bc = begin("auth-cert", 0, cert);
    bc->c.version = SHOAL__FORMAT_V2;
    shoal__cert ce;
    memset(&ce, 0, sizeof ce);
    memcpy(ce.subject, ids[1].pk, 32);
    shoal__name role = { (const uint8_t *)"stocker", 7 }, attr = { (const uint8_t *)"shelf", 5 };
    shoal_value shelf = v_int(3);
    ce.user = (shoal__name){ (const uint8_t *)"bob", 3 };
    ce.nroles = 1;
    ce.roles = &role;
    ce.nattrs = 1;
    ce.attr_names = &attr;
    ce.attr_vals = &shelf;
    ce.not_before = shoal__hlc_make(BASE_MS, 0);
    ce.not_after = shoal__hlc_make(BASE_MS + 30ull * 86400000, 0);
    ce.serial = 1;
    ce.policy_floor = 1;
    shoal__buf_init(&bc->obj);
    if (shoal__cert_encode(&ce, &bc->obj))
        die("cert");
    op = add(bc, SHOAL__OP_SET, "object");
    op->value.type = SHOAL_T_BYTES;
    op->value.ptr = bc->obj.p;
    op->value.len = bc->obj.len;
    finish(bc);

    b = begin("v2-data", 1, sku1);
    b->c.version = SHOAL__FORMAT_V2;
    memcpy(b->auth, bc->id, 32); /* [certificate, policy] */
    memcpy(b->auth + 32, bp->id, 32);
    b->c.nauth = 2;
    b->c.auth = b->auth;
    add(b, SHOAL__OP_SET, "shelf")->value = v_int(3);
    add(b, SHOAL__OP_COUNT, "stock")->delta = 2;
    finish(b);

    /* Sealed fields (docs/format.md "Sealed fields"): A publishes policy
     * version 2, where a viewer reads items but not their cost, so cost is
     * restricted (read class 1); B writes a cost (sealed) and counts stock
     * (in clear). */
    built *bp2 = begin("auth-policy-2", 0, pol);
    bp2->c.version = SHOAL__FORMAT_V2;
    shoal__buf_init(&bp2->obj);
    shoal__mpw_init(&w, &bp2->obj);
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, SHOAL__AUTH_POLICY);
    shoal__mpw_uint(&w, SHOAL__AUTH_LANG);
    shoal__mpw_uint(&w, 2); /* version */
    shoal__mpw_bin(&w, bp->id, 32);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 3);
    shoal__mpw_str(&w, "items", 5);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "shelf", 5);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "shelf", 5);
    shoal__mpw_array(&w, 2); /* roles: stocker, viewer */
    shoal__mpw_array(&w, 2);
    shoal__mpw_str(&w, "stocker", 7);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 6);
    shoal__mpw_str(&w, "items", 5);
    shoal__mpw_str(&w, "shelf == $user.shelf", 20);
    shoal__mpw_array(&w, 1);
    shoal__mpw_uint(&w, SHOAL__FS_ALL);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__FS_ONLY);
    shoal__mpw_array(&w, 2);
    shoal__mpw_str(&w, "cost", 4);
    shoal__mpw_str(&w, "stock", 5);
    shoal__mpw_bool(&w, false);
    shoal__mpw_bool(&w, false);
    shoal__mpw_array(&w, 2);
    shoal__mpw_str(&w, "viewer", 6);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 6);
    shoal__mpw_str(&w, "items", 5);
    shoal__mpw_str(&w, "TRUE", 4);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__FS_EXCEPT);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "cost", 4);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__FS_ONLY);
    shoal__mpw_array(&w, 0);
    shoal__mpw_bool(&w, false);
    shoal__mpw_bool(&w, false);
    if (w.err || shoal__policy_decode(bp2->obj.p, bp2->obj.len, &policy2, NULL, 0))
        die("policy 2");
    op = add(bp2, SHOAL__OP_SET, "object");
    op->value.type = SHOAL_T_BYTES;
    op->value.ptr = bp2->obj.p;
    op->value.len = bp2->obj.len;
    finish(bp2);

    b = begin("v2-sealed", 1, sku1);
    b->c.version = SHOAL__FORMAT_V2;
    memcpy(b->auth, bc->id, 32);
    memcpy(b->auth + 32, bp2->id, 32);
    b->c.nauth = 2;
    b->c.auth = b->auth;
    b->co = shoal__policy_coll(policy2, (const uint8_t *)"items", 5);
    if (!b->co || shoal__pcoll_class((const uint8_t *)"cost", 4, (void *)(uintptr_t)b->co) != 1)
        die("classes");
    add(b, SHOAL__OP_SET, "cost")->value = v_int(42);
    add(b, SHOAL__OP_COUNT, "stock")->delta = 1;
    finish(b);
}

/* ---------------------------------------------------------------- output */

static void
chunk(crypto_generichash_state *st, const uint8_t *p, size_t n)
{
    uint8_t len[4];
    shoal__be32_put(len, (uint32_t)n);
    crypto_generichash_update(st, len, 4);
    crypto_generichash_update(st, p, n);
}

static int
doc_cmp(const void *x, const void *y)
{
    const docref *a = x, *b = y;
    int c = strcmp(a->coll, b->coll);
    return c ? c : strcmp(a->doc, b->doc);
}

/* A MessagePack bin header for n bytes (n < 65536). */
static void
bin_header(shoal__buf *out, size_t n)
{
    uint8_t h[3] = { n < 256 ? 0xc4 : 0xc5, 0, 0 };
    size_t hl = 2;
    if (n < 256) {
        h[1] = (uint8_t)n;
    } else {
        h[1] = (uint8_t)(n >> 8);
        h[2] = (uint8_t)n;
        hl = 3;
    }
    if (n >= 65536 || shoal__buf_append(out, h, hl))
        die("bin header");
}

/* An equivocation (docs/permissions.md, "Equivocation"): B signs a
 * second change with the seq of v2-data (change 16), shelf 4 instead of
 * 3; the proof [5, key, seq, envelope a, envelope b] (a's id the smaller)
 * is written here byte by byte.  The second change is in no bundle. */
static void
write_equivocation(void)
{
    built *b = &ch[16];
    if (strcmp(b->label, "v2-data") != 0 || b->c.ops[0].kind != SHOAL__OP_SET)
        die("equivocation: change 16");
    shoal__change alt = b->c;
    shoal__op ops[8];
    if (alt.nops > 8)
        die("equivocation: ops");
    memcpy(ops, b->c.ops, alt.nops * sizeof ops[0]);
    ops[0].value = v_int(4);
    alt.ops = ops;
    shoal__buf body, env;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    if (shoal__change_encode(&alt, &body) ||
        shoal__envelope_seal(body.p, body.len, ids[b->author].pk, ids[b->author].sk, &env))
        die("equivocation: seal");
    uint8_t id[32];
    shoal__change_id(env.p, env.len, id);
    const shoal__buf *first = memcmp(b->id, id, 32) < 0 ? &b->env : &env;
    const shoal__buf *second = first == &env ? &b->env : &env;
    shoal__buf proof;
    shoal__buf_init(&proof);
    uint8_t head[2] = { 0x95, 0x05 }; /* array of 5; kind 5 */
    if (shoal__buf_append(&proof, head, 2))
        die("equivocation: proof");
    bin_header(&proof, 32);
    if (shoal__buf_append(&proof, ids[b->author].pk, 32) || b->c.seq > 127)
        die("equivocation: proof");
    uint8_t seq = (uint8_t)b->c.seq; /* positive fixint */
    if (shoal__buf_append(&proof, &seq, 1))
        die("equivocation: proof");
    bin_header(&proof, first->len);
    if (shoal__buf_append(&proof, first->p, first->len))
        die("equivocation: proof");
    bin_header(&proof, second->len);
    if (shoal__buf_append(&proof, second->p, second->len))
        die("equivocation: proof");
    write_file("env-16-alt.bin", env.p, env.len);
    write_file("equivocation-16.bin", proof.p, proof.len);
    fprintf(idx, "equivocation 16 env-16-alt.bin equivocation-16.bin\n");
    shoal__buf_free(&body);
    shoal__buf_free(&env);
    shoal__buf_free(&proof);
}

static void
write_all(void)
{
    char h1[65], h2[65], name[128];
    fprintf(idx,
            "# shoal golden vectors, written by test/vectors/gen.c; do not edit.\n"
            "# key NAME SEED PK                  Ed25519 identity (hex)\n"
            "# change NN LABEL AUTHOR SEQ HLC ID ENVFILE BODYFILE\n"
            "# group NN G FILE                   sealed group G of change NN\n"
            "# bundle FILE COUNT                 every change above, in order\n"
            "# equivocation NN ALTFILE PROOFFILE  another change with NN's seq, and the proof\n"
            "# state COLL DOC FULLFILE VISFILE   document after the bundle\n"
            "# digest visible|full|commitment HEX  of the replica after the bundle\n");
    for (int i = 0; i < NKEYS; i++) {
        hex(h1, ids[i].seed, 32);
        hex(h2, ids[i].pk, 32);
        fprintf(idx, "key %c %s %s\n", ids[i].name, h1, h2);
    }
    shoal__buf bundle;
    shoal__buf_init(&bundle);
    if (shoal__bundle_begin(&bundle))
        die("bundle");
    for (size_t i = 0; i < nch; i++) {
        built *b = &ch[i];
        char env[32], body[32];
        snprintf(env, sizeof env, "env-%02zu.bin", i);
        snprintf(body, sizeof body, "body-%02zu.bin", i);
        write_file(env, b->env.p, b->env.len);
        write_file(body, b->body.p, b->body.len);
        hex(h1, b->id, 32);
        fprintf(idx, "change %02zu %s %c %llu %llu %s %s %s\n", i, b->label, ids[b->author].name,
                (unsigned long long)b->c.seq, (unsigned long long)b->c.hlc, h1, env, body);
        if (shoal__bundle_add(&bundle, b->env.p, b->env.len))
            die("bundle_add");
        for (uint8_t g = 0; g < b->c.nseals; g++) {
            char gname[64];
            snprintf(gname, sizeof gname, "group-%02zu-%u.bin", i, (unsigned)g);
            write_file(gname, b->groups[g].p, b->groups[g].len);
            fprintf(idx, "group %02zu %u %s\n", i, (unsigned)g, gname);
            if (shoal__bundle_add_disc(&bundle, g, b->groups[g].p, b->groups[g].len))
                die("bundle_add_disc");
        }
    }
    shoal__bundle_finish(&bundle, (uint32_t)nch);
    write_file("bundle.bin", bundle.p, bundle.len);
    fprintf(idx, "bundle bundle.bin %zu\n", nch);
    shoal__buf_free(&bundle);
    write_equivocation();

    qsort(docs, NDOCS, sizeof docs[0], doc_cmp);
    crypto_generichash_state vis, full, com;
    crypto_generichash_init(&vis, NULL, 0, 32);
    crypto_generichash_init(&full, NULL, 0, 32);
    crypto_generichash_init(&com, NULL, 0, 32);
    crypto_generichash_update(&vis, (const uint8_t *)"shoal-visible-v1", 16);
    crypto_generichash_update(&full, (const uint8_t *)"shoal-full-v1", 13);
    crypto_generichash_update(&com, (const uint8_t *)"shoal-commit-v1", 15);
    for (size_t i = 0; i < NDOCS; i++) {
        docref *d = &docs[i];
        shoal__buf f, v;
        shoal__buf_init(&f);
        shoal__buf_init(&v);
        if (shoal__doc_encode_full(d->d, &f) || shoal__doc_encode_visible(d->d, &v))
            die("doc encode");
        char fname[128];
        snprintf(fname, sizeof fname, "state-%s-%s.bin", d->coll, d->doc);
        snprintf(name, sizeof name, "visible-%s-%s.bin", d->coll, d->doc);
        for (char *q = fname; *q; q++) /* no ':' in a file name */
            *q = *q == ':' ? '_' : *q;
        for (char *q = name; *q; q++)
            *q = *q == ':' ? '_' : *q;
        write_file(fname, f.p, f.len);
        write_file(name, v.p, v.len);
        fprintf(idx, "state %s %s %s %s\n", d->coll, d->doc, fname, name);
        size_t cl = strlen(d->coll), dl = strlen(d->doc);
        chunk(&full, (const uint8_t *)d->coll, cl);
        chunk(&full, (const uint8_t *)d->doc, dl);
        chunk(&full, f.p, f.len);
        f.len = 0;
        if (shoal__doc_encode_full(d->dc, &f))
            die("doc encode");
        chunk(&com, (const uint8_t *)d->coll, cl);
        chunk(&com, (const uint8_t *)d->doc, dl);
        chunk(&com, f.p, f.len);
        if (!shoal__doc_deleted(d->d)) {
            chunk(&vis, (const uint8_t *)d->coll, cl);
            chunk(&vis, (const uint8_t *)d->doc, dl);
            chunk(&vis, v.p, v.len);
        }
        shoal__buf_free(&f);
        shoal__buf_free(&v);
        shoal__doc_free(d->d);
        shoal__doc_free(d->dc);
        d->d = d->dc = NULL;
    }
    uint8_t dv[32], df[32], dcm[32];
    crypto_generichash_final(&vis, dv, 32);
    crypto_generichash_final(&full, df, 32);
    crypto_generichash_final(&com, dcm, 32);
    hex(h1, dv, 32);
    hex(h2, df, 32);
    fprintf(idx, "digest visible %s\ndigest full %s\n", h1, h2);
    hex(h1, dcm, 32);
    fprintf(idx, "digest commitment %s\n", h1);
    for (size_t i = 0; i < nch; i++) {
        shoal__buf_free(&ch[i].body);
        shoal__buf_free(&ch[i].env);
        shoal__buf_free(&ch[i].obj);
        shoal__buf_free(&ch[i].groups[0]);
        shoal__buf_free(&ch[i].groups[1]);
    }
    shoal__policy_free(policy2);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: vectors_gen DIR\n");
        return 2;
    }
    if (sodium_init() < 0)
        die("sodium_init");
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
        die(outdir);
    for (int i = 0; i < NKEYS; i++) {
        ids[i].name = (char)('A' + i);
        for (int j = 0; j < 32; j++)
            ids[i].seed[j] = (uint8_t)(0x11 * (i + 1) + j);
        crypto_sign_seed_keypair(ids[i].pk, ids[i].sk, ids[i].seed);
    }
    memcpy(cert_doc, "cert:", 5);
    for (int j = 0; j < 32; j++)
        snprintf(cert_doc + 5 + 2 * j, 3, "%02x", ids[1].pk[j]);
    build_all();
    char path[4096];
    snprintf(path, sizeof path, "%s/index.txt", outdir);
    if (!(idx = fopen(path, "w")))
        die(path);
    write_all();
    if (fclose(idx) != 0)
        die(path);
    return 0;
}
