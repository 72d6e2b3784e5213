/* bnkit/nn.h — small, fast feed-forward networks with BN: a model built from a spec string,
 * softmax cross-entropy, Adam and SGD.
 *
 *     bnk_model_config mc = bnk_model_config_default();
 *     mc.spec = "dense:128,relu,bn,dense:10";          // the source document's model
 *     mc.in_c = 1; mc.in_h = 28; mc.in_w = 28; mc.max_batch = 100; mc.seed = 0;
 *     bnk_model *model;
 *     if (bnk_model_create(&model, &mc) != BNK_OK) { fprintf(stderr, "%s\n", bnk_errmsg()); }
 *     bnk_optim_config oc = bnk_optim_config_default(BNK_OPTIM_ADAM);   // lr 1e-3
 *     bnk_optim *opt;
 *     bnk_optim_create(&opt, &oc, bnk_model_num_params(model));
 *     for each batch (x [n*784], labels [n]):
 *         double loss; int64_t correct;
 *         bnk_model_zero_grad(model);
 *         bnk_model_forward(model, x, n, true);
 *         bnk_model_loss(model, labels, n, &loss, &correct);     // mean cross-entropy
 *         bnk_model_backward(model, n);
 *         bnk_optim_step(opt, bnk_model_params(model), bnk_model_grads(model),
 *                        bnk_model_decay_mask(model), oc.lr);
 *
 * Spec grammar: comma-separated layers, each `name[:arg[:arg...]]`:
 *   dense:UNITS            fully connected (flattens its input); weight (UNITS, IN), bias (UNITS)
 *   conv:FILTERS:K[:STRIDE[:PAD]]  2-D convolution, K x K kernel, stride 1, padding K/2
 *                          ("same" for odd K) by default; weight (F, C, K, K), bias (F)
 *   maxpool:K[:STRIDE]     max pooling, stride K by default
 *   relu                   max(x, 0)
 *   bn                     batch normalization (every BN mode of bnkit/bn.h): NC after dense,
 *                          NCHW after conv; gamma, beta (C) and running mean/var buffers
 *   dropout[:RATE]         inverted dropout in training (RATE default: the config's dropout)
 *   flatten                (C, H, W) -> (C*H*W, 1, 1)
 * Unknown names, bad arguments and impossible shapes (a pool larger than its input, say) fail
 * with BNK_ERR_PARAM and a message naming the token and its position.
 *
 * Memory: parameters, gradients, and optimiser state each live in one arena; activations and
 * their gradients are allocated once for max_batch at create time. forward/backward do not
 * allocate (oneDNN primitives for a new batch size are created on first use).
 * Layouts: the input and the logits are sample-major, each sample (C, H, W) in C order (NCHW),
 * and tensors (weights, checkpoints) use PyTorch's layouts. Inside, a run of convolution-stage
 * layers keeps its activations in the blocked layout oneDNN's convolutions prefer (nChw16c on
 * AVX-512), which BN, ReLU, dropout and pooling then use too, and a `bn` directly followed by
 * `relu` runs the ReLU inside the BN kernel: neither changes any result beyond float rounding
 * (docs/training.md, "Providers"). */
#ifndef BNKIT_NN_H
#define BNKIT_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bnkit/bn.h"
#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Model -------------------------------------------------------------------------------- */

typedef struct bnk_model_config {
    const char *spec;         /* layer spec, see above                                   */
    int64_t in_c, in_h, in_w; /* per-sample input shape, e.g. 1, 28, 28                   */
    int64_t max_batch;        /* largest batch passed to forward                          */
    bnk_bn_config bn;         /* configuration of every BN layer                          */
    double dropout;           /* default rate of `dropout` tokens; 0.5                    */
    uint64_t seed;            /* initialisation and dropout masks                         */
} bnk_model_config;

/* spec NULL, input 1x28x28, max_batch 100, BN defaults, dropout 0.5, seed 0. */
bnk_model_config bnk_model_config_default(void);

typedef struct bnk_model bnk_model;

/* Builds the model and initialises its parameters: He-normal weights for layers followed by a
 * ReLU (directly or through bn/dropout), Glorot-uniform otherwise, zero biases, BN gamma 1 and
 * beta 0, running mean 0 and variance 1. *out is NULL on failure. */
