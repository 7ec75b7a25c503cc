/*
 * bench/bench_trace.c - `shoal-bench trace FILE`: replay a text editing
 * trace (automerge-paper.json.gz) on a list field, one list element per
 * character, in several variants, and print one JSON line per variant with
 * the median of R runs.
 *
 * The trace is parsed once in the parent (gzread + jansson) into flat
 * arrays, the JSON tree is freed, and every (run, variant) pair runs in a
 * forked child (bench/util.c): peak RSS then belongs to one variant, and one
 * variant's heap does not slow the next.  Runs go round-robin (run 1 of
 * every variant, then run 2, ...) so a noisy minute on the shared machine
 * spreads over all variants instead of hitting one.
 *
 * Variants (docs/benchmarks.md says what each figure means):
 *   crdt                    the in-memory list of crdt/ alone
 *   local-batch100          public API, commit every 100 edits, non-durable
 *   local-batch100-durable  same, durable; plus the raw LMDB floor
 *   local-txn               public API, every edit in one transaction
 *   local-batch100-policy   local-batch100 on a replica that enforces
 *                           permissions (docs/permissions.md): every commit
 *                           runs the write check; the editing device holds
 *                           a role that may write the list
 *   remote-policy           remote, of that bundle, into an empty replica
 *                           that enforces the same root's permissions
 *   local-batch100-sealed   local-batch100-policy where an auditor role may
 *                           not read the list: every op is sealed (its
 *                           values in a sealed group per change)
 *   remote-sealed           remote-policy of that bundle (version 2, the
 *                           groups with their changes)
 *   remote                  import of local-batch100's bundle into an empty
 *                           replica; plus the signature-verification floor
 *
 * Every variant checks that the final text equals the trace's endContent.
 */
#include "bench.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "crdt.h"
#include "shoal.h"

#define COLL  "bench"
#define DOC   "trace"
#define FIELD "text"

/* ------------------------------------------------------------- the trace */

/* A trace in flat arrays: patch i deletes ndel[i] code points at pos[i],
 * then inserts text[ins_off[i] .. ins_off[i] + ins_len[i]) (UTF-8) there. */
typedef struct trace {
    size_t n;          /* patches */
    uint32_t *pos;     /* owned */
    uint32_t *ndel;    /* owned */
    size_t *ins_off;   /* owned */
    uint32_t *ins_len; /* owned; bytes */
    char *text;        /* owned; every inserted text back to back */
    char *end;         /* owned; endContent */
    size_t end_len;
    uint64_t ops; /* single-character inserts + deletes */
} trace;

static void
trace_free(trace *t)
{
    free(t->pos);
    free(t->ndel);
    free(t->ins_off);
    free(t->ins_len);
    free(t->text);
    free(t->end);
    memset(t, 0, sizeof *t);
}

/* Length of the UTF-8 sequence that starts with byte c (1 for stray bytes). */
static size_t
utf8_len(unsigned char c)
{
    if (c >= 0xf0)
        return 4;
    if (c >= 0xe0)
        return 3;
    if (c >= 0xc0)
        return 2;
    return 1;
}

static size_t
utf8_count(const char *s, size_t n)
{
    size_t i = 0, cps = 0;

    while (i < n) {
        i += utf8_len((unsigned char)s[i]);
        cps++;
    }
    return cps;
}

/* Read the whole gzip file into memory (zlib's gzread also reads plain
 * files).  Caller frees. */
