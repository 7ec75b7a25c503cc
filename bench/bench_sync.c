/*
 * bench/bench_sync.c - `shoal-bench sync`: live sync over loopback through
 * the public network API (shoal_net_*), each figure next to a floor taken
 * in the same invocation.
 *
 * Variants (all by default, or any subset with --variant):
 *   catch-up               a fresh replica syncs (shoal_net_sync) with a
 *                          source holding --changes small signed changes of
 *                          10 authors; time until its full digest equals the
 *                          source's, and the TCP bytes both ways, counted by
 *                          a byte-counting loopback proxy between the two.
 *                          Floors: Ed25519 verification of those changes
 *                          alone (one core), and their raw signed bytes.
 *   latency-direct         commit on A -> visible on B (shoal_event_next,
 *                          then shoal_doc_get), A linked to B directly;
 *   latency-relay          the same with A and B both linked to a relay R;
 *   latency-*-nondurable   the same with non-durable replicas.
 *   throughput-durable     writer W, relay R, readers X1..X3, all durable;
 *                          W commits one change per commit as fast as it can
 *                          for --seconds; the readers' lag (changes, seconds).
 *   throughput-nondurable  the same, non-durable: end-to-end changes/s at the
 *                          readers, next to the verify floor of that topology
 *                          (cores x one core's verify rate / 4 verifying
 *                          processes).
 *   partial-initial, partial-relay, partial-latency,
 *   partial-latency-nondurable
 *                          partial sync (subscriptions): bench_partial.c.
 *
 * Every node is its own process, made with fork() before it opens anything
 * (the parent never starts a network engine, so no thread is forked).
 * Nodes talk to the parent through one shared anonymous mapping: a state
 * word per node, the bound endpoints, and the results.  CLOCK_MONOTONIC is
 * system-wide, so a timestamp written into a change by one process can be
 * compared with the clock of another.  Every wait is bounded; every child
 * is reaped (SIGKILL after a grace period); temp dirs are removed.
 */
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shoal.h"

enum {
    MAX_NODES = 8,
    MAX_RUNS = 64,
    MAX_SAMPLES = 100000,
    MAX_SEQ = 1 << 22, /* commit-time slots of the throughput writer */
    AUTHORS = 10,
    DOCS = 1000, /* documents the catch-up authors write to */
    READERS = 3,
    VERIFY_SAMPLE = 4000 /* changes of the per-run verify-rate sample */
};

/* Node states in the shared page. */
enum {
    ST_START = 0,
    ST_READY = 1,
    ST_DONE = 2,
    ST_FAILED = -1
};

typedef struct slot {
    _Atomic int state;
    _Atomic int listening; /* endpoint is set */
    char endpoint[128];    /* bound endpoint (listeners, the proxy) */
    char err[240];
    /* results */
    double ms;                   /* catch-up: connect -> digest equal */
    double sync_ms;              /* catch-up: shoal_net_sync returned */
    uint64_t wire_up, wire_down; /* catch-up: proxy bytes at digest-equal time */
    uint64_t count;              /* samples seen / changes written or received */
    uint64_t max_lag_changes;
    double max_lag_s;
    uint64_t done_ns;          /* reader: when it held every written change */
    uint64_t start_ns, end_ns; /* writer: first commit start, last commit end */
} slot;

typedef struct shared {
    _Atomic int go;                        /* parent -> nodes: start the measured phase */
    _Atomic int stop;                      /* parent -> nodes: close and exit */
    _Atomic uint64_t proxy_up, proxy_down; /* bytes client->server, server->client */
    _Atomic uint64_t written_seq;          /* throughput: writer's last committed seq */
    _Atomic int writer_done;
    uint64_t total_seq; /* valid once writer_done */
    slot slot[MAX_NODES];
    uint64_t commit_ns[MAX_SAMPLES]; /* latency: A's commit duration per sample */
    uint64_t lat_ns[MAX_SAMPLES];    /* latency: commit start -> visible on B (0: not seen) */
} shared;

typedef enum role {
    ROLE_IDLE,    /* relay or catch-up source: listen and wait */
    ROLE_CATCHUP, /* the fresh replica */
    ROLE_LAT_WRITER,
    ROLE_LAT_READER,
    ROLE_TP_WRITER,
    ROLE_TP_READER
} role;

typedef struct node {
    const char *name;
    char dir[512];
    uint8_t key[SHOAL_KEY_BYTES];
    role role;
    bool durable;
    bool listen;
    int allow[MAX_NODES];
    int nallow;
    int connect_to; /* node index, or -1 */
} node;

typedef struct topo {
    node n[MAX_NODES];
    int count;
    shared *sh;
    uint64_t *seq_ns; /* shared: commit-end time of each writer seq */
    pid_t pid[MAX_NODES];
    double cpu_s[MAX_NODES]; /* CPU seconds of each node, once reaped */
    /* parameters */
    uint64_t samples;
    double seconds;
    int writer;                   /* node index of the writer (throughput) */
    const char *connect_endpoint; /* catch-up: the proxy's endpoint */
    int source;                   /* catch-up: node index of the source */
    const uint8_t *source_digest; /* catch-up */
} topo;

typedef struct opts {
    uint64_t changes;
    uint64_t samples;
    double seconds;
    size_t runs;
    shoal__bench_partial_opts partial;
    bool want[16];
} opts;

static const char *const variant_names[] = {
    "catch-up",
    "latency-direct",
    "latency-relay",
    "latency-direct-nondurable",
    "latency-relay-nondurable",
    "throughput-durable",
    "throughput-nondurable",
    "partial-initial",
    "partial-relay",
    "partial-latency",
    "partial-latency-nondurable",
};
enum {
    V_CATCHUP,
    V_LAT_DIRECT,
    V_LAT_RELAY,
    V_LAT_DIRECT_ND,
    V_LAT_RELAY_ND,
    V_TP_DURABLE,
    V_TP_NONDURABLE,
    V_PARTIAL_INITIAL, /* the partial-* variants stay last */
    V_PARTIAL_RELAY,
    V_PARTIAL_LATENCY,
    V_PARTIAL_LATENCY_ND,
    NVARIANTS
};

static char *session_dir;

/* ------------------------------------------------------------- helpers */

static uint64_t
now_ns(void)
{
    return shoal__bench_now_ns();
}

static void
slot_fail(slot *s, const char *what, shoal_err e, shoal_replica *r)
{
    snprintf(s->err, sizeof s->err, "%s: %s%s%s", what, shoal_strerror(e), r ? ": " : "",
             r ? shoal_replica_errmsg(r) : "");
    atomic_store(&s->state, ST_FAILED);
}

/* Create the replica in dir (identity on first open) and copy its key. */
static int
make_replica(const char *dir, uint8_t key[SHOAL_KEY_BYTES])
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

/* -------------------------------------------------------- verify floor */

/* One core's verify rate (changes/s): the median of three passes over the
 * first VERIFY_SAMPLE changes of b. */
static double
verify_rate(const uint8_t *b, size_t len, double *cpu_rate)
{
    double v[3], c[3];
    size_t n = shoal__bench_bundle_count(b, len), i;

    if (n > VERIFY_SAMPLE)
        n = VERIFY_SAMPLE;
    for (i = 0; i < 3; i++) {
        v[i] = shoal__bench_verify_ms(b, len, n, &c[i]);
        if (v[i] <= 0 || c[i] <= 0)
            return -1.0;
    }
    *cpu_rate = (double)n * 1000.0 / shoal__bench_median(c, 3);
    return (double)n * 1000.0 / shoal__bench_median(v, 3);
}

