/* Errors and I/O of the `bnkit bn` command: usage, shape and runtime errors (exit status and one
 * `bnkit: ` line on stderr), and no partial output left behind by a failed write. Helpers in
 * cli_bn_util.h. */
#include "cli_bn_util.h"

/* ---- (f) errors ----------------------------------------------------------------------------- */

static void test_usage_errors(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 61);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;

    /* missing --x */
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nc");
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2, "missing --x");

    /* missing --out, missing --layout, bad --layout */
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nc");
    arg(&a, "--x");
    arg(&a, c->x);
    run_err(c, &a, 2, "missing --out");
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2, "missing --layout");
    arg(&a, "--layout=nchwc");
    run_err(c, &a, 2, "--layout must be nc, nchw, nhwc, nchw16c or nchw8c, got 'nchwc'");

    /* x is 2-D but the layout says 4-D */
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nchw");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2, "x must be 4-D");

    static const char *const bad[][3] = {
        {"--bogus", NULL, "unknown option --bogus"},
        {"--bogus=3", NULL, "unknown option --bogus"},
        {"-x", NULL, "unknown option -x"},
        {"stray", NULL, "unexpected argument 'stray'"},
        {"--infer=1", NULL, "--infer takes no value"},
        {"--eps", "1x", "--eps: expected a number, got '1x'"},
        {"--eps", " 1", "--eps: expected a number"},
        {"--eps", "1e999", "--eps: expected a number"},
        {"--eps=", NULL, "--eps: empty value"},
        {"--mean-clip", "1", "--mean-clip: expected LO:HI"},
        {"--mean-clip", "1:2:3", "--mean-clip: expected LO:HI"},
        {"--mean-clip", ":1", "--mean-clip: expected LO:HI"},
        {"--rel-clip", "2", "--rel-clip: expected two numbers"},
        {"--clip-warmup", "1.5", "--clip-warmup: expected an integer"},
        {"--clip-warmup", "99999999999999999999", "--clip-warmup: integer out of range"},
        {"--normalize-with", "bach", "--normalize-with must be batch, running or renorm"},
        {"--step", "-1", "--step must be >= 0, got -1"},
        {"--step", "x", "--step: expected an integer"},
        {"--eps", "0", "eps must be finite and > 0, got 0"},
        {"--momentum", "1", "momentum"},
        {"--momentum=nan", NULL, "momentum"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        full_args(&a, c, &d, true, c->out);
        arg(&a, bad[k][0]);
        if (bad[k][1]) arg(&a, bad[k][1]);
        run_err(c, &a, 2, bad[k][2]);
    }

    /* an option at the end without its value, and one followed by another option */
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--eps");
    run_err(c, &a, 2, "--eps needs a value");
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--momentum");
    arg(&a, "--infer");
    run_err(c, &a, 2, "--momentum needs a value");

    /* the exact line of the brief */
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--eps=0");
    cli_result r;
    run_cli(c, &a, &r);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "bnkit: bn: eps must be finite and > 0, got 0\n");

    /* --dy with --infer */
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--infer");
    run_err(c, &a, 2, "--dy");
    case_free(&d);
}

