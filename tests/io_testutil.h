/* io_testutil.h: small helpers shared by the io tests (scratch directories,
 * whole-file reads and writes, checks on error messages). Header-only so that
 * the test glob does not turn it into a test of its own. */
#ifndef IO_TESTUTIL_H
#define IO_TESTUTIL_H
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* A fresh directory under $TMPDIR (or /tmp); path in buf. */
static inline const char *tu_tmpdir(char *buf, size_t cap) {
  const char *t = getenv("TMPDIR");
  snprintf(buf, cap, "%s/clipcl-io-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(buf)) {
    perror("mkdtemp");
    exit(1);
  }
  return buf;
}

/* Removes the plain files in dir, then dir. */
static inline void tu_rmdir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* Number of entries in dir other than . and .. */
static inline int tu_count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* Whole file into a malloc'd buffer (NULL if it cannot be read). */
static inline unsigned char *tu_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) *len = (size_t)n;
  return b;
}

static inline void tu_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* 1 if path holds exactly data[0..n). */
static inline int tu_same_file(const char *path, const void *data, size_t n) {
  size_t len = 0;
  unsigned char *b = tu_read(path, &len);
  int same = b && len == n && memcmp(b, data, n) == 0;
  free(b);
  return same;
}

/* A failed call must give `want`, and one line that names `path` and
 * contains `word` (when not NULL). */
static inline int tu_check_fail(const char *name, clipcl_status got, clipcl_status want, const char *path,
                                const char *word) {
  const char *m = clipcl_last_error();
  int ok = got == want && m[0] && !strchr(m, '\n') && (!path || strstr(m, path)) && (!word || strstr(m, word));
  if (ok) return th_assert(name, 1, "\"%s\"", m);
  return th_assert(name, 0, "status %d (%s), want %d; message \"%s\"; want one line naming \"%s\" and saying \"%s\"",
                   (int)got, clipcl_status_name(got), (int)want, m, path ? path : "", word ? word : "");
}
#endif
