/* npy.c: float32 and float16 .npy writer (numpy 1.24 byte layout, atomic,
 * streamed) and strictly validating reader (see npy.h). Not here: other
 * dtypes, .npz, the half-precision conversions (safetensors.c). */
#include "io/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/safetensors.h" /* the half-precision conversions */
#include "util/error.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int host_is_le(void) {
  const uint16_t one = 1;
  uint8_t b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static void to_le_f32(const float *src, unsigned char *dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    for (int b = 0; b < 4; b++) *dst++ = (unsigned char)(u >> (8 * b));
  }
}

void cc_f16_row_to_f32(const void *le, float *f, size_t n) {
  const unsigned char *b = le;
  for (size_t i = 0; i < n; i++) f[i] = cc_f16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
}

/* ---- writer ------------------------------------------------------------- */
struct cc_npy_writer {
  cc_atomic *a;
  cc_npy_dtype dtype;
  uint64_t total, written; /* in elements */
};

static clipcl_status check_shape(const char *path, int ndim, const size_t *shape, uint64_t *numel) {
  if (ndim < 1 || ndim > 3)
    return cc_fail(CLIPCL_ERR_ARG, "%s: .npy writer takes 1-D to 3-D arrays, not %d-D", path, ndim);
  if (!shape) return cc_fail(CLIPCL_ERR_ARG, "%s: no shape", path);
  uint64_t n = shape[0];
  for (int d = 1; d < ndim; d++) {
    if (shape[d] && n > UINT64_MAX / 4 / shape[d])
      return cc_fail(CLIPCL_ERR_ARG, "%s: shape %zu x %zu ... overflows", path, shape[0], shape[1]);
    n *= shape[d];
  }
  if (n > UINT64_MAX / 4 || n > SIZE_MAX) return cc_fail(CLIPCL_ERR_ARG, "%s: array too large", path);
  *numel = n;
  return CLIPCL_OK;
}

/* The header numpy 1.24 writes for this shape: the dict repr with keys in
 * sorted order, spare spaces so the first axis can grow to 21 digits in
 * place, then spaces and '\n' up to a multiple of 64 bytes in all. */
static size_t make_header(unsigned char *out, size_t cap, int ndim, const size_t *shape, cc_npy_dtype dt) {
  char dict[160], dims[64];
  if (ndim == 1) snprintf(dims, sizeof dims, "(%zu,)", shape[0]);
  else if (ndim == 2) snprintf(dims, sizeof dims, "(%zu, %zu)", shape[0], shape[1]);
  else snprintf(dims, sizeof dims, "(%zu, %zu, %zu)", shape[0], shape[1], shape[2]);
  int d0 = snprintf(NULL, 0, "%zu", shape[0]);
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }%*s",
                   dt == CC_NPY_F16 ? "<f2" : "<f4", dims,
                   d0 < 21 ? 21 - d0 : 0, "");
  size_t hlen = (size_t)n + 1, pad = 64 - (10 + hlen) % 64, total = 10 + hlen + pad;
  if (total > cap) return 0;
  memcpy(out, npy_magic, 6);
  out[6] = 1;
  out[7] = 0;
  out[8] = (unsigned char)((hlen + pad) & 0xff);
  out[9] = (unsigned char)((hlen + pad) >> 8);
  memcpy(out + 10, dict, (size_t)n);
  memset(out + 10 + n, ' ', pad);
  out[total - 1] = '\n';
  return total;
}

clipcl_status cc_npy_writer_open(const char *path, int ndim, const size_t *shape, cc_npy_writer **out) {
  return cc_npy_writer_open_as(path, CC_NPY_F32, ndim, shape, out);
}

clipcl_status cc_npy_writer_open_as(const char *path, cc_npy_dtype dtype, int ndim, const size_t *shape,
                                    cc_npy_writer **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_writer_open: no output handle");
  if (dtype != CC_NPY_F32 && dtype != CC_NPY_F16) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_writer_open: bad dtype");
  *out = NULL;
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_writer_open: no path");
  uint64_t numel = 0;
  CC_TRY(check_shape(path, ndim, shape, &numel));
  unsigned char hdr[256];
  size_t hl = make_header(hdr, sizeof hdr, ndim, shape, dtype);
  if (!hl) return cc_fail(CLIPCL_ERR_ARG, "%s: header too long", path);
  cc_npy_writer *w = calloc(1, sizeof *w);
  if (!w) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  w->total = numel;
  w->dtype = dtype;
  clipcl_status s = cc_atomic_begin(path, &w->a);
  if (s == CLIPCL_OK) s = cc_atomic_write(w->a, hdr, hl);
  if (s != CLIPCL_OK) {
    cc_npy_writer_abort(w);
    return s;
  }
  *out = w;
  return CLIPCL_OK;
}

