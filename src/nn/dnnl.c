/* The process-wide oneDNN CPU engine and stream shared by every convolution and pooling
 * operator, created once on first use (pthread_once) and kept until the process exits, and the
 * plumbing those operators share (dnnl_util.h).
 *
 * One stream serves every thread: oneDNN's CPU stream holds no per-execution state under the
 * OpenMP runtime (wait() is a no-op, each execute builds its own context), so operators on
 * different threads may share it; a single operator is still not thread-safe. */
#include <pthread.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "core/internal.h"
#include "nn/dnnl_util.h"

static pthread_once_t dnnl_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t dnnl_engine;
static dnnl_stream_t dnnl_stream;
/* Why the engine or stream could not be made; reported to every caller, on its own thread. */
static const char *dnnl_init_call = "";
static dnnl_status_t dnnl_init_status = dnnl_success;

static void dnnl_init(void) {
    dnnl_engine_t engine = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t s = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (s != dnnl_success) {
        dnnl_init_call = "dnnl_engine_create";
        dnnl_init_status = s;
        return;
    }
    s = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        dnnl_engine_destroy(engine);
        dnnl_init_call = "dnnl_stream_create";
        dnnl_init_status = s;
        return;
    }
    dnnl_engine = engine;
    dnnl_stream = stream;
}

static bool dnnl_ready(void) {
    pthread_once(&dnnl_once, dnnl_init);
    if (dnnl_engine) return true;
    bnk__dnnl_fail((int)dnnl_init_status, dnnl_init_call);
    return false;
}

void *bnk__dnnl_engine(void) {
    return dnnl_ready() ? (void *)dnnl_engine : NULL;
}

void *bnk__dnnl_stream(void) {
    return dnnl_ready() ? (void *)dnnl_stream : NULL;
}

bnk_status bnk__dnnl_fail(int dnnl_status, const char *call) {
    const dnnl_status_t s = (dnnl_status_t)dnnl_status;
    const bnk_status st = s == dnnl_out_of_memory ? BNK_ERR_NOMEM : BNK_ERR_UNSUPPORTED;
    return bnk__fail(st, "oneDNN: %s failed: %s", call, dnnl_status2str(s));
}

/* ---- Shared plumbing (dnnl_util.h) --------------------------------------------------------- */

bnk_status bnk__dnnl_chk(dnnl_status_t s, const char *call) {
    return s == dnnl_success ? BNK_OK : bnk__dnnl_fail((int)s, call);
}

int64_t bnk__dnnl_max_floats(void) {
    const uint64_t floats = SIZE_MAX / sizeof(float);
    return (int64_t)(floats < (uint64_t)INT64_MAX ? floats : (uint64_t)INT64_MAX);
}

bnk_status bnk__dnnl_attr_create(dnnl_primitive_attr_t *attr) {
    bnk_status st = bnk__dnnl_chk(dnnl_primitive_attr_create(attr), "dnnl_primitive_attr_create");
    if (st != BNK_OK) return st;
    return bnk__dnnl_chk(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user),
                         "dnnl_primitive_attr_set_scratchpad_mode");
}

bnk_status bnk__dnnl_md_f32(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims,
                            dnnl_format_tag_t tag) {
    return bnk__dnnl_chk(dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tag),
                         "dnnl_memory_desc_init_by_tag");
}

dnnl_format_tag_t bnk__dnnl_act_tag(int block) {
    return block == 16 ? dnnl_nChw16c : block == 8 ? dnnl_nChw8c : dnnl_nchw;
}

bnk_status bnk__dnnl_check_block(int block, int64_t c, const char *what) {
    if (block != 0 && block != 8 && block != 16)
        return bnk__fail(BNK_ERR_PARAM, "%s: layout block must be 0, 8 or 16, got %d", what, block);
    if (block && c % block != 0)
        return bnk__fail(BNK_ERR_PARAM,
                         "%s: the blocked layout needs channels in multiples of %d, got %lld", what,
                         block, (long long)c);
    return BNK_OK;
}

bnk_status bnk__dnnl_memory_create(dnnl_memory_t *mem, const dnnl_memory_desc_t *md,
                                   dnnl_engine_t eng, void *handle) {
    return bnk__dnnl_chk(dnnl_memory_create(mem, md, eng, handle), "dnnl_memory_create");
}

void bnk__dnnl_memory_clear(dnnl_memory_t *mem) {
    if (*mem) dnnl_memory_destroy(*mem);
    *mem = NULL;
}

bnk_status bnk__dnnl_bind(dnnl_memory_t mem, const float *data) {
    return bnk__dnnl_chk(dnnl_memory_set_data_handle(mem, (void *)(uintptr_t)data),
                         "dnnl_memory_set_data_handle");
}

bnk_status bnk__dnnl_wait(dnnl_stream_t stream) {
    return bnk__dnnl_chk(dnnl_stream_wait(stream), "dnnl_stream_wait");
}

bnk_status bnk__dnnl_prim_init(bnk__dnnl_prim *pr, const_dnnl_primitive_desc_t pd,
                               dnnl_engine_t eng, const char *what) {
    bnk_status st = bnk__dnnl_chk(dnnl_primitive_create(&pr->p, pd), what);
    if (st != BNK_OK) return st;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (!md) return bnk__dnnl_chk(dnnl_runtime_error, "dnnl_primitive_desc_query_md(scratchpad)");
    if (dnnl_memory_desc_get_size(md) == 0) return BNK_OK;
    return bnk__dnnl_memory_create(&pr->scratch, md, eng, DNNL_MEMORY_ALLOCATE);
}

void bnk__dnnl_prim_clear(bnk__dnnl_prim *pr) {
    if (pr->p) dnnl_primitive_destroy(pr->p);
    pr->p = NULL;
    bnk__dnnl_memory_clear(&pr->scratch);
}

bnk_status bnk__dnnl_prim_exec(const bnk__dnnl_prim *pr, dnnl_stream_t stream, int nargs,
                               dnnl_exec_arg_t *args, const char *what) {
    if (pr->scratch) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pr->scratch};
    return bnk__dnnl_chk(dnnl_primitive_execute(pr->p, stream, nargs, args), what);
}

bnk_status bnk__dnnl_cache_get(bnk__dnnl_cache *c, int64_t n, void *op, bnk__dnnl_slot_init_fn init,
                               bnk__dnnl_slot_clear_fn clear, int *slot) {
    c->tick++;
    int victim = -1; /* the first empty entry, else the least recently used */
    for (int i = 0; i < BNK__DNNL_SLOTS; i++) {
        if (c->n[i] == n) {
            c->used[i] = c->tick;
            *slot = i;
            return BNK_OK;
        }
        if (victim < 0 || (c->n[victim] != 0 && (c->n[i] == 0 || c->used[i] < c->used[victim])))
            victim = i;
    }
    clear(op, victim);
    c->n[victim] = 0;
    c->used[victim] = 0;
    bnk_status st = init(op, victim, n);
    if (st != BNK_OK) {
        clear(op, victim);
        return st;
    }
    c->n[victim] = n;
    c->used[victim] = c->tick;
    *slot = victim;
    return BNK_OK;
}
