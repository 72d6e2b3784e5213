/* test_nn_torch.c — end-to-end training checked against PyTorch.
 *
 * The golden data under tests/fixtures/nn/<case>/ comes from PyTorch 1.13 in float32;
 * scripts/gen_nn_fixtures.py writes it and says how to rerun it. Each case holds a model spec
 * with its hyperparameters (params.txt), every bnkit tensor before training (<name>.npy, named as
 * bnk_model_tensor() names it, PyTorch shapes) and after the last step (<name>.final.npy), a
 * fixed sequence of batches (x.npy, labels.npy) and PyTorch's loss at each step (losses.npy).
 * This test loads the initial tensors into a bnkit model, trains it with Adam on the same
 * batches, and checks the requirement: the loss of each of the 20 steps within 1e-4
 * relative of PyTorch's. It then compares the final parameters and running statistics, and
 * does all of this once per compiled BN kernel (bnk_bn_kernel_at), as BNK_ARCH would select.
 *
 * Cases: mlp, the source document's model "dense:128,relu,bn,dense:10" on 1x28x28 inputs; cnn,
 * a small version of the CNN ("conv:8:3,bn,relu,maxpool:2,conv:16:3,bn,relu,maxpool:2,
 * flatten,dense:32,bn,relu,dense:10") on 1x12x12 inputs. Batch 16, 20 steps, Adam lr 1e-3, BN
 * eps 1e-3 and PyTorch momentum 0.1 (bnkit momentum 0.9) with PyTorch's unbiased running
 * variance.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/nn.h"
#include "fixture_util.h"

#define NN_DIR BNK_FIXTURE_DIR "/nn"

/* Tolerances, |got - ref| <= atol + rtol*|ref|.
 *   loss: the bound, 1e-4 relative. The generator checks that PyTorch's float32 losses
 *     are within 1.7e-7 of float64 PyTorch, and that every loss after the first moves by more
 *     than 2e-4 relative when the updates are left out (so a model that ignored them fails).
 *   parameters: Adam moves a parameter by about lr (1e-3) per step whatever the size of its
 *     gradient. Where the gradients seen so far are all tiny, the update approaches
 *     lr*sign(g) and rounding noise in g decides it: such an element cannot agree between two
 *     correct float32 implementations. The generator lists them (<name>.sensitive.npy: where, in
 *     float64 PyTorch, the update moves by more than 100 times a change of the gradient at some
 *     step): one weight of the MLP (first gradient 3.4e-8, float32 vs float64 PyTorch 3.4e-6
 *     apart) and every bias directly followed by a BN, whose exact gradient is 0 so that all
 *     their updates are amplified noise (float32 vs float64 PyTorch 1.2e-2); such a bias does
 *     not affect the loss. The test treats every bias before a BN as sensitive whatever the
 *     list says. Sensitive elements are only bounded by Adam's largest possible movement: with
 *     the bias-corrected averages m^ = sum w_i g_i and v^ = sum u_i g_i^2 (sum w = sum u = 1),
 *     |m^|/sqrt(v^) <= sqrt(max_i w_i/u_i) (Jensen), and the largest ratio, w_t/u_t =
 *     0.1/(1-0.9^t) * (1-0.999^t)/0.001, grows with t to 2.26 at t = 20: each run moves them by
 *     at most 1.51*lr per step and the two runs differ by at most 3.02*steps*lr (20 steps at
 *     most; read_params checks). Every other element moves by at most 100 times its gradient's
 *     error (~1e-8 for sums of ~1e-2 terms in float32) per step; float32 PyTorch ends within
 *     3.8e-7 of float64 on them. Allow 1e-5, 1% of one step (parameters are O(0.05..1)).
 *   running statistics: the running mean after such a bias absorbs the bias's noise (float32
 *     vs float64 PyTorch: 7e-3), so for those BNs we compare running_mean - bias_part, where
 *     bias_part = sum_k p*(1-p)^(steps-1-k)*b_k is the share of the bias b_k used at step k,
 *     computed from each run's own bias trajectory (fixture: <i>.bn.running_mean.bias_part.npy).
 *     What remains are averages of batch means and variances of layer outputs, which move with
 *     the weights' rounding-level differences: the CNN's dense:32 sums 144 inputs of O(1) with
 *     weights ~1e-7 apart, so its batch means move by ~1e-6. Measured when written: float32
 *     vs float64 PyTorch 7.5e-7, bnkit vs float64 PyTorch 9.8e-7, bnkit vs float32 PyTorch
 *     1.7e-6 (values up to 1.7). Allow 5e-6 absolute + 1e-5 relative; a wrong momentum, Bessel
 *     factor or eps moves them by 1e-3 or more. */
