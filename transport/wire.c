/*
 * transport/wire.c - the sync protocol's frames, encoded and decoded.
 *
 * Every frame is one canonical MessagePack array whose first item is the
 * frame type (docs/protocol.md gives every byte).  Decoding goes through
 * the bounded reader of crdt/ (shoal__mpr): each declared count is checked
 * against the bytes that remain before anything is allocated for it, so a
 * frame can make us allocate at most about its own size.
 */
#include <string.h>

#include "transport.h"

enum {
    VV_ENTRY_MIN = 1 + 34 + 1 + 34 /* [bin32, uint, bin32] at its smallest */
};

/* -------------------------------------------------------------- encoders */

static void
put_entries(shoal__mpw *w, const shoal__vventry *e, size_t n)
{
    shoal__mpw_array(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        shoal__mpw_array(w, 3);
        shoal__mpw_bin(w, e[i].author, SHOAL_KEY_BYTES);
        shoal__mpw_uint(w, e[i].seq);
        shoal__mpw_bin(w, e[i].cid, SHOAL__ID_BYTES);
    }
}

int
shoal__wire_hello(shoal__buf *out, const uint8_t key[SHOAL_KEY_BYTES], const shoal__vventry *vv,
                  size_t n)
{
    if (n > SHOAL__MAX_VV)
        return SHOAL_ETOOBIG;
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 4);
    shoal__mpw_uint(&w, SHOAL__F_HELLO);
    shoal__mpw_uint(&w, SHOAL__PROTO_VERSION);
    shoal__mpw_bin(&w, key, SHOAL_KEY_BYTES);
    put_entries(&w, vv, n);
    /* About 70 bytes an author: past roughly 250,000 authors the vector no
     * longer fits in one frame, which every receiver would refuse. */
    if (!w.err && out->len - start > SHOAL__MAX_FRAME) {
        out->len = start;
        return SHOAL_ETOOBIG;
    }
    return w.err;
}

void
shoal__wire_put_subs(shoal__mpw *w, const shoal__wsub *subs, size_t n)
{
    shoal__mpw_array(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        shoal__mpw_array(w, 4);
        shoal__mpw_str(w, subs[i].name, subs[i].nlen);
        shoal__mpw_str(w, subs[i].coll, subs[i].clen);
        shoal__mpw_str(w, subs[i].where, subs[i].wlen);
        shoal__mpw_bin(w, subs[i].params, subs[i].plen);
    }
}

void
shoal__wire_put_held_header(shoal__mpw *w, size_t n)
{
    shoal__mpw_array(w, (uint32_t)n);
}

void
shoal__wire_put_held(shoal__mpw *w, const shoal__wheld *h)
{
    shoal__mpw_array(w, 3);
    shoal__mpw_str(w, h->coll, h->clen);
    shoal__mpw_str(w, h->id, h->idlen);
    shoal__mpw_bin(w, h->heads, h->nheads * SHOAL__ID_BYTES);
}

int
shoal__wire_hello2(shoal__buf *out, const uint8_t key[SHOAL_KEY_BYTES], const shoal__vventry *vv,
                   size_t n, const uint8_t *subs_held, size_t len)
{
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, SHOAL__F_HELLO);
    shoal__mpw_uint(&w, SHOAL__PROTO_PARTIAL);
    shoal__mpw_bin(&w, key, SHOAL_KEY_BYTES);
    put_entries(&w, vv, n);
    if (!w.err)
        w.err = shoal__buf_append(out, subs_held, len);
    if (!w.err && out->len - start > SHOAL__MAX_FRAME) {
        out->len = start;
        return SHOAL_ETOOBIG;
    }
    return w.err;
}

int
shoal__wire_subscribe(shoal__buf *out, const uint8_t *subs_held, size_t len)
{
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 3);
    shoal__mpw_uint(&w, SHOAL__F_SUBSCRIBE);
    if (!w.err)
        w.err = shoal__buf_append(out, subs_held, len);
    if (!w.err && out->len - start > SHOAL__MAX_FRAME) {
        out->len = start;
        return SHOAL_ETOOBIG;
    }
    return w.err;
}

int
shoal__wire_have(shoal__buf *out, const uint8_t *held, size_t len)
{
    size_t start = out->len;
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__F_HAVE);
    if (!w.err)
        w.err = shoal__buf_append(out, held, len);
    if (!w.err && out->len - start > SHOAL__MAX_FRAME) {
        out->len = start;
        return SHOAL_ETOOBIG;
    }
    return w.err;
}

