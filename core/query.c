/*
 * core/query.c - queries of the public API: compiling (crdt/'s parser),
 * planning (an index or a scan), running (find, count, aggregate) and
 * index management.
 *
 * Every run reads one snapshot.  The planner asks crdt/ for the terms of
 * the top-level AND that an index can answer (shoal__query_terms) and
 * picks, among the terms on an indexed field (or on _id, which the views
 * table is keyed by), equality over range and fewer values over more; no
 * statistics.  Whatever supplies the candidates, each is judged by the one
 * evaluator (shoal__query_eval) on its view, and candidates are judged in
 * _id order, so that a run gives the same rows, the same groups and the
 * same floating-point sums with or without an index.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

enum {
    MAX_SORT = 16,
    MAX_FIELDS = 256,
    MAX_GROUP = 16,
    MAX_AGGS = 64
};

typedef struct qparam {
    char *name;
    shoal_value v; /* owned copy; type NIL until bound */
    bool bound;
} qparam;

typedef struct qsortkey {
    char *name;
    size_t len;
    bool desc;
} qsortkey;

struct shoal_query {
    char *coll;
    size_t clen;
    char *text; /* the predicate ("TRUE" when none) */
    size_t tlen;
    shoal__query *q;
    qparam *params;
    size_t nparams;
    qsortkey sort[MAX_SORT];
    size_t nsort;
    uint64_t limit, offset;
    char **fields;
    size_t *flens;
    size_t nfields;
};

/* ----------------------------------------------------------- compiling */

void
shoal_query_free(shoal_query *q)
{
    if (!q)
        return;
    shoal__query_free(q->q);
    for (size_t i = 0; i < q->nparams; i++) {
        shoal__free(q->params[i].name);
        shoal__value_clear(&q->params[i].v);
    }
    shoal__free(q->params);
    for (size_t i = 0; i < q->nsort; i++)
        shoal__free(q->sort[i].name);
    for (size_t i = 0; i < q->nfields; i++)
        shoal__free(q->fields[i]);
    shoal__free(q->fields);
    shoal__free(q->flens);
    shoal__free(q->coll);
    shoal__free(q->text);
    shoal__free(q);
}

static char *
dup_n(const char *s, size_t n)
{
    char *p = shoal__malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static bool
blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return false;
    return true;
}

/* Compile text into a new query of coll; err receives the parser's text. */
static int
query_make(const char *coll, size_t clen, const char *text, size_t tlen, shoal_query **out,
           char *err, size_t errlen)
{
    shoal_query *q = shoal__calloc(1, sizeof *q);
    if (!q)
        return SHOAL_ENOMEM;
    q->coll = dup_n(coll, clen);
    q->clen = clen;
    q->text = dup_n(text, tlen);
    q->tlen = tlen;
    if (!q->coll || !q->text) {
        shoal_query_free(q);
        return SHOAL_ENOMEM;
    }
    int rc = shoal__query_parse(text, tlen, &q->q, err, errlen);
    if (rc) {
        shoal_query_free(q);
        return rc;
    }
    size_t np = shoal__query_nparams(q->q);
    if (np) {
        q->params = shoal__calloc(np, sizeof *q->params);
        if (!q->params) {
            shoal_query_free(q);
            return SHOAL_ENOMEM;
        }
    }
    for (size_t i = 0; i < np; i++) {
        const char *name = shoal__query_param(q->q, i);
        q->params[i].name = dup_n(name, strlen(name));
        q->nparams = i + 1;
        if (!q->params[i].name) {
            shoal_query_free(q);
            return SHOAL_ENOMEM;
        }
    }
    *out = q;
    return SHOAL_OK;
}

shoal_err
shoal_query_new(shoal_replica *r, const char *coll, const char *where, shoal_query **out)
{
    assert(r && out);
    *out = NULL;
    size_t clen;
    if (!shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen)) {
        pthread_mutex_lock(&r->mu);
        shoal__fail(r, SHOAL_EINVAL, "query: bad collection name");
        pthread_mutex_unlock(&r->mu);
        return SHOAL_EINVAL;
    }
    if (!where || blank(where))
        where = "TRUE";
    size_t tlen = strnlen(where, SHOAL__Q_MAX_TEXT + 1);
    char msg[SHOAL__ERRMSG];
    msg[0] = 0;
    int rc = query_make(coll, clen, where, tlen, out, msg, sizeof msg);
    if (rc) {
        pthread_mutex_lock(&r->mu);
        shoal__fail(r, rc, "query: %s", msg[0] ? msg : shoal_strerror((shoal_err)rc));
        pthread_mutex_unlock(&r->mu);
    }
    return (shoal_err)rc;
}

size_t
shoal_query_param_count(const shoal_query *q)
{
    assert(q);
    return q->nparams;
}

const char *
shoal_query_param_name(const shoal_query *q, size_t i)
{
    assert(q);
    return i < q->nparams ? q->params[i].name : NULL;
}

shoal_err
shoal_query_bind(shoal_query *q, const char *name, const shoal_value *v)
{
    assert(q && name && v);
    size_t i;
    for (i = 0; i < q->nparams; i++)
        if (strcmp(q->params[i].name, name) == 0)
            break;
    if (i == q->nparams)
        return SHOAL_ENOTFOUND;
    if (shoal__value_check(v))
        return SHOAL_EINVAL;
    shoal_value c;
    int rc = shoal__value_copy(&c, v);
    if (rc)
        return (shoal_err)rc;
    rc = shoal__query_bind(q->q, name, v);
    if (rc) {
        shoal__value_clear(&c);
        return (shoal_err)rc;
    }
    shoal__value_clear(&q->params[i].v);
    q->params[i].v = c;
    q->params[i].bound = true;
    return SHOAL_OK;
}

shoal_err
shoal_query_sort(shoal_query *q, const char *field, bool descending)
{
    assert(q);
    size_t n;
    if (!shoal__name_ok(field, SHOAL_MAX_FIELD, &n))
        return SHOAL_EINVAL;
    if (q->nsort == MAX_SORT)
        return SHOAL_ETOOBIG;
    char *p = dup_n(field, n);
    if (!p)
        return SHOAL_ENOMEM;
    q->sort[q->nsort++] = (qsortkey){ p, n, descending };
    return SHOAL_OK;
}

