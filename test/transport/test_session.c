/*
 * test/transport/test_session.c - the sync protocol driven in memory over
 * real replicas (temp dirs, LMDB), no sockets.
 *
 * Direct tests: handshake, bounded catch-up (batch limits and the window),
 * live push, malformed frames, forged changes, replays, an unexpected peer
 * key, out-of-order batches, equivocation notices.
 *
 * The fault simulation: several replicas joined by links; a seeded
 * scheduler commits random edits of every kind, moves frames with delays,
 * drops, duplicates and reorders, and cuts and restores links.  A cut
 * discards the frames in flight and both sessions; a restore starts fresh
 * ones.  Inside one live connection ZeroMQ neither drops nor reorders, so
 * here a drop, duplicate or reorder is damage the receiving session must
 * detect (batch and ACK numbers) or that a heartbeat timeout would catch:
 * either way the link is reset.  In every third seed an equivocating author
 * X signs three versions of its seq 2 (on a document the replicas edit),
 * and each is imported into random replicas at random times, so honest
 * edits get built on different versions.  After the faults stop and the links stay up
 * until nothing moves, every replica must hold the same full and visible
 * digest, the same version vector, no pending change, and every local
 * commit that returned SHOAL_OK.
 *
 * SHOAL_SEED picks the first seed, SHOAL_SIM_SEEDS how many seeds,
 * SHOAL_SIM_STEPS the steps per seed.  A failing seed is printed.
 */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core.h"
#include "crdt.h"
#include "shoal.h"
#include "transport.h"

/* ------------------------------------------------------------- replicas */

typedef struct node {
    char *dir;
    uint64_t ms; /* fake clock */
    shoal_replica *r;
    shoal__host h;
    uint8_t key[32];
    uint64_t commits; /* our seq after the last local commit that returned OK */
} node;

static uint64_t
node_now(void *ctx)
{
    return ((node *)ctx)->ms;
}

static bool
node_open(node *n, const char *tag)
{
    memset(n, 0, sizeof *n);
    n->dir = check_tmpdir(tag);
    n->ms = 1700000000000ull;
    if (!n->dir || !check_seed_identity(n->dir))
        return false;
    shoal_options *o;
    if (shoal_options_new(&o))
        return false;
    shoal_options_set_durable(o, false);
    shoal_options_set_clock(o, node_now, n);
    shoal_err err = shoal_replica_open(&n->r, n->dir, o);
    shoal_options_free(o);
    if (err)
        return false;
    memcpy(n->key, shoal_replica_id(n->r), 32);
    shoal__host_init(&n->h, n->r);
    return true;
}

static void
node_close(node *n)
{
    shoal_replica_close(n->r);
    if (n->dir) {
        check_rmtree(n->dir);
        free(n->dir);
    }
    memset(n, 0, sizeof *n);
}

static void
set_int(node *n, const char *doc, const char *field, int64_t v)
{
    shoal_txn *t;
    shoal_value val = { .type = SHOAL_T_INT, .i = v };
    CHECK_EQ(shoal_txn_begin(n->r, &t), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(t, "c", doc, field, &val), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    n->commits++;
}

/* ndocs changes in one transaction, each carrying a value of vbytes bytes. */
static void
commit_many(node *n, int ndocs, size_t vbytes, int tag)
{
    static char big[64 << 10];
    memset(big, 'x', sizeof big);
    shoal_txn *t;
    CHECK_EQ(shoal_txn_begin(n->r, &t), SHOAL_OK);
    for (int i = 0; i < ndocs; i++) {
        char doc[32];
        snprintf(doc, sizeof doc, "d%d", i);
        shoal_value v = { .type = SHOAL_T_INT, .i = tag };
        if (vbytes) {
            v.type = SHOAL_T_STR;
            v.ptr = (const uint8_t *)big;
            v.len = vbytes < sizeof big ? vbytes : sizeof big;
        }
        CHECK_EQ(shoal_txn_set(t, "c", doc, "f", &v), SHOAL_OK);
    }
    CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
    n->commits++;
}

static void
digest(node *n, bool full, uint8_t out[SHOAL_DIGEST_BYTES])
{
    memset(out, 0, SHOAL_DIGEST_BYTES);
    CHECK_EQ(shoal_digest(n->r, full, out), SHOAL_OK);
}

static bool
same_digests(node *a, node *b)
{
    uint8_t x[SHOAL_DIGEST_BYTES], y[SHOAL_DIGEST_BYTES];
    digest(a, true, x);
    digest(b, true, y);
    if (memcmp(x, y, sizeof x) != 0)
        return false;
    digest(a, false, x);
    digest(b, false, y);
    return memcmp(x, y, sizeof x) == 0;
}

static uint64_t
vv_of(node *n, const uint8_t *author)
{
    shoal_vv *vv;
    if (shoal_replica_version(n->r, &vv) != SHOAL_OK)
        return 0;
    uint64_t s = shoal_vv_get(vv, author);
    shoal_vv_free(vv);
    return s;
}

static uint64_t
pending(node *n)
{
    uint64_t c = 0;
    CHECK_EQ(shoal_pending_count(n->r, &c), SHOAL_OK);
    return c;
}

/* ---------------------------------------------------------------- links */

typedef struct msg {
    uint8_t *p;
    size_t n;
    int hold; /* steps before it may be delivered */
} msg;

typedef struct queue {
    msg *m;
    size_t n, cap;
} queue;

static void
q_add(queue *q, const uint8_t *p, size_t n, int hold)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->m = realloc(q->m, q->cap * sizeof *q->m);
    }
    msg *m = &q->m[q->n++];
    m->p = malloc(n ? n : 1);
    memcpy(m->p, p, n);
    m->n = n;
    m->hold = hold;
}

static msg
q_take(queue *q, size_t i)
{
    msg m = q->m[i];
    memmove(&q->m[i], &q->m[i + 1], (q->n - i - 1) * sizeof *q->m);
    q->n--;
    return m;
}

static void
q_clear(queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->m[i].p);
    free(q->m);
    memset(q, 0, sizeof *q);
}

/* A link between nodes a and b: s[0] lives at a, s[1] at b; q[0] carries
 * a -> b, q[1] b -> a. */
typedef struct link {
    node *n[2];
    shoal__session *s[2];
    queue q[2];
    bool up;
    bool damaged; /* a frame was lost: reset after a timeout */
    bool tainted; /* a frame was dropped, duplicated or reordered */
    int timer;    /* steps until reset (damaged) or restore (down) */
    uint64_t resets;
} link_t;

