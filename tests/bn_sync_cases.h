/* The synchronised-BN equivalence check shared by test_bn_sync.c (members are threads) and
 * test_bn_mpi.c (members are MPI ranks): one batch, its single-process reference
 * (bnk_bn_forward_train + bnk_bn_backward over the whole batch), uneven shards of it (one
 * empty from 3 members on), and comparisons of each member's results with the reference.
 * The comparisons print every failing quantity (first bad index, expected, got) and return
 * the number of failures, so that both a cmocka test and a plain MPI program can use them. */
#ifndef BNKIT_TEST_BN_SYNC_CASES_H
#define BNKIT_TEST_BN_SYNC_CASES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_cases.h"

/* Channels 0-3 are bn_cases.h's (so that every clamp of bnk_cases clips somewhere); channel 4
 * (SYNC_BIG) has mean 1e4 and standard deviation 1e-2, where a merge from sums of squares would
 * lose every digit of the variance. A problem has SYNC_C channels, or SYNC_MAX_C in a blocked
 * layout (nChw8c: two blocks; nChw16c: one), whose channels 5.. are bn_cases.h's again. */
enum { SYNC_C = 5, SYNC_MAX_C = 16, SYNC_BIG = 4, SYNC_MAX_MEMBERS = 4 };

/* The channels of a problem in this layout. */
static inline size_t bnk_sync_channels(bnk_layout layout) {
    return layout == BNK_LAYOUT_NCHW16C || layout == BNK_LAYOUT_NCHW8C ? SYNC_MAX_C : SYNC_C;
}

/* Shard sizes n[0..K) of a K-member group over N >= 9 samples: uneven, an empty shard from
 * K = 3 on, and a one-sample shard at K = 4. */
static inline void bnk_sync_shards(int K, int64_t N, int64_t *n) {
    switch (K) {
    case 1:
        n[0] = N;
        break;
    case 2:
        n[0] = 3, n[1] = N - 3;
        break;
    case 3:
        n[0] = N - 4, n[1] = 0, n[2] = 4;
        break;
    default:
        n[0] = 1, n[1] = N - 6, n[2] = 0, n[3] = 5;
        break;
    }
}

/* A whole batch and its single-process reference. */
/* Arrays of [C] are sized SYNC_MAX_C; the first C are used (saved's fields are C apart). */
typedef struct bnk_sync_problem {
    bnk_bn_shape shape; /* the whole batch */
    size_t c, numel, per_sample;
    float *x, *dy; /* [numel] */
    float gamma[SYNC_MAX_C], beta[SYNC_MAX_C], rm0[SYNC_MAX_C], rv0[SYNC_MAX_C];
    /* reference results */
    float *y, *dx; /* [numel] */
    double saved[BNK_BN_SAVED_FIELDS * SYNC_MAX_C];
    float rm[SYNC_MAX_C], rv[SYNC_MAX_C], dgamma[SYNC_MAX_C], dbeta[SYNC_MAX_C];
} bnk_sync_problem;

/* Fills a problem of N samples of (bnk_sync_channels(layout), h, w) in the given layout from
 * seed; the reference is computed later by bnk_sync_reference (per configuration). Returns 0,
 * or -1 when out of memory. */
static inline int bnk_sync_problem_init(bnk_sync_problem *p, bnk_layout layout, int64_t N,
                                        int64_t h, int64_t w, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->c = bnk_sync_channels(layout);
    p->shape = (bnk_bn_shape){layout, N, (int64_t)p->c, h, w};
    p->per_sample = p->c * (size_t)(h * w);
    p->numel = (size_t)N * p->per_sample;
    bnk__bn_dims d = bnk__bn_dims_of(&p->shape);
    const size_t m = (size_t)N * (size_t)(h * w);
    double *xd = malloc(p->numel * sizeof(double)), *z = malloc(m * sizeof(double));
    p->x = malloc(p->numel * sizeof(float));
    p->dy = malloc(p->numel * sizeof(float));
    p->y = malloc(p->numel * sizeof(float));
    p->dx = malloc(p->numel * sizeof(float));
    if (!xd || !z || !p->x || !p->dy || !p->y || !p->dx) {
        free(xd);
        free(z);
        return -1;
    }
    uint64_t rng = seed;
    bnk_case_fill_x(&d, xd, z, &rng);
    for (size_t j = 0; j < m; j++) /* the large-mean channel */
        xd[bnk_case_index(&d, SYNC_BIG, j)] = 1e4 + 1e-2 * bnk_test_normal(&rng);
    for (size_t i = 0; i < p->numel; i++) {
        p->x[i] = (float)xd[i];
        p->dy[i] = (float)bnk_test_normal(&rng);
    }
    for (size_t c = 0; c < p->c; c++) {
        p->gamma[c] = (float)(0.8 + 0.3 * (double)c);
        p->beta[c] = (float)(0.1 * (double)c - 0.2);
    }
    bnk_case_fill_running(p->c, p->rm0, p->rv0);
    free(xd);
    free(z);
    return 0;
}