bnk_status bnk_model_create(bnk_model **out, const bnk_model_config *cfg);
void bnk_model_destroy(bnk_model *model); /* NULL is harmless */

/* Forward pass over n <= max_batch samples x [n * in_c*in_h*in_w]. training: batch statistics
 * in BN (running statistics updated, BN step += 1) and dropout active. */
bnk_status bnk_model_forward(bnk_model *model, const float *x, int64_t n, bool training);

/* Forward pass over one shard of a global batch that several processes share (data-parallel
 * training): x [n * in_c*in_h*in_w] holds the samples at positions [offset, offset + n) of a
 * global batch of global_n. Differences from bnk_model_forward, which is
 * bnk_model_forward_shard(model, x, n, 0, n, training):
 *   - n may be 0 (x may then be NULL): an empty shard still takes part in synchronised BN
 *     (bnk_model_set_bn_comm), whose every member must call the same layers in order, and its
 *     BN step counter still advances;
 *   - dropout draws the masks that a single-process forward of the whole global batch would
 *     give these samples, so training does not depend on how the batch is split;
 *   - the following bnk_model_loss returns this shard's share of the global batch mean (the sum
 *     of its samples' losses / global_n), and its gradients are scaled alike, so that summing
 *     the parameter gradients over all shards gives the gradient of the global mean.
 * Errors as bnk_model_forward, and BNK_ERR_SIZE when [offset, offset + n) is not inside
 * [0, global_n). */
bnk_status bnk_model_forward_shard(bnk_model *model, const float *x, int64_t n, int64_t offset,
                                   int64_t global_n, bool training);

/* The last forward's output: logits [n * num_outputs]. */
const float *bnk_model_logits(const bnk_model *model);
int64_t bnk_model_num_outputs(const bnk_model *model);

/* Softmax cross-entropy of the last forward's logits against labels [n] (each in
 * [0, num_outputs)): *loss = mean over the batch (computed stably, log-sum-exp), *correct =
 * number of argmax hits (either may be NULL). Also stores d(loss)/d(logits) for backward. */
bnk_status bnk_model_loss(bnk_model *model, const int32_t *labels, int64_t n, double *loss,
                          int64_t *correct);

/* Backward pass of the last training forward and loss: ACCUMULATES parameter gradients. */
bnk_status bnk_model_backward(bnk_model *model, int64_t n);
/* Sets every parameter gradient to 0. The zeroing is deferred: the next backward writes the
 * gradients instead of adding to them (no pass over the arena), and bnk_model_grads zeroes the
 * arena if it is asked for first; so read the gradients through bnk_model_grads, not through a
 * pointer kept from before the zero_grad. */
void bnk_model_zero_grad(bnk_model *model);

/* The arenas: num_params floats each. decay_mask[i] is 1 for weights that take L2 weight decay
 * (dense and conv weights), 0 for biases and BN parameters. */
size_t bnk_model_num_params(const bnk_model *model);
float *bnk_model_params(bnk_model *model);
float *bnk_model_grads(bnk_model *model);
const uint8_t *bnk_model_decay_mask(const bnk_model *model);

/* Replaces the configuration of every BN layer (e.g. a Batch Renorm rmax/dmax schedule). */
bnk_status bnk_model_set_bn_config(bnk_model *model, const bnk_bn_config *cfg);
/* Number of BN training steps so far (the BN layers' step counter t). */
int64_t bnk_model_bn_step(const bnk_model *model);
void bnk_model_set_bn_step(bnk_model *model, int64_t step);
/* Makes every BN layer's training forward and backward synchronised over comm
 * (bnk_bn_forward_train_sync / bnk_bn_backward_sync: batch statistics of the union of the
 * group's shards); NULL (the default) returns to local BN. The model keeps the pointer; comm
 * must outlive its use. Every member of the group must then run the same training forwards and
 * backwards in the same order (bnk_model_forward_shard allows empty shards for that). Inference
 * never communicates. When comm lends a workspace, the model asks it once here for the widest BN
 * layer's needs (4*C + 1 doubles, a local call), so that with bnkit/bn_mpi.h's comm even the
 * first training step allocates nothing; a failure there is left to the first step to report.
 * NULL model is harmless. */
void bnk_model_set_bn_comm(bnk_model *model, const bnk_bn_comm *comm);

