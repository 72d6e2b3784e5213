/* Every invalid input returns its documented status, sets a message, and leaves every output
 * (y, saved, running statistics, dx, dgamma, dbeta) untouched. */
#include <stdio.h>
#include <string.h>

#include "bnkit/bn.h"
#include "test_util.h"

enum { N = 4, C = 3 };
static const float SENTINEL = 12345.0f;

typedef struct bufs {
    float x[N * C], y[N * C], dy[N * C], dx[N * C];
    float gamma[C], beta[C], rm[C], rv[C], dg[C], db[C];
    double saved[BNK_BN_SAVED_FIELDS * C];
} bufs;

static void init(bufs *b) {
    for (int i = 0; i < N * C; i++) {
        b->x[i] = (float)(i % 5) - 1.5f;
        b->dy[i] = (float)(i % 3) - 1.0f;
        b->y[i] = b->dx[i] = SENTINEL;
    }
    for (int c = 0; c < C; c++) {
        b->gamma[c] = 1.0f;
        b->beta[c] = 0.0f;
        b->rm[c] = 0.0f;
        b->rv[c] = 1.0f;
        b->dg[c] = b->db[c] = SENTINEL;
    }
    for (int i = 0; i < BNK_BN_SAVED_FIELDS * C; i++) b->saved[i] = SENTINEL;
}

static void assert_untouched(const bufs *b) {
    for (int i = 0; i < N * C; i++) {
        assert_true(b->y[i] == SENTINEL);
        assert_true(b->dx[i] == SENTINEL);
    }
    for (int c = 0; c < C; c++) {
        assert_true(b->rm[c] == 0.0f && b->rv[c] == 1.0f);
        assert_true(b->dg[c] == SENTINEL && b->db[c] == SENTINEL);
    }
    for (int i = 0; i < BNK_BN_SAVED_FIELDS * C; i++) assert_true(b->saved[i] == SENTINEL);
}

/* Runs the three kernels with cfg/shape; each must return `want` (inference may legitimately
 * accept what training refuses, so its expectation is separate) and change nothing. */
static void expect(const char *what, const bnk_bn_config *cfg, const bnk_bn_shape *shape,
                   bnk_status want_train, bnk_status want_infer, bnk_status want_back) {
    bufs b;
    init(&b);
    bnk_status st =
        bnk_bn_forward_train(cfg, shape, 0, b.y, b.saved, b.rm, b.rv, b.x, b.gamma, b.beta);
    if (st != want_train)
        fail_msg("%s: forward_train returned %d (%s), want %d", what, st, bnk_status_str(st),
                 want_train);
    if (want_train != BNK_OK) {
        assert_true(strlen(bnk_errmsg()) > 0);
        assert_untouched(&b);
    }
    init(&b);
    st = bnk_bn_forward_infer(cfg, shape, b.y, b.x, b.gamma, b.beta, b.rm, b.rv);
    if (st != want_infer) fail_msg("%s: forward_infer returned %d, want %d", what, st, want_infer);
    if (want_infer != BNK_OK) assert_untouched(&b);
    init(&b);
    st = bnk_bn_backward(cfg, shape, b.dx, b.dg, b.db, b.dy, b.x, b.y, b.gamma, b.saved);
    if (st != want_back) fail_msg("%s: backward returned %d, want %d", what, st, want_back);
    if (want_back != BNK_OK) assert_untouched(&b);
}

static void expect_all(const char *what, const bnk_bn_config *cfg, const bnk_bn_shape *shape,
                       bnk_status want) {
    expect(what, cfg, shape, want, want, want);
}

static const bnk_bn_shape OK_SHAPE = {BNK_LAYOUT_NC, N, C, 1, 1};

