/* trainer.c: see trainer.h. With several ranks a step is: forward and loss
 * (the loss exchanges features, loss.c), backward with the gradient buckets
 * summed over the ranks as they finish (reduce.c), the loss shares summed,
 * the global gradient norm for clipping, AdamW (on this rank's parts with
 * ZeRO-1, then the parameters all-gathered), the logit-scale clamp. Every
 * rank takes the same update from the same summed gradients. */
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "train/memory.h"

clipcl_status cc_trainer_create(cc_model *m, const cc_train_hparams *hp, cc_trainer **out) {
  return cc_trainer_create_setup(m, hp, NULL, out);
}

clipcl_status cc_trainer_create_setup(cc_model *m, const cc_train_hparams *hp, const cc_train_setup *su,
                                      cc_trainer **out) {
  *out = NULL;
  if (hp->micro < 1 || hp->accum < 1 || hp->total_steps < 1 || hp->warmup < 0)
    return cc_fail(CLIPCL_ERR_ARG, "training needs batch >= 1, accum >= 1, steps >= 1 and warmup >= 0");
  cc_trainer *t = calloc(1, sizeof *t);
  if (!t) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  t->m = m;
  t->hp = *hp;
  if (su) t->su = *su;
  t->d = t->su.dist ? t->su.dist : cc_dist_self();
  if (t->su.siglip && !m->L.has_logit_bias) {
    free(t);
    return cc_fail(CLIPCL_ERR_ARG, "the SigLIP loss needs a model with a logit_bias parameter");
  }
  size_t n = m->L.total, N = (size_t)hp->micro * hp->accum, E = (size_t)m->L.cfg.embed_dim;
  unsigned char *mask = NULL;
  /* a batch that does not fit is refused before anything is allocated */
  clipcl_status s = cc_check_training_fits(m->rt, &m->L, hp->micro, hp->accum, &t->su);
  if (!s) s = cc_model_enable_grads(m);
  int keep = t->su.grad_ckpt ? CC_WS_CKPT : CC_WS_FULL;
  if (!s) s = cc_model_workspace(m, 1, hp->micro, keep);
  if (!s) s = cc_model_workspace(m, 0, hp->micro, keep);
  if (!s) s = cc_loss_create(m->rt, t->d, (int)N, (int)E, t->su.siglip, &t->loss);
  if (!s && cc_dist_size(t->d) > 1) s = cc_reducer_create(m, t->d, t->su.zero, &t->red);
  /* ZeRO-1: moments for this rank's parts only */
  size_t nm = t->red && t->su.zero ? t->red->mom_total : n;
  if (!s) s = cc_arena_init(&t->oar, m->rt, "optimiser", 2 * nm + 4 * N * E + 64 + (t->red ? (size_t)t->red->nb : 0));
  if (!s) s = cc_arena_alloc(&t->oar, nm, &t->mom);
  if (!s) s = cc_arena_alloc(&t->oar, nm, &t->vel);
  if (!s) s = cc_arena_alloc(&t->oar, 1, &t->gnorm);
  if (!s) s = cc_arena_alloc(&t->oar, 1, &t->gscale);
  if (!s && t->red) s = cc_arena_alloc(&t->oar, (size_t)t->red->nb, &t->norms);
  if (!s && hp->accum > 1) {
    s = cc_arena_alloc(&t->oar, N * E, &t->img_all);
    if (!s) s = cc_arena_alloc(&t->oar, N * E, &t->txt_all);
    if (!s) s = cc_arena_alloc(&t->oar, N * E, &t->dimg_all);
    if (!s) s = cc_arena_alloc(&t->oar, N * E, &t->dtxt_all);
  }
  if (!s) s = cc_fill(m->rt, t->mom, nm, 0.0f);
  if (!s) s = cc_fill(m->rt, t->vel, nm, 0.0f);
  if (!s && !(mask = cc_layout_decay_mask(&m->L, hp->lock_image)))
    s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  if (!s) s = cc_buffer(m->rt, n, &t->mask, "weight-decay mask");
  if (!s) {
    cl_int e = clEnqueueWriteBuffer(cc_queue(m->rt), t->mask, CL_TRUE, 0, n, mask, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = cc_cl_fail(e, "clEnqueueWriteBuffer", "uploading the weight-decay mask");
  }
  free(mask);
  if (s) {
    cc_trainer_free(t);
    return s;
  }
  *out = t;
  return CLIPCL_OK;
}

void cc_trainer_free(cc_trainer *t) {
  if (!t) return;
  cc_loss_free(t->loss);
  cc_loss_free(t->eval_loss);
  cc_reducer_free(t->red);
  cc_release(t->mask);
  cc_arena_free(&t->oar);
  free(t);
}

double cc_lr_at(const cc_train_hparams *hp, long step) {
  if (step < hp->warmup) return hp->lr * (double)(step + 1) / (double)hp->warmup;
  double e = (double)(step - hp->warmup), es = (double)(hp->total_steps - hp->warmup);
  if (es <= 0) return hp->lr;
  return 0.5 * (1.0 + cos(3.14159265358979323846 * e / es)) * hp->lr;
}

static clipcl_status upload(cc_trainer *t, const float *pixels, const int32_t *ids, int j) {
  cc_model *m = t->m;
  size_t b = (size_t)t->hp.micro, S = (size_t)m->L.cfg.vision.image_size, T = (size_t)m->L.cfg.text.context_length;
  CC_TRY(cc_write(m->rt, m->vis.pixels, pixels + (size_t)j * b * 3 * S * S, b * 3 * S * S));
  return cc_write(m->rt, m->txt.ids, ids + (size_t)j * b * T, b * T);
}

static cc_view bias_param(cc_model *m) { return m->L.has_logit_bias ? cc_P(m, m->L.logit_bias) : cc_none(); }
static cc_view bias_grad(cc_model *m) { return m->L.has_logit_bias ? cc_G(m, m->L.logit_bias) : cc_none(); }

static clipcl_status run_loss(cc_trainer *t, cc_loss *l, cc_view img, cc_view txt, int n, int grads, cc_view dimg,
                              cc_view dtxt) {
  cc_model *m = t->m;
  return cc_loss_run(l, img, txt, n, cc_P(m, m->L.logit_scale), bias_param(m), grads, dimg, dtxt,
                     grads ? cc_G(m, m->L.logit_scale) : cc_none(), grads ? bias_grad(m) : cc_none());
}

/* Forward, loss and backward of N = accum*micro pairs into the gradients. */
static clipcl_status accumulate(cc_trainer *t, const float *pixels, const int32_t *ids) {
  cc_model *m = t->m;
  int b = t->hp.micro, K = t->hp.accum, E = m->L.cfg.embed_dim, lock = t->hp.lock_image;
  size_t bE = (size_t)b * E;
  CC_TRY(cc_model_zero_grads(m));
  if (K == 1) {
    CC_TRY(upload(t, pixels, ids, 0));
    CC_TRY(cc_vision_forward(m, b));
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(run_loss(t, t->loss, m->vis.feat, m->txt.feat, b, 1, m->vis.dfeat, m->txt.dfeat));
    if (t->red) cc_reducer_arm(t->red);
    if (!lock) CC_TRY(cc_vision_backward(m, b));
    return cc_text_backward(m, b);
  }
  for (int j = 0; j < K; j++) {
    CC_TRY(upload(t, pixels, ids, j));
    CC_TRY(cc_vision_forward(m, b));
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(cc_copy(m->rt, cc_at(t->img_all, (size_t)j * bE), m->vis.feat, bE));
    CC_TRY(cc_copy(m->rt, cc_at(t->txt_all, (size_t)j * bE), m->txt.feat, bE));
  }
  CC_TRY(run_loss(t, t->loss, t->img_all, t->txt_all, b * K, 1, t->dimg_all, t->dtxt_all));
  for (int j = 0; j < K; j++) {
    if (t->red && j == K - 1) cc_reducer_arm(t->red); /* the gradients are complete after this one */
    CC_TRY(upload(t, pixels, ids, j));
    if (!lock) {
      CC_TRY(cc_vision_forward(m, b));
      CC_TRY(cc_copy(m->rt, m->vis.dfeat, cc_at(t->dimg_all, (size_t)j * bE), bE));
      CC_TRY(cc_vision_backward(m, b));
    }
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(cc_copy(m->rt, m->txt.dfeat, cc_at(t->dtxt_all, (size_t)j * bE), bE));
    CC_TRY(cc_text_backward(m, b));
  }
  return CLIPCL_OK;
}

/* Several ranks: sums the gradients and the loss shares, clips with the
 * global norm, updates (this rank's parts with ZeRO-1). */
static clipcl_status step_ranks(cc_trainer *t, float *loss, float *gnorm) {
  cc_model *m = t->m;
  cc_reducer *r = t->red;
  CC_TRY(cc_reducer_finish(r));
  float share;
  CC_TRY(cc_read(m->rt, t->loss->loss, &share, 1));
  double tot[1] = {share};
  CC_TRY(cc_dist_sum_d(t->d, tot, 1));
  *loss = (float)tot[0];
  *gnorm = -1.0f;
  cc_view scale = cc_none();
  if (t->hp.grad_clip > 0 && !t->su.zero) {
    /* every rank holds the same summed gradients: the same norm */
    CC_TRY(cc_global_norm(m->rt, t->gnorm, m->grads, m->L.total));
    CC_TRY(cc_clip_factor(m->rt, t->gscale, t->gnorm, t->hp.grad_clip));
    CC_TRY(cc_read(m->rt, t->gnorm, gnorm, 1));
    scale = t->gscale;
  } else if (t->hp.grad_clip > 0) {
    /* ZeRO: squares of the parts' norms, summed over parts and ranks */
    for (int i = 0; i < r->nb; i++) {
      size_t ps, len;
      cc_reducer_part(r, i, &ps, &len);
      if (len) CC_TRY(cc_global_norm(m->rt, cc_at(t->norms, (size_t)i), cc_at(m->grads, ps), len));
      else CC_TRY(cc_fill(m->rt, cc_at(t->norms, (size_t)i), 1, 0.0f));
    }
    float *nv = malloc((size_t)r->nb * sizeof *nv);
    if (!nv) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
    clipcl_status s = cc_read(m->rt, t->norms, nv, (size_t)r->nb);
    double sq[1] = {0};
    for (int i = 0; i < r->nb && !s; i++) sq[0] += (double)nv[i] * nv[i];
    free(nv);
    if (!s) s = cc_dist_sum_d(t->d, sq, 1);
    if (s) return s;
    *gnorm = (float)sqrt(sq[0]);
    /* clip_factor's formula on the host: min(1, max_norm / (norm + 1e-6)) */
    float f = t->hp.grad_clip / (*gnorm + 1e-6f);
    if (!(f < 1.0f)) f = 1.0f;
    CC_TRY(cc_write(m->rt, t->gscale, &f, 1));
    scale = t->gscale;
  }
  if (!isfinite(*loss))
    return cc_fail(CLIPCL_ERR_NUMERIC, "loss is %s at step %ld", isnan(*loss) ? "NaN" : "infinite", t->step + 1);
  cc_adamw_hparams h = {(float)cc_lr_at(&t->hp, t->step), t->hp.beta1, t->hp.beta2, t->hp.eps, t->hp.weight_decay,
                        (int)(t->step + 1)};
  if (!t->su.zero) {
    CC_TRY(cc_adamw(m->rt, m->params, m->grads, t->mom, t->vel, t->mask, 0, scale, m->L.total, &h));
  } else {
    for (int i = 0; i < r->nb; i++) {
      size_t ps, len;
      cc_reducer_part(r, i, &ps, &len);
      if (!len) continue;
      size_t mo = r->b[i].mom_off;
      CC_TRY(cc_adamw(m->rt, cc_at(m->params, ps), cc_at(m->grads, ps), cc_at(t->mom, mo), cc_at(t->vel, mo),
                      t->mask, ps, scale, len, &h));
    }
    CC_TRY(cc_reducer_gather_params(r));
  }
  CC_TRY(cc_clamp(m->rt, cc_P(m, m->L.logit_scale), 1, 0.0f, logf(100.0f)));
  t->step++;
  return CLIPCL_OK;
}

clipcl_status cc_trainer_full_grads(cc_trainer *t, float *host) {
  cc_model *m = t->m;
  if (!t->red || !t->su.zero) return cc_read(m->rt, m->grads, host, m->L.total);
  CC_TRY(cc_reducer_gather(t->red, m->grads, 0, host, 0));
  return cc_dist_bcast(t->d, host, m->L.total * sizeof *host, 0);
}

clipcl_status cc_trainer_step(cc_trainer *t, const float *pixels, const int32_t *ids, float *loss, float *gnorm) {
  cc_model *m = t->m;
  CC_TRY(accumulate(t, pixels, ids));
  if (t->red) return step_ranks(t, loss, gnorm);
  cc_view scale = cc_none();
  if (t->hp.grad_clip > 0) {
    CC_TRY(cc_global_norm(m->rt, t->gnorm, m->grads, m->L.total));
    CC_TRY(cc_clip_factor(m->rt, t->gscale, t->gnorm, t->hp.grad_clip));
    scale = t->gscale;
  }
  CC_TRY(cc_read(m->rt, t->loss->loss, loss, 1)); /* the step's one synchronisation */
  *gnorm = -1.0f;
  if (t->hp.grad_clip > 0) CC_TRY(cc_read(m->rt, t->gnorm, gnorm, 1));
  if (!isfinite(*loss))
    return cc_fail(CLIPCL_ERR_NUMERIC, "loss is %s at step %ld", isnan(*loss) ? "NaN" : "infinite", t->step + 1);
  cc_adamw_hparams h = {(float)cc_lr_at(&t->hp, t->step), t->hp.beta1, t->hp.beta2, t->hp.eps, t->hp.weight_decay,
                        (int)(t->step + 1)};
  CC_TRY(cc_adamw(m->rt, m->params, m->grads, t->mom, t->vel, t->mask, 0, scale, m->L.total, &h));
  CC_TRY(cc_clamp(m->rt, cc_P(m, m->L.logit_scale), 1, 0.0f, logf(100.0f)));
  t->step++;
  return CLIPCL_OK;
}

clipcl_status cc_trainer_eval_loss(cc_trainer *t, const float *pixels, const int32_t *ids, int n, float *loss) {
  cc_model *m = t->m;
  int b = t->hp.micro, N = b * t->hp.accum;
  if (n < 1 || n > N) return cc_fail(CLIPCL_ERR_ARG, "validation batch %d outside 1..%d", n, N);
  int E = m->L.cfg.embed_dim, S = m->L.cfg.vision.image_size, T = m->L.cfg.text.context_length;
  cc_view img = t->hp.accum > 1 ? t->img_all : m->vis.feat, txt = t->hp.accum > 1 ? t->txt_all : m->txt.feat;
  for (int j = 0; j * b < n; j++) {
    int bj = n - j * b < b ? n - j * b : b;
    CC_TRY(cc_write(m->rt, m->vis.pixels, pixels + (size_t)j * b * 3 * S * S, (size_t)bj * 3 * S * S));
    CC_TRY(cc_write(m->rt, m->txt.ids, ids + (size_t)j * b * T, (size_t)bj * T));
    CC_TRY(cc_vision_forward(m, bj));
    CC_TRY(cc_text_forward(m, bj));
    if (t->hp.accum > 1) {
      CC_TRY(cc_copy(m->rt, cc_at(img, (size_t)j * b * E), m->vis.feat, (size_t)bj * E));
      CC_TRY(cc_copy(m->rt, cc_at(txt, (size_t)j * b * E), m->txt.feat, (size_t)bj * E));
    } else if (n > b) {
      return cc_fail(CLIPCL_ERR_ARG, "validation batch larger than the micro-batch");
    }
  }
  if (!t->eval_loss)
    CC_TRY(cc_loss_create(m->rt, cc_dist_self(), N, m->L.cfg.embed_dim, t->su.siglip, &t->eval_loss));
  CC_TRY(run_loss(t, t->eval_loss, img, txt, n, 0, cc_none(), cc_none()));
  return cc_read(m->rt, t->eval_loss->loss, loss, 1);
}
