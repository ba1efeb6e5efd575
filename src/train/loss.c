/* loss.c: see loss.h.
 *
 * CLIP (softmax). Rank r normalises its N image and text features and
 * all-gathers them (one exchange of both), then computes its N rows against
 * all R*N columns in both directions: logits_per_image = s img_r txt_all^T,
 * logits_per_text = s txt_r img_all^T, labels r*N + i, each cross-entropy
 * weighted 0.5/R so that the ranks' shares add up to the one-process loss.
 * Backward: the gradients of the gathered columns are reduce-scattered (the
 * backward of an all-gather) and added to the own rows' gradients.
 *
 * SigLIP (sigmoid). Image features stay where they are; text blocks travel
 * around the ring (open_clip's bidir exchange: (R-1)/2 rounds both ways,
 * then one round to the right when R-1 is odd), so a rank only ever holds its
 * N rows against one block of N columns. Every pair term is weighted
 * 1/(R*N). Backward runs the rounds in reverse: the gradient of each received
 * block goes back to its sender, which adds the gradients coming back for
 * what it forwarded (the autograd of open_clip's NeighbourExchange). */
#include "train/loss.h"

#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

/* The device buffers of a loss for l->cap rows of l->E against l->R ranks,
 * in its arena (a real one, or a counting one for cc_loss_plan). */
static clipcl_status loss_layout(cc_loss *l) {
  int siglip = l->siglip;
  size_t N = (size_t)l->cap, R = (size_t)l->R, NE = N * (size_t)l->E, cols = siglip ? N : R * N;
  cc_arena *a = &l->ar;
  clipcl_status s = cc_arena_alloc(a, NE, &l->img_n);
  if (!s) s = cc_arena_alloc(a, NE, &l->txt_n);
  if (!s) s = cc_arena_alloc(a, N, &l->img_norm);
  if (!s) s = cc_arena_alloc(a, N, &l->txt_norm);
  if (!s) s = cc_arena_alloc(a, NE, &l->dimg_n);
  if (!s) s = cc_arena_alloc(a, NE, &l->dtxt_n);
  if (!s) s = cc_arena_alloc(a, N * cols, &l->li);
  if (!s) s = cc_arena_alloc(a, N * cols, &l->dli);
  if (!s) s = cc_arena_alloc(a, 2 * NE, &l->tmp);
  if (!s) s = cc_arena_alloc(a, 1, &l->loss);
  if (!s && !siglip) {
    s = cc_arena_alloc(a, N * cols, &l->lt);
    if (!s) s = cc_arena_alloc(a, N * cols, &l->pi);
    if (!s) s = cc_arena_alloc(a, N * cols, &l->pt);
    if (!s) s = cc_arena_alloc(a, N * cols, &l->dlt);
    if (!s && R > 1) {
      s = cc_arena_alloc(a, R * NE, &l->img_all);
      if (!s) s = cc_arena_alloc(a, R * NE, &l->txt_all);
      if (!s) s = cc_arena_alloc(a, R * NE, &l->dimg_all);
      if (!s) s = cc_arena_alloc(a, R * NE, &l->dtxt_all);
    }
  }
  if (!s && siglip) {
    s = cc_arena_alloc(a, NE, &l->blk);
    if (!s) s = cc_arena_alloc(a, NE, &l->dblk);
  }
  return s;
}

static size_t loss_expect(size_t N, size_t E, size_t R, int siglip) {
  size_t NE = N * E, cols = siglip ? N : R * N;
  return 8 * NE + 6 * N * cols + 4 * R * NE + 64;
}

clipcl_status cc_loss_plan(int cap, int E, int R, int siglip, uint64_t max_alloc, uint64_t *bytes,
                           uint64_t *largest) {
  cc_loss l;
  memset(&l, 0, sizeof l);
  l.cap = cap, l.E = E, l.R = R, l.siglip = siglip;
  cc_arena_init_count(&l.ar, "loss", loss_expect((size_t)cap, (size_t)E, (size_t)R, siglip), max_alloc);
  clipcl_status s = loss_layout(&l);
  *bytes = cc_arena_bytes(&l.ar, largest);
  return s;
}

