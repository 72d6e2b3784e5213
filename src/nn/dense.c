/* Fully connected layer on oneDNN's row-major sgemm (measured faster than OpenBLAS here for
 * the document's 784x128 GEMM; see issue 3). */
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/internal.h"
#include "nn/layer.h"

static bnk_status sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc) {
    dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (st != dnnl_success)
        return bnk__fail(BNK_ERR_UNSUPPORTED, "dnnl_sgemm(%c%c, %lld x %lld x %lld) failed: %d", ta,
                         tb, (long long)m, (long long)n, (long long)k, (int)st);
    return BNK_OK;
}

bnk_status bnk__dense_forward(int64_t n, int64_t in, int64_t out, float *y, const float *x,
                              const float *w, const float *b) {
    /* y starts as the bias in every row; the product is added with beta = 1 */
    for (int64_t i = 0; i < n; i++) memcpy(y + i * out, b, (size_t)out * sizeof(float));
    return sgemm('N', 'T', n, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

bnk_status bnk__dense_backward(int64_t n, int64_t in, int64_t out, float *dx, float *dw, float *db,
                               const float *dy, const float *x, const float *w) {
    bnk_status st = sgemm('T', 'N', out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (st != BNK_OK) return st;
    for (int64_t i = 0; i < n; i++) {
        const float *row = dy + i * out;
#pragma omp simd
        for (int64_t o = 0; o < out; o++) db[o] += row[o];
    }
    return dx ? sgemm('N', 'N', n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in) : BNK_OK;
}
