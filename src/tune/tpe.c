/* TPE: the tree-structured Parzen estimator sampler with Optuna's defaults (TPESampler,
 * optuna/samplers/_tpe/sampler.py and parzen_estimator.py, 3.x-4.x; reference/hpo-anchors.md
 * b1). For trial `number`:
 *
 *  1. History: COMPLETE and PRUNED trials ("finished"), plus RUNNING ones with constant_liar;
 *     FAILED trials and trial `number` itself are ignored. Fewer than n_startup finished trials:
 *     a random point (the same one the RANDOM sampler gives for this seed and number).
 *  2. Split: n = finished trials, n_below = min(ceil(0.1 n), 25). "below" takes the best
 *     COMPLETE trials by loss, then, if places remain, PRUNED ones ranked by (deepest step,
 *     loss at that step; NaN worst). "above" is the rest, plus the RUNNING trials (the lie:
 *     pending points count as bad, so other workers move away from them). Both sets are ordered
 *     by trial number (the weights forget the oldest).
 *  3. Parzen estimators l (below) and g (above) in unit coordinates (log for log parameters,
 *     INT bounds widened by 1/2): one truncated Gaussian per observation, plus a prior kernel
 *     N(0.5, 1) of weight prior_weight. Univariate bandwidth: the larger gap to the sorted
 *     neighbours, with [0, 1] as outer neighbours, the outermost observations using only their
 *     inner gap (consider_endpoints=False); multivariate: 0.2 n^(-1/(d+4)) (Scott-like). Then
 *     the magic clip to [1/min(100, 1 + n_kernels), 1]. INT densities are the probability of
 *     the integer's cell. CAT kernels put prior_weight/n_kernels on every choice plus 1 on the
 *     observed one (normalised); the prior kernel is uniform. Mixture weights: Optuna's
 *     default_weights (all 1 below 25 observations, else a linear ramp 1/n -> 1 over the oldest
 *     n - 25) and prior_weight, normalised.
 *  4. Draw n_candidates points from l, return the one maximising log l(x) - log g(x).
 *
 * Univariate (default): each parameter on its own, in definition order (parents first), only if
 * active at the point being built, modelled on the trials where it was active. Multivariate:
 * the parameters active in every finished trial are drawn jointly (one mixture component shared
 * by all dimensions); the others as in univariate mode. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "tune/tune_internal.h"

#define LOG_SQRT_2PI 0.91893853320467274178
#define SQRT1_2      0.70710678118654752440

enum { MAX_GAMMA = 25, FLAT_WEIGHTS = 25 };

/* ---- Trials ------------------------------------------------------------------------------- */

/* A trial as the split sees it. */
typedef struct tpe_trial {
    const bnk_trial *t;
    int64_t index; /* in history: the last tie-break, so that sorting is deterministic */
    int64_t step;  /* PRUNED: deepest step reported */
    double key;    /* COMPLETE: loss; PRUNED: loss at `step`; NaN -> +Inf (worst) */
} tpe_trial;

static int cmp_i64(int64_t a, int64_t b) {
    return (a > b) - (a < b);
}

static int cmp_f64(double a, double b) {
    return (a > b) - (a < b);
}

static int cmp_complete(const void *pa, const void *pb) {
    const tpe_trial *a = pa, *b = pb;
    int c = cmp_f64(a->key, b->key);
    if (!c) c = cmp_i64(a->t->number, b->t->number);
    return c ? c : cmp_i64(a->index, b->index);
}

/* Optuna's _get_pruned_trial_score: deepest step first, then the loss there; no step at all
 * ranks last. */
static int cmp_pruned(const void *pa, const void *pb) {
    const tpe_trial *a = pa, *b = pb;
    const int64_t sa = a->step > 0 ? a->step : -1, sb = b->step > 0 ? b->step : -1;
    int c = cmp_i64(sb, sa);
    if (!c) c = cmp_f64(a->key, b->key);
    if (!c) c = cmp_i64(a->t->number, b->t->number);
    return c ? c : cmp_i64(a->index, b->index);
}

static int cmp_number(const void *pa, const void *pb) {
    const tpe_trial *a = pa, *b = pb;
    const int c = cmp_i64(a->t->number, b->t->number);
    return c ? c : cmp_i64(a->index, b->index);
}

/* The value of parameter i in trial t as an observation: a unit coordinate (FLOAT, INT) or a
 * choice index (CAT); false when the parameter is inactive there or its value is unusable. */
