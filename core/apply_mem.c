/*
 * core/apply_mem.c - the apply pipeline's store in memory (apply_mem.h).
 *
 * State: the applied changes in application order (the log: envelope,
 * author, seq, document, superseded flag) with hash maps from change id
 * and from (author, seq) to their entry; the pending set and the evidence
 * envelopes in arrays (a map from change id for the pending set); the
 * aliases (version id -> author, seq) in an array with a map; the
 * documents (key "coll\0id" -> state, heads, the log entries of their
 * changes) in an array with a map.  Map values are array indexes + 1.
 *
 * A transaction works on the live state after saving a deep copy of it
 * (documents copied through their full encoding); a rollback puts the copy
 * back.  That costs a copy of everything per import: fine for the small
 * states of tests and fuzzing, which is what this store is for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "apply_mem.h"
#include "core.h"
#include "digest.h"

typedef struct mchange {
    uint8_t cid[SHOAL__ID_BYTES];
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
    uint8_t *env; /* owned */
    size_t len;
    size_t doc;    /* index into docs; SIZE_MAX for a rejected change */
    bool dead;     /* superseded */
    bool rejected; /* held as REJECTed: in no document */
} mchange;

typedef struct mdoc {
    uint8_t *key; /* "coll\0id", owned */
    size_t klen;
    shoal__doc *doc; /* owned */
    uint8_t *heads;  /* nheads x 32, sorted, owned */
    size_t nheads;
    size_t *chain; /* indexes into the log, in order, owned */
    size_t nchain;
} mdoc;

typedef struct mpend {
    uint8_t cid[SHOAL__ID_BYTES];
    uint8_t *env; /* owned */
    size_t len;
} mpend;

typedef struct mev {
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
    uint8_t cid[SHOAL__ID_BYTES];
    uint8_t *env; /* owned */
    size_t len;
} mev;

typedef struct malias {
    uint8_t cid[SHOAL__ID_BYTES];
    uint8_t author[SHOAL_KEY_BYTES];
    uint64_t seq;
} malias;

/* A sealed group held: change id | group index -> bytes. */
typedef struct mseal {
    uint8_t key[SHOAL__ID_BYTES + 1];
    uint8_t *p; /* owned */
    size_t n;
} mseal;

typedef struct mstate {
    mseal *se;
    size_t nse;
    shoal__map se_ix; /* key -> seal */
    mchange *ch;
    size_t nch;
    mdoc *docs;
    size_t ndocs;
    mpend *pe;
    size_t npe;
    mev *ev;
    size_t nev;
    malias *al;
    size_t nal;
    shoal__map ch_ix;  /* cid -> live log entry */
    shoal__map as_ix;  /* author | seq -> live log entry */
    shoal__map doc_ix; /* key -> doc */
    shoal__map pe_ix;  /* cid -> pending entry */
    shoal__map al_ix;  /* cid -> alias */
} mstate;

struct shoal__memstore {
    mstate st;
    shoal__apply_store s;
    bool enforce;
    uint8_t root[SHOAL_KEY_BYTES];
};

#define IX(i)   ((void *)(uintptr_t)((i) + 1))
#define UNIX(p) ((size_t)(uintptr_t)(p)-1)

/* Grow an array of n elements of size sz to hold one more (capacity is
 * the next power of two, so no capacity field is kept). */
static int
grow(void **p, size_t n, size_t sz)
{
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return SHOAL_OK; /* room left below the next power of two */
    size_t cap = n ? n * 2 : 4;
    void *q = shoal__realloc(*p, cap * sz);
    if (!q)
        return SHOAL_ENOMEM;
    *p = q;
    return SHOAL_OK;
}