static void test_shape_errors(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 71);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.npy", c->in);

    /* gamma with 4 channels for x with 3 */
    float four[4] = {1, 2, 3, 4};
    int64_t d4[1] = {4};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 1, d4, four), BNK_OK);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--gamma");
    arg(&a, bad);
    run_err(c, &a, 2, "bnkit: bn: gamma has shape (4,) but x has 3 channels\n");

    /* a running var of shape (3, 1) */
    int64_t d31[2] = {3, 1};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, d31, four), BNK_OK);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--running-var");
    arg(&a, bad);
    run_err(c, &a, 2, "running_var has shape (3, 1) but x has 3 channels");

    /* dy of another shape */
    int64_t dd[2] = {5, 2};
    float ten[10] = {0};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, dd, ten), BNK_OK);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--dy");
    arg(&a, bad);
    run_err(c, &a, 2, "dy has shape (5, 2) but x has shape (5, 3)");

    /* the blocked layouts: x must be 5-D (N, C/B, H, W, B), B the layout's channel block */
    float blk[2 * 2 * 3 * 8] = {0};
    int64_t d5[5] = {2, 1, 2, 3, 8};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 5, d5, blk), BNK_OK);
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout=nchw16c");
    arg(&a, "--x");
    arg(&a, bad);
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2,
            "bnkit: bn: x must be (N, C/16, H, W, 16) for --layout nchw16c: its last dimension "
            "is the channel block, 16, got shape (2, 1, 2, 3, 8)\n");
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--layout=nchw8c");
    run_err(c, &a, 2, "x must be 5-D (N, C/8, H, W, 8) for --layout nchw8c, got shape (5, 3)");

    /* an empty batch */
    int64_t d03[2] = {0, 3};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, d03, ten), BNK_OK);
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--x");
    arg(&a, bad);
    run_err(c, &a, 2, "empty dimension");

    /* m = 1 in training: N = 1 for NC */
    int64_t d13[2] = {1, 3};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, d13, four), BNK_OK);
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--x");
    arg(&a, bad);
    run_err(c, &a, 2, "at least 2 values per channel");
    /* ...which is fine for inference */
    arg(&a, "--infer");
    cli_result r;
    run_ok(c, &a, &r);
    assert_true(file_exists(c->out, "y.npy"));
    rm_rf(c->out);

    /* a negative running variance (refused by the library) in inference */
    float neg[3] = {1, -1, 1};
    int64_t d3[1] = {3};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 1, d3, neg), BNK_OK);
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--running-var");
    arg(&a, bad);
    arg(&a, "--infer");
    run_err(c, &a, 2, "running_var");
    case_free(&d);
}

static void test_runtime_errors(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 81);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    char path[160];

    /* a missing file */
    snprintf(path, sizeof path, "%s/nope.npy", c->in);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--beta");
    arg(&a, path);
    char want[300];
    snprintf(want, sizeof want, "bnkit: bn: --beta %s: cannot open: No such file or directory\n",
             path);
    run_err(c, &a, 1, want);

    /* a corrupt file, and a truncated one */
    snprintf(path, sizeof path, "%s/corrupt.npy", c->in);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("this is not a .npy file\n", f);
    fclose(f);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--x");
    arg(&a, path);
    run_err(c, &a, 1, "--x ");
    {
        FILE *src = fopen(c->x, "rb");
        assert_non_null(src);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, src);
        fclose(src);
        f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(buf, 1, n - 5, f);
        fclose(f);
    }
    run_err(c, &a, 1, "--x ");

    /* --out is a regular file */
    full_args(&a, c, &d, true, c->x);
    run_err(c, &a, 1, "not a directory");
    /* --out two levels below a missing directory */
    snprintf(path, sizeof path, "%s/missing/deeper", c->root);
    full_args(&a, c, &d, true, path);
    run_err(c, &a, 1, "cannot create directory");
    case_free(&d);
}

/* A write that fails after others succeeded removes what this run wrote. */
static void test_partial_write_is_removed(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 91);
    write_case(c, &d, BNK_DTYPE_F32);
    /* running_var.npy is a directory: y.npy and running_mean.npy are written first, then the
     * rename onto running_var.npy fails. */
    char blocker[200];
    assert_int_equal(mkdir(c->out, 0777), 0);
    snprintf(blocker, sizeof blocker, "%s/running_var.npy", c->out);
    assert_int_equal(mkdir(blocker, 0777), 0);
    args a;
    full_args(&a, c, &d, true, c->out);
    cli_result r;
    run_cli(c, &a, &r);
    assert_int_equal(r.status, 1);
    assert_true(strncmp(r.err, "bnkit: bn: --out ", 17) == 0);
    assert_int_equal(count_entries(c->out), 1); /* only the blocker */
    assert_false(file_exists(c->out, "y.npy"));
    assert_false(file_exists(c->out, "running_mean.npy"));
    case_free(&d);
}

/* A failed write into a directory this run created removes the directory too. The first file
 * is made to fail with a file-size limit (inherited by the child, with SIGXFSZ ignored so that
 * write() returns EFBIG instead of killing it). */
static void test_failed_write_removes_created_dir(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 8, 4, 1, 1, 92); /* y.npy: 128 + 4*32 bytes */
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, true, c->out);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 200;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cli_result r;
    run_cli(c, &a, &r);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(r.status, 1);
    assert_true(strncmp(r.err, "bnkit: bn: --out ", 17) == 0);
    assert_int_equal(count_entries(c->out), -1); /* created, then removed */
    case_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_write_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_removes_created_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
