/*
 * tools/relay.c - shoal-relay: a long-running replica with no app on top.
 *
 * It listens for devices (and for other relays), keeps every change it is
 * given, forwards the original signed bytes to every other link, and may
 * hold one or more uplinks to a hub (which is another shoal-relay).  All the
 * network work is the library's engine thread; the process around it is
 * the node loop that `shoal serve` runs too (node.c); this file is option
 * parsing (flags and a config file) and opening the replica:
 *
 *   start:    open the replica, apply the allow-list, bind every --listen
 *             endpoint (each bound endpoint is printed on stdout, one line
 *             each, then "id <hex>"), connect the uplinks;
 *   run:      the main thread sleeps in poll(2) on a self-pipe that the
 *             signal handlers write to; every --status-interval seconds it
 *             logs one status line;
 *   SIGUSR1:  log the per-peer state as one JSON line;
 *   SIGHUP:   re-read the --allow file: keys added are allowed, keys
 *             removed are disallowed (their links close); a file that
 *             does not parse changes nothing (logged as an error);
 *   SIGTERM / SIGINT: stop the engine, close the replica (commits were
 *             durable when applied; close syncs whatever the OS still
 *             holds), exit 0.
 *
 * Options come from flags and from an optional key = value config file;
 * a flag replaces the config file's value(s) for its key.  See
 * docs/operations.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encode.h"
#include "log.h"
#include "node.h"
#include "shoal.h"

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1, /* bad flag, bad config file, bad allow-list */
    EXIT_START = 2  /* the replica cannot be opened or an endpoint cannot be bound */
};

enum {
    MAX_LIST = 64
};

static const char usage_text[] =
    "usage: shoal-relay -d DIR --listen ENDPOINT [--listen ENDPOINT ...]\n"
    "                   [--allow FILE | --allow-any] [--upstream ENDPOINT@PUBKEY ...]\n"
    "                   [--subscribe 'COLL [WHERE PREDICATE]' ...]\n"
    "                   [--config FILE] [--log-level LEVEL] [--status-interval S]\n"
    "\n"
    "Run a shoal relay: a full replica that stores every change it is given and\n"
    "forwards it to its other links, until SIGTERM or SIGINT.\n"
    "\n"
    "options:\n"
    "  -d DIR, --dir DIR        replica directory (created if missing)\n"
    "  --listen ENDPOINT        bind a ZeroMQ endpoint, e.g. tcp://0.0.0.0:7400 or\n"
    "                           tcp://127.0.0.1:* (the OS picks the port); repeatable\n"
    "  --allow FILE             admit the peers whose public keys are in FILE (one\n"
    "                           hex key per line; blank lines and # comments ignored)\n"
    "  --allow-any              admit any peer that completes the CurveZMQ handshake\n"
    "                           (an explicit choice: never the default)\n"
    "  --upstream EP@PUBKEY     keep a link to the hub relay with that key; repeatable\n"
    "  --subscribe 'COLL [WHERE PREDICATE]'\n"
    "                           hold only the documents that match (a partial relay,\n"
    "                           docs/sync.md); repeatable: the union; replaces the\n"
    "                           subscriptions the directory holds.  Without it the\n"
    "                           relay keeps those (none: a full relay)\n"
    "  --config FILE            read options from FILE (key = value lines: dir, listen,\n"
    "                           allow, allow_any, upstream, subscribe, log_level,\n"
    "                           status_interval);\n"
    "                           a flag replaces the file's value for its key\n"
    "  --log-level LEVEL        error, warn, info (default) or debug\n"
    "  --status-interval S      log a status line every S seconds (default 60; 0: off)\n"
    "  -h, --help               print this text\n"
    "  --version                print the version\n"
    "\n"
    "stdout: each bound endpoint on its own line, in --listen order, then\n"
    "\"id <hex public key>\".  stderr: the log, one line per message.\n"
    "SIGUSR1 logs the per-peer state as JSON; SIGHUP re-reads the --allow file\n"
    "(keys removed are disallowed and their links closed); SIGTERM/SIGINT stop\n"
    "cleanly.\n"
    "\n"
    "exit status:\n"
    "  0  stopped by SIGTERM or SIGINT\n"
    "  1  usage error, bad config file or allow-list\n"
    "  2  cannot start: the replica cannot be opened or an endpoint not bound\n";

/* One setting as flags or the config file give it. */
typedef struct settings {
    const char *dir;
    const char *listen[MAX_LIST];
    int nlisten;
    const char *allow;
    int allow_any; /* -1 unset, 0, 1 */
    const char *upstream[MAX_LIST];
    int nupstream;
    const char *subscribe[MAX_LIST];
    int nsubscribe;
    const char *log_level;
    const char *status_interval;
} settings;

