/*
 * test/support/check.h - the tiny test harness every C test uses.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_ERR(f(), SHOAL_OK); }
 *   int main(void) { RUN(test_something); return check_summary(); }
 *
 * A failed CHECK prints file:line and the expression and counts a failure;
 * the test goes on.  check_summary() prints "N passed, N failed" over the
 * RUN()s and returns the exit code.
 */
#ifndef SHOAL_TEST_SUPPORT_CHECK_H
#define SHOAL_TEST_SUPPORT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int check_failures; /* failures in the test now running */

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

/* Compare two integer-valued expressions (error codes, counts). */
#define CHECK_EQ(a, b)                                                                    \
    do {                                                                                  \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                   \
        if (check_a_ != check_b_) {                                                       \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", __FILE__, \
                    __LINE__, #a, check_a_, #b, check_b_);                                \
            check_failures++;                                                             \
        }                                                                                 \
    } while (0)

/* Abort the current test function (after counting a failure). */
#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                          \
            return;                                                                    \
        }                                                                              \
    } while (0)

#define RUN(fn) check_run(#fn, fn)

void check_run(const char *name, void (*fn)(void));
int check_summary(void);

/* Seeded randomness: the seed comes from $SHOAL_SEED or the default, and is
 * printed once.  xorshift64*; deterministic for a given seed. */
uint64_t check_seed(uint64_t dflt);
uint64_t check_rand(void);
uint64_t check_rand_below(uint64_t n); /* uniform in [0, n) */
void check_rand_reseed(uint64_t seed);
/* An integer from the environment (for "how many seeds" knobs). */
long check_env_long(const char *name, long dflt);

/* A fresh temporary directory (under $TMPDIR or /tmp); caller frees the
 * string.  check_rmtree removes a tree. */
char *check_tmpdir(const char *tag);
void check_rmtree(const char *path);
/* Copy the regular files of directory from into directory to (which
 * exists): a replica's files, to make a twin of it.  false on any
 * error. */
bool check_copy_dir(const char *from, const char *to);
/* "a/b", malloc'd (aborts when out of memory); caller frees it. */
char *check_path_join(const char *a, const char *b);

/* Write a replica identity (dir/identity, the 64-byte Ed25519 secret key,
 * mode 0600) derived from the seeded generator, so a seed reproduces the
 * same author keys and therefore the same tie-breaks.  dir must exist and
 * hold no identity yet.  false on an I/O error. */
bool check_seed_identity(const char *dir);

/* Monotonic milliseconds, for bounded polling loops. */
uint64_t check_now_ms(void);

#endif /* SHOAL_TEST_SUPPORT_CHECK_H */
