/* Checkpoints (bnkit/checkpoint.h): save -> load round trips (parameters, running statistics,
 * BN step and configuration, metadata, identical inference and training outputs), the byte
 * layout a safetensors reader expects, save errors, and corrupt, truncated and hostile files,
 * each refused with its exact status and a message naming the problem. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bnkit/checkpoint.h"
#include "nn/checkpoint_internal.h"
#include "test_util.h"

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bnk_ckpt_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d) return 0;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(tmpdir);
    return 0;
}

static void path_of(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A model with every tensor random: weights N(0, 0.5^2), gamma in [0.5, 1.5), beta N(0,
 * 0.3^2), running mean N(0, 0.5^2), running var in [0.3, 2.3), and BN step 1234. */
static bnk_model *random_model(const char *spec, int64_t c, int64_t h, int64_t w,
                               const bnk_bn_config *bn, uint64_t seed) {
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = spec;
    mc.in_c = c;
    mc.in_h = h;
    mc.in_w = w;
    mc.max_batch = 16;
    mc.seed = seed;
    mc.dropout = 0.25;
    if (bn) mc.bn = *bn;
    bnk_model *m = NULL;
    assert_int_equal(bnk_model_create(&m, &mc), BNK_OK);
    uint64_t rng = seed * 7 + 1;
    for (int i = 0; i < bnk_model_tensor_count(m); i++) {
        bnk_tensor_info t;
        assert_int_equal(bnk_model_tensor(m, i, &t), BNK_OK);
        for (size_t j = 0; j < t.count; j++) {
            double u = bnk_test_uniform(&rng), z = bnk_test_normal(&rng);
            t.data[j] = strstr(t.name, "gamma")          ? (float)(0.5 + u)
                        : strstr(t.name, "beta")         ? (float)(0.3 * z)
                        : strstr(t.name, "running_var")  ? (float)(0.3 + 2.0 * u)
                        : strstr(t.name, "running_mean") ? (float)(0.5 * z)
                                                         : (float)(0.5 * z);
        }
    }
    bnk_model_set_bn_step(m, 1234);
    return m;
}

static void random_input(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) x[i] = (float)bnk_test_normal(&seed);
}

/* A BN configuration in which every field differs from the default. */
static bnk_bn_config odd_bn_config(void) {
    bnk_bn_config b = bnk_bn_config_default();
    b.momentum = 0.9;
    b.cumulative = true;
    b.eps = 1e-5;
    b.unbiased_running_var = true;
    b.mean_clip = (bnk_range){-3.5, INFINITY};
    b.var_clip = (bnk_range){1e-4, 50.0};
    b.rel_clip_r = 3.0;
    b.rel_clip_d = 5.0;
    b.clip_warmup = 7;
    b.running_mean_clip = (bnk_range){-INFINITY, 10.0};
    b.running_var_clip = (bnk_range){0.01, 100.0};
    b.normalize_with = BNK_NORM_RENORM;
    b.rmax = 2.5;
    b.dmax = 4.0;
    return b;
}

static void assert_bn_config_equal(const bnk_bn_config *a, const bnk_bn_config *b) {
    assert_true(a->momentum == b->momentum && a->eps == b->eps);
    assert_true(a->cumulative == b->cumulative && a->center == b->center && a->scale == b->scale &&
                a->unbiased_running_var == b->unbiased_running_var && a->fuse_relu == b->fuse_relu);
    assert_true(a->mean_clip.lo == b->mean_clip.lo && a->mean_clip.hi == b->mean_clip.hi);
    assert_true(a->var_clip.lo == b->var_clip.lo && a->var_clip.hi == b->var_clip.hi);
    assert_true(a->running_mean_clip.lo == b->running_mean_clip.lo &&
                a->running_mean_clip.hi == b->running_mean_clip.hi);
    assert_true(a->running_var_clip.lo == b->running_var_clip.lo &&
                a->running_var_clip.hi == b->running_var_clip.hi);
    assert_true(a->rel_clip_r == b->rel_clip_r && a->rel_clip_d == b->rel_clip_d);
    assert_true(a->clip_warmup == b->clip_warmup && a->normalize_with == b->normalize_with);
    assert_true(a->rmax == b->rmax && a->dmax == b->dmax);
}

/* Same tensors (names, shapes, bits), configuration, BN step; identical inference logits and,
 * after one training forward each, identical logits and running statistics. */
