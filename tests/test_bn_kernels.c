/* Every compiled kernel against the reference kernel, through the public API, on awkward shapes
 * (N = 2, C = 1, C not a multiple of any vector width or of the channel block, H*W = 1, large
 * H*W, shapes large enough to run threaded) in every layout and every case of bn_cases.h; then
 * with other OpenMP team sizes on shapes that take each way of sharing work between threads,
 * and in place (y = x, dx = dy). The blocked layouts (nChw16c, nChw8c) also against the same
 * kernel in NCHW, through a permutation written here independently of the kernels' indexing. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_cases.h"

enum { MAX_C = 640 };

typedef struct outputs {
    float *y, *dx, *yi, rm[MAX_C], rv[MAX_C], dg[MAX_C], db[MAX_C];
    double saved[BNK_BN_SAVED_FIELDS * MAX_C];
} outputs;

typedef struct inputs {
    bnk_bn_shape shape;
    size_t numel;
    float *x, *dy, gamma[MAX_C], beta[MAX_C], rm[MAX_C], rv[MAX_C];
} inputs;

/* When g_nteams > 0, check_shape runs the optimised kernels once per OpenMP team size
 * g_teams[i] (the reference once), with non-temporal stores on every output and in place too. */
static const int *g_teams;
static size_t g_nteams;

/* Runs forward_train, backward (given the mask source y_mask, so that every kernel sees the
 * same ReLU mask) and forward_infer with kernel `name`. */
static void run(const char *name, const bnk_case *tc, const inputs *in, const float *y_mask,
                outputs *out) {
    const size_t C = (size_t)in->shape.c;
    assert_int_equal(bnk_bn_kernel_select(name), BNK_OK);
    assert_string_equal(bnk_bn_kernel_name(), name);
    memcpy(out->rm, in->rm, C * sizeof(float));
    memcpy(out->rv, in->rv, C * sizeof(float));
    for (size_t c = 0; c < C; c++) out->dg[c] = out->db[c] = 0.125f;
    assert_int_equal(bnk_bn_forward_train(&tc->cfg, &in->shape, tc->step, out->y, out->saved,
                                          out->rm, out->rv, in->x, in->gamma, in->beta),
                     BNK_OK);
    assert_int_equal(bnk_bn_backward(&tc->cfg, &in->shape, out->dx, out->dg, out->db, in->dy, in->x,
                                     y_mask ? y_mask : out->y, in->gamma, out->saved),
                     BNK_OK);
    assert_int_equal(bnk_bn_forward_infer(&tc->cfg, &in->shape, out->yi, in->x, in->gamma, in->beta,
                                          in->rm, in->rv),
                     BNK_OK);
}

static void outputs_alloc(outputs *o, size_t numel) {
    o->y = malloc(numel * sizeof(float));
    o->dx = malloc(numel * sizeof(float));
    o->yi = malloc(numel * sizeof(float));
    assert_true(o->y && o->dx && o->yi);
}

static void outputs_free(outputs *o) {
    free(o->y);
    free(o->dx);
    free(o->yi);
}

static void to_f64(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

/* Largest |v| — the scale that float rounding errors are relative to. */
static double max_abs(const float *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)v[i]));
    return m;
}

