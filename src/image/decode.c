/* decode.c: clipcl_image_load/decode/free: reads a file whole, picks the
 * decoder from the magic bytes and names formats we recognise but do not
 * read. The PNG and JPEG decoders themselves are in png.c and jpeg.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image.h"
#include "util/error.h"
#include "util/mem.h"

static _Atomic uint64_t max_pixels = CC_IMAGE_MAX_PIXELS;

uint64_t cc_image_max_pixels(void) { return max_pixels; }
void cc_image_set_max_pixels(uint64_t n) { max_pixels = n ? n : CC_IMAGE_MAX_PIXELS; }

clipcl_status cc_image_check_size(uint64_t w, uint64_t h, const char *format, const char *name) {
  uint64_t lim = max_pixels;
  if (w <= lim && h <= lim && w * h <= lim) return CLIPCL_OK; /* w, h < 2^32: no overflow past the first test */
  char need[32], cap[32], note[96];
  double bytes = (double)w * (double)h * 3;
  cc_fmt_bytes(need, sizeof need, bytes > 1.8e19 ? UINT64_MAX : (uint64_t)bytes);
  cc_fmt_bytes(cap, sizeof cap, lim * 3);
  return cc_fail(CLIPCL_ERR_FORMAT,
                 "%s: %s of %llu x %llu pixels is over the limit of %llu pixels: decoding it would allocate %s for "
                 "its RGB pixels (limit %s)%s",
                 name, format, (unsigned long long)w, (unsigned long long)h, (unsigned long long)lim, need, cap,
                 cc_host_memory_note(note, sizeof note));
}

clipcl_status cc_image_alloc(clipcl_image *img, int w, int h, const char *name) {
  if (w <= 0 || h <= 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: image has no pixels (%d x %d)", name, w, h);
  CC_TRY(cc_image_check_size((uint64_t)w, (uint64_t)h, "image", name));
  size_t bytes = (size_t)w * (size_t)h * 3;
  img->rgb = malloc(bytes);
  if (!img->rgb) {
    char b[32], note[96];
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot allocate %s for the RGB pixels of a %d x %d image%s", name,
                   cc_fmt_bytes(b, sizeof b, bytes), w, h, cc_host_memory_note(note, sizeof note));
  }
  img->w = w;
  img->h = h;
  return CLIPCL_OK;
}

void clipcl_image_free(clipcl_image *img) {
  if (!img) return;
  free(img->rgb);
  img->rgb = NULL;
  img->w = img->h = 0;
}

static int has_prefix(const uint8_t *d, size_t len, const char *magic, size_t n) {
  return len >= n && memcmp(d, magic, n) == 0;
}

clipcl_status clipcl_image_decode(const void *data, size_t len, const char *name, clipcl_image *img) {
  if (!name) name = "<memory>";
  if (!img) return cc_fail(CLIPCL_ERR_ARG, "%s: no image to decode into", name);
  img->w = img->h = 0;
  img->rgb = NULL;
  if (!data && len) return cc_fail(CLIPCL_ERR_ARG, "%s: no data", name);
  const uint8_t *d = data;
  if (len == 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: empty file", name);
  if (has_prefix(d, len, "\x89PNG\r\n\x1a\n", 8)) return cc_png_decode(d, len, name, img);
  if (has_prefix(d, len, "\xff\xd8\xff", 3)) return cc_jpeg_decode(d, len, name, img);
  /* formats PIL reads but we do not: say so rather than "not an image" */
  static const struct {
    const char *magic;
    size_t n;
    const char *what;
  } other[] = {{"GIF87a", 6, "GIF"},  {"GIF89a", 6, "GIF"},       {"BM", 2, "BMP"},
               {"II*\0", 4, "TIFF"},  {"MM\0*", 4, "TIFF"},       {"\0\0\1\0", 4, "ICO"},
               {"qoif", 4, "QOI"}};
  for (size_t i = 0; i < sizeof other / sizeof *other; i++)
    if (has_prefix(d, len, other[i].magic, other[i].n))
      return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: %s images are not supported (only PNG and JPEG)", name,
                     other[i].what);
  if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: WebP images are not supported (only PNG and JPEG)", name);
  return cc_fail(CLIPCL_ERR_FORMAT, "%s: not a PNG or JPEG file (unrecognised first bytes)", name);
}

clipcl_status clipcl_image_load(const char *path, clipcl_image *img) {
  if (!path || !img) return cc_fail(CLIPCL_ERR_ARG, "clipcl_image_load: NULL argument");
  img->w = img->h = 0;
  img->rgb = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  /* read in growing chunks rather than trusting fseek/ftell: works on pipes
   * and cannot be fooled by a file that changes size while we read */
  size_t cap = 0, len = 0;
  uint8_t *buf = NULL;
  clipcl_status st = CLIPCL_OK;
  char lim[32];
  cc_fmt_bytes(lim, sizeof lim, CC_IMAGE_MAX_FILE_BYTES);
  struct stat sb;
  if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > CC_IMAGE_MAX_FILE_BYTES) {
    char have[32];
    fclose(f);
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: file of %s is over the limit of %s for an image", path,
                   cc_fmt_bytes(have, sizeof have, (uint64_t)sb.st_size), lim);
  }
  for (;;) {
    if (len == cap) {
      if (cap >= CC_IMAGE_MAX_FILE_BYTES) {
        if (fgetc(f) == EOF) break; /* exactly at the limit */
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: file is over the limit of %s for an image", path, lim);
        break;
      }
      size_t ncap = cap ? cap * 2 : 1 << 16;
      if (ncap > CC_IMAGE_MAX_FILE_BYTES) ncap = CC_IMAGE_MAX_FILE_BYTES;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot allocate %zu bytes to read the file", path, ncap);
        break;
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) st = cc_fail(CLIPCL_ERR_IO, "%s: read error: %s", path, strerror(errno));
      break;
    }
  }
  fclose(f);
  if (st == CLIPCL_OK) st = clipcl_image_decode(buf, len, path, img);
  free(buf);
  return st;
}
