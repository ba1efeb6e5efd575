/* png.c: PNG decoding (libpng) to 8-bit RGB as PIL's convert("RGB") gives
 * it, and the 8-bit RGB PNG writer. Not here: format detection (decode.c).
 *
 * libpng reports errors by calling our handler, which records the message
 * and longjmps back to the setjmp in the function that started the work; its
 * warnings (bad ancillary chunks, odd ICC profiles) are dropped because the
 * library never prints. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "util/error.h"

typedef struct {
  const uint8_t *data;
  size_t len, pos;
  char msg[200];
} cc_png_ctx;

static void on_error(png_structp p, png_const_charp msg) {
  cc_png_ctx *c = png_get_error_ptr(p);
  snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(p, 1);
}

static void on_warning(png_structp p, png_const_charp msg) {
  (void)p;
  (void)msg;
}

static void read_bytes(png_structp p, png_bytep out, size_t n) {
  cc_png_ctx *c = png_get_io_ptr(p);
  if (n > c->len - c->pos) png_error(p, "file is truncated");
  memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

/* libpng allocates (and clears) a chunk's declared length before reading an
 * ancillary chunk in front of the image data, so a 2 KB file whose zTXt
 * claims 1.9 GB made it touch 1.9 GB. Every chunk up to the first IDAT must
 * fit in the file; after it, a cut file still decodes as PIL's does. */
static clipcl_status check_chunks(const uint8_t *d, size_t len, const char *name) {
  size_t pos = 8;
  while (pos + 8 <= len) {
    uint32_t n = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 | (uint32_t)d[pos + 2] << 8 | d[pos + 3];
    if (memcmp(d + pos + 4, "IDAT", 4) == 0) return CLIPCL_OK;
    if ((uint64_t)n + 12 > len - pos) {
      char type[5];
      for (int i = 0; i < 4; i++) type[i] = d[pos + 4 + i] >= 0x20 && d[pos + 4 + i] < 0x7f ? (char)d[pos + 4 + i] : '?';
      type[4] = 0;
      return cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt PNG: chunk %s at byte %zu declares %lu bytes, only %zu follow "
                     "(file is truncated)", name, type, pos, (unsigned long)n, len - pos - 8);
    }
    pos += (size_t)n + 12;
  }
  return CLIPCL_OK; /* libpng reports what is missing */
}

