/* gemm_tune.c: the search for CPU GEMM tile parameters (kernels/gemm.cl:
 * MR, NV, KU, MB, PA, KC) on the present device, and the tune file where the
 * result is kept per device, driver and vector width. `clipcl tune` runs the
 * quick or full search; src/ops/gemm.c runs the automatic one the first time
 * a device without a row is used. Not here: the GEMM itself (gemm.c).
 *
 * Scores are geometric means of best-of-reps GFLOP/s over a few shapes.
 * The two parameter sets (A stored (M,K); A transposed, the weight-gradient
 * products) are searched one after the other on their own shapes.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ops/gemm_params.h"
#include "ops/ops.h"

/* ---- the tune file --------------------------------------------------------
 * Lines "<device name>\t<driver>\tVW=.. MR=.. NV=.. ..\tMR=.. ..": the
 * second set (A transposed) optional. Rows without VW come from versions
 * whose kernels were all float16, i.e. VW=16. */

int cc_gemm_tune_lookup(const clipcl_device_info *in, cc_gemm_params *p, cc_gemm_params *pt) {
  char path[4096];
  cc_gemm_tune_path(path, sizeof path);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[1024];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *t1 = strchr(line, '\t');
    if (!t1) continue;
    *t1 = 0;
    char *t2 = strchr(t1 + 1, '\t');
    if (!t2) continue;
    *t2 = 0;
    if (strcmp(line, in->name) || strcmp(t1 + 1, in->driver)) continue;
    char *t3 = strchr(t2 + 1, '\t');
    if (t3) *t3 = 0;
    cc_gemm_params q = *p, qt = *pt;
    q.VW = 0;
    if (cc_gemm_params_parse(t2 + 1, &q) != 0 || (t3 && cc_gemm_params_parse(t3 + 1, &qt) != 0)) continue;
    if ((q.VW ? q.VW : 16) != in->vector_width) continue;
    *p = q;
    *pt = t3 ? qt : q;
    p->VW = pt->VW = in->vector_width;
    found = 1;
  }
  fclose(f);
  return found;
}

static void row_text(char *out, size_t n, const cc_gemm_params *p) {
  snprintf(out, n, "MR=%d NV=%d KU=%d MB=%d PA=%d KC=%d KI=%d PF=%d", p->MR, p->NV, p->KU, p->MB, p->PA, p->KC,
           p->KI, p->PF);
}

clipcl_status cc_gemm_tune_save(const clipcl_device_info *in, const cc_gemm_params *p, const cc_gemm_params *pt) {
  char path[4096], tmp[4200];
  cc_gemm_tune_path(path, sizeof path);
  char *slash = strrchr(path, '/');
  if (slash) { /* the cache folder may not exist yet */
    *slash = 0;
    mkdir(path, 0755);
    *slash = '/';
  }
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *out = fopen(tmp, "w");
  if (!out) return cc_fail(CLIPCL_ERR_IO, "%s: cannot write the GEMM tune file (%s)", tmp, strerror(errno));
  FILE *old = fopen(path, "r"); /* keep the other devices' rows */
  char line[1024];
  size_t nl = strlen(in->name), nd = strlen(in->driver);
  while (old && fgets(line, sizeof line, old)) {
    int same = strncmp(line, in->name, nl) == 0 && line[nl] == '\t' && strncmp(line + nl + 1, in->driver, nd) == 0 &&
               line[nl + 1 + nd] == '\t';
    if (same) {
      cc_gemm_params q = {0};
      const char *f = line + nl + nd + 2;
      char set[512];
      snprintf(set, sizeof set, "%.*s", (int)strcspn(f, "\t\n"), f);
      same = cc_gemm_params_parse(set, &q) == 0 && (q.VW ? q.VW : 16) == in->vector_width;
    }
    if (!same) fputs(line, out);
  }
  if (old) fclose(old);
  char a[256], b[256];
  row_text(a, sizeof a, p);
  row_text(b, sizeof b, pt);
  fprintf(out, "%s\t%s\tVW=%d %s\t%s\n", in->name, in->driver, in->vector_width, a, b);
  int ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
  ok &= fclose(out) == 0;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return cc_fail(CLIPCL_ERR_IO, "%s: cannot write the GEMM tune file", path);
  }
  return CLIPCL_OK;
}

