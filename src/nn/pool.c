/* Max pooling on oneDNN primitives (pooling_max, no padding), f32 in and out, NCHW or blocked
 * (nChw16c / nChw8c: the shape's block, nn_internal.h); oneDNN pools either directly, the blocked
 * layouts vectorised across channels (several times faster than NCHW on AVX-512).
 *
 * Training forward records the argmax of every window in oneDNN's workspace; backward routes dy
 * through it. The workspace is one buffer per operator, sized at create for max_batch samples
 * (its size is linear in n), shared by every batch size: backward must follow the training
 * forward with the same n, which is checked.
 *
 * Cache: as conv.c, BNK__DNNL_SLOTS entries keyed by n (dnnl_util.h), made on first use, least
 * recently used replaced; each entry holds the training forward (whose descriptor is the backward's
 * hint), the inference forward (no workspace) and the backward, with storage-less memory objects
 * that each call re-points at the caller's buffers. Scratchpads in user mode, allocated with their
 * primitive. Not thread-safe per operator. */
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"
#include "nn/dnnl_util.h"

/* The primitives for one batch size (which one: the operator's cache says). */
typedef struct slot {
    bnk__dnnl_prim train, infer, bwd;
    dnnl_memory_t x, y, dx, dy, ws; /* over the caller's buffers; ws over the operator's */
} slot;

struct bnk__pool {
    bnk__pool_shape shape;
    dnnl_primitive_attr_t attr; /* scratchpad mode user */
    void *ws;                   /* workspace for max_batch samples */
    size_t ws_bytes;
    int64_t ws_n;          /* n of the training forward that filled ws; 0: none */
    bnk__dnnl_cache cache; /* the batch size of each slot, LRU */
    slot slots[BNK__DNNL_SLOTS];
};

/* ---- Descriptors --------------------------------------------------------------------------- */

typedef struct pool_mds {
    dnnl_memory_desc_t x, y; /* in the shape's layout */
    dnnl_dims_t strides, kernel, pad;
} pool_mds;

static bnk_status pool_mds_init(pool_mds *m, const bnk__pool_shape *sh, int64_t n) {
    const dnnl_dims_t xd = {n, sh->c, sh->in_h, sh->in_w};
    const dnnl_dims_t yd = {n, sh->c, sh->out_h, sh->out_w};
    m->strides[0] = m->strides[1] = sh->stride;
    m->kernel[0] = m->kernel[1] = sh->k;
    m->pad[0] = m->pad[1] = 0;
    bnk_status st = bnk__dnnl_md_f32(&m->x, 4, xd, bnk__dnnl_act_tag(sh->block));
    if (st != BNK_OK) return st;
    return bnk__dnnl_md_f32(&m->y, 4, yd, bnk__dnnl_act_tag(sh->block));
}

/* The descriptor of the forward for n samples (training: with a workspace). */
static bnk_status fwd_pd_create(const bnk__pool *pl, int64_t n, bool training,
                                dnnl_primitive_desc_t *pd) {
    pool_mds m;
    bnk_status st = pool_mds_init(&m, &pl->shape, n);
    if (st != BNK_OK) return st;
    dnnl_pooling_desc_t d;
    st = bnk__dnnl_chk(dnnl_pooling_forward_desc_init(
                           &d, training ? dnnl_forward_training : dnnl_forward_inference,
                           dnnl_pooling_max, &m.x, &m.y, m.strides, m.kernel, m.pad, m.pad),
                       "dnnl_pooling_forward_desc_init");
    if (st != BNK_OK) return st;
    return bnk__dnnl_chk(dnnl_primitive_desc_create(pd, &d, pl->attr, bnk__dnnl_engine(), NULL),
                         training ? "dnnl_primitive_desc_create(pooling forward training)"
                                  : "dnnl_primitive_desc_create(pooling forward inference)");
}

/* ---- Cache slots --------------------------------------------------------------------------- */

static void slot_clear(slot *s) {
    bnk__dnnl_prim_clear(&s->train);
    bnk__dnnl_prim_clear(&s->infer);
    bnk__dnnl_prim_clear(&s->bwd);
    dnnl_memory_t *mems[] = {&s->x, &s->y, &s->dx, &s->dy, &s->ws};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) bnk__dnnl_memory_clear(mems[i]);
}

