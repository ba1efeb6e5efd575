/* safetensors.c: safetensors reader (validated header, positioned reads,
 * float conversions) and atomic writer. See safetensors.h for the format.
 * Not here: weight-name mapping (names.c), model layout. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "util/error.h"

/* ---- dtypes ------------------------------------------------------------- */
static const struct {
  const char *name;
  size_t size;
} dtypes[CC_ST_NDTYPES] = {
    [CC_ST_F32] = {"F32", 4},         [CC_ST_F16] = {"F16", 2},         [CC_ST_BF16] = {"BF16", 2},
    [CC_ST_F64] = {"F64", 8},         [CC_ST_BOOL] = {"BOOL", 1},       [CC_ST_U8] = {"U8", 1},
    [CC_ST_I8] = {"I8", 1},           [CC_ST_F8_E5M2] = {"F8_E5M2", 1}, [CC_ST_F8_E4M3] = {"F8_E4M3", 1},
    [CC_ST_I16] = {"I16", 2},         [CC_ST_U16] = {"U16", 2},         [CC_ST_I32] = {"I32", 4},
    [CC_ST_U32] = {"U32", 4},         [CC_ST_I64] = {"I64", 8},         [CC_ST_U64] = {"U64", 8},
};

const char *cc_st_dtype_name(cc_st_dtype d) {
  return (unsigned)d < CC_ST_NDTYPES ? dtypes[d].name : "?";
}
size_t cc_st_dtype_size(cc_st_dtype d) { return (unsigned)d < CC_ST_NDTYPES ? dtypes[d].size : 0; }
int cc_st_dtype_is_float(cc_st_dtype d) {
  return d == CC_ST_F32 || d == CC_ST_F16 || d == CC_ST_BF16 || d == CC_ST_F64;
}

static int dtype_parse(const char *s, cc_st_dtype *out) {
  for (int i = 0; i < CC_ST_NDTYPES; i++)
    if (strcmp(s, dtypes[i].name) == 0) {
      *out = (cc_st_dtype)i;
      return 1;
    }
  return 0;
}

/* ---- scalar conversions ------------------------------------------------- */
static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float cc_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, NaN keeps its payload */
  if (exp != 0) return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return bits_f32(sign);
  /* subnormal man * 2^-24: shift the leading one up to the implicit bit */
  uint32_t e = 113;
  while (!(man & 0x400u)) {
    man <<= 1;
    e--;
  }
  return bits_f32(sign | (e << 23) | ((man & 0x3ffu) << 13));
}

float cc_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t cc_f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {
    if (ax == 0x7f800000u) return sign | 0x7c00u;
    /* NaN: keep the top payload bits as numpy does, never turning into inf */
    uint16_t m = (uint16_t)((ax >> 13) & 0x3ffu);
    return sign | 0x7c00u | (m ? m : 1u);
  }
  if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to inf */
  if (ax >= 0x38800000u) {                       /* normal half: >= 2^-14 */
    uint32_t r = ax - (112u << 23);
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
  }
  if (ax < 0x33000000u) return sign; /* below 2^-25 rounds to zero */
  /* subnormal half in units of 2^-24; may round up to the smallest normal */
  uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, s = 126u - e;
  uint32_t q = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
  if (rem > half || (rem == half && (q & 1u))) q++;
  return sign | (uint16_t)q;
}

uint16_t cc_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

float cc_f64_to_f32(double d) {
  if (isnan(d)) return signbit(d) ? -NAN : NAN;
  double a = fabs(d);
  /* Out-of-range casts are undefined in C; decide them here. Halfway between
   * FLT_MAX and 2^128 ties to even, which is infinity. */
  if (a > (double)FLT_MAX) {
    float r = a >= 0x1.ffffffp127 ? INFINITY : FLT_MAX;
    return signbit(d) ? -r : r;
  }
  return (float)d;
}

/* ---- reader ------------------------------------------------------------- */
struct cc_st_file {
  char *path;
  int fd;
  uint64_t file_size, data_start, data_size;
  size_t n;
  cc_st_tensor *t; /* ascending begin */
  const cc_st_tensor **by_name; /* into t (sorted by begin first, then fixed), by name */
  size_t nmeta;
  char **meta_k, **meta_v;
};

