/* test_limits.c: every size limit the README lists, exercised at the limit
 * and one past it: image pixels (JPEG and PNG headers declaring 16384 x
 * 16384 = 2^28 pixels are let through to decoding, one pixel row more is
 * refused before anything is allocated, with a message that says what it
 * would cost), image file size, captions (CSV field, tar .txt and .json
 * members), the CSV header row and image path field, tar image members,
 * the safetensors and .npy headers, and model config files. Large files are written
 * sparse where the format allows. No device needed. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data.h"
#include "harness.h"
#include "image/image.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "io_testutil.h"

static char dir[512];

static const char *path_of(const char *name) {
  static char p[8][1024];
  static int k;
  char *r = p[k++ & 7];
  snprintf(r, sizeof p[0], "%s/%s", dir, name);
  return r;
}

static void setup_failed(void) {
  perror("test setup");
  exit(1);
}

static int has(const char *msg) { return strstr(clipcl_last_error(), msg) != NULL; }

/* ---- images ------------------------------------------------------------------ */

/* A baseline JPEG header declaring w x h, cut right after the start of scan
 * so decoding runs out of data on the first row. */
static unsigned char *jpeg_header(int w, int h, size_t *len) {
  size_t n;
  unsigned char *src = tu_read("data/images/jpg_1x1.jpg", &n);
  if (!src) return NULL;
  size_t i = 2, sos_end = 0;
  while (i + 4 <= n && src[i] == 0xff) {
    unsigned m = src[i + 1], l = (unsigned)src[i + 2] << 8 | src[i + 3];
    if (m == 0xc0) {
      src[i + 5] = (unsigned char)(h >> 8), src[i + 6] = (unsigned char)h;
      src[i + 7] = (unsigned char)(w >> 8), src[i + 8] = (unsigned char)w;
    }
    if (m == 0xda) {
      sos_end = i + 2 + l;
      break;
    }
    i += 2 + l;
  }
  *len = sos_end + 2; /* two bytes of entropy-coded data, no EOI */
  return sos_end ? src : (free(src), NULL);
}

static void chunk(unsigned char **p, const char *type, const unsigned char *data, uint32_t n) {
  unsigned char *q = *p;
  q[0] = (unsigned char)(n >> 24), q[1] = (unsigned char)(n >> 16), q[2] = (unsigned char)(n >> 8), q[3] = (unsigned char)n;
  memcpy(q + 4, type, 4);
  if (n) memcpy(q + 8, data, n);
  uLong crc = crc32(crc32(0, NULL, 0), q + 4, n + 4);
  q[8 + n] = (unsigned char)(crc >> 24), q[9 + n] = (unsigned char)(crc >> 16);
  q[10 + n] = (unsigned char)(crc >> 8), q[11 + n] = (unsigned char)crc;
  *p = q + 12 + n;
}

