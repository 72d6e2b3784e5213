/* Search spaces: parameter definitions in text and JSON, activity of conditional parameters,
 * and the unit-cube coordinates the samplers work in. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bnkit/tune.h"
#include "core/internal.h"

void bnk_space_init(bnk_space *space) {
    memset(space, 0, sizeof *space);
}

static int find_param(const bnk_space *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->params[i].name, name) == 0) return i;
    return -1;
}

static int find_choice(const bnk_param *p, const char *v) {
    for (int k = 0; k < p->nchoices; k++)
        if (strcmp(p->choices[k], v) == 0) return k;
    return -1;
}

static bool parse_number(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return *s && *end == '\0' && isfinite(*out);
}

/* Checks a complete parameter and appends it. */
static bnk_status add_checked(bnk_space *s, const bnk_param *p, const char *def) {
    if (s->n == BNK_SPACE_MAX_PARAMS)
        return bnk__fail(BNK_ERR_PARAM, "search space: more than %d parameters",
                         BNK_SPACE_MAX_PARAMS);
    if (!p->name[0]) return bnk__fail(BNK_ERR_PARAM, "search space: '%s': empty name", def);
    if (find_param(s, p->name) >= 0)
        return bnk__fail(BNK_ERR_PARAM, "search space: '%s': %s is defined twice", def, p->name);
    if (p->kind == BNK_PARAM_CAT) {
        if (p->nchoices < 1) return bnk__fail(BNK_ERR_PARAM, "search space: '%s': no choices", def);
    } else {
        if (!(p->lo <= p->hi))
            return bnk__fail(BNK_ERR_PARAM, "search space: '%s': low %g exceeds high %g", def,
                             p->lo, p->hi);
        if (p->log && !(p->lo > 0))
            return bnk__fail(BNK_ERR_PARAM, "search space: '%s': a log scale needs low > 0", def);
        if (p->kind == BNK_PARAM_INT && (p->lo != floor(p->lo) || p->hi != floor(p->hi)))
            return bnk__fail(BNK_ERR_PARAM, "search space: '%s': int bounds must be integers", def);
    }
    if (p->parent >= 0 &&
        (p->parent >= s->n || s->params[p->parent].kind != BNK_PARAM_CAT || p->parent_choices == 0))
        return bnk__fail(BNK_ERR_PARAM, "search space: '%s': bad condition", def);
    s->params[s->n++] = *p;
    return BNK_OK;
}