static void compare(const char *kernel, const bnk_case *tc, const inputs *in, const outputs *ref,
                    const outputs *got) {
    const size_t C = (size_t)in->shape.c, numel = in->numel;
    char label[200];
    double *tmp = malloc((numel > 8 * C ? numel : 8 * C) * sizeof(double));
    assert_non_null(tmp);
#define LABEL(what)                                                                                \
    snprintf(label, sizeof label, "%s vs ref, %s, layout %d, shape %lldx%lldx%lldx%lld, %s",       \
             kernel, tc->name, (int)in->shape.layout, (long long)in->shape.n,                      \
             (long long)in->shape.c, (long long)in->shape.h, (long long)in->shape.w, what)
    /* Statistics: both accumulate in double (different orders): agree to ~1e-12. */
    LABEL("saved");
    bnk_test_close_f64(label, got->saved, ref->saved, BNK_BN_SAVED_FIELDS * C, 1e-12, 1e-10);
    /* Running statistics are float: one rounding apart at most. */
    to_f64(tmp, ref->rm, C);
    LABEL("running_mean");
    bnk_test_close_f32(label, got->rm, tmp, C, 1e-7, 2.4e-7);
    to_f64(tmp, ref->rv, C);
    LABEL("running_var");
    bnk_test_close_f32(label, got->rv, tmp, C, 1e-7, 2.4e-7);
    /* Outputs: the optimised kernels evaluate a*(x - cx) + b in float, a few roundings of the
     * output's magnitude; 1e-5 of the largest |y| covers it with margin. */
    to_f64(tmp, ref->y, numel);
    LABEL("y");
    bnk_test_close_f32(label, got->y, tmp, numel, 1e-5 * max_abs(ref->y, numel), 1e-5);
    to_f64(tmp, ref->yi, numel);
    LABEL("y (inference)");
    bnk_test_close_f32(label, got->yi, tmp, numel, 1e-5 * max_abs(ref->yi, numel), 1e-5);
    /* dx = a*g - (terms of the same size) cancels (exactly to 0 when m = 2), so its rounding
     * error is relative to the size of the terms a*|dy|, a = gamma*inv_std*r. */
    double term = 0.0;
    for (size_t c = 0; c < C; c++) {
        double a = (tc->cfg.scale ? fabs(in->gamma[c]) : 1.0) *
                   ref->saved[BNK_SAVED_INV_STD * C + c] * ref->saved[BNK_SAVED_RENORM_R * C + c];
        term = fmax(term, a);
    }
    term *= max_abs(in->dy, numel);
    to_f64(tmp, ref->dx, numel);
    LABEL("dx");
    bnk_test_close_f32(label, got->dx, tmp, numel, 1e-5 * term, 1e-5);
    /* dgamma, dbeta: sums over m terms in double, then one float rounding. */
    to_f64(tmp, ref->dg, C);
    LABEL("dgamma");
    bnk_test_close_f32(label, got->dg, tmp, C, 1e-5, 1e-6);
    to_f64(tmp, ref->db, C);
    LABEL("dbeta");
    bnk_test_close_f32(label, got->db, tmp, C, 1e-5, 1e-6);
#undef LABEL
    free(tmp);
}

/* The kernel selected last, in place: y = x and dx = dy must give bit for bit what the
 * out-of-place call in `got` gave (every thread reads its values before any are written). */
static void check_inplace(const char *name, const bnk_case *tc, const inputs *in,
                          const float *y_mask, const outputs *got) {
    const size_t C = (size_t)in->shape.c, n = in->numel;
    float *buf = malloc(n * sizeof(float));
    static float rm[MAX_C], rv[MAX_C], dg[MAX_C], db[MAX_C];
    static double saved[BNK_BN_SAVED_FIELDS * MAX_C];
    assert_non_null(buf);
    memcpy(buf, in->x, n * sizeof(float));
    memcpy(rm, in->rm, C * sizeof(float));
    memcpy(rv, in->rv, C * sizeof(float));
    assert_int_equal(bnk_bn_forward_train(&tc->cfg, &in->shape, tc->step, buf, saved, rm, rv, buf,
                                          in->gamma, in->beta),
                     BNK_OK);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&buf[i], &got->y[i], sizeof(float)) != 0)
            fail_msg("%s in place, %s: y[%zu] = %.9g, out of place %.9g", name, tc->name, i, buf[i],
                     got->y[i]);
    memcpy(buf, in->dy, n * sizeof(float));
    assert_int_equal(bnk_bn_backward(&tc->cfg, &in->shape, buf, dg, db, buf, in->x, y_mask,
                                     in->gamma, got->saved),
                     BNK_OK);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&buf[i], &got->dx[i], sizeof(float)) != 0)
            fail_msg("%s in place, %s: dx[%zu] = %.9g, out of place %.9g", name, tc->name, i,
                     buf[i], got->dx[i]);
    memcpy(buf, in->x, n * sizeof(float));
    assert_int_equal(
        bnk_bn_forward_infer(&tc->cfg, &in->shape, buf, buf, in->gamma, in->beta, in->rm, in->rv),
        BNK_OK);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&buf[i], &got->yi[i], sizeof(float)) != 0)
            fail_msg("%s in place, %s: inference y[%zu] = %.9g, out of place %.9g", name, tc->name,
                     i, buf[i], got->yi[i]);
    free(buf);
}

