/*
 * test/powercut/pc_work.c - the workloads and the checker of the power-cut
 * harness (driver.py runs them; docs/testing.md "Power cuts").
 *
 *   pc_work init DIR [MAP]           create a replica (map size MAP bytes);
 *                                    print its id (hex)
 *   pc_work durable DIR N [FROM]     durable commits:       "ack k events E"
 *   pc_work big DIR N [FROM]         durable, each commit also sets a 20,000
 *                                    byte register (overflow pages, map
 *                                    growth from a 1 MiB map): "ack k ..."
 *   pc_work fast DIR N M [FROM]      fast mode, flush every M commits:
 *                                    "done k events E", "flushed k events E"
 *   pc_work lying DIR N              fast mode, yet "ack k events E": the
 *                                    writer the harness must catch
 *   pc_work bundles SRC OUT N        commit N times to SRC, one bundle per
 *                                    commit: OUT/b<k>.bin
 *   pc_work import DIR BUNDLES N     import them (durable): "ack k events E"
 *   pc_work listen DIR PEER          durable, allow PEER (hex key), listen on
 *                                    tcp://127.0.0.1:* ("listening EP"), serve
 *                                    until stdin closes
 *   pc_work send DIR EP KEY N        commit, then shoal_net_sync to EP (key
 *                                    KEY): "sent k", then "ack k" or "fail k"
 *   pc_work check DIR [AUTHOR]       decide the prefix; one JSON line
 *   pc_work rawio DIR                known writes to DIR/data.mdb, no shoal
 *                                    (driver.py --selftest checks the models)
 * FROM (default 1) is the first commit: a second run continues a replica
 * that a first run and a cut left at FROM - 1.  Every workload ends with
 * "end events E".  Each line is flushed as it is
 * printed: the driver reads them while the process runs, and a line read
 * is a promise the process made before it was cut.  E is the number of
 * write and sync events the power-cut shim had seen (0 without it).
 *
 * Commit k (k = 1..N) is one transaction over three documents of
 * collection "pc": "reg" gets register last = k, "cnt" counter n += 1,
 * "lst" list items gets k inserted at index k - 1.  So the state after
 * commit P is: last = P, n = P, items = [1..P], three changes per commit
 * by one author (the author's seq = 3P), nothing pending; in a "big"
 * replica "reg" also holds register pad, 20,000 bytes naming commit P.  A state that is
 * not such a prefix (a commit half there, one missing in the middle, a
 * damaged index) cannot pass `check`, which compares every field, the
 * version vector, the pending set and the collections, and rebuilds a
 * replica from the export to compare full digests.
 *
 * Only the public header is used: this is what an application sees.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "shoal.h"

static const char *const COLL = "pc";

enum {
    BIG_PAD = 20000 /* bytes of register pad in a "big" commit */
};

static uint64_t map_size; /* init: the map size of a new replica (0: default) */
static size_t pad_len;    /* big: commit k also sets register pad = pad_text(k) */

/* ------------------------------------------------------------- helpers */

typedef unsigned long long (*events_fn)(void);

/* The shim's event count, found at run time (0 without the shim). */
static unsigned long long
events(void)
{
    static events_fn fn;
    static bool looked;
    if (!looked) {
        void *sym = dlsym(RTLD_DEFAULT, "shoal_pc_events");
        memcpy(&fn, &sym, sizeof fn);
        looked = true;
    }
    return fn ? fn() : 0;
}

static void
say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static shoal_replica *
open_dir(const char *dir, bool durable)
{
    shoal_options *o;
    if (shoal_options_new(&o) != SHOAL_OK)
        return NULL;
    shoal_options_set_durable(o, durable);
    if (map_size)
        shoal_options_set_map_size(o, map_size);
    shoal_replica *r = NULL;
    shoal_err err = shoal_replica_open(&r, dir, o);
    shoal_options_free(o);
    if (err) {
        fprintf(stderr, "pc_work: open %s: %s\n", dir, shoal_strerror(err));
        return NULL;
    }
    return r;
}

