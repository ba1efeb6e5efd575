/* test_pool.c: cc_argmax_rows (first maximum on ties, as torch.argmax) and
 * cc_gather_rows_fwd/bwd (with an index buffer and with none = position 0)
 * against the references in tests/ref/ref_nn.c, on odd shapes.
 *
 * Checks and tolerances: argmax indices exact; gather forward exact (a copy);
 * gather backward exact against 0.25 + dout in float (one rounded add,
 * computed the same way) and untouched rows stay 0.25; indices outside [0,T)
 * gather zeros and scatter nothing; reference backward vs central
 * differences of the reference forward (double, h 1e-3, atol 1e-7 rtol
 * 1e-6) and device backward vs central differences of the device forward
 * (float, h 1e-2, atol 2e-3 rtol 5e-3; the op is linear, so only rounding
 * of the projected loss remains).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_nn.h"

typedef struct {
  cc_rt *rt;
  int B, T, C;
  float *x, *proj, *y;
  const int *idx;
  cc_view dx, didx, dy;
} g_ctx;

static double ref_loss(void *v) {
  g_ctx *c = v;
  size_t n = (size_t)c->B * c->C;
  double *y = malloc(n * sizeof *y);
  ref_gather_rows_fwd(y, c->x, c->idx, c->B, c->T, c->C);
  double s = th_dot_d(c->proj, y, n);
  free(y);
  return s;
}

static double dev_loss(void *v) {
  g_ctx *c = v;
  size_t n = (size_t)c->B * c->C;
  th_put(c->rt, c->dx, c->x, (size_t)c->B * c->T * c->C);
  TH_OK(cc_gather_rows_fwd(c->rt, c->dy, c->dx, c->idx ? c->didx : cc_none(), c->B, c->T, c->C));
  th_get(c->rt, c->dy, c->y, n);
  return th_dot(c->proj, c->y, n);
}

static void argmax_case(cc_rt *rt, int B, int T, int *ids_out, int *idx_out, cc_view *didx, cc_view *dids) {
  size_t n = (size_t)B * T;
  int *ids = th_alloc_i(n);
  for (int b = 0; b < B; b++) {
    int *row = ids + (size_t)b * T;
    int kind = b % 4;
    for (int t = 0; t < T; t++) row[t] = (int)(th_uniform() * 49406);
    if (kind == 0) row[(int)(th_uniform() * T)] = 49407; /* one EOT */
    if (kind == 1) {                                    /* a padded caption: EOT then zeros */
      int e = (int)(th_uniform() * T);
      row[e] = 49407;
      for (int t = e + 1; t < T; t++) row[t] = 0;
    }
    if (kind == 2) /* ties: the maximum twice; the first must win */
      row[T - 1] = row[T / 2] = 49407;
    if (kind == 3) /* all equal (and negative): position 0 */
      for (int t = 0; t < T; t++) row[t] = -5;
  }
  int *want = th_alloc_i(B), *got = th_alloc_i(B);
  ref_argmax_rows(want, ids, B, T);
  *dids = th_dev_i(rt, ids, n);
  *didx = th_dev_zero(rt, B);
  TH_OK(cc_argmax_rows(rt, *didx, *dids, B, T));
  TH_OK(cc_read(rt, *didx, got, B));
  int bad = -1;
  for (int b = 0; b < B && bad < 0; b++)
    if (got[b] != want[b]) bad = b;
  char name[64];
  snprintf(name, sizeof name, "argmax_rows B%d T%d", B, T);
  if (bad < 0) th_assert(name, 1, "all %d rows match", B);
  else th_assert(name, 0, "row %d: got %d want %d", bad, got[bad], want[bad]);
  memcpy(ids_out, ids, n * sizeof *ids);
  memcpy(idx_out, got, B * sizeof *got);
}

static void gather_case(cc_rt *rt, int B, int T, int C, int use_idx, int corrupt, int fd) {
  size_t nx = (size_t)B * T * C, ny = (size_t)B * C;
  int *ids = th_alloc_i((size_t)B * T), *idx = th_alloc_i(B);
  cc_view didx, dids;
  argmax_case(rt, B, T, ids, idx, &didx, &dids);
  if (corrupt) { /* indices a bad id buffer could produce: must not fault */
    for (int b = 0; b < B; b += 2) idx[b] = (b / 2) % 2 ? T : -1;
    TH_OK(cc_write(rt, didx, idx, B));
  }
  g_ctx c = {rt, B, T, C, th_alloc(nx), th_alloc(ny), th_alloc(ny), use_idx ? idx : NULL, {0}, didx, {0}};
  th_fill(c.x, nx, -1, 1);
  th_fill(c.proj, ny, -1, 1);
  c.dx = th_dev(rt, c.x, nx);
  c.dy = th_dev_zero(rt, ny);
  char tag[64], name[128];
  snprintf(tag, sizeof tag, "B%d T%d C%d%s%s", B, T, C, use_idx ? " idx" : " cls", corrupt ? " bad idx" : "");

  dev_loss(&c);
  double *want = th_alloc_d(ny);
  ref_gather_rows_fwd(want, c.x, c.idx, B, T, C);
  snprintf(name, sizeof name, "gather_fwd %s", tag);
  th_close(name, c.y, want, ny, 0, 0);

  float *g = th_alloc(nx);
  for (size_t i = 0; i < nx; i++) g[i] = 0.25f;
  cc_view dg = th_dev(rt, g, nx), dy = th_dev(rt, c.proj, ny);
  TH_OK(cc_gather_rows_bwd(rt, dg, dy, use_idx ? didx : cc_none(), B, T, C));
  th_get(rt, dg, g, nx);
  double *rg = th_alloc_d(nx);
  ref_gather_rows_bwd(rg, c.proj, c.idx, B, T, C);
  float *wantf = th_alloc(nx);
  for (size_t i = 0; i < nx; i++) wantf[i] = rg[i] != 0 ? 0.25f + (float)rg[i] : 0.25f;
  snprintf(name, sizeof name, "gather_bwd %s", tag);
  th_close_f(name, g, wantf, nx, 0, 0);

  if (!fd) return;
  for (size_t i = 0; i < nx; i++) g[i] -= 0.25f;
  snprintf(name, sizeof name, "gather ref_bwd vs fd %s", tag);
  th_fd_check(name, ref_loss, &c, c.x, nx, rg, 60, 1e-3, 1e-7, 1e-6);
  snprintf(name, sizeof name, "gather dev_bwd vs fd %s", tag);
  th_fd_check_f(name, dev_loss, &c, c.x, nx, g, 60, 1e-2, 2e-3, 5e-3);
}

int main(void) {
  cc_rt *rt = th_open();
  const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {8, 77, 50}, {5, 50, 129}, {256, 77, 512}};
  for (int s = 0; s < 5; s++) {
    int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2];
    int fd = (size_t)B * T * C < 5000;
    gather_case(rt, B, T, C, 1, 0, fd);
    gather_case(rt, B, T, C, 0, 0, fd);
    gather_case(rt, B, T, C, 1, 1, fd);
  }
  cc_view z = th_dev_zero(rt, 4);
  th_assert("argmax_rows T=0 rejected", cc_argmax_rows(rt, z, z, 2, 0) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  th_assert("gather negative C rejected", cc_gather_rows_fwd(rt, z, z, cc_none(), 1, 1, -1) == CLIPCL_ERR_ARG,
            "%s", clipcl_last_error());
  return th_finish(rt);
}