/* Cores this process may run on. */
static int
ncores(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/* ------------------------------------------------------------ processes */

/* Wait until node i reaches state want (or fails, or its process ends),
 * for at most timeout_ms.  0 on success. */
static int
wait_state(topo *t, int i, int want, double timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_ms * 1e6);
    slot *s = &t->sh->slot[i];

    for (;;) {
        int st = atomic_load(&s->state), status;

        if (st >= want)
            return 0;
        if (st == ST_FAILED) {
            fprintf(stderr, "shoal-bench sync: %s failed: %s\n", t->n[i].name, s->err);
            return -1;
        }
        if (t->pid[i] > 0 && waitpid(t->pid[i], &status, WNOHANG) == t->pid[i]) {
            t->pid[i] = 0;
            fprintf(stderr, "shoal-bench sync: %s exited early%s%s\n", t->n[i].name,
                    s->err[0] ? ": " : "", s->err);
            return -1;
        }
        if (now_ns() > deadline) {
            fprintf(stderr, "shoal-bench sync: timed out waiting for %s\n", t->n[i].name);
            return -1;
        }
        shoal__bench_sleep_ms(1);
    }
}

/* Tell every node to stop and reap them all.  Returns the number of nodes
 * that did not exit cleanly. */
static int
stop_all(topo *t)
{
    int i, bad = 0;

    atomic_store(&t->sh->stop, 1);
    for (i = 0; i < t->count; i++) {
        if (t->pid[i] > 0 && shoal__bench_reap(t->pid[i], 20000, &t->cpu_s[i]) != 0)
            bad++;
        t->pid[i] = 0;
    }
    return bad;
}

/* Idle until the parent says stop (bounded by deadline). */
static void
linger(shared *sh, uint64_t deadline)
{
    while (!atomic_load(&sh->stop) && now_ns() < deadline)
        shoal__bench_sleep_ms(5);
}

/* ------------------------------------------------------------- the proxy */

/* ---------------------------------------------------------------- nodes */

typedef struct node_arg {
    topo *t;
    int self;
} node_arg;

/* Commit one change setting coll/id/field to the int v. */
static shoal_err
commit_int(shoal_replica *r, const char *coll, const char *id, const char *field, int64_t v,
           const char *field2, int64_t v2)
{
    shoal_txn *txn = NULL;
    shoal_value val = { .type = SHOAL_T_INT, .i = v };
    shoal_err e = shoal_txn_begin(r, &txn);

    if (e != SHOAL_OK)
        return e;
    e = shoal_txn_set(txn, coll, id, field, &val);
    if (e == SHOAL_OK && field2) {
        val.i = v2;
        e = shoal_txn_set(txn, coll, id, field2, &val);
    }
    if (e != SHOAL_OK) {
        shoal_txn_abort(txn);
        return e;
    }
    return shoal_txn_commit(txn);
}

/* Read the int field of a live document; false if absent. */
static bool
read_int(shoal_replica *r, const char *coll, const char *id, const char *field, int64_t *out)
{
    shoal_doc *d = NULL;
    shoal_value v;
    size_t fi;
    bool ok = false;

    if (shoal_doc_get(r, coll, id, &d) == SHOAL_OK &&
        shoal_doc_field_find(d, field, &fi) == SHOAL_OK &&
        shoal_doc_field_value(d, fi, &v) == SHOAL_OK && v.type == SHOAL_T_INT) {
        *out = v.i;
        ok = true;
    }
    shoal_doc_free(d);
    return ok;
}

/* Wait (bounded) until the warm-up document exists on r.  0 once seen. */
static int
wait_warm(shoal_replica *r, shared *sh, double timeout_s)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    int64_t v;

    while (now_ns() < deadline && !atomic_load(&sh->stop)) {
        shoal_event *ev = NULL;

        if (read_int(r, "warm", "w", "v", &v))
            return 0;
        if (shoal_event_next(r, 20, &ev) == SHOAL_OK)
            shoal_event_free(ev);
    }
    return -1;
}

static int
wait_go(shared *sh, double timeout_s)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);

    while (!atomic_load(&sh->go)) {
        if (atomic_load(&sh->stop) || now_ns() > deadline)
            return -1;
        shoal__bench_sleep_ms(0.2);
    }
    return 0;
}

static int
run_catchup(topo *t, shoal_replica *r, slot *s)
{
    uint8_t dg[SHOAL_DIGEST_BYTES];
    uint64_t t0, deadline;
    shoal_err e;
    bool equal = false;

    t0 = now_ns();
    e = shoal_net_sync(r, t->connect_endpoint, t->n[t->source].key, 600000);
    if (e != SHOAL_OK) {
        slot_fail(s, "shoal_net_sync", e, r);
        return -1;
    }
    s->sync_ms = (double)(now_ns() - t0) / 1e6;
    deadline = now_ns() + 60ull * 1000000000ull;
    while (now_ns() < deadline) {
        if ((e = shoal_digest(r, true, dg)) != SHOAL_OK) {
            slot_fail(s, "shoal_digest", e, r);
            return -1;
        }
        if (memcmp(dg, t->source_digest, sizeof dg) == 0) {
            equal = true;
            break;
        }
        shoal__bench_sleep_ms(5);
    }
    s->ms = (double)(now_ns() - t0) / 1e6;
    s->wire_up = atomic_load(&t->sh->proxy_up);
    s->wire_down = atomic_load(&t->sh->proxy_down);
    if (!equal) {
        snprintf(s->err, sizeof s->err,
                 "digest differs from the source's 60 s after shoal_net_sync returned");
        atomic_store(&s->state, ST_FAILED);
        return -1;
    }
    atomic_store(&s->state, ST_DONE);
    return 0;
}

/* A deterministic jitter source (xorshift64). */
static uint64_t
next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int
run_lat_writer(topo *t, shoal_replica *r, slot *s)
{
    uint64_t i, rnd = 0x9e3779b97f4a7c15ull;
    shoal_err e;

    if ((e = commit_int(r, "warm", "w", "v", 1, NULL, 0)) != SHOAL_OK) {
        slot_fail(s, "warm-up commit", e, r);
        return -1;
    }
    atomic_store(&s->state, ST_READY);
    if (wait_go(t->sh, 120) != 0)
        return 0;
    for (i = 0; i < t->samples && !atomic_load(&t->sh->stop); i++) {
        char id[32];
        uint64_t t0;

        snprintf(id, sizeof id, "s%llu", (unsigned long long)i);
        t0 = now_ns();
        e = commit_int(r, "lat", id, "t", (int64_t)t0, NULL, 0);
        t->sh->commit_ns[i] = now_ns() - t0;
        if (e != SHOAL_OK) {
            slot_fail(s, "commit", e, r);
            return -1;
        }
        s->count = i + 1;
        /* spacing: 4 to 8 ms, so samples do not queue behind each other */
        shoal__bench_sleep_ms(4.0 + (double)(next_rand(&rnd) % 4000) / 1000.0);
    }
    atomic_store(&s->state, ST_DONE);
    return 0;
}

static int
run_lat_reader(topo *t, shoal_replica *r, slot *s)
{
    uint64_t seen = 0, deadline;

    if (wait_warm(r, t->sh, 60) != 0) {
        snprintf(s->err, sizeof s->err, "the warm-up change did not arrive within 60 s");
        atomic_store(&s->state, ST_FAILED);
        return -1;
    }
    atomic_store(&s->state, ST_READY);
    /* samples take at most 8 ms each; then a grace period */
    deadline = now_ns() + (uint64_t)((double)t->samples * 8e6) + 30ull * 1000000000ull;
    if (wait_go(t->sh, 120) != 0)
        return 0;
    while (seen < t->samples && now_ns() < deadline && !atomic_load(&t->sh->stop)) {
        shoal_event *ev = NULL;
        const char *id;
        char *end;
        unsigned long long k;
        int64_t v;

        if (shoal_event_next(r, 50, &ev) != SHOAL_OK)
            continue;
        id = shoal_event_doc_id(ev);
        if (strcmp(shoal_event_collection(ev), "lat") == 0 && id[0] == 's') {
            k = strtoull(id + 1, &end, 10);
            if (*end == '\0' && k < t->samples && t->sh->lat_ns[k] == 0 &&
                read_int(r, "lat", id, "t", &v)) {
                uint64_t now = now_ns();

                t->sh->lat_ns[k] = now > (uint64_t)v ? now - (uint64_t)v : 1;
                seen++;
            }
        }
        shoal_event_free(ev);
    }
    s->count = seen;
    atomic_store(&s->state, ST_DONE);
    return 0;
}