/* len bytes of "k<k>." repeated: the pad of commit k. */
static void
pad_text(uint64_t k, char *out, size_t len)
{
    char unit[32];
    int n = snprintf(unit, sizeof unit, "k%llu.", (unsigned long long)k);
    for (size_t i = 0; i < len; i++)
        out[i] = unit[i % (size_t)n];
}

static shoal_err
commit_k(shoal_replica *r, uint64_t k)
{
    shoal_txn *t;
    shoal_err err = shoal_txn_begin(r, &t);
    if (err)
        return err;
    shoal_value v = { .type = SHOAL_T_INT, .i = (int64_t)k };
    err = shoal_txn_set(t, COLL, "reg", "last", &v);
    if (!err && pad_len) {
        char *pad = malloc(pad_len);
        if (!pad) {
            shoal_txn_abort(t);
            return SHOAL_ENOMEM;
        }
        pad_text(k, pad, pad_len);
        shoal_value pv = { .type = SHOAL_T_STR, .ptr = (const uint8_t *)pad, .len = pad_len };
        err = shoal_txn_set(t, COLL, "reg", "pad", &pv);
        free(pad);
    }
    if (!err)
        err = shoal_txn_counter_add(t, COLL, "cnt", "n", 1);
    if (!err)
        err = shoal_txn_list_insert(t, COLL, "lst", "items", (size_t)(k - 1), &v);
    if (err) {
        shoal_txn_abort(t);
        return err;
    }
    return shoal_txn_commit(t);
}

static void
fail_msg(shoal_replica *r, const char *what, uint64_t k, shoal_err err)
{
    fprintf(stderr, "pc_work: %s %llu: %s (%s)\n", what, (unsigned long long)k, shoal_strerror(err),
            r ? shoal_replica_errmsg(r) : "");
}

static bool
parse_key(const char *hex, uint8_t key[SHOAL_KEY_BYTES])
{
    size_t got = 0;
    return sodium_hex2bin(key, SHOAL_KEY_BYTES, hex, strlen(hex), NULL, &got, NULL) == 0 &&
           got == SHOAL_KEY_BYTES;
}

static uint64_t
count_arg(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *s && !*end ? (uint64_t)v : 0;
}

static int
end_run(shoal_replica *r, int rc)
{
    shoal_replica_close(r);
    say("end events %llu\n", events());
    return rc;
}

/* ----------------------------------------------------------- workloads */

static int
cmd_init(const char *dir)
{
    shoal_replica *r = open_dir(dir, true);
    if (!r)
        return 1;
    char hex[2 * SHOAL_KEY_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, shoal_replica_id(r), SHOAL_KEY_BYTES);
    shoal_replica_close(r);
    say("%s\n", hex);
    return 0;
}

/* durable: "ack k"; fast: "done k" and "flushed k" every m; lying: fast,
 * but "ack k". */
static int
cmd_commits(const char *dir, uint64_t from, uint64_t n, bool durable, uint64_t m, const char *word)
{
    shoal_replica *r = open_dir(dir, durable);
    if (!r)
        return 1;
    for (uint64_t k = from; k <= n; k++) {
        shoal_err err = commit_k(r, k);
        if (err) {
            fail_msg(r, "commit", k, err);
            return end_run(r, 1);
        }
        say("%s %llu events %llu\n", word, (unsigned long long)k, events());
        if (m && k % m == 0) {
            err = shoal_replica_flush(r);
            if (err) {
                fail_msg(r, "flush", k, err);
                return end_run(r, 1);
            }
            say("flushed %llu events %llu\n", (unsigned long long)k, events());
        }
    }
    return end_run(r, 0);
}

static bool
write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Bundle k holds commit k's three changes: the export since the version
 * before it. */
