/*
 * core/identity.c - the replica's Ed25519 identity: one key pair per
 * directory, created on first open, the secret key in the file "identity"
 * (64 bytes, libsodium's seed | public key), owner-only (0600).
 *
 * Creation writes a temporary file (mode 0600, fchmod'd as well, in case
 * of a umask or an inherited ACL), fsyncs it, renames it into place and
 * fsyncs the directory, so a crash leaves either no identity or a whole
 * one.  The caller runs it under the store's writer lock
 * (shoal__store_exclusive), so two processes opening a fresh directory at
 * once share one identity.  Loading checks the file (a regular file of 64
 * bytes, not a symlink) and that its public half matches the seed.  The
 * secret key lives in sodium_malloc'd memory (guard pages, zeroed on
 * free).
 *
 * It was part of store/ until the store was split by concern: the key
 * never touches LMDB, and signing is core's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

#define IDENTITY_FILE "identity"
#define IDENTITY_TMP  "identity.tmp"

/* An errno value as a shoal_err, as the store maps it. */
static int
errno_code(int e)
{
    switch (e) {
    case ENOSPC: return SHOAL_ENOSPC;
    case EACCES:
    case EROFS:
    case EPERM: return SHOAL_EREADONLY;
    case ENOMEM: return SHOAL_ENOMEM;
    default: return SHOAL_ESTORE;
    }
}

static int
errno_err(char *errbuf, size_t errlen, const char *what, const char *path, int e)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s %s: %s", what, path, strerror(e));
    return errno_code(e);
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write sk to dir/identity atomically: temp file, fsync, rename, fsync dir. */
static int
identity_create(const char *dir, const char *path, const uint8_t *sk, char *errbuf, size_t errlen)
{
    size_t tlen = strlen(dir) + sizeof IDENTITY_TMP + 2;
    char *tmp = shoal__malloc(tlen);
    if (!tmp)
        return SHOAL_ENOMEM;
    snprintf(tmp, tlen, "%s/%s", dir, IDENTITY_TMP);
    int rc = SHOAL_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = errno_err(errbuf, errlen, "cannot create", tmp, errno);
        goto out;
    }
    int e = 0;
    if (fchmod(fd, 0600) != 0)
        e = errno;
    if (!e)
        e = write_all(fd, sk, SHOAL__SK_BYTES);
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (e) {
        unlink(tmp);
        rc = errno_err(errbuf, errlen, "cannot write", tmp, e);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        rc = errno_err(errbuf, errlen, "cannot rename to", path, e);
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = errno_err(errbuf, errlen, "cannot open", dir, errno);
        goto out;
    }
    if (fsync(dfd) != 0) {
        e = errno;
        close(dfd);
        rc = errno_err(errbuf, errlen, "cannot fsync", dir, e);
        goto out;
    }
    close(dfd);
out:
    shoal__free(tmp);
    return rc;
}

int
shoal__identity_load(const char *dir, uint8_t pk[SHOAL_KEY_BYTES], uint8_t **skp, char *errbuf,
                     size_t errlen)
{
    size_t plen = strlen(dir) + sizeof IDENTITY_FILE + 2;
    char *path = shoal__malloc(plen);
    if (!path)
        return SHOAL_ENOMEM;
    snprintf(path, plen, "%s/%s", dir, IDENTITY_FILE);
    uint8_t *sk = sodium_malloc(SHOAL__SK_BYTES);
    if (!sk) {
        shoal__free(path);
        return SHOAL_ENOMEM;
    }
    int rc = SHOAL_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        crypto_sign_keypair(pk, sk);
        rc = identity_create(dir, path, sk, errbuf, errlen);
        goto out;
    }
    if (fd < 0) {
        rc = errno_err(errbuf, errlen, "cannot open", path, errno);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = errno_err(errbuf, errlen, "cannot stat", path, errno);
        close(fd);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != SHOAL__SK_BYTES) {
        close(fd);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: not a %d-byte identity file", path, SHOAL__SK_BYTES);
        rc = SHOAL_ECORRUPT;
        goto out;
    }
    size_t got = 0;
    while (got < SHOAL__SK_BYTES) {
        ssize_t r = read(fd, sk + got, SHOAL__SK_BYTES - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            rc = errno_err(errbuf, errlen, "cannot read", path, e);
            goto out;
        }
        got += (size_t)r;
    }
    close(fd);
    /* The key pair must be self-consistent: rebuild it from the seed. */
    uint8_t *chk = sodium_malloc(SHOAL__SK_BYTES);
    if (!chk) {
        rc = SHOAL_ENOMEM;
        goto out;
    }
    crypto_sign_seed_keypair(pk, chk, sk);
    if (sodium_memcmp(chk, sk, SHOAL__SK_BYTES) != 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: public half does not match the secret key", path);
        rc = SHOAL_ECORRUPT;
    }
    sodium_free(chk);
out:
    shoal__free(path);
    if (rc != SHOAL_OK) {
        sodium_free(sk);
        sodium_memzero(pk, SHOAL_KEY_BYTES);
    } else {
        *skp = sk;
    }
    return rc;
}

void
shoal__identity_free(uint8_t *sk)
{
    /* sodium_free zeroes the whole allocation before releasing it. */
    if (sk) {
        sodium_memzero(sk, SHOAL__SK_BYTES);
        sodium_free(sk);
    }
}

typedef struct open_ctx {
    const char *dir;
    uint8_t *pk;
    uint8_t **sk;
    char *errbuf;
    size_t errlen;
} open_ctx;

static int
open_locked(void *arg)
{
    open_ctx *c = arg;
    return shoal__identity_load(c->dir, c->pk, c->sk, c->errbuf, c->errlen);
}

int
shoal__identity_open(shoal__store *st, const char *dir, uint8_t pk[SHOAL_KEY_BYTES], uint8_t **sk,
                     char *errbuf, size_t errlen)
{
    *sk = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (sodium_init() < 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "libsodium failed to initialise");
        return SHOAL_ESTORE;
    }
    open_ctx c = { dir, pk, sk, errbuf, errlen };
    int rc = shoal__store_exclusive(st, open_locked, &c);
    if (rc && errbuf && errlen && !errbuf[0])
        snprintf(errbuf, errlen, "%s", shoal__store_errmsg(st));
    return rc;
}