void
shoal_query_limit(shoal_query *q, uint64_t limit, uint64_t offset)
{
    assert(q);
    q->limit = limit;
    q->offset = offset;
}

shoal_err
shoal_query_field(shoal_query *q, const char *field)
{
    assert(q);
    size_t n;
    if (!shoal__name_ok(field, SHOAL_MAX_FIELD, &n))
        return SHOAL_EINVAL;
    for (size_t i = 0; i < q->nfields; i++)
        if (q->flens[i] == n && memcmp(q->fields[i], field, n) == 0)
            return SHOAL_OK;
    if (q->nfields == MAX_FIELDS)
        return SHOAL_ETOOBIG;
    char **f = shoal__realloc(q->fields, (q->nfields + 1) * sizeof *f);
    if (!f)
        return SHOAL_ENOMEM;
    q->fields = f;
    size_t *l = shoal__realloc(q->flens, (q->nfields + 1) * sizeof *l);
    if (!l)
        return SHOAL_ENOMEM;
    q->flens = l;
    char *p = dup_n(field, n);
    if (!p)
        return SHOAL_ENOMEM;
    q->fields[q->nfields] = p;
    q->flens[q->nfields++] = n;
    return SHOAL_OK;
}

int
shoal__query_copy(const shoal_query *src, shoal_query **out)
{
    char msg[8];
    shoal_query *q;
    int rc = query_make(src->coll, src->clen, src->text, src->tlen, &q, msg, sizeof msg);
    for (size_t i = 0; !rc && i < src->nparams; i++)
        if (src->params[i].bound)
            rc = shoal_query_bind(q, src->params[i].name, &src->params[i].v);
    for (size_t i = 0; !rc && i < src->nsort; i++)
        rc = shoal_query_sort(q, src->sort[i].name, src->sort[i].desc);
    for (size_t i = 0; !rc && i < src->nfields; i++)
        rc = shoal_query_field(q, src->fields[i]);
    if (rc) {
        shoal_query_free(q);
        return rc;
    }
    q->limit = src->limit;
    q->offset = src->offset;
    *out = q;
    return SHOAL_OK;
}

int
shoal__query_compile(const char *coll, size_t clen, const char *text, size_t tlen,
                     shoal_query **out, char *msg, size_t msglen)
{
    if (tlen == 0 || blank(text)) {
        text = "TRUE";
        tlen = 4;
    }
    return query_make(coll, clen, text, tlen, out, msg, msglen);
}

int
shoal__query_check_bound(const shoal_query *q)
{
    char msg[8];
    return shoal__query_ready(q->q, msg, sizeof msg) ? SHOAL_EINVAL : SHOAL_OK;
}

int
shoal__query_param_value(const shoal_query *q, size_t i, shoal_value *out)
{
    if (i >= q->nparams)
        return SHOAL_EINVAL;
    *out = q->params[i].v;
    return SHOAL_OK;
}

void
shoal__query_text(const shoal_query *q, const char **text, size_t *tlen)
{
    *text = q->text;
    *tlen = q->tlen;
}

bool
shoal__query_plain(const shoal_query *q)
{
    return q->nsort == 0 && q->limit == 0 && q->offset == 0 && q->nfields == 0;
}

int
shoal__query_params_encode(const shoal_query *q, shoal__buf *out)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, (uint32_t)q->nparams);
    for (size_t i = 0; i < q->nparams; i++) {
        shoal__mpw_array(&w, 2);
        shoal__mpw_str(&w, q->params[i].name, strlen(q->params[i].name));
        shoal__mpw_value(&w, &q->params[i].v);
    }
    return w.err;
}

int
shoal__query_params_decode(shoal_query *q, const uint8_t *p, size_t n)
{
    shoal__mpr rd;
    shoal__mpr_init(&rd, p, n);
    uint32_t np = shoal__mpr_array(&rd, 256, 3);
    int err = rd.err;
    for (uint32_t i = 0; !err && i < np; i++) {
        const uint8_t *name;
        uint32_t k = shoal__mpr_array(&rd, 2, 1);
        size_t nl = shoal__mpr_str(&rd, &name, 256);
        shoal_value v;
        shoal__mpr_value(&rd, &v);
        if (rd.err) {
            err = rd.err;
            break;
        }
        if (k != 2 || nl == 0) {
            err = SHOAL_EPROTO;
            break;
        }
        char nm[257];
        memcpy(nm, name, nl);
        nm[nl] = 0;
        err = shoal_query_bind(q, nm, &v);
        if (err == SHOAL_ENOTFOUND)
            err = SHOAL_EINVAL; /* a parameter the predicate does not name */
    }
    if (!err)
        err = shoal__mpr_finish(&rd);
    return err == SHOAL_ETRUNC || err == SHOAL_ETOOBIG ? SHOAL_EPROTO : err;
}

const shoal__query *
shoal__query_of(const shoal_query *q, const char **coll, size_t *clen)
{
    *coll = q->coll;
    *clen = q->clen;
    return q->q;
}

int
shoal__query_check(shoal_replica *r, const shoal_query *q)
{
    char msg[SHOAL__ERRMSG];
    int rc = shoal__query_ready(q->q, msg, sizeof msg);
    if (rc)
        shoal__fail(r, rc, "query: %s", msg);
    return rc;
}

/* ------------------------------------------------------------- judging */

/* The field name of d, where "_id" is the id (as a string register). */
static const shoal__qfield *
get_field(const shoal__qdoc *d, const uint8_t *name, size_t len, shoal__qfield *idf)
{
    if (len == 3 && memcmp(name, "_id", 3) == 0) {
        memset(idf, 0, sizeof *idf);
        idf->name = (const uint8_t *)"_id";
        idf->name_len = 3;
        idf->kind = SHOAL_K_REGISTER;
        idf->value.type = SHOAL_T_STR;
        idf->value.ptr = d->id;
        idf->value.len = d->id_len;
        return idf;
    }
    return shoal__qdoc_field(d, name, len);
}

