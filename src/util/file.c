/* file.c: see file.h. */
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"

clipcl_status cc_read_file(const char *path, size_t max, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open", path);
  char *buf = NULL;
  size_t n = 0, cap = 0;
  clipcl_status st = CLIPCL_OK;
  for (;;) {
    if (n == cap) {
      if (cap >= max) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: larger than %zu MiB", path, max >> 20);
        break;
      }
      size_t nc = cap ? cap * 2 : (size_t)1 << 16;
      char *nb = realloc(buf, nc + 1);
      if (!nb) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
      buf = nb;
      cap = nc;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) st = cc_fail(CLIPCL_ERR_IO, "%s: read error", path);
      break;
    }
  }
  fclose(f);
  if (st) {
    free(buf);
    return st;
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return CLIPCL_OK;
}
