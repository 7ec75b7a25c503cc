/*
 * test/fuzz/fuzz_util.c - identities and temporary replicas for the
 * targets (fuzz.h).
 */
#include "crdt.h"
#include "fuzz.h"

#include <ftw.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

void
fuzz_keys(uint8_t pk[FUZZ_NKEYS][32], uint8_t sk[FUZZ_NKEYS][64])
{
    FUZZ_CHECK(sodium_init() >= 0);
    for (int i = 0; i < FUZZ_NKEYS; i++) {
        uint8_t seed[32];
        for (int j = 0; j < 32; j++)
            seed[j] = (uint8_t)(0x11 * (i + 1) + j);
        crypto_sign_seed_keypair(pk[i], sk[i], seed);
    }
}

/* The directory of each open replica (a target opens at most a few). */
enum {
    MAX_REPLICAS = 4
};
static struct {
    shoal_replica *r;
    char dir[4096];
} slots[MAX_REPLICAS];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
rm_slot(int i)
{
    if (slots[i].dir[0])
        nftw(slots[i].dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    slots[i].dir[0] = '\0';
    slots[i].r = NULL;
}

static void
rm_all(void)
{
    for (int i = 0; i < MAX_REPLICAS; i++) {
        if (slots[i].r)
            shoal_replica_close(slots[i].r);
        rm_slot(i);
    }
}

static uint64_t
fixed_now(void *ctx)
{
    (void)ctx;
    return FUZZ_NOW_MS;
}

shoal_replica *
fuzz_replica_open(void)
{
    static int registered;
    if (!registered) {
        atexit(rm_all);
        registered = 1;
    }
    int i = 0;
    while (i < MAX_REPLICAS && slots[i].dir[0])
        i++;
    FUZZ_CHECK(i < MAX_REPLICAS);
    const char *tmp = getenv("TMPDIR");
    snprintf(slots[i].dir, sizeof slots[i].dir, "%s/shoal-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(slots[i].dir) != NULL);
    shoal_options *o;
    FUZZ_CHECK(shoal_options_new(&o) == SHOAL_OK);
    FUZZ_CHECK(shoal_options_set_durable(o, false) == SHOAL_OK);
    FUZZ_CHECK(shoal_options_set_clock(o, fixed_now, NULL) == SHOAL_OK);
    FUZZ_CHECK(shoal_options_set_map_size(o, 64u << 20) == SHOAL_OK);
    shoal_replica *r = NULL;
    shoal_err err = shoal_replica_open(&r, slots[i].dir, o);
    shoal_options_free(o);
    FUZZ_CHECK(err == SHOAL_OK);
    slots[i].r = r;
    return r;
}

shoal_replica *
fuzz_replica_reset(shoal_replica *r)
{
    int i = 0;
    while (i < MAX_REPLICAS && slots[i].r != r)
        i++;
    FUZZ_CHECK(i < MAX_REPLICAS);
    shoal_replica_close(r);
    rm_slot(i);
    return fuzz_replica_open();
}

size_t
fuzz_split(const uint8_t *p, size_t n, fuzz_piece *out, size_t max)
{
    size_t k = 0;
    while (k + 1 < max) {
        const uint8_t *s = memmem(p, n, FUZZ_SEP, FUZZ_SEP_LEN);
        if (!s)
            break;
        out[k++] = (fuzz_piece){ p, (size_t)(s - p) };
        n -= (size_t)(s - p) + FUZZ_SEP_LEN;
        p = s + FUZZ_SEP_LEN;
    }
    out[k++] = (fuzz_piece){ p, n };
    return k;
}

void
fuzz_check_doc(const shoal__doc *d)
{
    shoal__buf full, again, vis;
    shoal__buf_init(&full);
    shoal__buf_init(&again);
    shoal__buf_init(&vis);
    FUZZ_CHECK(shoal__doc_encode_full(d, &full) == SHOAL_OK);
    shoal__doc *back = NULL;
    FUZZ_CHECK(shoal__doc_decode_full(full.p, full.len, &back) == SHOAL_OK);
    FUZZ_CHECK(shoal__doc_encode_full(back, &again) == SHOAL_OK);
    FUZZ_CHECK(again.len == full.len && memcmp(again.p, full.p, full.len) == 0);
    FUZZ_CHECK(shoal__doc_encode_visible(d, &vis) == SHOAL_OK);
    shoal__vfield *v = NULL;
    size_t n = 0;
    FUZZ_CHECK(shoal__doc_view(back, &v, &n) == SHOAL_OK);
    shoal__doc_view_free(v, n);
    shoal__doc_free(back);
    shoal__buf_free(&full);
    shoal__buf_free(&again);
    shoal__buf_free(&vis);
}
