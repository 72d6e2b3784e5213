/* Tests for data-set operations (include/bnkit/data.h): split (sizes, disjointness, union,
 * original order, seeded reproducibility, uniform choice), truncate, shuffle (valid, reproducible,
 * uniform permutations), batches under each scaling and their errors, feature statistics.
 * Data sets come from small CSV texts (float features) and synthetic IDX files (uint8 pixels);
 * float comparisons state their tolerance's reason where they are made. */
#include "test_data_util.h"

/* ---- Split, truncate, shuffle ---------------------------------------------------------------- */

/* n samples, features (id, -id), label id % 7: the first feature identifies a sample. */
static bnk_dataset *id_set(int n) {
    size_t cap = (size_t)n * 32 + 16;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d,%d,%d\n", i % 7, i, -i);
    bnk_dataset *ds;
    assert_int_equal(bnk__csv_parse_mem(&ds, text, len, "ids"), BNK_OK);
    free(text);
    return ds;
}

/* The ids (first feature) of ds in order; *n receives the size. */
static int *ids_of(const bnk_dataset *ds, int *n) {
    float *x;
    int32_t *y;
    dump(ds, &x, &y);
    *n = (int)bnk_dataset_size(ds);
    int64_t f = features_of(ds);
    int *ids = malloc((size_t)*n * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < *n; i++) {
        ids[i] = (int)x[i * f];
        if (y[i] != ids[i] % 7) fail_msg("sample %d (id %d) has label %d", i, ids[i], y[i]);
    }
    free(x);
    free(y);
    return ids;
}

static void test_split(void **state) {
    (void)state;
    int seen[100];
    int *first = NULL, n_first = 0;
    for (int rep = 0; rep < 3; rep++) {
        bnk_dataset *ds = id_set(100), *val = NULL;
        uint64_t seed = rep < 2 ? 1234 : 99; /* reps 0 and 1 repeat a seed, rep 2 differs */
        assert_int_equal(bnk_dataset_split(ds, 30, seed, &val), BNK_OK);
        assert_int_equal(bnk_dataset_size(ds), 70);
        assert_int_equal(bnk_dataset_size(val), 30);
        assert_int_equal(bnk_dataset_num_classes(val), 7); /* kept from the whole set */
        int nr, nv;
        int *rest = ids_of(ds, &nr), *chosen = ids_of(val, &nv);
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < nr; i++) seen[rest[i]]++;
        for (int i = 0; i < nv; i++) seen[chosen[i]]++;
        for (int i = 0; i < 100; i++) {
            if (seen[i] != 1)
                fail_msg("seed %llu: id %d appears %d times", (unsigned long long)seed, i, seen[i]);
        }
        for (int i = 1; i < nr; i++) assert_true(rest[i - 1] < rest[i]); /* original order */
        for (int i = 1; i < nv; i++) assert_true(chosen[i - 1] < chosen[i]);
        if (rep == 0) {
            first = chosen;
            n_first = nv;
        } else {
            int same = memcmp(first, chosen, (size_t)n_first * sizeof *first) == 0;
            if (same != (rep == 1))
                fail_msg("rep %d: same seed must repeat, other seeds differ", rep);
            free(chosen);
        }
        free(rest);
        /* Bad counts leave ds alone. */
        bnk_dataset *none = (bnk_dataset *)&none;
        expect_fail("split 0", bnk_dataset_split(ds, 0, 1, &none), BNK_ERR_SIZE, "[1, 69]");
        assert_null(none);
        expect_fail("split all", bnk_dataset_split(ds, 70, 1, &none), BNK_ERR_SIZE, "got 70");
        assert_int_equal(bnk_dataset_size(ds), 70);
        assert_int_equal(bnk_dataset_split(NULL, 1, 1, &none), BNK_ERR_NULL);
        assert_int_equal(bnk_dataset_split(ds, 1, 1, NULL), BNK_ERR_NULL);
        bnk_dataset_destroy(ds);
        bnk_dataset_destroy(val);
    }
    free(first);

    /* Uniformity: over 3000 seeds each of 10 samples is chosen for a 3-sample split with
     * probability 0.3, i.e. 900 times +- 25 (one sd); 150 is six sd. */
    int hits[10] = {0};
    for (uint64_t seed = 0; seed < 3000; seed++) {
        bnk_dataset *ds = id_set(10), *val;
        assert_int_equal(bnk_dataset_split(ds, 3, seed, &val), BNK_OK);
        int nv;
        int *chosen = ids_of(val, &nv);
        for (int i = 0; i < nv; i++) hits[chosen[i]]++;
        free(chosen);
        bnk_dataset_destroy(ds);
        bnk_dataset_destroy(val);
    }
    for (int i = 0; i < 10; i++) {
        if (abs(hits[i] - 900) > 150)
            fail_msg("sample %d chosen %d times of 3000, expected ~900", i, hits[i]);
    }

    /* uint8 data sets split the same way (pixels travel with their labels). */
    write_mnist_dir("s_u8", 9, 1, 2, 2, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", path_of("s_u8"));
    bnk_dataset *ds = load_ok(spec, BNK_SPLIT_TRAIN), *val;
    assert_int_equal(bnk_dataset_split(ds, 4, 7, &val), BNK_OK);
    const bnk_dataset *parts[2] = {ds, val};
    int total = 0;
    for (int p = 0; p < 2; p++) {
        float *x;
        int32_t *y;
        dump(parts[p], &x, &y);
        for (int64_t i = 0; i < bnk_dataset_size(parts[p]); i++) {
            /* pixel(s, 0) = 37 s + 5 identifies the original sample s. */
            int s = ((int)x[4 * i] - 5 + 256 * 37) % 256 * 173 % 256; /* 37 * 173 = 1 mod 256 */
            assert_int_equal(y[i], label_of((size_t)s));
            for (int j = 0; j < 4; j++) assert_true(x[4 * i + j] == pixel((size_t)s, (size_t)j));
            total++;
        }
        free(x);
        free(y);
    }
    assert_int_equal(total, 9);
    bnk_dataset_destroy(ds);
    bnk_dataset_destroy(val);
}