static void
link_up(link_t *l, bool expect)
{
    for (int i = 0; i < 2; i++) {
        l->s[i] = shoal__session_new(&l->n[i]->h, l->n[i]->key, expect ? l->n[1 - i]->key : NULL);
        CHECK(l->s[i] != NULL);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(shoal__session_start(l->s[i], l->n[i]->ms), SHOAL_OK);
    l->up = true;
    l->damaged = false;
    l->tainted = false;
}

static void
link_down(link_t *l)
{
    for (int i = 0; i < 2; i++) {
        shoal__session_free(l->s[i]);
        l->s[i] = NULL;
        q_clear(&l->q[i]);
    }
    l->up = false;
    l->damaged = false;
    l->resets++;
}

/* Move every frame side i will send now into q[i]; returns how many. */
static int
collect(link_t *l, int i)
{
    int k = 0;
    const uint8_t *f;
    size_t n;
    while (shoal__session_next(l->s[i], &f, &n) == 1) {
        q_add(&l->q[i], f, n, 0);
        k++;
    }
    return k;
}

/* Deliver everything in flight, in order, until nothing moves. */
static int
pump(link_t *l)
{
    int moved = 0;
    for (int round = 0; round < 100000; round++) {
        int k = collect(l, 0) + collect(l, 1);
        for (int i = 0; i < 2; i++) {
            while (l->q[i].n) {
                msg m = q_take(&l->q[i], 0);
                (void)shoal__session_recv(l->s[1 - i], m.p, m.n, l->n[1 - i]->ms);
                free(m.p);
                k++;
            }
        }
        moved += k;
        if (k == 0)
            return moved;
    }
    check_failures++;
    fprintf(stderr, "pump: no quiescence\n");
    return moved;
}

static void
stats(const link_t *l, int i, shoal__session_stats *st)
{
    shoal__session_get_stats(l->s[i], st);
}

/* ----------------------------------------------------------- direct tests */

static void
test_handshake(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    set_int(&a, "x", "f", 1);
    set_int(&a, "y", "f", 2);
    set_int(&b, "x", "g", 3);
    link_t l = { .n = { &a, &b } };
    /* Nothing to send before start. */
    shoal__session *s = shoal__session_new(&a.h, a.key, NULL);
    const uint8_t *f;
    size_t fn;
    CHECK_EQ(shoal__session_next(s, &f, &fn), 0);
    shoal__session_free(s);

    link_up(&l, true);
    pump(&l);
    shoal__session_stats st[2];
    stats(&l, 0, &st[0]);
    stats(&l, 1, &st[1]);
    for (int i = 0; i < 2; i++) {
        CHECK(st[i].handshaken);
        CHECK(!st[i].failed);
        CHECK(st[i].caught_up);
        CHECK_EQ(st[i].lag, 0);
        CHECK_EQ(st[i].rejected, 0);
        CHECK_EQ(st[i].equivocations, 0);
    }
    CHECK(memcmp(st[0].peer, b.key, 32) == 0);
    CHECK(memcmp(st[1].peer, a.key, 32) == 0);
    CHECK_EQ(st[0].sent, 2);
    CHECK_EQ(st[0].received, 1);
    CHECK_EQ(st[1].sent, 1);
    CHECK_EQ(st[1].received, 2);
    CHECK(same_digests(&a, &b));
    CHECK_EQ(vv_of(&b, a.key), 2);
    CHECK_EQ(vv_of(&a, b.key), 1);
    link_down(&l);

    /* A second session between the same replicas moves nothing. */
    link_up(&l, false);
    pump(&l);
    stats(&l, 0, &st[0]);
    stats(&l, 1, &st[1]);
    CHECK(st[0].caught_up && st[1].caught_up);
    CHECK_EQ(st[0].sent + st[1].sent, 0);
    link_down(&l);
    node_close(&a);
    node_close(&b);
}

static void
test_catchup_bounded(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    /* 3000 small changes, then 24 changes of 64 KiB (over a MiB together). */
    for (int i = 0; i < 150; i++)
        commit_many(&a, 20, 0, i);
    for (int i = 0; i < 2; i++)
        commit_many(&a, 12, 64 << 10, i);
    const uint64_t total = 3000 + 24;
    link_t l = { .n = { &a, &b } };
    link_up(&l, true);

    /* Hold b's ACKs back: a stops after SHOAL__WINDOW batches. */
    int batches = 0;
    for (int round = 0; round < 10; round++) {
        collect(&l, 0);
        collect(&l, 1);
        while (l.q[0].n) {
            msg m = q_take(&l.q[0], 0);
            shoal__frame fr;
            REQUIRE(shoal__frame_decode(m.p, m.n, &fr) == SHOAL_OK);
            if (fr.type == SHOAL__F_BATCH)
                batches++;
            shoal__frame_clear(&fr);
            if (shoal__session_recv(l.s[1], m.p, m.n, 0) != SHOAL_OK) {
                fprintf(stderr, "recv: %s / %s\n", shoal__session_failure(l.s[1]),
                        shoal_replica_errmsg(b.r));
                check_failures++;
            }
            free(m.p);
        }
        /* Deliver only b's HELLO (the first frame it queued). */
        if (round == 0 && l.q[1].n) {
            msg m = q_take(&l.q[1], 0);
            CHECK_EQ(shoal__session_recv(l.s[0], m.p, m.n, 0), SHOAL_OK);
            free(m.p);
        }
    }
    CHECK_EQ(batches, SHOAL__WINDOW);
    CHECK_EQ(l.q[1].n, SHOAL__WINDOW); /* the ACKs waiting */

    /* Now run to the end, checking every frame. */
    uint64_t maxcount = 0;
    size_t maxbytes_multi = 0, nbatches = 0;
    for (int round = 0; round < 100000; round++) {
        int k = collect(&l, 0) + collect(&l, 1);
        for (int i = 0; i < 2; i++) {
            while (l.q[i].n) {
                msg m = q_take(&l.q[i], 0);
                shoal__frame fr;
                CHECK(m.n <= SHOAL__MAX_FRAME);
                if (shoal__frame_decode(m.p, m.n, &fr) == SHOAL_OK) {
                    if (fr.type == SHOAL__F_BATCH && i == 0) {
                        nbatches++;
                        if (fr.count > maxcount)
                            maxcount = fr.count;
                        if (fr.count > 1 && fr.envs_len > maxbytes_multi)
                            maxbytes_multi = fr.envs_len;
                    }
                    shoal__frame_clear(&fr);
                } else {
                    check_failures++;
                }
                CHECK_EQ(shoal__session_recv(l.s[1 - i], m.p, m.n, 0), SHOAL_OK);
                free(m.p);
                k++;
            }
        }
        if (k == 0)
            break;
    }
    CHECK(maxcount <= SHOAL__BATCH_CHANGES);
    CHECK(maxcount == SHOAL__BATCH_CHANGES); /* the limit was reached */
    CHECK(maxbytes_multi <= SHOAL__BATCH_BYTES);
    CHECK(nbatches + SHOAL__WINDOW >= total / SHOAL__BATCH_CHANGES);
    shoal__session_stats st[2];
    stats(&l, 0, &st[0]);
    stats(&l, 1, &st[1]);
    CHECK_EQ(st[0].sent, total);
    CHECK_EQ(st[1].received, total);
    CHECK(st[0].caught_up && st[1].caught_up);
    CHECK_EQ(st[0].lag, 0);
    CHECK(same_digests(&a, &b));
    CHECK_EQ(pending(&b), 0);
    link_down(&l);
    node_close(&a);
    node_close(&b);
}

/* The window, measured: a never has more than SHOAL__WINDOW batches
 * without their ACK, whatever order the two sides run in. */
static void
test_window(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    for (int i = 0; i < 120; i++)
        commit_many(&a, 30, 0, i);
    link_t l = { .n = { &a, &b } };
    link_up(&l, true);
    uint64_t sent = 0, acked = 0, maxin = 0;
    for (int step = 0; step < 200000; step++) {
        int side = (int)check_rand_below(2);
        const uint8_t *f;
        size_t n;
        if (check_rand_below(2)) {
            if (shoal__session_next(l.s[side], &f, &n) == 1) {
                if (side == 0 && n > 0 && f[1] == SHOAL__F_BATCH) {
                    sent++;
                    if (sent - acked > maxin)
                        maxin = sent - acked;
                }
                q_add(&l.q[side], f, n, 0);
            }
        } else if (l.q[side].n) {
            msg m = q_take(&l.q[side], 0);
            if (side == 1 && m.n > 1 && m.p[1] == SHOAL__F_ACK)
                acked++;
            if (shoal__session_recv(l.s[1 - side], m.p, m.n, 0) != SHOAL_OK) {
                fprintf(stderr, "recv: %s\n", shoal__session_failure(l.s[1 - side]));
                check_failures++;
            }
            free(m.p);
        }
        shoal__session_stats st;
        stats(&l, 1, &st);
        if (st.caught_up && l.q[0].n == 0 && l.q[1].n == 0 && sent == acked && sent > 0)
            break;
    }
    CHECK(maxin <= SHOAL__WINDOW);
    CHECK(maxin == SHOAL__WINDOW);
    pump(&l);
    CHECK(same_digests(&a, &b));
    link_down(&l);
    node_close(&a);
    node_close(&b);
}

static void
test_live_push(void)
{
    node a, b, c;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b") && node_open(&c, "sess-c"));
    link_t ab = { .n = { &a, &b } }, bc = { .n = { &b, &c } };
    link_up(&ab, true);
    link_up(&bc, true);
    pump(&ab);
    pump(&bc);
    shoal__session_stats st;
    stats(&ab, 0, &st);
    CHECK(st.caught_up);
    /* A commit on a, announced to its session, reaches b at once. */
    set_int(&a, "live", "f", 7);
    shoal__session_changed(ab.s[0]);
    CHECK(pump(&ab) >= 2); /* BATCH and ACK */
    CHECK(same_digests(&a, &b));
    /* b forwards it to c when told that its log grew (the engine's job). */
    CHECK(!same_digests(&b, &c));
    shoal__session_changed(bc.s[0]);
    pump(&bc);
    CHECK(same_digests(&b, &c));
    /* Not echoed back to a: b knows a holds it. */
    stats(&ab, 1, &st);
    CHECK_EQ(st.sent, 0);
    shoal__session_changed(ab.s[1]);
    pump(&ab);
    stats(&ab, 1, &st);
    CHECK_EQ(st.sent, 0);
    /* And from c back to a through b. */
    set_int(&c, "live", "g", 8);
    shoal__session_changed(bc.s[1]);
    pump(&bc);
    shoal__session_changed(ab.s[1]);
    pump(&ab);
    CHECK(same_digests(&a, &c));
    stats(&ab, 0, &st);
    CHECK_EQ(st.lag, 0);
    link_down(&ab);
    link_down(&bc);
    node_close(&a);
    node_close(&b);
    node_close(&c);
}

/* Feed frame to a fresh started session of b whose peer is a (after the
 * HELLO exchange if hello); expect err; the session sends one ERROR frame
 * with that code and nothing of b changes. */
static void
expect_reject(node *a, node *b, bool hello, const uint8_t *frame, size_t n, int err)
{
    uint8_t d0[SHOAL_DIGEST_BYTES], d1[SHOAL_DIGEST_BYTES];
    digest(b, true, d0);
    uint64_t p0 = pending(b);
    link_t l = { .n = { a, b } };
    link_up(&l, true);
    if (hello) {
        /* a's HELLO reaches b; b's frames are dropped. */
        collect(&l, 0);
        while (l.q[0].n) {
            msg m = q_take(&l.q[0], 0);
            CHECK_EQ(shoal__session_recv(l.s[1], m.p, m.n, 0), SHOAL_OK);
            free(m.p);
        }
    }
    const uint8_t *f;
    size_t fn;
    while (shoal__session_next(l.s[1], &f, &fn) == 1)
        ;
    int got = shoal__session_recv(l.s[1], frame, n, 0);
    CHECK_EQ(got, err);
    shoal__session_stats st;
    stats(&l, 1, &st);
    CHECK(st.failed);
    CHECK_EQ(st.error, err);
    CHECK_EQ(st.rejected, err == SHOAL_EREFUSED ? 0 : 1);
    CHECK(shoal__session_failure(l.s[1])[0] != '\0');
    /* Sticky. */
    CHECK_EQ(shoal__session_recv(l.s[1], frame, n, 0), err);
    /* One ERROR frame, then nothing. */
    REQUIRE(shoal__session_next(l.s[1], &f, &fn) == 1);
    shoal__frame fr;
    REQUIRE(shoal__frame_decode(f, fn, &fr) == SHOAL_OK);
    CHECK_EQ(fr.type, SHOAL__F_ERROR);
    CHECK_EQ(fr.code, err);
    int back = shoal__session_recv(l.s[0], f, fn, 0);
    CHECK_EQ(back, err);
    shoal__frame_clear(&fr);
    CHECK_EQ(shoal__session_next(l.s[1], &f, &fn), 0);
    stats(&l, 0, &st);
    CHECK(st.failed);
    CHECK_EQ(shoal__session_next(l.s[0], &f, &fn), 0); /* no ERROR answering an ERROR */
    digest(b, true, d1);
    CHECK(memcmp(d0, d1, sizeof d0) == 0);
    CHECK_EQ(pending(b), p0);
    link_down(&l);
}

static void
test_malformed(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    set_int(&a, "x", "f", 1);
    set_int(&b, "x", "f", 2);

    shoal__buf hb;
    shoal__buf_init(&hb);
    shoal__vventry e = { .seq = 1 };
    memcpy(e.author, a.key, 32);
    REQUIRE(shoal__wire_hello(&hb, a.key, &e, 1) == SHOAL_OK);
    /* Truncated HELLO. */
    expect_reject(&a, &b, false, hb.p, hb.len - 5, SHOAL_ETRUNC);
    /* Trailing byte. */
    uint8_t *tb = malloc(hb.len + 1);
    memcpy(tb, hb.p, hb.len);
    tb[hb.len] = 0xc0;
    expect_reject(&a, &b, false, tb, hb.len + 1, SHOAL_EPROTO);
    free(tb);
    /* Unknown version (HELLO [1, 3, ...]). */
    uint8_t v3[] = { 0x94, 0x01, 0x03, 0xc0, 0x90 };
    expect_reject(&a, &b, false, v3, sizeof v3, SHOAL_EVERSION);
    /* Version 2 (a partial replica's) with the items of version 1. */
    uint8_t v2[] = { 0x94, 0x01, 0x02, 0xc0, 0x90 };
    expect_reject(&a, &b, false, v2, sizeof v2, SHOAL_EPROTO);
    /* Unknown frame type, not an array, empty. */
    uint8_t t9[] = { 0x91, 0x09 };
    expect_reject(&a, &b, true, t9, sizeof t9, SHOAL_EPROTO);
    uint8_t na[] = { 0x01 };
    expect_reject(&a, &b, true, na, sizeof na, SHOAL_EPROTO);
    expect_reject(&a, &b, true, na, 0, SHOAL_ETRUNC);
    /* Non-canonical int (type 1 as uint8). */
    uint8_t nc[] = { 0x91, 0xcc, 0x01 };
    expect_reject(&a, &b, true, nc, sizeof nc, SHOAL_EPROTO);
    /* A HELLO whose vv declares 2^31 entries in a few bytes. */
    uint8_t big[64] = { 0x94, 0x01, 0x01, 0xc4, 0x20 };
    memcpy(big + 5, a.key, 32);
    big[37] = 0xdd;
    big[38] = 0x80;
    expect_reject(&a, &b, false, big, 43, SHOAL_ETOOBIG);
    big[38] = 0x00;
    big[39] = 0x01; /* 65536 entries: within the bound, not the bytes */
    expect_reject(&a, &b, false, big, 43, SHOAL_ETRUNC);
    /* vv not sorted. */
    shoal__vventry two[2] = { { .seq = 1 }, { .seq = 1 } };
    memset(two[0].author, 2, 32);
    memset(two[1].author, 1, 32);
    hb.len = 0;
    REQUIRE(shoal__wire_hello(&hb, a.key, two, 2) == SHOAL_OK);
    expect_reject(&a, &b, false, hb.p, hb.len, SHOAL_EPROTO);
    /* BATCH over the change count bound. */
    uint8_t bc[] = { 0x94, 0x02, 0x01, 0xcd, 0x01, 0x01, 0xc4, 0x01, 0x00 };
    expect_reject(&a, &b, true, bc, sizeof bc, SHOAL_ETOOBIG);
    /* BATCH whose envelopes are garbage. */
    uint8_t bg[] = { 0x94, 0x02, 0x01, 0x01, 0xc4, 0x03, 0x01, 0x02, 0x03 };
    expect_reject(&a, &b, true, bg, sizeof bg, SHOAL_ETRUNC);
    /* ... or of an unknown envelope version. */
    uint8_t bv[6 + 120] = { 0x94, 0x02, 0x01, 0x01, 0xc4, 120, 0x09 };
    expect_reject(&a, &b, true, bv, sizeof bv, SHOAL_EVERSION);
    /* BATCH before HELLO. */
    expect_reject(&a, &b, false, bg, sizeof bg, SHOAL_EPROTO);
    /* ACK for a batch never sent (b sent batch 1 only). */
    uint8_t ak[] = { 0x96, 0x03, 0x02, 0x00, 0x00, 0x00, 0x90 };
    expect_reject(&a, &b, true, ak, sizeof ak, SHOAL_EPROTO);
    /* Oversized frame. */
    expect_reject(&a, &b, true, na, (size_t)SHOAL__MAX_FRAME + 1, SHOAL_ETOOBIG);
    /* A HELLO with an unexpected key. */
    node c;
    REQUIRE(node_open(&c, "sess-c"));
    hb.len = 0;
    REQUIRE(shoal__wire_hello(&hb, c.key, NULL, 0) == SHOAL_OK);
    expect_reject(&a, &b, false, hb.p, hb.len, SHOAL_EREFUSED);
    node_close(&c);
    shoal__buf_free(&hb);
    node_close(&a);
    node_close(&b);
}

/* One BATCH frame holding a's changes (all of them). */
static void
batch_of(node *a, uint64_t n, shoal__buf *frame, size_t *count, uint8_t **envs, size_t *envs_len)
{
    shoal__buf e;
    shoal__buf_init(&e);
    uint64_t cur = 0;
    REQUIRE(a->h.next_changes(a->h.ctx, &cur, NULL, 0, 1000, 1u << 30, &e, count) == SHOAL_OK);
    frame->len = 0;
    REQUIRE(shoal__wire_batch(frame, n, *count, e.p, e.len) == SHOAL_OK);
    *envs = shoal__buf_take(&e, envs_len);
}

static void
test_forged_and_replay(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    for (int i = 0; i < 5; i++)
        set_int(&a, "x", "f", i);
    set_int(&b, "y", "f", 1);
    shoal__buf fr;
    shoal__buf_init(&fr);
    size_t count = 0, elen = 0;
    uint8_t *envs = NULL;
    batch_of(&a, 1, &fr, &count, &envs, &elen);
    CHECK_EQ(count, 5);

    /* Forge the last change's body: the batch is rejected whole. */
    uint8_t *forged = malloc(elen);
    memcpy(forged, envs, elen);
    forged[elen - 64 - 2] ^= 1;
    shoal__buf ff;
    shoal__buf_init(&ff);
    REQUIRE(shoal__wire_batch(&ff, 1, count, forged, elen) == SHOAL_OK);
    expect_reject(&a, &b, true, ff.p, ff.len, SHOAL_EBADSIG);
    CHECK_EQ(vv_of(&b, a.key), 0);
    /* A wrong count for the bytes. */
    ff.len = 0;
    REQUIRE(shoal__wire_batch(&ff, 1, count + 1, envs, elen) == SHOAL_OK);
    expect_reject(&a, &b, true, ff.p, ff.len, SHOAL_ETRUNC);
    ff.len = 0;
    REQUIRE(shoal__wire_batch(&ff, 1, count - 1, envs, elen) == SHOAL_OK);
    expect_reject(&a, &b, true, ff.p, ff.len, SHOAL_EPROTO);
    CHECK_EQ(vv_of(&b, a.key), 0);

    /* The real batch applies; the same frame again is out of order. */
    link_t l = { .n = { &a, &b } };
    link_up(&l, true);
    const uint8_t *f;
    size_t fn;
    collect(&l, 0);
    collect(&l, 1);
    while (l.q[0].n) {
        msg m = q_take(&l.q[0], 0);
        CHECK_EQ(shoal__session_recv(l.s[1], m.p, m.n, 0), SHOAL_OK);
        free(m.p);
    }
    q_clear(&l.q[1]);
    /* a's own session never got b's HELLO: it sent no batch. */
    CHECK_EQ(shoal__session_recv(l.s[1], fr.p, fr.len, 0), SHOAL_OK);
    CHECK_EQ(vv_of(&b, a.key), 5);
    uint8_t d0[SHOAL_DIGEST_BYTES], d1[SHOAL_DIGEST_BYTES];
    digest(&b, true, d0);
    CHECK_EQ(shoal__session_recv(l.s[1], fr.p, fr.len, 0), SHOAL_EPROTO);
    shoal__session_stats st;
    stats(&l, 1, &st);
    CHECK(st.failed);
    CHECK_EQ(st.rejected, 1);
    CHECK(shoal__session_next(l.s[1], &f, &fn) == 1);
    digest(&b, true, d1);
    CHECK(memcmp(d0, d1, sizeof d0) == 0);
    link_down(&l);

    /* Replayed in a new session as its batch 1: all duplicates, a no-op. */
    link_up(&l, true);
    collect(&l, 0);
    while (l.q[0].n) {
        msg m = q_take(&l.q[0], 0);
        CHECK_EQ(shoal__session_recv(l.s[1], m.p, m.n, 0), SHOAL_OK);
        free(m.p);
    }
    while (shoal__session_next(l.s[1], &f, &fn) == 1)
        ;
    CHECK_EQ(shoal__session_recv(l.s[1], fr.p, fr.len, 0), SHOAL_OK);
    REQUIRE(shoal__session_next(l.s[1], &f, &fn) == 1);
    shoal__frame ack;
    REQUIRE(shoal__frame_decode(f, fn, &ack) == SHOAL_OK);
    CHECK_EQ(ack.type, SHOAL__F_ACK);
    CHECK_EQ(ack.n, 1);
    CHECK_EQ(ack.applied, 0);
    CHECK_EQ(ack.duplicate, 5);
    CHECK_EQ(ack.nentries, 1);
    if (ack.nentries == 1) {
        CHECK(memcmp(ack.entries[0].author, a.key, 32) == 0);
        CHECK_EQ(ack.entries[0].seq, 5);
    }
    shoal__frame_clear(&ack);
    digest(&b, true, d1);
    CHECK(memcmp(d0, d1, sizeof d0) == 0);
    link_down(&l);

    free(forged);
    shoal__free(envs);
    shoal__buf_free(&ff);
    shoal__buf_free(&fr);
    node_close(&a);
    node_close(&b);
}

/* Out of order: batch 2 before batch 1 fails the session (SHOAL_EPROTO);
 * a fresh session then completes the sync. */
static void
test_out_of_order(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    for (int i = 0; i < 4; i++)
        commit_many(&a, 200, 0, i); /* 800 changes: several batches */
    link_t l = { .n = { &a, &b } };
    link_up(&l, true);
    collect(&l, 1);
    while (l.q[1].n) { /* b's HELLO to a */
        msg m = q_take(&l.q[1], 0);
        CHECK_EQ(shoal__session_recv(l.s[0], m.p, m.n, 0), SHOAL_OK);
        free(m.p);
    }
    collect(&l, 0); /* HELLO, BATCH 1..4 */
    REQUIRE(l.q[0].n == 1 + SHOAL__WINDOW);
    msg h = q_take(&l.q[0], 0);
    CHECK_EQ(shoal__session_recv(l.s[1], h.p, h.n, 0), SHOAL_OK);
    free(h.p);
    msg b2 = q_take(&l.q[0], 1);
    CHECK_EQ(shoal__session_recv(l.s[1], b2.p, b2.n, 0), SHOAL_EPROTO);
    free(b2.p);
    shoal__session_stats st;
    stats(&l, 1, &st);
    CHECK(st.failed);
    CHECK(strstr(shoal__session_failure(l.s[1]), "out of order") != NULL);
    CHECK_EQ(vv_of(&b, a.key), 0);
    link_down(&l);
    link_up(&l, true);
    pump(&l);
    CHECK(same_digests(&a, &b));
    stats(&l, 1, &st);
    CHECK(st.caught_up && !st.failed);
    link_down(&l);
    node_close(&a);
    node_close(&b);
}

static void
test_equivocation_notice(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    set_int(&a, "x", "f", 1);
    set_int(&a, "x", "f", 2);
    /* b claims a different change under (a, 2). */
    shoal__vventry e = { .seq = 2 };
    memcpy(e.author, a.key, 32);
    memset(e.cid, 0xee, 32);
    shoal__buf hb;
    shoal__buf_init(&hb);
    REQUIRE(shoal__wire_hello(&hb, b.key, &e, 1) == SHOAL_OK);
    shoal__session *s = shoal__session_new(&a.h, a.key, b.key);
    REQUIRE(s);
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_OK);
    CHECK_EQ(shoal__session_recv(s, hb.p, hb.len, 5), SHOAL_OK);
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    /* A claim is no evidence: not counted (a peer could inflate the count
     * at will), but it makes us send our version of (a, 2). */
    CHECK_EQ(st.equivocations, 0);
    CHECK_EQ(st.last_recv_ms, 5);
    CHECK(!st.failed);
    const uint8_t *f;
    size_t fl;
    uint64_t batches = 0;
    while (shoal__session_next(s, &f, &fl) == 1)
        if (fl > 1 && f[1] == SHOAL__F_BATCH)
            batches++;
    CHECK_EQ(batches, 1);
    /* Nor does an ACK with a false id (for a's change 1 this time). */
    shoal_import_result ares = { 0 };
    for (uint64_t k = 1; k <= batches; k++) {
        shoal__vventry lie = e;
        lie.seq = 1;
        memset(lie.cid, 0xd0, 32);
        hb.len = 0;
        REQUIRE(shoal__wire_ack(&hb, k, &ares, &lie, 1) == SHOAL_OK);
        CHECK_EQ(shoal__session_recv(s, hb.p, hb.len, 6), SHOAL_OK);
    }
    shoal__session_get_stats(s, &st);
    CHECK_EQ(st.equivocations, 0);
    CHECK(!st.failed);
    /* The right id is no notice. */
    shoal__session_free(s);
    uint8_t cid[32];
    CHECK_EQ(a.h.authseq(a.h.ctx, a.key, 2, cid), SHOAL_OK);
    memcpy(e.cid, cid, 32);
    hb.len = 0;
    REQUIRE(shoal__wire_hello(&hb, b.key, &e, 1) == SHOAL_OK);
    s = shoal__session_new(&a.h, a.key, b.key);
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_OK);
    CHECK_EQ(shoal__session_recv(s, hb.p, hb.len, 5), SHOAL_OK);
    shoal__session_get_stats(s, &st);
    CHECK_EQ(st.equivocations, 0);
    CHECK_EQ(st.lag, 0); /* b holds a's 2 changes */
    shoal__session_free(s);
    CHECK_EQ(a.h.authseq(a.h.ctx, a.key, 3, cid), SHOAL_ENOTFOUND);
    shoal__buf_free(&hb);
    node_close(&a);
    node_close(&b);
}