static uint8_t *
dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *q = shoal__malloc(n ? n : 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

/* ----------------------------------------------------------------- state */

static void
state_free(mstate *s)
{
    for (size_t i = 0; i < s->nch; i++)
        shoal__free(s->ch[i].env);
    for (size_t i = 0; i < s->ndocs; i++) {
        shoal__free(s->docs[i].key);
        shoal__doc_free(s->docs[i].doc);
        shoal__free(s->docs[i].heads);
        shoal__free(s->docs[i].chain);
    }
    for (size_t i = 0; i < s->npe; i++)
        shoal__free(s->pe[i].env);
    for (size_t i = 0; i < s->nev; i++)
        shoal__free(s->ev[i].env);
    for (size_t i = 0; i < s->nse; i++)
        shoal__free(s->se[i].p);
    shoal__free(s->se);
    shoal__map_clear(&s->se_ix, NULL);
    shoal__free(s->ch);
    shoal__free(s->docs);
    shoal__free(s->pe);
    shoal__free(s->ev);
    shoal__free(s->al);
    shoal__map_clear(&s->ch_ix, NULL);
    shoal__map_clear(&s->as_ix, NULL);
    shoal__map_clear(&s->doc_ix, NULL);
    shoal__map_clear(&s->pe_ix, NULL);
    shoal__map_clear(&s->al_ix, NULL);
    memset(s, 0, sizeof *s);
}

static void
state_init(mstate *s)
{
    memset(s, 0, sizeof *s);
    shoal__map_init(&s->se_ix);
    shoal__map_init(&s->ch_ix);
    shoal__map_init(&s->as_ix);
    shoal__map_init(&s->doc_ix);
    shoal__map_init(&s->pe_ix);
    shoal__map_init(&s->al_ix);
}

/* Arrays of n elements sized for grow(): capacity the next power of two. */
static void *
arr_copy(const void *p, size_t n, size_t sz)
{
    size_t cap = 4;
    while (cap < n)
        cap *= 2;
    void *q = shoal__malloc(cap * sz);
    if (q && n)
        memcpy(q, p, n * sz);
    return q;
}

static int
doc_copy(const shoal__doc *d, shoal__doc **out)
{
    shoal__buf b;
    shoal__buf_init(&b);
    int err = shoal__doc_encode_full(d, &b);
    if (!err)
        err = shoal__doc_decode_full(b.p, b.len, out);
    shoal__buf_free(&b);
    return err;
}

/* Deep copy of src into dst (initialised by it); dst is freed on error. */
static int
state_copy(mstate *dst, const mstate *src)
{
    state_init(dst);
    int err = SHOAL_OK;
    dst->ch = arr_copy(src->ch, src->nch, sizeof *src->ch);
    dst->docs = arr_copy(src->docs, src->ndocs, sizeof *src->docs);
    dst->pe = arr_copy(src->pe, src->npe, sizeof *src->pe);
    dst->ev = arr_copy(src->ev, src->nev, sizeof *src->ev);
    dst->al = arr_copy(src->al, src->nal, sizeof *src->al);
    if (!dst->ch || !dst->docs || !dst->pe || !dst->ev || !dst->al) {
        shoal__free(dst->ch);
        shoal__free(dst->docs);
        shoal__free(dst->pe);
        shoal__free(dst->ev);
        shoal__free(dst->al);
        state_init(dst);
        return SHOAL_ENOMEM;
    }
    /* Owned pointers: copied one by one, counted as they succeed, so that
     * state_free frees exactly what was copied. */
    for (size_t i = 0; !err && i < src->nch; i++) {
        dst->ch[i].env = dup_bytes(src->ch[i].env, src->ch[i].len);
        if (!dst->ch[i].env)
            err = SHOAL_ENOMEM;
        else
            dst->nch++;
    }
    for (size_t i = 0; !err && i < src->ndocs; i++) {
        const mdoc *a = &src->docs[i];
        mdoc *b = &dst->docs[i];
        memset(b, 0, sizeof *b);
        dst->ndocs++;
        b->klen = a->klen;
        b->nheads = a->nheads;
        b->nchain = a->nchain;
        b->key = dup_bytes(a->key, a->klen);
        b->heads = dup_bytes(a->heads, a->nheads * SHOAL__ID_BYTES);
        b->chain = arr_copy(a->chain, a->nchain, sizeof *a->chain);
        if (!b->key || !b->heads || !b->chain)
            err = SHOAL_ENOMEM;
        if (!err)
            err = doc_copy(a->doc, &b->doc);
    }
    for (size_t i = 0; !err && i < src->npe; i++) {
        dst->pe[i].env = dup_bytes(src->pe[i].env, src->pe[i].len);
        if (!dst->pe[i].env)
            err = SHOAL_ENOMEM;
        else
            dst->npe++;
    }
    for (size_t i = 0; !err && i < src->nev; i++) {
        dst->ev[i].env = dup_bytes(src->ev[i].env, src->ev[i].len);
        if (!dst->ev[i].env)
            err = SHOAL_ENOMEM;
        else
            dst->nev++;
    }
    dst->nal = src->nal;
    if (!err && src->nse) {
        dst->se = arr_copy(src->se, src->nse, sizeof *src->se);
        if (!dst->se)
            err = SHOAL_ENOMEM;
    }
    for (size_t i = 0; !err && i < src->nse; i++) {
        dst->se[i].p = dup_bytes(src->se[i].p, src->se[i].n);
        if (!dst->se[i].p)
            err = SHOAL_ENOMEM;
        else
            dst->nse++;
        if (!err)
            err = shoal__map_put(&dst->se_ix, dst->se[i].key, sizeof dst->se[i].key, IX(i));
    }
    /* The maps, from the arrays. */
    for (size_t i = 0; !err && i < dst->nch; i++) {
        const mchange *c = &dst->ch[i];
        if (c->dead)
            continue;
        uint8_t k[SHOAL__SEQKEY_BYTES];
        shoal__seqkey(k, c->author, c->seq);
        err = shoal__map_put(&dst->ch_ix, c->cid, SHOAL__ID_BYTES, IX(i));
        if (!err)
            err = shoal__map_put(&dst->as_ix, k, sizeof k, IX(i));
    }
    for (size_t i = 0; !err && i < dst->ndocs; i++)
        err = shoal__map_put(&dst->doc_ix, dst->docs[i].key, dst->docs[i].klen, IX(i));
    for (size_t i = 0; !err && i < dst->npe; i++)
        err = shoal__map_put(&dst->pe_ix, dst->pe[i].cid, SHOAL__ID_BYTES, IX(i));
    for (size_t i = 0; !err && i < dst->nal; i++)
        err = shoal__map_put(&dst->al_ix, dst->al[i].cid, SHOAL__ID_BYTES, IX(i));
    if (err)
        state_free(dst);
    return err;
}

/* ------------------------------------------------------- applied changes */

static bool
m_has(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    return shoal__map_get(&m->st.ch_ix, cid, SHOAL__ID_BYTES) != NULL;
}

static int
m_get(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t **env, size_t *len)
{
    shoal__memstore *m = ctx;
    void *v = shoal__map_get(&m->st.ch_ix, cid, SHOAL__ID_BYTES);
    if (!v)
        return SHOAL_ENOTFOUND;
    const mchange *c = &m->st.ch[UNIX(v)];
    *env = c->env;
    *len = c->len;
    return SHOAL_OK;
}

static int
m_authseq(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
          uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, author, seq);
    void *v = shoal__map_get(&m->st.as_ix, k, sizeof k);
    if (!v)
        return SHOAL_ENOTFOUND;
    memcpy(cid, m->st.ch[UNIX(v)].cid, SHOAL__ID_BYTES);
    return SHOAL_OK;
}