static void assert_models_identical(bnk_model *a, bnk_model *b, bool train_too) {
    assert_string_equal(bnk_model_spec(a), bnk_model_spec(b));
    const bnk_model_config ca = bnk_model_get_config(a), cb = bnk_model_get_config(b);
    assert_true(ca.in_c == cb.in_c && ca.in_h == cb.in_h && ca.in_w == cb.in_w);
    assert_true(ca.dropout == cb.dropout && ca.seed == cb.seed);
    assert_bn_config_equal(&ca.bn, &cb.bn);
    assert_int_equal(bnk_model_bn_step(a), bnk_model_bn_step(b));
    assert_int_equal(bnk_model_tensor_count(a), bnk_model_tensor_count(b));
    for (int i = 0; i < bnk_model_tensor_count(a); i++) {
        bnk_tensor_info ta, tb;
        bnk_model_tensor(a, i, &ta);
        bnk_model_tensor(b, i, &tb);
        assert_string_equal(ta.name, tb.name);
        assert_int_equal(ta.ndim, tb.ndim);
        assert_memory_equal(ta.shape, tb.shape, sizeof ta.shape[0] * (size_t)ta.ndim);
        assert_int_equal(ta.count, tb.count);
        assert_memory_equal(ta.data, tb.data, ta.count * sizeof(float));
    }
    const size_t in = (size_t)(ca.in_c * ca.in_h * ca.in_w), out = (size_t)bnk_model_num_outputs(a);
    float *x = malloc(8 * in * sizeof(float)), *la = malloc(8 * out * sizeof(float));
    assert_non_null(x);
    assert_non_null(la);
    random_input(x, 8 * in, 99);
    for (int pass = 0; pass < (train_too ? 2 : 1); pass++) {
        assert_int_equal(bnk_model_forward(a, x, 8, pass == 1), BNK_OK);
        memcpy(la, bnk_model_logits(a), 8 * out * sizeof(float));
        assert_int_equal(bnk_model_forward(b, x, 8, pass == 1), BNK_OK);
        assert_memory_equal(la, bnk_model_logits(b), 8 * out * sizeof(float));
    }
    if (train_too) { /* the training step moved the running statistics the same way */
        assert_int_equal(bnk_model_bn_step(a), bnk_model_bn_step(b));
        for (int i = 0; i < bnk_model_tensor_count(a); i++) {
            bnk_tensor_info ta, tb;
            bnk_model_tensor(a, i, &ta);
            bnk_model_tensor(b, i, &tb);
            assert_memory_equal(ta.data, tb.data, ta.count * sizeof(float));
        }
    }
    free(x);
    free(la);
}

static void test_round_trip_mlp(void **state) {
    (void)state;
    const bnk_bn_config bn = odd_bn_config();
    bnk_model *m = random_model("dense:128,relu,bn,dense:10", 1, 28, 28, &bn, 3);
    char path[256];
    path_of(path, sizeof path, "mlp.safetensors");
    bnk_checkpoint_meta meta = {.data = "csv:train \"quoted\".csv", .scaling = BNK_SCALE_NONE};
    assert_int_equal(bnk_checkpoint_save(m, path, &meta), BNK_OK);
    bnk_model *back = NULL;
    bnk_checkpoint_meta got;
    assert_int_equal(bnk_checkpoint_load(&back, path, 16, &got), BNK_OK);
    assert_models_identical(m, back, true);
    assert_string_equal(got.data, "csv:train \"quoted\".csv");
    assert_null(got.test_data);
    assert_int_equal(got.scaling, BNK_SCALE_NONE);
    assert_false(got.folded);
    assert_null(got.input_mean);
    assert_null(got.input_std);
    bnk_checkpoint_meta_free(&got);
    assert_null(got.data);
    bnk_checkpoint_meta_free(NULL); /* harmless */
    /* meta NULL on both sides */
    assert_int_equal(bnk_checkpoint_save(m, path, NULL), BNK_OK);
    bnk_model_destroy(back);
    assert_int_equal(bnk_checkpoint_load(&back, path, 1, NULL), BNK_OK);
    bnk_model_destroy(back);
    bnk_model_destroy(m);
}

static void test_round_trip_cnn_standardize(void **state) {
    (void)state;
    bnk_bn_config bn = bnk_bn_config_default();
    bn.fuse_relu = true;
    bn.center = false;
    bnk_model *m = random_model("conv:4:3,bn,maxpool:2,conv:6:3:1:0,bn,flatten,dense:10,"
                                "dropout,bn,dense:3",
                                2, 9, 9, &bn, 5);
    char path[256];
    path_of(path, sizeof path, "cnn.safetensors");
    float mean[2 * 9 * 9], std[2 * 9 * 9];
    for (int i = 0; i < 2 * 9 * 9; i++) {
        mean[i] = 0.01f * (float)i;
        std[i] = 1.0f + 0.5f * (float)(i % 3);
    }
    bnk_checkpoint_meta meta = {.data = "npy:x.npy,y.npy",
                                .test_data = "npy:tx.npy,ty.npy",
                                .scaling = BNK_SCALE_STANDARDIZE,
                                .input_mean = mean,
                                .input_std = std,
                                .folded = true};
    assert_int_equal(bnk_checkpoint_save(m, path, &meta), BNK_OK);
    bnk_model *back = NULL;
    bnk_checkpoint_meta got;
    assert_int_equal(bnk_checkpoint_load(&back, path, 8, &got), BNK_OK);
    assert_models_identical(m, back, false); /* dropout masks are not part of a checkpoint */
    assert_string_equal(got.data, "npy:x.npy,y.npy");
    assert_string_equal(got.test_data, "npy:tx.npy,ty.npy");
    assert_int_equal(got.scaling, BNK_SCALE_STANDARDIZE);
    assert_true(got.folded);
    assert_memory_equal(got.input_mean, mean, sizeof mean);
    assert_memory_equal(got.input_std, std, sizeof std);
    bnk_checkpoint_meta_free(&got);
    bnk_model_destroy(back);
    bnk_model_destroy(m);
}

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* What a safetensors reader sees: the prefix, a padded JSON header, F32 tensors back to back in
 * model order with PyTorch shapes, string metadata. */