/* A host that counts the store lookups a session makes. */
typedef struct counting {
    const shoal__host *inner;
    uint64_t authseq_calls;
} counting;

static int
cnt_version(void *ctx, shoal__vventry **out, size_t *n)
{
    counting *c = ctx;
    return c->inner->version(c->inner->ctx, out, n);
}

static int
cnt_next(void *ctx, uint64_t *cursor, const shoal__vventry *peer, size_t npeer, size_t max_changes,
         size_t max_bytes, shoal__buf *out, size_t *count)
{
    counting *c = ctx;
    return c->inner->next_changes(c->inner->ctx, cursor, peer, npeer, max_changes, max_bytes, out,
                                  count);
}

static int
cnt_apply(void *ctx, const uint8_t *p, size_t len, size_t count, shoal_import_result *res)
{
    counting *c = ctx;
    return c->inner->apply(c->inner->ctx, p, len, count, res);
}

static int
cnt_authseq(void *ctx, const uint8_t author[32], uint64_t seq, uint8_t cid[32])
{
    counting *c = ctx;
    c->authseq_calls++;
    return c->inner->authseq(c->inner->ctx, author, seq, cid);
}

static int
vv_entry_cmp(const void *x, const void *y)
{
    return memcmp(((const shoal__vventry *)x)->author, ((const shoal__vventry *)y)->author, 32);
}