/* An RGB PNG declaring w x h whose IDAT holds only a few rows' worth. */
static unsigned char *png_header(uint32_t w, uint32_t h, size_t *len) {
  unsigned char *buf = malloc(4096), *p = buf;
  memcpy(p, "\x89PNG\r\n\x1a\n", 8);
  p += 8;
  unsigned char ihdr[13] = {(unsigned char)(w >> 24), (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w,
                            (unsigned char)(h >> 24), (unsigned char)(h >> 16), (unsigned char)(h >> 8), (unsigned char)h,
                            8, 2, 0, 0, 0};
  chunk(&p, "IHDR", ihdr, 13);
  unsigned char raw[256] = {0}, z[512];
  uLongf zn = sizeof z;
  compress(z, &zn, raw, sizeof raw);
  chunk(&p, "IDAT", z, (uint32_t)zn);
  chunk(&p, "IEND", NULL, 0);
  *len = (size_t)(p - buf);
  return buf;
}

static void image_case(const char *label, unsigned char *data, const size_t *lenp, int over, const char *extra) {
  size_t len = *lenp;
  clipcl_image img;
  clipcl_status s = data ? clipcl_image_decode(data, len, label, &img) : CLIPCL_ERR_IO;
  if (s == CLIPCL_OK) clipcl_image_free(&img);
  int refused = s == CLIPCL_ERR_FORMAT && has("over the limit of 268435456 pixels");
  int ok = over ? refused && has("for its RGB pixels") && (!extra || has(extra)) : (s != CLIPCL_OK && !refused);
  th_assert(label, ok, "status %d: %s", s, clipcl_last_error());
  free(data);
}

static void images(void) {
  size_t n;
  /* at the limit the header passes and decoding fails later, on the data */
  image_case("JPEG 16384 x 16384 passes the size check", jpeg_header(16384, 16384, &n), &n, 0, NULL);
  image_case("JPEG 16384 x 16385 refused", jpeg_header(16384, 16385, &n), &n, 1, "768 MiB");
  image_case("JPEG 65500 x 65500 (largest a JPEG declares) refused", jpeg_header(65500, 65500, &n), &n, 1,
             "12.0 GiB");
  image_case("PNG 16384 x 16384 passes the size check", png_header(16384, 16384, &n), &n, 0, NULL);
  image_case("PNG 16385 x 16384 refused", png_header(16385, 16384, &n), &n, 1, "768 MiB");
  image_case("PNG 100000 x 100000 refused", png_header(100000, 100000, &n), &n, 1, "27.9 GiB");
  image_case("PNG 2^31-1 x 1 refused", png_header(0x7fffffff, 1, &n), &n, 1, NULL);
  /* a chunk before the image data declaring more than the file holds is
   * refused before libpng allocates (and clears) its declared size */
  {
    unsigned char *d = png_header(30, 40, &n), *q = d + 33; /* after the signature and IHDR */
    memmove(q + 12, q, n - 33);
    unsigned char ztxt[12] = {0x71, 0x6f, 0x6f, 0x66, 'z', 'T', 'X', 't', 0, 0, 0, 0};
    memcpy(q, ztxt, 12);
    n += 12;
    clipcl_image im;
    clipcl_status s = clipcl_image_decode(d, n, "ztxt.png", &im);
    th_assert("PNG chunk declaring 1.9 GB in a small file refused", s == CLIPCL_ERR_FORMAT &&
              has("chunk zTXt at byte 33 declares 1903128422 bytes"), "%s", clipcl_last_error());
    free(d);
  }
  /* the process-wide limit can be lowered (the fuzz targets do) */
  cc_image_set_max_pixels(100);
  clipcl_image img;
  unsigned char *d = png_header(11, 10, &n);
  clipcl_status s = clipcl_image_decode(d, n, "png 11x10", &img);
  th_assert("a lowered limit applies", s == CLIPCL_ERR_FORMAT && has("limit of 100 pixels"), "%s", clipcl_last_error());
  free(d);
  cc_image_set_max_pixels(0);
  th_assert("0 restores the default", cc_image_max_pixels() == CC_IMAGE_MAX_PIXELS, "%llu",
            (unsigned long long)cc_image_max_pixels());

  /* file size: one byte past 1 GiB is refused before reading (sparse file) */
  const char *big = path_of("big.png");
  int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int made = fd >= 0 && ftruncate(fd, (off_t)CC_IMAGE_MAX_FILE_BYTES + 1) == 0;
  if (fd >= 0) close(fd);
  s = made ? clipcl_image_load(big, &img) : CLIPCL_ERR_IO;
  th_assert("image file of 1 GiB + 1 byte refused", s == CLIPCL_ERR_FORMAT && has("over the limit of 1 GiB"), "%s",
            clipcl_last_error());
  unlink(big);
}

/* ---- CSV manifests ---------------------------------------------------------------- */

/* Writes a manifest: header, then one row "path,caption". */
static const char *manifest(const char *name, const char *header, size_t path_len, size_t cap_len) {
  const char *p = path_of(name);
  FILE *f = fopen(p, "wb");
  fputs(header, f);
  for (size_t i = 0; i < path_len; i++) fputc('p', f);
  fputc(',', f);
  for (size_t i = 0; i < cap_len; i++) fputc('c', f);
  fputc('\n', f);
  fclose(f);
  return p;
}

static void csv_row(const char *label, const char *path, int want_flaw, size_t want_cap) {
  clipcl_dataset *ds = NULL;
  clipcl_status s = clipcl_dataset_open(path, NULL, &ds);
  int ok = s == CLIPCL_OK && ds->nrows == 1 && ds->rows[0].flaw == want_flaw &&
           (want_flaw || ds->rows[0].caption_len == want_cap);
  th_assert(label, ok, "status %d, flaw %d: %s", s, s ? -1 : ds->rows[0].flaw, clipcl_last_error());
  clipcl_dataset_free(ds);
}

static void manifests(void) {
  const size_t L = CC_DATA_MAX_CAPTION;
  csv_row("CSV caption of 1 MiB kept", manifest("a.csv", "filepath,title\n", 5, L), CC_ROW_OK, L);
  csv_row("CSV caption of 1 MiB + 1 flags its row", manifest("b.csv", "filepath,title\n", 5, L + 1),
          CC_ROW_FIELD_BIG, 0);
  csv_row("CSV image path of 1 MiB kept", manifest("c.csv", "filepath,title\n", L, 3), CC_ROW_OK, 3);
  csv_row("CSV image path of 1 MiB + 1 flags its row", manifest("d.csv", "filepath,title\n", L + 1, 3),
          CC_ROW_FIELD_BIG, 0);
  /* the header row: its names, each with a terminating NUL, take at most 1 MiB */
  size_t pad = L - strlen("filepath") - strlen("title") - 3;
  char *hdr = malloc(L + 64);
  snprintf(hdr, L + 64, "filepath,title,");
  size_t k = strlen(hdr);
  memset(hdr + k, 'x', pad);
  strcpy(hdr + k + pad, "\n");
  csv_row("CSV header row of 1 MiB read", manifest("e.csv", hdr, 5, 3), CC_ROW_OK, 3);
  hdr[k + pad] = 'x';
  strcpy(hdr + k + pad + 1, "\n");
  clipcl_dataset *ds = NULL;
  clipcl_status s = clipcl_dataset_open(manifest("f.csv", hdr, 5, 3), NULL, &ds);
  th_assert("CSV header row of 1 MiB + 1 refused", s == CLIPCL_ERR_FORMAT && has("header row longer than"), "%s",
            clipcl_last_error());
  clipcl_dataset_free(ds);
  free(hdr);
}

/* ---- tar shards ------------------------------------------------------------------- */

/* A ustar header for a regular file of `size` bytes. */
static void tar_header(unsigned char h[512], const char *name, uint64_t size) {
  memset(h, 0, 512);
  snprintf((char *)h, 100, "%s", name);
  memcpy(h + 100, "0000644", 8);
  memcpy(h + 108, "0000000", 8);
  memcpy(h + 116, "0000000", 8);
  snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
  memcpy(h + 136, "00000000000", 12);
  h[156] = '0';
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++) sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum);
}

