/* clip.c: the CLIP model on the device: creation, workspaces, the forward and
 * backward passes of the vision tower (patch embedding, class token,
 * ln_pre, pre-LN residual blocks, ln_post on the class token, projection),
 * the text tower (token + positional embedding, causal blocks, ln_final on
 * the EOT position, projection) and the contrastive head. Weights files and
 * the public wrappers live in weights.c and api.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"

clipcl_status cc_model_create(cc_rt *rt, const clipcl_config *cfg, cc_model **out) {
  *out = NULL;
  cc_model *m = calloc(1, sizeof *m);
  if (!m) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory creating the model");
  m->rt = rt;
  clipcl_status s = cc_layout_build(cfg, &m->L);
  if (!s) s = cc_arena_init(&m->par, rt, "parameters", m->L.total);
  if (!s) s = cc_arena_alloc(&m->par, m->L.total, &m->params);
  if (!s) s = cc_fill(rt, m->params, m->L.total, 0.0f);
  if (s) {
    clipcl_model_free(m);
    return s;
  }
  *out = m;
  return CLIPCL_OK;
}

static void ws_free(cc_tower_ws *w) {
  cc_arena_free(&w->ar);
  free(w->blk);
  memset(w, 0, sizeof *w);
}

void clipcl_model_free(clipcl_model *m) {
  if (!m) return;
  ws_free(&m->vis);
  ws_free(&m->txt);
  cc_arena_free(&m->head.ar);
  cc_arena_free(&m->gar);
  cc_arena_free(&m->par);
  cc_arena_free(&m->pk);
  free(m->pk_map);
  cc_layout_free(&m->L);
  free(m);
}

/* ---- packed weights for inference ------------------------------------------- */

void cc_model_params_changed(cc_model *m) {
  if (m->pk_state == 1) m->pk_state = 0;
}

/* Builds (or rebuilds, after a parameter change) the packed copies of every
 * block's four linear weights in both towers. */
static clipcl_status pack_weights(cc_model *m) {
  if (m->pk_state != 0 || m->has_grads) return CLIPCL_OK;
  const char *e = getenv("CLIPCL_PACK_WEIGHTS");
  if (e && !strcmp(e, "0")) {
    m->pk_state = -1;
    return CLIPCL_OK;
  }
  const cc_tower_dims *towers[2] = {&m->L.vis, &m->L.txt};
  int n = 0;
  for (int t = 0; t < 2; t++) n += 4 * towers[t]->layers;
  cc_pk_entry *map = calloc((size_t)n, sizeof *map);
  int *rows = calloc((size_t)n, sizeof *rows), *cols = calloc((size_t)n, sizeof *cols);
  size_t *sz = calloc((size_t)n, sizeof *sz), total = 0;
  clipcl_status s = map && rows && cols && sz ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  int k = 0;
  for (int t = 0; t < 2 && !s; t++) {
    if (t == 0 && m->no_vision) continue;
    const cc_tower_dims *d = towers[t];
    for (int l = 0; l < d->layers; l++) {
      const cc_block_off *o = &d->blk[l];
      size_t offs[4] = {o->qkv_w, o->out_w, o->fc_w, o->proj_w};
      int r[4] = {3 * d->C, d->C, d->M, d->C}, c[4] = {d->C, d->C, d->C, d->M}; /* (out, in) */
      for (int i = 0; i < 4 && !s; i++, k++) {
        map[k].off = offs[i], rows[k] = r[i], cols[k] = c[i];
        s = cc_gemm_pack_b(m->rt, &map[k].p, cc_none(), c[i], 1, r[i], c[i], &sz[k]);
        if (!s && sz[k] == 0) { /* this device's GEMM takes no packed B */
          m->pk_state = -1;
          goto done;
        }
        total += sz[k];
      }
    }
  }
  if (!s) {
    cc_arena_free(&m->pk);
    s = cc_arena_init(&m->pk, m->rt, "packed weights", total);
  }
  for (int i = 0; i < k && !s; i++) {
    s = cc_arena_alloc(&m->pk, sz[i], &map[i].p.v);
    if (!s) s = cc_gemm_pack_b(m->rt, &map[i].p, cc_P(m, map[i].off), cols[i], 1, rows[i], cols[i], &sz[i]);
  }
  if (!s) {
    free(m->pk_map);
    m->pk_map = map, map = NULL;
    m->npk = k;
    m->pk_state = 1;
  }
done:
  free(map);
  free(rows);
  free(cols);
  free(sz);
  return s;
}

