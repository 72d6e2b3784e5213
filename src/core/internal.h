/* Internal helpers shared by every part of libbnkit (not installed). */
#ifndef BNKIT_CORE_INTERNAL_H
#define BNKIT_CORE_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "bnkit/status.h"

#if defined(__GNUC__)
#define BNK__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define BNK__PRINTF(fmt, args)
#endif

/* Hot element-wise loops are compiled for AVX-512, AVX2 and baseline x86-64, and the best
 * clone for the CPU is picked at load time (GCC/Clang function multiversioning, an ifunc). Put
 * it on static functions whose loops are plain and vectorisable; the build does not enable FMA
 * contraction (ISO C mode), so every clone rounds exactly as the baseline one does, except where
 * a reduction lets the compiler reorder a sum. */
#if defined(__x86_64__) && defined(__GNUC__)
#define BNK__MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BNK__MULTIVERSION
#endif

/* Records a formatted message for bnk_errmsg() on this thread and returns st, so that error
 * paths read `return bnk__fail(BNK_ERR_PARAM, "eps must be > 0, got %g", eps);`. */
bnk_status bnk__fail(bnk_status st, const char *fmt, ...) BNK__PRINTF(2, 3);

/* Creates "<path>.tmpXXXXXX" exclusively, for an atomic write followed by rename(): tmp holds
 * the destination path in its first base_len bytes and has room for 11 more. Unlike mkstemp
 * (mode 0600), the file is opened with mode 0666, so the umask decides the permissions of the
 * renamed file as for any new file. Returns the fd, or -1 with errno set. */
int bnk__open_temp(char *tmp, size_t base_len);

/* Writes path atomically: a temporary file beside it (bnk__open_temp) receives what fill writes
 * (fill returns 0 or the errno value of a failed write, e.g. bnk__write_all's), is fsync'ed,
 * closed and renamed over path. On any failure the temporary file is removed, path is left as
 * it was, and BNK_ERR_IO (BNK_ERR_NOMEM) is returned with "cannot write '<path>': <reason>" or
 * "cannot create a temporary file for '<path>': <reason>". */
bnk_status bnk__write_file_atomic(const char *path, int (*fill)(int fd, void *ctx), void *ctx);

/* bnk__write_file_atomic of the len bytes of data. */
bnk_status bnk__write_atomic(const char *path, const void *data, size_t len);

/* Writes all n bytes of data to fd, retrying short writes and writes interrupted by a signal
 * (EINTR). Returns 0, or the errno value of the write that failed (EIO if write() returned 0, so
 * a descriptor that accepts nothing cannot loop forever); the file offset is then unspecified. */
int bnk__write_all(int fd, const void *data, size_t n);

/* Reads n bytes from fd into data, retrying short reads and reads interrupted by a signal
 * (EINTR). Returns the number of bytes read, less than n only at end of file, or -1 with errno
 * set when a read fails. */
ssize_t bnk__read_full(int fd, void *data, size_t n);

#endif /* BNKIT_CORE_INTERNAL_H */
