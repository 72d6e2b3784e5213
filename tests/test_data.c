/* Tests for the data-set readers (include/bnkit/data.h): IDX (mnist:DIR, fashion-mnist), CSV,
 * npy pairs, and bad specs. test_data_ops.c covers split, truncate, shuffle, batches, statistics.
 *
 * Every input is written by the test itself into a fresh temporary directory: IDX files byte by
 * byte (plain, and gzipped through zlib's gzopen), CSV text, .npy pairs through bnk_npy_write.
 * Each corruption is checked for its exact status and for a message naming the file (and the
 * line, for CSV). The real Fashion-MNIST is checked when Debian's dataset-fashion-mnist is
 * installed and skipped otherwise. Pixel values are exact integers, so they are compared with ==.
 */
#include "test_data_util.h"

/* ---- IDX ------------------------------------------------------------------------------------- */

static void check_synthetic(const bnk_dataset *ds, int64_t n, int64_t rows, int64_t cols) {
    int64_t c, h, w;
    bnk_dataset_shape(ds, &c, &h, &w);
    assert_int_equal(bnk_dataset_size(ds), n);
    assert_int_equal(c, 1);
    assert_int_equal(h, rows);
    assert_int_equal(w, cols);
    int32_t maxl = 1;
    float *x;
    int32_t *y;
    dump(ds, &x, &y);
    for (int64_t i = 0; i < n; i++) {
        if (y[i] != label_of((size_t)i)) fail_msg("label %lld: %d", (long long)i, y[i]);
        if (y[i] > maxl) maxl = y[i];
        for (int64_t j = 0; j < rows * cols; j++) {
            float want = pixel((size_t)i, (size_t)j);
            if (x[i * rows * cols + j] != want) {
                fail_msg("sample %lld pixel %lld: expected %g, got %g", (long long)i, (long long)j,
                         want, x[i * rows * cols + j]);
            }
        }
    }
    assert_int_equal(bnk_dataset_num_classes(ds), maxl + 1);
    free(x);
    free(y);
}

static void test_idx_plain_and_gzip(void **state) {
    (void)state;
    char spec[600];
    for (int gz = 0; gz < 2; gz++) {
        const char *dir = gz ? "mn_gz" : "mn_plain";
        write_mnist_dir(dir, 23, 5, 3, 4, gz);
        snprintf(spec, sizeof spec, "mnist:%s", path_of(dir));
        bnk_dataset *tr = load_ok(spec, BNK_SPLIT_TRAIN);
        bnk_dataset *te = load_ok(spec, BNK_SPLIT_TEST);
        check_synthetic(tr, 23, 3, 4);
        check_synthetic(te, 5, 3, 4);
        assert_int_equal(bnk_dataset_num_classes(tr), 11); /* labels 0..10 */
        assert_int_equal(bnk_dataset_num_classes(te), 10); /* 0,3,6,9,1 -> max 9 */
        bnk_dataset_destroy(tr);
        bnk_dataset_destroy(te);
    }
    /* .gz is tried first: with both present, the gzipped (here 2-image) set wins. */
    write_mnist_dir("mn_both", 7, 3, 2, 2, 0);
    write_mnist_dir("mn_both", 2, 3, 2, 2, 1);
    snprintf(spec, sizeof spec, "mnist:%s", path_of("mn_both"));
    bnk_dataset *ds = load_ok(spec, BNK_SPLIT_TRAIN);
    assert_int_equal(bnk_dataset_size(ds), 2);
    /* One label file holding a single class: num_classes is still 2. */
    bnk_dataset_destroy(ds);
    write_mnist_dir("mn_one", 1, 1, 1, 1, 0);
    snprintf(spec, sizeof spec, "mnist:%s", path_of("mn_one"));
    ds = load_ok(spec, BNK_SPLIT_TRAIN);
    assert_int_equal(bnk_dataset_num_classes(ds), 2);
    bnk_dataset_destroy(ds);
}

/* Writes a valid plain set to dir, then replaces train's `which` file ("images"/"labels") by b
 * (gzipped when gz) and expects loading the train split to fail with want + needle. */