/* The packed copy of the weight at params offset off, if there is one. */
static cc_packed packed_w(const cc_model *m, size_t off) {
  if (m->pk_state == 1 && !m->has_grads)
    for (int i = 0; i < m->npk; i++)
      if (m->pk_map[i].off == off) return m->pk_map[i].p;
  return (cc_packed){{NULL, 0}, 0};
}

clipcl_status cc_model_enable_grads(cc_model *m) {
  if (m->has_grads) return CLIPCL_OK;
  CC_TRY(cc_arena_init(&m->gar, m->rt, "gradients", m->L.total));
  CC_TRY(cc_arena_alloc(&m->gar, m->L.total, &m->grads));
  m->has_grads = 1;
  return cc_model_zero_grads(m);
}

clipcl_status cc_model_zero_grads(cc_model *m) {
  if (!m->has_grads) return cc_fail(CLIPCL_ERR_ARG, "gradients are not enabled");
  return cc_fill(m->rt, m->grads, m->L.total, 0.0f);
}

clipcl_status cc_model_set_params(cc_model *m, const float *host) {
  cc_model_params_changed(m);
  return cc_write(m->rt, m->params, host, m->L.total);
}

clipcl_status cc_model_get_params(cc_model *m, float *host) { return cc_read(m->rt, m->params, host, m->L.total); }

/* ---- workspaces ----------------------------------------------------------- */

/* Element counts are checked against overflow before any allocation. */
static clipcl_status ws_alloc(cc_arena *a, size_t n, cc_view *v) { return cc_arena_alloc(a, n, v); }

/* How much a workspace kind keeps: inference < checkpointing < everything. */
static int keeps(int save) { return save == CC_WS_FULL ? 2 : save == CC_WS_CKPT ? 1 : 0; }

static size_t arena_bytes(const cc_arena *a) {
  size_t n = 0;
  for (int i = 0; i < a->nblocks; i++) n += a->used[i];
  return n * 4;
}

size_t cc_model_activation_bytes(const cc_model *m) { return arena_bytes(&m->vis.ar) + arena_bytes(&m->txt.ar); }

clipcl_status cc_model_workspace(cc_model *m, int vision, int cap, int save) {
  cc_tower_ws *w = vision ? &m->vis : &m->txt;
  if (w->cap >= cap && keeps(w->save) >= keeps(save) && w->blk) return CLIPCL_OK;
  /* Growing never drops what an earlier user needs (inference batches
   * between training steps must not take away the saved activations). */
  if (w->blk) {
    if (w->cap > cap) cap = w->cap;
    if (keeps(w->save) > keeps(save)) save = w->save;
  }
  ws_free(w);
  return cc_tower_ws_build(w, &m->L, m->rt, 0, vision, cap, save);
}

void cc_tower_ws_free(cc_tower_ws *w) { ws_free(w); }

