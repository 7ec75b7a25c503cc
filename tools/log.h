/*
 * tools/log.h - the tools' log: one line per message on stderr.
 */
#ifndef SHOAL_TOOLS_LOG_H
#define SHOAL_TOOLS_LOG_H

/* Size of a buffer for the one-line error messages of the tools'
 * helpers (allow-list, peer specs: they name a path or a spec). */
enum {
    SHOAL_TOOL_ERRLEN = 512
};

/* Where a tool's log lines go: every message at level <= max_level is
 * written to stderr as one line "TIMESTAMP PROG LEVEL message" (UTC,
 * milliseconds) with a single write(2), so lines from several threads do
 * not interleave. */
typedef struct shoal_tool_log {
    int max_level;    /* a shoal_log_level */
    const char *prog; /* Borrowed for the logger's life */
} shoal_tool_log;

/* A log callback for shoal_options_set_log; ctx is a shoal_tool_log.
 * Messages are cut at about 1 KiB; newlines become spaces. */
void shoal__tool_log(void *ctx, int level, const char *msg);

/* printf-style shoal__tool_log. */
void shoal__tool_logf(shoal_tool_log *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One log line "TIMESTAMP PROG LEVEL what text" of any length (text is,
 * e.g., a JSON document that may be long), written whatever lg's
 * max_level: it answers an explicit request (SIGUSR1). */
void shoal__tool_log_long(shoal_tool_log *lg, int level, const char *what, const char *text);

/* "error", "warn" (or "warning"), "info", "debug" -> level; -1 if unknown. */
int shoal__log_level_parse(const char *name);

#endif /* SHOAL_TOOLS_LOG_H */
