/* Options of the `bnkit bn` command: every BN flag reaches the configuration, the flag table
 * covers --help, repeated options, negative values; and the CLI's top level and demo. Helpers in
 * cli_bn_util.h. */
#include "cli_bn_util.h"

/* ---- (b) every BN flag reaches the config --------------------------------------------------- */

static void set_momentum(bnk_bn_config *g) {
    g->momentum = 0.5;
}
static void set_eps(bnk_bn_config *g) {
    g->eps = 0.5;
}
static void set_cumulative(bnk_bn_config *g) {
    g->cumulative = true;
}
static void set_no_center(bnk_bn_config *g) {
    g->center = false;
}
static void set_no_scale(bnk_bn_config *g) {
    g->scale = false;
}
static void set_unbiased(bnk_bn_config *g) {
    g->unbiased_running_var = true;
}
static void set_mean_clip(bnk_bn_config *g) {
    g->mean_clip = (bnk_range){-0.5, 0.5};
}
static void set_mean_clip_inf(bnk_bn_config *g) {
    g->mean_clip = (bnk_range){-INFINITY, 1.0};
}
static void set_var_clip(bnk_bn_config *g) {
    g->var_clip = (bnk_range){0.0, 0.5};
}
static void set_rel_clip(bnk_bn_config *g) {
    g->rel_clip_r = 1.5;
    g->rel_clip_d = 0.5;
}
static void set_rel_clip_r(bnk_bn_config *g) {
    g->rel_clip_r = 1.5;
}
static void set_rel_clip_d(bnk_bn_config *g) {
    g->rel_clip_d = 0.5;
}
static void set_clip_warmup(bnk_bn_config *g) {
    g->clip_warmup = 5;
}
static void set_running_mean_clip(bnk_bn_config *g) {
    g->running_mean_clip = (bnk_range){-0.25, 0.25};
}
static void set_running_var_clip(bnk_bn_config *g) {
    g->running_var_clip = (bnk_range){0.1, 0.6};
}
static void set_norm_running(bnk_bn_config *g) {
    g->normalize_with = BNK_NORM_RUNNING;
}
static void set_norm_renorm(bnk_bn_config *g) {
    g->normalize_with = BNK_NORM_RENORM;
}
static void set_rmax(bnk_bn_config *g) {
    g->rmax = 1.2;
}
static void set_dmax(bnk_bn_config *g) {
    g->dmax = 0.5;
}
static void set_fuse_relu(bnk_bn_config *g) {
    g->fuse_relu = true;
}

typedef struct flag_case {
    const char *opt;   /* without "--" */
    const char *value; /* NULL: a flag */
    void (*set)(bnk_bn_config *);
    int64_t step;
    const char *extra[2];               /* options the flag needs to matter, e.g. renorm for rmax */
    void (*set_extra)(bnk_bn_config *); /* the same in the config */
} flag_case;

