/*
 * test/fuzz/fuzz_converge.c - one set of changes imported in two orders
 * into two replicas must leave them in the same state (DESIGN.md: any two
 * replicas that applied the same changes, in any order, hold
 * byte-identical state), through the whole import path (shoal_import over
 * real LMDB: causal apply, pending set, equivocation, admission rules).
 *
 * Two replicas (temporary directories, non-durable, fixed clock) are kept
 * across runs and replaced together every RESET_EVERY runs.
 * Input: up to 32 pieces separated by FUZZ_SEP, each one author byte
 * (identity % 3 of test/vectors) and a change body; the target seals each.
 * Replica 1 imports them as one bundle.  If it refuses, neither replica
 * takes them.  If it accepts, replica 2 imports the same envelopes one
 * bundle each, in an order shuffled by a hash of the input, then all of
 * them again in that order (so none stays pending only because of the
 * order).  Checks: every one-change import is accepted, and both replicas
 * hold the same visible and full digests and the same pending count; when
 * the digests differ, every document's meta and state hash of both is
 * printed.  SHOAL_FUZZ_CONVERGE_RESET=N replaces the replicas every N
 * inputs instead (1: fresh replicas for each input).
 *
 * Left out, as in fuzz_apply.c (which says why): another version of an
 * (author, seq) the replicas took since the last reset, or one taken
 * earlier in the same input, unless both share their HLC and deps and hold
 * only register and counter ops.  For such versions the outcome depends on
 * the order by design (a canonical version that can never apply blocks
 * the other one only in the orders where it came first, and so on).  The
 * versions taken are remembered across inputs, since the replicas keep
 * them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core.h"
#include "crdt.h"
#include "fuzz.h"

enum {
    RESET_EVERY = 1000,
    MAX_PIECES = 32
};

static uint8_t pk[FUZZ_NKEYS][32], sk[FUZZ_NKEYS][64];
static shoal_replica *r1, *r2;

/* The first version of each (author, seq) the replicas took since the
 * last reset: its HLC, a hash of its deps, and whether it holds only
 * register and counter ops (open addressing, cleared at reset). */
enum {
    SEEN_CAP = 1 << 14
};
typedef struct seen {
    uint64_t seq; /* 0: empty slot */
    int author;
    uint64_t hlc;
    uint8_t deps[16];
    bool plain;
} seen;
static seen *seen_tab;
static size_t seen_n;
static unsigned long runs, reset_every = RESET_EVERY;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_keys(pk, sk);
    /* SHOAL_FUZZ_CONVERGE_RESET=1: fresh replicas for every input, so that
     * a failing input replays on its own. */
    const char *e = getenv("SHOAL_FUZZ_CONVERGE_RESET");
    if (e && atoi(e) > 0)
        reset_every = (unsigned long)atoi(e);
    r1 = fuzz_replica_open();
    r2 = fuzz_replica_open();
    return 0;
}

typedef struct dctx {
    shoal_replica *r;
    shoal__stxn *t;
} dctx;

static int
dump_doc(const uint8_t *coll, size_t clen, const uint8_t *id, size_t idlen, const shoal__sval *meta,
         void *arg)
{
    dctx *c = arg;
    shoal__dmeta m;
    if (shoal__dmeta_parse(meta->p, meta->len, &m))
        return 0;
    shoal__dmeta m2;
    const shoal__doc *d = NULL;
    shoal__buf b;
    shoal__buf_init(&b);
    uint8_t h[8] = { 0 };
    if (shoal__doc_read(c->r, c->t, coll, clen, id, idlen, &m2, &d) == SHOAL_OK && d) {
        shoal__doc_encode_full(d, &b);
        crypto_generichash(h, 8, b.p, b.len, NULL, 0);
        shoal__dmeta_clear(&m2);
    }
    fprintf(stderr,
            "  doc %.*s/%.*s n=%llu heads=%zu ex=%d del=%d ep=%llu full=%02x%02x%02x%02x len=%zu\n",
            (int)clen, coll, (int)idlen, id, (unsigned long long)m.nchanges, m.nheads, m.exists,
            m.deleted, (unsigned long long)m.epoch, h[0], h[1], h[2], h[3], b.len);
    for (size_t i = 0; i < m.nheads; i++)
        fprintf(stderr, "    head %02x%02x%02x%02x\n", m.heads[i * 32], m.heads[i * 32 + 1],
                m.heads[i * 32 + 2], m.heads[i * 32 + 3]);
    shoal__buf_free(&b);
    shoal__dmeta_clear(&m);
    return 0;
}

