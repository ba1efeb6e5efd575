/* test_safetensors.c: safetensors reader and writer on good files.
 *  - conversions against tests/data/st_dtypes.safetensors (numpy-made, see
 *    tests/tools/make_io_fixtures.py): all 65536 F16 patterns, BF16 patterns,
 *    F64 values -> float32, and float32 -> F16 / BF16 encodings; exact bits,
 *    except that NaNs need only be NaNs of the same sign (payload conventions
 *    differ between numpy builds);
 *  - write -> read round trips, bitwise, with metadata, scalars, empty and
 *    large (multi-chunk) tensors, raw integer tensors, streamed tensors;
 *  - the header bytes of a small file against the exact expected text;
 *  - writer argument errors and an injected failure leave the old file.
 */
#include <math.h>

#include "io/atomic.h"
#include "util/error.h"
#include "io/safetensors.h"
#include "io_testutil.h"

static const char *FIXTURE = "data/st_dtypes.safetensors";

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Same float bits, or both NaN with the same sign. Prints the first miss. */
static int same_floats(const char *name, const float *got, const float *want, size_t n) {
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; i++) {
    int ok = isnan(want[i]) ? isnan(got[i]) && signbit(got[i]) == signbit(want[i]) : bits(got[i]) == bits(want[i]);
    if (!ok && bad++ == 0) first = i;
  }
  if (bad)
    return th_assert(name, 0, "%zu of %zu differ; first at %zu: got %a (0x%08x), want %a (0x%08x)", bad, n, first,
                     got[first], bits(got[first]), want[first], bits(want[first]));
  return th_assert(name, 1, "%zu values", n);
}

/* Same 16-bit patterns; where the source is NaN only NaN-ness and sign. */
static int same_halves(const char *name, const uint16_t *got, const uint16_t *want, const float *src, size_t n,
                       uint16_t exp_mask) {
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; i++) {
    int ok;
    if (isnan(src[i]))
      ok = (got[i] & exp_mask) == exp_mask && (got[i] & (uint16_t)~(exp_mask | 0x8000u)) &&
           (got[i] & 0x8000u) == (want[i] & 0x8000u);
    else
      ok = got[i] == want[i];
    if (!ok && bad++ == 0) first = i;
  }
  if (bad)
    return th_assert(name, 0, "%zu of %zu differ; first at %zu: src %a got 0x%04x want 0x%04x", bad, n, first,
                     src[first], got[first], want[first]);
  return th_assert(name, 1, "%zu values", n);
}

static float *read_all(cc_st_file *f, const char *name, size_t *n) {
  const cc_st_tensor *t = cc_st_find(f, name);
  if (!t) {
    fprintf(stderr, "fixture lacks %s\n", name);
    exit(1);
  }
  float *x = th_alloc(t->numel ? t->numel : 1);
  TH_OK(cc_st_read_f32(f, t, x));
  *n = t->numel;
  return x;
}

static uint16_t *read_u16(cc_st_file *f, const char *name, size_t *n) {
  const cc_st_tensor *t = cc_st_find(f, name);
  if (!t || cc_st_dtype_size(t->dtype) != 2) {
    fprintf(stderr, "fixture lacks 16-bit %s\n", name);
    exit(1);
  }
  uint16_t *h = (uint16_t *)th_alloc(t->numel / 2 + 1);
  unsigned char *b = malloc(t->end - t->begin);
  TH_OK(cc_st_read_raw(f, t, b, t->end - t->begin));
  for (size_t i = 0; i < t->numel; i++) h[i] = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
  free(b);
  *n = t->numel;
  return h;
}

