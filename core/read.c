/*
 * core/read.c - reads: documents, document and collection lists, version
 * vectors, the pending count and the equivocators.
 *
 * Every read runs in one LMDB read transaction (an MVCC snapshot) and
 * returns deep copies: a shoal_doc never points into the doc cache, which
 * the next write may change or free.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* ------------------------------------------------------------- documents */

typedef struct dfield {
    char *name; /* owned */
    shoal_kind kind;
    shoal_value value; /* owned copy */
    int64_t counter;
    size_t nitems;
    shoal_value *items; /* owned copies */
} dfield;

struct shoal_doc {
    uint64_t epoch;
    size_t n;
    dfield *f;     /* owned */
    bool onepiece; /* f and everything it points to live in d's own block */
};

void
shoal_doc_free(shoal_doc *d)
{
    if (!d)
        return;
    if (d->onepiece) {
        shoal__free(d);
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        dfield *f = &d->f[i];
        shoal__free(f->name);
        shoal__value_clear(&f->value);
        for (size_t j = 0; j < f->nitems; j++)
            shoal__value_clear(&f->items[j]);
        shoal__free(f->items);
    }
    shoal__free(d->f);
    shoal__free(d);
}

static int
doc_copy(const shoal__doc *src, shoal_doc **out)
{
    shoal__vfield *v = NULL;
    size_t n = 0;
    int err = shoal__doc_view(src, &v, &n);
    if (err)
        return err;
    shoal_doc *d = shoal__calloc(1, sizeof *d);
    if (!d) {
        shoal__doc_view_free(v, n);
        return SHOAL_ENOMEM;
    }
    d->epoch = shoal__doc_epoch(src);
    if (n) {
        d->f = shoal__calloc(n, sizeof *d->f);
        if (!d->f)
            err = SHOAL_ENOMEM;
    }
    for (size_t i = 0; !err && i < n; i++) {
        dfield *f = &d->f[i];
        d->n = i + 1;
        f->name = shoal__malloc(v[i].name_len + 1);
        if (!f->name) {
            err = SHOAL_ENOMEM;
            break;
        }
        memcpy(f->name, v[i].name, v[i].name_len);
        f->name[v[i].name_len] = 0;
        f->kind = v[i].kind;
        if (f->kind == SHOAL_K_REGISTER) {
            err = shoal__value_copy(&f->value, &v[i].value);
        } else if (f->kind == SHOAL_K_COUNTER) {
            f->counter = v[i].counter;
            f->value.type = v[i].value.type; /* REDACTED: increments hidden */
        } else if (v[i].nitems) {
            f->items = shoal__calloc(v[i].nitems, sizeof *f->items);
            if (!f->items) {
                err = SHOAL_ENOMEM;
                break;
            }
            for (size_t j = 0; !err && j < v[i].nitems; j++) {
                err = shoal__value_copy(&f->items[j], &v[i].items[j]);
                if (!err)
                    f->nitems = j + 1;
            }
        }
    }
    shoal__doc_view_free(v, n);
    if (err) {
        shoal_doc_free(d);
        return err;
    }
    *out = d;
    return SHOAL_OK;
}

/* ------------------------------------------------ documents from views */

/* Bytes a value's payload needs in a one-piece document. */
static size_t
value_bytes(const shoal_value *v)
{
    return v->type == SHOAL_T_STR || v->type == SHOAL_T_BYTES ? v->len : 0;
}

static void
value_place(shoal_value *dst, const shoal_value *src, uint8_t **heap)
{
    *dst = *src;
    if (src->type == SHOAL_T_STR || src->type == SHOAL_T_BYTES) {
        if (src->len)
            memcpy(*heap, src->ptr, src->len);
        dst->ptr = *heap;
        *heap += src->len;
    }
}

