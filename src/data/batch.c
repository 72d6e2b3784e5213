/* Feature statistics and batch formation.
 *
 * bnk_dataset_batch runs once per training step, so it allocates nothing and its inner loops
 * are plain, restrict-qualified, unit-stride loops over one sample's features that the compiler
 * vectorises (uint8 -> int32 -> float widening, then one multiply). BNK_SCALE_UNIT multiplies by
 * the float nearest 1/255 instead of dividing by 255: the result is within one ulp of v/255,
 * 0 and 255 map to exactly 0 and 1, and a multiply is several times cheaper than a divide. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define UNIT_SCALE     (1.0f / 255.0f)
#define STD_FLOOR      1e-6f
#define BATCH_PREFETCH 8  /* samples ahead whose rows are prefetched */
#define PREFETCH_LINE  64 /* bytes per prefetch (a cache line)       */

/* ---- Statistics ------------------------------------------------------------------------------ */

/* uint8 features: exact integer sums (at most 2^31 samples * 255^2 fits easily in 64 bits). */
static bnk_status stats_u8(const bnk_dataset *ds, float *mean, float *std) {
    size_t n = (size_t)ds->size, f = (size_t)ds->features;
    uint64_t *sum = calloc(2 * f, sizeof *sum);
    if (sum == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate feature statistics");
    uint64_t *sumsq = sum + f;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *restrict p = ds->u8 + i * f;
        for (size_t j = 0; j < f; j++) {
            uint64_t v = p[j];
            sum[j] += v;
            sumsq[j] += v * v;
        }
    }
    for (size_t j = 0; j < f; j++) {
        /* The sums are exact and below 2^53, so these doubles carry only rounding error. */
        double m = (double)sum[j] / (double)n;
        double var = (double)sumsq[j] / (double)n - m * m;
        if (var < 0) var = 0;
        mean[j] = (float)(m / 255.0);
        float s = (float)(sqrt(var) / 255.0);
        std[j] = s > STD_FLOOR ? s : STD_FLOOR;
    }
    free(sum);
    return BNK_OK;
}