static int
run_tp_writer(topo *t, shoal_replica *r, slot *s)
{
    uint64_t seq = 0, end, deadline;
    shoal_err e;

    if ((e = commit_int(r, "warm", "w", "v", 1, NULL, 0)) != SHOAL_OK) {
        slot_fail(s, "warm-up commit", e, r);
        return -1;
    }
    seq = 1; /* the warm-up change */
    t->seq_ns[seq] = now_ns();
    atomic_store(&t->sh->written_seq, seq);
    atomic_store(&s->state, ST_READY);
    if (wait_go(t->sh, 120) != 0)
        return 0;
    s->start_ns = now_ns();
    end = s->start_ns + (uint64_t)(t->seconds * 1e9);
    deadline = end;
    while (seq + 1 < MAX_SEQ && now_ns() < deadline && !atomic_load(&t->sh->stop)) {
        e = commit_int(r, "tp", "w", "i", (int64_t)seq, NULL, 0);
        if (e != SHOAL_OK) {
            slot_fail(s, "commit", e, r);
            return -1;
        }
        seq++;
        t->seq_ns[seq] = now_ns();
        atomic_store(&t->sh->written_seq, seq);
    }
    s->end_ns = now_ns();
    s->count = seq - 1;
    t->sh->total_seq = seq;
    atomic_store(&t->sh->writer_done, 1);
    atomic_store(&s->state, ST_DONE);
    return 0;
}

static int
run_tp_reader(topo *t, shoal_replica *r, slot *s)
{
    const uint8_t *wkey = t->n[t->writer].key;
    uint64_t held = 0, deadline;

    if (wait_warm(r, t->sh, 60) != 0) {
        snprintf(s->err, sizeof s->err, "the warm-up change did not arrive within 60 s");
        atomic_store(&s->state, ST_FAILED);
        return -1;
    }
    atomic_store(&s->state, ST_READY);
    if (wait_go(t->sh, 120) != 0)
        return 0;
    /* the writer's time plus 300 s to drain */
    deadline = now_ns() + (uint64_t)((t->seconds + 300.0) * 1e9);
    while (now_ns() < deadline && !atomic_load(&t->sh->stop)) {
        uint64_t written = atomic_load(&t->sh->written_seq), now;
        shoal_event *ev = NULL;
        shoal_vv *vv = NULL;
        shoal_err e;
        int k;

        /* the staleness just before looking: age of the oldest written
         * change this reader does not hold yet */
        now = now_ns();
        if (held < written) {
            double lag = (double)(now - t->seq_ns[held + 1]) / 1e9;

            if (written - held > s->max_lag_changes)
                s->max_lag_changes = written - held;
            if (lag > s->max_lag_s)
                s->max_lag_s = lag;
        }
        if ((e = shoal_replica_version(r, &vv)) != SHOAL_OK) {
            slot_fail(s, "shoal_replica_version", e, r);
            return -1;
        }
        held = shoal_vv_get(vv, wkey);
        shoal_vv_free(vv);
        if (atomic_load(&t->sh->writer_done) && held >= t->sh->total_seq) {
            s->done_ns = now_ns();
            break;
        }
        /* sleep until something arrives (or 20 ms), then drain the queue */
        if (shoal_event_next(r, 20, &ev) == SHOAL_OK) {
            shoal_event_free(ev);
            for (k = 0; k < 100000 && shoal_event_next(r, 0, &ev) == SHOAL_OK; k++)
                shoal_event_free(ev);
        }
    }
    s->count = held > 0 ? held - 1 : 0;
    if (!s->done_ns) {
        snprintf(s->err, sizeof s->err, "held %llu of %llu changes at the deadline",
                 (unsigned long long)held, (unsigned long long)t->sh->total_seq);
        atomic_store(&s->state, ST_FAILED);
        return -1;
    }
    atomic_store(&s->state, ST_DONE);
    return 0;
}

static int
node_main(void *argp)
{
    node_arg *a = argp;
    topo *t = a->t;
    node *me = &t->n[a->self];
    slot *s = &t->sh->slot[a->self];
    shoal_replica *r = NULL;
    uint64_t deadline = now_ns() + 3600ull * 1000000000ull;
    shoal_err e;
    int i, rc = -1;

    if ((e = shoal__bench_open_replica(me->dir, me->durable, me->name, &r)) != SHOAL_OK) {
        slot_fail(s, "open", e, NULL);
        return -1;
    }
    for (i = 0; i < me->nallow; i++)
        if ((e = shoal_net_allow(r, t->n[me->allow[i]].key)) != SHOAL_OK) {
            slot_fail(s, "shoal_net_allow", e, r);
            goto out;
        }
    if (me->listen) {
        char *bound = NULL;

        if ((e = shoal_net_listen(r, "tcp://127.0.0.1:*", &bound)) != SHOAL_OK) {
            slot_fail(s, "shoal_net_listen", e, r);
            goto out;
        }
        snprintf(s->endpoint, sizeof s->endpoint, "%s", bound);
        shoal_free(bound);
        atomic_store(&s->listening, 1);
    }
    if (me->connect_to >= 0) {
        e = shoal_net_connect(r, t->sh->slot[me->connect_to].endpoint, t->n[me->connect_to].key);
        if (e != SHOAL_OK) {
            slot_fail(s, "shoal_net_connect", e, r);
            goto out;
        }
    }
    switch (me->role) {
    case ROLE_IDLE:
        atomic_store(&s->state, ST_READY);
        rc = 0;
        break;
    case ROLE_CATCHUP: rc = run_catchup(t, r, s); break;
    case ROLE_LAT_WRITER: rc = run_lat_writer(t, r, s); break;
    case ROLE_LAT_READER: rc = run_lat_reader(t, r, s); break;
    case ROLE_TP_WRITER: rc = run_tp_writer(t, r, s); break;
    case ROLE_TP_READER: rc = run_tp_reader(t, r, s); break;
    }
    /* keep the links up until every node is done */
    if (rc == 0)
        linger(t->sh, deadline);
out:
    shoal_replica_close(r);
    return rc;
}

/* ---------------------------------------------------------- topologies */

static shared *
map_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        fprintf(stderr, "shoal-bench sync: mmap: %s\n", strerror(errno));
        return NULL;
    }
    return p;
}

/* Add a node with a fresh replica under dir/name. */
static int
add_node(topo *t, const char *dir, const char *name, role ro, bool durable)
{
    node *n = &t->n[t->count];

    memset(n, 0, sizeof *n);
    n->name = name;
    n->role = ro;
    n->durable = durable;
    n->connect_to = -1;
    snprintf(n->dir, sizeof n->dir, "%s/%s", dir, name);
    if (make_replica(n->dir, n->key) != 0)
        return -1;
    return t->count++;
}

static void
allow(topo *t, int listener, int peer)
{
    node *n = &t->n[listener];

    n->listen = true;
    n->allow[n->nallow++] = peer;
    t->n[peer].connect_to = listener;
}

