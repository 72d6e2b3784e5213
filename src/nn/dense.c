/* Fully connected layer. Forward: a oneDNN matmul primitive per batch size with the bias fused
 * (made on first use and cached, like the convolutions); backward: oneDNN's row-major sgemm.
 *
 * Why (user CPU time per call, 1 thread, this 2-core Xeon under load, best of 5 interleaved
 * runs; docs/PERFORMANCE.md "Trainer"): the 100x784 -> 128 forward took 156 us as a matmul
 * with the bias fused (brgemm:avx512_core) against 174 us for dnnl_sgemm after copying the bias
 * into y, and 100x128 -> 10 took 4.6 us against 8.8; the weight gradient (128x784 over K = 100)
 * and the small input gradient took the same time either way (149 vs 149 us, 3.0 vs 3.2 us),
 * so they stay on sgemm, which also gives the accumulating form (beta = 1) for free. sgemm was
 * measured faster than OpenBLAS for these shapes (issue 3). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/internal.h"
#include "nn/dnnl_util.h"
#include "nn/layer.h"

/* The forward of one batch size; the memories have no storage: each call binds them. */
typedef struct dense_slot {
    bnk__dnnl_prim fwd;
    dnnl_memory_t x, w, b, y;
} dense_slot;

struct bnk__dense {
    int64_t in, out;
    dnnl_primitive_attr_t attr; /* scratchpad mode user */
    bnk__dnnl_cache cache;      /* the batch size of each slot, LRU */
    dense_slot slots[BNK__DNNL_SLOTS];
};

static void slot_clear(void *op, int i) {
    dense_slot *s = &((bnk__dense *)op)->slots[i];
    bnk__dnnl_prim_clear(&s->fwd);
    bnk__dnnl_memory_clear(&s->x);
    bnk__dnnl_memory_clear(&s->w);
    bnk__dnnl_memory_clear(&s->b);
    bnk__dnnl_memory_clear(&s->y);
}

/* rows x cols f32, row-major, or its transpose viewed in place (column-major) */
static bnk_status md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, bool transposed) {
    const dnnl_dims_t dims = {rows, cols};
    const dnnl_dims_t strides = {transposed ? 1 : cols, transposed ? rows : 1};
    return bnk__dnnl_chk(dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides),
                         "dnnl_memory_desc_init_by_strides");
}

/* y [n, out] = x [n, in] · W^T + b: matmul of x by weights (in, out) that are w [out, in]
 * read in place, bias (1, out) broadcast over the rows. */
static bnk_status slot_init(void *op, int i, int64_t n) {
    bnk__dense *d = op;
    dense_slot *s = &d->slots[i];
    dnnl_engine_t eng = bnk__dnnl_engine(); /* exists: create made it */
    dnnl_memory_desc_t x, w, b, y;
    bnk_status st;
    if ((st = md_2d(&x, n, d->in, false)) || (st = md_2d(&w, d->in, d->out, true)) ||
        (st = md_2d(&b, 1, d->out, false)) || (st = md_2d(&y, n, d->out, false)))
        return st;
    dnnl_matmul_desc_t md;
    st = bnk__dnnl_chk(dnnl_matmul_desc_init(&md, &x, &w, &b, &y), "dnnl_matmul_desc_init");
    if (st != BNK_OK) return st;
    dnnl_primitive_desc_t pd;
    st = bnk__dnnl_chk(dnnl_primitive_desc_create(&pd, &md, d->attr, eng, NULL),
                       "dnnl_primitive_desc_create(matmul)");
    if (st != BNK_OK) return st;
    st = bnk__dnnl_prim_init(&s->fwd, pd, eng, "dnnl_primitive_create(matmul)");
    dnnl_primitive_desc_destroy(pd);
    if (st || (st = bnk__dnnl_memory_create(&s->x, &x, eng, DNNL_MEMORY_NONE)) ||
        (st = bnk__dnnl_memory_create(&s->w, &w, eng, DNNL_MEMORY_NONE)) ||
        (st = bnk__dnnl_memory_create(&s->b, &b, eng, DNNL_MEMORY_NONE)) ||
        (st = bnk__dnnl_memory_create(&s->y, &y, eng, DNNL_MEMORY_NONE)))
        return st;
    return BNK_OK;
}

