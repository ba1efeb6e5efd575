/* resample.c: bicubic resizing that reproduces Pillow's Image.resize(...,
 * BICUBIC) on 8-bit RGB exactly. Not here: which size or box to resize to
 * (preprocess.c).
 *
 * The algorithm, as Pillow (Resample.c) defines it and torchvision uses it:
 * separable, horizontal pass first, then vertical, each rounding to uint8.
 * For output index i the source centre is (i + 0.5) * in/out; when
 * shrinking, the cubic kernel (a = -0.5, support 2) is stretched by in/out
 * so that it averages over every covered source pixel (antialiasing). The
 * taps run over [round(centre - support), round(centre + support)) clipped
 * to the image, their weights are normalised to sum to 1, then turned into
 * fixed point with 22 fraction bits, each rounded half away from zero. Each
 * output is (sum(w_k * p_k) + 2^21) >> 22 clipped to [0, 255]. Every step
 * below is done in the same order and precision (double for the weights,
 * integers for the sums), since one ulp in a weight can move a rounding.
 *
 * Only the requested window of the result is computed: each output pixel
 * depends only on its own taps, so this equals resize-then-crop.
 */
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "util/error.h"

#define CC_FRAC_BITS 22
/* Above this many taps in one pass the resize is refused (2 GiB of weights
 * would mean a shrink by ~10^8, which no caller asks for). */
#define CC_MAX_TAPS ((size_t)1 << 27)

typedef struct {
  int *first;     /* first source index of each output */
  int *count;     /* number of taps of each output */
  size_t *at;     /* offset of each output's weights in w */
  int32_t *w;     /* fixed-point weights, sum(count) of them */
} cc_taps;

static void taps_free(cc_taps *t) {
  free(t->first);
  free(t->count);
  free(t->at);
  free(t->w);
  memset(t, 0, sizeof *t);
}

static double cubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/* Taps for outputs [o0, o0+n) of a resize from in_size to out_size. */
static clipcl_status taps_make(int in_size, int out_size, int o0, int n, cc_taps *t) {
  memset(t, 0, sizeof *t);
  /* Pillow passes the box edges as float: keep that rounding for huge sizes */
  float in1 = (float)in_size, in0 = 0.0f;
  double scale = (double)(in1 - in0) / out_size;
  double fscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * fscale;
  double inv = 1.0 / fscale;
  t->first = malloc((size_t)n * sizeof *t->first);
  t->count = malloc((size_t)n * sizeof *t->count);
  t->at = malloc((size_t)n * sizeof *t->at);
  if (!t->first || !t->count || !t->at) goto nomem;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    double centre = in0 + (o0 + i + 0.5) * scale;
    int lo = (int)(centre - support + 0.5);
    int hi = (int)(centre + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in_size) hi = in_size;
    if (hi <= lo) { /* cannot happen for in_size >= 1; keep the pixel defined */
      lo = (int)centre < in_size ? (int)centre : in_size - 1;
      hi = lo + 1;
    }
    t->first[i] = lo;
    t->count[i] = hi - lo;
    t->at[i] = total;
    total += (size_t)(hi - lo);
    if (total > CC_MAX_TAPS) {
      taps_free(t);
      return cc_fail(CLIPCL_ERR_UNSUPPORTED, "resize from %d to %d needs too many filter taps", in_size, out_size);
    }
  }
  t->w = malloc((total ? total : 1) * sizeof *t->w);
  if (!t->w) goto nomem;
  double *k = NULL;
  int kcap = 0;
  for (int i = 0; i < n; i++) {
    int m = t->count[i];
    if (m > kcap) {
      free(k);
      k = malloc((size_t)m * sizeof *k);
      kcap = m;
      if (!k) goto nomem;
    }
    double centre = in0 + (o0 + i + 0.5) * scale, sum = 0.0;
    for (int j = 0; j < m; j++) {
      k[j] = cubic((j + t->first[i] - centre + 0.5) * inv);
      sum += k[j];
    }
    int32_t *w = t->w + t->at[i];
    for (int j = 0; j < m; j++) {
      double v = sum != 0.0 ? k[j] / sum : k[j];
      w[j] = v < 0 ? (int32_t)(-0.5 + v * (1 << CC_FRAC_BITS)) : (int32_t)(0.5 + v * (1 << CC_FRAC_BITS));
    }
  }
  free(k);
  return CLIPCL_OK;
nomem:
  taps_free(t);
  return cc_fail(CLIPCL_ERR_NOMEM, "resize from %d to %d: out of memory for filter weights", in_size, out_size);
}

