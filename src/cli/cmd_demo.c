/* `bnkit demo`: a short, readable tour of the BN layer on a seeded random batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/bn.h"
#include "cli/cli.h"

static const char *const CTX = "demo";

enum { DEMO_N = 64, DEMO_C = 8, DEMO_MORE_STEPS = 1000 };

static const bnk_cli_opt demo_opts[] = {
    {"seed", "N", "seed of the random batch (an integer >= 0); 1"},
    {"help", NULL, "print this help"},
};
enum { N_DEMO_OPTS = sizeof demo_opts / sizeof demo_opts[0] };

/* splitmix64 with explicit state, and a standard normal from it (Box-Muller). */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_normal(uint64_t *s) {
    double u1 = (double)((rng_next(s) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(rng_next(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A batch whose channel c has mean mu(c) and standard deviation sd(c), far from 0 and 1. */
static double chan_mean(int c) {
    return -8.0 + 2.5 * c;
}
static double chan_sd(int c) {
    return 0.25 * (c + 1);
}
static void make_batch(float *x, uint64_t *rng) {
    for (int n = 0; n < DEMO_N; n++)
        for (int c = 0; c < DEMO_C; c++)
            x[n * DEMO_C + c] = (float)(chan_mean(c) + chan_sd(c) * rng_normal(rng));
}

/* Population mean and standard deviation of channel c of an NC tensor. */
static void chan_stats(const float *v, int c, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int n = 0; n < DEMO_N; n++) s += v[n * DEMO_C + c];
    *mean = s / DEMO_N;
    for (int n = 0; n < DEMO_N; n++) {
        double d = v[n * DEMO_C + c] - *mean;
        ss += d * d;
    }
    *sd = sqrt(ss / DEMO_N);
}

/* Smallest and largest per-channel mean and std of v. */
static void stat_ranges(const float *v, double mean_rng[2], double sd_rng[2]) {
    mean_rng[0] = sd_rng[0] = INFINITY;
    mean_rng[1] = sd_rng[1] = -INFINITY;
    for (int c = 0; c < DEMO_C; c++) {
        double m, s;
        chan_stats(v, c, &m, &s);
        mean_rng[0] = fmin(mean_rng[0], m);
        mean_rng[1] = fmax(mean_rng[1], m);
        sd_rng[0] = fmin(sd_rng[0], s);
        sd_rng[1] = fmax(sd_rng[1], s);
    }
}

/* Rounds what would print as -0.000 to 0. */
static double tidy(double v) {
    return fabs(v) < 5e-4 ? 0.0 : v;
}

static double norm2(const float *v, int count) {
    double s = 0;
    for (int i = 0; i < count; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static int run_demo(uint64_t seed, bnk_bn_layer *layer, float *x, float *y, float *dy, float *dx) {
    const bnk_bn_config *cfg = bnk_bn_layer_config(layer);
    const bnk_bn_shape shape = {BNK_LAYOUT_NC, DEMO_N, DEMO_C, 1, 1};
    uint64_t rng = seed;
    bnk_status st;

    printf("bnkit %s demo: one BN layer, batch of %d x %d (N x C, NC layout), seed %llu\n",
           BNK_CLI_VERSION, DEMO_N, DEMO_C, (unsigned long long)seed);
    printf("kernel: %s (compiled:", bnk_bn_kernel_name());
    for (int i = 0; i < bnk_bn_kernel_count(); i++) printf(" %s", bnk_bn_kernel_at(i));
    printf("; BNK_ARCH=<name> forces one)\n");
    printf("momentum %g (bnkit/Keras convention) = PyTorch momentum %g; eps %g\n\n", cfg->momentum,
           1.0 - cfg->momentum, cfg->eps);

    make_batch(x, &rng);
    float rm_before[DEMO_C], rv_before[DEMO_C];
    memcpy(rm_before, bnk_bn_layer_running_mean(layer), sizeof rm_before);
    memcpy(rv_before, bnk_bn_layer_running_var(layer), sizeof rv_before);
    if ((st = bnk_bn_layer_forward(layer, &shape, true, y, x)) != BNK_OK) goto fail;
    const float *rm = bnk_bn_layer_running_mean(layer), *rv = bnk_bn_layer_running_var(layer);

    printf("training forward: y = (x - batch mean) / sqrt(batch var + eps), gamma 1, beta 0\n");
    printf("  ch  x mean  x std   y mean  y std   running mean    running var\n");
    for (int c = 0; c < DEMO_C; c++) {
        double xm, xs, ym, ys;
        chan_stats(x, c, &xm, &xs);
        chan_stats(y, c, &ym, &ys);
        printf("  %2d %7.3f %6.3f  %6.3f %6.3f   %4.1f -> %6.3f   %3.1f -> %6.3f\n", c, xm, xs,
               tidy(ym), ys, rm_before[c], rm[c], rv_before[c], rv[c]);
    }

    for (int i = 0; i < DEMO_N * DEMO_C; i++) dy[i] = (float)rng_normal(&rng);
    bnk_bn_layer_zero_grad(layer);
    if ((st = bnk_bn_layer_backward(layer, &shape, dx, dy, x, y)) != BNK_OK) goto fail;
    printf("\nbackward (random dy): |dgamma| = %.4f, |dbeta| = %.4f, |dx| = %.4f\n",
           norm2(bnk_bn_layer_dgamma(layer), DEMO_C), norm2(bnk_bn_layer_dbeta(layer), DEMO_C),
           norm2(dx, DEMO_N * DEMO_C));

    double mr[2], sr[2];
    if ((st = bnk_bn_layer_forward(layer, &shape, false, y, x)) != BNK_OK) goto fail;
    stat_ranges(y, mr, sr);
    printf("\ninference forward (running stats after 1 step):\n"
           "  y mean in [%.3f, %.3f], std in [%.3f, %.3f]: far from 0/1, the running stats\n"
           "  have moved only %g%% of the way to the batch statistics\n",
           mr[0], mr[1], sr[0], sr[1], 100.0 * (1.0 - cfg->momentum));

    for (int t = 0; t < DEMO_MORE_STEPS; t++) {
        make_batch(x, &rng);
        if ((st = bnk_bn_layer_forward(layer, &shape, true, y, x)) != BNK_OK) goto fail;
    }
    double worst_mean = 0, ratio[2] = {INFINITY, -INFINITY};
    for (int c = 0; c < DEMO_C; c++) {
        worst_mean = fmax(worst_mean, fabs(rm[c] - chan_mean(c)) / chan_sd(c));
        ratio[0] = fmin(ratio[0], sqrt(rv[c]) / chan_sd(c));
        ratio[1] = fmax(ratio[1], sqrt(rv[c]) / chan_sd(c));
    }
    make_batch(x, &rng);
    if ((st = bnk_bn_layer_forward(layer, &shape, false, y, x)) != BNK_OK) goto fail;
    stat_ranges(y, mr, sr);
    printf("after %d more training steps (step counter %lld):\n"
           "  running mean within %.3f std of the true channel means,\n"
           "  sqrt(running var) / true std in [%.3f, %.3f]\n"
           "  inference on a fresh batch: y mean in [%.3f, %.3f], std in [%.3f, %.3f]\n"
           "  (the spread is sampling noise of %d values per channel)\n",
           DEMO_MORE_STEPS, (long long)bnk_bn_layer_step(layer), worst_mean, ratio[0], ratio[1],
           mr[0], mr[1], sr[0], sr[1], DEMO_N);
    return BNK_CLI_OK;

fail:
    bnk__cli_error(CTX, "%s", bnk_errmsg());
    return bnk__cli_exit_for(st);
}

int bnk__cmd_demo(int argc, char **argv) {
    const char *vals[N_DEMO_OPTS];
    bnk_cli_optgroup group = {"", demo_opts, N_DEMO_OPTS, vals};
    int rc;
    if (bnk__cli_parse_or_help(
            &rc, CTX, argc, argv, &group,
            "usage: bnkit demo [--seed N]\n\n"
            "Runs a BN layer on a random batch with channel means and scales far from 0/1 and\n"
            "prints what each step does.\n\noptions:\n"))
        return rc;
    int64_t seed = 1;
    const char *seed_str = bnk__cli_value(&group, "seed");
    if (seed_str) {
        if ((rc = bnk__cli_parse_int64(CTX, "--seed", seed_str, &seed)) != BNK_CLI_OK) return rc;
        if (seed < 0) {
            bnk__cli_error(CTX, "--seed must be >= 0, got %lld", (long long)seed);
            return BNK_CLI_USAGE;
        }
    }

    bnk_bn_config cfg = bnk_bn_config_default();
    bnk_bn_layer *layer = NULL;
    bnk_status st = bnk_bn_layer_create(&layer, &cfg, DEMO_C);
    if (st != BNK_OK) {
        bnk__cli_error(CTX, "%s", bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    size_t count = (size_t)DEMO_N * DEMO_C;
    float *x = malloc(count * sizeof *x), *y = malloc(count * sizeof *y);
    float *dy = malloc(count * sizeof *dy), *dx = malloc(count * sizeof *dx);
    if (!x || !y || !dy || !dx) {
        bnk__cli_error(CTX, "out of memory");
        rc = BNK_CLI_FAIL;
    } else {
        rc = run_demo((uint64_t)seed, layer, x, y, dy, dx);
    }
    free(x);
    free(y);
    free(dy);
    free(dx);
    bnk_bn_layer_destroy(layer);
    return rc;
}
