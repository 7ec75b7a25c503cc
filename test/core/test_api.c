/*
 * test/core/test_api.c - the public C API end to end on real LMDB files:
 * every function, the conflict rules between two replicas exchanging
 * bundles, reopen, error paths, events, the HLC under a fake clock, threads
 * and two processes on one directory.
 */
#include <pthread.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "crdt.h"
#include "shoal.h"
#include "replica.h"

/* ---------------------------------------------------------------- helpers */

typedef struct fclock {
    uint64_t ms;
} fclock;

static uint64_t
fclock_now(void *ctx)
{
    return ((fclock *)ctx)->ms;
}

static shoal_replica *
open_at(const char *dir, fclock *clk, bool durable)
{
    shoal_options *o;
    if (shoal_options_new(&o) != SHOAL_OK)
        return NULL;
    shoal_options_set_durable(o, durable);
    if (clk)
        shoal_options_set_clock(o, fclock_now, clk);
    shoal_replica *r = NULL;
    shoal_err err = shoal_replica_open(&r, dir, o);
    shoal_options_free(o);
    if (err)
        fprintf(stderr, "open %s: %s\n", dir, shoal_strerror(err));
    return r;
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

static shoal_err
one_edit(shoal_replica *r, int kind, const char *coll, const char *id, const char *f, size_t index,
         const char *s, int64_t delta)
{
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value v = vstr(s ? s : "");
    switch (kind) {
    case 'i': err = shoal_txn_list_insert(t, coll, id, f, index, &v); break;
    case 'r': err = shoal_txn_list_remove(t, coll, id, f, index); break;
    case 'p': err = shoal_txn_list_replace(t, coll, id, f, index, &v); break;
    case 'c': err = shoal_txn_counter_add(t, coll, id, f, delta); break;
    case 'u': err = shoal_txn_unset(t, coll, id, f); break;
    case 'd': err = shoal_txn_delete(t, coll, id); break;
    default: err = shoal_txn_set(t, coll, id, f, &v); break;
    }
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

/* The string in register field f, or NULL (in buf). */
static const char *
get_str(shoal_replica *r, const char *coll, const char *id, const char *f, char *buf, size_t n)
{
    shoal_doc *d;
    if (shoal_doc_get(r, coll, id, &d) != SHOAL_OK)
        return NULL;
    size_t i;
    shoal_value v;
    const char *res = NULL;
    if (shoal_doc_field_find(d, f, &i) == SHOAL_OK && shoal_doc_field_value(d, i, &v) == SHOAL_OK &&
        v.type == SHOAL_T_STR && v.len < n) {
        memcpy(buf, v.ptr, v.len);
        buf[v.len] = 0;
        res = buf;
    }
    shoal_doc_free(d);
    return res;
}

static bool
get_counter(shoal_replica *r, const char *coll, const char *id, const char *f, int64_t *out)
{
    shoal_doc *d;
    if (shoal_doc_get(r, coll, id, &d) != SHOAL_OK)
        return false;
    size_t i;
    bool ok = shoal_doc_field_find(d, f, &i) == SHOAL_OK &&
              shoal_doc_field_counter(d, i, out) == SHOAL_OK;
    shoal_doc_free(d);
    return ok;
}

/* List field f as "a,b,c" into buf; false if there is no such list. */
static bool
get_list(shoal_replica *r, const char *coll, const char *id, const char *f, char *buf, size_t n)
{
    shoal_doc *d;
    buf[0] = 0;
    if (shoal_doc_get(r, coll, id, &d) != SHOAL_OK)
        return false;
    size_t i, len;
    bool ok = shoal_doc_field_find(d, f, &i) == SHOAL_OK &&
              shoal_doc_field_list_len(d, i, &len) == SHOAL_OK;
    size_t pos = 0;
    for (size_t j = 0; ok && j < len; j++) {
        shoal_value v;
        if (shoal_doc_field_list_item(d, i, j, &v) != SHOAL_OK || v.type != SHOAL_T_STR ||
            pos + v.len + 2 > n) {
            ok = false;
            break;
        }
        if (j)
            buf[pos++] = ',';
        memcpy(buf + pos, v.ptr, v.len);
        pos += v.len;
        buf[pos] = 0;
    }
    shoal_doc_free(d);
    return ok;
}

static bool
same_state(shoal_replica *a, shoal_replica *b)
{
    uint8_t da[32], db[32], fa[32], fb[32];
    if (shoal_digest(a, false, da) || shoal_digest(b, false, db) || shoal_digest(a, true, fa) ||
        shoal_digest(b, true, fb))
        return false;
    return memcmp(da, db, 32) == 0 && memcmp(fa, fb, 32) == 0;
}

static uint64_t
vv_seq(shoal_replica *r, const uint8_t *author)
{
    shoal_vv *vv;
    if (shoal_replica_version(r, &vv) != SHOAL_OK)
        return UINT64_MAX;
    uint64_t s = shoal_vv_get(vv, author);
    shoal_vv_free(vv);
    return s;
}

static uint32_t
bundle_count(const uint8_t *b, size_t n)
{
    return n >= 12 ? shoal__be32_get(b + 8) : 0;
}

/* The HLCs of the changes in r's log, in log order. */
static size_t
log_hlcs(shoal_replica *r, uint64_t *out, size_t max)
{
    uint8_t *b;
    size_t n, cnt = 0;
    if (shoal_export(r, NULL, &b, &n) != SHOAL_OK)
        return 0;
    shoal__span *sp;
    if (shoal__bundle_split(b, n, &sp, &cnt) == SHOAL_OK) {
        for (size_t i = 0; i < cnt && i < max; i++) {
            const uint8_t *body;
            size_t el, bl;
            shoal__change c;
            memset(&c, 0, sizeof c);
            if (shoal__envelope_parse(b + sp[i].off, sp[i].len, &el, &body, &bl) == SHOAL_OK &&
                shoal__change_decode(body, bl, &c) == SHOAL_OK) {
                out[i] = c.hlc;
                shoal__change_clear(&c);
            }
        }
        shoal__free(sp);
    }
    shoal_free(b);
    return cnt < max ? cnt : max;
}

/* ------------------------------------------------------------------ tests */

static void
test_errors_version(void)
{
    for (int e = 0; e <= SHOAL_EREFUSED; e++) {
        const char *s = shoal_strerror((shoal_err)e);
        CHECK(s != NULL && strcmp(s, "unknown error") != 0);
        for (int f = 0; f < e; f++)
            CHECK(strcmp(s, shoal_strerror((shoal_err)f)) != 0);
    }
    CHECK(strcmp(shoal_strerror((shoal_err)999), "unknown error") == 0);
    CHECK(strcmp(shoal_version(), "0.1.0") == 0);
    CHECK_EQ(shoal_version_number(),
             SHOAL_VERSION_MAJOR * 10000 + SHOAL_VERSION_MINOR * 100 + SHOAL_VERSION_PATCH);
    CHECK_EQ(shoal_key_bytes(), SHOAL_KEY_BYTES);
    shoal_free(NULL);
    shoal_replica_close(NULL);
    shoal_txn_abort(NULL);
    shoal_doc_free(NULL);
    shoal_strlist_free(NULL);
    shoal_vv_free(NULL);
    shoal_event_free(NULL);
    shoal_options_free(NULL);
}

static void
test_options(void)
{
    shoal_options *o;
    REQUIRE(shoal_options_new(&o) == SHOAL_OK);
    CHECK_EQ(shoal_options_set_durable(o, false), SHOAL_OK);
    CHECK_EQ(shoal_options_set_map_size(o, 16), SHOAL_EINVAL);
    CHECK_EQ(shoal_options_set_map_size(o, 8u << 20), SHOAL_OK);
    CHECK_EQ(shoal_options_set_max_drift_ms(o, 1000), SHOAL_OK);
    CHECK_EQ(shoal_options_set_max_drift_ms(o, UINT64_MAX), SHOAL_EINVAL);
    CHECK_EQ(shoal_options_set_clock(o, NULL, NULL), SHOAL_OK);
    char *dir = check_tmpdir("api-opt");
    shoal_replica *r = NULL;
    CHECK_EQ(shoal_replica_open(&r, dir, o), SHOAL_OK);
    shoal_options_free(o);
    REQUIRE(r);
    CHECK_EQ(check_set_str(r, "c", "d", "f", "v"), SHOAL_OK);
    CHECK_EQ(shoal_replica_flush(r), SHOAL_OK);
    shoal_replica_close(r);
    r = (shoal_replica *)1;
    CHECK_EQ(shoal_replica_open(&r, NULL, NULL), SHOAL_EINVAL);
    CHECK(r == NULL);
    CHECK_EQ(shoal_replica_open(&r, "", NULL), SHOAL_EINVAL);
    /* Only the last directory is created (docs/c-api.md): a missing
     * parent is SHOAL_ESTORE, and nothing is made. */
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/missing/replica", dir);
    r = (shoal_replica *)1;
    CHECK_EQ(shoal_replica_open(&r, sub, NULL), SHOAL_ESTORE);
    CHECK(r == NULL);
    snprintf(sub, sizeof sub, "%s/missing", dir);
    CHECK(access(sub, F_OK) != 0);
    check_rmtree(dir);
    free(dir);
}

static void
test_identity_reopen(void)
{
    char *dir = check_tmpdir("api-id");
    shoal_replica *r = NULL;
    REQUIRE(shoal_replica_open(&r, dir, NULL) == SHOAL_OK);
    uint8_t id[32], zero[32] = { 0 };
    memcpy(id, shoal_replica_id(r), 32);
    CHECK(memcmp(id, zero, 32) != 0);
    CHECK(shoal_replica_errmsg(r) != NULL);
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    shoal_value v = vstr("x");
    CHECK_EQ(shoal_txn_set(t, "c", "a", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_counter_add(t, "c", "b", "n", 3), SHOAL_OK);
    CHECK_EQ(shoal_txn_list_insert(t, "c", "b", "l", 0, &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    uint8_t dv[32], df[32];
    CHECK_EQ(shoal_digest(r, false, dv), SHOAL_OK);
    CHECK_EQ(shoal_digest(r, true, df), SHOAL_OK);
    shoal_replica_close(r);

    REQUIRE(shoal_replica_open(&r, dir, NULL) == SHOAL_OK);
    CHECK(memcmp(shoal_replica_id(r), id, 32) == 0);
    CHECK_EQ(vv_seq(r, id), 2);
    char buf[64];
    const char *s = get_str(r, "c", "a", "f", buf, sizeof buf);
    CHECK(s && strcmp(s, "x") == 0);
    int64_t n = 0;
    CHECK(get_counter(r, "c", "b", "n", &n) && n == 3);
    CHECK(get_list(r, "c", "b", "l", buf, sizeof buf) && strcmp(buf, "x") == 0);
    uint8_t dv2[32], df2[32];
    CHECK_EQ(shoal_digest(r, false, dv2), SHOAL_OK);
    CHECK_EQ(shoal_digest(r, true, df2), SHOAL_OK);
    CHECK(memcmp(dv, dv2, 32) == 0 && memcmp(df, df2, 32) == 0);
    CHECK(memcmp(dv, df, 32) != 0);
    shoal_replica_close(r);
    /* The identity is owner-only (core/identity.c): 64 bytes, mode 0600. */
    char path[4096];
    snprintf(path, sizeof path, "%s/identity", dir);
    CHECK(access(path, R_OK) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600 &&
          st.st_size == 64);
    check_rmtree(dir);
    free(dir);
}

static void
test_values_and_reads(void)
{
    char *dir = check_tmpdir("api-val");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    shoal_value vn = { .type = SHOAL_T_NIL };
    shoal_value vb = { .type = SHOAL_T_BOOL, .b = true };
    shoal_value vi = vint(-1234567890123LL);
    shoal_value vd = { .type = SHOAL_T_DOUBLE, .d = 2.5 };
    shoal_value vs = vstr("héllo");
    const uint8_t bytes[3] = { 0, 255, 7 };
    shoal_value vy = { .type = SHOAL_T_BYTES, .ptr = bytes, .len = 3 };
    CHECK_EQ(shoal_txn_set(t, "things", "one", "nil", &vn), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "things", "one", "bool", &vb), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "things", "one", "int", &vi), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "things", "one", "dbl", &vd), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "things", "one", "str", &vs), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "things", "one", "bin", &vy), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);

    shoal_doc *d;
    REQUIRE(shoal_doc_get(r, "things", "one", &d) == SHOAL_OK);
    CHECK_EQ(shoal_doc_epoch(d), 0);
    CHECK_EQ(shoal_doc_field_count(d), 6);
    const char *names[] = { "bin", "bool", "dbl", "int", "nil", "str" };
    for (size_t i = 0; i < 6 && i < shoal_doc_field_count(d); i++) {
        CHECK(strcmp(shoal_doc_field_name(d, i), names[i]) == 0);
        CHECK_EQ(shoal_doc_field_kind(d, i), SHOAL_K_REGISTER);
    }
    CHECK(shoal_doc_field_name(d, 6) == NULL);
    size_t i;
    shoal_value v;
    CHECK_EQ(shoal_doc_field_find(d, "nope", &i), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal_doc_field_find(d, "int", &i), SHOAL_OK);
    CHECK_EQ(shoal_doc_field_value(d, i, &v), SHOAL_OK);
    CHECK(v.type == SHOAL_T_INT && v.i == -1234567890123LL);
    CHECK_EQ(shoal_doc_field_find(d, "bool", &i), SHOAL_OK);
    CHECK(shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_BOOL && v.b);
    CHECK_EQ(shoal_doc_field_find(d, "dbl", &i), SHOAL_OK);
    CHECK(shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_DOUBLE && v.d == 2.5);
    CHECK_EQ(shoal_doc_field_find(d, "nil", &i), SHOAL_OK);
    CHECK(shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_NIL);
    CHECK_EQ(shoal_doc_field_find(d, "str", &i), SHOAL_OK);
    CHECK(shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_STR &&
          v.len == strlen("héllo") && memcmp(v.ptr, "héllo", v.len) == 0);
    CHECK_EQ(shoal_doc_field_find(d, "bin", &i), SHOAL_OK);
    CHECK(shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_BYTES && v.len == 3 &&
          memcmp(v.ptr, bytes, 3) == 0);
    int64_t cv;
    size_t len;
    CHECK_EQ(shoal_doc_field_counter(d, i, &cv), SHOAL_EKIND);
    CHECK_EQ(shoal_doc_field_list_len(d, i, &len), SHOAL_EKIND);
    CHECK_EQ(shoal_doc_field_list_item(d, i, 0, &v), SHOAL_EKIND);
    CHECK_EQ(shoal_doc_field_value(d, 99, &v), SHOAL_ERANGE);
    shoal_doc_free(d);

    CHECK_EQ(shoal_doc_get(r, "things", "two", &d), SHOAL_ENOTFOUND);
    CHECK(d == NULL);
    CHECK_EQ(shoal_doc_get(r, "other", "one", &d), SHOAL_ENOTFOUND);

    /* Lists of documents and collections. */
    CHECK_EQ(check_set_str(r, "things", "abc", "f", "v"), SHOAL_OK);
    CHECK_EQ(check_set_str(r, "apples", "z", "f", "v"), SHOAL_OK);
    shoal_strlist *l;
    REQUIRE(shoal_docs(r, "things", &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 2);
    CHECK(strcmp(shoal_strlist_get(l, 0), "abc") == 0);
    CHECK(strcmp(shoal_strlist_get(l, 1), "one") == 0);
    CHECK(shoal_strlist_get(l, 2) == NULL);
    shoal_strlist_free(l);
    REQUIRE(shoal_docs(r, "none", &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 0);
    shoal_strlist_free(l);
    CHECK_EQ(shoal_docs(r, "", &l), SHOAL_EINVAL);
    REQUIRE(shoal_collections(r, &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 2);
    CHECK(strcmp(shoal_strlist_get(l, 0), "apples") == 0);
    CHECK(strcmp(shoal_strlist_get(l, 1), "things") == 0);
    shoal_strlist_free(l);

    /* Version vectors. */
    shoal_vv *vv;
    REQUIRE(shoal_replica_version(r, &vv) == SHOAL_OK);
    CHECK_EQ(shoal_vv_count(vv), 1);
    const uint8_t *au;
    uint64_t seq;
    CHECK_EQ(shoal_vv_entry(vv, 0, &au, &seq), SHOAL_OK);
    CHECK(memcmp(au, shoal_replica_id(r), 32) == 0 && seq == 3);
    CHECK_EQ(shoal_vv_entry(vv, 1, &au, &seq), SHOAL_ERANGE);
    shoal_vv_free(vv);
    REQUIRE(shoal_vv_new(&vv) == SHOAL_OK);
    uint8_t k1[32], k2[32];
    memset(k1, 9, 32);
    memset(k2, 3, 32);
    CHECK_EQ(shoal_vv_set(vv, k1, 5), SHOAL_OK);
    CHECK_EQ(shoal_vv_set(vv, k2, 7), SHOAL_OK);
    CHECK_EQ(shoal_vv_count(vv), 2);
    CHECK(shoal_vv_entry(vv, 0, &au, &seq) == SHOAL_OK && au[0] == 3 && seq == 7);
    CHECK_EQ(shoal_vv_get(vv, k1), 5);
    CHECK_EQ(shoal_vv_set(vv, k1, 0), SHOAL_OK);
    CHECK_EQ(shoal_vv_count(vv), 1);
    CHECK_EQ(shoal_vv_get(vv, k1), 0);
    shoal_vv_free(vv);

    uint64_t pc = 99;
    CHECK_EQ(shoal_pending_count(r, &pc), SHOAL_OK);
    CHECK_EQ(pc, 0);
    REQUIRE(shoal_equivocators(r, &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 0);
    shoal_strlist_free(l);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static void
test_einval(void)
{
    char *dir = check_tmpdir("api-inval");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    shoal_value v = vstr("x");
    char longc[SHOAL_MAX_COLLECTION + 2], longid[SHOAL_MAX_DOC_ID + 2], longf[SHOAL_MAX_FIELD + 2];
    memset(longc, 'c', sizeof longc - 1);
    longc[sizeof longc - 1] = 0;
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    memset(longf, 'f', sizeof longf - 1);
    longf[sizeof longf - 1] = 0;
    CHECK_EQ(shoal_txn_set(t, longc, "d", "f", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c", longid, "f", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c", "d", longf, &v), SHOAL_EINVAL);
    longc[SHOAL_MAX_COLLECTION] = 0; /* exactly the limit is fine */
    CHECK_EQ(shoal_txn_set(t, longc, "d", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "", "d", "f", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c", "", "f", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c", "d", "", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c\xff", "d", "f", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c", "\xc0\xaf", "f", &v), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_counter_add(t, "c", "d", "\xed\xa0\x80", 1), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_delete(t, "c", "\xfe"), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_set(t, "c", "d", "f", NULL), SHOAL_EINVAL);
    shoal_value bad = vstr("\xff\xfe");
    CHECK_EQ(shoal_txn_set(t, "c", "d", "f", &bad), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_list_insert(t, "c", "d", "l", 0, &bad), SHOAL_EINVAL);
    CHECK_EQ(shoal_txn_list_replace(t, "c", "d", "l", 0, &bad), SHOAL_EINVAL);
    shoal_value weird = { .type = (shoal_type)42 };
    CHECK_EQ(shoal_txn_set(t, "c", "d", "f", &weird), SHOAL_EINVAL);
    uint8_t *big = calloc(1, SHOAL_MAX_VALUE + 1);
    REQUIRE(big);
    shoal_value vbig = { .type = SHOAL_T_BYTES, .ptr = big, .len = SHOAL_MAX_VALUE + 1 };
    CHECK_EQ(shoal_txn_set(t, "c", "d", "f", &vbig), SHOAL_EINVAL);
    vbig.len = SHOAL_MAX_VALUE;
    CHECK_EQ(shoal_txn_set(t, "c", "big", "f", &vbig), SHOAL_OK);
    free(big);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    shoal_doc *d;
    CHECK_EQ(shoal_doc_get(r, "c", "big", &d), SHOAL_OK);
    shoal_value out;
    CHECK(shoal_doc_field_value(d, 0, &out) == SHOAL_OK && out.len == SHOAL_MAX_VALUE);
    shoal_doc_free(d);
    CHECK_EQ(shoal_doc_get(r, longc, "d", &d), SHOAL_OK);
    shoal_doc_free(d);
    CHECK_EQ(shoal_doc_get(r, "c", "", &d), SHOAL_EINVAL);
    CHECK_EQ(shoal_doc_get(r, "c\xff", "d", &d), SHOAL_EINVAL);
    CHECK_EQ(shoal_import(r, NULL, 5, NULL), SHOAL_EINVAL);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static void
test_counter_list_unset(void)
{
    char *dir = check_tmpdir("api-kinds");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    int64_t n = 0;
    CHECK_EQ(one_edit(r, 'c', "c", "d", "n", 0, NULL, 5), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'c', "c", "d", "n", 0, NULL, -8), SHOAL_OK);
    CHECK(get_counter(r, "c", "d", "n", &n) && n == -3);
    CHECK_EQ(one_edit(r, 'c', "c", "d", "n", 0, NULL, INT64_MAX), SHOAL_OK);
    CHECK(get_counter(r, "c", "d", "n", &n) && n == INT64_MAX - 3);
    /* Adding 0 is a write: it creates the field as a counter reading 0
     * (like +5 then -5), in a change of its own. */
    uint64_t seq0 = vv_seq(r, shoal_replica_id(r));
    CHECK_EQ(one_edit(r, 'c', "c", "z", "zero", 0, NULL, 0), SHOAL_OK);
    CHECK_EQ(vv_seq(r, shoal_replica_id(r)), seq0 + 1);
    n = 99;
    CHECK(get_counter(r, "c", "z", "zero", &n) && n == 0);
    CHECK_EQ(one_edit(r, 'c', "c", "z", "pm", 0, NULL, 5), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'c', "c", "z", "pm", 0, NULL, -5), SHOAL_OK);
    n = 99;
    CHECK(get_counter(r, "c", "z", "pm", &n) && n == 0);
    /* An existing register refuses it (kind), an existing counter takes it. */
    CHECK_EQ(one_edit(r, 's', "c", "z", "reg", 0, "v", 0), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'c', "c", "z", "reg", 0, NULL, 0), SHOAL_EKIND);
    CHECK_EQ(one_edit(r, 'c', "c", "d", "n", 0, NULL, 0), SHOAL_OK);
    CHECK(get_counter(r, "c", "d", "n", &n) && n == INT64_MAX - 3);

    char buf[256];
    CHECK_EQ(one_edit(r, 'i', "c", "d", "l", 0, "b", 0), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'i', "c", "d", "l", 0, "a", 0), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'i', "c", "d", "l", 2, "d", 0), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'i', "c", "d", "l", 2, "c", 0), SHOAL_OK);
    CHECK(get_list(r, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "a,b,c,d") == 0);
    CHECK_EQ(one_edit(r, 'r', "c", "d", "l", 1, NULL, 0), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'p', "c", "d", "l", 2, "D", 0), SHOAL_OK);
    CHECK(get_list(r, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "a,c,D") == 0);
    /* Several edits in one txn see each other. */
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    shoal_value x = vstr("x"), y = vstr("y");
    CHECK_EQ(shoal_txn_list_insert(t, "c", "d", "l", 3, &x), SHOAL_OK);
    CHECK_EQ(shoal_txn_list_insert(t, "c", "d", "l", 4, &y), SHOAL_OK);
    CHECK_EQ(shoal_txn_list_remove(t, "c", "d", "l", 0), SHOAL_OK);
    CHECK_EQ(shoal_txn_list_replace(t, "c", "d", "l", 3, &x), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    CHECK(get_list(r, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "c,D,x,x") == 0);
    /* A new list field inserted within one txn. */
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    for (size_t i = 0; i < 50; i++) {
        shoal_value v = vint((int64_t)i);
        CHECK_EQ(shoal_txn_list_insert(t, "c", "d", "nums", i, &v), SHOAL_OK);
    }
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    shoal_doc *d;
    REQUIRE(shoal_doc_get(r, "c", "d", &d) == SHOAL_OK);
    size_t fi, len = 0;
    CHECK_EQ(shoal_doc_field_find(d, "nums", &fi), SHOAL_OK);
    CHECK(shoal_doc_field_list_len(d, fi, &len) == SHOAL_OK && len == 50);
    shoal_value v;
    CHECK(shoal_doc_field_list_item(d, fi, 49, &v) == SHOAL_OK && v.i == 49);
    CHECK_EQ(shoal_doc_field_list_item(d, fi, 50, &v), SHOAL_ERANGE);
    CHECK_EQ(shoal_doc_field_kind(d, fi), SHOAL_K_LIST);
    shoal_doc_free(d);

    /* Field removal. */
    CHECK_EQ(check_set_str(r, "c", "d", "reg", "v"), SHOAL_OK);
    CHECK(get_str(r, "c", "d", "reg", buf, sizeof buf) != NULL);
    CHECK_EQ(one_edit(r, 'u', "c", "d", "reg", 0, NULL, 0), SHOAL_OK);
    CHECK(get_str(r, "c", "d", "reg", buf, sizeof buf) == NULL);
    REQUIRE(shoal_doc_get(r, "c", "d", &d) == SHOAL_OK);
    CHECK_EQ(shoal_doc_field_find(d, "reg", &fi), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal_doc_field_count(d), 3);
    shoal_doc_free(d);
    /* A removed field accepts any kind again. */
    CHECK_EQ(one_edit(r, 'c', "c", "d", "reg", 0, NULL, 2), SHOAL_OK);
    CHECK(get_counter(r, "c", "d", "reg", &n) && n == 2);

    /* Kind errors and range errors: nothing of the txn is stored. */
    uint64_t before = vv_seq(r, shoal_replica_id(r));
    uint8_t dig[32], dig2[32];
    CHECK_EQ(shoal_digest(r, true, dig), SHOAL_OK);
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "other", "f", &x), SHOAL_OK);
    CHECK_EQ(shoal_txn_counter_add(t, "c", "d", "l", 1), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_EKIND);
    CHECK(strstr(shoal_replica_errmsg(r), "kind") != NULL);
    CHECK_EQ(one_edit(r, 's', "c", "d", "n", 0, "v", 0), SHOAL_EKIND);
    CHECK_EQ(one_edit(r, 'u', "c", "d", "n", 0, NULL, 0), SHOAL_EKIND);
    CHECK_EQ(one_edit(r, 'i', "c", "d", "n", 0, "v", 0), SHOAL_EKIND);
    CHECK_EQ(one_edit(r, 'c', "c", "d", "nums", 0, NULL, 1), SHOAL_EKIND);
    CHECK_EQ(one_edit(r, 'i', "c", "d", "l", 5, "v", 0), SHOAL_ERANGE);
    CHECK_EQ(one_edit(r, 'r', "c", "d", "l", 4, NULL, 0), SHOAL_ERANGE);
    CHECK_EQ(one_edit(r, 'p', "c", "d", "l", 4, "v", 0), SHOAL_ERANGE);
    CHECK_EQ(one_edit(r, 'r', "c", "d", "fresh", 0, NULL, 0), SHOAL_ERANGE);
    CHECK_EQ(one_edit(r, 'i', "c", "new", "fresh", 1, "v", 0), SHOAL_ERANGE);
    CHECK_EQ(vv_seq(r, shoal_replica_id(r)), before);
    CHECK_EQ(shoal_digest(r, true, dig2), SHOAL_OK);
    CHECK(memcmp(dig, dig2, 32) == 0);
    CHECK_EQ(shoal_doc_get(r, "c", "other", &d), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal_doc_get(r, "c", "new", &d), SHOAL_ENOTFOUND);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static void
