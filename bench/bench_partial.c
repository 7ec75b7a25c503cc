/*
 * bench/bench_partial.c - the partial-sync variants of `shoal-bench sync`:
 * replicas holding subscriptions (shoal_subscribe), measured through the
 * public API over real CurveZMQ links on 127.0.0.1, each figure beside a
 * floor or another configuration measured in the same invocation.
 *
 *   partial-initial   a relay holds --docs documents (default 100,000) of
 *                     10 changes each, indexed on store_id; a fresh durable
 *                     device subscribed to 1 % of them (store_id == 7)
 *                     calls shoal_net_sync through the byte-counting proxy.
 *                     Time until it holds its whole view, and the bytes of
 *                     both directions, against the signed bytes of those
 *                     documents' changes and the time libsodium alone takes
 *                     to verify them (the device's own export afterwards).
 *   partial-relay     a relay R, a writer W and --peers devices (default
 *                     100) spread over four processes, in four
 *                     configurations one after the other: no device (R's
 *                     own receive, verify and apply), full devices, partial
 *                     devices with 10 subscriptions each (equality and
 *                     range predicates, about 1 % of the documents), and the
 *                     same partial devices with the 10th subscription
 *                     matching every document W writes ("partial_all": the
 *                     sends of the full configuration, so what it adds is
 *                     the evaluation alone).  Each configuration runs
 *                     --runs windows: W commits --incoming changes to the
 *                     relay's hot documents, one every PACE_US, then an end
 *                     marker every device's view holds; R's process CPU
 *                     time (getrusage: all its threads) from the window's
 *                     start until every device holds the marker, divided by
 *                     the changes.  W is paced so that 100 full devices on
 *                     two cores keep up: a relay whose devices lag sends
 *                     them larger batches, which is cheaper per change and
 *                     would flatter the full path.
 *   partial-latency   a durable device linked live to a durable relay and
 *   (-nondurable)     subscribed to store_id == 3; the relay edits a
 *                     document in view (UPDATE, the reference: the same
 *                     hop), moves it out (LEAVE) and back in (ENTER); the
 *                     time from the start of the relay's commit until the
 *                     device reads the new value / no longer has the
 *                     document / has it again.
 *
 * Every replica is its own directory and every node its own process, made
 * with fork() before it opens anything; the nodes and the parent share one
 * anonymous mapping (flags, endpoints, results).  Every wait is bounded,
 * every child reaped (SIGKILL after a grace period), the temp dirs removed.
 *
 * The full devices, R and W of partial-relay start as copies of one seed
 * replica's data.mdb, made while it is closed (as docs/operations.md takes
 * a backup), each with an identity of its own: 100 full devices catching up
 * the seed by sync would verify a million signatures before anything is
 * measured.  docs/operations.md warns against handing LMDB files to a
 * peer because nothing verifies them; here this program wrote them.
 * Rejected: one device process per device (100 processes of a few MiB
 * each and their scheduling on two cores; four processes of 25 replicas
 * measure the same relay); measuring R's CPU from outside with wait4 (it
 * would include R's start, its 100 handshakes and the devices' initial
 * sync); a fresh set-up per window (100 copies and handshakes each time:
 * the windows of one configuration share one set-up instead).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shoal.h"

enum {
    MAX_RUNS = 64,
    MAX_PEERS = 1000,
    DEV_PROCS = 4, /* processes holding the partial-relay devices */
    MAX_SAMPLES = 100000,
    DOC_CHANGES = 10,  /* partial-initial: changes per document */
    GEN_BATCH = 5000,  /* documents per generating transaction */
    INIT_STORES = 100, /* partial-initial: store_id = i % 100 ... */
    INIT_STORE = 7,    /* ... and the device takes one store: 1 % */
    CATS = 20,         /* categories "c00".."c19" */
    PRICES = 100000,   /* price = i * 7919 % PRICES */
    HOT_EVERY = 50,    /* partial-relay: every 50th document is hot */
    PACE_US = 20000,   /* partial-relay: W's spacing of changes */
    SUBS = 10,         /* partial-relay: subscriptions per device */
    CHECKED = 8,       /* partial-relay: devices whose view is checked */
    LAT_STORE = 3,     /* partial-latency: the device's store */
    LAT_OTHERS = 1000, /* partial-latency: other documents on the relay */
    LAT_BUDGET_S = 10  /* partial-latency: a run stops sampling after this */
};

enum {
    ST_START = 0,
    ST_READY = 1,
    ST_DONE = 2,
    ST_COUNTED = 3,
    ST_FAILED = -1
};

/* Slots of the shared page: one per process. */
enum {
    SLOT_RELAY = 0,
    SLOT_WRITER = 1, /* partial-relay's W, or partial-initial's device */
    SLOT_PROXY = 2,
    SLOT_DEV0 = 3,
    NSLOTS = SLOT_DEV0 + DEV_PROCS
};

typedef struct pslot {
    _Atomic int state;
    char endpoint[128];
    char err[240];
} pslot;

typedef struct pshared {
    _Atomic int go;    /* parent -> nodes: start */
    _Atomic int armed; /* relay -> writer: the CPU clock is read, write */
    _Atomic int end;   /* parent -> relay: read the CPU clock again */
    _Atomic int count; /* parent -> devices: count what you hold */
    _Atomic int stop;  /* parent -> nodes: close and exit */
    _Atomic uint64_t proxy_up, proxy_down;
    pslot slot[NSLOTS];
    /* partial-initial: the device's results */
    double sync_ms, view_ms;
    uint64_t up, down, held;
    /* partial-relay: window k (1..runs) opens when the parent sets window
     * to k, R reads its CPU clock and sets armed, W writes and sets wdone,
     * each device process sets ddone once its devices hold the end marker,
     * the parent sets end, R reads its clock again and sets rdone. */
    _Atomic int window, wdone, rdone;
    _Atomic int idle; /* before window 1: 1 R reads its clock, 2 again, 3 R is done */
    double idle_cpu_s, idle_s;
    _Atomic int ddone[DEV_PROCS];
    double relay_cpu_s[MAX_RUNS], window_s[MAX_RUNS], writer_s[MAX_RUNS];
    uint64_t sent[MAX_RUNS];      /* changes R sent to the devices in the window */
    uint64_t dev_held[MAX_PEERS]; /* documents each device holds at the end */
    int64_t expect[MAX_PEERS];    /* R's count of a device's view (-1: not checked) */
    /* partial-latency */
    _Atomic uint64_t want; /* relay -> device: sample * 3 + kind + 1 (0: none) */
    _Atomic uint64_t seen; /* device -> relay: the last want it saw happen */
    _Atomic uint64_t t0;   /* commit start of want */
    uint64_t left_events;  /* device: shoal_event_left events seen */
    uint64_t lat_done;     /* relay: samples taken (fewer if the budget ran out) */
    uint64_t lat_ns[3][MAX_SAMPLES];
    uint64_t commit_ns[3][MAX_SAMPLES];
} pshared;

/* partial-relay configurations, in the order they run. */
enum {
    CF_NONE,
    CF_FULL,
    CF_PARTIAL,
    CF_PARTIAL_ALL,
    NCONFIGS
};
static const char *const config_names[NCONFIGS] = { "none", "full", "partial", "partial_all" };

/* partial-latency kinds. */
enum {
    K_UPDATE,
    K_LEAVE,
    K_ENTER
};
static const char *const kind_names[3] = { "update", "leave", "enter" };

/* What the children read (set before they are forked). */
typedef struct pctx {
    pshared *sh;
    char run_dir[512];
    char relay_dir[600], writer_dir[600], dev_dir[600]; /* dev_dir: device i is dev_dir/dNNNN */
    uint8_t relay_key[SHOAL_KEY_BYTES], writer_key[SHOAL_KEY_BYTES];
    uint8_t (*dev_key)[SHOAL_KEY_BYTES];
    const char *connect_ep; /* where the device connects (the proxy's endpoint) */
    int config;
    uint64_t peers, incoming, base, stores, docs, samples;
    size_t runs;
    bool durable;
    int proc; /* device process index */
} pctx;

static pctx C;

/* ------------------------------------------------------------- helpers */

static uint64_t
now_ns(void)
{
    return shoal__bench_now_ns();
}

static void
fail(pslot *s, const char *what, shoal_err e, shoal_replica *r)
{
    snprintf(s->err, sizeof s->err, "%s: %s%s%s", what, shoal_strerror(e), r ? ": " : "",
             r ? shoal_replica_errmsg(r) : "");
    atomic_store(&s->state, ST_FAILED);
}

static uint64_t
next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static double
cpu_now_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void *
map_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        fprintf(stderr, "shoal-bench sync: mmap: %s\n", strerror(errno));
        return NULL;
    }
    return p;
}

/* Open (creating it, with its identity, if new) and close the replica in
 * dir; copy its key. */
static int
init_replica(const char *dir, uint8_t key[SHOAL_KEY_BYTES])
{
    shoal_replica *r = NULL;
    shoal_err e = shoal__bench_open_replica(dir, false, NULL, &r);

    if (e != SHOAL_OK) {
        fprintf(stderr, "shoal-bench sync: open %s: %s\n", dir, shoal_strerror(e));
        return -1;
    }
    memcpy(key, shoal_replica_id(r), SHOAL_KEY_BYTES);
    shoal_replica_close(r);
    return 0;
}

