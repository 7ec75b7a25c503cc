/*
 * tools/shoal.c - the `shoal` command-line tool: edit, read, export and
 * import the documents of one replica directory, query them (find, count,
 * aggregate, index; watch: a live query until a signal), and sync it over
 * the network (serve: a live replica until a signal; sync: one exchange;
 * peers: the persisted per-peer state).
 *
 * It uses only the public API (shoal.h, linked against the shared libshoal)
 * and jansson, so it doubles as a worked example of that API and as an end
 * to end test driver (test/cli/test_cli.sh).
 *
 * Argument parsing is by hand rather than with getopt: global options (-d
 * DIR, --help, --version) are read only before the subcommand, and after it
 * every word is positional, so `incr c d n -5` takes -5 as a number.  getopt
 * would permute or reject it.  The subcommand options (export --since,
 * digest --full, the query options) are matched by exact name.
 *
 * Every failure prints exactly one line "shoal: ..." on stderr and exits
 * with the code of its class (see usage()); serve's stderr is also its log,
 * and check prints a line per problem it finds before its one-line verdict.
 * SHOAL_ECORRUPT from the library, from any command, is exit 7 with a line
 * that names the directory and points at `check` (docs/operations.md, "A
 * damaged replica").  Each edit is one transaction,
 * hence one signed change for the document.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "encode.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "peerspec.h"
#include "signals.h"
#include "shoal.h"

/* Exit codes (documented in usage() and docs/cli.md). */
enum {
    EXIT_OK = 0,
    EXIT_ERR = 1,         /* usage or any other error */
    EXIT_NOTFOUND = 2,    /* document (or list element, or index) not found */
    EXIT_DELETED = 3,     /* document deleted */
    EXIT_REJECTED = 4,    /* import: bundle rejected (decode, signature, over 1 GiB) */
    EXIT_REFUSED = 5,     /* sync: the peer refused the link */
    EXIT_UNREACHABLE = 6, /* sync: the peer not reached, or the exchange not done, in time */
    EXIT_CORRUPT = 7,     /* the replica is damaged (SHOAL_ECORRUPT); check found problems */
    EXIT_PERM = 8         /* the write is not allowed by the permissions (SHOAL_EPERM) */
};

/* Longest endpoint accepted in ENDPOINT@PUBKEY; most --listen / --peer. */
enum {
    ENDPOINT_MAX = 256,
    MAX_NET_ARGS = 64
};

/* import reads at most this much from stdin (then exit 4, input rejected). */
#define MAX_BUNDLE_BYTES ((size_t)1 << 30)

/* The usage text, printed by print_usage(). */
static const char usage_text[] =
    "usage: shoal [-d DIR] COMMAND [ARGS...]\n"
    "\n"
    "Edit and exchange the documents of the shoal replica in DIR (default:\n"
    "$SHOAL_DIR).  Options come before COMMAND; after it every word is an\n"
    "argument, so negative numbers need no quoting.\n"
    "\n"
    "commands:\n"
    "  init [--root KEYHEX|self]       create the replica (and missing parent\n"
    "                                  directories) if needed; print its id; with\n"
    "                                  --root it enforces the permissions of that\n"
    "                                  root (self: its own key, the root's replica)\n"
    "  put COLL ID JSON_OBJECT         set each key as a register field (one change;\n"
    "                                  re-creates a deleted document)\n"
    "  unset COLL ID FIELD             remove a field\n"
    "  get COLL ID                     print the document as one JSON object\n"
    "  del COLL ID                     delete the document\n"
    "  incr COLL ID FIELD N            add N (may be negative) to a counter field\n"
    "  insert COLL ID FIELD INDEX JSON insert a scalar into a list field at INDEX\n"
    "  remove COLL ID FIELD INDEX      remove the list element at INDEX\n"
    "  ls COLL                         print the ids of the live documents, sorted\n"
    "  version                         print the version vector {author_hex: seq}\n"
    "  export [--since FILE|-]         write a bundle to stdout: the changes that a\n"
    "                                  replica whose `version` output is in FILE (or\n"
    "                                  stdin) lacks; all changes without --since\n"
    "  import                          read a bundle from stdin, verify and apply (a\n"
    "                                  missing DIR becomes a new replica); print\n"
    "                                  {\"applied\":N,\"duplicate\":N,\"equivocations\":N,\n"
    "                                   \"pending\":N,\"rejected\":N}\n"
    "  digest [--full | --commitment]  print the visible-state (full-state, commitment) digest\n"
    "  check                           verify the replica (signatures, ids, indexes,\n"
    "                                  documents against the log); print a JSON\n"
    "                                  summary, each problem on stderr; exit 7 if any\n"
    "  serve [--listen EP ...] [--allow FILE | --allow-any] [--peer EP@PUBKEY ...]\n"
    "        [--log-level LEVEL] [--events]\n"
    "                                  run a live replica until SIGTERM/SIGINT: bind\n"
    "                                  each EP (print each bound endpoint, then\n"
    "                                  \"id <hex>\"), keep a link to each --peer\n"
    "                                  (SIGHUP re-reads the --allow FILE)\n"
    "  sync EP@PUBKEY [--timeout S]    connect, exchange, exit 0 once each side holds\n"
    "                                  all the other held when the sync began\n"
    "  peers                           print known peers and their state as JSON\n"
    "  find COLL [WHERE] [--param NAME=JSON]... [--sort FIELD[:desc]]...\n"
    "       [--limit N] [--offset N] [--fields A,B]\n"
    "                                  print the matching documents, one JSON object\n"
    "                                  per line with the id under \"_id\"\n"
    "  count COLL [WHERE] [--param NAME=JSON]...\n"
    "                                  print the number of matching documents\n"
    "  aggregate COLL [WHERE] [--param NAME=JSON]... [--group FIELD]...\n"
    "       --agg count|sum:F|min:F|max:F|avg:F ...\n"
    "                                  print one JSON object per group\n"
    "  index add COLL FIELD | index drop COLL FIELD | index ls [COLL]\n"
    "                                  add or drop an index; ls prints one\n"
    "                                  {\"collection\":C,\"field\":F} line per index\n"
    "  watch COLL [WHERE] [--param NAME=JSON]...\n"
    "                                  print the matching documents as \"enter\" events,\n"
    "                                  then \"ready\", then enter/update/leave events as\n"
    "                                  they happen, until SIGTERM/SIGINT\n"
    "  subscribe NAME COLL [WHERE] [--param NAME=JSON]...\n"
    "                                  create or replace a subscription: the replica\n"
    "                                  becomes partial (docs/sync.md)\n";

/* More commands (C99 promises string literals of 4095 bytes). */
static const char usage_more[] =
    "  unsubscribe NAME                remove it; evict what no other one matches\n"
    "  subscriptions                   print them as a JSON array\n"
    "  auth policy FILE | auth grant KEYHEX --role ROLE... [--user ID]\n"
    "       [--attr NAME=JSON]... [--expires DURATION] | auth admin KEYHEX\n"
    "       --cap policy|issue|revoke|delegate... [--scope WHERE]\n"
    "       [--max-life DURATION] | auth revoke KEYHEX [--cut SEQ]\n"
    "       [--reason TEXT] | auth show\n"
    "                                  publish a policy (prints its version),\n"
    "                                  certify a device, grant admin rights, revoke\n"
    "                                  a key (prints its cut), print the authority\n"
    "                                  as JSON (docs/permissions.md)\n"
    "  help                            print this text\n";

/* The rest of the usage text (C99 promises string literals of 4095 bytes,
 * so the text is two). */
static const char usage_tail[] =
    "\n"
    "options:\n"
    "  -d DIR, --dir DIR   replica directory\n"
    "  -h, --help          print this text\n"
    "  --version           print the tool's and the library's version\n"
    "\n"
    "WHERE is one argument, the predicate text of docs/queries.md, e.g.\n"
    "'category == \"jeans\" AND price < :max'; a --param value is a JSON scalar.\n"
    "\n"
    "values: JSON scalars: null, true/false, integers (int64), reals (double),\n"
    "strings, {\"$bytes\": \"<base64>\"} for binary, {\"$float\": \"nan\"|\"inf\"|\"-inf\"}.\n"
    "Arrays and other objects are refused.\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  usage or other error\n"
    "  2  document (or list element, or index) not found\n"
    "  3  document deleted\n"
    "  4  input rejected: a bundle (or a synced change) that does not decode or\n"
    "     verify, or is over 1 GiB\n"
    "  5  sync: the peer refused the link (our key is not on its allow-list)\n"
    "  6  sync: the peer was not reached, or the exchange did not finish, within\n"
    "     the timeout\n"
    "  7  the replica is damaged (stored state failed validation; `check` found\n"
    "     problems): see docs/operations.md, \"A damaged replica\"\n"
    "  8  the write is not allowed by the replica's permissions\n"
    "     (docs/permissions.md)\n"
    "\n"
    "network: EP is a ZeroMQ endpoint, e.g. tcp://192.168.1.20:7400 (with\n"
    "tcp://127.0.0.1:* the OS picks the port); PUBKEY is the 64 hex digits that\n"
    "`init` prints.  An allow-list FILE holds one such key per line; blank lines\n"
    "and lines starting with # are ignored.\n";

static void
print_usage(void)
{
    fputs(usage_text, stdout);
    fputs(usage_more, stdout);
    fputs(usage_tail, stdout);
}

/* Print one error line on stderr.  Newlines inside the message are turned
 * into spaces so the "exactly one line" promise holds for library text. */
static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
errorf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "shoal: %s\n", buf);
}

/* The replica directory of this run (for the messages of a damaged
 * replica). */
static const char *replica_dir = "";

/* The exit code of a library error.  Decode and signature errors count as
 * "input rejected" only where input came from outside (import). */
static int
exit_code_of(shoal_err e, bool input)
{
    switch (e) {
    case SHOAL_OK: return EXIT_OK;
    case SHOAL_ENOTFOUND: return EXIT_NOTFOUND;
    case SHOAL_EDELETED: return EXIT_DELETED;
    case SHOAL_ECORRUPT: return EXIT_CORRUPT;
    case SHOAL_EPERM: return EXIT_PERM;
    case SHOAL_EPROTO:
    case SHOAL_EBADSIG:
    case SHOAL_ETRUNC:
    case SHOAL_ETOOBIG:
    case SHOAL_EVERSION: return input ? EXIT_REJECTED : EXIT_ERR;
    default: return EXIT_ERR;
    }
}

/* Report library error e from an operation on r (may be NULL) and return
 * its exit code. */
