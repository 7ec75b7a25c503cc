/*
 * test/powercut/shim.c - an LD_PRELOAD library that records, for the
 * power-cut harness, what a power cut could take back from the files of
 * one replica directory.
 *
 * A SIGKILL loses nothing the process wrote (the page cache survives it);
 * a power cut loses every write that was not synced.  This shim sees every
 * write and sync a process makes to the watched files and keeps an undo
 * log (undo.h) from which pc_restore rebuilds what a disk could hold after
 * a cut at any moment: before each write it appends the old contents and
 * old size of the region; after an fsync or fdatasync it appends a sync
 * marker; after a write through a descriptor opened with O_DSYNC or O_SYNC
 * (LMDB 0.9 writes its meta page through such a second descriptor) it
 * appends a durable marker for the bytes written.
 *
 * Environment (the shim does nothing unless SHOAL_PC_DIR and SHOAL_PC_LOG
 * are set):
 *   SHOAL_PC_DIR    the watched directory;
 *   SHOAL_PC_FILES  comma-separated names of the watched files in it
 *                   (default "data.mdb"; lock.mdb is rebuilt at every open
 *                   and the identity is written before the shim runs);
 *   SHOAL_PC_LOG    the undo log (outside the directory), appended to;
 *   SHOAL_PC_CUT    N > 0: SIGKILL the process just before its Nth event.
 * An event is one write-like call (write, pwrite, pwrite64, writev,
 * pwritev, pwritev64, ftruncate, ftruncate64, fallocate, fallocate64) on a
 * watched file or one sync of one (fsync, fdatasync; syncfs and sync while
 * a watched file is open).  The count so far is shoal_pc_events(), found
 * by the workload with dlsym, so it can print the event count beside each
 * acknowledgement.
 *
 * One mutex is held from a record to its marker, across the real call, so
 * the log's order is the order in which the calls took effect even when
 * the network engine's thread syncs while another commits.  Descriptors
 * are tracked from open, open64, openat, openat64, creat, creat64, dup,
 * dup2 and dup3 and forgotten at close; fcntl(F_DUPFD) is not followed (no
 * library under test uses it on a data file).  Nothing models msync (shoal
 * never maps LMDB writable) or sync_file_range (not a durability
 * guarantee).  Old contents are read through a descriptor of the shim's
 * own, since LMDB's O_DSYNC descriptor is write-only.
 *
 * Rejected: interposing at the LMDB level (a model of LMDB's own ordering
 * would test that model, not the calls the kernel sees); recording new
 * contents instead of old ones (the final file already holds the newest
 * version of every byte, so the undo direction needs half the log).
 */
/* The shim defines open and open64, pwrite and pwrite64... as distinct
 * symbols: without these the headers would rename open to open64 (meson
 * builds with _FILE_OFFSET_BITS=64) or inline a fortified open.  off_t is
 * 64 bits either way on the 64-bit targets this runs on. */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "undo.h"

unsigned long long shoal_pc_events(void);

enum {
    MAX_FD = 4096,
    COPY_CHUNK = 1 << 16
};

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off64_t, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static void (*real_sync)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool enabled;
static int log_fd = -1;
static dev_t dir_dev;
static ino_t dir_ino;
static char dir_path[4096];
static char names[PC_MAX_FILES][PC_NAME_MAX];
static int nnames;
static int read_fd[PC_MAX_FILES];    /* the shim's own O_RDONLY descriptor, or -1 */
static bool announced[PC_MAX_FILES]; /* PC_OPEN written */
static unsigned long long cut_at;
static unsigned long long events;
/* fd -> 1 + index of its watched file (0: not watched); read without mu. */
static unsigned char fd_file[MAX_FD];
static unsigned char fd_dsync[MAX_FD];
static unsigned char copy_buf[COPY_CHUNK]; /* under mu */

/* dlsym returns an object pointer; copy it into a function pointer without
 * a cast ISO C does not allow (as test/core/fsync_shim.c does). */
static void
resolve(void *fnp, const char *name)
{
    void *sym = dlsym(RTLD_NEXT, name);
    memcpy(fnp, &sym, sizeof sym);
}