clipcl_status cc_npy_writer_put(cc_npy_writer *w, const float *data, size_t count) {
  if (!w) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_writer_put: no handle");
  if (count > w->total - w->written)
    return cc_fail(CLIPCL_ERR_ARG, "%s: %llu floats written, %zu more exceed the declared %llu",
                   cc_atomic_path(w->a), (unsigned long long)w->written, count, (unsigned long long)w->total);
  if (count && !data) return cc_fail(CLIPCL_ERR_ARG, "%s: NULL data", cc_atomic_path(w->a));
  if (w->dtype == CC_NPY_F16) {
    unsigned char buf[4096];
    for (size_t i = 0; i < count;) {
      size_t m = count - i < 2048 ? count - i : 2048;
      for (size_t j = 0; j < m; j++) {
        uint16_t h = cc_f32_to_f16(data[i + j]);
        buf[2 * j] = (unsigned char)h;
        buf[2 * j + 1] = (unsigned char)(h >> 8);
      }
      CC_TRY(cc_atomic_write(w->a, buf, m * 2));
      i += m;
    }
  } else if (host_is_le()) {
    CC_TRY(cc_atomic_write(w->a, data, count * 4));
  } else {
    unsigned char buf[4096];
    for (size_t i = 0; i < count;) {
      size_t m = count - i < 1024 ? count - i : 1024;
      to_le_f32(data + i, buf, m);
      CC_TRY(cc_atomic_write(w->a, buf, m * 4));
      i += m;
    }
  }
  w->written += count;
  return CLIPCL_OK;
}

void cc_npy_writer_abort(cc_npy_writer *w) {
  if (!w) return;
  cc_atomic_abort(w->a);
  free(w);
}

clipcl_status cc_npy_writer_commit(cc_npy_writer *w) {
  if (!w) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_writer_commit: no handle");
  if (w->written != w->total) {
    clipcl_status s = cc_fail(CLIPCL_ERR_ARG, "%s: %llu of %llu floats written; file not replaced",
                              cc_atomic_path(w->a), (unsigned long long)w->written, (unsigned long long)w->total);
    cc_npy_writer_abort(w);
    return s;
  }
  clipcl_status s = cc_atomic_commit(w->a);
  free(w);
  return s;
}

clipcl_status cc_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape) {
  return cc_npy_write_as(path, CC_NPY_F32, data, ndim, shape);
}

clipcl_status cc_npy_write_as(const char *path, cc_npy_dtype dtype, const float *data, int ndim,
                              const size_t *shape) {
  cc_npy_writer *w;
  CC_TRY(cc_npy_writer_open_as(path, dtype, ndim, shape, &w));
  clipcl_status s = cc_npy_writer_put(w, data, (size_t)w->total);
  if (s != CLIPCL_OK) {
    cc_npy_writer_abort(w);
    return s;
  }
  return cc_npy_writer_commit(w);
}

/* ---- reader ------------------------------------------------------------- */
typedef struct {
  const char *p, *end, *path;
} cursor;

static void skip_ws(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static clipcl_status bad(const cursor *c, const char *what) {
  return cc_fail(CLIPCL_ERR_FORMAT, "%s: .npy header: %s", c->path, what);
}

/* A quoted Python string without escapes into buf. */
static clipcl_status parse_str(cursor *c, char *buf, size_t cap) {
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return bad(c, "expected a quoted string");
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || *c->p == '\n') return bad(c, "unsupported character in a string");
    if (n + 1 >= cap) return bad(c, "string too long");
    buf[n++] = *c->p++;
  }
  if (c->p >= c->end) return bad(c, "unterminated string");
  c->p++;
  buf[n] = 0;
  return CLIPCL_OK;
}

static int match_word(cursor *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
  c->p += n;
  return 1;
}

/* "(a, b)", "(a,)", "()" and the like; a lone "(a)" is not a tuple. */
static clipcl_status parse_shape(cursor *c, uint64_t *dims, int *ndim) {
  if (c->p >= c->end || *c->p != '(') return bad(c, "shape is not a tuple");
  c->p++;
  int n = 0, comma_after_last = 0;
  for (;;) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ')') {
      c->p++;
      break;
    }
    if (c->p < c->end && *c->p == '-') return bad(c, "negative dimension");
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return bad(c, "shape entry is not an integer");
    uint64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      unsigned dgt = (unsigned)(*c->p++ - '0');
      if (v > (UINT64_MAX - dgt) / 10) return bad(c, "dimension overflows 64 bits");
      v = v * 10 + dgt;
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l')) c->p++; /* Python 2 long */
    if (n >= 8)
      return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: .npy array has more than 8 dimensions", c->path);
    dims[n++] = v;
    skip_ws(c);
    comma_after_last = 0;
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      comma_after_last = 1;
    } else if (c->p < c->end && *c->p == ')') {
      continue;
    } else {
      return bad(c, "malformed shape tuple");
    }
  }
  if (n == 1 && !comma_after_last) return bad(c, "shape is not a tuple");
  *ndim = n;
  return CLIPCL_OK;
}

