/* 2-D convolution on oneDNN primitives: forward, backward data, backward weights + bias.
 *
 * Interface: f32, activations NCHW or blocked (nChw16c / nChw8c, the shape's in_block and
 * out_block, see nn_internal.h), weights OIHW, bias (O), whatever oneDNN uses inside.
 *
 * Layouts. Two ways to run, picked at create time:
 *   plain  every primitive is created on nchw/oihw memory, so NCHW buffers are handed to oneDNN
 *          as they are (its gemm-based implementations: im2col + sgemm);
 *   any    the primitives pick their layouts (format_tag_any: blocked nChw16c / OIhw16i16o on
 *          AVX-512) and each argument whose layout differs from the caller's is reordered
 *          between the caller's buffer and an internal one around every call. A caller that
 *          keeps activations in the layout oneDNN picks (bnk__conv_preferred_block) pays no
 *          activation reorder at all.
 * The environment variable BNK_CONV_FORMAT=plain|any forces one (read at create); the default is
 * any (CONV_DEFAULT_ANY below), about twice as fast end to end, reorders included. Forward +
 * backward per batch of 100, 2 cores (Xeon, AVX-512, oneDNN 2.6, best of 40):
 *                                        plain (gemm)   any (jit:avx512_core + reorders)
 *     1x28x28 -> 32x28x28, k3 p1, no dx      6.1 ms       3.0 ms
 *     32x14x14 -> 64x14x14, k3 p1, with dx  22.1 ms      10.7 ms
 * In any mode about a quarter of that is reordering (the 100x32x28x28 output and its gradient
 * dominate); backward-data's reordered dy is reused by backward-weights when their layouts
 * agree.
 *
 * Cache. Primitives depend on the batch size n, so each operator keeps BNK__DNNL_SLOTS entries
 * keyed by n (dnnl_util.h) and made on first use: the forward primitive on the first forward
 * (or backward) with that n, backward-weights and backward-data on the first backward that
 * needs them (backward-data only when dx is asked for). When all slots are taken the least recently
 * used one is rebuilt. The memory objects of an entry are made once, without storage; each call
 * re-points them at the caller's buffers with dnnl_memory_set_data_handle, so steady-state calls
 * allocate nothing.
 *
 * Scratchpad: user mode. Every primitive (reorders included) gets its own scratchpad memory,
 * allocated by oneDNN when the primitive is made and owned by its entry; nothing is allocated
 * while executing whatever oneDNN's build options (library mode allocates per execution when
 * oneDNN is built for concurrent execution).
 *
 * Gradients: oneDNN writes diff_weights/diff_bias, so backward-weights writes them into two
 * operator-owned buffers of weight and bias size (allocated at create) that are then added to
 * dw and db: backward ACCUMULATES, as every bnkit backward does.
 *
 * Not thread-safe per operator (the cache is mutated by every call); distinct operators may run
 * on distinct threads (the engine and stream are shared, see dnnl.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "nn/dnnl_util.h"

/* Default layout strategy when BNK_CONV_FORMAT is unset: see the file comment. */
#define CONV_DEFAULT_ANY 1

/* One tensor argument of a primitive: a plain-layout memory over the caller's buffer and, when
 * the primitive wants another layout, an internal memory and the reorder between the two
 * (user -> inner for inputs, inner -> user for outputs). */
typedef struct arg {
    dnnl_memory_t user;  /* plain layout; storage = the caller's buffer, set per call */
    dnnl_memory_t inner; /* the primitive's layout, oneDNN-owned storage; NULL: use `user` */
    bnk__dnnl_prim reorder;
    bool input;
} arg;

/* The primitives for one batch size (which one: the operator's cache says). */
typedef struct slot {
    dnnl_primitive_desc_t fwd_pd; /* kept: the hint for the backward descriptors */
    bnk__dnnl_prim fwd;
    arg f_x, f_w, f_b, f_y;
    bnk__dnnl_prim bwd_w; /* p == NULL until the first backward */
    arg w_x, w_dy, w_dw, w_db;
    bnk__dnnl_prim bwd_d; /* p == NULL until the first backward with dx */
    arg d_dy, d_w, d_dx;
} slot;

