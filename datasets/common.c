/* common.c: the shared helpers of the data set programs (see common.h).
 * Not here: anything specific to one data set. */
#include "common.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "util/error.h"

/* ---- random numbers ------------------------------------------------------ */
uint64_t ds_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t ds_stream(uint64_t seed, uint64_t split, uint64_t index) {
  /* Three chained draws so that nearby (seed, split, index) triples give
   * unrelated streams. */
  uint64_t s = seed;
  uint64_t a = ds_next(&s);
  s = a ^ (split * 0xD1B54A32D192ED03ull);
  uint64_t b = ds_next(&s);
  s = b ^ (index * 0x8CB92BA72F3D8DD7ull);
  return ds_next(&s);
}

double ds_uniform(uint64_t *state) { return (double)(ds_next(state) >> 11) * (1.0 / 9007199254740992.0); }

double ds_range(uint64_t *state, double lo, double hi) { return lo + (hi - lo) * ds_uniform(state); }

uint32_t ds_below(uint64_t *state, uint32_t n) {
  if (n <= 1) return 0;
  /* Rejection keeps every value equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = ds_next(state);
  while (r >= limit);
  return (uint32_t)(r % n);
}

void ds_sincos(double x, double *s, double *c) {
  const double two_pi = 6.283185307179586476925;
  /* Reduce to [-pi, pi]; the callers' angles are small, so the error of the
   * reduction stays far below what a pixel can show. */
  double k = x / two_pi;
  k = (double)(long long)(k + (k >= 0 ? 0.5 : -0.5));
  x -= k * two_pi;
  /* Taylor series with a fixed number of terms: |x|^29/29! < 4e-18 here. */
  double x2 = x * x, term_s = x, term_c = 1.0, sum_s = x, sum_c = 1.0;
  for (int n = 1; n <= 14; n++) {
    term_s *= -x2 / ((2.0 * n) * (2.0 * n + 1.0));
    term_c *= -x2 / ((2.0 * n - 1.0) * (2.0 * n));
    sum_s += term_s;
    sum_c += term_c;
  }
  *s = sum_s;
  *c = sum_c;
}

/* ---- text buffer ------------------------------------------------------------ */
void ds_buf_csv(cc_buf *b, const char *field, char sep) {
  int quote = 0;
  for (const char *p = field; *p; p++)
    if (*p == sep || *p == '"' || *p == '\n' || *p == '\r') quote = 1;
  if (!quote) {
    cc_buf_str(b, field);
    return;
  }
  cc_buf_add(b, "\"", 1);
  for (const char *p = field; *p; p++) {
    if (*p == '"') cc_buf_add(b, "\"", 1);
    cc_buf_add(b, p, 1);
  }
  cc_buf_add(b, "\"", 1);
}


/* ---- PNG into memory ---------------------------------------------------- */
typedef struct {
  cc_buf *out;
  char msg[200];
} png_sink;

static void png_sink_write(png_structp p, png_bytep data, size_t n) {
  png_sink *s = png_get_io_ptr(p);
  cc_buf_add(s->out, data, n);
  if (s->out->oom) png_error(p, "out of memory");
}

static void png_sink_flush(png_structp p) { (void)p; }

static void png_sink_error(png_structp p, png_const_charp msg) {
  png_sink *s = png_get_error_ptr(p);
  snprintf(s->msg, sizeof s->msg, "%s", msg);
  png_longjmp(p, 1);
}

static void png_sink_warning(png_structp p, png_const_charp msg) {
  (void)p;
  (void)msg;
}

clipcl_status ds_png_encode(const uint8_t *pix, int w, int h, int channels, cc_buf *out, const char *name) {
  if (!pix || w <= 0 || h <= 0 || (channels != 1 && channels != 3))
    return cc_fail(CLIPCL_ERR_ARG, "%s: no image to encode", name);
  out->len = 0;
  out->oom = 0;
  png_sink sink = {out, ""};
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_sink_error, png_sink_warning);
  png_infop info = p ? png_create_info_struct(p) : NULL;
  if (!info) {
    png_destroy_write_struct(&p, NULL);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: cannot create a PNG writer", name);
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_write_struct(&p, &info);
    return cc_fail(out->oom ? CLIPCL_ERR_NOMEM : CLIPCL_ERR_IO, "%s: cannot encode PNG: %s", name, sink.msg);
  }
  png_set_write_fn(p, &sink, png_sink_write, png_sink_flush);
  png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(p, info);
  for (int y = 0; y < h; y++) png_write_row(p, (png_const_bytep)(pix + (size_t)y * w * channels));
  png_write_end(p, NULL);
  png_destroy_write_struct(&p, &info);
  return CLIPCL_OK;
}

