/*
 * core/live.c - live queries: a query's result kept up to date as events.
 *
 * One hub per replica handle holds its live queries, a cursor into the
 * change log (the last position looked at) and an inotify watch on
 * data.mdb.  A refresh takes every document that changed since the cursor
 * (the log entries after it, plus the documents this handle's own writes
 * touched, which also covers a document rebuilt without a log entry of its
 * own), reads its view in the current snapshot and hands it to the live
 * queries it can affect:
 *   - those holding it (a LEAVE or an UPDATE);
 *   - those anchored on a value it has: a live query whose predicate is an
 *     AND with an equality term (field == c, field IN (...), field
 *     CONTAINS c) is filed under "coll NUL field NUL value key" for each
 *     value; a change is looked up under the keys of its document's
 *     anchored fields;
 *   - the rest of its collection (no equality term: judged every time).
 * Membership is kept per live query (id -> hash of the view it was last
 * reported with), so an UPDATE is reported only when the document's view
 * changed and events never depend on how changes were grouped into
 * commits: each refresh reports the difference between what a live query
 * reported and the current state.
 *
 * Refreshes run under the replica lock: right after every write of this
 * handle (commit, import, sync), and in shoal_live_next when the inotify
 * watch saw data.mdb written (by another handle or process: a commit of
 * another process is visible once its pages and meta are written, and the
 * last write raises the last notification).  No thread and no timer: the
 * descriptor an application polls is an epoll set of the live query's own
 * eventfd (events queued) and the hub's inotify descriptor.  On a file
 * system without inotify, commits of other processes are seen at the next
 * write of this handle.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

struct shoal_live_event {
    shoal_live_kind kind;
    char *id; /* owned; "" for READY */
    size_t idlen;
    shoal_doc *doc;
    struct shoal_live_event *next, *prev; /* the queue, while queued */
};

typedef struct anchor {
    char *field; /* owned; NULL: not anchored */
    size_t flen;
    shoal__buf keys; /* the keys it is filed under, u16 length | key each */
} anchor;

struct shoal_live {
    shoal_replica *r;
    shoal_query *Q; /* owned copy */
    const shoal__query *q;
    const char *coll;
    size_t clen;
    int efd, epfd;
    shoal_live_event *head, *tail;
    shoal__map queued;  /* id -> its queued event (keys Borrowed from the event) */
    shoal__map members; /* id -> view hash (never 0) */
    anchor an;
    bool stamp;   /* candidate mark of the current refresh */
    bool opening; /* its initial result is being taken: not a candidate */
};

/* A list of live queries (a map value). */
typedef struct lvec {
    shoal_live **v;
    size_t n, cap;
} lvec;

/* A field some live query is anchored on, and how many are. */
typedef struct afield {
    const char *coll; /* Borrowed from a live query anchored on it */
    size_t clen;
    const char *field; /* the same */
    size_t flen;
    size_t refs;
} afield;

struct shoal__livehub {
    int ino; /* inotify descriptor, -1 if unavailable */
    afield *af;
    size_t naf, capaf;
    uint64_t cursor;
    lvec all;
    shoal__map anchors; /* "coll\0field\0key" -> lvec* */
    shoal__map dirty;   /* "coll\0id" -> (void*)1, from this handle's writes */
};

static void warn(shoal_replica *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
warn(shoal_replica *r, const char *fmt, ...)
{
    if (!r->opt.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->opt.log(r->opt.log_ctx, SHOAL_LOG_WARN, msg);
}

static uint64_t
view_hash(const shoal__qscratch *s)
{
    uint64_t h = shoal__hash(s->vp, s->vlen) ^ shoal__hash_mix(s->epoch + 1);
    return h ? h : 1;
}

static int
lvec_add(lvec *l, shoal_live *x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        void *p = shoal__realloc(l->v, cap * sizeof *l->v);
        if (!p)
            return SHOAL_ENOMEM;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return SHOAL_OK;
}

static void
lvec_del(lvec *l, shoal_live *x)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == x) {
            memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof *l->v);
            l->n--;
            return;
        }
}

/* -------------------------------------------------------------- events */

static void
unlink_event(shoal_live *l, shoal_live_event *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->next = e->prev = NULL;
    if (e->kind != SHOAL_LIVE_READY)
        shoal__map_take(&l->queued, e->id, e->idlen);
    if (!l->head) {
        uint64_t v;
        ssize_t n = read(l->efd, &v, sizeof v); /* reset: nothing queued */
        (void)n;
    }
}