static void test_truncate(void **state) {
    (void)state;
    bnk_dataset *ds = id_set(50);
    assert_int_equal(bnk_dataset_truncate(ds, 50), BNK_OK);
    assert_int_equal(bnk_dataset_truncate(ds, 20), BNK_OK);
    int n;
    int *ids = ids_of(ds, &n);
    assert_int_equal(n, 20);
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], i);
    free(ids);
    expect_fail("truncate 0", bnk_dataset_truncate(ds, 0), BNK_ERR_SIZE, "[1, 20]");
    expect_fail("truncate 21", bnk_dataset_truncate(ds, 21), BNK_ERR_SIZE, "got 21");
    assert_int_equal(bnk_dataset_truncate(NULL, 1), BNK_ERR_NULL);
    assert_int_equal(bnk_dataset_size(ds), 20);
    bnk_dataset_destroy(ds);
}

static void test_shuffle(void **state) {
    (void)state;
    bnk_dataset *ds = id_set(257);
    int64_t a[257], b[257];
    uint64_t r1 = 5, r2 = 5;
    bnk_dataset_shuffle(ds, a, &r1);
    bnk_dataset_shuffle(ds, b, &r2);
    assert_memory_equal(a, b, sizeof a); /* same state, same permutation */
    assert_true(r1 == r2 && r1 != 5);    /* the state advanced */
    bnk_dataset_shuffle(ds, b, &r2);     /* the advanced state gives another one */
    assert_memory_not_equal(a, b, sizeof a);
    int seen[257] = {0};
    for (int i = 0; i < 257; i++) {
        assert_true(a[i] >= 0 && a[i] < 257);
        seen[a[i]]++;
    }
    for (int i = 0; i < 257; i++) assert_int_equal(seen[i], 1);
    bnk_dataset_shuffle(NULL, a, &r1); /* no-ops */
    bnk_dataset_shuffle(ds, NULL, &r1);
    bnk_dataset_shuffle(ds, a, NULL);
    bnk_dataset_destroy(ds);

    /* Uniformity over the 6 permutations of 3: 6000 draws, 1000 +- 29 each; 200 is ~7 sd. */
    ds = id_set(3);
    int count[3][3][3] = {{{0}}};
    uint64_t rng = 77;
    for (int k = 0; k < 6000; k++) {
        int64_t o[3];
        bnk_dataset_shuffle(ds, o, &rng);
        count[o[0]][o[1]][o[2]]++;
    }
    int perms = 0;
    for (int i = 0; i < 27; i++) {
        int v = (&count[0][0][0])[i];
        if (v == 0) continue;
        perms++;
        if (abs(v - 1000) > 200) fail_msg("permutation %d drawn %d times, expected ~1000", i, v);
    }
    assert_int_equal(perms, 6);
    bnk_dataset_destroy(ds);
}