static int
cmd_bundles(const char *src, const char *out, uint64_t n)
{
    shoal_replica *r = open_dir(src, false);
    if (!r)
        return 1;
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return end_run(r, 1);
    for (uint64_t k = 1; k <= n; k++) {
        shoal_vv *before;
        shoal_err err = shoal_replica_version(r, &before);
        if (!err)
            err = commit_k(r, k);
        uint8_t *b = NULL;
        size_t blen = 0;
        if (!err)
            err = shoal_export(r, before, &b, &blen);
        shoal_vv_free(before);
        if (err) {
            fail_msg(r, "bundle", k, err);
            return end_run(r, 1);
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/b%llu.bin", out, (unsigned long long)k);
        bool ok = write_file(path, b, blen);
        shoal_free(b);
        if (!ok)
            return end_run(r, 1);
    }
    return end_run(r, 0);
}

static int
cmd_import(const char *dir, const char *bundles, uint64_t n)
{
    shoal_replica *r = open_dir(dir, true);
    if (!r)
        return 1;
    for (uint64_t k = 1; k <= n; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/b%llu.bin", bundles, (unsigned long long)k);
        size_t len = 0;
        uint8_t *b = read_file(path, &len);
        if (!b) {
            fprintf(stderr, "pc_work: cannot read %s\n", path);
            return end_run(r, 1);
        }
        shoal_import_result res;
        shoal_err err = shoal_import(r, b, len, &res);
        free(b);
        if (err || res.applied != 3) {
            fail_msg(r, "import", k, err);
            return end_run(r, 1);
        }
        say("ack %llu events %llu\n", (unsigned long long)k, events());
    }
    return end_run(r, 0);
}

static int
cmd_listen(const char *dir, const char *peer_hex)
{
    uint8_t peer[SHOAL_KEY_BYTES];
    if (!parse_key(peer_hex, peer))
        return 2;
    shoal_replica *r = open_dir(dir, true);
    if (!r)
        return 1;
    char *bound = NULL;
    shoal_err err = shoal_net_allow(r, peer);
    if (!err)
        err = shoal_net_listen(r, "tcp://127.0.0.1:*", &bound);
    if (err) {
        fail_msg(r, "listen", 0, err);
        return end_run(r, 1);
    }
    say("listening %s\n", bound);
    shoal_free(bound);
    char buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        break;
    }
    return end_run(r, 0);
}

static int
cmd_send(const char *dir, const char *ep, const char *key_hex, uint64_t n)
{
    uint8_t key[SHOAL_KEY_BYTES];
    if (!parse_key(key_hex, key))
        return 2;
    shoal_replica *r = open_dir(dir, false);
    if (!r)
        return 1;
    for (uint64_t k = 1; k <= n; k++) {
        shoal_err err = commit_k(r, k);
        if (err) {
            fail_msg(r, "commit", k, err);
            return end_run(r, 1);
        }
        say("sent %llu\n", (unsigned long long)k);
        err = shoal_net_sync(r, ep, key, 10000);
        if (err) {
            /* Expected once the listener has been cut. */
            say("fail %llu %s\n", (unsigned long long)k, shoal_strerror(err));
            return end_run(r, 0);
        }
        say("ack %llu\n", (unsigned long long)k);
    }
    return end_run(r, 0);
}

/* The shim and pc_restore on known bytes (driver.py --selftest): DIR
 * holds data.mdb, four 512-byte blocks of 'A', synced.  Then, with no
 * sync after the first: block 1 = 'B', fdatasync; blocks 2-3 = 'C'; block
 * 4 = 'D' (writev at the file offset; the file grows); 100 bytes of 'E'
 * at block 2 through an O_DSYNC descriptor; block 0 = 'F'; ftruncate to
 * six blocks. */