/* n random entries (seq 1..1000), sorted by author, plus extra (if any). */
static shoal__vventry *
random_entries(size_t n, const shoal__vventry *extra)
{
    shoal__vventry *v = calloc(n + 1, sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            uint64_t x = check_rand();
            memcpy(v[i].author + 8 * k, &x, 8);
        }
        v[i].seq = 1 + check_rand_below(1000);
        memset(v[i].cid, 0x5a, 32);
    }
    if (extra)
        v[n] = *extra;
    qsort(v, n + (extra ? 1 : 0), sizeof *v, vv_entry_cmp);
    return v;
}

/* A peer may send a HELLO of a quarter of a million authors and then ACKs
 * of 256 new authors each.  Neither may cost store lookups per entry nor a
 * shift of the whole known vector per new author (O(n * k) per frame): the
 * ACKs below took seconds that way, and block the engine thread that serves
 * every other link. */
static void
test_huge_vv_cost(void)
{
    node a;
    REQUIRE(node_open(&a, "sess-a"));
    enum {
        NACK = 12,
        HELLO_N = 240000
    };
    for (int i = 0; i < NACK; i++)
        commit_many(&a, 17, 64000, i); /* 17 changes of 64 KB: at least one BATCH */
    uint64_t top = vv_of(&a, a.key);
    REQUIRE(top == NACK * 17);
    counting cnt = { .inner = &a.h };
    shoal__host h = { .ctx = &cnt,
                      .version = cnt_version,
                      .next_changes = cnt_next,
                      .apply = cnt_apply,
                      .authseq = cnt_authseq };
    uint8_t peer[32];
    for (int k = 0; k < 4; k++) {
        uint64_t x = check_rand();
        memcpy(peer + 8 * k, &x, 8);
    }
    /* The peer claims our change 1 under a wrong id: the one lookup. */
    shoal__vventry mine = { .seq = 1 };
    memcpy(mine.author, a.key, 32);
    memset(mine.cid, 0xee, 32);
    shoal__vventry *hv = random_entries(HELLO_N, &mine);
    REQUIRE(hv);
    shoal__buf fb;
    shoal__buf_init(&fb);
    REQUIRE(shoal__wire_hello(&fb, peer, hv, HELLO_N + 1) == SHOAL_OK);
    CHECK(fb.len <= SHOAL__MAX_FRAME);
    free(hv);
    shoal__session *s = shoal__session_new(&h, a.key, peer);
    REQUIRE(s);
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_OK);
    uint64_t t0 = check_now_ms();
    CHECK_EQ(shoal__session_recv(s, fb.p, fb.len, 1), SHOAL_OK);
    uint64_t t_hello = check_now_ms() - t0;
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    CHECK_EQ(st.equivocations, 0); /* a claim, not evidence */
    CHECK(cnt.authseq_calls <= 1);
    /* Our batches go out (nowhere); the peer ACKs each with 256 authors
     * it never had, and at the last one with our latest change. */
    uint64_t sent = 0, t_acks = 0;
    const uint8_t *f;
    size_t n;
    shoal_import_result res = { 0 };
    for (int round = 0; round < 64; round++) {
        uint64_t batch_n = sent;
        while (shoal__session_next(s, &f, &n) == 1)
            if (n > 1 && f[1] == SHOAL__F_BATCH)
                sent++;
        for (uint64_t k = batch_n + 1; k <= sent; k++) {
            shoal__vventry last = { .seq = top };
            memcpy(last.author, a.key, 32);
            uint8_t cid[32];
            CHECK_EQ(a.h.authseq(a.h.ctx, a.key, top, cid), SHOAL_OK);
            memcpy(last.cid, cid, 32);
            shoal__vventry *av = random_entries(SHOAL__BATCH_CHANGES - 1, k == NACK ? &last : NULL);
            REQUIRE(av);
            fb.len = 0;
            REQUIRE(shoal__wire_ack(&fb, k, &res, av, SHOAL__BATCH_CHANGES - (k == NACK ? 0 : 1)) ==
                    SHOAL_OK);
            free(av);
            t0 = check_now_ms();
            CHECK_EQ(shoal__session_recv(s, fb.p, fb.len, 2), SHOAL_OK);
            t_acks += check_now_ms() - t0;
        }
    }
    CHECK(sent >= NACK);
    shoal__session_get_stats(s, &st);
    CHECK(!st.failed);
    CHECK_EQ(st.lag, 0); /* found again in the grown vector */
    fprintf(stderr,
            "  HELLO of %d authors: %llu ms, %llu lookups; %d ACKs of 256 new authors: %llu ms\n",
            HELLO_N + 1, (unsigned long long)t_hello, (unsigned long long)cnt.authseq_calls, NACK,
            (unsigned long long)t_acks);
    CHECK(t_acks < 600);
    shoal__session_free(s);
    shoal__buf_free(&fb);
    node_close(&a);
}

/* A host over a fixed vector and a log with nothing new; counts version(). */
typedef struct fixed_host {
    shoal__vventry *vv;
    size_t n;
    uint64_t version_calls;
} fixed_host;

static int
fx_version(void *ctx, shoal__vventry **out, size_t *n)
{
    fixed_host *f = ctx;
    f->version_calls++;
    *out = shoal__malloc(f->n * sizeof **out);
    if (!*out)
        return SHOAL_ENOMEM;
    memcpy(*out, f->vv, f->n * sizeof **out);
    *n = f->n;
    return SHOAL_OK;
}

static int
fx_next(void *ctx, uint64_t *cursor, const shoal__vventry *peer, size_t npeer, size_t max_changes,
        size_t max_bytes, shoal__buf *out, size_t *count)
{
    (void)ctx, (void)cursor, (void)peer, (void)npeer, (void)max_changes, (void)max_bytes, (void)out;
    *count = 0;
    return SHOAL_OK;
}

static int
fx_apply(void *ctx, const uint8_t *p, size_t len, size_t count, shoal_import_result *res)
{
    (void)ctx, (void)p, (void)len, (void)count, (void)res;
    return SHOAL_EPROTO;
}

static int
fx_authseq(void *ctx, const uint8_t author[32], uint64_t seq, uint8_t cid[32])
{
    (void)ctx, (void)author, (void)seq, (void)cid;
    return SHOAL_ENOTFOUND;
}