static void test_fixture(const char *dir) {
  cc_st_file *f;
  TH_OK(cc_st_open(FIXTURE, &f));
  th_assert("fixture tensor count", cc_st_count(f) == 10, "%zu", cc_st_count(f));
  th_assert("fixture metadata", cc_st_meta_count(f) == 2 && cc_st_meta(f, "format") &&
                                    !strcmp(cc_st_meta(f, "format"), "pt") && !cc_st_meta(f, "missing"),
            NULL);
  int ordered = 1;
  for (size_t i = 1; i < cc_st_count(f); i++) ordered &= cc_st_get(f, i - 1)->end <= cc_st_get(f, i)->begin;
  th_assert("tensors listed in file order", ordered && !cc_st_get(f, cc_st_count(f)), NULL);
  th_assert("find misses absent names", !cc_st_find(f, "nope") && !cc_st_find(f, ""), NULL);

  size_t n, m;
  float *h = read_all(f, "f16_all", &n), *hw = read_all(f, "f16_all_f32", &m);
  th_assert("F16 fixture size", n == 65536 && m == n, NULL);
  same_floats("F16 -> F32, all 65536 patterns vs numpy", h, hw, n);
  /* a few values stated independently of numpy */
  th_assert("F16 0x0001 = 2^-24", h[1] == 0x1p-24f, "%a", h[1]);
  th_assert("F16 0x03ff = largest subnormal", h[0x3ff] == 0x3ffp-24f, "%a", h[0x3ff]);
  th_assert("F16 0x0400 = 2^-14", h[0x400] == 0x1p-14f, "%a", h[0x400]);
  th_assert("F16 0x7bff = 65504", h[0x7bff] == 65504.0f, "%a", h[0x7bff]);
  th_assert("F16 0x7c00 = inf, 0xfc00 = -inf", isinf(h[0x7c00]) && h[0x7c00] > 0 && isinf(h[0xfc00]) && h[0xfc00] < 0,
            NULL);
  th_assert("F16 0x8000 = -0", h[0x8000] == 0 && signbit(h[0x8000]), NULL);
  th_assert("F16 0x7e00 and 0x7c01 are NaN", isnan(h[0x7e00]) && isnan(h[0x7c01]) && isnan(h[0xfe00]), NULL);
  th_assert("F16 0x3c00 = 1, 0xc000 = -2", h[0x3c00] == 1.0f && h[0xc000] == -2.0f, NULL);

  float *b = read_all(f, "bf16_some", &n), *bw = read_all(f, "bf16_some_f32", &m);
  th_assert("BF16 fixture size", n == m && n > 4000, "%zu", n);
  same_floats("BF16 -> F32 vs numpy", b, bw, n);

  float *d = read_all(f, "f64_src", &n), *dw = read_all(f, "f64_as_f32", &m);
  th_assert("F64 fixture size", n == m && n > 2000, "%zu", n);
  same_floats("F64 -> F32 vs numpy", d, dw, n);

  /* encodings: write the float32 sources as F16 and BF16, compare the bits */
  float *src = read_all(f, "enc_src", &n);
  uint16_t *w16 = read_u16(f, "enc_f16", &m), *wb16 = read_u16(f, "enc_bf16", &m);
  char path[600];
  snprintf(path, sizeof path, "%s/enc.safetensors", dir);
  cc_st_out o[2] = {{.name = "h", .dtype = CC_ST_F16, .ndim = 1, .shape = {(int64_t)n}, .data = src},
                    {.name = "b", .dtype = CC_ST_BF16, .ndim = 1, .shape = {(int64_t)n}, .data = src}};
  TH_OK(cc_st_write(path, o, 2, NULL, 0, NULL, NULL));
  cc_st_file *g;
  TH_OK(cc_st_open(path, &g));
  size_t k;
  uint16_t *g16 = read_u16(g, "h", &k), *gb16 = read_u16(g, "b", &k);
  same_halves("F32 -> F16 written vs numpy astype", g16, w16, src, n, 0x7c00);
  same_halves("F32 -> BF16 written vs round-to-even (torch-checked)", gb16, wb16, src, n, 0x7f80);
  cc_st_close(g);

  const cc_st_tensor *pid = cc_st_find(f, "text_model.embeddings.position_ids");
  th_assert("I64 buffer listed", pid && pid->dtype == CC_ST_I64 && pid->ndim == 2 && pid->shape[0] == 1 &&
                                     pid->shape[1] == 77 && pid->numel == 77,
            NULL);
  if (pid) {
    float tmp[77];
    tu_check_fail("I64 does not read as float", cc_st_read_f32(f, pid, tmp), CLIPCL_ERR_UNSUPPORTED, FIXTURE, "I64");
    unsigned char raw[77 * 8];
    tu_check_fail("raw read needs room", cc_st_read_raw(f, pid, raw, sizeof raw - 1), CLIPCL_ERR_ARG, FIXTURE,
                  NULL);
    TH_OK(cc_st_read_raw(f, pid, raw, sizeof raw));
    int ok = 1;
    for (int i = 0; i < 77; i++) {
      int64_t v = 0;
      for (int j = 7; j >= 0; j--) v = v * 256 + raw[8 * i + j];
      ok &= v == i;
    }
    th_assert("I64 raw values 0..76", ok, NULL);
  }
  cc_st_close(f);
}

