/* test_layernorm.c: cc_layernorm_fwd/bwd against the double reference on odd
 * shapes, in both kernel shapes (LANES=1, the CPU one, and LANES=64, the GPU
 * one, selected with CLIPCL_LN_LANES), plus gradient checks and determinism.
 *
 * Checks and tolerances (inputs U(-2,2), w U(0.5,1.5), b and dout U(-1,1)):
 *  - forward out, mean, rstd: atol 1e-5 + rtol 1e-5 (float row sums of up to
 *    768 terms, two-pass statistics); one shape adds 50 to every input to
 *    check that the variance does not cancel;
 *  - backward vs the reference backward, gradients starting at 0.25: dinp
 *    atol 2e-5 rtol 1e-5, dw/db atol 2e-6*sqrt(N)+1e-5 rtol 1e-5 (a float
 *    sum over N rows);
 *  - reference backward vs central differences of the reference forward
 *    (double, h 1e-3 in float steps): atol 1e-6 rtol 1e-5;
 *  - device backward vs central differences of the device forward (float,
 *    h 1e-2; a changed input only changes its own row, so the loss noise is
 *    about sqrt(C)*6e-8 and the fd noise below 1e-4; truncation is O(h^2)):
 *    atol 1e-3 rtol 1e-2;
 *  - the backward run twice gives the same bits (dinp, dw, db), on a shape
 *    with more rows than chunks; each optional gradient can be left out.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_nn.h"

typedef struct {
  cc_rt *rt;
  int N, C;
  float *x, *w, *b, *proj, *y;
  cc_view dx, dw, db, dy, dmean, drstd;
} ln_ctx;

static double ref_loss(void *p) {
  ln_ctx *c = p;
  size_t n = (size_t)c->N * c->C;
  double *y = malloc(n * sizeof *y);
  ref_layernorm_fwd(y, NULL, NULL, c->x, c->w, c->b, c->N, c->C);
  double s = th_dot_d(c->proj, y, n);
  free(y);
  return s;
}

static double dev_loss(void *p) {
  ln_ctx *c = p;
  size_t n = (size_t)c->N * c->C;
  th_put(c->rt, c->dx, c->x, n);
  th_put(c->rt, c->dw, c->w, c->C);
  th_put(c->rt, c->db, c->b, c->C);
  TH_OK(cc_layernorm_fwd(c->rt, c->dy, c->dmean, c->drstd, c->dx, c->dw, c->db, c->N, c->C));
  th_get(c->rt, c->dy, c->y, n);
  return th_dot(c->proj, c->y, n);
}

static float *filled(size_t n, float v) {
  float *x = th_alloc(n);
  for (size_t i = 0; i < n; i++) x[i] = v;
  return x;
}

static void run_bwd(cc_rt *rt, ln_ctx *c, float *gi, float *gw, float *gb, int want_i, int want_w,
                    int want_b) {
  size_t n = (size_t)c->N * c->C;
  float *q = filled(n, 0.25f), *qc = filled(c->C, 0.25f);
  cc_view vi = th_dev(rt, q, n), vw = th_dev(rt, qc, c->C), vb = th_dev(rt, qc, c->C);
  cc_view dout = th_dev(rt, c->proj, n);
  TH_OK(cc_layernorm_bwd(rt, want_i ? vi : cc_none(), want_w ? vw : cc_none(), want_b ? vb : cc_none(),
                         dout, c->dx, c->dw, c->dmean, c->drstd, c->N, c->C));
  th_get(rt, vi, gi, n);
  th_get(rt, vw, gw, c->C);
  th_get(rt, vb, gb, c->C);
}

static void check_shape(cc_rt *rt, int lanes, int N, int C, float shift, int fd) {
  size_t n = (size_t)N * C;
  char tag[64], name[160];
  snprintf(tag, sizeof tag, "L%d N%d C%d%s", lanes, N, C, shift != 0 ? " shifted" : "");
  ln_ctx c = {rt, N, C, th_alloc(n), th_alloc(C), th_alloc(C), th_alloc(n), th_alloc(n),
              {0}, {0}, {0}, {0}, {0}, {0}};
  th_fill(c.x, n, -2, 2);
  for (size_t i = 0; i < n; i++) c.x[i] += shift;
  th_fill(c.w, C, 0.5f, 1.5f);
  th_fill(c.b, C, -1, 1);
  th_fill(c.proj, n, -1, 1);
  c.dx = th_dev(rt, c.x, n);
  c.dw = th_dev(rt, c.w, C);
  c.db = th_dev(rt, c.b, C);
  c.dy = th_dev_zero(rt, n);
  c.dmean = th_dev_zero(rt, N);
  c.drstd = th_dev_zero(rt, N);

  /* forward */
  dev_loss(&c);
  double *y = th_alloc_d(n), *m = th_alloc_d(N), *rs = th_alloc_d(N);
  ref_layernorm_fwd(y, m, rs, c.x, c.w, c.b, N, C);
  float *gm = th_alloc(N), *grs = th_alloc(N);
  th_get(rt, c.dmean, gm, N);
  th_get(rt, c.drstd, grs, N);
  snprintf(name, sizeof name, "ln_fwd out %s", tag);
  th_close(name, c.y, y, n, 1e-5, 1e-5);
  snprintf(name, sizeof name, "ln_fwd mean %s", tag);
  th_close(name, gm, m, N, 1e-5, 1e-5);
  snprintf(name, sizeof name, "ln_fwd rstd %s", tag);
  th_close(name, grs, rs, N, 1e-5, 1e-5);

  /* backward, accumulating onto 0.25 */
  float *gi = th_alloc(n), *gw = th_alloc(C), *gb = th_alloc(C);
  run_bwd(rt, &c, gi, gw, gb, 1, 1, 1);
  double *ri = th_alloc_d(n), *rw = th_alloc_d(C), *rb = th_alloc_d(C);
  ref_layernorm_bwd(ri, rw, rb, c.proj, c.x, c.w, N, C);
  for (size_t i = 0; i < n; i++) ri[i] += 0.25;
  for (int i = 0; i < C; i++) {
    rw[i] += 0.25;
    rb[i] += 0.25;
  }
  double red_atol = 2e-6 * sqrt((double)N) + 1e-5;
  snprintf(name, sizeof name, "ln_bwd dinp %s", tag);
  th_close(name, gi, ri, n, 2e-5, 1e-5);
  snprintf(name, sizeof name, "ln_bwd dw %s", tag);
  th_close(name, gw, rw, C, red_atol, 1e-5);
  snprintf(name, sizeof name, "ln_bwd db %s", tag);
  th_close(name, gb, rb, C, red_atol, 1e-5);

  /* same bits on a second run */
  float *gi2 = th_alloc(n), *gw2 = th_alloc(C), *gb2 = th_alloc(C);
  run_bwd(rt, &c, gi2, gw2, gb2, 1, 1, 1);
  snprintf(name, sizeof name, "ln_bwd deterministic dinp %s", tag);
  th_same_bits(name, gi, gi2, n);
  snprintf(name, sizeof name, "ln_bwd deterministic dw %s", tag);
  th_same_bits(name, gw, gw2, C);
  snprintf(name, sizeof name, "ln_bwd deterministic db %s", tag);
  th_same_bits(name, gb, gb2, C);

  /* optional gradients: each subset gives the same values for what it has
   * and leaves the others untouched */
  const int subsets[][3] = {{1, 0, 0}, {0, 1, 1}, {0, 1, 0}, {0, 0, 1}};
  for (int s = 0; s < 4; s++) {
    int wi = subsets[s][0], ww = subsets[s][1], wb = subsets[s][2];
    run_bwd(rt, &c, gi2, gw2, gb2, wi, ww, wb);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) ok = wi ? gi2[i] == gi[i] : gi2[i] == 0.25f;
    for (int i = 0; i < C && ok; i++)
      ok = (ww ? gw2[i] == gw[i] : gw2[i] == 0.25f) && (wb ? gb2[i] == gb[i] : gb2[i] == 0.25f);
    snprintf(name, sizeof name, "ln_bwd subset i%d w%d b%d %s", wi, ww, wb, tag);
    th_assert(name, ok, "%s", ok ? "" : "differs from the full backward");
  }

  if (!fd) return;
  for (size_t i = 0; i < n; i++) gi[i] -= 0.25f;
  for (int i = 0; i < C; i++) {
    gw[i] -= 0.25f;
    gb[i] -= 0.25f;
  }
  for (size_t i = 0; i < n; i++) ri[i] -= 0.25;
  for (int i = 0; i < C; i++) {
    rw[i] -= 0.25;
    rb[i] -= 0.25;
  }
  snprintf(name, sizeof name, "ln ref_bwd dinp vs fd %s", tag);
  th_fd_check(name, ref_loss, &c, c.x, n, ri, 60, 1e-3, 1e-6, 1e-5);
  snprintf(name, sizeof name, "ln ref_bwd dw vs fd %s", tag);
  th_fd_check(name, ref_loss, &c, c.w, C, rw, 60, 1e-3, 1e-6, 1e-5);
  snprintf(name, sizeof name, "ln ref_bwd db vs fd %s", tag);
  th_fd_check(name, ref_loss, &c, c.b, C, rb, 60, 1e-3, 1e-6, 1e-5);
  snprintf(name, sizeof name, "ln dev_bwd dinp vs fd %s", tag);
  th_fd_check_f(name, dev_loss, &c, c.x, n, gi, 60, 1e-2, 1e-3, 1e-2);
  snprintf(name, sizeof name, "ln dev_bwd dw vs fd %s", tag);
  th_fd_check_f(name, dev_loss, &c, c.w, C, gw, 60, 1e-2, 1e-3, 1e-2);
  snprintf(name, sizeof name, "ln dev_bwd db vs fd %s", tag);
  th_fd_check_f(name, dev_loss, &c, c.b, C, gb, 60, 1e-2, 1e-3, 1e-2);
  th_put(rt, c.dx, c.x, n);
}