int
shoal__wire_leave(shoal__buf *out, uint64_t set, const uint8_t *coll, size_t clen,
                  const uint8_t *id, size_t idlen, uint64_t reason, const uint8_t *heads,
                  size_t nheads)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, SHOAL__F_LEAVE);
    shoal__mpw_uint(&w, set);
    shoal__mpw_str(&w, coll, clen);
    shoal__mpw_str(&w, id, idlen);
    shoal__mpw_uint(&w, reason);
    shoal__mpw_bin(&w, heads, nheads * SHOAL__ID_BYTES);
    return w.err;
}

int
shoal__wire_complete(shoal__buf *out, uint64_t set)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__F_COMPLETE);
    shoal__mpw_uint(&w, set);
    return w.err;
}

int
shoal__wire_batch(shoal__buf *out, uint64_t n, size_t count, const uint8_t *envs, size_t len)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 4);
    shoal__mpw_uint(&w, SHOAL__F_BATCH);
    shoal__mpw_uint(&w, n);
    shoal__mpw_uint(&w, count);
    shoal__mpw_bin(&w, envs, len);
    return w.err;
}

int
shoal__wire_ack(shoal__buf *out, uint64_t n, const shoal_import_result *res,
                const shoal__vventry *delta, size_t ndelta)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, SHOAL__F_ACK);
    shoal__mpw_uint(&w, n);
    shoal__mpw_uint(&w, res->applied);
    shoal__mpw_uint(&w, res->duplicate);
    shoal__mpw_uint(&w, res->pending);
    put_entries(&w, delta, ndelta);
    return w.err;
}

int
shoal__wire_holds(shoal__buf *out, const shoal__vventry *e)
{
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__F_HOLDS);
    put_entries(&w, e, 1);
    return w.err;
}

int
shoal__wire_error(shoal__buf *out, int code, const char *text)
{
    size_t len = strlen(text);
    if (len > SHOAL__ERROR_TEXT) {
        /* Cut on a UTF-8 character boundary. */
        len = SHOAL__ERROR_TEXT;
        while (len > 0 && ((uint8_t)text[len] & 0xc0) == 0x80)
            len--;
    }
    shoal__mpw w;
    shoal__mpw_init(&w, out);
    shoal__mpw_array(&w, 3);
    shoal__mpw_uint(&w, SHOAL__F_ERROR);
    shoal__mpw_uint(&w, code < 0 ? 0 : (uint64_t)code);
    shoal__mpw_str(&w, text, len);
    return w.err;
}

/* -------------------------------------------------------------- decoding */

static int
get_entries(shoal__mpr *r, uint32_t max, shoal__frame *f)
{
    uint32_t n = shoal__mpr_array(r, max, VV_ENTRY_MIN);
    if (r->err)
        return r->err;
    if (n == 0)
        return SHOAL_OK;
    f->entries = shoal__calloc(n, sizeof *f->entries);
    if (!f->entries)
        return SHOAL_ENOMEM;
    for (uint32_t i = 0; i < n && !r->err; i++) {
        shoal__vventry *e = &f->entries[i];
        const uint8_t *a, *c;
        uint32_t k = shoal__mpr_array(r, 3, 1);
        if (!r->err && k != 3)
            return SHOAL_EPROTO;
        size_t al = shoal__mpr_bin(r, &a, SHOAL_KEY_BYTES);
        e->seq = shoal__mpr_uint(r);
        size_t cl = shoal__mpr_bin(r, &c, SHOAL__ID_BYTES);
        if (r->err)
            break;
        if (al != SHOAL_KEY_BYTES || cl != SHOAL__ID_BYTES || e->seq == 0)
            return SHOAL_EPROTO;
        memcpy(e->author, a, SHOAL_KEY_BYTES);
        memcpy(e->cid, c, SHOAL__ID_BYTES);
        if (i > 0 && memcmp(f->entries[i - 1].author, e->author, SHOAL_KEY_BYTES) >= 0)
            return SHOAL_EPROTO; /* not strictly ascending */
        f->nentries++;
    }
    return r->err;
}

/* A name the store accepts: 1..max bytes, no NUL byte. */
static bool
name_ok(const uint8_t *p, size_t n, size_t max)
{
    return n >= 1 && n <= max && !memchr(p, 0, n);
}

/* The subscription set and the held-document summary (HELLO version 2,
 * SUBSCRIBE).  Names are checked here (bounds, no NUL); the predicates
 * and parameters are the host's to compile. */
static int get_held(shoal__mpr *r, shoal__frame *f);