static void test_invalid_hyperparameters(void **state) {
    (void)state;
    const bnk_bn_config def = bnk_bn_config_default();
    assert_int_equal(bnk_bn_config_validate(&def), BNK_OK);
    assert_int_equal(bnk_bn_config_validate(NULL), BNK_ERR_NULL);
    expect_all("NULL config", NULL, &OK_SHAPE, BNK_ERR_NULL);
#define BAD(label, ...)                                                                            \
    do {                                                                                           \
        bnk_bn_config c_ = def;                                                                    \
        __VA_ARGS__;                                                                               \
        assert_int_equal(bnk_bn_config_validate(&c_), BNK_ERR_PARAM);                              \
        expect_all(label, &c_, &OK_SHAPE, BNK_ERR_PARAM);                                          \
    } while (0)
    BAD("eps 0", c_.eps = 0.0);
    BAD("eps < 0", c_.eps = -1e-5);
    BAD("eps NaN", c_.eps = NAN);
    BAD("eps inf", c_.eps = INFINITY);
    BAD("momentum 1", c_.momentum = 1.0);
    BAD("momentum < 0", c_.momentum = -0.1);
    BAD("momentum NaN", c_.momentum = NAN);
    BAD("mean_clip lo > hi", c_.mean_clip = (bnk_range){1.0, -1.0});
    BAD("mean_clip NaN", c_.mean_clip = (bnk_range){NAN, 1.0});
    BAD("var_clip lo > hi", c_.var_clip = (bnk_range){2.0, 1.0});
    BAD("var_clip lo < 0", c_.var_clip = (bnk_range){-1.0, 1.0});
    BAD("running_mean_clip lo > hi", c_.running_mean_clip = (bnk_range){0.5, 0.25});
    BAD("running_var_clip lo > hi", c_.running_var_clip = (bnk_range){3.0, 2.0});
    BAD("running_var_clip lo < 0", c_.running_var_clip = (bnk_range){-0.5, 2.0});
    BAD("rel r < 1", c_.rel_clip_r = 0.5);
    BAD("rel r NaN", c_.rel_clip_r = NAN);
    BAD("rel d < 0", c_.rel_clip_d = -0.1);
    BAD("rel d NaN", c_.rel_clip_d = NAN);
    BAD("clip_warmup < 0", c_.clip_warmup = -1);
    BAD("normalize_with unknown", c_.normalize_with = (bnk_bn_norm)7);
    BAD("rmax < 1", c_.rmax = 0.9);
    BAD("rmax inf", c_.rmax = INFINITY);
    BAD("dmax < 0", c_.dmax = -1.0);
    BAD("dmax NaN", c_.dmax = NAN);
#undef BAD
    /* the message names the problem */
    bnk_bn_config c = def;
    c.eps = 0.0;
    bnk_bn_config_validate(&c);
    assert_non_null(strstr(bnk_errmsg(), "eps"));
}

static void test_invalid_shapes(void **state) {
    (void)state;
    const bnk_bn_config cfg = bnk_bn_config_default();
    expect_all("NULL shape", &cfg, NULL, BNK_ERR_NULL);
    const bnk_bn_shape bad_size[] = {
        {BNK_LAYOUT_NC, 0, C, 1, 1},    {BNK_LAYOUT_NC, N, 0, 1, 1},  {BNK_LAYOUT_NCHW, N, C, 0, 1},
        {BNK_LAYOUT_NHWC, N, C, 1, -2}, {BNK_LAYOUT_NC, -1, C, 1, 1}, {BNK_LAYOUT_NC, N, C, 2, 1},
        {(bnk_layout)9, N, C, 1, 1},
    };
    for (size_t i = 0; i < sizeof bad_size / sizeof bad_size[0]; i++) {
        assert_int_equal(bnk_bn_shape_validate(&bad_size[i]), BNK_ERR_SIZE);
        expect_all("bad size", &cfg, &bad_size[i], BNK_ERR_SIZE);
    }
    const bnk_bn_shape overflow[] = {
        {BNK_LAYOUT_NCHW, (int64_t)1 << 40, (int64_t)1 << 30, 1, 1},
        {BNK_LAYOUT_NHWC, 2, 3, INT64_MAX, 2},
        {BNK_LAYOUT_NC, INT64_MAX, INT64_MAX, 1, 1},
    };
    for (size_t i = 0; i < sizeof overflow / sizeof overflow[0]; i++) {
        assert_int_equal(bnk_bn_shape_validate(&overflow[i]), BNK_ERR_OVERFLOW);
        expect_all("overflow", &cfg, &overflow[i], BNK_ERR_OVERFLOW);
    }
}

/* A blocked layout (nChw16c, nChw8c) needs C to be a multiple of its block: oneDNN's padded
 * channels are not supported. Refused by every entry point, the synchronised ones (with an
 * empty shard too) included, before anything is touched or communicated. */