/* float features: two passes (mean, then squared deviations) with double accumulators. */
static bnk_status stats_f32(const bnk_dataset *ds, float *mean, float *std) {
    size_t n = (size_t)ds->size, f = (size_t)ds->features;
    double *acc = calloc(2 * f, sizeof *acc);
    if (acc == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate feature statistics");
    double *m = acc, *sq = acc + f;
    for (size_t i = 0; i < n; i++) {
        const float *restrict p = ds->f32 + i * f;
        for (size_t j = 0; j < f; j++) m[j] += p[j];
    }
    for (size_t j = 0; j < f; j++) m[j] /= (double)n;
    for (size_t i = 0; i < n; i++) {
        const float *restrict p = ds->f32 + i * f;
        for (size_t j = 0; j < f; j++) {
            double d = p[j] - m[j];
            sq[j] += d * d;
        }
    }
    for (size_t j = 0; j < f; j++) {
        mean[j] = (float)m[j];
        float s = (float)sqrt(sq[j] / (double)n);
        std[j] = s > STD_FLOOR ? s : STD_FLOOR;
    }
    free(acc);
    return BNK_OK;
}

bnk_status bnk_dataset_feature_stats(const bnk_dataset *ds, float *mean, float *std) {
    if (ds == NULL || mean == NULL || std == NULL) {
        return bnk__fail(BNK_ERR_NULL, "bnk_dataset_feature_stats: %s is NULL",
                         ds == NULL     ? "ds"
                         : mean == NULL ? "mean"
                                        : "std");
    }
    return ds->u8 ? stats_u8(ds, mean, std) : stats_f32(ds, mean, std);
}

/* ---- Batches --------------------------------------------------------------------------------- */

/* Shuffled batches gather rows from all over a data set far larger than the caches, so the
 * rows a few samples ahead are requested early; the hardware prefetcher cannot guess them. */
static void prefetch_sample(const bnk_dataset *ds, size_t s, size_t f, size_t item) {
#if defined(__GNUC__)
    const char *p = ds->u8 ? (const char *)(ds->u8 + s * f) : (const char *)(ds->f32 + s * f);
    for (size_t off = 0; off < f * item; off += PREFETCH_LINE) __builtin_prefetch(p + off);
    __builtin_prefetch(ds->labels + s); /* a random int of a large array: a miss as well */
#else
    (void)ds, (void)s, (void)f, (void)item;
#endif
}

/* The row loops are multiversioned (BNK__MULTIVERSION): uint8 -> float widening takes 4x fewer
 * instructions with AVX-512 than with SSE2. Every clone computes the same floats. */
BNK__MULTIVERSION
static void row_u8_scaled(float *restrict dst, const uint8_t *restrict src, size_t f, float k) {
    for (size_t j = 0; j < f; j++) dst[j] = (float)src[j] * k;
}

BNK__MULTIVERSION
static void row_u8_standardize(float *restrict dst, const uint8_t *restrict src,
                               const float *restrict mean, const float *restrict std, size_t f) {
    for (size_t j = 0; j < f; j++) dst[j] = ((float)src[j] * UNIT_SCALE - mean[j]) / std[j];
}

BNK__MULTIVERSION
static void row_f32_standardize(float *restrict dst, const float *restrict src,
                                const float *restrict mean, const float *restrict std, size_t f) {
    for (size_t j = 0; j < f; j++) dst[j] = (src[j] - mean[j]) / std[j];
}

bnk_status bnk_dataset_batch(const bnk_dataset *ds, const int64_t *idx, int64_t count,
                             bnk_scaling scaling, const float *const stats[2], float *x,
                             int32_t *labels) {
    if (ds == NULL || idx == NULL || x == NULL || labels == NULL) {
        return bnk__fail(BNK_ERR_NULL, "bnk_dataset_batch: %s is NULL",
                         ds == NULL    ? "ds"
                         : idx == NULL ? "idx"
                         : x == NULL   ? "x"
                                       : "labels");
    }
    if (count < 0) {
        return bnk__fail(BNK_ERR_SIZE, "bnk_dataset_batch: count must be >= 0, got %" PRId64,
                         count);
    }
    if (scaling != BNK_SCALE_NONE && scaling != BNK_SCALE_UNIT &&
        scaling != BNK_SCALE_STANDARDIZE) {
        return bnk__fail(BNK_ERR_PARAM, "bnk_dataset_batch: unknown scaling %d", (int)scaling);
    }
    if (scaling == BNK_SCALE_STANDARDIZE &&
        (stats == NULL || stats[0] == NULL || stats[1] == NULL)) {
        return bnk__fail(BNK_ERR_NULL,
                         "bnk_dataset_batch: BNK_SCALE_STANDARDIZE needs stats {mean, std}");
    }
    /* All indices first, so that a bad one leaves x and labels untouched. */
    for (int64_t i = 0; i < count; i++) {
        if (idx[i] < 0 || idx[i] >= ds->size) {
            return bnk__fail(BNK_ERR_PARAM,
                             "bnk_dataset_batch: idx[%" PRId64 "] = %" PRId64
                             " is outside [0, %" PRId64 ")",
                             i, idx[i], ds->size);
        }
    }
    size_t f = (size_t)ds->features;
    size_t item = ds->u8 ? 1 : sizeof(float);
    for (int64_t i = 0; i < count; i++) {
        size_t s = (size_t)idx[i];
        float *dst = x + (size_t)i * f;
        labels[i] = ds->labels[s];
        if (i + BATCH_PREFETCH < count)
            prefetch_sample(ds, (size_t)idx[i + BATCH_PREFETCH], f, item);
        if (ds->u8) {
            const uint8_t *src = ds->u8 + s * f;
            if (scaling == BNK_SCALE_STANDARDIZE) {
                row_u8_standardize(dst, src, stats[0], stats[1], f);
            } else {
                row_u8_scaled(dst, src, f, scaling == BNK_SCALE_UNIT ? UNIT_SCALE : 1.0f);
            }
        } else {
            const float *src = ds->f32 + s * f;
            if (scaling == BNK_SCALE_STANDARDIZE) {
                row_f32_standardize(dst, src, stats[0], stats[1], f);
            } else {
                memcpy(dst, src, f * sizeof(float));
            }
        }
    }
    return BNK_OK;
}
