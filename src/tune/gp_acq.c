/* The GP sampler (BNK_SAMPLER_GP): Gaussian-process Bayesian optimisation with log expected
 * improvement, after Optuna's GPSampler (anchors b3). Stateless: a pure function of the config,
 * the space, the history and the trial number.
 *
 *   1. Fewer than n_startup finished (COMPLETE or PRUNED) trials: the random sampler's point.
 *   2. Observations (lower is better):
 *      - COMPLETE trials with a finite loss;
 *      - PRUNED trials with their last finite reported loss, capped at the worst COMPLETE loss:
 *        the pruner stopped them for looking worse than their peers, so their partial loss is a
 *        pessimistic but informative guess, and the cap keeps an early-step loss (often on a
 *        much worse scale than any final loss) from dominating the standardisation;
 *      - FAILED trials, and any non-finite value, never enter the model;
 *      - with constant_liar, RUNNING trials of other workers enter with the best observed loss
 *        ("best" constant liar), which flattens EI around pending points.
 *      Losses are standardised (mean 0, sd 1; sd 1 when all are equal).
 *   3. Inputs: one kernel dimension per parameter (gp.h): unit coordinates for FLOAT/INT (log
 *      parameters already in log space), category indices compared by Hamming distance for CAT,
 *      and for conditional parameters an "inactive" state that is at distance >= 1 from every
 *      active value and 0 from itself (imputed position + indicator for numbers, an extra
 *      category for CAT). Every trial is used whatever its branch, and points in other branches
 *      still inform the shared parameters.
 *   4. The GP's hyperparameters are fitted (MAP, gp.c); a numerical failure falls back to the
 *      random point.
 *   5. log EI (with a minimum improvement of 0.01 standard deviations, see EI_XI) is maximised
 *      over the whole space, conditional structure included: 2048 scrambled Sobol candidates
 *      plus the best observed point; the best candidate and 9 more drawn with probability
 *      proportional to EI start local searches that alternate NLopt L-BFGS over the active
 *      FLOAT coordinates with an exhaustive search over each active CAT and each INT with at
 *      most 16 values, and a doubling-step line search over larger INTs (INT candidates stay on
 *      their integer grid throughout), until a round gains less than 1e-4 in log EI.
 *   6. The winner is mapped back with bnk_space_from_unit; inactive parameters are NaN. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nlopt.h>

#include "core/internal.h"
#include "core/rng.h"
#include "tune/gp.h"
#include "tune/tune_internal.h"

enum {
    N_CANDIDATES = 2048, /* Sobol preliminary samples (Optuna's)                     */
    N_LOCAL_SEARCH = 10, /* local searches (Optuna's)                                */
    MAX_ROUNDS = 20,     /* rounds of continuous + discrete search per start          */
    MAX_EXHAUSTIVE = 16, /* INTs with more values get the line search (Optuna's)      */
    CHUNK = 256,         /* candidates predicted per batch                            */
    N_FIT_RESTARTS = 2,  /* random starts of the hyperparameter fit beyond the default */
    MAX_N_RESTARTS = 200 /* ... with at most this many observations: beyond, the likelihood
                          * is sharp, and on Hartmann-6 with n = 500 the restarts took 2/3 of
                          * the fit's 1.2 s and found the same optimum */
};
static const double ROUND_TOL = 1e-4;  /* log EI gain under which a local search stops */
static const double VAR_FLOOR = 1e-12; /* added to the posterior variance (Optuna's)   */
/* EI's minimum improvement, in standardised units (skopt's and GPyOpt's default; Optuna has 0).
 * Without it, EI on a near-noiseless objective keeps proposing 1e-6 improvements next to the
 * incumbent and may never leave a locally optimal branch: with 0, 5 in 60 runs of the
 * conditional toy (tests/synthetic.h, budget 40, seeds 100-159) spent their last 30 trials
 * creeping along branch "a" (regret 0.2); 4 with 0.005; none with 0.01. The price is a coarser
 * final refinement (mean Branin regret after 40 trials 0.033 instead of 0.0003, against random
 * search's 1.39). */
static const double EI_XI = 0.01;

/* ---- Encoding ------------------------------------------------------------------------------ */

