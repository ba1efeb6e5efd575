/* test_clip_head.c: the CLIP head ops against the double reference
 * (tests/ref/ref_head.c) on odd shapes: cc_l2norm_fwd/bwd (including rows
 * whose norm is clamped at 1e-12), cc_logits_fwd/bwd (three logit scales,
 * optional gradients), cc_ce_fwd/bwd (label offsets, logits up to +-100,
 * write and accumulate), cc_transpose (exact); every backward accumulating
 * into non-zero gradients, against the reference backward, and reference and
 * device backward against central finite differences; reductions run twice
 * give the same bits; bad sizes and labels refused. End to end, open_clip's
 * symmetric loss 0.5 (CE(L) + CE(L^T)) with L = exp(s) n(I) n(T)^T, forward
 * and backward, against the reference and against open_clip itself
 * (tests/data/clip_loss.fx from tests/tools/make_train_fixtures.py).
 *
 * Tolerances, written next to each check, follow from float rounding:
 * ~6e-8 relative per operation, sums of K terms growing like sqrt(K), and
 * logits up to 100 so that probabilities carry ~1e-5 relative error.
 * Reference finite differences (double, h 1e-3 on float inputs): atol 1e-6,
 * rtol 1e-5 (truncation ~h^2). Device finite differences (float forward, h
 * chosen per op, loss values O(1..100)): atol 2e-3, rtol 1e-2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_fixture.h"
#include "ref/ref_head.h"

static double maxabs(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

static float *filled(size_t n, float v) {
  float *x = th_alloc(n);
  for (size_t i = 0; i < n; i++) x[i] = v;
  return x;
}

/* ---- l2norm --------------------------------------------------------------- */

typedef struct {
  cc_rt *rt;
  float *x, *w, *y;
  int N, E;
  cc_view dx, dy, dn;
  double *ry;
} l2_ctx;

static double l2_ref_loss(void *p) {
  l2_ctx *c = p;
  ref_l2norm_fwd(c->ry, NULL, c->x, c->N, c->E);
  return th_dot_d(c->w, c->ry, (size_t)c->N * c->E);
}

static double l2_dev_loss(void *p) {
  l2_ctx *c = p;
  size_t n = (size_t)c->N * c->E;
  th_put(c->rt, c->dx, c->x, n);
  TH_OK(cc_l2norm_fwd(c->rt, c->dy, c->dn, c->dx, c->N, c->E));
  th_get(c->rt, c->dy, c->y, n);
  return th_dot(c->w, c->y, n);
}

