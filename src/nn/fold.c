/* bnk_model_fold_bn: an inference model with every BN folded into a dense/conv neighbour.
 *
 * In inference a BN layer is the per-channel affine map y = a*x + c with
 *     a = gamma / sqrt(running_var + eps),   c = beta - a*running_mean
 * (gamma taken as 1 without scale, beta as 0 without center: the kernels' convention). An
 * affine map next to a linear layer can be merged into it:
 *   backward (BN right after the layer, output channel o):   W'[o,:] = a[o]*W[o,:],
 *                                                            b'[o] = a[o]*b[o] + c[o]
 *   forward (BN right before a dense layer whose input j belongs to BN channel ch(j) = j / HW,
 *   HW = 1 after a dense layer, H*W of an NCHW activation flattened C-order):
 *                                                            W'[o,j] = W[o,j]*a[ch(j)],
 *                                                            b'[o] = b[o] + sum_j W[o,j]*c[ch(j)]
 *   forward into a conv (only without padding: padded zeros are not BN outputs):
 *                                                            W'[f,ch,:,:] = W[f,ch,:,:]*a[ch],
 *                                                            b'[f] = b[f] + sum W[f,ch,:,:]*c[ch]
 * Dropout is the identity in inference, so the fold looks through it (and forward through
 * flatten). A fused-ReLU BN folds backward only and leaves a `relu` in its place. BNs are
 * folded in spec order on double-precision copies, so several BNs around one layer compose. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "nn/layer.h"

typedef struct fold_layer {
    bnk__layer_spec spec;
    bool removed; /* a folded BN */
    bool to_relu; /* a fused-ReLU BN folded backward: a relu remains */
    /* dense/conv: weight (rows, cols) as in bnk_tensor_info, working copies in double */
    int64_t rows, cols, cin, k;
    double *w, *b;
    /* bn */
    bnk_tensor_info gamma, beta, mean, var;
} fold_layer;

static bnk_status get_tensor(bnk_model *m, int layer, const char *kind, const char *field,
                             bnk_tensor_info *out) {
    char name[sizeof out->name];
    snprintf(name, sizeof name, "%d.%s.%s", layer, kind, field);
    for (int i = 0; i < bnk_model_tensor_count(m); i++) {
        bnk_model_tensor(m, i, out);
        if (strcmp(out->name, name) == 0) return BNK_OK;
    }
    return bnk__fail(BNK_ERR_PARAM, "fold: the model has no tensor '%s'", name);
}

static bool is_linear(bnk__layer_kind k) {
    return k == BNK__LAYER_DENSE || k == BNK__LAYER_CONV;
}

/* Loads layer i's parameters into L (double copies for dense/conv). */
static bnk_status load_layer(bnk_model *m, int i, fold_layer *L) {
    bnk_tensor_info w, b;
    bnk_status st = BNK_OK;
    if (is_linear(L->spec.kind)) {
        const char *kind = L->spec.kind == BNK__LAYER_DENSE ? "dense" : "conv";
        if ((st = get_tensor(m, i, kind, "weight", &w)) != BNK_OK ||
            (st = get_tensor(m, i, kind, "bias", &b)) != BNK_OK)
            return st;
        L->rows = w.shape[0];
        L->cols = (int64_t)(w.count / (size_t)w.shape[0]);
        L->cin = w.ndim == 4 ? w.shape[1] : L->cols;
        L->k = w.ndim == 4 ? w.shape[2] : 1;
        L->w = malloc(w.count * sizeof(double));
        L->b = malloc(b.count * sizeof(double));
        if (!L->w || !L->b) return bnk__fail(BNK_ERR_NOMEM, "fold: cannot allocate a layer copy");
        for (size_t j = 0; j < w.count; j++) L->w[j] = w.data[j];
        for (size_t j = 0; j < b.count; j++) L->b[j] = b.data[j];
    } else if (L->spec.kind == BNK__LAYER_BN) {
        if ((st = get_tensor(m, i, "bn", "gamma", &L->gamma)) == BNK_OK &&
            (st = get_tensor(m, i, "bn", "beta", &L->beta)) == BNK_OK &&
            (st = get_tensor(m, i, "bn", "running_mean", &L->mean)) == BNK_OK)
            st = get_tensor(m, i, "bn", "running_var", &L->var);
    }
    return st;
}

