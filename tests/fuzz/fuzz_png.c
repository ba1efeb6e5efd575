/* fuzz_png.c: PNG decode (libpng behind cc_png_decode: every colour type and
 * bit depth, interlacing, tRNS, CRC and zlib errors, dimension limits) plus
 * preprocessing; see fuzz_image.h. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_image(data, size); }
