/* cmd_tune.c: `clipcl tune`: the full (or --quick) search for the CPU GEMM
 * tile parameters of the present device (src/ops/gemm_tune.c), stored in the
 * tune file where later runs find it. A device without a row is also tuned
 * automatically, more briefly, on its first GEMM; this command is the
 * thorough version. Devices served by CLBlast are left to CLBlast's tuners. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/runtime.h"
#include "cli/cli.h"
#include "ops/gemm_params.h"
#include "ops/ops.h"

static void print_line(void *user, const char *line) {
  (void)user;
  printf("%s\n", line);
  fflush(stdout);
}

int cmd_tune(int argc, char **argv) {
  const char *spec = NULL;
  int quick = 0, dry = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--device") && i + 1 < argc) spec = argv[++i];
    else if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--dry-run")) dry = 1;
    else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl tune [--device D] [--quick] [--dry-run]\n"
             "Searches GEMM tile parameters for the device's CPU GEMM kernels and saves\n"
             "the best to the tune file (CLIPCL_TUNE_FILE, else ~/.cache/clipcl/gemm_tune.txt).\n"
             "--quick searches a small grid on small shapes; --dry-run does not save.\n"
             "Without a row a device is tuned briefly on its first use (CLIPCL_TUNE=off skips that).\n");
      return 0;
    } else {
      fprintf(stderr, "clipcl tune: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  setenv("CLIPCL_GEMM", "cpu", 0);
  setenv("CLIPCL_TUNE", "off", 1); /* this command is the search: no automatic one first */
  unsetenv("CLIPCL_GEMM_PARAMS");  /* search from the table, not an override */
  clipcl_device *rt = cli_open_device("tune", spec);
  if (!rt) return 1;
  const clipcl_device_info *in = cc_info(rt);
  printf("tuning GEMM on [%d] %s (driver %s, float%d kernels), backend %s\n", in->index, in->name, in->driver,
         in->vector_width, cc_gemm_backend(rt));
  if (strcmp(cc_gemm_backend(rt), "cpu-tiled") != 0) {
    printf("this device uses %s; tune CLBlast with its own tuners (clblast_tuner_xgemm)\n", cc_gemm_backend(rt));
    clipcl_device_free(rt);
    return 0;
  }
  cc_gemm_params best, best_t;
  int rc = 0;
  if (cc_gemm_tune(rt, quick ? CC_TUNE_QUICK : CC_TUNE_FULL, &best, &best_t, print_line, NULL) != CLIPCL_OK) {
    rc = cli_error("tune");
  } else {
    printf("best: MR=%d NV=%d KU=%d MB=%d PA=%d KC=%d; A transposed: MR=%d NV=%d KU=%d MB=%d PA=%d KC=%d\n",
           best.MR, best.NV, best.KU, best.MB, best.PA, best.KC, best_t.MR, best_t.NV, best_t.KU, best_t.MB,
           best_t.PA, best_t.KC);
    if (!dry) {
      char path[4096];
      cc_gemm_tune_path(path, sizeof path);
      if (cc_gemm_tune_save(in, &best, &best_t) != CLIPCL_OK) rc = cli_error("tune");
      else printf("saved to %s\n", path);
    }
  }
  clipcl_device_free(rt);
  return rc;
}