static void corrupt_case(const char *dir, const char *which, const blob *b, int gz, bnk_status want,
                         const char *needle) {
    write_mnist_dir(dir, 6, 2, 2, 3, 0);
    char name[128], spec[600];
    snprintf(name, sizeof name, "%s/train-%s-ubyte", dir,
             strcmp(which, "images") == 0 ? "images-idx3" : "labels-idx1");
    if (gz) {
        unlink(path_of(name));
        strcat(name, ".gz");
    }
    write_bytes(name, b->p, b->len, gz);
    snprintf(spec, sizeof spec, "mnist:%s", path_of(dir));
    expect_load_fail(spec, BNK_SPLIT_TRAIN, want, needle);
    /* The message names the file (except for the count mismatch, which names both). */
    if (strstr(bnk_errmsg(), dir) == NULL) fail_msg("%s: message lacks the path", dir);
}

static void test_idx_corruptions(void **state) {
    (void)state;
    const size_t full = 6 * 2 * 3;
    struct {
        const char *dir, *which;
        blob b;
        int gz;
        const char *needle;
    } cases[] = {
        {"c_magic", "images", idx_images(0x12345678, 6, 2, 3, full), 0, "bad magic"},
        {"c_labmagic", "labels", idx_labels(0x803, 6, 6), 0, "3 dimensions, expected 1"},
        {"c_imgdims", "images", idx_images(0x801, 6, 2, 3, full), 0, "1 dimensions, expected 3"},
        {"c_type", "images", idx_images(0x0D03, 6, 2, 3, full), 0, "element type 0x0d"},
        {"c_trunc_img", "images", idx_images(0x803, 6, 2, 3, full - 1), 0, "truncated"},
        {"c_trunc_img_gz", "images", idx_images(0x803, 6, 2, 3, full - 5), 1, "truncated"},
        {"c_trunc_lab", "labels", idx_labels(0x801, 6, 5), 0, "truncated"},
        {"c_trail_img", "images", idx_images(0x803, 6, 2, 3, full + 1), 0, "trailing bytes"},
        {"c_trail_img_gz", "images", idx_images(0x803, 6, 2, 3, full + 9), 1, "trailing bytes"},
        {"c_trail_lab", "labels", idx_labels(0x801, 6, 7), 0, "trailing bytes"},
        {"c_count", "labels", idx_labels(0x801, 5, 5), 0, "holds 6 images but"},
        {"c_absurd", "images", idx_images(0x803, 100000, 100000, 100000, 0), 0, "exceed the limit"},
        {"c_absurd2", "images", idx_images(0x803, 0x80000001u, 1, 1, 0), 0, "exceed the limit"},
        {"c_big_labels", "labels", idx_labels(0x801, 0xFFFFFFFFu, 0), 0, "exceed the limit"},
        {"c_zero", "images", idx_images(0x803, 6, 0, 3, 0), 0, "dimension 1 is 0"},
        {"c_zero_n", "images", idx_images(0x803, 0, 2, 3, 0), 0, "dimension 0 is 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        corrupt_case(cases[i].dir, cases[i].which, &cases[i].b, cases[i].gz, BNK_ERR_FORMAT,
                     cases[i].needle);
        blob_free(&cases[i].b);
    }
    /* Headers cut short: empty file, 3 bytes, magic + part of the dims. */
    blob im = idx_images(0x803, 6, 2, 3, full);
    for (size_t len = 0; len < 16; len += 5) {
        blob cut = {im.p, len};
        corrupt_case("c_head", "images", &cut, 0, BNK_ERR_FORMAT, "truncated");
    }
    blob_free(&im);
}

/* Gzip streams that end early or are damaged. */
static void test_idx_bad_gzip(void **state) {
    (void)state;
    write_mnist_dir("g_src", 6, 2, 2, 3, 1);
    blob gz = read_bytes("g_src/train-images-idx3-ubyte.gz");
    /* Without the 8-byte trailer (CRC, size) every pixel is there, but the stream is cut. */
    size_t cuts[] = {gz.len - 4, gz.len - 8, gz.len / 2, 12};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        blob cut = {gz.p, cuts[i]};
        corrupt_case("g_cut", "images", &cut, 0, BNK_ERR_FORMAT, "truncated");
        /* (written plain, named .gz below would be the same bytes; the reader sniffs content) */
    }
    /* A flipped bit in the CRC: all data decompress, the check fails. */
    blob bad = {malloc(gz.len), gz.len};
    assert_non_null(bad.p);
    memcpy(bad.p, gz.p, gz.len);
    bad.p[gz.len - 6] ^= 0x01;
    corrupt_case("g_crc", "images", &bad, 0, BNK_ERR_FORMAT, "corrupt gzip");
    blob_free(&bad);
    blob_free(&gz);
}

