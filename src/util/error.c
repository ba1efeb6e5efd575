/* error.c: thread-local last error message and status names.
 *
 * Messages often quote what an input file holds (a column name, a tar member
 * name, a caption); control characters from there are written as escapes
 * (\n, \r, \t, \xHH) so a message stays one line and cannot drive the
 * terminal. Kernel build failures (CLIPCL_ERR_BUILD) keep their line breaks:
 * they carry the OpenCL compiler's log on purpose. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char cc_err_msg[8192];

const char *clipcl_last_error(void) { return cc_err_msg; }

void cc_clear_error(void) { cc_err_msg[0] = 0; }

/* Rewrites the message with control characters escaped, cut to the buffer. */
static void escape_controls(void) {
  size_t n = strlen(cc_err_msg), k = 0;
  while (k < n && (unsigned char)cc_err_msg[k] >= 0x20 && cc_err_msg[k] != 0x7f) k++;
  if (k == n) return;
  char old[sizeof cc_err_msg];
  memcpy(old, cc_err_msg, n + 1);
  size_t w = k;
  for (size_t r = k; r < n; r++) {
    unsigned char c = (unsigned char)old[r];
    char esc[5];
    if (c >= 0x20 && c != 0x7f) esc[0] = (char)c, esc[1] = 0;
    else if (c == '\n') memcpy(esc, "\\n", 3);
    else if (c == '\r') memcpy(esc, "\\r", 3);
    else if (c == '\t') memcpy(esc, "\\t", 3);
    else snprintf(esc, sizeof esc, "\\x%02x", c);
    size_t l = strlen(esc);
    if (w + l >= sizeof cc_err_msg) break;
    memcpy(cc_err_msg + w, esc, l);
    w += l;
  }
  cc_err_msg[w] = 0;
}

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
  if (s != CLIPCL_ERR_BUILD) escape_controls();
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
  if (s != CLIPCL_ERR_BUILD) escape_controls();
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
