/*
 * test/fuzz/fuzz_session.c - a sync session fed frames by a peer
 * (transport/session.c over the host of core/host.c and a real replica).
 *
 * The replica (real LMDB in a temporary directory, non-durable, fixed
 * clock) is reused across runs and replaced by an empty one every
 * RESET_EVERY runs.  Each run makes a new session, starts it and feeds it
 * the input's frames.
 *
 * Input: up to 32 frames separated by FUZZ_SEP.
 * Checks: after each frame the session's output is drained (bounded) and
 * every frame it sends decodes with shoal__frame_decode; a failed session
 * sends at most one frame (its ERROR) and then nothing.
 */
#include <string.h>

#include "core.h"
#include "fuzz.h"
#include "transport.h"

enum {
    RESET_EVERY = 2000,
    MAX_FRAMES = 32,
    DRAIN = 64
};

static shoal_replica *rep;
static shoal__host host;
static unsigned long runs;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rep = fuzz_replica_open();
    shoal__host_init(&host, rep);
    return 0;
}

static void
drain(shoal__session *s)
{
    const uint8_t *fr;
    size_t len;
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    int sent = 0;
    for (int i = 0; i < DRAIN && shoal__session_next(s, &fr, &len) == 1; i++) {
        shoal__frame f;
        int err = shoal__frame_decode(fr, len, &f);
        if (err)
            fprintf(stderr, "session sent a frame that does not decode: %d\n", err);
        FUZZ_CHECK(err == SHOAL_OK);
        shoal__frame_clear(&f);
        sent++;
    }
    if (st.failed) /* failed before this drain: at most its ERROR frame */
        FUZZ_CHECK(sent <= 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++runs % RESET_EVERY == 0) {
        rep = fuzz_replica_reset(rep);
        shoal__host_init(&host, rep);
    }
    fuzz_piece pc[MAX_FRAMES];
    size_t n = fuzz_split(data, size, pc, MAX_FRAMES);
    shoal__session *s = shoal__session_new(&host, shoal_replica_id(rep), NULL);
    FUZZ_CHECK(s != NULL);
    uint64_t now = FUZZ_NOW_MS;
    FUZZ_CHECK(shoal__session_start(s, now) == SHOAL_OK);
    drain(s);
    for (size_t i = 0; i < n; i++) {
        shoal__session_recv(s, pc[i].p, pc[i].n, now + i);
        drain(s);
        shoal__session_changed(s);
        drain(s);
    }
    shoal__session_stats st;
    shoal__session_get_stats(s, &st);
    (void)shoal__session_failure(s);
    shoal__session_free(s);
    return 0;
}
