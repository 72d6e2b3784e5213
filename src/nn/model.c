/* bnk_model: a sequential network built from a spec string. One arena each for parameters,
 * gradients and BN running statistics; activations and their gradients allocated once for
 * max_batch; forward and backward walk the layer records. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "nn/checkpoint_internal.h"
#include "nn/layer.h"

struct bnk_model {
    bnk_model_config cfg; /* cfg.spec points at spec */
    char *spec;           /* owned copy of the spec string, for checkpoints */
    bnk_bn_config bn;
    int nlayers;
    bnk__layer layers[BNK__MAX_LAYERS];
    size_t num_params;
    float *params, *grads; /* [num_params] each */
    uint8_t *decay;        /* [num_params] */
    float *buffers;        /* BN running statistics */
    double *saved;         /* BN saved statistics */
    float *acts;           /* every layer's out and dout */
    uint8_t *masks;        /* dropout masks */
    float *dinput;         /* [max_batch * in_size] scratch when layer 0 needs a dx */
    int ntensors;
    bnk_tensor_info tensors[4 * BNK__MAX_LAYERS];
    const float *input;    /* the last forward's x */
    int64_t last_n;        /* batch size of the last forward (0: an empty shard) */
    int64_t last_global_n; /* the global batch the last forward's shard belongs to */
    bool have_forward, last_training, have_loss;
    /* bnk_model_zero_grad was called and the gradient arena not yet zeroed: the next backward
     * writes every gradient instead of adding (bnk_model_grads zeroes it when asked first) */
    bool zero_pending;
    int64_t bn_step;
    uint64_t dropout_rng;
    const bnk_bn_comm *bn_comm; /* synchronised BN over this group; NULL: local BN */
};

bnk_model_config bnk_model_config_default(void) {
    bnk_model_config c = {
        .spec = NULL,
        .in_c = 1,
        .in_h = 28,
        .in_w = 28,
        .max_batch = 100,
        .bn = bnk_bn_config_default(),
        .dropout = 0.5,
        .seed = 0,
    };
    return c;
}

/* ---- Building ----------------------------------------------------------------------------- */

/* Output shape and parameter counts of layer l given its input shape. */
static bnk_status infer_shape(bnk__layer *l, int pos, const bnk_model_config *cfg) {
    const bnk__layer_spec *s = &l->spec;
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->w_count = l->b_count = 0;
    switch (s->kind) {
    case BNK__LAYER_DENSE:
        l->out_c = (int64_t)s->args[0];
        l->out_h = l->out_w = 1;
        if ((double)l->out_c * (double)l->in_c * (double)l->in_h * (double)l->in_w > 0x1p40)
            return bnk__fail(BNK_ERR_OVERFLOW, "model spec: layer %d '%s': too many weights", pos,
                             s->token);
        l->w_count = (size_t)l->out_c * (size_t)(l->in_c * l->in_h * l->in_w);
        l->b_count = (size_t)l->out_c;
        break;
    case BNK__LAYER_CONV:
        l->k = (int64_t)s->args[0 + 1];
        l->stride = s->nargs > 2 ? (int64_t)s->args[2] : 1;
        l->pad = s->nargs > 3 ? (int64_t)s->args[3] : l->k / 2;
        l->out_c = (int64_t)s->args[0];
        if ((double)l->out_c * (double)l->in_c * (double)l->k * (double)l->k > 0x1p40)
            return bnk__fail(BNK_ERR_OVERFLOW, "model spec: layer %d '%s': too many weights", pos,
                             s->token);
        l->out_h = (l->in_h + 2 * l->pad - l->k) / l->stride + 1;
        l->out_w = (l->in_w + 2 * l->pad - l->k) / l->stride + 1;
        if (l->in_h + 2 * l->pad < l->k || l->in_w + 2 * l->pad < l->k)
            return bnk__fail(BNK_ERR_PARAM,
                             "model spec: layer %d '%s': kernel %lld is larger than its padded "
                             "input %lldx%lld",
                             pos, s->token, (long long)l->k, (long long)(l->in_h + 2 * l->pad),
                             (long long)(l->in_w + 2 * l->pad));
        l->w_count = (size_t)(l->out_c * l->in_c * l->k * l->k);
        l->b_count = (size_t)l->out_c;
        break;
    case BNK__LAYER_MAXPOOL:
        l->k = (int64_t)s->args[0];
        l->stride = s->nargs > 1 ? (int64_t)s->args[1] : l->k;
        if (l->in_h < l->k || l->in_w < l->k)
            return bnk__fail(BNK_ERR_PARAM,
                             "model spec: layer %d '%s': window %lld is larger than its input "
                             "%lldx%lld",
                             pos, s->token, (long long)l->k, (long long)l->in_h,
                             (long long)l->in_w);
        l->out_h = (l->in_h - l->k) / l->stride + 1;
        l->out_w = (l->in_w - l->k) / l->stride + 1;
        break;
    case BNK__LAYER_BN:
        l->w_count = l->b_count = (size_t)l->in_c;
        break;
    case BNK__LAYER_DROPOUT:
        l->rate = s->nargs ? s->args[0] : cfg->dropout;
        break;
    case BNK__LAYER_FLATTEN:
        l->out_c = l->in_c * l->in_h * l->in_w;
        l->out_h = l->out_w = 1;
        break;
    case BNK__LAYER_RELU:
        break;
    }
    l->in_size = (size_t)(l->in_c * l->in_h * l->in_w);
    l->out_size = (size_t)(l->out_c * l->out_h * l->out_w);
    if (l->out_size > ((size_t)1 << 31) / (size_t)cfg->max_batch)
        return bnk__fail(BNK_ERR_OVERFLOW,
                         "model spec: layer %d '%s': activations of %zu x %lld "
                         "floats are too large",
                         pos, s->token, l->out_size, (long long)cfg->max_batch);
    return BNK_OK;
}