/* ---- files -------------------------------------------------------------- */
static atomic_uint tmp_serial;

clipcl_status ds_write_file(const char *path, const void *data, size_t n) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 48);
  if (!tmp) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  snprintf(tmp, plen + 48, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&tmp_serial, 1u));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    free(tmp);
    return s;
  }
  const uint8_t *p = data;
  size_t left = n;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : EIO;
      close(fd);
      unlink(tmp);
      free(tmp);
      return cc_fail(CLIPCL_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    p += w;
    left -= (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int err = errno;
    unlink(tmp);
    free(tmp);
    return cc_fail(CLIPCL_ERR_IO, "%s: cannot write: %s", path, strerror(err));
  }
  free(tmp);
  return CLIPCL_OK;
}


clipcl_status ds_mkdirs(const char *path) {
  size_t n = strlen(path);
  if (n == 0) return cc_fail(CLIPCL_ERR_ARG, "empty directory name");
  char *p = malloc(n + 1);
  if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  memcpy(p, path, n + 1);
  /* Create each prefix in turn; EEXIST on a directory is success. */
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != 0) continue;
    char c = p[i];
    p[i] = 0;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
      free(p);
      return s;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
      clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: exists and is not a directory", p);
      free(p);
      return s;
    }
    p[i] = c;
  }
  free(p);
  return CLIPCL_OK;
}

