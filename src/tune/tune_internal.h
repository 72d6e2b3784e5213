/* Internal interface of the tuner's samplers (not installed): the entry points that
 * bnk_sampler_suggest (sampler.c) dispatches to, and the helpers the samplers share.
 *
 * Every sampler is a pure function of (config, space, history, number): it seeds its RNG with
 * bnk__trial_rng(cfg->seed, number, stream), never from a clock or a global, so that any process
 * suggests the same point for the same study state. bnk_sampler_suggest validates its arguments
 * (non-NULL, a non-empty space, nhistory >= 0, number >= 0, sane config) before dispatching, so
 * the functions below may assume them. Each writes NaN for every parameter that is inactive at
 * the point it returns. */
#ifndef BNKIT_TUNE_INTERNAL_H
#define BNKIT_TUNE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "bnkit/tune.h"

/* ---- Sampler entry points ------------------------------------------------------------------ */

/* GRID, RANDOM, SOBOL (sampler.c, sobol.c), TPE (tpe.c), GP (gp.c). Same contract as
 * bnk_sampler_suggest. */
bnk_status bnk__grid_suggest(const bnk_sampler_config *cfg, const bnk_space *space, int64_t number,
                             bnk_point *out);
bnk_status bnk__random_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                               int64_t number, bnk_point *out);
bnk_status bnk__sobol_suggest(const bnk_sampler_config *cfg, const bnk_space *space, int64_t number,
                              bnk_point *out);
bnk_status bnk__tpe_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                            const bnk_trial *history, int64_t nhistory, int64_t number,
                            bnk_point *out);
bnk_status bnk__gp_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                           const bnk_trial *history, int64_t nhistory, int64_t number,
                           bnk_point *out);

/* ---- Shared helpers (sampler.c) ------------------------------------------------------------ */

/* RNG streams: one per use, so that e.g. TPE's random start and its model draws for the same
 * trial are independent. */
enum {
    BNK__STREAM_RANDOM = 1, /* RANDOM sampler, and the random start of TPE and GP */
    BNK__STREAM_SOBOL = 2,  /* the scramble of the Sobol sequence (per seed, not per trial) */
    BNK__STREAM_TPE = 3,    /* TPE's candidate draws */
    BNK__STREAM_GP = 4      /* GP: candidate generation, restarts */
};

/* State for bnk__rng_* (core/rng.h) of trial `number`: a hash of (seed, number, stream), so
 * that suggestions are deterministic and independent of the process that computes them. */
uint64_t bnk__trial_rng(uint64_t seed, int64_t number, uint64_t stream);

/* A uniformly random point: parameters drawn in definition order (parents before children),
 * FLOAT/INT uniform in unit coordinates (so log parameters are log-uniform, and every integer
 * gets an equal share), CAT uniform over the choices; inactive parameters NaN. */
void bnk__sample_random(const bnk_space *space, uint64_t *rng, bnk_point *out);

/* Sets every parameter that is inactive at x to NaN (in definition order, so it may be called on
 * a point whose inactive entries hold garbage). */
void bnk__point_mask_inactive(const bnk_space *space, bnk_point *x);

/* Number of finished trials (COMPLETE or PRUNED): what n_startup counts. */
int64_t bnk__count_finished(const bnk_trial *history, int64_t nhistory);

/* The COMPLETE trials with a finite loss: their indices in history (may be NULL) and losses
 * (may be NULL), each array [nhistory]; returns how many were written. */
int64_t bnk__complete_losses(const bnk_trial *history, int64_t nhistory, int64_t *index,
                             double *loss);

/* How TPE ranks a PRUNED trial (Optuna's rule): *step = the deepest step it reported (ncurve),
 * *loss = its loss at that step (NaN when missing: NaN ranks worst). */
void bnk__pruned_rank(const bnk_trial *t, int64_t *step, double *loss);

/* ---- Sobol (sobol.c) ----------------------------------------------------------------------- */

enum { BNK__SOBOL_MAX_DIM = 32 };

/* Point `index` of the Owen-scrambled Sobol sequence in [0, 1)^dim (dim <= 32): u[dim]. The
 * scramble is a function of scramble_seed alone, so consecutive indices 0, 1, 2, ... of one seed
 * form a low-discrepancy set (also a source of quasi-random candidates for the GP). */
void bnk__sobol_point(uint64_t scramble_seed, uint64_t index, int dim, double *u);

#endif /* BNKIT_TUNE_INTERNAL_H */