static int host_is_le(void) {
  const uint16_t one = 1;
  uint8_t b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* A tensor name or dtype for a one-line message: control characters become
 * '?', long names are cut. */
static const char *printable(const char *s, char *buf, size_t cap) {
  size_t i = 0, j = 0;
  for (; s[i] && j + 4 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (s[i]) {
    memcpy(buf + j, "...", 3);
    j += 3;
  }
  buf[j] = 0;
  return buf;
}

void cc_st_close(cc_st_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  if (f->t)
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
  for (size_t i = 0; i < f->nmeta; i++) {
    free(f->meta_k[i]);
    free(f->meta_v[i]);
  }
  free(f->meta_k);
  free(f->meta_v);
  free(f->t);
  free(f->by_name);
  free(f->path);
  free(f);
}

static clipcl_status pread_all(const cc_st_file *f, void *dst, size_t n, uint64_t off) {
  unsigned char *p = dst;
  while (n) {
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t r = pread(f->fd, p, chunk, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return cc_fail(CLIPCL_ERR_IO, "%s: read failed at byte %llu: %s", f->path, (unsigned long long)off,
                     strerror(errno));
    }
    if (r == 0)
      return cc_fail(CLIPCL_ERR_IO, "%s: file ends at byte %llu, before the data it listed (did it shrink?)",
                     f->path, (unsigned long long)off);
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return CLIPCL_OK;
}

static int cmp_begin(const void *a, const void *b) {
  const cc_st_tensor *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int cmp_name_ptr(const void *a, const void *b) {
  return strcmp((*(const cc_st_tensor *const *)a)->name, (*(const cc_st_tensor *const *)b)->name);
}

/* Reads a JSON integer that must be >= 0. */
static int get_u64(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v)) return 0;
  json_int_t x = json_integer_value(v);
  if (x < 0) return -1;
  *out = (uint64_t)x;
  return 1;
}

/* Validates one tensor entry into t (name not yet set). */
static clipcl_status parse_tensor(cc_st_file *f, const char *name, json_t *v, cc_st_tensor *t) {
  char nb[96], db[40];
  const char *path = f->path, *pn = printable(name, nb, sizeof nb);
  if (!json_is_object(v))
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, pn);
  json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
         *off = json_object_get(v, "data_offsets");
  if (!dt) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': no dtype", path, pn);
  if (!sh) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': no shape", path, pn);
  if (!off) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': no data_offsets", path, pn);
  if (!json_is_string(dt)) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", path, pn);
  if (!dtype_parse(json_string_value(dt), &t->dtype))
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, pn,
                   printable(json_string_value(dt), db, sizeof db));
  if (!json_is_array(sh)) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': shape is not an array", path, pn);
  size_t nd = json_array_size(sh);
  if (nd > CC_ST_MAX_DIMS)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d supported)", path, pn,
                   nd, CC_ST_MAX_DIMS);
  t->ndim = (int)nd;
  uint64_t numel = 1;
  int overflow = 0;
  for (size_t i = 0; i < nd; i++) {
    uint64_t d;
    int r = get_u64(json_array_get(sh, i), &d);
    if (r == 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not an integer", path, pn, i);
    if (r < 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is negative", path, pn, i);
    t->shape[i] = (int64_t)d;
    if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
    else numel *= d;
  }
  /* A zero dimension makes the product 0 whatever the others are, but a
   * shape whose other dimensions overflow is nonsense either way. */
  if (overflow)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': shape product overflows 64 bits", path, pn);
  size_t es = dtypes[t->dtype].size;
  if (numel > UINT64_MAX / es)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': byte size overflows 64 bits", path, pn);
  t->numel = numel;
  if (!json_is_array(off) || json_array_size(off) != 2)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': data_offsets is not an array of two integers", path, pn);
  for (size_t i = 0; i < 2; i++) {
    uint64_t o;
    int r = get_u64(json_array_get(off, i), &o);
    if (r == 0)
      return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': data_offsets[%zu] is not an integer", path, pn, i);
    if (r < 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': data_offsets[%zu] is negative", path, pn, i);
    if (i == 0) t->begin = o;
    else t->end = o;
  }
  if (t->begin > t->end)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %llu > end %llu", path, pn,
                   (unsigned long long)t->begin, (unsigned long long)t->end);
  if (t->end > f->data_size)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': data ends at %llu but the file holds only %llu data bytes",
                   path, pn, (unsigned long long)t->end, (unsigned long long)f->data_size);
  if (t->end - t->begin != numel * es)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor '%s': %llu bytes for %llu %s elements (%llu expected)", path,
                   pn, (unsigned long long)(t->end - t->begin), (unsigned long long)numel,
                   dtypes[t->dtype].name, (unsigned long long)(numel * es));
  return CLIPCL_OK;
}