/* The engine says "changed" to every session on every commit and every
 * 250 ms, and folds every session's stats after every frame.  For an idle
 * session with nothing new in the log that must cost neither a re-read of
 * our whole version vector nor an O(n log n) pass over the vectors. */
/* A host whose store fails (disk full) on every apply; otherwise the
 * counting host's. */
static int
full_apply(void *ctx, const uint8_t *p, size_t len, size_t count, shoal_import_result *res)
{
    (void)ctx, (void)p, (void)len, (void)count, (void)res;
    return SHOAL_ENOSPC;
}

/* b's session, after a's HELLO, receives frame (a raw ERROR from a):
 * returns what the receive gave, and the failure text in why. */
static int
peer_error(node *a, node *b, const uint8_t *frame, size_t n, char *why, size_t whylen)
{
    shoal__session *s = shoal__session_new(&b->h, b->key, a->key);
    CHECK(s != NULL);
    if (!s)
        return -1;
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_OK);
    const uint8_t *f;
    size_t fn;
    while (shoal__session_next(s, &f, &fn) == 1)
        ;
    shoal__buf hb;
    shoal__buf_init(&hb);
    CHECK_EQ(shoal__wire_hello(&hb, a->key, NULL, 0), SHOAL_OK);
    CHECK_EQ(shoal__session_recv(s, hb.p, hb.len, 0), SHOAL_OK);
    shoal__buf_free(&hb);
    while (shoal__session_next(s, &f, &fn) == 1)
        ;
    int got = shoal__session_recv(s, frame, n, 0);
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    CHECK(st.failed);
    CHECK_EQ(st.error, got);
    CHECK_EQ(shoal__session_recv(s, frame, n, 0), got); /* sticky */
    CHECK_EQ(shoal__session_next(s, &f, &fn), 0);       /* no ERROR answers an ERROR */
    snprintf(why, whylen, "%s", shoal__session_failure(s));
    shoal__session_free(s);
    return got;
}

/* A peer's ERROR frame: a code that is one of shoal_err's error codes comes
 * through to the caller; any other number (SHOAL_OK included) is
 * SHOAL_EPROTO, with the number kept in the failure text (docs/protocol.md,
 * "Receiving ERROR"). */
static void
test_peer_error_code(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    char why[256];
    /* [4, 200, "gone"]: 200 is no shoal_err. */
    const uint8_t e200[] = { 0x93, 0x04, 0xcc, 0xc8, 0xa4, 'g', 'o', 'n', 'e' };
    CHECK_EQ(peer_error(&a, &b, e200, sizeof e200, why, sizeof why), SHOAL_EPROTO);
    CHECK(strstr(why, "peer: gone") != NULL && strstr(why, "200") != NULL);
    /* [4, 16, "gone"]: SHOAL_ETOOBIG comes through. */
    const uint8_t e16[] = { 0x93, 0x04, 0x10, 0xa4, 'g', 'o', 'n', 'e' };
    CHECK_EQ(peer_error(&a, &b, e16, sizeof e16, why, sizeof why), SHOAL_ETOOBIG);
    CHECK(strcmp(why, "peer: gone") == 0);
    /* The edges: 0 (SHOAL_OK), 1 and 21 (the first and last codes), 22,
     * 256 and 2^32 + 16 (16 in its low bits). */
    const struct {
        uint8_t f[12];
        size_t n;
        int want;
    } v[] = {
        { { 0x93, 0x04, 0x00, 0xa0 }, 4, SHOAL_EPROTO },
        { { 0x93, 0x04, 0x01, 0xa0 }, 4, SHOAL_ENOMEM },
        { { 0x93, 0x04, 0x14, 0xa0 }, 4, SHOAL_EREFUSED },
        { { 0x93, 0x04, 0x15, 0xa0 }, 4, SHOAL_EPERM },
        { { 0x93, 0x04, 0x16, 0xa0 }, 4, SHOAL_EPROTO },
        { { 0x93, 0x04, 0xcd, 0x01, 0x00, 0xa0 }, 6, SHOAL_EPROTO },
        { { 0x93, 0x04, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0x10, 0xa0 }, 12, SHOAL_EPROTO },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        CHECK_EQ(peer_error(&a, &b, v[i].f, v[i].n, why, sizeof why), v[i].want);
    node_close(&a);
    node_close(&b);
}

/* Our own trouble is not the peer's: a batch we cannot store (disk full)
 * ends the session with an ERROR naming it, but the peer's input is not
 * counted as rejected; a forged batch still is (test_forged_and_replay). */
static void
test_local_store_error(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    for (int i = 0; i < 3; i++)
        set_int(&a, "x", "f", i);
    shoal__buf fr;
    shoal__buf_init(&fr);
    size_t count = 0, elen = 0;
    uint8_t *envs = NULL;
    batch_of(&a, 1, &fr, &count, &envs, &elen);
    REQUIRE(count == 3);
    counting fh = { .inner = &b.h };
    shoal__host h = { .ctx = &fh,
                      .version = cnt_version,
                      .next_changes = cnt_next,
                      .apply = full_apply,
                      .authseq = cnt_authseq };
    shoal__session *s = shoal__session_new(&h, b.key, a.key);
    REQUIRE(s);
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_OK);
    const uint8_t *f;
    size_t fn;
    while (shoal__session_next(s, &f, &fn) == 1)
        ;
    shoal__buf hb;
    shoal__buf_init(&hb);
    REQUIRE(shoal__wire_hello(&hb, a.key, NULL, 0) == SHOAL_OK);
    CHECK_EQ(shoal__session_recv(s, hb.p, hb.len, 0), SHOAL_OK);
    while (shoal__session_next(s, &f, &fn) == 1)
        ;
    CHECK_EQ(shoal__session_recv(s, fr.p, fr.len, 0), SHOAL_ENOSPC);
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    CHECK(st.failed);
    CHECK_EQ(st.error, SHOAL_ENOSPC);
    CHECK_EQ(st.rejected, 0);
    CHECK(strstr(shoal__session_failure(s), "cannot store") != NULL);
    REQUIRE(shoal__session_next(s, &f, &fn) == 1);
    shoal__frame ef;
    REQUIRE(shoal__frame_decode(f, fn, &ef) == SHOAL_OK);
    CHECK_EQ(ef.type, SHOAL__F_ERROR);
    CHECK_EQ(ef.code, SHOAL_ENOSPC);
    shoal__frame_clear(&ef);
    CHECK_EQ(vv_of(&b, a.key), 0);
    shoal__session_free(s);

    /* A version vector too large for one HELLO frame (about 70 bytes an
     * author against SHOAL__MAX_FRAME): refused when encoding, and a
     * session over it fails at start, locally, with no frame sent. */
    enum {
        N = 300000
    };
    shoal__vventry *big = random_entries(N, NULL);
    REQUIRE(big);
    hb.len = 0;
    CHECK_EQ(shoal__wire_hello(&hb, a.key, big, N), SHOAL_ETOOBIG);
    CHECK_EQ(hb.len, 0);
    fixed_host fx = { .vv = big, .n = N };
    shoal__host hx = { .ctx = &fx,
                       .version = fx_version,
                       .next_changes = fx_next,
                       .apply = fx_apply,
                       .authseq = fx_authseq };
    s = shoal__session_new(&hx, b.key, a.key);
    REQUIRE(s);
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_ETOOBIG);
    shoal__session_get_stats(s, &st);
    CHECK(st.failed);
    CHECK_EQ(st.rejected, 0);
    CHECK(strstr(shoal__session_failure(s), "HELLO") != NULL);
    CHECK_EQ(shoal__session_next(s, &f, &fn), 0);
    shoal__session_free(s);
    free(big);

    shoal__buf_free(&hb);
    shoal__buf_free(&fr);
    shoal__free(envs);
    node_close(&a);
    node_close(&b);
}

static void
test_idle_session_cost(void)
{
    enum {
        N = 200000,
        ROUNDS = 50
    };
    fixed_host fx = { .vv = random_entries(N, NULL), .n = N };
    REQUIRE(fx.vv);
    shoal__host h = { .ctx = &fx,
                      .version = fx_version,
                      .next_changes = fx_next,
                      .apply = fx_apply,
                      .authseq = fx_authseq };
    uint8_t self[32], peer[32];
    memset(self, 1, 32);
    memset(peer, 2, 32);
    shoal__session *s = shoal__session_new(&h, self, peer);
    REQUIRE(s);
    CHECK_EQ(shoal__session_start(s, 0), SHOAL_OK);
    const uint8_t *f;
    size_t n;
    CHECK_EQ(shoal__session_next(s, &f, &n), 1); /* our HELLO */
    shoal__buf hb;
    shoal__buf_init(&hb);
    REQUIRE(shoal__wire_hello(&hb, peer, fx.vv, N) == SHOAL_OK);
    CHECK_EQ(shoal__session_recv(s, hb.p, hb.len, 1), SHOAL_OK);
    shoal__buf_free(&hb);
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    CHECK(st.handshaken && st.caught_up && !st.failed);
    CHECK_EQ(st.lag, 0);
    uint64_t calls0 = fx.version_calls;
    uint64_t t0 = check_now_ms();
    for (int i = 0; i < ROUNDS; i++) {
        shoal__session_changed(s);
        CHECK_EQ(shoal__session_next(s, &f, &n), 0);
        shoal__session_get_stats(s, &st);
    }
    uint64_t took = check_now_ms() - t0;
    fprintf(stderr, "  %d idle rounds over %d authors: %llu vector reads, %llu ms\n", ROUNDS, N,
            (unsigned long long)(fx.version_calls - calls0), (unsigned long long)took);
    CHECK_EQ(fx.version_calls - calls0, 0);
    CHECK(took < 300);
    CHECK(st.caught_up && st.lag == 0 && !st.failed);
    shoal__session_free(s);
    free(fx.vv);
}

/* A host that records how far each next_changes call moves the cursor:
 * the contract moves it past every log position examined, so the largest
 * step is the most one call walked under the replica's lock. */
typedef struct scanning {
    const shoal__host *inner;
    uint64_t calls;
    uint64_t max_step;
} scanning;

static int
scan_version(void *ctx, shoal__vventry **out, size_t *n)
{
    scanning *c = ctx;
    return c->inner->version(c->inner->ctx, out, n);
}

