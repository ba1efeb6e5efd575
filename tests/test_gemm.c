/* test_gemm.c: cc_gemm against the double reference for every transpose
 * case, batched with strides and padded leading dimensions, alpha/beta/bias,
 * odd sizes (1, 7, 50, 77, 129 ...), on every backend (cpu-tiled with several
 * tile shapes, clblast, naive); colsum (and its determinism) and the linear
 * layer forward/backward, the backward also against finite differences; the
 * epilogue (residual, GELU/QuickGELU, keeping the pre-activation) on every
 * backend and tile set, against the reference product then the reference
 * activation (tolerance as the product's plus GELU's 2e-6).
 * Tolerance: |err| <= 1e-5 * K-scaled magnitude: each output is a K-term float
 * sum of products of values in [-1,1], so we allow 2e-6*sqrt(K)*... we use
 * atol = 1e-5 * sqrt(K) + 1e-6, rtol 1e-5. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/gemm_params.h"
#include "ref/ref_elementwise.h"
#include "ref/ref_gemm.h"

static void check_case(cc_rt *rt, const char *tag, int tA, int tB, int M, int N, int K, int batch, float alpha,
                       float beta, int use_bias, int pad) {
  int lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
  size_t rowsA = tA ? K : M, rowsB = tB ? N : K;
  size_t sA = rowsA * lda + 3 * pad, sB = rowsB * ldb + pad, sC = (size_t)M * ldc + 2 * pad;
  float *A = th_alloc(sA * batch), *B = th_alloc(sB * batch), *C = th_alloc(sC * batch), *bias = th_alloc(N);
  float *got = th_alloc(sC * batch);
  th_fill(A, sA * batch, -1, 1);
  th_fill(B, sB * batch, -1, 1);
  th_fill(C, sC * batch, -1, 1);
  th_fill(bias, N, -1, 1);
  cc_view dA = th_dev(rt, A, sA * batch), dB = th_dev(rt, B, sB * batch), dC = th_dev(rt, C, sC * batch);
  cc_view dbias = th_dev(rt, bias, N);
  cc_gemm_desc g = {.transA = tA, .transB = tB, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                    .A = dA, .B = dB, .C = dC, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batch,
                    .sA = sA, .sB = sB, .sC = sC, .bias = use_bias ? dbias : cc_none()};
  TH_OK(cc_gemm(rt, &g));
  th_get(rt, dC, got, sC * batch);
  double *want = th_alloc_d((size_t)M * N);
  float *gotc = th_alloc((size_t)M * N);
  int ok = 1;
  char name[160];
  snprintf(name, sizeof name, "%s %s%s M%d N%d K%d b%d a%.1f b%.1f%s", tag, tA ? "T" : "N", tB ? "T" : "N", M, N,
           K, batch, alpha, beta, use_bias ? " bias" : "");
  for (int z = 0; z < batch && ok; z++) {
    ref_gemm(want, tA, tB, M, N, K, alpha, A + z * sA, lda, B + z * sB, ldb, beta, C + z * sC, ldc,
             use_bias ? bias : NULL);
    for (int i = 0; i < M; i++) memcpy(gotc + (size_t)i * N, got + z * sC + (size_t)i * ldc, N * sizeof(float));
    ok = th_close(name, gotc, want, (size_t)M * N, 1e-5 * sqrt((double)K) + 1e-6, 1e-5);
    /* the padding between rows and batches is untouched */
    for (int i = 0; i < M && ok; i++)
      for (int j = N; j < ldc; j++)
        if (memcmp(&got[z * sC + (size_t)i * ldc + j], &C[z * sC + (size_t)i * ldc + j], 4)) {
          ok = th_assert(name, 0, "wrote outside C at row %d col %d", i, j);
          break;
        }
  }
}

/* C = epilogue(A (M,K) B^T + bias) with a residual R (leading dimension
 * ldr > N) and activation act; keep: C holds the pre-activation and C2 the
 * activated values. Compared with ref_gemm, + R, then ref_gelu_fwd. */