/* Inputs of a shape: x with bn_cases.h's channel statistics, random dy and parameters. */
static void inputs_init(inputs *in, bnk_layout layout, int64_t n, int64_t c, int64_t h, int64_t w) {
    memset(in, 0, sizeof *in);
    in->shape = (bnk_bn_shape){layout, n, c, h, w};
    assert_int_equal(bnk_bn_shape_validate(&in->shape), BNK_OK);
    assert_true(c <= MAX_C);
    in->numel = bnk_bn_shape_numel(&in->shape);
    bnk__bn_dims d = bnk__bn_dims_of(&in->shape);
    double *xd = malloc(2 * in->numel * sizeof(double));
    in->x = malloc(in->numel * sizeof(float));
    in->dy = malloc(in->numel * sizeof(float));
    assert_true(xd && in->x && in->dy);
    uint64_t rng = 0xC0FFEEu ^ (uint64_t)(n * 131 + c * 17 + h * 7 + w);
    bnk_case_fill_x(&d, xd, xd + in->numel, &rng);
    for (size_t i = 0; i < in->numel; i++) {
        in->x[i] = (float)xd[i];
        in->dy[i] = (float)bnk_test_normal(&rng);
    }
    for (int64_t k = 0; k < c; k++) {
        in->gamma[k] = (float)(0.5 + bnk_test_uniform(&rng));
        in->beta[k] = (float)bnk_test_normal(&rng);
    }
    bnk_case_fill_running((size_t)c, in->rm, in->rv);
    free(xd);
}

static void inputs_free(inputs *in) {
    free(in->x);
    free(in->dy);
}

static void check_shape(bnk_layout layout, int64_t n, int64_t c, int64_t h, int64_t w,
                        const bnk_case *cases, size_t ncases) {
    static inputs in; /* static: ~15 KiB */
    inputs_init(&in, layout, n, c, h, w);
    static outputs ref, got; /* static: ~50 KiB each */
    outputs_alloc(&ref, in.numel);
    outputs_alloc(&got, in.numel);
    const int team0 = omp_get_max_threads();
    const size_t nteams = g_nteams ? g_nteams : 1;
    for (size_t t = 0; t < ncases; t++) {
        run("ref", &cases[t], &in, NULL, &ref);
        for (size_t i = 0; i < nteams; i++) {
            if (g_nteams) omp_set_num_threads(g_teams[i]);
            for (int k = 0; k < bnk_bn_kernel_count(); k++) {
                const char *name = bnk_bn_kernel_at(k);
                if (strcmp(name, "ref") == 0) continue;
                run(name, &cases[t], &in, ref.y, &got);
                compare(name, &cases[t], &in, &ref, &got);
                if (g_nteams) check_inplace(name, &cases[t], &in, ref.y, &got);
            }
        }
        omp_set_num_threads(team0);
    }
    outputs_free(&ref);
    outputs_free(&got);
    inputs_free(&in);
}

static void test_kernels_match_reference(void **state) {
    (void)state;
    bnk_case cases[64];
    size_t ncases = bnk_cases(cases, 64);
    assert_true(bnk_bn_kernel_count() >= 2);
    const bnk_layout layouts[] = {BNK_LAYOUT_NCHW, BNK_LAYOUT_NHWC};
    /* NC: N = 2 with C = 1; C = 67 (past one 64-channel block, odd); 1000 rows threaded */
    check_shape(BNK_LAYOUT_NC, 2, 1, 1, 1, cases, ncases);
    check_shape(BNK_LAYOUT_NC, 5, 3, 1, 1, cases, ncases);
    check_shape(BNK_LAYOUT_NC, 7, 67, 1, 1, cases, ncases);
    check_shape(BNK_LAYOUT_NC, 1000, 70, 1, 1, cases, ncases);
    for (int l = 0; l < 2; l++) {
        check_shape(layouts[l], 2, 1, 1, 1, cases, ncases);     /* m = 2 */
        check_shape(layouts[l], 2, 1, 5, 7, cases, ncases);     /* C = 1 */
        check_shape(layouts[l], 3, 13, 1, 1, cases, ncases);    /* H*W = 1 */
        check_shape(layouts[l], 1, 3, 2, 2, cases, ncases);     /* N = 1 */
        check_shape(layouts[l], 2, 67, 3, 5, cases, ncases);    /* odd C past one block */
        check_shape(layouts[l], 2, 3, 129, 131, cases, ncases); /* large H*W, threaded */
        check_shape(layouts[l], 4, 80, 15, 17, cases, ncases);  /* many channels, threaded */
    }
}