/* Folds BN layer i (channels C, scale a, shift c) into a neighbour; *into and *forward say
 * where it went. */
static bnk_status fold_one(fold_layer *L, int n, int i, const bnk_bn_config *bn, const double *a,
                           const double *c, int64_t C, int *into, bool *forward) {
    int j = i - 1;
    while (j >= 0 && (L[j].spec.kind == BNK__LAYER_DROPOUT || L[j].removed)) j--;
    if (j >= 0 && is_linear(L[j].spec.kind) && L[j].rows == C) {
        for (int64_t o = 0; o < C; o++) {
            for (int64_t q = 0; q < L[j].cols; q++) L[j].w[o * L[j].cols + q] *= a[o];
            L[j].b[o] = a[o] * L[j].b[o] + c[o];
        }
        L[i].removed = !bn->fuse_relu;
        L[i].to_relu = bn->fuse_relu;
        *into = j;
        *forward = false;
        return BNK_OK;
    }
    if (bn->fuse_relu)
        return bnk__fail(BNK_ERR_UNSUPPORTED,
                         "fold: layer %d '%s' (tensors %d.bn.*) cannot be folded: a BN with a "
                         "fused ReLU folds only into a dense/conv layer directly before it",
                         i + 1, L[i].spec.token, i);
    int k = i + 1;
    bool flattened = false;
    while (k < n && (L[k].spec.kind == BNK__LAYER_DROPOUT || L[k].spec.kind == BNK__LAYER_FLATTEN))
        flattened |= L[k++].spec.kind == BNK__LAYER_FLATTEN;
    fold_layer *T = k < n ? &L[k] : NULL;
    const int64_t pad =
        T && T->spec.kind == BNK__LAYER_CONV
            ? (T->spec.nargs > 3 ? (int64_t)T->spec.args[3] : (int64_t)T->spec.args[1] / 2)
            : -1;
    if (T && T->spec.kind == BNK__LAYER_DENSE && T->cols % C == 0) {
        const int64_t hw = T->cols / C;
        for (int64_t o = 0; o < T->rows; o++) {
            double *w = T->w + o * T->cols, s = 0.0;
            for (int64_t q = 0; q < T->cols; q++) {
                s += w[q] * c[q / hw];
                w[q] *= a[q / hw];
            }
            T->b[o] += s;
        }
    } else if (T && T->spec.kind == BNK__LAYER_CONV && !flattened && pad == 0 && T->cin == C) {
        const int64_t kk = T->k * T->k;
        for (int64_t f = 0; f < T->rows; f++) {
            double s = 0.0;
            for (int64_t ch = 0; ch < C; ch++) {
                double *w = T->w + (f * C + ch) * kk;
                for (int64_t q = 0; q < kk; q++) {
                    s += w[q] * c[ch];
                    w[q] *= a[ch];
                }
            }
            T->b[f] += s;
        }
    } else {
        return bnk__fail(BNK_ERR_UNSUPPORTED,
                         "fold: layer %d '%s' (tensors %d.bn.*) cannot be folded: no dense/conv "
                         "layer directly before it, and %s%s%s is not a dense layer or a conv "
                         "with padding 0",
                         i + 1, L[i].spec.token, i, T ? "the next layer '" : "nothing follows",
                         T ? T->spec.token : "", T ? "'" : "");
    }
    L[i].removed = true;
    *into = k;
    *forward = true;
    return BNK_OK;
}

static void append(char *buf, size_t size, const char *text) {
    if (!buf || !size) return;
    size_t n = strlen(buf);
    if (n + 1 < size) snprintf(buf + n, size - n, "%s", text);
}