static shoal_tool_log logger = { SHOAL_LOG_INFO, "shoal-relay" };

static int
usage_error(const char *fmt, const char *arg)
{
    fputs("shoal-relay: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (try 'shoal-relay --help')\n", stderr);
    return EXIT_USAGE;
}

static int
add_item(const char **list, int *n, const char *v, const char *what)
{
    if (*n >= MAX_LIST)
        return usage_error("too many %s values (at most 64)", what);
    list[(*n)++] = v;
    return EXIT_OK;
}

static int
parse_bool(const char *v)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 ||
        strcmp(v, "on") == 0)
        return 1;
    if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0 ||
        strcmp(v, "off") == 0)
        return 0;
    return -1;
}

/* Strings read from the config file live until exit (freed by an atexit
 * handler, so leak checkers see them owned). */
static char *kept[4 * MAX_LIST + 16];
static size_t nkept;

static void
release_kept(void)
{
    while (nkept > 0)
        free(kept[--nkept]);
}

static char *
keep(const char *s, size_t n)
{
    char *c = nkept < sizeof kept / sizeof kept[0] ? malloc(n + 1) : NULL;
    if (c == NULL) {
        fputs("shoal-relay: config: out of memory or too many values\n", stderr);
        exit(EXIT_USAGE);
    }
    if (nkept == 0)
        atexit(release_kept);
    kept[nkept++] = c;
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

/* A path from the config file: relative to the config file's directory. */
static char *
config_path(const char *config, const char *v)
{
    if (v[0] == '/')
        return keep(v, strlen(v));
    const char *slash = strrchr(config, '/');
    if (slash == NULL)
        return keep(v, strlen(v));
    size_t dlen = (size_t)(slash - config) + 1;
    char *c = keep(config, dlen + strlen(v));
    memcpy(c + dlen, v, strlen(v) + 1);
    return c;
}

static int
config_error(const char *path, unsigned long line, const char *msg)
{
    fprintf(stderr, "shoal-relay: config %s line %lu: %s\n", path, line, msg);
    return EXIT_USAGE;
}

/* Read the config file at path into s. */
static int
read_config(const char *path, settings *s)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "shoal-relay: config %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    int rc = EXIT_OK;
    ssize_t got;
    while (rc == EXIT_OK && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *p = line, *end = line + got;
        while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end || *p == '#')
            continue;
        char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL) {
            rc = config_error(path, lineno, "expected 'key = value'");
            break;
        }
        char *kend = eq, *v = eq + 1;
        while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        if (v == end) {
            rc = config_error(path, lineno, "empty value");
            break;
        }
        size_t klen = (size_t)(kend - p);
        char *val = keep(v, (size_t)(end - v));
#define KEY(name) (klen == strlen(name) && memcmp(p, name, klen) == 0)
        if (KEY("dir") || KEY("data_dir")) {
            s->dir = config_path(path, val);
        } else if (KEY("listen")) {
            rc = add_item(s->listen, &s->nlisten, val, "listen");
        } else if (KEY("allow")) {
            s->allow = config_path(path, val);
        } else if (KEY("allow_any")) {
            s->allow_any = parse_bool(val);
            if (s->allow_any < 0)
                rc = config_error(path, lineno, "allow_any must be true or false");
        } else if (KEY("upstream")) {
            rc = add_item(s->upstream, &s->nupstream, val, "upstream");
        } else if (KEY("subscribe")) {
            rc = add_item(s->subscribe, &s->nsubscribe, val, "subscribe");
        } else if (KEY("log_level")) {
            s->log_level = val;
        } else if (KEY("status_interval")) {
            s->status_interval = val;
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown key '%.*s'", (int)(klen < 64 ? klen : 64), p);
            rc = config_error(path, lineno, msg);
        }
#undef KEY
    }
    free(line);
    fclose(f);
    return rc;
}

/* Parse flags into s; *config receives --config.  Returns EXIT_OK, or
 * -1 when --help / --version was handled. */