static int
scan_next(void *ctx, uint64_t *cursor, const shoal__vventry *peer, size_t npeer, size_t max_changes,
          size_t max_bytes, shoal__buf *out, size_t *count)
{
    scanning *c = ctx;
    uint64_t from = *cursor;
    int err = c->inner->next_changes(c->inner->ctx, cursor, peer, npeer, max_changes, max_bytes,
                                     out, count);
    c->calls++;
    /* Log positions start at 1: from a cursor of 0, position 0 is no
     * position examined. */
    uint64_t start = from ? from : 1;
    uint64_t step = *cursor > start ? *cursor - start : 0;
    if (step > c->max_step)
        c->max_step = step;
    return err;
}

static int
scan_apply(void *ctx, const uint8_t *p, size_t len, size_t count, shoal_import_result *res)
{
    scanning *c = ctx;
    return c->inner->apply(c->inner->ctx, p, len, count, res);
}

static int
scan_authseq(void *ctx, const uint8_t author[32], uint64_t seq, uint8_t cid[32])
{
    scanning *c = ctx;
    return c->inner->authseq(c->inner->ctx, author, seq, cid);
}

/* A new session with a peer that already holds a long log: no host call
 * walks more than SHOAL__HOST_SCAN positions (the replica's lock is held
 * for one call), and the calls that find nothing still carry the walk to
 * the change the peer lacks at the very end, within the same pump (no
 * later wake-up of the session). */
static void
test_bounded_scan(void)
{
    enum {
        TXNS = 20,
        PER_TXN = 1000,
        TOTAL = TXNS * PER_TXN
    };
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    for (int i = 0; i < TXNS; i++)
        commit_many(&a, PER_TXN, 0, i);
    REQUIRE(vv_of(&a, a.key) == TOTAL);
    uint8_t *bundle = NULL;
    size_t blen = 0;
    REQUIRE(shoal_export(a.r, NULL, &bundle, &blen) == SHOAL_OK);
    shoal_import_result res;
    REQUIRE(shoal_import(b.r, bundle, blen, &res) == SHOAL_OK);
    shoal_free(bundle);
    REQUIRE(vv_of(&b, a.key) == TOTAL);
    /* One change each side lacks, after the whole shared log. */
    set_int(&a, "late-a", "f", 1);
    set_int(&b, "late-b", "f", 2);

    scanning sa = { .inner = &a.h }, sb = { .inner = &b.h };
    shoal__host ha = { .ctx = &sa,
                       .version = scan_version,
                       .next_changes = scan_next,
                       .apply = scan_apply,
                       .authseq = scan_authseq };
    shoal__host hb = ha;
    hb.ctx = &sb;
    node wa = a, wb = b; /* the same replicas behind the scanning hosts */
    wa.h = ha;
    wb.h = hb;
    link_t l = { .n = { &wa, &wb } };
    link_up(&l, true);
    pump(&l);
    shoal__session_stats st0, st1;
    stats(&l, 0, &st0);
    stats(&l, 1, &st1);
    CHECK(st0.caught_up && st1.caught_up);
    CHECK(!st0.failed && !st1.failed);
    CHECK_EQ(st0.sent, 1);
    CHECK_EQ(st1.sent, 1);
    CHECK_EQ(vv_of(&b, a.key), TOTAL + 1);
    CHECK_EQ(vv_of(&a, b.key), 1);
    CHECK(same_digests(&a, &b));
    fprintf(stderr, "  log of %d held by the peer: %llu / %llu host calls, largest step %llu\n",
            TOTAL + 2, (unsigned long long)sa.calls, (unsigned long long)sb.calls,
            (unsigned long long)(sa.max_step > sb.max_step ? sa.max_step : sb.max_step));
    CHECK(sa.max_step <= SHOAL__HOST_SCAN);
    CHECK(sb.max_step <= SHOAL__HOST_SCAN);
    CHECK(sa.calls >= TOTAL / SHOAL__HOST_SCAN);
    CHECK(sb.calls >= TOTAL / SHOAL__HOST_SCAN);
    /* Live push still works after the walk. */
    set_int(&a, "later", "f", 3);
    shoal__session_changed(l.s[0]);
    pump(&l);
    CHECK_EQ(vv_of(&b, a.key), TOTAL + 2);
    link_down(&l);
    node_close(&a);
    node_close(&b);
}

/* ---------------------------------------------------------- equivocation */

/* An equivocating author: a seeded key and its signed changes. */
typedef struct xauth {
    uint8_t pk[32], sk[64];
} xauth;

static void
xauth_make(xauth *x)
{
    uint8_t seed[32];
    for (size_t i = 0; i < 32; i += 8) {
        uint64_t r = check_rand();
        memcpy(seed + i, &r, 8);
    }
    crypto_sign_seed_keypair(x->pk, x->sk, seed);
}

/* A bundle of one change by x on (c, doc): seq, hlc, deps (0 or 1), an
 * insert at the head of list "l" and a set of "a" to val. */
static void
xchange(shoal__buf *bundle, uint8_t id[32], const xauth *x, uint64_t seq, uint64_t hlc,
        const uint8_t *dep, const char *doc, const char *val)
{
    shoal__op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].kind = SHOAL__OP_INS;
    ops[0].field = (const uint8_t *)"l";
    ops[0].field_len = 1;
    ops[0].ref.head = true;
    ops[0].value.type = SHOAL_T_STR;
    ops[0].value.ptr = (const uint8_t *)val;
    ops[0].value.len = strlen(val);
    ops[1].kind = SHOAL__OP_SET;
    ops[1].field = (const uint8_t *)"a";
    ops[1].field_len = 1;
    ops[1].value = ops[0].value;
    shoal__change c;
    memset(&c, 0, sizeof c);
    memcpy(c.author, x->pk, 32);
    c.seq = seq;
    c.hlc = hlc;
    c.deps = dep;
    c.ndeps = dep ? 1 : 0;
    c.coll = (const uint8_t *)"c";
    c.coll_len = 1;
    c.doc = (const uint8_t *)doc;
    c.doc_len = strlen(doc);
    c.ops = ops;
    c.nops = 2;
    shoal__buf body, env;
    shoal__buf_init(&body);
    shoal__buf_init(&env);
    shoal__buf_init(bundle);
    CHECK_EQ(shoal__change_encode(&c, &body), SHOAL_OK);
    CHECK_EQ(shoal__envelope_seal(body.p, body.len, x->pk, x->sk, &env), SHOAL_OK);
    shoal__change_id(env.p, env.len, id);
    shoal__bundle_begin(bundle);
    shoal__bundle_add(bundle, env.p, env.len);
    shoal__bundle_finish(bundle, 1);
    shoal__buf_free(&body);
    shoal__buf_free(&env);
}

static bool
has_equivocator(node *n, const xauth *x)
{
    char hex[65];
    shoal__hex(hex, x->pk, 32);
    shoal_strlist *l;
    if (shoal_equivocators(n->r, &l) != SHOAL_OK)
        return false;
    bool ok = false;
    for (size_t i = 0; i < shoal_strlist_count(l); i++)
        ok |= strcmp(shoal_strlist_get(l, i), hex) == 0;
    shoal_strlist_free(l);
    return ok;
}

/* Pump every link (telling every session of a node that received
 * something), until nothing moves. */
static void
pump_all(link_t *ls, size_t nl)
{
    for (int round = 0; round < 1000; round++) {
        int moved = 0;
        for (size_t i = 0; i < nl; i++)
            moved += pump(&ls[i]);
        for (size_t i = 0; i < nl; i++)
            for (int j = 0; j < 2; j++)
                shoal__session_changed(ls[i].s[j]);
        for (size_t i = 0; i < nl; i++)
            moved += pump(&ls[i]);
        if (moved == 0)
            return;
    }
    check_failures++;
    fprintf(stderr, "pump_all: no quiescence\n");
}

/* A and B hold different versions of X@2 and honest local changes built
 * on them; R holds nothing.  A - R - B: after the sessions run, all three
 * have equal digests, nothing pending, and know X as an equivocator; every
 * session is caught up.  Then a direct A - B link between two replicas
 * that disagree (a one-shot sync) gets caught up too. */
static void
test_equiv_relay(void)
{
    xauth x;
    xauth_make(&x);
    node a, r, b;
    REQUIRE(node_open(&a, "eq-a") && node_open(&r, "eq-r") && node_open(&b, "eq-b"));
    uint64_t h0 = shoal__hlc_make(a.ms - 1000, 0);
    shoal__buf x1, va, vb;
    uint8_t id1[32], ida[32], idb[32];
    xchange(&x1, id1, &x, 1, h0, NULL, "d", "x1");
    xchange(&va, ida, &x, 2, h0 + 5, id1, "d", "va");
    xchange(&vb, idb, &x, 2, h0 + 5, id1, "d", "vb");
    shoal_import_result res;
    CHECK_EQ(shoal_import(a.r, x1.p, x1.len, &res), SHOAL_OK);
    CHECK_EQ(shoal_import(b.r, x1.p, x1.len, &res), SHOAL_OK);
    CHECK_EQ(shoal_import(a.r, va.p, va.len, &res), SHOAL_OK);
    CHECK_EQ(shoal_import(b.r, vb.p, vb.len, &res), SHOAL_OK);
    /* Honest follow-ups on each side: list edits relative to X's elements
     * (the version's element first), a counter, a set. */
    for (int side = 0; side < 2; side++) {
        node *n = side ? &b : &a;
        shoal_txn *t;
        shoal_value v = { .type = SHOAL_T_INT, .i = side };
        REQUIRE(shoal_txn_begin(n->r, &t) == SHOAL_OK);
        CHECK_EQ(shoal_txn_list_insert(t, "c", "d", "l", 1, &v), SHOAL_OK);
        CHECK_EQ(shoal_txn_list_replace(t, "c", "d", "l", 0, &v), SHOAL_OK);
        CHECK_EQ(shoal_txn_counter_add(t, "c", "d", "n", 3 + side), SHOAL_OK);
        CHECK_EQ(shoal_txn_commit(t), SHOAL_OK);
        set_int(n, "d", side ? "fb" : "fa", 7);
    }
    link_t ls[2];
    memset(ls, 0, sizeof ls);
    ls[0].n[0] = &a;
    ls[0].n[1] = &r;
    ls[1].n[0] = &r;
    ls[1].n[1] = &b;
    link_up(&ls[0], true);
    link_up(&ls[1], true);
    pump_all(ls, 2);
    CHECK(same_digests(&a, &r) && same_digests(&a, &b));
    CHECK(pending(&a) == 0 && pending(&r) == 0 && pending(&b) == 0);
    CHECK(has_equivocator(&a, &x) && has_equivocator(&r, &x) && has_equivocator(&b, &x));
    CHECK_EQ(vv_of(&r, a.key), 2);
    CHECK_EQ(vv_of(&r, b.key), 2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            shoal__session_stats st;
            stats(&ls[i], j, &st);
            CHECK(st.caught_up && !st.failed);
        }
    /* A replay of every batch a fresh session sends (versions, evidence,
     * changes) is a duplicate no-op. */
    uint8_t before[SHOAL_DIGEST_BYTES], after[SHOAL_DIGEST_BYTES];
    digest(&r, true, before);
    link_down(&ls[0]);
    link_down(&ls[1]);
    link_up(&ls[0], true);
    pump(&ls[0]);
    digest(&r, true, after);
    CHECK(memcmp(before, after, sizeof before) == 0);
    link_down(&ls[0]);
    node_close(&r);

    /* Direct: two replicas that disagree on X@2 (and on X@3 built on it)
     * catch up with each other in one link. */
    node c, d;
    REQUIRE(node_open(&c, "eq-c") && node_open(&d, "eq-d"));
    shoal__buf c3, d3;
    uint8_t idc3[32], idd3[32];
    xchange(&c3, idc3, &x, 3, h0 + 9, ida, "e", "c3");
    xchange(&d3, idd3, &x, 3, h0 + 9, idb, "e", "d3");
    shoal__buf *cs[] = { &x1, &va, &c3 }, *ds[] = { &x1, &vb, &d3 };
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(shoal_import(c.r, cs[i]->p, cs[i]->len, NULL), SHOAL_OK);
        CHECK_EQ(shoal_import(d.r, ds[i]->p, ds[i]->len, NULL), SHOAL_OK);
    }
    set_int(&c, "e", "g", 1);
    set_int(&d, "e", "h", 2);
    link_t l1;
    memset(&l1, 0, sizeof l1);
    l1.n[0] = &c;
    l1.n[1] = &d;
    link_up(&l1, true);
    pump_all(&l1, 1);
    for (int j = 0; j < 2; j++) {
        shoal__session_stats st;
        stats(&l1, j, &st);
        CHECK(st.caught_up && !st.failed);
        CHECK(st.equivocations >= 1);
    }
    CHECK(same_digests(&c, &d));
    CHECK(pending(&c) == 0 && pending(&d) == 0);
    link_down(&l1);
    node_close(&c);
    node_close(&d);
    node_close(&a);
    node_close(&b);
    shoal__buf_free(&x1);
    shoal__buf_free(&va);
    shoal__buf_free(&vb);
    shoal__buf_free(&c3);
    shoal__buf_free(&d3);
}

