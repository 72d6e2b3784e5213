/* The public BN entry points: configuration defaults and validation, argument checks, and the
 * kernel dispatch table. Everything a user can get wrong is caught here, before any kernel runs,
 * so that a failing call changes nothing. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bn/bn_internal.h"
#include "core/internal.h"

bnk_bn_config bnk_bn_config_default(void) {
    bnk_bn_config cfg = {
        .momentum = 0.99,
        .cumulative = false,
        .eps = 1e-3,
        .center = true,
        .scale = true,
        .unbiased_running_var = false,
        .mean_clip = {-INFINITY, INFINITY},
        .var_clip = {0.0, INFINITY},
        .rel_clip_r = INFINITY,
        .rel_clip_d = INFINITY,
        .clip_warmup = 0,
        .running_mean_clip = {-INFINITY, INFINITY},
        .running_var_clip = {0.0, INFINITY},
        .normalize_with = BNK_NORM_BATCH,
        .rmax = 3.0,
        .dmax = 5.0,
        .fuse_relu = false,
    };
    return cfg;
}

static bnk_status check_range(const char *name, bnk_range r, int nonnegative) {
    if (isnan(r.lo) || isnan(r.hi))
        return bnk__fail(BNK_ERR_PARAM, "%s bounds must not be NaN", name);
    if (r.lo > r.hi)
        return bnk__fail(BNK_ERR_PARAM, "%s lower bound %g exceeds upper bound %g", name, r.lo,
                         r.hi);
    if (nonnegative && r.lo < 0.0)
        return bnk__fail(BNK_ERR_PARAM, "%s lower bound must be >= 0 (a variance), got %g", name,
                         r.lo);
    return BNK_OK;
}

bnk_status bnk_bn_config_validate(const bnk_bn_config *cfg) {
    if (!cfg) return bnk__fail(BNK_ERR_NULL, "config is NULL");
    if (!(cfg->momentum >= 0.0 && cfg->momentum < 1.0))
        return bnk__fail(BNK_ERR_PARAM,
                         "momentum must be in [0, 1) (Keras convention; PyTorch's p is "
                         "1 - momentum), got %g",
                         cfg->momentum);
    if (!(isfinite(cfg->eps) && cfg->eps > 0.0))
        return bnk__fail(BNK_ERR_PARAM, "eps must be finite and > 0, got %g", cfg->eps);
    bnk_status st;
    if ((st = check_range("mean_clip", cfg->mean_clip, 0)) != BNK_OK) return st;
    if ((st = check_range("var_clip", cfg->var_clip, 1)) != BNK_OK) return st;
    if ((st = check_range("running_mean_clip", cfg->running_mean_clip, 0)) != BNK_OK) return st;
    if ((st = check_range("running_var_clip", cfg->running_var_clip, 1)) != BNK_OK) return st;
    if (!(cfg->rel_clip_r >= 1.0))
        return bnk__fail(BNK_ERR_PARAM, "rel_clip r must be >= 1 (inf = off), got %g",
                         cfg->rel_clip_r);
    if (!(cfg->rel_clip_d >= 0.0))
        return bnk__fail(BNK_ERR_PARAM, "rel_clip d must be >= 0 (inf = off), got %g",
                         cfg->rel_clip_d);
    if (cfg->clip_warmup < 0)
        return bnk__fail(BNK_ERR_PARAM, "clip_warmup must be >= 0, got %lld",
                         (long long)cfg->clip_warmup);
    if (cfg->normalize_with != BNK_NORM_BATCH && cfg->normalize_with != BNK_NORM_RUNNING &&
        cfg->normalize_with != BNK_NORM_RENORM)
        return bnk__fail(BNK_ERR_PARAM, "normalize_with has unknown value %d",
                         (int)cfg->normalize_with);
    if (!(cfg->rmax >= 1.0 && isfinite(cfg->rmax)))
        return bnk__fail(BNK_ERR_PARAM, "rmax must be finite and >= 1, got %g", cfg->rmax);
    if (!(cfg->dmax >= 0.0 && isfinite(cfg->dmax)))
        return bnk__fail(BNK_ERR_PARAM, "dmax must be finite and >= 0, got %g", cfg->dmax);
    return BNK_OK;
}

/* The channel block of a blocked layout, 0 for the others. */
static int64_t layout_block(bnk_layout layout) {
    return layout == BNK_LAYOUT_NCHW16C ? 16 : layout == BNK_LAYOUT_NCHW8C ? 8 : 0;
}

