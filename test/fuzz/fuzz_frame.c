/*
 * test/fuzz/fuzz_frame.c - one sync-protocol frame from a peer
 * (shoal__frame_decode in transport/wire.c).
 *
 * Input: frame bytes.
 * Checks: a frame that decodes re-encodes, with the encoders of wire.c,
 * to the same bytes (frames are canonical MessagePack; an ERROR frame
 * only when its text holds no NUL and its code fits an int).
 */
#include <limits.h>
#include <string.h>

#include "fuzz.h"
#include "transport.h"

/* The subscription set and held-document summary of f, encoded again. */
static void
put_subs_held(shoal__buf *b, const shoal__frame *f)
{
    shoal__mpw w;
    shoal__mpw_init(&w, b);
    shoal__wire_put_subs(&w, f->subs, f->nsubs);
    shoal__wire_put_held_header(&w, f->nheld);
    for (size_t i = 0; i < f->nheld; i++)
        shoal__wire_put_held(&w, &f->held[i]);
    FUZZ_CHECK(w.err == SHOAL_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shoal__frame f;
    if (shoal__frame_decode(data, size, &f) != SHOAL_OK)
        return 0;
    shoal__buf out;
    shoal__buf_init(&out);
    int err = SHOAL_OK;
    bool compare = true;
    switch (f.type) {
    case SHOAL__F_HELLO:
        FUZZ_CHECK(f.key != NULL);
        if (f.version == SHOAL__PROTO_PARTIAL) {
            shoal__buf sh;
            shoal__buf_init(&sh);
            put_subs_held(&sh, &f);
            err = shoal__wire_hello2(&out, f.key, f.entries, f.nentries, sh.p, sh.len);
            shoal__buf_free(&sh);
        } else {
            err = shoal__wire_hello(&out, f.key, f.entries, f.nentries);
        }
        break;
    case SHOAL__F_SUBSCRIBE: {
        shoal__buf sh;
        shoal__buf_init(&sh);
        put_subs_held(&sh, &f);
        err = shoal__wire_subscribe(&out, sh.p, sh.len);
        shoal__buf_free(&sh);
        break;
    }
    case SHOAL__F_LEAVE:
        err = shoal__wire_leave(&out, f.set, f.coll, f.clen, f.id, f.idlen, f.reason, f.heads,
                                f.nheads);
        break;
    case SHOAL__F_HAVE: {
        shoal__buf h;
        shoal__buf_init(&h);
        shoal__mpw w;
        shoal__mpw_init(&w, &h);
        shoal__wire_put_held_header(&w, f.nheld);
        for (size_t i = 0; i < f.nheld; i++)
            shoal__wire_put_held(&w, &f.held[i]);
        FUZZ_CHECK(w.err == SHOAL_OK);
        err = shoal__wire_have(&out, h.p, h.len);
        shoal__buf_free(&h);
        break;
    }
    case SHOAL__F_COMPLETE: err = shoal__wire_complete(&out, f.set); break;
    case SHOAL__F_HOLDS:
        FUZZ_CHECK(f.nentries == 1);
        err = shoal__wire_holds(&out, f.entries);
        break;
    case SHOAL__F_BATCH: err = shoal__wire_batch(&out, f.n, f.count, f.envs, f.envs_len); break;
    case SHOAL__F_ACK: {
        shoal_import_result res = { f.applied, f.duplicate, f.pending, 0 };
        err = shoal__wire_ack(&out, f.n, &res, f.entries, f.nentries);
        break;
    }
    case SHOAL__F_ERROR: {
        compare = f.code <= INT_MAX && !(f.text_len && memchr(f.text, 0, f.text_len));
        if (!compare)
            break;
        char text[SHOAL__ERROR_TEXT + 1];
        FUZZ_CHECK(f.text_len <= SHOAL__ERROR_TEXT);
        if (f.text_len)
            memcpy(text, f.text, f.text_len);
        text[f.text_len] = '\0';
        err = shoal__wire_error(&out, (int)f.code, text);
        break;
    }
    default: FUZZ_CHECK(!"unknown frame type decoded");
    }
    FUZZ_CHECK(err == SHOAL_OK);
    if (compare)
        FUZZ_CHECK(out.len == size && memcmp(out.p, data, size) == 0);
    shoal__buf_free(&out);
    shoal__frame_clear(&f);
    return 0;
}