/* Shard with k.txt (txt_len bytes of 'a'), k.json (json_len bytes: a
 * caption object padded with spaces; 0: none) and k.jpg (img_len bytes,
 * zeros, left sparse); returns what the reader made of its one sample. */
static void tar_case(const char *label, size_t txt_len, size_t json_len, uint64_t img_len, int want_bad,
                     const char *want_msg) {
  const char *p = path_of("s.tar");
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
  unsigned char h[512];
  off_t off = 0;
  if (txt_len) {
    tar_header(h, "k.txt", txt_len);
    if (pwrite(fd, h, 512, off) != 512) setup_failed();
    char *t = malloc(txt_len);
    memset(t, 'a', txt_len);
    if (pwrite(fd, t, txt_len, off + 512) != (ssize_t)txt_len) setup_failed();
    free(t);
    off += 512 + (off_t)((txt_len + 511) / 512 * 512);
  }
  if (json_len) {
    tar_header(h, "k.json", json_len);
    if (pwrite(fd, h, 512, off) != 512) setup_failed();
    char *t = malloc(json_len);
    memset(t, ' ', json_len);
    memcpy(t, "{\"caption\": \"a cat\"}", 20);
    if (pwrite(fd, t, json_len, off + 512) != (ssize_t)json_len) setup_failed();
    free(t);
    off += 512 + (off_t)((json_len + 511) / 512 * 512);
  }
  tar_header(h, "k.jpg", img_len);
  if (pwrite(fd, h, 512, off) != 512) setup_failed();
  off += 512 + (off_t)((img_len + 511) / 512 * 512) + 1024; /* data and end blocks: zeros */
  if (ftruncate(fd, off) != 0) setup_failed();
  close(fd);
  cc_tar_reader *r;
  cc_tar_sample s;
  int k = cc_tar_reader_open(p, &r) == CLIPCL_OK ? cc_tar_next(r, &s) : -1;
  int ok = k == 1 && (want_bad ? s.bad && strstr(s.bad, want_msg) : !s.bad && s.image_len == img_len && s.caption);
  th_assert(label, ok, "k %d, bad: %s", k, k == 1 && s.bad ? s.bad : "-");
  if (k == 1) cc_tar_sample_clear(&s);
  cc_tar_reader_free(r);
  unlink(p);
}

static void tars(void) {
  const size_t C = CC_DATA_MAX_CAPTION, M = CC_DATA_MAX_MEMBER;
  tar_case("tar .txt caption of 1 MiB read", C, 0, 100, 0, NULL);
  tar_case("tar .txt caption of 1 MiB + 1 refused", C + 1, 0, 100, 1, "over the limit of 1048576");
  tar_case("tar .json member of 1 MiB read", 0, C, 100, 0, NULL);
  tar_case("tar .json member of 1 MiB + 1 refused", 0, C + 1, 100, 1, "over the limit of 1048576");
  tar_case("tar image member of 256 MiB read", 3, 0, M, 0, NULL);
  tar_case("tar image member of 256 MiB + 1 refused", 3, 0, M + 1, 1, "over the limit of 268435456");
}

/* ---- safetensors header, config file ---------------------------------------------- */