static void l2norm_case(cc_rt *rt, int N, int E, int clamped_rows) {
  size_t n = (size_t)N * E;
  char tag[64], name[128];
  snprintf(tag, sizeof tag, "N%d E%d%s", N, E, clamped_rows ? " clamped rows" : "");
  l2_ctx c = {rt, th_alloc(n), th_alloc(n), th_alloc(n), N, E, {0}, {0}, {0}, th_alloc_d(n)};
  th_fill(c.x, n, -2, 2);
  th_fill(c.w, n, -1, 1);
  if (clamped_rows) {
    /* row 0 all zero, row N-1 with a norm below 1e-12: both divide by 1e-12 */
    memset(c.x, 0, (size_t)E * sizeof(float));
    for (int j = 0; j < E; j++) c.x[(size_t)(N - 1) * E + j] = j == 0 ? 3e-13f : 0.0f;
  }
  c.dx = th_dev(rt, c.x, n);
  c.dy = th_dev_zero(rt, n);
  c.dn = th_dev_zero(rt, N);
  TH_OK(cc_l2norm_fwd(rt, c.dy, c.dn, c.dx, N, E));
  float *y = th_alloc(n), *nrm = th_alloc(N), *nrm2 = th_alloc(N);
  th_get(rt, c.dy, y, n);
  th_get(rt, c.dn, nrm, N);
  double *wy = th_alloc_d(n), *wn = th_alloc_d(N);
  ref_l2norm_fwd(wy, wn, c.x, N, E);
  snprintf(name, sizeof name, "l2norm fwd out %s", tag);
  th_close(name, y, wy, n, 1e-7, 1e-6); /* |y| <= 1 (or x/1e-12 when clamped) */
  snprintf(name, sizeof name, "l2norm fwd norm %s", tag);
  th_close(name, nrm, wn, N, 0, 1e-6);
  TH_OK(cc_l2norm_fwd(rt, c.dy, c.dn, c.dx, N, E));
  th_get(rt, c.dn, nrm2, N);
  snprintf(name, sizeof name, "l2norm fwd twice same bits %s", tag);
  th_same_bits(name, nrm, nrm2, N);

  /* backward into a gradient that starts at 0.5 */
  cc_view gx = th_dev(rt, filled(n, 0.5f), n), gy = th_dev(rt, c.w, n);
  TH_OK(cc_l2norm_bwd(rt, gx, gy, c.dy, c.dn, N, E));
  float *got = th_alloc(n);
  th_get(rt, gx, got, n);
  double *want = th_alloc_d(n);
  ref_l2norm_bwd(want, c.w, c.x, N, E);
  for (size_t i = 0; i < n; i++) want[i] += 0.5;
  snprintf(name, sizeof name, "l2norm bwd %s", tag);
  /* gradients ~ 1/||x||, sums of E products: atol 1e-6, rtol 1e-5 */
  th_close(name, got, want, n, 1e-6, 1e-5);
  if (!clamped_rows && n <= 4096) {
    ref_l2norm_bwd(want, c.w, c.x, N, E);
    snprintf(name, sizeof name, "l2norm ref bwd vs fd %s", tag);
    th_fd_check(name, l2_ref_loss, &c, c.x, n, want, 60, 1e-3, 1e-6, 1e-5);
    for (size_t i = 0; i < n; i++) got[i] -= 0.5f;
    snprintf(name, sizeof name, "l2norm dev bwd vs fd %s", tag);
    th_fd_check_f(name, l2_dev_loss, &c, c.x, n, got, 60, 1e-2, 2e-3, 1e-2);
  }
}

/* ---- logits --------------------------------------------------------------- */

typedef struct {
  cc_rt *rt;
  float *a, *b, *s, *w, *L;
  int N, M, E;
  cc_view da, db, ds, dL;
  double *rL;
} lg_ctx;

static double lg_ref_loss(void *p) {
  lg_ctx *c = p;
  ref_logits_fwd(c->rL, c->a, c->b, c->s[0], c->N, c->M, c->E);
  return th_dot_d(c->w, c->rL, (size_t)c->N * c->M);
}

static double lg_dev_loss(void *p) {
  lg_ctx *c = p;
  th_put(c->rt, c->da, c->a, (size_t)c->N * c->E);
  th_put(c->rt, c->db, c->b, (size_t)c->M * c->E);
  th_put(c->rt, c->ds, c->s, 1);
  TH_OK(cc_logits_fwd(c->rt, c->dL, c->da, c->db, c->ds, c->N, c->M, c->E));
  th_get(c->rt, c->dL, c->L, (size_t)c->N * c->M);
  return th_dot(c->w, c->L, (size_t)c->N * c->M);
}