int main(void) {
  cc_rt *rt = th_open();
  const int lanes[] = {1, 64};
  for (int li = 0; li < 2; li++) {
    char v[16];
    snprintf(v, sizeof v, "%d", lanes[li]);
    setenv("CLIPCL_LN_LANES", v, 1);
    check_shape(rt, lanes[li], 1, 1, 0, 0);
    check_shape(rt, lanes[li], 1, 7, 0, 1);
    check_shape(rt, lanes[li], 7, 50, 0, 1);
    check_shape(rt, lanes[li], 3, 129, 0, 1);
    check_shape(rt, lanes[li], 50, 77, 50.0f, 0);
    check_shape(rt, lanes[li], 77, 129, 0, 0);
    check_shape(rt, lanes[li], 129, 768, 0, 0);
    check_shape(rt, lanes[li], 3200, 256, 0, 0);
  }
  /* a bad override is an error, not a silent fallback */
  setenv("CLIPCL_LN_LANES", "3", 1);
  cc_view z = th_dev_zero(rt, 16);
  th_assert("CLIPCL_LN_LANES=3 rejected",
            cc_layernorm_fwd(rt, z, z, z, z, z, z, 1, 4) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  unsetenv("CLIPCL_LN_LANES");
  th_assert("negative size rejected", cc_layernorm_fwd(rt, z, z, z, z, z, z, -1, 4) == CLIPCL_ERR_ARG,
            "%s", clipcl_last_error());
  return th_finish(rt);
}