static char *
gz_slurp(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    size_t cap = 1 << 20, n = 0;
    char *buf;

    if (!f) {
        fprintf(stderr, "shoal-bench: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(cap);
    while (buf) {
        int r;

        if (cap - n < (1 << 16)) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r < 0) {
            int e;
            fprintf(stderr, "shoal-bench: %s: %s\n", path, gzerror(f, &e));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    gzclose(f);
    *len = n;
    return buf;
}

static int
trace_load(const char *path, trace *t)
{
    json_error_t jerr;
    json_t *root, *txns, *txn, *patches, *patch;
    size_t len, i, j, text_cap = 1 << 16, text_len = 0, cap = 1024;
    char *raw = gz_slurp(path, &len);
    const char *end;

    memset(t, 0, sizeof *t);
    if (!raw)
        return -1;
    root = json_loadb(raw, len, 0, &jerr);
    free(raw);
    if (!root) {
        fprintf(stderr, "shoal-bench: %s: line %d: %s\n", path, jerr.line, jerr.text);
        return -1;
    }
    txns = json_object_get(root, "txns");
    end = json_string_value(json_object_get(root, "endContent"));
    if (!json_is_array(txns) || !end) {
        fprintf(stderr, "shoal-bench: %s: no txns array or endContent\n", path);
        json_decref(root);
        return -1;
    }
    if (json_string_length(json_object_get(root, "startContent")) != 0) {
        fprintf(stderr, "shoal-bench: %s: non-empty startContent is not supported\n", path);
        json_decref(root);
        return -1;
    }
    t->end_len = json_string_length(json_object_get(root, "endContent"));
    t->end = malloc(t->end_len + 1);
    t->pos = malloc(cap * sizeof *t->pos);
    t->ndel = malloc(cap * sizeof *t->ndel);
    t->ins_off = malloc(cap * sizeof *t->ins_off);
    t->ins_len = malloc(cap * sizeof *t->ins_len);
    t->text = malloc(text_cap);
    if (!t->end || !t->pos || !t->ndel || !t->ins_off || !t->ins_len || !t->text)
        goto nomem;
    memcpy(t->end, end, t->end_len + 1);

    json_array_foreach(txns, i, txn)
    {
        patches = json_object_get(txn, "patches");
        if (!json_is_array(patches))
            goto bad;
        json_array_foreach(patches, j, patch)
        {
            json_t *jp = json_array_get(patch, 0), *jd = json_array_get(patch, 1);
            json_t *js = json_array_get(patch, 2);
            size_t slen;

            if (!json_is_integer(jp) || !json_is_integer(jd) || !json_is_string(js) ||
                json_integer_value(jp) < 0 || json_integer_value(jd) < 0 ||
                json_integer_value(jp) > UINT32_MAX || json_integer_value(jd) > UINT32_MAX)
                goto bad;
            if (t->n == cap) {
                cap *= 2;
                t->pos = realloc(t->pos, cap * sizeof *t->pos);
                t->ndel = realloc(t->ndel, cap * sizeof *t->ndel);
                t->ins_off = realloc(t->ins_off, cap * sizeof *t->ins_off);
                t->ins_len = realloc(t->ins_len, cap * sizeof *t->ins_len);
                if (!t->pos || !t->ndel || !t->ins_off || !t->ins_len)
                    goto nomem;
            }
            slen = json_string_length(js);
            while (text_len + slen > text_cap) {
                text_cap *= 2;
                t->text = realloc(t->text, text_cap);
                if (!t->text)
                    goto nomem;
            }
            memcpy(t->text + text_len, json_string_value(js), slen);
            t->pos[t->n] = (uint32_t)json_integer_value(jp);
            t->ndel[t->n] = (uint32_t)json_integer_value(jd);
            t->ins_off[t->n] = text_len;
            t->ins_len[t->n] = (uint32_t)slen;
            t->ops += t->ndel[t->n] + utf8_count(t->text + text_len, slen);
            text_len += slen;
            t->n++;
        }
    }
    json_decref(root);
    malloc_trim(0);
    return 0;

bad:
    fprintf(stderr, "shoal-bench: %s: malformed txn or patch\n", path);
    json_decref(root);
    trace_free(t);
    return -1;
nomem:
    fprintf(stderr, "shoal-bench: out of memory reading %s\n", path);
    json_decref(root);
    trace_free(t);
    return -1;
}

/* Replay t: for each patch, ndel deletes at pos, then one insert per code
 * point at pos, pos + 1, ...  Stops at the first non-zero return. */
typedef int (*del_fn)(void *ctx, size_t pos);
typedef int (*ins_fn)(void *ctx, size_t pos, const char *ch, size_t len);

static int
replay(const trace *t, del_fn del, ins_fn ins, void *ctx)
{
    size_t i;
    int rc;

    for (i = 0; i < t->n; i++) {
        size_t pos = t->pos[i], k, off = 0;
        const char *s = t->text + t->ins_off[i];

        for (k = 0; k < t->ndel[i]; k++)
            if ((rc = del(ctx, pos)) != 0)
                return rc;
        while (off < t->ins_len[i]) {
            size_t cl = utf8_len((unsigned char)s[off]);
            if ((rc = ins(ctx, pos++, s + off, cl)) != 0)
                return rc;
            off += cl;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- the results */

/* What a child sends back (fixed size, over a pipe). */
typedef struct result {
    double ms;              /* the measured phase */
    double floor_ms;        /* raw LMDB durable commits (-durable), else -1 */
    double verify_floor_ms; /* signature checks alone (remote), else -1 */
    double rss_mb;          /* peak RSS of the child after its reset */
    double rss_base_mb;     /* RSS when the measured phase began */
    uint64_t ops;
    uint64_t bytes;       /* signed changes: envelopes without bundle header */
    uint64_t changes;     /* signed changes produced / imported */
    uint64_t commits;     /* write transactions committed */
    uint64_t final_len;   /* code points of the final text */
    uint64_t write_bytes; /* handed to write syscalls in the measured phase */
    uint64_t floor_write_bytes;
    char err[240];
} result;

static void
set_err(result *res, const char *fmt, const char *a, const char *b)
{
    snprintf(res->err, sizeof res->err, fmt, a, b);
}

/* ------------------------------------------------------- variant: crdt */

typedef struct crdt_ctx {
    shoal__list *l;
    uint64_t next; /* hlc of the next element id */
} crdt_ctx;

static int
author_cmp(uint32_t a, uint32_t b, void *ctx)
{
    (void)ctx;
    return (a > b) - (a < b);
}

static int
crdt_del(void *c, size_t pos)
{
    crdt_ctx *x = c;
    shoal__eid id;
    int rc = shoal__list_id_at(x->l, pos, &id);

    return rc ? rc : shoal__list_delete(x->l, &id);
}

static int
crdt_ins(void *c, size_t pos, const char *ch, size_t len)
{
    crdt_ctx *x = c;
    shoal__eid ref, id = { .hlc = ++x->next, .author = 0, .index = 0 };
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)ch, .len = len };
    int rc;

    if (pos == 0)
        return shoal__list_insert(x->l, NULL, &id, &v);
    rc = shoal__list_id_at(x->l, pos - 1, &ref);
    return rc ? rc : shoal__list_insert(x->l, &ref, &id, &v);
}

typedef struct textbuf {
    char *p;
    size_t len, cap, cps;
} textbuf;

static int
textbuf_add(textbuf *tb, const void *p, size_t n)
{
    if (tb->len + n > tb->cap) {
        size_t cap = tb->cap ? tb->cap * 2 : 4096;
        char *np;
        while (cap < tb->len + n)
            cap *= 2;
        np = realloc(tb->p, cap);
        if (!np)
            return -1;
        tb->p = np;
        tb->cap = cap;
    }
    memcpy(tb->p + tb->len, p, n);
    tb->len += n;
    tb->cps++;
    return 0;
}

static int
crdt_collect(const shoal__eid *id, const shoal__eid *value_op, const shoal_value *v, bool deleted,
             void *arg)
{
    (void)id;
    (void)value_op;
    if (deleted)
        return 0;
    if (v->type != SHOAL_T_STR)
        return SHOAL_EKIND;
    return textbuf_add(arg, v->ptr, v->len) ? SHOAL_ENOMEM : 0;
}

static bool
text_matches(const trace *t, const textbuf *tb, result *res)
{
    res->final_len = tb->cps;
    if (tb->len != t->end_len || memcmp(tb->p, t->end, t->end_len) != 0) {
        snprintf(res->err, sizeof res->err,
                 "final text differs from endContent (%zu bytes, expected %zu)", tb->len,
                 t->end_len);
        return false;
    }
    return true;
}

static int
run_crdt(const trace *t, result *res)
{
    crdt_ctx x = { 0 };
    textbuf tb = { 0 };
    uint64_t t0;
    int rc;

    res->rss_base_mb = shoal__bench_rss_mb();
    t0 = shoal__bench_now_ns();
    x.l = shoal__list_new(author_cmp, NULL);
    if (!x.l) {
        set_err(res, "shoal__list_new failed%s%s", "", "");
        return -1;
    }
    rc = replay(t, crdt_del, crdt_ins, &x);
    res->ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
    res->rss_mb = shoal__bench_peak_rss_mb();
    if (rc != 0) {
        set_err(res, "list edit failed: %s%s", shoal_strerror((shoal_err)rc), "");
        shoal__list_free(x.l);
        return -1;
    }
    rc = shoal__list_visit(x.l, crdt_collect, &tb);
    shoal__list_free(x.l);
    if (rc != 0) {
        set_err(res, "list visit failed: %s%s", shoal_strerror((shoal_err)rc), "");
        free(tb.p);
        return -1;
    }
    rc = text_matches(t, &tb, res) ? 0 : -1;
    free(tb.p);
    return rc;
}

/* ------------------------------------------------ variants: public API */

typedef struct api_ctx {
    shoal_replica *r;
    shoal_txn *txn;
    size_t batch; /* edits per commit; 0 = one transaction for all */
    size_t in_txn;
    uint64_t commits;
    shoal_err err;
    const char *what;
} api_ctx;

static int
api_after_edit(api_ctx *x, shoal_err e, const char *what)
{
    if (e != SHOAL_OK) {
        x->err = e;
        x->what = what;
        return -1;
    }
    if (x->batch && ++x->in_txn == x->batch) {
        shoal_txn *txn = x->txn;
        x->txn = NULL;
        x->in_txn = 0;
        if ((e = shoal_txn_commit(txn)) != SHOAL_OK) {
            x->err = e;
            x->what = "shoal_txn_commit";
            return -1;
        }
        x->commits++;
        if ((e = shoal_txn_begin(x->r, &x->txn)) != SHOAL_OK) {
            x->err = e;
            x->what = "shoal_txn_begin";
            return -1;
        }
    }
    return 0;
}

static int
api_del(void *c, size_t pos)
{
    api_ctx *x = c;
    return api_after_edit(x, shoal_txn_list_remove(x->txn, COLL, DOC, FIELD, pos),
                          "shoal_txn_list_remove");
}

static int
api_ins(void *c, size_t pos, const char *ch, size_t len)
{
    api_ctx *x = c;
    shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)ch, .len = len };
    return api_after_edit(x, shoal_txn_list_insert(x->txn, COLL, DOC, FIELD, pos, &v),
                          "shoal_txn_list_insert");
}

/* The text of the list field, read back through the public API. */
static int
api_text(shoal_replica *r, textbuf *tb, result *res)
{
    shoal_doc *d = NULL;
    size_t fi, n, j;
    shoal_err e;

    if ((e = shoal_doc_get(r, COLL, DOC, &d)) != SHOAL_OK ||
        (e = shoal_doc_field_find(d, FIELD, &fi)) != SHOAL_OK ||
        (e = shoal_doc_field_list_len(d, fi, &n)) != SHOAL_OK) {
        set_err(res, "reading the text back: %s%s", shoal_strerror(e), "");
        shoal_doc_free(d);
        return -1;
    }
    for (j = 0; j < n; j++) {
        shoal_value v;
        if ((e = shoal_doc_field_list_item(d, fi, j, &v)) != SHOAL_OK || v.type != SHOAL_T_STR ||
            textbuf_add(tb, v.ptr, v.len) != 0) {
            set_err(res, "reading list item: %s%s", shoal_strerror(e), "");
            shoal_doc_free(d);
            return -1;
        }
    }
    shoal_doc_free(d);
    return 0;
}

static int
api_check(const trace *t, shoal_replica *r, result *res)
{
    textbuf tb = { 0 };
    int rc = api_text(r, &tb, res);

    if (rc == 0 && !text_matches(t, &tb, res))
        rc = -1;
    free(tb.p);
    return rc;
}

/* A replica in a new temp dir; root (32 bytes) makes it enforce
 * permissions, NULL leaves it in open mode. */
static shoal_err
open_replica_root(const char *name, bool durable, const uint8_t *root, shoal_replica **r,
                  char **dir)
{
    shoal_options *o = NULL;
    shoal_err e;

    *r = NULL;
    *dir = shoal__bench_mkdtemp(name);
    if (!*dir)
        return SHOAL_ESTORE;
    if ((e = shoal_options_new(&o)) != SHOAL_OK)
        return e;
    e = shoal_options_set_durable(o, durable);
    if (e == SHOAL_OK)
        e = shoal_options_set_map_size(o, (uint64_t)256 << 20);
    if (e == SHOAL_OK && root)
        e = shoal_options_set_root(o, root);
    if (e == SHOAL_OK)
        e = shoal_replica_open(r, *dir, o);
    shoal_options_free(o);
    return e;
}

static shoal_err
open_replica(const char *name, bool durable, shoal_replica **r, char **dir)
{
    return open_replica_root(name, durable, NULL, r, dir);
}

/* The policy of the policy variants: an editor may write any field of the
 * trace's collection, create and delete.  The sealed variants add an
 * auditor that may not read the list, so the list is sealed. */
static const char bench_policy[] =
    "{\"collections\": {\"" COLL "\": {}}, \"roles\": {\"editor\": {\"" COLL "\": "
    "{\"where\": \"TRUE\", \"read\": \"*\", \"write\": \"*\", \"create\": true, "
    "\"delete\": true}}}}";
static const char bench_sealed_policy[] =
    "{\"collections\": {\"" COLL "\": {}}, \"roles\": {\"editor\": {\"" COLL "\": "
    "{\"where\": \"TRUE\", \"read\": \"*\", \"write\": \"*\", \"create\": true, "
    "\"delete\": true}}, \"auditor\": {\"" COLL "\": {\"where\": \"TRUE\", "
    "\"read\": {\"except\": [\"" FIELD "\"]}}}}}";
static bool bench_sealed; /* the variant of this (child) process is a sealed one */

/* An editing device that enforces permissions: a root replica (its own key
 * the root, in a temp dir removed here) publishes bench_policy and certifies
 * the device as an editor; the device takes both.  root receives the root
 * key.  Untimed. */
static shoal_err
open_policy_device(bool durable, uint8_t root[32], shoal_replica **dev, char **ddir, char *err,
                   size_t errlen)
{
    shoal_replica *rr = NULL;
    char *rdir = NULL;
    uint8_t *b = NULL;
    size_t blen = 0;
    uint8_t dk[32];
    shoal_err e = open_replica("shoal-bench-root", false, &rr, &rdir);
    if (e == SHOAL_OK) {
        memcpy(root, shoal_replica_id(rr), 32);
        shoal_replica_close(rr);
        rr = NULL;
    }
    if (e == SHOAL_OK) {
        /* reopen the same directory trusting its own key */
        shoal_options *o = NULL;
        e = shoal_options_new(&o);
        if (e == SHOAL_OK)
            e = shoal_options_set_durable(o, false);
        if (e == SHOAL_OK)
            e = shoal_options_set_root(o, root);
        if (e == SHOAL_OK)
            e = shoal_replica_open(&rr, rdir, o);
        shoal_options_free(o);
    }
    if (e == SHOAL_OK)
        e = open_replica_root("shoal-bench-trace", durable, root, dev, ddir);
    if (e == SHOAL_OK) {
        memcpy(dk, shoal_replica_id(*dev), 32);
        const char *pol = bench_sealed ? bench_sealed_policy : bench_policy;
        e = shoal_auth_policy(rr, pol, strlen(pol), NULL);
    }
    static const char *const roles[] = { "editor" };
    shoal_cert_spec spec = { "bench", roles, 1, NULL, NULL, 0, 0 };
    if (e == SHOAL_OK)
        e = shoal_auth_grant(rr, dk, &spec);
    if (e == SHOAL_OK)
        e = shoal_export(rr, NULL, &b, &blen);
    if (e == SHOAL_OK)
        e = shoal_import(*dev, b, blen, NULL);
    if (e != SHOAL_OK)
        snprintf(err, errlen, "policy setup: %s (%s)", shoal_strerror(e),
                 rr ? shoal_replica_errmsg(rr) : "");
    shoal_free(b);
    if (rr)
        shoal_replica_close(rr);
    if (rdir) {
        shoal__bench_rmtree(rdir);
        free(rdir);
    }
    return e;
}

static void
close_replica(shoal_replica *r, char *dir)
{
    shoal_replica_close(r);
    shoal__bench_rmtree(dir);
    free(dir);
}

/* Bytes of the signed changes in a bundle and their count. */
static void
bundle_sizes(const uint8_t *b, size_t len, result *res)
{
    res->bytes = len >= SHOAL__BUNDLE_HEADER ? len - SHOAL__BUNDLE_HEADER : 0;
    res->changes = len >= SHOAL__BUNDLE_HEADER ? shoal__be32_get(b + 8) : 0;
}

/*
 * Replay t through the public API: batch edits per commit (0: all in one
 * transaction).  The timed phase runs from the first shoal_txn_begin to the
 * end of shoal_replica_flush.  On success, if bundle is not NULL, *bundle
 * is the whole replica exported (caller frees with shoal_free).
 */
static int
run_api(const trace *t, size_t batch, bool durable, uint8_t *policy_root, result *res,
        uint8_t **bundle, size_t *bundle_len)
{
    api_ctx x = { .batch = batch };
    char *dir = NULL;
    uint8_t *b = NULL;
    size_t blen = 0;
    uint64_t t0, w0;
    shoal_err e;
    int rc;

    res->rss_base_mb = shoal__bench_rss_mb();
    if (policy_root) {
        e = open_policy_device(durable, policy_root, &x.r, &dir, res->err, sizeof res->err);
        if (e != SHOAL_OK) {
            close_replica(x.r, dir);
            return -1;
        }
    } else if ((e = open_replica("shoal-bench-trace", durable, &x.r, &dir)) != SHOAL_OK) {
        set_err(res, "shoal_replica_open: %s%s", shoal_strerror(e), "");
        close_replica(x.r, dir);
        return -1;
    }
    sync();
    w0 = shoal__bench_io_write_bytes();
    t0 = shoal__bench_now_ns();
    e = shoal_txn_begin(x.r, &x.txn);
    if (e != SHOAL_OK) {
        x.err = e;
        x.what = "shoal_txn_begin";
        rc = -1;
    } else {
        rc = replay(t, api_del, api_ins, &x);
    }
    if (rc == 0 && (x.in_txn > 0 || batch == 0)) {
        shoal_txn *txn = x.txn;
        x.txn = NULL;
        if ((e = shoal_txn_commit(txn)) != SHOAL_OK) {
            x.err = e;
            x.what = "shoal_txn_commit";
            rc = -1;
        } else {
            x.commits++;
        }
    }
    if (rc == 0 && (e = shoal_replica_flush(x.r)) != SHOAL_OK) {
        x.err = e;
        x.what = "shoal_replica_flush";
        rc = -1;
    }
    res->ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
    res->write_bytes = shoal__bench_io_write_bytes() - w0;
    res->commits = x.commits;
    shoal_txn_abort(x.txn);
    if (rc != 0) {
        snprintf(res->err, sizeof res->err, "%s: %s (%s)", x.what, shoal_strerror(x.err),
                 shoal_replica_errmsg(x.r));
        close_replica(x.r, dir);
        return -1;
    }
    res->rss_mb = shoal__bench_peak_rss_mb();
    if (api_check(t, x.r, res) != 0) {
        close_replica(x.r, dir);
        return -1;
    }
    if ((e = shoal_export(x.r, NULL, &b, &blen)) != SHOAL_OK) {
        set_err(res, "shoal_export: %s%s", shoal_strerror(e), "");
        close_replica(x.r, dir);
        return -1;
    }
    bundle_sizes(b, blen, res);
    close_replica(x.r, dir);
    if (bundle) {
        *bundle = b;
        *bundle_len = blen;
    } else {
        shoal_free(b);
    }
    return 0;
}

/* ----------------------------------------------------- variant: remote */

static int
write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int rc;

    if (!f)
        return -1;
    rc = fwrite(p, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static uint8_t *
read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long sz;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = malloc((size_t)sz);
        if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
            free(p);
            p = NULL;
        }
        *n = (size_t)sz;
    }
    fclose(f);
    return p;
}

