/* test_optim.c: the optimiser ops. cc_global_norm against a compensated
 * double sum on sizes around the chunk boundary and at 16.7M elements (where
 * a plain float running sum would be off by percents), on both the fp64 and
 * the compensated-float second stage, twice with the same bits;
 * cc_clip_factor against clip_grad_norm_'s formula; cc_adamw over several
 * steps with a changing learning rate against the double reference, with
 * every mask value (frozen entries keep p, m, v bit for bit even with
 * non-zero gradients) and with a device gradient scale from the clipping
 * ops; and against torch.optim.AdamW itself (tests/data/adamw.fx, from
 * tests/tools/make_train_fixtures.py), plain and after clip_grad_norm_.
 *
 * Tolerances: the norm 1e-6 relative (per-chunk float partials of 256-term
 * lanes carry ~1e-7). AdamW vs the double reference: each step rounds a few
 * float operations (~2e-7 relative on the update, ~1e-7 on p), so p within
 * 1e-6 relative after 6 steps; m and v relative 1e-5 plus an absolute floor
 * of 1e-6 of their scale, for the cancellation in m*beta1 + (1-beta1)*g.
 * Against PyTorch: p within 1e-6 relative (the brief's bound), m and v as
 * against the reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_fixture.h"
#include "ref/ref_optim.h"

static void norm_case(cc_rt *rt, size_t n, const char *path) {
  float *x = th_alloc(n);
  th_fill(x, n, -1, 1);
  if (n > 10) x[n / 2] = 300.0f; /* one large entry among many small ones */
  cc_view dx = th_dev(rt, x, n), out = th_dev_zero(rt, 1);
  float got[2];
  TH_OK(cc_global_norm(rt, out, dx, n));
  th_get(rt, out, got, 1);
  TH_OK(cc_global_norm(rt, out, dx, n));
  th_get(rt, out, got + 1, 1);
  double want = ref_global_norm(x, n);
  char name[96];
  snprintf(name, sizeof name, "global_norm n=%zu %s", n, path);
  th_close(name, got, &want, 1, 0, 1e-6);
  snprintf(name, sizeof name, "global_norm twice same bits n=%zu %s", n, path);
  th_same_bits(name, got, got + 1, 1);
}

static void clip_case(cc_rt *rt, float norm, float max_norm) {
  cc_view dn = th_dev(rt, &norm, 1), ds = th_dev_zero(rt, 1);
  float got;
  TH_OK(cc_clip_factor(rt, ds, dn, max_norm));
  th_get(rt, ds, &got, 1);
  /* PyTorch computes it in float: max_norm / (norm + 1e-6), clamped at 1 */
  double want = ref_clip_factor(norm, max_norm);
  char name[96];
  snprintf(name, sizeof name, "clip_factor norm %g max %g", norm, max_norm);
  th_close(name, &got, &want, 1, 0, 2e-7);
}

