/* The safetensors header of a bnkit checkpoint, in memory: a strict parser and the builder.
 *
 * Header (the format is described in include/bnkit/checkpoint.h):
 *
 *     {"__metadata__": {"format": "bnkit", "version": "1", "spec": "...", ...},
 *      "0.dense.weight": {"dtype": "F32", "shape": [128, 784], "data_offsets": [0, 401408]},
 *      ...}
 *
 * The parser trusts nothing: the JSON is parsed by jansson with duplicate keys refused, every
 * tensor entry must have exactly the three fields, every number is range-checked before it is
 * used in arithmetic, and the offsets must tile the data section exactly (sorted, no overlap,
 * no gap, nothing after the last tensor), as the safetensors reference implementation demands.
 * Metadata are decoded here too (numbers with strtoll/strtod and end-pointer checks), so every
 * byte of an untrusted file that is not tensor data goes through this file, which needs no
 * model and no file and is what tests/fuzz/ckpt_fuzz.c exercises. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "nn/checkpoint_internal.h"

#define CKPT_MAX_SPEC 8192 /* 64 layers of at most 63 characters, with commas */

void bnk__ckpt_desc_free(bnk__ckpt_desc *d) {
    if (!d) return;
    free(d->spec);
    free(d->data);
    free(d->test_data);
    free(d->tensors);
    memset(d, 0, sizeof *d);
}