/* A new replica directory dst holding a copy of the closed replica src's
 * data.mdb and an identity of its own. */
static int
copy_replica(const char *src, const char *dst, uint8_t key[SHOAL_KEY_BYTES])
{
    char from[700], to[700];
    static char buf[1 << 20];
    int in = -1, out = -1, rc = -1;
    ssize_t got;

    snprintf(from, sizeof from, "%s/data.mdb", src);
    snprintf(to, sizeof to, "%s/data.mdb", dst);
    if (mkdir(dst, 0700) != 0 || (in = open(from, O_RDONLY)) < 0 ||
        (out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
        goto out;
    while ((got = read(in, buf, sizeof buf)) > 0)
        if (!shoal__bench_write_all(out, buf, (size_t)got))
            goto out;
    if (got == 0)
        rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "shoal-bench sync: copy %s to %s: %s\n", from, to, strerror(errno));
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc == 0 ? init_replica(dst, key) : -1;
}

/* Set int fields (names[k] = vals[k], k < n) and, if cat is not NULL, the
 * string field category of products/id in txn t. */
static shoal_err
set_fields(shoal_txn *t, const char *id, const char *const *names, const int64_t *vals, size_t n,
           const char *cat)
{
    shoal_err e = SHOAL_OK;
    size_t k;

    for (k = 0; e == SHOAL_OK && k < n; k++) {
        shoal_value v = { .type = SHOAL_T_INT, .i = vals[k] };

        e = shoal_txn_set(t, "products", id, names[k], &v);
    }
    if (e == SHOAL_OK && cat) {
        shoal_value v = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)cat, .len = strlen(cat) };

        e = shoal_txn_set(t, "products", id, "category", &v);
    }
    return e;
}

/* One transaction setting one int field of one document. */
static shoal_err
commit_int(shoal_replica *r, const char *id, const char *field, int64_t v)
{
    shoal_txn *t = NULL;
    shoal_err e = shoal_txn_begin(r, &t);

    if (e != SHOAL_OK)
        return e;
    e = set_fields(t, id, &field, &v, 1, NULL);
    if (e != SHOAL_OK) {
        shoal_txn_abort(t);
        return e;
    }
    return shoal_txn_commit(t);
}

static shoal_err
subscribe(shoal_replica *r, const char *name, const char *where)
{
    shoal_query *q = NULL;
    shoal_err e = shoal_query_new(r, "products", where, &q);

    if (e == SHOAL_OK)
        e = shoal_subscribe(r, name, q);
    shoal_query_free(q);
    return e;
}

/* Live documents of products matching where (NULL: all). */
static shoal_err
count_docs(shoal_replica *r, const char *where, uint64_t *n)
{
    shoal_query *q = NULL;
    shoal_err e = shoal_query_new(r, "products", where, &q);

    *n = 0;
    if (e == SHOAL_OK)
        e = shoal_count(r, q, n);
    shoal_query_free(q);
    return e;
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
    shoal_value v;
    size_t i;
    int64_t out = INT64_MIN;

    if (shoal_doc_get(r, "products", id, &d) == SHOAL_OK &&
        shoal_doc_field_find(d, field, &i) == SHOAL_OK &&
        shoal_doc_field_value(d, i, &v) == SHOAL_OK && v.type == SHOAL_T_INT)
        out = v.i;
    shoal_doc_free(d);
    return out;
}

static bool
all_complete(shoal_replica *r)
{
    shoal_subs *s = NULL;
    bool ok;
    size_t i;

    if (shoal_subscriptions(r, &s) != SHOAL_OK)
        return false;
    ok = shoal_subs_count(s) > 0;
    for (i = 0; ok && i < shoal_subs_count(s); i++)
        ok = shoal_subs_complete(s, i);
    shoal_subs_free(s);
    return ok;
}

/* Statistic which of the peer with key (0 if unknown); with key NULL,
 * the sum over every peer but skip. */
static uint64_t
peer_stat(shoal_replica *r, const uint8_t *key, const uint8_t *skip, shoal_peer_stat which)
{
    shoal_peers *p = NULL;
    uint64_t n = 0;
    size_t i;

    if (shoal_net_peers(r, &p) != SHOAL_OK)
        return 0;
    for (i = 0; i < shoal_peers_count(p); i++) {
        const uint8_t *k = shoal_peers_key(p, i);

        if (key ? memcmp(k, key, SHOAL_KEY_BYTES) == 0
                : !skip || memcmp(k, skip, SHOAL_KEY_BYTES) != 0)
            n += shoal_peers_stat(p, i, which);
    }
    shoal_peers_free(p);
    return n;
}

/* Wait until *v >= level (or stop), for at most timeout_s.  0 when it
 * is. */
static int
wait_level(_Atomic int *v, int level, double timeout_s)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);

    while (atomic_load(v) < level) {
        if (atomic_load(&C.sh->stop) || now_ns() > deadline)
            return -1;
        shoal__bench_sleep_ms(0.2);
    }
    return 0;
}

static void
linger(void)
{
    uint64_t deadline = now_ns() + 600ull * 1000000000ull;

    while (!atomic_load(&C.sh->stop) && now_ns() < deadline)
        shoal__bench_sleep_ms(5);
}

/* Wait until slot i reaches state want (or fails, or pid ends), for at
 * most timeout_s.  0 on success. */
static int
wait_state(int i, pid_t pid, int want, double timeout_s, const char *name)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    pslot *s = &C.sh->slot[i];

    for (;;) {
        int st = atomic_load(&s->state), status;

        if (st >= want)
            return 0;
        if (st == ST_FAILED) {
            fprintf(stderr, "shoal-bench sync: %s failed: %s\n", name, s->err);
            return -1;
        }
        if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "shoal-bench sync: %s exited early%s%s\n", name, s->err[0] ? ": " : "",
                    s->err);
            return -1;
        }
        if (now_ns() > deadline) {
            fprintf(stderr, "shoal-bench sync: timed out waiting for %s\n", name);
            return -1;
        }
        shoal__bench_sleep_ms(1);
    }
}

/* Stop every child and reap them; cpu_s[i] receives each one's CPU
 * seconds.  Returns the number that did not exit cleanly. */
static int
stop_all(pid_t *pid, double *cpu_s, int n)
{
    int i, bad = 0;

    atomic_store(&C.sh->stop, 1);
    for (i = 0; i < n; i++) {
        if (pid[i] > 0 && shoal__bench_reap(pid[i], 30000, cpu_s ? &cpu_s[i] : NULL) != 0)
            bad++;
        pid[i] = 0;
    }
    return bad;
}

static void
reset_shared(void)
{
    memset(C.sh, 0, offsetof(pshared, lat_ns));
}

/* ------------------------------------------------------ partial-initial */

typedef struct gen_arg {
    const char *dir;
    uint64_t docs;
} gen_arg;

/* The relay of partial-initial: docs documents p000000.. (store_id =
 * i % 100, category, price), then DOC_CHANGES - 1 rounds setting field v of
 * every document: DOC_CHANGES changes each, GEN_BATCH documents per
 * transaction (one change per document per transaction).  Then an index on
 * store_id, as a relay serving subscriptions on it would keep. */
static int
gen_initial(void *argp)
{
    gen_arg *a = argp;
    static const char *const f3[3] = { "store_id", "price", "v" };
    shoal_replica *r = NULL;
    shoal_err e = shoal__bench_open_replica(a->dir, false, "gen", &r);
    uint64_t round, at;

    for (round = 0; e == SHOAL_OK && round < DOC_CHANGES; round++) {
        for (at = 0; e == SHOAL_OK && at < a->docs;) {
            shoal_txn *t = NULL;
            uint64_t k;

            if ((e = shoal_txn_begin(r, &t)) != SHOAL_OK)
                break;
            for (k = 0; e == SHOAL_OK && k < GEN_BATCH && at < a->docs; k++, at++) {
                char id[24], cat[8];
                int64_t v[3] = { (int64_t)(at % INIT_STORES), (int64_t)(at * 7919 % PRICES),
                                 (int64_t)round };

                snprintf(id, sizeof id, "p%06llu", (unsigned long long)at);
                snprintf(cat, sizeof cat, "c%02u", (unsigned)(at * 7 % CATS));
                if (round == 0)
                    e = set_fields(t, id, f3, v, 2, cat);
                else
                    e = set_fields(t, id, f3 + 2, v + 2, 1, NULL);
            }
            if (e == SHOAL_OK)
                e = shoal_txn_commit(t);
            else
                shoal_txn_abort(t);
        }
    }
    if (e == SHOAL_OK)
        e = shoal_index_add(r, "products", "store_id");
    if (e == SHOAL_OK)
        e = shoal_replica_flush(r);
    if (e != SHOAL_OK)
        fprintf(stderr, "shoal-bench sync: partial-initial relay: %s: %s\n", shoal_strerror(e),
                r ? shoal_replica_errmsg(r) : "");
    shoal_replica_close(r);
    return e == SHOAL_OK ? 0 : -1;
}