static int
fail(shoal_replica *r, shoal_err e, const char *what, bool input)
{
    const char *msg = r != NULL ? shoal_replica_errmsg(r) : "";
    const char *name = shoal_strerror(e);
    /* An argument error found before the call reached the replica records
     * no text; the buffer may then still say "no error". */
    if (strcmp(msg, "no error") == 0)
        msg = "";
    if (e == SHOAL_ECORRUPT)
        errorf("%s: the replica in %s is damaged (%s); run 'shoal -d %s check' and see "
               "docs/operations.md, \"A damaged replica\"",
               what, replica_dir, msg[0] != '\0' ? msg : name, replica_dir);
    else if (msg[0] != '\0' && strncmp(msg, name, strlen(name)) == 0)
        errorf("%s: %s", what, msg); /* the message already names the error */
    else if (msg[0] != '\0')
        errorf("%s: %s (%s)", what, name, msg);
    else
        errorf("%s: %s", what, name);
    return exit_code_of(e, input);
}

static int
usage_error(const char *msg)
{
    errorf("%s (try 'shoal --help')", msg);
    return EXIT_ERR;
}

/* Write n bytes to stdout; 0 or -1. */
static int
write_all(const uint8_t *p, size_t n)
{
    if (n > 0 && fwrite(p, 1, n, stdout) != n)
        return -1;
    return fflush(stdout) == 0 ? 0 : -1;
}

/* Print j compactly with sorted keys and a newline; consumes j. */
static int
print_json(json_t *j)
{
    if (j == NULL) {
        errorf("cannot build JSON output (out of memory)");
        return EXIT_ERR;
    }
    char *s = shoal__json_dumps(j);
    json_decref(j);
    if (s == NULL) {
        errorf("cannot encode JSON output");
        return EXIT_ERR;
    }
    int rc = printf("%s\n", s) < 0 || fflush(stdout) != 0 ? EXIT_ERR : EXIT_OK;
    free(s);
    if (rc != EXIT_OK)
        errorf("write to stdout failed: %s", strerror(errno));
    return rc;
}

/* Read all of f into a malloc'ed buffer of at most max bytes.  Returns 0,
 * 1 when the input is larger than max, -1 on a read error (errno set) or
 * out of memory. */
static int
read_all(FILE *f, size_t max, uint8_t **out, size_t *out_len)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                free(buf);
                return 1;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return -1;
            }
            break;
        }
    }
    if (len > max) {
        free(buf);
        return 1;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Parse JSON text exactly: integers stay integers (beyond int64 is an
 * error), duplicate keys are refused, \u0000 is allowed inside strings. */
static json_t *
parse_json(const char *text, size_t len, const char *what)
{
    json_error_t jerr;
    json_t *j =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (j == NULL)
        errorf("%s is not valid JSON: %s (at line %d, column %d)", what, jerr.text, jerr.line,
               jerr.column);
    return j;
}

/* Strict decimal int64: optional '-', digits only, no overflow. */
static int
parse_i64(const char *s, int64_t *out)
{
    if (s[0] == '\0' || (s[0] == '-' && s[1] == '\0'))
        return -1;
    for (const char *p = s[0] == '-' ? s + 1 : s; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Strict decimal size_t index: digits only, no sign. */
static int
parse_index(const char *s, size_t *out)
{
    if (s[0] == '\0')
        return -1;
    for (const char *p = s; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* The directories that this run created for a new replica, parents first
 * (import removes them again when it fails). */
typedef struct made_dirs {
    char *path[64];
    int n;
} made_dirs;

static void
made_dirs_free(made_dirs *m)
{
    while (m->n > 0)
        free(m->path[--m->n]);
}

/* Create dir and its missing parents, like mkdir -p: the parents with mode
 * 0777 less the umask, dir itself 0700 as the library would.  What it
 * creates is recorded in made (may be NULL).  Returns 0, or -1 with the
 * error reported. */
static int
make_dirs(const char *dir, made_dirs *made)
{
    size_t len = strlen(dir);
    char *p = strdup(dir);
    if (p == NULL) {
        errorf("out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 1; rc == 0 && i <= len; i++) {
        if ((i < len && p[i] != '/') || p[i - 1] == '/')
            continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, i == len ? 0700 : 0777) == 0) {
            if (made != NULL && made->n < 64) {
                made->path[made->n] = strdup(p);
                made->n += made->path[made->n] != NULL;
            }
        } else if (errno != EEXIST) {
            errorf("cannot create directory %s: %s", p, strerror(errno));
            rc = -1;
        } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            errorf("cannot create directory %s: it exists and is not a directory", p);
            rc = -1;
        }
        p[i] = c;
    }
    free(p);
    return rc;
}

/* 1 when dir does not exist, 2 when it is an empty directory, 0 when it
 * has entries, -1 with errno set when it cannot be read. */
static int
dir_is_new(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 1 : -1;
    int empty = 2;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL)
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

/* Undo the new replica a failed import made in dir (missing or empty
 * before this run): remove the files in it, then the directories made. */
static void
undo_new_replica(const char *dir, made_dirs *made)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *ent;
        while ((ent = readdir(d)) != NULL) {
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
                continue;
            char path[4096];
            if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, ent->d_name) < sizeof path)
                (void)unlink(path);
        }
        closedir(d);
    }
    for (int i = made->n - 1; i >= 0; i--)
        (void)rmdir(made->path[i]);
}

/* Open the replica in dir.  Every command but init (and import into a new
 * directory) needs an existing, non-empty directory, so a typo in -d does
 * not silently create a replica. */
static int
open_replica(const char *dir, bool create, shoal_tool_log *lg, const uint8_t *root,
             shoal_replica **out)
{
    *out = NULL;
    if (!create) {
        int fresh = dir_is_new(dir);
        if (fresh != 0) {
            errorf("no replica at %s: %s (create one with 'shoal -d DIR init')", dir,
                   fresh < 0    ? strerror(errno)
                   : fresh == 1 ? "no such directory"
                                : "the directory is empty");
            return EXIT_ERR;
        }
    }
    shoal_options *o = NULL;
    shoal_err e = shoal_options_new(&o);
    if (e == SHOAL_OK && lg != NULL)
        e = shoal_options_set_log(o, shoal__tool_log, lg);
    if (e == SHOAL_OK && root != NULL)
        e = shoal_options_set_root(o, root);
    if (e == SHOAL_OK)
        e = shoal_replica_open(out, dir, o);
    shoal_options_free(o);
    if (e == SHOAL_ECORRUPT) {
        errorf("cannot open replica %s: the replica is damaged (%s): move the directory aside "
               "and re-sync, see docs/operations.md, \"A damaged replica\"",
               dir, shoal_strerror(e));
        return EXIT_CORRUPT;
    }
    if (e == SHOAL_EINVAL && root != NULL) {
        errorf("cannot open replica %s with --root: it trusts another root key, or it was "
               "created without one and holds changes",
               dir);
        return EXIT_ERR;
    }
    if (e != SHOAL_OK) {
        errorf("cannot open replica %s: %s", dir, shoal_strerror(e));
        return exit_code_of(e, false);
    }
    return EXIT_OK;
}

/* Check that document coll/id exists and is live: EXIT_OK, or the error
 * already reported. */
static int
need_live(shoal_replica *r, const char *coll, const char *id, shoal_doc **doc_out)
{
    shoal_doc *d = NULL;
    shoal_err e = shoal_doc_get(r, coll, id, &d);
    if (e == SHOAL_ENOTFOUND) {
        errorf("document %s/%s not found", coll, id);
        return EXIT_NOTFOUND;
    }
    if (e == SHOAL_EDELETED) {
        errorf("document %s/%s is deleted", coll, id);
        return EXIT_DELETED;
    }
    if (e != SHOAL_OK)
        return fail(r, e, "get", false);
    if (doc_out != NULL)
        *doc_out = d;
    else
        shoal_doc_free(d);
    return EXIT_OK;
}

/* Refuse a document that is deleted (a missing one is fine: edits create). */
static int
need_not_deleted(shoal_replica *r, const char *coll, const char *id)
{
    shoal_doc *d = NULL;
    shoal_err e = shoal_doc_get(r, coll, id, &d);
    shoal_doc_free(d);
    if (e == SHOAL_EDELETED) {
        errorf("document %s/%s is deleted", coll, id);
        return EXIT_DELETED;
    }
    if (e != SHOAL_OK && e != SHOAL_ENOTFOUND)
        return fail(r, e, "get", false);
    return EXIT_OK;
}

/* Commit t (always consumed) and map its error. */
static int
commit(shoal_replica *r, shoal_txn *t, const char *what)
{
    shoal_err e = shoal_txn_commit(t);
    if (e != SHOAL_OK)
        return fail(r, e, what, false);
    return EXIT_OK;
}

static int
cmd_init(shoal_replica *r)
{
    char hex[2 * SHOAL_KEY_BYTES + 1];
    shoal__hex_encode(shoal_replica_id(r), SHOAL_KEY_BYTES, hex);
    return printf("%s\n", hex) < 0 ? EXIT_ERR : EXIT_OK;
}

/* DURATION: N followed by s, m, h or d (seconds without a unit), in ms;
 * -1 when it does not read. */
static int64_t
parse_duration(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || n < 0)
        return -1;
    long long unit = 1000;
    if (*end == 'm')
        unit = 60000;
    else if (*end == 'h')
        unit = 3600000;
    else if (*end == 'd')
        unit = 86400000;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end && end[1])
        return -1;
    if (n > INT64_MAX / unit)
        return -1;
    return (int64_t)(n * unit);
}

static int
auth_key(const char *hex, uint8_t key[SHOAL_KEY_BYTES])
{
    if (shoal__hex_decode(hex, strlen(hex), key, SHOAL_KEY_BYTES) != 0)
        return usage_error("auth: expected a key of 64 hex digits");
    return EXIT_OK;
}

static int
auth_policy(shoal_replica *r, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        errorf("auth policy: cannot open %s: %s", path, strerror(errno));
        return EXIT_ERR;
    }
    uint8_t *text = NULL;
    size_t len = 0;
    int rd = read_all(f, 1 << 20, &text, &len);
    if (f != stdin)
        fclose(f);
    if (rd != 0) {
        free(text);
        errorf("auth policy: cannot read %s (%s)", path, rd > 0 ? "over 1 MiB" : strerror(errno));
        return EXIT_ERR;
    }
    uint64_t version = 0;
    shoal_err e = shoal_auth_policy(r, (const char *)text, len, &version);
    free(text);
    if (e != SHOAL_OK)
        return fail(r, e, "auth policy", false);
    return printf("{\"version\":%llu}\n", (unsigned long long)version) < 0 ? EXIT_ERR : EXIT_OK;
}