struct bnk__conv {
    bnk__conv_shape shape;
    bool any;                   /* layout strategy, see the file comment */
    int64_t x_per, y_per;       /* elements per sample of x and y */
    int64_t w_count;            /* out_c * in_c * k * k */
    int64_t max_n;              /* largest n whose tensors have an addressable element count */
    dnnl_primitive_attr_t attr; /* scratchpad mode user */
    float *dw_tmp;              /* [out_c, in_c, k, k] diff_weights written by oneDNN */
    float *db_tmp;              /* [out_c] diff_bias written by oneDNN */
    bnk__dnnl_cache cache;      /* the batch size of each slot, LRU */
    slot slots[BNK__DNNL_SLOTS];
};

/* ---- Small oneDNN helpers ------------------------------------------------------------------ */

static void arg_clear(arg *a) {
    bnk__dnnl_memory_clear(&a->user);
    bnk__dnnl_memory_clear(&a->inner);
    bnk__dnnl_prim_clear(&a->reorder);
}

/* plain: the caller's layout; want: the primitive's (queried from its descriptor). */
static bnk_status arg_init(arg *a, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                           bool input, dnnl_engine_t eng, const_dnnl_primitive_attr_t attr) {
    a->input = input;
    if (!want) return bnk__dnnl_chk(dnnl_runtime_error, "dnnl_primitive_desc_query_md(argument)");
    bnk_status st = bnk__dnnl_memory_create(&a->user, plain, eng, DNNL_MEMORY_NONE);
    if (st != BNK_OK || dnnl_memory_desc_equal(plain, want)) return st;
    st = bnk__dnnl_memory_create(&a->inner, want, eng, DNNL_MEMORY_ALLOCATE);
    if (st != BNK_OK) return st;
    dnnl_primitive_desc_t pd = NULL;
    st = bnk__dnnl_chk(input ? dnnl_reorder_primitive_desc_create(&pd, plain, eng, want, eng, attr)
                             : dnnl_reorder_primitive_desc_create(&pd, want, eng, plain, eng, attr),
                       "dnnl_reorder_primitive_desc_create");
    if (st != BNK_OK) return st;
    st = bnk__dnnl_prim_init(&a->reorder, pd, eng, "dnnl_primitive_create(reorder)");
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Points the argument's plain memory at the caller's buffer. */
static bnk_status arg_bind(arg *a, const float *data) {
    return bnk__dnnl_bind(a->user, data);
}

/* The memory the primitive itself reads or writes. */
static dnnl_memory_t arg_mem(const arg *a) {
    return a->inner ? a->inner : a->user;
}

/* Runs the argument's reorder, if it has one (before the primitive for inputs, after it for
 * outputs). */
static bnk_status arg_reorder(const arg *a, dnnl_stream_t stream) {
    if (!a->reorder.p) return BNK_OK;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, a->input ? a->user : a->inner},
                               {DNNL_ARG_TO, a->input ? a->inner : a->user}};
    return bnk__dnnl_prim_exec(&a->reorder, stream, 2, args, "dnnl_primitive_execute(reorder)");
}

/* *same = whether memories a and b have the same descriptor. */
static bnk_status same_md(const_dnnl_memory_t a, const_dnnl_memory_t b, bool *same) {
    const dnnl_memory_desc_t *ma, *mb;
    bnk_status st;
    if ((st = bnk__dnnl_chk(dnnl_memory_get_memory_desc(a, &ma), "dnnl_memory_get_memory_desc")) ||
        (st = bnk__dnnl_chk(dnnl_memory_get_memory_desc(b, &mb), "dnnl_memory_get_memory_desc")))
        return st;
    *same = dnnl_memory_desc_equal(ma, mb) != 0;
    return BNK_OK;
}

/* ---- Cache slots --------------------------------------------------------------------------- */

