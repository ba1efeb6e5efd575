/* test_gemm_autotune.c: the automatic GEMM tuning of a device with no row in
 * the tune file (src/ops/gemm.c autotune, src/ops/gemm_tune.c):
 *  - the first GEMM on a device without a row tunes once, says so through
 *    the notice handler (start and result), and writes a row for this
 *    device, driver and vector width;
 *  - the next device handle reads that row: no notice, same parameters;
 *  - a row for another vector width (or another device) does not count;
 *  - other devices' rows survive the rewrite of the file;
 *  - CLIPCL_TUNE=off never tunes and writes nothing;
 *  - the tuned GEMM still computes the reference product.
 * How long tuning takes is not asserted (no timings in tests); the README
 * and bench/RESULTS.md give the figures. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ops/gemm_params.h"
#include "ops/ops.h"

static int notices, tuning_notices;
static char last_notice[1024];

static void on_notice(const char *msg, void *user) {
  (void)user;
  notices++;
  if (strstr(msg, "tuning GEMM")) tuning_notices++;
  snprintf(last_notice, sizeof last_notice, "%s", msg);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* One small product on a fresh device handle, checked against the C reference. */
static void one_gemm(const char *tag, cc_gemm_params *p, cc_gemm_params *pt) {
  cc_rt *rt = th_open();
  const int M = 37, N = 50, K = 70;
  float *A = th_alloc((size_t)M * K), *B = th_alloc((size_t)K * N), *C = th_alloc((size_t)M * N);
  double *want = th_alloc_d((size_t)M * N);
  th_fill(A, (size_t)M * K, -1, 1);
  th_fill(B, (size_t)K * N, -1, 1);
  cc_view dA = th_dev(rt, A, (size_t)M * K), dB = th_dev(rt, B, (size_t)K * N), dC = th_dev_zero(rt, (size_t)M * N);
  cc_gemm_desc g = {.M = M, .N = N, .K = K, .alpha = 1.0f, .A = dA, .B = dB, .C = dC, .lda = K, .ldb = N, .ldc = N};
  TH_OK(cc_gemm(rt, &g));
  th_get(rt, dC, C, (size_t)M * N);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)A[(size_t)i * K + k] * B[(size_t)k * N + j];
      want[(size_t)i * N + j] = s;
    }
  char name[96];
  snprintf(name, sizeof name, "%s: product", tag);
  th_close(name, C, want, (size_t)M * N, 1e-4, 1e-4);
  TH_OK(cc_gemm_get_params2(rt, p, pt));
  clipcl_device_free(rt);
}

int main(void) {
  char dir[] = "/tmp/clipcl_autotune_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char path[256];
  snprintf(path, sizeof path, "%s/gemm_tune.txt", dir);
  setenv("CLIPCL_TUNE_FILE", path, 1);
  unsetenv("CLIPCL_GEMM_PARAMS");
  setenv("CLIPCL_GEMM", "cpu", 1);
  clipcl_set_notice_handler(on_notice, NULL);
  cc_rt *probe = th_open();
  clipcl_device_info in = *cc_info(probe);
  clipcl_device_free(probe);

  /* off: nothing tuned, nothing written */
  setenv("CLIPCL_TUNE", "off", 1);
  cc_gemm_params p0, pt0, p1, pt1, p2, pt2;
  one_gemm("CLIPCL_TUNE=off", &p0, &pt0);
  th_assert("off: no notice", notices == 0, "%d notices (last: %s)", notices, last_notice);
  th_assert("off: no tune file", access(path, F_OK) != 0, "%s exists", path);

  /* a file holding only foreign rows: another device, and this device at
   * another vector width */
  int other_vw = in.vector_width == 16 ? 8 : 16;
  FILE *f = fopen(path, "w");
  fprintf(f, "some other device\tdriver 9\tVW=8 MR=3 NV=1 KU=1 MB=2 PA=0 KC=0\tMR=3 NV=1 KU=1 MB=2 PA=1 KC=0\n");
  fprintf(f, "%s\t%s\tVW=%d MR=2 NV=1 KU=1 MB=2 PA=0 KC=0\tMR=2 NV=1 KU=1 MB=2 PA=0 KC=0\n", in.name, in.driver,
          other_vw);
  fclose(f);

  /* first use: tunes once */
  unsetenv("CLIPCL_TUNE");
  one_gemm("first use", &p1, &pt1);
  th_assert("first use: one tuning notice", tuning_notices == 1, "%d (last: %s)", tuning_notices, last_notice);
  th_assert("first use: result notice", strstr(last_notice, "tuned GEMM") != NULL, "%s", last_notice);
  char *text = slurp(path);
  th_assert("tune file written", text != NULL, "%s", path);
  char row[512];
  snprintf(row, sizeof row, "%s\t%s\tVW=%d MR=%d NV=%d KU=%d MB=%d PA=%d KC=%d KI=%d PF=%d\t", in.name,
           in.driver, in.vector_width, p1.MR, p1.NV, p1.KU, p1.MB, p1.PA, p1.KC, p1.KI, p1.PF);
  th_assert("row for this device and width", text && strstr(text, row), "no '%s' in:\n%s", row, text ? text : "");
  th_assert("other device's row kept", text && strstr(text, "some other device\tdriver 9\tVW=8 MR=3"), "%s",
            text ? text : "");
  char foreign[256];
  snprintf(foreign, sizeof foreign, "VW=%d MR=2 NV=1", other_vw);
  th_assert("other width's row kept", text && strstr(text, foreign), "%s", text ? text : "");
  th_assert("tuned tile fits the registers", p1.MR * p1.NV + p1.NV + 1 <= (in.vector_width >= 16 ? 32 : 16),
            "MR=%d NV=%d", p1.MR, p1.NV);

  /* second use: the row is read, no tuning */
  int before = notices;
  one_gemm("second use", &p2, &pt2);
  th_assert("second use: no notice", notices == before, "%d new (last: %s)", notices - before, last_notice);
  th_assert("second use: same parameters",
            p2.MR == p1.MR && p2.NV == p1.NV && p2.MB == p1.MB && p2.PA == p1.PA && pt2.MR == pt1.MR &&
                pt2.PA == pt1.PA && pt2.MB == pt1.MB,
            "MR %d/%d NV %d/%d MB %d/%d", p2.MR, p1.MR, p2.NV, p1.NV, p2.MB, p1.MB);

  remove(path);
  char lock[300];
  snprintf(lock, sizeof lock, "%s.lock", path);
  remove(lock);
  rmdir(dir);
  return th_finish(NULL);
}
