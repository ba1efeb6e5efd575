/* test_image.c: image decoding and CLIP preprocessing against PIL /
 * torchvision / open_clip fixtures (tests/data/images/, written by
 * tests/tools/make_image_fixtures.py), plus bad files, RandomResizedCrop
 * properties, the threaded batch and the PNG writer. No device needed.
 *
 * Tolerances: PNG decode exact; JPEG decode within 2 (expected exact: PIL uses
 * the same libjpeg-turbo; a different libjpeg version may move a few
 * values); resize/crop of the expected RGB exact (uint8) and its normalised
 * floats bit-exact against torch's ToTensor+Normalize table; end-to-end from
 * our own decode within 2/255 before normalisation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "image/image.h"

#define DIR "data/images/"
#define JPEG_TOL 2
#define MAX_FILES 128

static uint8_t *payload;
static size_t payload_len;
static float norm_table[3][256];
static int have_norm;

typedef struct {
  char name[96];
  clipcl_image want; /* expected RGB from the fixture (or empty for hash-only) */
  clipcl_image got;  /* our decode */
} entry;
static entry files[MAX_FILES];
static int nfiles;

static entry *find(const char *name) {
  for (int i = 0; i < nfiles; i++)
    if (strcmp(files[i].name, name) == 0) return &files[i];
  return NULL;
}

static void load_payload(void) {
  gzFile gz = gzopen(DIR "expected.bin.gz", "rb");
  if (!gz) {
    fprintf(stderr, "cannot open " DIR "expected.bin.gz (run from tests/)\n");
    exit(1);
  }
  uint8_t head[16];
  if (gzread(gz, head, 16) != 16 || memcmp(head, "CCIMGFX1", 8) != 0) {
    fprintf(stderr, "expected.bin.gz: bad header\n");
    exit(1);
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= (uint64_t)head[8 + i] << (8 * i);
  if (n > ((uint64_t)64 << 20)) {
    fprintf(stderr, "expected.bin.gz: payload of %llu bytes is implausible\n", (unsigned long long)n);
    exit(1);
  }
  payload_len = (size_t)n;
  payload = malloc(payload_len ? payload_len : 1);
  if (!payload || gzread(gz, payload, (unsigned)payload_len) != (int)payload_len) {
    fprintf(stderr, "expected.bin.gz: short payload\n");
    exit(1);
  }
  gzclose(gz);
}

static const uint8_t *at(size_t off, size_t n) {
  if (off > payload_len || n > payload_len - off) {
    fprintf(stderr, "manifest offset %zu+%zu is outside the payload\n", off, n);
    exit(1);
  }
  return payload + off;
}

/* Passes when |got-want| <= tol everywhere; prints the worst byte. */
static int cmp_u8(const char *name, const uint8_t *got, const uint8_t *want, size_t n, int tol) {
  int worst = 0;
  size_t where = 0, bad = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)got[i] - (int)want[i]);
    if (d > tol) bad++;
    if (d > worst) worst = d, where = i;
  }
  if (worst == 0) return th_assert(name, 1, "exact");
  return th_assert(name, worst <= tol, "max|diff| %d at byte %zu (got %d, want %d), %zu bytes over %d", worst,
                   where, got[where], want[where], bad, tol);
}

static int is_jpeg(const char *name) { return strstr(name, ".jpg") != NULL; }

static uint8_t *read_file(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  *len = fread(b, 1, (size_t)(n > 0 ? n : 0), f);
  fclose(f);
  return b;
}

static void expect_norm(const uint8_t *hwc, int s, float *chw) {
  size_t n = (size_t)s * s;
  for (int c = 0; c < 3; c++)
    for (size_t i = 0; i < n; i++) chw[c * n + i] = norm_table[c][hwc[3 * i + c]];
}