static int
dump_fn(shoal__stxn *t, void *arg)
{
    dctx *c = arg;
    c->t = t;
    return shoal__stxn_doc_scan(t, NULL, 0, dump_doc, c);
}

static void
dump(shoal_replica *r, const char *name)
{
    fprintf(stderr, "%s:\n", name);
    dctx c = { r, NULL };
    pthread_mutex_lock(&r->mu);
    (void)shoal__store_read(r->store, dump_fn, &c);
    pthread_mutex_unlock(&r->mu);
}

/* What decides whether two versions may both be offered: c's HLC, deps
 * and op kinds. */
static void
seen_of(const shoal__change *c, int author, seen *out)
{
    memset(out, 0, sizeof *out);
    out->seq = c->seq;
    out->author = author;
    out->hlc = c->hlc;
    crypto_generichash(out->deps, sizeof out->deps, c->deps, c->ndeps * SHOAL__ID_BYTES, NULL, 0);
    out->plain = true;
    for (size_t i = 0; i < c->nops; i++)
        out->plain =
            out->plain && (c->ops[i].kind == SHOAL__OP_SET || c->ops[i].kind == SHOAL__OP_UNSET ||
                           c->ops[i].kind == SHOAL__OP_COUNT);
}

static seen *
seen_slot(int author, uint64_t seq)
{
    size_t h = (size_t)((seq * 0x9e3779b97f4a7c15ull) ^ (uint64_t)author) & (SEEN_CAP - 1);
    while (seen_tab[h].seq && (seen_tab[h].seq != seq || seen_tab[h].author != author))
        h = (h + 1) & (SEEN_CAP - 1);
    return &seen_tab[h];
}

/* Whether a version with signature v may be offered beside the first one
 * taken of its (author, seq) (and remember it when it is the first). */
static bool
version_ok(const seen *v, bool remember)
{
    if (v->seq == 0)
        return true;
    seen *slot = seen_slot(v->author, v->seq);
    if (!slot->seq) {
        if (remember && seen_n < SEEN_CAP / 2) {
            *slot = *v;
            seen_n++;
        }
        return remember ? seen_n < SEEN_CAP / 2 : true;
    }
    return slot->hlc == v->hlc && memcmp(slot->deps, v->deps, sizeof v->deps) == 0 && slot->plain &&
           v->plain;
}