static inline void bnk_sync_problem_free(bnk_sync_problem *p) {
    free(p->x);
    free(p->dy);
    free(p->y);
    free(p->dx);
}

/* The single-process reference over the whole batch; returns its status. */
static inline bnk_status bnk_sync_reference(bnk_sync_problem *p, const bnk_bn_config *cfg,
                                            int64_t step) {
    memcpy(p->rm, p->rm0, sizeof p->rm);
    memcpy(p->rv, p->rv0, sizeof p->rv);
    memset(p->dgamma, 0, sizeof p->dgamma);
    memset(p->dbeta, 0, sizeof p->dbeta);
    bnk_status st = bnk_bn_forward_train(cfg, &p->shape, step, p->y, p->saved, p->rm, p->rv, p->x,
                                         p->gamma, p->beta);
    if (st != BNK_OK) return st;
    return bnk_bn_backward(cfg, &p->shape, p->dx, p->dgamma, p->dbeta, p->dy, p->x, p->y, p->gamma,
                           p->saved);
}

/* One member's shard [n0, n0 + n) of the batch and its results. */
typedef struct bnk_sync_member {
    int64_t n0, n;
    bnk_bn_shape shape;
    float *y, *dx; /* [n * per_sample], NULL when n = 0 */
    double saved[BNK_BN_SAVED_FIELDS * SYNC_MAX_C];
    float rm[SYNC_MAX_C], rv[SYNC_MAX_C], dgamma[SYNC_MAX_C], dbeta[SYNC_MAX_C];
    bnk_status st_forward, st_backward;
} bnk_sync_member;

/* Sets up member k of the shards n[] (buffers allocated; -1 when out of memory). */
static inline int bnk_sync_member_init(bnk_sync_member *mb, const bnk_sync_problem *p,
                                       const int64_t *n, int k) {
    memset(mb, 0, sizeof *mb);
    for (int i = 0; i < k; i++) mb->n0 += n[i];
    mb->n = n[k];
    mb->shape = p->shape;
    mb->shape.n = mb->n;
    if (mb->n > 0) {
        const size_t len = (size_t)mb->n * p->per_sample;
        mb->y = malloc(len * sizeof(float));
        mb->dx = malloc(len * sizeof(float));
        if (!mb->y || !mb->dx) return -1;
    }
    return 0;
}

static inline void bnk_sync_member_free(bnk_sync_member *mb) {
    free(mb->y);
    free(mb->dx);
    mb->y = mb->dx = NULL;
}

/* Runs the synchronised forward and backward on the member's shard (an empty shard passes
 * NULL data pointers, which the API allows). */
static inline void bnk_sync_member_run(bnk_sync_member *mb, const bnk_sync_problem *p,
                                       const bnk_bn_config *cfg, int64_t step,
                                       const bnk_bn_comm *comm) {
    const size_t off = (size_t)mb->n0 * p->per_sample;
    const float *x = mb->n > 0 ? p->x + off : NULL, *dy = mb->n > 0 ? p->dy + off : NULL;
    memcpy(mb->rm, p->rm0, sizeof mb->rm);
    memcpy(mb->rv, p->rv0, sizeof mb->rv);
    memset(mb->dgamma, 0, sizeof mb->dgamma);
    memset(mb->dbeta, 0, sizeof mb->dbeta);
    mb->st_forward = bnk_bn_forward_train_sync(cfg, &mb->shape, step, mb->y, mb->saved, mb->rm,
                                               mb->rv, x, p->gamma, p->beta, comm);
    mb->st_backward = BNK_ERR_UNSUPPORTED; /* not run */
    if (mb->st_forward != BNK_OK) return;
    mb->st_backward = bnk_bn_backward_sync(cfg, &mb->shape, mb->dx, mb->dgamma, mb->dbeta, dy, x,
                                           mb->y, p->gamma, mb->saved, comm);
}

/* Checks |got - ref| <= atol + rtol*|ref| for value i; prints a violation. NaN passes only
 * against NaN. Returns 1 on a violation, else 0. */
static inline int bnk_sync_bad_at(const char *what, const char *label, int member, size_t i,
                                  double got, double ref, double atol, double rtol) {
    if (isnan(got) && isnan(ref)) return 0;
    if (fabs(got - ref) <= atol + rtol * fabs(ref)) return 0;
    printf("FAIL %s [%s] member %d: index %zu: expected %.10g, got %.10g (|diff| %.3g > atol "
           "%.3g + rtol %.3g)\n",
           what, label, member, i, ref, got, fabs(got - ref), atol, rtol);
    return 1;
}