#define TOL_LOSS_RTOL    1e-4
#define TOL_PARAM_ATOL   1e-5
#define TOL_NOISE_PER_LR 3.02 /* times steps*lr, for Adam-sensitive elements */
#define TOL_RUNNING_ATOL 5e-6
#define TOL_RUNNING_RTOL 1e-5
#define MAX_TENSORS      64

typedef struct nn_params {
    char spec[256];
    int64_t in_c, in_h, in_w, batch, steps;
    double lr, beta1, beta2, adam_eps, bn_eps, bn_momentum_torch;
    bool unbiased;
} nn_params;

/* One fixture tensor and what the model says about it. */
typedef struct nn_tensor {
    char name[48];
    bnk_npy init, final;
    bool noise_bias;   /* a dense/conv bias directly followed by a BN */
    int bias_of;       /* for a running_mean after such a bias: that bias's index, else -1 */
    bnk_npy bias_part; /* PyTorch's bias part of this running mean (float64), when bias_of >= 0 */
    bnk_npy sensitive; /* flat indices of Adam-sensitive elements (float64); often absent */
} nn_tensor;

typedef struct nn_case {
    const char *name;
    nn_params p;
    bnk_npy x, labels_f, losses;
    int32_t *labels;
    int ntensors;
    nn_tensor t[MAX_TENSORS];
    double *parts;       /* [ntensors * parts_stride] bnkit's bias parts, per running_mean tensor */
    size_t parts_stride; /* the largest tensor's count */
    double *ref;         /* [parts_stride] scratch */
    float *got;          /* [parts_stride] scratch */
    bnk_model *model;
    bnk_optim *opt;
} nn_case;

static const char *const k_case_names[] = {"mlp", "cnn"};
#define N_CASES (sizeof k_case_names / sizeof k_case_names[0])

static nn_case g_cases[N_CASES];

/* ---- params.txt --------------------------------------------------------------------------- */

static const char *const k_keys[] = {
    "spec",
    "in_c",
    "in_h",
    "in_w",
    "batch",
    "steps",
    "lr",
    "beta1",
    "beta2",
    "adam_eps",
    "bn_eps",
    "bn_momentum_torch",
    "unbiased_running_var",
};
#define N_KEYS (sizeof k_keys / sizeof k_keys[0])

static void set_param(void *ctx, const char *path, size_t k, const char *val) {
    nn_params *p = ctx;
    const char *key = k_keys[k];
    if (strcmp(key, "spec") == 0) {
        if (strlen(val) >= sizeof p->spec) fail_msg("%s: spec too long", path);
        strcpy(p->spec, val);
    } else if (strcmp(key, "in_c") == 0) {
        p->in_c = bnk_fx_parse_int(path, key, val);
    } else if (strcmp(key, "in_h") == 0) {
        p->in_h = bnk_fx_parse_int(path, key, val);
    } else if (strcmp(key, "in_w") == 0) {
        p->in_w = bnk_fx_parse_int(path, key, val);
    } else if (strcmp(key, "batch") == 0) {
        p->batch = bnk_fx_parse_int(path, key, val);
    } else if (strcmp(key, "steps") == 0) {
        p->steps = bnk_fx_parse_int(path, key, val);
    } else if (strcmp(key, "unbiased_running_var") == 0) {
        p->unbiased = bnk_fx_parse_bool(path, key, val);
    } else {
        double v = bnk_fx_parse_double(path, key, val);
        if (!isfinite(v)) fail_msg("%s: %s: not a finite number: '%s'", path, key, val);
        if (strcmp(key, "lr") == 0) p->lr = v;
        if (strcmp(key, "beta1") == 0) p->beta1 = v;
        if (strcmp(key, "beta2") == 0) p->beta2 = v;
        if (strcmp(key, "adam_eps") == 0) p->adam_eps = v;
        if (strcmp(key, "bn_eps") == 0) p->bn_eps = v;
        if (strcmp(key, "bn_momentum_torch") == 0) p->bn_momentum_torch = v;
    }
}