static void
same_state(void)
{
    uint8_t a[32], b[32];
    for (int full = 0; full < 2; full++) {
        FUZZ_CHECK(shoal_digest(r1, full, a) == SHOAL_OK);
        FUZZ_CHECK(shoal_digest(r2, full, b) == SHOAL_OK);
        if (memcmp(a, b, 32) != 0) {
            fprintf(stderr, "converge: %s digests differ (run %lu)\n", full ? "full" : "visible",
                    runs);
            dump(r1, "r1");
            dump(r2, "r2");
        }
        FUZZ_CHECK(memcmp(a, b, 32) == 0);
    }
    uint64_t p1, p2;
    FUZZ_CHECK(shoal_pending_count(r1, &p1) == SHOAL_OK);
    FUZZ_CHECK(shoal_pending_count(r2, &p2) == SHOAL_OK);
    FUZZ_CHECK(p1 == p2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!seen_tab)
        seen_tab = calloc(SEEN_CAP, sizeof *seen_tab);
    FUZZ_CHECK(seen_tab != NULL);
    if (++runs % reset_every == 0) {
        r1 = fuzz_replica_reset(r1);
        r2 = fuzz_replica_reset(r2);
        memset(seen_tab, 0, SEEN_CAP * sizeof *seen_tab);
        seen_n = 0;
    }
    fuzz_piece pc[MAX_PIECES];
    size_t k = fuzz_split(data, size, pc, MAX_PIECES);
    shoal__buf envs[MAX_PIECES], bundle;
    seen vs[MAX_PIECES];
    fuzz_piece bodies[MAX_PIECES];
    size_t n = 0;
    shoal__buf_init(&bundle);
    FUZZ_CHECK(shoal__bundle_begin(&bundle) == SHOAL_OK);
    for (size_t i = 0; i < k; i++) {
        if (pc[i].n < 1 || pc[i].n - 1 > SHOAL__MAX_BODY)
            continue;
        int a = pc[i].p[0] % FUZZ_NKEYS;
        /* versions the outcome may depend on the order of: left out */
        shoal__change c;
        memset(&c, 0, sizeof c);
        memcpy(c.author, pk[a], 32);
        seen v;
        memset(&v, 0, sizeof v);
        if (shoal__change_decode(pc[i].p + 1, pc[i].n - 1, &c) == SHOAL_OK) {
            seen_of(&c, a, &v);
            shoal__change_clear(&c);
        }
        /* another version of an (author, seq) taken before, or earlier in
         * this input (the same body twice is one change, not two) */
        bool ok = version_ok(&v, false);
        for (size_t j = 0; j < n && ok && v.seq; j++)
            if (vs[j].seq == v.seq && vs[j].author == v.author &&
                !(bodies[j].n == pc[i].n && memcmp(bodies[j].p, pc[i].p, pc[i].n) == 0))
                ok = vs[j].hlc == v.hlc && memcmp(vs[j].deps, v.deps, sizeof v.deps) == 0 &&
                     vs[j].plain && v.plain;
        if (!ok)
            continue;
        bodies[n] = pc[i];
        vs[n] = v;
        shoal__buf_init(&envs[n]);
        FUZZ_CHECK(shoal__envelope_seal(pc[i].p + 1, pc[i].n - 1, pk[a], sk[a], &envs[n]) ==
                   SHOAL_OK);
        FUZZ_CHECK(shoal__bundle_add(&bundle, envs[n].p, envs[n].len) == SHOAL_OK);
        n++;
    }
    shoal__bundle_finish(&bundle, (uint32_t)n);
    shoal_import_result res;
    if (shoal_import(r1, bundle.p, bundle.len, &res) == SHOAL_OK) {
        for (size_t i = 0; i < n; i++)
            (void)version_ok(&vs[i], true);
        /* A shuffle seeded by the input (FNV-1a), so reruns repeat it. */
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < size; i++)
            h = (h ^ data[i]) * 1099511628211ull;
        size_t order[MAX_PIECES];
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = n; i > 1; i--) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = (size_t)((h >> 33) % i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        shoal__buf one;
        shoal__buf_init(&one);
        for (int round = 0; round < 2; round++) {
            for (size_t i = 0; i < n; i++) {
                const shoal__buf *e = &envs[order[i]];
                one.len = 0;
                FUZZ_CHECK(shoal__bundle_begin(&one) == SHOAL_OK);
                FUZZ_CHECK(shoal__bundle_add(&one, e->p, e->len) == SHOAL_OK);
                shoal__bundle_finish(&one, 1);
                shoal_err err = shoal_import(r2, one.p, one.len, &res);
                if (err)
                    fprintf(stderr, "converge: change %zu of %zu alone: %s\n", order[i], n,
                            shoal_strerror(err));
                FUZZ_CHECK(err == SHOAL_OK);
            }
        }
        shoal__buf_free(&one);
        same_state();
    }
    for (size_t i = 0; i < n; i++)
        shoal__buf_free(&envs[i]);
    shoal__buf_free(&bundle);
    return 0;
}