/* ----------------------------------------------------------- pending set */

static uint64_t
m_pending_count(void *ctx)
{
    shoal__memstore *m = ctx;
    return m->st.npe;
}

static bool
m_pending_has(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    return shoal__map_get(&m->st.pe_ix, cid, SHOAL__ID_BYTES) != NULL;
}

static int
m_pending_scan(void *ctx, shoal__apply_pending_fn cb, void *arg)
{
    shoal__memstore *m = ctx;
    for (size_t i = 0; i < m->st.npe; i++)
        if (cb(m->st.pe[i].cid, m->st.pe[i].env, m->st.pe[i].len, arg))
            break;
    return SHOAL_OK;
}

static int
m_pending_put(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len)
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    void *v = shoal__map_get(&s->pe_ix, cid, SHOAL__ID_BYTES);
    uint8_t *copy = dup_bytes(env, len);
    if (!copy)
        return SHOAL_ENOMEM;
    if (v) {
        mpend *p = &s->pe[UNIX(v)];
        shoal__free(p->env);
        p->env = copy;
        p->len = len;
        return SHOAL_OK;
    }
    int err = grow((void **)&s->pe, s->npe, sizeof *s->pe);
    if (!err)
        err = shoal__map_put(&s->pe_ix, cid, SHOAL__ID_BYTES, IX(s->npe));
    if (err) {
        shoal__free(copy);
        return err;
    }
    mpend *p = &s->pe[s->npe++];
    memcpy(p->cid, cid, SHOAL__ID_BYTES);
    p->env = copy;
    p->len = len;
    return SHOAL_OK;
}

static int
m_pending_del(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    void *v = shoal__map_take(&s->pe_ix, cid, SHOAL__ID_BYTES);
    if (!v)
        return SHOAL_OK;
    size_t i = UNIX(v), last = s->npe - 1;
    shoal__free(s->pe[i].env);
    if (i != last) {
        s->pe[i] = s->pe[last];
        int err = shoal__map_put(&s->pe_ix, s->pe[i].cid, SHOAL__ID_BYTES, IX(i));
        if (err)
            return err;
    }
    s->npe--;
    return SHOAL_OK;
}

/* -------------------------------------------------------------- evidence */

static int
m_ev_find(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t author[SHOAL_KEY_BYTES],
          uint64_t *seq)
{
    shoal__memstore *m = ctx;
    void *v = shoal__map_get(&m->st.al_ix, cid, SHOAL__ID_BYTES);
    if (!v)
        return SHOAL_ENOTFOUND;
    const malias *a = &m->st.al[UNIX(v)];
    if (author)
        memcpy(author, a->author, SHOAL_KEY_BYTES);
    if (seq)
        *seq = a->seq;
    return SHOAL_OK;
}

static int
cid_cmp(const void *a, const void *b)
{
    return memcmp(a, b, SHOAL__ID_BYTES);
}

static int
m_ev_versions(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq, uint8_t *cids,
              size_t max, size_t *n)
{
    shoal__memstore *m = ctx;
    const mstate *s = &m->st;
    size_t k = 0;
    for (size_t i = 0; i < s->nev; i++)
        if (s->ev[i].seq == seq && memcmp(s->ev[i].author, author, SHOAL_KEY_BYTES) == 0)
            k++;
    *n = k;
    if (!k || !max)
        return SHOAL_OK;
    uint8_t *all = shoal__malloc(k * SHOAL__ID_BYTES);
    if (!all)
        return SHOAL_ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < s->nev; i++)
        if (s->ev[i].seq == seq && memcmp(s->ev[i].author, author, SHOAL_KEY_BYTES) == 0)
            memcpy(all + j++ * SHOAL__ID_BYTES, s->ev[i].cid, SHOAL__ID_BYTES);
    qsort(all, k, SHOAL__ID_BYTES, cid_cmp);
    memcpy(cids, all, (k < max ? k : max) * SHOAL__ID_BYTES);
    shoal__free(all);
    return SHOAL_OK;
}

