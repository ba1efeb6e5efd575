/* bench_gemm.c: clipcl's GEMM path against OpenBLAS cblas_sgemm, side by side
 * in one process, at 1024^3 and the ViT-B/32 shapes (forward and backward
 * linear layers at M = 50*B tokens; attention QK^T and PV per head, batched
 * over B*12 heads, OpenBLAS looping over heads). Prints one JSON object per
 * shape: {"shape", "m","n","k","batch","trans","gflops","openblas_gflops","ratio"}.
 *
 * The peer runs at its best: OpenBLAS reads OPENBLAS_CORETYPE and
 * OPENBLAS_L2_SIZE at load time, and this machine sets them to values that
 * halve it, so the program re-executes itself with both unset (pass
 * --keep-env to measure with the environment as it is). Under scripts/as-cpu
 * (AVX2 kernels on an AVX-512 host) the peer gets OPENBLAS_CORETYPE=Haswell.
 *   bench_gemm [--batch B] [--quick] [--keep-env] [--shape NAME] [--mnk M,N,K[,NN|NT|TN|TT]]
 * --mnk measures one shape of your own instead of the table ("custom").
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl/runtime.h"
#include "ops/ops.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_gemm: %s: %s\n", what, clipcl_last_error());
  exit(1);
}

typedef struct {
  const char *name;
  int tA, tB, M, N, K, batch;
} shape;

static float *rnd(size_t n) {
  float *x = malloc(n * sizeof *x);
  if (!x) exit(1);
  for (size_t i = 0; i < n; i++) x[i] = (float)(rand() / (double)RAND_MAX - 0.5);
  return x;
}

/* Median of `reps` timings, each of `inner` calls. */
static double cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static int cmpd(const void *a, const void *b) { return (int)cmp_dbl(a, b); }