static int
cmd_rawio(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    int dfd = open(path, O_WRONLY | O_DSYNC | O_CLOEXEC);
    if (fd < 0 || dfd < 0)
        return 1;
    char b[1024];
    memset(b, 'B', 512);
    bool ok = pwrite(fd, b, 512, 512) == 512 && fdatasync(fd) == 0;
    memset(b, 'C', 1024);
    ok = ok && pwrite(fd, b, 1024, 1024) == 1024;
    memset(b, 'D', 512);
    struct iovec iov[2] = { { .iov_base = b, .iov_len = 256 },
                            { .iov_base = b + 256, .iov_len = 256 } };
    ok = ok && lseek(fd, 2048, SEEK_SET) == 2048 && writev(fd, iov, 2) == 512;
    memset(b, 'E', 100);
    ok = ok && pwrite(dfd, b, 100, 1024) == 100;
    memset(b, 'F', 512);
    ok = ok && pwrite(fd, b, 512, 0) == 512 && ftruncate(fd, 3072) == 0;
    close(dfd);
    close(fd);
    say("end events %llu\n", events());
    return ok ? 0 : 1;
}

/* --------------------------------------------------------------- check */

typedef struct verdict {
    char why[512];
    long long p; /* the prefix, -1 before it is known */
} verdict;

static bool
bad(verdict *v, const char *fmt, ...)
{
    if (v->why[0])
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
    return false;
}

/* The register pad, if reg holds one (a "big" replica), must be that of
 * commit p. */
static bool
pad_ok(const shoal_doc *d, uint64_t p)
{
    size_t fi;
    shoal_value val;
    if (shoal_doc_field_find(d, "pad", &fi) != SHOAL_OK ||
        shoal_doc_field_value(d, fi, &val) != SHOAL_OK || val.type != SHOAL_T_STR || val.len == 0)
        return false;
    char *want = malloc(val.len);
    if (!want)
        return false;
    pad_text(p, want, val.len);
    bool ok = memcmp(want, val.ptr, val.len) == 0;
    free(want);
    return ok;
}

/* The document coll/id must be absent (p == 0) or hold exactly the one
 * field name of kind k (reg: and a pad that pad_ok accepts); *d receives
 * it when present. */
static bool
get_doc(shoal_replica *r, const char *id, const char *name, shoal_kind kind, uint64_t p,
        shoal_doc **d, size_t *fi, verdict *v)
{
    *d = NULL;
    shoal_err err = shoal_doc_get(r, COLL, id, d);
    if (p == 0) {
        if (err == SHOAL_ENOTFOUND)
            return true;
        if (!err)
            shoal_doc_free(*d);
        *d = NULL;
        return bad(v, "prefix 0 but document %s: %s", id, shoal_strerror(err));
    }
    if (err)
        return bad(v, "document %s: %s (%s)", id, shoal_strerror(err), shoal_replica_errmsg(r));
    size_t want = strcmp(id, "reg") == 0 && shoal_doc_field_count(*d) == 2 ? 2 : 1;
    if (shoal_doc_epoch(*d) != 0 || shoal_doc_field_count(*d) != want ||
        shoal_doc_field_find(*d, name, fi) != SHOAL_OK || shoal_doc_field_kind(*d, *fi) != kind)
        return bad(v, "document %s does not hold just its field %s", id, name);
    if (want == 2 && !pad_ok(*d, p))
        return bad(v, "document %s: its pad is not that of commit %llu", id, (unsigned long long)p);
    return true;
}

