/*
 * test/crdt/test_codec.c - the encoding layer of crdt/: buffers, canonical
 * MessagePack, values, change bodies, envelopes and bundles.
 *
 * Hostile-input tests build malformed bytes by hand (a raw writer below
 * that skips the encoder's checks) and assert the exact error; a seeded
 * mutation loop then checks that no input crashes the decoders and that
 * everything they accept re-encodes to the same bytes.
 */
#include "crdt.h"
#include "check.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- fixtures */

static uint8_t pk_a[32], sk_a[64], pk_b[32], sk_b[64];

static void
keys_init(void)
{
    uint8_t seed[32];
    if (sodium_init() < 0)
        abort();
    memset(seed, 0xa1, sizeof seed);
    crypto_sign_seed_keypair(pk_a, sk_a, seed);
    memset(seed, 0xb2, sizeof seed);
    crypto_sign_seed_keypair(pk_b, sk_b, seed);
}

static shoal_value
v_nil(void)
{
    shoal_value v = { 0 };
    v.type = SHOAL_T_NIL;
    return v;
}

static shoal_value
v_bool(bool b)
{
    shoal_value v = v_nil();
    v.type = SHOAL_T_BOOL;
    v.b = b;
    return v;
}

static shoal_value
v_int(int64_t i)
{
    shoal_value v = v_nil();
    v.type = SHOAL_T_INT;
    v.i = i;
    return v;
}

static shoal_value
v_dbl(double d)
{
    shoal_value v = v_nil();
    v.type = SHOAL_T_DOUBLE;
    v.d = d;
    return v;
}

static shoal_value
v_bytes(shoal_type t, const void *p, size_t n)
{
    shoal_value v = v_nil();
    v.type = t;
    v.ptr = p;
    v.len = n;
    return v;
}

static shoal__op
op_field(uint8_t kind, const char *field)
{
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.field = (const uint8_t *)field;
    op.field_len = field ? strlen(field) : 0;
    op.value.type = SHOAL_T_NIL;
    return op;
}

static shoal__ref
mkref(uint64_t hlc, uint32_t author, uint32_t index)
{
    shoal__ref r = { false, hlc, author, index };
    return r;
}

/* A change using every op kind and every value type.  With big, it also
 * carries max-size names and long values (str16/str32/bin16 forms). */
typedef struct sample {
    shoal__change c;
    shoal__op ops[40];
    uint8_t deps[3 * 32];
    uint8_t authors[2 * 32];
    char coll[SHOAL_MAX_COLLECTION + 1];
    char doc[SHOAL_MAX_DOC_ID + 1];
    char field[SHOAL_MAX_FIELD + 1];
} sample;

static uint8_t long_bin[300];
static char long_str[70000];
static uint8_t max_bin[SHOAL_MAX_VALUE];
static char nan_str[] = "NaN";

static void
sample_init(sample *s, bool big)
{
    memset(s, 0, sizeof *s);
    shoal__change *c = &s->c;
    memcpy(c->author, pk_a, 32);
    c->seq = 7;
    c->hlc = shoal__hlc_make(1700000000000ull, 3);
    for (int i = 0; i < 3; i++)
        memset(s->deps + i * 32, 0x10 * (i + 1), 32);
    c->ndeps = 3;
    c->deps = s->deps;
    /* authors sorted: 0x01.. < pk_b? pick fixed keys around pk_a. */
    memset(s->authors, 0x02, 32);
    memset(s->authors + 32, 0xfe, 32);
    c->nauthors = 2;
    c->authors = s->authors;
    if (big) {
        memset(s->coll, 'c', SHOAL_MAX_COLLECTION);
        memset(s->doc, 'd', SHOAL_MAX_DOC_ID);
        memset(s->field, 'f', SHOAL_MAX_FIELD);
    } else {
        strcpy(s->coll, "items");
        strcpy(s->doc, "sku-1");
        strcpy(s->field, "name");
    }
    c->coll = (const uint8_t *)s->coll;
    c->coll_len = strlen(s->coll);
    c->doc = (const uint8_t *)s->doc;
    c->doc_len = strlen(s->doc);
    c->epoch = 2;

    size_t n = 0;
    shoal_value vals[] = {
        v_nil(),
        v_bool(true),
        v_bool(false),
        v_int(0),
        v_int(-1),
        v_int(127),
        v_int(128),
        v_int(-32),
        v_int(-33),
        v_int(65536),
        v_int(-2147483649LL),
        v_int(INT64_MIN),
        v_int(INT64_MAX),
        v_dbl(-0.0),
        v_dbl(NAN),
        v_dbl(1.5),
        v_dbl(INFINITY),
        v_bytes(SHOAL_T_STR, "", 0),
        v_bytes(SHOAL_T_BYTES, "", 0),
        v_bytes(SHOAL_T_STR, "h\xc3\xa9llo \xf0\x9f\x90\x9f", 11),
        v_bytes(SHOAL_T_BYTES, "\x00\x01\x02", 3),
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        s->ops[n] = op_field(SHOAL__OP_SET, s->field);
        s->ops[n++].value = vals[i];
    }
    if (big) {
        s->ops[n] = op_field(SHOAL__OP_SET, "bin16");
        s->ops[n++].value = v_bytes(SHOAL_T_BYTES, long_bin, sizeof long_bin);
        s->ops[n] = op_field(SHOAL__OP_SET, "str32");
        s->ops[n++].value = v_bytes(SHOAL_T_STR, long_str, sizeof long_str);
        s->ops[n] = op_field(SHOAL__OP_SET, "maxbin");
        s->ops[n++].value = v_bytes(SHOAL_T_BYTES, max_bin, sizeof max_bin);
    }
    s->ops[n++] = op_field(SHOAL__OP_UNSET, "gone");
    s->ops[n] = op_field(SHOAL__OP_COUNT, "n");
    s->ops[n++].delta = 1;
    s->ops[n] = op_field(SHOAL__OP_COUNT, "n");
    s->ops[n++].delta = INT64_MIN;
    s->ops[n] = op_field(SHOAL__OP_COUNT, "n");
    s->ops[n++].delta = INT64_MAX;
    s->ops[n] = op_field(SHOAL__OP_INS, "l");
    s->ops[n].ref.head = true;
    s->ops[n++].value = v_int(1);
    s->ops[n] = op_field(SHOAL__OP_INS, "l");
    s->ops[n].ref = mkref(c->hlc, 0, (uint32_t)n - 2); /* own op, short form */
    s->ops[n++].value = v_bytes(SHOAL_T_STR, nan_str, 3);
    s->ops[n] = op_field(SHOAL__OP_INS, "l");
    s->ops[n].ref = mkref(5, 1, UINT32_MAX);
    s->ops[n++].value = v_nil();
    s->ops[n] = op_field(SHOAL__OP_DEL, "l");
    s->ops[n++].ref = mkref(UINT64_MAX, 2, 0);
    s->ops[n] = op_field(SHOAL__OP_REP, "l");
    s->ops[n].ref = mkref(6, 2, 4);
    s->ops[n++].value = v_dbl(2.25);
    s->ops[n++] = op_field(SHOAL__OP_DELDOC, NULL);
    c->nops = n;
    c->ops = s->ops;
}

static bool
change_eq(const shoal__change *a, const shoal__change *b)
{
    if (memcmp(a->author, b->author, 32) || a->seq != b->seq || a->hlc != b->hlc ||
        a->ndeps != b->ndeps || a->epoch != b->epoch || a->nauthors != b->nauthors ||
        a->nops != b->nops || a->coll_len != b->coll_len || a->doc_len != b->doc_len ||
        a->nseals != b->nseals)
        return false;
    if (a->nseals && (memcmp(a->seal_class, b->seal_class, a->nseals) ||
                      memcmp(a->seal_commit, b->seal_commit, a->nseals * 32u)))
        return false;
    if ((a->ndeps && memcmp(a->deps, b->deps, a->ndeps * 32)) ||
        (a->nauthors && memcmp(a->authors, b->authors, a->nauthors * 32)) ||
        memcmp(a->coll, b->coll, a->coll_len) || memcmp(a->doc, b->doc, a->doc_len))
        return false;
    for (size_t i = 0; i < a->nops; i++) {
        const shoal__op *x = &a->ops[i], *y = &b->ops[i];
        if (x->sealed != y->sealed || x->field_len != y->field_len)
            return false;
        /* A sealed op not disclosed on one side: its value, delta and
         * SET / UNSET are not in the body. */
        if (x->sealed && (x->value.type == SHOAL_T_REDACTED || y->value.type == SHOAL_T_REDACTED)) {
            bool wx = x->kind == SHOAL__OP_SET || x->kind == SHOAL__OP_UNSET;
            bool wy = y->kind == SHOAL__OP_SET || y->kind == SHOAL__OP_UNSET;
            if (wx != wy || (!wx && x->kind != y->kind))
                return false;
            if (x->field_len && memcmp(x->field, y->field, x->field_len))
                return false;
            if ((x->kind == SHOAL__OP_INS || x->kind == SHOAL__OP_REP) &&
                (x->ref.head != y->ref.head ||
                 (!x->ref.head && (x->ref.hlc != y->ref.hlc || x->ref.author != y->ref.author ||
                                   x->ref.index != y->ref.index))))
                return false;
            continue;
        }
        if (x->kind != y->kind)
            return false;
        if (x->field_len && memcmp(x->field, y->field, x->field_len))
            return false;
        if (x->kind == SHOAL__OP_SET || x->kind == SHOAL__OP_INS || x->kind == SHOAL__OP_REP)
            if (!shoal__value_eq(&x->value, &y->value))
                return false;
        if (x->kind == SHOAL__OP_COUNT && x->delta != y->delta)
            return false;
        if (x->kind == SHOAL__OP_INS || x->kind == SHOAL__OP_DEL || x->kind == SHOAL__OP_REP) {
            if (x->ref.head != y->ref.head)
                return false;
            if (!x->ref.head && (x->ref.hlc != y->ref.hlc || x->ref.author != y->ref.author ||
                                 x->ref.index != y->ref.index))
                return false;
        }
    }
    return true;
}

/* Decode body as a change by author pk_a. */
static int
decode(const uint8_t *p, size_t n, shoal__change *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->author, pk_a, 32);
    return shoal__change_decode(p, n, out);
}

/* ------------------------------------------------- raw (unchecked) writer */

/* Writes a body from c exactly as given (no validation), so tests can
 * build invalid bodies.  items: how many of the 8 items to claim; wrong:
 * position whose item is replaced by wrong_item(); ops_fn: writes the ops
 * item instead of c->ops. */
typedef void (*raw_fn)(shoal__mpw *w);

static const uint8_t raw_items[11] = { 0, 3, 2, 3, 4, 3, 4, 1, 4, 4, 4 };

/* A ref as the format writes it: the short form (-d) for an op of the
 * change itself (at op index i), else [hlc, author_ix, index]. */
static void
raw_ref(shoal__mpw *w, const shoal__change *c, const shoal__ref *r, size_t i)
{
    if (r->head) {
        shoal__mpw_nil(w);
        return;
    }
    if (r->author == 0 && r->hlc == c->hlc && r->index < i) {
        /* the shorter of index and -(i - index); negative on a tie */
        size_t d = i - r->index;
        int ub = r->index < 128 ? 1 : r->index < 256 ? 2 : r->index < 65536 ? 3 : 5;
        int nb = d <= 32 ? 1 : d <= 128 ? 2 : d <= 32768 ? 3 : 5;
        if (ub < nb)
            shoal__mpw_uint(w, r->index);
        else
            shoal__mpw_int(w, -(int64_t)d);
        return;
    }
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, r->hlc);
    shoal__mpw_uint(w, r->author);
    shoal__mpw_uint(w, r->index);
}

/* One single (never run) item for op i; the field is left out when it
 * equals the previous op's (prev, NULL for none). */
static void
raw_op(shoal__mpw *w, const shoal__change *c, size_t i, const shoal__op *prev)
{
    const shoal__op *op = &c->ops[i];
    bool same = op->kind >= 1 && op->kind < 11 && op->kind != SHOAL__OP_DELDOC && prev &&
                prev->field && prev->field_len == op->field_len &&
                memcmp(prev->field, op->field, op->field_len) == 0;
    shoal__mpw_array(w, op->kind < 11 ? raw_items[op->kind] - (same ? 1u : 0u) : 1);
    shoal__mpw_uint(w, op->kind);
    if (op->kind == SHOAL__OP_DELDOC || op->kind >= 8 || op->kind == 0)
        return;
    if (!same)
        shoal__mpw_str(w, op->field, op->field_len);
    if (op->kind == SHOAL__OP_COUNT)
        shoal__mpw_int(w, op->delta);
    if (op->kind >= SHOAL__OP_INS && op->kind <= SHOAL__OP_REP)
        raw_ref(w, c, &op->ref, i);
    if (op->kind == SHOAL__OP_SET || op->kind == SHOAL__OP_INS || op->kind == SHOAL__OP_REP)
        shoal__mpw_value(w, &op->value);
}

static void
raw_body(shoal__buf *b, const shoal__change *c, int items, int wrong, raw_fn wrong_item,
         raw_fn ops_fn)
{
    shoal__mpw w;
    b->len = 0;
    shoal__mpw_init(&w, b);
    shoal__mpw_array(&w, (uint32_t)items);
    for (int i = 0; i < items && i < 8; i++) {
        if (i == wrong) {
            wrong_item(&w);
            continue;
        }
        switch (i) {
        case 0: shoal__mpw_uint(&w, c->seq); break;
        case 1: shoal__mpw_uint(&w, c->hlc); break;
        case 2:
            shoal__mpw_array(&w, (uint32_t)c->ndeps);
            for (size_t k = 0; k < c->ndeps; k++)
                shoal__mpw_bin(&w, c->deps + k * 32, 32);
            break;
        case 3: shoal__mpw_str(&w, c->coll, c->coll_len); break;
        case 4: shoal__mpw_str(&w, c->doc, c->doc_len); break;
        case 5: shoal__mpw_uint(&w, c->epoch); break;
        case 6:
            shoal__mpw_array(&w, (uint32_t)c->nauthors);
            for (size_t k = 0; k < c->nauthors; k++)
                shoal__mpw_bin(&w, c->authors + k * 32, 32);
            break;
        case 7:
            if (ops_fn) {
                ops_fn(&w);
                break;
            }
            shoal__mpw_array(&w, (uint32_t)c->nops);
            for (size_t k = 0; k < c->nops; k++)
                raw_op(&w, c, k, k ? &c->ops[k - 1] : NULL);
            break;
        }
    }
    for (int i = 8; i < items; i++)
        shoal__mpw_nil(&w);
    if (w.err)
        abort();
}

/* Body of s (small sample) with change c modified by the caller. */
static int
decode_raw(const shoal__change *c)
{
    shoal__buf b;
    shoal__change d;
    shoal__buf_init(&b);
    raw_body(&b, c, 8, -1, NULL, NULL);
    int err = decode(b.p, b.len, &d);
    if (!err)
        shoal__change_clear(&d);
    shoal__buf_free(&b);
    return err;
}

/* -------------------------------------------------------------- buffers */

static void
test_buf(void)
{
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK(b.p == NULL && b.len == 0);
    for (int i = 0; i < 1000; i++) {
        uint8_t x = (uint8_t)i;
        REQUIRE(shoal__buf_append(&b, &x, 1) == SHOAL_OK);
    }
    CHECK_EQ(b.len, 1000);
    CHECK(b.cap >= 1000);
    CHECK_EQ(b.p[999], (uint8_t)999);
    CHECK_EQ(shoal__buf_append(&b, NULL, 0), SHOAL_OK);
    CHECK_EQ(shoal__buf_reserve(&b, SIZE_MAX), SHOAL_ENOMEM);
    size_t len;
    uint8_t *p = shoal__buf_take(&b, &len);
    CHECK_EQ(len, 1000);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    CHECK_EQ(p[500], (uint8_t)500);
    shoal__free(p);
    shoal__buf_free(&b);

    uint8_t be[8];
    shoal__be32_put(be, 0x01020304u);
    CHECK(be[0] == 1 && be[3] == 4);
    CHECK_EQ(shoal__be32_get(be), 0x01020304u);
    shoal__be64_put(be, 0x0102030405060708ull);
    CHECK(be[0] == 1 && be[7] == 8);
    CHECK(shoal__be64_get(be) == 0x0102030405060708ull);
    shoal__be64_put(be, UINT64_MAX);
    CHECK(shoal__be64_get(be) == UINT64_MAX);
}

static void
test_hex(void)
{
    uint8_t in[4] = { 0x00, 0xab, 0x7f, 0xff }, out[4];
    char s[9];
    shoal__hex(s, in, 4);
    CHECK(strcmp(s, "00ab7fff") == 0);
    CHECK_EQ(shoal__unhex(out, 4, "00AB7fff"), SHOAL_OK);
    CHECK(memcmp(in, out, 4) == 0);
    CHECK_EQ(shoal__unhex(out, 4, "00ab7ff"), SHOAL_EINVAL);   /* short */
    CHECK_EQ(shoal__unhex(out, 4, "00ab7fff0"), SHOAL_EINVAL); /* long */
    CHECK_EQ(shoal__unhex(out, 4, "00ab7fgf"), SHOAL_EINVAL);  /* not hex */
    CHECK_EQ(shoal__unhex(out, 0, ""), SHOAL_OK);
}

