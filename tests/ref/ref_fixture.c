/* ref_fixture.c: see ref_fixture.h. */
#include "ref/ref_fixture.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FX_MAX 256

struct fx_file {
  unsigned char *data;
  int count;
  char names[FX_MAX][64];
  float *arrays[FX_MAX];
  size_t sizes[FX_MAX];
};

static int rd_u32(const unsigned char *d, size_t len, size_t *pos, uint32_t *out) {
  if (len - *pos < 4) return -1;
  *out = (uint32_t)d[*pos] | (uint32_t)d[*pos + 1] << 8 | (uint32_t)d[*pos + 2] << 16 | (uint32_t)d[*pos + 3] << 24;
  *pos += 4;
  return 0;
}

fx_file *fx_open(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(stderr, "%s: cannot open fixture\n", path);
    return NULL;
  }
  fx_file *f = calloc(1, sizeof *f);
  long len = -1;
  if (f && fseek(fp, 0, SEEK_END) == 0) len = ftell(fp);
  if (!f || len < 16 || fseek(fp, 0, SEEK_SET) != 0 || !(f->data = malloc((size_t)len)) ||
      fread(f->data, 1, (size_t)len, fp) != (size_t)len) {
    fprintf(stderr, "%s: cannot read fixture\n", path);
    fclose(fp);
    fx_close(f);
    return NULL;
  }
  fclose(fp);
  size_t n = (size_t)len, pos = 8;
  uint32_t version, count;
  const char *why = NULL;
  if (memcmp(f->data, "CLIPCLFX", 8)) why = "bad magic";
  else if (rd_u32(f->data, n, &pos, &version) || version != 1) why = "unsupported version";
  else if (rd_u32(f->data, n, &pos, &count) || count > FX_MAX) why = "bad array count";
  for (uint32_t a = 0; !why && a < count; a++) {
    uint32_t nl, nd, dim;
    if (rd_u32(f->data, n, &pos, &nl) || nl >= 64 || n - pos < nl) {
      why = "bad name";
      break;
    }
    memcpy(f->names[a], f->data + pos, nl);
    f->names[a][nl] = 0;
    pos += nl;
    if (rd_u32(f->data, n, &pos, &nd) || nd > 8) {
      why = "bad rank";
      break;
    }
    size_t elems = 1;
    for (uint32_t d = 0; d < nd && !why; d++) {
      if (rd_u32(f->data, n, &pos, &dim) || (dim && elems > SIZE_MAX / 4 / dim)) why = "bad shape";
      else elems *= dim;
    }
    if (why) break;
    if ((n - pos) / 4 < elems) {
      why = "truncated data";
      break;
    }
    f->arrays[a] = malloc(elems ? elems * 4 : 4);
    if (!f->arrays[a]) {
      why = "out of memory";
      break;
    }
    for (size_t i = 0; i < elems; i++) {
      const unsigned char *b = f->data + pos + 4 * i;
      uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
      memcpy(&f->arrays[a][i], &u, 4);
    }
    f->sizes[a] = elems;
    pos += 4 * elems;
    f->count = (int)a + 1;
  }
  if (!why && pos != n) why = "trailing bytes";
  if (why) {
    fprintf(stderr, "%s: malformed fixture (%s)\n", path, why);
    fx_close(f);
    return NULL;
  }
  return f;
}

const float *fx_get(const fx_file *f, const char *name, size_t *n) {
  for (int i = 0; f && i < f->count; i++)
    if (!strcmp(f->names[i], name)) {
      if (n) *n = f->sizes[i];
      return f->arrays[i];
    }
  return NULL;
}

void fx_close(fx_file *f) {
  if (!f) return;
  for (int i = 0; i < f->count; i++) free(f->arrays[i]);
  free(f->data);
  free(f);
}
