/* libFuzzer target for the .npy parser: any byte string must either parse into a consistent
 * array or be refused with BNK_ERR_FORMAT (never crash, leak or read out of bounds).
 *
 *     cmake -S . -B /tmp/build-fuzz -DBNKIT_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *     cmake --build /tmp/build-fuzz --target npy_fuzz
 *     cp -r tests/fuzz/corpus_npy /tmp/corpus_npy   # the fuzzer adds files to its corpus
 *     /tmp/build-fuzz/tests/npy_fuzz -max_total_time=60 /tmp/corpus_npy
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t empty[1];
    bnk_npy a;
    memset(&a, 0xA5, sizeof a); /* the reader must zero it on failure */
    bnk_status st = bnk_npy_read_mem(size ? data : empty, size, &a);
    if (st != BNK_OK) {
        /* Only malformed input or an allocation failure may be refused. */
        check(st == BNK_ERR_FORMAT || st == BNK_ERR_NOMEM);
        check(a.data == NULL && a.count == 0 && a.ndim == 0);
        return 0;
    }
    check(a.dtype == BNK_DTYPE_F32 || a.dtype == BNK_DTYPE_F64);
    check(a.ndim >= 0 && a.ndim <= BNK_NPY_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < a.ndim; i++) {
        check(a.shape[i] >= 0);
        count *= (size_t)a.shape[i]; /* cannot wrap: the reader checked the byte size */
    }
    check(count == a.count);
    check(a.count == 0 || a.data != NULL);
    size_t itemsize = a.dtype == BNK_DTYPE_F64 ? 8 : 4;
    check(a.count * itemsize < size); /* the data came from the input, after a header */
    /* Touch every byte so ASan sees any short allocation. */
    const volatile unsigned char *bytes = a.data;
    unsigned char sum = 0;
    for (size_t i = 0; i < a.count * itemsize; i++) sum ^= bytes[i];
    (void)sum;
    check(bnk_npy_to_f32(&a) == BNK_OK && a.dtype == BNK_DTYPE_F32);
    bnk_npy_free(&a);
    check(a.data == NULL && a.count == 0);
    return 0;
}