/*
 * The verification floor: check every envelope's Ed25519 signature with
 * libsodium, nothing else (docs/format.md: signed message = the context
 * "shoal-change-vN" NUL, N the envelope's version, then every envelope byte
 * before the signature).
 * Returns ms, or -1 on a malformed bundle or a failed signature.
 */
static double
verify_floor_ms(const uint8_t *b, size_t len)
{
    static const char ctx[] = "shoal-change-v1";  /* sizeof includes the NUL */
    static const char ctx2[] = "shoal-change-v2"; /* version 2 (docs/format.md) */
    size_t off = SHOAL__BUNDLE_HEADER, cap = 0;
    uint8_t *msg = NULL;
    uint64_t t0 = shoal__bench_now_ns();
    uint32_t count, i;
    double ms = -1.0;

    if (len < SHOAL__BUNDLE_HEADER ||
        (memcmp(b, "SHOALBN1", 8) != 0 && memcmp(b, "SHOALBN2", 8) != 0))
        return -1.0;
    count = shoal__be32_get(b + 8);
    for (i = 0; i < count; i++) {
        size_t body, signed_len;

        if (len - off < SHOAL__ENV_HEADER)
            goto out;
        body = shoal__be32_get(b + off + 33);
        signed_len = SHOAL__ENV_HEADER + body;
        if (len - off < signed_len + SHOAL__SIG_BYTES)
            goto out;
        if (sizeof ctx + signed_len > cap) {
            cap = (sizeof ctx + signed_len) * 2;
            free(msg);
            msg = malloc(cap);
            if (!msg)
                goto out;
            memcpy(msg, ctx, sizeof ctx);
        }
        memcpy(msg, b[off] == 2 ? ctx2 : ctx, sizeof ctx);
        memcpy(msg + sizeof ctx, b + off, signed_len);
        if (crypto_sign_verify_detached(b + off + signed_len, msg, sizeof ctx + signed_len,
                                        b + off + 1) != 0)
            goto out;
        off += signed_len + SHOAL__SIG_BYTES;
        /* version 2: its disclosures (not part of the signature floor) */
        while (len - off >= SHOAL__DISC_HEADER && b[off] == SHOAL__DISC_MARK) {
            size_t gl = shoal__be32_get(b + off + 2);
            if (len - off - SHOAL__DISC_HEADER < gl)
                goto out;
            off += SHOAL__DISC_HEADER + gl;
        }
    }
    if (off == len)
        ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
out:
    free(msg);
    return ms;
}

