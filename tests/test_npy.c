/* test_npy.c: .npy writer and reader (src/io/npy.c).
 * Without arguments (ctest): numpy-written fixtures in tests/data/ (format
 * 1.0, 2.0 and the old 16-byte padding) read exactly; written headers match
 * numpy 1.24's bytes; write -> read is bitwise; the streaming writer checks
 * its count; an injected failure keeps the old file; malformed headers are
 * FORMAT and valid-but-unhandled ones UNSUPPORTED, one-line messages.
 * With arguments it serves tests/test_npy_numpy.sh, which checks files in
 * both directions against the real numpy:
 *   test_npy write DIR            writes c_2d.npy (37x11), c_1d.npy (9), c_empty.npy (0x4),
 *                                 c_3d.npy (5x3x4)
 *   test_npy check FILE R C       FILE holds i*0.25-3, shape (R, C), or (R,) if C is 0
 *   test_npy same FILE.npy FILE.raw   data bitwise equal to the raw float32 file
 *   test_npy refuse FILE          reading FILE fails with a one-line message
 *   test_npy half-write OUT.npy IN.raw   IN (float32, n values) stored as a float16 (n,) .npy
 *   test_npy half-read IN.npy WANT.raw   IN (float16) read as float32 equals WANT bitwise
 * Values i*0.25-3 are exact in float32, so comparisons are exact. */
#include <math.h>

#include "io/atomic.h"
#include "io/npy.h"
#include "io_testutil.h"

static float formula(size_t i) { return (float)i * 0.25f - 3.0f; }

static int check_formula(const char *name, const char *path, int want_nd, size_t r, size_t c) {
  float *x = NULL;
  int nd = 0;
  size_t sh[2] = {0, 0};
  clipcl_status s = cc_npy_read_f32(path, &x, &nd, sh);
  if (s != CLIPCL_OK) return th_assert(name, 0, "%s", clipcl_last_error());
  int ok = nd == want_nd && sh[0] == r && sh[1] == (want_nd == 1 ? 1 : c);
  size_t n = r * (want_nd == 1 ? 1 : c);
  for (size_t i = 0; ok && i < n; i++) ok = x[i] == formula(i);
  ok = ok && (n > 0 || x == NULL);
  free(x);
  return th_assert(name, ok, "ndim %d shape (%zu, %zu)", nd, sh[0], sh[1]);
}