static void slot_clear(slot *s) {
    if (s->fwd_pd) dnnl_primitive_desc_destroy(s->fwd_pd);
    bnk__dnnl_prim_clear(&s->fwd);
    bnk__dnnl_prim_clear(&s->bwd_w);
    bnk__dnnl_prim_clear(&s->bwd_d);
    arg *args[] = {&s->f_x,  &s->f_w,  &s->f_b,  &s->f_y, &s->w_x, &s->w_dy,
                   &s->w_dw, &s->w_db, &s->d_dy, &s->d_w, &s->d_dx};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) arg_clear(args[i]);
    memset(s, 0, sizeof *s);
}

/* The memory descriptors of one batch size: the caller's layouts, and what the primitives are
 * asked for (plain nchw/oihw in plain mode, format_tag_any in any mode). */
typedef struct conv_mds {
    dnnl_memory_desc_t x, w, b, y; /* the caller's: x and y in their blocks' layouts, oihw, x */
    dnnl_memory_desc_t want_x, want_w, want_b, want_y;
    dnnl_dims_t strides, pad;
} conv_mds;

static bnk_status conv_mds_init(conv_mds *m, const bnk__conv_shape *sh, bool any, int64_t n) {
    const dnnl_dims_t xd = {n, sh->in_c, sh->in_h, sh->in_w};
    const dnnl_dims_t wd = {sh->out_c, sh->in_c, sh->k, sh->k};
    const dnnl_dims_t bd = {sh->out_c};
    const dnnl_dims_t yd = {n, sh->out_c, sh->out_h, sh->out_w};
    m->strides[0] = m->strides[1] = sh->stride;
    m->pad[0] = m->pad[1] = sh->pad;
    const dnnl_format_tag_t t4 = any ? dnnl_format_tag_any : dnnl_nchw;
    const dnnl_format_tag_t tw = any ? dnnl_format_tag_any : dnnl_oihw;
    const dnnl_format_tag_t t1 = any ? dnnl_format_tag_any : dnnl_x;
    bnk_status st = BNK_OK;
    if ((st = bnk__dnnl_md_f32(&m->x, 4, xd, bnk__dnnl_act_tag(sh->in_block))) ||
        (st = bnk__dnnl_md_f32(&m->w, 4, wd, dnnl_oihw)) ||
        (st = bnk__dnnl_md_f32(&m->b, 1, bd, dnnl_x)) ||
        (st = bnk__dnnl_md_f32(&m->y, 4, yd, bnk__dnnl_act_tag(sh->out_block))) ||
        (st = bnk__dnnl_md_f32(&m->want_x, 4, xd, t4)) ||
        (st = bnk__dnnl_md_f32(&m->want_w, 4, wd, tw)) ||
        (st = bnk__dnnl_md_f32(&m->want_b, 1, bd, t1)) ||
        (st = bnk__dnnl_md_f32(&m->want_y, 4, yd, t4)))
        return st;
    return BNK_OK;
}

static const dnnl_memory_desc_t *query(const_dnnl_primitive_desc_t pd, dnnl_query_t what,
                                       int index) {
    return dnnl_primitive_desc_query_md(pd, what, index);
}

/* *pd = the training forward's descriptor for the descriptors m. */
static bnk_status fwd_pd_create(const conv_mds *m, const_dnnl_primitive_attr_t attr,
                                dnnl_engine_t eng, dnnl_primitive_desc_t *pd) {
    dnnl_convolution_desc_t cd;
    bnk_status st =
        bnk__dnnl_chk(dnnl_convolution_forward_desc_init(
                          &cd, dnnl_forward_training, dnnl_convolution_direct, &m->want_x,
                          &m->want_w, &m->want_b, &m->want_y, m->strides, m->pad, m->pad),
                      "dnnl_convolution_forward_desc_init");
    if (st != BNK_OK) return st;
    return bnk__dnnl_chk(dnnl_primitive_desc_create(pd, &cd, attr, eng, NULL),
                         "dnnl_primitive_desc_create(convolution forward)");
}