/* partial-initial's relay: listen, allow the device, wait. */
static int
initial_relay_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_RELAY];
    shoal_replica *r = NULL;
    char *bound = NULL;
    shoal_err e;

    (void)arg;
    if ((e = shoal__bench_open_replica(C.relay_dir, false, "relay", &r)) != SHOAL_OK) {
        fail(s, "open", e, NULL);
        return -1;
    }
    if ((e = shoal_net_allow(r, C.dev_key[0])) != SHOAL_OK ||
        (e = shoal_net_listen(r, "tcp://127.0.0.1:*", &bound)) != SHOAL_OK) {
        fail(s, "listen", e, r);
        shoal_replica_close(r);
        return -1;
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", bound);
    shoal_free(bound);
    atomic_store(&s->state, ST_READY);
    linger();
    shoal_replica_close(r);
    return 0;
}

/* partial-initial's device: subscribe, sync through the proxy, check. */
static int
initial_device_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_WRITER];
    shoal_replica *r = NULL;
    uint64_t t0, held = 0, want = C.docs / INIT_STORES + (C.docs % INIT_STORES > INIT_STORE);
    uint64_t deadline;
    char where[64];
    shoal_err e;

    (void)arg;
    snprintf(where, sizeof where, "store_id == %d", INIT_STORE);
    if ((e = shoal__bench_open_replica(C.dev_dir, true, "device", &r)) != SHOAL_OK) {
        fail(s, "open", e, NULL);
        return -1;
    }
    if ((e = subscribe(r, "mine", where)) != SHOAL_OK) {
        fail(s, "subscribe", e, r);
        goto out;
    }
    atomic_store(&s->state, ST_READY);
    if (wait_level(&C.sh->go, 1, 120) != 0)
        goto out;
    t0 = now_ns();
    if ((e = shoal_net_sync(r, C.connect_ep, C.relay_key, 600000)) != SHOAL_OK) {
        fail(s, "shoal_net_sync", e, r);
        goto out;
    }
    C.sh->sync_ms = (double)(now_ns() - t0) / 1e6;
    /* the view is whole once every matching document is here */
    deadline = now_ns() + 60ull * 1000000000ull;
    while ((e = count_docs(r, NULL, &held)) == SHOAL_OK && held < want && now_ns() < deadline)
        shoal__bench_sleep_ms(1);
    C.sh->view_ms = (double)(now_ns() - t0) / 1e6;
    C.sh->up = atomic_load(&C.sh->proxy_up);
    C.sh->down = atomic_load(&C.sh->proxy_down);
    C.sh->held = held;
    if (e != SHOAL_OK) {
        fail(s, "count", e, r);
        goto out;
    }
    if (held != want || !all_complete(r)) {
        snprintf(s->err, sizeof s->err, "holds %llu documents, wants %llu (complete: %d)",
                 (unsigned long long)held, (unsigned long long)want, all_complete(r));
        atomic_store(&s->state, ST_FAILED);
        goto out;
    }
    shoal_net_stop(r);
    atomic_store(&s->state, ST_DONE);
out:
    shoal_replica_close(r);
    return atomic_load(&s->state) == ST_DONE ? 0 : -1;
}

typedef struct init_result {
    double ms, sync_ms;
    double verify_before_ms, verify_after_ms, verify_ms, verify_cpu_ms;
    double cpu_relay_s, cpu_device_s;
    uint64_t up, down, held, changes;
    size_t raw;
} init_result;

/* One sync of a fresh device.  b (may be NULL: the warm-up run) is the
 * export of an earlier device, for the floor before and after. */
static int
initial_once(const char *relay_dir, size_t run, const uint8_t *b, size_t blen, init_result *res,
             uint8_t **bundle, size_t *bundle_len)
{
    uint8_t dev_key[1][SHOAL_KEY_BYTES];
    shoal__bench_proxy pa;
    pid_t pid[3] = { 0, 0, 0 }; /* relay, device, proxy */
    double cpu[3] = { 0, 0, 0 }, cpu_before = 0, cpu_after = 0;
    const char *colon;
    shoal_replica *r = NULL;
    shoal_err e;
    int rc = -1;

    memset(res, 0, sizeof *res);
    reset_shared();
    snprintf(C.run_dir, sizeof C.run_dir, "%s", relay_dir);
    snprintf(C.relay_dir, sizeof C.relay_dir, "%s", relay_dir);
    snprintf(C.dev_dir, sizeof C.dev_dir, "%s-device-%zu", relay_dir, run);
    C.dev_key = dev_key;
    if (init_replica(C.relay_dir, C.relay_key) != 0 || init_replica(C.dev_dir, dev_key[0]) != 0)
        goto out;
    if (b) {
        res->verify_before_ms = shoal__bench_verify_ms(b, blen, 0, &cpu_before);
        if (res->verify_before_ms < 0)
            goto out;
    }
    if ((pid[0] = shoal__bench_spawn(initial_relay_main, NULL)) < 0 ||
        wait_state(SLOT_RELAY, pid[0], ST_READY, 120, "relay") != 0)
        goto out;
    colon = strrchr(C.sh->slot[SLOT_RELAY].endpoint, ':');
    pa.stop = &C.sh->stop;
    pa.state = &C.sh->slot[SLOT_PROXY].state;
    pa.endpoint = C.sh->slot[SLOT_PROXY].endpoint;
    pa.endpoint_len = sizeof C.sh->slot[SLOT_PROXY].endpoint;
    pa.err = C.sh->slot[SLOT_PROXY].err;
    pa.err_len = sizeof C.sh->slot[SLOT_PROXY].err;
    pa.up = &C.sh->proxy_up;
    pa.down = &C.sh->proxy_down;
    pa.target_port = colon ? atoi(colon + 1) : 0;
    if ((pid[2] = shoal__bench_spawn(shoal__bench_proxy_main, &pa)) < 0 ||
        wait_state(SLOT_PROXY, pid[2], ST_READY, 10, "proxy") != 0)
        goto out;
    C.connect_ep = C.sh->slot[SLOT_PROXY].endpoint;
    if ((pid[1] = shoal__bench_spawn(initial_device_main, NULL)) < 0 ||
        wait_state(SLOT_WRITER, pid[1], ST_READY, 60, "device") != 0)
        goto out;
    atomic_store(&C.sh->go, 1);
    if (wait_state(SLOT_WRITER, pid[1], ST_DONE, 900, "device") != 0)
        goto out;
    res->ms = C.sh->view_ms;
    res->sync_ms = C.sh->sync_ms;
    res->up = C.sh->up;
    res->down = C.sh->down;
    res->held = C.sh->held;
    rc = 0;
out:
    if (stop_all(pid, cpu, 3) != 0)
        rc = -1;
    res->cpu_relay_s = cpu[0];
    res->cpu_device_s = cpu[1];
    /* what the device received: its export */
    if (rc == 0) {
        e = shoal__bench_open_replica(C.dev_dir, false, NULL, &r);
        if (e == SHOAL_OK)
            e = shoal_export(r, NULL, bundle, bundle_len);
        shoal_replica_close(r);
        if (e != SHOAL_OK) {
            fprintf(stderr, "shoal-bench sync: device export: %s\n", shoal_strerror(e));
            rc = -1;
        } else {
            res->changes = shoal__bench_bundle_count(*bundle, *bundle_len);
            res->raw = shoal__bench_bundle_raw_bytes(*bundle_len);
            if (res->changes != res->held * DOC_CHANGES) {
                fprintf(stderr, "shoal-bench sync: the device holds %llu changes, not %llu\n",
                        (unsigned long long)res->changes,
                        (unsigned long long)(res->held * DOC_CHANGES));
                rc = -1;
            }
        }
    }
    if (rc == 0 && b) {
        res->verify_after_ms = shoal__bench_verify_ms(b, blen, 0, &cpu_after);
        if (res->verify_after_ms < 0)
            rc = -1;
        res->verify_ms = (res->verify_before_ms + res->verify_after_ms) / 2.0;
        res->verify_cpu_ms = (cpu_before + cpu_after) / 2.0;
    }
    shoal__bench_rmtree(C.dev_dir);
    return rc;
}

