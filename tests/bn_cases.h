/* Test data and BN configurations shared by the BN tests: channels with exactly known batch
 * statistics, and a table of configurations that put every clamp on both sides of its bounds. */
#ifndef BNKIT_TEST_BN_CASES_H
#define BNKIT_TEST_BN_CASES_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "bn/bn_internal.h"
#include "test_util.h"

/* Channel c has batch mean 0.5 + c and standard deviation 1 + 0.5*c exactly (up to rounding):
 * the generated values are standardised per channel, then scaled. The running statistics start
 * at mean 0.2*c, variance 1.5. With these, the bounds below clip some channels and not others,
 * with wide margins, so that finite differences never cross a bound. */
static inline double bnk_case_mean(size_t c) {
    return 0.5 + (double)c;
}
static inline double bnk_case_std(size_t c) {
    return 1.0 + 0.5 * (double)c;
}

/* Index of value j of channel c (the same rule as the kernels). */
static inline size_t bnk_case_index(const bnk__bn_dims *d, size_t c, size_t j) {
    const size_t n = j / d->hw, s = j % d->hw, B = d->blk;
    if (d->planar) return (n * d->c + c) * d->hw + s;
    if (B) return ((n * (d->c / B) + c / B) * d->hw + s) * B + c % B;
    return (n * d->hw + s) * d->c + c;
}

/* Fills x [n*c*hw] with the channel statistics above; z is scratch of m doubles. */
static inline void bnk_case_fill_x(const bnk__bn_dims *d, double *x, double *z, uint64_t *rng) {
    const size_t m = d->n * d->hw;
    for (size_t c = 0; c < d->c; c++) {
        double mean = 0.0, sq = 0.0;
        for (size_t j = 0; j < m; j++) mean += (z[j] = bnk_test_normal(rng));
        mean /= (double)m;
        for (size_t j = 0; j < m; j++) sq += (z[j] - mean) * (z[j] - mean);
        double sd = sqrt(sq / (double)m);
        for (size_t j = 0; j < m; j++)
            x[bnk_case_index(d, c, j)] = bnk_case_mean(c) + bnk_case_std(c) * (z[j] - mean) / sd;
    }
}

static inline void bnk_case_fill_running(size_t C, float *running_mean, float *running_var) {
    for (size_t c = 0; c < C; c++) {
        running_mean[c] = (float)(0.2 * (double)c);
        running_var[c] = 1.5f;
    }
}

typedef struct bnk_case {
    const char *name;
    bnk_bn_config cfg;
    int64_t step;
} bnk_case;

/* Every mode and flag, each clamp both active and inactive somewhere (see the comment above for
 * which channels clip). Writes up to `cap` cases; returns the count. */