/* He-normal for layers feeding a ReLU (possibly through bn/dropout), Glorot-uniform otherwise. */
static void init_weights(bnk__layer *l, float *w, uint64_t *rng) {
    /* dense: fan_in = inputs, fan_out = units; conv: C*k*k and F*k*k */
    const double receptive = l->spec.kind == BNK__LAYER_CONV ? (double)(l->k * l->k) : 1.0;
    const double fan_in = (double)l->w_count / (double)l->out_c;
    const double fan_out = (double)l->out_c * receptive;
    if (l->relu_follows) {
        const double sd = sqrt(2.0 / fan_in);
        for (size_t i = 0; i < l->w_count; i++) w[i] = (float)(sd * bnk__rng_normal(rng));
    } else {
        const double limit = sqrt(6.0 / (fan_in + fan_out));
        for (size_t i = 0; i < l->w_count; i++)
            w[i] = (float)(limit * (2.0 * bnk__rng_uniform(rng) - 1.0));
    }
}

static void add_tensor(bnk_model *m, int layer, const char *kind, const char *field, float *data,
                       int ndim, const int64_t *shape, bool trainable) {
    bnk_tensor_info *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%d.%s.%s", layer, kind, field);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= (size_t)shape[i];
    }
    t->data = data;
    t->trainable = trainable;
}

static bnk_status validate_config(const bnk_model_config *cfg) {
    if (!cfg) return bnk__fail(BNK_ERR_NULL, "model config is NULL");
    if (cfg->in_c <= 0 || cfg->in_h <= 0 || cfg->in_w <= 0 || cfg->in_c > 1 << 20 ||
        cfg->in_h > 1 << 16 || cfg->in_w > 1 << 16)
        return bnk__fail(BNK_ERR_SIZE, "model input shape %lldx%lldx%lld is invalid",
                         (long long)cfg->in_c, (long long)cfg->in_h, (long long)cfg->in_w);
    if (cfg->max_batch <= 0 || cfg->max_batch > 1 << 24)
        return bnk__fail(BNK_ERR_SIZE, "max_batch must be in [1, 2^24], got %lld",
                         (long long)cfg->max_batch);
    if (!(cfg->dropout >= 0.0 && cfg->dropout < 1.0))
        return bnk__fail(BNK_ERR_PARAM, "dropout rate must be in [0, 1), got %g", cfg->dropout);
    return bnk_bn_config_validate(&cfg->bn);
}

static bnk__conv_shape conv_shape_of(const bnk__layer *l, int in_block) {
    bnk__conv_shape cs = {l->in_c, l->in_h,  l->in_w,  l->out_c, l->k,    l->stride,
                          l->pad,  l->out_h, l->out_w, in_block, l->block};
    return cs;
}