static void read_params(const char *dir, nn_params *p) {
    char path[1024];
    bnk_fx_path(path, sizeof path, "%s/params.txt", dir);
    memset(p, 0, sizeof *p);
    bnk_fx_read_params(dir, k_keys, N_KEYS, set_param, p);
    if (p->in_c < 1 || p->in_h < 1 || p->in_w < 1 || p->batch < 2 || p->steps < 1)
        fail_msg("%s: bad sizes", path);
    if (p->steps > 20) fail_msg("%s: TOL_NOISE_PER_LR holds for at most 20 steps", path);
}

/* ---- loading ------------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Number of files in dir that hold an initial tensor: *.npy other than the inputs, the losses,
 * the final tensors and the bias parts. */
static int count_tensor_files(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) fail_msg("%s: cannot open: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        if (!ends_with(s, ".npy") || ends_with(s, ".final.npy") || ends_with(s, ".bias_part.npy") ||
            ends_with(s, ".sensitive.npy"))
            continue;
        if (strcmp(s, "x.npy") == 0 || strcmp(s, "labels.npy") == 0 || strcmp(s, "losses.npy") == 0)
            continue;
        n++;
    }
    closedir(d);
    return n;
}

static bnk_model_config model_config(const nn_params *p) {
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = p->spec;
    mc.in_c = p->in_c;
    mc.in_h = p->in_h;
    mc.in_w = p->in_w;
    mc.max_batch = p->batch;
    mc.bn.momentum = 1.0 - p->bn_momentum_torch; /* Keras convention: PyTorch p = 1 - momentum */
    mc.bn.eps = p->bn_eps;
    mc.bn.unbiased_running_var = p->unbiased;
    mc.seed = 12345; /* irrelevant: every tensor is overwritten from the fixture */
    return mc;
}

static void check_shape(const char *what, const bnk_tensor_info *ti, const bnk_npy *a) {
    bool same = a->ndim == ti->ndim && a->count == ti->count;
    for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == ti->shape[d];
    if (!same) {
        fail_msg("%s: fixture has %d dims (first %lld, count %zu), model %d dims (first %lld, "
                 "count %zu)",
                 what, a->ndim, a->ndim > 0 ? (long long)a->shape[0] : 0LL, a->count, ti->ndim,
                 ti->ndim > 0 ? (long long)ti->shape[0] : 0LL, ti->count);
    }
}

static int find_tensor(const nn_case *nc, const char *name) {
    for (int i = 0; i < nc->ntensors; i++) {
        if (strcmp(nc->t[i].name, name) == 0) return i;
    }
    return -1;
}