static void epilogue_case(cc_rt *rt, const char *tag, int M, int N, int K, int resid, int act, int keep) {
  int ldr = N + 3;
  float *A = th_alloc((size_t)M * K), *B = th_alloc((size_t)N * K), *R = th_alloc((size_t)M * ldr);
  float *bias = th_alloc(N), *got = th_alloc((size_t)M * N), *got2 = th_alloc((size_t)M * N);
  th_fill(A, (size_t)M * K, -1, 1);
  th_fill(B, (size_t)N * K, -1, 1);
  th_fill(R, (size_t)M * ldr, -2, 2);
  th_fill(bias, N, -1, 1);
  cc_view dC = th_dev_zero(rt, (size_t)M * N), dC2 = th_dev_zero(rt, (size_t)M * N);
  cc_gemm_desc g = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 1, .A = th_dev(rt, A, (size_t)M * K),
                    .B = th_dev(rt, B, (size_t)N * K), .C = dC, .lda = K, .ldb = K, .ldc = N,
                    .bias = th_dev(rt, bias, N), .resid = resid ? th_dev(rt, R, (size_t)M * ldr) : cc_none(),
                    .ldr = ldr, .act = act, .act_out = keep ? dC2 : cc_none()};
  TH_OK(cc_gemm(rt, &g));
  th_get(rt, dC, got, (size_t)M * N);
  th_get(rt, dC2, got2, (size_t)M * N);
  double *pre = th_alloc_d((size_t)M * N), *post = th_alloc_d((size_t)M * N);
  ref_gemm(pre, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, NULL, N, bias);
  float *pre_f = th_alloc((size_t)M * N);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      if (resid) pre[(size_t)i * N + j] += R[(size_t)i * ldr + j];
      pre_f[(size_t)i * N + j] = (float)pre[(size_t)i * N + j];
    }
  if (act) ref_gelu_fwd(post, pre_f, (size_t)M * N, act == CC_ACT_QUICKGELU);
  double tol = 1e-5 * sqrt((double)K) + 1e-6;
  char name[160];
  snprintf(name, sizeof name, "%s epilogue M%d N%d K%d%s%s%s", tag, M, N, K, resid ? " resid" : "",
           act == CC_ACT_GELU ? " gelu" : act ? " quickgelu" : "", keep ? " keep-pre" : "");
  if (!act) {
    th_close(name, got, pre, (size_t)M * N, tol, 1e-5);
  } else if (keep) {
    th_close(name, got, pre, (size_t)M * N, tol, 1e-5);
    strcat(name, " (activated)");
    th_close(name, got2, post, (size_t)M * N, tol + 2e-6, 2e-5);
  } else {
    th_close(name, got, post, (size_t)M * N, tol + 2e-6, 2e-5);
  }
}

static void epilogue_suite(cc_rt *rt, const char *tag) {
  const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {77, 129, 64}, {50, 33, 300}};
  for (int s = 0; s < 4; s++) {
    const int *d = shapes[s];
    epilogue_case(rt, tag, d[0], d[1], d[2], 1, CC_ACT_NONE, 0);
    epilogue_case(rt, tag, d[0], d[1], d[2], 0, CC_ACT_GELU, 0);
    epilogue_case(rt, tag, d[0], d[1], d[2], 1, CC_ACT_QUICKGELU, 1);
    epilogue_case(rt, tag, d[0], d[1], d[2], 0, CC_ACT_GELU, 1);
  }
  /* a batched product cannot take an epilogue: refused, not ignored */
  cc_view z = th_dev_zero(rt, 4);
  cc_gemm_desc g = {.M = 1, .N = 1, .K = 1, .alpha = 1, .A = z, .B = z, .C = z, .lda = 1, .ldb = 1, .ldc = 1,
                    .batch = 2, .sA = 1, .sB = 1, .sC = 1, .act = CC_ACT_GELU};
  th_assert("batched epilogue refused", cc_gemm(rt, &g) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
}

static void gemm_suite(cc_rt *rt, const char *tag, int full) {
  const int shapes[][3] = {{1, 1, 1},   {7, 5, 3},    {50, 50, 64}, {77, 77, 64},  {129, 33, 7},
                           {13, 129, 50}, {64, 96, 128}, {50, 768, 129}, {33, 17, 300}};
  int ns = (int)(sizeof shapes / sizeof *shapes);
  for (int s = 0; s < ns; s++)
    for (int tA = 0; tA < 2; tA++)
      for (int tB = 0; tB < 2; tB++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        check_case(rt, tag, tA, tB, M, N, K, 1, 1.0f, 0.0f, 0, 0);
        if (full || s % 3 == 0) {
          check_case(rt, tag, tA, tB, M, N, K, 3, 0.5f, 1.0f, 1, 5);
          check_case(rt, tag, tA, tB, M, N, K, 2, -1.5f, 0.25f, (s & 1), 1);
        }
      }
  check_case(rt, tag, 0, 1, 5, 7, 0, 1, 1.0f, 0.5f, 1, 0); /* K = 0: C = beta*C + bias */
}