static bool observe(const bnk_space *space, int i, const bnk_trial *t, double *out) {
    const bnk_param *p = &space->params[i];
    const double v = t->x.v[i];
    if (!isfinite(v) || !bnk_space_active(space, &t->x, i)) return false;
    if (p->kind == BNK_PARAM_CAT) {
        if (v != floor(v) || v < 0 || v >= p->nchoices) return false;
        *out = v;
        return true;
    }
    double u = bnk_space_to_unit(space, i, v);
    if (isnan(u)) return false;
    *out = u < 0 ? 0 : u > 1 ? 1 : u;
    return true;
}

/* ---- Parzen estimator ---------------------------------------------------------------------- */

/* A mixture of ncomp components (the observations in trial order, then the prior), each a
 * product over ndim parameters of a truncated Gaussian on [0, 1] (FLOAT, INT) or a
 * distribution over the choices (CAT). */
typedef struct parzen {
    int ndim;
    int64_t ncomp;
    const int *dims;     /* [ndim] parameter indices                          */
    double *logw, *cumw; /* [ncomp] log weights, cumulative weights           */
    /* [ndim][ncomp]. FLOAT/INT: kernel centre, width, its inverse, and lognorm = log(sqrt(2 pi)
     * sigma * the kernel's mass in [0, 1]). CAT: mu is the observed choice (-1: the prior). */
    double *mu, *sigma, *isigma, *lognorm;
    double cat_share[BNK_SPACE_MAX_PARAMS]; /* CAT: prior_weight / ncomp, every choice's share */
    double cat_lp[BNK_SPACE_MAX_PARAMS][3]; /* CAT: log p of the observed choice, of another  */
                                            /* one, and of any choice under the prior         */
    double *block;
} parzen;

static void parzen_free(parzen *pe) {
    free(pe->block);
    pe->block = NULL;
}

/* log(Phi(b) - Phi(a)) for a <= b, accurate in both tails. */
static double log_normal_mass(double a, double b) {
    double m;
    if (a >= 0)
        m = 0.5 * (erfc(a * SQRT1_2) - erfc(b * SQRT1_2));
    else if (b <= 0)
        m = 0.5 * (erfc(-b * SQRT1_2) - erfc(-a * SQRT1_2));
    else /* a tail beyond 9 sigma holds < 2e-19 of the mass: skip its erfc() */
        m = 1 - 0.5 * ((a > -9 ? erfc(-a * SQRT1_2) : 0) + (b < 9 ? erfc(b * SQRT1_2) : 0));
    if (m > 0) return log(m);
    /* Both ends far in one tail: the density at the nearer end times the width. */
    const double z = a >= 0 ? a : -b;
    return -0.5 * z * z - LOG_SQRT_2PI + log(b - a > 0 ? b - a : 1e-300);
}

/* Optuna's default_weights(n) into w[n]. */
static void default_weights(int64_t n, double *w) {
    const int64_t ramp = n < FLAT_WEIGHTS ? 0 : n - FLAT_WEIGHTS;
    for (int64_t k = 0; k < n; k++) {
        if (k >= ramp)
            w[k] = 1;
        else /* np.linspace(1/n, 1, num=ramp) */
            w[k] = ramp == 1
                       ? 1.0 / (double)n
                       : 1.0 / (double)n + (double)k * (1 - 1.0 / (double)n) / (double)(ramp - 1);
    }
}

typedef struct obs_pair {
    double x;
    int64_t j;
} obs_pair;

static int cmp_pair(const void *pa, const void *pb) {
    const obs_pair *a = pa, *b = pb;
    const int c = cmp_f64(a->x, b->x);
    return c ? c : cmp_i64(a->j, b->j);
}