int
shoal__doc_from_view(const shoal__qfield *f, size_t n, uint64_t epoch,
                     bool (*keep)(const shoal__qfield *f, void *arg), void *arg, shoal_doc **out)
{
    /* One block: the shoal_doc, its fields, the list item arrays, then the
     * names (NUL-terminated) and the value bytes. */
    size_t nf = 0, nitems = 0, heap = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep && !keep(&f[i], arg))
            continue;
        if (f[i].kind == SHOAL_K_LIST && f[i].long_list)
            return SHOAL_EINVAL; /* the caller must pass a full view */
        nf++;
        heap += f[i].name_len + 1;
        if (f[i].kind == SHOAL_K_REGISTER) {
            heap += value_bytes(&f[i].value);
        } else if (f[i].kind == SHOAL_K_LIST) {
            nitems += f[i].nitems;
            heap += f[i].items_len; /* an item's payload is never longer than its encoding */
        }
    }
    size_t size = sizeof(shoal_doc) + nf * sizeof(dfield) + nitems * sizeof(shoal_value) + heap;
    uint8_t *blk = shoal__malloc(size);
    if (!blk)
        return SHOAL_ENOMEM;
    shoal_doc *d = (shoal_doc *)blk;
    memset(d, 0, sizeof *d);
    d->epoch = epoch;
    d->onepiece = true;
    d->f = nf ? (dfield *)(blk + sizeof(shoal_doc)) : NULL;
    shoal_value *items = (shoal_value *)(blk + sizeof(shoal_doc) + nf * sizeof(dfield));
    uint8_t *hp = (uint8_t *)(items + nitems);
    for (size_t i = 0; i < n; i++) {
        if (keep && !keep(&f[i], arg))
            continue;
        dfield *x = &d->f[d->n++];
        memset(x, 0, sizeof *x);
        x->name = (char *)hp;
        memcpy(hp, f[i].name, f[i].name_len);
        hp[f[i].name_len] = 0;
        hp += f[i].name_len + 1;
        x->kind = f[i].kind;
        if (f[i].kind == SHOAL_K_REGISTER) {
            value_place(&x->value, &f[i].value, &hp);
        } else if (f[i].kind == SHOAL_K_COUNTER) {
            x->counter = f[i].value.i;
        } else {
            shoal__mpr r;
            shoal__mpr_init(&r, f[i].items, f[i].items_len);
            x->items = f[i].nitems ? items : NULL;
            for (uint32_t j = 0; j < f[i].nitems; j++) {
                shoal_value v;
                shoal__mpr_value(&r, &v);
                if (r.err) {
                    shoal__free(blk);
                    return SHOAL_ECORRUPT;
                }
                value_place(&items[j], &v, &hp);
            }
            x->nitems = f[i].nitems;
            items += f[i].nitems;
        }
    }
    *out = d;
    return SHOAL_OK;
}

typedef struct get_ctx {
    shoal_replica *r;
    const uint8_t *coll;
    size_t clen;
    const uint8_t *id;
    size_t idlen;
    shoal_doc *out;
} get_ctx;

static int
get_fn(shoal__stxn *t, void *arg)
{
    get_ctx *g = arg;
    shoal__dmeta m;
    const shoal__doc *d;
    int err = shoal__doc_read(g->r, t, g->coll, g->clen, g->id, g->idlen, &m, &d);
    if (!err) {
        if (!shoal__doc_exists(d))
            err = SHOAL_ENOTFOUND;
        else if (shoal__doc_deleted(d))
            err = SHOAL_EDELETED;
        else
            err = doc_copy(d, &g->out);
    }
    shoal__dmeta_clear(&m);
    return err;
}

shoal_err
shoal_doc_get(shoal_replica *r, const char *coll, const char *id, shoal_doc **out)
{
    assert(r && out);
    *out = NULL;
    size_t clen, idlen;
    if (!shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen) ||
        !shoal__name_ok(id, SHOAL_MAX_DOC_ID, &idlen))
        return SHOAL_EINVAL;
    pthread_mutex_lock(&r->mu);
    get_ctx g = { r, (const uint8_t *)coll, clen, (const uint8_t *)id, idlen, NULL };
    int err = shoal__store_read(r->store, get_fn, &g);
    if (err)
        shoal__fail(r, err, "%s/%s", coll, id);
    else
        *out = g.out;
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

uint64_t
shoal_doc_epoch(const shoal_doc *d)
{
    assert(d);
    return d->epoch;
}