typedef struct {
  cc_rt *rt;
  float *inp, *w, *b, *wout, *out;
  int N, IC, OC;
  cc_view di, dw, db, dout;
} lin_ctx;

static double lin_loss(void *p) {
  lin_ctx *c = p;
  th_put(c->rt, c->di, c->inp, (size_t)c->N * c->IC);
  th_put(c->rt, c->dw, c->w, (size_t)c->OC * c->IC);
  th_put(c->rt, c->db, c->b, (size_t)c->OC);
  TH_OK(cc_linear_fwd(c->rt, c->dout, c->di, c->dw, c->db, c->N, c->IC, c->OC));
  th_get(c->rt, c->dout, c->out, (size_t)c->N * c->OC);
  return th_dot(c->wout, c->out, (size_t)c->N * c->OC);
}

static void linear_suite(cc_rt *rt) {
  const int shapes[][3] = {{1, 7, 5}, {50, 64, 77}, {7, 129, 33}};
  for (int s = 0; s < 3; s++) {
    int N = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
    size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    lin_ctx c = {rt, th_alloc(ni), th_alloc(nw), th_alloc(OC), th_alloc(no), th_alloc(no), N, IC, OC,
                 {0}, {0}, {0}, {0}};
    th_fill(c.inp, ni, -1, 1);
    th_fill(c.w, nw, -1, 1);
    th_fill(c.b, OC, -1, 1);
    th_fill(c.wout, no, -1, 1);
    c.di = th_dev(rt, c.inp, ni);
    c.dw = th_dev(rt, c.w, nw);
    c.db = th_dev(rt, c.b, OC);
    c.dout = th_dev_zero(rt, no);
    char name[96];
    lin_loss(&c);
    double *want = th_alloc_d(no);
    ref_linear_fwd(want, c.inp, c.w, c.b, N, IC, OC);
    snprintf(name, sizeof name, "linear_fwd N%d IC%d OC%d", N, IC, OC);
    th_close(name, c.out, want, no, 1e-5 * sqrt((double)IC), 1e-5);

    /* backward accumulates into gradients that start at 0.5 */
    float *half_i = th_alloc(ni), *half_w = th_alloc(nw), *half_b = th_alloc(OC);
    for (size_t i = 0; i < ni; i++) half_i[i] = 0.5f;
    for (size_t i = 0; i < nw; i++) half_w[i] = 0.5f;
    for (int i = 0; i < OC; i++) half_b[i] = 0.5f;
    cc_view gi = th_dev(rt, half_i, ni), gw = th_dev(rt, half_w, nw), gb = th_dev(rt, half_b, OC);
    cc_view dy = th_dev(rt, c.wout, no);
    TH_OK(cc_linear_bwd(rt, gi, gw, gb, dy, c.di, c.dw, N, IC, OC));
    float *ggi = th_alloc(ni), *ggw = th_alloc(nw), *ggb = th_alloc(OC);
    th_get(rt, gi, ggi, ni);
    th_get(rt, gw, ggw, nw);
    th_get(rt, gb, ggb, OC);
    double *ri = th_alloc_d(ni), *rw = th_alloc_d(nw), *rb = th_alloc_d(OC);
    ref_linear_bwd(ri, rw, rb, c.wout, c.inp, c.w, N, IC, OC);
    for (size_t i = 0; i < ni; i++) ri[i] += 0.5;
    for (size_t i = 0; i < nw; i++) rw[i] += 0.5;
    for (int i = 0; i < OC; i++) rb[i] += 0.5;
    snprintf(name, sizeof name, "linear_bwd dinp N%d IC%d OC%d", N, IC, OC);
    th_close(name, ggi, ri, ni, 1e-5 * sqrt((double)OC), 1e-5);
    snprintf(name, sizeof name, "linear_bwd dw N%d IC%d OC%d", N, IC, OC);
    th_close(name, ggw, rw, nw, 1e-5 * sqrt((double)N), 1e-5);
    snprintf(name, sizeof name, "linear_bwd db N%d IC%d OC%d", N, IC, OC);
    th_close(name, ggb, rb, OC, 1e-5 * sqrt((double)N), 1e-5);
    /* the overwriting variant: dinp = dout @ w whatever it held; dw, db still add */
    cc_view si = th_dev(rt, half_i, ni);
    TH_OK(cc_linear_bwd_set(rt, si, cc_none(), cc_none(), dy, c.di, c.dw, N, IC, OC));
    float *gsi = th_alloc(ni);
    th_get(rt, si, gsi, ni);
    for (size_t i = 0; i < ni; i++) ri[i] -= 0.5;
    snprintf(name, sizeof name, "linear_bwd_set dinp N%d IC%d OC%d", N, IC, OC);
    th_close(name, gsi, ri, ni, 1e-5 * sqrt((double)OC), 1e-5);
    for (size_t i = 0; i < ni; i++) ri[i] += 0.5;
    /* finite differences of the device forward vs the device gradient */
    for (size_t i = 0; i < ni; i++) ggi[i] -= 0.5f;
    for (size_t i = 0; i < nw; i++) ggw[i] -= 0.5f;
    for (int i = 0; i < OC; i++) ggb[i] -= 0.5f;
    snprintf(name, sizeof name, "linear dinp vs fd N%d", N);
    th_fd_check_f(name, lin_loss, &c, c.inp, ni, ggi, 40, 1e-2, 2e-3, 5e-3);
    snprintf(name, sizeof name, "linear dw vs fd N%d", N);
    th_fd_check_f(name, lin_loss, &c, c.w, nw, ggw, 40, 1e-2, 2e-3, 5e-3);
    snprintf(name, sizeof name, "linear db vs fd N%d", N);
    th_fd_check_f(name, lin_loss, &c, c.b, OC, ggb, 40, 1e-2, 2e-3, 5e-3);
    /* reference backward vs finite differences of the reference forward */
    double *y = th_alloc_d(no);
    double base = 0;
    (void)base;
    size_t j = ni / 2;
    float keep = c.inp[j];
    c.inp[j] = keep + 1e-3f;
    double hp = (double)c.inp[j] - keep;
    ref_linear_fwd(y, c.inp, c.w, c.b, N, IC, OC);
    double lp = th_dot_d(c.wout, y, no);
    c.inp[j] = keep - 1e-3f;
    double hm = keep - (double)c.inp[j];
    ref_linear_fwd(y, c.inp, c.w, c.b, N, IC, OC);
    double lm = th_dot_d(c.wout, y, no);
    c.inp[j] = keep;
    double fd = (lp - lm) / (hp + hm);
    snprintf(name, sizeof name, "linear ref_bwd vs fd N%d", N);
    th_assert(name, fabs(fd - (ri[j] - 0.5)) < 1e-6 * (1 + fabs(fd)), "fd %.9g ref %.9g", fd, ri[j] - 0.5);
  }
}