/* The forward primitive of slot s for batch size n. */
static bnk_status slot_init_fwd(bnk__conv *cv, slot *s, int64_t n, dnnl_engine_t eng) {
    conv_mds m;
    bnk_status st = conv_mds_init(&m, &cv->shape, cv->any, n);
    if (st == BNK_OK) st = fwd_pd_create(&m, cv->attr, eng, &s->fwd_pd);
    if (st != BNK_OK) return st;
    const_dnnl_primitive_desc_t pd = s->fwd_pd;
    if ((st =
             bnk__dnnl_prim_init(&s->fwd, pd, eng, "dnnl_primitive_create(convolution forward)")) ||
        (st = arg_init(&s->f_x, &m.x, query(pd, dnnl_query_src_md, 0), true, eng, cv->attr)) ||
        (st = arg_init(&s->f_w, &m.w, query(pd, dnnl_query_weights_md, 0), true, eng, cv->attr)) ||
        (st = arg_init(&s->f_b, &m.b, query(pd, dnnl_query_weights_md, 1), true, eng, cv->attr)) ||
        (st = arg_init(&s->f_y, &m.y, query(pd, dnnl_query_dst_md, 0), false, eng, cv->attr)))
        return st;
    return BNK_OK;
}

/* Backward weights + bias; its outputs land in cv->dw_tmp and cv->db_tmp. */
static bnk_status slot_init_bwd_w(bnk__conv *cv, slot *s, int64_t n, dnnl_engine_t eng) {
    conv_mds m;
    bnk_status st = conv_mds_init(&m, &cv->shape, cv->any, n);
    if (st != BNK_OK) return st;
    dnnl_convolution_desc_t cd;
    st = bnk__dnnl_chk(dnnl_convolution_backward_weights_desc_init(
                           &cd, dnnl_convolution_direct, &m.want_x, &m.want_w, &m.want_b, &m.want_y,
                           m.strides, m.pad, m.pad),
                       "dnnl_convolution_backward_weights_desc_init");
    if (st != BNK_OK) return st;
    dnnl_primitive_desc_t pd = NULL;
    st = bnk__dnnl_chk(dnnl_primitive_desc_create(&pd, &cd, cv->attr, eng, s->fwd_pd),
                       "dnnl_primitive_desc_create(convolution backward weights)");
    if (st != BNK_OK) return st;
    if (!(st = bnk__dnnl_prim_init(&s->bwd_w, pd, eng,
                                   "dnnl_primitive_create(convolution backward weights)")) &&
        !(st = arg_init(&s->w_x, &m.x, query(pd, dnnl_query_src_md, 0), true, eng, cv->attr)) &&
        !(st = arg_init(&s->w_dy, &m.y, query(pd, dnnl_query_diff_dst_md, 0), true, eng,
                        cv->attr)) &&
        !(st = arg_init(&s->w_dw, &m.w, query(pd, dnnl_query_diff_weights_md, 0), false, eng,
                        cv->attr)) &&
        !(st = arg_init(&s->w_db, &m.b, query(pd, dnnl_query_diff_weights_md, 1), false, eng,
                        cv->attr)) &&
        !(st = arg_bind(&s->w_dw, cv->dw_tmp)))
        st = arg_bind(&s->w_db, cv->db_tmp);
    dnnl_primitive_desc_destroy(pd);
    if (st != BNK_OK) { /* the slot stays usable for forward; a later backward retries */
        bnk__dnnl_prim_clear(&s->bwd_w);
        arg_clear(&s->w_x), arg_clear(&s->w_dy), arg_clear(&s->w_dw), arg_clear(&s->w_db);
    }
    return st;
}