static uint64_t
m_ev_count(void *ctx)
{
    shoal__memstore *m = ctx;
    return m->st.nev;
}

static uint64_t
m_ev_ids(void *ctx)
{
    shoal__memstore *m = ctx;
    return m->st.nal;
}

static int
m_ev_alias(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
           const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    void *v = shoal__map_get(&s->al_ix, cid, SHOAL__ID_BYTES);
    malias *a;
    if (v) {
        a = &s->al[UNIX(v)];
    } else {
        int err = grow((void **)&s->al, s->nal, sizeof *s->al);
        if (!err)
            err = shoal__map_put(&s->al_ix, cid, SHOAL__ID_BYTES, IX(s->nal));
        if (err)
            return err;
        a = &s->al[s->nal++];
        memcpy(a->cid, cid, SHOAL__ID_BYTES);
    }
    memcpy(a->author, author, SHOAL_KEY_BYTES);
    a->seq = seq;
    return SHOAL_OK;
}

static mev *
ev_at(mstate *s, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
      const uint8_t cid[SHOAL__ID_BYTES])
{
    for (size_t i = 0; i < s->nev; i++)
        if (s->ev[i].seq == seq && memcmp(s->ev[i].author, author, SHOAL_KEY_BYTES) == 0 &&
            memcmp(s->ev[i].cid, cid, SHOAL__ID_BYTES) == 0)
            return &s->ev[i];
    return NULL;
}

static int
m_ev_get(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
         const uint8_t cid[SHOAL__ID_BYTES], const uint8_t **env, size_t *len)
{
    shoal__memstore *m = ctx;
    mev *e = ev_at(&m->st, author, seq, cid);
    if (!e || !e->env)
        return SHOAL_ENOTFOUND;
    *env = e->env;
    *len = e->len;
    return SHOAL_OK;
}

static int
m_ev_put(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
         const uint8_t cid[SHOAL__ID_BYTES], const uint8_t *env, size_t len)
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    uint8_t *copy = dup_bytes(env, len);
    if (!copy)
        return SHOAL_ENOMEM;
    mev *e = ev_at(s, author, seq, cid);
    if (!e) {
        int err = grow((void **)&s->ev, s->nev, sizeof *s->ev);
        if (err) {
            shoal__free(copy);
            return err;
        }
        e = &s->ev[s->nev++];
        memcpy(e->author, author, SHOAL_KEY_BYTES);
        e->seq = seq;
        memcpy(e->cid, cid, SHOAL__ID_BYTES);
        e->env = NULL;
    }
    shoal__free(e->env);
    e->env = copy;
    e->len = len;
    return m_ev_alias(ctx, author, seq, cid);
}

static int
m_ev_del(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t seq,
         const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    mev *e = ev_at(s, author, seq, cid);
    if (!e)
        return SHOAL_ENOTFOUND;
    shoal__free(e->env);
    *e = s->ev[--s->nev];
    return SHOAL_OK;
}

/* ------------------------------------------------------------- documents */

/* The document of (coll, id), created empty if missing. */
static int
doc_find(mstate *s, const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, size_t *out)
{
    uint8_t key[SHOAL__DOCKEY_MAX];
    if (clen == 0 || clen > SHOAL_MAX_COLLECTION || idlen == 0 || idlen > SHOAL_MAX_DOC_ID)
        return SHOAL_EINVAL;
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    void *v = shoal__map_get(&s->doc_ix, key, klen);
    if (v) {
        *out = UNIX(v);
        return SHOAL_OK;
    }
    int err = grow((void **)&s->docs, s->ndocs, sizeof *s->docs);
    if (err)
        return err;
    mdoc *d = &s->docs[s->ndocs];
    memset(d, 0, sizeof *d);
    d->key = dup_bytes(key, klen);
    d->klen = klen;
    d->doc = shoal__doc_new();
    if (!d->key || !d->doc)
        err = SHOAL_ENOMEM;
    if (!err)
        err = shoal__map_put(&s->doc_ix, key, klen, IX(s->ndocs));
    if (err) {
        shoal__free(d->key);
        shoal__doc_free(d->doc);
        return err;
    }
    *out = s->ndocs++;
    return SHOAL_OK;
}

static int
m_doc(void *ctx, const shoal__change *c, void **h, shoal__doc **d)
{
    shoal__memstore *m = ctx;
    size_t i;
    int err = doc_find(&m->st, c->coll, c->coll_len, c->doc, c->doc_len, &i);
    if (err)
        return err;
    *h = IX(i);
    *d = m->st.docs[i].doc;
    return SHOAL_OK;
}

/* Append rec to the log as a change of document di (SIZE_MAX: of none, a
 * rejected change). */