int
shoal__query_judge(shoal_replica *r, shoal__stxn *t, const shoal__query *q, const char *coll,
                   size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *stored,
                   shoal__qscratch *s, bool full, bool *match)
{
    const uint8_t *v;
    size_t vl;
    bool alive;
    int err = shoal__qview_split(stored->p, stored->len, &s->epoch, &v, &vl);
    if (!err)
        err = shoal__qview_parse(v, vl, &s->f, &s->cap, &s->n, &alive);
    if (err)
        return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
    s->vp = v;
    s->vlen = vl;
    s->long_list = false;
    for (size_t i = 0; i < s->n; i++)
        if (s->f[i].kind == SHOAL_K_LIST && s->f[i].long_list)
            s->long_list = true;
    s->doc = (shoal__qdoc){ .id = id, .id_len = idlen, .fields = s->f, .nfields = s->n };
    int m = q ? shoal__query_eval(q, &s->doc) : 1;
    if (m == SHOAL__Q_NEEDLIST || (full && s->long_list && (!q || m == 1))) {
        /* The view left a long list out: read the document itself. */
        shoal__dmeta dm;
        const shoal__doc *d;
        err = shoal__doc_read(r, t, (const uint8_t *)coll, clen, id, idlen, &dm, &d);
        shoal__dmeta_clear(&dm);
        if (err)
            return err == SHOAL_ENOTFOUND ? SHOAL_ECORRUPT : err;
        s->full.len = 0;
        err = shoal__doc_encode_qview(d, SIZE_MAX, &s->full);
        if (!err)
            err = shoal__qview_parse(s->full.p, s->full.len, &s->f, &s->cap, &s->n, &alive);
        if (err)
            return err;
        s->vp = s->full.p;
        s->vlen = s->full.len;
        s->long_list = false;
        s->doc.fields = s->f;
        s->doc.nfields = s->n;
        m = q ? shoal__query_eval(q, &s->doc) : 1;
        if (m < 0)
            return SHOAL_ECORRUPT;
    }
    *match = m == 1;
    return SHOAL_OK;
}

void
shoal__qscratch_free(shoal__qscratch *s)
{
    shoal__free(s->f);
    shoal__buf_free(&s->full);
    memset(s, 0, sizeof *s);
}

/* ----------------------------------------------------------- candidates */

/* What a run does with each matching document. */
typedef struct run run;
typedef int (*match_fn)(run *x, const uint8_t *id, size_t idlen);

struct run {
    shoal_replica *r;
    shoal__stxn *t;
    const shoal_query *Q;
    bool full; /* matches need every list item (rows, aggregates) */
    match_fn on_match;
    void *arg;
    shoal__qscratch s;
    /* index candidates, collected when they may repeat or come unsorted */
    shoal__buf ids; /* u16 length | id, back to back */
    bool collect;
    shoal__qvcur *vc; /* view lookups by id (opened on first use) */
};

static int
judge_one(run *x, const uint8_t *id, size_t idlen, const shoal__sval *stored)
{
    bool m;
    int err = shoal__query_judge(x->r, x->t, x->Q->q, x->Q->coll, x->Q->clen, id, idlen, stored,
                                 &x->s, x->full, &m);
    if (err || !m)
        return err;
    return x->on_match(x, id, idlen);
}

static int
scan_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *view,
        void *arg)
{
    return judge_one(arg, id, idlen, view);
}

/* Judge the document id (looked up in the views table). */
static int
judge_id(run *x, const uint8_t *id, size_t idlen)
{
    shoal__sval v;
    int err = x->vc ? SHOAL_OK : shoal__stxn_qvcur_open(x->t, &x->vc);
    if (!err)
        err = shoal__qvcur_get(x->vc, (const uint8_t *)x->Q->coll, x->Q->clen, id, idlen, &v);
    if (err == SHOAL_ENOTFOUND || err == SHOAL_EINVAL)
        return SHOAL_OK; /* not a live document (or not a possible id) */
    if (err)
        return err;
    return judge_one(x, id, idlen, &v);
}

static int
ent_cb(const uint8_t *key, size_t klen, const uint8_t *id, size_t idlen, void *arg)
{
    run *x = arg;
    if (!x->collect)
        return judge_id(x, id, idlen);
    uint8_t h[2];
    shoal__be16_put(h, (uint16_t)idlen);
    int err = shoal__buf_append(&x->ids, h, 2);
    return err ? err : shoal__buf_append(&x->ids, id, idlen);
}

typedef struct idref {
    const uint8_t *p;
    size_t n;
} idref;