static void fill_specials(float *x, size_t n) {
  const uint32_t sp[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                         0x7f800001u, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0x3f800000u};
  for (size_t i = 0; i < n; i++) x[i] = (float)th_normal();
  for (size_t i = 0; i < sizeof sp / sizeof *sp && i < n; i++) memcpy(&x[i * 7 % n], &sp[i], 4);
}

typedef struct {
  size_t calls;
} fill_ctx;

static float ramp(uint64_t i) { return (float)(sin((double)i * 0.001) * (double)(i % 1000)); }

static clipcl_status fill_ramp(void *ctx, size_t index, uint64_t first, size_t count, float *dst) {
  ((fill_ctx *)ctx)->calls++;
  if (index != 1) return CLIPCL_ERR_ARG;
  for (size_t i = 0; i < count; i++) dst[i] = ramp(first + i);
  return CLIPCL_OK;
}

static clipcl_status fill_fail(void *ctx, size_t index, uint64_t first, size_t count, float *dst) {
  (void)ctx, (void)index, (void)dst;
  return cc_fail(CLIPCL_ERR_NUMERIC, "producer failed at %llu+%zu", (unsigned long long)first, count);
}

static void test_round_trip(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/rt.safetensors", dir);
  size_t nbig = 100003;
  float scalar = 2.6592f, *a = th_alloc(15), *conv = th_alloc(48), *big = th_alloc(nbig);
  fill_specials(a, 15);
  fill_specials(conv, 48);
  fill_specials(big, nbig);
  int64_t ids[5] = {0, 1, -2, INT64_MAX, INT64_MIN};
  cc_st_out t[] = {
      {.name = "logit_scale", .ndim = 0, .data = &scalar},
      {.name = "visual.transformer.resblocks.0.attn.in_proj_weight", .ndim = 2, .shape = {3, 5}, .data = a},
      {.name = "empty", .ndim = 2, .shape = {0, 4}},
      {.name = "conv", .ndim = 4, .shape = {4, 3, 2, 2}, .data = conv},
      {.name = "big", .ndim = 1, .shape = {(int64_t)nbig}, .data = big},
      {.name = "ids", .dtype = CC_ST_I64, .ndim = 1, .shape = {5}, .raw = ids},
      {.name = "caf\xc3\xa9 \xe2\x86\x92 \"q\"", .ndim = 1, .shape = {2}, .data = a},
  };
  size_t nt = sizeof t / sizeof *t;
  cc_st_kv meta[] = {{"format", "pt"}, {"note", "line1\nline2 \"quoted\" \\ back\\slash"}, {"k\xc3\xa9y", ""}};
  TH_OK(cc_st_write(path, t, nt, meta, 3, NULL, NULL));

  cc_st_file *f;
  TH_OK(cc_st_open(path, &f));
  th_assert("round trip count", cc_st_count(f) == nt, "%zu", cc_st_count(f));
  int order = 1;
  for (size_t i = 0; i < nt && i < cc_st_count(f); i++) order &= !strcmp(cc_st_get(f, i)->name, t[i].name);
  th_assert("tensors kept in the given order", order, NULL);
  int shapes = 1;
  for (size_t i = 0; i < nt; i++) {
    const cc_st_tensor *r = cc_st_find(f, t[i].name);
    shapes &= r && r->ndim == t[i].ndim && r->dtype == t[i].dtype;
    for (int d = 0; r && d < r->ndim; d++) shapes &= r->shape[d] == t[i].shape[d];
  }
  th_assert("names, dtypes and shapes", shapes, NULL);
  const cc_st_tensor *r = cc_st_find(f, "logit_scale");
  float got1;
  TH_OK(cc_st_read_f32(f, r, &got1));
  th_assert("scalar bitwise", r->numel == 1 && bits(got1) == bits(scalar), NULL);
  float *g = th_alloc(nbig);
  TH_OK(cc_st_read_f32(f, cc_st_find(f, t[1].name), g));
  th_same_bits("3x5 bitwise (NaN payloads, -0, inf, subnormals)", g, a, 15);
  TH_OK(cc_st_read_f32(f, cc_st_find(f, "conv"), g));
  th_same_bits("4-D bitwise", g, conv, 48);
  TH_OK(cc_st_read_f32(f, cc_st_find(f, "big"), g));
  th_same_bits("100003 floats bitwise", g, big, nbig);
  TH_OK(cc_st_read_f32_range(f, cc_st_find(f, "big"), 40000, 30001, g));
  th_same_bits("range read", g, big + 40000, 30001);
  tu_check_fail("range past the end", cc_st_read_f32_range(f, cc_st_find(f, "big"), nbig - 1, 2, g),
                CLIPCL_ERR_ARG, path, "past");
  r = cc_st_find(f, "empty");
  th_assert("empty tensor", r && r->numel == 0 && r->begin == r->end, NULL);
  TH_OK(cc_st_read_f32(f, r, NULL));
  int64_t ids2[5];
  TH_OK(cc_st_read_raw(f, cc_st_find(f, "ids"), ids2, sizeof ids2));
  th_assert("raw I64 round trip", !memcmp(ids, ids2, sizeof ids), NULL);
  TH_OK(cc_st_read_f32(f, cc_st_find(f, t[6].name), g));
  th_same_bits("UTF-8 name with quotes", g, a, 2);
  int mok = cc_st_meta_count(f) == 3;
  for (int i = 0; i < 3; i++) mok &= cc_st_meta(f, meta[i].key) && !strcmp(cc_st_meta(f, meta[i].key), meta[i].value);
  th_assert("metadata intact", mok, NULL);

  /* a tensor handle of another file is refused */
  cc_st_file *fx;
  TH_OK(cc_st_open(FIXTURE, &fx));
  tu_check_fail("foreign tensor handle", cc_st_read_f32(f, cc_st_get(fx, 0), g), CLIPCL_ERR_ARG, NULL, NULL);
  cc_st_close(fx);
  cc_st_close(f);

  /* streamed data, F32 and F16, with the chunk loop crossing boundaries */
  size_t ns = 70001;
  float *half_src = th_alloc(ns);
  for (size_t i = 0; i < ns; i++) half_src[i] = ramp(i);
  cc_st_out s[3] = {{.name = "direct", .dtype = CC_ST_F16, .ndim = 1, .shape = {(int64_t)ns}, .data = half_src},
                    {.name = "streamed", .ndim = 2, .shape = {7, 10000}},
                    {.name = "streamed_ref", .ndim = 2, .shape = {7, 10000}, .data = half_src}};
  fill_ctx fc = {0};
  TH_OK(cc_st_write(path, s, 3, NULL, 0, fill_ramp, &fc));
  TH_OK(cc_st_open(path, &f));
  th_assert("callback called per chunk", fc.calls == (70000 + 16383) / 16384, "%zu calls", fc.calls);
  TH_OK(cc_st_read_f32(f, cc_st_find(f, "streamed"), g));
  th_same_bits("streamed F32 bitwise", g, half_src, 70000);
  TH_OK(cc_st_read_f32(f, cc_st_find(f, "direct"), g));
  int hok = 1;
  for (size_t i = 0; i < ns; i++) hok &= fabsf(g[i] - half_src[i]) <= fabsf(half_src[i]) * 0x1p-11f;
  th_assert("F16 storage within half an F16 ulp", hok, NULL);
  th_assert("no metadata written when none given", cc_st_meta_count(f) == 0, NULL);
  cc_st_close(f);
}