static void
test_utf8(void)
{
    struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        { "", 0, true },
        { "plain", 5, true },
        { "\xc3\xa9", 2, true },
        { "\xe2\x82\xac", 3, true },
        { "\xf0\x9f\x90\x9f", 4, true },
        { "\xf4\x8f\xbf\xbf", 4, true },  /* U+10FFFF */
        { "\xed\x9f\xbf", 3, true },      /* U+D7FF */
        { "\xee\x80\x80", 3, true },      /* U+E000 */
        { "a\0b", 3, true },              /* NUL is valid UTF-8 */
        { "\x80", 1, false },             /* lone continuation */
        { "\xc0\x80", 2, false },         /* overlong NUL */
        { "\xc1\xbf", 2, false },         /* overlong */
        { "\xe0\x9f\xbf", 3, false },     /* overlong 3-byte */
        { "\xf0\x8f\xbf\xbf", 4, false }, /* overlong 4-byte */
        { "\xed\xa0\x80", 3, false },     /* surrogate U+D800 */
        { "\xed\xbf\xbf", 3, false },     /* surrogate U+DFFF */
        { "\xf4\x90\x80\x80", 4, false }, /* above U+10FFFF */
        { "\xf5\x80\x80\x80", 4, false },
        { "\xff", 1, false },
        { "\xc3", 1, false }, /* truncated */
        { "\xe2\x82", 2, false },
        { "\xf0\x9f\x90", 3, false },
        { "\xe2\x28\xa1", 3, false }, /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = shoal__utf8_valid((const uint8_t *)cases[i].s, cases[i].n);
        if (got != cases[i].ok)
            fprintf(stderr, "utf8 case %zu\n", i);
        CHECK(got == cases[i].ok);
    }
}

static void
test_alloc_fail(void)
{
    shoal__alloc_fail_after(2);
    void *a = shoal__malloc(8);
    void *b = shoal__malloc(8); /* the 2nd fails */
    void *c = shoal__calloc(2, 8);
    CHECK(a != NULL);
    CHECK(b == NULL);
    CHECK(c != NULL);
    shoal__free(a);
    shoal__free(c);
    shoal__alloc_fail_after(1);
    shoal__buf buf;
    shoal__buf_init(&buf);
    CHECK_EQ(shoal__buf_append(&buf, "x", 1), SHOAL_ENOMEM);
    CHECK_EQ(shoal__buf_append(&buf, "x", 1), SHOAL_OK);
    shoal__buf_free(&buf);
    shoal__alloc_fail_after(0);
    void *z = shoal__malloc(0); /* never NULL for 0 */
    CHECK(z != NULL);
    shoal__free(z);
}

/* ------------------------------------------------------------ MessagePack */

static void
test_mp_ints(void)
{
    struct {
        uint64_t v;
        size_t len;
        uint8_t first;
    } u[] = {
        { 0, 1, 0x00 },          { 127, 1, 0x7f },           { 128, 2, 0xcc },
        { 255, 2, 0xcc },        { 256, 3, 0xcd },           { 65535, 3, 0xcd },
        { 65536, 5, 0xce },      { 0xffffffffull, 5, 0xce }, { 0x100000000ull, 9, 0xcf },
        { UINT64_MAX, 9, 0xcf },
    };
    shoal__buf b;
    shoal__buf_init(&b);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        shoal__mpw w;
        shoal__mpr r;
        b.len = 0;
        shoal__mpw_init(&w, &b);
        shoal__mpw_uint(&w, u[i].v);
        CHECK_EQ(w.err, SHOAL_OK);
        CHECK_EQ(b.len, u[i].len);
        CHECK_EQ(b.p[0], u[i].first);
        shoal__mpr_init(&r, b.p, b.len);
        CHECK_EQ(shoal__mpr_peek(&r), SHOAL_T_INT);
        CHECK(shoal__mpr_uint(&r) == u[i].v);
        CHECK_EQ(shoal__mpr_finish(&r), SHOAL_OK);
    }
    struct {
        int64_t v;
        size_t len;
        uint8_t first;
    } s[] = {
        { -1, 1, 0xff },        { -32, 1, 0xe0 },       { -33, 2, 0xd0 },
        { -128, 2, 0xd0 },      { -129, 3, 0xd1 },      { -32768, 3, 0xd1 },
        { -32769, 5, 0xd2 },    { INT32_MIN, 5, 0xd2 }, { (int64_t)INT32_MIN - 1, 9, 0xd3 },
        { INT64_MIN, 9, 0xd3 }, { 5, 1, 0x05 },         { 200, 2, 0xcc },
        { INT64_MAX, 9, 0xcf },
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        shoal__mpw w;
        shoal__mpr r;
        b.len = 0;
        shoal__mpw_init(&w, &b);
        shoal__mpw_int(&w, s[i].v);
        CHECK_EQ(b.len, s[i].len);
        CHECK_EQ(b.p[0], s[i].first);
        shoal__mpr_init(&r, b.p, b.len);
        CHECK(shoal__mpr_int(&r) == s[i].v);
        CHECK_EQ(shoal__mpr_finish(&r), SHOAL_OK);
        if (s[i].v < 0) { /* negative is not a uint */
            shoal__mpr_init(&r, b.p, b.len);
            CHECK_EQ(shoal__mpr_uint(&r), 0);
            CHECK_EQ(r.err, SHOAL_EPROTO);
        }
    }
    shoal__buf_free(&b);
}

static void
test_mp_scalars(void)
{
    shoal__buf b;
    shoal__mpw w;
    shoal__mpr r;
    shoal__buf_init(&b);
    shoal__mpw_init(&w, &b);
    shoal__mpw_nil(&w);
    shoal__mpw_bool(&w, true);
    shoal__mpw_bool(&w, false);
    shoal__mpw_double(&w, -0.0);
    shoal__mpw_double(&w, NAN);
    shoal__mpw_str(&w, "abc", 3);
    shoal__mpw_bin(&w, "", 0);
    shoal__mpw_array(&w, 15);
    shoal__mpw_array(&w, 16);
    shoal__mpw_map(&w, 2);
    shoal__mpw_map(&w, 70000);
    CHECK_EQ(w.err, SHOAL_OK);
    static const uint8_t want[] = {
        0xc0, 0xc3, 0xc2, 0xcb, 0x80, 0,    0,    0,    0,    0,    0,    0,   0xcb,
        0x7f, 0xf8, 0,    0,    0,    0,    0,    0,    0xa3, 'a',  'b',  'c', 0xc4,
        0x00, 0x9f, 0xdc, 0x00, 0x10, 0x82, 0xdf, 0x00, 0x01, 0x11, 0x70,
    };
    CHECK_EQ(b.len, sizeof want);
    CHECK(b.len == sizeof want && memcmp(b.p, want, sizeof want) == 0);
    shoal__mpr_init(&r, b.p, b.len);
    CHECK(shoal__mpr_is_nil(&r));
    CHECK_EQ(shoal__mpr_peek(&r), SHOAL_T_NIL);
    shoal__mpr_nil(&r);
    CHECK_EQ(shoal__mpr_peek(&r), SHOAL_T_BOOL);
    CHECK(shoal__mpr_bool(&r) == true);
    CHECK(shoal__mpr_bool(&r) == false);
    double d = shoal__mpr_double(&r);
    CHECK(d == 0 && signbit(d));
    CHECK(isnan(shoal__mpr_double(&r)));
    const uint8_t *p;
    CHECK_EQ(shoal__mpr_peek(&r), SHOAL_T_STR);
    CHECK_EQ(shoal__mpr_str(&r, &p, 3), 3);
    CHECK(memcmp(p, "abc", 3) == 0);
    CHECK_EQ(shoal__mpr_peek(&r), SHOAL_T_BYTES);
    CHECK_EQ(shoal__mpr_bin(&r, &p, 0), 0);
    CHECK_EQ(shoal__mpr_peek(&r), -1);
    CHECK_EQ(shoal__mpr_array(&r, 100, 0), 15);
    CHECK_EQ(shoal__mpr_array(&r, 100, 0), 16);
    CHECK_EQ(shoal__mpr_map(&r, 100, 0), 2);
    CHECK_EQ(shoal__mpr_map(&r, 70000, 0), 70000);
    CHECK_EQ(shoal__mpr_finish(&r), SHOAL_OK);
    CHECK_EQ(shoal__mpr_peek(&r), -1); /* end of input */
    shoal__buf_free(&b);
}

/* Read hex-ish bytes with one reader function and expect err. */
enum {
    RD_UINT,
    RD_INT,
    RD_DOUBLE,
    RD_STR,
    RD_BIN,
    RD_ARRAY,
    RD_MAP,
    RD_VALUE,
    RD_BOOL,
    RD_NIL
};

static int
read_one(int kind, const uint8_t *p, size_t n, size_t max)
{
    shoal__mpr r;
    const uint8_t *s;
    shoal_value v;
    shoal__mpr_init(&r, p, n);
    switch (kind) {
    case RD_UINT: (void)shoal__mpr_uint(&r); break;
    case RD_INT: (void)shoal__mpr_int(&r); break;
    case RD_DOUBLE: (void)shoal__mpr_double(&r); break;
    case RD_STR: (void)shoal__mpr_str(&r, &s, max); break;
    case RD_BIN: (void)shoal__mpr_bin(&r, &s, max); break;
    case RD_ARRAY: (void)shoal__mpr_array(&r, (uint32_t)max, 1); break;
    case RD_MAP: (void)shoal__mpr_map(&r, (uint32_t)max, 1); break;
    case RD_VALUE: shoal__mpr_value(&r, &v); break;
    case RD_BOOL: (void)shoal__mpr_bool(&r); break;
    case RD_NIL: shoal__mpr_nil(&r); break;
    }
    return shoal__mpr_finish(&r);
}

#define RD(kind, max, err, ...)                              \
    do {                                                     \
        static const uint8_t in_[] = { __VA_ARGS__ };        \
        CHECK_EQ(read_one(kind, in_, sizeof in_, max), err); \
    } while (0)

static void
test_mp_noncanonical(void)
{
    /* Control: canonical forms pass. */
    RD(RD_UINT, 0, SHOAL_OK, 0x05);
    RD(RD_UINT, 0, SHOAL_OK, 0xcc, 0x80);
    RD(RD_STR, 100, SHOAL_OK, 0xa3, 'a', 'b', 'c');
    /* Ints in a larger form than needed. */
    RD(RD_UINT, 0, SHOAL_EPROTO, 0xcc, 0x05); /* uint8 for 5 */
    RD(RD_UINT, 0, SHOAL_EPROTO, 0xcc, 0x7f);
    RD(RD_UINT, 0, SHOAL_EPROTO, 0xcd, 0x00, 0xff);
    RD(RD_UINT, 0, SHOAL_EPROTO, 0xce, 0x00, 0x00, 0xff, 0xff);
    RD(RD_UINT, 0, SHOAL_EPROTO, 0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff);
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd0, 0x05);       /* signed form, >= 0 */
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd0, 0xe0);       /* -32 fits fixint */
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd1, 0xff, 0x80); /* -128 fits int8 */
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd1, 0x00, 0x05);
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd2, 0xff, 0xff, 0x80, 0x00);
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd3, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0);
    RD(RD_INT, 0, SHOAL_EPROTO, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1);
    RD(RD_INT, 0, SHOAL_OK, 0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff);
    RD(RD_INT, 0, SHOAL_EPROTO, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0); /* > INT64_MAX */
    RD(RD_UINT, 0, SHOAL_EPROTO, 0xff);                           /* negative */
    /* Floats: only float64. */
    RD(RD_DOUBLE, 0, SHOAL_EPROTO, 0xca, 0x3f, 0x80, 0x00, 0x00);
    RD(RD_VALUE, 0, SHOAL_EPROTO, 0xca, 0x3f, 0x80, 0x00, 0x00);
    RD(RD_DOUBLE, 0, SHOAL_EPROTO, 0x01);
    /* Strings, binaries, arrays, maps in a larger header than needed. */
    RD(RD_STR, 100, SHOAL_EPROTO, 0xd9, 0x03, 'a', 'b', 'c'); /* str8 for 3 */
    RD(RD_STR, 100, SHOAL_EPROTO, 0xda, 0x00, 0x03, 'a', 'b', 'c');
    RD(RD_STR, 100, SHOAL_EPROTO, 0xdb, 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c');
    RD(RD_BIN, 100, SHOAL_EPROTO, 0xc5, 0x00, 0x03, 1, 2, 3);
    RD(RD_BIN, 100, SHOAL_EPROTO, 0xc6, 0x00, 0x00, 0x00, 0x03, 1, 2, 3);
    RD(RD_ARRAY, 100, SHOAL_EPROTO, 0xdc, 0x00, 0x01, 0xc0);
    RD(RD_ARRAY, 100, SHOAL_EPROTO, 0xdd, 0x00, 0x00, 0x00, 0x01, 0xc0);
    RD(RD_MAP, 100, SHOAL_EPROTO, 0xde, 0x00, 0x01, 0xc0, 0xc0);
    /* Wrong types. */
    RD(RD_STR, 100, SHOAL_EPROTO, 0xc4, 0x01, 'a');    /* bin as str */
    RD(RD_BIN, 100, SHOAL_EPROTO, 0xa1, 'a');          /* str as bin */
    RD(RD_ARRAY, 100, SHOAL_EPROTO, 0x81, 0xc0, 0xc0); /* map as array */
    RD(RD_BOOL, 0, SHOAL_EPROTO, 0xc0);
    RD(RD_NIL, 0, SHOAL_EPROTO, 0xc2);
    RD(RD_VALUE, 0, SHOAL_EPROTO, 0x90); /* array as value */
    RD(RD_VALUE, 0, SHOAL_EPROTO, 0x80);
    RD(RD_VALUE, 0, SHOAL_EPROTO, 0xc1);             /* never used */
    RD(RD_VALUE, 0, SHOAL_EPROTO, 0xd4, 0x01, 0x00); /* fixext */
    /* Invalid UTF-8. */
    RD(RD_STR, 100, SHOAL_EPROTO, 0xa2, 0xc0, 0x80);
    RD(RD_VALUE, 0, SHOAL_EPROTO, 0xa3, 0xed, 0xa0, 0x80);
    RD(RD_VALUE, 0, SHOAL_OK, 0xc4, 0x02, 0xc0, 0x80); /* fine as bin */
    /* Trailing bytes. */
    RD(RD_UINT, 0, SHOAL_EPROTO, 0x01, 0x02);
}

static void
test_mp_bounds(void)
{
    /* Header itself cut short. */
    RD(RD_UINT, 0, SHOAL_ETRUNC, 0xcd, 0x01);
    RD(RD_DOUBLE, 0, SHOAL_ETRUNC, 0xcb, 0, 0, 0);
    RD(RD_STR, 100, SHOAL_ETRUNC, 0xda, 0x01);
    RD(RD_ARRAY, 100, SHOAL_ETRUNC, 0xdd, 0x00, 0x01);
    CHECK_EQ(read_one(RD_VALUE, NULL, 0, 0), SHOAL_ETRUNC);
    CHECK_EQ(read_one(RD_UINT, NULL, 0, 0), SHOAL_ETRUNC);
    /* Payload longer than the input. */
    RD(RD_STR, 100, SHOAL_ETRUNC, 0xa5, 'a', 'b');
    RD(RD_BIN, 1000, SHOAL_ETRUNC, 0xc5, 0x01, 0x00, 1, 2, 3);
    /* Over the caller's bound, checked before the payload is needed. */
    RD(RD_STR, 2, SHOAL_ETOOBIG, 0xa3, 'a', 'b', 'c');
    RD(RD_STR, 1000, SHOAL_ETOOBIG, 0xdb, 0xff, 0xff, 0xff, 0xff);
    RD(RD_VALUE, 0, SHOAL_ETOOBIG, 0xc6, 0x00, 0x10, 0x00, 0x01); /* MAX_VALUE+1 */
    RD(RD_ARRAY, 3, SHOAL_ETOOBIG, 0x94, 1, 2, 3, 4);
    /* Counts: 4 billion items declared in a few bytes. */
    RD(RD_ARRAY, UINT32_MAX, SHOAL_ETRUNC, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01);
    RD(RD_MAP, UINT32_MAX, SHOAL_ETRUNC, 0xdf, 0xff, 0xff, 0xff, 0xff, 0x01);
    RD(RD_ARRAY, UINT32_MAX, SHOAL_ETRUNC, 0x93, 0x01, 0x02);
    {
        /* min_item: 2 items of at least 34 bytes need 68 bytes. */
        uint8_t in[60] = { 0x92 };
        shoal__mpr r;
        shoal__mpr_init(&r, in, sizeof in);
        CHECK_EQ(shoal__mpr_array(&r, 10, 34), 0);
        CHECK_EQ(r.err, SHOAL_ETRUNC);
        shoal__mpr_init(&r, in, sizeof in);
        CHECK_EQ(shoal__mpr_array(&r, 10, 29), 2);
        CHECK_EQ(r.err, SHOAL_OK);
    }
    /* Sticky errors: after the first, everything reads as zero. */
    {
        static const uint8_t in[] = { 0xcc, 0x05, 0x07, 0xa1, 'x' };
        shoal__mpr r;
        const uint8_t *p = in;
        shoal__mpr_init(&r, in, sizeof in);
        CHECK_EQ(shoal__mpr_uint(&r), 0);
        CHECK_EQ(r.err, SHOAL_EPROTO);
        CHECK_EQ(shoal__mpr_uint(&r), 0);
        CHECK_EQ(shoal__mpr_str(&r, &p, 10), 0);
        CHECK(p == NULL);
        CHECK_EQ(shoal__mpr_peek(&r), -1);
        CHECK(!shoal__mpr_is_nil(&r));
        CHECK_EQ(shoal__mpr_finish(&r), SHOAL_EPROTO);
    }
}