static void check_decode(const char *file, int w, int h, const uint8_t *want, const char *hash) {
  char path[256], name[160];
  snprintf(path, sizeof path, DIR "%s", file);
  if (nfiles == MAX_FILES) exit(1);
  entry *e = &files[nfiles++];
  snprintf(e->name, sizeof e->name, "%s", file);
  clipcl_status st = clipcl_image_load(path, &e->got);
  snprintf(name, sizeof name, "decode %s", file);
  if (!th_assert(name, st == CLIPCL_OK && e->got.w == w && e->got.h == h, "status %d %s, %dx%d (want %dx%d)", st,
                 clipcl_last_error(), e->got.w, e->got.h, w, h))
    return;
  size_t n = (size_t)w * h * 3;
  if (want) {
    e->want.w = w;
    e->want.h = h;
    e->want.rgb = malloc(n);
    memcpy(e->want.rgb, want, n);
    cmp_u8(name, e->got.rgb, want, n, is_jpeg(file) ? JPEG_TOL : 0);
  } else {
    uint64_t fnv = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) fnv = (fnv ^ e->got.rgb[i]) * 0x100000001B3ull;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv);
    th_assert(name, strcmp(hex, hash) == 0, "FNV-1a %s (want %s)", hex, hash);
  }
  /* the same bytes from memory (as a tar member would arrive) */
  size_t len;
  uint8_t *blob = read_file(path, &len);
  clipcl_image m = {0, 0, NULL};
  st = clipcl_image_decode(blob, len, file, &m);
  snprintf(name, sizeof name, "decode from memory %s", file);
  int same = st == CLIPCL_OK && m.w == w && m.h == h && memcmp(m.rgb, e->got.rgb, n) == 0;
  th_assert(name, same, "status %d, %s", st, same ? "same pixels as from the file" : "differs from the file decode");
  clipcl_image_free(&m);
  free(blob);
}

static void check_pre(const char *file, int s, const uint8_t *want) {
  entry *e = find(file);
  char name[200];
  size_t n = (size_t)s * s * 3;
  uint8_t *got = malloc(n);
  float *chw = malloc(n * sizeof *chw), *wchw = malloc(n * sizeof *wchw);
  expect_norm(want, s, wchw);
  if (e && e->want.rgb) {
    snprintf(name, sizeof name, "resize+crop %s S=%d (PIL's RGB)", file, s);
    TH_OK(cc_image_center_u8(&e->want, s, got));
    cmp_u8(name, got, want, n, 0);
    snprintf(name, sizeof name, "preprocess %s S=%d (PIL's RGB)", file, s);
    TH_OK(clipcl_image_preprocess(&e->want, s, chw));
    th_close_f(name, chw, wchw, n, 0, 0);
  }
  if (e && e->got.rgb) {
    snprintf(name, sizeof name, "resize+crop %s S=%d (our decode)", file, s);
    TH_OK(cc_image_center_u8(&e->got, s, got));
    cmp_u8(name, got, want, n, 2);
    snprintf(name, sizeof name, "preprocess %s S=%d (our decode)", file, s);
    TH_OK(clipcl_image_preprocess(&e->got, s, chw));
    th_close_f(name, chw, wchw, n, 2.0 / 255 / 0.26130258 + 1e-6, 0);
  }
  free(got);
  free(chw);
  free(wchw);
}

static void check_box(const char *file, cc_box b, int s, const uint8_t *want) {
  entry *e = find(file);
  char name[200];
  size_t n = (size_t)s * s * 3;
  if (!e || !e->want.rgb) {
    th_assert("box fixture", 0, "%s has no expected decode", file);
    return;
  }
  uint8_t *got = malloc(n);
  float *chw = malloc(n * sizeof *chw), *wchw = malloc(n * sizeof *wchw);
  snprintf(name, sizeof name, "crop+resize %s (%d,%d %dx%d) S=%d", file, b.x, b.y, b.w, b.h, s);
  TH_OK(cc_image_box_u8(&e->want, b, s, got));
  cmp_u8(name, got, want, n, 0);
  snprintf(name, sizeof name, "preprocess_box %s (%d,%d %dx%d) S=%d", file, b.x, b.y, b.w, b.h, s);
  TH_OK(clipcl_image_preprocess_box(&e->want, b.x, b.y, b.w, b.h, s, chw));
  expect_norm(want, s, wchw);
  th_close_f(name, chw, wchw, n, 0, 0);
  free(got);
  free(chw);
  free(wchw);
}

