/* data_testutil.h: helpers shared by the data tests (test_data_*.c): scratch
 * directories, small files, seeded PNG images written with the library's own
 * PNG writer, tar shards written with libarchive, and a loader run that
 * records every batch so runs can be compared byte for byte. Header-only so
 * the test glob does not make it a test of its own. */
#ifndef DATA_TESTUTIL_H
#define DATA_TESTUTIL_H
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static inline void dt_die(const char *what) {
  fprintf(stderr, "test setup failed: %s (%s)\n", what, clipcl_last_error());
  exit(1);
}

static inline char *dt_tmpdir(char *buf, size_t cap) {
  const char *t = getenv("TMPDIR");
  snprintf(buf, cap, "%s/clipcl-data-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(buf)) dt_die("mkdtemp");
  return buf;
}

/* Removes a directory tree (no symlink is followed: lstat). */
static inline void dt_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) dt_die("malloc");
        snprintf(p, n, "%s/%s", path, e->d_name);
        dt_rm_rf(p);
        free(p);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static inline void dt_mkdir(const char *path) {
  if (mkdir(path, 0755) != 0) dt_die(path);
}

static inline void dt_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) dt_die(path);
}

static inline void dt_write_str(const char *path, const char *s) { dt_write(path, s, strlen(s)); }

static inline unsigned char *dt_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) dt_die(path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) dt_die(path);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* A w x h RGB image of seeded noise over a gradient, so crops differ. */
static inline void dt_make_image(clipcl_image *img, int w, int h, uint32_t seed) {
  img->w = w;
  img->h = h;
  img->rgb = malloc((size_t)w * h * 3);
  if (!img->rgb) dt_die("malloc");
  uint32_t x = seed * 2654435761u + 12345u;
  for (int i = 0; i < w * h; i++) {
    int r = i / w, c = i % w;
    for (int k = 0; k < 3; k++) {
      x = x * 1664525u + 1013904223u;
      int v = (c * 255 / (w > 1 ? w - 1 : 1) + r * 97 + k * 61 + (int)(x >> 27)) & 255;
      img->rgb[(size_t)i * 3 + k] = (uint8_t)v;
    }
  }
}

static inline void dt_png(const char *path, int w, int h, uint32_t seed) {
  clipcl_image img;
  dt_make_image(&img, w, h, seed);
  if (clipcl_image_save_png(path, &img) != CLIPCL_OK) dt_die(path);
  clipcl_image_free(&img);
}

/* ---- tar shards ----------------------------------------------------------- */
static inline struct archive *dt_tar_begin(const char *path, int gzip) {
  struct archive *a = archive_write_new();
  if (!a) dt_die("archive_write_new");
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  if (archive_write_open_filename(a, path) != ARCHIVE_OK) dt_die(archive_error_string(a));
  return a;
}

static inline void dt_tar_add(struct archive *a, const char *name, const void *data, size_t n) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_size(e, (la_int64_t)n);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  if (archive_write_header(a, e) != ARCHIVE_OK) dt_die(archive_error_string(a));
  if (n && archive_write_data(a, data, n) != (la_ssize_t)n) dt_die(archive_error_string(a));
  archive_entry_free(e);
}

static inline void dt_tar_add_str(struct archive *a, const char *name, const char *s) {
  dt_tar_add(a, name, s, strlen(s));
}

static inline void dt_tar_add_dir(struct archive *a, const char *name) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFDIR);
  archive_entry_set_perm(e, 0755);
  if (archive_write_header(a, e) != ARCHIVE_OK) dt_die(archive_error_string(a));
  archive_entry_free(e);
}

static inline void dt_tar_end(struct archive *a) {
  if (archive_write_close(a) != ARCHIVE_OK) dt_die(archive_error_string(a));
  archive_write_free(a);
}

/* ---- recording loader runs ------------------------------------------------ */
typedef struct {
  int nb;                /* batches recorded */
  int *n;                /* samples in each */
  int64_t *epoch;
  float *images;         /* nb * B * plane */
  int32_t *ids, *labels;
  int64_t *rows;
  size_t plane;
  int B, ctx;
} dt_run;

/* Calls next() `batches` times (n = 0 results included) and records all. */
static inline clipcl_status dt_record(clipcl_loader *l, int B, int S, int ctx, int batches, dt_run *r) {
  memset(r, 0, sizeof *r);
  r->plane = (size_t)3 * S * S;
  r->B = B;
  r->ctx = ctx;
  r->n = calloc((size_t)batches, sizeof *r->n);
  r->epoch = calloc((size_t)batches, sizeof *r->epoch);
  r->images = calloc((size_t)batches * B * r->plane, sizeof(float));
  r->ids = calloc((size_t)batches * B * ctx, sizeof(int32_t));
  r->labels = calloc((size_t)batches * B, sizeof(int32_t));
  r->rows = calloc((size_t)batches * B, sizeof(int64_t));
  if (!r->n || !r->epoch || !r->images || !r->ids || !r->labels || !r->rows) dt_die("malloc");
  for (int i = 0; i < batches; i++) {
    clipcl_batch b = {r->images + (size_t)i * B * r->plane, r->ids + (size_t)i * B * ctx,
                      r->labels + (size_t)i * B, r->rows + (size_t)i * B, 0, 0};
    clipcl_status s = clipcl_loader_next(l, &b);
    if (s != CLIPCL_OK) return s;
    r->n[i] = b.n;
    r->epoch[i] = b.epoch;
    r->nb++;
  }
  return CLIPCL_OK;
}

static inline void dt_run_free(dt_run *r) {
  free(r->n), free(r->epoch), free(r->images), free(r->ids), free(r->labels), free(r->rows);
  memset(r, 0, sizeof *r);
}

/* Byte-identical runs (counts, epochs, images, ids, labels, rows). */
static inline int dt_same_runs(const char *name, const dt_run *a, const dt_run *b) {
  int ok = a->nb == b->nb && !memcmp(a->n, b->n, (size_t)a->nb * sizeof *a->n) &&
           !memcmp(a->epoch, b->epoch, (size_t)a->nb * sizeof *a->epoch);
  size_t nb = (size_t)a->nb, B = (size_t)a->B;
  ok = ok && !memcmp(a->images, b->images, nb * B * a->plane * sizeof(float));
  ok = ok && !memcmp(a->ids, b->ids, nb * B * (size_t)a->ctx * sizeof(int32_t));
  ok = ok && !memcmp(a->labels, b->labels, nb * B * sizeof(int32_t));
  ok = ok && !memcmp(a->rows, b->rows, nb * B * sizeof(int64_t));
  return th_assert(name, ok, "%d batches", a->nb);
}

/* Starts a loader with the usual small test options. */
static inline clipcl_loader *dt_loader(clipcl_dataset *ds, clipcl_loader_options *o) {
  clipcl_loader *l = NULL;
  if (clipcl_loader_create(ds, o, &l) != CLIPCL_OK) dt_die("loader create");
  return l;
}
#endif