test_delete_recreate_local(void)
{
    char *dir = check_tmpdir("api-del");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    const uint8_t *me = shoal_replica_id(r);
    shoal_doc *d;
    /* Deleting a never-seen document is a no-op. */
    CHECK_EQ(one_edit(r, 'd', "c", "ghost", NULL, 0, NULL, 0), SHOAL_OK);
    CHECK_EQ(vv_seq(r, me), 0);
    CHECK_EQ(shoal_doc_get(r, "c", "ghost", &d), SHOAL_ENOTFOUND);

    CHECK_EQ(check_set_str(r, "c", "d", "a", "1"), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'd', "c", "d", NULL, 0, NULL, 0), SHOAL_OK);
    CHECK_EQ(shoal_doc_get(r, "c", "d", &d), SHOAL_EDELETED);
    CHECK(d == NULL);
    CHECK_EQ(vv_seq(r, me), 2);
    /* Deleting again changes nothing. */
    CHECK_EQ(one_edit(r, 'd', "c", "d", NULL, 0, NULL, 0), SHOAL_OK);
    CHECK_EQ(vv_seq(r, me), 2);
    shoal_strlist *l;
    REQUIRE(shoal_docs(r, "c", &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 0);
    shoal_strlist_free(l);
    REQUIRE(shoal_collections(r, &l) == SHOAL_OK);
    CHECK_EQ(shoal_strlist_count(l), 0);
    shoal_strlist_free(l);
    /* Re-create: next epoch, old fields gone. */
    CHECK_EQ(check_set_str(r, "c", "d", "b", "2"), SHOAL_OK);
    REQUIRE(shoal_doc_get(r, "c", "d", &d) == SHOAL_OK);
    CHECK_EQ(shoal_doc_epoch(d), 1);
    CHECK_EQ(shoal_doc_field_count(d), 1);
    shoal_doc_free(d);
    /* Set, delete, set in one txn: two changes, epoch 2, alive. */
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    shoal_value v = vstr("x");
    CHECK_EQ(shoal_txn_set(t, "c", "d", "c", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_delete(t, "c", "d"), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "d", "e", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_delete(t, "c", "gone"), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    CHECK_EQ(vv_seq(r, me), 5);
    REQUIRE(shoal_doc_get(r, "c", "d", &d) == SHOAL_OK);
    CHECK_EQ(shoal_doc_epoch(d), 2);
    size_t i;
    CHECK_EQ(shoal_doc_field_count(d), 1);
    CHECK_EQ(shoal_doc_field_find(d, "e", &i), SHOAL_OK);
    shoal_doc_free(d);
    /* A new document that is created and deleted in one txn. */
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "brief", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_delete(t, "c", "brief"), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    CHECK_EQ(shoal_doc_get(r, "c", "brief", &d), SHOAL_EDELETED);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

static void
test_multi_doc_txn(void)
{
    char *dir = check_tmpdir("api-multi");
    shoal_replica *r = open_at(dir, NULL, true);
    REQUIRE(r);
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    shoal_value v = vstr("v");
    CHECK_EQ(shoal_txn_set(t, "c", "a", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "b", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "a", "g", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_counter_add(t, "k", "a", "n", 1), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    CHECK_EQ(vv_seq(r, shoal_replica_id(r)), 3);
    uint8_t *b;
    size_t n;
    REQUIRE(shoal_export(r, NULL, &b, &n) == SHOAL_OK);
    CHECK_EQ(bundle_count(b, n), 3);
    shoal_free(b);
    /* Export since a version. */
    shoal_vv *vv;
    REQUIRE(shoal_vv_new(&vv) == SHOAL_OK);
    CHECK_EQ(shoal_vv_set(vv, shoal_replica_id(r), 2), SHOAL_OK);
    REQUIRE(shoal_export(r, vv, &b, &n) == SHOAL_OK);
    CHECK_EQ(bundle_count(b, n), 1);
    shoal_free(b);
    CHECK_EQ(shoal_vv_set(vv, shoal_replica_id(r), 3), SHOAL_OK);
    REQUIRE(shoal_export(r, vv, &b, &n) == SHOAL_OK);
    CHECK_EQ(bundle_count(b, n), 0);
    CHECK_EQ(n, 12);
    shoal_free(b);
    shoal_vv_free(vv);
    /* Atomic: a failing edit in the last document stores nothing. */
    REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "x", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", "y", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_list_remove(t, "c", "z", "l", 0), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_ERANGE);
    shoal_doc *d;
    CHECK_EQ(shoal_doc_get(r, "c", "x", &d), SHOAL_ENOTFOUND);
    CHECK_EQ(vv_seq(r, shoal_replica_id(r)), 3);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* Two replicas with fake clocks. */
typedef struct pair {
    char *da, *db;
    fclock ca, cb;
    shoal_replica *a, *b;
} pair;

static bool
pair_open(pair *p, const char *tag)
{
    memset(p, 0, sizeof *p);
    p->da = check_tmpdir(tag);
    p->db = check_tmpdir(tag);
    p->ca.ms = 1700000000000ull;
    p->cb.ms = 1700000000000ull;
    p->a = open_at(p->da, &p->ca, false);
    p->b = open_at(p->db, &p->cb, false);
    return p->a && p->b;
}

static void
pair_close(pair *p)
{
    shoal_replica_close(p->a);
    shoal_replica_close(p->b);
    check_rmtree(p->da);
    check_rmtree(p->db);
    free(p->da);
    free(p->db);
}

/* Exchange both ways, a->b first when ab, else b->a first. */
static void
exchange(pair *p, bool ab)
{
    if (ab) {
        CHECK_EQ(check_push(p->a, p->b, NULL), SHOAL_OK);
        CHECK_EQ(check_push(p->b, p->a, NULL), SHOAL_OK);
    } else {
        CHECK_EQ(check_push(p->b, p->a, NULL), SHOAL_OK);
        CHECK_EQ(check_push(p->a, p->b, NULL), SHOAL_OK);
    }
    CHECK(same_state(p->a, p->b));
}

static void
test_conflict_lww(void)
{
    for (int order = 0; order < 2; order++) {
        pair p;
        REQUIRE(pair_open(&p, "api-lww"));
        char buf[64];
        /* b writes later than a. */
        p.cb.ms += 10;
        CHECK_EQ(check_set_str(p.a, "c", "d", "f", "from-a"), SHOAL_OK);
        CHECK_EQ(check_set_str(p.b, "c", "d", "f", "from-b"), SHOAL_OK);
        /* a writes later on g. */
        p.ca.ms += 100;
        CHECK_EQ(check_set_str(p.b, "c", "d", "g", "from-b"), SHOAL_OK);
        CHECK_EQ(check_set_str(p.a, "c", "d", "g", "from-a"), SHOAL_OK);
        exchange(&p, order == 0);
        for (int k = 0; k < 2; k++) {
            shoal_replica *r = k ? p.b : p.a;
            const char *s = get_str(r, "c", "d", "f", buf, sizeof buf);
            CHECK(s && strcmp(s, "from-b") == 0);
            s = get_str(r, "c", "d", "g", buf, sizeof buf);
            CHECK(s && strcmp(s, "from-a") == 0);
        }
        /* A later write after the exchange wins everywhere. */
        p.cb.ms = p.ca.ms + 1;
        CHECK_EQ(check_set_str(p.b, "c", "d", "g", "later"), SHOAL_OK);
        exchange(&p, order == 1);
        const char *s = get_str(p.a, "c", "d", "g", buf, sizeof buf);
        CHECK(s && strcmp(s, "later") == 0);
        /* Equal wall clocks: the greater author key breaks the tie. */
        p.ca.ms = p.cb.ms = p.ca.ms + 1000;
        CHECK_EQ(check_set_str(p.a, "c", "t", "f", "a"), SHOAL_OK);
        CHECK_EQ(check_set_str(p.b, "c", "t", "f", "b"), SHOAL_OK);
        exchange(&p, order == 0);
        bool a_wins = memcmp(shoal_replica_id(p.a), shoal_replica_id(p.b), 32) > 0;
        s = get_str(p.b, "c", "t", "f", buf, sizeof buf);
        CHECK(s && strcmp(s, a_wins ? "a" : "b") == 0);
        pair_close(&p);
    }
}

static void
test_conflict_delete_wins(void)
{
    for (int order = 0; order < 2; order++) {
        pair p;
        REQUIRE(pair_open(&p, "api-delwin"));
        CHECK_EQ(check_set_str(p.a, "c", "d", "f", "v"), SHOAL_OK);
        CHECK_EQ(one_edit(p.a, 'c', "c", "d", "n", 0, NULL, 4), SHOAL_OK);
        exchange(&p, true);
        /* a deletes, b edits concurrently and later. */
        p.cb.ms += 5000;
        CHECK_EQ(one_edit(p.a, 'd', "c", "d", NULL, 0, NULL, 0), SHOAL_OK);
        CHECK_EQ(check_set_str(p.b, "c", "d", "f", "edited"), SHOAL_OK);
        CHECK_EQ(one_edit(p.b, 'c', "c", "d", "n", 0, NULL, 10), SHOAL_OK);
        exchange(&p, order == 0);
        shoal_doc *d;
        CHECK_EQ(shoal_doc_get(p.a, "c", "d", &d), SHOAL_EDELETED);
        CHECK_EQ(shoal_doc_get(p.b, "c", "d", &d), SHOAL_EDELETED);
        /* b re-creates (it has seen the delete): epoch 1 everywhere. */
        CHECK_EQ(check_set_str(p.b, "c", "d", "g", "new"), SHOAL_OK);
        exchange(&p, order == 1);
        for (int k = 0; k < 2; k++) {
            REQUIRE(shoal_doc_get(k ? p.b : p.a, "c", "d", &d) == SHOAL_OK);
            CHECK_EQ(shoal_doc_epoch(d), 1);
            CHECK_EQ(shoal_doc_field_count(d), 1);
            shoal_doc_free(d);
        }
        pair_close(&p);
    }
}

static void
test_conflict_counter(void)
{
    pair p;
    REQUIRE(pair_open(&p, "api-cnt"));
    CHECK_EQ(one_edit(p.a, 'c', "c", "d", "n", 0, NULL, 5), SHOAL_OK);
    CHECK_EQ(one_edit(p.b, 'c', "c", "d", "n", 0, NULL, 7), SHOAL_OK);
    CHECK_EQ(one_edit(p.b, 'c', "c", "d", "n", 0, NULL, -2), SHOAL_OK);
    exchange(&p, false);
    int64_t n = 0;
    CHECK(get_counter(p.a, "c", "d", "n", &n) && n == 10);
    CHECK(get_counter(p.b, "c", "d", "n", &n) && n == 10);
    CHECK_EQ(one_edit(p.a, 'c', "c", "d", "n", 0, NULL, 1), SHOAL_OK);
    CHECK_EQ(one_edit(p.b, 'c', "c", "d", "n", 0, NULL, 1), SHOAL_OK);
    exchange(&p, true);
    CHECK(get_counter(p.a, "c", "d", "n", &n) && n == 12);
    pair_close(&p);
}

static void
test_conflict_lists(void)
{
    for (int order = 0; order < 2; order++) {
        pair p;
        REQUIRE(pair_open(&p, "api-list"));
        char buf[256];
        /* Concurrent inserts at the head: the later one comes first. */
        p.cb.ms += 10;
        CHECK_EQ(one_edit(p.a, 'i', "c", "d", "l", 0, "a", 0), SHOAL_OK);
        CHECK_EQ(one_edit(p.b, 'i', "c", "d", "l", 0, "b", 0), SHOAL_OK);
        exchange(&p, order == 0);
        CHECK(get_list(p.a, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "b,a") == 0);
        CHECK(get_list(p.b, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "b,a") == 0);
        /* Concurrent inserts after the same element. */
        p.ca.ms += 100;
        p.cb.ms = p.ca.ms - 50;
        CHECK_EQ(one_edit(p.a, 'i', "c", "d", "l", 1, "x", 0), SHOAL_OK);
        CHECK_EQ(one_edit(p.b, 'i', "c", "d", "l", 1, "y", 0), SHOAL_OK);
        exchange(&p, order == 1);
        CHECK(get_list(p.a, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "b,x,y,a") == 0);
        /* Replace vs delete: the delete wins. */
        p.cb.ms = p.ca.ms + 1000;
        CHECK_EQ(one_edit(p.a, 'r', "c", "d", "l", 0, NULL, 0), SHOAL_OK);
        CHECK_EQ(one_edit(p.b, 'p', "c", "d", "l", 0, "B", 0), SHOAL_OK);
        exchange(&p, order == 0);
        CHECK(get_list(p.a, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "x,y,a") == 0);
        CHECK(get_list(p.b, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "x,y,a") == 0);
        /* Replace vs replace: the later one wins. */
        p.ca.ms = p.cb.ms + 10;
        CHECK_EQ(one_edit(p.a, 'p', "c", "d", "l", 2, "A1", 0), SHOAL_OK);
        CHECK_EQ(one_edit(p.b, 'p', "c", "d", "l", 2, "A2", 0), SHOAL_OK);
        exchange(&p, order == 1);
        CHECK(get_list(p.b, "c", "d", "l", buf, sizeof buf) && strcmp(buf, "x,y,A1") == 0);
        pair_close(&p);
    }
}

static void
test_conflict_kinds(void)
{
    for (int order = 0; order < 2; order++) {
        pair p;
        REQUIRE(pair_open(&p, "api-kindc"));
        /* a makes f a register, b (later) a counter, concurrently. */
        p.cb.ms += 10;
        CHECK_EQ(check_set_str(p.a, "c", "d", "f", "v"), SHOAL_OK);
        CHECK_EQ(one_edit(p.b, 'c', "c", "d", "f", 0, NULL, 3), SHOAL_OK);
        /* and g: a list on a (later), a register on b. */
        p.ca.ms = p.cb.ms + 10;
        CHECK_EQ(check_set_str(p.b, "c", "d", "g", "v"), SHOAL_OK);
        CHECK_EQ(one_edit(p.a, 'i', "c", "d", "g", 0, "e", 0), SHOAL_OK);
        exchange(&p, order == 0);
        for (int k = 0; k < 2; k++) {
            shoal_doc *d;
            REQUIRE(shoal_doc_get(k ? p.b : p.a, "c", "d", &d) == SHOAL_OK);
            size_t i;
            CHECK(shoal_doc_field_find(d, "f", &i) == SHOAL_OK &&
                  shoal_doc_field_kind(d, i) == SHOAL_K_COUNTER);
            CHECK(shoal_doc_field_find(d, "g", &i) == SHOAL_OK &&
                  shoal_doc_field_kind(d, i) == SHOAL_K_LIST);
            shoal_doc_free(d);
        }
        /* The visible kind decides what a local edit may do. */
        CHECK_EQ(check_set_str(p.a, "c", "d", "f", "again"), SHOAL_EKIND);
        CHECK_EQ(one_edit(p.b, 'c', "c", "d", "f", 0, NULL, 1), SHOAL_OK);
        exchange(&p, true);
        pair_close(&p);
    }
}

static void
test_reopen_pending(void)
{
    pair p;
    REQUIRE(pair_open(&p, "api-reopen"));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(one_edit(p.a, 'c', "c", "d", "n", 0, NULL, 1), SHOAL_OK);
    /* Deliver only changes 2 and 3 to b: they wait. */
    shoal_vv *vv;
    REQUIRE(shoal_vv_new(&vv) == SHOAL_OK);
    CHECK_EQ(shoal_vv_set(vv, shoal_replica_id(p.a), 1), SHOAL_OK);
    uint8_t *b;
    size_t n;
    REQUIRE(shoal_export(p.a, vv, &b, &n) == SHOAL_OK);
    shoal_vv_free(vv);
    shoal_import_result res;
    CHECK_EQ(shoal_import(p.b, b, n, &res), SHOAL_OK);
    shoal_free(b);
    CHECK_EQ(res.applied, 0);
    CHECK_EQ(res.pending, 2);
    CHECK_EQ(check_set_str(p.b, "c", "own", "f", "v"), SHOAL_OK);
    uint8_t dv[32], df[32];
    CHECK_EQ(shoal_digest(p.b, false, dv), SHOAL_OK);
    CHECK_EQ(shoal_digest(p.b, true, df), SHOAL_OK);
    uint8_t idb[32];
    memcpy(idb, shoal_replica_id(p.b), 32);
    shoal_replica_close(p.b);
    p.b = open_at(p.db, &p.cb, false);
    REQUIRE(p.b);
    CHECK(memcmp(shoal_replica_id(p.b), idb, 32) == 0);
    uint64_t pc = 0;
    CHECK(shoal_pending_count(p.b, &pc) == SHOAL_OK && pc == 2);
    CHECK_EQ(vv_seq(p.b, shoal_replica_id(p.a)), 0);
    CHECK_EQ(vv_seq(p.b, idb), 1);
    uint8_t dv2[32], df2[32];
    CHECK_EQ(shoal_digest(p.b, false, dv2), SHOAL_OK);
    CHECK_EQ(shoal_digest(p.b, true, df2), SHOAL_OK);
    CHECK(memcmp(dv, dv2, 32) == 0 && memcmp(df, df2, 32) == 0);
    /* The missing change releases the others. */
    CHECK_EQ(check_push(p.a, p.b, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 3);
    CHECK_EQ(res.duplicate, 2);
    CHECK(shoal_pending_count(p.b, &pc) == SHOAL_OK && pc == 0);
    int64_t cnt = 0;
    CHECK(get_counter(p.b, "c", "d", "n", &cnt) && cnt == 3);
    CHECK_EQ(vv_seq(p.b, shoal_replica_id(p.a)), 3);
    pair_close(&p);
}

static void
test_events(void)
{
    pair p;
    REQUIRE(pair_open(&p, "api-ev"));
    shoal_event *e;
    CHECK_EQ(shoal_event_next(p.a, 0, &e), SHOAL_ETIMEDOUT);
    CHECK(e == NULL);
    CHECK_EQ(shoal_event_next(p.a, 20, &e), SHOAL_ETIMEDOUT);
    shoal_txn *t;
    REQUIRE(shoal_txn_begin(p.a, &t) == SHOAL_OK);
    shoal_value v = vstr("v");
    CHECK_EQ(shoal_txn_set(t, "c", "x", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "k", "y", "f", &v), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    REQUIRE(shoal_event_next(p.a, 0, &e) == SHOAL_OK);
    CHECK(strcmp(shoal_event_collection(e), "c") == 0);
    CHECK(strcmp(shoal_event_doc_id(e), "x") == 0);
    CHECK(!shoal_event_remote(e) && !shoal_event_overflowed(e));
    shoal_event_free(e);
    REQUIRE(shoal_event_next(p.a, -1, &e) == SHOAL_OK);
    CHECK(strcmp(shoal_event_collection(e), "k") == 0);
    shoal_event_free(e);
    CHECK_EQ(shoal_event_next(p.a, 0, &e), SHOAL_ETIMEDOUT);
    /* A failed commit queues nothing. */
    CHECK_EQ(one_edit(p.a, 'r', "c", "x", "nolist", 0, NULL, 0), SHOAL_ERANGE);
    CHECK_EQ(shoal_event_next(p.a, 0, &e), SHOAL_ETIMEDOUT);
    /* Remote events. */
    CHECK_EQ(check_push(p.a, p.b, NULL), SHOAL_OK);
    int got = 0;
    while (shoal_event_next(p.b, 0, &e) == SHOAL_OK) {
        CHECK(shoal_event_remote(e));
        got++;
        shoal_event_free(e);
    }
    CHECK_EQ(got, 2);
    /* A duplicate import changes nothing and queues nothing. */
    CHECK_EQ(check_push(p.a, p.b, NULL), SHOAL_OK);
    CHECK_EQ(shoal_event_next(p.b, 0, &e), SHOAL_ETIMEDOUT);
    /* Overflow: one txn over more documents than the queue holds. */
    REQUIRE(shoal_txn_begin(p.a, &t) == SHOAL_OK);
    char id[32];
    for (int i = 0; i < 4100; i++) {
        snprintf(id, sizeof id, "d%05d", i);
        CHECK_EQ(shoal_txn_set(t, "many", id, "f", &v), SHOAL_OK);
    }
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    REQUIRE(shoal_event_next(p.a, 0, &e) == SHOAL_OK);
    CHECK(shoal_event_overflowed(e));
    CHECK(strcmp(shoal_event_doc_id(e), "d00004") == 0);
    shoal_event_free(e);
    REQUIRE(shoal_event_next(p.a, 0, &e) == SHOAL_OK);
    CHECK(!shoal_event_overflowed(e));
    shoal_event_free(e);
    pair_close(&p);
}

typedef struct waiter {
    shoal_replica *r;
    shoal_err err;
    int n;
} waiter;

static void *
wait_events(void *arg)
{
    waiter *w = arg;
    shoal_event *e;
    for (;;) {
        w->err = shoal_event_next(w->r, -1, &e);
        if (w->err != SHOAL_OK)
            break;
        w->n++;
        shoal_event_free(e);
    }
    return NULL;
}

static void
test_events_threads(void)
{
    char *dir = check_tmpdir("api-evt");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    waiter w = { r, SHOAL_OK, 0 };
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, wait_events, &w) == 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(check_set_str(r, "c", "d", "f", "v"), SHOAL_OK);
    uint64_t t0 = check_now_ms();
    while (__atomic_load_n(&w.n, __ATOMIC_SEQ_CST) < 5 && check_now_ms() - t0 < 10000)
        usleep(1000);
    CHECK_EQ(__atomic_load_n(&w.n, __ATOMIC_SEQ_CST), 5);
    /* Closing wakes the waiter with ECLOSED. */
    shoal_replica_close(r);
    pthread_join(th, NULL);
    CHECK_EQ(w.err, SHOAL_ECLOSED);
    check_rmtree(dir);
    free(dir);
}

static void
test_hlc_skew(void)
{
    pair p;
    REQUIRE(pair_open(&p, "api-skew"));
    /* b's clock is 10 minutes ahead (drift bound 60 s). */
    p.cb.ms = p.ca.ms + 600000;
    CHECK_EQ(check_set_str(p.b, "c", "future", "f", "v"), SHOAL_OK);
    shoal_import_result res;
    CHECK_EQ(check_push(p.b, p.a, &res), SHOAL_OK);
    CHECK_EQ(res.applied, 0);
    CHECK_EQ(res.pending, 1);
    shoal_doc *d;
    CHECK_EQ(shoal_doc_get(p.a, "c", "future", &d), SHOAL_ENOTFOUND);
    /* a's own writes keep their time: the future change did not drag a's
     * clock along. */
    CHECK_EQ(check_set_str(p.a, "c", "now", "f", "v"), SHOAL_OK);
    uint64_t h[8];
    size_t nh = log_hlcs(p.a, h, 8);
    CHECK_EQ(nh, 1);
    CHECK(nh == 1 && SHOAL__HLC_MS(h[0]) == p.ca.ms);
    /* Still held a little later. */
    p.ca.ms += 60000;
    CHECK_EQ(check_set_str(p.a, "c", "now", "f", "w"), SHOAL_OK);
    CHECK_EQ(shoal_doc_get(p.a, "c", "future", &d), SHOAL_ENOTFOUND);
    uint64_t pc = 0;
    CHECK(shoal_pending_count(p.a, &pc) == SHOAL_OK && pc == 1);
    /* Survives a restart. */
    shoal_replica_close(p.a);
    p.a = open_at(p.da, &p.ca, false);
    REQUIRE(p.a);
    CHECK(shoal_pending_count(p.a, &pc) == SHOAL_OK && pc == 1);
    /* Once a's clock is within the drift bound, the next commit applies it. */
    p.ca.ms = p.cb.ms - 60000;
    CHECK_EQ(check_set_str(p.a, "c", "now", "f", "x"), SHOAL_OK);
    CHECK(shoal_pending_count(p.a, &pc) == SHOAL_OK && pc == 0);
    REQUIRE(shoal_doc_get(p.a, "c", "future", &d) == SHOAL_OK);
    shoal_doc_free(d);
    CHECK_EQ(check_push(p.a, p.b, NULL), SHOAL_OK);
    CHECK(same_state(p.a, p.b));
    /* Same via import: reopen also drains. */
    pair_close(&p);

    REQUIRE(pair_open(&p, "api-skew2"));
    p.cb.ms = p.ca.ms + 600000;
    CHECK_EQ(check_set_str(p.b, "c", "future", "f", "v"), SHOAL_OK);
    CHECK_EQ(check_push(p.b, p.a, &res), SHOAL_OK);
    CHECK_EQ(res.pending, 1);
    p.ca.ms = p.cb.ms;
    shoal_replica_close(p.a);
    p.a = open_at(p.da, &p.ca, false);
    REQUIRE(p.a);
    CHECK(shoal_pending_count(p.a, &pc) == SHOAL_OK && pc == 0);
    CHECK_EQ(shoal_doc_get(p.a, "c", "future", &d), SHOAL_OK);
    shoal_doc_free(d);
    pair_close(&p);
}

static void
test_hlc_backwards_restart(void)
{
    char *dir = check_tmpdir("api-hlc");
    fclock c = { 1700000000000ull };
    shoal_replica *r = open_at(dir, &c, false);
    REQUIRE(r);
    CHECK_EQ(check_set_str(r, "c", "d", "f", "1"), SHOAL_OK);
    c.ms -= 5000; /* the wall clock goes back */
    CHECK_EQ(check_set_str(r, "c", "d", "f", "2"), SHOAL_OK);
    CHECK_EQ(check_set_str(r, "c", "d", "f", "3"), SHOAL_OK);
    shoal_replica_close(r);
    c.ms -= 5000;
    r = open_at(dir, &c, false);
    REQUIRE(r);
    CHECK_EQ(check_set_str(r, "c", "e", "f", "4"), SHOAL_OK);
    c.ms += 20000;
    CHECK_EQ(check_set_str(r, "c", "e", "f", "5"), SHOAL_OK);
    uint64_t h[8];
    size_t n = log_hlcs(r, h, 8);
    CHECK_EQ(n, 5);
    for (size_t i = 1; i < n; i++)
        CHECK(h[i] > h[i - 1]);
    CHECK(n == 5 && SHOAL__HLC_MS(h[4]) == c.ms);
    char buf[16];
    const char *s = get_str(r, "c", "d", "f", buf, sizeof buf);
    CHECK(s && strcmp(s, "3") == 0);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

typedef struct worker {
    shoal_replica *r;
    int id;
    int fails;
} worker;

static void *
commit_loop(void *arg)
{
    worker *w = arg;
    char doc[16];
    snprintf(doc, sizeof doc, "w%d", w->id);
    for (int i = 0; i < 40; i++) {
        shoal_txn *t;
        if (shoal_txn_begin(w->r, &t) != SHOAL_OK) {
            w->fails++;
            continue;
        }
        shoal_value v = vint(i);
        if (shoal_txn_counter_add(t, "c", "shared", "n", 1) != SHOAL_OK ||
            shoal_txn_set(t, "c", doc, "i", &v) != SHOAL_OK) {
            shoal_txn_abort(t);
            w->fails++;
            continue;
        }
        if (shoal_txn_commit(t) != SHOAL_OK)
            w->fails++;
        shoal_doc *d;
        if (shoal_doc_get(w->r, "c", "shared", &d) == SHOAL_OK)
            shoal_doc_free(d);
        else
            w->fails++;
    }
    return NULL;
}

static void
test_threads(void)
{
    char *dir = check_tmpdir("api-thr");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    enum {
        N = 4
    };
    pthread_t th[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){ r, i, 0 };
        REQUIRE(pthread_create(&th[i], NULL, commit_loop, &w[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(w[i].fails, 0);
    }
    int64_t n = 0;
    CHECK(get_counter(r, "c", "shared", "n", &n) && n == N * 40);
    CHECK_EQ(vv_seq(r, shoal_replica_id(r)), N * 40 * 2);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* Processes that open one fresh directory at the same moment end up with
 * one identity: core/identity.c creates it under the store's writer lock
 * (shoal__store_exclusive).  Without the lock each process that found no
 * file would write its own key and the last rename would win. */
static void
identity_race_round(const char *top, int round)
{
    enum {
        NPROC = 8
    };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/r%d", top, round);
    int go[2], res[2];
    REQUIRE(pipe(go) == 0 && pipe(res) == 0);
    fflush(NULL);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(res[0]);
            char c;
            if (read(go[0], &c, 1) != 0) /* EOF: everyone goes at once */
                _exit(3);
            shoal_replica *cr = open_at(dir, NULL, true);
            if (!cr)
                _exit(2);
            /* One write of 32 bytes (< PIPE_BUF) is atomic. */
            ssize_t w = write(res[1], shoal_replica_id(cr), SHOAL_KEY_BYTES);
            shoal_replica_close(cr);
            _exit(w == SHOAL_KEY_BYTES ? 0 : 1);
        }
    }
    close(go[0]);
    close(res[1]);
    close(go[1]); /* release the children */
    uint8_t ids[NPROC][SHOAL_KEY_BYTES];
    size_t got = 0;
    while (got < sizeof ids) {
        ssize_t r = read(res[0], (uint8_t *)ids + got, sizeof ids - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(res[0]);
    for (int i = 0; i < NPROC; i++) {
        int st = 0;
        CHECK(waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK_EQ(got, sizeof ids);
    shoal_replica *r = open_at(dir, NULL, true);
    REQUIRE(r);
    for (int i = 0; i < NPROC; i++)
        CHECK(memcmp(ids[i], shoal_replica_id(r), SHOAL_KEY_BYTES) == 0);
    shoal_replica_close(r);
}

static void
test_identity_race(void)
{
    char *top = check_tmpdir("api-idrace");
    for (int round = 0; round < 6; round++)
        identity_race_round(top, round);
    check_rmtree(top);
    free(top);
}

static void
test_two_processes(void)
{
    char *dir = check_tmpdir("api-proc");
    /* Create the identity first so both processes share it. */
    shoal_replica *r = open_at(dir, NULL, true);
    REQUIRE(r);
    shoal_replica_close(r);
    int go[2];
    REQUIRE(pipe(go) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        shoal_replica *cr = open_at(dir, NULL, true);
        if (!cr)
            _exit(2);
        int bad = 0;
        char id[16];
        for (int i = 0; i < 30; i++) {
            snprintf(id, sizeof id, "p%02d", i);
            if (check_set_str(cr, "proc", id, "f", "child") != SHOAL_OK)
                bad++;
        }
        /* Also change a document the parent has cached. */
        if (check_set_str(cr, "proc", "parent", "g", "child") != SHOAL_OK)
            bad++;
        shoal_replica_close(cr);
        _exit(bad ? 1 : 0);
    }
    close(go[0]);
    r = open_at(dir, NULL, true);
    REQUIRE(r);
    CHECK_EQ(check_set_str(r, "proc", "parent", "f", "parent"), SHOAL_OK);
    char buf[16];
    CHECK(get_str(r, "proc", "parent", "f", buf, sizeof buf) != NULL);
    CHECK(write(go[1], "g", 1) == 1);
    close(go[1]);
    /* Read while the child writes, until its 30 documents are visible. */
    size_t seen = 0;
    uint64_t t0 = check_now_ms();
    int reads = 0;
    while (seen < 31 && check_now_ms() - t0 < 30000) {
        shoal_strlist *l;
        if (shoal_docs(r, "proc", &l) == SHOAL_OK) {
            seen = shoal_strlist_count(l);
            shoal_strlist_free(l);
        }
        reads++;
        usleep(2000);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(seen, 31);
    const char *s = get_str(r, "proc", "p29", "f", buf, sizeof buf);
    CHECK(s && strcmp(s, "child") == 0);
    /* Both processes allocated seqs from one counter under LMDB's lock. */
    CHECK_EQ(vv_seq(r, shoal_replica_id(r)), 32);
    /* The parent's cache noticed the child's write to a document it held. */
    s = get_str(r, "proc", "parent", "g", buf, sizeof buf);
    CHECK(s && strcmp(s, "child") == 0);
    CHECK_EQ(check_set_str(r, "proc", "parent", "h", "parent-again"), SHOAL_OK);
    s = get_str(r, "proc", "parent", "g", buf, sizeof buf);
    CHECK(s && strcmp(s, "child") == 0);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

/* Many changes on one document: snapshots and change tails on disk. */
static void
test_snapshot_reload(void)
{
    char *dir = check_tmpdir("api-snap");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    for (int i = 0; i < 300; i++) {
        shoal_txn *t;
        REQUIRE(shoal_txn_begin(r, &t) == SHOAL_OK);
        shoal_value v = vint(i);
        CHECK_EQ(shoal_txn_list_insert(t, "c", "big", "l", (size_t)(i / 2), &v), SHOAL_OK);
        CHECK_EQ(shoal_txn_counter_add(t, "c", "big", "n", i), SHOAL_OK);
        if (i % 7 == 0)
            CHECK_EQ(shoal_txn_list_remove(t, "c", "big", "l", 0), SHOAL_OK);
        CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    }
    uint8_t d1[32], d2[32], v1[32], v2[32];
    CHECK_EQ(shoal_digest(r, true, d1), SHOAL_OK);
    CHECK_EQ(shoal_digest(r, false, v1), SHOAL_OK);
    shoal_replica_close(r);
    r = open_at(dir, NULL, false);
    REQUIRE(r);
    CHECK_EQ(shoal_digest(r, true, d2), SHOAL_OK);
    CHECK_EQ(shoal_digest(r, false, v2), SHOAL_OK);
    CHECK(memcmp(d1, d2, 32) == 0 && memcmp(v1, v2, 32) == 0);
    int64_t n = 0;
    CHECK(get_counter(r, "c", "big", "n", &n) && n == 299 * 300 / 2);
    /* The same history replayed elsewhere gives the same state. */
    char *dir2 = check_tmpdir("api-snap2");
    shoal_replica *r2 = open_at(dir2, NULL, false);
    REQUIRE(r2);
    CHECK_EQ(check_push(r, r2, NULL), SHOAL_OK);
    CHECK(same_state(r, r2));
    shoal_replica_close(r2);
    shoal_replica_close(r);
    check_rmtree(dir);
    check_rmtree(dir2);
    free(dir);
    free(dir2);
}

static void
chunk(crypto_generichash_state *st, const void *p, size_t n)
{
    uint8_t len[4];
    shoal__be32_put(len, (uint32_t)n);
    crypto_generichash_update(st, len, 4);
    crypto_generichash_update(st, p, n);
}

/* The digest streams of docs/digests.md, rebuilt independently. */
static void
test_digest_stream(void)
{
    char *dir = check_tmpdir("api-dig");
    shoal_replica *r = open_at(dir, NULL, false);
    REQUIRE(r);
    uint8_t got[32], want[32];
    CHECK_EQ(shoal_digest(r, false, got), SHOAL_OK);
    crypto_generichash(want, 32, (const uint8_t *)"shoal-visible-v1", 16, NULL, 0);
    CHECK(memcmp(got, want, 32) == 0);
    CHECK_EQ(shoal_digest(r, true, got), SHOAL_OK);
    crypto_generichash(want, 32, (const uint8_t *)"shoal-full-v1", 13, NULL, 0);
    CHECK(memcmp(got, want, 32) == 0);

    /* Two documents, one of them deleted: rebuild both streams from the
     * exported changes with the crdt encoders. */
    CHECK_EQ(check_set_str(r, "c", "d", "f", "v"), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'c', "c", "d", "n", 0, NULL, 3), SHOAL_OK);
    CHECK_EQ(check_set_str(r, "b", "gone", "f", "v"), SHOAL_OK);
    CHECK_EQ(one_edit(r, 'd', "b", "gone", NULL, 0, NULL, 0), SHOAL_OK);
    uint8_t *b;
    size_t n, cnt = 0;
    REQUIRE(shoal_export(r, NULL, &b, &n) == SHOAL_OK);
    shoal__span *sp = NULL;
    REQUIRE(shoal__bundle_split(b, n, &sp, &cnt) == SHOAL_OK && cnt == 4);
    shoal__doc *dd = shoal__doc_new(), *dg = shoal__doc_new();
    REQUIRE(dd && dg);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *body;
        size_t el, bl;
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, shoal__envelope_author(b + sp[i].off), 32);
        REQUIRE(shoal__envelope_parse(b + sp[i].off, sp[i].len, &el, &body, &bl) == 0);
        REQUIRE(shoal__change_decode(body, bl, &c) == SHOAL_OK);
        shoal__doc *t = c.coll[0] == 'c' ? dd : dg;
        CHECK_EQ(shoal__doc_apply(t, &c, 0, c.nops), SHOAL_OK);
        shoal__change_clear(&c);
    }
    shoal__buf vd, fd, fg;
    shoal__buf_init(&vd);
    shoal__buf_init(&fd);
    shoal__buf_init(&fg);
    CHECK_EQ(shoal__doc_encode_visible(dd, &vd), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_full(dd, &fd), SHOAL_OK);
    CHECK_EQ(shoal__doc_encode_full(dg, &fg), SHOAL_OK);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"shoal-visible-v1", 16);
    chunk(&st, "c", 1);
    chunk(&st, "d", 1);
    chunk(&st, vd.p, vd.len);
    crypto_generichash_final(&st, want, 32);
    CHECK_EQ(shoal_digest(r, false, got), SHOAL_OK);
    CHECK(memcmp(got, want, 32) == 0);
    /* Full: "b"/"gone" (deleted) sorts before "c"/"d". */
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"shoal-full-v1", 13);
    chunk(&st, "b", 1);
    chunk(&st, "gone", 4);
    chunk(&st, fg.p, fg.len);
    chunk(&st, "c", 1);
    chunk(&st, "d", 1);
    chunk(&st, fd.p, fd.len);
    crypto_generichash_final(&st, want, 32);
    CHECK_EQ(shoal_digest(r, true, got), SHOAL_OK);
    CHECK(memcmp(got, want, 32) == 0);
    shoal__buf_free(&vd);
    shoal__buf_free(&fd);
    shoal__buf_free(&fg);
    shoal__doc_free(dd);
    shoal__doc_free(dg);
    shoal__free(sp);
    shoal_free(b);
    shoal_replica_close(r);
    check_rmtree(dir);
    free(dir);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    check_seed(1);
    RUN(test_errors_version);
    RUN(test_options);
    RUN(test_identity_reopen);
    RUN(test_digest_stream);
    RUN(test_snapshot_reload);
    RUN(test_values_and_reads);
    RUN(test_einval);
    RUN(test_counter_list_unset);
    RUN(test_delete_recreate_local);
    RUN(test_multi_doc_txn);
    RUN(test_conflict_lww);
    RUN(test_conflict_delete_wins);
    RUN(test_conflict_counter);
    RUN(test_conflict_lists);
    RUN(test_conflict_kinds);
    RUN(test_reopen_pending);
    RUN(test_events);
    RUN(test_events_threads);
    RUN(test_hlc_skew);
    RUN(test_hlc_backwards_restart);
    RUN(test_threads);
    RUN(test_identity_race);
    RUN(test_two_processes);
    return check_summary();
}