/* Builds the estimator of the observations obs[ndim][nobs] (trial order). */
static bnk_status parzen_build(parzen *pe, const bnk_space *space, const int *dims, int ndim,
                               const double *obs, int64_t nobs, double prior_weight,
                               bool multivariate) {
    memset(pe, 0, sizeof *pe);
    const int64_t m = nobs + 1;
    /* m <= nhistory + 1 and ndim <= 32: no overflow on a 64-bit host; checked for others. */
    const size_t per = (size_t)ndim * (size_t)m;
    if ((uint64_t)m > SIZE_MAX / sizeof(double) / (2 + 4 * (size_t)BNK_SPACE_MAX_PARAMS))
        return bnk__fail(BNK_ERR_OVERFLOW, "tpe: %lld observations are too many", (long long)nobs);
    pe->block = malloc(((size_t)2 * (size_t)m + 4 * per) * sizeof(double));
    if (!pe->block) return bnk__fail(BNK_ERR_NOMEM, "tpe: out of memory");
    pe->ndim = ndim;
    pe->ncomp = m;
    pe->dims = dims;
    pe->logw = pe->block;
    pe->cumw = pe->logw + m;
    pe->mu = pe->cumw + m;
    pe->sigma = pe->mu + per;
    pe->isigma = pe->sigma + per;
    pe->lognorm = pe->isigma + per;

    /* Mixture weights: default_weights on the observations, prior_weight on the prior. */
    default_weights(nobs, pe->logw);
    pe->logw[nobs] = prior_weight;
    double total = 0;
    for (int64_t j = 0; j < m; j++) total += pe->logw[j];
    double cum = 0;
    for (int64_t j = 0; j < m; j++) {
        cum += pe->logw[j] / total;
        pe->cumw[j] = cum;
        pe->logw[j] = log(pe->logw[j] / total);
    }
    pe->cumw[m - 1] = 1;

    /* Magic clip: [range / min(100, 1 + n_kernels), range], n_kernels = nobs + 1, range 1. */
    const double min_sigma = 1.0 / fmin(100.0, 1.0 + (double)m);
    for (int d = 0; d < ndim; d++) {
        const bnk_param *p = &space->params[dims[d]];
        const double *x = obs + (size_t)d * (size_t)nobs;
        double *mu = pe->mu + (size_t)d * (size_t)m, *sg = pe->sigma + (size_t)d * (size_t)m;
        double *is = pe->isigma + (size_t)d * (size_t)m, *ln = pe->lognorm + (size_t)d * (size_t)m;
        if (p->kind == BNK_PARAM_CAT) {
            /* Optuna: prior_weight / n_kernels on every choice, + 1 on the observed one. */
            const double share = prior_weight / (double)m, sum = share * p->nchoices + 1;
            pe->cat_share[d] = share;
            pe->cat_lp[d][0] = log((share + 1) / sum);
            pe->cat_lp[d][1] = log(share / sum);
            pe->cat_lp[d][2] = -log((double)p->nchoices);
            for (int64_t j = 0; j < nobs; j++) mu[j] = x[j];
            mu[nobs] = -1;
            continue;
        }
        for (int64_t j = 0; j < nobs; j++) mu[j] = x[j];
        if (multivariate) {
            const double s = 0.2 * pow(nobs > 1 ? (double)nobs : 1.0, -1.0 / (ndim + 4));
            for (int64_t j = 0; j < nobs; j++) sg[j] = s;
        } else if (nobs > 0) {
            /* Neighbour gaps on the sorted observations with 0 and 1 as the outer ends. */
            obs_pair *order = malloc((size_t)nobs * sizeof *order);
            if (!order) {
                parzen_free(pe);
                return bnk__fail(BNK_ERR_NOMEM, "tpe: out of memory");
            }
            for (int64_t j = 0; j < nobs; j++) order[j] = (obs_pair){x[j], j};
            qsort(order, (size_t)nobs, sizeof *order, cmp_pair);
            for (int64_t k = 0; k < nobs; k++) {
                const double here = order[k].x;
                const double left = k > 0 ? order[k - 1].x : 0.0;
                const double right = k + 1 < nobs ? order[k + 1].x : 1.0;
                double s = fmax(here - left, right - here);
                if (nobs >= 2) { /* consider_endpoints=False */
                    if (k == 0) s = right - here;
                    if (k == nobs - 1) s = here - left;
                }
                sg[order[k].j] = s;
            }
            free(order);
        }
        mu[nobs] = 0.5; /* the prior */
        sg[nobs] = 1.0;
        for (int64_t j = 0; j < m; j++) {
            sg[j] = sg[j] < min_sigma ? min_sigma : sg[j] > 1 ? 1 : sg[j];
            is[j] = 1 / sg[j];
            ln[j] =
                LOG_SQRT_2PI + log(sg[j]) + log_normal_mass(-mu[j] * is[j], (1 - mu[j]) * is[j]);
        }
    }
    return BNK_OK;
}

