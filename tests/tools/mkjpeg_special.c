/* mkjpeg_special.c: writes the JPEG colour-space variants that PIL cannot
 * write, for tests/tools/make_image_fixtures.py: YCCK (Adobe transform 2),
 * CMYK without the Adobe APP14 marker, and RGB stored without the YCbCr
 * transform (Adobe transform 0). Not part of the library or the tests; only
 * the fixture script builds and runs it (needs libjpeg headers).
 *   mkjpeg_special ycck|cmyk_noadobe|rgb W H in.raw out.jpg
 * in.raw holds H*W samples of 4 bytes (CMYK, Adobe-inverted as PIL writes
 * them) or 3 bytes (RGB). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s ycck|cmyk_noadobe|rgb W H in.raw out.jpg\n", argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  int w = atoi(argv[2]), h = atoi(argv[3]);
  int comps = strcmp(mode, "rgb") == 0 ? 3 : 4;
  if (w <= 0 || h <= 0 || w > 10000 || h > 10000) return 2;
  size_t n = (size_t)w * h * comps;
  unsigned char *buf = malloc(n);
  FILE *in = fopen(argv[4], "rb");
  if (!buf || !in || fread(buf, 1, n, in) != n) {
    fprintf(stderr, "%s: cannot read %zu bytes\n", argv[4], n);
    return 1;
  }
  fclose(in);
  FILE *out = fopen(argv[5], "wb");
  if (!out) return 1;

  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, out);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = comps;
  c.in_color_space = comps == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 92, TRUE);
  if (strcmp(mode, "ycck") == 0) {
    jpeg_set_colorspace(&c, JCS_YCCK);
  } else if (strcmp(mode, "cmyk_noadobe") == 0) {
    jpeg_set_colorspace(&c, JCS_CMYK);
    c.write_Adobe_marker = FALSE;
  } else {
    jpeg_set_colorspace(&c, JCS_RGB);
  }
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = buf + (size_t)c.next_scanline * w * comps;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  fclose(out);
  free(buf);
  return 0;
}