clipcl_status cc_tower_ws_build(cc_tower_ws *w, const cc_layout *L, cc_rt *rt, uint64_t max_alloc, int vision,
                                int cap, int save) {
  memset(w, 0, sizeof *w);
  const cc_tower_dims *d = vision ? &L->vis : &L->txt;
  size_t B = (size_t)cap, T = (size_t)d->T, C = (size_t)d->C, H = (size_t)d->H, M = (size_t)d->M;
  size_t E = (size_t)L->cfg.embed_dim, BT = B * T;
  if (cap <= 0 || BT / B != T || BT > ((size_t)1 << 40) / (M + 4 * C))
    return cc_fail(CLIPCL_ERR_ARG, "batch %d too large for this model", cap);
  w->cap = cap;
  w->save = save;
  w->vision = vision;
  w->blk = calloc((size_t)d->layers, sizeof *w->blk);
  if (!w->blk) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  size_t per_layer = BT * (C * 6 + 3 * C * 2 + M * 2) + BT * 4 + B * H * T * T;
  size_t expect = (save == CC_WS_FULL ? (size_t)d->layers : 1) * per_layer + BT * C * (8 + (size_t)d->layers) +
                  BT * M * 2;
  const char *name = vision ? "vision activations" : "text activations";
  if (rt) CC_TRY(cc_arena_init(&w->ar, rt, name, expect));
  else CC_TRY(cc_arena_init_count(&w->ar, name, expect, max_alloc));
  cc_arena *a = &w->ar;
  CC_TRY(ws_alloc(a, BT * C, &w->x0));
  for (int l = 0; l < d->layers; l++) {
    cc_block_acts *k = &w->blk[l];
    if (save != CC_WS_FULL && l > 0) {
      *k = w->blk[0];
      /* checkpointing keeps every block's output: the next block's input */
      if (save == CC_WS_CKPT) CC_TRY(ws_alloc(a, BT * C, &k->res_out));
      continue;
    }
    CC_TRY(ws_alloc(a, BT * C, &k->ln1));
    CC_TRY(ws_alloc(a, BT, &k->mean1));
    CC_TRY(ws_alloc(a, BT, &k->rstd1));
    CC_TRY(ws_alloc(a, BT * 3 * C, &k->qkv));
    CC_TRY(ws_alloc(a, BT * 3 * C, &k->qkvr));
    CC_TRY(ws_alloc(a, B * H * T * T, &k->att));
    CC_TRY(ws_alloc(a, BT * C, &k->atty));
    CC_TRY(ws_alloc(a, BT * C, &k->res_mid));
    CC_TRY(ws_alloc(a, BT * C, &k->ln2));
    CC_TRY(ws_alloc(a, BT, &k->mean2));
    CC_TRY(ws_alloc(a, BT, &k->rstd2));
    CC_TRY(ws_alloc(a, BT * M, &k->fc));
    CC_TRY(ws_alloc(a, BT * M, &k->fca));
    if (save) CC_TRY(ws_alloc(a, BT * C, &k->res_out));
    else k->res_out = w->x0; /* inference: the stream is updated in place */
  }
  CC_TRY(ws_alloc(a, B * C, &w->pooled));
  CC_TRY(ws_alloc(a, B * C, &w->lnf));
  CC_TRY(ws_alloc(a, B, &w->lnf_mean));
  CC_TRY(ws_alloc(a, B, &w->lnf_rstd));
  CC_TRY(ws_alloc(a, B * E, &w->feat));
  if (vision) {
    size_t S = (size_t)L->cfg.vision.image_size, P = T - 1;
    CC_TRY(ws_alloc(a, B * 3 * S * S, &w->pixels));
    CC_TRY(ws_alloc(a, B * P * (size_t)L->patch_dim, &w->cols));
    CC_TRY(ws_alloc(a, B * P * C, &w->patches));
    CC_TRY(ws_alloc(a, BT * C, &w->emb));
    CC_TRY(ws_alloc(a, BT, &w->pre_mean));
    CC_TRY(ws_alloc(a, BT, &w->pre_rstd));
  } else {
    CC_TRY(ws_alloc(a, BT, &w->ids));
    CC_TRY(ws_alloc(a, B, &w->eot));
  }
  if (save) {
    CC_TRY(ws_alloc(a, BT * C, &w->dres));
    CC_TRY(ws_alloc(a, BT * C, &w->dln));
    CC_TRY(ws_alloc(a, BT * 3 * C, &w->dqkv));
    CC_TRY(ws_alloc(a, BT * C, &w->datty));
    CC_TRY(ws_alloc(a, BT * M, &w->dfc));
    CC_TRY(ws_alloc(a, BT * M, &w->dfca));
    CC_TRY(ws_alloc(a, B * C, &w->dpooled));
    CC_TRY(ws_alloc(a, B * C, &w->dlnf));
    CC_TRY(ws_alloc(a, B * E, &w->dfeat));
  }
  return CLIPCL_OK;
}