static void st_case(const char *label, uint64_t hlen, int want_ok) {
  const char *p = path_of("h.safetensors");
  FILE *f = fopen(p, "wb");
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
  fwrite(len8, 1, 8, f);
  fputs("{}", f);
  static char spaces[1 << 16];
  memset(spaces, ' ', sizeof spaces);
  for (uint64_t left = hlen - 2; left;) {
    size_t k = left < sizeof spaces ? (size_t)left : sizeof spaces;
    fwrite(spaces, 1, k, f);
    left -= k;
  }
  fclose(f);
  cc_st_file *st = NULL;
  clipcl_status s = cc_st_open(p, &st);
  int ok = want_ok ? s == CLIPCL_OK && cc_st_count(st) == 0 : s == CLIPCL_ERR_FORMAT && has("limit");
  th_assert(label, ok, "status %d: %s", s, clipcl_last_error());
  if (st) cc_st_close(st);
  unlink(p);
}

/* A version 2.0 .npy of two floats whose header is hlen bytes (padding). */
static void npy_case(const char *label, uint32_t hlen, int want_ok) {
  const char *p = path_of("a.npy");
  FILE *f = fopen(p, "wb");
  const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0,
                           (unsigned char)hlen, (unsigned char)(hlen >> 8), (unsigned char)(hlen >> 16),
                           (unsigned char)(hlen >> 24)};
  fwrite(pre, 1, 12, f);
  fputs(dict, f);
  for (size_t i = strlen(dict); i < hlen; i++) fputc(i + 1 == hlen ? '\n' : ' ', f);
  float v[2] = {1, 2};
  fwrite(v, 4, 2, f);
  fclose(f);
  float *data = NULL;
  int nd;
  size_t shape[2];
  clipcl_status s = cc_npy_read_f32(p, &data, &nd, shape);
  th_assert(label, want_ok ? s == CLIPCL_OK && nd == 1 && shape[0] == 2 && data[1] == 2
                           : s == CLIPCL_ERR_FORMAT && has("limit"), "status %d: %s", s, clipcl_last_error());
  free(data);
  unlink(p);
}

/* A small weights file whose metadata asks for ViT-L-14: refused from the
 * tensor count, before a buffer for 428 M parameters is made. */
static void forged_config(void) {
  const char *p = path_of("forged.safetensors");
  float v[4] = {1, 2, 3, 4};
  cc_st_out t[2] = {{.name = "visual.class_embedding", .ndim = 1, .shape = {3}, .data = v},
                    {.name = "logit_scale", .ndim = 0, .data = v + 3}};
  char *js = NULL;
  clipcl_config c;
  clipcl_config_get("ViT-L-14", &c);
  js = clipcl_config_to_json(&c);
  cc_st_kv meta[1] = {{"clipcl.config", js}};
  clipcl_status s = cc_st_write(p, t, 2, meta, 1, NULL, NULL);
  free(js);
  clipcl_config got;
  float *host = NULL;
  cc_weights_info wi;
  if (!s) s = cc_weights_read(p, NULL, &got, &host, &wi);
  free(host);
  th_assert("weights file too small for its config refused before allocating",
            s == CLIPCL_ERR_FORMAT && has("holds 4 values") && has("not the 427"), "status %d: %s", s,
            clipcl_last_error());
  unlink(p);
}

static void config_case(const char *label, size_t len, int want_ok) {
  const char *p = path_of("c.json");
  FILE *f = fopen(p, "wb");
  const char *js = "{\"embed_dim\": 4, \"vision_cfg\": {\"image_size\": 2, \"layers\": 1, \"width\": 4, "
                   "\"patch_size\": 1, \"head_width\": 4}, \"text_cfg\": {\"context_length\": 2, "
                   "\"vocab_size\": 3, \"width\": 4, \"heads\": 1, \"layers\": 1}}";
  fputs(js, f);
  for (size_t i = strlen(js); i < len; i++) fputc(i + 1 == len ? '\n' : ' ', f);
  fclose(f);
  clipcl_config c;
  clipcl_status s = clipcl_config_get(p, &c);
  th_assert(label, want_ok ? s == CLIPCL_OK : s == CLIPCL_ERR_FORMAT && has("larger than 64 KiB"), "status %d: %s", s,
            clipcl_last_error());
  unlink(p);
}

int main(void) {
  tu_tmpdir(dir, sizeof dir);
  images();
  manifests();
  tars();
  st_case("safetensors header of 100 MiB read", CC_ST_MAX_HEADER, 1);
  st_case("safetensors header of 100 MiB + 1 refused", (uint64_t)CC_ST_MAX_HEADER + 1, 0);
  npy_case(".npy header of 64 KiB read", CC_NPY_MAX_HEADER, 1);
  npy_case(".npy header of 64 KiB + 1 refused", CC_NPY_MAX_HEADER + 1, 0);
  forged_config();
  config_case("config file of 64 KiB read", 65536, 1);
  config_case("config file of 64 KiB + 1 refused", 65537, 0);
  tu_rmdir(dir);
  return th_finish(NULL);
}
