/*
 * tools/log.c - the tools' stderr log (see log.h).
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "shoal.h"

static const char *const level_names[] = { "?", "ERROR", "WARN", "INFO", "DEBUG" };

static const char *
level_name(int level)
{
    return level_names[level >= 1 && level <= 4 ? level : 0];
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of now into out (64 bytes: room for any year). */
static void
timestamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

/* Write all of line (len bytes) to stderr in as few write(2) calls as it
 * takes (one, for a line under the pipe buffer). */
static void
write_line(const char *line, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

int
shoal__log_level_parse(const char *name)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return SHOAL_LOG_ERROR + i;
    if (strcmp(name, "warning") == 0)
        return SHOAL_LOG_WARN;
    return -1;
}

void
shoal__tool_log(void *ctx, int level, const char *msg)
{
    const shoal_tool_log *lg = ctx;
    if (level > lg->max_level)
        return;
    char ts[64];
    timestamp(ts, sizeof ts);
    char line[1024];
    int n = snprintf(line, sizeof line - 1, "%s %s %s %s", ts, lg->prog, level_name(level), msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    write_line(line, len);
}

void
shoal__tool_logf(shoal_tool_log *lg, int level, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    shoal__tool_log(lg, level, msg);
}

void
shoal__tool_log_long(shoal_tool_log *lg, int level, const char *what, const char *text)
{
    char ts[64];
    timestamp(ts, sizeof ts);
    size_t cap = strlen(ts) + strlen(lg->prog) + strlen(what) + strlen(text) + 16;
    char *line = malloc(cap);
    if (line == NULL) {
        shoal__tool_logf(lg, SHOAL_LOG_ERROR, "%s: out of memory", what);
        return;
    }
    int n = snprintf(line, cap, "%s %s %s %s %s\n", ts, lg->prog, level_name(level), what, text);
    if (n > 0)
        write_line(line, (size_t)n < cap ? (size_t)n : cap - 1);
    free(line);
}