static int
bench_initial(const shoal__bench_partial_opts *o, const char *dir)
{
    init_result r[MAX_RUNS], warm;
    double ms[MAX_RUNS], sms[MAX_RUNS], vms[MAX_RUNS], ratio[MAX_RUNS], wire[MAX_RUNS];
    double vc[MAX_RUNS], cr[MAX_RUNS], cd[MAX_RUNS];
    char relay_dir[512];
    gen_arg ga;
    uint8_t *b = NULL, *nb = NULL;
    size_t blen = 0, nblen = 0, k;
    uint64_t t0 = now_ns();
    double build_s, med_ratio, med_wire, raw;
    pid_t pid;
    int rc = 1;

    snprintf(relay_dir, sizeof relay_dir, "%s/initial-relay", dir);
    ga.dir = relay_dir;
    ga.docs = o->docs;
    C.docs = o->docs;
    if ((pid = shoal__bench_spawn(gen_initial, &ga)) < 0 ||
        shoal__bench_reap(pid, 1800000, NULL) != 0)
        goto out;
    build_s = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr, "  partial-initial relay: %llu documents x %d changes, built in %.1f s\n",
            (unsigned long long)o->docs, DOC_CHANGES, build_s);
    /* a warm-up sync: the bundle for the floors, and the relay's pages in
     * the page cache for every timed run alike */
    if (initial_once(relay_dir, 0, NULL, 0, &warm, &b, &blen) != 0) {
        fprintf(stderr, "shoal-bench sync: partial-initial warm-up failed\n");
        goto out;
    }
    fprintf(stderr, "  partial-initial warm-up: %.1f ms, %llu documents, %llu changes\n", warm.ms,
            (unsigned long long)warm.held, (unsigned long long)warm.changes);
    for (k = 0; k < o->runs; k++) {
        if (initial_once(relay_dir, k + 1, b, blen, &r[k], &nb, &nblen) != 0) {
            fprintf(stderr, "shoal-bench sync: partial-initial run %zu failed\n", k + 1);
            goto out;
        }
        if (nblen != blen) {
            fprintf(stderr, "shoal-bench sync: run %zu received %zu bundle bytes, not %zu\n", k + 1,
                    nblen, blen);
            goto out;
        }
        shoal_free(nb);
        nb = NULL;
        ms[k] = r[k].ms;
        sms[k] = r[k].sync_ms;
        vms[k] = r[k].verify_ms;
        vc[k] = r[k].verify_cpu_ms;
        ratio[k] = r[k].ms / r[k].verify_ms;
        wire[k] = (double)(r[k].up + r[k].down);
        cr[k] = r[k].cpu_relay_s;
        cd[k] = r[k].cpu_device_s;
        fprintf(stderr,
                "  partial-initial run %zu: %.1f ms (sync returned at %.1f), verify floor "
                "%.1f ms (before %.1f, after %.1f; %.2fx); wire %llu up + %llu down bytes "
                "(%.3fx raw %zu); cpu relay %.2f s, device %.2f s\n",
                k + 1, ms[k], sms[k], vms[k], r[k].verify_before_ms, r[k].verify_after_ms, ratio[k],
                (unsigned long long)r[k].up, (unsigned long long)r[k].down,
                wire[k] / (double)r[k].raw, r[k].raw, cr[k], cd[k]);
    }
    raw = (double)r[0].raw;
    med_ratio = shoal__bench_median_of(ratio, o->runs);
    med_wire = shoal__bench_median_of(wire, o->runs);
    printf("{\"bench\":\"sync\",\"variant\":\"partial-initial\",\"docs\":%llu,"
           "\"changes_per_doc\":%d,\"subscription\":\"store_id == %d\",\"view_docs\":%llu,"
           "\"changes\":%llu,\"ms\":%.1f",
           (unsigned long long)o->docs, DOC_CHANGES, INIT_STORE, (unsigned long long)r[0].held,
           (unsigned long long)r[0].changes, shoal__bench_median_of(ms, o->runs));
    shoal__bench_print_runs("runs_ms", ms, o->runs, 1);
    printf(",\"sync_ms\":%.1f,\"verify_floor_ms\":%.1f", shoal__bench_median_of(sms, o->runs),
           shoal__bench_median_of(vms, o->runs));
    shoal__bench_print_runs("verify_floor_runs_ms", vms, o->runs, 1);
    printf(",\"verify_floor_cpu_ms\":%.1f,\"time_ratio\":%.2f", shoal__bench_median_of(vc, o->runs),
           med_ratio);
    shoal__bench_print_runs("runs_time_ratio", ratio, o->runs, 2);
    printf(",\"wire_bytes\":%.0f", med_wire);
    shoal__bench_print_runs("runs_wire_bytes", wire, o->runs, 0);
    printf(",\"wire_bytes_to_relay\":%llu,\"wire_bytes_from_relay\":%llu,"
           "\"wire_counted_by\":\"tcp-proxy\",\"raw_bytes\":%.0f,\"bytes_ratio\":%.3f,"
           "\"cpu_relay_s\":%.2f,\"cpu_device_s\":%.2f,\"build_s\":%.1f,"
           "\"target_time_ratio\":1.5,\"target_bytes_ratio\":1.2,\"time_met\":%s,"
           "\"bytes_met\":%s,\"loadavg\":%.2f,\"runs\":%zu}\n",
           (unsigned long long)r[0].up, (unsigned long long)r[0].down, raw, med_wire / raw,
           shoal__bench_median_of(cr, o->runs), shoal__bench_median_of(cd, o->runs), build_s,
           shoal__bench_yesno(med_ratio <= 1.5), shoal__bench_yesno(med_wire / raw <= 1.2),
           shoal__bench_load1(), o->runs);
    fflush(stdout);
    rc = 0;
out:
    shoal_free(b);
    shoal_free(nb);
    shoal__bench_rmtree(relay_dir);
    return rc;
}

/* -------------------------------------------------------- partial-relay */

/* The subscriptions of device j, as predicates with literal values: four
 * stores, two price ranges, two categories under a price, a store under a
 * price, and either the top prices (partial) or every hot document
 * (partial-all).  About 1 % of the documents in all. */
static void
device_subs(uint64_t j, bool all, char where[SUBS][96])
{
    uint64_t s = C.stores, k;

    for (k = 0; k < 4; k++)
        snprintf(where[k], sizeof where[k], "store_id == %llu",
                 (unsigned long long)((4 * j + k) % s));
    for (k = 0; k < 2; k++) {
        uint64_t lo = (2 * j + k) * 997 % (PRICES - 100);

        snprintf(where[4 + k], sizeof where[4 + k], "price >= %llu AND price < %llu",
                 (unsigned long long)lo, (unsigned long long)(lo + 100));
    }
    for (k = 0; k < 2; k++)
        snprintf(where[6 + k], sizeof where[6 + k], "category == \"c%02u\" AND price < 2000",
                 (unsigned)((j + k) % CATS));
    snprintf(where[8], sizeof where[8], "store_id == %llu AND price < 50000",
             (unsigned long long)((4 * j + 3 + s / 2) % s));
    if (all)
        snprintf(where[9], sizeof where[9], "hot == 1");
    else
        snprintf(where[9], sizeof where[9], "price > %llu",
                 (unsigned long long)(PRICES - 100 - j % 100));
}

/* The seed of partial-relay: base documents p000000.. with store_id (10
 * documents a store), category, price and hot (every HOT_EVERY-th), one
 * change each. */
static int
gen_seed(void *argp)
{
    gen_arg *a = argp;
    static const char *const f3[3] = { "store_id", "price", "hot" };
    shoal_replica *r = NULL;
    shoal_err e = shoal__bench_open_replica(a->dir, false, "seed", &r);
    uint64_t at;

    for (at = 0; e == SHOAL_OK && at < a->docs;) {
        shoal_txn *t = NULL;
        uint64_t k;

        if ((e = shoal_txn_begin(r, &t)) != SHOAL_OK)
            break;
        for (k = 0; e == SHOAL_OK && k < GEN_BATCH && at < a->docs; k++, at++) {
            char id[24], cat[8];
            int64_t v[3] = { (int64_t)(at % C.stores), (int64_t)(at * 7919 % PRICES),
                             at % HOT_EVERY == 0 };

            snprintf(id, sizeof id, "p%06llu", (unsigned long long)at);
            snprintf(cat, sizeof cat, "c%02u", (unsigned)(at * 7 % CATS));
            e = set_fields(t, id, f3, v, 3, cat);
        }
        if (e == SHOAL_OK)
            e = shoal_txn_commit(t);
        else
            shoal_txn_abort(t);
    }
    if (e == SHOAL_OK)
        e = shoal_replica_flush(r);
    if (e != SHOAL_OK)
        fprintf(stderr, "shoal-bench sync: partial-relay seed: %s\n", shoal_strerror(e));
    shoal_replica_close(r);
    return e == SHOAL_OK ? 0 : -1;
}

/* The document that ends window k: it matches every device's 10th
 * subscription, in both partial configurations (a price above every
 * bound; hot). */
static void
end_marker_id(char *id, size_t n, int k)
{
    snprintf(id, n, "end%02d", k);
}

/* R: allow W and every device, listen; per window, read the CPU clock
 * when the parent opens it and when the parent closes it; at the end,
 * count the checked devices' views. */