static void
test_mp_value_roundtrip(void)
{
    sample *s = calloc(1, sizeof *s);
    REQUIRE(s);
    sample_init(s, true);
    shoal__buf b;
    shoal__buf_init(&b);
    for (size_t i = 0; i < s->c.nops; i++) {
        const shoal__op *op = &s->c.ops[i];
        if (op->kind != SHOAL__OP_SET)
            continue;
        shoal__mpw w;
        shoal__mpr r;
        shoal_value v;
        b.len = 0;
        shoal__mpw_init(&w, &b);
        shoal__mpw_value(&w, &op->value);
        CHECK_EQ(w.err, SHOAL_OK);
        shoal__mpr_init(&r, b.p, b.len);
        shoal__mpr_value(&r, &v);
        CHECK_EQ(shoal__mpr_finish(&r), SHOAL_OK);
        CHECK(shoal__value_eq(&v, &op->value));
        CHECK_EQ(shoal__mpr_peek(&r), -1);
    }
    /* A bad type is caught by the writer. */
    {
        shoal__mpw w;
        shoal_value bad = v_nil();
        bad.type = (shoal_type)9;
        b.len = 0;
        shoal__mpw_init(&w, &b);
        shoal__mpw_value(&w, &bad);
        CHECK_EQ(w.err, SHOAL_EINVAL);
    }
    /* Writer errors are sticky (allocation failure). */
    {
        shoal__buf e;
        shoal__mpw w;
        shoal__buf_init(&e);
        shoal__mpw_init(&w, &e);
        shoal__alloc_fail_after(1);
        shoal__mpw_uint(&w, 1);
        shoal__alloc_fail_after(0);
        shoal__mpw_uint(&w, 2);
        CHECK_EQ(w.err, SHOAL_ENOMEM);
        CHECK_EQ(e.len, 0);
        shoal__buf_free(&e);
    }
    shoal__buf_free(&b);
    free(s);
}

/* ------------------------------------------------------------------ values */

static void
test_values(void)
{
    shoal_value a = v_bytes(SHOAL_T_STR, "hello", 5), c;
    CHECK_EQ(shoal__value_check(&a), SHOAL_OK);
    REQUIRE(shoal__value_copy(&c, &a) == SHOAL_OK);
    CHECK(c.ptr != a.ptr);
    CHECK(shoal__value_eq(&a, &c));
    shoal__value_clear(&c);
    CHECK_EQ(c.type, SHOAL_T_NIL);
    shoal_value e = v_bytes(SHOAL_T_BYTES, NULL, 0);
    REQUIRE(shoal__value_copy(&c, &e) == SHOAL_OK);
    CHECK(shoal__value_eq(&c, &e));
    shoal__value_clear(&c);
    shoal_value i = v_int(-5);
    REQUIRE(shoal__value_copy(&c, &i) == SHOAL_OK);
    CHECK(shoal__value_eq(&c, &i));
    shoal__value_clear(&c);
    shoal__alloc_fail_after(1);
    CHECK_EQ(shoal__value_copy(&c, &a), SHOAL_ENOMEM);
    shoal__alloc_fail_after(0);

    /* Equality: type and bytes; doubles by bit pattern. */
    shoal_value z = v_dbl(0.0), nz = v_dbl(-0.0), n1 = v_dbl(NAN), n2 = v_dbl(NAN);
    CHECK(!shoal__value_eq(&z, &nz));
    CHECK(shoal__value_eq(&n1, &n2));
    shoal_value s = v_bytes(SHOAL_T_STR, "ab", 2), bn = v_bytes(SHOAL_T_BYTES, "ab", 2);
    CHECK(!shoal__value_eq(&s, &bn));
    shoal_value s2 = v_bytes(SHOAL_T_STR, "ac", 2);
    CHECK(!shoal__value_eq(&s, &s2));
    shoal_value t = v_bool(true), f = v_bool(false);
    CHECK(!shoal__value_eq(&t, &f));
    shoal_value one = v_int(1);
    CHECK(!shoal__value_eq(&t, &one));

    /* Checks. */
    shoal_value bad = v_bytes(SHOAL_T_STR, "\xc0\x80", 2);
    CHECK_EQ(shoal__value_check(&bad), SHOAL_EINVAL);
    shoal_value big = v_bytes(SHOAL_T_BYTES, max_bin, SHOAL_MAX_VALUE);
    CHECK_EQ(shoal__value_check(&big), SHOAL_OK);
    big.len++;
    CHECK_EQ(shoal__value_check(&big), SHOAL_EINVAL);
    shoal_value np = v_bytes(SHOAL_T_BYTES, NULL, 3);
    CHECK_EQ(shoal__value_check(&np), SHOAL_EINVAL);
    shoal_value ty = v_nil();
    ty.type = (shoal_type)6;
    CHECK_EQ(shoal__value_check(&ty), SHOAL_EINVAL);
}

/* ----------------------------------------------------------------- changes */

static void
roundtrip(const shoal__change *c)
{
    shoal__buf b, b2;
    shoal__change d;
    shoal__buf_init(&b);
    shoal__buf_init(&b2);
    REQUIRE(shoal__change_encode(c, &b) == SHOAL_OK);
    CHECK(b.len <= SHOAL__MAX_BODY);
    /* The peek reads seq and hlc alone. */
    uint64_t seq = 0, hlc = 0;
    CHECK_EQ(shoal__change_peek(b.p, b.len, &seq, &hlc), SHOAL_OK);
    CHECK(seq == c->seq && hlc == c->hlc);
    seq = 0;
    CHECK_EQ(shoal__change_peek(b.p, b.len, &seq, NULL), SHOAL_OK);
    CHECK(seq == c->seq);
    CHECK_EQ(shoal__change_peek(b.p, 2, &seq, &hlc), SHOAL_ETRUNC);
    int err = decode(b.p, b.len, &d);
    CHECK_EQ(err, SHOAL_OK);
    if (!err) {
        CHECK(change_eq(c, &d));
        CHECK_EQ(shoal__change_encode(&d, &b2), SHOAL_OK);
        CHECK(b.len == b2.len && memcmp(b.p, b2.p, b.len) == 0);
        shoal__change_clear(&d);
    }
    CHECK_EQ(d.nops, 0);
    CHECK(d.ops == NULL);
    shoal__buf_free(&b);
    shoal__buf_free(&b2);
}

static void
test_change_roundtrip(void)
{
    sample *s = calloc(1, sizeof *s);
    REQUIRE(s);
    sample_init(s, false);
    roundtrip(&s->c);
    sample_init(s, true); /* max-size names, str32, bin16, max-size bin */
    roundtrip(&s->c);
    /* Extremes of the header integers, empty tables, no ops. */
    sample_init(s, false);
    s->c.seq = UINT64_MAX;
    s->c.hlc = UINT64_MAX;
    s->c.epoch = UINT64_MAX;
    s->c.ndeps = 0;
    s->c.deps = NULL;
    s->c.nauthors = 0;
    s->c.authors = NULL;
    s->c.nops = 0;
    roundtrip(&s->c);
    s->c.seq = 1;
    s->c.hlc = 0;
    s->c.epoch = 0;
    roundtrip(&s->c);
    /* Multi-byte UTF-8 names. */
    sample_init(s, false);
    s->c.coll = (const uint8_t *)"\xe6\x97\xa5\xe6\x9c\xac";
    s->c.coll_len = 6;
    roundtrip(&s->c);
    free(s);
}

/* Random valid changes: encode, decode, compare, re-encode. */
static void
random_change(shoal__change *c, shoal__op *ops, size_t maxops, uint8_t *deps, uint8_t *authors,
              uint8_t *pool, size_t pool_len)
{
    memset(c, 0, sizeof *c);
    memcpy(c->author, pk_a, 32);
    c->seq = 1 + check_rand_below(1000);
    c->hlc = check_rand();
    c->epoch = check_rand_below(3) ? check_rand_below(5) : check_rand();
    c->ndeps = check_rand_below(4);
    for (size_t i = 0; i < c->ndeps; i++) { /* ascending by first byte */
        memset(deps + i * 32, 0, 32);
        for (int k = 1; k < 32; k++)
            deps[i * 32 + k] = (uint8_t)check_rand();
        deps[i * 32] = (uint8_t)(i * 60 + check_rand_below(50));
    }
    c->deps = deps;
    c->nauthors = check_rand_below(3);
    for (size_t i = 0; i < c->nauthors; i++) {
        for (int k = 0; k < 32; k++)
            authors[i * 32 + k] = (uint8_t)check_rand();
        authors[i * 32] = (uint8_t)(i * 100 + check_rand_below(90));
    }
    for (size_t i = 0; i < c->nauthors; i++) /* never the change author */
        if (memcmp(authors + i * 32, c->author, 32) == 0)
            authors[i * 32 + 31] ^= 1;
    c->authors = authors;
    c->coll = pool;
    c->coll_len = 1 + check_rand_below(SHOAL_MAX_COLLECTION);
    c->doc = pool + 1;
    c->doc_len = 1 + check_rand_below(SHOAL_MAX_DOC_ID);
    c->nops = check_rand_below(maxops + 1);
    c->ops = ops;
    for (size_t i = 0; i < c->nops; i++) {
        shoal__op *op = &ops[i];
        memset(op, 0, sizeof *op);
        op->kind = (uint8_t)(1 + check_rand_below(7));
        op->field = pool + check_rand_below(8);
        op->field_len = 1 + check_rand_below(check_rand_below(4) ? 8 : SHOAL_MAX_FIELD);
        switch (check_rand_below(7)) {
        case 0: op->value = v_nil(); break;
        case 1: op->value = v_bool(check_rand() & 1); break;
        case 2: op->value = v_int((int64_t)check_rand() >> check_rand_below(64)); break;
        case 3: {
            uint64_t bits = check_rand();
            double d;
            memcpy(&d, &bits, sizeof d);
            op->value = v_dbl(d);
            break;
        }
        case 4:
            op->value =
                v_bytes(SHOAL_T_STR, pool, check_rand_below(check_rand_below(4) ? 40 : pool_len));
            break;
        default: op->value = v_bytes(SHOAL_T_BYTES, pool + 3, check_rand_below(300)); break;
        }
        op->delta = (int64_t)check_rand() | 1;
        op->ref = mkref(check_rand(), (uint32_t)check_rand_below(c->nauthors + 1),
                        (uint32_t)check_rand());
        op->ref.head = op->kind == SHOAL__OP_INS && check_rand_below(3) == 0;
        if (op->kind == SHOAL__OP_DELDOC) {
            op->field = NULL;
            op->field_len = 0;
        }
        /* one op in four that carries a value is sealed */
        op->sealed =
            op->kind != SHOAL__OP_DEL && op->kind != SHOAL__OP_DELDOC && check_rand_below(4) == 0;
        if (op->sealed) {
            static uint8_t commits[2 * 32];
            memset(commits, 0xc5, sizeof commits);
            c->version = SHOAL__FORMAT_V2;
            c->nseals = 2;
            c->seal_class[0] = 3;
            c->seal_class[1] = 64;
            c->seal_commit = commits;
        }
    }
}

static void
test_change_random_roundtrip(void)
{
    enum {
        MAXOPS = 20
    };
    static uint8_t pool[2000];
    shoal__op ops[MAXOPS];
    uint8_t deps[4 * 32], authors[3 * 32];
    for (size_t i = 0; i < sizeof pool; i++)
        pool[i] = (uint8_t)('a' + i % 26);
    check_rand_reseed(check_rand() | 1);
    for (int iter = 0; iter < 500; iter++) {
        shoal__change c;
        random_change(&c, ops, MAXOPS, deps, authors, pool, sizeof pool);
        int before = check_failures;
        roundtrip(&c);
        if (check_failures != before) {
            fprintf(stderr, "random change %d failed\n", iter);
            return;
        }
    }
}

static void
test_change_encode_rejects(void)
{
    sample s;
    shoal__buf b;
    shoal__buf_init(&b);
#define ENC_REJECT(mutate)                                      \
    do {                                                        \
        sample_init(&s, false);                                 \
        mutate;                                                 \
        CHECK_EQ(shoal__change_encode(&s.c, &b), SHOAL_EINVAL); \
        CHECK_EQ(b.len, 0);                                     \
    } while (0)
    ENC_REJECT(s.c.seq = 0);
    ENC_REJECT(memcpy(s.deps + 32, s.deps, 32)); /* duplicate dep */
    ENC_REJECT(memset(s.deps, 0xff, 32));        /* unsorted */
    ENC_REJECT(memcpy(s.authors, pk_a, 32); memset(s.authors + 32, 0xff, 32));
    ENC_REJECT(memset(s.authors, 0xff, 32)); /* unsorted */
    ENC_REJECT(s.c.coll_len = 0);
    ENC_REJECT(s.c.doc_len = SHOAL_MAX_DOC_ID + 1);
    ENC_REJECT(s.c.coll = (const uint8_t *)"a\0b"; s.c.coll_len = 3);
    ENC_REJECT(s.c.doc = (const uint8_t *)"\xff"; s.c.doc_len = 1);
    ENC_REJECT(s.ops[0].field_len = 0);
    ENC_REJECT(s.ops[0].kind = 8);
    ENC_REJECT(s.ops[0].kind = 0);
    ENC_REJECT(s.ops[0].value.type = (shoal_type)7);
    /* delta 0 is valid (it makes the field a counter reading 0). */
    sample_init(&s, false);
    s.ops[0] = op_field(SHOAL__OP_COUNT, "n");
    CHECK_EQ(shoal__change_encode(&s.c, &b), SHOAL_OK);
    b.len = 0;
    ENC_REJECT(s.ops[0] = op_field(SHOAL__OP_DEL, "l"); s.ops[0].ref.head = true);
    ENC_REJECT(s.ops[0] = op_field(SHOAL__OP_REP, "l"); s.ops[0].ref = mkref(1, 3, 0));
    ENC_REJECT(s.c.ndeps = SHOAL__MAX_DEPS + 1);
    ENC_REJECT(s.c.nops = 2; s.c.ops = NULL);
#undef ENC_REJECT
    /* Encoding appends to what the buffer holds. */
    sample_init(&s, false);
    REQUIRE(shoal__buf_append(&b, "xy", 2) == SHOAL_OK);
    CHECK_EQ(shoal__change_encode(&s.c, &b), SHOAL_OK);
    CHECK(b.len > 2 && b.p[0] == 'x' && b.p[2] == 0x98);
    shoal__buf_free(&b);
}

static void
write_str_x(shoal__mpw *w)
{
    shoal__mpw_str(w, "x", 1);
}
static void
write_nil(shoal__mpw *w)
{
    shoal__mpw_nil(w);
}
static void
write_uint5(shoal__mpw *w)
{
    shoal__mpw_uint(w, 5);
}
static void
write_neg(shoal__mpw *w)
{
    shoal__mpw_int(w, -1);
}
static void
write_dbl(shoal__mpw *w)
{
    shoal__mpw_double(w, 1.0);
}
static void
write_map(shoal__mpw *w)
{
    shoal__mpw_map(w, 0);
}

static int
decode_wrong(const shoal__change *c, int items, int wrong, raw_fn fn, raw_fn ops_fn)
{
    shoal__buf b;
    shoal__change d;
    shoal__buf_init(&b);
    raw_body(&b, c, items, wrong, fn, ops_fn);
    int err = decode(b.p, b.len, &d);
    if (!err)
        shoal__change_clear(&d);
    CHECK(d.ops == NULL && d.nops == 0); /* cleared on error */
    shoal__buf_free(&b);
    return err;
}

static void
test_change_wrong_types(void)
{
    sample s;
    sample_init(&s, false);
    CHECK_EQ(decode_wrong(&s.c, 8, -1, NULL, NULL), SHOAL_OK);
    /* Every position, several wrong types. */
    raw_fn wrongs[] = { write_nil, write_dbl, write_map, write_neg };
    for (int pos = 0; pos < 8; pos++) {
        for (size_t k = 0; k < sizeof wrongs / sizeof wrongs[0]; k++)
            CHECK_EQ(decode_wrong(&s.c, 8, pos, wrongs[k], NULL), SHOAL_EPROTO);
        /* A str where a uint/array goes, a uint where a str goes. */
        raw_fn other = (pos == 3 || pos == 4) ? write_uint5 : write_str_x;
        CHECK_EQ(decode_wrong(&s.c, 8, pos, other, NULL), SHOAL_EPROTO);
    }
    /* Array of 7 or 9 items. */
    CHECK_EQ(decode_wrong(&s.c, 7, -1, NULL, NULL), SHOAL_EPROTO);
    CHECK_EQ(decode_wrong(&s.c, 9, -1, NULL, NULL), SHOAL_EPROTO);
    CHECK_EQ(decode_wrong(&s.c, 0, -1, NULL, NULL), SHOAL_EPROTO);
    /* Not an array at all. */
    static const uint8_t notarr[] = { 0x81, 0xc0, 0xc0 };
    shoal__change d;
    CHECK_EQ(decode(notarr, sizeof notarr, &d), SHOAL_EPROTO);
    CHECK_EQ(decode(NULL, 0, &d), SHOAL_ETRUNC);
}

