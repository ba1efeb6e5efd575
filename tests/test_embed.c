/* test_embed.c: patch embedding (im2col + GEMM, col2im), ViT class token +
 * positional embedding, token + positional embedding, forward and backward,
 * against the double references in tests/ref/ref_nn.c on odd shapes.
 *
 * Checks and tolerances (all data U(-1,1)):
 *  - im2col `cols`: bit-exact copy of the reference im2col;
 *  - patch_embed out: atol 1e-5*sqrt(K) + 1e-6, rtol 1e-5 (a K = 3p^2 term
 *    float dot product, as in test_gemm); dw: the same with K -> B*P rows;
 *    dimg: each pixel is one C-term dot product, atol 1e-5*sqrt(C) + 1e-6;
 *  - vit/tok embed forward: one float add, |err| <= half an ulp: rtol 6e-8
 *    plus atol 1e-30;
 *  - their backward: dpatches exact plus 0.25 (one float add, rtol 6e-8);
 *    batch sums (dcls, dpos, dwte) atol 1e-6*count + 1e-6, rtol 1e-6;
 *  - gradients start at 0.25 (backward must accumulate); each optional
 *    gradient can be left out and is then untouched;
 *  - reference backward vs central differences of the reference forward
 *    (double, h 1e-3): atol 1e-7 rtol 1e-6 (all ops are linear);
 *  - device backward vs central differences of the device forward (float,
 *    h 1e-2: the loss sum(proj * out) moves by ~1e-2 * grad while its float
 *    noise is ~1e-7 * sqrt(outputs touched)): atol 2e-3 rtol 5e-3;
 *  - batch reductions (patch dw, dcls, dpos, dwte) run twice: same bits;
 *  - vit/tok kernels in every channel-block width (CLIPCL_EMBED_VEC 16, 8, 1,
 *    4), with C not a multiple of the width;
 *  - token ids with many duplicates (V smaller than B*T, and a batch of one
 *    repeated id) and ids outside [0,V), which read as zero rows and are
 *    skipped in backward.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_nn.h"

static float *filled(size_t n, float v) {
  float *x = th_alloc(n);
  for (size_t i = 0; i < n; i++) x[i] = v;
  return x;
}

static void add_const(double *x, size_t n, double v) {
  for (size_t i = 0; i < n; i++) x[i] += v;
}
static void sub_const(float *x, size_t n, float v) {
  for (size_t i = 0; i < n; i++) x[i] -= v;
}

/* ---- patch embedding ---------------------------------------------------- */

typedef struct {
  cc_rt *rt;
  int B, S, p, C;
  size_t nimg, nw, nout, ncols;
  float *img, *w, *proj, *y;
  cc_view dimg, dw, dout, dcols;
} pe_ctx;

static double pe_ref_loss(void *v) {
  pe_ctx *c = v;
  double *y = malloc(c->nout * sizeof *y);
  ref_patch_embed_fwd(y, c->img, c->w, c->B, c->S, c->p, c->C);
  double s = th_dot_d(c->proj, y, c->nout);
  free(y);
  return s;
}

static double pe_dev_loss(void *v) {
  pe_ctx *c = v;
  th_put(c->rt, c->dimg, c->img, c->nimg);
  th_put(c->rt, c->dw, c->w, c->nw);
  TH_OK(cc_patch_embed_fwd(c->rt, c->dout, c->dcols, c->dimg, c->dw, c->B, c->S, c->p, c->C));
  th_get(c->rt, c->dout, c->y, c->nout);
  return th_dot(c->proj, c->y, c->nout);
}

static void pe_bwd(pe_ctx *c, float *gw, float *gimg, int want_w, int want_img) {
  cc_view vw = th_dev(c->rt, filled(c->nw, 0.25f), c->nw);
  cc_view vi = th_dev(c->rt, filled(c->nimg, 0.25f), c->nimg);
  cc_view dy = th_dev(c->rt, c->proj, c->nout);
  TH_OK(cc_patch_embed_bwd(c->rt, want_w ? vw : cc_none(), want_img ? vi : cc_none(), dy, c->dcols, c->dw,
                           c->B, c->S, c->p, c->C));
  th_get(c->rt, vw, gw, c->nw);
  th_get(c->rt, vi, gimg, c->nimg);
}