static void check_fallback(const char *file, int s, cc_box wb, const uint8_t *want) {
  entry *e = find(file);
  char name[200];
  if (!e || !e->want.rgb) {
    th_assert("fallback fixture", 0, "%s has no expected decode", file);
    return;
  }
  size_t n = (size_t)s * s * 3;
  float *chw = malloc(n * sizeof *chw), *wchw = malloc(n * sizeof *wchw);
  expect_norm(want, s, wchw);
  for (uint64_t seed = 0; seed < 5; seed++) {
    uint64_t rng = seed * 0x1234567ull;
    cc_box b = cc_rrc_box(e->want.w, e->want.h, CC_RRC_SCALE_MIN, CC_RRC_SCALE_MAX, CC_RRC_RATIO_MIN,
                          CC_RRC_RATIO_MAX, &rng);
    snprintf(name, sizeof name, "RRC fallback box %s seed %llu", file, (unsigned long long)seed);
    th_assert(name, b.x == wb.x && b.y == wb.y && b.w == wb.w && b.h == wb.h,
              "got (%d,%d %dx%d), torchvision (%d,%d %dx%d)", b.x, b.y, b.w, b.h, wb.x, wb.y, wb.w, wb.h);
    rng = seed * 0x1234567ull;
    snprintf(name, sizeof name, "RRC fallback pixels %s seed %llu", file, (unsigned long long)seed);
    TH_OK(clipcl_image_random_resized_crop(&e->want, s, &rng, chw));
    th_close_f(name, chw, wchw, n, 0, 0);
  }
  free(chw);
  free(wchw);
}

static void check_bad(const char *file, const char *status) {
  char path[256], name[160];
  snprintf(path, sizeof path, DIR "%s", file);
  clipcl_status want = strcmp(status, "UNSUPPORTED") == 0 ? CLIPCL_ERR_UNSUPPORTED : CLIPCL_ERR_FORMAT;
  clipcl_image img = {7, 7, (uint8_t *)path}; /* garbage the call must clear */
  clipcl_status st = clipcl_image_load(path, &img);
  const char *msg = clipcl_last_error();
  snprintf(name, sizeof name, "refuse %s", file);
  th_assert(name, st == want && img.rgb == NULL && img.w == 0 && strstr(msg, file) && !strchr(msg, '\n'),
            "status %d (want %d): %s", st, want, msg);
  size_t len;
  uint8_t *blob = read_file(path, &len);
  st = clipcl_image_decode(blob, len, "member/x.img", &img);
  snprintf(name, sizeof name, "refuse from memory %s", file);
  th_assert(name, st == want && img.rgb == NULL && strstr(clipcl_last_error(), "member/x.img"),
            "status %d: %s", st, clipcl_last_error());
  free(blob);
}

static void check_center_rule(void) {
  /* Python: round(0.5) == 0, round(1.5) == 2, round(2.5) == 2 */
  th_assert("center offset 225->224", cc_center_offset(225, 224) == 0, "%d", cc_center_offset(225, 224));
  th_assert("center offset 227->224", cc_center_offset(227, 224) == 2, "%d", cc_center_offset(227, 224));
  th_assert("center offset 229->224", cc_center_offset(229, 224) == 2, "%d", cc_center_offset(229, 224));
  th_assert("center offset 226->224", cc_center_offset(226, 224) == 1, "%d", cc_center_offset(226, 224));
  int ow, oh;
  /* int(224 * 129 / 7) = int(4128.0) and int(64 * 333 / 222) = int(96.0) */
  TH_OK(cc_resize_shorter(7, 129, 224, &ow, &oh));
  th_assert("resize rule 7x129 -> 224", ow == 224 && oh == 4128, "%dx%d", ow, oh);
  TH_OK(cc_resize_shorter(333, 222, 64, &ow, &oh));
  th_assert("resize rule 333x222 -> 64", ow == 96 && oh == 64, "%dx%d", ow, oh);
  TH_OK(cc_resize_shorter(640, 481, 224, &ow, &oh)); /* 224*640/481 = 298.04 */
  th_assert("resize rule 640x481 -> 224", ow == 298 && oh == 224, "%dx%d", ow, oh);
}

/* Note: with scale (0.9, 1) a box of ratio <= 4/3 covering 90% of the area
 * only fits images of ratio within about (0.83, 1.2); torchvision then always
 * takes the centre fallback, and so do we (see the fallback fixtures). */
