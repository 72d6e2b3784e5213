/* libFuzzer target for the checkpoint header parser (src/nn/ckpt_format.c): any byte string must
 * either parse into a consistent description or be refused with BNK_ERR_FORMAT (never crash,
 * leak or read out of bounds); what parses must survive build -> parse unchanged.
 *
 *     cmake -S . -B /tmp/build-fuzz -DBNKIT_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *     cmake --build /tmp/build-fuzz --target ckpt_fuzz
 *     cp -r tests/fuzz/corpus_ckpt /tmp/corpus_ckpt   # the fuzzer adds files to its corpus
 *     /tmp/build-fuzz/tests/ckpt_fuzz -max_total_time=60 /tmp/corpus_ckpt
 *
 * The seeds come from scripts/gen_ckpt_corpus.py. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/checkpoint_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t empty[1];
    bnk__ckpt_desc d;
    memset(&d, 0xA5, sizeof d); /* the parser must zero it */
    bnk_status st = bnk__ckpt_parse(&d, size ? data : empty, size);
    if (st != BNK_OK) {
        check(st == BNK_ERR_FORMAT || st == BNK_ERR_NOMEM);
        check(d.tensors == NULL && d.spec == NULL && d.data == NULL && d.ntensors == 0);
        return 0;
    }
    /* the table tiles the data section, which lies inside the input */
    check(d.data_len <= size);
    check(d.ntensors >= 0 && d.ntensors <= BNK__CKPT_MAX_TENSORS);
    uint64_t at = 0;
    for (int i = 0; i < d.ntensors; i++) {
        const bnk__ckpt_tensor *t = &d.tensors[i];
        check(t->begin == at && t->end >= t->begin && t->end - t->begin == 4 * (uint64_t)t->count);
        check(t->ndim >= 0 && t->ndim <= BNK__CKPT_MAX_DIMS && strlen(t->name) < sizeof t->name);
        uint64_t count = 1;
        for (int k = 0; k < t->ndim; k++) {
            check(t->shape[k] >= 0);
            count *= (uint64_t)t->shape[k]; /* cannot wrap: the parser checked the bytes */
        }
        check(count == t->count);
        at = t->end;
    }
    check(at == d.data_len);
    check(d.spec && *d.spec && d.in_c >= 1 && d.in_h >= 1 && d.in_w >= 1 && d.bn_step >= 0);
    check(d.dropout >= 0.0 && d.dropout < 1.0);
    /* build -> parse gives the same description */
    char *text = NULL;
    size_t hlen = 0;
    st = bnk__ckpt_build_header(&d, &text, &hlen);
    check(st == BNK_OK || st == BNK_ERR_NOMEM);
    if (st == BNK_OK) {
        check((8 + hlen) % 8 == 0);
        bnk__ckpt_desc e;
        check(bnk__ckpt_parse_header(&e, text, hlen, d.data_len) == BNK_OK);
        check(e.ntensors == d.ntensors && strcmp(e.spec, d.spec) == 0);
        check(e.in_c == d.in_c && e.in_h == d.in_h && e.in_w == d.in_w);
        check(e.bn_step == d.bn_step && e.seed == d.seed && e.dropout == d.dropout);
        check(e.scaling == d.scaling && e.folded == d.folded);
        check((e.data == NULL) == (d.data == NULL) && (!e.data || !strcmp(e.data, d.data)));
        check(memcmp(&e.bn.mean_clip, &d.bn.mean_clip, sizeof d.bn.mean_clip) == 0);
        check(e.bn.momentum == d.bn.momentum && e.bn.eps == d.bn.eps &&
              e.bn.clip_warmup == d.bn.clip_warmup && e.bn.normalize_with == d.bn.normalize_with);
        for (int i = 0; i < d.ntensors; i++)
            check(strcmp(e.tensors[i].name, d.tensors[i].name) == 0 &&
                  e.tensors[i].begin == d.tensors[i].begin &&
                  e.tensors[i].count == d.tensors[i].count);
        bnk__ckpt_desc_free(&e);
        free(text);
    }
    bnk__ckpt_desc_free(&d);
    check(d.tensors == NULL && d.spec == NULL);
    return 0;
}
