/*
 * test/fuzz/fuzz_auth.c - the authority objects of `_auth` (crdt/auth.c),
 * the policy compiler (core/policy.c) and the write check (crdt/authz.c)
 * on hostile bytes.
 *
 * Input: one byte choosing what the rest is, then the bytes.
 *   0 a policy, 1 a certificate, 2 an admin grant, 3 a revocation: an
 *     object decodes or is refused; one that decodes has exactly these
 *     bytes as its encoding (one encoding per object);
 *   4 policy JSON: a compiled policy always decodes, and compiling the
 *     same text twice gives the same bytes;
 *   5 an equivocation proof: one that decodes is exactly what encoding
 *     its two envelopes gives, and cuts its key at seq - 1.
 * A policy that decodes then judges a few fixed changes against a fixed
 * certificate; the verdict is ADMIT or REJECT (never PEND: everything is
 * held) and the same when asked twice.
 */
#include <string.h>

#include "core.h"
#include "crdt.h"
#include "fuzz.h"

static const uint8_t DEV[32] = { 0xd1, 4 };

/* Judge a few changes of every declared collection under p. */
static void
judge_all(const shoal__policy *p)
{
    shoal__name roles[3] = { { (const uint8_t *)"a", 1 },
                             { (const uint8_t *)"clerk", 5 },
                             { (const uint8_t *)"manager", 7 } };
    shoal__name an = { (const uint8_t *)"store_id", 8 };
    shoal_value av = { .type = SHOAL_T_INT, .i = 1 };
    shoal__cert cert;
    memset(&cert, 0, sizeof cert);
    memcpy(cert.subject, DEV, 32);
    cert.user = (shoal__name){ (const uint8_t *)"u", 1 };
    cert.nroles = 3;
    cert.roles = roles;
    cert.nattrs = 1;
    cert.attr_names = &an;
    cert.attr_vals = &av;
    cert.not_after = UINT64_MAX;
    for (uint32_t i = 0; i < p->ncolls && i < 4; i++) {
        const shoal__pcoll *co = &p->colls[i];
        shoal__op ops[3];
        memset(ops, 0, sizeof ops);
        /* set the first guard (or "x"), set "stock", delete */
        const shoal__name *g = co->guard.n ? &co->guard.names[0] : NULL;
        ops[0].kind = SHOAL__OP_SET;
        ops[0].field = g ? g->p : (const uint8_t *)"x";
        ops[0].field_len = g ? g->n : 1;
        ops[0].value = av;
        ops[1].kind = SHOAL__OP_SET;
        ops[1].field = (const uint8_t *)"stock";
        ops[1].field_len = 5;
        ops[1].value = av;
        ops[2].kind = SHOAL__OP_DELDOC;
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, DEV, 32);
        c.seq = 1;
        c.hlc = 1000;
        c.coll = co->name.p;
        c.coll_len = co->name.n;
        c.doc = (const uint8_t *)"d";
        c.doc_len = 1;
        c.ops = ops;
        shoal__doc *pre = shoal__doc_new();
        FUZZ_CHECK(pre);
        shoal__change w = c;
        w.hlc = 500;
        w.nops = 2;
        FUZZ_CHECK(shoal__doc_apply(pre, &w, 0, 2) == SHOAL_OK);
        for (size_t nops = 1; nops <= 3; nops++) {
            for (int with_pre = 0; with_pre < 2; with_pre++) {
                c.nops = nops;
                shoal__authz_in in;
                memset(&in, 0, sizeof in);
                in.c = &c;
                in.cert = &cert;
                in.policy = p;
                in.pre = with_pre ? pre : NULL;
                shoal__authz_out o1, o2;
                int rc = shoal__authz_check(&in, &o1);
                FUZZ_CHECK(rc == SHOAL_OK || rc == SHOAL_ENOMEM);
                if (rc)
                    continue;
                FUZZ_CHECK(o1.verdict == SHOAL__AUTHZ_ADMIT || o1.verdict == SHOAL__AUTHZ_REJECT);
                FUZZ_CHECK(shoal__authz_check(&in, &o2) == SHOAL_OK);
                FUZZ_CHECK(o1.verdict == o2.verdict && o1.op == o2.op);
                FUZZ_CHECK(strcmp(o1.why, o2.why) == 0);
            }
        }
        shoal__doc_free(pre);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 6;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    shoal__buf b;
    shoal__buf_init(&b);
    switch (mode) {
    case 0: {
        shoal__policy *pol = NULL;
        char err[256];
        int rc = shoal__policy_decode(p, n, &pol, err, sizeof err);
        FUZZ_CHECK((rc == SHOAL_OK) == (pol != NULL));
        FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL);
        if (pol) {
            FUZZ_CHECK(pol->len == n && memcmp(pol->bytes, p, n) == 0);
            FUZZ_CHECK(pol->version >= 1);
            judge_all(pol);
        } else {
            FUZZ_CHECK(rc != SHOAL_OK && (rc == SHOAL_ENOMEM || err[0] != 0));
        }
        shoal__policy_free(pol);
        break;
    }
    case 1: {
        shoal__cert c;
        if (shoal__cert_decode(p, n, &c) == SHOAL_OK) {
            FUZZ_CHECK(shoal__cert_encode(&c, &b) == SHOAL_OK);
            FUZZ_CHECK(b.len == n && memcmp(b.p, p, n) == 0);
            FUZZ_CHECK(c.nroles >= 1 && c.not_before <= c.not_after);
            FUZZ_CHECK(shoal__auth_kind(p, n) == SHOAL__AUTH_CERT);
            shoal__cert_clear(&c);
        }
        break;
    }
    case 2: {
        shoal__grant g;
        if (shoal__grant_decode(p, n, &g) == SHOAL_OK) {
            FUZZ_CHECK(shoal__grant_encode(&g, &b) == SHOAL_OK);
            FUZZ_CHECK(b.len == n && memcmp(b.p, p, n) == 0);
            FUZZ_CHECK(g.caps && !(g.caps & ~(uint32_t)SHOAL__CAP_ALL));
        }
        break;
    }
    case 3: {
        shoal__revoke v;
        if (shoal__revoke_decode(p, n, &v) == SHOAL_OK) {
            FUZZ_CHECK(shoal__revoke_encode(&v, &b) == SHOAL_OK);
            FUZZ_CHECK(b.len == n && memcmp(b.p, p, n) == 0);
        }
        break;
    }
    case 5: {
        shoal__equiv v;
        if (shoal__equiv_decode(p, n, &v) == SHOAL_OK) {
            FUZZ_CHECK(shoal__equiv_encode(v.env[1], v.len[1], v.env[0], v.len[0], &b) == SHOAL_OK);
            FUZZ_CHECK(b.len == n && memcmp(b.p, p, n) == 0);
            FUZZ_CHECK(v.seq >= 1 && shoal__auth_kind(p, n) == SHOAL__AUTH_EQUIV);
            uint8_t target[32];
            FUZZ_CHECK(shoal__auth_cut_target(p, n, target) == SHOAL_OK);
            FUZZ_CHECK(memcmp(target, v.target, 32) == 0);
        }
        break;
    }
    default: {
        char err[256];
        int rc = shoal__policy_from_json((const char *)p, n, 2, NULL, &b, err, sizeof err);
        if (rc == SHOAL_OK) {
            shoal__buf again;
            shoal__buf_init(&again);
            FUZZ_CHECK(shoal__policy_from_json((const char *)p, n, 2, NULL, &again, err,
                                               sizeof err) == SHOAL_OK);
            FUZZ_CHECK(again.len == b.len && memcmp(again.p, b.p, b.len) == 0);
            shoal__buf_free(&again);
            shoal__policy *pol = NULL;
            FUZZ_CHECK(shoal__policy_decode(b.p, b.len, &pol, err, sizeof err) == SHOAL_OK);
            judge_all(pol);
            shoal__policy_free(pol);
        } else {
            FUZZ_CHECK(b.len == 0 && memchr(err, 0, sizeof err) && (rc == SHOAL_ENOMEM || err[0]));
        }
        break;
    }
    }
    shoal__buf_free(&b);
    return 0;
}