static void
init(void)
{
    resolve(&real_open, "open");
    resolve(&real_openat, "openat");
    resolve(&real_openat64, "openat64");
    resolve(&real_close, "close");
    resolve(&real_dup, "dup");
    resolve(&real_dup2, "dup2");
    resolve(&real_dup3, "dup3");
    resolve(&real_write, "write");
    resolve(&real_pwrite, "pwrite");
    resolve(&real_pwrite64, "pwrite64");
    resolve(&real_writev, "writev");
    resolve(&real_pwritev, "pwritev");
    resolve(&real_pwritev64, "pwritev64");
    resolve(&real_ftruncate, "ftruncate");
    resolve(&real_ftruncate64, "ftruncate64");
    resolve(&real_fallocate, "fallocate");
    resolve(&real_fallocate64, "fallocate64");
    resolve(&real_fsync, "fsync");
    resolve(&real_fdatasync, "fdatasync");
    resolve(&real_syncfs, "syncfs");
    resolve(&real_sync, "sync");
    for (int i = 0; i < PC_MAX_FILES; i++)
        read_fd[i] = -1;

    const char *dir = getenv("SHOAL_PC_DIR");
    const char *logp = getenv("SHOAL_PC_LOG");
    if (!dir || !*dir || !logp || !*logp || !real_open)
        return;
    struct stat st;
    if (stat(dir, &st) != 0 || strlen(dir) >= sizeof dir_path) {
        fprintf(stderr, "powercut shim: cannot stat SHOAL_PC_DIR %s\n", dir);
        return;
    }
    dir_dev = st.st_dev;
    dir_ino = st.st_ino;
    snprintf(dir_path, sizeof dir_path, "%s", dir);
    const char *files = getenv("SHOAL_PC_FILES");
    if (!files || !*files)
        files = "data.mdb";
    const char *p = files;
    while (*p && nnames < PC_MAX_FILES) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < PC_NAME_MAX) {
            memcpy(names[nnames], p, n);
            names[nnames][n] = '\0';
            nnames++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    const char *cut = getenv("SHOAL_PC_CUT");
    cut_at = cut && *cut ? strtoull(cut, NULL, 10) : 0;
    log_fd = real_open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        fprintf(stderr, "powercut shim: cannot open SHOAL_PC_LOG %s\n", logp);
        return;
    }
    enabled = true;
}

static void
init_once(void)
{
    pthread_once(&once, init);
}

unsigned long long
shoal_pc_events(void)
{
    return __atomic_load_n(&events, __ATOMIC_SEQ_CST);
}

/* 1 + the watched-file index of fd, or 0. */
static int
watched(int fd)
{
    if (!enabled || fd < 0 || fd >= MAX_FD)
        return 0;
    return __atomic_load_n(&fd_file[fd], __ATOMIC_ACQUIRE);
}

static void
track(int fd, int file, bool dsync)
{
    if (fd < 0 || fd >= MAX_FD)
        return;
    __atomic_store_n(&fd_dsync[fd], dsync ? 1 : 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fd_file[fd], (unsigned char)file, __ATOMIC_RELEASE);
}

/* A record that cannot be logged would make the restore wrong: stop. */
static void
log_bytes(const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = real_write(log_fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "powercut shim: writing the undo log failed\n");
            abort();
        }
        c += w;
        n -= (size_t)w;
    }
}

static void
log_header(pc_kind kind, int file, uint64_t off, uint64_t len, uint64_t size, uint64_t data_len)
{
    pc_rec r;
    memset(&r, 0, sizeof r);
    r.magic = PC_MAGIC;
    r.kind = (uint16_t)kind;
    r.file = (uint16_t)file;
    r.event = kind == PC_OPEN ? 0 : events;
    r.off = off;
    r.len = len;
    r.old_size = size;
    r.data_len = data_len;
    r.sum = pc_rec_sum(&r);
    log_bytes(&r, sizeof r);
}

static uint64_t
file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The next event: SIGKILL just before the one SHOAL_PC_CUT names. */
static void
event(void)
{
    unsigned long long n = __atomic_add_fetch(&events, 1, __ATOMIC_SEQ_CST);
    if (cut_at && n == cut_at) {
        kill(getpid(), SIGKILL);
        for (;;)
            pause();
    }
}

/* The watched file's index when path (relative to dirfd) names one. */
static int
match(int dirfd, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int file = -1;
    for (int i = 0; i < nnames; i++)
        if (strcmp(base, names[i]) == 0)
            file = i;
    if (file < 0)
        return 0;
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return 0;
    struct stat st;
    if (fstatat(dirfd, dir, &st, 0) != 0)
        return 0;
    return st.st_dev == dir_dev && st.st_ino == dir_ino ? file + 1 : 0;
}

static void
opened(int dirfd, const char *path, int flags, int fd)
{
    if (fd < 0 || !enabled)
        return;
    int w = match(dirfd, path);
    if (!w)
        return;
    pthread_mutex_lock(&mu);
    track(fd, w, (flags & (O_DSYNC | O_SYNC)) != 0);
    if (!announced[w - 1]) {
        announced[w - 1] = true;
        size_t n = strlen(names[w - 1]);
        log_header(PC_OPEN, w - 1, 0, 0, file_size(fd), n);
        log_bytes(names[w - 1], n);
    }
    pthread_mutex_unlock(&mu);
}

/* Under mu: count the event, then log the old size and the old contents
 * of [off, off + len) below it. */