static void test_layout(void **state) {
    (void)state;
    bnk_model *m = random_model("dense:12,relu,bn,dense:3", 1, 2, 3, NULL, 8);
    char path[256];
    path_of(path, sizeof path, "layout.safetensors");
    assert_int_equal(bnk_checkpoint_save(m, path, NULL), BNK_OK);
    size_t len;
    unsigned char *buf = read_all(path, &len);
    const uint64_t n = le64(buf);
    assert_true(n + 8 <= len);
    assert_int_equal((8 + n) % 8, 0);
    assert_int_equal(buf[8], '{');
    json_error_t err;
    json_t *root = json_loadb((const char *)buf + 8, n, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(root);
    json_t *meta = json_object_get(root, "__metadata__");
    const char *keys[] = {"format", "version", "spec", "in_shape", "bn_step", "bn_config"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        assert_true(json_is_string(json_object_get(meta, keys[k])));
    assert_string_equal(json_string_value(json_object_get(meta, "format")), "bnkit");
    assert_string_equal(json_string_value(json_object_get(meta, "spec")),
                        "dense:12,relu,bn,dense:3");
    assert_string_equal(json_string_value(json_object_get(meta, "in_shape")), "1,2,3");
    assert_string_equal(json_string_value(json_object_get(meta, "bn_step")), "1234");
    uint64_t at = 0;
    for (int i = 0; i < bnk_model_tensor_count(m); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(m, i, &t);
        json_t *e = json_object_get(root, t.name);
        assert_non_null(e);
        assert_string_equal(json_string_value(json_object_get(e, "dtype")), "F32");
        json_t *shape = json_object_get(e, "shape"), *offs = json_object_get(e, "data_offsets");
        assert_int_equal(json_array_size(shape), (size_t)t.ndim);
        for (int k = 0; k < t.ndim; k++)
            assert_int_equal(json_integer_value(json_array_get(shape, (size_t)k)), t.shape[k]);
        assert_int_equal(json_integer_value(json_array_get(offs, 0)), at);
        assert_int_equal(json_integer_value(json_array_get(offs, 1)), at + 4 * t.count);
        assert_memory_equal(buf + 8 + n + at, t.data, 4 * t.count); /* little-endian host */
        at += 4 * t.count;
    }
    assert_int_equal(json_object_size(root), (size_t)bnk_model_tensor_count(m) + 1);
    assert_int_equal(8 + n + at, len);
    /* the in-memory parser accepts it and sorts the table by offset */
    bnk__ckpt_desc d;
    assert_int_equal(bnk__ckpt_parse(&d, buf, len), BNK_OK);
    assert_int_equal(d.ntensors, bnk_model_tensor_count(m));
    assert_string_equal(d.tensors[0].name, "0.dense.weight");
    assert_int_equal(d.bn_step, 1234);
    bnk__ckpt_desc_free(&d);
    bnk__ckpt_desc_free(NULL);
    json_decref(root);
    free(buf);
    bnk_model_destroy(m);
}

static int count_temp_files(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

static void test_save_errors(void **state) {
    (void)state;
    bnk_model *m = random_model("dense:4,bn,dense:2", 1, 1, 3, NULL, 1);
    char path[256];
    path_of(path, sizeof path, "save.safetensors");
    assert_int_equal(bnk_checkpoint_save(NULL, path, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk_checkpoint_save(m, NULL, NULL), BNK_ERR_NULL);
    bnk_checkpoint_meta meta = {.scaling = BNK_SCALE_STANDARDIZE};
    assert_int_equal(bnk_checkpoint_save(m, path, &meta), BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "standardize"));
    meta.scaling = (bnk_scaling)7;
    assert_int_equal(bnk_checkpoint_save(m, path, &meta), BNK_ERR_PARAM);
    meta = (bnk_checkpoint_meta){.data = "csv:\xff\xfe.csv"}; /* a file name, not UTF-8 */
    assert_int_equal(bnk_checkpoint_save(m, path, &meta), BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "data is not valid UTF-8"));
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", tmpdir);
    assert_int_equal(bnk_checkpoint_save(m, bad, NULL), BNK_ERR_IO);
    assert_non_null(strstr(bnk_errmsg(), "no/such/dir"));
    /* replacing an existing file: atomic, no temporary left behind */
    write_all(path, "old", 3);
    assert_int_equal(bnk_checkpoint_save(m, path, NULL), BNK_OK);
    assert_int_equal(count_temp_files(), 0);
    bnk_model *back = NULL;
    assert_int_equal(bnk_checkpoint_load(&back, path, 4, NULL), BNK_OK);
    bnk_model_destroy(back);
    bnk_model_destroy(m);
}

static void test_load_io_errors(void **state) {
    (void)state;
    bnk_model *back = (bnk_model *)&back; /* must become NULL */
    bnk_checkpoint_meta meta;
    memset(&meta, 0x5a, sizeof meta); /* must be zeroed */
    char path[256];
    path_of(path, sizeof path, "does-not-exist.safetensors");
    assert_int_equal(bnk_checkpoint_load(&back, path, 4, &meta), BNK_ERR_IO);
    assert_null(back);
    assert_null(meta.data);
    assert_null(meta.input_mean);
    assert_non_null(strstr(bnk_errmsg(), "does-not-exist"));
    assert_int_equal(bnk_checkpoint_load(&back, tmpdir, 4, NULL), BNK_ERR_IO);
    assert_non_null(strstr(bnk_errmsg(), "not a regular file"));
    assert_int_equal(bnk_checkpoint_load(NULL, path, 4, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk_checkpoint_load(&back, NULL, 4, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk_checkpoint_load(&back, path, 0, NULL), BNK_ERR_SIZE);
}

/* ---- Hostile files ------------------------------------------------------------------------- */

/* The valid file every variant starts from: its header (parsed) and data section. */
typedef struct base_file {
    json_t *header;
    unsigned char *data;
    size_t data_len;
} base_file;

static base_file load_base(const char *spec, const bnk_bn_config *bn) {
    bnk_model *m = random_model(spec, 1, 4, 4, bn, 11);
    char path[256];
    path_of(path, sizeof path, "base.safetensors");
    assert_int_equal(bnk_checkpoint_save(m, path, NULL), BNK_OK);
    bnk_model_destroy(m);
    size_t len;
    unsigned char *buf = read_all(path, &len);
    const uint64_t n = le64(buf);
    base_file b;
    json_error_t err;
    b.header = json_loadb((const char *)buf + 8, n, 0, &err);
    assert_non_null(b.header);
    b.data_len = len - 8 - n;
    b.data = malloc(b.data_len + 64);
    memcpy(b.data, buf + 8 + n, b.data_len);
    free(buf);
    return b;
}

/* prefix + header text (padded to 8) + data into path. */
static void write_raw_header(const char *path, const char *text, const void *data, size_t dlen) {
    size_t n = strlen(text), padded = n + (8 - n % 8) % 8;
    unsigned char *buf = calloc(8 + padded + dlen + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, text, n);
    memset(buf + 8 + n, ' ', padded - n);
    if (dlen) memcpy(buf + 8 + padded, data, dlen);
    write_all(path, buf, 8 + padded + dlen);
    free(buf);
}

static void write_variant(const char *path, const json_t *header, const void *data, size_t dlen) {
    char *text = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    write_raw_header(path, text, data, dlen);
    free(text);
}

/* Loads path and checks: status want, a message holding the file name and needle, no model,
 * zeroed meta. */
static void expect_refused(const char *path, bnk_status want, const char *needle) {
    bnk_model *m = NULL;
    bnk_checkpoint_meta meta;
    bnk_status st = bnk_checkpoint_load(&m, path, 4, &meta);
    if (st != want || !strstr(bnk_errmsg(), needle) || !strstr(bnk_errmsg(), path))
        fail_msg("expected status %d with '%s', got %d: %s", (int)want, needle, (int)st,
                 bnk_errmsg());
    assert_null(m);
    assert_null(meta.data);
    assert_null(meta.input_mean);
}

static void set_offsets(json_t *h, const char *name, json_int_t begin, json_int_t end) {
    json_t *e = json_object_get(h, name);
    assert_non_null(e);
    json_object_set_new(e, "data_offsets", json_pack("[I,I]", begin, end));
}

static json_int_t offset_of(const json_t *h, const char *name, int which) {
    return json_integer_value(
        json_array_get(json_object_get(json_object_get(h, name), "data_offsets"), (size_t)which));
}

static void set_meta(json_t *h, const char *key, json_t *value) {
    json_t *meta = json_object_get(h, "__metadata__");
    if (value)
        json_object_set_new(meta, key, value);
    else
        json_object_del(meta, key);
}

static void test_truncated_and_framing(void **state) {
    (void)state;
    base_file b = load_base("dense:6,relu,bn,dense:3", NULL);
    char path[256], good[256];
    path_of(path, sizeof path, "bad.safetensors");
    path_of(good, sizeof good, "good.safetensors");
    write_variant(good, b.header, b.data, b.data_len);
    size_t len;
    unsigned char *buf = read_all(good, &len);
    bnk_model *ok = NULL;
    assert_int_equal(bnk_checkpoint_load(&ok, good, 4, NULL), BNK_OK);
    bnk_model_destroy(ok);
    const uint64_t n = le64(buf);
    const size_t cuts[] = {0, 1, 7};
    for (size_t i = 0; i < 3; i++) {
        write_all(path, buf, cuts[i]);
        expect_refused(path, BNK_ERR_FORMAT, "too short for the 8-byte header length");
    }
    write_all(path, buf, 8);
    expect_refused(path, BNK_ERR_FORMAT, "runs past the end of the file");
    write_all(path, buf, 8 + n / 2);
    expect_refused(path, BNK_ERR_FORMAT, "runs past the end of the file");
    write_all(path, buf, len - 1); /* one byte short of the last tensor */
    expect_refused(path, BNK_ERR_FORMAT, "truncated file?");
    write_all(path, buf, 8 + n); /* header only */
    expect_refused(path, BNK_ERR_FORMAT, "outside the data section");
    unsigned char *longer = malloc(len + 4);
    memcpy(longer, buf, len);
    memset(longer + len, 0, 4);
    write_all(path, longer, len + 4);
    expect_refused(path, BNK_ERR_FORMAT, "bytes after the last tensor");
    /* header lengths: huge, all ones, 0, and 1 */
    const uint64_t lens[] = {(uint64_t)1 << 40, UINT64_MAX, BNK__CKPT_MAX_HEADER + 1ull};
    for (size_t i = 0; i < 3; i++) {
        for (int k = 0; k < 8; k++) longer[k] = (unsigned char)(lens[i] >> (8 * k));
        write_all(path, longer, len);
        expect_refused(path, BNK_ERR_FORMAT, "exceeds the limit");
    }
    memset(longer, 0, 8);
    write_all(path, longer, len);
    expect_refused(path, BNK_ERR_FORMAT, "too small for a JSON object");
    /* a header length that ends inside the JSON: the rest counts as data, the JSON is cut */
    for (int k = 0; k < 8; k++) longer[k] = (unsigned char)((n - 8) >> (8 * k));
    write_all(path, longer, len);
    expect_refused(path, BNK_ERR_FORMAT, "not valid JSON");
    free(longer);
    free(buf);
    json_decref(b.header);
    free(b.data);
}

static void test_hostile_headers(void **state) {
    (void)state;
    base_file b = load_base("dense:6,relu,bn,dense:3", NULL);
    char path[256];
    path_of(path, sizeof path, "bad.safetensors");
    const json_int_t w_end = offset_of(b.header, "0.dense.weight", 1);
    const json_int_t bias_end = offset_of(b.header, "0.dense.bias", 1);

    write_raw_header(path, "{not json", b.data, b.data_len);
    expect_refused(path, BNK_ERR_FORMAT, "not valid JSON");
    write_raw_header(path, "[1, 2, 3]", b.data, b.data_len);
    expect_refused(path, BNK_ERR_FORMAT, "does not start with '{'");
    write_raw_header(path, "{\"a\": 1, \"a\": 2}", b.data, b.data_len);
    expect_refused(path, BNK_ERR_FORMAT, "not valid JSON");
    write_raw_header(path, "{\"x\": {\"dtype\": \"F32\"}}\0  {", b.data, b.data_len);
    expect_refused(path, BNK_ERR_FORMAT, "no __metadata__");
    write_raw_header(path, "{}", "", 0);
    expect_refused(path, BNK_ERR_FORMAT, "no __metadata__");

    json_t *h;
#define VARIANT(edit, want, needle)                                                                \
    do {                                                                                           \
        h = json_deep_copy(b.header);                                                              \
        edit;                                                                                      \
        write_variant(path, h, b.data, b.data_len);                                                \
        expect_refused(path, want, needle);                                                        \
        json_decref(h);                                                                            \
    } while (0)

    /* tensor entries */
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "dtype", json_string("F16")),
            BNK_ERR_FORMAT, "dtype F16 is not supported");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "dtype", json_integer(1)),
            BNK_ERR_FORMAT, "dtype is not a string");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "extra", json_true()),
            BNK_ERR_FORMAT, "unknown field");
    VARIANT(json_object_del(json_object_get(h, "0.dense.bias"), "shape"), BNK_ERR_FORMAT,
            "needs the fields");
    VARIANT(json_object_set_new(h, "0.dense.bias", json_integer(3)), BNK_ERR_FORMAT,
            "not a JSON object");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "shape",
                                json_pack("[i,i,i,i,i]", 1, 1, 1, 1, 6)),
            BNK_ERR_FORMAT, "5 dimensions");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "shape", json_pack("[i]", -6)),
            BNK_ERR_FORMAT, "non-negative integer");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "shape", json_pack("[f]", 6.0)),
            BNK_ERR_FORMAT, "non-negative integer");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "shape",
                                json_pack("[I,I,I]", (json_int_t)1 << 40, (json_int_t)1 << 40,
                                          (json_int_t)1 << 40)),
            BNK_ERR_FORMAT, "overflows");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "shape", json_pack("[i]", 5)),
            BNK_ERR_FORMAT, "needs 20 bytes of F32 but its data_offsets span 24");
    VARIANT(set_offsets(h, "0.dense.bias", -4, 20), BNK_ERR_FORMAT, "not non-negative integers");
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.bias"), "data_offsets",
                                json_pack("[i]", 0)),
            BNK_ERR_FORMAT, "not [begin, end]");
    VARIANT(set_offsets(h, "0.dense.bias", 1 << 30, (1 << 30) + 24), BNK_ERR_FORMAT,
            "outside the data section");
    VARIANT(set_offsets(h, "0.dense.bias", 24, 0), BNK_ERR_FORMAT, "outside the data section");
    /* overlap: the bias moved 4 bytes into the weight */
    VARIANT(set_offsets(h, "0.dense.bias", w_end - 4, bias_end - 4), BNK_ERR_FORMAT, "overlap");
    /* two tensors on the same bytes */
    VARIANT(set_offsets(h, "0.dense.bias", 0, 24), BNK_ERR_FORMAT, "overlap");
    {
        char name[80];
        memset(name, 'n', sizeof name - 1);
        name[sizeof name - 1] = '\0';
        VARIANT(json_object_set(h, name, json_object_get(h, "0.dense.bias")), BNK_ERR_FORMAT,
                "longer than 47 bytes");
    }
    /* model matching */
    VARIANT(json_object_set_new(json_object_get(h, "0.dense.weight"), "shape",
                                json_pack("[i,i]", 16, 6)),
            BNK_ERR_FORMAT, "tensor '0.dense.weight': shape (16, 6) in the file, (6, 16)");
    VARIANT(
        json_object_set_new(json_object_get(h, "0.dense.weight"), "shape", json_pack("[i]", 96)),
        BNK_ERR_FORMAT, "shape (96) in the file, (6, 16)");
    VARIANT(set_meta(h, "spec", json_string("dense:6,relu,bn,dense:4")), BNK_ERR_FORMAT,
            "tensor '3.dense.weight': shape (3, 6) in the file, (4, 6)");
    VARIANT(set_meta(h, "in_shape", json_string("1,4,5")), BNK_ERR_FORMAT,
            "shape (6, 16) in the file, (6, 20)");
    VARIANT(set_meta(h, "spec", json_string("dense:6,relu,dense:3")), BNK_ERR_FORMAT,
            "tensor '2.dense.weight' of the model 'dense:6,relu,dense:3' is missing");
    VARIANT(set_meta(h, "spec", json_string("dense:6,bn,relu,dense:3")), BNK_ERR_FORMAT,
            "tensor '1.bn.gamma' of the model 'dense:6,bn,relu,dense:3' is missing");
    VARIANT(set_meta(h, "scaling", json_string("standardize")), BNK_ERR_FORMAT,
            "tensor 'input.mean' of the model");
    /* a spec far larger than the file: refused before anything is allocated */
    VARIANT(set_meta(h, "spec", json_string("dense:1000000,dense:1000000,dense:10")),
            BNK_ERR_FORMAT, "needs 1000028000010 floats of parameters");
    VARIANT(set_meta(h, "spec", json_string("conv:1000000:9999,dense:10")), BNK_ERR_FORMAT,
            "too many weights");
    VARIANT(set_meta(h, "spec", json_string("dense:6,softmax")), BNK_ERR_FORMAT,
            "describes no valid model: model spec: layer 2 'softmax': unknown layer");
    VARIANT(set_meta(h, "spec", json_string("")), BNK_ERR_FORMAT, "spec is missing");
    /* metadata */
    VARIANT(json_object_set_new(h, "__metadata__", json_array()), BNK_ERR_FORMAT,
            "__metadata__ is not an object");
    VARIANT(set_meta(h, "bn_step", json_integer(5)), BNK_ERR_FORMAT, "\"bn_step\" is not a string");
    VARIANT(set_meta(h, "format", json_string("pytorch")), BNK_ERR_FORMAT,
            "format must be 'bnkit'");
    VARIANT(set_meta(h, "format", NULL), BNK_ERR_FORMAT, "format must be 'bnkit'");
    VARIANT(set_meta(h, "version", json_string("2")), BNK_ERR_FORMAT, "version must be '1'");
    VARIANT(set_meta(h, "spec", NULL), BNK_ERR_FORMAT, "spec is missing");
    VARIANT(set_meta(h, "in_shape", json_string("1,4")), BNK_ERR_FORMAT, "in_shape must be");
    VARIANT(set_meta(h, "in_shape", json_string("1,4,4,")), BNK_ERR_FORMAT, "in_shape must be");
    VARIANT(set_meta(h, "in_shape", json_string("0,4,4")), BNK_ERR_FORMAT, "in_shape must be");
    VARIANT(set_meta(h, "in_shape", json_string("1, 4,4")), BNK_ERR_FORMAT, "in_shape must be");
    VARIANT(set_meta(h, "bn_step", json_string("-1")), BNK_ERR_FORMAT, "bn_step must be");
    VARIANT(set_meta(h, "bn_step", json_string("12x")), BNK_ERR_FORMAT, "bn_step must be");
    VARIANT(set_meta(h, "bn_step", json_string("99999999999999999999")), BNK_ERR_FORMAT,
            "bn_step must be");
    VARIANT(set_meta(h, "dropout", json_string("1.5")), BNK_ERR_FORMAT, "dropout must be");
    VARIANT(set_meta(h, "dropout", json_string("nan")), BNK_ERR_FORMAT, "dropout must be");
    VARIANT(set_meta(h, "seed", json_string("-3")), BNK_ERR_FORMAT, "seed must be");
    VARIANT(set_meta(h, "scaling", json_string("log")), BNK_ERR_FORMAT, "scaling must be");
    VARIANT(set_meta(h, "folded", json_string("yes")), BNK_ERR_FORMAT, "folded must be");
    VARIANT(set_meta(h, "bn_config", NULL), BNK_ERR_FORMAT, "bn_config is missing");
    VARIANT(set_meta(h, "bn_config", json_string("[1]")), BNK_ERR_FORMAT,
            "bn_config is not a JSON object");
    VARIANT(set_meta(h, "bn_config", json_string("{\"momentum\": 0.9")), BNK_ERR_FORMAT,
            "bn_config is not a JSON object");
    {
        json_error_t err;
        json_t *cfg = json_loads(json_string_value(json_object_get(
                                     json_object_get(b.header, "__metadata__"), "bn_config")),
                                 0, &err);
        assert_non_null(cfg);
        json_t *c2;
#define BN_VARIANT(edit, needle)                                                                   \
    do {                                                                                           \
        c2 = json_deep_copy(cfg);                                                                  \
        edit;                                                                                      \
        char *s = json_dumps(c2, JSON_COMPACT);                                                    \
        VARIANT(set_meta(h, "bn_config", json_string(s)), BNK_ERR_FORMAT, needle);                 \
        free(s);                                                                                   \
        json_decref(c2);                                                                           \
    } while (0)
        BN_VARIANT(json_object_del(c2, "eps"), "\"eps\" is missing");
        BN_VARIANT(json_object_set_new(c2, "gamma", json_true()), "\"gamma\" is not a BN");
        BN_VARIANT(json_object_set_new(c2, "eps", json_string("tiny")), "\"eps\" must be a number");
        BN_VARIANT(json_object_set_new(c2, "eps", json_string("nan")), "\"eps\" must be a number");
        BN_VARIANT(json_object_set_new(c2, "center", json_integer(1)),
                   "\"center\" must be true or false");
        BN_VARIANT(json_object_set_new(c2, "clip_warmup", json_real(1.5)),
                   "\"clip_warmup\" must be an integer");
        BN_VARIANT(json_object_set_new(c2, "mean_clip", json_pack("[f]", 1.0)),
                   "\"mean_clip\" must be [lo, hi]");
        BN_VARIANT(json_object_set_new(c2, "normalize_with", json_string("group")),
                   "\"normalize_with\" must be");
        /* well-formed but invalid hyperparameters: bnk_bn_config_validate's message */
        BN_VARIANT(json_object_set_new(c2, "momentum", json_real(1.5)), "momentum");
        BN_VARIANT(json_object_set_new(c2, "eps", json_real(0.0)), "eps");
#undef BN_VARIANT
        json_decref(cfg);
    }
    /* extra and missing tensors (with their bytes added or removed, so the framing holds) */
    {
        h = json_deep_copy(b.header);
        json_object_set_new(h, "9.dense.extra",
                            json_pack("{s:s, s:[i], s:[I,I]}", "dtype", "F32", "shape", 1,
                                      "data_offsets", (json_int_t)b.data_len,
                                      (json_int_t)b.data_len + 4));
        memset(b.data + b.data_len, 0, 4);
        write_variant(path, h, b.data, b.data_len + 4);
        expect_refused(path, BNK_ERR_FORMAT, "tensor '9.dense.extra' is not part of the model");
        json_object_set_new(h, "9.dense.extra",
                            json_pack("{s:s, s:[i], s:[I,I]}", "dtype", "F32", "shape", 1,
                                      "data_offsets", (json_int_t)b.data_len + 4,
                                      (json_int_t)b.data_len + 8));
        memset(b.data + b.data_len, 0, 8);
        write_variant(path, h, b.data, b.data_len + 8);
        expect_refused(path, BNK_ERR_FORMAT, "belong to no tensor");
        json_decref(h);
        h = json_deep_copy(b.header);
        const json_int_t last = offset_of(h, "3.dense.bias", 0);
        json_object_del(h, "3.dense.bias");
        write_variant(path, h, b.data, (size_t)last);
        expect_refused(path, BNK_ERR_FORMAT, "tensor '3.dense.bias' of the model");
        json_decref(h);
    }
    /* values */
    {
        const json_int_t var = offset_of(b.header, "2.bn.running_var", 0);
        unsigned char *d = malloc(b.data_len);
        const float nan = NAN, neg = -1.0f, inf = INFINITY;
        memcpy(d, b.data, b.data_len);
        memcpy(d + 8, &nan, 4);
        write_variant(path, b.header, d, b.data_len);
        expect_refused(path, BNK_ERR_FORMAT, "tensor '0.dense.weight': element 2 is nan");
        memcpy(d, b.data, b.data_len);
        memcpy(d + bias_end - 4, &inf, 4);
        write_variant(path, b.header, d, b.data_len);
        expect_refused(path, BNK_ERR_FORMAT, "tensor '0.dense.bias': element 5 is inf");
        memcpy(d, b.data, b.data_len);
        memcpy(d + var + 4, &neg, 4);
        write_variant(path, b.header, d, b.data_len);
        expect_refused(path, BNK_ERR_FORMAT, "'2.bn.running_var': element 1 is -1 (must be >= 0)");
        free(d);
    }
