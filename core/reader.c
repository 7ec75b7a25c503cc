/*
 * core/reader.c - what a key may read of this replica (read filtering,
 * docs/permissions.md "Reading").
 *
 * The sender decides: a peer's view is what its roles read AND what its
 * subscriptions match, on the sender's current state.  A reader is the
 * peer's side of that AND, loaded from `_auth` in a snapshot:
 *
 *   - open mode, or the root key: everything;
 *   - a key with a certificate valid now by the wall clock (the newest,
 *     by serial): the documents some role of it reads under the newest
 *     policy (crdt/authz.c shoal__authz_reads);
 *   - any other key: `_auth` only, which every peer of a replica that
 *     enforces holds whatever its subscriptions.
 *
 * Unlike a write verdict this is not convergence-critical (views differ
 * by design and settle as states converge), so it may read the clock.
 * It is loaded again when an `_auth` document changes (r->auth_gen) or
 * the certificate's validity starts or ends.
 */
#include <stdio.h>
#include <string.h>

#include "core.h"

void
shoal__reader_init(shoal__reader *rd)
{
    memset(rd, 0, sizeof *rd);
    shoal__buf_init(&rd->certbytes);
}

static void
reader_clear(shoal__reader *rd)
{
    shoal__policy_free(rd->pol);
    rd->pol = NULL;
    if (rd->has_cert)
        shoal__cert_clear(&rd->cert);
    rd->has_cert = false;
    rd->all = rd->full = false;
    rd->roles[0] = 0;
}

void
shoal__reader_free(shoal__reader *rd)
{
    reader_clear(rd);
    shoal__buf_free(&rd->certbytes);
    rd->loaded = false;
}

static int
load_policy(shoal__reader *rd, shoal__wset *w)
{
    static const uint8_t none[SHOAL_KEY_BYTES];
    uint8_t cid[SHOAL__ID_BYTES];
    shoal__change ch;
    int err = shoal__auth_newest(w, SHOAL__AUTH_POLICY, none, cid, &ch);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    /* Admitted, so it decodes; one that does not reads as no policy. */
    int rc = shoal__policy_decode(ch.ops[0].value.ptr, ch.ops[0].value.len, &rd->pol, NULL, 0);
    shoal__change_clear(&ch);
    return rc == SHOAL_ENOMEM ? rc : SHOAL_OK;
}

static int
load_cert(shoal__reader *rd, shoal__wset *w, const uint8_t key[SHOAL_KEY_BYTES], uint64_t now)
{
    uint8_t cid[SHOAL__ID_BYTES];
    shoal__change ch;
    /* a revoked key (or one proven to equivocate) reads nothing whatever
     * its certificate */
    int err = SHOAL_ENOTFOUND;
    for (int kind = SHOAL__AUTH_REVOKE; err == SHOAL_ENOTFOUND && kind <= SHOAL__AUTH_EQUIV;
         kind++) {
        err = shoal__auth_newest(w, kind, key, cid, &ch);
        if (!err) {
            shoal__change_clear(&ch);
            return SHOAL_OK;
        }
    }
    if (err != SHOAL_ENOTFOUND)
        return err;
    err = shoal__auth_newest(w, SHOAL__AUTH_CERT, key, cid, &ch);
    if (err)
        return err == SHOAL_ENOTFOUND ? SHOAL_OK : err;
    rd->certbytes.len = 0;
    err = shoal__buf_append(&rd->certbytes, ch.ops[0].value.ptr, ch.ops[0].value.len);
    shoal__change_clear(&ch);
    if (err)
        return err;
    if (shoal__cert_decode(rd->certbytes.p, rd->certbytes.len, &rd->cert) != SHOAL_OK)
        return SHOAL_OK;
    uint64_t nb = SHOAL__HLC_MS(rd->cert.not_before);
    uint64_t na = rd->cert.not_after == UINT64_MAX ? UINT64_MAX : SHOAL__HLC_MS(rd->cert.not_after);
    if (now < nb) {
        rd->until_ms = nb - 1; /* loaded again once it is valid */
        shoal__cert_clear(&rd->cert);
        return SHOAL_OK;
    }
    if (now > na) {
        shoal__cert_clear(&rd->cert);
        return SHOAL_OK;
    }
    rd->until_ms = na;
    rd->has_cert = true;
    size_t k = 0;
    for (uint32_t i = 0; i < rd->cert.nroles && k + 1 < sizeof rd->roles; i++)
        k += (size_t)snprintf(rd->roles + k, sizeof rd->roles - k, "%s%.*s", i ? ", " : "",
                              (int)(rd->cert.roles[i].n > 64 ? 64 : rd->cert.roles[i].n),
                              (const char *)rd->cert.roles[i].p);
    return SHOAL_OK;
}

int
shoal__reader_fresh(shoal__reader *rd, shoal_replica *r, shoal__stxn *t,
                    const uint8_t key[SHOAL_KEY_BYTES])
{
    uint64_t gen = atomic_load(&r->auth_gen);
    uint64_t now = r->enforce ? shoal__wall_ms(r) : 0;
    if (rd->loaded && rd->gen == gen && now <= rd->until_ms)
        return SHOAL_OK;
    reader_clear(rd);
    rd->loaded = false;
    rd->gen = gen;
    rd->until_ms = UINT64_MAX;
    if (!r->enforce || memcmp(key, r->root, SHOAL_KEY_BYTES) == 0) {
        rd->all = rd->full = true;
        rd->loaded = true;
        return SHOAL_OK;
    }
    shoal__wset w;
    shoal__wset_init(&w, r);
    shoal__wset_reset(&w, t);
    int err = load_policy(rd, &w);
    if (!err)
        err = load_cert(rd, &w, key, now);
    shoal__wset_free(&w);
    if (err) {
        reader_clear(rd);
        return err;
    }
    rd->full = rd->has_cert && rd->pol && shoal__authz_reads_all(rd->pol, &rd->cert);
    rd->loaded = true;
    return SHOAL_OK;
}