/* Activation layouts (block, nn_internal.h). A convolution whose output oneDNN keeps in a blocked
 * layout starts a run of blocked layers: bn, relu, dropout and maxpool keep their input's layout,
 * a further convolution continues the run when it keeps the same block, and a flatten ends it
 * by converting to NCHW. A run that would reach a dense layer directly (which reads its input as
 * NCHW) is made NCHW as a whole. Layouts change how activations are stored, never what they
 * hold; BNK_CONV_FORMAT=plain keeps everything NCHW. */
static bnk_status choose_layouts(bnk_model *m) {
    int cur = 0;
    for (int i = 0; i < m->nlayers; i++) {
        bnk__layer *l = &m->layers[i];
        switch (l->spec.kind) {
        case BNK__LAYER_CONV: {
            const bnk__conv_shape cs = conv_shape_of(l, cur);
            int b = 0;
            bnk_status st = bnk__conv_preferred_block(&cs, m->cfg.max_batch, &b);
            if (st != BNK_OK) return st;
            cur = cur && b != cur ? 0 : b;
            break;
        }
        case BNK__LAYER_DENSE:
            for (int j = i - 1; j >= 0 && m->layers[j].block; j--) m->layers[j].block = 0;
            cur = 0;
            break;
        case BNK__LAYER_FLATTEN:
            cur = 0;
            break;
        default:
            break;
        }
        l->block = cur;
    }
    return BNK_OK;
}

/* The layout of layer i's input. */
static int in_block(const bnk_model *m, int i) {
    return i ? m->layers[i - 1].block : 0;
}

/* Whether layer i's out and dout are its input's (no storage of its own): a flatten of NCHW
 * input, a relu done inside the BN before it. */
static bool aliases_input(const bnk_model *m, int i) {
    const bnk__layer *l = &m->layers[i];
    return (l->spec.kind == BNK__LAYER_FLATTEN && !in_block(m, i)) ||
           (l->spec.kind == BNK__LAYER_RELU && l->relu_fused);
}

/* Shapes, relu_follows, relu_fused and parameter offsets of every layer, and (layouts) their
 * activation layouts; totals for the allocations. */
static bnk_status plan(bnk_model *m, bool layouts, size_t *n_buffers, size_t *n_saved,
                       size_t *n_acts, size_t *n_masks) {
    const bnk_model_config *cfg = &m->cfg;
    int64_t c = cfg->in_c, h = cfg->in_h, w = cfg->in_w;
    *n_buffers = *n_saved = *n_acts = *n_masks = 0;
    m->num_params = 0;
    for (int i = 0; i < m->nlayers; i++) {
        bnk__layer *l = &m->layers[i];
        l->in_c = c;
        l->in_h = h;
        l->in_w = w;
        bnk_status st = infer_shape(l, i + 1, cfg);
        if (st != BNK_OK) return st;
        c = l->out_c;
        h = l->out_h;
        w = l->out_w;
        l->w_off = m->num_params;
        l->b_off = l->w_off + l->w_count;
        m->num_params += l->w_count + l->b_count;
        for (int j = i + 1; j < m->nlayers; j++) {
            bnk__layer_kind k = m->layers[j].spec.kind;
            if (k == BNK__LAYER_RELU) l->relu_follows = true;
            if (k != BNK__LAYER_BN && k != BNK__LAYER_DROPOUT) break;
        }
        if (l->spec.kind == BNK__LAYER_BN) {
            *n_buffers += 2 * (size_t)l->out_c;
            *n_saved += BNK_BN_SAVED_FIELDS * (size_t)l->out_c;
        }
        if (l->spec.kind == BNK__LAYER_DROPOUT) *n_masks += l->out_size;
        l->relu_fused = (l->spec.kind == BNK__LAYER_BN && i + 1 < m->nlayers &&
                         m->layers[i + 1].spec.kind == BNK__LAYER_RELU) ||
                        (l->spec.kind == BNK__LAYER_RELU && i > 0 &&
                         m->layers[i - 1].spec.kind == BNK__LAYER_BN);
    }
    const bnk__layer *last = &m->layers[m->nlayers - 1];
    if (last->out_h != 1 || last->out_w != 1 || last->out_c < 2)
        return bnk__fail(BNK_ERR_PARAM,
                         "model spec: the last layer '%s' must output a vector of >= 2 class "
                         "scores (end with dense:CLASSES), not %lldx%lldx%lld",
                         last->spec.token, (long long)last->out_c, (long long)last->out_h,
                         (long long)last->out_w);
    if (layouts) {
        bnk_status st = choose_layouts(m);
        if (st != BNK_OK) return st;
    }
    for (int i = 0; i < m->nlayers; i++)
        if (!aliases_input(m, i)) *n_acts += 2 * m->layers[i].out_size;
    return BNK_OK;
}

