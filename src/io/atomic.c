/* atomic.c: temporary file + fsync + rename + directory fsync (see atomic.h).
 * Not here: any file format. */
#include "io/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

struct cc_atomic {
  char *path, *tmp, *dir;
  FILE *fp;
  int fd;
  uint64_t written;
  int64_t fail_after; /* injected failure, -1 when none */
  int kill;           /* the injected failure is SIGKILL (crash tests) */
  clipcl_status err;  /* sticky first error */
};

static _Thread_local int64_t inject_after = -1;
static _Thread_local int inject_kill = 0;
static atomic_uint tmp_counter;

void cc_atomic_inject_failure(int64_t after_bytes) {
  inject_after = after_bytes < 0 ? -1 : after_bytes;
  inject_kill = 0;
}

void cc_atomic_inject_kill(int64_t after_bytes) {
  cc_atomic_inject_failure(after_bytes);
  inject_kill = after_bytes >= 0;
}

uint64_t cc_atomic_size(const cc_atomic *a) { return a ? a->written : 0; }
const char *cc_atomic_path(const cc_atomic *a) { return a ? a->path : ""; }

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Directory part of path ("." when there is none), for the temp name and the
 * directory fsync. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return dup_str(".");
  if (slash == path) return dup_str("/");
  size_t n = (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = 0;
  return d;
}

static void free_atomic(cc_atomic *a) {
  free(a->path);
  free(a->tmp);
  free(a->dir);
  free(a);
}

clipcl_status cc_atomic_begin(const char *path, cc_atomic **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "cc_atomic_begin: no output handle");
  *out = NULL;
  if (!path || !*path) return cc_fail(CLIPCL_ERR_ARG, "cc_atomic_begin: empty path");
  size_t plen = strlen(path);
  if (path[plen - 1] == '/') return cc_fail(CLIPCL_ERR_ARG, "%s: names a directory, not a file", path);

  struct stat st;
  mode_t mode = 0666;
  int keep_mode = 0;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return cc_fail(CLIPCL_ERR_IO, "%s: is a directory", path);
    /* Renaming over a device or FIFO (/dev/null, /dev/stdout) would replace
     * the node itself, not write to it. */
    if (!S_ISREG(st.st_mode))
      return cc_fail(CLIPCL_ERR_IO, "%s: exists and is not a regular file; not replacing it", path);
    mode = st.st_mode & 07777;
    keep_mode = 1;
  }

  cc_atomic *a = calloc(1, sizeof *a);
  if (!a) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  a->fd = -1;
  a->fail_after = inject_after;
  a->kill = inject_kill;
  inject_after = -1;
  inject_kill = 0;
  a->path = dup_str(path);
  a->dir = dir_of(path);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  /* "<dir>/.<base>.tmp-<pid>-<n>": hidden, and unique per process and call. */
  size_t cap = plen + 64;
  a->tmp = malloc(cap);
  if (!a->path || !a->dir || !a->tmp) {
    free_atomic(a);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  }
  int fd = -1, err = 0;
  for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
    unsigned n = atomic_fetch_add(&tmp_counter, 1u);
    snprintf(a->tmp, cap, "%.*s.%s.tmp-%ld-%u", (int)(base - path), path, base, (long)getpid(), n);
    fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    err = errno;
    if (fd < 0 && err != EEXIST) break;
  }
  if (fd < 0) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot create a temporary file in %s: %s", path, a->dir,
                              strerror(err));
    free_atomic(a);
    return s;
  }
  /* open() applied the umask; an existing file's exact bits carry over. */
  if (keep_mode) (void)fchmod(fd, mode);
  a->fd = fd;
  a->fp = fdopen(fd, "wb");
  if (!a->fp) {
    err = errno;
    close(fd);
    unlink(a->tmp);
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: fdopen failed: %s", path, strerror(err));
    free_atomic(a);
    return s;
  }
  *out = a;
  return CLIPCL_OK;
}

static clipcl_status fail_sticky(cc_atomic *a, clipcl_status s) {
  if (a->err == CLIPCL_OK) a->err = s;
  return s;
}