/* Loads the whole case: parameters, data, and every tensor the model names. */
static void load_case(nn_case *nc) {
    char dir[1024];
    bnk_fx_path(dir, sizeof dir, "%s/%s", NN_DIR, nc->name);
    nn_params *p = &nc->p;
    read_params(dir, p);

    bnk_fx_load_f32(dir, "x", &nc->x);
    const int64_t rows = p->steps * p->batch;
    if (nc->x.ndim != 4 || nc->x.shape[0] != rows || nc->x.shape[1] != p->in_c ||
        nc->x.shape[2] != p->in_h || nc->x.shape[3] != p->in_w) {
        fail_msg("%s: x.npy: expected shape (%lld, %lld, %lld, %lld)", nc->name, (long long)rows,
                 (long long)p->in_c, (long long)p->in_h, (long long)p->in_w);
    }
    bnk_fx_load_f32(dir, "labels", &nc->labels_f);
    if (nc->labels_f.ndim != 1 || nc->labels_f.shape[0] != rows)
        fail_msg("%s: labels.npy: expected shape (%lld,)", nc->name, (long long)rows);
    bnk_fx_load_npy(dir, "losses", &nc->losses, false);
    if (nc->losses.dtype != BNK_DTYPE_F64 || nc->losses.ndim != 1 ||
        nc->losses.shape[0] != p->steps) {
        fail_msg("%s: losses.npy: expected float64 (%lld,)", nc->name, (long long)p->steps);
    }

    /* A model only to learn the tensor names and shapes; each kernel run makes its own. */
    bnk_model_config mc = model_config(p);
    if (bnk_model_create(&nc->model, &mc) != BNK_OK)
        fail_msg("%s: bnk_model_create: %s", nc->name, bnk_errmsg());
    const int64_t classes = bnk_model_num_outputs(nc->model);
    nc->labels = malloc((size_t)rows * sizeof *nc->labels);
    if (nc->labels == NULL) fail_msg("out of memory");
    const float *lf = nc->labels_f.data;
    for (int64_t i = 0; i < rows; i++) {
        if (!(lf[i] >= 0.0f && lf[i] < (float)classes && lf[i] == floorf(lf[i])))
            fail_msg("%s: labels.npy[%lld] = %g is not a class index", nc->name, (long long)i,
                     (double)lf[i]);
        nc->labels[i] = (int32_t)lf[i];
    }

    nc->ntensors = bnk_model_tensor_count(nc->model);
    if (nc->ntensors < 1 || nc->ntensors > MAX_TENSORS)
        fail_msg("%s: model has %d tensors", nc->name, nc->ntensors);
    int have = count_tensor_files(dir);
    if (have != nc->ntensors)
        fail_msg("%s: the fixture has %d tensors, the model %d", nc->name, have, nc->ntensors);
    size_t max_count = 0;
    for (int i = 0; i < nc->ntensors; i++) {
        bnk_tensor_info ti;
        if (bnk_model_tensor(nc->model, i, &ti) != BNK_OK)
            fail_msg("%s: bnk_model_tensor(%d): %s", nc->name, i, bnk_errmsg());
        nn_tensor *t = &nc->t[i];
        snprintf(t->name, sizeof t->name, "%s", ti.name);
        t->bias_of = -1;
        char stem[96];
        bnk_fx_load_f32(dir, t->name, &t->init);
        check_shape(t->name, &ti, &t->init);
        snprintf(stem, sizeof stem, "%s.final", t->name);
        bnk_fx_load_f32(dir, stem, &t->final);
        check_shape(stem, &ti, &t->final);
        if (ti.count > max_count) max_count = ti.count;
        snprintf(stem, sizeof stem, "%s.sensitive", t->name);
        if (bnk_fx_load_npy(dir, stem, &t->sensitive, true)) {
            const double *idx = t->sensitive.data;
            if (!ti.trainable || t->sensitive.dtype != BNK_DTYPE_F64 || t->sensitive.ndim != 1)
                fail_msg("%s: %s.npy: expected float64 indices of a parameter", nc->name, stem);
            for (size_t j = 0; j < t->sensitive.count; j++) {
                if (!(idx[j] >= 0.0 && idx[j] < (double)ti.count && idx[j] == floor(idx[j])))
                    fail_msg("%s: %s.npy[%zu] = %g is not an index", nc->name, stem, j, idx[j]);
            }
        }
    }

    /* Biases directly followed by a BN, and the running means that absorb them. */
    for (int i = 0; i < nc->ntensors; i++) {
        nn_tensor *t = &nc->t[i];
        int layer;
        char field[48];
        if (sscanf(t->name, "%d.bn.%47s", &layer, field) != 2 || strcmp(field, "running_mean"))
            continue;
        char name[48];
        int b = -1;
        snprintf(name, sizeof name, "%d.dense.bias", layer - 1);
        if ((b = find_tensor(nc, name)) < 0) {
            snprintf(name, sizeof name, "%d.conv.bias", layer - 1);
            b = find_tensor(nc, name);
        }
        char stem[96];
        snprintf(stem, sizeof stem, "%s.bias_part", t->name);
        bool has_part = bnk_fx_load_npy(dir, stem, &t->bias_part, true);
        if (has_part != (b >= 0))
            fail_msg("%s: %s.npy %s, but layer %d %s a biased layer", nc->name, stem,
                     has_part ? "exists" : "is missing", layer - 1, b >= 0 ? "is" : "is not");
        if (b < 0) continue;
        if (t->bias_part.dtype != BNK_DTYPE_F64 || t->bias_part.count != t->init.count)
            fail_msg("%s: %s.npy: expected float64 of %zu", nc->name, stem, t->init.count);
        t->bias_of = b;
        nc->t[b].noise_bias = true;
    }
    nc->parts_stride = max_count;
    nc->parts = calloc((size_t)nc->ntensors * max_count, sizeof *nc->parts);
    nc->ref = malloc(max_count * sizeof *nc->ref);
    nc->got = malloc(max_count * sizeof *nc->got);
    if (nc->parts == NULL || nc->ref == NULL || nc->got == NULL) fail_msg("out of memory");
    bnk_model_destroy(nc->model);
    nc->model = NULL;
}