bnk_status bnk__bn_check_shape(const bnk_bn_shape *shape, int allow_empty) {
    if (!shape) return bnk__fail(BNK_ERR_NULL, "shape is NULL");
    if (shape->layout != BNK_LAYOUT_NC && shape->layout != BNK_LAYOUT_NCHW &&
        shape->layout != BNK_LAYOUT_NHWC && shape->layout != BNK_LAYOUT_NCHW16C &&
        shape->layout != BNK_LAYOUT_NCHW8C)
        return bnk__fail(BNK_ERR_SIZE, "unknown layout %d", (int)shape->layout);
    if (shape->n < (allow_empty ? 0 : 1) || shape->c <= 0 || shape->h <= 0 || shape->w <= 0)
        return bnk__fail(BNK_ERR_SIZE, "sizes must be >= 1%s, got n=%lld c=%lld h=%lld w=%lld",
                         allow_empty ? " (n >= 0)" : "", (long long)shape->n, (long long)shape->c,
                         (long long)shape->h, (long long)shape->w);
    if (shape->layout == BNK_LAYOUT_NC && (shape->h != 1 || shape->w != 1))
        return bnk__fail(BNK_ERR_SIZE, "layout NC needs h = w = 1, got h=%lld w=%lld",
                         (long long)shape->h, (long long)shape->w);
    const int64_t blk = layout_block(shape->layout);
    if (blk && shape->c % blk != 0)
        return bnk__fail(BNK_ERR_SIZE,
                         "layout nchw%lldc needs C to be a multiple of %lld, got %lld",
                         (long long)blk, (long long)blk, (long long)shape->c);
    /* n*c*h*w*sizeof(float) must fit in size_t (and in ptrdiff_t, for pointer arithmetic). */
    const uint64_t limit = (uint64_t)PTRDIFF_MAX / sizeof(float);
    uint64_t total = 1;
    const int64_t dims[4] = {shape->n > 0 ? shape->n : 1, shape->c, shape->h, shape->w};
    for (int i = 0; i < 4; i++) {
        if ((uint64_t)dims[i] > limit / total)
            return bnk__fail(BNK_ERR_OVERFLOW,
                             "n*c*h*w = %lld*%lld*%lld*%lld floats overflows the address space",
                             (long long)shape->n, (long long)shape->c, (long long)shape->h,
                             (long long)shape->w);
        total *= (uint64_t)dims[i];
    }
    return BNK_OK;
}

bnk_status bnk_bn_shape_validate(const bnk_bn_shape *shape) {
    return bnk__bn_check_shape(shape, 0);
}

size_t bnk_bn_shape_numel(const bnk_bn_shape *shape) {
    return (size_t)shape->n * (size_t)shape->c * (size_t)shape->h * (size_t)shape->w;
}

bnk__bn_dims bnk__bn_dims_of(const bnk_bn_shape *shape) {
    /* NCHW with H*W = 1 is laid out exactly like NC, so it takes the interleaved sweeps; so is a
     * blocked layout with H*W = 1, and one with a single block (C = B) is laid out like NHWC. */
    const size_t hw = (size_t)shape->h * (size_t)shape->w,
                 blk = (size_t)layout_block(shape->layout);
    bnk__bn_dims d = {
        .planar = shape->layout == BNK_LAYOUT_NCHW && hw > 1,
        .n = (size_t)shape->n,
        .c = (size_t)shape->c,
        .hw = hw,
        .blk = hw > 1 && (size_t)shape->c > blk ? blk : 0,
    };
    return d;
}

/* ---- Non-temporal store threshold -------------------------------------------------------- */

static _Atomic size_t stream_limit; /* 0 until decided */

size_t bnk__bn_stream_limit(void) {
    size_t v = atomic_load_explicit(&stream_limit, memory_order_relaxed);
    if (!v) {
#ifdef _SC_LEVEL3_CACHE_SIZE /* glibc */
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#else
        const long l3 = 0;
#endif
        v = l3 > 0 ? (size_t)l3 / 2 : (size_t)16 << 20;
        atomic_store_explicit(&stream_limit, v, memory_order_relaxed);
    }
    return v;
}