/* Backward data. */
static bnk_status slot_init_bwd_d(bnk__conv *cv, slot *s, int64_t n, dnnl_engine_t eng) {
    conv_mds m;
    bnk_status st = conv_mds_init(&m, &cv->shape, cv->any, n);
    if (st != BNK_OK) return st;
    dnnl_convolution_desc_t cd;
    st = bnk__dnnl_chk(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct,
                                                                &m.want_x, &m.want_w, &m.want_y,
                                                                m.strides, m.pad, m.pad),
                       "dnnl_convolution_backward_data_desc_init");
    if (st != BNK_OK) return st;
    dnnl_primitive_desc_t pd = NULL;
    st = bnk__dnnl_chk(dnnl_primitive_desc_create(&pd, &cd, cv->attr, eng, s->fwd_pd),
                       "dnnl_primitive_desc_create(convolution backward data)");
    if (st != BNK_OK) return st;
    if (!(st = bnk__dnnl_prim_init(&s->bwd_d, pd, eng,
                                   "dnnl_primitive_create(convolution backward data)")) &&
        !(st = arg_init(&s->d_dy, &m.y, query(pd, dnnl_query_diff_dst_md, 0), true, eng,
                        cv->attr)) &&
        !(st = arg_init(&s->d_w, &m.w, query(pd, dnnl_query_weights_md, 0), true, eng, cv->attr)))
        st = arg_init(&s->d_dx, &m.x, query(pd, dnnl_query_diff_src_md, 0), false, eng, cv->attr);
    dnnl_primitive_desc_destroy(pd);
    if (st != BNK_OK) {
        bnk__dnnl_prim_clear(&s->bwd_d);
        arg_clear(&s->d_dy), arg_clear(&s->d_w), arg_clear(&s->d_dx);
    }
    return st;
}

/* The cache's callbacks: slot i made for batch size n (its forward primitive), or freed. */
static bnk_status slot_make(void *op, int i, int64_t n) {
    bnk__conv *cv = op;
    return slot_init_fwd(cv, &cv->slots[i], n, bnk__dnnl_engine()); /* exists: create made it */
}

static void slot_drop(void *op, int i) {
    slot_clear(&((bnk__conv *)op)->slots[i]);
}

/* The slot for batch size n, its forward primitive made if it is new. */
static bnk_status slot_get(bnk__conv *cv, int64_t n, slot **out) {
    int i = 0;
    bnk_status st = bnk__dnnl_cache_get(&cv->cache, n, cv, slot_make, slot_drop, &i);
    *out = &cv->slots[i];
    return st;
}

/* ---- Create / destroy ---------------------------------------------------------------------- */

/* *out = a * b for a, b >= 0; false on int64 overflow. */
static bool mul_ok(int64_t a, int64_t b, int64_t *out) {
    if (b != 0 && a > INT64_MAX / b) return false;
    *out = a * b;
    return true;
}