static bool
check_state(shoal_replica *r, const uint8_t *author, verdict *v)
{
    /* The prefix the register names. */
    shoal_doc *d;
    size_t fi;
    uint64_t p = 0;
    shoal_err err = shoal_doc_get(r, COLL, "reg", &d);
    if (err == SHOAL_OK) {
        shoal_value val;
        if (shoal_doc_field_find(d, "last", &fi) != SHOAL_OK ||
            shoal_doc_field_value(d, fi, &val) != SHOAL_OK || val.type != SHOAL_T_INT ||
            val.i < 1) {
            shoal_doc_free(d);
            return bad(v, "register last is missing or not a positive integer");
        }
        p = (uint64_t)val.i;
        shoal_doc_free(d);
    } else if (err != SHOAL_ENOTFOUND) {
        return bad(v, "document reg: %s (%s)", shoal_strerror(err), shoal_replica_errmsg(r));
    }
    v->p = (long long)p;
    if (!get_doc(r, "reg", "last", SHOAL_K_REGISTER, p, &d, &fi, v))
        return false;
    shoal_doc_free(d);

    if (!get_doc(r, "cnt", "n", SHOAL_K_COUNTER, p, &d, &fi, v))
        return false;
    if (d) {
        int64_t c = -1;
        shoal_doc_field_counter(d, fi, &c);
        shoal_doc_free(d);
        if (c != (int64_t)p)
            return bad(v, "counter %lld, prefix %llu", (long long)c, (unsigned long long)p);
    }

    if (!get_doc(r, "lst", "items", SHOAL_K_LIST, p, &d, &fi, v))
        return false;
    if (d) {
        size_t len = 0;
        shoal_doc_field_list_len(d, fi, &len);
        bool ok = len == p;
        for (size_t j = 0; ok && j < len; j++) {
            shoal_value val;
            ok = shoal_doc_field_list_item(d, fi, j, &val) == SHOAL_OK && val.type == SHOAL_T_INT &&
                 val.i == (int64_t)j + 1;
        }
        shoal_doc_free(d);
        if (!ok)
            return bad(v, "list of %zu items is not 1..%llu", len, (unsigned long long)p);
    }

    /* One author, three changes per commit. */
    shoal_vv *vv;
    err = shoal_replica_version(r, &vv);
    if (err)
        return bad(v, "version vector: %s", shoal_strerror(err));
    size_t nvv = shoal_vv_count(vv);
    uint64_t seq = shoal_vv_get(vv, author);
    shoal_vv_free(vv);
    if (nvv != (p ? 1u : 0u) || seq != 3 * p)
        return bad(v, "version vector of %zu entries, author at %llu, prefix %llu", nvv,
                   (unsigned long long)seq, (unsigned long long)p);

    uint64_t pending = 1;
    if (shoal_pending_count(r, &pending) != SHOAL_OK || pending != 0)
        return bad(v, "pending count %llu", (unsigned long long)pending);
    shoal_strlist *l;
    if (shoal_collections(r, &l) != SHOAL_OK)
        return bad(v, "collections unreadable");
    bool ok = shoal_strlist_count(l) == (p ? 1u : 0u) &&
              (!p || strcmp(shoal_strlist_get(l, 0), COLL) == 0);
    shoal_strlist_free(l);
    if (!ok)
        return bad(v, "collections are not just %s", COLL);
    if (shoal_docs(r, COLL, &l) != SHOAL_OK)
        return bad(v, "documents unreadable");
    ok = shoal_strlist_count(l) == (p ? 3u : 0u);
    shoal_strlist_free(l);
    if (!ok)
        return bad(v, "collection %s does not hold three documents", COLL);
    if (shoal_equivocators(r, &l) != SHOAL_OK)
        return bad(v, "equivocators unreadable");
    ok = shoal_strlist_count(l) == 0;
    shoal_strlist_free(l);
    if (!ok)
        return bad(v, "equivocators listed");

    /* The log, the indexes and the documents agree: a replica built from
     * the export holds the same full state. */
    uint8_t *b = NULL;
    size_t blen = 0;
    uint8_t d1[SHOAL_DIGEST_BYTES], d2[SHOAL_DIGEST_BYTES];
    if (shoal_export(r, NULL, &b, &blen) != SHOAL_OK || shoal_digest(r, true, d1) != SHOAL_OK) {
        shoal_free(b);
        return bad(v, "export or digest failed: %s", shoal_replica_errmsg(r));
    }
    char *tmp = check_tmpdir("pc-check");
    shoal_replica *c = open_dir(tmp, false);
    shoal_import_result res;
    ok = c && shoal_import(c, b, blen, &res) == SHOAL_OK && res.applied == 3 * p &&
         shoal_digest(c, true, d2) == SHOAL_OK && memcmp(d1, d2, sizeof d1) == 0;
    shoal_replica_close(c);
    check_rmtree(tmp);
    free(tmp);
    shoal_free(b);
    if (!ok)
        return bad(v, "the export does not rebuild the state");
    return true;
}