/* A raw point z [d]: unit coordinates for FLOAT/INT (INT on its grid), choice indices for CAT,
 * every entry defined whether or not active. act[i] gets whether parameter i is active. */
static void activity(const bnk_space *space, const double *z, bool *act) {
    for (int i = 0; i < space->n; i++) {
        const bnk_param *p = &space->params[i];
        act[i] =
            p->parent < 0 || (act[p->parent] && (p->parent_choices >> (int)z[p->parent] & 1u) != 0);
    }
}

/* z [d] -> the kernel's encoding x [2d] (gp.h). */
static void encode(const bnk_space *space, const double *z, double *x) {
    bool act[BNK_SPACE_MAX_PARAMS];
    activity(space, z, act);
    for (int i = 0; i < space->n; i++) {
        if (space->params[i].kind == BNK_PARAM_CAT) {
            x[2 * i] = act[i] ? z[i] : -1;
            x[2 * i + 1] = 0;
        } else {
            x[2 * i] = act[i] ? z[i] : 0.5;
            x[2 * i + 1] = act[i] ? 0 : 1;
        }
    }
}

static double clamp01(double u) {
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

/* An INT's unit coordinate snapped to the centre of its integer's interval. */
static double snap_int(const bnk_space *space, int i, double u) {
    return clamp01(bnk_space_to_unit(space, i, bnk_space_from_unit(space, i, u)));
}

/* A trial's point -> z; false if an active value is unusable (NaN, a bad choice index). */
static bool trial_to_raw(const bnk_space *space, const bnk_point *pt, double *z) {
    for (int i = 0; i < space->n; i++) {
        const bnk_param *p = &space->params[i];
        z[i] = p->kind == BNK_PARAM_CAT ? 0 : 0.5;
        if (!bnk_space_active(space, pt, i)) continue;
        const double v = pt->v[i];
        if (p->kind == BNK_PARAM_CAT) {
            if (!(v >= 0 && v < p->nchoices) || v != floor(v)) return false;
            z[i] = v;
        } else {
            if (!isfinite(v)) return false;
            z[i] = clamp01(bnk_space_to_unit(space, i, v));
        }
    }
    return true;
}

/* ---- Observations ------------------------------------------------------------------------- */

/* A PRUNED trial's last finite loss (its recorded loss, else the deepest finite step). */
static double pruned_loss(const bnk_trial *t) {
    if (isfinite(t->loss)) return t->loss;
    for (int64_t k = t->ncurve - 1; k >= 0 && t->curve; k--)
        if (isfinite(t->curve[k])) return t->curve[k];
    return NAN;
}

typedef struct observations {
    int n;     /* rows used (real observations first, then liars)          */
    int nreal; /* real observations                                         */
    double *z; /* [nhistory][d] raw points                                 */
    double *x; /* [nhistory][2d] encodings                                 */
    double *y; /* [nhistory] standardised targets                          */
    int best;  /* row of the best real observation                         */
} observations;

static bnk_status collect(const bnk_sampler_config *cfg, const bnk_space *space,
                          const bnk_trial *history, int64_t nhistory, int64_t number,
                          observations *obs) {
    const int d = space->n;
    const size_t rows = nhistory > 0 ? (size_t)nhistory : 1;
    if (nhistory > INT32_MAX / (2 * BNK_SPACE_MAX_PARAMS))
        return bnk__fail(BNK_ERR_SIZE, "GP sampler: history too long");
    obs->z = malloc(rows * d * sizeof *obs->z);
    obs->x = malloc(rows * 2 * d * sizeof *obs->x);
    obs->y = malloc(rows * sizeof *obs->y);
    if (!obs->z || !obs->x || !obs->y) return bnk__fail(BNK_ERR_NOMEM, "GP sampler: out of memory");

    double worst = -INFINITY;
    for (int64_t t = 0; t < nhistory; t++)
        if (history[t].state == BNK_TRIAL_COMPLETE && isfinite(history[t].loss) &&
            history[t].loss > worst)
            worst = history[t].loss;
    int n = 0;
    for (int64_t t = 0; t < nhistory; t++) {
        const bnk_trial *tr = &history[t];
        double y;
        if (tr->state == BNK_TRIAL_COMPLETE) {
            y = tr->loss;
        } else if (tr->state == BNK_TRIAL_PRUNED) {
            y = pruned_loss(tr);
            if (isfinite(worst) && y > worst) y = worst;
        } else {
            continue;
        }
        if (!isfinite(y) || !trial_to_raw(space, &tr->x, obs->z + (size_t)n * d)) continue;
        obs->y[n++] = y;
    }
    obs->nreal = n;
    if (n == 0) {
        obs->n = 0;
        return BNK_OK;
    }
    double mean = 0, var = 0;
    for (int j = 0; j < n; j++) mean += obs->y[j];
    mean /= n;
    for (int j = 0; j < n; j++) var += (obs->y[j] - mean) * (obs->y[j] - mean);
    double sd = sqrt(var / n);
    if (!(sd > 1e-12 * (1 + fabs(mean)))) sd = 1;
    obs->best = 0;
    for (int j = 0; j < n; j++) {
        obs->y[j] = (obs->y[j] - mean) / sd;
        if (obs->y[j] < obs->y[obs->best]) obs->best = j;
    }
    if (cfg->constant_liar)
        for (int64_t t = 0; t < nhistory; t++) {
            const bnk_trial *tr = &history[t];
            if (tr->state != BNK_TRIAL_RUNNING || tr->number == number) continue;
            if (!trial_to_raw(space, &tr->x, obs->z + (size_t)n * d)) continue;
            obs->y[n++] = obs->y[obs->best];
        }
    obs->n = n;
    for (int j = 0; j < n; j++) encode(space, obs->z + (size_t)j * d, obs->x + (size_t)j * 2 * d);
    return BNK_OK;
}

/* ---- Acquisition ---------------------------------------------------------------------------- */

typedef struct acq {
    const bnk_space *space;
    const bnk__gp *gp;
    double best;  /* the best standardised observation (EI's threshold) */
    double *work; /* [3n] for bnk__gp_predict                          */
    /* L-BFGS over a subset of coordinates of a base point */
    double z[BNK_SPACE_MAX_PARAMS];
    int cont[BNK_SPACE_MAX_PARAMS], ncont;
    double fbest, zbest[BNK_SPACE_MAX_PARAMS];
} acq;

/* log EI from the posterior mean and variance; *dmu and *dvar (may be NULL) get its
 * derivatives. */
static double log_ei(double best, double mu, double var, double *dmu, double *dvar) {
    const double sigma = sqrt(var + VAR_FLOOR), z = (best - mu) / sigma;
    double ratio;
    const double f = log(sigma) + bnk__gp_log_h(z, &ratio);
    if (dmu) {
        *dmu = -ratio / sigma;
        *dvar = (1 - z * ratio) / (2 * sigma * sigma);
    }
    return f;
}

/* log EI at z [d]; gz (may be NULL) [d] its gradient in the active numeric coordinates (0 for
 * the others). */
static double acq_eval(acq *a, const double *z, double *gz) {
    const int d = a->space->n;
    double x[2 * BNK_SPACE_MAX_PARAMS], mu, var, dmean[BNK_SPACE_MAX_PARAMS],
        dvar[BNK_SPACE_MAX_PARAMS];
    encode(a->space, z, x);
    bnk__gp_predict(a->gp, x, &mu, &var, gz ? dmean : NULL, gz ? dvar : NULL, a->work);
    double fmu, fvar;
    const double f = log_ei(a->best, mu, var, &fmu, &fvar);
    if (gz)
        for (int i = 0; i < d; i++) /* x[2i+1] = 1: inactive, its x[2i] is a constant */
            gz[i] = a->gp->data.cat[i] || x[2 * i + 1] != 0 ? 0 : fmu * dmean[i] + fvar * dvar[i];
    return isfinite(f) ? f : -INFINITY;
}

/* NLopt minimises -log EI over the coordinates a->cont of a->z; the best point seen is kept. */
static double lbfgs_objective(unsigned nv, const double *v, double *grad, void *p) {
    acq *a = p;
    double z[BNK_SPACE_MAX_PARAMS], gz[BNK_SPACE_MAX_PARAMS];
    memcpy(z, a->z, sizeof z);
    for (unsigned k = 0; k < nv; k++) z[a->cont[k]] = clamp01(v[k]);
    const double f = acq_eval(a, z, grad ? gz : NULL);
    if (grad)
        for (unsigned k = 0; k < nv; k++) grad[k] = isfinite(f) ? -gz[a->cont[k]] : 0;
    if (f > a->fbest) {
        a->fbest = f;
        memcpy(a->zbest, z, sizeof z);
    }
    return isfinite(f) ? -f : 1e300;
}

/* L-BFGS over the active FLOAT coordinates of z; updates z and *f if it finds better. */
static bnk_status optimize_continuous(acq *a, double *z, double *f) {
    const bnk_space *space = a->space;
    bool act[BNK_SPACE_MAX_PARAMS];
    activity(space, z, act);
    a->ncont = 0;
    for (int i = 0; i < space->n; i++)
        if (act[i] && space->params[i].kind == BNK_PARAM_FLOAT) a->cont[a->ncont++] = i;
    if (a->ncont == 0) return BNK_OK;
    nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, (unsigned)a->ncont);
    if (!opt) return bnk__fail(BNK_ERR_NOMEM, "GP sampler: out of memory");
    double v[BNK_SPACE_MAX_PARAMS], val;
    for (int k = 0; k < a->ncont; k++) v[k] = z[a->cont[k]];
    nlopt_set_lower_bounds1(opt, 0.0);
    nlopt_set_upper_bounds1(opt, 1.0);
    nlopt_set_min_objective(opt, lbfgs_objective, a);
    nlopt_set_ftol_abs(opt, 1e-9);
    nlopt_set_xtol_abs1(opt, 1e-7);
    nlopt_set_maxeval(opt, 200);
    memcpy(a->z, z, sizeof a->z);
    a->fbest = *f;
    memcpy(a->zbest, z, sizeof a->zbest);
    nlopt_optimize(opt, v, &val); /* the best point is tracked by lbfgs_objective */
    nlopt_destroy(opt);
    if (a->fbest > *f) {
        *f = a->fbest;
        memcpy(z, a->zbest, sizeof a->zbest);
    }
    return BNK_OK;
}