/* Several AdamW steps on the device against the double reference. */
static void adamw_vs_ref(cc_rt *rt, size_t n, int clip) {
  float *p = th_alloc(n), *g = th_alloc(n), *m0 = th_alloc(n), *v0 = th_alloc(n);
  unsigned char *mask = malloc(n + 3);
  double *rp = th_alloc_d(n), *rm = th_alloc_d(n), *rv = th_alloc_d(n);
  th_fill(p, n, -1, 1);
  /* non-zero starting moments, as after earlier steps */
  th_fill(m0, n, -1e-3f, 1e-3f);
  th_fill(v0, n, 0, 1e-6f);
  for (size_t i = 0; i < n; i++) {
    mask[3 + i] = (unsigned char)(i % 3 == 2 ? 2 : th_uniform() < 0.5); /* all three kinds */
    rp[i] = p[i], rm[i] = m0[i], rv[i] = v0[i];
  }
  cc_view dp = th_dev(rt, p, n), dm = th_dev(rt, m0, n), dv = th_dev(rt, v0, n), dg = th_dev_zero(rt, n);
  cc_view dnorm = th_dev_zero(rt, 1), dscale = th_dev_zero(rt, 1);
  cl_mem dmask;
  TH_OK(cc_buffer(rt, n + 3, &dmask, "mask"));
  if (clEnqueueWriteBuffer(cc_queue(rt), dmask, CL_TRUE, 0, n + 3, mask, 0, NULL, NULL) != CL_SUCCESS) {
    th_assert("mask upload", 0, "");
    return;
  }
  const float lr0 = 1e-2f, b1 = 0.9f, b2 = 0.98f, eps = 1e-6f, wd = 0.2f, max_norm = 0.5f;
  const int steps = 6;
  for (int t = 1; t <= steps; t++) {
    float mag = t % 2 ? 1e-2f : 1e-4f; /* alternately above and below the clip norm */
    th_fill(g, n, -mag, mag);
    th_put(rt, dg, g, n);
    float lr = lr0 * t / steps;
    double gscale = 1;
    if (clip) {
      TH_OK(cc_global_norm(rt, dnorm, dg, n));
      TH_OK(cc_clip_factor(rt, dscale, dnorm, max_norm));
      gscale = ref_clip_factor(ref_global_norm(g, n), max_norm);
    }
    cc_adamw_hparams h = {lr, b1, b2, eps, wd, t};
    TH_OK(cc_adamw(rt, dp, dg, dm, dv, dmask, 3, clip ? dscale : cc_none(), n, &h));
    ref_adamw(rp, rm, rv, g, mask + 3, n, gscale, 1e-2 * t / steps, 0.9, 0.98, 1e-6, 0.2, t);
  }
  float *gp = th_alloc(n), *gm = th_alloc(n), *gv = th_alloc(n);
  th_get(rt, dp, gp, n);
  th_get(rt, dm, gm, n);
  th_get(rt, dv, gv, n);
  char name[96];
  snprintf(name, sizeof name, "adamw %d steps vs ref p n=%zu%s", steps, n, clip ? " clipped" : "");
  th_close(name, gp, rp, n, 1e-7, 1e-6);
  snprintf(name, sizeof name, "adamw %d steps vs ref m n=%zu%s", steps, n, clip ? " clipped" : "");
  th_close(name, gm, rm, n, 1e-9, 1e-5);
  snprintf(name, sizeof name, "adamw %d steps vs ref v n=%zu%s", steps, n, clip ? " clipped" : "");
  th_close(name, gv, rv, n, 1e-12, 1e-5);
  size_t moved = 0, frozen_changed = 0;
  for (size_t i = 0; i < n; i++) {
    if (mask[3 + i] == 2)
      frozen_changed += memcmp(&gp[i], &p[i], 4) || memcmp(&gm[i], &m0[i], 4) || memcmp(&gv[i], &v0[i], 4);
    else
      moved += gp[i] != p[i];
  }
  snprintf(name, sizeof name, "adamw frozen untouched n=%zu%s", n, clip ? " clipped" : "");
  th_assert(name, frozen_changed == 0 && moved > 0, "%zu frozen entries changed, %zu others moved",
            frozen_changed, moved);
  cc_release(dmask);
  free(mask);
}

