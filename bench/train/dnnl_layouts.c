/* oneDNN's convolution and max pooling on the CNN's shapes in each activation layout: the
 * measurement behind the trainer's choice of oneDNN's blocked layout (docs/training.md,
 * "Providers"; docs/PERFORMANCE.md, "Trainer").
 *
 *   bench_dnnl_layouts [--batch N] [--reps R]      (threads: OMP_NUM_THREADS)
 *
 * For conv1 (1 -> 32 channels, 28x28) and conv2 (32 -> 64, 14x14), 3x3, padding 1, and 2x2 max
 * pooling of their outputs, in nchw, nhwc and nChw16c (conv1's single-channel input stays nchw in
 * the blocked case, as in the trainer; its weights are left to oneDNN): forward training,
 * backward weights + bias, backward data (not for conv1, whose input needs no gradient), pooling
 * forward training (with workspace) and backward. Each primitive is made once, run twice to warm
 * up, then R times; the best time is printed in ms with GFLOP/s for convolutions and the
 * implementation oneDNN picked. The trainer's remaining costs (reorders, BN) are not here. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "bench_dnnl_layouts: %s failed: status %d\n", #call, (int)s_);         \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static dnnl_engine_t eng;
static dnnl_stream_t stream;
static int reps = 20;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A memory of md filled with values in [-1, 1): uninitialised memory may hold denormals or
 * NaNs, which slow the arithmetic by orders of magnitude. */
static dnnl_memory_t memory_of(const dnnl_memory_desc_t *md) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    float *f = p;
    const size_t count = dnnl_memory_desc_get_size(md) / sizeof(float);
    uint32_t state = 12345;
    for (size_t i = 0; i < count; i++) {
        state = state * 1664525u + 1013904223u;
        f[i] = (float)(state >> 8) * 0x1p-23f - 1.0f;
    }
    return m;
}

/* Makes the primitive of pd, runs it with args (2 warm-up runs, then reps), returns the best ms
 * and sets *impl to oneDNN's implementation name. */
static double run(const_dnnl_primitive_desc_t pd, int nargs, const dnnl_exec_arg_t *args,
                  const char **impl) {
    dnnl_primitive_t p;
    CHECK(dnnl_primitive_create(&p, pd));
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl));
    double best = 1e30;
    for (int r = -2; r < reps; r++) {
        const double t = now();
        CHECK(dnnl_primitive_execute(p, stream, nargs, args));
        CHECK(dnnl_stream_wait(stream));
        const double dt = now() - t;
        if (r >= 0 && dt < best) best = dt;
    }
    dnnl_primitive_destroy(p);
    return best * 1e3;
}

static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t what, int i) {
    return dnnl_primitive_desc_query_md(pd, what, i);
}

static void conv(const char *name, int64_t n, int64_t c, int64_t hw, int64_t f,
                 dnnl_format_tag_t src_tag, dnnl_format_tag_t dst_tag, const char *layout) {
    const dnnl_dims_t xd = {n, c, hw, hw}, wd = {f, c, 3, 3}, bd = {f}, yd = {n, f, hw, hw};
    const dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t x, w, b, y;
    CHECK(dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, src_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&y, 4, yd, dnnl_f32, dst_tag));
    dnnl_convolution_desc_t fd, wdsc, dd;
    CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                             &x, &w, &b, &y, strides, pad, pad));
    dnnl_primitive_desc_t fwd, bww, bwd = NULL;
    CHECK(dnnl_primitive_desc_create(&fwd, &fd, NULL, eng, NULL));
    CHECK(dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &x, &w, &b,
                                                      &y, strides, pad, pad));
    CHECK(dnnl_primitive_desc_create(&bww, &wdsc, NULL, eng, fwd));
    dnnl_memory_t X = memory_of(md_of(fwd, dnnl_query_src_md, 0));
    dnnl_memory_t W = memory_of(md_of(fwd, dnnl_query_weights_md, 0));
    dnnl_memory_t B = memory_of(&b), Y = memory_of(md_of(fwd, dnnl_query_dst_md, 0));
    dnnl_memory_t DW = memory_of(md_of(bww, dnnl_query_diff_weights_md, 0)), DB = memory_of(&b);
    const double gflop = 2.0 * (double)(n * hw * hw * f * c * 9) * 1e-9;
    const char *impl;
    const dnnl_exec_arg_t fa[] = {
        {DNNL_ARG_SRC, X}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_BIAS, B}, {DNNL_ARG_DST, Y}};
    double ms = run(fwd, 4, fa, &impl);
    printf("%-6s %-8s forward          %7.2f ms %6.1f GFLOP/s  %s\n", name, layout, ms,
           gflop / ms * 1e3, impl);
    const dnnl_exec_arg_t wa[] = {{DNNL_ARG_SRC, X},
                                  {DNNL_ARG_DIFF_DST, Y},
                                  {DNNL_ARG_DIFF_WEIGHTS, DW},
                                  {DNNL_ARG_DIFF_BIAS, DB}};
    ms = run(bww, 4, wa, &impl);
    printf("%-6s %-8s backward weights %7.2f ms %6.1f GFLOP/s  %s\n", name, layout, ms,
           gflop / ms * 1e3, impl);
    dnnl_memory_t DX = NULL;
    if (c > 1) {
        CHECK(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &x, &w, &y,
                                                       strides, pad, pad));
        CHECK(dnnl_primitive_desc_create(&bwd, &dd, NULL, eng, fwd));
        DX = memory_of(md_of(bwd, dnnl_query_diff_src_md, 0));
        const dnnl_exec_arg_t da[] = {
            {DNNL_ARG_DIFF_DST, Y}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_DIFF_SRC, DX}};
        ms = run(bwd, 3, da, &impl);
        printf("%-6s %-8s backward data    %7.2f ms %6.1f GFLOP/s  %s\n", name, layout, ms,
               gflop / ms * 1e3, impl);
        dnnl_primitive_desc_destroy(bwd);
        dnnl_memory_destroy(DX);
    }
    dnnl_memory_t all[] = {X, W, B, Y, DW, DB};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dnnl_memory_destroy(all[i]);
    dnnl_primitive_desc_destroy(fwd);
    dnnl_primitive_desc_destroy(bww);
}

