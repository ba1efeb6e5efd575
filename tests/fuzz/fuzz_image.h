/* fuzz_image.h: the body shared by fuzz_png.c and fuzz_jpeg.c (one target
 * per format so that each keeps its own corpus): decode arbitrary bytes as
 * clipcl_image_decode does, then every preprocessing path on the result:
 * eval (resize + centre crop), a crop box, and RandomResizedCrop. The pixel
 * limit is lowered to 2^22 so that a tiny file declaring a huge image (which
 * JPEG decodes as grey without running out of data) costs milliseconds; the
 * real limit is tested by test_image_limits. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image/image.h"

static int fuzz_image(const uint8_t *data, size_t size) {
  cc_image_set_max_pixels((uint64_t)1 << 22);
  clipcl_image img;
  clipcl_status st = clipcl_image_decode(data, size, "fuzz", &img);
  fz_check(st, "clipcl_image_decode");
  if (st != CLIPCL_OK) {
    if (img.rgb || img.w || img.h) abort(); /* failure leaves the image empty */
    return 0;
  }
  if (img.w < 1 || img.h < 1 || !img.rgb) abort();
  float *chw = malloc(3 * 24 * 24 * sizeof *chw);
  if (!chw) abort();
  fz_check(clipcl_image_preprocess(&img, 24, chw), "clipcl_image_preprocess");
  uint64_t rng = size;
  fz_check(clipcl_image_random_resized_crop(&img, 24, &rng, chw), "clipcl_image_random_resized_crop");
  int bw = img.w > 1 ? img.w / 2 : 1, bh = img.h > 1 ? img.h / 2 : 1;
  fz_check(clipcl_image_preprocess_box(&img, img.w - bw, img.h - bh, bw, bh, 7, chw), "clipcl_image_preprocess_box");
  for (int i = 0; i < 3 * 7 * 7; i++)
    if (!(chw[i] > -3 && chw[i] < 3)) abort(); /* normalised pixels stay in range */
  free(chw);
  clipcl_image_free(&img);
  return 0;
}
