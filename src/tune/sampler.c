/* Samplers: the public entry points (defaults, names, validation and dispatch), the helpers the
 * samplers share (tune_internal.h), and the two model-free samplers GRID and RANDOM. SOBOL lives
 * in sobol.c, TPE in tpe.c, GP in gp.c. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "tune/tune_internal.h"

/* ---- Configuration and names --------------------------------------------------------------- */

bnk_sampler_config bnk_sampler_config_default(bnk_sampler_kind kind) {
    return (bnk_sampler_config){.kind = kind,
                                .seed = 0,
                                .grid_points = 5,
                                .n_startup = 10,
                                .n_candidates = 24,
                                .prior_weight = 1.0,
                                .multivariate = false,
                                .constant_liar = true};
}

static const char *const kind_names[] = {"grid", "random", "sobol", "tpe", "gp"};
enum { NKINDS = sizeof kind_names / sizeof kind_names[0] };

const char *bnk_sampler_kind_str(bnk_sampler_kind kind) {
    return (int)kind >= 0 && (int)kind < NKINDS ? kind_names[kind] : "unknown";
}

bnk_status bnk_sampler_kind_parse(const char *name, bnk_sampler_kind *kind) {
    if (!name || !kind) return bnk__fail(BNK_ERR_NULL, "sampler: NULL argument");
    for (int k = 0; k < NKINDS; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (bnk_sampler_kind)k;
            return BNK_OK;
        }
    return bnk__fail(BNK_ERR_PARAM, "sampler: unknown kind '%s' (grid, random, sobol, tpe, gp)",
                     name);
}

/* ---- Shared helpers ------------------------------------------------------------------------ */

uint64_t bnk__trial_rng(uint64_t seed, int64_t number, uint64_t stream) {
    uint64_t s = seed;
    s = bnk__rng_next(&s) ^ (uint64_t)number;
    s = bnk__rng_next(&s) ^ (stream * 0xD1B54A32D192ED03ull);
    return bnk__rng_next(&s);
}

void bnk__sample_random(const bnk_space *space, uint64_t *rng, bnk_point *out) {
    for (int i = 0; i < space->n; i++) {
        const bnk_param *p = &space->params[i];
        if (!bnk_space_active(space, out, i))
            out->v[i] = NAN;
        else if (p->kind == BNK_PARAM_CAT)
            out->v[i] = (double)bnk__rng_below(rng, (uint64_t)p->nchoices);
        else
            out->v[i] = bnk_space_from_unit(space, i, bnk__rng_uniform(rng));
    }
    for (int i = space->n; i < BNK_SPACE_MAX_PARAMS; i++) out->v[i] = NAN;
}

void bnk__point_mask_inactive(const bnk_space *space, bnk_point *x) {
    for (int i = 0; i < space->n; i++)
        if (!bnk_space_active(space, x, i)) x->v[i] = NAN;
    for (int i = space->n; i < BNK_SPACE_MAX_PARAMS; i++) x->v[i] = NAN;
}

int64_t bnk__count_finished(const bnk_trial *history, int64_t nhistory) {
    int64_t n = 0;
    for (int64_t k = 0; k < nhistory; k++)
        n += history[k].state == BNK_TRIAL_COMPLETE || history[k].state == BNK_TRIAL_PRUNED;
    return n;
}

int64_t bnk__complete_losses(const bnk_trial *history, int64_t nhistory, int64_t *index,
                             double *loss) {
    int64_t n = 0;
    for (int64_t k = 0; k < nhistory; k++) {
        if (history[k].state != BNK_TRIAL_COMPLETE || !isfinite(history[k].loss)) continue;
        if (index) index[n] = k;
        if (loss) loss[n] = history[k].loss;
        n++;
    }
    return n;
}

void bnk__pruned_rank(const bnk_trial *t, int64_t *step, double *loss) {
    *step = t->curve ? t->ncurve : 0;
    *loss = *step > 0 ? t->curve[*step - 1] : NAN;
}

/* ---- GRID ------------------------------------------------------------------------------------
 * The grid is a tree product: the parameters without a parent multiply; a CAT parameter
 * contributes, for each of its choices, the product of the children active under that choice.
 * Points are numbered in mixed radix, the last parameter varying fastest. Counts saturate at
 * INT64_MAX + 1 (represented as -1). */

enum { GRID_MAX_POINTS = 1000000 };

/* Value k (of grid_points) of a FLOAT/INT range cut into grid_points values: evenly spaced
 * in unit coordinates for FLOAT; between the (unwidened) bounds for INT, in log for log
 * parameters and rounded, so that both bounds are on the grid. */
static double spaced_value(const bnk_space *space, int i, int grid_points, int k) {
    const bnk_param *p = &space->params[i];
    const double t = grid_points == 1 ? 0.5 : (double)k / (grid_points - 1);
    if (p->kind == BNK_PARAM_FLOAT) return bnk_space_from_unit(space, i, t);
    double v = p->log ? round(exp(log(p->lo) + t * (log(p->hi) - log(p->lo))))
                      : round(p->lo + t * (p->hi - p->lo));
    return v < p->lo ? p->lo : v > p->hi ? p->hi : v;
}