void bnk__bn_set_stream_limit(size_t bytes) {
    atomic_store_explicit(&stream_limit, bytes, memory_order_relaxed);
}

/* ---- Kernel dispatch --------------------------------------------------------------------- */

/* CPU checks for the explicit-SIMD kernels. __builtin_cpu_supports also checks that the OS
 * saves the wide registers (XCR0), so a kernel is never used where its instructions would trap. */
#if defined(BNK_HAVE_AVX2)
static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif
#if defined(BNK_HAVE_AVX512)
static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
}
#endif

typedef struct kernel_entry {
    const bnk__bn_kernels *kernels;
    int (*usable)(void); /* NULL: runs everywhere */
} kernel_entry;

/* The reference first, then the optimised kernels from the most portable to the fastest: the
 * default is the last one that this CPU can run. */
static const kernel_entry kernel_table[] = {
    {&bnk__bn_kernels_ref, NULL},
    {&bnk__bn_kernels_opt, NULL},
#if defined(BNK_HAVE_AVX2)
    {&bnk__bn_kernels_avx2, cpu_has_avx2},
#endif
#if defined(BNK_HAVE_AVX512)
    {&bnk__bn_kernels_avx512, cpu_has_avx512},
#endif
};
enum { KERNEL_TABLE_SIZE = sizeof kernel_table / sizeof kernel_table[0] };

/* Index into kernel_table; -1 until the first use picks the default (or BNK_ARCH's choice). */
static _Atomic int kernel_current = -1;

static int kernel_usable(int i) {
    return !kernel_table[i].usable || kernel_table[i].usable();
}

/* The table index of the i-th usable kernel, or -1. */
static int kernel_usable_at(int i) {
    for (int k = 0; k < KERNEL_TABLE_SIZE; k++)
        if (kernel_usable(k) && i-- == 0) return k;
    return -1;
}

static int kernel_find(const char *name) {
    for (int i = 0; i < KERNEL_TABLE_SIZE; i++)
        if (strcmp(kernel_table[i].kernels->name, name) == 0 && kernel_usable(i)) return i;
    return -1;
}

static const bnk__bn_kernels *kernel_active(void) {
    int k = atomic_load(&kernel_current);
    if (k < 0) {
        const char *env = getenv("BNK_ARCH");
        k = env && *env ? kernel_find(env) : -1;
        /* unknown or unusable names fall back to the default (the library does not print) */
        for (int i = KERNEL_TABLE_SIZE - 1; k < 0 && i >= 0; i--)
            if (kernel_usable(i)) k = i;
        atomic_store(&kernel_current, k);
    }
    return kernel_table[k].kernels;
}

const bnk__bn_kernels *bnk__bn_kernels_active(void) {
    return kernel_active();
}

int bnk_bn_kernel_count(void) {
    int n = 0;
    for (int k = 0; k < KERNEL_TABLE_SIZE; k++) n += kernel_usable(k);
    return n;
}

const char *bnk_bn_kernel_at(int i) {
    const int k = i >= 0 ? kernel_usable_at(i) : -1;
    return k >= 0 ? kernel_table[k].kernels->name : NULL;
}

bnk_status bnk_bn_kernel_select(const char *name) {
    if (!name) return bnk__fail(BNK_ERR_NULL, "kernel name is NULL");
    int k = kernel_find(name);
    if (k < 0)
        return bnk__fail(BNK_ERR_UNSUPPORTED,
                         "no BN kernel named '%s' in this build that this CPU can run", name);
    atomic_store(&kernel_current, k);
    return BNK_OK;
}

const char *bnk_bn_kernel_name(void) {
    return kernel_active()->name;
}

/* ---- Public kernels ---------------------------------------------------------------------- */

bnk_status bnk__bn_check_common(const bnk_bn_config *cfg, const bnk_bn_shape *shape,
                                const float *gamma, const float *beta, int allow_empty) {
    bnk_status st = bnk_bn_config_validate(cfg);
    if (st != BNK_OK) return st;
    if ((st = bnk__bn_check_shape(shape, allow_empty)) != BNK_OK) return st;
    if (cfg->scale && !gamma) return bnk__fail(BNK_ERR_NULL, "gamma is NULL but scale is on");
    if (cfg->center && !beta) return bnk__fail(BNK_ERR_NULL, "beta is NULL but center is on");
    return BNK_OK;
}

