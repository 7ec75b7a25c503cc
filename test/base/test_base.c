/*
 * test/base/test_base.c - the base layer: the hash map against a plain
 * array model under seeded random puts, takes and evictions (both key
 * modes, every removal shifting entries back), allocation failures, the
 * key builders' bytes, big-endian helpers and the hash.
 */
#include <string.h>

#include "base.h"
#include "check.h"
#include "shoal.h"

enum {
    NKEYS = 300, /* distinct keys the random run draws from */
    STEPS = 20000
};

typedef struct model {
    uint8_t key[NKEYS][12];
    size_t klen[NKEYS];
    void *val[NKEYS]; /* NULL: absent */
} model;

static void
make_keys(model *md)
{
    for (size_t i = 0; i < NKEYS; i++) {
        /* Key 0 is empty; the others are i (u16 BE) and 0..10 patterned
         * bytes, so many share lengths and bytes. */
        memset(md->key[i], 0, sizeof md->key[i]);
        md->klen[i] = i == 0 ? 0 : 2 + i % 11;
        if (i) {
            shoal__be16_put(md->key[i], (uint16_t)i);
            for (size_t j = 2; j < md->klen[i]; j++)
                md->key[i][j] = (uint8_t)(j * 31);
        }
        md->val[i] = NULL;
    }
}

/* Is each model key's presence and value what the map says? */
static bool
agrees(const shoal__map *m, const model *md)
{
    size_t n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (shoal__map_get(m, md->key[i], md->klen[i]) != md->val[i])
            return false;
        n += md->val[i] != NULL;
    }
    return n == m->n;
}

static void
random_run(bool borrow)
{
    static model md;
    make_keys(&md);
    /* Keys are distinct (checked, so a broken generator fails loudly). */
    for (size_t i = 0; i < NKEYS; i++)
        for (size_t j = i + 1; j < NKEYS; j++)
            REQUIRE(md.klen[i] != md.klen[j] || memcmp(md.key[i], md.key[j], md.klen[i]) != 0);
    shoal__map m;
    if (borrow)
        shoal__map_init_borrow(&m);
    else
        shoal__map_init(&m);
    static int vals[NKEYS * 4];
    for (int step = 0; step < STEPS; step++) {
        size_t i = check_rand_below(NKEYS);
        uint64_t op = check_rand_below(10);
        /* Keys from a scratch copy: a copying map must not keep the
         * caller's pointer (the scratch is overwritten at once). */
        uint8_t scratch[12];
        memcpy(scratch, md.key[i], sizeof scratch);
        const uint8_t *k = borrow ? md.key[i] : scratch;
        if (op < 6) {
            void *v = &vals[check_rand_below(NKEYS * 4)];
            CHECK_EQ(shoal__map_put(&m, k, md.klen[i], v), SHOAL_OK);
            md.val[i] = v;
        } else if (op < 9) {
            CHECK(shoal__map_take(&m, k, md.klen[i]) == md.val[i]);
            md.val[i] = NULL;
        } else {
            void *v = shoal__map_evict(&m);
            bool found = v == NULL && m.n == 0;
            for (size_t j = 0; j < NKEYS && !found; j++) {
                if (md.val[j] == v && shoal__map_get(&m, md.key[j], md.klen[j]) == NULL) {
                    md.val[j] = NULL;
                    found = true;
                }
            }
            CHECK(found);
        }
        memset(scratch, 0xee, sizeof scratch);
        if (step % 97 == 0 && !agrees(&m, &md)) {
            CHECK(!"map and model disagree");
            break;
        }
    }
    CHECK(agrees(&m, &md));
    shoal__map_reset(&m);
    CHECK_EQ(m.n, 0);
    for (size_t i = 0; i < NKEYS; i++)
        CHECK(shoal__map_get(&m, md.key[i], md.klen[i]) == NULL);
    shoal__map_clear(&m, NULL);
    CHECK_EQ(m.borrow, borrow);
}

static void
test_map_copied(void)
{
    random_run(false);
}

static void
test_map_borrowed(void)
{
    random_run(true);
}

static int freed;
static void
count_free(void *v)
{
    (void)v;
    freed++;
}

static void
test_map_clear_reserve(void)
{
    shoal__map m;
    shoal__map_init_borrow(&m);
    static uint8_t keys[100][4];
    CHECK_EQ(shoal__map_reserve(&m, 100), SHOAL_OK);
    size_t cap = m.cap;
    CHECK(cap >= 200);
    /* A borrowing map with room never allocates: every allocation fails. */
    shoal__alloc_fail_after(1);
    for (int i = 0; i < 100; i++) {
        shoal__be32_put(keys[i], (uint32_t)i);
        CHECK_EQ(shoal__map_put(&m, keys[i], 4, keys[i]), SHOAL_OK);
    }
    shoal__alloc_fail_after(0);
    CHECK_EQ(m.cap, cap);
    CHECK_EQ(m.n, 100);
    freed = 0;
    shoal__map_clear(&m, count_free);
    CHECK_EQ(freed, 100);
    CHECK_EQ(m.n, 0);
    CHECK(m.s == NULL);
}

