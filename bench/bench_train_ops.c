/* bench_train_ops.c: timing loop for the per-step training ops at CLIP sizes:
 * attention forward/backward, the CLIP head (normalise, logits, loss) and the
 * optimiser (global norm, AdamW). Prints milliseconds per call; run with
 * CLIPCL_PROFILE=1 for a per-kernel breakdown. A measurement, not a test.
 *   bench_train_ops [attn|head|optim|all] [iterations] [attention config 0..4] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/runtime.h"
#include "ops/ops.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define OK(e)                                                                   \
  do {                                                                          \
    if ((e) != CLIPCL_OK) {                                                     \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #e, clipcl_last_error()); \
      exit(1);                                                                  \
    }                                                                           \
  } while (0)

static cc_view buf(cc_rt *rt, size_t n, float v) {
  cl_mem m;
  OK(cc_buffer(rt, n * 4 + 64, &m, "bench"));
  cc_view x = {m, 3};
  OK(cc_fill(rt, x, n, v));
  return x;
}

static void random_fill(cc_rt *rt, cc_view x, size_t n, float scale) {
  float *h = malloc(n * 4);
  unsigned s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u;
    h[i] = scale * ((float)((s >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
  OK(cc_write(rt, x, h, n));
  free(h);
}

static void attn(cc_rt *rt, int iters, int B, int T, int C, int H, int causal) {
  size_t n = (size_t)B * T * C, natt = (size_t)B * H * T * T;
  cc_view qkv = buf(rt, 3 * n, 0), out = buf(rt, n, 0), qkvr = buf(rt, 3 * n, 0), att = buf(rt, natt, 0);
  cc_view dqkv = buf(rt, 3 * n, 0), dout = buf(rt, n, 0);
  random_fill(rt, qkv, 3 * n, 2.0f);
  random_fill(rt, dout, n, 1.0f);
  OK(cc_attention_fwd(rt, out, qkvr, att, qkv, B, T, C, H, causal));
  OK(cc_attention_bwd(rt, dqkv, dout, qkvr, att, B, T, C, H, causal));
  OK(cc_finish(rt));
  double t0 = now();
  for (int i = 0; i < iters; i++) OK(cc_attention_fwd(rt, out, qkvr, att, qkv, B, T, C, H, causal));
  OK(cc_finish(rt));
  double t1 = now();
  for (int i = 0; i < iters; i++) OK(cc_attention_bwd(rt, dqkv, dout, qkvr, att, B, T, C, H, causal));
  OK(cc_finish(rt));
  double t2 = now();
  double flop = 4.0 * B * H * (double)T * T * (C / H);
  printf("attention B%d T%d C%d H%d%s: fwd %.2f ms (%.1f GFLOP/s)  bwd %.2f ms\n", B, T, C, H,
         causal ? " causal" : "", (t1 - t0) / iters * 1e3, flop / ((t1 - t0) / iters) * 1e-9,
         (t2 - t1) / iters * 1e3);
  cc_release(qkv.buf), cc_release(out.buf), cc_release(qkvr.buf), cc_release(att.buf);
  cc_release(dqkv.buf), cc_release(dout.buf);
}

static void head(cc_rt *rt, int iters, int N, int M, int E) {
  cc_view a = buf(rt, (size_t)N * E, 0), b = buf(rt, (size_t)M * E, 0), an = buf(rt, (size_t)N * E, 0),
          bn = buf(rt, (size_t)M * E, 0), na = buf(rt, N, 0), nb = buf(rt, M, 0), s = buf(rt, 1, 2.6592f);
  cc_view lg = buf(rt, (size_t)N * M, 0), lt = buf(rt, (size_t)N * M, 0), p1 = buf(rt, (size_t)N * M, 0),
          p2 = buf(rt, (size_t)N * M, 0), loss = buf(rt, 1, 0), dl = buf(rt, (size_t)N * M, 0),
          dlt = buf(rt, (size_t)N * M, 0), da = buf(rt, (size_t)N * E, 0), db = buf(rt, (size_t)M * E, 0),
          dan = buf(rt, (size_t)N * E, 0), dbn = buf(rt, (size_t)M * E, 0), ds = buf(rt, 1, 0);
  random_fill(rt, a, (size_t)N * E, 1.0f);
  random_fill(rt, b, (size_t)M * E, 1.0f);
  /* one full head step to build the kernels and size the scratch */
  OK(cc_l2norm_fwd(rt, an, na, a, N, E));
  OK(cc_l2norm_fwd(rt, bn, nb, b, M, E));
  OK(cc_logits_fwd(rt, lg, an, bn, s, N, M, E));
  OK(cc_transpose(rt, lt, lg, N, M));
  OK(cc_ce_fwd(rt, loss, p1, lg, N, M, 0, 0.5f, 0));
  OK(cc_ce_fwd(rt, loss, p2, lt, M, N, 0, 0.5f, 1));
  OK(cc_ce_bwd(rt, dl, p1, N, M, 0, 0.5f));
  OK(cc_ce_bwd(rt, dlt, p2, M, N, 0, 0.5f));
  OK(cc_logits_bwd(rt, dan, dbn, ds, dl, an, bn, lg, s, N, M, E));
  OK(cc_l2norm_bwd(rt, da, dan, an, na, N, E));
  OK(cc_l2norm_bwd(rt, db, dbn, bn, nb, M, E));
  OK(cc_finish(rt));
  /* per-op split */
  struct { const char *name; int which; } ops[] = {{"l2norm fwd x2", 0}, {"logits fwd", 1}, {"transpose", 2},
      {"ce fwd x2", 3}, {"ce bwd x2", 4}, {"logits bwd", 5}, {"l2norm bwd x2", 6}};
  printf("clip head N%d M%d E%d:", N, M, E);
  double total = 0;
  for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
    double t0 = now();
    for (int it = 0; it < iters; it++) {
      switch (ops[o].which) {
        case 0: OK(cc_l2norm_fwd(rt, an, na, a, N, E)); OK(cc_l2norm_fwd(rt, bn, nb, b, M, E)); break;
        case 1: OK(cc_logits_fwd(rt, lg, an, bn, s, N, M, E)); break;
        case 2: OK(cc_transpose(rt, lt, lg, N, M)); break;
        case 3: OK(cc_ce_fwd(rt, loss, p1, lg, N, M, 0, 0.5f, 0)); OK(cc_ce_fwd(rt, loss, p2, lt, M, N, 0, 0.5f, 1)); break;
        case 4: OK(cc_ce_bwd(rt, dl, p1, N, M, 0, 0.5f)); OK(cc_ce_bwd(rt, dlt, p2, M, N, 0, 0.5f)); break;
        case 5: OK(cc_logits_bwd(rt, dan, dbn, ds, dl, an, bn, lg, s, N, M, E)); break;
        default: OK(cc_l2norm_bwd(rt, da, dan, an, na, N, E)); OK(cc_l2norm_bwd(rt, db, dbn, bn, nb, M, E)); break;
      }
    }
    OK(cc_finish(rt));
    double ms = (now() - t0) / iters * 1e3;
    total += ms;
    printf("  %s %.3f ms", ops[o].name, ms);
  }
  printf("\n  total %.2f ms\n", total);
  cc_view all[] = {a, b, an, bn, na, nb, s, lg, lt, p1, p2, loss, dl, dlt, da, db, dan, dbn, ds};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) cc_release(all[i].buf);
}