static clipcl_status parse_dict(const char *path, const char *h, size_t len, unsigned accept, int *ndim,
                                uint64_t *dims, cc_npy_dtype *dtype) {
  cursor c = {h, h + len, path};
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)h[i];
    if (ch >= 0x7f || (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r'))
      return bad(&c, "non-ASCII or control byte");
  }
  int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0;
  char descr[32] = "";
  skip_ws(&c);
  if (c.p >= c.end || *c.p != '{') return bad(&c, "not a dict");
  c.p++;
  for (;;) {
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
      c.p++;
      break;
    }
    char key[32];
    CC_TRY(parse_str(&c, key, sizeof key));
    skip_ws(&c);
    if (c.p >= c.end || *c.p != ':') return bad(&c, "expected ':'");
    c.p++;
    skip_ws(&c);
    if (strcmp(key, "descr") == 0) {
      if (have_descr++) return bad(&c, "'descr' given twice");
      CC_TRY(parse_str(&c, descr, sizeof descr));
    } else if (strcmp(key, "fortran_order") == 0) {
      if (have_fo++) return bad(&c, "'fortran_order' given twice");
      if (match_word(&c, "True")) fortran = 1;
      else if (!match_word(&c, "False")) return bad(&c, "fortran_order is not True or False");
    } else if (strcmp(key, "shape") == 0) {
      if (have_shape++) return bad(&c, "'shape' given twice");
      CC_TRY(parse_shape(&c, dims, ndim));
    } else {
      return bad(&c, "unexpected key");
    }
    skip_ws(&c);
    if (c.p < c.end && *c.p == ',') c.p++;
    else if (c.p >= c.end || *c.p != '}') return bad(&c, "expected ',' or '}'");
  }
  skip_ws(&c);
  if (c.p != c.end) return bad(&c, "trailing characters after the dict");
  if (!have_descr || !have_fo || !have_shape) return bad(&c, "missing one of descr, fortran_order, shape");
  if (strcmp(descr, "<f4") == 0 && (accept & CC_NPY_F32)) {
    *dtype = CC_NPY_F32;
  } else if (strcmp(descr, "<f2") == 0 && (accept & CC_NPY_F16)) {
    *dtype = CC_NPY_F16;
  } else {
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: .npy dtype '%s' (only %s is read)", path, descr,
                   accept == CC_NPY_F32 ? "'<f4' float32" : "'<f4' float32 and '<f2' float16");
  }
  if (fortran) return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: .npy in Fortran order is not read", path);
  if (*ndim != 1 && *ndim != 2)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: .npy array is %d-D (only 1-D and 2-D are read)", path, *ndim);
  return CLIPCL_OK;
}

/* Opens path and validates its header against the file size; on success
 * *fp is positioned at the data. */