clipcl_status cc_model_head_workspace(cc_model *m, int cap) {
  cc_head_ws *h = &m->head;
  if (h->cap >= cap) return CLIPCL_OK;
  cc_arena_free(&h->ar);
  return cc_head_ws_build(h, &m->L, m->rt, 0, cap);
}

clipcl_status cc_head_ws_build(cc_head_ws *h, const cc_layout *L, cc_rt *rt, uint64_t max_alloc, int cap) {
  memset(h, 0, sizeof *h);
  size_t N = (size_t)cap, E = (size_t)L->cfg.embed_dim;
  if (rt) CC_TRY(cc_arena_init(&h->ar, rt, "contrastive head", 8 * N * N + 8 * N * E));
  else CC_TRY(cc_arena_init_count(&h->ar, "contrastive head", 8 * N * N + 8 * N * E, max_alloc));
  CC_TRY(ws_alloc(&h->ar, N * E, &h->img_n));
  CC_TRY(ws_alloc(&h->ar, N * E, &h->txt_n));
  CC_TRY(ws_alloc(&h->ar, N, &h->img_norm));
  CC_TRY(ws_alloc(&h->ar, N, &h->txt_norm));
  CC_TRY(ws_alloc(&h->ar, N * N, &h->li));
  CC_TRY(ws_alloc(&h->ar, N * N, &h->lt));
  CC_TRY(ws_alloc(&h->ar, N * N, &h->pi));
  CC_TRY(ws_alloc(&h->ar, N * N, &h->pt));
  CC_TRY(ws_alloc(&h->ar, 1, &h->loss));
  CC_TRY(ws_alloc(&h->ar, N * N, &h->dli));
  CC_TRY(ws_alloc(&h->ar, N * N, &h->dlt));
  CC_TRY(ws_alloc(&h->ar, N * E, &h->dimg_n));
  CC_TRY(ws_alloc(&h->ar, N * E, &h->dtxt_n));
  h->cap = cap;
  return CLIPCL_OK;
}

/* ---- residual blocks -------------------------------------------------------- */

/* Block l from its input x into w->blk[l]. */
static clipcl_status block_forward(cc_model *m, const cc_tower_dims *d, cc_tower_ws *w, int l, cc_view x, int B,
                                   int causal) {
  cc_rt *rt = m->rt;
  int N = B * d->T, C = d->C, M = d->M, quick = m->L.cfg.quick_gelu;
  const cc_block_off *o = &d->blk[l];
  cc_block_acts *a = &w->blk[l];
  CC_TRY(cc_layernorm_fwd(rt, a->ln1, a->mean1, a->rstd1, x, cc_P(m, o->ln1_w), cc_P(m, o->ln1_b), N, C));
  CC_TRY(cc_linear_fwd_epi(rt, a->qkv, a->ln1, cc_P(m, o->qkv_w), cc_P(m, o->qkv_b), cc_none(), CC_ACT_NONE,
                           cc_none(), packed_w(m, o->qkv_w), N, C, 3 * C));
  CC_TRY(cc_attention_fwd(rt, a->atty, a->qkvr, a->att, a->qkv, B, d->T, C, d->H, causal));
  /* residual adds and the activation ride in the GEMM epilogue: one pass
   * over the (N,C) and (N,M) activations fewer each */
  CC_TRY(cc_linear_fwd_epi(rt, a->res_mid, a->atty, cc_P(m, o->out_w), cc_P(m, o->out_b), x, CC_ACT_NONE,
                           cc_none(), packed_w(m, o->out_w), N, C, C));
  CC_TRY(cc_layernorm_fwd(rt, a->ln2, a->mean2, a->rstd2, a->res_mid, cc_P(m, o->ln2_w), cc_P(m, o->ln2_b), N,
                          C));
  int act = quick ? CC_ACT_QUICKGELU : CC_ACT_GELU;
  if (w->save) /* the backward needs both: fc for GELU's derivative, fca for proj's weight gradient */
    CC_TRY(cc_linear_fwd_epi(rt, a->fc, a->ln2, cc_P(m, o->fc_w), cc_P(m, o->fc_b), cc_none(), act, a->fca,
                             packed_w(m, o->fc_w), N, C, M));
  else
    CC_TRY(cc_linear_fwd_epi(rt, a->fca, a->ln2, cc_P(m, o->fc_w), cc_P(m, o->fc_b), cc_none(), act, cc_none(),
                             packed_w(m, o->fc_w), N, C, M));
  CC_TRY(cc_linear_fwd_epi(rt, a->res_out, a->fca, cc_P(m, o->proj_w), cc_P(m, o->proj_b), a->res_mid,
                           CC_ACT_NONE, cc_none(), packed_w(m, o->proj_w), N, M, C));
  return CLIPCL_OK;
}