/* The grid values of FLOAT/INT parameter i: returns how many there are and, when 0 <= want <
 * that count, stores value number `want` in *value. An empty range (lo = hi) has one value; an
 * INT range of at most grid_points integers has every integer; otherwise grid_points spaced
 * values, rounded INT duplicates (log ranges) dropped. */
static int64_t grid_values(const bnk_space *space, int i, int grid_points, int64_t want,
                           double *value) {
    const bnk_param *p = &space->params[i];
    if (p->lo == p->hi) {
        if (want == 0) *value = p->lo;
        return 1;
    }
    if (p->kind == BNK_PARAM_INT && p->hi - p->lo + 1 <= grid_points) {
        const int64_t n = (int64_t)(p->hi - p->lo) + 1;
        if (want >= 0 && want < n) *value = p->lo + (double)want;
        return n;
    }
    if (p->kind == BNK_PARAM_FLOAT || !p->log) { /* no duplicates possible */
        if (want >= 0 && want < grid_points)
            *value = spaced_value(space, i, grid_points, (int)want);
        return grid_points;
    }
    int64_t n = 0;
    double prev = NAN;
    for (int k = 0; k < grid_points; k++) {
        const double v = spaced_value(space, i, grid_points, k);
        if (v == prev) continue;
        if (n == want) *value = v;
        prev = v;
        n++;
    }
    return n;
}

static int64_t sat_mul(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return -1;
    return r;
}

static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return -1;
    return r;
}

static int64_t node_count(const bnk_space *space, int i, int grid_points);

/* Product of the counts of the parameters whose parent is `parent` (-1: the roots) and, for a
 * CAT parent, that are active under its choice k. */
static int64_t group_count(const bnk_space *space, int parent, int k, int grid_points) {
    int64_t n = 1;
    for (int j = parent + 1; j < space->n; j++) {
        const bnk_param *q = &space->params[j];
        if (q->parent != parent || (parent >= 0 && !(q->parent_choices & (1u << k)))) continue;
        n = sat_mul(n, node_count(space, j, grid_points));
    }
    return n;
}

/* Grid points of the subtree of parameter i: its values, each with its active children's
 * grid. */
static int64_t node_count(const bnk_space *space, int i, int grid_points) {
    const bnk_param *p = &space->params[i];
    if (p->kind != BNK_PARAM_CAT) return grid_values(space, i, grid_points, -1, NULL);
    int64_t n = 0;
    for (int k = 0; k < p->nchoices; k++) n = sat_add(n, group_count(space, i, k, grid_points));
    return n;
}

static void decode_node(const bnk_space *space, int i, int grid_points, int64_t idx,
                        bnk_point *out);

/* Writes digit idx of the group (parent, k) into out: mixed radix, the last member fastest. */
static void decode_group(const bnk_space *space, int parent, int k, int grid_points, int64_t idx,
                         bnk_point *out) {
    for (int j = space->n - 1; j > parent; j--) {
        const bnk_param *q = &space->params[j];
        if (q->parent != parent || (parent >= 0 && !(q->parent_choices & (1u << k)))) continue;
        const int64_t c = node_count(space, j, grid_points);
        decode_node(space, j, grid_points, idx % c, out);
        idx /= c;
    }
}

static void decode_node(const bnk_space *space, int i, int grid_points, int64_t idx,
                        bnk_point *out) {
    const bnk_param *p = &space->params[i];
    if (p->kind != BNK_PARAM_CAT) {
        grid_values(space, i, grid_points, idx, &out->v[i]);
        return;
    }
    for (int k = 0; k < p->nchoices; k++) {
        const int64_t c = group_count(space, i, k, grid_points);
        if (idx < c) {
            out->v[i] = k;
            decode_group(space, i, k, grid_points, idx, out);
            return;
        }
        idx -= c;
    }
}

static bnk_status check_config(const bnk_sampler_config *c);
static bnk_status check_space(const bnk_space *s);

/* 0 (and a message for bnk_errmsg) for a NULL, malformed or empty argument. */
int64_t bnk_sampler_grid_size(const bnk_sampler_config *cfg, const bnk_space *space) {
    if (!cfg || !space) {
        bnk__fail(BNK_ERR_NULL, "sampler: NULL argument");
        return 0;
    }
    if (check_config(cfg) != BNK_OK || check_space(space) != BNK_OK) return 0;
    return group_count(space, -1, 0, cfg->grid_points);
}