/* Slot i for batch size n: every primitive and memory (the cache's init callback). */
static bnk_status slot_init(void *op, int i, int64_t n) {
    bnk__pool *pl = op;
    slot *s = &pl->slots[i];
    dnnl_engine_t eng = bnk__dnnl_engine(); /* exists: create made it */
    pool_mds m;
    dnnl_primitive_desc_t train_pd = NULL, infer_pd = NULL, bwd_pd = NULL;
    bnk_status st = pool_mds_init(&m, &pl->shape, n);
    if (st == BNK_OK) st = fwd_pd_create(pl, n, true, &train_pd);
    if (st == BNK_OK) st = fwd_pd_create(pl, n, false, &infer_pd);
    if (st == BNK_OK) {
        dnnl_pooling_desc_t d;
        st = bnk__dnnl_chk(dnnl_pooling_backward_desc_init(&d, dnnl_pooling_max, &m.x, &m.y,
                                                           m.strides, m.kernel, m.pad, m.pad),
                           "dnnl_pooling_backward_desc_init");
        if (st == BNK_OK)
            st = bnk__dnnl_chk(dnnl_primitive_desc_create(&bwd_pd, &d, pl->attr, eng, train_pd),
                               "dnnl_primitive_desc_create(pooling backward)");
    }
    const dnnl_memory_desc_t *ws_md =
        train_pd ? dnnl_primitive_desc_query_md(train_pd, dnnl_query_workspace_md, 0) : NULL;
    if (st == BNK_OK && !ws_md)
        st = bnk__dnnl_chk(dnnl_runtime_error, "dnnl_primitive_desc_query_md(workspace)");
    if (st == BNK_OK && dnnl_memory_desc_get_size(ws_md) > pl->ws_bytes)
        st = bnk__fail(BNK_ERR_UNSUPPORTED,
                       "oneDNN: the pooling workspace for %lld samples (%zu bytes) exceeds the "
                       "one sized for max_batch %lld (%zu bytes)",
                       (long long)n, dnnl_memory_desc_get_size(ws_md),
                       (long long)pl->shape.max_batch, pl->ws_bytes);
    if (st == BNK_OK &&
        !(st = bnk__dnnl_prim_init(&s->train, train_pd, eng,
                                   "dnnl_primitive_create(pooling forward)")) &&
        !(st = bnk__dnnl_prim_init(&s->infer, infer_pd, eng,
                                   "dnnl_primitive_create(pooling forward)")) &&
        !(st = bnk__dnnl_prim_init(&s->bwd, bwd_pd, eng,
                                   "dnnl_primitive_create(pooling backward)")) &&
        !(st = bnk__dnnl_memory_create(&s->x, &m.x, eng, DNNL_MEMORY_NONE)) &&
        !(st = bnk__dnnl_memory_create(&s->y, &m.y, eng, DNNL_MEMORY_NONE)) &&
        !(st = bnk__dnnl_memory_create(&s->dx, &m.x, eng, DNNL_MEMORY_NONE)) &&
        !(st = bnk__dnnl_memory_create(&s->dy, &m.y, eng, DNNL_MEMORY_NONE)))
        st = bnk__dnnl_memory_create(&s->ws, ws_md, eng, pl->ws);
    if (train_pd) dnnl_primitive_desc_destroy(train_pd);
    if (infer_pd) dnnl_primitive_desc_destroy(infer_pd);
    if (bwd_pd) dnnl_primitive_desc_destroy(bwd_pd);
    return st;
}

static void slot_drop(void *op, int i) {
    slot_clear(&((bnk__pool *)op)->slots[i]);
}

static bnk_status slot_get(bnk__pool *pl, int64_t n, slot **out) {
    int i = 0;
    bnk_status st = bnk__dnnl_cache_get(&pl->cache, n, pl, slot_init, slot_drop, &i);
    *out = &pl->slots[i];
    return st;
}

/* ---- Create / destroy ---------------------------------------------------------------------- */