int
shoal__reader_match(const shoal__reader *rd, const uint8_t *coll, size_t clen, const shoal__qdoc *d)
{
    if (rd->all || (clen == 5 && memcmp(coll, "_auth", 5) == 0))
        return 1;
    if (!rd->has_cert || !rd->pol)
        return 0;
    return shoal__authz_reads(rd->pol, &rd->cert, coll, clen, d);
}

int
shoal__reader_reads(const shoal__reader *rd, shoal_replica *r, shoal__stxn *t, const uint8_t *coll,
                    size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *stored,
                    shoal__qscratch *s, bool parsed, bool *out)
{
    bool alive;
    int err = SHOAL_OK;
    int m = parsed ? shoal__reader_match(rd, coll, clen, &s->doc) : 0;
    if (!parsed) {
        err = shoal__query_judge(r, t, NULL, (const char *)coll, clen, id, idlen, stored, s, false,
                                 &alive);
        if (err)
            return err;
        m = shoal__reader_match(rd, coll, clen, &s->doc);
    }
    if (m == SHOAL__Q_NEEDLIST) {
        /* a guard list longer than the stored view keeps: the whole view */
        err = shoal__query_judge(r, t, NULL, (const char *)coll, clen, id, idlen, stored, s, true,
                                 &alive);
        if (err)
            return err;
        m = shoal__reader_match(rd, coll, clen, &s->doc);
    }
    if (m < 0)
        return SHOAL_ECORRUPT;
    *out = m == 1;
    return SHOAL_OK;
}

int
shoal__reader_sig(const shoal__reader *rd, shoal__buf *out)
{
    uint8_t flags = (uint8_t)((rd->all ? 1 : 0) | (rd->has_cert ? 2 : 0) | (rd->pol ? 4 : 0));
    int err = shoal__buf_append(out, &flags, 1);
    if (!err && rd->pol)
        err = shoal__buf_append(out, rd->pol->bytes, rd->pol->len);
    if (!err && rd->has_cert)
        err = shoal__buf_append(out, rd->certbytes.p, rd->certbytes.len);
    return err;
}

int
shoal__reader_groups(const shoal__reader *rd, shoal_replica *r, shoal__stxn *t,
                     shoal__authz_cache **k, shoal__qscratch *s, const uint8_t *env, size_t env_len,
                     uint64_t *groups)
{
    *groups = SHOAL__ALL_GROUPS;
    size_t elen, blen;
    const uint8_t *body;
    if (shoal__envelope_parse(env, env_len, &elen, &body, &blen))
        return SHOAL_ECORRUPT;
    if (rd->all || !shoal__envelope_sealed(env, env_len))
        return SHOAL_OK;
    *groups = 0;
    if (!rd->has_cert || !rd->pol)
        return SHOAL_OK;
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, shoal__envelope_author(env), SHOAL_KEY_BYTES);
    int err = shoal__change_decode(body, blen, &c);
    if (err)
        return err == SHOAL_ENOMEM ? err : SHOAL_ECORRUPT;
    /* the rules that read the document as it stands here */
    const shoal__prule *rules[SHOAL__AUTH_MAX_NAMES];
    size_t n = 0;
    shoal__sval stored;
    err = shoal__stxn_qview_get(t, c.coll, c.coll_len, c.doc, c.doc_len, &stored);
    if (err == SHOAL_OK) {
        bool alive;
        for (int full = 0; !err && full < 2; full++) {
            err = shoal__query_judge(r, t, NULL, (const char *)c.coll, c.coll_len, c.doc, c.doc_len,
                                     &stored, s, full == 1, &alive);
            int m = err ? 0
                        : shoal__authz_read_rules(rd->pol, &rd->cert, c.coll, c.coll_len, &s->doc,
                                                  rules, &n);
            if (m != SHOAL__Q_NEEDLIST)
                break;
            n = 0;
        }
    } else if (err == SHOAL_ENOTFOUND) {
        err = SHOAL_OK; /* deleted or not held: no rule reads it */
    }
    /* which group each sealed op is in: the classes of the policy the
     * change names */
    const shoal__policy *named = NULL;
    if (!err && n > 0 && c.nauth == 2) {
        shoal__lmdb_apply la = { t, NULL };
        shoal__apply_store st;
        shoal__apply_lmdb(&st, &la);
        err = *k ? SHOAL_OK : shoal__authz_cache_new(k);
        if (!err)
            err = shoal__authz_policy(&st, *k, c.auth + SHOAL__ID_BYTES, &named);
        if (err == SHOAL_ENOTFOUND)
            err = SHOAL_OK;
    }
    if (!err && named) {
        const shoal__pcoll *co = shoal__policy_coll(named, c.coll, c.coll_len);
        /* a group goes when it has ops and the reader reads every one */
        uint64_t has = 0, hidden = 0;
        for (size_t i = 0; i < c.nops; i++) {
            const shoal__op *op = &c.ops[i];
            if (!op->sealed)
                continue;
            uint8_t cls = shoal__pcoll_class(op->field, op->field_len, (void *)(uintptr_t)co);
            for (uint8_t g = 0; g < c.nseals; g++) {
                if (c.seal_class[g] != cls)
                    continue;
                has |= 1ull << g;
                if (!shoal__authz_rules_read(rules, n, op->field, op->field_len))
                    hidden |= 1ull << g;
            }
        }
        *groups = has & ~hidden;
    }
    shoal__change_clear(&c);
    return err;
}
