/* Internal helpers shared by every part of libbnkit (not installed). */
#ifndef BNKIT_CORE_INTERNAL_H
#define BNKIT_CORE_INTERNAL_H

#include "bnkit/status.h"

#if defined(__GNUC__)
#define BNK__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define BNK__PRINTF(fmt, args)
#endif

/* Records a formatted message for bnk_errmsg() on this thread and returns st, so that error
 * paths read `return bnk__fail(BNK_ERR_PARAM, "eps must be > 0, got %g", eps);`. */
bnk_status bnk__fail(bnk_status st, const char *fmt, ...) BNK__PRINTF(2, 3);

#endif /* BNKIT_CORE_INTERNAL_H */
