/* bnk_bn_layer: a BN layer that owns its parameters, running statistics, gradients, step counter
 * and the saved statistics of its last training forward, on top of the stateless kernels. */
#include <stdlib.h>
#include <string.h>

#include "bn/bn_internal.h"
#include "core/internal.h"

/* Field order of the single float arena: gamma, beta, running_mean, running_var, dgamma, dbeta. */
enum { ARENA_GAMMA, ARENA_BETA, ARENA_RMEAN, ARENA_RVAR, ARENA_DGAMMA, ARENA_DBETA, ARENA_FIELDS };

struct bnk_bn_layer {
    bnk_bn_config cfg;
    int64_t channels;
    int64_t step;
    float *arena;            /* [ARENA_FIELDS * channels] */
    double *saved;           /* [BNK_BN_SAVED_FIELDS * channels] */
    const bnk_bn_comm *comm; /* NULL: local BN; else training runs synchronised over it */
};

bnk_status bnk_bn_layer_create(bnk_bn_layer **out, const bnk_bn_config *cfg, int64_t channels) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "layer output pointer is NULL");
    *out = NULL;
    bnk_status st = bnk_bn_config_validate(cfg);
    if (st != BNK_OK) return st;
    if (channels <= 0)
        return bnk__fail(BNK_ERR_SIZE, "channels must be >= 1, got %lld", (long long)channels);
    if ((uint64_t)channels > SIZE_MAX / (BNK_BN_SAVED_FIELDS * sizeof(double)))
        return bnk__fail(BNK_ERR_OVERFLOW, "%lld channels overflow the address space",
                         (long long)channels);
    const size_t c = (size_t)channels;
    bnk_bn_layer *layer = calloc(1, sizeof *layer);
    float *arena = calloc(ARENA_FIELDS * c, sizeof(float));
    double *saved = calloc(BNK_BN_SAVED_FIELDS * c, sizeof(double));
    if (!layer || !arena || !saved) {
        free(layer);
        free(arena);
        free(saved);
        return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a BN layer of %lld channels",
                         (long long)channels);
    }
    layer->cfg = *cfg;
    layer->channels = channels;
    layer->arena = arena;
    layer->saved = saved;
    for (size_t i = 0; i < c; i++) {
        arena[ARENA_GAMMA * c + i] = 1.0f;
        arena[ARENA_RVAR * c + i] = 1.0f;
    }
    *out = layer;
    return BNK_OK;
}

void bnk_bn_layer_destroy(bnk_bn_layer *layer) {
    if (!layer) return;
    free(layer->arena);
    free(layer->saved);
    free(layer);
}

bnk_status bnk_bn_layer_set_config(bnk_bn_layer *layer, const bnk_bn_config *cfg) {
    if (!layer) return bnk__fail(BNK_ERR_NULL, "layer is NULL");
    bnk_status st = bnk_bn_config_validate(cfg);
    if (st == BNK_OK) layer->cfg = *cfg;
    return st;
}

const bnk_bn_config *bnk_bn_layer_config(const bnk_bn_layer *layer) {
    return &layer->cfg;
}

static float *field(bnk_bn_layer *layer, int f) {
    return layer->arena + (size_t)f * (size_t)layer->channels;
}

static bnk_status check_channels(const bnk_bn_layer *layer, const bnk_bn_shape *shape) {
    if (!layer) return bnk__fail(BNK_ERR_NULL, "layer is NULL");
    if (!shape) return bnk__fail(BNK_ERR_NULL, "shape is NULL");
    if (shape->c != layer->channels)
        return bnk__fail(BNK_ERR_SHAPE, "input has %lld channels but the layer has %lld",
                         (long long)shape->c, (long long)layer->channels);
    return BNK_OK;
}

bnk_status bnk_bn_layer_forward(bnk_bn_layer *layer, const bnk_bn_shape *shape, bool training,
                                float *y, const float *x) {
    bnk_status st = check_channels(layer, shape);
    if (st != BNK_OK) return st;
    if (!training)
        return bnk_bn_forward_infer(&layer->cfg, shape, y, x, field(layer, ARENA_GAMMA),
                                    field(layer, ARENA_BETA), field(layer, ARENA_RMEAN),
                                    field(layer, ARENA_RVAR));
    if (layer->comm)
        st = bnk_bn_forward_train_sync(&layer->cfg, shape, layer->step, y, layer->saved,
                                       field(layer, ARENA_RMEAN), field(layer, ARENA_RVAR), x,
                                       field(layer, ARENA_GAMMA), field(layer, ARENA_BETA),
                                       layer->comm);
    else
        st = bnk_bn_forward_train(&layer->cfg, shape, layer->step, y, layer->saved,
                                  field(layer, ARENA_RMEAN), field(layer, ARENA_RVAR), x,
                                  field(layer, ARENA_GAMMA), field(layer, ARENA_BETA));
    if (st == BNK_OK) layer->step++;
    return st;
}

bnk_status bnk_bn_layer_backward(bnk_bn_layer *layer, const bnk_bn_shape *shape, float *dx,
                                 const float *dy, const float *x, const float *y) {
    bnk_status st = check_channels(layer, shape);
    if (st != BNK_OK) return st;
    if (layer->comm)
        return bnk_bn_backward_sync(&layer->cfg, shape, dx, field(layer, ARENA_DGAMMA),
                                    field(layer, ARENA_DBETA), dy, x, y, field(layer, ARENA_GAMMA),
                                    layer->saved, layer->comm);
    return bnk_bn_backward(&layer->cfg, shape, dx, field(layer, ARENA_DGAMMA),
                           field(layer, ARENA_DBETA), dy, x, y, field(layer, ARENA_GAMMA),
                           layer->saved);
}

void bnk_bn_layer_zero_grad(bnk_bn_layer *layer) {
    memset(field(layer, ARENA_DGAMMA), 0, 2 * (size_t)layer->channels * sizeof(float));
}

int64_t bnk_bn_layer_channels(const bnk_bn_layer *layer) {
    return layer->channels;
}

int64_t bnk_bn_layer_step(const bnk_bn_layer *layer) {
    return layer->step;
}

void bnk_bn_layer_set_step(bnk_bn_layer *layer, int64_t step) {
    layer->step = step;
}

float *bnk_bn_layer_gamma(bnk_bn_layer *layer) {
    return field(layer, ARENA_GAMMA);
}

float *bnk_bn_layer_beta(bnk_bn_layer *layer) {
    return field(layer, ARENA_BETA);
}

float *bnk_bn_layer_running_mean(bnk_bn_layer *layer) {
    return field(layer, ARENA_RMEAN);
}

float *bnk_bn_layer_running_var(bnk_bn_layer *layer) {
    return field(layer, ARENA_RVAR);
}

float *bnk_bn_layer_dgamma(bnk_bn_layer *layer) {
    return field(layer, ARENA_DGAMMA);
}

float *bnk_bn_layer_dbeta(bnk_bn_layer *layer) {
    return field(layer, ARENA_DBETA);
}

void bnk_bn_layer_set_comm(bnk_bn_layer *layer, const bnk_bn_comm *comm) {
    layer->comm = comm;
}

const double *bnk_bn_layer_saved(const bnk_bn_layer *layer) {
    return layer->saved;
}
