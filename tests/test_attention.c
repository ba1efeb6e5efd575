/* test_attention.c: cc_attention_fwd/bwd against the double reference
 * (tests/ref/ref_attn.c) on odd shapes (T = 1, 7, 17, 50, 65, 77, 197; heads
 * 1..12; D = 8, 32, 64), causal and not; the saved q|k|v permutation and
 * probabilities; backward accumulation into a non-zero gradient; the
 * reference backward against finite differences of the reference forward;
 * the device backward against finite differences of the device forward; run
 * twice, same bits; bad sizes refused. Both implementations (CLIPCL_ATTN=cpu,
 * the per-head CPU kernels, and gemm, batched cc_gemm around a softmax) run
 * every case.
 *
 * Tolerances. Forward: each output is a T-term convex combination of values
 * in [-r, r] computed in float, probabilities carry ~1e-7 relative error from
 * exp and the score GEMM: atol 1e-5*r, rtol 1e-5. Probabilities atol 1e-6.
 * Backward: sums of T*D products, atol 2e-5*r*r*sqrt(T), rtol 1e-4.
 * Reference FD (double, h 1e-3 on float inputs, so the actual step is used):
 * truncation ~h^2 f''' ~ 1e-6: atol 1e-6, rtol 1e-5. Device FD (float, h
 * 1e-2): the loss sum(w .* out) carries float rounding ~1e-7 * sqrt(n) which
 * the 2h division amplifies to ~1e-4, truncation ~1e-4: atol 2e-3, rtol 1e-2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_attn.h"

typedef struct {
  cc_rt *rt;
  float *qkv, *w, *out;
  int B, T, C, H, causal;
  cc_view dqkv, dout, dqkvr, datt;
  double *ref_out;
} attn_ctx;

static double ref_loss(void *p) {
  attn_ctx *c = p;
  ref_attention_fwd(c->ref_out, NULL, c->qkv, c->B, c->T, c->C, c->H, c->causal);
  return th_dot_d(c->w, c->ref_out, (size_t)c->B * c->T * c->C);
}

static double dev_loss(void *p) {
  attn_ctx *c = p;
  size_t n = (size_t)c->B * c->T * c->C;
  th_put(c->rt, c->dqkv, c->qkv, 3 * n);
  TH_OK(cc_attention_fwd(c->rt, c->dout, c->dqkvr, c->datt, c->dqkv, c->B, c->T, c->C, c->H, c->causal));
  th_get(c->rt, c->dout, c->out, n);
  return th_dot(c->w, c->out, n);
}

static void attn_case(cc_rt *rt, int B, int T, int C, int H, int causal, float r, int fd) {
  int D = C / H;
  size_t n = (size_t)B * T * C, natt = (size_t)B * H * T * T;
  char tag[96], name[160];
  snprintf(tag, sizeof tag, "B%d T%d C%d H%d%s", B, T, C, H, causal ? " causal" : "");
  attn_ctx c = {rt, th_alloc(3 * n), th_alloc(n), th_alloc(n), B, T, C, H, causal,
                {0}, {0}, {0}, {0}, th_alloc_d(n)};
  th_fill(c.qkv, 3 * n, -r, r);
  th_fill(c.w, n, -1, 1);
  c.dqkv = th_dev(rt, c.qkv, 3 * n);
  c.dout = th_dev_zero(rt, n);
  c.dqkvr = th_dev_zero(rt, 3 * n);
  c.datt = th_dev_zero(rt, natt);

  /* forward */
  TH_OK(cc_attention_fwd(rt, c.dout, c.dqkvr, c.datt, c.dqkv, B, T, C, H, causal));
  float *out = th_alloc(n), *att = th_alloc(natt), *qkvr = th_alloc(3 * n), *again = th_alloc(n);
  th_get(rt, c.dout, out, n);
  th_get(rt, c.datt, att, natt);
  th_get(rt, c.dqkvr, qkvr, 3 * n);
  double *want = th_alloc_d(n), *want_att = th_alloc_d(natt);
  ref_attention_fwd(want, want_att, c.qkv, B, T, C, H, causal);
  snprintf(name, sizeof name, "fwd out %s", tag);
  th_close(name, out, want, n, 1e-5 * r, 1e-5);
  snprintf(name, sizeof name, "fwd att %s", tag);
  th_close(name, att, want_att, natt, 1e-6, 1e-5);
  /* saved q|k|v layout (3,B,H,T,D): a pure permutation, exact */
  int perm_ok = 1;
  for (int s = 0; s < 3 && perm_ok; s++)
    for (int b = 0; b < B && perm_ok; b++)
      for (int h = 0; h < H && perm_ok; h++)
        for (int t = 0; t < T && perm_ok; t++)
          for (int d = 0; d < D; d++) {
            float x = qkvr[((((size_t)s * B + b) * H + h) * T + t) * D + d];
            float y = c.qkv[((size_t)b * T + t) * 3 * C + (size_t)s * C + (size_t)h * D + d];
            if (memcmp(&x, &y, 4)) {
              perm_ok = 0;
              break;
            }
          }
  snprintf(name, sizeof name, "fwd qkvr layout %s", tag);
  th_assert(name, perm_ok, "");
  if (causal) {
    size_t bad = 0;
    for (size_t z = 0; z < (size_t)B * H; z++)
      for (int i = 0; i < T; i++)
        for (int j = i + 1; j < T; j++) bad += att[(z * T + i) * T + j] != 0.0f;
    snprintf(name, sizeof name, "fwd masked att exactly 0 %s", tag);
    th_assert(name, bad == 0, "%zu masked entries non-zero", bad);
  }
  TH_OK(cc_attention_fwd(rt, c.dout, c.dqkvr, c.datt, c.dqkv, B, T, C, H, causal));
  th_get(rt, c.dout, again, n);
  snprintf(name, sizeof name, "fwd twice same bits %s", tag);
  th_same_bits(name, out, again, n);

  /* backward, accumulating into a gradient that starts at 0.5 */
  float *g0 = th_alloc(3 * n), *got = th_alloc(3 * n);
  for (size_t i = 0; i < 3 * n; i++) g0[i] = 0.5f;
  cc_view dgrad = th_dev(rt, g0, 3 * n), ddout = th_dev(rt, c.w, n);
  TH_OK(cc_attention_bwd(rt, dgrad, ddout, c.dqkvr, c.datt, B, T, C, H, causal));
  th_get(rt, dgrad, got, 3 * n);
  double *gref = th_alloc_d(3 * n), *gacc = th_alloc_d(3 * n);
  ref_attention_bwd(gref, c.w, c.qkv, B, T, C, H, causal);
  for (size_t i = 0; i < 3 * n; i++) gacc[i] = gref[i] + 0.5;
  snprintf(name, sizeof name, "bwd dqkv %s", tag);
  th_close(name, got, gacc, 3 * n, 2e-5 * r * r * sqrt((double)T), 1e-4);

  if (fd) {
    snprintf(name, sizeof name, "ref bwd vs fd %s", tag);
    th_fd_check(name, ref_loss, &c, c.qkv, 3 * n, gref, 60, 1e-3, 1e-6, 1e-5);
    for (size_t i = 0; i < 3 * n; i++) got[i] -= 0.5f;
    snprintf(name, sizeof name, "dev bwd vs fd %s", tag);
    th_fd_check_f(name, dev_loss, &c, c.qkv, 3 * n, got, 60, 1e-2, 2e-3, 1e-2);
  }
}