static bnk_status validate(const bnk__pool_shape *sh) {
    const struct {
        const char *name;
        int64_t v;
    } sizes[] = {
        {"c", sh->c},         {"in_h", sh->in_h},   {"in_w", sh->in_w},          {"k", sh->k},
        {"out_h", sh->out_h}, {"out_w", sh->out_w}, {"max_batch", sh->max_batch}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < 1)
            return bnk__fail(BNK_ERR_SIZE, "pooling %s must be >= 1, got %lld", sizes[i].name,
                             (long long)sizes[i].v);
    if (sh->stride < 1)
        return bnk__fail(BNK_ERR_PARAM, "pooling stride must be >= 1, got %lld",
                         (long long)sh->stride);
    if (sh->k > sh->in_h || sh->k > sh->in_w)
        return bnk__fail(BNK_ERR_PARAM, "pooling window %lld is larger than the input %lld x %lld",
                         (long long)sh->k, (long long)sh->in_h, (long long)sh->in_w);
    const int64_t oh = (sh->in_h - sh->k) / sh->stride + 1;
    const int64_t ow = (sh->in_w - sh->k) / sh->stride + 1;
    if (sh->out_h != oh || sh->out_w != ow)
        return bnk__fail(BNK_ERR_SHAPE,
                         "pooling output must be %lld x %lld for input %lld x %lld, window %lld, "
                         "stride %lld; got %lld x %lld",
                         (long long)oh, (long long)ow, (long long)sh->in_h, (long long)sh->in_w,
                         (long long)sh->k, (long long)sh->stride, (long long)sh->out_h,
                         (long long)sh->out_w);
    bnk_status st = bnk__dnnl_check_block(sh->block, sh->c, "pooling");
    if (st != BNK_OK) return st;
    /* Every tensor of max_batch samples must have an addressable float count. */
    const uint64_t limit = (uint64_t)bnk__dnnl_max_floats();
    uint64_t per = (uint64_t)sh->c;
    if (per > limit / (uint64_t)sh->in_h ||
        (per *= (uint64_t)sh->in_h) > limit / (uint64_t)sh->in_w ||
        (per *= (uint64_t)sh->in_w) > limit / (uint64_t)sh->max_batch)
        return bnk__fail(BNK_ERR_OVERFLOW,
                         "pooling input of %lld x %lld x %lld x %lld overflows the address space",
                         (long long)sh->max_batch, (long long)sh->c, (long long)sh->in_h,
                         (long long)sh->in_w);
    return BNK_OK;
}

bnk_status bnk__pool_create(bnk__pool **out, const bnk__pool_shape *shape) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "pooling output pointer is NULL");
    *out = NULL;
    if (!shape) return bnk__fail(BNK_ERR_NULL, "pooling shape is NULL");
    bnk_status st = validate(shape);
    if (st != BNK_OK) return st;
    if (!bnk__dnnl_engine() || !bnk__dnnl_stream()) return BNK_ERR_UNSUPPORTED; /* message set */

    bnk__pool *pl = calloc(1, sizeof *pl);
    if (!pl) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a pooling operator");
    pl->shape = *shape;
    if ((st = bnk__dnnl_attr_create(&pl->attr)) != BNK_OK) {
        bnk__pool_destroy(pl);
        return st;
    }
    /* The workspace of the largest batch, from its descriptor (also checks that oneDNN takes
     * the shape). 64-byte aligned, the size rounded up as aligned_alloc wants. */
    dnnl_primitive_desc_t pd = NULL;
    if ((st = fwd_pd_create(pl, shape->max_batch, true, &pd)) != BNK_OK) {
        bnk__pool_destroy(pl);
        return st;
    }
    const dnnl_memory_desc_t *ws_md = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
    pl->ws_bytes = ws_md ? dnnl_memory_desc_get_size(ws_md) : 0;
    dnnl_primitive_desc_destroy(pd);
    if (!ws_md || pl->ws_bytes == 0) {
        bnk__pool_destroy(pl);
        return bnk__dnnl_chk(dnnl_runtime_error, "dnnl_primitive_desc_query_md(workspace)");
    }
    pl->ws = aligned_alloc(64, (pl->ws_bytes + 63) / 64 * 64);
    if (!pl->ws) {
        const size_t bytes = pl->ws_bytes;
        bnk__pool_destroy(pl);
        return bnk__fail(BNK_ERR_NOMEM, "cannot allocate the pooling workspace (%zu bytes)", bytes);
    }
    *out = pl;
    return BNK_OK;
}