/* torch.optim.AdamW's own trajectory. */
static void adamw_vs_torch(cc_rt *rt) {
  fx_file *f = fx_open("data/adamw.fx");
  if (!th_assert("adamw.fx readable", f != NULL, "data/adamw.fx")) return;
  size_t n, nm, nh;
  const float *init = fx_get(f, "init", &n), *maskf = fx_get(f, "mask", &nm), *hp = fx_get(f, "hparams", &nh);
  if (!th_assert("adamw.fx arrays", init && maskf && hp && nm == n && nh == 7, "")) {
    fx_close(f);
    return;
  }
  int steps = (int)hp[6];
  unsigned char *mask = malloc(n);
  for (size_t i = 0; i < n; i++) mask[i] = (unsigned char)maskf[i];
  cl_mem dmask;
  TH_OK(cc_buffer(rt, n, &dmask, "mask"));
  if (clEnqueueWriteBuffer(cc_queue(rt), dmask, CL_TRUE, 0, n, mask, 0, NULL, NULL) != CL_SUCCESS)
    th_assert("mask upload", 0, "");
  float *got = th_alloc(n), norm;
  for (int run = 0; run < 2; run++) {
    cc_view dp = th_dev(rt, init, n), dm = th_dev_zero(rt, n), dv = th_dev_zero(rt, n), dg = th_dev_zero(rt, n);
    cc_view dnorm = th_dev_zero(rt, 1), dscale = th_dev_zero(rt, 1);
    for (int k = 0; k < steps; k++) {
      char key[32], name[96];
      snprintf(key, sizeof key, "grad%d", k);
      size_t ng;
      const float *g = fx_get(f, key, &ng);
      if (!g || ng != n) {
        th_assert("adamw.fx gradient", 0, "%s missing", key);
        break;
      }
      th_put(rt, dg, g, n);
      if (run == 1) {
        TH_OK(cc_global_norm(rt, dnorm, dg, n));
        TH_OK(cc_clip_factor(rt, dscale, dnorm, hp[5]));
        th_get(rt, dnorm, &norm, 1);
        snprintf(key, sizeof key, "r1.norm%d", k);
        const float *want = fx_get(f, key, NULL);
        snprintf(name, sizeof name, "torch clip_grad_norm_ step %d", k + 1);
        if (want) th_close_f(name, &norm, want, 1, 0, 1e-6);
        else th_assert(name, 0, "%s missing", key);
      }
      /* the fixture's schedule, lr0*(k+1)/steps, as the float a trainer would pass */
      cc_adamw_hparams h = {(float)((double)hp[0] * (k + 1) / steps), hp[1], hp[2], hp[3], hp[4], k + 1};
      TH_OK(cc_adamw(rt, dp, dg, dm, dv, dmask, 0, run ? dscale : cc_none(), n, &h));
      const char *what[3] = {"params", "m", "v"};
      cc_view views[3] = {dp, dm, dv};
      for (int w = 0; w < 3; w++) {
        snprintf(key, sizeof key, "r%d.%s%d", run, what[w], k);
        size_t nw;
        const float *want = fx_get(f, key, &nw);
        snprintf(name, sizeof name, "torch AdamW %s step %d%s", what[w], k + 1, run ? " clipped" : "");
        if (!want || nw != n) {
          th_assert(name, 0, "%s missing", key);
          continue;
        }
        th_get(rt, views[w], got, n);
        double scale = 0;
        for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
        if (w == 0) th_close_f(name, got, want, n, 0, 1e-6);
        else th_close_f(name, got, want, n, 1e-6 * scale, 1e-5);
      }
    }
  }
  cc_release(dmask);
  free(mask);
  fx_close(f);
}

int main(void) {
  cc_rt *rt = th_open();
  const size_t sizes[] = {0, 1, 7, 4095, 4096, 4097, 100003};
  for (int path = 0; path < 2; path++) {
    /* path 1 forces the compensated-float second stage */
    if (path) setenv("CLIPCL_OPTIM_FP64", "0", 1);
    const char *tag = path ? "float stage 2" : (cc_info(rt)->fp64 ? "fp64 stage 2" : "float stage 2");
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) norm_case(rt, sizes[i], tag);
    norm_case(rt, (1u << 24) + 7, tag);
  }
  unsetenv("CLIPCL_OPTIM_FP64");

  clip_case(rt, 0.0f, 1.0f);
  clip_case(rt, 0.5f, 1.0f);
  clip_case(rt, 1.0f, 1.0f);
  clip_case(rt, 3.7f, 1.0f);
  clip_case(rt, 1e30f, 2.0f);

  adamw_vs_ref(rt, 1, 0);
  adamw_vs_ref(rt, 1001, 0);
  adamw_vs_ref(rt, 1001, 1);
  adamw_vs_ref(rt, 70003, 1);
  adamw_vs_torch(rt);

  cc_view x = th_dev_zero(rt, 16);
  cl_mem mk;
  TH_OK(cc_buffer(rt, 16, &mk, "mask"));
  cc_adamw_hparams bad[] = {{1e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, 0},
                            {1e-3f, 1.0f, 0.98f, 1e-6f, 0.2f, 1},
                            {-1e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, 1},
                            {1e-3f, 0.9f, 0.98f, NAN, 0.2f, 1}};
  for (int i = 0; i < 4; i++) {
    char name[64];
    snprintf(name, sizeof name, "adamw bad hyperparameters %d refused", i);
    th_assert(name, cc_adamw(rt, x, x, x, x, mk, 0, cc_none(), 16, &bad[i]) == CLIPCL_ERR_ARG, "%s",
              clipcl_last_error());
  }
  th_assert("adamw without mask refused", cc_adamw(rt, x, x, x, x, NULL, 0, cc_none(), 16, &bad[0]) == CLIPCL_ERR_ARG,
            "%s", clipcl_last_error());
  th_assert("clip_factor zero max norm refused", cc_clip_factor(rt, x, x, 0.0f) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  cc_release(mk);
  return th_finish(rt);
}