/* Named tensors, for checkpoints and for loading weights from elsewhere. Parameters are named
 * "<layer index>.<kind>.<weight|bias|gamma|beta>", BN buffers "<i>.bn.running_mean|running_var";
 * shapes follow PyTorch (dense weight (out, in), conv weight (F, C, K, K)). */
typedef struct bnk_tensor_info {
    char name[48];
    int ndim;
    int64_t shape[4];
    size_t count;
    float *data;    /* points into the model; writable */
    bool trainable; /* true: in the parameter arena; false: a buffer (BN running statistics) */
} bnk_tensor_info;

int bnk_model_tensor_count(const bnk_model *model);
bnk_status bnk_model_tensor(bnk_model *model, int i, bnk_tensor_info *info);

/* A one-line-per-layer description ("dense:128  in 784  out 128  params 100480"), followed by
 * the activation layout when it is blocked ("  nChw16c") and "  (in bn)" for a relu fused into
 * the BN before it. */
int bnk_model_layer_count(const bnk_model *model);
bnk_status bnk_model_layer_describe(const bnk_model *model, int i, char *buf, size_t size);

/* The spec string the model was built from (the model keeps its own copy). */
const char *bnk_model_spec(const bnk_model *model);
/* The model's configuration: spec as bnk_model_spec(), bn the current BN configuration (after
 * any bnk_model_set_bn_config). Checkpoints rebuild a model from it. */
bnk_model_config bnk_model_get_config(const bnk_model *model);

/* An inference-only copy of model with every BN layer folded into a neighbouring dense/conv
 * layer, using the running statistics (a = gamma/sqrt(running_var + eps), c = beta - a*mean):
 *   - backward, into the dense/conv layer directly before the BN (dropout between them is
 *     allowed: it is the identity in inference): W' = a*W per output channel, b' = a*b + c.
 *     A BN with fuse_relu becomes a `relu` layer.
 *   - otherwise forward, into the dense layer directly after it (through dropout and flatten)
 *     or a conv with padding 0 directly after it: W' = W*a per input channel,
 *     b' = b + W*c. This folds the source document's `dense,relu,bn,dense`.
 * The new model's spec drops the folded `bn` tokens; its logits equal the original's inference
 * logits up to float rounding. *out is NULL on failure; a BN that can be folded neither way (a
 * BN followed by relu/maxpool or a padded conv, or a fused-ReLU BN not directly after
 * dense/conv) is BNK_ERR_UNSUPPORTED naming the layer. summary (may be NULL) receives one
 * line such as "3.bn -> 4.dense (forward)" per folded BN, separated by "; ". */
bnk_status bnk_model_fold_bn(bnk_model **out, bnk_model *model, char *summary, size_t summary_size);

/* ---- Optimisers --------------------------------------------------------------------------- */

typedef enum bnk_optim_kind { BNK_OPTIM_ADAM, BNK_OPTIM_SGD } bnk_optim_kind;

typedef struct bnk_optim_config {
    bnk_optim_kind kind;
    double lr;           /* 1e-3 for Adam (the document), 1e-2 for SGD        */
    double beta1, beta2; /* Adam: 0.9, 0.999                                   */
    double eps;          /* Adam: 1e-8 (added to sqrt(v_hat), as PyTorch)      */
    double momentum;     /* SGD: 0.9 (PyTorch-style: v = mu*v + g; p -= lr*v)  */
    double weight_decay; /* L2: g += wd * p on masked parameters; 0            */
} bnk_optim_config;

bnk_optim_config bnk_optim_config_default(bnk_optim_kind kind);
bnk_status bnk_optim_config_validate(const bnk_optim_config *cfg);

typedef struct bnk_optim bnk_optim;

bnk_status bnk_optim_create(bnk_optim **out, const bnk_optim_config *cfg, size_t num_params);
void bnk_optim_destroy(bnk_optim *opt); /* NULL is harmless */

/* One update of params [num_params] from grads with learning rate lr (a schedule may vary it;
 * the config's lr is the base). decay_mask may be NULL (decay everything). */
void bnk_optim_step(bnk_optim *opt, float *params, const float *grads, const uint8_t *decay_mask,
                    double lr);
/* Number of steps taken (Adam's bias-correction t). */
int64_t bnk_optim_steps(const bnk_optim *opt);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_NN_H */