static int
run_remote(const trace *t, const char *bundle_path, bool policy, result *res)
{
    uint8_t *b = NULL;
    size_t blen = 0;
    bool mine = false;
    shoal_replica *r = NULL;
    char *dir = NULL;
    shoal_import_result ir;
    uint64_t t0, w0;
    shoal_err e;
    int rc = -1;

    /* The bundle that a local-batch100 run of this invocation saved, or
     * one made here when that variant was not selected. */
    uint8_t root[32];
    char root_path[4096];
    snprintf(root_path, sizeof root_path, "%s.root", bundle_path);
    b = read_file(bundle_path, &blen);
    if (b && policy) {
        size_t rl = 0;
        uint8_t *rk = read_file(root_path, &rl);
        if (rk && rl == 32)
            memcpy(root, rk, 32);
        else {
            free(b);
            b = NULL;
        }
        free(rk);
    }
    if (!b) {
        result tmp = { 0 };
        if (run_api(t, 100, false, policy ? root : NULL, &tmp, &b, &blen) != 0) {
            memcpy(res->err, tmp.err, sizeof res->err);
            return -1;
        }
        mine = true;
    }
    res->ops = t->ops;
    bundle_sizes(b, blen, res);
    shoal__bench_reset_peak_rss();
    res->rss_base_mb = shoal__bench_rss_mb();

    if ((e = open_replica_root("shoal-bench-remote", true, policy ? root : NULL, &r, &dir)) !=
        SHOAL_OK) {
        set_err(res, "shoal_replica_open: %s%s", shoal_strerror(e), "");
        goto out;
    }
    sync();
    w0 = shoal__bench_io_write_bytes();
    t0 = shoal__bench_now_ns();
    e = shoal_import(r, b, blen, &ir);
    res->ms = (double)(shoal__bench_now_ns() - t0) / 1e6;
    res->write_bytes = shoal__bench_io_write_bytes() - w0;
    res->rss_mb = shoal__bench_peak_rss_mb();
    res->commits = 1;
    if (e != SHOAL_OK) {
        set_err(res, "shoal_import: %s (%s)", shoal_strerror(e), shoal_replica_errmsg(r));
        goto out;
    }
    if (ir.applied != res->changes || ir.pending != 0 || ir.rejected != 0) {
        snprintf(res->err, sizeof res->err, "import applied %llu of %llu changes (%llu pending)",
                 (unsigned long long)ir.applied, (unsigned long long)res->changes,
                 (unsigned long long)ir.pending);
        goto out;
    }
    if (api_check(t, r, res) != 0)
        goto out;
    res->verify_floor_ms = verify_floor_ms(b, blen);
    if (res->verify_floor_ms < 0) {
        set_err(res, "verify floor: malformed bundle or bad signature%s%s", "", "");
        goto out;
    }
    rc = 0;
out:
    close_replica(r, dir);
    if (mine)
        shoal_free(b);
    else
        free(b);
    return rc;
}