static bnk_status validate(const bnk__conv_shape *sh, int64_t *x_per, int64_t *y_per,
                           int64_t *w_count) {
    const struct {
        const char *name;
        int64_t v;
    } sizes[] = {{"in_c", sh->in_c},   {"in_h", sh->in_h}, {"in_w", sh->in_w},
                 {"out_c", sh->out_c}, {"k", sh->k},       {"out_h", sh->out_h},
                 {"out_w", sh->out_w}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < 1)
            return bnk__fail(BNK_ERR_SIZE, "convolution %s must be >= 1, got %lld", sizes[i].name,
                             (long long)sizes[i].v);
    if (sh->stride < 1)
        return bnk__fail(BNK_ERR_PARAM, "convolution stride must be >= 1, got %lld",
                         (long long)sh->stride);
    if (sh->pad < 0 || sh->pad > INT32_MAX)
        return bnk__fail(BNK_ERR_PARAM, "convolution padding must be in [0, 2^31), got %lld",
                         (long long)sh->pad);
    /* in + 2*pad cannot overflow now unless in is near INT64_MAX; the products below catch
     * absurd sizes first. */
    if (sh->in_h > INT64_MAX / 4 || sh->in_w > INT64_MAX / 4)
        return bnk__fail(BNK_ERR_OVERFLOW, "convolution input %lld x %lld is too large",
                         (long long)sh->in_h, (long long)sh->in_w);
    const int64_t ph = sh->in_h + 2 * sh->pad, pw = sh->in_w + 2 * sh->pad;
    if (sh->k > ph || sh->k > pw)
        return bnk__fail(BNK_ERR_PARAM,
                         "convolution kernel %lld is larger than the padded input %lld x %lld",
                         (long long)sh->k, (long long)ph, (long long)pw);
    const int64_t oh = (ph - sh->k) / sh->stride + 1, ow = (pw - sh->k) / sh->stride + 1;
    if (sh->out_h != oh || sh->out_w != ow)
        return bnk__fail(BNK_ERR_SHAPE,
                         "convolution output must be %lld x %lld for input %lld x %lld, kernel "
                         "%lld, stride %lld, padding %lld; got %lld x %lld",
                         (long long)oh, (long long)ow, (long long)sh->in_h, (long long)sh->in_w,
                         (long long)sh->k, (long long)sh->stride, (long long)sh->pad,
                         (long long)sh->out_h, (long long)sh->out_w);
    bnk_status st = bnk__dnnl_check_block(sh->in_block, sh->in_c, "convolution input");
    if (st == BNK_OK) st = bnk__dnnl_check_block(sh->out_block, sh->out_c, "convolution output");
    if (st != BNK_OK) return st;
    int64_t t, kk;
    if (!mul_ok(sh->in_c, sh->in_h, &t) || !mul_ok(t, sh->in_w, x_per) ||
        !mul_ok(sh->out_c, sh->out_h, &t) || !mul_ok(t, sh->out_w, y_per) ||
        !mul_ok(sh->k, sh->k, &kk) || !mul_ok(sh->out_c, sh->in_c, &t) || !mul_ok(t, kk, w_count) ||
        (uint64_t)*x_per > SIZE_MAX / sizeof(float) ||
        (uint64_t)*y_per > SIZE_MAX / sizeof(float) ||
        (uint64_t)*w_count > SIZE_MAX / sizeof(float))
        return bnk__fail(BNK_ERR_OVERFLOW,
                         "convolution tensors of %lld x %lld x %lld -> %lld x %lld x %lld with "
                         "kernel %lld overflow the address space",
                         (long long)sh->in_c, (long long)sh->in_h, (long long)sh->in_w,
                         (long long)sh->out_c, (long long)sh->out_h, (long long)sh->out_w,
                         (long long)sh->k);
    return BNK_OK;
}

static bool want_any(void) {
    const char *env = getenv("BNK_CONV_FORMAT");
    if (env && strcmp(env, "any") == 0) return true;
    if (env && strcmp(env, "plain") == 0) return false;
    return CONV_DEFAULT_ANY; /* unset or unknown */
}

bnk_status bnk__conv_preferred_block(const bnk__conv_shape *shape, int64_t n, int *block) {
    if (!shape || !block) return bnk__fail(BNK_ERR_NULL, "convolution shape or block is NULL");
    *block = 0;
    bnk__conv_shape sh = *shape;
    sh.in_block = sh.out_block = 0;
    int64_t x_per = 0, y_per = 0, w_count = 0;
    bnk_status st = validate(&sh, &x_per, &y_per, &w_count);
    if (st != BNK_OK || !want_any()) return st;
    if (n < 1 || n > bnk__dnnl_max_floats() / (x_per > y_per ? x_per : y_per))
        return bnk__fail(BNK_ERR_SIZE, "convolution batch size %lld is out of range", (long long)n);
    dnnl_engine_t eng = bnk__dnnl_engine();
    if (!eng) return BNK_ERR_UNSUPPORTED; /* message set */
    conv_mds m;
    dnnl_primitive_desc_t pd = NULL;
    if ((st = conv_mds_init(&m, &sh, true, n)) || (st = fwd_pd_create(&m, NULL, eng, &pd)))
        return st;
    const dnnl_memory_desc_t *y = query(pd, dnnl_query_dst_md, 0);
    const dnnl_dims_t yd = {n, sh.out_c, sh.out_h, sh.out_w};
    for (int b = 16; y && b >= 8 && st == BNK_OK && !*block; b -= 8) {
        dnnl_memory_desc_t md;
        st = bnk__dnnl_md_f32(&md, 4, yd, bnk__dnnl_act_tag(b));
        if (st == BNK_OK && sh.out_c % b == 0 && dnnl_memory_desc_equal(y, &md)) *block = b;
    }
    dnnl_primitive_desc_destroy(pd);
    return st;
}