/* Sums fit in 32 bits, as in Pillow: the positive weights of a normalised
 * a = -0.5 cubic add up to at most about 1.1, so |sum| < 255 * 1.2 * 2^22
 * + 2^21 < 2^31. */
static inline uint8_t fixed_to_u8(int32_t acc) {
  if (acc < 0) return 0;
  acc >>= CC_FRAC_BITS;
  return (uint8_t)(acc > 255 ? 255 : acc);
}

clipcl_status cc_resample_bicubic(const uint8_t *src, size_t stride, int bw, int bh, int ow, int oh, int wx,
                                  int wy, int ww, int wh, uint8_t *dst) {
  if (!src || !dst || bw <= 0 || bh <= 0 || ow <= 0 || oh <= 0 || ww <= 0 || wh <= 0 || wx < 0 || wy < 0 ||
      wx > ow - ww || wy > oh - wh || stride < (size_t)bw * 3)
    return cc_fail(CLIPCL_ERR_ARG, "resample: bad sizes (%dx%d to %dx%d, window %d,%d %dx%d)", bw, bh, ow, oh,
                   wx, wy, ww, wh);
  /* Pillow skips a pass whose size does not change; its weights would be
   * the identity anyway. */
  int need_h = ow != bw, need_v = oh != bh;
  cc_taps th = {0}, tv = {0};
  clipcl_status st = CLIPCL_OK;
  if (need_h && (st = taps_make(bw, ow, wx, ww, &th)) != CLIPCL_OK) return st;
  if (need_v && (st = taps_make(bh, oh, wy, wh, &tv)) != CLIPCL_OK) {
    taps_free(&th);
    return st;
  }
  /* source rows the vertical pass reads (the taps' starts never decrease) */
  int r0 = need_v ? tv.first[0] : wy;
  int r1 = need_v ? tv.first[wh - 1] + tv.count[wh - 1] : wy + wh;

  const uint8_t *mid;
  size_t mid_stride;
  uint8_t *tmp = NULL;
  int32_t *acc = NULL;
  if (need_h) {
    mid_stride = (size_t)ww * 3;
    tmp = malloc((size_t)(r1 - r0) * mid_stride);
    if (!tmp) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "resample: out of memory for %d rows", r1 - r0);
      goto done;
    }
    for (int y = r0; y < r1; y++) {
      const uint8_t *row = src + (size_t)y * stride;
      uint8_t *out = tmp + (size_t)(y - r0) * mid_stride;
      for (int x = 0; x < ww; x++) {
        const int32_t *w = th.w + th.at[x];
        const uint8_t *p = row + (size_t)th.first[x] * 3;
        int32_t a0 = 1 << (CC_FRAC_BITS - 1), a1 = a0, a2 = a0;
        for (int j = 0; j < th.count[x]; j++, p += 3) {
          a0 += p[0] * w[j];
          a1 += p[1] * w[j];
          a2 += p[2] * w[j];
        }
        out[3 * x + 0] = fixed_to_u8(a0);
        out[3 * x + 1] = fixed_to_u8(a1);
        out[3 * x + 2] = fixed_to_u8(a2);
      }
    }
    mid = tmp;
  } else {
    mid = src + (size_t)r0 * stride + (size_t)wx * 3;
    mid_stride = stride;
  }
  size_t dst_stride = (size_t)ww * 3;
  if (need_v) {
    /* row by row: the integer sums do not depend on the order of the taps */
    acc = malloc(dst_stride * sizeof *acc);
    if (!acc) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "resample: out of memory");
      goto done;
    }
    for (int y = 0; y < wh; y++) {
      const int32_t *w = tv.w + tv.at[y];
      const uint8_t *row = mid + (size_t)(tv.first[y] - r0) * mid_stride;
      for (size_t x = 0; x < dst_stride; x++) acc[x] = 1 << (CC_FRAC_BITS - 1);
      for (int j = 0; j < tv.count[y]; j++, row += mid_stride) {
        int32_t wj = w[j];
        for (size_t x = 0; x < dst_stride; x++) acc[x] += row[x] * wj;
      }
      uint8_t *out = dst + (size_t)y * dst_stride;
      for (size_t x = 0; x < dst_stride; x++) out[x] = fixed_to_u8(acc[x]);
    }
  } else {
    for (int y = 0; y < wh; y++) memcpy(dst + (size_t)y * dst_stride, mid + (size_t)y * mid_stride, dst_stride);
  }
done:
  free(acc);
  free(tmp);
  taps_free(&th);
  taps_free(&tv);
  return st;
}