/* The blocked layouts: several blocks, H*W = 1 (stored like NC) and C = block (like NHWC), odd
 * H*W, N = 1, m = 2, and shapes large enough to run threaded. */
static void test_blocked_match_reference(void **state) {
    (void)state;
    bnk_case cases[64];
    size_t ncases = bnk_cases(cases, 64);
    const bnk_layout layouts[] = {BNK_LAYOUT_NCHW16C, BNK_LAYOUT_NCHW8C};
    for (int l = 0; l < 2; l++) {
        const int64_t B = layouts[l] == BNK_LAYOUT_NCHW16C ? 16 : 8;
        check_shape(layouts[l], 2, 3 * B, 3, 5, cases, ncases);   /* 3 blocks, odd H*W */
        check_shape(layouts[l], 3, 2 * B, 1, 1, cases, ncases);   /* H*W = 1: like NC */
        check_shape(layouts[l], 2, B, 3, 3, cases, ncases);       /* C = block: like NHWC */
        check_shape(layouts[l], 1, 2 * B, 2, 3, cases, ncases);   /* N = 1 */
        check_shape(layouts[l], 2, 2 * B, 1, 1, cases, ncases);   /* m = 2 */
        check_shape(layouts[l], 4, 5 * B, 15, 17, cases, ncases); /* threaded */
    }
}

/* Every kernel (the reference too) in a blocked layout against the same kernel in NCHW: x and dy
 * permuted into the blocked layout, y, dx and inference y permuted back; both runs use the
 * NCHW run's ReLU mask. Only the order of the sums differs, so compare's tolerances apply. */
static void check_blocked_vs_nchw(bnk_layout layout, int64_t n, int64_t c, int64_t h, int64_t w,
                                  const bnk_case *cases, size_t ncases) {
    const int B = layout == BNK_LAYOUT_NCHW16C ? 16 : 8;
    const int64_t hw = h * w;
    static inputs in, bin; /* static: ~15 KiB each */
    inputs_init(&in, BNK_LAYOUT_NCHW, n, c, h, w);
    bin = in;
    bin.shape.layout = layout;
    assert_int_equal(bnk_bn_shape_validate(&bin.shape), BNK_OK);
    bin.x = malloc(in.numel * sizeof(float));
    bin.dy = malloc(in.numel * sizeof(float));
    float *mask = malloc(in.numel * sizeof(float));
    assert_true(bin.x && bin.dy && mask);
    bnk_test_relayout(n, c, hw, B, bin.x, 0, in.x);
    bnk_test_relayout(n, c, hw, B, bin.dy, 0, in.dy);
    static outputs ref, got, back; /* static: ~50 KiB each */
    outputs_alloc(&ref, in.numel);
    outputs_alloc(&got, in.numel);
    outputs_alloc(&back, in.numel);
    for (size_t t = 0; t < ncases; t++)
        for (int k = 0; k < bnk_bn_kernel_count(); k++) {
            const char *name = bnk_bn_kernel_at(k);
            char label[64];
            snprintf(label, sizeof label, "%s in nchw%dc (permuted to NCHW)", name, B);
            run(name, &cases[t], &in, NULL, &ref);
            bnk_test_relayout(n, c, hw, B, mask, 0, ref.y);
            run(name, &cases[t], &bin, mask, &got);
            bnk_test_relayout(n, c, hw, 0, back.y, B, got.y);
            bnk_test_relayout(n, c, hw, 0, back.dx, B, got.dx);
            bnk_test_relayout(n, c, hw, 0, back.yi, B, got.yi);
            memcpy(back.rm, got.rm, sizeof got.rm);
            memcpy(back.rv, got.rv, sizeof got.rv);
            memcpy(back.dg, got.dg, sizeof got.dg);
            memcpy(back.db, got.db, sizeof got.db);
            memcpy(back.saved, got.saved, sizeof got.saved);
            compare(label, &cases[t], &in, &ref, &back);
        }
    outputs_free(&ref);
    outputs_free(&got);
    outputs_free(&back);
    free(mask);
    free(bin.x);
    free(bin.dy);
    inputs_free(&in);
}

