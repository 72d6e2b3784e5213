/* Status codes, their descriptions, and the per-thread error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"

static _Thread_local char bnk__errbuf[512];

const char *bnk_status_str(bnk_status st) {
    switch (st) {
#define BNK__STATUS_CASE(code, text)                                                               \
    case code:                                                                                     \
        return text;
        BNK_STATUS_TABLE(BNK__STATUS_CASE)
#undef BNK__STATUS_CASE
    }
    return "unknown status";
}

const char *bnk_errmsg(void) {
    return bnk__errbuf;
}

bnk_status bnk__fail(bnk_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bnk__errbuf, sizeof bnk__errbuf, fmt, ap);
    va_end(ap);
    return st;
}