/* Points every layer at its slices of the arenas, creates operators, initialises parameters. */
static bnk_status wire(bnk_model *m) {
    const size_t B = (size_t)m->cfg.max_batch;
    float *act = m->acts, *buf = m->buffers;
    double *saved = m->saved;
    uint8_t *mask = m->masks;
    uint64_t rng = m->cfg.seed ^ 0x6e6e2d696e6974ull; /* "nn-init" */
    for (int i = 0; i < m->nlayers; i++) {
        bnk__layer *l = &m->layers[i];
        const char *kind = l->spec.kind == BNK__LAYER_DENSE  ? "dense"
                           : l->spec.kind == BNK__LAYER_CONV ? "conv"
                                                             : "bn";
        if (aliases_input(m, i)) {
            /* the same floats (under another shape, for flatten) */
            l->out = i ? m->layers[i - 1].out : NULL;
            l->dout = i ? m->layers[i - 1].dout : NULL;
        } else {
            l->out = act;
            l->dout = act + B * l->out_size;
            act += 2 * B * l->out_size;
        }
        float *w = m->params + l->w_off, *b = m->params + l->b_off;
        switch (l->spec.kind) {
        case BNK__LAYER_DENSE:
        case BNK__LAYER_CONV: {
            init_weights(l, w, &rng);
            memset(m->decay + l->w_off, 1, l->w_count);
            int64_t ws[4] = {l->out_c, l->in_c, l->k, l->k};
            if (l->spec.kind == BNK__LAYER_DENSE) ws[1] = (int64_t)l->in_size;
            add_tensor(m, i, kind, "weight", w, l->spec.kind == BNK__LAYER_DENSE ? 2 : 4, ws, true);
            add_tensor(m, i, kind, "bias", b, 1, &l->out_c, true);
            break;
        }
        case BNK__LAYER_BN:
            for (size_t k = 0; k < l->w_count; k++) w[k] = 1.0f;
            l->running_mean = buf;
            l->running_var = buf + l->out_c;
            for (int64_t k = 0; k < l->out_c; k++) l->running_var[k] = 1.0f;
            buf += 2 * l->out_c;
            l->saved = saved;
            saved += BNK_BN_SAVED_FIELDS * l->out_c;
            add_tensor(m, i, kind, "gamma", w, 1, &l->out_c, true);
            add_tensor(m, i, kind, "beta", b, 1, &l->out_c, true);
            add_tensor(m, i, kind, "running_mean", l->running_mean, 1, &l->out_c, false);
            add_tensor(m, i, kind, "running_var", l->running_var, 1, &l->out_c, false);
            break;
        case BNK__LAYER_DROPOUT:
            l->mask = mask;
            mask += B * l->out_size;
            break;
        default:
            break;
        }
        bnk_status st = BNK_OK;
        if (l->spec.kind == BNK__LAYER_DENSE) {
            st = bnk__dense_create(&l->dense, (int64_t)l->in_size, l->out_c);
        } else if (l->spec.kind == BNK__LAYER_CONV) {
            const bnk__conv_shape cs = conv_shape_of(l, in_block(m, i));
            st = bnk__conv_create(&l->conv, &cs);
        } else if (l->spec.kind == BNK__LAYER_MAXPOOL) {
            bnk__pool_shape ps = {l->in_c,  l->in_h,  l->in_w,          l->k,    l->stride,
                                  l->out_h, l->out_w, m->cfg.max_batch, l->block};
            st = bnk__pool_create(&l->pool, &ps);
        }
        if (st != BNK_OK) return st;
    }
    return BNK_OK;
}