static void test_header_bytes(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/hdr.safetensors", dir);
  float v[2] = {1.0f, -2.0f};
  cc_st_out t = {.name = "a", .ndim = 1, .shape = {2}, .data = v};
  cc_st_kv meta = {"format", "pt"};
  TH_OK(cc_st_write(path, &t, 1, &meta, 1, NULL, NULL));
  const char *js = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  size_t jl = strlen(js), n = (jl + 7) / 8 * 8;
  unsigned char want[256];
  for (int i = 0; i < 8; i++) want[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(want + 8, js, jl);
  memset(want + 8 + jl, ' ', n - jl);
  memcpy(want + 8 + n, "\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  th_assert("header bytes: compact JSON, space padded to 8, LE data", tu_same_file(path, want, 16 + n),
            "%zu bytes expected", 16 + n);

  /* no tensors, no metadata: "{}" and six spaces */
  TH_OK(cc_st_write(path, NULL, 0, NULL, 0, NULL, NULL));
  th_assert("empty file bytes", tu_same_file(path, "\x08\0\0\0\0\0\0\0{}      ", 16), NULL);
  cc_st_file *f;
  TH_OK(cc_st_open(path, &f));
  th_assert("empty file opens", cc_st_count(f) == 0 && cc_st_meta_count(f) == 0, NULL);
  cc_st_close(f);
}

static void test_writer_errors(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/keep.safetensors", dir);
  float v[4] = {1, 2, 3, 4};
  cc_st_out ok = {.name = "w", .ndim = 1, .shape = {4}, .data = v};
  TH_OK(cc_st_write(path, &ok, 1, NULL, 0, NULL, NULL));
  size_t len = 0;
  unsigned char *before = tu_read(path, &len);
  int entries = tu_count_entries(dir);
  if (!before) exit(1);

  cc_st_out dup[2] = {ok, ok};
  tu_check_fail("duplicate names", cc_st_write(path, dup, 2, NULL, 0, NULL, NULL), CLIPCL_ERR_ARG, path, "twice");
  cc_st_out m = ok;
  m.name = "__metadata__";
  tu_check_fail("__metadata__ as a name", cc_st_write(path, &m, 1, NULL, 0, NULL, NULL), CLIPCL_ERR_ARG, path, NULL);
  m.name = "bad\xff";
  tu_check_fail("invalid UTF-8 name", cc_st_write(path, &m, 1, NULL, 0, NULL, NULL), CLIPCL_ERR_ARG, path, "UTF-8");
  m = ok;
  m.data = NULL;
  tu_check_fail("no data source", cc_st_write(path, &m, 1, NULL, 0, NULL, NULL), CLIPCL_ERR_ARG, path, NULL);
  m = ok;
  m.dtype = CC_ST_I32;
  tu_check_fail("float data as I32", cc_st_write(path, &m, 1, NULL, 0, NULL, NULL), CLIPCL_ERR_ARG, path, "I32");
  m = ok;
  m.shape[0] = -1;
  tu_check_fail("negative dimension", cc_st_write(path, &m, 1, NULL, 0, NULL, NULL), CLIPCL_ERR_ARG, path, NULL);
  cc_st_kv dm[2] = {{"a", "1"}, {"a", "2"}};
  tu_check_fail("duplicate metadata key", cc_st_write(path, &ok, 1, dm, 2, NULL, NULL), CLIPCL_ERR_ARG, path, NULL);
  th_assert("argument errors leave the file", tu_same_file(path, before, len), NULL);

  /* failures half way through the data and at the fsync */
  float *big = th_alloc(50000);
  fill_specials(big, 50000);
  cc_st_out b = {.name = "big", .dtype = CC_ST_F16, .ndim = 1, .shape = {50000}, .data = big};
  int64_t at[] = {0, 7, 100, 40000, 100000, 1 << 20};
  for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
    cc_atomic_inject_failure(at[i]);
    clipcl_status s = cc_st_write(path, &b, 1, NULL, 0, NULL, NULL);
    char name[96];
    snprintf(name, sizeof name, "injected failure at %lld keeps the file", (long long)at[i]);
    th_assert(name, s == CLIPCL_ERR_IO && tu_same_file(path, before, len) && tu_count_entries(dir) == entries,
              "%s",
              clipcl_last_error());
  }
  /* a failing fill callback too */
  cc_st_out cb = {.name = "cb", .ndim = 1, .shape = {10}};
  clipcl_status s = cc_st_write(path, (cc_st_out[]){ok, cb}, 2, NULL, 0, fill_fail, NULL);
  th_assert("fill callback error propagates", s == CLIPCL_ERR_NUMERIC && tu_same_file(path, before, len) &&
                                                  tu_count_entries(dir) == entries,
            "%d %s", (int)s, clipcl_last_error());
  free(before);
}

int main(void) {
  char dir[512];
  tu_tmpdir(dir, sizeof dir);
  th_seed(12345);
  test_fixture(dir);
  test_round_trip(dir);
  test_header_bytes(dir);
  test_writer_errors(dir);
  tu_rmdir(dir);
  return th_finish(NULL);
}
