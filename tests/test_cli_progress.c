/* test_cli_progress.c: the progress line of the long commands
 * (src/cli/progress.c, compiled in here: it is part of the command, not the
 * library) on a made-up clock: the first update of a stage (the batch that
 * compiles the kernels) shows only the count and starts the clock, so the
 * rate and ETA that follow count only the later batches; a new stage or a
 * second pass of one starts over; no ETA without a total or at the end. */
#include <string.h>

#include "cli/progress.c"
#include "harness.h"

static void expect(cli_progress *p, const char *stage, int64_t done, int64_t total, double t, const char *want) {
  char line[160];
  int n = cli_progress_format(p, stage, done, total, t, line, sizeof line);
  char name[96];
  snprintf(name, sizeof name, "%s %lld/%lld at t=%g", stage, (long long)done, (long long)total, t);
  th_assert(name, n == (int)strlen(want) && !strcmp(line, want), "got \"%s\", want \"%s\"", line, want);
}

int main(void) {
  cli_progress p;
  cli_progress_init(&p, 1);
  /* 100 s of kernel compilation in the first batch of 64 */
  expect(&p, "images", 64, 1000, 100.0, "images 64/1000");
  /* then 64 images per second: 872 left -> 13.6 s (hand-computed values) */
  expect(&p, "images", 128, 1000, 101.0, "images 128/1000  64.0/s  ETA 14 s");
  expect(&p, "images", 640, 1000, 109.0, "images 640/1000  64.0/s  ETA 6 s");
  expect(&p, "images", 1000, 1000, 114.625, "images 1000/1000  64.0/s");
  /* a new stage has its own warm-up */
  expect(&p, "texts", 256, 100000, 200.0, "texts 256/100000");
  expect(&p, "texts", 512, 100000, 300.0, "texts 512/100000  2.56/s  ETA 10 h 47 min");
  /* 512 / 101 s = 5.069/s; 99232 left -> 19575 s */
  expect(&p, "texts", 768, 100000, 301.0, "texts 768/100000  5.07/s  ETA 5 h 26 min");
  /* a second pass of the same stage (probe: train, then test images) */
  expect(&p, "images", 10, 20, 400.0, "images 10/20");
  expect(&p, "images", 5, 20, 401.0, "images 5/20");
  expect(&p, "images", 15, 20, 403.0, "images 15/20  5.00/s  ETA 1 s");
  /* unknown total (tar shards): count and rate only */
  cli_progress_init(&p, 1);
  expect(&p, "images", 64, -1, 0.0, "images 64");
  expect(&p, "images", 6464, -1, 50.0, "images 6464  128.0/s");
  /* 6999936 / 54737.5 s = 127.88/s; 1e6 left / 127.88 = 7820 s */
  expect(&p, "images", 7000000, 8000000, 54737.5, "images 7000000/8000000  127.9/s  ETA 2 h 10 min");
  /* disabled: nothing is drawn */
  cli_progress_init(&p, 0);
  cli_progress_update(&p, "images", 1, 2);
  th_assert("disabled progress draws nothing", !p.shown && !p.started, NULL);
  return th_finish(NULL);
}