bnk_status bnk_model_create(bnk_model **out, const bnk_model_config *cfg) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "model output pointer is NULL");
    *out = NULL;
    bnk_status st = validate_config(cfg);
    if (st != BNK_OK) return st;
    bnk_model *m = calloc(1, sizeof *m);
    if (!m) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a model");
    m->cfg = *cfg;
    m->spec = cfg->spec ? strdup(cfg->spec) : NULL;
    m->cfg.spec = m->spec;
    m->bn = cfg->bn;
    m->dropout_rng = cfg->seed ^ 0x64726f706f7574ull; /* "dropout" */
    bnk__layer_spec specs[BNK__MAX_LAYERS];
    size_t n_buffers, n_saved, n_acts, n_masks;
    st = cfg->spec && !m->spec ? bnk__fail(BNK_ERR_NOMEM, "cannot copy the model spec")
                               : bnk__spec_parse(cfg->spec, specs, &m->nlayers);
    for (int i = 0; st == BNK_OK && i < m->nlayers; i++) m->layers[i].spec = specs[i];
    if (st == BNK_OK) st = plan(m, true, &n_buffers, &n_saved, &n_acts, &n_masks);
    if (st == BNK_OK) {
        const size_t B = (size_t)cfg->max_batch, P = m->num_params ? m->num_params : 1;
        /* a BN layer that sees the raw input (after flattens) still needs somewhere to put dx */
        int first = 0;
        while (first < m->nlayers - 1 && m->layers[first].spec.kind == BNK__LAYER_FLATTEN) first++;
        const bool dx0 = m->layers[first].spec.kind == BNK__LAYER_BN;
        m->params = calloc(P, sizeof(float));
        m->grads = calloc(P, sizeof(float));
        m->decay = calloc(P, 1);
        m->buffers = calloc(n_buffers + 1, sizeof(float));
        m->saved = calloc(n_saved + 1, sizeof(double));
        m->acts = calloc(B * n_acts, sizeof(float));
        m->masks = calloc(B * n_masks + 1, 1);
        m->dinput = dx0 ? calloc(B * m->layers[0].in_size, sizeof(float)) : NULL;
        if (!m->params || !m->grads || !m->decay || !m->buffers || !m->saved || !m->acts ||
            !m->masks || (dx0 && !m->dinput))
            st = bnk__fail(BNK_ERR_NOMEM,
                           "cannot allocate the model's arenas (%zu parameters, "
                           "%zu activation floats per sample)",
                           m->num_params, n_acts);
    }
    if (st == BNK_OK) st = wire(m);
    if (st != BNK_OK) {
        bnk_model_destroy(m);
        return st;
    }
    *out = m;
    return BNK_OK;
}

void bnk_model_destroy(bnk_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nlayers; i++) {
        bnk__dense_destroy(m->layers[i].dense);
        bnk__conv_destroy(m->layers[i].conv);
        bnk__pool_destroy(m->layers[i].pool);
    }
    free(m->params);
    free(m->grads);
    free(m->decay);
    free(m->buffers);
    free(m->saved);
    free(m->acts);
    free(m->masks);
    free(m->dinput);
    free(m->spec);
    free(m);
}

bnk_status bnk__model_plan(const bnk_model_config *cfg, size_t *num_params, size_t *num_buffers) {
    bnk_status st = validate_config(cfg);
    if (st != BNK_OK) return st;
    bnk_model *m = calloc(1, sizeof *m);
    if (!m) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a model plan");
    m->cfg = *cfg;
    bnk__layer_spec specs[BNK__MAX_LAYERS];
    size_t n_saved, n_acts, n_masks;
    st = bnk__spec_parse(cfg->spec, specs, &m->nlayers);
    for (int i = 0; st == BNK_OK && i < m->nlayers; i++) m->layers[i].spec = specs[i];
    if (st == BNK_OK) st = plan(m, false, num_buffers, &n_saved, &n_acts, &n_masks);
    if (st == BNK_OK) *num_params = m->num_params;
    free(m);
    return st;
}

/* ---- Running ------------------------------------------------------------------------------ */

static bnk_bn_shape bn_shape(const bnk__layer *l, int64_t n) {
    bnk_bn_shape s = {BNK_LAYOUT_NCHW, n, l->in_c, l->in_h, l->in_w};
    if (l->block == 16)
        s.layout = BNK_LAYOUT_NCHW16C;
    else if (l->block == 8)
        s.layout = BNK_LAYOUT_NCHW8C;
    else if (l->in_h == 1 && l->in_w == 1)
        s.layout = BNK_LAYOUT_NC;
    return s;
}

/* The configuration BN layer l runs with: the model's, with the ReLU fused when it is. */
static bnk_bn_config bn_config(const bnk_model *m, const bnk__layer *l) {
    bnk_bn_config c = m->bn;
    c.fuse_relu = c.fuse_relu || l->relu_fused;
    return c;
}

/* Skips `draws` values of a splitmix64 stream: its state advances by a constant per draw. */
static void rng_skip(uint64_t *state, uint64_t draws) {
    *state += draws * 0x9E3779B97F4A7C15ull;
}