/* ------------------------------------------------------- fault simulation */

enum {
    NNODES = 4,
    NLINKS = 5,
    NDOCS = 4
};
static const int link_ends[NLINKS][2] = { { 0, 1 }, { 1, 2 }, { 2, 3 }, { 3, 0 }, { 0, 2 } };
static const char *docs[NDOCS] = { "d0", "d1", "d2", "d3" };
static const char *fields[] = { "a", "b", "n", "l", "m" };

static size_t
list_len(shoal_replica *r, const char *doc, const char *f)
{
    shoal_doc *d;
    size_t len = 0, i;
    if (shoal_doc_get(r, "c", doc, &d) != SHOAL_OK)
        return 0;
    if (shoal_doc_field_find(d, f, &i) != SHOAL_OK ||
        shoal_doc_field_list_len(d, i, &len) != SHOAL_OK)
        len = 0;
    shoal_doc_free(d);
    return len;
}

/* One random transaction of one edit of any kind (so list indexes are
 * read just before). */
static bool
random_edit(node *n)
{
    shoal_txn *t;
    if (shoal_txn_begin(n->r, &t) != SHOAL_OK)
        return false;
    const char *doc = docs[check_rand_below(NDOCS)];
    const char *f = fields[check_rand_below(5)];
    shoal_value v = { .type = SHOAL_T_INT, .i = (int64_t)check_rand_below(1000) };
    if (check_rand_below(3) == 0) {
        v.type = SHOAL_T_STR;
        v.ptr = (const uint8_t *)"text";
        v.len = 4;
    }
    unsigned what = (unsigned)check_rand_below(100);
    size_t len = list_len(n->r, doc, f);
    shoal_err err;
    if (what < 4)
        err = shoal_txn_delete(t, "c", doc);
    else if (what < 30)
        err = shoal_txn_set(t, "c", doc, f, &v);
    else if (what < 36)
        err = shoal_txn_unset(t, "c", doc, f);
    else if (what < 55)
        err = shoal_txn_counter_add(t, "c", doc, f, (int64_t)check_rand_below(21) - 10);
    else if (what < 80 || len == 0)
        err = shoal_txn_list_insert(t, "c", doc, f, check_rand_below(len + 1), &v);
    else if (what < 90)
        err = shoal_txn_list_remove(t, "c", doc, f, check_rand_below(len));
    else
        err = shoal_txn_list_replace(t, "c", doc, f, check_rand_below(len), &v);
    if (err) {
        shoal_txn_abort(t);
        return false;
    }
    err = shoal_txn_commit(t);
    if (err == SHOAL_OK) {
        /* The author's seq after the commit: every change up to it must
         * reach every replica (a no-op commit, e.g. adding 0, makes none). */
        n->commits = vv_of(n, n->key);
        return true;
    }
    if (err != SHOAL_EKIND && err != SHOAL_ERANGE) {
        fprintf(stderr, "commit: %s\n", shoal_strerror(err));
        check_failures++;
    }
    return false;
}

typedef struct sim {
    node n[NNODES];
    link_t l[NLINKS];
    uint64_t drops, dups, reorders, cuts, fails;
    bool equiv; /* this seed has an equivocating author */
    xauth x;
    shoal__buf xv[4]; /* X@1, then three versions of X@2 */
    bool xused[4];
} sim;

/* The node's log grew: every live session of it may push (what the
 * engine does on shoal__net_notify and after a local commit). */
static void
notify(sim *w, node *n)
{
    for (int i = 0; i < NLINKS; i++)
        for (int j = 0; j < 2; j++)
            if (w->l[i].up && w->l[i].n[j] == n)
                shoal__session_changed(w->l[i].s[j]);
}

/* One step of link l: collect frames, deliver some, with faults when
 * faults is set.  Returns frames moved. */
static int
link_step(sim *w, link_t *l, bool faults)
{
    if (!l->up) {
        if (--l->timer <= 0)
            link_up(l, true);
        return 1;
    }
    int moved = 0;
    for (int i = 0; i < 2; i++) {
        const uint8_t *f;
        size_t n;
        /* Under faults a side sends only some of what it could (a busy
         * engine); the rest waits for a later step. */
        int budget = faults ? (int)check_rand_below(4) : 1 << 30;
        while (budget-- > 0 && shoal__session_next(l->s[i], &f, &n) == 1) {
            int hold = faults && check_rand_below(4) == 0 ? (int)check_rand_below(6) : 0;
            q_add(&l->q[i], f, n, hold);
            moved++;
        }
    }
    for (int i = 0; i < 2; i++) {
        queue *q = &l->q[i];
        for (size_t k = 0; k < q->n; k++)
            if (q->m[k].hold > 0)
                q->m[k].hold--;
        if (faults && q->n >= 2 && check_rand_below(40) == 0) {
            size_t x = check_rand_below(q->n - 1);
            msg t = q->m[x];
            q->m[x] = q->m[x + 1];
            q->m[x + 1] = t;
            w->reorders++;
            l->tainted = true;
        }
        /* In order: a held frame holds back the ones behind it (a delay). */
        size_t budget = faults ? 1 + check_rand_below(3) : q->n;
        while (q->n && budget-- && q->m[0].hold == 0) {
            msg m = q_take(q, 0);
            node *to = l->n[1 - i];
            unsigned r = faults ? (unsigned)check_rand_below(100) : 100;
            if (r < 2) {
                w->drops++;
                l->damaged = l->tainted = true;
                if (l->timer <= 0)
                    l->timer = 5 + (int)check_rand_below(20);
            } else {
                int times = r < 4 ? 2 : 1;
                if (times == 2) {
                    w->dups++;
                    l->tainted = true;
                }
                for (int t = 0; t < times; t++)
                    (void)shoal__session_recv(l->s[1 - i], m.p, m.n, to->ms);
                notify(w, to);
            }
            free(m.p);
            moved++;
        }
        moved += (int)q->n; /* held frames: not quiet yet */
    }
    shoal__session_stats a, b;
    stats(l, 0, &a);
    stats(l, 1, &b);
    if (a.failed || b.failed) {
        /* The link resets (the engine reconnects).  Only damage may fail
         * a session: delays and cuts alone never do. */
        if (!l->tainted) {
            fprintf(stderr, "session failed on an undamaged link: %s / %s\n",
                    shoal__session_failure(l->s[0]), shoal__session_failure(l->s[1]));
            check_failures++;
        }
        w->fails++;
        link_down(l);
        l->timer = 1 + (int)(faults ? check_rand_below(5) : 0);
        return moved + 1;
    }
    if (l->damaged && --l->timer <= 0) {
        /* Heartbeat timeout: the link is declared dead and reconnects. */
        link_down(l);
        l->timer = 1;
        return moved + 1;
    }
    return moved;
}