/* Tries value u for coordinate i of z; keeps it if log EI improves. */
static void try_value(acq *a, double *z, double *f, int i, double u) {
    const double old = z[i];
    if (u == old) return;
    z[i] = u;
    const double g = acq_eval(a, z, NULL);
    if (g > *f)
        *f = g;
    else
        z[i] = old;
}

/* Exhaustive search over each active CAT and small INT, doubling-step line search over larger
 * INTs (Optuna's discrete local search). */
static void optimize_discrete(acq *a, double *z, double *f) {
    const bnk_space *space = a->space;
    for (int i = 0; i < space->n; i++) {
        bool act[BNK_SPACE_MAX_PARAMS];
        activity(space, z, act); /* a CAT changed above may switch later parameters on or off */
        const bnk_param *p = &space->params[i];
        if (!act[i] || p->kind == BNK_PARAM_FLOAT) continue;
        if (p->kind == BNK_PARAM_CAT) {
            const double start = z[i];
            for (int k = 0; k < p->nchoices; k++)
                if (k != (int)start) try_value(a, z, f, i, (double)k);
            continue;
        }
        const double nvals = p->hi - p->lo + 1;
        if (nvals <= MAX_EXHAUSTIVE) {
            for (double k = p->lo; k <= p->hi; k++)
                try_value(a, z, f, i, clamp01(bnk_space_to_unit(space, i, k)));
            continue;
        }
        for (int iter = 0; iter < 64; iter++) { /* hill-climb with steps +-1, +-2, +-4, ... */
            const double k0 = bnk_space_from_unit(space, i, z[i]), f0 = *f;
            for (double step = 1; step < nvals; step *= 2) {
                if (k0 - step >= p->lo)
                    try_value(a, z, f, i, clamp01(bnk_space_to_unit(space, i, k0 - step)));
                if (k0 + step <= p->hi)
                    try_value(a, z, f, i, clamp01(bnk_space_to_unit(space, i, k0 + step)));
                if (*f > f0) break; /* moved: restart the ladder from the new value */
            }
            if (!(*f > f0)) break;
        }
    }
}