/* ---- Batches and statistics ------------------------------------------------------------------ */

static void test_batch_u8(void **state) {
    (void)state;
    write_mnist_dir("b_u8", 10, 1, 3, 5, 1);
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", path_of("b_u8"));
    bnk_dataset *ds = load_ok(spec, BNK_SPLIT_TRAIN);
    float mean[15], sd[15];
    assert_int_equal(bnk_dataset_feature_stats(ds, mean, sd), BNK_OK);
    for (int j = 0; j < 15; j++) { /* reference in double */
        double m = 0, v = 0;
        for (int i = 0; i < 10; i++) m += pixel((size_t)i, (size_t)j) / 255.0;
        m /= 10;
        for (int i = 0; i < 10; i++) v += pow(pixel((size_t)i, (size_t)j) / 255.0 - m, 2);
        double s = sqrt(v / 10), got[2] = {mean[j], sd[j]}, ref[2] = {m, s};
        /* float results of double sums: a few float ulps */
        bnk_test_close_f64("u8 feature stats", got, ref, 2, 1e-7, 4e-7);
    }
    const float *stats[2] = {mean, sd};
    int64_t idx[4] = {9, 0, 9, 3}; /* repeats allowed */
    float x[4 * 15];
    int32_t y[4];
    for (int sc = 0; sc < 3; sc++) {
        memset(x, 0, sizeof x);
        assert_int_equal(bnk_dataset_batch(ds, idx, 4, (bnk_scaling)sc, stats, x, y), BNK_OK);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(y[i], label_of((size_t)idx[i]));
            double ref[15];
            for (int j = 0; j < 15; j++) {
                double v = pixel((size_t)idx[i], (size_t)j);
                ref[j] = sc == 0 ? v : sc == 1 ? v / 255 : (v / 255 - mean[j]) / sd[j];
            }
            /* NONE is exact. UNIT multiplies by the float nearest 1/255: within one ulp of the
             * rounded v/255, so 1.5 ulp (<= 1.8e-7 relative) of the exact value. STANDARDIZE
             * divides that error (<= 1.8e-7 absolute) by std (>= 0.2 here) and adds two
             * roundings of values up to ~3. */
            double rtol = sc == 0 ? 0 : sc == 1 ? 2e-7 : 3e-7;
            bnk_test_close_f32(sc == 0   ? "NONE"
                               : sc == 1 ? "UNIT"
                                         : "STANDARDIZE",
                               x + 15 * i, ref, 15, sc == 2 ? 1.5e-6 : 0, rtol);
        }
    }
    float one[15];
    int32_t lab;
    int64_t last = 9; /* the last valid index */
    assert_int_equal(bnk_dataset_batch(ds, &last, 1, BNK_SCALE_UNIT, NULL, one, &lab), BNK_OK);
    assert_int_equal(lab, label_of(9));
    /* Errors leave the outputs untouched. */
    float before[4 * 15];
    memcpy(before, x, sizeof x);
    int64_t bad[3] = {0, 10, 1}, neg = -1;
    expect_fail("idx 10", bnk_dataset_batch(ds, bad, 3, BNK_SCALE_NONE, NULL, x, y), BNK_ERR_PARAM,
                "idx[1] = 10 is outside [0, 10)");
    expect_fail("idx -1", bnk_dataset_batch(ds, &neg, 1, BNK_SCALE_NONE, NULL, x, y), BNK_ERR_PARAM,
                "outside");
    assert_memory_equal(before, x, sizeof x);
    expect_fail("count", bnk_dataset_batch(ds, idx, -1, BNK_SCALE_NONE, NULL, x, y), BNK_ERR_SIZE,
                "count");
    expect_fail("scaling", bnk_dataset_batch(ds, idx, 1, (bnk_scaling)5, NULL, x, y), BNK_ERR_PARAM,
                "scaling");
    expect_fail("stats", bnk_dataset_batch(ds, idx, 1, BNK_SCALE_STANDARDIZE, NULL, x, y),
                BNK_ERR_NULL, "stats");
    const float *half[2] = {mean, NULL};
    expect_fail("stats[1]", bnk_dataset_batch(ds, idx, 1, BNK_SCALE_STANDARDIZE, half, x, y),
                BNK_ERR_NULL, "stats");
    assert_int_equal(bnk_dataset_batch(NULL, idx, 1, BNK_SCALE_NONE, NULL, x, y), BNK_ERR_NULL);
    assert_int_equal(bnk_dataset_batch(ds, idx, 1, BNK_SCALE_NONE, NULL, NULL, y), BNK_ERR_NULL);
    assert_int_equal(bnk_dataset_batch(ds, idx, 0, BNK_SCALE_NONE, NULL, x, y), BNK_OK);
    assert_int_equal(bnk_dataset_feature_stats(ds, NULL, sd), BNK_ERR_NULL);
    bnk_dataset_destroy(ds);
}