bnk_status bnk_model_forward(bnk_model *m, const float *x, int64_t n, bool training) {
    return bnk_model_forward_shard(m, x, n, 0, n, training);
}

bnk_status bnk_model_forward_shard(bnk_model *m, const float *x, int64_t n, int64_t offset,
                                   int64_t global_n, bool training) {
    if (!m || (!x && n > 0))
        return bnk__fail(BNK_ERR_NULL, "model forward: model and x must not be NULL");
    if (n < 0 || n > m->cfg.max_batch || global_n < 1)
        return bnk__fail(BNK_ERR_SIZE, "model forward: batch of %lld samples, max_batch is %lld",
                         (long long)n, (long long)m->cfg.max_batch);
    if (offset < 0 || offset > global_n - n)
        return bnk__fail(BNK_ERR_SIZE,
                         "model forward: shard [%lld, %lld) is not inside a global batch of "
                         "%lld samples",
                         (long long)offset, (long long)(offset + n), (long long)global_n);
    m->have_forward = false;
    m->have_loss = false;
    const float *in = n ? x : m->acts; /* an empty shard reads nothing */
    bool has_bn = false;
    for (int i = 0; i < m->nlayers; i++) {
        bnk__layer *l = &m->layers[i];
        const float *w = m->params + l->w_off, *b = m->params + l->b_off;
        const size_t count = (size_t)n * l->out_size;
        bnk_status st = BNK_OK;
        /* An empty shard only takes part in synchronised BN (its collective operations); every
         * other layer has nothing to compute. */
        if (n == 0 && !(l->spec.kind == BNK__LAYER_BN && training && m->bn_comm) &&
            l->spec.kind != BNK__LAYER_FLATTEN) {
            if (l->spec.kind == BNK__LAYER_BN) has_bn = true;
            if (l->spec.kind == BNK__LAYER_DROPOUT && training && l->rate > 0.0)
                rng_skip(&m->dropout_rng, (uint64_t)global_n * l->out_size);
            in = l->out;
            continue;
        }
        switch (l->spec.kind) {
        case BNK__LAYER_DENSE:
            st = bnk__dense_forward(l->dense, n, l->out, in, w, b);
            break;
        case BNK__LAYER_CONV:
            st = bnk__conv_forward(l->conv, n, l->out, in, w, b);
            break;
        case BNK__LAYER_MAXPOOL:
            st = bnk__pool_forward(l->pool, n, l->out, in, training);
            break;
        case BNK__LAYER_RELU:
            if (!l->relu_fused) bnk__relu_forward(count, l->out, in);
            break;
        case BNK__LAYER_BN: {
            const bnk_bn_shape s = bn_shape(l, n);
            const bnk_bn_config c = bn_config(m, l);
            has_bn = true;
            if (training && m->bn_comm)
                st =
                    bnk_bn_forward_train_sync(&c, &s, m->bn_step, l->out, l->saved, l->running_mean,
                                              l->running_var, in, w, b, m->bn_comm);
            else if (training)
                st = bnk_bn_forward_train(&c, &s, m->bn_step, l->out, l->saved, l->running_mean,
                                          l->running_var, in, w, b);
            else
                st =
                    bnk_bn_forward_infer(&c, &s, l->out, in, w, b, l->running_mean, l->running_var);
            break;
        }
        case BNK__LAYER_DROPOUT:
            if (training && l->rate > 0.0) {
                /* the masks of a single-process forward of the whole global batch: this shard
                 * draws at its samples' positions of the stream, which then moves past all */
                uint64_t rng = m->dropout_rng;
                rng_skip(&rng, (uint64_t)offset * l->out_size);
                bnk__dropout_forward(count, l->rate, &rng, l->mask, l->out, in);
                rng_skip(&m->dropout_rng, (uint64_t)global_n * l->out_size);
            } else
                memcpy(l->out, in, count * sizeof(float));
            break;
        case BNK__LAYER_FLATTEN:
            if (in_block(m, i))
                bnk__unblock(n, l->in_c, l->in_h * l->in_w, in_block(m, i), l->out, in);
            else
                l->out = (float *)in; /* alias: read only */
            break;
        }
        if (st != BNK_OK) return st;
        in = l->out;
    }
    if (training && has_bn) m->bn_step++;
    m->input = x;
    m->last_n = n;
    m->last_global_n = global_n;
    m->last_training = training;
    m->have_forward = true;
    return BNK_OK;
}