static int
log_append(mstate *s, size_t di, const shoal__rec *rec, const shoal__change *c)
{
    mdoc *d = di == SIZE_MAX ? NULL : &s->docs[di];
    int err = grow((void **)&s->ch, s->nch, sizeof *s->ch);
    if (!err && d)
        err = grow((void **)&d->chain, d->nchain, sizeof *d->chain);
    if (err)
        return err;
    mchange *e = &s->ch[s->nch];
    memset(e, 0, sizeof *e);
    e->env = dup_bytes(rec->env, rec->env_len);
    if (!e->env)
        return SHOAL_ENOMEM;
    memcpy(e->cid, rec->cid, SHOAL__ID_BYTES);
    memcpy(e->author, c->author, SHOAL_KEY_BYTES);
    e->seq = c->seq;
    e->len = rec->env_len;
    e->doc = di;
    e->rejected = d == NULL;
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, c->author, c->seq);
    err = shoal__map_put(&s->ch_ix, rec->cid, SHOAL__ID_BYTES, IX(s->nch));
    if (!err)
        err = shoal__map_put(&s->as_ix, k, sizeof k, IX(s->nch));
    if (err) {
        shoal__free(e->env);
        return err;
    }
    if (d)
        d->chain[d->nchain++] = s->nch;
    s->nch++;
    return SHOAL_OK;
}

static int
m_put(void *ctx, void *h, const shoal__rec *rec, const shoal__change *c, const uint8_t *deps)
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    size_t di = UNIX(h);
    int err = log_append(s, di, rec, c);
    if (err)
        return err;
    mdoc *d = &s->docs[di];
    uint8_t *nh;
    size_t n;
    err = shoal__heads_advance(d->heads, d->nheads, deps, c->ndeps, rec->cid, &nh, &n);
    if (err)
        return err;
    shoal__free(d->heads);
    d->heads = nh;
    d->nheads = n;
    return SHOAL_OK;
}

static int
decode_entry(const mchange *e, shoal__change *c)
{
    return shoal__change_stored(e->env, e->len, c);
}

/* A live change of a document being rebuilt: at is its log index. */
typedef shoal__rent rent;

static int
rent_load(void *ctx, const rent *e, shoal__change *c)
{
    const mstate *s = ctx;
    return decode_entry(&s->ch[e->at], c);
}

/* ---------------------------------------------------------- sealed groups */

static int
m_seal_get(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, const uint8_t **p, size_t *n)
{
    shoal__memstore *m = ctx;
    uint8_t k[SHOAL__ID_BYTES + 1];
    memcpy(k, cid, SHOAL__ID_BYTES);
    k[SHOAL__ID_BYTES] = g;
    void *v = shoal__map_get(&m->st.se_ix, k, sizeof k);
    if (!v)
        return SHOAL_ENOTFOUND;
    *p = m->st.se[UNIX(v)].p;
    *n = m->st.se[UNIX(v)].n;
    return SHOAL_OK;
}

static int
m_seal_put(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], uint8_t g, const uint8_t *p, size_t n,
           bool *fresh)
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    const uint8_t *q;
    size_t qn;
    *fresh = m_seal_get(ctx, cid, g, &q, &qn) == SHOAL_ENOTFOUND;
    if (!*fresh)
        return SHOAL_OK;
    if (grow((void **)&s->se, s->nse, sizeof *s->se))
        return SHOAL_ENOMEM;
    mseal *e = &s->se[s->nse];
    memcpy(e->key, cid, SHOAL__ID_BYTES);
    e->key[SHOAL__ID_BYTES] = g;
    e->n = n;
    e->p = dup_bytes(p, n);
    if (!e->p)
        return SHOAL_ENOMEM;
    int err = shoal__map_put(&s->se_ix, e->key, sizeof e->key, IX(s->nse));
    if (err) {
        shoal__free(e->p);
        return err;
    }
    s->nse++;
    return SHOAL_OK;
}

/* A replay that builds a document's state: sealed ops read the groups
 * held. */
typedef struct mload {
    shoal__memstore *m;
    shoal__authz_cache *authz;
} mload;

static int
rent_load_state(void *ctx, const rent *e, shoal__change *c)
{
    mload *x = ctx;
    int err = decode_entry(&x->m->st.ch[e->at], c);
    if (!err && c->nseals) {
        err = shoal__apply_disclose(&x->m->s, &x->authz, e->cid, c);
        if (err)
            shoal__change_clear(c);
    }
    return err;
}

/* The live (not superseded) changes of md's chain, in log order, as the
 * list shoal__apply_rebuild and shoal__apply_doc_at take (*out owned). */
static int
live_chain(const mstate *s, const mdoc *md, rent **out, size_t *n)
{
    rent *e = shoal__calloc(md->nchain ? md->nchain : 1, sizeof *e);
    *out = e;
    *n = 0;
    if (!e)
        return SHOAL_ENOMEM;
    for (size_t i = 0; i < md->nchain; i++)
        if (!s->ch[md->chain[i]].dead) {
            e[*n].at = md->chain[i];
            memcpy(e[*n].cid, s->ch[md->chain[i]].cid, SHOAL__ID_BYTES);
            (*n)++;
        }
    return SHOAL_OK;
}