static void write_formula(const char *path, int nd, size_t r, size_t c) {
  size_t n = r * (nd == 1 ? 1 : c), sh[2] = {r, c};
  float *x = malloc((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = formula(i);
  TH_OK(cc_npy_write_f32(path, x, nd, sh));
  free(x);
}

/* A .npy with the given version bytes and header text, then `data` bytes. */
static void make_npy(const char *path, int major, const char *hdr, size_t data) {
  size_t hl = strlen(hdr), pre = major == 1 ? 10 : 12;
  unsigned char *b = calloc(pre + hl + data, 1);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)major;
  b[7] = 0;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(hl >> (8 * i));
  memcpy(b + pre, hdr, hl);
  tu_write(path, b, pre + hl + data);
  free(b);
}

static void expect_bad(const char *name, const char *path, clipcl_status want, const char *word) {
  float *x = (float *)&x;
  int nd;
  size_t sh[2];
  tu_check_fail(name, cc_npy_read_f32(path, &x, &nd, sh), want, path, word);
  th_assert(name, x == NULL, "output pointer NULL after the failure");
}

static void test_bad(const char *dir) {
  char p[600];
  snprintf(p, sizeof p, "%s/bad.npy", dir);
  const char *D = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
  make_npy(p, 1, D, 24);
  {
    float *x = NULL;
    int nd = 0;
    size_t sh[2] = {0, 0};
    clipcl_status s = cc_npy_read_f32(p, &x, &nd, sh);
    th_assert("sanity: the hand-made good file opens", s == CLIPCL_OK && nd == 2 && sh[0] == 2 && sh[1] == 3 && x &&
                                                           x[5] == 0.0f,
              "%s", s ? clipcl_last_error() : "");
    free(x);
  }
  tu_write(p, "\x93NUMPY\x01", 7);
  expect_bad("7-byte file", p, CLIPCL_ERR_FORMAT, "too short");
  tu_write(p, "\x93NUMPZ\x01\x00\x02\x00{}", 12);
  expect_bad("bad magic", p, CLIPCL_ERR_FORMAT, "magic");
  make_npy(p, 3, D, 24);
  expect_bad("format 3.0", p, CLIPCL_ERR_UNSUPPORTED, "3.0");
  tu_write(p, "\x93NUMPY\x01\x01\x02\x00{}", 12);
  expect_bad("format 1.1", p, CLIPCL_ERR_UNSUPPORTED, "1.1");
  tu_write(p, "\x93NUMPY\x01\x00\xff\x00{}", 12);
  expect_bad("header past the end", p, CLIPCL_ERR_FORMAT, "truncated");
  tu_write(p, "\x93NUMPY\x02\x00\x00\x00\x00\x40{}", 14);
  expect_bad("2.0 header of 1 GiB", p, CLIPCL_ERR_FORMAT, "limit");
  struct {
    const char *name, *hdr, *word;
    size_t data;
    clipcl_status want;
  } cases[] = {
      {"not a dict", "['descr', '<f4']\n", "not a dict", 24, CLIPCL_ERR_FORMAT},
      {"missing shape", "{'descr': '<f4', 'fortran_order': False}\n", "missing", 24, CLIPCL_ERR_FORMAT},
      {"extra key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}\n", "unexpected key", 24,
       CLIPCL_ERR_FORMAT},
      {"duplicate key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}\n", "twice", 24,
       CLIPCL_ERR_FORMAT},
      {"shape not a tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': (6)}\n", "not a tuple", 24,
       CLIPCL_ERR_FORMAT},
      {"shape a list", "{'descr': '<f4', 'fortran_order': False, 'shape': [6]}\n", "not a tuple", 24,
       CLIPCL_ERR_FORMAT},
      {"negative dimension", "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}\n", "negative", 24,
       CLIPCL_ERR_FORMAT},
      {"dimension real", "{'descr': '<f4', 'fortran_order': False, 'shape': (6.0,)}\n", "shape", 24,
       CLIPCL_ERR_FORMAT},
      {"dimension overflow", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}\n",
       "overflows", 24, CLIPCL_ERR_FORMAT},
      {"shape product overflow",
       "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}\n", "overflows", 24,
       CLIPCL_ERR_FORMAT},
      {"fortran_order 0", "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}\n", "True or False", 24,
       CLIPCL_ERR_FORMAT},
      {"unterminated string", "{'descr: '<f4', 'fortran_order': False, 'shape': (6,)}\n", NULL, 24,
       CLIPCL_ERR_FORMAT},
      {"trailing text", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x\n", "trailing", 24,
       CLIPCL_ERR_FORMAT},
      {"non-ASCII byte", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}\xc3\xa9\n", "non-ASCII", 24,
       CLIPCL_ERR_FORMAT},
      {"data too short", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", "24 data bytes", 20,
       CLIPCL_ERR_FORMAT},
      {"data too long", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", "holds 28", 28,
       CLIPCL_ERR_FORMAT},
      {"float64", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n", "'<f8'", 24,
       CLIPCL_ERR_UNSUPPORTED},
      {"big-endian float32", "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }\n", "'>f4'", 24,
       CLIPCL_ERR_UNSUPPORTED},
      {"Fortran order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", "Fortran", 24,
       CLIPCL_ERR_UNSUPPORTED},
      {"3-D", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }\n", "3-D", 24,
       CLIPCL_ERR_UNSUPPORTED},
      {"0-D", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", "0-D", 4, CLIPCL_ERR_UNSUPPORTED},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    make_npy(p, 1, cases[i].hdr, cases[i].data);
    expect_bad(cases[i].name, p, cases[i].want, cases[i].word);
  }
  /* Python literal variations numpy itself accepts */
  make_npy(p, 1, "{\"shape\":(2,3,),\"fortran_order\":False,\"descr\":\"<f4\"}", 24);
  float *x = NULL;
  int nd;
  size_t sh[2];
  clipcl_status s = cc_npy_read_f32(p, &x, &nd, sh);
  th_assert("key order, double quotes, no spaces", s == CLIPCL_OK && nd == 2 && sh[0] == 2 && sh[1] == 3, "%s",
            s ? clipcl_last_error() : "");
  free(x);
  make_npy(p, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6L,)}   \n", 24);
  x = NULL;
  s = cc_npy_read_f32(p, &x, &nd, sh);
  th_assert("Python 2 long suffix, format 2.0", s == CLIPCL_OK && nd == 1 && sh[0] == 6, "%s",
            s ? clipcl_last_error() : "");
  free(x);
  char missing[700];
  snprintf(missing, sizeof missing, "%s/none.npy", dir);
  expect_bad("missing file", missing, CLIPCL_ERR_IO, "cannot open");
}