static clipcl_status parse_meta(cc_st_file *f, json_t *m) {
  if (json_is_null(m)) return CLIPCL_OK;
  if (!json_is_object(m)) return cc_fail(CLIPCL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
  size_t n = json_object_size(m);
  f->meta_k = calloc(n ? n : 1, sizeof *f->meta_k);
  f->meta_v = calloc(n ? n : 1, sizeof *f->meta_v);
  if (!f->meta_k || !f->meta_v) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for metadata", f->path);
  const char *k;
  json_t *v;
  json_object_foreach(m, k, v) {
    char kb[96];
    if (!json_is_string(v))
      return cc_fail(CLIPCL_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", f->path,
                     printable(k, kb, sizeof kb));
    f->meta_k[f->nmeta] = dup_str(k);
    f->meta_v[f->nmeta] = dup_str(json_string_value(v));
    f->nmeta++;
    if (!f->meta_k[f->nmeta - 1] || !f->meta_v[f->nmeta - 1])
      return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for metadata", f->path);
  }
  return CLIPCL_OK;
}

static clipcl_status parse_header(cc_st_file *f, const char *text, size_t len) {
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    char tb[sizeof jerr.text];
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: header is not valid JSON (byte %d): %s", f->path, jerr.position,
                   printable(jerr.text, tb, sizeof tb));
  }
  clipcl_status s = CLIPCL_OK;
  if (!json_is_object(root)) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: header JSON is not an object", f->path);
    goto done;
  }
  json_t *meta = json_object_get(root, "__metadata__");
  size_t n = json_object_size(root) - (meta ? 1 : 0);
  if (meta && (s = parse_meta(f, meta)) != CLIPCL_OK) goto done;
  f->t = calloc(n ? n : 1, sizeof *f->t);
  f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
  if (!f->t || !f->by_name) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for %zu tensor entries", f->path, n);
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "__metadata__") == 0) continue;
    cc_st_tensor *t = &f->t[f->n];
    if ((s = parse_tensor(f, key, v, t)) != CLIPCL_OK) goto done;
    if (!(t->name = dup_str(key))) {
      s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", f->path);
      goto done;
    }
    f->n++;
  }
  qsort(f->t, f->n, sizeof *f->t, cmp_begin);
  for (size_t i = 1; i < f->n; i++) {
    /* sorted by begin, so overlap with anything earlier shows against the
     * previous one, whose end is the largest so far */
    if (f->t[i].begin < f->t[i - 1].end) {
      char a[96], b[96];
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)",
                  f->path, printable(f->t[i - 1].name, a, sizeof a), printable(f->t[i].name, b, sizeof b),
                  (unsigned long long)f->t[i - 1].begin, (unsigned long long)f->t[i - 1].end,
                  (unsigned long long)f->t[i].begin, (unsigned long long)f->t[i].end);
      goto done;
    }
  }
  for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->t[i];
  qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name_ptr);
done:
  json_decref(root);
  return s;
}

