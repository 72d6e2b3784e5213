/* The nn part: operators against double-precision loops, the whole model's gradient against
 * finite differences, the optimisers by hand, and model-spec errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/nn.h"
#include "nn/layer.h"
#include "test_util.h"

static void fill(float *v, size_t n, uint64_t *rng, double scale) {
    for (size_t i = 0; i < n; i++) v[i] = (float)(scale * bnk_test_normal(rng));
}

static void test_dense_against_loops(void **state) {
    (void)state;
    enum { N = 5, IN = 7, OUT = 3 };
    float x[N * IN], w[OUT * IN], b[OUT], y[N * OUT], dy[N * OUT], dx[N * IN], dw[OUT * IN],
        db[OUT];
    uint64_t rng = 1;
    fill(x, N * IN, &rng, 1.0);
    fill(w, OUT * IN, &rng, 0.5);
    fill(b, OUT, &rng, 1.0);
    fill(dy, N * OUT, &rng, 1.0);
    for (int i = 0; i < OUT * IN; i++) dw[i] = 0.5f; /* backward accumulates */
    for (int i = 0; i < OUT; i++) db[i] = -0.25f;
    bnk__dense *op;
    assert_int_equal(bnk__dense_create(&op, IN, OUT), BNK_OK);
    assert_int_equal(bnk__dense_forward(op, N, y, x, w, b), BNK_OK);
    bnk__dense_destroy(op);
    assert_int_equal(bnk__dense_backward(N, IN, OUT, dx, dw, db, dy, x, w, true), BNK_OK);
    double ry[N * OUT], rdx[N * IN], rdw[OUT * IN], rdb[OUT];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double s = b[o];
            for (int i = 0; i < IN; i++) s += (double)x[n * IN + i] * w[o * IN + i];
            ry[n * OUT + o] = s;
        }
    for (int o = 0; o < OUT; o++) {
        rdb[o] = -0.25;
        for (int n = 0; n < N; n++) rdb[o] += dy[n * OUT + o];
        for (int i = 0; i < IN; i++) {
            rdw[o * IN + i] = 0.5;
            for (int n = 0; n < N; n++) rdw[o * IN + i] += (double)dy[n * OUT + o] * x[n * IN + i];
        }
    }
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IN; i++) {
            rdx[n * IN + i] = 0;
            for (int o = 0; o < OUT; o++)
                rdx[n * IN + i] += (double)dy[n * OUT + o] * w[o * IN + i];
        }
    /* float GEMM over <= 7 terms of size ~1: a few float roundings */
    bnk_test_close_f32("dense y", y, ry, N * OUT, 1e-5, 1e-5);
    bnk_test_close_f32("dense dx", dx, rdx, N * IN, 1e-5, 1e-5);
    bnk_test_close_f32("dense dw", dw, rdw, OUT * IN, 1e-5, 1e-5);
    bnk_test_close_f32("dense db", db, rdb, OUT, 1e-5, 1e-5);
    /* dx NULL: only the parameter gradients */
    assert_int_equal(bnk__dense_backward(N, IN, OUT, NULL, dw, db, dy, x, w, true), BNK_OK);
    /* accumulate false: dw and db are written, whatever they held (NaN here) */
    for (int i = 0; i < OUT * IN; i++) dw[i] = NAN;
    for (int i = 0; i < OUT; i++) db[i] = NAN;
    assert_int_equal(bnk__dense_backward(N, IN, OUT, NULL, dw, db, dy, x, w, false), BNK_OK);
    for (int o = 0; o < OUT; o++) {
        rdb[o] -= -0.25;
        for (int i = 0; i < IN; i++) rdw[o * IN + i] -= 0.5;
    }
    bnk_test_close_f32("dense dw (written)", dw, rdw, OUT * IN, 1e-5, 1e-5);
    bnk_test_close_f32("dense db (written)", db, rdb, OUT, 1e-5, 1e-5);
}

