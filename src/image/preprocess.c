/* preprocess.c: CLIP preprocessing as open_clip builds it from torchvision:
 * eval = Resize(shorter side, BICUBIC) + CenterCrop + ToTensor + Normalize;
 * train = RandomResizedCrop(scale (0.9, 1), ratio (3/4, 4/3), BICUBIC) with
 * our own seeded generator in place of torch's. Also the generator itself.
 * Not here: the resampler (resample.c), decoding, threads (batch.c).
 */
#include <math.h>
#include <stdlib.h>

#include "image/image.h"
#include "util/error.h"

/* OpenAI CLIP normalisation (open_clip OPENAI_DATASET_MEAN / _STD) */
static const float cc_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float cc_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

uint64_t cc_rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double cc_rng_uniform(uint64_t *state) { return (double)(cc_rng_next(state) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t cc_rng_below(uint64_t *state, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = (0 - n) % n; /* values below this would favour small results */
  for (;;) {
    uint64_t r = cc_rng_next(state);
    if (r >= limit) return r % n;
  }
}

clipcl_status cc_resize_shorter(int w, int h, int size, int *ow, int *oh) {
  int shorter = w <= h ? w : h, longer = w <= h ? h : w;
  /* Python: int(size * long / short); size*long is exact in a double, the
   * division rounds once, as Python's true division does */
  double nl = floor((double)((int64_t)size * longer) / shorter);
  if (nl > 1073741823.0)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "image of %d x %d is too elongated to resize to %d", w, h, size);
  int nlong = (int)nl;
  *ow = w <= h ? size : nlong;
  *oh = w <= h ? nlong : size;
  return CLIPCL_OK;
}

int cc_center_offset(int len, int size) {
  /* (len - size) / 2.0 is exact; nearbyint rounds halves to even, as
   * Python 3's round() does (so 1/2 -> 0, 3/2 -> 2) */
  return (int)nearbyint((len - size) / 2.0);
}

cc_box cc_rrc_box(int w, int h, double smin, double smax, double rmin, double rmax, uint64_t *rng) {
  double area = (double)w * h, lmin = log(rmin), lmax = log(rmax);
  cc_box b;
  for (int tries = 0; tries < 10; tries++) {
    double target = area * (smin + (smax - smin) * cc_rng_uniform(rng));
    double ratio = exp(lmin + (lmax - lmin) * cc_rng_uniform(rng));
    double cw = nearbyint(sqrt(target * ratio)), ch = nearbyint(sqrt(target / ratio));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      b.w = (int)cw;
      b.h = (int)ch;
      b.y = (int)cc_rng_below(rng, (uint64_t)(h - b.h) + 1);
      b.x = (int)cc_rng_below(rng, (uint64_t)(w - b.w) + 1);
      return b;
    }
  }
  /* torchvision's fallback: the largest centred box with a ratio in range */
  double in_ratio = (double)w / h;
  if (in_ratio < rmin) {
    b.w = w;
    b.h = (int)nearbyint(w / rmin);
  } else if (in_ratio > rmax) {
    b.h = h;
    b.w = (int)nearbyint(h * rmax);
  } else {
    b.w = w;
    b.h = h;
  }
  if (b.w > w) b.w = w;
  if (b.h > h) b.h = h;
  if (b.w < 1) b.w = 1;
  if (b.h < 1) b.h = 1;
  b.y = (h - b.h) / 2;
  b.x = (w - b.w) / 2;
  return b;
}

static clipcl_status check_args(const clipcl_image *img, int size, const void *out, const char *fn) {
  if (!img || !img->rgb || img->w <= 0 || img->h <= 0 || !out)
    return cc_fail(CLIPCL_ERR_ARG, "%s: empty image or no output buffer", fn);
  if (size < 1 || size > CC_IMAGE_MAX_SIZE)
    return cc_fail(CLIPCL_ERR_ARG, "%s: size %d is outside 1..%d", fn, size, CC_IMAGE_MAX_SIZE);
  return CLIPCL_OK;
}

clipcl_status cc_image_center_u8(const clipcl_image *img, int size, uint8_t *hwc) {
  CC_TRY(check_args(img, size, hwc, "preprocess"));
  int ow = 0, oh = 0;
  CC_TRY(cc_resize_shorter(img->w, img->h, size, &ow, &oh));
  return cc_resample_bicubic(img->rgb, (size_t)img->w * 3, img->w, img->h, ow, oh, cc_center_offset(ow, size),
                             cc_center_offset(oh, size), size, size, hwc);
}

clipcl_status cc_image_box_u8(const clipcl_image *img, cc_box b, int size, uint8_t *hwc) {
  CC_TRY(check_args(img, size, hwc, "preprocess_box"));
  if (b.w < 1 || b.h < 1 || b.x < 0 || b.y < 0 || b.x > img->w - b.w || b.y > img->h - b.h)
    return cc_fail(CLIPCL_ERR_ARG, "preprocess_box: box (%d, %d) %d x %d is not inside the %d x %d image", b.x,
                   b.y, b.w, b.h, img->w, img->h);
  const uint8_t *src = img->rgb + ((size_t)b.y * img->w + b.x) * 3;
  return cc_resample_bicubic(src, (size_t)img->w * 3, b.w, b.h, size, size, 0, 0, size, size, hwc);
}

void cc_image_normalize(const uint8_t *hwc, int size, float *chw) {
  size_t n = (size_t)size * size;
  for (int c = 0; c < 3; c++) {
    float *o = chw + c * n;
    for (size_t i = 0; i < n; i++) o[i] = ((float)hwc[3 * i + c] / 255.0f - cc_mean[c]) / cc_std[c];
  }
}

/* Runs one of the u8 paths into a scratch buffer, then normalises. */
static clipcl_status to_tensor(const clipcl_image *img, int size, const cc_box *box, float *chw) {
  CC_TRY(check_args(img, size, chw, box ? "preprocess_box" : "preprocess"));
  uint8_t *hwc = malloc((size_t)size * size * 3);
  if (!hwc) return cc_fail(CLIPCL_ERR_NOMEM, "preprocess: out of memory for a %d x %d image", size, size);
  clipcl_status st = box ? cc_image_box_u8(img, *box, size, hwc) : cc_image_center_u8(img, size, hwc);
  if (st == CLIPCL_OK) cc_image_normalize(hwc, size, chw);
  free(hwc);
  return st;
}

clipcl_status clipcl_image_preprocess(const clipcl_image *img, int size, float *chw) {
  return to_tensor(img, size, NULL, chw);
}

clipcl_status clipcl_image_preprocess_box(const clipcl_image *img, int x, int y, int w, int h, int size,
                                          float *chw) {
  cc_box b = {x, y, w, h};
  return to_tensor(img, size, &b, chw);
}

clipcl_status clipcl_image_random_resized_crop(const clipcl_image *img, int size, uint64_t *rng, float *chw) {
  if (!rng) return cc_fail(CLIPCL_ERR_ARG, "random_resized_crop: no generator state");
  CC_TRY(check_args(img, size, chw, "random_resized_crop"));
  cc_box b = cc_rrc_box(img->w, img->h, CC_RRC_SCALE_MIN, CC_RRC_SCALE_MAX, CC_RRC_RATIO_MIN, CC_RRC_RATIO_MAX, rng);
  return to_tensor(img, size, &b, chw);
}