static void patch_case(cc_rt *rt, int B, int S, int p, int C, int fd) {
  int G = S / p, K = 3 * p * p;
  pe_ctx c = {rt, B, S, p, C, (size_t)B * 3 * S * S, (size_t)C * K, (size_t)B * G * G * C,
              (size_t)B * G * G * K, NULL, NULL, NULL, NULL, {0}, {0}, {0}, {0}};
  c.img = th_alloc(c.nimg);
  c.w = th_alloc(c.nw);
  c.proj = th_alloc(c.nout);
  c.y = th_alloc(c.nout);
  th_fill(c.img, c.nimg, -1, 1);
  th_fill(c.w, c.nw, -1, 1);
  th_fill(c.proj, c.nout, -1, 1);
  c.dimg = th_dev(rt, c.img, c.nimg);
  c.dw = th_dev(rt, c.w, c.nw);
  c.dout = th_dev_zero(rt, c.nout);
  c.dcols = th_dev_zero(rt, c.ncols);
  char tag[64], name[160];
  snprintf(tag, sizeof tag, "B%d S%d p%d C%d", B, S, p, C);

  pe_dev_loss(&c);
  float *cols = th_alloc(c.ncols), *want_cols = th_alloc(c.ncols);
  th_get(rt, c.dcols, cols, c.ncols);
  ref_im2col(want_cols, c.img, B, S, p);
  snprintf(name, sizeof name, "im2col %s", tag);
  th_same_bits(name, cols, want_cols, c.ncols);
  double *want = th_alloc_d(c.nout);
  ref_patch_embed_fwd(want, c.img, c.w, B, S, p, C);
  snprintf(name, sizeof name, "patch_embed_fwd %s", tag);
  th_close(name, c.y, want, c.nout, 1e-5 * sqrt((double)K) + 1e-6, 1e-5);

  float *gw = th_alloc(c.nw), *gimg = th_alloc(c.nimg);
  pe_bwd(&c, gw, gimg, 1, 1);
  double *rw = th_alloc_d(c.nw), *rimg = th_alloc_d(c.nimg);
  ref_patch_embed_bwd(rw, rimg, c.proj, c.img, c.w, B, S, p, C);
  add_const(rw, c.nw, 0.25);
  add_const(rimg, c.nimg, 0.25);
  snprintf(name, sizeof name, "patch_embed_bwd dw %s", tag);
  th_close(name, gw, rw, c.nw, 1e-5 * sqrt((double)B * G * G) + 1e-6, 1e-5);
  snprintf(name, sizeof name, "patch_embed_bwd dimg %s", tag);
  th_close(name, gimg, rimg, c.nimg, 1e-5 * sqrt((double)C) + 1e-6, 1e-5);

  float *gw2 = th_alloc(c.nw), *gimg2 = th_alloc(c.nimg);
  pe_bwd(&c, gw2, gimg2, 1, 1);
  snprintf(name, sizeof name, "patch_embed_bwd deterministic dw %s", tag);
  th_same_bits(name, gw, gw2, c.nw);
  snprintf(name, sizeof name, "patch_embed_bwd deterministic dimg %s", tag);
  th_same_bits(name, gimg, gimg2, c.nimg);
  for (int s = 0; s < 2; s++) {
    pe_bwd(&c, gw2, gimg2, s == 0, s == 1);
    int ok = 1;
    for (size_t i = 0; i < c.nw && ok; i++) ok = s == 0 ? gw2[i] == gw[i] : gw2[i] == 0.25f;
    for (size_t i = 0; i < c.nimg && ok; i++) ok = s == 1 ? gimg2[i] == gimg[i] : gimg2[i] == 0.25f;
    snprintf(name, sizeof name, "patch_embed_bwd only %s %s", s == 0 ? "dw" : "dimg", tag);
    th_assert(name, ok, "%s", ok ? "" : "differs from the full backward or touched the other");
  }

  if (!fd) return;
  sub_const(gw, c.nw, 0.25f);
  sub_const(gimg, c.nimg, 0.25f);
  add_const(rw, c.nw, -0.25);
  add_const(rimg, c.nimg, -0.25);
  snprintf(name, sizeof name, "patch ref_bwd dw vs fd %s", tag);
  th_fd_check(name, pe_ref_loss, &c, c.w, c.nw, rw, 40, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "patch ref_bwd dimg vs fd %s", tag);
  th_fd_check(name, pe_ref_loss, &c, c.img, c.nimg, rimg, 40, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "patch dev_bwd dw vs fd %s", tag);
  th_fd_check_f(name, pe_dev_loss, &c, c.w, c.nw, gw, 40, 1e-2, 2e-3, 5e-3);
  snprintf(name, sizeof name, "patch dev_bwd dimg vs fd %s", tag);
  th_fd_check_f(name, pe_dev_loss, &c, c.img, c.nimg, gimg, 40, 1e-2, 2e-3, 5e-3);
}