static void logits_case(cc_rt *rt, int N, int M, int E, float s, int fd) {
  size_t na = (size_t)N * E, nb = (size_t)M * E, nl = (size_t)N * M;
  char tag[64], name[128];
  snprintf(tag, sizeof tag, "N%d M%d E%d s%.3g", N, M, E, s);
  lg_ctx c = {rt, th_alloc(na), th_alloc(nb), filled(1, s), th_alloc(nl), th_alloc(nl), N, M, E,
              {0}, {0}, {0}, {0}, th_alloc_d(nl)};
  float r = (float)(1.5 / sqrt((double)E)); /* dot products O(1), like unit vectors */
  th_fill(c.a, na, -r, r);
  th_fill(c.b, nb, -r, r);
  th_fill(c.w, nl, -1, 1);
  c.da = th_dev(rt, c.a, na);
  c.db = th_dev(rt, c.b, nb);
  c.ds = th_dev(rt, c.s, 1);
  c.dL = th_dev_zero(rt, nl);
  TH_OK(cc_logits_fwd(rt, c.dL, c.da, c.db, c.ds, N, M, E));
  float *L = th_alloc(nl);
  th_get(rt, c.dL, L, nl);
  double *want = th_alloc_d(nl);
  ref_logits_fwd(want, c.a, c.b, s, N, M, E);
  double es = exp((double)s);
  snprintf(name, sizeof name, "logits fwd %s", tag);
  /* exp(s) rounded once (rel 1e-7), E-term dot of O(1/E) products */
  th_close(name, L, want, nl, 2e-7 * es * sqrt((double)E), 1e-6);

  /* backward: da, db start at 0.5, dscale at 0.25 */
  cc_view ga = th_dev(rt, filled(na, 0.5f), na), gb = th_dev(rt, filled(nb, 0.5f), nb),
          gs = th_dev(rt, filled(1, 0.25f), 1), gL = th_dev(rt, c.w, nl);
  TH_OK(cc_logits_bwd(rt, ga, gb, gs, gL, c.da, c.db, c.dL, c.ds, N, M, E));
  float *got_a = th_alloc(na), *got_b = th_alloc(nb), got_s[2];
  th_get(rt, ga, got_a, na);
  th_get(rt, gb, got_b, nb);
  th_get(rt, gs, got_s, 1);
  double *ra = th_alloc_d(na), *rb = th_alloc_d(nb), rs, terms = 0;
  ref_logits_bwd(ra, rb, &rs, c.w, c.a, c.b, s, N, M, E);
  for (size_t i = 0; i < nl; i++) terms += fabs(c.w[i] * want[i]);
  double *wa = th_alloc_d(na), *wb = th_alloc_d(nb), ws = rs + 0.25;
  for (size_t i = 0; i < na; i++) wa[i] = ra[i] + 0.5;
  for (size_t i = 0; i < nb; i++) wb[i] = rb[i] + 0.5;
  snprintf(name, sizeof name, "logits bwd da %s", tag);
  th_close(name, got_a, wa, na, 1e-6 * es * r * sqrt((double)M), 1e-5);
  snprintf(name, sizeof name, "logits bwd db %s", tag);
  th_close(name, got_b, wb, nb, 1e-6 * es * r * sqrt((double)N), 1e-5);
  snprintf(name, sizeof name, "logits bwd dscale %s", tag);
  /* N*M products summed in float: relative to the sum of their magnitudes */
  th_close(name, got_s, &ws, 1, 1e-6 * terms + 1e-7, 0);

  /* the same reduction again: same bits */
  th_put(rt, gs, &(float){0.25f}, 1);
  TH_OK(cc_logits_bwd(rt, cc_none(), cc_none(), gs, gL, c.da, c.db, c.dL, c.ds, N, M, E));
  th_get(rt, gs, got_s + 1, 1);
  snprintf(name, sizeof name, "logits dscale twice same bits %s", tag);
  th_same_bits(name, got_s, got_s + 1, 1);
  /* optional gradients: db alone leaves da untouched */
  float *a2 = th_alloc(na), *b2 = th_alloc(nb);
  TH_OK(cc_logits_bwd(rt, cc_none(), gb, cc_none(), gL, c.da, c.db, c.dL, c.ds, N, M, E));
  th_get(rt, ga, a2, na);
  th_get(rt, gb, b2, nb);
  snprintf(name, sizeof name, "logits bwd skips absent da %s", tag);
  th_same_bits(name, a2, got_a, na);
  for (size_t i = 0; i < nb; i++) wb[i] = 2 * rb[i] + 0.5;
  snprintf(name, sizeof name, "logits bwd db accumulates twice %s", tag);
  th_close(name, b2, wb, nb, 2e-6 * es * r * sqrt((double)N), 1e-5);

  if (fd) {
    double sd = rs;
    snprintf(name, sizeof name, "logits ref bwd da vs fd %s", tag);
    th_fd_check(name, lg_ref_loss, &c, c.a, na, ra, 40, 1e-3, 1e-6, 1e-5);
    snprintf(name, sizeof name, "logits ref bwd db vs fd %s", tag);
    th_fd_check(name, lg_ref_loss, &c, c.b, nb, rb, 40, 1e-3, 1e-6, 1e-5);
    snprintf(name, sizeof name, "logits ref bwd ds vs fd %s", tag);
    th_fd_check(name, lg_ref_loss, &c, c.s, 1, &sd, 1, 1e-3, 1e-6, 1e-5);
    for (size_t i = 0; i < na; i++) got_a[i] -= 0.5f;
    for (size_t i = 0; i < nb; i++) got_b[i] -= 0.5f;
    got_s[0] -= 0.25f;
    snprintf(name, sizeof name, "logits dev bwd da vs fd %s", tag);
    th_fd_check_f(name, lg_dev_loss, &c, c.a, na, got_a, 40, 1e-2 * r, 2e-3 * es, 1e-2);
    snprintf(name, sizeof name, "logits dev bwd db vs fd %s", tag);
    th_fd_check_f(name, lg_dev_loss, &c, c.b, nb, got_b, 40, 1e-2 * r, 2e-3 * es, 1e-2);
    snprintf(name, sizeof name, "logits dev bwd ds vs fd %s", tag);
    th_fd_check_f(name, lg_dev_loss, &c, c.s, 1, got_s, 1, 1e-2, 2e-3 * es, 1e-2);
  }
}