/* Queue an event.  A document has at most one event queued: a new one
 * folds into it (ENTER then UPDATE is an ENTER of the newer document,
 * ENTER then LEAVE is nothing, UPDATE then LEAVE a LEAVE, LEAVE then
 * ENTER an UPDATE), so an application that reads late still sees the
 * difference from what it last read, and the queue never holds more
 * events than the collection has documents.  Takes doc. */
static int
push(shoal_live *l, shoal_live_kind kind, const uint8_t *id, size_t idlen, shoal_doc *doc)
{
    shoal_live_event *old = kind == SHOAL_LIVE_READY ? NULL : shoal__map_get(&l->queued, id, idlen);
    if (old) {
        shoal_live_kind k = old->kind;
        shoal_doc_free(old->doc);
        old->doc = doc;
        if (k == SHOAL_LIVE_ENTER && kind == SHOAL_LIVE_LEAVE) {
            unlink_event(l, old);
            shoal_live_event_free(old);
        } else if (k == SHOAL_LIVE_LEAVE && kind == SHOAL_LIVE_ENTER) {
            old->kind = SHOAL_LIVE_UPDATE;
        } else if (kind == SHOAL_LIVE_LEAVE) {
            old->kind = SHOAL_LIVE_LEAVE;
        } /* ENTER + UPDATE stays ENTER, UPDATE + UPDATE stays UPDATE */
        return SHOAL_OK;
    }
    shoal_live_event *e = shoal__calloc(1, sizeof *e);
    char *s = shoal__malloc(idlen + 1);
    if (!e || !s) {
        shoal__free(e);
        shoal__free(s);
        shoal_doc_free(doc);
        return SHOAL_ENOMEM;
    }
    if (idlen)
        memcpy(s, id, idlen);
    s[idlen] = 0;
    e->kind = kind;
    e->id = s;
    e->idlen = idlen;
    e->doc = doc;
    if (kind != SHOAL_LIVE_READY && shoal__map_put(&l->queued, e->id, idlen, e) != SHOAL_OK) {
        shoal_live_event_free(e);
        return SHOAL_ENOMEM;
    }
    bool was_empty = !l->head;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(l->efd, &one, sizeof one);
        (void)w; /* a full counter still polls readable */
    }
    return SHOAL_OK;
}

void
shoal_live_event_free(shoal_live_event *e)
{
    if (!e)
        return;
    shoal__free(e->id);
    shoal_doc_free(e->doc);
    shoal__free(e);
}

shoal_live_kind
shoal_live_event_kind(const shoal_live_event *e)
{
    assert(e);
    return e->kind;
}

const char *
shoal_live_event_id(const shoal_live_event *e)
{
    assert(e);
    return e->id;
}

const shoal_doc *
shoal_live_event_doc(const shoal_live_event *e)
{
    assert(e);
    return e->doc;
}

/* ------------------------------------------------------------- judging */

/* The matching document s describes: ENTER (had NULL), or UPDATE when its
 * view changed since the one reported (hash *had). */
static int
report(shoal_live *l, const uint8_t *id, size_t idlen, shoal__qscratch *s, uint64_t *had)
{
    uint64_t h = view_hash(s);
    if (had && *had == h)
        return SHOAL_OK;
    shoal_doc *doc;
    int err = shoal__doc_from_view(s->f, s->n, s->epoch, NULL, NULL, &doc);
    if (err)
        return err;
    if (!had) {
        uint64_t *v = shoal__malloc(sizeof *v);
        if (!v) {
            shoal_doc_free(doc);
            return SHOAL_ENOMEM;
        }
        *v = h;
        err = shoal__map_put(&l->members, id, idlen, v);
        if (err) {
            shoal__free(v);
            shoal_doc_free(doc);
            return err;
        }
    } else {
        *had = h;
    }
    return push(l, had ? SHOAL_LIVE_UPDATE : SHOAL_LIVE_ENTER, id, idlen, doc);
}

/* Judge one document for live query l: s holds its full view (parsed
 * once for every live query), or alive is false. */