bnk_status bnk__ckpt_prefix(const unsigned char *p, uint64_t file_size, uint64_t *hlen) {
    if (file_size < 8)
        return bnk__fail(BNK_ERR_FORMAT,
                         "truncated: %" PRIu64 " bytes, too short for the 8-byte header length",
                         file_size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    if (n < 2)
        return bnk__fail(BNK_ERR_FORMAT, "header length %" PRIu64 " is too small for a JSON object",
                         n);
    if (n > BNK__CKPT_MAX_HEADER)
        return bnk__fail(BNK_ERR_FORMAT,
                         "header length %" PRIu64 " exceeds the limit of %u bytes (not a "
                         "safetensors file?)",
                         n, BNK__CKPT_MAX_HEADER);
    if (n > file_size - 8)
        return bnk__fail(BNK_ERR_FORMAT,
                         "truncated: header length %" PRIu64
                         " runs past the end of the file (%" PRIu64 " bytes follow the length)",
                         n, file_size - 8);
    *hlen = n;
    return BNK_OK;
}

/* ---- Numbers in metadata strings ----------------------------------------------------------- */

static bool parse_i64(const char *s, int64_t *out) {
    if (!*s || *s == ' ' || *s == '+' || *s == '\t') return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_f64(const char *s, double *out) {
    if (!*s || *s == ' ' || *s == '\t') return false;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* "C,H,W" with three integers in [1, 2^20]. */
static bool parse_shape3(const char *s, int64_t *c, int64_t *h, int64_t *w) {
    char buf[96];
    if (strlen(s) >= sizeof buf) return false;
    strcpy(buf, s);
    int64_t v[3];
    char *p = buf;
    for (int i = 0; i < 3; i++) {
        char *comma = strchr(p, ',');
        if ((i < 2) != (comma != NULL)) return false;
        if (comma) *comma = '\0';
        if (!parse_i64(p, &v[i]) || v[i] < 1 || v[i] > (1 << 20)) return false;
        p = comma ? comma + 1 : p;
    }
    *c = v[0];
    *h = v[1];
    *w = v[2];
    return true;
}

/* ---- bn_config as JSON --------------------------------------------------------------------- */

typedef enum bn_field_type { BNF_REAL, BNF_BOOL, BNF_INT, BNF_RANGE, BNF_NORM } bn_field_type;

static const struct bn_field {
    const char *name;
    bn_field_type type;
    size_t offset;
} BN_FIELDS[] = {
    {"momentum", BNF_REAL, offsetof(bnk_bn_config, momentum)},
    {"cumulative", BNF_BOOL, offsetof(bnk_bn_config, cumulative)},
    {"eps", BNF_REAL, offsetof(bnk_bn_config, eps)},
    {"center", BNF_BOOL, offsetof(bnk_bn_config, center)},
    {"scale", BNF_BOOL, offsetof(bnk_bn_config, scale)},
    {"unbiased_running_var", BNF_BOOL, offsetof(bnk_bn_config, unbiased_running_var)},
    {"mean_clip", BNF_RANGE, offsetof(bnk_bn_config, mean_clip)},
    {"var_clip", BNF_RANGE, offsetof(bnk_bn_config, var_clip)},
    {"rel_clip_r", BNF_REAL, offsetof(bnk_bn_config, rel_clip_r)},
    {"rel_clip_d", BNF_REAL, offsetof(bnk_bn_config, rel_clip_d)},
    {"clip_warmup", BNF_INT, offsetof(bnk_bn_config, clip_warmup)},
    {"running_mean_clip", BNF_RANGE, offsetof(bnk_bn_config, running_mean_clip)},
    {"running_var_clip", BNF_RANGE, offsetof(bnk_bn_config, running_var_clip)},
    {"normalize_with", BNF_NORM, offsetof(bnk_bn_config, normalize_with)},
    {"rmax", BNF_REAL, offsetof(bnk_bn_config, rmax)},
    {"dmax", BNF_REAL, offsetof(bnk_bn_config, dmax)},
    {"fuse_relu", BNF_BOOL, offsetof(bnk_bn_config, fuse_relu)},
};
enum { N_BN_FIELDS = sizeof BN_FIELDS / sizeof BN_FIELDS[0] };
static const char *const NORM_NAMES[] = {"batch", "running", "renorm"};

/* A double as JSON: a number, or "inf" / "-inf" (JSON has no infinities). NaN never occurs in
 * a validated configuration; it is written as "nan" and refused when read. */
static json_t *real_json(double v) {
    if (isfinite(v)) return json_real(v);
    return json_string(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

static bool real_from_json(const json_t *j, double *out) {
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return isfinite(*out);
    }
    const char *s = json_string_value(j);
    if (!s) return false;
    if (strcmp(s, "inf") == 0)
        *out = INFINITY;
    else if (strcmp(s, "-inf") == 0)
        *out = -INFINITY;
    else
        return false;
    return true;
}

static char *bn_to_json(const bnk_bn_config *cfg) {
    json_t *o = json_object();
    bool ok = o != NULL;
    for (int i = 0; ok && i < N_BN_FIELDS; i++) {
        const void *f = (const char *)cfg + BN_FIELDS[i].offset;
        json_t *v = NULL;
        switch (BN_FIELDS[i].type) {
        case BNF_REAL:
            v = real_json(*(const double *)f);
            break;
        case BNF_BOOL:
            v = json_boolean(*(const bool *)f);
            break;
        case BNF_INT:
            v = json_integer((json_int_t) * (const int64_t *)f);
            break;
        case BNF_RANGE: {
            const bnk_range *r = f;
            v = json_pack("[oo]", real_json(r->lo), real_json(r->hi));
            break;
        }
        case BNF_NORM: {
            int k = (int)*(const bnk_bn_norm *)f;
            v = json_string(k >= 0 && k < 3 ? NORM_NAMES[k] : "?");
            break;
        }
        }
        ok = v && json_object_set_new(o, BN_FIELDS[i].name, v) == 0;
    }
    char *s =
        ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    return s;
}

static bnk_status bn_fail(const char *key, const char *what) {
    return bnk__fail(BNK_ERR_FORMAT, "__metadata__ bn_config: \"%.40s\" %s", key, what);
}

static bnk_status bn_from_json(const char *text, bnk_bn_config *cfg) {
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return bnk__fail(BNK_ERR_FORMAT, "__metadata__ bn_config is not a JSON object%s%.100s",
                         o ? "" : ": ", o ? "" : err.text);
    }
    bnk_status st = BNK_OK;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int i = 0;
        while (i < N_BN_FIELDS && strcmp(BN_FIELDS[i].name, key) != 0) i++;
        if (i == N_BN_FIELDS) {
            st = bn_fail(key, "is not a BN hyperparameter");
            break;
        }
    }
    for (int i = 0; st == BNK_OK && i < N_BN_FIELDS; i++) {
        const char *name = BN_FIELDS[i].name;
        void *f = (char *)cfg + BN_FIELDS[i].offset;
        v = json_object_get(o, name);
        if (!v) {
            st = bn_fail(name, "is missing");
            break;
        }
        switch (BN_FIELDS[i].type) {
        case BNF_REAL:
            if (!real_from_json(v, f)) st = bn_fail(name, "must be a number, \"inf\" or \"-inf\"");
            break;
        case BNF_BOOL:
            if (!json_is_boolean(v))
                st = bn_fail(name, "must be true or false");
            else
                *(bool *)f = json_is_true(v);
            break;
        case BNF_INT:
            if (!json_is_integer(v))
                st = bn_fail(name, "must be an integer");
            else
                *(int64_t *)f = (int64_t)json_integer_value(v);
            break;
        case BNF_RANGE: {
            bnk_range *r = f;
            if (!json_is_array(v) || json_array_size(v) != 2 ||
                !real_from_json(json_array_get(v, 0), &r->lo) ||
                !real_from_json(json_array_get(v, 1), &r->hi))
                st = bn_fail(name, "must be [lo, hi]");
            break;
        }
        case BNF_NORM: {
            const char *s = json_string_value(v);
            int k = 0;
            while (s && k < 3 && strcmp(s, NORM_NAMES[k]) != 0) k++;
            if (!s || k == 3)
                st = bn_fail(name, "must be \"batch\", \"running\" or \"renorm\"");
            else
                *(bnk_bn_norm *)f = (bnk_bn_norm)k;
            break;
        }
        }
    }
    json_decref(o);
    return st;
}

/* ---- Parsing ------------------------------------------------------------------------------- */

static bnk_status tensor_fail(const char *name, const char *what) {
    return bnk__fail(BNK_ERR_FORMAT, "tensor '%.60s': %s", name, what);
}

/* Byte offset as JSON: a non-negative integer. */
static bool offset_from_json(const json_t *j, uint64_t *out) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return false;
    *out = (uint64_t)json_integer_value(j);
    return true;
}

static bnk_status parse_tensor(const char *name, const json_t *v, uint64_t data_len,
                               bnk__ckpt_tensor *t) {
    if (strlen(name) >= BNK__CKPT_NAME_MAX)
        return bnk__fail(BNK_ERR_FORMAT, "tensor name '%.40s...' is longer than %d bytes", name,
                         BNK__CKPT_NAME_MAX - 1);
    strcpy(t->name, name);
    if (!json_is_object(v)) return tensor_fail(name, "entry is not a JSON object");
    const char *key;
    json_t *f;
    json_object_foreach((json_t *)v, key, f) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return bnk__fail(BNK_ERR_FORMAT,
                             "tensor '%.60s': unknown field \"%.40s\" (expected dtype, shape, "
                             "data_offsets)",
                             name, key);
    }
    const json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *offs = json_object_get(v, "data_offsets");
    if (!dtype || !shape || !offs)
        return tensor_fail(name, "needs the fields dtype, shape and data_offsets");
    if (!json_is_string(dtype)) return tensor_fail(name, "dtype is not a string");
    if (strcmp(json_string_value(dtype), "F32") != 0)
        return bnk__fail(BNK_ERR_FORMAT,
                         "tensor '%.60s': dtype %.20s is not supported (bnkit checkpoints hold "
                         "F32)",
                         name, json_string_value(dtype));
    if (!json_is_array(shape)) return tensor_fail(name, "shape is not an array");
    if (json_array_size(shape) > BNK__CKPT_MAX_DIMS)
        return bnk__fail(BNK_ERR_FORMAT, "tensor '%.60s': %zu dimensions (bnkit has at most %d)",
                         name, json_array_size(shape), BNK__CKPT_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t bytes = 4;
    for (int i = 0; i < t->ndim; i++) {
        const json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return tensor_fail(name, "shape holds something other than a non-negative integer");
        uint64_t n = (uint64_t)json_integer_value(d);
        t->shape[i] = (int64_t)n;
        if (n && bytes > UINT64_MAX / n) return tensor_fail(name, "shape's byte size overflows");
        bytes *= n;
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return tensor_fail(name, "data_offsets is not [begin, end]");
    if (!offset_from_json(json_array_get(offs, 0), &t->begin) ||
        !offset_from_json(json_array_get(offs, 1), &t->end))
        return tensor_fail(name, "data_offsets are not non-negative integers");
    if (t->begin > t->end || t->end > data_len)
        return bnk__fail(BNK_ERR_FORMAT,
                         "tensor '%.60s': data_offsets [%" PRIu64 ", %" PRIu64
                         "] are outside the data section of %" PRIu64 " bytes (truncated file?)",
                         name, t->begin, t->end, data_len);
    if (t->end - t->begin != bytes)
        return bnk__fail(BNK_ERR_FORMAT,
                         "tensor '%.60s': its shape needs %" PRIu64 " bytes of F32 but its "
                         "data_offsets span %" PRIu64,
                         name, bytes, t->end - t->begin);
    t->count = (size_t)(bytes / 4); /* <= data_len / 4: fits */
    return BNK_OK;
}

static int tensor_cmp(const void *a, const void *b) {
    const bnk__ckpt_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Sorted by offset, the tensors must tile [0, data_len) exactly. */
static bnk_status check_tiling(const bnk__ckpt_desc *d) {
    uint64_t at = 0;
    for (int i = 0; i < d->ntensors; i++) {
        const bnk__ckpt_tensor *t = &d->tensors[i];
        if (t->begin < at)
            return bnk__fail(BNK_ERR_FORMAT,
                             "tensors '%.60s' and '%.60s' overlap (data_offsets [%" PRIu64
                             ", ...) and [..., %" PRIu64 "))",
                             d->tensors[i - 1].name, t->name, t->begin, at);
        if (t->begin > at)
            return bnk__fail(BNK_ERR_FORMAT,
                             "bytes %" PRIu64 "..%" PRIu64
                             " of the data section belong to no tensor (a gap before '%.60s')",
                             at, t->begin, t->name);
        at = t->end;
    }
    if (at != d->data_len)
        return bnk__fail(BNK_ERR_FORMAT,
                         "the data section has %" PRIu64 " bytes after the last tensor "
                         "(%" PRIu64 " bytes, tensors end at %" PRIu64 ")",
                         d->data_len - at, d->data_len, at);
    return BNK_OK;
}

static bnk_status meta_fail(const char *key, const char *what, const char *value) {
    return bnk__fail(BNK_ERR_FORMAT, "__metadata__ %s %s%s%.60s%s", key, what,
                     value ? " (got '" : "", value ? value : "", value ? "')" : "");
}

static bnk_status parse_metadata(bnk__ckpt_desc *d, const json_t *meta) {
    if (!json_is_object(meta)) return bnk__fail(BNK_ERR_FORMAT, "__metadata__ is not an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v))
            return bnk__fail(BNK_ERR_FORMAT,
                             "__metadata__ \"%.40s\" is not a string (safetensors metadata "
                             "values are strings)",
                             key);
    }
#define META(k) json_string_value(json_object_get(meta, k))
    const char *s = META("format");
    if (!s || strcmp(s, BNK__CKPT_FORMAT) != 0)
        return meta_fail("format", "must be '" BNK__CKPT_FORMAT "' (not a bnkit checkpoint)", s);
    s = META("version");
    if (!s || strcmp(s, BNK__CKPT_VERSION) != 0)
        return meta_fail("version", "must be '" BNK__CKPT_VERSION "' (this bnkit reads version 1)",
                         s);
    s = META("spec");
    if (!s || !*s) return meta_fail("spec", "is missing", NULL);
    if (strlen(s) > CKPT_MAX_SPEC) return meta_fail("spec", "is too long", NULL);
    if (!(d->spec = strdup(s))) return bnk__fail(BNK_ERR_NOMEM, "cannot copy the spec");
    s = META("in_shape");
    if (!s) return meta_fail("in_shape", "is missing", NULL);
    if (!parse_shape3(s, &d->in_c, &d->in_h, &d->in_w))
        return meta_fail("in_shape", "must be 'C,H,W' with integers in [1, 2^20]", s);
    d->bn = (bnk_bn_config){0};
    s = META("bn_config");
    if (!s) return meta_fail("bn_config", "is missing", NULL);
    bnk_status st = bn_from_json(s, &d->bn);
    if (st != BNK_OK) return st;
    d->bn_step = 0;
    if ((s = META("bn_step")) && (!parse_i64(s, &d->bn_step) || d->bn_step < 0))
        return meta_fail("bn_step", "must be an integer >= 0", s);
    d->dropout = 0.5;
    if ((s = META("dropout")) && (!parse_f64(s, &d->dropout) || d->dropout < 0 || d->dropout >= 1))
        return meta_fail("dropout", "must be a number in [0, 1)", s);
    int64_t seed = 0;
    if ((s = META("seed"))) {
        errno = 0;
        char *end;
        unsigned long long u = strtoull(s, &end, 10);
        if (!*s || *s == '-' || *s == ' ' || *s == '+' || *end || errno)
            return meta_fail("seed", "must be an integer in [0, 2^64)", s);
        seed = (int64_t)u;
    }
    d->seed = (uint64_t)seed;
    if (((s = META("data")) && !(d->data = strdup(s))) ||
        ((s = META("test_data")) && !(d->test_data = strdup(s))))
        return bnk__fail(BNK_ERR_NOMEM, "cannot copy the data spec");
    d->scaling = BNK_SCALE_UNIT;
    if ((s = META("scaling"))) {
        if (strcmp(s, "none") == 0)
            d->scaling = BNK_SCALE_NONE;
        else if (strcmp(s, "unit") == 0)
            d->scaling = BNK_SCALE_UNIT;
        else if (strcmp(s, "standardize") == 0)
            d->scaling = BNK_SCALE_STANDARDIZE;
        else
            return meta_fail("scaling", "must be 'none', 'unit' or 'standardize'", s);
    }
    d->folded = false;
    if ((s = META("folded"))) {
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
            return meta_fail("folded", "must be 'true' or 'false'", s);
        d->folded = strcmp(s, "true") == 0;
    }
#undef META
    return BNK_OK;
}

static bnk_status parse_root(bnk__ckpt_desc *d, const json_t *root) {
    if (!json_is_object(root)) return bnk__fail(BNK_ERR_FORMAT, "header is not a JSON object");
    const json_t *meta = json_object_get(root, "__metadata__");
    if (!meta)
        return bnk__fail(BNK_ERR_FORMAT,
                         "header has no __metadata__ (a safetensors file, but not a bnkit "
                         "checkpoint)");
    size_t n = json_object_size(root) - 1;
    if (n > BNK__CKPT_MAX_TENSORS)
        return bnk__fail(BNK_ERR_FORMAT, "header lists %zu tensors (at most %d)", n,
                         BNK__CKPT_MAX_TENSORS);
    d->tensors = calloc(n ? n : 1, sizeof *d->tensors);
    if (!d->tensors) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate the tensor table");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        bnk_status st = parse_tensor(key, v, d->data_len, &d->tensors[d->ntensors]);
        if (st != BNK_OK) return st;
        d->ntensors++;
    }
    qsort(d->tensors, (size_t)d->ntensors, sizeof *d->tensors, tensor_cmp);
    bnk_status st = check_tiling(d);
    return st == BNK_OK ? parse_metadata(d, meta) : st;
}

bnk_status bnk__ckpt_parse_header(bnk__ckpt_desc *d, const char *text, size_t hlen,
                                  uint64_t data_len) {
    memset(d, 0, sizeof *d);
    d->data_len = data_len;
    if (hlen == 0 || text[0] != '{')
        return bnk__fail(BNK_ERR_FORMAT, "header does not start with '{' (not a safetensors "
                                         "file)");
    json_error_t err;
    json_t *root = json_loadb(text, hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return bnk__fail(BNK_ERR_FORMAT, "header is not valid JSON: %.120s (byte %d)", err.text,
                         err.position);
    bnk_status st = parse_root(d, root);
    json_decref(root);
    if (st != BNK_OK) bnk__ckpt_desc_free(d);
    return st;
}

bnk_status bnk__ckpt_parse(bnk__ckpt_desc *d, const void *buf, size_t len) {
    memset(d, 0, sizeof *d);
    uint64_t hlen = 0;
    bnk_status st = bnk__ckpt_prefix(buf, len, &hlen);
    if (st != BNK_OK) return st;
    return bnk__ckpt_parse_header(d, (const char *)buf + 8, (size_t)hlen, len - 8 - hlen);
}

/* ---- Building ------------------------------------------------------------------------------ */

static bool set_str(json_t *o, const char *key, const char *value) {
    return json_object_set_new(o, key, json_string(value)) == 0;
}

/* JSON strings must be UTF-8; file names need not be. */
static bool is_utf8(const char *s) {
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

bnk_status bnk__ckpt_build_header(const bnk__ckpt_desc *d, char **text, size_t *hlen) {
    *text = NULL;
    *hlen = 0;
    const char *const strings[3][2] = {
        {"spec", d->spec}, {"data", d->data}, {"test_data", d->test_data}};
    for (int i = 0; i < 3; i++)
        if (strings[i][1] && !is_utf8(strings[i][1]))
            return bnk__fail(BNK_ERR_PARAM, "checkpoint metadata: %s is not valid UTF-8",
                             strings[i][0]);
    static const char *const SCALING[] = {"none", "unit", "standardize"};
    char num[3][64];
    snprintf(num[0], sizeof num[0], "%" PRId64 ",%" PRId64 ",%" PRId64, d->in_c, d->in_h, d->in_w);
    snprintf(num[1], sizeof num[1], "%" PRId64, d->bn_step);
    snprintf(num[2], sizeof num[2], "%.17g", d->dropout);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, d->seed);
    char *bn = bn_to_json(&d->bn);
    json_t *root = json_object(), *meta = json_object();
    bool ok = bn && root && meta && set_str(meta, "format", BNK__CKPT_FORMAT) &&
              set_str(meta, "version", BNK__CKPT_VERSION) && set_str(meta, "spec", d->spec) &&
              set_str(meta, "in_shape", num[0]) && set_str(meta, "bn_step", num[1]) &&
              set_str(meta, "bn_config", bn) && set_str(meta, "dropout", num[2]) &&
              set_str(meta, "seed", seed) &&
              set_str(meta, "scaling", SCALING[(int)d->scaling % 3]) &&
              set_str(meta, "folded", d->folded ? "true" : "false") &&
              (!d->data || set_str(meta, "data", d->data)) &&
              (!d->test_data || set_str(meta, "test_data", d->test_data));
    free(bn);
    ok = ok && json_object_set(root, "__metadata__", meta) == 0;
    for (int i = 0; ok && i < d->ntensors; i++) {
        const bnk__ckpt_tensor *t = &d->tensors[i];
        json_t *shape = json_array();
        for (int k = 0; shape && k < t->ndim; k++)
            if (json_array_append_new(shape, json_integer((json_int_t)t->shape[k])) != 0) {
                json_decref(shape);
                shape = NULL;
            }
        json_t *e = shape ? json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)t->begin, (json_int_t)t->end)
                          : NULL;
        ok = e && json_object_set_new(root, t->name, e) == 0;
    }
    char *s = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(meta);
    json_decref(root);
    if (!s) return bnk__fail(BNK_ERR_NOMEM, "cannot build the checkpoint header");
    size_t n = strlen(s), padded = n + (8 - (8 + n) % 8) % 8;
    char *out = realloc(s, padded + 1);
    if (!out) {
        free(s);
        return bnk__fail(BNK_ERR_NOMEM, "cannot build the checkpoint header");
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *text = out;
    *hlen = padded;
    return BNK_OK;
}