static void test_blocked_needs_whole_blocks(void **state) {
    (void)state;
    const bnk_bn_config cfg = bnk_bn_config_default();
    const bnk_bn_shape s16 = {BNK_LAYOUT_NCHW16C, 2, 20, 3, 3};
    assert_int_equal(bnk_bn_shape_validate(&s16), BNK_ERR_SIZE);
    assert_string_equal(bnk_errmsg(), "layout nchw16c needs C to be a multiple of 16, got 20");
    expect_all("nchw16c with C = 20", &cfg, &s16, BNK_ERR_SIZE);
    const bnk_bn_shape s8 = {BNK_LAYOUT_NCHW8C, 2, 12, 1, 1}; /* even with H*W = 1 */
    assert_int_equal(bnk_bn_shape_validate(&s8), BNK_ERR_SIZE);
    assert_string_equal(bnk_errmsg(), "layout nchw8c needs C to be a multiple of 8, got 12");
    expect_all("nchw8c with C = 12", &cfg, &s8, BNK_ERR_SIZE);
    bufs b;
    init(&b);
    const bnk_bn_shape empty = {BNK_LAYOUT_NCHW8C, 0, 4, 2, 2};
    assert_int_equal(bnk_bn_forward_train_sync(&cfg, &empty, 0, NULL, b.saved, b.rm, b.rv, NULL,
                                               b.gamma, b.beta, NULL),
                     BNK_ERR_SIZE);
    assert_non_null(strstr(bnk_errmsg(), "multiple of 8, got 4"));
    assert_int_equal(bnk_bn_backward_sync(&cfg, &empty, NULL, b.dg, b.db, NULL, NULL, NULL, b.gamma,
                                          b.saved, NULL),
                     BNK_ERR_SIZE);
    assert_untouched(&b);
    /* whole blocks, one block, and H*W = 1 are fine */
    const bnk_bn_shape ok[] = {{BNK_LAYOUT_NCHW16C, 2, 32, 3, 3},
                               {BNK_LAYOUT_NCHW16C, 1, 16, 1, 2},
                               {BNK_LAYOUT_NCHW8C, 3, 24, 1, 1}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(bnk_bn_shape_validate(&ok[i]), BNK_OK);
}

static void test_one_value_per_channel(void **state) {
    (void)state;
    const bnk_bn_config cfg = bnk_bn_config_default();
    /* m = N*H*W = 1: training and its backward refuse; inference is fine */
    const bnk_bn_shape nc1 = {BNK_LAYOUT_NC, 1, C, 1, 1};
    const bnk_bn_shape nchw1 = {BNK_LAYOUT_NCHW, 1, C, 1, 1};
    const bnk_bn_shape nhwc1 = {BNK_LAYOUT_NHWC, 1, C, 1, 1};
    expect("m = 1 NC", &cfg, &nc1, BNK_ERR_BATCH, BNK_OK, BNK_ERR_BATCH);
    expect("m = 1 NCHW", &cfg, &nchw1, BNK_ERR_BATCH, BNK_OK, BNK_ERR_BATCH);
    expect("m = 1 NHWC", &cfg, &nhwc1, BNK_ERR_BATCH, BNK_OK, BNK_ERR_BATCH);
    /* N = 1 with H*W = 2 is a valid training batch */
    const bnk_bn_shape n1 = {BNK_LAYOUT_NCHW, 1, 2, 1, 2};
    expect("N = 1, H*W = 2", &cfg, &n1, BNK_OK, BNK_OK, BNK_OK);
}

static void test_null_buffers(void **state) {
    (void)state;
    bnk_bn_config cfg = bnk_bn_config_default();
    bufs b;
    init(&b);
    const bnk_bn_shape *s = &OK_SHAPE;
    float *rm = b.rm, *rv = b.rv;
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, NULL, b.saved, rm, rv, b.x, b.gamma, b.beta),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, NULL, rm, rv, b.x, b.gamma, b.beta),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, b.saved, NULL, rv, b.x, b.gamma, b.beta),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, b.saved, rm, NULL, b.x, b.gamma, b.beta),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, b.saved, rm, rv, NULL, b.gamma, b.beta),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, b.saved, rm, rv, b.x, NULL, b.beta),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, b.saved, rm, rv, b.x, b.gamma, NULL),
                     BNK_ERR_NULL);
    assert_untouched(&b);
    assert_int_equal(bnk_bn_forward_infer(&cfg, s, NULL, b.x, b.gamma, b.beta, rm, rv),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_infer(&cfg, s, b.y, NULL, b.gamma, b.beta, rm, rv),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_infer(&cfg, s, b.y, b.x, b.gamma, b.beta, NULL, rv),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_infer(&cfg, s, b.y, b.x, b.gamma, b.beta, rm, NULL),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_backward(&cfg, s, NULL, b.dg, b.db, b.dy, b.x, b.y, b.gamma, b.saved),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_backward(&cfg, s, b.dx, b.dg, b.db, NULL, b.x, b.y, b.gamma, b.saved),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_backward(&cfg, s, b.dx, b.dg, b.db, b.dy, NULL, b.y, b.gamma, b.saved),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_backward(&cfg, s, b.dx, b.dg, b.db, b.dy, b.x, b.y, NULL, b.saved),
                     BNK_ERR_NULL);
    assert_int_equal(bnk_bn_backward(&cfg, s, b.dx, b.dg, b.db, b.dy, b.x, b.y, b.gamma, NULL),
                     BNK_ERR_NULL);
    cfg.fuse_relu = true; /* the mask needs y */
    assert_int_equal(bnk_bn_backward(&cfg, s, b.dx, b.dg, b.db, b.dy, b.x, NULL, b.gamma, b.saved),
                     BNK_ERR_NULL);
    assert_untouched(&b);

    /* gamma and beta may be NULL when their flag is off; dgamma/dbeta may always be NULL */
    cfg = bnk_bn_config_default();
    cfg.scale = false;
    cfg.center = false;
    assert_int_equal(bnk_bn_forward_train(&cfg, s, 0, b.y, b.saved, rm, rv, b.x, NULL, NULL),
                     BNK_OK);
    assert_int_equal(bnk_bn_backward(&cfg, s, b.dx, NULL, NULL, b.dy, b.x, b.y, NULL, b.saved),
                     BNK_OK);
}