/* The model of the kept layers, with the folded parameters. */
static bnk_status build(bnk_model **out, bnk_model *model, fold_layer *L, int n) {
    char spec[BNK__MAX_LAYERS * 33];
    spec[0] = '\0';
    int newidx[BNK__MAX_LAYERS], kept = 0;
    for (int i = 0; i < n; i++) {
        if (L[i].removed) continue;
        newidx[i] = kept++;
        append(spec, sizeof spec, kept > 1 ? "," : "");
        append(spec, sizeof spec, L[i].to_relu ? "relu" : L[i].spec.token);
    }
    bnk_model_config mc = bnk_model_get_config(model);
    mc.spec = spec;
    bnk_status st = bnk_model_create(out, &mc);
    for (int i = 0; st == BNK_OK && i < n; i++) {
        if (L[i].removed || !is_linear(L[i].spec.kind)) continue;
        const char *kind = L[i].spec.kind == BNK__LAYER_DENSE ? "dense" : "conv";
        bnk_tensor_info w, b;
        if ((st = get_tensor(*out, newidx[i], kind, "weight", &w)) != BNK_OK ||
            (st = get_tensor(*out, newidx[i], kind, "bias", &b)) != BNK_OK)
            break;
        for (size_t j = 0; j < w.count; j++) w.data[j] = (float)L[i].w[j];
        for (size_t j = 0; j < b.count; j++) b.data[j] = (float)L[i].b[j];
    }
    if (st == BNK_OK) bnk_model_set_bn_step(*out, bnk_model_bn_step(model));
    return st;
}

bnk_status bnk_model_fold_bn(bnk_model **out, bnk_model *model, char *summary,
                             size_t summary_size) {
    if (!out || !model) return bnk__fail(BNK_ERR_NULL, "fold: out and model required");
    *out = NULL;
    if (summary && summary_size) summary[0] = '\0';
    const bnk_model_config mc = bnk_model_get_config(model);
    bnk__layer_spec specs[BNK__MAX_LAYERS];
    int n = 0;
    bnk_status st = bnk__spec_parse(mc.spec, specs, &n);
    if (st != BNK_OK) return st;
    fold_layer *L = calloc((size_t)n, sizeof *L);
    if (!L) return bnk__fail(BNK_ERR_NOMEM, "fold: cannot allocate the layer table");
    for (int i = 0; st == BNK_OK && i < n; i++) {
        L[i].spec = specs[i];
        st = load_layer(model, i, &L[i]);
    }
    for (int i = 0; st == BNK_OK && i < n; i++) {
        if (L[i].spec.kind != BNK__LAYER_BN) continue;
        const int64_t C = (int64_t)L[i].gamma.count;
        double *a = malloc((size_t)C * sizeof(double)), *c = malloc((size_t)C * sizeof(double));
        if (!a || !c) st = bnk__fail(BNK_ERR_NOMEM, "fold: cannot allocate BN coefficients");
        for (int64_t ch = 0; st == BNK_OK && ch < C; ch++) {
            const double g = mc.bn.scale ? (double)L[i].gamma.data[ch] : 1.0;
            const double beta = mc.bn.center ? (double)L[i].beta.data[ch] : 0.0;
            a[ch] = g / sqrt((double)L[i].var.data[ch] + mc.bn.eps);
            c[ch] = beta - a[ch] * (double)L[i].mean.data[ch];
        }
        int into = -1;
        bool forward = false;
        if (st == BNK_OK) st = fold_one(L, n, i, &mc.bn, a, c, C, &into, &forward);
        free(a);
        free(c);
        if (st == BNK_OK) {
            char line[96];
            snprintf(line, sizeof line, "%s%d.bn -> %d.%s (%s%s)",
                     summary && summary[0] ? "; " : "", i, into,
                     L[into].spec.kind == BNK__LAYER_DENSE ? "dense" : "conv",
                     forward ? "forward" : "backward", L[i].to_relu ? ", relu kept" : "");
            append(summary, summary_size, line);
        }
    }
    if (st == BNK_OK) st = build(out, model, L, n);
    for (int i = 0; i < n; i++) {
        free(L[i].w);
        free(L[i].b);
    }
    free(L);
    if (st != BNK_OK) {
        bnk_model_destroy(*out);
        *out = NULL;
    }
    return st;
}
