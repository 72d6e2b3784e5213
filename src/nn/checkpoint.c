/* Checkpoints: a bnk_model to and from a safetensors file (format in bnkit/checkpoint.h).
 *
 * Saving gathers the model's named tensors, lays them out back to back, builds the header with
 * ckpt_format.c and writes prefix + header + data to a temporary file that is fsync'ed and
 * renamed over the target, so a crash never leaves a half-written checkpoint.
 *
 * Loading reads the 8-byte prefix and the header only, and validates them (ckpt_format.c)
 * before anything is allocated from their contents. The model the metadata describe is sized
 * first without allocating (bnk__model_plan): a spec that needs more floats than the file holds
 * is refused, so a small hostile file cannot make the loader allocate a large model. Then the
 * model is built, its tensors are matched by name and shape against the header, and the data
 * are read straight into the model's arenas in file order. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bnkit/checkpoint.h"
#include "core/internal.h"
#include "nn/checkpoint_internal.h"

#define CKPT_SLACK ((uint64_t)1 << 22) /* floats: 16 MB */

static const char *const INPUT_MEAN = "input.mean", *const INPUT_STD = "input.std";

static bnk_status check_host(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    if (first != 1) return bnk__fail(BNK_ERR_UNSUPPORTED, "checkpoints need a little-endian host");
    return BNK_OK;
}

/* Prefixes the current message with the file name: "model.safetensors: <message>". */
static bnk_status fail_in(bnk_status st, const char *path) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", bnk_errmsg());
    return bnk__fail(st, "%s: %s", path, msg);
}

/* ---- Saving -------------------------------------------------------------------------------- */

/* What a checkpoint file holds: the 8-byte header length, the header, then data[i]
 * (d->tensors[i].count floats each). */
typedef struct ckpt_file {
    const char *header;
    size_t hlen;
    const bnk__ckpt_desc *d;
    const float *const *data;
} ckpt_file;

static int ckpt_fill(int fd, void *ctx) {
    const ckpt_file *f = ctx;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)f->hlen >> (8 * i));
    int err = bnk__write_all(fd, prefix, sizeof prefix);
    if (err == 0) err = bnk__write_all(fd, f->header, f->hlen);
    for (int i = 0; err == 0 && i < f->d->ntensors; i++)
        err = bnk__write_all(fd, f->data[i], f->d->tensors[i].count * sizeof(float));
    return err;
}

/* The checkpoint file, to path atomically. */
static bnk_status write_file(const char *path, const char *header, size_t hlen,
                             const bnk__ckpt_desc *d, const float *const *data) {
    ckpt_file f = {header, hlen, d, data};
    return bnk__write_file_atomic(path, ckpt_fill, &f);
}

static void add_entry(bnk__ckpt_desc *d, const float **data, const char *name, int ndim,
                      const int64_t *shape, const float *values) {
    bnk__ckpt_tensor *t = &d->tensors[d->ntensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int k = 0; k < ndim; k++) {
        t->shape[k] = shape[k];
        t->count *= (size_t)shape[k];
    }
    t->begin = d->data_len;
    t->end = t->begin + 4 * (uint64_t)t->count;
    d->data_len = t->end;
    data[d->ntensors++] = values;
}