static bnk_status local_search(acq *a, double *z, double *f) {
    for (int round = 0; round < MAX_ROUNDS; round++) {
        const double f0 = *f;
        bnk_status st = optimize_continuous(a, z, f);
        if (st != BNK_OK) return st;
        optimize_discrete(a, z, f);
        if (!(*f - f0 > ROUND_TOL)) break;
    }
    return BNK_OK;
}

/* Candidate c of the scrambled Sobol set as a raw point (INT on its grid). */
static void sobol_candidate(const bnk_space *space, uint64_t scramble, uint64_t c, double *z) {
    double u[BNK__SOBOL_MAX_DIM];
    bnk__sobol_point(scramble, c, space->n, u);
    for (int i = 0; i < space->n; i++) {
        const bnk_param *p = &space->params[i];
        if (p->kind == BNK_PARAM_CAT) {
            const int k = (int)(u[i] * p->nchoices);
            z[i] = k < p->nchoices ? k : p->nchoices - 1;
        } else {
            z[i] = p->kind == BNK_PARAM_INT ? snap_int(space, i, u[i]) : u[i];
        }
    }
}

/* Chooses N_LOCAL_SEARCH start indices: the best candidate, then roulette selection with
 * probability proportional to EI (Optuna's rule), topped up by rank when EI underflows. */