/* Runs the first `layers` blocks (all of them for the towers' outputs). */
static clipcl_status blocks_forward(cc_model *m, const cc_tower_dims *d, cc_tower_ws *w, int B, int causal,
                                    int layers) {
  cc_view x = w->x0;
  for (int l = 0; l < layers; l++) {
    CC_TRY(block_forward(m, d, w, l, x, B, causal));
    x = w->blk[l].res_out;
  }
  return CLIPCL_OK;
}

/* w->dres holds d(output of the last block) on entry and d(x0) on exit. */
static clipcl_status blocks_backward(cc_model *m, const cc_tower_dims *d, cc_tower_ws *w, int B, int causal) {
  cc_rt *rt = m->rt;
  int N = B * d->T, C = d->C, M = d->M, quick = m->L.cfg.quick_gelu;
  size_t NC = (size_t)N * C, NM = (size_t)N * M;
  for (int l = d->layers - 1; l >= 0; l--) {
    const cc_block_off *o = &d->blk[l];
    cc_block_acts *a = &w->blk[l];
    cc_view x = l == 0 ? w->x0 : w->blk[l - 1].res_out;
    /* checkpointing: the shared buffers hold the last block's forward; the
     * others are recomputed from their kept input (same kernels, same bits) */
    if (w->save == CC_WS_CKPT && l < d->layers - 1) CC_TRY(block_forward(m, d, w, l, x, B, causal));
    /* MLP branch: res_out = res_mid + c_proj(act(c_fc(ln_2(res_mid)))) */
    CC_TRY(cc_linear_bwd_set(rt, w->dfca, cc_G(m, o->proj_w), cc_G(m, o->proj_b), w->dres, a->fca,
                             cc_P(m, o->proj_w), N, M, C));
    CC_TRY(cc_gelu_bwd_set(rt, w->dfc, a->fc, w->dfca, NM, quick));
    CC_TRY(cc_linear_bwd_set(rt, w->dln, cc_G(m, o->fc_w), cc_G(m, o->fc_b), w->dfc, a->ln2, cc_P(m, o->fc_w), N,
                             C, M));
    CC_TRY(cc_layernorm_bwd(rt, w->dres, cc_G(m, o->ln2_w), cc_G(m, o->ln2_b), w->dln, a->res_mid,
                            cc_P(m, o->ln2_w), a->mean2, a->rstd2, N, C));
    /* attention branch: res_mid = x + out_proj(attn(in_proj(ln_1(x)))) */
    CC_TRY(cc_linear_bwd_set(rt, w->datty, cc_G(m, o->out_w), cc_G(m, o->out_b), w->dres, a->atty,
                             cc_P(m, o->out_w), N, C, C));
    CC_TRY(cc_fill(rt, w->dqkv, NC * 3, 0.0f));
    CC_TRY(cc_attention_bwd(rt, w->dqkv, w->datty, a->qkvr, a->att, B, d->T, C, d->H, causal));
    CC_TRY(cc_linear_bwd_set(rt, w->dln, cc_G(m, o->qkv_w), cc_G(m, o->qkv_b), w->dqkv, a->ln1,
                             cc_P(m, o->qkv_w), N, C, 3 * C));
    CC_TRY(cc_layernorm_bwd(rt, w->dres, cc_G(m, o->ln1_w), cc_G(m, o->ln1_b), w->dln, x, cc_P(m, o->ln1_w),
                            a->mean1, a->rstd1, N, C));
    if (m->on_block_grads) m->on_block_grads(m->on_block_user, w->vision, l);
  }
  return CLIPCL_OK;
}