static void
before_write(int fd, int w, uint64_t off, uint64_t len)
{
    event();
    int file = w - 1;
    uint64_t size = file_size(fd);
    uint64_t end = off + len < off ? UINT64_MAX : off + len;
    uint64_t have = off < size ? (end < size ? end : size) - off : 0;
    if (have > 0 && read_fd[file] < 0) {
        char path[4096 + PC_NAME_MAX];
        snprintf(path, sizeof path, "%s/%s", dir_path, names[file]);
        read_fd[file] = real_open(path, O_RDONLY | O_CLOEXEC);
        if (read_fd[file] < 0) {
            fprintf(stderr, "powercut shim: cannot read %s\n", path);
            abort();
        }
    }
    log_header(PC_WRITE, file, off, len, size, have);
    uint64_t done = 0;
    while (done < have) {
        size_t n = have - done < COPY_CHUNK ? (size_t)(have - done) : COPY_CHUNK;
        ssize_t r = pread(read_fd[file], copy_buf, n, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "powercut shim: reading old contents failed\n");
            abort();
        }
        log_bytes(copy_buf, (size_t)r);
        done += (uint64_t)r;
    }
}

/* Under mu, after the call: a write through an O_DSYNC descriptor is
 * durable once it returned. */
static void
after_write(int fd, int w, uint64_t off, ssize_t written)
{
    if (written > 0 && fd_dsync[fd])
        log_header(PC_DURABLE, w - 1, off, (uint64_t)written, file_size(fd), 0);
}

/* The offset write and writev use. */
static uint64_t
current_offset(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_APPEND))
        return file_size(fd);
    off_t o = lseek(fd, 0, SEEK_CUR);
    return o < 0 ? 0 : (uint64_t)o;
}

