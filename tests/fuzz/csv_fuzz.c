/* libFuzzer target for the CSV parser (src/data/csv.c through bnk__csv_parse_mem): any text
 * must either become a consistent data set (finite features, labels in range) or be refused
 * with BNK_ERR_FORMAT (never crash, leak or read out of bounds). The input is copied into a heap
 * block of exactly its size, without a terminator, so AddressSanitizer catches any read past it.
 *
 *     cmake -S . -B /tmp/build-fuzz -DBNKIT_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *     cmake --build /tmp/build-fuzz --target csv_fuzz
 *     cp -r tests/fuzz/corpus_csv /tmp/corpus_csv   # the fuzzer adds files to its corpus
 *     /tmp/build-fuzz/tests/csv_fuzz -max_total_time=60 /tmp/corpus_csv
 * The seed corpus is written by scripts/gen_data_fixtures.py. */
#include <math.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);
    check(text != NULL);
    if (size) memcpy(text, data, size);
    bnk_dataset *ds = (bnk_dataset *)&ds;
    bnk_status st = bnk__csv_parse_mem(&ds, text, size, "fuzz.csv");
    free(text);
    if (st != BNK_OK) {
        check(st == BNK_ERR_FORMAT || st == BNK_ERR_NOMEM);
        check(ds == NULL);
        return 0;
    }
    int64_t n = bnk_dataset_size(ds), c, h, w;
    bnk_dataset_shape(ds, &c, &h, &w);
    check(n >= 1 && c >= 1 && h == 1 && w == 1);
    check(ds->u8 == NULL && ds->f32 != NULL);
    int32_t max = 1;
    for (int64_t i = 0; i < n; i++) {
        check(ds->labels[i] >= 0 && ds->labels[i] < BNK__DATA_MAX_CLASSES);
        if (ds->labels[i] > max) max = ds->labels[i];
        for (int64_t j = 0; j < c; j++) check(isfinite(ds->f32[i * c + j]));
    }
    check(bnk_dataset_num_classes(ds) == max + 1);
    /* Lines of at least two bytes ("0,0") hold each sample. */
    check((size_t)n <= size / 2 + 1);

    float *x = malloc((size_t)c * sizeof *x), *stats = malloc(2 * (size_t)c * sizeof *stats);
    check(x != NULL && stats != NULL);
    int32_t y;
    int64_t last = n - 1;
    check(bnk_dataset_feature_stats(ds, stats, stats + c) == BNK_OK);
    const float *sp[2] = {stats, stats + c};
    check(bnk_dataset_batch(ds, &last, 1, BNK_SCALE_STANDARDIZE, sp, x, &y) == BNK_OK);
    check(y == ds->labels[last]);
    free(x);
    free(stats);
    bnk_dataset_destroy(ds);
    return 0;
}
