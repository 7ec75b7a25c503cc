/*
 * test/net/test_partial.c - partial sync (docs/sync.md) over real sockets
 * on 127.0.0.1 between real replicas in temporary directories: exact views,
 * documents moving in and out, eviction that never loses a write, deletes,
 * overlapping subscriptions, live links, and the HELLO of full replicas
 * staying version 1.
 *
 * A relay (a full replica listening) holds products over 10 stores and 4
 * categories; devices subscribe and sync with shoal_net_sync, then compare
 * what they hold with shoal_find on the relay.  Waits are bounded polls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "replica.h"
#include "shoal.h"

#define WAIT_MS 20000
#define SYNC_MS 30000

static int
env_docs(void)
{
    long n = check_env_long("SHOAL_PARTIAL_DOCS", 10000);
    return n < 40 ? 40 : (int)n;
}

static void
nap(void)
{
    struct timespec ts = { 0, 5 * 1000000 };
    nanosleep(&ts, NULL);
}

static void
quiet_log(void *ctx, int level, const char *msg)
{
    if (level <= SHOAL_LOG_ERROR || getenv("SHOAL_TEST_VERBOSE"))
        fprintf(stderr, "  [%s] %d %s\n", (const char *)ctx, level, msg);
}

static shoal_replica *
open_r(const char *dir, const char *name)
{
    shoal_options *o;
    if (shoal_options_new(&o) != SHOAL_OK)
        return NULL;
    shoal_options_set_log(o, quiet_log, (void *)name);
    shoal_options_set_durable(o, getenv("SHOAL_TEST_DURABLE") != NULL);
    shoal_replica *r = NULL;
    shoal_err err = shoal_replica_open(&r, dir, o);
    shoal_options_free(o);
    return err == SHOAL_OK ? r : NULL;
}

static void
print_problem(void *arg, const char *problem)
{
    (void)arg;
    fprintf(stderr, "  check: %s\n", problem);
}

static const char *const cats[] = { "a", "b", "c", "d" };

/* products p00000.. with store_id = i % 10, category = cats[(i / 10) % 4],
 * price = i % 97, in transactions of 500 documents. */
static bool
fill(shoal_replica *r, int n)
{
    for (int at = 0; at < n;) {
        shoal_txn *t;
        if (shoal_txn_begin(r, &t) != SHOAL_OK)
            return false;
        for (int k = 0; k < 500 && at < n; k++, at++) {
            char id[16];
            snprintf(id, sizeof id, "p%05d", at);
            shoal_value s = { .type = SHOAL_T_INT, .i = at % 10 };
            shoal_value c = { .type = SHOAL_T_STR,
                              .ptr = (const uint8_t *)cats[(at / 10) % 4],
                              .len = 1 };
            shoal_value p = { .type = SHOAL_T_INT, .i = at % 97 };
            if (shoal_txn_set(t, "products", id, "store_id", &s) != SHOAL_OK ||
                shoal_txn_set(t, "products", id, "category", &c) != SHOAL_OK ||
                shoal_txn_set(t, "products", id, "price", &p) != SHOAL_OK)
                return false;
        }
        if (shoal_txn_commit(t) != SHOAL_OK)
            return false;
    }
    return true;
}

static shoal_err
set_int(shoal_replica *r, const char *id, const char *field, int64_t v)
{
    shoal_txn *t;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e)
        return e;
    shoal_value x = { .type = SHOAL_T_INT, .i = v };
    e = shoal_txn_set(t, "products", id, field, &x);
    shoal_err c = shoal_txn_commit(t);
    return e ? e : c;
}

static shoal_err
del_doc(shoal_replica *r, const char *id)
{
    shoal_txn *t;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e)
        return e;
    e = shoal_txn_delete(t, "products", id);
    shoal_err c = shoal_txn_commit(t);
    return e ? e : c;
}

