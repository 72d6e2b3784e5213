/* bnkit/npy.h — NumPy .npy files: read and write C-order, little-endian float32/float64 arrays.
 *
 *     bnk_npy a;
 *     if (bnk_npy_read("x.npy", &a) != BNK_OK) { fprintf(stderr, "%s\n", bnk_errmsg()); ... }
 *     // a.dtype, a.ndim, a.shape[0..ndim-1], a.count elements at a.data
 *     bnk_npy_free(&a);
 *
 *     int64_t shape[2] = {4, 3};
 *     bnk_npy_write("y.npy", BNK_DTYPE_F32, 2, shape, y);
 *
 * Format versions 1.0 and 2.0 are read (3.0 differs only in the header's text encoding and is
 * read too when the header is plain ASCII). Written files use version 1.0, or 2.0 when the header
 * would not fit 1.0. Anything else — Fortran order, big-endian or other dtypes, object arrays,
 * truncated data, trailing bytes, more than BNK_NPY_MAX_DIMS dimensions, shapes whose byte size
 * overflows, headers over 1 MiB — is refused with BNK_ERR_FORMAT and a message naming the
 * problem. A zero-dimension shape () holds one element.
 */
#ifndef BNKIT_NPY_H
#define BNKIT_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BNK_NPY_MAX_DIMS 8

typedef enum bnk_dtype {
    BNK_DTYPE_F32, /* '<f4' */
    BNK_DTYPE_F64  /* '<f8' */
} bnk_dtype;

/* An array read from a .npy file. Caller-owned struct; bnk_npy_free releases data. */
typedef struct bnk_npy {
    bnk_dtype dtype;
    int ndim;
    int64_t shape[BNK_NPY_MAX_DIMS];
    size_t count; /* product of shape (1 for ndim 0) */
    void *data;   /* count elements of dtype; NULL when count is 0 */
} bnk_npy;

/* Reads a file. On failure *out is zeroed and nothing needs freeing.
 * Errors: BNK_ERR_NULL, BNK_ERR_IO (cannot open/read), BNK_ERR_FORMAT, BNK_ERR_NOMEM,
 * BNK_ERR_UNSUPPORTED (big-endian host). */
bnk_status bnk_npy_read(const char *path, bnk_npy *out);

/* Parses an in-memory .npy image of len bytes (same rules as bnk_npy_read). */
bnk_status bnk_npy_read_mem(const void *buf, size_t len, bnk_npy *out);

/* Converts an array to float32 in place (float64 values are rounded to nearest, overflowing to
 * +-inf; no-op for float32). Errors: BNK_ERR_NULL, BNK_ERR_UNSUPPORTED (unknown dtype). */
bnk_status bnk_npy_to_f32(bnk_npy *arr);

/* Releases arr->data and zeroes *arr. NULL is harmless. */
void bnk_npy_free(bnk_npy *arr);

/* Writes count = prod(shape) elements of dtype from data. The file appears atomically (written
 * to a temporary file "<path>.tmpXXXXXX" in the same directory, then renamed over path), so a
 * failed write (full disk, bad directory) leaves no partial file behind. ndim may be 0 (one
 * element; shape may then be NULL); data may be NULL when count is 0. The file is byte for byte
 * what np.save (NumPy 1.24) writes for the same array.
 * Errors: BNK_ERR_NULL, BNK_ERR_SIZE (negative dimension, ndim out of range), BNK_ERR_OVERFLOW,
 * BNK_ERR_IO, BNK_ERR_UNSUPPORTED (unknown dtype, big-endian host). */
bnk_status bnk_npy_write(const char *path, bnk_dtype dtype, int ndim, const int64_t *shape,
                         const void *data);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_NPY_H */