static int teardown_case(void **state) {
    nn_case *nc = *state;
    bnk_optim_destroy(nc->opt);
    bnk_model_destroy(nc->model);
    bnk_npy_free(&nc->x);
    bnk_npy_free(&nc->labels_f);
    bnk_npy_free(&nc->losses);
    free(nc->labels);
    free(nc->parts);
    free(nc->ref);
    free(nc->got);
    for (int i = 0; i < MAX_TENSORS; i++) {
        bnk_npy_free(&nc->t[i].init);
        bnk_npy_free(&nc->t[i].final);
        bnk_npy_free(&nc->t[i].bias_part);
        bnk_npy_free(&nc->t[i].sensitive);
    }
    const char *name = nc->name;
    memset(nc, 0, sizeof *nc);
    nc->name = name;
    return 0;
}

/* ---- training ----------------------------------------------------------------------------- */

/* Worst errors of one run, for the report. */
typedef struct nn_errors {
    double loss_rel;    /* max over steps of |loss - ref| / |ref| */
    double param_abs;   /* max |final - ref| over ordinary parameters */
    double noise_abs;   /* same over Adam-sensitive elements (check_sensitive) */
    double running_abs; /* same over running statistics (running means less their bias part) */
    double used;        /* max over final tensors of |diff| / (atol + rtol*|ref|) */
    char used_by[48];   /* the tensor where that was reached */
} nn_errors;

/* Max |got - ref| and max |got - ref| / (atol + rtol*|ref|) (NaN sticks in both). */
static double max_abs_diff(const float *got, const double *ref, size_t n, double atol, double rtol,
                           double *used) {
    double worst = 0.0;
    *used = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]), u = d / (atol + rtol * fabs(ref[i]));
        if (!(d <= worst)) worst = d;
        if (!(u <= *used)) *used = u;
    }
    return worst;
}

/* The elements of parameter t whose updates rounding noise decides (all of a bias before a BN,
 * and those the fixture lists in <name>.sensitive.npy): checked against Adam's movement bound
 * here, then got[c] = ref[c] so that the ordinary check passes over them. */
static void check_sensitive(const nn_case *nc, const char *kernel, const nn_tensor *t, float *got,
                            const double *ref, size_t count, nn_errors *err) {
    const double atol = TOL_NOISE_PER_LR * (double)nc->p.steps * nc->p.lr;
    const double *list = t->sensitive.data;
    size_t n = t->noise_bias ? count : t->sensitive.count;
    for (size_t j = 0; j < n; j++) {
        size_t c = t->noise_bias ? j : (size_t)list[j];
        double d = fabs((double)got[c] - ref[c]);
        if (!(d <= atol)) {
            fail_msg("%s [kernel %s]: final %s: index %zu (Adam-sensitive): expected %.10g, got "
                     "%.10g (|diff| %.3g > %.3g, Adam's largest movement)",
                     nc->name, kernel, t->name, c, ref[c], (double)got[c], d, atol);
        }
        if (d > err->noise_abs) err->noise_abs = d;
        got[c] = (float)ref[c];
    }
}

