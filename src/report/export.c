/* Exports of every trial of a study: CSV (one row per trial, RFC 4180) and JSON (jansson). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report/report_internal.h"

static bnk_status check_args(const char *fn, const char *path, const bnk_study_config *cfg,
                             const bnk_trial *trials, int64_t n) {
    if (!path || !cfg || (n > 0 && !trials))
        return bnk__fail(BNK_ERR_NULL, "%s: path, cfg or trials is NULL", fn);
    if (n < 0) return bnk__fail(BNK_ERR_SIZE, "%s: negative trial count %lld", fn, (long long)n);
    return BNK_OK;
}

static int momentum_index(const bnk_space *s) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->params[i].name, "bn.momentum") == 0) return i;
    return -1;
}

/* ---- CSV ------------------------------------------------------------------------------------ */

/* A field, quoted when it holds a comma, quote, line break or edge blank. */
static void csv_field(bnk__buf *b, const char *s, bool first) {
    if (!first) bnk__buf_puts(b, ",");
    size_t n = strlen(s);
    bool quote = n > 0 && (strpbrk(s, ",\"\r\n") || s[0] == ' ' || s[n - 1] == ' ');
    if (!quote) {
        bnk__buf_puts(b, s);
        return;
    }
    bnk__buf_puts(b, "\"");
    for (const char *p = s; *p; p++) bnk__buf_puts(b, *p == '"' ? "\"\"" : (char[]){*p, 0});
    bnk__buf_puts(b, "\"");
}

static void csv_number(bnk__buf *b, double v) {
    if (isfinite(v))
        bnk__buf_printf(b, ",%.17g", v);
    else
        bnk__buf_puts(b, ",");
}

/* The diagnostics columns: the last epoch's values, then how many epochs raised each flag. */
static void csv_last_epoch(bnk__buf *b, const bnk_trial *t) {
    if (t->nepochs <= 0) {
        bnk__buf_puts(b, ",,,,,,,,,,,,,");
        return;
    }
    const bnk_trial_epoch *e = &t->epochs[t->nepochs - 1];
    int64_t over = 0, vanish = 0;
    for (int64_t j = 0; j < t->nepochs; j++) {
        over += t->epochs[j].overfitting;
        vanish += t->epochs[j].vanishing_gradients;
    }
    bnk__buf_printf(b, ",%lld", (long long)e->step);
    csv_number(b, e->train_loss);
    csv_number(b, e->train_accuracy);
    csv_number(b, e->val_loss);
    csv_number(b, e->val_accuracy);
    bnk__buf_printf(b, ",%d,%d", (int)e->vanishing_gradients, (int)e->overfitting);
    csv_number(b, e->min_grad_norm);
    csv_field(b, e->min_grad_tensor, false);
    csv_number(b, e->bn_min_running_var);
    csv_number(b, e->bn_max_running_var);
    bnk__buf_printf(b, ",%lld,%lld", (long long)over, (long long)vanish);
}