static void test_idx_missing_files(void **state) {
    (void)state;
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", path_of("no_such_dir"));
    expect_load_fail(spec, BNK_SPLIT_TRAIN, BNK_ERR_IO, "train-images-idx3-ubyte.gz or");
    write_mnist_dir("m_nolab", 3, 2, 2, 2, 0);
    unlink(path_of("m_nolab/t10k-labels-idx1-ubyte"));
    snprintf(spec, sizeof spec, "mnist:%s", path_of("m_nolab"));
    expect_load_fail(spec, BNK_SPLIT_TEST, BNK_ERR_IO, "t10k-labels-idx1-ubyte");
    bnk_dataset_destroy(load_ok(spec, BNK_SPLIT_TRAIN)); /* the train split is complete */
    /* A directory where a file should be. */
    write_mnist_dir("m_isdir", 3, 2, 2, 2, 0);
    unlink(path_of("m_isdir/train-labels-idx1-ubyte"));
    make_dir("m_isdir/train-labels-idx1-ubyte");
    snprintf(spec, sizeof spec, "mnist:%s", path_of("m_isdir"));
    expect_load_fail(spec, BNK_SPLIT_TRAIN, BNK_ERR_IO, "train-labels-idx1-ubyte");
    /* The Fashion-MNIST hint, through the internal loader so it runs whether or not the
     * package is installed. */
    bnk_dataset *ds = NULL;
    bnk_status st =
        bnk__idx_load_dir(&ds, path_of("no_such_dir"), BNK_SPLIT_TRAIN, BNK__FASHION_MNIST_HINT);
    expect_fail("fashion hint", st, BNK_ERR_IO, "apt-get install dataset-fashion-mnist");
    assert_null(ds);
    if (access(BNK__FASHION_MNIST_DIR, F_OK) != 0) {
        expect_load_fail("fashion-mnist", BNK_SPLIT_TEST, BNK_ERR_IO,
                         "apt-get install dataset-fashion-mnist");
    }
}

/* The in-memory entry point the fuzzer uses, on exact-size heap copies (ASan sees over-reads). */
static void test_idx_mem(void **state) {
    (void)state;
    blob im = idx_images(0x803, 4, 2, 2, 16), lb = idx_labels(0x801, 4, 4);
    unsigned char *ic = malloc(im.len), *lc = malloc(lb.len);
    assert_true(ic && lc);
    memcpy(ic, im.p, im.len);
    memcpy(lc, lb.p, lb.len);
    bnk_dataset *ds;
    assert_int_equal(bnk__idx_load_mem(&ds, ic, im.len, "i", lc, lb.len, "l"), BNK_OK);
    check_synthetic(ds, 4, 2, 2);
    bnk_dataset_destroy(ds);
    for (size_t len = 0; len < im.len; len++) {
        expect_fail("idx mem prefix", bnk__idx_load_mem(&ds, ic, len, "i", lc, lb.len, "l"),
                    BNK_ERR_FORMAT, "i: ");
        assert_null(ds);
    }
    free(ic);
    free(lc);
    blob_free(&im);
    blob_free(&lb);
}

/* ---- Fashion-MNIST --------------------------------------------------------------------------- */