static clipcl_status open_npy(const char *path, unsigned accept, FILE **fpp, cc_npy_info *info) {
  *fpp = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  clipcl_status s = CLIPCL_OK;
  char *hdr = NULL;
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: not a regular file", path);
    goto done;
  }
  uint64_t fsize = (uint64_t)st.st_size;
  unsigned char pre[12];
  if (fsize < 10 || fread(pre, 1, 10, fp) != 10) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: too short for a .npy header", path);
    goto done;
  }
  if (memcmp(pre, npy_magic, 6) != 0) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
    goto done;
  }
  uint64_t hlen, pos;
  if (pre[6] == 1 && pre[7] == 0) {
    hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
    pos = 10;
  } else if (pre[6] == 2 && pre[7] == 0) {
    if (fsize < 12 || fread(pre + 10, 1, 2, fp) != 2) {
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: too short for a .npy 2.0 header", path);
      goto done;
    }
    hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    pos = 12;
  } else {
    s = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: .npy format version %u.%u (1.0 and 2.0 are read)", path, pre[6],
                pre[7]);
    goto done;
  }
  if (hlen > CC_NPY_MAX_HEADER) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: .npy header length %llu is larger than the %d-byte limit", path,
                (unsigned long long)hlen, CC_NPY_MAX_HEADER);
    goto done;
  }
  if (hlen > fsize - pos) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: .npy header length %llu but only %llu bytes follow (truncated?)", path,
                (unsigned long long)hlen, (unsigned long long)(fsize - pos));
    goto done;
  }
  if (!(hdr = malloc(hlen ? (size_t)hlen : 1))) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  if (fread(hdr, 1, (size_t)hlen, fp) != hlen) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: read failed in the header", path);
    goto done;
  }
  uint64_t dims[8] = {0};
  int nd = 0;
  cc_npy_dtype dt = CC_NPY_F32;
  if ((s = parse_dict(path, hdr, (size_t)hlen, accept, &nd, dims, &dt)) != CLIPCL_OK) goto done;
  uint64_t es = dt == CC_NPY_F16 ? 2 : 4, numel = dims[0];
  if (nd == 2) {
    if (dims[1] && numel > UINT64_MAX / 4 / dims[1]) {
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: .npy shape overflows", path);
      goto done;
    }
    numel *= dims[1];
  }
  uint64_t body = fsize - pos - hlen;
  if (numel > UINT64_MAX / 4 || numel * es != body) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: .npy shape needs %llu data bytes but the file holds %llu", path,
                numel > UINT64_MAX / 4 ? 0ull : (unsigned long long)(numel * es), (unsigned long long)body);
    goto done;
  }
  if (numel > SIZE_MAX / 4 || dims[0] > SIZE_MAX || dims[1] > SIZE_MAX) {
    s = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: array too large for this machine", path);
    goto done;
  }
  info->dtype = dt;
  info->ndim = nd;
  info->shape[0] = (size_t)dims[0];
  info->shape[1] = nd == 2 ? (size_t)dims[1] : 1;
  info->data_offset = pos + hlen;
done:
  free(hdr);
  if (s != CLIPCL_OK) {
    fclose(fp);
    return s;
  }
  *fpp = fp;
  return CLIPCL_OK;
}

/* Reads numel elements of dtype from fp into out as float32. */
static clipcl_status read_body(FILE *fp, const char *path, cc_npy_dtype dt, size_t numel, float *out) {
  if (dt == CC_NPY_F32) {
    if (fread(out, 4, numel, fp) != numel)
      return cc_fail(CLIPCL_ERR_IO, "%s: read failed in the data (did the file shrink?)", path);
    if (!host_is_le()) {
      unsigned char *b = (unsigned char *)out;
      for (size_t i = 0; i < numel; i++, b += 4) {
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(b, &u, 4);
      }
    }
    return CLIPCL_OK;
  }
  unsigned char buf[8192];
  for (size_t i = 0; i < numel;) {
    size_t m = numel - i < sizeof buf / 2 ? numel - i : sizeof buf / 2;
    if (fread(buf, 2, m, fp) != m)
      return cc_fail(CLIPCL_ERR_IO, "%s: read failed in the data (did the file shrink?)", path);
    cc_f16_row_to_f32(buf, out + i, m);
    i += m;
  }
  return CLIPCL_OK;
}

static clipcl_status read_whole(const char *path, unsigned accept, float **data, cc_npy_info *info) {
  *data = NULL;
  FILE *fp;
  CC_TRY(open_npy(path, accept, &fp, info));
  size_t numel = info->shape[0] * info->shape[1];
  float *out = NULL;
  clipcl_status s = CLIPCL_OK;
  if (numel) {
    if (!(out = malloc(numel * 4)))
      s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for %zu floats", path, numel);
    else
      s = read_body(fp, path, info->dtype, numel, out);
  }
  fclose(fp);
  if (s != CLIPCL_OK) {
    free(out);
    return s;
  }
  *data = out;
  return CLIPCL_OK;
}

clipcl_status cc_npy_read_f32(const char *path, float **data, int *ndim, size_t shape[2]) {
  if (!path || !data || !ndim || !shape) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_read_f32: NULL argument");
  cc_npy_info info;
  CC_TRY(read_whole(path, CC_NPY_F32, data, &info));
  *ndim = info.ndim;
  shape[0] = info.shape[0];
  shape[1] = info.shape[1];
  return CLIPCL_OK;
}

clipcl_status cc_npy_read_float(const char *path, float **data, cc_npy_info *info) {
  if (!path || !data || !info) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_read_float: NULL argument");
  return read_whole(path, CC_NPY_F32 | CC_NPY_F16, data, info);
}

clipcl_status cc_npy_probe(const char *path, cc_npy_info *info) {
  if (!path || !info) return cc_fail(CLIPCL_ERR_ARG, "cc_npy_probe: NULL argument");
  FILE *fp;
  CC_TRY(open_npy(path, CC_NPY_F32 | CC_NPY_F16, &fp, info));
  fclose(fp);
  return CLIPCL_OK;
}