/* pooled (B,C) -> LN -> @ proj (C,E) = feat */
static clipcl_status pool_head_forward(cc_model *m, cc_tower_ws *w, int B, int C, size_t ln_w, size_t ln_b,
                                       size_t proj) {
  int E = m->L.cfg.embed_dim;
  CC_TRY(cc_layernorm_fwd(m->rt, w->lnf, w->lnf_mean, w->lnf_rstd, w->pooled, cc_P(m, ln_w), cc_P(m, ln_b), B, C));
  cc_gemm_desc g = {.M = B, .N = E, .K = C, .alpha = 1.0f, .A = w->lnf, .B = cc_P(m, proj), .C = w->feat,
                    .lda = C, .ldb = E, .ldc = E};
  return cc_gemm(m->rt, &g);
}

/* From w->dfeat to w->dpooled (overwritten); adds the LN and projection grads. */
static clipcl_status pool_head_backward(cc_model *m, cc_tower_ws *w, int B, int C, size_t ln_w, size_t ln_b,
                                        size_t proj) {
  int E = m->L.cfg.embed_dim;
  cc_gemm_desc dx = {.transB = 1, .M = B, .N = C, .K = E, .alpha = 1.0f, .A = w->dfeat, .B = cc_P(m, proj),
                     .C = w->dlnf, .lda = E, .ldb = E, .ldc = C};
  CC_TRY(cc_gemm(m->rt, &dx));
  cc_gemm_desc dw = {.transA = 1, .M = C, .N = E, .K = B, .alpha = 1.0f, .beta = 1.0f, .A = w->lnf, .B = w->dfeat,
                     .C = cc_G(m, proj), .lda = C, .ldb = E, .ldc = E};
  CC_TRY(cc_gemm(m->rt, &dw));
  CC_TRY(cc_fill(m->rt, w->dpooled, (size_t)B * C, 0.0f));
  return cc_layernorm_bwd(m->rt, w->dpooled, cc_G(m, ln_w), cc_G(m, ln_b), w->dlnf, w->pooled, cc_P(m, ln_w),
                          w->lnf_mean, w->lnf_rstd, B, C);
}

/* ---- towers ------------------------------------------------------------------ */

static clipcl_status check_batch(const cc_tower_ws *w, int B, const char *what) {
  if (!w->blk || B < 1 || B > w->cap)
    return cc_fail(CLIPCL_ERR_ARG, "%s batch %d exceeds the workspace (%d)", what, B, w->cap);
  return CLIPCL_OK;
}

clipcl_status cc_vision_forward(cc_model *m, int B) {
  cc_tower_ws *w = &m->vis;
  CC_TRY(check_batch(w, B, "image"));
  CC_TRY(pack_weights(m));
  const cc_layout *L = &m->L;
  int C = L->vis.C, P = L->vis.T - 1, S = L->cfg.vision.image_size, p = L->cfg.vision.patch_size;
  CC_TRY(cc_patch_embed_fwd(m->rt, w->patches, w->cols, w->pixels, cc_P(m, L->v_conv), B, S, p, C));
  CC_TRY(cc_vit_embed_fwd(m->rt, w->emb, w->patches, cc_P(m, L->v_cls), cc_P(m, L->v_pos), B, P, C));
  CC_TRY(cc_layernorm_fwd(m->rt, w->x0, w->pre_mean, w->pre_rstd, w->emb, cc_P(m, L->v_lnpre_w),
                          cc_P(m, L->v_lnpre_b), B * L->vis.T, C));
  CC_TRY(blocks_forward(m, &L->vis, w, B, 0, L->vis.layers));
  cc_view last = w->blk[L->vis.layers - 1].res_out;
  CC_TRY(cc_gather_rows_fwd(m->rt, w->pooled, last, cc_none(), B, L->vis.T, C));
  return pool_head_forward(m, w, B, C, L->v_lnpost_w, L->v_lnpost_b, L->v_proj);
}