/* ---- ViT class token + positional ---------------------------------------- */

typedef struct {
  cc_rt *rt;
  int B, P, C;
  size_t npa, npos, nout;
  float *pa, *cls, *pos, *proj, *y;
  cc_view dpa, dcls, dpos, dout;
} ve_ctx;

static double ve_ref_loss(void *v) {
  ve_ctx *c = v;
  double *y = malloc(c->nout * sizeof *y);
  ref_vit_embed_fwd(y, c->pa, c->cls, c->pos, c->B, c->P, c->C);
  double s = th_dot_d(c->proj, y, c->nout);
  free(y);
  return s;
}

static double ve_dev_loss(void *v) {
  ve_ctx *c = v;
  th_put(c->rt, c->dpa, c->pa, c->npa);
  th_put(c->rt, c->dcls, c->cls, c->C);
  th_put(c->rt, c->dpos, c->pos, c->npos);
  TH_OK(cc_vit_embed_fwd(c->rt, c->dout, c->dpa, c->dcls, c->dpos, c->B, c->P, c->C));
  th_get(c->rt, c->dout, c->y, c->nout);
  return th_dot(c->proj, c->y, c->nout);
}

static void ve_bwd(ve_ctx *c, float *gpa, float *gcls, float *gpos, int wp, int wc, int wq) {
  cc_view vp = th_dev(c->rt, filled(c->npa, 0.25f), c->npa);
  cc_view vc = th_dev(c->rt, filled(c->C, 0.25f), c->C);
  cc_view vq = th_dev(c->rt, filled(c->npos, 0.25f), c->npos);
  cc_view dy = th_dev(c->rt, c->proj, c->nout);
  TH_OK(cc_vit_embed_bwd(c->rt, wp ? vp : cc_none(), wc ? vc : cc_none(), wq ? vq : cc_none(), dy, c->B,
                         c->P, c->C));
  th_get(c->rt, vp, gpa, c->npa);
  th_get(c->rt, vc, gcls, c->C);
  th_get(c->rt, vq, gpos, c->npos);
}

static int same_or_quarter(const float *got, const float *full, size_t n, int wanted) {
  for (size_t i = 0; i < n; i++)
    if (wanted ? memcmp(&got[i], &full[i], 4) != 0 : got[i] != 0.25f) return 0;
  return 1;
}