clipcl_status cc_st_open(const char *path, cc_st_file **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "cc_st_open: no output handle");
  *out = NULL;
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "cc_st_open: no path");
  cc_st_file *f = calloc(1, sizeof *f);
  if (!f) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  f->fd = -1;
  clipcl_status s = CLIPCL_OK;
  char *hdr = NULL;
  if (!(f->path = dup_str(path))) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto fail;
  }
  struct stat st;
  if (fstat(f->fd, &st) != 0) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: not a regular file", path);
    goto fail;
  }
  f->file_size = (uint64_t)st.st_size;
  if (f->file_size < 8) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: %llu bytes, too short for the 8-byte header length", path,
                (unsigned long long)f->file_size);
    goto fail;
  }
  unsigned char lb[8];
  if ((s = pread_all(f, lb, 8, 0)) != CLIPCL_OK) goto fail;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lb[i];
  if (hlen > CC_ST_MAX_HEADER) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: header length %llu is larger than the %u-byte limit", path,
                (unsigned long long)hlen, CC_ST_MAX_HEADER);
    goto fail;
  }
  if (hlen > f->file_size - 8) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: header length %llu but only %llu bytes follow (truncated?)", path,
                (unsigned long long)hlen, (unsigned long long)(f->file_size - 8));
    goto fail;
  }
  if (hlen < 2) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: header length %llu is too small for a JSON object", path,
                (unsigned long long)hlen);
    goto fail;
  }
  f->data_start = 8 + hlen;
  f->data_size = f->file_size - f->data_start;
  if (!(hdr = malloc((size_t)hlen))) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
    goto fail;
  }
  if ((s = pread_all(f, hdr, (size_t)hlen, 8)) != CLIPCL_OK) goto fail;
  if ((s = parse_header(f, hdr, (size_t)hlen)) != CLIPCL_OK) goto fail;
  free(hdr);
  *out = f;
  return CLIPCL_OK;
fail:
  free(hdr);
  cc_st_close(f);
  return s;
}

const char *cc_st_path(const cc_st_file *f) { return f ? f->path : ""; }
size_t cc_st_count(const cc_st_file *f) { return f ? f->n : 0; }
const cc_st_tensor *cc_st_get(const cc_st_file *f, size_t i) { return f && i < f->n ? &f->t[i] : NULL; }

const cc_st_tensor *cc_st_find(const cc_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->by_name[mid]->name, name);
    if (c == 0) return f->by_name[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const char *cc_st_meta(const cc_st_file *f, const char *key) {
  if (!f || !key) return NULL;
  for (size_t i = 0; i < f->nmeta; i++)
    if (strcmp(f->meta_k[i], key) == 0) return f->meta_v[i];
  return NULL;
}
size_t cc_st_meta_count(const cc_st_file *f) { return f ? f->nmeta : 0; }
const char *cc_st_meta_key(const cc_st_file *f, size_t i) { return f && i < f->nmeta ? f->meta_k[i] : NULL; }
const char *cc_st_meta_value(const cc_st_file *f, size_t i) { return f && i < f->nmeta ? f->meta_v[i] : NULL; }

static int owns(const cc_st_file *f, const cc_st_tensor *t) {
  uintptr_t p = (uintptr_t)t, b = (uintptr_t)f->t;
  return f->n && p >= b && p < b + f->n * sizeof *t && (p - b) % sizeof *t == 0;
}

clipcl_status cc_st_read_raw(const cc_st_file *f, const cc_st_tensor *t, void *dst, size_t cap) {
  if (!f || !t || !owns(f, t)) return cc_fail(CLIPCL_ERR_ARG, "cc_st_read_raw: tensor does not belong to the file");
  uint64_t n = t->end - t->begin;
  if (n > cap || (n && !dst))
  {
    char nb[96];
    return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s' needs %llu bytes, buffer holds %zu", f->path,
                   printable(t->name, nb, sizeof nb), (unsigned long long)n, dst ? cap : 0);
  }
  return pread_all(f, dst, (size_t)n, f->data_start + t->begin);
}