clipcl_status cc_text_forward(cc_model *m, int B) {
  cc_tower_ws *w = &m->txt;
  CC_TRY(check_batch(w, B, "text"));
  CC_TRY(pack_weights(m));
  const cc_layout *L = &m->L;
  int C = L->txt.C, T = L->txt.T;
  CC_TRY(cc_tok_embed_fwd(m->rt, w->x0, w->ids, cc_P(m, L->t_tok), cc_P(m, L->t_pos), B, T, C, L->vocab));
  CC_TRY(blocks_forward(m, &L->txt, w, B, 1, L->txt.layers));
  CC_TRY(cc_argmax_rows(m->rt, w->eot, w->ids, B, T));
  cc_view last = w->blk[L->txt.layers - 1].res_out;
  CC_TRY(cc_gather_rows_fwd(m->rt, w->pooled, last, w->eot, B, T, C));
  return pool_head_forward(m, w, B, C, L->t_lnf_w, L->t_lnf_b, L->t_proj);
}

clipcl_status cc_text_hidden_forward(cc_model *m, int B, int skip, cc_view *out) {
  cc_tower_ws *w = &m->txt;
  CC_TRY(check_batch(w, B, "text"));
  CC_TRY(pack_weights(m));
  const cc_layout *L = &m->L;
  int C = L->txt.C, T = L->txt.T, n = L->txt.layers - skip;
  if (skip < 0 || n < 1)
    return cc_fail(CLIPCL_ERR_ARG, "hidden states: cannot skip %d of the text tower's %d blocks", skip,
                   L->txt.layers);
  CC_TRY(cc_tok_embed_fwd(m->rt, w->x0, w->ids, cc_P(m, L->t_tok), cc_P(m, L->t_pos), B, T, C, L->vocab));
  CC_TRY(blocks_forward(m, &L->txt, w, B, 1, n));
  /* the first block's LayerNorm buffers are free once the blocks have run */
  cc_block_acts *a = &w->blk[0];
  CC_TRY(cc_layernorm_fwd(m->rt, a->ln1, a->mean1, a->rstd1, w->blk[n - 1].res_out, cc_P(m, L->t_lnf_w),
                          cc_P(m, L->t_lnf_b), B * T, C));
  *out = a->ln1;
  return CLIPCL_OK;
}

static clipcl_status check_backward(const cc_model *m, const cc_tower_ws *w, int B) {
  if (!m->has_grads) return cc_fail(CLIPCL_ERR_ARG, "backward without gradients enabled");
  if (w->save == CC_WS_INFER) return cc_fail(CLIPCL_ERR_ARG, "backward needs a workspace that saves activations");
  return check_batch(w, B, "backward");
}

clipcl_status cc_vision_backward(cc_model *m, int B) {
  cc_tower_ws *w = &m->vis;
  CC_TRY(check_backward(m, w, B));
  const cc_layout *L = &m->L;
  int C = L->vis.C, T = L->vis.T, P = T - 1, S = L->cfg.vision.image_size, p = L->cfg.vision.patch_size;
  CC_TRY(pool_head_backward(m, w, B, C, L->v_lnpost_w, L->v_lnpost_b, L->v_proj));
  CC_TRY(cc_fill(m->rt, w->dres, (size_t)B * T * C, 0.0f));
  CC_TRY(cc_gather_rows_bwd(m->rt, w->dres, w->dpooled, cc_none(), B, T, C));
  CC_TRY(blocks_backward(m, &L->vis, w, B, 0));
  /* ln_pre: d emb into dln */
  CC_TRY(cc_fill(m->rt, w->dln, (size_t)B * T * C, 0.0f));
  CC_TRY(cc_layernorm_bwd(m->rt, w->dln, cc_G(m, L->v_lnpre_w), cc_G(m, L->v_lnpre_b), w->dres, w->emb,
                          cc_P(m, L->v_lnpre_w), w->pre_mean, w->pre_rstd, B * T, C));
  /* class token + positions: d patches into datty (B,P,C) */
  CC_TRY(cc_fill(m->rt, w->datty, (size_t)B * P * C, 0.0f));
  CC_TRY(cc_vit_embed_bwd(m->rt, w->datty, cc_G(m, L->v_cls), cc_G(m, L->v_pos), w->dln, B, P, C));
  return cc_patch_embed_bwd(m->rt, cc_G(m, L->v_conv), cc_none(), w->datty, w->cols, cc_P(m, L->v_conv), B, S, p,
                            C);
}