clipcl_status cc_loss_create(cc_rt *rt, cc_dist *d, int cap, int E, int siglip, cc_loss **out) {
  *out = NULL;
  if (cap < 1 || E < 1) return cc_fail(CLIPCL_ERR_ARG, "loss workspace for %d rows of %d", cap, E);
  cc_loss *l = calloc(1, sizeof *l);
  if (!l) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  l->rt = rt;
  l->d = d;
  l->cap = cap;
  l->E = E;
  l->R = cc_dist_size(d);
  l->rank = cc_dist_rank(d);
  l->siglip = siglip;
  size_t N = (size_t)cap, R = (size_t)l->R, NE = N * (size_t)E;
  clipcl_status s = cc_arena_init(&l->ar, rt, "loss", loss_expect(N, (size_t)E, R, siglip));
  if (!s) s = loss_layout(l);
  if (!s && R > 1) {
    /* CLIP: what is sent and received, 2 R N E each; SigLIP: the own block,
     * R-1 received blocks, their gradients and two returned gradients */
    l->host_cap = siglip ? (2 * R + 2) * NE : 4 * R * NE + 2 * NE;
    if (!(l->host = malloc(l->host_cap * sizeof *l->host))) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  }
  if (s) {
    cc_loss_free(l);
    return s;
  }
  *out = l;
  return CLIPCL_OK;
}

void cc_loss_free(cc_loss *l) {
  if (!l) return;
  cc_arena_free(&l->ar);
  free(l->host);
  free(l);
}

/* ---- CLIP ---------------------------------------------------------------------- */

static clipcl_status clip_run(cc_loss *l, int N, cc_view s, int grads, cc_view dscale) {
  cc_rt *rt = l->rt;
  int E = l->E, R = l->R, M = R * N, off = l->rank * N;
  size_t NE = (size_t)N * E, NM = (size_t)N * M;
  cc_view img_all = l->img_n, txt_all = l->txt_n;
  if (R > 1) {
    /* all-gather [img_n; txt_n] of every rank */
    float *send = l->host, *recv = l->host + 2 * NE;
    CC_TRY(cc_read(rt, l->img_n, send, NE));
    CC_TRY(cc_read(rt, l->txt_n, send + NE, NE));
    CC_TRY(cc_dist_allgather(l->d, send, recv, 2 * NE));
    for (int k = 0; k < R; k++) {
      CC_TRY(cc_write(rt, cc_at(l->img_all, (size_t)k * NE), recv + (size_t)k * 2 * NE, NE));
      CC_TRY(cc_write(rt, cc_at(l->txt_all, (size_t)k * NE), recv + (size_t)k * 2 * NE + NE, NE));
    }
    img_all = l->img_all;
    txt_all = l->txt_all;
  }
  CC_TRY(cc_logits_fwd(rt, l->li, l->img_n, txt_all, s, N, M, E));
  CC_TRY(cc_logits_fwd(rt, l->lt, l->txt_n, img_all, s, N, M, E));
  float w = 0.5f / (float)R;
  CC_TRY(cc_ce_fwd(rt, l->loss, l->pi, l->li, N, M, off, w, 0));
  CC_TRY(cc_ce_fwd(rt, l->loss, l->pt, l->lt, N, M, off, w, 1));
  if (!grads) return CLIPCL_OK;
  CC_TRY(cc_fill(rt, l->dli, NM, 0.0f));
  CC_TRY(cc_fill(rt, l->dlt, NM, 0.0f));
  CC_TRY(cc_ce_bwd(rt, l->dli, l->pi, N, M, off, w));
  CC_TRY(cc_ce_bwd(rt, l->dlt, l->pt, N, M, off, w));
  CC_TRY(cc_fill(rt, l->dimg_n, NE, 0.0f));
  CC_TRY(cc_fill(rt, l->dtxt_n, NE, 0.0f));
  if (R == 1) {
    /* the columns are the own rows: both directions add into the same gradients */
    CC_TRY(cc_logits_bwd(rt, l->dimg_n, l->dtxt_n, dscale, l->dli, l->img_n, l->txt_n, l->li, s, N, N, E));
    return cc_logits_bwd(rt, l->dtxt_n, l->dimg_n, dscale, l->dlt, l->txt_n, l->img_n, l->lt, s, N, N, E);
  }
  CC_TRY(cc_fill(rt, l->dimg_all, (size_t)R * NE, 0.0f));
  CC_TRY(cc_fill(rt, l->dtxt_all, (size_t)R * NE, 0.0f));
  CC_TRY(cc_logits_bwd(rt, l->dimg_n, l->dtxt_all, dscale, l->dli, l->img_n, l->txt_all, l->li, s, N, M, E));
  CC_TRY(cc_logits_bwd(rt, l->dtxt_n, l->dimg_all, dscale, l->dlt, l->txt_n, l->img_all, l->lt, s, N, M, E));
  /* reduce-scatter [dimg; dtxt] of each rank's columns back to that rank */
  float *send = l->host, *recv = l->host + 2 * (size_t)R * NE;
  for (int k = 0; k < R; k++) {
    CC_TRY(cc_read(rt, cc_at(l->dimg_all, (size_t)k * NE), send + (size_t)k * 2 * NE, NE));
    CC_TRY(cc_read(rt, cc_at(l->dtxt_all, (size_t)k * NE), send + (size_t)k * 2 * NE + NE, NE));
  }
  CC_TRY(cc_dist_reduce_scatter(l->d, send, recv, 2 * NE));
  CC_TRY(cc_write(rt, l->tmp, recv, 2 * NE));
  CC_TRY(cc_axpy(rt, l->dimg_n, l->tmp, 1.0f, NE));
  return cc_axpy(rt, l->dtxt_n, cc_at(l->tmp, NE), 1.0f, NE);
}