clipcl_status ds_prepare_out(const char *dir) {
  CC_TRY(ds_mkdirs(dir));
  DIR *d = opendir(dir);
  if (!d) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
  struct dirent *e;
  int used = 0;
  while (!used && (e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) used = 1;
  closedir(d);
  if (used)
    return cc_fail(CLIPCL_ERR_ARG, "%s: output directory is not empty; choose a new one or empty it first", dir);
  return CLIPCL_OK;
}

char *ds_join(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *p = malloc(na + nb + 2);
  if (!p) return NULL;
  memcpy(p, a, na);
  size_t k = na;
  if (na > 0 && a[na - 1] != '/') p[k++] = '/';
  memcpy(p + k, b, nb + 1);
  return p;
}

/* ---- arguments ------------------------------------------------------------- */
int ds_parse_long(const char *s, long lo, long hi, long *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int ds_parse_double(const char *s, double lo, double hi, double *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

int ds_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* ---- parallel for -------------------------------------------------------- */
typedef struct {
  ds_item_fn fn;
  void *ctx;
  int n;
  atomic_int next;
  pthread_mutex_t lock;
  int fail_index; /* lowest failing item, n when none */
  clipcl_status fail_status;
  char fail_msg[1024];
} par_job;

typedef struct {
  par_job *job;
  int thread;
} par_worker;

static void *par_run(void *arg) {
  par_worker *w = arg;
  par_job *j = w->job;
  for (;;) {
    int i = atomic_fetch_add(&j->next, 1);
    if (i >= j->n) break;
    clipcl_status s = j->fn(j->ctx, i, w->thread);
    if (s != CLIPCL_OK) {
      /* Messages are per thread: copy it out before this thread moves on. */
      pthread_mutex_lock(&j->lock);
      if (i < j->fail_index) {
        j->fail_index = i;
        j->fail_status = s;
        snprintf(j->fail_msg, sizeof j->fail_msg, "%s", clipcl_last_error());
      }
      pthread_mutex_unlock(&j->lock);
      /* Stop handing out work; items already taken still finish. */
      atomic_store(&j->next, j->n);
    }
  }
  return NULL;
}

clipcl_status ds_parallel(int n, int threads, ds_item_fn fn, void *ctx) {
  if (n <= 0) return CLIPCL_OK;
  if (threads < 1) threads = 1;
  if (threads > n) threads = n;
  par_job job;
  job.fn = fn;
  job.ctx = ctx;
  job.n = n;
  atomic_init(&job.next, 0);
  pthread_mutex_init(&job.lock, NULL);
  job.fail_index = n;
  job.fail_status = CLIPCL_OK;
  job.fail_msg[0] = 0;
  par_worker workers[256];
  pthread_t tids[256];
  if (threads > 256) threads = 256;
  int started = 0;
  for (int t = 1; t < threads; t++) {
    workers[t].job = &job;
    workers[t].thread = t;
    /* A thread that cannot start just leaves more items to the others. */
    if (pthread_create(&tids[started + 1], NULL, par_run, &workers[t]) != 0) break;
    started++;
  }
  workers[0].job = &job;
  workers[0].thread = 0;
  par_run(&workers[0]);
  for (int t = 1; t <= started; t++) pthread_join(tids[t], NULL);
  pthread_mutex_destroy(&job.lock);
  if (job.fail_status != CLIPCL_OK) return cc_fail(job.fail_status, "%s", job.fail_msg);
  return CLIPCL_OK;
}

/* ---- tar shards ------------------------------------------------------------ */
struct ds_tar {
  struct archive *a;
  char *path, *tmp;
  int fd;
};

static void tar_free(ds_tar *t) {
  if (t->a) archive_write_free(t->a);
  if (t->fd >= 0) close(t->fd);
  free(t->path);
  free(t->tmp);
  free(t);
}

void ds_tar_abort(ds_tar *t) {
  if (!t) return;
  if (t->tmp) unlink(t->tmp);
  tar_free(t);
}

clipcl_status ds_tar_open(const char *path, ds_tar **out) {
  *out = NULL;
  ds_tar *t = calloc(1, sizeof *t);
  if (!t) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  t->fd = -1;
  size_t plen = strlen(path);
  t->path = malloc(plen + 1);
  t->tmp = malloc(plen + 48);
  if (!t->path || !t->tmp) {
    free(t->path);
    free(t->tmp);
    free(t);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  }
  memcpy(t->path, path, plen + 1);
  snprintf(t->tmp, plen + 48, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&tmp_serial, 1u));
  t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (t->fd < 0) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    free(t->tmp);
    t->tmp = NULL;
    tar_free(t);
    return s;
  }
  t->a = archive_write_new();
  if (!t->a || archive_write_set_format_ustar(t->a) != ARCHIVE_OK ||
      archive_write_add_filter_none(t->a) != ARCHIVE_OK || archive_write_open_fd(t->a, t->fd) != ARCHIVE_OK) {
    clipcl_status s =
        cc_fail(CLIPCL_ERR_IO, "%s: cannot start the tar: %s", path, t->a ? archive_error_string(t->a) : "no memory");
    ds_tar_abort(t);
    return s;
  }
  *out = t;
  return CLIPCL_OK;
}

clipcl_status ds_tar_add(ds_tar *t, const char *name, const void *data, size_t n) {
  struct archive_entry *e = archive_entry_new();
  if (!e) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", t->path);
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, (la_int64_t)n);
  archive_entry_set_mtime(e, 0, 0);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  clipcl_status s = CLIPCL_OK;
  if (archive_write_header(t->a, e) != ARCHIVE_OK)
    s = cc_fail(CLIPCL_ERR_IO, "%s: cannot add %s: %s", t->path, name, archive_error_string(t->a));
  else if (n > 0 && archive_write_data(t->a, data, n) != (la_ssize_t)n)
    s = cc_fail(CLIPCL_ERR_IO, "%s: cannot write %s: %s", t->path, name, archive_error_string(t->a));
  archive_entry_free(e);
  return s;
}

clipcl_status ds_tar_close(ds_tar *t) {
  if (archive_write_close(t->a) != ARCHIVE_OK) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot finish the tar: %s", t->path, archive_error_string(t->a));
    ds_tar_abort(t);
    return s;
  }
  if (fsync(t->fd) != 0 || close(t->fd) != 0) {
    int err = errno;
    t->fd = -1;
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot write: %s", t->path, strerror(err));
    ds_tar_abort(t);
    return s;
  }
  t->fd = -1;
  if (rename(t->tmp, t->path) != 0) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot rename the temporary: %s", t->path, strerror(errno));
    ds_tar_abort(t);
    return s;
  }
  free(t->tmp);
  t->tmp = NULL;
  tar_free(t);
  return CLIPCL_OK;
}