static void convert(cc_st_dtype dt, const unsigned char *src, float *dst, size_t n) {
  switch (dt) {
    case CC_ST_F32:
      for (size_t i = 0; i < n; i++, src += 4)
        dst[i] = bits_f32((uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
                          (uint32_t)src[3] << 24);
      break;
    case CC_ST_F16:
      for (size_t i = 0; i < n; i++, src += 2) dst[i] = cc_f16_to_f32((uint16_t)(src[0] | src[1] << 8));
      break;
    case CC_ST_BF16:
      for (size_t i = 0; i < n; i++, src += 2) dst[i] = cc_bf16_to_f32((uint16_t)(src[0] | src[1] << 8));
      break;
    case CC_ST_F64:
      for (size_t i = 0; i < n; i++, src += 8) {
        uint64_t u = 0;
        for (int b = 7; b >= 0; b--) u = u << 8 | src[b];
        double d;
        memcpy(&d, &u, 8);
        dst[i] = cc_f64_to_f32(d);
      }
      break;
    default:
      break;
  }
}

#define CC_ST_CHUNK 16384 /* elements converted per read */

clipcl_status cc_st_read_f32_range(const cc_st_file *f, const cc_st_tensor *t, uint64_t first, size_t count,
                                   float *dst) {
  if (!f || !t || !owns(f, t))
    return cc_fail(CLIPCL_ERR_ARG, "cc_st_read_f32: tensor does not belong to the file");
  char nb[96];
  if (!cc_st_dtype_is_float(t->dtype))
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: tensor '%s' is %s, which does not convert to float32", f->path,
                   printable(t->name, nb, sizeof nb), dtypes[t->dtype].name);
  if (first > t->numel || count > t->numel - first)
    return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': elements %llu+%zu past its %llu", f->path,
                   printable(t->name, nb, sizeof nb), (unsigned long long)first, count,
                   (unsigned long long)t->numel);
  if (count == 0) return CLIPCL_OK;
  if (!dst) return cc_fail(CLIPCL_ERR_ARG, "cc_st_read_f32: NULL destination");
  size_t es = dtypes[t->dtype].size;
  uint64_t off = f->data_start + t->begin + first * es;
  if (t->dtype == CC_ST_F32 && host_is_le()) {
    if (count > SIZE_MAX / 4) return cc_fail(CLIPCL_ERR_ARG, "%s: read too large", f->path);
    return pread_all(f, dst, count * 4, off);
  }
  unsigned char *buf = malloc(CC_ST_CHUNK * 8);
  if (!buf) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", f->path);
  clipcl_status s = CLIPCL_OK;
  for (size_t done = 0; done < count && s == CLIPCL_OK;) {
    size_t m = count - done < CC_ST_CHUNK ? count - done : CC_ST_CHUNK;
    s = pread_all(f, buf, m * es, off + (uint64_t)done * es);
    if (s == CLIPCL_OK) convert(t->dtype, buf, dst + done, m);
    done += m;
  }
  free(buf);
  return s;
}

clipcl_status cc_st_read_f32(const cc_st_file *f, const cc_st_tensor *t, float *dst) {
  if (!f || !t || !owns(f, t))
    return cc_fail(CLIPCL_ERR_ARG, "cc_st_read_f32: tensor does not belong to the file");
  if (t->numel > SIZE_MAX) return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: tensor too large", f->path);
  return cc_st_read_f32_range(f, t, 0, (size_t)t->numel, dst);
}

/* ---- writer ------------------------------------------------------------- */
static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void encode(cc_st_dtype dt, const float *src, unsigned char *dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    switch (dt) {
      case CC_ST_F32: {
        uint32_t u = f32_bits(src[i]);
        for (int b = 0; b < 4; b++) *dst++ = (unsigned char)(u >> (8 * b));
        break;
      }
      case CC_ST_F16:
      case CC_ST_BF16: {
        uint16_t h = dt == CC_ST_F16 ? cc_f32_to_f16(src[i]) : cc_f32_to_bf16(src[i]);
        *dst++ = (unsigned char)h;
        *dst++ = (unsigned char)(h >> 8);
        break;
      }
      case CC_ST_F64: {
        double d = src[i];
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int b = 0; b < 8; b++) *dst++ = (unsigned char)(u >> (8 * b));
        break;
      }
      default:
        break;
    }
  }
}