bnk_status bnk__grid_suggest(const bnk_sampler_config *cfg, const bnk_space *space, int64_t number,
                             bnk_point *out) {
    const int64_t size = group_count(space, -1, 0, cfg->grid_points);
    if (size < 0)
        return bnk__fail(BNK_ERR_SIZE, "grid sampler: the grid has more than 2^63 points; lower "
                                       "grid_points or use another sampler");
    if (number >= size)
        return bnk__fail(BNK_ERR_SIZE, "grid sampler: grid exhausted (trial %lld, %lld points)",
                         (long long)number, (long long)size);
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) out->v[i] = NAN;
    decode_group(space, -1, 0, cfg->grid_points, number, out);
    return BNK_OK;
}

/* ---- RANDOM -------------------------------------------------------------------------------- */

bnk_status bnk__random_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                               int64_t number, bnk_point *out) {
    uint64_t rng = bnk__trial_rng(cfg->seed, number, BNK__STREAM_RANDOM);
    bnk__sample_random(space, &rng, out);
    return BNK_OK;
}

/* ---- Validation and dispatch --------------------------------------------------------------- */

static bnk_status check_space(const bnk_space *s) {
    if (s->n < 1 || s->n > BNK_SPACE_MAX_PARAMS)
        return bnk__fail(BNK_ERR_PARAM, "sampler: the search space has %d parameters (1-%d)", s->n,
                         BNK_SPACE_MAX_PARAMS);
    for (int i = 0; i < s->n; i++) {
        const bnk_param *p = &s->params[i];
        bool ok;
        if (p->kind == BNK_PARAM_CAT)
            ok = p->nchoices >= 1 && p->nchoices <= BNK_PARAM_MAX_CHOICES;
        else if (p->kind == BNK_PARAM_FLOAT || p->kind == BNK_PARAM_INT)
            ok = isfinite(p->lo) && isfinite(p->hi) && p->lo <= p->hi && (!p->log || p->lo > 0) &&
                 (p->kind == BNK_PARAM_FLOAT || (p->lo == floor(p->lo) && p->hi == floor(p->hi)));
        else
            ok = false;
        if (ok && p->parent >= 0)
            ok = p->parent < i && s->params[p->parent].kind == BNK_PARAM_CAT &&
                 p->parent_choices != 0;
        else if (ok)
            ok = p->parent == -1;
        if (!ok)
            return bnk__fail(BNK_ERR_PARAM,
                             "sampler: parameter %d ('%.48s') of the search space "
                             "is malformed",
                             i, p->name);
    }
    return BNK_OK;
}

static bnk_status check_config(const bnk_sampler_config *c) {
    if ((int)c->kind < 0 || (int)c->kind >= NKINDS)
        return bnk__fail(BNK_ERR_PARAM, "sampler: unknown kind %d", (int)c->kind);
    if (c->grid_points < 1 || c->grid_points > GRID_MAX_POINTS)
        return bnk__fail(BNK_ERR_PARAM, "sampler: grid_points must be in [1, %d], got %d",
                         GRID_MAX_POINTS, c->grid_points);
    if (c->n_startup < 0)
        return bnk__fail(BNK_ERR_PARAM, "sampler: n_startup must be >= 0, got %d", c->n_startup);
    if (c->n_candidates < 1 || c->n_candidates > 100000)
        return bnk__fail(BNK_ERR_PARAM, "sampler: n_candidates must be in [1, 100000], got %d",
                         c->n_candidates);
    if (!(c->prior_weight > 0) || !isfinite(c->prior_weight))
        return bnk__fail(BNK_ERR_PARAM, "sampler: prior_weight must be > 0 and finite, got %g",
                         c->prior_weight);
    return BNK_OK;
}

bnk_status bnk_sampler_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                               const bnk_trial *history, int64_t nhistory, int64_t number,
                               bnk_point *out) {
    if (!cfg || !space || !out || (nhistory > 0 && !history))
        return bnk__fail(BNK_ERR_NULL, "sampler: NULL argument");
    if (nhistory < 0 || number < 0)
        return bnk__fail(BNK_ERR_SIZE, "sampler: nhistory (%lld) and number (%lld) must be >= 0",
                         (long long)nhistory, (long long)number);
    bnk_status st = check_config(cfg);
    if (st == BNK_OK) st = check_space(space);
    if (st != BNK_OK) return st;
    bnk_point x;
    switch (cfg->kind) {
    case BNK_SAMPLER_GRID:
        st = bnk__grid_suggest(cfg, space, number, &x);
        break;
    case BNK_SAMPLER_RANDOM:
        st = bnk__random_suggest(cfg, space, number, &x);
        break;
    case BNK_SAMPLER_SOBOL:
        st = bnk__sobol_suggest(cfg, space, number, &x);
        break;
    case BNK_SAMPLER_TPE:
        st = bnk__tpe_suggest(cfg, space, history, nhistory, number, &x);
        break;
    case BNK_SAMPLER_GP:
        st = bnk__gp_suggest(cfg, space, history, nhistory, number, &x);
        break;
    }
    if (st != BNK_OK) return st;
    /* Every sampler promises NaN for inactive parameters; enforce it once here as well. */
    bnk__point_mask_inactive(space, &x);
    *out = x;
    return BNK_OK;
}