bnk_status bnk_space_add(bnk_space *s, const char *def) {
    if (!s || !def) return bnk__fail(BNK_ERR_NULL, "search space: NULL argument");
    char buf[512];
    if (strlen(def) >= sizeof buf)
        return bnk__fail(BNK_ERR_PARAM, "search space: definition too long");
    strcpy(buf, def);
    bnk_param p = {.parent = -1};
    char *cond = strchr(buf, '@');
    if (cond) *cond++ = '\0';
    char *eq = strchr(buf, '=');
    if (!eq)
        return bnk__fail(BNK_ERR_PARAM,
                         "search space: '%s': expected NAME=KIND:..., e.g. "
                         "bn.momentum=log:0.7:0.999",
                         def);
    *eq = '\0';
    if (strlen(buf) >= sizeof p.name)
        return bnk__fail(BNK_ERR_PARAM, "search space: '%s': name too long", def);
    strcpy(p.name, buf);
    char *kind = eq + 1, *rest = strchr(kind, ':');
    if (!rest)
        return bnk__fail(BNK_ERR_PARAM, "search space: '%s': expected KIND:VALUES after '='", def);
    *rest++ = '\0';
    if (strcmp(kind, "cat") == 0) {
        p.kind = BNK_PARAM_CAT;
        for (char *c = rest; c;) {
            char *next = strchr(c, ',');
            if (next) *next++ = '\0';
            if (!*c || strlen(c) >= sizeof p.choices[0] || p.nchoices == BNK_PARAM_MAX_CHOICES)
                return bnk__fail(BNK_ERR_PARAM,
                                 "search space: '%s': choices must be 1-%d "
                                 "non-empty names of < %zu characters",
                                 def, BNK_PARAM_MAX_CHOICES, sizeof p.choices[0]);
            if (find_choice(&p, c) >= 0)
                return bnk__fail(BNK_ERR_PARAM, "search space: '%s': choice '%s' repeated", def, c);
            strcpy(p.choices[p.nchoices++], c);
            c = next;
        }
    } else {
        if (strcmp(kind, "float") == 0 || strcmp(kind, "log") == 0)
            p.kind = BNK_PARAM_FLOAT;
        else if (strcmp(kind, "int") == 0 || strcmp(kind, "logint") == 0)
            p.kind = BNK_PARAM_INT;
        else
            return bnk__fail(BNK_ERR_PARAM,
                             "search space: '%s': unknown kind '%s' (float, log, "
                             "int, logint, cat)",
                             def, kind);
        p.log = strncmp(kind, "log", 3) == 0;
        char *colon = strchr(rest, ':');
        if (!colon) return bnk__fail(BNK_ERR_PARAM, "search space: '%s': expected LOW:HIGH", def);
        *colon = '\0';
        if (!parse_number(rest, &p.lo) || !parse_number(colon + 1, &p.hi))
            return bnk__fail(BNK_ERR_PARAM,
                             "search space: '%s': LOW and HIGH must be finite "
                             "numbers",
                             def);
    }
    if (cond) {
        char *ceq = strchr(cond, '=');
        if (!ceq)
            return bnk__fail(BNK_ERR_PARAM, "search space: '%s': expected @PARENT=V1|V2", def);
        *ceq = '\0';
        p.parent = find_param(s, cond);
        if (p.parent < 0 || s->params[p.parent].kind != BNK_PARAM_CAT)
            return bnk__fail(BNK_ERR_PARAM,
                             "search space: '%s': the condition's parent '%s' "
                             "must be a categorical parameter defined before it",
                             def, cond);
        for (char *v = ceq + 1; v;) {
            char *next = strchr(v, '|');
            if (next) *next++ = '\0';
            int k = find_choice(&s->params[p.parent], v);
            if (k < 0)
                return bnk__fail(BNK_ERR_PARAM, "search space: '%s': '%s' is not a choice of %s",
                                 def, v, cond);
            p.parent_choices |= 1u << k;
            v = next;
        }
    }
    return add_checked(s, &p, def);
}

bnk_status bnk_space_default_bn(bnk_space *s) {
    static const char *const defs[] = {
        "bn.momentum=log:0.7:0.999",
        "bn.eps=log:1e-6:1e-2",
        "bn.rel_clip_r=log:1.1:100",
        "bn.rel_clip_d=log:0.1:100",
        "bn.normalize_with=cat:batch,running,renorm",
        "bn.rmax=float:1:5@bn.normalize_with=renorm",
        "bn.dmax=float:0:10@bn.normalize_with=renorm",
        "lr=log:1e-4:1e-2",
    };
    bnk_space_init(s);
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        bnk_status st = bnk_space_add(s, defs[i]);
        if (st != BNK_OK) return st;
    }
    return BNK_OK;
}