/* ---- measuring ---------------------------------------------------------- */

typedef struct {
  const char *name;
  int tA, tB, M, N, K, batch;
} tune_shape;

typedef struct {
  cl_mem a, b, c;
  cc_gemm_desc g;
  double flop;
} prepared;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static clipcl_status prepare(cc_rt *rt, const tune_shape *s, prepared *p) {
  size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
  memset(p, 0, sizeof *p);
  CC_TRY(cc_buffer(rt, na * s->batch * 4, &p->a, "GEMM tuning A"));
  CC_TRY(cc_buffer(rt, nb * s->batch * 4, &p->b, "GEMM tuning B"));
  CC_TRY(cc_buffer(rt, nc * s->batch * 4, &p->c, "GEMM tuning C"));
  CC_TRY(cc_fill(rt, (cc_view){p->a, 0}, na * s->batch, 0.5f));
  CC_TRY(cc_fill(rt, (cc_view){p->b, 0}, nb * s->batch, 0.25f));
  p->g = (cc_gemm_desc){.transA = s->tA, .transB = s->tB, .M = s->M, .N = s->N, .K = s->K, .alpha = 1,
                        .A = {p->a, 0}, .B = {p->b, 0}, .C = {p->c, 0}, .lda = s->tA ? s->M : s->K,
                        .ldb = s->tB ? s->K : s->N, .ldc = s->N, .batch = s->batch, .sA = na, .sB = nb, .sC = nc};
  p->flop = 2.0 * s->M * s->N * (double)s->K * s->batch;
  return CLIPCL_OK;
}

static void unprepare(prepared *p) {
  cc_release(p->a);
  cc_release(p->b);
  cc_release(p->c);
}

/* Best-of-reps GFLOP/s of one product under the current parameters (the
 * first call compiles and warms); 0 when it fails (e.g. a tile the device
 * cannot build), so the candidate loses. */
static double measure(cc_rt *rt, prepared *p, double budget_s, int reps) {
  if (cc_gemm(rt, &p->g) || cc_finish(rt)) return 0;
  double t0 = now();
  if (cc_gemm(rt, &p->g) || cc_finish(rt)) return 0;
  double one = now() - t0;
  int inner = (int)fmax(1, fmin(100, budget_s / reps / fmax(one, 1e-6)));
  double best = 0;
  for (int r = 0; r < reps; r++) {
    t0 = now();
    for (int i = 0; i < inner; i++)
      if (cc_gemm(rt, &p->g)) return 0;
    if (cc_finish(rt)) return 0;
    double gf = p->flop * inner / (now() - t0) / 1e9;
    if (gf > best) best = gf;
  }
  return best;
}

typedef struct {
  cc_rt *rt;
  int which; /* 0: A stored (M,K); 1: A transposed */
  cc_gemm_params other;
  prepared *ps;
  const tune_shape *sh;
  int ns;
  double budget;
  int reps;
  void (*log)(void *, const char *);
  void *user;
} search_ctx;

static void say(const search_ctx *c, const char *fmt, ...) CC_PRINTF(2, 3);
static void say(const search_ctx *c, const char *fmt, ...) {
  if (!c->log) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->log(c->user, line);
}

