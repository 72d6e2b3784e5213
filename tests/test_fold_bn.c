/* bnk_model_fold_bn: the folded model's logits equal the original's inference logits on random
 * inputs, for BN folded backward (into the dense/conv before it), forward (into the dense or
 * unpadded conv after it, also through flatten), with fused ReLU, without scale/center, twice
 * in a row, through dropout; BNs that cannot be folded are refused with the layer named; and
 * the folded model survives a checkpoint round trip (what `bnkit export --fold-bn` does). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bnkit/checkpoint.h"
#include "test_util.h"

enum { N = 16 };

/* A model with random parameters and running statistics: weights N(0, s^2) with s = 1/sqrt(fan
 * in) (so activations stay O(1)), gamma in [0.5, 1.5), beta N(0, 0.3^2), running mean N(0,
 * 0.5^2), running var in [0.2, 2.2). */
static bnk_model *random_model(const char *spec, int64_t c, int64_t h, int64_t w,
                               const bnk_bn_config *bn, uint64_t seed) {
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = spec;
    mc.in_c = c;
    mc.in_h = h;
    mc.in_w = w;
    mc.max_batch = N;
    mc.seed = seed;
    if (bn) mc.bn = *bn;
    bnk_model *m = NULL;
    if (bnk_model_create(&m, &mc) != BNK_OK) fail_msg("create %s: %s", spec, bnk_errmsg());
    uint64_t rng = seed * 31 + 7;
    for (int i = 0; i < bnk_model_tensor_count(m); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(m, i, &t);
        const double s = t.ndim >= 2 ? 1.0 / sqrt((double)(t.count / (size_t)t.shape[0])) : 0.3;
        for (size_t j = 0; j < t.count; j++) {
            double u = bnk_test_uniform(&rng), z = bnk_test_normal(&rng);
            t.data[j] = strstr(t.name, "gamma")          ? (float)(0.5 + u)
                        : strstr(t.name, "running_var")  ? (float)(0.2 + 2.0 * u)
                        : strstr(t.name, "running_mean") ? (float)(0.5 * z)
                                                         : (float)(s * z);
        }
    }
    return m;
}

static float *inference(bnk_model *m, const float *x) {
    const size_t out = (size_t)bnk_model_num_outputs(m);
    if (bnk_model_forward(m, x, N, false) != BNK_OK) fail_msg("forward: %s", bnk_errmsg());
    float *y = malloc(N * out * sizeof(float));
    memcpy(y, bnk_model_logits(m), N * out * sizeof(float));
    return y;
}

/* |folded - original| <= 1e-5 * (|original| + max|original|): 1e-5 relative to the logits'
 * scale. The two compute the same function with different float roundings (the folded
 * weights are rounded once from double; the original rounds after the GEMM and again in BN),
 * a few ulps of sums over up to 784 terms, well below 1e-5 of the logits' magnitude. */
static void assert_logits_close(const float *got, const float *ref, size_t count) {
    double scale = 0.0;
    for (size_t i = 0; i < count; i++) scale = fmax(scale, fabs(ref[i]));
    double *r = malloc(count * sizeof(double));
    for (size_t i = 0; i < count; i++) r[i] = ref[i];
    bnk_test_close_f32("folded logits", got, r, count, 1e-5 * scale, 1e-5);
    free(r);
}

/* Folds spec and compares logits; checks the folded spec and the summary. */
static void check_fold(const char *spec, int64_t c, int64_t h, int64_t w, const bnk_bn_config *bn,
                       const char *want_spec, const char *want_summary) {
    bnk_model *m = random_model(spec, c, h, w, bn, 42);
    const size_t in = (size_t)(c * h * w), out = (size_t)bnk_model_num_outputs(m);
    float *x = malloc(N * in * sizeof(float));
    uint64_t rng = 5;
    for (size_t i = 0; i < N * in; i++) x[i] = (float)bnk_test_normal(&rng);
    float *ref = inference(m, x);
    bnk_model *f = NULL;
    char summary[512];
    bnk_status st = bnk_model_fold_bn(&f, m, summary, sizeof summary);
    if (st != BNK_OK) fail_msg("fold %s: %s", spec, bnk_errmsg());
    if (strcmp(bnk_model_spec(f), want_spec) != 0)
        fail_msg("fold %s: spec '%s', want '%s'", spec, bnk_model_spec(f), want_spec);
    if (strcmp(summary, want_summary) != 0)
        fail_msg("fold %s: summary '%s', want '%s'", spec, summary, want_summary);
    for (int i = 0; i < bnk_model_tensor_count(f); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(f, i, &t);
        assert_null(strstr(t.name, ".bn.")); /* no BN left */
    }
    float *got = inference(f, x);
    assert_logits_close(got, ref, N * out);
    free(x);
    free(ref);
    free(got);
    bnk_model_destroy(f);
    bnk_model_destroy(m);
}