/* ---- SigLIP -------------------------------------------------------------------- */

/* The negatives-only block against one received text block X (host): loss
 * added, d img added, d X (local part) into G (host). */
static clipcl_status siglip_block(cc_loss *l, int N, cc_view s, cc_view b, int grads, cc_view dscale, cc_view dbias,
                                  const float *X, float *G, float coef) {
  cc_rt *rt = l->rt;
  int E = l->E;
  size_t NE = (size_t)N * E;
  CC_TRY(cc_write(rt, l->blk, X, NE));
  CC_TRY(cc_logits_fwd(rt, l->li, l->img_n, l->blk, s, N, N, E));
  CC_TRY(cc_siglip_fwd_bwd(rt, l->loss, grads ? l->dli : cc_none(), dbias, l->li, b, N, N, -1, coef, 1));
  if (!grads) return CLIPCL_OK;
  CC_TRY(cc_fill(rt, l->dblk, NE, 0.0f));
  CC_TRY(cc_logits_bwd(rt, l->dimg_n, l->dblk, dscale, l->dli, l->img_n, l->blk, l->li, s, N, N, E));
  return cc_read(rt, l->dblk, G, NE);
}

static void add_to(float *y, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static clipcl_status siglip_run(cc_loss *l, int N, cc_view s, cc_view b, int grads, cc_view dscale,
                                cc_view dbias) {
  cc_rt *rt = l->rt;
  int E = l->E, R = l->R;
  size_t NE = (size_t)N * E;
  float coef = (float)(1.0 / ((double)R * N));
  /* own pairs: positives on the diagonal */
  CC_TRY(cc_logits_fwd(rt, l->li, l->img_n, l->txt_n, s, N, N, E));
  CC_TRY(cc_siglip_fwd_bwd(rt, l->loss, grads ? l->dli : cc_none(), grads ? dbias : cc_none(), l->li, b, N, N, 0,
                           coef, 0));
  if (grads) {
    CC_TRY(cc_fill(rt, l->dimg_n, NE, 0.0f));
    CC_TRY(cc_fill(rt, l->dtxt_n, NE, 0.0f));
    CC_TRY(cc_logits_bwd(rt, l->dimg_n, l->dtxt_n, dscale, l->dli, l->img_n, l->txt_n, l->li, s, N, N, E));
  }
  if (R == 1) return CLIPCL_OK;
  /* host: own block, R-1 received blocks X[k], their gradients G[k], the
   * gradient coming back for the own block, two landing buffers */
  float *own = l->host, *X = own + NE, *G = X + (size_t)(R - 1) * NE, *gown = G + (size_t)(R - 1) * NE;
  CC_TRY(cc_read(rt, l->txt_n, own, NE));
  memset(gown, 0, NE * sizeof *gown);
  int nb = (R - 1) / 2, rem = (R - 1) % 2, k = 0;
  const float *to_left = own, *to_right = own;
  for (int i = 0; i < nb; i++, k += 2) {
    float *from_right = X + (size_t)k * NE, *from_left = X + (size_t)(k + 1) * NE;
    CC_TRY(cc_dist_ring(l->d, to_left, to_right, from_left, from_right, NE));
    CC_TRY(siglip_block(l, N, s, b, grads, dscale, dbias, from_right, G + (size_t)k * NE, coef));
    CC_TRY(siglip_block(l, N, s, b, grads, dscale, dbias, from_left, G + (size_t)(k + 1) * NE, coef));
    to_left = from_right;
    to_right = from_left;
  }
  if (rem) {
    CC_TRY(cc_dist_ring(l->d, NULL, to_right, X + (size_t)k * NE, NULL, NE));
    CC_TRY(siglip_block(l, N, s, b, grads, dscale, dbias, X + (size_t)k * NE, G + (size_t)k * NE, coef));
  }
  if (!grads) return CLIPCL_OK;
  /* backward: gradients return the way their blocks came */
  float *back = l->host + (size_t)(2 * R) * NE; /* two landing buffers of NE */
  float *bl = back, *br = back + NE;
  if (rem) {
    CC_TRY(cc_dist_ring(l->d, G + (size_t)k * NE, NULL, NULL, br, NE));
    add_to(nb == 0 ? gown : G + (size_t)(k - 1) * NE, br, NE);
  }
  for (int i = nb - 1; i >= 0; i--) {
    int kk = 2 * i;
    CC_TRY(cc_dist_ring(l->d, G + (size_t)(kk + 1) * NE, G + (size_t)kk * NE, bl, br, NE));
    /* bl: the gradient of what went left this round, br: of what went right */
    add_to(i == 0 ? gown : G + (size_t)(kk - 2) * NE, bl, NE);
    add_to(i == 0 ? gown : G + (size_t)(kk - 1) * NE, br, NE);
  }
  CC_TRY(cc_write(rt, l->tmp, gown, NE));
  return cc_axpy(rt, l->dtxt_n, l->tmp, 1.0f, NE);
}

clipcl_status cc_loss_run(cc_loss *l, cc_view img_feat, cc_view txt_feat, int N, cc_view scale, cc_view bias,
                          int grads, cc_view dimg_feat, cc_view dtxt_feat, cc_view dscale, cc_view dbias) {
  if (N < 1 || N > l->cap) return cc_fail(CLIPCL_ERR_ARG, "loss over %d rows exceeds its workspace (%d)", N, l->cap);
  if (l->siglip && !bias.buf) return cc_fail(CLIPCL_ERR_ARG, "the SigLIP loss needs a logit_bias parameter");
  cc_rt *rt = l->rt;
  int E = l->E;
  size_t NE = (size_t)N * E;
  CC_TRY(cc_l2norm_fwd(rt, l->img_n, l->img_norm, img_feat, N, E));
  CC_TRY(cc_l2norm_fwd(rt, l->txt_n, l->txt_norm, txt_feat, N, E));
  if (l->siglip) CC_TRY(siglip_run(l, N, scale, bias, grads, dscale, dbias));
  else CC_TRY(clip_run(l, N, scale, grads, dscale));
  if (!grads) return CLIPCL_OK;
  CC_TRY(cc_fill(rt, dimg_feat, NE, 0.0f));
  CC_TRY(cc_fill(rt, dtxt_feat, NE, 0.0f));
  CC_TRY(cc_l2norm_bwd(rt, dimg_feat, l->dimg_n, l->img_n, l->img_norm, N, E));
  return cc_l2norm_bwd(rt, dtxt_feat, l->dtxt_n, l->txt_n, l->txt_norm, N, E);
}