bnk_status bnk_checkpoint_save(bnk_model *model, const char *path,
                               const bnk_checkpoint_meta *meta) {
    if (!model || !path) return bnk__fail(BNK_ERR_NULL, "checkpoint save: model and path required");
    bnk_status st = check_host();
    if (st != BNK_OK) return st;
    const bnk_scaling scaling = meta ? meta->scaling : BNK_SCALE_UNIT;
    if (scaling != BNK_SCALE_NONE && scaling != BNK_SCALE_UNIT && scaling != BNK_SCALE_STANDARDIZE)
        return bnk__fail(BNK_ERR_PARAM, "checkpoint save: unknown scaling %d", (int)scaling);
    const bool stats = scaling == BNK_SCALE_STANDARDIZE;
    if (stats && (!meta->input_mean || !meta->input_std))
        return bnk__fail(BNK_ERR_PARAM, "checkpoint save: standardize scaling needs the input "
                                        "mean and std");
    const bnk_model_config mc = bnk_model_get_config(model);
    bnk__ckpt_desc d = {
        .spec = (char *)mc.spec,
        .in_c = mc.in_c,
        .in_h = mc.in_h,
        .in_w = mc.in_w,
        .bn_step = bnk_model_bn_step(model),
        .bn = mc.bn,
        .dropout = mc.dropout,
        .seed = mc.seed,
        .data = meta ? (char *)meta->data : NULL,
        .test_data = meta ? (char *)meta->test_data : NULL,
        .scaling = scaling,
        .folded = meta && meta->folded,
    };
    const int nt = bnk_model_tensor_count(model), total = nt + (stats ? 2 : 0);
    d.tensors = calloc((size_t)total + 1, sizeof *d.tensors);
    const float **data = calloc((size_t)total + 1, sizeof *data);
    if (!d.tensors || !data) {
        free(d.tensors);
        free(data);
        return bnk__fail(BNK_ERR_NOMEM, "checkpoint save: cannot allocate the tensor table");
    }
    for (int i = 0; i < nt; i++) {
        bnk_tensor_info t;
        bnk_model_tensor(model, i, &t);
        add_entry(&d, data, t.name, t.ndim, t.shape, t.data);
    }
    if (stats) {
        const int64_t chw[3] = {mc.in_c, mc.in_h, mc.in_w};
        add_entry(&d, data, INPUT_MEAN, 3, chw, meta->input_mean);
        add_entry(&d, data, INPUT_STD, 3, chw, meta->input_std);
    }
    char *header = NULL;
    size_t hlen;
    st = bnk__ckpt_build_header(&d, &header, &hlen);
    if (st == BNK_OK) st = write_file(path, header, hlen, &d, data);
    free(header);
    free(d.tensors);
    free(data);
    return st;
}

/* ---- Loading ------------------------------------------------------------------------------- */

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (n < size) snprintf(buf + n, size - n, ")");
}

static bnk__ckpt_tensor *find(bnk__ckpt_desc *d, const char *name) {
    for (int i = 0; i < d->ntensors; i++)
        if (strcmp(d->tensors[i].name, name) == 0) return &d->tensors[i];
    return NULL;
}

/* Matches one expected tensor: present, same shape. */
static bnk_status match(bnk__ckpt_desc *d, const char *name, int ndim, const int64_t *shape,
                        float *dest, float **dests, bool *used) {
    bnk__ckpt_tensor *t = find(d, name);
    if (!t)
        return bnk__fail(BNK_ERR_FORMAT, "tensor '%s' of the model '%.200s' is missing", name,
                         d->spec);
    bool same = t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char got[96], want[96];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return bnk__fail(BNK_ERR_FORMAT,
                         "tensor '%s': shape %s in the file, %s in the model '%.200s'", name, got,
                         want, d->spec);
    }
    const size_t i = (size_t)(t - d->tensors);
    dests[i] = dest;
    used[i] = true;
    return BNK_OK;
}

/* Checks the values just read into tensor t. */
static bnk_status check_values(const bnk__ckpt_tensor *t, const float *v) {
    const bool var = strstr(t->name, ".running_var") != NULL, std = strcmp(t->name, INPUT_STD) == 0;
    for (size_t j = 0; j < t->count; j++) {
        if (!isfinite(v[j]))
            return bnk__fail(BNK_ERR_FORMAT, "tensor '%s': element %zu is %g (not finite)", t->name,
                             j, (double)v[j]);
        if ((var && v[j] < 0.0f) || (std && v[j] <= 0.0f))
            return bnk__fail(BNK_ERR_FORMAT, "tensor '%s': element %zu is %g (must be %s 0)",
                             t->name, j, (double)v[j], var ? ">=" : ">");
    }
    return BNK_OK;
}