static int
idref_cmp(const void *a, const void *b)
{
    const idref *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Judge the collected ids in _id order, each once. */
static int
judge_collected(run *x)
{
    size_t n = 0;
    for (size_t off = 0; off + 2 <= x->ids.len; off += 2 + shoal__be16_get(x->ids.p + off))
        n++;
    if (n == 0)
        return SHOAL_OK;
    idref *v = shoal__malloc(n * sizeof *v);
    if (!v)
        return SHOAL_ENOMEM;
    size_t i = 0;
    for (size_t off = 0; off + 2 <= x->ids.len; off += 2 + v[i - 1].n) {
        v[i].n = shoal__be16_get(x->ids.p + off);
        v[i].p = x->ids.p + off + 2;
        i++;
    }
    qsort(v, n, sizeof *v, idref_cmp);
    int err = SHOAL_OK;
    for (i = 0; !err && i < n; i++)
        if (i == 0 || idref_cmp(&v[i - 1], &v[i]) != 0)
            err = judge_id(x, v[i].p, v[i].n);
    shoal__free(v);
    return err;
}

static bool
is_id(const uint8_t *f, size_t n)
{
    return n == 3 && memcmp(f, "_id", 3) == 0;
}

/* Key range of a RANGE term: the whole type class when a side is open. */
static void
range_keys(const shoal__qterm *tm, uint8_t *lo, size_t *lolen, uint8_t *hi, size_t *hilen)
{
    const shoal_value *any = tm->has_lo ? &tm->lo : &tm->hi;
    uint8_t tag[SHOAL__QKEY_MAX];
    shoal__qkey(any, tag);
    if (tm->has_lo) {
        *lolen = shoal__qkey(&tm->lo, lo);
    } else {
        lo[0] = tag[0];
        *lolen = 1;
    }
    if (tm->has_hi) {
        *hilen = shoal__qkey(&tm->hi, hi);
    } else {
        hi[0] = tag[0];
        memset(hi + 1, 0xff, SHOAL__QKEY_MAX - 1);
        *hilen = SHOAL__QKEY_MAX;
    }
}

/* Find the candidates and judge them. */
static int
run_query(run *x)
{
    const shoal_query *Q = x->Q;
    const uint8_t *coll = (const uint8_t *)Q->coll;
    shoal__qterm *terms = NULL;
    size_t nt = 0;
    int err = shoal__query_terms(Q->q, &terms, &nt);
    if (err)
        return err;
    /* Pick: _id equality first, then an indexed equality with the fewest
     * values, then an indexed range. */
    const shoal__qterm *best = NULL;
    uint32_t best_ix = 0;
    int best_rank = 0;
    for (size_t i = 0; i < nt; i++) {
        const shoal__qterm *tm = &terms[i];
        int rank;
        uint32_t ix = 0;
        if (is_id(tm->field, tm->field_len)) {
            if (tm->kind != SHOAL__QT_EQ || tm->contains)
                continue;
            rank = 4;
        } else {
            int rc = shoal__stxn_qix_find(x->t, coll, Q->clen, tm->field, tm->field_len, &ix);
            if (rc == SHOAL_ENOTFOUND || rc == SHOAL_EINVAL)
                continue;
            if (rc) {
                err = rc;
                break;
            }
            rank = tm->kind == SHOAL__QT_EQ ? 3 : 1;
        }
        if (!best || rank > best_rank ||
            (rank == best_rank && tm->kind == SHOAL__QT_EQ && tm->nvals < best->nvals)) {
            best = tm;
            best_ix = ix;
            best_rank = rank;
        }
    }
    if (!err && !best) {
        err = shoal__stxn_qview_scan(x->t, coll, Q->clen, scan_cb, x);
    } else if (!err && best_rank == 4) {
        /* vals are sorted and distinct: judge them in that order (strings
         * sort bytewise, as ids do) */
        for (size_t i = 0; !err && i < best->nvals; i++)
            if (best->vals[i].type == SHOAL_T_STR)
                err = judge_id(x, best->vals[i].ptr, best->vals[i].len);
    } else if (!err) {
        uint8_t lo[SHOAL__QKEY_MAX], hi[SHOAL__QKEY_MAX];
        size_t lolen, hilen;
        /* One key scanned once yields ids in order, each once; anything
         * else is collected, sorted and deduplicated first. */
        x->collect = !(best->kind == SHOAL__QT_EQ && best->nvals == 1 && !best->contains);
        if (best->kind == SHOAL__QT_EQ) {
            for (size_t i = 0; !err && i < best->nvals; i++) {
                lolen = shoal__qkey(&best->vals[i], lo);
                err = shoal__stxn_qix_scan(x->t, best_ix, lo, lolen, lo, lolen, ent_cb, x);
            }
            if (!err && best->contains) {
                lo[0] = SHOAL__QKEY_LONGLIST;
                err = shoal__stxn_qix_scan(x->t, best_ix, lo, 1, lo, 1, ent_cb, x);
            }
        } else {
            range_keys(best, lo, &lolen, hi, &hilen);
            err = shoal__stxn_qix_scan(x->t, best_ix, lo, lolen, hi, hilen, ent_cb, x);
        }
        if (!err && x->collect)
            err = judge_collected(x);
    }
    shoal__free(terms);
    shoal__qvcur_close(x->vc);
    x->vc = NULL;
    return err;
}

static void
run_free(run *x)
{
    shoal__qscratch_free(&x->s);
    shoal__buf_free(&x->ids);
}

/* ------------------------------------------------------------ each match */

typedef struct each_ctx {
    int (*cb)(const uint8_t *id, size_t idlen, shoal__qscratch *s, void *arg);
    void *arg;
} each_ctx;

static int
each_match(run *x, const uint8_t *id, size_t idlen)
{
    each_ctx *e = x->arg;
    return e->cb(id, idlen, &x->s, e->arg);
}

int
shoal__query_each(shoal_replica *r, shoal__stxn *t, const shoal_query *q,
                  int (*cb)(const uint8_t *id, size_t idlen, shoal__qscratch *s, void *arg),
                  void *arg)
{
    each_ctx e = { cb, arg };
    run x = { .r = r, .t = t, .Q = q, .full = true, .on_match = each_match, .arg = &e };
    int err = run_query(&x);
    run_free(&x);
    return err;
}

/* ----------------------------------------------------------------- find */

typedef struct row {
    uint8_t *id;  /* NUL-terminated, in the rows' id arena */
    size_t idoff; /* offset of id in the arena while it grows */
    size_t idlen;
    shoal_doc *doc; /* owned */
    uint8_t *view;  /* owned copy of the (full) view, for sorting */
    size_t vlen;
    uint64_t epoch;
} row;

struct shoal_rows {
    row *r;
    size_t n, cap;
    shoal__buf ids; /* every id, NUL-terminated, back to back */
};

void
shoal_rows_free(shoal_rows *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n; i++) {
        shoal_doc_free(rows->r[i].doc);
        shoal__free(rows->r[i].view);
    }
    shoal__free(rows->r);
    shoal__buf_free(&rows->ids);
    shoal__free(rows);
}

size_t
shoal_rows_count(const shoal_rows *rows)
{
    assert(rows);
    return rows->n;
}

const char *
shoal_rows_id(const shoal_rows *rows, size_t i)
{
    assert(rows && i < rows->n);
    return (const char *)rows->r[i].id;
}

const shoal_doc *
shoal_rows_doc(const shoal_rows *rows, size_t i)
{
    assert(rows && i < rows->n);
    return rows->r[i].doc;
}

typedef struct find_ctx {
    shoal_rows *rows;
    bool sorted;   /* sort keys given: keep the view to sort by */
    uint64_t seen; /* matches so far (no sort keys: offset and limit apply at once) */
} find_ctx;