static int
judge(shoal_live *l, const uint8_t *id, size_t idlen, bool alive, shoal__qscratch *s)
{
    bool match = alive && shoal__query_eval(l->q, &s->doc) == 1;
    uint64_t *had = shoal__map_get(&l->members, id, idlen);
    if (!match) {
        if (!had)
            return SHOAL_OK;
        shoal__free(shoal__map_take(&l->members, id, idlen));
        return push(l, SHOAL_LIVE_LEAVE, id, idlen, NULL);
    }
    return report(l, id, idlen, s, had);
}

/* ------------------------------------------------------------- anchors */

static size_t
anchor_key(uint8_t *out, const char *coll, size_t clen, const char *field, size_t flen,
           const uint8_t *k, size_t klen)
{
    size_t n = 0;
    memcpy(out + n, coll, clen);
    n += clen;
    out[n++] = 0;
    memcpy(out + n, field, flen);
    n += flen;
    out[n++] = 0;
    memcpy(out + n, k, klen);
    return n + klen;
}

enum {
    AKEY_MAX = SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_FIELD + 1 + SHOAL__QKEY_MAX
};

static int
file_under(struct shoal__livehub *h, shoal_live *l, const uint8_t *k, size_t klen)
{
    uint8_t ak[AKEY_MAX];
    size_t an = anchor_key(ak, l->coll, l->clen, l->an.field, l->an.flen, k, klen);
    lvec *v = shoal__map_get(&h->anchors, ak, an);
    if (!v) {
        v = shoal__calloc(1, sizeof *v);
        if (!v)
            return SHOAL_ENOMEM;
        int err = shoal__map_put(&h->anchors, ak, an, v);
        if (err) {
            shoal__free(v);
            return err;
        }
    }
    int err = lvec_add(v, l);
    if (err)
        return err;
    uint8_t b[2];
    shoal__be16_put(b, (uint16_t)klen);
    err = shoal__buf_append(&l->an.keys, b, 2);
    return err ? err : shoal__buf_append(&l->an.keys, k, klen);
}

static afield *
afield_find(struct shoal__livehub *h, const shoal_live *l)
{
    for (size_t i = 0; i < h->naf; i++) {
        afield *a = &h->af[i];
        if (a->clen == l->clen && a->flen == l->an.flen && memcmp(a->coll, l->coll, a->clen) == 0 &&
            memcmp(a->field, l->an.field, a->flen) == 0)
            return a;
    }
    return NULL;
}

static int
afield_ref(struct shoal__livehub *h, shoal_live *l)
{
    afield *a = afield_find(h, l);
    if (a) {
        a->refs++;
        return SHOAL_OK;
    }
    if (h->naf == h->capaf) {
        size_t cap = h->capaf ? 2 * h->capaf : 4;
        afield *p = shoal__realloc(h->af, cap * sizeof *p);
        if (!p)
            return SHOAL_ENOMEM;
        h->af = p;
        h->capaf = cap;
    }
    h->af[h->naf++] = (afield){ l->coll, l->clen, l->an.field, l->an.flen, 1 };
    return SHOAL_OK;
}

/* Drop l's reference; the names it lent pass to another live query
 * anchored on the same field. */
static void
afield_unref(struct shoal__livehub *h, shoal_live *l)
{
    afield *a = afield_find(h, l);
    if (!a)
        return;
    if (--a->refs == 0) {
        *a = h->af[--h->naf];
        return;
    }
    if (a->coll != l->coll && a->field != l->an.field)
        return;
    for (size_t i = 0; i < h->all.n; i++) {
        shoal_live *m = h->all.v[i];
        if (m != l && m->an.field && m->clen == a->clen && m->an.flen == a->flen &&
            memcmp(m->coll, a->coll, a->clen) == 0 && memcmp(m->an.field, a->field, a->flen) == 0) {
            a->coll = m->coll;
            a->field = m->an.field;
            return;
        }
    }
}

static void
unfile(struct shoal__livehub *h, shoal_live *l)
{
    if (l->an.field && afield_find(h, l))
        afield_unref(h, l);
    for (size_t off = 0; off + 2 <= l->an.keys.len;) {
        size_t kl = shoal__be16_get(l->an.keys.p + off);
        uint8_t ak[AKEY_MAX];
        size_t an =
            anchor_key(ak, l->coll, l->clen, l->an.field, l->an.flen, l->an.keys.p + off + 2, kl);
        lvec *v = shoal__map_get(&h->anchors, ak, an);
        if (v) {
            lvec_del(v, l);
            if (v->n == 0) {
                shoal__map_take(&h->anchors, ak, an);
                shoal__free(v->v);
                shoal__free(v);
            }
        }
        off += 2 + kl;
    }
    shoal__buf_free(&l->an.keys);
    shoal__free(l->an.field);
    l->an.field = NULL;
}