/* A candidate: per dimension the parameter's value, and the interval [a, b] of unit
 * coordinates that it stands for (a = b for FLOAT: a density; the integer's cell for INT). */
typedef struct cand {
    double value[BNK_SPACE_MAX_PARAMS], a[BNK_SPACE_MAX_PARAMS], b[BNK_SPACE_MAX_PARAMS];
} cand;

/* Draws one point from pe. */
static void parzen_sample(const parzen *pe, const bnk_space *space, uint64_t *rng, cand *c) {
    const double r = bnk__rng_uniform(rng);
    int64_t j = 0; /* linear search: cheaper than the density evaluations that follow */
    while (j < pe->ncomp - 1 && pe->cumw[j] <= r) j++;
    for (int d = 0; d < pe->ndim; d++) {
        const int i = pe->dims[d];
        const bnk_param *p = &space->params[i];
        const size_t dj = (size_t)d * (size_t)pe->ncomp + (size_t)j;
        if (p->kind == BNK_PARAM_CAT) {
            const int k = (int)pe->mu[dj];
            if (k < 0) { /* the prior: uniform */
                c->value[d] = (double)bnk__rng_below(rng, (uint64_t)p->nchoices);
                continue;
            }
            /* mass 1 on k, pe->cat_share[d] on every choice */
            const double t = bnk__rng_uniform(rng) * (pe->cat_share[d] * p->nchoices + 1);
            const int other = t < 1 ? k : (int)((t - 1) / pe->cat_share[d]);
            c->value[d] = other < p->nchoices ? other : p->nchoices - 1;
            continue;
        }
        /* Truncated normal by rejection: every component has its mean in [0, 1] and sigma <= 1,
         * so at least a third of its mass lies in [0, 1]. */
        const double mu = pe->mu[dj], s = pe->sigma[dj];
        double u = mu;
        for (int tries = 0; tries < 200; tries++) {
            const double z = mu + s * bnk__rng_normal(rng);
            if (z >= 0 && z <= 1) {
                u = z;
                break;
            }
        }
        const double v = bnk_space_from_unit(space, i, u);
        c->value[d] = v;
        if (p->kind == BNK_PARAM_INT) {
            c->a[d] = fmax(0.0, bnk_space_to_unit(space, i, v - 0.5));
            c->b[d] = fmin(1.0, bnk_space_to_unit(space, i, v + 0.5));
        } else {
            c->a[d] = c->b[d] = u;
        }
    }
}

/* log pe(c), with `scratch` [ncomp]. */
static double parzen_logpdf(const parzen *pe, const bnk_space *space, const cand *c,
                            double *scratch) {
    const int64_t m = pe->ncomp;
    for (int64_t j = 0; j < m; j++) scratch[j] = pe->logw[j];
    for (int d = 0; d < pe->ndim; d++) {
        const bnk_param *p = &space->params[pe->dims[d]];
        const size_t base = (size_t)d * (size_t)m;
        if (p->kind == BNK_PARAM_CAT) {
            const double k = c->value[d];
            for (int64_t j = 0; j < m; j++) {
                const double o = pe->mu[base + j];
                scratch[j] += pe->cat_lp[d][o < 0 ? 2 : o == k ? 0 : 1];
            }
        } else if (p->kind == BNK_PARAM_INT) {
            for (int64_t j = 0; j < m; j++) { /* the cell's share of the truncated mass */
                const double mu = pe->mu[base + j], s = pe->sigma[base + j];
                scratch[j] += log_normal_mass((c->a[d] - mu) / s, (c->b[d] - mu) / s) -
                              (pe->lognorm[base + j] - LOG_SQRT_2PI - log(s));
            }
        } else {
            const double u = c->a[d], *mu = pe->mu + base, *is = pe->isigma + base;
            const double *ln = pe->lognorm + base;
            for (int64_t j = 0; j < m; j++) {
                const double z = (u - mu[j]) * is[j];
                scratch[j] -= 0.5 * z * z + ln[j];
            }
        }
    }
    double mx = -INFINITY;
    for (int64_t j = 0; j < m; j++) mx = scratch[j] > mx ? scratch[j] : mx;
    if (!isfinite(mx)) return mx;
    double sum = 0;
    /* Terms 40 below the largest add < 5e-18 each: skipping their exp() halves the cost. */
    for (int64_t j = 0; j < m; j++)
        if (scratch[j] > mx - 40) sum += exp(scratch[j] - mx);
    return mx + log(sum);
}

