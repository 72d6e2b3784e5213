/* Atomic file writes (an exclusive temporary file beside the destination, fsync, rename), used by
 * every writer of the library (.npy, checkpoints, reports), and the full read and write that
 * retry short transfers. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/rng.h"

enum { TMP_ATTEMPTS = 100 };

int bnk__open_temp(char *tmp, size_t base_len) {
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    static _Thread_local uint64_t state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    state ^= (uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20;
    for (int attempt = 0; attempt < TMP_ATTEMPTS; attempt++) {
        uint64_t z = bnk__rng_next(&state);
        memcpy(tmp + base_len, ".tmp", 4);
        for (unsigned i = 0; i < 6; i++) tmp[base_len + 4 + i] = digits[(z >> (6 * i)) % 36];
        tmp[base_len + 10] = '\0';
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

bnk_status bnk__write_file_atomic(const char *path, int (*fill)(int fd, void *ctx), void *ctx) {
    const size_t base_len = strlen(path);
    char *tmp = malloc(base_len + 11);
    if (!tmp) return bnk__fail(BNK_ERR_NOMEM, "cannot write '%s': out of memory", path);
    memcpy(tmp, path, base_len);
    const int fd = bnk__open_temp(tmp, base_len);
    if (fd < 0) {
        const int err = errno;
        free(tmp);
        return bnk__fail(BNK_ERR_IO, "cannot create a temporary file for '%s': %s", path,
                         strerror(err));
    }
    int err = fill(fd, ctx);
    if (err == 0 && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && err == 0) err = errno;
    if (err == 0 && rename(tmp, path) != 0) err = errno;
    if (err != 0) unlink(tmp);
    free(tmp);
    return err ? bnk__fail(BNK_ERR_IO, "cannot write '%s': %s", path, strerror(err)) : BNK_OK;
}

typedef struct span {
    const void *data;
    size_t len;
} span;

static int fill_span(int fd, void *ctx) {
    const span *s = ctx;
    return bnk__write_all(fd, s->data, s->len);
}

bnk_status bnk__write_atomic(const char *path, const void *data, size_t len) {
    span s = {data, len};
    return bnk__write_file_atomic(path, fill_span, &s);
}

int bnk__write_all(int fd, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

ssize_t bnk__read_full(int fd, void *data, size_t n) {
    unsigned char *p = data;
    size_t got = 0;
    while (got < n) {
        const ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break; /* end of file */
        got += (size_t)r;
    }
    return (ssize_t)got;
}