/* Pick l's anchor: the equality term with the fewest values. */
static int
anchor_live(struct shoal__livehub *h, shoal_live *l)
{
    shoal__qterm *terms = NULL;
    size_t nt = 0;
    int err = shoal__query_terms(l->q, &terms, &nt);
    if (err)
        return err;
    const shoal__qterm *best = NULL;
    for (size_t i = 0; i < nt; i++)
        if (terms[i].kind == SHOAL__QT_EQ && (!best || terms[i].nvals < best->nvals))
            best = &terms[i];
    if (best) {
        l->an.field = shoal__malloc(best->field_len + 1);
        if (!l->an.field)
            err = SHOAL_ENOMEM;
        else {
            memcpy(l->an.field, best->field, best->field_len);
            l->an.field[best->field_len] = 0;
            l->an.flen = best->field_len;
        }
        if (!err)
            err = afield_ref(h, l);
        for (size_t i = 0; !err && i < best->nvals; i++) {
            uint8_t k[SHOAL__QKEY_MAX];
            size_t kl = shoal__qkey(&best->vals[i], k);
            err = file_under(h, l, k, kl);
        }
        if (!err && best->contains) {
            uint8_t k = SHOAL__QKEY_LONGLIST;
            err = file_under(h, l, &k, 1);
        }
    }
    shoal__free(terms);
    return err;
}

/* ------------------------------------------------------------- refresh */

typedef struct cand_ctx {
    struct shoal__livehub *h;
    const char *coll;
    size_t clen;
    const char *field;
    size_t flen;
    lvec *out;
} cand_ctx;

static int
cand_key(const uint8_t *k, size_t kl, void *arg)
{
    cand_ctx *c = arg;
    uint8_t ak[AKEY_MAX];
    size_t an = anchor_key(ak, c->coll, c->clen, c->field, c->flen, k, kl);
    lvec *v = shoal__map_get(&c->h->anchors, ak, an);
    for (size_t i = 0; v && i < v->n; i++)
        if (!v->v[i]->stamp && !v->v[i]->opening) {
            v->v[i]->stamp = true;
            int err = lvec_add(c->out, v->v[i]);
            if (err)
                return err;
        }
    return SHOAL_OK;
}

/* Hand the document (coll, id) to the live queries it can affect. */
static int
refresh_doc(shoal_replica *r, shoal__stxn *t, const uint8_t *coll, size_t clen, const uint8_t *id,
            size_t idlen, lvec *cands, shoal__qscratch *s)
{
    struct shoal__livehub *h = r->live;
    cands->n = 0;
    bool any = false;
    for (size_t i = 0; i < h->all.n; i++) {
        shoal_live *l = h->all.v[i];
        if (l->opening || l->clen != clen || memcmp(l->coll, coll, clen) != 0)
            continue;
        any = true;
        l->stamp = !l->an.field || shoal__map_get(&l->members, id, idlen);
        if (l->stamp) {
            int err = lvec_add(cands, l);
            if (err)
                return err;
        }
    }
    if (!any)
        return SHOAL_OK;
    shoal__sval stored;
    int err = shoal__stxn_qview_get(t, coll, clen, id, idlen, &stored);
    bool alive = err == SHOAL_OK;
    if (err == SHOAL_ENOTFOUND || err == SHOAL_EINVAL)
        err = SHOAL_OK;
    /* The document's full view, parsed once for every live query (a long
     * list read from the document: no evaluation below needs it again). */
    if (!err && alive) {
        bool dummy;
        err = shoal__query_judge(r, t, NULL, (const char *)coll, clen, id, idlen, &stored, s, true,
                                 &dummy);
    }
    /* Anchored live queries its values point at: one lookup per value of
     * each anchored field of the collection. */
    for (size_t i = 0; !err && alive && i < h->naf; i++) {
        const afield *a = &h->af[i];
        if (a->clen != clen || memcmp(a->coll, coll, clen) != 0)
            continue;
        shoal__qfield idf;
        const shoal__qfield *f;
        if (a->flen == 3 && memcmp(a->field, "_id", 3) == 0) {
            memset(&idf, 0, sizeof idf);
            idf.kind = SHOAL_K_REGISTER;
            idf.value.type = SHOAL_T_STR;
            idf.value.ptr = id;
            idf.value.len = idlen;
            f = &idf;
        } else {
            f = shoal__qdoc_field(&s->doc, (const uint8_t *)a->field, a->flen);
        }
        if (f) {
            cand_ctx cc = { h, (const char *)coll, clen, a->field, a->flen, cands };
            err = shoal__qfield_keys(f, cand_key, &cc);
        }
    }
    for (size_t i = 0; !err && i < cands->n; i++)
        err = judge(cands->v[i], id, idlen, alive, s);
    for (size_t i = 0; i < cands->n; i++)
        cands->v[i]->stamp = false;
    return err;
}