void bnk__pool_destroy(bnk__pool *pl) {
    if (!pl) return;
    for (int i = 0; i < BNK__DNNL_SLOTS; i++) slot_clear(&pl->slots[i]);
    if (pl->attr) dnnl_primitive_attr_destroy(pl->attr);
    free(pl->ws);
    free(pl);
}

/* ---- Forward / backward -------------------------------------------------------------------- */

static bnk_status check_n(const bnk__pool *pl, int64_t n) {
    if (n < 1 || n > pl->shape.max_batch)
        return bnk__fail(BNK_ERR_SIZE,
                         "pooling batch size must be in [1, max_batch %lld], got %lld",
                         (long long)pl->shape.max_batch, (long long)n);
    return BNK_OK;
}

bnk_status bnk__pool_forward(bnk__pool *pl, int64_t n, float *y, const float *x, bool training) {
    if (!pl) return bnk__fail(BNK_ERR_NULL, "pooling is NULL");
    if (!y || !x) return bnk__fail(BNK_ERR_NULL, "pooling forward: %s is NULL", !y ? "y" : "x");
    bnk_status st = check_n(pl, n);
    if (st != BNK_OK) return st;
    slot *s;
    if ((st = slot_get(pl, n, &s)) != BNK_OK) return st;
    if ((st = bnk__dnnl_bind(s->x, x)) || (st = bnk__dnnl_bind(s->y, y))) return st;
    dnnl_stream_t stream = bnk__dnnl_stream();
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, s->x}, {DNNL_ARG_DST, s->y}, {DNNL_ARG_WORKSPACE, s->ws}};
    if (training) {
        pl->ws_n = 0; /* invalid until this forward succeeds */
        st = bnk__dnnl_prim_exec(&s->train, stream, 3, args,
                                 "dnnl_primitive_execute(pooling forward)");
    } else {
        st = bnk__dnnl_prim_exec(&s->infer, stream, 2, args,
                                 "dnnl_primitive_execute(pooling forward)");
    }
    if (st == BNK_OK) st = bnk__dnnl_wait(stream);
    if (st == BNK_OK && training) pl->ws_n = n;
    return st;
}

bnk_status bnk__pool_backward(bnk__pool *pl, int64_t n, float *dx, const float *dy) {
    if (!pl) return bnk__fail(BNK_ERR_NULL, "pooling is NULL");
    if (!dx || !dy)
        return bnk__fail(BNK_ERR_NULL, "pooling backward: %s is NULL", !dx ? "dx" : "dy");
    bnk_status st = check_n(pl, n);
    if (st != BNK_OK) return st;
    if (pl->ws_n == 0)
        return bnk__fail(BNK_ERR_SHAPE,
                         "pooling backward with n = %lld before any training forward",
                         (long long)n);
    if (pl->ws_n != n)
        return bnk__fail(
            BNK_ERR_SHAPE,
            "pooling backward with n = %lld, but the last training forward had n = %lld",
            (long long)n, (long long)pl->ws_n);
    slot *s;
    if ((st = slot_get(pl, n, &s)) != BNK_OK) return st;
    if ((st = bnk__dnnl_bind(s->dx, dx)) || (st = bnk__dnnl_bind(s->dy, dy))) return st;
    dnnl_stream_t stream = bnk__dnnl_stream();
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_DIFF_DST, s->dy}, {DNNL_ARG_WORKSPACE, s->ws}, {DNNL_ARG_DIFF_SRC, s->dx}};
    if ((st = bnk__dnnl_prim_exec(&s->bwd, stream, 3, args,
                                  "dnnl_primitive_execute(pooling backward)")))
        return st;
    return bnk__dnnl_wait(stream);
}