/* Trains a fresh model from the fixture's initial tensors with the selected BN kernel. */
static void run_kernel(nn_case *nc, const char *kernel, nn_errors *err) {
    const nn_params *p = &nc->p;
    memset(err, 0, sizeof *err);
    bnk_model_config mc = model_config(p);
    if (bnk_model_create(&nc->model, &mc) != BNK_OK)
        fail_msg("%s: bnk_model_create: %s", nc->name, bnk_errmsg());
    assert_int_equal(bnk_model_tensor_count(nc->model), nc->ntensors);

    bnk_tensor_info info[MAX_TENSORS];
    for (int i = 0; i < nc->ntensors; i++) {
        if (bnk_model_tensor(nc->model, i, &info[i]) != BNK_OK)
            fail_msg("%s: bnk_model_tensor(%d): %s", nc->name, i, bnk_errmsg());
        assert_string_equal(info[i].name, nc->t[i].name);
        check_shape(info[i].name, &info[i], &nc->t[i].init);
        memcpy(info[i].data, nc->t[i].init.data, info[i].count * sizeof(float));
    }
    memset(nc->parts, 0, (size_t)nc->ntensors * nc->parts_stride * sizeof *nc->parts);

    bnk_optim_config oc = bnk_optim_config_default(BNK_OPTIM_ADAM);
    oc.lr = p->lr;
    oc.beta1 = p->beta1;
    oc.beta2 = p->beta2;
    oc.eps = p->adam_eps;
    oc.weight_decay = 0.0;
    if (bnk_optim_create(&nc->opt, &oc, bnk_model_num_params(nc->model)) != BNK_OK)
        fail_msg("%s: bnk_optim_create: %s", nc->name, bnk_errmsg());

    const size_t in_size = (size_t)(p->in_c * p->in_h * p->in_w);
    const float *x = nc->x.data;
    const double *ref_loss = nc->losses.data;
    const double p_torch = p->bn_momentum_torch;
    for (int64_t k = 0; k < p->steps; k++) {
        /* the share of this step's bias in the final running mean (see the tolerances) */
        const double w = p_torch * pow(1.0 - p_torch, (double)(p->steps - 1 - k));
        for (int i = 0; i < nc->ntensors; i++) {
            if (nc->t[i].bias_of < 0) continue;
            const float *b = info[nc->t[i].bias_of].data;
            double *acc = nc->parts + (size_t)i * nc->parts_stride;
            for (size_t c = 0; c < info[i].count; c++) acc[c] += w * (double)b[c];
        }

        const float *xb = x + (size_t)(k * p->batch) * in_size;
        const int32_t *yb = nc->labels + k * p->batch;
        double loss = NAN;
        bnk_model_zero_grad(nc->model);
        if (bnk_model_forward(nc->model, xb, p->batch, true) != BNK_OK)
            fail_msg("%s [kernel %s] step %lld: forward: %s", nc->name, kernel, (long long)k,
                     bnk_errmsg());
        if (bnk_model_loss(nc->model, yb, p->batch, &loss, NULL) != BNK_OK)
            fail_msg("%s [kernel %s] step %lld: loss: %s", nc->name, kernel, (long long)k,
                     bnk_errmsg());
        double rel = fabs(loss - ref_loss[k]) / fabs(ref_loss[k]);
        if (!(rel <= TOL_LOSS_RTOL)) {
            fail_msg("%s [kernel %s]: loss of step %lld: expected %.10g (PyTorch), got %.10g "
                     "(relative error %.3g > %.3g)",
                     nc->name, kernel, (long long)k, ref_loss[k], loss, rel, TOL_LOSS_RTOL);
        }
        if (rel > err->loss_rel) err->loss_rel = rel;
        if (bnk_model_backward(nc->model, p->batch) != BNK_OK)
            fail_msg("%s [kernel %s] step %lld: backward: %s", nc->name, kernel, (long long)k,
                     bnk_errmsg());
        bnk_optim_step(nc->opt, bnk_model_params(nc->model), bnk_model_grads(nc->model),
                       bnk_model_decay_mask(nc->model), oc.lr);
    }
    assert_int_equal(bnk_optim_steps(nc->opt), p->steps);
    assert_int_equal(bnk_model_bn_step(nc->model), p->steps);

    /* Final tensors (tolerances at the top). */
    for (int i = 0; i < nc->ntensors; i++) {
        const nn_tensor *t = &nc->t[i];
        const bnk_tensor_info *ti = &info[i];
        const float *ref32 = t->final.data;
        double *ref = nc->ref;
        float *got = nc->got;
        for (size_t c = 0; c < ti->count; c++) {
            ref[c] = ref32[c];
            got[c] = ti->data[c];
        }
        double atol, rtol, *worst;
        if (t->bias_of >= 0) {
            /* running_mean - bias part, each from its own run's bias trajectory */
            const double *ref_part = t->bias_part.data;
            const double *got_part = nc->parts + (size_t)i * nc->parts_stride;
            for (size_t c = 0; c < ti->count; c++) {
                ref[c] -= ref_part[c];
                got[c] = (float)((double)ti->data[c] - got_part[c]);
            }
            atol = TOL_RUNNING_ATOL;
            rtol = TOL_RUNNING_RTOL;
            worst = &err->running_abs;
        } else if (!ti->trainable) {
            atol = TOL_RUNNING_ATOL;
            rtol = TOL_RUNNING_RTOL;
            worst = &err->running_abs;
        } else {
            check_sensitive(nc, kernel, t, got, ref, ti->count, err);
            atol = TOL_PARAM_ATOL;
            rtol = 0.0;
            worst = &err->param_abs;
        }
        double used;
        double d = max_abs_diff(got, ref, ti->count, atol, rtol, &used);
        if (!(d <= *worst)) *worst = d;
        if (!(used <= err->used)) {
            err->used = used;
            snprintf(err->used_by, sizeof err->used_by, "%s", t->name);
        }
        char label[160];
        snprintf(label, sizeof label, "%s [kernel %s]: final %s%s", nc->name, kernel, t->name,
                 t->bias_of >= 0 ? " - bias part" : "");
        bnk_test_close_f32(label, got, ref, ti->count, atol, rtol);
    }

    bnk_optim_destroy(nc->opt);
    nc->opt = NULL;
    bnk_model_destroy(nc->model);
    nc->model = NULL;
}