typedef struct scan_ctx {
    shoal__map *set;
    shoal__buf keys; /* u16 length | key, in first-seen order */
    int err;
} scan_ctx;

static int
add_key(scan_ctx *c, const uint8_t *k, size_t n)
{
    if (shoal__map_get(c->set, k, n))
        return SHOAL_OK;
    int err = shoal__map_put(c->set, k, n, (void *)1);
    uint8_t b[2];
    shoal__be16_put(b, (uint16_t)n);
    if (!err)
        err = shoal__buf_append(&c->keys, b, 2);
    return err ? err : shoal__buf_append(&c->keys, k, n);
}

static int
log_cb(uint64_t pos, const uint8_t cid[SHOAL__ID_BYTES], const shoal__sval *env, void *arg)
{
    scan_ctx *c = arg;
    const uint8_t *body;
    size_t elen, blen;
    int err = shoal__envelope_parse(env->p, env->len, &elen, &body, &blen);
    if (err)
        return SHOAL_ECORRUPT;
    shoal__change ch;
    memset(&ch, 0, sizeof ch);
    memcpy(ch.author, shoal__envelope_author(env->p), SHOAL_KEY_BYTES);
    err = shoal__change_decode(body, blen, &ch);
    if (err)
        return SHOAL_ECORRUPT;
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t kl = 0;
    if (ch.coll_len <= SHOAL_MAX_COLLECTION && ch.doc_len <= SHOAL_MAX_DOC_ID)
        kl = shoal__dockey(k, ch.coll, ch.coll_len, ch.doc, ch.doc_len);
    shoal__change_clear(&ch);
    return kl ? add_key(c, k, kl) : SHOAL_OK;
}

typedef struct refresh_ctx {
    shoal_replica *r;
    shoal_live *fresh; /* a live query to fill with its initial result */
} refresh_ctx;

static int
initial_cb(const uint8_t *id, size_t idlen, shoal__qscratch *s, void *arg)
{
    return report(arg, id, idlen, s, NULL);
}

static int
refresh_fn(shoal__stxn *t, void *arg)
{
    refresh_ctx *rc = arg;
    shoal_replica *r = rc->r;
    struct shoal__livehub *h = r->live;
    shoal__map set;
    shoal__map_init(&set);
    scan_ctx sc = { .set = &set };
    shoal__buf_init(&sc.keys);
    int err = SHOAL_OK;
    uint64_t last = 0;
    err = shoal__stxn_log_last(t, &last, NULL);
    if (err == SHOAL_ENOTFOUND) {
        last = 0;
        err = SHOAL_OK;
    }
    if (!err && last > h->cursor)
        err = shoal__stxn_log_scan(t, h->cursor + 1, log_cb, &sc);
    /* This handle's own writes (a rebuilt document has no log entry). */
    for (size_t i = 0; !err && i < h->dirty.cap; i++)
        if (h->dirty.s[i].key)
            err = add_key(&sc, h->dirty.s[i].key, h->dirty.s[i].klen);
    lvec cands = { 0 };
    shoal__qscratch s;
    memset(&s, 0, sizeof s);
    shoal__buf_init(&s.full);
    for (size_t off = 0; !err && off + 2 <= sc.keys.len;) {
        size_t kl = shoal__be16_get(sc.keys.p + off);
        const uint8_t *k = sc.keys.p + off + 2;
        const uint8_t *nul = memchr(k, 0, kl);
        if (nul)
            err = refresh_doc(r, t, k, (size_t)(nul - k), nul + 1, kl - (size_t)(nul - k) - 1,
                              &cands, &s);
        off += 2 + kl;
    }
    if (!err && rc->fresh) {
        shoal_live *l = rc->fresh;
        err = shoal__query_each(r, t, l->Q, initial_cb, l);
        if (!err)
            err = push(l, SHOAL_LIVE_READY, (const uint8_t *)"", 0, NULL);
    }
    if (!err) {
        h->cursor = last > h->cursor ? last : h->cursor;
        shoal__map_clear(&h->dirty, NULL);
    }
    shoal__qscratch_free(&s);
    shoal__free(cands.v);
    shoal__buf_free(&sc.keys);
    shoal__map_clear(&set, NULL);
    return err;
}