static int
auth_grant(shoal_replica *r, int argc, char **argv)
{
    uint8_t key[SHOAL_KEY_BYTES];
    int rc = auth_key(argv[1], key);
    if (rc != EXIT_OK)
        return rc;
    const char *roles[64], *names[64], *user = NULL;
    shoal_json_scalar vals[64];
    shoal_value values[64];
    size_t nroles = 0, nattrs = 0;
    int64_t life = 0;
    rc = EXIT_OK;
    for (int i = 2; rc == EXIT_OK && i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            rc = usage_error("auth grant: an option lacks its value");
        } else if (strcmp(o, "--role") == 0 && nroles < 64) {
            roles[nroles++] = v;
        } else if (strcmp(o, "--user") == 0) {
            user = v;
        } else if (strcmp(o, "--expires") == 0) {
            life = parse_duration(v);
            if (life <= 0)
                rc = usage_error("auth grant: --expires DURATION (N, Ns, Nm, Nh or Nd)");
        } else if (strcmp(o, "--attr") == 0 && nattrs < 64) {
            const char *eq = strchr(v, '=');
            char err[SHOAL_JSON_ERRLEN];
            json_t *j = eq ? parse_json(eq + 1, strlen(eq + 1), "--attr") : NULL;
            if (j == NULL) {
                rc = eq ? EXIT_ERR : usage_error("auth grant: --attr NAME=JSON");
            } else if (shoal__json_to_scalar(j, &vals[nattrs], err, sizeof err) != 0) {
                errorf("auth grant: --attr %s", err);
                rc = EXIT_ERR;
            } else {
                char *nm = strndup(v, (size_t)(eq - v));
                names[nattrs] = nm;
                values[nattrs] = vals[nattrs].value;
                nattrs++;
            }
            json_decref(j);
        } else {
            rc = usage_error("auth grant: options are --role, --user, --attr, --expires");
        }
    }
    if (rc == EXIT_OK && nroles == 0)
        rc = usage_error("auth grant: give at least one --role");
    char khex[2 * SHOAL_KEY_BYTES + 1];
    shoal__hex_encode(key, SHOAL_KEY_BYTES, khex);
    if (rc == EXIT_OK) {
        shoal_cert_spec spec = { user ? user : khex, roles, nroles, names, values, nattrs,
                                 (uint64_t)life };
        shoal_err e = shoal_auth_grant(r, key, &spec);
        rc = e == SHOAL_OK ? EXIT_OK : fail(r, e, "auth grant", false);
    }
    for (size_t i = 0; i < nattrs; i++) {
        free((char *)names[i]);
        free(vals[i].buf);
    }
    return rc;
}

static int
auth_admin(shoal_replica *r, int argc, char **argv)
{
    uint8_t key[SHOAL_KEY_BYTES];
    int rc = auth_key(argv[1], key);
    if (rc != EXIT_OK)
        return rc;
    uint32_t caps = 0;
    const char *scope = NULL;
    int64_t life = 0;
    static const char *const cap_names[] = { "policy", "issue", "revoke", "delegate" };
    for (int i = 2; rc == EXIT_OK && i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            rc = usage_error("auth admin: an option lacks its value");
        } else if (strcmp(o, "--cap") == 0) {
            uint32_t c = 0;
            for (int k = 0; k < 4; k++)
                if (strcmp(v, cap_names[k]) == 0)
                    c = 1u << k;
            if (c == 0)
                rc = usage_error("auth admin: --cap policy|issue|revoke|delegate");
            caps |= c;
        } else if (strcmp(o, "--scope") == 0) {
            scope = v;
        } else if (strcmp(o, "--max-life") == 0) {
            life = parse_duration(v);
            if (life <= 0)
                rc = usage_error("auth admin: --max-life DURATION (N, Ns, Nm, Nh or Nd)");
        } else {
            rc = usage_error("auth admin: options are --cap, --scope, --max-life");
        }
    }
    if (rc == EXIT_OK && caps == 0)
        rc = usage_error("auth admin: give at least one --cap");
    if (rc != EXIT_OK)
        return rc;
    shoal_err e = shoal_auth_admin(r, key, caps, scope, (uint64_t)life);
    return e == SHOAL_OK ? EXIT_OK : fail(r, e, "auth admin", false);
}

static int
auth_revoke(shoal_replica *r, int argc, char **argv)
{
    uint8_t key[SHOAL_KEY_BYTES];
    int rc = auth_key(argv[1], key);
    if (rc != EXIT_OK)
        return rc;
    uint64_t cut = UINT64_MAX;
    const char *reason = NULL;
    for (int i = 2; rc == EXIT_OK && i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (v == NULL) {
            rc = usage_error("auth revoke: an option lacks its value");
        } else if (strcmp(o, "--cut") == 0) {
            errno = 0;
            unsigned long long c = strtoull(v, &end, 10);
            if (errno || !end || *end || v[0] == '-' || c == UINT64_MAX)
                rc = usage_error("auth revoke: --cut SEQ (a number)");
            cut = c;
        } else if (strcmp(o, "--reason") == 0) {
            reason = v;
        } else {
            rc = usage_error("auth revoke: options are --cut, --reason");
        }
    }
    if (rc != EXIT_OK)
        return rc;
    uint64_t done = 0;
    shoal_err e = shoal_auth_revoke(r, key, cut, reason, &done);
    if (e != SHOAL_OK)
        return fail(r, e, "auth revoke", false);
    return printf("{\"cut\":%llu}\n", (unsigned long long)done) < 0 ? EXIT_ERR : EXIT_OK;
}

/* Print the one line of JSON fn returns. */
static int
print_json_of(shoal_replica *r, shoal_err (*fn)(shoal_replica *, char **), const char *what)
{
    char *js = NULL;
    shoal_err e = fn(r, &js);
    if (e != SHOAL_OK)
        return fail(r, e, what, false);
    int rc = printf("%s\n", js) < 0 ? EXIT_ERR : EXIT_OK;
    shoal_free(js);
    return rc;
}

static int
cmd_auth(shoal_replica *r, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "show") == 0 && argc == 1)
        return print_json_of(r, shoal_auth_show, "auth show");
    if (strcmp(sub, "orphans") == 0 && argc == 1)
        return print_json_of(r, shoal_orphans, "auth orphans");
    if (strcmp(sub, "orphans") == 0 && argc == 3 && strcmp(argv[1], "--reauthor") == 0) {
        shoal_replica *dst = NULL;
        int rc = open_replica(argv[2], false, NULL, NULL, &dst);
        if (rc != EXIT_OK)
            return rc;
        size_t n = 0;
        shoal_err e = shoal_orphan_reauthor(r, dst, &n);
        shoal_replica_close(dst);
        if (e != SHOAL_OK)
            return fail(r, e, "auth orphans --reauthor", false);
        return printf("{\"reissued\":%zu}\n", n) < 0 ? EXIT_ERR : EXIT_OK;
    }
    if (strcmp(sub, "policy") == 0 && argc == 2)
        return auth_policy(r, argv[1]);
    if (strcmp(sub, "grant") == 0 && argc >= 2)
        return auth_grant(r, argc, argv);
    if (strcmp(sub, "admin") == 0 && argc >= 2)
        return auth_admin(r, argc, argv);
    if (strcmp(sub, "revoke") == 0 && argc >= 2)
        return auth_revoke(r, argc, argv);
    return usage_error("usage: shoal -d DIR auth policy FILE | grant KEYHEX --role ROLE... "
                       "[--user ID] [--attr NAME=JSON]... [--expires DURATION] | admin KEYHEX "
                       "--cap CAP... [--scope WHERE] [--max-life DURATION] | revoke KEYHEX "
                       "[--cut SEQ] [--reason TEXT] | show");
}

static int
cmd_put(shoal_replica *r, const char *coll, const char *id, const char *text)
{
    json_t *obj = parse_json(text, strlen(text), "JSON_OBJECT");
    if (obj == NULL)
        return EXIT_ERR;
    if (!json_is_object(obj)) {
        json_decref(obj);
        return usage_error("put needs a JSON object {\"field\": value, ...}");
    }
    shoal_txn *t = NULL;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e != SHOAL_OK) {
        json_decref(obj);
        return fail(r, e, "put", false);
    }
    int rc = EXIT_OK;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        shoal_json_scalar s;
        char err[SHOAL_JSON_ERRLEN];
        if (shoal__json_to_scalar(val, &s, err, sizeof err) != 0) {
            errorf("put: field %s: %s", key, err);
            rc = EXIT_ERR;
            break;
        }
        e = shoal_txn_set(t, coll, id, key, &s.value);
        free(s.buf);
        if (e != SHOAL_OK) {
            char what[64 + SHOAL_MAX_FIELD];
            snprintf(what, sizeof what, "put: field %s", key);
            rc = fail(r, e, what, false);
            break;
        }
    }
    json_decref(obj);
    if (rc != EXIT_OK) {
        shoal_txn_abort(t);
        return rc;
    }
    return commit(r, t, "put");
}

static int
cmd_unset(shoal_replica *r, const char *coll, const char *id, const char *field)
{
    int rc = need_live(r, coll, id, NULL);
    if (rc != EXIT_OK)
        return rc;
    shoal_txn *t = NULL;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e == SHOAL_OK)
        e = shoal_txn_unset(t, coll, id, field);
    if (e != SHOAL_OK) {
        shoal_txn_abort(t);
        return fail(r, e, "unset", false);
    }
    return commit(r, t, "unset");
}

static int
cmd_get(shoal_replica *r, const char *coll, const char *id)
{
    shoal_doc *d = NULL;
    int rc = need_live(r, coll, id, &d);
    if (rc != EXIT_OK)
        return rc;
    char err[SHOAL_JSON_ERRLEN];
    json_t *j = shoal__json_from_doc(d, err, sizeof err);
    shoal_doc_free(d);
    if (j == NULL) {
        errorf("get: %s", err);
        return EXIT_ERR;
    }
    return print_json(j);
}

static int
cmd_del(shoal_replica *r, const char *coll, const char *id)
{
    int rc = need_live(r, coll, id, NULL);
    if (rc != EXIT_OK)
        return rc;
    shoal_txn *t = NULL;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e == SHOAL_OK)
        e = shoal_txn_delete(t, coll, id);
    if (e != SHOAL_OK) {
        shoal_txn_abort(t);
        return fail(r, e, "del", false);
    }
    return commit(r, t, "del");
}