/* A match callback's "enough": ends the run early, not an error. */
enum {
    RUN_STOP = 1000
};

static bool
keep_field(const shoal__qfield *f, void *arg)
{
    const shoal_query *Q = arg;
    if (Q->nfields == 0)
        return true;
    for (size_t i = 0; i < Q->nfields; i++)
        if (Q->flens[i] == f->name_len && memcmp(Q->fields[i], f->name, f->name_len) == 0)
            return true;
    return false;
}

static int
find_match(run *x, const uint8_t *id, size_t idlen)
{
    find_ctx *fc = x->arg;
    shoal_rows *rows = fc->rows;
    /* Without sort keys matches come in _id order, the result's order:
     * the first offset are skipped and the run ends at the limit. */
    if (!fc->sorted && ++fc->seen <= x->Q->offset)
        return SHOAL_OK;
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? 2 * rows->cap : 16;
        row *p = shoal__realloc(rows->r, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        rows->r = p;
        rows->cap = cap;
    }
    row *w = &rows->r[rows->n];
    memset(w, 0, sizeof *w);
    w->idoff = rows->ids.len;
    w->idlen = idlen;
    if (shoal__buf_append(&rows->ids, id, idlen) || shoal__buf_append(&rows->ids, "", 1))
        return SHOAL_ENOMEM;
    w->epoch = x->s.epoch;
    rows->n++;
    if (fc->sorted) {
        /* Sorting needs every row's keys; documents are made for the rows
         * that survive offset and limit only.  Keep the view (the full one
         * if the stored one left a list out). */
        w->view = shoal__malloc(x->s.vlen);
        if (!w->view)
            return SHOAL_ENOMEM;
        memcpy(w->view, x->s.vp, x->s.vlen);
        w->vlen = x->s.vlen;
        return SHOAL_OK;
    }
    int err = shoal__doc_from_view(x->s.f, x->s.n, x->s.epoch, keep_field, (void *)x->Q, &w->doc);
    if (!err && x->Q->limit && rows->n >= x->Q->limit)
        return RUN_STOP;
    return err;
}

typedef struct sort_ctx {
    const shoal_query *Q;
    shoal__qfield *keys; /* n x nsort */
    bool *has;           /* the same: field present */
    row *rows;
} sort_ctx;

static int
row_cmp(const void *a, const void *b, void *arg)
{
    const sort_ctx *c = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t ns = c->Q->nsort;
    for (size_t k = 0; k < ns; k++) {
        const shoal__qfield *x = c->has[i * ns + k] ? &c->keys[i * ns + k] : NULL;
        const shoal__qfield *y = c->has[j * ns + k] ? &c->keys[j * ns + k] : NULL;
        int r = shoal__qfield_cmp(x, y);
        if (r)
            return c->Q->sort[k].desc ? -r : r;
    }
    const row *x = &c->rows[i], *y = &c->rows[j];
    int r = memcmp(x->id, y->id, x->idlen < y->idlen ? x->idlen : y->idlen);
    return r ? r : (x->idlen > y->idlen) - (x->idlen < y->idlen);
}

/* Sort rows by the query's keys (ties by id), keep [offset, offset +
 * limit) and make their documents. */
static int
sort_rows(const shoal_query *Q, shoal_rows *rows)
{
    size_t n = rows->n, ns = Q->nsort;
    int err = SHOAL_OK;
    size_t *order = shoal__malloc((n ? n : 1) * sizeof *order);
    shoal__qfield *keys = shoal__calloc(n * ns + 1, sizeof *keys);
    bool *has = shoal__calloc(n * ns + 1, sizeof *has);
    shoal__qfield *f = NULL;
    size_t cap = 0;
    /* Parsed views of all rows must live at once: one array each. */
    shoal__qfield **pf = shoal__calloc(n + 1, sizeof *pf);
    size_t *pn = shoal__calloc(n + 1, sizeof *pn);
    if (!order || !keys || !has || !pf || !pn)
        err = SHOAL_ENOMEM;
    for (size_t i = 0; !err && i < n; i++) {
        order[i] = i;
        bool alive;
        size_t fc = 0;
        f = NULL;
        cap = 0;
        err = shoal__qview_parse(rows->r[i].view, rows->r[i].vlen, &f, &cap, &fc, &alive);
        pf[i] = f;
        pn[i] = fc;
        if (err)
            break;
        shoal__qdoc d = {
            .id = rows->r[i].id, .id_len = rows->r[i].idlen, .fields = f, .nfields = fc
        };
        for (size_t k = 0; k < ns; k++) {
            shoal__qfield idf;
            const shoal__qfield *x =
                get_field(&d, (const uint8_t *)Q->sort[k].name, Q->sort[k].len, &idf);
            if (x) {
                keys[i * ns + k] = *x;
                has[i * ns + k] = true;
            }
        }
    }
    if (!err) {
        sort_ctx sc = { Q, keys, has, rows->r };
        qsort_r(order, n, sizeof *order, row_cmp, &sc);
    }
    /* Build the documents of the kept rows, in order. */
    uint64_t from = Q->offset < n ? Q->offset : n;
    uint64_t to = Q->limit && Q->limit < n - from ? from + Q->limit : n;
    row *out = NULL;
    if (!err && to > from) {
        out = shoal__calloc(to - from, sizeof *out);
        if (!out)
            err = SHOAL_ENOMEM;
    }
    for (uint64_t i = from; !err && i < to; i++) {
        size_t j = order[i];
        err = shoal__doc_from_view(pf[j], pn[j], rows->r[j].epoch, keep_field, (void *)Q,
                                   &out[i - from].doc);
        if (!err) {
            out[i - from].id = rows->r[j].id;
            out[i - from].idlen = rows->r[j].idlen;
        }
    }
    for (size_t i = 0; pf && i < n; i++)
        shoal__free(pf[i]);
    shoal__free(pf);
    shoal__free(pn);
    shoal__free(keys);
    shoal__free(has);
    shoal__free(order);
    if (err) {
        if (out) {
            for (uint64_t i = 0; i < to - from; i++)
                shoal_doc_free(out[i].doc);
            shoal__free(out);
        }
        return err;
    }
    for (size_t i = 0; i < n; i++)
        shoal__free(rows->r[i].view);
    shoal__free(rows->r);
    rows->r = out;
    rows->n = rows->cap = (size_t)(to - from);
    return SHOAL_OK;
}