static int
parse_flags(int argc, char **argv, settings *s, const char **config)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return -1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("shoal-relay %d.%d.%d (libshoal %s)\n", SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR,
                   SHOAL_VERSION_PATCH, shoal_version());
            return -1;
        }
        if (strcmp(a, "--allow-any") == 0) {
            s->allow_any = 1;
            continue;
        }
        bool known = strcmp(a, "-d") == 0 || strcmp(a, "--dir") == 0 ||
                     strcmp(a, "--listen") == 0 || strcmp(a, "--allow") == 0 ||
                     strcmp(a, "--upstream") == 0 || strcmp(a, "--config") == 0 ||
                     strcmp(a, "--subscribe") == 0 || strcmp(a, "--log-level") == 0 ||
                     strcmp(a, "--status-interval") == 0;
        if (!known)
            return usage_error("unknown option %.64s", a);
        if (v == NULL)
            return usage_error("option %s needs a value", a);
        i++;
        int rc = EXIT_OK;
        if (strcmp(a, "-d") == 0 || strcmp(a, "--dir") == 0)
            s->dir = v;
        else if (strcmp(a, "--listen") == 0)
            rc = add_item(s->listen, &s->nlisten, v, "--listen");
        else if (strcmp(a, "--allow") == 0)
            s->allow = v;
        else if (strcmp(a, "--upstream") == 0)
            rc = add_item(s->upstream, &s->nupstream, v, "--upstream");
        else if (strcmp(a, "--subscribe") == 0)
            rc = add_item(s->subscribe, &s->nsubscribe, v, "--subscribe");
        else if (strcmp(a, "--config") == 0)
            *config = v;
        else if (strcmp(a, "--log-level") == 0)
            s->log_level = v;
        else
            s->status_interval = v;
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

/* Flags replace the config file's values key by key. */
static void
merge(settings *into, const settings *flags)
{
    if (flags->dir != NULL)
        into->dir = flags->dir;
    if (flags->nlisten > 0) {
        memcpy(into->listen, flags->listen, sizeof flags->listen);
        into->nlisten = flags->nlisten;
    }
    if (flags->allow != NULL || flags->allow_any >= 0) {
        into->allow = flags->allow;
        into->allow_any = flags->allow_any;
    }
    if (flags->nupstream > 0) {
        memcpy(into->upstream, flags->upstream, sizeof flags->upstream);
        into->nupstream = flags->nupstream;
    }
    if (flags->nsubscribe > 0) {
        memcpy(into->subscribe, flags->subscribe, sizeof flags->subscribe);
        into->nsubscribe = flags->nsubscribe;
    }
    if (flags->log_level != NULL)
        into->log_level = flags->log_level;
    if (flags->status_interval != NULL)
        into->status_interval = flags->status_interval;
}

/* Split "COLL" or "COLL WHERE PREDICATE" (WHERE in any case): 0, or -1. */
static int
split_sub(const char *spec, char *coll, size_t cap, const char **where)
{
    size_t n = strcspn(spec, " \t");
    if (n == 0 || n >= cap)
        return -1;
    memcpy(coll, spec, n);
    coll[n] = '\0';
    const char *p = spec + n;
    p += strspn(p, " \t");
    *where = NULL;
    if (*p == '\0')
        return 0;
    if (strncasecmp(p, "WHERE", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
        return -1;
    *where = p + 6;
    return 0;
}

/* Make the replica's subscriptions exactly the --subscribe ones (named
 * relay-1, relay-2, ...): EXIT_OK or the exit code, reported. */
static int
apply_subscriptions(shoal_replica *r, const settings *s)
{
    if (s->nsubscribe == 0)
        return EXIT_OK;
    shoal_err e = SHOAL_OK;
    for (int i = 0; e == SHOAL_OK && i < s->nsubscribe; i++) {
        char coll[SHOAL_MAX_COLLECTION + 1], name[32];
        const char *where;
        if (split_sub(s->subscribe[i], coll, sizeof coll, &where) != 0)
            return usage_error("--subscribe '%.200s': give 'COLL' or 'COLL WHERE PREDICATE'",
                               s->subscribe[i]);
        shoal_query *q = NULL;
        e = shoal_query_new(r, coll, where, &q);
        snprintf(name, sizeof name, "relay-%d", i + 1);
        if (e == SHOAL_OK)
            e = shoal_subscribe(r, name, q);
        shoal_query_free(q);
        if (e != SHOAL_OK) {
            shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "--subscribe '%s': %s: %s", s->subscribe[i],
                             shoal_strerror(e), shoal_replica_errmsg(r));
            return EXIT_USAGE;
        }
    }
    /* Drop the ones an earlier run set that this one does not name. */
    shoal_subs *have = NULL;
    e = shoal_subscriptions(r, &have);
    for (size_t i = 0; e == SHOAL_OK && i < shoal_subs_count(have); i++) {
        const char *n = shoal_subs_name(have, i);
        int k = 0;
        if (strncmp(n, "relay-", 6) == 0)
            k = atoi(n + 6);
        if (k < 1 || k > s->nsubscribe)
            e = shoal_unsubscribe(r, n);
    }
    shoal_subs_free(have);
    if (e != SHOAL_OK) {
        shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "subscriptions: %s", shoal_strerror(e));
        return EXIT_START;
    }
    shoal__tool_logf(&logger, SHOAL_LOG_INFO, "partial relay: %d subscription(s)", s->nsubscribe);
    return EXIT_OK;
}