/* Geometric mean GFLOP/s of candidate q over the context's shapes. */
static double score(search_ctx *c, const cc_gemm_params *q, const char *tag) {
  if (c->which) cc_gemm_set_params2(c->rt, &c->other, q);
  else cc_gemm_set_params2(c->rt, q, &c->other);
  double lg = 0;
  for (int i = 0; i < c->ns; i++) {
    double gf = measure(c->rt, &c->ps[i], c->budget, c->reps);
    if (gf <= 0) {
      cc_clear_error();
      lg = -INFINITY;
      break;
    }
    lg += log(gf);
  }
  double s = exp(lg / c->ns);
  char row[256];
  row_text(row, sizeof row, q);
  say(c, "%s %s: %.1f GFLOP/s", tag, row, s);
  return s;
}

static void consider(search_ctx *c, const cc_gemm_params *q, cc_gemm_params *best, double *best_s) {
  if (!memcmp(q, best, sizeof *q)) return;
  double s = score(c, q, "  try");
  if (s > *best_s) {
    *best_s = s;
    *best = *q;
  }
}

/* Coordinate search from *best. Tiles must keep MR*NV accumulators, NV
 * B vectors and one broadcast within the register file: 32 vector
 * registers with AVX-512 (VW 16), 16 otherwise (AVX2, SSE). */
static void search(search_ctx *c, cc_tune_level level, cc_gemm_params *best) {
  int vw = cc_info(c->rt)->vector_width, regs = vw >= 16 ? 32 : 16;
  double best_s = score(c, best, "start");
  if (level != CC_TUNE_FULL) {
    /* compile-time shapes cost a kernel build each (seconds): only the
     * register-filling neighbours of the built-in tile (one for the
     * automatic search, two for --quick), then runtime parameters */
    static const int alt16[][2] = {{8, 3}, {12, 2}, {6, 3}}, alt8[][2] = {{4, 3}, {5, 2}, {6, 2}};
    const int(*alt)[2] = vw >= 16 ? alt16 : alt8;
    int want = level == CC_TUNE_AUTO ? 1 : 2;
    for (int i = 0; i < 3 && want > 0; i++) {
      cc_gemm_params q = *best;
      q.MR = alt[i][0], q.NV = alt[i][1];
      if (q.MR == best->MR && q.NV == best->NV) continue;
      consider(c, &q, best, &best_s);
      want--;
    }
  } else {
    static const int mrs[] = {2, 3, 4, 5, 6, 8, 12, 14}, nvs[] = {1, 2, 3, 4};
    cc_gemm_params start = *best;
    for (size_t a = 0; a < sizeof mrs / sizeof *mrs; a++)
      for (size_t b = 0; b < sizeof nvs / sizeof *nvs; b++) {
        cc_gemm_params q = start;
        q.MR = mrs[a], q.NV = nvs[b];
        int need = q.MR * q.NV + q.NV + 1;
        if (need > regs || need < regs / 2) continue; /* spills, or too few accumulators to hide latency */
        consider(c, &q, best, &best_s);
      }
  }
  static const int mbs[] = {4, 8, 16, 32}, kus[] = {2, 4, 8}, kcs[] = {0, 256, 512};
  if (level == CC_TUNE_AUTO) {
    /* runtime parameters only (no kernel build): half and double the row
     * block; packing stays as built in (A in place for A (M,K), packed for
     * A^T, whose in-place reads stride across rows) */
    int mb = best->MB;
    for (int f = 0; f < 2; f++) {
      cc_gemm_params q = *best;
      q.MB = f ? mb * 2 : mb / 2 > 0 ? mb / 2 : 1;
      consider(c, &q, best, &best_s);
    }
    return;
  }
  for (size_t i = 0; i < 4; i++) {
    cc_gemm_params q = *best;
    q.MB = mbs[i];
    consider(c, &q, best, &best_s);
  }
  for (int i = 0; i < 2; i++) {
    cc_gemm_params q = *best;
    q.PA = i;
    consider(c, &q, best, &best_s);
  }
  for (int i = 0; i < 2; i++) { /* prefetch of the next B panel: a kernel build each */
    cc_gemm_params q = *best;
    q.PF = i;
    consider(c, &q, best, &best_s);
  }
  if (level == CC_TUNE_FULL)
    for (size_t i = 0; i < 3; i++) { /* a kernel build each */
      cc_gemm_params q = *best;
      q.KU = kus[i];
      consider(c, &q, best, &best_s);
    }
  for (size_t i = 0; i < 3; i++) {
    cc_gemm_params q = *best;
    q.KC = kcs[i];
    consider(c, &q, best, &best_s);
  }
}