static void check_rrc_properties(void) {
  const struct {
    int w, h;
    double smin;
    int spread; /* expect the draws to cover the ranges */
  } cases[] = {{500, 500, 0.9, 1},  {640, 480, 0.08, 1}, {640, 480, 0.9, 0}, {333, 222, 0.9, 0},
               {50, 77, 0.9, 0},    {1, 1, 0.9, 0},      {225, 224, 0.9, 0}, {20, 100, 0.9, 0},
               {31, 1000, 0.08, 0}, {1000, 2, 0.5, 0}};
  const double rlo = 0.75, rhi = 4.0 / 3.0;
  for (size_t d = 0; d < sizeof cases / sizeof *cases; d++) {
    int w = cases[d].w, h = cases[d].h;
    double smin = cases[d].smin, area = (double)w * h, fmin = 9, fmax = 0, rmin = 9, rmax = 0;
    int inside = 1, bounds = 1, xs = 0, ys = 0, fallbacks = 0;
    for (uint64_t seed = 1; seed <= 2000; seed++) {
      uint64_t r = seed;
      cc_box b = cc_rrc_box(w, h, smin, 1.0, rlo, rhi, &r);
      uint64_t r2 = seed;
      cc_box b2 = cc_rrc_box(w, h, smin, 1.0, rlo, rhi, &r2);
      if (memcmp(&b, &b2, sizeof b) != 0 || r != r2) inside = 0;
      if (b.x < 0 || b.y < 0 || b.w < 1 || b.h < 1 || b.x + b.w > w || b.y + b.h > h) inside = 0;
      xs |= b.x > 0;
      ys |= b.y > 0;
      /* a drawn box has w = round(sqrt(A r)), h = round(sqrt(A / r)) with
       * A in [smin, 1] * area and r in [3/4, 4/3]: allow the rounding */
      int ok = (b.w + 0.5) * (b.h + 0.5) >= smin * area - 1e-9 && (b.w - 0.5) * (b.h - 0.5) <= area + 1e-9 &&
               (b.w + 0.5) / (b.h - 0.5) >= rlo - 1e-12 && (b.w - 0.5) / (b.h + 0.5) <= rhi + 1e-12;
      if (!ok) {
        fallbacks++; /* only the centre fallback may leave these bounds */
        if (b.x != (w - b.w) / 2 || b.y != (h - b.h) / 2) bounds = 0;
      }
      double f = b.w * (double)b.h / area, q = (double)b.w / b.h;
      fmin = fmin < f ? fmin : f;
      fmax = fmax > f ? fmax : f;
      rmin = rmin < q ? rmin : q;
      rmax = rmax > q ? rmax : q;
    }
    char name[128];
    snprintf(name, sizeof name, "RRC %dx%d scale (%.2f,1): inside, repeatable", w, h, smin);
    th_assert(name, inside, inside ? "" : "a box left the image or a seed did not repeat");
    snprintf(name, sizeof name, "RRC %dx%d scale (%.2f,1): bounds", w, h, smin);
    th_assert(name, bounds, bounds ? "" : "box outside the scale/ratio bounds and not the centre fallback");
    printf("     %dx%d scale (%.2f,1): area fraction %.4f..%.4f, ratio %.4f..%.4f, %d of 2000 out of bounds\n", w,
           h, smin, fmin, fmax, rmin, rmax, fallbacks);
    if (cases[d].spread) {
      snprintf(name, sizeof name, "RRC %dx%d scale (%.2f,1): spread", w, h, smin);
      int ok = fallbacks == 0 && xs && ys && fmin < smin + 0.01 && fmax > (smin < 0.5 ? 0.95 : 0.99) &&
               (smin < 0.5 ? rmin < 0.76 && rmax > 1.32 : rmin < 0.92 && rmax > 1.08);
      th_assert(name, ok, ok ? "" : "draws do not cover the ranges");
    }
  }
  /* 20x100: ratio 0.2 < 3/4, every try fails: torchvision falls back to
   * w = 20, h = round(20 / 0.75) = 27, centred */
  uint64_t r = 99;
  cc_box b = cc_rrc_box(20, 100, 0.9, 1.0, 0.75, 4.0 / 3.0, &r);
  th_assert("RRC fallback 20x100", b.x == 0 && b.y == 36 && b.w == 20 && b.h == 27, "(%d,%d %dx%d)", b.x, b.y,
            b.w, b.h);
}