/* Start node i; with wait, also wait until it is ready. */
static int
start_node(topo *t, int i, node_arg *args, bool wait)
{
    args[i].t = t;
    args[i].self = i;
    t->pid[i] = shoal__bench_spawn(node_main, &args[i]);
    if (t->pid[i] < 0)
        return -1;
    return wait ? wait_state(t, i, ST_READY, 60000) : 0;
}

/* ------------------------------------------------------------- catch-up */

typedef struct gen_arg {
    const char *dir;
    int author;
    uint64_t n;
} gen_arg;

/* One author: n single-field changes, one per commit, non-durable. */
static int
gen_author(void *argp)
{
    gen_arg *a = argp;
    shoal_replica *r = NULL;
    shoal_err e = shoal__bench_open_replica(a->dir, false, NULL, &r);
    uint64_t i;

    for (i = 0; e == SHOAL_OK && i < a->n; i++) {
        char id[16];

        snprintf(id, sizeof id, "d%04u", (unsigned)((i * 7 + (uint64_t)a->author) % DOCS));
        e = commit_int(r, "cu", id, "v", (int64_t)(i * AUTHORS + (uint64_t)a->author), NULL, 0);
    }
    if (e == SHOAL_OK)
        e = shoal_replica_flush(r);
    if (e != SHOAL_OK)
        fprintf(stderr, "shoal-bench sync: author %d: %s\n", a->author, shoal_strerror(e));
    shoal_replica_close(r);
    return e == SHOAL_OK ? 0 : -1;
}

typedef struct source {
    char dir[512];
    uint8_t digest[SHOAL_DIGEST_BYTES];
    uint8_t *bundle; /* shoal_free */
    size_t bundle_len;
    uint64_t changes;
} source;

/* Build the catch-up source: AUTHORS replicas (two at a time, in child
 * processes) write n changes in all; their exports are imported into one
 * source replica.  The source's export is kept for the floors. */
static int
build_source(const char *dir, uint64_t n, source *src)
{
    gen_arg ga[AUTHORS];
    char adir[AUTHORS][512];
    pid_t pid[AUTHORS];
    shoal_replica *r = NULL;
    shoal_import_result ir;
    uint64_t t0 = now_ns();
    shoal_err e;
    int a, rc = -1;

    snprintf(src->dir, sizeof src->dir, "%s/source", dir);
    for (a = 0; a < AUTHORS; a++) {
        snprintf(adir[a], sizeof adir[a], "%s/author%d", dir, a);
        ga[a].dir = adir[a];
        ga[a].author = a;
        ga[a].n = n / AUTHORS + ((uint64_t)a < n % AUTHORS);
        pid[a] = 0;
    }
    /* two authors at a time (two cores) */
    for (a = 0; a < AUTHORS; a += 2) {
        int b, bad = 0;

        for (b = a; b < a + 2 && b < AUTHORS; b++)
            pid[b] = shoal__bench_spawn(gen_author, &ga[b]);
        for (b = a; b < a + 2 && b < AUTHORS; b++) {
            if (pid[b] < 0 || shoal__bench_reap(pid[b], 600000, NULL) != 0)
                bad = 1;
            pid[b] = 0;
        }
        if (bad)
            goto out;
    }
    if ((e = shoal__bench_open_replica(src->dir, false, NULL, &r)) != SHOAL_OK) {
        fprintf(stderr, "shoal-bench sync: open source: %s\n", shoal_strerror(e));
        goto out;
    }
    for (a = 0; a < AUTHORS; a++) {
        shoal_replica *ar = NULL;
        uint8_t *b = NULL;
        size_t blen = 0;

        e = shoal__bench_open_replica(adir[a], false, NULL, &ar);
        if (e == SHOAL_OK)
            e = shoal_export(ar, NULL, &b, &blen);
        shoal_replica_close(ar);
        if (e == SHOAL_OK)
            e = shoal_import(r, b, blen, &ir);
        shoal_free(b);
        shoal__bench_rmtree(adir[a]);
        if (e != SHOAL_OK) {
            fprintf(stderr, "shoal-bench sync: author %d into the source: %s: %s\n", a,
                    shoal_strerror(e), shoal_replica_errmsg(r));
            goto out;
        }
    }
    if ((e = shoal_replica_flush(r)) != SHOAL_OK || (e = shoal_digest(r, true, src->digest)) ||
        (e = shoal_export(r, NULL, &src->bundle, &src->bundle_len)) != SHOAL_OK) {
        fprintf(stderr, "shoal-bench sync: source: %s\n", shoal_strerror(e));
        goto out;
    }
    src->changes = shoal__bench_bundle_count(src->bundle, src->bundle_len);
    if (src->changes != n) {
        fprintf(stderr, "shoal-bench sync: the source holds %llu changes, not %llu\n",
                (unsigned long long)src->changes, (unsigned long long)n);
        goto out;
    }
    fprintf(stderr,
            "  catch-up source: %llu changes of %d authors, %zu bundle bytes, built in "
            "%.1f s\n",
            (unsigned long long)n, AUTHORS, src->bundle_len, (double)(now_ns() - t0) / 1e9);
    rc = 0;
out:
    for (a = 0; a < AUTHORS; a++)
        if (pid[a] > 0)
            shoal__bench_reap(pid[a], 1000, NULL);
    shoal_replica_close(r);
    return rc;
}

/* The same changes through shoal_import into a fresh durable replica (one
 * call, no network): what the receiving side costs without the link. */
static double
import_ms(const char *dir, const source *src)
{
    char path[600];
    shoal_replica *r = NULL;
    shoal_import_result ir;
    uint64_t t0;
    double ms = -1.0;
    shoal_err e;

    snprintf(path, sizeof path, "%s/import", dir);
    if ((e = shoal__bench_open_replica(path, true, NULL, &r)) == SHOAL_OK) {
        t0 = now_ns();
        e = shoal_import(r, src->bundle, src->bundle_len, &ir);
        if (e == SHOAL_OK)
            ms = (double)(now_ns() - t0) / 1e6;
    }
    if (e != SHOAL_OK)
        fprintf(stderr, "shoal-bench sync: import floor: %s\n", shoal_strerror(e));
    shoal_replica_close(r);
    shoal__bench_rmtree(path);
    return ms;
}

typedef struct cu_result {
    double ms, sync_ms;
    double verify_before_ms, verify_after_ms, verify_ms; /* floor: before, after, mean */
    double verify_cpu_ms; /* CPU time of the floor (mean of before, after) */
    double import_ms;     /* shoal_import of the same bundle, no network */
    double cpu_source_s, cpu_fresh_s;
    uint64_t up, down;
} cu_result;