size_t
shoal_doc_field_count(const shoal_doc *d)
{
    assert(d);
    return d->n;
}

const char *
shoal_doc_field_name(const shoal_doc *d, size_t i)
{
    assert(d);
    return i < d->n ? d->f[i].name : NULL;
}

shoal_kind
shoal_doc_field_kind(const shoal_doc *d, size_t i)
{
    assert(d && i < d->n);
    return d->f[i].kind;
}

shoal_err
shoal_doc_field_find(const shoal_doc *d, const char *name, size_t *i)
{
    assert(d && name && i);
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->f[mid].name, name);
        if (c == 0) {
            *i = mid;
            return SHOAL_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SHOAL_ENOTFOUND;
}

static shoal_err
field_of(const shoal_doc *d, size_t i, shoal_kind k, const dfield **out)
{
    assert(d);
    if (i >= d->n)
        return SHOAL_ERANGE;
    if (d->f[i].kind != k)
        return SHOAL_EKIND;
    *out = &d->f[i];
    return SHOAL_OK;
}

shoal_err
shoal_doc_field_value(const shoal_doc *d, size_t i, shoal_value *out)
{
    const dfield *f;
    shoal_err err = field_of(d, i, SHOAL_K_REGISTER, &f);
    if (!err)
        *out = f->value;
    return err;
}

shoal_err
shoal_doc_field_counter(const shoal_doc *d, size_t i, int64_t *out)
{
    const dfield *f;
    shoal_err err = field_of(d, i, SHOAL_K_COUNTER, &f);
    if (!err && f->value.type == SHOAL_T_REDACTED)
        return SHOAL_EPERM; /* sealed increments this replica may not read */
    if (!err)
        *out = f->counter;
    return err;
}

shoal_err
shoal_doc_field_list_len(const shoal_doc *d, size_t i, size_t *out)
{
    const dfield *f;
    shoal_err err = field_of(d, i, SHOAL_K_LIST, &f);
    if (!err)
        *out = f->nitems;
    return err;
}

shoal_err
shoal_doc_field_list_item(const shoal_doc *d, size_t i, size_t j, shoal_value *out)
{
    const dfield *f;
    shoal_err err = field_of(d, i, SHOAL_K_LIST, &f);
    if (!err && j >= f->nitems)
        err = SHOAL_ERANGE;
    if (!err)
        *out = f->items[j];
    return err;
}

/* --------------------------------------------------------------- strlist */

struct shoal_strlist {
    size_t n;
    size_t cap;
    char **s; /* owned, and each string */
};

size_t
shoal_strlist_count(const shoal_strlist *l)
{
    assert(l);
    return l->n;
}

const char *
shoal_strlist_get(const shoal_strlist *l, size_t i)
{
    assert(l);
    return i < l->n ? l->s[i] : NULL;
}

void
shoal_strlist_free(shoal_strlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        shoal__free(l->s[i]);
    shoal__free(l->s);
    shoal__free(l);
}

int
shoal__strlist_add(shoal_strlist *l, const void *p, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **s = shoal__realloc(l->s, cap * sizeof *s);
        if (!s)
            return SHOAL_ENOMEM;
        l->s = s;
        l->cap = cap;
    }
    char *c = shoal__malloc(n + 1);
    if (!c)
        return SHOAL_ENOMEM;
    memcpy(c, p, n);
    c[n] = 0;
    l->s[l->n++] = c;
    return SHOAL_OK;
}