bnk_status bnk__conv_create(bnk__conv **out, const bnk__conv_shape *shape) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "convolution output pointer is NULL");
    *out = NULL;
    if (!shape) return bnk__fail(BNK_ERR_NULL, "convolution shape is NULL");
    int64_t x_per = 0, y_per = 0, w_count = 0;
    bnk_status st = validate(shape, &x_per, &y_per, &w_count);
    if (st != BNK_OK) return st;
    if (!bnk__dnnl_engine() || !bnk__dnnl_stream()) return BNK_ERR_UNSUPPORTED; /* message set */

    bnk__conv *cv = calloc(1, sizeof *cv);
    if (!cv) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a convolution operator");
    cv->shape = *shape;
    cv->any = want_any();
    cv->x_per = x_per;
    cv->y_per = y_per;
    cv->w_count = w_count;
    cv->max_n = bnk__dnnl_max_floats() / (x_per > y_per ? x_per : y_per);
    cv->dw_tmp = malloc((size_t)w_count * sizeof(float));
    cv->db_tmp = malloc((size_t)shape->out_c * sizeof(float));
    if (!cv->dw_tmp || !cv->db_tmp) {
        bnk__conv_destroy(cv);
        return bnk__fail(BNK_ERR_NOMEM,
                         "cannot allocate convolution gradient buffers (%lld floats)",
                         (long long)(w_count + shape->out_c));
    }
    if ((st = bnk__dnnl_attr_create(&cv->attr)) != BNK_OK) {
        bnk__conv_destroy(cv);
        return st;
    }
    *out = cv;
    return BNK_OK;
}

void bnk__conv_destroy(bnk__conv *cv) {
    if (!cv) return;
    for (int i = 0; i < BNK__DNNL_SLOTS; i++) slot_clear(&cv->slots[i]);
    if (cv->attr) dnnl_primitive_attr_destroy(cv->attr);
    free(cv->dw_tmp);
    free(cv->db_tmp);
    free(cv);
}

/* ---- Forward / backward -------------------------------------------------------------------- */

static bnk_status check_n(const bnk__conv *cv, int64_t n) {
    if (n < 1)
        return bnk__fail(BNK_ERR_SIZE, "convolution batch size must be >= 1, got %lld",
                         (long long)n);
    if (n > cv->max_n)
        return bnk__fail(BNK_ERR_OVERFLOW,
                         "convolution batch size %lld overflows the address space", (long long)n);
    return BNK_OK;
}

bnk_status bnk__conv_forward(bnk__conv *cv, int64_t n, float *y, const float *x, const float *w,
                             const float *b) {
    if (!cv) return bnk__fail(BNK_ERR_NULL, "convolution is NULL");
    if (!y || !x || !w || !b)
        return bnk__fail(BNK_ERR_NULL, "convolution forward: %s is NULL",
                         !y   ? "y"
                         : !x ? "x"
                         : !w ? "w"
                              : "b");
    bnk_status st = check_n(cv, n);
    if (st != BNK_OK) return st;
    slot *s;
    if ((st = slot_get(cv, n, &s)) != BNK_OK) return st;
    dnnl_stream_t stream = bnk__dnnl_stream();
    if ((st = arg_bind(&s->f_x, x)) || (st = arg_bind(&s->f_w, w)) || (st = arg_bind(&s->f_b, b)) ||
        (st = arg_bind(&s->f_y, y)) || (st = arg_reorder(&s->f_x, stream)) ||
        (st = arg_reorder(&s->f_w, stream)) || (st = arg_reorder(&s->f_b, stream)))
        return st;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, arg_mem(&s->f_x)},
                               {DNNL_ARG_WEIGHTS, arg_mem(&s->f_w)},
                               {DNNL_ARG_BIAS, arg_mem(&s->f_b)},
                               {DNNL_ARG_DST, arg_mem(&s->f_y)}};
    if ((st = bnk__dnnl_prim_exec(&s->fwd, stream, 4, args,
                                  "dnnl_primitive_execute(convolution forward)")) ||
        (st = arg_reorder(&s->f_y, stream)))
        return st;
    return bnk__dnnl_wait(stream);
}