static int
run_fn(shoal__stxn *t, void *arg)
{
    run *x = arg;
    x->t = t;
    return run_query(x);
}

shoal_err
shoal_find(shoal_replica *r, const shoal_query *q, shoal_rows **out)
{
    assert(r && q && out);
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    int err = shoal__query_check(r, q);
    shoal_rows *rows = NULL;
    if (!err) {
        rows = shoal__calloc(1, sizeof *rows);
        if (!rows)
            err = SHOAL_ENOMEM;
    }
    if (!err) {
        find_ctx fc = { .rows = rows, .sorted = q->nsort > 0 };
        run x = { .r = r, .Q = q, .full = true, .on_match = find_match, .arg = &fc };
        err = shoal__store_read(r->store, run_fn, &x);
        if (err == RUN_STOP)
            err = SHOAL_OK;
        run_free(&x);
        for (size_t i = 0; !err && i < rows->n; i++)
            rows->r[i].id = rows->ids.p + rows->r[i].idoff; /* the arena moves no more */
        if (!err) {
            if (fc.sorted)
                err = sort_rows(q, rows);
        }
        if (err)
            shoal__fail(r, err, "find %s", q->coll);
    }
    pthread_mutex_unlock(&r->mu);
    if (err) {
        shoal_rows_free(rows);
        return (shoal_err)err;
    }
    *out = rows;
    return SHOAL_OK;
}

static int
count_match(run *x, const uint8_t *id, size_t idlen)
{
    (*(uint64_t *)x->arg)++;
    return SHOAL_OK;
}

shoal_err
shoal_count(shoal_replica *r, const shoal_query *q, uint64_t *out)
{
    assert(r && q && out);
    *out = 0;
    pthread_mutex_lock(&r->mu);
    int err = shoal__query_check(r, q);
    uint64_t n = 0;
    if (!err) {
        run x = { .r = r, .Q = q, .on_match = count_match, .arg = &n };
        err = shoal__store_read(r->store, run_fn, &x);
        run_free(&x);
        if (err)
            shoal__fail(r, err, "count %s", q->coll);
    }
    pthread_mutex_unlock(&r->mu);
    if (!err)
        *out = n;
    return (shoal_err)err;
}

/* ------------------------------------------------------------ aggregate */

typedef struct acc {
    shoal_agg_op op;
    uint64_t n;  /* values taken */
    bool is_int; /* every term so far an int, no overflow */
    int64_t isum;
    double dsum;
    shoal_value best; /* min / max, owned; NIL while none */
    bool has_best;
} acc;

typedef struct agroup {
    shoal_value *key; /* ngroup owned values */
    uint64_t count;
    acc *acc;         /* nspec */
    shoal_value *out; /* nspec results, filled at the end */
} agroup;

struct shoal_groups {
    agroup *g;
    size_t n, cap;
    size_t ngroup, nspec;
};

typedef struct agg_ctx {
    const char *const *group;
    size_t *glen;
    size_t ngroup;
    const shoal_aggregate_spec *spec;
    size_t *slen;
    size_t nspec;
    shoal_groups *G;
    shoal__map index; /* key bytes (value keys back to back) -> group list head index + 1 */
    shoal__buf kb;
    size_t *next; /* chain of groups sharing a key: next[i] = index + 1 or 0 */
} agg_ctx;

static void
group_clear(agroup *g, size_t ngroup, size_t nspec)
{
    for (size_t k = 0; g->key && k < ngroup; k++)
        shoal__value_clear(&g->key[k]);
    for (size_t j = 0; g->acc && j < nspec; j++)
        shoal__value_clear(&g->acc[j].best);
    for (size_t j = 0; g->out && j < nspec; j++)
        shoal__value_clear(&g->out[j]);
    shoal__free(g->key);
    shoal__free(g->acc);
    shoal__free(g->out);
}

void
shoal_groups_free(shoal_groups *G)
{
    if (!G)
        return;
    for (size_t i = 0; i < G->n; i++)
        group_clear(&G->g[i], G->ngroup, G->nspec);
    shoal__free(G->g);
    shoal__free(G);
}

size_t
shoal_groups_count(const shoal_groups *G)
{
    assert(G);
    return G->n;
}

void
shoal_groups_key(const shoal_groups *G, size_t i, size_t k, shoal_value *out)
{
    assert(G && i < G->n && k < G->ngroup && out);
    *out = G->g[i].key[k];
}

void
shoal_groups_value(const shoal_groups *G, size_t i, size_t j, shoal_value *out)
{
    assert(G && i < G->n && j < G->nspec && out);
    *out = G->g[i].out[j];
}

/* The group key value of field f (NULL: absent): lists and absence group
 * as null; a counter as its number. */
static shoal_value
group_value(const shoal__qfield *f)
{
    shoal_value v = { .type = SHOAL_T_NIL };
    if (f && f->kind != SHOAL_K_LIST)
        v = f->value;
    return v;
}