/* ---- cross-entropy -------------------------------------------------------- */

typedef struct {
  cc_rt *rt;
  float *x;
  int N, M, off;
  cc_view dx, dloss, dprobs;
} ce_ctx;

static double ce_ref_loss(void *p) {
  ce_ctx *c = p;
  return ref_ce_fwd(NULL, c->x, c->N, c->M, c->off, 0.75);
}

static double ce_dev_loss(void *p) {
  ce_ctx *c = p;
  float l;
  th_put(c->rt, c->dx, c->x, (size_t)c->N * c->M);
  TH_OK(cc_ce_fwd(c->rt, c->dloss, c->dprobs, c->dx, c->N, c->M, c->off, 0.75f, 0));
  th_get(c->rt, c->dloss, &l, 1);
  return l;
}

static void ce_case(cc_rt *rt, int N, int M, int off, float range, int fd) {
  size_t n = (size_t)N * M;
  char tag[64], name[128];
  snprintf(tag, sizeof tag, "N%d M%d off%d r%g", N, M, off, range);
  ce_ctx c = {rt, th_alloc(n), N, M, off, {0}, {0}, {0}};
  th_fill(c.x, n, -range, range);
  c.dx = th_dev(rt, c.x, n);
  c.dloss = th_dev(rt, filled(1, 1.25f), 1);
  c.dprobs = th_dev_zero(rt, n);
  /* accumulate onto 1.25 */
  TH_OK(cc_ce_fwd(rt, c.dloss, c.dprobs, c.dx, N, M, off, 0.75f, 1));
  float loss[3], *probs = th_alloc(n);
  th_get(rt, c.dloss, loss, 1);
  th_get(rt, c.dprobs, probs, n);
  double *wp = th_alloc_d(n);
  double wl = ref_ce_fwd(wp, c.x, N, M, off, 0.75), wacc = wl + 1.25;
  snprintf(name, sizeof name, "ce fwd loss accumulate %s", tag);
  /* logsumexp of values up to |range|: absolute error ~1e-7 * range */
  th_close(name, loss, &wacc, 1, 2e-7 * range + 1e-6, 1e-6);
  snprintf(name, sizeof name, "ce fwd probs %s", tag);
  th_close(name, probs, wp, n, 1e-7, 4e-7 * range + 1e-6);
  /* write mode, twice: same bits */
  TH_OK(cc_ce_fwd(rt, c.dloss, c.dprobs, c.dx, N, M, off, 0.75f, 0));
  th_get(rt, c.dloss, loss + 1, 1);
  TH_OK(cc_ce_fwd(rt, c.dloss, c.dprobs, c.dx, N, M, off, 0.75f, 0));
  th_get(rt, c.dloss, loss + 2, 1);
  snprintf(name, sizeof name, "ce fwd loss write %s", tag);
  th_close(name, loss + 1, &wl, 1, 2e-7 * range + 1e-6, 1e-6);
  snprintf(name, sizeof name, "ce fwd twice same bits %s", tag);
  th_same_bits(name, loss + 1, loss + 2, 1);

  cc_view g = th_dev(rt, filled(n, 0.5f), n);
  TH_OK(cc_ce_bwd(rt, g, c.dprobs, N, M, off, 0.75f));
  float *got = th_alloc(n);
  th_get(rt, g, got, n);
  double *want = th_alloc_d(n);
  ref_ce_bwd(want, c.x, N, M, off, 0.75);
  double *wacc_g = th_alloc_d(n);
  for (size_t i = 0; i < n; i++) wacc_g[i] = want[i] + 0.5;
  snprintf(name, sizeof name, "ce bwd %s", tag);
  th_close(name, got, wacc_g, n, 1e-7 + (4e-7 * range + 1e-6) * 0.75 / N, 1e-6);
  if (fd) {
    snprintf(name, sizeof name, "ce ref bwd vs fd %s", tag);
    th_fd_check(name, ce_ref_loss, &c, c.x, n, want, 40, 1e-3, 1e-7, 1e-5);
    for (size_t i = 0; i < n; i++) got[i] -= 0.5f;
    snprintf(name, sizeof name, "ce dev bwd vs fd %s", tag);
    /* the loss is O(range) in float: rounding 1e-7*range over a 2h step */
    th_fd_check_f(name, ce_dev_loss, &c, c.x, n, got, 40, 2e-2, 1e-5 * range, 2e-2);
  }
}