static void test_softmax_xent(void **state) {
    (void)state;
    const float logits[2 * 3] = {1.0f, 2.0f, 3.0f, 1e4f, -1e4f, 0.0f};
    const int32_t labels[2] = {0, 1};
    float d[6];
    int64_t correct;
    double loss = bnk__softmax_xent(2, 3, d, &correct, logits, labels);
    /* row 0: -log softmax_0 = log(e^1+e^2+e^3) - 1; row 1: 2e4 + log(1 + e^-1e4 + e^-2e4) */
    double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 1.0, l1 = 2e4;
    double want = (l0 + l1) / 2.0;
    bnk_test_close_f64("loss", &loss, &want, 1, 1e-9, 1e-12);
    assert_int_equal(correct, 0); /* argmaxes 2 and 0 */
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int k = 0; k < 3; k++) s += d[r * 3 + k];
        assert_true(fabs(s) < 1e-7); /* softmax - onehot sums to 0 */
    }
    double want_d0 = (exp(1.0) / (exp(1.0) + exp(2.0) + exp(3.0)) - 1.0) / 2.0;
    bnk_test_close_f32("dlogits[0]", d, &want_d0, 1, 1e-7, 1e-6);
}

static void test_relu_dropout(void **state) {
    (void)state;
    float x[1000], y[1000], dy[1000], dx[1000];
    uint8_t mask[1000];
    uint64_t rng = 3, drng = 4;
    fill(x, 1000, &rng, 1.0);
    fill(dy, 1000, &rng, 1.0);
    bnk__relu_forward(1000, y, x);
    bnk__relu_backward(1000, dx, dy, y);
    for (int i = 0; i < 1000; i++) {
        assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
        assert_true(dx[i] == (x[i] > 0 ? dy[i] : 0.0f));
    }
    bnk__dropout_forward(1000, 0.25, &drng, mask, y, x);
    bnk__dropout_backward(1000, 0.25, dx, dy, mask);
    int kept = 0;
    for (int i = 0; i < 1000; i++) {
        kept += mask[i];
        assert_true(y[i] == (mask[i] ? x[i] * (float)(1.0 / 0.75) : 0.0f));
        assert_true(dx[i] == (mask[i] ? dy[i] * (float)(1.0 / 0.75) : 0.0f));
    }
    assert_true(kept > 700 && kept < 800); /* Binomial(1000, 0.75): 750 +- 14 */
}

/* L = mean cross-entropy of a training forward, as a function of the parameter arena. */
static double model_loss(bnk_model *m, const float *x, const int32_t *labels, int64_t n) {
    double loss;
    assert_int_equal(bnk_model_forward(m, x, n, true), BNK_OK);
    assert_int_equal(bnk_model_loss(m, labels, n, &loss, NULL), BNK_OK);
    return loss;
}

/* Every parameter's gradient against central differences of the float model. Float forward
 * passes limit the difference quotient to ~1e-6/h absolute noise; with h = 1e-3*max(1,|p|),
 * 2e-3 absolute plus 3% relative separates right from wrong gradients. A ReLU (or maxpool) kink
 * crossed within +-h spoils a quotient, which happens in models with hundreds of ReLU inputs, so
 * where the quotient at h disagrees it is taken again at h/4, where a crossing is four times less
 * likely: both estimate the true derivative, so a wrong gradient still fails. */
