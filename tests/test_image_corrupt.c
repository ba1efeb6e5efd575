/* test_image_corrupt.c: decodes thousands of damaged copies of the fixture
 * images (random byte changes, truncations, inserted junk; seeded, so every
 * run sees the same files) and checks that each one either decodes to a
 * plausible image or is refused with CLIPCL_ERR_FORMAT / _UNSUPPORTED and a
 * one-line message naming it: never a crash, a hang or an exit(). Most useful
 * under -DCLIPCL_ASAN=ON or valgrind, which also catch leaks on the
 * longjmp error paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define DIR "data/images/"

static uint8_t *read_file(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  *len = fread(b, 1, (size_t)(n > 0 ? n : 0), f);
  fclose(f);
  return b;
}

static size_t pick(size_t n) { return n ? (size_t)(th_uniform() * n) % n : 0; }

int main(void) {
  FILE *m = fopen(DIR "manifest.txt", "r");
  if (!m) {
    fprintf(stderr, "cannot open " DIR "manifest.txt (run from tests/)\n");
    return 1;
  }
  th_seed(12345);
  char line[512], file[128];
  int nfiles = 0;
  long decoded = 0, refused = 0, bad_status = 0, bad_msg = 0, bad_image = 0;
  while (fgets(line, sizeof line, m)) {
    int w, h;
    if (sscanf(line, "decode %127s %d %d", file, &w, &h) != 3 && sscanf(line, "decodehash %127s %d %d", file, &w, &h) != 3)
      continue;
    char path[256];
    snprintf(path, sizeof path, DIR "%s", file);
    size_t len;
    uint8_t *orig = read_file(path, &len);
    if (!orig || len < 16) {
      th_assert("read fixture", 0, "%s", path);
      free(orig);
      continue;
    }
    nfiles++;
    /* large files get fewer mutants so the test stays quick */
    int mutants = len > 60000 ? 40 : 400;
    uint8_t *buf = malloc(len + 64);
    for (int k = 0; k < mutants; k++) {
      memcpy(buf, orig, len);
      size_t n = len;
      int kind = k % 4;
      if (kind == 0) { /* a few random bytes */
        int edits = 1 + (int)pick(4);
        for (int e = 0; e < edits; e++) buf[pick(n)] = (uint8_t)pick(256);
      } else if (kind == 1) { /* truncation */
        n = pick(len);
      } else if (kind == 2) { /* bytes in the first 100 (headers) */
        buf[pick(n < 100 ? n : 100)] ^= (uint8_t)(1 + pick(255));
      } else { /* junk inserted in the middle */
        size_t at = pick(n), extra = 1 + pick(64);
        memmove(buf + at + extra, buf + at, n - at);
        for (size_t i = 0; i < extra; i++) buf[at + i] = (uint8_t)pick(256);
        n += extra;
      }
      char name[160];
      snprintf(name, sizeof name, "%s#%d", file, k);
      clipcl_image img;
      clipcl_status st = clipcl_image_decode(buf, n, name, &img);
      if (st == CLIPCL_OK) {
        decoded++;
        if (!img.rgb || img.w <= 0 || img.h <= 0 || (uint64_t)img.w * img.h > ((uint64_t)1 << 28)) bad_image++;
        clipcl_image_free(&img);
      } else {
        refused++;
        const char *msg = clipcl_last_error();
        if (st != CLIPCL_ERR_FORMAT && st != CLIPCL_ERR_UNSUPPORTED) {
          if (bad_status++ < 5) printf("     %s: status %d: %s\n", name, st, msg);
        }
        if (!strstr(msg, name) || strchr(msg, '\n') || img.rgb) {
          if (bad_msg++ < 5) printf("     %s: bad message \"%s\"\n", name, msg);
        }
      }
    }
    free(buf);
    free(orig);
  }
  fclose(m);
  printf("     %d files, %ld mutants decoded, %ld refused\n", nfiles, decoded, refused);
  th_assert("fixtures found", nfiles >= 30, "%d files", nfiles);
  th_assert("refusals are FORMAT or UNSUPPORTED", bad_status == 0, "%ld others", bad_status);
  th_assert("refusal messages name the input, one line", bad_msg == 0, "%ld bad", bad_msg);
  th_assert("decoded mutants are plausible images", bad_image == 0, "%ld bad", bad_image);
  th_assert("both outcomes seen", decoded > 100 && refused > 1000, "%ld decoded, %ld refused", decoded, refused);
  return th_finish(NULL);
}
