/*
 * bench/bench_authz.c - shoal-bench authz: the cost of the write check
 * (docs/permissions.md) per change, in the crdt/ layer.
 *
 *   fast  a change whose deps are its document's heads: the check on the
 *         current state (what every local commit and most arrivals pay:
 *         the guard fields' view, the roles' where, the grants);
 *   slow  a change whose deps are in the past, HISTORY changes back: the
 *         document rebuilt from its changes up to those deps (decoded and
 *         replayed, as shoal__apply_doc_at does), then the check.
 *
 * The document is a product with a guard field (store_id) and a counter
 * of stock that HISTORY earlier changes set; the change judged is a clerk
 * of its store setting the stock.
 *
 *   read  read filtering (docs/permissions.md, "Reading"): what a feed pays
 *         per document it judges for a peer, the stored query view parsed
 *         and a subscription evaluated, without and with the peer's roles
 *         (shoal__authz_reads) evaluated too; the ratio of the two.
 *
 * One JSON line per variant: the median over R runs of the time per check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "crdt.h"

static const uint8_t CLERK[32] = { 0xd1, 4 };
static const uint8_t OTHER[32] = { 0xd2, 5 };

/* [1, lang, version, prev, collections, roles]: products guarded by
 * store_id; clerk writes stock where store_id == $user.store_id. */
static int
make_policy(shoal__policy **out)
{
    shoal__buf b;
    shoal__buf_init(&b);
    shoal__mpw w;
    shoal__mpw_init(&w, &b);
    shoal__mpw_array(&w, 6);
    shoal__mpw_uint(&w, SHOAL__AUTH_POLICY);
    shoal__mpw_uint(&w, SHOAL__AUTH_LANG);
    shoal__mpw_uint(&w, 1);
    shoal__mpw_nil(&w);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 3);
    shoal__mpw_str(&w, "products", 8);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "store_id", 8);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "store_id", 8);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 2);
    shoal__mpw_str(&w, "clerk", 5);
    shoal__mpw_array(&w, 1);
    shoal__mpw_array(&w, 6);
    shoal__mpw_str(&w, "products", 8);
    shoal__mpw_str(&w, "store_id == $user.store_id", 26);
    shoal__mpw_array(&w, 1);
    shoal__mpw_uint(&w, SHOAL__FS_ALL);
    shoal__mpw_array(&w, 2);
    shoal__mpw_uint(&w, SHOAL__FS_ONLY);
    shoal__mpw_array(&w, 1);
    shoal__mpw_str(&w, "stock", 5);
    shoal__mpw_bool(&w, false);
    shoal__mpw_bool(&w, false);
    int rc = w.err ? w.err : shoal__policy_decode(b.p, b.len, out, NULL, 0);
    shoal__buf_free(&b);
    return rc;
}

static int
make_cert(shoal__buf *bytes, shoal__cert *out)
{
    shoal__cert c;
    memset(&c, 0, sizeof c);
    memcpy(c.subject, CLERK, 32);
    shoal__name role = { (const uint8_t *)"clerk", 5 }, an = { (const uint8_t *)"store_id", 8 };
    shoal_value av = { .type = SHOAL_T_INT, .i = 1 };
    c.user = (shoal__name){ (const uint8_t *)"u", 1 };
    c.nroles = 1;
    c.roles = &role;
    c.nattrs = 1;
    c.attr_names = &an;
    c.attr_vals = &av;
    c.not_after = UINT64_MAX;
    c.serial = 1;
    c.policy_floor = 1;
    int rc = shoal__cert_encode(&c, bytes);
    return rc ? rc : shoal__cert_decode(bytes->p, bytes->len, out);
}

/* Change i of the history: i == 0 creates the product of store 1. */
static int
history_body(size_t i, shoal__buf *out)
{
    shoal__op ops[2];
    memset(ops, 0, sizeof ops);
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, OTHER, 32);
    c.seq = i + 1;
    c.hlc = (uint64_t)(1000 + i) << 16;
    c.coll = (const uint8_t *)"products";
    c.coll_len = 8;
    c.doc = (const uint8_t *)"p1";
    c.doc_len = 2;
    c.ops = ops;
    ops[0].kind = SHOAL__OP_SET;
    ops[0].field = (const uint8_t *)"stock";
    ops[0].field_len = 5;
    ops[0].value.type = SHOAL_T_INT;
    ops[0].value.i = (int64_t)i;
    c.nops = 1;
    if (i == 0) {
        ops[1] = ops[0];
        ops[1].field = (const uint8_t *)"store_id";
        ops[1].field_len = 8;
        ops[1].value.i = 1;
        c.nops = 2;
    }
    return shoal__change_encode(&c, out);
}