clipcl_status cc_png_decode(const uint8_t *data, size_t len, const char *name, clipcl_image *img) {
  CC_TRY(check_chunks(data, len, name));
  cc_png_ctx ctx = {data, len, 0, ""};
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot create a PNG reader", name);
  png_infop info = png_create_info_struct(p);
  if (!info) {
    png_destroy_read_struct(&p, NULL, NULL);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot create a PNG reader", name);
  }
  /* changed after setjmp, read after longjmp: must be volatile */
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(p))) {
    free(rows);
    png_destroy_read_struct(&p, &info, NULL);
    clipcl_image_free(img);
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt PNG: %s", name, ctx.msg);
  }
  png_set_read_fn(p, &ctx, read_bytes);
  /* PIL refuses a bad CRC in any chunk before the image data; libpng would
   * only warn about ancillary ones and drop them */
  png_set_crc_action(p, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  /* libpng's own size limit (a million pixels a side) would refuse first,
   * without saying what the image would cost; ours follows png_read_info */
  png_set_user_limits(p, 0x7fffffff, 0x7fffffff);
  png_read_info(p, info);

  png_uint_32 w, h;
  int depth, ctype, interlace;
  png_get_IHDR(p, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
  clipcl_status size_st = cc_image_check_size(w, h, "PNG", name);
  if (size_st != CLIPCL_OK) {
    png_destroy_read_struct(&p, &info, NULL);
    return size_st;
  }
  /* The transforms that make PIL's convert("RGB"): palette lookup (below),
   * low-depth grey scaled by 255/(2^d-1), alpha dropped without compositing,
   * grey copied to three channels. 16-bit samples: round(v*255/65535) by
   * png_set_scale_16, where PIL takes the high byte (RGB) or clips (grey).
   * No gamma handling, as in PIL. */
  int palette = ctype == PNG_COLOR_TYPE_PALETTE;
  if (palette) png_set_packing(p); /* one index per byte; we look them up */
  if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
  if (depth == 16) png_set_scale_16(p);
  png_set_strip_alpha(p);
  if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(p);
  png_set_interlace_handling(p);
  png_read_update_info(p, info);
  int chans = palette ? 1 : 3;
  if (png_get_channels(p, info) != chans || png_get_bit_depth(p, info) != 8 ||
      png_get_rowbytes(p, info) != (size_t)w * chans)
    png_error(p, "unexpected layout after conversion to RGB");
  /* PIL pads a short palette with the grey ramp (index i -> i,i,i), where
   * libpng's own expansion would give black; tRNS is ignored like alpha. */
  uint8_t lut[256][3];
  if (palette) {
    png_colorp plte = NULL;
    int nplte = 0;
    if (!png_get_PLTE(p, info, &plte, &nplte)) nplte = 0;
    for (int i = 0; i < 256; i++) {
      int in = i < nplte && plte;
      lut[i][0] = in ? plte[i].red : (uint8_t)i;
      lut[i][1] = in ? plte[i].green : (uint8_t)i;
      lut[i][2] = in ? plte[i].blue : (uint8_t)i;
    }
  }

  clipcl_status st = cc_image_alloc(img, (int)w, (int)h, name);
  if (st != CLIPCL_OK) {
    png_destroy_read_struct(&p, &info, NULL);
    return st;
  }
  rows = malloc((size_t)h * sizeof *rows);
  if (!rows) {
    png_destroy_read_struct(&p, &info, NULL);
    clipcl_image_free(img);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot allocate row pointers", name);
  }
  /* palette indices go to the last third of the pixel buffer, so that the
   * lookup can expand them in place, front to back, never overwriting an
   * index it has yet to read */
  size_t npix = (size_t)w * h;
  uint8_t *idx = img->rgb + 2 * npix;
  for (png_uint_32 y = 0; y < h; y++) rows[y] = palette ? idx + (size_t)y * w : img->rgb + (size_t)y * w * 3;
  png_read_image(p, rows);
  if (palette) {
    for (size_t i = 0; i < npix; i++) {
      const uint8_t *c = lut[idx[i]];
      uint8_t *o = img->rgb + 3 * i;
      o[0] = c[0];
      o[1] = c[1];
      o[2] = c[2];
    }
  }
  /* Like PIL, stop after the image data: chunks after the last IDAT (and a
   * missing IEND) do not matter to the pixels. The IDAT CRCs were checked. */
  free(rows);
  png_destroy_read_struct(&p, &info, NULL);
  return CLIPCL_OK;
}

clipcl_status clipcl_image_save_png(const char *path, const clipcl_image *img) {
  if (!path || !img || !img->rgb || img->w <= 0 || img->h <= 0)
    return cc_fail(CLIPCL_ERR_ARG, "%s: no image to save", path ? path : "<null>");
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp.XXXXXX", 12);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    clipcl_status st = cc_fail(CLIPCL_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    free(tmp);
    return st;
  }
  fchmod(fd, 0644); /* mkstemp's 0600 would hide the file from other users */
  FILE *volatile f = fdopen(fd, "wb");
  if (!f) {
    clipcl_status st = cc_fail(CLIPCL_ERR_IO, "%s: cannot open a temporary file: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    free(tmp);
    return st;
  }
  cc_png_ctx ctx = {NULL, 0, 0, ""};
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  png_infop info = p ? png_create_info_struct(p) : NULL;
  if (!info) {
    png_destroy_write_struct(&p, NULL);
    fclose(f);
    unlink(tmp);
    free(tmp);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot create a PNG writer", path);
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_write_struct(&p, &info);
    fclose(f);
    unlink(tmp);
    free(tmp);
    return cc_fail(CLIPCL_ERR_IO, "%s: cannot write PNG: %s", path, ctx.msg);
  }
  png_init_io(p, f);
  png_set_IHDR(p, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(p, info);
  for (int y = 0; y < img->h; y++) png_write_row(p, img->rgb + (size_t)y * img->w * 3);
  png_write_end(p, NULL);
  png_destroy_write_struct(&p, &info);
  int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
  int err = errno;
  if (fclose(f) != 0 && !bad) {
    bad = 1;
    err = errno;
  }
  if (bad || rename(tmp, path) != 0) {
    if (!bad) err = errno;
    unlink(tmp);
    free(tmp);
    return cc_fail(CLIPCL_ERR_IO, "%s: cannot write PNG: %s", path, strerror(err));
  }
  free(tmp);
  return CLIPCL_OK;
}