static const flag_case flag_cases[] = {
    {"momentum", "0.5", set_momentum, 0, {NULL, NULL}, NULL},
    {"eps", "0.5", set_eps, 0, {NULL, NULL}, NULL},
    /* step 3: beta_t = 3/4, so --step is checked too */
    {"cumulative", NULL, set_cumulative, 3, {NULL, NULL}, NULL},
    {"no-center", NULL, set_no_center, 0, {NULL, NULL}, NULL},
    {"no-scale", NULL, set_no_scale, 0, {NULL, NULL}, NULL},
    {"unbiased-running-var", NULL, set_unbiased, 0, {NULL, NULL}, NULL},
    {"mean-clip", "-0.5:0.5", set_mean_clip, 0, {NULL, NULL}, NULL},
    {"mean-clip", "-inf:1", set_mean_clip_inf, 0, {NULL, NULL}, NULL},
    {"var-clip", "0:0.5", set_var_clip, 0, {NULL, NULL}, NULL},
    {"rel-clip", "1.5:0.5", set_rel_clip, 0, {NULL, NULL}, NULL},
    {"rel-clip-r", "1.5", set_rel_clip_r, 0, {NULL, NULL}, NULL},
    {"rel-clip-d", "0.5", set_rel_clip_d, 0, {NULL, NULL}, NULL},
    /* step 2 < warmup 5: the relative clip is not applied yet */
    {"clip-warmup", "5", set_clip_warmup, 2, {"--rel-clip", "1.5:0.5"}, set_rel_clip},
    {"running-mean-clip", "-0.25:0.25", set_running_mean_clip, 0, {NULL, NULL}, NULL},
    {"running-var-clip", "0.1:0.6", set_running_var_clip, 0, {NULL, NULL}, NULL},
    {"normalize-with", "running", set_norm_running, 0, {NULL, NULL}, NULL},
    {"normalize-with", "renorm", set_norm_renorm, 0, {NULL, NULL}, NULL},
    {"rmax", "1.2", set_rmax, 0, {"--normalize-with", "renorm"}, set_norm_renorm},
    {"dmax", "0.5", set_dmax, 0, {"--normalize-with", "renorm"}, set_norm_renorm},
    {"fuse-relu", NULL, set_fuse_relu, 0, {NULL, NULL}, NULL},
};

static void test_every_bn_flag(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NCHW, 3, 4, 2, 2, 5);
    write_case(c, &d, BNK_DTYPE_F32);
    size_t ncase = sizeof flag_cases / sizeof flag_cases[0];
    for (size_t k = 0; k < ncase; k++) {
        const flag_case *fc = &flag_cases[k];
        bnk_bn_config base = bnk_bn_config_default();
        if (fc->set_extra) fc->set_extra(&base);
        bnk_bn_config cfg = base;
        fc->set(&cfg);
        bn_ref ref, ref_base;
        ref_compute(&cfg, &d, fc->step, false, &ref);
        ref_compute(&base, &d, fc->step, false, &ref_base);
        if (!ref_differs(&ref, &ref_base, &d))
            fail_msg("--%s %s does not change the result on the test input", fc->opt,
                     fc->value ? fc->value : "");
        ref_free(&ref_base);

        /* Valued options in both forms: --opt=value and --opt value. */
        for (int form = 0; form < (fc->value ? 2 : 1); form++) {
            char out[160], joined[128], step[32];
            snprintf(out, sizeof out, "%s/case%zu_%d", c->root, k, form);
            args a;
            full_args(&a, c, &d, true, out);
            if (fc->extra[0]) {
                arg(&a, fc->extra[0]);
                arg(&a, fc->extra[1]);
            }
            if (fc->step) {
                snprintf(step, sizeof step, "%lld", (long long)fc->step);
                arg(&a, "--step");
                arg(&a, step);
            }
            if (!fc->value) {
                snprintf(joined, sizeof joined, "--%s", fc->opt);
                arg(&a, joined);
            } else if (form == 0) {
                snprintf(joined, sizeof joined, "--%s=%s", fc->opt, fc->value);
                arg(&a, joined);
            } else {
                snprintf(joined, sizeof joined, "--%s", fc->opt);
                arg(&a, joined);
                arg(&a, fc->value);
            }
            cli_result r;
            run_ok(c, &a, &r);
            expect_outputs(out, &d, &ref, false, true);
        }
        ref_free(&ref);
    }
    case_free(&d);
}

/* Every option of the BN flag table appears in flag_cases (so a new flag needs a test). */
static void test_flag_cases_cover_help(void **state) {
    tctx *c = *state;
    args a;
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--help");
    cli_result r;
    run_ok(c, &a, &r);
    size_t ncase = sizeof flag_cases / sizeof flag_cases[0];
    for (size_t k = 0; k < ncase; k++) {
        char opt[64];
        snprintf(opt, sizeof opt, "--%s ", flag_cases[k].opt);
        if (!strstr(r.out, opt)) fail_msg("bnkit bn --help does not list %s", opt);
    }
    /* ...and the other way round: every "--name" in the BN flags part of the help is tested. */
    const char *p = strstr(r.out, "BN flags:");
    assert_non_null(p);
    while ((p = strstr(p, "\n  --")) != NULL) {
        p += 5;
        size_t len = strcspn(p, " \n");
        bool found = false;
        for (size_t k = 0; k < ncase && !found; k++)
            found = strlen(flag_cases[k].opt) == len && strncmp(flag_cases[k].opt, p, len) == 0;
        if (!found) fail_msg("BN flag --%.*s has no case in flag_cases", (int)len, p);
    }
}

