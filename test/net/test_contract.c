/*
 * test/net/test_contract.c - error returns and errmsg rules that
 * include/shoal.h and docs/c-api.md promise and no other test pins down,
 * through the public API only, on loopback with ports the OS picks.
 *
 * Covered: SHOAL_EBUSY from shoal_net_listen (address in use) and from
 * shoal_net_connect (endpoint already linked with another key), a second
 * connect with the same key a no-op, SHOAL_ENOTFOUND from
 * shoal_net_disconnect, SHOAL_EINVAL for keys that are not curve points and
 * for endpoints ZeroMQ rejects, SHOAL_ETIMEDOUT from a sync with timeout 0,
 * SHOAL_EREFUSED from a sync to a peer that does not allow us, and the
 * errmsg: one buffer per replica (a failure in another thread shows in this
 * one), untouched by argument errors found before the replica, "no error"
 * before any failure.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shoal.h"

typedef struct pair {
    char *da, *db;
    shoal_replica *a, *b;
    char *ep; /* a's listening endpoint */
} pair;

static bool
pair_open(pair *p, const char *tag)
{
    memset(p, 0, sizeof *p);
    p->da = check_tmpdir(tag);
    p->db = check_tmpdir(tag);
    if (!p->da || !p->db)
        return false;
    if (shoal_replica_open(&p->a, p->da, NULL) != SHOAL_OK ||
        shoal_replica_open(&p->b, p->db, NULL) != SHOAL_OK)
        return false;
    return shoal_net_listen(p->a, "tcp://127.0.0.1:*", &p->ep) == SHOAL_OK && p->ep;
}

static void
pair_close(pair *p)
{
    shoal_replica_close(p->a);
    shoal_replica_close(p->b);
    shoal_free(p->ep);
    if (p->da)
        check_rmtree(p->da);
    if (p->db)
        check_rmtree(p->db);
    free(p->da);
    free(p->db);
}

static void
test_busy(void)
{
    pair p;
    REQUIRE(pair_open(&p, "contract-busy"));
    /* The address is in use (by a, in this process). */
    char *bound = (char *)"untouched";
    CHECK_EQ(shoal_net_listen(p.b, p.ep, &bound), SHOAL_EBUSY);
    CHECK(bound == NULL);
    CHECK(strstr(shoal_replica_errmsg(p.b), p.ep) != NULL);
    /* One link per endpoint: the same key again is a no-op, another key is
     * refused. */
    CHECK_EQ(shoal_net_connect(p.b, p.ep, shoal_replica_id(p.a)), SHOAL_OK);
    CHECK_EQ(shoal_net_connect(p.b, p.ep, shoal_replica_id(p.a)), SHOAL_OK);
    CHECK_EQ(shoal_net_connect(p.b, p.ep, shoal_replica_id(p.b)), SHOAL_EBUSY);
    CHECK_EQ(shoal_net_disconnect(p.b, p.ep), SHOAL_OK);
    CHECK_EQ(shoal_net_disconnect(p.b, p.ep), SHOAL_ENOTFOUND);
    CHECK_EQ(shoal_net_disconnect(p.b, "tcp://127.0.0.1:1"), SHOAL_ENOTFOUND);
    /* After the disconnect the endpoint is free for another key. */
    CHECK_EQ(shoal_net_connect(p.b, p.ep, shoal_replica_id(p.b)), SHOAL_OK);
    pair_close(&p);
}

static void
test_invalid(void)
{
    pair p;
    REQUIRE(pair_open(&p, "contract-inval"));
    uint8_t zero[SHOAL_KEY_BYTES], ff[SHOAL_KEY_BYTES];
    memset(zero, 0, sizeof zero);
    memset(ff, 0xff, sizeof ff);
    CHECK_EQ(shoal_net_allow(p.b, zero), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_allow(p.b, ff), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_allow(p.b, NULL), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_disallow(p.b, zero), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_connect(p.b, p.ep, zero), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_sync(p.b, p.ep, ff, 100), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_listen(p.b, "bogus://x:1", NULL), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_listen(p.b, "tcp://127.0.0.1", NULL), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_listen(p.b, "", NULL), SHOAL_EINVAL);
    char longep[300];
    memset(longep, 'x', sizeof longep - 1);
    longep[sizeof longep - 1] = 0;
    memcpy(longep, "tcp://", 6);
    CHECK_EQ(shoal_net_listen(p.b, longep, NULL), SHOAL_EINVAL);
    CHECK_EQ(shoal_net_disconnect(p.b, NULL), SHOAL_EINVAL);
    pair_close(&p);
}