int
shoal__strlist_new(shoal_strlist **out)
{
    *out = shoal__calloc(1, sizeof **out);
    return *out ? SHOAL_OK : SHOAL_ENOMEM;
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
strlist_sort(shoal_strlist *l)
{
    if (l->n > 1)
        qsort(l->s, l->n, sizeof *l->s, str_cmp);
}

typedef struct list_ctx {
    shoal_strlist *l;
    bool colls; /* collect collection names (deduplicated) */
    int err;
} list_ctx;

static int
list_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
        void *arg)
{
    list_ctx *lc = arg;
    shoal__dmeta m;
    int err = shoal__dmeta_parse(meta->p, meta->len, &m);
    if (err) {
        lc->err = err;
        return 1;
    }
    bool live = m.exists && !m.deleted;
    shoal__dmeta_clear(&m);
    if (!live)
        return 0;
    if (lc->colls) {
        /* The scan is sorted by (coll, id): duplicates are adjacent. */
        shoal_strlist *l = lc->l;
        if (l->n && strlen(l->s[l->n - 1]) == clen && memcmp(l->s[l->n - 1], coll, clen) == 0)
            return 0;
        err = shoal__strlist_add(l, coll, clen);
    } else {
        err = shoal__strlist_add(lc->l, id, idlen);
    }
    if (err) {
        lc->err = err;
        return 1;
    }
    return 0;
}

typedef struct scan_ctx {
    const uint8_t *coll;
    size_t clen;
    list_ctx lc;
} scan_ctx;

static int
scan_fn(shoal__stxn *t, void *arg)
{
    scan_ctx *s = arg;
    int err = shoal__stxn_doc_scan(t, s->coll, s->clen, list_cb, &s->lc);
    return s->lc.err ? s->lc.err : err;
}