static int
refresh(shoal_replica *r, shoal_live *fresh)
{
    refresh_ctx rc = { r, fresh };
    return shoal__store_read(r->store, refresh_fn, &rc);
}

void
shoal__live_touch(shoal_replica *r, const uint8_t *coll, size_t clen, const uint8_t *id,
                  size_t idlen)
{
    if (!r->live || r->live->all.n == 0)
        return;
    uint8_t k[SHOAL__DOCKEY_MAX];
    size_t kl = shoal__dockey(k, coll, clen, id, idlen);
    /* On ENOMEM the document is still in the log for the next refresh. */
    (void)shoal__map_put(&r->live->dirty, k, kl, (void *)1);
}

/* Read everything the inotify descriptor holds; true if it held anything. */
static bool drain_inotify(int fd);

void
shoal__live_after_write(shoal_replica *r)
{
    if (!r->live || r->live->all.n == 0)
        return;
    /* The notifications of this write (data.mdb was just written, when the
     * store is durable) are consumed here, so that they do not wake every
     * live query's descriptor for nothing; what another process committed
     * before them is in the snapshot the refresh reads next. */
    if (r->live->ino >= 0)
        (void)drain_inotify(r->live->ino);
    int err = refresh(r, NULL);
    if (err)
        warn(r, "live queries: refresh after a write failed: %s", shoal_strerror((shoal_err)err));
}

static bool
drain_inotify(int fd)
{
    bool any = false;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            any = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return any;
    }
}

/* ------------------------------------------------------------ the API */

static int
hub_make(shoal_replica *r)
{
    if (r->live)
        return SHOAL_OK;
    struct shoal__livehub *h = shoal__calloc(1, sizeof *h);
    if (!h)
        return SHOAL_ENOMEM;
    shoal__map_init(&h->anchors);
    shoal__map_init(&h->dirty);
    h->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (h->ino >= 0) {
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/data.mdb", r->dir);
        if (n < 0 || (size_t)n >= sizeof path ||
            inotify_add_watch(h->ino, path, IN_MODIFY | IN_CLOSE_WRITE) < 0) {
            close(h->ino);
            h->ino = -1;
        }
    }
    if (h->ino < 0)
        warn(r,
             "live queries: no inotify watch on data.mdb (%s): commits of other "
             "processes are seen at this handle's next write",
             strerror(errno));
    r->live = h;
    return SHOAL_OK;
}

void
shoal__live_free(shoal_replica *r)
{
    struct shoal__livehub *h = r->live;
    if (!h)
        return;
    assert(h->all.n == 0 && "close every live query before its replica");
    if (h->ino >= 0)
        close(h->ino);
    shoal__map_clear(&h->anchors, NULL);
    shoal__map_clear(&h->dirty, NULL);
    shoal__free(h->all.v);
    shoal__free(h->af);
    shoal__free(h);
    r->live = NULL;
}

static int
cursor_fn(shoal__stxn *t, void *arg)
{
    uint64_t *pos = arg;
    int err = shoal__stxn_log_last(t, pos, NULL);
    if (err == SHOAL_ENOTFOUND) {
        *pos = 0;
        return SHOAL_OK;
    }
    return err;
}