#undef VARIANT
    json_decref(b.header);
    free(b.data);
}

/* Input statistics belong to standardize checkpoints only, and they are checked. */
static void test_input_stats(void **state) {
    (void)state;
    bnk_model *m = random_model("dense:4,relu,dense:2", 1, 1, 2, NULL, 4);
    const float mean[2] = {0.5f, -0.5f}, std[2] = {1.0f, 2.0f};
    const bnk_checkpoint_meta meta = {
        .scaling = BNK_SCALE_STANDARDIZE, .input_mean = mean, .input_std = std};
    char path[256];
    path_of(path, sizeof path, "stats.safetensors");
    assert_int_equal(bnk_checkpoint_save(m, path, &meta), BNK_OK);
    bnk_model_destroy(m);
    size_t len;
    unsigned char *buf = read_all(path, &len);
    const uint64_t n = le64(buf);
    json_error_t err;
    json_t *h = json_loadb((const char *)buf + 8, n, 0, &err);
    assert_non_null(h);
    set_meta(h, "scaling", json_string("unit"));
    write_variant(path, h, buf + 8 + n, len - 8 - n);
    expect_refused(path, BNK_ERR_FORMAT,
                   "tensor 'input.mean' is not part of the model 'dense:4,relu,dense:2' (input "
                   "statistics need scaling 'standardize')");
    set_meta(h, "scaling", json_string("standardize"));
    unsigned char *data = malloc(len - 8 - n);
    memcpy(data, buf + 8 + n, len - 8 - n);
    memset(data + offset_of(h, "input.std", 0), 0, 4); /* a zero deviation */
    write_variant(path, h, data, len - 8 - n);
    expect_refused(path, BNK_ERR_FORMAT, "tensor 'input.std': element 0 is 0 (must be > 0)");
    free(data);
    json_decref(h);
    free(buf);
}

