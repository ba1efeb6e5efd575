/* test_elementwise.c: residual add, axpy, scale, clamp and GELU/QuickGELU
 * against the C reference on odd sizes; GELU backward against the reference
 * backward and central finite differences (reference in double, device in
 * float). Tolerances: forward 2e-6 abs + 2e-6 rel (one float rounding of erf/
 * exp); backward likewise plus the accumulated initial value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "ref/ref_elementwise.h"

typedef struct {
  const float *x, *w;
  size_t n;
  int quick;
  cc_rt *rt;
  cc_view dx, dy;
  float *y;
} gelu_ctx;

static double ref_loss(void *p) {
  gelu_ctx *c = p;
  double *y = malloc(c->n * sizeof *y), s;
  ref_gelu_fwd(y, c->x, c->n, c->quick);
  s = th_dot_d(c->w, y, c->n);
  free(y);
  return s;
}

static double dev_loss(void *p) {
  gelu_ctx *c = p;
  th_put(c->rt, c->dx, c->x, c->n);
  TH_OK(cc_gelu_fwd(c->rt, c->dy, c->dx, c->n, c->quick));
  th_get(c->rt, c->dy, c->y, c->n);
  return th_dot(c->w, c->y, c->n);
}

int main(void) {
  cc_rt *rt = th_open();
  const size_t sizes[] = {1, 7, 77, 129, 50 * 768 + 3};
  char name[128];
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    size_t n = sizes[si];
    float *a = th_alloc(n), *b = th_alloc(n), *got = th_alloc(n);
    double *want = th_alloc_d(n);
    th_fill(a, n, -4, 4);
    th_fill(b, n, -4, 4);
    cc_view da = th_dev(rt, a, n), db = th_dev(rt, b, n), dout = th_dev_zero(rt, n);

    TH_OK(cc_add_fwd(rt, dout, da, db, n));
    th_get(rt, dout, got, n);
    for (size_t i = 0; i < n; i++) want[i] = (double)a[i] + b[i];
    snprintf(name, sizeof name, "add_fwd n=%zu", n);
    th_close(name, got, want, n, 0, 1e-7);

    /* residual backward: y += alpha * x */
    TH_OK(cc_axpy(rt, dout, da, 0.5f, n));
    th_get(rt, dout, got, n);
    for (size_t i = 0; i < n; i++) want[i] = ((double)a[i] + b[i]) + 0.5 * a[i];
    snprintf(name, sizeof name, "axpy n=%zu", n);
    th_close(name, got, want, n, 1e-6, 1e-6);

    TH_OK(cc_scale(rt, dout, -2.0f, n));
    th_get(rt, dout, got, n);
    for (size_t i = 0; i < n; i++) want[i] *= -2.0;
    snprintf(name, sizeof name, "scale n=%zu", n);
    th_close(name, got, want, n, 2e-6, 1e-6);

    TH_OK(cc_clamp(rt, da, n, -1.0f, 2.5f));
    th_get(rt, da, got, n);
    for (size_t i = 0; i < n; i++) want[i] = fmin(fmax(a[i], -1.0), 2.5);
    snprintf(name, sizeof name, "clamp n=%zu", n);
    th_close(name, got, want, n, 0, 0);
    th_put(rt, da, a, n);

    for (int quick = 0; quick < 2; quick++) {
      const char *act = quick ? "quickgelu" : "gelu";
      TH_OK(cc_gelu_fwd(rt, dout, da, n, quick));
      th_get(rt, dout, got, n);
      ref_gelu_fwd(want, a, n, quick);
      snprintf(name, sizeof name, "%s_fwd n=%zu", act, n);
      th_close(name, got, want, n, 2e-6, 2e-6);

      /* backward accumulates: start from dinp = 1 */
      float *ones = th_alloc(n);
      for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
      cc_view dgrad = th_dev(rt, ones, n);
      TH_OK(cc_gelu_bwd(rt, dgrad, da, db, n, quick));
      th_get(rt, dgrad, got, n);
      ref_gelu_bwd(want, a, b, n, quick);
      for (size_t i = 0; i < n; i++) want[i] += 1.0;
      snprintf(name, sizeof name, "%s_bwd n=%zu", act, n);
      th_close(name, got, want, n, 4e-6, 4e-6);
      /* the overwriting variant ignores what dinp held */
      cc_view dset = th_dev(rt, ones, n);
      TH_OK(cc_gelu_bwd_set(rt, dset, da, db, n, quick));
      float *gs = th_alloc(n);
      th_get(rt, dset, gs, n);
      for (size_t i = 0; i < n; i++) want[i] -= 1.0;
      snprintf(name, sizeof name, "%s_bwd_set n=%zu", act, n);
      th_close(name, gs, want, n, 4e-6, 4e-6);
      for (size_t i = 0; i < n; i++) want[i] += 1.0;

      if (n <= 129) {
        /* reference backward vs finite differences of the reference forward */
        gelu_ctx c = {a, b, n, quick, rt, da, dout, th_alloc(n)};
        double *g = th_alloc_d(n);
        ref_gelu_bwd(g, a, b, n, quick);
        snprintf(name, sizeof name, "%s ref_bwd vs fd n=%zu", act, n);
        th_fd_check(name, ref_loss, &c, a, n, g, 0, 1e-4, 1e-7, 1e-6);
        /* device backward vs finite differences of the device forward */
        for (size_t i = 0; i < n; i++) got[i] -= 1.0f;
        snprintf(name, sizeof name, "%s dev_bwd vs fd n=%zu", act, n);
        th_fd_check_f(name, dev_loss, &c, a, n, got, 0, 1e-2, 2e-3, 1e-2);
        th_put(rt, da, a, n);
      }
    }
  }
  return th_finish(rt);
}