static int
get_subs(shoal__mpr *r, shoal__frame *f)
{
    /* [str, str, str, bin]: 1 + 2 + 2 + 1 + 2 bytes at the smallest */
    uint32_t n = shoal__mpr_array(r, SHOAL__MAX_SUBS, 8);
    if (r->err)
        return r->err;
    if (n) {
        f->subs = shoal__calloc(n, sizeof *f->subs);
        if (!f->subs)
            return SHOAL_ENOMEM;
    }
    for (uint32_t i = 0; i < n && !r->err; i++) {
        shoal__wsub *e = &f->subs[i];
        uint32_t k = shoal__mpr_array(r, 4, 1);
        if (!r->err && k != 4)
            return SHOAL_EPROTO;
        e->nlen = shoal__mpr_str(r, &e->name, SHOAL__MAX_SUB_NAME);
        e->clen = shoal__mpr_str(r, &e->coll, SHOAL_MAX_COLLECTION);
        e->wlen = shoal__mpr_str(r, &e->where, SHOAL__MAX_SUB_TEXT);
        e->plen = shoal__mpr_bin(r, &e->params, SHOAL__MAX_SUB_PARAMS);
        if (r->err)
            break;
        if (!name_ok(e->name, e->nlen, SHOAL__MAX_SUB_NAME) ||
            !name_ok(e->coll, e->clen, SHOAL_MAX_COLLECTION))
            return SHOAL_EPROTO;
        for (uint32_t j = 0; j < i; j++)
            if (f->subs[j].nlen == e->nlen && memcmp(f->subs[j].name, e->name, e->nlen) == 0)
                return SHOAL_EPROTO; /* one name twice */
        f->nsubs++;
    }
    return r->err ? r->err : get_held(r, f);
}

/* A held-document summary (HELLO version 2, SUBSCRIBE, HAVE). */
static int
get_held(shoal__mpr *r, shoal__frame *f)
{
    /* [str, str, bin]: 1 + 2 + 2 + 1 bytes at the smallest */
    uint32_t n = shoal__mpr_array(r, SHOAL__MAX_HELD, 6);
    if (r->err)
        return r->err;
    if (n) {
        f->held = shoal__calloc(n, sizeof *f->held);
        if (!f->held)
            return SHOAL_ENOMEM;
    }
    for (uint32_t i = 0; i < n && !r->err; i++) {
        shoal__wheld *e = &f->held[i];
        uint32_t k = shoal__mpr_array(r, 3, 1);
        if (!r->err && k != 3)
            return SHOAL_EPROTO;
        e->clen = shoal__mpr_str(r, &e->coll, SHOAL_MAX_COLLECTION);
        e->idlen = shoal__mpr_str(r, &e->id, SHOAL_MAX_DOC_ID);
        size_t hl = shoal__mpr_bin(r, &e->heads, SHOAL__MAX_HEADS * SHOAL__ID_BYTES);
        if (r->err)
            break;
        if (!name_ok(e->coll, e->clen, SHOAL_MAX_COLLECTION) ||
            !name_ok(e->id, e->idlen, SHOAL_MAX_DOC_ID) || hl % SHOAL__ID_BYTES != 0)
            return SHOAL_EPROTO;
        e->nheads = hl / SHOAL__ID_BYTES;
        f->nheld++;
    }
    return r->err;
}

/* The array header must declare exactly want items. */
static int
expect_items(uint32_t got, uint32_t want)
{
    return got == want ? SHOAL_OK : SHOAL_EPROTO;
}

