/* image.h: internal interface of src/image/: the format decoders, the
 * PIL-compatible bicubic resampler, torchvision's size and crop rules, the
 * seeded generator behind RandomResizedCrop, and CLIP normalisation. The
 * public types and entry points (clipcl_image_*) are in include/clipcl.h.
 * Not here: data sources and the training loader (src/data/).
 *
 * Pixel layout everywhere: 8-bit RGB, rows of w*3 bytes, no padding, unless a
 * stride is passed. Tensor layout of preprocessed output: float32 (3, S, S).
 */
#ifndef CC_IMAGE_H
#define CC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* Decoders refuse images above this many pixels (768 MiB of RGB, e.g.
 * 16384 x 16384) before allocating, so a forged header cannot ask for
 * terabytes. */
#define CC_IMAGE_MAX_PIXELS ((uint64_t)1 << 28)
/* The limit in force: CC_IMAGE_MAX_PIXELS unless lowered for the process
 * (the fuzz targets do, so that a tiny file declaring a huge image cannot
 * make one input take seconds). */
uint64_t cc_image_max_pixels(void);
void cc_image_set_max_pixels(uint64_t n);
/* OK, or the one-line refusal of a w x h `format` image over the limit:
 * what its pixels would take, the limit, and the host's memory. */
clipcl_status cc_image_check_size(uint64_t w, uint64_t h, const char *format, const char *name);
/* Files are read whole; larger ones are refused. */
#define CC_IMAGE_MAX_FILE_BYTES ((size_t)1 << 30)

/* Largest output side the preprocessing accepts. */
#define CC_IMAGE_MAX_SIZE 8192

/* Allocates img->rgb for w x h after checking the pixel cap. */
clipcl_status cc_image_alloc(clipcl_image *img, int w, int h, const char *name);

/* Format decoders behind clipcl_image_decode(); data is the whole file. */
clipcl_status cc_png_decode(const uint8_t *data, size_t len, const char *name, clipcl_image *img);
clipcl_status cc_jpeg_decode(const uint8_t *data, size_t len, const char *name, clipcl_image *img);

/* Resamples a bw x bh RGB image (row stride `stride` bytes) to ow x oh as
 * PIL's Image.resize((ow, oh), BICUBIC) does on that image, and writes only
 * the window [wx, wx+ww) x [wy, wy+wh) of the result, packed, into dst.
 * Identical to resizing everything and cropping, without the wasted work. */
clipcl_status cc_resample_bicubic(const uint8_t *src, size_t stride, int bw, int bh, int ow, int oh,
                                  int wx, int wy, int ww, int wh, uint8_t *dst);

/* torchvision Resize(size): the shorter side becomes size, the longer
 * int(size * long / short). Fails when the result does not fit an int. */
clipcl_status cc_resize_shorter(int w, int h, int size, int *ow, int *oh);
/* torchvision CenterCrop offset: int(round((len - size) / 2.0)), Python's
 * round-half-to-even. */
int cc_center_offset(int len, int size);

typedef struct {
  int x, y, w, h;
} cc_box;

/* splitmix64: any state is valid; advanced in place. */
uint64_t cc_rng_next(uint64_t *state);
/* Uniform in [0, 1) with 53 random bits. */
double cc_rng_uniform(uint64_t *state);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t cc_rng_below(uint64_t *state, uint64_t n);

/* open_clip's training crop: RandomResizedCrop(scale=(0.9, 1.0)) with
 * torchvision's default ratio range */
#define CC_RRC_SCALE_MIN 0.9
#define CC_RRC_SCALE_MAX 1.0
#define CC_RRC_RATIO_MIN (3.0 / 4.0)
#define CC_RRC_RATIO_MAX (4.0 / 3.0)

/* torchvision RandomResizedCrop.get_params with our generator: up to 10
 * tries of area fraction in [smin, smax] and log-uniform aspect ratio in
 * [rmin, rmax], then the centre fallback. The box always lies inside. */
cc_box cc_rrc_box(int w, int h, double smin, double smax, double rmin, double rmax, uint64_t *rng);

/* Resize(size) + CenterCrop(size) into size*size*3 bytes (HWC). */
clipcl_status cc_image_center_u8(const clipcl_image *img, int size, uint8_t *hwc);
/* Crop box (inside the image), then resize to size x size, into HWC bytes. */
clipcl_status cc_image_box_u8(const clipcl_image *img, cc_box box, int size, uint8_t *hwc);

/* HWC bytes -> CHW float32: (v/255 - mean[c]) / std[c], computed in float in
 * the order torchvision's ToTensor + Normalize use, so results match bitwise. */
void cc_image_normalize(const uint8_t *hwc, int size, float *chw);

#endif