static void transpose_case(cc_rt *rt, int R, int Cc) {
  size_t n = (size_t)R * Cc;
  float *x = th_alloc(n), *got = th_alloc(n);
  double *want = th_alloc_d(n);
  th_fill(x, n, -1, 1);
  cc_view dx = th_dev(rt, x, n), dy = th_dev_zero(rt, n);
  TH_OK(cc_transpose(rt, dy, dx, R, Cc));
  th_get(rt, dy, got, n);
  for (int i = 0; i < R; i++)
    for (int j = 0; j < Cc; j++) want[(size_t)j * R + i] = x[(size_t)i * Cc + j];
  char name[64];
  snprintf(name, sizeof name, "transpose %dx%d", R, Cc);
  th_close(name, got, want, n, 0, 0);
}

/* ---- open_clip's loss end to end ------------------------------------------ */

typedef struct {
  cc_rt *rt;
  int N, E;
  float *img, *txt, *s;
  cc_view dimg, dtxt, ds, u, v, nu, nv, L, Lt, P1, P2, loss, dL, dLt, tmp, du, dv, gimg, gtxt, gs;
} e2e_ctx;

static e2e_ctx e2e_new(cc_rt *rt, int N, int E, float *img, float *txt, float *s) {
  size_t ne = (size_t)N * E, nn = (size_t)N * N;
  e2e_ctx c = {.rt = rt, .N = N, .E = E, .img = img, .txt = txt, .s = s};
  c.dimg = th_dev(rt, img, ne), c.dtxt = th_dev(rt, txt, ne), c.ds = th_dev(rt, s, 1);
  c.u = th_dev_zero(rt, ne), c.v = th_dev_zero(rt, ne), c.nu = th_dev_zero(rt, N), c.nv = th_dev_zero(rt, N);
  c.L = th_dev_zero(rt, nn), c.Lt = th_dev_zero(rt, nn), c.P1 = th_dev_zero(rt, nn), c.P2 = th_dev_zero(rt, nn);
  c.loss = th_dev_zero(rt, 1), c.dL = th_dev_zero(rt, nn), c.dLt = th_dev_zero(rt, nn), c.tmp = th_dev_zero(rt, nn);
  c.du = th_dev_zero(rt, ne), c.dv = th_dev_zero(rt, ne);
  c.gimg = th_dev_zero(rt, ne), c.gtxt = th_dev_zero(rt, ne), c.gs = th_dev_zero(rt, 1);
  return c;
}

