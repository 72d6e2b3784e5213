/* Adam and SGD with momentum over one flat parameter arena, PyTorch's update rules. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/nn.h"
#include "core/internal.h"

struct bnk_optim {
    bnk_optim_config cfg;
    size_t n;
    int64_t t;
    float *m, *v;      /* Adam moments; SGD uses m as the momentum buffer */
    uint8_t *all_ones; /* [n] the decay mask used when the caller passes none */
};

bnk_optim_config bnk_optim_config_default(bnk_optim_kind kind) {
    bnk_optim_config c = {
        .kind = kind,
        .lr = kind == BNK_OPTIM_ADAM ? 1e-3 : 1e-2,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .momentum = 0.9,
        .weight_decay = 0.0,
    };
    return c;
}

bnk_status bnk_optim_config_validate(const bnk_optim_config *c) {
    if (!c) return bnk__fail(BNK_ERR_NULL, "optimiser config is NULL");
    if (c->kind != BNK_OPTIM_ADAM && c->kind != BNK_OPTIM_SGD)
        return bnk__fail(BNK_ERR_PARAM, "unknown optimiser %d", (int)c->kind);
    if (!(c->lr > 0.0 && isfinite(c->lr)))
        return bnk__fail(BNK_ERR_PARAM, "learning rate must be finite and > 0, got %g", c->lr);
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0) || !(c->beta2 >= 0.0 && c->beta2 < 1.0))
        return bnk__fail(BNK_ERR_PARAM, "Adam betas must be in [0, 1), got %g, %g", c->beta1,
                         c->beta2);
    if (!(c->eps > 0.0 && isfinite(c->eps)))
        return bnk__fail(BNK_ERR_PARAM, "Adam eps must be finite and > 0, got %g", c->eps);
    if (!(c->momentum >= 0.0 && c->momentum < 1.0))
        return bnk__fail(BNK_ERR_PARAM, "SGD momentum must be in [0, 1), got %g", c->momentum);
    if (!(c->weight_decay >= 0.0 && isfinite(c->weight_decay)))
        return bnk__fail(BNK_ERR_PARAM, "weight decay must be finite and >= 0, got %g",
                         c->weight_decay);
    return BNK_OK;
}

bnk_status bnk_optim_create(bnk_optim **out, const bnk_optim_config *cfg, size_t num_params) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "optimiser output pointer is NULL");
    *out = NULL;
    bnk_status st = bnk_optim_config_validate(cfg);
    if (st != BNK_OK) return st;
    bnk_optim *o = calloc(1, sizeof *o);
    /* one arena for the optimiser state: [m | v] */
    float *state = calloc(2 * num_params + 1, sizeof(float));
    uint8_t *ones = malloc(num_params + 1);
    if (!o || !state || !ones) {
        free(o);
        free(state);
        free(ones);
        return bnk__fail(BNK_ERR_NOMEM, "cannot allocate optimiser state for %zu parameters",
                         num_params);
    }
    o->cfg = *cfg;
    o->n = num_params;
    o->m = state;
    o->v = state + num_params;
    o->all_ones = ones;
    memset(ones, 1, num_params + 1);
    *out = o;
    return BNK_OK;
}

void bnk_optim_destroy(bnk_optim *o) {
    if (!o) return;
    free(o->m);
    free(o->all_ones);
    free(o);
}

int64_t bnk_optim_steps(const bnk_optim *o) {
    return o->t;
}

/* The update loops are multiversioned (BNK__MULTIVERSION, core/internal.h). */
BNK__MULTIVERSION
static void adam_update(size_t n, float *restrict p, float *restrict m, float *restrict v,
                        const float *restrict g, const uint8_t *restrict decay, float wd, float b1,
                        float b2, float step, float inv_sqrt_bc2, float eps) {
    /* wd = 0 (the default): the mask and the decay term are skipped, as PyTorch skips them;
     * the loop is unswitched on this invariant, so each version stays branch-free */
    const bool decayed = wd != 0.0f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        /* the mask as a 0/1 factor, not a branch: the loop stays vectorisable */
        const float gi = decayed ? g[i] + wd * (float)decay[i] * p[i] : g[i];
        const float mi = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        /* Moments of parameters whose gradient is 0 (border pixels) decay geometrically into
         * the subnormal range, where x86 arithmetic is ~100x slower; below 1e-30 they are
         * irrelevant next to eps (sqrt(1e-30) = 1e-15), so flush them to 0. */
        m[i] = fabsf(mi) < 1e-30f ? 0.0f : mi;
        v[i] = vi < 1e-30f ? 0.0f : vi;
        p[i] -= step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}

BNK__MULTIVERSION
static void sgd_update(size_t n, float *restrict p, float *restrict buf, const float *restrict g,
                       const uint8_t *restrict decay, float wd, float mu, float rate, bool first) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * (float)decay[i] * p[i];
        buf[i] = first ? gi : mu * buf[i] + gi; /* PyTorch starts the buffer at g */
        p[i] -= rate * buf[i];
    }
}

void bnk_optim_step(bnk_optim *o, float *p, const float *g, const uint8_t *decay, double lr) {
    /* no mask: weight decay applies to every parameter */
    const float wd = (float)o->cfg.weight_decay;
    if (!decay) decay = o->all_ones;
    o->t++;
    if (o->cfg.kind == BNK_OPTIM_ADAM) {
        /* PyTorch: p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps) */
        const double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->t);
        const double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->t);
        adam_update(o->n, p, o->m, o->v, g, decay, wd, (float)o->cfg.beta1, (float)o->cfg.beta2,
                    (float)(lr / bc1), (float)(1.0 / sqrt(bc2)), (float)o->cfg.eps);
    } else {
        sgd_update(o->n, p, o->m, g, decay, wd, (float)o->cfg.momentum, (float)lr, o->t == 1);
    }
}
