/* test_siglip.c: the SigLIP sigmoid loss.
 * - cc_siglip_fwd_bwd (one block of logits) against the double reference
 *   (tests/ref/ref_siglip.c) on odd shapes: positives on the diagonal, at an
 *   offset, or none (another rank's texts); logits from a few units to +-60
 *   (saturated sigmoids); loss written and accumulated, d bias accumulated;
 *   same bits twice; without gradients d logits is left alone; reference
 *   and device gradients against central finite differences;
 * - the training loss (src/train/loss.c, one rank) end to end, SigLIP and
 *   CLIP, against the references, and SigLIP against open_clip's SigLipLoss
 *   itself (tests/data/siglip_loss.fx from tests/tools/make_siglip_fixture.py):
 *   loss and the gradients of the raw features, logit_scale and logit_bias
 *   to 1e-5;
 * - bad sizes refused.
 * Tolerances: float sums of M terms of size <= coef * |z| (reference in
 * double); gradients are coef * sigmoid, relative error ~1e-6. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_fixture.h"
#include "ref/ref_head.h"
#include "ref/ref_siglip.h"
#include "train/loss.h"

static float *filled(size_t n, float v) {
  float *x = th_alloc(n);
  for (size_t i = 0; i < n; i++) x[i] = v;
  return x;
}

/* ---- one block -------------------------------------------------------------- */

typedef struct {
  cc_rt *rt;
  float *L, *b;
  int N, M, diag;
  float coef;
  cc_view dL, db, dloss, ddl, ddb;
} blk_ctx;

static double blk_ref_loss(void *p) {
  blk_ctx *c = p;
  return ref_siglip_block(NULL, NULL, c->L, c->b[0], c->N, c->M, c->diag, c->coef);
}

static double blk_dev_loss(void *p) {
  blk_ctx *c = p;
  th_put(c->rt, c->dL, c->L, (size_t)c->N * c->M);
  th_put(c->rt, c->db, c->b, 1);
  TH_OK(cc_siglip_fwd_bwd(c->rt, c->dloss, cc_none(), cc_none(), c->dL, c->db, c->N, c->M, c->diag, c->coef, 0));
  float l;
  th_get(c->rt, c->dloss, &l, 1);
  return l;
}

