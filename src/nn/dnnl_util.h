/* oneDNN plumbing shared by the operators built on oneDNN primitives (dense.c, conv.c, pool.c),
 * defined in dnnl.c beside the shared engine and stream. Included only by those files, so that
 * nn_internal.h stays free of dnnl.h.
 *
 * Every operator follows the same pattern: primitive attributes with the scratchpad in user
 * mode (each primitive owns a scratchpad allocated when it is made, so that nothing is
 * allocated while executing); a cache of primitives per batch size n, made on first use; and
 * memory objects without storage that each call points at the caller's buffers. */
#ifndef BNKIT_NN_DNNL_UTIL_H
#define BNKIT_NN_DNNL_UTIL_H

#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "nn/nn_internal.h"

/* BNK_OK for dnnl_success, else bnk__dnnl_fail(s, call). */
bnk_status bnk__dnnl_chk(dnnl_status_t s, const char *call);

/* Largest element count of one f32 tensor: min(SIZE_MAX / sizeof(float), INT64_MAX). */
int64_t bnk__dnnl_max_floats(void);

/* *attr = the attributes every operator's primitives are made with: scratchpad mode user. */
bnk_status bnk__dnnl_attr_create(dnnl_primitive_attr_t *attr);

/* *md = an f32 memory descriptor of dims [ndims] in layout tag (dnnl_format_tag_any: the
 * primitive picks). */
bnk_status bnk__dnnl_md_f32(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims,
                            dnnl_format_tag_t tag);

/* The format tag of an activation layout (nn_internal.h): nchw, nChw8c or nChw16c for block 0, 8
 * or 16. */
dnnl_format_tag_t bnk__dnnl_act_tag(int block);

/* BNK_OK when block is 0, 8 or 16 and divides c; else BNK_ERR_PARAM naming what (an operator
 * and its tensor, e.g. "convolution input"). */
bnk_status bnk__dnnl_check_block(int block, int64_t c, const char *what);

/* *mem = a memory of md over handle: DNNL_MEMORY_NONE (no storage yet: bnk__dnnl_bind points
 * it at a buffer per call), DNNL_MEMORY_ALLOCATE (oneDNN-owned) or a buffer of the caller's. */
bnk_status bnk__dnnl_memory_create(dnnl_memory_t *mem, const dnnl_memory_desc_t *md,
                                   dnnl_engine_t eng, void *handle);

/* Destroys *mem if it is not NULL and sets it to NULL. */
void bnk__dnnl_memory_clear(dnnl_memory_t *mem);

/* Points mem at data. oneDNN takes void *; inputs are only read. */
bnk_status bnk__dnnl_bind(dnnl_memory_t mem, const float *data);

/* dnnl_stream_wait, checked. */
bnk_status bnk__dnnl_wait(dnnl_stream_t stream);

/* ---- A primitive and its scratchpad -------------------------------------------------------- */

typedef struct bnk__dnnl_prim {
    dnnl_primitive_t p;    /* NULL: not made */
    dnnl_memory_t scratch; /* user-mode scratchpad; NULL when the primitive needs none */
} bnk__dnnl_prim;

/* Makes the primitive of pd and its scratchpad; what names the primitive in an error. On
 * failure pr may hold a part: bnk__dnnl_prim_clear frees it. */
bnk_status bnk__dnnl_prim_init(bnk__dnnl_prim *pr, const_dnnl_primitive_desc_t pd,
                               dnnl_engine_t eng, const char *what);

/* Frees what pr holds and zeroes it (a zeroed pr is fine). */
void bnk__dnnl_prim_clear(bnk__dnnl_prim *pr);

/* Executes pr with args [nargs], to which it appends the scratchpad: args has room for nargs +
 * 1 entries. */
bnk_status bnk__dnnl_prim_exec(const bnk__dnnl_prim *pr, dnnl_stream_t stream, int nargs,
                               dnnl_exec_arg_t *args, const char *what);

/* ---- The per-batch-size cache --------------------------------------------------------------- */

/* Primitives depend on the batch size n, so each operator keeps BNK__DNNL_SLOTS entries of its
 * own (an array slot[BNK__DNNL_SLOTS]) keyed by n, the training batch and the last partial batch
 * among them. This records which n each entry holds and when it was last
 * used; a zeroed cache is empty. */
enum { BNK__DNNL_SLOTS = 4 };

typedef struct bnk__dnnl_cache {
    int64_t n[BNK__DNNL_SLOTS];     /* batch size of each entry; 0: empty */
    uint64_t used[BNK__DNNL_SLOTS]; /* tick of its last use (LRU) */
    uint64_t tick;                  /* incremented by every lookup */
} bnk__dnnl_cache;

/* The operator's entry callbacks: init makes entry i for n (the entry is clear on entry), clear
 * frees what entry i holds and zeroes it (also on a partly made one). */
typedef bnk_status (*bnk__dnnl_slot_init_fn)(void *op, int i, int64_t n);
typedef void (*bnk__dnnl_slot_clear_fn)(void *op, int i);

/* *slot = the index of the entry for n (n >= 1). On a miss the first empty entry, else the
 * least recently used one, is cleared and made for n; if that fails it is cleared again, left
 * empty, and init's status returned. */
bnk_status bnk__dnnl_cache_get(bnk__dnnl_cache *c, int64_t n, void *op, bnk__dnnl_slot_init_fn init,
                               bnk__dnnl_slot_clear_fn clear, int *slot);

#endif /* BNKIT_NN_DNNL_UTIL_H */