static clipcl_status check_outputs(const char *path, const cc_st_out *t, size_t n, cc_st_fill_fn fill,
                                   uint64_t *bytes) {
  for (size_t i = 0; i < n; i++) {
    char nb[96];
    if (!t[i].name) return cc_fail(CLIPCL_ERR_ARG, "%s: tensor %zu has no name", path, i);
    const char *pn = printable(t[i].name, nb, sizeof nb);
    if (strcmp(t[i].name, "__metadata__") == 0)
      return cc_fail(CLIPCL_ERR_ARG, "%s: '__metadata__' cannot name a tensor", path);
    if ((unsigned)t[i].dtype >= CC_ST_NDTYPES)
      return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': invalid dtype %d", path, pn, (int)t[i].dtype);
    if (!t[i].raw && !cc_st_dtype_is_float(t[i].dtype))
      return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': float data cannot be stored as %s", path, pn,
                     dtypes[t[i].dtype].name);
    if (t[i].ndim < 0 || t[i].ndim > CC_ST_MAX_DIMS)
      return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': %d dimensions", path, pn, t[i].ndim);
    uint64_t numel = 1;
    for (int d = 0; d < t[i].ndim; d++) {
      if (t[i].shape[d] < 0) return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': negative dimension", path, pn);
      uint64_t x = (uint64_t)t[i].shape[d];
      if (x && numel > UINT64_MAX / x) return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': shape overflows", path, pn);
      numel *= x;
    }
    uint64_t nb_ = numel * dtypes[t[i].dtype].size;
    if (numel > UINT64_MAX / 8 || bytes[i] > UINT64_MAX - nb_ || numel > SIZE_MAX)
      return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': size overflows", path, pn);
    if (numel && !t[i].data && !t[i].raw && !fill)
      return cc_fail(CLIPCL_ERR_ARG, "%s: tensor '%s': no data, raw bytes or fill callback", path, pn);
    bytes[i + 1] = bytes[i] + nb_;
  }
  return CLIPCL_OK;
}

static clipcl_status build_header(const char *path, const cc_st_out *t, size_t n, const cc_st_kv *meta,
                                  size_t nmeta, const uint64_t *off, char **out, size_t *len) {
  clipcl_status s = CLIPCL_OK;
  json_t *root = json_object();
  if (!root) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  if (nmeta) {
    json_t *m = json_object();
    if (!m || json_object_set_new(root, "__metadata__", m) != 0) {
      s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
      goto done;
    }
    for (size_t i = 0; i < nmeta; i++) {
      if (!meta[i].key || !meta[i].value) {
        s = cc_fail(CLIPCL_ERR_ARG, "%s: metadata entry %zu has a NULL key or value", path, i);
        goto done;
      }
      if (json_object_get(m, meta[i].key)) {
        s = cc_fail(CLIPCL_ERR_ARG, "%s: metadata key '%s' given twice", path, meta[i].key);
        goto done;
      }
      json_t *v = json_string(meta[i].value);
      if (!v || json_object_set_new(m, meta[i].key, v) != 0) {
        s = cc_fail(CLIPCL_ERR_ARG, "%s: metadata entry %zu is not valid UTF-8", path, i);
        goto done;
      }
    }
  }
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object(), *sh = json_array(), *of = json_array();
    int bad = !o || !sh || !of;
    bad = bad || json_object_set_new(o, "dtype", json_string(dtypes[t[i].dtype].name));
    for (int d = 0; !bad && d < t[i].ndim; d++) bad = json_array_append_new(sh, json_integer(t[i].shape[d]));
    bad = bad || json_object_set_new(o, "shape", sh);
    sh = NULL;
    bad = bad || json_array_append_new(of, json_integer((json_int_t)off[i]));
    bad = bad || json_array_append_new(of, json_integer((json_int_t)off[i + 1]));
    bad = bad || json_object_set_new(o, "data_offsets", of);
    of = NULL;
    if (bad) {
      json_decref(o);
      json_decref(sh);
      json_decref(of);
      s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory building the header", path);
      goto done;
    }
    if (json_object_set_new(root, t[i].name, o) != 0) {
      s = cc_fail(CLIPCL_ERR_ARG, "%s: tensor %zu: name is not valid UTF-8", path, i);
      goto done;
    }
  }
  /* Compact JSON ("," and ":" without spaces) in insertion order, like the
   * reference writer, then spaces up to a multiple of 8 so the data starts
   * 8-byte aligned. */
  char *js = json_dumps(root, JSON_COMPACT);
  if (!js) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory serialising the header", path);
    goto done;
  }
  size_t l = strlen(js), pad = (8 - l % 8) % 8;
  char *h = malloc(l + pad + 1);
  if (!h) {
    free(js);
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  memcpy(h, js, l);
  memset(h + l, ' ', pad);
  h[l + pad] = 0;
  free(js);
  *out = h;
  *len = l + pad;
done:
  json_decref(root);
  return s;
}