static int
relay_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_RELAY];
    shoal_replica *r = NULL;
    char *bound = NULL;
    uint64_t j;
    shoal_err e;
    int k;

    (void)arg;
    if ((e = shoal__bench_open_replica(C.relay_dir, false, "relay", &r)) != SHOAL_OK) {
        fail(s, "open", e, NULL);
        return -1;
    }
    e = shoal_net_allow(r, C.writer_key);
    for (j = 0; e == SHOAL_OK && C.config != CF_NONE && j < C.peers; j++)
        e = shoal_net_allow(r, C.dev_key[j]);
    if (e == SHOAL_OK)
        e = shoal_net_listen(r, "tcp://127.0.0.1:*", &bound);
    if (e != SHOAL_OK) {
        fail(s, "listen", e, r);
        goto out;
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", bound);
    shoal_free(bound);
    atomic_store(&s->state, ST_READY);
    /* a window without changes first: what 100 idle links cost */
    if (wait_level(&C.sh->idle, 1, 600) == 0) {
        uint64_t t0 = now_ns();
        double c0 = cpu_now_s();

        while (atomic_load(&C.sh->idle) < 2 && !atomic_load(&C.sh->stop))
            shoal__bench_sleep_ms(20);
        C.sh->idle_cpu_s = cpu_now_s() - c0;
        C.sh->idle_s = (double)(now_ns() - t0) / 1e9;
        atomic_store(&C.sh->idle, 3);
    }
    for (k = 1; k <= (int)C.runs; k++) {
        uint64_t sent0, t0;
        double c0;

        if (wait_level(&C.sh->window, k, 600) != 0)
            goto out;
        sent0 = peer_stat(r, NULL, C.writer_key, SHOAL_PS_SENT);
        t0 = now_ns();
        c0 = cpu_now_s();
        atomic_store(&C.sh->armed, k);
        /* wake rarely: this loop's own CPU is inside the window */
        while (atomic_load(&C.sh->end) < k && !atomic_load(&C.sh->stop))
            shoal__bench_sleep_ms(20);
        C.sh->relay_cpu_s[k - 1] = cpu_now_s() - c0;
        C.sh->window_s[k - 1] = (double)(now_ns() - t0) / 1e9;
        C.sh->sent[k - 1] = peer_stat(r, NULL, C.writer_key, SHOAL_PS_SENT) - sent0;
        atomic_store(&C.sh->rdone, k);
    }
    /* the views of a few devices, spread over the range, by R's state */
    for (j = 0; j < C.peers; j++)
        C.sh->expect[j] = -1;
    for (j = 0; (C.config == CF_PARTIAL || C.config == CF_PARTIAL_ALL) && j < C.peers;
         j += C.peers / CHECKED ? C.peers / CHECKED : 1) {
        char where[SUBS][96], text[SUBS * 100];
        size_t i, len = 0;
        uint64_t n = 0;

        device_subs(j, C.config == CF_PARTIAL_ALL, where);
        for (i = 0; i < SUBS; i++)
            len +=
                (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? " OR " : "", where[i]);
        if ((e = count_docs(r, text, &n)) != SHOAL_OK) {
            fail(s, "count", e, r);
            goto out;
        }
        C.sh->expect[j] = (int64_t)n;
    }
    atomic_store(&s->state, ST_DONE);
    linger();
out:
    shoal_replica_close(r);
    return atomic_load(&s->state) == ST_DONE ? 0 : -1;
}

/* W: linked to R; per window, once R is armed, --incoming changes to hot
 * documents (70 % price, 30 % store_id), PACE_US apart, then the window's
 * end marker; the window is done for W once R acknowledged them all (W's
 * lag for R is 0). */
static int
writer_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_WRITER];
    shoal_replica *r = NULL;
    uint64_t deadline, i, rnd = 0x9e3779b97f4a7c15ull, per = C.incoming + 1;
    uint64_t hot = (C.base + HOT_EVERY - 1) / HOT_EVERY;
    shoal_err e;
    int k;

    (void)arg;
    if ((e = shoal__bench_open_replica(C.writer_dir, false, "writer", &r)) != SHOAL_OK) {
        fail(s, "open", e, NULL);
        return -1;
    }
    if ((e = shoal_net_connect(r, C.sh->slot[SLOT_RELAY].endpoint, C.relay_key)) != SHOAL_OK) {
        fail(s, "connect", e, r);
        goto out;
    }
    deadline = now_ns() + 60ull * 1000000000ull;
    while (peer_stat(r, C.relay_key, NULL, SHOAL_PS_CONNECTED) == 0 && now_ns() < deadline)
        shoal__bench_sleep_ms(5);
    atomic_store(&s->state, ST_READY);
    for (k = 1; k <= (int)C.runs; k++) {
        uint64_t start;

        if (wait_level(&C.sh->armed, k, 600) != 0)
            goto out;
        start = now_ns();
        for (i = 0; i < per && !atomic_load(&C.sh->stop); i++) {
            uint64_t due = start + i * PACE_US * 1000ull, now = now_ns();
            char id[24];

            if (due > now)
                shoal__bench_sleep_ms((double)(due - now) / 1e6);
            if (i < C.incoming) {
                uint64_t x = next_rand(&rnd), d = x % hot * HOT_EVERY;

                snprintf(id, sizeof id, "p%06llu", (unsigned long long)d);
                if ((x >> 32) % 10 < 3)
                    e = commit_int(r, id, "store_id", (int64_t)(next_rand(&rnd) % C.stores));
                else
                    e = commit_int(r, id, "price", (int64_t)(next_rand(&rnd) % PRICES));
            } else {
                static const char *const f2[2] = { "price", "hot" };
                int64_t v[2] = { 1000000000, 1 };
                shoal_txn *t = NULL;

                end_marker_id(id, sizeof id, k);
                if ((e = shoal_txn_begin(r, &t)) == SHOAL_OK) {
                    e = set_fields(t, id, f2, v, 2, NULL);
                    if (e == SHOAL_OK)
                        e = shoal_txn_commit(t);
                    else
                        shoal_txn_abort(t);
                }
            }
            if (e != SHOAL_OK) {
                fail(s, "commit", e, r);
                goto out;
            }
        }
        C.sh->writer_s[k - 1] = (double)(now_ns() - start) / 1e9;
        deadline = now_ns() + 300ull * 1000000000ull;
        while ((peer_stat(r, C.relay_key, NULL, SHOAL_PS_SENT) < per * (uint64_t)k ||
                peer_stat(r, C.relay_key, NULL, SHOAL_PS_LAG) > 0) &&
               now_ns() < deadline && !atomic_load(&C.sh->stop))
            shoal__bench_sleep_ms(2);
        if (now_ns() >= deadline) {
            snprintf(s->err, sizeof s->err, "the relay did not acknowledge window %d", k);
            atomic_store(&s->state, ST_FAILED);
            goto out;
        }
        atomic_store(&C.sh->wdone, k);
    }
    atomic_store(&s->state, ST_DONE);
    linger();
out:
    shoal_replica_close(r);
    return atomic_load(&s->state) == ST_DONE ? 0 : -1;
}

/* A process of devices [lo, hi): open, subscribe, link; ready once each is
 * linked (full) or complete (partial); window k is done once each holds
 * its end marker; at the end, count what each holds. */
static int
devices_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_DEV0 + C.proc];
    uint64_t lo = C.peers * (uint64_t)C.proc / DEV_PROCS;
    uint64_t hi = C.peers * (uint64_t)(C.proc + 1) / DEV_PROCS, n = hi - lo, j, left, deadline;
    bool partial = C.config == CF_PARTIAL || C.config == CF_PARTIAL_ALL;
    shoal_replica **r = calloc(n ? n : 1, sizeof *r);
    bool *done = calloc(n ? n : 1, sizeof *done);
    shoal_err e = SHOAL_OK;
    int k, rc = -1;

    (void)arg;
    if (!r || !done) {
        snprintf(s->err, sizeof s->err, "out of memory");
        atomic_store(&s->state, ST_FAILED);
        goto out;
    }
    for (j = lo; j < hi; j++) {
        char dir[700];
        shoal_replica *d = NULL;

        snprintf(dir, sizeof dir, "%s/d%04llu", C.dev_dir, (unsigned long long)j);
        if ((e = shoal__bench_open_replica(dir, false, "device", &d)) != SHOAL_OK) {
            fail(s, "open", e, NULL);
            goto out;
        }
        r[j - lo] = d;
        if (partial) {
            char where[SUBS][96], name[8];
            size_t i;

            device_subs(j, C.config == CF_PARTIAL_ALL, where);
            for (i = 0; e == SHOAL_OK && i < SUBS; i++) {
                snprintf(name, sizeof name, "s%zu", i);
                e = subscribe(d, name, where[i]);
            }
            if (e != SHOAL_OK) {
                fail(s, "subscribe", e, d);
                goto out;
            }
        }
        if ((e = shoal_net_connect(d, C.sh->slot[SLOT_RELAY].endpoint, C.relay_key)) != SHOAL_OK) {
            fail(s, "connect", e, d);
            goto out;
        }
    }
    deadline = now_ns() + 300ull * 1000000000ull;
    for (j = 0; j < n; j++)
        while (!(partial ? all_complete(r[j])
                         : peer_stat(r[j], C.relay_key, NULL, SHOAL_PS_CONNECTED) > 0)) {
            if (now_ns() > deadline || atomic_load(&C.sh->stop)) {
                snprintf(s->err, sizeof s->err, "device %llu not ready",
                         (unsigned long long)(lo + j));
                atomic_store(&s->state, ST_FAILED);
                goto out;
            }
            shoal__bench_sleep_ms(5);
        }
    atomic_store(&s->state, ST_READY);
    for (k = 1; k <= (int)C.runs; k++) {
        char id[24];

        end_marker_id(id, sizeof id, k);
        memset(done, 0, n * sizeof *done);
        if (wait_level(&C.sh->window, k, 600) != 0)
            goto out;
        deadline = now_ns() + 600ull * 1000000000ull;
        for (left = n; left > 0 && now_ns() < deadline && !atomic_load(&C.sh->stop);) {
            for (j = 0; j < n; j++)
                if (!done[j] && has_doc(r[j], id)) {
                    done[j] = true;
                    left--;
                }
            if (left)
                shoal__bench_sleep_ms(5);
        }
        if (left) {
            snprintf(s->err, sizeof s->err, "%llu devices lack the end of window %d",
                     (unsigned long long)left, k);
            atomic_store(&s->state, ST_FAILED);
            goto out;
        }
        atomic_store(&C.sh->ddone[C.proc], k);
    }
    atomic_store(&s->state, ST_DONE);
    if (wait_level(&C.sh->count, 1, 600) != 0)
        goto out;
    for (j = 0; j < n; j++) {
        uint64_t held = 0;

        if ((e = count_docs(r[j], NULL, &held)) != SHOAL_OK) {
            fail(s, "count", e, r[j]);
            goto out;
        }
        C.sh->dev_held[lo + j] = held;
    }
    atomic_store(&s->state, ST_COUNTED);
    rc = 0;
    linger();
