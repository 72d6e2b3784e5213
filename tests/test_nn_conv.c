/* The oneDNN-backed convolution and max pooling of src/nn (bnk__conv_*, bnk__pool_*) against
 * naive double-precision loops written here; the naive convolution is itself checked by hand
 * on a tiny example and by central differences. Every convolution check runs with both layout
 * strategies of conv.c (BNK_CONV_FORMAT=plain and any).
 *
 * Tolerances. A convolution output (or gradient) is a sum of K float products. Computed in
 * float32 in any order (GEMM blocking, FMA, parallel reductions), its error is at most
 * K*u*sum|terms| with u = 2^-24 (Higham, recursive summation bound gamma_K), whatever oneDNN's
 * implementation; the reorders of the `any` layout are exact. So each element is checked as
 * |got - ref| <= (K + 2) * u * sum|terms|, the +2 covering the accumulation into pre-existing
 * dw/db (one more rounding, whose |pre-existing| is included in the sum). This is a rigorous
 * bound, tighter than a flat 1e-5 for the K (<= 300) used here. Max pooling forward is exact;
 * its backward sums at most ceil(k/s)^2 routed gradients, bounded the same way. Blocked
 * activation layouts (nChw8c/16c) are checked against the NCHW operator: identical results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_types.h>

#include "nn/nn_internal.h"
#include "test_util.h"

static const double U = 0x1.0p-24; /* float32 unit roundoff */
static const char *const FORMATS[] = {"plain", "any"};
enum { NFORMATS = 2 };

/* ---- Helpers ------------------------------------------------------------------------------- */

/* |got[i] - ref[i]| <= rtol * scale[i] for every i; reports the first violation. */
static void check_bound(const char *label, const float *got, const double *ref, const double *scale,
                        size_t count, double rtol) {
    for (size_t i = 0; i < count; i++) {
        double g = got[i], r = ref[i], bound = rtol * scale[i];
        if (!(fabs(g - r) <= bound))
            fail_msg("%s: index %zu: expected %.10g, got %.10g (|diff| %.3g > bound %.3g)", label,
                     i, r, g, fabs(g - r), bound);
    }
}

static float *falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static void fill_normal(float *p, size_t n, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) p[i] = (float)bnk_test_normal(rng);
}

static void to_double(double *d, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}