/* Revocation cuts: the smallest cut of author's revocations
 * (`_auth/revoke:HEX`) and equivocation proofs (`_auth/equivocation:HEX`,
 * seq - 1) held; SHOAL_ENOTFOUND if none. */
static int
m_cut(void *ctx, const uint8_t author[SHOAL_KEY_BYTES], uint64_t *cut)
{
    shoal__memstore *m = ctx;
    if (!m->enforce)
        return SHOAL_ENOTFOUND;
    mstate *s = &m->st;
    static const int kinds[] = { SHOAL__AUTH_REVOKE, SHOAL__AUTH_EQUIV };
    bool found = false;
    for (size_t k = 0; k < 2; k++) {
        char id[SHOAL__AUTH_DOCID_MAX];
        size_t idlen = shoal__auth_docid(kinds[k], author, id);
        uint8_t key[SHOAL__DOCKEY_MAX];
        size_t klen = shoal__dockey(key, (const uint8_t *)"_auth", 5, (const uint8_t *)id, idlen);
        void *v = shoal__map_get(&s->doc_ix, key, klen);
        if (!v)
            continue;
        const mdoc *md = &s->docs[UNIX(v)];
        for (size_t i = 0; i < md->nchain; i++) {
            const mchange *e = &s->ch[md->chain[i]];
            if (e->dead)
                continue;
            shoal__change c;
            int err = decode_entry(e, &c);
            if (err)
                return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
            uint8_t target[SHOAL_KEY_BYTES];
            uint64_t x;
            if (shoal__change_cut(&c, target, &x) && memcmp(target, author, 32) == 0 &&
                (!found || x < *cut)) {
                *cut = x;
                found = true;
            }
            shoal__change_clear(&c);
        }
    }
    return found ? SHOAL_OK : SHOAL_ENOTFOUND;
}

static bool
in_auth_key(const mdoc *md)
{
    return md->klen > 6 && memcmp(md->key, "_auth", 6) == 0;
}

/* Mark the entries of e (document md) that apply VOID
 * (shoal__apply_void). */
static int
mark_void(shoal__memstore *m, const mdoc *md, rent *e, size_t n)
{
    (void)md;
    if (!m->enforce)
        return SHOAL_OK;
    shoal__map cache;
    shoal__map_init(&cache);
    int err = SHOAL_OK;
    for (size_t i = 0; !err && i < n; i++) {
        shoal__change c;
        err = decode_entry(&m->st.ch[e[i].at], &c);
        if (err) {
            err = err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
            break;
        }
        err = shoal__apply_void(&m->s, &cache, &c, &e[i].voided);
        shoal__change_clear(&c);
    }
    shoal__map_clear(&cache, NULL);
    return err;
}

/* Rebuild document di from its live changes: the order of the contract in
 * apply.h ("supersede"), which docstore.c's shoal__wset_rebuild follows for
 * the LMDB store; a revoked author's changes past its cut apply VOID. */
static int
doc_rebuild(shoal__memstore *m, size_t di)
{
    mstate *s = &m->st;
    mdoc *md = &s->docs[di];
    rent *e;
    size_t n;
    if (live_chain(s, md, &e, &n))
        return SHOAL_ENOMEM;
    int verr = mark_void(m, md, e, n);
    if (verr) {
        shoal__free(e);
        return verr;
    }
    shoal__doc *d = NULL;
    uint8_t *heads = NULL;
    size_t nheads = 0;
    mload ml = { m, NULL };
    int err = shoal__apply_rebuild(&m->s, e, n, rent_load_state, &ml, &d, &heads, &nheads);
    shoal__authz_cache_free(ml.authz);
    if (!err) {
        shoal__doc_free(md->doc);
        md->doc = d;
        d = NULL;
        shoal__free(md->heads);
        md->heads = heads;
        md->nheads = nheads;
        heads = NULL;
    }
    shoal__doc_free(d);
    shoal__free(heads);
    shoal__free(e);
    return err;
}

static int
m_supersede(void *ctx, const uint8_t old[SHOAL__ID_BYTES], const shoal__change *oc,
            const shoal__rec *rec, const shoal__change *c)
{
    shoal__memstore *m = ctx;
    mstate *s = &m->st;
    void *v = shoal__map_take(&s->ch_ix, old, SHOAL__ID_BYTES);
    if (!v)
        return SHOAL_ENOTFOUND;
    mchange *e = &s->ch[UNIX(v)];
    uint8_t k[SHOAL__SEQKEY_BYTES];
    shoal__seqkey(k, e->author, e->seq);
    (void)shoal__map_take(&s->as_ix, k, sizeof k);
    e->dead = true;
    size_t wo, wn;
    int err = doc_find(s, oc->coll, oc->coll_len, oc->doc, oc->doc_len, &wo);
    if (!err) {
        err = doc_find(s, c->coll, c->coll_len, c->doc, c->doc_len, &wn);
        if (err == SHOAL_EINVAL)
            err = SHOAL_EPROTO;
    }
    if (!err)
        err = log_append(s, wn, rec, c);
    if (!err)
        err = doc_rebuild(m, wn);
    if (!err && wo != wn)
        err = doc_rebuild(m, wo);
    return err;
}