out:
    for (j = 0; r && j < n; j++)
        shoal_replica_close(r[j]);
    free(r);
    free(done);
    return rc;
}

typedef struct relay_result {
    double cpu_us[MAX_RUNS];   /* R's CPU per incoming change, per window */
    double net_us[MAX_RUNS];   /* the same less the idle rate over the window */
    double idle_cpu_ms_per_s;  /* R's CPU with the links up and no change */
    double sent[MAX_RUNS];     /* changes R sent to the devices per incoming change */
    double window_s[MAX_RUNS]; /* open -> close */
    double writer_s[MAX_RUNS];
    double cpu_relay_s, cpu_devices_s, cpu_writer_s; /* whole processes (wait4) */
    double setup_s;                                  /* start -> every device ready */
    double made_s;                                   /* start -> every replica directory made */
    size_t checked;
} relay_result;

/* One configuration: set up R, W and the devices, run --runs windows,
 * check the views, tear down. */
static int
relay_config(const char *seed, const char *dir, int config, relay_result *res)
{
    pid_t pid[NSLOTS];
    double cpu[NSLOTS];
    uint64_t j, per = C.incoming + 1, t0 = now_ns();
    bool partial = config == CF_PARTIAL || config == CF_PARTIAL_ALL;
    int p, k, nprocs = config == CF_NONE ? 0 : DEV_PROCS, rc = -1;

    memset(pid, 0, sizeof pid);
    memset(cpu, 0, sizeof cpu);
    memset(res, 0, sizeof *res);
    reset_shared();
    C.config = config;
    snprintf(C.run_dir, sizeof C.run_dir, "%s/relay-%s", dir, config_names[config]);
    snprintf(C.relay_dir, sizeof C.relay_dir, "%s/R", C.run_dir);
    snprintf(C.writer_dir, sizeof C.writer_dir, "%s/W", C.run_dir);
    snprintf(C.dev_dir, sizeof C.dev_dir, "%s", C.run_dir);
    if (mkdir(C.run_dir, 0700) != 0 || copy_replica(seed, C.relay_dir, C.relay_key) != 0 ||
        copy_replica(seed, C.writer_dir, C.writer_key) != 0)
        goto out;
    for (j = 0; config != CF_NONE && j < C.peers; j++) {
        char d[700];

        snprintf(d, sizeof d, "%s/d%04llu", C.dev_dir, (unsigned long long)j);
        if (partial ? init_replica(d, C.dev_key[j]) : copy_replica(seed, d, C.dev_key[j]))
            goto out;
    }
    res->made_s = (double)(now_ns() - t0) / 1e9;
    if ((pid[SLOT_RELAY] = shoal__bench_spawn(relay_main, NULL)) < 0 ||
        wait_state(SLOT_RELAY, pid[SLOT_RELAY], ST_READY, 120, "relay") != 0)
        goto out;
    if ((pid[SLOT_WRITER] = shoal__bench_spawn(writer_main, NULL)) < 0)
        goto out;
    for (p = 0; p < nprocs; p++) {
        C.proc = p;
        if ((pid[SLOT_DEV0 + p] = shoal__bench_spawn(devices_main, NULL)) < 0)
            goto out;
    }
    if (wait_state(SLOT_WRITER, pid[SLOT_WRITER], ST_READY, 120, "writer") != 0)
        goto out;
    for (p = 0; p < nprocs; p++)
        if (wait_state(SLOT_DEV0 + p, pid[SLOT_DEV0 + p], ST_READY, 600, "devices") != 0)
            goto out;
    res->setup_s = (double)(now_ns() - t0) / 1e9;
    shoal__bench_sleep_ms(300); /* handshakes and initial feeds settle */
    atomic_store(&C.sh->idle, 1);
    shoal__bench_sleep_ms((double)per * PACE_US / 1000.0);
    atomic_store(&C.sh->idle, 2);
    if (wait_level(&C.sh->idle, 3, 60) != 0)
        goto out;
    res->idle_cpu_ms_per_s = C.sh->idle_cpu_s * 1e3 / C.sh->idle_s;
    for (k = 1; k <= (int)C.runs; k++) {
        uint64_t deadline = now_ns() + (uint64_t)(((double)per * PACE_US / 1e6 + 300) * 1e9);

        atomic_store(&C.sh->window, k);
        for (;;) {
            bool all = atomic_load(&C.sh->wdone) >= k;

            for (p = 0; p < nprocs; p++)
                all = all && atomic_load(&C.sh->ddone[p]) >= k;
            if (all)
                break;
            for (p = 0; p < NSLOTS; p++)
                if (atomic_load(&C.sh->slot[p].state) == ST_FAILED) {
                    fprintf(stderr, "shoal-bench sync: partial-relay %s: %s\n",
                            config_names[config], C.sh->slot[p].err);
                    goto out;
                }
            if (now_ns() > deadline) {
                fprintf(stderr, "shoal-bench sync: partial-relay %s: window %d timed out\n",
                        config_names[config], k);
                goto out;
            }
            shoal__bench_sleep_ms(2);
        }
        shoal__bench_sleep_ms(100); /* the last acknowledgements */
        atomic_store(&C.sh->end, k);
        if (wait_level(&C.sh->rdone, k, 60) != 0)
            goto out;
        res->cpu_us[k - 1] = C.sh->relay_cpu_s[k - 1] * 1e6 / (double)per;
        res->net_us[k - 1] =
            (C.sh->relay_cpu_s[k - 1] - res->idle_cpu_ms_per_s / 1e3 * C.sh->window_s[k - 1]) *
            1e6 / (double)per;
        res->sent[k - 1] = (double)C.sh->sent[k - 1] / (double)per;
        res->window_s[k - 1] = C.sh->window_s[k - 1];
        res->writer_s[k - 1] = C.sh->writer_s[k - 1];
    }
    if (wait_state(SLOT_RELAY, pid[SLOT_RELAY], ST_DONE, 600, "relay") != 0)
        goto out;
    atomic_store(&C.sh->count, 1);
    for (p = 0; p < nprocs; p++)
        if (wait_state(SLOT_DEV0 + p, pid[SLOT_DEV0 + p], ST_COUNTED, 600, "devices") != 0)
            goto out;
    rc = 0;
    for (j = 0; j < C.peers; j++) {
        if (!partial || C.sh->expect[j] < 0)
            continue;
        res->checked++;
        if ((uint64_t)C.sh->expect[j] != C.sh->dev_held[j]) {
            fprintf(stderr,
                    "shoal-bench sync: %s device %llu holds %llu documents; %lld match "
                    "its subscriptions on the relay\n",
                    config_names[config], (unsigned long long)j,
                    (unsigned long long)C.sh->dev_held[j], (long long)C.sh->expect[j]);
            rc = -1;
        }
    }
out:
    if (stop_all(pid, cpu, NSLOTS) != 0)
        rc = -1;
    res->cpu_relay_s = cpu[SLOT_RELAY];
    res->cpu_writer_s = cpu[SLOT_WRITER];
    for (p = 0; p < nprocs; p++)
        res->cpu_devices_s += cpu[SLOT_DEV0 + p];
    shoal__bench_rmtree(C.run_dir);
    return rc;
}