const float *bnk_model_logits(const bnk_model *m) {
    return m->layers[m->nlayers - 1].out;
}

int64_t bnk_model_num_outputs(const bnk_model *m) {
    return m->layers[m->nlayers - 1].out_c;
}

bnk_status bnk_model_loss(bnk_model *m, const int32_t *labels, int64_t n, double *loss,
                          int64_t *correct) {
    if (!m || (!labels && n > 0))
        return bnk__fail(BNK_ERR_NULL, "model loss: model and labels required");
    if (!m->have_forward || n != m->last_n)
        return bnk__fail(BNK_ERR_SHAPE,
                         "model loss: %lld labels but the last forward had %lld "
                         "samples",
                         (long long)n, (long long)m->last_n);
    const bnk__layer *last = &m->layers[m->nlayers - 1];
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= last->out_c)
            return bnk__fail(BNK_ERR_PARAM,
                             "model loss: label %d of sample %lld is outside "
                             "[0, %lld)",
                             (int)labels[i], (long long)i, (long long)last->out_c);
    double l = 0.0;
    if (correct) *correct = 0;
    if (n > 0) l = bnk__softmax_xent(n, last->out_c, last->dout, correct, last->out, labels);
    if (n > 0 && m->last_global_n != n) {
        /* a shard: its share of the global batch mean, sum / global_n, and gradients alike */
        const double share = (double)n / (double)m->last_global_n;
        const float fshare = (float)share;
        const size_t count = (size_t)n * (size_t)last->out_c;
        for (size_t i = 0; i < count; i++) last->dout[i] *= fshare;
        l *= share;
    }
    if (loss) *loss = l;
    m->have_loss = true;
    return BNK_OK;
}

bnk_status bnk_model_backward(bnk_model *m, int64_t n) {
    if (!m) return bnk__fail(BNK_ERR_NULL, "model backward: model is NULL");
    if (!m->have_loss || !m->last_training || n != m->last_n)
        return bnk__fail(BNK_ERR_PARAM, "model backward needs a training forward and a loss on "
                                        "the same batch first");
    /* After zero_grad, a dense layer writes its gradients (GEMM beta 0) and every other
     * layer's are zeroed here, just before it accumulates into them: the arena is never
     * swept as a whole (its dense weights are nearly all of it). */
    const bool overwrite = m->zero_pending;
    m->zero_pending = false;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        bnk__layer *l = &m->layers[i];
        const float *in = i ? m->layers[i - 1].out : m->input;
        float *din = i ? m->layers[i - 1].dout : NULL;
        const float *w = m->params + l->w_off;
        float *dw = m->grads + l->w_off, *db = m->grads + l->b_off;
        const size_t count = (size_t)n * l->out_size;
        bnk_status st = BNK_OK;
        const bool skip = n == 0 && !(l->spec.kind == BNK__LAYER_BN && m->bn_comm);
        if (overwrite && l->w_count + l->b_count > 0 && (skip || l->spec.kind != BNK__LAYER_DENSE))
            memset(dw, 0, (l->w_count + l->b_count) * sizeof(float)); /* w and b are adjacent */
        if (skip) continue; /* an empty shard: only synchronised BN's collective operations */
        if (!in) in = m->acts;
        switch (l->spec.kind) {
        case BNK__LAYER_DENSE:
            st = bnk__dense_backward(n, (int64_t)l->in_size, l->out_c, din, dw, db, l->dout, in, w,
                                     !overwrite);
            break;
        case BNK__LAYER_CONV:
            st = bnk__conv_backward(l->conv, n, din, dw, db, l->dout, in, w);
            break;
        case BNK__LAYER_MAXPOOL:
            if (din) st = bnk__pool_backward(l->pool, n, din, l->dout);
            break;
        case BNK__LAYER_RELU:
            if (din && !l->relu_fused) bnk__relu_backward(count, din, l->dout, l->out);
            break;
        case BNK__LAYER_BN: {
            const bnk_bn_shape s = bn_shape(l, n);
            const bnk_bn_config c = bn_config(m, l);
            float *dx = din ? din : m->dinput;
            st = m->bn_comm ? bnk_bn_backward_sync(&c, &s, dx, dw, db, l->dout, in, l->out, w,
                                                   l->saved, m->bn_comm)
                            : bnk_bn_backward(&c, &s, dx, dw, db, l->dout, in, l->out, w, l->saved);
            break;
        }
        case BNK__LAYER_DROPOUT:
            if (din) {
                if (l->rate > 0.0)
                    bnk__dropout_backward(count, l->rate, din, l->dout, l->mask);
                else
                    memcpy(din, l->dout, count * sizeof(float));
            }
            break;
        case BNK__LAYER_FLATTEN: /* NCHW input: its dout is the previous layer's */
            if (din && in_block(m, i))
                bnk__block(n, l->in_c, l->in_h * l->in_w, in_block(m, i), din, l->dout);
            break;
        }
        if (st != BNK_OK) {
            /* the layers below this one were not reached: as after zero_grad, their gradients
             * must read 0 (the whole arena is zeroed; after a failure it is unspecified) */
            if (overwrite) memset(m->grads, 0, m->num_params * sizeof(float));
            return st;
        }
    }
    return BNK_OK;
}