void bnk_space_param_str(const bnk_space *s, int i, char *buf, size_t size) {
    const bnk_param *p = &s->params[i];
    size_t n;
    if (p->kind == BNK_PARAM_CAT) {
        n = (size_t)snprintf(buf, size, "%s=cat:", p->name);
        for (int k = 0; k < p->nchoices && n < size; k++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", k ? "," : "", p->choices[k]);
    } else {
        const char *kind =
            p->kind == BNK_PARAM_INT ? (p->log ? "logint" : "int") : (p->log ? "log" : "float");
        n = (size_t)snprintf(buf, size, "%s=%s:%.17g:%.17g", p->name, kind, p->lo, p->hi);
    }
    if (p->parent >= 0 && n < size) {
        const bnk_param *q = &s->params[p->parent];
        n += (size_t)snprintf(buf + n, size - n, "@%s=", q->name);
        bool first = true;
        for (int k = 0; k < q->nchoices && n < size; k++)
            if (p->parent_choices & (1u << k)) {
                n += (size_t)snprintf(buf + n, size - n, "%s%s", first ? "" : "|", q->choices[k]);
                first = false;
            }
    }
}

/* JSON: {"params": ["bn.momentum=log:0.7:0.999", ...]} — the text forms, in order. */
bnk_status bnk_space_to_json(const bnk_space *s, char **json) {
    json_t *arr = json_array(), *root = json_object();
    char buf[1024];
    for (int i = 0; arr && i < s->n; i++) {
        bnk_space_param_str(s, i, buf, sizeof buf);
        json_array_append_new(arr, json_string(buf));
    }
    if (root && arr) json_object_set_new(root, "params", arr);
    *json = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *json ? BNK_OK : bnk__fail(BNK_ERR_NOMEM, "search space: cannot encode as JSON");
}

bnk_status bnk_space_from_json(bnk_space *s, const char *json) {
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    if (!root)
        return bnk__fail(BNK_ERR_FORMAT, "search space JSON: %s (line %d)", err.text, err.line);
    json_t *arr = json_object_get(root, "params");
    bnk_status st = BNK_OK;
    bnk_space_init(s);
    if (!json_is_array(arr)) st = bnk__fail(BNK_ERR_FORMAT, "search space JSON: no params array");
    for (size_t i = 0; st == BNK_OK && i < json_array_size(arr); i++) {
        const char *def = json_string_value(json_array_get(arr, i));
        st = def ? bnk_space_add(s, def)
                 : bnk__fail(BNK_ERR_FORMAT, "search space JSON: params[%zu] is not a string", i);
        if (st == BNK_ERR_PARAM) st = BNK_ERR_FORMAT;
    }
    json_decref(root);
    return st;
}

bool bnk_space_equal(const bnk_space *a, const bnk_space *b) {
    if (a->n != b->n) return false;
    char x[1024], y[1024];
    for (int i = 0; i < a->n; i++) {
        bnk_space_param_str(a, i, x, sizeof x);
        bnk_space_param_str(b, i, y, sizeof y);
        if (strcmp(x, y) != 0) return false;
    }
    return true;
}

bool bnk_space_active(const bnk_space *s, const bnk_point *x, int i) {
    const bnk_param *p = &s->params[i];
    if (p->parent < 0) return true;
    if (!bnk_space_active(s, x, p->parent)) return false;
    const double v = x->v[p->parent];
    return v >= 0 && v < 32 && (p->parent_choices & (1u << (int)v));
}

double bnk_space_to_unit(const bnk_space *s, int i, double value) {
    const bnk_param *p = &s->params[i];
    double lo = p->lo, hi = p->hi, v = value;
    if (p->kind == BNK_PARAM_INT) { /* log INT needs lo >= 1, so lo - 0.5 > 0 */
        lo -= 0.5;
        hi += 0.5;
    }
    if (p->log) {
        lo = log(lo);
        hi = log(hi);
        v = log(v);
    }
    return hi > lo ? (v - lo) / (hi - lo) : 0.5;
}

double bnk_space_from_unit(const bnk_space *s, int i, double u) {
    const bnk_param *p = &s->params[i];
    if (u < 0) u = 0;
    if (u > 1) u = 1;
    double lo = p->lo, hi = p->hi;
    if (p->kind == BNK_PARAM_INT) {
        lo -= 0.5;
        hi += 0.5;
    }
    double v;
    if (p->log) {
        v = exp(log(lo) + u * (log(hi) - log(lo)));
    } else {
        v = lo + u * (hi - lo);
    }
    if (p->kind == BNK_PARAM_INT) v = round(v);
    return v < p->lo ? p->lo : v > p->hi ? p->hi : v;
}

void bnk_space_value_str(const bnk_space *s, int i, double value, char *buf, size_t size) {
    const bnk_param *p = &s->params[i];
    if (isnan(value))
        snprintf(buf, size, "-");
    else if (p->kind == BNK_PARAM_CAT)
        snprintf(buf, size, "%s", value >= 0 && value < p->nchoices ? p->choices[(int)value] : "?");
    else if (p->kind == BNK_PARAM_INT)
        snprintf(buf, size, "%.0f", value);
    else
        snprintf(buf, size, "%.6g", value);
}

const char *bnk_trial_state_str(bnk_trial_state state) {
    static const char *const names[] = {"running", "complete", "pruned", "failed"};
    return state >= BNK_TRIAL_RUNNING && state <= BNK_TRIAL_FAILED ? names[state] : "unknown";
}