static shoal_err
subscribe(shoal_replica *r, const char *name, const char *where, const char *pname, int64_t pv)
{
    shoal_query *q;
    shoal_err e = shoal_query_new(r, "products", where, &q);
    if (e)
        return e;
    if (pname) {
        shoal_value v = { .type = SHOAL_T_INT, .i = pv };
        e = shoal_query_bind(q, pname, &v);
    }
    if (!e)
        e = shoal_subscribe(r, name, q);
    shoal_query_free(q);
    return e;
}

/* The ids of the live products matching where on r, sorted, one string
 * "id\n" after another (caller frees). */
static char *
ids_of(shoal_replica *r, const char *where, size_t *n)
{
    shoal_query *q;
    if (shoal_query_new(r, "products", where, &q) != SHOAL_OK)
        return NULL;
    shoal_rows *rows = NULL;
    shoal_err e = shoal_find(r, q, &rows);
    shoal_query_free(q);
    if (e)
        return NULL;
    size_t cnt = shoal_rows_count(rows);
    char *s = malloc(cnt * 16 + 1);
    size_t len = 0;
    for (size_t i = 0; s && i < cnt; i++)
        len += (size_t)sprintf(s + len, "%s\n", shoal_rows_id(rows, i));
    if (s)
        s[len] = 0;
    shoal_rows_free(rows);
    *n = cnt;
    return s;
}

static bool
same_ids(shoal_replica *dev, shoal_replica *relay, const char *where, size_t *held)
{
    size_t a = 0, b = 0;
    char *x = ids_of(dev, NULL, &a);
    char *y = ids_of(relay, where, &b);
    bool ok = x && y && a == b && strcmp(x, y) == 0;
    if (!ok)
        fprintf(stderr, "  device holds %zu, relay matches %zu for %s\n", a, b, where);
    if (held)
        *held = a;
    free(x);
    free(y);
    return ok;
}

static bool
has_doc(shoal_replica *r, const char *id)
{
    shoal_doc *d = NULL;
    shoal_err e = shoal_doc_get(r, "products", id, &d);
    shoal_doc_free(d);
    return e == SHOAL_OK;
}

static int64_t
int_field(shoal_replica *r, const char *id, const char *field)
{
    shoal_doc *d = NULL;
    int64_t out = -1;
    size_t i;
    shoal_value v;
    if (shoal_doc_get(r, "products", id, &d) == SHOAL_OK &&
        shoal_doc_field_find(d, field, &i) == SHOAL_OK &&
        shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_INT)
        out = v.i;
    shoal_doc_free(d);
    return out;
}

/* No link of r failed (a session error would be recorded on its peer;
 * "link closed" is a sync link's normal end). */
static bool
no_link_errors(shoal_replica *r)
{
    shoal_peers *p = NULL;
    if (shoal_net_peers(r, &p) != SHOAL_OK)
        return false;
    bool ok = true;
    for (size_t i = 0; i < shoal_peers_count(p); i++)
        if (shoal_peers_last_error(p, i)[0] &&
            strcmp(shoal_peers_last_error(p, i), "link closed") != 0) {
            fprintf(stderr, "  link error: %s\n", shoal_peers_last_error(p, i));
            ok = false;
        }
    shoal_peers_free(p);
    return ok;
}

/* The envelope bytes r holds: its whole bundle without the 12-byte
 * header. */
static uint64_t
held_bytes(shoal_replica *r)
{
    uint8_t *b = NULL;
    size_t n = 0;
    if (shoal_export(r, NULL, &b, &n) != SHOAL_OK)
        return 0;
    shoal_free(b);
    return n >= 12 ? n - 12 : 0;
}

/* Statistic which of r's record of peer key (0 if none). */
static uint64_t
peer_stat(shoal_replica *r, const uint8_t *key, shoal_peer_stat which)
{
    shoal_peers *p = NULL;
    uint64_t n = 0;
    if (shoal_net_peers(r, &p) != SHOAL_OK)
        return 0;
    for (size_t i = 0; i < shoal_peers_count(p); i++)
        if (memcmp(shoal_peers_key(p, i), key, SHOAL_KEY_BYTES) == 0)
            n = shoal_peers_stat(p, i, which);
    shoal_peers_free(p);
    return n;
}