/* ------------------------------------------------------------ the driver */

static const char *const all_variants[] = {
    "crdt",          "local-batch100",        "local-batch100-durable", "local-txn",
    "remote",        "local-batch100-policy", "remote-policy",          "local-batch100-sealed",
    "remote-sealed",
};
enum {
    NVARIANTS = sizeof all_variants / sizeof all_variants[0]
};

typedef struct child_arg {
    const trace *t;
    const char *variant;
    const char *bundle_path; /* where local-batch100 leaves its bundle */
} child_arg;

static int
run_variant(void *argp, void *outp)
{
    child_arg *a = argp;
    result *res = outp;
    uint8_t *b = NULL;
    size_t blen = 0;
    int rc;

    memset(res, 0, sizeof *res);
    res->floor_ms = -1.0;
    res->verify_floor_ms = -1.0;
    res->ops = a->t->ops;
    if (strcmp(a->variant, "crdt") == 0)
        return run_crdt(a->t, res);
    if (strcmp(a->variant, "local-batch100") == 0) {
        rc = run_api(a->t, 100, false, NULL, res, &b, &blen);
        if (rc == 0) {
            write_file(a->bundle_path, b, blen); /* best effort: remote remakes it */
            shoal_free(b);
        }
        return rc;
    }
    bench_sealed = strcmp(a->variant, "local-batch100-sealed") == 0 ||
                   strcmp(a->variant, "remote-sealed") == 0;
    const char *tag = bench_sealed ? "sealed" : "policy";
    if (strcmp(a->variant, "local-batch100-policy") == 0 ||
        strcmp(a->variant, "local-batch100-sealed") == 0) {
        uint8_t root[32];
        char path[4096];
        rc = run_api(a->t, 100, false, root, res, &b, &blen);
        if (rc == 0) {
            snprintf(path, sizeof path, "%s-%s", a->bundle_path, tag);
            write_file(path, b, blen); /* best effort: remote-* remakes it */
            snprintf(path, sizeof path, "%s-%s.root", a->bundle_path, tag);
            write_file(path, root, 32);
            shoal_free(b);
        }
        return rc;
    }
    if (strcmp(a->variant, "remote-policy") == 0 || strcmp(a->variant, "remote-sealed") == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s-%s", a->bundle_path, tag);
        return run_remote(a->t, path, true, res);
    }
    if (strcmp(a->variant, "local-batch100-durable") == 0) {
        rc = run_api(a->t, 100, true, NULL, res, NULL, NULL);
        if (rc == 0) {
            res->floor_ms = shoal__bench_lmdb_floor_ms(res->commits, true);
            res->floor_write_bytes = shoal__bench_lmdb_floor_write_bytes;
            if (res->floor_ms < 0) {
                set_err(res, "raw LMDB floor failed%s%s", "", "");
                rc = -1;
            }
        }
        return rc;
    }
    if (strcmp(a->variant, "local-txn") == 0)
        return run_api(a->t, 0, false, NULL, res, NULL, NULL);
    if (strcmp(a->variant, "remote") == 0)
        return run_remote(a->t, a->bundle_path, false, res);
    set_err(res, "unknown variant %s%s", a->variant, "");
    return -1;
}