static int
cmd_incr(shoal_replica *r, const char *coll, const char *id, const char *field, const char *num)
{
    int64_t n;
    if (parse_i64(num, &n) != 0)
        return usage_error("incr: N must be a decimal int64 (it may be negative)");
    int rc = need_not_deleted(r, coll, id);
    if (rc != EXIT_OK)
        return rc;
    shoal_txn *t = NULL;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e == SHOAL_OK)
        e = shoal_txn_counter_add(t, coll, id, field, n);
    if (e != SHOAL_OK) {
        shoal_txn_abort(t);
        return fail(r, e, "incr", false);
    }
    return commit(r, t, "incr");
}

static int
cmd_insert(shoal_replica *r, const char *coll, const char *id, const char *field, const char *index,
           const char *text)
{
    size_t ix;
    if (parse_index(index, &ix) != 0)
        return usage_error("insert: INDEX must be a non-negative decimal integer");
    json_t *j = parse_json(text, strlen(text), "insert value");
    if (j == NULL)
        return EXIT_ERR;
    shoal_json_scalar s;
    char err[SHOAL_JSON_ERRLEN];
    int conv = shoal__json_to_scalar(j, &s, err, sizeof err);
    if (conv != 0) {
        json_decref(j);
        errorf("insert: %s", err);
        return EXIT_ERR;
    }
    int rc = need_not_deleted(r, coll, id);
    shoal_txn *t = NULL;
    shoal_err e = SHOAL_OK;
    if (rc == EXIT_OK) {
        e = shoal_txn_begin(r, &t);
        if (e == SHOAL_OK)
            e = shoal_txn_list_insert(t, coll, id, field, ix, &s.value);
    }
    free(s.buf);
    json_decref(j);
    if (rc != EXIT_OK)
        return rc;
    if (e != SHOAL_OK) {
        shoal_txn_abort(t);
        return fail(r, e, "insert", false);
    }
    return commit(r, t, "insert");
}

static int
cmd_remove(shoal_replica *r, const char *coll, const char *id, const char *field, const char *index)
{
    size_t ix;
    if (parse_index(index, &ix) != 0)
        return usage_error("remove: INDEX must be a non-negative decimal integer");
    int rc = need_live(r, coll, id, NULL);
    if (rc != EXIT_OK)
        return rc;
    shoal_txn *t = NULL;
    shoal_err e = shoal_txn_begin(r, &t);
    if (e == SHOAL_OK)
        e = shoal_txn_list_remove(t, coll, id, field, ix);
    if (e != SHOAL_OK) {
        shoal_txn_abort(t);
        return fail(r, e, "remove", false);
    }
    return commit(r, t, "remove");
}

static int
cmd_ls(shoal_replica *r, const char *coll)
{
    shoal_strlist *l = NULL;
    shoal_err e = shoal_docs(r, coll, &l);
    if (e != SHOAL_OK)
        return fail(r, e, "ls", false);
    int rc = EXIT_OK;
    for (size_t i = 0; i < shoal_strlist_count(l); i++)
        if (printf("%s\n", shoal_strlist_get(l, i)) < 0)
            rc = EXIT_ERR;
    shoal_strlist_free(l);
    if (fflush(stdout) != 0)
        rc = EXIT_ERR;
    if (rc != EXIT_OK)
        errorf("write to stdout failed: %s", strerror(errno));
    return rc;
}

static int
cmd_version(shoal_replica *r)
{
    shoal_vv *vv = NULL;
    shoal_err e = shoal_replica_version(r, &vv);
    if (e != SHOAL_OK)
        return fail(r, e, "version", false);
    json_t *j = shoal__json_from_vv(vv);
    shoal_vv_free(vv);
    return print_json(j);
}

/* Read the version vector JSON of --since from path ("-" is stdin). */
static int
read_since(const char *path, shoal_vv **out)
{
    *out = NULL;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        errorf("export: cannot open %s: %s", path, strerror(errno));
        return EXIT_ERR;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int got = read_all(f, (size_t)64 << 20, &buf, &len);
    int saved = errno;
    if (f != stdin)
        fclose(f);
    if (got == 1) {
        errorf("export: %s: version vector over 64 MiB", path);
        return EXIT_ERR;
    }
    if (got != 0) {
        errorf("export: cannot read %s: %s", path, strerror(saved));
        return EXIT_ERR;
    }
    json_t *j = parse_json((const char *)buf, len, "--since input");
    free(buf);
    if (j == NULL)
        return EXIT_ERR;
    shoal_vv *vv = NULL;
    shoal_err e = shoal_vv_new(&vv);
    if (e != SHOAL_OK) {
        json_decref(j);
        return fail(NULL, e, "export", false);
    }
    char err[SHOAL_JSON_ERRLEN];
    int rc = shoal__json_to_vv(j, vv, err, sizeof err);
    json_decref(j);
    if (rc != 0) {
        shoal_vv_free(vv);
        errorf("export: --since: %s", err);
        return EXIT_ERR;
    }
    *out = vv;
    return EXIT_OK;
}

static int
cmd_export(shoal_replica *r, int argc, char **argv)
{
    const char *since_path = NULL;
    if (argc == 2 && strcmp(argv[0], "--since") == 0)
        since_path = argv[1];
    else if (argc == 1 && strncmp(argv[0], "--since=", 8) == 0)
        since_path = argv[0] + 8;
    else if (argc != 0)
        return usage_error("usage: shoal -d DIR export [--since FILE|-]");
    if (isatty(STDOUT_FILENO)) {
        errorf("export: refusing to write a binary bundle to a terminal "
               "(redirect stdout to a file)");
        return EXIT_ERR;
    }
    shoal_vv *since = NULL;
    if (since_path != NULL) {
        int rc = read_since(since_path, &since);
        if (rc != EXIT_OK)
            return rc;
    }
    uint8_t *bundle = NULL;
    size_t len = 0;
    shoal_err e = shoal_export(r, since, &bundle, &len);
    shoal_vv_free(since);
    if (e != SHOAL_OK)
        return fail(r, e, "export", false);
    int rc = write_all(bundle, len);
    shoal_free(bundle);
    if (rc != 0) {
        errorf("export: write to stdout failed: %s", strerror(errno));
        return EXIT_ERR;
    }
    return EXIT_OK;
}

static int
cmd_import(shoal_replica *r)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int got = read_all(stdin, MAX_BUNDLE_BYTES, &buf, &len);
    if (got == 1) {
        errorf("import: bundle larger than 1 GiB refused");
        return EXIT_REJECTED;
    }
    if (got != 0) {
        errorf("import: cannot read stdin: %s", strerror(errno));
        return EXIT_ERR;
    }
    shoal_import_result res;
    memset(&res, 0, sizeof res);
    shoal_err e = shoal_import(r, buf, len, &res);
    free(buf);
    if (e != SHOAL_OK)
        return fail(r, e, "import rejected", true);
    return print_json(json_pack("{s:I,s:I,s:I,s:I,s:I}", "applied", (json_int_t)res.applied,
                                "duplicate", (json_int_t)res.duplicate, "equivocations",
                                (json_int_t)res.equivocations, "pending", (json_int_t)res.pending,
                                "rejected", (json_int_t)res.rejected));
}

static int
cmd_digest(shoal_replica *r, int argc, char **argv)
{
    bool full = false, commit = false;
    if (argc == 1 && strcmp(argv[0], "--full") == 0)
        full = true;
    else if (argc == 1 && strcmp(argv[0], "--commitment") == 0)
        commit = true;
    else if (argc != 0)
        return usage_error("usage: shoal -d DIR digest [--full | --commitment]");
    uint8_t dg[SHOAL_DIGEST_BYTES];
    shoal_err e = commit ? shoal_digest_commitment(r, dg) : shoal_digest(r, full, dg);
    if (e != SHOAL_OK)
        return fail(r, e, "digest", false);
    char hex[2 * SHOAL_DIGEST_BYTES + 1];
    shoal__hex_encode(dg, SHOAL_DIGEST_BYTES, hex);
    return printf("%s\n", hex) < 0 ? EXIT_ERR : EXIT_OK;
}

/* ----------------------------------------------------------------- check */

/* Each problem as its own line on stderr (at most SHOAL_CHECK_REPORT_MAX
 * come). */
static void
check_problem(void *arg, const char *problem)
{
    (void)arg;
    errorf("check: %s", problem);
}

static int
cmd_check(shoal_replica *r)
{
    shoal_check_stats st;
    memset(&st, 0, sizeof st);
    shoal_err e = shoal_replica_check(r, check_problem, NULL, &st);
    if (e != SHOAL_OK && e != SHOAL_ECORRUPT)
        return fail(r, e, "check", false);
    int rc = print_json(
        json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "ok", e == SHOAL_OK, "changes",
                  (json_int_t)st.changes, "superseded", (json_int_t)st.superseded, "pending",
                  (json_int_t)st.pending, "evidence", (json_int_t)st.evidence, "documents",
                  (json_int_t)st.documents, "problems", (json_int_t)st.problems, "pages",
                  (json_int_t)st.pages, "free_pages", (json_int_t)st.free_pages));
    if (e == SHOAL_OK)
        return rc;
    if (st.problems > SHOAL_CHECK_REPORT_MAX)
        errorf("check: %llu more problem(s) not listed",
               (unsigned long long)(st.problems - SHOAL_CHECK_REPORT_MAX));
    errorf("the replica in %s is damaged: %llu problem(s); move it aside and re-sync, see "
           "docs/operations.md, \"A damaged replica\"",
           replica_dir, (unsigned long long)st.problems);
    return EXIT_CORRUPT;
}

/* ------------------------------------------------------------- network */

/* The per-peer state of r as a JSON array (Caller owns), or NULL with the
 * error reported; *rc receives the exit code. */
static json_t *
peers_json(shoal_replica *r, int *rc)
{
    shoal_peers *p = NULL;
    shoal_err e = shoal_net_peers(r, &p);
    if (e != SHOAL_OK) {
        *rc = fail(r, e, "peers", false);
        return NULL;
    }
    json_t *j = shoal__json_from_peers(p);
    shoal_peers_free(p);
    if (j == NULL) {
        errorf("peers: out of memory");
        *rc = EXIT_ERR;
    }
    return j;
}

static int
cmd_peers(shoal_replica *r)
{
    int rc = EXIT_OK;
    json_t *j = peers_json(r, &rc);
    return j != NULL ? print_json(j) : rc;
}