static void gradcheck_model(const char *spec, int64_t c, int64_t h, int64_t w, int64_t n) {
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = spec;
    mc.in_c = c;
    mc.in_h = h;
    mc.in_w = w;
    mc.max_batch = n;
    mc.seed = 7;
    bnk_model *m;
    assert_int_equal(bnk_model_create(&m, &mc), BNK_OK);
    const size_t feats = (size_t)(c * h * w), P = bnk_model_num_params(m);
    float *x = malloc((size_t)n * feats * sizeof(float));
    int32_t labels[64];
    uint64_t rng = 11;
    fill(x, (size_t)n * feats, &rng, 1.0);
    for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)(i % bnk_model_num_outputs(m));
    float *p = bnk_model_params(m);
    /* move BN's gamma/beta off 1/0 so that their gradients are generic */
    for (size_t i = 0; i < P; i++) p[i] += (float)(0.1 * bnk_test_normal(&rng));
    model_loss(m, x, labels, n);
    bnk_model_zero_grad(m);
    assert_int_equal(bnk_model_backward(m, n), BNK_OK);
    double *analytic = malloc(P * sizeof(double)), *numeric = malloc(P * sizeof(double));
    for (size_t i = 0; i < P; i++) analytic[i] = bnk_model_grads(m)[i];
    for (size_t i = 0; i < P; i++) {
        const float keep = p[i];
        for (float hh = 1e-3f * fmaxf(1.0f, fabsf(keep)), tries = 0; tries < 2; hh /= 4, tries++) {
            p[i] = keep + hh;
            double lp = model_loss(m, x, labels, n);
            p[i] = keep - hh;
            double lm = model_loss(m, x, labels, n);
            p[i] = keep;
            numeric[i] = (lp - lm) / (2.0 * (double)hh);
            if (fabs(numeric[i] - analytic[i]) <= 2e-3 + 3e-2 * fabs(numeric[i])) break;
        }
    }
    char label[96];
    snprintf(label, sizeof label, "model %s gradient", spec);
    bnk_test_close_f64(label, analytic, numeric, P, 2e-3, 3e-2);
    free(analytic);
    free(numeric);
    free(x);
    bnk_model_destroy(m);
}

static void test_model_gradients(void **state) {
    (void)state;
    gradcheck_model("dense:6,relu,bn,dense:3", 4, 1, 1, 8);
    gradcheck_model("dense:5,bn,relu,dropout:0,dense:4,bn,dense:3", 1, 2, 3, 6);
    /* no maxpool here: a perturbation of one conv weight moves every window of its channel,
     * so near-ties switch argmax often enough to spoil difference quotients; max pooling is
     * checked against loops in test_nn_conv and end to end against PyTorch in test_nn_torch */
    gradcheck_model("conv:3:3,bn,relu,flatten,dense:3", 2, 6, 6, 4);
    gradcheck_model("conv:2:3:2:1,relu,conv:2:1,bn,dense:3", 1, 7, 5, 4);
    /* channels in multiples of 16: blocked activations (where oneDNN picks them), the relu
     * fused into BN, a flatten from the blocked layout, and a blocked run that meets a dense
     * layer directly (kept NCHW) */
    gradcheck_model("conv:16:3,bn,relu,dropout:0,conv:16:1,bn,flatten,dense:3", 2, 5, 5, 4);
    gradcheck_model("conv:16:3,bn,relu,dense:3", 1, 5, 5, 4);
}

/* Where blocked layouts are used: a run from a convolution to a flatten, not a run that meets a
 * dense layer directly, and nowhere under BNK_CONV_FORMAT=plain; a bn,relu pair is fused. */