/* The training step's head as the model code will run it. */
static void e2e_run(e2e_ctx *c, int backward) {
  cc_rt *rt = c->rt;
  int N = c->N, E = c->E;
  size_t nn = (size_t)N * N, ne = (size_t)N * E;
  TH_OK(cc_l2norm_fwd(rt, c->u, c->nu, c->dimg, N, E));
  TH_OK(cc_l2norm_fwd(rt, c->v, c->nv, c->dtxt, N, E));
  TH_OK(cc_logits_fwd(rt, c->L, c->u, c->v, c->ds, N, N, E));
  TH_OK(cc_transpose(rt, c->Lt, c->L, N, N));
  TH_OK(cc_ce_fwd(rt, c->loss, c->P1, c->L, N, N, 0, 0.5f, 0));
  TH_OK(cc_ce_fwd(rt, c->loss, c->P2, c->Lt, N, N, 0, 0.5f, 1));
  if (!backward) return;
  TH_OK(cc_fill(rt, c->dL, nn, 0));
  TH_OK(cc_fill(rt, c->dLt, nn, 0));
  TH_OK(cc_ce_bwd(rt, c->dL, c->P1, N, N, 0, 0.5f));
  TH_OK(cc_ce_bwd(rt, c->dLt, c->P2, N, N, 0, 0.5f));
  TH_OK(cc_transpose(rt, c->tmp, c->dLt, N, N));
  TH_OK(cc_axpy(rt, c->dL, c->tmp, 1.0f, nn));
  TH_OK(cc_fill(rt, c->du, ne, 0));
  TH_OK(cc_fill(rt, c->dv, ne, 0));
  TH_OK(cc_fill(rt, c->gimg, ne, 0));
  TH_OK(cc_fill(rt, c->gtxt, ne, 0));
  TH_OK(cc_fill(rt, c->gs, 1, 0));
  TH_OK(cc_logits_bwd(rt, c->du, c->dv, c->gs, c->dL, c->u, c->v, c->L, c->ds, N, N, E));
  TH_OK(cc_l2norm_bwd(rt, c->gimg, c->du, c->u, c->nu, N, E));
  TH_OK(cc_l2norm_bwd(rt, c->gtxt, c->dv, c->v, c->nv, N, E));
}

static double e2e_dev_loss(void *p) {
  e2e_ctx *c = p;
  float l;
  th_put(c->rt, c->dimg, c->img, (size_t)c->N * c->E);
  th_put(c->rt, c->dtxt, c->txt, (size_t)c->N * c->E);
  th_put(c->rt, c->ds, c->s, 1);
  e2e_run(c, 0);
  th_get(c->rt, c->loss, &l, 1);
  return l;
}

static double e2e_ref_loss(void *p) {
  e2e_ctx *c = p;
  return ref_clip_loss(c->img, c->txt, c->s[0], c->N, c->E, NULL, NULL, NULL);
}

/* Runs the device pipeline and returns loss and gradients. */
static void e2e_get(e2e_ctx *c, float *loss, float *gimg, float *gtxt, float *gs) {
  e2e_run(c, 1);
  size_t ne = (size_t)c->N * c->E;
  th_get(c->rt, c->loss, loss, 1);
  th_get(c->rt, c->gimg, gimg, ne);
  th_get(c->rt, c->gtxt, gtxt, ne);
  th_get(c->rt, c->gs, gs, 1);
}

