/* bnkit/status.h — status codes shared by every part of libbnkit.
 *
 * Every fallible bnkit function returns a bnk_status. BNK_OK is 0; every other value is an
 * error. bnk_status_str() names a code; bnk_errmsg() returns the detailed message of the last
 * error raised on the calling thread ("momentum must be in [0, 1), got 1.5").
 *
 *     bnk_status st = bnk_bn_forward_train(...);
 *     if (st != BNK_OK) fprintf(stderr, "%s: %s\n", bnk_status_str(st), bnk_errmsg());
 */
#ifndef BNKIT_STATUS_H
#define BNKIT_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: the one table of codes and their short descriptions. */
#define BNK_STATUS_TABLE(X)                                                                        \
    X(BNK_OK, "ok")                                                                                \
    X(BNK_ERR_NULL, "required pointer is NULL")                                                    \
    X(BNK_ERR_SIZE, "invalid size")                                                                \
    X(BNK_ERR_OVERFLOW, "size overflows the address space")                                        \
    X(BNK_ERR_PARAM, "invalid hyperparameter")                                                     \
    X(BNK_ERR_BATCH, "batch too small for training (one value per channel)")                       \
    X(BNK_ERR_SHAPE, "shape mismatch")                                                             \
    X(BNK_ERR_NOMEM, "out of memory")                                                              \
    X(BNK_ERR_IO, "I/O error")                                                                     \
    X(BNK_ERR_FORMAT, "malformed or unsupported file")                                             \
    X(BNK_ERR_UNSUPPORTED, "unsupported request")

typedef enum bnk_status {
#define BNK__STATUS_ENUM(code, text) code,
    BNK_STATUS_TABLE(BNK__STATUS_ENUM)
#undef BNK__STATUS_ENUM
} bnk_status;

/* Short, static description of a status code ("invalid hyperparameter"). Never NULL. */
const char *bnk_status_str(bnk_status st);

/* Detailed message of the most recent error on this thread; "" when none has been raised.
 * Valid until the next failing bnkit call on the same thread. */
const char *bnk_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_STATUS_H */