static bool
sim_run(uint64_t seed, int steps)
{
    int before = check_failures;
    check_rand_reseed(seed);
    sim *w = calloc(1, sizeof *w);
    for (int i = 0; i < NNODES; i++) {
        if (!node_open(&w->n[i], "sim")) {
            check_failures++;
            goto out;
        }
        w->n[i].ms += check_rand_below(2000); /* some clock skew */
    }
    /* In odd seeds one replica starts with a backlog of more than
     * SHOAL__WINDOW full batches, so catch-up fills the window under
     * faults. */
    if (seed & 1) {
        node *n = &w->n[check_rand_below(NNODES)];
        for (int i = 0; i < 40; i++)
            commit_many(n, 30, 0, i);
        n->commits = vv_of(n, n->key);
    }
    w->equiv = seed % 3 == 0;
    if (w->equiv) {
        xauth_make(&w->x);
        uint64_t h0 = shoal__hlc_make(w->n[0].ms - 5000, 0);
        uint8_t id1[32], id[32];
        xchange(&w->xv[0], id1, &w->x, 1, h0, NULL, docs[0], "x1");
        const char *vals[] = { "p", "q", "r" };
        for (int i = 0; i < 3; i++)
            xchange(&w->xv[1 + i], id, &w->x, 2, h0 + 1 + (uint64_t)i, id1, docs[0], vals[i]);
        for (int i = 0; i < NNODES; i++)
            CHECK_EQ(shoal_import(w->n[i].r, w->xv[0].p, w->xv[0].len, NULL), SHOAL_OK);
    }
    for (int i = 0; i < NLINKS; i++) {
        w->l[i].n[0] = &w->n[link_ends[i][0]];
        w->l[i].n[1] = &w->n[link_ends[i][1]];
        link_up(&w->l[i], true);
    }
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < NNODES; i++)
            w->n[i].ms += check_rand_below(30);
        unsigned what = (unsigned)check_rand_below(100);
        if (w->equiv && what >= 98) {
            /* X hands one of its versions of seq 2 to some replica. */
            int v = 1 + (int)check_rand_below(3);
            node *n = &w->n[check_rand_below(NNODES)];
            CHECK_EQ(shoal_import(n->r, w->xv[v].p, w->xv[v].len, NULL), SHOAL_OK);
            w->xused[v] = true;
            notify(w, n);
        } else if (what < 35) {
            node *n = &w->n[check_rand_below(NNODES)];
            if (random_edit(n))
                notify(w, n);
        } else if (what < 38) {
            link_t *l = &w->l[check_rand_below(NLINKS)];
            if (l->up) {
                link_down(l);
                l->timer = 1 + (int)check_rand_below(40);
                w->cuts++;
            }
        } else {
            link_step(w, &w->l[check_rand_below(NLINKS)], true);
        }
    }
    /* Faults stop: every link comes up and stays up until quiescent. */
    for (int i = 0; i < NLINKS; i++)
        if (w->l[i].up && w->l[i].damaged) {
            link_down(&w->l[i]);
            link_up(&w->l[i], true);
        }
    int quiet = 0;
    for (int round = 0; round < 100000 && quiet < 2; round++) {
        int moved = 0;
        for (int i = 0; i < NLINKS; i++)
            moved += link_step(w, &w->l[i], false);
        quiet = moved ? 0 : quiet + 1;
    }

    CHECK(quiet >= 2);
    for (int i = 0; i < NLINKS; i++) {
        shoal__session_stats st;
        CHECK(w->l[i].up);
        if (!w->l[i].up)
            continue;
        for (int j = 0; j < 2; j++) {
            stats(&w->l[i], j, &st);
            CHECK(!st.failed);
            CHECK(st.caught_up);
            CHECK_EQ(st.lag, 0);
            if (!w->equiv)
                CHECK_EQ(st.equivocations, 0);
        }
    }
    int nversions = 0;
    for (int v = 1; v < 4; v++)
        nversions += w->xused[v];
    for (int i = 0; w->equiv && i < NNODES; i++) {
        CHECK_EQ(vv_of(&w->n[i], w->x.pk), nversions ? 2 : 1);
        if (nversions >= 2)
            CHECK(has_equivocator(&w->n[i], &w->x));
    }
    for (int i = 1; i < NNODES; i++)
        CHECK(same_digests(&w->n[0], &w->n[i]));
    for (int i = 0; i < NNODES; i++) {
        CHECK_EQ(pending(&w->n[i]), 0);
        /* Every local commit that returned OK is everywhere. */
        for (int j = 0; j < NNODES; j++)
            CHECK_EQ(vv_of(&w->n[i], w->n[j].key), w->n[j].commits);
    }
out:
    for (int i = 0; i < NLINKS; i++)
        if (w->l[i].up)
            link_down(&w->l[i]);
    bool ok = check_failures == before;
    if (!ok || getenv("SHOAL_SIM_VERBOSE"))
        fprintf(stderr,
                "sim seed %llu: %s (commits %llu %llu %llu %llu, drops %llu, dups %llu, "
                "reorders %llu, cuts %llu, session failures %llu%s)\n",
                (unsigned long long)seed, ok ? "ok" : "FAILED", (unsigned long long)w->n[0].commits,
                (unsigned long long)w->n[1].commits, (unsigned long long)w->n[2].commits,
                (unsigned long long)w->n[3].commits, (unsigned long long)w->drops,
                (unsigned long long)w->dups, (unsigned long long)w->reorders,
                (unsigned long long)w->cuts, (unsigned long long)w->fails,
                w->equiv ? ", equivocation" : "");
    for (int i = 0; i < NNODES; i++)
        node_close(&w->n[i]);
    for (int i = 0; i < 4; i++)
        if (w->equiv)
            shoal__buf_free(&w->xv[i]);
    free(w);
    return ok;
}

static void
test_fault_sim(void)
{
    uint64_t first = check_seed(1);
    long seeds = check_env_long("SHOAL_SIM_SEEDS", 20);
    long steps = check_env_long("SHOAL_SIM_STEPS", 1500);
    long bad = 0;
    for (long i = 0; i < seeds; i++)
        if (!sim_run(first + (uint64_t)i, (int)steps))
            bad++;
    if (bad)
        fprintf(stderr,
                "fault simulation: %ld of %ld seeds failed (rerun one with "
                "SHOAL_SEED=<seed> SHOAL_SIM_SEEDS=1)\n",
                bad, seeds);
}

/* ------------------------------------------------------- partial sync */

static bool
holds(node *n, const char *doc)
{
    shoal_doc *d = NULL;
    shoal_err e = shoal_doc_get(n->r, "c", doc, &d);
    shoal_doc_free(d);
    return e == SHOAL_OK;
}

/* Hand every frame side i can send now to the other side, once. */
static int
deliver(link_t *l, int i)
{
    int k = collect(l, i);
    while (l->q[i].n) {
        msg m = q_take(&l->q[i], 0);
        (void)shoal__session_recv(l->s[1 - i], m.p, m.n, l->n[1 - i]->ms);
        free(m.p);
    }
    return k;
}

/* A partial replica told LEAVE before it could send its own edit of the
 * document keeps the document (and the edit) until a full peer holds the
 * edit; then it evicts it.  The frames are ordered by hand so that LEAVE
 * arrives before the device sends anything but its HELLO. */
static void
test_partial_leave_waits_for_ack(void)
{
    node a, b;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b"));
    set_int(&a, "x", "store", 3);
    set_int(&a, "y", "store", 3);
    shoal_query *q;
    REQUIRE(shoal_query_new(b.r, "c", "store == 3", &q) == SHOAL_OK);
    CHECK_EQ(shoal_subscribe(b.r, "mine", q), SHOAL_OK);
    shoal_query_free(q);
    link_t l = { .n = { &a, &b } };
    link_up(&l, true);
    pump(&l);
    shoal__session_stats st;
    stats(&l, 1, &st);
    CHECK(st.caught_up);
    CHECK(holds(&b, "x") && holds(&b, "y"));
    link_down(&l);
    set_int(&b, "x", "note", 7);  /* the device's edit, offline */
    set_int(&a, "x", "store", 4); /* x leaves the device's view */
    link_up(&l, true);
    CHECK_EQ(deliver(&l, 1), 1); /* b's HELLO only (not handshaken yet) */
    CHECK(deliver(&l, 0) >= 2);  /* a's HELLO, then the LEAVE of x and COMPLETE */
    CHECK(holds(&b, "x"));       /* kept: the edit has not gone up */
    pump(&l);
    stats(&l, 1, &st);
    CHECK(st.caught_up);
    shoal_doc *d = NULL;
    size_t i;
    shoal_value v;
    CHECK_EQ(shoal_doc_get(a.r, "c", "x", &d), SHOAL_OK);
    CHECK(d && shoal_doc_field_find(d, "note", &i) == SHOAL_OK &&
          shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.i == 7);
    shoal_doc_free(d);
    CHECK(!holds(&b, "x")); /* acknowledged by a full peer: evicted */
    CHECK(holds(&b, "y"));
    link_down(&l);
    node_close(&a);
    node_close(&b);
}

/* A full replica says HELLO version 1, byte for byte as before partial
 * sync; a replica whose host has no partial sync support (as a build
 * before it) syncs with a new full replica, and answers a partial
 * replica's HELLO with SHOAL_EVERSION. */
static void
test_partial_versions(void)
{
    node a, b, c;
    REQUIRE(node_open(&a, "sess-a") && node_open(&b, "sess-b") && node_open(&c, "sess-c"));
    set_int(&a, "x", "store", 3);
    set_int(&b, "z", "store", 3);
    /* b plays the older build: no view support on its host. */
    b.h.view = NULL;
    link_t l = { .n = { &a, &b } };
    link_up(&l, true);
    const uint8_t *f;
    size_t n;
    REQUIRE(shoal__session_next(l.s[0], &f, &n) == 1);
    CHECK(n >= 3 && f[0] == 0x94 && f[1] == 0x01 && f[2] == 0x01);
    q_add(&l.q[0], f, n, 0);
    pump(&l);
    CHECK(same_digests(&a, &b));
    shoal__session_stats st;
    stats(&l, 0, &st);
    CHECK(st.caught_up);
    link_down(&l);
    /* A partial replica and the older build. */
    shoal_query *q;
    REQUIRE(shoal_query_new(c.r, "c", "store == 3", &q) == SHOAL_OK);
    CHECK_EQ(shoal_subscribe(c.r, "mine", q), SHOAL_OK);
    shoal_query_free(q);
    link_t m = { .n = { &c, &b } };
    link_up(&m, true);
    REQUIRE(shoal__session_next(m.s[0], &f, &n) == 1);
    CHECK(n >= 3 && f[0] == 0x96 && f[1] == 0x01 && f[2] == 0x02);
    q_add(&m.q[0], f, n, 0);
    pump(&m);
    stats(&m, 1, &st);
    CHECK(st.failed && st.error == SHOAL_EVERSION);
    stats(&m, 0, &st);
    CHECK(st.failed && st.error == SHOAL_EVERSION);
    link_down(&m);
    node_close(&a);
    node_close(&b);
    node_close(&c);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    check_seed(1);
    RUN(test_handshake);
    RUN(test_catchup_bounded);
    RUN(test_window);
    RUN(test_live_push);
    RUN(test_malformed);
    RUN(test_forged_and_replay);
    RUN(test_out_of_order);
    RUN(test_equivocation_notice);
    RUN(test_equiv_relay);
    RUN(test_huge_vv_cost);
    RUN(test_idle_session_cost);
    RUN(test_local_store_error);
    RUN(test_peer_error_code);
    RUN(test_bounded_scan);
    RUN(test_fault_sim);
    RUN(test_partial_leave_waits_for_ack);
    RUN(test_partial_versions);
    return check_summary();
}
