/* error.h: the thread-local last-error message behind clipcl_last_error().
 * cc_fail() formats the message and returns the status so callers can write
 * `return cc_fail(CLIPCL_ERR_IO, "%s: cannot open", path);`. */
#ifndef CC_ERROR_H
#define CC_ERROR_H
#include "clipcl.h"

#if defined(__GNUC__)
#define CC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CC_PRINTF(a, b)
#endif

clipcl_status cc_fail(clipcl_status s, const char *fmt, ...) CC_PRINTF(2, 3);
/* Prefixes the current message with more context ("loading x: <old>"). */
clipcl_status cc_fail_ctx(clipcl_status s, const char *fmt, ...) CC_PRINTF(2, 3);
void cc_clear_error(void);
/* Passes a one-line notice to the handler set by clipcl_set_notice_handler
 * (none: dropped). For slow one-time work the caller should know about. */
void cc_notice(const char *fmt, ...) CC_PRINTF(1, 2);

#define CC_TRY(expr)                         \
  do {                                       \
    clipcl_status cc_try_s_ = (expr);        \
    if (cc_try_s_ != CLIPCL_OK) return cc_try_s_; \
  } while (0)
#endif