static void
test_change_decode_rejects(void)
{
    sample s;
    uint8_t longname[SHOAL_MAX_DOC_ID + 1];
    memset(longname, 'x', sizeof longname);
#define DEC(err, mutate)                 \
    do {                                 \
        sample_init(&s, false);          \
        mutate;                          \
        CHECK_EQ(decode_raw(&s.c), err); \
    } while (0)
    DEC(SHOAL_OK, (void)0);
    DEC(SHOAL_EPROTO, s.c.seq = 0);
    DEC(SHOAL_EPROTO, memcpy(s.deps + 32, s.deps, 32));
    DEC(SHOAL_EPROTO, memset(s.deps, 0xff, 32));
    DEC(SHOAL_EPROTO, memset(s.authors, 0xff, 32));
    DEC(SHOAL_EPROTO, memcpy(s.authors + 32, s.authors, 32));
    DEC(SHOAL_EPROTO, memcpy(s.authors + 32, pk_a, 32); memset(s.authors, 0, 32));
    DEC(SHOAL_EPROTO, s.c.coll_len = 0);
    DEC(SHOAL_EPROTO, s.c.doc_len = 0);
    DEC(SHOAL_EPROTO, s.c.coll = (const uint8_t *)"a\0b"; s.c.coll_len = 3);
    DEC(SHOAL_EPROTO, s.c.doc = (const uint8_t *)"\0"; s.c.doc_len = 1);
    DEC(SHOAL_EPROTO, s.c.coll = (const uint8_t *)"\xed\xa0\x80"; s.c.coll_len = 3);
    DEC(SHOAL_ETOOBIG, s.c.coll = longname; s.c.coll_len = SHOAL_MAX_COLLECTION + 1);
    DEC(SHOAL_OK, s.c.coll = longname; s.c.coll_len = SHOAL_MAX_COLLECTION);
    DEC(SHOAL_ETOOBIG, s.c.doc = longname; s.c.doc_len = SHOAL_MAX_DOC_ID + 1);
    DEC(SHOAL_OK, s.c.doc = longname; s.c.doc_len = SHOAL_MAX_DOC_ID);
    DEC(SHOAL_ETOOBIG, s.ops[1].field = longname; s.ops[1].field_len = SHOAL_MAX_FIELD + 1);
    DEC(SHOAL_EPROTO, s.ops[1].field_len = 0);
    DEC(SHOAL_EPROTO, s.ops[1].field = (const uint8_t *)"a\0"; s.ops[1].field_len = 2);
    DEC(SHOAL_EPROTO, s.ops[1].field = (const uint8_t *)"\xc3"; s.ops[1].field_len = 1);
    DEC(SHOAL_EPROTO, s.ops[2].kind = 0);
    DEC(SHOAL_EPROTO, s.ops[2].kind = 8);
    DEC(SHOAL_OK, s.ops[2] = op_field(SHOAL__OP_COUNT, "n")); /* delta 0: valid */
    DEC(SHOAL_EPROTO, s.ops[2] = op_field(SHOAL__OP_DEL, "l"); s.ops[2].ref.head = true);
    DEC(SHOAL_EPROTO, s.ops[2] = op_field(SHOAL__OP_REP, "l"); s.ops[2].ref.head = true);
    DEC(SHOAL_OK, s.ops[2] = op_field(SHOAL__OP_REP, "l"); s.ops[2].ref = mkref(1, 2, 0));
    DEC(SHOAL_EPROTO, s.ops[2] = op_field(SHOAL__OP_REP, "l"); s.ops[2].ref = mkref(1, 3, 0));
    DEC(SHOAL_EPROTO, s.ops[2] = op_field(SHOAL__OP_DEL, "l"); s.ops[2].ref = mkref(1, 1, 0);
        s.c.nauthors = 0);
    DEC(SHOAL_EPROTO, s.ops[0].value.type = SHOAL_T_STR;
        s.ops[0].value.ptr = (const uint8_t *)"\xff"; s.ops[0].value.len = 1);
    DEC(SHOAL_OK, s.ops[0].value = v_bytes(SHOAL_T_BYTES, max_bin, SHOAL_MAX_VALUE));
#undef DEC
    /* Value over SHOAL_MAX_VALUE: build it with a bigger source buffer. */
    {
        uint8_t *big = calloc(1, SHOAL_MAX_VALUE + 1);
        REQUIRE(big);
        sample_init(&s, false);
        s.ops[0].value = v_bytes(SHOAL_T_BYTES, big, SHOAL_MAX_VALUE + 1);
        CHECK_EQ(decode_raw(&s.c), SHOAL_ETOOBIG);
        s.ops[0].value = v_bytes(SHOAL_T_STR, big, SHOAL_MAX_VALUE + 1);
        CHECK_EQ(decode_raw(&s.c), SHOAL_ETOOBIG);
        s.ops[0].value = v_bytes(SHOAL_T_STR, big, SHOAL_MAX_VALUE); /* NULs are fine in values */
        CHECK_EQ(decode_raw(&s.c), SHOAL_OK);
        free(big);
    }
}

/* Hand-built op arrays (each written as the only op). */
static void
op_set_short(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 1);
    shoal__mpw_str(w, "f", 1);
}
static void
op_set_long(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 1);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_nil(w);
    shoal__mpw_nil(w);
}
static void
op_unset_long(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 2);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_nil(w);
}
static void
op_deldoc_long(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 7);
    shoal__mpw_str(w, "f", 1);
}
/* These two are 1 byte, less than the smallest op: a valid op follows so
 * that the count passes its bound and the op itself is judged. */
static void
op_empty(shoal__mpw *w)
{
    shoal__mpw_array(w, 2);
    shoal__mpw_array(w, 0);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_str(w, "field", 5);
}
static void
op_not_array(shoal__mpw *w)
{
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 7);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_str(w, "field", 5);
}
static void
op_alone_empty(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 0);
}
static void
op_kind_str(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 1);
    shoal__mpw_str(w, "x", 1);
}
static void
op_kind_big(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 1);
    shoal__mpw_uint(w, 0x100000007ull);
}
static void
op_field_bin(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_bin(w, "f", 1);
}
static void
op_delta_str(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 3);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_str(w, "1", 1);
}
static void
op_delta_dbl(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 3);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_double(w, 1);
}
static void
op_delta_huge(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 3);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_uint(w, UINT64_MAX);
}
static void
ref_op(shoal__mpw *w, int nref, int64_t a, int64_t ix, bool value)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, value ? 4 : 3);
    shoal__mpw_uint(w, value ? 6 : 5);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_array(w, (uint32_t)nref);
    shoal__mpw_uint(w, 9);
    if (nref > 1)
        shoal__mpw_int(w, a);
    if (nref > 2)
        shoal__mpw_int(w, ix);
    if (nref > 3)
        shoal__mpw_uint(w, 0);
    if (value)
        shoal__mpw_int(w, 1);
}
static void
ref_ok(shoal__mpw *w)
{
    ref_op(w, 3, 0, 4, false);
}
static void
ref_short(shoal__mpw *w)
{
    ref_op(w, 2, 0, 0, false);
}
static void
ref_long(shoal__mpw *w)
{
    ref_op(w, 4, 0, 0, true);
}
static void
ref_neg_author(shoal__mpw *w)
{
    ref_op(w, 3, -1, 0, false);
}
static void
ref_author_out(shoal__mpw *w)
{
    ref_op(w, 3, 3, 0, true);
}
static void
ref_index_u33(shoal__mpw *w)
{
    ref_op(w, 3, 0, 0x100000000ll, false);
}
static void
ref_map(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 5);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_map(w, 0);
}
static void
value_array(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 1);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_array(w, 0);
}
static void
ops_too_many(shoal__mpw *w)
{
    shoal__mpw_array(w, SHOAL__MAX_OPS + 1);
}
static void
ops_more_than_bytes(shoal__mpw *w)
{
    shoal__mpw_array(w, 1000);
    for (int i = 0; i < 10; i++) {
        shoal__mpw_array(w, 1);
        shoal__mpw_uint(w, 7);
    }
}
static void
ops_fewer_than_items(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    for (int i = 0; i < 2; i++) {
        shoal__mpw_array(w, 1);
        shoal__mpw_uint(w, 7);
    }
}