int
shoal__bench_authz(int argc, char **argv)
{
    size_t history = 1000, checks = 20000, runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--history") == 0 && i + 1 < argc)
            history = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--checks") == 0 && i + 1 < argc)
            checks = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: shoal-bench authz [--history N] [--checks N] [--runs R]\n");
            return 2;
        }
    }
    if (history < 2 || checks < 1 || runs < 1 || runs > 64)
        return 2;
    shoal__policy *pol = NULL;
    shoal__buf cb;
    shoal__buf_init(&cb);
    shoal__cert cert;
    if (make_policy(&pol) || make_cert(&cb, &cert)) {
        fprintf(stderr, "shoal-bench authz: setup failed\n");
        return 1;
    }
    /* the history, encoded, and the document it makes */
    shoal__buf *bodies = calloc(history, sizeof *bodies);
    shoal__doc *cur = shoal__doc_new();
    int rc = !bodies || !cur;
    for (size_t i = 0; !rc && i < history; i++) {
        shoal__buf_init(&bodies[i]);
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, OTHER, 32);
        rc = history_body(i, &bodies[i]) || shoal__change_decode(bodies[i].p, bodies[i].len, &c) ||
             shoal__doc_apply(cur, &c, 0, c.nops);
        shoal__change_clear(&c);
    }
    /* the change judged: the clerk sets the stock */
    shoal__op op;
    memset(&op, 0, sizeof op);
    op.kind = SHOAL__OP_SET;
    op.field = (const uint8_t *)"stock";
    op.field_len = 5;
    op.value.type = SHOAL_T_INT;
    op.value.i = 7;
    shoal__change ch;
    memset(&ch, 0, sizeof ch);
    memcpy(ch.author, CLERK, 32);
    ch.seq = 1;
    ch.hlc = (uint64_t)(100000) << 16;
    ch.coll = (const uint8_t *)"products";
    ch.coll_len = 8;
    ch.doc = (const uint8_t *)"p1";
    ch.doc_len = 2;
    ch.ops = &op;
    ch.nops = 1;
    double fast[64], slow[64], subq[64], subr[64];
    /* read: what a feed pays per document it judges for a peer: the
     * stored view parsed and a subscription evaluated (subq), and the same
     * with the peer's roles evaluated too (subr, read filtering) */
    shoal__buf view;
    shoal__buf_init(&view);
    shoal__query *sub = NULL;
    char qerr[64];
    if (!rc)
        rc = shoal__doc_encode_qview(cur, SHOAL__Q_LIST_VIEW, &view) ||
             shoal__query_parse("store_id == 1", 13, &sub, qerr, sizeof qerr);
    shoal__qfield *qf = NULL;
    size_t qcap = 0;
    size_t slow_n = checks / 100 ? checks / 100 : 1;
    for (size_t r = 0; !rc && r < runs; r++) {
        shoal__authz_in in;
        memset(&in, 0, sizeof in);
        in.c = &ch;
        in.cert = &cert;
        in.policy = pol;
        in.pre = cur;
        shoal__authz_out out;
        uint64_t t0 = shoal__bench_now_ns();
        for (size_t k = 0; !rc && k < checks; k++)
            rc = shoal__authz_check(&in, &out) || out.verdict != SHOAL__AUTHZ_ADMIT;
        fast[r] = (double)(shoal__bench_now_ns() - t0) / 1e3 / (double)checks;
        /* slow: the deps are at the middle of the history */
        size_t upto = history / 2;
        t0 = shoal__bench_now_ns();
        for (size_t k = 0; !rc && k < slow_n; k++) {
            shoal__doc *d = shoal__doc_new();
            for (size_t i = 0; !rc && i < upto; i++) {
                shoal__change c;
                memset(&c, 0, sizeof c);
                memcpy(c.author, OTHER, 32);
                rc = shoal__change_decode(bodies[i].p, bodies[i].len, &c) ||
                     shoal__doc_apply(d, &c, 0, c.nops);
                shoal__change_clear(&c);
            }
            in.pre = d;
            if (!rc)
                rc = shoal__authz_check(&in, &out) || out.verdict != SHOAL__AUTHZ_ADMIT;
            shoal__doc_free(d);
        }
        slow[r] = (double)(shoal__bench_now_ns() - t0) / 1e3 / (double)slow_n;
        for (int with_roles = 0; !rc && with_roles < 2; with_roles++) {
            t0 = shoal__bench_now_ns();
            size_t hits = 0;
            for (size_t k = 0; !rc && k < checks; k++) {
                size_t nf = 0;
                bool alive = false;
                rc = shoal__qview_parse(view.p, view.len, &qf, &qcap, &nf, &alive);
                shoal__qdoc qd = { (const uint8_t *)"p1", 2, qf, nf };
                int m = rc ? 0 : shoal__query_eval(sub, &qd);
                if (m == 1 && with_roles)
                    m = shoal__authz_reads(pol, &cert, (const uint8_t *)"products", 8, &qd);
                hits += m == 1;
            }
            rc = rc || hits != checks;
            (with_roles ? subr : subq)[r] =
                (double)(shoal__bench_now_ns() - t0) / 1e3 / (double)checks;
        }
    }
    if (rc) {
        fprintf(stderr, "shoal-bench authz: a check failed\n");
    } else {
        printf("{\"variant\":\"fast\",\"checks\":%zu,\"us_per_check\":%.3f,\"runs\":%zu}\n", checks,
               shoal__bench_median(fast, runs), runs);
        printf("{\"variant\":\"slow\",\"checks\":%zu,\"history\":%zu,\"us_per_check\":%.1f,"
               "\"runs\":%zu}\n",
               slow_n, history / 2, shoal__bench_median(slow, runs), runs);
        double q = shoal__bench_median(subq, runs), qr = shoal__bench_median(subr, runs);
        printf("{\"variant\":\"read\",\"docs\":%zu,\"us_per_doc_subscription\":%.3f,"
               "\"us_per_doc_with_roles\":%.3f,\"ratio\":%.3f,\"runs\":%zu}\n",
               checks, q, qr, qr / q, runs);
    }
    shoal__free(qf);
    shoal__query_free(sub);
    shoal__buf_free(&view);
    for (size_t i = 0; bodies && i < history; i++)
        shoal__buf_free(&bodies[i]);
    free(bodies);
    shoal__doc_free(cur);
    shoal__cert_clear(&cert);
    shoal__buf_free(&cb);
    shoal__policy_free(pol);
    return rc ? 1 : 0;
}