static void fill_nan(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* ---- Naive double-precision convolution ---------------------------------------------------- */

static bnk__conv_shape conv_shape(int64_t c, int64_t h, int64_t w, int64_t f, int64_t k, int64_t s,
                                  int64_t p) {
    bnk__conv_shape sh = {c, h, w, f, k, s, p, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1,
                          0, 0};
    return sh;
}

static size_t x_size(const bnk__conv_shape *sh, int64_t n) {
    return (size_t)(n * sh->in_c * sh->in_h * sh->in_w);
}
static size_t y_size(const bnk__conv_shape *sh, int64_t n) {
    return (size_t)(n * sh->out_c * sh->out_h * sh->out_w);
}
static size_t w_size(const bnk__conv_shape *sh) {
    return (size_t)(sh->out_c * sh->in_c * sh->k * sh->k);
}

/* Visits every (output, input, weight) index triple of the convolution: the single loop nest
 * from which the forward and both gradients are read. */
#define CONV_LOOP(sh, n, body)                                                                     \
    for (int64_t i_ = 0; i_ < (n); i_++)                                                           \
        for (int64_t f_ = 0; f_ < (sh)->out_c; f_++)                                               \
            for (int64_t oy_ = 0; oy_ < (sh)->out_h; oy_++)                                        \
                for (int64_t ox_ = 0; ox_ < (sh)->out_w; ox_++) {                                  \
                    const size_t yi =                                                              \
                        (size_t)(((i_ * (sh)->out_c + f_) * (sh)->out_h + oy_) * (sh)->out_w +     \
                                 ox_);                                                             \
                    const size_t bi = (size_t)f_;                                                  \
                    (void)bi;                                                                      \
                    for (int64_t c_ = 0; c_ < (sh)->in_c; c_++)                                    \
                        for (int64_t ky_ = 0; ky_ < (sh)->k; ky_++)                                \
                            for (int64_t kx_ = 0; kx_ < (sh)->k; kx_++) {                          \
                                const int64_t iy_ = oy_ * (sh)->stride - (sh)->pad + ky_;          \
                                const int64_t ix_ = ox_ * (sh)->stride - (sh)->pad + kx_;          \
                                if (iy_ < 0 || iy_ >= (sh)->in_h || ix_ < 0 || ix_ >= (sh)->in_w)  \
                                    continue;                                                      \
                                const size_t xi =                                                  \
                                    (size_t)(((i_ * (sh)->in_c + c_) * (sh)->in_h + iy_) *         \
                                                 (sh)->in_w +                                      \
                                             ix_);                                                 \
                                const size_t wi =                                                  \
                                    (size_t)(((f_ * (sh)->in_c + c_) * (sh)->k + ky_) * (sh)->k +  \
                                             kx_);                                                 \
                                body                                                               \
                            }                                                                      \
                }

/* y [n, F, OH, OW] = b + x (*) w; yabs = |b| + sum |x*w| (the scale of the float error). */
static void ref_conv_forward(const bnk__conv_shape *sh, int64_t n, double *y, double *yabs,
                             const double *x, const double *w, const double *b) {
    const size_t plane = (size_t)(sh->out_h * sh->out_w);
    for (size_t i = 0; i < y_size(sh, n); i++) {
        const double bias = b[(i / plane) % (size_t)sh->out_c];
        y[i] = bias;
        if (yabs) yabs[i] = fabs(bias);
    }
    CONV_LOOP(sh, n, {
        y[yi] += x[xi] * w[wi];
        if (yabs) yabs[yi] += fabs(x[xi] * w[wi]);
    })
}

/* Gradients of sum(dy * y): dx, dw, db WRITTEN here (zeroed first), with the sums of |terms|. */
static void ref_conv_backward(const bnk__conv_shape *sh, int64_t n, double *dx, double *dxabs,
                              double *dw, double *dwabs, double *db, double *dbabs,
                              const double *dy, const double *x, const double *w) {
    memset(dx, 0, x_size(sh, n) * sizeof(double));
    memset(dw, 0, w_size(sh) * sizeof(double));
    memset(db, 0, (size_t)sh->out_c * sizeof(double));
    memset(dxabs, 0, x_size(sh, n) * sizeof(double));
    memset(dwabs, 0, w_size(sh) * sizeof(double));
    memset(dbabs, 0, (size_t)sh->out_c * sizeof(double));
    const size_t plane = (size_t)(sh->out_h * sh->out_w);
    for (size_t i = 0; i < y_size(sh, n); i++) {
        const size_t f = (i / plane) % (size_t)sh->out_c;
        db[f] += dy[i];
        dbabs[f] += fabs(dy[i]);
    }
    CONV_LOOP(sh, n, {
        dx[xi] += dy[yi] * w[wi];
        dxabs[xi] += fabs(dy[yi] * w[wi]);
        dw[wi] += dy[yi] * x[xi];
        dwabs[wi] += fabs(dy[yi] * x[xi]);
    })
}

/* L = sum(g * conv(x, w, b)). */
static double ref_conv_loss(const bnk__conv_shape *sh, int64_t n, const double *g, const double *x,
                            const double *w, const double *b) {
    double *y = dalloc(y_size(sh, n));
    ref_conv_forward(sh, n, y, NULL, x, w, b);
    double l = 0;
    for (size_t i = 0; i < y_size(sh, n); i++) l += g[i] * y[i];
    free(y);
    return l;
}

/* ---- The naive reference, checked ---------------------------------------------------------- */

/* x 3x3 = 1..9, w 2x2 = [1 2; 3 4], b 0.5, stride 2, pad 1 -> 2x2, worked out by hand on the
 * zero-padded 5x5 input: windows [0 0; 0 1], [0 0; 2 3], [0 4; 0 7], [5 6; 8 9]. */
static const float HAND_X[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const float HAND_W[4] = {1, 2, 3, 4};
static const float HAND_B[1] = {0.5f};
static const double HAND_Y[4] = {4.5, 18.5, 36.5, 77.5};

static void test_ref_by_hand(void **state) {
    (void)state;
    const bnk__conv_shape sh = conv_shape(1, 3, 3, 1, 2, 2, 1);
    assert_int_equal(sh.out_h, 2);
    double x[9], w[4], b[1], y[4];
    to_double(x, HAND_X, 9);
    to_double(w, HAND_W, 4);
    to_double(b, HAND_B, 1);
    ref_conv_forward(&sh, 1, y, NULL, x, w, b);
    bnk_test_close_f64("naive forward, by hand", y, HAND_Y, 4, 0, 0);
}

/* Central differences of L = sum(g * y) against the naive backward. L is affine in each single
 * variable, so the difference quotient is exact up to double rounding (~1e-16 * sum|terms| /
 * h with h = 0.5): 1e-10 relative is ample, and any indexing slip gives O(1) errors. */
static void check_ref_gradients(const bnk__conv_shape *sh, int64_t n, uint64_t *rng) {
    const size_t nx = x_size(sh, n), nw = w_size(sh), nb = (size_t)sh->out_c, ny = y_size(sh, n);
    double *x = dalloc(nx), *w = dalloc(nw), *b = dalloc(nb), *g = dalloc(ny);
    double *dx = dalloc(nx), *dw = dalloc(nw), *db = dalloc(nb);
    double *ax = dalloc(nx), *aw = dalloc(nw), *ab = dalloc(nb);
    for (size_t i = 0; i < nx; i++) x[i] = bnk_test_normal(rng);
    for (size_t i = 0; i < nw; i++) w[i] = bnk_test_normal(rng);
    for (size_t i = 0; i < nb; i++) b[i] = bnk_test_normal(rng);
    for (size_t i = 0; i < ny; i++) g[i] = bnk_test_normal(rng);
    ref_conv_backward(sh, n, dx, ax, dw, aw, db, ab, g, x, w);
    const double h = 0.5;
    struct {
        const char *name;
        double *v, *grad;
        size_t count;
    } params[] = {{"naive dx vs central difference", x, dx, nx},
                  {"naive dw vs central difference", w, dw, nw},
                  {"naive db vs central difference", b, db, nb}};
    for (size_t p = 0; p < 3; p++) {
        double *fd = dalloc(params[p].count);
        for (size_t i = 0; i < params[p].count; i++) {
            const double keep = params[p].v[i];
            params[p].v[i] = keep + h;
            const double lp = ref_conv_loss(sh, n, g, x, w, b);
            params[p].v[i] = keep - h;
            const double lm = ref_conv_loss(sh, n, g, x, w, b);
            params[p].v[i] = keep;
            fd[i] = (lp - lm) / (2 * h);
        }
        bnk_test_close_f64(params[p].name, params[p].grad, fd, params[p].count, 1e-10, 1e-10);
        free(fd);
    }
    free(x), free(w), free(b), free(g), free(dx), free(dw), free(db), free(ax), free(aw), free(ab);
}

static void test_ref_gradients(void **state) {
    (void)state;
    uint64_t rng = 11;
    const bnk__conv_shape shapes[] = {
        conv_shape(2, 5, 4, 3, 3, 1, 1), /* k3 s1 p1, odd H  */
        conv_shape(1, 7, 6, 2, 3, 2, 0), /* s2, leftover row */
        conv_shape(2, 5, 5, 2, 5, 2, 2), /* k5 p2            */
        conv_shape(3, 4, 3, 2, 1, 1, 0), /* k1               */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_ref_gradients(&shapes[i], 2, &rng);
}

/* ---- Convolution against the reference ----------------------------------------------------- */

static void set_format(const char *fmt) {
    assert_int_equal(setenv("BNK_CONV_FORMAT", fmt, 1), 0);
}

static void test_conv_by_hand(void **state) {
    (void)state;
    for (int f = 0; f < NFORMATS; f++) {
        set_format(FORMATS[f]);
        const bnk__conv_shape sh = conv_shape(1, 3, 3, 1, 2, 2, 1);
        bnk__conv *cv;
        assert_int_equal(bnk__conv_create(&cv, &sh), BNK_OK);
        float y[4];
        assert_int_equal(bnk__conv_forward(cv, 1, y, HAND_X, HAND_W, HAND_B), BNK_OK);
        bnk_test_close_f32(FORMATS[f], y, HAND_Y, 4, 0, 0); /* small integers: exact */
        bnk__conv_destroy(cv);
    }
}

/* One forward + two backwards (with dx, then dx == NULL) at batch size n, on an existing
 * operator, checked against the reference: y written; dx written (pre-filled with NaN); dw and
 * db accumulated onto random pre-existing values, once per backward. */
static void check_conv_once(bnk__conv *cv, const bnk__conv_shape *sh, int64_t n, uint64_t *rng,
                            const char *label) {
    const size_t nx = x_size(sh, n), nw = w_size(sh), nb = (size_t)sh->out_c, ny = y_size(sh, n);
    float *x = falloc(nx), *w = falloc(nw), *b = falloc(nb), *y = falloc(ny), *dy = falloc(ny);
    float *dx = falloc(nx), *dw = falloc(nw), *db = falloc(nb);
    double *xd = dalloc(nx), *wd = dalloc(nw), *bd = dalloc(nb), *dyd = dalloc(ny);
    double *yr = dalloc(ny), *ya = dalloc(ny), *dxr = dalloc(nx), *dxa = dalloc(nx);
    double *dwr = dalloc(nw), *dwa = dalloc(nw), *dbr = dalloc(nb), *dba = dalloc(nb);
    fill_normal(x, nx, rng);
    fill_normal(w, nw, rng);
    fill_normal(b, nb, rng);
    fill_normal(dy, ny, rng);
    fill_normal(dw, nw, rng);
    fill_normal(db, nb, rng);
    fill_nan(y, ny);
    fill_nan(dx, nx);
    to_double(xd, x, nx);
    to_double(wd, w, nw);
    to_double(bd, b, nb);
    to_double(dyd, dy, ny);
    char what[160];

    assert_int_equal(bnk__conv_forward(cv, n, y, x, w, b), BNK_OK);
    ref_conv_forward(sh, n, yr, ya, xd, wd, bd);
    const double k_fwd = (double)(sh->in_c * sh->k * sh->k + 1);
    snprintf(what, sizeof what, "%s forward n=%lld", label, (long long)n);
    check_bound(what, y, yr, ya, ny, (k_fwd + 2) * U);

    ref_conv_backward(sh, n, dxr, dxa, dwr, dwa, dbr, dba, dyd, xd, wd);
    /* Expected accumulation after two backwards: pre + 2 * grad; the float error of each
     * backward is bounded by its terms plus the running |value|. */
    for (int pass = 0; pass < 2; pass++) {
        double *want_w = dalloc(nw), *scale_w = dalloc(nw), *want_b = dalloc(nb),
               *scale_b = dalloc(nb);
        for (size_t i = 0; i < nw; i++) {
            want_w[i] = dw[i] + dwr[i];
            scale_w[i] = fabs(dw[i]) + dwa[i];
        }
        for (size_t i = 0; i < nb; i++) {
            want_b[i] = db[i] + dbr[i];
            scale_b[i] = fabs(db[i]) + dba[i];
        }
        float *dx_arg = pass == 0 ? dx : NULL;
        assert_int_equal(bnk__conv_backward(cv, n, dx_arg, dw, db, dy, x, w), BNK_OK);
        const double k_w = (double)(n * sh->out_h * sh->out_w);
        snprintf(what, sizeof what, "%s dw (%s) n=%lld", label, pass ? "dx NULL" : "with dx",
                 (long long)n);
        check_bound(what, dw, want_w, scale_w, nw, (k_w + 2) * U);
        snprintf(what, sizeof what, "%s db (%s) n=%lld", label, pass ? "dx NULL" : "with dx",
                 (long long)n);
        check_bound(what, db, want_b, scale_b, nb, (k_w + 2) * U);
        free(want_w), free(scale_w), free(want_b), free(scale_b);
        if (pass == 0) {
            const double k_x = (double)(sh->out_c * sh->k * sh->k);
            snprintf(what, sizeof what, "%s dx n=%lld", label, (long long)n);
            check_bound(what, dx, dxr, dxa, nx, (k_x + 2) * U);
        }
    }
    free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db);
    free(xd), free(wd), free(bd), free(dyd), free(yr), free(ya), free(dxr), free(dxa);
    free(dwr), free(dwa), free(dbr), free(dba);
}

typedef struct conv_case {
    const char *name;
    bnk__conv_shape shape;
} conv_case;

static void test_conv_shapes(void **state) {
    (void)state;
    const conv_case cases[] = {
        {"C1 7x7 k3 s1 p1", conv_shape(1, 7, 7, 2, 3, 1, 1)},
        {"C3 9x7 k5 s2 p2", conv_shape(3, 9, 7, 4, 5, 2, 2)},
        {"C2 5x6 k1 s1 p0", conv_shape(2, 5, 6, 3, 1, 1, 0)},
        {"C2 8x5 k3 s2 p0 (leftover row)", conv_shape(2, 8, 5, 3, 3, 2, 0)},
        {"C4 6x5 k3 s1 p2 (pad > k/2)", conv_shape(4, 6, 5, 5, 3, 1, 2)},
        {"C5 11x9 k1 s2 p1", conv_shape(5, 11, 9, 3, 1, 2, 1)},
        {"C17 6x6 k3 s1 p1 -> 19 (odd channels)", conv_shape(17, 6, 6, 19, 3, 1, 1)},
        {"CNN conv1 1x28x28 -> 32", conv_shape(1, 28, 28, 32, 3, 1, 1)},
        {"CNN conv2 32x14x14 -> 64", conv_shape(32, 14, 14, 64, 3, 1, 1)},
    };
    const int64_t ns[] = {3, 1, 3}; /* the second n is new; the third hits the cache */
    for (int f = 0; f < NFORMATS; f++) {
        set_format(FORMATS[f]);
        uint64_t rng = 1234;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            bnk__conv *cv;
            assert_int_equal(bnk__conv_create(&cv, &cases[c].shape), BNK_OK);
            char label[120];
            snprintf(label, sizeof label, "[%s] %s", FORMATS[f], cases[c].name);
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                check_conv_once(cv, &cases[c].shape, ns[i], &rng, label);
            bnk__conv_destroy(cv);
        }
    }
}

/* More batch sizes than cache slots: entries are evicted and rebuilt, results stay right. */
static void test_conv_cache_eviction(void **state) {
    (void)state;
    const bnk__conv_shape sh = conv_shape(2, 6, 5, 3, 3, 1, 1);
    const int64_t ns[] = {1, 2, 3, 4, 5, 1, 6, 2, 5, 3};
    for (int f = 0; f < NFORMATS; f++) {
        set_format(FORMATS[f]);
        uint64_t rng = 99;
        bnk__conv *cv;
        assert_int_equal(bnk__conv_create(&cv, &sh), BNK_OK);
        char label[64];
        snprintf(label, sizeof label, "[%s] eviction", FORMATS[f]);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            check_conv_once(cv, &sh, ns[i], &rng, label);
        bnk__conv_destroy(cv);
    }
}

/* Backward for a batch size never seen by forward (the forward primitive is its hint). */
static void test_conv_backward_first(void **state) {
    (void)state;
    const bnk__conv_shape sh = conv_shape(3, 5, 7, 2, 3, 2, 1);
    for (int f = 0; f < NFORMATS; f++) {
        set_format(FORMATS[f]);
        uint64_t rng = 5;
        const int64_t n = 2;
        const size_t nx = x_size(&sh, n), nw = w_size(&sh), ny = y_size(&sh, n);
        float *x = falloc(nx), *w = falloc(nw), *dy = falloc(ny), *dx = falloc(nx),
              *dw = falloc(nw), db[2] = {0, 0};
        fill_normal(x, nx, &rng);
        fill_normal(w, nw, &rng);
        fill_normal(dy, ny, &rng);
        memset(dw, 0, nw * sizeof(float));
        double *xd = dalloc(nx), *wd = dalloc(nw), *dyd = dalloc(ny), *dxr = dalloc(nx),
               *dxa = dalloc(nx), *dwr = dalloc(nw), *dwa = dalloc(nw), dbr[2], dba[2];
        to_double(xd, x, nx);
        to_double(wd, w, nw);
        to_double(dyd, dy, ny);
        bnk__conv *cv;
        assert_int_equal(bnk__conv_create(&cv, &sh), BNK_OK);
        assert_int_equal(bnk__conv_backward(cv, n, dx, dw, db, dy, x, w), BNK_OK);
        ref_conv_backward(&sh, n, dxr, dxa, dwr, dwa, dbr, dba, dyd, xd, wd);
        const double k_w = (double)(n * sh.out_h * sh.out_w), k_x = (double)(2 * 9);
        check_bound(FORMATS[f], dx, dxr, dxa, nx, (k_x + 2) * U);
        check_bound(FORMATS[f], dw, dwr, dwa, nw, (k_w + 2) * U);
        check_bound(FORMATS[f], db, dbr, dba, 2, (k_w + 2) * U);
        bnk__conv_destroy(cv);
        free(x), free(w), free(dy), free(dx), free(dw);
        free(xd), free(wd), free(dyd), free(dxr), free(dxa), free(dwr), free(dwa);
    }
}

static void expect_conv_create(bnk__conv_shape sh, bnk_status want) {
    bnk__conv *cv = (bnk__conv *)&sh; /* any non-NULL value: must be reset to NULL */
    assert_int_equal(bnk__conv_create(&cv, &sh), want);
    assert_null(cv);
    assert_true(strlen(bnk_errmsg()) > 0);
}

static void test_conv_errors(void **state) {
    (void)state;
    const bnk__conv_shape ok = conv_shape(2, 6, 6, 3, 3, 1, 1);
    bnk__conv_shape sh;
    sh = ok, sh.in_c = 0;
    expect_conv_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.in_w = -1;
    expect_conv_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.out_c = 0;
    expect_conv_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.k = 0;
    expect_conv_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.stride = 0;
    expect_conv_create(sh, BNK_ERR_PARAM);
    sh = ok, sh.pad = -1;
    expect_conv_create(sh, BNK_ERR_PARAM);
    sh = conv_shape(1, 3, 3, 1, 3, 1, 0), sh.k = 4, sh.out_h = sh.out_w = 1; /* k > in + 2p */
    expect_conv_create(sh, BNK_ERR_PARAM);
    sh = ok, sh.out_h = 5; /* must be 6 */
    expect_conv_create(sh, BNK_ERR_SHAPE);
    sh = ok, sh.out_w = 7;
    expect_conv_create(sh, BNK_ERR_SHAPE);
    sh = conv_shape(1 << 30, 1 << 20, 1 << 20, 1, 1, 1, 0); /* 2^70 elements per sample */
    expect_conv_create(sh, BNK_ERR_OVERFLOW);
    sh = conv_shape(1, 1, 1, 1 << 24, 1 << 20, 1, 1 << 19); /* weights of 2^64 elements */
    expect_conv_create(sh, BNK_ERR_OVERFLOW);
    assert_int_equal(bnk__conv_create(NULL, &ok), BNK_ERR_NULL);
    bnk__conv *cv;
    assert_int_equal(bnk__conv_create(&cv, NULL), BNK_ERR_NULL);

    assert_int_equal(bnk__conv_create(&cv, &ok), BNK_OK);
    float x[2 * 36] = {0}, w[3 * 2 * 9] = {0}, b[3] = {0}, y[3 * 36], dy[3 * 36] = {0};
    float dx[2 * 36], dw[3 * 2 * 9] = {0}, db[3] = {0};
    assert_int_equal(bnk__conv_forward(cv, 0, y, x, w, b), BNK_ERR_SIZE);
    assert_int_equal(bnk__conv_forward(cv, -2, y, x, w, b), BNK_ERR_SIZE);
    assert_int_equal(bnk__conv_forward(cv, INT64_MAX, y, x, w, b), BNK_ERR_OVERFLOW);
    assert_int_equal(bnk__conv_forward(NULL, 1, y, x, w, b), BNK_ERR_NULL);
    assert_int_equal(bnk__conv_forward(cv, 1, NULL, x, w, b), BNK_ERR_NULL);
    assert_int_equal(bnk__conv_forward(cv, 1, y, x, w, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk__conv_backward(cv, 0, dx, dw, db, dy, x, w), BNK_ERR_SIZE);
    assert_int_equal(bnk__conv_backward(cv, 1, dx, NULL, db, dy, x, w), BNK_ERR_NULL);
    assert_int_equal(bnk__conv_backward(cv, 1, dx, dw, db, NULL, x, w), BNK_ERR_NULL);
    assert_int_equal(bnk__conv_backward(NULL, 1, dx, dw, db, dy, x, w), BNK_ERR_NULL);
    /* the operator still works after the rejected calls */
    assert_int_equal(bnk__conv_forward(cv, 1, y, x, w, b), BNK_OK);
    assert_int_equal(bnk__conv_backward(cv, 1, dx, dw, db, dy, x, w), BNK_OK);
    bnk__conv_destroy(cv);
    bnk__conv_destroy(NULL);

    /* oneDNN failures map to NOMEM / UNSUPPORTED with the call named */
    assert_int_equal(bnk__dnnl_fail(dnnl_out_of_memory, "dnnl_memory_create"), BNK_ERR_NOMEM);
    assert_non_null(strstr(bnk_errmsg(), "dnnl_memory_create"));
    assert_int_equal(bnk__dnnl_fail(dnnl_unimplemented, "dnnl_primitive_desc_create"),
                     BNK_ERR_UNSUPPORTED);
    assert_non_null(strstr(bnk_errmsg(), "dnnl_primitive_desc_create"));
    assert_non_null(bnk__dnnl_engine());
    assert_non_null(bnk__dnnl_stream());
}

/* ---- Max pooling --------------------------------------------------------------------------- */

static bnk__pool_shape pool_shape(int64_t c, int64_t h, int64_t w, int64_t k, int64_t s,
                                  int64_t max_batch) {
    bnk__pool_shape sh = {c, h, w, k, s, (h - k) / s + 1, (w - k) / s + 1, max_batch, 0};
    return sh;
}

/* Distinct values (a shuffled ramp, exact in float): no ties, so the argmax is unique. */
static void fill_distinct(float *p, size_t n, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) p[i] = ((float)i - (float)(n / 2)) * 0.25f;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(bnk_test_next(rng) % i);
        float t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* y = window max; dx = dy routed to each window's argmax (written), dxabs = sum |routed|. */
static void ref_pool(const bnk__pool_shape *sh, int64_t n, double *y, double *dx, double *dxabs,
                     const float *x, const float *dy) {
    const size_t nx = (size_t)(n * sh->c * sh->in_h * sh->in_w);
    memset(dx, 0, nx * sizeof(double));
    memset(dxabs, 0, nx * sizeof(double));
    for (int64_t i = 0; i < n * sh->c; i++) {
        const float *xp = x + i * sh->in_h * sh->in_w;
        for (int64_t oy = 0; oy < sh->out_h; oy++)
            for (int64_t ox = 0; ox < sh->out_w; ox++) {
                int64_t best = -1;
                for (int64_t ky = 0; ky < sh->k; ky++)
                    for (int64_t kx = 0; kx < sh->k; kx++) {
                        const int64_t at = (oy * sh->stride + ky) * sh->in_w + ox * sh->stride + kx;
                        if (best < 0 || xp[at] > xp[best]) best = at;
                    }
                const int64_t yi = (i * sh->out_h + oy) * sh->out_w + ox;
                y[yi] = xp[best];
                dx[i * sh->in_h * sh->in_w + best] += dy[yi];
                dxabs[i * sh->in_h * sh->in_w + best] += fabs(dy[yi]);
            }
    }
}

static void check_pool_once(bnk__pool *pl, const bnk__pool_shape *sh, int64_t n, uint64_t *rng,
                            const char *label) {
    const size_t nx = (size_t)(n * sh->c * sh->in_h * sh->in_w);
    const size_t ny = (size_t)(n * sh->c * sh->out_h * sh->out_w);
    float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
    float *x2 = falloc(nx), *y2 = falloc(ny);
    double *yr = dalloc(ny), *dxr = dalloc(nx), *dxa = dalloc(nx);
    double *yr2 = dalloc(ny), *dxr2 = dalloc(nx), *dxa2 = dalloc(nx);
    fill_distinct(x, nx, rng);
    fill_distinct(x2, nx, rng);
    fill_normal(dy, ny, rng);
    fill_nan(y, ny);
    fill_nan(dx, nx);
    ref_pool(sh, n, yr, dxr, dxa, x, dy);
    ref_pool(sh, n, yr2, dxr2, dxa2, x2, dy);
    char what[160];
    /* training forward, then an inference forward on other data (must not disturb the
     * workspace), then backward: routed by the training forward's argmax. */
    assert_int_equal(bnk__pool_forward(pl, n, y, x, true), BNK_OK);
    snprintf(what, sizeof what, "%s forward train n=%lld", label, (long long)n);
    bnk_test_close_f32(what, y, yr, ny, 0, 0); /* max is exact */
    assert_int_equal(bnk__pool_forward(pl, n, y2, x2, false), BNK_OK);
    snprintf(what, sizeof what, "%s forward inference n=%lld", label, (long long)n);
    bnk_test_close_f32(what, y2, yr2, ny, 0, 0);
    assert_int_equal(bnk__pool_backward(pl, n, dx, dy), BNK_OK);
    const double k =
        (double)(((sh->k + sh->stride - 1) / sh->stride) * ((sh->k + sh->stride - 1) / sh->stride));
    snprintf(what, sizeof what, "%s backward n=%lld", label, (long long)n);
    check_bound(what, dx, dxr, dxa, nx, (k + 2) * U);
    free(x), free(y), free(dy), free(dx), free(x2), free(y2);
    free(yr), free(dxr), free(dxa), free(yr2), free(dxr2), free(dxa2);
}

static void test_pool_shapes(void **state) {
    (void)state;
    const struct {
        const char *name;
        bnk__pool_shape shape;
    } cases[] = {
        {"C1 7x7 k2 s2 (leftover)", pool_shape(1, 7, 7, 2, 2, 3)},
        {"C3 9x8 k3 s2 (overlap)", pool_shape(3, 9, 8, 3, 2, 3)},
        {"C2 6x5 k3 s1 (overlap)", pool_shape(2, 6, 5, 3, 1, 3)},
        {"C2 7x9 k2 s3 (gaps)", pool_shape(2, 7, 9, 2, 3, 3)},
        {"C1 5x5 k5 (global)", pool_shape(1, 5, 5, 5, 1, 3)},
        {"CNN pool1 32x28x28", pool_shape(32, 28, 28, 2, 2, 3)},
        {"CNN pool2 64x14x14", pool_shape(64, 14, 14, 2, 2, 3)},
    };
    const int64_t ns[] = {3, 1, 2, 3};
    uint64_t rng = 77;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bnk__pool *pl;
        assert_int_equal(bnk__pool_create(&pl, &cases[c].shape), BNK_OK);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            check_pool_once(pl, &cases[c].shape, ns[i], &rng, cases[c].name);
        bnk__pool_destroy(pl);
    }
}

static void test_pool_cache_eviction(void **state) {
    (void)state;
    const bnk__pool_shape sh = pool_shape(3, 6, 7, 2, 2, 8);
    const int64_t ns[] = {1, 2, 3, 4, 5, 8, 1, 7, 2};
    uint64_t rng = 3;
    bnk__pool *pl;
    assert_int_equal(bnk__pool_create(&pl, &sh), BNK_OK);
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        check_pool_once(pl, &sh, ns[i], &rng, "eviction");
    bnk__pool_destroy(pl);
}

static void expect_pool_create(bnk__pool_shape sh, bnk_status want) {
    bnk__pool *pl = (bnk__pool *)&sh;
    assert_int_equal(bnk__pool_create(&pl, &sh), want);
    assert_null(pl);
    assert_true(strlen(bnk_errmsg()) > 0);
}

static void test_pool_errors(void **state) {
    (void)state;
    const bnk__pool_shape ok = pool_shape(2, 6, 6, 2, 2, 3);
    bnk__pool_shape sh;
    sh = ok, sh.c = 0;
    expect_pool_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.k = 0;
    expect_pool_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.max_batch = 0;
    expect_pool_create(sh, BNK_ERR_SIZE);
    sh = ok, sh.stride = 0;
    expect_pool_create(sh, BNK_ERR_PARAM);
    sh = pool_shape(2, 6, 6, 2, 2, 3), sh.k = 7, sh.out_h = sh.out_w = 1; /* window > input */
    expect_pool_create(sh, BNK_ERR_PARAM);
    sh = ok, sh.out_h = 2;
    expect_pool_create(sh, BNK_ERR_SHAPE);
    sh = pool_shape(1 << 30, 1 << 20, 1 << 20, 1, 1, 1);
    expect_pool_create(sh, BNK_ERR_OVERFLOW);
    assert_int_equal(bnk__pool_create(NULL, &ok), BNK_ERR_NULL);

    bnk__pool *pl;
    assert_int_equal(bnk__pool_create(&pl, &ok), BNK_OK);
    float x[4 * 72] = {0}, y[4 * 18], dy[4 * 18] = {0}, dx[4 * 72];
    assert_int_equal(bnk__pool_backward(pl, 1, dx, dy), BNK_ERR_SHAPE);   /* no forward yet */
    assert_int_equal(bnk__pool_forward(pl, 4, y, x, true), BNK_ERR_SIZE); /* > max_batch */
    assert_int_equal(bnk__pool_forward(pl, 4, y, x, false), BNK_ERR_SIZE);
    assert_int_equal(bnk__pool_forward(pl, 0, y, x, true), BNK_ERR_SIZE);
    assert_int_equal(bnk__pool_forward(pl, 1, NULL, x, true), BNK_ERR_NULL);
    assert_int_equal(bnk__pool_forward(NULL, 1, y, x, true), BNK_ERR_NULL);
    assert_int_equal(bnk__pool_forward(pl, 2, y, x, true), BNK_OK);
    assert_int_equal(bnk__pool_backward(pl, 4, dx, dy), BNK_ERR_SIZE);
    assert_int_equal(bnk__pool_backward(pl, 3, dx, dy), BNK_ERR_SHAPE); /* last forward: 2 */
    assert_int_equal(bnk__pool_backward(pl, 2, NULL, dy), BNK_ERR_NULL);
    assert_int_equal(bnk__pool_forward(pl, 3, y, x, false), BNK_OK); /* inference: ws kept */
    assert_int_equal(bnk__pool_backward(pl, 2, dx, dy), BNK_OK);
    bnk__pool_destroy(pl);
    bnk__pool_destroy(NULL);
}

/* ---- Blocked layouts ------------------------------------------------------------------------ */

static void expect_same(const char *what, const float *got, const float *want, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s: index %zu: %.9g, NCHW gives %.9g", what, i, got[i], want[i]);
}

/* bnk__block / bnk__unblock against the definition, both directions, blocks 8 and 16. */
static void test_block_conversions(void **state) {
    (void)state;
    const int64_t n = 3, C = 32, hw = 5 * 7;
    const size_t count = (size_t)(n * C * hw);
    float *x = falloc(count), *want = falloc(count), *got = falloc(count), *back = falloc(count);
    for (size_t i = 0; i < count; i++) x[i] = (float)i;
    for (int b = 8; b <= 16; b += 8) {
        bnk_test_relayout(n, C, hw, b, want, 0, x);
        bnk__block(n, C, hw, b, got, x);
        expect_same("block", got, want, count);
        bnk__unblock(n, C, hw, b, back, got);
        expect_same("unblock", back, x, count);
    }
    free(x), free(want), free(got), free(back);
}

/* A convolution whose activations are blocked computes exactly what the NCHW one does: in either
 * strategy the same primitive runs and the layouts only change the (exact) reorders. Forward, dx,
 * dw and db for every combination of input and output blocks, and the layout oneDNN prefers. */
static void test_conv_blocked(void **state) {
    (void)state;
    const struct {
        bnk__conv_shape shape;
        int in_block, out_block;
    } cases[] = {
        {conv_shape(1, 28, 28, 32, 3, 1, 1), 0, 16},   /* the CNN's conv1 */
        {conv_shape(32, 14, 14, 64, 3, 1, 1), 16, 16}, /* its conv2 */
        {conv_shape(16, 6, 5, 16, 3, 2, 1), 16, 0},    {conv_shape(16, 6, 6, 24, 1, 1, 0), 8, 8},
        {conv_shape(3, 7, 7, 16, 3, 1, 1), 0, 8},
    };
    const int64_t n = 3;
    for (int f = 0; f < NFORMATS; f++) {
        set_format(FORMATS[f]);
        uint64_t rng = 4321;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            bnk__conv_shape plain = cases[c].shape, blk = plain;
            blk.in_block = cases[c].in_block;
            blk.out_block = cases[c].out_block;
            const int64_t xhw = plain.in_h * plain.in_w, yhw = plain.out_h * plain.out_w;
            const size_t nx = x_size(&plain, n), ny = y_size(&plain, n), nw = w_size(&plain);
            float *x = falloc(nx), *w = falloc(nw), *b = falloc((size_t)plain.out_c);
            float *dy = falloc(ny), *xb = falloc(nx), *dyb = falloc(ny);
            float *y0 = falloc(ny), *y1 = falloc(ny), *t = falloc(nx > ny ? nx : ny);
            float *dx0 = falloc(nx), *dx1 = falloc(nx), *dw0 = falloc(nw), *dw1 = falloc(nw);
            float *db0 = falloc((size_t)plain.out_c), *db1 = falloc((size_t)plain.out_c);
            fill_normal(x, nx, &rng), fill_normal(w, nw, &rng), fill_normal(dy, ny, &rng);
            fill_normal(b, (size_t)plain.out_c, &rng);
            memset(dw0, 0, nw * sizeof(float)), memset(dw1, 0, nw * sizeof(float));
            memset(db0, 0, (size_t)plain.out_c * sizeof(float));
            memset(db1, 0, (size_t)plain.out_c * sizeof(float));
            bnk_test_relayout(n, plain.in_c, xhw, blk.in_block, xb, 0, x);
            bnk_test_relayout(n, plain.out_c, yhw, blk.out_block, dyb, 0, dy);
            bnk__conv *c0, *c1;
            assert_int_equal(bnk__conv_create(&c0, &plain), BNK_OK);
            assert_int_equal(bnk__conv_create(&c1, &blk), BNK_OK);
            assert_int_equal(bnk__conv_forward(c0, n, y0, x, w, b), BNK_OK);
            assert_int_equal(bnk__conv_forward(c1, n, y1, xb, w, b), BNK_OK);
            assert_int_equal(bnk__conv_backward(c0, n, dx0, dw0, db0, dy, x, w), BNK_OK);
            assert_int_equal(bnk__conv_backward(c1, n, dx1, dw1, db1, dyb, xb, w), BNK_OK);
            char what[120];
            snprintf(what, sizeof what, "[%s] case %zu y", FORMATS[f], c);
            bnk_test_relayout(n, plain.out_c, yhw, 0, t, blk.out_block, y1);
            expect_same(what, t, y0, ny);
            snprintf(what, sizeof what, "[%s] case %zu dx", FORMATS[f], c);
            bnk_test_relayout(n, plain.in_c, xhw, 0, t, blk.in_block, dx1);
            expect_same(what, t, dx0, nx);
            snprintf(what, sizeof what, "[%s] case %zu dw", FORMATS[f], c);
            expect_same(what, dw1, dw0, nw);
            snprintf(what, sizeof what, "[%s] case %zu db", FORMATS[f], c);
            expect_same(what, db1, db0, (size_t)plain.out_c);

            int pref = -1;
            assert_int_equal(bnk__conv_preferred_block(&plain, n, &pref), BNK_OK);
            if (f == 0)
                assert_int_equal(pref, 0); /* plain: NCHW everywhere */
            else
                assert_true(pref == 0 || (pref % 8 == 0 && plain.out_c % pref == 0));
            bnk__conv_destroy(c0), bnk__conv_destroy(c1);
            free(x), free(w), free(b), free(dy), free(xb), free(dyb), free(y0), free(y1), free(t);
            free(dx0), free(dx1), free(dw0), free(dw1), free(db0), free(db1);
        }
    }
    bnk__conv_shape sh = conv_shape(32, 14, 14, 64, 3, 1, 1);
    sh.in_block = 12;
    expect_conv_create(sh, BNK_ERR_PARAM);
    sh = conv_shape(20, 6, 6, 16, 3, 1, 1), sh.in_block = 16; /* 20 channels: no 16-block */
    expect_conv_create(sh, BNK_ERR_PARAM);
    sh = conv_shape(16, 6, 6, 8, 3, 1, 1), sh.out_block = 16;
    expect_conv_create(sh, BNK_ERR_PARAM);
}