static int
run_catchup_once(const char *dir, source *src, size_t run, cu_result *res)
{
    static shared *sh;
    topo t;
    node_arg args[MAX_NODES];
    shoal__bench_proxy pa;
    pid_t proxy;
    char rdir[512];
    const char *colon;
    int src_i = 0, fresh_i = 1, rc = -1;

    memset(&t, 0, sizeof t);
    snprintf(rdir, sizeof rdir, "%s/catchup-%zu", dir, run);
    if (mkdir(rdir, 0700) != 0)
        return -1;
    if (!sh && !(sh = map_shared(sizeof *sh)))
        return -1;
    memset(sh, 0, sizeof *sh);
    t.sh = sh;

    /* the floor first, in this process, while nothing else of ours runs */
    res->verify_before_ms =
        shoal__bench_verify_ms(src->bundle, src->bundle_len, 0, &res->verify_cpu_ms);
    if (res->verify_before_ms < 0) {
        fprintf(stderr, "shoal-bench sync: verify floor: bad bundle\n");
        goto out;
    }

    /* the source node reuses the source replica */
    src_i = t.count++;
    memset(&t.n[src_i], 0, sizeof t.n[src_i]);
    t.n[src_i].name = "source";
    t.n[src_i].role = ROLE_IDLE;
    t.n[src_i].durable = true;
    t.n[src_i].connect_to = -1;
    snprintf(t.n[src_i].dir, sizeof t.n[src_i].dir, "%s", src->dir);
    if (make_replica(src->dir, t.n[src_i].key) != 0)
        goto out;
    if ((fresh_i = add_node(&t, rdir, "fresh", ROLE_CATCHUP, true)) < 0)
        goto out;
    t.n[src_i].listen = true;
    t.n[src_i].allow[t.n[src_i].nallow++] = fresh_i;
    t.source = src_i;
    t.source_digest = src->digest;

    if (start_node(&t, src_i, args, true) != 0)
        goto out;
    colon = strrchr(sh->slot[src_i].endpoint, ':');
    pa.stop = &sh->stop;
    pa.state = &sh->slot[MAX_NODES - 1].state;
    pa.endpoint = sh->slot[MAX_NODES - 1].endpoint;
    pa.endpoint_len = sizeof sh->slot[MAX_NODES - 1].endpoint;
    pa.err = sh->slot[MAX_NODES - 1].err;
    pa.err_len = sizeof sh->slot[MAX_NODES - 1].err;
    pa.up = &sh->proxy_up;
    pa.down = &sh->proxy_down;
    pa.target_port = colon ? atoi(colon + 1) : 0;
    if ((proxy = shoal__bench_spawn(shoal__bench_proxy_main, &pa)) < 0)
        goto out;
    t.pid[MAX_NODES - 1] = proxy;
    t.n[MAX_NODES - 1].name = "proxy";
    if (wait_state(&t, MAX_NODES - 1, ST_READY, 10000) != 0)
        goto out;
    t.connect_endpoint = pa.endpoint;
    if (start_node(&t, fresh_i, args, false) != 0 || wait_state(&t, fresh_i, ST_DONE, 900000) != 0)
        goto out;
    res->ms = sh->slot[fresh_i].ms;
    res->sync_ms = sh->slot[fresh_i].sync_ms;
    res->up = sh->slot[fresh_i].wire_up;
    res->down = sh->slot[fresh_i].wire_down;
    rc = 0;
out:
    atomic_store(&sh->stop, 1);
    if (stop_all(&t) != 0)
        rc = -1;
    if (t.pid[MAX_NODES - 1] > 0 && shoal__bench_reap(t.pid[MAX_NODES - 1], 10000, NULL) != 0)
        rc = -1;
    res->cpu_source_s = t.cpu_s[src_i];
    res->cpu_fresh_s = t.cpu_s[fresh_i];
    /* the floor again once every node is gone: the load of a shared
     * machine drifts, so the floor is the mean of before and after */
    if (rc == 0) {
        double cpu_after = 0;

        res->verify_after_ms = shoal__bench_verify_ms(src->bundle, src->bundle_len, 0, &cpu_after);
        if (res->verify_after_ms < 0)
            rc = -1;
        else {
            res->verify_ms = (res->verify_before_ms + res->verify_after_ms) / 2.0;
            res->verify_cpu_ms = (res->verify_cpu_ms + cpu_after) / 2.0;
        }
    }
    if (rc == 0 && (res->import_ms = import_ms(rdir, src)) < 0)
        rc = -1;
    shoal__bench_rmtree(rdir);
    return rc;
}

/* ------------------------------------------------------------- latency */

typedef struct lat_result {
    double median_ms, p99_ms, max_ms;
    double after_median_ms, after_p99_ms; /* from commit return */
    double commit_median_ms;
    uint64_t seen, samples;
} lat_result;

static int
run_latency_once(const char *dir, bool relay, bool durable, uint64_t samples, size_t run,
                 lat_result *res)
{
    static shared *sh;
    topo t;
    node_arg args[MAX_NODES];
    char rdir[512];
    double *tot = NULL, *after = NULL, *com = NULL;
    int a, b, rl = -1, rc = -1;
    uint64_t i, n = 0;

    memset(&t, 0, sizeof t);
    snprintf(rdir, sizeof rdir, "%s/latency-%zu", dir, run);
    if (mkdir(rdir, 0700) != 0)
        return -1;
    if (!sh && !(sh = map_shared(sizeof *sh)))
        return -1;
    memset(sh, 0, sizeof *sh);
    t.sh = sh;
    t.samples = samples;
    if ((a = add_node(&t, rdir, "A", ROLE_LAT_WRITER, durable)) < 0 ||
        (b = add_node(&t, rdir, "B", ROLE_LAT_READER, durable)) < 0)
        goto out;
    if (relay) {
        if ((rl = add_node(&t, rdir, "R", ROLE_IDLE, durable)) < 0)
            goto out;
        allow(&t, rl, a);
        allow(&t, rl, b);
        if (start_node(&t, rl, args, true) != 0)
            goto out;
    } else {
        allow(&t, b, a);
    }
    /* listeners first (their endpoint must be known to the others) */
    if (!relay && start_node(&t, b, args, false) != 0)
        goto out;
    if (!relay) {
        uint64_t dl = now_ns() + 10ull * 1000000000ull;

        while (!atomic_load(&sh->slot[b].listening) && now_ns() < dl &&
               atomic_load(&sh->slot[b].state) >= 0)
            shoal__bench_sleep_ms(1);
        if (!atomic_load(&sh->slot[b].listening)) {
            fprintf(stderr, "shoal-bench sync: B did not listen: %s\n", sh->slot[b].err);
            goto out;
        }
    }
    if (start_node(&t, a, args, false) != 0)
        goto out;
    if (relay && start_node(&t, b, args, false) != 0)
        goto out;
    if (wait_state(&t, a, ST_READY, 60000) != 0 || wait_state(&t, b, ST_READY, 60000) != 0)
        goto out;
    atomic_store(&sh->go, 1);
    if (wait_state(&t, a, ST_DONE, (double)samples * 10.0 + 60000) != 0 ||
        wait_state(&t, b, ST_DONE, 60000) != 0)
        goto out;
    tot = calloc(samples, sizeof *tot);
    after = calloc(samples, sizeof *after);
    com = calloc(samples, sizeof *com);
    if (!tot || !after || !com)
        goto out;
    for (i = 0; i < samples; i++) {
        com[i] = (double)sh->commit_ns[i] / 1e6;
        if (sh->lat_ns[i] == 0)
            continue;
        tot[n] = (double)sh->lat_ns[i] / 1e6;
        after[n] = tot[n] - com[i];
        n++;
    }
    res->samples = samples;
    res->seen = n;
    res->median_ms = shoal__bench_percentile(tot, n, 50);
    res->p99_ms = shoal__bench_percentile(tot, n, 99);
    res->max_ms = n ? tot[n - 1] : 0;
    res->after_median_ms = shoal__bench_percentile(after, n, 50);
    res->after_p99_ms = shoal__bench_percentile(after, n, 99);
    res->commit_median_ms = shoal__bench_percentile(com, samples, 50);
    rc = n > 0 ? 0 : -1;
out:
    if (stop_all(&t) != 0)
        rc = -1;
    free(tot);
    free(after);
    free(com);
    shoal__bench_rmtree(rdir);
    return rc;
}

/* ---------------------------------------------------------- throughput */

typedef struct tp_result {
    uint64_t changes;
    double writer_s, writer_per_s;
    double e2e_s, e2e_per_s; /* first commit -> last reader holds all */
    uint64_t max_lag_changes;
    double max_lag_s;
    double verify_per_s;                             /* one core, this run */
    double verify_cpu_per_s;                         /* the same per CPU second */
    double cpu_writer_s, cpu_relay_s, cpu_readers_s; /* CPU seconds (readers: sum) */
    double floor_per_s;                              /* cores x verify_per_s / 4 */
} tp_result;