/* ---- One sampling step --------------------------------------------------------------------- */

typedef struct tpe_ctx {
    const bnk_sampler_config *cfg;
    const bnk_space *space;
    tpe_trial *below, *above; /* each in trial-number order */
    int64_t nbelow, nabove;
    double *obs;     /* scratch [2][space->n][nbelow + nabove] */
    double *scratch; /* [nhistory + 1] */
    cand *cands;     /* [n_candidates] */
    uint64_t rng;
} tpe_ctx;

/* Gathers the observations of dims[0..ndim) from the trials of `set` that have all of them
 * active: obs[ndim][count] (dimension-major, in trial order). Returns count. */
static int64_t gather(const tpe_ctx *cx, const tpe_trial *set, int64_t nset, const int *dims,
                      int ndim, int64_t stride, double *obs) {
    int64_t n = 0;
    for (int64_t k = 0; k < nset; k++) {
        double v[BNK_SPACE_MAX_PARAMS];
        bool ok = true;
        for (int d = 0; d < ndim && ok; d++) ok = observe(cx->space, dims[d], set[k].t, &v[d]);
        if (!ok) continue;
        for (int d = 0; d < ndim; d++) obs[(size_t)d * (size_t)stride + (size_t)n] = v[d];
        n++;
    }
    return n;
}

/* Samples dims[0..ndim) jointly (ndim = 1: univariate) and writes the chosen values into x. */
static bnk_status tpe_sample(tpe_ctx *cx, const int *dims, int ndim, bool multivariate,
                             bnk_point *x) {
    const bnk_sampler_config *cfg = cx->cfg;
    const int64_t stride = cx->nbelow + cx->nabove;
    /* gather writes [ndim][count] with row length `stride`; repack to [ndim][count]. */
    double *ob = cx->obs, *oa = cx->obs + (size_t)ndim * (size_t)stride;
    const int64_t nb = gather(cx, cx->below, cx->nbelow, dims, ndim, stride, ob);
    const int64_t na = gather(cx, cx->above, cx->nabove, dims, ndim, stride, oa);
    for (int d = 1; d < ndim; d++) {
        memmove(ob + (size_t)d * (size_t)nb, ob + (size_t)d * (size_t)stride,
                (size_t)nb * sizeof *ob);
        memmove(oa + (size_t)d * (size_t)na, oa + (size_t)d * (size_t)stride,
                (size_t)na * sizeof *oa);
    }
    parzen l, g;
    bnk_status st =
        parzen_build(&l, cx->space, dims, ndim, ob, nb, cfg->prior_weight, multivariate);
    if (st != BNK_OK) return st;
    st = parzen_build(&g, cx->space, dims, ndim, oa, na, cfg->prior_weight, multivariate);
    if (st != BNK_OK) {
        parzen_free(&l);
        return st;
    }
    int best = 0;
    double best_score = -INFINITY;
    for (int c = 0; c < cfg->n_candidates; c++) {
        parzen_sample(&l, cx->space, &cx->rng, &cx->cands[c]);
        const double score = parzen_logpdf(&l, cx->space, &cx->cands[c], cx->scratch) -
                             parzen_logpdf(&g, cx->space, &cx->cands[c], cx->scratch);
        if (score > best_score) { /* NaN scores never win; the first maximum does */
            best_score = score;
            best = c;
        }
    }
    for (int d = 0; d < ndim; d++) x->v[dims[d]] = cx->cands[best].value[d];
    parzen_free(&l);
    parzen_free(&g);
    return BNK_OK;
}

