/* fuzz_common.c: scratch files and the error contract (see fuzz.h). */
#define _GNU_SOURCE
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[512];

static void remove_dir(void) {
  if (!dir[0]) return;
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
      }
    closedir(d);
  }
  rmdir(dir);
}

const char *fz_dir(void) {
  if (dir[0]) return dir;
  /* tmpfs when there is one: files are rewritten on every run */
  const char *base = getenv("CLIPCL_FUZZ_TMP");
  if (!base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
  if (!base) base = "/tmp";
  snprintf(dir, sizeof dir, "%s/clipcl-fuzz-XXXXXX", base);
  if (!mkdtemp(dir)) {
    fprintf(stderr, "fuzz: cannot create a scratch directory in %s: %s\n", base, strerror(errno));
    abort();
  }
  atexit(remove_dir);
  return dir;
}

const char *fz_write(int slot, const char *name, const uint8_t *data, size_t n) {
  static char paths[4][1024];
  char *p = paths[slot & 3];
  snprintf(p, sizeof paths[0], "%s/%s", fz_dir(), name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "fuzz: cannot write %s: %s\n", p, strerror(errno));
    abort();
  }
  for (size_t off = 0; off < n;) {
    ssize_t w = write(fd, data + off, n - off);
    if (w <= 0) {
      fprintf(stderr, "fuzz: write to %s failed\n", p);
      abort();
    }
    off += (size_t)w;
  }
  close(fd);
  return p;
}

void fz_check(clipcl_status st, const char *what) {
  if (st == CLIPCL_OK) return;
  const char *msg = clipcl_last_error();
  if (st < CLIPCL_ERR_NUMERIC || st > CLIPCL_ERR_ARG) {
    fprintf(stderr, "fuzz: %s returned %d, not a clipcl_status\n", what, (int)st);
    abort();
  }
  if (!msg || !*msg || strchr(msg, '\n')) {
    fprintf(stderr, "fuzz: %s failed (%s) with a message that is not one line: \"%s\"\n", what,
            clipcl_status_name(st), msg ? msg : "(null)");
    abort();
  }
}

char *fz_strdup(const uint8_t *data, size_t n) {
  char *s = malloc(n + 1);
  if (!s) abort();
  if (n) memcpy(s, data, n);
  s[n] = 0;
  return s;
}

void fz_split(const uint8_t *data, size_t n, const char *sep, const uint8_t **a, size_t *an, const uint8_t **b,
              size_t *bn) {
  size_t k = strlen(sep);
  const uint8_t *hit = k && n >= k ? memmem(data, n, sep, k) : NULL;
  *a = data;
  if (!hit) {
    *an = n;
    *b = data + n;
    *bn = 0;
    return;
  }
  *an = (size_t)(hit - data);
  *b = hit + k;
  *bn = n - *an - k;
}