static bool
all_complete(shoal_replica *r)
{
    shoal_subs *s = NULL;
    if (shoal_subscriptions(r, &s) != SHOAL_OK)
        return false;
    bool ok = shoal_subs_count(s) > 0;
    for (size_t i = 0; i < shoal_subs_count(s); i++)
        ok = ok && shoal_subs_complete(s, i);
    shoal_subs_free(s);
    return ok;
}

/* A relay with n products, listening on 127.0.0.1 for any key. */
typedef struct relay {
    char *dir;
    shoal_replica *r;
    char *ep;
} relay;

static bool
relay_up(relay *R, int n)
{
    R->dir = check_tmpdir("partial-relay");
    R->r = open_r(R->dir, "relay");
    if (!R->r || !fill(R->r, n) || shoal_net_allow_any(R->r, true) != SHOAL_OK ||
        shoal_net_listen(R->r, "tcp://127.0.0.1:*", &R->ep) != SHOAL_OK)
        return false;
    return true;
}

static void
relay_down(relay *R)
{
    shoal_replica_close(R->r);
    shoal_free(R->ep);
    check_rmtree(R->dir);
    free(R->dir);
}

static shoal_err
dsync(shoal_replica *d, const relay *R)
{
    return shoal_net_sync(d, R->ep, shoal_replica_id(R->r), SYNC_MS);
}

/* ------------------------------------------------------------------ tests */

/* Devices with single, overlapping and parameterised subscriptions hold
 * exactly the matching set after one sync, and received exactly the
 * matching documents' changes (one each here). */
static void
test_exact_views(void)
{
    int n = env_docs();
    relay R;
    REQUIRE(relay_up(&R, n));
    struct {
        const char *name;
        const char *s1, *s2;
        const char *p;
        int64_t pv;
        const char *union_where;
    } dev[] = {
        { "single", "store_id == 3", NULL, NULL, 0, "store_id == 3" },
        { "overlap", "store_id == 3", "category == \"a\"", NULL, 0,
          "store_id == 3 OR category == \"a\"" },
        { "param", "store_id == :s AND price < 40", NULL, "s", 7, "store_id == 7 AND price < 40" },
    };
    for (size_t k = 0; k < sizeof dev / sizeof dev[0]; k++) {
        char *dir = check_tmpdir("partial-dev");
        shoal_replica *d = open_r(dir, dev[k].name);
        REQUIRE(d);
        CHECK_EQ(subscribe(d, "s1", dev[k].s1, dev[k].p, dev[k].pv), SHOAL_OK);
        if (dev[k].s2)
            CHECK_EQ(subscribe(d, "s2", dev[k].s2, NULL, 0), SHOAL_OK);
        CHECK(!all_complete(d));
        CHECK_EQ(dsync(d, &R), SHOAL_OK);
        size_t held = 0;
        CHECK(same_ids(d, R.r, dev[k].union_where, &held));
        CHECK(held > 0);
        /* Nothing else crossed the wire: one change per matching document,
         * and exactly the bytes of those changes. */
        CHECK_EQ(peer_stat(d, shoal_replica_id(R.r), SHOAL_PS_RECEIVED), held);
        CHECK_EQ(peer_stat(d, shoal_replica_id(R.r), SHOAL_PS_RECEIVED_BYTES), held_bytes(d));
        CHECK(held_bytes(d) > 0);
        CHECK(all_complete(d));
        /* A second sync sends nothing (the summary says what it holds). */
        CHECK_EQ(dsync(d, &R), SHOAL_OK);
        CHECK_EQ(peer_stat(d, shoal_replica_id(R.r), SHOAL_PS_RECEIVED), held);
        CHECK(no_link_errors(d));
        shoal_replica_close(d);
        check_rmtree(dir);
        free(dir);
    }
    relay_down(&R);
}

