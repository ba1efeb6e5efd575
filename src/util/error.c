/* error.c: thread-local last error message and status names. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char cc_err_msg[8192];

const char *clipcl_last_error(void) { return cc_err_msg; }

void cc_clear_error(void) { cc_err_msg[0] = 0; }

/* Set once by the program before it opens devices (not synchronised). */
static clipcl_notice_fn notice_fn;
static void *notice_user;

void clipcl_set_notice_handler(clipcl_notice_fn fn, void *user) {
  notice_fn = fn;
  notice_user = user;
}

void cc_notice(const char *fmt, ...) {
  if (!notice_fn) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  notice_fn(msg, notice_user);
}

clipcl_status cc_fail(clipcl_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cc_err_msg, sizeof cc_err_msg, fmt, ap);
  va_end(ap);
  return s;
}

clipcl_status cc_fail_ctx(clipcl_status s, const char *fmt, ...) {
  char prefix[512], old[sizeof cc_err_msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, cc_err_msg, sizeof old);
  size_t n = strlen(prefix);
  memcpy(cc_err_msg, prefix, n);
  cc_err_msg[n++] = ':';
  cc_err_msg[n++] = ' ';
  size_t m = strlen(old);
  if (m > sizeof cc_err_msg - n - 1) m = sizeof cc_err_msg - n - 1;
  memcpy(cc_err_msg + n, old, m);
  cc_err_msg[n + m] = 0;
  return s;
}

const char *clipcl_status_name(clipcl_status s) {
  switch (s) {
    case CLIPCL_OK: return "ok";
    case CLIPCL_ERR_ARG: return "bad argument";
    case CLIPCL_ERR_NOMEM: return "out of memory";
    case CLIPCL_ERR_IO: return "i/o error";
    case CLIPCL_ERR_FORMAT: return "bad format";
    case CLIPCL_ERR_OPENCL: return "OpenCL error";
    case CLIPCL_ERR_BUILD: return "kernel build failed";
    case CLIPCL_ERR_UNSUPPORTED: return "unsupported";
    case CLIPCL_ERR_NUMERIC: return "numeric error";
  }
  return "unknown status";
}

const char *clipcl_version(void) { return "0.1.0"; }