static int choose_starts(const double *f, int m, uint64_t *rng, int *start, char *taken) {
    int best = 0;
    for (int c = 1; c < m; c++)
        if (f[c] > f[best]) best = c;
    memset(taken, 0, (size_t)m);
    int ns = 0;
    start[ns++] = best;
    taken[best] = 1;
    while (ns < N_LOCAL_SEARCH && ns < m) {
        double total = 0;
        for (int c = 0; c < m; c++)
            if (!taken[c]) total += exp(f[c] - f[best]);
        int pick = -1;
        if (total > 1e-300) {
            double r = bnk__rng_uniform(rng) * total;
            for (int c = 0; c < m && pick < 0; c++) {
                if (taken[c]) continue;
                r -= exp(f[c] - f[best]);
                if (r <= 0) pick = c;
            }
        }
        if (pick < 0) /* EI of every remaining candidate underflows (or rounding): best left */
            for (int c = 0; c < m; c++)
                if (!taken[c] && (pick < 0 || f[c] > f[pick])) pick = c;
        start[ns++] = pick;
        taken[pick] = 1;
    }
    return ns;
}

static bnk_status maximize_acq(acq *a, const observations *obs, uint64_t *rng, double *zout) {
    const bnk_space *space = a->space;
    const int d = space->n, n = a->gp->data.n, m = N_CANDIDATES + 1;
    double *zc = malloc((size_t)m * d * sizeof *zc), *fc = malloc((size_t)m * sizeof *fc);
    double *xb = malloc((size_t)CHUNK * 2 * d * sizeof *xb);
    double *mean = malloc(CHUNK * sizeof *mean), *var = malloc(CHUNK * sizeof *var);
    double *work = malloc((size_t)CHUNK * n * sizeof *work);
    char *taken = malloc((size_t)m);
    bnk_status st = BNK_OK;
    if (!zc || !fc || !xb || !mean || !var || !work || !taken) {
        st = bnk__fail(BNK_ERR_NOMEM, "GP sampler: out of memory");
        goto done;
    }
    const uint64_t scramble = bnk__rng_next(rng);
    for (int c = 0; c < N_CANDIDATES; c++)
        sobol_candidate(space, scramble, (uint64_t)c, zc + (size_t)c * d);
    memcpy(zc + (size_t)N_CANDIDATES * d, obs->z + (size_t)obs->best * d, d * sizeof *zc);
    for (int c0 = 0; c0 < m; c0 += CHUNK) {
        const int mc = m - c0 < CHUNK ? m - c0 : CHUNK;
        for (int c = 0; c < mc; c++)
            encode(space, zc + (size_t)(c0 + c) * d, xb + (size_t)c * 2 * d);
        bnk__gp_predict_many(a->gp, mc, xb, mean, var, work);
        for (int c = 0; c < mc; c++) {
            const double f = log_ei(a->best, mean[c], var[c], NULL, NULL);
            fc[c0 + c] = isfinite(f) ? f : -INFINITY;
        }
    }
    int start[N_LOCAL_SEARCH];
    const int ns = choose_starts(fc, m, rng, start, taken);
    double fbest = -INFINITY;
    for (int s = 0; s < ns && st == BNK_OK; s++) {
        double z[BNK_SPACE_MAX_PARAMS], f = fc[start[s]];
        memcpy(z, zc + (size_t)start[s] * d, d * sizeof *z);
        st = local_search(a, z, &f);
        if (s == 0 || f > fbest) {
            fbest = f;
            memcpy(zout, z, d * sizeof *z);
        }
    }
done:
    free(zc);
    free(fc);
    free(xb);
    free(mean);
    free(var);
    free(work);
    free(taken);
    return st;
}