/* A revocation of its target was admitted: rebuild every document the
 * target changed past the cut. */
static int
m_revoked(void *ctx, const uint8_t target[SHOAL_KEY_BYTES])
{
    shoal__memstore *m = ctx;
    uint64_t cut;
    int err = m_cut(m, target, &cut);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    mstate *s = &m->st;
    /* authority the target issued past the cut: VOID, and so is what
     * names it, anywhere: every document is rebuilt */
    bool every = false;
    for (size_t di = 0; !every && di < s->ndocs; di++) {
        const mdoc *md = &s->docs[di];
        if (!in_auth_key(md) || shoal__auth_cut_doc(md->key + 6, md->klen - 6))
            continue;
        for (size_t i = 0; !every && i < md->nchain; i++) {
            const mchange *e = &s->ch[md->chain[i]];
            every = !e->dead && e->seq > cut && memcmp(e->author, target, 32) == 0;
        }
    }
    for (size_t di = 0; !err && di < s->ndocs; di++) {
        const mdoc *md = &s->docs[di];
        bool touched = every;
        for (size_t i = 0; !touched && i < md->nchain; i++) {
            const mchange *e = &s->ch[md->chain[i]];
            touched = !e->dead && e->seq > cut && memcmp(e->author, target, 32) == 0;
        }
        if (touched)
            err = doc_rebuild(m, di);
    }
    return err;
}

/* A group came after its change applied: rebuild its document. */
static int
m_disclosed(void *ctx, const uint8_t cid[SHOAL__ID_BYTES], const shoal__change *c)
{
    (void)cid;
    shoal__memstore *m = ctx;
    uint8_t key[SHOAL__DOCKEY_MAX];
    size_t klen = shoal__dockey(key, c->coll, c->coll_len, c->doc, c->doc_len);
    void *v = klen ? shoal__map_get(&m->st.doc_ix, key, klen) : NULL;
    return v ? doc_rebuild(m, UNIX(v)) : SHOAL_OK;
}

static bool
m_rejected(void *ctx, const uint8_t cid[SHOAL__ID_BYTES])
{
    shoal__memstore *m = ctx;
    void *v = shoal__map_get(&m->st.ch_ix, cid, SHOAL__ID_BYTES);
    return v && m->st.ch[UNIX(v)].rejected;
}

static int
m_put_rejected(void *ctx, const shoal__rec *rec, const shoal__change *c)
{
    shoal__memstore *m = ctx;
    return log_append(&m->st, SIZE_MAX, rec, c);
}

static int
m_doc_at(void *ctx, const shoal__change *c, const shoal__doc **out, bool *owned)
{
    shoal__doc *d = NULL;
    int err = shoal__memstore_doc_at(ctx, c->coll, c->coll_len, c->doc, c->doc_len, c->deps,
                                     c->ndeps, &d);
    *out = d;
    *owned = true;
    return err;
}

static const shoal__apply_store mem_store = {
    .has = m_has,
    .get = m_get,
    .authseq = m_authseq,
    .pending_count = m_pending_count,
    .pending_has = m_pending_has,
    .pending_scan = m_pending_scan,
    .pending_put = m_pending_put,
    .pending_del = m_pending_del,
    .ev_find = m_ev_find,
    .ev_versions = m_ev_versions,
    .ev_get = m_ev_get,
    .ev_count = m_ev_count,
    .ev_ids = m_ev_ids,
    .ev_put = m_ev_put,
    .ev_del = m_ev_del,
    .ev_alias = m_ev_alias,
    .doc = m_doc,
    .put = m_put,
    .supersede = m_supersede,
    .rejected = m_rejected,
    .put_rejected = m_put_rejected,
    .doc_at = m_doc_at,
    .cut = m_cut,
    .revoked = m_revoked,
    .seal_get = m_seal_get,
    .seal_put = m_seal_put,
    .disclosed = m_disclosed,
};

/* ---------------------------------------------------------------- public */

int
shoal__memstore_new(shoal__memstore **out)
{
    shoal__memstore *m = shoal__calloc(1, sizeof *m);
    *out = m;
    if (!m)
        return SHOAL_ENOMEM;
    state_init(&m->st);
    m->s = mem_store;
    m->s.ctx = m;
    return SHOAL_OK;
}

void
shoal__memstore_free(shoal__memstore *m)
{
    if (!m)
        return;
    state_free(&m->st);
    shoal__free(m);
}