static uint64_t
iov_len(const struct iovec *iov, int n)
{
    uint64_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

/* ------------------------------------------------------------ opening */

static mode_t
mode_arg(int flags, va_list ap)
{
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return va_arg(ap, mode_t);
    return 0;
}

/* Every way of opening a file (open, openat, creat and their 64-bit
 * twins) goes through openat or openat64 (open is openat at AT_FDCWD,
 * creat is open with O_WRONLY | O_CREAT | O_TRUNC), then notes the
 * descriptor. */
static int
logged_openat(int (*real)(int, const char *, int, ...), int dirfd, const char *path, int flags,
              mode_t mode)
{
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int fd = real(dirfd, path, flags, mode);
    opened(dirfd, path, flags, fd);
    return fd;
}

int
open(const char *path, int flags, ...)
{
    init_once();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return logged_openat(real_openat, AT_FDCWD, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
    init_once();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return logged_openat(real_openat64, AT_FDCWD, path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    init_once();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return logged_openat(real_openat, dirfd, path, flags, mode);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
    init_once();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return logged_openat(real_openat64, dirfd, path, flags, mode);
}

int
creat(const char *path, mode_t mode)
{
    init_once();
    return logged_openat(real_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int
creat64(const char *path, mode_t mode)
{
    init_once();
    return logged_openat(real_openat64, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

/* Forget fd before closing it, so a descriptor another thread gets back
 * with the same number is not mistaken for it. */
int
close(int fd)
{
    init_once();
    if (watched(fd)) {
        pthread_mutex_lock(&mu);
        track(fd, 0, false);
        pthread_mutex_unlock(&mu);
    }
    if (!real_close) {
        errno = ENOSYS;
        return -1;
    }
    return real_close(fd);
}

static void
duped(int oldfd, int newfd)
{
    if (newfd < 0 || !enabled)
        return;
    int w = watched(oldfd);
    pthread_mutex_lock(&mu);
    track(newfd, w, w && fd_dsync[oldfd]);
    pthread_mutex_unlock(&mu);
}

int
dup(int fd)
{
    init_once();
    if (!real_dup) {
        errno = ENOSYS;
        return -1;
    }
    int nfd = real_dup(fd);
    duped(fd, nfd);
    return nfd;
}

int
dup2(int fd, int fd2)
{
    init_once();
    if (!real_dup2) {
        errno = ENOSYS;
        return -1;
    }
    int nfd = real_dup2(fd, fd2);
    duped(fd, nfd);
    return nfd;
}

int
dup3(int fd, int fd2, int flags)
{
    init_once();
    if (!real_dup3) {
        errno = ENOSYS;
        return -1;
    }
    int nfd = real_dup3(fd, fd2, flags);
    duped(fd, nfd);
    return nfd;
}

/* ------------------------------------------------------------- writing */

ssize_t
write(int fd, const void *buf, size_t n)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real_write(fd, buf, n);
    pthread_mutex_lock(&mu);
    uint64_t off = current_offset(fd);
    before_write(fd, w, off, n);
    ssize_t r = real_write(fd, buf, n);
    int saved = errno;
    after_write(fd, w, off, r);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

/* glibc's 64-bit twins (pwrite64 and pwrite, ...) take the same off_t
 * on LP64 (_Static_assert below): each pair logs through one function,
 * with its own real call. */
_Static_assert(sizeof(off_t) == sizeof(off64_t), "off_t is 64 bits");

static ssize_t
logged_pwrite(ssize_t (*real)(int, const void *, size_t, off_t), int fd, const void *buf, size_t n,
              off_t off)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real(fd, buf, n, off);
    pthread_mutex_lock(&mu);
    before_write(fd, w, (uint64_t)off, n);
    ssize_t r = real(fd, buf, n, off);
    int saved = errno;
    after_write(fd, w, (uint64_t)off, r);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return logged_pwrite(real_pwrite, fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    return logged_pwrite(real_pwrite64, fd, buf, n, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real_writev(fd, iov, cnt);
    pthread_mutex_lock(&mu);
    uint64_t off = current_offset(fd);
    before_write(fd, w, off, iov_len(iov, cnt));
    ssize_t r = real_writev(fd, iov, cnt);
    int saved = errno;
    after_write(fd, w, off, r);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

static ssize_t
logged_pwritev(ssize_t (*real)(int, const struct iovec *, int, off_t), int fd,
               const struct iovec *iov, int cnt, off_t off)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real(fd, iov, cnt, off);
    pthread_mutex_lock(&mu);
    before_write(fd, w, (uint64_t)off, iov_len(iov, cnt));
    ssize_t r = real(fd, iov, cnt, off);
    int saved = errno;
    after_write(fd, w, (uint64_t)off, r);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return logged_pwritev(real_pwritev, fd, iov, cnt, off);
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    return logged_pwritev(real_pwritev64, fd, iov, cnt, off);
}

/* A size change: the region between the old and the new size. */
static void
before_resize(int fd, int w, uint64_t length)
{
    uint64_t size = file_size(fd);
    uint64_t lo = length < size ? length : size;
    uint64_t hi = length < size ? size : length;
    before_write(fd, w, lo, hi - lo);
}

static int
logged_ftruncate(int (*real)(int, off_t), int fd, off_t length)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real(fd, length);
    pthread_mutex_lock(&mu);
    before_resize(fd, w, (uint64_t)length);
    int r = real(fd, length);
    int saved = errno;
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int
ftruncate(int fd, off_t length)
{
    return logged_ftruncate(real_ftruncate, fd, length);
}

int
ftruncate64(int fd, off64_t length)
{
    return logged_ftruncate(real_ftruncate64, fd, length);
}

static int
logged_fallocate(int (*real)(int, int, off_t, off_t), int fd, int mode, off_t off, off_t len)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real(fd, mode, off, len);
    pthread_mutex_lock(&mu);
    before_write(fd, w, (uint64_t)off, (uint64_t)len);
    int r = real(fd, mode, off, len);
    int saved = errno;
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int
fallocate(int fd, int mode, off_t off, off_t len)
{
    return logged_fallocate(real_fallocate, fd, mode, off, len);
}

int
fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    return logged_fallocate(real_fallocate64, fd, mode, off, len);
}

/* ------------------------------------------------------------- syncing */

/* Under mu: a sync of file (-1: every watched file open so far) returned
 * 0; its marker goes after the call, see undo.h. */
static void
synced(int fd, int file)
{
    for (int i = 0; i < nnames; i++)
        if (announced[i] && (file < 0 || i == file))
            log_header(PC_SYNC, i, 0, 0, fd >= 0 && file >= 0 ? file_size(fd) : 0, 0);
}

int
fsync(int fd)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real_fsync(fd);
    pthread_mutex_lock(&mu);
    event();
    int r = real_fsync(fd);
    int saved = errno;
    if (r == 0)
        synced(fd, w - 1);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int
fdatasync(int fd)
{
    init_once();
    int w = watched(fd);
    if (!w)
        return real_fdatasync(fd);
    pthread_mutex_lock(&mu);
    event();
    int r = real_fdatasync(fd);
    int saved = errno;
    if (r == 0)
        synced(fd, w - 1);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

static bool
any_announced(void)
{
    for (int i = 0; i < nnames; i++)
        if (announced[i])
            return true;
    return false;
}

int
syncfs(int fd)
{
    init_once();
    if (!enabled)
        return real_syncfs(fd);
    pthread_mutex_lock(&mu);
    bool any = any_announced();
    if (any)
        event();
    int r = real_syncfs(fd);
    int saved = errno;
    if (r == 0 && any)
        synced(-1, -1);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

void
sync(void)
{
    init_once();
    if (!enabled) {
        real_sync();
        return;
    }
    pthread_mutex_lock(&mu);
    bool any = any_announced();
    if (any)
        event();
    real_sync();
    if (any)
        synced(-1, -1);
    pthread_mutex_unlock(&mu);
}
