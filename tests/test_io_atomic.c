/* test_io_atomic.c: atomic file replacement (src/io/atomic.c). A write that
 * fails at any point (injected after 0, 1, half, all bytes, or at the fsync)
 * leaves the old file byte-identical and no temporary behind; a successful
 * one replaces the file and keeps its permission bits; bad targets fail with
 * one-line messages naming the path. Exact comparisons throughout. */
#include <sys/stat.h>

#include "io/atomic.h"
#include "io_testutil.h"

static void fill_pattern(unsigned char *b, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

/* Streams data in 300-byte pieces, as the format writers do. */
static clipcl_status write_chunked(const char *path, const unsigned char *data, size_t n) {
  cc_atomic *a;
  CC_TRY(cc_atomic_begin(path, &a));
  for (size_t i = 0; i < n; i += 300) {
    clipcl_status s = cc_atomic_write(a, data + i, n - i < 300 ? n - i : 300);
    if (s != CLIPCL_OK) {
      /* sticky: a later write and the commit report the same failure */
      clipcl_status s2 = cc_atomic_write(a, data, 1);
      th_assert("error is sticky", s2 == s, "second write gave %d", (int)s2);
      return cc_atomic_commit(a);
    }
  }
  return cc_atomic_commit(a);
}

int main(void) {
  char dir[512], path[600], name[128];
  tu_tmpdir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/keep.bin", dir);

  enum { NA = 1000, NB = 2000 };
  unsigned char a[NA], b[NB];
  fill_pattern(a, NA, 1);
  fill_pattern(b, NB, 2);

  TH_OK(cc_atomic_write_file(path, a, NA));
  th_assert("first write", tu_same_file(path, a, NA), NULL);
  th_assert("no temporary left", tu_count_entries(dir) == 1, "%d entries", tu_count_entries(dir));

  /* Failures at every stage leave the old file exactly as it was. */
  const int64_t after[] = {0, 1, 8, 300, 1000, 1999, 2000, 100000};
  for (size_t i = 0; i < sizeof after / sizeof *after; i++) {
    cc_atomic_inject_failure(after[i]);
    clipcl_status s = write_chunked(path, b, NB);
    snprintf(name, sizeof name, "fail after %lld bytes", (long long)after[i]);
    tu_check_fail(name, s, CLIPCL_ERR_IO, path, after[i] >= NB ? "fsync" : "injected");
    snprintf(name, sizeof name, "old file intact (fail at %lld)", (long long)after[i]);
    th_assert(name, tu_same_file(path, a, NA), NULL);
    snprintf(name, sizeof name, "temporary removed (fail at %lld)", (long long)after[i]);
    th_assert(name, tu_count_entries(dir) == 1, "%d entries", tu_count_entries(dir));
  }

  /* The hook is one-shot: the next write goes through, and keeps the mode. */
  chmod(path, 0640);
  TH_OK(write_chunked(path, b, NB));
  th_assert("replaced after the failures", tu_same_file(path, b, NB), NULL);
  struct stat st;
  stat(path, &st);
  th_assert("permission bits kept", (st.st_mode & 07777) == 0640, "mode %o", (unsigned)(st.st_mode & 07777));

  /* An explicit abort leaves the file alone. */
  cc_atomic *h;
  TH_OK(cc_atomic_begin(path, &h));
  TH_OK(cc_atomic_write(h, a, 10));
  th_assert("size counts bytes", cc_atomic_size(h) == 10, "%llu", (unsigned long long)cc_atomic_size(h));
  cc_atomic_abort(h);
  th_assert("abort keeps the old file", tu_same_file(path, b, NB), NULL);
  th_assert("abort removes the temporary", tu_count_entries(dir) == 1, NULL);

  /* A failed first write creates nothing. */
  char fresh[600];
  snprintf(fresh, sizeof fresh, "%s/new.bin", dir);
  cc_atomic_inject_failure(5);
  tu_check_fail("fail on a new file", cc_atomic_write_file(fresh, a, NA), CLIPCL_ERR_IO, fresh, NULL);
  th_assert("no new file after failure", access(fresh, F_OK) != 0, NULL);
  th_assert("no temporary after failure", tu_count_entries(dir) == 1, NULL);

  /* Empty files are files too. */
  TH_OK(cc_atomic_write_file(fresh, NULL, 0));
  th_assert("empty file", tu_same_file(fresh, "", 0), NULL);
  unlink(fresh);

  char bad[700];
  snprintf(bad, sizeof bad, "%s/no/such/dir/x.bin", dir);
  tu_check_fail("missing directory", cc_atomic_write_file(bad, a, NA), CLIPCL_ERR_IO, bad, "temporary");
  tu_check_fail("target is a directory", cc_atomic_write_file(dir, a, NA), CLIPCL_ERR_IO, dir, "directory");

  char fifo[600];
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  if (mkfifo(fifo, 0600) == 0) {
    tu_check_fail("target is a FIFO", cc_atomic_write_file(fifo, a, NA), CLIPCL_ERR_IO, fifo, "not a regular file");
    struct stat fs;
    th_assert("FIFO left in place", stat(fifo, &fs) == 0 && S_ISFIFO(fs.st_mode), NULL);
    unlink(fifo);
  }

  /* A read-only directory stops the temporary; root ignores the bits, and
   * the injected failures above cover that case. */
  if (geteuid() != 0) {
    chmod(dir, 0555);
    tu_check_fail("read-only directory", cc_atomic_write_file(path, a, NA), CLIPCL_ERR_IO, path, NULL);
    chmod(dir, 0755);
    th_assert("read-only directory keeps the file", tu_same_file(path, b, NB), NULL);
  } else {
    printf("skip read-only directory check (running as root)\n");
  }

  tu_rmdir(dir);
  return th_finish(NULL);
}