bnk_status bnk__conv_backward(bnk__conv *cv, int64_t n, float *dx, float *dw, float *db,
                              const float *dy, const float *x, const float *w) {
    if (!cv) return bnk__fail(BNK_ERR_NULL, "convolution is NULL");
    if (!dw || !db || !dy || !x || !w)
        return bnk__fail(BNK_ERR_NULL, "convolution backward: %s is NULL",
                         !dw   ? "dw"
                         : !db ? "db"
                         : !dy ? "dy"
                         : !x  ? "x"
                               : "w");
    bnk_status st = check_n(cv, n);
    if (st != BNK_OK) return st;
    slot *s;
    if ((st = slot_get(cv, n, &s)) != BNK_OK) return st;
    dnnl_engine_t eng = bnk__dnnl_engine(); /* both exist: create made them */
    dnnl_stream_t stream = bnk__dnnl_stream();
    if (!s->bwd_w.p && (st = slot_init_bwd_w(cv, s, n, eng)) != BNK_OK) return st;
    if (dx && !s->bwd_d.p && (st = slot_init_bwd_d(cv, s, n, eng)) != BNK_OK) return st;

    /* Backward data first: in any mode its reordered dy can serve backward weights too. */
    dnnl_memory_t w_dy = arg_mem(&s->w_dy);
    bool dy_ready = false;
    if (dx) {
        if ((st = arg_bind(&s->d_dy, dy)) || (st = arg_bind(&s->d_w, w)) ||
            (st = arg_bind(&s->d_dx, dx)) || (st = arg_reorder(&s->d_dy, stream)) ||
            (st = arg_reorder(&s->d_w, stream)))
            return st;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, arg_mem(&s->d_dy)},
                                   {DNNL_ARG_WEIGHTS, arg_mem(&s->d_w)},
                                   {DNNL_ARG_DIFF_SRC, arg_mem(&s->d_dx)}};
        if ((st = bnk__dnnl_prim_exec(&s->bwd_d, stream, 3, args,
                                      "dnnl_primitive_execute(convolution backward data)")) ||
            (st = arg_reorder(&s->d_dx, stream)))
            return st;
        if (s->d_dy.inner && s->w_dy.inner) {
            if ((st = same_md(s->d_dy.inner, s->w_dy.inner, &dy_ready))) return st;
            if (dy_ready) w_dy = s->d_dy.inner;
        }
    }

    if ((st = arg_bind(&s->w_x, x)) || (st = arg_reorder(&s->w_x, stream))) return st;
    if (!dy_ready && ((st = arg_bind(&s->w_dy, dy)) || (st = arg_reorder(&s->w_dy, stream))))
        return st;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, arg_mem(&s->w_x)},
                               {DNNL_ARG_DIFF_DST, w_dy},
                               {DNNL_ARG_DIFF_WEIGHTS, arg_mem(&s->w_dw)},
                               {DNNL_ARG_DIFF_BIAS, arg_mem(&s->w_db)}};
    if ((st = bnk__dnnl_prim_exec(&s->bwd_w, stream, 4, args,
                                  "dnnl_primitive_execute(convolution backward weights)")) ||
        (st = arg_reorder(&s->w_dw, stream)) || (st = arg_reorder(&s->w_db, stream)) ||
        (st = bnk__dnnl_wait(stream)))
        return st;

    /* oneDNN wrote the gradients of this batch; bnkit's backward accumulates. */
    const float *restrict gw = cv->dw_tmp, *restrict gb = cv->db_tmp;
    for (int64_t i = 0; i < cv->w_count; i++) dw[i] += gw[i];
    for (int64_t i = 0; i < cv->shape.out_c; i++) db[i] += gb[i];
    return BNK_OK;
}