static void
test_change_bad_ops(void)
{
    sample s;
    sample_init(&s, false);
    CHECK_EQ(decode_wrong(&s.c, 8, -1, NULL, ref_ok), SHOAL_OK);
    struct {
        raw_fn fn;
        int err;
        const char *what;
    } cases[] = {
        { op_set_short, SHOAL_EPROTO, "SET of 2" },
        { op_set_long, SHOAL_EPROTO, "SET of 4" },
        { op_unset_long, SHOAL_EPROTO, "UNSET of 3" },
        { op_deldoc_long, SHOAL_EPROTO, "DELDOC of 2" },
        { op_empty, SHOAL_EPROTO, "[]" },
        { op_not_array, SHOAL_EPROTO, "op not an array" },
        { op_alone_empty, SHOAL_ETRUNC, "1 op in 1 byte" },
        { op_kind_str, SHOAL_EPROTO, "kind str" },
        { op_kind_big, SHOAL_EPROTO, "kind 2^32+7" },
        { op_field_bin, SHOAL_EPROTO, "field as bin" },
        { op_delta_str, SHOAL_EPROTO, "delta str" },
        { op_delta_dbl, SHOAL_EPROTO, "delta float" },
        { op_delta_huge, SHOAL_EPROTO, "delta > INT64_MAX" },
        { ref_short, SHOAL_EPROTO, "ref of 2" },
        { ref_long, SHOAL_EPROTO, "ref of 4" },
        { ref_neg_author, SHOAL_EPROTO, "ref author -1" },
        { ref_author_out, SHOAL_EPROTO, "ref author 3 of 2" },
        { ref_index_u33, SHOAL_EPROTO, "ref index 2^32" },
        { ref_map, SHOAL_EPROTO, "ref map" },
        { value_array, SHOAL_EPROTO, "value array" },
        { ops_too_many, SHOAL_ETOOBIG, "ops > MAX_OPS" },
        { ops_more_than_bytes, SHOAL_ETRUNC, "1000 ops in 20 bytes" },
        { ops_fewer_than_items, SHOAL_EPROTO, "trailing op" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int err = decode_wrong(&s.c, 8, -1, NULL, cases[i].fn);
        if (err != cases[i].err)
            fprintf(stderr, "case %s: got %d\n", cases[i].what, err);
        CHECK_EQ(err, cases[i].err);
    }
}

/* ------------------------------------------------------------- run items */

/* Encode c and compare with the expected ops-array bytes (the body's tail:
 * the ops array is the last item). */
static void
check_ops_bytes(const shoal__change *c, const uint8_t *want, size_t n)
{
    shoal__buf b;
    shoal__buf_init(&b);
    REQUIRE(shoal__change_encode(c, &b) == SHOAL_OK);
    CHECK(b.len >= n && memcmp(b.p + b.len - n, want, n) == 0);
    if (b.len < n || memcmp(b.p + b.len - n, want, n) != 0) {
        char hex[256];
        size_t k = n < 100 ? n : 100;
        shoal__hex(hex, b.p + b.len - k, k);
        fprintf(stderr, "  got tail %s\n", hex);
    }
    shoal__buf_free(&b);
    roundtrip(c);
}

/* A change of sample s's header with no ops; ops are added by the test. */
static void
runs_init(sample *s)
{
    sample_init(s, false);
    s->c.nops = 0;
}

static void
add_ins(sample *s, const char *field, bool head, uint64_t hlc, uint32_t ai, uint32_t ix,
        shoal_value v)
{
    shoal__op *op = &s->ops[s->c.nops++];
    *op = op_field(SHOAL__OP_INS, field);
    op->ref = mkref(hlc, ai, ix);
    op->ref.head = head;
    op->value = v;
}

static void
add_del(sample *s, const char *field, uint64_t hlc, uint32_t ai, uint32_t ix)
{
    shoal__op *op = &s->ops[s->c.nops++];
    *op = op_field(SHOAL__OP_DEL, field);
    op->ref = mkref(hlc, ai, ix);
}

static shoal_value
v_s(const char *p)
{
    return v_bytes(SHOAL_T_STR, p, strlen(p));
}

static void
test_change_runs_encode(void)
{
    sample s;
    uint64_t h;
    /* Typing: one TEXT run; the following DEL of the same field: nil field. */
    runs_init(&s);
    h = s.c.hlc;
    add_ins(&s, "l", true, 0, 0, 0, v_s("a"));
    add_ins(&s, "l", false, h, 0, 0, v_s("\xc3\xa9"));
    add_ins(&s, "l", false, h, 0, 1, v_s("c"));
    add_del(&s, "l", h, 0, 1);
    {
        static const uint8_t want[] = { 0x92, 0x94, 0x09, 0xa1, 'l',  0xc0, 0xa4,
                                        'a',  0xc3, 0xa9, 'c',  0x92, 0x05, 0xfe };
        check_ops_bytes(&s.c, want, sizeof want);
    }
    /* Values that are not all one code point: an INS run with an array. */
    runs_init(&s);
    h = s.c.hlc;
    add_ins(&s, "l", false, 9, 1, 4, v_s("x"));
    add_ins(&s, "l", false, h, 0, 0, v_int(5));
    add_ins(&s, "l", false, h, 0, 1, v_s(""));
    {
        static const uint8_t want[] = { 0x91, 0x94, 0x08, 0xa1, 'l', 0x93, 0x09,
                                        0x01, 0x04, 0x93, 0xa1, 'x', 0x05, 0xa0 };
        check_ops_bytes(&s.c, want, sizeof want);
    }
    /* Backspacing: a descending DEL run, then an ascending one. */
    runs_init(&s);
    add_del(&s, "t", 5, 1, 10);
    add_del(&s, "t", 5, 1, 9);
    add_del(&s, "t", 5, 1, 8);
    add_del(&s, "t", 5, 1, 7); /* continues down */
    add_del(&s, "t", 5, 1, 8); /* new item: single, then joins 9 */
    add_del(&s, "t", 5, 1, 9);
    add_del(&s, "u", 5, 1, 10); /* other field: not joined */
    {
        static const uint8_t want[] = { 0x93, 0x94, 0x0a, 0xa1, 't',  0x93, 0x05, 0x01, 0x0a,
                                        0xfc, 0x93, 0x0a, 0x93, 0x05, 0x01, 0x08, 0x02, 0x93,
                                        0x05, 0xa1, 'u',  0x93, 0x05, 0x01, 0x0a };
        check_ops_bytes(&s.c, want, sizeof want);
    }
    /* Things that never join: different ref author/hlc, a gap, a ref to an
     * older op of the change, a DELDOC in between (the field is written
     * again after it). */
    runs_init(&s);
    h = s.c.hlc;
    add_del(&s, "t", 5, 1, 10);
    add_del(&s, "t", 5, 2, 11);
    add_del(&s, "t", 6, 2, 12);
    add_del(&s, "t", 6, 2, 14);
    add_ins(&s, "t", true, 0, 0, 0, v_s("a"));
    add_ins(&s, "t", false, h, 0, 3, v_s("b"));
    s.ops[s.c.nops++] = op_field(SHOAL__OP_DELDOC, NULL);
    add_ins(&s, "t", false, h, 0, 5, v_s("c"));
    {
        static const uint8_t want[] = { 0x98, 0x93, 0x05, 0xa1, 't',  0x93, 0x05, 0x01, 0x0a, 0x92,
                                        0x05, 0x93, 0x05, 0x02, 0x0b, 0x92, 0x05, 0x93, 0x06, 0x02,
                                        0x0c, 0x92, 0x05, 0x93, 0x06, 0x02, 0x0e, 0x93, 0x04, 0xc0,
                                        0xa1, 'a',  0x93, 0x04, 0xfe, 0xa1, 'b',  0x91, 0x07, 0x94,
                                        0x04, 0xa1, 't',  0xfe, 0xa1, 'c' };
        check_ops_bytes(&s.c, want, sizeof want);
    }
    /* A ref to a later (or the same) op of the change cannot be written. */
    runs_init(&s);
    add_del(&s, "t", s.c.hlc, 0, 0);
    shoal__buf b;
    shoal__buf_init(&b);
    CHECK_EQ(shoal__change_encode(&s.c, &b), SHOAL_EINVAL);
    shoal__buf_free(&b);
}

/* A long range of deletes is written as full DEL runs of
 * SHOAL__MAX_DELRUN ops and a last shorter one, decodes back to the same
 * ops, and the ops per byte of body stay bounded: the densest body (one-
 * byte refs and counts) holds at most SHOAL__MAX_DELRUN ops per 4 bytes
 * of run item. */
static void
test_change_delrun_cap(void)
{
    enum {
        N = 16 * SHOAL__MAX_DELRUN + 100
    };
    sample s;
    runs_init(&s);
    shoal__op *ops = calloc(N, sizeof *ops);
    REQUIRE(ops);
    for (uint32_t i = 0; i < N; i++) {
        ops[i] = op_field(SHOAL__OP_DEL, "l");
        ops[i].ref = mkref(5, 1, 10 + i);
    }
    s.c.ops = ops;
    s.c.nops = N;
    shoal__buf b;
    shoal__buf_init(&b);
    REQUIRE(shoal__change_encode(&s.c, &b) == SHOAL_OK);
    shoal__change d;
    CHECK_EQ(decode(b.p, b.len, &d), SHOAL_OK);
    CHECK_EQ(d.nops, N);
    for (size_t i = 0; i < d.nops && i < N; i++)
        CHECK(d.ops[i].kind == SHOAL__OP_DEL && d.ops[i].ref.index == 10 + i &&
              d.ops[i].ref.hlc == 5 && d.ops[i].ref.author == 1);
    shoal__change_clear(&d);
    /* The ops array holds N / SHOAL__MAX_DELRUN items, rounded up (17):
     * header 0xdc 00 n (array16), then the first item, a DEL run
     * [10, "l", ...]. */
    const size_t items = (N + SHOAL__MAX_DELRUN - 1) / SHOAL__MAX_DELRUN;
    bool found = false;
    for (size_t i = 0; i + 6 <= b.len && !found; i++)
        found = b.p[i] == 0xdc && b.p[i + 1] == 0 && b.p[i + 2] == items && b.p[i + 3] == 0x94 &&
                b.p[i + 4] == 0x0a && b.p[i + 5] == 0xa1;
    CHECK(items >= 16 && items < 256 && found);
    printf("  %d DELs in %zu bytes of body (%zu items)\n", N, b.len, items);
    shoal__buf_free(&b);
    /* The densest DEL run item: [10, -1, 16] after a field-carrying op
     * (fixarray, kind, one-byte own ref, one-byte count): 4 bytes for
     * SHOAL__MAX_DELRUN ops.  A longer run is refused before any op is
     * made. */
    CHECK(SHOAL__MAX_DELRUN <= 127); /* the count fits a positive fixint */
    free(ops);
}

/* Random edit-like changes (runs likely): round trip and re-encode. */
static void
test_change_runs_random(void)
{
    enum {
        MAXOPS = 40
    }; /* sample.ops */
    static sample s;
    static const char *cps[] = {
        "a", "b", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x90\x9f", "ab", ""
    };
    for (int iter = 0; iter < 400; iter++) {
        runs_init(&s);
        uint64_t h = s.c.hlc;
        size_t n = check_rand_below(MAXOPS);
        for (size_t i = 0; i < n; i++) {
            const char *f = check_rand_below(8) ? "t" : "u";
            unsigned r = (unsigned)check_rand_below(10);
            if (r < 5 && i > 0) {
                shoal_value v = check_rand_below(6)   ? v_s(cps[check_rand_below(5)])
                                : check_rand_below(2) ? v_s(cps[5 + check_rand_below(2)])
                                                      : v_int((int64_t)check_rand_below(300));
                add_ins(&s, f, false, h, 0,
                        check_rand_below(4) ? (uint32_t)i - 1 : (uint32_t)check_rand_below(i), v);
            } else if (r < 6) {
                add_ins(&s, f, true, 0, 0, 0, v_s(cps[check_rand_below(5)]));
            } else if (r < 9) {
                uint32_t prev = i > 0 && s.ops[i - 1].kind == SHOAL__OP_DEL
                                    ? s.ops[i - 1].ref.index
                                    : (uint32_t)check_rand_below(50) + 2;
                int step = (int)check_rand_below(3) - 1;
                add_del(&s, f, check_rand_below(5) ? 77 : h, check_rand_below(6) ? 1 : 0,
                        (uint32_t)((int)prev + step));
                shoal__op *op = &s.ops[i];
                if (op->ref.author == 0 && op->ref.hlc == h && op->ref.index >= i)
                    op->ref.hlc = 78; /* only earlier ops of the change */
            } else {
                s.ops[s.c.nops++] =
                    op_field(check_rand_below(2) ? SHOAL__OP_DELDOC : SHOAL__OP_UNSET, "t");
                if (s.ops[i].kind == SHOAL__OP_DELDOC)
                    s.ops[i].field = NULL, s.ops[i].field_len = 0;
            }
        }
        int before = check_failures;
        roundtrip(&s.c);
        if (check_failures != before) {
            fprintf(stderr, "random run change %d failed\n", iter);
            return;
        }
    }
}

/* Malformed run items and refs, written by hand after the sample header. */
static void
ri_text1(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 9);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_str(w, "\xc3\xa9", 2);
}
static void
ri_text0(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 9);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_str(w, "", 0);
}
static void
ri_text2(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 9);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_str(w, "ab", 2);
}
static void
ri_text_bin(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 9);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_bin(w, "ab", 2);
}
static void
ri_ins1(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 8);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_array(w, 1);
    shoal__mpw_uint(w, 1);
}
static void
ri_ins_text(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 8);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_array(w, 2);
    shoal__mpw_str(w, "a", 1);
    shoal__mpw_str(w, "b", 1);
}
static void
ri_ins_ok(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 8);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_array(w, 2);
    shoal__mpw_str(w, "a", 1);
    shoal__mpw_str(w, "bc", 2);
}
static void
ri_ins_notarr(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 8);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_uint(w, 2);
}
static void
ri_ins_short(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 8);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
}
static void
ri_del(shoal__mpw *w, int64_t ix, int64_t cnt, bool nilref)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 10);
    shoal__mpw_str(w, "l", 1);
    if (nilref) {
        shoal__mpw_nil(w);
    } else {
        shoal__mpw_array(w, 3);
        shoal__mpw_uint(w, 5);
        shoal__mpw_uint(w, 1);
        shoal__mpw_uint(w, (uint64_t)ix);
    }
    shoal__mpw_int(w, cnt);
}
static void
ri_del_ok(shoal__mpw *w)
{
    ri_del(w, 10, -3, false);
}
static void
ri_del_up_ok(shoal__mpw *w)
{
    ri_del(w, 10, 3, false);
}
static void
ri_del1(shoal__mpw *w)
{
    ri_del(w, 10, 1, false);
}
static void
ri_delm1(shoal__mpw *w)
{
    ri_del(w, 10, -1, false);
}
static void
ri_del0(shoal__mpw *w)
{
    ri_del(w, 10, 0, false);
}
static void
ri_del_nil(shoal__mpw *w)
{
    ri_del(w, 10, 2, true);
}
static void
ri_del_under(shoal__mpw *w)
{
    ri_del(w, 1, -3, false);
}
static void
ri_del_at0(shoal__mpw *w)
{
    ri_del(w, 2, -3, false);
}
static void
ri_del_over(shoal__mpw *w)
{
    ri_del(w, UINT32_MAX - 1, 3, false);
}
static void
ri_del_max(shoal__mpw *w)
{
    ri_del(w, UINT32_MAX - 2, 3, false);
}
static void
ri_del_huge(shoal__mpw *w)
{
    ri_del(w, 0, (int64_t)SHOAL__MAX_OPS + 1, false);
}
static void
ri_del_minneg(shoal__mpw *w)
{
    ri_del(w, 0, INT64_MIN, false);
}
static void
ri_del_total(shoal__mpw *w)
{
    /* Two runs whose sum is over SHOAL__MAX_OPS. */
    shoal__mpw_array(w, 2);
    for (int i = 0; i < 2; i++) {
        shoal__mpw_array(w, i ? 3 : 4); /* the second leaves the field out */
        shoal__mpw_uint(w, 10);
        if (!i)
            shoal__mpw_str(w, "l", 1);
        shoal__mpw_array(w, 3);
        shoal__mpw_uint(w, 5);
        shoal__mpw_uint(w, 1);
        shoal__mpw_uint(w, i ? 0 : 1u << 24);
        shoal__mpw_int(w, (int64_t)SHOAL__MAX_OPS / 2 + 1);
    }
}
/* Two single ops given as items that must have been one run. */
static void
ri_split(shoal__mpw *w, int what)
{
    shoal__mpw_array(w, 2);
    shoal__mpw_array(w, 4);
    shoal__mpw_uint(w, 4);
    shoal__mpw_str(w, "l", 1);
    shoal__mpw_nil(w);
    shoal__mpw_str(w, "a", 1);
    shoal__mpw_array(w, what == 1 ? 4 : 3);
    shoal__mpw_uint(w, what == 2 ? 9 : 4);
    if (what == 1)
        shoal__mpw_str(w, "l", 1); /* same field spelled out */
    shoal__mpw_int(w, -1);         /* after op 0: joins it */
    if (what == 2)
        shoal__mpw_str(w, "bc", 2);
    else
        shoal__mpw_str(w, "b", 1);
}
static void
ri_split_ins(shoal__mpw *w)
{
    ri_split(w, 0);
}
static void
ri_split_field(shoal__mpw *w)
{
    ri_split(w, 1);
}
static void
ri_split_text(shoal__mpw *w)
{
    ri_split(w, 2);
}
static void
ri_split_del(shoal__mpw *w, int64_t first_cnt, int64_t second_ix, int64_t second_cnt)
{
    shoal__mpw_array(w, 2);
    for (int i = 0; i < 2; i++) {
        int64_t cnt = i ? second_cnt : first_cnt;
        shoal__mpw_array(w, (cnt ? 4u : 3u) - (i ? 1u : 0u));
        shoal__mpw_uint(w, cnt ? 10 : 5);
        if (!i)
            shoal__mpw_str(w, "l", 1);
        shoal__mpw_array(w, 3);
        shoal__mpw_uint(w, 5);
        shoal__mpw_uint(w, 1);
        shoal__mpw_uint(w, (uint64_t)(i ? second_ix : 10));
        if (cnt)
            shoal__mpw_int(w, cnt);
    }
}
static void
ri_split_del1(shoal__mpw *w)
{
    ri_split_del(w, 0, 11, 0);
} /* 10, 11 */
static void
ri_split_del2(shoal__mpw *w)
{
    ri_split_del(w, 0, 9, 0);
} /* 10, 9 */
static void
ri_split_del3(shoal__mpw *w)
{
    ri_split_del(w, -2, 8, 0);
} /* 10 9, 8 */
static void
ri_split_del4(shoal__mpw *w)
{
    ri_split_del(w, 2, 12, -2);
} /* 10 11, 12 11 */
static void
ri_split_del_ok(shoal__mpw *w)
{
    ri_split_del(w, -2, 10, 2);
} /* 10 9, 10 11 */
static void
ri_split_del_ok2(shoal__mpw *w)
{
    ri_split_del(w, 0, 12, 0);
} /* 10, 12 */
/* DEL runs hold at most SHOAL__MAX_DELRUN ops; a full run may be followed
 * by an item that continues it, a shorter one may not. */
static void
ri_delrun_full(shoal__mpw *w)
{
    ri_split_del(w, SHOAL__MAX_DELRUN, 10 + SHOAL__MAX_DELRUN, 3);
} /* a full run from 10, then 3 more */
static void
ri_delrun_full_single(shoal__mpw *w)
{
    ri_split_del(w, SHOAL__MAX_DELRUN, 10 + SHOAL__MAX_DELRUN, 0);
} /* a full run from 10, then 1 more */
static void
ri_delrun_short_link(shoal__mpw *w)
{
    ri_split_del(w, SHOAL__MAX_DELRUN - 1, 9 + SHOAL__MAX_DELRUN, 0);
} /* one short of full, then 1 more */
static void
ri_delrun_cap(shoal__mpw *w)
{
    ri_del(w, 10, SHOAL__MAX_DELRUN, false);
}
static void
ri_delrun_over(shoal__mpw *w)
{
    ri_del(w, 10, SHOAL__MAX_DELRUN + 1, false);
}
static void
ri_delrun_over_down(shoal__mpw *w)
{
    ri_del(w, 1000, -(SHOAL__MAX_DELRUN + 1), false);
}
static void
ri_field(shoal__mpw *w, int what)
{
    shoal__mpw_array(w, 2);
    if (what == 0) {
        shoal__mpw_array(w, 1);
        shoal__mpw_uint(w, 7);
    } else {
        shoal__mpw_array(w, 2);
        shoal__mpw_uint(w, 2);
        shoal__mpw_str(w, "f", 1);
    }
    shoal__mpw_array(w, what == 2 ? 2 : 1);
    shoal__mpw_uint(w, 2);
    if (what == 2)
        shoal__mpw_str(w, "f", 1);
}
static void
ri_field_after_deldoc(shoal__mpw *w)
{
    ri_field(w, 0);
}
static void
ri_field_nil_ok(shoal__mpw *w)
{
    ri_field(w, 1);
}
static void
ri_field_repeated(shoal__mpw *w)
{
    ri_field(w, 2);
}
static void
ri_field_first_nil(shoal__mpw *w)
{
    shoal__mpw_array(w, 1);
    shoal__mpw_array(w, 1);
    shoal__mpw_uint(w, 2);
}
static void
ri_field_nil(shoal__mpw *w)
{
    shoal__mpw_array(w, 2);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_nil(w);
}
static void
ri_deldoc_short(shoal__mpw *w)
{
    shoal__mpw_array(w, 2);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_array(w, 0);
}
static void
ri_ref(shoal__mpw *w, int what)
{
    /* op 0: UNSET f; op 1: DEL l with the ref below. */
    shoal__mpw_array(w, 2);
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 2);
    shoal__mpw_str(w, "f", 1);
    shoal__mpw_array(w, 3);
    shoal__mpw_uint(w, 5);
    shoal__mpw_str(w, "l", 1);
    switch (what) {
    case 0: shoal__mpw_int(w, -1); break; /* op 0: fine */
    case 1: shoal__mpw_int(w, -2); break; /* before op 0 */
    case 2: shoal__mpw_uint(w, 0); break; /* as long as -1: must be -1 */
    case 3: shoal__mpw_uint(w, 1); break;
    case 4: shoal__mpw_int(w, INT64_MIN); break;
    case 5: /* own op in the long form */
        shoal__mpw_array(w, 3);
        shoal__mpw_uint(w, shoal__hlc_make(1700000000000ull, 3));
        shoal__mpw_uint(w, 0);
        shoal__mpw_uint(w, 0);
        break;
    case 6: /* same hlc, other author: fine */
        shoal__mpw_array(w, 3);
        shoal__mpw_uint(w, shoal__hlc_make(1700000000000ull, 3));
        shoal__mpw_uint(w, 1);
        shoal__mpw_uint(w, 0);
        break;
    }
}
/* 200 DEL ops (192 in full runs of SHOAL__MAX_DELRUN and one run of 8),
 * then a DEL of op 5: index 5 (1 byte) is shorter than -195 (3 bytes). */
static void
ri_ref_far(shoal__mpw *w, bool as_index)
{
    const int nfull = 192 / SHOAL__MAX_DELRUN;
    shoal__mpw_array(w, (uint32_t)nfull + 2);
    for (int k = 0; k <= nfull; k++) {
        shoal__mpw_array(w, k ? 3 : 4);
        shoal__mpw_uint(w, 10);
        if (!k)
            shoal__mpw_str(w, "l", 1);
        shoal__mpw_array(w, 3);
        shoal__mpw_uint(w, 5);
        shoal__mpw_uint(w, 1);
        shoal__mpw_uint(w, 300 - (uint64_t)k * SHOAL__MAX_DELRUN);
        shoal__mpw_int(w, k < nfull ? -(int64_t)SHOAL__MAX_DELRUN : -8);
    }
    shoal__mpw_array(w, 2);
    shoal__mpw_uint(w, 5);
    if (as_index)
        shoal__mpw_uint(w, 5);
    else
        shoal__mpw_int(w, -195);
}
static void
ri_ref_far_index(shoal__mpw *w)
{
    ri_ref_far(w, true);
}
static void
ri_ref_far_neg(shoal__mpw *w)
{
    ri_ref_far(w, false);
}
static void
ri_ref_ok(shoal__mpw *w)
{
    ri_ref(w, 0);
}
static void
ri_ref_before(shoal__mpw *w)
{
    ri_ref(w, 1);
}
static void
ri_ref_zero(shoal__mpw *w)
{
    ri_ref(w, 2);
}
static void
ri_ref_pos(shoal__mpw *w)
{
    ri_ref(w, 3);
}
static void
ri_ref_min(shoal__mpw *w)
{
    ri_ref(w, 4);
}
static void
ri_ref_own_long(shoal__mpw *w)
{
    ri_ref(w, 5);
}
static void
ri_ref_other_ok(shoal__mpw *w)
{
    ri_ref(w, 6);
}