static void test_fashion_mnist(void **state) {
    (void)state;
    if (access(BNK__FASHION_MNIST_DIR, F_OK) != 0) skip();
    /* Expected values read with Python's gzip module from the Debian package's files. */
    static const int32_t first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    static const int32_t first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    static const long pixel_sum0[2] = {76247, 33456}; /* sum of image 0's pixels */
    for (int t = 0; t < 2; t++) {
        bnk_dataset *ds = load_ok("fashion-mnist", t ? BNK_SPLIT_TEST : BNK_SPLIT_TRAIN);
        int64_t n = t ? 10000 : 60000, c, h, w;
        assert_int_equal(bnk_dataset_size(ds), n);
        assert_int_equal(bnk_dataset_num_classes(ds), 10);
        bnk_dataset_shape(ds, &c, &h, &w);
        assert_int_equal(c, 1);
        assert_int_equal(h, 28);
        assert_int_equal(w, 28);
        int64_t idx[100];
        float x[100 * 784];
        int32_t y[100];
        for (int i = 0; i < 100; i++) idx[i] = i;
        assert_int_equal(bnk_dataset_batch(ds, idx, 100, BNK_SCALE_NONE, NULL, x, y), BNK_OK);
        for (int i = 0; i < 10; i++) {
            if (y[i] != (t ? first_test : first_train)[i]) {
                fail_msg("split %d label %d: expected %d, got %d", t, i,
                         (t ? first_test : first_train)[i], y[i]);
            }
        }
        double sum = 0;
        for (int j = 0; j < 784; j++) sum += x[j];
        assert_int_equal((long)sum, pixel_sum0[t]);
        if (t == 0) {
            /* Timing of the hot path (reported, not asserted: machines differ). */
            uint64_t rng = 42;
            int64_t *order = malloc((size_t)n * sizeof *order);
            assert_non_null(order);
            bnk_dataset_shuffle(ds, order, &rng);
            const int reps = 600;
            double t0 = now_s();
            for (int r = 0; r < reps; r++) {
                bnk_dataset_batch(ds, order + 100 * r, 100, BNK_SCALE_UNIT, NULL, x, y);
            }
            double t1 = now_s();
            print_message("bnk_dataset_batch, 100 shuffled Fashion-MNIST images, UNIT: %.1f us\n",
                          1e6 * (t1 - t0) / reps);
            free(order);
            float *mean = malloc(784 * sizeof *mean), *sd = malloc(784 * sizeof *sd);
            assert_true(mean && sd);
            assert_int_equal(bnk_dataset_feature_stats(ds, mean, sd), BNK_OK);
            double m = 0;
            for (int j = 0; j < 784; j++) m += mean[j];
            /* Mean of all training pixels / 255 from Python: 0.2860405969887955; the float
             * per-feature means carry ~1e-7 relative error each. */
            assert_true(fabs(m / 784 - 0.2860405969887955) < 1e-6);
            free(mean);
            free(sd);
        }
        bnk_dataset_destroy(ds);
    }
}

/* ---- CSV ------------------------------------------------------------------------------------- */

static void check_csv_abc(const bnk_dataset *ds, const char *what) {
    /* The three rows every good file below holds. */
    static const float want_x[3][3] = {{0.5f, -1, 2e-3f}, {1, 2, 3}, {-0.25f, 1e3f, 0}};
    static const int32_t want_y[3] = {2, 0, 4};
    int64_t c, h, w;
    bnk_dataset_shape(ds, &c, &h, &w);
    if (bnk_dataset_size(ds) != 3 || c != 3 || h != 1 || w != 1) {
        fail_msg("%s: size %lld shape (%lld, %lld, %lld), expected 3 of (3, 1, 1)", what,
                 (long long)bnk_dataset_size(ds), (long long)c, (long long)h, (long long)w);
    }
    assert_int_equal(bnk_dataset_num_classes(ds), 5);
    float *x;
    int32_t *y;
    dump(ds, &x, &y);
    for (int i = 0; i < 3; i++) {
        if (y[i] != want_y[i])
            fail_msg("%s: row %d label %d, expected %d", what, i, y[i], want_y[i]);
        for (int j = 0; j < 3; j++) {
            if (x[3 * i + j] != want_x[i][j]) {
                fail_msg("%s: row %d col %d: expected %g, got %g", what, i, j, want_x[i][j],
                         x[3 * i + j]);
            }
        }
    }
    free(x);
    free(y);
}