static int
run_throughput_once(const char *dir, bool durable, double seconds, const uint8_t *vb, size_t vlen,
                    size_t run, tp_result *res)
{
    static shared *sh;
    static uint64_t *seq_ns;
    topo t;
    node_arg args[MAX_NODES];
    char rdir[512];
    static const char *const rnames[READERS] = { "X1", "X2", "X3" };
    int w, rl, x[READERS], k, rc = -1;
    uint64_t last = 0;
    double after, after_cpu;

    memset(&t, 0, sizeof t);
    snprintf(rdir, sizeof rdir, "%s/throughput-%zu", dir, run);
    if (mkdir(rdir, 0700) != 0)
        return -1;
    if (!sh && !(sh = map_shared(sizeof *sh)))
        return -1;
    if (!seq_ns && !(seq_ns = (uint64_t *)(void *)map_shared(MAX_SEQ * sizeof *seq_ns)))
        return -1;
    memset(sh, 0, sizeof *sh);
    t.sh = sh;
    t.seq_ns = seq_ns;
    t.seconds = seconds;

    /* this run's floor, before any node starts (and again at the end) */
    res->verify_per_s = verify_rate(vb, vlen, &res->verify_cpu_per_s);
    if (res->verify_per_s <= 0) {
        fprintf(stderr, "shoal-bench sync: verify rate: bad sample bundle\n");
        goto out;
    }

    if ((rl = add_node(&t, rdir, "R", ROLE_IDLE, durable)) < 0 ||
        (w = add_node(&t, rdir, "W", ROLE_TP_WRITER, durable)) < 0)
        goto out;
    t.writer = w;
    allow(&t, rl, w);
    for (k = 0; k < READERS; k++) {
        if ((x[k] = add_node(&t, rdir, rnames[k], ROLE_TP_READER, durable)) < 0)
            goto out;
        allow(&t, rl, x[k]);
    }
    if (start_node(&t, rl, args, true) != 0 || start_node(&t, w, args, false) != 0)
        goto out;
    for (k = 0; k < READERS; k++)
        if (start_node(&t, x[k], args, false) != 0)
            goto out;
    if (wait_state(&t, w, ST_READY, 60000) != 0)
        goto out;
    for (k = 0; k < READERS; k++)
        if (wait_state(&t, x[k], ST_READY, 60000) != 0)
            goto out;
    atomic_store(&sh->go, 1);
    if (wait_state(&t, w, ST_DONE, seconds * 1000.0 + 60000) != 0)
        goto out;
    for (k = 0; k < READERS; k++) {
        slot *s = &sh->slot[x[k]];

        if (wait_state(&t, x[k], ST_DONE, 310000) != 0)
            goto out;
        if (s->done_ns > last)
            last = s->done_ns;
        if (s->max_lag_changes > res->max_lag_changes)
            res->max_lag_changes = s->max_lag_changes;
        if (s->max_lag_s > res->max_lag_s)
            res->max_lag_s = s->max_lag_s;
    }
    stop_all(&t);
    res->cpu_writer_s = t.cpu_s[w];
    res->cpu_relay_s = t.cpu_s[rl];
    for (k = 0; k < READERS; k++)
        res->cpu_readers_s += t.cpu_s[x[k]];
    /* the floor again once every node is gone (mean of before and after) */
    after = verify_rate(vb, vlen, &after_cpu);
    if (after <= 0)
        goto out;
    res->verify_per_s = (res->verify_per_s + after) / 2.0;
    res->verify_cpu_per_s = (res->verify_cpu_per_s + after_cpu) / 2.0;
    res->floor_per_s = (double)ncores() * res->verify_per_s / 4.0;
    res->changes = sh->slot[w].count;
    res->writer_s = (double)(sh->slot[w].end_ns - sh->slot[w].start_ns) / 1e9;
    res->writer_per_s = res->writer_s > 0 ? (double)res->changes / res->writer_s : 0;
    res->e2e_s = (double)(last - sh->slot[w].start_ns) / 1e9;
    res->e2e_per_s = res->e2e_s > 0 ? (double)res->changes / res->e2e_s : 0;
    rc = 0;
out:
    if (stop_all(&t) != 0)
        rc = -1;
    shoal__bench_rmtree(rdir);
    return rc;
}

/* A bundle of small changes shaped like the throughput writer's, for the
 * per-run verify rate. */