static void check_rrc_public(void) {
  entry *e = find("png_rgb8_225x224.png"); /* near square: not the fallback */
  if (!e || !e->want.rgb) return;
  const int s = 48;
  size_t n = 3 * (size_t)s * s;
  float *a = th_alloc(n), *b = th_alloc(n), *c = th_alloc(n);
  uint64_t r1 = 42, r2 = 42, r3 = 43, r4 = 42;
  TH_OK(clipcl_image_random_resized_crop(&e->want, s, &r1, a));
  TH_OK(clipcl_image_random_resized_crop(&e->want, s, &r2, b));
  th_same_bits("RRC same seed same output", a, b, n);
  th_assert("RRC advances the state", r1 == r2 && r1 != 42, "state %llu", (unsigned long long)r1);
  TH_OK(clipcl_image_random_resized_crop(&e->want, s, &r3, c));
  int differ = memcmp(a, c, n * sizeof *a) != 0;
  th_assert("RRC other seed other output", differ, differ ? "" : "identical outputs");
  cc_box bx = cc_rrc_box(e->want.w, e->want.h, CC_RRC_SCALE_MIN, CC_RRC_SCALE_MAX, CC_RRC_RATIO_MIN,
                         CC_RRC_RATIO_MAX, &r4);
  TH_OK(clipcl_image_preprocess_box(&e->want, bx.x, bx.y, bx.w, bx.h, s, c));
  th_same_bits("RRC = preprocess_box of its box", a, c, n);
}

static void check_batch(void) {
  clipcl_image_source src[MAX_FILES + 40];
  char paths[MAX_FILES + 40][128];
  uint8_t *blobs[4] = {0};
  int n = 0, nbad_want = 0;
  for (int i = 0; i < nfiles; i++) {
    snprintf(paths[n], sizeof paths[n], DIR "%.95s", files[i].name);
    src[n] = (clipcl_image_source){paths[n], NULL, 0, NULL};
    n++;
    if (i % 9 == 4) { /* interleave bad files */
      src[n++] = (clipcl_image_source){i % 2 ? DIR "bad_trunc.jpg" : DIR "bad_crc_idat.png", NULL, 0, NULL};
      nbad_want++;
    }
  }
  size_t len;
  blobs[0] = read_file(DIR "jpg_444_50x77.jpg", &len);
  src[n++] = (clipcl_image_source){NULL, blobs[0], len, "tar:member1.jpg"};
  blobs[1] = read_file(DIR "bad_text.txt", &len);
  src[n++] = (clipcl_image_source){NULL, blobs[1], len, "tar:member2.txt"};
  nbad_want++;
  const int s = 32;
  size_t per = 3 * (size_t)s * s;
  float *o1 = th_alloc(per * n), *o3 = th_alloc(per * n), *one = th_alloc(per);
  clipcl_status st1[MAX_FILES + 40], st3[MAX_FILES + 40];
  int bad1 = -1, bad3 = -1;
  TH_OK(clipcl_image_batch(src, n, s, NULL, 1, o1, st1, &bad1));
  TH_OK(clipcl_image_batch(src, n, s, NULL, 3, o3, st3, &bad3));
  th_assert("batch: bad items counted", bad1 == nbad_want && bad3 == nbad_want, "%d and %d, want %d", bad1, bad3,
            nbad_want);
  th_assert("batch: first bad message", strstr(clipcl_last_error(), "bad_") != NULL, "%s", clipcl_last_error());
  th_same_bits("batch eval: 3 threads = 1 thread", o1, o3, per * n);
  int serial_ok = 1, zero_ok = 1, status_ok = 1;
  for (int i = 0; i < n; i++) {
    status_ok &= st1[i] == st3[i];
    if (st1[i] != CLIPCL_OK) {
      for (size_t k = 0; k < per; k++) zero_ok &= o1[i * per + k] == 0.0f;
      continue;
    }
    clipcl_image img;
    TH_OK(src[i].path ? clipcl_image_load(src[i].path, &img) : clipcl_image_decode(src[i].data, src[i].len, NULL, &img));
    TH_OK(clipcl_image_preprocess(&img, s, one));
    serial_ok &= memcmp(one, o1 + i * per, per * sizeof *one) == 0;
    clipcl_image_free(&img);
  }
  th_assert("batch eval = serial preprocess", serial_ok, serial_ok ? "" : "an item differs");
  th_assert("batch: bad slots zeroed, statuses agree", zero_ok && status_ok, "zero %d status %d", zero_ok,
            status_ok);

  uint64_t *seeds = malloc(n * sizeof *seeds);
  for (int i = 0; i < n; i++) seeds[i] = 1000 + 7 * (uint64_t)i;
  TH_OK(clipcl_image_batch(src, n, s, seeds, 1, o1, NULL, NULL));
  TH_OK(clipcl_image_batch(src, n, s, seeds, 4, o3, st3, &bad3));
  th_same_bits("batch train: 4 threads = 1 thread", o1, o3, per * n);
  serial_ok = 1;
  for (int i = 0; i < n; i++) {
    if (st3[i] != CLIPCL_OK) continue;
    clipcl_image img;
    TH_OK(src[i].path ? clipcl_image_load(src[i].path, &img) : clipcl_image_decode(src[i].data, src[i].len, NULL, &img));
    uint64_t r = seeds[i];
    TH_OK(clipcl_image_random_resized_crop(&img, s, &r, one));
    serial_ok &= memcmp(one, o1 + i * per, per * sizeof *one) == 0;
    clipcl_image_free(&img);
  }
  th_assert("batch train = serial random_resized_crop", serial_ok, serial_ok ? "" : "an item differs");
  src[0] = (clipcl_image_source){NULL, NULL, 0, NULL};
  clipcl_status st = clipcl_image_batch(src, n, s, NULL, 2, o1, NULL, NULL);
  th_assert("batch: item without source refused", st == CLIPCL_ERR_ARG, "status %d: %s", st, clipcl_last_error());
  free(seeds);
  free(blobs[0]);
  free(blobs[1]);
}

