/*
 * tools/signals.c - signal handlers that only write a byte to a self-pipe,
 * so the main loop handles every signal in ordinary code (see signals.h).
 */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

static int sig_pipe[2] = { -1, -1 };

static void
on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1);
    (void)w; /* a full pipe already holds a wake-up */
    errno = saved;
}

int
shoal__signals_install(void)
{
    if (pipe(sig_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(sig_pipe[i], F_GETFL);
        if (fl < 0 || fcntl(sig_pipe[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC) != 0)
            return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int
shoal__signal_fd(void)
{
    return sig_pipe[0];
}
