/* jpeg.c: JPEG decoding (libjpeg-turbo) to 8-bit RGB with the settings PIL
 * uses (accurate integer IDCT, fancy upsampling, no scaling), so pixels
 * match PIL's decode of the same file bit for bit on the same libjpeg-turbo.
 * Not here: format detection (decode.c).
 *
 * libjpeg's default error handler calls exit(); ours records the message and
 * longjmps back to the decoder. Corrupt-data warnings that libjpeg repairs
 * are ignored, as PIL ignores them, but running out of data before the last
 * row is an error (PIL: "image file is truncated"), where libjpeg alone would
 * pad the image with grey. */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image/image.h"
#include "util/error.h"

/* A progressive file may hold any number of scans, each a pass over the
 * whole coefficient buffer; real files have about 10. */
#define CC_JPEG_MAX_SCANS 1000

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX + 64];
} cc_jpeg_err;

static void on_error(j_common_ptr c) {
  cc_jpeg_err *e = (cc_jpeg_err *)c->err;
  char m[JMSG_LENGTH_MAX];
  c->err->format_message(c, m);
  snprintf(e->msg, sizeof e->msg, "%s", m);
  longjmp(e->jb, 1);
}

static void on_message(j_common_ptr c, int level) {
  if (level >= 0) return; /* trace output */
  if (c->err->msg_code == JWRN_JPEG_EOF) {
    cc_jpeg_err *e = (cc_jpeg_err *)c->err;
    snprintf(e->msg, sizeof e->msg, "file is truncated (no data left before the end of the image)");
    longjmp(e->jb, 1);
  }
  c->err->num_warnings++;
}

static void on_output(j_common_ptr c) { (void)c; }

static void on_progress(j_common_ptr c) {
  j_decompress_ptr d = (j_decompress_ptr)c;
  if (d->input_scan_number > CC_JPEG_MAX_SCANS) {
    cc_jpeg_err *e = (cc_jpeg_err *)c->err;
    snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", CC_JPEG_MAX_SCANS);
    longjmp(e->jb, 1);
  }
}

/* PIL reads every 4-channel JPEG as Adobe-inverted CMYK ("CMYK;I"), then
 * converts with R = (255-K) - (C*(255-K))/255 in its rounded integer form. */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int w) {
  for (int x = 0; x < w; x++, in += 4, out += 3) {
    int nk = in[3]; /* 255 - K, K being the inverted stored value */
    for (int c = 0; c < 3; c++) {
      int v = 255 - in[c];
      int t = v * nk + 128;
      int r = nk - (((t >> 8) + t) >> 8);
      out[c] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
  }
}

clipcl_status cc_jpeg_decode(const uint8_t *data, size_t len, const char *name, clipcl_image *img) {
  if (len > ULONG_MAX) return cc_fail(CLIPCL_ERR_FORMAT, "%s: JPEG too large", name);
  struct jpeg_decompress_struct d;
  cc_jpeg_err err;
  struct jpeg_progress_mgr progress;
  memset(&progress, 0, sizeof progress);
  memset(&d, 0, sizeof d); /* jpeg_destroy must see a NULL mem if create fails */
  progress.progress_monitor = on_progress;
  d.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  err.pub.output_message = on_output;
  err.msg[0] = 0;
  /* changed after setjmp, read after longjmp: must be volatile */
  uint8_t *volatile row4 = NULL;
  if (setjmp(err.jb)) {
    jpeg_destroy_decompress(&d);
    free(row4);
    clipcl_image_free(img);
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt JPEG: %s", name, err.msg);
  }
  jpeg_create_decompress(&d);
  d.progress = &progress;
  jpeg_mem_src(&d, data, (unsigned long)len);
  if (jpeg_read_header(&d, TRUE) != JPEG_HEADER_OK) {
    snprintf(err.msg, sizeof err.msg, "no image in the file (tables only)");
    longjmp(err.jb, 1);
  }
  clipcl_status size_st = cc_image_check_size(d.image_width, d.image_height, "JPEG", name);
  if (size_st != CLIPCL_OK) {
    jpeg_destroy_decompress(&d);
    return size_st;
  }
  int cmyk = 0;
  switch (d.num_components) {
    case 1:
    case 3:
      d.out_color_space = JCS_RGB; /* grey is replicated, as convert("RGB") does */
      break;
    case 4:
      d.out_color_space = JCS_CMYK; /* YCCK is converted to CMYK by libjpeg */
      cmyk = 1;
      break;
    default:
      snprintf(err.msg, sizeof err.msg, "%d colour components (PIL reads 1, 3 or 4)", d.num_components);
      longjmp(err.jb, 1);
  }
  jpeg_start_decompress(&d);
  if (d.output_components != (cmyk ? 4 : 3) || d.output_width != d.image_width ||
      d.output_height != d.image_height) {
    snprintf(err.msg, sizeof err.msg, "unexpected output layout");
    longjmp(err.jb, 1);
  }
  clipcl_status st = cc_image_alloc(img, (int)d.output_width, (int)d.output_height, name);
  if (st != CLIPCL_OK) {
    jpeg_destroy_decompress(&d);
    return st;
  }
  size_t stride = (size_t)img->w * 3;
  if (cmyk) {
    row4 = malloc((size_t)img->w * 4);
    if (!row4) {
      jpeg_destroy_decompress(&d);
      clipcl_image_free(img);
      return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", name);
    }
  }
  while (d.output_scanline < d.output_height) {
    JDIMENSION y = d.output_scanline;
    JSAMPROW row = cmyk ? row4 : img->rgb + (size_t)y * stride;
    if (jpeg_read_scanlines(&d, &row, 1) != 1) {
      snprintf(err.msg, sizeof err.msg, "decoder stopped at row %u", (unsigned)y);
      longjmp(err.jb, 1);
    }
    if (cmyk) cmyk_row_to_rgb(row4, img->rgb + (size_t)y * stride, img->w);
  }
  /* No jpeg_finish_decompress: like PIL, a file whose image data is whole
   * but whose EOI marker is missing still decodes. */
  jpeg_destroy_decompress(&d);
  free(row4);
  return CLIPCL_OK;
}
