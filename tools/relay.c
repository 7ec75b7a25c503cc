/*
 * tools/relay.c - shoal-relay: a long-running replica with no app on top.
 *
 * It listens for devices (and for other relays), keeps every change it is
 * given, forwards the original signed bytes to every other link, and may
 * hold one or more uplinks to a hub (which is another shoal-relay).  All the
 * network work is the library's engine thread; this file is option parsing,
 * logging and the process lifecycle:
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
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "json.h"
#include "shoal.h"

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1, /* bad flag, bad config file, bad allow-list */
    EXIT_START = 2  /* the replica cannot be opened or an endpoint cannot be bound */
};

enum {
    MAX_LIST = 64,
    ENDPOINT_MAX = 256
};

static const char usage_text[] =
    "usage: shoal-relay -d DIR --listen ENDPOINT [--listen ENDPOINT ...]\n"
    "                   [--allow FILE | --allow-any] [--upstream ENDPOINT@PUBKEY ...]\n"
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
    "  --config FILE            read options from FILE (key = value lines: dir, listen,\n"
    "                           allow, allow_any, upstream, log_level, status_interval);\n"
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

/* Log the per-peer state as one JSON line. */
static void
log_peers(shoal_replica *r)
{
    shoal_peers *p = NULL;
    shoal_err e = shoal_net_peers(r, &p);
    if (e != SHOAL_OK) {
        shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "peers: %s", shoal_strerror(e));
        return;
    }
    json_t *j = shoal__json_from_peers(p);
    shoal_peers_free(p);
    char *s = j != NULL ? shoal__json_dumps(j) : NULL;
    json_decref(j);
    if (s == NULL) {
        shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "peers: out of memory");
        return;
    }
    /* Not through the 1 KiB log line: many peers make a long line. */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ shoal-relay INFO peers %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000L, s);
    fflush(stderr);
    free(s);
}

/* Log one status line: links, lag, rejected input, refusals. */
static void
log_status(shoal_replica *r)
{
    shoal_peers *p = NULL;
    if (shoal_net_peers(r, &p) != SHOAL_OK)
        return;
    size_t n = shoal_peers_count(p), up = 0;
    uint64_t lag = 0, rejected = 0, refused = 0, equiv = 0;
    for (size_t i = 0; i < n; i++) {
        up += shoal_peers_stat(p, i, SHOAL_PS_CONNECTED) != 0;
        lag += shoal_peers_stat(p, i, SHOAL_PS_LAG);
        rejected += shoal_peers_stat(p, i, SHOAL_PS_REJECTED);
        refused += shoal_peers_stat(p, i, SHOAL_PS_REFUSED);
        equiv += shoal_peers_stat(p, i, SHOAL_PS_EQUIVOCATIONS);
    }
    shoal_peers_free(p);
    uint64_t pending = 0;
    (void)shoal_pending_count(r, &pending);
    shoal__tool_logf(&logger, SHOAL_LOG_INFO,
                     "status: peers=%zu connected=%zu lag=%llu pending=%llu rejected=%llu "
                     "refused=%llu equivocations=%llu",
                     n, up, (unsigned long long)lag, (unsigned long long)pending,
                     (unsigned long long)rejected, (unsigned long long)refused,
                     (unsigned long long)equiv);
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
                     strcmp(a, "--log-level") == 0 || strcmp(a, "--status-interval") == 0;
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
    if (flags->log_level != NULL)
        into->log_level = flags->log_level;
    if (flags->status_interval != NULL)
        into->status_interval = flags->status_interval;
}

