/* The layer record a bnk_model is built from, the spec parser that produces it, and the
 * per-layer operators implemented in src/nn (dense.c, act.c). Not installed. */
#ifndef BNKIT_NN_LAYER_H
#define BNKIT_NN_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/nn_internal.h"

typedef struct bnk__dense bnk__dense; /* dense.c */

typedef enum bnk__layer_kind {
    BNK__LAYER_DENSE,
    BNK__LAYER_CONV,
    BNK__LAYER_MAXPOOL,
    BNK__LAYER_RELU,
    BNK__LAYER_BN,
    BNK__LAYER_DROPOUT,
    BNK__LAYER_FLATTEN
} bnk__layer_kind;

/* One token of a spec string, parsed: "conv:32:3" -> kind CONV, args {32, 3}. */
typedef struct bnk__layer_spec {
    bnk__layer_kind kind;
    int nargs;
    double args[4];
    char token[32]; /* as written, for messages */
} bnk__layer_spec;

enum { BNK__MAX_LAYERS = 64 };

/* Parses a spec into specs[0..*count-1]. Errors name the token and its position. */
bnk_status bnk__spec_parse(const char *spec, bnk__layer_spec *specs, int *count);

typedef struct bnk__layer {
    bnk__layer_spec spec;
    int64_t in_c, in_h, in_w, out_c, out_h, out_w;
    size_t in_size, out_size; /* floats per sample */
    /* Parameters (dense, conv: weight then bias; bn: gamma then beta) as offsets into the
     * parameter and gradient arenas, and their element counts. */
    size_t w_off, w_count, b_off, b_count;
    bool relu_follows; /* initialisation: He for ReLU layers, Glorot otherwise */
    /* bn followed by relu: the ReLU runs inside BN (fuse_relu), and the relu layer's out and
     * dout alias the BN's (set on both layers) */
    bool relu_fused;
    int block;              /* layout of out and dout (nn_internal.h): 0 NCHW, 8 or 16 blocked */
    int64_t k, stride, pad; /* conv, maxpool */
    double rate;            /* dropout */
    /* [max_batch * out_size] activations and the gradient w.r.t. them; a flatten of NCHW input
     * and a fused relu alias their input's */
    float *out, *dout;
    uint8_t *mask; /* dropout: [max_batch * out_size] kept (1) or dropped (0)    */
    float *running_mean, *running_var; /* bn: [out_c] in the model's buffer arena */
    double *saved;                     /* bn: [BNK_BN_SAVED_FIELDS * out_c]        */
    bnk__dense *dense;
    bnk__conv *conv;
    bnk__pool *pool;
} bnk__layer;

/* ---- Operators ---------------------------------------------------------------------------- */

/* A dense layer's forward operator: oneDNN matmul primitives (bias fused) per batch size,
 * made on first use and cached like the convolutions' (4 sizes, least recently used replaced).
 * Sizes < 1: BNK_ERR_SIZE. */
bnk_status bnk__dense_create(bnk__dense **out, int64_t in, int64_t out_features);
void bnk__dense_destroy(bnk__dense *d); /* NULL is harmless */

/* y [n, out] = x [n, in] · w^T + b, w [out, in] (PyTorch layout). n = 0 does nothing. */
bnk_status bnk__dense_forward(bnk__dense *d, int64_t n, float *y, const float *x, const float *w,
                              const float *b);
/* dw [out, in] += dy^T · x, db [out] += column sums of dy, dx [n, in] = dy · w (dx may be NULL).
 * accumulate false: dw and db are written (=) instead, without being read (the model's first
 * backward after bnk_model_zero_grad, which then need not zero them). */
bnk_status bnk__dense_backward(int64_t n, int64_t in, int64_t out, float *dx, float *dw, float *db,
                               const float *dy, const float *x, const float *w, bool accumulate);

/* y [count] = max(x, 0); dx [count] = dy where y > 0, else 0. */
void bnk__relu_forward(size_t count, float *y, const float *x);
void bnk__relu_backward(size_t count, float *dx, const float *dy, const float *y);

/* Inverted dropout: mask[i] = keep with probability 1 - rate, y = x*mask/(1 - rate). */
void bnk__dropout_forward(size_t count, double rate, uint64_t *rng, uint8_t *mask, float *y,
                          const float *x);
void bnk__dropout_backward(size_t count, double rate, float *dx, const float *dy,
                           const uint8_t *mask);

/* Mean softmax cross-entropy over n rows of logits [n, classes] against labels [n]; writes
 * dlogits [n, classes] = (softmax - onehot)/n. Returns the loss; *correct = argmax hits. */
double bnk__softmax_xent(int64_t n, int64_t classes, float *dlogits, int64_t *correct,
                         const float *logits, const int32_t *labels);

#endif /* BNKIT_NN_LAYER_H */