static void test_bad_running_stats_and_step(void **state) {
    (void)state;
    const bnk_bn_config cfg = bnk_bn_config_default();
    bufs b;
    init(&b);
    b.rv[1] = -0.5f;
    assert_int_equal(
        bnk_bn_forward_train(&cfg, &OK_SHAPE, 0, b.y, b.saved, b.rm, b.rv, b.x, b.gamma, b.beta),
        BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "running_var[1]"));
    assert_int_equal(bnk_bn_forward_infer(&cfg, &OK_SHAPE, b.y, b.x, b.gamma, b.beta, b.rm, b.rv),
                     BNK_ERR_PARAM);
    init(&b);
    b.rm[2] = NAN;
    assert_int_equal(
        bnk_bn_forward_train(&cfg, &OK_SHAPE, 0, b.y, b.saved, b.rm, b.rv, b.x, b.gamma, b.beta),
        BNK_ERR_PARAM);
    init(&b);
    assert_int_equal(
        bnk_bn_forward_train(&cfg, &OK_SHAPE, -1, b.y, b.saved, b.rm, b.rv, b.x, b.gamma, b.beta),
        BNK_ERR_PARAM);
    assert_untouched(&b);
}

static void test_nonfinite_input_keeps_running_stats(void **state) {
    (void)state;
    const bnk_bn_config cfg = bnk_bn_config_default();
    for (int k = 0; k < bnk_bn_kernel_count(); k++) {
        assert_int_equal(bnk_bn_kernel_select(bnk_bn_kernel_at(k)), BNK_OK);
        bufs b;
        init(&b);
        b.x[0 * C + 1] = INFINITY; /* channel 1 */
        b.x[2 * C + 2] = NAN;      /* channel 2 */
        assert_int_equal(bnk_bn_forward_train(&cfg, &OK_SHAPE, 0, b.y, b.saved, b.rm, b.rv, b.x,
                                              b.gamma, b.beta),
                         BNK_OK);
        /* channel 0 is updated, the poisoned channels keep their running statistics */
        assert_true(b.rm[0] != 0.0f);
        assert_true(b.rm[1] == 0.0f && b.rv[1] == 1.0f);
        assert_true(b.rm[2] == 0.0f && b.rv[2] == 1.0f);
    }
}

static void test_status_table_and_kernels(void **state) {
    (void)state;
    for (int s = BNK_OK; s <= BNK_ERR_UNSUPPORTED; s++) {
        assert_non_null(bnk_status_str((bnk_status)s));
        assert_true(strlen(bnk_status_str((bnk_status)s)) > 0);
    }
    assert_string_equal(bnk_status_str(BNK_OK), "ok");
    assert_int_equal(bnk_bn_kernel_select("no-such-kernel"), BNK_ERR_UNSUPPORTED);
    assert_int_equal(bnk_bn_kernel_select(NULL), BNK_ERR_NULL);
    assert_string_equal(bnk_bn_kernel_at(0), "ref");
    assert_null(bnk_bn_kernel_at(-1));
    assert_null(bnk_bn_kernel_at(bnk_bn_kernel_count()));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_hyperparameters),
        cmocka_unit_test(test_invalid_shapes),
        cmocka_unit_test(test_blocked_needs_whole_blocks),
        cmocka_unit_test(test_one_value_per_channel),
        cmocka_unit_test(test_null_buffers),
        cmocka_unit_test(test_bad_running_stats_and_step),
        cmocka_unit_test(test_nonfinite_input_keeps_running_stats),
        cmocka_unit_test(test_status_table_and_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