bnk_status bnk__bn_check_running(const float *running_mean, const float *running_var, int64_t c) {
    for (int64_t i = 0; i < c; i++) {
        if (!isfinite(running_mean[i]))
            return bnk__fail(BNK_ERR_PARAM, "running_mean[%lld] is %g; it must be finite",
                             (long long)i, running_mean[i]);
        if (!(running_var[i] >= 0.0f && isfinite(running_var[i])))
            return bnk__fail(BNK_ERR_PARAM, "running_var[%lld] is %g; it must be finite and >= 0",
                             (long long)i, running_var[i]);
    }
    return BNK_OK;
}

bnk_status bnk_bn_forward_train(const bnk_bn_config *cfg, const bnk_bn_shape *shape, int64_t step,
                                float *y, double *saved, float *running_mean, float *running_var,
                                const float *x, const float *gamma, const float *beta) {
    bnk_status st = bnk__bn_check_common(cfg, shape, gamma, beta, 0);
    if (st != BNK_OK) return st;
    if (!y || !saved || !running_mean || !running_var || !x)
        return bnk__fail(BNK_ERR_NULL, "forward_train: y, saved, running_mean, running_var and "
                                       "x must not be NULL");
    if (step < 0) return bnk__fail(BNK_ERR_PARAM, "step must be >= 0, got %lld", (long long)step);
    if (shape->n * shape->h * shape->w < 2)
        return bnk__fail(BNK_ERR_BATCH,
                         "training needs more than 1 value per channel (n*h*w = 1); the batch "
                         "variance is undefined");
    if ((st = bnk__bn_check_running(running_mean, running_var, shape->c)) != BNK_OK) return st;
    bnk__bn_dims d = bnk__bn_dims_of(shape);
    kernel_active()->forward_train(cfg, &d, step, y, saved, running_mean, running_var, x, gamma,
                                   beta);
    return BNK_OK;
}

bnk_status bnk_bn_forward_infer(const bnk_bn_config *cfg, const bnk_bn_shape *shape, float *y,
                                const float *x, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var) {
    bnk_status st = bnk__bn_check_common(cfg, shape, gamma, beta, 0);
    if (st != BNK_OK) return st;
    if (!y || !x || !running_mean || !running_var)
        return bnk__fail(BNK_ERR_NULL,
                         "forward_infer: y, x, running_mean and running_var must not be NULL");
    if ((st = bnk__bn_check_running(running_mean, running_var, shape->c)) != BNK_OK) return st;
    bnk__bn_dims d = bnk__bn_dims_of(shape);
    kernel_active()->forward_infer(cfg, &d, y, x, gamma, beta, running_mean, running_var);
    return BNK_OK;
}

bnk_status bnk_bn_backward(const bnk_bn_config *cfg, const bnk_bn_shape *shape, float *dx,
                           float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *y, const float *gamma, const double *saved) {
    bnk_status st = bnk_bn_config_validate(cfg);
    if (st != BNK_OK) return st;
    if ((st = bnk_bn_shape_validate(shape)) != BNK_OK) return st;
    if (cfg->scale && !gamma) return bnk__fail(BNK_ERR_NULL, "gamma is NULL but scale is on");
    if (!dx || !dy || !x || !saved)
        return bnk__fail(BNK_ERR_NULL, "backward: dx, dy, x and saved must not be NULL");
    if (cfg->fuse_relu && !y)
        return bnk__fail(BNK_ERR_NULL, "backward: y is needed for the fused ReLU's mask");
    if (shape->n * shape->h * shape->w < 2)
        return bnk__fail(BNK_ERR_BATCH, "backward of training BN needs more than 1 value per "
                                        "channel (n*h*w = 1)");
    bnk__bn_dims d = bnk__bn_dims_of(shape);
    kernel_active()->backward(cfg, &d, dx, dgamma, dbeta, dy, x, y, gamma, saved);
    return BNK_OK;
}