/* Blocked pooling is NCHW pooling up to the layout (max is exact, routing too). */
static void test_pool_blocked(void **state) {
    (void)state;
    const int64_t n = 3;
    uint64_t rng = 5;
    for (int b = 8; b <= 16; b += 8) {
        bnk__pool_shape plain = pool_shape(32, 9, 8, 3, 2, n), blk = plain;
        blk.block = b;
        const int64_t xhw = plain.in_h * plain.in_w, yhw = plain.out_h * plain.out_w;
        const size_t nx = (size_t)(n * plain.c * xhw), ny = (size_t)(n * plain.c * yhw);
        float *x = falloc(nx), *xb = falloc(nx), *dy = falloc(ny), *dyb = falloc(ny);
        float *y0 = falloc(ny), *y1 = falloc(ny), *dx0 = falloc(nx), *dx1 = falloc(nx);
        float *t = falloc(nx);
        fill_distinct(x, nx, &rng);
        fill_normal(dy, ny, &rng);
        bnk_test_relayout(n, plain.c, xhw, b, xb, 0, x);
        bnk_test_relayout(n, plain.c, yhw, b, dyb, 0, dy);
        bnk__pool *p0, *p1;
        assert_int_equal(bnk__pool_create(&p0, &plain), BNK_OK);
        assert_int_equal(bnk__pool_create(&p1, &blk), BNK_OK);
        assert_int_equal(bnk__pool_forward(p0, n, y0, x, true), BNK_OK);
        assert_int_equal(bnk__pool_forward(p1, n, y1, xb, true), BNK_OK);
        assert_int_equal(bnk__pool_backward(p0, n, dx0, dy), BNK_OK);
        assert_int_equal(bnk__pool_backward(p1, n, dx1, dyb), BNK_OK);
        bnk_test_relayout(n, plain.c, yhw, 0, t, b, y1);
        expect_same("blocked pool y", t, y0, ny);
        bnk_test_relayout(n, plain.c, xhw, 0, t, b, dx1);
        expect_same("blocked pool dx", t, dx0, nx);
        bnk__pool_destroy(p0), bnk__pool_destroy(p1);
        free(x), free(xb), free(dy), free(dyb), free(y0), free(y1), free(dx0), free(dx1), free(t);
    }
    bnk__pool_shape sh = pool_shape(20, 6, 6, 2, 2, 3);
    sh.block = 16;
    expect_pool_create(sh, BNK_ERR_PARAM);
    sh.block = 4;
    expect_pool_create(sh, BNK_ERR_PARAM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_by_hand),         cmocka_unit_test(test_ref_gradients),
        cmocka_unit_test(test_conv_by_hand),        cmocka_unit_test(test_conv_shapes),
        cmocka_unit_test(test_conv_cache_eviction), cmocka_unit_test(test_conv_backward_first),
        cmocka_unit_test(test_conv_errors),         cmocka_unit_test(test_pool_shapes),
        cmocka_unit_test(test_pool_cache_eviction), cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_block_conversions),   cmocka_unit_test(test_conv_blocked),
        cmocka_unit_test(test_pool_blocked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
