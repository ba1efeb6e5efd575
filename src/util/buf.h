/* buf.h: a growing text buffer for files the library and the data set
 * programs write (JSON, CSV, HTML, manifests). Appends never fail visibly:
 * an allocation failure sets the sticky `oom`, checked once before use
 * (cc_buf_save in io/atomic.h does). */
#ifndef CC_BUF_H
#define CC_BUF_H
#include <stddef.h>

#include "clipcl.h"

typedef struct {
  char *p;
  size_t len, cap;
  int oom; /* sticky: an allocation failed */
} cc_buf;
void cc_buf_add(cc_buf *b, const void *data, size_t n);
void cc_buf_str(cc_buf *b, const char *s);
void cc_buf_printf(cc_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void cc_buf_free(cc_buf *b);
#endif
