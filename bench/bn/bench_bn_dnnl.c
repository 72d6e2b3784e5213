/* oneDNN's batch normalization, timed the way `bnkit bench bn` times bnkit's: the peer of
 * bench/bn/compare.py (docs/PERFORMANCE.md).
 *
 *   bench_bn_dnnl --shape N,C,H,W|N,C --layout nchw|nhwc|nchw16c|nchw8c|nc
 *                 --op fwd_train|fwd_infer|bwd [--threads T] [--min-time S] [--relu] [--json]
 *
 * The primitives use oneDNN's C API with flags use_scale | use_shift (plus fuse_norm_relu with
 * --relu); nchw16c and nchw8c are oneDNN's blocked nChw16c and nChw8c (C a multiple of the block:
 * no padding), the layouts its convolutions produce and its BN is fastest on; NC is described to
 * oneDNN as (N, C, 1, 1) in nhwc, which its JIT code accepts; training
 * forward writes mean and variance (oneDNN keeps no running statistics), backward is prop_kind
 * backward (dx, dscale, dshift). One primitive per run, made before the warm-up; each timed call is
 * dnnl_primitive_execute + dnnl_stream_wait. Prints the median, the minimum, the effective GB/s (8
 * bytes per element forward, 12 backward) and the name of the implementation oneDNN picked
 * (dnnl_query_impl_info_str). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "bench_bn_dnnl: %s failed: status %d\n", #call, (int)s_);              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_bn_dnnl --shape N,C,H,W|N,C --layout "
                    "nchw|nhwc|nchw16c|nchw8c|nc --op fwd_train|fwd_infer|bwd [--threads T] "
                    "[--min-time S] [--relu] [--json]\n");
    exit(2);
}

static float *alloc_floats(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_bn_dnnl: out of memory\n");
        exit(1);
    }
    return p;
}

/* splitmix64 + Box-Muller, as bnkit's generator */
static double rnd_normal(unsigned long long *s) {
    double u[2];
    for (int k = 0; k < 2; k++) {
        unsigned long long z = (*s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        u[k] = (double)(z >> 11) * 0x1.0p-53;
    }
    if (u[0] < 1e-300) u[0] = 1e-300;
    return __builtin_sqrt(-2.0 * __builtin_log(u[0])) * __builtin_cos(6.283185307179586 * u[1]);
}

int main(int argc, char **argv) {
    long long dims[4] = {0, 0, 1, 1};
    int ndims = 0, threads = 1, json = 0, relu = 0;
    const char *layout = NULL, *op = NULL;
    double min_time = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--relu") == 0) {
            relu = 1;
        } else if (i + 1 < argc && strcmp(a, "--shape") == 0) {
            char *p = argv[++i], *end;
            while (ndims < 4) {
                dims[ndims++] = strtoll(p, &end, 10);
                if (end == p || dims[ndims - 1] <= 0) usage();
                if (*end == '\0') break;
                if (*end != ',') usage();
                p = end + 1;
            }
            if (*end != '\0' || (ndims != 2 && ndims != 4)) usage();
        } else if (i + 1 < argc && strcmp(a, "--layout") == 0) {
            layout = argv[++i];
        } else if (i + 1 < argc && strcmp(a, "--op") == 0) {
            op = argv[++i];
        } else if (i + 1 < argc && strcmp(a, "--threads") == 0) {
            char *end;
            threads = (int)strtol(argv[++i], &end, 10);
            if (*end != '\0' || threads < 1) usage();
        } else if (i + 1 < argc && strcmp(a, "--min-time") == 0) {
            char *end;
            min_time = strtod(argv[++i], &end);
            if (*end != '\0' || !(min_time > 0.0)) usage();
        } else {
            usage();
        }
    }
    if (!ndims || !layout || !op) usage();
    const int train = strcmp(op, "fwd_train") == 0, infer = strcmp(op, "fwd_infer") == 0,
              bwd = strcmp(op, "bwd") == 0;
    if (!train && !infer && !bwd) usage();
    dnnl_format_tag_t tag;
    const int md_ndims = 4;
    if (strcmp(layout, "nchw") == 0) {
        tag = dnnl_nchw;
    } else if (strcmp(layout, "nhwc") == 0) {
        tag = dnnl_nhwc;
    } else if (strcmp(layout, "nchw16c") == 0 || strcmp(layout, "nchw8c") == 0) {
        const long long blk = layout[4] == '1' ? 16 : 8;
        if (dims[1] % blk != 0) usage(); /* a padded tensor would be larger than N*C*H*W */
        tag = blk == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    } else if (strcmp(layout, "nc") == 0) {
        /* described as (N, C, 1, 1) in nhwc, the same memory: oneDNN 2.x's JIT batch
         * normalization takes 4-D and 5-D tensors only, a 2-D nc one gets the reference code */
        if (dims[2] != 1 || dims[3] != 1) usage();
        tag = dnnl_nhwc;
    } else {
        usage();
    }
    omp_set_num_threads(threads);

    const size_t N = (size_t)dims[0], C = (size_t)dims[1], numel = N * C * dims[2] * dims[3];
    float *x = alloc_floats(numel), *y = alloc_floats(numel), *dy = alloc_floats(numel),
          *dx = alloc_floats(numel), *scale = alloc_floats(C), *shift = alloc_floats(C),
          *mean = alloc_floats(C), *var = alloc_floats(C), *dscale = alloc_floats(C),
          *dshift = alloc_floats(C);
    unsigned long long rng = 1;
    for (size_t i = 0; i < numel; i++) {
        x[i] = (float)(0.5 + rnd_normal(&rng));
        dy[i] = (float)rnd_normal(&rng);
    }
    for (size_t c = 0; c < C; c++) {
        scale[c] = (float)(1.0 + 0.1 * rnd_normal(&rng));
        shift[c] = (float)(0.1 * rnd_normal(&rng));
        mean[c] = 0.0f;
        var[c] = 1.0f;
    }

    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    dnnl_dims_t d = {dims[0], dims[1], dims[2], dims[3]};
    dnnl_memory_desc_t data_md, stat_md;
    CHECK(dnnl_memory_desc_init_by_tag(&data_md, md_ndims, d, dnnl_f32, tag));
    dnnl_dims_t cd = {dims[1]};
    CHECK(dnnl_memory_desc_init_by_tag(&stat_md, 1, cd, dnnl_f32, dnnl_a));
    const float eps = 1e-3f;
    const unsigned flags = dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0u);

    /* the training forward: timed itself, or the hint (and the saved statistics) of backward */
    dnnl_batch_normalization_desc_t fd;
    CHECK(dnnl_batch_normalization_forward_desc_init(
        &fd, infer ? dnnl_forward_inference : dnnl_forward_training, &data_md, eps,
        flags | (infer ? dnnl_use_global_stats : 0u)));
    dnnl_primitive_desc_t fpd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    dnnl_primitive_t fprim;
    CHECK(dnnl_primitive_create(&fprim, fpd));

    dnnl_memory_t m_x, m_y, m_dy, m_dx, m_scale, m_shift, m_mean, m_var, m_dscale, m_dshift,
        m_ws = NULL;
    CHECK(dnnl_memory_create(&m_x, &data_md, eng, x));
    CHECK(dnnl_memory_create(&m_y, &data_md, eng, y));
    CHECK(dnnl_memory_create(&m_dy, &data_md, eng, dy));
    CHECK(dnnl_memory_create(&m_dx, &data_md, eng, dx));
    CHECK(dnnl_memory_create(&m_scale, &stat_md, eng, scale));
    CHECK(dnnl_memory_create(&m_shift, &stat_md, eng, shift));
    CHECK(dnnl_memory_create(&m_mean, &stat_md, eng, mean));
    CHECK(dnnl_memory_create(&m_var, &stat_md, eng, var));
    CHECK(dnnl_memory_create(&m_dscale, &stat_md, eng, dscale));
    CHECK(dnnl_memory_create(&m_dshift, &stat_md, eng, dshift));
    if (relu && !infer) {
        const dnnl_memory_desc_t *ws_md =
            dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
        CHECK(dnnl_memory_create(&m_ws, ws_md, eng, DNNL_MEMORY_ALLOCATE));
    }
    dnnl_exec_arg_t fargs[8] = {{DNNL_ARG_SRC, m_x},       {DNNL_ARG_DST, m_y},
                                {DNNL_ARG_SCALE, m_scale}, {DNNL_ARG_SHIFT, m_shift},
                                {DNNL_ARG_MEAN, m_mean},   {DNNL_ARG_VARIANCE, m_var}};
    int nf = 6;
    if (m_ws) fargs[nf++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, m_ws};

    dnnl_primitive_desc_t bpd = NULL;
    dnnl_primitive_t bprim = NULL;
    dnnl_exec_arg_t bargs[10];
    int nb = 0;
    if (bwd) {
        dnnl_batch_normalization_desc_t bd;
        CHECK(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data_md, &data_md,
                                                          eps, flags));
        CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
        CHECK(dnnl_primitive_create(&bprim, bpd));
        dnnl_exec_arg_t b[] = {{DNNL_ARG_SRC, m_x},
                               {DNNL_ARG_DIFF_DST, m_dy},
                               {DNNL_ARG_MEAN, m_mean},
                               {DNNL_ARG_VARIANCE, m_var},
                               {DNNL_ARG_SCALE, m_scale},
                               {DNNL_ARG_SHIFT, m_shift},
                               {DNNL_ARG_DIFF_SRC, m_dx},
                               {DNNL_ARG_DIFF_SCALE, m_dscale},
                               {DNNL_ARG_DIFF_SHIFT, m_dshift}};
        nb = (int)(sizeof b / sizeof b[0]);
        memcpy(bargs, b, sizeof b);
        if (m_ws) bargs[nb++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, m_ws};
        /* statistics and workspace for backward */
        CHECK(dnnl_primitive_execute(fprim, stream, nf, fargs));
        CHECK(dnnl_stream_wait(stream));
    }
    dnnl_primitive_t prim = bwd ? bprim : fprim;
    dnnl_exec_arg_t *args = bwd ? bargs : fargs;
    const int nargs = bwd ? nb : nf;
    const char *impl = NULL;
    CHECK(dnnl_primitive_desc_query(bwd ? bpd : fpd, dnnl_query_impl_info_str, 0, &impl));

    double t0 = now_s(), elapsed;
    int warm = 0;
    do {
        CHECK(dnnl_primitive_execute(prim, stream, nargs, args));
        CHECK(dnnl_stream_wait(stream));
        warm++;
        elapsed = now_s() - t0;
    } while (warm < 2 || elapsed < 0.05);
    long reps = (long)(min_time / (elapsed / warm));
    if (reps < 5) reps = 5;
    if (reps > 200000) reps = 200000;
    double *t = malloc((size_t)reps * sizeof(double));
    if (!t) return 1;
    for (long r = 0; r < reps; r++) {
        const double a = now_s();
        CHECK(dnnl_primitive_execute(prim, stream, nargs, args));
        CHECK(dnnl_stream_wait(stream));
        t[r] = now_s() - a;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    const double med = (reps % 2) ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    const int bytes = bwd ? 12 : 8;
    const double gbs = bytes * (double)numel / med * 1e-9;
    if (json)
        printf("{\"bench\": \"bn\", \"peer\": \"onednn\", \"op\": \"%s\", \"layout\": \"%s\", "
               "\"shape\": [%lld, %lld, %lld, %lld], \"threads\": %d, \"kernel\": \"%s\", "
               "\"median_us\": %.3f, \"min_us\": %.3f, \"reps\": %ld, \"gbs\": %.3f}\n",
               op, layout, dims[0], dims[1], dims[2], dims[3], threads, impl, med * 1e6, t[0] * 1e6,
               reps, gbs);
    else
        printf("onednn %s %s %lldx%lldx%lldx%lld threads %d (%s): median %.1f us, min %.1f us, "
               "%.2f GB/s\n",
               op, layout, dims[0], dims[1], dims[2], dims[3], threads, impl, med * 1e6, t[0] * 1e6,
               gbs);

    free(t);
    if (bprim) dnnl_primitive_destroy(bprim);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    dnnl_primitive_destroy(fprim);
    dnnl_primitive_desc_destroy(fpd);
    dnnl_memory_t mems[] = {m_x,    m_y,   m_dy,     m_dx,     m_scale, m_shift,
                            m_mean, m_var, m_dscale, m_dshift, m_ws};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    float *bufs[] = {x, y, dy, dx, scale, shift, mean, var, dscale, dshift};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    return 0;
}