clipcl_status cc_gemm_tune(cc_rt *rt, cc_tune_level level, cc_gemm_params *p, cc_gemm_params *pt,
                           void (*log)(void *user, const char *line), void *user) {
  if (strcmp(cc_gemm_backend(rt), "cpu-tiled"))
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "GEMM tuning: %s uses %s, not the CPU kernels", cc_info(rt)->name,
                   cc_gemm_backend(rt));
  /* ViT-B/32 products (M = 50 tokens x 32 images) for the full search,
   * smaller ones of the same kinds for the quick and automatic ones */
  static const tune_shape full[] = {
      {"square_1024", 0, 0, 1024, 1024, 1024, 1}, {"linear_fwd", 0, 1, 1600, 2304, 768, 1},
      {"linear_fwd_k3072", 0, 1, 1600, 768, 3072, 1}, {"linear_bwd_dx", 0, 0, 1600, 768, 3072, 1},
      {"linear_bwd_dw", 1, 0, 3072, 768, 1600, 1}, {"attn_pv", 0, 0, 50, 64, 50, 384},
      {"batch1_linear", 0, 1, 50, 3072, 768, 1},
  };
  static const tune_shape quick[] = {
      {"linear_fwd", 0, 1, 800, 768, 768, 1}, {"linear_bwd_dx", 0, 0, 800, 768, 1536, 1},
      {"linear_bwd_dw", 1, 0, 768, 768, 800, 1}, {"attn_pv", 0, 0, 50, 64, 50, 96},
  };
  const tune_shape *sh = level == CC_TUNE_FULL ? full : quick;
  int ns = level == CC_TUNE_FULL ? 7 : 4;
  prepared ps[8];
  int nprep = 0;
  clipcl_status s = CLIPCL_OK;
  for (; nprep < ns && s == CLIPCL_OK; nprep++) s = prepare(rt, &sh[nprep], &ps[nprep]);
  cc_gemm_params best, best_t;
  CC_TRY(cc_gemm_get_params2(rt, &best, &best_t));
  if (s == CLIPCL_OK) {
    prepared pm[8], ptr[8];
    tune_shape sm[8], st[8];
    int nm = 0, nt = 0;
    for (int i = 0; i < ns; i++) {
      if (sh[i].tA) st[nt] = sh[i], ptr[nt++] = ps[i];
      else sm[nm] = sh[i], pm[nm++] = ps[i];
    }
    double budget = level == CC_TUNE_FULL ? 0.25 : level == CC_TUNE_QUICK ? 0.04 : 0.02;
    int reps = level == CC_TUNE_FULL ? 3 : 2;
    search_ctx c = {rt, 0, best_t, pm, sm, nm, budget, reps, log, user};
    say(&c, "-- products with A stored (M,K)");
    search(&c, level, &best);
    /* the automatic search leaves the transposed-A set (weight gradients,
     * training only) at its built-in row: building its kernels would cost
     * an inference-only first run seconds for nothing */
    if (level != CC_TUNE_AUTO) {
      c = (search_ctx){rt, 1, best, ptr, st, nt, budget, reps, log, user};
      say(&c, "-- products with A transposed");
      search(&c, level, &best_t);
    }
    cc_gemm_set_params2(rt, &best, &best_t);
    *p = best;
    *pt = best_t;
  }
  for (int i = 0; i < nprep; i++) unprepare(&ps[i]);
  return s;
}