static void test_blocked_equals_nchw(void **state) {
    (void)state;
    bnk_case cases[64];
    size_t ncases = bnk_cases(cases, 64);
    check_blocked_vs_nchw(BNK_LAYOUT_NCHW16C, 3, 48, 5, 7, cases, ncases);
    check_blocked_vs_nchw(BNK_LAYOUT_NCHW8C, 2, 24, 4, 4, cases, ncases);
    check_blocked_vs_nchw(BNK_LAYOUT_NCHW16C, 4, 32, 1, 1, cases, ncases);   /* like NC */
    check_blocked_vs_nchw(BNK_LAYOUT_NCHW8C, 3, 8, 3, 5, cases, ncases);     /* like NHWC */
    check_blocked_vs_nchw(BNK_LAYOUT_NCHW16C, 6, 32, 28, 28, cases, ncases); /* threaded */
}

/* Team sizes other than the machine's on shapes that take each way the SIMD kernels share work
 * (src/bn/simd/bn_sweep_impl.h): whole channels, channels split over threads (alone, as
 * leftovers, in two groups), inference over values, interleaved by blocks and by rows (with
 * several channel groups), tall NC; with non-temporal stores, and in place too. */
static void test_threading_splits(void **state) {
    (void)state;
    bnk_case cases[64];
    size_t ncases = bnk_cases(cases, 64);
    static const int teams[] = {1, 3, 4, 10};
    g_teams = teams;
    g_nteams = sizeof teams / sizeof teams[0];
    bnk__bn_set_stream_limit(1); /* non-temporal stores on every output, as for huge tensors */
    check_shape(BNK_LAYOUT_NCHW, 2, 1, 200, 170, cases, ncases); /* C = 1: split */
    check_shape(BNK_LAYOUT_NCHW, 2, 7, 100, 90, cases, ncases);  /* whole + leftovers */
    check_shape(BNK_LAYOUT_NCHW, 2, 9, 200, 100, cases, ncases); /* 9 leftovers of 10 */
    check_shape(BNK_LAYOUT_NCHW, 1, 2, 200, 170, cases, ncases); /* few planes */
    check_shape(BNK_LAYOUT_NCHW, 8, 150, 5, 7, cases, ncases);   /* planar channel groups */
    check_shape(BNK_LAYOUT_NHWC, 2, 1, 200, 170, cases, ncases); /* one block: rows */
    check_shape(BNK_LAYOUT_NHWC, 4, 70, 30, 31, cases, ncases);  /* 2 blocks */
    check_shape(BNK_LAYOUT_NHWC, 2, 600, 7, 9, cases, ncases);   /* 3 channel groups */
    check_shape(BNK_LAYOUT_NC, 20000, 3, 1, 1, cases, ncases);   /* tall, narrow */
    check_shape(BNK_LAYOUT_NC, 256, 128, 1, 1, cases, ncases);   /* issue 5's E */
    check_shape(BNK_LAYOUT_NC, 100, 600, 1, 1, cases, ncases);
    /* blocked: 2 blocks, rows split (3 threads at most); 12 blocks, by blocks with 3 and 4
     * threads, rows with 10; 33 blocks in 2 groups, by blocks with 3 and 4, rows with 10
     * (shares that end inside an image) */
    check_shape(BNK_LAYOUT_NCHW16C, 4, 32, 30, 31, cases, ncases);
    check_shape(BNK_LAYOUT_NCHW8C, 8, 96, 9, 10, cases, ncases);
    check_shape(BNK_LAYOUT_NCHW16C, 4, 528, 12, 13, cases, ncases);
    bnk__bn_set_stream_limit(0);
    g_nteams = 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_match_reference),
        cmocka_unit_test(test_blocked_match_reference),
        cmocka_unit_test(test_blocked_equals_nchw),
        cmocka_unit_test(test_threading_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