static void test_fold_document_mlp(void **state) {
    (void)state; /* BN after the ReLU: forward into the last dense layer */
    check_fold("dense:128,relu,bn,dense:10", 1, 28, 28, NULL, "dense:128,relu,dense:10",
               "2.bn -> 3.dense (forward)");
}

static void test_fold_dense_bn_relu(void **state) {
    (void)state;
    check_fold("dense:64,bn,relu,dense:10", 1, 28, 28, NULL, "dense:64,relu,dense:10",
               "1.bn -> 0.dense (backward)");
    /* a BN at the end of the model */
    check_fold("dense:16,relu,dense:5,bn", 3, 2, 2, NULL, "dense:16,relu,dense:5",
               "3.bn -> 2.dense (backward)");
}

static void test_fold_cnn_backward(void **state) {
    (void)state;
    check_fold("conv:8:3,bn,relu,maxpool:2,conv:16:3,bn,relu,maxpool:2,flatten,dense:32,bn,relu,"
               "dense:10",
               1, 28, 28, NULL,
               "conv:8:3,relu,maxpool:2,conv:16:3,relu,maxpool:2,flatten,dense:32,relu,dense:10",
               "1.bn -> 0.conv (backward); 5.bn -> 4.conv (backward); 10.bn -> 9.dense "
               "(backward)");
}

static void test_fold_cnn_forward(void **state) {
    (void)state;
    /* into an unpadded conv, then through flatten into a dense layer (H*W = 36 inputs per
     * channel) */
    check_fold("conv:4:3,relu,bn,conv:5:3:1:0,relu,bn,flatten,dense:10", 2, 8, 8, NULL,
               "conv:4:3,relu,conv:5:3:1:0,relu,flatten,dense:10",
               "2.bn -> 3.conv (forward); 5.bn -> 7.dense (forward)");
    /* input normalisation: a BN on the raw image folds into the first dense layer */
    check_fold("bn,dense:16,relu,dense:4", 3, 4, 4, NULL, "dense:16,relu,dense:4",
               "0.bn -> 1.dense (forward)");
    /* a strided unpadded conv */
    check_fold("conv:3:3,relu,bn,conv:4:2:2:0,flatten,dense:3", 1, 9, 9, NULL,
               "conv:3:3,relu,conv:4:2:2:0,flatten,dense:3", "2.bn -> 3.conv (forward)");
}

static void test_fold_modes(void **state) {
    (void)state;
    bnk_bn_config bn = bnk_bn_config_default();
    bn.fuse_relu = true; /* the fused ReLU stays as a relu layer */
    check_fold("dense:32,bn,dense:10", 1, 5, 5, &bn, "dense:32,relu,dense:10",
               "1.bn -> 0.dense (backward, relu kept)");
    check_fold("conv:4:3,bn,flatten,dense:3", 2, 5, 5, &bn, "conv:4:3,relu,flatten,dense:3",
               "1.bn -> 0.conv (backward, relu kept)");
    bn = bnk_bn_config_default();
    bn.center = false; /* beta ignored */
    bn.scale = false;  /* gamma ignored */
    bn.eps = 0.5;
    check_fold("dense:32,bn,relu,dense:10", 1, 5, 5, &bn, "dense:32,relu,dense:10",
               "1.bn -> 0.dense (backward)");
    check_fold("dense:32,relu,bn,dense:10", 1, 5, 5, &bn, "dense:32,relu,dense:10",
               "2.bn -> 3.dense (forward)");
    /* two BNs in a row compose; dropout (the identity in inference) is looked through */
    check_fold("dense:16,bn,bn,relu,dense:4", 1, 3, 3, NULL, "dense:16,relu,dense:4",
               "1.bn -> 0.dense (backward); 2.bn -> 0.dense (backward)");
    check_fold("dense:32,dropout:0.3,bn,relu,dropout,bn,dense:10", 1, 5, 5, NULL,
               "dense:32,dropout:0.3,relu,dropout,dense:10",
               "2.bn -> 0.dense (backward); 5.bn -> 6.dense (forward)");
    /* nothing to fold: an equal copy */
    check_fold("dense:8,relu,dense:3", 1, 2, 2, NULL, "dense:8,relu,dense:3", "");
}