/* Open the replica and start the node on it: EXIT_OK or the exit code. */
static int
start(const settings *s, shoal_node *node, shoal_replica **out)
{
    *out = NULL;
    shoal_options *o = NULL;
    shoal_err e = shoal_options_new(&o);
    if (e == SHOAL_OK)
        e = shoal_options_set_log(o, shoal__tool_log, &logger);
    shoal_replica *r = NULL;
    if (e == SHOAL_OK)
        e = shoal_replica_open(&r, s->dir, o);
    shoal_options_free(o);
    if (e != SHOAL_OK) {
        shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "cannot open replica %s: %s%s", s->dir,
                         shoal_strerror(e),
                         e == SHOAL_ECORRUPT ? " (the replica is damaged: move the directory "
                                               "aside and re-sync, see docs/operations.md, \"A "
                                               "damaged replica\")"
                                             : "");
        return EXIT_START;
    }
    *out = r;
    int rc = apply_subscriptions(r, s);
    if (rc != EXIT_OK)
        return rc;
    char hex[2 * SHOAL_KEY_BYTES + 1];
    shoal__hex_encode(shoal_replica_id(r), SHOAL_KEY_BYTES, hex);
    shoal__tool_logf(&logger, SHOAL_LOG_INFO, "replica %s, id %s", s->dir, hex);
    char err[SHOAL_TOOL_ERRLEN];
    if (shoal__node_start(node, r, err, sizeof err) != 0) {
        shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "%s", err);
        return EXIT_START;
    }
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    settings flags, s;
    memset(&flags, 0, sizeof flags);
    memset(&s, 0, sizeof s);
    flags.allow_any = -1;
    s.allow_any = -1;
    const char *config = NULL;
    int rc = parse_flags(argc, argv, &flags, &config);
    if (rc < 0)
        return EXIT_OK;
    if (rc != EXIT_OK)
        return rc;
    if (config != NULL && (rc = read_config(config, &s)) != EXIT_OK)
        return rc;
    merge(&s, &flags);

    if (s.log_level != NULL) {
        int lv = shoal__log_level_parse(s.log_level);
        if (lv < 0)
            return usage_error("log level %.32s: use error, warn, info or debug", s.log_level);
        logger.max_level = lv;
    }
    long interval = 60;
    if (s.status_interval != NULL) {
        char *end;
        errno = 0;
        interval = strtol(s.status_interval, &end, 10);
        if (errno != 0 || *end != '\0' || end == s.status_interval || interval < 0 ||
            interval > 86400)
            return usage_error("status interval %.32s: seconds from 0 to 86400", s.status_interval);
    }
    if (s.dir == NULL || s.dir[0] == '\0')
        return usage_error("%s", "no replica directory: give -d DIR (or dir in --config)");
    if (s.nlisten == 0 && s.nupstream == 0)
        return usage_error("%s", "nothing to do: give --listen and/or --upstream");
    if (s.allow != NULL && s.allow_any == 1)
        return usage_error("%s", "--allow and --allow-any exclude each other");

    shoal_node node = {
        .listen = s.listen,
        .nlisten = s.nlisten,
        .peers = s.upstream,
        .npeers = s.nupstream,
        .allow = s.allow,
        .allow_any = s.allow_any == 1,
        .status_interval = interval,
        .log = &logger,
    };
    char err[SHOAL_TOOL_ERRLEN];
    rc = shoal__node_prepare(&node, err, sizeof err);
    if (rc == 1)
        return usage_error("upstream: %s", err);
    if (rc != 0) {
        fprintf(stderr, "shoal-relay: %s\n", err);
        return EXIT_USAGE;
    }
    shoal_replica *r = NULL;
    rc = start(&s, &node, &r);
    if (rc == EXIT_OK)
        shoal__node_run(&node, r);
    shoal__node_free(&node);
    shoal_replica_close(r);
    if (rc == EXIT_OK)
        shoal__tool_logf(&logger, SHOAL_LOG_INFO, "stopped; replica closed");
    return rc;
}