/* ---- Entry point --------------------------------------------------------------------------- */

static bnk_status random_point(const bnk_sampler_config *cfg, const bnk_space *space,
                               int64_t number, bnk_point *out) {
    uint64_t rng = bnk__trial_rng(cfg->seed, number, BNK__STREAM_RANDOM);
    bnk__sample_random(space, &rng, out);
    return BNK_OK;
}

/* OpenBLAS (LAPACKE's backend) threads cost more than they save on matrices of a few hundred
 * rows, and their count changes the last bits of the fit: one thread, set once. bnkit's own
 * GEMMs run on oneDNN, so nothing else is affected. */
void openblas_set_num_threads(int num_threads);
static pthread_once_t blas_threads_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) {
    openblas_set_num_threads(1);
}

bnk_status bnk__gp_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                           const bnk_trial *history, int64_t nhistory, int64_t number,
                           bnk_point *out) {
    pthread_once(&blas_threads_once, blas_single_thread);
    if (bnk__count_finished(history, nhistory) < cfg->n_startup)
        return random_point(cfg, space, number, out);
    const int d = space->n;
    observations obs = {0};
    bnk__gp gp = {0};
    double *work = NULL;
    bool fallback = false; /* no usable observation, or a numerically hopeless fit */
    bnk_status st = collect(cfg, space, history, nhistory, number, &obs);
    if (st != BNK_OK || (fallback = obs.nreal == 0)) goto cleanup;

    uint64_t rng = bnk__trial_rng(cfg->seed, number, BNK__STREAM_GP);
    bnk__gp_data data = {.n = obs.n, .d = d, .x = obs.x, .y = obs.y};
    for (int i = 0; i < d; i++) data.cat[i] = space->params[i].kind == BNK_PARAM_CAT;
    st = bnk__gp_fit(&gp, &data, obs.n <= MAX_N_RESTARTS ? N_FIT_RESTARTS : 0, &rng);
    if (st == BNK_ERR_PARAM) {
        st = BNK_OK;
        fallback = true;
    }
    if (st != BNK_OK || fallback) goto cleanup;
    work = malloc((size_t)3 * obs.n * sizeof *work);
    if (!work) {
        st = bnk__fail(BNK_ERR_NOMEM, "GP sampler: out of memory");
        goto cleanup;
    }
    acq a = {.space = space, .gp = &gp, .best = obs.y[obs.best] - EI_XI, .work = work};
    double z[BNK_SPACE_MAX_PARAMS];
    st = maximize_acq(&a, &obs, &rng, z);
    if (st == BNK_OK) {
        bool act[BNK_SPACE_MAX_PARAMS];
        activity(space, z, act);
        for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) out->v[i] = NAN;
        for (int i = 0; i < d; i++)
            if (act[i])
                out->v[i] = space->params[i].kind == BNK_PARAM_CAT
                                ? z[i]
                                : bnk_space_from_unit(space, i, z[i]);
    }
cleanup:
    bnk__gp_free(&gp);
    free(work);
    free(obs.z);
    free(obs.x);
    free(obs.y);
    return st == BNK_OK && fallback ? random_point(cfg, space, number, out) : st;
}