static void expect_unfoldable(const char *spec, const bnk_bn_config *bn, const char *needle) {
    bnk_model *m = random_model(spec, 2, 6, 6, bn, 1), *f = (bnk_model *)&m;
    char summary[64];
    bnk_status st = bnk_model_fold_bn(&f, m, summary, sizeof summary);
    if (st != BNK_ERR_UNSUPPORTED || !strstr(bnk_errmsg(), needle))
        fail_msg("fold %s: want UNSUPPORTED with '%s', got %d: %s", spec, needle, (int)st,
                 bnk_errmsg());
    assert_null(f);
    bnk_model_destroy(m);
}

static void test_fold_refused(void **state) {
    (void)state;
    expect_unfoldable("conv:4:3,relu,bn,conv:4:3,flatten,dense:3", NULL,
                      "layer 3 'bn' (tensors 2.bn.*) cannot be folded: no dense/conv layer "
                      "directly before it, and the next layer 'conv:4:3' is not");
    expect_unfoldable("dense:16,relu,bn,relu,dense:3", NULL, "the next layer 'relu'");
    expect_unfoldable("conv:4:3,relu,bn,maxpool:2,flatten,dense:3", NULL,
                      "the next layer 'maxpool:2'");
    expect_unfoldable("conv:4:3,relu,flatten,bn,relu,dense:3", NULL, "layer 4 'bn'");
    bnk_bn_config bn = bnk_bn_config_default();
    bn.fuse_relu = true;
    expect_unfoldable("dense:16,relu,bn,dense:3", &bn,
                      "layer 3 'bn' (tensors 2.bn.*) cannot be folded: a BN with a fused ReLU");
    bnk_model *m = random_model("dense:4,bn,dense:2", 1, 2, 2, NULL, 1), *f;
    assert_int_equal(bnk_model_fold_bn(NULL, m, NULL, 0), BNK_ERR_NULL);
    assert_int_equal(bnk_model_fold_bn(&f, NULL, NULL, 0), BNK_ERR_NULL);
    assert_int_equal(bnk_model_fold_bn(&f, m, NULL, 0), BNK_OK); /* summary optional */
    bnk_model_destroy(f);
    bnk_model_destroy(m);
}

/* save -> load -> fold -> save -> load: what `bnkit export --fold-bn` does. */
static void test_fold_checkpoint(void **state) {
    (void)state;
    char dir[] = "/tmp/bnk_fold_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[64], b[64];
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(b, sizeof b, "%s/b.safetensors", dir);
    bnk_model *m = random_model("conv:4:3,bn,relu,maxpool:2,flatten,dense:12,relu,bn,dense:5", 1,
                                10, 10, NULL, 9);
    const bnk_checkpoint_meta meta = {.data = "csv:x.csv", .scaling = BNK_SCALE_NONE};
    assert_int_equal(bnk_checkpoint_save(m, a, &meta), BNK_OK);
    bnk_model *loaded = NULL, *folded = NULL, *back = NULL;
    bnk_checkpoint_meta got, got2;
    assert_int_equal(bnk_checkpoint_load(&loaded, a, N, &got), BNK_OK);
    assert_int_equal(bnk_model_fold_bn(&folded, loaded, NULL, 0), BNK_OK);
    got.folded = true;
    assert_int_equal(bnk_checkpoint_save(folded, b, &got), BNK_OK);
    assert_int_equal(bnk_checkpoint_load(&back, b, N, &got2), BNK_OK);
    assert_true(got2.folded);
    assert_string_equal(got2.data, "csv:x.csv");
    assert_int_equal(got2.scaling, BNK_SCALE_NONE);
    assert_string_equal(bnk_model_spec(back), "conv:4:3,relu,maxpool:2,flatten,dense:12,relu,"
                                              "dense:5");
    float x[N * 100];
    uint64_t rng = 17;
    for (size_t i = 0; i < N * 100; i++) x[i] = (float)bnk_test_normal(&rng);
    float *ref = inference(m, x), *f1 = inference(folded, x), *f2 = inference(back, x);
    assert_memory_equal(f1, f2, N * 5 * sizeof(float)); /* the checkpoint is exact */
    assert_logits_close(f2, ref, N * 5);
    free(ref);
    free(f1);
    free(f2);
    bnk_checkpoint_meta_free(&got);
    bnk_checkpoint_meta_free(&got2);
    bnk_model_destroy(m);
    bnk_model_destroy(loaded);
    bnk_model_destroy(folded);
    bnk_model_destroy(back);
    unlink(a);
    unlink(b);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_document_mlp), cmocka_unit_test(test_fold_dense_bn_relu),
        cmocka_unit_test(test_fold_cnn_backward), cmocka_unit_test(test_fold_cnn_forward),
        cmocka_unit_test(test_fold_modes),        cmocka_unit_test(test_fold_refused),
        cmocka_unit_test(test_fold_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
