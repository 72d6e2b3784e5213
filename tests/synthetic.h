/* Synthetic objectives with known optima for the sampler tests (and bench/): each maps a point
 * of its search space to a loss (lower is better). Last, the configuration of a synthetic study
 * for the storage and report tests. */
#ifndef BNKIT_TEST_SYNTHETIC_H
#define BNKIT_TEST_SYNTHETIC_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "bnkit/tune.h"

/* Branin on x1 in [-5, 10], x2 in [0, 15]; minimum 0.397887 at three points. */
static inline void bnk_synth_branin_space(bnk_space *s) {
    bnk_space_init(s);
    bnk_space_add(s, "x1=float:-5:10");
    bnk_space_add(s, "x2=float:0:15");
}
static inline double bnk_synth_branin(const bnk_point *x) {
    const double pi = 3.14159265358979323846, x1 = x->v[0], x2 = x->v[1];
    const double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
    return pow(x2 - b * x1 * x1 + c * x1 - 6, 2) + 10 * (1 - t) * cos(x1) + 10;
}
#define BNK_SYNTH_BRANIN_MIN 0.397887

/* Hartmann-6 on [0, 1]^6; minimum -3.32237. */
static inline void bnk_synth_hartmann6_space(bnk_space *s) {
    bnk_space_init(s);
    static const char *const defs[] = {"x1=float:0:1", "x2=float:0:1", "x3=float:0:1",
                                       "x4=float:0:1", "x5=float:0:1", "x6=float:0:1"};
    for (int i = 0; i < 6; i++) bnk_space_add(s, defs[i]);
}
static inline double bnk_synth_hartmann6(const bnk_point *x) {
    static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
    static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                   {0.05, 10, 17, 0.1, 8, 14},
                                   {3, 3.5, 1.7, 10, 17, 8},
                                   {17, 8, 0.05, 10, 0.1, 14}};
    static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                   {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                   {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                   {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        double inner = 0;
        for (int j = 0; j < 6; j++) inner += A[i][j] * pow(x->v[j] - P[i][j], 2);
        sum += alpha[i] * exp(-inner);
    }
    return -sum;
}
#define BNK_SYNTH_HARTMANN6_MIN (-3.32237)

/* A categorical/conditional toy shaped like the BN space: kind in {a, b, c}; "a" uses
 * u in [0, 1] (best 0.2 at u = 0.3), "b" uses v log-uniform in [1e-4, 1] (best 0 at v = 1e-2),
 * "c" is constant 1. Minimum 0 (kind b, v = 0.01). */
static inline void bnk_synth_cond_space(bnk_space *s) {
    bnk_space_init(s);
    bnk_space_add(s, "kind=cat:a,b,c");
    bnk_space_add(s, "u=float:0:1@kind=a");
    bnk_space_add(s, "v=log:1e-4:1@kind=b");
}
static inline double bnk_synth_cond(const bnk_point *x) {
    switch ((int)x->v[0]) {
    case 0:
        return 0.2 + pow(x->v[1] - 0.3, 2);
    case 1:
        return pow(log10(x->v[2]) + 2.0, 2) / 4.0;
    default:
        return 1.0;
    }
}
#define BNK_SYNTH_COND_MIN 0.0

/* *c = the defaults with the given name, a space of the n definitions in params (bnk_space_add
 * syntax, in order), sampler `kind` seeded with seed, no pruner, and train_args. Returns BNK_OK,
 * or the status of the first definition that bnk_space_add refuses (message in bnk_errmsg). */
static inline bnk_status bnk_synth_study_config(bnk_study_config *c, const char *name,
                                                const char *const *params, int n,
                                                bnk_sampler_kind kind, uint64_t seed,
                                                const char *train_args) {
    *c = bnk_study_config_default();
    snprintf(c->name, sizeof c->name, "%s", name);
    bnk_space_init(&c->space);
    for (int i = 0; i < n; i++) {
        bnk_status st = bnk_space_add(&c->space, params[i]);
        if (st != BNK_OK) return st;
    }
    c->sampler = bnk_sampler_config_default(kind);
    c->sampler.seed = seed;
    c->pruner = bnk_pruner_config_default(BNK_PRUNER_NONE);
    snprintf(c->train_args, sizeof c->train_args, "%s", train_args);
    return BNK_OK;
}

#endif /* BNKIT_TEST_SYNTHETIC_H */