static int
bench_relay(const shoal__bench_partial_opts *o, const char *dir)
{
    static relay_result r[NCONFIGS];
    double added[MAX_RUNS], same[MAX_RUNS], pp[NCONFIGS][MAX_RUNS];
    double nadded[MAX_RUNS], nsame[MAX_RUNS];
    char seed[512];
    gen_arg ga;
    pid_t pid;
    size_t k;
    int c, rc = 1;
    double ma, ms;

    C.peers = o->peers;
    C.incoming = o->incoming;
    C.runs = o->runs;
    C.base = o->docs / 10 < 200 ? 200 : o->docs / 10;
    C.stores = C.base / 10;
    C.dev_key = calloc(C.peers ? C.peers : 1, sizeof *C.dev_key);
    if (!C.dev_key)
        return 1;
    snprintf(seed, sizeof seed, "%s/relay-seed", dir);
    ga.dir = seed;
    ga.docs = C.base;
    if ((pid = shoal__bench_spawn(gen_seed, &ga)) < 0 || shoal__bench_reap(pid, 600000, NULL) != 0)
        goto out;
    for (c = 0; c < NCONFIGS; c++) {
        relay_result *x = &r[c];

        if (relay_config(seed, dir, c, x) != 0) {
            fprintf(stderr, "shoal-bench sync: partial-relay %s failed\n", config_names[c]);
            goto out;
        }
        for (k = 0; k < o->runs; k++)
            fprintf(stderr,
                    "  partial-relay %s window %zu: relay %.1f us cpu per incoming change "
                    "(%.1f beyond idle), %.2f sent per change; window %.2f s (writer %.2f s)\n",
                    config_names[c], k + 1, x->cpu_us[k], x->net_us[k], x->sent[k], x->window_s[k],
                    x->writer_s[k]);
        fprintf(stderr,
                "  partial-relay %s: set up in %.1f s (directories %.1f s); idle relay %.1f ms "
                "cpu per s; cpu s of the processes: relay %.2f, writer %.2f, devices %.2f; %zu "
                "views checked\n",
                config_names[c], x->setup_s, x->made_s, x->idle_cpu_ms_per_s, x->cpu_relay_s,
                x->cpu_writer_s, x->cpu_devices_s, x->checked);
    }
    for (k = 0; k < o->runs; k++) {
        added[k] = r[CF_PARTIAL].cpu_us[k] - r[CF_FULL].cpu_us[k];
        same[k] = r[CF_PARTIAL_ALL].cpu_us[k] - r[CF_FULL].cpu_us[k];
        nadded[k] = r[CF_PARTIAL].net_us[k] - r[CF_FULL].net_us[k];
        nsame[k] = r[CF_PARTIAL_ALL].net_us[k] - r[CF_FULL].net_us[k];
        for (c = 0; c < NCONFIGS; c++)
            pp[c][k] = (r[c].cpu_us[k] - r[CF_NONE].cpu_us[k]) / (double)C.peers;
    }
    ma = shoal__bench_median_of(added, o->runs);
    ms = shoal__bench_median_of(same, o->runs);
    printf("{\"bench\":\"sync\",\"variant\":\"partial-relay\",\"peers\":%llu,"
           "\"subscriptions_per_peer\":%d,\"base_docs\":%llu,\"hot_docs\":%llu,"
           "\"incoming_per_window\":%llu,\"pace_us\":%d",
           (unsigned long long)C.peers, SUBS, (unsigned long long)C.base,
           (unsigned long long)((C.base + HOT_EVERY - 1) / HOT_EVERY),
           (unsigned long long)(C.incoming + 1), PACE_US);
    for (c = 0; c < NCONFIGS; c++) {
        char name[64];

        printf(",\"%s_cpu_us_per_change\":%.1f", config_names[c],
               shoal__bench_median_of(r[c].cpu_us, o->runs));
        snprintf(name, sizeof name, "%s_runs_cpu_us", config_names[c]);
        shoal__bench_print_runs(name, r[c].cpu_us, o->runs, 1);
        printf(",\"%s_net_cpu_us_per_change\":%.1f,\"%s_idle_cpu_ms_per_s\":%.1f,"
               "\"%s_sent_per_change\":%.2f",
               config_names[c], shoal__bench_median_of(r[c].net_us, o->runs), config_names[c],
               r[c].idle_cpu_ms_per_s, config_names[c], shoal__bench_median_of(r[c].sent, o->runs));
        if (c != CF_NONE)
            printf(",\"%s_cpu_us_per_change_per_peer\":%.2f", config_names[c],
                   shoal__bench_median_of(pp[c], o->runs));
    }
    printf(",\"added_us\":%.1f", ma);
    shoal__bench_print_runs("runs_added_us", added, o->runs, 1);
    printf(",\"added_same_sends_us\":%.1f", ms);
    shoal__bench_print_runs("runs_added_same_sends_us", same, o->runs, 1);
    printf(",\"net_added_us\":%.1f,\"net_added_same_sends_us\":%.1f",
           shoal__bench_median_of(nadded, o->runs), shoal__bench_median_of(nsame, o->runs));
    printf(",\"target_added_us\":5,\"added_met\":%s,\"added_same_sends_met\":%s,"
           "\"loadavg\":%.2f,\"runs\":%zu}\n",
           shoal__bench_yesno(ma <= 5.0), shoal__bench_yesno(ms <= 5.0), shoal__bench_load1(),
           o->runs);
    fflush(stdout);
    rc = 0;
out:
    shoal__bench_rmtree(seed);
    free(C.dev_key);
    C.dev_key = NULL;
    return rc;
}

/* ------------------------------------------------------ partial-latency */

static void
sample_id(char *id, size_t n, uint64_t k)
{
    snprintf(id, n, "s%05llu", (unsigned long long)k);
}

/* The relay's documents: one per sample in the device's store (price 0),
 * and LAT_OTHERS over 10 stores. */
static int
gen_latency(void *argp)
{
    gen_arg *a = argp;
    static const char *const f2[2] = { "store_id", "price" };
    shoal_replica *r = NULL;
    shoal_err e = shoal__bench_open_replica(a->dir, false, "relay", &r);
    uint64_t at, total = a->docs + LAT_OTHERS;

    for (at = 0; e == SHOAL_OK && at < total;) {
        shoal_txn *t = NULL;
        uint64_t k;

        if ((e = shoal_txn_begin(r, &t)) != SHOAL_OK)
            break;
        for (k = 0; e == SHOAL_OK && k < 1000 && at < total; k++, at++) {
            char id[24];
            int64_t v[2] = { LAT_STORE, 0 };

            if (at < a->docs) {
                sample_id(id, sizeof id, at);
            } else {
                snprintf(id, sizeof id, "o%05llu", (unsigned long long)(at - a->docs));
                v[0] = (int64_t)(at % 10);
                v[1] = (int64_t)at;
            }
            e = set_fields(t, id, f2, v, 2, NULL);
        }
        if (e == SHOAL_OK)
            e = shoal_txn_commit(t);
        else
            shoal_txn_abort(t);
    }
    if (e == SHOAL_OK)
        e = shoal_replica_flush(r);
    shoal_replica_close(r);
    return e == SHOAL_OK ? 0 : -1;
}

/* The relay: per sample, an edit in view, a move out, a move back in;
 * each waits (bounded) until the device saw it, then 1 to 2 ms. */
static int
lat_relay_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_RELAY];
    shoal_replica *r = NULL;
    char *bound = NULL;
    uint64_t k, rnd = 0x2545f4914f6cdd1dull, budget;
    shoal_err e;
    int kind;

    (void)arg;
    if ((e = shoal__bench_open_replica(C.relay_dir, C.durable, "relay", &r)) != SHOAL_OK) {
        fail(s, "open", e, NULL);
        return -1;
    }
    if ((e = shoal_net_allow(r, C.dev_key[0])) != SHOAL_OK ||
        (e = shoal_net_listen(r, "tcp://127.0.0.1:*", &bound)) != SHOAL_OK) {
        fail(s, "listen", e, r);
        goto out;
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", bound);
    shoal_free(bound);
    atomic_store(&s->state, ST_READY);
    if (wait_level(&C.sh->go, 1, 300) != 0)
        goto out;
    budget = now_ns() + (uint64_t)LAT_BUDGET_S * 1000000000ull;
    for (k = 0; k < C.samples && !atomic_load(&C.sh->stop) && now_ns() < budget; k++) {
        C.sh->lat_done = k + 1;
        for (kind = K_UPDATE; kind <= K_ENTER; kind++) {
            uint64_t w = k * 3 + (uint64_t)kind + 1, t0, deadline;
            char id[24];

            sample_id(id, sizeof id, k);
            t0 = now_ns();
            atomic_store(&C.sh->t0, t0);
            atomic_store(&C.sh->want, w);
            if (kind == K_UPDATE)
                e = commit_int(r, id, "price", 1);
            else
                e = commit_int(r, id, "store_id", kind == K_LEAVE ? LAT_STORE + 1 : LAT_STORE);
            C.sh->commit_ns[kind][k] = now_ns() - t0;
            if (e != SHOAL_OK) {
                fail(s, "commit", e, r);
                goto out;
            }
            deadline = now_ns() + 5ull * 1000000000ull;
            while (atomic_load(&C.sh->seen) != w && now_ns() < deadline)
                shoal__bench_sleep_ms(0.05);
            shoal__bench_sleep_ms(1.0 + (double)(next_rand(&rnd) % 1000) / 1000.0);
        }
    }
    atomic_store(&C.sh->want, 0);
    atomic_store(&s->state, ST_DONE);
    linger();
out:
    shoal_replica_close(r);
    return atomic_load(&s->state) == ST_DONE ? 0 : -1;
}

/* The device: subscribed to the store, linked live; on every event (or
 * every 20 ms) it checks whether what the relay asked for has happened. */
