/* libFuzzer target for the IDX parser (src/data/idx.c through bnk__idx_load_mem): any pair of
 * byte strings must either become a consistent data set or be refused with BNK_ERR_FORMAT
 * (never crash, leak or read out of bounds).
 *
 * Input layout: 2 bytes little-endian k, then the images file, then the labels file; the images
 * file takes k mod (size - 1) of the remaining bytes. Each part is copied into a heap block of
 * exactly its size, so AddressSanitizer catches any read past its end.
 *
 *     cmake -S . -B /tmp/build-fuzz -DBNKIT_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *     cmake --build /tmp/build-fuzz --target idx_fuzz
 *     cp -r tests/fuzz/corpus_idx /tmp/corpus_idx   # the fuzzer adds files to its corpus
 *     /tmp/build-fuzz/tests/idx_fuzz -max_total_time=60 /tmp/corpus_idx
 * The seed corpus is written by scripts/gen_data_fixtures.py. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/data.h"
#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) abort();
}

static uint8_t *copy(const uint8_t *p, size_t n) {
    uint8_t *c = malloc(n ? n : 1);
    check(c != NULL);
    if (n) memcpy(c, p, n);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t k = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1);
    uint8_t *images = copy(data + 2, k), *labels = copy(data + 2 + k, size - 2 - k);
    bnk_dataset *ds = (bnk_dataset *)&ds;
    bnk_status st = bnk__idx_load_mem(&ds, images, k, "images", labels, size - 2 - k, "labels");
    if (st != BNK_OK) {
        check(st == BNK_ERR_FORMAT || st == BNK_ERR_NOMEM);
        check(ds == NULL);
        free(images);
        free(labels);
        return 0;
    }
    int64_t n = bnk_dataset_size(ds), c, h, w;
    bnk_dataset_shape(ds, &c, &h, &w);
    check(n >= 1 && c == 1 && h >= 1 && w >= 1);
    check((size_t)(16 + n * h * w) == k && (size_t)(8 + n) == size - 2 - k);
    check(memcmp(ds->u8, images + 16, (size_t)(n * h * w)) == 0);
    int32_t max = 1;
    for (int64_t i = 0; i < n; i++) {
        check(ds->labels[i] == labels[8 + i]);
        if (ds->labels[i] > max) max = ds->labels[i];
    }
    check(bnk_dataset_num_classes(ds) == max + 1);

    /* The rest of the API on whatever came out. */
    size_t f = (size_t)(h * w);
    float *x = malloc(2 * f * sizeof *x), *stats = malloc(2 * f * sizeof *stats);
    check(x != NULL && stats != NULL);
    int32_t y[2];
    int64_t idx[2] = {n - 1, 0};
    check(bnk_dataset_feature_stats(ds, stats, stats + f) == BNK_OK);
    const float *sp[2] = {stats, stats + f};
    check(bnk_dataset_batch(ds, idx, 2, BNK_SCALE_STANDARDIZE, sp, x, y) == BNK_OK);
    check(y[0] == labels[8 + n - 1] && y[1] == labels[8]);
    if (n >= 2) {
        bnk_dataset *part;
        check(bnk_dataset_split(ds, 1, (uint64_t)size, &part) == BNK_OK);
        check(bnk_dataset_size(part) == 1 && bnk_dataset_size(ds) == n - 1);
        bnk_dataset_destroy(part);
    }
    free(x);
    free(stats);
    bnk_dataset_destroy(ds);
    free(images);
    free(labels);
    return 0;
}