static void colsum_suite(cc_rt *rt) {
  const int shapes[][2] = {{1, 1}, {7, 129}, {3200, 77}, {129, 768}};
  for (int s = 0; s < 4; s++) {
    int R = shapes[s][0], Cc = shapes[s][1], ld = Cc + 3;
    float *x = th_alloc((size_t)R * ld), *got = th_alloc(Cc), *again = th_alloc(Cc);
    th_fill(x, (size_t)R * ld, -1, 1);
    cc_view dx = th_dev(rt, x, (size_t)R * ld), dout = th_dev_zero(rt, Cc);
    TH_OK(cc_colsum(rt, dout, dx, R, Cc, ld, 0));
    th_get(rt, dout, got, Cc);
    double *want = th_alloc_d(Cc);
    for (int j = 0; j < Cc; j++)
      for (int i = 0; i < R; i++) want[j] += x[(size_t)i * ld + j];
    char name[64];
    snprintf(name, sizeof name, "colsum %dx%d", R, Cc);
    th_close(name, got, want, Cc, 1e-6 * sqrt((double)R) * 4, 1e-6);
    TH_OK(cc_colsum(rt, dout, dx, R, Cc, ld, 0));
    th_get(rt, dout, again, Cc);
    snprintf(name, sizeof name, "colsum %dx%d deterministic", R, Cc);
    th_same_bits(name, got, again, Cc);
  }
}

/* Every C element is one in-order sum over k whatever the tile shape, so
 * results are bitwise independent of MR/NV/MB/KU/PA/KI (KC = 0): training
 * runs reproduce across tuned parameter sets. */