static void block_case(cc_rt *rt, int N, int M, int diag, float spread, float bias, int fd) {
  size_t nl = (size_t)N * M;
  char tag[96], name[160];
  float coef = 1.0f / (float)(2 * N); /* as if two ranks */
  snprintf(tag, sizeof tag, "N%d M%d diag%d spread%g bias%g", N, M, diag, spread, bias);
  blk_ctx c = {rt, th_alloc(nl), filled(1, bias), N, M, diag, coef, {0}, {0}, {0}, {0}, {0}};
  th_fill(c.L, nl, -spread, spread);
  c.dL = th_dev(rt, c.L, nl);
  c.db = th_dev(rt, c.b, 1);
  c.dloss = th_dev(rt, filled(1, 0.5f), 1);
  c.ddl = th_dev(rt, filled(nl, 7.0f), nl);
  c.ddb = th_dev(rt, filled(1, 0.25f), 1);
  /* write, then accumulate the same block once more */
  TH_OK(cc_siglip_fwd_bwd(rt, c.dloss, c.ddl, c.ddb, c.dL, c.db, N, M, diag, coef, 0));
  float loss[3], *g = th_alloc(nl), gb[2];
  th_get(rt, c.dloss, &loss[0], 1);
  th_get(rt, c.ddl, g, nl);
  th_get(rt, c.ddb, &gb[0], 1);
  double *wg = th_alloc_d(nl), wb;
  double wl = ref_siglip_block(wg, &wb, c.L, bias, N, M, diag, coef);
  double terms = coef * nl * (spread + fabs(bias) + 1);
  snprintf(name, sizeof name, "siglip block loss %s", tag);
  th_close(name, loss, &wl, 1, 2e-7 * terms, 1e-6);
  snprintf(name, sizeof name, "siglip block dlogits %s", tag);
  th_close(name, g, wg, nl, 1e-9, 1e-6);
  double wb2 = wb + 0.25;
  snprintf(name, sizeof name, "siglip block dbias (accumulated onto 0.25) %s", tag);
  th_close(name, gb, &wb2, 1, 1e-7 * coef * nl + 1e-8, 1e-6);
  TH_OK(cc_siglip_fwd_bwd(rt, c.dloss, c.ddl, cc_none(), c.dL, c.db, N, M, diag, coef, 1));
  th_get(rt, c.dloss, &loss[1], 1);
  double w2 = 2 * wl;
  snprintf(name, sizeof name, "siglip block loss accumulated %s", tag);
  th_close(name, &loss[1], &w2, 1, 4e-7 * terms, 1e-6);
  /* same bits again; no gradients leaves dlogits alone */
  float *g2 = th_alloc(nl);
  TH_OK(cc_siglip_fwd_bwd(rt, c.dloss, c.ddl, cc_none(), c.dL, c.db, N, M, diag, coef, 0));
  th_get(rt, c.dloss, &loss[2], 1);
  th_get(rt, c.ddl, g2, nl);
  snprintf(name, sizeof name, "siglip block twice same bits %s", tag);
  th_same_bits(name, loss, loss + 2, 1);
  th_same_bits(name, g, g2, nl);
  th_put(rt, c.ddl, filled(nl, 7.0f), nl);
  TH_OK(cc_siglip_fwd_bwd(rt, c.dloss, cc_none(), c.ddb, c.dL, c.db, N, M, diag, coef, 0));
  th_get(rt, c.ddl, g2, nl);
  th_get(rt, c.ddb, &gb[1], 1);
  snprintf(name, sizeof name, "siglip block without grads leaves dlogits and dbias %s", tag);
  th_same_bits(name, g2, filled(nl, 7.0f), nl);
  th_same_bits(name, &gb[1], &gb[0], 1);
  if (fd) {
    snprintf(name, sizeof name, "siglip ref dlogits vs fd %s", tag);
    th_fd_check(name, blk_ref_loss, &c, c.L, nl, wg, 40, 1e-3, 1e-9, 1e-5);
    snprintf(name, sizeof name, "siglip ref dbias vs fd %s", tag);
    th_fd_check(name, blk_ref_loss, &c, c.b, 1, &wb, 1, 1e-3, 1e-9, 1e-5);
    snprintf(name, sizeof name, "siglip dev dlogits vs fd %s", tag);
    th_fd_check_f(name, blk_dev_loss, &c, c.L, nl, g, 40, 5e-2, 1e-4, 2e-2);
    float gb_only = gb[0] - 0.25f;
    snprintf(name, sizeof name, "siglip dev dbias vs fd %s", tag);
    th_fd_check_f(name, blk_dev_loss, &c, c.b, 1, &gb_only, 1, 5e-2, 1e-4, 2e-2);
  }
}

/* ---- the training loss, one rank --------------------------------------------- */

typedef struct {
  float loss, *dimg, *dtxt, ds, db;
} loss_out;

static void run_loss(cc_rt *rt, int siglip, const float *img, const float *txt, float s, float b, int N, int E,
                     loss_out *o) {
  cc_loss *l;
  TH_OK(cc_loss_create(rt, cc_dist_self(), N, E, siglip, &l));
  size_t ne = (size_t)N * E;
  cc_view vi = th_dev(rt, img, ne), vt = th_dev(rt, txt, ne), vs = th_dev(rt, &s, 1), vb = th_dev(rt, &b, 1);
  cc_view gi = th_dev_zero(rt, ne), gt = th_dev_zero(rt, ne), gs = th_dev_zero(rt, 1), gb = th_dev_zero(rt, 1);
  TH_OK(cc_loss_run(l, vi, vt, N, vs, vb, 1, gi, gt, gs, gb));
  o->dimg = th_alloc(ne);
  o->dtxt = th_alloc(ne);
  th_get(rt, l->loss, &o->loss, 1);
  th_get(rt, gi, o->dimg, ne);
  th_get(rt, gt, o->dtxt, ne);
  th_get(rt, gs, &o->ds, 1);
  th_get(rt, gb, &o->db, 1);
  cc_loss_free(l);
}