/* Builds the model of d and reads the data section (at file offset data_at) into it. */
static bnk_status load_model(int fd, bnk__ckpt_desc *d, int64_t max_batch, bnk_model **out,
                             float **stats) {
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = d->spec;
    mc.in_c = d->in_c;
    mc.in_h = d->in_h;
    mc.in_w = d->in_w;
    mc.max_batch = max_batch;
    mc.bn = d->bn;
    mc.dropout = d->dropout;
    mc.seed = d->seed;
    size_t nparams = 0, nbuffers = 0;
    bnk_status st = bnk__model_plan(&mc, &nparams, &nbuffers);
    if (st != BNK_OK) {
        if (st == BNK_ERR_NOMEM) return st;
        char msg[400];
        snprintf(msg, sizeof msg, "%s", bnk_errmsg());
        return bnk__fail(BNK_ERR_FORMAT, "__metadata__ describes no valid model: %s", msg);
    }
    const size_t feats = (size_t)(d->in_c * d->in_h * d->in_w);
    const bool standardize = d->scaling == BNK_SCALE_STANDARDIZE;
    /* Allocation guard: a model may need at most CKPT_SLACK floats more than the file holds
     * (so that a small missing tensor is still reported by name below). No overflow: the plan
     * bounds the parameters by 2^46, feats is at most 2^60. */
    const uint64_t have = d->data_len / 4 + CKPT_SLACK;
    if ((uint64_t)nparams + nbuffers > have || (standardize && 2 * (uint64_t)feats > have))
        return bnk__fail(BNK_ERR_FORMAT,
                         "the model '%.200s' needs %zu floats of parameters and statistics but "
                         "the file holds %" PRIu64 " (tensors missing or too small)",
                         d->spec, nparams + nbuffers, d->data_len / 4);
    if ((st = bnk_model_create(out, &mc)) != BNK_OK) {
        if (st == BNK_ERR_NOMEM) return st;
        char msg[400];
        snprintf(msg, sizeof msg, "%s", bnk_errmsg());
        return bnk__fail(BNK_ERR_FORMAT, "__metadata__ describes no valid model: %s", msg);
    }
    float **dests = calloc((size_t)d->ntensors + 1, sizeof *dests);
    bool *used = calloc((size_t)d->ntensors + 1, sizeof *used);
    if (!dests || !used) st = bnk__fail(BNK_ERR_NOMEM, "cannot allocate the tensor table");
    for (int i = 0; st == BNK_OK && i < bnk_model_tensor_count(*out); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(*out, i, &t);
        st = match(d, t.name, t.ndim, t.shape, t.data, dests, used);
    }
    if (st == BNK_OK && standardize) {
        const int64_t chw[3] = {d->in_c, d->in_h, d->in_w};
        stats[0] = malloc(feats * sizeof(float));
        stats[1] = malloc(feats * sizeof(float));
        if (!stats[0] || !stats[1]) st = bnk__fail(BNK_ERR_NOMEM, "cannot allocate input stats");
        if (st == BNK_OK) st = match(d, INPUT_MEAN, 3, chw, stats[0], dests, used);
        if (st == BNK_OK) st = match(d, INPUT_STD, 3, chw, stats[1], dests, used);
    }
    for (int i = 0; st == BNK_OK && i < d->ntensors; i++)
        if (!used[i])
            st = bnk__fail(
                BNK_ERR_FORMAT, "tensor '%s' is not part of the model '%.200s'%s",
                d->tensors[i].name, d->spec,
                (!strcmp(d->tensors[i].name, INPUT_MEAN) || !strcmp(d->tensors[i].name, INPUT_STD))
                    ? " (input statistics need scaling 'standardize')"
                    : "");
    /* The tiling check guarantees file order = sorted order, back to back. */
    for (int i = 0; st == BNK_OK && i < d->ntensors; i++) {
        const size_t bytes = d->tensors[i].count * sizeof(float);
        ssize_t got = bnk__read_full(fd, dests[i], bytes);
        if (got < 0)
            st = bnk__fail(BNK_ERR_IO, "read error: %s", strerror(errno));
        else if ((size_t)got != bytes)
            st = bnk__fail(BNK_ERR_FORMAT, "truncated while reading tensor '%s'",
                           d->tensors[i].name);
        else
            st = check_values(&d->tensors[i], dests[i]);
    }
    free(dests);
    free(used);
    if (st == BNK_OK) bnk_model_set_bn_step(*out, d->bn_step);
    return st;
}