static void optim(cc_rt *rt, int iters, size_t n) {
  cc_view p = buf(rt, n, 0), g = buf(rt, n, 0), m = buf(rt, n, 0), v = buf(rt, n, 0), nrm = buf(rt, 1, 0),
          sc = buf(rt, 1, 0);
  random_fill(rt, p, n, 1.0f);
  random_fill(rt, g, n, 1e-3f);
  cl_mem mask;
  OK(cc_buffer(rt, n + 16, &mask, "mask"));
  unsigned char one = 1;
  OK(clEnqueueFillBuffer(cc_queue(rt), mask, &one, 1, 0, n + 16, 0, NULL, NULL) == CL_SUCCESS ? CLIPCL_OK
                                                                                                : CLIPCL_ERR_OPENCL);
  cc_adamw_hparams h = {5e-4f, 0.9f, 0.98f, 1e-6f, 0.2f, 1};
  OK(cc_global_norm(rt, nrm, g, n));
  OK(cc_adamw(rt, p, g, m, v, mask, 5, sc, n, &h));
  OK(cc_finish(rt));
  double t0 = now();
  for (int i = 0; i < iters; i++) OK(cc_global_norm(rt, nrm, g, n));
  OK(cc_finish(rt));
  double t1 = now();
  for (int i = 0; i < iters; i++) OK(cc_clip_factor(rt, sc, nrm, 1.0f));
  OK(cc_finish(rt));
  double t2 = now();
  for (int i = 0; i < iters; i++) {
    h.step = i + 2;
    OK(cc_adamw(rt, p, g, m, v, mask, 5, sc, n, &h));
  }
  OK(cc_finish(rt));
  double t3 = now();
  printf("optim n=%zu: global_norm %.2f ms (%.1f GB/s)  clip_factor %.3f ms  adamw %.2f ms (%.1f GB/s)\n", n,
         (t1 - t0) / iters * 1e3, n * 4.0 / ((t1 - t0) / iters) * 1e-9, (t2 - t1) / iters * 1e3,
         (t3 - t2) / iters * 1e3, n * 29.0 / ((t3 - t2) / iters) * 1e-9);
  cc_release(p.buf), cc_release(g.buf), cc_release(m.buf), cc_release(v.buf), cc_release(nrm.buf);
  cc_release(sc.buf), cc_release(mask);
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "all";
  int iters = argc > 2 ? atoi(argv[2]) : 5;
  cc_rt *rt;
  OK(clipcl_device_open(NULL, &rt));
  printf("device: %s, gemm %s\n", cc_info(rt)->name, cc_gemm_backend(rt));
  int all = !strcmp(what, "all");
  if (all || !strcmp(what, "attn")) {
    const int cfg[][5] = {
        {64, 50, 768, 12, 0},  /* ViT-B/32 image tower, batch 64 */
        {64, 77, 512, 8, 1},   /* text tower */
        {16, 197, 768, 12, 0}, /* ViT-B/16, batch 16 */
        {64, 65, 256, 4, 0},   /* small config (image 64, patch 8, width 256) */
        {64, 17, 256, 8, 0},   /* small config, D = 32 */
    };
    int only = argc > 3 ? atoi(argv[3]) : -1;
    for (int c = 0; c < 5; c++)
      if (only < 0 || only == c) attn(rt, iters, cfg[c][0], cfg[c][1], cfg[c][2], cfg[c][3], cfg[c][4]);
  }
  if (all || !strcmp(what, "head")) {
    head(rt, iters, 64, 64, 512);
    head(rt, iters, 256, 256, 512);
    head(rt, iters, 1024, 1024, 512);
  }
  if (all || !strcmp(what, "optim")) optim(rt, iters, (size_t)151277313);
  clipcl_device_profile_report(rt, stdout);
  clipcl_device_free(rt);
  return 0;
}