static bool
got_left_event(shoal_replica *r, const char *id)
{
    for (;;) {
        shoal_event *e = NULL;
        if (shoal_event_next(r, 0, &e) != SHOAL_OK)
            return false;
        bool hit = shoal_event_left(e) && strcmp(shoal_event_doc_id(e), id) == 0;
        shoal_event_free(e);
        if (hit)
            return true;
    }
}

/* A field change moves a document out (LEAVE: evicted, an event) and back
 * (ENTER: its whole history again); deletes reach the device; a
 * re-created document re-enters. */
static void
test_move_out_and_in(void)
{
    relay R;
    REQUIRE(relay_up(&R, 200));
    char *dir = check_tmpdir("partial-dev");
    shoal_replica *d = open_r(dir, "dev");
    REQUIRE(d);
    CHECK_EQ(subscribe(d, "mine", "store_id == 3", NULL, 0), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(has_doc(d, "p00013"));
    /* An edit that keeps it in view, then one that moves it out. */
    CHECK_EQ(set_int(R.r, "p00013", "price", 500), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK_EQ(int_field(d, "p00013", "price"), 500);
    CHECK_EQ(set_int(R.r, "p00013", "store_id", 4), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(!has_doc(d, "p00013"));
    CHECK(got_left_event(d, "p00013"));
    CHECK(same_ids(d, R.r, "store_id == 3", NULL));
    CHECK_EQ(shoal_replica_check(d, print_problem, NULL, NULL), SHOAL_OK);
    /* Back in: the whole document, the price set before it left included. */
    CHECK_EQ(set_int(R.r, "p00013", "store_id", 3), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK_EQ(int_field(d, "p00013", "price"), 500);
    CHECK_EQ(int_field(d, "p00013", "store_id"), 3);
    /* A delete reaches it, and it goes; re-created, it comes back. */
    CHECK_EQ(del_doc(R.r, "p00023"), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(!has_doc(d, "p00023"));
    CHECK_EQ(set_int(R.r, "p00023", "store_id", 3), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(has_doc(d, "p00023"));
    CHECK(same_ids(d, R.r, "store_id == 3", NULL));
    /* The document re-created has the same state on both. */
    shoal_doc *x = NULL, *y = NULL;
    CHECK_EQ(shoal_doc_get(d, "products", "p00023", &x), SHOAL_OK);
    CHECK_EQ(shoal_doc_get(R.r, "products", "p00023", &y), SHOAL_OK);
    CHECK(x && y && shoal_doc_field_count(x) == shoal_doc_field_count(y));
    shoal_doc_free(x);
    shoal_doc_free(y);
    shoal_replica_close(d);
    check_rmtree(dir);
    free(dir);
    relay_down(&R);
}

/* A device edits a document offline; the document leaves its view on the
 * relay before the device syncs: the edit reaches the relay, then the
 * document is evicted.  A document written outside every subscription is
 * uploaded, then evicted. */
static void
test_no_lost_write(void)
{
    relay R;
    REQUIRE(relay_up(&R, 200));
    char *dir = check_tmpdir("partial-dev");
    shoal_replica *d = open_r(dir, "dev");
    REQUIRE(d);
    CHECK_EQ(subscribe(d, "mine", "store_id == 3", NULL, 0), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(has_doc(d, "p00033"));
    CHECK_EQ(set_int(d, "p00033", "count", 17), SHOAL_OK);      /* offline edit */
    CHECK_EQ(set_int(R.r, "p00033", "store_id", 5), SHOAL_OK);  /* leaves */
    CHECK_EQ(set_int(d, "x_outside", "store_id", 9), SHOAL_OK); /* outside */
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK_EQ(int_field(R.r, "p00033", "count"), 17);
    CHECK_EQ(int_field(R.r, "x_outside", "store_id"), 9);
    /* Evicted once the relay acknowledged them (within the same sync or at
     * the next one, when the relay's HELLO shows it). */
    uint64_t t0 = check_now_ms();
    while ((has_doc(d, "p00033") || has_doc(d, "x_outside")) && check_now_ms() - t0 < WAIT_MS) {
        CHECK_EQ(dsync(d, &R), SHOAL_OK);
        nap();
    }
    CHECK(!has_doc(d, "p00033"));
    CHECK(!has_doc(d, "x_outside"));
    CHECK(same_ids(d, R.r, "store_id == 3", NULL));
    CHECK_EQ(shoal_replica_check(d, print_problem, NULL, NULL), SHOAL_OK);
    shoal_replica_close(d);
    check_rmtree(dir);
    free(dir);
    relay_down(&R);
}

/* Removing one of two overlapping subscriptions keeps what the other
 * matches; removing the last makes the replica full again. */
static void
test_unsubscribe(void)
{
    relay R;
    REQUIRE(relay_up(&R, 400));
    char *dir = check_tmpdir("partial-dev");
    shoal_replica *d = open_r(dir, "dev");
    REQUIRE(d);
    CHECK_EQ(subscribe(d, "store", "store_id == 3", NULL, 0), SHOAL_OK);
    CHECK_EQ(subscribe(d, "cat", "category == \"a\"", NULL, 0), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(same_ids(d, R.r, "store_id == 3 OR category == \"a\"", NULL));
    CHECK_EQ(shoal_unsubscribe(d, "cat"), SHOAL_OK);
    CHECK(same_ids(d, R.r, "store_id == 3", NULL));
    CHECK_EQ(shoal_unsubscribe(d, "cat"), SHOAL_ENOTFOUND);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(same_ids(d, R.r, "store_id == 3", NULL));
    CHECK_EQ(shoal_unsubscribe(d, "store"), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK(same_ids(d, R.r, "TRUE", NULL));
    uint8_t a[32], b[32];
    CHECK_EQ(shoal_digest(d, true, a), SHOAL_OK);
    CHECK_EQ(shoal_digest(R.r, true, b), SHOAL_OK);
    CHECK(memcmp(a, b, 32) == 0);
    shoal_replica_close(d);
    check_rmtree(dir);
    free(dir);
    relay_down(&R);
}

/* While linked live, a change that moves a document into the view reaches
 * the device (ENTER) and one that moves it out evicts it (LEAVE); a new
 * subscription takes effect on the live link. */
static void
test_live(void)
{
    relay R;
    REQUIRE(relay_up(&R, 200));
    char *dir = check_tmpdir("partial-dev");
    shoal_replica *d = open_r(dir, "dev");
    REQUIRE(d);
    CHECK_EQ(subscribe(d, "mine", "store_id == 3", NULL, 0), SHOAL_OK);
    CHECK_EQ(shoal_net_connect(d, R.ep, shoal_replica_id(R.r)), SHOAL_OK);
    uint64_t t0 = check_now_ms();
    while (!all_complete(d) && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(all_complete(d));
    CHECK(same_ids(d, R.r, "store_id == 3", NULL));
    CHECK_EQ(set_int(R.r, "p00044", "store_id", 3), SHOAL_OK);
    t0 = check_now_ms();
    while (!has_doc(d, "p00044") && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(has_doc(d, "p00044"));
    CHECK_EQ(set_int(R.r, "p00053", "store_id", 8), SHOAL_OK);
    t0 = check_now_ms();
    while (has_doc(d, "p00053") && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(!has_doc(d, "p00053"));
    CHECK_EQ(subscribe(d, "more", "store_id == 8", NULL, 0), SHOAL_OK);
    t0 = check_now_ms();
    while (!has_doc(d, "p00053") && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(has_doc(d, "p00053"));
    t0 = check_now_ms();
    while (!same_ids(d, R.r, "store_id == 3 OR store_id == 8", NULL) &&
           check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(same_ids(d, R.r, "store_id == 3 OR store_id == 8", NULL));
    /* A subscription without an equality term (judged for every change of
     * the collection) and one on IN values (filed under each value). */
    CHECK_EQ(subscribe(d, "cheap", "price < 0", NULL, 0), SHOAL_OK);
    CHECK_EQ(subscribe(d, "cats", "category IN (\"x\", \"y\")", NULL, 0), SHOAL_OK);
    t0 = check_now_ms();
    while (!all_complete(d) && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK_EQ(set_int(R.r, "p00055", "price", -1), SHOAL_OK);
    shoal_txn *tx;
    shoal_value yv = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)"y", .len = 1 };
    CHECK_EQ(shoal_txn_begin(R.r, &tx), SHOAL_OK);
    CHECK_EQ(shoal_txn_set(tx, "products", "p00066", "category", &yv), SHOAL_OK);
    CHECK_EQ(shoal_txn_commit(tx), SHOAL_OK);
    t0 = check_now_ms();
    while ((!has_doc(d, "p00055") || !has_doc(d, "p00066")) && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(has_doc(d, "p00055"));
    CHECK(has_doc(d, "p00066"));
    const char *all = "store_id == 3 OR store_id == 8 OR price < 0 OR category IN (\"x\", \"y\")";
    t0 = check_now_ms();
    while (!same_ids(d, R.r, all, NULL) && check_now_ms() - t0 < WAIT_MS)
        nap();
    CHECK(same_ids(d, R.r, all, NULL));
    CHECK(no_link_errors(d));
    CHECK(no_link_errors(R.r));
    /* One link all along: no session failed and reconnected. */
    CHECK_EQ(peer_stat(d, shoal_replica_id(R.r), SHOAL_PS_CONNECTS), 1);
    shoal_net_stop(d);
    shoal_replica_close(d);
    check_rmtree(dir);
    free(dir);
    relay_down(&R);
}

/* A scoped relay (partial, store 3) between a full hub and a partial
 * device: the device receives its view through the relay, the same as
 * from the hub; a device's edit reaches the relay; when the hub moves that
 * document out of the relay's scope, the relay uploads the device's edit
 * before it evicts the document. */
static void
test_scoped_relay(void)
{
    relay H;
    REQUIRE(relay_up(&H, 200));
    char *sdir = check_tmpdir("partial-scoped");
    shoal_replica *S = open_r(sdir, "scoped");
    REQUIRE(S);
    CHECK_EQ(subscribe(S, "relay-1", "store_id == 3", NULL, 0), SHOAL_OK);
    CHECK_EQ(dsync(S, &H), SHOAL_OK);
    CHECK(same_ids(S, H.r, "store_id == 3", NULL));
    char *sep = NULL;
    REQUIRE(shoal_net_allow_any(S, true) == SHOAL_OK &&
            shoal_net_listen(S, "tcp://127.0.0.1:*", &sep) == SHOAL_OK);
    char *ddir = check_tmpdir("partial-dev");
    shoal_replica *D = open_r(ddir, "dev");
    REQUIRE(D);
    CHECK_EQ(subscribe(D, "mine", "store_id == 3 AND price < 50", NULL, 0), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(D, sep, shoal_replica_id(S), SYNC_MS), SHOAL_OK);
    /* The same view as from the hub. */
    CHECK(same_ids(D, H.r, "store_id == 3 AND price < 50", NULL));
    CHECK(all_complete(D));
    CHECK_EQ(set_int(D, "p00003", "count", 5), SHOAL_OK);
    CHECK_EQ(shoal_net_sync(D, sep, shoal_replica_id(S), SYNC_MS), SHOAL_OK);
    CHECK_EQ(int_field(S, "p00003", "count"), 5);
    /* The hub moves it out of the relay's scope. */
    CHECK_EQ(set_int(H.r, "p00003", "store_id", 4), SHOAL_OK);
    /* The relay may evict it before its upload of the edit (it holds no
     * change of its own there): the device, which keeps its own edit until
     * a full replica has it, sends it again; the relay vouches for what
     * the hub holds, so the device lets go once the hub has the edit. */
    uint64_t t0 = check_now_ms();
    do {
        CHECK_EQ(dsync(S, &H), SHOAL_OK);
        CHECK_EQ(shoal_net_sync(D, sep, shoal_replica_id(S), SYNC_MS), SHOAL_OK);
    } while (
        (has_doc(S, "p00003") || has_doc(D, "p00003") || int_field(H.r, "p00003", "count") != 5) &&
        check_now_ms() - t0 < WAIT_MS);
    CHECK_EQ(int_field(H.r, "p00003", "count"), 5);
    CHECK(!has_doc(S, "p00003"));
    CHECK(!has_doc(D, "p00003"));
    CHECK(same_ids(D, H.r, "store_id == 3 AND price < 50", NULL));
    CHECK(same_ids(S, H.r, "store_id == 3", NULL));
    CHECK_EQ(shoal_replica_check(S, print_problem, NULL, NULL), SHOAL_OK);
    CHECK(no_link_errors(S));
    CHECK(no_link_errors(D));
    CHECK(no_link_errors(H.r));
    shoal_replica_close(D);
    check_rmtree(ddir);
    free(ddir);
    shoal_replica_close(S);
    shoal_free(sep);
    check_rmtree(sdir);
    free(sdir);
    relay_down(&H);
}

/* Removing the last subscription while a document holds an edit not yet
 * uploaded: the replica keeps saying it is partial (its version vector has
 * gaps while it holds other authors' changes) until the edit is up and the
 * document gone, then syncs everything as a full replica. */
static void
test_unsubscribe_last_pinned(void)
{
    relay R;
    REQUIRE(relay_up(&R, 200));
    char *dir = check_tmpdir("partial-dev");
    shoal_replica *d = open_r(dir, "dev");
    REQUIRE(d);
    CHECK_EQ(subscribe(d, "mine", "store_id == 3", NULL, 0), SHOAL_OK);
    CHECK_EQ(dsync(d, &R), SHOAL_OK);
    CHECK_EQ(set_int(d, "p00003", "count", 9), SHOAL_OK);
    CHECK_EQ(shoal_unsubscribe(d, "mine"), SHOAL_OK);
    size_t held = 0;
    free(ids_of(d, NULL, &held));
    CHECK_EQ(held, 1); /* only the document holding the edit */
    CHECK(has_doc(d, "p00003"));
    CHECK_EQ(dsync(d, &R), SHOAL_OK); /* the edit goes up; then it goes */
    CHECK_EQ(int_field(R.r, "p00003", "count"), 9);
    uint64_t t0 = check_now_ms();
    uint8_t a[32], b[32];
    do {
        CHECK_EQ(dsync(d, &R), SHOAL_OK);
        CHECK_EQ(shoal_digest(d, true, a), SHOAL_OK);
        CHECK_EQ(shoal_digest(R.r, true, b), SHOAL_OK);
    } while (memcmp(a, b, 32) != 0 && check_now_ms() - t0 < WAIT_MS);
    CHECK(memcmp(a, b, 32) == 0);
    CHECK_EQ(int_field(d, "p00003", "count"), 9);
    CHECK_EQ(shoal_replica_check(d, print_problem, NULL, NULL), SHOAL_OK);
    shoal_replica_close(d);
    check_rmtree(dir);
    free(dir);
    relay_down(&R);
}

int
main(void)
{
    check_seed(1);
    RUN(test_exact_views);
    RUN(test_move_out_and_in);
    RUN(test_no_lost_write);
    RUN(test_unsubscribe);
    RUN(test_unsubscribe_last_pinned);
    RUN(test_live);
    RUN(test_scoped_relay);
    return check_summary();
}
