/* Exclusive temporary files beside a destination, for atomic writes (write, fsync, rename), and
 * the full write that fills them. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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