static void
test_change_runs_malformed(void)
{
    sample s;
    sample_init(&s, false);
    struct {
        raw_fn fn;
        int err;
        const char *what;
    } cases[] = {
        { ri_text2, SHOAL_OK, "TEXT run of 2" },
        { ri_text1, SHOAL_EPROTO, "TEXT run of 1 code point" },
        { ri_text0, SHOAL_EPROTO, "TEXT run of 0" },
        { ri_text_bin, SHOAL_EPROTO, "TEXT run of bin" },
        { ri_ins_ok, SHOAL_OK, "INS run of 2" },
        { ri_ins1, SHOAL_EPROTO, "INS run of 1" },
        { ri_ins_text, SHOAL_EPROTO, "INS run of code points" },
        { ri_ins_notarr, SHOAL_EPROTO, "INS run values not an array" },
        { ri_ins_short, SHOAL_EPROTO, "INS run of 3 items" },
        { ri_del_ok, SHOAL_OK, "DEL run down" },
        { ri_del_up_ok, SHOAL_OK, "DEL run up" },
        { ri_del1, SHOAL_EPROTO, "DEL run of 1" },
        { ri_delm1, SHOAL_EPROTO, "DEL run of -1" },
        { ri_del0, SHOAL_EPROTO, "DEL run of 0" },
        { ri_del_nil, SHOAL_EPROTO, "DEL run at the head" },
        { ri_del_under, SHOAL_EPROTO, "DEL run below index 0" },
        { ri_del_at0, SHOAL_OK, "DEL run down to index 0" },
        { ri_del_over, SHOAL_EPROTO, "DEL run past 2^32" },
        { ri_del_max, SHOAL_OK, "DEL run up to 2^32-1" },
        { ri_del_huge, SHOAL_ETOOBIG, "DEL run over MAX_OPS" },
        { ri_del_minneg, SHOAL_ETOOBIG, "DEL run INT64_MIN" },
        { ri_del_total, SHOAL_ETOOBIG, "runs over MAX_OPS" },
        { ri_split_ins, SHOAL_EPROTO, "INS, INS after it" },
        { ri_split_field, SHOAL_EPROTO, "same field spelled out" },
        { ri_split_text, SHOAL_EPROTO, "INS, TEXT run after it" },
        { ri_split_del1, SHOAL_EPROTO, "DEL 10, DEL 11" },
        { ri_split_del2, SHOAL_EPROTO, "DEL 10, DEL 9" },
        { ri_split_del3, SHOAL_EPROTO, "DEL run 10 9, DEL 8" },
        { ri_split_del4, SHOAL_EPROTO, "DEL run 10 11, run 12 11" },
        { ri_split_del_ok, SHOAL_OK, "DEL run 10 9, run 10 11" },
        { ri_split_del_ok2, SHOAL_OK, "DEL 10, DEL 12" },
        { ri_delrun_full, SHOAL_OK, "full DEL run, run continuing it" },
        { ri_delrun_full_single, SHOAL_OK, "full DEL run, DEL continuing it" },
        { ri_delrun_short_link, SHOAL_EPROTO, "DEL run one short of full, DEL continuing it" },
        { ri_delrun_cap, SHOAL_OK, "DEL run of MAX_DELRUN" },
        { ri_delrun_over, SHOAL_ETOOBIG, "DEL run of MAX_DELRUN + 1" },
        { ri_delrun_over_down, SHOAL_ETOOBIG, "DEL run of -(MAX_DELRUN + 1)" },
        { ri_field_after_deldoc, SHOAL_EPROTO, "field left out after DELDOC" },
        { ri_field_nil_ok, SHOAL_OK, "field left out" },
        { ri_field_repeated, SHOAL_EPROTO, "field repeated" },
        { ri_field_first_nil, SHOAL_EPROTO, "field left out first" },
        { ri_field_nil, SHOAL_EPROTO, "nil field" },
        { ri_deldoc_short, SHOAL_EPROTO, "empty item after a field" },
        { ri_ref_ok, SHOAL_OK, "own ref -1" },
        { ri_ref_far_index, SHOAL_OK, "own ref by index, shorter" },
        { ri_ref_far_neg, SHOAL_EPROTO, "own ref -d, longer than the index" },
        { ri_ref_before, SHOAL_EPROTO, "own ref before op 0" },
        { ri_ref_zero, SHOAL_EPROTO, "ref 0" },
        { ri_ref_pos, SHOAL_EPROTO, "ref 1" },
        { ri_ref_min, SHOAL_EPROTO, "ref INT64_MIN" },
        { ri_ref_own_long, SHOAL_EPROTO, "own ref, long form" },
        { ri_ref_other_ok, SHOAL_OK, "same hlc, other author" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int err = decode_wrong(&s.c, 8, -1, NULL, cases[i].fn);
        if (err != cases[i].err)
            fprintf(stderr, "case %s: got %d\n", cases[i].what, err);
        CHECK_EQ(err, cases[i].err);
    }
    /* A decoded TEXT run: values point at each code point. */
    shoal__buf b;
    shoal__buf_init(&b);
    raw_body(&b, &s.c, 8, -1, NULL, ri_text2);
    shoal__change d;
    REQUIRE(decode(b.p, b.len, &d) == SHOAL_OK);
    CHECK_EQ(d.nops, 2);
    CHECK(d.ops[0].kind == SHOAL__OP_INS && d.ops[0].ref.head);
    CHECK(d.ops[1].kind == SHOAL__OP_INS && !d.ops[1].ref.head && d.ops[1].ref.author == 0 &&
          d.ops[1].ref.hlc == d.hlc && d.ops[1].ref.index == 0);
    CHECK(d.ops[1].value.type == SHOAL_T_STR && d.ops[1].value.len == 1 &&
          d.ops[1].value.ptr[0] == 'b');
    shoal__change_clear(&d);
    raw_body(&b, &s.c, 8, -1, NULL, ri_del_ok);
    REQUIRE(decode(b.p, b.len, &d) == SHOAL_OK);
    CHECK_EQ(d.nops, 3);
    CHECK(d.nops == 3 && d.ops[2].kind == SHOAL__OP_DEL && d.ops[2].ref.index == 8 &&
          d.ops[2].ref.hlc == 5 && d.ops[2].ref.author == 1);
    shoal__change_clear(&d);
    shoal__buf_free(&b);
}

/* Oversized declared counts fail before anything is allocated. */
static void
test_change_huge_counts(void)
{
    shoal__change d;
    /* 4 billion items declared in a 34-byte input. */
    uint8_t in[34];
    memset(in, 0xc0, sizeof in);
    in[0] = 0xdd;
    in[1] = in[2] = in[3] = in[4] = 0xff;
    shoal__alloc_fail_after(1); /* any allocation would now fail */
    CHECK_EQ(decode(in, sizeof in, &d), SHOAL_ETRUNC);
    void *probe = shoal__malloc(1);
    CHECK(probe == NULL); /* the armed failure was not consumed */
    shoal__alloc_fail_after(0);
    shoal__free(probe);

    /* Deps and authors counts beyond their bounds or the bytes left. */
    sample s;
    sample_init(&s, false);
    shoal__buf b;
    shoal__buf_init(&b);
    raw_body(&b, &s.c, 8, -1, NULL, NULL);
    /* Sample body: 98 | 07 | cf hlc(9) | 93 deps... */
    REQUIRE(b.p[0] == 0x98 && b.p[1] == 0x07 && b.p[2] == 0xcf && b.p[11] == 0x93);
    uint8_t *m = malloc(b.len + 4);
    REQUIRE(m);
    /* deps array16 declaring 1024 (the bound) in far fewer bytes: ETRUNC. */
    memcpy(m, b.p, 11);
    m[11] = 0xdc;
    m[12] = 0x04;
    m[13] = 0x00;
    memcpy(m + 14, b.p + 12, b.len - 12);
    shoal__alloc_fail_after(1);
    CHECK_EQ(decode(m, b.len + 2, &d), SHOAL_ETRUNC);
    probe = shoal__malloc(1);
    CHECK(probe == NULL);
    shoal__alloc_fail_after(0);
    /* 1025 deps: over the bound. */
    m[12] = 0x04;
    m[13] = 0x01;
    CHECK_EQ(decode(m, b.len + 2, &d), SHOAL_ETOOBIG);
    /* array32 of 4 billion deps. */
    memcpy(m, b.p, 11);
    m[11] = 0xdd;
    m[12] = m[13] = m[14] = m[15] = 0xff;
    memcpy(m + 16, b.p + 12, b.len - 12);
    CHECK_EQ(decode(m, b.len + 4, &d), SHOAL_ETOOBIG);
    free(m);
    shoal__buf_free(&b);
}

static void
test_change_truncation(void)
{
    sample s;
    sample_init(&s, false);
    shoal__buf b;
    shoal__buf_init(&b);
    REQUIRE(shoal__change_encode(&s.c, &b) == SHOAL_OK);
    for (size_t n = 0; n < b.len; n++) {
        /* A fresh copy of exactly n bytes, so ASan sees any over-read. */
        uint8_t *p = malloc(n ? n : 1);
        REQUIRE(p);
        memcpy(p, b.p, n);
        shoal__change d;
        int err = decode(p, n, &d);
        if (err != SHOAL_ETRUNC)
            fprintf(stderr, "prefix %zu: %d\n", n, err);
        CHECK_EQ(err, SHOAL_ETRUNC);
        free(p);
    }
    /* Trailing garbage. */
    REQUIRE(shoal__buf_append(&b, "\xc0", 1) == SHOAL_OK);
    shoal__change d;
    CHECK_EQ(decode(b.p, b.len, &d), SHOAL_EPROTO);
    shoal__buf_free(&b);
}

static void
test_change_oom(void)
{
    sample s;
    sample_init(&s, false);
    shoal__buf b;
    shoal__buf_init(&b);
    REQUIRE(shoal__change_encode(&s.c, &b) == SHOAL_OK);
    int err = SHOAL_ENOMEM;
    for (uint64_t n = 1; n < 100 && err == SHOAL_ENOMEM; n++) {
        shoal__change d;
        shoal__alloc_fail_after(n);
        err = decode(b.p, b.len, &d);
        shoal__alloc_fail_after(0);
        CHECK(err == SHOAL_OK || err == SHOAL_ENOMEM);
        if (!err) {
            CHECK(change_eq(&s.c, &d));
            shoal__change_clear(&d);
        }
    }
    CHECK_EQ(err, SHOAL_OK);
    err = SHOAL_ENOMEM;
    for (uint64_t n = 1; n < 100 && err == SHOAL_ENOMEM; n++) {
        shoal__buf e;
        shoal__buf_init(&e);
        shoal__alloc_fail_after(n);
        err = shoal__change_encode(&s.c, &e);
        shoal__alloc_fail_after(0);
        CHECK(err == SHOAL_OK || err == SHOAL_ENOMEM);
        if (!err)
            CHECK(e.len == b.len && memcmp(e.p, b.p, b.len) == 0);
        else
            CHECK_EQ(e.len, 0);
        shoal__buf_free(&e);
    }
    CHECK_EQ(err, SHOAL_OK);
    shoal__buf_free(&b);
}

static void
test_change_accessors(void)
{
    sample s;
    sample_init(&s, false);
    CHECK(shoal__change_author(&s.c, 0) == s.c.author);
    CHECK(shoal__change_author(&s.c, 1) == s.authors);
    CHECK(shoal__change_author(&s.c, 2) == s.authors + 32);
    CHECK(shoal__change_author(&s.c, 3) == NULL);
    shoal__opid id = shoal__change_opid(&s.c, 5);
    CHECK(id.hlc == s.c.hlc);
    CHECK(id.author == s.c.author);
    CHECK_EQ(id.index, 5);
}

/* -------------------------------------------------------------- envelopes */

static void
seal_sample(shoal__buf *env, shoal__buf *body)
{
    sample s;
    sample_init(&s, false);
    body->len = 0;
    env->len = 0;
    if (shoal__change_encode(&s.c, body) ||
        shoal__envelope_seal(body->p, body->len, pk_a, sk_a, env))
        abort();
}

static void
test_envelope_roundtrip(void)
{
    shoal__buf env, body;
    shoal__buf_init(&env);
    shoal__buf_init(&body);
    seal_sample(&env, &body);
    CHECK_EQ(env.len, SHOAL__ENV_HEADER + body.len + SHOAL__SIG_BYTES);
    CHECK_EQ(env.p[0], 1);
    CHECK(memcmp(env.p + 1, pk_a, 32) == 0);
    CHECK_EQ(shoal__be32_get(env.p + 33), body.len);
    CHECK(memcmp(env.p + 37, body.p, body.len) == 0);
    CHECK(shoal__envelope_author(env.p) == env.p + 1);

    /* The signature is plain Ed25519 over the context and the header+body. */
    {
        size_t ml = 16 + env.len - 64;
        uint8_t *msg = malloc(ml);
        REQUIRE(msg);
        memcpy(msg, "shoal-change-v1", 16);
        memcpy(msg + 16, env.p, env.len - 64);
        CHECK_EQ(crypto_sign_verify_detached(env.p + env.len - 64, msg, ml, pk_a), 0);
        free(msg);
    }

    size_t el = 0, bl = 0;
    const uint8_t *bp = NULL;
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
    CHECK_EQ(el, env.len);
    CHECK(bp == env.p + SHOAL__ENV_HEADER);
    CHECK_EQ(bl, body.len);
    CHECK_EQ(shoal__envelope_parse(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
    CHECK_EQ(el, env.len);

    /* Decoding the opened body gives the change back. */
    shoal__change d;
    memset(&d, 0, sizeof d);
    memcpy(d.author, shoal__envelope_author(env.p), 32);
    CHECK_EQ(shoal__change_decode(bp, bl, &d), SHOAL_OK);
    shoal__change_clear(&d);

    /* Change id: BLAKE2b-256 of everything but the signature. */
    uint8_t id[32], want[32];
    shoal__change_id(env.p, env.len, id);
    crypto_generichash(want, 32, env.p, env.len - 64, NULL, 0);
    CHECK(memcmp(id, want, 32) == 0);
    /* Sealing is deterministic (Ed25519), so the id is too; another body
     * gives another id. */
    shoal__buf env2;
    shoal__buf_init(&env2);
    REQUIRE(shoal__envelope_seal(body.p, body.len, pk_a, sk_a, &env2) == SHOAL_OK);
    CHECK(env2.len == env.len && memcmp(env2.p, env.p, env.len) == 0);
    env2.len = 0;
    body.p[1] ^= 1;
    REQUIRE(shoal__envelope_seal(body.p, body.len, pk_a, sk_a, &env2) == SHOAL_OK);
    shoal__change_id(env2.p, env2.len, want);
    CHECK(memcmp(id, want, 32) != 0);

    /* Trailing bytes after an envelope are the caller's business. */
    REQUIRE(shoal__buf_append(&env, "zz", 2) == SHOAL_OK);
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
    CHECK_EQ(el, env.len - 2);

    /* Empty body and a body larger than the stack buffer. */
    env.len = 0;
    REQUIRE(shoal__envelope_seal(NULL, 0, pk_b, sk_b, &env) == SHOAL_OK);
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
    CHECK_EQ(bl, 0);
    uint8_t *big = calloc(1, 100000);
    REQUIRE(big);
    env.len = 0;
    REQUIRE(shoal__envelope_seal(big, 100000, pk_b, sk_b, &env) == SHOAL_OK);
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
    CHECK_EQ(bl, 100000);
    env.p[50000] ^= 0x40;
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_EBADSIG);
    CHECK_EQ(shoal__envelope_parse(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
    /* Sealing appends: a second envelope after the first. */
    size_t first = env.len;
    REQUIRE(shoal__envelope_seal(big, 10, pk_a, sk_a, &env) == SHOAL_OK);
    CHECK_EQ(shoal__envelope_open(env.p + first, env.len - first, &el, &bp, &bl), SHOAL_OK);
    free(big);

    /* Limits and key mismatch. */
    CHECK_EQ(shoal__envelope_seal(body.p, SHOAL__MAX_BODY + 1, pk_a, sk_a, &env), SHOAL_ETOOBIG);
    CHECK_EQ(shoal__envelope_seal(body.p, body.len, pk_b, sk_a, &env), SHOAL_EINVAL);

    shoal__buf_free(&env);
    shoal__buf_free(&env2);
    shoal__buf_free(&body);
}

static void
test_envelope_hostile(void)
{
    shoal__buf env, body;
    shoal__buf_init(&env);
    shoal__buf_init(&body);
    seal_sample(&env, &body);
    size_t el, bl;
    const uint8_t *bp;

    /* Truncation at every offset. */
    for (size_t n = 0; n < env.len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        REQUIRE(p);
        memcpy(p, env.p, n);
        CHECK_EQ(shoal__envelope_open(p, n, &el, &bp, &bl), SHOAL_ETRUNC);
        CHECK_EQ(shoal__envelope_parse(p, n, &el, &bp, &bl), SHOAL_ETRUNC);
        free(p);
    }

    /* A flipped byte at every offset. */
    for (size_t i = 0; i < env.len; i++) {
        env.p[i] ^= 0x01;
        int err = shoal__envelope_open(env.p, env.len, &el, &bp, &bl);
        if (i == 0)
            CHECK_EQ(err, SHOAL_EVERSION);
        else if (i >= 33 && i < 37)
            CHECK(err == SHOAL_ETRUNC || err == SHOAL_ETOOBIG || err == SHOAL_EBADSIG);
        else
            CHECK_EQ(err, SHOAL_EBADSIG);
        env.p[i] ^= 0x01;
    }
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_OK);

    /* Versions. */
    env.p[0] = 0;
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_EVERSION);
    env.p[0] = 3;
    CHECK_EQ(shoal__envelope_parse(env.p, env.len, &el, &bp, &bl), SHOAL_EVERSION);
    CHECK_EQ(shoal__envelope_parse(env.p, 1, &el, &bp, &bl), SHOAL_EVERSION);
    /* Version 2 is known, but its signature context differs: a version-1
     * signature does not verify as version 2. */
    env.p[0] = 2;
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_EBADSIG);
    env.p[0] = 1;

    /* Declared body length: larger than the input, over the bound. */
    uint8_t hdr[SHOAL__ENV_HEADER + 64];
    memcpy(hdr, env.p, sizeof hdr);
    shoal__be32_put(hdr + 33, 0xffffffffu);
    CHECK_EQ(shoal__envelope_open(hdr, sizeof hdr, &el, &bp, &bl), SHOAL_ETOOBIG);
    shoal__be32_put(hdr + 33, SHOAL__MAX_BODY);
    CHECK_EQ(shoal__envelope_open(hdr, sizeof hdr, &el, &bp, &bl), SHOAL_ETRUNC);
    shoal__be32_put(hdr + 33, 0);
    CHECK_EQ(shoal__envelope_open(hdr, sizeof hdr, &el, &bp, &bl), SHOAL_EBADSIG);
    CHECK_EQ(shoal__envelope_parse(hdr, sizeof hdr, &el, &bp, &bl), SHOAL_OK);

    /* Forged signature, wrong key. */
    shoal__buf forged;
    shoal__buf_init(&forged);
    REQUIRE(shoal__buf_append(&forged, env.p, env.len) == SHOAL_OK);
    for (int i = 0; i < 64; i++)
        forged.p[forged.len - 64 + i] = (uint8_t)check_rand();
    CHECK_EQ(shoal__envelope_open(forged.p, forged.len, &el, &bp, &bl), SHOAL_EBADSIG);
    memset(forged.p + forged.len - 64, 0, 64);
    CHECK_EQ(shoal__envelope_open(forged.p, forged.len, &el, &bp, &bl), SHOAL_EBADSIG);
    /* Signed by B but claiming to be A (and the other way round). */
    forged.len = 0;
    REQUIRE(shoal__envelope_seal(body.p, body.len, pk_b, sk_b, &forged) == SHOAL_OK);
    CHECK_EQ(shoal__envelope_open(forged.p, forged.len, &el, &bp, &bl), SHOAL_OK);
    memcpy(forged.p + 1, pk_a, 32);
    CHECK_EQ(shoal__envelope_open(forged.p, forged.len, &el, &bp, &bl), SHOAL_EBADSIG);
    /* The signature covers the context: a plain signature of the same bytes
     * (no context) does not verify. */
    crypto_sign_detached(env.p + env.len - 64, NULL, env.p, env.len - 64, sk_a);
    CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_EBADSIG);
    /* An all-zero (small-order) author key. */
    memset(forged.p + 1, 0, 32);
    CHECK_EQ(shoal__envelope_open(forged.p, forged.len, &el, &bp, &bl), SHOAL_EBADSIG);
    shoal__buf_free(&forged);
    shoal__buf_free(&env);
    shoal__buf_free(&body);
}