static void test_layouts(void **state) {
    (void)state;
    const struct {
        const char *spec, *format;
        const char *want[5]; /* per layer: b blocked, f a relu fused into bn */
    } cases[] = {
        {"conv:16:3,bn,relu,flatten,dense:3", "any", {"b", "b", "bf", "", ""}},
        {"conv:16:3,bn,relu,dense:3", "any", {"", "", "f", "", ""}},
        {"conv:16:3,bn,relu,flatten,dense:3", "plain", {"", "", "f", "", ""}},
        {"conv:16:3,relu,bn,flatten,dense:3", "any", {"b", "b", "b", "", ""}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(setenv("BNK_CONV_FORMAT", cases[c].format, 1), 0);
        bnk_model_config mc = bnk_model_config_default();
        mc.spec = cases[c].spec;
        mc.in_h = mc.in_w = 6;
        mc.max_batch = 4;
        bnk_model *m;
        assert_int_equal(bnk_model_create(&m, &mc), BNK_OK);
        for (int i = 0; i < bnk_model_layer_count(m); i++) {
            char line[160];
            assert_int_equal(bnk_model_layer_describe(m, i, line, sizeof line), BNK_OK);
            const char *want = cases[c].want[i];
            const bool blocked = strstr(line, "  nChw16c") || strstr(line, "  nChw8c");
            const bool fused = strstr(line, "  (in bn)") != NULL;
            if (blocked != (strchr(want, 'b') != NULL) || fused != (strchr(want, 'f') != NULL))
                fail_msg("%s [%s] layer %d: '%s', expected '%s'", cases[c].spec, cases[c].format, i,
                         line, want);
        }
        bnk_model_destroy(m);
    }
    assert_int_equal(unsetenv("BNK_CONV_FORMAT"), 0);
}

/* zero_grad is deferred (the next backward writes instead of adding): gradients must still
 * read 0 after it, a backward after it must ignore whatever the arena held, and backward
 * without zero_grad must add. Every layer kind with parameters, and an empty shard. */
static void test_zero_grad_deferred(void **state) {
    (void)state;
    enum { N = 6 };
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = "conv:3:3,bn,relu,maxpool:2,flatten,dense:5,relu,bn,dense:4";
    mc.in_c = 2;
    mc.in_h = mc.in_w = 6;
    mc.max_batch = N;
    bnk_model *m;
    assert_int_equal(bnk_model_create(&m, &mc), BNK_OK);
    const size_t P = bnk_model_num_params(m);
    float x[N * 2 * 6 * 6];
    int32_t labels[N];
    uint64_t rng = 5;
    fill(x, N * 2 * 6 * 6, &rng, 1.0);
    for (int i = 0; i < N; i++) labels[i] = i % 4;
    float *g = bnk_model_grads(m);
    for (size_t i = 0; i < P; i++) g[i] = NAN;
    bnk_model_zero_grad(m);
    g = bnk_model_grads(m); /* zeroes now: nothing wrote the arena since zero_grad */
    for (size_t i = 0; i < P; i++) assert_true(g[i] == 0.0f);
    /* one backward on a NaN-filled arena after zero_grad: every gradient written */
    for (size_t i = 0; i < P; i++) g[i] = NAN;
    bnk_model_zero_grad(m);
    model_loss(m, x, labels, N);
    assert_int_equal(bnk_model_backward(m, N), BNK_OK);
    g = bnk_model_grads(m);
    float *once = malloc(P * sizeof(float));
    for (size_t i = 0; i < P; i++) {
        assert_false(isnan(g[i]));
        once[i] = g[i];
    }
    /* no zero_grad: the same batch again adds the same gradient (BN's step counter moves, but
     * its output does not depend on it without renorm) */
    model_loss(m, x, labels, N);
    assert_int_equal(bnk_model_backward(m, N), BNK_OK);
    g = bnk_model_grads(m);
    /* exact but for the order of float sums inside a backward (BN and GEMM add in pieces) */
    for (size_t i = 0; i < P; i++)
        assert_true(fabs((double)g[i] - 2.0 * once[i]) <= 1e-5 * (1e-3 + fabs(2.0 * once[i])));
    /* an empty shard after zero_grad: all gradients 0 */
    bnk_model_zero_grad(m);
    assert_int_equal(bnk_model_forward_shard(m, NULL, 0, 0, N, true), BNK_OK);
    assert_int_equal(bnk_model_loss(m, NULL, 0, NULL, NULL), BNK_OK);
    for (size_t i = 0; i < P; i++) bnk_model_grads(m)[i] = 0.0f; /* materialise, then dirty */
    g = bnk_model_grads(m);
    for (size_t i = 0; i < P; i++) g[i] = NAN;
    bnk_model_zero_grad(m);
    assert_int_equal(bnk_model_backward(m, 0), BNK_OK);
    g = bnk_model_grads(m);
    for (size_t i = 0; i < P; i++) assert_true(g[i] == 0.0f);
    free(once);
    bnk_model_destroy(m);
}

static void test_spec_errors(void **state) {
    (void)state;
    static const struct {
        const char *spec, *needle;
    } bad[] = {
        {"dense:128,softmax,dense:10", "layer 2 'softmax'"},
        {"dense:0,dense:10", "layer 1 'dense:0'"},
        {"dense:12.5,dense:10", "layer 1"},
        {"dense,dense:10", "expected dense:UNITS"},
        {"dense:10,,dense:10", "layer 2 is empty"},
        {"dense:10,dropout:1.0,dense:10", "rate must be in [0, 1)"},
        {"conv:8,dense:10", "expected conv:FILTERS:K"},
        {"maxpool:40,dense:10", "larger than its input"},
        {"conv:4:3", "must output a vector"},
        {"dense:1", "must output a vector"},
        {"", "empty"},
        {"relu:3,dense:10", "expected relu"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bnk_model_config mc = bnk_model_config_default();
        mc.spec = bad[i].spec;
        bnk_model *m = (bnk_model *)&mc;
        assert_int_equal(bnk_model_create(&m, &mc), BNK_ERR_PARAM);
        assert_null(m);
        if (!strstr(bnk_errmsg(), bad[i].needle))
            fail_msg("spec '%s': message '%s' lacks '%s'", bad[i].spec, bnk_errmsg(),
                     bad[i].needle);
    }
}

static void test_tensors_and_layout(void **state) {
    (void)state;
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = "dense:128,relu,bn,dense:10";
    bnk_model *m;
    assert_int_equal(bnk_model_create(&m, &mc), BNK_OK);
    assert_int_equal(bnk_model_num_params(m), 784 * 128 + 128 + 2 * 128 + 128 * 10 + 10);
    static const char *const names[] = {"0.dense.weight", "0.dense.bias",      "2.bn.gamma",
                                        "2.bn.beta",      "2.bn.running_mean", "2.bn.running_var",
                                        "3.dense.weight", "3.dense.bias"};
    assert_int_equal(bnk_model_tensor_count(m), 8);
    for (int i = 0; i < 8; i++) {
        bnk_tensor_info t;
        assert_int_equal(bnk_model_tensor(m, i, &t), BNK_OK);
        assert_string_equal(t.name, names[i]);
    }
    bnk_tensor_info t;
    bnk_model_tensor(m, 0, &t);
    assert_int_equal(t.ndim, 2);
    assert_true(t.shape[0] == 128 && t.shape[1] == 784 && t.trainable);
    assert_true(bnk_model_decay_mask(m)[0] == 1);
    bnk_model_tensor(m, 5, &t);
    assert_true(!t.trainable && t.data[0] == 1.0f);
    /* He init for the ReLU layer: std sqrt(2/784) */
    bnk_model_tensor(m, 0, &t);
    double sq = 0;
    for (size_t i = 0; i < t.count; i++) sq += (double)t.data[i] * t.data[i];
    double sd = sqrt(sq / (double)t.count);
    assert_true(fabs(sd - sqrt(2.0 / 784.0)) < 0.02 * sqrt(2.0 / 784.0));
    assert_int_equal(bnk_model_tensor(m, 8, &t), BNK_ERR_PARAM);
    /* batch limits and call order */
    float x[784] = {0};
    assert_int_equal(bnk_model_forward(m, x, 101, true), BNK_ERR_SIZE);
    assert_int_equal(bnk_model_backward(m, 1), BNK_ERR_PARAM);
    assert_int_equal(bnk_model_forward(m, x, 1, true), BNK_ERR_BATCH); /* BN needs 2 */
    assert_int_equal(bnk_model_forward(m, x, 1, false), BNK_OK);       /* inference is fine */
    int32_t bad_label = 10;
    assert_int_equal(bnk_model_loss(m, &bad_label, 1, NULL, NULL), BNK_ERR_PARAM);
    bnk_model_destroy(m);
    bnk_model_destroy(NULL);
}

static void test_optimisers_by_hand(void **state) {
    (void)state;
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f};
    const uint8_t decay[2] = {1, 0};
    bnk_optim_config oc = bnk_optim_config_default(BNK_OPTIM_ADAM);
    oc.weight_decay = 0.1;
    bnk_optim *o;
    assert_int_equal(bnk_optim_create(&o, &oc, 2), BNK_OK);
    bnk_optim_step(o, p, g, decay, 1e-3);
    /* first Adam step moves each parameter by lr * sign(g') (m_hat / sqrt(v_hat) = 1) */
    double want[2] = {1.0 - 1e-3, -2.0 - 1e-3};
    bnk_test_close_f32("adam step 1", p, want, 2, 1e-7, 1e-6);
    /* second step, by the formulas in double */
    double gd0 = 0.5 + 0.1 * (1.0 - 1e-3), m0 = 0.1 * (0.5 + 0.1), v0 = 0.001 * 0.6 * 0.6;
    m0 = 0.9 * m0 + 0.1 * gd0;
    v0 = 0.999 * v0 + 0.001 * gd0 * gd0;
    double step0 = 1e-3 * (m0 / (1 - 0.81)) / (sqrt(v0 / (1 - 0.999 * 0.999)) + 1e-8);
    bnk_optim_step(o, p, g, decay, 1e-3);
    want[0] = (1.0 - 1e-3) - step0;
    bnk_test_close_f32("adam step 2", p, want, 1, 1e-7, 1e-6);
    assert_int_equal(bnk_optim_steps(o), 2);
    bnk_optim_destroy(o);

    float q[1] = {1.0f}, gq[1] = {1.0f};
    oc = bnk_optim_config_default(BNK_OPTIM_SGD); /* momentum 0.9 */
    assert_int_equal(bnk_optim_create(&o, &oc, 1), BNK_OK);
    bnk_optim_step(o, q, gq, NULL, 0.1); /* buf = 1, q = 0.9 */
    bnk_optim_step(o, q, gq, NULL, 0.1); /* buf = 1.9, q = 0.71 */
    double wq = 0.71;
    bnk_test_close_f32("sgd", q, &wq, 1, 1e-7, 1e-6);
    bnk_optim_destroy(o);
    bnk_optim_destroy(NULL);
    oc.lr = 0.0;
    assert_int_equal(bnk_optim_create(&o, &oc, 1), BNK_ERR_PARAM);
}

/* A one-member comm whose workspace records the largest request. */
typedef struct ws_probe {
    size_t largest;
    int calls;
    double buf[128];
} ws_probe;

static bnk_status probe_workspace(void *ctx, size_t len, double **out) {
    ws_probe *p = ctx;
    p->calls++;
    if (len > p->largest) p->largest = len;
    *out = len <= 128 ? p->buf : NULL;
    return len <= 128 ? BNK_OK : BNK_ERR_NOMEM;
}

/* Setting a comm asks its workspace once for the widest BN layer (4*C + 1 doubles), so that the
 * first synchronised step need not allocate; a comm without a workspace, and NULL, are fine. */
static void test_bn_comm_workspace_reserved(void **state) {
    (void)state;
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = "dense:8,bn,relu,dense:24,bn,dense:3";
    mc.in_h = mc.in_w = 2;
    bnk_model *m;
    assert_int_equal(bnk_model_create(&m, &mc), BNK_OK);
    ws_probe probe = {0};
    const bnk_bn_comm with = {.ctx = &probe, .workspace = probe_workspace};
    bnk_model_set_bn_comm(m, &with);
    assert_int_equal(probe.calls, 1);
    assert_int_equal(probe.largest, 4 * 24 + 1);
    const bnk_bn_comm without = {.ctx = &probe};
    bnk_model_set_bn_comm(m, &without);
    bnk_model_set_bn_comm(m, NULL);
    assert_int_equal(probe.calls, 1);
    bnk_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_against_loops),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_relu_dropout),
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_bn_comm_workspace_reserved),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_tensors_and_layout),
        cmocka_unit_test(test_optimisers_by_hand),
        cmocka_unit_test(test_zero_grad_deferred),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