static void
live_destroy(shoal_live *l)
{
    for (shoal_live_event *e = l->head; e;) {
        shoal_live_event *n = e->next;
        shoal_live_event_free(e);
        e = n;
    }
    shoal__map_clear(&l->queued, NULL);
    shoal__map_clear(&l->members, shoal__free);
    shoal__buf_free(&l->an.keys);
    shoal__free(l->an.field);
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->efd >= 0)
        close(l->efd);
    shoal_query_free(l->Q);
    shoal__free(l);
}

shoal_err
shoal_live_open(shoal_replica *r, const shoal_query *q, shoal_live **out)
{
    assert(r && q && out);
    *out = NULL;
    shoal_live *l = shoal__calloc(1, sizeof *l);
    if (!l)
        return SHOAL_ENOMEM;
    l->r = r;
    l->efd = l->epfd = -1;
    shoal__map_init_borrow(&l->queued);
    shoal__map_init(&l->members);
    shoal__buf_init(&l->an.keys);
    int err = shoal__query_copy(q, &l->Q);
    if (err) {
        live_destroy(l);
        return (shoal_err)err;
    }
    l->q = shoal__query_of(l->Q, &l->coll, &l->clen);
    pthread_mutex_lock(&r->mu);
    err = shoal__query_check(r, l->Q);
    bool fresh_hub = !r->live;
    if (!err)
        err = hub_make(r);
    if (!err && fresh_hub)
        err = shoal__store_read(r->store, cursor_fn, &r->live->cursor);
    if (!err) {
        l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN };
        if (l->efd < 0 || l->epfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->efd, &ev) < 0 ||
            (r->live->ino >= 0 && epoll_ctl(l->epfd, EPOLL_CTL_ADD, r->live->ino, &ev) < 0))
            err = shoal__fail(r, SHOAL_ESTORE, "live query: %s", strerror(errno));
    }
    if (!err)
        err = anchor_live(r->live, l);
    if (!err)
        err = lvec_add(&r->live->all, l);
    if (!err) {
        /* Bring the others up to date and take the initial result in one
         * snapshot, from which the cursor goes on. */
        l->opening = true;
        err = refresh(r, l);
        l->opening = false;
        if (err) {
            lvec_del(&r->live->all, l);
            shoal__fail(r, err, "live query on %s", l->coll);
        }
    }
    if (err) {
        if (r->live)
            unfile(r->live, l);
        if (r->live && r->live->all.n == 0)
            shoal__live_free(r);
        pthread_mutex_unlock(&r->mu);
        live_destroy(l);
        return (shoal_err)err;
    }
    pthread_mutex_unlock(&r->mu);
    *out = l;
    return SHOAL_OK;
}

int
shoal_live_fd(const shoal_live *l)
{
    assert(l);
    return l->epfd;
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

shoal_err
shoal_live_next(shoal_live *l, int timeout_ms, shoal_live_event **out)
{
    assert(l && out);
    *out = NULL;
    shoal_replica *r = l->r;
    uint64_t deadline = timeout_ms > 0 ? mono_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int err = SHOAL_OK;
        if (r->live->ino >= 0 && drain_inotify(r->live->ino))
            err = refresh(r, NULL);
        if (err) {
            shoal__fail(r, err, "live query on %s", l->coll);
            pthread_mutex_unlock(&r->mu);
            return (shoal_err)err;
        }
        shoal_live_event *e = l->head;
        if (e)
            unlink_event(l, e);
        pthread_mutex_unlock(&r->mu);
        if (e) {
            *out = e;
            return SHOAL_OK;
        }
        int wait;
        if (timeout_ms == 0)
            return SHOAL_ETIMEDOUT;
        if (timeout_ms < 0) {
            wait = -1;
        } else {
            uint64_t now = mono_ms();
            if (now >= deadline)
                return SHOAL_ETIMEDOUT;
            wait = (int)(deadline - now);
        }
        struct pollfd p = { .fd = l->epfd, .events = POLLIN };
        int n = poll(&p, 1, wait);
        if (n < 0 && errno != EINTR)
            return SHOAL_ESTORE;
    }
}

void
shoal_live_close(shoal_live *l)
{
    if (!l)
        return;
    shoal_replica *r = l->r;
    pthread_mutex_lock(&r->mu);
    if (r->live) {
        unfile(r->live, l);
        lvec_del(&r->live->all, l);
        if (r->live->all.n == 0)
            shoal__live_free(r);
    }
    pthread_mutex_unlock(&r->mu);
    live_destroy(l);
}
