/* Internals of the nn part: the layer record the model is built from, and the oneDNN-backed
 * convolution and pooling operators. Not installed.
 *
 * Conventions (as llm.c): every operator is a forward/backward pair of plain functions with the
 * shape of each buffer in a comment; forward writes its output; backward ACCUMULATES into
 * parameter gradients (+=) and WRITES the input gradient dx (skipped when dx is NULL, as for the
 * first layer). Activations are sample-major: NCHW floats, or inside a run of convolution-stage
 * layers oneDNN's blocked nChw16c / nChw8c (see "Activation layouts" below). */
#ifndef BNKIT_NN_INTERNAL_H
#define BNKIT_NN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bnkit/nn.h"

/* ---- Convolution (conv.c, oneDNN primitives) ---------------------------------------------- */

/* ---- Activation layouts ------------------------------------------------------------------- */

/* The layout of a 4-D activation tensor [n, c, h, w]: block 0 is NCHW; block 8 or 16 is oneDNN's
 * nChw8c / nChw16c, x[((n*(C/B) + c/B)*H*W + h*W + w)*B + c%B] (BN's BNK_LAYOUT_NCHW8C /
 * NCHW16C), which needs C to be a multiple of B. Blocked activations pass between convolution,
 * BN, ReLU, dropout and pooling without the reorders that NCHW would cost around every
 * convolution (docs/training.md, "Providers"). */

/* dst [n, c, hw] (NCHW) = src in the blocked layout of block b; and back. */
void bnk__unblock(int64_t n, int64_t c, int64_t hw, int b, float *dst, const float *src);
void bnk__block(int64_t n, int64_t c, int64_t hw, int b, float *dst, const float *src);

/* ---- Convolution (conv.c, oneDNN primitives) ---------------------------------------------- */

typedef struct bnk__conv bnk__conv;

typedef struct bnk__conv_shape {
    int64_t in_c, in_h, in_w; /* per-sample input  (C, H, W)  */
    int64_t out_c, k, stride, pad;
    int64_t out_h, out_w;    /* (in + 2*pad - k)/stride + 1 */
    int in_block, out_block; /* layouts of x/dx and y/dy: 0 (NCHW), 8 or 16 (see above) */
} bnk__conv_shape;

/* Creates the operator; oneDNN primitives are made on first use for each batch size n and kept
 * (4 sizes, least recently used replaced: the training batch and the last partial batch).
 * Sizes < 1: BNK_ERR_SIZE; stride < 1, pad < 0, kernel larger than the padded input:
 * BNK_ERR_PARAM; out_h/out_w not the formula's: BNK_ERR_SHAPE; overflow: BNK_ERR_OVERFLOW.
 * A block other than 0, 8, 16, or one that does not divide its channel count: BNK_ERR_PARAM.
 * BNK_CONV_FORMAT=plain|any picks oneDNN's internal layouts (conv.c; default any). */
bnk_status bnk__conv_create(bnk__conv **out, const bnk__conv_shape *shape);

/* The block of the output layout oneDNN's forward primitive picks for this shape and n samples
 * when left free (16 or 8 when it is nChw16c / nChw8c and divides out_c), 0 otherwise and under
 * BNK_CONV_FORMAT=plain: what a caller should keep y in to avoid a reorder. The shape's blocks
 * are ignored. */
bnk_status bnk__conv_preferred_block(const bnk__conv_shape *shape, int64_t n, int *block);
void bnk__conv_destroy(bnk__conv *cv);

/* y [n, out_c, out_h, out_w] = x [n, in_c, in_h, in_w] (*) w [out_c, in_c, k, k] + b [out_c] */
bnk_status bnk__conv_forward(bnk__conv *cv, int64_t n, float *y, const float *x, const float *w,
                             const float *b);

/* dw [out_c, in_c, k, k] += ..., db [out_c] += ..., dx [n, in_c, in_h, in_w] = ... (dx may be
 * NULL: not computed). x and w are the forward's inputs, dy [n, out_c, out_h, out_w]. */
bnk_status bnk__conv_backward(bnk__conv *cv, int64_t n, float *dx, float *dw, float *db,
                              const float *dy, const float *x, const float *w);

/* ---- Max pooling (pool.c, oneDNN primitives) ---------------------------------------------- */

typedef struct bnk__pool bnk__pool;

typedef struct bnk__pool_shape {
    int64_t c, in_h, in_w;
    int64_t k, stride;
    int64_t out_h, out_w; /* (in - k)/stride + 1, no padding */
    int64_t max_batch;    /* the workspace (argmax) is sized for this many samples */
    int block;            /* layout of x, y, dx, dy: 0 (NCHW), 8 or 16 (see above) */
} bnk__pool_shape;

/* Sizes < 1: BNK_ERR_SIZE; stride < 1, a window larger than the input, or a block other than
 * 0, 8, 16 or not dividing c: BNK_ERR_PARAM; out_h/out_w not the formula's: BNK_ERR_SHAPE. */
bnk_status bnk__pool_create(bnk__pool **out, const bnk__pool_shape *shape);
void bnk__pool_destroy(bnk__pool *pl);

/* y [n, c, out_h, out_w] = max over each k x k window of x [n, c, in_h, in_w]. training: keep
 * what backward needs (the argmax workspace) for this n. n in [1, max_batch], else
 * BNK_ERR_SIZE (forward and backward). */
bnk_status bnk__pool_forward(bnk__pool *pl, int64_t n, float *y, const float *x, bool training);

/* dx [n, c, in_h, in_w] = dy routed to each window's max (written, not accumulated), from the
 * last training forward, which must have had the same n (else BNK_ERR_SHAPE). */
bnk_status bnk__pool_backward(bnk__pool *pl, int64_t n, float *dx, const float *dy);

/* ---- The shared oneDNN engine and stream (dnnl.c) ------------------------------------------ */

/* Process-wide CPU engine and stream, created on first use (thread-safe). Returns NULL and sets
 * the message when oneDNN cannot create them. Opaque here to keep dnnl.h out of this header;
 * the rest of what the oneDNN operators share needs dnnl.h's types and is in dnnl_util.h. */
void *bnk__dnnl_engine(void);
void *bnk__dnnl_stream(void);

/* Records "oneDNN: <call> failed: <dnnl status>" and returns BNK_ERR_NOMEM for
 * dnnl_out_of_memory, BNK_ERR_UNSUPPORTED for any other failure. dnnl_status is a
 * dnnl_status_t (an int here, for the same reason). */
bnk_status bnk__dnnl_fail(int dnnl_status, const char *call);

#endif /* BNKIT_NN_INTERNAL_H */