static void test_csv_good(void **state) {
    (void)state;
    static const char *const texts[] = {
        "2,0.5,-1,2e-3\n0,1,2,3\n4,-0.25,1e3,0\n",
        "2,0.5,-1,2e-3\n0,1,2,3\n4,-0.25,1e3,0",                    /* no final newline */
        "label,a,b,c\n2,0.5,-1,2e-3\n0,1,2,3\n4,-0.25,1e3,0\n",     /* header */
        "y,a,b,c\r\n2,0.5,-1,2e-3\r\n0,1,2,3\r\n4,-0.25,1e3,0\r\n", /* CRLF */
        "2, 0.5 ,-1,\t2e-3\n0,1,2,3\n4.0,-0.25,1000,0\n\n  \n\r\n", /* spaces, blank tail */
        "\"label\",\"a\",\"b\",\"c\"\n2,0.5,-1,2e-3\n0,1,2,3\n4,-0.25,1e3,0\n", /* quoted header */
    };
    char name[32];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        snprintf(name, sizeof name, "good%zu.csv", i);
        bnk_dataset *ds = load_csv_text(name, texts[i]);
        check_csv_abc(ds, name);
        bnk_dataset_destroy(ds);
    }
    /* Gzipped CSV, and the csv: source ignores split. */
    write_bytes("good.csv.gz", texts[0], strlen(texts[0]), 1);
    char spec[600];
    snprintf(spec, sizeof spec, "csv:%s", path_of("good.csv.gz"));
    bnk_dataset *ds = load_ok(spec, BNK_SPLIT_TEST);
    check_csv_abc(ds, "good.csv.gz");
    bnk_dataset_destroy(ds);
    /* All labels 0: still two classes. */
    ds = load_csv_text("zero.csv", "0,1\n0,2\n");
    assert_int_equal(bnk_dataset_num_classes(ds), 2);
    bnk_dataset_destroy(ds);
    /* In memory, without a terminator (exact-size heap copy). */
    const char *t = texts[1];
    char *copy = malloc(strlen(t));
    assert_non_null(copy);
    memcpy(copy, t, strlen(t));
    assert_int_equal(bnk__csv_parse_mem(&ds, copy, strlen(t), "mem"), BNK_OK);
    check_csv_abc(ds, "mem");
    bnk_dataset_destroy(ds);
    free(copy);
}

static void test_csv_bad(void **state) {
    (void)state;
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"1,2,3\n0,1\n", "bad.csv:2: 2 fields, but line 1 has 3"},
        {"1,2\n0,1,5\n", "bad.csv:2: 3 fields"},
        {"a,b,c\n1,2\n", "bad.csv:2: 2 fields, but line 1 has 3"},
        {"1,2,3\n0,1,x\n", "bad.csv:2: field 3 (feature) is not a number: 'x'"},
        {"1,2,3\n0,1,1.5abc\n", "bad.csv:2: field 3 (feature) is not a number"},
        {"1,2,3\n0,1,\n", "bad.csv:2: field 3 (feature) is empty"},
        {"h,a\n1,2\n0,nan\n", "bad.csv:3: field 2 'nan' is NaN"},
        {"1,inf\n", "bad.csv:1: field 2 'inf' is infinite"},
        {"1,1e39\n", "bad.csv:1: field 2 '1e39' is infinite or overflows float"},
        {"1,2\n-1,3\n", "bad.csv:2: label '-1' is negative"},
        {"1,2\n1.5,3\n", "bad.csv:2: label '1.5' is not an integer"},
        {"1,2\nnan,3\n", "bad.csv:2: label 'nan' is NaN"},
        {"1,2\n70000,3\n", "bad.csv:2: label '70000' is too large"},
        {"1,2\n,3\n", "bad.csv:2: field 1 (label) is empty"},
        {"1,2\n\n3,4\n", "bad.csv:3: data after the blank line 2"},
        {"1\n2\n", "bad.csv:1: a row needs a label and at least one feature"},
        {"label,a\n", "bad.csv: no samples (only a header line)"},
        {"", "bad.csv: no samples (empty file)"},
        {"\n\n", "bad.csv: no samples (empty file)"},
        {"1,2\n0,1\r2\n", "bad.csv:2: field 2 (feature) is not a number"},
    };
    char spec[600];
    snprintf(spec, sizeof spec, "csv:%s", path_of("bad.csv"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_bytes("bad.csv", cases[i].text, strlen(cases[i].text), 0);
        bnk_dataset *ds = NULL;
        bnk_status st = bnk_dataset_load(&ds, spec, BNK_SPLIT_TRAIN);
        char where[64];
        snprintf(where, sizeof where, "bad csv case %zu", i);
        expect_fail(where, st, BNK_ERR_FORMAT, cases[i].needle);
        assert_null(ds);
    }
    snprintf(spec, sizeof spec, "csv:%s", path_of("missing.csv"));
    expect_load_fail(spec, BNK_SPLIT_TRAIN, BNK_ERR_IO, "missing.csv");
}