static int
cmd_serve(shoal_replica *r, shoal_tool_log *lg, int argc, char **argv)
{
    const char *listen[MAX_NET_ARGS], *peers[MAX_NET_ARGS];
    shoal_node node = { .listen = listen, .peers = peers, .log = lg };
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--allow-any") == 0) {
            node.allow_any = true;
            continue;
        }
        if (strcmp(a, "--events") == 0) {
            node.events = true;
            continue;
        }
        if (strcmp(a, "--listen") != 0 && strcmp(a, "--peer") != 0 && strcmp(a, "--allow") != 0 &&
            strcmp(a, "--log-level") != 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "serve: unknown option %.64s", a);
            return usage_error(msg);
        }
        if (i + 1 >= argc) {
            char msg[128];
            snprintf(msg, sizeof msg, "serve: option %s needs a value", a);
            return usage_error(msg);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--allow") == 0) {
            node.allow = v;
        } else if (strcmp(a, "--log-level") == 0) {
            int lv = shoal__log_level_parse(v);
            if (lv < 0)
                return usage_error("serve: --log-level is error, warn, info or debug");
            lg->max_level = lv;
        } else if (node.nlisten >= MAX_NET_ARGS || node.npeers >= MAX_NET_ARGS) {
            return usage_error("serve: at most 64 --listen and 64 --peer");
        } else if (strcmp(a, "--listen") == 0) {
            listen[node.nlisten++] = v;
        } else {
            peers[node.npeers++] = v;
        }
    }
    if (node.nlisten == 0 && node.npeers == 0)
        return usage_error("serve: give --listen ENDPOINT and/or --peer ENDPOINT@PUBKEY");
    if (node.allow != NULL && node.allow_any)
        return usage_error("serve: --allow and --allow-any exclude each other");
    char err[SHOAL_TOOL_ERRLEN];
    int prep = shoal__node_prepare(&node, err, sizeof err);
    if (prep == 1)
        return usage_error(err);
    int rc = EXIT_OK;
    if (prep != 0 || shoal__node_start(&node, r, err, sizeof err) != 0) {
        errorf("serve: %s", err);
        rc = EXIT_ERR;
    } else {
        shoal__node_run(&node, r);
    }
    shoal__node_free(&node);
    return rc;
}

/* Stats of the peer with key in p: sent and received, 0 if absent. */
static void
peer_counts(shoal_replica *r, const uint8_t *key, uint64_t *sent, uint64_t *received)
{
    *sent = *received = 0;
    shoal_peers *p = NULL;
    if (shoal_net_peers(r, &p) != SHOAL_OK)
        return;
    for (size_t i = 0; i < shoal_peers_count(p); i++)
        if (memcmp(shoal_peers_key(p, i), key, SHOAL_KEY_BYTES) == 0) {
            *sent += shoal_peers_stat(p, i, SHOAL_PS_SENT);
            *received += shoal_peers_stat(p, i, SHOAL_PS_RECEIVED);
        }
    shoal_peers_free(p);
}

static int
cmd_sync(shoal_replica *r, int argc, char **argv)
{
    const char *spec = NULL;
    double timeout = 30;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            timeout = strtod(argv[++i], &end);
            if (errno != 0 || *end != '\0' || end == argv[i] || !(timeout > 0) || timeout > 86400)
                return usage_error("sync: --timeout S must be seconds, above 0, at most 86400");
        } else if (argv[i][0] != '-' && spec == NULL) {
            spec = argv[i];
        } else {
            return usage_error("usage: shoal -d DIR sync ENDPOINT@PUBKEY [--timeout S]");
        }
    }
    if (spec == NULL)
        return usage_error("usage: shoal -d DIR sync ENDPOINT@PUBKEY [--timeout S]");
    char ep[ENDPOINT_MAX], err[SHOAL_TOOL_ERRLEN];
    uint8_t key[SHOAL_KEY_BYTES];
    if (shoal__parse_peer(spec, ep, sizeof ep, key, err, sizeof err) != 0)
        return usage_error(err);
    uint64_t sent0, recv0, sent1, recv1;
    peer_counts(r, key, &sent0, &recv0);
    int ms = (int)(timeout * 1000.0 + 0.5);
    shoal_err e = shoal_net_sync(r, ep, key, ms < 1 ? 1 : ms);
    if (e == SHOAL_EREFUSED) {
        errorf("sync %s: refused by the peer (this replica's key is not on its "
               "allow-list, or the handshake failed)",
               ep);
        shoal_net_stop(r);
        return EXIT_REFUSED;
    }
    if (e == SHOAL_ETIMEDOUT) {
        errorf("sync %s: not done within %g s (peer unreachable, or the exchange too slow)", ep,
               timeout);
        shoal_net_stop(r);
        return EXIT_UNREACHABLE;
    }
    if (e == SHOAL_ECORRUPT) {
        /* The code may be this replica's, or the one the peer sent in its
         * ERROR frame: check tells which. */
        errorf("sync %s: stored state is corrupt, in %s or at the peer (%s); run 'shoal -d %s "
               "check' to tell which, and see docs/operations.md, \"A damaged replica\"",
               ep, replica_dir, shoal_replica_errmsg(r), replica_dir);
        shoal_net_stop(r);
        return EXIT_CORRUPT;
    }
    if (e != SHOAL_OK) {
        int rc = fail(r, e, "sync", true);
        shoal_net_stop(r);
        return rc;
    }
    peer_counts(r, key, &sent1, &recv1);
    shoal_net_stop(r);
    return print_json(json_pack("{s:I,s:I}", "received",
                                (json_int_t)(recv1 >= recv0 ? recv1 - recv0 : recv1), "sent",
                                (json_int_t)(sent1 >= sent0 ? sent1 - sent0 : sent1)));
}

/* ------------------------------------------------------------- queries */

/* find, count, aggregate and watch take COLL, then an optional WHERE (one
 * argument, the predicate text of docs/queries.md), then options.  The
 * options are matched by exact name, like every other subcommand option;
 * each word given to an option is kept as is (Borrowed from argv) and
 * turned into library calls by build_query, so a command parses its
 * arguments once. */
enum {
    QOPT_PARAM = 1 << 0,
    QOPT_SORT = 1 << 1,
    QOPT_LIMIT = 1 << 2,
    QOPT_OFFSET = 1 << 3,
    QOPT_FIELDS = 1 << 4,
    QOPT_GROUP = 1 << 5,
    QOPT_AGG = 1 << 6
};

/* Most words one query option may collect (--param, --sort, --fields,
 * --group, --agg each); the library's own bounds are lower for some. */
enum {
    QUERY_ARGS_MAX = 256
};

typedef struct query_args {
    const char *coll;
    const char *where;                 /* NULL: every live document */
    const char *param[QUERY_ARGS_MAX]; /* NAME=JSON */
    int nparam;
    const char *sort[QUERY_ARGS_MAX]; /* FIELD, FIELD:asc or FIELD:desc */
    int nsort;
    const char *fields[QUERY_ARGS_MAX]; /* a,b,... (each split at commas) */
    int nfields;
    const char *group[QUERY_ARGS_MAX];
    int ngroup;
    const char *agg[QUERY_ARGS_MAX]; /* count, sum:F, min:F, max:F, avg:F */
    int nagg;
    uint64_t limit, offset;
    bool has_limit;
} query_args;

/* The usage line of each query command (for the usage errors). */
static const char find_usage[] =
    "usage: shoal -d DIR find COLL [WHERE] [--param NAME=JSON]... [--sort FIELD[:desc]]... "
    "[--limit N] [--offset N] [--fields A,B]";
static const char count_usage[] = "usage: shoal -d DIR count COLL [WHERE] [--param NAME=JSON]...";
static const char aggregate_usage[] =
    "usage: shoal -d DIR aggregate COLL [WHERE] [--param NAME=JSON]... [--group FIELD]... "
    "--agg count|sum:F|min:F|max:F|avg:F ...";
static const char watch_usage[] = "usage: shoal -d DIR watch COLL [WHERE] [--param NAME=JSON]...";