static void
json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int
cmd_check(const char *dir, const char *author_hex)
{
    verdict v = { .p = -1 };
    uint8_t author[SHOAL_KEY_BYTES];
    if (author_hex && !parse_key(author_hex, author))
        return 2;
    shoal_replica *r = NULL;
    shoal_err err = shoal_replica_open(&r, dir, NULL);
    if (err) {
        bad(&v, "open: %s", shoal_strerror(err));
    } else {
        if (!author_hex)
            memcpy(author, shoal_replica_id(r), SHOAL_KEY_BYTES);
        check_state(r, author, &v);
        shoal_replica_close(r);
    }
    printf("{\"ok\": %s, \"P\": %lld, \"error\": ", v.why[0] ? "false" : "true", v.p);
    json_str(v.why);
    printf("}\n");
    fflush(stdout);
    return v.why[0] ? 1 : 0;
}

static int
usage(void)
{
    fprintf(stderr, "usage: pc_work init|durable|big|fast|lying|bundles|import|listen|send|check|"
                    "rawio"
                    " ... (see test/powercut/pc_work.c)\n");
    return 2;
}

int
main(int argc, char **argv)
{
    if (sodium_init() < 0 || argc < 3)
        return usage();
    const char *cmd = argv[1], *dir = argv[2];
    if (strcmp(cmd, "init") == 0 && (argc == 3 || argc == 4)) {
        map_size = argc == 4 ? count_arg(argv[3]) : 0;
        return cmd_init(dir);
    }
    if (strcmp(cmd, "big") == 0 && (argc == 4 || argc == 5)) {
        pad_len = BIG_PAD;
        return cmd_commits(dir, argc == 5 ? count_arg(argv[4]) : 1, count_arg(argv[3]), true, 0,
                           "ack");
    }
    /* An optional last argument FROM starts at commit FROM (default 1):
     * a second run on a replica a first run left at FROM - 1. */
    if (strcmp(cmd, "durable") == 0 && (argc == 4 || argc == 5))
        return cmd_commits(dir, argc == 5 ? count_arg(argv[4]) : 1, count_arg(argv[3]), true, 0,
                           "ack");
    if (strcmp(cmd, "fast") == 0 && (argc == 5 || argc == 6))
        return cmd_commits(dir, argc == 6 ? count_arg(argv[5]) : 1, count_arg(argv[3]), false,
                           count_arg(argv[4]), "done");
    if (strcmp(cmd, "lying") == 0 && argc == 4)
        return cmd_commits(dir, 1, count_arg(argv[3]), false, 0, "ack");
    if (strcmp(cmd, "bundles") == 0 && argc == 5)
        return cmd_bundles(dir, argv[3], count_arg(argv[4]));
    if (strcmp(cmd, "import") == 0 && argc == 5)
        return cmd_import(dir, argv[3], count_arg(argv[4]));
    if (strcmp(cmd, "listen") == 0 && argc == 4)
        return cmd_listen(dir, argv[3]);
    if (strcmp(cmd, "send") == 0 && argc == 6)
        return cmd_send(dir, argv[3], argv[4], count_arg(argv[5]));
    if (strcmp(cmd, "rawio") == 0 && argc == 3)
        return cmd_rawio(dir);
    if (strcmp(cmd, "check") == 0 && (argc == 3 || argc == 4))
        return cmd_check(dir, argc == 4 ? argv[3] : NULL);
    return usage();
}