/* The check for count floats (f) or doubles (d); stops at the first violation. */
static inline int bnk_sync_close_f(const char *what, const char *label, int member, size_t count,
                                   const float *got, const float *ref, double atol, double rtol) {
    for (size_t i = 0; i < count; i++)
        if (bnk_sync_bad_at(what, label, member, i, got[i], ref[i], atol, rtol)) return 1;
    return 0;
}
static inline int bnk_sync_close_d(const char *what, const char *label, int member, size_t count,
                                   const double *got, const double *ref, double atol, double rtol) {
    for (size_t i = 0; i < count; i++)
        if (bnk_sync_bad_at(what, label, member, i, got[i], ref[i], atol, rtol)) return 1;
    return 0;
}

static inline double bnk_sync_maxabs_f(const float *v, size_t count) {
    double mx = 0.0;
    for (size_t i = 0; i < count; i++) mx = fmax(mx, fabs((double)v[i]));
    return mx;
}

/* Compares member k's results with the reference; returns the number of failing quantities.
 * Tolerances: y, dx and the parameter gradients are float results of sums taken in a
 * different order (per shard, then merged) than the reference's, so they agree to a few float
 * roundings of the array's largest magnitude: 1e-5 of it, plus 1e-5 relative. The saved
 * statistics are double: the merged moments agree to ~1e-13 relative, so 1e-9 relative (plus
 * 1e-12 of the field's largest magnitude) still catches a merge from sums of squares on the
 * large-mean channel. Running statistics are the same doubles rounded to float: 1 ulp. */
static inline int bnk_sync_compare_member(const bnk_sync_problem *p, const bnk_sync_member *mb,
                                          int k, const char *label) {
    int bad = 0;
    if (mb->st_forward != BNK_OK || mb->st_backward != BNK_OK) {
        printf("FAIL status [%s] member %d: forward %s, backward %s: %s\n", label, k,
               bnk_status_str(mb->st_forward), bnk_status_str(mb->st_backward), bnk_errmsg());
        return 1;
    }
    const size_t off = (size_t)mb->n0 * p->per_sample, len = (size_t)mb->n * p->per_sample;
    if (len) {
        const double ymax = bnk_sync_maxabs_f(p->y, p->numel);
        const double dxmax = bnk_sync_maxabs_f(p->dx, p->numel);
        bad += bnk_sync_close_f("y", label, k, len, mb->y, p->y + off, 1e-5 * ymax, 1e-5);
        bad += bnk_sync_close_f("dx", label, k, len, mb->dx, p->dx + off, 1e-5 * dxmax, 1e-5);
    }
    const size_t C = p->c;
    for (size_t f = 0; f < BNK_BN_SAVED_FIELDS; f++) {
        double fmaxv = 0.0;
        for (size_t c = 0; c < C; c++) fmaxv = fmax(fmaxv, fabs(p->saved[f * C + c]));
        char what[32];
        snprintf(what, sizeof what, "saved field %zu", f);
        bad += bnk_sync_close_d(what, label, k, C, mb->saved + f * C, p->saved + f * C,
                                1e-12 * fmaxv, 1e-9);
    }
    bad += bnk_sync_close_f("running_mean", label, k, C, mb->rm, p->rm, 0.0, 2e-7);
    bad += bnk_sync_close_f("running_var", label, k, C, mb->rv, p->rv, 0.0, 2e-7);
    return bad;
}

/* Compares the group's parameter gradients (each member's, summed) with the reference. */
static inline int bnk_sync_compare_params(const bnk_sync_problem *p, const double *dgamma_sum,
                                          const double *dbeta_sum, const char *label) {
    const size_t C = p->c;
    float g[SYNC_MAX_C], b[SYNC_MAX_C];
    for (size_t c = 0; c < C; c++) g[c] = (float)dgamma_sum[c], b[c] = (float)dbeta_sum[c];
    return bnk_sync_close_f("sum of dgamma", label, -1, C, g, p->dgamma,
                            1e-5 * bnk_sync_maxabs_f(p->dgamma, C), 1e-5) +
           bnk_sync_close_f("sum of dbeta", label, -1, C, b, p->dbeta,
                            1e-5 * bnk_sync_maxabs_f(p->dbeta, C), 1e-5);
}

static inline const char *bnk_sync_layout_name(bnk_layout l) {
    switch (l) {
    case BNK_LAYOUT_NC:
        return "NC";
    case BNK_LAYOUT_NCHW:
        return "NCHW";
    case BNK_LAYOUT_NHWC:
        return "NHWC";
    case BNK_LAYOUT_NCHW16C:
        return "nChw16c";
    case BNK_LAYOUT_NCHW8C:
        return "nChw8c";
    }
    return "?";
}

#endif /* BNKIT_TEST_BN_SYNC_CASES_H */