int main(void) {
  cc_rt *rt = th_open();
  /* B, T, C, H, range, fd */
  const struct {
    int B, T, C, H;
    float r;
    int fd;
  } cases[] = {
      {1, 1, 8, 1, 1.0f, 1},    {2, 7, 24, 3, 2.0f, 1},    {3, 50, 64, 2, 1.0f, 1},
      {2, 77, 96, 12, 2.0f, 1}, {2, 17, 64, 2, 3.0f, 0},   {1, 65, 128, 2, 1.0f, 0},
      {1, 197, 64, 1, 1.0f, 0}, {5, 3, 10, 5, 1.0f, 1},
  };
  /* both implementations: the per-head CPU kernels and the GEMM path */
  const char *paths[] = {"cpu", "gemm"};
  for (int pi = 0; pi < 2; pi++) {
    setenv("CLIPCL_ATTN", paths[pi], 1);
    printf("-- CLIPCL_ATTN=%s\n", paths[pi]);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
      for (int causal = 0; causal < 2; causal++)
        attn_case(rt, cases[i].B, cases[i].T, cases[i].C, cases[i].H, causal, cases[i].r, cases[i].fd);
  }
  unsetenv("CLIPCL_ATTN");

  /* sizes are validated before anything is enqueued */
  cc_view x = th_dev_zero(rt, 64);
  th_assert("C not a multiple of H refused",
            cc_attention_fwd(rt, x, x, x, x, 1, 2, 10, 3, 0) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  th_assert("zero T refused", cc_attention_bwd(rt, x, x, x, x, 1, 0, 8, 2, 1) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  return th_finish(rt);
}