int
shoal__memstore_import(shoal__memstore *m, const shoal__rec *recs, size_t count, uint64_t wall,
                       uint64_t max_drift_ms, uint64_t *clock, shoal_import_result *res)
{
    if (res)
        memset(res, 0, sizeof *res);
    shoal__cand *c = NULL;
    size_t at;
    int err = shoal__cands_make(recs, count, &c, &at);
    if (err)
        return err;
    uint8_t *skip = NULL;
    size_t nskip = 0;
    shoal__apply a;
    for (;;) {
        mstate save;
        err = state_copy(&save, &m->st);
        if (err)
            break;
        memset(&a, 0, sizeof a);
        a.s = &m->s;
        a.wall = wall;
        a.max_drift_ms = max_drift_ms;
        a.skip = skip;
        a.nskip = nskip;
        a.clock = *clock;
        a.root = m->enforce ? m->root : NULL;
        err = shoal__apply_drain(&a, c, count);
        if (!err) {
            state_free(&save);
            break;
        }
        state_free(&m->st); /* roll back */
        m->st = save;
        if (!a.bad_pending)
            break;
        err = shoal__apply_skip_bad(&a, &skip, &nskip);
        if (err)
            break;
    }
    if (!err) {
        *clock = a.clock;
        if (res)
            *res = a.res;
    }
    shoal__free(skip);
    shoal__cands_free(c, count);
    return err;
}

static int
key_cmp(const void *a, const void *b)
{
    const mdoc *x = *(const mdoc *const *)a, *y = *(const mdoc *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

int
shoal__memstore_digest(shoal__memstore *m, bool full, uint8_t out[SHOAL_DIGEST_BYTES])
{
    mstate *s = &m->st;
    const mdoc **v = shoal__malloc((s->ndocs ? s->ndocs : 1) * sizeof *v);
    if (!v)
        return SHOAL_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < s->ndocs; i++) {
        const shoal__doc *d = s->docs[i].doc;
        if (shoal__doc_exists(d) && (full || !shoal__doc_deleted(d)))
            v[n++] = &s->docs[i];
    }
    qsort(v, n, sizeof *v, key_cmp);
    crypto_generichash_state st;
    shoal__digest_begin(&st, full);
    shoal__buf b;
    shoal__buf_init(&b);
    int err = SHOAL_OK;
    for (size_t i = 0; !err && i < n; i++) {
        const mdoc *d = v[i];
        size_t clen = strlen((const char *)d->key); /* names hold no NUL */
        err = shoal__digest_doc(&st, full, d->key, clen, d->key + clen + 1, d->klen - clen - 1,
                                d->doc, &b);
    }
    shoal__buf_free(&b);
    shoal__free(v);
    if (!err)
        crypto_generichash_final(&st, out, SHOAL_DIGEST_BYTES);
    return err;
}

const shoal__doc *
shoal__memstore_doc(shoal__memstore *m, const uint8_t *coll, size_t clen, const uint8_t *id,
                    size_t idlen, const uint8_t **heads, size_t *nheads)
{
    uint8_t key[SHOAL__DOCKEY_MAX];
    *heads = NULL;
    *nheads = 0;
    if (clen > SHOAL_MAX_COLLECTION || idlen > SHOAL_MAX_DOC_ID)
        return NULL;
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    void *v = shoal__map_get(&m->st.doc_ix, key, klen);
    if (!v)
        return NULL;
    const mdoc *d = &m->st.docs[UNIX(v)];
    *heads = d->heads;
    *nheads = d->nheads;
    return d->doc;
}

int
shoal__memstore_doc_at(shoal__memstore *m, const uint8_t *coll, size_t clen, const uint8_t *id,
                       size_t idlen, const uint8_t *deps, size_t ndeps, shoal__doc **out)
{
    *out = NULL;
    uint8_t key[SHOAL__DOCKEY_MAX];
    if (clen > SHOAL_MAX_COLLECTION || idlen > SHOAL_MAX_DOC_ID)
        return SHOAL_EINVAL;
    size_t klen = shoal__dockey(key, coll, clen, id, idlen);
    void *v = shoal__map_get(&m->st.doc_ix, key, klen);
    if (!v)
        return SHOAL_OK;
    mstate *s = &m->st;
    const mdoc *md = &s->docs[UNIX(v)];
    rent *e;
    size_t n;
    if (live_chain(s, md, &e, &n))
        return SHOAL_ENOMEM;
    int err = shoal__apply_doc_at(&m->s, e, n, rent_load, s, deps, ndeps, out);
    shoal__free(e);
    return err;
}

void
shoal__memstore_set_root(shoal__memstore *m, const uint8_t root[SHOAL_KEY_BYTES])
{
    m->enforce = root != NULL;
    if (root)
        memcpy(m->root, root, SHOAL_KEY_BYTES);
}

uint64_t
shoal__memstore_rejected(shoal__memstore *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->st.nch; i++)
        n += m->st.ch[i].rejected && !m->st.ch[i].dead;
    return n;
}

bool
shoal__memstore_is_rejected(shoal__memstore *m, const uint8_t cid[SHOAL__ID_BYTES])
{
    return m_rejected(m, cid);
}

uint64_t
shoal__memstore_applied(shoal__memstore *m)
{
    return m->st.ch_ix.n;
}

uint64_t
shoal__memstore_pending(shoal__memstore *m)
{
    return m->st.npe;
}

uint64_t
shoal__memstore_evidence(shoal__memstore *m)
{
    return m->st.nev;
}