void bnk_model_zero_grad(bnk_model *m) {
    m->zero_pending = true; /* done by the next backward, or by bnk_model_grads */
}

size_t bnk_model_num_params(const bnk_model *m) {
    return m->num_params;
}

float *bnk_model_params(bnk_model *m) {
    return m->params;
}

float *bnk_model_grads(bnk_model *m) {
    if (m->zero_pending) {
        memset(m->grads, 0, m->num_params * sizeof(float));
        m->zero_pending = false;
    }
    return m->grads;
}

const uint8_t *bnk_model_decay_mask(const bnk_model *m) {
    return m->decay;
}

bnk_status bnk_model_set_bn_config(bnk_model *m, const bnk_bn_config *cfg) {
    bnk_status st = bnk_bn_config_validate(cfg);
    if (st == BNK_OK) m->bn = *cfg;
    return st;
}

int64_t bnk_model_bn_step(const bnk_model *m) {
    return m->bn_step;
}

void bnk_model_set_bn_step(bnk_model *m, int64_t step) {
    m->bn_step = step;
}

void bnk_model_set_bn_comm(bnk_model *m, const bnk_bn_comm *comm) {
    if (!m) return;
    m->bn_comm = comm;
    if (!comm || !comm->workspace) return;
    int64_t widest = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].spec.kind == BNK__LAYER_BN && m->layers[i].out_c > widest)
            widest = m->layers[i].out_c;
    double *scratch;
    if (widest) (void)comm->workspace(comm->ctx, 4 * (size_t)widest + 1, &scratch);
}

int bnk_model_tensor_count(const bnk_model *m) {
    return m->ntensors;
}

bnk_status bnk_model_tensor(bnk_model *m, int i, bnk_tensor_info *info) {
    if (!m || !info) return bnk__fail(BNK_ERR_NULL, "model tensor: NULL argument");
    if (i < 0 || i >= m->ntensors)
        return bnk__fail(BNK_ERR_PARAM, "model tensor %d out of range [0, %d)", i, m->ntensors);
    *info = m->tensors[i];
    return BNK_OK;
}

const char *bnk_model_spec(const bnk_model *m) {
    return m->spec;
}

bnk_model_config bnk_model_get_config(const bnk_model *m) {
    bnk_model_config c = m->cfg;
    c.bn = m->bn;
    return c;
}

int bnk_model_layer_count(const bnk_model *m) {
    return m->nlayers;
}

bnk_status bnk_model_layer_describe(const bnk_model *m, int i, char *buf, size_t size) {
    if (!m || !buf) return bnk__fail(BNK_ERR_NULL, "model describe: NULL argument");
    if (i < 0 || i >= m->nlayers)
        return bnk__fail(BNK_ERR_PARAM, "layer %d out of range [0, %d)", i, m->nlayers);
    const bnk__layer *l = &m->layers[i];
    char layout[16] = "";
    if (l->block) snprintf(layout, sizeof layout, "  nChw%dc", l->block);
    snprintf(buf, size, "%-14s in %lldx%lldx%lld  out %lldx%lldx%lld  params %zu%s%s",
             l->spec.token, (long long)l->in_c, (long long)l->in_h, (long long)l->in_w,
             (long long)l->out_c, (long long)l->out_h, (long long)l->out_w, l->w_count + l->b_count,
             layout, l->relu_fused && l->spec.kind == BNK__LAYER_RELU ? "  (in bn)" : "");
    return BNK_OK;
}