static void test_write(const char *dir) {
  char p[600];
  snprintf(p, sizeof p, "%s/w.npy", dir);
  write_formula(p, 2, 3, 5);
  /* numpy 1.24: dict repr, 21 - len("3") growth spaces, padded to 128 */
  char want[129];
  memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
  const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }";
  memset(want + 10, ' ', 118);
  memcpy(want + 10, dict, strlen(dict));
  want[127] = '\n';
  size_t len = 0;
  unsigned char *b = tu_read(p, &len);
  th_assert("2-D header bytes as numpy writes them", b && len == 128 + 60 && !memcmp(b, want, 128), "%zu bytes",
            len);
  free(b);
  check_formula("2-D write -> read", p, 2, 3, 5);
  write_formula(p, 1, 7, 0);
  b = tu_read(p, &len);
  th_assert("1-D header says (7,)", b && len == 128 + 28 && !memcmp(b + 10 + 50, "(7,), }    ", 11), NULL);
  free(b);
  check_formula("1-D write -> read", p, 1, 7, 0);
  write_formula(p, 2, 0, 512);
  check_formula("empty (0, 512)", p, 2, 0, 512);

  /* bitwise, special values included */
  size_t sh[2] = {129, 33}, n = sh[0] * sh[1];
  float *x = th_alloc(n), *y = NULL;
  for (size_t i = 0; i < n; i++) x[i] = (float)th_normal();
  const uint32_t sp[] = {0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00123u, 0x00000001u};
  for (size_t i = 0; i < 5; i++) memcpy(&x[i * 97], &sp[i], 4);
  TH_OK(cc_npy_write_f32(p, x, 2, sh));
  int nd;
  size_t gs[2];
  TH_OK(cc_npy_read_f32(p, &y, &nd, gs));
  th_assert("bitwise shape", nd == 2 && gs[0] == 129 && gs[1] == 33, NULL);
  th_same_bits("bitwise round trip", y, x, n);
  free(y);

  /* streaming: 1000 x 64 in blocks of 37 rows */
  size_t ss[2] = {1000, 64};
  float *row = th_alloc(37 * 64);
  cc_npy_writer *w;
  TH_OK(cc_npy_writer_open(p, 2, ss, &w));
  for (size_t r = 0; r < 1000; r += 37) {
    size_t m = 1000 - r < 37 ? 1000 - r : 37;
    for (size_t i = 0; i < m * 64; i++) row[i] = formula(r * 64 + i);
    TH_OK(cc_npy_writer_put(w, row, m * 64));
  }
  tu_check_fail("put past the declared size", cc_npy_writer_put(w, row, 1), CLIPCL_ERR_ARG, p, "exceed");
  TH_OK(cc_npy_writer_commit(w));
  check_formula("streamed 1000x64", p, 2, 1000, 64);

  b = tu_read(p, &len);
  TH_OK(cc_npy_writer_open(p, 2, ss, &w));
  TH_OK(cc_npy_writer_put(w, row, 64));
  tu_check_fail("commit with rows missing", cc_npy_writer_commit(w), CLIPCL_ERR_ARG, p, "not replaced");
  th_assert("short stream keeps the old file", tu_same_file(p, b, len), NULL);
  float *z = th_alloc(100 * 100);
  size_t zs[2] = {100, 100};
  cc_atomic_inject_failure(1000);
  tu_check_fail("injected failure", cc_npy_write_f32(p, z, 2, zs), CLIPCL_ERR_IO, p, "injected");
  th_assert("failed write keeps the old file", tu_same_file(p, b, len), NULL);
  free(b);
  size_t bad4[4] = {2, 2, 2, 2};
  tu_check_fail("4-D write refused", cc_npy_write_f32(p, z, 4, bad4), CLIPCL_ERR_ARG, p, NULL);

  /* float16: header, values exact in half come back exactly, others within
   * half an ulp (2^-11 relative), the strict reader refuses it */
  size_t hs[2] = {3, 5};
  float hv[15], *hy = NULL;
  for (int i = 0; i < 15; i++) hv[i] = formula((size_t)i);
  TH_OK(cc_npy_write_as(p, CC_NPY_F16, hv, 2, hs));
  b = tu_read(p, &len);
  th_assert("float16 header says '<f2'", b && len == 128 + 30 && !memcmp(b + 10, "{'descr': '<f2'", 15), "%zu", len);
  free(b);
  cc_npy_info in;
  TH_OK(cc_npy_probe(p, &in));
  th_assert("probe", in.dtype == CC_NPY_F16 && in.ndim == 2 && in.shape[0] == 3 && in.shape[1] == 5 &&
            in.data_offset == 128, NULL);
  TH_OK(cc_npy_read_float(p, &hy, &in));
  th_same_bits("float16 exact values round trip", hy, hv, 15);
  free(hy);
  float *r = NULL;
  tu_check_fail("cc_npy_read_f32 refuses float16", cc_npy_read_f32(p, &r, &nd, gs), CLIPCL_ERR_UNSUPPORTED, p,
                "'<f2'");
  TH_OK(cc_npy_write_as(p, CC_NPY_F16, x, 2, sh));
  TH_OK(cc_npy_read_float(p, &hy, &in));
  double worst = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i]) && fabsf(x[i]) > 1e-4f) worst = fmax(worst, fabs((double)hy[i] - x[i]) / fabs(x[i]));
  th_assert("float16 rounding within half an ulp", worst <= 1.0 / 2048, "worst relative error %g", worst);
  th_assert("float16 keeps NaN, infinities, -0", isnan(hy[3 * 97]) && isinf(hy[97]) && hy[97] > 0 &&
            isinf(hy[2 * 97]) && hy[2 * 97] < 0 && hy[0] == 0 && signbit(hy[0]), NULL);
  free(hy);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "write")) {
    char p[4096];
    snprintf(p, sizeof p, "%s/c_2d.npy", argv[2]);
    write_formula(p, 2, 37, 11);
    snprintf(p, sizeof p, "%s/c_1d.npy", argv[2]);
    write_formula(p, 1, 9, 0);
    snprintf(p, sizeof p, "%s/c_empty.npy", argv[2]);
    write_formula(p, 2, 0, 4);
    float x[5 * 3 * 4];
    for (size_t i = 0; i < 60; i++) x[i] = formula(i);
    snprintf(p, sizeof p, "%s/c_3d.npy", argv[2]);
    TH_OK(cc_npy_write_f32(p, x, 3, (size_t[]){5, 3, 4}));
    return 0;
  }
  if (argc == 5 && !strcmp(argv[1], "check")) {
    size_t r = (size_t)atol(argv[3]), c = (size_t)atol(argv[4]);
    check_formula(argv[2], argv[2], c ? 2 : 1, r, c);
    return th_finish(NULL);
  }
  if (argc == 4 && !strcmp(argv[1], "same")) {
    float *x = NULL;
    int nd;
    size_t sh[2], len = 0;
    TH_OK(cc_npy_read_f32(argv[2], &x, &nd, sh));
    unsigned char *raw = tu_read(argv[3], &len);
    th_assert(argv[2], raw && len == sh[0] * sh[1] * 4 && (len == 0 || !memcmp(raw, x, len)),
              "shape (%zu, %zu), raw %zu bytes", sh[0], sh[1], len);
    free(raw);
    free(x);
    return th_finish(NULL);
  }
  if (argc == 4 && !strcmp(argv[1], "half-write")) {
    size_t len = 0;
    unsigned char *raw = tu_read(argv[3], &len);
    size_t sh[2] = {len / 4, 1};
    TH_OK(cc_npy_write_as(argv[2], CC_NPY_F16, (const float *)raw, 1, sh));
    free(raw);
    return th_finish(NULL);
  }
  if (argc == 4 && !strcmp(argv[1], "half-read")) {
    float *x = NULL;
    cc_npy_info in;
    size_t len = 0;
    TH_OK(cc_npy_read_float(argv[2], &x, &in));
    unsigned char *raw = tu_read(argv[3], &len);
    th_assert(argv[2], in.dtype == CC_NPY_F16 && raw && len == in.shape[0] * in.shape[1] * 4 &&
              (len == 0 || !memcmp(raw, x, len)), "shape (%zu, %zu), raw %zu bytes", in.shape[0], in.shape[1], len);
    free(raw);
    free(x);
    return th_finish(NULL);
  }
  if (argc == 3 && !strcmp(argv[1], "refuse")) {
    float *x = NULL;
    int nd;
    size_t sh[2];
    clipcl_status s = cc_npy_read_f32(argv[2], &x, &nd, sh);
    tu_check_fail(argv[2], s, s == CLIPCL_OK ? CLIPCL_ERR_FORMAT : s, argv[2], NULL);
    free(x);
    return th_finish(NULL);
  }
  if (argc != 1) {
    fprintf(stderr, "usage: test_npy [write DIR | check FILE R C | same NPY RAW | refuse FILE]\n");
    return 2;
  }
  char dir[512];
  tu_tmpdir(dir, sizeof dir);
  th_seed(777);
  check_formula("numpy 1.24 np.save 3x5 (format 1.0)", "data/npy_v1_2d.npy", 2, 3, 5);
  check_formula("numpy write_array format 2.0, 1-D", "data/npy_v2_1d.npy", 1, 7, 0);
  check_formula("old 16-byte padded header", "data/npy_v1_align16.npy", 2, 2, 3);
  test_write(dir);
  test_bad(dir);
  tu_rmdir(dir);
  return th_finish(NULL);
}
