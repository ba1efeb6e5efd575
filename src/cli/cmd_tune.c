/* cmd_tune.c: `clipcl tune`: searches the CPU GEMM tile parameters
 * (kernels/gemm.cl: MR, NV, KU, MB, PA, KC) for the present device on the
 * shapes CLIP training and inference run, and stores the best row in the tune
 * file (src/ops/gemm_params.h: cc_gemm_tune_path) where later runs find it.
 * Devices served by CLBlast are left to CLBlast's own tuners. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/runtime.h"
#include "cli/cli.h"
#include "ops/gemm_params.h"
#include "ops/ops.h"

typedef struct {
  const char *name;
  int tA, tB, M, N, K, batch;
} tune_shape;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
  cl_mem a, b, c;
  cc_gemm_desc g;
  double flop;
} prepared;

static int prepare(cc_rt *rt, const tune_shape *s, prepared *p) {
  size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
  if (cc_buffer(rt, na * s->batch * 4, &p->a, "tune A") || cc_buffer(rt, nb * s->batch * 4, &p->b, "tune B") ||
      cc_buffer(rt, nc * s->batch * 4, &p->c, "tune C"))
    return -1;
  cc_fill(rt, (cc_view){p->a, 0}, na * s->batch, 0.5f);
  cc_fill(rt, (cc_view){p->b, 0}, nb * s->batch, 0.25f);
  p->g = (cc_gemm_desc){.transA = s->tA, .transB = s->tB, .M = s->M, .N = s->N, .K = s->K, .alpha = 1,
                        .A = {p->a, 0}, .B = {p->b, 0}, .C = {p->c, 0}, .lda = s->tA ? s->M : s->K,
                        .ldb = s->tB ? s->K : s->N, .ldc = s->N, .batch = s->batch, .sA = na, .sB = nb, .sC = nc};
  p->flop = 2.0 * s->M * s->N * (double)s->K * s->batch;
  return 0;
}

/* Best-of-reps GFLOP/s of one shape under the current parameters. */
static double measure(cc_rt *rt, prepared *p, double budget_s, int reps) {
  if (cc_gemm(rt, &p->g) || cc_finish(rt)) return -1; /* compile + warm */
  double t0 = now();
  if (cc_gemm(rt, &p->g) || cc_finish(rt)) return -1;
  double one = now() - t0;
  int inner = (int)fmax(1, fmin(100, budget_s / reps / fmax(one, 1e-6)));
  double best = 0;
  for (int r = 0; r < reps; r++) {
    t0 = now();
    for (int i = 0; i < inner; i++)
      if (cc_gemm(rt, &p->g)) return -1;
    if (cc_finish(rt)) return -1;
    double gf = p->flop * inner / (now() - t0) / 1e9;
    if (gf > best) best = gf;
  }
  return best;
}

/* Geometric mean over the shapes, with the per-shape figures printed. */
static double score(cc_rt *rt, prepared *ps, const tune_shape *sh, int ns, double budget, int reps, int verbose) {
  double lg = 0;
  for (int i = 0; i < ns; i++) {
    double gf = measure(rt, &ps[i], budget, reps);
    if (gf <= 0) return -1;
    if (verbose) printf("  %-20s %7.1f GFLOP/s\n", sh[i].name, gf);
    lg += log(gf);
  }
  return exp(lg / ns);
}

static void print_params(const char *tag, const cc_gemm_params *p, double s) {
  printf("%s MR=%d NV=%d KU=%d MB=%d PA=%d KC=%d: %.1f GFLOP/s (geometric mean)\n", tag, p->MR, p->NV, p->KU,
         p->MB, p->PA, p->KC, s);
  fflush(stdout);
}

/* Applies candidate q as the set being tuned (which = 0: A stored (M,K),
 * 1: A transposed), the other set staying `other`. */
static void apply(cc_rt *rt, int which, const cc_gemm_params *q, const cc_gemm_params *other) {
  if (which) cc_gemm_set_params2(rt, other, q);
  else cc_gemm_set_params2(rt, q, other);
}

/* Coordinate search from *best: tile shape (register budget: MR*NV
 * accumulators + NV + 1 of 32 AVX-512 registers), then scheduling block,
 * packing, unroll and k blocking. */
static void search(cc_rt *rt, int which, cc_gemm_params *best, const cc_gemm_params *other, prepared *ps,
                   const tune_shape *sh, int ns, double budget, int reps, int quick) {
  apply(rt, which, best, other);
  double best_s = score(rt, ps, sh, ns, budget, reps, 1);
  print_params("start", best, best_s);
  static const int mrs[] = {4, 6, 8, 12, 14}, nvs[] = {1, 2, 3, 4};
  for (size_t a = 0; a < sizeof mrs / sizeof *mrs; a++)
    for (size_t b = 0; b < sizeof nvs / sizeof *nvs; b++) {
      cc_gemm_params p = *best;
      p.MR = mrs[a];
      p.NV = nvs[b];
      if (p.MR * p.NV + p.NV + 1 > 31 || (p.MR == best->MR && p.NV == best->NV)) continue;
      if (quick && (p.NV > 3 || p.MR > 12)) continue;
      apply(rt, which, &p, other);
      double s = score(rt, ps, sh, ns, budget, reps, 0);
      print_params("  try", &p, s);
      if (s > best_s) {
        best_s = s;
        *best = p;
      }
    }
  for (int stage = 0; stage < 4; stage++) {
    static const int mbs[] = {2, 4, 8, 16, 32}, kus[] = {1, 2, 4, 8}, kcs[] = {0, 256, 512, 1024};
    int n = stage == 0 ? 5 : stage == 1 ? 2 : 4;
    for (int i = 0; i < n; i++) {
      cc_gemm_params p = *best;
      if (stage == 0) p.MB = mbs[i];
      else if (stage == 1) p.PA = i;
      else if (stage == 2) p.KU = kus[i];
      else p.KC = kcs[i];
      if (!memcmp(&p, best, sizeof p)) continue;
      if (quick && stage >= 2) continue;
      apply(rt, which, &p, other);
      double s = score(rt, ps, sh, ns, budget, reps, 0);
      print_params("  try", &p, s);
      if (s > best_s) {
        best_s = s;
        *best = p;
      }
    }
  }
  apply(rt, which, best, other);
  printf("best%s:\n", which ? " (A transposed)" : "");
  best_s = score(rt, ps, sh, ns, budget, reps, 1);
  print_params("best", best, best_s);
}