static void
test_map_enomem(void)
{
    shoal__map m;
    shoal__map_init(&m);
    int v = 1;
    /* The first put allocates the slots, then the key copy: fail each. */
    for (uint64_t nth = 1; nth <= 2; nth++) {
        shoal__alloc_fail_after(nth);
        CHECK_EQ(shoal__map_put(&m, "key", 3, &v), SHOAL_ENOMEM);
        shoal__alloc_fail_after(0);
        CHECK_EQ(m.n, 0);
        CHECK(shoal__map_get(&m, "key", 3) == NULL);
    }
    CHECK_EQ(shoal__map_put(&m, "key", 3, &v), SHOAL_OK);
    CHECK(shoal__map_get(&m, "key", 3) == &v);
    /* Growing fails: the map is unchanged. */
    char k[16];
    int i;
    for (i = 0; m.n * 2 + 2 <= m.cap; i++) {
        snprintf(k, sizeof k, "k%d", i);
        CHECK_EQ(shoal__map_put(&m, k, strlen(k), &v), SHOAL_OK);
    }
    size_t n = m.n;
    shoal__alloc_fail_after(1);
    CHECK_EQ(shoal__map_put(&m, "grow", 4, &v), SHOAL_ENOMEM);
    shoal__alloc_fail_after(0);
    CHECK_EQ(m.n, n);
    CHECK(shoal__map_get(&m, "grow", 4) == NULL);
    CHECK(shoal__map_get(&m, "key", 3) == &v);
    shoal__map_clear(&m, NULL);
}

static void
test_keys(void)
{
    uint8_t author[SHOAL_KEY_BYTES];
    for (int i = 0; i < SHOAL_KEY_BYTES; i++)
        author[i] = (uint8_t)(0xa0 + i);
    uint8_t k[SHOAL__SEQKEY_BYTES];
    CHECK_EQ(shoal__seqkey(k, author, 0x0102030405060708ull), 40);
    CHECK(memcmp(k, author, 32) == 0);
    static const uint8_t be[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    CHECK(memcmp(k + 32, be, 8) == 0);
    /* Keys sort by author, then numerically by seq. */
    uint8_t a[40], b[40];
    shoal__seqkey(a, author, 255);
    shoal__seqkey(b, author, 256);
    CHECK(memcmp(a, b, 40) < 0);

    uint8_t d[SHOAL__DOCKEY_MAX];
    size_t n = shoal__dockey(d, (const uint8_t *)"coll", 4, (const uint8_t *)"id7", 3);
    CHECK_EQ(n, 8);
    CHECK(memcmp(d, "coll\0id7", 8) == 0);
    CHECK_EQ(SHOAL__DOCKEY_MAX, SHOAL_MAX_COLLECTION + 1 + SHOAL_MAX_DOC_ID);
}

static void
test_be_hash(void)
{
    uint8_t p[8];
    shoal__be16_put(p, 0xbeef);
    CHECK(p[0] == 0xbe && p[1] == 0xef);
    CHECK_EQ(shoal__be16_get(p), 0xbeef);
    shoal__be32_put(p, 0x01020304u);
    CHECK(p[0] == 1 && p[3] == 4);
    CHECK_EQ(shoal__be32_get(p), 0x01020304u);
    shoal__be64_put(p, 0x0102030405060708ull);
    CHECK(p[0] == 1 && p[7] == 8);
    CHECK(shoal__be64_get(p) == 0x0102030405060708ull);
    /* Equal bytes hash equal wherever they sit; length counts. */
    uint8_t x[40] = { 0 }, y[48] = { 0 };
    for (int i = 0; i < 40; i++)
        x[i] = y[i + 8] = (uint8_t)(i * 7);
    CHECK(shoal__hash(x, 40) == shoal__hash(y + 8, 40));
    CHECK(shoal__hash(x, 39) != shoal__hash(x, 40));
    CHECK(shoal__hash("", 0) != shoal__hash("\0", 1));
    /* Every bit of a 32-byte key reaches the low bits (patterned keys). */
    uint8_t z[32] = { 0 };
    uint64_t h0 = shoal__hash(z, 32);
    for (int bit = 0; bit < 256; bit++) {
        z[bit / 8] ^= (uint8_t)(1u << bit % 8);
        CHECK((shoal__hash(z, 32) & 0xffffffffu) != (h0 & 0xffffffffu));
        z[bit / 8] ^= (uint8_t)(1u << bit % 8);
    }
}

int
main(void)
{
    check_seed(20261207);
    RUN(test_map_copied);
    RUN(test_map_borrowed);
    RUN(test_map_clear_reserve);
    RUN(test_map_enomem);
    RUN(test_keys);
    RUN(test_be_hash);
    return check_summary();
}