static void check_png_writer(void) {
  entry *e = find("png_rgb8_50x77.png");
  if (!e || !e->want.rgb) return;
  char dir[] = "/tmp/clipcl_img_XXXXXX";
  if (!mkdtemp(dir)) {
    th_assert("png writer temp dir", 0, "mkdtemp failed");
    return;
  }
  char path[128];
  snprintf(path, sizeof path, "%s/out.png", dir);
  TH_OK(clipcl_image_save_png(path, &e->want));
  clipcl_image back;
  TH_OK(clipcl_image_load(path, &back));
  int same = back.w == e->want.w && back.h == e->want.h &&
             memcmp(back.rgb, e->want.rgb, (size_t)back.w * back.h * 3) == 0;
  th_assert("png writer round trip", same, same ? "same pixels" : "differs");
  clipcl_image_free(&back);
  /* overwrite in place, and leave no temporary file behind */
  TH_OK(clipcl_image_save_png(path, &e->got));
  char cmd[200];
  snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", dir);
  int one = system(cmd) == 0;
  th_assert("png writer leaves one file", one, one ? "" : "stray files in the folder");
  snprintf(path, sizeof path, "%s/missing/out.png", dir);
  clipcl_status st = clipcl_image_save_png(path, &e->want);
  th_assert("png writer: missing folder", st == CLIPCL_ERR_IO && strstr(clipcl_last_error(), "missing/out.png"),
            "status %d: %s", st, clipcl_last_error());
  snprintf(path, sizeof path, "%s/out.png", dir);
  remove(path);
  rmdir(dir);
}

static void check_args(void) {
  entry *e = find("png_rgb8_50x77.png");
  if (!e || !e->want.rgb) return;
  float *chw = th_alloc(3 * 64 * 64);
  clipcl_status st = clipcl_image_preprocess(&e->want, 0, chw);
  th_assert("size 0 refused", st == CLIPCL_ERR_ARG, "status %d: %s", st, clipcl_last_error());
  st = clipcl_image_preprocess_box(&e->want, 10, 10, 41, 5, 8, chw);
  th_assert("box outside refused", st == CLIPCL_ERR_ARG, "status %d: %s", st, clipcl_last_error());
  st = clipcl_image_preprocess_box(&e->want, 0, 0, 0, 5, 8, chw);
  th_assert("empty box refused", st == CLIPCL_ERR_ARG, "status %d: %s", st, clipcl_last_error());
  clipcl_image img;
  st = clipcl_image_load(DIR "no_such_file.png", &img);
  th_assert("missing file is an I/O error", st == CLIPCL_ERR_IO, "status %d: %s", st, clipcl_last_error());
  clipcl_image_free(&img);
  clipcl_image_free(NULL);
}