clipcl_status cc_text_backward(cc_model *m, int B) {
  cc_tower_ws *w = &m->txt;
  CC_TRY(check_backward(m, w, B));
  const cc_layout *L = &m->L;
  int C = L->txt.C, T = L->txt.T;
  CC_TRY(pool_head_backward(m, w, B, C, L->t_lnf_w, L->t_lnf_b, L->t_proj));
  CC_TRY(cc_fill(m->rt, w->dres, (size_t)B * T * C, 0.0f));
  CC_TRY(cc_gather_rows_bwd(m->rt, w->dres, w->dpooled, w->eot, B, T, C));
  CC_TRY(blocks_backward(m, &L->txt, w, B, 1));
  return cc_tok_embed_bwd(m->rt, cc_G(m, L->t_tok), cc_G(m, L->t_pos), w->dres, w->ids, B, T, C, L->vocab);
}

/* ---- contrastive head ------------------------------------------------------ */

clipcl_status cc_head_forward_backward(cc_model *m, cc_view img_feat, cc_view txt_feat, int N, int grads,
                                       cc_view dimg_feat, cc_view dtxt_feat) {
  cc_head_ws *h = &m->head;
  if (N < 1 || N > h->cap) return cc_fail(CLIPCL_ERR_ARG, "loss over %d pairs exceeds the head workspace", N);
  if (grads && !m->has_grads) return cc_fail(CLIPCL_ERR_ARG, "loss gradients without gradients enabled");
  cc_rt *rt = m->rt;
  int E = m->L.cfg.embed_dim;
  cc_view s = cc_P(m, m->L.logit_scale);
  CC_TRY(cc_l2norm_fwd(rt, h->img_n, h->img_norm, img_feat, N, E));
  CC_TRY(cc_l2norm_fwd(rt, h->txt_n, h->txt_norm, txt_feat, N, E));
  CC_TRY(cc_logits_fwd(rt, h->li, h->img_n, h->txt_n, s, N, N, E));
  CC_TRY(cc_logits_fwd(rt, h->lt, h->txt_n, h->img_n, s, N, N, E));
  CC_TRY(cc_ce_fwd(rt, h->loss, h->pi, h->li, N, N, 0, 0.5f, 0));
  CC_TRY(cc_ce_fwd(rt, h->loss, h->pt, h->lt, N, N, 0, 0.5f, 1));
  if (!grads) return CLIPCL_OK;
  size_t NN = (size_t)N * N, NE = (size_t)N * E;
  CC_TRY(cc_fill(rt, h->dli, NN, 0.0f));
  CC_TRY(cc_fill(rt, h->dlt, NN, 0.0f));
  CC_TRY(cc_ce_bwd(rt, h->dli, h->pi, N, N, 0, 0.5f));
  CC_TRY(cc_ce_bwd(rt, h->dlt, h->pt, N, N, 0, 0.5f));
  CC_TRY(cc_fill(rt, h->dimg_n, NE, 0.0f));
  CC_TRY(cc_fill(rt, h->dtxt_n, NE, 0.0f));
  cc_view ds = cc_G(m, m->L.logit_scale);
  CC_TRY(cc_logits_bwd(rt, h->dimg_n, h->dtxt_n, ds, h->dli, h->img_n, h->txt_n, h->li, s, N, N, E));
  CC_TRY(cc_logits_bwd(rt, h->dtxt_n, h->dimg_n, ds, h->dlt, h->txt_n, h->img_n, h->lt, s, N, N, E));
  CC_TRY(cc_fill(rt, dimg_feat, NE, 0.0f));
  CC_TRY(cc_fill(rt, dtxt_feat, NE, 0.0f));
  CC_TRY(cc_l2norm_bwd(rt, dimg_feat, h->dimg_n, h->img_n, h->img_norm, N, E));
  return cc_l2norm_bwd(rt, dtxt_feat, h->dtxt_n, h->txt_n, h->txt_norm, N, E);
}