static int
new_group(agg_ctx *a, const shoal_value *kv, size_t *idx)
{
    shoal_groups *G = a->G;
    if (G->n == G->cap) {
        size_t cap = G->cap ? 2 * G->cap : 8;
        agroup *p = shoal__realloc(G->g, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        G->g = p;
        size_t *nx = shoal__realloc(a->next, cap * sizeof *nx);
        if (!nx)
            return SHOAL_ENOMEM;
        a->next = nx;
        G->cap = cap;
    }
    agroup *g = &G->g[G->n];
    memset(g, 0, sizeof *g);
    g->key = shoal__calloc(a->ngroup + 1, sizeof *g->key);
    g->acc = shoal__calloc(a->nspec + 1, sizeof *g->acc);
    g->out = shoal__calloc(a->nspec + 1, sizeof *g->out);
    if (!g->key || !g->acc || !g->out) {
        group_clear(g, 0, 0);
        return SHOAL_ENOMEM;
    }
    int err = SHOAL_OK;
    for (size_t k = 0; !err && k < a->ngroup; k++)
        err = shoal__value_copy(&g->key[k], &kv[k]);
    for (size_t j = 0; j < a->nspec; j++) {
        g->acc[j].op = a->spec[j].op;
        g->acc[j].is_int = true;
    }
    if (err) {
        group_clear(g, a->ngroup, a->nspec);
        return err;
    }
    a->next[G->n] = 0;
    *idx = G->n++;
    return SHOAL_OK;
}

static int
acc_take(acc *c, const shoal__qfield *f)
{
    if (!f || f->kind == SHOAL_K_LIST)
        return SHOAL_OK;
    const shoal_value *v = &f->value;
    switch (c->op) {
    case SHOAL_AGG_SUM:
    case SHOAL_AGG_AVG:
        if (v->type == SHOAL_T_INT) {
            int64_t t;
            if (c->is_int && !__builtin_add_overflow(c->isum, v->i, &t)) {
                c->isum = t; /* still exact (t is the wrapped sum on overflow: not kept) */
            } else {
                if (c->is_int)
                    c->dsum = (double)c->isum;
                c->is_int = false;
                c->dsum += (double)v->i;
            }
            c->n++;
        } else if (v->type == SHOAL_T_DOUBLE) {
            if (c->is_int)
                c->dsum = (double)c->isum;
            c->is_int = false;
            c->dsum += v->d;
            c->n++;
        }
        return SHOAL_OK;
    case SHOAL_AGG_MIN:
    case SHOAL_AGG_MAX:
        if (v->type == SHOAL_T_NIL)
            return SHOAL_OK;
        if (c->has_best) {
            int r = shoal__qvalue_cmp(v, &c->best);
            if (c->op == SHOAL_AGG_MIN ? r >= 0 : r <= 0)
                return SHOAL_OK;
            shoal__value_clear(&c->best);
        }
        c->has_best = true;
        c->n++;
        return shoal__value_copy(&c->best, v);
    default: return SHOAL_OK;
    }
}

static int
agg_match(run *x, const uint8_t *id, size_t idlen)
{
    agg_ctx *a = x->arg;
    shoal_value kv[MAX_GROUP];
    a->kb.len = 0;
    int err = SHOAL_OK;
    for (size_t k = 0; !err && k < a->ngroup; k++) {
        shoal__qfield idf;
        kv[k] = group_value(get_field(&x->s.doc, (const uint8_t *)a->group[k], a->glen[k], &idf));
        uint8_t key[SHOAL__QKEY_MAX];
        size_t kl = shoal__qkey(&kv[k], key);
        err = shoal__buf_append(&a->kb, key, kl);
    }
    if (err)
        return err;
    /* Groups whose keys share value keys are chained; equal by the total
     * order is the same group (1 and 1.0 are one group). */
    size_t head = (size_t)(uintptr_t)shoal__map_get(&a->index, a->kb.p, a->kb.len);
    size_t gi = SIZE_MAX;
    for (size_t c = head; c; c = a->next[c - 1]) {
        agroup *g = &a->G->g[c - 1];
        size_t k;
        for (k = 0; k < a->ngroup; k++)
            if (shoal__qvalue_cmp(&g->key[k], &kv[k]) != 0)
                break;
        if (k == a->ngroup) {
            gi = c - 1;
            break;
        }
    }
    if (gi == SIZE_MAX) {
        err = new_group(a, kv, &gi);
        if (err)
            return err;
        a->next[gi] = head;
        err = shoal__map_put(&a->index, a->kb.p, a->kb.len, (void *)(uintptr_t)(gi + 1));
        if (err)
            return err;
    }
    agroup *g = &a->G->g[gi];
    g->count++;
    for (size_t j = 0; !err && j < a->nspec; j++) {
        if (a->spec[j].op == SHOAL_AGG_COUNT)
            continue;
        shoal__qfield idf;
        const shoal__qfield *f =
            get_field(&x->s.doc, (const uint8_t *)a->spec[j].field, a->slen[j], &idf);
        err = acc_take(&g->acc[j], f);
    }
    return err;
}

static int
group_cmp(const void *pa, const void *pb, void *arg)
{
    const agroup *a = pa, *b = pb;
    size_t n = *(const size_t *)arg;
    for (size_t k = 0; k < n; k++) {
        int r = shoal__qvalue_cmp(&a->key[k], &b->key[k]);
        if (r)
            return r;
    }
    return 0;
}

static int
agg_finish(agg_ctx *a)
{
    shoal_groups *G = a->G;
    if (a->ngroup == 0 && G->n == 0) {
        size_t gi;
        int err = new_group(a, NULL, &gi);
        if (err)
            return err;
    }
    for (size_t i = 0; i < G->n; i++) {
        agroup *g = &G->g[i];
        for (size_t j = 0; j < a->nspec; j++) {
            acc *c = &g->acc[j];
            shoal_value *o = &g->out[j];
            o->type = SHOAL_T_NIL;
            switch (c->op) {
            case SHOAL_AGG_COUNT:
                o->type = SHOAL_T_INT;
                o->i = (int64_t)g->count;
                break;
            case SHOAL_AGG_SUM:
                if (c->n && c->is_int) {
                    o->type = SHOAL_T_INT;
                    o->i = c->isum;
                } else if (c->n) {
                    o->type = SHOAL_T_DOUBLE;
                    o->d = c->dsum;
                }
                break;
            case SHOAL_AGG_AVG:
                if (c->n) {
                    o->type = SHOAL_T_DOUBLE;
                    o->d = (c->is_int ? (double)c->isum : c->dsum) / (double)c->n;
                }
                break;
            case SHOAL_AGG_MIN:
            case SHOAL_AGG_MAX:
                if (c->has_best) {
                    *o = c->best;
                    memset(&c->best, 0, sizeof c->best);
                    c->has_best = false;
                }
                break;
            }
        }
    }
    size_t ng = a->ngroup;
    if (G->n > 1)
        qsort_r(G->g, G->n, sizeof *G->g, group_cmp, &ng);
    return SHOAL_OK;
}

shoal_err
shoal_aggregate(shoal_replica *r, const shoal_query *q, const char *const *group, size_t ngroup,
                const shoal_aggregate_spec *spec, size_t nspec, shoal_groups **out)
{
    assert(r && q && out && (group || !ngroup) && (spec || !nspec));
    *out = NULL;
    if (ngroup > MAX_GROUP || nspec > MAX_AGGS)
        return SHOAL_ETOOBIG;
    size_t glen[MAX_GROUP], slen[MAX_AGGS];
    for (size_t k = 0; k < ngroup; k++)
        if (!shoal__name_ok(group[k], SHOAL_MAX_FIELD, &glen[k]))
            return SHOAL_EINVAL;
    for (size_t j = 0; j < nspec; j++) {
        if (spec[j].op < SHOAL_AGG_COUNT || spec[j].op > SHOAL_AGG_AVG)
            return SHOAL_EINVAL;
        slen[j] = 0;
        if (spec[j].op != SHOAL_AGG_COUNT &&
            !shoal__name_ok(spec[j].field, SHOAL_MAX_FIELD, &slen[j]))
            return SHOAL_EINVAL;
    }
    pthread_mutex_lock(&r->mu);
    int err = shoal__query_check(r, q);
    shoal_groups *G = NULL;
    if (!err) {
        G = shoal__calloc(1, sizeof *G);
        if (!G)
            err = SHOAL_ENOMEM;
    }
    if (!err) {
        G->ngroup = ngroup;
        G->nspec = nspec;
        agg_ctx a = { .group = group,
                      .glen = glen,
                      .ngroup = ngroup,
                      .spec = spec,
                      .slen = slen,
                      .nspec = nspec,
                      .G = G };
        shoal__map_init(&a.index);
        shoal__buf_init(&a.kb);
        run x = { .r = r, .Q = q, .full = false, .on_match = agg_match, .arg = &a };
        err = shoal__store_read(r->store, run_fn, &x);
        run_free(&x);
        if (!err)
            err = agg_finish(&a);
        shoal__map_clear(&a.index, NULL);
        shoal__buf_free(&a.kb);
        shoal__free(a.next);
        if (err)
            shoal__fail(r, err, "aggregate %s", q->coll);
    }
    pthread_mutex_unlock(&r->mu);
    if (err) {
        shoal_groups_free(G);
        return (shoal_err)err;
    }
    *out = G;
    return SHOAL_OK;
}

/* -------------------------------------------------------------- indexes */

typedef struct ix_ctx {
    const uint8_t *coll;
    size_t clen;
    const uint8_t *field;
    size_t flen;
    bool drop;
} ix_ctx;

static int
ix_fn(shoal__stxn *t, void *arg)
{
    ix_ctx *c = arg;
    if (c->drop)
        return shoal__stxn_qix_drop(t, c->coll, c->clen, c->field, c->flen);
    uint32_t ix = 0;
    int err = shoal__stxn_qix_create(t, c->coll, c->clen, c->field, c->flen, &ix);
    if (err == SHOAL_EBUSY)
        return SHOAL_OK;
    if (!err)
        err = shoal__qindex_build(t, c->coll, c->clen, c->field, c->flen, ix);
    return err;
}

static shoal_err
index_op(shoal_replica *r, const char *coll, const char *field, bool drop)
{
    assert(r);
    size_t clen, flen;
    if (!shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen) ||
        !shoal__name_ok(field, SHOAL_MAX_FIELD, &flen) || is_id((const uint8_t *)field, flen)) {
        pthread_mutex_lock(&r->mu);
        shoal__fail(r, SHOAL_EINVAL, "index: bad collection or field name%s",
                    field && strcmp(field, "_id") == 0 ? " (_id is always indexed)" : "");
        pthread_mutex_unlock(&r->mu);
        return SHOAL_EINVAL;
    }
    ix_ctx c = { (const uint8_t *)coll, clen, (const uint8_t *)field, flen, drop };
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_write(r->store, ix_fn, &c);
    if (err)
        shoal__fail(r, err, "index %s %s %s", drop ? "drop" : "add", coll, field);
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

shoal_err
shoal_index_add(shoal_replica *r, const char *coll, const char *field)
{
    return index_op(r, coll, field, false);
}

shoal_err
shoal_index_drop(shoal_replica *r, const char *coll, const char *field)
{
    return index_op(r, coll, field, true);
}

typedef struct ixls_ctx {
    const uint8_t *coll;
    size_t clen;
    shoal_strlist *out;
} ixls_ctx;

static int
ixls_cb(const uint8_t *coll, size_t clen, const uint8_t *field, size_t flen, uint32_t ix, void *arg)
{
    ixls_ctx *c = arg;
    if (c->coll)
        return shoal__strlist_add(c->out, field, flen);
    size_t n = shoal_strlist_count(c->out);
    const char *last = n ? shoal_strlist_get(c->out, n - 1) : NULL;
    if (last && strlen(last) == clen && memcmp(last, coll, clen) == 0)
        return SHOAL_OK;
    return shoal__strlist_add(c->out, coll, clen);
}

static int
ixls_fn(shoal__stxn *t, void *arg)
{
    ixls_ctx *c = arg;
    return shoal__stxn_qix_list(t, c->coll, c->clen, ixls_cb, c);
}

shoal_err
shoal_indexes(shoal_replica *r, const char *coll, shoal_strlist **out)
{
    assert(r && out);
    *out = NULL;
    size_t clen = 0;
    if (coll && !shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen))
        return SHOAL_EINVAL;
    ixls_ctx c = { (const uint8_t *)coll, clen, NULL };
    int err = shoal__strlist_new(&c.out);
    if (err)
        return (shoal_err)err;
    pthread_mutex_lock(&r->mu);
    err = shoal__store_read(r->store, ixls_fn, &c);
    if (err)
        shoal__fail(r, err, "indexes");
    pthread_mutex_unlock(&r->mu);
    if (err) {
        shoal_strlist_free(c.out);
        return (shoal_err)err;
    }
    *out = c.out;
    return SHOAL_OK;
}