static void e2e_case(cc_rt *rt, int N, int E, float s, int fd) {
  size_t ne = (size_t)N * E;
  char tag[64], name[128];
  snprintf(tag, sizeof tag, "N%d E%d s%.3g", N, E, s);
  float *img = th_alloc(ne), *txt = th_alloc(ne), *sv = filled(1, s);
  for (size_t i = 0; i < ne; i++) img[i] = (float)th_normal();
  /* texts correlated with their images, so the loss is neither trivial nor saturated */
  for (size_t i = 0; i < ne; i++) txt[i] = 0.3f * img[i] + (float)th_normal();
  e2e_ctx c = e2e_new(rt, N, E, img, txt, sv);
  float loss[2], *gi = th_alloc(ne), *gt = th_alloc(ne), gs[2];
  e2e_get(&c, loss, gi, gt, gs);
  double *wi = th_alloc_d(ne), *wt = th_alloc_d(ne), ws;
  double wl = ref_clip_loss(img, txt, s, N, E, wi, wt, &ws);
  double es = exp((double)s);
  snprintf(name, sizeof name, "clip loss vs ref %s", tag);
  th_close(name, loss, &wl, 1, 1e-7 * es, 1e-6);
  /* logits up to exp(s) carry ~1e-7*exp(s) absolute error, which the
   * probabilities turn into relative error of the gradients */
  snprintf(name, sizeof name, "clip dimg vs ref %s", tag);
  th_close(name, gi, wi, ne, 3e-7 * es * maxabs(wi, ne), 1e-5);
  snprintf(name, sizeof name, "clip dtxt vs ref %s", tag);
  th_close(name, gt, wt, ne, 3e-7 * es * maxabs(wt, ne), 1e-5);
  snprintf(name, sizeof name, "clip dlogit_scale vs ref %s", tag);
  th_close(name, gs, &ws, 1, 3e-7 * es * fabs(ws) + 1e-6, 1e-5);
  /* the whole step again: same bits */
  float loss2, *gi2 = th_alloc(ne);
  e2e_get(&c, &loss2, gi2, gt, gs + 1);
  snprintf(name, sizeof name, "clip loss twice same bits %s", tag);
  th_same_bits(name, loss, &loss2, 1);
  snprintf(name, sizeof name, "clip dimg twice same bits %s", tag);
  th_same_bits(name, gi, gi2, ne);
  snprintf(name, sizeof name, "clip dscale twice same bits %s", tag);
  th_same_bits(name, gs, gs + 1, 1);
  if (fd) {
    snprintf(name, sizeof name, "clip ref dimg vs fd %s", tag);
    th_fd_check(name, e2e_ref_loss, &c, img, ne, wi, 30, 1e-3, 1e-6, 1e-5);
    snprintf(name, sizeof name, "clip ref dtxt vs fd %s", tag);
    th_fd_check(name, e2e_ref_loss, &c, txt, ne, wt, 30, 1e-3, 1e-6, 1e-5);
    snprintf(name, sizeof name, "clip ref ds vs fd %s", tag);
    th_fd_check(name, e2e_ref_loss, &c, sv, 1, &ws, 1, 1e-3, 1e-6, 1e-5);
    snprintf(name, sizeof name, "clip dev dimg vs fd %s", tag);
    th_fd_check_f(name, e2e_dev_loss, &c, img, ne, gi, 30, 2e-2, 2e-3, 2e-2);
    snprintf(name, sizeof name, "clip dev ds vs fd %s", tag);
    th_fd_check_f(name, e2e_dev_loss, &c, sv, 1, gs, 1, 1e-2, 2e-3, 2e-2);
  }
}

/* Against open_clip's ClipLoss itself (fixture computed by PyTorch in float:
 * its own rounding is of the same size as ours). */