static void vit_case(cc_rt *rt, int B, int P, int C, int fd) {
  ve_ctx c = {rt, B, P, C, (size_t)B * P * C, (size_t)(P + 1) * C, (size_t)B * (P + 1) * C,
              NULL, NULL, NULL, NULL, NULL, {0}, {0}, {0}, {0}};
  c.pa = th_alloc(c.npa);
  c.cls = th_alloc(C);
  c.pos = th_alloc(c.npos);
  c.proj = th_alloc(c.nout);
  c.y = th_alloc(c.nout);
  th_fill(c.pa, c.npa, -1, 1);
  th_fill(c.cls, C, -1, 1);
  th_fill(c.pos, c.npos, -1, 1);
  th_fill(c.proj, c.nout, -1, 1);
  c.dpa = th_dev(rt, c.pa, c.npa);
  c.dcls = th_dev(rt, c.cls, C);
  c.dpos = th_dev(rt, c.pos, c.npos);
  c.dout = th_dev_zero(rt, c.nout);
  char tag[64], name[160];
  snprintf(tag, sizeof tag, "B%d P%d C%d", B, P, C);

  ve_dev_loss(&c);
  double *want = th_alloc_d(c.nout);
  ref_vit_embed_fwd(want, c.pa, c.cls, c.pos, B, P, C);
  snprintf(name, sizeof name, "vit_embed_fwd %s", tag);
  th_close(name, c.y, want, c.nout, 1e-30, 6e-8);

  float *gpa = th_alloc(c.npa), *gcls = th_alloc(C), *gpos = th_alloc(c.npos);
  ve_bwd(&c, gpa, gcls, gpos, 1, 1, 1);
  double *rpa = th_alloc_d(c.npa), *rcls = th_alloc_d(C), *rpos = th_alloc_d(c.npos);
  ref_vit_embed_bwd(rpa, rcls, rpos, c.proj, B, P, C);
  add_const(rpa, c.npa, 0.25);
  add_const(rcls, C, 0.25);
  add_const(rpos, c.npos, 0.25);
  snprintf(name, sizeof name, "vit_embed_bwd dpatches %s", tag);
  th_close(name, gpa, rpa, c.npa, 1e-30, 6e-8);
  snprintf(name, sizeof name, "vit_embed_bwd dcls %s", tag);
  th_close(name, gcls, rcls, C, 1e-6 * B + 1e-6, 1e-6);
  snprintf(name, sizeof name, "vit_embed_bwd dpos %s", tag);
  th_close(name, gpos, rpos, c.npos, 1e-6 * B + 1e-6, 1e-6);

  float *gpa2 = th_alloc(c.npa), *gcls2 = th_alloc(C), *gpos2 = th_alloc(c.npos);
  ve_bwd(&c, gpa2, gcls2, gpos2, 1, 1, 1);
  snprintf(name, sizeof name, "vit_embed_bwd deterministic dcls %s", tag);
  th_same_bits(name, gcls, gcls2, C);
  snprintf(name, sizeof name, "vit_embed_bwd deterministic dpos %s", tag);
  th_same_bits(name, gpos, gpos2, c.npos);
  const int subsets[][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 1, 1}};
  for (int s = 0; s < 4; s++) {
    int wp = subsets[s][0], wc = subsets[s][1], wq = subsets[s][2];
    ve_bwd(&c, gpa2, gcls2, gpos2, wp, wc, wq);
    int ok = same_or_quarter(gpa2, gpa, c.npa, wp) && same_or_quarter(gcls2, gcls, C, wc) &&
             same_or_quarter(gpos2, gpos, c.npos, wq);
    snprintf(name, sizeof name, "vit_embed_bwd subset p%d c%d q%d %s", wp, wc, wq, tag);
    th_assert(name, ok, "%s", ok ? "" : "differs from the full backward or touched a skipped gradient");
  }

  if (!fd) return;
  sub_const(gpa, c.npa, 0.25f);
  sub_const(gcls, C, 0.25f);
  sub_const(gpos, c.npos, 0.25f);
  add_const(rpa, c.npa, -0.25);
  add_const(rcls, C, -0.25);
  add_const(rpos, c.npos, -0.25);
  snprintf(name, sizeof name, "vit ref_bwd dpatches vs fd %s", tag);
  th_fd_check(name, ve_ref_loss, &c, c.pa, c.npa, rpa, 40, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "vit ref_bwd dcls vs fd %s", tag);
  th_fd_check(name, ve_ref_loss, &c, c.cls, C, rcls, 40, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "vit ref_bwd dpos vs fd %s", tag);
  th_fd_check(name, ve_ref_loss, &c, c.pos, c.npos, rpos, 40, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "vit dev_bwd dpatches vs fd %s", tag);
  th_fd_check_f(name, ve_dev_loss, &c, c.pa, c.npa, gpa, 40, 1e-2, 2e-3, 5e-3);
  snprintf(name, sizeof name, "vit dev_bwd dcls vs fd %s", tag);
  th_fd_check_f(name, ve_dev_loss, &c, c.cls, C, gcls, 40, 1e-2, 2e-3, 5e-3);
  snprintf(name, sizeof name, "vit dev_bwd dpos vs fd %s", tag);
  th_fd_check_f(name, ve_dev_loss, &c, c.pos, c.npos, gpos, 40, 1e-2, 2e-3, 5e-3);
}

/* ---- token + positional ------------------------------------------------- */

typedef struct {
  cc_rt *rt;
  int B, T, C, V;
  size_t nids, nwte, npos, nout;
  int *ids;
  float *wte, *pos, *proj, *y;
  cc_view dids, dwte, dpos, dout;
} te_ctx;

static double te_ref_loss(void *v) {
  te_ctx *c = v;
  double *y = malloc(c->nout * sizeof *y);
  ref_tok_embed_fwd(y, c->ids, c->wte, c->pos, c->B, c->T, c->C, c->V);
  double s = th_dot_d(c->proj, y, c->nout);
  free(y);
  return s;
}

