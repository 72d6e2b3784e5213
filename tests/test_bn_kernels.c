/* Every compiled kernel against the reference kernel, through the public API, on awkward shapes
 * (N = 2, C = 1, C not a multiple of any vector width or of the channel block, H*W = 1, large
 * H*W, shapes large enough to run threaded) in every layout and every case of bn_cases.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_cases.h"

typedef struct outputs {
    float *y, *dx, *yi, rm[80], rv[80], dg[80], db[80];
    double saved[BNK_BN_SAVED_FIELDS * 80];
} outputs;

typedef struct inputs {
    bnk_bn_shape shape;
    size_t numel;
    float *x, *dy, gamma[80], beta[80], rm[80], rv[80];
} inputs;

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

static void check_shape(bnk_layout layout, int64_t n, int64_t c, int64_t h, int64_t w,
                        const bnk_case *cases, size_t ncases) {
    inputs in = {.shape = {layout, n, c, h, w}};
    assert_int_equal(bnk_bn_shape_validate(&in.shape), BNK_OK);
    assert_true(c <= 80);
    in.numel = bnk_bn_shape_numel(&in.shape);
    bnk__bn_dims d = bnk__bn_dims_of(&in.shape);
    double *xd = malloc(2 * in.numel * sizeof(double));
    in.x = malloc(in.numel * sizeof(float));
    in.dy = malloc(in.numel * sizeof(float));
    assert_true(xd && in.x && in.dy);
    uint64_t rng = 0xC0FFEEu ^ (uint64_t)(n * 131 + c * 17 + h * 7 + w);
    bnk_case_fill_x(&d, xd, xd + in.numel, &rng);
    for (size_t i = 0; i < in.numel; i++) {
        in.x[i] = (float)xd[i];
        in.dy[i] = (float)bnk_test_normal(&rng);
    }
    for (int64_t k = 0; k < c; k++) {
        in.gamma[k] = (float)(0.5 + bnk_test_uniform(&rng));
        in.beta[k] = (float)bnk_test_normal(&rng);
    }
    bnk_case_fill_running((size_t)c, in.rm, in.rv);

    outputs ref, got;
    outputs_alloc(&ref, in.numel);
    outputs_alloc(&got, in.numel);
    for (size_t t = 0; t < ncases; t++) {
        run("ref", &cases[t], &in, NULL, &ref);
        for (int k = 0; k < bnk_bn_kernel_count(); k++) {
            const char *name = bnk_bn_kernel_at(k);
            if (strcmp(name, "ref") == 0) continue;
            run(name, &cases[t], &in, ref.y, &got);
            compare(name, &cases[t], &in, &ref, &got);
        }
    }
    outputs_free(&ref);
    outputs_free(&got);
    free(xd);
    free(in.x);
    free(in.dy);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
