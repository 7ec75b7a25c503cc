/*
 * core/digest.c - the visible-state and full-state digests.
 *
 * BLAKE2b-256 over a canonical stream (specified byte for byte in
 * docs/digests.md): a domain string, then for each document in (coll, id)
 * order a length-prefixed collection, id and document encoding.  The
 * encodings come from crdt/ (shoal__doc_encode_visible / _full), so two
 * replicas that applied the same set of changes hash the same bytes,
 * whatever order the changes arrived in and whatever snapshots they took.
 *
 * The document list is copied out of the scan first and documents are
 * loaded one by one afterwards, so no store cursor is open while a document
 * is materialised.
 */
#include <assert.h>
#include <string.h>

#include <sodium.h>

#include "core.h"
#include "digest.h"

typedef struct dkey {
    uint8_t *key; /* "coll\0id", owned */
    size_t clen;
    size_t idlen;
} dkey;

typedef struct dig_ctx {
    shoal_replica *r;
    bool full;
    bool commit; /* the commitment digest (full states, sealed values as commitments) */
    dkey *k;
    size_t n;
    size_t cap;
    int err;
    uint8_t *out;
} dig_ctx;

static int
collect_cb(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen,
           const shoal__sval *meta, void *arg)
{
    dig_ctx *g = arg;
    shoal__dmeta m;
    int err = shoal__dmeta_parse(meta->p, meta->len, &m);
    if (err) {
        g->err = err;
        return 1;
    }
    bool take = g->full ? m.exists : (m.exists && !m.deleted);
    shoal__dmeta_clear(&m);
    if (!take)
        return 0;
    if (clen == 0 || clen > SHOAL_MAX_COLLECTION || idlen == 0 || idlen > SHOAL_MAX_DOC_ID) {
        g->err = SHOAL_ECORRUPT;
        return 1;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        dkey *p = shoal__realloc(g->k, cap * sizeof *p);
        if (!p) {
            g->err = SHOAL_ENOMEM;
            return 1;
        }
        g->k = p;
        g->cap = cap;
    }
    uint8_t *key = shoal__malloc(clen + 1 + idlen);
    if (!key) {
        g->err = SHOAL_ENOMEM;
        return 1;
    }
    shoal__dockey(key, coll, clen, id, idlen);
    g->k[g->n++] = (dkey){ key, clen, idlen };
    return 0;
}

static void
hash_chunk(crypto_generichash_state *st, const uint8_t *p, size_t n)
{
    uint8_t len[4];
    shoal__be32_put(len, (uint32_t)n);
    crypto_generichash_update(st, len, 4);
    if (n)
        crypto_generichash_update(st, p, n);
}

void
shoal__digest_begin(crypto_generichash_state *st, bool full)
{
    crypto_generichash_init(st, NULL, 0, SHOAL_DIGEST_BYTES);
    const char *domain = full ? "shoal-full-v1" : "shoal-visible-v1";
    crypto_generichash_update(st, (const uint8_t *)domain, strlen(domain));
}

/* The commitment digest's documents: each replayed with its sealed values
 * standing for their commitments (shoal__wset_commit_doc). */
static int
commit_docs(dig_ctx *g, shoal__stxn *t, crypto_generichash_state *st, shoal__buf *b)
{
    shoal__wset w;
    shoal__wset_init(&w, g->r);
    shoal__wset_reset(&w, t);
    int err = SHOAL_OK;
    for (size_t i = 0; !err && i < g->n; i++) {
        const dkey *k = &g->k[i];
        const uint8_t *coll = k->key, *id = k->key + k->clen + 1;
        shoal__wdoc *wd;
        shoal__doc *d = NULL;
        err = shoal__wset_get(&w, coll, k->clen, id, k->idlen, &wd);
        if (!err && wd->evicted)
            continue;
        if (!err)
            err = shoal__wset_commit_doc(&w, wd, &d);
        if (!err && d)
            err = shoal__digest_doc(st, true, coll, k->clen, id, k->idlen, d, b);
        shoal__doc_free(d);
    }
    shoal__wset_free(&w);
    return err;
}

int
shoal__digest_doc(crypto_generichash_state *st, bool full, const uint8_t *coll, size_t clen,
                  const uint8_t *id, size_t idlen, const shoal__doc *d, shoal__buf *scratch)
{
    scratch->len = 0;
    int err = full ? shoal__doc_encode_full(d, scratch) : shoal__doc_encode_visible(d, scratch);
    if (err)
        return err;
    if (scratch->len > UINT32_MAX)
        return SHOAL_ETOOBIG;
    hash_chunk(st, coll, clen);
    hash_chunk(st, id, idlen);
    hash_chunk(st, scratch->p, scratch->len);
    return SHOAL_OK;
}

static int
digest_fn(shoal__stxn *t, void *arg)
{
    dig_ctx *g = arg;
    int err = shoal__stxn_doc_scan(t, NULL, 0, collect_cb, g);
    if (g->err)
        err = g->err;
    if (err)
        return err;
    crypto_generichash_state st;
    shoal__digest_begin(&st, g->full);
    if (g->commit) {
        crypto_generichash_init(&st, NULL, 0, SHOAL_DIGEST_BYTES);
        crypto_generichash_update(&st, (const uint8_t *)"shoal-commit-v1", 15);
    }
    shoal__buf b;
    shoal__buf_init(&b);
    if (g->commit) {
        err = commit_docs(g, t, &st, &b);
    }
    for (size_t i = 0; !err && !g->commit && i < g->n; i++) {
        const dkey *k = &g->k[i];
        const uint8_t *coll = k->key, *id = k->key + k->clen + 1;
        shoal__dmeta m;
        const shoal__doc *d;
        err = shoal__doc_read(g->r, t, coll, k->clen, id, k->idlen, &m, &d);
        shoal__dmeta_clear(&m);
        if (!err)
            err = shoal__digest_doc(&st, g->full, coll, k->clen, id, k->idlen, d, &b);
    }
    shoal__buf_free(&b);
    if (!err)
        crypto_generichash_final(&st, g->out, SHOAL_DIGEST_BYTES);
    return err;
}

static shoal_err
digest_run(shoal_replica *r, bool full, bool commit, uint8_t *out)
{
    assert(r && out);
    pthread_mutex_lock(&r->mu);
    dig_ctx g;
    memset(&g, 0, sizeof g);
    g.r = r;
    g.full = full;
    g.commit = commit;
    g.out = out;
    int err = shoal__store_read(r->store, digest_fn, &g);
    for (size_t i = 0; i < g.n; i++)
        shoal__free(g.k[i].key);
    shoal__free(g.k);
    shoal__fail(r, err, "digest");
    pthread_mutex_unlock(&r->mu);
    return (shoal_err)err;
}

shoal_err
shoal_digest(shoal_replica *r, bool full, uint8_t *out)
{
    return digest_run(r, full, false, out);
}

shoal_err
shoal_digest_commitment(shoal_replica *r, uint8_t *out)
{
    return digest_run(r, true, true, out);
}