bnk_status bnk__tpe_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                            const bnk_trial *history, int64_t nhistory, int64_t number,
                            bnk_point *out) {
    /* 1. Collect. */
    int64_t ncomplete = 0, npruned = 0, nrunning = 0;
    for (int64_t k = 0; k < nhistory; k++) {
        const bnk_trial *t = &history[k];
        if (t->number == number) continue;
        ncomplete += t->state == BNK_TRIAL_COMPLETE;
        npruned += t->state == BNK_TRIAL_PRUNED;
        nrunning += t->state == BNK_TRIAL_RUNNING && cfg->constant_liar;
    }
    const int64_t n = ncomplete + npruned;
    if (n < cfg->n_startup || n == 0) {
        uint64_t rng = bnk__trial_rng(cfg->seed, number, BNK__STREAM_RANDOM);
        bnk__sample_random(space, &rng, out);
        return BNK_OK;
    }
    const int64_t total = n + nrunning;
    tpe_trial *all = malloc((size_t)total * 2 * sizeof *all);
    double *obs = malloc((size_t)total * 2 * (size_t)space->n * sizeof *obs);
    double *scratch = malloc(((size_t)total + 1) * sizeof *scratch);
    cand *cands = malloc((size_t)cfg->n_candidates * sizeof *cands);
    if (!all || !obs || !scratch || !cands) {
        free(all);
        free(obs);
        free(scratch);
        free(cands);
        return bnk__fail(BNK_ERR_NOMEM, "tpe: out of memory for %lld trials", (long long)total);
    }
    tpe_trial *complete = all, *pruned = all + ncomplete, *running = pruned + npruned;
    int64_t ic = 0, ip = 0, ir = 0;
    for (int64_t k = 0; k < nhistory; k++) {
        const bnk_trial *t = &history[k];
        if (t->number == number) continue;
        tpe_trial e = {.t = t, .index = k};
        if (t->state == BNK_TRIAL_COMPLETE) {
            e.key = isnan(t->loss) ? INFINITY : t->loss;
            complete[ic++] = e;
        } else if (t->state == BNK_TRIAL_PRUNED) {
            bnk__pruned_rank(t, &e.step, &e.key);
            if (isnan(e.key)) e.key = INFINITY;
            pruned[ip++] = e;
        } else if (t->state == BNK_TRIAL_RUNNING && cfg->constant_liar) {
            running[ir++] = e;
        }
    }

    /* 2. Split into below (the best n_below) and above (the rest and the running trials). */
    int64_t nbelow = (n + 9) / 10;
    if (nbelow > MAX_GAMMA) nbelow = MAX_GAMMA;
    qsort(complete, (size_t)ncomplete, sizeof *complete, cmp_complete);
    qsort(pruned, (size_t)npruned, sizeof *pruned, cmp_pruned);
    const int64_t bc = nbelow < ncomplete ? nbelow : ncomplete;
    const int64_t bp = nbelow - bc < npruned ? nbelow - bc : npruned;
    tpe_trial *below = all + total, *above = below + bc + bp;
    int64_t nb = 0, na = 0;
    for (int64_t k = 0; k < ncomplete; k++) *(k < bc ? &below[nb++] : &above[na++]) = complete[k];
    for (int64_t k = 0; k < npruned; k++) *(k < bp ? &below[nb++] : &above[na++]) = pruned[k];
    for (int64_t k = 0; k < nrunning; k++) above[na++] = running[k];
    qsort(below, (size_t)nb, sizeof *below, cmp_number);
    qsort(above, (size_t)na, sizeof *above, cmp_number);

    tpe_ctx cx = {.cfg = cfg,
                  .space = space,
                  .below = below,
                  .nbelow = nb,
                  .above = above,
                  .nabove = na,
                  .obs = obs,
                  .scratch = scratch,
                  .cands = cands,
                  .rng = bnk__trial_rng(cfg->seed, number, BNK__STREAM_TPE)};

    /* 3-4. Sample. Multivariate: first the parameters observed in every finished trial,
     * jointly. Then every other active parameter on its own, parents first. */
    bnk_status st = BNK_OK;
    bool done[BNK_SPACE_MAX_PARAMS] = {false};
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) out->v[i] = NAN;
    if (cfg->multivariate) {
        int joint[BNK_SPACE_MAX_PARAMS], nj = 0;
        for (int i = 0; i < space->n; i++) {
            bool always = true;
            double v;
            for (int64_t k = 0; k < n && always; k++) /* complete[] and pruned[] */
                always = observe(space, i, all[k].t, &v);
            if (always) joint[nj++] = i;
        }
        if (nj > 0) st = tpe_sample(&cx, joint, nj, true, out);
        for (int d = 0; d < nj; d++) done[joint[d]] = true;
    }
    for (int i = 0; i < space->n && st == BNK_OK; i++) {
        if (done[i] || !bnk_space_active(space, out, i)) continue;
        st = tpe_sample(&cx, &i, 1, false, out);
    }
    free(all);
    free(obs);
    free(scratch);
    free(cands);
    if (st == BNK_OK) bnk__point_mask_inactive(space, out);
    return st;
}