static int
make_verify_sample(const char *dir, uint8_t **b, size_t *blen)
{
    char path[512];
    shoal_replica *r = NULL;
    shoal_err e;
    uint64_t i;

    snprintf(path, sizeof path, "%s/verify-sample", dir);
    e = shoal__bench_open_replica(path, false, NULL, &r);
    for (i = 0; e == SHOAL_OK && i < VERIFY_SAMPLE; i++)
        e = commit_int(r, "tp", "w", "i", (int64_t)i + 1, NULL, 0);
    if (e == SHOAL_OK)
        e = shoal_export(r, NULL, b, blen);
    shoal_replica_close(r);
    shoal__bench_rmtree(path);
    if (e != SHOAL_OK) {
        fprintf(stderr, "shoal-bench sync: verify sample: %s\n", shoal_strerror(e));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- main */

static void
usage(FILE *f)
{
    size_t i;

    fputs("usage: shoal-bench sync [--changes N] [--samples S] [--seconds T] [--runs R]\n"
          "                        [--docs N] [--peers P] [--incoming N] [--variant NAME]...\n"
          "  --changes N   catch-up size (default 100000, from 10 authors)\n"
          "  --samples S   latency samples per run (default 500; partial-latency: 200)\n"
          "  --seconds T   throughput writer time per run (default 10)\n"
          "  --runs R      runs of each variant, medians reported (default 3; partial-relay:\n"
          "                measurement windows of each configuration)\n"
          "  --docs N      partial-initial: relay documents, 10 changes each (default\n"
          "                100000); partial-relay: the relay holds N / 10\n"
          "  --peers P     partial-relay: devices (default 100)\n"
          "  --incoming N  partial-relay: the writer's changes per window (default 100)\n"
          "variants:",
          f);
    for (i = 0; i < NVARIANTS; i++)
        fprintf(f, " %s", variant_names[i]);
    fputs(" (default: all)\n", f);
}

static int
parse(int argc, char **argv, opts *o)
{
    int i;
    bool any = false;
    size_t v;

    o->changes = 100000;
    o->samples = 500;
    o->seconds = 10;
    o->runs = 3;
    o->partial.docs = 100000;
    o->partial.peers = 100;
    o->partial.incoming = 100;
    o->partial.samples = 0; /* 200 unless --samples */
    memset(o->want, 0, sizeof o->want);
    for (i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(argv[i], "--changes") == 0) {
            o->changes = (uint64_t)shoal__bench_parse_long("--changes", val);
        } else if (strcmp(argv[i], "--samples") == 0) {
            o->samples = (uint64_t)shoal__bench_parse_long("--samples", val);
            o->partial.samples = o->samples;
        } else if (strcmp(argv[i], "--seconds") == 0) {
            o->seconds = (double)shoal__bench_parse_long("--seconds", val);
        } else if (strcmp(argv[i], "--runs") == 0) {
            o->runs = (size_t)shoal__bench_parse_long("--runs", val);
        } else if (strcmp(argv[i], "--docs") == 0) {
            o->partial.docs = (uint64_t)shoal__bench_parse_long("--docs", val);
        } else if (strcmp(argv[i], "--peers") == 0) {
            o->partial.peers = (uint64_t)shoal__bench_parse_long("--peers", val);
        } else if (strcmp(argv[i], "--incoming") == 0) {
            o->partial.incoming = (uint64_t)shoal__bench_parse_long("--incoming", val);
        } else if (strcmp(argv[i], "--variant") == 0 && val) {
            for (v = 0; v < NVARIANTS; v++)
                if (strcmp(val, variant_names[v]) == 0)
                    break;
            if (v == NVARIANTS) {
                fprintf(stderr, "shoal-bench sync: unknown variant %s\n", val);
                return -1;
            }
            o->want[v] = any = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            return -1;
        }
        i++;
    }
    if (o->changes < AUTHORS || o->changes > 10000000 || o->samples > MAX_SAMPLES ||
        o->runs > MAX_RUNS || o->seconds > 3600 || o->partial.docs < 200 ||
        o->partial.docs > 10000000 || o->partial.peers > 1000 || o->partial.incoming > 1000000) {
        fprintf(stderr,
                "shoal-bench sync: --changes 10..10000000, --samples <= %d, "
                "--runs <= %d, --seconds <= 3600, --docs 200..10000000, --peers <= 1000, "
                "--incoming <= 1000000\n",
                MAX_SAMPLES, MAX_RUNS);
        return -1;
    }
    if (o->partial.samples == 0)
        o->partial.samples = 200;
    o->partial.runs = o->runs;
    if (!any)
        for (v = 0; v < NVARIANTS; v++)
            o->want[v] = true;
    return 0;
}

static int
bench_catchup(const opts *o)
{
    source src;
    cu_result r[MAX_RUNS];
    double ms[MAX_RUNS], sms[MAX_RUNS], vms[MAX_RUNS], ratio[MAX_RUNS], wire[MAX_RUNS];
    double ims[MAX_RUNS], iratio[MAX_RUNS], cs[MAX_RUNS], cf[MAX_RUNS], vc[MAX_RUNS];
    double cratio[MAX_RUNS];
    double raw, med_ratio, med_wire;
    size_t k;
    int rc = 1;

    memset(&src, 0, sizeof src);
    if (build_source(session_dir, o->changes, &src) != 0)
        goto out;
    raw = (double)shoal__bench_bundle_raw_bytes(src.bundle_len);
    for (k = 0; k < o->runs; k++) {
        if (run_catchup_once(session_dir, &src, k, &r[k]) != 0) {
            fprintf(stderr, "shoal-bench sync: catch-up run %zu failed\n", k + 1);
            goto out;
        }
        ms[k] = r[k].ms;
        sms[k] = r[k].sync_ms;
        vms[k] = r[k].verify_ms;
        ratio[k] = r[k].ms / r[k].verify_ms;
        wire[k] = (double)(r[k].up + r[k].down);
        ims[k] = r[k].import_ms;
        iratio[k] = r[k].ms / r[k].import_ms;
        cs[k] = r[k].cpu_source_s;
        cf[k] = r[k].cpu_fresh_s;
        vc[k] = r[k].verify_cpu_ms;
        cratio[k] = cf[k] * 1000.0 / vc[k];
        fprintf(stderr,
                "  catch-up run %zu: %.1f ms (sync returned at %.1f), verify floor "
                "%.1f ms (before %.1f, after %.1f; %.2fx); wire %llu up + %llu down "
                "bytes (%.3fx raw); import %.1f ms; cpu source %.1f s, fresh %.1f s "
                "(verify cpu %.1f s)\n",
                k + 1, ms[k], sms[k], vms[k], r[k].verify_before_ms, r[k].verify_after_ms, ratio[k],
                (unsigned long long)r[k].up, (unsigned long long)r[k].down, wire[k] / raw, ims[k],
                cs[k], cf[k], vc[k] / 1000.0);
    }
    med_ratio = shoal__bench_median_of(ratio, o->runs);
    med_wire = shoal__bench_median_of(wire, o->runs);
    printf("{\"bench\":\"sync\",\"variant\":\"catch-up\",\"changes\":%llu,\"authors\":%d,"
           "\"ms\":%.1f",
           (unsigned long long)src.changes, AUTHORS, shoal__bench_median_of(ms, o->runs));
    shoal__bench_print_runs("runs_ms", ms, o->runs, 1);
    printf(",\"sync_ms\":%.1f,\"verify_floor_ms\":%.1f", shoal__bench_median_of(sms, o->runs),
           shoal__bench_median_of(vms, o->runs));
    shoal__bench_print_runs("verify_floor_runs_ms", vms, o->runs, 1);
    printf(",\"time_ratio\":%.2f", med_ratio);
    shoal__bench_print_runs("runs_time_ratio", ratio, o->runs, 2);
    printf(",\"import_ms\":%.1f,\"import_ratio\":%.2f,\"cpu_source_s\":%.2f,"
           "\"cpu_fresh_s\":%.2f,\"verify_floor_cpu_ms\":%.1f,\"cpu_ratio\":%.2f",
           shoal__bench_median_of(ims, o->runs), shoal__bench_median_of(iratio, o->runs),
           shoal__bench_median_of(cs, o->runs), shoal__bench_median_of(cf, o->runs),
           shoal__bench_median_of(vc, o->runs), shoal__bench_median_of(cratio, o->runs));
    printf(",\"wire_bytes\":%.0f", med_wire);
    shoal__bench_print_runs("runs_wire_bytes", wire, o->runs, 0);
    printf(",\"wire_bytes_to_source\":%llu,\"wire_bytes_from_source\":%llu,"
           "\"wire_counted_by\":\"tcp-proxy\",\"raw_bytes\":%.0f,\"bytes_ratio\":%.3f,"
           "\"target_time_ratio\":1.5,\"target_bytes_ratio\":1.2,\"time_met\":%s,"
           "\"bytes_met\":%s,\"loadavg\":%.2f,\"runs\":%zu}\n",
           (unsigned long long)r[0].up, (unsigned long long)r[0].down, raw, med_wire / raw,
           shoal__bench_yesno(med_ratio <= 1.5), shoal__bench_yesno(med_wire / raw <= 1.2),
           shoal__bench_load1(), o->runs);
    fflush(stdout);
    rc = 0;
out:
    shoal_free(src.bundle);
    shoal__bench_rmtree(src.dir);
    return rc;
}

static int
bench_latency(const opts *o, int v)
{
    bool relay = v == V_LAT_RELAY || v == V_LAT_RELAY_ND;
    bool durable = v == V_LAT_DIRECT || v == V_LAT_RELAY;
    double med[MAX_RUNS], p99[MAX_RUNS], mx[MAX_RUNS], am[MAX_RUNS], ap[MAX_RUNS], cm[MAX_RUNS];
    double fl[MAX_RUNS];
    double target = relay ? 4.0 : 2.0, m, p;
    uint64_t seen = 0;
    size_t k;

    for (k = 0; k < o->runs; k++) {
        lat_result r;

        memset(&r, 0, sizeof r);
        fl[k] = 0;
        if (durable) {
            /* the floor of one durable commit on this disk now: raw LMDB,
             * one small put per commit (mean of 200) */
            fl[k] = shoal__bench_lmdb_floor_ms(200, true) / 200.0;
            if (fl[k] < 0) {
                fprintf(stderr, "shoal-bench sync: raw LMDB floor failed\n");
                return 1;
            }
        }
        if (run_latency_once(session_dir, relay, durable, o->samples, k, &r) != 0) {
            fprintf(stderr, "shoal-bench sync: %s run %zu failed\n", variant_names[v], k + 1);
            return 1;
        }
        med[k] = r.median_ms;
        p99[k] = r.p99_ms;
        mx[k] = r.max_ms;
        am[k] = r.after_median_ms;
        ap[k] = r.after_p99_ms;
        cm[k] = r.commit_median_ms;
        seen += r.seen;
        fprintf(stderr,
                "  %s run %zu: median %.3f ms, p99 %.3f ms, max %.3f ms (after commit: "
                "%.3f / %.3f; commit %.3f; raw LMDB durable commit %.3f), %llu/%llu "
                "seen\n",
                variant_names[v], k + 1, med[k], p99[k], mx[k], am[k], ap[k], cm[k], fl[k],
                (unsigned long long)r.seen, (unsigned long long)r.samples);
    }
    m = shoal__bench_median_of(med, o->runs);
    p = shoal__bench_median_of(p99, o->runs);
    printf("{\"bench\":\"sync\",\"variant\":\"%s\",\"durable\":%s,\"relay\":%s,\"samples\":%llu,"
           "\"seen\":%llu,\"median_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f",
           variant_names[v], shoal__bench_yesno(durable), shoal__bench_yesno(relay),
           (unsigned long long)o->samples, (unsigned long long)seen, m, p,
           shoal__bench_median_of(mx, o->runs));
    shoal__bench_print_runs("runs_median_ms", med, o->runs, 3);
    shoal__bench_print_runs("runs_p99_ms", p99, o->runs, 3);
    printf(",\"after_commit_median_ms\":%.3f,\"after_commit_p99_ms\":%.3f,"
           "\"commit_median_ms\":%.3f,",
           shoal__bench_median_of(am, o->runs), shoal__bench_median_of(ap, o->runs),
           shoal__bench_median_of(cm, o->runs));
    if (durable)
        printf("\"lmdb_commit_ms\":%.3f,", shoal__bench_median_of(fl, o->runs));
    printf("\"target_median_ms\":%.0f,\"target_p99_ms\":20,\"median_met\":%s,\"p99_met\":%s,"
           "\"loadavg\":%.2f,\"runs\":%zu}\n",
           target, shoal__bench_yesno(m <= target), shoal__bench_yesno(p <= 20.0),
           shoal__bench_load1(), o->runs);
    fflush(stdout);
    return 0;
}

static int
bench_throughput(const opts *o, int v, const uint8_t *vb, size_t vlen)
{
    bool durable = v == V_TP_DURABLE;
    double ch[MAX_RUNS], wps[MAX_RUNS], eps[MAX_RUNS], lagc[MAX_RUNS], lags[MAX_RUNS];
    double vps[MAX_RUNS], fl[MAX_RUNS], ratio[MAX_RUNS], mr, ml;
    double cw[MAX_RUNS], cr[MAX_RUNS], cx[MAX_RUNS], us[MAX_RUNS], vc[MAX_RUNS];
    size_t k;

    for (k = 0; k < o->runs; k++) {
        tp_result r;

        memset(&r, 0, sizeof r);
        if (run_throughput_once(session_dir, durable, o->seconds, vb, vlen, k, &r) != 0) {
            fprintf(stderr, "shoal-bench sync: %s run %zu failed\n", variant_names[v], k + 1);
            return 1;
        }
        ch[k] = (double)r.changes;
        wps[k] = r.writer_per_s;
        eps[k] = r.e2e_per_s;
        lagc[k] = (double)r.max_lag_changes;
        lags[k] = r.max_lag_s;
        vps[k] = r.verify_per_s;
        fl[k] = r.floor_per_s;
        ratio[k] = r.e2e_per_s / r.floor_per_s;
        vc[k] = r.verify_cpu_per_s;
        cw[k] = r.cpu_writer_s;
        cr[k] = r.cpu_relay_s;
        cx[k] = r.cpu_readers_s;
        us[k] = r.changes ? r.cpu_readers_s / READERS / (double)r.changes * 1e6 : 0;
        fprintf(stderr,
                "  %s run %zu: %llu changes, writer %.0f/s over %.2f s, end to end "
                "%.0f/s over %.2f s; max lag %llu changes / %.3f s; verify %.0f/s "
                "per core, floor %.0f/s (%.2fx); cpu s: writer %.1f, relay %.1f, "
                "readers %.1f (%.0f us per change each)\n",
                variant_names[v], k + 1, (unsigned long long)r.changes, r.writer_per_s, r.writer_s,
                r.e2e_per_s, r.e2e_s, (unsigned long long)r.max_lag_changes, r.max_lag_s,
                r.verify_per_s, r.floor_per_s, ratio[k], cw[k], cr[k], cx[k], us[k]);
    }
    mr = shoal__bench_median_of(ratio, o->runs);
    ml = shoal__bench_median_of(lags, o->runs);
    printf("{\"bench\":\"sync\",\"variant\":\"%s\",\"durable\":%s,\"readers\":%d,"
           "\"seconds\":%.0f,\"changes\":%.0f,\"writer_per_s\":%.0f,\"e2e_per_s\":%.0f",
           variant_names[v], shoal__bench_yesno(durable), READERS, o->seconds,
           shoal__bench_median_of(ch, o->runs), shoal__bench_median_of(wps, o->runs),
           shoal__bench_median_of(eps, o->runs));
    shoal__bench_print_runs("runs_e2e_per_s", eps, o->runs, 0);
    printf(",\"max_lag_changes\":%.0f,\"max_lag_s\":%.3f", shoal__bench_median_of(lagc, o->runs),
           ml);
    shoal__bench_print_runs("runs_max_lag_s", lags, o->runs, 3);
    printf(",\"verify_per_s_core\":%.0f,\"cores\":%d,\"verifiers\":4,\"floor_per_s\":%.0f,"
           "\"ratio\":%.3f",
           shoal__bench_median_of(vps, o->runs), ncores(), shoal__bench_median_of(fl, o->runs), mr);
    shoal__bench_print_runs("runs_ratio", ratio, o->runs, 3);
    printf(",\"cpu_writer_s\":%.2f,\"cpu_relay_s\":%.2f,\"cpu_readers_s\":%.2f,"
           "\"reader_cpu_us_per_change\":%.1f,\"verify_cpu_us_per_change\":%.1f",
           shoal__bench_median_of(cw, o->runs), shoal__bench_median_of(cr, o->runs),
           shoal__bench_median_of(cx, o->runs), shoal__bench_median_of(us, o->runs),
           1e6 / shoal__bench_median_of(vc, o->runs));
    if (durable)
        printf(",\"target_max_lag_s\":1,\"lag_met\":%s", shoal__bench_yesno(ml < 1.0));
    else
        printf(",\"target_ratio\":0.7,\"ratio_met\":%s", shoal__bench_yesno(mr >= 0.7));
    printf(",\"loadavg\":%.2f,\"runs\":%zu}\n", shoal__bench_load1(), o->runs);
    fflush(stdout);
    return 0;
}

int
shoal__bench_sync(int argc, char **argv)
{
    opts o;
    uint8_t *vb = NULL;
    size_t vlen = 0;
    int v, status = 0;

    if (parse(argc, argv, &o) != 0)
        return 2;
    if (sodium_init() < 0) {
        fprintf(stderr, "shoal-bench sync: sodium_init failed\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    session_dir = shoal__bench_mkdtemp("shoal-bench-sync");
    if (!session_dir)
        return 1;
    setenv("TMPDIR", session_dir, 1); /* the raw LMDB floor's temp dirs */
    if ((o.want[V_TP_DURABLE] || o.want[V_TP_NONDURABLE]) &&
        make_verify_sample(session_dir, &vb, &vlen) != 0) {
        status = 1;
        goto out;
    }
    for (v = 0; v < NVARIANTS; v++) {
        if (!o.want[v])
            continue;
        if (v == V_CATCHUP)
            status |= bench_catchup(&o);
        else if (v == V_TP_DURABLE || v == V_TP_NONDURABLE)
            status |= bench_throughput(&o, v, vb, vlen);
        else if (v >= V_PARTIAL_INITIAL)
            status |= shoal__bench_partial(variant_names[v], &o.partial, session_dir) != 0;
        else
            status |= bench_latency(&o, v);
    }
out:
    shoal_free(vb);
    shoal__bench_rmtree(session_dir);
    free(session_dir);
    session_dir = NULL;
    return status;
}