static double te_dev_loss(void *v) {
  te_ctx *c = v;
  th_put(c->rt, c->dwte, c->wte, c->nwte);
  th_put(c->rt, c->dpos, c->pos, c->npos);
  TH_OK(cc_tok_embed_fwd(c->rt, c->dout, c->dids, c->dwte, c->dpos, c->B, c->T, c->C, c->V));
  th_get(c->rt, c->dout, c->y, c->nout);
  return th_dot(c->proj, c->y, c->nout);
}

static void te_bwd(te_ctx *c, float *gwte, float *gpos, int ww, int wq) {
  cc_view vw = th_dev(c->rt, filled(c->nwte, 0.25f), c->nwte);
  cc_view vq = th_dev(c->rt, filled(c->npos, 0.25f), c->npos);
  cc_view dy = th_dev(c->rt, c->proj, c->nout);
  TH_OK(cc_tok_embed_bwd(c->rt, ww ? vw : cc_none(), wq ? vq : cc_none(), dy, c->dids, c->B, c->T, c->C,
                         c->V));
  th_get(c->rt, vw, gwte, c->nwte);
  th_get(c->rt, vq, gpos, c->npos);
}

/* mode 0: ids uniform in [0,V); 1: one repeated id; 2: some outside [0,V) */
static void tok_case(cc_rt *rt, int B, int T, int C, int V, int mode, int fd) {
  te_ctx c = {rt, B, T, C, V, (size_t)B * T, (size_t)V * C, (size_t)T * C, (size_t)B * T * C,
              NULL, NULL, NULL, NULL, NULL, {0}, {0}, {0}, {0}};
  c.ids = th_alloc_i(c.nids);
  for (size_t i = 0; i < c.nids; i++) c.ids[i] = (int)(th_uniform() * V);
  if (mode == 1)
    for (size_t i = 0; i < c.nids; i++) c.ids[i] = V / 2;
  if (mode == 2) {
    const int bad[] = {-1, V, V + 7, -2147483647 - 1, 2147483647};
    for (size_t i = 0; i < c.nids; i += 3) c.ids[i] = bad[(i / 3) % 5];
  }
  c.wte = th_alloc(c.nwte);
  c.pos = th_alloc(c.npos);
  c.proj = th_alloc(c.nout);
  c.y = th_alloc(c.nout);
  th_fill(c.wte, c.nwte, -1, 1);
  th_fill(c.pos, c.npos, -1, 1);
  th_fill(c.proj, c.nout, -1, 1);
  c.dids = th_dev_i(rt, c.ids, c.nids);
  c.dwte = th_dev(rt, c.wte, c.nwte);
  c.dpos = th_dev(rt, c.pos, c.npos);
  c.dout = th_dev_zero(rt, c.nout);
  char tag[80], name[160];
  snprintf(tag, sizeof tag, "B%d T%d C%d V%d%s", B, T, C, V,
           mode == 1 ? " one id" : mode == 2 ? " bad ids" : "");

  te_dev_loss(&c);
  double *want = th_alloc_d(c.nout);
  ref_tok_embed_fwd(want, c.ids, c.wte, c.pos, B, T, C, V);
  snprintf(name, sizeof name, "tok_embed_fwd %s", tag);
  th_close(name, c.y, want, c.nout, 1e-30, 6e-8);

  float *gwte = th_alloc(c.nwte), *gpos = th_alloc(c.npos);
  te_bwd(&c, gwte, gpos, 1, 1);
  double *rwte = th_alloc_d(c.nwte), *rpos = th_alloc_d(c.npos);
  ref_tok_embed_bwd(rwte, rpos, c.proj, c.ids, B, T, C, V);
  add_const(rwte, c.nwte, 0.25);
  add_const(rpos, c.npos, 0.25);
  double nt = (double)B * T;
  snprintf(name, sizeof name, "tok_embed_bwd dwte %s", tag);
  th_close(name, gwte, rwte, c.nwte, 1e-6 * nt + 1e-6, 1e-6);
  snprintf(name, sizeof name, "tok_embed_bwd dpos %s", tag);
  th_close(name, gpos, rpos, c.npos, 1e-6 * B + 1e-6, 1e-6);

  float *gwte2 = th_alloc(c.nwte), *gpos2 = th_alloc(c.npos);
  te_bwd(&c, gwte2, gpos2, 1, 1);
  snprintf(name, sizeof name, "tok_embed_bwd deterministic dwte %s", tag);
  th_same_bits(name, gwte, gwte2, c.nwte);
  snprintf(name, sizeof name, "tok_embed_bwd deterministic dpos %s", tag);
  th_same_bits(name, gpos, gpos2, c.npos);
  for (int s = 0; s < 2; s++) {
    te_bwd(&c, gwte2, gpos2, s == 0, s == 1);
    int ok = same_or_quarter(gwte2, gwte, c.nwte, s == 0) && same_or_quarter(gpos2, gpos, c.npos, s == 1);
    snprintf(name, sizeof name, "tok_embed_bwd only %s %s", s == 0 ? "dwte" : "dpos", tag);
    th_assert(name, ok, "%s", ok ? "" : "differs from the full backward or touched the other");
  }

  if (!fd) return;
  sub_const(gwte, c.nwte, 0.25f);
  sub_const(gpos, c.npos, 0.25f);
  add_const(rwte, c.nwte, -0.25);
  add_const(rpos, c.npos, -0.25);
  snprintf(name, sizeof name, "tok ref_bwd dwte vs fd %s", tag);
  th_fd_check(name, te_ref_loss, &c, c.wte, c.nwte, rwte, 60, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "tok ref_bwd dpos vs fd %s", tag);
  th_fd_check(name, te_ref_loss, &c, c.pos, c.npos, rpos, 40, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "tok dev_bwd dwte vs fd %s", tag);
  th_fd_check_f(name, te_dev_loss, &c, c.wte, c.nwte, gwte, 60, 1e-2, 2e-3, 5e-3);
  snprintf(name, sizeof name, "tok dev_bwd dpos vs fd %s", tag);
  th_fd_check_f(name, te_dev_loss, &c, c.pos, c.npos, gpos, 40, 1e-2, 2e-3, 5e-3);
}