clipcl_status cc_st_write(const char *path, const cc_st_out *t, size_t n, const cc_st_kv *meta, size_t nmeta,
                          cc_st_fill_fn fill, void *ctx) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "cc_st_write: no path");
  if ((n && !t) || (nmeta && !meta)) return cc_fail(CLIPCL_ERR_ARG, "%s: NULL tensor or metadata array", path);
  clipcl_status s = CLIPCL_OK;
  uint64_t *off = calloc(n + 1, sizeof *off);
  const char **names = calloc(n ? n : 1, sizeof *names);
  char *hdr = NULL;
  unsigned char *cbuf = NULL;
  float *fbuf = NULL;
  cc_atomic *a = NULL;
  if (!off || !names) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  if ((s = check_outputs(path, t, n, fill, off)) != CLIPCL_OK) goto done;
  for (size_t i = 0; i < n; i++) names[i] = t[i].name;
  qsort(names, n, sizeof *names, cmp_str_ptr);
  for (size_t i = 1; i < n; i++)
    if (strcmp(names[i - 1], names[i]) == 0) {
      char nb[96];
      s = cc_fail(CLIPCL_ERR_ARG, "%s: tensor name '%s' given twice", path, printable(names[i], nb, sizeof nb));
      goto done;
    }
  if (off[n] > (uint64_t)INT64_MAX) {
    s = cc_fail(CLIPCL_ERR_ARG, "%s: data too large", path);
    goto done;
  }
  size_t hlen = 0;
  if ((s = build_header(path, t, n, meta, nmeta, off, &hdr, &hlen)) != CLIPCL_OK) goto done;
  unsigned char lb[8];
  for (int b = 0; b < 8; b++) lb[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
  cbuf = malloc(CC_ST_CHUNK * 8);
  fbuf = malloc(CC_ST_CHUNK * sizeof *fbuf);
  if (!cbuf || !fbuf) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  if ((s = cc_atomic_begin(path, &a)) != CLIPCL_OK) goto done;
  if ((s = cc_atomic_write(a, lb, 8)) != CLIPCL_OK) goto done;
  if ((s = cc_atomic_write(a, hdr, hlen)) != CLIPCL_OK) goto done;
  for (size_t i = 0; i < n; i++) {
    size_t es = dtypes[t[i].dtype].size, numel = (size_t)((off[i + 1] - off[i]) / es);
    if (t[i].raw) {
      if ((s = cc_atomic_write(a, t[i].raw, numel * es)) != CLIPCL_OK) goto done;
      continue;
    }
    if (t[i].data && t[i].dtype == CC_ST_F32 && host_is_le()) {
      if ((s = cc_atomic_write(a, t[i].data, numel * 4)) != CLIPCL_OK) goto done;
      continue;
    }
    for (size_t done = 0; done < numel;) {
      size_t m = numel - done < CC_ST_CHUNK ? numel - done : CC_ST_CHUNK;
      const float *src = t[i].data ? t[i].data + done : fbuf;
      if (!t[i].data && (s = fill(ctx, i, done, m, fbuf)) != CLIPCL_OK) goto done;
      encode(t[i].dtype, src, cbuf, m);
      if ((s = cc_atomic_write(a, cbuf, m * es)) != CLIPCL_OK) goto done;
      done += m;
    }
  }
  s = cc_atomic_commit(a);
  a = NULL;
done:
  cc_atomic_abort(a);
  free(off);
  free(names);
  free(hdr);
  free(cbuf);
  free(fbuf);
  return s;
}
