/* Subsets and orderings: seeded split, truncation, shuffling. Randomness comes only from the
 * caller's explicit state through bnk__rng_below (core/rng.h: splitmix64, unbiased bounded
 * integers by Lemire's method), so every result is reproducible from its seed. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/rng.h"
#include "data/data_internal.h"

/* Copies sample `from` of src over sample `to` of dst (dst may be src with to < from). */
static void copy_sample(bnk_dataset *dst, int64_t to, const bnk_dataset *src, int64_t from) {
    size_t f = (size_t)src->features;
    if (src->u8) memcpy(dst->u8 + (size_t)to * f, src->u8 + (size_t)from * f, f);
    if (src->f32) memcpy(dst->f32 + (size_t)to * f, src->f32 + (size_t)from * f, f * sizeof(float));
    dst->labels[to] = src->labels[from];
}

/* Gives memory back after the data set shrank; keeps the old blocks if realloc fails. */
static void shrink(bnk_dataset *ds) {
    size_t n = (size_t)ds->size, f = (size_t)ds->features;
    if (ds->u8) {
        uint8_t *p = realloc(ds->u8, n * f);
        if (p) ds->u8 = p;
    }
    if (ds->f32) {
        float *p = realloc(ds->f32, n * f * sizeof(float));
        if (p) ds->f32 = p;
    }
    int32_t *l = realloc(ds->labels, n * sizeof(int32_t));
    if (l) ds->labels = l;
}

bnk_status bnk_dataset_split(bnk_dataset *ds, int64_t count, uint64_t seed, bnk_dataset **out) {
    if (out == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_dataset_split: out is NULL");
    *out = NULL;
    if (ds == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_dataset_split: ds is NULL");
    int64_t n = ds->size;
    if (count < 1 || count > n - 1) {
        return bnk__fail(BNK_ERR_SIZE,
                         "split count must be in [1, %" PRId64 "] for %" PRId64
                         " samples, got %" PRId64,
                         n - 1, n, count);
    }
    bnk_dataset *part;
    bnk_status st = bnk__dataset_alloc(&part, count, ds->c, ds->h, ds->w,
                                       ds->u8 ? BNK__FEAT_U8 : BNK__FEAT_F32);
    if (st != BNK_OK) return st;
    part->num_classes = ds->num_classes;

    /* Selection sampling (Knuth's Algorithm S): sample i is taken with probability
     * needed / (n - i), which picks a uniformly random subset of exactly `count` samples in one
     * pass and leaves both parts in their original order. */
    uint64_t rng = seed;
    int64_t taken = 0, kept = 0;
    for (int64_t i = 0; i < n; i++) {
        if ((int64_t)bnk__rng_below(&rng, (uint64_t)(n - i)) < count - taken) {
            copy_sample(part, taken++, ds, i);
        } else {
            if (kept != i) copy_sample(ds, kept, ds, i);
            kept++;
        }
    }
    ds->size = kept;
    shrink(ds);
    *out = part;
    return BNK_OK;
}

bnk_status bnk_dataset_truncate(bnk_dataset *ds, int64_t count) {
    if (ds == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_dataset_truncate: ds is NULL");
    if (count < 1 || count > ds->size) {
        return bnk__fail(BNK_ERR_SIZE, "truncate count must be in [1, %" PRId64 "], got %" PRId64,
                         ds->size, count);
    }
    if (count < ds->size) {
        ds->size = count;
        shrink(ds);
    }
    return BNK_OK;
}

void bnk_dataset_shuffle(const bnk_dataset *ds, int64_t *order, uint64_t *rng) {
    if (ds == NULL || order == NULL || rng == NULL) return;
    int64_t n = ds->size;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    /* Fisher-Yates: position i takes a uniformly chosen one of the i+1 values still unplaced. */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)bnk__rng_below(rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