static inline size_t bnk_cases(bnk_case *out, size_t cap) {
    size_t k = 0;
#define BNK_CASE(label, step_, ...)                                                                \
    do {                                                                                           \
        if (k < cap) {                                                                             \
            bnk_bn_config c_ = bnk_bn_config_default();                                            \
            c_.momentum = 0.9;                                                                     \
            __VA_ARGS__;                                                                           \
            out[k].name = label;                                                                   \
            out[k].cfg = c_;                                                                       \
            out[k].step = step_;                                                                   \
        }                                                                                          \
        k++;                                                                                       \
    } while (0)
    BNK_CASE("batch", 0, (void)0);
    BNK_CASE("batch no-center", 0, c_.center = false);
    BNK_CASE("batch no-scale", 0, c_.scale = false);
    BNK_CASE("batch no-center no-scale", 0, c_.center = false; c_.scale = false);
    BNK_CASE("batch fuse-relu", 0, c_.fuse_relu = true);
    BNK_CASE("batch eps 0.5", 0, c_.eps = 0.5);
    /* channel means 0.5, 1.5, 2.5, 3.5: clipped above 1.2 */
    BNK_CASE("mean-clip", 0, c_.mean_clip = (bnk_range){-1.0, 1.2});
    BNK_CASE("mean-clip inactive", 0, c_.mean_clip = (bnk_range){-10.0, 10.0});
    /* channel variances 1, 2.25, 4, 6.25: clipped into [1.5, 5] on both sides */
    BNK_CASE("var-clip", 0, c_.var_clip = (bnk_range){1.5, 5.0});
    BNK_CASE("var-clip inactive", 0, c_.var_clip = (bnk_range){0.1, 100.0});
    /* relative: mean within 0.2c +- 0.5*1.22 (c0 inside, others clipped); std within
     * 1.22 / 1.3 .. 1.22 * 1.3 (c0, c1 inside; c2, c3 clipped) */
    BNK_CASE("rel-clip", 0, c_.rel_clip_r = 1.3; c_.rel_clip_d = 0.5);
    BNK_CASE("rel-clip inactive", 0, c_.rel_clip_r = 50.0; c_.rel_clip_d = 50.0);
    BNK_CASE("rel-clip in warmup", 2, c_.rel_clip_r = 1.3; c_.rel_clip_d = 0.5; c_.clip_warmup = 3);
    BNK_CASE("rel-clip after warmup", 3, c_.rel_clip_r = 1.3; c_.rel_clip_d = 0.5;
             c_.clip_warmup = 3);
    BNK_CASE("rel-clip then abs-clip", 0, c_.rel_clip_d = 0.5;
             c_.mean_clip = (bnk_range){-1.0, 0.3});
    BNK_CASE("running", 0, c_.normalize_with = BNK_NORM_RUNNING);
    BNK_CASE("running unbiased", 0, c_.normalize_with = BNK_NORM_RUNNING;
             c_.unbiased_running_var = true);
    BNK_CASE("running cumulative t=0", 0, c_.normalize_with = BNK_NORM_RUNNING;
             c_.cumulative = true);
    BNK_CASE("running cumulative t=3", 3, c_.normalize_with = BNK_NORM_RUNNING;
             c_.cumulative = true);
    /* running mean 0.9*0.2c + 0.1*(0.5+c): c0 0.05 inside [-0.1, 0.2], others clipped;
     * running var 1.35 + 0.1*var: c0 1.45 inside [1.2, 1.5], others clipped */
    BNK_CASE("running running-clip", 0, c_.normalize_with = BNK_NORM_RUNNING;
             c_.running_mean_clip = (bnk_range){-0.1, 0.2};
             c_.running_var_clip = (bnk_range){1.2, 1.5});
    BNK_CASE("running rel-clip relu", 0, c_.normalize_with = BNK_NORM_RUNNING; c_.rel_clip_r = 1.3;
             c_.rel_clip_d = 0.5; c_.fuse_relu = true);
    BNK_CASE("batch running-clip unbiased", 0, c_.unbiased_running_var = true;
             c_.running_mean_clip = (bnk_range){-0.1, 0.2};
             c_.running_var_clip = (bnk_range){1.2, 1.5});
    BNK_CASE("renorm", 0, c_.normalize_with = BNK_NORM_RENORM);
    /* r = std/1.22 in [1/1.1, 1.1] and |d| <= 0.5: clips every channel but c0's d */
    BNK_CASE("renorm clipped", 0, c_.normalize_with = BNK_NORM_RENORM; c_.rmax = 1.1;
             c_.dmax = 0.5);
    BNK_CASE("renorm clipped var-clip relu no-center", 0, c_.normalize_with = BNK_NORM_RENORM;
             c_.rmax = 1.1; c_.dmax = 0.5; c_.var_clip = (bnk_range){1.5, 5.0}; c_.fuse_relu = true;
             c_.center = false);
    BNK_CASE("renorm rel-clip no-scale", 0, c_.normalize_with = BNK_NORM_RENORM;
             c_.rel_clip_r = 1.3; c_.rel_clip_d = 0.5; c_.scale = false);
    BNK_CASE("cumulative t=5 unbiased", 5, c_.cumulative = true; c_.unbiased_running_var = true);
    BNK_CASE("momentum 0", 0, c_.momentum = 0.0);
#undef BNK_CASE
    return k;
}

#endif /* BNKIT_TEST_BN_CASES_H */