int main(void) {
  cc_rt *rt = th_open();

  patch_case(rt, 1, 8, 8, 5, 1);
  patch_case(rt, 2, 14, 7, 7, 1);
  patch_case(rt, 3, 64, 8, 33, 0);
  patch_case(rt, 2, 48, 16, 50, 0);
  patch_case(rt, 1, 224, 32, 13, 0);

  /* the batch-reduction kernels in each channel-block width up to the
   * device's vector width: 16, 8 (CPUs), 1 (GPUs), 4; odd C exercises the
   * short last block. Wider than the device is refused (below). */
  const char *vecs[] = {"16", "1", "4", "8"};
  for (int v = 0; v < 4; v++) {
    if (atoi(vecs[v]) > cc_info(rt)->vector_width) continue;
    setenv("CLIPCL_EMBED_VEC", vecs[v], 1);
    printf("# CLIPCL_EMBED_VEC=%s\n", vecs[v]);
    vit_case(rt, 1, 0, 7, 0);
    vit_case(rt, 1, 1, 1, 1);
    vit_case(rt, 3, 49, 50, 1);
    vit_case(rt, 2, 4, 129, 0);
    vit_case(rt, 7, 64, 768, 0);

    tok_case(rt, 1, 1, 1, 1, 0, 1);
    tok_case(rt, 2, 7, 50, 10, 0, 1); /* 14 ids over 10 rows: duplicates */
    tok_case(rt, 3, 5, 33, 9, 1, 1);  /* one id everywhere */
    tok_case(rt, 2, 9, 17, 11, 2, 1); /* ids outside [0,V) */
    tok_case(rt, 4, 77, 129, 300, 0, 0);
    tok_case(rt, 5, 77, 512, 1000, 2, 0);
  }
  setenv("CLIPCL_EMBED_VEC", "3", 1);
  cc_view z = th_dev_zero(rt, 16);
  th_assert("CLIPCL_EMBED_VEC=3 rejected", cc_vit_embed_fwd(rt, z, z, z, z, 1, 1, 4) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  if (cc_info(rt)->vector_width < 16) {
    setenv("CLIPCL_EMBED_VEC", "16", 1);
    th_assert("CLIPCL_EMBED_VEC wider than the device rejected",
              cc_vit_embed_fwd(rt, z, z, z, z, 1, 1, 4) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  }
  unsetenv("CLIPCL_EMBED_VEC");

  /* geometry the conv cannot express is an error */
  th_assert("patch S % p != 0 rejected",
            cc_patch_embed_fwd(rt, z, z, z, z, 1, 10, 3, 4) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  th_assert("patch p = 0 rejected", cc_patch_embed_fwd(rt, z, z, z, z, 1, 10, 0, 4) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  th_assert("tok negative V rejected", cc_tok_embed_fwd(rt, z, z, z, z, 1, 1, 1, -1) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  return th_finish(rt);
}