/* A repeated option: the last one wins. */
static void test_repeated_option_last_wins(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 6, 3, 1, 1, 21);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--eps");
    arg(&a, "0.5");
    arg(&a, "--eps=0.25");
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.eps = 0.25;
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);
    case_free(&d);
}

/* Negative values reach validation (and are refused there, not by the parser). */
static void test_negative_values_reach_validation(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 6, 3, 1, 1, 22);
    write_case(c, &d, BNK_DTYPE_F32);
    static const char *const bad[][3] = {
        {"--momentum=-0.5", NULL, "momentum must"},
        {"--momentum", "-0.5", "momentum must"},
        {"--eps", "-1e-3", "eps must be finite and > 0, got -0.001"},
        {"--rel-clip", "0.5:1", "rel_clip r must"},
        {"--rel-clip=2:-1", NULL, "rel_clip d must"},
        {"--mean-clip", "1:-1", "lower bound 1 exceeds upper bound -1"},
        {"--var-clip", "-1:1", ">= 0"},
        {"--clip-warmup", "-2", "clip_warmup must be >= 0, got -2"},
        {"--rmax", "0.5", "rmax must"},
        {"--dmax=-1", NULL, "dmax must"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        args a;
        full_args(&a, c, &d, true, c->out);
        arg(&a, bad[k][0]);
        if (bad[k][1]) arg(&a, bad[k][1]);
        run_err(c, &a, 2, bad[k][2]);
    }
    case_free(&d);
}

/* ---- The top level and the demo ------------------------------------------------------------- */

static void test_top_level(void **state) {
    tctx *c = *state;
    args a;
    cli_result r;
    args_init(&a);
    run_err(c, &a, 2, "missing command");
    arg(&a, "frobnicate");
    run_err(c, &a, 2, "frobnicate: unknown command");
    args_init(&a);
    arg(&a, "--frobnicate");
    run_err(c, &a, 2, "unknown option --frobnicate");

    args_init(&a);
    arg(&a, "--version");
    run_ok(c, &a, &r);
    assert_string_equal(r.out, "bnkit 0.1.0\n");
    args_init(&a);
    arg(&a, "--help");
    run_ok(c, &a, &r);
    assert_non_null(strstr(r.out, "usage: bnkit <command>"));
    assert_non_null(strstr(r.out, "  bn "));
    assert_non_null(strstr(r.out, "  demo "));
    args_init(&a);
    arg(&a, "help");
    arg(&a, "bn");
    run_ok(c, &a, &r);
    assert_non_null(strstr(r.out, "usage: bnkit bn"));
}

static void test_demo(void **state) {
    tctx *c = *state;
    args a;
    cli_result r;
    args_init(&a);
    arg(&a, "demo");
    arg(&a, "--seed=3");
    run_ok(c, &a, &r);
    int lines = 0;
    for (const char *p = r.out; *p; p++) lines += *p == '\n';
    assert_in_range(lines, 10, 30);
    assert_non_null(strstr(r.out, "kernel: "));
    assert_non_null(strstr(r.out, "PyTorch momentum 0.01"));
    /* reproducible from --seed */
    char first[sizeof r.out];
    memcpy(first, r.out, sizeof first);
    run_ok(c, &a, &r);
    assert_string_equal(first, r.out);
    arg(&a, "--seed");
    arg(&a, "-1");
    run_err(c, &a, 2, "--seed must be >= 0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_bn_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_cases_cover_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_option_last_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_values_reach_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