bnk_status bnk__dense_create(bnk__dense **out, int64_t in, int64_t out_features) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "dense output pointer is NULL");
    *out = NULL;
    if (in < 1 || out_features < 1)
        return bnk__fail(BNK_ERR_SIZE, "dense layer %lld -> %lld: sizes must be >= 1",
                         (long long)in, (long long)out_features);
    if (!bnk__dnnl_engine() || !bnk__dnnl_stream()) return BNK_ERR_UNSUPPORTED; /* message set */
    bnk__dense *d = calloc(1, sizeof *d);
    if (!d) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a dense operator");
    d->in = in;
    d->out = out_features;
    bnk_status st = bnk__dnnl_attr_create(&d->attr);
    if (st != BNK_OK) {
        bnk__dense_destroy(d);
        return st;
    }
    *out = d;
    return BNK_OK;
}

void bnk__dense_destroy(bnk__dense *d) {
    if (!d) return;
    for (int i = 0; i < BNK__DNNL_SLOTS; i++) slot_clear(d, i);
    if (d->attr) dnnl_primitive_attr_destroy(d->attr);
    free(d);
}

static bnk_status sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc) {
    dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (st != dnnl_success)
        return bnk__fail(BNK_ERR_UNSUPPORTED, "dnnl_sgemm(%c%c, %lld x %lld x %lld) failed: %d", ta,
                         tb, (long long)m, (long long)n, (long long)k, (int)st);
    return BNK_OK;
}

/* db [out] (+)= column sums of dy [n, out], row by row (the order of the former += loop over a
 * zeroed db, so both modes give the same bits). */
BNK__MULTIVERSION
static void bias_grad(int64_t n, int64_t out, float *restrict db, const float *restrict dy,
                      bool accumulate) {
    int64_t i = 0;
    if (!accumulate) {
        if (n == 0) {
            memset(db, 0, (size_t)out * sizeof(float));
            return;
        }
        memcpy(db, dy, (size_t)out * sizeof(float));
        i = 1;
    }
    for (; i < n; i++) {
        const float *row = dy + i * out;
#pragma omp simd
        for (int64_t o = 0; o < out; o++) db[o] += row[o];
    }
}

bnk_status bnk__dense_forward(bnk__dense *d, int64_t n, float *y, const float *x, const float *w,
                              const float *b) {
    if (!d) return bnk__fail(BNK_ERR_NULL, "dense operator is NULL");
    if (n < 0 || n > bnk__dnnl_max_floats() / (d->in > d->out ? d->in : d->out))
        return bnk__fail(BNK_ERR_SIZE, "dense forward: batch of %lld samples", (long long)n);
    if (n == 0) return BNK_OK;
    if (!y || !x || !w || !b) return bnk__fail(BNK_ERR_NULL, "dense forward: NULL buffer");
    int i;
    bnk_status st = bnk__dnnl_cache_get(&d->cache, n, d, slot_init, slot_clear, &i);
    if (st != BNK_OK) return st;
    const dense_slot *s = &d->slots[i];
    dnnl_stream_t stream = bnk__dnnl_stream();
    if ((st = bnk__dnnl_bind(s->x, x)) || (st = bnk__dnnl_bind(s->w, w)) ||
        (st = bnk__dnnl_bind(s->b, b)) || (st = bnk__dnnl_bind(s->y, y)))
        return st;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, s->x},
                               {DNNL_ARG_WEIGHTS, s->w},
                               {DNNL_ARG_BIAS, s->b},
                               {DNNL_ARG_DST, s->y}};
    if ((st = bnk__dnnl_prim_exec(&s->fwd, stream, 4, args, "dnnl_primitive_execute(matmul)")))
        return st;
    return bnk__dnnl_wait(stream);
}

bnk_status bnk__dense_backward(int64_t n, int64_t in, int64_t out, float *dx, float *dw, float *db,
                               const float *dy, const float *x, const float *w, bool accumulate) {
    /* accumulate: dw += dy^T x (beta 1); else dw = dy^T x (beta 0: dw is not read, so the
     * model need not zero it first) */
    bnk_status st =
        sgemm('T', 'N', out, in, n, 1.0f, dy, out, x, in, accumulate ? 1.0f : 0.0f, dw, in);
    if (st != BNK_OK) return st;
    bias_grad(n, out, db, dy, accumulate);
    return dx ? sgemm('N', 'N', n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in) : BNK_OK;
}