static shoal_err
list_docs(shoal_replica *r, const char *coll, bool colls, shoal_strlist **out)
{
    assert(r && out);
    *out = NULL;
    size_t clen = 0;
    if (!colls && !shoal__name_ok(coll, SHOAL_MAX_COLLECTION, &clen))
        return SHOAL_EINVAL;
    shoal_strlist *l = shoal__calloc(1, sizeof *l);
    if (!l)
        return SHOAL_ENOMEM;
    pthread_mutex_lock(&r->mu);
    scan_ctx s = { .coll = (const uint8_t *)coll, .clen = clen, .lc = { .l = l, .colls = colls } };
    int err = shoal__store_read(r->store, scan_fn, &s);
    if (err) {
        shoal__fail(r, err, colls ? "collections" : "docs");
        shoal_strlist_free(l);
    } else {
        strlist_sort(l);
        *out = l;
    }
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

shoal_err
shoal_docs(shoal_replica *r, const char *coll, shoal_strlist **out)
{
    return list_docs(r, coll, false, out);
}

shoal_err
shoal_collections(shoal_replica *r, shoal_strlist **out)
{
    return list_docs(r, NULL, true, out);
}

/* ------------------------------------------------------- version vectors */

typedef struct vv_ent {
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
} vv_ent;

struct shoal_vv {
    vv_ent *e; /* owned, sorted by author */
    size_t n;
    size_t cap;
};

shoal_err
shoal_vv_new(shoal_vv **out)
{
    assert(out);
    *out = shoal__calloc(1, sizeof **out);
    return *out ? SHOAL_OK : SHOAL_ENOMEM;
}

void
shoal_vv_free(shoal_vv *vv)
{
    if (vv) {
        shoal__free(vv->e);
        shoal__free(vv);
    }
}

/* Index of author, or where it would go (*found false). */
static size_t
vv_find(const shoal_vv *vv, const uint8_t *author, bool *found)
{
    size_t lo = 0, hi = vv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(vv->e[mid].author, author, SHOAL_KEY_BYTES);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

shoal_err
shoal_vv_set(shoal_vv *vv, const uint8_t *author, uint64_t seq)
{
    assert(vv && author);
    bool found;
    size_t i = vv_find(vv, author, &found);
    if (found) {
        if (seq == 0) {
            memmove(&vv->e[i], &vv->e[i + 1], (vv->n - i - 1) * sizeof *vv->e);
            vv->n--;
        } else {
            vv->e[i].seq = seq;
        }
        return SHOAL_OK;
    }
    if (seq == 0)
        return SHOAL_OK;
    if (vv->n == vv->cap) {
        size_t cap = vv->cap ? vv->cap * 2 : 8;
        vv_ent *e = shoal__realloc(vv->e, cap * sizeof *e);
        if (!e)
            return SHOAL_ENOMEM;
        vv->e = e;
        vv->cap = cap;
    }
    memmove(&vv->e[i + 1], &vv->e[i], (vv->n - i) * sizeof *vv->e);
    memcpy(vv->e[i].author, author, SHOAL_KEY_BYTES);
    vv->e[i].seq = seq;
    vv->n++;
    return SHOAL_OK;
}

size_t
shoal_vv_count(const shoal_vv *vv)
{
    assert(vv);
    return vv->n;
}

shoal_err
shoal_vv_entry(const shoal_vv *vv, size_t i, const uint8_t **author, uint64_t *seq)
{
    assert(vv);
    if (i >= vv->n)
        return SHOAL_ERANGE;
    if (author)
        *author = vv->e[i].author;
    if (seq)
        *seq = vv->e[i].seq;
    return SHOAL_OK;
}

uint64_t
shoal_vv_get(const shoal_vv *vv, const uint8_t *author)
{
    assert(vv && author);
    bool found;
    size_t i = vv_find(vv, author, &found);
    return found ? vv->e[i].seq : 0;
}

typedef struct vv_ctx {
    shoal_vv *vv;
    int err;
} vv_ctx;

static int
vv_cb(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
      void *arg)
{
    (void)cid;
    vv_ctx *v = arg;
    v->err = shoal_vv_set(v->vv, author, seq);
    return v->err ? 1 : 0;
}

static int
version_fn(shoal__stxn *t, void *arg)
{
    vv_ctx *v = arg;
    int err = shoal__stxn_vv_scan(t, vv_cb, v);
    return v->err ? v->err : err;
}

shoal_err
shoal_replica_version(shoal_replica *r, shoal_vv **out)
{
    assert(r && out);
    *out = NULL;
    shoal_vv *vv;
    int err = shoal_vv_new(&vv);
    if (err)
        return (shoal_err)err;
    pthread_mutex_lock(&r->mu);
    vv_ctx v = { vv, SHOAL_OK };
    err = shoal__store_read(r->store, version_fn, &v);
    if (err) {
        shoal__fail(r, err, "version");
        shoal_vv_free(vv);
    } else {
        *out = vv;
    }
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

/* ------------------------------------------------- pending, equivocators */

static int
pcount_fn(shoal__stxn *t, void *arg)
{
    *(uint64_t *)arg = shoal__stxn_pending_count(t);
    return SHOAL_OK;
}

shoal_err
shoal_pending_count(shoal_replica *r, uint64_t *out)
{
    assert(r && out);
    pthread_mutex_lock(&r->mu);
    int err = shoal__store_read(r->store, pcount_fn, out);
    shoal__fail(r, err, "pending count");
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

static int
evid_cb(const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, const uint8_t cid[SHOAL__ID_BYTES],
        const shoal__sval *env, void *arg)
{
    (void)seq;
    (void)cid;
    (void)env;
    list_ctx *lc = arg;
    shoal_strlist *l = lc->l;
    char hex[65];
    shoal__hex(hex, author, SHOAL_KEY_BYTES);
    /* Evidence is keyed by author first: duplicates are adjacent. */
    if (l->n && strcmp(l->s[l->n - 1], hex) == 0)
        return 0;
    lc->err = shoal__strlist_add(l, hex, 2 * SHOAL_KEY_BYTES);
    return lc->err ? 1 : 0;
}

static int
evid_fn(shoal__stxn *t, void *arg)
{
    list_ctx *lc = arg;
    int err = shoal__stxn_evidence_scan(t, evid_cb, lc);
    return lc->err ? lc->err : err;
}

shoal_err
shoal_equivocators(shoal_replica *r, shoal_strlist **out)
{
    assert(r && out);
    *out = NULL;
    shoal_strlist *l = shoal__calloc(1, sizeof *l);
    if (!l)
        return SHOAL_ENOMEM;
    pthread_mutex_lock(&r->mu);
    list_ctx lc = { .l = l };
    int err = shoal__store_read(r->store, evid_fn, &lc);
    if (err) {
        shoal__fail(r, err, "equivocators");
        shoal_strlist_free(l);
    } else {
        strlist_sort(l);
        *out = l;
    }
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}
