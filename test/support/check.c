#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <sodium.h>

int check_failures;
static int passed, failed;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void
check_run(const char *name, void (*fn)(void))
{
    check_failures = 0;
    fn();
    if (check_failures == 0) {
        passed++;
        printf("ok   %s\n", name);
    } else {
        failed++;
        printf("FAIL %s (%d checks failed)\n", name, check_failures);
    }
    fflush(stdout);
}

int
check_summary(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

uint64_t
check_seed(uint64_t dflt)
{
    const char *s = getenv("SHOAL_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : dflt;
    printf("seed %llu (set SHOAL_SEED to repeat)\n", (unsigned long long)seed);
    check_rand_reseed(seed);
    return seed;
}

void
check_rand_reseed(uint64_t seed)
{
    rng_state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t
check_rand(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t
check_rand_below(uint64_t n)
{
    return n ? check_rand() % n : 0;
}

long
check_env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 0) : dflt;
}

char *
check_path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

char *
check_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/shoal-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void
check_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t
check_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool
check_seed_identity(const char *dir)
{
    uint8_t seed[32], pk[32], sk[64];
    for (int i = 0; i < 4; i++) {
        uint64_t x = check_rand();
        memcpy(seed + 8 * i, &x, 8);
    }
    crypto_sign_seed_keypair(pk, sk, seed);
    char path[4096];
    snprintf(path, sizeof path, "%s/identity", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return false;
    bool ok = write(fd, sk, sizeof sk) == (ssize_t)sizeof sk;
    close(fd);
    sodium_memzero(sk, sizeof sk);
    return ok;
}

/* Copy the regular files of directory from into directory to (which
 * exists); false on any error. */
bool
check_copy_dir(const char *from, const char *to)
{
    DIR *dp = opendir(from);
    if (!dp)
        return false;
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", from, de->d_name);
        snprintf(b, sizeof b, "%s/%s", to, de->d_name);
        struct stat st;
        if (stat(a, &st) != 0 || !S_ISREG(st.st_mode)) {
            ok = false;
            break;
        }
        int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ok = in >= 0 && out >= 0;
        char buf[65536];
        ssize_t n;
        while (ok && (n = read(in, buf, sizeof buf)) > 0)
            ok = write(out, buf, (size_t)n) == n;
        if (in >= 0)
            close(in);
        if (out >= 0)
            close(out);
    }
    closedir(dp);
    return ok;
}