/* One training run per compiled BN kernel, and its report. */
static void run_and_report(void *ctx, const char *kernel) {
    nn_case *nc = ctx;
    nn_errors err;
    run_kernel(nc, kernel, &err);
    print_message("%s [kernel %s]: max relative loss error %.3g over %lld steps; final "
                  "max |diff|: parameters %.3g, Adam-sensitive elements %.3g, running statistics "
                  "%.3g; at most %.0f%% of a tolerance used (%s)\n",
                  nc->name, kernel, err.loss_rel, (long long)nc->p.steps, err.param_abs,
                  err.noise_abs, err.running_abs, 100.0 * err.used, err.used_by);
}

/* One case, trained once with every compiled BN kernel. */
static void test_case(void **state) {
    load_case(*state);
    bnk_fx_each_bn_kernel(run_and_report, *state);
}

static void test_case_index(void **state) {
    (void)state;
    bnk_fx_check_case_index(NN_DIR "/cases.txt", k_case_names, N_CASES);
}

int main(void) {
    struct CMUnitTest tests[N_CASES + 1] = {cmocka_unit_test(test_case_index)};
    for (size_t i = 0; i < N_CASES; i++) {
        g_cases[i].name = k_case_names[i];
        tests[i + 1] = bnk_fx_case_test(k_case_names[i], test_case, teardown_case, &g_cases[i]);
    }
    return cmocka_run_group_tests_name("nn_torch", tests, NULL, NULL);
}