static void e2e_fixture(cc_rt *rt) {
  fx_file *f = fx_open("data/clip_loss.fx");
  if (!th_assert("clip_loss.fx readable", f != NULL, "data/clip_loss.fx")) return;
  for (int k = 0; k < 2; k++) {
    char key[64], name[128];
    size_t ni, nt, nl, one;
#define FX(var, field, cnt)                              \
  snprintf(key, sizeof key, "c%d." field, k);          \
  const float *var = fx_get(f, key, cnt);
    FX(img, "img", &ni) FX(txt, "txt", &nt) FX(s, "logit_scale", &one) FX(loss, "loss", &one)
    FX(logits, "logits", &nl) FX(dimg, "dimg", NULL) FX(dtxt, "dtxt", NULL) FX(ds, "dlogit_scale", NULL)
#undef FX
    int N = (int)sqrt((double)nl), E = N ? (int)(ni / N) : 0;
    if (!th_assert("clip_loss.fx arrays", img && txt && s && loss && logits && dimg && dtxt && ds && N > 0 &&
                   (size_t)N * N == nl && (size_t)N * E == ni && nt == ni, "case %d", k))
      continue;
    size_t ne = ni;
    float *img_c = th_alloc(ne), *txt_c = th_alloc(ne), *s_c = filled(1, s[0]);
    memcpy(img_c, img, ne * 4);
    memcpy(txt_c, txt, ne * 4);
    e2e_ctx c = e2e_new(rt, N, E, img_c, txt_c, s_c);
    float got_loss, *gi = th_alloc(ne), *gt = th_alloc(ne), gs, *L = th_alloc(nl);
    e2e_get(&c, &got_loss, gi, gt, &gs);
    th_get(rt, c.L, L, nl);
    double es = exp((double)s[0]);
    snprintf(name, sizeof name, "open_clip loss N%d E%d s%.3g", N, E, s[0]);
    th_close_f(name, &got_loss, loss, 1, 0, 1e-5);
    snprintf(name, sizeof name, "open_clip logits N%d E%d", N, E);
    th_close_f(name, L, logits, nl, 2e-7 * es, 1e-6);
    double mi = 0, mt = 0;
    for (size_t i = 0; i < ne; i++) mi = fmax(mi, fabs(dimg[i])), mt = fmax(mt, fabs(dtxt[i]));
    snprintf(name, sizeof name, "open_clip dimg N%d E%d", N, E);
    th_close_f(name, gi, dimg, ne, 3e-7 * es * mi, 1e-4);
    snprintf(name, sizeof name, "open_clip dtxt N%d E%d", N, E);
    th_close_f(name, gt, dtxt, ne, 3e-7 * es * mt, 1e-4);
    snprintf(name, sizeof name, "open_clip dlogit_scale N%d E%d", N, E);
    th_close_f(name, &gs, ds, 1, 3e-7 * es * fabs(ds[0]) + 1e-7, 1e-4);
  }
  fx_close(f);
}

int main(void) {
  cc_rt *rt = th_open();
  /* l2norm: N, E */
  l2norm_case(rt, 1, 1, 0);
  l2norm_case(rt, 7, 33, 0);
  l2norm_case(rt, 5, 17, 1);
  l2norm_case(rt, 64, 512, 0);
  l2norm_case(rt, 3, 1024, 1);

  logits_case(rt, 1, 1, 1, 2.6592f, 1);
  logits_case(rt, 7, 13, 33, 4.6052f, 1);
  logits_case(rt, 50, 129, 64, 0.0f, 1);
  logits_case(rt, 64, 64, 512, 2.6592f, 0);
  logits_case(rt, 32, 256, 512, 4.6052f, 0); /* gathered: 8 processes' columns */

  ce_case(rt, 1, 1, 0, 5, 1);
  ce_case(rt, 7, 13, 3, 5, 1);
  ce_case(rt, 9, 9, 0, 100, 1);
  ce_case(rt, 50, 129, 79, 30, 0);
  ce_case(rt, 64, 64, 0, 100, 0);
  ce_case(rt, 16, 1030, 1000, 20, 0);

  transpose_case(rt, 1, 1);
  transpose_case(rt, 7, 13);
  transpose_case(rt, 16, 16);
  transpose_case(rt, 33, 129);
  transpose_case(rt, 100, 100);

  e2e_case(rt, 1, 8, 2.6592f, 1);
  e2e_case(rt, 7, 16, 2.6592f, 1);
  e2e_case(rt, 13, 40, 4.6052f, 1);
  e2e_case(rt, 64, 512, 2.6592f, 0);
  e2e_case(rt, 100, 77, 4.6052f, 0);
  e2e_fixture(rt);

  /* bad sizes and labels are refused before anything runs */
  cc_view x = th_dev_zero(rt, 64);
  th_assert("ce label beyond the columns refused", cc_ce_fwd(rt, x, x, x, 4, 5, 2, 1.0f, 0) == CLIPCL_ERR_ARG,
            "%s", clipcl_last_error());
  th_assert("ce negative label offset refused", cc_ce_bwd(rt, x, x, 4, 5, -1, 1.0f) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  th_assert("logits zero size refused", cc_logits_fwd(rt, x, x, x, x, 0, 4, 4) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  th_assert("transpose negative size refused", cc_transpose(rt, x, x, -3, 4) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  return th_finish(rt);
}
