/* fuzz_jpeg.c: JPEG decode (libjpeg-turbo behind cc_jpeg_decode: baseline,
 * progressive, greyscale, CMYK and YCCK, truncation, dimension limits) plus
 * preprocessing; see fuzz_image.h. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_image(data, size); }