static void tile_independence(cc_rt *rt) {
  const int M = 77, N = 129, K = 200;
  float *A = th_alloc((size_t)M * K), *B = th_alloc((size_t)N * K), *c1 = th_alloc((size_t)M * N),
        *c2 = th_alloc((size_t)M * N);
  th_fill(A, (size_t)M * K, -1, 1);
  th_fill(B, (size_t)N * K, -1, 1);
  cc_view dA = th_dev(rt, A, (size_t)M * K), dB = th_dev(rt, B, (size_t)N * K), dC = th_dev_zero(rt, (size_t)M * N);
  const cc_gemm_params ps[] = {{6, 3, 4, 16, 0, 0, 0, 0, 1}, {12, 2, 1, 8, 1, 0, 0, 0, 0}, {4, 1, 8, 2, 0, 0, 0, 0, 1},
                                {6, 2, 4, 4, 0, 0, 48, 0, 0}, {5, 2, 2, 3, 1, 0, 7, 0, 1}};
  for (int tb = 0; tb < 2; tb++) {
    for (int i = 0; i < 5; i++) {
      TH_OK(cc_gemm_set_params(rt, &ps[i]));
      cc_gemm_desc g = {.transB = tb, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = dA, .B = dB, .C = dC, .lda = K,
                        .ldb = tb ? K : N, .ldc = N};
      TH_OK(cc_gemm(rt, &g));
      th_get(rt, dC, i ? c2 : c1, (size_t)M * N);
      if (i) {
        char name[96];
        snprintf(name, sizeof name, "same bits with tile set %d (%s)", i, tb ? "NT" : "NN");
        th_same_bits(name, c2, c1, (size_t)M * N);
      }
    }
  }
}

/* --cpu-only: the CPU kernels alone with three tile sets (tests/kernels_vw.sh
 * runs that at every vector width). */
int main(int argc, char **argv) {
  int cpu_only = argc > 1 && !strcmp(argv[1], "--cpu-only");
  /* each backend gets its own device handle: the choice is made at first use */
  const char *backends[] = {"cpu", "naive", "clblast"};
  cc_rt *rt = NULL;
  for (int b = 0; b < (cpu_only ? 1 : 3); b++) {
    setenv("CLIPCL_GEMM", backends[b], 1);
    if (rt) clipcl_device_free(rt);
    rt = th_open();
    th_assert("backend", !strcmp(cc_gemm_backend(rt), b == 0 ? "cpu-tiled" : backends[b]), "%s",
              cc_gemm_backend(rt));
    if (b == 0) {
      /* several tile shapes, so both full tiles and edges of each run */
      /* PF (prefetch of the next B panel) on in some, off in others */
      const cc_gemm_params ps[] = {{12, 2, 4, 8, 1, 0, 0, 0, 1},  {4, 1, 1, 1, 0, 0, 0, 0, 1},
                                   {6, 3, 2, 3, 1, 64, 0, 0, 0},  {16, 1, 8, 2, 0, 7, 0, 0, 1},
                                   {5, 2, 3, 4, 0, 0, 0, 0, 1},   {6, 3, 4, 16, 0, 0, 0, 0, 0},
                                   {6, 2, 4, 5, 0, 0, 40, 0, 1},  {4, 3, 4, 32, 1, 0, 128, 0, 0}};
      for (int i = 0; i < 8; i++) {
        if (cpu_only && i != 0 && i != 4 && i != 6) continue;
        TH_OK(cc_gemm_set_params(rt, &ps[i]));
        char tag[64];
        snprintf(tag, sizeof tag, "cpu MR%d NV%d KU%d MB%d PA%d KC%d KI%d PF%d", ps[i].MR, ps[i].NV, ps[i].KU,
                 ps[i].MB, ps[i].PA, ps[i].KC, ps[i].KI, ps[i].PF);
        gemm_suite(rt, tag, i == 0);
        epilogue_suite(rt, tag);
      }
      tile_independence(rt);
      TH_OK(cc_gemm_set_params(rt, &ps[0]));
      linear_suite(rt);
      colsum_suite(rt);
    } else {
      gemm_suite(rt, backends[b], 0);
      epilogue_suite(rt, backends[b]);
    }
  }
  unsetenv("CLIPCL_GEMM");
  return th_finish(rt);
}
