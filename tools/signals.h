/*
 * tools/signals.h - the long-running tools' signals, as bytes on a pipe.
 */
#ifndef SHOAL_TOOLS_SIGNALS_H
#define SHOAL_TOOLS_SIGNALS_H

/* SIGTERM, SIGINT, SIGUSR1 and SIGHUP write one byte naming the signal into a
 * non-blocking self-pipe whose read end is shoal__signal_fd(); SIGPIPE is
 * ignored.  Returns 0, or -1 with errno set.  Call once per process. */
int shoal__signals_install(void);
int shoal__signal_fd(void);

#endif /* SHOAL_TOOLS_SIGNALS_H */
