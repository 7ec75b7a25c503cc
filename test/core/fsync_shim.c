/*
 * test/core/fsync_shim.c - an LD_PRELOAD library for test_crash: it wraps
 * fsync, fdatasync, syncfs, msync and sync_file_range, counts the calls and
 * forwards them to libc (dlsym RTLD_NEXT).  The crash test's child reads
 * the count through shoal_test_sync_count() (found with dlsym) before and
 * after each commit, so "durable on return" is checked, not assumed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

unsigned long shoal_test_sync_count(void);

static unsigned long sync_calls;

unsigned long
shoal_test_sync_count(void)
{
    return __atomic_load_n(&sync_calls, __ATOMIC_SEQ_CST);
}

static void
counted(void)
{
    __atomic_add_fetch(&sync_calls, 1, __ATOMIC_SEQ_CST);
}

/* dlsym returns an object pointer; copy it into a function pointer without
 * a cast ISO C does not allow. */
static void
resolve(void *fnp, const char *name)
{
    void *sym = dlsym(RTLD_NEXT, name);
    memcpy(fnp, &sym, sizeof sym);
}

int
fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        resolve(&real, "fsync");
    counted();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int
fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        resolve(&real, "fdatasync");
    counted();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int
syncfs(int fd)
{
    static int (*real)(int);
    if (!real)
        resolve(&real, "syncfs");
    counted();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int
msync(void *addr, size_t len, int flags)
{
    static int (*real)(void *, size_t, int);
    if (!real)
        resolve(&real, "msync");
    if (flags & MS_SYNC)
        counted();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(addr, len, flags);
}

int
sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
    static int (*real)(int, off_t, off_t, unsigned int);
    if (!real)
        resolve(&real, "sync_file_range");
    counted();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd, off, n, flags);
}