static void pool(const char *name, int64_t n, int64_t c, int64_t hw, dnnl_format_tag_t tag,
                 const char *layout) {
    const dnnl_dims_t xd = {n, c, hw, hw}, yd = {n, c, hw / 2, hw / 2};
    const dnnl_dims_t kernel = {2, 2}, strides = {2, 2}, dil = {0, 0}, pad = {0, 0};
    dnnl_memory_desc_t x, y;
    CHECK(dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, tag));
    CHECK(dnnl_memory_desc_init_by_tag(&y, 4, yd, dnnl_f32, tag));
    dnnl_pooling_v2_desc_t fd, bd;
    CHECK(dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, dnnl_pooling_max, &x, &y,
                                            strides, kernel, dil, pad, pad));
    CHECK(dnnl_pooling_v2_backward_desc_init(&bd, dnnl_pooling_max, &x, &y, strides, kernel, dil,
                                             pad, pad));
    dnnl_primitive_desc_t fwd, bwd;
    CHECK(dnnl_primitive_desc_create(&fwd, &fd, NULL, eng, NULL));
    CHECK(dnnl_primitive_desc_create(&bwd, &bd, NULL, eng, fwd));
    dnnl_memory_t X = memory_of(&x), Y = memory_of(&y);
    dnnl_memory_t WS = memory_of(md_of(fwd, dnnl_query_workspace_md, 0));
    const char *impl;
    const dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, X}, {DNNL_ARG_DST, Y}, {DNNL_ARG_WORKSPACE, WS}};
    double ms = run(fwd, 3, fa, &impl);
    printf("%-6s %-8s forward          %7.2f ms                 %s\n", name, layout, ms, impl);
    const dnnl_exec_arg_t ba[] = {
        {DNNL_ARG_DIFF_DST, Y}, {DNNL_ARG_WORKSPACE, WS}, {DNNL_ARG_DIFF_SRC, X}};
    ms = run(bwd, 3, ba, &impl);
    printf("%-6s %-8s backward         %7.2f ms                 %s\n", name, layout, ms, impl);
    dnnl_memory_destroy(X), dnnl_memory_destroy(Y), dnnl_memory_destroy(WS);
    dnnl_primitive_desc_destroy(fwd);
    dnnl_primitive_desc_destroy(bwd);
}

int main(int argc, char **argv) {
    int64_t n = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            n = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_dnnl_layouts [--batch N] [--reps R]\n");
            return 2;
        }
    }
    if (n < 1 || reps < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: bench_dnnl_layouts [--batch N] [--reps R]\n");
        return 2;
    }
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    const struct {
        const char *name;
        dnnl_format_tag_t tag;
    } layouts[] = {{"nchw", dnnl_nchw}, {"nhwc", dnnl_nhwc}, {"nChw16c", dnnl_nChw16c}};
    printf("batch %lld, best of %d runs\n", (long long)n, reps);
    for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
        const dnnl_format_tag_t t = layouts[l].tag;
        conv("conv1", n, 1, 28, 32, t == dnnl_nChw16c ? dnnl_nchw : t, t, layouts[l].name);
        conv("conv2", n, 32, 14, 64, t, t, layouts[l].name);
        pool("pool1", n, 32, 28, t, layouts[l].name);
        pool("pool2", n, 64, 14, t, layouts[l].name);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