/* A file written by another tool with only the required metadata loads, with the defaults. */
static void test_minimal_foreign_file(void **state) {
    (void)state;
    char path[256];
    path_of(path, sizeof path, "foreign.safetensors");
    const float data[4 + 2] = {1, 2, 3, 4, 0.5f, -0.5f};
    write_raw_header(path,
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                     "\"0.dense.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":"
                     "[0,16]},\"__metadata__\":{\"format\":\"bnkit\",\"version\":\"1\","
                     "\"spec\":\"dense:2\",\"in_shape\":\"2,1,1\",\"bn_config\":"
                     "\"{\\\"momentum\\\":0.99,\\\"cumulative\\\":false,\\\"eps\\\":0.001,"
                     "\\\"center\\\":true,\\\"scale\\\":true,\\\"unbiased_running_var\\\":false,"
                     "\\\"mean_clip\\\":[\\\"-inf\\\",\\\"inf\\\"],\\\"var_clip\\\":[0,"
                     "\\\"inf\\\"],\\\"rel_clip_r\\\":\\\"inf\\\",\\\"rel_clip_d\\\":\\\"inf\\\","
                     "\\\"clip_warmup\\\":0,\\\"running_mean_clip\\\":[\\\"-inf\\\",\\\"inf\\\"],"
                     "\\\"running_var_clip\\\":[0,\\\"inf\\\"],\\\"normalize_with\\\":"
                     "\\\"batch\\\",\\\"rmax\\\":3,\\\"dmax\\\":5,\\\"fuse_relu\\\":false}\","
                     "\"note\":\"written by hand\"}}",
                     data, sizeof data);
    expect_refused(path, BNK_ERR_FORMAT, "tensor '0.dense.bias' of the model 'dense:2' is missing");
    write_raw_header(path,
                     "{\"0.dense.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                     "\"0.dense.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":"
                     "[0,16]},\"__metadata__\":{\"format\":\"bnkit\",\"version\":\"1\","
                     "\"spec\":\"dense:2\",\"in_shape\":\"2,1,1\",\"bn_config\":"
                     "\"{\\\"momentum\\\":0.99,\\\"cumulative\\\":false,\\\"eps\\\":0.001,"
                     "\\\"center\\\":true,\\\"scale\\\":true,\\\"unbiased_running_var\\\":false,"
                     "\\\"mean_clip\\\":[\\\"-inf\\\",\\\"inf\\\"],\\\"var_clip\\\":[0,"
                     "\\\"inf\\\"],\\\"rel_clip_r\\\":\\\"inf\\\",\\\"rel_clip_d\\\":\\\"inf\\\","
                     "\\\"clip_warmup\\\":0,\\\"running_mean_clip\\\":[\\\"-inf\\\",\\\"inf\\\"],"
                     "\\\"running_var_clip\\\":[0,\\\"inf\\\"],\\\"normalize_with\\\":"
                     "\\\"batch\\\",\\\"rmax\\\":3,\\\"dmax\\\":5,\\\"fuse_relu\\\":false}\","
                     "\"note\":\"written by hand\"}}",
                     data, sizeof data);
    bnk_model *m = NULL;
    bnk_checkpoint_meta meta;
    assert_int_equal(bnk_checkpoint_load(&m, path, 2, &meta), BNK_OK);
    assert_int_equal(bnk_model_bn_step(m), 0);
    assert_int_equal(meta.scaling, BNK_SCALE_UNIT);
    const float x[2] = {1.0f, -1.0f};
    assert_int_equal(bnk_model_forward(m, x, 1, false), BNK_OK);
    const double want[2] = {1 - 2 + 0.5, 3 - 4 - 0.5}; /* W (2,2) row-major, + b */
    bnk_test_close_f32("logits", bnk_model_logits(m), want, 2, 1e-6, 1e-6);
    bnk_checkpoint_meta_free(&meta);
    bnk_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_mlp),  cmocka_unit_test(test_round_trip_cnn_standardize),
        cmocka_unit_test(test_layout),          cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_load_io_errors),  cmocka_unit_test(test_truncated_and_framing),
        cmocka_unit_test(test_hostile_headers), cmocka_unit_test(test_minimal_foreign_file),
        cmocka_unit_test(test_input_stats),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