/* ----------------------------------------------------------------- bundles */

static void
make_bundle(shoal__buf *out, int n, shoal__buf *envs)
{
    out->len = 0;
    if (shoal__bundle_begin(out))
        abort();
    for (int i = 0; i < n; i++) {
        sample s;
        sample_init(&s, false);
        s.c.seq = (uint64_t)i + 1;
        shoal__buf body;
        shoal__buf_init(&body);
        envs[i].len = 0;
        if (shoal__change_encode(&s.c, &body) ||
            shoal__envelope_seal(body.p, body.len, i % 2 ? pk_b : pk_a, i % 2 ? sk_b : sk_a,
                                 &envs[i]) ||
            shoal__bundle_add(out, envs[i].p, envs[i].len))
            abort();
        shoal__buf_free(&body);
    }
    shoal__bundle_finish(out, (uint32_t)n);
}

static void
test_bundle(void)
{
    shoal__buf b, envs[3];
    shoal__buf_init(&b);
    for (int i = 0; i < 3; i++)
        shoal__buf_init(&envs[i]);
    shoal__span *sp;
    size_t cnt;

    /* Empty bundle. */
    make_bundle(&b, 0, envs);
    CHECK_EQ(b.len, 12);
    CHECK(memcmp(b.p, "SHOALBN1\0\0\0\0", 12) == 0);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_OK);
    CHECK(sp == NULL);
    CHECK_EQ(cnt, 0);

    /* Three changes. */
    make_bundle(&b, 3, envs);
    CHECK_EQ(shoal__be32_get(b.p + 8), 3);
    REQUIRE(shoal__bundle_split(b.p, b.len, &sp, &cnt) == SHOAL_OK);
    CHECK_EQ(cnt, 3);
    size_t off = 12;
    for (size_t i = 0; i < cnt && i < 3; i++) {
        CHECK_EQ(sp[i].off, off);
        CHECK_EQ(sp[i].len, envs[i].len);
        CHECK(memcmp(b.p + sp[i].off, envs[i].p, envs[i].len) == 0);
        off += sp[i].len;
    }
    shoal__free(sp);

    /* begin needs an empty buffer. */
    CHECK_EQ(shoal__bundle_begin(&b), SHOAL_EINVAL);

    /* Magic and version. */
    b.p[0] = 'X';
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EPROTO);
    CHECK(sp == NULL && cnt == 0);
    b.p[0] = 'S';
    b.p[7] = '3';
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EVERSION);
    b.p[7] = '0';
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EVERSION);
    b.p[7] = 'x';
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EPROTO);
    b.p[7] = '1';
    CHECK_EQ(shoal__bundle_split((const uint8_t *)"SHOXL", 5, &sp, &cnt), SHOAL_EPROTO);
    CHECK_EQ(shoal__bundle_split((const uint8_t *)"SHOAL", 5, &sp, &cnt), SHOAL_ETRUNC);
    CHECK_EQ(shoal__bundle_split((const uint8_t *)"", 0, &sp, &cnt), SHOAL_ETRUNC);

    /* The header alone (shared by split and core's import): the count
     * limit and the truncation bound at their edges. */
    {
        uint8_t h[SHOAL__BUNDLE_HEADER + 2 * SHOAL__ENV_MIN];
        memset(h, 0, sizeof h);
        memcpy(h, b.p, 8);
        uint32_t hc = 7;
        CHECK_EQ(shoal__bundle_header(h, 7, &hc), SHOAL_ETRUNC);
        CHECK(hc == 0);
        h[7] = '9';
        CHECK_EQ(shoal__bundle_header(h, 8, &hc), SHOAL_EVERSION);
        h[7] = '1';
        CHECK_EQ(shoal__bundle_header(h, 8, &hc), SHOAL_ETRUNC);
        shoal__be32_put(h + 8, 2);
        CHECK_EQ(shoal__bundle_header(h, sizeof h, &hc), SHOAL_OK);
        CHECK(hc == 2);
        CHECK_EQ(shoal__bundle_header(h, sizeof h - 1, &hc), SHOAL_ETRUNC);
        CHECK(hc == 0);
        shoal__be32_put(h + 8, SHOAL__MAX_BUNDLE_CHANGES);
        CHECK_EQ(shoal__bundle_header(h, sizeof h, &hc), SHOAL_ETRUNC);
        shoal__be32_put(h + 8, SHOAL__MAX_BUNDLE_CHANGES + 1);
        CHECK_EQ(shoal__bundle_header(h, sizeof h, &hc), SHOAL_ETOOBIG);
    }

    /* Truncated at every offset. */
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        REQUIRE(p);
        memcpy(p, b.p, n);
        int err = shoal__bundle_split(p, n, &sp, &cnt);
        CHECK(err == SHOAL_ETRUNC);
        CHECK(sp == NULL && cnt == 0);
        free(p);
    }

    /* Trailing bytes; count too small (leaves trailing bytes); too big. */
    REQUIRE(shoal__buf_append(&b, "\0", 1) == SHOAL_OK);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EPROTO);
    b.len--;
    shoal__be32_put(b.p + 8, 2);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EPROTO);
    shoal__be32_put(b.p + 8, 4);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_ETRUNC);
    /* Huge counts fail before allocating. */
    shoal__be32_put(b.p + 8, 0xffffffffu);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_ETOOBIG);
    shoal__be32_put(b.p + 8, 1000);
    shoal__alloc_fail_after(1);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_ETRUNC);
    void *probe = shoal__malloc(1);
    CHECK(probe == NULL);
    shoal__alloc_fail_after(0);
    shoal__be32_put(b.p + 8, 3);

    /* One bad change among good ones: the whole bundle is rejected. */
    size_t mid = 12 + envs[0].len + SHOAL__ENV_HEADER + 3; /* inside the 2nd body */
    b.p[mid] ^= 0x80;
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EBADSIG);
    CHECK(sp == NULL && cnt == 0);
    b.p[mid] ^= 0x80;
    b.p[b.len - 1] ^= 0x01; /* last signature */
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EBADSIG);
    b.p[b.len - 1] ^= 0x01;
    b.p[12 + envs[0].len] = 9; /* 2nd envelope: unknown version */
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_EVERSION);
    b.p[12 + envs[0].len] = 1;

    /* OOM: the span array. */
    shoal__alloc_fail_after(1);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_ENOMEM);
    shoal__alloc_fail_after(0);
    CHECK_EQ(shoal__bundle_split(b.p, b.len, &sp, &cnt), SHOAL_OK);
    shoal__free(sp);

    shoal__buf_free(&b);
    for (int i = 0; i < 3; i++)
        shoal__buf_free(&envs[i]);
}

/* ------------------------------------------------------- random mutation */

static void
mutate(uint8_t *p, size_t *n, size_t cap)
{
    static const uint8_t special[] = { 0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xc4, 0xca, 0xcb,
                                       0xcc, 0xcf, 0xd0, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd,
                                       0xdf, 0xff, 0x90, 0x9f, 0xa0, 0xbf };
    int k = 1 + (int)check_rand_below(3);
    for (int j = 0; j<k && * n> 0; j++) {
        size_t at = check_rand_below(*n);
        switch (check_rand_below(6)) {
        case 0: p[at] ^= (uint8_t)(1u << check_rand_below(8)); break;
        case 1: p[at] = (uint8_t)check_rand(); break;
        case 2: p[at] = special[check_rand_below(sizeof special)]; break;
        case 3: *n = at; break; /* truncate */
        case 4:                 /* delete */
            memmove(p + at, p + at + 1, *n - at - 1);
            (*n)--;
            break;
        default: /* insert */
            if (*n < cap) {
                memmove(p + at + 1, p + at, *n - at);
                p[at] = special[check_rand_below(sizeof special)];
                (*n)++;
            }
            break;
        }
    }
}

static void
test_mutation_fuzz(void)
{
    long iters = check_env_long("SHOAL_FUZZ_ITERS", 4000);
    shoal__buf body, env, re;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    shoal__buf_init(&re);
    seal_sample(&env, &body);
    size_t cap = body.len + 16;
    uint8_t *m = malloc(cap);
    REQUIRE(m);
    long ok = 0, counts[32] = { 0 };
    for (long it = 0; it < iters; it++) {
        size_t n = body.len;
        memcpy(m, body.p, n);
        mutate(m, &n, cap);
        uint8_t *exact = malloc(n ? n : 1); /* exact size for ASan */
        REQUIRE(exact);
        memcpy(exact, m, n);
        shoal__change d;
        int err = decode(exact, n, &d);
        counts[err & 31]++;
        CHECK(err == SHOAL_OK || err == SHOAL_ETRUNC || err == SHOAL_EPROTO ||
              err == SHOAL_ETOOBIG);
        if (!err) {
            ok++;
            re.len = 0;
            int e2 = shoal__change_encode(&d, &re);
            CHECK_EQ(e2, SHOAL_OK);
            CHECK(re.len == n && memcmp(re.p, exact, n) == 0);
            shoal__change_clear(&d);
        }
        free(exact);
        if (check_failures) {
            fprintf(stderr, "mutant %ld failed\n", it);
            break;
        }
    }
    printf("  body mutants: %ld ok, %ld etrunc, %ld eproto, %ld etoobig\n", ok,
           counts[SHOAL_ETRUNC], counts[SHOAL_EPROTO], counts[SHOAL_ETOOBIG]);
    free(m);

    /* Envelope mutants: never accepted unless the envelope is unchanged. */
    cap = env.len + 16;
    m = malloc(cap);
    REQUIRE(m);
    for (long it = 0; it < iters / 4; it++) {
        size_t n = env.len, el, bl;
        const uint8_t *bp;
        memcpy(m, env.p, n);
        mutate(m, &n, cap);
        int err = shoal__envelope_open(m, n, &el, &bp, &bl);
        CHECK(err == SHOAL_OK || err == SHOAL_ETRUNC || err == SHOAL_EVERSION ||
              err == SHOAL_ETOOBIG || err == SHOAL_EBADSIG);
        if (!err)
            CHECK(el == env.len && memcmp(m, env.p, el) == 0);
        if (check_failures)
            break;
    }
    free(m);
    shoal__buf_free(&body);
    shoal__buf_free(&env);
    shoal__buf_free(&re);
}

/* Format version 2: the auth item, the version byte and signature
 * context that follow it, and the agreement of body and envelope. */

/* ------------------------------------------------------- sealed groups */

/* Read classes for the sealed tests: cost and note class 1, secret, txt
 * and lst class 2, anything else in clear. */
static uint8_t
test_class(const uint8_t *f, size_t n, void *arg)
{
    (void)arg;
    if ((n == 4 && memcmp(f, "cost", 4) == 0) || (n == 4 && memcmp(f, "note", 4) == 0))
        return 1;
    if ((n == 6 && memcmp(f, "secret", 6) == 0) || (n == 3 && memcmp(f, "txt", 3) == 0) ||
        (n == 3 && memcmp(f, "lst", 3) == 0))
        return 2;
    return 0;
}

typedef struct sealed_fix {
    shoal__change c;
    shoal__op ops[10];
    uint8_t commits[2 * 32];
    shoal__buf groups[2];
} sealed_fix;

/* A change with every sealed item kind, its two groups and their
 * commitments. */
static void
sealed_init(sealed_fix *x)
{
    memset(x, 0, sizeof *x);
    shoal__change *c = &x->c;
    memcpy(c->author, pk_a, 32);
    c->seq = 3;
    c->hlc = 1000;
    c->coll = (const uint8_t *)"p";
    c->coll_len = 1;
    c->doc = (const uint8_t *)"d";
    c->doc_len = 1;
    c->version = SHOAL__FORMAT_V2;
    shoal__op *o = x->ops;
    o[0] = op_field(SHOAL__OP_SET, "name");
    o[0].value = v_bytes(SHOAL_T_STR, "tea", 3);
    o[1] = op_field(SHOAL__OP_SET, "cost");
    o[1].value = v_int(12);
    o[2] = op_field(SHOAL__OP_UNSET, "note");
    o[3] = op_field(SHOAL__OP_COUNT, "secret");
    o[3].delta = -4;
    for (int i = 4; i < 7; i++) { /* a linked run "abc" */
        o[i] = op_field(SHOAL__OP_INS, "txt");
        o[i].value = v_bytes(SHOAL_T_STR, "abc" + (i - 4), 1);
        o[i].ref = i == 4 ? (shoal__ref){ true, 0, 0, 0 } : mkref(1000, 0, (uint32_t)i - 1);
    }
    o[7] = op_field(SHOAL__OP_INS, "lst");
    o[7].value = v_dbl(2.5);
    o[7].ref = mkref(900, 0, 1);
    o[8] = op_field(SHOAL__OP_REP, "lst");
    o[8].value = v_bool(true);
    o[8].ref = mkref(900, 0, 1);
    o[9] = op_field(SHOAL__OP_DEL, "lst"); /* no value: never sealed */
    o[9].ref = mkref(900, 0, 2);
    for (int i = 1; i < 9; i++)
        o[i].sealed = true;
    c->ops = o;
    c->nops = 10;
    uint8_t salt[SHOAL__SALT_BYTES];
    for (int g = 0; g < 2; g++) {
        memset(salt, 0x51 + g, sizeof salt);
        shoal__buf_init(&x->groups[g]);
        REQUIRE(shoal__seal_group(c, (uint8_t)(g + 1), salt, test_class, NULL, &x->groups[g]) ==
                SHOAL_OK);
        shoal__seal_commit(x->groups[g].p, x->groups[g].len, x->commits + g * 32);
        c->seal_class[g] = (uint8_t)(g + 1);
    }
    c->nseals = 2;
    c->seal_commit = x->commits;
}

static void
sealed_free(sealed_fix *x)
{
    shoal__buf_free(&x->groups[0]);
    shoal__buf_free(&x->groups[1]);
}