/* ---- npy pairs ------------------------------------------------------------------------------- */

static void write_npy(const char *name, bnk_dtype dt, int ndim, const int64_t *shape,
                      const double *v, size_t n) {
    float f[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    bnk_status st =
        bnk_npy_write(path_of(name), dt, ndim, shape, dt == BNK_DTYPE_F32 ? (void *)f : (void *)v);
    if (st != BNK_OK) fail_msg("writing %s: %s", name, bnk_errmsg());
}

static const char *npy_spec(const char *x, const char *y) {
    static char spec[1200];
    snprintf(spec, sizeof spec, "npy:%s,%s", path_of(x), path_of(y));
    return spec;
}

static void test_npy_pairs(void **state) {
    (void)state;
    double xv[24], yv[4] = {0, 3, 1, 3};
    for (int i = 0; i < 24; i++) xv[i] = 0.25 * i - 2;
    int64_t s2[2] = {4, 6}, s4[4] = {4, 2, 1, 3}, s1[1] = {4};
    write_npy("x2.npy", BNK_DTYPE_F32, 2, s2, xv, 24);
    write_npy("x4.npy", BNK_DTYPE_F64, 4, s4, xv, 24);
    write_npy("y.npy", BNK_DTYPE_F64, 1, s1, yv, 4);
    write_npy("yf.npy", BNK_DTYPE_F32, 1, s1, yv, 4);
    static const int64_t want_shape[2][3] = {{6, 1, 1}, {2, 1, 3}};
    for (int k = 0; k < 2; k++) {
        bnk_dataset *ds =
            load_ok(npy_spec(k ? "x4.npy" : "x2.npy", k ? "yf.npy" : "y.npy"), BNK_SPLIT_TRAIN);
        int64_t c, h, w;
        bnk_dataset_shape(ds, &c, &h, &w);
        assert_int_equal(c, want_shape[k][0]);
        assert_int_equal(h, want_shape[k][1]);
        assert_int_equal(w, want_shape[k][2]);
        assert_int_equal(bnk_dataset_size(ds), 4);
        assert_int_equal(bnk_dataset_num_classes(ds), 4);
        float *x;
        int32_t *y;
        dump(ds, &x, &y);
        for (int i = 0; i < 24; i++) {
            if (x[i] != (float)xv[i]) fail_msg("npy %d: x[%d] %g != %g", k, i, x[i], xv[i]);
        }
        for (int i = 0; i < 4; i++) assert_int_equal(y[i], (int32_t)yv[i]);
        free(x);
        free(y);
        bnk_dataset_destroy(ds);
    }
    /* Bad pairs. */
    double bad[24];
    memcpy(bad, xv, sizeof bad);
    bad[7] = NAN;
    write_npy("xnan.npy", BNK_DTYPE_F32, 2, s2, bad, 24);
    bad[7] = 1e300; /* finite double, infinite as float32 */
    write_npy("xbig.npy", BNK_DTYPE_F64, 2, s2, bad, 24);
    int64_t s3[3] = {4, 2, 3}, s1x[1] = {24}, s2y[2] = {4, 1}, s1y3[1] = {3}, s0[2] = {0, 6};
    write_npy("x3.npy", BNK_DTYPE_F32, 3, s3, xv, 24);
    write_npy("x1.npy", BNK_DTYPE_F32, 1, s1x, xv, 24);
    write_npy("x0.npy", BNK_DTYPE_F32, 2, s0, xv, 0);
    write_npy("y2.npy", BNK_DTYPE_F32, 2, s2y, yv, 4);
    write_npy("y3.npy", BNK_DTYPE_F32, 1, s1y3, yv, 3);
    double yneg[4] = {0, -1, 1, 2}, yfrac[4] = {0, 1.5, 1, 2}, ynan[4] = {0, 1, NAN, 2};
    write_npy("yneg.npy", BNK_DTYPE_F32, 1, s1, yneg, 4);
    write_npy("yfrac.npy", BNK_DTYPE_F64, 1, s1, yfrac, 4);
    write_npy("ynan.npy", BNK_DTYPE_F64, 1, s1, ynan, 4);
    write_bytes("notnpy.npy", "hello", 5, 0);
    static const struct {
        const char *x, *y;
        bnk_status st;
        const char *needle;
    } cases[] = {
        {"xnan.npy", "y.npy", BNK_ERR_FORMAT, "xnan.npy: sample 1, feature 1 is NaN"},
        {"xbig.npy", "y.npy", BNK_ERR_FORMAT, "xbig.npy: sample 1, feature 1 is infinite"},
        {"x3.npy", "y.npy", BNK_ERR_FORMAT, "x3.npy: features must have shape"},
        {"x1.npy", "y.npy", BNK_ERR_FORMAT, "x1.npy: features must have shape"},
        {"x0.npy", "y.npy", BNK_ERR_FORMAT, "x0.npy: dimension 0 is 0"},
        {"x2.npy", "y2.npy", BNK_ERR_FORMAT, "y2.npy: labels must have shape (N,)"},
        {"x2.npy", "y3.npy", BNK_ERR_FORMAT, "holds 4 samples but"},
        {"x2.npy", "yneg.npy", BNK_ERR_FORMAT, "yneg.npy: label 1 (-1) is negative"},
        {"x2.npy", "yfrac.npy", BNK_ERR_FORMAT, "yfrac.npy: label 1 (1.5) is not an integer"},
        {"x2.npy", "ynan.npy", BNK_ERR_FORMAT, "ynan.npy: label 2 (nan) is NaN"},
        {"notnpy.npy", "y.npy", BNK_ERR_FORMAT, "notnpy.npy': not a .npy file"},
        {"x2.npy", "missing.npy", BNK_ERR_IO, "missing.npy"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_load_fail(npy_spec(cases[i].x, cases[i].y), BNK_SPLIT_TRAIN, cases[i].st,
                         cases[i].needle);
    }
}

/* ---- Specs and arguments --------------------------------------------------------------------- */

static void test_bad_specs(void **state) {
    (void)state;
    expect_load_fail("imagenet", BNK_SPLIT_TRAIN, BNK_ERR_PARAM, "unknown data source");
    expect_load_fail("mnist:", BNK_SPLIT_TRAIN, BNK_ERR_PARAM, "names no path");
    expect_load_fail("csv:", BNK_SPLIT_TRAIN, BNK_ERR_PARAM, "names no path");
    expect_load_fail("npy:x.npy", BNK_SPLIT_TRAIN, BNK_ERR_PARAM, "one comma");
    expect_load_fail("npy:a,b,c", BNK_SPLIT_TRAIN, BNK_ERR_PARAM, "one comma");
    expect_load_fail("npy:,y.npy", BNK_SPLIT_TRAIN, BNK_ERR_PARAM, "one comma");
    expect_load_fail("fashion-mnist", (bnk_split)7, BNK_ERR_PARAM, "split");
    bnk_dataset *ds = NULL;
    assert_int_equal(bnk_dataset_load(NULL, "fashion-mnist", BNK_SPLIT_TRAIN), BNK_ERR_NULL);
    assert_int_equal(bnk_dataset_load(&ds, NULL, BNK_SPLIT_TRAIN), BNK_ERR_NULL);
    bnk_dataset_destroy(NULL);
    assert_int_equal(bnk_dataset_size(NULL), 0);
    assert_int_equal(bnk_dataset_num_classes(NULL), 0);
    int64_t c = 9;
    bnk_dataset_shape(NULL, &c, NULL, NULL);
    assert_int_equal(c, 0);
}

/* ---- Main ------------------------------------------------------------------------------------ */

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_plain_and_gzip),
        cmocka_unit_test(test_idx_corruptions),
        cmocka_unit_test(test_idx_bad_gzip),
        cmocka_unit_test(test_idx_missing_files),
        cmocka_unit_test(test_idx_mem),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_csv_good),
        cmocka_unit_test(test_csv_bad),
        cmocka_unit_test(test_npy_pairs),
        cmocka_unit_test(test_bad_specs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