static int save(const clipcl_device_info *in, const cc_gemm_params *p, const cc_gemm_params *pt) {
  char path[4096], tmp[4200];
  cc_gemm_tune_path(path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *out = fopen(tmp, "w");
  if (!out) {
    fprintf(stderr, "clipcl tune: %s: cannot write\n", tmp);
    return 1;
  }
  /* keep other devices' rows */
  FILE *old = fopen(path, "r");
  char line[1024];
  size_t nl = strlen(in->name);
  while (old && fgets(line, sizeof line, old))
    if (!(strncmp(line, in->name, nl) == 0 && line[nl] == '\t' &&
          strncmp(line + nl + 1, in->driver, strlen(in->driver)) == 0))
      fputs(line, out);
  if (old) fclose(old);
  fprintf(out, "%s\t%s\tMR=%d NV=%d KU=%d MB=%d PA=%d KC=%d\tMR=%d NV=%d KU=%d MB=%d PA=%d KC=%d\n", in->name,
          in->driver, p->MR, p->NV, p->KU, p->MB, p->PA, p->KC, pt->MR, pt->NV, pt->KU, pt->MB, pt->PA, pt->KC);
  if (fclose(out) != 0 || rename(tmp, path) != 0) {
    fprintf(stderr, "clipcl tune: %s: cannot write\n", path);
    return 1;
  }
  printf("saved to %s\n", path);
  return 0;
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
             "--quick searches a small grid on small shapes; --dry-run does not save.\n");
      return 0;
    } else {
      fprintf(stderr, "clipcl tune: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  setenv("CLIPCL_GEMM", "cpu", 0);
  unsetenv("CLIPCL_GEMM_PARAMS"); /* search from the table, not an override */
  clipcl_device *rt = cli_open_device("tune", spec);
  if (!rt) return 1;
  const clipcl_device_info *in = cc_info(rt);
  printf("tuning GEMM on [%d] %s (driver %s), backend %s\n", in->index, in->name, in->driver,
         cc_gemm_backend(rt));
  if (strcmp(cc_gemm_backend(rt), "cpu-tiled") != 0) {
    printf("this device uses %s; tune CLBlast with its own tuners (clblast_tuner_xgemm)\n", cc_gemm_backend(rt));
    clipcl_device_free(rt);
    return 0;
  }
  const tune_shape full[] = {
      {"square_1024", 0, 0, 1024, 1024, 1024, 1}, {"linear_fwd", 0, 1, 1600, 2304, 768, 1},
      {"linear_fwd_k3072", 0, 1, 1600, 768, 3072, 1}, {"linear_bwd_dx", 0, 0, 1600, 768, 3072, 1},
      {"linear_bwd_dw", 1, 0, 3072, 768, 1600, 1}, {"attn_pv", 0, 0, 50, 64, 50, 384},
      {"batch1_linear", 0, 1, 50, 3072, 768, 1},
  };
  const tune_shape small[] = {
      {"square_256", 0, 0, 256, 256, 256, 1}, {"linear_fwd", 0, 1, 320, 512, 256, 1},
      {"linear_bwd_dw", 1, 0, 512, 256, 320, 1}, {"attn_pv", 0, 0, 17, 32, 17, 64},
  };
  const tune_shape *sh = quick ? small : full;
  int ns = quick ? 4 : 7;
  prepared ps[8];
  for (int i = 0; i < ns; i++)
    if (prepare(rt, &sh[i], &ps[i])) {
      cli_error("tune");
      clipcl_device_free(rt);
      return 1;
    }
  double budget = quick ? 0.02 : 0.25;
  int reps = quick ? 2 : 3;
  cc_gemm_params best, best_t;
  cc_gemm_get_params2(rt, &best, &best_t);
  /* A stored (M,K) on every shape but the transposed-A ones, then those */
  prepared pm[8], pt[8];
  tune_shape sm[8], st[8];
  int nm = 0, nt = 0;
  for (int i = 0; i < ns; i++) {
    if (sh[i].tA) {
      st[nt] = sh[i];
      pt[nt++] = ps[i];
    } else {
      sm[nm] = sh[i];
      pm[nm++] = ps[i];
    }
  }
  printf("-- products with A stored (M,K)\n");
  search(rt, 0, &best, &best_t, pm, sm, nm, budget, reps, quick);
  if (nt) {
    printf("-- products with A transposed\n");
    search(rt, 1, &best_t, &best, pt, st, nt, budget, reps, quick);
  }
  int rc = dry ? 0 : save(in, &best, &best_t);
  for (int i = 0; i < ns; i++) {
    cc_release(ps[i].a);
    cc_release(ps[i].b);
    cc_release(ps[i].c);
  }
  clipcl_device_free(rt);
  return rc;
}