static void
test_sync_refused_and_timeout(void)
{
    pair p;
    REQUIRE(pair_open(&p, "contract-sync"));
    /* a allows nobody: the handshake is refused. */
    CHECK_EQ(shoal_net_sync(p.b, p.ep, shoal_replica_id(p.a), 10000), SHOAL_EREFUSED);
    CHECK(strstr(shoal_replica_errmsg(p.b), "refused") != NULL);
    /* A timeout of 0 gives up at once, even where the peer would answer. */
    CHECK_EQ(shoal_net_allow(p.a, shoal_replica_id(p.b)), SHOAL_OK);
    uint64_t t0 = check_now_ms();
    CHECK_EQ(shoal_net_sync(p.b, p.ep, shoal_replica_id(p.a), 0), SHOAL_ETIMEDOUT);
    CHECK(check_now_ms() - t0 < 5000);
    CHECK_EQ(shoal_net_sync(p.b, p.ep, shoal_replica_id(p.a), 10000), SHOAL_OK);
    /* After a stop the next call starts a new engine, allow-list kept. */
    shoal_net_stop(p.a);
    shoal_free(p.ep);
    p.ep = NULL;
    REQUIRE(shoal_net_listen(p.a, "tcp://127.0.0.1:*", &p.ep) == SHOAL_OK);
    CHECK_EQ(shoal_net_sync(p.b, p.ep, shoal_replica_id(p.a), 10000), SHOAL_OK);
    pair_close(&p);
}

typedef struct fail_arg {
    shoal_replica *r;
    const char *ep;
} fail_arg;

static void *
fail_in_thread(void *arg)
{
    fail_arg *f = arg;
    (void)shoal_net_disconnect(f->r, f->ep); /* ENOTFOUND, with a message */
    return NULL;
}

static void
test_errmsg_per_replica(void)
{
    char *d = check_tmpdir("contract-errmsg");
    REQUIRE(d);
    shoal_replica *r;
    REQUIRE(shoal_replica_open(&r, d, NULL) == SHOAL_OK);
    CHECK(strcmp(shoal_replica_errmsg(r), "no error") == 0);
    shoal_doc *doc;
    CHECK_EQ(shoal_doc_get(r, "c", "missing", &doc), SHOAL_ENOTFOUND);
    CHECK(strstr(shoal_replica_errmsg(r), "c/missing") != NULL);
    /* An argument error found before the replica leaves the text alone. */
    CHECK_EQ(shoal_doc_get(r, "", "x", &doc), SHOAL_EINVAL);
    CHECK(strstr(shoal_replica_errmsg(r), "c/missing") != NULL);
    /* A success leaves it alone too. */
    uint64_t n;
    CHECK_EQ(shoal_pending_count(r, &n), SHOAL_OK);
    CHECK(strstr(shoal_replica_errmsg(r), "c/missing") != NULL);
    /* One buffer per replica, not per thread: another thread's failure is
     * what this thread reads next. */
    fail_arg f = { r, "tcp://127.0.0.1:9" };
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, fail_in_thread, &f) == 0);
    pthread_join(th, NULL);
    CHECK(strstr(shoal_replica_errmsg(r), "tcp://127.0.0.1:9") != NULL);
    CHECK(strstr(shoal_replica_errmsg(r), "not found") != NULL);
    shoal_replica_close(r);
    check_rmtree(d);
    free(d);
}

int
main(void)
{
    RUN(test_busy);
    RUN(test_invalid);
    RUN(test_sync_refused_and_timeout);
    RUN(test_errmsg_per_replica);
    return check_summary();
}