static void test_batch_float(void **state) {
    (void)state;
    /* Feature 2 is constant: its std is floored at 1e-6. */
    bnk_dataset *ds = load_csv_text("bf.csv", "1,0.5,3,7\n0,-1.5,4,7\n2,2.25,-8,7\n1,0,1,7\n");
    float mean[3], sd[3];
    assert_int_equal(bnk_dataset_feature_stats(ds, mean, sd), BNK_OK);
    double ref_m[3] = {0.3125, 0, 7};
    double ref_s[3] = {
        sqrt((0.1875 * 0.1875 + 1.8125 * 1.8125 + 1.9375 * 1.9375 + 0.3125 * 0.3125) / 4),
        sqrt((9 + 16 + 64 + 1) / 4.0), 1e-6};
    bnk_test_close_f32("float mean", mean, ref_m, 3, 0, 1e-7); /* float rounding of a double */
    bnk_test_close_f32("float std", sd, ref_s, 3, 0, 1e-7);
    const float *stats[2] = {mean, sd};
    int64_t idx[2] = {2, 1};
    float x[6];
    int32_t y[2];
    double raw[2][3] = {{2.25, -8, 7}, {-1.5, 4, 7}};
    for (int sc = 0; sc < 3; sc++) {
        assert_int_equal(bnk_dataset_batch(ds, idx, 2, (bnk_scaling)sc, stats, x, y), BNK_OK);
        assert_int_equal(y[0], 2);
        assert_int_equal(y[1], 0);
        double ref[6];
        for (int i = 0; i < 6; i++) {
            double v = raw[i / 3][i % 3];
            ref[i] = sc < 2 ? v : (v - mean[i % 3]) / sd[i % 3]; /* UNIT leaves floats alone */
        }
        bnk_test_close_f32("float batch", x, ref, 6, 0, sc < 2 ? 0 : 2.4e-7); /* one division */
    }
    bnk_dataset_destroy(ds);
}

/* ---- Main ------------------------------------------------------------------------------------ */

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),       cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_shuffle),     cmocka_unit_test(test_batch_u8),
        cmocka_unit_test(test_batch_float),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
