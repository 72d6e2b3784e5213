/* Reading data files through zlib: gzopen/gzread decompress gzip files and pass plain files
 * through unchanged, so every reader accepts both. zlib reports a stream that ends early
 * ("unexpected end of file") softly, through gzerror() == Z_BUF_ERROR after a short read; we
 * turn that, and corrupt data (Z_DATA_ERROR: bad CRC, bad deflate codes), into BNK_ERR_FORMAT. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define GZ_BUFFER      ((unsigned)1 << 18) /* zlib's input/output buffers: fewer, larger reads */
#define GZ_MAX_CALL    ((size_t)1 << 30)   /* gzread takes an unsigned and returns an int      */
#define GZ_FIRST_CHUNK ((size_t)1 << 24)   /* initial capacity when reading to the end         */

gzFile bnk__gz_open(const char *path) {
    gzFile f = gzopen(path, "rb");
    if (f != NULL) gzbuffer(f, GZ_BUFFER);
    return f;
}

/* Maps the stream's error state after a short or failed read. */
static bnk_status gz_status(gzFile f, const char *path, int saved_errno) {
    int code = Z_OK;
    const char *msg = gzerror(f, &code);
    switch (code) {
    case Z_OK:
    case Z_STREAM_END:
        return BNK_OK;
    case Z_BUF_ERROR:
        return bnk__fail(BNK_ERR_FORMAT, "%s: truncated gzip stream (%s)", path, msg);
    case Z_ERRNO:
        return bnk__fail(BNK_ERR_IO, "cannot read '%s': %s", path, strerror(saved_errno));
    case Z_MEM_ERROR:
        return bnk__fail(BNK_ERR_NOMEM, "%s: out of memory while decompressing", path);
    default:
        return bnk__fail(BNK_ERR_FORMAT, "%s: corrupt gzip stream (%s)", path, msg);
    }
}

bnk_status bnk__gz_read(gzFile f, const char *path, void *buf, size_t n, size_t *got) {
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < GZ_MAX_CALL ? n - *got : GZ_MAX_CALL;
        errno = 0;
        int r = gzread(f, p + *got, (unsigned)want);
        if (r < 0) return gz_status(f, path, errno);
        if (r == 0) break;
        *got += (size_t)r;
    }
    /* A short read is the end of the stream; a truncated gzip stream shows up only here. */
    return *got < n ? gz_status(f, path, errno) : BNK_OK;
}

bnk_status bnk__gz_read_upto(gzFile f, const char *path, size_t max, unsigned char **buf,
                             size_t *got) {
    *buf = NULL;
    *got = 0;
    if (max > SIZE_MAX - 1) max = SIZE_MAX - 1;
    size_t cap = max < GZ_FIRST_CHUNK ? max : GZ_FIRST_CHUNK;
    unsigned char *p = malloc(cap + 1);
    if (p == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu bytes", cap + 1);
    size_t have = 0;
    for (;;) {
        size_t r;
        bnk_status st = bnk__gz_read(f, path, p + have, cap - have, &r);
        if (st != BNK_OK) {
            free(p);
            return st;
        }
        have += r;
        if (have < cap || cap == max) break; /* end of stream, or read all we may */
        size_t next = max - cap > cap ? 2 * cap : max;
        unsigned char *grown = realloc(p, next + 1);
        if (grown == NULL) {
            free(p);
            return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu bytes", next + 1);
        }
        p = grown;
        cap = next;
    }
    p[have] = '\0';
    *buf = p;
    *got = have;
    return BNK_OK;
}