clipcl_status cc_atomic_write(cc_atomic *a, const void *data, size_t n) {
  if (!a) return cc_fail(CLIPCL_ERR_ARG, "cc_atomic_write: no handle");
  if (a->err != CLIPCL_OK) return a->err;
  if (n == 0) return CLIPCL_OK;
  if (!data) return fail_sticky(a, cc_fail(CLIPCL_ERR_ARG, "%s: write of %zu bytes from NULL", a->path, n));
  size_t take = n;
  int injected = 0;
  if (a->fail_after >= 0 && a->written + n > (uint64_t)a->fail_after) {
    take = (size_t)((uint64_t)a->fail_after - a->written);
    injected = 1;
  }
  if (take && fwrite(data, 1, take, a->fp) != take) {
    int err = errno;
    return fail_sticky(a, cc_fail(CLIPCL_ERR_IO, "%s: write failed after %llu bytes: %s", a->path,
                                  (unsigned long long)a->written, strerror(err)));
  }
  a->written += take;
  if (injected && a->kill) {
    fflush(a->fp); /* the partial temp file is what a crash leaves behind */
    raise(SIGKILL);
  }
  if (injected)
    return fail_sticky(a, cc_fail(CLIPCL_ERR_IO, "%s: write failed after %llu bytes: injected failure",
                                  a->path, (unsigned long long)a->written));
  return CLIPCL_OK;
}

void cc_atomic_abort(cc_atomic *a) {
  if (!a) return;
  if (a->fp) fclose(a->fp);
  else if (a->fd >= 0) close(a->fd);
  unlink(a->tmp);
  free_atomic(a);
}

clipcl_status cc_atomic_commit(cc_atomic *a) {
  if (!a) return cc_fail(CLIPCL_ERR_ARG, "cc_atomic_commit: no handle");
  clipcl_status s = a->err;
  if (s != CLIPCL_OK) {
    /* keep the first message, already set */
    cc_atomic_abort(a);
    return s;
  }
  const char *stage = NULL;
  int err = 0;
  if (fflush(a->fp) != 0) stage = "flush", err = errno;
  else if (a->fail_after >= 0) stage = "fsync", err = 0;
  else if (fsync(a->fd) != 0) stage = "fsync", err = errno;
  if (stage) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: %s failed: %s", a->path, stage, err ? strerror(err) : "injected failure");
    cc_atomic_abort(a);
    return s;
  }
  FILE *fp = a->fp;
  a->fp = NULL;
  a->fd = -1;
  if (fclose(fp) != 0) {
    err = errno;
    s = cc_fail(CLIPCL_ERR_IO, "%s: close failed: %s", a->path, strerror(err));
    cc_atomic_abort(a);
    return s;
  }
  if (rename(a->tmp, a->path) != 0) {
    err = errno;
    s = cc_fail(CLIPCL_ERR_IO, "%s: cannot rename the temporary over it: %s", a->path, strerror(err));
    cc_atomic_abort(a);
    return s;
  }
  /* The rename is only durable once the directory entry is on disk. Some
   * file systems cannot fsync a directory (EINVAL): nothing more to do there. */
  int dfd = open(a->dir, O_RDONLY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
      err = errno;
      s = cc_fail(CLIPCL_ERR_IO, "%s: written and renamed, but syncing directory %s failed: %s", a->path,
                  a->dir, strerror(err));
    }
    close(dfd);
  }
  free_atomic(a);
  return s;
}

int cc_atomic_remove_stale(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int removed = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *t = e->d_name[0] == '.' ? strstr(e->d_name, ".tmp-") : NULL;
    long pid;
    unsigned n;
    char end;
    if (!t || t == e->d_name || sscanf(t, ".tmp-%ld-%u%c", &pid, &n, &end) != 2 || pid <= 0) continue;
    /* a pid that exists (ours included) may still be writing */
    if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(len);
    if (!p) break;
    snprintf(p, len, "%s/%s", dir, e->d_name);
    if (unlink(p) == 0) removed++;
    free(p);
  }
  closedir(d);
  return removed;
}

clipcl_status cc_atomic_write_file(const char *path, const void *data, size_t n) {
  cc_atomic *a;
  CC_TRY(cc_atomic_begin(path, &a));
  clipcl_status s = cc_atomic_write(a, data, n);
  if (s != CLIPCL_OK) {
    cc_atomic_abort(a);
    return s;
  }
  return cc_atomic_commit(a);
}

clipcl_status cc_buf_save(const cc_buf *b, const char *path) {
  if (b->oom) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory while formatting", path);
  return cc_atomic_write_file(path, b->p ? b->p : "", b->len);
}

clipcl_status cc_save_line(const char *path, const char *text) {
  cc_buf b = {0};
  cc_buf_str(&b, text);
  cc_buf_str(&b, "\n");
  clipcl_status st = cc_buf_save(&b, path);
  cc_buf_free(&b);
  return st;
}