bnk_status bnk_report_write_csv(const char *path, const bnk_study_config *cfg,
                                const bnk_trial *trials, int64_t n) {
    bnk_status st = check_args("bnk_report_write_csv", path, cfg, trials, n);
    if (st != BNK_OK) return st;
    const bnk_space *s = &cfg->space;
    const int mom = momentum_index(s);
    bnk__buf b = {0};
    bnk__buf_puts(&b, "number,id,state,");
    csv_field(&b, cfg->objective, true);
    for (int i = 0; i < s->n; i++) csv_field(&b, s->params[i].name, false);
    if (mom >= 0) bnk__buf_puts(&b, ",bn.momentum_pytorch");
    bnk__buf_puts(&b, ",steps,intermediate,worker,reason,started,finished,seconds");
    /* the trainer's diagnostics of the trial's last reported epoch (empty when none) */
    bnk__buf_puts(&b, ",diag_epoch,train_loss,train_accuracy,val_loss,val_accuracy,"
                      "vanishing_gradients,overfitting,min_grad_norm,min_grad_tensor,"
                      "bn_min_running_var,bn_max_running_var,overfitting_epochs,"
                      "vanishing_epochs\r\n");
    for (int64_t k = 0; k < n; k++) {
        const bnk_trial *t = &trials[k];
        bnk__buf_printf(&b, "%lld,%lld,%s", (long long)t->number, (long long)t->id,
                        bnk_trial_state_str(t->state));
        csv_number(&b, t->value);
        for (int i = 0; i < s->n; i++) {
            const double v = t->x.v[i];
            const bnk_param *p = &s->params[i];
            if (isnan(v))
                bnk__buf_puts(&b, ",");
            else if (p->kind == BNK_PARAM_CAT)
                csv_field(&b, v >= 0 && v < p->nchoices ? p->choices[(int)v] : "?", false);
            else if (p->kind == BNK_PARAM_INT)
                bnk__buf_printf(&b, ",%.0f", v);
            else
                csv_number(&b, v);
        }
        if (mom >= 0) csv_number(&b, 1.0 - t->x.v[mom]);
        bnk__buf_printf(&b, ",%lld,", (long long)t->ncurve);
        /* intermediate values in the objective's units, ';'-separated, empty when missing */
        for (int64_t j = 0; j < t->ncurve; j++) {
            if (j) bnk__buf_puts(&b, ";");
            if (isfinite(t->curve[j]))
                bnk__buf_printf(&b, "%.10g", cfg->maximize ? -t->curve[j] : t->curve[j]);
        }
        csv_field(&b, t->worker, false);
        csv_field(&b, t->reason, false);
        csv_number(&b, t->started > 0 ? t->started : NAN);
        csv_number(&b, t->finished > 0 ? t->finished : NAN);
        csv_number(&b,
                   t->started > 0 && t->finished >= t->started ? t->finished - t->started : NAN);
        csv_last_epoch(&b, t);
        bnk__buf_puts(&b, "\r\n");
    }
    st = b.oom ? bnk__fail(BNK_ERR_NOMEM, "bnk_report_write_csv: out of memory")
               : bnk__write_atomic(path, b.data, b.len);
    bnk__buf_free(&b);
    return st;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

/* A JSON string; bytes that are not valid UTF-8 (jansson refuses them) become '?'. */
static json_t *text_json(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    char buf[1024];
    size_t k = 0;
    for (; s[k] && k + 1 < sizeof buf; k++) buf[k] = (unsigned char)s[k] < 0x80 ? s[k] : '?';
    buf[k] = '\0';
    return json_string(buf);
}

static json_t *real_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *space_json(const bnk_space *s) {
    static const char *const kinds[] = {"float", "int", "cat"};
    json_t *arr = json_array();
    for (int i = 0; i < s->n; i++) {
        const bnk_param *p = &s->params[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", text_json(p->name));
        json_object_set_new(o, "kind", json_string(kinds[p->kind]));
        if (p->kind == BNK_PARAM_CAT) {
            json_t *c = json_array();
            for (int k = 0; k < p->nchoices; k++)
                json_array_append_new(c, text_json(p->choices[k]));
            json_object_set_new(o, "choices", c);
        } else {
            json_object_set_new(o, "log", json_boolean(p->log));
            json_object_set_new(o, "low", json_real(p->lo));
            json_object_set_new(o, "high", json_real(p->hi));
        }
        if (p->parent >= 0) {
            const bnk_param *q = &s->params[p->parent];
            json_t *c = json_array();
            for (int k = 0; k < q->nchoices; k++)
                if (p->parent_choices >> k & 1u) json_array_append_new(c, text_json(q->choices[k]));
            json_object_set_new(o, "parent", text_json(q->name));
            json_object_set_new(o, "parent_choices", c);
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

json_t *bnk__report_epochs_json(const bnk_trial *t) {
    json_t *arr = json_array();
    for (int64_t j = 0; j < t->nepochs; j++) {
        const bnk_trial_epoch *e = &t->epochs[j];
        json_t *o = json_object();
        json_object_set_new(o, "step", json_integer(e->step));
        json_object_set_new(o, "train_loss", real_or_null(e->train_loss));
        json_object_set_new(o, "train_accuracy", real_or_null(e->train_accuracy));
        json_object_set_new(o, "val_loss", real_or_null(e->val_loss));
        json_object_set_new(o, "val_accuracy", real_or_null(e->val_accuracy));
        json_object_set_new(o, "vanishing_gradients", json_boolean(e->vanishing_gradients));
        json_object_set_new(o, "overfitting", json_boolean(e->overfitting));
        json_object_set_new(o, "min_grad_norm", real_or_null(e->min_grad_norm));
        json_object_set_new(o, "min_grad_tensor",
                            e->min_grad_tensor[0] ? text_json(e->min_grad_tensor) : json_null());
        json_object_set_new(o, "bn_min_running_var", real_or_null(e->bn_min_running_var));
        json_object_set_new(o, "bn_max_running_var", real_or_null(e->bn_max_running_var));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *trial_json(const bnk_study_config *cfg, const bnk_trial *t) {
    const bnk_space *s = &cfg->space;
    json_t *o = json_object(), *params = json_object(), *curve = json_array();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "number", json_integer(t->number));
    json_object_set_new(o, "state", json_string(bnk_trial_state_str(t->state)));
    for (int i = 0; i < s->n; i++) {
        const double v = t->x.v[i];
        const bnk_param *p = &s->params[i];
        if (isnan(v)) continue;
        json_object_set_new(params, p->name,
                            p->kind == BNK_PARAM_CAT
                                ? text_json(v >= 0 && v < p->nchoices ? p->choices[(int)v] : "?")
                            : p->kind == BNK_PARAM_INT ? json_integer((json_int_t)v)
                                                       : json_real(v));
        if (strcmp(p->name, "bn.momentum") == 0)
            json_object_set_new(params, "bn.momentum_pytorch", json_real(1.0 - v));
    }
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "value", real_or_null(t->value));
    for (int64_t k = 0; k < t->ncurve; k++)
        json_array_append_new(curve, real_or_null(cfg->maximize ? -t->curve[k] : t->curve[k]));
    json_object_set_new(o, "intermediate", curve);
    json_object_set_new(o, "epochs", bnk__report_epochs_json(t));
    json_object_set_new(o, "worker", text_json(t->worker));
    json_object_set_new(o, "reason", t->reason[0] ? text_json(t->reason) : json_null());
    json_object_set_new(o, "started", t->started > 0 ? json_real(t->started) : json_null());
    json_object_set_new(o, "finished", t->finished > 0 ? json_real(t->finished) : json_null());
    return o;
}

bnk_status bnk_report_write_json(const char *path, const bnk_study_config *cfg,
                                 const bnk_trial *trials, int64_t n) {
    bnk_status st = check_args("bnk_report_write_json", path, cfg, trials, n);
    if (st != BNK_OK) return st;
    json_t *root = json_object(), *arr = json_array();
    if (!root || !arr) {
        json_decref(root);
        json_decref(arr);
        return bnk__fail(BNK_ERR_NOMEM, "bnk_report_write_json: out of memory");
    }
    json_object_set_new(root, "study", text_json(cfg->name));
    json_object_set_new(root, "objective", text_json(cfg->objective));
    json_object_set_new(root, "maximize", json_boolean(cfg->maximize));
    json_object_set_new(root, "sampler", json_string(bnk_sampler_kind_str(cfg->sampler.kind)));
    json_object_set_new(root, "pruner", json_string(bnk_pruner_kind_str(cfg->pruner.kind)));
    if (cfg->pruner.kind == BNK_PRUNER_MEDIAN)
        json_object_set_new(root, "pruner_percentile", json_real(cfg->pruner.percentile));
    json_object_set_new(root, "train_args", text_json(cfg->train_args));
    json_object_set_new(root, "space", space_json(&cfg->space));
    for (int64_t k = 0; k < n; k++) json_array_append_new(arr, trial_json(cfg, &trials[k]));
    json_object_set_new(root, "trials", arr);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17) | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!text) return bnk__fail(BNK_ERR_NOMEM, "bnk_report_write_json: cannot serialise");
    bnk__buf b = {0};
    bnk__buf_puts(&b, text);
    bnk__buf_puts(&b, "\n");
    free(text);
    st = b.oom ? bnk__fail(BNK_ERR_NOMEM, "bnk_report_write_json: out of memory")
               : bnk__write_atomic(path, b.data, b.len);
    bnk__buf_free(&b);
    return st;
}