static void
print_runs(const char *key, const double *v, size_t n)
{
    size_t i;

    printf(",\"%s\":[", key);
    for (i = 0; i < n; i++)
        printf("%s%.1f", i ? "," : "", v[i]);
    printf("]");
}

static double
median_of(const double *v, size_t n)
{
    double tmp[64];
    size_t i;

    for (i = 0; i < n && i < 64; i++)
        tmp[i] = v[i];
    return shoal__bench_median(tmp, i);
}

/* One JSON line: medians over runs; results[k] is run k. */
static void
print_variant(const char *variant, const result *rs, size_t runs)
{
    double ms[64], fl[64], vf[64], rss[64], base[64], bytes[64], wr[64], fwr[64];
    size_t k;

    for (k = 0; k < runs; k++) {
        ms[k] = rs[k].ms;
        fl[k] = rs[k].floor_ms;
        vf[k] = rs[k].verify_floor_ms;
        rss[k] = rs[k].rss_mb;
        base[k] = rs[k].rss_base_mb;
        bytes[k] = (double)rs[k].bytes;
        wr[k] = (double)rs[k].write_bytes / 1048576.0;
        fwr[k] = (double)rs[k].floor_write_bytes / 1048576.0;
    }
    printf("{\"variant\":\"%s\",\"ops\":%llu,\"ms\":%.1f", variant, (unsigned long long)rs[0].ops,
           median_of(ms, runs));
    print_runs("runs_ms", ms, runs);
    printf(",\"bytes\":%.0f,\"changes\":%llu,\"commits\":%llu", median_of(bytes, runs),
           (unsigned long long)rs[0].changes, (unsigned long long)rs[0].commits);
    if (strcmp(variant, "crdt") != 0)
        printf(",\"write_mb\":%.1f", median_of(wr, runs));
    if (rs[0].floor_ms >= 0) {
        printf(",\"floor_ms\":%.1f", median_of(fl, runs));
        print_runs("floor_runs_ms", fl, runs);
        printf(",\"floor_write_mb\":%.1f", median_of(fwr, runs));
    }
    if (rs[0].verify_floor_ms >= 0) {
        printf(",\"verify_floor_ms\":%.1f", median_of(vf, runs));
        print_runs("verify_floor_runs_ms", vf, runs);
    }
    printf(",\"rss_mb\":%.1f,\"rss_base_mb\":%.1f,\"final_length\":%llu,\"runs\":%zu}\n",
           median_of(rss, runs), median_of(base, runs), (unsigned long long)rs[0].final_len, runs);
    fflush(stdout);
}