int
shoal__frame_decode(const uint8_t *p, size_t len, shoal__frame *f)
{
    memset(f, 0, sizeof *f);
    if (len > SHOAL__MAX_FRAME)
        return SHOAL_ETOOBIG;
    if (len == 0)
        return SHOAL_ETRUNC;
    shoal__mpr rd, *r = &rd;
    shoal__mpr_init(r, p, len);
    /* Up to 16 items, so that a HELLO of a later version with more items
     * still decodes far enough to be answered with EVERSION. */
    uint32_t items = shoal__mpr_array(r, 16, 1);
    uint64_t type = shoal__mpr_uint(r);
    if (r->err)
        return r->err;
    int err = SHOAL_OK;
    switch (type) {
    case SHOAL__F_HELLO: {
        f->type = SHOAL__F_HELLO;
        f->version = shoal__mpr_uint(r);
        if (r->err)
            return r->err;
        if (f->version != SHOAL__PROTO_VERSION && f->version != SHOAL__PROTO_PARTIAL)
            return SHOAL_EVERSION;
        if ((err = expect_items(items, f->version == SHOAL__PROTO_VERSION ? 4 : 6)))
            return err;
        const uint8_t *k;
        size_t kl = shoal__mpr_bin(r, &k, SHOAL_KEY_BYTES);
        if (r->err)
            return r->err;
        if (kl != SHOAL_KEY_BYTES)
            return SHOAL_EPROTO;
        f->key = k;
        err = get_entries(r, SHOAL__MAX_VV, f);
        if (!err && f->version == SHOAL__PROTO_PARTIAL)
            err = get_subs(r, f);
        break;
    }
    case SHOAL__F_SUBSCRIBE:
        f->type = SHOAL__F_SUBSCRIBE;
        if ((err = expect_items(items, 3)))
            return err;
        err = get_subs(r, f);
        break;
    case SHOAL__F_LEAVE: {
        f->type = SHOAL__F_LEAVE;
        if ((err = expect_items(items, 6)))
            return err;
        f->set = shoal__mpr_uint(r);
        f->clen = shoal__mpr_str(r, &f->coll, SHOAL_MAX_COLLECTION);
        f->idlen = shoal__mpr_str(r, &f->id, SHOAL_MAX_DOC_ID);
        f->reason = shoal__mpr_uint(r);
        size_t hl = shoal__mpr_bin(r, &f->heads, SHOAL__MAX_HEADS * SHOAL__ID_BYTES);
        if (r->err)
            return r->err;
        if (f->set == 0 || !name_ok(f->coll, f->clen, SHOAL_MAX_COLLECTION) ||
            !name_ok(f->id, f->idlen, SHOAL_MAX_DOC_ID) || hl % SHOAL__ID_BYTES != 0)
            return SHOAL_EPROTO;
        f->nheads = hl / SHOAL__ID_BYTES;
        break;
    }
    case SHOAL__F_HAVE:
        f->type = SHOAL__F_HAVE;
        if ((err = expect_items(items, 2)))
            return err;
        err = get_held(r, f);
        break;
    case SHOAL__F_COMPLETE:
        f->type = SHOAL__F_COMPLETE;
        if ((err = expect_items(items, 2)))
            return err;
        f->set = shoal__mpr_uint(r);
        if (!r->err && f->set == 0)
            return SHOAL_EPROTO;
        break;
    case SHOAL__F_BATCH:
        f->type = SHOAL__F_BATCH;
        if ((err = expect_items(items, 4)))
            return err;
        f->n = shoal__mpr_uint(r);
        f->count = shoal__mpr_uint(r);
        f->envs_len = shoal__mpr_bin(r, &f->envs, SHOAL__MAX_FRAME);
        if (r->err)
            return r->err;
        if (f->n == 0 || (f->count == 0) != (f->envs_len == 0))
            return SHOAL_EPROTO;
        /* The sender's limits: a batch of several changes stays within
         * SHOAL__BATCH_BYTES; one change alone may exceed it. */
        if (f->count > SHOAL__BATCH_CHANGES || (f->count > 1 && f->envs_len > SHOAL__BATCH_BYTES))
            return SHOAL_ETOOBIG;
        break;
    case SHOAL__F_ACK:
        f->type = SHOAL__F_ACK;
        if ((err = expect_items(items, 6)))
            return err;
        f->n = shoal__mpr_uint(r);
        f->applied = shoal__mpr_uint(r);
        f->duplicate = shoal__mpr_uint(r);
        f->pending = shoal__mpr_uint(r);
        if (r->err)
            return r->err;
        if (f->n == 0)
            return SHOAL_EPROTO;
        err = get_entries(r, SHOAL__BATCH_CHANGES, f);
        break;
    case SHOAL__F_HOLDS:
        f->type = SHOAL__F_HOLDS;
        if ((err = expect_items(items, 2)))
            return err;
        err = get_entries(r, 1, f);
        if (!err && f->nentries != 1)
            return SHOAL_EPROTO;
        break;
    case SHOAL__F_ERROR:
        f->type = SHOAL__F_ERROR;
        if ((err = expect_items(items, 3)))
            return err;
        f->code = shoal__mpr_uint(r);
        f->text_len = shoal__mpr_str(r, &f->text, SHOAL__ERROR_TEXT);
        break;
    default: return SHOAL_EPROTO;
    }
    if (!err)
        err = shoal__mpr_finish(r);
    if (err)
        shoal__frame_clear(f);
    return err;
}

void
shoal__frame_clear(shoal__frame *f)
{
    shoal__free(f->entries);
    shoal__free(f->subs);
    shoal__free(f->held);
    memset(f, 0, sizeof *f);
}