static double maxabs_f(const float *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

static double maxabs_d(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

typedef struct {
  float *img, *txt, *s, *b;
  int N, E;
} e2e_ctx;

static double e2e_ref(void *p) {
  e2e_ctx *c = p;
  return ref_siglip_loss(c->img, c->txt, c->s[0], c->b[0], c->N, c->E, NULL, NULL, NULL, NULL);
}

static void e2e_case(cc_rt *rt, int N, int E, float s, float b, int fd) {
  size_t ne = (size_t)N * E;
  char tag[64], name[128];
  snprintf(tag, sizeof tag, "N%d E%d s%.3g b%.3g", N, E, s, b);
  float *img = th_alloc(ne), *txt = th_alloc(ne);
  for (size_t i = 0; i < ne; i++) img[i] = (float)th_normal();
  for (size_t i = 0; i < ne; i++) txt[i] = 0.4f * img[i] + (float)th_normal();
  loss_out o;
  run_loss(rt, 1, img, txt, s, b, N, E, &o);
  double *wi = th_alloc_d(ne), *wt = th_alloc_d(ne), ws, wb;
  double wl = ref_siglip_loss(img, txt, s, b, N, E, wi, wt, &ws, &wb);
  double es = exp((double)s);
  snprintf(name, sizeof name, "siglip loss vs ref %s", tag);
  th_close(name, &o.loss, &wl, 1, 1e-7 * es * N, 1e-6);
  snprintf(name, sizeof name, "siglip dimg vs ref %s", tag);
  th_close(name, o.dimg, wi, ne, 3e-7 * es * maxabs_d(wi, ne), 1e-5);
  snprintf(name, sizeof name, "siglip dtxt vs ref %s", tag);
  th_close(name, o.dtxt, wt, ne, 3e-7 * es * maxabs_d(wt, ne), 1e-5);
  snprintf(name, sizeof name, "siglip dlogit_scale vs ref %s", tag);
  th_close(name, &o.ds, &ws, 1, 3e-7 * es * N + 1e-6, 1e-5);
  snprintf(name, sizeof name, "siglip dlogit_bias vs ref %s", tag);
  th_close(name, &o.db, &wb, 1, 1e-6 * N, 1e-5);
  if (fd) {
    e2e_ctx c = {img, txt, filled(1, s), filled(1, b), N, E};
    snprintf(name, sizeof name, "siglip ref dimg vs fd %s", tag);
    th_fd_check(name, e2e_ref, &c, img, ne, wi, 30, 1e-3, 1e-7, 1e-5);
    snprintf(name, sizeof name, "siglip ref dtxt vs fd %s", tag);
    th_fd_check(name, e2e_ref, &c, txt, ne, wt, 30, 1e-3, 1e-7, 1e-5);
    snprintf(name, sizeof name, "siglip ref ds vs fd %s", tag);
    th_fd_check(name, e2e_ref, &c, c.s, 1, &ws, 1, 1e-3, 1e-7, 1e-5);
    snprintf(name, sizeof name, "siglip ref db vs fd %s", tag);
    th_fd_check(name, e2e_ref, &c, c.b, 1, &wb, 1, 1e-3, 1e-7, 1e-5);
  }
  /* the CLIP path of the same loss object, against ref_clip_loss */
  run_loss(rt, 0, img, txt, s, 0, N, E, &o);
  wl = ref_clip_loss(img, txt, s, N, E, wi, wt, &ws);
  snprintf(name, sizeof name, "clip (train loss, one rank) vs ref %s", tag);
  th_close(name, &o.loss, &wl, 1, 1e-7 * es, 1e-6);
  th_close(name, o.dimg, wi, ne, 3e-7 * es * maxabs_d(wi, ne), 1e-5);
  th_close(name, o.dtxt, wt, ne, 3e-7 * es * maxabs_d(wt, ne), 1e-5);
  th_close(name, &o.ds, &ws, 1, 3e-7 * es + 1e-6, 1e-5);
}

/* Against open_clip's SigLipLoss (float32 PyTorch). */
static void fixture(cc_rt *rt) {
  fx_file *f = fx_open("data/siglip_loss.fx");
  if (!th_assert("siglip_loss.fx readable", f != NULL, "data/siglip_loss.fx")) return;
  for (int k = 0; k < 3; k++) {
    char key[64], name[128];
    size_t ni, nt, nl, one;
#define FX(var, field, cnt)                     \
  snprintf(key, sizeof key, "c%d." field, k); \
  const float *var = fx_get(f, key, cnt);
    FX(img, "img", &ni) FX(txt, "txt", &nt) FX(s, "logit_scale", &one) FX(b, "logit_bias", &one)
    FX(loss, "loss", &one) FX(logits, "logits", &nl) FX(dimg, "dimg", NULL) FX(dtxt, "dtxt", NULL)
    FX(ds, "dlogit_scale", NULL) FX(db, "dlogit_bias", NULL)
#undef FX
    int N = (int)sqrt((double)nl), E = N ? (int)(ni / N) : 0;
    if (!th_assert("siglip_loss.fx arrays", img && txt && s && b && loss && logits && dimg && dtxt && ds && db &&
                   N > 0 && (size_t)N * N == nl && (size_t)N * E == ni && nt == ni, "case %d", k))
      continue;
    loss_out o;
    run_loss(rt, 1, img, txt, s[0], b[0], N, E, &o);
    snprintf(name, sizeof name, "open_clip SigLipLoss loss N%d E%d s%.3g b%.3g", N, E, s[0], b[0]);
    th_close_f(name, &o.loss, loss, 1, 0, 1e-5);
    snprintf(name, sizeof name, "open_clip SigLipLoss dimg N%d E%d", N, E);
    th_close_f(name, o.dimg, dimg, ni, 1e-5 * maxabs_f(dimg, ni), 1e-5);
    snprintf(name, sizeof name, "open_clip SigLipLoss dtxt N%d E%d", N, E);
    th_close_f(name, o.dtxt, dtxt, ni, 1e-5 * maxabs_f(dtxt, ni), 1e-5);
    snprintf(name, sizeof name, "open_clip SigLipLoss dlogit_scale N%d E%d", N, E);
    th_close_f(name, &o.ds, ds, 1, 1e-7, 1e-5);
    snprintf(name, sizeof name, "open_clip SigLipLoss dlogit_bias N%d E%d", N, E);
    th_close_f(name, &o.db, db, 1, 1e-7, 1e-5);
  }
  fx_close(f);
}

int main(void) {
  cc_rt *rt = th_open();
  block_case(rt, 1, 1, 0, 3, -10, 1);
  block_case(rt, 5, 7, 2, 4, 0.3f, 1);
  block_case(rt, 13, 13, 0, 8, -1.5f, 1);
  block_case(rt, 6, 11, -1, 5, 2, 1);
  block_case(rt, 9, 9, 0, 60, -10, 0); /* saturated: softplus linear, sigmoid 0 or 1 */
  block_case(rt, 64, 64, 0, 10, -10, 0);
  block_case(rt, 33, 129, -1, 10, -5, 0);

  e2e_case(rt, 1, 8, 2.302585f, -10, 1);
  e2e_case(rt, 7, 16, 2.302585f, -10, 1);
  e2e_case(rt, 13, 40, 4.0f, -3, 1);
  e2e_case(rt, 64, 128, 2.6592f, -2, 0);
  fixture(rt);

  cc_view x = th_dev_zero(rt, 64);
  th_assert("siglip zero size refused", cc_siglip_fwd_bwd(rt, x, x, x, x, x, 0, 4, 0, 1, 0) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  th_assert("siglip positives beyond the columns refused",
            cc_siglip_fwd_bwd(rt, x, x, x, x, x, 4, 5, 2, 1, 0) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  return th_finish(rt);
}