static int
lat_device_main(void *arg)
{
    pslot *s = &C.sh->slot[SLOT_WRITER];
    shoal_replica *r = NULL;
    char where[64];
    uint64_t deadline;
    shoal_err e;

    (void)arg;
    snprintf(where, sizeof where, "store_id == %d", LAT_STORE);
    if ((e = shoal__bench_open_replica(C.dev_dir, C.durable, "device", &r)) != SHOAL_OK) {
        fail(s, "open", e, NULL);
        return -1;
    }
    if ((e = subscribe(r, "mine", where)) != SHOAL_OK ||
        (e = shoal_net_connect(r, C.sh->slot[SLOT_RELAY].endpoint, C.relay_key)) != SHOAL_OK) {
        fail(s, "subscribe", e, r);
        goto out;
    }
    deadline = now_ns() + 120ull * 1000000000ull;
    while (!all_complete(r) && now_ns() < deadline)
        shoal__bench_sleep_ms(5);
    if (!all_complete(r)) {
        snprintf(s->err, sizeof s->err, "the view was not complete within 120 s");
        atomic_store(&s->state, ST_FAILED);
        goto out;
    }
    atomic_store(&s->state, ST_READY);
    while (!atomic_load(&C.sh->stop)) {
        shoal_event *ev = NULL;
        uint64_t w = atomic_load(&C.sh->want), k;
        int kind;
        char id[24];
        bool hit;

        if (shoal_event_next(r, 20, &ev) == SHOAL_OK) {
            if (shoal_event_left(ev))
                C.sh->left_events++;
            shoal_event_free(ev);
        }
        w = atomic_load(&C.sh->want);
        if (w == 0 || atomic_load(&C.sh->seen) == w)
            continue;
        k = (w - 1) / 3;
        kind = (int)((w - 1) % 3);
        sample_id(id, sizeof id, k);
        if (kind == K_UPDATE)
            hit = int_field(r, id, "price") == 1;
        else if (kind == K_LEAVE)
            hit = !has_doc(r, id);
        else
            hit = int_field(r, id, "store_id") == LAT_STORE;
        if (hit) {
            uint64_t now = now_ns(), t0 = atomic_load(&C.sh->t0);

            C.sh->lat_ns[kind][k] = now > t0 ? now - t0 : 1;
            atomic_store(&C.sh->seen, w);
        }
    }
    atomic_store(&s->state, ST_DONE);
out:
    shoal_replica_close(r);
    return 0;
}

typedef struct lat_result {
    double median[3], p99[3], max[3], commit_median[3];
    uint64_t seen[3], left_events, done;
} lat_result;

static int
latency_once(const char *dir, size_t run, lat_result *res)
{
    uint8_t dev_key[1][SHOAL_KEY_BYTES];
    pid_t pid[2] = { 0, 0 };
    gen_arg ga;
    double *v = NULL;
    pid_t g;
    int kind, rc = -1;
    uint64_t k;

    memset(res, 0, sizeof *res);
    reset_shared();
    memset(C.sh->lat_ns, 0, sizeof C.sh->lat_ns);
    snprintf(C.run_dir, sizeof C.run_dir, "%s/latency-%zu", dir, run);
    snprintf(C.relay_dir, sizeof C.relay_dir, "%s/R", C.run_dir);
    snprintf(C.dev_dir, sizeof C.dev_dir, "%s/D", C.run_dir);
    C.dev_key = dev_key;
    ga.dir = C.relay_dir;
    ga.docs = C.samples;
    if (mkdir(C.run_dir, 0700) != 0 || (g = shoal__bench_spawn(gen_latency, &ga)) < 0 ||
        shoal__bench_reap(g, 120000, NULL) != 0 || init_replica(C.relay_dir, C.relay_key) != 0 ||
        init_replica(C.dev_dir, dev_key[0]) != 0)
        goto out;
    if ((pid[0] = shoal__bench_spawn(lat_relay_main, NULL)) < 0 ||
        wait_state(SLOT_RELAY, pid[0], ST_READY, 120, "relay") != 0)
        goto out;
    if ((pid[1] = shoal__bench_spawn(lat_device_main, NULL)) < 0 ||
        wait_state(SLOT_WRITER, pid[1], ST_READY, 120, "device") != 0)
        goto out;
    atomic_store(&C.sh->go, 1);
    if (wait_state(SLOT_RELAY, pid[0], ST_DONE, (double)C.samples * 3 * 6 + 60, "relay") != 0)
        goto out;
    v = calloc(C.samples, sizeof *v);
    if (!v)
        goto out;
    res->done = C.sh->lat_done;
    rc = res->done > 0 ? 0 : -1;
    for (kind = K_UPDATE; kind <= K_ENTER; kind++) {
        size_t n = 0;

        for (k = 0; k < res->done; k++)
            if (C.sh->lat_ns[kind][k])
                v[n++] = (double)C.sh->lat_ns[kind][k] / 1e6;
        res->seen[kind] = n;
        res->median[kind] = shoal__bench_percentile(v, n, 50);
        res->p99[kind] = shoal__bench_percentile(v, n, 99);
        res->max[kind] = n ? v[n - 1] : 0;
        for (k = 0; k < res->done; k++)
            v[k] = (double)C.sh->commit_ns[kind][k] / 1e6;
        res->commit_median[kind] = shoal__bench_percentile(v, res->done, 50);
        if (n == 0)
            rc = -1;
    }
    res->left_events = C.sh->left_events;
out:
    if (stop_all(pid, NULL, 2) != 0)
        rc = -1;
    free(v);
    shoal__bench_rmtree(C.run_dir);
    return rc;
}

static int
bench_latency(const shoal__bench_partial_opts *o, const char *dir, bool durable)
{
    const char *name = durable ? "partial-latency" : "partial-latency-nondurable";
    double med[3][MAX_RUNS], p99[3][MAX_RUNS], com[3][MAX_RUNS];
    uint64_t left = 0, done = 0, seen[3] = { 0, 0, 0 };
    size_t k;
    int kind;

    C.samples = o->samples;
    C.durable = durable;
    for (k = 0; k < o->runs; k++) {
        lat_result r;

        if (latency_once(dir, k, &r) != 0) {
            fprintf(stderr, "shoal-bench sync: %s run %zu failed\n", name, k + 1);
            return 1;
        }
        left += r.left_events;
        done += r.done;
        for (kind = K_UPDATE; kind <= K_ENTER; kind++) {
            seen[kind] += r.seen[kind];
            med[kind][k] = r.median[kind];
            p99[kind][k] = r.p99[kind];
            com[kind][k] = r.commit_median[kind];
        }
        fprintf(stderr,
                "  %s run %zu: update %.3f / %.3f ms, leave %.3f / %.3f ms, enter %.3f / %.3f "
                "ms (median / p99; max %.3f, %.3f, %.3f); relay commit %.3f ms; %llu left "
                "events; %llu samples of %llu (seen %llu, %llu, %llu)\n",
                name, k + 1, r.median[0], r.p99[0], r.median[1], r.p99[1], r.median[2], r.p99[2],
                r.max[0], r.max[1], r.max[2], r.commit_median[0], (unsigned long long)r.left_events,
                (unsigned long long)r.done, (unsigned long long)o->samples,
                (unsigned long long)r.seen[0], (unsigned long long)r.seen[1],
                (unsigned long long)r.seen[2]);
    }
    printf("{\"bench\":\"sync\",\"variant\":\"%s\",\"durable\":%s,\"samples_per_run\":%llu,"
           "\"samples_taken\":%llu,\"seen_update\":%llu,\"seen_leave\":%llu,"
           "\"seen_enter\":%llu,\"budget_s_per_run\":%d",
           name, shoal__bench_yesno(durable), (unsigned long long)o->samples,
           (unsigned long long)done, (unsigned long long)seen[0], (unsigned long long)seen[1],
           (unsigned long long)seen[2], LAT_BUDGET_S);
    for (kind = K_UPDATE; kind <= K_ENTER; kind++) {
        char n1[48], n2[48];

        printf(",\"%s_median_ms\":%.3f,\"%s_p99_ms\":%.3f", kind_names[kind],
               shoal__bench_median_of(med[kind], o->runs), kind_names[kind],
               shoal__bench_median_of(p99[kind], o->runs));
        snprintf(n1, sizeof n1, "runs_%s_median_ms", kind_names[kind]);
        snprintf(n2, sizeof n2, "runs_%s_p99_ms", kind_names[kind]);
        shoal__bench_print_runs(n1, med[kind], o->runs, 3);
        shoal__bench_print_runs(n2, p99[kind], o->runs, 3);
    }
    printf(",\"leave_vs_update\":%.2f,\"enter_vs_update\":%.2f,\"relay_commit_median_ms\":%.3f,"
           "\"left_events\":%llu,\"loadavg\":%.2f,\"runs\":%zu}\n",
           shoal__bench_median_of(med[K_LEAVE], o->runs) /
               shoal__bench_median_of(med[K_UPDATE], o->runs),
           shoal__bench_median_of(med[K_ENTER], o->runs) /
               shoal__bench_median_of(med[K_UPDATE], o->runs),
           shoal__bench_median_of(com[K_UPDATE], o->runs), (unsigned long long)left,
           shoal__bench_load1(), o->runs);
    fflush(stdout);
    return 0;
}

/* ---------------------------------------------------------------- main */

int
shoal__bench_partial(const char *variant, const shoal__bench_partial_opts *o, const char *dir)
{
    static pshared *sh;
    int rc;

    if (o->runs > MAX_RUNS || o->peers > MAX_PEERS || o->samples > MAX_SAMPLES) {
        fprintf(stderr,
                "shoal-bench sync: partial variants take --runs <= %d, --peers <= %d, "
                "--samples <= %d\n",
                MAX_RUNS, MAX_PEERS, MAX_SAMPLES);
        return 1;
    }
    if (!sh && !(sh = map_shared(sizeof *sh)))
        return 1;
    memset(&C, 0, sizeof C);
    C.sh = sh;
    if (strcmp(variant, "partial-initial") == 0)
        rc = bench_initial(o, dir);
    else if (strcmp(variant, "partial-relay") == 0)
        rc = bench_relay(o, dir);
    else if (strcmp(variant, "partial-latency") == 0)
        rc = bench_latency(o, dir, true);
    else if (strcmp(variant, "partial-latency-nondurable") == 0)
        rc = bench_latency(o, dir, false);
    else
        rc = 2;
    return rc;
}