int
shoal__bench_trace(int argc, char **argv)
{
    const char *file = NULL, *variants[16];
    size_t nvar = 0, runs = 5, i, k;
    result *results = NULL;
    char *session = NULL, *bundle_path = NULL;
    bool *failed = NULL;
    trace t;
    int status = 0;

    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--runs") == 0) {
            runs = (size_t)shoal__bench_parse_long("--runs", argv[++i]);
            if (runs > 64) {
                fprintf(stderr, "shoal-bench trace: --runs is at most 64\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--variant") == 0) {
            size_t v;
            if (!argv[i + 1]) {
                fprintf(stderr, "shoal-bench trace: --variant needs a name\n");
                return 2;
            }
            for (v = 0; v < NVARIANTS; v++)
                if (strcmp(argv[i + 1], all_variants[v]) == 0)
                    break;
            if (v == NVARIANTS || nvar == 16) {
                fprintf(stderr, "shoal-bench trace: unknown variant '%s'\n", argv[i + 1]);
                return 2;
            }
            variants[nvar++] = all_variants[v];
            i++;
        } else if (argv[i][0] == '-' || file) {
            fprintf(stderr, "usage: shoal-bench trace FILE [--runs R] [--variant NAME]...\n");
            return 2;
        } else {
            file = argv[i];
        }
    }
    if (!file) {
        fprintf(stderr, "usage: shoal-bench trace FILE [--runs R] [--variant NAME]...\n");
        return 2;
    }
    if (nvar == 0)
        for (nvar = 0; nvar < NVARIANTS; nvar++)
            variants[nvar] = all_variants[nvar];
    if (sodium_init() < 0) {
        fprintf(stderr, "shoal-bench: sodium_init failed\n");
        return 1;
    }
    if (trace_load(file, &t) != 0)
        return 1;
    fprintf(stderr, "shoal-bench trace: %zu patches, %llu ops, final text %zu bytes\n", t.n,
            (unsigned long long)t.ops, t.end_len);

    /* Every temp dir of this invocation (children's included) goes under
     * one session dir, removed at the end even if a child crashed. */
    session = shoal__bench_mkdtemp("shoal-bench");
    results = calloc(nvar * runs, sizeof *results);
    failed = calloc(nvar, sizeof *failed);
    if (!session || !results || !failed || !(bundle_path = malloc(strlen(session) + 32))) {
        status = 1;
        goto out;
    }
    sprintf(bundle_path, "%s/batch100.bundle", session);
    setenv("TMPDIR", session, 1);

    for (k = 0; k < runs; k++) {
        for (i = 0; i < nvar; i++) {
            child_arg a = { &t, variants[i], bundle_path };
            result *res = &results[i * runs + k];
            int rc;

            if (failed[i])
                continue;
            rc = shoal__bench_in_child(run_variant, &a, res, sizeof *res);
            if (rc != 0) {
                fprintf(stderr, "shoal-bench trace: %s run %zu failed: %s\n", variants[i], k + 1,
                        rc < 0 ? "child crashed" : res->err);
                failed[i] = true;
                status = 1;
                continue;
            }
            fprintf(stderr, "  %s run %zu: %.1f ms", variants[i], k + 1, res->ms);
            if (res->floor_ms >= 0)
                fprintf(stderr, " (floor %.1f ms)", res->floor_ms);
            if (res->verify_floor_ms >= 0)
                fprintf(stderr, " (verify floor %.1f ms)", res->verify_floor_ms);
            fprintf(stderr, ", %llu bytes, wrote %.1f MiB, peak %.1f MiB\n",
                    (unsigned long long)res->bytes, (double)res->write_bytes / 1048576.0,
                    res->rss_mb);
        }
    }
    for (i = 0; i < nvar; i++)
        if (!failed[i])
            print_variant(variants[i], &results[i * runs], runs);

out:
    if (session)
        shoal__bench_rmtree(session);
    free(session);
    free(bundle_path);
    free(results);
    free(failed);
    trace_free(&t);
    return status;
}