int main(void) {
  load_payload();
  FILE *m = fopen(DIR "manifest.txt", "r");
  if (!m) {
    fprintf(stderr, "cannot open " DIR "manifest.txt (run from tests/)\n");
    return 1;
  }
  char line[512];
  int lines = 0;
  /* the norm table first: other checks use it */
  while (fgets(line, sizeof line, m)) {
    size_t off;
    if (sscanf(line, "norm %zu", &off) == 1) {
      memcpy(norm_table, at(off, sizeof norm_table), sizeof norm_table);
      have_norm = 1;
    }
  }
  if (!have_norm) {
    fprintf(stderr, "manifest has no norm line\n");
    return 1;
  }
  {
    uint8_t v[3 * 256];
    float got[3 * 256], want[3 * 256];
    for (int i = 0; i < 256; i++) v[3 * i] = v[3 * i + 1] = v[3 * i + 2] = (uint8_t)i;
    cc_image_normalize(v, 16, got); /* 16x16 = 256 pixels */
    for (int c = 0; c < 3; c++) memcpy(want + 256 * c, norm_table[c], sizeof norm_table[c]);
    th_same_bits("normalise = torch ToTensor+Normalize", got, want, 3 * 256);
  }
  rewind(m);
  while (fgets(line, sizeof line, m)) {
    char kind[16], file[128], status[32], hash[32];
    int w, h, s, x, y;
    size_t off;
    if (line[0] == '#' || sscanf(line, "%15s", kind) != 1) continue;
    lines++;
    if (strcmp(kind, "decode") == 0 && sscanf(line, "decode %127s %d %d %zu", file, &w, &h, &off) == 4 && w > 0 &&
        h > 0 && w <= 4096 && h <= 4096) {
      check_decode(file, w, h, at(off, (size_t)w * h * 3), NULL);
    } else if (strcmp(kind, "decodehash") == 0 && sscanf(line, "decodehash %127s %d %d %31s", file, &w, &h, hash) == 4) {
      check_decode(file, w, h, NULL, hash);
    } else if (strcmp(kind, "pre") == 0 && sscanf(line, "pre %127s %d %zu", file, &s, &off) == 3 && s > 0 && s <= 1024) {
      check_pre(file, s, at(off, (size_t)s * s * 3));
    } else if (strcmp(kind, "box") == 0 &&
               sscanf(line, "box %127s %d %d %d %d %d %zu", file, &x, &y, &w, &h, &s, &off) == 7 && s > 0 && s <= 1024) {
      check_box(file, (cc_box){x, y, w, h}, s, at(off, (size_t)s * s * 3));
    } else if (strcmp(kind, "fallback") == 0 &&
               sscanf(line, "fallback %127s %d %d %d %d %d %zu", file, &s, &x, &y, &w, &h, &off) == 7 && s > 0 &&
               s <= 1024) {
      check_fallback(file, s, (cc_box){x, y, w, h}, at(off, (size_t)s * s * 3));
    } else if (strcmp(kind, "bad") == 0 && sscanf(line, "bad %127s %31s", file, status) == 2) {
      check_bad(file, status);
    } else if (strcmp(kind, "norm") != 0) {
      th_assert("manifest line", 0, "cannot parse: %s", line);
    }
  }
  fclose(m);
  th_assert("manifest has checks", lines > 100, "%d lines", lines);
  check_center_rule();
  check_rrc_properties();
  check_rrc_public();
  check_batch();
  check_png_writer();
  check_args();
  for (int i = 0; i < nfiles; i++) {
    clipcl_image_free(&files[i].want);
    clipcl_image_free(&files[i].got);
  }
  free(payload);
  return th_finish(NULL);
}