static void
test_sealed(void)
{
    sealed_fix x;
    sealed_init(&x);
    shoal__buf b, b2;
    shoal__buf_init(&b);
    shoal__buf_init(&b2);
    REQUIRE(shoal__change_encode(&x.c, &b) == SHOAL_OK);
    CHECK_EQ(b.p[0], 0x9a); /* 10 items */
    /* no sealed value is in the body */
    CHECK(memmem(b.p, b.len, "abc", 3) == NULL);
    /* group 1 is [salt, 1, [[12], []]], with the salt and class in clear */
    CHECK_EQ(x.groups[0].len, 1 + 18 + 1 + 1 + 2 + 1);
    shoal__change d;
    REQUIRE(decode(b.p, b.len, &d) == SHOAL_OK);
    CHECK_EQ(d.nseals, 2);
    CHECK(change_eq(&x.c, &d));
    CHECK(!shoal__change_disclosed(&d));
    CHECK(shoal__change_disclosed(&x.c));
    for (int i = 1; i < 9; i++) {
        CHECK(d.ops[i].sealed);
        CHECK_EQ(d.ops[i].value.type, SHOAL_T_REDACTED);
    }
    CHECK_EQ(d.ops[2].kind, SHOAL__OP_SET); /* until disclosed */
    CHECK(!d.ops[0].sealed && !d.ops[9].sealed);
    CHECK_EQ(shoal__change_encode(&d, &b2), SHOAL_OK);
    CHECK(b.len == b2.len && memcmp(b.p, b2.p, b.len) == 0);

    /* A group that is not the one committed to changes nothing. */
    x.groups[0].p[3] ^= 1; /* a salt byte */
    CHECK_EQ(shoal__change_disclose(&d, 0, x.groups[0].p, x.groups[0].len, test_class, NULL),
             SHOAL_EINVAL);
    x.groups[0].p[3] ^= 1;
    CHECK_EQ(shoal__change_disclose(&d, 1, x.groups[0].p, x.groups[0].len, test_class, NULL),
             SHOAL_EINVAL); /* another seal's */
    CHECK_EQ(shoal__change_disclose(&d, 2, x.groups[0].p, x.groups[0].len, test_class, NULL),
             SHOAL_EINVAL); /* out of range */
    CHECK_EQ(d.ops[1].value.type, SHOAL_T_REDACTED);
    /* Disclosing one group fills in its class only. */
    CHECK_EQ(shoal__change_disclose(&d, 0, x.groups[0].p, x.groups[0].len, test_class, NULL),
             SHOAL_OK);
    CHECK_EQ(d.ops[1].kind, SHOAL__OP_SET);
    CHECK(d.ops[1].value.type == SHOAL_T_INT && d.ops[1].value.i == 12);
    CHECK_EQ(d.ops[2].kind, SHOAL__OP_UNSET);
    CHECK_EQ(d.ops[3].value.type, SHOAL_T_REDACTED);
    CHECK(!shoal__change_disclosed(&d));
    /* again: the same values */
    CHECK_EQ(shoal__change_disclose(&d, 0, x.groups[0].p, x.groups[0].len, test_class, NULL),
             SHOAL_OK);
    CHECK_EQ(shoal__change_disclose(&d, 1, x.groups[1].p, x.groups[1].len, test_class, NULL),
             SHOAL_OK);
    CHECK(shoal__change_disclosed(&d));
    CHECK_EQ(d.ops[3].delta, -4);
    CHECK(d.ops[5].value.type == SHOAL_T_STR && d.ops[5].value.len == 1 &&
          d.ops[5].value.ptr[0] == 'b');
    CHECK(d.ops[7].value.type == SHOAL_T_DOUBLE && d.ops[7].value.d == 2.5);
    CHECK(d.ops[8].value.type == SHOAL_T_BOOL && d.ops[8].value.b);
    CHECK(change_eq(&x.c, &d));
    b2.len = 0;
    CHECK_EQ(shoal__change_encode(&d, &b2), SHOAL_OK);
    CHECK(b.len == b2.len && memcmp(b.p, b2.p, b.len) == 0);
    shoal__change_clear(&d);

    /* A group whose commitment matches but whose entries do not fit the
     * class's sealed items: undisclosed (EPROTO), the change unchanged. */
    shoal__buf bad;
    shoal__buf_init(&bad);
    shoal__mpw w;
    const char *why[] = { "one entry",
                          "three entries",
                          "not a group",
                          "wrong class",
                          "a str for a write",
                          "a run as a str of 2",
                          "a run of one-cp values",
                          "a REDACTED marker",
                          "short salt" };
    for (int k = 0; k < 9; k++) {
        bad.len = 0;
        shoal__mpw_init(&w, &bad);
        uint8_t salt[SHOAL__SALT_BYTES] = { 0 };
        int g = k == 5 || k == 6 ? 1 : 0;
        if (k == 2) {
            shoal__mpw_array(&w, 2);
        } else {
            shoal__mpw_array(&w, 3);
            shoal__mpw_bin(&w, salt, k == 8 ? 15 : sizeof salt);
            shoal__mpw_uint(&w, k == 3 ? 2 : (uint64_t)g + 1);
        }
        if (g == 0) {
            shoal__mpw_array(&w, k == 0 ? 1 : k == 1 ? 3 : 2);
            if (k == 4)
                shoal__mpw_str(&w, "x", 1);
            else if (k == 7)
                shoal__buf_append(&bad, "\xd4\x01\x00", 3);
            else {
                shoal__mpw_array(&w, 1);
                shoal__mpw_int(&w, 12);
            }
            shoal__mpw_array(&w, 0);
            if (k == 1)
                shoal__mpw_array(&w, 0);
        } else {
            shoal__mpw_array(&w, 4);
            shoal__mpw_int(&w, -4);
            if (k == 5) {
                shoal__mpw_str(&w, "ab", 2);
            } else {
                shoal__mpw_array(&w, 3);
                for (int i = 0; i < 3; i++)
                    shoal__mpw_str(&w, "abc" + i, 1);
            }
            shoal__mpw_double(&w, 2.5);
            shoal__mpw_bool(&w, true);
        }
        REQUIRE(w.err == SHOAL_OK);
        uint8_t commits[64];
        memcpy(commits, x.commits, 64);
        shoal__seal_commit(bad.p, bad.len, commits + g * 32);
        x.c.seal_commit = commits;
        b.len = 0;
        REQUIRE(shoal__change_encode(&x.c, &b) == SHOAL_OK);
        REQUIRE(decode(b.p, b.len, &d) == SHOAL_OK);
        int rc = shoal__change_disclose(&d, (uint32_t)g, bad.p, bad.len, test_class, NULL);
        if (rc != SHOAL_EPROTO)
            fprintf(stderr, "bad group: %s\n", why[k]);
        CHECK_EQ(rc, SHOAL_EPROTO);
        for (int i = 1; i < 9; i++)
            CHECK_EQ(d.ops[i].value.type, SHOAL_T_REDACTED);
        shoal__change_clear(&d);
        x.c.seal_commit = x.commits;
    }
    shoal__buf_free(&bad);

    /* The encoder refuses what the decoder would. */
    x.c.nseals = 0;
    CHECK_EQ(shoal__change_encode(&x.c, &b2), SHOAL_EINVAL); /* sealed ops, no seals */
    x.c.nseals = 2;
    x.c.seal_class[1] = 1;
    CHECK_EQ(shoal__change_encode(&x.c, &b2), SHOAL_EINVAL); /* not ascending */
    x.c.seal_class[1] = 65;
    CHECK_EQ(shoal__change_encode(&x.c, &b2), SHOAL_EINVAL);
    x.c.seal_class[1] = 2;
    x.ops[9].sealed = true;
    CHECK_EQ(shoal__change_encode(&x.c, &b2), SHOAL_EINVAL); /* a sealed DEL */
    x.ops[9].sealed = false;
    x.c.version = SHOAL__FORMAT_V1;
    CHECK_EQ(shoal__change_encode(&x.c, &b2), SHOAL_EINVAL);
    x.c.version = SHOAL__FORMAT_V2;
    for (int i = 1; i < 9; i++)
        x.ops[i].sealed = false;
    CHECK_EQ(shoal__change_encode(&x.c, &b2), SHOAL_EINVAL); /* seals, no sealed op */
    /* no group for a class without sealed ops */
    uint8_t salt[SHOAL__SALT_BYTES] = { 0 };
    CHECK_EQ(shoal__seal_group(&x.c, 1, salt, test_class, NULL, &b2), SHOAL_EINVAL);
    shoal__buf_free(&b);
    shoal__buf_free(&b2);
    sealed_free(&x);
}

/* Bodies with sealed items that no encoder writes. */
static void
test_sealed_decode_rejects(void)
{
    sealed_fix x;
    sealed_init(&x);
    shoal__buf b;
    shoal__buf_init(&b);
    REQUIRE(shoal__change_encode(&x.c, &b) == SHOAL_OK);
    shoal__change d;
    /* The seals item is last: [[1, bin32], [2, bin32]] = 1 + 2 * 36 bytes. */
    size_t seals_at = b.len - (1 + 2 * 36);
    CHECK_EQ(b.p[seals_at], 0x92);
    /* class 0, 65, and out of order */
    uint8_t keep = b.p[seals_at + 2];
    b.p[seals_at + 2] = 0;
    CHECK_EQ(decode(b.p, b.len, &d), SHOAL_EPROTO);
    b.p[seals_at + 2] = 65;
    CHECK_EQ(decode(b.p, b.len, &d), SHOAL_EPROTO);
    b.p[seals_at + 2] = 2;
    CHECK_EQ(decode(b.p, b.len, &d), SHOAL_EPROTO);
    b.p[seals_at + 2] = keep;
    CHECK_EQ(decode(b.p, b.len, &d), SHOAL_OK);
    shoal__change_clear(&d);
    /* an empty seals item */
    shoal__buf e;
    shoal__buf_init(&e);
    shoal__buf_append(&e, b.p, seals_at);
    shoal__buf_append(&e, "\x90", 1);
    CHECK_EQ(decode(e.p, e.len, &d), SHOAL_EPROTO);
    /* sealed ops without a seals item (9 items) */
    e.p[0] = 0x99;
    e.len = seals_at;
    CHECK_EQ(decode(e.p, e.len, &d), SHOAL_EPROTO);
    /* a seals item without sealed ops */
    for (int i = 1; i < 9; i++)
        x.ops[i].sealed = false;
    x.c.nseals = 0;
    e.len = 0;
    REQUIRE(shoal__change_encode(&x.c, &e) == SHOAL_OK);
    e.p[0] = 0x9a;
    shoal__buf_append(&e, b.p + seals_at, b.len - seals_at);
    CHECK_EQ(decode(e.p, e.len, &d), SHOAL_EPROTO);
    /* SEALED INS counts: 0, and above the cap */
    static const uint8_t hdr[] = { 0x99, 0x01, 0x01, 0x90, 0xa1, 'p', 0xa1, 'd', 0x00, 0x90 };
    uint8_t body[64];
    for (int k = 0; k < 3; k++) {
        size_t n = 0;
        memcpy(body, hdr, sizeof hdr);
        body[0] = 0x9a;
        n = sizeof hdr;
        body[n++] = 0x91; /* one item */
        body[n++] = 0x94; /* [13, "t", nil, k] */
        body[n++] = 13;
        body[n++] = 0xa1;
        body[n++] = 't';
        body[n++] = 0xc0;
        if (k == 2)
            body[n++] = 0xcc; /* uint8 128 */
        body[n++] = k == 0 ? 0 : k == 1 ? 127 : 128;
        body[n++] = 0x90; /* auth */
        body[n++] = 0x91; /* seals */
        body[n++] = 0x92;
        body[n++] = 0x01;
        body[n++] = 0xc4;
        body[n++] = 32;
        memset(body + n, 0x77, 32);
        n += 32;
        int rc = decode(body, n, &d);
        CHECK_EQ(rc, k == 0 ? SHOAL_EPROTO : k == 1 ? SHOAL_OK : SHOAL_ETOOBIG);
        if (rc == SHOAL_OK) {
            CHECK_EQ(d.nops, 127);
            shoal__change_clear(&d);
        }
    }
    shoal__buf_free(&e);
    shoal__buf_free(&b);
    sealed_free(&x);
}

static void
test_format_v2(void)
{
    uint8_t ids[3][32];
    for (int i = 0; i < 3; i++)
        memset(ids[i], 0x30 + i, 32);
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_SET;
    op.field = (const uint8_t *)"f";
    op.field_len = 1;
    op.value.type = SHOAL_T_INT;
    op.value.i = 5;
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, pk_a, 32);
    c.seq = 1;
    c.hlc = 7;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)"d";
    c.doc_len = 1;
    c.nops = 1;
    c.ops = &op;
    shoal__buf b1, b2, env;
    shoal__buf_init(&b1);
    shoal__buf_init(&b2);
    shoal__buf_init(&env);
    REQUIRE(shoal__change_encode(&c, &b1) == SHOAL_OK);
    CHECK_EQ(b1.p[0], 0x98);
    for (size_t n = 0; n <= 2; n++) {
        c.version = SHOAL__FORMAT_V2;
        c.nauth = n;
        c.auth = n ? ids[1] : NULL; /* ids[1], ids[2]: order is kept */
        b2.len = 0;
        REQUIRE(shoal__change_encode(&c, &b2) == SHOAL_OK);
        CHECK_EQ(b2.p[0], 0x99);
        /* the version-1 body plus one item: [] or [bin32, ...] */
        CHECK_EQ(b2.len, b1.len + 1 + 34 * n);
        CHECK(memcmp(b2.p + 1, b1.p + 1, b1.len - 1) == 0);
        shoal__change d;
        memset(&d, 0, sizeof d);
        memcpy(d.author, pk_a, 32);
        REQUIRE(shoal__change_decode(b2.p, b2.len, &d) == SHOAL_OK);
        CHECK_EQ(d.version, SHOAL__FORMAT_V2);
        CHECK_EQ(d.nauth, n);
        CHECK(n == 0 || memcmp(d.auth, ids[1], 32 * n) == 0);
        shoal__change_clear(&d);
        /* sealed as version 2, decoded through its envelope */
        env.len = 0;
        REQUIRE(shoal__envelope_seal(b2.p, b2.len, pk_a, sk_a, &env) == SHOAL_OK);
        CHECK_EQ(env.p[0], SHOAL__FORMAT_V2);
        size_t el, bl;
        const uint8_t *bp;
        CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_OK);
        CHECK_EQ(shoal__envelope_decode(env.p, env.len, &d), SHOAL_OK);
        CHECK_EQ(d.nauth, n);
        CHECK(memcmp(d.author, pk_a, 32) == 0);
        shoal__change_clear(&d);
        /* the signature covers the context: as version 1 it fails */
        env.p[0] = SHOAL__FORMAT_V1;
        CHECK_EQ(shoal__envelope_open(env.p, env.len, &el, &bp, &bl), SHOAL_EBADSIG);
        /* and a version byte that disagrees with the body is refused */
        CHECK_EQ(shoal__envelope_decode(env.p, env.len, &d), SHOAL_EPROTO);
    }
    /* a version-1 envelope decodes as version 1, and refuses a 9-item body */
    env.len = 0;
    REQUIRE(shoal__envelope_seal(b1.p, b1.len, pk_a, sk_a, &env) == SHOAL_OK);
    CHECK_EQ(env.p[0], SHOAL__FORMAT_V1);
    shoal__change d;
    CHECK_EQ(shoal__envelope_decode(env.p, env.len, &d), SHOAL_OK);
    CHECK_EQ(d.version, SHOAL__FORMAT_V1);
    CHECK_EQ(d.nauth, 0);
    shoal__change_clear(&d);
    env.p[0] = SHOAL__FORMAT_V2;
    CHECK_EQ(shoal__envelope_decode(env.p, env.len, &d), SHOAL_EPROTO);
    /* what the encoder refuses */
    c.version = SHOAL__FORMAT_V1;
    c.nauth = 1;
    c.auth = ids[0];
    CHECK_EQ(shoal__change_encode(&c, &b2), SHOAL_EINVAL); /* auth needs version 2 */
    c.version = SHOAL__FORMAT_V2;
    c.nauth = 3;
    CHECK_EQ(shoal__change_encode(&c, &b2), SHOAL_EINVAL); /* at most 2 ids */
    c.version = 3;
    c.nauth = 0;
    CHECK_EQ(shoal__change_encode(&c, &b2), SHOAL_EINVAL);
    /* what the decoder refuses: 3 ids, a short id, a 10-item body */
    c.version = SHOAL__FORMAT_V2;
    c.nauth = 2;
    c.auth = ids[0];
    b2.len = 0;
    REQUIRE(shoal__change_encode(&c, &b2) == SHOAL_OK);
    size_t at = b2.len - 2 * 34 - 1; /* the auth array header (0x92) */
    CHECK_EQ(b2.p[at], 0x92);
    b2.p[at] = 0x93;
    memcpy(d.author, pk_a, 32);
    CHECK_EQ(shoal__change_decode(b2.p, b2.len, &d), SHOAL_ETOOBIG);
    b2.p[at] = 0x92;
    b2.p[at + 2] = 31; /* bin8 of 31 bytes */
    CHECK_EQ(shoal__change_decode(b2.p, b2.len, &d), SHOAL_EPROTO);
    b2.p[at + 2] = 32;
    CHECK_EQ(shoal__change_decode(b2.p, b2.len, &d), SHOAL_OK);
    shoal__change_clear(&d);
    b2.p[0] = 0x9a; /* no 10-item body in this version */
    shoal__buf_append(&b2, "\x90", 1);
    CHECK_EQ(shoal__change_decode(b2.p, b2.len, &d), SHOAL_EPROTO);
    shoal__buf_free(&b1);
    shoal__buf_free(&b2);
    shoal__buf_free(&env);
}

int
main(void)
{
    keys_init();
    for (size_t i = 0; i < sizeof long_bin; i++)
        long_bin[i] = (uint8_t)i;
    memset(long_str, 'z', sizeof long_str);
    for (size_t i = 0; i < sizeof max_bin; i++)
        max_bin[i] = (uint8_t)(i * 7);
    check_seed(0x5eed0001);

    RUN(test_buf);
    RUN(test_hex);
    RUN(test_utf8);
    RUN(test_alloc_fail);
    RUN(test_mp_ints);
    RUN(test_mp_scalars);
    RUN(test_mp_noncanonical);
    RUN(test_mp_bounds);
    RUN(test_mp_value_roundtrip);
    RUN(test_values);
    RUN(test_change_roundtrip);
    RUN(test_change_random_roundtrip);
    RUN(test_change_encode_rejects);
    RUN(test_change_wrong_types);
    RUN(test_change_decode_rejects);
    RUN(test_change_bad_ops);
    RUN(test_change_runs_encode);
    RUN(test_change_runs_random);
    RUN(test_change_delrun_cap);
    RUN(test_change_runs_malformed);
    RUN(test_change_huge_counts);
    RUN(test_change_truncation);
    RUN(test_change_oom);
    RUN(test_change_accessors);
    RUN(test_envelope_roundtrip);
    RUN(test_envelope_hostile);
    RUN(test_format_v2);
    RUN(test_sealed);
    RUN(test_sealed_decode_rejects);
    RUN(test_bundle);
    RUN(test_mutation_fuzz);
    return check_summary();
}
