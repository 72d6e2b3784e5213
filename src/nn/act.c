/* Element-wise layers and the loss: ReLU, inverted dropout, softmax cross-entropy; and the
 * conversions between NCHW and blocked activations.
 *
 * The element-wise loops are branch-free (every operand loaded unconditionally, then a select),
 * so that they vectorise, and multiversioned (BNK__MULTIVERSION). */
#include <math.h>

#include "core/internal.h"
#include "core/rng.h"
#include "nn/layer.h"

BNK__MULTIVERSION
static void relu_forward(size_t count, float *restrict y, const float *restrict x) {
#pragma omp simd
    for (size_t i = 0; i < count; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

BNK__MULTIVERSION
static void relu_backward(size_t count, float *restrict dx, const float *restrict dy,
                          const float *restrict y) {
#pragma omp simd
    for (size_t i = 0; i < count; i++) {
        /* dy is loaded whatever y is: a load under the condition would not vectorise without
         * masked loads. NaN y compares false, so dx = 0 there, as before. */
        const float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

void bnk__relu_forward(size_t count, float *y, const float *x) {
    relu_forward(count, y, x);
}

void bnk__relu_backward(size_t count, float *dx, const float *dy, const float *y) {
    relu_backward(count, dx, dy, y);
}

void bnk__dropout_forward(size_t count, double rate, uint64_t *rng, uint8_t *mask, float *y,
                          const float *x) {
    const float scale = (float)(1.0 / (1.0 - rate));
    for (size_t i = 0; i < count; i++) {
        mask[i] = bnk__rng_uniform(rng) >= rate;
        y[i] = mask[i] ? x[i] * scale : 0.0f;
    }
}

BNK__MULTIVERSION
static void dropout_backward(size_t count, float scale, float *restrict dx,
                             const float *restrict dy, const uint8_t *restrict mask) {
#pragma omp simd
    for (size_t i = 0; i < count; i++) {
        /* select, then scale: a multiply under the condition (it may trap) blocks if-conversion;
         * 0 * scale is the 0 a dropped element gets anyway */
        const float g = dy[i];
        dx[i] = (mask[i] ? g : 0.0f) * scale;
    }
}

void bnk__dropout_backward(size_t count, double rate, float *dx, const float *dy,
                           const uint8_t *mask) {
    dropout_backward(count, (float)(1.0 / (1.0 - rate)), dx, dy, mask);
}

double bnk__softmax_xent(int64_t n, int64_t classes, float *dlogits, int64_t *correct,
                         const float *logits, const int32_t *labels) {
    double total = 0.0;
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * classes;
        float *dz = dlogits + i * classes;
        int64_t arg = 0;
        for (int64_t k = 1; k < classes; k++)
            if (z[k] > z[arg]) arg = k;
        /* log-sum-exp about the maximum: no overflow, and log(p) stays finite */
        const double zmax = z[arg];
        double sum = 0.0;
        for (int64_t k = 0; k < classes; k++) sum += exp((double)z[k] - zmax);
        const double log_sum = log(sum);
        total += log_sum - ((double)z[labels[i]] - zmax);
        hits += arg == labels[i];
        for (int64_t k = 0; k < classes; k++) {
            double p = exp((double)z[k] - zmax - log_sum);
            dz[k] = (float)((p - (k == labels[i] ? 1.0 : 0.0)) / (double)n);
        }
    }
    if (correct) *correct = hits;
    return total / (double)n;
}

/* ---- Blocked activations ------------------------------------------------------------------ */

/* Within a sample, channel block k of the blocked layout holds channels [k*b, k*b + b) as hw rows
 * of b floats; NCHW holds them as b planes of hw floats. The two directions are one transpose
 * per block, written with the blocked side read (or written) sequentially. */
void bnk__unblock(int64_t n, int64_t c, int64_t hw, int b, float *dst, const float *src) {
    for (int64_t i = 0; i < n * (c / b); i++) {
        const float *restrict s = src + i * hw * b;
        float *restrict d = dst + i * hw * b; /* block i of NCHW: b planes, contiguous too */
        for (int64_t p = 0; p < hw; p++)
            for (int j = 0; j < b; j++) d[j * hw + p] = s[p * b + j];
    }
}

void bnk__block(int64_t n, int64_t c, int64_t hw, int b, float *dst, const float *src) {
    for (int64_t i = 0; i < n * (c / b); i++) {
        const float *restrict s = src + i * hw * b;
        float *restrict d = dst + i * hw * b;
        for (int64_t p = 0; p < hw; p++)
            for (int j = 0; j < b; j++) d[p * b + j] = s[j * hw + p];
    }
}