int main(int argc, char **argv) {
  int B = 32, quick = 0, keep = 0;
  const char *only = NULL;
  shape custom = {"custom", 0, 0, 0, 0, 0, 1};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--keep-env")) keep = 1;
    else if (!strcmp(argv[i], "--shape") && i + 1 < argc) only = argv[++i];
    else if (!strcmp(argv[i], "--mnk") && i + 1 < argc) {
      char t[3] = "NN";
      int n = sscanf(argv[++i], "%d,%d,%d,%2[NT]", &custom.M, &custom.N, &custom.K, t);
      if (n < 3 || custom.M < 1 || custom.N < 1 || custom.K < 1) {
        fprintf(stderr, "bench_gemm: --mnk %s: expected M,N,K or M,N,K,NT (positive sizes)\n", argv[i]);
        return 2;
      }
      custom.tA = t[0] == 'T', custom.tB = t[1] == 'T';
      only = "custom";
    } else {
      fprintf(stderr, "usage: bench_gemm [--batch B] [--quick] [--keep-env] [--shape NAME] [--mnk M,N,K[,NT]]\n");
      return 2;
    }
  }
  /* Under scripts/as-cpu (kernels compiled for an AVX2 class on an AVX-512
   * host) the peer runs OpenBLAS's AVX2 (Haswell) kernels: like with like. */
  const char *as = getenv("CLIPCL_AS_CPU"), *want = as && *as ? "Haswell" : NULL;
  const char *have = getenv("OPENBLAS_CORETYPE");
  int coretype_ok = want ? have && !strcmp(have, want) : !have;
  if (!keep && (!coretype_ok || getenv("OPENBLAS_L2_SIZE"))) {
    if (want) setenv("OPENBLAS_CORETYPE", want, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    execv("/proc/self/exe", argv);
    perror("bench_gemm: re-exec");
    return 1;
  }
  int T = 50, H = 12, D = 64, M = T * B;
  shape shapes[] = {
      {"square_1024", 0, 0, 1024, 1024, 1024, 1},
      {"vitb32_qkv_fwd", 0, 1, M, 2304, 768, 1},
      {"vitb32_attnout_fwd", 0, 1, M, 768, 768, 1},
      {"vitb32_fc_fwd", 0, 1, M, 3072, 768, 1},
      {"vitb32_proj_fwd", 0, 1, M, 768, 3072, 1},
      {"vitb32_fc_bwd_dx", 0, 0, M, 768, 3072, 1},
      {"vitb32_fc_bwd_dw", 1, 0, 3072, 768, M, 1},
      {"vitb32_attn_qk", 0, 1, T, T, D, B * H},
      {"vitb32_attn_pv", 0, 0, T, D, T, B * H},
      {"vitb32_b1_fc_fwd", 0, 1, T, 3072, 768, 1},
      custom,
  };
  clipcl_device *rt;
  if (clipcl_device_open(NULL, &rt) != CLIPCL_OK) die("opening device");
  fprintf(stderr, "# device %s, gemm backend %s, OPENBLAS_CORETYPE %s\n", cc_info(rt)->name,
          cc_gemm_backend(rt), getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    shape *sh = &shapes[s];
    if (!sh->M || (only && strcmp(only, sh->name))) continue;
    size_t na = (size_t)sh->M * sh->K, nb = (size_t)sh->K * sh->N, nc = (size_t)sh->M * sh->N;
    int bt = sh->batch;
    float *A = rnd(na * bt), *Bm = rnd(nb * bt), *C = rnd(nc * bt), *Cd = malloc(nc * bt * sizeof(float));
    int lda = sh->tA ? sh->M : sh->K, ldb = sh->tB ? sh->K : sh->N;
    cl_mem a, b, c;
    if (cc_buffer(rt, na * bt * 4, &a, "A") || cc_buffer(rt, nb * bt * 4, &b, "B") ||
        cc_buffer(rt, nc * bt * 4, &c, "C"))
      die("allocating");
    cc_write(rt, (cc_view){a, 0}, A, na * bt);
    cc_write(rt, (cc_view){b, 0}, Bm, nb * bt);
    cc_gemm_desc g = {.transA = sh->tA, .transB = sh->tB, .M = sh->M, .N = sh->N, .K = sh->K, .alpha = 1,
                      .beta = 0, .A = {a, 0}, .B = {b, 0}, .C = {c, 0}, .lda = lda, .ldb = ldb, .ldc = sh->N,
                      .batch = bt, .sA = na, .sB = nb, .sC = nc};
    double flop = 2.0 * sh->M * sh->N * (double)sh->K * bt;
    /* calls per timing: about 0.2 s of work at 200 GFLOP/s */
    int inner = (int)fmax(1, fmin(200, 4e10 / flop));
    int reps = quick ? 3 : 7;
    double tc[16], to[16];
    if (cc_gemm(rt, &g) || cc_finish(rt)) die("gemm warm-up"); /* compiles kernels */
    for (int z = 0; z < bt; z++)
      cblas_sgemm(CblasRowMajor, sh->tA ? CblasTrans : CblasNoTrans, sh->tB ? CblasTrans : CblasNoTrans, sh->M,
                  sh->N, sh->K, 1.0f, A + z * na, lda, Bm + z * nb, ldb, 0.0f, C + z * nc, sh->N);
    for (int r = 0; r < reps; r++) {
      double t0 = now();
      for (int i = 0; i < inner; i++)
        if (cc_gemm(rt, &g)) die("gemm");
      if (cc_finish(rt)) die("finish");
      tc[r] = (now() - t0) / inner;
      t0 = now();
      for (int i = 0; i < inner; i++)
        for (int z = 0; z < bt; z++)
          cblas_sgemm(CblasRowMajor, sh->tA ? CblasTrans : CblasNoTrans, sh->tB ? CblasTrans : CblasNoTrans,
                      sh->M, sh->N, sh->K, 1.0f, A + z * na, lda, Bm + z * nb, ldb, 0.0f, C + z * nc, sh->N);
      to[r] = (now() - t0) / inner;
    }
    qsort(tc, reps, sizeof(double), cmpd);
    qsort(to, reps, sizeof(double), cmpd);
    /* correctness guard: the benchmarked result equals OpenBLAS's */
    cc_read(rt, (cc_view){c, 0}, Cd, nc * bt);
    double maxd = 0;
    for (size_t i = 0; i < nc * bt; i++) maxd = fmax(maxd, fabs(Cd[i] - C[i]));
    double gf = flop / tc[reps / 2] / 1e9, go = flop / to[reps / 2] / 1e9;
    printf("{\"shape\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"batch\": %d, \"trans\": \"%s%s\", "
           "\"gflops\": %.1f, \"openblas_gflops\": %.1f, \"ratio\": %.3f, \"max_abs_diff\": %.2e}\n",
           sh->name, sh->M, sh->N, sh->K, bt, sh->tA ? "T" : "N", sh->tB ? "T" : "N", gf, go, gf / go, maxd);
    fflush(stdout);
    cc_release(a);
    cc_release(b);
    cc_release(c);
    free(A);
    free(Bm);
    free(C);
    free(Cd);
  }
  clipcl_device_profile_report(rt, stderr);
  clipcl_device_free(rt);
  return 0;
}