/* Strict decimal uint64: digits only. */
static int
parse_u64(const char *s, uint64_t *out)
{
    if (s[0] == '\0')
        return -1;
    for (const char *p = s; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* An aggregate spec: "count" or OP:FIELD.  Returns 0 and fills *out (its
 * field points into text), or -1. */
static int
parse_agg(const char *text, shoal_aggregate_spec *out)
{
    static const struct {
        const char *prefix;
        shoal_agg_op op;
    } ops[] = {
        { "sum:", SHOAL_AGG_SUM },
        { "min:", SHOAL_AGG_MIN },
        { "max:", SHOAL_AGG_MAX },
        { "avg:", SHOAL_AGG_AVG },
    };
    if (strcmp(text, "count") == 0) {
        out->op = SHOAL_AGG_COUNT;
        out->field = NULL;
        return 0;
    }
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (strncmp(text, ops[k].prefix, 4) == 0 && text[4] != '\0') {
            out->op = ops[k].op;
            out->field = text + 4;
            return 0;
        }
    return -1;
}

/* Append word to list (*n entries, at most QUERY_ARGS_MAX); 0 or -1. */
static int
add_word(const char **list, int *n, const char *word)
{
    if (*n >= QUERY_ARGS_MAX)
        return -1;
    list[(*n)++] = word;
    return 0;
}

/* Parse "COLL [WHERE] OPTIONS..." for command cmd into qa, allowing the
 * options in allowed.  EXIT_OK, or the usage error reported. */
static int
parse_query_args(const char *cmd, const char *usage, unsigned allowed, int argc, char **argv,
                 query_args *qa)
{
    static const struct {
        const char *name;
        unsigned flag;
    } opts[] = {
        { "--param", QOPT_PARAM },   { "--sort", QOPT_SORT },     { "--limit", QOPT_LIMIT },
        { "--offset", QOPT_OFFSET }, { "--fields", QOPT_FIELDS }, { "--group", QOPT_GROUP },
        { "--agg", QOPT_AGG },
    };
    memset(qa, 0, sizeof *qa);
    if (argc < 1 || strncmp(argv[0], "--", 2) == 0)
        return usage_error(usage);
    qa->coll = argv[0];
    int i = 1;
    if (i < argc && strncmp(argv[i], "--", 2) != 0)
        qa->where = argv[i++];
    char msg[192];
    while (i < argc) {
        const char *a = argv[i];
        unsigned flag = 0;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if (strcmp(a, opts[k].name) == 0)
                flag = opts[k].flag;
        if ((flag & allowed) == 0) {
            if (strncmp(a, "--", 2) == 0)
                snprintf(msg, sizeof msg, "%s: unknown option %.64s; %s", cmd, a, usage);
            else
                snprintf(msg, sizeof msg,
                         "%s: unexpected argument '%.64s' (WHERE is one argument, right after "
                         "COLL: quote it)",
                         cmd, a);
            return usage_error(msg);
        }
        if (i + 1 >= argc || (flag != QOPT_PARAM && argv[i + 1][0] == '\0')) {
            snprintf(msg, sizeof msg, "%s: option %s needs a value", cmd, a);
            return usage_error(msg);
        }
        const char *v = argv[++i];
        i++;
        int full = 0;
        switch (flag) {
        case QOPT_PARAM: full = add_word(qa->param, &qa->nparam, v); break;
        case QOPT_SORT: full = add_word(qa->sort, &qa->nsort, v); break;
        case QOPT_FIELDS: full = add_word(qa->fields, &qa->nfields, v); break;
        case QOPT_GROUP: full = add_word(qa->group, &qa->ngroup, v); break;
        case QOPT_LIMIT:
        case QOPT_OFFSET:
            if (parse_u64(v, flag == QOPT_LIMIT ? &qa->limit : &qa->offset) != 0) {
                snprintf(msg, sizeof msg, "%s: %s N must be a non-negative decimal integer", cmd,
                         a);
                return usage_error(msg);
            }
            qa->has_limit = qa->has_limit || flag == QOPT_LIMIT;
            break;
        case QOPT_AGG:
            /* --agg takes one spec or several: every following word that
             * is not an option. */
            full = add_word(qa->agg, &qa->nagg, v);
            while (full == 0 && i < argc && strncmp(argv[i], "--", 2) != 0)
                full = add_word(qa->agg, &qa->nagg, argv[i++]);
            break;
        }
        if (full != 0) {
            snprintf(msg, sizeof msg, "%s: option %s given more than %d times", cmd, a,
                     QUERY_ARGS_MAX);
            return usage_error(msg);
        }
    }
    return EXIT_OK;
}

/* The name of a --param spec ("NAME=JSON" or ":NAME=JSON") into name
 * (SHOAL_MAX_FIELD + 1 bytes).  0, or -1 when it has no '=', an empty
 * name or an over-long one. */
static int
param_name(const char *spec, char *name)
{
    const char *p = spec[0] == ':' ? spec + 1 : spec;
    const char *eq = strchr(p, '=');
    if (eq == NULL || eq == p || (size_t)(eq - p) > SHOAL_MAX_FIELD)
        return -1;
    memcpy(name, p, (size_t)(eq - p));
    name[eq - p] = '\0';
    return 0;
}

/* Bind one --param NAME=JSON to q.  EXIT_OK or the error reported. */
static int
bind_param(shoal_replica *r, shoal_query *q, const char *cmd, const char *spec)
{
    char name[SHOAL_MAX_FIELD + 1];
    if (param_name(spec, name) != 0) {
        char msg[192];
        snprintf(msg, sizeof msg, "%s: --param needs NAME=JSON, not '%.64s'", cmd, spec);
        return usage_error(msg);
    }
    const char *text = strchr(spec, '=') + 1;
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        errorf("%s: --param %s: value is not valid JSON: %s (a string needs quotes: "
               "--param '%s=\"text\"')",
               cmd, name, jerr.text, name);
        return EXIT_ERR;
    }
    shoal_json_scalar s;
    char err[SHOAL_JSON_ERRLEN];
    if (json_is_array(j) || shoal__json_to_scalar(j, &s, err, sizeof err) != 0) {
        errorf("%s: --param %s: wrong parameter type: %s; a parameter is a JSON scalar (string, "
               "number, true, false, null, {\"$bytes\": base64} or {\"$float\": \"nan\"})",
               cmd, name, json_is_array(j) ? "an array" : "an object");
        json_decref(j);
        return EXIT_ERR;
    }
    shoal_err e = shoal_query_bind(q, name, &s.value);
    free(s.buf);
    json_decref(j);
    if (e == SHOAL_ENOTFOUND) {
        errorf("%s: --param %s: the WHERE has no parameter :%s", cmd, name, name);
        return EXIT_ERR;
    }
    if (e != SHOAL_OK) {
        char what[64 + SHOAL_MAX_FIELD];
        snprintf(what, sizeof what, "%s: --param %s", cmd, name);
        return fail(r, e, what, false);
    }
    return EXIT_OK;
}

/* Whether spec is a --param for the parameter name. */
static bool
param_is(const char *spec, const char *name)
{
    char got[SHOAL_MAX_FIELD + 1];
    return param_name(spec, got) == 0 && strcmp(got, name) == 0;
}

/* Compile qa into *out: the WHERE, every --param (each name once, every
 * parameter of the WHERE bound), and for find the sort keys, limit, offset
 * and fields.  EXIT_OK, or the error reported and *out NULL. */
static int
build_query(shoal_replica *r, const char *cmd, const query_args *qa, shoal_query **out)
{
    *out = NULL;
    shoal_query *q = NULL;
    shoal_err e = shoal_query_new(r, qa->coll, qa->where, &q);
    if (e != SHOAL_OK)
        return fail(r, e, cmd, false);
    int rc = EXIT_OK;
    for (int i = 0; rc == EXIT_OK && i < qa->nparam; i++) {
        char name[SHOAL_MAX_FIELD + 1];
        for (int k = 0; k < i; k++)
            if (param_name(qa->param[k], name) == 0 && param_is(qa->param[i], name)) {
                errorf("%s: --param %s given twice", cmd, name);
                rc = EXIT_ERR;
                break;
            }
        if (rc == EXIT_OK)
            rc = bind_param(r, q, cmd, qa->param[i]);
    }
    for (size_t i = 0; rc == EXIT_OK && i < shoal_query_param_count(q); i++) {
        const char *name = shoal_query_param_name(q, i);
        bool bound = false;
        for (int k = 0; !bound && k < qa->nparam; k++)
            bound = param_is(qa->param[k], name);
        if (!bound) {
            errorf("%s: parameter :%s is not bound (give --param '%s=JSON')", cmd, name, name);
            rc = EXIT_ERR;
        }
    }
    for (int i = 0; rc == EXIT_OK && i < qa->nsort; i++) {
        /* FIELD:desc or FIELD:asc; any other colon belongs to the name. */
        char field[SHOAL_MAX_FIELD + 8];
        snprintf(field, sizeof field, "%s", qa->sort[i]);
        bool desc = false;
        char *colon = strrchr(field, ':');
        if (colon != NULL && (strcmp(colon, ":desc") == 0 || strcmp(colon, ":asc") == 0)) {
            desc = strcmp(colon, ":desc") == 0;
            *colon = '\0';
        }
        if (strlen(qa->sort[i]) >= sizeof field)
            e = SHOAL_EINVAL;
        else
            e = shoal_query_sort(q, field, desc);
        if (e != SHOAL_OK) {
            char what[64 + SHOAL_MAX_FIELD];
            snprintf(what, sizeof what, "%s: --sort %.*s", cmd, SHOAL_MAX_FIELD, qa->sort[i]);
            rc = fail(r, e, what, false);
        }
    }
    if (rc == EXIT_OK && (qa->has_limit || qa->offset > 0))
        shoal_query_limit(q, qa->limit, qa->offset);
    for (int i = 0; rc == EXIT_OK && i < qa->nfields; i++) {
        const char *p = qa->fields[i];
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            char field[SHOAL_MAX_FIELD + 1];
            if (n == 0 || n > SHOAL_MAX_FIELD) {
                errorf("%s: --fields %s: %s field name", cmd, qa->fields[i],
                       n == 0 ? "an empty" : "an over-long");
                rc = EXIT_ERR;
                break;
            }
            memcpy(field, p, n);
            field[n] = '\0';
            e = shoal_query_field(q, field);
            if (e != SHOAL_OK) {
                char what[64 + SHOAL_MAX_FIELD];
                snprintf(what, sizeof what, "%s: --fields %s", cmd, field);
                rc = fail(r, e, what, false);
                break;
            }
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    if (rc != EXIT_OK) {
        shoal_query_free(q);
        return rc;
    }
    *out = q;
    return EXIT_OK;
}

/* The JSON of a document with its id under "_id" (the id wins over a
 * field of that name).  Caller owns the result; NULL with the error
 * reported. */
static json_t *
doc_with_id(const char *cmd, const char *id, const shoal_doc *d)
{
    char err[SHOAL_JSON_ERRLEN];
    json_t *j = shoal__json_from_doc(d, err, sizeof err);
    if (j == NULL) {
        errorf("%s: document %s: %s", cmd, id, err);
        return NULL;
    }
    if (json_object_set_new(j, "_id", json_string(id)) != 0) {
        errorf("%s: document %s: out of memory", cmd, id);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int
cmd_find(shoal_replica *r, int argc, char **argv)
{
    query_args qa;
    int rc = parse_query_args("find", find_usage,
                              QOPT_PARAM | QOPT_SORT | QOPT_LIMIT | QOPT_OFFSET | QOPT_FIELDS, argc,
                              argv, &qa);
    shoal_query *q = NULL;
    if (rc == EXIT_OK)
        rc = build_query(r, "find", &qa, &q);
    if (rc != EXIT_OK)
        return rc;
    /* The library reads limit 0 as "no limit"; here --limit 0 means no
     * rows, so the query is only checked (parameters bound, collection
     * readable). */
    if (qa.has_limit && qa.limit == 0) {
        uint64_t n;
        shoal_err e = shoal_count(r, q, &n);
        shoal_query_free(q);
        return e == SHOAL_OK ? EXIT_OK : fail(r, e, "find", false);
    }
    shoal_rows *rows = NULL;
    shoal_err e = shoal_find(r, q, &rows);
    shoal_query_free(q);
    if (e != SHOAL_OK)
        return fail(r, e, "find", false);
    for (size_t i = 0; rc == EXIT_OK && i < shoal_rows_count(rows); i++) {
        json_t *j = doc_with_id("find", shoal_rows_id(rows, i), shoal_rows_doc(rows, i));
        rc = j != NULL ? print_json(j) : EXIT_ERR;
    }
    shoal_rows_free(rows);
    return rc;
}

static int
cmd_count(shoal_replica *r, int argc, char **argv)
{
    query_args qa;
    int rc = parse_query_args("count", count_usage, QOPT_PARAM, argc, argv, &qa);
    shoal_query *q = NULL;
    if (rc == EXIT_OK)
        rc = build_query(r, "count", &qa, &q);
    if (rc != EXIT_OK)
        return rc;
    uint64_t n = 0;
    shoal_err e = shoal_count(r, q, &n);
    shoal_query_free(q);
    if (e != SHOAL_OK)
        return fail(r, e, "count", false);
    if (printf("%llu\n", (unsigned long long)n) < 0 || fflush(stdout) != 0) {
        errorf("write to stdout failed: %s", strerror(errno));
        return EXIT_ERR;
    }
    return EXIT_OK;
}

/* The index of s in list[0..n), or -1. */
static int
word_index(const char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return i;
    return -1;
}

/* The JSON of a group key or an aggregate value (NIL: null); NULL with the
 * error reported. */
static json_t *
agg_value_json(const shoal_value *v, const char *name)
{
    json_t *j = shoal__json_from_value(v);
    if (j == NULL)
        errorf("aggregate: %s: value cannot be shown as JSON (out of memory or invalid UTF-8)",
               name);
    return j;
}

static int
cmd_aggregate(shoal_replica *r, int argc, char **argv)
{
    query_args qa;
    int rc = parse_query_args("aggregate", aggregate_usage, QOPT_PARAM | QOPT_GROUP | QOPT_AGG,
                              argc, argv, &qa);
    if (rc != EXIT_OK)
        return rc;
    if (qa.nagg == 0)
        return usage_error("aggregate: give at least one --agg count|sum:F|min:F|max:F|avg:F");
    /* One output key per aggregate and per group field: the same one given
     * twice is computed once; a group field named like an aggregate would
     * hide it. */
    const char *group[QUERY_ARGS_MAX], *names[QUERY_ARGS_MAX];
    shoal_aggregate_spec spec[QUERY_ARGS_MAX];
    int ngroup = 0, nspec = 0;
    for (int i = 0; i < qa.ngroup; i++)
        if (word_index(group, ngroup, qa.group[i]) < 0)
            group[ngroup++] = qa.group[i];
    for (int i = 0; i < qa.nagg; i++) {
        if (word_index(names, nspec, qa.agg[i]) >= 0)
            continue;
        if (parse_agg(qa.agg[i], &spec[nspec]) != 0) {
            char msg[192];
            snprintf(msg, sizeof msg,
                     "aggregate: unknown aggregate '%.64s' (count, sum:F, min:F, max:F, avg:F)",
                     qa.agg[i]);
            return usage_error(msg);
        }
        if (word_index(group, ngroup, qa.agg[i]) >= 0) {
            char msg[192];
            snprintf(msg, sizeof msg, "aggregate: --group %.64s has the name of an aggregate",
                     qa.agg[i]);
            return usage_error(msg);
        }
        names[nspec++] = qa.agg[i];
    }
    shoal_query *q = NULL;
    rc = build_query(r, "aggregate", &qa, &q);
    if (rc != EXIT_OK)
        return rc;
    shoal_groups *g = NULL;
    shoal_err e = shoal_aggregate(r, q, group, (size_t)ngroup, spec, (size_t)nspec, &g);
    shoal_query_free(q);
    if (e != SHOAL_OK)
        return fail(r, e, "aggregate", false);
    for (size_t i = 0; rc == EXIT_OK && i < shoal_groups_count(g); i++) {
        json_t *o = json_object();
        for (int k = 0; o != NULL && k < ngroup + nspec; k++) {
            shoal_value v;
            if (k < ngroup)
                shoal_groups_key(g, i, (size_t)k, &v);
            else
                shoal_groups_value(g, i, (size_t)(k - ngroup), &v);
            const char *name = k < ngroup ? group[k] : names[k - ngroup];
            json_t *j = agg_value_json(&v, name);
            if (j == NULL || json_object_set_new(o, name, j) != 0) {
                json_decref(o);
                o = NULL;
                rc = EXIT_ERR;
            }
        }
        if (rc == EXIT_OK)
            rc = print_json(o);
    }
    shoal_groups_free(g);
    return rc;
}

/* ------------------------------------------------------------- indexes */

static const char index_usage[] =
    "usage: shoal -d DIR index add COLL FIELD | index drop COLL FIELD | index ls [COLL]";

/* Print {"collection":coll,"field":f} for each indexed field of coll. */
static int
print_indexes_of(shoal_replica *r, const char *coll)
{
    shoal_strlist *fields = NULL;
    shoal_err e = shoal_indexes(r, coll, &fields);
    if (e != SHOAL_OK)
        return fail(r, e, "index ls", false);
    int rc = EXIT_OK;
    for (size_t i = 0; rc == EXIT_OK && i < shoal_strlist_count(fields); i++)
        rc = print_json(
            json_pack("{s:s,s:s}", "collection", coll, "field", shoal_strlist_get(fields, i)));
    shoal_strlist_free(fields);
    return rc;
}

static int
cmd_index(shoal_replica *r, int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[0], "add") == 0 || strcmp(argv[0], "drop") == 0)) {
        bool add = strcmp(argv[0], "add") == 0;
        shoal_err e =
            add ? shoal_index_add(r, argv[1], argv[2]) : shoal_index_drop(r, argv[1], argv[2]);
        if (e == SHOAL_ENOTFOUND) {
            errorf("index drop: no index on %s field %s", argv[1], argv[2]);
            return EXIT_NOTFOUND;
        }
        return e == SHOAL_OK ? EXIT_OK : fail(r, e, add ? "index add" : "index drop", false);
    }
    if ((argc == 1 || argc == 2) && strcmp(argv[0], "ls") == 0) {
        if (argc == 2)
            return print_indexes_of(r, argv[1]);
        shoal_strlist *colls = NULL;
        shoal_err e = shoal_indexes(r, NULL, &colls);
        if (e != SHOAL_OK)
            return fail(r, e, "index ls", false);
        int rc = EXIT_OK;
        for (size_t i = 0; rc == EXIT_OK && i < shoal_strlist_count(colls); i++)
            rc = print_indexes_of(r, shoal_strlist_get(colls, i));
        shoal_strlist_free(colls);
        return rc;
    }
    return usage_error(index_usage);
}

/* -------------------------------------------------------- subscriptions */

static const char subscribe_usage[] =
    "usage: shoal -d DIR subscribe NAME COLL [WHERE] [--param NAME=JSON]...";

static int
cmd_subscribe(shoal_replica *r, int argc, char **argv)
{
    if (argc < 2 || strncmp(argv[0], "--", 2) == 0)
        return usage_error(subscribe_usage);
    query_args qa;
    int rc = parse_query_args("subscribe", subscribe_usage, QOPT_PARAM, argc - 1, argv + 1, &qa);
    shoal_query *q = NULL;
    if (rc == EXIT_OK)
        rc = build_query(r, "subscribe", &qa, &q);
    if (rc != EXIT_OK)
        return rc;
    shoal_err e = shoal_subscribe(r, argv[0], q);
    shoal_query_free(q);
    return e == SHOAL_OK ? EXIT_OK : fail(r, e, "subscribe", false);
}

static int
cmd_unsubscribe(shoal_replica *r, const char *name)
{
    shoal_err e = shoal_unsubscribe(r, name);
    if (e == SHOAL_ENOTFOUND) {
        errorf("unsubscribe: no subscription named %s", name);
        return EXIT_NOTFOUND;
    }
    return e == SHOAL_OK ? EXIT_OK : fail(r, e, "unsubscribe", false);
}

static int
cmd_subscriptions(shoal_replica *r)
{
    shoal_subs *s = NULL;
    shoal_err e = shoal_subscriptions(r, &s);
    if (e != SHOAL_OK)
        return fail(r, e, "subscriptions", false);
    json_t *a = json_array();
    bool bad = a == NULL;
    for (size_t i = 0; !bad && i < shoal_subs_count(s); i++) {
        json_t *params = json_object();
        for (size_t k = 0; params && k < shoal_subs_param_count(s, i); k++) {
            shoal_value v;
            if (shoal_subs_param_value(s, i, k, &v) != SHOAL_OK) {
                bad = true;
                break;
            }
            json_t *j = shoal__json_from_value(&v);
            if (!j || json_object_set_new(params, shoal_subs_param_name(s, i, k), j) != 0)
                bad = true;
        }
        json_t *o = params ? json_pack("{s:s,s:s,s:s,s:o,s:s,s:I}", "name", shoal_subs_name(s, i),
                                       "collection", shoal_subs_collection(s, i), "where",
                                       shoal_subs_where(s, i), "params", params, "state",
                                       shoal_subs_complete(s, i) ? "complete" : "pending", "docs",
                                       (json_int_t)shoal_subs_docs(s, i))
                           : NULL;
        if (!o || json_array_append_new(a, o) != 0)
            bad = true;
    }
    shoal_subs_free(s);
    if (bad) {
        json_decref(a);
        a = NULL;
    }
    return print_json(a);
}

/* ---------------------------------------------------------------- watch */

/* Print one live query event as a JSON line (flushed).  EXIT_OK or the
 * error reported. */
static int
print_live_event(const shoal_live_event *ev)
{
    static const char *const kinds[] = { "?", "enter", "update", "leave", "ready" };
    shoal_live_kind k = shoal_live_event_kind(ev);
    const char *kind = (int)k >= 1 && (int)k <= 4 ? kinds[k] : "?";
    json_t *o = json_pack("{s:s}", "event", kind);
    if (o == NULL || k == SHOAL_LIVE_READY)
        return print_json(o);
    const char *id = shoal_live_event_id(ev);
    const shoal_doc *d = shoal_live_event_doc(ev);
    int bad = json_object_set_new(o, "_id", json_string(id)) != 0;
    if (!bad && d != NULL) {
        char err[SHOAL_JSON_ERRLEN];
        json_t *j = shoal__json_from_doc(d, err, sizeof err);
        if (j == NULL) {
            errorf("watch: document %s: %s", id, err);
            json_decref(o);
            return EXIT_ERR;
        }
        bad = json_object_set_new(o, "doc", j) != 0;
    }
    if (bad) {
        json_decref(o);
        o = NULL;
    }
    return print_json(o);
}

/* Print every event l has now.  EXIT_OK or the error reported. */
static int
drain_live(shoal_replica *r, shoal_live *l)
{
    for (;;) {
        shoal_live_event *ev = NULL;
        shoal_err e = shoal_live_next(l, 0, &ev);
        if (e == SHOAL_ETIMEDOUT)
            return EXIT_OK;
        if (e != SHOAL_OK)
            return fail(r, e, "watch", false);
        int rc = print_live_event(ev);
        shoal_live_event_free(ev);
        if (rc != EXIT_OK)
            return rc;
    }
}

/* true once SIGTERM or SIGINT came (other signals are read and ignored). */
static bool
stop_signalled(void)
{
    bool stop = false;
    char sigs[64];
    ssize_t got;
    while ((got = read(shoal__signal_fd(), sigs, sizeof sigs)) > 0)
        for (ssize_t k = 0; k < got; k++)
            stop = stop || sigs[k] == SIGTERM || sigs[k] == SIGINT;
    return stop;
}

static int
cmd_watch(shoal_replica *r, int argc, char **argv)
{
    query_args qa;
    int rc = parse_query_args("watch", watch_usage, QOPT_PARAM, argc, argv, &qa);
    shoal_query *q = NULL;
    if (rc == EXIT_OK)
        rc = build_query(r, "watch", &qa, &q);
    if (rc != EXIT_OK)
        return rc;
    /* The signal pipe first, so a SIGTERM that comes while the live query
     * opens is not lost. */
    if (shoal__signals_install() != 0) {
        errorf("watch: cannot install signal handlers: %s", strerror(errno));
        shoal_query_free(q);
        return EXIT_ERR;
    }
    shoal_live *l = NULL;
    shoal_err e = shoal_live_open(r, q, &l);
    shoal_query_free(q);
    if (e != SHOAL_OK)
        return fail(r, e, "watch", false);
    /* Sleep in poll until the live query may have events or a signal came;
     * each wake-up prints what is there, without waiting. */
    struct pollfd pfd[2] = {
        { .fd = shoal__signal_fd(), .events = POLLIN },
        { .fd = shoal_live_fd(l), .events = POLLIN },
    };
    rc = drain_live(r, l);
    while (rc == EXIT_OK) {
        int got = poll(pfd, 2, -1);
        if (got < 0 && errno != EINTR) {
            errorf("watch: poll: %s", strerror(errno));
            rc = EXIT_ERR;
            break;
        }
        if (got <= 0)
            continue;
        if ((pfd[0].revents & POLLIN) != 0 && stop_signalled())
            break;
        if ((pfd[1].revents & (POLLERR | POLLNVAL)) != 0) {
            errorf("watch: the live query's descriptor failed");
            rc = EXIT_ERR;
            break;
        }
        if ((pfd[1].revents & (POLLIN | POLLHUP)) != 0)
            rc = drain_live(r, l);
    }
    shoal_live_close(l);
    return rc;
}

/* One subcommand: its name, its positional count (-1: checked by the
 * handler) and whether it may create the replica. */
typedef struct command {
    const char *name;
    int nargs;
    const char *args; /* for the usage error */
} command;

static const command commands[] = {
    { "init", -1, "[--root KEYHEX|self]" },
    { "put", 3, "COLL ID JSON_OBJECT" },
    { "unset", 3, "COLL ID FIELD" },
    { "get", 2, "COLL ID" },
    { "del", 2, "COLL ID" },
    { "incr", 4, "COLL ID FIELD N" },
    { "insert", 5, "COLL ID FIELD INDEX JSON" },
    { "remove", 4, "COLL ID FIELD INDEX" },
    { "ls", 1, "COLL" },
    { "version", 0, "" },
    { "export", -1, "[--since FILE|-]" },
    { "import", 0, "" },
    { "digest", -1, "[--full | --commitment]" },
    { "check", 0, "" },
    { "serve", -1, "--listen ENDPOINT [--allow FILE] [--peer ENDPOINT@PUBKEY ...]" },
    { "sync", -1, "ENDPOINT@PUBKEY [--timeout S]" },
    { "peers", 0, "" },
    { "find", -1, "COLL [WHERE] [OPTIONS]" },
    { "count", -1, "COLL [WHERE] [--param NAME=JSON]..." },
    { "aggregate", -1, "COLL [WHERE] [OPTIONS] --agg SPEC..." },
    { "index", -1, "add|drop COLL FIELD | ls [COLL]" },
    { "watch", -1, "COLL [WHERE] [--param NAME=JSON]..." },
    { "subscribe", -1, "NAME COLL [WHERE] [--param NAME=JSON]..." },
    { "unsubscribe", 1, "NAME" },
    { "subscriptions", 0, "" },
    { "auth", -1,
      "policy FILE | grant KEYHEX --role ROLE... | admin KEYHEX --cap CAP... | revoke KEYHEX | "
      "show | orphans [--reauthor DIR]" },
};

static int
run(shoal_replica *r, shoal_tool_log *lg, const char *name, int argc, char **argv)
{
    if (strcmp(name, "init") == 0)
        return cmd_init(r);
    if (strcmp(name, "auth") == 0)
        return cmd_auth(r, argc, argv);
    if (strcmp(name, "put") == 0)
        return cmd_put(r, argv[0], argv[1], argv[2]);
    if (strcmp(name, "unset") == 0)
        return cmd_unset(r, argv[0], argv[1], argv[2]);
    if (strcmp(name, "get") == 0)
        return cmd_get(r, argv[0], argv[1]);
    if (strcmp(name, "del") == 0)
        return cmd_del(r, argv[0], argv[1]);
    if (strcmp(name, "incr") == 0)
        return cmd_incr(r, argv[0], argv[1], argv[2], argv[3]);
    if (strcmp(name, "insert") == 0)
        return cmd_insert(r, argv[0], argv[1], argv[2], argv[3], argv[4]);
    if (strcmp(name, "remove") == 0)
        return cmd_remove(r, argv[0], argv[1], argv[2], argv[3]);
    if (strcmp(name, "ls") == 0)
        return cmd_ls(r, argv[0]);
    if (strcmp(name, "version") == 0)
        return cmd_version(r);
    if (strcmp(name, "export") == 0)
        return cmd_export(r, argc, argv);
    if (strcmp(name, "import") == 0)
        return cmd_import(r);
    if (strcmp(name, "digest") == 0)
        return cmd_digest(r, argc, argv);
    if (strcmp(name, "check") == 0)
        return cmd_check(r);
    if (strcmp(name, "serve") == 0)
        return cmd_serve(r, lg, argc, argv);
    if (strcmp(name, "sync") == 0)
        return cmd_sync(r, argc, argv);
    if (strcmp(name, "peers") == 0)
        return cmd_peers(r);
    if (strcmp(name, "find") == 0)
        return cmd_find(r, argc, argv);
    if (strcmp(name, "count") == 0)
        return cmd_count(r, argc, argv);
    if (strcmp(name, "aggregate") == 0)
        return cmd_aggregate(r, argc, argv);
    if (strcmp(name, "index") == 0)
        return cmd_index(r, argc, argv);
    if (strcmp(name, "watch") == 0)
        return cmd_watch(r, argc, argv);
    if (strcmp(name, "subscribe") == 0)
        return cmd_subscribe(r, argc, argv);
    if (strcmp(name, "unsubscribe") == 0)
        return cmd_unsubscribe(r, argv[0]);
    if (strcmp(name, "subscriptions") == 0)
        return cmd_subscriptions(r);
    return usage_error("unknown command");
}

int
main(int argc, char **argv)
{
    const char *dir = getenv("SHOAL_DIR");
    if (dir != NULL && dir[0] == '\0')
        dir = NULL;
    int i = 1;
    /* Global options: only before the subcommand. */
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_usage();
            return EXIT_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("shoal %d.%d.%d (libshoal %s)\n", SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR,
                   SHOAL_VERSION_PATCH, shoal_version());
            return EXIT_OK;
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--dir") == 0) {
            if (i + 1 >= argc)
                return usage_error("option -d needs a directory");
            dir = argv[i + 1];
            i += 2;
        } else if (strncmp(a, "--dir=", 6) == 0) {
            dir = a + 6;
            i++;
        } else if (strncmp(a, "-d", 2) == 0) {
            dir = a + 2;
            i++;
        } else {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown option %.64s", a);
            return usage_error(msg);
        }
    }
    if (i >= argc)
        return usage_error("missing command");
    const char *name = argv[i++];
    if (strcmp(name, "help") == 0) {
        print_usage();
        return EXIT_OK;
    }
    const command *cmd = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(commands[k].name, name) == 0)
            cmd = &commands[k];
    if (cmd == NULL) {
        char msg[128];
        snprintf(msg, sizeof msg, "unknown command %.64s", name);
        return usage_error(msg);
    }
    int nargs = argc - i;
    if (cmd->nargs >= 0 && nargs != cmd->nargs) {
        char msg[128];
        snprintf(msg, sizeof msg, "usage: shoal -d DIR %s %s", cmd->name, cmd->args);
        return usage_error(msg);
    }
    if (dir == NULL || dir[0] == '\0')
        return usage_error("no replica directory: give -d DIR (or set SHOAL_DIR)");
    replica_dir = dir;
    /* The library's log: serve shows INFO and up; sync shows nothing, so
     * that a failure stays one line.  $SHOAL_LOG_LEVEL overrides both
     * (serve --log-level overrides that). */
    bool net = strcmp(name, "serve") == 0 || strcmp(name, "sync") == 0;
    shoal_tool_log lg = { strcmp(name, "serve") == 0 ? SHOAL_LOG_INFO : 0,
                          strcmp(name, "serve") == 0 ? "shoal-serve" : "shoal-sync" };
    const char *env_level = getenv("SHOAL_LOG_LEVEL");
    if (env_level != NULL && shoal__log_level_parse(env_level) > 0)
        lg.max_level = shoal__log_level_parse(env_level);
    /* init creates the replica and its missing parents (mkdir -p); so does
     * import into a directory that is missing or empty, which it removes
     * again when the import fails: a rejected bundle leaves nothing. */
    bool init = strcmp(name, "init") == 0;
    bool new_import = strcmp(name, "import") == 0 && dir_is_new(dir) > 0;
    made_dirs made = { .n = 0 };
    if ((init || new_import) && make_dirs(dir, new_import ? &made : NULL) != 0) {
        if (new_import)
            undo_new_replica(dir, &made);
        made_dirs_free(&made);
        return EXIT_ERR;
    }
    /* init [--root KEYHEX|self]: the root key the new replica trusts; self:
     * its own key (the root's replica), known once it exists. */
    uint8_t root[SHOAL_KEY_BYTES];
    bool has_root = false, root_self = false;
    if (init && nargs != 0) {
        const char *k = nargs == 2 && strcmp(argv[i], "--root") == 0 ? argv[i + 1] : NULL;
        if (k == NULL)
            return usage_error("usage: shoal -d DIR init [--root KEYHEX|self]");
        root_self = strcmp(k, "self") == 0;
        if (!root_self && shoal__hex_decode(k, strlen(k), root, SHOAL_KEY_BYTES) != 0)
            return usage_error("--root: expected 64 hex digits or self");
        has_root = true;
    }
    shoal_replica *r = NULL;
    int rc = EXIT_OK;
    if (root_self) {
        rc = open_replica(dir, true, NULL, NULL, &r);
        if (rc == EXIT_OK) {
            memcpy(root, shoal_replica_id(r), SHOAL_KEY_BYTES);
            shoal_replica_close(r);
            r = NULL;
        }
    }
    if (rc == EXIT_OK)
        rc = open_replica(dir, init || new_import, net ? &lg : NULL, has_root ? root : NULL, &r);
    if (rc == EXIT_OK) {
        rc = run(r, &lg, name, nargs, argv + i);
        shoal_replica_close(r);
    }
    if (new_import && rc != EXIT_OK)
        undo_new_replica(dir, &made);
    made_dirs_free(&made);
    return rc;
}
