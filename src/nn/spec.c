/* Model spec strings: "dense:128,relu,bn,dense:10" -> layer specs. Shapes are checked later,
 * when the model is built; here only the syntax and each token's arguments. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "nn/layer.h"

typedef struct kind_info {
    const char *name;
    bnk__layer_kind kind;
    int min_args, max_args;
    const char *usage;
} kind_info;

static const kind_info KINDS[] = {
    {"dense", BNK__LAYER_DENSE, 1, 1, "dense:UNITS"},
    {"conv", BNK__LAYER_CONV, 2, 4, "conv:FILTERS:K[:STRIDE[:PAD]]"},
    {"maxpool", BNK__LAYER_MAXPOOL, 1, 2, "maxpool:K[:STRIDE]"},
    {"relu", BNK__LAYER_RELU, 0, 0, "relu"},
    {"bn", BNK__LAYER_BN, 0, 0, "bn"},
    {"dropout", BNK__LAYER_DROPOUT, 0, 1, "dropout[:RATE]"},
    {"flatten", BNK__LAYER_FLATTEN, 0, 0, "flatten"},
};

/* Parses the ':'-separated arguments of token `tok` (position pos, 1-based) into ls. */
static bnk_status parse_token(const char *tok, int pos, bnk__layer_spec *ls) {
    if (strlen(tok) >= sizeof ls->token)
        return bnk__fail(BNK_ERR_PARAM, "model spec: layer %d '%.40s...' is too long", pos, tok);
    strcpy(ls->token, tok);
    char buf[sizeof ls->token];
    strcpy(buf, tok);
    char *colon = strchr(buf, ':');
    if (colon) *colon = '\0';
    const kind_info *ki = NULL;
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strcmp(buf, KINDS[i].name) == 0) ki = &KINDS[i];
    if (!ki)
        return bnk__fail(BNK_ERR_PARAM,
                         "model spec: layer %d '%s': unknown layer '%s' (known: dense, conv, "
                         "maxpool, relu, bn, dropout, flatten)",
                         pos, tok, buf);
    ls->kind = ki->kind;
    ls->nargs = 0;
    for (char *arg = colon ? colon + 1 : NULL; arg;) {
        char *next = strchr(arg, ':');
        if (next) *next++ = '\0';
        char *end;
        double v = strtod(arg, &end);
        if (ls->nargs == ki->max_args || *arg == '\0' || *end != '\0' || !isfinite(v))
            return bnk__fail(BNK_ERR_PARAM, "model spec: layer %d '%s': expected %s", pos, tok,
                             ki->usage);
        ls->args[ls->nargs++] = v;
        arg = next;
    }
    if (ls->nargs < ki->min_args)
        return bnk__fail(BNK_ERR_PARAM, "model spec: layer %d '%s': expected %s", pos, tok,
                         ki->usage);
    if (ki->kind == BNK__LAYER_DROPOUT) {
        if (ls->nargs == 1 && !(ls->args[0] >= 0.0 && ls->args[0] < 1.0))
            return bnk__fail(BNK_ERR_PARAM, "model spec: layer %d '%s': rate must be in [0, 1)",
                             pos, tok);
        return BNK_OK;
    }
    /* every other argument is a positive integer (conv padding may be 0) */
    for (int i = 0; i < ls->nargs; i++) {
        double v = ls->args[i];
        bool pad = ki->kind == BNK__LAYER_CONV && i == 3;
        if (v != floor(v) || v < (pad ? 0 : 1) || v > 1e6)
            return bnk__fail(BNK_ERR_PARAM,
                             "model spec: layer %d '%s': argument %d must be an integer %s", pos,
                             tok, i + 1, pad ? ">= 0" : ">= 1");
    }
    return BNK_OK;
}

bnk_status bnk__spec_parse(const char *spec, bnk__layer_spec *specs, int *count) {
    *count = 0;
    if (!spec || !*spec) return bnk__fail(BNK_ERR_PARAM, "model spec is empty");
    const char *p = spec;
    int pos = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) p++, len--;
        while (len && isspace((unsigned char)p[len - 1])) len--;
        pos++;
        if (len == 0) return bnk__fail(BNK_ERR_PARAM, "model spec: layer %d is empty", pos);
        if (pos > BNK__MAX_LAYERS)
            return bnk__fail(BNK_ERR_PARAM, "model spec: more than %d layers", BNK__MAX_LAYERS);
        char tok[64];
        if (len >= sizeof tok)
            return bnk__fail(BNK_ERR_PARAM, "model spec: layer %d '%.40s...' is too long", pos, p);
        memcpy(tok, p, len);
        tok[len] = '\0';
        bnk_status st = parse_token(tok, pos, &specs[pos - 1]);
        if (st != BNK_OK) return st;
        if (!comma) break;
        p = comma + 1;
    }
    *count = pos;
    return BNK_OK;
}
