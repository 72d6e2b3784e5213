/* Internal helpers shared by every part of libbnkit (not installed). */
#ifndef BNKIT_CORE_INTERNAL_H
#define BNKIT_CORE_INTERNAL_H

#include <stddef.h>

#include "bnkit/status.h"

#if defined(__GNUC__)
#define BNK__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define BNK__PRINTF(fmt, args)
#endif

/* Records a formatted message for bnk_errmsg() on this thread and returns st, so that error
 * paths read `return bnk__fail(BNK_ERR_PARAM, "eps must be > 0, got %g", eps);`. */
bnk_status bnk__fail(bnk_status st, const char *fmt, ...) BNK__PRINTF(2, 3);

/* Creates "<path>.tmpXXXXXX" exclusively, for an atomic write followed by rename(): tmp holds
 * the destination path in its first base_len bytes and has room for 11 more. Unlike mkstemp
 * (mode 0600), the file is opened with mode 0666, so the umask decides the permissions of the
 * renamed file as for any new file. Returns the fd, or -1 with errno set. */
int bnk__open_temp(char *tmp, size_t base_len);

#endif /* BNKIT_CORE_INTERNAL_H */