bnk_status bnk_checkpoint_load(bnk_model **out, const char *path, int64_t max_batch,
                               bnk_checkpoint_meta *meta) {
    if (meta) memset(meta, 0, sizeof *meta);
    if (!out || !path) return bnk__fail(BNK_ERR_NULL, "checkpoint load: out and path required");
    *out = NULL;
    if (max_batch < 1 || max_batch > (1 << 24))
        return bnk__fail(BNK_ERR_SIZE, "checkpoint load: max_batch must be in [1, 2^24], got %lld",
                         (long long)max_batch);
    bnk_status st = check_host();
    if (st != BNK_OK) return st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bnk__fail(BNK_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    unsigned char prefix[8];
    uint64_t hlen = 0;
    char *header = NULL;
    float *stats[2] = {NULL, NULL};
    bnk__ckpt_desc d = {0};
    ssize_t got;
    if (fstat(fd, &sb) != 0) {
        st = bnk__fail(BNK_ERR_IO, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = bnk__fail(BNK_ERR_IO, "not a regular file");
    } else if ((got = bnk__read_full(fd, prefix, sizeof prefix)) < 0) {
        st = bnk__fail(BNK_ERR_IO, "read error: %s", strerror(errno));
    } else {
        const uint64_t size = (uint64_t)got < sizeof prefix ? (uint64_t)got : (uint64_t)sb.st_size;
        st = bnk__ckpt_prefix(prefix, size, &hlen);
        if (st == BNK_OK && !(header = malloc((size_t)hlen)))
            st = bnk__fail(BNK_ERR_NOMEM, "cannot allocate %" PRIu64 " bytes for the header", hlen);
        if (st == BNK_OK) {
            got = bnk__read_full(fd, header, (size_t)hlen);
            if (got < 0)
                st = bnk__fail(BNK_ERR_IO, "read error: %s", strerror(errno));
            else if ((uint64_t)got != hlen)
                st = bnk__fail(BNK_ERR_FORMAT, "truncated inside the header");
        }
        if (st == BNK_OK) st = bnk__ckpt_parse_header(&d, header, (size_t)hlen, size - 8 - hlen);
        if (st == BNK_OK) st = load_model(fd, &d, max_batch, out, stats);
        if (st == BNK_OK) {
            /* the file must end where the data section ends (it may have grown since fstat) */
            unsigned char extra;
            if (bnk__read_full(fd, &extra, 1) != 0)
                st = bnk__fail(BNK_ERR_FORMAT, "bytes after the data section");
        }
    }
    close(fd);
    free(header);
    if (st == BNK_OK && meta) {
        meta->scaling = d.scaling;
        meta->folded = d.folded;
        meta->data = d.data;
        meta->test_data = d.test_data;
        d.data = d.test_data = NULL;
        meta->input_mean = stats[0];
        meta->input_std = stats[1];
        stats[0] = stats[1] = NULL;
    }
    free(stats[0]);
    free(stats[1]);
    bnk__ckpt_desc_free(&d);
    if (st != BNK_OK) {
        bnk_model_destroy(*out);
        *out = NULL;
        return fail_in(st, path);
    }
    return BNK_OK;
}

void bnk_checkpoint_meta_free(bnk_checkpoint_meta *meta) {
    if (!meta) return;
    free((void *)meta->data);
    free((void *)meta->test_data);
    free((void *)meta->input_mean);
    free((void *)meta->input_std);
    memset(meta, 0, sizeof *meta);
}
