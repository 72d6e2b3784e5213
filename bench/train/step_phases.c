/* step_phases — where a training step's time goes: the thread's own CPU time
 * (CLOCK_THREAD_CPUTIME_ID, which does not count time the thread was preempted, so the figures
 * stay meaningful on a loaded machine) of each phase of `bnkit train`'s step, through the public
 * API, on Fashion-MNIST batches of 100, one thread, Adam 1e-3, BN momentum 0.9.
 *
 *   bench_step_phases [SPEC] [ROUNDS] [STEPS]    (dense:128,relu,bn,dense:10, 5, 600)
 *
 * Prints, per phase, the µs per step of the best of ROUNDS rounds of STEPS steps (after one
 * warm-up round), and the best round's total. docs/PERFORMANCE.md ("Trainer") compares builds
 * by running this alternately on the old and the new one. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <omp.h>

#include "bnkit/data.h"
#include "bnkit/nn.h"

enum { BATCH = 100, NPHASES = 5 };
static const char *const PHASES[NPHASES] = {"batch", "forward", "loss", "zero+backward", "adam"};

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *what) {
    fprintf(stderr, "bench_step_phases: %s: %s\n", what, bnk_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : "dense:128,relu,bn,dense:10";
    const int rounds = argc > 2 ? atoi(argv[2]) : 5, steps = argc > 3 ? atoi(argv[3]) : 600;
    if (rounds < 1 || steps < 1) {
        fprintf(stderr, "usage: bench_step_phases [SPEC] [ROUNDS >= 1] [STEPS >= 1]\n");
        return 2;
    }
    omp_set_num_threads(1);
    bnk_dataset *ds = NULL;
    if (bnk_dataset_load(&ds, "fashion-mnist", BNK_SPLIT_TRAIN) != BNK_OK) return fail("data");
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = spec;
    mc.bn.momentum = 0.9;
    bnk_model *m = NULL;
    if (bnk_model_create(&m, &mc) != BNK_OK) return fail("model");
    const bnk_optim_config oc = bnk_optim_config_default(BNK_OPTIM_ADAM);
    bnk_optim *opt = NULL;
    if (bnk_optim_create(&opt, &oc, bnk_model_num_params(m)) != BNK_OK) return fail("optimiser");
    const int64_t n = bnk_dataset_size(ds), nbatches = n / BATCH;
    const size_t in = (size_t)(mc.in_c * mc.in_h * mc.in_w);
    int64_t *order = malloc((size_t)n * sizeof *order);
    float *x = malloc(BATCH * in * sizeof *x);
    int32_t labels[BATCH];
    if (!order || !x || nbatches < 1) {
        fprintf(stderr, "bench_step_phases: out of memory or empty data set\n");
        return 1;
    }
    uint64_t rng = 1;
    bnk_dataset_shuffle(ds, order, &rng);

    double best[NPHASES], best_total = INFINITY;
    for (int k = 0; k < NPHASES; k++) best[k] = INFINITY;
    for (int r = 0; r <= rounds; r++) { /* round 0 warms up */
        double t[NPHASES] = {0};
        for (int s = 0; s < steps; s++) {
            const int64_t *rows = order + (s % nbatches) * BATCH;
            double loss;
            int64_t hits;
            const double t0 = cpu_seconds();
            bnk_status st = bnk_dataset_batch(ds, rows, BATCH, BNK_SCALE_UNIT, NULL, x, labels);
            const double t1 = cpu_seconds();
            if (st == BNK_OK) st = bnk_model_forward(m, x, BATCH, true);
            const double t2 = cpu_seconds();
            if (st == BNK_OK) st = bnk_model_loss(m, labels, BATCH, &loss, &hits);
            const double t3 = cpu_seconds();
            bnk_model_zero_grad(m);
            if (st == BNK_OK) st = bnk_model_backward(m, BATCH);
            const double t4 = cpu_seconds();
            bnk_optim_step(opt, bnk_model_params(m), bnk_model_grads(m), bnk_model_decay_mask(m),
                           oc.lr);
            const double t5 = cpu_seconds();
            if (st != BNK_OK) return fail("training step");
            t[0] += t1 - t0;
            t[1] += t2 - t1;
            t[2] += t3 - t2;
            t[3] += t4 - t3;
            t[4] += t5 - t4;
        }
        if (r == 0) continue;
        double total = 0.0;
        for (int k = 0; k < NPHASES; k++) {
            const double us = t[k] * 1e6 / steps;
            total += us;
            if (us < best[k]) best[k] = us;
        }
        if (total < best_total) best_total = total;
    }
    printf("%s, batch %d, 1 thread: CPU µs per step, best of %d rounds of %d steps\n", spec, BATCH,
           rounds, steps);
    for (int k = 0; k < NPHASES; k++) printf("  %-14s %8.1f\n", PHASES[k], best[k]);
    printf("  %-14s %8.1f  (best round)\n", "total", best_total);
    free(x);
    free(order);
    bnk_optim_destroy(opt);
    bnk_model_destroy(m);
    bnk_dataset_destroy(ds);
    return 0;
}