/* Open the replica, allow, listen, connect: EXIT_OK or the exit code. */
static int
start(const settings *s, const uint8_t *keys, size_t nkeys, shoal_replica **out)
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
        shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "cannot open replica %s: %s", s->dir,
                         shoal_strerror(e));
        return EXIT_START;
    }
    *out = r;
    char hex[2 * SHOAL_KEY_BYTES + 1];
    shoal__hex_encode(shoal_replica_id(r), SHOAL_KEY_BYTES, hex);
    shoal__tool_logf(&logger, SHOAL_LOG_INFO, "replica %s, id %s", s->dir, hex);

    for (size_t i = 0; i < nkeys; i++) {
        e = shoal_net_allow(r, keys + i * SHOAL_KEY_BYTES);
        if (e != SHOAL_OK) {
            shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "allow: %s", shoal_strerror(e));
            return EXIT_START;
        }
    }
    if (s->allow_any == 1) {
        e = shoal_net_allow_any(r, true);
        if (e != SHOAL_OK) {
            shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "allow-any: %s", shoal_strerror(e));
            return EXIT_START;
        }
        shoal__tool_logf(&logger, SHOAL_LOG_WARN,
                         "allow-any: every peer that completes the handshake is admitted");
    } else if (s->allow != NULL) {
        shoal__tool_logf(&logger, SHOAL_LOG_INFO, "allow-list %s: %zu key(s)", s->allow, nkeys);
    } else {
        shoal__tool_logf(&logger, SHOAL_LOG_WARN,
                         "no --allow and no --allow-any: every incoming link is refused");
    }

    for (int i = 0; i < s->nlisten; i++) {
        char *bound = NULL;
        e = shoal_net_listen(r, s->listen[i], &bound);
        if (e != SHOAL_OK) {
            shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "listen %s: %s (%s)", s->listen[i],
                             shoal_strerror(e), shoal_replica_errmsg(r));
            return EXIT_START;
        }
        if (bound != NULL)
            shoal__endpoint_tidy(bound);
        printf("%s\n", bound != NULL ? bound : s->listen[i]);
        fflush(stdout);
        shoal_free(bound);
    }
    printf("id %s\n", hex);
    fflush(stdout);

    for (int i = 0; i < s->nupstream; i++) {
        char ep[ENDPOINT_MAX], err[SHOAL_JSON_ERRLEN];
        uint8_t key[SHOAL_KEY_BYTES];
        (void)shoal__parse_peer(s->upstream[i], ep, sizeof ep, key, err, sizeof err);
        e = shoal_net_connect(r, ep, key);
        if (e != SHOAL_OK) {
            shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "upstream %s: %s (%s)", ep,
                             shoal_strerror(e), shoal_replica_errmsg(r));
            return EXIT_START;
        }
        shoal__tool_logf(&logger, SHOAL_LOG_INFO, "upstream %s (hub %.16s...)", ep,
                         s->upstream[i] + strlen(ep) + 1);
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

    for (int i = 0; i < s.nupstream; i++) {
        char ep[ENDPOINT_MAX], err[SHOAL_JSON_ERRLEN];
        uint8_t key[SHOAL_KEY_BYTES];
        if (shoal__parse_peer(s.upstream[i], ep, sizeof ep, key, err, sizeof err) != 0)
            return usage_error("upstream: %s", err);
    }
    uint8_t *keys = NULL;
    size_t nkeys = 0;
    if (s.allow != NULL) {
        char err[SHOAL_JSON_ERRLEN + 256];
        if (shoal__read_allow_file(s.allow, &keys, &nkeys, err, sizeof err) != 0) {
            fprintf(stderr, "shoal-relay: %s\n", err);
            return EXIT_USAGE;
        }
    }
    if (shoal__signals_install() != 0) {
        fprintf(stderr, "shoal-relay: cannot install signal handlers: %s\n", strerror(errno));
        free(keys);
        return EXIT_START;
    }

    shoal_replica *r = NULL;
    rc = start(&s, keys, nkeys, &r);
    if (rc != EXIT_OK) {
        free(keys);
        shoal_replica_close(r);
        return rc;
    }
    shoal__tool_logf(&logger, SHOAL_LOG_INFO, "running (pid %ld)", (long)getpid());

    uint64_t next_status = mono_ms() + (uint64_t)interval * 1000u;
    bool stop = false;
    while (!stop) {
        int timeout = -1;
        if (interval > 0) {
            uint64_t now = mono_ms();
            timeout = now >= next_status ? 0 : (int)(next_status - now);
        }
        struct pollfd pfd = { .fd = shoal__signal_fd(), .events = POLLIN };
        int n = poll(&pfd, 1, timeout);
        if (n < 0 && errno != EINTR) {
            shoal__tool_logf(&logger, SHOAL_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (n > 0) {
            char sigs[64];
            ssize_t got;
            while ((got = read(shoal__signal_fd(), sigs, sizeof sigs)) > 0)
                for (ssize_t k = 0; k < got; k++) {
                    if (sigs[k] == SIGUSR1) {
                        log_peers(r);
                    } else if (sigs[k] == SIGHUP) {
                        if (s.allow != NULL)
                            (void)shoal__allow_reload(r, s.allow, &keys, &nkeys, &logger);
                        else
                            shoal__tool_logf(&logger, SHOAL_LOG_WARN,
                                             "SIGHUP: no allow-list file to reload");
                    } else if (!stop) {
                        shoal__tool_logf(&logger, SHOAL_LOG_INFO, "%s: shutting down",
                                         sigs[k] == SIGINT ? "SIGINT" : "SIGTERM");
                        stop = true;
                    }
                }
        }
        if (interval > 0 && mono_ms() >= next_status) {
            log_status(r);
            next_status = mono_ms() + (uint64_t)interval * 1000u;
        }
    }
    free(keys);
    shoal_net_stop(r);
    shoal_replica_close(r);
    shoal__tool_logf(&logger, SHOAL_LOG_INFO, "stopped; replica closed");
    return EXIT_OK;
}
